/* ops.c - what the structural operations share (ops_int.h), and the test hook. */
#include "config.h"
#include "base/fdio.h"
#include "store/ops_int.h"
#include "store/store.h"
#include "image/image.h"
#include "layer/layer.h"
#include "map/sidecar.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

void vmb_op_step(const char *op, unsigned step)
{
	static const char *const var[] = { "VMB_OP_KILL_AT", "VMB_OP_STOP_AT" };
	char want[64];
	int i;

	/* "OP:N" kills (stops) in that operation only, "N" in any. */
	snprintf(want, sizeof(want), "%s:%u", op, step);
	for (i = 0; i < 2; i++) {
		const char *v = getenv(var[i]);

		if (v && (!strcmp(v, want) || (strchr(v, ':') == NULL &&
						(unsigned)atoi(v) == step)))
			raise(i ? SIGSTOP : SIGKILL);
	}
}

int vmb_ops_bundle_check(struct vmb_opctx *c, const char *bundle, struct vmb_err *err)
{
	struct stat st;
	int r = vmb_name_check(bundle, err);

	if (r < 0)
		return vmb_err_prefix(err, "bad bundle name");
	if (vmb_store_reserved(bundle) || bundle[0] == '.')
		return vmb_err_set(err, ENOENT, "no bundle '%s' in store '%s'", bundle,
				   c->store->path);
	if (fstatat(c->store->dirfd, bundle, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			return vmb_err_set(err, ENOENT, "no bundle '%s' in store '%s'", bundle,
					   c->store->path);
		return vmb_err_sys(err, errno, "cannot look up bundle '%s'", bundle);
	}
	if (!S_ISDIR(st.st_mode))
		return vmb_err_set(err, ENOENT, "no bundle '%s' in store '%s' (not a "
				   "directory)", bundle, c->store->path);
	return 0;
}

/* The freeze of a file no daemon serves (LAYERS.md "Freeze"): its backing inode
 * becomes a layer (or, when its delta is empty, its base is the layer), and its
 * name gets a fresh empty delta over that layer: made under a temporary name in
 * the same directory with the file's owner, mode, times and user.* xattrs, renamed
 * over the name, the directory synced; the old inode's sidecar removed. A file
 * with other hard links is copied into a merged layer instead and left alone. A crash
 * before the rename leaves the file as it was (its inode also linked as a layer
 * nothing references, which gc removes); after it, the new state. */
static int freeze_here(struct vmb_opctx *c, int dirfd, const char *name, const char *relpath,
		       char id[VMB_BASE_ID_LEN + 1], struct vmb_err *err)
{
	struct vmb_base_resolver res = vmb_layers_resolver(c->layers);
	struct vmb_image_baseinfo bi;
	struct vmb_base *nb = NULL;
	struct vmb_blockmap m;
	struct stat st;
	char tmp[NAME_MAX + 1], sc[VMB_SIDECAR_NAME_MAX];
	uint64_t size, nblk, found;
	int fd, nfd = -1, rebuilt, r, made = 0;

	vmb_blockmap_init(&m);
	memset(&bi, 0, sizeof(bi));
	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return vmb_err_sys(err, errno, "cannot open '%s'", relpath);
	if (fstat(fd, &st) < 0) {
		r = vmb_err_sys(err, errno, "cannot stat '%s'", relpath);
		goto out;
	}
	r = vmb_image_load_map2(fd, c->store->mapfd, relpath, &res, &m, &size, &rebuilt, &bi,
				err);
	if (r < 0)
		goto out;
	nblk = (size + VMB_BLOCK_SIZE - 1) / VMB_BLOCK_SIZE;
	/* An empty delta over its whole base: the base is the frozen content. */
	if (bi.base && size == bi.base->size && bi.limit == nblk &&
	    (vmb_blockmap_next(&m, 0, VMB_M_DATA | VMB_M_ZERO, &found) < 0 || found >= nblk)) {
		memcpy(id, bi.id, VMB_BASE_ID_LEN + 1);
		goto out;
	}
	/* Other hard links (outside report X-hlmode): the inode cannot become the
	 * layer, its other names would name the layer's data (read-only, and never to
	 * be written again). The layer is a copy of the content instead (O(data), as
	 * for a plain file with other links), and the file stays as it is. */
	if (st.st_nlink > 1) {
		r = vmb_layers_create_merged(c->layers, fd, &m, size, bi.base, bi.limit, id,
					     err);
		goto out;
	}
	r = vmb_layers_create(c->layers, fd, &m, size, bi.base, bi.limit, id, err);
	if (r < 0)
		goto out;
	vmb_op_step("freeze", 1);
	r = vmb_layers_get(c->layers, id, &nb, err);
	if (r < 0)
		goto out;
	snprintf(tmp, sizeof(tmp), ".vmb-frz.%ld.%.200s", (long)getpid(), name);
	unlinkat(dirfd, tmp, 0);
	r = vmb_image_create_delta(dirfd, tmp, nb, size, &st, c->store->mapfd, err);
	if (r < 0)
		goto out;
	made = 1;
	nfd = openat(dirfd, tmp, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (nfd < 0) {
		r = vmb_err_sys(err, errno, "cannot open the new delta of '%s'", relpath);
		goto out;
	}
	r = vmb_ops_copy_xattrs(fd, nfd, relpath, err);
	if (r == 0) {
		struct timespec ts[2] = { st.st_atim, st.st_mtim };
		if (futimens(nfd, ts) < 0 || vmb_fsync(nfd) < 0)
			r = vmb_err_sys(err, errno, "cannot finish the new delta of '%s'", relpath);
	}
	if (r < 0)
		goto out;
	if (renameat(dirfd, tmp, dirfd, name) < 0) {
		r = vmb_err_sys(err, errno, "cannot put the new delta of '%s' in place", relpath);
		goto out;
	}
	made = 0;
	if (vmb_fsync(dirfd) < 0)
		vmb_log_msg(c->log, "freeze of '%s': cannot sync its directory: %s", relpath,
			    strerror(errno));
	vmb_op_step("freeze", 2);
	{
		struct vmb_err e;
		vmb_err_clear(&e);
		if (vmb_layers_seal(c->layers, id, &e) < 0)   /* fsck seals it */
			vmb_log_msg(c->log, "freeze of '%s': %s", relpath, e.msg);
	}
	vmb_sidecar_name((uint64_t)st.st_ino, sc);
	if (vmb_sidecar_remove(c->store->mapfd, sc, NULL) < 0)
		vmb_log_msg(c->log, "freeze of '%s': cannot remove the old map %s (fsck removes "
			    "it)", relpath, sc);
out:
	if (made) {
		/* The new delta's own map goes with it. */
		struct stat nst;
		if (fstatat(dirfd, tmp, &nst, AT_SYMLINK_NOFOLLOW) == 0) {
			vmb_sidecar_name((uint64_t)nst.st_ino, sc);
			vmb_sidecar_remove(c->store->mapfd, sc, NULL);
		}
		unlinkat(dirfd, tmp, 0);
	}
	if (nfd >= 0)
		close(nfd);
	vmb_base_put(nb);
	vmb_base_put(bi.base);
	vmb_blockmap_destroy(&m);
	close(fd);
	return r;
}

int vmb_ops_freeze(struct vmb_opctx *c, int dirfd, const char *name, const char *relpath,
		   char id[VMB_BASE_ID_LEN + 1], struct vmb_err *err)
{
	if (c->freeze)
		return c->freeze(c->arg, dirfd, name, relpath, id, err);
	return freeze_here(c, dirfd, name, relpath, id, err);
}

int vmb_ops_flatten_file(struct vmb_opctx *c, int dirfd, const char *name,
			 const char *relpath, struct vmb_err *err)
{
	struct vmb_base_resolver res;
	struct vmb_image *img = NULL;
	int fd, r;

	if (c->flatten)
		return c->flatten(c->arg, dirfd, name, relpath, err);
	fd = openat(dirfd, name, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return vmb_err_sys(err, errno, "cannot open '%s'", relpath);
	res = vmb_layers_resolver(c->layers);
	r = vmb_image_open2(&img, fd, c->store->mapfd, relpath, c->log, &res, err);
	if (r < 0) {
		close(fd);
		return r;
	}
	r = vmb_image_flatten(img, dirfd, name, err);
	vmb_image_close(img);
	return r;
}

int vmb_ops_base_of(int fd, const char *msgpath, char id[VMB_BASE_ID_LEN + 1],
		    struct vmb_err *err)
{
	uint64_t limit;

	return vmb_image_get_base_xattr(fd, msgpath, id, &limit, err);
}

/* The user.* names of fd's xattrs: a malloc'ed list (NUL-separated), *len bytes. */
static int user_xattrs(int fd, char **list, ssize_t *len, const char *msgpath,
		       struct vmb_err *err)
{
	ssize_t n;
	char *l;

	*list = NULL;
	*len = 0;
	for (;;) {
		n = flistxattr(fd, NULL, 0);
		if (n < 0) {
			if (errno == ENOTSUP)
				return 0;
			return vmb_err_sys(err, errno, "cannot list the xattrs of '%s'", msgpath);
		}
		if (n == 0)
			return 0;
		l = malloc((size_t)n);
		if (!l)
			return vmb_err_set(err, ENOMEM, "out of memory");
		*len = flistxattr(fd, l, (size_t)n);
		if (*len >= 0) {
			*list = l;
			return 0;
		}
		free(l);
		if (errno != ERANGE)
			return vmb_err_sys(err, errno, "cannot list the xattrs of '%s'", msgpath);
	}
}

/* Value of xattr name of fd into a malloc'ed *val. */
static int get_xattr(int fd, const char *name, char **val, size_t *vlen, const char *msgpath,
		     struct vmb_err *err)
{
	ssize_t n;

	for (;;) {
		n = fgetxattr(fd, name, NULL, 0);
		if (n < 0)
			return vmb_err_sys(err, errno, "cannot read xattr '%s' of '%s'", name,
					   msgpath);
		*val = malloc((size_t)n + 1);
		if (!*val)
			return vmb_err_set(err, ENOMEM, "out of memory");
		n = fgetxattr(fd, name, *val, (size_t)n);
		if (n >= 0) {
			*vlen = (size_t)n;
			return 0;
		}
		free(*val);
		*val = NULL;
		if (errno != ERANGE)
			return vmb_err_sys(err, errno, "cannot read xattr '%s' of '%s'", name,
					   msgpath);
	}
}

int vmb_ops_copy_xattrs(int from, int to, const char *msgpath, struct vmb_err *err)
{
	char *list, *p, *val;
	ssize_t len;
	size_t vlen;
	int r;

	r = user_xattrs(from, &list, &len, msgpath, err);
	for (p = list; r == 0 && p && p < list + len; p += strlen(p) + 1) {
		if (strncmp(p, "user.", 5) || vmb_xattr_reserved(p))
			continue;
		r = get_xattr(from, p, &val, &vlen, msgpath, err);
		if (r < 0)
			break;
		if (fsetxattr(to, p, val, vlen, 0) < 0)
			r = vmb_err_sys(err, errno, "cannot set xattr '%s' on the copy of '%s'",
					p, msgpath);
		free(val);
	}
	free(list);
	return r;
}

int vmb_ops_xattrs_to_manifest(int fd, struct vmb_manifest *m, const char *msgpath,
			       struct vmb_err *err)
{
	char *list, *p, *val;
	ssize_t len;
	size_t vlen;
	int r;

	r = user_xattrs(fd, &list, &len, msgpath, err);
	for (p = list; r == 0 && p && p < list + len; p += strlen(p) + 1) {
		if (strncmp(p, "user.", 5) || vmb_xattr_reserved(p))
			continue;
		r = get_xattr(fd, p, &val, &vlen, msgpath, err);
		if (r < 0)
			break;
		if (vmb_manifest_add_xattr(m, p, val, vlen) < 0)
			r = vmb_err_set(err, ENOMEM, "out of memory");
		free(val);
	}
	free(list);
	return r;
}

int vmb_ops_save_plain_map(struct vmb_opctx *c, int fd, const char *msgpath,
			   struct vmb_err *err)
{
	char name[VMB_SIDECAR_NAME_MAX];
	struct vmb_blockmap m;
	struct vmb_stamp st;
	int r;

	vmb_blockmap_init(&m);
	r = vmb_stamp_fd(fd, &st, err);
	if (r == 0)
		r = vmb_sidecar_scan(fd, st.size, &m, err);
	if (r == 0) {
		vmb_sidecar_name(st.ino, name);
		r = vmb_sidecar_write(c->store->mapfd, name, &m, &st, VMB_SIDECAR_SYNC_FILE, err);
	}
	vmb_blockmap_destroy(&m);
	if (r < 0)
		vmb_err_prefix(err, "cannot save the map of '%s'", msgpath);
	return r;
}

int vmb_ops_copy_sparse(int src, int dst, uint64_t size, const char *msgpath,
			struct vmb_err *err)
{
	off_t off = 0, data, hole;

	if (ftruncate(dst, (off_t)size) < 0)
		return vmb_err_sys(err, errno, "cannot copy '%s'", msgpath);
	while ((uint64_t)off < size) {
		data = lseek(src, off, SEEK_DATA);
		if (data < 0) {
			if (errno == ENXIO)
				break;
			return vmb_err_sys(err, errno, "cannot copy '%s'", msgpath);
		}
		if ((uint64_t)data >= size)
			break;
		hole = lseek(src, data, SEEK_HOLE);
		if (hole < 0)
			return vmb_err_sys(err, errno, "cannot copy '%s'", msgpath);
		if ((uint64_t)hole > size)
			hole = (off_t)size;
		off = data;
		while (off < hole) {
			loff_t in = off, out = off;
			ssize_t n = copy_file_range(src, &in, dst, &out, (size_t)(hole - off), 0);
			if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EOPNOTSUPP ||
				      errno == EINVAL)) {
				char buf[65536];
				size_t want = (size_t)(hole - off) < sizeof(buf) ?
					(size_t)(hole - off) : sizeof(buf);
				n = pread(src, buf, want, off);
				if (n > 0 && pwrite(dst, buf, (size_t)n, off) != n)
					n = -1;
			}
			if (n < 0)
				return vmb_err_sys(err, errno, "cannot copy '%s'", msgpath);
			if (n == 0)
				return vmb_err_set(err, EIO, "cannot copy '%s': it shrank", msgpath);
			off += n;
		}
	}
	if (vmb_fsync(dst) < 0)
		return vmb_err_sys(err, errno, "cannot copy '%s'", msgpath);
	return 0;
}

uint64_t vmb_ops_staging_sweep(struct vmb_store *s, int remove,
			       void (*found)(void *arg, const char *name, int r,
					     const struct vmb_err *e),
			       void *arg)
{
	struct dirent *de;
	uint64_t n = 0;
	DIR *d;
	int sfd;

	sfd = openat(s->metafd, VMB_OPS_STAGING_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		     O_CLOEXEC);
	if (sfd < 0)
		return 0;
	d = fdopendir(dup(sfd));
	while (d && (de = readdir(d))) {
		struct vmb_err e;
		int lfd, r = 1;

		if (strncmp(de->d_name, VMB_OPS_CLONE_PREFIX, strlen(VMB_OPS_CLONE_PREFIX)) &&
		    strncmp(de->d_name, VMB_OPS_PUBLISH_PREFIX, strlen(VMB_OPS_PUBLISH_PREFIX)) &&
		    strncmp(de->d_name, VMB_STORE_STAGING_NEW, strlen(VMB_STORE_STAGING_NEW)))
			continue;
		lfd = openat(sfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (lfd < 0)
			continue;
		vmb_err_clear(&e);
		if (flock(lfd, LOCK_EX | LOCK_NB) == 0) {   /* nobody holds it: dead */
			if (remove)
				r = vmb_tree_remove(sfd, de->d_name, s->mapfd, &e);
			if (r >= 0)
				n++;
			if (found)
				found(arg, de->d_name, r, &e);
		}
		close(lfd);
	}
	if (d)
		closedir(d);
	close(sfd);
	return n;
}

int vmb_ops_snapdir(struct vmb_store *s, int create, struct vmb_err *err)
{
	int fd;

	if (create && mkdirat(s->metafd, VMB_SNAPSHOTS_DIR, VMB_META_DIR_MODE) == 0) {
		/* its entry durable before a snapshot in it is */
		if (vmb_fsync(s->metafd) < 0)
			return vmb_err_sys(err, errno, "cannot sync '%s/%s'", s->path,
					   VMB_META_DIR);
	} else if (create && errno != EEXIST)
		return vmb_err_sys(err, errno, "cannot create '%s/%s/%s'", s->path,
				   VMB_META_DIR, VMB_SNAPSHOTS_DIR);
	fd = openat(s->metafd, VMB_SNAPSHOTS_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		    O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return -ENOENT;
		return vmb_err_sys(err, errno, "cannot open '%s/%s/%s'", s->path, VMB_META_DIR,
				   VMB_SNAPSHOTS_DIR);
	}
	return fd;
}
