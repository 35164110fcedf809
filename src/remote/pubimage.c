/* pubimage.c - the image index of a published store (see pubfmt.h). */
#include "config.h"
#include "remote/pubfmt.h"
#include "base/le.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define II_ERR(...) vmb_err_set(err, EINVAL, "image index: " __VA_ARGS__)

static const uint8_t zero32[32];

void vmb_pub_image_free(struct vmb_pub_image *m)
{
	free(m->ext);
	free(m->chunks);
	memset(m, 0, sizeof(*m));
}

static uint64_t div_up(uint64_t a, uint64_t b)
{
	return a / b + (a % b != 0);
}

int vmb_pub_image_validate(const struct vmb_pub_image *m, struct vmb_err *err)
{
	uint64_t i, sum = 0, nblocks, c, e;
	uint64_t cblocks;

	if (m->chunk_size < VMB_PIDX_CHUNK_MIN || m->chunk_size > VMB_PIDX_CHUNK_MAX ||
	    (m->chunk_size & (m->chunk_size - 1)))
		return II_ERR("chunk size %" PRIu32 " is not a power of two from 64 KiB "
			      "to 16 MiB", m->chunk_size);
	if (m->size > (uint64_t)INT64_MAX)
		return II_ERR("size %" PRIu64 " is too large", m->size);
	if (m->n_chunks != div_up(m->size, m->chunk_size))
		return II_ERR("n_chunks is %" PRIu64 ", but a size of %" PRIu64 " bytes "
			      "makes %" PRIu64 " chunks", m->n_chunks, m->size,
			      div_up(m->size, m->chunk_size));
	nblocks = div_up(m->size, VMB_BLOCK_SIZE);
	for (i = 0; i < m->n_extents; i++) {
		uint64_t f = m->ext[i][0], n = m->ext[i][1];

		if (n == 0)
			return II_ERR("extent %" PRIu64 " is empty", i);
		if (f >= nblocks || n > nblocks - f)
			return II_ERR("extent %" PRIu64 " (blocks %" PRIu64 "+%" PRIu64 ") "
				      "ends past the size (%" PRIu64 " blocks)", i, f, n,
				      nblocks);
		if (i && f < m->ext[i - 1][0])
			return II_ERR("extent %" PRIu64 " is not sorted after extent %" PRIu64,
				      i, i - 1);
		if (i && f < m->ext[i - 1][0] + m->ext[i - 1][1])
			return II_ERR("extent %" PRIu64 " overlaps extent %" PRIu64, i, i - 1);
		if (i && f == m->ext[i - 1][0] + m->ext[i - 1][1])
			return II_ERR("extent %" PRIu64 " is adjacent to extent %" PRIu64
				      " (not merged)", i, i - 1);
		sum += n;
	}
	if (sum != m->data_blocks)
		return II_ERR("data_blocks is %" PRIu64 ", but the extents hold %" PRIu64,
			      m->data_blocks, sum);
	/* A chunk's digest is zero exactly when no extent meets it. */
	cblocks = m->chunk_size / VMB_BLOCK_SIZE;
	for (c = 0, e = 0; c < m->n_chunks; c++) {
		uint64_t lo = c * cblocks, hi = lo + cblocks;
		int data;

		while (e < m->n_extents && m->ext[e][0] + m->ext[e][1] <= lo)
			e++;
		data = e < m->n_extents && m->ext[e][0] < hi;
		if (data && !memcmp(m->chunks[c], zero32, 32))
			return II_ERR("chunk %" PRIu64 " holds data but has no digest", c);
		if (!data && memcmp(m->chunks[c], zero32, 32))
			return II_ERR("chunk %" PRIu64 " holds no data but has a digest (a "
				      "zero chunk's digest is 32 zero bytes)", c);
	}
	return 0;
}

int vmb_pub_image_encode(const struct vmb_pub_image *m, void **out, size_t *len,
			 struct vmb_err *err)
{
	unsigned char *b, *p;
	size_t n;
	uint64_t i;
	int r = vmb_pub_image_validate(m, err);

	*out = NULL;
	*len = 0;
	if (r < 0)
		return vmb_err_prefix(err, "cannot write an image index");
	if (m->n_extents > (SIZE_MAX - VMB_PIDX_HDR) / 64 ||
	    m->n_chunks > (SIZE_MAX - VMB_PIDX_HDR) / 64)
		return vmb_err_set(err, EFBIG, "cannot write an image index: too large");
	n = VMB_PIDX_HDR + (size_t)m->n_extents * 16 + (size_t)m->n_chunks * 32;
	b = calloc(1, n);
	if (!b)
		return vmb_err_set(err, ENOMEM, "out of memory");
	memcpy(b, VMB_PIDX_MAGIC, 8);
	vmb_put_le32(b + 8, VMB_PIDX_VERSION);
	vmb_put_le32(b + 12, m->chunk_size);
	vmb_put_le64(b + 16, m->size);
	vmb_put_le64(b + 24, m->n_extents);
	vmb_put_le64(b + 32, m->n_chunks);
	vmb_put_le64(b + 40, m->data_blocks);
	p = b + VMB_PIDX_HDR;
	for (i = 0; i < m->n_extents; i++, p += 16) {
		vmb_put_le64(p, m->ext[i][0]);
		vmb_put_le64(p + 8, m->ext[i][1]);
	}
	if (m->n_chunks)
		memcpy(p, m->chunks, (size_t)m->n_chunks * 32);
	*out = b;
	*len = n;
	return 0;
}

int vmb_pub_image_decode(const void *vbuf, size_t len, struct vmb_pub_image *m,
			 struct vmb_err *err)
{
	const unsigned char *b = vbuf, *p;
	uint64_t i, room;
	uint32_t ver;
	int r;

	memset(m, 0, sizeof(*m));
	if (len < VMB_PIDX_HDR)
		return II_ERR("truncated (%zu bytes, the header alone is %d)", len,
			      VMB_PIDX_HDR);
	if (memcmp(b, VMB_PIDX_MAGIC, 8))
		return II_ERR("bad magic (not an image index)");
	ver = vmb_get_le32(b + 8);
	if (ver != VMB_PIDX_VERSION)
		return vmb_err_set(err, EINVAL, "image index: version %" PRIu32
				   " is not supported (this vmbundlefs reads version %d)",
				   ver, VMB_PIDX_VERSION);
	m->chunk_size = vmb_get_le32(b + 12);
	m->size = vmb_get_le64(b + 16);
	m->n_extents = vmb_get_le64(b + 24);
	m->n_chunks = vmb_get_le64(b + 32);
	m->data_blocks = vmb_get_le64(b + 40);
	for (i = 48; i < VMB_PIDX_HDR; i++)
		if (b[i])
			return II_ERR("reserved byte %" PRIu64 " is not zero", i);
	/* Exactly 64 + 16 * n_extents + 32 * n_chunks bytes, without overflow. */
	room = len - VMB_PIDX_HDR;
	if (m->n_extents > room / 16)
		return II_ERR("truncated: %" PRIu64 " extents do not fit in %zu bytes",
			      m->n_extents, len);
	room -= m->n_extents * 16;
	if (m->n_chunks > room / 32)
		return II_ERR("truncated: %" PRIu64 " extents and %" PRIu64 " chunk digests "
			      "do not fit in %zu bytes", m->n_extents, m->n_chunks, len);
	if (room != m->n_chunks * 32)
		return II_ERR("%" PRIu64 " trailing bytes after the chunk digests",
			      room - m->n_chunks * 32);
	m->ext = malloc(m->n_extents ? (size_t)m->n_extents * 16 : 1);
	m->chunks = malloc(m->n_chunks ? (size_t)m->n_chunks * 32 : 1);
	if (!m->ext || !m->chunks) {
		vmb_pub_image_free(m);
		return vmb_err_set(err, ENOMEM, "out of memory");
	}
	p = b + VMB_PIDX_HDR;
	for (i = 0; i < m->n_extents; i++, p += 16) {
		m->ext[i][0] = vmb_get_le64(p);
		m->ext[i][1] = vmb_get_le64(p + 8);
	}
	if (m->n_chunks)
		memcpy(m->chunks, p, (size_t)m->n_chunks * 32);
	r = vmb_pub_image_validate(m, err);
	if (r < 0)
		vmb_pub_image_free(m);
	return r;
}

enum vmb_bstate vmb_pub_image_lookup(const struct vmb_pub_image *m, uint64_t blk,
				     uint64_t *run)
{
	uint64_t lo = 0, hi = m->n_extents, next;

	/* The first extent that ends after blk. */
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;

		if (m->ext[mid][0] + m->ext[mid][1] <= blk)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < m->n_extents && m->ext[lo][0] <= blk) {
		if (run)
			*run = m->ext[lo][0] + m->ext[lo][1] - blk;
		return VMB_DATA;
	}
	next = lo < m->n_extents ? m->ext[lo][0] : VMB_BLOCK_MAX;
	if (run)
		*run = next > blk ? next - blk : 1;
	return VMB_ZERO;
}

int vmb_pub_chunk_is_zero(const struct vmb_pub_image *m, uint64_t i)
{
	return i >= m->n_chunks || !memcmp(m->chunks[i], zero32, 32);
}

uint64_t vmb_pub_chunk_len(const struct vmb_pub_image *m, uint64_t i)
{
	uint64_t off = i * m->chunk_size;

	if (off >= m->size)
		return 0;
	return m->size - off < m->chunk_size ? m->size - off : m->chunk_size;
}
