/* test_bufpool.c - the pool of large buffers (src/base/bufpool.c). */
#include "config.h"
#include "base/bufpool.h"
#include "harness.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* A released buffer is the next one of its class; sizes round up to the class;
 * buffers are page-aligned; small and huge requests are plain allocations. */
static void test_reuse(void)
{
	char *a, *b, *c, *d;

	a = vmb_buf_get(200 * 1024);   /* class 256 KiB */
	REQUIRE(a);
	CHECK(((uintptr_t)a & 4095) == 0);
	memset(a, 0xa5, 256 * 1024);   /* the whole class is usable */
	vmb_buf_put(a);
	b = vmb_buf_get(256 * 1024);
	CHECK(b == a);                 /* the same, warm */
	c = vmb_buf_get(256 * 1024);
	CHECK(c && c != b);            /* none idle: a new one */
	vmb_buf_put(b);
	vmb_buf_put(c);
	d = vmb_buf_get(300 * 1024);   /* class 512 KiB: not one of those */
	CHECK(d && d != b && d != c);
	vmb_buf_put(d);
	a = vmb_buf_get(100);          /* small: plain */
	REQUIRE(a);
	memset(a, 1, 100);
	vmb_buf_put(a);
	a = vmb_buf_get(0);
	CHECK(a != NULL);
	vmb_buf_put(a);
	a = vmb_buf_get((size_t)32 << 20);   /* past the largest class: plain */
	REQUIRE(a);
	a[((size_t)32 << 20) - 1] = 1;
	vmb_buf_put(a);
	vmb_buf_put(NULL);
}

/* A class keeps at most VMB_BUFPOOL_KEEP bytes idle; prefault fills it up to that. */
static void test_keep(void)
{
	enum { N = VMB_BUFPOOL_KEEP / (1u << 20) + 4 };
	char *v[N];
	int i;

	CHECK_EQ(vmb_buf_idle(1u << 20), 0u);
	for (i = 0; i < N; i++) {
		v[i] = vmb_buf_get(1u << 20);
		REQUIRE(v[i]);
	}
	for (i = 0; i < N; i++)
		vmb_buf_put(v[i]);
	/* the last ones put went beyond the limit: freed, not kept */
	CHECK_EQ(vmb_buf_idle(1u << 20), (size_t)VMB_BUFPOOL_KEEP);
	v[0] = vmb_buf_get(1u << 20);
	CHECK_EQ(vmb_buf_idle(1u << 20), (size_t)VMB_BUFPOOL_KEEP - (1u << 20));
	vmb_buf_put(v[0]);
	CHECK_EQ(vmb_buf_idle(2u << 20), 0u);
	vmb_buf_prefault(2u << 20, 4);
	CHECK_EQ(vmb_buf_idle(2u << 20), (size_t)4 << 21);
	v[0] = vmb_buf_get(2u << 20);
	REQUIRE(v[0]);
	CHECK(v[0][0] == 0 && v[0][(2u << 20) - 1] == 0);   /* prefaulted: zeroed */
	vmb_buf_put(v[0]);
	vmb_buf_prefault(2u << 20, 1000);   /* up to the limit only */
	CHECK_EQ(vmb_buf_idle(2u << 20), (size_t)VMB_BUFPOOL_KEEP);
	vmb_buf_prefault(100, 4);   /* not a class: nothing */
	CHECK_EQ(vmb_buf_idle(100), 0u);
}

static void *churn(void *arg)
{
	(void)arg;
	for (int i = 0; i < 2000; i++) {
		char *p = vmb_buf_get(64 * 1024 + (size_t)(i % 3) * 100 * 1024);

		if (!p)
			return (void *)1;
		p[0] = p[64 * 1024 - 1] = (char)i;
		vmb_buf_put(p);
	}
	return NULL;
}

/* Several threads at once (the sanitizer build looks for races and leaks). */
static void test_threads(void)
{
	pthread_t t[4];
	void *r;
	int i, bad = 0;

	for (i = 0; i < 4; i++)
		REQUIRE(pthread_create(&t[i], NULL, churn, NULL) == 0);
	for (i = 0; i < 4; i++) {
		pthread_join(t[i], &r);
		bad += r != NULL;
	}
	CHECK_EQ(bad, 0);
}

int main(void)
{
	RUN(test_reuse);
	RUN(test_keep);
	RUN(test_threads);
	return harness_exit("test_bufpool");
}
