/* remote.h - a process's remote context (issue 11, REMOTE.md §4): one shared chunk
 * cache, one fetcher per published store URL, the options of remote images, the
 * metadata objects of published stores, and the stats `status` shows.
 *
 * One struct vmb_remote per process (the mount daemon, a CLI command). It is lazy:
 * opening it touches nothing; the cache is opened on the first use of a remote
 * image, a fetcher on the first fetch from its URL. So a local store mounts and
 * reads offline without a cache directory, and never consults a remote it does not
 * need.
 *
 * Metadata objects (bundle manifests, image indexes) are named by their digest but
 * their length is not known before they are fetched: they are kept, verified, in
 * CACHE/meta/<aa>/<64 hex> (written temp + fsync + rename, read back and checked
 * against their digest on every use), never evicted. The last verified top index of
 * each URL is kept in CACHE/urls/<sha256 of the URL, hex> (same durability), so a
 * mount of a URL works offline.
 *
 * Open images kept: the context keeps every remote image opened on it (one
 * reference each, its index decoded) up to VMB_REMOTE_KEEP images and
 * VMB_REMOTE_KEEP_BYTES bytes of index objects, least recently opened dropped
 * first, so a file's chain opened again (each stat and open of a file over a remote
 * layer opens it) finds its image ready instead of reading, hashing and decoding
 * its index again (2 MiB for a 16 GiB image). One loader per image at a time: a
 * second opener waits for the first (vmb_remote_image_claim).
 *
 * Readahead workers: a few threads (opts.workers) shared by every remote image of
 * the context fill chunks that sequential readers will want next (rimage.c queues
 * them; each queued item holds a reference on its image).
 *
 * Ownership and locking: the context owns the cache, the fetchers and the workers,
 * and one reference on each image it keeps (dropped by vmb_remote_close); every
 * remote image opened on it holds no reference on it: every other reference on an
 * image (and so all bases) must be put before vmb_remote_close. One mutex guards
 * the lazy opening, the list of fetchers, the work queue and the kept images; it is
 * never held during I/O (a kept image's last reference is put outside it). The functions
 * below are thread-safe.
 */
#ifndef VMB_REMOTE_H
#define VMB_REMOTE_H

#include <stddef.h>
#include <stdint.h>
#include "base/err.h"
#include "map/base.h"

struct vmb_remote;
struct vmb_cache;
struct vmb_fetcher;
struct vmb_pub_index;
struct vmb_rimage;

#define VMB_REMOTE_URL_MAX 4096
#define VMB_REMOTE_KEEP       32              /* open images kept (see above) */
#define VMB_REMOTE_KEEP_BYTES (512ull << 20)  /* ... and their index bytes */

/* buffers of an image's chunk size made warm when a mount's preload opens it: a
 * first reader's chunks then land in touched memory (base/bufpool.h) */
#define VMB_REMOTE_PREFAULT   32
#define VMB_REMOTE_WORKERS 32

struct vmb_remote_opts {
	const char *cache_dir;     /* NULL: the host's default (vmb_remote_default_cache) */
	uint64_t cache_max;        /* bytes; 0: no limit */
	int hard;                  /* -o hard: reads wait for the network */
	const char *cafile;        /* -o cafile=: CA bundle for https (NULL: system's) */
	const char *pubkey;        /* -o pubkey=: a raw 32-byte or PEM Ed25519 public
				      key file; then every top index must be signed by it */
	uint64_t rate;             /* prefetch: bytes/s, 0: no cap */
	unsigned workers;          /* readahead threads; 0: VMB_REMOTE_WORKERS */
	unsigned readahead_max;    /* the readahead window's cap, in chunks; 0:
				      VMB_RIMAGE_RA_BYTES of chunks (rimage.h) */
	unsigned queue_max;        /* tests: the workers' queue holds at most this many
				      chunks (0 or more than VMB_REMOTE_QUEUE: that) */
	long timeout_s;            /* soft mode: low-speed time (0: fetcher's default) */
	int offline;               /* tests and `mount` without network: fetch nothing */
	int cache_no_pause;        /* vmb_cache_opts.no_pause (prefetch) */
	const char *endpoint;      /* s3:// URLs that name no endpoint (an s3+http(s):// URL
				      names its own): this S3-compatible one; NULL: AWS */
};

/* Open a context with copies of opts (NULL: defaults). log (borrowed, may be NULL:
 * stderr) gets the lines of failed remote reads. */
int vmb_remote_open(const struct vmb_remote_opts *opts, const struct vmb_log *log,
		    struct vmb_remote **out, struct vmb_err *err);
/* Stop the workers, close fetchers and cache; NULL-safe. */
void vmb_remote_close(struct vmb_remote *r);
/* NULL-safe. Ends every fetch now and for good (vmb_fetcher_cancel on every fetcher,
 * and on those made later): waits in hard mode end with -ECANCELED. For a daemon
 * that stops while readers wait for the network; the context is still closed later. */
void vmb_remote_cancel(struct vmb_remote *r);

/* The host's default cache directory: $VMBUNDLEFS_CACHE when set (an absolute
 * path), else /var/cache/vmbundlefs for root, else $XDG_CACHE_HOME/vmbundlefs or
 * ~/.cache/vmbundlefs. */
int vmb_remote_default_cache(char *out, size_t len);

const struct vmb_remote_opts *vmb_remote_opts(const struct vmb_remote *r);
const struct vmb_log *vmb_remote_log(const struct vmb_remote *r);
const char *vmb_remote_cache_dir(const struct vmb_remote *r);

/* The cache (opened on first use, directory created). Owned by r. */
int vmb_remote_cache(struct vmb_remote *r, struct vmb_cache **out, struct vmb_err *err);
/* The fetcher of base URL url (opened on first use; owned by r). -ENETUNREACH
 * when r is offline. */
int vmb_remote_fetcher(struct vmb_remote *r, const char *url, struct vmb_fetcher **out,
		       struct vmb_err *err);
/* Opens the fetcher of url and a connection to its server in the calling thread, so
 * that the first read does not wait for one (vmb_fetcher_warm: one HEAD of the top
 * index, outcome ignored). Nothing when r is offline or url is file://. */
void vmb_remote_warm(struct vmb_remote *r, const char *url);

/* Normalize a published store's URL: a local path or file:// URL becomes
 * file://<absolute path>, trailing slashes go (http://, https://, s3:// and
 * s3+http(s):// URLs are kept; see vmb_fetch_url_resolve). 0 or -EINVAL (unknown scheme). */
int vmb_remote_url_norm(const char *in, char *out, size_t len, struct vmb_err *err);

/* The top index of url: fetched and verified (signature with opts.pubkey) and saved
 * in CACHE/urls/; when it cannot be fetched (network, offline) and a saved one
 * exists, the saved one (re-verified), *stale = 1. With opts.pubkey, a fetched index
 * of a lower generation than the saved one's (when that one verifies with the key),
 * or of the same generation with other bytes, is refused: -ESTALE, "refused as a
 * rollback" with the URL, both generations and the slot's file; nothing saved.
 * Without a key it is used and saved, with a log line. */
int vmb_remote_top(struct vmb_remote *r, const char *url, struct vmb_pub_index *out,
		   int *stale, struct vmb_err *err);

/* From now on, r answers every vmb_remote_top of a URL with the index it got first
 * for it (fetched, or the saved one when offline: *stale as then), so that a
 * command reading several bundles of one published store (a mount of its URL)
 * reads them all from one generation of the index and fetches it once. Off by
 * default (a daemon's pulls want the latest index). */
void vmb_remote_top_once(struct vmb_remote *r);

/* A metadata object of url (bundle manifest, image index): from CACHE/meta when
 * there and intact, else fetched (at most max bytes), verified and saved there.
 * *buf malloc'ed (caller frees). -EIO for bytes that do not match the digest. */
int vmb_remote_meta(struct vmb_remote *r, const char *url, const uint8_t digest[32],
		    size_t max, void **buf, size_t *len, struct vmb_err *err);

/* While on, the calling thread's vmb_remote_meta reads CACHE/meta only: an object
 * missing or damaged there is -ENOENT, never fetched (a background load that must
 * not wait for the network). Per thread; off by default. */
void vmb_remote_meta_local_only(int on);
/* While on, the calling thread's vmb_remote_meta fetches with the soft retry
 * budget in hard mode too (-EIO once it runs out; vmb_fetch_req.soft): for a
 * caller that has other URLs of the same object to try and waits over all of
 * them itself (rimage.c, an image index with mirrors). Per thread; off by
 * default. */
void vmb_remote_meta_soft(int on);
/* 1 when the calling thread's last vmb_remote_meta failed because the bytes
 * fetched did not match their digest (twice; -EIO), not for want of an answer:
 * a cause that waiting does not cure (hard mode's rounds, rimage.c). */
int vmb_remote_meta_mismatched(void);

/* 1 when the metadata object digest is in CACHE/meta (a stat; no check of its
 * bytes, no network), else 0. */
int vmb_remote_meta_cached(struct vmb_remote *r, const uint8_t digest[32]);

/* ---- open images kept (vmb_rimage_open) ----
 * Claim the image (url, digest): 1 and one new reference in *out when it is kept;
 * else 0: the caller loads it and must then call vmb_remote_image_done (with the
 * loaded base, or NULL when the load failed); a caller claiming an image another
 * thread is loading waits for that load first. bytes: the size of its index
 * object (what keeping it costs). done takes its own reference on b. */
int vmb_remote_image_claim(struct vmb_remote *r, const char *url, const uint8_t digest[32],
			   struct vmb_base **out);
void vmb_remote_image_done(struct vmb_remote *r, const char *url, const uint8_t digest[32],
			   struct vmb_base *b, uint64_t bytes);

/* Fetch object digest (len bytes) of the published store at url into a malloc'd
 * buffer (*buf, *got bytes; the caller frees it): the fill of a cache get, counted
 * as in flight meanwhile. Not verified here (the cache does it); sha gets the
 * SHA-256 of the bytes in *buf, computed as they came. soft: -EIO after the soft
 * retry budget in hard mode too (a caller that has other URLs to try). */
int vmb_remote_fetch_object(struct vmb_remote *r, const char *url, const uint8_t digest[32],
			    uint64_t len, void **buf, size_t *got, uint8_t sha[32], int soft,
			    struct vmb_err *err);
/* An object of known length (a small file of a bundle, a chunk) through the cache:
 * *fd an O_RDONLY descriptor of its verified bytes (caller closes); *hit 1 when it
 * was cached. */
int vmb_remote_object(struct vmb_remote *r, const char *url, const uint8_t digest[32],
		      uint64_t len, int *fd, int *hit, struct vmb_err *err);

/* ---- readahead workers (rimage.c queues; remote.c runs) ---- */

/* Queue chunk `chunk` of image ri for a worker (takes a reference on ri's base).
 * Returns 0, or -EAGAIN when the queue is full (the chunk is simply not read ahead). */
int vmb_remote_queue(struct vmb_remote *r, struct vmb_rimage *ri, uint64_t chunk);
/* Start the readahead workers now (the first vmb_remote_queue does otherwise): a
 * mount's preload, so that no reader waits for their creation. Idempotent. */
void vmb_remote_start_workers(struct vmb_remote *r);
/* Wait (at most timeout_ms) until no readahead is queued or running: 0, or
 * -ETIMEDOUT. For tests and benchmarks that look at the cache after reads. */
int vmb_remote_idle(struct vmb_remote *r, unsigned timeout_ms);

/* ---- stats ---- */

struct vmb_remote_stats {
	uint64_t reads;            /* chunk reads by remote images */
	uint64_t hits;             /* ... served from the cache without a fetch */
	uint64_t fetches;          /* objects fetched into the cache by this process */
	uint64_t fetch_bytes;
	uint64_t errors;           /* reads that failed */
	uint64_t inflight;         /* fills running now */
	uint64_t readahead;        /* chunks queued for readahead */
	uint64_t index_loads;      /* image indexes read, verified and decoded */
	uint64_t images_kept;      /* open images kept (see above) */
	uint64_t cache_bytes;      /* the cache's size (when open) */
	uint64_t cache_chunks;
	uint64_t cache_pending_bytes;  /* fetched, verified, not yet durable */
	uint64_t queued;               /* readahead queued or running now */
	uint64_t seconds;          /* since the context was opened */
	char last_error[256];
};
void vmb_remote_stats(struct vmb_remote *r, struct vmb_remote_stats *s);

/* Counters rimage.c updates. */
void vmb_remote_count(struct vmb_remote *r, int hit, uint64_t fetched_bytes);
void vmb_remote_count_error(struct vmb_remote *r, const char *msg);
void vmb_remote_inflight(struct vmb_remote *r, int delta);

#endif
