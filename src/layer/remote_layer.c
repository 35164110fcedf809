/* remote_layer.c - remote layers: layers/<ID>.remote files and the chains they
 * open as (layer.h, "remote layers").
 *
 * Decisions:
 *  - the URL is %-escaped as the manifests escape names (bytes <= 0x20, '%' and
 *    0x7f..0xff as %XX), so the file stays one record per line;
 *  - a remote layer's chain has one level whose fd is -1 and whose bytes come from
 *    the remote image's read (chain.c's read_layer asks it); its merged map is the
 *    image's data map, walked once through lookup.
 */
#include "config.h"
#include "base/fdio.h"
#include "layer/layer_int.h"
#include "remote/rimage.h"
#include "remote/pubfmt.h"
#include "remote/remote.h"
#include "remote/cache.h"
#include "base/bufpool.h"
#include "base/crc32c.h"
#include "base/digest.h"
#include "base/text.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

/* The longest .remote file: its URLs all escaped, and its other lines. */
#define VMB_LAYER_REMOTE_MAX ((1 + VMB_LAYER_MIRRORS) * (3 * VMB_LAYER_URL_MAX + 16) + 256)

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Append "<key> <%-escaped url>\n" at b + *n (room for it: the caller's). */
static void put_url(char *b, size_t cap, size_t *n, const char *key, const char *url)
{
	*n += (size_t)snprintf(b + *n, cap - *n, "%s ", key);
	for (; *url; url++) {
		unsigned char c = (unsigned char)*url;

		if (c <= 0x20 || c == '%' || c >= 0x7f)
			*n += (size_t)snprintf(b + *n, cap - *n, "%%%02X", c);
		else
			b[(*n)++] = (char)c;
	}
	b[(*n)++] = '\n';
}

int vmb_layer_remote_encode(const struct vmb_layer_remote *rl, char **buf, size_t *len,
			    struct vmb_err *err)
{
	size_t ul = strnlen(rl->url, sizeof(rl->url)), cap = 3 * ul + 256, n = 0;
	char hex[65], *b;
	unsigned i;

	if (!ul || ul == sizeof(rl->url))
		return vmb_err_set(err, EINVAL, "a remote layer needs a URL");
	if (rl->nmirrors > VMB_LAYER_MIRRORS)
		return vmb_err_set(err, EINVAL, "a remote layer keeps at most %d mirrors",
				   VMB_LAYER_MIRRORS);
	for (i = 0; i < rl->nmirrors; i++) {
		size_t ml = strnlen(rl->mirror[i], sizeof(rl->mirror[i]));

		if (!ml || ml == sizeof(rl->mirror[i]))
			return vmb_err_set(err, EINVAL, "a remote layer's mirror needs a URL");
		cap += 3 * ml + 16;
	}
	b = malloc(cap);
	if (!b)
		return vmb_err_set(err, ENOMEM, "out of memory");
	n += (size_t)snprintf(b + n, cap - n, "%s\n", VMB_LAYER_REMOTE_MAGIC);
	put_url(b, cap, &n, "url", rl->url);
	for (i = 0; i < rl->nmirrors; i++)
		put_url(b, cap, &n, "mirror", rl->mirror[i]);
	vmb_sha256_hex(rl->index, hex);
	n += (size_t)snprintf(b + n, cap - n, "index %s\nsize %" PRIu64 "\n", hex, rl->size);
	n += (size_t)snprintf(b + n, cap - n, "end %08x\n", vmb_crc32c(0, b, n));
	*buf = b;
	*len = n;
	return 0;
}

static int bad(struct vmb_err *err, const char *id, const char *what)
{
	return vmb_err_set(err, EBADMSG, "remote layer '%s' is corrupt (%s)", id, what);
}

static int decode(const char *s, size_t len, const char *id,
		  struct vmb_layer_remote *rl, struct vmb_err *err);

int vmb_layer_remote_decode(const void *buf, size_t len, const char *id,
			    struct vmb_layer_remote *rl, struct vmb_err *err)
{
	char *s;
	int rc;

	memset(rl, 0, sizeof(*rl));
	if (len > VMB_LAYER_REMOTE_MAX)
		return bad(err, id, "not a remote layer file");
	s = malloc(len + 1);   /* NUL-terminated for sscanf */
	if (!s)
		return vmb_err_set(err, ENOMEM, "out of memory");
	memcpy(s, buf, len);
	s[len] = '\0';
	rc = decode(s, len, id, rl, err);
	free(s);
	return rc;
}

/* The %-escaped URL at p, up to its newline (before e), into url[VMB_LAYER_URL_MAX]:
 * the next line, or NULL with err set. */
static const char *get_url(const char *p, const char *e, char *url, const char *id,
			   struct vmb_err *err)
{
	size_t n = 0;

	for (; p < e && *p != '\n'; p++) {
		int c = (unsigned char)*p;

		if (c == '%') {
			int h = p + 2 < e ? hexval(p[1] | 0x20) : -1, l = h >= 0 ? hexval(p[2] | 0x20) : -1;

			if (h < 0 || l < 0) {
				bad(err, id, "bad escape in a url");
				return NULL;
			}
			c = h * 16 + l;
			p += 2;
		}
		if (n + 1 >= VMB_LAYER_URL_MAX || c == 0) {
			bad(err, id, "url too long");
			return NULL;
		}
		url[n++] = (char)c;
	}
	url[n] = '\0';
	if (!n || p >= e) {
		bad(err, id, "empty url");
		return NULL;
	}
	return p + 1;
}

static int decode(const char *s, size_t len, const char *id,
		  struct vmb_layer_remote *rl, struct vmb_err *err)
{
	const char *p, *e, *end = s + len;
	char hex[65], tail[32];
	unsigned crc;
	int k;

	memset(rl, 0, sizeof(*rl));
	if (len < 8 || len > VMB_LAYER_REMOTE_MAX || s[len - 1] != '\n' ||
	    memchr(s, '\0', len))
		return bad(err, id, "not a remote layer file");
	/* the last line */
	for (e = end - 1; e > s && e[-1] != '\n'; e--)
		;
	if (e == s || end - e > 20 || sscanf(e, "end %8x%2s", &crc, tail) != 1 ||
	    end - e != 13)
		return bad(err, id, "no end line");
	if (vmb_crc32c(0, s, (size_t)(e - s)) != crc)
		return bad(err, id, "bad checksum");
	p = s;
	k = (int)strlen(VMB_LAYER_REMOTE_MAGIC);
	if (strncmp(p, VMB_LAYER_REMOTE_MAGIC "\n", (size_t)k + 1))
		return bad(err, id, "not a remote layer file, or a newer version");
	p += k + 1;
	if (strncmp(p, "url ", 4))
		return bad(err, id, "no url line");
	p = get_url(p + 4, e, rl->url, id, err);
	if (!p)
		return -EBADMSG;
	while (!strncmp(p, "mirror ", 7)) {
		if (rl->nmirrors == VMB_LAYER_MIRRORS)
			return bad(err, id, "too many mirrors");
		p = get_url(p + 7, e, rl->mirror[rl->nmirrors++], id, err);
		if (!p)
			return -EBADMSG;
	}
	if (sscanf(p, "index %64[0-9a-f]\nsize %" SCNu64 "\n", hex, &rl->size) != 2 ||
	    strlen(hex) != 64)
		return bad(err, id, "bad index or size line");
	for (k = 0; k < 32; k++)
		rl->index[k] = (uint8_t)(hexval(hex[2 * k]) * 16 + hexval(hex[2 * k + 1]));
	/* exactly those two lines before the end line */
	{
		char want[128];
		int w = snprintf(want, sizeof(want), "index %s\nsize %" PRIu64 "\n", hex, rl->size);

		if (e - p != w || memcmp(p, want, (size_t)w))
			return bad(err, id, "unexpected lines");
	}
	if (strncmp(hex, id, VMB_BASE_ID_LEN))
		return bad(err, id, "its index does not match its id");
	return 0;
}

void vmb_layers_set_remote(struct vmb_layers *ls, struct vmb_remote *r)
{
	pthread_mutex_lock(&ls->mu);
	ls->remote = r;
	pthread_mutex_unlock(&ls->mu);
}

int vmb_layers_remote_info(struct vmb_layers *ls, const char *id,
			   struct vmb_layer_remote *rl, struct vmb_err *err)
{
	char name[VMB_BASE_ID_LEN + 16];
	void *buf;
	size_t len;
	int rc;

	if (!vmb_base_id_valid(id))
		return vmb_err_set(err, EINVAL, "invalid layer id '%.64s'", id);
	snprintf(name, sizeof(name), "%s.remote", id);
	rc = ls->dirfd < 0 ? -ENOENT : vmb_layers_read_file(ls->dirfd, name, &buf, &len);
	if (rc == -ENOENT)
		return rc;
	if (rc)
		return vmb_err_set(err, EIO, "cannot read remote layer '%s' (%s/%s): %s", id,
				   ls->path, name, strerror(-rc));
	rc = vmb_layer_remote_decode(buf, len, id, rl, err);
	free(buf);
	if (rc) {
		vmb_err_prefix(err, "%s/%s", ls->path, name);
		if (err)
			err->code = EIO;
		return -EIO;
	}
	return 0;
}

/* Write rl to layers/<id>.remote, atomically (temporary, fsync, rename, fsync of
 * the directory). 0 or -errno. */
static int write_remote(struct vmb_layers *ls, const struct vmb_layer_remote *rl,
			const char *id, struct vmb_err *err)
{
	char name[VMB_BASE_ID_LEN + 16], tmp[VMB_BASE_ID_LEN + 48];
	unsigned rnd = 0;
	size_t len, done = 0;
	char *buf = NULL;
	struct stat st;
	int fd = -1, rc, i;

	rc = vmb_layer_remote_encode(rl, &buf, &len, err);
	if (rc)
		return rc;
	snprintf(name, sizeof(name), "%s.remote", id);
	/* The temporary is locked (flock) from its creation to its rename, so that one
	 * nobody holds is a leftover (vmb_layers_sweep_rtmp); a sweeper may take it in
	 * between: then it is gone (or going) and another name is tried. */
	for (i = 0; i < 100; i++) {
		if (getrandom(&rnd, sizeof(rnd), 0) < 0)
			rnd = (unsigned)getpid() + (unsigned)i;
		snprintf(tmp, sizeof(tmp), ".%s.%08x.rtmp", id, rnd);
		fd = openat(ls->dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
			    VMB_LAYER_MAP_MODE);
		if (fd < 0 && errno == EEXIST)
			continue;
		if (fd < 0) {
			rc = vmb_err_sys(err, errno, "cannot create '%s/%s'", ls->path, tmp);
			goto out;
		}
		if (flock(fd, LOCK_EX | LOCK_NB) == 0 && fstat(fd, &st) == 0 && st.st_nlink > 0)
			break;
		unlinkat(ls->dirfd, tmp, 0);   /* a sweeper has it (fsck -n leaves it) */
		close(fd);
		fd = -1;
	}
	if (fd < 0) {
		rc = vmb_err_set(err, EAGAIN, "cannot create a temporary in '%s'", ls->path);
		goto out;
	}
	while (done < len) {
		ssize_t w = write(fd, buf + done, len - done);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			rc = vmb_err_sys(err, errno, "cannot write '%s/%s'", ls->path, tmp);
			break;
		}
		done += (size_t)w;
	}
	if (!rc && vmb_fsync(fd) < 0)
		rc = vmb_err_sys(err, errno, "cannot sync '%s/%s'", ls->path, tmp);
	if (!rc && renameat(ls->dirfd, tmp, ls->dirfd, name) < 0)
		rc = vmb_err_sys(err, errno, "cannot rename '%s/%s'", ls->path, tmp);
	if (rc)
		unlinkat(ls->dirfd, tmp, 0);
	close(fd);   /* the lock goes after the rename */
	if (!rc && vmb_fsync(ls->dirfd) < 0)
		rc = vmb_err_sys(err, errno, "cannot sync '%s'", ls->path);
out:
	free(buf);
	return rc;
}

int vmb_layers_create_remote(struct vmb_layers *ls, const struct vmb_layer_remote *rl,
			     char id[VMB_BASE_ID_LEN + 1], struct vmb_err *err)
{
	struct vmb_layer_remote *old = NULL;
	char hex[65];
	struct vmb_err e;
	unsigned i;
	int rc;

	vmb_sha256_hex(rl->index, hex);
	memcpy(id, hex, VMB_BASE_ID_LEN);
	id[VMB_BASE_ID_LEN] = '\0';
	if (ls->dirfd < 0)
		return vmb_err_set(err, EROFS, "cannot add a remote layer: '%s' does not exist",
				   ls->path);
	old = malloc(sizeof(*old));
	if (!old)
		return vmb_err_set(err, ENOMEM, "out of memory");
	vmb_err_clear(&e);
	rc = vmb_layers_remote_info(ls, id, old, &e);
	if (rc == 0) {
		/* the same image (same digest) from another URL (a mirror): the layer
		 * that exists serves it, from either */
		if (memcmp(old->index, rl->index, 32) || old->size != rl->size) {
			rc = vmb_err_set(err, EEXIST, "remote layer '%s' exists with another "
					 "size (%s)", id, old->url);
			goto out;
		}
		if (!strcmp(old->url, rl->url))
			goto out;
		for (i = 0; i < old->nmirrors; i++)
			if (!strcmp(old->mirror[i], rl->url))
				goto out;
		if (old->nmirrors == VMB_LAYER_MIRRORS) {   /* the oldest mirror goes */
			memmove(old->mirror[0], old->mirror[1],
				(VMB_LAYER_MIRRORS - 1) * sizeof(old->mirror[0]));
			old->nmirrors--;
		}
		snprintf(old->mirror[old->nmirrors++], VMB_LAYER_URL_MAX, "%s", rl->url);
		rc = write_remote(ls, old, id, err);
		goto out;
	}
	if (rc != -ENOENT) {
		rc = vmb_err_set(err, -rc, "%s", e.msg);
		goto out;
	}
	rc = write_remote(ls, rl, id, err);
out:
	free(old);
	return rc;
}

/* The merged map of a remote image: its DATA runs, all src 0. */
static int runs_of(struct vmb_base *b, struct vmb_run **runs, size_t *nruns)
{
	uint64_t blk = 0, nblocks = vmb_layer_blocks(b->size), run;
	size_t n = 0, cap = 0;
	struct vmb_run *r = NULL;
	int fd;

	while (blk < nblocks) {
		enum vmb_bstate s = b->ops->lookup(b, blk, &run, &fd);

		if (run > nblocks - blk)
			run = nblocks - blk;
		if (s == VMB_DATA) {
			if (n == cap) {
				size_t c = cap ? cap * 2 : 16;
				struct vmb_run *x = realloc(r, c * sizeof(*x));

				if (!x) {
					free(r);
					return -ENOMEM;
				}
				r = x;
				cap = c;
			}
			r[n++] = (struct vmb_run){ .start = blk, .len = run, .src = 0,
						   .zero_from = UINT64_MAX };
		}
		blk += run;
	}
	*runs = r;
	*nruns = n;
	return 0;
}

/* The remote image of rl, with its mirrors. */
static int open_rimage(struct vmb_remote *r, const struct vmb_layer_remote *rl,
		       struct vmb_base **out, struct vmb_err *err)
{
	const char *urls[1 + VMB_LAYER_MIRRORS];
	unsigned k;

	urls[0] = rl->url;
	for (k = 0; k < rl->nmirrors; k++)
		urls[k + 1] = rl->mirror[k];
	return vmb_rimage_open_urls(r, urls, 1 + rl->nmirrors, rl->index, rl->size, out, err);
}

int vmb_chain_open_remote(struct vmb_layers *ls, const char *id, struct vmb_chain **out,
			  struct vmb_err *err)
{
	struct vmb_layer_remote *rl;
	struct vmb_chain *c;
	int rc;

	*out = NULL;
	rl = malloc(sizeof(*rl));
	if (!rl)
		return vmb_err_set(err, ENOMEM, "out of memory");
	rc = vmb_layers_remote_info(ls, id, rl, err);
	if (rc)
		goto out;
	if (!ls->remote) {
		rc = vmb_err_set(err, EIO, "layer '%s' is remote (%s) and no remote context "
				 "was given", id, rl->url);
		goto out;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		rc = vmb_err_set(err, ENOMEM, "out of memory");
		goto out;
	}
	c->fd = -1;
	snprintf(c->base.id, sizeof(c->base.id), "%s", id);
	rc = open_rimage(ls->remote, rl, &c->remote, err);
	if (!rc && asprintf(&c->data_path, "%s", rl->url) < 0) {
		c->data_path = NULL;
		rc = -ENOMEM;
	}
	if (!rc)
		rc = runs_of(c->remote, &c->runs, &c->nruns);
	if (rc) {
		if (rc == -ENOMEM)
			vmb_err_set(err, ENOMEM, "out of memory opening layer '%s'", id);
		else
			rc = -EIO;
		vmb_base_put(c->remote);
		free(c->runs);
		free(c->data_path);
		free(c);
		goto out;
	}
	c->lv[0] = c;
	c->base.ops = &vmb_chain_ops;
	c->base.size = rl->size;
	c->base.depth = 1;
	c->base.refs = 1;
	c->base.data_blocks = c->remote->data_blocks;
	*out = c;
out:
	free(rl);
	return rc;
}

struct vmb_rimage *vmb_layers_remote_of(struct vmb_base *b)
{
	struct vmb_chain *c = (struct vmb_chain *)b;

	if (!b)
		return NULL;
	if (b->ops != &vmb_chain_ops)
		return vmb_rimage_of(b);
	c = c->lv[b->depth - 1];
	return c && c->remote ? vmb_rimage_of(c->remote) : NULL;
}

/* ---- preloading ---- */

struct vmb_layers_preload {
	struct vmb_layers *ls;
	char *warm_url;                    /* owned; NULL: none */
	pthread_t th;
	int stop;                          /* atomic */
	unsigned done;                     /* atomic: images opened */
};

void vmb_layers_pin_name(const char *layers_path, char name[VMB_LAYERS_PIN_NAME])
{
	uint8_t h[32];
	char hex[65];

	vmb_sha256(layers_path, strlen(layers_path), h, NULL);
	vmb_sha256_hex(h, hex);
	snprintf(name, VMB_LAYERS_PIN_NAME, "layers-%s", hex);
}

/* The pin name of ls's layers: by their directory's real path (as a command
 * names it, cli_remote.c), or the path it was opened by. */
static void pin_name_of(struct vmb_layers *ls, char name[VMB_LAYERS_PIN_NAME])
{
	char *real = realpath(ls->path, NULL);

	vmb_layers_pin_name(real ? real : ls->path, name);
	free(real);
}

void vmb_layers_unpin_remote(struct vmb_layers *ls, struct vmb_remote *r)
{
	char name[VMB_LAYERS_PIN_NAME];
	struct vmb_cache *c;

	if (vmb_remote_cache(r, &c, NULL) == 0) {
		pin_name_of(ls, name);
		vmb_cache_unpin(c, name, NULL);
	}
}

/* vmb_layers_pin_remote with the layers l already listed. */
static int pin_listed(struct vmb_layers *ls, struct vmb_remote *r,
		      const struct vmb_layer_list *l, struct vmb_err *err)
{
	struct vmb_layer_remote *rl = malloc(sizeof(*rl));
	uint8_t (*d)[32] = malloc((l->n ? l->n : 1) * sizeof(*d));
	char name[VMB_LAYERS_PIN_NAME];
	struct vmb_cache *c;
	struct vmb_err e;
	size_t n = 0;
	int rc;

	if (!rl || !d) {
		rc = vmb_err_set(err, ENOMEM, "out of memory");
		goto out;
	}
	rc = vmb_remote_cache(r, &c, err);
	if (rc)
		goto out;
	pin_name_of(ls, name);
	for (size_t i = 0; i < l->n; i++) {
		vmb_err_clear(&e);
		if (vmb_layers_remote_info(ls, l->ids[i], rl, &e) == 0)
			memcpy(d[n++], rl->index, 32);
	}
	if (n)
		rc = vmb_cache_pin(c, name, (const uint8_t (*)[32])d, n, err);
	else if ((rc = vmb_cache_unpin(c, name, err)) == -ENOENT)
		rc = 0;
	if (rc)
		vmb_err_prefix(err, "cannot pin the image indexes of the remote layers of '%s'",
			       ls->path);
out:
	free(d);
	free(rl);
	return rc;
}

int vmb_layers_pin_remote(struct vmb_layers *ls, struct vmb_remote *r, struct vmb_err *err)
{
	struct vmb_layer_list l;
	int rc = 0;

	memset(&l, 0, sizeof(l));
	if (ls->dirfd >= 0)
		rc = vmb_layers_list(ls, &l, err);
	if (rc == 0)
		rc = pin_listed(ls, r, &l, err);
	vmb_layer_list_free(&l);
	return rc;
}

static void *preload_main(void *arg)
{
	struct vmb_layers_preload *p = arg;
	struct vmb_layers *ls = p->ls;
	struct vmb_layer_list l;
	struct vmb_layer_remote *rl = NULL;
	struct vmb_remote *r;
	struct vmb_err e;
	char *last_url = NULL;
	size_t i;

	pthread_mutex_lock(&ls->mu);
	r = ls->remote;
	pthread_mutex_unlock(&ls->mu);
	vmb_err_clear(&e);
	if (!r || vmb_layers_list(ls, &l, &e) < 0)
		return NULL;
	/* the indexes this store's layers need offline stay in the cache (pulled
	 * before pulls pinned them, or layers gc'd since) */
	if (l.n && pin_listed(ls, r, &l, &e) < 0)
		vmb_log_msg(ls->log, "%s", e.msg);
	if (p->warm_url) {
		/* a URL mount whose bundles come later: its fetcher is ready first, and
		 * buffers for chunks of publish's default size */
		last_url = strdup(p->warm_url);
		vmb_remote_warm(r, p->warm_url);
		vmb_remote_start_workers(r);
		vmb_buf_prefault(VMB_PIDX_CHUNK_DEFAULT, VMB_REMOTE_PREFAULT);
	}
	rl = malloc(sizeof(*rl));
	vmb_remote_meta_local_only(1);   /* a damaged index is left to its open too */
	for (i = 0; rl && i < l.n; i++) {
		struct vmb_base *b = NULL;

		if (__atomic_load_n(&p->stop, __ATOMIC_ACQUIRE) ||
		    __atomic_load_n(&p->done, __ATOMIC_RELAXED) >= VMB_REMOTE_KEEP)
			break;
		vmb_err_clear(&e);
		if (vmb_layers_remote_info(ls, l.ids[i], rl, &e) < 0 ||
		    !vmb_remote_meta_cached(r, rl->index))
			continue;   /* not remote, damaged, or not cached: left to its open */
		if (!last_url || strcmp(last_url, rl->url)) {
			free(last_url);
			last_url = strdup(rl->url);
			vmb_remote_warm(r, rl->url);
			vmb_remote_start_workers(r);   /* not on a first reader's path */
		}
		if (open_rimage(r, rl, &b, &e) == 0) {
			/* warm buffers for its first chunks (base/bufpool.h) */
			vmb_buf_prefault(vmb_rimage_chunk_len(vmb_rimage_of(b), 0),
					 VMB_REMOTE_PREFAULT);
			vmb_base_put(b);   /* the context keeps it */
			__atomic_add_fetch(&p->done, 1, __ATOMIC_RELEASE);
		}
	}
	free(last_url);
	free(rl);
	vmb_layer_list_free(&l);
	return NULL;
}

int vmb_layers_preload_start(struct vmb_layers *ls, const char *warm_url,
			     struct vmb_layers_preload **out, struct vmb_err *err)
{
	struct vmb_layers_preload *p = calloc(1, sizeof(*p));
	int rc;

	*out = NULL;
	if (!p || (warm_url && !(p->warm_url = strdup(warm_url)))) {
		free(p);
		return vmb_err_set(err, ENOMEM, "out of memory");
	}
	p->ls = ls;
	rc = pthread_create(&p->th, NULL, preload_main, p);
	if (rc) {
		free(p->warm_url);
		free(p);
		return vmb_err_sys(err, rc, "cannot start the thread that loads the remote "
				   "images' indexes");
	}
	*out = p;
	return 0;
}

void vmb_layers_preload_stop(struct vmb_layers_preload *p)
{
	if (!p)
		return;
	__atomic_store_n(&p->stop, 1, __ATOMIC_RELEASE);
	pthread_join(p->th, NULL);
	free(p->warm_url);
	free(p);
}

unsigned vmb_layers_preload_count(struct vmb_layers_preload *p)
{
	return p ? __atomic_load_n(&p->done, __ATOMIC_ACQUIRE) : 0;
}

int vmb_layer_is_rtmp(const char *name)
{
	char id[VMB_BASE_ID_LEN + 1];
	size_t n = strlen(name);

	/* ".<ID>.<8 hex>.rtmp" */
	if (n != 1 + VMB_BASE_ID_LEN + 1 + 8 + 5 || name[0] != '.' ||
	    name[1 + VMB_BASE_ID_LEN] != '.' || strcmp(name + n - 5, ".rtmp"))
		return 0;
	if (!vmb_hex_ok(name + 2 + VMB_BASE_ID_LEN, 8, NULL, 4))
		return 0;
	memcpy(id, name + 1, VMB_BASE_ID_LEN);
	id[VMB_BASE_ID_LEN] = '\0';
	return vmb_base_id_valid(id);
}

uint64_t vmb_layers_sweep_rtmp(struct vmb_layers *ls, int remove,
			       void (*found)(void *arg, const char *name, int r,
					     const struct vmb_err *e),
			       void *arg)
{
	struct dirent *de;
	uint64_t n = 0;
	DIR *d;
	int dfd;

	if (ls->dirfd < 0)
		return 0;
	dfd = openat(ls->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return 0;
	d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return 0;
	}
	while ((de = readdir(d))) {
		struct stat a, b;
		struct vmb_err e;
		int fd, r = 1;

		if (!vmb_layer_is_rtmp(de->d_name))
			continue;
		fd = openat(ls->dirfd, de->d_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0)
			continue;
		/* held: its writer runs; else dead, unless renamed or removed meanwhile */
		if (flock(fd, LOCK_EX | LOCK_NB) < 0 || fstat(fd, &a) < 0 || !S_ISREG(a.st_mode) ||
		    fstatat(ls->dirfd, de->d_name, &b, AT_SYMLINK_NOFOLLOW) < 0 ||
		    a.st_ino != b.st_ino || a.st_dev != b.st_dev) {
			close(fd);
			continue;
		}
		vmb_err_clear(&e);
		if (remove && unlinkat(ls->dirfd, de->d_name, 0) < 0) {
			if (errno == ENOENT) {   /* its writer gave it up meanwhile */
				close(fd);
				continue;
			}
			r = vmb_err_sys(&e, errno, "cannot remove '%s/%s'", ls->path, de->d_name);
		} else if (remove) {
			r = 0;
		}
		close(fd);
		if (r >= 0)
			n++;
		if (found)
			found(arg, de->d_name, r, &e);
	}
	closedir(d);
	return n;
}
