/* archive_sparse.c - writing an imported file's data as a sparse file (see
 * archive_int.h). */
#include "config.h"
#include "archive/archive_int.h"
#include "base/fdio.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#define BS ((uint64_t)VMB_BLOCK_SIZE)

static int all_zero(const unsigned char *p, size_t n)
{
	static const unsigned char zero[64];

	while (n >= sizeof(zero)) {
		if (memcmp(p, zero, sizeof(zero)))
			return 0;
		p += sizeof(zero);
		n -= sizeof(zero);
	}
	return n == 0 || memcmp(p, zero, n) == 0;
}

void vmb_sw_init(struct vmb_swriter *w, int fd, uint64_t size, struct vmb_budget *b)
{
	memset(w, 0, sizeof(*w));
	w->fd = fd;
	w->size = size;
	w->budget = b;
}

static int charge(struct vmb_swriter *w, uint64_t len, struct vmb_err *err)
{
	struct vmb_budget *b = w->budget;
	uint64_t blocks = (len + BS - 1) / BS * BS;

	if (!b)
		return 0;
	if (b->stored + blocks > b->max) {
		if (b->explicit_max)
			return vmb_err_set(err, EFBIG, "the archive expands past --max-size "
					   "(%" PRIu64 " bytes)", b->max);
		return vmb_err_set(err, ENOSPC, "the archive expands past the free space "
				   "of the store's filesystem (%" PRIu64 " bytes free, less a "
				   "margin of %" PRIu64 ")", b->free, b->free - b->max);
	}
	if (b->stored + blocks > b->free)
		return vmb_err_set(err, ENOSPC, "the archive expands past the free space of "
				   "the store's filesystem (%" PRIu64 " bytes)", b->free);
	b->stored += blocks;
	return 0;
}

static int pwrite_all(struct vmb_swriter *w, const unsigned char *p, size_t n,
		      uint64_t off, struct vmb_err *err)
{
	int r = charge(w, n, err);

	if (r < 0)
		return r;
	r = vmb_pwrite_full(w->fd, p, n, off, NULL);
	if (r < 0)
		return vmb_err_sys(err, -r, "cannot write at offset %" PRIu64, off);
	return 0;
}

static int flush(struct vmb_swriter *w, struct vmb_err *err)
{
	uint64_t off = w->blk * BS, len = BS;
	int r = 0;

	if (!w->pending)
		return 0;
	w->pending = 0;
	if (w->size != UINT64_MAX && w->size - off < len)
		len = w->size - off;
	else if (w->size == UINT64_MAX && w->end - off < len)
		len = w->end - off;
	if (!all_zero(w->buf, (size_t)len))
		r = pwrite_all(w, w->buf, (size_t)len, off, err);
	return r;
}

int vmb_sw_data(struct vmb_swriter *w, const void *data, size_t n, uint64_t off,
		struct vmb_err *err)
{
	const unsigned char *p = data;
	int r;

	if (n == 0)
		return 0;
	if (off < w->end)
		return vmb_err_set(err, EBADMSG, "its data blocks overlap or are out of "
				   "order (offset %" PRIu64 " after %" PRIu64 ")", off, w->end);
	if (off > w->size || n > w->size - off)
		return vmb_err_set(err, EBADMSG, "its data (or sparse map) reaches past its "
				   "size (%" PRIu64 " bytes at offset %" PRIu64 ", size %"
				   PRIu64 ")", (uint64_t)n, off, w->size);
	w->end = off + n;
	while (n > 0) {
		uint64_t b = off / BS, in = off % BS, whole, i, run;

		if (w->pending && b != w->blk) {
			r = flush(w, err);
			if (r < 0)
				return r;
		}
		if (in != 0 || n < BS) {
			size_t c = (size_t)(BS - in) < n ? (size_t)(BS - in) : n;

			if (!w->pending) {
				memset(w->buf, 0, sizeof(w->buf));
				w->pending = 1;
				w->blk = b;
			}
			memcpy(w->buf + in, p, c);
			p += c;
			n -= c;
			off += c;
			if (in + c == BS) {
				r = flush(w, err);
				if (r < 0)
					return r;
			}
			continue;
		}
		/* Whole aligned blocks: write the runs of non-zero ones in place. */
		whole = n / BS;
		for (i = 0; i < whole;) {
			if (all_zero(p + i * BS, BS)) {
				i++;
				continue;
			}
			for (run = 1; i + run < whole && !all_zero(p + (i + run) * BS, BS);)
				run++;
			r = pwrite_all(w, p + i * BS, (size_t)(run * BS), off + i * BS, err);
			if (r < 0)
				return r;
			i += run;
		}
		p += whole * BS;
		n -= (size_t)(whole * BS);
		off += whole * BS;
	}
	return 0;
}

int vmb_sw_finish(struct vmb_swriter *w, struct vmb_err *err)
{
	return flush(w, err);
}
