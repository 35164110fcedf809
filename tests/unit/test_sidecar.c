/* test_sidecar.c - unit tests of the sidecar map format and files (src/map/sidecar.c). */
#include "config.h"
#include "map/sidecar.h"
#include "base/crc32c.h"
#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PAGE VMB_SIDECAR_PAGE

static char tmpdir[4096];   /* made by main, removed at the end */
static int dirfd_ = -1;

/* ---- helpers ---- */

static void put32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static void put64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint64_t get64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

/* Recompute the checksum of page `page` after an edit. */
static void recrc(unsigned char *buf, size_t page)
{
	unsigned char *p = buf + page * PAGE;

	put32(p + PAGE - 4, vmb_crc32c(0, p, PAGE - 4));
}

/* n extents: DATA/ZERO alternately, 1 or 2 blocks long, separated by gaps. */
static void make_map(struct vmb_blockmap *m, size_t n)
{
	vmb_blockmap_init(m);
	for (size_t i = 0; i < n; i++)
		vmb_blockmap_set(m, 3 * i, 1 + i % 2, i % 2 ? VMB_ZERO : VMB_DATA);
}

static const struct vmb_stamp sample_stamp = {
	.ino = 0x1122334455667788ull,
	.size = 123456789,
	.mtime_sec = -5,
	.mtime_nsec = 999999999,
	.btime_nsec = 1,
	.btime_sec = 1700000000,
};

/* A map with some content, to see that failed decodes leave it alone. */
static void sentinel(struct vmb_blockmap *m)
{
	vmb_blockmap_init(m);
	vmb_blockmap_set(m, 1000, 7, VMB_ZERO);
}

static int is_sentinel(const struct vmb_blockmap *m)
{
	return m->n == 1 && m->ext[0].start == 1000 && m->ext[0].len == 7 &&
	       m->ext[0].state == VMB_ZERO && m->zero_blocks == 7 && m->data_blocks == 0;
}

/* Decoding buf fails with rc and msg in the error; the target map is untouched. */
#define CHECK_DECODE(buf, len, rc, want) do { \
	struct vmb_blockmap cd_m_; \
	struct vmb_err cd_e_; \
	vmb_err_clear(&cd_e_); \
	sentinel(&cd_m_); \
	CHECK_RC(vmb_sidecar_decode((buf), (len), &cd_m_, NULL, &cd_e_), (rc)); \
	CHECK_EQ(cd_e_.code, -(rc)); \
	CHECK_STR(cd_e_.msg, (want)); \
	CHECK(is_sentinel(&cd_m_)); \
	vmb_blockmap_destroy(&cd_m_); \
} while (0)

/* Decoding buf succeeds. */
#define CHECK_DECODE_OK(buf, len) do { \
	struct vmb_blockmap cd_m_; \
	vmb_blockmap_init(&cd_m_); \
	CHECK_RC(vmb_sidecar_decode((buf), (len), &cd_m_, NULL, NULL), 0); \
	CHECK_RC(vmb_blockmap_check(&cd_m_), 0); \
	vmb_blockmap_destroy(&cd_m_); \
} while (0)

static size_t expected_len(size_t n)
{
	return PAGE * (1 + (n + VMB_SIDECAR_PER_PAGE - 1) / VMB_SIDECAR_PER_PAGE);
}

/* ---- format ---- */

static void test_name(void)
{
	char name[VMB_SIDECAR_NAME_MAX];

	vmb_sidecar_name(0x1234abcdull, name);
	CHECK(!strcmp(name, "000000001234abcd.map"));
	vmb_sidecar_name(UINT64_MAX, name);
	CHECK(!strcmp(name, "ffffffffffffffff.map"));
}

static void roundtrip(size_t n)
{
	struct vmb_blockmap m, out;
	struct vmb_stamp s;
	struct vmb_err e;
	unsigned char *b;
	void *buf;
	size_t len;

	make_map(&m, n);
	REQUIRE(m.n == n);
	vmb_err_clear(&e);
	CHECK_RC(vmb_sidecar_encode(&m, &sample_stamp, &buf, &len, &e), 0);
	REQUIRE(buf != NULL);
	b = buf;
	CHECK_EQ(len, expected_len(n));
	CHECK(!memcmp(b, "VMBMAP01", 8));
	CHECK_EQ(b[8], 1);
	CHECK_EQ(get64(b + 56), n);
	CHECK_EQ(get64(b + 16), sample_stamp.ino);
	for (size_t p = 0; p < len / PAGE; p++)
		CHECK_EQ(vmb_crc32c(0, b + p * PAGE, PAGE - 4), get32(b + p * PAGE + PAGE - 4));
	sentinel(&out);
	memset(&s, 0xa5, sizeof(s));
	CHECK_RC(vmb_sidecar_decode(buf, len, &out, &s, &e), 0);
	CHECK(vmb_blockmap_equal(&m, &out));
	CHECK_RC(vmb_blockmap_check(&out), 0);
	CHECK_EQ(out.data_blocks, m.data_blocks);
	CHECK_EQ(out.zero_blocks, m.zero_blocks);
	CHECK(vmb_stamp_equal(&s, &sample_stamp));
	CHECK_EQ(s.mtime_sec, (uint64_t)-5);
	/* the stamp is optional */
	CHECK_RC(vmb_sidecar_decode(buf, len, &out, NULL, &e), 0);
	CHECK(vmb_blockmap_equal(&m, &out));
	free(buf);
	vmb_blockmap_destroy(&m);
	vmb_blockmap_destroy(&out);
}

static void test_roundtrip(void)
{
	static const size_t sizes[] = { 0, 1, 169, 170, 171, 340, 341, 5000 };

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		roundtrip(sizes[i]);
}

/* A byte flipped anywhere in a page is caught by that page's checksum. */
static void test_bad_checksum(void)
{
	static const size_t where[] = { 17, 100, 2000, 4079, 4085, 4091, 4092, 4095 };
	struct vmb_blockmap m;
	unsigned char *b;
	char msg[80];
	void *buf;
	size_t len;

	make_map(&m, 400);   /* header + 3 record pages, the last one partial */
	REQUIRE(vmb_sidecar_encode(&m, &sample_stamp, &buf, &len, NULL) == 0);
	b = buf;
	CHECK_EQ(len, 4 * PAGE);
	for (size_t p = 0; p < len / PAGE; p++) {
		for (size_t k = 0; k < sizeof(where) / sizeof(where[0]); k++) {
			b[p * PAGE + where[k]] ^= 0x40;
			snprintf(msg, sizeof(msg),
				 "sidecar map is corrupt (bad checksum at offset %zu)", p * PAGE);
			CHECK_DECODE(buf, len, -EBADMSG, msg);
			b[p * PAGE + where[k]] ^= 0x40;
		}
	}
	CHECK_DECODE_OK(buf, len);   /* restored */
	free(buf);
	vmb_blockmap_destroy(&m);
}

static void test_truncated(void)
{
	struct vmb_blockmap m;
	unsigned char *big;
	char msg[96];
	void *buf;
	size_t len;

	make_map(&m, 171);
	REQUIRE(vmb_sidecar_encode(&m, &sample_stamp, &buf, &len, NULL) == 0);
	CHECK_EQ(len, 3 * PAGE);
	snprintf(msg, sizeof(msg), "sidecar map is truncated (%zu bytes, expected %zu)",
		 len - 1, len);
	CHECK_DECODE(buf, len - 1, -EBADMSG, msg);
	snprintf(msg, sizeof(msg), "sidecar map is truncated (%zu bytes, expected %zu)",
		 len - PAGE, len);
	CHECK_DECODE(buf, len - PAGE, -EBADMSG, msg);
	CHECK_DECODE(buf, PAGE, -EBADMSG, "truncated (4096 bytes, expected 12288)");
	CHECK_DECODE(buf, PAGE - 1, -EBADMSG, "truncated (4095 bytes, expected 4096)");
	CHECK_DECODE(buf, 8, -EBADMSG, "truncated (8 bytes, expected 4096)");
	CHECK_DECODE(buf, 0, -EBADMSG, "truncated (0 bytes, expected 4096)");
	CHECK_DECODE(NULL, 0, -EBADMSG, "truncated");
	/* longer than the count says: corrupt, naming where the excess starts */
	big = calloc(1, len + PAGE);
	REQUIRE(big != NULL);
	memcpy(big, buf, len);
	CHECK_DECODE(big, len + 1, -EBADMSG, "at offset 12288)");
	CHECK_DECODE(big, len + PAGE, -EBADMSG, "at offset 12288)");
	free(big);
	free(buf);
	vmb_blockmap_destroy(&m);

	/* the example of sidecar.h */
	make_map(&m, 1);
	REQUIRE(vmb_sidecar_encode(&m, &sample_stamp, &buf, &len, NULL) == 0);
	CHECK_DECODE(buf, 5000, -EBADMSG, "sidecar map is truncated (5000 bytes, expected 8192)");
	free(buf);
	vmb_blockmap_destroy(&m);
}

/* Header fields that are wrong although the page checksum is right. */
static void test_bad_header(void)
{
	struct vmb_blockmap m;
	unsigned char *b, *orig;
	void *buf;
	size_t len;

	make_map(&m, 171);
	REQUIRE(vmb_sidecar_encode(&m, &sample_stamp, &buf, &len, NULL) == 0);
	b = buf;
	orig = malloc(len);
	REQUIRE(orig != NULL);
	memcpy(orig, b, len);
#define RESET() memcpy(b, orig, len)

	b[3] = 'X';   /* magic, checked before the checksum */
	CHECK_DECODE(b, len, -EBADMSG, "sidecar map is corrupt (bad magic at offset 0)");
	RESET();
	put32(b + 8, 3);   /* newer version: refused whatever follows */
	CHECK_DECODE(b, len, -EPROTONOSUPPORT,
		     "sidecar map version 3 is newer than this vmbundlefs understands (2)");
	put32(b + 8, 0xffffffffu);
	CHECK_DECODE(b, len, -EPROTONOSUPPORT, "version 4294967295 is newer");
	put32(b + 8, 0);
	recrc(b, 0);
	CHECK_DECODE(b, len, -EBADMSG, "at offset 8)");
	RESET();
	put32(b + 12, 512);
	recrc(b, 0);
	CHECK_DECODE(b, len, -EBADMSG, "block size 512 at offset 12)");
	RESET();
	put32(b + 40, 1000000000u);
	recrc(b, 0);
	CHECK_DECODE(b, len, -EBADMSG, "at offset 40)");
	RESET();
	put32(b + 44, 1000000000u);
	recrc(b, 0);
	CHECK_DECODE(b, len, -EBADMSG, "at offset 44)");
	RESET();
	put64(b + 56, 172);   /* same length; the 172nd record is all zeros */
	recrc(b, 0);
	CHECK_DECODE(b, len, -EBADMSG, "bad extent state 0 at offset");
	put64(b + 56, 341);   /* one more page than there is */
	recrc(b, 0);
	CHECK_DECODE(b, len, -EBADMSG, "sidecar map is truncated (12288 bytes, expected 16384)");
	put64(b + 56, 170);   /* one page less than there is */
	recrc(b, 0);
	CHECK_DECODE(b, len, -EBADMSG, "at offset 8192)");
	put64(b + 56, UINT64_MAX);
	recrc(b, 0);
	CHECK_DECODE(b, len, -EBADMSG, "at offset 56)");
	RESET();
	put64(b + 64, m.data_blocks + 1);
	recrc(b, 0);
	CHECK_DECODE(b, len, -EBADMSG, "at offset 64)");
	RESET();
	put64(b + 72, m.zero_blocks - 1);
	recrc(b, 0);
	CHECK_DECODE(b, len, -EBADMSG, "at offset 72)");
	RESET();
	put32(b + 80, 1);
	recrc(b, 0);
	CHECK_DECODE(b, len, -EBADMSG, "at offset 80)");
	RESET();
	put32(b + 84, 1);
	recrc(b, 0);
	CHECK_DECODE(b, len, -EBADMSG, "at offset 84)");
	RESET();
	b[88] = 1;
	recrc(b, 0);
	CHECK_DECODE(b, len, -EBADMSG, "non-zero padding at offset 88)");
	RESET();
	b[4091] = 1;
	recrc(b, 0);
	CHECK_DECODE(b, len, -EBADMSG, "non-zero padding at offset 4091)");
	RESET();
	CHECK_DECODE_OK(b, len);
#undef RESET
	free(orig);
	free(buf);
	vmb_blockmap_destroy(&m);
}

/* Records that are wrong although the page checksum is right. */
static void test_bad_records(void)
{
	struct vmb_blockmap m;
	unsigned char *b, *orig, *r, tmp[24];
	char msg[96];
	void *buf;
	size_t len;

	make_map(&m, 400);   /* record i is at 4096 * (1 + i / 170) + 24 * (i % 170) */
	REQUIRE(vmb_sidecar_encode(&m, &sample_stamp, &buf, &len, NULL) == 0);
	b = buf;
	orig = malloc(len);
	REQUIRE(orig != NULL);
	memcpy(orig, b, len);
#define RESET() memcpy(b, orig, len)
#define REC(i) (b + PAGE * (1 + (i) / 170) + 24 * ((i) % 170))
#define OFF(i) ((size_t)(PAGE * (1 + (i) / 170) + 24 * ((i) % 170)))

	/* unsorted: records 5 and 6 swapped */
	memcpy(tmp, REC(5), 24);
	memcpy(REC(5), REC(6), 24);
	memcpy(REC(6), tmp, 24);
	recrc(b, 1);
	snprintf(msg, sizeof(msg), "out of order or overlapping at offset %zu)", OFF(6));
	CHECK_DECODE(b, len, -EBADMSG, msg);
	RESET();
	/* unsorted across a page boundary (records 169 and 170) */
	memcpy(tmp, REC(169), 24);
	memcpy(REC(169), REC(170), 24);
	memcpy(REC(170), tmp, 24);
	recrc(b, 1);
	recrc(b, 2);
	snprintf(msg, sizeof(msg), "at offset %zu)", OFF(170));
	CHECK_DECODE(b, len, -EBADMSG, msg);
	RESET();
	/* overlapping: record 300 starts inside 299 (299 is ZERO, 2 blocks) */
	put64(REC(300), 3 * 299 + 1);
	recrc(b, 2);
	snprintf(msg, sizeof(msg), "overlapping at offset %zu)", OFF(300));
	CHECK_DECODE(b, len, -EBADMSG, msg);
	RESET();
	/* not merged: record 0 (DATA [0,1)) grown to touch record 1, made DATA */
	put64(REC(0) + 8, 3);
	put32(REC(1) + 16, VMB_DATA);
	recrc(b, 1);
	snprintf(msg, sizeof(msg), "unmerged extents at offset %zu)", OFF(1));
	CHECK_DECODE(b, len, -EBADMSG, msg);
	RESET();
	/* states */
	put32(REC(7) + 16, 0);
	recrc(b, 1);
	snprintf(msg, sizeof(msg), "bad extent state 0 at offset %zu)", OFF(7) + 16);
	CHECK_DECODE(b, len, -EBADMSG, msg);
	put32(REC(7) + 16, 3);
	recrc(b, 1);
	snprintf(msg, sizeof(msg), "bad extent state 3 at offset %zu)", OFF(7) + 16);
	CHECK_DECODE(b, len, -EBADMSG, msg);
	RESET();
	/* reserved field of a record */
	put32(REC(399) + 20, 1);
	recrc(b, 3);
	snprintf(msg, sizeof(msg), "reserved field at offset %zu)", OFF(399) + 20);
	CHECK_DECODE(b, len, -EBADMSG, msg);
	RESET();
	/* empty extent */
	put64(REC(8) + 8, 0);
	recrc(b, 1);
	snprintf(msg, sizeof(msg), "empty extent at offset %zu)", OFF(8) + 8);
	CHECK_DECODE(b, len, -EBADMSG, msg);
	RESET();
	/* beyond VMB_BLOCK_MAX (the last record, so the order is fine) */
	put64(REC(399), VMB_BLOCK_MAX - 1);
	put64(REC(399) + 8, 2);
	recrc(b, 3);
	snprintf(msg, sizeof(msg), "at offset %zu)", OFF(399));
	CHECK_DECODE(b, len, -EBADMSG, msg);
	put64(REC(399), UINT64_MAX);
	put64(REC(399) + 8, 2);   /* start + len wraps around */
	recrc(b, 3);
	CHECK_DECODE(b, len, -EBADMSG, msg);
	RESET();
	/* padding after the last record of the last page, and in a full page */
	REC(400)[5] = 1;
	recrc(b, 3);
	snprintf(msg, sizeof(msg), "non-zero padding at offset %zu)", OFF(400) + 5);
	CHECK_DECODE(b, len, -EBADMSG, msg);
	RESET();
	b[2 * PAGE + 4080] = 1;
	recrc(b, 2);
	snprintf(msg, sizeof(msg), "non-zero padding at offset %zu)", (size_t)2 * PAGE + 4080);
	CHECK_DECODE(b, len, -EBADMSG, msg);
	RESET();
	/* the counters must match records that are otherwise valid: drop record 399 */
	put64(b + 56, 399);
	put64(b + 64, m.data_blocks - (399 % 2 ? 0 : 1));
	put64(b + 72, m.zero_blocks - (399 % 2 ? 2 : 0));
	recrc(b, 0);
	r = REC(399);
	memset(r, 0, 24);
	recrc(b, 3);
	CHECK_DECODE_OK(b, len);
	put64(b + 72, m.zero_blocks);
	recrc(b, 0);
	CHECK_DECODE(b, len, -EBADMSG, "at offset 72)");
#undef RESET
#undef REC
#undef OFF
	free(orig);
	free(buf);
	vmb_blockmap_destroy(&m);
}

/* ---- files ---- */

static int count_entries(const char *prefix)
{
	int fd = openat(dirfd_, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC), n = 0;
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	while ((de = readdir(d)))
		if (!strncmp(de->d_name, prefix, strlen(prefix)))
			n++;
	closedir(d);
	return n;
}

static void test_write_read(void)
{
	struct vmb_blockmap m, out;
	struct vmb_stamp s;
	struct vmb_err e;
	char name[VMB_SIDECAR_NAME_MAX];
	int cwd, fd;

	vmb_sidecar_name(42, name);
	make_map(&m, 5000);
	sentinel(&out);
	vmb_err_clear(&e);
	CHECK_RC(vmb_sidecar_read(dirfd_, name, &out, &s, &e), -ENOENT);
	CHECK_EQ(e.code, ENOENT);
	CHECK_STR(e.msg, name);
	CHECK(is_sentinel(&out));

	CHECK_RC(vmb_sidecar_write(dirfd_, name, &m, &sample_stamp, 1, &e), 0);
	CHECK_RC(vmb_sidecar_read(dirfd_, name, &out, &s, &e), 0);
	CHECK(vmb_blockmap_equal(&m, &out));
	CHECK(vmb_stamp_equal(&s, &sample_stamp));
	CHECK_EQ(count_entries(".tmp."), 0);
	CHECK_EQ(count_entries(name), 1);

	/* replace, not durable */
	vmb_blockmap_destroy(&m);
	make_map(&m, 3);
	s.size = 1;
	CHECK_RC(vmb_sidecar_write(dirfd_, name, &m, &s, 0, &e), 0);
	CHECK_RC(vmb_sidecar_read(dirfd_, name, &out, NULL, &e), 0);
	CHECK(vmb_blockmap_equal(&m, &out));
	CHECK_EQ(count_entries(".tmp."), 0);

	/* a corrupt file on disk */
	fd = openat(dirfd_, "bad.map", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	REQUIRE(fd >= 0);
	CHECK_EQ(write(fd, "VMBMAP01 and then garbage", 25), 25);
	close(fd);
	CHECK_RC(vmb_sidecar_read(dirfd_, "bad.map", &out, NULL, &e), -EBADMSG);
	CHECK_STR(e.msg, "truncated (25 bytes, expected 4096)");
	CHECK(vmb_blockmap_equal(&m, &out));
	CHECK_RC(vmb_sidecar_remove(dirfd_, "bad.map", &e), 0);

	/* remove, twice */
	CHECK_RC(vmb_sidecar_remove(dirfd_, name, &e), 0);
	CHECK_RC(vmb_sidecar_read(dirfd_, name, &out, NULL, &e), -ENOENT);
	CHECK_RC(vmb_sidecar_remove(dirfd_, name, &e), 0);
	CHECK_EQ(count_entries(name), 0);

	/* names must be plain */
	CHECK_RC(vmb_sidecar_write(dirfd_, "a/b.map", &m, &s, 0, &e), -EINVAL);
	CHECK_RC(vmb_sidecar_write(dirfd_, "", &m, &s, 0, &e), -EINVAL);
	CHECK_RC(vmb_sidecar_read(dirfd_, "..", &out, NULL, &e), -EINVAL);
	CHECK_RC(vmb_sidecar_remove(dirfd_, ".", &e), -EINVAL);

	/* a failed rename leaves no temporary behind */
	REQUIRE(mkdirat(dirfd_, "dir.map", 0755) == 0);
	vmb_err_clear(&e);
	CHECK(vmb_sidecar_write(dirfd_, "dir.map", &m, &s, 1, &e) < 0);
	CHECK(e.code != 0);
	CHECK_STR(e.msg, "dir.map");
	CHECK_EQ(count_entries(".tmp."), 0);
	/* reading a directory is refused */
	CHECK_RC(vmb_sidecar_read(dirfd_, "dir.map", &out, NULL, &e), -EINVAL);
	CHECK_RC(unlinkat(dirfd_, "dir.map", AT_REMOVEDIR), 0);

	/* AT_FDCWD as the directory, durable (fsyncs ".") */
	cwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	REQUIRE(cwd >= 0);
	if (CHECK(fchdir(dirfd_) == 0)) {
		CHECK_RC(vmb_sidecar_write(AT_FDCWD, "cwd.map", &m, &s, 1, &e), 0);
		CHECK_RC(vmb_sidecar_read(AT_FDCWD, "cwd.map", &out, NULL, &e), 0);
		CHECK(vmb_blockmap_equal(&m, &out));
		CHECK_RC(vmb_sidecar_remove(AT_FDCWD, "cwd.map", &e), 0);
		CHECK(fchdir(cwd) == 0);
	}
	close(cwd);

	/* a bad dirfd */
	CHECK_RC(vmb_sidecar_write(-1, name, &m, &s, 0, &e), -EBADF);
	CHECK_RC(vmb_sidecar_read(-1, name, &out, NULL, &e), -EBADF);
	CHECK_RC(vmb_sidecar_remove(-1, name, &e), -EBADF);
	CHECK_EQ(count_entries(""), 2);   /* "." and ".." */
	vmb_blockmap_destroy(&m);
	vmb_blockmap_destroy(&out);
}

static void test_stamp(void)
{
	struct vmb_stamp a, b;
	struct vmb_err e;
	struct stat st;
	struct timespec ts = { 0, 50 * 1000 * 1000 };
	int fd;

	fd = openat(dirfd_, "stamped", O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	REQUIRE(fd >= 0);
	REQUIRE(fstat(fd, &st) == 0);
	CHECK_RC(vmb_stamp_fd(fd, &a, &e), 0);
	CHECK_EQ(a.ino, st.st_ino);
	CHECK_EQ(a.size, 0);
	CHECK_EQ(a.mtime_sec, st.st_mtim.tv_sec);
	CHECK_EQ(a.mtime_nsec, st.st_mtim.tv_nsec);
	CHECK(a.btime_nsec < 1000000000u);
	CHECK_RC(vmb_stamp_fd(fd, &b, &e), 0);
	CHECK(vmb_stamp_equal(&a, &b));

	CHECK_EQ(pwrite(fd, "0123456789", 10, 0), 10);
	CHECK_RC(vmb_stamp_fd(fd, &b, &e), 0);
	CHECK(!vmb_stamp_equal(&a, &b));
	CHECK_EQ(b.size, 10);
	CHECK_EQ(b.ino, a.ino);
	CHECK_EQ(b.btime_sec, a.btime_sec);
	CHECK_EQ(b.btime_nsec, a.btime_nsec);

	/* same size, later write: the mtime tells */
	a = b;
	nanosleep(&ts, NULL);
	CHECK_EQ(pwrite(fd, "abc", 3, 2), 3);
	CHECK_RC(vmb_stamp_fd(fd, &b, &e), 0);
	CHECK_EQ(b.size, 10);
	CHECK(!vmb_stamp_equal(&a, &b));
	CHECK(b.mtime_sec != a.mtime_sec || b.mtime_nsec != a.mtime_nsec);
	close(fd);
	CHECK_RC(vmb_stamp_fd(fd, &b, &e), -EBADF);
	CHECK_RC(unlinkat(dirfd_, "stamped", 0), 0);
}

/* ---- scan ---- */

struct piece {
	off_t off;
	size_t len;
};

static void test_scan(void)
{
	static const struct piece pieces[] = {
		{ 0, 4096 },                         /* block 0 */
		{ (1 << 20) + 100, 10 },             /* block 256, rounded out */
		{ 10 << 20, 3 * 4096 },              /* blocks 2560-2562 */
		{ (40 << 20) - 2, 4 },               /* blocks 10239-10240 */
		{ (64 << 20) + 50, 50 },             /* block 16384, the partial last one */
	};
	const off_t size = (64 << 20) + 100;
	struct vmb_blockmap m;
	struct vmb_err e;
	char junk[3 * 4096];
	off_t probe;
	int fd, p[2];

	memset(junk, 0x5a, sizeof(junk));
	fd = openat(dirfd_, "sparse", O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	REQUIRE(fd >= 0);
	REQUIRE(ftruncate(fd, size) == 0);
	for (size_t i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++)
		CHECK_EQ(pwrite(fd, junk, pieces[i].len, pieces[i].off), pieces[i].len);
	CHECK(fsync(fd) == 0);

	sentinel(&m);
	CHECK(lseek(fd, 777, SEEK_SET) == 777);
	CHECK_RC(vmb_sidecar_scan(fd, (uint64_t)size, &m, &e), 0);
	CHECK_EQ(lseek(fd, 0, SEEK_CUR), 777);   /* offset restored */
	CHECK_RC(vmb_blockmap_check(&m), 0);
	probe = lseek(fd, 0, SEEK_HOLE);
	if (probe == 4096) {
		/* the filesystem reports holes at 4 KiB granularity: exact map */
		static const struct vmb_extent want[] = {
			{ 0, 1, VMB_DATA }, { 1, 255, VMB_ZERO },
			{ 256, 1, VMB_DATA }, { 257, 2303, VMB_ZERO },
			{ 2560, 3, VMB_DATA }, { 2563, 7676, VMB_ZERO },
			{ 10239, 2, VMB_DATA }, { 10241, 6143, VMB_ZERO },
			{ 16384, 1, VMB_DATA },
		};
		struct vmb_blockmap w = { (struct vmb_extent *)want, 9, 9, 8, 16377 };

		CHECK(vmb_blockmap_equal(&m, &w));
		CHECK_EQ(m.data_blocks, 8);
		CHECK_EQ(m.zero_blocks, 16377);
	} else if (probe == size) {
		/* no holes reported at all: all data */
		CHECK_EQ(m.n, 1);
		CHECK_EQ(m.data_blocks, 16385);
	} else {
		/* coarser holes: every written block is data, the file is covered */
		fprintf(stderr, "test_scan: hole granularity %lld, checking loosely\n",
			(long long)probe);
		CHECK_EQ(m.data_blocks + m.zero_blocks, 16385);
	}
	for (size_t i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++) {
		uint64_t first = (uint64_t)pieces[i].off / 4096;
		uint64_t last = ((uint64_t)pieces[i].off + pieces[i].len - 1) / 4096, run;

		CHECK_EQ(vmb_blockmap_get(&m, first, &run), VMB_DATA);
		CHECK(run >= last - first + 1);
	}
	CHECK_EQ(vmb_blockmap_get(&m, 16385, NULL), VMB_ABSENT);

	/* a size below the file's: the map stops there */
	CHECK_RC(vmb_sidecar_scan(fd, 5 << 20, &m, &e), 0);
	CHECK_EQ(m.data_blocks + m.zero_blocks, 1280);
	CHECK_EQ(vmb_blockmap_get(&m, 1279, NULL), probe == size ? VMB_DATA : VMB_ZERO);
	CHECK_EQ(vmb_blockmap_get(&m, 1280, NULL), VMB_ABSENT);
	/* a size above the file's: the rest is zero */
	CHECK_RC(vmb_sidecar_scan(fd, (uint64_t)size + (1 << 20), &m, &e), 0);
	CHECK_EQ(m.data_blocks + m.zero_blocks, 16385 + 256);
	if (probe != size)
		CHECK_EQ(vmb_blockmap_get(&m, 16385, NULL), VMB_ZERO);
	/* size 0: an empty map */
	CHECK_RC(vmb_sidecar_scan(fd, 0, &m, &e), 0);
	CHECK_EQ(m.n, 0);
	/* a file without holes */
	CHECK(ftruncate(fd, 0) == 0);
	CHECK_EQ(pwrite(fd, junk, 8193, 0), 8193);
	CHECK_RC(vmb_sidecar_scan(fd, 8193, &m, &e), 0);
	CHECK_EQ(m.n, 1);
	CHECK_EQ(m.data_blocks, 3);
	close(fd);
	CHECK_RC(unlinkat(dirfd_, "sparse", 0), 0);

	/* errors leave the map alone */
	vmb_blockmap_destroy(&m);
	sentinel(&m);
	if (CHECK(pipe(p) == 0)) {
		CHECK_RC(vmb_sidecar_scan(p[0], 4096, &m, &e), -ESPIPE);
		CHECK(is_sentinel(&m));
		close(p[0]);
		close(p[1]);
	}
	CHECK_RC(vmb_sidecar_scan(-1, 4096, &m, &e), -EBADF);
	CHECK_RC(vmb_sidecar_scan(0, UINT64_MAX, &m, &e), -EFBIG);
	CHECK(is_sentinel(&m));
	vmb_blockmap_destroy(&m);
}

/* ---- temporary directory ---- */

static int make_tmpdir(void)
{
	if (harness_tmpdir(tmpdir, sizeof(tmpdir), "sidecar") < 0)
		return -1;
	dirfd_ = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return dirfd_ < 0 ? -1 : 0;
}

/* ---- version 2: the map of a delta over a base ---- */

static const struct vmb_baseref sample_base = {
	.id = "0123456789abcdef0123456789abcdef", .limit = 77,
};

/* A version 2 sidecar: the base round-trips, a version 1 reader refuses it, a file
 * without a base still writes version 1; each bad base field is named. */
static void test_v2_format(void)
{
	struct vmb_blockmap m, out;
	struct vmb_baseref b;
	struct vmb_stamp s;
	struct vmb_err e;
	unsigned char *p, *orig;
	void *buf;
	size_t len;

	make_map(&m, 200);
	vmb_blockmap_init(&out);
	REQUIRE(vmb_sidecar_encode2(&m, &sample_stamp, &sample_base, &buf, &len, NULL) == 0);
	p = buf;
	CHECK_EQ(get32(p + 8), 2);
	CHECK_EQ(get32(p + 80), 1);
	CHECK(!memcmp(p + 88, sample_base.id, 32));
	CHECK_EQ(get64(p + 120), 77);
	vmb_err_clear(&e);
	CHECK_RC(vmb_sidecar_decode2(buf, len, &out, &s, &b, &e), 0);
	CHECK(vmb_blockmap_equal(&m, &out));
	CHECK(vmb_stamp_equal(&s, &sample_stamp));
	CHECK(!strcmp(b.id, sample_base.id));
	CHECK_EQ(b.limit, 77);
	CHECK(vmb_baseref_equal(&b, &sample_base));
	/* a reader that does not ask for the base must not take the map alone */
	CHECK_DECODE(p, len, -EPROTONOSUPPORT, "needs a reader that knows its base");
	orig = malloc(len);
	REQUIRE(orig != NULL);
	memcpy(orig, p, len);
	p[88] = 'A';   /* upper case: not an id */
	recrc(p, 0);
	CHECK_RC(vmb_sidecar_decode2(p, len, &out, NULL, &b, &e), -EBADMSG);
	CHECK_STR(e.msg, "bad base id at offset 88");
	memcpy(p, orig, len);
	put64(p + 120, VMB_BLOCK_MAX + 1);
	recrc(p, 0);
	CHECK_RC(vmb_sidecar_decode2(p, len, &out, NULL, &b, &e), -EBADMSG);
	CHECK_STR(e.msg, "impossible base limit");
	memcpy(p, orig, len);
	put32(p + 80, 0);
	recrc(p, 0);
	CHECK_RC(vmb_sidecar_decode2(p, len, &out, NULL, &b, &e), -EBADMSG);
	CHECK_STR(e.msg, "must have a base) at offset 80");
	memcpy(p, orig, len);
	p[130] = 1;
	recrc(p, 0);
	CHECK_RC(vmb_sidecar_decode2(p, len, &out, NULL, &b, &e), -EBADMSG);
	CHECK_STR(e.msg, "non-zero padding at offset 130");
	/* version 1 with a base field set is corrupt too */
	free(buf);
	REQUIRE(vmb_sidecar_encode2(&m, &sample_stamp, NULL, &buf, &len, NULL) == 0);
	p = buf;
	CHECK_EQ(get32(p + 8), 1);
	CHECK_RC(vmb_sidecar_decode2(buf, len, &out, &s, &b, &e), 0);
	CHECK(b.id[0] == '\0');
	p[100] = '1';
	recrc(p, 0);
	CHECK_RC(vmb_sidecar_decode2(p, len, &out, NULL, &b, &e), -EBADMSG);
	free(orig);
	free(buf);
	vmb_blockmap_destroy(&m);
	vmb_blockmap_destroy(&out);
}

/* Files: a save under another limit writes a whole new base (the journal cannot
 * change the header); load2 gives the last committed map of a journal that ends in a
 * BEGIN, with -ESTALE; the readers without a base refuse version 2. */
static void test_v2_files(void)
{
	const char *name = "00000000000000aa.map";
	struct vmb_blockmap m, dirty, back;
	struct vmb_sidecar_pos pos, p2;
	struct vmb_baseref b = sample_base, got;
	struct vmb_stamp s1 = sample_stamp, s2 = sample_stamp, s;
	struct vmb_err e;
	uint64_t data;
	struct stat st;

	vmb_blockmap_init(&m);
	vmb_blockmap_init(&dirty);
	vmb_blockmap_init(&back);
	memset(&pos, 0, sizeof(pos));
	vmb_err_clear(&e);
	vmb_blockmap_set(&m, 0, 4, VMB_DATA);
	REQUIRE(vmb_sidecar_save2(dirfd_, name, &m, NULL, &s1, &b, 1, &pos, &e) == 0);
	CHECK(pos.valid);
	CHECK(vmb_baseref_equal(&pos.under, &b));
	/* a change journalled */
	vmb_blockmap_set(&m, 10, 2, VMB_ZERO);
	vmb_blockmap_set(&dirty, 10, 2, VMB_DATA);
	s2.mtime_sec++;
	REQUIRE(vmb_sidecar_save2(dirfd_, name, &m, &dirty, &s2, &b, 1, &pos, &e) == 0);
	CHECK(pos.jlen > 0);
	CHECK_RC(vmb_sidecar_load2(dirfd_, name, &back, &s, &got, &p2, &e), 0);
	CHECK(vmb_blockmap_equal(&back, &m));
	CHECK(vmb_stamp_equal(&s, &s2));
	CHECK(vmb_baseref_equal(&got, &b));
	CHECK(p2.valid && vmb_baseref_equal(&p2.under, &b));
	/* version 1 readers refuse */
	CHECK_RC(vmb_sidecar_read(dirfd_, name, &back, &s, &e), -EPROTONOSUPPORT);
	CHECK_RC(vmb_sidecar_peek(dirfd_, name, &s, &data), -EPROTONOSUPPORT);
	CHECK_RC(vmb_sidecar_peek2(dirfd_, name, &s, &data, &got), 0);
	CHECK_EQ(data, 4);
	CHECK(vmb_baseref_equal(&got, &b));
	/* a lower limit: a whole new base (no journal left) */
	b.limit = 5;
	vmb_blockmap_destroy(&dirty);
	vmb_blockmap_set(&m, 20, 1, VMB_ZERO);
	vmb_blockmap_set(&dirty, 20, 1, VMB_DATA);
	REQUIRE(vmb_sidecar_save2(dirfd_, name, &m, &dirty, &s2, &b, 1, &pos, &e) == 0);
	CHECK_EQ(pos.jlen, 0);
	CHECK(fstatat(dirfd_, "00000000000000aa.jnl", &st, 0) < 0 && errno == ENOENT);
	CHECK_RC(vmb_sidecar_load2(dirfd_, name, &back, &s, &got, &p2, &e), 0);
	CHECK_EQ(got.limit, 5);
	CHECK(vmb_blockmap_equal(&back, &m));
	/* a change begun, never committed: -ESTALE, with the committed map */
	REQUIRE(vmb_sidecar_begin(dirfd_, name, &pos, &e) == 0);
	vmb_blockmap_destroy(&back);
	CHECK_RC(vmb_sidecar_load2(dirfd_, name, &back, &s, &got, &p2, &e), -ESTALE);
	CHECK(vmb_blockmap_equal(&back, &m));
	CHECK(vmb_stamp_equal(&s, &s2));
	CHECK_EQ(got.limit, 5);
	CHECK(!p2.valid);
	/* the old reader leaves its map alone on -ESTALE */
	vmb_blockmap_destroy(&back);
	sentinel(&back);
	CHECK_RC(vmb_sidecar_load(dirfd_, name, &back, &s, NULL, &e), -ESTALE);
	CHECK(is_sentinel(&back));
	/* back to no base: version 1 again */
	vmb_blockmap_destroy(&dirty);
	REQUIRE(vmb_sidecar_save2(dirfd_, name, &m, &dirty, &s2, NULL, 1, &pos, &e) == 0);
	CHECK_RC(vmb_sidecar_read(dirfd_, name, &back, &s, &e), 0);
	CHECK(vmb_blockmap_equal(&back, &m));
	vmb_sidecar_remove(dirfd_, name, NULL);
	vmb_blockmap_destroy(&m);
	vmb_blockmap_destroy(&dirty);
	vmb_blockmap_destroy(&back);
}

/* Another process (another mount) saves a whole new base over the one a writer
 * loaded: the writer's BEGIN and COMMIT must not go into a journal that names the
 * old base (every reader ignores it: the commit would be lost, and the map on disk
 * would stay the other process's). The writer finds out and saves whole. */
static void test_base_replaced(void)
{
	const char *name = "00000000000000ab.map";
	struct vmb_blockmap mine, theirs, dirty, back;
	struct vmb_sidecar_pos pos, other;
	struct vmb_stamp s1 = sample_stamp, s2 = sample_stamp, s;
	struct vmb_err e;

	vmb_blockmap_init(&mine);
	vmb_blockmap_init(&theirs);
	vmb_blockmap_init(&dirty);
	vmb_blockmap_init(&back);
	memset(&pos, 0, sizeof(pos));
	memset(&other, 0, sizeof(other));
	vmb_err_clear(&e);
	vmb_blockmap_set(&mine, 0, 4, VMB_DATA);
	vmb_blockmap_set(&mine, 8, 1, VMB_DATA);
	REQUIRE(vmb_sidecar_save(dirfd_, name, &mine, NULL, &s1, 1, &pos, &e) == 0);
	/* both load it; the other saves its own view whole (same stamp, one block
	 * less: a map rebuilt from the backing file) */
	CHECK_RC(vmb_sidecar_load(dirfd_, name, &back, &s, &pos, &e), 0);
	CHECK_RC(vmb_sidecar_load(dirfd_, name, &theirs, &s, &other, &e), 0);
	vmb_blockmap_set(&theirs, 8, 1, VMB_ABSENT);
	REQUIRE(vmb_sidecar_save(dirfd_, name, &theirs, NULL, &s1, 1, &other, &e) == 0);
	/* the writer's first change: its BEGIN cannot go to the journal of a base
	 * that is gone */
	CHECK_RC(vmb_sidecar_begin(dirfd_, name, &pos, &e), -ESTALE);
	CHECK(strstr(e.msg, "replaced by another process") != NULL);
	CHECK(!pos.valid);
	/* its commit is a whole save, and what is on disk is the writer's map */
	vmb_blockmap_set(&mine, 20, 2, VMB_DATA);
	vmb_blockmap_set(&dirty, 20, 2, VMB_DATA);
	s2.mtime_sec++;
	REQUIRE(vmb_sidecar_save(dirfd_, name, &mine, &dirty, &s2, 1, &pos, &e) == 0);
	CHECK(pos.valid);
	vmb_blockmap_destroy(&back);
	CHECK_RC(vmb_sidecar_load(dirfd_, name, &back, &s, NULL, &e), 0);
	CHECK(vmb_blockmap_equal(&back, &mine));
	CHECK(vmb_stamp_equal(&s, &s2));
	/* the same with a journal already there: the other saves whole between two
	 * commits of the writer, whose next commit is then whole */
	CHECK_RC(vmb_sidecar_begin(dirfd_, name, &pos, &e), 0);
	vmb_blockmap_destroy(&dirty);
	vmb_blockmap_set(&mine, 30, 1, VMB_DATA);
	vmb_blockmap_set(&dirty, 30, 1, VMB_DATA);
	REQUIRE(vmb_sidecar_save(dirfd_, name, &mine, &dirty, &s2, 1, &pos, &e) == 0);
	CHECK(pos.jlen > 0);
	CHECK_RC(vmb_sidecar_load(dirfd_, name, &theirs, &s, &other, &e), 0);
	REQUIRE(vmb_sidecar_save(dirfd_, name, &theirs, NULL, &s1, 1, &other, &e) == 0);
	vmb_blockmap_destroy(&dirty);
	vmb_blockmap_set(&mine, 40, 1, VMB_DATA);
	vmb_blockmap_set(&dirty, 40, 1, VMB_DATA);
	REQUIRE(vmb_sidecar_save(dirfd_, name, &mine, &dirty, &s2, 1, &pos, &e) == 0);
	vmb_blockmap_destroy(&back);
	CHECK_RC(vmb_sidecar_load(dirfd_, name, &back, &s, NULL, &e), 0);
	CHECK(vmb_blockmap_equal(&back, &mine));
	CHECK(vmb_stamp_equal(&s, &s2));
	vmb_sidecar_remove(dirfd_, name, NULL);
	vmb_blockmap_destroy(&mine);
	vmb_blockmap_destroy(&theirs);
	vmb_blockmap_destroy(&dirty);
	vmb_blockmap_destroy(&back);
}

static void remove_tmpdir(void)
{
	int fd = openat(dirfd_, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;

	while (d && (de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			if (unlinkat(dirfd_, de->d_name, 0) < 0)
				unlinkat(dirfd_, de->d_name, AT_REMOVEDIR);
	if (d)
		closedir(d);
	close(dirfd_);
	rmdir(tmpdir);
}

int main(void)
{
	RUN(test_name);
	RUN(test_roundtrip);
	RUN(test_bad_checksum);
	RUN(test_truncated);
	RUN(test_bad_header);
	RUN(test_bad_records);
	if (make_tmpdir() < 0) {
		fprintf(stderr, "cannot set up a temporary directory (%s)\n", tmpdir);
		return 99;
	}
	RUN(test_write_read);
	RUN(test_stamp);
	RUN(test_scan);
	RUN(test_v2_format);
	RUN(test_v2_files);
	RUN(test_base_replaced);
	remove_tmpdir();
	return harness_exit("test_sidecar");
}
