/* pubfmt.h - the published store format (REMOTE.md section 1, man/vmbundlefs.5
 * "PUBLISHED STORES"): encode, decode and validate its three kinds of file. Pure
 * functions, no I/O (signing goes through base/sign.h).
 *
 *   DEST/index                   the top index: bundle names -> manifest digests
 *   DEST/objects/<aa>/<64 hex>   every other object, named by the SHA-256 of its bytes
 *
 * Top index (text):
 *   vmbundlefs-published 1
 *   generation <u64>
 *   created <unix seconds>
 *   bundle <64 hex: manifest digest> <escaped name>     sorted by name, unique, <= 65536
 *   end <64 hex: SHA-256 of every byte before this line>
 *   [signature ed25519 <128 hex: Ed25519 over every byte before this line>]
 * Bundle manifest (text object):
 *   vmbundlefs-bundle 1
 *   name <escaped>
 *   d <mode octal> <mtime sec.nsec> <path>                  "." first
 *   f <mode octal> <mtime sec.nsec> <size> <64 hex> <path>  small file (< 1 MiB): its bytes
 *   i <mode octal> <mtime sec.nsec> <size> <64 hex> <path>  image: its image index
 *   l <mtime sec.nsec> <path> <target>
 *   x <name> <value>                                        user.* xattr of the record above
 *   end <64 hex: SHA-256 of every byte before this line>
 * Image index (binary, little-endian): see struct vmb_pub_image and vmbundlefs(5).
 *
 * Escaping as in snapshot manifests: bytes <= 0x20, '%' and 0x7f..0xff as %XX. Hex
 * digits of digests and signatures are lowercase. Every decoder refuses anything
 * but the exact encoding with -EINVAL and a message naming the line or field
 * ("image index: extent 7 overlaps extent 6"), also for a version it does not read;
 * or -ENOMEM. What a decoder accepts, the encoder writes back byte for byte (the
 * encoding is canonical: one text for one content).
 *
 * Ownership: each decoded struct owns every string and array in it; its _free frees
 * them and zeroes it, and is safe on a zeroed struct. Not thread-safe while being
 * built; read-only use (lookups) from any number of threads is safe.
 */
#ifndef VMB_PUBFMT_H
#define VMB_PUBFMT_H

#include <stddef.h>
#include <stdint.h>
#include "base/err.h"
#include "base/pathtree.h"
#include "base/sign.h"
#include "map/blockmap.h"

#define VMB_PUB_INDEX_MAGIC   "vmbundlefs-published"
#define VMB_PUB_BUNDLE_MAGIC  "vmbundlefs-bundle"
#define VMB_PUB_VERSION       1
#define VMB_PUB_INDEX_MAX     (16u << 20)     /* bytes of a top index */
#define VMB_PUB_BUNDLES_MAX   65536u          /* bundles in a top index */
#define VMB_PUB_MANIFEST_MAX  (256u << 20)    /* bytes of a bundle manifest */
#define VMB_PUB_SMALL_MAX     (1u << 20)      /* an 'f' file is smaller than this */
#define VMB_PUB_INDEX_FILE    "index"
#define VMB_PUB_OBJECTS_DIR   "objects"
#define VMB_PUB_OBJPATH_LEN   80              /* "objects/aa/<64 hex>" + NUL fits */

#define VMB_PIDX_MAGIC        "VMBRIDX1"
#define VMB_PIDX_VERSION      1
#define VMB_PIDX_HDR          64
#define VMB_PIDX_CHUNK_MIN    (64u << 10)
#define VMB_PIDX_CHUNK_MAX    (16u << 20)
/* The default chunk size, chosen with bench/remote.sh (bench/RESULTS.md): 1 MiB
 * chunks read faster (per-chunk costs: a request, a cache file, a hash; through 20
 * ms of round trip, cold sequential 1.00x curl instead of 0.51x) but fetch more
 * around scattered data: cp/tar of the bench image 1.20x its allocated bytes
 * (target 1.1; 1.00x with 256 KiB), the boot pattern 2.5x the bytes it reads
 * (1.5x). What is fetched but not needed is the worse failure for sparse-aware
 * copies and backups: 256 KiB; publish --chunk-size=1M when throughput matters. */
#define VMB_PIDX_CHUNK_DEFAULT (256u << 10)

/* ---- top index ---- */

struct vmb_pub_ibundle {
	uint8_t digest[32];        /* the bundle manifest object */
	char *name;                /* a valid file name, not ".vmbundlefs" */
};

struct vmb_pub_index {
	uint64_t generation;
	int64_t created;
	struct vmb_pub_ibundle *bundles;   /* sorted by name (strcmp), unique */
	size_t n, cap;
	int signed_;               /* decode: a signature line was present (and, with a
				    * key, verified); encode: ignored (the key decides) */
};

void vmb_pub_index_free(struct vmb_pub_index *x);
/* Add or replace (by name) a bundle, keeping the list sorted. 0, -EINVAL (bad name,
 * with a message), -E2BIG (more than VMB_PUB_BUNDLES_MAX), -ENOMEM. */
int vmb_pub_index_set(struct vmb_pub_index *x, const char *name, const uint8_t digest[32],
		      struct vmb_err *err);
/* The bundle named name, or NULL. O(log n). */
const struct vmb_pub_ibundle *vmb_pub_index_find(const struct vmb_pub_index *x,
						  const char *name);
/* Encode x into a malloc'ed buffer; signed with key when key != NULL. */
int vmb_pub_index_encode(const struct vmb_pub_index *x, const struct vmb_sign_key *key,
			 char **out, size_t *len, struct vmb_err *err);
/* Decode buf into *out (zeroed first). pubkey (32 raw bytes) or NULL: with a key,
 * an index without a signature line or whose signature does not verify is refused
 * (-EINVAL, "index: not signed" / "index: bad signature: ..."); without one, a
 * signature line is checked for form only. */
int vmb_pub_index_decode(const void *buf, size_t len, const uint8_t *pubkey,
			 struct vmb_pub_index *out, struct vmb_err *err);

/* ---- bundle manifest ---- */

struct vmb_pub_ent {
	char kind;                 /* 'd', 'f', 'i' or 'l' */
	uint32_t mode;             /* permission bits (07777); 0 for 'l' */
	int64_t mtime_sec;
	uint32_t mtime_nsec;
	uint64_t size;             /* 'f', 'i': the file's logical size */
	uint8_t digest[32];        /* 'f': the file's bytes; 'i': its image index */
	char *path;                /* relative to the bundle, "." for its root */
	char *target;              /* 'l' */
	struct vmb_xattr *xattrs;  /* base/pathtree.h */
	size_t nxattrs;
};

struct vmb_pub_bundle {
	char *name;
	struct vmb_pub_ent *ents;  /* "." first, every parent before its children */
	size_t n, cap;
	/* decode: the xattrs left out (vmb_xattr_reserved: the names a mount
	 * maintains), as import leaves them out of an archive; the first one's name */
	size_t xattr_skipped;
	char xattr_first[64];
};

void vmb_pub_bundle_free(struct vmb_pub_bundle *b);
/* Append a record (strings copied; checked by encode/decode, not here). 0 or -ENOMEM. */
int vmb_pub_bundle_add(struct vmb_pub_bundle *b, const struct vmb_pub_ent *e);
/* Add an xattr to the last record. 0, -EINVAL (no record), -ENOMEM. */
int vmb_pub_bundle_add_xattr(struct vmb_pub_bundle *b, const char *name,
			     const void *value, size_t len);
int vmb_pub_bundle_encode(const struct vmb_pub_bundle *b, char **out, size_t *len,
			  struct vmb_err *err);
int vmb_pub_bundle_decode(const void *buf, size_t len, struct vmb_pub_bundle *out,
			  struct vmb_err *err);

/* ---- image index ----
 *   off  size
 *   0    8    magic "VMBRIDX1"
 *   8    4    version = 1
 *   12   4    chunk_size: a power of two, 64 KiB .. 16 MiB
 *   16   8    size (logical bytes, at most 2^63 - 1)
 *   24   8    n_extents
 *   32   8    n_chunks = ceil(size / chunk_size)
 *   40   8    data_blocks = sum of extent lengths
 *   48   16   reserved, zero
 *   64   n_extents * 16: u64 first_block, u64 nblocks (4 KiB blocks; sorted, not
 *        overlapping, not adjacent, nblocks >= 1, inside ceil(size / 4096))
 *   ...  n_chunks * 32: SHA-256 of each chunk's logical bytes (the last may be short);
 *        32 zero bytes exactly for a chunk without a data block (never stored)
 * and nothing after. */
struct vmb_pub_image {
	uint32_t chunk_size;
	uint64_t size, n_extents, n_chunks, data_blocks;
	uint64_t (*ext)[2];        /* n_extents of {first_block, nblocks} */
	uint8_t (*chunks)[32];     /* n_chunks digests */
};

void vmb_pub_image_free(struct vmb_pub_image *m);
/* Check every rule above on a struct (encode does it too). 0 or -EINVAL. */
int vmb_pub_image_validate(const struct vmb_pub_image *m, struct vmb_err *err);
int vmb_pub_image_encode(const struct vmb_pub_image *m, void **out, size_t *len,
			 struct vmb_err *err);
int vmb_pub_image_decode(const void *buf, size_t len, struct vmb_pub_image *out,
			 struct vmb_err *err);
/* VMB_DATA or VMB_ZERO of block blk (past the size: ZERO); *run (may be NULL) gets
 * the number of blocks from blk on in that state (>= 1; a trailing zero run ends at
 * VMB_BLOCK_MAX). O(log n_extents). */
enum vmb_bstate vmb_pub_image_lookup(const struct vmb_pub_image *m, uint64_t blk,
				     uint64_t *run);
/* Chunk i holds no data block (its digest is all zeros): 1 or 0. */
int vmb_pub_chunk_is_zero(const struct vmb_pub_image *m, uint64_t i);
/* Bytes of chunk i (chunk_size, or less for the last one). */
uint64_t vmb_pub_chunk_len(const struct vmb_pub_image *m, uint64_t i);

/* ---- objects and digests ---- */

/* "objects/aa/<64 hex>" of a digest into out (>= VMB_PUB_OBJPATH_LEN bytes). */
void vmb_pub_object_path(const uint8_t d[32], char out[VMB_PUB_OBJPATH_LEN]);
/* 64 lowercase hex digits -> 32 bytes: 0 or -EINVAL. */
int vmb_pub_hex_decode(const char *hex, size_t len, uint8_t *out, size_t outlen);
/* A name a published bundle may have (a file name, not ".vmbundlefs"). */
int vmb_pub_name_check(const char *name, struct vmb_err *err);

#endif
