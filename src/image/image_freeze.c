/* image_freeze.c - making and unmaking deltas (image.h, LAYERS.md): a new empty delta
 * over a base, a read-only image of a base alone, the freeze of an image into a
 * layer, and its flattening into a plain file again. */
#include "config.h"
#include "image/image_int.h"
#include "layer/layer.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>
#include "base/fdio.h"
#include "base/pathtree.h"

/* The committed map of a delta made just now: empty (every block ABSENT), under
 * the backing file's stamp, so that a later rebuild starts from it (and a delta
 * found without any committed map is one whose map was lost). */
static int save_empty_map(int fd, int mapdir, const char *name, const struct vmb_baseref *ref,
			  struct vmb_err *err)
{
	char scname[VMB_SIDECAR_NAME_MAX];
	struct vmb_blockmap m;
	struct vmb_stamp st;
	int r;

	vmb_blockmap_init(&m);
	r = vmb_stamp_fd(fd, &st, err);
	if (r == 0) {
		vmb_sidecar_name(st.ino, scname);
		r = vmb_sidecar_write2(mapdir, scname, &m, &st, ref, VMB_SIDECAR_SYNC_FILE, err);
	}
	if (r < 0)
		vmb_err_prefix(err, "cannot save the map of '%s'", name);
	return r;
}

int vmb_image_create_delta(int dirfd, const char *name, struct vmb_base *base, uint64_t size,
			   const struct stat *like, int mapdir_fd, struct vmb_err *err)
{
	struct timespec ts[2];
	struct vmb_baseref ref;
	int fd, r = 0;

	if (size < base->size || size > MAX_BYTES)
		return vmb_err_set(err, EINVAL, "cannot create '%s': size %llu is below its "
				   "base's (%llu)", name, (unsigned long long)size,
				   (unsigned long long)base->size);
	fd = openat(dirfd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
		    like->st_mode & 07777);
	if (fd < 0)
		return vmb_err_sys(err, errno, "cannot create '%s'", name);
	memset(&ref, 0, sizeof(ref));
	memcpy(ref.id, base->id, sizeof(ref.id));
	ref.limit = blocks_for(base->size);
	ts[0] = like->st_atim;
	ts[1] = like->st_mtim;
	if (ftruncate(fd, (off_t)size) < 0)
		r = vmb_err_sys(err, errno, "cannot size '%s'", name);
	else if (fchown(fd, like->st_uid, like->st_gid) < 0)
		r = vmb_err_sys(err, errno, "cannot set the owner of '%s'", name);
	else if (fchmod(fd, like->st_mode & 07777) < 0)
		r = vmb_err_sys(err, errno, "cannot set the mode of '%s'", name);
	else
		r = vmb_image_set_base_xattr(fd, name, ref.id, ref.limit, err);
	if (r == 0 && futimens(fd, ts) < 0)
		r = vmb_err_sys(err, errno, "cannot set the times of '%s'", name);
	if (r == 0 && mapdir_fd >= 0)
		r = save_empty_map(fd, mapdir_fd, name, &ref, err);
	if (r == 0 && vmb_fsync(fd) < 0)
		r = vmb_err_sys(err, errno, "cannot sync '%s'", name);
	close(fd);
	if (r < 0)
		unlinkat(dirfd, name, 0);
	return r;
}

int vmb_image_open_frozen(struct vmb_image **out, struct vmb_base *base, uint64_t size,
			  const char *name, const struct vmb_log *log, struct vmb_err *err)
{
	struct vmb_image *img;

	*out = NULL;
	if (size > MAX_BYTES)
		return vmb_err_set(err, EFBIG, "cannot open '%s': size %llu", name,
				   (unsigned long long)size);
	img = vmb_img_alloc(name, err);
	if (!img)
		return -ENOMEM;
	vmb_base_get(base);
	img->base = base;
	img->limit = blocks_for(size < base->size ? size : base->size);
	img->size = size;
	img->frozen = 1;
	img->log = log;
	img->mapdir = -1;
	*out = img;
	return 0;
}

/* ---- a new backing file for a name ---- */

/* A new file in dirfd to become name's backing file: O_TMPFILE (*tmp left empty,
 * linked by install), or a named temporary where the filesystem has none. */
static int new_backing(int dirfd, const char *name, mode_t mode, char *tmp, size_t tsize,
		       struct vmb_err *err)
{
	static unsigned seq;
	int fd = openat(dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, mode & 07777);

	tmp[0] = '\0';
	if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL))
		return fd >= 0 ? fd : vmb_err_sys(err, errno, "cannot create a file beside '%s'",
						  name);
	snprintf(tmp, tsize, ".vmbundlefs.new.%ld.%u", (long)getpid(),
		 __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED));
	fd = openat(dirfd, tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode & 07777);
	if (fd < 0)
		return vmb_err_sys(err, errno, "cannot create '%s' beside '%s'", tmp, name);
	return fd;
}

/* Owner and mode of st and the user.* xattrs of from onto to (the times are set
 * last, by the caller, after the content). */
static int copy_attrs(int from, const struct stat *st, int to, const char *name,
		      struct vmb_err *err)
{
	char *names = NULL, *val = NULL, *p;
	ssize_t n, v;
	int r = 0;

	if (fchown(to, st->st_uid, st->st_gid) < 0)
		return vmb_err_sys(err, errno, "cannot set the owner of '%s'", name);
	if (fchmod(to, st->st_mode & 07777) < 0)
		return vmb_err_sys(err, errno, "cannot set the mode of '%s'", name);
	n = flistxattr(from, NULL, 0);
	if (n <= 0)
		return 0;
	names = malloc((size_t)n);
	val = malloc(XATTR_SIZE_MAX);
	if (!names || !val) {
		r = vmb_err_set(err, ENOMEM, "cannot copy the xattrs of '%s': out of memory", name);
		goto out;
	}
	n = flistxattr(from, names, (size_t)n);
	for (p = names; n > 0 && p < names + n; p += strlen(p) + 1) {
		if (strncmp(p, "user.", 5) || vmb_xattr_reserved(p))
			continue;   /* a user-namespace store's marks are the caller's */
		v = fgetxattr(from, p, val, XATTR_SIZE_MAX);
		if (v < 0 || fsetxattr(to, p, val, (size_t)v, 0) < 0) {
			r = vmb_err_sys(err, errno, "cannot copy xattr '%s' of '%s'", p, name);
			goto out;
		}
	}
out:
	free(names);
	free(val);
	return r;
}

/* Link the new file fd (O_TMPFILE, or named tmp) over dirfd/name, the directory
 * synced. Once the rename is done this succeeds: a failed sync of the directory
 * is logged (the name is on the new file either way). */
static int install(int dirfd, const char *name, int fd, char *tmp, size_t tsize,
		   const struct vmb_log *log, struct vmb_err *err)
{
	char path[64];
	int dfd;

	if (!tmp[0]) {
		static unsigned seq;
		snprintf(tmp, tsize, ".vmbundlefs.new.%ld.%u", (long)getpid(),
			 __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED));
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		if (linkat(fd, "", dirfd, tmp, AT_EMPTY_PATH) < 0 &&
		    linkat(AT_FDCWD, path, dirfd, tmp, AT_SYMLINK_FOLLOW) < 0) {
			int e = errno;
			tmp[0] = '\0';
			return vmb_err_sys(err, e, "cannot link a new file beside '%s'", name);
		}
	}
	if (renameat(dirfd, tmp, dirfd, name) < 0)
		return vmb_err_sys(err, errno, "cannot rename '%s' to '%s'", tmp, name);
	tmp[0] = '\0';
	dfd = dirfd;
	if (vmb_fsync(dfd) < 0)
		vmb_log_msg(log, "cannot sync the directory of '%s': %s", name, strerror(errno));
	return 0;
}

/* The image onto its new backing file fd with map m (moved in), base b (a reference,
 * moved in; NULL: none) and limit. The old descriptor and base are kept until the
 * next switch or close (a reader that looked them up still reads the frozen bytes
 * through them). The old inode's sidecar goes (the inode is a layer now, with a map
 * of its own, or unlinked); the new map is saved. Caller holds wlock, drained, no
 * reservation. */
static int switch_backing(struct vmb_image *img, int fd, struct vmb_blockmap *m,
			  struct vmb_base *b, uint64_t limit, struct vmb_err *err)
{
	char scname[VMB_SIDECAR_NAME_MAX];
	struct vmb_blockmap old;
	struct vmb_err e;
	int direct = img->dio.state >= 0;

	vmb_err_clear(&e);
	vmb_sidecar_name(img->ino, scname);
	if (vmb_sidecar_remove(img->mapdir, scname, &e) < 0)
		vmb_log_msg(img->log, "%s", e.msg);
	vmb_dio_destroy(&img->dio);
	vmb_dio_init(&img->dio, direct && img->writable);
	if (img->old_fd >= 0)
		close(img->old_fd);
	vmb_base_put(img->old_base);
	pthread_mutex_lock(&img->mlock);
	img->old_fd = img->fd;
	img->old_base = img->base;
	img->fd = fd;
	img->base = b;
	img->limit = limit;
	old = img->map;
	img->map = *m;
	vmb_blockmap_init(m);
	vmb_blockmap_destroy(&img->dirty);
	img->map.track = &img->dirty;
	img->gen++;
	pthread_mutex_unlock(&img->mlock);
	vmb_blockmap_destroy(&old);
	memset(&img->pos, 0, sizeof(img->pos));
	img->on_disk = 0;
	img->known_ok = vmb_stamp_fd(fd, &img->known, NULL) == 0;
	img->ino = img->known.ino;
	return vmb_img_persist_locked(img, VMB_SIDECAR_SYNC_FILE, err);
}

/* Copy [off, off + n) from descriptor in (-1: read through img's base) to out at the
 * same offsets. */
static int copy_out(struct vmb_image *img, int in, int out, uint64_t off, uint64_t n,
		    struct vmb_err *err)
{
	static const size_t chunk = 1u << 20;
	loff_t ip = (loff_t)off, op = (loff_t)off;
	char *buf = NULL;
	int r = 0;

	while (n > 0 && in >= 0) {
		ssize_t c = copy_file_range(in, &ip, out, &op, (size_t)n, 0);
		if (c < 0 && errno == EINTR)
			continue;
		if (c <= 0)
			break;   /* not here (EXDEV ...), or the end of a base's file */
		n -= (uint64_t)c;
	}
	while (n > 0 && r == 0) {
		size_t k = n < chunk ? (size_t)n : chunk, done;
		if (!buf && !(buf = malloc(chunk)))
			return vmb_err_set(err, ENOMEM, "cannot copy '%s': out of memory", img->name);
		if (in < 0)
			r = vmb_img_base_read(img, buf, k, (uint64_t)ip, err);
		else if (vmb_pread_full(in, buf, k, (uint64_t)ip) < 0)
			r = vmb_err_sys(err, errno, "cannot read '%s'", img->name);
		if (r == 0 && (r = vmb_pwrite_full(out, buf, k, (uint64_t)op, &done)) < 0)
			r = vmb_err_sys(err, -r, "cannot write a copy of '%s'", img->name);
		ip += (loff_t)k;
		op += (loff_t)k;
		n -= k;
	}
	free(buf);
	return r;
}

/* Install fd over dirfd/name (install), with h told before and after. */
static int install_hooked(struct vmb_image *img, int dirfd, const char *name, int fd,
			  char *tmp, size_t tsize, const struct vmb_image_hooks *h,
			  struct vmb_err *err)
{
	int r = 0;

	if (h && h->prepare)
		r = h->prepare(h->arg, fd, err);
	if (r < 0)
		return r;
	r = install(dirfd, name, fd, tmp, tsize, img->log, err);
	if (h && h->prepare && h->finish)
		h->finish(h->arg, r == 0);
	return r;
}

int vmb_image_flatten(struct vmb_image *img, int dirfd, const char *name, struct vmb_err *err)
{
	return vmb_image_flatten2(img, dirfd, name, NULL, err);
}

int vmb_image_flatten2(struct vmb_image *img, int dirfd, const char *name,
		       const struct vmb_image_hooks *h, struct vmb_err *err)
{
	struct vmb_blockmap m;
	struct timespec ts[2];
	struct stat st;
	char tmp[64];
	uint64_t pos, size;
	int fd = -1, r;

	r = vmb_img_check_writable(img, err);
	if (r < 0)
		return r;
	vmb_blockmap_init(&m);
	tmp[0] = '\0';
	pthread_mutex_lock(&img->wlock);
	vmb_image_drain(img);
	r = vmb_img_revalidate_locked(img, err);
	if (r < 0 || !img->base)
		goto out;
	vmb_img_give_back(img);
	size = img->size;
	if (fstat(img->fd, &st) < 0) {
		r = vmb_err_sys(err, errno, "cannot stat '%s'", img->name);
		goto out;
	}
	fd = r = new_backing(dirfd, name, st.st_mode, tmp, sizeof(tmp), err);
	if (r < 0)
		goto out;
	r = copy_attrs(img->fd, &st, fd, img->name, err);
	if (r == 0 && ftruncate(fd, (off_t)size) < 0)
		r = vmb_err_sys(err, errno, "cannot size a copy of '%s'", img->name);
	if (r == 0 && size > 0)
		r = vmb_blockmap_set(&m, 0, blocks_for(size), VMB_ZERO) < 0 ?
		    vmb_err_set(err, ENOMEM, "out of memory") : 0;
	for (pos = 0; r == 0 && pos < size;) {
		uint64_t run, stop;
		enum vmb_src s;
		int bfd = -1;

		pthread_mutex_lock(&img->mlock);
		s = vmb_img_chain_get(img, pos / BS, &run, &bfd);
		pthread_mutex_unlock(&img->mlock);
		stop = run >= VMB_BLOCK_MAX - pos / BS || (pos / BS + run) * BS > size ?
		       size : (pos / BS + run) * BS;
		if (s != VMB_SRC_ZERO) {
			r = copy_out(img, s == VMB_SRC_DELTA ? img->fd : bfd, fd, pos, stop - pos,
				     err);
			if (r == 0 && vmb_blockmap_set(&m, pos / BS, blocks_for(stop) - pos / BS,
						       VMB_DATA) < 0)
				r = vmb_err_set(err, ENOMEM, "out of memory");
		}
		pos = stop;
	}
	ts[0] = st.st_atim;
	ts[1] = st.st_mtim;
	if (r == 0 && futimens(fd, ts) < 0)
		r = vmb_err_sys(err, errno, "cannot set the times of a copy of '%s'", img->name);
	if (r == 0 && vmb_fsync(fd) < 0)
		r = vmb_err_sys(err, errno, "cannot sync a copy of '%s'", img->name);
	if (r == 0)
		r = install_hooked(img, dirfd, name, fd, tmp, sizeof(tmp), h, err);
	if (r < 0)
		goto out;
	r = switch_backing(img, fd, &m, NULL, 0, err);
	fd = -1;
out:
	if (fd >= 0)
		close(fd);
	if (tmp[0])
		unlinkat(dirfd, tmp, 0);
	vmb_img_refresh_known(img);
	pthread_mutex_unlock(&img->wlock);
	vmb_blockmap_destroy(&m);
	if (r < 0)
		return vmb_err_prefix(err, "cannot flatten '%s'", name);
	return 0;
}

/* ---- freeze ---- */

/* The delta adds nothing to its base: no DATA or ZERO block, the whole base below
 * the limit, the base's size. Its content is its base's. Caller holds wlock. */
static int delta_is_empty(struct vmb_image *img)
{
	uint64_t found;

	return img->base && img->size == img->base->size &&
	       img->limit >= blocks_for(img->base->size) &&
	       vmb_blockmap_next(&img->map, 0, VMB_M_DATA | VMB_M_ZERO, &found) < 0;
}

int vmb_image_freeze(struct vmb_image *img, struct vmb_layers *ls, int dirfd,
		     const char *name, char id[VMB_BASE_ID_LEN + 1], uint64_t *new_ino,
		     struct vmb_err *err)
{
	return vmb_image_freeze2(img, ls, dirfd, name, NULL, id, new_ino, err);
}

int vmb_image_freeze2(struct vmb_image *img, struct vmb_layers *ls, int dirfd,
		      const char *name, const struct vmb_image_hooks *h,
		      char id[VMB_BASE_ID_LEN + 1], uint64_t *new_ino, struct vmb_err *err)
{
	struct vmb_blockmap empty;
	struct vmb_base *nb = NULL;
	struct vmb_baseref ref;
	struct timespec ts[2];
	struct stat st;
	char tmp[64];
	int fd = -1, made = 0, r;

	*new_ino = 0;
	r = vmb_img_check_writable(img, err);
	if (r < 0)
		return vmb_err_prefix(err, "cannot freeze '%s'", name);
	vmb_blockmap_init(&empty);
	tmp[0] = '\0';
	pthread_mutex_lock(&img->wlock);
	/* every accepted write is in the backing file, or the freeze fails */
	r = vmb_dio_drain(&img->dio, 1, NULL);
	if (r < 0) {
		r = vmb_err_sys(err, -r, "an accepted write to '%s' failed", img->name);
		goto out;
	}
	r = vmb_img_revalidate_locked(img, err);
	if (r < 0)
		goto out;
	r = 0;
	vmb_img_give_back(img);
	if (delta_is_empty(img)) {   /* its content is its base's: not frozen again */
		memcpy(id, img->base->id, VMB_BASE_ID_LEN + 1);
		goto out;
	}
	if (fstat(img->fd, &st) < 0) {
		r = vmb_err_sys(err, errno, "cannot stat '%s'", img->name);
		goto out;
	}
	if (st.st_nlink > 1) {
		/* its other names would keep the inode that becomes the layer */
		r = vmb_err_set(err, EMLINK, "'%s' has %llu hard links: a file with other "
				"names cannot be frozen (copy it first)", img->name,
				(unsigned long long)st.st_nlink);
		goto out;
	}
	r = vmb_layers_create(ls, img->fd, &img->map, img->size, img->base, img->limit, id,
			      err);
	if (r < 0)
		goto out;
	made = 1;
	r = vmb_layers_get(ls, id, &nb, err);
	if (r < 0)
		goto out;
	/* the new delta: empty, over the layer, the old file's size, owner, mode,
	 * xattrs and times */
	memset(&ref, 0, sizeof(ref));
	memcpy(ref.id, id, sizeof(ref.id));
	ref.limit = blocks_for(img->size);
	fd = r = new_backing(dirfd, name, st.st_mode, tmp, sizeof(tmp), err);
	if (r < 0)
		goto out;
	r = copy_attrs(img->fd, &st, fd, img->name, err);
	if (r == 0 && ftruncate(fd, (off_t)img->size) < 0)
		r = vmb_err_sys(err, errno, "cannot size the new delta of '%s'", img->name);
	if (r == 0)
		r = vmb_image_set_base_xattr(fd, img->name, ref.id, ref.limit, err);
	ts[0] = st.st_atim;
	ts[1] = st.st_mtim;
	if (r == 0 && futimens(fd, ts) < 0)
		r = vmb_err_sys(err, errno, "cannot set the times of '%s'", img->name);
	if (r == 0)
		r = save_empty_map(fd, img->mapdir, img->name, &ref, err);
	if (r == 0 && vmb_fsync(fd) < 0)
		r = vmb_err_sys(err, errno, "cannot sync the new delta of '%s'", img->name);
	if (r == 0)
		r = install_hooked(img, dirfd, name, fd, tmp, sizeof(tmp), h, err);
	if (r < 0)
		goto out;
	made = 0;   /* the name is on the new delta: the layer is the old content */
	{
		struct vmb_err e;
		vmb_err_clear(&e);
		if (vmb_layers_seal(ls, id, &e) < 0)   /* fsck seals it */
			vmb_log_msg(img->log, "freeze of '%s': %s", img->name, e.msg);
	}
	r = switch_backing(img, fd, &empty, nb, ref.limit, err);
	fd = -1;
	nb = NULL;
	*new_ino = img->ino;
	if (r < 0) {   /* frozen; only the new (empty) map is not saved yet */
		vmb_log_msg(img->log, "%s", err ? err->msg : "cannot save a map");
		r = 0;
	}
out:
	if (fd >= 0) {
		char scname[VMB_SIDECAR_NAME_MAX];
		struct stat nst;
		if (fstat(fd, &nst) == 0) {
			vmb_sidecar_name(nst.st_ino, scname);
			vmb_sidecar_remove(img->mapdir, scname, NULL);
		}
		close(fd);
	}
	if (tmp[0])
		unlinkat(dirfd, tmp, 0);
	if (made) {
		/* the file stays as it was: its inode is no layer (its mode never changed) */
		struct vmb_err e;
		vmb_err_clear(&e);
		vmb_base_put(nb);
		nb = NULL;
		if (vmb_layers_remove(ls, id, &e) < 0)
			vmb_log_msg(img->log, "cannot undo the freeze of '%s' (layer '%s'): %s",
				    img->name, id, e.msg);
	}
	vmb_base_put(nb);
	vmb_img_refresh_known(img);
	pthread_mutex_unlock(&img->wlock);
	vmb_blockmap_destroy(&empty);
	if (r < 0)
		return vmb_err_prefix(err, "cannot freeze '%s'", name);
	return 0;
}

int vmb_image_freeze_offline(struct vmb_layers *ls, int dirfd, const char *name,
			     int mapdir_fd, const struct vmb_log *log,
			     char id[VMB_BASE_ID_LEN + 1], uint64_t *new_ino, struct vmb_err *err)
{
	struct vmb_base_resolver res = vmb_layers_resolver(ls);
	struct vmb_image *img = NULL;
	int fd = openat(dirfd, name, O_RDWR | O_CLOEXEC | O_NOFOLLOW), r;

	if (fd < 0)
		return vmb_err_sys(err, errno, "cannot open '%s'", name);
	r = vmb_image_open2(&img, fd, mapdir_fd, name, log, &res, err);
	if (r < 0) {
		close(fd);
		return r;
	}
	r = vmb_image_freeze(img, ls, dirfd, name, id, new_ino, err);
	vmb_image_close(img);
	return r;
}
