/* vfs.c - the node table, lookup/forget, attributes (see vfs.h, vfs_int.h). */
#include "config.h"
#include "vfs/vfs_int.h"
#include "remote/remote.h"
#include "map/sidecar.h"
#include "lock/auxfile.h"
#include "lock/holders.h"
#include "layer/layer.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

size_t vmb_node_hash(dev_t dev, ino_t ino)
{
	uint64_t h = (uint64_t)ino * UINT64_C(0x9e3779b97f4a7c15) ^ (uint64_t)dev;
	return (size_t)(h >> (64 - VMB_HASH_BITS));
}

static void node_init(struct vmb_node *n)
{
	memset(n, 0, sizeof(*n));
	n->fd = -1;
	pthread_mutex_init(&n->ilock, NULL);
}

static void node_free(struct vmb_node *n)
{
	if (n->img)   /* cannot happen: images hold a ref; be safe anyway */
		vmb_image_close(n->img);
	if (n->locks) {
		vmb_lockset_destroy(n->locks);
		free(n->locks);
	}
	if (n->fd >= 0)
		close(n->fd);
	while (n->n_old_fds)
		close(n->old_fds[--n->n_old_fds]);
	free(n->old_fds);
	free(n->fh);
	free(n->name);
	free(n->lkh);
	vmb_aux_cache_free(n->aux);
	pthread_mutex_destroy(&n->ilock);
	free(n);
}

const struct vmb_log *vmb_vfs_log(struct vmb_vfs *v)
{
	return v->log;
}

/* The file handle of fd, to reopen it once parked; NULL when the filesystem has none. */
static struct file_handle *handle_of(int fd)
{
	struct file_handle *fh = malloc(sizeof(*fh) + MAX_HANDLE_SZ);
	int mount_id;

	if (!fh)
		return NULL;
	fh->handle_bytes = MAX_HANDLE_SZ;
	if (name_to_handle_at(fd, "", fh, &mount_id, AT_EMPTY_PATH) < 0) {
		free(fh);
		return NULL;
	}
	return fh;
}

/* Remove temporary maps left by a daemon that died while saving one
 * (".tmp.<name>.<pid>.<n>", see sidecar.c). */
static void sweep_temporaries(int mapfd)
{
	struct dirent *de;
	DIR *d;
	int fd = openat(mapfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return;
	}
	while ((de = readdir(d))) {
		char name[VMB_SIDECAR_NAME_MAX];
		long pid;
		unsigned long seq;

		if (strncmp(de->d_name, ".tmp.", 5) ||
		    sscanf(de->d_name + 5, "%31[^.].map.%ld.%lu", name, &pid, &seq) != 3)
			continue;
		if (pid != (long)getpid() && kill((pid_t)pid, 0) < 0 && errno == ESRCH)
			unlinkat(dirfd(d), de->d_name, 0);
	}
	closedir(d);
}

/* A store copied without vmbundlefs (store_home.c) that has layers: say once what
 * such a copy loses, rather than serve its layered files as their deltas alone (a
 * copy without xattrs) or with their zeroed blocks reading their base again (one
 * with them: the maps are named by inode numbers). */
static void copied_note(struct vmb_vfs *v, const char *store)
{
	struct vmb_err e = { 0 };
	struct dirent *de;
	unsigned long layers = 0;
	int copied = 0, fd;
	DIR *d;

	if (v->readonly || vmb_store_check_home(&v->store, &copied, &e) < 0 || !copied)
		return;
	fd = openat(v->store.metafd, VMB_LAYERS_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || !(d = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((de = readdir(d))) {
		const char *dot = strrchr(de->d_name, '.');

		/* a layer is <id>.map beside <id>.data, or <id>.remote */
		if (de->d_name[0] != '.' && dot && (!strcmp(dot, ".map") ||
						    !strcmp(dot, ".remote")))
			layers++;
	}
	closedir(d);
	if (layers)
		vmb_log_msg(v->log, "store '%s' is a copy (or a restore) made without "
			    "vmbundlefs, and has %lu layers: its clones, snapshots and pulled "
			    "bundles may read wrong bytes, since such a copy drops their base "
			    "attribute (trusted.vmbundlefs.base) or their maps (named by inode "
			    "numbers); copy a store with layers bundle by bundle with "
			    "'vmbundlefs export' and 'import', or flatten its bundles first "
			    "(vmbundlefs(5), STORE LAYOUT)", store, layers);
}

int vmb_vfs_new(struct vmb_vfs **out, const char *store, const struct vmb_vfs_opts *o,
		struct vmb_err *err)
{
	struct vmb_vfs *v;
	struct stat st;
	int r;

	*out = NULL;
	v = calloc(1, sizeof(*v));
	if (!v)
		return vmb_err_set(err, ENOMEM, "out of memory");
	node_init(&v->root);
	pthread_mutex_init(&v->tlock, NULL);
	vmb_fds_init(v);
	pthread_mutex_init(&v->inuse_mu, NULL);
	pthread_mutex_init(&v->auxmu, NULL);
	pthread_mutex_init(&v->opmu, NULL);
	pthread_mutex_init(&v->dirmu, NULL);
	pthread_mutex_init(&v->filemu, NULL);
	pthread_mutex_init(&v->lazy_mu, NULL);
	pthread_cond_init(&v->lazy_cv, NULL);
	vmb_barrier_init(v);
	vmb_waitgraph_init(&v->waits);
	if (vmb_lockenv_init(&v->lockenv, o && o->lock_cap ? o->lock_cap
				 : VMB_LOCK_CAP_DEFAULT) < 0) {
		r = vmb_err_set(err, ENOMEM, "out of memory");
		goto fail;
	}
	if (o && o->lock_cap == (unsigned long)-1)
		v->lockenv.max = 0;   /* lock_cap=0: no cap */
	v->lockenv.log = o ? o->log : NULL;
	v->lockenv.hold = vmb_inuse_hold;
	v->lockenv.arg = v;
	v->log = o ? o->log : NULL;
	v->readonly = o ? o->readonly : 0;
	v->private_store = o ? o->private_store : 0;
	v->direct_writes = !(o && o->buffered_writes);
	v->stale = o ? o->stale : NULL;
	v->stale_arg = o ? o->stale_arg : NULL;
	v->gone = o ? o->gone : NULL;
	if (getenv("VMB_TEST_RELEASE_DELAY_MS"))   /* tests: a RELEASE that comes late */
		v->release_delay_ms = (unsigned)strtoul(getenv("VMB_TEST_RELEASE_DELAY_MS"),
							NULL, 10);
	v->ctl_test_hooks = getenv("VMB_TEST_CTL_HOOKS") != NULL;
	if (getenv("VMB_TEST_FREEZE_DELAY_MS"))   /* tests: a slow freeze of a known file */
		v->freeze_delay_ms = (unsigned)strtoul(getenv("VMB_TEST_FREEZE_DELAY_MS"),
						       NULL, 10);
	if (getenv("VMB_TEST_CREATE_FAIL"))   /* tests: a create that fails late */
		v->create_fail = atoi(getenv("VMB_TEST_CREATE_FAIL"));
	v->hash = calloc((size_t)1 << VMB_HASH_BITS, sizeof(*v->hash));
	if (!v->hash) {
		r = vmb_err_set(err, ENOMEM, "out of memory");
		goto fail;
	}
	r = vmb_store_open(&v->store, store, VMB_STORE_SHARED, err);
	if (r < 0)
		goto fail;
	if (v->store.readonly)
		v->readonly = 1;
	{
		/* Changes made by someone else are found by the backing files' times. */
		int coarse;
		r = vmb_store_check_times(&v->store, &coarse, err);
		if (r < 0)
			goto fail;
		if (coarse < 0 && err) {
			vmb_log_msg(v->log, "note: %s: not checked", err->msg);
			vmb_err_clear(err);
		}
		if (coarse > 0)
			vmb_log_msg(v->log, "note: the filesystem of store '%s' has coarse "
				    "timestamps: a change made from outside within a clock tick of "
				    "this mount's own last change to the same file can go unseen",
				    store);
	}
	r = o && o->aux_patterns ? vmb_aux_parse(o->aux_patterns, &v->aux_patterns, err)
				 : vmb_aux_load(&v->store, &v->aux_patterns, err);
	if (r < 0)
		goto fail;
	r = o && o->inuse_rule ? vmb_inuse_rule_parse(o->inuse_rule, &v->aux_only, err)
			       : vmb_inuse_rule_load(&v->store, &v->aux_only, err);
	if (r < 0)
		goto fail;
	r = vmb_layers_open(&v->layers, v->store.metafd, v->log, err);
	if (r < 0)
		goto fail;
	v->resolver = vmb_layers_resolver(v->layers);
	copied_note(v, store);
	{
		struct vmb_remote_opts ro;

		memset(&ro, 0, sizeof(ro));
		if (o) {
			ro.cache_dir = o->remote_cache;
			ro.cache_max = o->remote_cache_max;
			ro.hard = o->remote_hard;
			ro.cafile = o->remote_cafile;
			ro.pubkey = o->remote_pubkey;
		}
		r = vmb_remote_open(&ro, v->log, &v->remote, err);
		if (r < 0)
			goto fail;
		vmb_layers_set_remote(v->layers, v->remote);
	}
	r = vmb_lazy_init(v, o ? o->lazy : NULL, err);
	if (r < 0)
		goto fail;
	if (vmb_snapview_init(v) < 0) {
		r = vmb_err_set(err, ENOMEM, "out of memory");
		goto fail;
	}
	vmb_holders_sweep(v->store.metafd);
	sweep_temporaries(v->store.mapfd);
	v->store_real = realpath(store, NULL);
	if (!v->store_real) {
		r = vmb_err_sys(err, errno, "cannot resolve store path '%s'", store);
		goto fail;
	}
	v->root.fd = openat(v->store.dirfd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (v->root.fd < 0 || fstat(v->root.fd, &st) < 0) {
		r = vmb_err_sys(err, errno, "cannot open store '%s'", store);
		goto fail;
	}
	v->root.dev = st.st_dev;
	v->root.ino = st.st_ino;
	{
		/* Parking needs file handles that reopen (CAP_DAC_READ_SEARCH). */
		struct file_handle *fh = handle_of(v->root.fd);
		int fd = fh ? open_by_handle_at(v->store.dirfd, fh, O_PATH | O_CLOEXEC) : -1;

		v->can_park = fd >= 0;
		if (fd >= 0)
			close(fd);
		free(fh);
	}
	v->idle_fds_opt = o ? o->idle_fds : 0;
	v->open_fds_opt = o ? o->open_fds : 0;
	v->lock_fds_opt = o ? o->lock_fds : 0;
	vmb_fds_limits(v);
	v->root.type = S_IFDIR;
	v->root.nlookup = 1;
	*out = v;
	return 0;
fail:
	vmb_vfs_free(v);
	return r;
}

int vmb_vfs_remove_store(const char *path, struct vmb_err *err)
{
	char *copy = strdup(path), *slash;
	int dfd, r;

	if (!copy)
		return vmb_err_set(err, ENOMEM, "out of memory");
	slash = strrchr(copy, '/');
	if (!slash || !slash[1]) {
		free(copy);
		return vmb_err_set(err, EINVAL, "cannot remove '%s'", path);
	}
	*slash = '\0';
	dfd = open(*copy ? copy : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		r = vmb_err_sys(err, errno, "cannot remove '%s'", path);
	} else {
		r = vmb_tree_remove(dfd, slash + 1, -1, err);
		close(dfd);
	}
	free(copy);
	return r;
}

void vmb_open_link(pthread_mutex_t *mu, struct vmb_open **list, struct vmb_open *o,
		   void *h)
{
	pthread_mutex_lock(mu);
	o->h = h;
	o->prev = NULL;
	o->next = *list;
	if (*list)
		(*list)->prev = o;
	*list = o;
	pthread_mutex_unlock(mu);
}

void vmb_open_unlink(pthread_mutex_t *mu, struct vmb_open **list, struct vmb_open *o)
{
	pthread_mutex_lock(mu);
	if (o->prev)
		o->prev->next = o->next;
	else
		*list = o->next;
	if (o->next)
		o->next->prev = o->prev;
	pthread_mutex_unlock(mu);
}

int vmb_vfs_preload_remote(struct vmb_vfs *v, struct vmb_err *err)
{
	if (v->preload)
		return 0;
	return vmb_layers_preload_start(v->layers, v->lazy_n ? v->lazy_url : NULL,
					&v->preload, err);
}

void vmb_vfs_cancel(struct vmb_vfs *v)
{
	if (v)
		vmb_remote_cancel(v->remote);
}

void vmb_vfs_free(struct vmb_vfs *v)
{
	size_t i;

	if (!v)
		return;
	vmb_layers_preload_stop(v->preload);   /* before the layers and the remote go */
	v->lockenv.hold = NULL;   /* nodes go in any order below */
	vmb_files_close_all(v);   /* likewise the files (their locks, their images), */
	vmb_dirs_close_all(v);    /* before the nodes and the snapshot view they use */
	if (v->hash) {
		for (i = 0; i < ((size_t)1 << VMB_HASH_BITS); i++)   /* registry records */
			for (struct vmb_node *n = v->hash[i]; n; n = n->hnext)
				if (n->held)
					vmb_holders_bundle_set(v->store.metafd, (uint64_t)n->ino,
							       NULL, NULL, NULL);
		for (i = 0; i <= ((size_t)1 << VMB_HASH_BITS); i++) {   /* and v->dead */
			struct vmb_node *n = i < ((size_t)1 << VMB_HASH_BITS) ? v->hash[i] : v->dead;
			struct vmb_node *next;
			for (; n; n = next) {
				next = n->hnext;
				if (n->img) {
					/* a parked image saves its map too */
					if (n->oimg) {
						(void)vmb_fds_hold(v, n, NULL);
						vmb_fds_removed(v, n);
					}
					vmb_image_close(n->img);
					n->img = NULL;
				}
				node_free(n);
			}
		}
		free(v->hash);
	}
	if (v->root.fd >= 0)
		close(v->root.fd);
	pthread_mutex_destroy(&v->root.ilock);
	vmb_fds_destroy(v);
	pthread_mutex_destroy(&v->tlock);
	pthread_mutex_destroy(&v->inuse_mu);
	pthread_mutex_destroy(&v->auxmu);
	pthread_mutex_destroy(&v->opmu);
	pthread_mutex_destroy(&v->dirmu);
	pthread_mutex_destroy(&v->filemu);
	pthread_mutex_destroy(&v->lazy_mu);
	pthread_cond_destroy(&v->lazy_cv);
	vmb_barrier_destroy(v);
	vmb_snapview_destroy(v);   /* its images put their bases, */
	if (v->private_store && v->remote && v->layers)
		/* the shadow store goes at unmount: its pin (layer.h) with it */
		vmb_layers_unpin_remote(v->layers, v->remote);
	vmb_remote_close(v->remote);   /* the readahead stops, */
	vmb_layers_close(v->layers);   /* then the layers go */
	vmb_aux_cache_free(v->root.aux);
	vmb_waitgraph_destroy(&v->waits);
	vmb_lockenv_destroy(&v->lockenv);
	vmb_store_close(&v->store);
	vmb_aux_free(v->aux_patterns);
	vmb_lazy_free(v);
	free(v->store_real);
	free(v);
}

uint64_t vmb_node_id(struct vmb_vfs *v, struct vmb_node *n)
{
	return n == &v->root ? VMB_ROOT_INO : (uint64_t)(uintptr_t)n;
}

int vmb_node_get(struct vmb_vfs *v, uint64_t ino, struct vmb_node **out)
{
	struct vmb_node *n;
	int r;

	if (ino == VMB_ROOT_INO) {
		*out = &v->root;
		return 0;
	}
	if (vmb_snapview_is(ino))
		return -EROFS;   /* the snapshot view: every call that gets here changes */
	n = (struct vmb_node *)(uintptr_t)ino;
	if (!n)
		return -ESTALE;
	r = vmb_node_ref(v, n);
	if (r < 0)
		return r;
	*out = n;
	return 0;
}

static void lru_remove_locked(struct vmb_vfs *v, struct vmb_node *n)
{
	if (!n->in_lru)
		return;
	if (n->lru_prev)
		n->lru_prev->lru_next = n->lru_next;
	else
		v->lru_first = n->lru_next;
	if (n->lru_next)
		n->lru_next->lru_prev = n->lru_prev;
	else
		v->lru_last = n->lru_prev;
	n->lru_prev = n->lru_next = NULL;
	n->in_lru = 0;
	v->lru_count--;
}

/* n just became idle: queue it, and park the oldest idle nodes past the cap. */
static void lru_add_locked(struct vmb_vfs *v, struct vmb_node *n)
{
	if (!v->can_park || !n->fh || n->fd < 0 || n->in_lru)
		return;
	n->lru_prev = v->lru_last;
	n->lru_next = NULL;
	if (v->lru_last)
		v->lru_last->lru_next = n;
	else
		v->lru_first = n;
	v->lru_last = n;
	n->in_lru = 1;
	v->lru_count++;
	while (v->lru_count > v->lru_cap) {
		struct vmb_node *old = v->lru_first;
		struct stat st;
		lru_remove_locked(v, old);
		/* An open file with no links left: no file handle would reopen it. */
		if (old->handles && (fstat(old->fd, &st) < 0 || st.st_nlink == 0))
			continue;
		close(old->fd);
		old->fd = -1;
	}
}

int vmb_node_ref(struct vmb_vfs *v, struct vmb_node *n)
{
	int r = 0;

	if (n == &v->root)
		return 0;
	pthread_mutex_lock(&v->tlock);
	if (n->refs == 0)
		lru_remove_locked(v, n);
	if (n->fd < 0) {
		int fd = n->fh ? open_by_handle_at(v->store.dirfd, n->fh, O_PATH | O_CLOEXEC) : -1;
		if (fd < 0) {
			r = -ESTALE;   /* gone from the store since it was parked */
			goto out;
		}
		n->fd = fd;
	}
	n->refs++;
out:
	pthread_mutex_unlock(&v->tlock);
	return r;
}

static void unhash_locked(struct vmb_vfs *v, struct vmb_node *n)
{
	struct vmb_node **pp = &v->hash[vmb_node_hash(n->dev, n->ino)];

	for (; *pp; pp = &(*pp)->hnext) {
		if (*pp == n) {
			*pp = n->hnext;
			v->nodes--;
			return;
		}
	}
	for (pp = &v->dead; *pp; pp = &(*pp)->hnext) {   /* parked_other_locked */
		if (*pp == n) {
			*pp = n->hnext;
			v->nodes--;
			return;
		}
	}
}

/* Drop refs, nlookup and kids references; free the node when none is left, and then
 * its parent's pin on it (which may free the parent, and so on up). Nodes are freed
 * without tlock (freeing a lockset calls the in-use callback). */
static void node_drop_h(struct vmb_vfs *v, struct vmb_node *n, uint64_t refs,
			uint64_t lookups, uint64_t kids, uint64_t handles)
{
	pthread_mutex_lock(&v->tlock);
	if (n != &v->root) {
		n->refs -= refs;
		n->handles -= handles;
		n->nlookup = lookups > n->nlookup ? 0 : n->nlookup - lookups;
	}
	n->kids -= kids;
	while (n != &v->root) {
		struct vmb_node *p;

		if (n->refs == 0)   /* descriptors a rebind left to calls then in flight */
			while (n->n_old_fds)
				close(n->old_fds[--n->n_old_fds]);
		if (n->refs || n->nlookup || n->kids || n->handles) {
			if (n->refs == 0)
				lru_add_locked(v, n);
			break;
		}
		lru_remove_locked(v, n);
		unhash_locked(v, n);
		p = n->parent;
		pthread_mutex_unlock(&v->tlock);
		node_free(n);   /* its parent still pins the chain its lockset may walk */
		pthread_mutex_lock(&v->tlock);
		if (!p)
			break;
		p->kids--;
		n = p;
	}
	pthread_mutex_unlock(&v->tlock);
}

static void node_drop(struct vmb_vfs *v, struct vmb_node *n, uint64_t refs, uint64_t lookups,
		      uint64_t kids)
{
	node_drop_h(v, n, refs, lookups, kids, 0);
}

void vmb_node_unhandle(struct vmb_vfs *v, struct vmb_node *n)
{
	node_drop_h(v, n, 0, 0, 0, 1);
}

static void node_release(struct vmb_vfs *v, struct vmb_node *n, uint64_t refs,
			 uint64_t lookups)
{
	if (n != &v->root)
		node_drop(v, n, refs, lookups, 0);
}

void vmb_node_mark_removed(struct vmb_vfs *v, dev_t dev, ino_t ino)
{
	struct vmb_node *n;

	/* under tlock, no reference: a node in the hash is not freed meanwhile, and
	 * no last reference is dropped here (its free may call back into the vfs) */
	pthread_mutex_lock(&v->tlock);
	for (n = v->hash[vmb_node_hash(dev, ino)]; n; n = n->hnext)
		if (n->dev == dev && n->ino == ino)
			atomic_store(&n->removed_here, 1);
	pthread_mutex_unlock(&v->tlock);
}

int vmb_node_gone_outside(struct vmb_node *n)
{
	struct stat st;

	return !atomic_load(&n->removed_here) &&
	       fstatat(n->fd, "", &st, AT_EMPTY_PATH) == 0 && st.st_nlink == 0;
}

struct vmb_node *vmb_node_find(struct vmb_vfs *v, dev_t dev, ino_t ino)
{
	struct vmb_node *n;

	pthread_mutex_lock(&v->tlock);
	for (n = v->hash[vmb_node_hash(dev, ino)]; n; n = n->hnext)
		if (n->dev == dev && n->ino == ino)
			break;
	pthread_mutex_unlock(&v->tlock);
	if (n && vmb_node_ref(v, n) < 0)
		n = NULL;   /* parked, and gone from the store */
	return n;
}

int vmb_node_rebind(struct vmb_vfs *v, struct vmb_node *n, int newfd, int force,
		    struct vmb_err *err)
{
	struct vmb_lockset *ls;
	struct file_handle *fh;
	struct stat st;
	char proc[64];
	size_t h;
	int r;

	if (fstatat(newfd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
		return vmb_err_sys(err, errno, "cannot stat the new backing file");
	if ((st.st_mode & S_IFMT) != n->type)
		return vmb_err_set(err, EINVAL, "the new backing file is of another type");
	ls = vmb_node_locks(n);   /* not under ilock: the caller may hold o_busy */
	if (ls) {
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", newfd);
		r = vmb_lockset_rebind(ls, proc, (uint64_t)st.st_ino, err);
		if (r < 0 && !force)
			return r;
		if (r < 0) {
			char rel[PATH_MAX];
			vmb_node_relpath(v, n, rel, sizeof(rel));
			vmb_log_msg(v->log, "the locks on '%s' stay on its old inode %llu, which "
				    "is no longer its file: %s", rel,
				    (unsigned long long)n->ino, err ? err->msg : strerror(-r));
			vmb_err_clear(err);
		}
	}
	fh = v->can_park ? handle_of(newfd) : NULL;
	pthread_mutex_lock(&v->tlock);
	unhash_locked(v, n);
	n->dev = st.st_dev;
	n->ino = st.st_ino;
	h = vmb_node_hash(n->dev, n->ino);
	n->hnext = v->hash[h];
	v->hash[h] = n;
	v->nodes++;
	if (n->fd >= 0) {
		int *grown;
		if (n->refs <= 1) {   /* ours alone: nobody uses it */
			close(n->fd);
		} else if ((grown = realloc(n->old_fds, (n->n_old_fds + 1) * sizeof(*grown)))) {
			n->old_fds = grown;
			n->old_fds[n->n_old_fds++] = n->fd;
		}
		/* else: out of memory, leak the descriptor rather than close it under a
		 * call that uses it */
	}
	n->fd = newfd;
	free(n->fh);
	n->fh = fh;
	pthread_mutex_unlock(&v->tlock);
	if (v->stale)   /* st_ino changed */
		v->stale(v->stale_arg, vmb_node_id(v, n), 0);
	return 0;
}

void vmb_node_renamed(struct vmb_vfs *v, const struct stat *st, struct vmb_node *parent,
		      const char *name)
{
	struct vmb_node *n;

	pthread_mutex_lock(&v->tlock);
	for (n = v->hash[vmb_node_hash(st->st_dev, st->st_ino)]; n; n = n->hnext)
		if (n->dev == st->st_dev && n->ino == st->st_ino)
			break;
	if (n)
		n->refs++;   /* keeps it (a parked node stays parked: only names change) */
	pthread_mutex_unlock(&v->tlock);
	if (!n)
		return;
	vmb_node_move(v, n, parent, name, 0);
	node_release(v, n, 1, 0);
}

struct vmb_node *vmb_node_bundle_locked(struct vmb_vfs *v, struct vmb_node *n)
{
	uint64_t hops = 0;

	if (!n || n == &v->root)
		return NULL;
	while (n->parent && n->parent != &v->root) {
		n = n->parent;
		if (++hops > v->nodes + 1)
			return NULL;   /* a cycle: cannot happen (lookups refuse to make one) */
	}
	return n->parent == &v->root ? n : NULL;
}

/* Would making p the parent of n close a cycle? Caller holds tlock. */
static int is_ancestor(struct vmb_vfs *v, struct vmb_node *n, struct vmb_node *p)
{
	uint64_t hops = 0;

	for (; p && p != &v->root; p = p->parent)
		if (p == n || ++hops > v->nodes + 1)
			return 1;
	return 0;
}

int vmb_node_move(struct vmb_vfs *v, struct vmb_node *n, struct vmb_node *parent,
		  const char *name, int other_name)
{
	struct vmb_node *old;
	char *copy = name ? strdup(name) : NULL, *oldname = NULL;
	int moved = 0;

	pthread_mutex_lock(&v->tlock);
	old = n->parent;
	if (other_name && old && n->handles &&
	    vmb_node_bundle_locked(v, n) !=
	    (parent == &v->root ? n : vmb_node_bundle_locked(v, parent))) {
		/* Another name of an open file, in another bundle: the file stays
		 * where it was opened. Its locks count in that bundle (a VM's bundle
		 * stays in use while someone looks at a hard link of its disk
		 * elsewhere), and a lock taken later through this open counts there. */
		pthread_mutex_unlock(&v->tlock);
		free(copy);
		return 0;
	}
	if (old != parent && !is_ancestor(v, n, parent)) {
		parent->kids++;
		n->parent = parent;
		moved = 1;
	}
	if (copy && (!n->name || strcmp(n->name, copy))) {
		oldname = n->name;
		n->name = copy;
		copy = NULL;
	}
	pthread_mutex_unlock(&v->tlock);
	free(copy);
	free(oldname);
	if (!moved)
		return 0;
	if (old) {
		vmb_inuse_rebundle(v);   /* while the old chain is still pinned */
		node_drop(v, old, 0, 0, 1);
	}
	return 1;
}

void vmb_node_put(struct vmb_vfs *v, struct vmb_node *n)
{
	node_release(v, n, 1, 0);
}

void vmb_vfs_forget(struct vmb_vfs *v, uint64_t ino, uint64_t nlookup)
{
	if (ino == VMB_ROOT_INO)
		return;
	if (vmb_snapview_is(ino)) {
		vmb_snapview_forget(v, ino, nlookup);
		return;
	}
	node_release(v, (struct vmb_node *)(uintptr_t)ino, 0, nlookup);
}

void vmb_node_procpath(const struct vmb_node *n, char buf[64])
{
	snprintf(buf, 64, "/proc/self/fd/%d", n->fd);
}

void vmb_node_relpath(struct vmb_vfs *v, const struct vmb_node *n, char *buf, size_t size)
{
	char proc[64], *full;
	size_t plen;
	ssize_t len;

	full = malloc(PATH_MAX);
	if (!full) {
		snprintf(buf, size, "?");
		return;
	}
	vmb_node_procpath(n, proc);
	len = readlink(proc, full, PATH_MAX - 1);
	if (len < 0) {
		snprintf(buf, size, "?");
		goto out;
	}
	full[len] = '\0';
	plen = strlen(v->store_real);
	if (strncmp(full, v->store_real, plen) == 0 && full[plen] == '/') {
		snprintf(buf, size, "%s", full + plen + 1);
		goto out;
	}
	snprintf(buf, size, "%s", full);
out:
	free(full);
}

/* st_blocks of a file over layers whose image is not open: every block that reads
 * as data through its chain (as vmb_image_alloc_bytes counts for an open one), from
 * its map loaded by the image's rules. 1 when done, 0 when the file has no base,
 * -errno (st left alone). */
static int chain_blocks(struct vmb_vfs *v, struct vmb_node *n, struct stat *st)
{
	struct vmb_image_baseinfo bi = { .base = NULL };
	struct vmb_blockmap m;
	struct vmb_err e = { 0 };
	char proc[64], rel[PATH_MAX];
	uint64_t size;
	int fd, rebuilt, r;

	vmb_node_procpath(n, proc);
	if (getxattr(proc, VMB_BASE_XATTR, NULL, 0) < 0)
		return errno == ENODATA || errno == ENOTSUP ? 0 : -errno;
	fd = open(proc, O_RDONLY | O_CLOEXEC);   /* the magic link: no O_NOFOLLOW */
	if (fd < 0)
		return -errno;
	vmb_node_relpath(v, n, rel, sizeof(rel));
	vmb_blockmap_init(&m);
	r = vmb_image_load_map2(fd, v->store.mapfd, rel, &v->resolver, &m, &size, &rebuilt,
				&bi, &e);
	if (r == 0 && bi.id[0]) {
		st->st_blocks = (blkcnt_t)(vmb_image_chain_data_blocks(&m, bi.base, bi.limit,
								       size) *
					   (VMB_BLOCK_SIZE / 512));
		r = 1;
	}
	vmb_base_put(bi.base);
	vmb_blockmap_destroy(&m);
	close(fd);
	return r;
}

/* st_blocks of a file whose image is not open: the data blocks of its saved map,
 * while the map matches the file (the backing file's own count may include the
 * filesystem's extent blocks); else the backing file's count. A file over layers:
 * through its chain (chain_blocks). */
static void saved_blocks(struct vmb_vfs *v, struct vmb_node *n, struct stat *st)
{
	char name[VMB_SIDECAR_NAME_MAX];
	struct vmb_stamp now, saved;
	uint64_t data;

	if (chain_blocks(v, n, st) > 0)
		return;
	if (vmb_stamp_fd(n->fd, &now, NULL) < 0)
		return;
	vmb_sidecar_name(now.ino, name);
	if (vmb_sidecar_peek(v->store.mapfd, name, &saved, &data) == 0 &&
	    vmb_stamp_equal(&now, &saved))
		st->st_blocks = (blkcnt_t)(data * (VMB_BLOCK_SIZE / 512));
}

int vmb_node_stat(struct vmb_vfs *v, struct vmb_node *n, struct stat *st, struct vmb_err *err)
{
	int have = 0;

	/* Under ilock: a last close holds it until the file's queued direct writes have
	 * landed (dio.h), so the backing file's size is never read in between. */
	pthread_mutex_lock(&n->ilock);
	if (n->img) {
		/* The backing file may have been changed by someone else. (Not while
		 * this mount's own change of it is in progress: that stamps it.) */
		struct vmb_err e;
		vmb_err_clear(&e);
		/* its descriptor may be parked; ilock may be let go meanwhile: n->img
		 * is looked at again under it (the hold fails when it is gone) */
		if (vmb_fds_hold_ilocked(v, n, NULL, &e) == 0) {
			if (n->img && vmb_image_revalidate(n->img, 1, &e) < 0)
				vmb_log_msg(v->log, "%s", e.msg);
			vmb_fds_unhold(v, n);
		}
	}
	if (fstatat(n->fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0) {
		pthread_mutex_unlock(&n->ilock);
		return vmb_err_sys(err, errno, "cannot stat");
	}
	if (S_ISREG(st->st_mode) && n->img) {
		st->st_size = (off_t)vmb_image_size(n->img);
		st->st_blocks = (blkcnt_t)(vmb_image_alloc_bytes(n->img) / 512);
		have = 1;
	}
	pthread_mutex_unlock(&n->ilock);
	if (S_ISREG(st->st_mode) && !have)
		saved_blocks(v, n, st);
	pthread_mutex_lock(&n->ilock);
	n->attr_ok = 1;
	n->attr_mtime = st->st_mtim;
	n->attr_size = st->st_size;
	n->attr_blocks = st->st_blocks;
	pthread_mutex_unlock(&n->ilock);
	st->st_blksize = 1 << 20;   /* invite 1 MiB I/O */
	if (n == &v->root)
		vmb_lazy_root_stat(v, st);
	else if (__atomic_load_n(&n->lazy_ino, __ATOMIC_RELAXED))
		st->st_ino = (ino_t)__atomic_load_n(&n->lazy_ino, __ATOMIC_RELAXED);
	return 0;
}

int vmb_check_new_name(struct vmb_vfs *v, struct vmb_node *parent, const char *name,
		       int is_dir, struct vmb_err *err)
{
	int r = vmb_name_check(name, err);

	if (r < 0)
		return r;
	if (v->readonly)
		return vmb_err_set(err, EROFS, "the store is mounted read-only");
	if (parent == &v->root) {
		if (vmb_store_reserved(name))
			return vmb_err_set(err, EPERM, "'%s' is reserved for the store's metadata",
					   name);
		if (!is_dir)
			return vmb_err_set(err, EPERM, "the top level of a store holds only "
					   "bundles (directories): cannot create '%s'", name);
		if (vmb_snapview_name(name))
			return vmb_err_set(err, EPERM, "'%s' is where the mount shows snapshots",
					   name);
		if (strchr(name, '@'))
			return vmb_name_check_new(name, err);
	}
	return 0;
}

int vmb_node_lookup(struct vmb_vfs *v, struct vmb_node *parent, const char *name,
		    struct vmb_entry *e, struct vmb_err *err)
{
	int fd, r;

	r = vmb_name_check(name, err);
	if (r < 0)
		return r;
	if (parent == &v->root && vmb_store_reserved(name))
		return -ENOENT;
	if (parent == &v->root && vmb_snapview_name(name))
		return vmb_snapview_lookup(v, VMB_ROOT_INO, name, e, err);
	fd = openat(parent->fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		/* In a directory removed from outside the mount (a bundle replaced by
		 * import --replace, say), reached through the kernel's cache: ESTALE
		 * makes the kernel walk the path again, revalidating each step. */
		if (r == -ENOENT && parent != &v->root && vmb_node_gone_outside(parent))
			r = -ESTALE;
		return r;
	}
	return vmb_node_lookup_fd(v, parent, fd, name, e, err);
}

/* Is n, found in the hash by (dev, ino) of fd (st), a parked node of another inode
 * that had that number? A parked node holds no descriptor, so the inode it names
 * may be gone (removed through the mount or from outside while the kernel still
 * knew it) and its number given to a new file or directory: reviving the node with
 * fd would hand the kernel the old node id and generation (and type) for the new
 * inode (a regular file opened as the old directory: EISDIR; creates failing
 * ESTALE). A live node's descriptor pins its inode, so its number cannot be
 * reused meanwhile. When it is another inode: the node moves from the hash to
 * v->dead (it lives on until the kernel forgets it, or vmb_vfs_free; nothing finds
 * it by number again) and 1 returned.
 * Caller holds tlock (a leaf here: name_to_handle_at only). */
static int parked_other_locked(struct vmb_vfs *v, struct vmb_node *n, int fd,
			       const struct stat *st)
{
	struct file_handle *fh;
	int other;

	if (n->fd >= 0)
		return 0;
	other = (st->st_mode & S_IFMT) != n->type;
	if (!other && n->fh && (fh = handle_of(fd))) {
		other = fh->handle_type != n->fh->handle_type ||
			fh->handle_bytes != n->fh->handle_bytes ||
			memcmp(fh->f_handle, n->fh->f_handle, fh->handle_bytes) != 0;
		free(fh);
	}
	if (other) {
		lru_remove_locked(v, n);
		unhash_locked(v, n);
		n->hnext = v->dead;   /* still counted in v->nodes; freed as any node */
		v->dead = n;
		v->nodes++;
	}
	return other;
}

int vmb_node_lookup_fd(struct vmb_vfs *v, struct vmb_node *parent, int fd, const char *name,
		       struct vmb_entry *e, struct vmb_err *err)
{
	struct vmb_node *n, *fresh = NULL;
	struct stat st;
	size_t h;
	int r;

	if (fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	if (parent == &v->root && !S_ISDIR(st.st_mode)) {
		close(fd);   /* the top level shows bundles only */
		return -ENOENT;
	}
	h = vmb_node_hash(st.st_dev, st.st_ino);
	pthread_mutex_lock(&v->tlock);
	for (n = v->hash[h]; n; n = n->hnext)
		if (n->dev == st.st_dev && n->ino == st.st_ino)
			break;
	if (n && parked_other_locked(v, n, fd, &st))
		n = NULL;   /* unhashed: its number now names this other inode */
	if (!n) {
		pthread_mutex_unlock(&v->tlock);
		fresh = malloc(sizeof(*fresh));
		if (!fresh) {
			close(fd);
			return vmb_err_set(err, ENOMEM, "out of memory");
		}
		node_init(fresh);
		fresh->dev = st.st_dev;
		fresh->ino = st.st_ino;
		fresh->type = st.st_mode & S_IFMT;
		fresh->fd = fd;
		fd = -1;
		if (v->can_park)
			fresh->fh = handle_of(fresh->fd);
		pthread_mutex_lock(&v->tlock);
		for (n = v->hash[h]; n; n = n->hnext)   /* raced with another lookup? */
			if (n->dev == st.st_dev && n->ino == st.st_ino)
				break;
		if (n && parked_other_locked(v, n, fresh->fd, &st))
			n = NULL;
		if (!n) {
			n = fresh;
			fresh = NULL;
			n->generation = ++v->next_generation;
			n->hnext = v->hash[h];
			v->hash[h] = n;
			v->nodes++;
		}
	}
	n->nlookup++;
	if (n->refs == 0)
		lru_remove_locked(v, n);
	if (n->fd < 0) {   /* parked: this lookup's descriptor brings it back */
		n->fd = fd;
		fd = -1;
	}
	n->refs++;
	pthread_mutex_unlock(&v->tlock);
	if (fd >= 0)
		close(fd);
	if (fresh)
		node_free(fresh);
	/* a file with several names, found by one: maybe not the one it was opened by */
	vmb_node_move(v, n, parent, name, S_ISREG(st.st_mode) && st.st_nlink > 1);
	if (parent == &v->root && v->lazy_n)   /* a URL mount's bundle: its listed number */
		__atomic_store_n(&n->lazy_ino, vmb_lazy_ino(v, name), __ATOMIC_RELAXED);
	memset(e, 0, sizeof(*e));
	e->ino = vmb_node_id(v, n);
	e->generation = n->generation;
	r = vmb_node_stat(v, n, &e->attr, err);
	if (r < 0)
		node_release(v, n, 1, 1);
	else
		vmb_node_put(v, n);
	return r;
}

int vmb_vfs_lookup(struct vmb_vfs *v, uint64_t parent, const char *name,
		   struct vmb_entry *e, struct vmb_err *err)
{
	struct vmb_node *p;
	int r;

	if (vmb_snapview_is(parent))
		return vmb_snapview_lookup(v, parent, name, e, err);
	if (parent == VMB_ROOT_INO && v->lazy_n) {   /* a URL mount's bundle, first seen */
		r = vmb_lazy_lookup(v, name, err);
		if (r < 0)
			return r;
	}
	r = vmb_node_get(v, parent, &p);
	if (r < 0)
		return r;
	/* A lookup counts as a change of p's entries for the write barrier
	 * (vfs_barrier.c): a freeze renames the new delta over the name and then
	 * moves the node to it; a lookup in between would make a second node for
	 * the new inode, whose descriptors the next freeze would leave on the inode
	 * it makes a layer (outside report X-freeze). So it waits while the bundle
	 * is paused, and a pause waits for the lookups in flight. */
	vmb_change_begin(v, p, name);
	r = vmb_node_lookup(v, p, name, e, err);
	vmb_change_end(v, p);
	vmb_node_put(v, p);
	return r;
}

int vmb_vfs_getattr(struct vmb_vfs *v, uint64_t ino, struct stat *st, struct vmb_err *err)
{
	struct vmb_node *n;
	int r;

	if (vmb_snapview_is(ino))
		return vmb_snapview_getattr(v, ino, st, err);
	r = vmb_node_get(v, ino, &n);
	if (r < 0)
		return r;
	r = vmb_node_stat(v, n, st, err);
	vmb_node_put(v, n);
	return r;
}

static int set_times(struct vmb_node *n, struct vmb_image *img, const struct stat *attr,
		     int valid, struct vmb_err *err)
{
	struct timespec ts[2];

	ts[0].tv_sec = ts[1].tv_sec = 0;
	ts[0].tv_nsec = ts[1].tv_nsec = UTIME_OMIT;
	if (valid & VMB_SET_ATIME_NOW)
		ts[0].tv_nsec = UTIME_NOW;
	else if (valid & VMB_SET_ATIME)
		ts[0] = attr->st_atim;
	if (valid & VMB_SET_MTIME_NOW)
		ts[1].tv_nsec = UTIME_NOW;
	else if (valid & VMB_SET_MTIME)
		ts[1] = attr->st_mtim;
	if (img)   /* a regular file: an own change of its stamp (image.h) */
		return vmb_image_set_times(img, ts, err);
	if (utimensat(n->fd, "", ts, AT_EMPTY_PATH) < 0)
		return vmb_err_sys(err, errno, "cannot set times");
	return 0;
}

#define TIMES (VMB_SET_ATIME | VMB_SET_MTIME | VMB_SET_ATIME_NOW | VMB_SET_MTIME_NOW)

static int do_setattr(struct vmb_vfs *v, const struct vmb_ctx *ctx, struct vmb_node *n,
		      struct vmb_file *f, const struct stat *attr, int valid,
		      struct vmb_err *err)
{
	struct vmb_image *img = f ? f->img : NULL;
	char proc[64];
	int got = 0, held = 0, was_open, r = 0;

	if (v->readonly)
		return vmb_err_set(err, EROFS, "the store is mounted read-only");
	if ((valid & VMB_SET_SIZE) && !S_ISREG(n->type))
		return S_ISDIR(n->type) ? -EISDIR : -EINVAL;
	if ((valid & VMB_SET_MODE) && S_ISLNK(n->type))
		return -EOPNOTSUPP;
	if (valid & VMB_SET_SIZE) {
		r = vmb_check_node_not_in_use(v, n, ctx, "truncate", err);
		if (r < 0)
			return r;
	}
	/* Size and times of a regular file go with its map: the map is saved with the
	 * backing file's new mtime, so it stays trusted. */
	if (S_ISREG(n->type) && !img && (valid & (VMB_SET_SIZE | TIMES))) {
		r = vmb_node_image_get(v, n, -1, &img, &was_open, err);
		if (r < 0)
			return r;
		got = 1;
	}
	if (img && (valid & (VMB_SET_SIZE | TIMES))) {   /* its descriptor may be parked */
		r = vmb_fds_hold(v, n, err);
		if (r < 0)
			goto out;
		held = 1;
	}
	vmb_node_procpath(n, proc);
	if ((valid & VMB_SET_MODE) && chmod(proc, attr->st_mode & 07777) < 0) {
		r = vmb_err_sys(err, errno, "cannot change mode");
		goto out;
	}
	if (valid & (VMB_SET_UID | VMB_SET_GID)) {
		uid_t uid = (valid & VMB_SET_UID) ? attr->st_uid : (uid_t)-1;
		gid_t gid = (valid & VMB_SET_GID) ? attr->st_gid : (gid_t)-1;
		if (fchownat(n->fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0) {
			r = vmb_err_sys(err, errno, "cannot change owner");
			goto out;
		}
	}
	if (valid & VMB_SET_SIZE) {
		r = vmb_image_truncate(img, (uint64_t)attr->st_size, err);
		if (r < 0)
			goto out;
	}
	if (valid & TIMES) {
		r = set_times(n, img, attr, valid, err);
		if (r < 0)
			goto out;
	}
out:
	if (img && (valid & TIMES))
		vmb_image_touch(img);
	if (held)
		vmb_fds_unhold(v, n);
	if (got)
		vmb_node_image_put(v, n);
	return r;
}

int vmb_vfs_setattr(struct vmb_vfs *v, const struct vmb_ctx *ctx, uint64_t ino,
		    struct vmb_file *f, const struct stat *attr, int valid, struct stat *out,
		    struct vmb_err *err)
{
	struct vmb_node *n;
	int r;

	r = vmb_node_get(v, ino, &n);
	if (r < 0)
		return r;
	vmb_change_begin(v, n, NULL);
	r = do_setattr(v, ctx, n, f, attr, valid, err);
	vmb_change_end(v, n);
	if (r == 0)
		r = vmb_node_stat(v, n, out, err);
	vmb_node_put(v, n);
	return r;
}

int vmb_vfs_statfs(struct vmb_vfs *v, struct statvfs *st, struct vmb_err *err)
{
	if (fstatvfs(v->store.dirfd, st) < 0)
		return vmb_err_sys(err, errno, "cannot statfs store '%s'", v->store.path);
	st->f_namemax = NAME_MAX;
	return 0;
}
