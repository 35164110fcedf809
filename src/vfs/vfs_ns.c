/* vfs_ns.c - the namespace: make, link, remove, rename (see vfs.h). */
#include "config.h"
#include "vfs/vfs_int.h"

#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <linux/capability.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

/* The thread's effective capabilities (the first 64), to give back after setfsuid,
 * which drops the filesystem ones when the fsuid leaves 0. Per thread, unlike
 * glibc's setuid family. */
static int caps_get(struct __user_cap_data_struct d[2])
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };

	return (int)syscall(SYS_capget, &h, d);
}

static int caps_set(struct __user_cap_data_struct d[2])
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };

	return (int)syscall(SYS_capset, &h, d);
}

/* Whether this thread has its own umask (unshare(CLONE_FS)); the umask is otherwise
 * shared by every thread of the process. */
static __thread int own_umask;

int vmb_as_caller_begin(const struct vmb_ctx *ctx, struct vmb_as_caller *s,
			struct vmb_err *err)
{
	memset(s, 0, sizeof(*s));
	/* The mode given is exact (the caller's umask is applied to it once, by the
	 * caller of this): the daemon's umask must not mask it again. */
	if (!own_umask) {
		if (unshare(CLONE_FS) < 0)
			return vmb_err_sys(err, errno, "cannot give a thread its own umask");
		own_umask = 1;
	}
	s->old_umask = umask(0);
	s->umask_set = 1;
	if (geteuid() != 0 || (ctx->uid == 0 && ctx->gid == 0))
		return 0;
	if (caps_get(s->caps) < 0)
		return vmb_err_sys(err, errno, "cannot read the daemon's capabilities");
	s->switched = 1;
	setfsgid(ctx->gid);
	setfsuid(ctx->uid);
	if ((uid_t)setfsuid((uid_t)-1) != ctx->uid || (gid_t)setfsgid((gid_t)-1) != ctx->gid) {
		vmb_as_caller_end(s);
		return vmb_err_set(err, EPERM, "cannot act as uid %u gid %u",
				   (unsigned)ctx->uid, (unsigned)ctx->gid);
	}
	/* The kernel has checked the caller's permissions (default_permissions): keep
	 * the daemon's, so only the new entry's owner changes. */
	if (caps_set(s->caps) < 0) {
		int e = errno;
		vmb_as_caller_end(s);
		return vmb_err_sys(err, e, "cannot keep the daemon's capabilities");
	}
	return 0;
}

void vmb_as_caller_end(struct vmb_as_caller *s)
{
	int e = errno;

	if (s->umask_set)
		umask(s->old_umask);
	s->umask_set = 0;
	if (s->switched) {
		setfsuid(0);
		setfsgid(0);
		(void)caps_set(s->caps);
		s->switched = 0;
	}
	errno = e;
}

enum make_kind { MK_DIR, MK_FILE, MK_SYMLINK, MK_SPECIAL };

static int make_entry(struct vmb_vfs *v, const struct vmb_ctx *ctx, uint64_t parent,
		      const char *name, enum make_kind kind, mode_t mode, const char *target,
		      struct vmb_entry *e, struct vmb_err *err)
{
	struct vmb_as_caller as;
	struct vmb_node *p;
	int fd, r;

	r = vmb_node_get(v, parent, &p);
	if (r < 0)
		return r;
	vmb_change_begin(v, p, name);
	r = vmb_check_new_name(v, p, name, kind == MK_DIR, err);
	if (r < 0)
		goto out;
	r = vmb_as_caller_begin(ctx, &as, err);
	if (r < 0)
		goto out;
	switch (kind) {
	case MK_DIR:
		r = mkdirat(p->fd, name, mode & 07777 & ~ctx->umask);
		break;
	case MK_FILE:
		fd = openat(p->fd, name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW,
			    mode & 07777 & ~ctx->umask);
		r = fd < 0 ? -1 : close(fd);
		break;
	case MK_SYMLINK:
		r = symlinkat(target, p->fd, name);
		break;
	case MK_SPECIAL:   /* a FIFO or a socket: no data, no map */
		r = mknodat(p->fd, name, (mode & S_IFMT) | (mode & 07777 & ~ctx->umask), 0);
		break;
	}
	vmb_as_caller_end(&as);
	if (r < 0) {
		r = -errno;
		goto out;
	}
	r = vmb_node_lookup(v, p, name, e, err);
out:
	vmb_change_end(v, p);
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
	(void)rdev;
	if (S_ISFIFO(mode) || S_ISSOCK(mode))
		return make_entry(v, ctx, parent, name, MK_SPECIAL, mode, NULL, e, err);
	if (!S_ISREG(mode))
		return vmb_err_set(err, EPERM, "a bundle holds no device nodes: cannot create "
				   "'%s'", name);
	return make_entry(v, ctx, parent, name, MK_FILE, mode, NULL, e, err);
}

int vmb_vfs_symlink(struct vmb_vfs *v, const struct vmb_ctx *ctx, const char *target,
		    uint64_t parent, const char *name, struct vmb_entry *e, struct vmb_err *err)
{
	return make_entry(v, ctx, parent, name, MK_SYMLINK, 0777, target, e, err);
}

int vmb_vfs_link(struct vmb_vfs *v, const struct vmb_ctx *ctx, uint64_t ino,
		 uint64_t newparent, const char *newname, struct vmb_entry *e,
		 struct vmb_err *err)
{
	struct vmb_node *n, *p;
	char proc[64];
	int fd, r;

	r = vmb_node_get(v, ino, &n);
	if (r < 0)
		return r;
	r = vmb_node_get(v, newparent, &p);
	if (r < 0) {
		vmb_node_put(v, n);
		return r;
	}
	vmb_change_begin(v, p, newname);
	r = vmb_check_new_name(v, p, newname, S_ISDIR(n->type), err);
	if (r < 0)
		goto out;
	if (S_ISDIR(n->type)) {
		r = -EPERM;
		goto out;
	}
	/* Bundles are linked across as subvolumes are: not (EXDEV; rsync -H copies
	 * instead, ln, cp -a and tar say so). A file with names in two bundles would be
	 * in both and protected by neither: the kernel opens a file by any of its
	 * cached names without asking, so a lock could not tell which bundle it
	 * makes in use. */
	pthread_mutex_lock(&v->tlock);
	r = vmb_node_bundle_locked(v, n) != vmb_node_bundle_locked(v, p) ? -EXDEV : 0;
	pthread_mutex_unlock(&v->tlock);
	if (r < 0)
		goto out;
	/* a new name is a change to the bundle: refused while it is in use */
	r = vmb_check_node_not_in_use(v, n, ctx, "link", err);
	if (r < 0)
		goto out;
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
	/* The new name is n's inode: build the entry from n's own descriptor, not by
	 * looking the name up again (it could be renamed over in between). */
	fd = fcntl(n->fd, F_DUPFD_CLOEXEC, 0);
	r = fd < 0 ? -errno : vmb_node_lookup_fd(v, p, fd, newname, e, err);
	/* The backing file's ctime moved: save the map with the new stamp. */
	pthread_mutex_lock(&n->ilock);
	if (n->img)
		vmb_image_touch(n->img);
	pthread_mutex_unlock(&n->ilock);
out:
	vmb_change_end(v, p);
	vmb_node_put(v, p);
	vmb_node_put(v, n);
	return r;
}

/* Stat name in dir; 1 and *st when it exists. */
static int peek(int dirfd, const char *name, struct stat *st)
{
	return fstatat(dirfd, name, st, AT_SYMLINK_NOFOLLOW) == 0;
}

/* The inode under name, held across its unlink (-1 when none or not a regular file):
 * the sidecar forgotten afterwards is the one of the inode that lost its last link,
 * whatever was renamed under the name meanwhile. */
static int hold_victim(int dirfd, const char *name)
{
	int fd = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;

	if (fd >= 0 && (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))) {
		close(fd);
		fd = -1;
	}
	return fd;
}

static void after_unlink(struct vmb_vfs *v, int victim)
{
	struct stat st;

	if (victim >= 0 && fstat(victim, &st) == 0 && st.st_nlink == 0)
		vmb_forget_sidecar(v, st.st_dev, st.st_ino);
}

static int remove_entry(struct vmb_vfs *v, const struct vmb_ctx *ctx, uint64_t parent,
			const char *name, int is_dir, struct vmb_err *err)
{
	struct vmb_node *p, *pin = NULL;
	struct stat st;
	int victim = -1, r;

	r = vmb_node_get(v, parent, &p);
	if (r < 0)
		return r;
	vmb_change_begin(v, p, name);
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
	if (p == &v->root && vmb_snapview_name(name)) {
		r = -EROFS;
		goto out;
	}
	if (!peek(p->fd, name, &st)) {
		r = -errno;
		goto out;
	}
	r = vmb_check_not_in_use(v, p, name, ctx, "remove", err);
	if (r < 0)
		goto out;
	if (!is_dir)   /* an open file keeps its descriptors once unlinked */
		pin = vmb_fds_pin(v, &st);
	if (!is_dir)
		victim = hold_victim(p->fd, name);
	if (unlinkat(p->fd, name, is_dir ? AT_REMOVEDIR : 0) < 0) {
		r = -errno;
		goto out;
	}
	vmb_aux_cache_note(v, p, name, NULL);
	vmb_node_mark_removed(v, st.st_dev, st.st_ino);
	after_unlink(v, victim);
out:
	vmb_fds_unpin(v, pin);
	if (victim >= 0)
		close(victim);
	vmb_change_end(v, p);
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
	struct vmb_node *p, *np, *pin = NULL;
	struct stat src, dst;
	int have_dst, victim = -1, r;

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
	vmb_change_begin2(v, p, name, np, newname);
	if (v->readonly) {
		r = -EROFS;
		goto out;
	}
	r = vmb_name_check(name, err);
	if (r < 0)
		goto out;
	if ((p == &v->root && vmb_snapview_name(name)) ||
	    (np == &v->root && vmb_snapview_name(newname))) {
		r = -EROFS;
		goto out;
	}
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
	if (have_dst && !(flags & RENAME_EXCHANGE) &&
	    !(dst.st_dev == src.st_dev && dst.st_ino == src.st_ino))
		pin = vmb_fds_pin(v, &dst);   /* an open file replaced keeps its descriptors */
	if (have_dst && !(flags & RENAME_EXCHANGE))
		victim = hold_victim(np->fd, newname);
	if (renameat2(p->fd, name, np->fd, newname, flags) < 0) {
		r = -errno;
		goto out;
	}
	vmb_aux_cache_note(v, p, name, NULL);
	vmb_aux_cache_note(v, np, newname, newname);
	/* the moved nodes' places (and with them the in-use counts of their bundles) */
	vmb_node_renamed(v, &src, np, newname);
	if (have_dst && (flags & RENAME_EXCHANGE))
		vmb_node_renamed(v, &dst, p, name);
	else if (have_dst && !(dst.st_dev == src.st_dev && dst.st_ino == src.st_ino))
		vmb_node_mark_removed(v, dst.st_dev, dst.st_ino);
	after_unlink(v, victim);
out:
	vmb_fds_unpin(v, pin);
	if (victim >= 0)
		close(victim);
	vmb_change_end2(v, p, np);
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

	if (vmb_snapview_is(ino))
		return vmb_snapview_readlink(v, ino, buf, size, err);
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
