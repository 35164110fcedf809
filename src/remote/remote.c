/* remote.c - a process's remote context (remote.h): lazy cache and fetchers, the
 * metadata objects, the top index kept for offline use, readahead workers, stats.
 *
 * Decisions:
 *  - the public key option names a file holding the 32 raw bytes of an Ed25519
 *    public key, or 64 hex digits (and a newline); anything else is refused when the
 *    first top index is verified;
 *  - the work queue is a ring of VMB_REMOTE_QUEUE items; a full queue drops the
 *    rest of a window (its stream's next read queues it again: rimage.c);
 *  - metadata objects in CACHE/meta are re-verified on every read (they are small
 *    and read rarely: once per open image or pull).
 */
#include "config.h"
#include "remote/remote.h"
#include "base/bufpool.h"
#include "remote/rimage.h"
#include "remote/pubfmt.h"
#include "remote/cache.h"
#include "remote/fetch.h"
#include "base/digest.h"
#include "base/fdio.h"
#include "base/sign.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define VMB_REMOTE_QUEUE 256
#define VMB_TOP_MAX (16u << 20)
#define VMB_META_FIRST (4u << 20)   /* vmb_remote_meta's first buffer */

/* A fetcher of the context: a list that only grows while the context is open, each
 * entry published whole (release store of r->fe) and read without r->mu. */
struct fetcher_ent {
	char *url;
	struct vmb_fetcher *f;
	struct fetcher_ent *next;
};

struct work {
	struct vmb_rimage *ri;
	uint64_t chunk;
};

struct kept {
	char *url;
	uint8_t digest[32];
	struct vmb_base *b;                /* NULL while its loader loads it */
	uint64_t bytes;                    /* its index object's size */
	uint64_t used;                     /* LRU clock */
};

struct vmb_remote {
	struct vmb_remote_opts o;
	char *cache_dir, *cafile, *pubkey, *endpoint;
	const struct vmb_log *log;
	pthread_mutex_t mu;                /* guards everything below, but for what
	                                    * says otherwise */
	pthread_cond_t cv;
	pthread_cond_t kcv;                /* a kept image's load ended */
	struct vmb_cache *cache;           /* set once under mu; read with an acquire
	                                    * load on the readers' path */
	struct fetcher_ent *fe;            /* set under mu, read with acquire loads */
	int th_starting;                   /* a thread creates the workers (mu) */
	struct work q[VMB_REMOTE_QUEUE];
	size_t qhead, qn;
	unsigned busy;                     /* workers running an item */
	pthread_cond_t icv;                /* queue empty and no worker busy */
	pthread_t *th;
	unsigned nth;
	int stop;
	int cancelled;               /* vmb_remote_cancel: every fetch fails from now on */
	struct kept *kept;
	size_t nkept;
	int top_once;                      /* vmb_remote_top_once */
	char *top_url;                     /* ... the URL and index it got first */
	void *top_buf;
	size_t top_len;
	int top_stale;
	uint64_t kclock, kbytes;
	struct vmb_remote_stats st;
	time_t started;
};

/* ---- opening ---- */

int vmb_remote_default_cache(char *out, size_t len)
{
	const char *x = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	const char *env = getenv("VMBUNDLEFS_CACHE");
	int n;

	if (env && env[0] == '/')
		n = snprintf(out, len, "%s", env);
	else if (geteuid() == 0)
		n = snprintf(out, len, "/var/cache/vmbundlefs");
	else if (x && x[0] == '/')
		n = snprintf(out, len, "%s/vmbundlefs", x);
	else {
		if (!home || home[0] != '/') {
			struct passwd *pw = getpwuid(geteuid());

			home = pw ? pw->pw_dir : "/tmp";
		}
		n = snprintf(out, len, "%s/.cache/vmbundlefs", home);
	}
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static void *worker(void *arg);

int vmb_remote_open(const struct vmb_remote_opts *opts, const struct vmb_log *log,
		    struct vmb_remote **out, struct vmb_err *err)
{
	struct vmb_remote *r = calloc(1, sizeof(*r));
	char dir[PATH_MAX];

	*out = NULL;
	if (!r)
		return vmb_err_set(err, ENOMEM, "out of memory");
	if (opts)
		r->o = *opts;
	if (!r->o.workers)
		r->o.workers = VMB_REMOTE_WORKERS;
	if (!r->o.cache_dir) {
		if (vmb_remote_default_cache(dir, sizeof(dir)) < 0) {
			free(r);
			return vmb_err_set(err, ENAMETOOLONG, "the default cache directory's "
					   "name is too long");
		}
		r->cache_dir = strdup(dir);
	} else {
		r->cache_dir = strdup(r->o.cache_dir);
	}
	r->cafile = r->o.cafile ? strdup(r->o.cafile) : NULL;
	r->pubkey = r->o.pubkey ? strdup(r->o.pubkey) : NULL;
	r->endpoint = r->o.endpoint ? strdup(r->o.endpoint) : NULL;
	if (!r->cache_dir || (r->o.cafile && !r->cafile) || (r->o.pubkey && !r->pubkey) ||
	    (r->o.endpoint && !r->endpoint)) {
		free(r->cache_dir);
		free(r->cafile);
		free(r->pubkey);
		free(r->endpoint);
		free(r);
		return vmb_err_set(err, ENOMEM, "out of memory");
	}
	r->o.cache_dir = r->cache_dir;
	r->o.cafile = r->cafile;
	r->o.pubkey = r->pubkey;
	r->o.endpoint = r->endpoint;
	r->log = log;
	r->started = time(NULL);
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	pthread_cond_init(&r->kcv, NULL);
	pthread_cond_init(&r->icv, NULL);
	*out = r;
	return 0;
}

void vmb_remote_cancel(struct vmb_remote *r)
{
	if (!r)
		return;
	pthread_mutex_lock(&r->mu);
	r->cancelled = 1;
	for (struct fetcher_ent *e = r->fe; e; e = e->next)
		vmb_fetcher_cancel(e->f);
	pthread_mutex_unlock(&r->mu);
}

void vmb_remote_close(struct vmb_remote *r)
{
	size_t i;

	if (!r)
		return;
	pthread_mutex_lock(&r->mu);
	r->stop = 1;
	pthread_cond_broadcast(&r->cv);
	/* a worker waiting for the network (hard mode) gives up now */
	for (struct fetcher_ent *e = r->fe; e; e = e->next)
		vmb_fetcher_cancel(e->f);
	while (r->th_starting)   /* vmb_remote_start_workers is creating them */
		pthread_cond_wait(&r->icv, &r->mu);
	pthread_mutex_unlock(&r->mu);
	for (i = 0; i < r->nth; i++)
		pthread_join(r->th[i], NULL);
	free(r->th);
	/* items still queued: their references go */
	while (r->qn) {
		struct work w = r->q[r->qhead];

		r->qhead = (r->qhead + 1) % VMB_REMOTE_QUEUE;
		r->qn--;
		vmb_base_put(vmb_rimage_base(w.ri));
	}
	/* the kept images (nothing loads any more: every caller is gone) */
	for (i = 0; i < r->nkept; i++) {
		vmb_base_put(r->kept[i].b);
		free(r->kept[i].url);
	}
	free(r->kept);
	free(r->top_url);
	free(r->top_buf);
	while (r->fe) {
		struct fetcher_ent *e = r->fe;

		r->fe = e->next;
		vmb_fetcher_close(e->f);
		free(e->url);
		free(e);
	}
	vmb_cache_close(r->cache);
	pthread_cond_destroy(&r->cv);
	pthread_cond_destroy(&r->kcv);
	pthread_cond_destroy(&r->icv);
	pthread_mutex_destroy(&r->mu);
	free(r->cache_dir);
	free(r->cafile);
	free(r->pubkey);
	free(r->endpoint);
	free(r);
}

const struct vmb_remote_opts *vmb_remote_opts(const struct vmb_remote *r)
{
	return &r->o;
}

const struct vmb_log *vmb_remote_log(const struct vmb_remote *r)
{
	return r->log;
}

const char *vmb_remote_cache_dir(const struct vmb_remote *r)
{
	return r->cache_dir;
}

static int mkdir_p(const char *path, struct vmb_err *err)
{
	char buf[PATH_MAX];
	size_t at = 0;
	int r;

	/* path itself too (the '/' added); each directory made durable in its parent,
	 * best effort, as for the other directories of the cache */
	if (snprintf(buf, sizeof(buf), "%s/", path) >= (int)sizeof(buf))
		return vmb_err_set(err, ENAMETOOLONG, "path too long: '%s'", path);
	r = vmb_mkdir_parents(buf, 0, &at);
	if (r < 0)
		return vmb_err_sys(err, -r, "cannot create '%.*s'", (int)at, buf);
	return 0;
}

int vmb_remote_cache(struct vmb_remote *r, struct vmb_cache **out, struct vmb_err *err)
{
	struct vmb_cache_opts co = { 0 };
	struct vmb_cache *c = NULL;
	int rc = 0;

	/* the readers' path: once open, the cache stays until the context closes */
	*out = __atomic_load_n(&r->cache, __ATOMIC_ACQUIRE);
	if (*out)
		return 0;
	pthread_mutex_lock(&r->mu);
	if (!r->cache) {
		vmb_cache_opts_default(&co);
		if (r->o.cache_max)
			co.max_bytes = r->o.cache_max;
		co.no_pause = r->o.cache_no_pause;
		co.log = r->log;
		/* soft: a fill of another process (stopped?) is waited for as long as
		 * this process's fetcher waits for a connection and a stalled transfer,
		 * then the object is fetched here; hard mode waits (as for the network) */
		co.fill_wait_ms = r->o.hard ? 0 : (unsigned)(10000 + 1000 * (r->o.timeout_s > 0 ?
								     r->o.timeout_s : 15));
		rc = vmb_cache_open(r->cache_dir, &co, &c, err);
		__atomic_store_n(&r->cache, c, __ATOMIC_RELEASE);
	}
	*out = r->cache;
	pthread_mutex_unlock(&r->mu);
	return rc;
}

/* The options of this context's fetchers. */
static void fetch_opts(const struct vmb_remote *r, const char *url,
		       struct vmb_fetch_opts *fo)
{
	vmb_fetch_opts_default(fo);
	fo->hard = r->o.hard;
	fo->cafile = r->cafile;
	fo->log = r->log;
	if (!strncmp(url, "s3://", 5))
		fo->endpoint = r->endpoint;
	if (r->o.timeout_s)
		fo->low_speed_time_s = r->o.timeout_s;
}

static struct vmb_fetcher *fetcher_find(struct vmb_remote *r, const char *url)
{
	for (struct fetcher_ent *e = __atomic_load_n(&r->fe, __ATOMIC_ACQUIRE); e; e = e->next)
		if (!strcmp(e->url, url))
			return e->f;
	return NULL;
}

int vmb_remote_fetcher(struct vmb_remote *r, const char *url, struct vmb_fetcher **out,
		       struct vmb_err *err)
{
	struct vmb_fetch_opts fo;
	struct fetcher_ent *e;
	int rc = 0;

	*out = NULL;
	if (r->o.offline)
		return vmb_err_set(err, ENETUNREACH, "cannot fetch from '%s': offline", url);
	if ((*out = fetcher_find(r, url)))
		return 0;   /* the readers' path: no lock */
	pthread_mutex_lock(&r->mu);
	if ((*out = fetcher_find(r, url)))
		goto out;
	e = calloc(1, sizeof(*e));
	if (!e || !(e->url = strdup(url))) {
		free(e);
		rc = vmb_err_set(err, ENOMEM, "out of memory");
		goto out;
	}
	fetch_opts(r, url, &fo);
	rc = vmb_fetcher_open(url, &fo, &e->f, err);
	if (rc) {
		free(e->url);
		free(e);
		goto out;
	}
	if (r->cancelled)
		vmb_fetcher_cancel(e->f);
	e->next = r->fe;
	__atomic_store_n(&r->fe, e, __ATOMIC_RELEASE);
	*out = e->f;
out:
	pthread_mutex_unlock(&r->mu);
	return rc;
}

void vmb_remote_warm(struct vmb_remote *r, const char *url)
{
	struct vmb_fetcher *f;
	struct vmb_err e = { 0 };

	if (vmb_remote_fetcher(r, url, &f, &e) == 0)
		vmb_fetcher_warm(f, "index");
}

int vmb_remote_url_norm(const char *in, char *out, size_t len, struct vmb_err *err)
{
	char abs[PATH_MAX];
	size_t n;

	if (!strncmp(in, "http://", 7) || !strncmp(in, "https://", 8) ||
	    !strncmp(in, "s3://", 5) || !strncmp(in, "s3+http://", 10) ||
	    !strncmp(in, "s3+https://", 11)) {
		int rc = vmb_fetch_url_no_userinfo(in, err);

		if (rc)
			return rc;
		n = strlen(in);
		if (n >= len)
			return vmb_err_set(err, ENAMETOOLONG, "URL too long");
		memcpy(out, in, n + 1);
	} else {
		const char *p = !strncmp(in, "file://", 7) ? in + 7 : in;

		if (strstr(in, "://") && p == in)
			return vmb_err_set(err, EINVAL, "'%s': unknown URL scheme (file://, "
					   "http://, https:// or s3://)", in);
		if (!*p)
			return vmb_err_set(err, EINVAL, "'%s': no path", in);
		if (p[0] == '/') {
			if (snprintf(abs, sizeof(abs), "%s", p) >= (int)sizeof(abs))
				return vmb_err_set(err, ENAMETOOLONG, "path too long: '%s'", p);
		} else if (!realpath(p, abs)) {
			return vmb_err_sys(err, errno, "cannot resolve '%s'", p);
		}
		if (snprintf(out, len, "file://%s", abs) >= (int)len)
			return vmb_err_set(err, ENAMETOOLONG, "URL too long");
	}
	n = strlen(out);
	while (n > 1 && out[n - 1] == '/' && out[n - 2] != '/')
		out[--n] = '\0';
	return 0;
}

/* ---- files of the cache directory that this module owns ---- */

static int write_atomic(const char *dir, const char *name, const void *buf, size_t len,
			struct vmb_err *err)
{
	char tmp[PATH_MAX + 160], path[PATH_MAX + 96];
	unsigned rnd = 0;
	int fd, rc = 0, dfd;
	size_t done;

	rc = mkdir_p(dir, err);
	if (rc)
		return rc;
	if (getrandom(&rnd, sizeof(rnd), 0) < 0)
		rnd = (unsigned)getpid();
	snprintf(tmp, sizeof(tmp), "%s/.%s.%d.%08x", dir, name, (int)getpid(), rnd);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return vmb_err_sys(err, errno, "cannot create '%s'", tmp);
	rc = vmb_pwrite_full(fd, buf, len, 0, &done);
	if (rc < 0)
		rc = vmb_err_sys(err, -rc, "cannot write '%s'", tmp);
	else if (fsync(fd) < 0)
		rc = vmb_err_sys(err, errno, "cannot sync '%s'", tmp);
	close(fd);
	if (!rc && rename(tmp, path) < 0)
		rc = vmb_err_sys(err, errno, "cannot rename '%s'", tmp);
	if (rc) {
		unlink(tmp);
		return rc;
	}
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return 0;
}

static int read_whole(const char *path, size_t max, void **buf, size_t *len)
{
	struct stat st;
	ssize_t got;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW), rc = 0;

	*buf = NULL;
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > max) {
		close(fd);
		return -EINVAL;
	}
	*buf = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!*buf) {
		close(fd);
		return -ENOMEM;
	}
	got = vmb_read_full(fd, *buf, (size_t)st.st_size);
	if (got < 0) {
		rc = (int)got;
		free(*buf);
		*buf = NULL;
	} else {
		*len = (size_t)got;
	}
	close(fd);
	return rc;
}

/* ---- metadata objects ---- */

static __thread int meta_local_only, meta_soft, meta_mismatch;

void vmb_remote_meta_local_only(int on)
{
	meta_local_only = on;
}

void vmb_remote_meta_soft(int on)
{
	meta_soft = on;
}

int vmb_remote_meta_mismatched(void)
{
	return meta_mismatch;
}

/* One GET of a metadata object into *b (grown as needed), its SHA-256 into got:
 * its length, or -errno. Most objects fit in VMB_META_FIRST (the image index of a
 * 32 GiB image with 256 KiB chunks is 4 MiB; the pages of a larger buffer are
 * never touched). A larger one is asked its length (HEAD) and fetched once more,
 * exactly: not in growing buffers, each try a transfer. */
static ssize_t fetch_meta(struct vmb_fetcher *f, const char *opath, size_t max, void **b,
			  uint8_t got[32], struct vmb_err *err)
{
	ssize_t n;

	for (size_t cap = max < VMB_META_FIRST ? max : VMB_META_FIRST;;) {
		void *nb = realloc(*b, cap);
		uint64_t olen = 0;
		struct vmb_err herr;

		if (!nb)
			return vmb_err_set(err, ENOMEM, "out of memory fetching an object");
		*b = nb;
		/* the SHA-256 as the bytes come; soft: vmb_remote_meta_soft */
		n = vmb_fetch_get_sha(f, opath, *b, cap, got, meta_soft, err);
		if (n != -EFBIG || cap == max)
			return n;
		vmb_err_clear(&herr);
		if (vmb_fetch_head(f, opath, &olen, &herr) == 0 && olen > max)
			/* refused before a byte more is fetched */
			return vmb_err_set(err, EFBIG, "the object is %llu bytes, more than the "
					   "%zu it may have", (unsigned long long)olen, max);
		if (olen > cap && olen <= max)
			cap = (size_t)olen;
		else
			cap = max;   /* no length: the most an object of its kind may have */
	}
}

int vmb_remote_meta(struct vmb_remote *r, const char *url, const uint8_t digest[32],
		    size_t max, void **buf, size_t *len, struct vmb_err *err)
{
	char hex[65], dir[PATH_MAX], path[PATH_MAX + 96], opath[96];
	struct vmb_fetcher *f;
	uint8_t got[32];
	void *b = NULL;
	ssize_t n;
	int rc, lfd = -1;
	struct vmb_cache *c;

	meta_mismatch = 0;
	*buf = NULL;
	*len = 0;
	rc = vmb_remote_cache(r, &c, err);   /* CACHE made a cache before meta/ goes in */
	if (rc)
		return rc;
	vmb_sha256_hex(digest, hex);
	snprintf(dir, sizeof(dir), "%s/meta/%.2s", r->cache_dir, hex);
	snprintf(path, sizeof(path), "%s/%s", dir, hex);
	if (read_whole(path, max, &b, len) == 0) {
		if (vmb_sha256(b, *len, got, NULL) == 0 && !memcmp(got, digest, 32)) {
			vmb_cache_meta_used(c, digest, 0);   /* LRU: a hit */
			*buf = b;
			return 0;
		}
		free(b);
		b = NULL;
		unlink(path);   /* damaged: fetched again */
	}
	if (meta_local_only)
		return vmb_err_set(err, ENOENT, "object %s is not cached (not fetched here)",
				   hex);
	/* one fetch: the other callers, in any process, wait and then read it */
	rc = vmb_cache_object_lock(c, digest, &lfd, err);
	if (rc)
		return rc;
	if (read_whole(path, max, &b, len) == 0) {
		if (vmb_sha256(b, *len, got, NULL) == 0 && !memcmp(got, digest, 32)) {
			vmb_cache_object_unlock(lfd);
			*buf = b;
			return 0;
		}
		free(b);
		b = NULL;
		*len = 0;
	}
	rc = vmb_remote_fetcher(r, url, &f, err);
	if (rc) {
		vmb_err_prefix(err, "object %s is not cached", hex);
		goto out;
	}
	vmb_pub_object_path(digest, opath);
	/* bytes that do not match their digest are fetched once more (a proxy or a
	 * connection may have damaged them), then the fetch fails */
	for (int attempt = 0; attempt < 2; attempt++) {
		n = fetch_meta(f, opath, max, &b, got, err);
		if (n < 0) {
			meta_mismatch = 0;
			rc = (int)n;
			if (rc == -EFBIG)
				vmb_err_prefix(err, "object %s from '%s' is larger than the %zu "
					       "bytes allowed", hex, url, max);
			goto out;
		}
		if (!memcmp(got, digest, 32))
			break;
		meta_mismatch = 1;
		rc = vmb_err_set(err, EIO, "object %s fetched from '%s' does not match its "
				 "digest%s", hex, url, attempt ? " (twice)" : "");
	}
	if (memcmp(got, digest, 32))
		goto out;
	rc = 0;   /* right bytes (maybe at the second try) */
	if (vmb_cache_max_bytes(c) && (uint64_t)n > vmb_cache_max_bytes(c)) {
		/* more than the whole cache may hold: used from memory, not kept */
		vmb_log_msg(r->log, "object %s from '%s' (%zd bytes) is larger than the cache "
			    "'%s' may hold (cache_max=%llu): used, not kept", hex, url, n,
			    r->cache_dir, (unsigned long long)vmb_cache_max_bytes(c));
	} else {
		/* meta/ and meta/<aa> with the cache's modes, whatever the umask */
		rc = vmb_cache_meta_dir(c, digest, err);
		if (!rc)
			rc = write_atomic(dir, hex, b, (size_t)n, err);
		if (rc)
			goto out;
		vmb_cache_meta_used(c, digest, (uint64_t)n);
	}
	*buf = realloc(b, n ? (size_t)n : 1) ?: b;
	*len = (size_t)n;
	b = NULL;
out:
	vmb_cache_object_unlock(lfd);
	free(b);
	return rc;
}

int vmb_remote_meta_cached(struct vmb_remote *r, const uint8_t digest[32])
{
	char hex[65], path[PATH_MAX + 96];
	struct stat st;

	vmb_sha256_hex(digest, hex);
	snprintf(path, sizeof(path), "%s/meta/%.2s/%s", r->cache_dir, hex, hex);
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* ---- open images kept ---- */

static struct kept *kept_find(struct vmb_remote *r, const char *url, const uint8_t digest[32])
{
	for (size_t i = 0; i < r->nkept; i++)
		if (!memcmp(r->kept[i].digest, digest, 32) && !strcmp(r->kept[i].url, url))
			return &r->kept[i];
	return NULL;
}

int vmb_remote_image_claim(struct vmb_remote *r, const char *url, const uint8_t digest[32],
			   struct vmb_base **out)
{
	struct kept *k;
	int rc = 0;

	*out = NULL;
	pthread_mutex_lock(&r->mu);
	while ((k = kept_find(r, url, digest)) && !k->b)
		pthread_cond_wait(&r->kcv, &r->mu);   /* another thread loads it */
	if (k) {
		vmb_base_get(k->b);
		k->used = ++r->kclock;
		*out = k->b;
		rc = 1;
	} else {
		/* ours to load; without memory for the entry, loaded and not kept */
		struct kept *nk = realloc(r->kept, (r->nkept + 1) * sizeof(*nk));
		char *u = strdup(url);

		if (nk)
			r->kept = nk;
		if (nk && u) {
			nk[r->nkept] = (struct kept){ .url = u };
			memcpy(nk[r->nkept].digest, digest, 32);
			r->nkept++;
		} else {
			free(u);
		}
	}
	pthread_mutex_unlock(&r->mu);
	return rc;
}

void vmb_remote_image_done(struct vmb_remote *r, const char *url, const uint8_t digest[32],
			   struct vmb_base *b, uint64_t bytes)
{
	struct vmb_base *drop[VMB_REMOTE_KEEP + 1];
	size_t ndrop = 0, loaded = 0, i;
	struct kept *k;

	pthread_mutex_lock(&r->mu);
	if (b)
		r->st.index_loads++;
	k = kept_find(r, url, digest);
	if (k && !k->b) {
		if (b) {
			vmb_base_get(b);
			k->b = b;
			k->bytes = bytes;
			k->used = ++r->kclock;
			r->kbytes += bytes;
		} else {
			free(k->url);
			*k = r->kept[--r->nkept];
		}
	}
	/* over the limits: the least recently opened go (never the one just loaded,
	 * nor one still loading) */
	for (i = 0; i < r->nkept; i++)
		loaded += r->kept[i].b != NULL;
	while (loaded > 1 && (loaded > VMB_REMOTE_KEEP || r->kbytes > VMB_REMOTE_KEEP_BYTES) &&
	       ndrop < VMB_REMOTE_KEEP + 1) {
		size_t v = SIZE_MAX;

		for (i = 0; i < r->nkept; i++)
			if (r->kept[i].b && r->kept[i].b != b &&
			    (v == SIZE_MAX || r->kept[i].used < r->kept[v].used))
				v = i;
		if (v == SIZE_MAX)
			break;
		drop[ndrop++] = r->kept[v].b;
		r->kbytes -= r->kept[v].bytes;
		free(r->kept[v].url);
		r->kept[v] = r->kept[--r->nkept];
		loaded--;
	}
	pthread_cond_broadcast(&r->kcv);
	pthread_mutex_unlock(&r->mu);
	for (i = 0; i < ndrop; i++)
		vmb_base_put(drop[i]);
}

/* ---- objects through the cache ---- */

int vmb_remote_fetch_object(struct vmb_remote *r, const char *url, const uint8_t digest[32],
			    uint64_t len, void **bufp, size_t *got, uint8_t sha[32], int soft,
			    struct vmb_err *err)
{
	struct vmb_fetcher *f;
	char path[96];
	void *buf;
	ssize_t n;
	int rc;

	*bufp = NULL;
	*got = 0;
	rc = vmb_remote_fetcher(r, url, &f, err);
	if (rc)
		return rc;
	buf = vmb_buf_get((size_t)len);   /* warm memory (base/bufpool.h) */
	if (!buf)
		return vmb_err_set(err, ENOMEM, "out of memory fetching a chunk");
	vmb_pub_object_path(digest, path);
	vmb_remote_inflight(r, 1);
	n = vmb_fetch_get_sha(f, path, buf, (size_t)len, sha, soft, err);
	vmb_remote_inflight(r, -1);
	if (n >= 0 && (uint64_t)n != len)
		n = vmb_err_set(err, EIO, "object '%s' of '%s' has %zd bytes, expected %" PRIu64,
				path, url, n, len);
	if (n < 0) {
		vmb_buf_put(buf);
		return (int)n;
	}
	*bufp = buf;
	*got = (size_t)n;
	return 0;
}

struct objfill {
	struct vmb_remote *r;
	const char *url;
	uint64_t fetched;
};

static int obj_fill(void *arg, const uint8_t digest[32], uint64_t len, void **buf,
		    size_t *got, uint8_t sha[32], int *have_sha, struct vmb_err *err)
{
	struct objfill *o = arg;
	int rc = vmb_remote_fetch_object(o->r, o->url, digest, len, buf, got, sha, 0, err);

	*have_sha = rc == 0;
	if (rc == 0)
		o->fetched += len;
	return rc;
}

int vmb_remote_object(struct vmb_remote *r, const char *url, const uint8_t digest[32],
		      uint64_t len, int *fd, int *hit, struct vmb_err *err)
{
	struct objfill o = { .r = r, .url = url };
	struct vmb_cache *c;
	int rc = vmb_remote_cache(r, &c, err);

	if (rc)
		return rc;
	rc = vmb_cache_get_mem(c, digest, len, obj_fill, &o, fd, hit, err);
	if (!rc)
		vmb_remote_count(r, *hit, o.fetched);
	return rc;
}

/* ---- the top index ---- */

static int load_pubkey(const char *file, uint8_t key[32], struct vmb_err *err)
{
	void *buf;
	size_t len = 0, i;
	int rc = read_whole(file, 4096, &buf, &len);
	const char *p;

	if (rc)
		return vmb_err_set(err, rc == -EINVAL ? EINVAL : -rc, "cannot read the public "
				   "key '%s': %s", file, strerror(rc == -EINVAL ? EINVAL : -rc));
	p = buf;
	if (len == 32) {
		memcpy(key, buf, 32);
		free(buf);
		return 0;
	}
	while (len && (p[len - 1] == '\n' || p[len - 1] == '\r' || p[len - 1] == ' '))
		len--;
	if (len == 64) {
		for (i = 0; i < 32; i++) {
			unsigned v;

			if (sscanf(p + 2 * i, "%2x", &v) != 1)
				break;
			key[i] = (uint8_t)v;
		}
		if (i == 32) {
			free(buf);
			return 0;
		}
	}
	free(buf);
	return vmb_sign_pub_load(file, key, err);
}

void vmb_remote_top_once(struct vmb_remote *r)
{
	pthread_mutex_lock(&r->mu);
	r->top_once = 1;
	pthread_mutex_unlock(&r->mu);
}

/* Under top_once: keep the first index of url (buf, len bytes; copied). */
static void top_keep(struct vmb_remote *r, const char *url, const void *buf, size_t len,
		     int stale)
{
	char *u = NULL;
	void *b = NULL;

	pthread_mutex_lock(&r->mu);
	if (r->top_once && !r->top_url && (u = strdup(url)) && (b = malloc(len ? len : 1))) {
		memcpy(b, buf, len);
		r->top_url = u;
		r->top_buf = b;
		r->top_len = len;
		r->top_stale = stale;
		u = NULL;
		b = NULL;
	}
	pthread_mutex_unlock(&r->mu);
	free(u);
	free(b);
}

/* Save the index x of url just fetched (bytes buf, len bytes) in its slot, unless it
 * would roll the slot back: an index saved there that verifies with the key kp and
 * has a higher generation than x, or the same one with other bytes (the encoding is
 * canonical and Ed25519 deterministic: one content, one text), refuses x with
 * -ESTALE, and the saved one stays. Without a key (nothing is authenticated; a
 * forger writes any generation) x is used and saved, with a log line. A saved index
 * that does not verify with kp (another key, none, damaged) is not compared. The
 * check and the save are one step per URL, across processes (the object lock of the
 * URL's hash, the slot's name): two fetches that got different generations (a CDN
 * that lags) cannot leave the older one saved. */
static int top_save(struct vmb_remote *r, struct vmb_cache *c, const char *url,
		    const uint8_t *kp, const struct vmb_pub_index *x, const void *buf,
		    size_t len, struct vmb_err *err)
{
	uint8_t ud[32];
	char hex[65];
	struct vmb_pub_index sx;
	struct vmb_err serr;
	void *sbuf = NULL;
	size_t slen = 0;
	int lfd = -1, rc;

	rc = vmb_sha256(url, strlen(url), ud, err);
	if (!rc)
		rc = vmb_cache_object_lock(c, ud, &lfd, err);
	if (rc)
		return rc;
	vmb_sha256_hex(ud, hex);
	vmb_err_clear(&serr);
	if (vmb_cache_url_load(c, url, &sbuf, &slen, NULL) == 0 &&
	    vmb_pub_index_decode(sbuf, slen, kp, &sx, &serr) == 0) {
		int older = x->generation < sx.generation;
		int other = x->generation == sx.generation &&
			    (len != slen || memcmp(buf, sbuf, len));

		if ((older || other) && kp)
			rc = vmb_err_set(err, ESTALE, "the index of '%s' has generation %" PRIu64
					 ", %s the verified index saved for it in the cache "
					 "(generation %" PRIu64 ")%s: refused as a rollback (an old "
					 "index served again), the saved one kept; if the store was "
					 "published again from scratch, remove %s/urls/%s to accept "
					 "it", url,
					 x->generation, older ? "older than" : "the same as",
					 sx.generation, older ? "" : " but other content",
					 r->cache_dir, hex);
		else if (older || other)
			vmb_log_msg(r->log, "the index of '%s' has generation %" PRIu64 ", %s the "
				    "one saved in the cache (generation %" PRIu64 ")%s; used and "
				    "saved, as no public key (pubkey=) says which is genuine",
				    url, x->generation, older ? "older than" : "the same as",
				    sx.generation, older ? "" : " but other content");
		vmb_pub_index_free(&sx);
	}
	if (!rc)
		rc = vmb_cache_url_save(c, url, buf, len, err);
	vmb_cache_object_unlock(lfd);
	free(sbuf);
	return rc;
}

int vmb_remote_top(struct vmb_remote *r, const char *url, struct vmb_pub_index *out,
		   int *stale, struct vmb_err *err)
{
	uint8_t key[32], *kp = NULL;
	struct vmb_fetcher *f;
	struct vmb_cache *c;
	struct vmb_err ferr;
	const void *kept = NULL;
	void *buf = NULL;
	size_t len = 0;
	ssize_t n;
	int rc;

	*stale = 0;
	memset(out, 0, sizeof(*out));
	if (r->pubkey) {
		rc = load_pubkey(r->pubkey, key, err);
		if (rc)
			return rc;
		kp = key;
	}
	/* the index this context got first (top_once; set once, never changed) */
	pthread_mutex_lock(&r->mu);
	if (r->top_url && !strcmp(r->top_url, url)) {
		kept = r->top_buf;
		len = r->top_len;
		*stale = r->top_stale;
	}
	pthread_mutex_unlock(&r->mu);
	if (kept) {
		rc = vmb_pub_index_decode(kept, len, kp, out, err);
		return rc ? vmb_err_prefix(err, "the index of '%s'", url) : 0;
	}
	rc = vmb_remote_cache(r, &c, err);
	if (rc)
		return rc;
	vmb_err_clear(&ferr);
	rc = vmb_remote_fetcher(r, url, &f, &ferr);
	if (!rc) {
		buf = malloc(VMB_TOP_MAX);
		if (!buf)
			return vmb_err_set(err, ENOMEM, "out of memory");
		/* soft in hard mode too (vmb_fetch_req.soft): hard mode is for data, and
		 * a mount with the server away must not wait forever for the index when
		 * a saved one will do */
		n = vmb_fetch_get_sha(f, VMB_PUB_INDEX_FILE, buf, VMB_TOP_MAX, NULL, 1, &ferr);
		if (n >= 0) {
			rc = vmb_pub_index_decode(buf, (size_t)n, kp, out, err);
			if (rc) {
				free(buf);
				return vmb_err_prefix(err, "the index of '%s'", url);
			}
			rc = top_save(r, c, url, kp, out, buf, (size_t)n, err);
			if (rc)
				vmb_pub_index_free(out);
			else
				top_keep(r, url, buf, (size_t)n, 0);
			free(buf);
			return rc;
		}
		rc = (int)n;
		free(buf);
		buf = NULL;
	}
	/* The saved index stands in for a server that cannot be reached, not for one
	 * that answers: refused credentials, or (over the network) no such store. */
	if (rc == -EACCES || rc == -EPERM || (rc == -ENOENT && strncmp(url, "file:", 5)))
		return vmb_err_set(err, -rc, "%s (the index saved in the cache is used only "
				   "when the server cannot be reached)", ferr.msg);
	if (vmb_cache_url_load(c, url, &buf, &len, NULL) != 0)
		return vmb_err_set(err, ferr.code ? ferr.code : EIO, "%s (and no index of it "
				   "was saved in the cache %s)", ferr.msg, r->cache_dir);
	rc = vmb_pub_index_decode(buf, len, kp, out, err);
	if (!rc)
		top_keep(r, url, buf, len, 1);
	free(buf);
	if (rc)
		return vmb_err_prefix(err, "the saved index of '%s'", url);
	*stale = 1;
	vmb_log_msg(r->log, "using the saved index of '%s': %s", url, ferr.msg);
	return 0;
}

/* ---- readahead workers ---- */

static void *worker(void *arg)
{
	struct vmb_remote *r = arg;

	vmb_fetch_set_background(1);   /* readers' own fetches go first */
	pthread_mutex_lock(&r->mu);
	for (;;) {
		struct work w;
		struct vmb_err e;

		while (!r->stop && !r->qn)
			pthread_cond_wait(&r->cv, &r->mu);
		if (r->stop)
			break;
		w = r->q[r->qhead];
		r->qhead = (r->qhead + 1) % VMB_REMOTE_QUEUE;
		r->qn--;
		r->busy++;
		pthread_mutex_unlock(&r->mu);
		vmb_err_clear(&e);
		/* failures are the reader's to report when it gets there */
		(void)vmb_rimage_fill(w.ri, w.chunk, NULL, &e);
		vmb_base_put(vmb_rimage_base(w.ri));
		pthread_mutex_lock(&r->mu);
		if (--r->busy == 0 && !r->qn)
			pthread_cond_broadcast(&r->icv);
	}
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

void vmb_remote_start_workers(struct vmb_remote *r)
{
	pthread_t *th;
	unsigned n = 0;

	pthread_mutex_lock(&r->mu);
	if (r->th || r->th_starting || r->stop || r->o.offline) {
		pthread_mutex_unlock(&r->mu);
		return;
	}
	r->th_starting = 1;
	pthread_mutex_unlock(&r->mu);
	/* created without the mutex: the first reads need it meanwhile */
	th = calloc(r->o.workers, sizeof(*th));
	if (th)
		for (n = 0; n < r->o.workers; n++)
			if (pthread_create(&th[n], NULL, worker, r))
				break;
	pthread_mutex_lock(&r->mu);
	r->nth = n;
	__atomic_store_n(&r->th, th, __ATOMIC_RELEASE);
	r->th_starting = 0;
	pthread_cond_broadcast(&r->icv);
	pthread_mutex_unlock(&r->mu);
}

int vmb_remote_queue(struct vmb_remote *r, struct vmb_rimage *ri, uint64_t chunk)
{
	int rc = 0;

	if (!__atomic_load_n(&r->th, __ATOMIC_ACQUIRE))
		vmb_remote_start_workers(r);
	pthread_mutex_lock(&r->mu);
	if (r->stop || r->o.offline) {
		rc = -EAGAIN;
		goto out;
	}
	if (!r->nth || r->qn == VMB_REMOTE_QUEUE ||
	    (r->o.queue_max && r->qn >= r->o.queue_max)) {
		rc = -EAGAIN;
		goto out;
	}
	for (size_t k = 0; k < r->qn; k++) {
		struct work *w = &r->q[(r->qhead + k) % VMB_REMOTE_QUEUE];

		if (w->ri == ri && w->chunk == chunk)
			goto out;   /* queued already */
	}
	vmb_base_get(vmb_rimage_base(ri));
	r->q[(r->qhead + r->qn) % VMB_REMOTE_QUEUE] = (struct work){ ri, chunk };
	r->qn++;
	r->st.readahead++;
	pthread_cond_signal(&r->cv);
out:
	pthread_mutex_unlock(&r->mu);
	return rc;
}

int vmb_remote_idle(struct vmb_remote *r, unsigned timeout_ms)
{
	struct timespec until;
	int rc = 0;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&r->mu);
	while ((r->qn || r->busy) && !r->stop && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&r->icv, &r->mu, &until);
	rc = (r->qn || r->busy) ? -ETIMEDOUT : 0;
	pthread_mutex_unlock(&r->mu);
	return rc;
}

/* ---- stats ---- */

void vmb_remote_count(struct vmb_remote *r, int hit, uint64_t fetched_bytes)
{
	/* atomics: every chunk read comes here, and r->mu is the queue's */
	__atomic_add_fetch(&r->st.reads, 1, __ATOMIC_RELAXED);
	if (hit)
		__atomic_add_fetch(&r->st.hits, 1, __ATOMIC_RELAXED);
	if (fetched_bytes) {
		__atomic_add_fetch(&r->st.fetches, 1, __ATOMIC_RELAXED);
		__atomic_add_fetch(&r->st.fetch_bytes, fetched_bytes, __ATOMIC_RELAXED);
	}
}

void vmb_remote_count_error(struct vmb_remote *r, const char *msg)
{
	pthread_mutex_lock(&r->mu);
	r->st.errors++;
	snprintf(r->st.last_error, sizeof(r->st.last_error), "%.255s", msg);
	pthread_mutex_unlock(&r->mu);
}

void vmb_remote_inflight(struct vmb_remote *r, int delta)
{
	__atomic_add_fetch(&r->st.inflight, (uint64_t)(int64_t)delta, __ATOMIC_RELAXED);
}

void vmb_remote_stats(struct vmb_remote *r, struct vmb_remote_stats *s)
{
	struct vmb_cache_stats cs;
	struct vmb_cache *c;

	pthread_mutex_lock(&r->mu);
	*s = r->st;
	/* the counters kept with atomics */
	s->reads = __atomic_load_n(&r->st.reads, __ATOMIC_RELAXED);
	s->hits = __atomic_load_n(&r->st.hits, __ATOMIC_RELAXED);
	s->fetches = __atomic_load_n(&r->st.fetches, __ATOMIC_RELAXED);
	s->fetch_bytes = __atomic_load_n(&r->st.fetch_bytes, __ATOMIC_RELAXED);
	s->inflight = __atomic_load_n(&r->st.inflight, __ATOMIC_RELAXED);
	s->images_kept = 0;
	for (size_t i = 0; i < r->nkept; i++)
		s->images_kept += r->kept[i].b != NULL;
	s->seconds = (uint64_t)(time(NULL) - r->started);
	s->queued = r->qn + r->busy;
	c = r->cache;
	pthread_mutex_unlock(&r->mu);
	if (c) {
		vmb_cache_stats(c, &cs);
		s->cache_bytes = cs.bytes;
		s->cache_chunks = cs.chunks;
		s->cache_pending_bytes = cs.pending_bytes;
	}
}
