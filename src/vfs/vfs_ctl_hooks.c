/* vfs_ctl_hooks.c - the daemon's side of the structural operations (store/ops.h):
 * the hooks of struct vmb_opctx and the requests of the control channel that run
 * vmb_op_* with them.
 *
 * A snapshot or clone of a bundle runs under its write barrier (vfs_barrier.c):
 * pause, every file frozen, resume. The freeze of a file the kernel knows is done
 * on the node's image (opened for the time of the freeze when it is not open), with
 * the image alone (vmb_fds_lock): vmb_image_freeze moves the image to the new
 * delta, then the node follows (vmb_node_rebind: locks, holder record, hash entry,
 * O_PATH descriptor, file handle). Lock order: barrier (barmu, released while
 * paused), then o_busy of one node, then its lockset's mu, then tlock. Never the
 * node's ilock under o_busy: a stat or an open holds ilock while it waits for
 * o_busy (the lockset is read without it: vmb_node_locks).
 */
#include "config.h"
#include "vfs/ctl.h"
#include "vfs/vfs_int.h"
#include "store/ops.h"
#include "layer/layer.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int h_pause(void *arg, const char *bundle, struct vmb_err *err)
{
	return vmb_barrier_pause(arg, bundle, err);
}

static void h_resume(void *arg, const char *bundle)
{
	(void)bundle;
	vmb_barrier_resume(arg);
}

/* After the file under dirfd/name got a new inode: the node that the kernel knows
 * by its old one (n, or one found by old) follows it. */
static void follow(struct vmb_vfs *v, struct vmb_node *n, int dirfd, const char *name,
		   const struct stat *old, const char *relpath)
{
	struct vmb_err e;
	struct stat st;
	int pfd, mine = 0;

	vmb_err_clear(&e);
	if (!n) {   /* looked up meanwhile (before the rename, on the old inode)? */
		n = vmb_node_find(v, old->st_dev, old->st_ino);
		if (!n)
			return;
		mine = 1;
	}
	pfd = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (pfd < 0 || fstat(pfd, &st) < 0 || (st.st_dev == old->st_dev &&
						st.st_ino == old->st_ino)) {
		if (pfd >= 0)
			close(pfd);
		else
			vmb_log_msg(v->log, "cannot follow '%s' to its new inode: %s", relpath,
				    strerror(errno));
		goto out;
	}
	if (vmb_node_rebind(v, n, pfd, 1, &e) < 0) {
		vmb_log_msg(v->log, "cannot follow '%s' to its new inode: %s", relpath, e.msg);
		close(pfd);
	}
out:
	if (mine)
		vmb_node_put(v, n);
}

/* The locks mirrored from the mount (n->locks) move to the new backing file before
 * the freeze or flatten renames it over the name (vmb_image_hooks): a direct
 * locker of the store's file never finds it unlocked. */
struct move_locks {
	struct vmb_vfs *v;
	const char *op;           /* VMB_OP_KILL_AT steps: "freeze", "flatten-file" */
	struct vmb_lockset *ls;   /* NULL: no locks to move */
	struct vmb_lockmove mv;
};

static int locks_prepare(void *arg, int fd, struct vmb_err *err)
{
	struct move_locks *m = arg;
	char proc[64];
	struct stat st;

	vmb_op_step(m->op, 1);   /* tests: killed with the layer made, the name not moved */
	if (!m->ls)
		return 0;
	if (fstat(fd, &st) < 0)
		return vmb_err_sys(err, errno, "cannot stat the new backing file");
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	return vmb_lockset_move_begin(m->ls, proc, (uint64_t)st.st_ino, &m->mv, err);
}

static void locks_finish(void *arg, int done)
{
	struct move_locks *m = arg;

	vmb_lockset_move_end(&m->mv, done);
	if (done)
		vmb_op_step(m->op, 2);   /* tests: killed right after the rename */
}

/* Run op (freeze or flatten) on the image of dirfd/name: the node's when the
 * kernel knows the file (opened for the time of it when not open), else one opened
 * here. */
enum hook_op { HOOK_FREEZE, HOOK_FLATTEN };

static int on_image(struct vmb_vfs *v, enum hook_op op, int dirfd, const char *name,
		    const char *relpath, char *id, struct vmb_err *err)
{
	struct vmb_base_resolver res = vmb_layers_resolver(v->layers);
	struct move_locks ml = { .v = v, .op = op == HOOK_FREEZE ? "freeze" : "flatten-file" };
	struct vmb_image_hooks hk = { locks_prepare, locks_finish, &ml };
	struct vmb_image *img = NULL;
	struct vmb_node *n;
	struct stat st;
	uint64_t new_ino = 0;
	int got = 0, locked = 0, was_open, r, fd;

	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return vmb_err_sys(err, errno, "cannot stat '%s'", relpath);
	if (!S_ISREG(st.st_mode))
		return vmb_err_set(err, EINVAL, "'%s' is not a regular file", relpath);
	n = vmb_node_find(v, st.st_dev, st.st_ino);
	if (n) {
		struct vmb_lockset *ls;
		r = vmb_fds_lock(v, n, &img, err);
		if (r == 0) {   /* not open: open it as a handle would, for the time of it */
			r = vmb_node_image_get(v, n, -1, &img, &was_open, err);
			if (r < 0)
				goto out;
			got = 1;
			r = vmb_fds_lock(v, n, &img, err);
		}
		if (r < 0)
			goto out;
		locked = r;
		/* not under ilock: o_busy is held now, and a stat or an open holds
		 * ilock while it waits for o_busy */
		ls = vmb_node_locks(n);
		ml.ls = ls;
		/* Nothing can be undone once the name names the new inode: a lock call
		 * waiting on the file makes the operation fail before it starts. */
		if (ls && (r = vmb_lockset_idle(ls, err)) < 0) {
			vmb_err_prefix(err, "cannot %s '%s'", op == HOOK_FREEZE ? "freeze" :
				       "flatten", relpath);
			goto out;
		}
	} else if (op == HOOK_FREEZE) {   /* the kernel does not know it: as offline */
		r = vmb_image_freeze_offline(v->layers, dirfd, name, v->store.mapfd, v->log, id,
					     &new_ino, err);
		if (r == 0 && new_ino)
			follow(v, NULL, dirfd, name, &st, relpath);   /* looked up meanwhile? */
		return r;
	} else {
		fd = openat(dirfd, name, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return vmb_err_sys(err, errno, "cannot open '%s'", relpath);
		r = vmb_image_open2(&img, fd, v->store.mapfd, relpath, v->log, &res, err);
		if (r < 0) {
			close(fd);
			return r;
		}
	}
	if (op == HOOK_FREEZE) {
		r = vmb_image_freeze2(img, v->layers, dirfd, name, &hk, id, &new_ino, err);
	} else {
		r = vmb_image_flatten2(img, dirfd, name, &hk, err);
		new_ino = 1;   /* follow() finds out */
	}
	if (r == 0 && new_ino && v->freeze_delay_ms)   /* tests: the name moved, not the node */
		usleep(v->freeze_delay_ms * 1000u);
	if (r == 0 && new_ino)
		follow(v, n, dirfd, name, &st, relpath);
out:
	if (locked)
		vmb_fds_unlock(v, n);
	if (got)
		vmb_node_image_put(v, n);
	if (n)
		vmb_node_put(v, n);
	else if (img)
		vmb_image_close(img);
	return r;
}

static int h_freeze(void *arg, int dirfd, const char *name, const char *relpath,
		    char id[VMB_BASE_ID_LEN + 1], struct vmb_err *err)
{
	return on_image(arg, HOOK_FREEZE, dirfd, name, relpath, id, err);
}

int vmb_ctl_freeze(struct vmb_vfs *v, int dirfd, const char *name, const char *relpath,
		   char id[VMB_BASE_ID_LEN + 1], struct vmb_err *err)
{
	return on_image(v, HOOK_FREEZE, dirfd, name, relpath, id, err);
}

static int h_flatten(void *arg, int dirfd, const char *name, const char *relpath,
		     struct vmb_err *err)
{
	return on_image(arg, HOOK_FLATTEN, dirfd, name, relpath, NULL, err);
}

/* Is layer id the base of an image open here? */
static int h_layer_busy(void *arg, const char *id)
{
	struct vmb_vfs *v = arg;
	size_t i;
	int busy = 0;

	pthread_mutex_lock(&v->tlock);
	for (i = 0; !busy && i < ((size_t)1 << VMB_HASH_BITS); i++)
		for (struct vmb_node *n = v->hash[i]; n && !busy; n = n->hnext) {
			struct vmb_base *b;
			uint64_t limit;
			pthread_mutex_lock(&n->ilock);
			b = n->img ? vmb_image_base(n->img, &limit) : NULL;
			busy = b && !strcmp(b->id, id);
			pthread_mutex_unlock(&n->ilock);
		}
	pthread_mutex_unlock(&v->tlock);
	return busy || vmb_snapview_layer_busy(v, id);
}

void vmb_ctl_opctx(struct vmb_vfs *v, struct vmb_opctx *c)
{
	memset(c, 0, sizeof(*c));
	c->store = &v->store;
	c->layers = v->layers;
	c->log = v->log;
	c->arg = v;
	c->pause = h_pause;
	c->resume = h_resume;
	c->freeze = h_freeze;
	c->flatten = h_flatten;
	c->layer_busy = h_layer_busy;
}

struct chown_to {
	uid_t uid;
	gid_t gid;
};

static int chown_one(void *arg, enum vmb_tree_event ev, const struct vmb_tree_ent *e,
		     struct vmb_err *err)
{
	struct chown_to *to = arg;

	if (ev == VMB_TREE_DIR_POST)
		return 0;
	if (fchownat(e->dfd, e->name, to->uid, to->gid, AT_SYMLINK_NOFOLLOW) < 0)
		return vmb_err_sys(err, errno, "cannot give '%s' to its cloner", e->msgpath);
	return 0;
}

/* A clone made for a user other than root is that user's, as a copy through the
 * mount would be (the daemon made it as root). */
static int give_clone(struct vmb_vfs *v, const struct vmb_ctl_caller *who, const char *dst,
		      struct vmb_err *err)
{
	struct chown_to to = { who->uid, who->gid };
	int fd, r;

	if (who->uid == 0)
		return 0;
	fd = openat(v->store.dirfd, dst, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return vmb_err_sys(err, errno, "cannot open the clone '%s'", dst);
	r = fchown(fd, to.uid, to.gid) < 0 ? vmb_err_sys(err, errno, "cannot give '%s' to "
							  "its cloner", dst) : 0;
	if (r == 0)
		r = vmb_tree_walk(fd, dst, chown_one, &to, err);
	close(fd);
	return r;
}

static int ctl_run(struct vmb_vfs *v, const char *mountpoint, const struct vmb_ctl_caller *who,
		   char **argv, int argc, char **msg, struct vmb_err *err);

int vmb_ctl_run(struct vmb_vfs *v, const char *mountpoint, const struct vmb_ctl_caller *who,
		char **argv, int argc, char **msg, struct vmb_err *err)
{
	char other[PATH_MAX + 128];
	int r;

	pthread_mutex_lock(&v->opmu);   /* beside a copy's freeze (vfs_share.c) */
	/* The command checked that the store had one mount (cli_ctl.c); a mount made
	 * since, or a client of the socket that did not ask, is refused here. */
	if (vmb_ctl_other_mount(v, other, sizeof(other)))
		r = vmb_err_set(err, EBUSY, "structural commands need a store with at most "
				"one mount; '%s' is mounted at '%s' and also at %s (one daemon "
				"could not stop the other's writes)", v->store_real, mountpoint,
				other);
	else
		r = ctl_run(v, mountpoint, who, argv, argc, msg, err);
	pthread_mutex_unlock(&v->opmu);
	/* a deleted snapshot: the kernel forgets its entry now (not at its timeout);
	 * outside opmu, as the kernel may wait for a request on .snapshots */
	if (r == 0 && argc > 1 && !strcmp(argv[0], "snapshot-delete") && v->gone)
		v->gone(v->stale_arg, vmb_snapview_dir_id(v), argv[1]);
	return r;
}

static int ctl_run(struct vmb_vfs *v, const char *mountpoint, const struct vmb_ctl_caller *who,
		   char **argv, int argc, char **msg, struct vmb_err *err)
{
	struct vmb_opctx c;
	int r;

	vmb_ctl_opctx(v, &c);
	if (!strcmp(argv[0], "snapshot")) {
		char *where = NULL;
		r = vmb_op_snapshot(&c, argv[1], argc > 2 && argv[2][0] ? argv[2] : NULL, &where,
				    err);
		if (r == 0 && asprintf(msg, "%s/.snapshots/%s", mountpoint, where) < 0) {
			*msg = NULL;
			r = vmb_err_set(err, ENOMEM, "out of memory");
		}
		free(where);
		return r;
	}
	if (!strcmp(argv[0], "snapshot-delete"))
		return vmb_op_snapshot_delete(&c, argv[1], err);
	if (!strcmp(argv[0], "flatten"))
		return vmb_op_flatten(&c, argv[1], err);
	if (!strcmp(argv[0], "clone")) {
		r = vmb_op_clone(&c, argv[1], argv[2], err);
		if (r == 0)
			r = give_clone(v, who, argv[2], err);
		return r;
	}
	if (!strcmp(argv[0], "pull")) {
		r = vmb_op_pull(&c, v->remote, argv[1], argv[2], argv[3], err);
		if (r == 0)
			r = give_clone(v, who, argv[3], err);
		return r;
	}
	if (!strcmp(argv[0], "gc")) {
		struct vmb_gc_result g;
		memset(&g, 0, sizeof(g));
		r = vmb_op_gc(&c, &g, err);
		if (r == 0 && asprintf(msg, "%s: %llu layers removed (%llu bytes), %llu kept, "
				       "%llu leftovers removed", v->store_real,
				       (unsigned long long)g.layers_removed,
				       (unsigned long long)g.bytes_freed,
				       (unsigned long long)g.layers_kept,
				       (unsigned long long)(g.orphans_removed +
							    g.staging_removed)) < 0) {
			*msg = NULL;
			r = vmb_err_set(err, ENOMEM, "out of memory");
		}
		return r;
	}
	return vmb_err_set(err, EOPNOTSUPP, "unknown request '%.64s'", argv[0]);
}
