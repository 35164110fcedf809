/* layers.c - a store's layers directory (layer.h): opening it, the cache of open
 * chains, get and the resolver, stat, list, remove, the ids in use.
 *
 * Decisions:
 *  - the directory's path (for messages) is read back from /proc/self/fd of the
 *    metadata directory's descriptor; "<store>/.vmbundlefs" stands in for it when
 *    /proc is not mounted;
 *  - every problem of a layer that get reports is -EIO (ENOMEM, EMFILE and ENFILE
 *    keep their own code: they say nothing about the layer);
 *  - remove holds the cache's lock while it unlinks, so that no get opens the layer
 *    between the check that it is not in use and its removal.
 */
#include "config.h"
#include "layer/layer_int.h"
#include "base/fdio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NAME_LEN (VMB_BASE_ID_LEN + 16)  /* "<id>.data" and a NUL, with room */

/* ---- opening and closing ---- */

static char *dir_path(int metafd)
{
	char proc[64], buf[PATH_MAX];
	ssize_t n;
	char *p;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", metafd);
	n = readlink(proc, buf, sizeof(buf) - 1);
	if (n <= 0 || buf[0] != '/')
		snprintf(buf, sizeof(buf), "<store>/.vmbundlefs");
	else
		buf[n] = '\0';
	if (asprintf(&p, "%s/%s", buf, VMB_LAYERS_DIR) < 0)
		return NULL;
	return p;
}

int vmb_layers_open(struct vmb_layers **out, int metafd, const struct vmb_log *log,
		    struct vmb_err *err)
{
	struct vmb_layers *ls;
	pthread_mutexattr_t ma;
	int rc = 0, rofs = 0;

	*out = NULL;
	ls = calloc(1, sizeof(*ls));
	if (!ls || !(ls->path = dir_path(metafd))) {
		free(ls);
		return vmb_err_set(err, ENOMEM, "out of memory opening the store's layers");
	}
	ls->dirfd = -1;
	ls->log = log;
	if (mkdirat(metafd, VMB_LAYERS_DIR, VMB_LAYERS_DIR_MODE) == 0) {
		/* whatever the umask */
		if (fchmodat(metafd, VMB_LAYERS_DIR, VMB_LAYERS_DIR_MODE, 0) < 0) {
			rc = vmb_err_sys(err, errno, "cannot set the mode of '%s'", ls->path);
			goto out;
		}
		/* its entry durable before any layer in it is: a power loss would
		 * take the directory with the layers that images stand on */
		if (vmb_fsync(metafd) < 0) {
			rc = vmb_err_sys(err, errno, "cannot sync the directory of '%s'",
					 ls->path);
			goto out;
		}
	} else if (errno == EROFS) {
		rofs = 1;   /* a read-only store: no layers/ is no layers */
	} else if (errno != EEXIST) {
		rc = vmb_err_sys(err, errno, "cannot create '%s'", ls->path);
		goto out;
	}
	ls->dirfd = openat(metafd, VMB_LAYERS_DIR,
			   O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (ls->dirfd < 0 && !(rofs && errno == ENOENT)) {
		rc = vmb_err_sys(err, errno, "cannot open '%s'", ls->path);
		goto out;
	}
	if (pthread_mutexattr_init(&ma) ||
	    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE) ||
	    pthread_mutex_init(&ls->mu, &ma)) {
		rc = vmb_err_set(err, ENOMEM, "cannot make the lock of the store's layers");
		goto out;
	}
	pthread_mutexattr_destroy(&ma);
out:
	if (rc) {
		if (ls->dirfd >= 0)
			close(ls->dirfd);
		free(ls->path);
		free(ls);
		return rc;
	}
	*out = ls;
	return 0;
}

void vmb_layers_close(struct vmb_layers *ls)
{
	size_t i;

	if (!ls)
		return;
	pthread_mutex_lock(&ls->mu);
	for (i = 0; i < ls->n; i++)
		ls->cache[i].c->ls = NULL;
	pthread_mutex_unlock(&ls->mu);
	if (ls->n)
		vmb_log_msg(ls->log, "layers of '%s': %zu layer(s) still open at close "
			    "(a base was not put), first '%s'", ls->path, ls->n,
			    ls->cache[0].id);
	free(ls->cache);
	if (ls->dirfd >= 0)
		close(ls->dirfd);
	pthread_mutex_destroy(&ls->mu);
	free(ls->path);
	free(ls);
}

const char *vmb_layers_path(const struct vmb_layers *ls)
{
	return ls->path;
}

int vmb_layers_dirfd(const struct vmb_layers *ls)
{
	return ls->dirfd;
}

/* ---- the cache ---- */

/* Index of id in the cache, or where it would go (*found 0). */
static size_t cache_find(const struct vmb_layers *ls, const char *id, int *found)
{
	size_t lo = 0, hi = ls->n;

	*found = 0;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(ls->cache[mid].id, id);

		if (c == 0) {
			*found = 1;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void cache_del(struct vmb_layers *ls, size_t i)
{
	memmove(&ls->cache[i], &ls->cache[i + 1], (ls->n - i - 1) * sizeof(ls->cache[0]));
	ls->n--;
}

static int cache_add(struct vmb_layers *ls, size_t i, struct vmb_chain *c)
{
	if (ls->n == ls->cap) {
		size_t cap = ls->cap ? ls->cap * 2 : 16;
		struct vmb_layers_ent *e = realloc(ls->cache, cap * sizeof(*e));

		if (!e)
			return -ENOMEM;
		ls->cache = e;
		ls->cap = cap;
	}
	memmove(&ls->cache[i + 1], &ls->cache[i], (ls->n - i) * sizeof(ls->cache[0]));
	memcpy(ls->cache[i].id, c->base.id, sizeof(ls->cache[i].id));
	ls->cache[i].c = c;
	ls->n++;
	return 0;
}

/* A new reference on c unless its count already reached zero (it is being
 * destroyed). */
static int try_ref(struct vmb_chain *c)
{
	int r = __atomic_load_n(&c->base.refs, __ATOMIC_RELAXED);

	while (r > 0)
		if (__atomic_compare_exchange_n(&c->base.refs, &r, r + 1, 0, __ATOMIC_ACQ_REL,
						__ATOMIC_RELAXED))
			return 1;
	return 0;
}

int vmb_layers_get_locked(struct vmb_layers *ls, const char *id, uint64_t depth_max,
			  struct vmb_chain **out, struct vmb_err *err)
{
	struct vmb_chain *c;
	size_t i;
	int found, rc;

	*out = NULL;
	i = cache_find(ls, id, &found);
	if (found) {
		if (try_ref(ls->cache[i].c)) {
			*out = ls->cache[i].c;
			return 0;
		}
		cache_del(ls, i);   /* dying: its destroy will find itself gone */
	}
	if (ls->dirfd < 0)
		return vmb_err_set(err, EIO, "layer '%s' is missing (%s/%s.map)", id, ls->path,
				   id);
	rc = vmb_chain_open(ls, id, depth_max, &c, err);
	if (rc)
		return rc;
	/* opening its base may have changed the cache */
	i = cache_find(ls, id, &found);
	if (found)
		cache_del(ls, i);
	if (cache_add(ls, i, c)) {
		vmb_base_put(&c->base);
		return vmb_err_set(err, ENOMEM, "out of memory opening layer '%s'", id);
	}
	c->ls = ls;
	*out = c;
	return 0;
}

void vmb_layers_forget(struct vmb_layers *ls, struct vmb_chain *c)
{
	size_t i;
	int found;

	pthread_mutex_lock(&ls->mu);
	i = cache_find(ls, c->base.id, &found);
	if (found && ls->cache[i].c == c)
		cache_del(ls, i);
	pthread_mutex_unlock(&ls->mu);
}

int vmb_layers_get(struct vmb_layers *ls, const char *id, struct vmb_base **out,
		   struct vmb_err *err)
{
	struct vmb_chain *c;
	char needle[VMB_BASE_ID_LEN + 16];
	int rc;

	*out = NULL;
	if (!vmb_base_id_valid(id))
		return vmb_err_set(err, EINVAL, "invalid layer id '%.64s'", id);
	pthread_mutex_lock(&ls->mu);
	rc = vmb_layers_get_locked(ls, id, VMB_LAYER_DEPTH_MAX, &c, err);
	pthread_mutex_unlock(&ls->mu);
	if (rc) {
		snprintf(needle, sizeof(needle), "layer '%s'", id);
		if (err && !strstr(err->msg, needle)) {
			char msg[VMB_ERR_MAX];

			snprintf(msg, sizeof(msg), "%s", err->msg);
			vmb_err_set(err, -rc, "%.400s; needed by layer '%s'", msg, id);
		}
		return rc;
	}
	*out = &c->base;
	return 0;
}

static int resolver_open(void *arg, const char *id, struct vmb_base **out,
			 struct vmb_err *err)
{
	return vmb_layers_get(arg, id, out, err);
}

struct vmb_base_resolver vmb_layers_resolver(struct vmb_layers *ls)
{
	return (struct vmb_base_resolver){ .open = resolver_open, .arg = ls };
}

int vmb_layers_owns(const struct vmb_layers *ls, const struct vmb_base *b)
{
	const struct vmb_chain *c = (const struct vmb_chain *)b;

	return b && b->ops == &vmb_chain_ops && c->ls == ls;
}

const char *vmb_layers_fd_id(const struct vmb_base *b, int fd)
{
	const struct vmb_chain *c = (const struct vmb_chain *)b;

	if (!b || b->ops != &vmb_chain_ops || fd < 0)
		return NULL;
	for (unsigned i = 0; i < b->depth; i++)
		if (c->lv[i]->fd == fd)
			return c->lv[i]->base.id;
	return NULL;
}

int vmb_layers_open_ids(struct vmb_layers *ls, char (**ids)[VMB_BASE_ID_LEN + 1],
			size_t *n)
{
	size_t i, k = 0;

	*ids = NULL;
	*n = 0;
	pthread_mutex_lock(&ls->mu);
	if (ls->n) {
		*ids = malloc(ls->n * sizeof(**ids));
		if (!*ids) {
			pthread_mutex_unlock(&ls->mu);
			return -ENOMEM;
		}
		for (i = 0; i < ls->n; i++)
			if (__atomic_load_n(&ls->cache[i].c->base.refs, __ATOMIC_RELAXED) > 0)
				memcpy((*ids)[k++], ls->cache[i].id, VMB_BASE_ID_LEN + 1);
	}
	pthread_mutex_unlock(&ls->mu);
	*n = k;
	if (!k) {
		free(*ids);
		*ids = NULL;
	}
	return 0;
}

/* ---- reading a layer's map ---- */

int vmb_layers_read_file(int dirfd, const char *name, void **buf, size_t *len)
{
	struct stat st;
	ssize_t got;
	int fd, rc = 0;

	*buf = NULL;
	*len = 0;
	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = -EINVAL;
		goto out;
	}
	if ((uint64_t)st.st_size >= SIZE_MAX / 2) {
		rc = -EFBIG;
		goto out;
	}
	*buf = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!*buf) {
		rc = -ENOMEM;
		goto out;
	}
	got = vmb_read_full(fd, *buf, (size_t)st.st_size);
	if (got < 0) {
		rc = (int)got;
		free(*buf);
		*buf = NULL;
		goto out;
	}
	*len = (size_t)got;
out:
	close(fd);
	return rc;
}

int vmb_layers_load_map(struct vmb_layers *ls, const char *id, struct vmb_blockmap *m,
			struct vmb_layer_hdr *h, int *missing, struct vmb_err *err)
{
	char name[NAME_LEN], msg[VMB_ERR_MAX];
	struct vmb_err derr;
	void *buf = NULL;
	size_t len;
	int rc;

	if (missing)
		*missing = 0;
	snprintf(name, sizeof(name), "%s.map", id);
	rc = ls->dirfd < 0 ? -ENOENT : vmb_layers_read_file(ls->dirfd, name, &buf, &len);
	if (rc == -ENOENT) {
		if (missing)
			*missing = 1;
		return vmb_err_set(err, EIO, "layer '%s' is missing (%s/%s)", id, ls->path,
				   name);
	}
	if (rc == -ENOMEM)
		return vmb_err_set(err, ENOMEM, "out of memory reading layer '%s'", id);
	if (rc == -EINVAL)
		return vmb_err_set(err, EIO, "layer '%s' is damaged: %s/%s is not a regular "
				   "file", id, ls->path, name);
	if (rc)
		return vmb_err_set(err, EIO, "cannot read layer '%s' (%s/%s): %s", id,
				   ls->path, name, strerror(-rc));
	vmb_err_clear(&derr);
	rc = vmb_layer_map_decode(buf, len, id, m, h, &derr);
	free(buf);
	if (rc == -ENOMEM)
		return vmb_err_set(err, ENOMEM, "%s", derr.msg);
	if (rc) {
		snprintf(msg, sizeof(msg), "%s", derr.msg);
		return vmb_err_set(err, EIO, "%.300s: %s/%s", msg, ls->path, name);
	}
	return 0;
}

/* ---- stat, list, remove ---- */

int vmb_layers_stat(struct vmb_layers *ls, const char *id, struct vmb_layer_info *li,
		    struct vmb_err *err)
{
	char name[NAME_LEN];
	struct vmb_blockmap m;
	struct vmb_layer_hdr h;
	struct stat st;
	int rc, missing;

	memset(li, 0, sizeof(*li));
	if (!vmb_base_id_valid(id))
		return vmb_err_set(err, EINVAL, "invalid layer id '%.64s'", id);
	{
		struct vmb_layer_remote *rl = malloc(sizeof(*rl));

		if (!rl)
			return vmb_err_set(err, ENOMEM, "out of memory");
		rc = vmb_layers_remote_info(ls, id, rl, err);
		if (rc == 0) {
			memcpy(li->id, id, sizeof(li->id));
			li->size = rl->size;
			li->depth = 1;
			li->remote = 1;
		}
		free(rl);
		if (rc != -ENOENT)
			return rc;
	}
	vmb_blockmap_init(&m);
	rc = vmb_layers_load_map(ls, id, &m, &h, &missing, err);
	if (rc) {
		if (missing)
			rc = vmb_err_set(err, ENOENT, "no layer '%s' (%s/%s.map)", id, ls->path,
					 id);
		goto out;
	}
	snprintf(name, sizeof(name), "%s.data", id);
	if (fstatat(ls->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			rc = vmb_err_set(err, EIO, "layer '%s' is missing its data (%s/%s)", id,
					 ls->path, name);
		else
			rc = vmb_err_set(err, EIO, "cannot stat layer '%s' (%s/%s): %s", id,
					 ls->path, name, strerror(errno));
		goto out;
	}
	memcpy(li->id, id, sizeof(li->id));
	memcpy(li->base, h.base, sizeof(li->base));
	li->size = h.stamp.size;
	li->limit = h.limit;
	li->depth = h.depth;
	li->data_blocks = m.data_blocks;
	li->alloc_bytes = (uint64_t)st.st_blocks * 512;
out:
	vmb_blockmap_destroy(&m);
	return rc;
}

static int cmp_id(const void *a, const void *b)
{
	return strcmp(a, b);
}

static int push_id(char (**arr)[VMB_BASE_ID_LEN + 1], size_t *n, size_t *cap,
		   const char *id)
{
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 16;
		char (*a)[VMB_BASE_ID_LEN + 1] = realloc(*arr, c * sizeof(*a));

		if (!a)
			return -ENOMEM;
		*arr = a;
		*cap = c;
	}
	memcpy((*arr)[*n], id, VMB_BASE_ID_LEN);
	(*arr)[*n][VMB_BASE_ID_LEN] = '\0';
	(*n)++;
	return 0;
}

void vmb_layer_list_free(struct vmb_layer_list *l)
{
	if (!l)
		return;
	free(l->ids);
	free(l->orphans);
	for (size_t i = 0; i < l->nstray; i++)
		free(l->stray[i]);
	free(l->stray);
	memset(l, 0, sizeof(*l));
}

/* The id of "<id><suffix>", or NULL. */
static int id_of(const char *name, const char *suffix, char id[VMB_BASE_ID_LEN + 1])
{
	if (strlen(name) != VMB_BASE_ID_LEN + strlen(suffix) ||
	    strcmp(name + VMB_BASE_ID_LEN, suffix))
		return 0;
	memcpy(id, name, VMB_BASE_ID_LEN);
	id[VMB_BASE_ID_LEN] = '\0';
	return vmb_base_id_valid(id);
}

int vmb_layers_list(struct vmb_layers *ls, struct vmb_layer_list *out, struct vmb_err *err)
{
	char (*cand)[VMB_BASE_ID_LEN + 1] = NULL, id[VMB_BASE_ID_LEN + 1];
	size_t ncand = 0, capcand = 0, capids = 0, caporph = 0, capstray = 0, i;
	struct dirent *de;
	DIR *d = NULL;
	int fd, rc = 0;

	memset(out, 0, sizeof(*out));
	if (ls->dirfd < 0)
		return 0;
	fd = openat(ls->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || !(d = fdopendir(fd))) {
		rc = vmb_err_sys(err, errno, "cannot list '%s'", ls->path);
		if (fd >= 0)
			close(fd);
		return rc;
	}
	while (!rc) {
		errno = 0;
		de = readdir(d);
		if (!de) {
			if (errno)
				rc = vmb_err_sys(err, errno, "cannot list '%s'", ls->path);
			break;
		}
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
		    vmb_layer_is_rtmp(de->d_name))   /* vmb_layers_sweep_rtmp */
			continue;
		if (id_of(de->d_name, ".map", id) || id_of(de->d_name, ".remote", id))
			rc = push_id(&out->ids, &out->n, &capids, id);
		else if (id_of(de->d_name, ".data", id) || id_of(de->d_name, ".tmp", id))
			rc = push_id(&cand, &ncand, &capcand, id);
		else {
			if (out->nstray == capstray) {
				size_t c = capstray ? capstray * 2 : 8;
				char **s = realloc(out->stray, c * sizeof(*s));

				if (!s) {
					rc = -ENOMEM;
					break;
				}
				out->stray = s;
				capstray = c;
			}
			out->stray[out->nstray] = strdup(de->d_name);
			if (!out->stray[out->nstray])
				rc = -ENOMEM;
			else
				out->nstray++;
		}
	}
	if (rc == -ENOMEM)
		rc = vmb_err_set(err, ENOMEM, "out of memory listing '%s'", ls->path);
	if (rc)
		goto out;
	if (out->n)
		qsort(out->ids, out->n, sizeof(*out->ids), cmp_id);
	if (ncand)
		qsort(cand, ncand, sizeof(*cand), cmp_id);
	for (i = 0; i < ncand && !rc; i++) {
		if (i && !strcmp(cand[i], cand[i - 1]))
			continue;
		if (!out->n || !bsearch(cand[i], out->ids, out->n, sizeof(*out->ids), cmp_id))
			rc = push_id(&out->orphans, &out->norphans, &caporph, cand[i]);
	}
	if (rc)
		rc = vmb_err_set(err, ENOMEM, "out of memory listing '%s'", ls->path);
out:
	free(cand);
	closedir(d);
	if (rc)
		vmb_layer_list_free(out);
	return rc;
}

int vmb_layers_remove(struct vmb_layers *ls, const char *id, struct vmb_err *err)
{
	static const char *const suffix[] = { ".remote", ".map", ".data", ".tmp" };
	char name[NAME_LEN];
	size_t i;
	int found, gone = 0, rc = 0;

	if (!vmb_base_id_valid(id))
		return vmb_err_set(err, EINVAL, "invalid layer id '%.64s'", id);
	if (ls->dirfd < 0)
		return vmb_err_set(err, ENOENT, "no layer '%s' (%s/%s.map)", id, ls->path, id);
	pthread_mutex_lock(&ls->mu);
	i = cache_find(ls, id, &found);
	if (found && __atomic_load_n(&ls->cache[i].c->base.refs, __ATOMIC_RELAXED) > 0) {
		rc = vmb_err_set(err, EBUSY, "layer '%s' is in use", id);
		goto out;
	}
	for (i = 0; i < 4; i++) {
		snprintf(name, sizeof(name), "%s%s", id, suffix[i]);
		if (unlinkat(ls->dirfd, name, 0) == 0)
			continue;
		if (errno != ENOENT) {
			rc = vmb_err_sys(err, errno, "cannot remove layer '%s' (%s/%s)", id,
					 ls->path, name);
			goto out;
		}
		gone++;
	}
	if (gone == 4) {
		rc = vmb_err_set(err, ENOENT, "no layer '%s' (%s/%s.map)", id, ls->path, id);
		goto out;
	}
	if (vmb_fsync(ls->dirfd) < 0)
		rc = vmb_err_sys(err, errno, "cannot fsync '%s'", ls->path);
out:
	pthread_mutex_unlock(&ls->mu);
	return rc;
}
