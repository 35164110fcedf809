/* pages.c - the paged, checksummed extent format of sidecar and layer maps
 * (pages.h). Moved out of sidecar.c so that the layer maps share it; the checks and
 * their messages are the sidecar's, with the format's name in them. */
#include "config.h"
#include "map/pages.h"
#include "map/sidecar.h"
#include "base/crc32c.h"
#include "base/le.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define REC_SIZE 24u
#define NSEC_MAX 999999999u

_Static_assert(VMB_PAGES_PER_PAGE * REC_SIZE <= VMB_PAGES_BODY, "records fit a page");
_Static_assert(VMB_PAGES_PAGE == VMB_SIDECAR_PAGE, "one page size");
_Static_assert(VMB_PAGES_PER_PAGE == VMB_SIDECAR_PER_PAGE, "one record count");

/* Stamp fields, relative to the header. */
enum {
	H_INO = 16,
	H_SIZE = 24,
	H_MTIME_SEC = 32,
	H_MTIME_NSEC = 40,
	H_BTIME_NSEC = 44,
	H_BTIME_SEC = 48,
};

static uint32_t page_crc(const unsigned char *page)
{
	return vmb_crc32c(0, page, VMB_PAGES_BODY);
}

size_t vmb_pages_count(uint64_t count)
{
	uint64_t pages = count / VMB_PAGES_PER_PAGE + (count % VMB_PAGES_PER_PAGE != 0);

	if (count > VMB_BLOCK_MAX || pages >= SIZE_MAX / VMB_PAGES_PAGE)
		return 0;
	return (size_t)pages + 1;
}

int vmb_pages_encode(const struct vmb_blockmap *m, const struct vmb_stamp *s,
		     const char magic[8], uint32_t version, unsigned char **buf, size_t *len,
		     const char *file, struct vmb_err *err)
{
	size_t pages = vmb_pages_count(m->n), i;
	unsigned char *b;

	*buf = NULL;
	*len = 0;
	b = pages ? calloc(pages, VMB_PAGES_PAGE) : NULL;
	if (!b)
		return vmb_err_set(err, ENOMEM, "out of memory encoding a %s of %zu extents",
				   file, m->n);
	memcpy(b + VMB_PH_MAGIC, magic, 8);
	vmb_put_le32(b + VMB_PH_VERSION, version);
	vmb_put_le32(b + VMB_PH_BLOCK_SIZE, VMB_BLOCK_SIZE);
	vmb_put_le64(b + H_INO, s->ino);
	vmb_put_le64(b + H_SIZE, s->size);
	vmb_put_le64(b + H_MTIME_SEC, (uint64_t)s->mtime_sec);
	vmb_put_le32(b + H_MTIME_NSEC, s->mtime_nsec);
	vmb_put_le32(b + H_BTIME_NSEC, s->btime_nsec);
	vmb_put_le64(b + H_BTIME_SEC, (uint64_t)s->btime_sec);
	vmb_put_le64(b + VMB_PH_COUNT, m->n);
	vmb_put_le64(b + VMB_PH_DATA, m->data_blocks);
	vmb_put_le64(b + VMB_PH_ZERO, m->zero_blocks);
	for (i = 0; i < m->n; i++) {
		size_t page = 1 + i / VMB_PAGES_PER_PAGE;
		unsigned char *r = b + page * VMB_PAGES_PAGE +
				   (i % VMB_PAGES_PER_PAGE) * REC_SIZE;

		vmb_put_le64(r, m->ext[i].start);
		vmb_put_le64(r + 8, m->ext[i].len);
		vmb_put_le32(r + 16, m->ext[i].state);
		/* r + 20: reserved, zero */
	}
	*buf = b;
	*len = pages * VMB_PAGES_PAGE;
	return 0;
}

void vmb_pages_seal(unsigned char *buf, size_t len)
{
	for (size_t off = 0; off + VMB_PAGES_PAGE <= len; off += VMB_PAGES_PAGE)
		vmb_put_le32(buf + off + VMB_PAGES_BODY, page_crc(buf + off));
}

/* ---- decode ---- */

static int truncated(struct vmb_err *err, const char *file, size_t len, size_t expected)
{
	return vmb_err_set(err, EBADMSG, "%s is truncated (%zu bytes, expected %zu)", file,
			   len, expected);
}

int vmb_pages_zero(const unsigned char *b, size_t from, size_t to, const char *file,
		   struct vmb_err *err)
{
	for (size_t i = from; i < to; i++)
		if (b[i])
			return vmb_corrupt_at(err, file, i, "non-zero padding");
	return 0;
}

static int check_page_crc(const unsigned char *b, size_t page, const char *file,
			  struct vmb_err *err)
{
	const unsigned char *p = b + page * VMB_PAGES_PAGE;

	if (vmb_get_le32(p + VMB_PAGES_BODY) != page_crc(p))
		return vmb_corrupt_at(err, file, (uint64_t)page * VMB_PAGES_PAGE, "bad checksum");
	return 0;
}

int vmb_pages_preamble(const unsigned char *b, size_t len, const char magic[8],
		       uint32_t max_version, uint32_t *version, const char *file,
		       struct vmb_err *err)
{
	if (len < VMB_PAGES_PAGE)
		return truncated(err, file, len, VMB_PAGES_PAGE);
	if (memcmp(b + VMB_PH_MAGIC, magic, 8))
		return vmb_corrupt_at(err, file, VMB_PH_MAGIC, "bad magic");
	*version = vmb_get_le32(b + VMB_PH_VERSION);
	if (*version > max_version)
		return vmb_err_set(err, EPROTONOSUPPORT,
				   "%s version %" PRIu32 " is newer than this vmbundlefs "
				   "understands (%" PRIu32 ")", file, *version, max_version);
	if (*version == 0)
		return vmb_corrupt_at(err, file, VMB_PH_VERSION, "bad version 0");
	return check_page_crc(b, 0, file, err);
}

int vmb_pages_header(const unsigned char *b, struct vmb_stamp *s, uint64_t *count,
		     size_t *expected, const char *file, struct vmb_err *err)
{
	uint32_t bs = vmb_get_le32(b + VMB_PH_BLOCK_SIZE);
	struct vmb_stamp st;
	size_t pages;

	if (bs != VMB_BLOCK_SIZE)
		return vmb_corrupt_at(err, file, VMB_PH_BLOCK_SIZE, "unsupported block size %"
				      PRIu32, bs);
	memset(&st, 0, sizeof(st));
	st.ino = vmb_get_le64(b + H_INO);
	st.size = vmb_get_le64(b + H_SIZE);
	st.mtime_sec = (int64_t)vmb_get_le64(b + H_MTIME_SEC);
	st.mtime_nsec = vmb_get_le32(b + H_MTIME_NSEC);
	st.btime_nsec = vmb_get_le32(b + H_BTIME_NSEC);
	st.btime_sec = (int64_t)vmb_get_le64(b + H_BTIME_SEC);
	if (st.mtime_nsec > NSEC_MAX)
		return vmb_corrupt_at(err, file, H_MTIME_NSEC, "bad nanoseconds %" PRIu32,
				      st.mtime_nsec);
	if (st.btime_nsec > NSEC_MAX)
		return vmb_corrupt_at(err, file, H_BTIME_NSEC, "bad nanoseconds %" PRIu32,
				      st.btime_nsec);
	*count = vmb_get_le64(b + VMB_PH_COUNT);
	pages = vmb_pages_count(*count);
	if (!pages)
		return vmb_corrupt_at(err, file, VMB_PH_COUNT, "impossible extent count %" PRIu64,
				      *count);
	*expected = pages * VMB_PAGES_PAGE;
	if (s)
		*s = st;
	return 0;
}

/* Record (at file offset off) into *e, checked against its predecessor prev (NULL
 * for the first). */
static int decode_record(const unsigned char *r, size_t off, const struct vmb_extent *prev,
			 struct vmb_extent *e, const char *file, struct vmb_err *err)
{
	e->start = vmb_get_le64(r);
	e->len = vmb_get_le64(r + 8);
	e->state = vmb_get_le32(r + 16);
	if (e->state != VMB_DATA && e->state != VMB_ZERO)
		return vmb_corrupt_at(err, file, off + 16, "bad extent state %" PRIu32, e->state);
	if (vmb_get_le32(r + 20))
		return vmb_corrupt_at(err, file, off + 20, "non-zero reserved field");
	if (e->len == 0)
		return vmb_corrupt_at(err, file, off + 8, "empty extent");
	if (e->start >= VMB_BLOCK_MAX || e->len > VMB_BLOCK_MAX - e->start)
		return vmb_corrupt_at(err, file, off, "extent beyond the largest block");
	if (prev && prev->start + prev->len > e->start)
		return vmb_corrupt_at(err, file, off, "extents out of order or overlapping");
	if (prev && prev->start + prev->len == e->start && prev->state == e->state)
		return vmb_corrupt_at(err, file, off, "unmerged extents");
	return 0;
}

/* Every record page: checksum, records, padding. Fills ext[0, count) and the block
 * counters. */
static int decode_records(const unsigned char *b, uint64_t count, struct vmb_extent *ext,
			  uint64_t *data, uint64_t *zero, const char *file,
			  struct vmb_err *err)
{
	size_t i = 0, page = 1;
	int rc;

	*data = *zero = 0;
	while (i < count) {
		const unsigned char *p = b + page * VMB_PAGES_PAGE;
		size_t k, in_page = count - i < VMB_PAGES_PER_PAGE ?
				    (size_t)(count - i) : VMB_PAGES_PER_PAGE;

		rc = check_page_crc(b, page, file, err);
		if (rc)
			return rc;
		for (k = 0; k < in_page; k++, i++) {
			rc = decode_record(p + k * REC_SIZE, page * VMB_PAGES_PAGE + k * REC_SIZE,
					   i ? &ext[i - 1] : NULL, &ext[i], file, err);
			if (rc)
				return rc;
			if (ext[i].state == VMB_DATA)
				*data += ext[i].len;
			else
				*zero += ext[i].len;
		}
		rc = vmb_pages_zero(b, page * VMB_PAGES_PAGE + in_page * REC_SIZE,
				    page * VMB_PAGES_PAGE + VMB_PAGES_BODY, file, err);
		if (rc)
			return rc;
		page++;
	}
	return 0;
}

int vmb_pages_decode_map(const unsigned char *b, size_t len, uint64_t count,
			 size_t expected, struct vmb_blockmap *m, const char *file,
			 struct vmb_err *err)
{
	struct vmb_extent *ext = NULL;
	uint64_t data, zero;
	int rc;

	if (len < expected)
		return truncated(err, file, len, expected);
	if (len > expected)
		return vmb_corrupt_at(err, file, expected, "unexpected data after the last page");
	if (count) {
		ext = malloc((size_t)count * sizeof(*ext));   /* count * 24 < len */
		if (!ext)
			return vmb_err_set(err, ENOMEM, "out of memory decoding a %s of %"
					   PRIu64 " extents", file, count);
	}
	rc = decode_records(b, count, ext, &data, &zero, file, err);
	if (rc)
		goto out;
	if (data != vmb_get_le64(b + VMB_PH_DATA)) {
		rc = vmb_corrupt_at(err, file, VMB_PH_DATA, "data block count %" PRIu64
				    " not matching the extents (%" PRIu64 ")",
				    vmb_get_le64(b + VMB_PH_DATA), data);
		goto out;
	}
	if (zero != vmb_get_le64(b + VMB_PH_ZERO)) {
		rc = vmb_corrupt_at(err, file, VMB_PH_ZERO, "zero block count %" PRIu64
				    " not matching the extents (%" PRIu64 ")",
				    vmb_get_le64(b + VMB_PH_ZERO), zero);
		goto out;
	}
	free(m->ext);
	m->ext = ext;
	m->track = NULL;   /* replaced wholesale */
	m->n = m->cap = (size_t)count;
	m->data_blocks = data;
	m->zero_blocks = zero;
	ext = NULL;
out:
	free(ext);
	return rc;
}
