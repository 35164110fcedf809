/* clone.c - a new bundle that shares the layers of a bundle or a snapshot (ops.h).
 *
 * Steps: DST checked (it must not exist), a locked staging directory
 * STORE/.vmbundlefs/staging/cln.* made, the new tree built in it as "tree": each
 * large (or layered) regular file of SRC frozen (the daemon's hook when mounted)
 * and a fresh empty delta over that layer made in the tree; small plain files
 * copied; directories, symlinks, FIFOs, owners, modes, times and user.* xattrs
 * reproduced; then "tree" renamed to STORE/DST (RENAME_NOREPLACE) and the
 * directory fsynced. A crash before the rename leaves only the staging directory
 * (gc removes it: nobody holds its lock) and SRC's files on new deltas over their
 * frozen content (which read the same): the old state. After it: the new state.
 *
 * The destination tree keeps one open descriptor per directory level being built.
 */
#include "config.h"
#include "base/fdio.h"
#include "store/ops_int.h"
#include "store/store.h"
#include "image/image.h"
#include "layer/layer.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#define TREE "tree"

struct cl {
	struct vmb_opctx *c;
	int *dfds;            /* dfds[d]: the destination directory at depth d (0: root) */
	struct stat *dst;     /* the source directory's stat, per depth */
	size_t cap;
	int files;
};

/* Owner, then mode, then times: as cp -p; chown to another user needs root, and
 * a refusal is not an error for a user cloning their own files. */
static int finish(int fd, const struct stat *st, const char *msg, int setmode,
		  struct vmb_err *err)
{
	struct timespec ts[2] = { st->st_atim, st->st_mtim };

	if (fchown(fd, st->st_uid, st->st_gid) < 0 && errno != EPERM)
		return vmb_err_sys(err, errno, "cannot set the owner of the copy of '%s'", msg);
	if (setmode && fchmod(fd, st->st_mode & 07777) < 0)
		return vmb_err_sys(err, errno, "cannot set the mode of the copy of '%s'", msg);
	if (futimens(fd, ts) < 0)
		return vmb_err_sys(err, errno, "cannot set the times of the copy of '%s'", msg);
	return 0;
}

static int small_copy(struct cl *k, int srcfd, int ddir, const struct vmb_tree_ent *e,
		      struct vmb_err *err)
{
	int fd, r;

	fd = openat(ddir, e->name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return vmb_err_sys(err, errno, "cannot create the copy of '%s'", e->msgpath);
	r = vmb_ops_copy_sparse(srcfd, fd, (uint64_t)e->st->st_size, e->msgpath, err);
	if (r == 0)
		r = vmb_ops_copy_xattrs(srcfd, fd, e->msgpath, err);
	if (r == 0)
		r = finish(fd, e->st, e->msgpath, 1, err);
	if (r == 0)
		r = vmb_ops_save_plain_map(k->c, fd, e->msgpath, err);
	close(fd);
	return r;
}

static int shared_file(struct cl *k, int srcfd, int ddir, const struct vmb_tree_ent *e,
		       struct vmb_err *err)
{
	char id[VMB_BASE_ID_LEN + 1];
	struct vmb_base *base = NULL;
	struct timespec ts[2];
	struct stat st;
	int fd, r;

	/* A plain file with other hard links is copied into a layer (O(data)): a
	 * freeze would make its other names the layer's data file. */
	if (e->st->st_nlink > 1 && vmb_ops_base_of(srcfd, e->msgpath, id, err) == 0)
		r = vmb_layers_create_copy(k->c->layers, srcfd, (uint64_t)e->st->st_size, id, err);
	else
		r = vmb_ops_freeze(k->c, e->dfd, e->name, e->path, id, err);
	if (r < 0)
		return vmb_err_prefix(err, "cannot clone '%s'", e->msgpath);
	if (k->files++ == 0)
		vmb_op_step("clone", 2);
	r = vmb_layers_get(k->c->layers, id, &base, err);
	if (r < 0)
		return r;
	r = vmb_image_create_delta(ddir, e->name, base, (uint64_t)e->st->st_size, e->st,
				   k->c->store->mapfd, err);
	vmb_base_put(base);
	if (r < 0)
		return r;
	fd = openat(ddir, e->name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return vmb_err_sys(err, errno, "cannot open the clone of '%s'", e->msgpath);
	r = vmb_ops_copy_xattrs(srcfd, fd, e->msgpath, err);
	/* The xattrs changed nothing but ctime; the times again anyway, in case
	 * create_delta could not set them exactly. */
	ts[0] = e->st->st_atim;
	ts[1] = e->st->st_mtim;
	if (r == 0 && fstat(fd, &st) == 0 &&
	    (st.st_mtim.tv_sec != ts[1].tv_sec || st.st_mtim.tv_nsec != ts[1].tv_nsec) &&
	    futimens(fd, ts) < 0)
		r = vmb_err_sys(err, errno, "cannot set the times of the clone of '%s'",
				e->msgpath);
	close(fd);
	return r;
}

static int cl_file(struct cl *k, int ddir, const struct vmb_tree_ent *e, struct vmb_err *err)
{
	char id[VMB_BASE_ID_LEN + 1], target[PATH_MAX];
	int fd, r, based;
	ssize_t n;

	if (S_ISREG(e->st->st_mode)) {
		fd = openat(e->dfd, e->name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return vmb_err_sys(err, errno, "cannot open '%s'", e->msgpath);
		based = vmb_ops_base_of(fd, e->msgpath, id, err);
		if (based < 0)
			r = based;
		else if (!based && (uint64_t)e->st->st_size <= VMB_CLONE_COPY_MAX)
			r = small_copy(k, fd, ddir, e, err);
		else
			r = shared_file(k, fd, ddir, e, err);
		close(fd);
		return r;
	}
	if (S_ISLNK(e->st->st_mode)) {
		struct timespec ts[2] = { e->st->st_atim, e->st->st_mtim };

		n = readlinkat(e->dfd, e->name, target, sizeof(target) - 1);
		if (n < 0)
			return vmb_err_sys(err, errno, "cannot read symbolic link '%s'",
					   e->msgpath);
		target[n] = '\0';
		if (symlinkat(target, ddir, e->name) < 0)
			return vmb_err_sys(err, errno, "cannot create the copy of '%s'",
					   e->msgpath);
		if (fchownat(ddir, e->name, e->st->st_uid, e->st->st_gid,
			     AT_SYMLINK_NOFOLLOW) < 0 && errno != EPERM)
			return vmb_err_sys(err, errno, "cannot set the owner of the copy of '%s'",
					   e->msgpath);
		if (utimensat(ddir, e->name, ts, AT_SYMLINK_NOFOLLOW) < 0)
			return vmb_err_sys(err, errno, "cannot set the times of the copy of '%s'",
					   e->msgpath);
		return 0;
	}
	/* FIFOs, sockets, device nodes: the node itself. */
	if (mknodat(ddir, e->name, e->st->st_mode, e->st->st_rdev) < 0)
		return vmb_err_sys(err, errno, "cannot create the copy of '%s'", e->msgpath);
	fd = openat(ddir, e->name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return vmb_err_sys(err, errno, "cannot open the copy of '%s'", e->msgpath);
	{
		struct timespec ts[2] = { e->st->st_atim, e->st->st_mtim };
		char p[64];

		snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
		r = 0;
		if (fchownat(fd, "", e->st->st_uid, e->st->st_gid, AT_EMPTY_PATH) < 0 &&
		    errno != EPERM)
			r = vmb_err_sys(err, errno, "cannot set the owner of the copy of '%s'",
					e->msgpath);
		else if (utimensat(AT_FDCWD, p, ts, 0) < 0)
			r = vmb_err_sys(err, errno, "cannot set the times of the copy of '%s'",
					e->msgpath);
	}
	close(fd);
	return r;
}

static int push_dir(struct cl *k, size_t depth, int fd, const struct stat *st,
		    struct vmb_err *err)
{
	if (depth >= k->cap) {
		size_t ncap = k->cap ? k->cap * 2 : 16;
		int *nd = realloc(k->dfds, ncap * sizeof(*nd));
		struct stat *ns;

		if (!nd)
			return vmb_err_set(err, ENOMEM, "out of memory");
		k->dfds = nd;
		ns = realloc(k->dst, ncap * sizeof(*ns));
		if (!ns)
			return vmb_err_set(err, ENOMEM, "out of memory");
		k->dst = ns;
		while (k->cap < ncap)
			k->dfds[k->cap++] = -1;
	}
	k->dfds[depth] = fd;
	k->dst[depth] = *st;
	return 0;
}

static int cl_ent(void *arg, enum vmb_tree_event ev, const struct vmb_tree_ent *e,
		  struct vmb_err *err)
{
	struct cl *k = arg;
	int ddir = k->dfds[e->depth - 1], fd, r;

	if (ev == VMB_TREE_DIR) {
		int sfd;

		if (mkdirat(ddir, e->name, 0700) < 0)
			return vmb_err_sys(err, errno, "cannot create the copy of '%s'",
					   e->msgpath);
		fd = openat(ddir, e->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return vmb_err_sys(err, errno, "cannot open the copy of '%s'",
					   e->msgpath);
		r = push_dir(k, e->depth, fd, e->st, err);
		if (r < 0) {
			close(fd);
			return r;
		}
		sfd = openat(e->dfd, e->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sfd < 0)
			return vmb_err_sys(err, errno, "cannot open '%s'", e->msgpath);
		r = vmb_ops_copy_xattrs(sfd, fd, e->msgpath, err);
		close(sfd);
		return r;
	}
	if (ev == VMB_TREE_DIR_POST) {
		fd = k->dfds[e->depth];
		k->dfds[e->depth] = -1;
		r = finish(fd, &k->dst[e->depth], e->msgpath, 1, err);
		if (r == 0 && vmb_fsync(fd) < 0)
			r = vmb_err_sys(err, errno, "cannot sync the copy of '%s'", e->msgpath);
		close(fd);
		return r;
	}
	return cl_file(k, ddir, e, err);
}

/* The tree of a bundle into cln/TREE. */
static int from_bundle(struct vmb_opctx *c, const char *src, int cln, struct vmb_err *err)
{
	struct cl k = { .c = c };
	struct stat st;
	int sfd, root = -1, r, paused = 0;
	size_t i;

	sfd = openat(c->store->dirfd, src, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (sfd < 0 || fstat(sfd, &st) < 0) {
		r = vmb_err_sys(err, errno, "cannot open bundle '%s'", src);
		goto out;
	}
	if (mkdirat(cln, TREE, 0700) < 0 ||
	    (root = openat(cln, TREE, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
		r = vmb_err_sys(err, errno, "cannot create the new bundle");
		goto out;
	}
	r = push_dir(&k, 0, root, &st, err);
	if (r < 0) {
		close(root);
		goto out;
	}
	r = vmb_ops_copy_xattrs(sfd, root, src, err);
	if (r < 0)
		goto out;
	if (c->pause) {
		r = c->pause(c->arg, src, err);
		if (r < 0)
			goto out;
		paused = 1;
	}
	r = vmb_tree_walk(sfd, src, cl_ent, &k, err);
	if (paused)
		c->resume(c->arg, src);
	if (r == 0)
		r = finish(root, &st, src, 1, err);
	if (r == 0 && vmb_fsync(root) < 0)
		r = vmb_err_sys(err, errno, "cannot sync the new bundle");
out:
	/* Depth 0 is root; deeper ones are still open only after a failure. */
	for (i = 1; i < k.cap; i++)
		if (k.dfds[i] >= 0)
			close(k.dfds[i]);
	if (root >= 0)
		close(root);
	free(k.dfds);
	free(k.dst);
	if (sfd >= 0)
		close(sfd);
	return r;
}

/* ---- from a snapshot ---- */

static void stat_of(const struct vmb_mf_ent *me, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_mode = (mode_t)me->mode | (me->kind == 'd' ? S_IFDIR : me->kind == 'f' ?
					   S_IFREG : S_IFLNK);
	st->st_uid = me->uid;
	st->st_gid = me->gid;
	st->st_size = (off_t)me->size;
	st->st_mtim.tv_sec = (time_t)me->mtime_sec;
	st->st_mtim.tv_nsec = me->mtime_nsec;
	st->st_atim = st->st_mtim;
}

static int set_xattrs(int fd, const struct vmb_mf_ent *me, struct vmb_err *err)
{
	size_t j;

	for (j = 0; j < me->nxattrs; j++)
		if (fsetxattr(fd, me->xattrs[j].name, me->xattrs[j].value, me->xattrs[j].len,
			      0) < 0)
			return vmb_err_sys(err, errno, "cannot set xattr '%s' on '%s'",
					   me->xattrs[j].name, me->path);
	return 0;
}

/* A small file of a snapshot becomes a plain file again: its bytes read through
 * its layer, all-zero blocks left as holes. */
static int small_from_base(struct vmb_opctx *c, int root, const struct vmb_mf_ent *me,
			   struct vmb_base *b, struct vmb_err *err)
{
	static const char zero[4096];
	char *buf = NULL;
	int fd, r = 0;
	uint64_t off;

	fd = openat(root, me->path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return vmb_err_sys(err, errno, "cannot create '%s'", me->path);
	buf = malloc(me->size ? me->size : 1);
	if (!buf) {
		r = vmb_err_set(err, ENOMEM, "out of memory");
		goto out;
	}
	if (me->size) {
		ssize_t n = b->ops->read(b, buf, me->size, 0, err);
		if (n < 0) {
			r = (int)n;
			goto out;
		}
	}
	for (off = 0; off < me->size; off += 4096) {
		size_t len = me->size - off < 4096 ? (size_t)(me->size - off) : 4096;
		if (!memcmp(buf + off, zero, len))
			continue;
		if (pwrite(fd, buf + off, len, (off_t)off) != (ssize_t)len) {
			r = vmb_err_sys(err, errno ? errno : EIO, "cannot write '%s'", me->path);
			goto out;
		}
	}
	if (ftruncate(fd, (off_t)me->size) < 0 || vmb_fsync(fd) < 0)
		r = vmb_err_sys(err, errno, "cannot write '%s'", me->path);
	(void)c;
out:
	free(buf);
	close(fd);
	return r;
}

static int from_snapshot(struct vmb_opctx *c, const char *spec, int cln, struct vmb_err *err)
{
	struct vmb_manifest m = { 0 };
	struct vmb_base *b;
	struct stat st;
	int sfd, root = -1, fd, r;
	size_t i;

	sfd = vmb_ops_snapdir(c->store, 0, err);
	if (sfd == -ENOENT)
		return vmb_err_set(err, ENOENT, "no bundle or snapshot '%s' in store '%s'", spec,
				   c->store->path);
	if (sfd < 0)
		return sfd;
	r = vmb_manifest_read(sfd, spec, &m, err);
	close(sfd);
	if (r == -ENOENT)
		return vmb_err_set(err, ENOENT, "no bundle or snapshot '%s' in store '%s'", spec,
				   c->store->path);
	if (r < 0)
		return r;
	if (mkdirat(cln, TREE, 0700) < 0 ||
	    (root = openat(cln, TREE, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
		r = vmb_err_sys(err, errno, "cannot create the new bundle");
		goto out;
	}
	for (i = 0; i < m.n && r == 0; i++) {
		const struct vmb_mf_ent *me = &m.ents[i];

		stat_of(me, &st);
		if (me->kind == 'd') {
			if (i > 0 && mkdirat(root, me->path, 0700) < 0) {
				r = vmb_err_sys(err, errno, "cannot create '%s'", me->path);
				break;
			}
			fd = openat(root, me->path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
				    O_CLOEXEC);
		} else if (me->kind == 'l') {
			struct timespec ts[2] = { st.st_mtim, st.st_mtim };
			if (symlinkat(me->target, root, me->path) < 0 ||
			    (fchownat(root, me->path, me->uid, me->gid, AT_SYMLINK_NOFOLLOW) < 0 &&
			     errno != EPERM) ||
			    utimensat(root, me->path, ts, AT_SYMLINK_NOFOLLOW) < 0)
				r = vmb_err_sys(err, errno, "cannot create '%s'", me->path);
			continue;
		} else {
			r = vmb_layers_get(c->layers, me->id, &b, err);
			if (r < 0)
				break;
			if (me->size <= VMB_CLONE_COPY_MAX) {
				r = small_from_base(c, root, me, b, err);
			} else {
				/* In its own directory, by its last name. */
				const char *slash = strrchr(me->path, '/');
				char *dir = slash ? strndup(me->path, (size_t)(slash - me->path)) :
					NULL;
				int dfd = slash ? (dir ? openat(root, dir, O_RDONLY | O_DIRECTORY |
								 O_NOFOLLOW | O_CLOEXEC) : -1) :
					root;

				if (dfd < 0)
					r = vmb_err_sys(err, dir ? errno : ENOMEM, "cannot open the "
							"directory of '%s'", me->path);
				else
					r = vmb_image_create_delta(dfd, slash ? slash + 1 : me->path,
								   b, me->size, &st,
								   c->store->mapfd, err);
				if (slash && dfd >= 0)
					close(dfd);
				free(dir);
			}
			vmb_base_put(b);
			if (r < 0)
				break;
			fd = openat(root, me->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		}
		if (fd < 0) {
			r = vmb_err_sys(err, errno, "cannot open '%s'", me->path);
			break;
		}
		r = set_xattrs(fd, me, err);
		if (r == 0 && me->kind == 'f')
			r = finish(fd, &st, me->path, 1, err);
		if (r == 0 && me->kind == 'f' && me->size <= VMB_CLONE_COPY_MAX)
			r = vmb_ops_save_plain_map(c, fd, me->path, err);
		close(fd);
	}
	/* Directories last, deepest first: their modes (maybe read-only) and times. */
	for (i = m.n; r == 0 && i-- > 0;) {
		if (m.ents[i].kind != 'd')
			continue;
		stat_of(&m.ents[i], &st);
		fd = openat(root, m.ents[i].path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0) {
			r = vmb_err_sys(err, errno, "cannot open '%s'", m.ents[i].path);
			break;
		}
		r = finish(fd, &st, m.ents[i].path, 1, err);
		if (r == 0 && vmb_fsync(fd) < 0)
			r = vmb_err_sys(err, errno, "cannot sync '%s'", m.ents[i].path);
		close(fd);
	}
out:
	if (root >= 0)
		close(root);
	vmb_manifest_free(&m);
	return r;
}

int vmb_op_clone(struct vmb_opctx *c, const char *src, const char *dst, struct vmb_err *err)
{
	char cname[NAME_MAX + 1];
	struct stat st;
	int stagefd = -1, cln = -1, r, snap = 0;

	r = vmb_name_check_new(dst, err);
	if (r < 0)
		return vmb_err_prefix(err, "bad bundle name");
	if (vmb_store_reserved(dst) || dst[0] == '.')
		return vmb_err_set(err, EINVAL, "bad bundle name '%s': a new bundle's name may "
				   "not start with '.'", dst);
	if (fstatat(c->store->dirfd, dst, &st, AT_SYMLINK_NOFOLLOW) == 0)
		return vmb_err_set(err, EEXIST, "'%s' exists in store '%s'", dst, c->store->path);
	if (errno != ENOENT)
		return vmb_err_sys(err, errno, "cannot look up '%s'", dst);
	/* SRC: a snapshot BUNDLE@NAME, else a bundle of that name (one holding '@'
	 * never hides a snapshot: vmb_snapshot_exists). */
	r = vmb_snapshot_exists(c->store->metafd, src) ? -ENOENT :
		vmb_ops_bundle_check(c, src, err);
	if (r == -ENOENT && strchr(src, '@')) {
		char *b, *n;

		r = vmb_snapshot_split(src, &b, &n, err);
		if (r < 0)
			return r;
		free(b);
		free(n);
		snap = 1;
	} else if (r < 0) {
		return r;
	}
	r = vmb_store_staging_create(c->store, VMB_OPS_CLONE_PREFIX, &stagefd, &cln, cname, err);
	if (r < 0)
		return r;
	vmb_op_step("clone", 1);
	r = snap ? from_snapshot(c, src, cln, err) : from_bundle(c, src, cln, err);
	if (r < 0)
		goto fail;
	vmb_op_step("clone", 3);
	if (renameat2(cln, TREE, c->store->dirfd, dst, RENAME_NOREPLACE) < 0) {
		r = errno == EEXIST ?
			vmb_err_set(err, EEXIST, "'%s' exists in store '%s'", dst, c->store->path) :
			vmb_err_sys(err, errno, "cannot rename the new bundle to '%s'", dst);
		goto fail;
	}
	if (vmb_fsync(c->store->dirfd) < 0)
		vmb_log_msg(c->log, "clone '%s': cannot sync the store's directory: %s", dst,
			    strerror(errno));
	vmb_op_step("clone", 4);
	unlinkat(stagefd, cname, AT_REMOVEDIR);
	close(cln);
	close(stagefd);
	return 0;
fail:
	{
		struct vmb_err e2;
		if (vmb_tree_remove(stagefd, cname, c->store->mapfd, &e2) < 0)
			vmb_log_msg(c->log, "clone '%s': cannot remove its staging directory: %s "
				    "(gc removes it)", dst, e2.msg);
	}
	close(cln);
	close(stagefd);
	return r;
}
