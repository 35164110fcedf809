/* journal.h - the append-only journal next to a sidecar map: what changed since the
 * full map (the "base", sidecar.h) was written, so that saving a map after a few
 * writes costs O(changes), not O(map).
 *
 * The journal of sidecar "<ino>.map" is "<ino>.jnl" in the same directory. It names
 * the base it extends (length and checksums); a journal that names another base is
 * left over from before the base was rewritten in full and is ignored. Its records,
 * replayed over the base, give the map and the stamp:
 *   COMMIT  a set of extents (sorted, disjoint, ABSENT included) that replace the
 *           base's states on their blocks, the stamp of the backing file after them
 *           and the resulting extent and block counts;
 *   BEGIN   a change of the file has started: until the next COMMIT, the map does
 *           not describe the backing file (not even when its stamp looks the same,
 *           as with coarse timestamps).
 * The map is trusted only when the last valid record is a COMMIT (or there is none:
 * the base's stamp) and its stamp equals the backing file's.
 *
 * On-disk format (all integers little-endian; see vmbundlefs(5)):
 *   header, 64 bytes:  0 magic "VMBJRNL1"  8 u32 version (1)  12 u32 header size (64)
 *                     16 u64 base length  24 u32 base header CRC (the base's bytes
 *                     4092..4095)  28 u32 base content CRC (CRC-32C of the stored CRCs
 *                     of every base page, in order)  32 u64 first sequence number
 *                     40..59 reserved (0)  60 u32 CRC-32C of bytes 0..59
 *   records, each a multiple of 8 bytes:
 *                      0 u32 CRC-32C of bytes 4..length-1  4 u32 length
 *                      8 u64 sequence number (the header's, then one more each)
 *                     16 u32 type (1 BEGIN, 2 COMMIT)  20 u32 entry count k
 *     BEGIN:  length 24, k = 0.
 *     COMMIT: 24 stamp, as the base header's bytes 16..55 (ino, size, mtime sec,
 *             mtime nsec, btime nsec, btime sec)  64 u64 extents  72 u64 data blocks
 *             80 u64 zero blocks (of the whole map after this record)
 *             88 k entries of 24 bytes: u64 start, u64 len, u32 state (0 absent,
 *             1 data, 2 zero), u32 reserved (0). length = 88 + 24 k.
 * A torn tail (a record never acknowledged as durable) is dropped: the records from
 * the first one that is shorter than a record header, whose length runs past the
 * end of the file, whose length reaches exactly the end and whose checksum fails,
 * or from which the rest of the file is all zero bytes. Any other bad record is
 * corruption (-EBADMSG naming its offset).
 *
 * Appends go through O_APPEND after checking that the file is still the one the
 * caller knows (its header and length); a new journal is created whole (temporary,
 * rename). Thread safety: none inside; the image serialises its saves (wlock).
 */
#ifndef VMB_JOURNAL_H
#define VMB_JOURNAL_H

#include <stddef.h>
#include <stdint.h>
#include "map/blockmap.h"
#include "base/err.h"

struct vmb_stamp;

#define VMB_JOURNAL_VERSION 1u
#define VMB_JOURNAL_HDR 64u
#define VMB_JOURNAL_BEGIN 1u
#define VMB_JOURNAL_COMMIT 2u

/* The identity of a base sidecar, as a journal names it. */
struct vmb_journal_base {
	uint64_t len;
	uint32_t hdr_crc;
	uint32_t all_crc;
	int no_all_crc;   /* all_crc unknown, not compared (a peek reads one page) */
};

/* What decoding found. */
struct vmb_journal_info {
	int stale;           /* the journal names another base: ignored, m and s untouched */
	int open;            /* the last valid record is a BEGIN: the map is not trusted */
	uint64_t len;        /* bytes of the journal up to the end of the last valid record */
	uint64_t next_seq;   /* sequence number of the next record to append */
	uint64_t records;    /* valid records */
	uint64_t torn;       /* bytes dropped as a torn tail */
	int committed;       /* there is a valid COMMIT; then: */
	uint64_t data_blocks;   /* the data blocks of the last one */
};

/* Identity of an encoded base sidecar of len bytes (whole pages, checksums not
 * verified here). */
void vmb_journal_base_of(const void *sidecar, size_t len, struct vmb_journal_base *id);

/* Replay a journal held in buf over the base map m and its stamp s. base: the
 * identity of the base m came from, or NULL to accept any (fuzzing). On success m
 * and s hold the replayed map and the stamp of the last COMMIT (unchanged when there
 * is none, or when info->stale), and info says where things stand. Errors:
 * -EBADMSG for a corrupt journal ("sidecar journal is corrupt (bad checksum at
 * offset 4160)"), -EPROTONOSUPPORT for a newer version, -ENOMEM; m and s are then
 * unchanged. info may be NULL. */
int vmb_journal_decode(const void *buf, size_t len, const struct vmb_journal_base *base,
		       struct vmb_blockmap *m, struct vmb_stamp *s,
		       struct vmb_journal_info *info, struct vmb_err *err);

/* The first 64 bytes of a new journal over base, first record numbered seq. */
void vmb_journal_encode_header(unsigned char hdr[VMB_JOURNAL_HDR],
			       const struct vmb_journal_base *base, uint64_t seq);

/* A BEGIN record (24 bytes). */
void vmb_journal_encode_begin(unsigned char rec[24], uint64_t seq);

/* A COMMIT record into a malloc'ed buffer: the states of m on every block of dirty
 * (its extents, any state; ABSENT where m has none), stamp s, m's counts. Its size
 * is known beforehand from vmb_journal_commit_size. 0 or -ENOMEM. */
int vmb_journal_encode_commit(const struct vmb_blockmap *m, const struct vmb_blockmap *dirty,
			      const struct vmb_stamp *s, uint64_t seq, void **buf,
			      size_t *len, struct vmb_err *err);

/* Bytes of that record (0 when it would not fit a record's u32 length). */
uint64_t vmb_journal_commit_size(const struct vmb_blockmap *m,
				 const struct vmb_blockmap *dirty);

#endif
