/* fetch.c - fetchers: open, close, cancel, the URL and path rules, the public calls
 * and their stats (see fetch.h). The transports do the I/O: fetch_file.c,
 * fetch_http.c over the engine of fetch_curl.c; fetch_retry.c runs their attempts. */
#include "config.h"
#include "remote/fetch_int.h"
#include "base/digest.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void vmb_fetch_opts_default(struct vmb_fetch_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->connect_timeout_ms = 10000;
	o->low_speed_time_s = 15;
	o->low_speed_bytes = 1024;
	o->retries = 4;
	o->backoff_ms = 200;
	o->backoff_max_ms = 5000;
	o->max_inflight = 16;
}

static int dup_opt(char **dst, const char *src)
{
	*dst = NULL;
	if (!src)
		return 0;
	*dst = strdup(src);
	return *dst ? 0 : -ENOMEM;
}

static int url_chars_ok(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= ' ' || (unsigned char)*s >= 0x7f || *s == '?' ||
		    *s == '#' || *s == '\\')
			return 0;
	return 1;
}

/* A path component: [A-Za-z0-9._~-]+, not "." or "..". */
static int seg_ok(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
		return 0;
	for (i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '~' || c == '-'))
			return 0;
	}
	return 1;
}

/* An object path or an s3 prefix: components separated by single '/'. */
static int path_ok(const char *p)
{
	const char *s = p, *e;

	if (!*p || strlen(p) > 1024)
		return 0;
	for (;;) {
		e = strchr(s, '/');
		if (!seg_ok(s, e ? (size_t)(e - s) : strlen(s)))
			return 0;
		if (!e)
			return 1;
		s = e + 1;
	}
}

/* S3 bucket names: 3-63 of [a-z0-9.-] (older buckets: also A-Z and _). *dns: usable
 * as a virtual-host name under TLS (lower case, no '.', no '_'). */
static int bucket_ok(const char *b, size_t n, int *dns)
{
	size_t i;

	*dns = 1;
	if (n < 3 || n > 63)
		return 0;
	for (i = 0; i < n; i++) {
		char c = b[i];

		if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')
			continue;
		if (c == '.' || c == '_' || (c >= 'A' && c <= 'Z'))
			*dns = 0;
		else
			return 0;
	}
	return b[0] != '-' && b[n - 1] != '-';
}

static int set_base(struct vmb_fetcher *f, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int set_base(struct vmb_fetcher *f, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&f->base, fmt, ap);
	va_end(ap);
	if (n < 0) {
		f->base = NULL;
		return -ENOMEM;
	}
	return 0;
}

static int parse_file(struct vmb_fetcher *f, struct vmb_err *err)
{
	const char *p = f->url + strlen("file://");

	if (!strncmp(p, "localhost/", 10))
		p += 9;
	if (p[0] != '/')
		return vmb_err_set(err, EINVAL, "invalid URL '%s': a file:// URL names an "
				   "absolute directory (file:///DIR)", f->url);
	f->kind = VMB_KIND_FILE;
	if (set_base(f, "%s/", strcmp(p, "/") ? p : ""))
		return vmb_err_set(err, ENOMEM, "cannot open '%s': out of memory", f->url);
	vmb_fetch_file_init(f);
	return 0;
}

static int parse_http(struct vmb_fetcher *f, struct vmb_err *err)
{
	const char *host = strstr(f->url, "://") + 3;

	if (!*host || *host == '/' || !url_chars_ok(f->url))
		return vmb_err_set(err, EINVAL, "invalid URL '%s': expected http(s)://HOST"
				   "[:PORT][/PREFIX] without spaces, '?' or '#'", f->url);
	f->kind = VMB_KIND_HTTP;
	if (set_base(f, "%s/", f->url))
		return vmb_err_set(err, ENOMEM, "cannot open '%s': out of memory", f->url);
	vmb_fetch_http_init(f);
	return 0;
}

/* An S3 endpoint: "http(s)://HOST[:PORT]" (HOST a name, an IPv4 or a [IPv6]
 * address), trailing '/' allowed. Returns its length without them, 0 when bad. */
static size_t endpoint_len(const char *e)
{
	const char *p = !strncmp(e, "http://", 7) ? e + 7 : !strncmp(e, "https://", 8) ? e + 8 :
			NULL, *h, *end;

	if (!p)
		return 0;
	h = p;
	if (*p == '[') {
		for (p++; (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') ||
			  (*p >= 'A' && *p <= 'F') || *p == ':' || *p == '.'; p++)
			;
		if (*p++ != ']' || p == h + 2)
			return 0;
	} else {
		for (; (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		       (*p >= '0' && *p <= '9') || *p == '.' || *p == '-'; p++)
			;
		if (p == h)
			return 0;
	}
	if (*p == ':') {
		const char *d = ++p;

		while (*p >= '0' && *p <= '9')
			p++;
		if (p == d || p - d > 5)
			return 0;
	}
	end = p;
	while (*p == '/')
		p++;
	return *p ? 0 : (size_t)(end - e);
}

/* BP = "BUCKET[/PREFIX]" of an s3 URL: checks it; *bn the bucket's length, *prefix
 * the rest ("" or a checked path). */
static int s3_split(const char *url, const char *bp, size_t *bn, const char **prefix,
		    int *dns, struct vmb_err *err)
{
	const char *slash = strchr(bp, '/');

	*bn = slash ? (size_t)(slash - bp) : strlen(bp);
	*prefix = slash ? slash + 1 : "";
	if (!bucket_ok(bp, *bn, dns))
		return vmb_err_set(err, EINVAL, "invalid URL '%s': the bucket name must be 3 to "
				   "63 of a-z, 0-9, '.', '-'", url);
	if (**prefix && !path_ok(*prefix))
		return vmb_err_set(err, EINVAL, "invalid URL '%s': the prefix must be components "
				   "of A-Z a-z 0-9 . _ ~ - separated by single '/'", url);
	return 0;
}

/* An s3+http(s)://HOST[:PORT]/BUCKET[/PREFIX] URL: *ep the length of its endpoint
 * (after "s3+"), *bp the bucket and prefix. */
static int s3plus_split(const char *url, size_t *ep, const char **bp, struct vmb_err *err)
{
	const char *e = url + 3, *h = strstr(e, "://"), *slash;
	char tmp[300];

	slash = h ? strchr(h + 3, '/') : NULL;
	*ep = slash ? (size_t)(slash - e) : 0;
	if (!slash || *ep >= sizeof(tmp))
		return vmb_err_set(err, EINVAL, "invalid URL '%s': expected "
				   "s3+http(s)://HOST[:PORT]/BUCKET[/PREFIX]", url);
	memcpy(tmp, e, *ep);
	tmp[*ep] = '\0';
	if (endpoint_len(tmp) != *ep)
		return vmb_err_set(err, EINVAL, "invalid URL '%s': '%s' is not an S3 endpoint "
				   "(http(s)://HOST[:PORT])", url, tmp);
	*bp = slash + 1;
	return 0;
}

static int resolve(const char *url, const char *endpoint, char *out, size_t len,
		   struct vmb_err *err)
{
	const char *bp, *prefix, *src;
	char *ep = NULL;
	size_t bn, el, pl;
	int dns, rc, n;

	if (!strncmp(url, "s3+http://", 10) || !strncmp(url, "s3+https://", 11)) {
		rc = s3plus_split(url, &pl, &bp, err);
		if (rc)
			return rc;
		rc = s3_split(url, bp, &bn, &prefix, &dns, err);
		if (rc)
			return rc;
		if (endpoint && (endpoint_len(endpoint) != pl || strncmp(endpoint, url + 3, pl)))
			return vmb_err_set(err, EINVAL, "'%s' names its endpoint already: do not "
					   "give another ('%s')", url, endpoint);
		n = snprintf(out, len, "%s", url);
	} else if (!strncmp(url, "s3://", 5)) {
		rc = s3_split(url, url + 5, &bn, &prefix, &dns, err);
		if (rc)
			return rc;
		rc = vmb_s3_endpoint(endpoint, &ep, &src, err);
		if (rc)
			return vmb_err_prefix(err, "cannot find the S3 endpoint for '%s'", url);
		if (!ep) {
			n = snprintf(out, len, "%s", url);
		} else {
			el = endpoint_len(ep);
			if (!el) {
				rc = vmb_err_set(err, EINVAL, "invalid S3 endpoint '%s' (from %s): "
						 "expected http(s)://HOST[:PORT]", ep, src);
				free(ep);
				return rc;
			}
			n = snprintf(out, len, "s3+%.*s/%s", (int)el, ep, url + 5);
			free(ep);
		}
	} else if (endpoint) {
		return vmb_err_set(err, EINVAL, "an endpoint is for s3:// URLs, not '%s'", url);
	} else {
		n = snprintf(out, len, "%s", url);
	}
	if (n < 0 || (size_t)n >= len)
		return vmb_err_set(err, ENAMETOOLONG, "URL too long: '%s'", url);
	return 0;
}

int vmb_fetch_url_no_userinfo(const char *url, struct vmb_err *err)
{
	const char *host = strstr(url, "://"), *at;
	size_t alen;

	if (!host)
		return 0;
	host += 3;
	alen = strcspn(host, "/?#");
	at = memchr(host, '@', alen);
	if (!at)
		return 0;
	/* said without what comes before the '@' */
	return vmb_err_set(err, EINVAL, "a URL with a user name or password ('%.*s...@%.*s') "
			   "is refused: it would be kept in the store's files and shown to "
			   "every local user by deps, status and xattrs (s3:// takes its "
			   "credentials from the AWS variables and files)", (int)(host - url), url,
			   (int)(alen - (size_t)(at + 1 - host)), at + 1);
}

int vmb_fetch_url_resolve(const char *url, const char *endpoint, char *out, size_t len,
			  struct vmb_err *err)
{
	char *u;
	size_t n;
	int rc;

	rc = vmb_fetch_url_no_userinfo(url, err);
	if (rc)
		return rc;
	u = strdup(url);
	n = u ? strlen(u) : 0;
	if (!u)
		return vmb_err_set(err, ENOMEM, "out of memory");
	/* no trailing '/' (after the prefix) */
	while (n > 0 && u[n - 1] == '/' && !(n >= 3 && !strncmp(u + n - 3, "://", 3)))
		u[--n] = '\0';
	rc = resolve(u, endpoint, out, len, err);
	free(u);
	return rc;
}

/* BP = "BUCKET[/PREFIX]", f->endpoint set or NULL. */
static int parse_s3(struct vmb_fetcher *f, const char *bp, struct vmb_err *err)
{
	const char *b = bp, *prefix;
	size_t bn;
	int dns, rc;

	rc = s3_split(f->url, bp, &bn, &prefix, &dns, err);
	if (rc)
		return rc;
	if (f->endpoint && !endpoint_len(f->endpoint))
		return vmb_err_set(err, EINVAL, "invalid S3 endpoint '%s': expected "
				   "http(s)://HOST[:PORT]", f->endpoint);
	f->kind = VMB_KIND_S3;
	rc = vmb_s3_creds_load(f->region, &f->creds, err);
	if (rc)
		return vmb_err_prefix(err, "cannot open '%s'", f->url);
	if (f->endpoint) {
		size_t el = strlen(f->endpoint);

		while (el > 8 && f->endpoint[el - 1] == '/')
			f->endpoint[--el] = '\0';
		rc = set_base(f, "%s/%.*s/%s%s", f->endpoint, (int)bn, b, prefix,
			      *prefix ? "/" : "");
	} else if (dns) {
		rc = set_base(f, "https://%.*s.s3.%s.amazonaws.com/%s%s", (int)bn, b,
			      f->creds.region, prefix, *prefix ? "/" : "");
	} else {
		rc = set_base(f, "https://s3.%s.amazonaws.com/%.*s/%s%s", f->creds.region,
			      (int)bn, b, prefix, *prefix ? "/" : "");
	}
	if (!rc && f->creds.key_id &&
	    asprintf(&f->sigv4, "aws:amz:%s:s3", f->creds.region) < 0) {
		f->sigv4 = NULL;
		rc = -ENOMEM;
	}
	if (rc)
		return vmb_err_set(err, ENOMEM, "cannot open '%s': out of memory", f->url);
	vmb_fetch_http_init(f);
	return 0;
}

static void fetcher_free(struct vmb_fetcher *f)
{
	pthread_cond_destroy(&f->cv);
	pthread_mutex_destroy(&f->mu);
	vmb_s3_creds_free(&f->creds);
	free(f->sigv4);
	free(f->url);
	free(f->base);
	free(f->cafile);
	free(f->endpoint);
	free(f->region);
	free(f);
}

/* s3+http(s)://ENDPOINT/BUCKET[/PREFIX]: the endpoint comes from the URL (an
 * opts.endpoint may only repeat it). */
static int open_s3plus(struct vmb_fetcher *f, struct vmb_err *err)
{
	const char *bp;
	size_t el;
	int rc = s3plus_split(f->url, &el, &bp, err);

	if (rc)
		return rc;
	if (f->endpoint && (endpoint_len(f->endpoint) != el ||
			    strncmp(f->endpoint, f->url + 3, el)))
		return vmb_err_set(err, EINVAL, "'%s' names its endpoint already: do not give "
				   "another ('%s')", f->url, f->endpoint);
	free(f->endpoint);
	f->endpoint = strndup(f->url + 3, el);
	if (!f->endpoint)
		return vmb_err_set(err, ENOMEM, "cannot open '%s': out of memory", f->url);
	f->opts.endpoint = f->endpoint;
	return parse_s3(f, bp, err);
}

int vmb_fetcher_open(const char *url, const struct vmb_fetch_opts *opts,
		     struct vmb_fetcher **out, struct vmb_err *err)
{
	struct vmb_fetcher *f;
	pthread_condattr_t ca;
	struct timespec now;
	size_t n;
	int rc;

	*out = NULL;
	f = calloc(1, sizeof(*f));
	if (!f)
		return vmb_err_set(err, ENOMEM, "cannot open '%s': out of memory", url);
	if (opts)
		f->opts = *opts;
	else
		vmb_fetch_opts_default(&f->opts);
	pthread_mutex_init(&f->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&f->cv, &ca);
	pthread_condattr_destroy(&ca);
	clock_gettime(CLOCK_REALTIME, &now);
	f->rng = ((uint64_t)now.tv_nsec << 20) ^ (uint64_t)now.tv_sec ^
		 ((uint64_t)getpid() << 40) ^ (uint64_t)(uintptr_t)f;
	if (!f->rng)
		f->rng = 0x9e3779b97f4a7c15ull;
	if (!f->opts.max_inflight)
		f->opts.max_inflight = 16;
	if (f->opts.retries < 0)
		f->opts.retries = 0;
	f->url = strdup(url);
	if (!f->url || dup_opt(&f->cafile, f->opts.cafile) ||
	    dup_opt(&f->endpoint, f->opts.endpoint) || dup_opt(&f->region, f->opts.region)) {
		rc = vmb_err_set(err, ENOMEM, "cannot open '%s': out of memory", url);
		goto out;
	}
	f->opts.cafile = f->cafile;
	f->opts.endpoint = f->endpoint;
	f->opts.region = f->region;
	n = strlen(f->url);
	while (n > 0 && f->url[n - 1] == '/' && !(n >= 3 && !strcmp(f->url + n - 3, "://")))
		f->url[--n] = '\0';

	if (!strncmp(url, "file://", 7))
		rc = parse_file(f, err);
	else if (!strncmp(url, "http://", 7) || !strncmp(url, "https://", 8))
		rc = parse_http(f, err);
	else if (!strncmp(url, "s3://", 5))
		rc = parse_s3(f, f->url + 5, err);
	else if (!strncmp(url, "s3+http://", 10) || !strncmp(url, "s3+https://", 11))
		rc = open_s3plus(f, err);
	else
		rc = vmb_err_set(err, EINVAL, "invalid URL '%s': expected file://, http://, "
				 "https:// or s3://", url);
	if (rc)
		goto out;
	if (f->opts.transport)
		f->tp = *f->opts.transport;
	else if (f->kind != VMB_KIND_FILE)
		rc = vmb_curl_engine_start(f, err);
out:
	if (rc) {
		fetcher_free(f);
		return rc;
	}
	*out = f;
	return 0;
}

void vmb_fetcher_cancel(struct vmb_fetcher *f)
{
	if (!f)
		return;
	pthread_mutex_lock(&f->mu);
	f->cancelled = 1;
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mu);
	/* the engine notices at its next turn: wake it */
	vmb_curl_engine_wake(f);
}

void vmb_fetcher_close(struct vmb_fetcher *f)
{
	if (!f)
		return;
	vmb_fetcher_cancel(f);
	pthread_mutex_lock(&f->mu);
	while (f->users)
		pthread_cond_wait(&f->cv, &f->mu);
	pthread_mutex_unlock(&f->mu);
	vmb_curl_engine_stop(f);
	fetcher_free(f);
}

const char *vmb_fetcher_url(const struct vmb_fetcher *f)
{
	return f->url;
}

void vmb_fetch_note_error(struct vmb_fetcher *f, const char *a, const char *b)
{
	char *d = f->st.last_error;
	size_t cap = sizeof(f->st.last_error) - 1, n = strnlen(a, cap);

	memcpy(d, a, n);
	if (b && n + 2 < cap) {
		memcpy(d + n, ": ", 2);
		n += 2;
		memcpy(d + n, b, strnlen(b, cap - n));
		n += strnlen(b, cap - n);
	}
	d[n] = '\0';
}

int vmb_fetcher_object_url(const struct vmb_fetcher *f, const char *path, char **out,
			   struct vmb_err *err)
{
	*out = NULL;
	if (!path_ok(path))
		return vmb_err_set(err, EINVAL, "'%s' at '%s': not a plain relative path", path,
				   f->url);
	if (asprintf(out, "%s%s", f->base, path) < 0) {
		*out = NULL;
		return vmb_err_set(err, ENOMEM, "out of memory");
	}
	return 0;
}

static const char *verb(enum vmb_fetch_op op)
{
	return op == VMB_FETCH_PUT ? "upload" : op == VMB_FETCH_HEAD ? "look up" : "fetch";
}

/* The common frame of the three calls: path check, accounting, the retry loop. */
static ssize_t call(struct vmb_fetcher *f, struct vmb_fetch_req *req, struct vmb_err *err)
{
	char *url = NULL;
	ssize_t rc;

	if (!path_ok(req->path))
		return vmb_err_set(err, EINVAL, "cannot %s '%s' at '%s': not a plain relative "
				   "path", verb(req->op), req->path, f->url);
	if (asprintf(&url, "%s/%s", f->url, req->path) < 0)
		return vmb_err_set(err, ENOMEM, "cannot %s '%s/%s': out of memory",
				   verb(req->op), f->url, req->path);
	req->url = url;
	pthread_mutex_lock(&f->mu);
	f->st.requests++;
	if (f->cancelled) {
		f->st.errors++;
		pthread_mutex_unlock(&f->mu);
		rc = vmb_err_set(err, ECANCELED, "cannot %s '%s': the fetcher is closing",
				 verb(req->op), url);
		free(url);
		return rc;
	}
	f->users++;
	f->st.inflight++;
	pthread_mutex_unlock(&f->mu);

	rc = vmb_fetch_run(f, req, err);
	if (rc >= 0 && req->sha && !req->sha_done) {
		int hr = vmb_sha256(req->buf, (size_t)rc, req->sha, err);

		if (hr < 0)
			rc = hr;
	}

	pthread_mutex_lock(&f->mu);
	f->users--;
	f->st.inflight--;
	if (rc < 0) {
		f->st.errors++;
		if (err)
			vmb_fetch_note_error(f, err->msg, NULL);
	} else if (req->op == VMB_FETCH_GET) {
		f->st.bytes += (uint64_t)rc;
	} else if (req->op == VMB_FETCH_PUT) {
		f->st.bytes += req->body_len;
	}
	if (!f->users)
		pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mu);
	free(url);
	return rc;
}

void vmb_fetcher_warm(struct vmb_fetcher *f, const char *path)
{
	struct vmb_fetch_req req = { .op = VMB_FETCH_HEAD, .path = path };
	struct vmb_err e = { 0 };
	char *url = NULL;
	int transient = 0;

	if (f->kind == VMB_KIND_FILE || !path_ok(path) ||
	    asprintf(&url, "%s/%s", f->url, path) < 0)
		return;
	req.url = url;
	pthread_mutex_lock(&f->mu);
	if (f->cancelled) {
		pthread_mutex_unlock(&f->mu);
		free(url);
		return;
	}
	f->users++;
	pthread_mutex_unlock(&f->mu);
	(void)f->tp.attempt(f->tp.arg, &req, &transient, &e);
	pthread_mutex_lock(&f->mu);
	if (!--f->users)
		pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mu);
	free(url);
}

ssize_t vmb_fetch_get(struct vmb_fetcher *f, const char *path, uint64_t off, size_t len,
		      void *buf, size_t max, struct vmb_err *err)
{
	struct vmb_fetch_req req = { .op = VMB_FETCH_GET, .path = path, .off = off,
				     .len = len, .buf = buf, .max = len ? len : max };

	if (len && off + len < off)
		return vmb_err_set(err, EINVAL, "cannot fetch '%s/%s': range overflows",
				   f->url, path);
	return call(f, &req, err);
}

ssize_t vmb_fetch_get_sha(struct vmb_fetcher *f, const char *path, void *buf, size_t max,
			  uint8_t sha[32], int soft, struct vmb_err *err)
{
	struct vmb_fetch_req req = { .op = VMB_FETCH_GET, .path = path, .buf = buf,
				     .max = max, .sha = sha, .soft = soft };

	return call(f, &req, err);
}

int vmb_fetch_head(struct vmb_fetcher *f, const char *path, uint64_t *len,
		   struct vmb_err *err)
{
	struct vmb_fetch_req req = { .op = VMB_FETCH_HEAD, .path = path };
	ssize_t rc = call(f, &req, err);

	if (rc == 0 && len)
		*len = req.size;
	return (int)rc;
}

int vmb_fetch_head_etag(struct vmb_fetcher *f, const char *path, uint64_t *len,
			char *etag, size_t etag_size, struct vmb_err *err)
{
	struct vmb_fetch_req req = { .op = VMB_FETCH_HEAD, .path = path };
	ssize_t rc = call(f, &req, err);

	if (rc == 0 && len)
		*len = req.size;
	if (etag_size)
		snprintf(etag, etag_size, "%s", rc == 0 ? req.etag : "");
	return (int)rc;
}

int vmb_fetch_put(struct vmb_fetcher *f, const char *path, const void *buf, size_t len,
		  struct vmb_err *err)
{
	struct vmb_fetch_req req = { .op = VMB_FETCH_PUT, .path = path, .body = buf,
				     .body_len = len };

	return (int)call(f, &req, err);
}

void vmb_fetcher_stats(struct vmb_fetcher *f, struct vmb_fetch_stats *st)
{
	pthread_mutex_lock(&f->mu);
	*st = f->st;
	pthread_mutex_unlock(&f->mu);
}
