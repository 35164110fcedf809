/* vfs_ns.c - the namespace: make, link, remove, rename (see vfs.h). */
#include "config.h"
#include "vfs/vfs_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

void vmb_give_to_caller(struct vmb_node *parent, const char *name,
			   const struct vmb_ctx *ctx)
{
	struct stat pst;
	gid_t gid = ctx->gid;

	if (geteuid() != 0)
		return;
	if (fstatat(parent->fd, "", &pst, AT_EMPTY_PATH) == 0 && (pst.st_mode & S_ISGID))
		gid = pst.st_gid;
	if (ctx->uid == 0 && gid == 0)
		return;
	(void)!fchownat(parent->fd, name, ctx->uid, gid, AT_SYMLINK_NOFOLLOW);
}

enum make_kind { MK_DIR, MK_FILE, MK_SYMLINK };

static int make_entry(struct vmb_vfs *v, const struct vmb_ctx *ctx, uint64_t parent,
		      const char *name, enum make_kind kind, mode_t mode, const char *target,
		      struct vmb_entry *e, struct vmb_err *err)
{
	struct vmb_node *p;
	int fd, r;

	r = vmb_node_get(v, parent, &p);
	if (r < 0)
		return r;
	r = vmb_check_new_name(v, p, name, kind == MK_DIR, err);
	if (r < 0)
		goto out;
	switch (kind) {
	case MK_DIR:
		r = mkdirat(p->fd, name, mode & 07777);
		break;
	case MK_FILE:
		fd = openat(p->fd, name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW,
			    mode & 07777);
		r = fd < 0 ? -1 : close(fd);
		break;
	case MK_SYMLINK:
		r = symlinkat(target, p->fd, name);
		break;
	}
	if (r < 0) {
		r = -errno;
		goto out;
	}
	vmb_give_to_caller(p, name, ctx);
	r = vmb_node_lookup(v, p, name, e, err);
out:
	vmb_node_put(v, p);
	return r;
}

int vmb_vfs_mkdir(struct vmb_vfs *v, const struct vmb_ctx *ctx, uint64_t parent,
		  const char *name, mode_t mode, struct vmb_entry *e, struct vmb_err *err)
{
	return make_entry(v, ctx, parent, name, MK_DIR, mode, NULL, e, err);
}

int vmb_vfs_mknod(struct vmb_vfs *v, const struct vmb_ctx *ctx, uint64_t parent,
		  const char *name, mode_t mode, dev_t rdev, struct vmb_entry *e,
		  struct vmb_err *err)
{
	if (!S_ISREG(mode))
		return vmb_err_set(err, EPERM, "a bundle holds no device nodes, FIFOs or "
				   "sockets: cannot create '%s'", name);
	return make_entry(v, ctx, parent, name, MK_FILE, mode, NULL, e, err);
}

int vmb_vfs_symlink(struct vmb_vfs *v, const struct vmb_ctx *ctx, const char *target,
		    uint64_t parent, const char *name, struct vmb_entry *e, struct vmb_err *err)
{
	return make_entry(v, ctx, parent, name, MK_SYMLINK, 0777, target, e, err);
}

int vmb_vfs_link(struct vmb_vfs *v, uint64_t ino, uint64_t newparent, const char *newname,
		 struct vmb_entry *e, struct vmb_err *err)
{
	struct vmb_node *n, *p;
	char proc[64];
	int r;

	r = vmb_node_get(v, ino, &n);
	if (r < 0)
		return r;
	r = vmb_node_get(v, newparent, &p);
	if (r < 0) {
		vmb_node_put(v, n);
		return r;
	}
	r = vmb_check_new_name(v, p, newname, S_ISDIR(n->type), err);
	if (r < 0)
		goto out;
	if (S_ISDIR(n->type)) {
		r = -EPERM;
		goto out;
	}
	if (S_ISLNK(n->type)) {
		r = linkat(n->fd, "", p->fd, newname, AT_EMPTY_PATH);
	} else {
		vmb_node_procpath(n, proc);
		r = linkat(AT_FDCWD, proc, p->fd, newname, AT_SYMLINK_FOLLOW);
	}
	if (r < 0) {
		r = -errno;
		goto out;
	}
	r = vmb_node_lookup(v, p, newname, e, err);
	/* The backing file's ctime moved: save the map with the new stamp. */
	pthread_mutex_lock(&n->ilock);
	if (n->img)
		vmb_image_touch(n->img);
	pthread_mutex_unlock(&n->ilock);
out:
	vmb_node_put(v, p);
	vmb_node_put(v, n);
	return r;
}

/* Stat name in dir; 1 and *st when it exists. */
static int peek(int dirfd, const char *name, struct stat *st)
{
	return fstatat(dirfd, name, st, AT_SYMLINK_NOFOLLOW) == 0;
}

static void after_unlink(struct vmb_vfs *v, const struct stat *victim)
{
	if (S_ISREG(victim->st_mode) && victim->st_nlink <= 1)
		vmb_forget_sidecar(v, victim->st_dev, victim->st_ino);
}

static int remove_entry(struct vmb_vfs *v, const struct vmb_ctx *ctx, uint64_t parent,
			const char *name, int is_dir, struct vmb_err *err)
{
	struct vmb_node *p;
	struct stat st;
	int r;

	r = vmb_node_get(v, parent, &p);
	if (r < 0)
		return r;
	if (v->readonly) {
		r = -EROFS;
		goto out;
	}
	r = vmb_name_check(name, err);
	if (r < 0)
		goto out;
	if (p == &v->root && (vmb_store_reserved(name) || !is_dir)) {
		r = -ENOENT;   /* hidden at the top level */
		goto out;
	}
	if (!peek(p->fd, name, &st)) {
		r = -errno;
		goto out;
	}
	r = vmb_check_not_in_use(v, p, name, ctx, "remove", err);
	if (r < 0)
		goto out;
	if (unlinkat(p->fd, name, is_dir ? AT_REMOVEDIR : 0) < 0) {
		r = -errno;
		goto out;
	}
	if (!is_dir)
		after_unlink(v, &st);
out:
	vmb_node_put(v, p);
	return r;
}

int vmb_vfs_unlink(struct vmb_vfs *v, const struct vmb_ctx *ctx, uint64_t parent,
		   const char *name, struct vmb_err *err)
{
	return remove_entry(v, ctx, parent, name, 0, err);
}

int vmb_vfs_rmdir(struct vmb_vfs *v, const struct vmb_ctx *ctx, uint64_t parent,
		  const char *name, struct vmb_err *err)
{
	return remove_entry(v, ctx, parent, name, 1, err);
}

int vmb_vfs_rename(struct vmb_vfs *v, const struct vmb_ctx *ctx, uint64_t parent,
		   const char *name, uint64_t newparent, const char *newname, unsigned flags,
		   struct vmb_err *err)
{
	struct vmb_node *p, *np;
	struct stat src, dst;
	int have_dst, r;

	if (flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE))
		return vmb_err_set(err, EINVAL, "unsupported rename flags 0x%x", flags);
	r = vmb_node_get(v, parent, &p);
	if (r < 0)
		return r;
	r = vmb_node_get(v, newparent, &np);
	if (r < 0) {
		vmb_node_put(v, p);
		return r;
	}
	if (v->readonly) {
		r = -EROFS;
		goto out;
	}
	r = vmb_name_check(name, err);
	if (r < 0)
		goto out;
	if ((p == &v->root && vmb_store_reserved(name)) || !peek(p->fd, name, &src)) {
		r = -ENOENT;
		goto out;
	}
	if (p == &v->root && !S_ISDIR(src.st_mode)) {
		r = -ENOENT;
		goto out;
	}
	r = vmb_check_new_name(v, np, newname, S_ISDIR(src.st_mode), err);
	if (r < 0)
		goto out;
	have_dst = peek(np->fd, newname, &dst);
	r = vmb_check_not_in_use(v, p, name, ctx, "rename", err);
	if (r == 0 && have_dst)
		r = vmb_check_not_in_use(v, np, newname, ctx, "replace", err);
	if (r < 0)
		goto out;
	if ((flags & RENAME_EXCHANGE) && have_dst && p == &v->root && !S_ISDIR(dst.st_mode)) {
		r = vmb_err_set(err, EPERM, "the top level of a store holds only bundles");
		goto out;
	}
	if (renameat2(p->fd, name, np->fd, newname, flags) < 0) {
		r = -errno;
		goto out;
	}
	if (have_dst && !(flags & RENAME_EXCHANGE) &&
	    !(dst.st_dev == src.st_dev && dst.st_ino == src.st_ino))
		after_unlink(v, &dst);
out:
	vmb_node_put(v, np);
	vmb_node_put(v, p);
	return r;
}

int vmb_vfs_readlink(struct vmb_vfs *v, uint64_t ino, char *buf, size_t size,
		     struct vmb_err *err)
{
	struct vmb_node *n;
	ssize_t len;
	int r;

	r = vmb_node_get(v, ino, &n);
	if (r < 0)
		return r;
	len = readlinkat(n->fd, "", buf, size - 1);
	if (len < 0) {
		r = -errno;
	} else {
		buf[len] = '\0';
		r = (int)len;
	}
	vmb_node_put(v, n);
	return r;
}
