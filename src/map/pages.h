/* pages.h - the paged, checksummed extent format shared by sidecar maps (sidecar.h)
 * and layer maps (layer/layer.h): one copy of the page, record, stamp and checksum
 * code for both.
 *
 * A file of this format is 4096-byte pages, the last 4 bytes of each page the
 * CRC-32C of its first 4092 bytes (all integers little-endian):
 *   page 0, header: 0 magic (8 bytes, the format's own)  8 u32 version
 *                   12 u32 block size (4096)  16 u64 ino  24 u64 size
 *                   32 i64 mtime sec  40 u32 mtime nsec  44 u32 btime nsec
 *                   48 i64 btime sec  56 u64 extent count  64 u64 data blocks
 *                   72 u64 zero blocks  80.. the format's own fields, the rest zero.
 *   pages 1..:      170 records of 24 bytes each: u64 start, u64 len, u32 state
 *                   (1 data, 2 zero), u32 reserved (0); the rest of the page zero.
 * The file is exactly 4096 * (1 + ceil(count / 170)) bytes.
 *
 * Every function that fails returns -EBADMSG with the message "<file> is corrupt
 * (<what> at offset <off>)" or "<file> is truncated (N bytes, expected M)", file
 * being how the caller names the format ("sidecar map", "layer '<id>'"). Pure
 * functions on buffers, no state: thread-safe.
 */
#ifndef VMB_PAGES_H
#define VMB_PAGES_H

#include <stddef.h>
#include <stdint.h>
#include "map/blockmap.h"
#include "base/err.h"

#define VMB_PAGES_PAGE 4096u
#define VMB_PAGES_BODY (VMB_PAGES_PAGE - 4u)   /* bytes covered by a page's CRC */
#define VMB_PAGES_PER_PAGE 170u                /* extent records per page */

/* Header field offsets common to every format of pages. */
enum {
	VMB_PH_MAGIC = 0,
	VMB_PH_VERSION = 8,
	VMB_PH_BLOCK_SIZE = 12,
	VMB_PH_STAMP = 16,        /* ino, size, mtime, btime: 40 bytes */
	VMB_PH_COUNT = 56,
	VMB_PH_DATA = 64,
	VMB_PH_ZERO = 72,
	VMB_PH_OWN = 80,          /* the format's own fields begin here */
};

struct vmb_stamp;

/* Pages needed for count records plus the header page; 0 when the file size would
 * not fit a size_t (or count is past VMB_BLOCK_MAX). */
size_t vmb_pages_count(uint64_t count);

/* A zeroed buffer of vmb_pages_count(m->n) pages (*buf, caller frees; *len its
 * size) with the common header fields of m and s, the given magic and version, and
 * m's records in pages 1... The caller adds its own fields and then seals. 0, or
 * -ENOMEM with a message naming file. */
int vmb_pages_encode(const struct vmb_blockmap *m, const struct vmb_stamp *s,
		     const char magic[8], uint32_t version, unsigned char **buf, size_t *len,
		     const char *file, struct vmb_err *err);

/* Write every page's checksum. */
void vmb_pages_seal(unsigned char *buf, size_t len);

/* Checks of page 0 in order: length >= one page ("truncated"), magic, version
 * (newer than max_version: -EPROTONOSUPPORT "<file> version N is newer than this
 * vmbundlefs understands (M)"; 0: corrupt), checksum. *version gets it. */
int vmb_pages_preamble(const unsigned char *b, size_t len, const char magic[8],
		       uint32_t max_version, uint32_t *version, const char *file,
		       struct vmb_err *err);

/* The common header fields (after the preamble): block size, stamp (into s, may be
 * NULL), extent count (into *count), and the exact file length it implies
 * (*expected; the length itself is checked by vmb_pages_decode_map). */
int vmb_pages_header(const unsigned char *b, struct vmb_stamp *s, uint64_t *count,
		     size_t *expected, const char *file, struct vmb_err *err);

/* -EBADMSG unless bytes [from, to) of b are zero ("non-zero padding"). */
int vmb_pages_zero(const unsigned char *b, size_t from, size_t to, const char *file,
		   struct vmb_err *err);

/* The records: length == expected (else truncated / data after the last page),
 * each record page's checksum, records (valid state, no reserved bits, non-empty,
 * within VMB_BLOCK_MAX, sorted, merged), padding, and the header's data and zero
 * counts. On success m (initialised) is replaced; on failure it is unchanged. */
int vmb_pages_decode_map(const unsigned char *b, size_t len, uint64_t count,
			 size_t expected, struct vmb_blockmap *m, const char *file,
			 struct vmb_err *err);

#endif
