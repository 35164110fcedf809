/* vfs_file.c - open regular files: images shared per inode (see vfs.h). */
#include "config.h"
#include "vfs/vfs_int.h"
#include "map/sidecar.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Open the backing file for an image: read-write unless the store is read-only or
 * the file cannot be opened for writing. */
static int open_backing(struct vmb_vfs *v, struct vmb_node *n, struct vmb_err *err)
{
	char proc[64];
	int fd;

	vmb_node_procpath(n, proc);
	if (!v->readonly) {
		fd = open(proc, O_RDWR | O_CLOEXEC);
		if (fd >= 0)
			return fd;
		if (errno != EACCES && errno != EROFS && errno != EPERM)
			return vmb_err_sys(err, errno, "cannot open backing file");
	}
	fd = open(proc, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return vmb_err_sys(err, errno, "cannot open backing file");
	return fd;
}

int vmb_node_image_get(struct vmb_vfs *v, struct vmb_node *n, int backing_fd,
		       struct vmb_image **img, int *was_open, struct vmb_err *err)
{
	char rel[PATH_MAX];
	int r = 0;

	pthread_mutex_lock(&n->ilock);
again:
	*was_open = n->img != NULL;
	if (!n->img) {
		int fd = backing_fd >= 0 ? backing_fd : open_backing(v, n, err);
		if (fd < 0) {
			r = fd;
			goto out;
		}
		backing_fd = -1;
		vmb_node_relpath(v, n, rel, sizeof(rel));
		r = vmb_image_open2(&n->img, fd, v->store.mapfd, rel, v->log, &v->resolver, err);
		if (r < 0) {
			close(fd);
			goto out;
		}
		vmb_image_set_direct_writes(n->img, v->direct_writes);
		vmb_image_set_private(n->img, v->private_store);
		vmb_fds_added(v, n, n->img);
	} else {
		/* Open already: the backing file may have been changed by someone else
		 * since (another mount, a writer in the store). Its descriptor may be
		 * parked. ilock may be let go while the image is busy: closed
		 * meanwhile, it is opened afresh. */
		int dropped;
		r = vmb_fds_hold_ilocked(v, n, &dropped, err);
		if (r < 0 && dropped && !n->img) {
			vmb_err_clear(err);
			goto again;
		}
		if (r < 0)
			goto out;
		r = vmb_image_revalidate(n->img, 0, err);
		vmb_fds_unhold(v, n);
		if (r < 0)
			goto out;
		r = 0;
	}
	n->opens++;
	*img = n->img;
out:
	pthread_mutex_unlock(&n->ilock);
	if (backing_fd >= 0)
		close(backing_fd);
	if (r == 0) {   /* the handle's reference; the caller already holds a ref */
		pthread_mutex_lock(&v->tlock);
		n->handles++;
		pthread_mutex_unlock(&v->tlock);
		if (!*was_open) {
			vmb_fds_limits(v);   /* the limit may have changed (prlimit) */
			vmb_fds_trim(v);
		}
	}
	return r;
}

void vmb_node_image_put(struct vmb_vfs *v, struct vmb_node *n)
{
	struct vmb_image *img = NULL;
	struct vmb_err err;
	int held;

	/* The last close saves the map from the backing descriptor: reopen it if
	 * parked (when that fails, the map is saved at the next open, rebuilt). */
	vmb_err_clear(&err);
	held = vmb_fds_hold_alone(v, n, &err) == 0;
	pthread_mutex_lock(&n->ilock);
	if (--n->opens == 0) {
		struct vmb_stamp st;
		img = n->img;
		n->img = NULL;
		vmb_fds_removed(v, n);
		held = 0;
		/* Remember what the kernel's cached pages correspond to: the stamp the
		 * map was last checked against, unless a change by someone else was found
		 * since the pages were read. */
		vmb_image_settle(img);
		n->cache_valid = !vmb_image_take_foreign(img) && vmb_image_stamp(img, &st) == 0;
		if (n->cache_valid) {
			n->cache_mtime.tv_sec = (time_t)st.mtime_sec;
			n->cache_mtime.tv_nsec = (long)st.mtime_nsec;
			n->cache_size = (off_t)st.size;
		}
		vmb_image_close(img);
	} else if (held) {   /* under ilock: the last close must not meet this hold */
		vmb_fds_unhold_alone(v, n);
	}
	pthread_mutex_unlock(&n->ilock);
	if (held)
		vmb_fds_trim(v);
	vmb_node_unhandle(v, n);
}

/* May the kernel keep the pages it cached of n, for a handle just opened on img?
 * Sets *stale when they are known to be out of date. Caller holds n->ilock. */
static int cache_still_valid(struct vmb_node *n, struct vmb_image *img, int was_open,
			     int *stale)
{
	struct vmb_stamp st;

	*stale = 0;
	if (was_open) {   /* the pages follow this image's own changes */
		*stale = vmb_image_take_foreign(img);
		return !*stale;
	}
	if (!n->cache_valid)
		return 0;
	if (vmb_image_stamp(img, &st) == 0 && st.mtime_sec == n->cache_mtime.tv_sec &&
	    st.mtime_nsec == (uint64_t)n->cache_mtime.tv_nsec && st.size == (uint64_t)n->cache_size)
		return 1;
	*stale = 1;   /* changed since the last close here */
	return 0;
}

static int file_new(struct vmb_vfs *v, struct vmb_node *n, int backing_fd, int flags,
		    struct vmb_file **out, int *keep_cache, struct vmb_err *err)
{
	struct vmb_file *f;
	int was_open, r;

	*out = NULL;
	f = calloc(1, sizeof(*f));
	if (!f) {
		if (backing_fd >= 0)
			close(backing_fd);
		return vmb_err_set(err, ENOMEM, "out of memory");
	}
	r = vmb_node_image_get(v, n, backing_fd, &f->img, &was_open, err);
	if (r < 0) {
		free(f);
		return r;
	}
	f->vfs = v;
	if (keep_cache && vmb_fds_hold(v, n, NULL) == 0) {   /* it may be parked */
		struct vmb_stamp st;
		int stale, old_attr = 0;
		pthread_mutex_lock(&n->ilock);
		*keep_cache = cache_still_valid(n, f->img, was_open, &stale);
		/* Pages not kept are dropped by the kernel at this open, but not its
		 * attributes (the size), which may be older than the file when it was
		 * not open here since they were given (after a close here, any change
		 * by someone else makes the cache stale). */
		if (!stale && !was_open && !n->cache_valid && n->attr_ok &&
		    vmb_image_stamp(f->img, &st) == 0)
			old_attr = st.size != (uint64_t)n->attr_size ||
				   st.mtime_sec != n->attr_mtime.tv_sec ||
				   st.mtime_nsec != (uint64_t)n->attr_mtime.tv_nsec;
		/* st_blocks may differ with the same stamp: the map loaded here was
		 * rebuilt (another mount saved another one meanwhile, or none yet, and a
		 * rebuild from the backing file may count preallocated blocks otherwise) */
		if (!stale && !was_open && n->attr_ok &&
		    (blkcnt_t)(vmb_image_alloc_bytes(f->img) / 512) != n->attr_blocks)
			old_attr = 1;
		pthread_mutex_unlock(&n->ilock);
		vmb_fds_unhold(v, n);
		if ((stale || old_attr) && v->stale)
			v->stale(v->stale_arg, vmb_node_id(v, n), stale);
	} else if (keep_cache) {
		*keep_cache = 0;
	}
	f->node = n;
	f->flags = flags;
	if ((flags & O_ACCMODE) != O_RDONLY && !vmb_image_writable(f->img)) {
		vmb_node_image_put(v, n);
		free(f);
		return v->readonly ? -EROFS : -EACCES;
	}
	if ((flags & O_TRUNC) && (flags & O_ACCMODE) != O_RDONLY) {
		r = vmb_fds_hold(v, n, err);
		if (r == 0) {
			r = vmb_image_truncate(f->img, 0, err);
			vmb_fds_unhold(v, n);
		}
		if (r < 0) {
			vmb_node_image_put(v, n);
			free(f);
			return r;
		}
		if (keep_cache)
			*keep_cache = 0;
	}
	vmb_open_link(&v->filemu, &v->files, &f->link, f);
	*out = f;
	return 0;
}

int vmb_vfs_open(struct vmb_vfs *v, const struct vmb_ctx *ctx, uint64_t ino, int flags,
		 struct vmb_file **f, int *keep_cache, struct vmb_err *err)
{
	struct vmb_node *n;
	int r;

	if (vmb_snapview_is(ino)) {
		struct vmb_image *img;
		*f = calloc(1, sizeof(**f));
		if (!*f)
			return vmb_err_set(err, ENOMEM, "out of memory");
		r = vmb_snapview_open(v, ino, flags, &img, err);
		if (r < 0) {
			free(*f);
			*f = NULL;
			return r;
		}
		(*f)->vfs = v;
		(*f)->img = img;
		(*f)->flags = flags;
		(*f)->sv = ino;
		*keep_cache = 1;   /* a snapshot never changes */
		vmb_open_link(&v->filemu, &v->files, &(*f)->link, *f);
		return 0;
	}
	r = vmb_node_get(v, ino, &n);
	if (r < 0)
		return r;
	if (!S_ISREG(n->type))
		r = S_ISDIR(n->type) ? -EISDIR : -EINVAL;
	else if (vmb_node_gone_outside(n))
		r = -ESTALE;   /* opened by a stale name: walked again */
	else if (v->readonly && (flags & O_ACCMODE) != O_RDONLY)
		r = -EROFS;
	else if ((flags & O_TRUNC) && (flags & O_ACCMODE) != O_RDONLY &&
		 (r = vmb_check_node_not_in_use(v, n, ctx, "truncate", err)) < 0)
		;
	else if ((flags & O_TRUNC) && (flags & O_ACCMODE) != O_RDONLY) {
		vmb_change_begin(v, n, NULL);   /* a truncate */
		r = file_new(v, n, -1, flags, f, keep_cache, err);
		vmb_change_end(v, n);
	} else
		r = file_new(v, n, -1, flags, f, keep_cache, err);
	vmb_node_put(v, n);
	return r;
}

int vmb_vfs_uncached_writes(struct vmb_vfs *v, struct vmb_file *f)
{
	struct stat st;
	int r;

	if ((f->flags & O_ACCMODE) != O_WRONLY || !v->direct_writes || v->readonly || f->sv)
		return 0;
	if (vmb_node_ref(v, f->node) < 0)   /* its descriptor may be parked */
		return 0;
	r = fstatat(f->node->fd, "", &st, AT_EMPTY_PATH);
	vmb_node_put(v, f->node);
	return r == 0 && !(st.st_mode & (S_ISUID | S_ISGID));
}

int vmb_vfs_shared_open(struct vmb_file *f)
{
	int shared;

	if (f->sv)
		return 0;
	pthread_mutex_lock(&f->node->ilock);
	shared = f->node->opens > 1;
	pthread_mutex_unlock(&f->node->ilock);
	return shared;
}

/* Undo a create that failed after the file was made: remove the name, unless it no
 * longer names the file made (someone renamed another file over it since). */
static void unmake(struct vmb_vfs *v, struct vmb_node *p, const char *name,
		   const struct stat *made)
{
	struct stat st;

	if (fstatat(p->fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    st.st_dev == made->st_dev && st.st_ino == made->st_ino &&
	    unlinkat(p->fd, name, 0) < 0)
		vmb_log_msg(v->log, "cannot remove '%s' after a failed create: %s", name,
			    strerror(errno));
}

int vmb_vfs_create(struct vmb_vfs *v, const struct vmb_ctx *ctx, uint64_t parent,
		   const char *name, mode_t mode, int flags, struct vmb_entry *e,
		   struct vmb_file **f, struct vmb_err *err)
{
	struct vmb_as_caller as;
	struct vmb_node *p, *n = NULL;
	struct stat made;
	char proc[64];
	int fd, pfd, r;

	*f = NULL;
	r = vmb_node_get(v, parent, &p);
	if (r < 0)
		return r;
	vmb_change_begin(v, p, name);
	r = vmb_check_new_name(v, p, name, 0, err);
	if (r < 0)
		goto out;
	/* Always O_EXCL: a name that exists now (made through another mount or in the
	 * store since the kernel's lookup) is EEXIST, never opened for the caller. */
	r = vmb_as_caller_begin(ctx, &as, err);
	if (r < 0)
		goto out;
	fd = openat(p->fd, name, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC | O_NOFOLLOW,
		    mode & 07777 & ~ctx->umask);
	vmb_as_caller_end(&as);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	if (fstat(fd, &made) < 0) {
		r = vmb_err_sys(err, errno, "cannot stat new file '%s'", name);
		close(fd);
		goto out;
	}
	/* Every later step works on the file made, through its descriptor. */
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	pfd = open(proc, O_PATH | O_CLOEXEC);
	if (pfd < 0) {
		r = vmb_err_sys(err, errno, "cannot create '%s'", name);
		close(fd);
		goto undo;
	}
	r = vmb_node_lookup_fd(v, p, pfd, name, e, err);
	if (r < 0) {
		close(fd);
		goto undo;
	}
	n = (struct vmb_node *)(uintptr_t)e->ino;
	r = vmb_node_ref(v, n);
	if (r < 0) {
		close(fd);
		vmb_vfs_forget(v, e->ino, 1);
		goto undo;
	}
	if (v->create_fail > 0) {   /* test hook: as if the image could not be opened */
		close(fd);
		r = vmb_err_set(err, v->create_fail, "cannot create '%s': %s (test hook)", name,
				strerror(v->create_fail));
	} else {
		r = file_new(v, n, fd, flags, f, NULL, err);
	}
	if (r < 0) {
		vmb_node_put(v, n);
		vmb_vfs_forget(v, e->ino, 1);
		goto undo;
	}
	/* The entry's attributes must show the image's view. Before the reference
	 * goes: a node no call holds may be parked at any time (its descriptor
	 * closed under tlock by another call's vmb_node_put, vfs.c lru_add_locked),
	 * and its handle keeps the node, not the descriptor. */
	vmb_node_stat(v, n, &e->attr, NULL);
	vmb_node_put(v, n);
	goto out;
undo:
	unmake(v, p, name, &made);
out:
	vmb_change_end(v, p);
	vmb_node_put(v, p);
	return r;
}

/* Every call on an open file's image runs between these two (vfs_fds.c). */
static int hold(struct vmb_file *f, struct vmb_err *err)
{
	return f->sv ? 0 : vmb_fds_hold(f->vfs, f->node, err);   /* a snapshot's: no fd */
}

static void unhold(struct vmb_file *f)
{
	if (!f->sv)
		vmb_fds_unhold(f->vfs, f->node);
}

ssize_t vmb_vfs_read(struct vmb_file *f, void *buf, size_t size, uint64_t off,
		     int *holes_only, struct vmb_err *err)
{
	ssize_t r = hold(f, err);

	if (r < 0)
		return r;
	r = vmb_image_read(f->img, buf, size, off, holes_only, err);
	unhold(f);
	return r;
}

int vmb_vfs_read_fd(struct vmb_file *f, uint64_t off, size_t size, int *fd, size_t *n,
		    struct vmb_read_hold *h)
{
	h->vfs = f->vfs;
	h->node = f->sv ? NULL : f->node;   /* what unhold(f) would use */
	if (hold(f, NULL) < 0)
		return 0;   /* vmb_vfs_read reports it */
	if (!vmb_image_read_fd(f->img, off, size, fd, n)) {   /* the delta's or a layer's */
		unhold(f);
		return 0;
	}
	return 1;
}

void vmb_vfs_read_fd_done(struct vmb_read_hold *h)
{
	if (h->node)
		vmb_fds_unhold(h->vfs, h->node);
}

int vmb_vfs_read_pieces(struct vmb_file *f, uint64_t off, size_t size,
			struct vmb_base_piece *pc, int max)
{
	int n;

	if (!vmb_image_has_pieces(f->img))
		return 0;   /* a file without a base (most): not even a hold */
	if (hold(f, NULL) < 0)
		return 0;   /* vmb_vfs_read reports it */
	n = vmb_image_read_pieces(f->img, off, size, pc, max);   /* a remote base's */
	if (n <= 0)
		unhold(f);
	return n > 0 ? n : 0;
}

void vmb_vfs_read_pieces_done(struct vmb_file *f, struct vmb_base_piece *pc, int n)
{
	vmb_image_read_pieces_done(f->img, pc, n);
	unhold(f);
}

ssize_t vmb_vfs_write(struct vmb_file *f, const void *buf, size_t size, uint64_t off,
		      struct vmb_err *err)
{
	ssize_t r;

	if ((f->flags & O_ACCMODE) == O_RDONLY)
		return -EBADF;
	if (f->sv)
		return -EROFS;
	vmb_change_begin(f->vfs, f->node, NULL);
	r = hold(f, err);
	if (r == 0) {
		r = vmb_image_write(f->img, buf, size, off, err);
		unhold(f);
	}
	vmb_change_end(f->vfs, f->node);
	return r;
}

void vmb_vfs_commit(struct vmb_file *f)
{
	struct vmb_err err;

	/* a descriptor that cannot write changed nothing (the writers' own closes
	 * commit what they did): it neither opens a parked descriptor again nor
	 * waits for a writer's lock. */
	if (f->sv || !f->img || (f->flags & O_ACCMODE) == O_RDONLY)
		return;
	vmb_err_clear(&err);
	if (hold(f, &err) < 0) {
		vmb_log_msg(f->vfs->log, "%s", err.msg);
		return;
	}
	/* Large writes may still be on their way to the backing file (dio.h): the
	 * close waits for them, so that the file opened through another mount once
	 * close(2) returned reads them (the last close, RELEASE, which drained them
	 * until now, comes after close(2) has returned). Then a delta commits its
	 * map. */
	vmb_image_drain(f->img);
	if (vmb_image_base(f->img, NULL) && vmb_image_commit(f->img, &err) < 0)
		vmb_log_msg(f->vfs->log, "%s", err.msg);
	unhold(f);
}

int vmb_vfs_fsync(struct vmb_file *f, int datasync, struct vmb_err *err)
{
	int r;

	if (f->sv)
		return 0;   /* a snapshot is durable */
	r = hold(f, err);

	if (r < 0)
		return r;
	r = vmb_image_sync(f->img, datasync, err);
	unhold(f);
	return r;
}

int vmb_vfs_fallocate(struct vmb_file *f, int mode, uint64_t off, uint64_t len,
		      struct vmb_err *err)
{
	int r;

	if (f->sv)
		return -EROFS;
	vmb_change_begin(f->vfs, f->node, NULL);
	r = hold(f, err);
	if (r == 0) {
		r = vmb_image_fallocate(f->img, mode, off, len, err);
		unhold(f);
	}
	vmb_change_end(f->vfs, f->node);
	return r;
}

int vmb_vfs_lseek(struct vmb_file *f, uint64_t off, int whence, uint64_t *res,
		  struct vmb_err *err)
{
	int r = hold(f, err);   /* a seek may look at the backing file */

	if (r < 0)
		return r;
	r = vmb_image_seek(f->img, off, whence, res, err);
	unhold(f);
	return r;
}

ssize_t vmb_vfs_copy_range(struct vmb_file *in, uint64_t off_in, struct vmb_file *out,
			   uint64_t off_out, size_t len, struct vmb_err *err)
{
	ssize_t r;

	if (out->sv)
		return -EROFS;
	r = vmb_vfs_share_range(in, off_in, out, off_out, len);
	if (r > 0)
		return r;
	vmb_change_begin(out->vfs, out->node, NULL);
	r = hold(in, err);
	if (r < 0)
		goto out;
	r = hold(out, err);
	if (r == 0) {
		r = vmb_image_copy_range(in->img, off_in, out->img, off_out, len, err);
		unhold(out);
	}
	unhold(in);
out:
	vmb_change_end(out->vfs, out->node);
	return r;
}

void vmb_vfs_release(struct vmb_vfs *v, struct vmb_file *f)
{
	struct vmb_lockset *ls;

	if (!f)
		return;
	vmb_open_unlink(&v->filemu, &v->files, &f->link);
	if (f->sv) {
		char proc[64];
		vmb_snapview_locks(v, f->sv, 0, &ls, proc, NULL);
		if (ls)
			vmb_lock_release(ls, f);
		vmb_snapview_release(v, f->sv);
		free(f);
		return;
	}
	if (v->release_delay_ms)
		usleep(v->release_delay_ms * 1000u);
	ls = vmb_node_locks(f->node);
	if (ls)
		vmb_lock_release(ls, f);
	vmb_node_image_put(v, f->node);
	free(f);
}

/* At vmb_vfs_free: release what the kernel left open (no RELEASE comes after the
 * unmount of a daemon stopped by a signal): their locks go, their images close
 * through the ordinary path (maps saved). */
void vmb_files_close_all(struct vmb_vfs *v)
{
	while (v->files)
		vmb_vfs_release(v, v->files->h);
}

void vmb_forget_sidecar(struct vmb_vfs *v, dev_t dev, ino_t ino)
{
	char name[VMB_SIDECAR_NAME_MAX];
	struct vmb_err err;
	struct vmb_node *n;
	int open_now = 0;

	/* An open image removes its own sidecar when it closes with no links left. */
	pthread_mutex_lock(&v->tlock);
	for (n = v->hash[vmb_node_hash(dev, ino)]; n; n = n->hnext) {
		if (n->dev == dev && n->ino == ino) {
			pthread_mutex_lock(&n->ilock);
			open_now = n->img != NULL;
			pthread_mutex_unlock(&n->ilock);
			break;
		}
	}
	pthread_mutex_unlock(&v->tlock);
	if (open_now)
		return;
	vmb_sidecar_name((uint64_t)ino, name);
	vmb_err_clear(&err);
	if (vmb_sidecar_remove(v->store.mapfd, name, &err) < 0)
		vmb_log_msg(v->log, "%s", err.msg);
}
