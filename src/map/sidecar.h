/* sidecar.h - persistence of a file's block map in the store's hidden sidecar.
 *
 * A sidecar is named after the backing file's inode number and kept in the store's
 * map directory (.vmbundlefs/maps/<16 hex digits of ino>.map). It records the map
 * and a stamp of the backing file (inode, size, mtime, birth time) taken when the
 * map was written. (mtime, not ctime: chmod, chown, link and xattrs do not touch the
 * content, and must not make the map look stale.) The map is trusted only while the backing file's stamp is the
 * same; otherwise the file was changed behind the map (a crash between a write and
 * the next persist, or a change made directly in the store) and the map is rebuilt
 * from the backing file's own holes (vmb_sidecar_scan), which is exact for a file
 * with no base layer, since its backing file holds its logical content.
 *
 * On-disk format (all integers little-endian; see vmbundlefs(5)): pages of 4096
 * bytes, the last 4 bytes of each page the CRC-32C of its first 4092 bytes.
 *   page 0, header:  0 magic "VMBMAP01"   8 u32 version (1)  12 u32 block size (4096)
 *                   16 u64 ino  24 u64 size  32 i64 mtime sec  40 u32 mtime nsec
 *                   44 u32 btime nsec  48 i64 btime sec  56 u64 extent count
 *                   64 u64 data blocks  72 u64 zero blocks  80 u32 flags (0)
 *                   84 u32 reserved (0); the rest zero.
 *   pages 1..:     170 records of 24 bytes each: u64 start, u64 len, u32 state
 *                  (1 data, 2 zero), u32 reserved (0); the rest of the page zero.
 * The file is exactly 4096 * (1 + ceil(count / 170)) bytes.
 * Writes are atomic: a temporary in the same directory, fsync, rename, fsync dir.
 *
 * The full map (the "base") may be followed by a journal, "<ino>.jnl" (journal.h):
 * checksummed records of the changes since the base was written, appended at each
 * save, so that a save costs O(changes). Reading replays it; the stamp is then the
 * last COMMIT's, and a journal that ends in a BEGIN (a change was under way when its
 * writer stopped) makes the map untrusted (-ESTALE). When the journal outgrows a
 * quarter of the base (at least 64 KiB), the next save writes a new base (which
 * removes the journal). Readers that know no journal (vmbundlefs before it) see the
 * base's older stamp, call the map stale and rebuild it: the format stays version 1.
 */
#ifndef VMB_SIDECAR_H
#define VMB_SIDECAR_H

#include <stdint.h>
#include <time.h>
#include <stddef.h>
#include "map/blockmap.h"
#include "map/journal.h"
#include "map/base.h"
#include "base/err.h"

#define VMB_SIDECAR_PAGE 4096u
#define VMB_SIDECAR_VERSION 2u   /* the newest understood; version 1 has no base */
#define VMB_SIDECAR_PER_PAGE 170u
#define VMB_SIDECAR_NAME_MAX 32
#define VMB_JOURNAL_MIN (64u << 10)   /* a journal may always grow to this */

struct vmb_stamp {
	uint64_t ino;
	uint64_t size;
	int64_t mtime_sec;
	uint32_t mtime_nsec;
	uint32_t btime_nsec;   /* 0 when the filesystem has no birth time */
	int64_t btime_sec;
};

/* The base a delta's map is over (version 2). id[0] == '\0': none (version 1). */
struct vmb_baseref {
	char id[VMB_BASE_ID_LEN + 1];   /* 32 lowercase hex digits, NUL-terminated */
	uint64_t limit;                 /* blocks >= limit never read the base */
};

/* 1 if a and b name the same base and limit (NULL and "" mean none). */
int vmb_baseref_equal(const struct vmb_baseref *a, const struct vmb_baseref *b);

/* 1 if id is 32 lowercase hex digits (NUL-terminated), else 0. */
int vmb_base_id_valid(const char *id);

/* Stamp of an open file (statx). */
int vmb_stamp_fd(int fd, struct vmb_stamp *s, struct vmb_err *err);
/* 1 if equal in every field, else 0. */
int vmb_stamp_equal(const struct vmb_stamp *a, const struct vmb_stamp *b);

/* "<016 hex of ino>.map" into name (VMB_SIDECAR_NAME_MAX bytes). */
void vmb_sidecar_name(uint64_t ino, char name[VMB_SIDECAR_NAME_MAX]);

/* Serialise into a malloc'ed buffer (*buf, caller frees). 0 or -ENOMEM.
 * encode2 with a base b (not NULL, id not empty) writes version 2. */
int vmb_sidecar_encode(const struct vmb_blockmap *m, const struct vmb_stamp *s,
		       void **buf, size_t *len, struct vmb_err *err);
int vmb_sidecar_encode2(const struct vmb_blockmap *m, const struct vmb_stamp *s,
			const struct vmb_baseref *b, void **buf, size_t *len,
			struct vmb_err *err);

/* Parse a buffer into m (initialised, replaced on success, unchanged on failure)
 * and s. Errors: -EBADMSG for a corrupt or truncated sidecar, with a message such as
 * "sidecar map is corrupt (bad checksum at offset 4096)" or "sidecar map is truncated
 * (5000 bytes, expected 8192)"; -EPROTONOSUPPORT for a newer version.
 * decode2 also accepts version 2 and fills *b (may be NULL; id "" for version 1);
 * the readers without b (decode, read, load, peek) refuse a version 2 with
 * -EPROTONOSUPPORT: its map alone is not the file's content. */
int vmb_sidecar_decode(const void *buf, size_t len, struct vmb_blockmap *m,
		       struct vmb_stamp *s, struct vmb_err *err);
int vmb_sidecar_decode2(const void *buf, size_t len, struct vmb_blockmap *m,
			struct vmb_stamp *s, struct vmb_baseref *b, struct vmb_err *err);

/* How durable vmb_sidecar_write is. */
#define VMB_SIDECAR_SYNC_NONE 0   /* no fsync */
#define VMB_SIDECAR_SYNC_FILE 1   /* fsync the temporary before the rename: the name
				   * then never shows a torn map, though a crash may
				   * lose the rename (a missing map is rebuilt) */
#define VMB_SIDECAR_SYNC_DIR  2   /* and fsync the directory after it */

/* Atomically write the sidecar `name` in directory dirfd, as durable as `durable`
 * (VMB_SIDECAR_SYNC_*; any non-zero value fsyncs the temporary), and remove its
 * journal (after the rename; one left behind names the old base and is ignored). */
int vmb_sidecar_write(int dirfd, const char *name, const struct vmb_blockmap *m,
		      const struct vmb_stamp *s, int durable, struct vmb_err *err);
int vmb_sidecar_write2(int dirfd, const char *name, const struct vmb_blockmap *m,
		       const struct vmb_stamp *s, const struct vmb_baseref *b, int durable,
		       struct vmb_err *err);

/* Read and decode the base and its journal; -ENOENT when there is no base, -ESTALE
 * when the journal ends in a BEGIN (the map does not describe the backing file),
 * else as vmb_sidecar_decode and vmb_journal_decode, or -errno for an I/O error. */
int vmb_sidecar_read(int dirfd, const char *name, struct vmb_blockmap *m,
		     struct vmb_stamp *s, struct vmb_err *err);

/* Where the saved map of one file stands on disk, kept by its owner (the image)
 * between saves, under the owner's lock. All zero: unknown, the next save writes a
 * whole new base. */
struct vmb_sidecar_pos {
	int valid;                      /* base + journal hold the map last loaded/saved */
	struct vmb_journal_base base;   /* the base on disk */
	uint64_t jlen;                  /* bytes of its journal (0: there is none) */
	uint64_t first_seq, next_seq;   /* the journal's first and next sequence numbers */
	int dir_dirty;                  /* a journal was created since the dir was synced */
	struct vmb_baseref under;       /* the base the base sidecar names ("" none) */
	/* The base file itself (inode, mtime; its size is base.len): a journal is
	 * written only while the name still holds it. Another process (another mount
	 * of the store) may save a whole new base meanwhile, and a journal that names
	 * the old one is ignored by every reader: what it recorded would be lost. */
	uint64_t base_ino;
	struct timespec base_mtime;
};

/* vmb_sidecar_read that also fills pos (valid on success; on -ESTALE not). */
int vmb_sidecar_load(int dirfd, const char *name, struct vmb_blockmap *m,
		     struct vmb_stamp *s, struct vmb_sidecar_pos *pos, struct vmb_err *err);
/* The same for any version, the base in *b (may be NULL). On -ESTALE (the journal
 * ends in a BEGIN) m, s and b still get the last committed map: the map and stamp
 * of the base and the journal up to its last COMMIT (the rebuild of a delta with a
 * base starts from it, image.c). */
int vmb_sidecar_load2(int dirfd, const char *name, struct vmb_blockmap *m,
		      struct vmb_stamp *s, struct vmb_baseref *b, struct vmb_sidecar_pos *pos,
		      struct vmb_err *err);

/* Before the first change after a save: append a BEGIN to the journal (creating it
 * when there is none), so that a crash before the next save leaves a map that is not
 * trusted. Needs pos->valid; on failure pos->valid is cleared (the caller then
 * removes the sidecar instead). Not synced (as the removal it replaces). */
int vmb_sidecar_begin(int dirfd, const char *name, struct vmb_sidecar_pos *pos,
		      struct vmb_err *err);

/* Save map m with stamp s: when pos->valid and dirty (the blocks changed since the
 * last save, any state; NULL: unknown) give a record that keeps the journal under
 * its limit, append one COMMIT record (fdatasync'ed when durable; the directory
 * synced too with VMB_SIDECAR_SYNC_DIR when the journal is new), else write a whole
 * new base as vmb_sidecar_write. pos is updated. */
int vmb_sidecar_save(int dirfd, const char *name, const struct vmb_blockmap *m,
		     const struct vmb_blockmap *dirty, const struct vmb_stamp *s, int durable,
		     struct vmb_sidecar_pos *pos, struct vmb_err *err);
/* The same with a base (NULL: none): a base or limit other than the one of the base
 * sidecar on disk (pos->under) makes it write a whole new base. */
int vmb_sidecar_save2(int dirfd, const char *name, const struct vmb_blockmap *m,
		      const struct vmb_blockmap *dirty, const struct vmb_stamp *s,
		      const struct vmb_baseref *b, int durable, struct vmb_sidecar_pos *pos,
		      struct vmb_err *err);

/* The journal's name: name with its ".map" suffix (if any) replaced by ".jnl", or
 * ".jnl" appended. 0 or -ENAMETOOLONG. */
int vmb_sidecar_journal_name(const char *name, char *jname, size_t size);

/* Read only the header and the journal: the stamp and the number of data blocks,
 * for a stat that need not load the whole map. The header page is checked (magic,
 * version, CRC), the journal's records too (not replayed), the rest is not: trust
 * the count only while the stamp matches. 0 or -errno (-ESTALE as for read). */
int vmb_sidecar_peek(int dirfd, const char *name, struct vmb_stamp *s,
		     uint64_t *data_blocks);
/* The same for any version, the base in *b (may be NULL). */
int vmb_sidecar_peek2(int dirfd, const char *name, struct vmb_stamp *s,
		      uint64_t *data_blocks, struct vmb_baseref *b);

/* -EBADMSG with the message "<file> is corrupt (<what> at offset <off>)", file
 * naming the format ("sidecar map", "sidecar journal"). */
int vmb_corrupt_at(struct vmb_err *err, const char *file, uint64_t off, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Remove a sidecar and its journal; a missing one is not an error. */
int vmb_sidecar_remove(int dirfd, const char *name, struct vmb_err *err);

/* Rebuild a map from a backing file's holes: every byte range SEEK_DATA reports is
 * VMB_DATA (rounded out to whole blocks), every other block below
 * ceil(size / VMB_BLOCK_SIZE) is VMB_ZERO. m is replaced on success. A filesystem
 * without SEEK_DATA makes the whole file VMB_DATA. */
int vmb_sidecar_scan(int fd, uint64_t size, struct vmb_blockmap *m, struct vmb_err *err);

#endif
