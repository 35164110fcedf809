/* vfs_snapview.c - the read-only view of snapshots: MNT/.snapshots/BUNDLE@NAME/...
 *
 * .snapshots is a directory at the mount's root (listed there when the store has
 * a snapshot; looked up always); its entries are the manifests of
 * STORE/.vmbundlefs/snapshots (store/manifest.h), each a directory holding the
 * bundle as it was: directories, symlinks and regular files with the modes, owners,
 * times and user.* xattrs recorded, every file served from its frozen layer
 * (vmb_image_open_frozen). Lookup, getattr, readdir, open for reading, read, seek,
 * copy_file_range out of it, readlink, getxattr and listxattr work; every change
 * fails with EROFS (vmb_node_get refuses the view's ids).
 *
 * Locks (outside report X-snaplock: QEMU takes OFD read locks on the bytes it uses
 * as lock markers, even to read an image): a snapshot's file takes read locks
 * (POSIX and OFD), F_GETLK / F_OFD_GETLK and flock(2) like any file, through a
 * lockset (lock.h) mirrored onto a memfd of its own, made at the first lock and
 * dropped when its last handle is released: conflicts are between the holders of
 * that file through this mount only (nothing can write it, so only a read lock
 * against a write test, or flock, can conflict); no holder registry. Write locks
 * fail with EBADF: a snapshot's file is only opened read-only, and the kernel
 * refuses them before they reach the daemon.
 *
 * Node ids of the view are the addresses of struct sv_node with the low bit set
 * (real nodes are malloc'ed, so theirs is clear). A snapshot's manifest is read at
 * its first lookup and kept while a node of it lives. st_ino: a hash of the
 * snapshot and the path, with the top bit set.
 *
 * Locking: sv->mu guards everything here (nodes, snapshots, counts); an open file's
 * frozen image is used without it (images are thread-safe), kept by the handle's
 * reference. sv->mu is taken alone (nothing else is held with it but a layer
 * lookup, which takes the layers' own lock).
 */
#include "config.h"
#include "vfs/vfs_int.h"
#include "store/manifest.h"
#include "layer/layer.h"
#include "lock/lock.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define SV_HASH 256

struct sv_snap {
	struct sv_snap *next;
	char *spec;                /* BUNDLE@NAME */
	struct vmb_manifest m;
	size_t *order;             /* indices of m.ents by path, for lookups */
	unsigned refs;             /* nodes on it */
	ino_t mino;                /* its manifest's inode, change time and size (one
				    * deleted and made again under the same name is
				    * another snapshot, even when the file system gives
				    * it the freed inode number again) */
	struct timespec mctime;
	off_t msize;
};

struct sv_node {
	struct sv_node *hnext;
	struct sv_snap *snap;      /* NULL: .snapshots itself */
	size_t ent;
	uint64_t nlookup, refs;    /* kernel references; handles and open dirs */
	struct vmb_image *img;     /* an open file's frozen image, shared by handles */
	unsigned opens;
	struct vmb_lockset *locks; /* made at the first lock, gone with the last open */
	int lockfd;                /* the memfd its locks are mirrored onto */
};

struct vmb_snapview {
	pthread_mutex_t mu;
	struct sv_node top;
	struct sv_node *hash[SV_HASH];
	struct sv_snap *snaps;
};

struct vmb_svdir {
	struct sv_node *node;
	char **names;              /* .snapshots: the specs; a directory: NULL */
	size_t *kids;              /* a directory: its entries' indices */
	size_t n;
};

static uint64_t id_of(struct sv_node *n)
{
	return (uint64_t)(uintptr_t)n | 1;
}

static struct sv_node *node_of(uint64_t id)
{
	return (struct sv_node *)(uintptr_t)(id & ~(uint64_t)1);
}

int vmb_snapview_init(struct vmb_vfs *v)
{
	v->snapview = calloc(1, sizeof(*v->snapview));
	if (!v->snapview)
		return -ENOMEM;
	pthread_mutex_init(&v->snapview->mu, NULL);
	v->snapview->top.nlookup = 1;   /* never freed */
	return 0;
}

static void locks_free(struct sv_node *n)
{
	if (!n->locks)
		return;
	vmb_lockset_destroy(n->locks);
	free(n->locks);
	close(n->lockfd);
	n->locks = NULL;
}

static void snap_free(struct sv_snap *s)
{
	vmb_manifest_free(&s->m);
	free(s->order);
	free(s->spec);
	free(s);
}

void vmb_snapview_destroy(struct vmb_vfs *v)
{
	struct vmb_snapview *sv = v->snapview;
	size_t i;

	if (!sv)
		return;
	for (i = 0; i < SV_HASH; i++)
		while (sv->hash[i]) {
			struct sv_node *n = sv->hash[i];
			sv->hash[i] = n->hnext;
			vmb_image_close(n->img);
			locks_free(n);
			free(n);
		}
	while (sv->snaps) {
		struct sv_snap *s = sv->snaps;
		sv->snaps = s->next;
		snap_free(s);
	}
	pthread_mutex_destroy(&sv->mu);
	free(sv);
	v->snapview = NULL;
}

int vmb_snapview_is(uint64_t ino)
{
	return ino != VMB_ROOT_INO && (ino & 1);
}

int vmb_snapview_name(const char *name)
{
	return !strcmp(name, VMB_SNAPVIEW_DIR);
}

static const struct vmb_mf_ent *ent_of(struct sv_node *n)
{
	return n->snap ? &n->snap->m.ents[n->ent] : NULL;
}

/* ---- snapshots and their manifests ---------------------------------------------- */

static int by_path(const void *a, const void *b, void *arg)
{
	const struct vmb_manifest *m = arg;

	return strcmp(m->ents[*(const size_t *)a].path, m->ents[*(const size_t *)b].path);
}

static int snapdir_open(struct vmb_vfs *v)
{
	return openat(v->store.metafd, VMB_SNAPSHOTS_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

/* The snapshot spec, its manifest read now if not cached (caller holds mu). */
static int snap_get(struct vmb_vfs *v, const char *spec, struct sv_snap **out,
		    struct vmb_err *err)
{
	struct vmb_snapview *sv = v->snapview;
	struct sv_snap *s;
	struct stat mst;
	size_t i;
	int fd, r;

	if (spec[0] == '.' || !strchr(spec, '@'))
		return -ENOENT;
	fd = snapdir_open(v);
	if (fd < 0)
		return -ENOENT;
	if (fstatat(fd, spec, &mst, AT_SYMLINK_NOFOLLOW) < 0) {
		close(fd);
		return -ENOENT;
	}
	for (s = sv->snaps; s; s = s->next)
		if (!strcmp(s->spec, spec) && s->mino == mst.st_ino &&
		    s->msize == mst.st_size && s->mctime.tv_sec == mst.st_ctim.tv_sec &&
		    s->mctime.tv_nsec == mst.st_ctim.tv_nsec) {
			close(fd);   /* cached while its nodes live */
			*out = s;
			return 0;
		}
	s = calloc(1, sizeof(*s));
	if (!s || !(s->spec = strdup(spec))) {
		free(s);
		close(fd);
		return vmb_err_set(err, ENOMEM, "out of memory");
	}
	s->mino = mst.st_ino;
	s->mctime = mst.st_ctim;
	s->msize = mst.st_size;
	r = vmb_manifest_read(fd, spec, &s->m, err);
	close(fd);
	if (r == 0 && (s->m.n == 0 || strcmp(s->m.ents[0].path, ".") ||
		       s->m.ents[0].kind != 'd'))
		r = vmb_err_set(err, EIO, "snapshot '%s': its manifest has no root directory",
				spec);
	if (r == 0 && !(s->order = malloc(s->m.n * sizeof(*s->order))))
		r = vmb_err_set(err, ENOMEM, "out of memory");
	if (r < 0) {
		snap_free(s);
		return r == -ENOENT ? -ENOENT : r;
	}
	for (i = 0; i < s->m.n; i++)
		s->order[i] = i;
	qsort_r(s->order, s->m.n, sizeof(*s->order), by_path, &s->m);
	s->next = sv->snaps;
	sv->snaps = s;
	*out = s;
	return 0;
}

static void snap_put_locked(struct vmb_snapview *sv, struct sv_snap *s)
{
	struct sv_snap **pp;

	if (--s->refs)
		return;
	for (pp = &sv->snaps; *pp; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			snap_free(s);
			return;
		}
}

/* The entry at path in s, or (size_t)-1. */
static size_t find_path(struct sv_snap *s, const char *path)
{
	size_t lo = 0, hi = s->m.n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(s->m.ents[s->order[mid]].path, path);
		if (c == 0)
			return s->order[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return (size_t)-1;
}

/* ---- nodes ------------------------------------------------------------------- */

static size_t hash_of(struct sv_snap *s, size_t ent)
{
	return ((uintptr_t)s / 16 * 31 + ent) % SV_HASH;
}

/* Find or make the node of (s, ent), counting a lookup. Caller holds mu. */
static struct sv_node *node_get(struct vmb_snapview *sv, struct sv_snap *s, size_t ent)
{
	size_t h = hash_of(s, ent);
	struct sv_node *n;

	for (n = sv->hash[h]; n; n = n->hnext)
		if (n->snap == s && n->ent == ent)
			break;
	if (!n) {
		n = calloc(1, sizeof(*n));
		if (!n)
			return NULL;
		n->snap = s;
		n->ent = ent;
		s->refs++;
		n->hnext = sv->hash[h];
		sv->hash[h] = n;
	}
	n->nlookup++;
	return n;
}

static void node_drop_locked(struct vmb_snapview *sv, struct sv_node *n)
{
	struct sv_node **pp;

	if (n == &sv->top || n->nlookup || n->refs)
		return;
	for (pp = &sv->hash[hash_of(n->snap, n->ent)]; *pp; pp = &(*pp)->hnext)
		if (*pp == n) {
			*pp = n->hnext;
			break;
		}
	snap_put_locked(sv, n->snap);
	locks_free(n);
	free(n);
}

/* st_ino of path in snapshot spec (NULL: .snapshots itself); never 0 (readdir
 * skips entries with inode 0). */
static uint64_t fake_ino_of(const char *spec, const char *path)
{
	uint64_t h = UINT64_C(14695981039346656037);
	const char *p;

	if (!spec)
		return UINT64_C(1) << 63;
	for (p = spec; *p; p++)
		h = (h ^ (unsigned char)*p) * UINT64_C(1099511628211);
	h = (h ^ '/') * UINT64_C(1099511628211);
	for (p = path; *p; p++)
		h = (h ^ (unsigned char)*p) * UINT64_C(1099511628211);
	return h | (UINT64_C(1) << 63);
}

static uint64_t fake_ino(struct sv_node *n)
{
	return n->snap ? fake_ino_of(n->snap->spec, ent_of(n)->path) : fake_ino_of(NULL, NULL);
}

uint64_t vmb_snapview_dir_id(struct vmb_vfs *v)
{
	return id_of(&v->snapview->top);
}

uint64_t vmb_snapview_ino(void)
{
	return fake_ino_of(NULL, NULL);
}

/* Attributes of n (caller holds mu). */
static int stat_locked(struct vmb_vfs *v, struct sv_node *n, struct stat *st,
		       struct vmb_err *err)
{
	const struct vmb_mf_ent *e = ent_of(n);

	memset(st, 0, sizeof(*st));
	st->st_ino = (ino_t)fake_ino(n);
	st->st_blksize = 1 << 20;
	if (!e) {
		struct stat meta;
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 2;
		if (fstat(v->root.fd, &meta) == 0) {
			st->st_dev = meta.st_dev;
			st->st_mtim = st->st_ctim = st->st_atim = meta.st_mtim;
		}
		return 0;
	}
	st->st_uid = e->uid;
	st->st_gid = e->gid;
	st->st_mtim.tv_sec = (time_t)e->mtime_sec;
	st->st_mtim.tv_nsec = (long)e->mtime_nsec;
	st->st_atim = st->st_ctim = st->st_mtim;
	st->st_nlink = 1;
	switch (e->kind) {
	case 'd':
		st->st_mode = S_IFDIR | (e->mode & 07777);
		st->st_nlink = 2;
		st->st_size = 4096;
		break;
	case 'l':
		st->st_mode = S_IFLNK | 0777;
		st->st_size = (off_t)strlen(e->target);
		break;
	default: {
		struct vmb_base *b;
		int r;
		st->st_mode = S_IFREG | (e->mode & 07777);
		st->st_size = (off_t)e->size;
		r = vmb_layers_get(v->layers, e->id, &b, err);
		if (r < 0)
			return r;
		st->st_blocks = (blkcnt_t)(b->data_blocks * (VMB_BLOCK_SIZE / 512));
		vmb_base_put(b);
		break;
	}
	}
	return 0;
}

/* ---- the operations ---------------------------------------------------------- */

int vmb_snapview_lookup(struct vmb_vfs *v, uint64_t parent, const char *name,
			struct vmb_entry *e, struct vmb_err *err)
{
	struct vmb_snapview *sv = v->snapview;
	struct sv_node *p, *n = NULL;
	int r = 0;

	memset(e, 0, sizeof(*e));
	pthread_mutex_lock(&sv->mu);
	if (parent == VMB_ROOT_INO) {
		n = &sv->top;
		n->nlookup++;
	} else {
		p = node_of(parent);
		if (!p->snap) {   /* in .snapshots: a snapshot */
			struct sv_snap *s = NULL;
			r = snap_get(v, name, &s, err);
			if (r == 0 && !(n = node_get(sv, s, 0)))
				r = vmb_err_set(err, ENOMEM, "out of memory");
		} else {
			const struct vmb_mf_ent *pe = ent_of(p);
			char *path;
			size_t i;
			if (pe->kind != 'd') {
				r = -ENOTDIR;
			} else if (!strcmp(name, ".") || !strcmp(name, "..") || strchr(name, '/')) {
				r = -ENOENT;
			} else if ((!strcmp(pe->path, ".") ? asprintf(&path, "%s", name) :
				    asprintf(&path, "%s/%s", pe->path, name)) < 0) {
				r = vmb_err_set(err, ENOMEM, "out of memory");
			} else {
				i = find_path(p->snap, path);
				free(path);
				if (i == (size_t)-1)
					r = -ENOENT;
				else if (!(n = node_get(sv, p->snap, i)))
					r = vmb_err_set(err, ENOMEM, "out of memory");
			}
		}
	}
	if (n) {
		r = stat_locked(v, n, &e->attr, err);
		if (r < 0) {
			n->nlookup--;
			node_drop_locked(sv, n);
		} else {
			e->ino = id_of(n);
			e->generation = 1;
		}
	}
	pthread_mutex_unlock(&sv->mu);
	return r;
}

void vmb_snapview_forget(struct vmb_vfs *v, uint64_t ino, uint64_t nlookup)
{
	struct vmb_snapview *sv = v->snapview;
	struct sv_node *n = node_of(ino);

	pthread_mutex_lock(&sv->mu);
	n->nlookup = nlookup > n->nlookup ? 0 : n->nlookup - nlookup;
	node_drop_locked(sv, n);
	pthread_mutex_unlock(&sv->mu);
}

int vmb_snapview_getattr(struct vmb_vfs *v, uint64_t ino, struct stat *st, struct vmb_err *err)
{
	int r;

	pthread_mutex_lock(&v->snapview->mu);
	r = stat_locked(v, node_of(ino), st, err);
	pthread_mutex_unlock(&v->snapview->mu);
	return r;
}

int vmb_snapview_readlink(struct vmb_vfs *v, uint64_t ino, char *buf, size_t size,
			  struct vmb_err *err)
{
	const struct vmb_mf_ent *e;
	int r;

	(void)err;
	pthread_mutex_lock(&v->snapview->mu);
	e = ent_of(node_of(ino));
	if (!e || e->kind != 'l') {
		r = -EINVAL;
	} else {
		r = (int)strlen(e->target);
		snprintf(buf, size, "%s", e->target);
	}
	pthread_mutex_unlock(&v->snapview->mu);
	return r;
}

int vmb_snapview_open(struct vmb_vfs *v, uint64_t ino, int flags, struct vmb_image **img,
		      struct vmb_err *err)
{
	struct vmb_snapview *sv = v->snapview;
	struct sv_node *n = node_of(ino);
	const struct vmb_mf_ent *e;
	int r = 0;

	if ((flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC))
		return vmb_err_set(err, EROFS, "snapshots are read-only");
	pthread_mutex_lock(&sv->mu);
	e = ent_of(n);
	if (!e || e->kind == 'd') {
		r = -EISDIR;
	} else if (e->kind != 'f') {
		r = -EINVAL;
	} else if (!n->img) {
		struct vmb_base *b;
		char name[PATH_MAX];
		r = vmb_layers_get(v->layers, e->id, &b, err);
		if (r == 0) {
			snprintf(name, sizeof(name), ".snapshots/%s/%s", n->snap->spec, e->path);
			r = vmb_image_open_frozen(&n->img, b, e->size, name, v->log, err);
			vmb_base_put(b);   /* the image keeps its own reference */
		}
	}
	if (r == 0) {
		n->opens++;
		n->refs++;
		*img = n->img;
	}
	pthread_mutex_unlock(&sv->mu);
	return r;
}

int vmb_snapview_locks(struct vmb_vfs *v, uint64_t ino, int create, struct vmb_lockset **out,
		       char proc[64], struct vmb_err *err)
{
	struct vmb_snapview *sv = v->snapview;
	struct sv_node *n = node_of(ino);
	struct vmb_lockset *ls;
	int fd, r = 0;

	pthread_mutex_lock(&sv->mu);
	if (!n->locks && create) {
		fd = memfd_create("vmbundlefs-snapshot-locks", MFD_CLOEXEC);
		ls = fd >= 0 ? malloc(sizeof(*ls)) : NULL;
		if (!ls) {
			r = vmb_err_sys(err, fd < 0 ? errno : ENOMEM,
					"cannot make the lock file of '%s' in snapshot '%s'",
					ent_of(n)->path, n->snap->spec);
			if (fd >= 0)
				close(fd);
		} else {
			vmb_lockset_init(ls, (uint64_t)fake_ino(n), -1, &v->waits);
			ls->env = &v->lockenv;
			ls->budget = &v->lock_budget;
			n->locks = ls;
			n->lockfd = fd;
		}
	}
	*out = n->locks;
	if (n->locks)
		snprintf(proc, 64, "/proc/self/fd/%d", n->lockfd);
	pthread_mutex_unlock(&sv->mu);
	return r;
}

void vmb_snapview_release(struct vmb_vfs *v, uint64_t ino)
{
	struct vmb_snapview *sv = v->snapview;
	struct sv_node *n = node_of(ino);
	struct vmb_image *img = NULL;

	pthread_mutex_lock(&sv->mu);
	if (--n->opens == 0) {
		img = n->img;
		n->img = NULL;
		locks_free(n);   /* no handle left to hold or test a lock */
	}
	n->refs--;
	node_drop_locked(sv, n);
	pthread_mutex_unlock(&sv->mu);
	vmb_image_close(img);
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int vmb_snapview_opendir(struct vmb_vfs *v, uint64_t ino, struct vmb_svdir **out,
			 struct vmb_err *err)
{
	struct vmb_snapview *sv = v->snapview;
	struct sv_node *n = node_of(ino);
	struct vmb_svdir *d;
	const struct vmb_mf_ent *e;
	int r = 0;

	*out = NULL;
	d = calloc(1, sizeof(*d));
	if (!d)
		return vmb_err_set(err, ENOMEM, "out of memory");
	d->node = n;
	pthread_mutex_lock(&sv->mu);
	e = ent_of(n);
	if (!e) {   /* .snapshots: the manifests there now */
		int fd = snapdir_open(v);
		DIR *dp = fd >= 0 ? fdopendir(fd) : NULL;
		struct dirent *de;
		if (fd >= 0 && !dp)
			close(fd);
		while (dp && (de = readdir(dp))) {
			char **grown;
			if (de->d_name[0] == '.' || !strchr(de->d_name, '@'))
				continue;
			grown = realloc(d->names, (d->n + 1) * sizeof(*grown));
			if (!grown || !(grown[d->n] = strdup(de->d_name))) {
				if (grown)
					d->names = grown;
				r = vmb_err_set(err, ENOMEM, "out of memory");
				break;
			}
			d->names = grown;
			d->n++;
		}
		if (dp)
			closedir(dp);
		if (d->n)
			qsort(d->names, d->n, sizeof(*d->names), by_name);
	} else if (e->kind != 'd') {
		r = -ENOTDIR;
	} else {   /* the entries whose parent is this directory */
		size_t i, plen = strlen(e->path);
		int top = !strcmp(e->path, ".");
		for (i = 1; i < n->snap->m.n; i++) {
			const char *p = n->snap->m.ents[i].path;
			const char *rest = top ? p : (!strncmp(p, e->path, plen) && p[plen] == '/' ?
						      p + plen + 1 : NULL);
			size_t *grown;
			if (!rest || strchr(rest, '/'))
				continue;
			grown = realloc(d->kids, (d->n + 1) * sizeof(*grown));
			if (!grown) {
				r = vmb_err_set(err, ENOMEM, "out of memory");
				break;
			}
			d->kids = grown;
			d->kids[d->n++] = i;
		}
	}
	if (r == 0)
		n->refs++;
	pthread_mutex_unlock(&sv->mu);
	if (r < 0) {
		vmb_snapview_releasedir(v, d, 0);
		return r;
	}
	*out = d;
	return 0;
}

int vmb_snapview_readdir(struct vmb_vfs *v, struct vmb_svdir *d, uint64_t off,
			 vmb_fill_fn fill, void *arg, struct vmb_err *err)
{
	struct vmb_snapview *sv = v->snapview;
	int r = 0;

	(void)err;
	pthread_mutex_lock(&sv->mu);
	for (; off < d->n + 2; off++) {
		struct stat st;
		const char *name;
		memset(&st, 0, sizeof(st));
		st.st_mode = S_IFDIR;
		st.st_ino = (ino_t)fake_ino(d->node);
		if (off < 2) {
			name = off ? ".." : ".";
		} else if (d->names) {
			name = d->names[off - 2];
			st.st_ino = (ino_t)fake_ino_of(name, ".");
		} else {
			const struct vmb_mf_ent *e = &d->node->snap->m.ents[d->kids[off - 2]];
			name = strrchr(e->path, '/') ? strrchr(e->path, '/') + 1 : e->path;
			st.st_mode = e->kind == 'd' ? S_IFDIR : e->kind == 'l' ? S_IFLNK : S_IFREG;
			st.st_ino = (ino_t)fake_ino_of(d->node->snap->spec, e->path);
		}
		if (fill(arg, name, &st, off + 1))
			break;
	}
	pthread_mutex_unlock(&sv->mu);
	return r;
}

void vmb_snapview_releasedir(struct vmb_vfs *v, struct vmb_svdir *d, int counted)
{
	size_t i;

	if (!d)
		return;
	if (counted) {
		pthread_mutex_lock(&v->snapview->mu);
		d->node->refs--;
		node_drop_locked(v->snapview, d->node);
		pthread_mutex_unlock(&v->snapview->mu);
	}
	for (i = 0; d->names && i < d->n; i++)
		free(d->names[i]);
	free(d->names);
	free(d->kids);
	free(d);
}

ssize_t vmb_snapview_getxattr(struct vmb_vfs *v, uint64_t ino, const char *name, void *buf,
			      size_t size)
{
	const struct vmb_mf_ent *e;
	ssize_t r = -ENODATA;
	size_t i;

	pthread_mutex_lock(&v->snapview->mu);
	e = ent_of(node_of(ino));
	for (i = 0; e && i < e->nxattrs; i++)
		if (!strcmp(e->xattrs[i].name, name)) {
			r = vmb_xattr_text(e->xattrs[i].value, (int)e->xattrs[i].len, buf, size);
			break;
		}
	pthread_mutex_unlock(&v->snapview->mu);
	return r;
}

ssize_t vmb_snapview_listxattr(struct vmb_vfs *v, uint64_t ino, char *buf, size_t size)
{
	const struct vmb_mf_ent *e;
	size_t i, need = 0;

	pthread_mutex_lock(&v->snapview->mu);
	e = ent_of(node_of(ino));
	for (i = 0; e && i < e->nxattrs; i++)
		need += strlen(e->xattrs[i].name) + 1;
	if (size && need > size) {
		pthread_mutex_unlock(&v->snapview->mu);
		return -ERANGE;
	}
	if (size)
		for (i = 0, need = 0; e && i < e->nxattrs; i++) {
			size_t l = strlen(e->xattrs[i].name) + 1;
			memcpy(buf + need, e->xattrs[i].name, l);
			need += l;
		}
	pthread_mutex_unlock(&v->snapview->mu);
	return (ssize_t)need;
}

int vmb_snapview_layer_busy(struct vmb_vfs *v, const char *id)
{
	struct vmb_snapview *sv = v->snapview;
	size_t i;
	int busy = 0;

	if (!sv)
		return 0;
	pthread_mutex_lock(&sv->mu);
	for (i = 0; i < SV_HASH && !busy; i++)
		for (struct sv_node *n = sv->hash[i]; n && !busy; n = n->hnext)
			busy = n->img && !strcmp(ent_of(n)->id, id);
	pthread_mutex_unlock(&sv->mu);
	return busy;
}

int vmb_snapview_listed(struct vmb_vfs *v)
{
	int fd = snapdir_open(v), any = 0;
	struct dirent *de;
	DIR *dp;

	if (fd < 0)
		return 0;
	dp = fdopendir(fd);
	if (!dp) {
		close(fd);
		return 0;
	}
	while (!any && (de = readdir(dp)))
		any = de->d_name[0] != '.' && strchr(de->d_name, '@') != NULL;
	closedir(dp);
	return any;
}
