/* vmbfs.h - the FUSE adapter: mounting a store and serving it (fs/).
 * Only this directory includes libfuse; the filesystem logic is src/vfs. */
#ifndef VMB_FS_H
#define VMB_FS_H

#include <stdio.h>
#include <pthread.h>
#include <stdint.h>
#include "vfs/vfs.h"

/* Requests carry up to 1 MiB (256 pages; max_write, from which libfuse derives
 * the kernel's max_pages), so a program's aligned 1 MiB writes arrive whole. The
 * readahead is one read of 251 pages (1004 KiB): with the reply header and
 * libfuse's slack, a spliced reply of that size fits the default 1 MiB pipe
 * (fuse_ops.c, pipes_fit_replies), and max_read keeps every read request (a
 * readahead of a file opened with POSIX_FADV_SEQUENTIAL, an O_DIRECT read) to it. */
#define VMB_FS_MAX_IO (256u * 4096)
#define VMB_FS_MAX_SPLICE (251u * 4096)
/* Pieces of one spliced reply from a remote base (a chunk is at least 64 KiB) */
#define VMB_FS_PIECES (VMB_FS_MAX_SPLICE / (64u << 10) + 2)
/* Defaults of the -o options readahead_kb (one spliced request) and max_threads. A
 * URL mount's readahead is one chunk of publish's default size instead (256 KiB):
 * there a page read ahead may cost a chunk fetched for nothing, and the remote
 * images follow sequential readers with readahead of their own (remote/rimage.h);
 * one request per chunk halves the requests (and hand-offs) of a sequential read
 * at the kernel's 128 KiB, and fetches no more for a boot-like pattern. */
#define VMB_FS_DEFAULT_READAHEAD_KB (VMB_FS_MAX_SPLICE / 1024)
#define VMB_FS_URL_READAHEAD_KB 256
#define VMB_FS_DEFAULT_MAX_THREADS 64
#include <signal.h>
#define VMB_FS_WAKE_SIGNAL SIGUSR1  /* wakes a worker waiting for a lock */

struct vmb_vfs;
struct vmb_vfs_lazy;
struct fuse_session;

struct vmb_mount_opts {
	const char *store;
	const char *mountpoint;
	int foreground;
	int debug;
	const char *logfile;       /* NULL: stderr in the foreground, syslog as a daemon;
				    * the store's log (store_log.h) gets every message too */
	const char *fuse_opts;     /* comma-separated -o options, may be NULL */
	const char *source;        /* what the user mounted, for the log's "mounted"
				    * line (a URL mount's URL); NULL: store */
	const struct vmb_vfs_lazy *lazy;   /* a URL mount: the bundles pulled into its
					    * shadow store when first looked up
					    * (vfs.h); NULL: none. Borrowed. */
};

/* One mounted store (owned by vmb_fs_main for the life of the mount). */
struct vmb_fs {
	struct vmb_vfs *vfs;
	struct fuse_session *se;   /* for notifications; set once the session exists */
	struct vmb_log log;
	FILE *logfp;               /* owned when opened from logfile */
	int use_syslog;
	struct vmb_store_log *slog;   /* STORE/.vmbundlefs/log, always written; may be NULL */
	pthread_mutex_t loglock;
	/* Threads waiting for locks (fuse_ops.c): interrupted and awaited at unmount. */
	pthread_mutex_t wlock;
	pthread_cond_t wdone;
	struct vmb_fs_waiter *waiters;
	unsigned nwaiters;
	int hard;   /* -o hard: a read waiting for the network ends on a signal (op_read) */
	int own_io;   /* the session's I/O is fuse_io.c's (vmb_fs_io_install) */
	int patch_init;   /* atomic: op_init asks fuse_io.c to add FUSE_PARALLEL_DIROPS */
};

/* vmb_vfs_opts.stale: drop the kernel's cached attributes (and pages when pages is
 * set) of node ino; arg is the struct vmb_fs. Called while an open is answered. */
void vmb_fs_stale(void *arg, uint64_t ino, int pages);
void vmb_fs_gone(void *arg, uint64_t parent, const char *name);   /* vmb_vfs_opts.gone */

/* Interrupt every waiting lock call and wait until their threads are gone. */
void vmb_fs_stop_waiters(struct vmb_fs *fs);
/* *t = now (CLOCK_REALTIME) + ms, for pthread_cond_timedwait. */
void vmb_fs_deadline(struct timespec *t, long ms);

/* A read request [off, off + size) of f answered from a remote base's cached chunks
 * (vmb_vfs_read_pieces): their pieces are spliced into a pipe of the calling
 * thread's, which libfuse splices on to the kernel as one buffer (several
 * descriptor buffers would not fit its 1 MiB pipe with its slack). 1 when replied;
 * 0 when the range is not all cached chunks (or a splice failed): then nothing was
 * replied and the caller reads. */
struct fuse_req;
int vmb_fs_reply_pieces(struct fuse_req *req, struct vmb_file *f, size_t size, off_t off);

/* Free the INTERRUPT requests libfuse still queues when the loop has ended (its
 * fuse_session_destroy does not; fuse_drain.c). Call after fuse_session_unmount,
 * just before fuse_session_destroy (a session whose descriptor is not -1 is left
 * alone); the session then has a descriptor of its own. Returns how many it freed. */
unsigned vmb_fs_drain_interrupts(struct fuse_session *se, int own_io);

/* fuse_io.c: the session's device I/O, as libfuse's own but for the INIT reply,
 * which gets FUSE_PARALLEL_DIROPS when op_init set fs->patch_init (libfuse 3.14
 * never sends it). Install after fuse_session_mount, on its descriptor fd (the
 * session's userdata is the struct vmb_fs): 0 or -errno. Drain mode
 * (fuse_drain.c, after the loop): nothing read, answers counted, not written;
 * vmb_fs_io_drained returns (and resets) the count of answers to other requests
 * than unique. */
int vmb_fs_io_install(struct fuse_session *se, int fd);
void vmb_fs_io_drain(uint64_t unique, int on);
unsigned vmb_fs_io_drained(void);

/* After the loop ended on a signal, still mounted: answer the requests the kernel
 * sends for a while, on the calling thread (fuse_drain.c). A read that failed as
 * the daemon stopped (its fetch ended, EIO) is often tried again by the kernel,
 * page by page; unanswered at the unmount, that request would fail with
 * ECONNABORTED instead of the EIO the reader is owed. Serves until no request has
 * come for quiet_ms, at most max_ms in all; the fetches must be ended first
 * (vmb_vfs_cancel) and the lock waiters stopped, so that no answer waits. Returns
 * how many requests it served. */
unsigned vmb_fs_serve_grace(struct fuse_session *se, int quiet_ms, int max_ms);

/* Check a -o option list (vmbundlefs' own options and libfuse's) without mounting:
 * 0, or -EINVAL with a message naming the bad option. */
int vmb_fs_check_opts(const char *fuse_opts, struct vmb_err *err);

/* Mount and serve until unmounted. Returns 0 (clean unmount) or -errno, with the
 * message in err. Errors before the mount exists are reported without mounting. */
int vmb_fs_main(const struct vmb_mount_opts *o, struct vmb_err *err);

#endif
