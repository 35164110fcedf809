/* vfs_fds.c - the daemon's descriptor budget: open files' backing descriptors.
 *
 * Every open image has a backing descriptor (and an O_DIRECT one while it writes
 * directly, dio.h). One user holding thousands of files open must not take every
 * descriptor of the daemon, which serves all users and needs descriptors of its own
 * (sidecar maps, holder records, the store's directories). So at most o_cap images
 * keep their descriptors while no call uses them; past that the least recently used
 * are parked (vmb_image_park: closed once their queued writes are on the file) and
 * reopened from the node's file handle, with the same access mode, by the next call
 * that needs them (vmb_fds_hold). The node's own O_PATH descriptor is parked the same
 * way, by the idle list of vfs.c, whenever no call is in flight on it.
 *
 * What is never parked: an image in use by a call (o_users), one whose file has no
 * links left (nothing could reopen it: such an image leaves the list and keeps its
 * descriptor until closed), and the lock owners' descriptors (lock.c: closing one
 * would drop its locks). Those are counted per user instead (lock_budget): a user
 * other than root may have at most L/16 (-o lock_fds), all users L/4; past that a
 * new lock owner is refused with ENOLCK, logged with the user named.
 *
 * Budget, from the soft RLIMIT_NOFILE L as it is now (read again whenever an image
 * is opened): idle nodes L/4 (-o idle_fds), open images L/8 (-o open_fds, each up to
 * two descriptors), lock owners of users but root L/4, the rest for calls in
 * flight, root's lock owners and the daemon's own work.
 *
 * Locking: olock guards every o_* field of every node and the list; it is taken
 * after tlock and ilock, never before, and never held across a system call that may
 * block (park and reopen run with o_busy set instead, which every other user of the
 * node waits out on ocond). Whoever sets o_busy and waits for the holders to go
 * (vmb_fds_lock) must not take ilock before it clears it, and nobody waits for
 * o_busy while holding ilock (vmb_fds_hold_ilocked lets ilock go meanwhile): a
 * holder may be waiting for ilock (it holds, then locks), so either wait would
 * close a cycle.
 */
#include "config.h"
#include "vfs/vfs_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

static int lockfd_take(void *arg, pid_t pid, uid_t *uid, struct vmb_err *err);
static void lockfd_give(void *arg, uid_t uid);

void vmb_fds_init(struct vmb_vfs *v)
{
	pthread_mutex_init(&v->olock, NULL);
	pthread_cond_init(&v->ocond, NULL);
	v->lock_budget.take = lockfd_take;
	v->lock_budget.give = lockfd_give;
	v->lock_budget.arg = v;
	vmb_fds_limits(v);
}

void vmb_fds_destroy(struct vmb_vfs *v)
{
	free(v->lockfd_users);
	pthread_cond_destroy(&v->ocond);
	pthread_mutex_destroy(&v->olock);
}

void vmb_fds_limits(struct vmb_vfs *v)
{
	struct rlimit rl;
	size_t limit = 262144, idle, open;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		limit = (size_t)rl.rlim_cur;
	idle = v->idle_fds_opt ? v->idle_fds_opt : limit / 4 > 64 ? limit / 4 : 64;
	open = v->open_fds_opt ? v->open_fds_opt : limit / 8 > 16 ? limit / 8 : 16;
	pthread_mutex_lock(&v->tlock);
	v->lru_cap = idle;
	pthread_mutex_unlock(&v->tlock);
	pthread_mutex_lock(&v->olock);
	v->o_cap = open;
	v->lockfd_user_cap = v->lock_fds_opt ? v->lock_fds_opt : limit / 16 > 16 ? limit / 16 : 16;
	v->lockfd_total_cap = limit / 4 > v->lockfd_user_cap ? limit / 4 : v->lockfd_user_cap;
	pthread_mutex_unlock(&v->olock);
}

static void unlist(struct vmb_vfs *v, struct vmb_node *n)
{
	if (!n->o_listed)
		return;
	if (n->o_prev)
		n->o_prev->o_next = n->o_next;
	else
		v->o_first = n->o_next;
	if (n->o_next)
		n->o_next->o_prev = n->o_prev;
	else
		v->o_last = n->o_prev;
	n->o_prev = n->o_next = NULL;
	n->o_listed = 0;
	v->o_count--;
}

/* Append n as the most recently used. */
static void list_last(struct vmb_vfs *v, struct vmb_node *n)
{
	unlist(v, n);
	n->o_prev = v->o_last;
	n->o_next = NULL;
	if (v->o_last)
		v->o_last->o_next = n;
	else
		v->o_first = n;
	v->o_last = n;
	n->o_listed = 1;
	v->o_count++;
}

void vmb_fds_added(struct vmb_vfs *v, struct vmb_node *n, struct vmb_image *img)
{
	pthread_mutex_lock(&v->olock);
	n->oimg = img;
	n->o_live = 1;
	n->o_busy = 0;
	n->o_users = 0;
	if (v->can_park && n->fh)
		list_last(v, n);
	pthread_mutex_unlock(&v->olock);
}

void vmb_fds_trim(struct vmb_vfs *v)
{
	pthread_mutex_lock(&v->olock);
	while (v->o_count > v->o_cap) {
		struct vmb_node *n = v->o_first;
		int r;

		while (n && (n->o_users || n->o_busy))
			n = n->o_next;
		if (!n)
			break;   /* everything past the cap is in use right now */
		unlist(v, n);
		n->o_busy = 1;
		pthread_mutex_unlock(&v->olock);
		r = vmb_image_park(n->oimg);
		pthread_mutex_lock(&v->olock);
		n->o_busy = 0;
		if (r == 0)
			n->o_live = 0;
		/* else it stays open and off the list: it has no links left, or a
		 * failed direct write waits for fsync (rare: a later close or fsync ends
		 * it) */
		pthread_cond_broadcast(&v->ocond);
	}
	pthread_mutex_unlock(&v->olock);
}

/* ilocked: the caller holds n->ilock, which is let go while n is busy (see
 * vmb_fds_hold_ilocked); *dropped is then set. */
static int hold(struct vmb_vfs *v, struct vmb_node *n, int ilocked, int *dropped,
		struct vmb_err *err)
{
	struct vmb_err local;
	int fd, e;

	if (!err)
		err = &local;
	pthread_mutex_lock(&v->olock);
	while (n->o_busy) {
		if (ilocked) {
			/* olock comes after ilock: let both go, wait, take them again */
			if (dropped)
				*dropped = 1;
			pthread_mutex_unlock(&n->ilock);
			while (n->o_busy)
				pthread_cond_wait(&v->ocond, &v->olock);
			pthread_mutex_unlock(&v->olock);
			pthread_mutex_lock(&n->ilock);
			pthread_mutex_lock(&v->olock);
			continue;
		}
		pthread_cond_wait(&v->ocond, &v->olock);
	}
	if (!n->oimg) {   /* callers hold a handle of an open image; one that let ilock
			   * go (ilocked) may find it closed meanwhile */
		pthread_mutex_unlock(&v->olock);
		return vmb_err_set(err, EBADF, "the file is not open");
	}
	if (n->o_live) {
		n->o_users++;
		if (n->o_listed)
			list_last(v, n);
		pthread_mutex_unlock(&v->olock);
		return 0;
	}
	n->o_busy = 1;
	pthread_mutex_unlock(&v->olock);
	fd = open_by_handle_at(v->store.dirfd, n->fh,
			       (vmb_image_writable(n->oimg) ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	e = errno;
	if (fd >= 0)
		vmb_image_unpark(n->oimg, fd);
	pthread_mutex_lock(&v->olock);
	n->o_busy = 0;
	pthread_cond_broadcast(&v->ocond);
	if (fd < 0) {
		char rel[PATH_MAX];
		pthread_mutex_unlock(&v->olock);
		vmb_node_relpath(v, n, rel, sizeof(rel));
		if (e == ESTALE)
			vmb_err_set(err, ESTALE, "cannot reopen the backing file of open file "
				    "'%s': it was removed from the store behind the mount", rel);
		else
			vmb_err_sys(err, e, "cannot reopen the backing file of open file '%s'",
				    rel);
		vmb_log_msg(v->log, "%s", err->msg);
		return -e;
	}
	n->o_live = 1;
	n->o_users++;
	list_last(v, n);
	pthread_mutex_unlock(&v->olock);
	vmb_fds_trim(v);
	return 0;
}

int vmb_fds_hold(struct vmb_vfs *v, struct vmb_node *n, struct vmb_err *err)
{
	return hold(v, n, 0, NULL, err);
}

int vmb_fds_hold_ilocked(struct vmb_vfs *v, struct vmb_node *n, int *dropped,
			 struct vmb_err *err)
{
	if (dropped)
		*dropped = 0;
	return hold(v, n, 1, dropped, err);
}

int vmb_fds_hold_alone(struct vmb_vfs *v, struct vmb_node *n, struct vmb_err *err)
{
	int r = vmb_fds_hold(v, n, err);

	if (r < 0)
		return r;
	pthread_mutex_lock(&v->olock);
	v->o_waiting++;
	n->o_alone++;
	/* Other handles' releases hold it too: wait only for everything else. */
	while (n->o_users > n->o_alone)
		pthread_cond_wait(&v->ocond, &v->olock);
	v->o_waiting--;
	pthread_mutex_unlock(&v->olock);
	return 0;
}

void vmb_fds_unhold_alone(struct vmb_vfs *v, struct vmb_node *n)
{
	pthread_mutex_lock(&v->olock);
	n->o_alone--;
	n->o_users--;
	if (v->o_waiting)   /* vmb_fds_lock may wait for it */
		pthread_cond_broadcast(&v->ocond);
	pthread_mutex_unlock(&v->olock);
}

void vmb_fds_unhold(struct vmb_vfs *v, struct vmb_node *n)
{
	int over;

	pthread_mutex_lock(&v->olock);
	n->o_users--;
	if (v->o_waiting)
		pthread_cond_broadcast(&v->ocond);
	over = n->o_users == 0 && v->o_count > v->o_cap;
	pthread_mutex_unlock(&v->olock);
	if (over)
		vmb_fds_trim(v);
}

int vmb_fds_lock(struct vmb_vfs *v, struct vmb_node *n, struct vmb_image **img,
		 struct vmb_err *err)
{
	int fd, e;

	*img = NULL;
	pthread_mutex_lock(&v->olock);
	while (n->o_busy)
		pthread_cond_wait(&v->ocond, &v->olock);
	if (!n->oimg) {
		pthread_mutex_unlock(&v->olock);
		return 0;
	}
	n->o_busy = 1;   /* new holders wait */
	v->o_waiting++;
	while (n->o_users)
		pthread_cond_wait(&v->ocond, &v->olock);
	v->o_waiting--;
	if (n->o_live) {
		*img = n->oimg;
		pthread_mutex_unlock(&v->olock);
		return 1;
	}
	pthread_mutex_unlock(&v->olock);
	fd = open_by_handle_at(v->store.dirfd, n->fh,
			       (vmb_image_writable(n->oimg) ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	e = errno;
	if (fd >= 0)
		vmb_image_unpark(n->oimg, fd);
	pthread_mutex_lock(&v->olock);
	if (fd < 0) {
		n->o_busy = 0;
		pthread_cond_broadcast(&v->ocond);
		pthread_mutex_unlock(&v->olock);
		return vmb_err_sys(err, e, "cannot reopen the backing file");
	}
	n->o_live = 1;
	if (v->can_park && n->fh)
		list_last(v, n);
	*img = n->oimg;
	pthread_mutex_unlock(&v->olock);
	return 1;
}

void vmb_fds_unlock(struct vmb_vfs *v, struct vmb_node *n)
{
	pthread_mutex_lock(&v->olock);
	n->o_busy = 0;
	pthread_cond_broadcast(&v->ocond);
	pthread_mutex_unlock(&v->olock);
	vmb_fds_trim(v);
}

void vmb_fds_removed(struct vmb_vfs *v, struct vmb_node *n)
{
	pthread_mutex_lock(&v->olock);
	unlist(v, n);
	n->oimg = NULL;
	n->o_live = 0;
	n->o_users = 0;
	n->o_alone = 0;
	pthread_mutex_unlock(&v->olock);
}

struct vmb_node *vmb_fds_pin(struct vmb_vfs *v, const struct stat *st)
{
	struct vmb_node *n;

	if (!S_ISREG(st->st_mode) || st->st_nlink > 1)
		return NULL;
	pthread_mutex_lock(&v->tlock);
	for (n = v->hash[vmb_node_hash(st->st_dev, st->st_ino)]; n; n = n->hnext)
		if (n->dev == st->st_dev && n->ino == st->st_ino)
			break;
	if (n && n->handles == 0)
		n = NULL;   /* not open: nothing to keep */
	if (n)
		n->handles++;   /* keeps the node (and so its image) */
	pthread_mutex_unlock(&v->tlock);
	if (!n)
		return NULL;
	if (vmb_node_ref(v, n) < 0) {   /* already gone: nothing to keep either */
		vmb_node_unhandle(v, n);
		return NULL;
	}
	if (vmb_fds_hold(v, n, NULL) == 0)   /* -EBADF: its image was closed meanwhile */
		return n;
	vmb_node_put(v, n);
	vmb_node_unhandle(v, n);
	return NULL;
}

void vmb_fds_unpin(struct vmb_vfs *v, struct vmb_node *n)
{
	if (!n)
		return;
	vmb_fds_unhold(v, n);
	vmb_node_put(v, n);
	vmb_node_unhandle(v, n);
}

/* The filesystem user ID of process pid (the one FUSE names callers by); -1 when it
 * is unknown (gone). */
static uid_t fsuid_of(pid_t pid)
{
	char path[64], line[256];
	unsigned long r, e, s, fs;
	uid_t uid = (uid_t)-1;
	FILE *f;

	if (pid <= 0)
		return uid;
	snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
	f = fopen(path, "re");
	if (!f)
		return uid;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Uid: %lu %lu %lu %lu", &r, &e, &s, &fs) == 4) {
			uid = (uid_t)fs;
			break;
		}
	fclose(f);
	return uid;
}

static struct vmb_uidcount *uid_entry(struct vmb_vfs *v, uid_t uid, int make)
{
	struct vmb_uidcount *u;
	size_t i;

	for (i = 0; i < v->lockfd_nusers; i++)
		if (v->lockfd_users[i].uid == uid)
			return &v->lockfd_users[i];
	if (!make)
		return NULL;
	u = realloc(v->lockfd_users, (v->lockfd_nusers + 1) * sizeof(*u));
	if (!u)
		return NULL;
	v->lockfd_users = u;
	u = &u[v->lockfd_nusers++];
	u->uid = uid;
	u->n = 0;
	u->warned = 0;
	return u;
}

/* A lock owner of process pid needs a descriptor: root's are not counted; every
 * other user may have lockfd_user_cap, all of them together lockfd_total_cap. */
static int lockfd_take(void *arg, pid_t pid, uid_t *uid, struct vmb_err *err)
{
	struct vmb_vfs *v = arg;
	struct vmb_uidcount *u;
	struct vmb_err local;
	int r = 0;

	if (!err)
		err = &local;
	*uid = fsuid_of(pid);
	if (*uid == 0)
		return 0;
	pthread_mutex_lock(&v->olock);
	u = uid_entry(v, *uid, 1);
	if (!u) {
		r = vmb_err_set(err, ENOMEM, "out of memory");
	} else if (u->n >= v->lockfd_user_cap || v->lockfd_total >= v->lockfd_total_cap) {
		int mine = u->n >= v->lockfd_user_cap;
		r = vmb_err_set(err, ENOLCK, "user %ld holds locks on %zu files through this "
				"mount, %s (%zu; lock_fds)", *uid == (uid_t)-1 ? -1L : (long)*uid,
				u->n, mine ? "the most one user may" : "and all users together hold "
				"the most the daemon allows", mine ? v->lockfd_user_cap :
				v->lockfd_total_cap);
		if (!u->warned)
			vmb_log_msg(v->log, "%s", err->msg);
		u->warned = 1;
	} else {
		u->n++;
		v->lockfd_total++;
	}
	pthread_mutex_unlock(&v->olock);
	return r;
}

static void lockfd_give(void *arg, uid_t uid)
{
	struct vmb_vfs *v = arg;
	struct vmb_uidcount *u;

	if (uid == 0)
		return;
	pthread_mutex_lock(&v->olock);
	u = uid_entry(v, uid, 0);
	if (u && u->n) {
		u->n--;
		v->lockfd_total--;
		if (u->n + 1 < v->lockfd_user_cap)
			u->warned = 0;
	}
	pthread_mutex_unlock(&v->olock);
}
