/* vfs_barrier.c - the write barrier of a bundle (snapshot and clone take a bundle
 * at one instant: every change that returned before is in it, none that started
 * after).
 *
 * Every change through the mount (a write, truncate, fallocate, copy into, setattr,
 * xattr change, and every create, link, remove and rename in a directory) runs
 * between vmb_change_begin and vmb_change_end on the node it changes (a directory
 * for its entries). With no barrier up, that is one atomic increment and one
 * atomic load on the node and the vfs: no lock. vmb_barrier_pause raises a
 * bundle's barrier: changes that start in the bundle from then on wait for
 * vmb_barrier_resume, the ones in flight finish, and then the bundle's open
 * images are drained (every accepted write is on its backing file).
 *
 * Why it is exact: begin increments n->changing, then reads v->barriers; pause
 * sets v->barriers (under barmu), then reads every node's changing count (under
 * barmu). Both sequentially consistent: either pause sees the change in flight
 * and waits for its end, or the change sees the barrier and takes the slow path,
 * which takes back its count and waits under barmu while its bundle is paused.
 * An ending change with a barrier up wakes the pauser (barmu, barcond).
 *
 * Lock order: barmu, then tlock, then ilock (pause drains images under ilock with
 * barmu released). Nothing takes barmu while holding tlock or an ilock. One bundle
 * at a time (the control channel carries out one request at a time).
 */
#include "config.h"
#include "vfs/vfs_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void vmb_barrier_init(struct vmb_vfs *v)
{
	atomic_init(&v->barriers, 0);
	pthread_mutex_init(&v->barmu, NULL);
	pthread_cond_init(&v->barcond, NULL);
	v->paused = 0;
}

void vmb_barrier_destroy(struct vmb_vfs *v)
{
	pthread_mutex_destroy(&v->barmu);
	pthread_cond_destroy(&v->barcond);
}

/* Is (n, name) in the paused bundle? Caller holds barmu. name: the entry of n
 * changed, which matters only at the top level (it names a bundle there). */
static int paused_locked(struct vmb_vfs *v, struct vmb_node *n, const char *name)
{
	struct vmb_node *b;
	struct stat st;
	int hit;

	if (!v->paused || !n)
		return 0;
	if (n == &v->root)
		return name && fstatat(v->root.fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		       st.st_dev == v->paused_dev && st.st_ino == v->paused_ino;
	pthread_mutex_lock(&v->tlock);
	b = vmb_node_bundle_locked(v, n);
	hit = b && b->dev == v->paused_dev && b->ino == v->paused_ino;
	pthread_mutex_unlock(&v->tlock);
	return hit;
}

void vmb_change_begin2(struct vmb_vfs *v, struct vmb_node *a, const char *aname,
		       struct vmb_node *b, const char *bname)
{
	atomic_fetch_add(&a->changing, 1);
	if (b)
		atomic_fetch_add(&b->changing, 1);
	if (atomic_load(&v->barriers) == 0)
		return;   /* the fast path: no barrier anywhere */
	pthread_mutex_lock(&v->barmu);
	atomic_fetch_sub(&a->changing, 1);
	if (b)
		atomic_fetch_sub(&b->changing, 1);
	pthread_cond_broadcast(&v->barcond);   /* a pauser may be counting us */
	while (paused_locked(v, a, aname) || paused_locked(v, b, bname))
		pthread_cond_wait(&v->barcond, &v->barmu);
	atomic_fetch_add(&a->changing, 1);
	if (b)
		atomic_fetch_add(&b->changing, 1);
	pthread_mutex_unlock(&v->barmu);
}

void vmb_change_begin(struct vmb_vfs *v, struct vmb_node *n, const char *name)
{
	vmb_change_begin2(v, n, name, NULL, NULL);
}

void vmb_change_end2(struct vmb_vfs *v, struct vmb_node *a, struct vmb_node *b)
{
	atomic_fetch_sub(&a->changing, 1);
	if (b)
		atomic_fetch_sub(&b->changing, 1);
	if (atomic_load(&v->barriers) == 0)
		return;
	pthread_mutex_lock(&v->barmu);
	pthread_cond_broadcast(&v->barcond);
	pthread_mutex_unlock(&v->barmu);
}

void vmb_change_end(struct vmb_vfs *v, struct vmb_node *n)
{
	vmb_change_end2(v, n, NULL);
}

/* A change in flight in the paused bundle (or at the top level, where a bundle may
 * be renamed or removed)? Caller holds barmu. */
static int busy_locked(struct vmb_vfs *v)
{
	size_t i;
	int busy = atomic_load(&v->root.changing) != 0;

	pthread_mutex_lock(&v->tlock);
	for (i = 0; !busy && i < ((size_t)1 << VMB_HASH_BITS); i++)
		for (struct vmb_node *n = v->hash[i]; n && !busy; n = n->hnext) {
			struct vmb_node *b;
			if (atomic_load(&n->changing) == 0)
				continue;
			b = vmb_node_bundle_locked(v, n);
			busy = b && b->dev == v->paused_dev && b->ino == v->paused_ino;
		}
	pthread_mutex_unlock(&v->tlock);
	return busy;
}

/* Drain the open images of the paused bundle (no change runs in it now). */
static void drain_bundle(struct vmb_vfs *v)
{
	struct vmb_node **list = NULL;
	size_t n = 0, cap = 0, i;

	pthread_mutex_lock(&v->tlock);
	for (i = 0; i < ((size_t)1 << VMB_HASH_BITS); i++)
		for (struct vmb_node *x = v->hash[i]; x; x = x->hnext) {
			struct vmb_node *b;
			if (!S_ISREG(x->type) || !x->handles)
				continue;
			b = vmb_node_bundle_locked(v, x);
			if (!b || b->dev != v->paused_dev || b->ino != v->paused_ino)
				continue;
			if (n == cap) {
				struct vmb_node **grown = realloc(list, (cap ? cap * 2 : 16) *
								  sizeof(*list));
				if (!grown)
					break;   /* the freeze drains each image anyway */
				list = grown;
				cap = cap ? cap * 2 : 16;
			}
			x->handles++;   /* keeps it (its descriptors are not used here) */
			list[n++] = x;
		}
	pthread_mutex_unlock(&v->tlock);
	for (i = 0; i < n; i++) {
		struct vmb_node *x = list[i];
		pthread_mutex_lock(&x->ilock);
		if (x->img && vmb_fds_hold_ilocked(v, x, NULL, NULL) == 0) {
			if (x->img)   /* ilock may have been let go: looked at again */
				vmb_image_drain(x->img);
			vmb_fds_unhold(v, x);
		}
		pthread_mutex_unlock(&x->ilock);
		vmb_node_unhandle(v, x);
	}
	free(list);
}

int vmb_barrier_pause(struct vmb_vfs *v, const char *bundle, struct vmb_err *err)
{
	struct stat st;

	if (fstatat(v->root.fd, bundle, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return vmb_err_sys(err, errno, "cannot pause bundle '%s'", bundle);
	if (!S_ISDIR(st.st_mode))
		return vmb_err_set(err, ENOTDIR, "cannot pause '%s': not a bundle", bundle);
	pthread_mutex_lock(&v->barmu);
	if (v->paused) {
		pthread_mutex_unlock(&v->barmu);
		return vmb_err_set(err, EBUSY, "cannot pause bundle '%s': another bundle is "
				   "paused", bundle);
	}
	v->paused = 1;
	v->paused_dev = st.st_dev;
	v->paused_ino = st.st_ino;
	atomic_fetch_add(&v->barriers, 1);
	while (busy_locked(v))
		pthread_cond_wait(&v->barcond, &v->barmu);
	pthread_mutex_unlock(&v->barmu);
	drain_bundle(v);
	return 0;
}

void vmb_barrier_resume(struct vmb_vfs *v)
{
	pthread_mutex_lock(&v->barmu);
	if (v->paused) {
		v->paused = 0;
		atomic_fetch_sub(&v->barriers, 1);
		pthread_cond_broadcast(&v->barcond);
	}
	pthread_mutex_unlock(&v->barmu);
}
