/* cache.h - the host's shared, verified, content-addressed object cache (issue 11 §5,
 * REMOTE.md §3). It knows digests and bytes only: no images, no URLs beyond the
 * opaque CACHE/urls/ slots, no curl, no FUSE.
 *
 * Layout of CACHE (man/vmbundlefs.5, CACHE):
 *   version                 "vmbundlefs-cache 1\n"
 *   chunks/<aa>/<64 hex>    a verified object, named by the SHA-256 of its bytes
 *   tmp/                    temporaries: unnamed (O_TMPFILE) while a fill runs, or
 *                           <64 hex>.<pid>.<rand> where the file system cannot;
 *                           <kind>.<pid>.<rand> for pins, url slots, the probe
 *   lock/objects            per-digest single-flight locks (one-byte OFD locks)
 *   lock/evict              held by the one evicter at a time
 *   pins/<name>             pinned digests (never evicted)
 *   urls/<64 hex>           opaque slots (the last verified top index of a URL)
 *   meta/<aa>/<64 hex>      metadata objects (manifests, image indexes) the remote
 *                           layer fetches and writes itself (remote.c); counted and
 *                           evicted with the chunks (LRU, pins), checked by fsck
 *   mnt/                    left to the remote layer (shadow stores of mounts)
 *
 * Presence: a fill writes the object to a temporary and checks it (size and
 * SHA-256); its caller, and the other callers in this process, read it from there at
 * once. A background thread of the vmb_cache (the flusher, cache_flush.c) then
 * fsyncs it, renames (links) it into chunks/ and fsyncs the directory, in batches,
 * once its fills pause (or another process waits: cache_flush.c); only then
 * is it present for other processes and after a crash, and only then is the digest's
 * lock released (another process that needs it meanwhile waits, as for any fill).
 * Once durable, its pages are dropped from the page cache (a mount's readers hold the
 * bytes in the mount's own page cache: not twice in memory; later readers read the
 * disk).
 * Fills run ahead of the flusher by at most VMB_CACHE_PEND_BYTES (cache_int.h).
 * vmb_cache_close flushes everything. A present object is served without re-hashing
 * it (fsck re-hashes): whoever can write CACHE is trusted, so a world-writable CACHE
 * is refused.
 *
 * Single-flight: in a process, callers of vmb_cache_get for the same absent digest
 * share one flight (mutex + condition): one runs the fill, the others wait for its
 * result, errors included; a caller that finds no flight looks again for a pending
 * or present object under the same mutex before it starts one. Across processes
 * the filler (then its flusher) holds an OFD write lock on one byte of lock/objects,
 * at an offset taken from the digest, through a description shared by the cache's
 * fills. A waiter blocks on that lock; when it gets it, the object is present (done)
 * or not (the filler failed or died: the waiter fills). A waiter that did not get it
 * within opts.fill_wait_ms (its holder may be stopped) fills the object itself
 * without the lock: two fills of one object are harmless (the same bytes, put in
 * place by an atomic rename or link); such a fill removes nothing it finds in place
 * (a damaged object is replaced by the rename), and its pending object holds no
 * lock (the flusher releases none for it; a named temporary of it may be swept by
 * another process once the holder is gone: then it is only not kept). A kill -9 at any point leaves at
 * most a named temporary (removed when next swept: open, fsck; an unnamed one goes
 * with the process), never a visible partial object.
 *
 * Modes: CACHE is created 0755 when this code creates it; its subdirectories take
 * CACHE's own permission bits (so an administrator who makes CACHE 2775 with a group
 * gets a group-shared cache), files are 0644, 0664 when CACHE is group-writable,
 * whatever the umask; but lock/ and its files give others nothing (0700, 0600;
 * 02770, 0660 when group-shared: a read lock on them stops fills or eviction), and
 * those of an older cache are narrowed when their owner or root opens it. A process
 * that cannot write CACHE gets a clear error from vmb_cache_open (never a silent
 * no-cache).
 *
 * Eviction: LRU by mtime (a hit touches a file whose mtime is older than 10
 * minutes). When the cache holds more than max_bytes (st_size of its objects) it is
 * trimmed, oldest first, to 90% of max_bytes, and while the file system has less than
 * min_free_bytes free; never a pinned object, never one whose lock is held (being
 * filled or checked). One evicter at a time per CACHE (lock/evict); readers never
 * wait for it; an open descriptor of an evicted object stays readable. A background
 * thread of each vmb_cache runs it after fills (and once at open); vmb_cache_evict
 * runs it at once.
 *
 * Threads: every function is thread-safe. A vmb_cache must not be used in a child
 * after fork(); open another one there. Lock order: cache->mu, then (only in the
 * filler) the per-digest lock, then cache->fl_mu (a leaf); the evicter holds
 * lock/evict, then one per-digest lock at a time, never cache->mu.
 */
#ifndef VMB_CACHE_H
#define VMB_CACHE_H

#include <stdint.h>
#include <stdio.h>
#include "base/err.h"

struct vmb_cache;

struct vmb_cache_opts {
	uint64_t max_bytes;       /* 0: no limit */
	uint64_t min_free_bytes;  /* default 1 GiB; 0: no free-space rule */
	int evict_manual;         /* tests, fsck: no background eviction, only vmb_cache_evict */
	int no_pause;             /* the flusher never waits for fills to pause
	                           * (cache_flush.c): prefetch, whose point is bytes on
	                           * the disk, keeps them there as it goes (a kill loses
	                           * little) */
	int no_sweep;             /* fsck -n: leave stale temporaries for the check to report */
	int check;                /* fsck: a non-directory where a chunks/<aa> goes is left
	                           * for the check to report (and remove, with repair),
	                           * not refused */
	const struct vmb_log *log; /* background eviction errors (NULL: stderr) */
	unsigned fill_wait_ms;    /* how long a fill waits for another process's fill of
	                           * the same object (its lock) before it fills the object
	                           * itself, without the lock (one log line): a holder that
	                           * is stopped (SIGSTOP, Ctrl-Z, a frozen container) would
	                           * otherwise stop every reader of it for as long. 0: for
	                           * ever (hard mode). Default VMB_CACHE_FILL_WAIT_MS */
};

#define VMB_CACHE_FILL_WAIT_MS 25000   /* a soft fetch's connect and stall timeouts */

#define VMB_CACHE_MIN_FREE_DEFAULT (1ULL << 30)

/* max_bytes 0, min_free_bytes VMB_CACHE_MIN_FREE_DEFAULT, background eviction. */
void vmb_cache_opts_default(struct vmb_cache_opts *o);

/* The default CACHE of this process: /var/cache/vmbundlefs for root, else
 * $XDG_CACHE_HOME/vmbundlefs (when absolute), else $HOME/.cache/vmbundlefs. */
int vmb_cache_default_dir(char *buf, size_t size, struct vmb_err *err);

/* Open (creating it and its parents when absent) the cache at dir; opts NULL:
 * defaults. Refuses a directory that holds other things and no version file, an
 * unknown version, a CACHE this process cannot write (-EACCES/-EROFS, naming owner,
 * mode and uid), and one that others could plant bytes in (-EPERM, naming the
 * directory, its owner and mode): CACHE or a directory of its layout (chunks/,
 * chunks/<aa>, meta/, meta/<aa>, mnt/, tmp/, lock/, pins/, urls/) writable by
 * everyone, group-writable unless CACHE is group-shared (with CACHE's group), or
 * owned by another uid than this process's, root or (for the subdirectories)
 * CACHE's owner, unless group-shared with CACHE's group; CACHE itself owned by
 * another uid than this process's or root, unless group-shared and this process
 * in its group. A symbolic link or other non-directory where a directory of the
 * layout goes: -ENOTDIR. Removes stale temporaries (unless opts->no_sweep). */
int vmb_cache_open(const char *dir, const struct vmb_cache_opts *opts,
		   struct vmb_cache **out, struct vmb_err *err);
/* NULL-safe. Stops the background evicter; no call may be running. */
void vmb_cache_close(struct vmb_cache *c);
const char *vmb_cache_path(const struct vmb_cache *c);

/* The fill callback writes exactly len bytes of the object to fd (at offset 0);
 * returns 0 or -errno with err set. It runs in the thread of one of the callers. */
typedef int (*vmb_cache_fill_fn)(void *arg, const uint8_t digest[32], uint64_t len,
				 int fd, struct vmb_err *err);

/* An O_RDONLY descriptor (the caller closes it) of the verified object DIGEST of LEN
 * bytes. If absent: single-flight across threads and processes (above); the result
 * is verified (SHA-256 == digest, size == len); a mismatch is filled once more, then
 * -EIO ("chunk <hex>: fetched bytes do not match their digest (twice)"). A fill
 * error is returned as is (in-process waiters get the same error; a waiter in
 * another process tries the fill itself). *hit (may be NULL): 1 when the object was
 * present at the call. A present object of another size than len whose bytes match
 * the digest: -EINVAL (the caller's len is wrong); one whose bytes do not match is
 * removed and filled again. fill NULL: only what is present (else -ENOENT). */
int vmb_cache_get(struct vmb_cache *c, const uint8_t digest[32], uint64_t len,
		  vmb_cache_fill_fn fill, void *arg, int *fd, int *hit, struct vmb_err *err);

/* A fill that fetches into memory: *buf gets a buffer of vmb_buf_get
 * (base/bufpool.h) holding *got bytes (the cache gives it back); 0 or -errno with
 * err set (then *buf is NULL). A fill that computed the SHA-256 of exactly those
 * bytes as they came puts it in sha and sets *have_sha (the cache then compares it,
 * without hashing the buffer again); else *have_sha stays 0. */
typedef int (*vmb_cache_fillmem_fn)(void *arg, const uint8_t digest[32], uint64_t len,
				    void **buf, size_t *got, uint8_t sha[32], int *have_sha,
				    struct vmb_err *err);
/* vmb_cache_get with a fill into memory: the bytes are checked there, before they
 * are written to the temporary (wrong bytes never reach the disk, and the object is
 * not read back to be hashed). */
int vmb_cache_get_mem(struct vmb_cache *c, const uint8_t digest[32], uint64_t len,
		      vmb_cache_fillmem_fn fill, void *arg, int *fd, int *hit,
		      struct vmb_err *err);
/* A verified object's bytes in memory (vmb_cache_get_ref), shared and read-only:
 * the holder of a reference reads data[0, len) until it gives it back. */
struct vmb_cache_mem {
	const void *data;   /* a buffer of base/bufpool.h, freed with the last reference */
	size_t len;
	unsigned refs;      /* __atomic */
};
/* Give back a reference; NULL-safe. */
void vmb_cache_mem_put(struct vmb_cache_mem *m);

/* vmb_cache_get_mem for a caller that can take the bytes from memory. When this
 * call fills the object, or a fill of this process has its bytes and has not yet
 * written them to the disk, *mem gets a reference to them and *fd is -1: the
 * object's temporary is then written by the flusher (off the reader's way: a reader
 * of a cold chunk waits for its transfer and its check, not for a file to be made
 * and written and read back). Else *mem is NULL and *fd as vmb_cache_get_mem. Other
 * processes see the object as vmb_cache_get_mem makes it: present once durable.
 * Also when a fill of this process (this call's, or one of vmb_cache_get_mem that
 * this call waited for) had verified bytes it could not write to a temporary (a full
 * file system): *mem gets them, *fd is -1, and they are not kept (not pending: the
 * next get fills the object again). */
int vmb_cache_get_ref(struct vmb_cache *c, const uint8_t digest[32], uint64_t len,
		      vmb_cache_fillmem_fn fill, void *arg, int *fd,
		      struct vmb_cache_mem **mem, int *hit, struct vmb_err *err);
/* 1 if present (or filled by this vmb_cache and not yet flushed), else 0. */
int vmb_cache_has(struct vmb_cache *c, const uint8_t digest[32]);
/* Wait until every object this vmb_cache filled is durable and in chunks/ (the
 * flusher's work; vmb_cache_close does it too). 0. */
int vmb_cache_flush(struct vmb_cache *c);

/* Pins: a pinned object is never evicted (a bundle whose source is gone or
 * unfetchable). A pin is a file CACHE/pins/<name> listing digests ("vmbundlefs-pin
 * 1" then one hex digest a line), replaced atomically; it survives restarts. name:
 * 1-200 of [A-Za-z0-9._-], not starting with '.'. vmb_cache_pin waits for a running
 * eviction: when it returns, no object it names is evicted (absent ones are not
 * fetched by it). */
int vmb_cache_pin(struct vmb_cache *c, const char *name, const uint8_t (*digests)[32],
		  size_t n, struct vmb_err *err);
int vmb_cache_unpin(struct vmb_cache *c, const char *name, struct vmb_err *err);

/* Run LRU eviction now (waits for a running evicter, then runs). 0 or -errno (a
 * malformed pin file stops eviction: pins protect what cannot be fetched again). */
int vmb_cache_evict(struct vmb_cache *c, struct vmb_err *err);

/* Check the cache: re-hash every object, find stale temporaries, stray files in the
 * cache's own folders, malformed pins; with repair, remove bad objects, stale
 * temporaries and stray files (never anything at CACHE's top level, never a
 * directory). One line per problem to report (may be NULL), then a summary line.
 * Returns the number of problems found (0: clean), or -errno when it could not run.
 * Objects being filled are skipped. Leftover lock files are removed silently. */
int vmb_cache_fsck(struct vmb_cache *c, int repair, FILE *report, struct vmb_err *err);
/* The same, with figures: problems found, of which repaired (left: the others). */
struct vmb_cache_fsck_result {
	unsigned objects, problems, repaired;
	uint64_t bytes;
};
int vmb_cache_fsck_res(struct vmb_cache *c, int repair, FILE *report,
		       struct vmb_cache_fsck_result *res, struct vmb_err *err);

/* Opaque slots CACHE/urls/<sha256 of key> (the last verified top index of a URL):
 * save replaces atomically (temp, fsync, rename); load gives a malloc'd copy, or
 * -ENOENT when absent. Bytes are not verified by the cache. */
int vmb_cache_url_save(struct vmb_cache *c, const char *key, const void *buf, size_t len,
		       struct vmb_err *err);
int vmb_cache_url_load(struct vmb_cache *c, const char *key, void **buf, size_t *len,
		       struct vmb_err *err);

/* Counters. bytes (of chunks/ and meta/) and chunks (of chunks/): the objects
 * present, as of the last scan (open or
 * eviction) plus this process's fills and evictions since; the rest count this
 * vmb_cache's calls: hits (present at the call), misses (the others), waits (of
 * those, calls that waited for another caller's fill, in-process or not), fills
 * (fill callbacks run), fill_bytes, evicted (objects removed by eviction),
 * verify_failures (fills or present objects that failed their check); pending and
 * pending_bytes: this vmb_cache's objects the flusher has not made durable yet. */
struct vmb_cache_stats {
	uint64_t bytes, chunks, hits, misses, fills, fill_bytes, evicted, verify_failures;
	uint64_t waits;
	uint64_t pending, pending_bytes;   /* verified, not yet durable (the flusher's) */
	uint64_t scans;                    /* eviction scans of chunks/ by this process */
};
void vmb_cache_stats(struct vmb_cache *c, struct vmb_cache_stats *st);
/* Count the objects present now (a listing of chunks/ and meta/; also sets the
 * bytes and chunks counters): for a status command that cannot wait for the first scan. */
int vmb_cache_usage(struct vmb_cache *c, uint64_t *bytes, uint64_t *chunks,
		    struct vmb_err *err);
/* The lock of an object fetched outside chunks/ (CACHE/meta: manifests, image
 * indexes; remote.c), so that one process or thread fetches it while the others
 * wait and then find it: the object's per-digest lock (a descriptor of its own;
 * the kernel releases a killed holder's). The wait polls, and gives up with
 * -EINTR when the request is cancelled (base/cancel.h): the holder may wait for
 * the network for ever (hard mode). *lfd: release with vmb_cache_object_unlock.
 * 0 or -errno with a message. */
int vmb_cache_object_lock(struct vmb_cache *c, const uint8_t digest[32], int *lfd,
			  struct vmb_err *err);
void vmb_cache_object_unlock(int lfd);
/* Make meta/ and meta/<aa> for the object digest (remote.c) when absent, with the
 * modes of the cache's other directories whatever the umask. 0 or -errno. */
int vmb_cache_meta_dir(struct vmb_cache *c, const uint8_t digest[32], struct vmb_err *err);
/* The metadata object digest of meta/ was read (len 0: touched as a hit touches a
 * chunk, for LRU eviction) or was just put there with len bytes (counted in the
 * bytes, and the evicter kicked when a limit may be passed). Objects of meta/ are
 * evicted with the chunks, by the same rules (pins, locks, LRU). */
void vmb_cache_meta_used(struct vmb_cache *c, const uint8_t digest[32], uint64_t len);
/* opts.max_bytes of c (0: no limit). */
uint64_t vmb_cache_max_bytes(const struct vmb_cache *c);

#endif
