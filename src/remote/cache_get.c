/* cache_get.c - vmb_cache_get and vmb_cache_has: the fast path (open + fstat), the
 * in-process flight (mutex + condition), the cross-process fill under the digest's
 * lock file, and the fill itself: temporary, verify, then the flusher's fsync,
 * rename, fsync of the directory (cache_flush.c; see cache.h); for vmb_cache_get_ref,
 * verify in memory and hand the bytes to the caller, the flusher writing the
 * temporary first. */
#include "config.h"
#include "remote/cache_int.h"
#include "base/bufpool.h"
#include "base/cancel.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int vmb_cache_has(struct vmb_cache *c, const uint8_t digest[32])
{
	char rel[VMB_CACHE_REL];
	struct stat st;

	/* pending first (no system call): the flusher puts an object in chunks/
	 * before it leaves the pending table, so one of the two looks sees it */
	if (vmb_cache_pend_has(c, digest))
		return 1;
	vmb_cache_rel(digest, rel);
	return fstatat(c->chunksfd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	       S_ISREG(st.st_mode) && vmb_cache_trusted(c, &st);
}

/* Open the present object: its fd, -ENOENT when absent, -ESTALE when present with
 * another size than len, -EPERM when vmb_cache_trusted refuses it (its owner, or
 * whoever may write it, could have changed its bytes: a present object is served
 * without re-hashing it); *st tells. */
static int open_present(struct vmb_cache *c, const char *rel, uint64_t len, struct stat *st,
			struct vmb_err *err)
{
	int fd = openat(c->chunksfd, rel, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0) {
		if (errno == ENOENT)
			return -ENOENT;
		return vmb_err_sys(err, errno, "cache '%s': cannot open chunks/%s", c->path, rel);
	}
	if (fstat(fd, st) < 0) {
		int r = vmb_err_sys(err, errno, "cache '%s': cannot stat chunks/%s", c->path, rel);

		close(fd);
		return r;
	}
	if (!vmb_cache_trusted(c, st)) {
		close(fd);
		return -EPERM;
	}
	if (!S_ISREG(st->st_mode) || (uint64_t)st->st_size != len) {
		close(fd);
		return -ESTALE;
	}
	return fd;
}

/* A present object vmb_cache_trusted refuses (we hold its lock): said once, removed,
 * and filled again. */
static int untrusted(struct vmb_cache *c, const char *rel, const struct stat *st,
		     struct vmb_err *err)
{
	static struct vmb_ratelimit rl = VMB_RATELIMIT_INIT;

	VMB_ATOMIC_ADD(&c->verify_failures, 1);
	vmb_log_limited(c->opts.log, &rl, "cache '%s': chunks/%s is owned by uid %u, group "
			"%u, mode %04o: others could have changed its bytes; removed, it "
			"is fetched again", c->path, rel, (unsigned)st->st_uid,
			(unsigned)st->st_gid, (unsigned)(st->st_mode & 07777));
	if (unlinkat(c->chunksfd, rel, 0) < 0 && errno != ENOENT)
		return vmb_err_sys(err, errno, "cache '%s': cannot remove chunks/%s (owned by "
				   "uid %u, mode %04o: not trusted)", c->path, rel,
				   (unsigned)st->st_uid, (unsigned)(st->st_mode & 07777));
	return 0;
}

/* The fill of a get: into the temporary's fd, or into memory (defer: the caller
 * takes the bytes from memory, vmb_cache_get_ref). */
struct filler {
	vmb_cache_fill_fn fd;
	vmb_cache_fillmem_fn mem;
	void *arg;
	int defer;
};

/* Compare what was filled (size, digest) with what was asked: 0, or -EIO with
 * *mismatch set and err saying how. */
static int check_fill(struct vmb_cache *c, const uint8_t digest[32], uint64_t len,
		      uint64_t size, const uint8_t got[32], int *mismatch, struct vmb_err *err)
{
	char gh[VMB_SHA256_HEX];

	if (size == len && memcmp(got, digest, 32) == 0)
		return 0;
	VMB_ATOMIC_ADD(&c->verify_failures, 1);
	*mismatch = 1;
	if (size != len)
		return vmb_err_set(err, EIO, "%llu bytes instead of %llu",
				   (unsigned long long)size, (unsigned long long)len);
	vmb_sha256_hex(got, gh);
	return vmb_err_set(err, EIO, "their SHA-256 is %s", gh);
}

/* Wrap the verified buffer buf of n bytes in a vmb_cache_mem (one reference): 0,
 * or -ENOMEM (buf is then still the caller's). */
static int mem_of(void *buf, size_t n, struct vmb_cache_mem **out)
{
	struct vmb_cache_mem *m = malloc(sizeof(*m));

	if (!m)
		return -ENOMEM;
	*m = (struct vmb_cache_mem){ .data = buf, .len = n, .refs = 1 };
	*out = m;
	return 0;
}

/* A fill into memory, checked there, then written to a new temporary: its fd (in
 * *fd) or -errno. With defer, the checked bytes are not written: *defer gets them
 * (one reference) and *fd stays -1. When the temporary cannot be made or written
 * (a full file system), the error, with the checked bytes in *lost (one
 * reference): not kept, but a reader may still take them (get). */
static int fill_mem(struct vmb_cache *c, const uint8_t digest[32], uint64_t len,
		    const struct filler *fl, char tmp[128], int *fd, int *mismatch,
		    struct vmb_cache_mem **defer, struct vmb_cache_mem **lost,
		    struct vmb_err *err)
{
	char hex[VMB_SHA256_HEX];
	uint8_t got[32];
	void *buf = NULL;
	size_t n = 0;
	int r, have = 0;

	r = fl->mem(fl->arg, digest, len, &buf, &n, got, &have, err);
	if (r < 0 && (!err || !err->msg[0])) {
		vmb_sha256_hex(digest, hex);
		vmb_err_sys(err, -r, "chunk %s: cannot fetch it", hex);
	}
	if (r == 0 && !have)
		r = vmb_sha256(buf, n, got, err);
	if (r == 0)
		r = check_fill(c, digest, len, n, got, mismatch, err);
	if (r == 0)
		vmb_cache_step("filled");
	if (r == 0 && defer && mem_of(buf, n, defer) == 0)
		return 0;
	if (r == 0) {
		vmb_sha256_hex(digest, hex);
		r = vmb_cache_tmp_write(c, hex, buf, n, tmp, err);
		if (r >= 0)
			*fd = r;
		else if (r != -ENOMEM && mem_of(buf, n, lost) == 0)
			return r;   /* the bytes are *lost's now */
	}
	vmb_buf_put(buf);
	return r < 0 ? r : 0;
}

/* One fill into a temporary, checked. Returns an fd of it, or -errno; *mismatch
 * says the bytes did not match (then err says how). A named temporary's name is in
 * tmp and the fd is a new O_RDONLY one; an unnamed one's (tmp "") is the fd it was
 * written through. The caller hands it to the flusher. *lost: as fill_mem's. */
static int fill_once(struct vmb_cache *c, const uint8_t digest[32], uint64_t len,
		     const struct filler *fl, char tmp[128], int *mismatch,
		     struct vmb_cache_mem **defer, struct vmb_cache_mem **lost,
		     struct vmb_err *err)
{
	char hex[VMB_SHA256_HEX];
	uint8_t got[32];
	uint64_t size = 0;
	int fd = -1, ro = -1, r;

	*mismatch = 0;
	tmp[0] = '\0';
	VMB_ATOMIC_ADD(&c->fills, 1);
	if (fl->mem) {
		r = fill_mem(c, digest, len, fl, tmp, &fd, mismatch, defer, lost, err);
		if (r == -ENOSPC || r == -EDQUOT)
			vmb_cache_evict_kick(c);
		if (r < 0)
			goto out;
		if (defer && *defer) {
			vmb_cache_step("verified");
			VMB_ATOMIC_ADD(&c->fill_bytes, len);
			return -EINPROGRESS;
		}
	} else {
		vmb_sha256_hex(digest, hex);
		fd = vmb_cache_tmp_object(c, hex, tmp, err);
		if (fd < 0)
			return fd;
		r = fl->fd(fl->arg, digest, len, fd, err);
		if (r == -ENOSPC)
			vmb_cache_evict_kick(c);
		if (r < 0) {
			if (!err || !err->msg[0])
				vmb_err_sys(err, -r, "chunk %s: cannot fetch it", hex);
			goto out;
		}
		vmb_cache_step("filled");
		r = vmb_cache_hash_fd(fd, got, &size, err);
		if (r < 0) {
			vmb_err_prefix(err, "cache '%s': cannot read back tmp/%s", c->path, tmp);
			goto out;
		}
		r = check_fill(c, digest, len, size, got, mismatch, err);
		if (r < 0)
			goto out;
	}
	vmb_cache_step("verified");
	if (!tmp[0]) {
		ro = fd;   /* unnamed: nobody else can write it */
		fd = -1;
	} else if ((ro = openat(c->tmpfd, tmp, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
		r = vmb_err_sys(err, errno, "cache '%s': cannot reopen tmp/%s", c->path, tmp);
	if (ro >= 0)
		VMB_ATOMIC_ADD(&c->fill_bytes, len);
out:
	if (fd >= 0)
		close(fd);
	if (r < 0) {
		if (tmp[0])
			unlinkat(c->tmpfd, tmp, 0);
		tmp[0] = '\0';
		return r;
	}
	return ro;
}

/* A present object of the wrong size (we hold its lock): if its bytes match the
 * digest, the caller's len is wrong; else it is corrupt and goes. */
static int wrong_size(struct vmb_cache *c, const uint8_t digest[32], const char *rel,
		      uint64_t len, struct vmb_err *err)
{
	char hex[VMB_SHA256_HEX];
	uint8_t got[32];
	uint64_t size = 0;
	int fd = openat(c->chunksfd, rel, O_RDONLY | O_CLOEXEC | O_NOFOLLOW), r = -1;

	vmb_sha256_hex(digest, hex);
	if (fd >= 0) {
		r = vmb_cache_hash_fd(fd, got, &size, NULL);
		close(fd);
	}
	if (r == 0 && memcmp(got, digest, 32) == 0)
		return vmb_err_set(err, EINVAL, "chunk %s is %llu bytes, not %llu", hex,
				   (unsigned long long)size, (unsigned long long)len);
	VMB_ATOMIC_ADD(&c->verify_failures, 1);
	if (unlinkat(c->chunksfd, rel, 0) < 0 && errno != ENOENT)
		return vmb_err_sys(err, errno, "cache '%s': cannot remove corrupt chunks/%s",
				   c->path, rel);
	return 0;
}

/* Another process has held the fill lock of digest for c->opts.fill_wait_ms (it may
 * be stopped): said once for the object; the caller fills without the lock. */
static void gave_up_waiting(struct vmb_cache *c, const char *hex)
{
	static struct vmb_ratelimit rl = VMB_RATELIMIT_INIT;

	vmb_log_limited(c->opts.log, &rl, "cache '%s': chunk %s: another process has been "
			"filling it for %u s (stopped?); fetched here without waiting for it",
			c->path, hex, (c->opts.fill_wait_ms + 999) / 1000);
}

/* The leader of a flight: fill across processes. Returns an fd or -errno; or, when
 * the fill defers (fl->defer), -EINPROGRESS with the bytes in *mem (a reference).
 * A fill that had right bytes but could not write them: its error, with the bytes
 * in *mem (a reference; not kept, not pending). */
static int fill_shared(struct vmb_cache *c, const uint8_t digest[32], uint64_t len,
		       const struct filler *fl, struct vmb_cache_mem **mem,
		       struct vmb_err *err)
{
	char rel[VMB_CACHE_REL], hex[VMB_SHA256_HEX], tmp[128];
	struct vmb_cache_mem *m = NULL, *lost = NULL;
	struct stat st;
	int fd, r, mismatch = 0, locked = 1;

	vmb_cache_rel(digest, rel);
	vmb_sha256_hex(digest, hex);
	r = vmb_cache_fill_lock(c, digest, err);
	if (r == -ETIMEDOUT) {
		/* its holder may be stopped: fill without the lock (content-addressed,
		 * put in place atomically: two fills of one object are harmless) */
		locked = 0;
		gave_up_waiting(c, hex);
	} else if (r < 0)
		return r;
	/* the lock is ours (or not to be had): the object is there (filled while we
	 * waited) or we fill it */
	fd = open_present(c, rel, len, &st, err);
	if (fd >= 0 || (fd != -ENOENT && fd != -ESTALE && fd != -EPERM)) {
		if (fd >= 0)
			VMB_ATOMIC_ADD(&c->waits, 1);
		goto out;
	}
	if (!locked) {
		/* nothing is removed without the lock: what is in place (untrusted, of
		 * another size) is replaced by the flusher's rename or link */
	} else if (fd == -EPERM) {
		fd = untrusted(c, rel, &st, err);
		if (fd < 0)
			goto out;
	} else if (fd == -ESTALE) {
		fd = wrong_size(c, digest, rel, len, err);
		if (fd < 0)
			goto out;
	}
	for (int attempt = 0; attempt < 2; attempt++) {
		fd = fill_once(c, digest, len, fl, tmp, &mismatch, fl->defer ? &m : NULL, &lost,
			       err);
		if (fd >= 0 || fd == -EINPROGRESS || !mismatch || lost)
			break;
	}
	if (fd == -EINPROGRESS) {
		/* right bytes, in memory: the caller (and this process's other readers)
		 * read them there; the flusher writes, then makes them durable and
		 * present, and releases the lock (pend_add_mem releases it on error) */
		vmb_cache_pend_add_mem(c, digest, rel, m, len, locked, NULL);
		*mem = m;
		return fd;
	}
	if (fd >= 0) {
		/* right bytes: the caller reads them now; durable and present later, by
		 * the flusher, which takes over the lock (others wait until then) and an
		 * unnamed temporary's descriptor of its own */
		vmb_cache_pend_add(c, digest, rel, tmp,
				   tmp[0] ? -1 : fcntl(fd, F_DUPFD_CLOEXEC, 0), len, locked, NULL);
		return fd;
	}
	if (lost) {
		/* right bytes that could not be written (no space): the readers take
		 * them from memory; not kept, the lock released, fetched again later */
		vmb_cache_not_kept(c, hex, err ? err->msg : strerror(-fd));
		*mem = lost;
	} else if (mismatch) {
		char last[VMB_ERR_MAX];

		snprintf(last, sizeof(last), "%s", err ? err->msg : "");
		fd = vmb_err_set(err, EIO, "chunk %s: fetched bytes do not match their digest "
				 "(twice; last time %s)", hex, last);
	}
out:
	if (locked)
		vmb_cache_fill_unlock(c, digest);
	return fd;
}

static void touch(int fd, const struct stat *st)
{
	if (st->st_mtime < time(NULL) - VMB_CACHE_TOUCH_SEC)
		futimens(fd, NULL);   /* best effort: LRU order only */
}

/* Drop a reference to flight f (under c->mu). */
static void flight_put(struct vmb_cache_flight *f)
{
	if (--f->refs == 0) {
		vmb_cache_mem_put(f->mem);
		pthread_cond_destroy(&f->cv);
		free(f);
	}
}

/* Wait under c->mu until flight f is done: 0; -EINTR when this thread's request
 * is cancelled first (base/cancel.h; looked at every VMB_CANCEL_POLL_MS when it
 * has a token). */
static int flight_wait(struct vmb_cache *c, struct vmb_cache_flight *f)
{
	struct timespec ts;

	if (!vmb_cancel_current()) {
		while (!f->done)
			pthread_cond_wait(&f->cv, &c->mu);
		return 0;
	}
	while (!f->done) {
		int gone;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += VMB_CANCEL_POLL_MS * 1000000L;
		ts.tv_sec += ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		pthread_cond_timedwait(&f->cv, &c->mu, &ts);
		if (f->done)
			break;
		pthread_mutex_unlock(&c->mu);   /* a look in /proc: not under the mutex */
		gone = vmb_cancel_requested();
		pthread_mutex_lock(&c->mu);
		if (gone && !f->done)
			return -EINTR;
	}
	return 0;
}

/* mem: where a caller that takes bytes from memory wants them (vmb_cache_get_ref;
 * then fill->defer), else NULL. */
static int get(struct vmb_cache *c, const uint8_t digest[32], uint64_t len,
	       const struct filler *fill, struct vmb_cache_mem **mem, int *fdp, int *hit,
	       struct vmb_err *err)
{
	char rel[VMB_CACHE_REL];
	struct vmb_cache_flight *f;
	struct vmb_cache_mem *lost;
	struct stat st;
	int fd, counted = 0;

	*fdp = -1;
	if (mem)
		*mem = NULL;
	if (hit)
		*hit = 0;
	vmb_cache_rel(digest, rel);
	for (int round = 0; round < 8; round++) {
		/* pending first: no look in chunks/ for an object this process filled
		 * moments ago (cold streams read such objects); ENOENT when not
		 * pending, or when the flusher has just put it in chunks/ */
		fd = vmb_cache_pend_open(c, digest, mem, 1);
		if (fd == -ENOENT) {
			fd = open_present(c, rel, len, &st, err);
			if (fd >= 0) {
				touch(fd, &st);
				if (!counted) {
					VMB_ATOMIC_ADD(&c->hits, 1);
					if (hit)
						*hit = 1;
				}
				*fdp = fd;
				return 0;
			}
			if (fd != -ENOENT && fd != -ESTALE && fd != -EPERM)
				return fd;
		}
		if (fd >= 0 || fd == -EINPROGRESS) {
			/* verified here moments ago, not yet durable (maybe not yet
			 * written: then *mem has its bytes and fd stays -1) */
			if (!counted) {
				VMB_ATOMIC_ADD(&c->hits, 1);
				if (hit)
					*hit = 1;
			}
			*fdp = fd < 0 ? -1 : fd;
			return 0;
		}
		if (!counted) {
			VMB_ATOMIC_ADD(&c->misses, 1);
			counted = 1;
		}
		if (!fill)
			return vmb_err_set(err, ENOENT, "chunk %s is not in cache '%s'", rel + 3,
					   c->path);
		pthread_mutex_lock(&c->mu);
		for (f = c->flights; f; f = f->next)
			if (!memcmp(f->digest, digest, 32))
				break;
		if (f) {
			/* someone in this process fills it: wait for the result */
			f->refs++;
			VMB_ATOMIC_ADD(&c->waits, 1);
			if (flight_wait(c, f) < 0) {
				/* this caller's request gave up (base/cancel.h): the
				 * fill goes on for the others */
				flight_put(f);
				pthread_mutex_unlock(&c->mu);
				return vmb_err_set(err, EINTR, "interrupted while waiting for "
						   "chunk %s", rel + 3);
			}
			fd = f->rc;
			if (fd < 0 && f->mem && mem) {
				/* right bytes its fill could not keep: from memory */
				VMB_ATOMIC_ADD(&f->mem->refs, 1);
				*mem = f->mem;
				fd = 0;
			} else if (fd < 0 && fd != -EINTR && err)
				*err = f->err;
			flight_put(f);
			pthread_mutex_unlock(&c->mu);
			if (fd == 0 && mem && *mem)
				return 0;
			if (fd == -EINTR) {
				round--;   /* its filler's request gave up, not ours: fill */
				continue;
			}
			if (fd < 0)
				return fd;
			continue;   /* present now: open it */
		}
		/* No flight: the last one may have ended since we looked (its object is
		 * pending now, or present). Its pend_add came before its flight left the
		 * list, so under c->mu this look cannot miss it. A second flight must not
		 * start for a pending object: its fill lock is this cache's shared one,
		 * which would not make it wait. */
		fd = vmb_cache_pend_open(c, digest, mem, 0);
		if (fd == -EAGAIN) {
			/* pending, still in memory, and no place for its bytes: wait for
			 * its write, not under c->mu */
			pthread_mutex_unlock(&c->mu);
			round--;
			continue;
		}
		if (fd == -ENOENT)
			fd = open_present(c, rel, len, &st, err);
		if (fd >= 0 || fd == -EINPROGRESS) {
			pthread_mutex_unlock(&c->mu);
			VMB_ATOMIC_ADD(&c->waits, 1);   /* a fill ended just before */
			*fdp = fd < 0 ? -1 : fd;
			return 0;
		}
		f = calloc(1, sizeof(*f));
		if (!f) {
			pthread_mutex_unlock(&c->mu);
			return vmb_err_set(err, ENOMEM, "out of memory");
		}
		memcpy(f->digest, digest, 32);
		f->refs = 1;
		pthread_cond_init(&f->cv, NULL);
		f->next = c->flights;
		c->flights = f;
		pthread_mutex_unlock(&c->mu);

		lost = NULL;
		fd = fill_shared(c, digest, len, fill, &lost, &f->err);
		if (fd == -EINPROGRESS) {
			*mem = lost;   /* deferred: only with mem (fill->defer) */
			fd = 0;        /* the bytes are in *mem, *fdp stays -1 */
		} else if (fd >= 0)
			*fdp = fd;

		pthread_mutex_lock(&c->mu);
		for (struct vmb_cache_flight **p = &c->flights; *p; p = &(*p)->next)
			if (*p == f) {
				*p = f->next;
				break;
			}
		f->done = 1;
		f->rc = fd < 0 ? fd : 0;
		if (fd < 0 && lost) {
			/* not kept: for this caller and the waiters that take bytes from
			 * memory (the others get the error) */
			f->mem = lost;
			if (mem) {
				VMB_ATOMIC_ADD(&lost->refs, 1);
				*mem = lost;
				fd = 0;
			}
		}
		if (fd < 0 && err)
			*err = f->err;
		pthread_cond_broadcast(&f->cv);
		flight_put(f);
		pthread_mutex_unlock(&c->mu);
		if (fd < 0)
			return fd;
		return 0;
	}
	return vmb_err_set(err, EAGAIN, "cache '%s': chunk %s keeps vanishing (evicted as "
			   "soon as filled?)", c->path, rel + 3);
}

int vmb_cache_get(struct vmb_cache *c, const uint8_t digest[32], uint64_t len,
		  vmb_cache_fill_fn fill, void *arg, int *fdp, int *hit, struct vmb_err *err)
{
	struct filler fl = { .fd = fill, .arg = arg };

	return get(c, digest, len, fill ? &fl : NULL, NULL, fdp, hit, err);
}

int vmb_cache_get_mem(struct vmb_cache *c, const uint8_t digest[32], uint64_t len,
		      vmb_cache_fillmem_fn fill, void *arg, int *fdp, int *hit,
		      struct vmb_err *err)
{
	struct filler fl = { .mem = fill, .arg = arg };

	return get(c, digest, len, fill ? &fl : NULL, NULL, fdp, hit, err);
}

int vmb_cache_get_ref(struct vmb_cache *c, const uint8_t digest[32], uint64_t len,
		      vmb_cache_fillmem_fn fill, void *arg, int *fdp,
		      struct vmb_cache_mem **mem, int *hit, struct vmb_err *err)
{
	struct filler fl = { .mem = fill, .arg = arg, .defer = 1 };

	return get(c, digest, len, fill ? &fl : NULL, mem, fdp, hit, err);
}
