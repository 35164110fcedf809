/* vfs_lock.c - locks through the mount and the aux-storage policy (see vfs.h, lock.h,
 * auxfile.h). */
#include "config.h"
#include "vfs/vfs_int.h"
#include "lock/auxfile.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void vmb_vfs_lock_interrupt(struct vmb_lock_wait *w)
{
	vmb_lock_interrupt(w);
}

pid_t vmb_vfs_tgid_of(pid_t tid)
{
	return vmb_tgid_of(tid);
}

static struct vmb_lockset *node_locks(struct vmb_vfs *v, struct vmb_node *n)
{
	struct vmb_lockset *ls;

	pthread_mutex_lock(&n->ilock);
	if (!n->locks) {
		n->locks = malloc(sizeof(*n->locks));
		if (n->locks)
			vmb_lockset_init(n->locks, (uint64_t)n->ino, v->store.metafd, &v->waits);
	}
	ls = n->locks;
	pthread_mutex_unlock(&n->ilock);
	return ls;
}

int vmb_vfs_getlk(struct vmb_vfs *v, struct vmb_file *f, uint64_t owner, struct flock *fl,
		  struct vmb_err *err)
{
	struct vmb_lockset *ls = node_locks(v, f->node);
	char proc[64];

	if (!ls)
		return vmb_err_set(err, ENOMEM, "out of memory");
	vmb_node_procpath(f->node, proc);
	return vmb_lock_get(ls, proc, f, owner, fl, err);
}

int vmb_vfs_setlk(struct vmb_vfs *v, struct vmb_file *f, uint64_t owner, pid_t pid,
		  const struct flock *fl, struct vmb_lock_wait *wait, struct vmb_err *err)
{
	struct vmb_lockset *ls = node_locks(v, f->node);
	char proc[64];

	if (!ls)
		return vmb_err_set(err, ENOMEM, "out of memory");
	vmb_node_procpath(f->node, proc);
	return vmb_lock_set(ls, proc, f, owner, pid, fl, wait, err);
}

int vmb_vfs_flock(struct vmb_vfs *v, struct vmb_file *f, uint64_t owner, pid_t pid, int op,
		  struct vmb_lock_wait *wait, struct vmb_err *err)
{
	struct vmb_lockset *ls = node_locks(v, f->node);
	char proc[64];

	if (!ls)
		return vmb_err_set(err, ENOMEM, "out of memory");
	vmb_node_procpath(f->node, proc);
	return vmb_lock_flock(ls, proc, f, owner, pid, op, wait, err);
}

void vmb_vfs_flush(struct vmb_vfs *v, struct vmb_file *f, uint64_t owner)
{
	struct vmb_lockset *ls;

	pthread_mutex_lock(&f->node->ilock);
	ls = f->node->locks;
	pthread_mutex_unlock(&f->node->ilock);
	if (ls)
		vmb_lock_flush(ls, f, owner);
}

/* If this mount holds the lock on inode ino through a handle that was just closed,
 * wait for its release. 1 if it waited. */
static int settle_ino(struct vmb_vfs *v, uint64_t ino)
{
	struct vmb_lockset *ls = NULL;
	struct vmb_node *n;
	int r = 0;

	pthread_mutex_lock(&v->tlock);
	for (n = v->hash[vmb_node_hash(v->root.dev, (ino_t)ino)]; n; n = n->hnext)
		if (n->dev == v->root.dev && n->ino == (ino_t)ino)
			break;
	if (n)
		n->refs++;
	pthread_mutex_unlock(&v->tlock);
	if (!n)
		return 0;
	pthread_mutex_lock(&n->ilock);
	ls = n->locks;
	pthread_mutex_unlock(&n->ilock);
	if (ls)
		r = vmb_lock_settle(ls);
	vmb_node_put(v, n);
	return r;
}

static int check_bundle(struct vmb_vfs *v, const char *bundle, const char *target,
			const struct vmb_ctx *ctx, const char *what, struct vmb_err *err)
{
	struct vmb_inuse u;
	char who[PATH_MAX + 128];
	int r;

	r = vmb_bundle_holder(&v->store, bundle, (const char *const *)v->aux_patterns, &u, err);
	if (r > 0) {   /* the holder may just have closed it: wait for its release */
		settle_ino(v, u.ino);
		r = vmb_bundle_holder(&v->store, bundle, (const char *const *)v->aux_patterns,
				      &u, err);
	}
	if (r < 0) {
		if (r == -ENOENT)
			return 0;   /* not a bundle (yet): nothing to protect */
		return r;
	}
	if (r == 0 || (u.known && ctx && u.h.pid == vmb_tgid_of(ctx->pid)))
		return 0;
	vmb_inuse_describe(&u, who, sizeof(who));
	vmb_err_set(err, EBUSY, "refused to %s '%s': bundle '%s' is in use: %s", what, target,
		    bundle, who);
	vmb_log_msg(v->log, "%s", err ? err->msg : "bundle in use");
	return -EBUSY;
}

/* Check the bundle of rel (a path relative to the store; its first component names
 * the bundle). Paths outside the store ("/..." or "?") have nothing to protect. */
static int check_path(struct vmb_vfs *v, const char *rel, const struct vmb_ctx *ctx,
		      const char *what, struct vmb_err *err)
{
	char bundle[NAME_MAX + 1];

	if (rel[0] == '/' || rel[0] == '?')
		return 0;
	snprintf(bundle, sizeof(bundle), "%.*s", (int)strcspn(rel, "/"), rel);
	return check_bundle(v, bundle, rel, ctx, what, err);
}

int vmb_check_not_in_use(struct vmb_vfs *v, struct vmb_node *parent, const char *name,
			 const struct vmb_ctx *ctx, const char *what, struct vmb_err *err)
{
	char target[PATH_MAX + NAME_MAX + 2], rel[PATH_MAX];

	if (parent == &v->root)
		return check_path(v, name, ctx, what, err);
	vmb_node_relpath(v, parent, rel, sizeof(rel));   /* one readlink */
	if (rel[0] == '/' || rel[0] == '?')
		return 0;
	snprintf(target, sizeof(target), "%s/%s", rel, name);
	return check_path(v, target, ctx, what, err);
}

int vmb_check_node_not_in_use(struct vmb_vfs *v, struct vmb_node *n,
			      const struct vmb_ctx *ctx, const char *what, struct vmb_err *err)
{
	char rel[PATH_MAX];

	vmb_node_relpath(v, n, rel, sizeof(rel));
	return check_path(v, rel, ctx, what, err);
}

ssize_t vmb_lock_xattr(struct vmb_vfs *v, struct vmb_node *n, void *buf, size_t size)
{
	struct vmb_lockset *ls;
	struct vmb_holder h;
	char text[256], proc[64];
	int found = 0, len;

	if (!S_ISREG(n->type))
		return -ENODATA;
	pthread_mutex_lock(&n->ilock);
	ls = n->locks;
	pthread_mutex_unlock(&n->ilock);
	if (ls)
		found = vmb_lock_any(ls, &h);
	if (!found) {   /* held through another mount, or directly on the backing file? */
		struct flock fl;
		int fd;

		vmb_node_procpath(n, proc);
		fd = open(proc, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		memset(&fl, 0, sizeof(fl));
		fl.l_type = F_WRLCK;
		fl.l_whence = SEEK_SET;
		if (fcntl(fd, F_OFD_GETLK, &fl) == 0 && fl.l_type != F_UNLCK) {
			found = 1;
			memset(&h, 0, sizeof(h));
			h.type = fl.l_type == F_WRLCK ? 'w' : 'r';
			h.start = (uint64_t)fl.l_start;
			h.end = fl.l_len ? h.start + (uint64_t)fl.l_len - 1 : UINT64_MAX;
			if (fl.l_pid > 0) {
				h.pid = fl.l_pid;
				vmb_comm_of(fl.l_pid, h.comm);
			} else if (!vmb_holders_find(v->store.metafd, (uint64_t)n->ino, 1, 0, 0, &h)) {
				h.pid = 0;
				snprintf(h.comm, sizeof(h.comm), "?");
			}
		}
		close(fd);
	}
	if (!found)
		return -ENODATA;
	if (h.pid > 0)
		len = snprintf(text, sizeof(text), "pid %ld (%s) holds a %s lock", (long)h.pid,
			       h.comm, h.type == 'w' ? "write" : h.type == 'r' ? "read" : "flock");
	else
		len = snprintf(text, sizeof(text), "locked (holder unknown)");
	return vmb_xattr_text(text, len, buf, size);
}
