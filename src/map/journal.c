/* journal.c - the append-only journal of a sidecar map (see journal.h for the format
 * and vmbundlefs(5)).
 *
 * Decisions beyond the header:
 *  - decode checks the header in this order: length >= 64, magic, version (newer ->
 *    -EPROTONOSUPPORT), checksum, header size, reserved bytes; then the base
 *    identity (another base -> stale, ignored); then every record in turn.
 *  - replay does not apply records to the map one by one (each would move the map's
 *    array): it gathers what the COMMITs set into two small maps (which blocks, and
 *    their last state) and patches the base in one pass at the end; the counts of the
 *    last COMMIT are checked against the result. A BEGIN's records after the last
 *    COMMIT have no effect on the map, only on trust.
 *  - decode accepts s == NULL and info == NULL; m == NULL skips the replay and the
 *    count check (vmb_sidecar_peek only wants the stamp and the counts).
 */
#include "config.h"
#include "map/journal.h"
#include "map/sidecar.h"
#include "base/crc32c.h"
#include "base/le.h"

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char journal_magic[8] = { 'V', 'M', 'B', 'J', 'R', 'N', 'L', '1' };

enum {
	J_MAGIC = 0,
	J_VERSION = 8,
	J_HDR_SIZE = 12,
	J_BASE_LEN = 16,
	J_BASE_HCRC = 24,
	J_BASE_ACRC = 28,
	J_SEQ = 32,
	J_RESERVED = 40,
	J_CRC = 60,
};

enum {
	R_CRC = 0,
	R_LEN = 4,
	R_SEQ = 8,
	R_TYPE = 16,
	R_COUNT = 20,
	R_HEAD = 24,          /* size of a BEGIN; the common part of every record */
	R_STAMP = 24,         /* ino, size, mtime sec, mtime nsec, btime nsec, btime sec */
	R_EXTENTS = 64,
	R_DATA = 72,
	R_ZERO = 80,
	R_ENTRIES = 88,
};

#define ENTRY_SIZE 24u
#define NSEC_MAX 999999999u
#define REC_MAX UINT32_MAX


/* ---- identity, encoding ---- */

void vmb_journal_base_of(const void *sidecar, size_t len, struct vmb_journal_base *id)
{
	const unsigned char *b = sidecar;
	uint32_t all = 0;

	memset(id, 0, sizeof(*id));
	id->len = len;
	for (size_t off = 0; off + VMB_SIDECAR_PAGE <= len; off += VMB_SIDECAR_PAGE)
		all = vmb_crc32c(all, b + off + VMB_SIDECAR_PAGE - 4, 4);
	id->all_crc = all;
	if (len >= VMB_SIDECAR_PAGE)
		id->hdr_crc = vmb_get_le32(b + VMB_SIDECAR_PAGE - 4);
}

void vmb_journal_encode_header(unsigned char hdr[VMB_JOURNAL_HDR],
			       const struct vmb_journal_base *base, uint64_t seq)
{
	memset(hdr, 0, VMB_JOURNAL_HDR);
	memcpy(hdr + J_MAGIC, journal_magic, sizeof(journal_magic));
	vmb_put_le32(hdr + J_VERSION, VMB_JOURNAL_VERSION);
	vmb_put_le32(hdr + J_HDR_SIZE, VMB_JOURNAL_HDR);
	vmb_put_le64(hdr + J_BASE_LEN, base->len);
	vmb_put_le32(hdr + J_BASE_HCRC, base->hdr_crc);
	vmb_put_le32(hdr + J_BASE_ACRC, base->all_crc);
	vmb_put_le64(hdr + J_SEQ, seq);
	vmb_put_le32(hdr + J_CRC, vmb_crc32c(0, hdr, J_CRC));
}

static void seal(unsigned char *rec, uint32_t len, uint64_t seq, uint32_t type, uint32_t k)
{
	vmb_put_le32(rec + R_LEN, len);
	vmb_put_le64(rec + R_SEQ, seq);
	vmb_put_le32(rec + R_TYPE, type);
	vmb_put_le32(rec + R_COUNT, k);
	vmb_put_le32(rec + R_CRC, vmb_crc32c(0, rec + 4, len - 4));
}

void vmb_journal_encode_begin(unsigned char rec[24], uint64_t seq)
{
	memset(rec, 0, R_HEAD);
	seal(rec, R_HEAD, seq, VMB_JOURNAL_BEGIN, 0);
}

/* The pieces of m inside the extents of dirty, (start, len, state) each: counted,
 * and encoded as entries into out unless it is NULL. */
static uint64_t walk_dirty(const struct vmb_blockmap *m, const struct vmb_blockmap *dirty,
			   unsigned char *out)
{
	uint64_t k = 0;

	for (size_t i = 0; i < dirty->n; i++) {
		uint64_t blk = dirty->ext[i].start, end = blk + dirty->ext[i].len, run;

		while (blk < end) {
			enum vmb_bstate st = vmb_blockmap_get(m, blk, &run);

			if (run > end - blk)
				run = end - blk;
			if (out) {
				unsigned char *e = out + k * ENTRY_SIZE;

				vmb_put_le64(e, blk);
				vmb_put_le64(e + 8, run);
				vmb_put_le32(e + 16, (uint32_t)st);
				vmb_put_le32(e + 20, 0);
			}
			k++;
			blk += run;
		}
	}
	return k;
}

uint64_t vmb_journal_commit_size(const struct vmb_blockmap *m,
				 const struct vmb_blockmap *dirty)
{
	uint64_t k = walk_dirty(m, dirty, NULL);

	if (k > (REC_MAX - R_ENTRIES) / ENTRY_SIZE)
		return 0;
	return R_ENTRIES + k * ENTRY_SIZE;
}

int vmb_journal_encode_commit(const struct vmb_blockmap *m, const struct vmb_blockmap *dirty,
			      const struct vmb_stamp *s, uint64_t seq, void **buf,
			      size_t *len, struct vmb_err *err)
{
	uint64_t size = vmb_journal_commit_size(m, dirty), k;
	unsigned char *b;

	*buf = NULL;
	*len = 0;
	b = size ? calloc(1, (size_t)size) : NULL;
	if (!b)
		return vmb_err_set(err, ENOMEM, "out of memory encoding a journal record of "
				   "%zu changed ranges", dirty->n);
	vmb_put_le64(b + R_STAMP, s->ino);
	vmb_put_le64(b + R_STAMP + 8, s->size);
	vmb_put_le64(b + R_STAMP + 16, (uint64_t)s->mtime_sec);
	vmb_put_le32(b + R_STAMP + 24, s->mtime_nsec);
	vmb_put_le32(b + R_STAMP + 28, s->btime_nsec);
	vmb_put_le64(b + R_STAMP + 32, (uint64_t)s->btime_sec);
	vmb_put_le64(b + R_EXTENTS, m->n);
	vmb_put_le64(b + R_DATA, m->data_blocks);
	vmb_put_le64(b + R_ZERO, m->zero_blocks);
	k = walk_dirty(m, dirty, b + R_ENTRIES);
	seal(b, (uint32_t)size, seq, VMB_JOURNAL_COMMIT, (uint32_t)k);
	*buf = b;
	*len = (size_t)size;
	return 0;
}

/* ---- decode ---- */

#define corrupt(err, off, ...) vmb_corrupt_at(err, "sidecar journal", off, __VA_ARGS__)

static int all_zero(const unsigned char *b, size_t from, size_t to)
{
	for (size_t i = from; i < to; i++)
		if (b[i])
			return 0;
	return 1;
}

static int decode_header(const unsigned char *b, size_t len, struct vmb_journal_base *id,
			 uint64_t *seq, struct vmb_err *err)
{
	uint32_t version;

	if (len < VMB_JOURNAL_HDR)
		return vmb_err_set(err, EBADMSG, "sidecar journal is truncated (%zu bytes, "
				   "expected at least %u)", len, VMB_JOURNAL_HDR);
	if (memcmp(b + J_MAGIC, journal_magic, sizeof(journal_magic)))
		return corrupt(err, J_MAGIC, "bad magic");
	version = vmb_get_le32(b + J_VERSION);
	if (version > VMB_JOURNAL_VERSION)
		return vmb_err_set(err, EPROTONOSUPPORT,
				   "sidecar journal version %" PRIu32 " is newer than this "
				   "vmbundlefs understands (%u)", version, VMB_JOURNAL_VERSION);
	if (version == 0)
		return corrupt(err, J_VERSION, "bad version 0");
	if (vmb_get_le32(b + J_CRC) != vmb_crc32c(0, b, J_CRC))
		return corrupt(err, J_CRC, "bad header checksum");
	if (vmb_get_le32(b + J_HDR_SIZE) != VMB_JOURNAL_HDR)
		return corrupt(err, J_HDR_SIZE, "bad header size %" PRIu32,
			       vmb_get_le32(b + J_HDR_SIZE));
	if (!all_zero(b, J_RESERVED, J_CRC))
		return corrupt(err, J_RESERVED, "non-zero reserved field");
	id->len = vmb_get_le64(b + J_BASE_LEN);
	id->hdr_crc = vmb_get_le32(b + J_BASE_HCRC);
	id->all_crc = vmb_get_le32(b + J_BASE_ACRC);
	*seq = vmb_get_le64(b + J_SEQ);
	return 0;
}

/* What the COMMITs so far set: which blocks (mask) and to what (val). */
struct replay {
	struct vmb_blockmap mask, val;
	struct vmb_stamp stamp;
	uint64_t n, data, zero;   /* counts of the last COMMIT */
	uint64_t commit_off;      /* its offset, 0: none */
};

/* A COMMIT record of len bytes at b (its checksum, sequence and type are checked). */
static int decode_commit(const unsigned char *b, uint64_t off, uint32_t len,
			 struct replay *rp, int apply, struct vmb_err *err)
{
	uint32_t k = vmb_get_le32(b + R_COUNT);
	struct vmb_stamp s;
	uint64_t prev_end = 0;

	if (len < R_ENTRIES || k != (len - R_ENTRIES) / ENTRY_SIZE ||
	    (len - R_ENTRIES) % ENTRY_SIZE)
		return corrupt(err, off + R_COUNT, "record length %" PRIu32 " not matching "
			       "%" PRIu32 " entries", len, k);
	memset(&s, 0, sizeof(s));
	s.ino = vmb_get_le64(b + R_STAMP);
	s.size = vmb_get_le64(b + R_STAMP + 8);
	s.mtime_sec = (int64_t)vmb_get_le64(b + R_STAMP + 16);
	s.mtime_nsec = vmb_get_le32(b + R_STAMP + 24);
	s.btime_nsec = vmb_get_le32(b + R_STAMP + 28);
	s.btime_sec = (int64_t)vmb_get_le64(b + R_STAMP + 32);
	if (s.mtime_nsec > NSEC_MAX)
		return corrupt(err, off + R_STAMP + 24, "bad nanoseconds %" PRIu32, s.mtime_nsec);
	if (s.btime_nsec > NSEC_MAX)
		return corrupt(err, off + R_STAMP + 28, "bad nanoseconds %" PRIu32, s.btime_nsec);
	for (uint32_t i = 0; i < k; i++) {
		const unsigned char *e = b + R_ENTRIES + (size_t)i * ENTRY_SIZE;
		uint64_t eoff = off + R_ENTRIES + (uint64_t)i * ENTRY_SIZE;
		uint64_t start = vmb_get_le64(e), n = vmb_get_le64(e + 8);
		uint32_t st = vmb_get_le32(e + 16);
		int r;

		if (st != VMB_ABSENT && st != VMB_DATA && st != VMB_ZERO)
			return corrupt(err, eoff + 16, "bad extent state %" PRIu32, st);
		if (vmb_get_le32(e + 20))
			return corrupt(err, eoff + 20, "non-zero reserved field");
		if (n == 0)
			return corrupt(err, eoff + 8, "empty extent");
		if (start >= VMB_BLOCK_MAX || n > VMB_BLOCK_MAX - start)
			return corrupt(err, eoff, "extent beyond the largest block");
		if (i && start < prev_end)
			return corrupt(err, eoff, "extents out of order or overlapping");
		prev_end = start + n;
		if (!apply)
			continue;
		r = vmb_blockmap_set(&rp->mask, start, n, VMB_DATA);
		if (r == 0)
			r = vmb_blockmap_set(&rp->val, start, n, (enum vmb_bstate)st);
		if (r < 0)
			return vmb_err_set(err, -r, "out of memory replaying a sidecar journal");
	}
	rp->stamp = s;
	rp->n = vmb_get_le64(b + R_EXTENTS);
	rp->data = vmb_get_le64(b + R_DATA);
	rp->zero = vmb_get_le64(b + R_ZERO);
	rp->commit_off = off;
	return 0;
}

int vmb_journal_decode(const void *buf, size_t len, const struct vmb_journal_base *base,
		       struct vmb_blockmap *m, struct vmb_stamp *s,
		       struct vmb_journal_info *info, struct vmb_err *err)
{
	const unsigned char *b = buf;
	struct vmb_journal_info in;
	struct vmb_journal_base id;
	struct vmb_blockmap out;
	struct replay rp;
	uint64_t seq;
	size_t off;
	int r, open = 0;

	memset(&in, 0, sizeof(in));
	memset(&rp, 0, sizeof(rp));
	memset(&id, 0, sizeof(id));
	seq = 0;
	vmb_blockmap_init(&rp.mask);
	vmb_blockmap_init(&rp.val);
	vmb_blockmap_init(&out);
	r = decode_header(b, len, &id, &seq, err);
	if (r < 0)
		goto out;
	if (base && (base->len != id.len || base->hdr_crc != id.hdr_crc ||
		     (!base->no_all_crc && base->all_crc != id.all_crc))) {
		in.stale = 1;
		in.len = len;
		goto done;
	}
	for (off = VMB_JOURNAL_HDR; off < len; ) {
		size_t rest = len - off;
		uint32_t rlen, type;

		if (rest < R_HEAD)
			break;   /* torn: shorter than a record header */
		rlen = vmb_get_le32(b + off + R_LEN);
		if (rlen < R_HEAD || rlen % 8) {
			if (all_zero(b, off, len))
				break;   /* torn: zeros where the record should be */
			r = corrupt(err, off + R_LEN, "bad record length %" PRIu32, rlen);
			goto out;
		}
		if (rlen > rest)
			break;   /* torn: runs past the end */
		if (vmb_get_le32(b + off + R_CRC) != vmb_crc32c(0, b + off + 4, rlen - 4)) {
			if (rlen == rest)
				break;   /* torn: the last record, never acknowledged */
			r = corrupt(err, off, "bad checksum");
			goto out;
		}
		if (vmb_get_le64(b + off + R_SEQ) != seq) {
			r = corrupt(err, off + R_SEQ, "sequence number %" PRIu64 ", expected %"
				    PRIu64, vmb_get_le64(b + off + R_SEQ), seq);
			goto out;
		}
		type = vmb_get_le32(b + off + R_TYPE);
		if (type == VMB_JOURNAL_BEGIN) {
			if (rlen != R_HEAD || vmb_get_le32(b + off + R_COUNT)) {
				r = corrupt(err, off + R_LEN, "bad begin record");
				goto out;
			}
			open = 1;
		} else if (type == VMB_JOURNAL_COMMIT) {
			r = decode_commit(b + off, off, rlen, &rp, m != NULL, err);
			if (r < 0)
				goto out;
			open = 0;
		} else {
			r = corrupt(err, off + R_TYPE, "unknown record type %" PRIu32, type);
			goto out;
		}
		seq++;
		in.records++;
		off += rlen;
	}
	in.len = off;
	in.torn = len - off;
	in.next_seq = seq;
	in.open = open;
	if (m && rp.commit_off) {
		r = vmb_blockmap_patch(&out, m, &rp.mask, &rp.val);
		if (r < 0) {
			r = vmb_err_set(err, -r, "out of memory replaying a sidecar journal");
			goto out;
		}
		if (out.n != rp.n || out.data_blocks != rp.data || out.zero_blocks != rp.zero) {
			r = corrupt(err, rp.commit_off + R_EXTENTS, "counts %" PRIu64 "/%" PRIu64
				    "/%" PRIu64 " not matching the replayed map (%zu/%" PRIu64
				    "/%" PRIu64 ")", rp.n, rp.data, rp.zero, out.n,
				    out.data_blocks, out.zero_blocks);
			goto out;
		}
		vmb_blockmap_destroy(m);
		*m = out;
		vmb_blockmap_init(&out);
	}
	if (s && rp.commit_off)
		*s = rp.stamp;
done:
	if (rp.commit_off) {
		in.committed = 1;
		in.data_blocks = rp.data;
	}
	if (info)
		*info = in;
	r = 0;
out:
	vmb_blockmap_destroy(&rp.mask);
	vmb_blockmap_destroy(&rp.val);
	vmb_blockmap_destroy(&out);
	return r;
}
