/* cache_evict.c - LRU eviction under max_bytes and min_free_bytes, and the
 * background thread that runs it (see cache.h).
 *
 * One evicter at a time per CACHE: it holds lock/evict (never removed) for its whole
 * run. It lists chunks/ and meta/ (the remote layer's manifests and image indexes,
 * one LRU with the chunks), then removes the oldest objects (by mtime) until the
 * limits hold, skipping pinned ones (pins/ is read under lock/evict, which vmb_cache_pin
 * also takes) and any whose digest lock is held (being filled or checked: it only
 * tries that lock, never waits). It takes no mutex of the vmb_cache, so readers
 * never wait for it; an open descriptor of a removed object stays readable.
 */
#include "config.h"
#include "remote/cache_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

struct ent {
	uint8_t d[32];
	struct timespec mtime;
	uint64_t size;
	int meta;                 /* an object of meta/ (manifest, image index) */
};

static int ent_cmp(const void *a, const void *b)
{
	const struct ent *x = a, *y = b;

	if (x->mtime.tv_sec != y->mtime.tv_sec)
		return x->mtime.tv_sec < y->mtime.tv_sec ? -1 : 1;
	if (x->mtime.tv_nsec != y->mtime.tv_nsec)
		return x->mtime.tv_nsec < y->mtime.tv_nsec ? -1 : 1;
	return memcmp(x->d, y->d, 32);
}

static int dig_cmp(const void *a, const void *b)
{
	return memcmp(a, b, 32);
}

/* Every object of chunks/ (top: c->chunksfd) or meta/ (names that are not objects
 * are fsck's business), appended to *v. */
static int scan_dir(struct vmb_cache *c, int top, int meta, struct ent **vp, size_t *np,
		    size_t *capp, uint64_t *total, uint64_t *nchunks, struct vmb_err *err)
{
	static struct vmb_ratelimit notdir = VMB_RATELIMIT_INIT;
	const char *kind = meta ? "meta" : "chunks";
	struct ent *v = *vp;
	size_t n = *np, cap = *capp;
	int r = 0;

	for (int i = 0; i < 256 && r == 0; i++) {
		char aa[3];
		int dfd;
		DIR *d;
		struct dirent *e;

		snprintf(aa, sizeof(aa), "%02x", i);
		dfd = openat(top, aa, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
		if (dfd < 0) {
			if (errno == ENOENT)
				continue;
			if (errno == ENOTDIR || errno == ELOOP) {
				/* made since the open, which refuses it: the others are
				 * still evicted (one such entry stopped every pass) */
				vmb_log_limited(c->opts.log, &notdir, "cache '%s': %s/%s is "
						"not a directory: eviction skips it (remove it: "
						"fsck --cache does)", c->path, kind, aa);
				continue;
			}
			r = vmb_err_sys(err, errno, "cache '%s': cannot open %s/%s/", c->path,
					kind, aa);
			break;
		}
		if (!(d = fdopendir(dfd))) {
			r = vmb_err_sys(err, errno, "cache '%s': cannot list %s/%s/", c->path,
					kind, aa);
			close(dfd);
			break;
		}
		while ((e = readdir(d))) {
			struct stat st;
			uint8_t dg[32];

			if (strlen(e->d_name) != 64 || strncmp(e->d_name, aa, 2) != 0 ||
			    vmb_cache_unhex(e->d_name, dg) < 0)
				continue;
			if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
			    !S_ISREG(st.st_mode))
				continue;
			if (n == cap) {
				size_t nc = cap ? 2 * cap : 1024;
				struct ent *nv = realloc(v, nc * sizeof(*v));

				if (!nv) {
					r = vmb_err_set(err, ENOMEM, "out of memory");
					break;
				}
				v = nv;
				cap = nc;
			}
			memcpy(v[n].d, dg, 32);
			v[n].mtime = st.st_mtim;
			v[n].size = (uint64_t)st.st_size;
			v[n].meta = meta;
			*total += v[n].size;
			if (!meta)
				(*nchunks)++;
			n++;
		}
		closedir(d);
	}
	*vp = v;
	*np = n;
	*capp = cap;
	return r;
}

/* meta/ of c, or -1 (none yet: -ENOENT; else -errno). */
static int open_meta(struct vmb_cache *c)
{
	int fd = openat(c->dirfd, "meta", O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);

	return fd < 0 ? -errno : fd;
}

/* Every object of chunks/ and meta/; *nchunks: those of chunks/. */
static int scan(struct vmb_cache *c, int metafd, struct ent **out, size_t *nout,
		uint64_t *total, uint64_t *nchunks, struct vmb_err *err)
{
	struct ent *v = NULL;
	size_t n = 0, cap = 0;
	int r;

	*total = 0;
	*nchunks = 0;
	r = scan_dir(c, c->chunksfd, 0, &v, &n, &cap, total, nchunks, err);
	if (r == 0 && metafd >= 0)
		r = scan_dir(c, metafd, 1, &v, &n, &cap, total, nchunks, err);
	if (r < 0) {
		free(v);
		return r;
	}
	*out = v;
	*nout = n;
	return 0;
}

/* Every digest of every pin, sorted. A malformed pin is an error. */
static int load_pins(struct vmb_cache *c, uint8_t (**out)[32], size_t *nout,
		     struct vmb_err *err)
{
	uint8_t (*v)[32] = NULL;
	size_t n = 0, cap = 0;
	int dfd = openat(c->pinsfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC), r = 0;
	struct dirent *e;
	DIR *d;

	if (dfd < 0 || !(d = fdopendir(dfd))) {
		if (dfd >= 0)
			close(dfd);
		return vmb_err_sys(err, errno, "cache '%s': cannot list pins/", c->path);
	}
	while (r == 0 && (e = readdir(d)))
		if (e->d_name[0] != '.')
			r = vmb_cache_pin_read(c, e->d_name, &v, &n, &cap, err);
	closedir(d);
	if (r < 0) {
		free(v);
		return r;
	}
	if (n)
		qsort(v, n, 32, dig_cmp);
	*out = v;
	*nout = n;
	return 0;
}

static uint64_t free_bytes(struct vmb_cache *c)
{
	struct statvfs sv;

	if (fstatvfs(c->chunksfd, &sv) < 0)
		return UINT64_MAX;
	return (uint64_t)sv.f_bavail * sv.f_frsize;
}

/* After a run: when the file system still has less than min_free free, everything
 * that could go has gone (what is left is pinned or in use). Say so once, until a
 * scan finds enough free again: the cache then keeps little or nothing, and reads
 * fetch again what they read a while ago. */
static void short_of_space(struct vmb_cache *c, uint64_t min_free, uint64_t avail,
			   uint64_t left)
{
	if (!min_free || avail >= min_free) {
		c->ev_short = 0;
		return;
	}
	if (c->ev_short)
		return;
	c->ev_short = 1;
	vmb_log_msg(c->opts.log, "cache '%s': its file system has %llu MiB free, less than "
		    "the %llu MiB the cache leaves free; %llu MiB of objects are kept (pinned "
		    "or in use), the rest was removed, and chunks will be fetched again when "
		    "read again", c->path, (unsigned long long)(avail >> 20),
		    (unsigned long long)(min_free >> 20), (unsigned long long)(left >> 20));
}

static int run_evict(struct vmb_cache *c, int wait, struct vmb_err *err)
{
	struct ent *v = NULL;
	uint8_t (*pins)[32] = NULL;
	size_t n = 0, npins = 0;
	uint64_t total = 0, max = c->opts.max_bytes, target = max / 10 * 9 + max % 10 * 9 / 10;
	uint64_t min_free = c->opts.min_free_bytes, avail, nchunks = 0;
	int efd, r, metafd = -1;

	r = vmb_cache_lock_evict(c, wait, &efd, err);
	if (r == -EAGAIN)
		return 0;   /* another evicter runs */
	if (r < 0)
		return r;
	VMB_ATOMIC_STORE(&c->since_scan, 0);
	VMB_ATOMIC_ADD(&c->scans, 1);
	metafd = open_meta(c);
	if (metafd < 0 && metafd != -ENOENT) {
		r = vmb_err_sys(err, -metafd, "cache '%s': cannot open meta/", c->path);
		goto out;
	}
	r = scan(c, metafd, &v, &n, &total, &nchunks, err);
	if (r < 0)
		goto out;
	VMB_ATOMIC_STORE(&c->bytes, total);
	VMB_ATOMIC_STORE(&c->chunks, nchunks);
	avail = min_free ? free_bytes(c) : UINT64_MAX;
	if (!(max && total > max) && !(min_free && avail < min_free)) {
		c->ev_short = 0;
		goto out;
	}
	r = load_pins(c, &pins, &npins, err);
	if (r < 0)
		goto out;
	if (n)
		qsort(v, n, sizeof(*v), ent_cmp);
	for (size_t i = 0; i < n; i++) {
		char rel[VMB_CACHE_REL];
		struct stat st;
		int lfd, top = v[i].meta ? metafd : c->chunksfd;

		if (!(max && total > target) && !(min_free && avail < min_free))
			break;
		if (npins && bsearch(v[i].d, pins, npins, 32, dig_cmp))
			continue;
		vmb_cache_rel(v[i].d, rel);
		if (vmb_cache_lock(c, v[i].d, 0, &lfd, NULL) < 0)
			continue;   /* being filled or checked */
		if (fstatat(top, rel, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			total -= v[i].size;   /* gone already */
		} else if (st.st_mtim.tv_sec == v[i].mtime.tv_sec &&
			   st.st_mtim.tv_nsec == v[i].mtime.tv_nsec &&
			   unlinkat(top, rel, 0) == 0) {
			total -= v[i].size;
			VMB_ATOMIC_ADD(&c->evicted, 1);
			VMB_ATOMIC_SUB(&c->bytes, v[i].size);
			if (!v[i].meta)
				VMB_ATOMIC_SUB(&c->chunks, 1);
			if (min_free)
				avail = free_bytes(c);
		}   /* else touched since the scan: used, keep it */
		vmb_cache_unlock(lfd);
	}
	short_of_space(c, min_free, avail, total);
out:
	free(v);
	free(pins);
	if (metafd >= 0)
		close(metafd);
	close(efd);
	return r;
}

int vmb_cache_usage(struct vmb_cache *c, uint64_t *bytes, uint64_t *chunks,
		    struct vmb_err *err)
{
	struct ent *v = NULL;
	size_t n = 0;
	uint64_t total = 0, nchunks = 0;
	int metafd = open_meta(c), r;

	if (metafd < 0 && metafd != -ENOENT)
		return vmb_err_sys(err, -metafd, "cache '%s': cannot open meta/", c->path);
	r = scan(c, metafd, &v, &n, &total, &nchunks, err);
	free(v);
	if (metafd >= 0)
		close(metafd);
	if (r < 0)
		return r;
	VMB_ATOMIC_STORE(&c->bytes, total);
	VMB_ATOMIC_STORE(&c->chunks, nchunks);
	if (bytes)
		*bytes = total;
	if (chunks)
		*chunks = nchunks;
	return 0;
}

int vmb_cache_evict(struct vmb_cache *c, struct vmb_err *err)
{
	vmb_cache_flush(c);   /* what this process filled is evictable too */
	return run_evict(c, 1, err);
}

static void *evict_main(void *arg)
{
	struct vmb_cache *c = arg;

	pthread_mutex_lock(&c->ev_mu);
	for (;;) {
		struct vmb_err e;

		while (!c->ev_kick && !c->ev_stop)
			pthread_cond_wait(&c->ev_cv, &c->ev_mu);
		if (c->ev_stop)
			break;
		c->ev_kick = 0;
		pthread_mutex_unlock(&c->ev_mu);
		vmb_err_clear(&e);
		if (run_evict(c, 0, &e) < 0)
			vmb_log_msg(c->opts.log, "cache eviction failed: %s", e.msg);
		pthread_mutex_lock(&c->ev_mu);
	}
	pthread_mutex_unlock(&c->ev_mu);
	return NULL;
}

int vmb_cache_evict_start(struct vmb_cache *c)
{
	int r;

	c->ev_kick = 1;   /* a first scan: the counters, and limits a restart may find passed */
	r = pthread_create(&c->ev_thread, NULL, evict_main, c);
	if (r)
		return -r;
	c->ev_started = 1;
	return 0;
}

void vmb_cache_evict_stop(struct vmb_cache *c)
{
	if (!c->ev_started)
		return;
	pthread_mutex_lock(&c->ev_mu);
	c->ev_stop = 1;
	pthread_cond_signal(&c->ev_cv);
	pthread_mutex_unlock(&c->ev_mu);
	pthread_join(c->ev_thread, NULL);
	c->ev_started = 0;
}

void vmb_cache_evict_kick(struct vmb_cache *c)
{
	if (!c->ev_started)
		return;
	pthread_mutex_lock(&c->ev_mu);
	c->ev_kick = 1;
	pthread_cond_signal(&c->ev_cv);
	pthread_mutex_unlock(&c->ev_mu);
}

void vmb_cache_after_fill(struct vmb_cache *c, uint64_t len)
{
	uint64_t since = VMB_ATOMIC_ADD(&c->since_scan, len), max = c->opts.max_bytes;
	uint64_t bytes = VMB_ATOMIC_LOAD(&c->bytes);

	if (!c->ev_started)
		return;

	/* over max by our count (rescanning at most every MiB filled: pins may keep it
	 * over), or others' fills we cannot see: rescan every 5% of max */
	if (max && ((bytes > max && since >= (1u << 20)) || since >= max / 20))
		vmb_cache_evict_kick(c);
	/* short of free space: a scan costs a look at every object, so not after each
	 * fill but after 1 MiB of fills, or 5% of the cache's size if more (when the
	 * space is taken by other files, every scan finds nothing left to remove) */
	else if (c->opts.min_free_bytes && since >= (bytes / 20 > (1u << 20) ? bytes / 20 :
						       (1u << 20)) &&
		 free_bytes(c) < c->opts.min_free_bytes)
		vmb_cache_evict_kick(c);
}

void vmb_cache_meta_used(struct vmb_cache *c, const uint8_t digest[32], uint64_t len)
{
	char rel[VMB_CACHE_REL + 8];
	struct timespec now;
	struct stat st;

	snprintf(rel, sizeof(rel), "meta/");
	vmb_cache_rel(digest, rel + 5);
	clock_gettime(CLOCK_REALTIME, &now);
	if (fstatat(c->dirfd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    st.st_mtim.tv_sec + VMB_CACHE_TOUCH_SEC < now.tv_sec)
		utimensat(c->dirfd, rel, NULL, AT_SYMLINK_NOFOLLOW);
	if (len) {   /* a new one: counted, and a limit may be passed */
		VMB_ATOMIC_ADD(&c->bytes, len);
		vmb_cache_after_fill(c, len);
	}
}

uint64_t vmb_cache_max_bytes(const struct vmb_cache *c)
{
	return c->opts.max_bytes;
}
