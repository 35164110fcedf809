/* image_int.h - what the parts of an image (image.c, image_write.c, image_base.c,
 * image_freeze.c) share: the struct and the helpers that more than one of them calls.
 * Not for use outside src/image/. Locking as in image.h: wlock before mlock; the
 * helpers say which lock their caller holds.
 */
#ifndef VMB_IMAGE_INT_H
#define VMB_IMAGE_INT_H

#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include "image/image.h"
#include "image/dio.h"
#include "map/base.h"
#include "map/sidecar.h"

#define BS ((uint64_t)VMB_BLOCK_SIZE)
#define MAX_BYTES (VMB_BLOCK_MAX * BS)   /* 2^63: the largest file size */

struct vmb_image {
	int fd;                  /* backing file, owned */
	int mapdir;              /* borrowed */
	int writable;
	uint64_t ino;
	char *name;              /* for messages, owned */
	const struct vmb_log *log;
	pthread_mutex_t wlock;   /* serialises changes */
	pthread_mutex_t mlock;   /* guards map, size, gen */
	struct vmb_blockmap map;
	uint64_t size;
	uint64_t gen;            /* bumped by every change (mlock) */
	uint64_t saved_gen;      /* gen of the map last saved (wlock) */
	int on_disk;             /* the sidecar holds this map (wlock) */
	/* Blocks changed since the map was last saved or loaded: map.track points here
	 * while they are known (blockmap.h; a map replaced wholesale has no track, and
	 * is then saved whole). With pos, a save appends only these to the journal. */
	struct vmb_blockmap dirty;   /* (mlock) */
	struct vmb_sidecar_pos pos;  /* the saved map on disk (wlock) */
	int locks_ready;
	struct vmb_dio dio;      /* large aligned writes (wlock) */
	uint64_t res_next;       /* reserved run: where its next write starts (wlock) */
	uint64_t res_end;        /* end of the space reserved ahead, 0: none (wlock) */
	int res_recorded;        /* its record is on the backing file (resrec.h) (wlock) */
	/* Revalidation (image.h, vmb_image_revalidate): the backing file's stamp after
	 * this image's own last change, which the map describes. known_ok is 0 while
	 * an own change is not stamped yet (direct writes still queued). (wlock) */
	struct vmb_stamp known;
	int known_ok;
	int foreign;             /* a change by someone else was found and not yet
				  * taken by vmb_image_take_foreign (atomic) */
	/* An own change shows in the map only: blocks of a delta that read the base
	 * became ZERO (vmb_img_map_set), and the backing file, a hole there either way,
	 * did not change. vmb_img_refresh_known then sets its modification time to now,
	 * as the change's write, punch or zeroing would on a plain file: its times say
	 * it changed, and other mounts see the change (THE STAMP RULE). (wlock, mlock)
	 * map_only_unsaved: such a change is not in the saved map yet; the save that
	 * puts it there (at a close: vmb_image_commit) sets the time again first, so
	 * that another mount that looked between the change and the save looks again
	 * and takes the map saved. (wlock) */
	int map_only;
	int map_only_unsaved;
	/* An own change began since the map was last saved (vmb_img_begin_change):
	 * this image is a writer of the file, and its map the better guide when someone
	 * else's change is found (revalidate). (wlock) */
	int own_changed;
	/* The base under the delta (map/base.h), NULL for none: one reference, owned.
	 * limit: blocks >= it never read the base (mlock; changed under wlock too). */
	struct vmb_base *base;
	uint64_t limit;
	int frozen;              /* vmb_image_open_frozen: no backing file, read-only */
	int private_file;        /* vmb_image_set_private (__atomic) */
	/* st_blocks through the chain (image_base.c), valid while alloc_gen == gen
	 * and alloc_ok (mlock). */
	uint64_t alloc_blocks, alloc_gen;
	int alloc_ok;
	/* What the last freeze moved the image off (image_freeze.c): a reader that
	 * looked up the old descriptor or base before it still reads the frozen
	 * content through them. Released at the next freeze or at close. */
	int old_fd;
	struct vmb_base *old_base;
};

static inline uint64_t blocks_for(uint64_t bytes)
{
	return (bytes + BS - 1) / BS;
}

static inline int is_zero(const unsigned char *p, size_t n)
{
	if (n == 0)
		return 1;
	if (p[0])
		return 0;
	return memcmp(p, p + 1, n - 1) == 0;
}

/* image.c: the map and the size (caller holds wlock; they take mlock). */
int vmb_img_map_set(struct vmb_image *img, uint64_t start, uint64_t len, enum vmb_bstate st,
		    struct vmb_err *err);
enum vmb_bstate vmb_img_map_get(struct vmb_image *img, uint64_t blk);
int vmb_img_map_has_data(struct vmb_image *img, uint64_t start, uint64_t end);
void vmb_img_set_size(struct vmb_image *img, uint64_t size);
int vmb_img_grow_locked(struct vmb_image *img, uint64_t new_size, struct vmb_err *err);
int vmb_img_begin_change(struct vmb_image *img, struct vmb_err *err);
/* image.c: revalidation (caller holds wlock). */
void vmb_img_refresh_known(struct vmb_image *img);
int vmb_img_revalidate_locked(struct vmb_image *img, struct vmb_err *err);
/* image.c: save the map if it changed (wlock). */
int vmb_img_persist_locked(struct vmb_image *img, int durable, struct vmb_err *err);
/* image.c: a new image with nothing open (fd -1), or NULL with err set. */
struct vmb_image *vmb_img_alloc(const char *name, struct vmb_err *err);
/* The image's base and limit as a sidecar names them (mlock or wlock held). */
void vmb_img_baseref(struct vmb_image *img, struct vmb_baseref *ref);
/* -EROFS for a frozen image, -EBADF for a read-only one, else 0. */
int vmb_img_check_writable(struct vmb_image *img, struct vmb_err *err);

/* image_load.c */
/* *lost: for a delta whose map was rebuilt, VMB_IMG_MAP_LOST when there was no
 * committed map of it, VMB_IMG_MAP_OLDER when its committed map was older than the
 * file (a change not committed yet by another mount, cut short by a crash, or a
 * damaged journal): either way blocks zeroed since read their base again; else 0. */
#define VMB_IMG_MAP_LOST 1
#define VMB_IMG_MAP_OLDER 2
int vmb_img_load_map(int fd, int mapdir, const char *name, struct vmb_blockmap *m,
		     struct vmb_stamp *stamp, int *rebuilt, struct vmb_sidecar_pos *pos,
		     struct vmb_baseref *ref, int *lost, struct vmb_err *err);
/* The rebuild of a delta's map (LAYERS.md (4)) from committed (NULL: none) and the
 * backing file's data and holes, into out. */
int vmb_img_reconcile(int fd, uint64_t size, const struct vmb_blockmap *committed,
		      struct vmb_blockmap *out, struct vmb_err *err);

/* image_base.c: the chain (caller holds mlock for chain_get). */
enum vmb_src { VMB_SRC_ZERO, VMB_SRC_DELTA, VMB_SRC_BASE };
/* Where block blk reads from, and for how many blocks from blk on (*run). */
enum vmb_src vmb_img_chain_get(struct vmb_image *img, uint64_t blk, uint64_t *run, int *bfd);
/* The same, taking mlock; no run. */
enum vmb_src vmb_img_src(struct vmb_image *img, uint64_t blk);
/* Read [off, off + len) of the base into buf (past the base's size: zeros). */
int vmb_img_base_read(struct vmb_image *img, void *buf, size_t len, uint64_t off,
		      struct vmb_err *err);
/* Block blk's content through the chain into b (VMB_BLOCK_SIZE bytes), bytes at or
 * past file offset end zeroed. */
int vmb_img_block_content(struct vmb_image *img, uint64_t blk, unsigned char *b,
			  uint64_t end, struct vmb_err *err);
/* A delta shrinking to size: the base limit it gets, and its base xattr rewritten
 * when it is lower (failure logged). Caller holds wlock. */
uint64_t vmb_img_lower_limit(struct vmb_image *img, uint64_t size);

/* image_copy.c: before a copy from src into dst (dst's wlock held): dst drained,
 * checked for changes by someone else and its reservation given back; src drained
 * and checked (unless its own change is in progress). 0 or -errno. */
int vmb_img_copy_prepare(struct vmb_image *src, struct vmb_image *dst, struct vmb_err *err);

/* image_write.c: bytes [a, b) within the size become zeros (wlock). */
int vmb_img_zero_locked(struct vmb_image *img, uint64_t a, uint64_t b, struct vmb_err *err);
/* Block pos / 4096 written whole: its content through the chain up to cover (the
 * size that counts; zeros past it), with [pos, stop) replaced by p (NULL: zeros);
 * ZERO when the result is all zeros, else DATA. *wend (may be NULL): where the
 * write ended. Caller holds wlock. */
int vmb_img_write_merged(struct vmb_image *img, const void *p, uint64_t pos, uint64_t stop,
			 uint64_t cover, uint64_t *wend, struct vmb_err *err);
/* image_write.c: give back the space reserved ahead of a writer (wlock). */
void vmb_img_give_back(struct vmb_image *img);

#endif
