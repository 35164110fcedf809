/* fetch_http.c - one attempt of a request over http(s) or s3 as a curl easy handle run
 * by the fetcher's engine (fetch_curl.c), and the checks of its answer: status,
 * ranges, lengths. A body is never taken short: a range answered with fewer bytes
 * than asked, or a body shorter than its Content-Length, is an error (transient
 * unless the object itself is shorter). */
#include "config.h"
#include "remote/fetch_int.h"
#include "base/digest.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The engine hashes a body as it comes while it runs at most this many transfers. */
#define VMB_HASH_INLINE_MAX 2

struct ctx {
	struct vmb_fetcher *f;
	struct vmb_fetch_req *req;
	char *dst;
	size_t cap, got;
	uint64_t skip;            /* a range answered by 200: bytes still to drop */
	int overflow;             /* the body is larger than cap */
	int complete;             /* a range answered by 200 is in: stopped on purpose */
	long status;              /* of the last response header block */
	int have_crange;
	uint64_t cr_first, cr_last, cr_total;
	char errbody[512];        /* the start of an error response's body */
	size_t errlen;
	size_t body_off;          /* PUT: bytes sent */
	/* GET with req->sha: the digest of the body's first 'hashed' bytes. The engine
	 * thread hashes the bytes as they come while it runs few transfers (a reader
	 * waiting for one chunk gets it sooner); under load it leaves them to the
	 * caller, which hashes the rest after the transfer, beside the others. */
	struct vmb_sha256 *sha;
	size_t hashed;
	int sha_failed;
	char errbuf[CURL_ERROR_SIZE];
};

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
	struct ctx *c = arg;
	size_t len = size * n;
	char line[256];
	unsigned long long a, b, t;

	if (len >= sizeof(line))
		return len;
	memcpy(line, p, len);
	line[len] = '\0';
	if (!strncmp(line, "HTTP/", 5)) {
		const char *sp = strchr(line, ' ');

		c->status = sp ? strtol(sp + 1, NULL, 10) : 0;
		c->have_crange = 0;
		c->errlen = 0;
		c->req->etag[0] = '\0';
		/* a range answered with the whole object: drop what comes before it */
		c->skip = c->req->len && c->status == 200 ? c->req->off : 0;
	} else if (!strncasecmp(line, "etag:", 5)) {
		const char *v = line + 5;
		size_t k;

		while (*v == ' ' || *v == '\t')
			v++;
		k = strcspn(v, "\r\n");
		while (k && (v[k - 1] == ' ' || v[k - 1] == '\t'))
			k--;
		if (k >= 2 && v[0] == '"' && v[k - 1] == '"')
			v++, k -= 2;
		if (k < sizeof(c->req->etag)) {
			memcpy(c->req->etag, v, k);
			c->req->etag[k] = '\0';
		}
	} else if (!strncasecmp(line, "content-range:", 14)) {
		if (sscanf(line + 14, " bytes %llu-%llu/%llu", &a, &b, &t) == 3) {
			c->have_crange = 1;
			c->cr_first = a;
			c->cr_last = b;
			c->cr_total = t;
		}
	}
	return len;
}

static size_t on_write(char *p, size_t size, size_t n, void *arg)
{
	struct ctx *c = arg;
	size_t len = size * n, take;

	if (c->status < 200 || c->status >= 300) {
		take = sizeof(c->errbody) - 1 - c->errlen;
		if (take > len)
			take = len;
		memcpy(c->errbody + c->errlen, p, take);
		c->errlen += take;
		c->errbody[c->errlen] = '\0';
		return len;
	}
	if (c->skip) {
		take = c->skip < len ? (size_t)c->skip : len;
		c->skip -= take;
		p += take;
		len -= take;
		if (!len)
			return size * n;
	}
	if (len > c->cap - c->got) {
		if (c->req->len && c->status == 200) {
			/* a range answered with the whole object: keep ours, stop there */
			memcpy(c->dst + c->got, p, c->cap - c->got);
			c->got = c->cap;
			c->complete = 1;
			return 0;
		}
		c->overflow = 1;
		return 0;
	}
	memcpy(c->dst + c->got, p, len);
	c->got += len;
	if (c->sha && c->hashed + len == c->got &&
	    vmb_curl_engine_active(c->f) <= VMB_HASH_INLINE_MAX) {
		if (vmb_sha256_update(c->sha, p, len, NULL) < 0) {
			c->sha_failed = 1;
			return 0;
		}
		c->hashed += len;
	}
	if (c->req->len && c->status == 200 && c->got == c->cap)
		c->complete = 1;   /* a range answered with the whole object: ours is in */
	return size * n;
}

static size_t on_read(char *p, size_t size, size_t n, void *arg)
{
	struct ctx *c = arg;
	size_t len = size * n, left = c->req->body_len - c->body_off;

	if (len > left)
		len = left;
	memcpy(p, (const char *)c->req->body + c->body_off, len);
	c->body_off += len;
	return len;
}

static int on_seek(void *arg, curl_off_t off, int origin)
{
	struct ctx *c = arg;

	if (origin != SEEK_SET || off < 0 || (uint64_t)off > c->req->body_len)
		return CURL_SEEKFUNC_FAIL;
	c->body_off = (size_t)off;
	return CURL_SEEKFUNC_OK;
}

/* "<Code>X</Code>" of an S3 error body, or "". */
static void s3_code(const char *body, char *out, size_t outsz)
{
	const char *s = strstr(body, "<Code>"), *e;

	out[0] = '\0';
	if (!s)
		return;
	s += 6;
	e = strstr(s, "</Code>");
	if (e && (size_t)(e - s) < outsz)
		snprintf(out, outsz, "%.*s", (int)(e - s), s);
}

/* 401/403/404 from S3: which bucket, which endpoint, which credentials. */
static int s3_status_err(struct ctx *c, const char *code, struct vmb_err *err)
{
	const struct vmb_fetcher *f = c->f;
	const char *b = strstr(f->url, "://") + 3, *where = f->endpoint ? f->endpoint : "AWS";
	long st = c->status;
	size_t bn;

	if (!strncmp(f->url, "s3+", 3))
		b = strchr(b, '/') + 1;   /* s3+http(s)://HOST/BUCKET/..., checked at open */
	bn = strcspn(b, "/");
	if (st == 404 && !strcmp(code, "NoSuchBucket"))
		return vmb_err_set(err, ENOENT, "bucket '%.*s' does not exist at %s (HTTP 404: "
				   "NoSuchBucket)", (int)bn, b, where);
	if (st == 404 && !code[0] && c->req->op != VMB_FETCH_HEAD)
		return vmb_err_set(err, ENOENT, "not found (HTTP 404, and not an S3 error answer: "
				   "is %s an S3 endpoint?)", where);
	if (st == 404)
		return vmb_err_set(err, ENOENT, "not found (HTTP 404%s%s)", code[0] ? ": " : "",
				   code);
	if (!f->creds.key_id)
		return vmb_err_set(err, EACCES, "access denied (HTTP %ld%s%s): the request was "
				   "not signed, as no AWS credentials were found (%s); set "
				   "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or AWS_PROFILE for "
				   "a private bucket", st, code[0] ? ": " : "", code, f->creds.tried);
	return vmb_err_set(err, EACCES, "access denied (HTTP %ld%s%s) to access key '%s' "
			   "(from %s%s) for bucket '%.*s' at %s", st, code[0] ? ": " : "", code,
			   f->creds.key_id, f->creds.source,
			   f->creds.token ? ", with a session token" : "", (int)bn, b, where);
}

static int status_err(struct ctx *c, int *transient, struct vmb_err *err)
{
	long st = c->status;
	char code[64], extra[80] = "";

	s3_code(c->errbody, code, sizeof(code));
	if (code[0])
		snprintf(extra, sizeof(extra), ": %s", code);
	*transient = 0;
	if (c->f->kind == VMB_KIND_S3 && (st == 404 || st == 401 || st == 403))
		return s3_status_err(c, code, err);
	if (st == 404 || st == 410)
		return vmb_err_set(err, ENOENT, "not found (HTTP %ld%s)", st, extra);
	if (st == 401 || st == 403)
		return vmb_err_set(err, EACCES, "access denied (HTTP %ld%s)", st, extra);
	if (st == 416)
		return vmb_err_set(err, EINVAL, "bytes [%" PRIu64 ", %" PRIu64 ") are past the "
				   "end of the object (HTTP 416)", c->req->off,
				   c->req->off + c->req->len);
	if (st == 408 || st == 425 || st == 429 || (st >= 500 && st <= 599))
		*transient = 1;
	return vmb_err_set(err, EIO, "HTTP %ld%s", st, extra);
}

/* The headers of an S3 request signed by curl: the payload hash (S3 wants it on every
 * request: curl 7.88 signs a given x-amz-content-sha256 header's value as the payload
 * hash, and adds UNSIGNED-PAYLOAD only when there is none) and the session token. */
static int s3_headers(struct vmb_fetcher *f, struct vmb_fetch_req *req,
		      struct curl_slist **h, struct vmb_err *err)
{
	uint8_t d[VMB_SHA256_LEN];
	char hex[VMB_SHA256_HEX], line[128];
	struct curl_slist *n;
	int rc;

	rc = vmb_sha256(req->op == VMB_FETCH_PUT ? req->body : "",
			req->op == VMB_FETCH_PUT ? req->body_len : 0, d, err);
	if (rc)
		return rc;
	vmb_sha256_hex(d, hex);
	snprintf(line, sizeof(line), "x-amz-content-sha256: %s", hex);
	n = curl_slist_append(*h, line);
	if (!n)
		return vmb_err_set(err, ENOMEM, "out of memory");
	*h = n;
	if (f->creds.token) {
		char *t;

		if (asprintf(&t, "x-amz-security-token: %s", f->creds.token) < 0)
			return vmb_err_set(err, ENOMEM, "out of memory");
		n = curl_slist_append(*h, t);
		free(t);
		if (!n)
			return vmb_err_set(err, ENOMEM, "out of memory");
		*h = n;
	}
	return 0;
}

static ssize_t check_answer(struct ctx *c, CURL *easy, int *transient, struct vmb_err *err)
{
	struct vmb_fetch_req *req = c->req;
	curl_off_t cl = -1;
	long st = 0;

	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &st);
	c->status = st;
	if (st < 200 || st >= 300)
		return status_err(c, transient, err);
	*transient = 0;
	curl_easy_getinfo(easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
	switch (req->op) {
	case VMB_FETCH_HEAD:
		if (cl < 0)
			return vmb_err_set(err, EPROTO, "the answer has no Content-Length");
		req->size = (uint64_t)cl;
		return 0;
	case VMB_FETCH_PUT:
		return 0;
	case VMB_FETCH_GET:
		break;
	}
	if (!req->len) {
		if (st != 200)
			return vmb_err_set(err, EPROTO, "HTTP %ld to a request for the whole "
					   "object", st);
		if (cl >= 0 && (uint64_t)cl != c->got) {
			*transient = 1;
			return vmb_err_set(err, EIO, "truncated body: %zu of %lld bytes", c->got,
					   (long long)cl);
		}
		return (ssize_t)c->got;
	}
	if (st == 206) {
		if (!c->have_crange || c->cr_first != req->off)
			return vmb_err_set(err, EPROTO, "HTTP 206 without the Content-Range "
					   "asked for (bytes %" PRIu64 "-)", req->off);
		if (c->got == req->len)
			return (ssize_t)c->got;
		if (c->cr_last + 1 == c->cr_total && c->cr_last - c->cr_first + 1 == c->got)
			return vmb_err_set(err, EINVAL, "bytes [%" PRIu64 ", %" PRIu64 ") are "
					   "past the end of the object (%" PRIu64 " bytes)",
					   req->off, req->off + req->len, c->cr_total);
		*transient = 1;
		return vmb_err_set(err, EIO, "truncated body: %zu of %zu bytes", c->got,
				   req->len);
	}
	if (st == 200 && c->complete)
		return (ssize_t)c->got;
	if (st == 200)   /* the whole object, shorter than off + len */
		return vmb_err_set(err, EINVAL, "bytes [%" PRIu64 ", %" PRIu64 ") are past the "
				   "end of the object (%" PRIu64 " bytes)", req->off,
				   req->off + req->len, req->off - c->skip + c->got);
	return vmb_err_set(err, EPROTO, "HTTP %ld to a range request", st);
}

static ssize_t http_attempt(void *arg, struct vmb_fetch_req *req, int *transient,
			    struct vmb_err *err)
{
	struct vmb_fetcher *f = arg;
	struct curl_slist *hdr = NULL;
	struct ctx c = { .f = f, .req = req };
	char *url = NULL, range[64];
	CURLcode code = CURLE_OK;
	CURL *easy;
	ssize_t rc;

	*transient = 0;
	easy = vmb_curl_easy_get(f);
	if (!easy || asprintf(&url, "%s%s", f->base, req->path) < 0) {
		url = NULL;
		rc = vmb_err_set(err, ENOMEM, "out of memory");
		goto out;
	}
	c.dst = req->buf;
	c.cap = req->len ? req->len : req->max;
	if (req->op == VMB_FETCH_GET && req->sha && !req->len) {
		rc = vmb_sha256_new(&c.sha, err);
		if (rc < 0)
			goto out;
	}
	curl_easy_setopt(easy, CURLOPT_URL, url);
	curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, c.errbuf);
	curl_easy_setopt(easy, CURLOPT_USERAGENT, "vmbundlefs/" PACKAGE_VERSION);
	curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(easy, CURLOPT_PIPEWAIT, 1L);
	curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(easy, CURLOPT_BUFFERSIZE, 256L * 1024);
	curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, f->opts.connect_timeout_ms);
	curl_easy_setopt(easy, CURLOPT_LOW_SPEED_LIMIT, f->opts.low_speed_bytes);
	curl_easy_setopt(easy, CURLOPT_LOW_SPEED_TIME, f->opts.low_speed_time_s);
	curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 2L);
	if (f->cafile)
		curl_easy_setopt(easy, CURLOPT_CAINFO, f->cafile);
	curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(easy, CURLOPT_HEADERDATA, &c);
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(easy, CURLOPT_WRITEDATA, &c);
	vmb_curl_engine_share(f, easy);
	if (f->kind == VMB_KIND_HTTP) {
		/* a signed S3 request must not be replayed elsewhere; plain http may move */
		curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 1L);
		curl_easy_setopt(easy, CURLOPT_MAXREDIRS, 5L);
		curl_easy_setopt(easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	}
	switch (req->op) {
	case VMB_FETCH_GET:
		if (req->len) {
			snprintf(range, sizeof(range), "%" PRIu64 "-%" PRIu64, req->off,
				 req->off + req->len - 1);
			curl_easy_setopt(easy, CURLOPT_RANGE, range);
		} else if (req->max) {
			/* a whole object: a Content-Length past what it may have is
			 * refused before its body comes (EFBIG); a body without one,
			 * as it comes (on_write) */
			curl_easy_setopt(easy, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)req->max);
		}
		break;
	case VMB_FETCH_HEAD:
		curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
		break;
	case VMB_FETCH_PUT:
		curl_easy_setopt(easy, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(easy, CURLOPT_INFILESIZE_LARGE, (curl_off_t)req->body_len);
		curl_easy_setopt(easy, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(easy, CURLOPT_READDATA, &c);
		curl_easy_setopt(easy, CURLOPT_SEEKFUNCTION, on_seek);
		curl_easy_setopt(easy, CURLOPT_SEEKDATA, &c);
		hdr = curl_slist_append(hdr, "Expect:");
		if (!hdr) {
			rc = vmb_err_set(err, ENOMEM, "out of memory");
			goto out;
		}
		break;
	}
	if (f->sigv4) {
		rc = s3_headers(f, req, &hdr, err);
		if (rc)
			goto out;
		curl_easy_setopt(easy, CURLOPT_AWS_SIGV4, f->sigv4);
		curl_easy_setopt(easy, CURLOPT_USERNAME, f->creds.key_id);
		curl_easy_setopt(easy, CURLOPT_PASSWORD, f->creds.secret);
	}
	if (hdr)
		curl_easy_setopt(easy, CURLOPT_HTTPHEADER, hdr);

	rc = vmb_curl_engine_run(f, easy, &code);
	if (rc) {
		vmb_err_set(err, ECANCELED, "cancelled");
		goto out;
	}
	if (code != CURLE_OK && !(code == CURLE_WRITE_ERROR && c.complete)) {
		if ((code == CURLE_WRITE_ERROR && c.overflow) ||
		    code == CURLE_FILESIZE_EXCEEDED)   /* its Content-Length said so */
			rc = vmb_err_set(err, EFBIG, "the object is larger than the %zu bytes "
					 "expected", c.cap);
		else if (code == CURLE_WRITE_ERROR && c.sha_failed)
			rc = vmb_err_set(err, ENOMEM, "cannot compute the SHA-256 of the body");
		else
			rc = vmb_curl_err(code, c.errbuf, transient, err);
		goto out;
	}
	rc = check_answer(&c, easy, transient, err);
	if (rc >= 0 && c.sha) {
		int hr = vmb_sha256_update(c.sha, c.dst + c.hashed, c.got - c.hashed, err);

		if (hr == 0)
			hr = vmb_sha256_final(c.sha, req->sha, err);
		if (hr < 0)
			rc = hr;
		else
			req->sha_done = 1;
	}
out:
	vmb_sha256_free(c.sha);
	vmb_curl_easy_put(f, easy);
	curl_slist_free_all(hdr);
	free(url);
	return rc;
}

void vmb_fetch_http_init(struct vmb_fetcher *f)
{
	f->tp.attempt = http_attempt;
	f->tp.arg = f;
}
