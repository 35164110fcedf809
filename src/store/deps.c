/* deps.c - who uses which layer (ops_int.h: the scan behind gc, deps and ls), the
 * deps of a bundle or snapshot, and the own and shared bytes of bundles (ops.h).
 *
 * A layer is used by a bundle when one of its files' base xattr names it, by a
 * snapshot when its manifest does, and by whoever uses a layer whose base it is
 * (the whole chain below). The scan reads every file's xattr (no maps), every
 * manifest and the .map of every layer reached, each layer once.
 */
#include "config.h"
#include "store/ops_int.h"
#include "store/store.h"
#include "image/image.h"
#include "layer/layer.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int add_use(struct vmb_ops_scan *sc, const char *id, const char *user, size_t blen)
{
	if (sc->n == sc->cap) {
		size_t ncap = sc->cap ? sc->cap * 2 : 64;
		struct vmb_ops_use *n = realloc(sc->u, ncap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		sc->u = n;
		sc->cap = ncap;
	}
	memcpy(sc->u[sc->n].id, id, VMB_BASE_ID_LEN + 1);
	sc->u[sc->n].user = strdup(user);
	sc->u[sc->n].blen = blen;
	if (!sc->u[sc->n].user)
		return -ENOMEM;
	sc->n++;
	return 0;
}

void vmb_ops_scan_free(struct vmb_ops_scan *sc)
{
	size_t i;

	for (i = 0; i < sc->n; i++)
		free(sc->u[i].user);
	free(sc->u);
	free(sc->l);
	memset(sc, 0, sizeof(*sc));
}

static int by_layer(const void *a, const void *b)
{
	return strcmp(((const struct vmb_ops_layer *)a)->id,
		      ((const struct vmb_ops_layer *)b)->id);
}

const struct vmb_ops_layer *vmb_ops_layer_of(const struct vmb_ops_scan *sc, const char *id)
{
	struct vmb_ops_layer key;

	if (!sc->nl)
		return NULL;
	memcpy(key.id, id, VMB_BASE_ID_LEN + 1);
	return bsearch(&key, sc->l, sc->nl, sizeof(key), by_layer);
}

/* The layer's facts, read once (kept sorted by id). */
static int layer_info(struct vmb_opctx *c, struct vmb_ops_scan *sc, const char *id,
		      const struct vmb_ops_layer **out, struct vmb_err *err)
{
	struct vmb_layer_info li;
	struct vmb_ops_layer *l;
	size_t lo = 0, hi = sc->nl;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int k = strcmp(sc->l[mid].id, id);
		if (k == 0) {
			*out = &sc->l[mid];
			return 0;
		}
		if (k < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (sc->nl == sc->lcap) {
		size_t ncap = sc->lcap ? sc->lcap * 2 : 32;
		l = realloc(sc->l, ncap * sizeof(*l));
		if (!l)
			return vmb_err_set(err, ENOMEM, "out of memory");
		sc->l = l;
		sc->lcap = ncap;
	}
	memmove(sc->l + lo + 1, sc->l + lo, (sc->nl - lo) * sizeof(*l));
	l = &sc->l[lo];
	sc->nl++;
	memset(l, 0, sizeof(*l));
	memcpy(l->id, id, VMB_BASE_ID_LEN + 1);
	if (vmb_layers_stat(c->layers, id, &li, err) < 0) {
		l->bad = 1;
	} else {
		memcpy(l->base, li.base, sizeof(l->base));
		l->alloc_bytes = li.alloc_bytes;
	}
	*out = l;
	return 0;
}

/* user uses id and the chain below it. */
static int use_chain(struct vmb_opctx *c, struct vmb_ops_scan *sc, int strict,
		     const char *id, const char *user, size_t blen, struct vmb_err *err)
{
	char cur[VMB_BASE_ID_LEN + 1];
	unsigned depth;

	memcpy(cur, id, sizeof(cur));
	for (depth = 0; cur[0] && depth <= VMB_LAYER_DEPTH_MAX; depth++) {
		const struct vmb_ops_layer *l = NULL;
		struct vmb_err e;
		int r;

		if (add_use(sc, cur, user, blen) < 0)
			return vmb_err_set(err, ENOMEM, "out of memory");
		r = layer_info(c, sc, cur, &l, &e);
		if (r < 0)
			return vmb_err_set(err, -r, "%s", e.msg);
		if (l->bad) {
			vmb_layers_stat(c->layers, cur, &(struct vmb_layer_info){ 0 }, &e);
			if (strict)
				return vmb_err_set(err, EIO, "%s (used by '%s')", e.msg, user);
			vmb_log_msg(c->log, "%s (used by '%s')", e.msg, user);
			return 0;
		}
		memcpy(cur, l->base, sizeof(cur));
	}
	return 0;
}

struct scan_walk {
	struct vmb_opctx *c;
	struct vmb_ops_scan *sc;
	const char *bundle;
	int strict;
};

static int scan_ent(void *arg, enum vmb_tree_event ev, const struct vmb_tree_ent *e,
		    struct vmb_err *err)
{
	struct scan_walk *w = arg;
	char id[VMB_BASE_ID_LEN + 1];
	int fd, r;

	if (ev != VMB_TREE_FILE || !S_ISREG(e->st->st_mode))
		return 0;
	fd = openat(e->dfd, e->name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		r = vmb_err_sys(err, errno, "cannot open '%s'", e->msgpath);
	} else {
		r = vmb_ops_base_of(fd, e->msgpath, id, err);
		close(fd);
	}
	if (r > 0)
		return use_chain(w->c, w->sc, w->strict, id, w->bundle, strlen(w->bundle), err);
	if (r < 0 && !w->strict) {
		vmb_log_msg(w->c->log, "%s", err->msg);
		return 0;
	}
	return r;
}

static int by_use(const void *a, const void *b)
{
	const struct vmb_ops_use *x = a, *y = b;
	int k = strcmp(x->id, y->id);

	return k ? k : strcmp(x->user, y->user);
}

int vmb_ops_scan(struct vmb_opctx *c, int strict, struct vmb_ops_scan *sc,
		 struct vmb_err *err)
{
	struct dirent *de;
	DIR *d;
	int fd, r = 0;
	size_t i, w;

	memset(sc, 0, sizeof(*sc));
	/* Bundles. */
	fd = openat(c->store->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || !(d = fdopendir(fd))) {
		r = vmb_err_sys(err, errno, "cannot read store '%s'", c->store->path);
		if (fd >= 0)
			close(fd);
		return r;
	}
	while (r == 0 && (de = readdir(d))) {
		struct scan_walk sw = { c, sc, de->d_name, strict };
		struct stat st;
		int bfd;

		if (de->d_name[0] == '.' && (!de->d_name[1] || !strcmp(de->d_name, "..")))
			continue;
		if (vmb_store_reserved(de->d_name) ||
		    fstatat(c->store->dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISDIR(st.st_mode))
			continue;
		bfd = openat(c->store->dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
			     O_CLOEXEC);
		if (bfd < 0) {
			r = vmb_err_sys(err, errno, "cannot open bundle '%s'", de->d_name);
		} else {
			r = vmb_tree_walk(bfd, de->d_name, scan_ent, &sw, err);
			close(bfd);
		}
		if (r < 0 && !strict) {
			vmb_log_msg(c->log, "%s", err->msg);
			r = 0;
		}
	}
	closedir(d);
	if (r < 0)
		goto fail;
	/* Snapshots. */
	fd = vmb_ops_snapdir(c->store, 0, err);
	if (fd == -ENOENT)
		goto sort;
	if (fd < 0) {
		r = fd;
		goto fail;
	}
	d = fdopendir(fd);
	if (!d) {
		r = vmb_err_sys(err, errno, "cannot read the snapshots of store '%s'",
				c->store->path);
		close(fd);
		goto fail;
	}
	while (r == 0 && (de = readdir(d))) {
		struct vmb_manifest m;
		const char *at = strrchr(de->d_name, '@');

		if (de->d_name[0] == '.' || !at)
			continue;
		r = vmb_manifest_read(dirfd(d), de->d_name, &m, err);
		if (r < 0) {
			if (!strict) {
				vmb_log_msg(c->log, "%s", err->msg);
				r = 0;
			}
			continue;
		}
		for (i = 0; r == 0 && i < m.n; i++)
			if (m.ents[i].kind == 'f')
				r = use_chain(c, sc, strict, m.ents[i].id, de->d_name,
					      (size_t)(at - de->d_name), err);
		vmb_manifest_free(&m);
	}
	closedir(d);
	if (r < 0)
		goto fail;
sort:
	if (sc->n)
		qsort(sc->u, sc->n, sizeof(*sc->u), by_use);
	for (i = w = 0; i < sc->n; i++) {
		if (w && !by_use(&sc->u[w - 1], &sc->u[i])) {
			free(sc->u[i].user);
			continue;
		}
		sc->u[w++] = sc->u[i];
	}
	sc->n = w;
	return 0;
fail:
	vmb_ops_scan_free(sc);
	return r;
}

int vmb_ops_used(const struct vmb_ops_scan *sc, const char *id, const char *except)
{
	size_t lo = 0, hi = sc->n, i;

	while (lo < hi) {   /* first entry of id */
		size_t mid = (lo + hi) / 2;
		if (strcmp(sc->u[mid].id, id) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (i = lo; i < sc->n && !strcmp(sc->u[i].id, id); i++) {
		if (!except)
			return 1;
		if (strlen(except) != sc->u[i].blen ||
		    strncmp(sc->u[i].user, except, sc->u[i].blen))
			return 1;
	}
	return 0;
}

size_t vmb_ops_chain(const struct vmb_ops_scan *sc, const char *id,
		     char (*ids)[VMB_BASE_ID_LEN + 1], size_t max)
{
	const struct vmb_ops_layer *l;
	size_t n = 0;

	while (id && id[0] && n < max) {
		memcpy(ids[n++], id, VMB_BASE_ID_LEN + 1);
		l = vmb_ops_layer_of(sc, id);
		id = l && !l->bad ? l->base : NULL;
	}
	return n;
}

/* ---- deps ---- */

void vmb_deps_free(struct vmb_deps *d)
{
	size_t i, j;

	for (i = 0; i < d->nfiles; i++) {
		for (j = 0; j < d->files[i].depth; j++)
			free(d->files[i].chain[j]);
		free(d->files[i].chain);
		free(d->files[i].path);
	}
	for (i = 0; i < d->nlayers; i++) {
		for (j = 0; j < d->layers[i].nusers; j++)
			free(d->layers[i].users[j]);
		free(d->layers[i].users);
	}
	free(d->files);
	free(d->layers);
	memset(d, 0, sizeof(*d));
}

static int dep_file(struct vmb_deps *d, const struct vmb_ops_scan *sc, const char *path,
		    uint64_t size, uint64_t delta, const char *id)
{
	char ids[VMB_LAYER_DEPTH_MAX + 1][VMB_BASE_ID_LEN + 1];
	struct vmb_dep_file *f;
	size_t n, j, k;

	f = realloc(d->files, (d->nfiles + 1) * sizeof(*f));
	if (!f)
		return -ENOMEM;
	d->files = f;
	f = &d->files[d->nfiles];
	memset(f, 0, sizeof(*f));
	f->path = strdup(path);
	f->size = size;
	f->delta_bytes = delta;
	n = vmb_ops_chain(sc, id, ids, VMB_LAYER_DEPTH_MAX + 1);
	f->chain = calloc(n ? n : 1, sizeof(char *));
	d->nfiles++;
	if (!f->path || !f->chain)
		return -ENOMEM;
	for (j = 0; j < n; j++) {
		struct vmb_dep_layer *l;
		f->chain[j] = strdup(ids[j]);
		if (!f->chain[j])
			return -ENOMEM;
		f->depth++;
		for (k = 0; k < d->nlayers; k++)
			if (!strcmp(d->layers[k].id, ids[j]))
				break;
		if (k < d->nlayers)
			continue;
		l = realloc(d->layers, (d->nlayers + 1) * sizeof(*l));
		if (!l)
			return -ENOMEM;
		d->layers = l;
		l = &d->layers[d->nlayers++];
		memset(l, 0, sizeof(*l));
		memcpy(l->id, ids[j], sizeof(l->id));
	}
	return 0;
}

struct deps_walk {
	struct vmb_opctx *c;
	struct vmb_ops_scan *sc;
	struct vmb_deps *d;
	size_t toplen;
};

static int deps_ent(void *arg, enum vmb_tree_event ev, const struct vmb_tree_ent *e,
		    struct vmb_err *err)
{
	struct deps_walk *w = arg;
	struct vmb_image_baseinfo bi;
	struct vmb_blockmap m;
	uint64_t size;
	int fd, r, rebuilt;

	if (ev != VMB_TREE_FILE || !S_ISREG(e->st->st_mode))
		return 0;
	fd = openat(e->dfd, e->name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : vmb_err_sys(err, errno, "cannot open '%s'",
							 e->msgpath);
	vmb_blockmap_init(&m);
	memset(&bi, 0, sizeof(bi));
	r = vmb_image_load_map2(fd, w->c->store->mapfd, e->msgpath, NULL, &m, &size, &rebuilt,
				&bi, err);
	close(fd);
	if (r == 0 && bi.id[0])
		r = dep_file(w->d, w->sc, e->path + w->toplen + 1, (uint64_t)e->st->st_size,
			     m.data_blocks * VMB_BLOCK_SIZE, bi.id) < 0 ?
			vmb_err_set(err, ENOMEM, "out of memory") : 0;
	vmb_blockmap_destroy(&m);
	return r;
}

static int by_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int vmb_op_deps(struct vmb_opctx *c, const char *bundle, struct vmb_deps *out,
		struct vmb_err *err)
{
	struct vmb_ops_scan sc;
	struct deps_walk w = { c, &sc, out, strlen(bundle) };
	char *bname = NULL, *sname = NULL;
	size_t i, j;
	int r, bfd;

	memset(out, 0, sizeof(*out));
	/* a snapshot before a bundle of the same name (vmb_snapshot_exists) */
	r = vmb_snapshot_exists(c->store->metafd, bundle) ? -ENOENT :
		vmb_ops_bundle_check(c, bundle, err);
	if (r == -ENOENT && strchr(bundle, '@')) {
		r = vmb_snapshot_split(bundle, &bname, &sname, err);
		if (r < 0)
			return r;
	} else if (r < 0) {
		return r;
	}
	r = vmb_ops_scan(c, 0, &sc, err);
	if (r < 0)
		goto out;
	if (sname) {
		struct vmb_manifest m;
		int sfd = vmb_ops_snapdir(c->store, 0, err);

		if (sfd == -ENOENT) {
			r = vmb_err_set(err, ENOENT, "no bundle or snapshot '%s' in store '%s'",
					bundle, c->store->path);
			goto out;
		}
		if (sfd < 0) {
			r = sfd;
			goto out;
		}
		r = vmb_manifest_read(sfd, bundle, &m, err);
		close(sfd);
		if (r == -ENOENT)
			r = vmb_err_set(err, ENOENT, "no bundle or snapshot '%s' in store '%s'",
					bundle, c->store->path);
		for (i = 0; r == 0 && i < m.n; i++)
			if (m.ents[i].kind == 'f' &&
			    dep_file(out, &sc, m.ents[i].path, m.ents[i].size, 0, m.ents[i].id) < 0)
				r = vmb_err_set(err, ENOMEM, "out of memory");
		vmb_manifest_free(&m);
	} else {
		bfd = openat(c->store->dirfd, bundle, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
			     O_CLOEXEC);
		if (bfd < 0) {
			r = vmb_err_sys(err, errno, "cannot open bundle '%s'", bundle);
			goto out;
		}
		r = vmb_tree_walk(bfd, bundle, deps_ent, &w, err);
		close(bfd);
	}
	if (r < 0)
		goto out;
	/* Each layer: its bytes, and who else uses it (every user but bundle itself). */
	for (i = 0; i < out->nlayers; i++) {
		struct vmb_dep_layer *l = &out->layers[i];
		const struct vmb_ops_layer *li = vmb_ops_layer_of(&sc, l->id);
		size_t lo = 0, hi = sc.n;

		l->data_bytes = li ? li->alloc_bytes : 0;
		while (lo < hi) {
			size_t mid = (lo + hi) / 2;
			if (strcmp(sc.u[mid].id, l->id) < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		for (j = lo; j < sc.n && !strcmp(sc.u[j].id, l->id); j++) {
			char **nu;
			if (!strcmp(sc.u[j].user, bundle))
				continue;
			nu = realloc(l->users, (l->nusers + 1) * sizeof(*nu));
			if (!nu || !(nu[l->nusers] = strdup(sc.u[j].user))) {
				if (nu)
					l->users = nu;
				r = vmb_err_set(err, ENOMEM, "out of memory");
				goto out;
			}
			l->users = nu;
			l->nusers++;
		}
		if (l->nusers)
			qsort(l->users, l->nusers, sizeof(char *), by_str);
	}
out:
	if (r < 0)
		vmb_deps_free(out);
	vmb_ops_scan_free(&sc);
	free(bname);
	free(sname);
	return r;
}

/* ---- ls: own and shared bytes ---- */

void vmb_space_free(struct vmb_space *s, size_t n)
{
	size_t i;

	for (i = 0; s && i < n; i++)
		free(s[i].name);
	free(s);
}

static struct vmb_space *space_of(struct vmb_space **s, size_t *n, const char *name,
				  size_t len)
{
	struct vmb_space *ns;
	size_t i;

	for (i = 0; i < *n; i++)
		if (strlen((*s)[i].name) == len && !strncmp((*s)[i].name, name, len))
			return &(*s)[i];
	ns = realloc(*s, (*n + 1) * sizeof(*ns));
	if (!ns)
		return NULL;
	*s = ns;
	ns = &ns[*n];
	memset(ns, 0, sizeof(*ns));
	ns->name = strndup(name, len);
	if (!ns->name)
		return NULL;
	(*n)++;
	return ns;
}

int vmb_op_space(struct vmb_opctx *c, struct vmb_space **out, size_t *n,
		 struct vmb_err *err)
{
	struct vmb_ops_scan sc;
	size_t i, j, k;
	int r;

	*out = NULL;
	*n = 0;
	r = vmb_ops_scan(c, 0, &sc, err);
	if (r < 0)
		return r;
	/* Per layer: the bundles using it (a snapshot counts for its bundle). */
	for (i = 0; i < sc.n; i = j) {
		const struct vmb_ops_layer *l = vmb_ops_layer_of(&sc, sc.u[i].id);
		uint64_t bytes = l ? l->alloc_bytes : 0;
		int shared = 0;

		for (j = i + 1; j < sc.n && !strcmp(sc.u[j].id, sc.u[i].id); j++)
			if (sc.u[j].blen != sc.u[i].blen ||
			    strncmp(sc.u[j].user, sc.u[i].user, sc.u[i].blen))
				shared = 1;
		for (k = i; k < j; k++) {
			struct vmb_space *s;
			size_t k2;

			/* A bundle counted once per layer, however many of its snapshots
			 * use it too. */
			for (k2 = i; k2 < k; k2++)
				if (sc.u[k2].blen == sc.u[k].blen &&
				    !strncmp(sc.u[k2].user, sc.u[k].user, sc.u[k].blen))
					break;
			if (k2 < k)
				continue;
			s = space_of(out, n, sc.u[k].user, sc.u[k].blen);
			if (!s) {
				r = vmb_err_set(err, ENOMEM, "out of memory");
				goto out;
			}
			if (shared)
				s->shared += bytes;
			else
				s->own += bytes;
		}
	}
out:
	vmb_ops_scan_free(&sc);
	if (r < 0) {
		vmb_space_free(*out, *n);
		*out = NULL;
		*n = 0;
	}
	return r;
}
