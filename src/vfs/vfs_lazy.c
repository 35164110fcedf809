/* vfs_lazy.c - the bundles of a mount of a published store's URL, pulled into the
 * mount's private (shadow) store when first needed (outside report F6: a mount
 * that pulled every bundle first took time and disk space in proportion to the
 * whole published store before it appeared).
 *
 * The mount's command fetches and checks the top index (and its signature) and
 * mounts an empty shadow store with the names and manifest digests of that one
 * top index; nothing else is fetched before the mount appears. Here:
 *   - a lookup of one of those names in the root pulls that bundle (its
 *     manifest by digest, small files copied, images as deltas over remote
 *     layers, whose indexes the pull loads and the remote context keeps:
 *     vmb_op_pull_at), unless it is there already. A pull that fails (network,
 *     a damaged manifest, no space) fails that lookup (EIO, or ENOSPC) with a
 *     log line and leaves nothing; the next lookup tries again;
 *   - the copies leave free in the cache's file system what the cache keeps
 *     (1 GiB), or half of what was free at the mount when that is less;
 *   - the root's listing is the list itself, so that ls costs nothing, and its
 *     st_nlink counts every bundle;
 *   - nothing in the shadow store is synced (base/fdio.h, vmb_sync_scratch).
 * Pulls of different names run at once (each in a staging directory of its own,
 * as pulls of several processes into one store do; the control channel's
 * structural commands are refused on such a mount): a lookup waits only while
 * its own name is being pulled (lazy_busy under lazy_mu), so that in hard mode
 * a bundle whose pull waits for the network holds up no other. A name's done
 * flag is set, atomically, once its bundle is in the store, and read without
 * the lock first. */
#include "config.h"
#include "vfs/vfs_int.h"
#include "base/fdio.h"
#include "store/ops.h"
#include "remote/cache.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

int vmb_lazy_init(struct vmb_vfs *v, const struct vmb_vfs_lazy *o, struct vmb_err *err)
{
	size_t i;

	struct statvfs sv;

	if (!o || !o->n)
		return 0;
	/* what the copies leave free (the shadow store is in the cache's file
	 * system): as much as the cache keeps (remote/cache.h), or half of what is
	 * free now when that is less */
	if (fstatvfs(v->store.dirfd, &sv) < 0)
		return vmb_err_sys(err, errno, "cannot get the free space of '%s'",
				   v->store.path);
	v->lazy_keep = (uint64_t)sv.f_bavail * sv.f_frsize / 2;
	if (v->lazy_keep > VMB_CACHE_MIN_FREE_DEFAULT)
		v->lazy_keep = VMB_CACHE_MIN_FREE_DEFAULT;
	v->lazy_url = strdup(o->url);
	v->lazy_names = calloc(o->n, sizeof(*v->lazy_names));
	v->lazy_manifests = calloc(o->n, sizeof(*v->lazy_manifests));
	v->lazy_done = calloc(o->n, 1);
	v->lazy_busy = calloc(o->n, 1);
	if (!v->lazy_url || !v->lazy_names || !v->lazy_manifests || !v->lazy_done ||
	    !v->lazy_busy)
		return vmb_err_set(err, ENOMEM, "out of memory");
	for (i = 0; i < o->n; i++) {
		if (i && strcmp(o->names[i - 1], o->names[i]) >= 0)
			return vmb_err_set(err, EINVAL, "the bundles of '%s' are not sorted",
					   o->url);
		v->lazy_names[i] = strdup(o->names[i]);
		if (!v->lazy_names[i])
			return vmb_err_set(err, ENOMEM, "out of memory");
		v->lazy_n = i + 1;
		memcpy(v->lazy_manifests[i], o->manifests[i], 32);
	}
	return 0;
}

void vmb_lazy_free(struct vmb_vfs *v)
{
	size_t i;

	for (i = 0; i < v->lazy_n; i++)
		free(v->lazy_names[i]);
	free(v->lazy_names);
	free(v->lazy_manifests);
	free(v->lazy_done);
	free(v->lazy_busy);
	free(v->lazy_url);
	v->lazy_n = 0;
}

static long find(struct vmb_vfs *v, const char *name)
{
	size_t lo = 0, hi = v->lazy_n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(name, v->lazy_names[mid]);

		if (!c)
			return (long)mid;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return -1;
}

int vmb_lazy_lookup(struct vmb_vfs *v, const char *name, struct vmb_err *err)
{
	struct vmb_opctx c;
	struct stat st;
	long i;
	int r = 0;

	if (!v->lazy_n || (i = find(v, name)) < 0 ||
	    __atomic_load_n(&v->lazy_done[i], __ATOMIC_ACQUIRE))
		return 0;
	pthread_mutex_lock(&v->lazy_mu);
	while (v->lazy_busy[i])
		pthread_cond_wait(&v->lazy_cv, &v->lazy_mu);
	if (v->lazy_done[i]) {
		pthread_mutex_unlock(&v->lazy_mu);
		return 0;
	}
	v->lazy_busy[i] = 1;   /* this name's pull is ours */
	pthread_mutex_unlock(&v->lazy_mu);
	if (fstatat(v->store.dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		vmb_ctl_opctx(v, &c);
		vmb_sync_scratch(1);
		r = vmb_op_pull_at(&c, v->remote, v->lazy_url, name, v->lazy_manifests[i],
				   v->lazy_keep, err);
		vmb_sync_scratch(0);
		if (r < 0) {
			vmb_log_msg(v->log, "cannot pull bundle '%s' of '%s' into the mount: %s",
				    name, v->lazy_url, err ? err->msg : strerror(-r));
			if (r != -ENOMEM && r != -ENOSPC)
				r = -EIO;
		}
	}
	pthread_mutex_lock(&v->lazy_mu);
	if (r == 0)
		__atomic_store_n(&v->lazy_done[i], 1, __ATOMIC_RELEASE);
	v->lazy_busy[i] = 0;
	pthread_cond_broadcast(&v->lazy_cv);
	pthread_mutex_unlock(&v->lazy_mu);
	return r;
}

/* The inode numbers of the bundles: VMB_LAZY_INO + i for names[i], in the root's
 * listing and in st_ino (vmb_node_stat), before and after the bundle's pull, so
 * that the two always agree (find, rsync, du compare them). No backing file has
 * one: they are above any inode number Linux's file systems give out in practice
 * (ext4: 32 bits; xfs, btrfs: far below 2^62). */
#define VMB_LAZY_INO 0x7f00000000000000ull

uint64_t vmb_lazy_ino(struct vmb_vfs *v, const char *name)
{
	long i = v->lazy_n ? find(v, name) : -1;

	return i < 0 ? 0 : VMB_LAZY_INO + (uint64_t)i;
}

/* Offsets: 1 after ".", 2 after "..", 3 after .snapshots (when listed), then 4 + i
 * after names[i]. d_ino: the bundle's own number (vmb_lazy_ino), the st_ino its
 * lookups report, pulled or not. */
int vmb_lazy_readdir(struct vmb_vfs *v, uint64_t off, vmb_fill_fn fill, void *arg)
{
	struct stat st;
	size_t i;

	memset(&st, 0, sizeof(st));
	st.st_mode = S_IFDIR;
	if (off < 1) {
		st.st_ino = 1;
		if (fill(arg, ".", &st, 1))
			return 0;
	}
	if (off < 2) {
		st.st_ino = 1;
		if (fill(arg, "..", &st, 2))
			return 0;
	}
	if (off < 3 && vmb_snapview_listed(v)) {
		st.st_ino = (ino_t)vmb_snapview_ino();
		if (fill(arg, VMB_SNAPVIEW_DIR, &st, 3))
			return 0;
	}
	for (i = off > 4 ? (size_t)(off - 4) : 0; i < v->lazy_n; i++) {
		st.st_ino = (ino_t)(VMB_LAZY_INO + i);
		if (fill(arg, v->lazy_names[i], &st, 4 + i + 1))
			return 0;
	}
	return 0;
}

void vmb_lazy_root_stat(struct vmb_vfs *v, struct stat *st)
{
	/* every listed bundle is a directory, pulled or not: tools that count a
	 * directory's subdirectories by its links (find's leaf optimization) must not
	 * stop before the last (the store's own .vmbundlefs is counted too: a
	 * directory of a local store's mount has as many) */
	if (v->lazy_n && st->st_nlink < 3 + v->lazy_n)
		st->st_nlink = (nlink_t)(3 + v->lazy_n);
}
