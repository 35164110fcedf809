/* vfs_lock.c - locks through the mount and the in-use policy (see vfs.h, lock.h,
 * auxfile.h).
 *
 * A bundle is in use when (1) a strong lock owner of this mount (lock.h) holds a
 * lock on one of its files: an O(1) counter per bundle node, kept by the lock
 * environment's callback; (2) another mount records it in use in the holder
 * registry (holders.h): one small directory read; or (3) an aux-storage file at the
 * top of the bundle is locked by a process that uses the store directly: the
 * bundle's aux-storage names are cached per bundle (rescanned when the bundle
 * directory changes behind the mount's back), so this costs O(aux files). No check
 * builds a path or walks the bundle.
 */
#include "config.h"
#include "vfs/vfs_int.h"
#include "lock/auxfile.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

struct vmb_auxcache {
	int valid;
	struct timespec mtim, ctim;   /* of the bundle directory when scanned */
	char **names;                 /* aux-storage names at its top level */
	size_t n;
};

void vmb_aux_cache_free(struct vmb_auxcache *c)
{
	size_t i;

	if (!c)
		return;
	for (i = 0; i < c->n; i++)
		free(c->names[i]);
	free(c->names);
	free(c);
}

static int ts_eq(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

static void cache_clear(struct vmb_auxcache *c)
{
	size_t i;

	for (i = 0; i < c->n; i++)
		free(c->names[i]);
	free(c->names);
	c->names = NULL;
	c->n = 0;
	c->valid = 0;
}

/* Scan the bundle directory bfd for aux-storage names into c. Caller holds auxmu. */
static int cache_scan(struct vmb_vfs *v, struct vmb_auxcache *c, int bfd,
		      const struct stat *st)
{
	struct dirent *de;
	size_t cap = 0;
	DIR *d;
	int fd;

	cache_clear(c);
	fd = openat(bfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -ENOMEM;
	}
	while ((de = readdir(d))) {
		if (de->d_type != DT_REG && de->d_type != DT_UNKNOWN)
			continue;
		if (!vmb_aux_match(de->d_name, (const char *const *)v->aux_patterns))
			continue;
		if (c->n == cap) {
			size_t nc = cap ? cap * 2 : 4;
			char **nn = realloc(c->names, nc * sizeof(*nn));
			if (!nn)
				break;
			c->names = nn;
			cap = nc;
		}
		if (!(c->names[c->n] = strdup(de->d_name)))
			break;
		c->n++;
	}
	closedir(d);
	c->mtim = st->st_mtim;
	c->ctim = st->st_ctim;
	c->valid = 1;
	return 0;
}

/* A copy of the aux-storage names at the top of bundle b (node, may be NULL) whose
 * directory is bfd: NULL-terminated in *out (free with vmb_aux_free). */
static int aux_names(struct vmb_vfs *v, struct vmb_node *b, int bfd, char ***out)
{
	struct vmb_auxcache tmp = {0}, *c;
	struct stat st;
	char **list;
	size_t i;
	int r = 0;

	*out = NULL;
	if (fstatat(bfd, "", &st, AT_EMPTY_PATH) < 0)
		return -errno;
	pthread_mutex_lock(&v->auxmu);
	c = b ? b->aux : &tmp;
	if (!c) {
		c = b->aux = calloc(1, sizeof(*c));
		if (!c)
			c = &tmp;
	}
	if (!c->valid || !ts_eq(&c->mtim, &st.st_mtim) || !ts_eq(&c->ctim, &st.st_ctim))
		r = cache_scan(v, c, bfd, &st);
	if (r == 0 && c->n) {
		list = calloc(c->n + 1, sizeof(*list));
		for (i = 0; list && i < c->n; i++)
			list[i] = strdup(c->names[i]);
		*out = list;
	}
	if (c == &tmp)
		cache_clear(&tmp);
	pthread_mutex_unlock(&v->auxmu);
	return r;
}

void vmb_aux_cache_note(struct vmb_vfs *v, struct vmb_node *dir, const char *gone,
			const char *added)
{
	const char *const *pat = (const char *const *)v->aux_patterns;
	struct stat st;

	if (dir == &v->root || dir->parent != &v->root || dir->fd < 0)
		return;   /* not a bundle's top directory */
	pthread_mutex_lock(&v->auxmu);
	if (dir->aux && dir->aux->valid) {
		if ((gone && vmb_aux_match(gone, pat)) || (added && vmb_aux_match(added, pat)) ||
		    fstatat(dir->fd, "", &st, AT_EMPTY_PATH) < 0) {
			dir->aux->valid = 0;
		} else {   /* our own change, to a name that is not aux storage */
			dir->aux->mtim = st.st_mtim;
			dir->aux->ctim = st.st_ctim;
		}
	}
	pthread_mutex_unlock(&v->auxmu);
}

/* ---- where a node is -------------------------------------------------------------- */

/* n's path relative to the store, from the names of its chain (no system call, never
 * longer than size: an over-long path keeps its end, after "..."). */
static void node_path(struct vmb_vfs *v, struct vmb_node *n, char *buf, size_t size)
{
	size_t pos = size - 1, len;
	struct vmb_node *p;
	int cut = 0;

	buf[pos] = '\0';
	pthread_mutex_lock(&v->tlock);
	for (p = n; p && p != &v->root; p = p->parent) {
		const char *name = p->name ? p->name : "?";
		len = strlen(name) + (pos < size - 1);
		if (len + 4 > pos) {
			cut = 1;
			break;
		}
		if (pos < size - 1)
			buf[--pos] = '/';
		pos -= strlen(name);
		memcpy(buf + pos, name, strlen(name));
	}
	pthread_mutex_unlock(&v->tlock);
	if (cut) {
		pos -= 4;
		memcpy(buf + pos, ".../", 4);
	}
	memmove(buf, buf + pos, size - pos);
}

/* ---- the in-use counts ------------------------------------------------------------ */

static void list_add(struct vmb_node *b, struct vmb_node *n)
{
	n->lk_prev = NULL;
	n->lk_next = b->locked;
	if (b->locked)
		b->locked->lk_prev = n;
	b->locked = n;
}

static void list_del(struct vmb_node *b, struct vmb_node *n)
{
	if (n->lk_prev)
		n->lk_prev->lk_next = n->lk_next;
	else
		b->locked = n->lk_next;
	if (n->lk_next)
		n->lk_next->lk_prev = n->lk_prev;
	n->lk_prev = n->lk_next = NULL;
}

/* Bundle b's record in the registry: written when it becomes in use through this
 * mount, removed when it stops. Caller holds inuse_mu. */
static void bundle_record(struct vmb_vfs *v, struct vmb_node *b, struct vmb_node *n,
			  const struct vmb_holder *h)
{
	char path[PATH_MAX];

	if (h) {
		node_path(v, n, path, sizeof(path));
		vmb_holders_bundle_set(v->store.metafd, (uint64_t)b->ino, h, path, NULL);
	} else {
		vmb_holders_bundle_set(v->store.metafd, (uint64_t)b->ino, NULL, NULL, NULL);
	}
}

/* Count n's c strong owners in b (or take them out: c < 0). Caller holds inuse_mu. */
static void count_in(struct vmb_vfs *v, struct vmb_node *b, struct vmb_node *n, int c)
{
	if (!b)
		return;
	if (c > 0) {
		if (b->held == 0 && n->lkh)
			bundle_record(v, b, n, n->lkh);
		b->held += (unsigned)c;
	} else {
		b->held -= (unsigned)-c;
		if (b->held == 0)
			bundle_record(v, b, n, NULL);
	}
}

void vmb_inuse_hold(void *arg, struct vmb_lockset *ls, const struct vmb_holder *h, int delta)
{
	struct vmb_vfs *v = arg;
	struct vmb_node *n = ls->cookie, *b;

	if (!n)
		return;
	pthread_mutex_lock(&v->inuse_mu);
	if (delta > 0) {
		if (!n->lkh)
			n->lkh = malloc(sizeof(*n->lkh));
		if (n->lkh)
			*n->lkh = *h;
		if (n->counted == 0) {
			v->ncounted++;
			pthread_mutex_lock(&v->tlock);
			b = vmb_node_bundle_locked(v, n);
			pthread_mutex_unlock(&v->tlock);
			n->counted_in = b;
			if (b)
				list_add(b, n);
		}
		n->counted++;
		count_in(v, n->counted_in, n, 1);
	} else if (n->counted) {
		b = n->counted_in;
		n->counted--;
		count_in(v, b, n, -1);
		if (n->counted == 0) {
			v->ncounted--;
			if (b)
				list_del(b, n);
			n->counted_in = NULL;
		}
	}
	pthread_mutex_unlock(&v->inuse_mu);
}

void vmb_inuse_rebundle(struct vmb_vfs *v)
{
	struct vmb_node *moved = NULL, *n, *next, *b;
	size_t i;

	pthread_mutex_lock(&v->inuse_mu);
	if (!v->ncounted) {
		pthread_mutex_unlock(&v->inuse_mu);
		return;
	}
	pthread_mutex_lock(&v->tlock);
	/* every counted file whose chain now leads to another bundle */
	for (i = 0; i < ((size_t)1 << VMB_HASH_BITS); i++) {
		for (b = v->hash[i]; b; b = b->hnext) {
			if (!b->locked)
				continue;
			for (n = b->locked; n; n = next) {
				next = n->lk_next;
				if (vmb_node_bundle_locked(v, n) == b)
					continue;
				list_del(b, n);
				n->lk_next = moved;
				moved = n;
			}
		}
	}
	pthread_mutex_unlock(&v->tlock);
	for (n = moved; n; n = next) {
		next = n->lk_next;
		count_in(v, n->counted_in, n, -(int)n->counted);
		pthread_mutex_lock(&v->tlock);
		b = vmb_node_bundle_locked(v, n);
		pthread_mutex_unlock(&v->tlock);
		n->counted_in = b;
		n->lk_next = NULL;
		if (b) {
			list_add(b, n);
			count_in(v, b, n, (int)n->counted);
		}
	}
	pthread_mutex_unlock(&v->inuse_mu);
}

/* ---- deciding "in use" ----------------------------------------------------------- */

struct found {
	int known;                 /* h names the holder */
	struct vmb_holder h;
	char path[PATH_MAX];       /* the locked file, relative to the store */
};

/* A strong owner of this mount, other than process self, holding a lock in bundle b.
 * self is resolved only when needed (*self < 0: from ctx). */
static int local_holder(struct vmb_vfs *v, struct vmb_node *b, pid_t self,
			struct found *f)
{
	struct vmb_node **snap = NULL, *n;
	size_t cnt = 0, i;
	int hit = 0;

	pthread_mutex_lock(&v->inuse_mu);
	if (b->held) {
		for (n = b->locked; n; n = n->lk_next)
			cnt++;
		snap = calloc(cnt ? cnt : 1, sizeof(*snap));
		cnt = 0;
		for (n = b->locked; snap && n; n = n->lk_next)
			if (vmb_node_ref(v, n) == 0)
				snap[cnt++] = n;
	}
	pthread_mutex_unlock(&v->inuse_mu);
	for (i = 0; i < cnt; i++) {
		struct vmb_lockset *ls;

		n = snap[i];
		ls = vmb_node_locks(n);
		if (!hit && ls && !vmb_lock_strong_only_by(ls, self, &f->h)) {
			/* the holder may just have closed it: wait for its release */
			if (!vmb_lock_settle(ls) || !vmb_lock_strong_only_by(ls, self, &f->h)) {
				hit = 1;
				f->known = 1;
				node_path(v, n, f->path, sizeof(f->path));
			}
		}
		vmb_node_put(v, n);
	}
	free(snap);
	return hit;
}

/* The node of (dev, ino) with a reference, or NULL. */
static struct vmb_node *node_find(struct vmb_vfs *v, dev_t dev, ino_t ino)
{
	struct vmb_node *n;

	pthread_mutex_lock(&v->tlock);
	for (n = v->hash[vmb_node_hash(dev, ino)]; n; n = n->hnext)
		if (n->dev == dev && n->ino == ino)
			break;
	pthread_mutex_unlock(&v->tlock);
	if (n && vmb_node_ref(v, n) < 0)
		n = NULL;
	return n;
}

/* An aux-storage file at the top of the bundle locked by a process that uses the
 * store directly (not through this mount, nor another whose registry names it). */
static int direct_holder(struct vmb_vfs *v, struct vmb_node *b, int bfd, const char *bname,
			 pid_t self, struct found *f)
{
	char **names = NULL;
	size_t i;
	int hit = 0;

	if (aux_names(v, b, bfd, &names) < 0 || !names)
		return 0;
	for (i = 0; names[i] && !hit; i++) {
		struct vmb_holder h;
		struct vmb_node *n;
		struct flock fl;
		struct stat st;
		int fd = openat(bfd, names[i], O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);

		if (fd < 0)
			continue;
		memset(&fl, 0, sizeof(fl));
		fl.l_type = F_WRLCK;
		fl.l_whence = SEEK_SET;
		if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
		    fcntl(fd, F_OFD_GETLK, &fl) < 0 || fl.l_type == F_UNLCK) {
			close(fd);
			continue;
		}
		n = node_find(v, st.st_dev, st.st_ino);
		if (n) {   /* through this mount: counted above if it makes the bundle in use */
			struct vmb_lockset *ls;
			int ours;
			ls = vmb_node_locks(n);
			ours = ls && vmb_lock_any(ls, NULL);
			vmb_node_put(v, n);
			if (ours) {
				close(fd);
				continue;
			}
			/* Not (or no longer) ours: it may have been ours and released since
			 * the test above (a release drops the shadow and the backing lock
			 * together, under the lockset's mutex). Test again. */
			memset(&fl, 0, sizeof(fl));
			fl.l_type = F_WRLCK;
			fl.l_whence = SEEK_SET;
			if (fcntl(fd, F_OFD_GETLK, &fl) < 0 || fl.l_type == F_UNLCK) {
				close(fd);
				continue;
			}
		}
		close(fd);
		if (vmb_holders_find(v->store.metafd, (uint64_t)st.st_ino, 1, 0, 1, &h))
			continue;   /* another mount's: its bundle record says if it counts */
		memset(f, 0, sizeof(*f));
		if (fl.l_pid > 0) {
			f->known = 1;
			f->h.pid = fl.l_pid;
			f->h.type = fl.l_type == F_WRLCK ? 'w' : 'r';
			vmb_comm_of(fl.l_pid, f->h.comm);
			if (fl.l_pid == self)
				continue;
		}
		snprintf(f->path, sizeof(f->path), "%s/%s", bname, names[i]);
		hit = 1;
	}
	vmb_aux_free(names);
	return hit;
}

static void found_describe(const struct found *f, char *buf, size_t size)
{
	if (f->known)
		snprintf(buf, size, "pid %ld (%s) holds a lock on '%s'", (long)f->h.pid,
			 f->h.comm, f->path);
	else
		snprintf(buf, size, "'%s' is locked", f->path);
}

/* Is bundle b (node, may be NULL; bfd its directory, bname its name) in use by
 * anyone but the caller? 1 with *f, else 0. */
static int in_use(struct vmb_vfs *v, struct vmb_node *b, int bfd, const char *bname,
		  const struct vmb_ctx *ctx, struct found *f)
{
	pid_t self = ctx ? vmb_tgid_of(ctx->pid) : -1;
	struct stat st;
	int hit;

	memset(f, 0, sizeof(*f));
	hit = b && local_holder(v, b, self, f);
	if (!hit && fstatat(bfd, "", &st, AT_EMPTY_PATH) == 0 &&
	    vmb_holders_bundle_find(v->store.metafd, (uint64_t)st.st_ino, 1, &f->h, f->path,
				    sizeof(f->path))) {
		f->known = 1;
		hit = f->h.pid != self;
	}
	if (!hit)
		hit = direct_holder(v, b, bfd, bname, self, f);
	return hit;
}

/* The bundle of (parent, name) with a reference, and its name; NULL when outside
 * every bundle. */
static struct vmb_node *bundle_of(struct vmb_vfs *v, struct vmb_node *parent,
				  const char *name)
{
	struct vmb_node *b;
	struct stat st;

	if (parent == &v->root) {
		if (fstatat(v->root.fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISDIR(st.st_mode))
			return NULL;
		return node_find(v, st.st_dev, st.st_ino);
	}
	pthread_mutex_lock(&v->tlock);
	b = vmb_node_bundle_locked(v, parent);   /* pinned by parent's chain */
	pthread_mutex_unlock(&v->tlock);
	if (b && vmb_node_ref(v, b) < 0)
		b = NULL;
	return b;
}

static int check_at(struct vmb_vfs *v, struct vmb_node *parent, const char *name,
		    struct vmb_node *self, const struct vmb_ctx *ctx, const char *what,
		    struct vmb_err *err)
{
	char target[PATH_MAX], bname[NAME_MAX + 1];
	struct vmb_node *b;
	struct found f;
	int bfd, own_fd = 0, r;

	if (self) {
		pthread_mutex_lock(&v->tlock);
		b = vmb_node_bundle_locked(v, self);
		pthread_mutex_unlock(&v->tlock);
		if (b && vmb_node_ref(v, b) < 0)
			b = NULL;
	} else {
		b = bundle_of(v, parent, name);
	}
	if (b) {
		bfd = b->fd;
		pthread_mutex_lock(&v->tlock);
		snprintf(bname, sizeof(bname), "%s", b->name ? b->name : "?");
		pthread_mutex_unlock(&v->tlock);
	} else if (!self && parent == &v->root) {   /* a bundle not looked up yet */
		bfd = openat(v->root.fd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (bfd < 0)
			return 0;   /* not a bundle (yet): nothing to protect */
		own_fd = 1;
		snprintf(bname, sizeof(bname), "%s", name);
	} else {
		return 0;   /* outside every bundle (or its place is unknown) */
	}
	r = in_use(v, b, bfd, bname, ctx, &f) ? -EBUSY : 0;
	if (r < 0) {   /* the message: the names are only put together now */
		char who[PATH_MAX + 128];
		if (self) {
			node_path(v, self, target, sizeof(target));
		} else if (parent == &v->root) {
			snprintf(target, sizeof(target), "%s", name);
		} else {
			size_t len;
			node_path(v, parent, target, sizeof(target) - NAME_MAX - 2);
			len = strlen(target);
			snprintf(target + len, sizeof(target) - len, "/%s", name);
		}
		found_describe(&f, who, sizeof(who));
		vmb_err_set(err, EBUSY, "refused to %s '%s': bundle '%s' is in use: %s", what,
			    target, bname, who);
		vmb_log_msg(v->log, "%s", err ? err->msg : "bundle in use");
	}
	if (own_fd)
		close(bfd);
	if (b)
		vmb_node_put(v, b);
	return r;
}

int vmb_check_not_in_use(struct vmb_vfs *v, struct vmb_node *parent, const char *name,
			 const struct vmb_ctx *ctx, const char *what, struct vmb_err *err)
{
	return check_at(v, parent, name, NULL, ctx, what, err);
}

int vmb_check_node_not_in_use(struct vmb_vfs *v, struct vmb_node *n,
			      const struct vmb_ctx *ctx, const char *what, struct vmb_err *err)
{
	if (n == &v->root)
		return 0;
	return check_at(v, NULL, NULL, n, ctx, what, err);
}

/* ---- lock calls ------------------------------------------------------------------ */

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
	ls = n->locks;
	if (!ls) {
		ls = malloc(sizeof(*ls));
		if (ls) {
			vmb_lockset_init(ls, (uint64_t)n->ino, v->store.metafd, &v->waits);
			ls->env = &v->lockenv;
			ls->cookie = n;
			ls->budget = &v->lock_budget;
			/* published whole: vmb_node_locks reads it without ilock */
			__atomic_store_n(&n->locks, ls, __ATOMIC_RELEASE);
		}
	}
	pthread_mutex_unlock(&n->ilock);
	return ls;
}

/* Does a lock by uid through f make its bundle in use? Only when the caller could
 * also have written the file (f open for writing, the file's owner, or root) and,
 * under the aux-storage rule, the file is aux storage. */
static int strong_lock(struct vmb_vfs *v, struct vmb_file *f, uid_t uid)
{
	struct stat st;
	int aux = 1;

	if (v->aux_only) {
		pthread_mutex_lock(&v->tlock);
		aux = f->node->name &&
		      vmb_aux_match(f->node->name, (const char *const *)v->aux_patterns);
		pthread_mutex_unlock(&v->tlock);
	}
	if (!aux)
		return 0;
	if ((f->flags & O_ACCMODE) != O_RDONLY || uid == 0)
		return 1;
	return fstatat(f->node->fd, "", &st, AT_EMPTY_PATH) == 0 && st.st_uid == uid;
}

int vmb_vfs_getlk(struct vmb_vfs *v, struct vmb_file *f, uint64_t owner, struct flock *fl,
		  struct vmb_err *err)
{
	struct vmb_lockset *ls;
	char proc[64];
	int r;

	if (f->sv) {   /* a snapshot's file: its locks are the mount's alone */
		vmb_snapview_locks(v, f->sv, 0, &ls, proc, err);
		if (!ls) {   /* nobody has locked it yet */
			fl->l_type = F_UNLCK;
			return 0;
		}
		return vmb_lock_get(ls, proc, f, owner, fl, err);
	}
	ls = node_locks(v, f->node);

	if (!ls)
		return vmb_err_set(err, ENOMEM, "out of memory");
	r = vmb_node_ref(v, f->node);   /* its O_PATH descriptor may be parked */
	if (r < 0)
		return r;
	vmb_node_procpath(f->node, proc);
	r = vmb_lock_get(ls, proc, f, owner, fl, err);
	vmb_node_put(v, f->node);
	return r;
}

int vmb_vfs_setlk(struct vmb_vfs *v, struct vmb_file *f, uint64_t owner, pid_t pid,
		  uid_t uid, const struct flock *fl, struct vmb_lock_wait *wait,
		  struct vmb_err *err)
{
	struct vmb_lockset *ls;
	char proc[64];
	int r;

	if (f->sv) {   /* read locks only: the file is open read-only */
		if (fl->l_type == F_WRLCK)
			return vmb_err_set(err, EBADF, "a snapshot's file takes no write lock");
		r = vmb_snapview_locks(v, f->sv, fl->l_type != F_UNLCK, &ls, proc, err);
		if (!ls)   /* an unlock of a file nobody locked: nothing to do */
			return r;
		return vmb_lock_set(ls, proc, f, owner, pid, 0, fl, wait, err);
	}
	ls = node_locks(v, f->node);
	if (!ls)
		return vmb_err_set(err, ENOMEM, "out of memory");
	r = vmb_node_ref(v, f->node);   /* its O_PATH descriptor may be parked */
	if (r < 0)
		return r;
	vmb_node_procpath(f->node, proc);
	r = vmb_lock_set(ls, proc, f, owner, pid,
			 fl->l_type != F_UNLCK && strong_lock(v, f, uid), fl, wait, err);
	vmb_node_put(v, f->node);
	return r;
}

int vmb_vfs_flock(struct vmb_vfs *v, struct vmb_file *f, uint64_t owner, pid_t pid,
		  uid_t uid, int op, struct vmb_lock_wait *wait, struct vmb_err *err)
{
	struct vmb_lockset *ls;
	char proc[64];
	int r;

	if (f->sv) {
		r = vmb_snapview_locks(v, f->sv, (op & ~LOCK_NB) != LOCK_UN, &ls, proc, err);
		if (!ls)
			return r;
		return vmb_lock_flock(ls, proc, f, owner, pid, 0, op, wait, err);
	}
	ls = node_locks(v, f->node);

	if (!ls)
		return vmb_err_set(err, ENOMEM, "out of memory");
	r = vmb_node_ref(v, f->node);   /* its O_PATH descriptor may be parked */
	if (r < 0)
		return r;
	vmb_node_procpath(f->node, proc);
	r = vmb_lock_flock(ls, proc, f, owner, pid,
			   (op & ~LOCK_NB) != LOCK_UN && strong_lock(v, f, uid), op, wait, err);
	vmb_node_put(v, f->node);
	return r;
}

void vmb_vfs_flush(struct vmb_vfs *v, struct vmb_file *f, uint64_t owner)
{
	struct vmb_lockset *ls;

	if (f->sv) {
		char proc[64];
		vmb_snapview_locks(v, f->sv, 0, &ls, proc, NULL);
		if (ls)
			vmb_lock_flush(ls, f, owner);
		return;
	}
	/* before the locks go: the next holder (QEMU's image lock, through another
	 * mount) finds the map committed */
	vmb_vfs_commit(f);
	ls = vmb_node_locks(f->node);
	if (ls)
		vmb_lock_flush(ls, f, owner);
}

ssize_t vmb_lock_xattr(struct vmb_vfs *v, struct vmb_node *n, void *buf, size_t size)
{
	struct vmb_lockset *ls;
	struct vmb_holder h;
	char text[256], proc[64];
	int found = 0, len;

	if (!S_ISREG(n->type))
		return -ENODATA;
	ls = vmb_node_locks(n);
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
