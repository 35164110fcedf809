/* dio.c - large, aligned writes to the backing file with O_DIRECT (see dio.h). */
#include "config.h"
#include "image/dio.h"
#include "base/fdio.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void vmb_dio_init(struct vmb_dio *d, int enabled)
{
	memset(d, 0, sizeof(*d));
	d->fd = -1;
	d->bfd = -1;
	d->state = enabled ? 0 : -1;
	d->mem_align = d->off_align = 4096;
}

void vmb_dio_destroy(struct vmb_dio *d)
{
	unsigned i;

	if (d->threads_up) {
		vmb_dio_drain(d, 0, NULL);
		pthread_mutex_lock(&d->lock);
		d->stop = 1;
		pthread_cond_broadcast(&d->cond);
		pthread_cond_broadcast(&d->work);
		pthread_cond_broadcast(&d->work0);
		pthread_mutex_unlock(&d->lock);
		for (i = 0; i < (unsigned)d->threads_up; i++)
			pthread_join(d->threads[i], NULL);
		d->threads_up = 0;
	}
	if (d->lock_ready) {
		pthread_cond_destroy(&d->cond);
		pthread_cond_destroy(&d->work);
		pthread_cond_destroy(&d->work0);
		pthread_mutex_destroy(&d->lock);
		d->lock_ready = 0;
	}
	for (i = 0; i < VMB_DIO_QUEUE; i++) {
		free(d->q[i].mem);
		d->q[i].mem = NULL;
	}
	if (d->fd >= 0)
		close(d->fd);
	d->fd = -1;
}

/* Write one queued request: directly, or through the page cache when the direct
 * write is refused (EINVAL: the alignment is not what was claimed) or comes up
 * short of an aligned length. */
static int write_req(struct vmb_dio *d, const struct vmb_dio_req *q)
{
	size_t done = 0;

	while (done < q->len) {
		ssize_t n = pwrite(d->fd, (const char *)q->mem + done, q->len - done,
				   (off_t)(q->off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EINVAL)
			return -errno;
		if (n <= 0 || (size_t)n % d->off_align) {
			if (n > 0)
				done += (size_t)n;
			return vmb_pwrite_full(d->bfd, (const char *)q->mem + done,
					       q->len - done, q->off + done, NULL);
		}
		done += (size_t)n;
	}
	return 0;
}

/* The oldest queued request a thread may write, or NULL. Caller holds lock.
 *
 * A write past the backing file's end takes the filesystem's inode lock
 * exclusively and completes before the next one starts (ext4, XFS): several
 * threads would only spin on that lock, and write the run out of order. So the
 * first thread writes every request in order, and the others take only the
 * requests that lie inside the file (size_hint: the file's size as last seen, which
 * only the writes of this queue and the drains change between two looks), which go
 * side by side. */
static struct vmb_dio_req *next_for(struct vmb_dio *d, int ordered)
{
	struct vmb_dio_req *best = NULL;
	unsigned i;

	for (i = 0; i < VMB_DIO_QUEUE; i++) {
		struct vmb_dio_req *q = &d->q[i];
		if (q->state != VMB_DIO_QUEUED || (best && q->seq > best->seq))
			continue;
		if (ordered || q->off + q->len <= d->size_hint)
			best = q;
	}
	return best;
}

static void *writer(void *arg)
{
	struct vmb_dio *d = arg;
	int ordered;

	pthread_mutex_lock(&d->lock);
	ordered = d->nstarted++ == 0;
	for (;;) {
		struct vmb_dio_req *q;
		int r;

		while (!(q = next_for(d, ordered)) && !d->stop)
			pthread_cond_wait(ordered ? &d->work0 : &d->work, &d->lock);
		if (!q)
			break;
		q->state = VMB_DIO_BUSY;
		pthread_mutex_unlock(&d->lock);
		if (d->delay_us)   /* tests: widen the window of a queued write, by 0-100% */
			usleep((unsigned)(d->delay_us * ((q->seq * 2654435761u) % 101) / 100));
		r = write_req(d, q);
		pthread_mutex_lock(&d->lock);
		if (r < 0 && !d->err) {
			d->err = r;
			d->err_off = q->off;
		}
		if (r == 0 && q->off + q->len > d->size_hint)
			d->size_hint = q->off + q->len;
		q->state = VMB_DIO_FREE;
		d->used--;
		pthread_cond_broadcast(&d->cond);
	}
	pthread_mutex_unlock(&d->lock);
	return NULL;
}

/* The file's size as it is now (after a drain: a truncate or a buffered write may
 * have changed it). Caller holds lock. */
static void look_at_size(struct vmb_dio *d)
{
	struct stat st;

	d->size_hint = fstat(d->bfd, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* Open the O_DIRECT descriptor, learn the alignment, start the threads; on any
 * failure direct writes are off for this image. */
static void start(struct vmb_dio *d, int fd)
{
	char proc[64];
	unsigned i;
#ifdef STATX_DIOALIGN
	struct statx stx;

	if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 &&
	    (stx.stx_mask & STATX_DIOALIGN)) {
		d->mem_align = stx.stx_dio_mem_align;
		d->off_align = stx.stx_dio_offset_align;
	}
#endif
	d->state = -1;
	if (!d->mem_align || !d->off_align || d->mem_align > 4096 ||
	    d->off_align > VMB_DIO_CHUNK)
		return;   /* no direct I/O on this filesystem, or an odd one */
	for (i = 0; i < VMB_DIO_QUEUE; i++)
		if (posix_memalign(&d->q[i].mem, 4096, VMB_DIO_CHUNK) != 0)
			return;
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	d->fd = open(proc, O_WRONLY | O_DIRECT | O_CLOEXEC);
	if (d->fd < 0)
		return;
	d->bfd = fd;
	if (getenv("VMB_TEST_DIO_DELAY_US"))
		d->delay_us = (unsigned)strtoul(getenv("VMB_TEST_DIO_DELAY_US"), NULL, 10);
	if (pthread_mutex_init(&d->lock, NULL) != 0)
		return;
	if (pthread_cond_init(&d->cond, NULL) != 0) {
		pthread_mutex_destroy(&d->lock);
		return;
	}
	if (pthread_cond_init(&d->work, NULL) != 0) {
		pthread_cond_destroy(&d->cond);
		pthread_mutex_destroy(&d->lock);
		return;
	}
	if (pthread_cond_init(&d->work0, NULL) != 0) {
		pthread_cond_destroy(&d->work);
		pthread_cond_destroy(&d->cond);
		pthread_mutex_destroy(&d->lock);
		return;
	}

	d->lock_ready = 1;
	look_at_size(d);
	for (i = 0; i < VMB_DIO_THREADS; i++) {
		if (pthread_create(&d->threads[i], NULL, writer, d) != 0)
			break;
		__atomic_store_n(&d->threads_up, d->threads_up + 1, __ATOMIC_RELEASE);
	}
	if (d->threads_up > 0)
		d->state = 1;
}

int vmb_dio_eligible(struct vmb_dio *d, int fd, uint64_t off, size_t len)
{
	if (d->state < 0 || len < VMB_DIO_MIN)
		return 0;
	if (d->state == 0)
		start(d, fd);
	return d->state > 0 && off % d->off_align == 0 && len % d->off_align == 0;
}

void vmb_dio_disable(struct vmb_dio *d)
{
	d->state = -1;   /* threads already up stay for the drains, idle */
}

void vmb_dio_pwrite(struct vmb_dio *d, const void *buf, size_t len, uint64_t off)
{
	const char *p = buf;
	size_t done = 0;

	vmb_dio_wait_range(d, off, len);   /* queued writes never overlap */
	pthread_mutex_lock(&d->lock);
	while (done < len) {
		struct vmb_dio_req *q = NULL;
		size_t chunk = len - done;
		unsigned i;

		while (d->used == VMB_DIO_QUEUE)
			pthread_cond_wait(&d->cond, &d->lock);
		for (i = 0; i < VMB_DIO_QUEUE && !q; i++)
			if (d->q[i].state == VMB_DIO_FREE)
				q = &d->q[i];
		if (chunk > VMB_DIO_CHUNK)
			chunk = VMB_DIO_CHUNK;
		/* A FREE slot is touched by nobody else: writers take QUEUED ones, and
		 * there is one producer at a time (the image's wlock). */
		pthread_mutex_unlock(&d->lock);
		memcpy(q->mem, p + done, chunk);
		q->off = off + done;
		q->len = chunk;
		pthread_mutex_lock(&d->lock);
		q->seq = ++d->accepted;
		q->state = VMB_DIO_QUEUED;
		d->used++;
		pthread_cond_signal(&d->work0);
		if (q->off + q->len <= d->size_hint)   /* inside the file: a helper too */
			pthread_cond_signal(&d->work);
		done += chunk;
	}
	pthread_mutex_unlock(&d->lock);
}

static int overlaps(const struct vmb_dio *d, uint64_t off, uint64_t len)
{
	unsigned i;

	for (i = 0; i < VMB_DIO_QUEUE; i++) {
		const struct vmb_dio_req *q = &d->q[i];
		if (q->state != VMB_DIO_FREE && q->off < off + len && off < q->off + q->len)
			return 1;
	}
	return 0;
}

void vmb_dio_wait_range(struct vmb_dio *d, uint64_t off, uint64_t len)
{
	if (!__atomic_load_n(&d->threads_up, __ATOMIC_ACQUIRE))
		return;
	pthread_mutex_lock(&d->lock);
	while (overlaps(d, off, len))
		pthread_cond_wait(&d->cond, &d->lock);
	pthread_mutex_unlock(&d->lock);
}

/* Is a request accepted up to seq target still queued or being written? */
static int pending_upto(const struct vmb_dio *d, uint64_t target)
{
	unsigned i;

	for (i = 0; i < VMB_DIO_QUEUE; i++)
		if (d->q[i].state != VMB_DIO_FREE && d->q[i].seq <= target)
			return 1;
	return 0;
}

int vmb_dio_drain(struct vmb_dio *d, int take_err, uint64_t *off)
{
	uint64_t target;
	int r = 0;

	if (!__atomic_load_n(&d->threads_up, __ATOMIC_ACQUIRE))
		return 0;
	pthread_mutex_lock(&d->lock);
	target = d->accepted;
	while (pending_upto(d, target))
		pthread_cond_wait(&d->cond, &d->lock);
	if (!d->used)
		look_at_size(d);
	if (take_err && d->err) {
		r = d->err;
		if (off)
			*off = d->err_off;
		d->err = 0;
	}
	pthread_mutex_unlock(&d->lock);
	return r;
}

int vmb_dio_idle(struct vmb_dio *d)
{
	int idle;

	if (!__atomic_load_n(&d->threads_up, __ATOMIC_ACQUIRE))
		return 1;
	pthread_mutex_lock(&d->lock);
	idle = d->used == 0;
	pthread_mutex_unlock(&d->lock);
	return idle;
}
