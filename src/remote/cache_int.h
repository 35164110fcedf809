/* cache_int.h - internals shared by the cache_*.c files (see cache.h). */
#ifndef VMB_CACHE_INT_H
#define VMB_CACHE_INT_H

#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include "base/digest.h"
#include "base/err.h"
#include "remote/cache.h"

#define VMB_CACHE_VERSION "vmbundlefs-cache 1\n"
#define VMB_CACHE_PIN_MAGIC "vmbundlefs-pin 1\n"
#define VMB_CACHE_TOUCH_SEC 600        /* a hit touches an mtime older than this */
#define VMB_CACHE_TMP_STALE_SEC 3600   /* a non-object temporary older than this is stale */
#define VMB_CACHE_PEND_BYTES (512ULL << 20)   /* verified, not yet durable (cache_flush.c) */
#define VMB_CACHE_DEFER_BYTES (64ULL << 20)   /* of those, still in memory only (fills of
                                        * vmb_cache_get_ref, written by the flusher) */
#define VMB_CACHE_QUIET_MS 20          /* the flusher waits for fills to pause this
                                        * long (cache_flush.c) */
#define VMB_CACHE_LOOK_MS 20           /* meanwhile it looks for waiters this often */
#define VMB_CACHE_EAGER_MS 1000        /* after it saw another process wait: no
                                        * waiting for a pause for this long */
#define VMB_CACHE_PEND_FDS 256         /* pending unnamed temporaries holding their fd
                                        * (at least; a quarter of the descriptor
                                        * limit, cache_open.c); more are given a name
                                        * in tmp/ (cache_flush.c) */
#define VMB_CACHE_PEND_FDS_MAX 2048    /* ... at most (512 MiB of 256 KiB chunks) */

/* One in-process flight: the callers of vmb_cache_get for one absent digest. Owned
 * by the list in vmb_cache while !done, freed by the last of its refs. */
struct vmb_cache_flight {
	uint8_t digest[32];
	int done, rc;
	unsigned refs;
	pthread_cond_t cv;             /* its waiters (under c->mu): signalled when done */
	struct vmb_err err;
	struct vmb_cache_mem *mem;     /* rc < 0: verified bytes the fill could not keep
	                                * (a reference, put with the flight), for its
	                                * waiters that take bytes from memory; or NULL */
	struct vmb_cache_flight *next;
};

struct vmb_cache {
	char *path;
	int dirfd, chunksfd, tmpfd, lockfd, pinsfd, urlsfd;   /* O_DIRECTORY, all owned */
	int fill_lfd;                  /* lock/objects: the fills' shared description */
	mode_t dmode, fmode;
	mode_t ldmode, lmode;          /* lock/ and its files: nothing for others (0700,
	                                * 0600; 02770, 0660 in a group-shared cache): a
	                                * read lock on lock/objects, which needs only a
	                                * read-only descriptor, stops every fill */
	uid_t owner;                   /* the cache directory's owner */
	gid_t gid;                     /* its group */
	int shared;                    /* group-shared: the cache directory is
	                                * group-writable (vmb_cache_trusted) */
	int anon_tmp;                  /* objects are filled into unnamed temporaries
	                                * (O_TMPFILE in tmp/, linked into chunks/ by the
	                                * flusher): probed at open (cache_open.c) */
	struct vmb_cache_opts opts;

	pthread_mutex_t mu;            /* guards flights */
	struct vmb_cache_flight *flights;

	/* background evicter: ev_mu guards ev_kick and ev_stop */
	pthread_mutex_t ev_mu;
	pthread_cond_t ev_cv;
	pthread_t ev_thread;
	int ev_started, ev_kick, ev_stop;

	/* the flusher (cache_flush.c): fl_mu guards pend, fl_started, fl_stop and
	 * the fields after them */
	pthread_mutex_t fl_mu;
	pthread_cond_t fl_cv;          /* a batch finished, a temporary was written */
	pthread_cond_t fl_wake;        /* the flusher's own: work came while it was idle,
	                                * a thread began to wait for it, stop
	                                * (CLOCK_MONOTONIC) */
	pthread_t fl_thread;
	int fl_started, fl_stop;
	int fl_idle;                   /* the flusher waits for work */
	unsigned fl_waiters;           /* threads waiting for the flusher */
	uint64_t fl_adds;              /* entries added since open */
	uint64_t fl_eager_until;       /* CLOCK_MONOTONIC ms: no waiting for a pause */
	unsigned quiet_ms;             /* VMB_CACHE_QUIET_MS (tests raise it) */
	struct vmb_cache_pend *pend;   /* verified objects not yet durable, oldest first */
	struct vmb_cache_pend *pend_tail;
	uint64_t pend_bytes;           /* their bytes */
	uint64_t pend_max;             /* fills wait while pend_bytes would pass it */
	uint64_t defer_bytes;          /* of pend_bytes, those still in memory only */
	uint64_t defer_max;            /* fills wait while defer_bytes would pass it */
	struct vmb_cache_pend *pend_hash[256];   /* the same, by the digest's first byte */
	uint64_t npend;                /* entries in pend (__atomic reads without fl_mu) */
	unsigned npend_fds;            /* of those, unnamed ones holding an fd (fl_mu) */
	unsigned pend_fds_max;         /* pend_fds_max() in cache_open.c (tests lower it) */

	/* counters, __atomic */
	uint64_t bytes, chunks, hits, misses, waits, fills, fill_bytes, evicted, verify_failures;
	int nokeep;                    /* a verified object could not be kept: said once
	                                * until one is kept again (vmb_cache_not_kept) */
	uint64_t since_scan;           /* bytes this process filled since the last scan */
	uint64_t scans;                /* eviction scans of chunks/ run by this process */
	int ev_short;                  /* the last scan left less than min_free free with
	                                * nothing more to remove (logged once; under
	                                * lock/evict) */
};

extern const char *const vmb_cache_known_top[];

/* Whether a file or directory of the cache (st: its lstat) may be trusted: owned by
 * root, this process's euid or the cache directory's owner (in a group-shared cache
 * also by anyone when its group is the cache's), not writable by others, and
 * group-writable only in a group-shared cache with the cache's group. Whoever
 * could write what fails this could decide the bytes the cache serves. */
int vmb_cache_trusted(const struct vmb_cache *c, const struct stat *st);

/* "aa/<64 hex>" of a digest, relative to chunks/ and lock/. */
#define VMB_CACHE_REL 68
void vmb_cache_rel(const uint8_t d[32], char rel[VMB_CACHE_REL]);
/* Parse 64 lower-case hex digits (exactly, then NUL or stop). 0 or -1. */
int vmb_cache_unhex(const char *s, uint8_t d[32]);

/* Create dir (relative to at) with c->dmode if absent: 1 when this call made it
 * (its parent then needs an fsync before anything in it may count as durable), 0
 * when it was there, or -errno. */
int vmb_cache_mkdir(struct vmb_cache *c, int at, const char *name);
/* A new name <kind>.<pid>.<rand> for tmp/ (random: a caller that finds it taken
 * makes another; tries varies it when getrandom fails). */
void vmb_cache_tmp_name(const char *kind, char name[128], int tries);
/* A unique temporary tmp/<kind>.<pid>.<rand>, O_RDWR, c->fmode; name gets its name. */
int vmb_cache_tmp_create(struct vmb_cache *c, const char *kind, char name[128],
			 struct vmb_err *err);
/* A temporary for an object's fill: unnamed (O_TMPFILE; name gets "") when
 * c->anon_tmp, else vmb_cache_tmp_create's named one. O_RDWR, c->fmode. */
int vmb_cache_tmp_object(struct vmb_cache *c, const char *hex, char name[128],
			 struct vmb_err *err);
/* vmb_cache_tmp_object holding buf[0, len): its fd, or -errno with err set and
 * nothing left behind (name then ""). */
int vmb_cache_tmp_write(struct vmb_cache *c, const char *hex, const void *buf, size_t len,
			char name[128], struct vmb_err *err);
/* Give the unnamed temporary fd the name name in dfd (linkat through /proc/self/fd:
 * AT_EMPTY_PATH would need CAP_DAC_READ_SEARCH). 0 or -errno. */
int vmb_cache_link_anon(int fd, int dfd, const char *name);
/* fsync the directory (relative to at) or at itself when name is NULL. */
int vmb_cache_fsync_dir(int at, const char *name);
/* Write buf to a temporary, fsync it, rename it to name in dirfd dfd, fsync dfd. */
int vmb_cache_write_atomic(struct vmb_cache *c, const char *kind, int dfd, const char *name,
			   const void *buf, size_t len, struct vmb_err *err);

/* Read the whole regular file name in dfd into a malloc'd buffer (NUL-terminated);
 * one vmb_cache_trusted refuses is -EPERM. */
int vmb_cache_read_file(struct vmb_cache *c, int dfd, const char *name, char **buf,
			size_t *len, struct vmb_err *err);

/* Append the digests of pins/<name> to *v (n used, cap allocated); a malformed pin
 * is -EINVAL naming it and the line. */
int vmb_cache_pin_read(struct vmb_cache *c, const char *name, uint8_t (**v)[32], size_t *n,
		       size_t *cap, struct vmb_err *err);

/* Per-digest lock: an OFD write lock on the byte vmb_cache_lock_byte(digest) of
 * lock/objects. vmb_cache_lock takes it through a descriptor of its own (the evicter,
 * fsck, the sweep: they must conflict with this process's fills too). wait: block,
 * else -EAGAIN when held. *lfd gets the descriptor; vmb_cache_unlock closes it
 * (lfd < 0: nothing).
 * Fills lock through one description shared by the whole vmb_cache (c->fill_lfd):
 * no descriptor per pending object, so the flusher can hold the locks of many. Two
 * fills of one digest in one process never race (the in-process flight), and OFD
 * locks of one description never conflict, so only other processes (and this
 * process's evicter, fsck, sweep) wait on them. */
off_t vmb_cache_lock_byte(const uint8_t digest[32]);
int vmb_cache_lock(struct vmb_cache *c, const uint8_t digest[32], int wait, int *lfd,
		   struct vmb_err *err);
void vmb_cache_unlock(int lfd);
/* vmb_cache_fill_lock: 0 (held), -EINTR (the request was cancelled), -ETIMEDOUT
 * (another process held it for c->opts.fill_wait_ms: the caller fills without it;
 * err not set), or -errno with err set. */
int vmb_cache_fill_lock(struct vmb_cache *c, const uint8_t digest[32], struct vmb_err *err);
/* 1 when a thread of another process (or of another description of lock/objects)
 * waits in vmb_cache_fill_lock, which holds a shared lock on byte 0 while it waits
 * (locks of the fills' own description never conflict with it); 1 also when it
 * cannot tell. */
int vmb_cache_waited_on(struct vmb_cache *c);
void vmb_cache_fill_unlock(struct vmb_cache *c, const uint8_t digest[32]);
/* Open lock/objects (created c->lmode when absent, set to it when ours; root takes
 * others' permissions off anyone's); an fd or -errno with err set. */
int vmb_cache_lock_open(struct vmb_cache *c, struct vmb_err *err);
/* At open: lock/ (open as c->lockfd) and lock/evict of an older cache (0755, 0644)
 * narrowed to c->ldmode and c->lmode when ours (or we are root); one log line when
 * others can still reach them. */
void vmb_cache_lock_modes(struct vmb_cache *c);
/* lock/evict, never removed. */
int vmb_cache_lock_evict(struct vmb_cache *c, int wait, int *lfd, struct vmb_err *err);

/* SHA-256 of the whole file fd; 0 or -errno. */
int vmb_cache_hash_fd(int fd, uint8_t out[32], uint64_t *size, struct vmb_err *err);

/* Remove stale temporaries of tmp/; counts in *n, those not removed in *left (both
 * may be NULL); with report, one line each. repair 0: only count. */
int vmb_cache_sweep_tmp(struct vmb_cache *c, int repair, FILE *report, unsigned *n,
			unsigned *left, struct vmb_err *err);

/* Test hook: VMB_CACHE_KILL_AT=<point> kills the process (SIGKILL) at that point of
 * a fill ("filled", "verified", "renamed"). */
void vmb_cache_step(const char *point);

/* The flusher (cache_flush.c). pend_add hands over a verified temporary of the
 * object rel whose fill lock (vmb_cache_fill_lock) the caller holds: the named
 * tmp/<tmp>, or (tmp "") the unnamed one open as fd, whose descriptor pend_add takes
 * over. From then on the flusher owns both (also on error): the temporary will be
 * fsync'd and renamed (linked) into chunks/, and the lock released; waits while too
 * many bytes are pending. Past VMB_CACHE_PEND_FDS unnamed ones, a new one is given
 * a name in tmp/ and its descriptor closed (the budget of descriptors is bounded).
 * pend_add_mem: the same for verified bytes in memory (no temporary yet): the
 * flusher writes them to a temporary first; it takes a reference of its own on mem
 * (the caller keeps its own, also on error); waits while too many bytes are in
 * memory only (VMB_CACHE_DEFER_BYTES).
 * pend_open: a read-only (named) or duplicated (unnamed) fd of a pending object, or
 * -ENOENT. One still in memory only: with mem, a reference to its bytes in *mem and
 * -EINPROGRESS; without, it waits until the flusher has written it (!wait: -EAGAIN
 * instead; a caller holding c->mu must not wait). pend_has: 1 if pending.
 * flush: wait until nothing is pending. flush_stop: flush everything, stop the
 * thread (vmb_cache_close).
 * locked 0: a fill that gave up waiting for another process's (vmb_cache_fill_lock's
 * -ETIMEDOUT) holds no lock; its entry releases none. */
int vmb_cache_pend_add(struct vmb_cache *c, const uint8_t digest[32], const char *rel,
		       const char *tmp, int fd, uint64_t len, int locked, struct vmb_err *err);
int vmb_cache_pend_add_mem(struct vmb_cache *c, const uint8_t digest[32], const char *rel,
			   struct vmb_cache_mem *mem, uint64_t len, int locked,
			   struct vmb_err *err);
int vmb_cache_pend_open(struct vmb_cache *c, const uint8_t digest[32],
			struct vmb_cache_mem **mem, int wait);
int vmb_cache_pend_has(struct vmb_cache *c, const uint8_t digest[32]);
void vmb_cache_flush_stop(struct vmb_cache *c);
void vmb_cache_flush_start(struct vmb_cache *c);   /* at open; a failure is retried */

/* A verified object (hex) could not be kept (why: the cause): logged the first time
 * until one is kept again (vmb_cache_kept, which says so). */
void vmb_cache_not_kept(struct vmb_cache *c, const char *hex, const char *why);
void vmb_cache_kept(struct vmb_cache *c);

/* The background evicter. */
int vmb_cache_evict_start(struct vmb_cache *c);
void vmb_cache_evict_stop(struct vmb_cache *c);
void vmb_cache_evict_kick(struct vmb_cache *c);
/* After a fill of len bytes: kick the evicter when a limit may be passed. */
void vmb_cache_after_fill(struct vmb_cache *c, uint64_t len);

#define VMB_ATOMIC_ADD(p, v) __atomic_add_fetch((p), (v), __ATOMIC_RELAXED)
#define VMB_ATOMIC_SUB(p, v) __atomic_sub_fetch((p), (v), __ATOMIC_RELAXED)
#define VMB_ATOMIC_LOAD(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define VMB_ATOMIC_STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)

#endif
