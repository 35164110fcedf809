/* fetch_int.h - what the files of the fetchers share (remote/fetch*.c only).
 *
 *   fetch.c        open/close/cancel, URL and path checks, the public calls, stats
 *   fetch_retry.c  the retry policy and the retry loop over a struct vmb_transport
 *   fetch_file.c   file://DIR: the transport over local files
 *   fetch_curl.c   the curl multi engine: its thread, or a lone caller, drives it
 *   fetch_http.c   http(s) and s3: one attempt as a curl easy handle, its checks
 *   fetch_s3.c     s3: credentials (env, ~/.aws files), region, SigV4 options
 *   fetch_curlerr.c vmb_curl_err: the one place that maps libcurl's errors
 */
#ifndef VMB_FETCH_INT_H
#define VMB_FETCH_INT_H

#include <pthread.h>
#include <curl/curl.h>
#include "remote/fetch.h"
#include "remote/fetch_s3.h"

enum vmb_fetch_kind { VMB_KIND_FILE, VMB_KIND_HTTP, VMB_KIND_S3 };

struct vmb_curl_engine;

struct vmb_fetcher {
	char *url;                  /* as given, without a trailing '/' */
	char *base;                 /* prefix of every object: "/dir/", "https://h/p/" */
	enum vmb_fetch_kind kind;
	struct vmb_fetch_opts opts; /* strings point at the copies below */
	char *cafile, *endpoint, *region;
	struct vmb_s3_creds creds;  /* s3 only; key_id NULL: anonymous requests */
	char *sigv4;                /* s3 with credentials: "aws:amz:REGION:s3" */
	struct vmb_transport tp;    /* the transport of every attempt */
	struct vmb_curl_engine *eng;   /* http(s), s3 */

	pthread_mutex_t mu;         /* guards everything below, and the engine's queue */
	pthread_cond_t cv;          /* CLOCK_MONOTONIC; broadcast on completion and cancel */
	int cancelled;
	unsigned users;             /* calls in progress */
	struct vmb_fetch_stats st;
	uint64_t rng;               /* xorshift state for the jitter */
};

/* fetch_retry.c: runs req through f->tp with retries (see fetch.h). Returns the
 * attempt's result, or -errno with the message "cannot <verb> '<url>': <cause>[ after
 * N attempts]". Counts retries in f->st. */
ssize_t vmb_fetch_run(struct vmb_fetcher *f, struct vmb_fetch_req *req, struct vmb_err *err);

/* fetch.c: st.last_error = "A" or "A: B", truncated. Under f->mu. */
void vmb_fetch_note_error(struct vmb_fetcher *f, const char *a, const char *b);

/* fetch_file.c: f->tp for file:// (f->base is the directory with a trailing '/'). */
void vmb_fetch_file_init(struct vmb_fetcher *f);

/* fetch_curl.c: the engine of f. start once at open; stop at close, when no call is
 * in progress. run hands EASY to the engine and waits for its end (driving the
 * engine itself when it has been idle a while): 0 with *code the transfer's result, or
 * -ECANCELED when the fetcher was cancelled (then the transfer was removed,
 * unfinished). */
int  vmb_curl_engine_start(struct vmb_fetcher *f, struct vmb_err *err);
void vmb_curl_engine_stop(struct vmb_fetcher *f);
int  vmb_curl_engine_run(struct vmb_fetcher *f, CURL *easy, CURLcode *code);
/* Wakes the engine's driver (it then sees a cancel); no-op without an engine. */
void vmb_curl_engine_wake(struct vmb_fetcher *f);
/* An easy handle for an attempt: one the engine keeps (curl_easy_reset), else a new
 * one; NULL when out of memory. put: done with it (kept for the next attempts, up to
 * VMB_CURL_IDLE_EASY, else cleaned up); NULL-safe. */
#define VMB_CURL_IDLE_EASY 32
CURL *vmb_curl_easy_get(struct vmb_fetcher *f);
void vmb_curl_easy_put(struct vmb_fetcher *f, CURL *easy);
/* Sets the share handle of the engine on EASY (DNS cache, TLS sessions). */
void vmb_curl_engine_share(struct vmb_fetcher *f, CURL *easy);
/* The transfers running now. For the engine's driver only (its callbacks). */
unsigned vmb_curl_engine_active(const struct vmb_fetcher *f);
/* pthread_once'd curl_global_init: 0 or -ENOMEM with err set. */
int  vmb_curl_global(struct vmb_err *err);

/* fetch_http.c: f->tp for http(s) and s3. */
void vmb_fetch_http_init(struct vmb_fetcher *f);

/* fetch_curlerr.c: the one place that turns a CURLcode (and curl's error buffer, may
 * be NULL or "") into -errno with the cause in err, and says whether a retry may
 * succeed. */
int vmb_curl_err(CURLcode code, const char *errbuf, int *transient, struct vmb_err *err);

#endif
