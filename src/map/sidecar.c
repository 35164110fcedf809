/* sidecar.c - persistence of a file's block map in the store's hidden sidecar
 * (see sidecar.h for the format and vmbundlefs(5)).
 *
 * Decisions beyond the header:
 *  - decode checks, in order: length >= one page, magic, version (newer ->
 *    -EPROTONOSUPPORT before anything else, since a newer layout may differ in
 *    every later field), header checksum, header fields, exact file length, then
 *    each record page's checksum and records. Every -EBADMSG message names the
 *    offset of the offending field or page.
 *  - decode and read accept s == NULL (the stamp is then not returned).
 *  - names passed to write/read/remove must be plain file names (no '/', not
 *    "." or ".."): -EINVAL otherwise.
 *  - scan saves and restores the fd's file offset, which SEEK_DATA/SEEK_HOLE move.
 */
#include "config.h"
#include "map/sidecar.h"
#include "map/journal.h"
#include "map/pages.h"
#include "base/crc32c.h"
#include "base/le.h"
#include "base/fdio.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char sidecar_magic[8] = { 'V', 'M', 'B', 'M', 'A', 'P', '0', '1' };

/* Header field offsets (the common ones are pages.h's). */
enum {
	H_DATA = VMB_PH_DATA,
	H_FLAGS = 80,
	H_RESERVED = 84,
	H_END = 88,          /* version 1: zero from here */
	H_BASE_ID = 88,      /* version 2: the base's id, 32 hex digits */
	H_LIMIT = 120,       /* version 2: u64 base limit */
	H_END2 = 128,        /* version 2: zero from here */
};

#define FLAG_HAS_BASE 1u

#define PAGE_BODY VMB_PAGES_BODY   /* bytes covered by a page's CRC */
#define FILE_NAME "sidecar map"    /* how messages name the format */

/* Sequence number of temporaries: unique within the process, the pid makes it
 * unique across processes. */
static atomic_ulong tmp_seq;

/* ---- bases, stamps and names ---- */

static int has_base(const struct vmb_baseref *b)
{
	return b && b->id[0];
}

int vmb_baseref_equal(const struct vmb_baseref *a, const struct vmb_baseref *b)
{
	if (!has_base(a) || !has_base(b))
		return has_base(a) == has_base(b);
	return !strcmp(a->id, b->id) && a->limit == b->limit;
}

int vmb_base_id_valid(const char *id)
{
	size_t i;

	for (i = 0; i < VMB_BASE_ID_LEN; i++)
		if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
			return 0;
	return id[i] == '\0';
}

static void stamp_from_stat(const struct stat *st, struct vmb_stamp *s)
{
	memset(s, 0, sizeof(*s));
	s->ino = (uint64_t)st->st_ino;
	s->size = (uint64_t)st->st_size;
	s->mtime_sec = (int64_t)st->st_mtim.tv_sec;
	s->mtime_nsec = (uint32_t)st->st_mtim.tv_nsec;
}

int vmb_stamp_fd(int fd, struct vmb_stamp *s, struct vmb_err *err)
{
	struct statx stx;
	struct stat st;

	if (statx(fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS | STATX_BTIME, &stx) == 0) {
		memset(s, 0, sizeof(*s));
		s->ino = stx.stx_ino;
		s->size = stx.stx_size;
		s->mtime_sec = stx.stx_mtime.tv_sec;
		s->mtime_nsec = stx.stx_mtime.tv_nsec;
		if (stx.stx_mask & STATX_BTIME) {
			s->btime_sec = stx.stx_btime.tv_sec;
			s->btime_nsec = stx.stx_btime.tv_nsec;
		}
		return 0;
	}
	if (errno != ENOSYS)
		return vmb_err_sys(err, errno, "cannot stat the backing file");
	/* statx filtered out (old seccomp profiles): no birth time then */
	if (fstat(fd, &st) < 0)
		return vmb_err_sys(err, errno, "cannot stat the backing file");
	stamp_from_stat(&st, s);
	return 0;
}

int vmb_stamp_equal(const struct vmb_stamp *a, const struct vmb_stamp *b)
{
	return a->ino == b->ino && a->size == b->size &&
	       a->mtime_sec == b->mtime_sec && a->mtime_nsec == b->mtime_nsec &&
	       a->btime_sec == b->btime_sec && a->btime_nsec == b->btime_nsec;
}

void vmb_sidecar_name(uint64_t ino, char name[VMB_SIDECAR_NAME_MAX])
{
	snprintf(name, VMB_SIDECAR_NAME_MAX, "%016" PRIx64 ".map", ino);
}

static int check_name(const char *name, struct vmb_err *err)
{
	if (!name[0] || strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, ".."))
		return vmb_err_set(err, EINVAL, "invalid sidecar map name '%s'", name);
	return 0;
}

/* ---- encode ---- */

int vmb_sidecar_encode(const struct vmb_blockmap *m, const struct vmb_stamp *s,
		       void **buf, size_t *len, struct vmb_err *err)
{
	return vmb_sidecar_encode2(m, s, NULL, buf, len, err);
}

int vmb_sidecar_encode2(const struct vmb_blockmap *m, const struct vmb_stamp *s,
			const struct vmb_baseref *base, void **buf, size_t *len,
			struct vmb_err *err)
{
	unsigned char *b;
	int rc;

	/* version 1: flags, reserved and the rest stay zero */
	rc = vmb_pages_encode(m, s, sidecar_magic, has_base(base) ? 2 : 1, &b, len,
			      FILE_NAME, err);
	if (rc) {
		*buf = NULL;
		return rc;
	}
	if (has_base(base)) {
		vmb_put_le32(b + H_FLAGS, FLAG_HAS_BASE);
		memcpy(b + H_BASE_ID, base->id, VMB_BASE_ID_LEN);
		vmb_put_le64(b + H_LIMIT, base->limit);
	}
	vmb_pages_seal(b, *len);
	*buf = b;
	return 0;
}

/* ---- decode ---- */

int vmb_corrupt_at(struct vmb_err *err, const char *file, uint64_t off, const char *fmt, ...)
{
	char what[VMB_ERR_MAX / 2];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return vmb_err_set(err, EBADMSG, "%s is corrupt (%s at offset %" PRIu64 ")", file,
			   what, off);
}

#define corrupt(err, off, ...) vmb_corrupt_at(err, FILE_NAME, off, __VA_ARGS__)

/* Magic, version and checksum of page 0. */
static int decode_preamble(const unsigned char *h, size_t len, struct vmb_err *err)
{
	uint32_t version;

	return vmb_pages_preamble(h, len, sidecar_magic, VMB_SIDECAR_VERSION, &version,
				  FILE_NAME, err);
}

/* Version 2's base fields into *b (may be NULL); version 1 has none. */
static int decode_base(const unsigned char *h, struct vmb_baseref *b, struct vmb_err *err)
{
	uint32_t version = vmb_get_le32(h + VMB_PH_VERSION), flags = vmb_get_le32(h + H_FLAGS);
	char id[VMB_BASE_ID_LEN + 1];
	uint64_t limit;

	if (b)
		memset(b, 0, sizeof(*b));
	if (version == 1) {
		if (flags)
			return corrupt(err, H_FLAGS, "unknown flags 0x%" PRIx32, flags);
		if (vmb_get_le32(h + H_RESERVED))
			return corrupt(err, H_RESERVED, "non-zero reserved field");
		return vmb_pages_zero(h, H_END, PAGE_BODY, FILE_NAME, err);
	}
	if (flags != FLAG_HAS_BASE)
		return corrupt(err, H_FLAGS, "flags 0x%" PRIx32 " in a version 2 map (it "
			       "must have a base)", flags);
	if (vmb_get_le32(h + H_RESERVED))
		return corrupt(err, H_RESERVED, "non-zero reserved field");
	memcpy(id, h + H_BASE_ID, VMB_BASE_ID_LEN);
	id[VMB_BASE_ID_LEN] = '\0';
	if (!vmb_base_id_valid(id))
		return corrupt(err, H_BASE_ID, "bad base id");
	limit = vmb_get_le64(h + H_LIMIT);
	if (limit > VMB_BLOCK_MAX)
		return corrupt(err, H_LIMIT, "impossible base limit %" PRIu64, limit);
	if (b) {
		memcpy(b->id, id, sizeof(id));
		b->limit = limit;
	}
	return vmb_pages_zero(h, H_END2, PAGE_BODY, FILE_NAME, err);
}

/* The header's own fields (its checksum is already verified); the stamp goes to s,
 * the extent count to *count, the file length it implies to *expected, the base to
 * *b (may be NULL). */
static int decode_header(const unsigned char *h, struct vmb_stamp *s, uint64_t *count,
			 size_t *expected, struct vmb_baseref *b, struct vmb_err *err)
{
	int rc;

	rc = vmb_pages_header(h, s, count, expected, FILE_NAME, err);
	if (rc)
		return rc;
	return decode_base(h, b, err);
}

/* A version 2 map for a reader that does not ask for its base. */
static int refuse_v2(struct vmb_err *err)
{
	return vmb_err_set(err, EPROTONOSUPPORT, "sidecar map version 2 (the map of a file "
			   "over a base layer) needs a reader that knows its base");
}

int vmb_sidecar_decode(const void *buf, size_t len, struct vmb_blockmap *m,
		       struct vmb_stamp *s, struct vmb_err *err)
{
	struct vmb_baseref b;
	struct vmb_blockmap tmp;
	struct vmb_stamp st;
	int rc;

	vmb_blockmap_init(&tmp);
	rc = vmb_sidecar_decode2(buf, len, &tmp, &st, &b, err);
	if (rc == 0 && has_base(&b))
		rc = refuse_v2(err);
	if (rc == 0) {
		vmb_blockmap_destroy(m);
		*m = tmp;
		vmb_blockmap_init(&tmp);
		if (s)
			*s = st;
	}
	vmb_blockmap_destroy(&tmp);
	return rc;
}

int vmb_sidecar_decode2(const void *buf, size_t len, struct vmb_blockmap *m,
			struct vmb_stamp *s, struct vmb_baseref *base, struct vmb_err *err)
{
	const unsigned char *b = buf;
	struct vmb_baseref under;
	struct vmb_stamp stamp;
	uint64_t count = 0;
	size_t expected = 0;
	int rc;

	rc = decode_preamble(b, len, err);
	if (rc)
		return rc;
	rc = decode_header(b, &stamp, &count, &expected, &under, err);
	if (rc)
		return rc;
	rc = vmb_pages_decode_map(b, len, count, expected, m, FILE_NAME, err);
	if (rc)
		return rc;
	if (s)
		*s = stamp;
	if (base)
		*base = under;
	return 0;
}

/* ---- files ---- */

/* fsync a directory given as a dirfd, which may be AT_FDCWD. */
static int fsync_dir(int dirfd)
{
	int fd = dirfd, rc = 0;

	if (dirfd == AT_FDCWD) {
		fd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			return -errno;
	}
	if (vmb_fsync(fd) < 0)
		rc = -errno;
	if (fd != dirfd)
		close(fd);
	return rc;
}

int vmb_sidecar_journal_name(const char *name, char *jname, size_t size)
{
	size_t n = strlen(name);
	int w;

	if (n > 4 && !strcmp(name + n - 4, ".map"))
		w = snprintf(jname, size, "%.*s.jnl", (int)(n - 4), name);
	else
		w = snprintf(jname, size, "%s.jnl", name);
	return w < 0 || (size_t)w >= size ? -ENAMETOOLONG : 0;
}

/* A name for a temporary next to `name`. */
static int tmp_name(const char *name, char tmp[NAME_MAX + 1], struct vmb_err *err)
{
	int n = snprintf(tmp, NAME_MAX + 1, ".tmp.%s.%ld.%lu", name, (long)getpid(),
			 atomic_fetch_add(&tmp_seq, 1));

	if (n < 0 || n > NAME_MAX)
		return vmb_err_set(err, ENAMETOOLONG, "sidecar map name '%s' is too long", name);
	return 0;
}

/* Create `name` atomically holding len bytes of buf: a temporary, fsync'ed when
 * durable, renamed over it. The directory is not synced. */
static int create_atomic(int dirfd, const char *name, const void *buf, size_t len,
			 int durable, struct stat *made, struct vmb_err *err)
{
	char tmp[NAME_MAX + 1];
	int fd = -1, created = 0, rc;

	rc = tmp_name(name, tmp, err);
	if (rc)
		return rc;
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = vmb_err_sys(err, errno, "cannot create sidecar map '%s'", tmp);
		goto out;
	}
	created = 1;
	rc = vmb_write_full(fd, buf, len);
	if (rc) {
		rc = vmb_err_sys(err, rc, "cannot write sidecar map '%s'", tmp);
		goto out;
	}
	if (durable && vmb_fsync(fd) < 0) {
		rc = vmb_err_sys(err, errno, "cannot fsync sidecar map '%s'", tmp);
		goto out;
	}
	if (made && fstat(fd, made) < 0) {   /* a rename keeps its inode and mtime */
		rc = vmb_err_sys(err, errno, "cannot stat sidecar map '%s'", tmp);
		goto out;
	}
	rc = close(fd);
	fd = -1;
	if (rc < 0) {
		rc = vmb_err_sys(err, errno, "cannot write sidecar map '%s'", tmp);
		goto out;
	}
	if (renameat(dirfd, tmp, dirfd, name) < 0) {
		rc = vmb_err_sys(err, errno, "cannot rename sidecar map '%s' to '%s'", tmp, name);
		goto out;
	}
	created = 0;
out:
	if (fd >= 0)
		close(fd);
	if (created)
		unlinkat(dirfd, tmp, 0);
	return rc;
}

/* A whole new base; its journal removed; pos (may be NULL) describes it. */
static int write_full(int dirfd, const char *name, const struct vmb_blockmap *m,
		      const struct vmb_stamp *s, const struct vmb_baseref *b, int durable,
		      struct vmb_sidecar_pos *pos, struct vmb_err *err)
{
	char jname[NAME_MAX + 1];
	struct stat made;
	void *buf = NULL;
	size_t len;
	int rc;

	if (pos)
		pos->valid = 0;
	rc = check_name(name, err);
	if (rc)
		return rc;
	if (vmb_sidecar_journal_name(name, jname, sizeof(jname)) < 0)
		return vmb_err_set(err, ENAMETOOLONG, "sidecar map name '%s' is too long", name);
	rc = vmb_sidecar_encode2(m, s, b, &buf, &len, err);
	if (rc)
		return rc;
	rc = create_atomic(dirfd, name, buf, len, durable, &made, err);
	if (rc)
		goto out;
	/* A journal left here (a crash before this unlink) names the old base and is
	 * ignored. */
	if (unlinkat(dirfd, jname, 0) < 0 && errno != ENOENT) {
		rc = vmb_err_sys(err, errno, "cannot remove sidecar journal '%s'", jname);
		goto out;
	}
	if (durable >= VMB_SIDECAR_SYNC_DIR) {
		rc = fsync_dir(dirfd);
		if (rc) {
			rc = vmb_err_sys(err, -rc, "cannot fsync the directory of sidecar map "
					 "'%s'", name);
			goto out;
		}
	}
	if (pos) {
		memset(pos, 0, sizeof(*pos));
		vmb_journal_base_of(buf, len, &pos->base);
		pos->base_ino = (uint64_t)made.st_ino;
		pos->base_mtime = made.st_mtim;
		pos->first_seq = pos->next_seq = 1;
		if (has_base(b))
			pos->under = *b;
		pos->valid = 1;
	}
out:
	free(buf);
	return rc;
}

int vmb_sidecar_write(int dirfd, const char *name, const struct vmb_blockmap *m,
		      const struct vmb_stamp *s, int durable, struct vmb_err *err)
{
	return write_full(dirfd, name, m, s, NULL, durable, NULL, err);
}

int vmb_sidecar_write2(int dirfd, const char *name, const struct vmb_blockmap *m,
		       const struct vmb_stamp *s, const struct vmb_baseref *b, int durable,
		       struct vmb_err *err)
{
	return write_full(dirfd, name, m, s, b, durable, NULL, err);
}

/* The whole of regular file `name` into a malloc'ed *buf (caller frees). -ENOENT
 * (no message) when it does not exist. */
static int read_whole(int dirfd, const char *name, const char *what, void **buf,
		      size_t *len, struct stat *stp, struct vmb_err *err)
{
	struct stat st;
	ssize_t got;
	int fd, rc = 0;

	*buf = NULL;
	*len = 0;
	/* O_NONBLOCK: never hang on a FIFO someone left there */
	fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		if (errno == ENOENT)
			return vmb_err_set(err, ENOENT, "no %s '%s'", what, name);
		return vmb_err_sys(err, errno, "cannot open %s '%s'", what, name);
	}
	if (fstat(fd, &st) < 0) {
		rc = vmb_err_sys(err, errno, "cannot stat %s '%s'", what, name);
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = vmb_err_set(err, EINVAL, "%s '%s' is not a regular file", what, name);
		goto out;
	}
	if ((uint64_t)st.st_size >= SIZE_MAX) {
		rc = vmb_err_set(err, EFBIG, "%s '%s' is too large", what, name);
		goto out;
	}
	*buf = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!*buf) {
		rc = vmb_err_set(err, ENOMEM, "out of memory reading %s '%s'", what, name);
		goto out;
	}
	got = vmb_read_full(fd, *buf, (size_t)st.st_size);
	if (got < 0) {
		rc = vmb_err_sys(err, (int)-got, "cannot read %s '%s'", what, name);
		free(*buf);
		*buf = NULL;
		goto out;
	}
	*len = (size_t)got;
	if (stp)
		*stp = st;
out:
	close(fd);
	return rc;
}

/* Replay journal jname over (m, s), whose base is `id`; info filled. A missing
 * journal is an empty one. */
static int load_journal(int dirfd, const char *jname, const struct vmb_journal_base *id,
			struct vmb_blockmap *m, struct vmb_stamp *s,
			struct vmb_journal_info *info, int *present, struct vmb_err *err)
{
	void *buf = NULL;
	size_t len;
	int rc;

	memset(info, 0, sizeof(*info));
	*present = 0;
	rc = read_whole(dirfd, jname, "sidecar journal", &buf, &len, NULL, err);
	if (rc == -ENOENT) {
		vmb_err_clear(err);
		return 0;
	}
	if (rc < 0)
		return rc;
	*present = 1;
	rc = vmb_journal_decode(buf, len, id, m, s, info, err);
	free(buf);
	return rc;
}

int vmb_sidecar_load(int dirfd, const char *name, struct vmb_blockmap *m,
		     struct vmb_stamp *s, struct vmb_sidecar_pos *pos, struct vmb_err *err)
{
	struct vmb_blockmap tmp;
	struct vmb_stamp st;
	struct vmb_baseref b;
	int rc;

	vmb_blockmap_init(&tmp);
	rc = vmb_sidecar_load2(dirfd, name, &tmp, &st, &b, pos, err);
	if (rc == 0 && has_base(&b)) {
		rc = refuse_v2(err);
		if (pos)
			memset(pos, 0, sizeof(*pos));
	}
	if (rc == 0) {
		vmb_blockmap_destroy(m);
		*m = tmp;
		vmb_blockmap_init(&tmp);
		if (s)
			*s = st;
	}
	vmb_blockmap_destroy(&tmp);
	return rc;
}

int vmb_sidecar_load2(int dirfd, const char *name, struct vmb_blockmap *m,
		      struct vmb_stamp *s, struct vmb_baseref *b, struct vmb_sidecar_pos *pos,
		      struct vmb_err *err)
{
	char jname[NAME_MAX + 1];
	struct vmb_baseref under;
	struct vmb_journal_info info;
	struct vmb_journal_base id;
	struct vmb_blockmap map;
	struct vmb_stamp stamp;
	struct stat bst;
	void *buf = NULL;
	size_t len;
	int rc, present;

	if (pos)
		memset(pos, 0, sizeof(*pos));
	vmb_blockmap_init(&map);
	rc = check_name(name, err);
	if (rc)
		return rc;
	if (vmb_sidecar_journal_name(name, jname, sizeof(jname)) < 0)
		return vmb_err_set(err, ENAMETOOLONG, "sidecar map name '%s' is too long", name);
	rc = read_whole(dirfd, name, "sidecar map", &buf, &len, &bst, err);
	if (rc < 0)
		return rc;
	rc = vmb_sidecar_decode2(buf, len, &map, &stamp, &under, err);
	if (rc < 0)
		goto out;
	vmb_journal_base_of(buf, len, &id);
	rc = load_journal(dirfd, jname, &id, &map, &stamp, &info, &present, err);
	if (rc < 0)
		goto out;
	if (info.open) {
		rc = vmb_err_set(err, ESTALE, "sidecar map '%s' was being changed when its "
				 "writer stopped", name);
		/* the last committed map, for the rebuild of a delta with a base */
	} else if (pos) {
		pos->under = under;
		pos->base = id;
		pos->base_ino = (uint64_t)bst.st_ino;
		pos->base_mtime = bst.st_mtim;
		if (present && !info.stale) {
			pos->jlen = info.len;
			pos->first_seq = info.next_seq - info.records;
			pos->next_seq = info.next_seq;
		} else {
			pos->first_seq = pos->next_seq = 1;
		}
		/* after a torn tail the next save writes a new base */
		pos->valid = !info.torn;
	}
	vmb_blockmap_destroy(m);
	*m = map;
	vmb_blockmap_init(&map);
	if (s)
		*s = stamp;
	if (b)
		*b = under;
out:
	vmb_blockmap_destroy(&map);
	free(buf);
	return rc;
}

int vmb_sidecar_read(int dirfd, const char *name, struct vmb_blockmap *m,
		     struct vmb_stamp *s, struct vmb_err *err)
{
	return vmb_sidecar_load(dirfd, name, m, s, NULL, err);
}

/* Does `name` still hold the base file pos describes? Another process may have
 * saved a whole new one over it. */
static int base_unchanged(int dirfd, const char *name, const struct vmb_sidecar_pos *pos)
{
	struct stat st;

	return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
	       (uint64_t)st.st_ino == pos->base_ino && (uint64_t)st.st_size == pos->base.len &&
	       st.st_mtim.tv_sec == pos->base_mtime.tv_sec &&
	       st.st_mtim.tv_nsec == pos->base_mtime.tv_nsec;
}

static int base_replaced(const char *name, struct vmb_err *err)
{
	return vmb_err_set(err, ESTALE, "sidecar map '%s' was replaced by another process",
			   name);
}

/* Append rec to the journal that pos describes, or create the journal holding it
 * when there is none. The base is looked at before and after: a record written
 * while another process (another mount) saved a whole new base names the old one
 * and counts for nothing, so the caller must save whole (-ESTALE). On failure
 * pos->valid is cleared. */
static int journal_append(int dirfd, const char *name, const void *rec, size_t rlen,
			  int durable, struct vmb_sidecar_pos *pos, struct vmb_err *err)
{
	unsigned char hdr[VMB_JOURNAL_HDR], have[VMB_JOURNAL_HDR];
	char jname[NAME_MAX + 1];
	unsigned char *whole = NULL;
	struct stat st;
	int fd = -1, rc;

	if (vmb_sidecar_journal_name(name, jname, sizeof(jname)) < 0) {
		rc = vmb_err_set(err, ENAMETOOLONG, "sidecar map name '%s' is too long", name);
		goto fail;
	}
	if (!base_unchanged(dirfd, name, pos)) {
		rc = base_replaced(name, err);
		goto fail;
	}
	vmb_journal_encode_header(hdr, &pos->base, pos->first_seq);
	if (pos->jlen == 0) {
		/* a new journal, created whole (a stale one is replaced) */
		whole = malloc(VMB_JOURNAL_HDR + rlen);
		if (!whole) {
			rc = vmb_err_set(err, ENOMEM, "out of memory writing sidecar journal '%s'",
					 jname);
			goto fail;
		}
		memcpy(whole, hdr, VMB_JOURNAL_HDR);
		memcpy(whole + VMB_JOURNAL_HDR, rec, rlen);
		rc = create_atomic(dirfd, jname, whole, VMB_JOURNAL_HDR + rlen, 1, NULL, err);
		free(whole);
		if (rc < 0)
			goto fail;
		if (!base_unchanged(dirfd, name, pos)) {   /* an orphan: ignored, removed
							     * by the next whole save */
			rc = base_replaced(name, err);
			goto fail;
		}
		pos->jlen = VMB_JOURNAL_HDR + rlen;
		pos->dir_dirty = 1;
		return 0;
	}
	fd = openat(dirfd, jname, O_RDWR | O_APPEND | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		rc = vmb_err_sys(err, errno, "cannot open sidecar journal '%s'", jname);
		goto fail;
	}
	/* still the journal we know: someone else's is left alone */
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != pos->jlen ||
	    pread(fd, have, sizeof(have), 0) != (ssize_t)sizeof(have) ||
	    memcmp(have, hdr, sizeof(hdr))) {
		rc = vmb_err_set(err, ESTALE, "sidecar journal '%s' changed behind this "
				 "process", jname);
		goto fail;
	}
	rc = vmb_write_full(fd, rec, rlen);
	if (rc == 0 && durable && vmb_fdatasync(fd) < 0)
		rc = -errno;
	if (rc < 0) {
		vmb_err_sys(err, rc, "cannot append to sidecar journal '%s'", jname);
		/* leave no torn record in the middle of later ones */
		if (ftruncate(fd, (off_t)pos->jlen) < 0)
			(void)0;   /* the next save writes a new base and removes it */
		goto fail;
	}
	close(fd);
	fd = -1;
	if (!base_unchanged(dirfd, name, pos)) {
		rc = base_replaced(name, err);
		goto fail;
	}
	pos->jlen += rlen;
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	pos->valid = 0;
	return rc < 0 ? rc : -EIO;
}

int vmb_sidecar_begin(int dirfd, const char *name, struct vmb_sidecar_pos *pos,
		      struct vmb_err *err)
{
	unsigned char rec[24];
	int rc;

	if (!pos->valid)
		return vmb_err_set(err, EINVAL, "no saved journal position for '%s'", name);
	vmb_journal_encode_begin(rec, pos->next_seq);
	rc = journal_append(dirfd, name, rec, sizeof(rec), 0, pos, err);
	if (rc == 0)
		pos->next_seq++;
	return rc;
}

int vmb_sidecar_save(int dirfd, const char *name, const struct vmb_blockmap *m,
		     const struct vmb_blockmap *dirty, const struct vmb_stamp *s, int durable,
		     struct vmb_sidecar_pos *pos, struct vmb_err *err)
{
	return vmb_sidecar_save2(dirfd, name, m, dirty, s, NULL, durable, pos, err);
}

int vmb_sidecar_save2(int dirfd, const char *name, const struct vmb_blockmap *m,
		      const struct vmb_blockmap *dirty, const struct vmb_stamp *s,
		      const struct vmb_baseref *b, int durable, struct vmb_sidecar_pos *pos,
		      struct vmb_err *err)
{
	uint64_t limit = pos->base.len / 4, size;
	void *rec = NULL;
	size_t rlen;
	int rc;

	if (limit < VMB_JOURNAL_MIN)
		limit = VMB_JOURNAL_MIN;
	/* the journal cannot change the base the base sidecar names */
	size = pos->valid && dirty && vmb_baseref_equal(&pos->under, b) ?
	       vmb_journal_commit_size(m, dirty) : 0;
	if (!size || (pos->jlen ? pos->jlen : VMB_JOURNAL_HDR) + size > limit)
		return write_full(dirfd, name, m, s, b, durable, pos, err);
	rc = vmb_journal_encode_commit(m, dirty, s, pos->next_seq, &rec, &rlen, err);
	if (rc < 0)
		return rc;
	rc = journal_append(dirfd, name, rec, rlen, durable, pos, err);
	free(rec);
	if (rc < 0)   /* the journal cannot take it: a whole new base */
		return write_full(dirfd, name, m, s, b, durable, pos, err);
	pos->next_seq++;
	if (durable >= VMB_SIDECAR_SYNC_DIR && pos->dir_dirty) {
		rc = fsync_dir(dirfd);
		if (rc)
			return vmb_err_sys(err, -rc, "cannot fsync the directory of sidecar map "
					   "'%s'", name);
		pos->dir_dirty = 0;
	}
	return 0;
}

int vmb_sidecar_remove(int dirfd, const char *name, struct vmb_err *err)
{
	char jname[NAME_MAX + 1];
	int rc = check_name(name, err);

	if (rc)
		return rc;
	if (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT)
		return vmb_err_sys(err, errno, "cannot remove sidecar map '%s'", name);
	/* without its base a journal is never used; removed for tidiness */
	if (vmb_sidecar_journal_name(name, jname, sizeof(jname)) == 0 &&
	    unlinkat(dirfd, jname, 0) < 0 && errno != ENOENT)
		return vmb_err_sys(err, errno, "cannot remove sidecar journal '%s'", jname);
	return 0;
}

/* ---- scan ---- */

static int no_hole_support(int e)
{
	return e == EINVAL || e == ENOTSUP || e == EOPNOTSUPP;
}

/* Overlay the data ranges reported by SEEK_DATA/SEEK_HOLE below size onto m
 * (already ZERO over the whole file). *nosupport is set when the very first
 * SEEK_DATA says the filesystem cannot tell. */
static int scan_data(int fd, off_t size, struct vmb_blockmap *m, int *nosupport,
		     struct vmb_err *err)
{
	off_t pos = 0, data, hole;
	int rc, first = 1;

	*nosupport = 0;
	while (pos < size) {
		data = lseek(fd, pos, SEEK_DATA);
		if (data < 0) {
			if (errno == ENXIO)
				return 0;   /* no data past pos */
			if (first && no_hole_support(errno)) {
				*nosupport = 1;
				return 0;
			}
			return vmb_err_sys(err, errno, "cannot scan the backing file (SEEK_DATA)");
		}
		if (data >= size)
			return 0;
		hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0) {
			if (errno == ENXIO)
				return 0;   /* the file shrank under us */
			return vmb_err_sys(err, errno, "cannot scan the backing file (SEEK_HOLE)");
		}
		if (hole > size || hole <= data)
			hole = size;   /* past the size asked for, or nonsense: clamp */
		/* round out to whole blocks */
		rc = vmb_blockmap_set(m, (uint64_t)data / VMB_BLOCK_SIZE,
				      ((uint64_t)hole + VMB_BLOCK_SIZE - 1) / VMB_BLOCK_SIZE -
				      (uint64_t)data / VMB_BLOCK_SIZE, VMB_DATA);
		if (rc)
			return vmb_err_set(err, rc, "out of memory scanning the backing file");
		pos = hole;
		first = 0;
	}
	return 0;
}

int vmb_sidecar_scan(int fd, uint64_t size, struct vmb_blockmap *m, struct vmb_err *err)
{
	struct vmb_blockmap tmp;
	uint64_t nblocks = size / VMB_BLOCK_SIZE + (size % VMB_BLOCK_SIZE != 0);
	off_t saved;
	int rc, nosupport = 0;

	vmb_blockmap_init(&tmp);
	if (size > (uint64_t)INT64_MAX)
		return vmb_err_set(err, EFBIG, "cannot scan a file of %" PRIu64 " bytes", size);
	saved = lseek(fd, 0, SEEK_CUR);
	if (saved < 0)
		return vmb_err_sys(err, errno, "cannot scan the backing file");

	rc = vmb_blockmap_set(&tmp, 0, nblocks, VMB_ZERO);
	if (rc) {
		rc = vmb_err_set(err, rc, "out of memory scanning the backing file");
		goto out;
	}
	rc = scan_data(fd, (off_t)size, &tmp, &nosupport, err);
	if (rc)
		goto out;
	if (nosupport) {
		rc = vmb_blockmap_set(&tmp, 0, nblocks, VMB_DATA);
		if (rc) {
			rc = vmb_err_set(err, rc, "out of memory scanning the backing file");
			goto out;
		}
	}
	vmb_blockmap_destroy(m);
	*m = tmp;
	vmb_blockmap_init(&tmp);
out:
	vmb_blockmap_destroy(&tmp);
	lseek(fd, saved, SEEK_SET);
	return rc;
}

/* ---- peek ---- */

int vmb_sidecar_peek(int dirfd, const char *name, struct vmb_stamp *s, uint64_t *data_blocks)
{
	struct vmb_baseref b;
	int rc = vmb_sidecar_peek2(dirfd, name, s, data_blocks, &b);

	return rc == 0 && has_base(&b) ? -EPROTONOSUPPORT : rc;
}

int vmb_sidecar_peek2(int dirfd, const char *name, struct vmb_stamp *s,
		      uint64_t *data_blocks, struct vmb_baseref *b)
{
	unsigned char h[VMB_SIDECAR_PAGE];
	char jname[NAME_MAX + 1];
	struct vmb_journal_info info;
	struct vmb_journal_base id;
	struct stat st;
	uint64_t count;
	size_t expected;
	ssize_t got;
	int fd, rc, present;

	if (check_name(name, NULL) || vmb_sidecar_journal_name(name, jname, sizeof(jname)))
		return -EINVAL;
	fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	got = vmb_read_full(fd, h, sizeof(h));
	rc = fstat(fd, &st) < 0 ? -errno : 0;
	close(fd);
	if (got < 0)
		return (int)got;
	if (rc < 0)
		return rc;
	rc = decode_preamble(h, (size_t)got, NULL);
	if (rc == 0)
		rc = decode_header(h, s, &count, &expected, b, NULL);
	if (rc < 0)
		return rc;
	*data_blocks = vmb_get_le64(h + H_DATA);
	/* the journal's records, not replayed: its last COMMIT has the stamp and count */
	memset(&id, 0, sizeof(id));
	id.len = (uint64_t)st.st_size;
	id.hdr_crc = vmb_get_le32(h + PAGE_BODY);
	id.no_all_crc = 1;
	rc = load_journal(dirfd, jname, &id, NULL, s, &info, &present, NULL);
	if (rc < 0)
		return rc;
	if (info.open)
		return -ESTALE;
	if (info.committed && !info.stale)
		*data_blocks = info.data_blocks;
	return 0;
}
