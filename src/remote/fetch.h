/* fetch.h - fetchers: whole or ranged GET, HEAD and PUT of the objects of a published
 * store at a base URL (file://DIR, http://HOST/PREFIX, https://HOST/PREFIX,
 * s3://BUCKET/PREFIX, and s3+http(s)://HOST[:PORT]/BUCKET/PREFIX: S3 at that
 * S3-compatible endpoint, path style, signed as s3://). libcurl lives only behind this header (remote/fetch*.c).
 *
 * One struct vmb_fetcher per base URL. Thread-safe: any number of threads call the
 * blocking functions at once. For http(s) and s3, the requests of all threads go to
 * one curl multi handle driven by one thread of the fetcher (connection reuse, HTTP/2
 * multiplexed over TLS where the server offers it through ALPN, up to max_inflight
 * transfers at once) with a curl share handle for DNS and TLS sessions; file:// reads
 * and writes in the calling thread.
 *
 * Every attempt that fails for a reason that may pass (HTTP 5xx, 408, 429, a reset or
 * refused connection, a timeout or stall, a body shorter than its Content-Length) is
 * retried after a capped exponential backoff with full jitter (vmb_retry_delay_ms):
 * in soft mode up to opts.retries more times, then -EIO; in hard mode forever, until
 * the fetcher is closed (vmb_fetcher_cancel or vmb_fetcher_close ends every wait with
 * -ECANCELED). Failures that will not pass are not retried: 404/410 -> -ENOENT,
 * 401/403 -> -EACCES, an object larger than the buffer -> -EFBIG, a bad path or URL,
 * a TLS certificate that does not verify. Every failure returns -errno with a message
 * naming the URL and the cause ("cannot fetch 'https://h/p/objects/ab/..': HTTP 503
 * after 5 attempts"); a short object is never returned as a success.
 *
 * Paths (relative to the base URL) are plain: [A-Za-z0-9._~-] components separated by
 * single '/', no "." or ".." component, no leading or trailing '/' (-EINVAL otherwise).
 *
 * Ownership: the caller owns the fetcher (open/close); opts strings are copied at open.
 * Buffers passed to the calls stay the caller's. Locking: one mutex per fetcher (its
 * queue, waits and stats); the engine thread takes it only around queue and
 * completion updates, never while curl runs a transfer.
 */
#ifndef VMB_FETCH_H
#define VMB_FETCH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "base/err.h"

struct vmb_fetcher;
struct vmb_transport;

struct vmb_fetch_opts {
	long connect_timeout_ms;   /* default 10000 */
	long low_speed_time_s;     /* a transfer slower than low_speed_bytes/s for this long fails; default 15 */
	long low_speed_bytes;      /* default 1024 */
	int  retries;              /* soft mode: attempts after the first; default 4 */
	long backoff_ms, backoff_max_ms;   /* capped exponential backoff with full jitter; 200 / 5000 */
	int  hard;                 /* retry forever (NFS hard) */
	const char *cafile;        /* NULL: system CAs; TLS verification always on */
	const char *endpoint;      /* s3://: http(s)://host[:port] (path-style); NULL: AWS virtual-host
				      style; an s3+http(s):// URL names its own (this may only repeat it) */
	const char *region;        /* s3: NULL -> AWS_REGION / ~/.aws/config / us-east-1 */
	unsigned max_inflight;     /* transfers at once per fetcher; default 16 */
	const struct vmb_transport *transport;  /* tests: a scripted transport instead of curl */
	/* Added: where hard mode says that it keeps retrying (once a minute) and when it
	 * works again; NULL: nowhere. Must outlive the fetcher. */
	const struct vmb_log *log;
};

void vmb_fetch_opts_default(struct vmb_fetch_opts *);

/* -EINVAL with a message (which does not show it) when url has a user name or
 * password (user:password@host): it would be kept in stores and shown to every
 * local user. Else 0. */
int vmb_fetch_url_no_userinfo(const char *url, struct vmb_err *err);
/* The form of a published store's URL that is kept (in a pulled bundle's .remote
 * layer, a URL mount's shadow store, the cache's saved indexes): an s3:// URL read
 * through an S3-compatible endpoint becomes s3+http://HOST[:PORT]/BUCKET[/PREFIX] (or
 * s3+https://...), which names its endpoint, so that a remount or a prefetch later
 * finds it without being told again. The endpoint: ENDPOINT when not NULL (--endpoint,
 * -o endpoint=), else as the AWS tools find it (vmb_s3_endpoint: AWS_ENDPOINT_URL_S3,
 * AWS_ENDPOINT_URL, endpoint_url of the AWS profile). An s3:// URL without an endpoint
 * (AWS itself) and every other URL are copied, without trailing '/'. Checks the form
 * of s3 URLs and endpoints: -EINVAL for a bad one, for ENDPOINT with a URL that is not
 * s3://, or with an s3+http(s):// URL that names another; -ENAMETOOLONG. */
int vmb_fetch_url_resolve(const char *url, const char *endpoint, char *out, size_t len,
			  struct vmb_err *err);

/* Opens a fetcher for URL (see the top). Checks the URL's form, and for s3 loads the
 * credentials (remote/fetch_s3.h); no network traffic. */
int  vmb_fetcher_open(const char *url, const struct vmb_fetch_opts *, struct vmb_fetcher **,
		      struct vmb_err *);
/* NULL-safe. Ends every wait (as vmb_fetcher_cancel), waits for the calls in progress
 * to return, then frees. */
void vmb_fetcher_close(struct vmb_fetcher *);
/* Ends every wait now, in retry backoffs and on transfers: they return -ECANCELED, and
 * so does every later call. For an unmount with readers blocked in hard mode. */
void vmb_fetcher_cancel(struct vmb_fetcher *);
/* Opens a connection ahead of the first read (and its TLS session): one HEAD of PATH,
 * a single attempt whose outcome is ignored (not retried, not counted in the stats;
 * nothing for file://). Blocks for that attempt. */
void vmb_fetcher_warm(struct vmb_fetcher *, const char *path);
/* The base URL as given at open (without a trailing '/'). */
const char *vmb_fetcher_url(const struct vmb_fetcher *);
/* Added: the location PATH is really requested at, in *out (caller frees): the file
 * name for file://, the https URL of the bucket for s3:// (virtual-host style on AWS,
 * path style under an endpoint or for a bucket name with '.', '_' or capitals).
 * For messages and status. -EINVAL for a bad path, -ENOMEM. */
int vmb_fetcher_object_url(const struct vmb_fetcher *, const char *path, char **out,
			   struct vmb_err *);

/* Transfers started by the calling thread from now on are background ones (on 1) or
   not (0, the default): a background transfer waiting for one of a fetcher's
   max_inflight slots is queued behind every other one waiting, so that a reader's
   own fetch never waits for readahead or prefetch queued before it. Per thread. */
void vmb_fetch_set_background(int on);

/* GET the object at PATH (relative to the URL: "index", "objects/ab/...") whole, or
   bytes [off, off+len) of it when len > 0, into buf (which must hold len or max).
   Returns the byte count. An object longer than max: -EFBIG. 404: -ENOENT. A range
   past the end of the object: -EINVAL (not retried). */
ssize_t vmb_fetch_get(struct vmb_fetcher *, const char *path, uint64_t off, size_t len,
		      void *buf, size_t max, struct vmb_err *);
/* vmb_fetch_get of the whole object, which also gives the SHA-256 of the bytes
   returned in sha: the http(s) and s3 transports compute it as the bytes arrive,
   beside the transfer, so that a caller checking them need not read them again
   (sha NULL: none). soft: give up after the soft retry budget even in hard mode (vmb_fetch_req). */
ssize_t vmb_fetch_get_sha(struct vmb_fetcher *, const char *path, void *buf, size_t max,
			  uint8_t sha[32], int soft, struct vmb_err *);
/* Publishing: does PATH exist (HEAD; 0 / -ENOENT; *len, when not NULL, gets its size),
   and PUT bytes (S3 SigV4 via CURLOPT_AWS_SIGV4; file:// writes temp + fsync + rename;
   plain http(s) PUT as well, for WebDAV-like servers). */
int vmb_fetch_head(struct vmb_fetcher *, const char *path, uint64_t *len, struct vmb_err *);
/* vmb_fetch_head that also gives the object's ETag (quotes removed; "" when the
   transport or the server gives none: file://) in etag[etag_size]. */
int vmb_fetch_head_etag(struct vmb_fetcher *, const char *path, uint64_t *len, char *etag,
			size_t etag_size, struct vmb_err *);
int vmb_fetch_put(struct vmb_fetcher *, const char *path, const void *buf, size_t len,
		  struct vmb_err *);

struct vmb_fetch_stats {
	uint64_t requests;   /* calls made (get, head, put) */
	uint64_t bytes;      /* bytes received by successful gets, sent by successful puts */
	uint64_t retries;    /* attempts after a transient failure */
	uint64_t errors;     /* calls that failed */
	uint64_t inflight;   /* calls in progress now */
	uint64_t own_thread; /* http(s)/s3 attempts run in their caller's own thread (the
				engine was idle: no hand-over to its thread) */
	char last_error[256];
};
void vmb_fetcher_stats(struct vmb_fetcher *, struct vmb_fetch_stats *);

/* ---- retry policy and transports (for the fetchers and their tests) ---- */

/* The delay before retry number ATTEMPT (0 for the first retry): full jitter over
 * [0, min(backoff_max_ms, backoff_ms * 2^attempt)], rnd a uniform 64-bit random
 * number. Pure. */
long vmb_retry_delay_ms(int attempt, const struct vmb_fetch_opts *, uint64_t rnd);

enum vmb_fetch_op { VMB_FETCH_GET, VMB_FETCH_HEAD, VMB_FETCH_PUT };

/* One request, as the retry loop hands it to a transport for each attempt. */
struct vmb_fetch_req {
	enum vmb_fetch_op op;
	const char *path;        /* checked relative path */
	const char *url;         /* full URL of the object, for messages */
	uint64_t off;            /* GET: range start (when len > 0) */
	size_t len;              /* GET: range length, 0 for the whole object */
	void *buf;               /* GET: destination */
	size_t max;              /* GET: capacity of buf (>= len when len > 0) */
	const void *body;        /* PUT: bytes */
	size_t body_len;
	uint64_t size;           /* out, HEAD: the object's size */
	char etag[72];           /* out, HEAD over http(s)/s3: its ETag header's value,
				  * quotes removed ("" when none or too long) */
	uint8_t *sha;            /* GET of a whole object: when not NULL, gets the
				  * SHA-256 of the bytes returned */
	int sha_done;            /* set by a transport that computed *sha itself (as
				  * the bytes came); else the frame computes it */
	int soft;                /* in hard mode too, give up after the soft retry
				  * budget (-EIO): a caller with other URLs to try
				  * waits over all of them itself */
};

/* One attempt of a request: returns the bytes received (GET) or 0 (HEAD, PUT), or
 * -errno with err set to the cause alone ("HTTP 503", "connection reset: ...");
 * the loop adds URL and attempt count. *transient = 1 when trying again may succeed.
 * A GET must return exactly len bytes for a range, and never a short whole object.
 * Called from any thread at once. */
struct vmb_transport {
	ssize_t (*attempt)(void *arg, struct vmb_fetch_req *req, int *transient,
			   struct vmb_err *err);
	void *arg;
};

#endif
