/* test_fetch.c - the fetchers without network (src/remote/fetch*.c): the retry policy,
 * the retry loop against a scripted struct vmb_transport (503, 500, reset, truncated,
 * stall, 404, success after N failures, hard mode, cancel, soft budget), URL and path
 * checks, and file:// get/head/put. */
#include "config.h"
#include "remote/fetch.h"
#include "base/digest.h"
#include "remote/fetch_int.h"   /* vmb_curl_err */
#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- the retry policy ---- */

static void test_policy(void)
{
	struct vmb_fetch_opts o;
	uint64_t x = 88172645463325252ull;
	long d, ceil, maxseen[8] = { 0 };
	double sum = 0;
	int a, i;

	vmb_fetch_opts_default(&o);
	CHECK_EQ(o.backoff_ms, 200);
	CHECK_EQ(o.backoff_max_ms, 5000);
	CHECK_EQ(o.retries, 4);
	/* the ceiling doubles from backoff_ms and stops at backoff_max_ms */
	for (a = 0; a < 40; a++) {
		ceil = 200L << (a < 6 ? a : 6);
		if (ceil > 5000)
			ceil = 5000;
		CHECK_EQ(vmb_retry_delay_ms(a, &o, 0), 0);                 /* full jitter: from 0 */
		CHECK_EQ(vmb_retry_delay_ms(a, &o, (uint64_t)ceil), ceil); /* up to the ceiling */
		CHECK_EQ(vmb_retry_delay_ms(a, &o, (uint64_t)ceil + 1), 0);
		for (i = 0; i < 2000; i++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			d = vmb_retry_delay_ms(a, &o, x);
			if (d < 0 || d > ceil) {
				CHECK(d >= 0 && d <= ceil);
				break;
			}
			if (a < 8 && d > maxseen[a])
				maxseen[a] = d;
			if (a == 30)
				sum += (double)d;
		}
	}
	/* jitter spreads over the whole interval: near the top is reached, mean near half */
	CHECK(maxseen[0] > 180 && maxseen[0] <= 200);
	CHECK(maxseen[3] > 1500 && maxseen[3] <= 1600);
	CHECK(maxseen[7] > 4800 && maxseen[7] <= 5000);
	CHECK(sum / 2000 > 2200 && sum / 2000 < 2800);
	/* a huge attempt number does not overflow; a cap below the base wins */
	CHECK(vmb_retry_delay_ms(1000000, &o, UINT64_MAX) <= 5000);
	o.backoff_ms = 300;
	o.backoff_max_ms = 100;
	CHECK(vmb_retry_delay_ms(0, &o, 12345) <= 100);
	o.backoff_ms = 0;
	CHECK_EQ(vmb_retry_delay_ms(5, &o, 12345), 0);
	o.backoff_ms = -5;
	o.backoff_max_ms = -1;
	CHECK_EQ(vmb_retry_delay_ms(3, &o, 999), 0);
}

/* ---- a scripted transport ---- */

struct step {
	int rc;            /* 0: success; else -errno */
	int transient;
	const char *msg;
};

struct script {
	const struct step *steps;
	int n;             /* the last step repeats */
	int calls;
	pthread_mutex_t mu;
};

static ssize_t scripted(void *arg, struct vmb_fetch_req *req, int *transient,
			struct vmb_err *err)
{
	struct script *s = arg;
	const struct step *st;
	size_t i, n;

	pthread_mutex_lock(&s->mu);
	st = &s->steps[s->calls < s->n ? s->calls : s->n - 1];
	s->calls++;
	pthread_mutex_unlock(&s->mu);
	*transient = st->transient;
	if (st->rc)
		return vmb_err_set(err, -st->rc, "%s", st->msg);
	if (req->op == VMB_FETCH_HEAD) {
		req->size = 4242;
		return 0;
	}
	if (req->op == VMB_FETCH_PUT)
		return 0;
	n = req->len ? req->len : (req->max < 100 ? req->max : 100);
	for (i = 0; i < n; i++)
		((unsigned char *)req->buf)[i] = (unsigned char)(req->off + i);
	return (ssize_t)n;
}

static struct vmb_fetcher *open_scripted(struct script *s, const struct step *steps, int n,
					 int retries, int hard, struct vmb_transport *tp)
{
	struct vmb_fetch_opts o;
	struct vmb_fetcher *f = NULL;
	struct vmb_err err;

	s->steps = steps;
	s->n = n;
	s->calls = 0;
	pthread_mutex_init(&s->mu, NULL);
	tp->attempt = scripted;
	tp->arg = s;
	vmb_fetch_opts_default(&o);
	o.retries = retries;
	o.hard = hard;
	o.backoff_ms = 1;
	o.backoff_max_ms = 4;
	o.transport = tp;
	if (vmb_fetcher_open("https://example.invalid/pub/", &o, &f, &err))
		fprintf(stderr, "open: %s\n", err.msg);
	return f;
}

#define S503 { -EIO, 1, "HTTP 503" }
#define S500 { -EIO, 1, "HTTP 500" }
#define SRESET { -ECONNRESET, 1, "connection lost (curl 56: Connection reset by peer)" }
#define STRUNC { -EIO, 1, "truncated body: 100 of 4096 bytes" }
#define SSTALL { -ETIMEDOUT, 1, "timed out (curl 28: Operation too slow)" }
#define S404 { -ENOENT, 0, "not found (HTTP 404)" }
#define SOK { 0, 0, "" }

static void test_loop(void)
{
	static const struct step mixed[] = { S503, S500, SRESET, STRUNC, SSTALL, SOK };
	static const struct step notfound[] = { S404 };
	static const struct step fail503[] = { S503 };
	static const struct step late404[] = { S503, S404, SOK };
	struct vmb_transport tp;
	struct vmb_fetch_stats st;
	struct script s;
	struct vmb_fetcher *f;
	struct vmb_err err;
	unsigned char buf[4096];
	uint64_t len = 0;

	/* five kinds of transient failure, then success: within a budget of 5 retries */
	f = open_scripted(&s, mixed, 6, 5, 0, &tp);
	REQUIRE(f);
	CHECK_EQ(vmb_fetch_get(f, "objects/ab/cd", 10, 50, buf, sizeof(buf), &err), 50);
	CHECK_EQ(s.calls, 6);
	CHECK(buf[0] == 10 && buf[49] == 59);
	vmb_fetcher_stats(f, &st);
	CHECK_EQ(st.requests, 1);
	CHECK_EQ(st.retries, 5);
	CHECK_EQ(st.errors, 0);
	CHECK_EQ(st.bytes, 50);
	CHECK_EQ(st.inflight, 0);
	CHECK_STR(st.last_error, "Operation too slow");
	vmb_fetcher_close(f);

	/* the same with a budget of 4: the fifth failure ends it, -EIO with URL and cause */
	f = open_scripted(&s, mixed, 6, 4, 0, &tp);
	REQUIRE(f);
	CHECK_RC((int)vmb_fetch_get(f, "objects/ab/cd", 0, 0, buf, sizeof(buf), &err), -EIO);
	CHECK_EQ(s.calls, 5);
	CHECK_STR(err.msg, "cannot fetch 'https://example.invalid/pub/objects/ab/cd'");
	CHECK_STR(err.msg, "Operation too slow");
	CHECK_STR(err.msg, "after 5 attempts");
	vmb_fetcher_stats(f, &st);
	CHECK_EQ(st.errors, 1);
	CHECK_STR(st.last_error, "after 5 attempts");
	vmb_fetcher_close(f);

	/* 404 is not retried */
	f = open_scripted(&s, notfound, 1, 4, 0, &tp);
	REQUIRE(f);
	CHECK_RC((int)vmb_fetch_get(f, "index", 0, 0, buf, sizeof(buf), &err), -ENOENT);
	CHECK_EQ(s.calls, 1);
	CHECK_STR(err.msg, "cannot fetch 'https://example.invalid/pub/index': not found (HTTP 404)");
	CHECK_RC(vmb_fetch_head(f, "index", &len, &err), -ENOENT);
	CHECK_STR(err.msg, "cannot look up 'https://example.invalid/pub/index'");
	vmb_fetcher_close(f);

	/* a 404 after a 503 ends the retries with -ENOENT */
	f = open_scripted(&s, late404, 3, 4, 0, &tp);
	REQUIRE(f);
	CHECK_RC((int)vmb_fetch_get(f, "index", 0, 0, buf, sizeof(buf), &err), -ENOENT);
	CHECK_EQ(s.calls, 2);
	vmb_fetcher_close(f);

	/* no retries at all: one attempt */
	f = open_scripted(&s, fail503, 1, 0, 0, &tp);
	REQUIRE(f);
	CHECK_RC(vmb_fetch_put(f, "objects/ab/cd", "x", 1, &err), -EIO);
	CHECK_EQ(s.calls, 1);
	CHECK_STR(err.msg, "cannot upload 'https://example.invalid/pub/objects/ab/cd': HTTP 503 after 1 attempt");
	vmb_fetcher_close(f);

	/* HEAD and PUT through the loop */
	f = open_scripted(&s, mixed, 6, 10, 0, &tp);
	REQUIRE(f);
	CHECK_RC(vmb_fetch_head(f, "index", &len, &err), 0);
	CHECK_EQ(len, 4242);
	s.calls = 0;
	CHECK_RC(vmb_fetch_put(f, "index", "abc", 3, &err), 0);
	CHECK_EQ(s.calls, 6);
	vmb_fetcher_close(f);
}

/* hard mode: 50 failures then success, whatever the retry budget */
static void test_hard(void)
{
	static struct step steps[51];
	struct vmb_transport tp;
	struct script s;
	struct vmb_fetcher *f;
	struct vmb_err err;
	unsigned char buf[64];
	int i;

	for (i = 0; i < 50; i++)
		steps[i] = (struct step)(i % 2 ? (struct step)S503 : (struct step)SRESET);
	steps[50] = (struct step)SOK;
	f = open_scripted(&s, steps, 51, 0, 1, &tp);
	REQUIRE(f);
	CHECK_EQ(vmb_fetch_get(f, "index", 0, 0, buf, sizeof(buf), &err), 64);
	CHECK_EQ(s.calls, 51);
	vmb_fetcher_close(f);
}

/* hard mode, a request marked soft (a caller with other URLs: rimage's mirrors):
 * the soft budget ends it with EIO; the next request without the mark waits again */
static void test_hard_soft_req(void)
{
	static const struct step steps[] = { S503, S503, S503, S503, SOK };
	struct vmb_transport tp;
	struct script s;
	struct vmb_fetcher *f;
	struct vmb_err err;
	unsigned char buf[100];
	uint8_t sha[32];

	f = open_scripted(&s, steps, 5, 2, 1, &tp);
	REQUIRE(f);
	CHECK_EQ(vmb_fetch_get_sha(f, "objects/ab/cd", buf, sizeof(buf), sha, 1, &err), -EIO);
	CHECK_EQ(s.calls, 3);   /* the first try and 2 retries */
	CHECK(strstr(err.msg, "after 3 attempts") != NULL);
	CHECK_EQ(vmb_fetch_get_sha(f, "objects/ab/cd", buf, sizeof(buf), sha, 0, &err), 100);
	CHECK_EQ(s.calls, 5);   /* one more 503, then the bytes */
	vmb_fetcher_close(f);
}

struct waiter {
	struct vmb_fetcher *f;
	ssize_t rc;
	struct vmb_err err;
	double took;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *wait_get(void *arg)
{
	struct waiter *w = arg;
	unsigned char buf[64];
	double t0 = now_s();

	w->rc = vmb_fetch_get(w->f, "objects/ab/cd", 0, 0, buf, sizeof(buf), &w->err);
	w->took = now_s() - t0;
	return NULL;
}

/* hard mode against a server that never recovers: cancel and close end the waits */
static void test_hard_cancel(void)
{
	static const struct step fail503[] = { S503 };
	struct vmb_transport tp;
	struct script s;
	struct waiter w[3];
	pthread_t th[3];
	struct vmb_err err;
	unsigned char buf[8];
	int i;

	for (int closing = 0; closing < 2; closing++) {
		struct vmb_fetcher *f = open_scripted(&s, fail503, 1, 0, 1, &tp);

		REQUIRE(f);
		for (i = 0; i < 3; i++) {
			memset(&w[i], 0, sizeof(w[i]));
			w[i].f = f;
			REQUIRE(pthread_create(&th[i], NULL, wait_get, &w[i]) == 0);
		}
		/* until the three are inside their retry loops and have tried several
		 * times (a fixed sleep here could end before a starved thread got there:
		 * cancel would give it no last error, close would free the fetcher under
		 * it) */
		for (int t = 0; t < 10000; t++) {
			struct vmb_fetch_stats st;
			int calls;

			vmb_fetcher_stats(f, &st);
			pthread_mutex_lock(&s.mu);
			calls = s.calls;
			pthread_mutex_unlock(&s.mu);
			if (st.inflight == 3 && calls > 10)
				break;
			usleep(1000);
		}
		if (closing) {
			vmb_fetcher_close(f);   /* returns only once the calls have */
		} else {
			vmb_fetcher_cancel(f);
		}
		for (i = 0; i < 3; i++) {
			pthread_join(th[i], NULL);
			CHECK_RC((int)w[i].rc, -ECANCELED);
			CHECK_STR(w[i].err.msg, "the fetcher is closing (last error: HTTP 503)");
			CHECK(w[i].took < 2.0);
		}
		CHECK(s.calls > 10);
		if (!closing) {
			/* a cancelled fetcher refuses new calls */
			CHECK_RC((int)vmb_fetch_get(f, "index", 0, 0, buf, sizeof(buf), &err),
				 -ECANCELED);
			CHECK_STR(err.msg, "the fetcher is closing");
			vmb_fetcher_close(f);
		}
	}
}

struct hammer {
	struct vmb_fetcher *f;
	int ok;
};

static void *hammer_main(void *arg)
{
	struct hammer *h = arg;
	unsigned char buf[32];
	struct vmb_err err;
	int i;

	for (i = 0; i < 200; i++)
		if (vmb_fetch_get(h->f, "objects/00/11", (uint64_t)i, 32, buf, 32, &err) == 32 &&
		    buf[0] == (unsigned char)i)
			h->ok++;
	return NULL;
}

/* calls from several threads at once; the stats add up */
static void test_threads(void)
{
	static const struct step steps[] = { S503, SOK };
	struct vmb_transport tp;
	struct vmb_fetch_stats st;
	struct script s;
	struct hammer h[8];
	pthread_t th[8];
	struct vmb_fetcher *f = open_scripted(&s, steps, 2, 4, 0, &tp);
	int i;

	REQUIRE(f);
	for (i = 0; i < 8; i++) {
		h[i].f = f;
		h[i].ok = 0;
		pthread_create(&th[i], NULL, hammer_main, &h[i]);
	}
	for (i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		CHECK_EQ(h[i].ok, 200);
	}
	vmb_fetcher_stats(f, &st);
	CHECK_EQ(st.requests, 1600);
	CHECK_EQ(st.retries, 1);
	CHECK_EQ(st.bytes, 1600 * 32);
	CHECK_EQ(st.inflight, 0);
	vmb_fetcher_close(f);
}

/* bad URLs and paths: -EINVAL with a message, the transport never called */
static void test_checks(void)
{
	static const char *bad_urls[] = {
		"ftp://h/p", "file://relative/dir", "file:", "http://", "https:///p",
		"http://h/p?x=1", "http://h/a b", "s3://ab", "s3://-bucket", "s3://bucket/a//b",
		"s3://bucket/../x", "s3://buck%et/x", "", "/just/a/path", NULL
	};
	static const char *bad_paths[] = {
		"", "/index", "../index", "objects/../index", "objects//ab", "objects/ab/",
		"./index", "a b", "a?b", "a%2fb", "objects/\xc3\xa9", NULL
	};
	static const struct step ok[] = { SOK };
	struct vmb_fetch_opts o;
	struct vmb_transport tp;
	struct script s;
	struct vmb_fetcher *f;
	struct vmb_err err;
	unsigned char buf[8];
	int i;

	vmb_fetch_opts_default(&o);
	for (i = 0; bad_urls[i]; i++) {
		f = NULL;
		vmb_err_clear(&err);
		CHECK_RC(vmb_fetcher_open(bad_urls[i], &o, &f, &err), -EINVAL);
		CHECK(f == NULL);
		CHECK_STR(err.msg, "invalid ");
	}
	o.endpoint = "ftp://x";
	CHECK_RC(vmb_fetcher_open("s3://bucket/p", &o, &f, &err), -EINVAL);
	CHECK_STR(err.msg, "invalid S3 endpoint 'ftp://x'");

	f = open_scripted(&s, ok, 1, 0, 0, &tp);
	REQUIRE(f);
	CHECK(!strcmp(vmb_fetcher_url(f), "https://example.invalid/pub"));
	for (i = 0; bad_paths[i]; i++) {
		CHECK_RC((int)vmb_fetch_get(f, bad_paths[i], 0, 0, buf, sizeof(buf), &err), -EINVAL);
		CHECK_STR(err.msg, "not a plain relative path");
		CHECK_RC(vmb_fetch_put(f, bad_paths[i], "x", 1, &err), -EINVAL);
	}
	CHECK_EQ(s.calls, 0);
	CHECK_RC((int)vmb_fetch_get(f, "x", UINT64_MAX - 2, 8, buf, sizeof(buf), &err), -EINVAL);
	CHECK_STR(err.msg, "range overflows");
	CHECK_EQ(s.calls, 0);
	vmb_fetcher_close(f);
	vmb_fetcher_close(NULL);
	vmb_fetcher_cancel(NULL);
}

/* ---- file:// ---- */

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static void test_file(void)
{
	char dir[256], url[300], p[400];
	unsigned char data[100000], buf[100000];
	struct vmb_fetcher *f = NULL;
	struct vmb_fetch_stats st;
	struct vmb_err err;
	uint64_t len = 0;
	size_t i;

	REQUIRE(harness_tmpdir(dir, sizeof(dir), "fetch") == 0);
	for (i = 0; i < sizeof(data); i++)
		data[i] = (unsigned char)(i * 31 + 7);
	/* the destination directory need not exist yet */
	snprintf(url, sizeof(url), "file://%s/pub/", dir);
	REQUIRE(vmb_fetcher_open(url, NULL, &f, &err) == 0);
	CHECK_RC(vmb_fetch_head(f, "index", &len, &err), -ENOENT);
	CHECK_STR(err.msg, "/pub/index': not found");
	CHECK_RC(vmb_fetch_put(f, "objects/ab/abcdef", data, sizeof(data), &err), 0);
	CHECK_RC(vmb_fetch_put(f, "index", "one\n", 4, &err), 0);
	CHECK_RC(vmb_fetch_head(f, "objects/ab/abcdef", &len, &err), 0);
	CHECK_EQ(len, sizeof(data));
	/* whole, exact buffer */
	memset(buf, 0, sizeof(buf));
	CHECK_EQ(vmb_fetch_get(f, "objects/ab/abcdef", 0, 0, buf, sizeof(data), &err),
		 (ssize_t)sizeof(data));
	CHECK(!memcmp(buf, data, sizeof(data)));
	/* whole, with the digest of the bytes returned */
	{
		uint8_t sha[32], want[32];

		memset(buf, 0, sizeof(buf));
		memset(sha, 0, sizeof(sha));
		CHECK_EQ(vmb_fetch_get_sha(f, "objects/ab/abcdef", buf, sizeof(data), sha, 0, &err),
			 (ssize_t)sizeof(data));
		CHECK(!memcmp(buf, data, sizeof(data)));
		REQUIRE(vmb_sha256(data, sizeof(data), want, &err) == 0);
		CHECK(!memcmp(sha, want, 32));
	}
	/* a range, the last byte, a range past the end, a buffer too small */
	CHECK_EQ(vmb_fetch_get(f, "objects/ab/abcdef", 4097, 5000, buf, 5000, &err), 5000);
	CHECK(!memcmp(buf, data + 4097, 5000));
	CHECK_EQ(vmb_fetch_get(f, "objects/ab/abcdef", sizeof(data) - 1, 1, buf, 1, &err), 1);
	CHECK_EQ(buf[0], data[sizeof(data) - 1]);
	CHECK_RC((int)vmb_fetch_get(f, "objects/ab/abcdef", sizeof(data) - 10, 11, buf, 11, &err),
		 -EINVAL);
	CHECK_STR(err.msg, "past the end of the object (100000 bytes)");
	CHECK_RC((int)vmb_fetch_get(f, "objects/ab/abcdef", 0, 0, buf, sizeof(data) - 1, &err),
		 -EFBIG);
	CHECK_STR(err.msg, "the object is 100000 bytes, more than the 99999 expected");
	CHECK_RC((int)vmb_fetch_get(f, "objects/zz/none", 0, 0, buf, 10, &err), -ENOENT);
	CHECK_RC((int)vmb_fetch_get(f, "objects", 0, 0, buf, 10, &err), -EINVAL);
	CHECK_STR(err.msg, "not a regular file");
	/* an empty object */
	CHECK_RC(vmb_fetch_put(f, "empty", "", 0, &err), 0);
	CHECK_EQ(vmb_fetch_get(f, "empty", 0, 0, buf, 10, &err), 0);
	/* put replaces whole, leaves no temporaries */
	CHECK_RC(vmb_fetch_put(f, "index", "two two\n", 8, &err), 0);
	CHECK_EQ(vmb_fetch_get(f, "index", 0, 0, buf, 100, &err), 8);
	CHECK(!memcmp(buf, "two two\n", 8));
	snprintf(p, sizeof(p), "%s/pub", dir);
	CHECK_EQ(count_entries(p), 3);        /* index, empty, objects */
	snprintf(p, sizeof(p), "%s/pub/objects/ab", dir);
	CHECK_EQ(count_entries(p), 1);
	/* a file where a directory must go: an error naming it, nothing left behind */
	CHECK(vmb_fetch_put(f, "index/sub", "x", 1, &err) < 0);
	CHECK_STR(err.msg, "cannot upload");
	CHECK_STR(err.msg, "/pub/index/sub'");
	vmb_fetcher_stats(f, &st);
	CHECK_EQ(st.errors, 6);
	vmb_fetcher_close(f);

	/* file://localhost/DIR is the same directory */
	snprintf(url, sizeof(url), "file://localhost%s/pub", dir);
	REQUIRE(vmb_fetcher_open(url, NULL, &f, &err) == 0);
	CHECK_EQ(vmb_fetch_get(f, "index", 0, 0, buf, 100, &err), 8);
	vmb_fetcher_close(f);
	harness_rmtree(dir);
}

/* where s3:// objects are requested: virtual-host style on AWS, path style under an
 * endpoint or for names that cannot be host names; the region from the environment */
static void test_s3_urls(void)
{
	static const struct { const char *url, *endpoint, *region, *want; } t[] = {
		{ "s3://my-bucket/pub/v1", NULL, NULL,
		  "https://my-bucket.s3.eu-west-3.amazonaws.com/pub/v1/objects/ab/cd" },
		{ "s3://my-bucket", NULL, "us-west-2",
		  "https://my-bucket.s3.us-west-2.amazonaws.com/objects/ab/cd" },
		{ "s3://my.dotted.bucket/p/", NULL, NULL,
		  "https://s3.eu-west-3.amazonaws.com/my.dotted.bucket/p/objects/ab/cd" },
		{ "s3://Old_Bucket/p", NULL, NULL,
		  "https://s3.eu-west-3.amazonaws.com/Old_Bucket/p/objects/ab/cd" },
		{ "s3://b12/x/y", "http://127.0.0.1:9000/", NULL,
		  "http://127.0.0.1:9000/b12/x/y/objects/ab/cd" },
		{ "s3://b12", "https://minio.example:9000", NULL,
		  "https://minio.example:9000/b12/objects/ab/cd" },
		{ "https://h.example/p/", NULL, NULL, "https://h.example/p/objects/ab/cd" },
		{ "s3+http://127.0.0.1:9000/b12/x/y", NULL, NULL,
		  "http://127.0.0.1:9000/b12/x/y/objects/ab/cd" },
		{ "s3+https://minio.example/b12/", "https://minio.example/", NULL,
		  "https://minio.example/b12/objects/ab/cd" },
		{ "s3+http://[::1]:9000/b12", NULL, NULL, "http://[::1]:9000/b12/objects/ab/cd" },
		{ NULL, NULL, NULL, NULL }
	};
	struct vmb_fetch_opts o;
	struct vmb_fetcher *f;
	struct vmb_err err;
	char dir[256], *u;
	int i;

	REQUIRE(harness_tmpdir(dir, sizeof(dir), "fetch-s3") == 0);
	setenv("HOME", dir, 1);
	setenv("AWS_REGION", "eu-west-3", 1);
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_PROFILE");
	unsetenv("AWS_SHARED_CREDENTIALS_FILE");
	unsetenv("AWS_CONFIG_FILE");
	for (i = 0; t[i].url; i++) {
		vmb_fetch_opts_default(&o);
		o.endpoint = t[i].endpoint;
		o.region = t[i].region;
		f = NULL;
		if (vmb_fetcher_open(t[i].url, &o, &f, &err)) {
			CHECK(!"open failed");
			fprintf(stderr, "    %s: %s\n", t[i].url, err.msg);
			continue;
		}
		u = NULL;
		CHECK_RC(vmb_fetcher_object_url(f, "objects/ab/cd", &u, &err), 0);
		if (u && strcmp(u, t[i].want)) {
			CHECK(!"object URL");
			fprintf(stderr, "    %s: got %s, want %s\n", t[i].url, u, t[i].want);
		}
		free(u);
		CHECK_RC(vmb_fetcher_object_url(f, "../x", &u, &err), -EINVAL);
		vmb_fetcher_close(f);
	}
	unsetenv("AWS_REGION");
	harness_rmtree(dir);
}

/* the kept form of s3 URLs (vmb_fetch_url_resolve): the endpoint from the option, then
 * AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, endpoint_url of the profile; bad forms */
static void test_s3_resolve(void)
{
	static const struct { const char *url, *endpoint, *env_s3, *env, *conf, *want; int rc;
			      const char *msg; } t[] = {
		{ "s3://b12/x/", NULL, NULL, NULL, NULL, "s3://b12/x", 0, NULL },
		{ "s3://b12/x", "http://127.0.0.1:9000/", NULL, NULL, NULL,
		  "s3+http://127.0.0.1:9000/b12/x", 0, NULL },
		{ "s3://b12", "https://h.example", "http://s3env:1", "http://env:2", NULL,
		  "s3+https://h.example/b12", 0, NULL },
		{ "s3://b12/p", NULL, "http://s3env:1", "http://env:2", "http://conf:3",
		  "s3+http://s3env:1/b12/p", 0, NULL },
		{ "s3://b12/p", NULL, NULL, "http://env:2", "http://conf:3",
		  "s3+http://env:2/b12/p", 0, NULL },
		{ "s3://b12/p", NULL, NULL, NULL, "http://conf:3", "s3+http://conf:3/b12/p", 0,
		  NULL },
		{ "s3+http://h:1/b12/p/", NULL, "http://s3env:1", NULL, NULL,
		  "s3+http://h:1/b12/p", 0, NULL },
		{ "s3+http://h:1/b12/p", "http://h:1/", NULL, NULL, NULL, "s3+http://h:1/b12/p", 0,
		  NULL },
		{ "https://h/p/", NULL, "http://s3env:1", NULL, NULL, "https://h/p", 0, NULL },
		{ "s3+http://h:1/b12/p", "http://h:2", NULL, NULL, NULL, NULL, -EINVAL,
		  "names its endpoint already" },
		{ "https://h/p", "http://h:2", NULL, NULL, NULL, NULL, -EINVAL,
		  "an endpoint is for s3:// URLs" },
		{ "s3://x/p", "http://h:2", NULL, NULL, NULL, NULL, -EINVAL, "bucket name" },
		{ "s3://b12/a//b", NULL, NULL, NULL, NULL, NULL, -EINVAL, "the prefix" },
		{ "s3://b12/p", "ftp://h", NULL, NULL, NULL, NULL, -EINVAL,
		  "invalid S3 endpoint 'ftp://h' (from the endpoint option)" },
		{ "s3://b12/p", NULL, "http://h/path", NULL, NULL, NULL, -EINVAL,
		  "(from AWS_ENDPOINT_URL_S3)" },
		{ "s3://b12/p", NULL, NULL, NULL, "http://u@h", NULL, -EINVAL,
		  "(from endpoint_url in the AWS config file)" },
		{ "s3://b12/p", "http://h:123456", NULL, NULL, NULL, NULL, -EINVAL, "invalid S3" },
		{ "s3+http://h:1", NULL, NULL, NULL, NULL, NULL, -EINVAL,
		  "expected s3+http(s)://HOST[:PORT]/BUCKET" },
		{ "s3+http://h?x/b12", NULL, NULL, NULL, NULL, NULL, -EINVAL,
		  "is not an S3 endpoint" },
		{ NULL, NULL, NULL, NULL, NULL, NULL, 0, NULL }
	};
	struct vmb_fetch_opts o;
	struct vmb_fetcher *f;
	struct vmb_err err;
	char dir[256], conf[300], out[512];
	FILE *fp;
	int i;

	REQUIRE(harness_tmpdir(dir, sizeof(dir), "fetch-s3r") == 0);
	snprintf(conf, sizeof(conf), "%s/config", dir);
	setenv("HOME", dir, 1);
	setenv("AWS_CONFIG_FILE", conf, 1);
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_PROFILE");
	unsetenv("AWS_SHARED_CREDENTIALS_FILE");
	unsetenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS");
	for (i = 0; t[i].url; i++) {
		unlink(conf);
		if (t[i].conf) {
			fp = fopen(conf, "w");
			REQUIRE(fp);
			fprintf(fp, "[default]\nendpoint_url = %s\n", t[i].conf);
			fclose(fp);
		}
		if (t[i].env_s3)
			setenv("AWS_ENDPOINT_URL_S3", t[i].env_s3, 1);
		else
			unsetenv("AWS_ENDPOINT_URL_S3");
		if (t[i].env)
			setenv("AWS_ENDPOINT_URL", t[i].env, 1);
		else
			unsetenv("AWS_ENDPOINT_URL");
		vmb_err_clear(&err);
		out[0] = '\0';
		CHECK_RC(vmb_fetch_url_resolve(t[i].url, t[i].endpoint, out, sizeof(out), &err),
			 t[i].rc);
		if (t[i].want && strcmp(out, t[i].want)) {
			CHECK(!"resolved URL");
			fprintf(stderr, "    %s: got %s, want %s\n", t[i].url, out, t[i].want);
		}
		if (t[i].msg)
			CHECK_STR(err.msg, t[i].msg);
	}
	/* the environment and config are ignored when AWS says so; the option is not */
	setenv("AWS_ENDPOINT_URL", "http://env:2", 1);
	setenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true", 1);
	CHECK_RC(vmb_fetch_url_resolve("s3://b12/p", NULL, out, sizeof(out), &err), 0);
	CHECK(!strcmp(out, "s3://b12/p"));
	CHECK_RC(vmb_fetch_url_resolve("s3://b12/p", "http://o", out, sizeof(out), &err), 0);
	CHECK(!strcmp(out, "s3+http://o/b12/p"));
	unsetenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS");
	unsetenv("AWS_ENDPOINT_URL");
	CHECK_RC(vmb_fetch_url_resolve("s3://b12/p", "http://h", out, 10, &err), -ENAMETOOLONG);
	/* a fetcher of the kept form: its own endpoint only */
	vmb_fetch_opts_default(&o);
	o.endpoint = "http://other:1";
	f = NULL;
	CHECK_RC(vmb_fetcher_open("s3+http://h:1/b12/p", &o, &f, &err), -EINVAL);
	CHECK_STR(err.msg, "names its endpoint already");
	CHECK(f == NULL);
	unlink(conf);
	unsetenv("AWS_CONFIG_FILE");
	harness_rmtree(dir);
}

/* the one mapper of libcurl's codes: errno, and which failures may pass */
static void test_curl_err(void)
{
	static const struct { CURLcode code; int e, transient; const char *msg; } t[] = {
		{ CURLE_COULDNT_CONNECT, ECONNREFUSED, 1, "cannot connect" },
		{ CURLE_COULDNT_RESOLVE_HOST, EHOSTUNREACH, 1, "cannot resolve" },
		{ CURLE_OPERATION_TIMEDOUT, ETIMEDOUT, 1, "timed out" },
		{ CURLE_PARTIAL_FILE, EIO, 1, "truncated body" },
		{ CURLE_RECV_ERROR, ECONNRESET, 1, "connection lost" },
		{ CURLE_SEND_ERROR, ECONNRESET, 1, "connection lost" },
		{ CURLE_GOT_NOTHING, ECONNRESET, 1, "connection lost" },
		{ CURLE_HTTP2_STREAM, ECONNRESET, 1, "connection lost" },
		{ CURLE_SSL_CONNECT_ERROR, ECONNRESET, 1, "connection lost" },
		{ CURLE_PEER_FAILED_VERIFICATION, EACCES, 0, "does not verify" },
		{ CURLE_SSL_CACERT_BADFILE, EINVAL, 0, "CA file" },
		{ CURLE_URL_MALFORMAT, EINVAL, 0, "unusable URL" },
		{ CURLE_TOO_MANY_REDIRECTS, ELOOP, 0, "redirects" },
		{ CURLE_OUT_OF_MEMORY, ENOMEM, 0, "out of memory" },
		{ CURLE_ABORTED_BY_CALLBACK, ECANCELED, 0, "cancelled" },
		{ CURLE_FUNCTION_NOT_FOUND, EIO, 0, "curl 41" },
	};
	struct vmb_err err;
	size_t i;
	int tr;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		tr = -1;
		CHECK_RC(vmb_curl_err(t[i].code, "detail", &tr, &err), -t[i].e);
		CHECK_EQ(tr, t[i].transient);
		CHECK_STR(err.msg, t[i].msg);
		CHECK_STR(err.msg, "detail");
	}
	/* without curl's error buffer: curl's text for the code */
	CHECK_RC(vmb_curl_err(CURLE_COULDNT_CONNECT, "", &tr, &err), -ECONNREFUSED);
	CHECK_STR(err.msg, "(curl 7: ");
}

int main(void)
{
	RUN(test_policy);
	RUN(test_loop);
	RUN(test_hard);
	RUN(test_hard_soft_req);
	RUN(test_hard_cancel);
	RUN(test_threads);
	RUN(test_checks);
	RUN(test_file);
	RUN(test_s3_urls);
	RUN(test_s3_resolve);
	RUN(test_curl_err);
	return harness_exit("test_fetch");
}
