/* bufpool.c - the pool of large buffers (bufpool.h).
 *
 * Each buffer is preceded by a header page holding its class (and, while idle, the
 * link of its class's list), so that the buffer itself is page-aligned. */
#include "config.h"
#include "base/bufpool.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define HDR 4096u
#define MIN_SHIFT 16   /* 64 KiB */
#define MAX_SHIFT 24   /* 16 MiB */
#define NCLASS (MAX_SHIFT - MIN_SHIFT + 1)

struct hdr {
	unsigned cls;        /* MIN_SHIFT..MAX_SHIFT, or 0: not pooled */
	struct hdr *next;    /* idle list */
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct hdr *idle[NCLASS];
static size_t idle_bytes[NCLASS];
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/* A child of fork() gets the mutex unlocked whatever the parent's threads did. */
static void fork_prepare(void)
{
	pthread_mutex_lock(&mu);
}

static void fork_done(void)
{
	pthread_mutex_unlock(&mu);
}

static void register_atfork(void)
{
	pthread_atfork(fork_prepare, fork_done, fork_done);
}

static void lock(void)
{
	pthread_once(&atfork_once, register_atfork);
	pthread_mutex_lock(&mu);
}

/* The class of len: MIN_SHIFT..MAX_SHIFT, or 0 when len is not pooled. */
static unsigned class_of(size_t len)
{
	unsigned s = MIN_SHIFT;

	if (len < ((size_t)1 << MIN_SHIFT) || len > ((size_t)1 << MAX_SHIFT))
		return 0;
	while (((size_t)1 << s) < len)
		s++;
	return s;
}

static struct hdr *alloc_raw(size_t bytes, unsigned cls)
{
	void *p;

	if (posix_memalign(&p, HDR, HDR + bytes) != 0)
		return NULL;
	((struct hdr *)p)->cls = cls;
	((struct hdr *)p)->next = NULL;
	return p;
}

void *vmb_buf_get(size_t len)
{
	unsigned cls = class_of(len);
	struct hdr *h = NULL;

	if (cls) {
		lock();
		h = idle[cls - MIN_SHIFT];
		if (h) {
			idle[cls - MIN_SHIFT] = h->next;
			idle_bytes[cls - MIN_SHIFT] -= (size_t)1 << cls;
		}
		pthread_mutex_unlock(&mu);
	}
	if (!h)
		h = alloc_raw(cls ? (size_t)1 << cls : (len ? len : 1), cls);
	return h ? (char *)h + HDR : NULL;
}

void vmb_buf_put(void *buf)
{
	struct hdr *h;
	unsigned cls;

	if (!buf)
		return;
	h = (struct hdr *)((char *)buf - HDR);
	cls = h->cls;
	if (cls) {
		lock();
		if (idle_bytes[cls - MIN_SHIFT] + ((size_t)1 << cls) <= VMB_BUFPOOL_KEEP) {
			h->next = idle[cls - MIN_SHIFT];
			idle[cls - MIN_SHIFT] = h;
			idle_bytes[cls - MIN_SHIFT] += (size_t)1 << cls;
			h = NULL;
		}
		pthread_mutex_unlock(&mu);
	}
	free(h);
}

void vmb_buf_prefault(size_t len, unsigned n)
{
	unsigned cls = class_of(len);

	if (!cls)
		return;
	for (unsigned k = 0; k < n; k++) {
		struct hdr *h;
		int full;

		lock();
		full = idle_bytes[cls - MIN_SHIFT] + ((size_t)1 << cls) > VMB_BUFPOOL_KEEP;
		pthread_mutex_unlock(&mu);
		if (full)
			return;
		h = alloc_raw((size_t)1 << cls, cls);
		if (!h)
			return;
		memset((char *)h + HDR, 0, (size_t)1 << cls);   /* the pages, now */
		vmb_buf_put((char *)h + HDR);
	}
}

size_t vmb_buf_idle(size_t len)
{
	unsigned cls = class_of(len);
	size_t n = 0;

	if (cls) {
		lock();
		n = idle_bytes[cls - MIN_SHIFT];
		pthread_mutex_unlock(&mu);
	}
	return n;
}
