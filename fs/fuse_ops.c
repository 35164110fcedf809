/* fuse_ops.c - the FUSE low-level operations: unpack the request, call src/vfs,
 * reply exactly once. No filesystem logic lives here. */
#define FUSE_USE_VERSION 314
#include "config.h"
#include "fs/vmbfs.h"
#include "vfs/vfs.h"

#include <errno.h>
#include <fuse_lowlevel.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>

/* Attribute lifetimes. Every change reaches the store through this mount, and the
 * kernel drops its cached size, times and st_blocks itself after a write, fallocate
 * or copy_file_range, so attributes can be cached; a timeout of 0 would cost a
 * GETATTR round trip before every read. */
#define ENTRY_TIMEOUT 1.0
#define ATTR_TIMEOUT 1.0

/* Holes are answered from here: untouched .bss pages, all zeros, never written. */
static char zero_buf[VMB_FS_MAX_IO];

/* Data reads are spliced from the backing file (set once, in op_init). */
static int splice_reads;

static struct vmb_vfs *V(fuse_req_t req)
{
	return ((struct vmb_fs *)fuse_req_userdata(req))->vfs;
}

static double attr_timeout(const struct stat *st)
{
	return ATTR_TIMEOUT;
}

/* Failures the caller's errno fully explains are not logged; the rest are. */
static int worth_logging(int code)
{
	switch (code) {
	case ENOENT: case EEXIST: case ENOTEMPTY: case ENOTDIR: case EISDIR:
	case EACCES: case EPERM: case ENODATA: case ERANGE: case EINVAL:
	case ENAMETOOLONG: case ENXIO: case EXDEV: case EROFS: case EOPNOTSUPP:
	case EBADF: case ESTALE: case ENOSPC: case EDQUOT: case EFBIG: case ELOOP:
	case EMLINK: case EINTR: case EBUSY: case EAGAIN: case EDEADLK: case ENOLCK:
		return 0;
	default:
		return 1;
	}
}

static void reply_err(fuse_req_t req, int r, const struct vmb_err *err)
{
	int code = r < 0 ? -r : EIO;

	if (worth_logging(code)) {
		struct vmb_fs *fs = fuse_req_userdata(req);
		vmb_log_msg(&fs->log, "%s", err && err->msg[0] ? err->msg : strerror(code));
	}
	fuse_reply_err(req, code);
}

static void ctx_of(fuse_req_t req, struct vmb_ctx *c)
{
	const struct fuse_ctx *fc = fuse_req_ctx(req);

	c->uid = fc->uid;
	c->gid = fc->gid;
	c->pid = fc->pid;
	c->umask = fc->umask;   /* FUSE_CAP_DONT_MASK: the daemon applies it, once */
}

static void reply_entry(fuse_req_t req, const struct vmb_entry *e)
{
	struct fuse_entry_param p;

	memset(&p, 0, sizeof(p));
	p.ino = e->ino;
	p.generation = e->generation;
	p.attr = e->attr;
	p.attr_timeout = attr_timeout(&e->attr);
	p.entry_timeout = ENTRY_TIMEOUT;
	if (fuse_reply_entry(req, &p) == -ENOENT)   /* interrupted: give the lookup back */
		vmb_vfs_forget(V(req), e->ino, 1);
}

/* Reply with an entry, or the error. */
static void reply_entry_or_err(fuse_req_t req, int r, const struct vmb_entry *e,
			       const struct vmb_err *err)
{
	if (r < 0)
		reply_err(req, r, err);
	else
		reply_entry(req, e);
}

/* Reply success, or the error. */
static void reply_status(fuse_req_t req, int r, const struct vmb_err *err)
{
	if (r < 0)
		reply_err(req, r, err);
	else
		fuse_reply_err(req, 0);
}

/* libfuse splices a reply only when its pipe, which it grows at most to
 * /proc/sys/fs/pipe-max-size, holds the reply plus four pages; otherwise it falls
 * back to a fresh buffer per reply, slower than not splicing at all. */
static int pipes_fit_replies(void)
{
	FILE *fp = fopen("/proc/sys/fs/pipe-max-size", "re");
	unsigned long max = 0;

	if (fp) {
		if (fscanf(fp, "%lu", &max) != 1)
			max = 0;
		fclose(fp);
	}
	return max >= VMB_FS_MAX_SPLICE + 5 * 4096ul;
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	if (conn->capable & FUSE_CAP_ASYNC_READ)
		conn->want |= FUSE_CAP_ASYNC_READ;
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	/* The caller's umask comes with each request (ctx_of) and is applied once. */
	if (conn->capable & FUSE_CAP_DONT_MASK)
		conn->want |= FUSE_CAP_DONT_MASK;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS) {
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
		/* libfuse 3.14 does not send it: fuse_io.c adds it to this reply */
		__atomic_store_n(&((struct vmb_fs *)userdata)->patch_init,
				 ((struct vmb_fs *)userdata)->own_io, __ATOMIC_RELEASE);
	}
	/* Locks come to the daemon, which mirrors them onto the backing files. */
	if (conn->capable & FUSE_CAP_POSIX_LOCKS)
		conn->want |= FUSE_CAP_POSIX_LOCKS;
	if (conn->capable & FUSE_CAP_FLOCK_LOCKS)
		conn->want |= FUSE_CAP_FLOCK_LOCKS;
	conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE;
	/* Replies to reads of data are spliced from the backing file (op_read): the
	 * kernel moves page references instead of the daemon copying the bytes out
	 * and back. Requests are still read into buffers (the data of a write must be
	 * looked at for zeros). */
	conn->want &= ~(unsigned)(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE |
				  FUSE_CAP_SPLICE_MOVE);
	if ((conn->capable & FUSE_CAP_SPLICE_WRITE) && pipes_fit_replies())
		conn->want |= FUSE_CAP_SPLICE_WRITE;
	else
		vmb_log_msg(&((struct vmb_fs *)userdata)->log, "read replies are copied, not "
			    "spliced: %s", (conn->capable & FUSE_CAP_SPLICE_WRITE) ?
			    "/proc/sys/fs/pipe-max-size is below 1028 KiB" :
			    "the kernel cannot splice to FUSE");
	splice_reads = !!(conn->want & FUSE_CAP_SPLICE_WRITE);
	conn->max_write = VMB_FS_MAX_IO;
	conn->max_read = VMB_FS_MAX_SPLICE;   /* = the max_read mount option */
	conn->max_readahead = VMB_FS_MAX_IO;
	conn->max_background = 64;
	conn->congestion_threshold = 48;
}

static void op_destroy(void *userdata)
{
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct vmb_entry e;
	struct vmb_err err = {0};
	int r = vmb_vfs_lookup(V(req), parent, name, &e, &err);

	reply_entry_or_err(req, r, &e, &err);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	vmb_vfs_forget(V(req), ino, nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	size_t i;

	for (i = 0; i < count; i++)
		vmb_vfs_forget(V(req), forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vmb_err err = {0};
	struct stat st;
	int r = vmb_vfs_getattr(V(req), ino, &st, &err);

	if (r < 0)
		reply_err(req, r, &err);
	else
		fuse_reply_attr(req, &st, attr_timeout(&st));
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	struct vmb_err err = {0};
	struct vmb_ctx ctx;
	struct stat st;
	int valid = 0, r;

	ctx_of(req, &ctx);
	if (to_set & FUSE_SET_ATTR_MODE) valid |= VMB_SET_MODE;
	if (to_set & FUSE_SET_ATTR_UID) valid |= VMB_SET_UID;
	if (to_set & FUSE_SET_ATTR_GID) valid |= VMB_SET_GID;
	if (to_set & FUSE_SET_ATTR_SIZE) valid |= VMB_SET_SIZE;
	if (to_set & FUSE_SET_ATTR_ATIME) valid |= VMB_SET_ATIME;
	if (to_set & FUSE_SET_ATTR_MTIME) valid |= VMB_SET_MTIME;
	if (to_set & FUSE_SET_ATTR_ATIME_NOW) valid |= VMB_SET_ATIME_NOW;
	if (to_set & FUSE_SET_ATTR_MTIME_NOW) valid |= VMB_SET_MTIME_NOW;
	r = vmb_vfs_setattr(V(req), &ctx, ino, fi ? (struct vmb_file *)(uintptr_t)fi->fh : NULL,
			    attr, valid, &st, &err);
	if (r < 0)
		reply_err(req, r, &err);
	else
		fuse_reply_attr(req, &st, attr_timeout(&st));
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	char buf[PATH_MAX + 1];
	struct vmb_err err = {0};
	int r = vmb_vfs_readlink(V(req), ino, buf, sizeof(buf), &err);

	if (r < 0)
		reply_err(req, r, &err);
	else
		fuse_reply_readlink(req, buf);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		     dev_t rdev)
{
	struct vmb_err err = {0};
	struct vmb_entry e;
	struct vmb_ctx ctx;
	int r;

	ctx_of(req, &ctx);
	r = vmb_vfs_mknod(V(req), &ctx, parent, name, mode, rdev, &e, &err);
	reply_entry_or_err(req, r, &e, &err);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct vmb_err err = {0};
	struct vmb_entry e;
	struct vmb_ctx ctx;
	int r;

	ctx_of(req, &ctx);
	r = vmb_vfs_mkdir(V(req), &ctx, parent, name, mode, &e, &err);
	reply_entry_or_err(req, r, &e, &err);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	struct vmb_err err = {0};
	struct vmb_entry e;
	struct vmb_ctx ctx;
	int r;

	ctx_of(req, &ctx);
	r = vmb_vfs_symlink(V(req), &ctx, link, parent, name, &e, &err);
	reply_entry_or_err(req, r, &e, &err);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct vmb_err err = {0};
	struct vmb_entry e;
	struct vmb_ctx ctx;
	int r;

	ctx_of(req, &ctx);
	r = vmb_vfs_link(V(req), &ctx, ino, newparent, newname, &e, &err);
	reply_entry_or_err(req, r, &e, &err);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct vmb_err err = {0};
	struct vmb_ctx ctx;
	int r;

	ctx_of(req, &ctx);
	r = vmb_vfs_unlink(V(req), &ctx, parent, name, &err);

	reply_status(req, r, &err);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct vmb_err err = {0};
	struct vmb_ctx ctx;
	int r;

	ctx_of(req, &ctx);
	r = vmb_vfs_rmdir(V(req), &ctx, parent, name, &err);

	reply_status(req, r, &err);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		      fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	struct vmb_err err = {0};
	struct vmb_ctx ctx;
	int r;

	ctx_of(req, &ctx);
	r = vmb_vfs_rename(V(req), &ctx, parent, name, newparent, newname, flags, &err);

	reply_status(req, r, &err);
}

void vmb_fs_stale(void *arg, uint64_t ino, int pages)
{
	struct vmb_fs *fs = arg;

	if (fs->se)
		fuse_lowlevel_notify_inval_inode(fs->se, (fuse_ino_t)ino, pages ? 0 : -1, 0);
}

void vmb_fs_gone(void *arg, uint64_t parent, const char *name)
{
	struct vmb_fs *fs = arg;

	if (fs->se)
		fuse_lowlevel_notify_inval_entry(fs->se, (fuse_ino_t)parent, name, strlen(name));
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vmb_err err = {0};
	struct vmb_file *f;
	struct vmb_ctx ctx;
	int keep, r;

	ctx_of(req, &ctx);
	r = vmb_vfs_open(V(req), &ctx, ino, fi->flags, &f, &keep, &err);
	if (r < 0) {
		reply_err(req, r, &err);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)f;
	fi->keep_cache = keep;
	fi->direct_io = vmb_vfs_uncached_writes(V(req), f);
	if (fuse_reply_open(req, fi) == -ENOENT)
		vmb_vfs_release(V(req), f);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	struct vmb_err err = {0};
	struct fuse_entry_param p;
	struct vmb_entry e;
	struct vmb_file *f;
	struct vmb_ctx ctx;
	int r;

	ctx_of(req, &ctx);
	r = vmb_vfs_create(V(req), &ctx, parent, name, mode, fi->flags, &e, &f, &err);
	if (r < 0) {
		reply_err(req, r, &err);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)f;
	fi->direct_io = vmb_vfs_uncached_writes(V(req), f);
	memset(&p, 0, sizeof(p));
	p.ino = e.ino;
	p.generation = e.generation;
	p.attr = e.attr;
	p.attr_timeout = attr_timeout(&e.attr);
	p.entry_timeout = ENTRY_TIMEOUT;
	if (fuse_reply_create(req, &p, fi) == -ENOENT) {
		vmb_vfs_release(V(req), f);
		vmb_vfs_forget(V(req), e.ino, 1);
	}
}

/* Each worker thread reads into a buffer of its own, kept for the thread's life: a
 * fresh 1 MiB allocation per request costs page faults on every request. */
static pthread_key_t read_buf_key;
static pthread_once_t read_buf_once = PTHREAD_ONCE_INIT;
static int read_buf_key_ok;

static void make_read_buf_key(void)
{
	read_buf_key_ok = pthread_key_create(&read_buf_key, free) == 0;
}

static char *read_buf(void)
{
	char *b;

	pthread_once(&read_buf_once, make_read_buf_key);
	if (!read_buf_key_ok)
		return NULL;
	b = pthread_getspecific(read_buf_key);
	if (!b && (b = malloc(VMB_FS_MAX_IO)) && pthread_setspecific(read_buf_key, b) != 0) {
		free(b);
		b = NULL;
	}
	return b;
}

static void interrupt_read(fuse_req_t req, void *data)
{
	vmb_vfs_read_interrupt(data);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct vmb_file *f = (struct vmb_file *)(uintptr_t)fi->fh;
	struct vmb_err err = {0};
	int holes_only;
	ssize_t n;
	char *buf;

	if (size > VMB_FS_MAX_IO)
		size = VMB_FS_MAX_IO;
	if (splice_reads && off >= 0 && size <= VMB_FS_MAX_SPLICE) {
		int fd;
		size_t len;
		struct vmb_read_hold h;
		if (vmb_vfs_read_fd(f, (uint64_t)off, size, &fd, &len, &h)) {
			struct fuse_bufvec bv = FUSE_BUFVEC_INIT(len);
			bv.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
			bv.buf[0].fd = fd;
			bv.buf[0].pos = off;
			fuse_reply_data(req, &bv, 0);
			vmb_vfs_read_fd_done(&h);   /* f may be released by now: not used */
			return;
		}
		if (vmb_fs_reply_pieces(req, f, size, off))
			return;
	}
	buf = read_buf();
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (((struct vmb_fs *)fuse_req_userdata(req))->hard) {
		/* it may wait for the network: a signal to the reader ends the wait
		 * (vfs.h, base/cancel.h); the interrupt function is gone before the
		 * token when fuse_req_interrupt_func(NULL) returns */
		struct vmb_cancel tok;

		vmb_vfs_read_cancel_begin(&tok, fuse_req_ctx(req)->pid);
		fuse_req_interrupt_func(req, interrupt_read, &tok);
		n = vmb_vfs_read(f, buf, size, (uint64_t)off, &holes_only, &err);
		fuse_req_interrupt_func(req, NULL, NULL);
		vmb_vfs_read_cancel_end();
	} else
		n = vmb_vfs_read(f, buf, size, (uint64_t)off, &holes_only, &err);
	if (n < 0)
		reply_err(req, (int)n, &err);
	else
		fuse_reply_buf(req, holes_only ? zero_buf : buf, (size_t)n);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
		     off_t off, struct fuse_file_info *fi)
{
	struct vmb_file *f = (struct vmb_file *)(uintptr_t)fi->fh;
	struct vmb_err err = {0};
	ssize_t n = vmb_vfs_write(f, buf, size, (uint64_t)off, &err);

	/* A write through an uncached handle: the kernel dropped the range from the
	 * mount's page cache before sending it, but another handle's reader may have
	 * read it back in since; drop it again now that the write is in. */
	if (n > 0 && fi->direct_io && vmb_vfs_shared_open(f))
		fuse_lowlevel_notify_inval_inode(((struct vmb_fs *)fuse_req_userdata(req))->se,
						 ino, off, n);
	if (n < 0)
		reply_err(req, (int)n, &err);
	else
		fuse_reply_write(req, (size_t)n);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	vmb_vfs_flush(V(req), (struct vmb_file *)(uintptr_t)fi->fh, fi->lock_owner);
	fuse_reply_err(req, 0);
}

static void interrupt_waiter(fuse_req_t req, void *data)
{
	vmb_vfs_lock_interrupt(data);
}

static void op_getlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		     struct flock *lock)
{
	struct vmb_err err = {0};
	int r = vmb_vfs_getlk(V(req), (struct vmb_file *)(uintptr_t)fi->fh, fi->lock_owner,
			      lock, &err);

	if (r < 0)
		reply_err(req, r, &err);
	else
		fuse_reply_lock(req, lock);
}

/* A lock call that must wait never holds a libfuse worker: if it cannot be granted
 * at once, a thread of its own waits and replies, so any number of waiters leave the
 * mount serving. A signal to the caller makes the kernel send INTERRUPT, and the
 * waiting thread is woken with VMB_FS_WAKE_SIGNAL. */
struct vmb_fs_waiter {
	struct vmb_fs_waiter *next;
	struct vmb_lock_wait w;
};

struct lock_job {
	fuse_req_t req;
	struct vmb_vfs *vfs;
	struct vmb_file *f;
	uint64_t owner;
	pid_t pid;
	uid_t uid;
	struct flock fl;
	int is_flock, op;
	struct vmb_fs_waiter me;   /* on fs->waiters from before its thread starts */
};

static int do_lock(struct lock_job *j, struct vmb_lock_wait *w, struct vmb_err *err)
{
	if (j->is_flock)
		return vmb_vfs_flock(j->vfs, j->f, j->owner, j->pid, j->uid, j->op, w, err);
	return vmb_vfs_setlk(j->vfs, j->f, j->owner, j->pid, j->uid, &j->fl, w, err);
}

/* Put j on fs->waiters (set_lock, before its thread exists: vmb_fs_stop_waiters
 * then waits for it, even when the session ends before that thread runs). */
static void waiter_add(struct vmb_fs *fs, struct lock_job *j)
{
	j->me.w.signo = VMB_FS_WAKE_SIGNAL;
	pthread_mutex_lock(&fs->wlock);
	j->me.next = fs->waiters;
	fs->waiters = &j->me;
	fs->nwaiters++;
	pthread_mutex_unlock(&fs->wlock);
}

/* Runs in a thread of its own (or in the worker when none could be made); j is
 * already on fs->waiters (waiter_add). Replies, leaves the list, frees j. */
static void *lock_waiter(void *arg)
{
	struct lock_job *j = arg;
	struct vmb_fs *fs = fuse_req_userdata(j->req);
	struct vmb_fs_waiter **pp;
	struct vmb_err err = {0};
	sigset_t wake;
	int r;

	sigemptyset(&wake);
	sigaddset(&wake, VMB_FS_WAKE_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &wake, NULL);
	pthread_mutex_lock(&fs->wlock);   /* read by vmb_fs_stop_waiters under it */
	j->me.w.thread = pthread_self();
	pthread_mutex_unlock(&fs->wlock);

	fuse_req_interrupt_func(j->req, interrupt_waiter, &j->me.w);
	r = do_lock(j, &j->me.w, &err);
	fuse_req_interrupt_func(j->req, NULL, NULL);
	reply_status(j->req, r, &err);

	pthread_mutex_lock(&fs->wlock);
	for (pp = &fs->waiters; *pp; pp = &(*pp)->next) {
		if (*pp == &j->me) {
			*pp = j->me.next;
			break;
		}
	}
	if (--fs->nwaiters == 0)
		pthread_cond_broadcast(&fs->wdone);
	pthread_mutex_unlock(&fs->wlock);
	free(j);
	return NULL;
}

void vmb_fs_deadline(struct timespec *t, long ms)
{
	clock_gettime(CLOCK_REALTIME, t);
	t->tv_sec += ms / 1000;
	t->tv_nsec += (ms % 1000) * 1000000L;
	t->tv_sec += t->tv_nsec / 1000000000L;
	t->tv_nsec %= 1000000000L;
}

void vmb_fs_stop_waiters(struct vmb_fs *fs)
{
	struct vmb_fs_waiter *w;

	pthread_mutex_lock(&fs->wlock);
	while (fs->nwaiters) {
		for (w = fs->waiters; w; w = w->next)
			w->w.interrupted = 1;
		for (w = fs->waiters; w; w = w->next)
			if (w->w.waiting)
				pthread_kill(w->w.thread, w->w.signo);
		{
			struct timespec t;
			vmb_fs_deadline(&t, 10);
			pthread_cond_timedwait(&fs->wdone, &fs->wlock, &t);
		}
	}
	pthread_mutex_unlock(&fs->wlock);
}

static void set_lock(fuse_req_t req, struct fuse_file_info *fi, const struct flock *lock,
		     int is_flock, int op, int sleep)
{
	struct vmb_err err = {0};
	struct lock_job *j;
	pthread_attr_t attr;
	pthread_t t;
	int r;

	j = calloc(1, sizeof(*j));
	if (!j) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	j->req = req;
	j->vfs = V(req);
	j->f = (struct vmb_file *)(uintptr_t)fi->fh;
	j->owner = fi->lock_owner;
	j->is_flock = is_flock;
	j->op = op;
	j->uid = fuse_req_ctx(req)->uid;
	if (is_flock) {   /* the request carries the calling thread's id */
		j->pid = vmb_vfs_tgid_of(fuse_req_ctx(req)->pid);
	} else {
		j->fl = *lock;
		j->pid = lock->l_pid > 0 ? lock->l_pid : vmb_vfs_tgid_of(fuse_req_ctx(req)->pid);
	}
	r = do_lock(j, NULL, &err);
	if (r == -EAGAIN && sleep) {
		waiter_add(fuse_req_userdata(req), j);
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		pthread_attr_setstacksize(&attr, 256 * 1024);
		r = pthread_create(&t, &attr, lock_waiter, j);
		pthread_attr_destroy(&attr);
		if (r == 0)
			return;   /* the waiter replies */
		lock_waiter(j);   /* no thread to be had: wait here */
		return;
	}
	free(j);
	reply_status(req, r, &err);
}

static void op_setlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		     struct flock *lock, int sleep)
{
	set_lock(req, fi, lock, 0, 0, sleep);
}

static void op_flock(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, int op)
{
	set_lock(req, fi, NULL, 1, op & ~LOCK_NB, !(op & LOCK_NB));
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	vmb_vfs_release(V(req), (struct vmb_file *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct vmb_err err = {0};
	int r = vmb_vfs_fsync((struct vmb_file *)(uintptr_t)fi->fh, datasync, &err);

	reply_status(req, r, &err);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vmb_err err = {0};
	struct vmb_dir *d;
	int r = vmb_vfs_opendir(V(req), ino, &d, &err);

	if (r < 0) {
		reply_err(req, r, &err);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)d;
	if (fuse_reply_open(req, fi) == -ENOENT)
		vmb_vfs_releasedir(V(req), d);
}

struct dirbuf {
	fuse_req_t req;
	char *buf;
	size_t size, used;
};

static int fill_dir(void *arg, const char *name, const struct stat *st, uint64_t next)
{
	struct dirbuf *b = arg;
	size_t n = fuse_add_direntry(b->req, b->buf + b->used, b->size - b->used, name, st,
				     (off_t)next);

	if (n > b->size - b->used)
		return 1;
	b->used += n;
	return 0;
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	struct vmb_err err = {0};
	struct dirbuf b = { .req = req, .size = size };
	int r;

	b.buf = malloc(size ? size : 1);
	if (!b.buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	r = vmb_vfs_readdir(V(req), (struct vmb_dir *)(uintptr_t)fi->fh, (uint64_t)off,
			    fill_dir, &b, &err);
	if (r < 0 && b.used == 0)
		reply_err(req, r, &err);
	else
		fuse_reply_buf(req, b.buf, b.used);
	free(b.buf);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	vmb_vfs_releasedir(V(req), (struct vmb_dir *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
			struct fuse_file_info *fi)
{
	struct vmb_err err = {0};
	int r = vmb_vfs_fsyncdir((struct vmb_dir *)(uintptr_t)fi->fh, datasync, &err);

	reply_status(req, r, &err);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct vmb_err err = {0};
	struct statvfs st;
	int r = vmb_vfs_statfs(V(req), &st, &err);

	if (r < 0)
		reply_err(req, r, &err);
	else
		fuse_reply_statfs(req, &st);
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			size_t size, int flags)
{
	struct vmb_err err = {0};
	int r = vmb_vfs_setxattr(V(req), ino, name, value, size, flags, &err);

	reply_status(req, r, &err);
}

static void reply_xattr_data(fuse_req_t req, ssize_t r, size_t size, const char *buf,
			     const struct vmb_err *err)
{
	if (r < 0)
		reply_err(req, (int)r, err);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)r);
	else
		fuse_reply_buf(req, buf, (size_t)r);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct vmb_err err = {0};
	char *buf = size ? malloc(size) : NULL;
	ssize_t r;

	if (size && !buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	r = vmb_vfs_getxattr(V(req), ino, name, buf, size, &err);
	reply_xattr_data(req, r, size, buf, &err);
	free(buf);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct vmb_err err = {0};
	char *buf = size ? malloc(size) : NULL;
	ssize_t r;

	if (size && !buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	r = vmb_vfs_listxattr(V(req), ino, buf, size, &err);
	reply_xattr_data(req, r, size, buf, &err);
	free(buf);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct vmb_err err = {0};
	int r = vmb_vfs_removexattr(V(req), ino, name, &err);

	reply_status(req, r, &err);
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset,
			 off_t length, struct fuse_file_info *fi)
{
	struct vmb_err err = {0};
	int r;

	if (offset < 0 || length <= 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	r = vmb_vfs_fallocate((struct vmb_file *)(uintptr_t)fi->fh, mode, (uint64_t)offset,
			      (uint64_t)length, &err);
	reply_status(req, r, &err);
}

static void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		     struct fuse_file_info *fi)
{
	struct vmb_err err = {0};
	uint64_t res;
	int r;

	if (off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	r = vmb_vfs_lseek((struct vmb_file *)(uintptr_t)fi->fh, (uint64_t)off, whence, &res,
			  &err);
	if (r < 0)
		reply_err(req, r, &err);
	else
		fuse_reply_lseek(req, (off_t)res);
}

static void op_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
			       struct fuse_file_info *fi_in, fuse_ino_t ino_out,
			       off_t off_out, struct fuse_file_info *fi_out, size_t len,
			       int flags)
{
	struct vmb_err err = {0};
	ssize_t n;

	if (flags) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	n = vmb_vfs_copy_range((struct vmb_file *)(uintptr_t)fi_in->fh, (uint64_t)off_in,
			       (struct vmb_file *)(uintptr_t)fi_out->fh, (uint64_t)off_out,
			       len, &err);
	if (n < 0)
		reply_err(req, (int)n, &err);
	else
		fuse_reply_write(req, (size_t)n);
}

const struct fuse_lowlevel_ops vmb_fuse_ops = {
	.init = op_init,
	.destroy = op_destroy,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.readlink = op_readlink,
	.mknod = op_mknod,
	.mkdir = op_mkdir,
	.symlink = op_symlink,
	.link = op_link,
	.unlink = op_unlink,
	.rmdir = op_rmdir,
	.rename = op_rename,
	.open = op_open,
	.create = op_create,
	.read = op_read,
	.write = op_write,
	.flush = op_flush,
	.getlk = op_getlk,
	.setlk = op_setlk,
	.flock = op_flock,
	.release = op_release,
	.fsync = op_fsync,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.releasedir = op_releasedir,
	.fsyncdir = op_fsyncdir,
	.statfs = op_statfs,
	.setxattr = op_setxattr,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.removexattr = op_removexattr,
	.fallocate = op_fallocate,
	.lseek = op_lseek,
	.copy_file_range = op_copy_file_range,
};
