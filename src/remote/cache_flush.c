/* cache_flush.c - the flusher: verified objects made durable off the reader's path
 * (see cache.h, "Presence").
 *
 * A fill writes an object to a temporary and checks it; from then on its bytes are
 * right, and the caller reads them at once from the temporary. What is left to do
 * (fsync the temporary, rename it into chunks/, fsync that directory, release the
 * digest's lock) is the flusher's: one thread per vmb_cache, started when it opens
 * (a first fill would otherwise wait for the thread's creation), working in batches
 * (one journal commit for many objects instead of two fsyncs each on the reader's
 * path).
 * Until then the object is "pending": in this process vmb_cache_get opens its
 * temporary by name, and vmb_cache_has counts it; other processes wait on the
 * digest's lock as for any fill, so they only ever see a durable object.
 * A fill of vmb_cache_get_ref has no temporary yet: its entry holds a reference to
 * its bytes in memory (what this process's readers take meanwhile), and the
 * flusher writes them to a temporary first thing in its batch (write_mem), then
 * goes on as for any other; at most c->defer_max bytes wait in memory so.
 *
 * Ownership: c->pend is a list of entries owned by the cache, each holding the
 * digest's fill lock (on the shared c->fill_lfd, so no descriptor each) until it is
 * flushed; except an entry of a fill that gave up waiting for another process's
 * (locked 0: vmb_cache_fill_lock's -ETIMEDOUT), which holds none and releases none.
 * An object that cannot be kept (no space) is said once (vmb_cache_not_kept) until
 * one is kept again. At most c->pend_max bytes pending: a fill that would pass that waits, so
 * a reader runs ahead of the disk by that much (the bytes are in the page cache
 * meanwhile), not more. Batches of at most VMB_CACHE_BATCH. Lock order: c->fl_mu is
 * a leaf (never held while taking c->mu or a lock, nor during I/O).
 *
 * Waiting for a pause: while fills keep coming (a reader streams an image), the
 * flusher leaves them pending until c->quiet_ms (VMB_CACHE_QUIET_MS) pass without a
 * new one, and then does the writes, fsyncs and renames of the whole stream. They
 * cost CPU and disk work that would otherwise slow the stream itself (on loopback
 * a cold sequential read took about 15% longer), as the kernel's writeback of a
 * downloaded file comes after the download. Presence for other processes comes
 * later by as much, so the flusher does not wait:
 *  - when a thread waits for it (a fill held back by the limits below, a reader of
 *    a pending object still in memory, vmb_cache_flush, close);
 *  - when a thread of another process waits for a fill lock: vmb_cache_fill_lock
 *    holds a shared lock on byte 0 of lock/objects while it waits (byte 0 is no
 *    object's), which the flusher looks for each VMB_CACHE_LOOK_MS; after it saw
 *    one, for VMB_CACHE_EAGER_MS;
 *  - past half of c->pend_max pending, or half of c->defer_max in memory only
 *    (a long stream goes on with that much of a lag; fills never wait for it);
 *  - in a cache opened with opts.no_pause (prefetch of a store: a kill -9 would
 *    otherwise lose up to half of c->pend_max of fetched bytes).
 */
#include "config.h"
#include "remote/cache_int.h"
#include "base/bufpool.h"
#include "base/clock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define VMB_CACHE_BATCH 128

struct vmb_cache_pend {
	uint8_t digest[32];
	char rel[VMB_CACHE_REL];
	char tmp[128];                 /* tmp/<tmp>, or "": unnamed, open as fd */
	int fd;                        /* the unnamed temporary's, owned; else -1 */
	struct vmb_cache_mem *mem;     /* bytes not yet in a temporary (a reference),
	                                * or NULL; set to NULL (under fl_mu) by the
	                                * flusher only, once written or failed */
	int lost;                      /* its temporary could not be made: not kept */
	int locked;                    /* it holds the digest's fill lock */
	uint64_t len;
	int ok;                        /* flushed: present in chunks/ (flusher only) */
	struct vmb_cache_pend *next;   /* c->pend, in fill order */
	struct vmb_cache_pend *hnext;  /* c->pend_hash[digest[0]] */
};

static struct vmb_cache_pend *find(struct vmb_cache *c, const uint8_t digest[32])
{
	for (struct vmb_cache_pend *p = c->pend_hash[digest[0]]; p; p = p->hnext)
		if (!memcmp(p->digest, digest, 32))
			return p;
	return NULL;
}

static void unhash(struct vmb_cache *c, struct vmb_cache_pend *p)
{
	struct vmb_cache_pend **pp = &c->pend_hash[p->digest[0]];

	while (*pp && *pp != p)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = p->hnext;
}

/* Wait (fl_mu held) for the flusher's next broadcast of fl_cv; meanwhile the
 * flusher does not wait for a pause. */
static void wait_flusher(struct vmb_cache *c)
{
	c->fl_waiters++;
	pthread_cond_signal(&c->fl_wake);
	pthread_cond_wait(&c->fl_cv, &c->fl_mu);
	c->fl_waiters--;
}

int vmb_cache_pend_has(struct vmb_cache *c, const uint8_t digest[32])
{
	int r;

	if (!VMB_ATOMIC_LOAD(&c->npend))
		return 0;
	pthread_mutex_lock(&c->fl_mu);
	r = find(c, digest) != NULL;
	pthread_mutex_unlock(&c->fl_mu);
	return r;
}

void vmb_cache_mem_put(struct vmb_cache_mem *m)
{
	if (m && VMB_ATOMIC_SUB(&m->refs, 1) == 0) {
		vmb_buf_put((void *)m->data);
		free(m);
	}
}

int vmb_cache_pend_open(struct vmb_cache *c, const uint8_t digest[32],
			struct vmb_cache_mem **mem, int wait)
{
	struct vmb_cache_pend *p;
	int fd = -ENOENT;

	if (mem)
		*mem = NULL;
	if (!VMB_ATOMIC_LOAD(&c->npend))
		return -ENOENT;
	pthread_mutex_lock(&c->fl_mu);
	while ((p = find(c, digest)) && p->mem) {
		if (mem) {
			VMB_ATOMIC_ADD(&p->mem->refs, 1);
			*mem = p->mem;
			pthread_mutex_unlock(&c->fl_mu);
			return -EINPROGRESS;
		}
		if (!wait) {
			pthread_mutex_unlock(&c->fl_mu);
			return -EAGAIN;
		}
		/* in memory only: the flusher writes it first thing (a broadcast then) */
		wait_flusher(c);
	}
	/* the flusher may rename it meanwhile: then this open fails with ENOENT and the
	 * caller finds it in chunks/ */
	if (p && p->lost)
		p = NULL;   /* not kept: the caller fills it again */
	if (p) {
		if (p->fd >= 0)
			fd = fcntl(p->fd, F_DUPFD_CLOEXEC, 0);
		else
			fd = openat(c->tmpfd, p->tmp, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			fd = -errno;
	}
	pthread_mutex_unlock(&c->fl_mu);
	return fd;
}

/* Rename (link) p's temporary to chunks/<rel>, making chunks/<aa> when absent (then
 * *made is set: chunks/ itself needs an fsync). An unnamed temporary cannot replace a
 * name: an object there already (only one that did not keep to the fill lock puts
 * one there meanwhile) is replaced by unlink and link, as rename would. 0 or
 * -errno. */
static int put_in_place(struct vmb_cache *c, struct vmb_cache_pend *p, int *made)
{
	int r = -EIO;

	for (int tries = 0; tries < 3; tries++) {
		if (p->tmp[0])
			r = renameat(c->tmpfd, p->tmp, c->chunksfd, p->rel) < 0 ? -errno : 0;
		else
			r = vmb_cache_link_anon(p->fd, c->chunksfd, p->rel);
		if (r == -ENOENT) {
			char aa[3] = { p->rel[0], p->rel[1], '\0' };
			int m = vmb_cache_mkdir(c, c->chunksfd, aa);

			if (m < 0)
				return m;
			if (m == 1)
				*made = 1;
		} else if (r == -EEXIST && !p->tmp[0]) {
			if (unlinkat(c->chunksfd, p->rel, 0) < 0 && errno != ENOENT)
				return -errno;
		} else
			return r;
	}
	return r;   /* the last try's error */
}

/* The object's bytes are durable: its pages (clean now) leave the page cache.
 * Whoever reads them through a mount has them in the mount's page cache; keeping
 * them here too would hold each fetched byte in memory twice, and a prefetch of a
 * large image would push out everything else. A later reader reads the disk. Best
 * effort (a file system may keep them: tmpfs has no other copy). */
static void drop_pages(int fd)
{
	(void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
}

/* Give the unnamed temporary of p a name in tmp/ and close its descriptor (past the
 * budget of descriptors). Where that fails, p keeps its descriptor. */
static void name_it(struct vmb_cache *c, struct vmb_cache_pend *p);

/* Write the bytes of an entry still in memory only to a new temporary; then (under
 * fl_mu) the entry has its temporary as if its fill had written it, and its waiters
 * are woken. A failure is logged: the readers had right bytes; the entry is only not
 * kept (lost). */
static void write_mem(struct vmb_cache *c, struct vmb_cache_pend *p)
{
	char hex[VMB_SHA256_HEX], tmp[128];
	struct vmb_cache_mem *m = p->mem;
	struct vmb_err err;
	int fd, lost;

	vmb_err_clear(&err);
	vmb_sha256_hex(p->digest, hex);
	fd = vmb_cache_tmp_write(c, hex, m->data, (size_t)p->len, tmp, &err);
	lost = fd < 0;
	if (lost) {
		if (fd == -ENOSPC || fd == -EDQUOT)
			vmb_cache_evict_kick(c);
		vmb_cache_not_kept(c, p->rel + 3, err.msg);
		fd = -1;
	} else if (tmp[0]) {
		close(fd);   /* a named one is reopened by name */
		fd = -1;
	}
	pthread_mutex_lock(&c->fl_mu);
	snprintf(p->tmp, sizeof(p->tmp), "%s", tmp);
	p->fd = fd;
	p->lost = lost;
	p->mem = NULL;
	c->defer_bytes -= p->len;
	if (p->fd >= 0 && c->npend_fds >= c->pend_fds_max)
		name_it(c, p);
	if (p->fd >= 0)
		c->npend_fds++;
	pthread_cond_broadcast(&c->fl_cv);
	pthread_mutex_unlock(&c->fl_mu);
	vmb_cache_mem_put(m);
}

/* Make the batch durable and present; release each entry's lock. Per-file fdatasync
 * rather than syncfs: syncfs would also wait for every other writer of the file
 * system. The writeback of all of them is started first, so the first fdatasync's
 * journal commit covers the batch and the others find little left to do; the same
 * for the directories after the renames. */
static void flush_batch(struct vmb_cache *c, struct vmb_cache_pend **b, size_t n)
{
	uint8_t dirs[32] = { 0 };   /* a bit per chunks/<aa>: the digest's first byte */
	int fds[VMB_CACHE_BATCH], made = 0;
	size_t i;

	for (i = 0; i < n; i++)
		if (b[i]->mem)   /* only the flusher clears it: no lock needed to look */
			write_mem(c, b[i]);
	for (i = 0; i < n; i++) {
		if (b[i]->lost)
			fds[i] = -ECANCELED;   /* logged by write_mem */
		else if (b[i]->fd >= 0)
			fds[i] = b[i]->fd;   /* unnamed (pend_add refuses one without it) */
		else if ((fds[i] = openat(c->tmpfd, b[i]->tmp,
					  O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
			fds[i] = -errno;   /* kept for the message below */
		if (fds[i] >= 0)
			sync_file_range(fds[i], 0, 0, SYNC_FILE_RANGE_WRITE);
	}
	for (i = 0; i < n; i++) {
		struct vmb_cache_pend *p = b[i];
		int r = 0;

		/* 1. the temporary's bytes */
		if (fds[i] < 0)
			r = fds[i];
		else if (fdatasync(fds[i]) < 0)
			r = -errno;
		if (r == 0)
			drop_pages(fds[i]);
		if (fds[i] >= 0 && p->fd < 0)
			close(fds[i]);   /* an unnamed one's is closed with its entry */
		/* 2. into place */
		if (r == 0)
			r = put_in_place(c, p, &made);
		if (r == -ECANCELED)
			continue;
		if (r < 0) {
			/* whoever read it got right bytes (checked); it is just not kept */
			char why[VMB_ERR_MAX];

			snprintf(why, sizeof(why), "cache '%s': cannot put %s%s in place: %s",
				 c->path, p->tmp[0] ? "tmp/" : "an unnamed temporary", p->tmp,
				 strerror(-r));
			vmb_cache_not_kept(c, p->rel + 3, why);
			if (p->tmp[0])
				unlinkat(c->tmpfd, p->tmp, 0);
			continue;
		}
		p->ok = 1;
		vmb_cache_kept(c);
		VMB_ATOMIC_ADD(&c->bytes, p->len);   /* now, before any scan can count it */
		VMB_ATOMIC_ADD(&c->chunks, 1);
		vmb_cache_step("renamed");
		dirs[p->digest[0] / 8] |= (uint8_t)(1u << (p->digest[0] % 8));
	}
	/* 3. the directory entries */
	for (int d = 0; d < 256; d++)
		if (dirs[d / 8] & (1u << (d % 8))) {
			char aa[3];

			snprintf(aa, sizeof(aa), "%02x", d);
			vmb_cache_fsync_dir(c->chunksfd, aa);
		}
	/* a chunks/<aa> made by this batch: its entry in chunks/, or a power loss could
	 * take the directory and every object in it */
	if (made)
		vmb_cache_fsync_dir(c->chunksfd, NULL);
	/* 4. present: account, release the locks */
	for (i = 0; i < n; i++) {
		struct vmb_cache_pend *p = b[i];

		if (p->locked)
			vmb_cache_fill_unlock(c, p->digest);
		if (p->ok)
			vmb_cache_after_fill(c, p->len);   /* evictable now */
	}
}

/* May the flusher leave what is pending for later (fl_mu held)? */
static int may_wait(const struct vmb_cache *c, uint64_t now)
{
	return !c->opts.no_pause && !c->fl_stop && !c->fl_waiters &&
	       now >= c->fl_eager_until && c->pend_bytes < c->pend_max / 2 &&
	       c->defer_bytes < c->defer_max / 2;
}

/* Wait (fl_mu held) until no fill came for c->quiet_ms, or the flusher may not wait
 * any more (the file's comment). It looks every VMB_CACHE_LOOK_MS. */
static void wait_for_pause(struct vmb_cache *c)
{
	uint64_t adds = c->fl_adds, last = vmb_now_ms();

	for (;;) {
		uint64_t now = vmb_now_ms(), until;
		struct timespec ts;
		int seen;

		if (!may_wait(c, now))
			return;
		pthread_mutex_unlock(&c->fl_mu);
		seen = vmb_cache_waited_on(c);
		pthread_mutex_lock(&c->fl_mu);
		if (seen) {
			c->fl_eager_until = vmb_now_ms() + VMB_CACHE_EAGER_MS;
			return;
		}
		if (c->fl_adds != adds) {
			adds = c->fl_adds;
			last = now;
		} else if (now - last >= c->quiet_ms) {
			return;   /* a pause */
		}
		until = now + VMB_CACHE_LOOK_MS;
		ts.tv_sec = (time_t)(until / 1000);
		ts.tv_nsec = (long)(until % 1000) * 1000000L;
		while (may_wait(c, now) && now < until) {
			pthread_cond_timedwait(&c->fl_wake, &c->fl_mu, &ts);
			now = vmb_now_ms();
		}
	}
}

static void *flush_main(void *arg)
{
	struct vmb_cache *c = arg;
	struct vmb_cache_pend *b[VMB_CACHE_BATCH], *p;
	uint64_t owed = 0;   /* entries to flush before it may wait again */
	size_t n;

	pthread_mutex_lock(&c->fl_mu);
	for (;;) {
		c->fl_idle = 1;
		while (!c->pend && !c->fl_stop)
			pthread_cond_wait(&c->fl_wake, &c->fl_mu);
		c->fl_idle = 0;
		if (!c->pend)
			break;   /* stopped and drained */
		if (!owed) {
			wait_for_pause(c);
			owed = c->npend;   /* what is pending now, then look again */
		}
		n = 0;
		for (p = c->pend; p && n < VMB_CACHE_BATCH && n < owed; p = p->next)
			b[n++] = p;
		owed -= n;
		pthread_mutex_unlock(&c->fl_mu);
		flush_batch(c, b, n);
		pthread_mutex_lock(&c->fl_mu);
		/* the batch is the head of the list (fills only append) */
		for (size_t k = 0; k < n; k++) {
			p = c->pend;
			c->pend = p->next;
			unhash(c, p);
			c->pend_bytes -= p->len;
			if (p->fd >= 0) {
				close(p->fd);   /* pend_open's dups stay readable */
				c->npend_fds--;
			}
			free(p);
			VMB_ATOMIC_SUB(&c->npend, 1);
		}
		if (!c->pend)
			c->pend_tail = NULL;
		pthread_cond_broadcast(&c->fl_cv);
	}
	pthread_mutex_unlock(&c->fl_mu);
	return NULL;
}

static void start_locked(struct vmb_cache *c)
{
	if (pthread_create(&c->fl_thread, NULL, flush_main, c) == 0)
		c->fl_started = 1;
}

void vmb_cache_flush_start(struct vmb_cache *c)
{
	pthread_mutex_lock(&c->fl_mu);
	if (!c->fl_started && !c->fl_stop)
		start_locked(c);
	pthread_mutex_unlock(&c->fl_mu);
}

/* Give the unnamed temporary of p a name in tmp/ and close its descriptor (past the
 * budget of descriptors). Where that fails, p keeps its descriptor. */
static void name_it(struct vmb_cache *c, struct vmb_cache_pend *p)
{
	char hex[VMB_SHA256_HEX], name[128];

	vmb_sha256_hex(p->digest, hex);
	for (int tries = 0; tries < 4; tries++) {
		int r;

		vmb_cache_tmp_name(hex, name, tries);
		r = vmb_cache_link_anon(p->fd, c->tmpfd, name);
		if (r == 0) {
			close(p->fd);
			p->fd = -1;
			snprintf(p->tmp, sizeof(p->tmp), "%s", name);
			return;
		}
		if (r != -EEXIST)
			return;
	}
}

static int add(struct vmb_cache *c, struct vmb_cache_pend *p);

void vmb_cache_not_kept(struct vmb_cache *c, const char *hex, const char *why)
{
	static struct vmb_ratelimit rl = VMB_RATELIMIT_INIT;   /* flapping: a backstop */

	if (__atomic_exchange_n(&c->nokeep, 1, __ATOMIC_RELAXED))
		return;   /* said since the last object kept */
	vmb_log_limited(c->opts.log, &rl, "%s (chunk %.64s is not kept; it will be fetched "
			"again when needed; said once until a chunk is kept again)", why, hex);
}

void vmb_cache_kept(struct vmb_cache *c)
{
	if (VMB_ATOMIC_LOAD(&c->nokeep) &&
	    __atomic_exchange_n(&c->nokeep, 0, __ATOMIC_RELAXED))
		vmb_log_msg(c->opts.log, "cache '%s': chunks are kept again", c->path);
}

int vmb_cache_pend_add_mem(struct vmb_cache *c, const uint8_t digest[32], const char *rel,
			   struct vmb_cache_mem *mem, uint64_t len, int locked,
			   struct vmb_err *err)
{
	struct vmb_cache_pend *p = calloc(1, sizeof(*p));

	if (!p) {
		if (locked)
			vmb_cache_fill_unlock(c, digest);
		return vmb_err_set(err, ENOMEM, "cannot keep a verified chunk: %s",
				   strerror(ENOMEM));
	}
	memcpy(p->digest, digest, 32);
	snprintf(p->rel, sizeof(p->rel), "%s", rel);
	p->fd = -1;
	p->len = len;
	p->locked = locked;
	VMB_ATOMIC_ADD(&mem->refs, 1);
	p->mem = mem;
	return add(c, p);
}

int vmb_cache_pend_add(struct vmb_cache *c, const uint8_t digest[32], const char *rel,
		       const char *tmp, int fd, uint64_t len, int locked, struct vmb_err *err)
{
	struct vmb_cache_pend *p = calloc(1, sizeof(*p));

	if (!p || (!tmp[0] && fd < 0)) {
		/* cannot keep it: the caller's descriptor still reads right bytes */
		int e = p ? EMFILE : ENOMEM;

		free(p);
		if (tmp[0])
			unlinkat(c->tmpfd, tmp, 0);
		if (locked)
			vmb_cache_fill_unlock(c, digest);
		return vmb_err_set(err, e, "cannot keep a verified chunk: %s", strerror(e));
	}
	memcpy(p->digest, digest, 32);
	snprintf(p->rel, sizeof(p->rel), "%s", rel);
	snprintf(p->tmp, sizeof(p->tmp), "%s", tmp);
	p->fd = tmp[0] ? -1 : fd;
	p->len = len;
	p->locked = locked;
	return add(c, p);
}

/* Queue p (the fill lock of its digest held) for the flusher, or flush it here when
 * there is none. 0. */
static int add(struct vmb_cache *c, struct vmb_cache_pend *p)
{
	struct vmb_cache_pend **pp;
	uint64_t len = p->len, mlen = p->mem ? p->len : 0;
	int wake;

	pthread_mutex_lock(&c->fl_mu);
	if (!c->fl_started && !c->fl_stop)
		start_locked(c);   /* it could not start at open: try again */
	if (!c->fl_started) {
		/* no flusher (it could not start, or the cache is closing): do it here */
		c->defer_bytes += mlen;   /* write_mem takes it off */
		pthread_mutex_unlock(&c->fl_mu);
		flush_batch(c, &p, 1);   /* logs when it cannot keep it */
		if (p->fd >= 0) {
			close(p->fd);
			if (mlen) {
				pthread_mutex_lock(&c->fl_mu);
				c->npend_fds--;   /* write_mem counted it (only its) */
				pthread_mutex_unlock(&c->fl_mu);
			}
		}
		free(p);
		return 0;
	}
	while (c->pend && (c->pend_bytes + len > c->pend_max ||
			   (mlen && c->defer_bytes + mlen > c->defer_max)))
		wait_flusher(c);
	c->defer_bytes += mlen;
	if (p->fd >= 0 && c->npend_fds >= c->pend_fds_max)
		name_it(c, p);   /* cheap (a link), under fl_mu so pend_open sees one form */
	if (p->fd >= 0)
		c->npend_fds++;
	pp = c->pend ? &c->pend_tail->next : &c->pend;
	*pp = p;   /* in fill order: the oldest are flushed first */
	c->pend_tail = p;
	c->pend_bytes += len;
	p->hnext = c->pend_hash[p->digest[0]];
	c->pend_hash[p->digest[0]] = p;
	VMB_ATOMIC_ADD(&c->npend, 1);
	c->fl_adds++;
	wake = c->fl_idle;
	pthread_mutex_unlock(&c->fl_mu);
	/* after the unlock: the woken flusher does not first wait for fl_mu while
	 * the filling reader (whose reply is next) still holds it */
	if (wake)
		pthread_cond_signal(&c->fl_wake);
	return 0;
}

int vmb_cache_flush(struct vmb_cache *c)
{
	pthread_mutex_lock(&c->fl_mu);
	while (c->pend)
		wait_flusher(c);
	pthread_mutex_unlock(&c->fl_mu);
	return 0;
}

void vmb_cache_flush_stop(struct vmb_cache *c)
{
	pthread_mutex_lock(&c->fl_mu);
	c->fl_stop = 1;
	pthread_cond_broadcast(&c->fl_cv);
	pthread_cond_signal(&c->fl_wake);
	pthread_mutex_unlock(&c->fl_mu);
	if (c->fl_started)
		pthread_join(c->fl_thread, NULL);
	c->fl_started = 0;
}
