/* vfs_dir.c - reading directories; the top level shows bundles only (see vfs.h). */
#include "config.h"
#include "vfs/vfs_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct vmb_dir {
	struct vmb_svdir *sv;    /* in the snapshot view: all of it */
	int snap_pending;        /* the root: .snapshots comes next (after ".") */
	struct vmb_node *node;   /* holds a ref */
	DIR *dp;
	uint64_t offset;         /* offset of the next entry readdir() gives */
	struct dirent *entry;    /* read but not yet given to the kernel */
	struct vmb_open link;    /* on v->dirs */
};

int vmb_vfs_opendir(struct vmb_vfs *v, uint64_t ino, struct vmb_dir **out,
		    struct vmb_err *err)
{
	struct vmb_dir *d;
	struct vmb_node *n;
	int fd, r;

	*out = NULL;
	if (vmb_snapview_is(ino)) {
		d = calloc(1, sizeof(*d));
		if (!d)
			return vmb_err_set(err, ENOMEM, "out of memory");
		r = vmb_snapview_opendir(v, ino, &d->sv, err);
		if (r < 0) {
			free(d);
			return r;
		}
		vmb_open_link(&v->dirmu, &v->dirs, &d->link, d);
		*out = d;
		return 0;
	}
	r = vmb_node_get(v, ino, &n);
	if (r < 0)
		return r;
	d = calloc(1, sizeof(*d));
	if (!d) {
		vmb_node_put(v, n);
		return vmb_err_set(err, ENOMEM, "out of memory");
	}
	fd = openat(n->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || !(d->dp = fdopendir(fd))) {
		r = -errno;
		if (fd >= 0)
			close(fd);
		free(d);
		vmb_node_put(v, n);
		return r;
	}
	d->node = n;
	vmb_open_link(&v->dirmu, &v->dirs, &d->link, d);
	*out = d;
	return 0;
}

/* Whether the top level shows this entry: directories only, never the metadata. */
static int shown_at_top(struct vmb_dir *d, const struct dirent *de)
{
	struct stat st;

	if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
		return 1;
	if (vmb_store_reserved(de->d_name))
		return 0;
	if (de->d_type != DT_UNKNOWN)
		return de->d_type == DT_DIR;
	return fstatat(dirfd(d->dp), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	       S_ISDIR(st.st_mode);
}

int vmb_vfs_readdir(struct vmb_vfs *v, struct vmb_dir *d, uint64_t off, vmb_fill_fn fill,
		    void *arg, struct vmb_err *err)
{
	int top;

	if (d->sv)
		return vmb_snapview_readdir(v, d->sv, off, fill, arg, err);
	top = d->node == &v->root;
	if (top && v->lazy_n)   /* a URL mount: its bundles, pulled or not */
		return vmb_lazy_readdir(v, off, fill, arg);
	if (off != d->offset) {
		seekdir(d->dp, (long)off);
		d->entry = NULL;
		d->offset = off;
		d->snap_pending = 0;
	}
	for (;;) {
		struct stat st;

		if (d->snap_pending) {   /* the snapshot view, listed right after "." */
			memset(&st, 0, sizeof(st));
			st.st_mode = S_IFDIR;
			st.st_ino = (ino_t)vmb_snapview_ino();
			if (fill(arg, VMB_SNAPVIEW_DIR, &st, d->offset))
				return 0;
			d->snap_pending = 0;
		}
		if (!d->entry) {
			errno = 0;
			d->entry = readdir(d->dp);
			if (!d->entry) {
				if (errno)
					return vmb_err_sys(err, errno, "cannot read a directory");
				return 0;
			}
		}
		if (!top || (shown_at_top(d, d->entry) && !vmb_snapview_name(d->entry->d_name))) {
			memset(&st, 0, sizeof(st));
			st.st_ino = d->entry->d_ino;
			st.st_mode = (mode_t)DTTOIF(d->entry->d_type);
			if (fill(arg, d->entry->d_name, &st, (uint64_t)d->entry->d_off))
				return 0;   /* full: this entry comes first next time */
		}
		d->offset = (uint64_t)d->entry->d_off;
		if (top && !strcmp(d->entry->d_name, ".") && vmb_snapview_listed(v))
			d->snap_pending = 1;
		d->entry = NULL;
	}
}

int vmb_vfs_fsyncdir(struct vmb_dir *d, int datasync, struct vmb_err *err)
{
	int fd;

	if (d->sv)
		return 0;
	fd = dirfd(d->dp);
	if ((datasync ? fdatasync(fd) : fsync(fd)) < 0)
		return vmb_err_sys(err, errno, "cannot sync a directory");
	return 0;
}

void vmb_vfs_releasedir(struct vmb_vfs *v, struct vmb_dir *d)
{
	if (!d)
		return;
	vmb_open_unlink(&v->dirmu, &v->dirs, &d->link);
	if (d->sv) {
		vmb_snapview_releasedir(v, d->sv, 1);
		free(d);
		return;
	}
	closedir(d->dp);
	vmb_node_put(v, d->node);
	free(d);
}

/* At vmb_vfs_free: release what the kernel left open (no RELEASEDIR comes after the
 * unmount of a daemon stopped by a signal). */
void vmb_dirs_close_all(struct vmb_vfs *v)
{
	while (v->dirs)
		vmb_vfs_releasedir(v, v->dirs->h);
}
