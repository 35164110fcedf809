/* vfs.h - the filesystem a mount serves, with no FUSE in it.
 *
 * struct vmb_vfs is an open store plus a table of nodes: one node per backing inode
 * the kernel knows of, holding an O_PATH descriptor of the backing file (so renames
 * behind a node need no path bookkeeping), the kernel's lookup count, and, for an
 * open regular file, its image (shared by every handle of the inode).
 *
 * Node ids: VMB_ROOT_INO for the store root; otherwise the node's address. st_ino
 * in every attribute is the backing file's inode number, stable across remounts.
 *
 * Lifetimes and locking:
 *   - v->tlock (the table lock) guards the hash table and every node's nlookup and
 *     refs; it is held only for table operations, never around I/O.
 *   - A node is freed when nlookup (kernel references, given by lookup/create and
 *     taken back by forget) and refs (operations in flight, open handles, open
 *     directories) are both zero. The root is never freed.
 *   - node->ilock guards node->img and node->opens. Lock order: tlock before ilock;
 *     nothing takes tlock while holding an ilock.
 *   - An image is opened with the first handle and closed (map persisted) with the
 *     last one.
 * Every function returns 0 (or a count) or -errno, with a message in err.
 */
#ifndef VMB_VFS_H
#define VMB_VFS_H

#include <stdint.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include "base/err.h"
#include "base/cancel.h"   /* struct vmb_cancel, a hard-mode read's cancel token */
#include "lock/lock.h"   /* struct vmb_lock_wait, which the FUSE adapter fills */
#include "store/store_log.h"   /* the store's daemon log, which the FUSE adapter writes */
#include "map/base.h"   /* struct vmb_base_piece: pieces of a remote base, spliced */

#define VMB_ROOT_INO 1

struct vmb_vfs;
struct vmb_file;   /* an open regular file */
struct vmb_dir;    /* an open directory */

struct vmb_ctx {
	uid_t uid;
	gid_t gid;
	pid_t pid;
	mode_t umask;          /* the caller's, applied once to the mode of a new entry */
};

struct vmb_entry {
	uint64_t ino;          /* node id */
	uint64_t generation;
	struct stat attr;
};

/* The bundles of a published store that a mount of its URL pulls into its
 * private store when they are first needed (vmb_vfs_opts.lazy): a lookup of one
 * of these names in the root pulls that bundle; the root's listing is these
 * names (vfs_lazy.c). Borrowed by vmb_vfs_new, which copies it. */
struct vmb_vfs_lazy {
	const char *url;              /* the published store (normalized) */
	size_t n;
	const char *const *names;     /* sorted (strcmp), unique, valid bundle names */
	const uint8_t (*manifests)[32];   /* names[i]'s manifest object, from the top
					   * index the mount verified */
};

struct vmb_vfs_opts {
	int readonly;                 /* serve the store read-only */
	int private_store;            /* the store is this mount's alone (a URL mount's
				       * shadow store): its files are never looked at
				       * for changes made from outside */
	const struct vmb_log *log;    /* borrowed; must outlive the vfs */
	const char *aux_patterns;     /* "GLOB:GLOB"; NULL: the store's, or the defaults */
	unsigned idle_fds;            /* descriptors kept by idle nodes; 0: a quarter of
				       * the descriptor limit */
	int buffered_writes;          /* never write the backing with O_DIRECT (dio.h) */
	unsigned open_fds;            /* open files that keep their backing descriptors
				       * while unused; 0: an eighth of the limit */
	unsigned long lock_cap;       /* locks per process; 0: the default
				       * (VMB_LOCK_CAP_DEFAULT); (unsigned long)-1: none */
	const char *inuse_rule;       /* "any" or "aux"; NULL: the store's setting */
	/* Called (when set) from vmb_vfs_open when the kernel's cache of node ino is
	 * stale: pages = 1: its pages and attributes (a change made by someone else
	 * was found), 0: its attributes only (the file's pages are not kept). Called
	 * before the open is answered, never from a read, write or getattr. */
	void (*stale)(void *arg, uint64_t ino, int pages);
	void *stale_arg;
	/* Called (when set, with stale_arg) once the daemon itself removed the entry
	 * NAME of directory node PARENT, which the kernel may have cached (a snapshot
	 * deleted through the control socket): the kernel forgets it at once instead
	 * of at its timeout. Called with no lock of the vfs held, never from a FUSE
	 * request. */
	void (*gone)(void *arg, uint64_t parent, const char *name);
	unsigned lock_fds;            /* lock owners' descriptors per user but root;
				       * 0: a sixteenth of the limit */
	/* Remote images (issue 11): -o cache=DIR (NULL: the host's default),
	 * cache_max=BYTES (0: no limit), hard, cafile=FILE, pubkey=FILE. */
	const char *remote_cache;
	unsigned long long remote_cache_max;
	int remote_hard;
	const char *remote_cafile;
	const char *remote_pubkey;
	const struct vmb_vfs_lazy *lazy;   /* NULL: none (vmb_vfs_lazy) */
};

/* Waiting lock calls and their interruption (see lock.h). */
struct flock;

/* setattr's `valid` bits */
#define VMB_SET_MODE      (1 << 0)
#define VMB_SET_UID       (1 << 1)
#define VMB_SET_GID       (1 << 2)
#define VMB_SET_SIZE      (1 << 3)
#define VMB_SET_ATIME     (1 << 4)
#define VMB_SET_MTIME     (1 << 5)
#define VMB_SET_ATIME_NOW (1 << 6)
#define VMB_SET_MTIME_NOW (1 << 7)

int vmb_vfs_new(struct vmb_vfs **out, const char *store, const struct vmb_vfs_opts *o,
		struct vmb_err *err);
/* Remove the store at path and everything in it (the private shadow store of a
 * mount of a URL, at its unmount). */
int vmb_vfs_remove_store(const char *path, struct vmb_err *err);

/* Load the indexes of the store's remote images in the background (a mount of a
 * published store's URL: vmb_layers_preload_start; from the cache only, never the
 * network), so that the first stat or open of each finds it ready; with lazy
 * bundles (vmb_vfs_opts.lazy), whose pulls load their images' indexes, start the
 * fetcher of their URL. Call it in the
 * process that serves (after a daemon's fork); once. 0 or -errno (nothing started;
 * the mount works without it). */
int vmb_vfs_preload_remote(struct vmb_vfs *v, struct vmb_err *err);

/* Close every image (persisting maps) and free. NULL-safe. */
void vmb_vfs_free(struct vmb_vfs *v);
/* The mount is stopping: end every fetch from a remote now (reads waiting for the
 * network in hard mode fail with EIO), so that the calls in progress return. Any
 * thread; NULL-safe. */
void vmb_vfs_cancel(struct vmb_vfs *v);

int vmb_vfs_lookup(struct vmb_vfs *v, uint64_t parent, const char *name,
		   struct vmb_entry *e, struct vmb_err *err);
void vmb_vfs_forget(struct vmb_vfs *v, uint64_t ino, uint64_t nlookup);
int vmb_vfs_getattr(struct vmb_vfs *v, uint64_t ino, struct stat *st, struct vmb_err *err);
int vmb_vfs_setattr(struct vmb_vfs *v, const struct vmb_ctx *ctx, uint64_t ino,
		    struct vmb_file *f, const struct stat *attr, int valid, struct stat *out,
		    struct vmb_err *err);
int vmb_vfs_statfs(struct vmb_vfs *v, struct statvfs *st, struct vmb_err *err);

/* Namespace. Entries returned count as a lookup (the caller owes a forget). */
int vmb_vfs_mkdir(struct vmb_vfs *v, const struct vmb_ctx *ctx, uint64_t parent,
		  const char *name, mode_t mode, struct vmb_entry *e, struct vmb_err *err);
int vmb_vfs_mknod(struct vmb_vfs *v, const struct vmb_ctx *ctx, uint64_t parent,
		  const char *name, mode_t mode, dev_t rdev, struct vmb_entry *e,
		  struct vmb_err *err);
int vmb_vfs_symlink(struct vmb_vfs *v, const struct vmb_ctx *ctx, const char *target,
		    uint64_t parent, const char *name, struct vmb_entry *e, struct vmb_err *err);
/* A new name for a file (not a directory); a file of a bundle in use by another
 * process gets none (-EBUSY, as remove and rename): it would take the bundle's in-use
 * mark, or its aux storage, with it. */
int vmb_vfs_link(struct vmb_vfs *v, const struct vmb_ctx *ctx, uint64_t ino,
		 uint64_t newparent, const char *newname,
		 struct vmb_entry *e, struct vmb_err *err);
/* Removing or renaming anything in a bundle that is in use (its aux-storage file is
 * locked) fails with -EBUSY unless the caller is the holder. */
int vmb_vfs_unlink(struct vmb_vfs *v, const struct vmb_ctx *ctx, uint64_t parent,
		   const char *name, struct vmb_err *err);
int vmb_vfs_rmdir(struct vmb_vfs *v, const struct vmb_ctx *ctx, uint64_t parent,
		  const char *name, struct vmb_err *err);
/* flags: 0, RENAME_NOREPLACE, RENAME_EXCHANGE */
int vmb_vfs_rename(struct vmb_vfs *v, const struct vmb_ctx *ctx, uint64_t parent,
		   const char *name, uint64_t newparent, const char *newname, unsigned flags,
		   struct vmb_err *err);
/* Returns the target's length; buf (size bytes) gets the target, NUL-terminated. */
int vmb_vfs_readlink(struct vmb_vfs *v, uint64_t ino, char *buf, size_t size,
		     struct vmb_err *err);

/* Regular files. *keep_cache: 1 when the kernel's cached pages of the file are still
 * right (it changed only through this mount since they were read). Every open
 * checks the backing file for changes made by someone else (image.h), also when
 * the file is already open here; the kernel's cache is then dropped (opts.stale). */
int vmb_vfs_open(struct vmb_vfs *v, const struct vmb_ctx *ctx, uint64_t ino, int flags,
		 struct vmb_file **f, int *keep_cache, struct vmb_err *err);
int vmb_vfs_create(struct vmb_vfs *v, const struct vmb_ctx *ctx, uint64_t parent,
		   const char *name, mode_t mode, int flags, struct vmb_entry *e,
		   struct vmb_file **f, struct vmb_err *err);
ssize_t vmb_vfs_read(struct vmb_file *f, void *buf, size_t size, uint64_t off,
		     int *holes_only, struct vmb_err *err);
/* A read that may wait for the network (a remote base mounted with -o hard): the
 * FUSE adapter gives it a cancel token (base/cancel.h) around vmb_vfs_read. begin
 * makes c this thread's token for the reader pid (a thread id), end drops it;
 * interrupt (any thread, on FUSE INTERRUPT) makes the wait look again. A read the
 * token cancels returns -EINTR; the fetch goes on for other readers of the chunk. */
void vmb_vfs_read_cancel_begin(struct vmb_cancel *c, pid_t pid);
void vmb_vfs_read_cancel_end(void);
void vmb_vfs_read_interrupt(struct vmb_cancel *c);
/* When the range reads from one descriptor at its own offsets (all data of the
 * file's delta, or one run of a base layer's, vmb_image_read_fd): 1, with the
 * descriptor to read *n bytes from at off, valid until vmb_vfs_read_fd_done(h)
 * (which must follow: the descriptor is not parked meanwhile); else 0 (use
 * vmb_vfs_read). The hold h does not refer to f: once the reply is sent, the reader
 * may close the file and its release free f before the done (the release of the
 * last handle waits for the hold instead). */
struct vmb_read_hold {
	struct vmb_vfs *vfs;
	struct vmb_node *node;   /* NULL: nothing held */
};
int vmb_vfs_read_fd(struct vmb_file *f, uint64_t off, size_t size, int *fd, size_t *n,
		    struct vmb_read_hold *h);
void vmb_vfs_read_fd_done(struct vmb_read_hold *h);
/* When the range reads from descriptors in pieces (a remote base's cached chunks,
 * vmb_image_read_pieces): their number n (1..max), pc[0..n) covering the range (to
 * the end of the file) in order, valid until vmb_vfs_read_pieces_done (which must
 * follow); else 0 (use vmb_vfs_read). */
int vmb_vfs_read_pieces(struct vmb_file *f, uint64_t off, size_t size,
			struct vmb_base_piece *pc, int max);
void vmb_vfs_read_pieces_done(struct vmb_file *f, struct vmb_base_piece *pc, int n);
ssize_t vmb_vfs_write(struct vmb_file *f, const void *buf, size_t size, uint64_t off,
		      struct vmb_err *err);
/* 1 when f's writes may bypass the mount's page cache (the kernel's FOPEN_DIRECT_IO):
 * f is write-only (nothing can read or map through it), direct writes are on, and
 * the file has no set-user-ID or set-group-ID bit (which a write by an unprivileged
 * process must clear: only the kernel's cached write path does that). */
int vmb_vfs_uncached_writes(struct vmb_vfs *v, struct vmb_file *f);
/* 1 when the file is open through another handle too (whose cached pages a write
 * through an uncached handle must invalidate once it has landed). */
int vmb_vfs_shared_open(struct vmb_file *f);
int vmb_vfs_fsync(struct vmb_file *f, int datasync, struct vmb_err *err);
int vmb_vfs_fallocate(struct vmb_file *f, int mode, uint64_t off, uint64_t len,
		      struct vmb_err *err);
int vmb_vfs_lseek(struct vmb_file *f, uint64_t off, int whence, uint64_t *res,
		  struct vmb_err *err);
ssize_t vmb_vfs_copy_range(struct vmb_file *in, uint64_t off_in, struct vmb_file *out,
			   uint64_t off_out, size_t len, struct vmb_err *err);
/* Close (FLUSH): drops the POSIX locks of lock owner `owner`. */
void vmb_vfs_flush(struct vmb_vfs *v, struct vmb_file *f, uint64_t owner);
/* Last close (RELEASE): drops every lock taken through f, closes it. */
void vmb_vfs_release(struct vmb_vfs *v, struct vmb_file *f);

/* Advisory locks through the mount (POSIX and OFD arrive alike, by owner), mirrored
 * onto the backing file. wait NULL: never block (-EAGAIN on a conflict). */
int vmb_vfs_getlk(struct vmb_vfs *v, struct vmb_file *f, uint64_t owner, struct flock *fl,
		  struct vmb_err *err);
/* uid: the caller's; with f's open mode it decides whether the lock makes the
 * bundle in use (only a caller who could write the file: see lock.h). */
int vmb_vfs_setlk(struct vmb_vfs *v, struct vmb_file *f, uint64_t owner, pid_t pid,
		  uid_t uid, const struct flock *fl, struct vmb_lock_wait *wait,
		  struct vmb_err *err);
int vmb_vfs_flock(struct vmb_vfs *v, struct vmb_file *f, uint64_t owner, pid_t pid,
		  uid_t uid, int op, struct vmb_lock_wait *wait, struct vmb_err *err);
/* Interrupt a waiting setlk/flock call from another thread (vmb_lock_interrupt). */
void vmb_vfs_lock_interrupt(struct vmb_lock_wait *w);
/* The process (thread group) id of thread tid, from /proc; tid itself if unknown
 * (a flock request names the calling thread). */
pid_t vmb_vfs_tgid_of(pid_t tid);

/* Directories. fill() gets each entry with the offset of the next one; it returns
 * non-zero when the reply buffer is full (that entry is given again next time). */
typedef int (*vmb_fill_fn)(void *arg, const char *name, const struct stat *st,
			   uint64_t next_off);
int vmb_vfs_opendir(struct vmb_vfs *v, uint64_t ino, struct vmb_dir **d,
		    struct vmb_err *err);
int vmb_vfs_readdir(struct vmb_vfs *v, struct vmb_dir *d, uint64_t off, vmb_fill_fn fill,
		    void *arg, struct vmb_err *err);
int vmb_vfs_fsyncdir(struct vmb_dir *d, int datasync, struct vmb_err *err);
void vmb_vfs_releasedir(struct vmb_vfs *v, struct vmb_dir *d);

/* Extended attributes: user.* only. get/list return the size, or with size 0 the
 * size needed. */
ssize_t vmb_vfs_getxattr(struct vmb_vfs *v, uint64_t ino, const char *name, void *buf,
			 size_t size, struct vmb_err *err);
int vmb_vfs_setxattr(struct vmb_vfs *v, uint64_t ino, const char *name, const void *value,
		     size_t size, int flags, struct vmb_err *err);
ssize_t vmb_vfs_listxattr(struct vmb_vfs *v, uint64_t ino, char *buf, size_t size,
			  struct vmb_err *err);
int vmb_vfs_removexattr(struct vmb_vfs *v, uint64_t ino, const char *name,
			struct vmb_err *err);

/* Send a message to the vfs's log. */
const struct vmb_log *vmb_vfs_log(struct vmb_vfs *v);

#endif
