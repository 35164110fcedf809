/* dio.h - large, aligned writes go to the backing file with O_DIRECT, behind the
 * writer.
 *
 * Data written through the mount is already kept by the kernel in the mount's own
 * page cache; writing it to the backing file through that file's page cache as well
 * keeps a second copy of every byte in memory, costs a copy into freshly allocated
 * pages, and leaves all of it for fsync to write. A run of data of at least
 * VMB_DIO_MIN bytes whose offset and length meet the backing filesystem's
 * direct-I/O alignment is therefore copied into one of VMB_DIO_QUEUE buffers and
 * written with O_DIRECT by VMB_DIO_THREADS threads of the image's own while the
 * writer goes on: the disk works during the transfer instead of at fsync. The first
 * thread writes the queue in order; the others take only writes that lie inside the
 * file, which go side by side (writes past the end are serialised by the
 * filesystem anyway: dio.c, next_for). Everything else (small or
 * unaligned writes, filesystems without O_DIRECT) stays buffered, and the kernel
 * keeps the two paths coherent.
 *
 * The guarantees of a local filesystem's buffered write hold:
 *   - ENOSPC and EDQUOT reach the writer: the caller (image.c) reserves the range
 *     with fallocate (KEEP_SIZE) before the write is accepted;
 *   - an I/O error of a queued write is reported by the next vmb_dio_drain that
 *     asks for it (fsync), and logged by the image;
 *   - everything else that reads or changes the backing file first waits for the
 *     queued writes that overlap its range, or for all of them (image.c), so the
 *     backing file is never seen without an accepted write.
 *
 * Queued writes never overlap each other (a write waits for the queued ones its
 * range overlaps before it is queued), so they may land in any order.
 *
 * Ownership: a vmb_dio belongs to one image; it owns its descriptor, its buffers and
 * its threads, all released by vmb_dio_destroy (after draining). Locking: the
 * public calls are made under the image's wlock; `lock` guards the queue and err
 * between those calls and the thread, and is taken after wlock (never before). */
#ifndef VMB_DIO_H
#define VMB_DIO_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define VMB_DIO_MIN (128u * 1024)      /* shorter runs stay buffered */
#define VMB_DIO_CHUNK (1u << 20)       /* one queued write, at most */
#define VMB_DIO_QUEUE 16               /* queued writes per image */
#define VMB_DIO_THREADS 4              /* writes in flight at once, per image */

enum vmb_dio_slot { VMB_DIO_FREE, VMB_DIO_QUEUED, VMB_DIO_BUSY };

struct vmb_dio_req {
	void *mem;                     /* VMB_DIO_CHUNK bytes, aligned; owned */
	uint64_t off;
	size_t len;
	uint64_t seq;                  /* order of acceptance */
	enum vmb_dio_slot state;
};

struct vmb_dio {
	int fd;                        /* O_DIRECT descriptor, -1 until first used */
	int bfd;                       /* the backing descriptor (borrowed) */
	int state;                     /* 0: not tried yet, 1: in use, -1: off */
	uint32_t mem_align, off_align;
	int threads_up, lock_ready;
	pthread_t threads[VMB_DIO_THREADS];
	pthread_mutex_t lock;
	pthread_cond_t cond;           /* a queued write finished (producer, drains) */
	pthread_cond_t work0, work;    /* a write was queued (first thread, the others) */
	struct vmb_dio_req q[VMB_DIO_QUEUE];
	unsigned used;                 /* slots not FREE */
	uint64_t accepted;             /* requests ever queued (the last seq) */
	int stop;
	unsigned nstarted;             /* threads started (the first writes in order) */
	uint64_t size_hint;            /* the backing file's size as last seen (lock) */
	int err;                       /* first failure of a queued write (-errno), 0 */
	uint64_t err_off;              /* where it failed */
	unsigned delay_us;             /* test hook: VMB_TEST_DIO_DELAY_US, 0 */
};

/* A vmb_dio that is off (enabled = 0) never opens or starts anything. */
void vmb_dio_init(struct vmb_dio *d, int enabled);
void vmb_dio_destroy(struct vmb_dio *d);

/* May a write of len bytes at off of backing file fd go direct? (Starts the
 * threads on first use; 0 when the run is short or unaligned, or direct I/O does
 * not work here.) The caller then reserves the range (image.c) and queues it. */
int vmb_dio_eligible(struct vmb_dio *d, int fd, uint64_t off, size_t len);

/* Direct writes are off for this file from now on (the filesystem cannot reserve
 * space: its ENOSPC would only show when a queued write fails). */
void vmb_dio_disable(struct vmb_dio *d);

/* Queue len eligible, reserved bytes at off: waits for free buffers and copies
 * into them. All of it is accepted (a failure shows at the next drain). */
void vmb_dio_pwrite(struct vmb_dio *d, const void *buf, size_t len, uint64_t off);

/* Wait until no queued write overlaps [off, off + len): before a buffered write or a
 * read of that range. */
void vmb_dio_wait_range(struct vmb_dio *d, uint64_t off, uint64_t len);

/* Wait until every write queued before the call is on the backing file. Returns 0, or the first
 * failure since it was last taken (-errno, *off where) when take_err is set. */
int vmb_dio_drain(struct vmb_dio *d, int take_err, uint64_t *off);

/* 1 when no accepted write is still queued or being written (the backing file holds
 * every accepted byte), else 0. Never waits. */
int vmb_dio_idle(struct vmb_dio *d);

#endif
