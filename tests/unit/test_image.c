/* test_image.c - unit tests of images over sparse backing files (src/image/image.c),
 * without a mount: block maps rebuilt from holes, reads and writes, zero writes,
 * truncate, fallocate, SEEK_DATA/SEEK_HOLE, copy_range, persistence of the map in
 * the sidecar, stale and damaged sidecars. */
#include "config.h"
#include "image/image.h"
#include "map/sidecar.h"
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BS 4096u

static char tmpdir[4096];
static int tdir = -1;      /* the temporary directory */
static int mapfd = -1;     /* its "maps" subdirectory */

/* ---- helpers ---- */

static unsigned char pat(uint64_t off, unsigned seed)
{
	return (unsigned char)((off * 131 + seed * 7 + (off >> 12)) % 251 + 1);
}

static void fill(unsigned char *p, size_t n, uint64_t off, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = pat(off + i, seed);
}

static int new_backing(const char *name, uint64_t size)
{
	int fd = openat(tdir, name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (fd >= 0 && ftruncate(fd, (off_t)size) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Open an image over fd; prints the message on failure. */
static struct vmb_image *img_on(int fd, const char *name)
{
	struct vmb_image *img = NULL;
	struct vmb_err e;
	int r;

	vmb_err_clear(&e);
	r = vmb_image_open(&img, fd, mapfd, name, NULL, &e);
	if (r < 0) {
		fprintf(stderr, "    vmb_image_open(%s): %d %s\n", name, r, e.msg);
		close(fd);
		return NULL;
	}
	return img;
}

static struct vmb_image *img_new(const char *name, uint64_t size)
{
	int fd = new_backing(name, size);

	return fd < 0 ? NULL : img_on(fd, name);
}

static struct vmb_image *img_reopen(const char *name, int flags)
{
	int fd = openat(tdir, name, flags | O_CLOEXEC);

	return fd < 0 ? NULL : img_on(fd, name);
}

static uint64_t st_blocks(struct vmb_image *img)
{
	struct stat st;

	if (fstat(vmb_image_fd(img), &st) < 0)
		return UINT64_MAX;
	return (uint64_t)st.st_blocks;
}

static uint64_t backing_size(struct vmb_image *img)
{
	struct stat st;

	if (fstat(vmb_image_fd(img), &st) < 0)
		return UINT64_MAX;
	return (uint64_t)st.st_size;
}

static enum vmb_bstate bstate(struct vmb_image *img, uint64_t blk)
{
	struct vmb_blockmap m;
	enum vmb_bstate st;

	vmb_blockmap_init(&m);
	if (vmb_image_map_copy(img, &m) < 0)
		return (enum vmb_bstate)99;
	st = vmb_blockmap_get(&m, blk, NULL);
	vmb_blockmap_destroy(&m);
	return st;
}

/* 1 if no extent of the image's map reaches block nblocks or beyond, and the map
 * passes its own invariant check. */
static int map_within(struct vmb_image *img, uint64_t nblocks)
{
	struct vmb_blockmap m;
	uint64_t f;
	int ok;

	vmb_blockmap_init(&m);
	if (vmb_image_map_copy(img, &m) < 0)
		return 0;
	ok = vmb_blockmap_check(&m) == 0 &&
	     vmb_blockmap_next(&m, nblocks, VMB_M_DATA | VMB_M_ZERO, &f) == -ENXIO;
	vmb_blockmap_destroy(&m);
	return ok;
}

/* The image reads exactly model[0, size). */
static int same_content(struct vmb_image *img, const unsigned char *model, uint64_t size)
{
	static unsigned char buf[1 << 16];
	uint64_t off = 0;

	if (vmb_image_size(img) != size)
		return 0;
	while (off < size) {
		size_t n = size - off > sizeof(buf) ? sizeof(buf) : (size_t)(size - off);
		int holes = -1;
		ssize_t r;

		memset(buf, 0xA5, n);
		r = vmb_image_read(img, buf, n, off, &holes, NULL);
		if (r != (ssize_t)n)
			return 0;
		if (holes == 1) {
			for (size_t i = 0; i < n; i++)
				if (model[off + i])
					return 0;
		} else if (holes != 0 || memcmp(buf, model + off, n) != 0) {
			return 0;
		}
		off += n;
	}
	return 1;
}

static int sidecar_exists(uint64_t ino)
{
	char name[VMB_SIDECAR_NAME_MAX];

	vmb_sidecar_name(ino, name);
	return faccessat(mapfd, name, F_OK, 0) == 0;
}

static uint64_t ino_of(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 ? (uint64_t)st.st_ino : 0;
}

static ssize_t wr(struct vmb_image *img, const void *buf, size_t len, uint64_t off)
{
	struct vmb_err e;
	ssize_t r;

	vmb_err_clear(&e);
	r = vmb_image_write(img, buf, len, off, &e);
	if (r != (ssize_t)len)
		fprintf(stderr, "    write(%zu at %llu) = %zd: %s\n", len,
			(unsigned long long)off, r, e.msg);
	return r;
}

/* ---- tests ---- */

static void test_open_fresh_sparse(void)
{
	struct vmb_blockmap loaded, m;
	struct vmb_image *img;
	unsigned char *model, buf[5000];
	uint64_t size = 0, f;
	int fd, rebuilt = -1, r;
	struct vmb_err e;

	model = calloc(1, 1 << 20);
	REQUIRE(model);
	fd = new_backing("fresh.img", 1 << 20);
	if (!CHECK(fd >= 0)) {
		free(model);
		return;
	}
	fill(buf, 100, 8192 + 10, 1);
	CHECK(pwrite(fd, buf, 100, 8192 + 10) == 100);
	memcpy(model + 8192 + 10, buf, 100);
	fill(buf, 5000, 524288 + 100, 2);
	CHECK(pwrite(fd, buf, 5000, 524288 + 100) == 5000);
	memcpy(model + 524288 + 100, buf, 5000);
	buf[0] = 0x5a;
	CHECK(pwrite(fd, buf, 1, (1 << 20) - 1) == 1);
	model[(1 << 20) - 1] = 0x5a;

	/* No sidecar: the map is rebuilt from the holes. */
	vmb_blockmap_init(&loaded);
	vmb_err_clear(&e);
	CHECK_RC(vmb_image_load_map(fd, mapfd, "fresh.img", &loaded, &size, &rebuilt, &e), 0);
	CHECK_EQ(rebuilt, 1);
	CHECK_EQ(size, 1 << 20);
	CHECK_EQ(vmb_blockmap_get(&loaded, 2, NULL), VMB_DATA);
	CHECK_EQ(vmb_blockmap_get(&loaded, 128, NULL), VMB_DATA);
	CHECK_EQ(vmb_blockmap_get(&loaded, 129, NULL), VMB_DATA);
	CHECK_EQ(vmb_blockmap_get(&loaded, 255, NULL), VMB_DATA);
	CHECK_EQ(vmb_blockmap_get(&loaded, 0, NULL), VMB_ZERO);
	CHECK_EQ(vmb_blockmap_get(&loaded, 3, NULL), VMB_ZERO);
	CHECK_EQ(vmb_blockmap_get(&loaded, 127, NULL), VMB_ZERO);
	CHECK_EQ(vmb_blockmap_get(&loaded, 254, NULL), VMB_ZERO);
	CHECK_EQ(vmb_blockmap_get(&loaded, 256, NULL), VMB_ABSENT);
	CHECK_EQ(loaded.data_blocks, 4);
	CHECK_EQ(loaded.zero_blocks, 252);
	CHECK_RC(vmb_blockmap_next(&loaded, 256, VMB_M_DATA | VMB_M_ZERO, &f), -ENXIO);
	CHECK(!sidecar_exists(ino_of(fd)));

	img = img_on(fd, "fresh.img");
	if (CHECK(img != NULL)) {
		vmb_blockmap_init(&m);
		CHECK_RC(vmb_image_map_copy(img, &m), 0);
		CHECK(vmb_blockmap_equal(&m, &loaded));
		vmb_blockmap_destroy(&m);
		CHECK_EQ(vmb_image_size(img), 1 << 20);
		CHECK_EQ(vmb_image_alloc_bytes(img), 4 * BS);
		CHECK(vmb_image_writable(img));
		CHECK(same_content(img, model, 1 << 20));
		/* The rebuilt map is saved when the image closes. */
		f = ino_of(vmb_image_fd(img));
		vmb_image_close(img);
		CHECK(sidecar_exists(f));
		fd = openat(tdir, "fresh.img", O_RDONLY | O_CLOEXEC);
		vmb_blockmap_init(&m);
		rebuilt = -1;
		r = vmb_image_load_map(fd, mapfd, "fresh.img", &m, &size, &rebuilt, NULL);
		CHECK_RC(r, 0);
		CHECK_EQ(rebuilt, 0);
		CHECK(vmb_blockmap_equal(&m, &loaded));
		vmb_blockmap_destroy(&m);
		close(fd);
	}
	vmb_blockmap_destroy(&loaded);
	free(model);
}

static void test_unaligned_rw(void)
{
	static const struct { uint64_t off; size_t len; } w[] = {
		{ 4095, 2 }, { 1, 1 }, { 10000, 70001 }, { 200000, 3 }, { 4090, 20 },
		{ 8191, 4097 }, { 199999, 2 }, { 65536, 4096 },
	};
	static const struct { uint64_t off; size_t len; } rd[] = {
		{ 0, 1 }, { 4095, 2 }, { 3, 12345 }, { 9999, 70003 }, { 100000, 100003 },
		{ 199998, 10 }, { 200002, 1 }, { 4097, 8191 },
	};
	unsigned char *model, *buf, *rbuf;
	struct vmb_image *img;
	uint64_t size = 0;
	size_t i;

	model = calloc(1, 300000);
	buf = malloc(100000);
	rbuf = malloc(200000);
	img = img_new("rw.img", 0);
	if (!CHECK(model && buf && rbuf && img))
		goto out;
	for (i = 0; i < sizeof(w) / sizeof(w[0]); i++) {
		fill(buf, w[i].len, w[i].off, (unsigned)i + 3);
		CHECK_EQ(wr(img, buf, w[i].len, w[i].off), w[i].len);
		memcpy(model + w[i].off, buf, w[i].len);
		if (w[i].off + w[i].len > size)
			size = w[i].off + w[i].len;
		CHECK_EQ(vmb_image_size(img), size);
		CHECK_EQ(backing_size(img), size);
		CHECK(same_content(img, model, size));
	}
	for (i = 0; i < sizeof(rd) / sizeof(rd[0]); i++) {
		size_t want = rd[i].off >= size ? 0 :
			      (size - rd[i].off < rd[i].len ? (size_t)(size - rd[i].off) : rd[i].len);
		ssize_t r;

		memset(rbuf, 0xEE, rd[i].len);
		r = vmb_image_read(img, rbuf, rd[i].len, rd[i].off, NULL, NULL);
		CHECK_EQ(r, want);
		CHECK(memcmp(rbuf, model + rd[i].off, want) == 0);
	}
	CHECK_EQ(vmb_image_read(img, rbuf, 10, size, NULL, NULL), 0);
	CHECK_EQ(vmb_image_read(img, rbuf, 10, size + 100000, NULL, NULL), 0);
	CHECK_EQ(vmb_image_read(img, rbuf, 0, 0, NULL, NULL), 0);
	CHECK_EQ(vmb_image_write(img, buf, 0, 5, NULL), 0);
	CHECK_EQ(vmb_image_size(img), size);
	/* The gap between 80001 and 199999 was never written: zeros, not data. */
	CHECK_EQ(bstate(img, 30), VMB_ZERO);
	CHECK_EQ(bstate(img, 47), VMB_ZERO);
	CHECK_EQ(bstate(img, 0), VMB_DATA);
	CHECK_EQ(bstate(img, 48), VMB_DATA);   /* 199999 */
	CHECK_EQ(bstate(img, 16), VMB_DATA);   /* 65536 */
	/* blocks 0..19 (writes up to 80001 and 4090..8191+4097) + 48 */
	CHECK_EQ(vmb_image_alloc_bytes(img), 21 * BS);
	CHECK(map_within(img, (size + BS - 1) / BS));
	/* writes far past the end are refused */
	CHECK_RC((int)vmb_image_write(img, buf, 10, UINT64_MAX - 5, NULL), -EFBIG);
	CHECK_EQ(vmb_image_size(img), size);
out:
	vmb_image_close(img);
	free(model);
	free(buf);
	free(rbuf);
}

static void test_zero_writes(void)
{
	unsigned char *model, *buf, zeros[3 * BS], b[200];
	struct vmb_image *img;
	uint64_t b0, b1;
	int fd;

	memset(zeros, 0, sizeof(zeros));
	model = calloc(1, 64 * BS);
	buf = malloc(3 * BS);
	img = img_new("zero.img", 0);
	if (!CHECK(model && buf && img))
		goto out;
	fill(buf, 3 * BS, 0, 9);
	CHECK_EQ(wr(img, buf, 3 * BS, 0), 3 * BS);
	memcpy(model, buf, 3 * BS);
	fd = vmb_image_fd(img);
	CHECK(fsync(fd) == 0);
	b0 = st_blocks(img);
	CHECK(b0 >= 3 * BS / 512);

	/* whole zero blocks past the end: size grows, nothing allocated */
	CHECK_EQ(wr(img, zeros, 2 * BS, 8 * BS), 2 * BS);
	CHECK_EQ(vmb_image_size(img), 10 * BS);
	CHECK_EQ(backing_size(img), 10 * BS);
	CHECK(fsync(fd) == 0);
	CHECK_EQ(st_blocks(img), b0);
	CHECK_EQ(bstate(img, 8), VMB_ZERO);
	CHECK_EQ(bstate(img, 9), VMB_ZERO);
	CHECK_EQ(vmb_image_alloc_bytes(img), 3 * BS);
	CHECK(same_content(img, model, 10 * BS));

	/* a whole zero block over data: becomes a hole */
	CHECK_EQ(wr(img, zeros, BS, BS), BS);
	memset(model + BS, 0, BS);
	CHECK_EQ(bstate(img, 1), VMB_ZERO);
	CHECK(fsync(fd) == 0);
	b1 = st_blocks(img);
	CHECK(b1 + BS / 512 <= b0);
	CHECK_EQ(vmb_image_alloc_bytes(img), 2 * BS);
	CHECK(same_content(img, model, 10 * BS));

	/* a partial zero write into a data block is written */
	CHECK_EQ(wr(img, zeros, 100, 50), 100);
	memset(model + 50, 0, 100);
	CHECK_EQ(bstate(img, 0), VMB_DATA);
	memset(b, 0xff, sizeof(b));
	CHECK(pread(fd, b, 200, 0) == 200);
	CHECK(memcmp(b, model, 200) == 0);
	CHECK(same_content(img, model, 10 * BS));

	/* a partial zero write into a hole changes nothing */
	CHECK_EQ(wr(img, zeros, 1000, 5 * BS + 7), 1000);
	CHECK_EQ(bstate(img, 5), VMB_ZERO);
	CHECK(fsync(fd) == 0);
	CHECK_EQ(st_blocks(img), b1);

	/* unaligned zeros over data: partial edge written, whole blocks become holes */
	fill(buf, 3 * BS, 2 * BS, 10);
	CHECK_EQ(wr(img, buf, 3 * BS, 2 * BS), 3 * BS);   /* blocks 2..4 data */
	memcpy(model + 2 * BS, buf, 3 * BS);
	CHECK_EQ(wr(img, zeros, 3 * BS - 100, 2 * BS + 100), 3 * BS - 100);
	memset(model + 2 * BS + 100, 0, 3 * BS - 100);
	CHECK_EQ(bstate(img, 2), VMB_DATA);
	CHECK_EQ(bstate(img, 3), VMB_ZERO);
	CHECK_EQ(bstate(img, 4), VMB_ZERO);
	CHECK(same_content(img, model, 10 * BS));

	/* a zero write that extends the file into a new partial block */
	CHECK(fsync(fd) == 0);
	b1 = st_blocks(img);
	CHECK_EQ(wr(img, zeros, 100, 10 * BS), 100);
	CHECK_EQ(vmb_image_size(img), 10 * BS + 100);
	CHECK_EQ(backing_size(img), 10 * BS + 100);
	CHECK(fsync(fd) == 0);
	CHECK_EQ(st_blocks(img), b1);
	CHECK_EQ(bstate(img, 10), VMB_ZERO);
	CHECK(same_content(img, model, 10 * BS + 100));
	CHECK(map_within(img, 11));
out:
	vmb_image_close(img);
	free(model);
	free(buf);
}

static void test_holes_only(void)
{
	unsigned char buf[4 * BS], data[BS];
	struct vmb_image *img = img_new("holes.img", 4 * BS);
	int holes;
	size_t i;

	REQUIRE(img);
	fill(data, BS, BS, 4);
	CHECK_EQ(wr(img, data, BS, BS), BS);

	memset(buf, 0xAA, sizeof(buf));
	holes = -1;
	CHECK_EQ(vmb_image_read(img, buf, BS, 0, &holes, NULL), BS);
	CHECK_EQ(holes, 1);
	CHECK(buf[0] == 0xAA && buf[BS - 1] == 0xAA);   /* untouched */

	holes = -1;
	CHECK_EQ(vmb_image_read(img, buf, 2 * BS, 2 * BS, &holes, NULL), 2 * BS);
	CHECK_EQ(holes, 1);

	/* clipped at the end of the file, still all holes */
	holes = -1;
	CHECK_EQ(vmb_image_read(img, buf, 10000, 3 * BS + 10, &holes, NULL), BS - 10);
	CHECK_EQ(holes, 1);

	/* a range that touches data: filled */
	memset(buf, 0xAA, sizeof(buf));
	holes = -1;
	CHECK_EQ(vmb_image_read(img, buf, 200, BS - 100, &holes, NULL), 200);
	CHECK_EQ(holes, 0);
	for (i = 0; i < 100; i++)
		if (buf[i] != 0)
			break;
	CHECK_EQ(i, 100);
	CHECK(memcmp(buf + 100, data, 100) == 0);

	/* the last byte of a range in data */
	holes = -1;
	CHECK_EQ(vmb_image_read(img, buf, BS + 1, 0, &holes, NULL), BS + 1);
	CHECK_EQ(holes, 0);
	CHECK(buf[BS] == data[0]);

	/* without holes_only, holes are filled with zeros */
	memset(buf, 0xAA, sizeof(buf));
	CHECK_EQ(vmb_image_read(img, buf, BS, 2 * BS, NULL, NULL), BS);
	for (i = 0; i < BS; i++)
		if (buf[i] != 0)
			break;
	CHECK_EQ(i, BS);

	/* a block overwritten with zeros is a hole again */
	memset(data, 0, sizeof(data));
	CHECK_EQ(wr(img, data, BS, BS), BS);
	holes = -1;
	CHECK_EQ(vmb_image_read(img, buf, 4 * BS, 0, &holes, NULL), 4 * BS);
	CHECK_EQ(holes, 1);
	vmb_image_close(img);
}

static void test_truncate(void)
{
	unsigned char *model = calloc(1, 64 * BS), buf[3 * BS + 100];
	struct vmb_image *img = img_new("trunc.img", 0);
	struct vmb_blockmap m;
	uint64_t f;

	if (!CHECK(model && img))
		goto out;
	fill(buf, sizeof(buf), 0, 5);
	CHECK_EQ(wr(img, buf, sizeof(buf), 0), sizeof(buf));
	memcpy(model, buf, sizeof(buf));

	CHECK_RC(vmb_image_truncate(img, 5000, NULL), 0);
	CHECK_EQ(vmb_image_size(img), 5000);
	CHECK_EQ(backing_size(img), 5000);
	CHECK(map_within(img, 2));
	CHECK_EQ(vmb_image_alloc_bytes(img), 2 * BS);
	CHECK(same_content(img, model, 5000));
	memset(model + 5000, 0, sizeof(buf) - 5000);

	/* grow again: what was cut off reads as zeros */
	CHECK_RC(vmb_image_truncate(img, 20000, NULL), 0);
	CHECK_EQ(vmb_image_size(img), 20000);
	CHECK_EQ(backing_size(img), 20000);
	CHECK(same_content(img, model, 20000));
	CHECK_EQ(bstate(img, 1), VMB_DATA);
	CHECK_EQ(bstate(img, 2), VMB_ZERO);
	CHECK_EQ(bstate(img, 4), VMB_ZERO);
	CHECK_EQ(bstate(img, 5), VMB_ABSENT);
	CHECK_EQ(vmb_image_alloc_bytes(img), 2 * BS);

	/* same size: nothing changes */
	CHECK_RC(vmb_image_truncate(img, 20000, NULL), 0);
	CHECK(same_content(img, model, 20000));

	/* to a block boundary, then to zero */
	CHECK_RC(vmb_image_truncate(img, BS, NULL), 0);
	CHECK(map_within(img, 1));
	CHECK(same_content(img, model, BS));
	CHECK_RC(vmb_image_truncate(img, 0, NULL), 0);
	CHECK_EQ(vmb_image_size(img), 0);
	vmb_blockmap_init(&m);
	CHECK_RC(vmb_image_map_copy(img, &m), 0);
	CHECK_EQ(m.n, 0);
	CHECK_RC(vmb_blockmap_next(&m, 0, VMB_M_DATA | VMB_M_ZERO, &f), -ENXIO);
	vmb_blockmap_destroy(&m);
	CHECK_EQ(vmb_image_alloc_bytes(img), 0);
	CHECK_RC(vmb_image_truncate(img, BS + 1, NULL), 0);
	memset(model, 0, 2 * BS);
	CHECK(same_content(img, model, BS + 1));
	/* Past 2^63 bytes: refused, nothing changed. (-EFBIG for 2^63 - 1; for sizes
	 * within 4095 bytes of 2^64 the size check overflows and the kernel's -EINVAL
	 * comes back instead.) */
	CHECK(vmb_image_truncate(img, UINT64_MAX, NULL) < 0);
	CHECK(vmb_image_truncate(img, UINT64_C(1) << 63, NULL) < 0);
	CHECK_EQ(vmb_image_size(img), BS + 1);
	CHECK_EQ(backing_size(img), BS + 1);
out:
	vmb_image_close(img);
	free(model);
}

#define FA(img, mode, off, len) vmb_image_fallocate((img), (mode), (off), (len), NULL)

static void test_fallocate(void)
{
	unsigned char *model = calloc(1, 256 * BS), *buf = malloc(8 * BS);
	struct vmb_image *img = img_new("falloc.img", 0);
	uint64_t b0, b1;
	int fd;

	if (!CHECK(model && buf && img))
		goto out;
	fd = vmb_image_fd(img);
	fill(buf, 8 * BS, 0, 6);
	CHECK_EQ(wr(img, buf, 8 * BS, 0), 8 * BS);
	memcpy(model, buf, 8 * BS);
	CHECK(fsync(fd) == 0);
	b0 = st_blocks(img);

	/* PUNCH_HOLE|KEEP_SIZE, unaligned: edges zeroed, whole blocks freed */
	CHECK_RC(FA(img, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, BS + 100, 3 * BS), 0);
	memset(model + BS + 100, 0, 3 * BS);
	CHECK_EQ(vmb_image_size(img), 8 * BS);
	CHECK_EQ(backing_size(img), 8 * BS);
	CHECK_EQ(bstate(img, 1), VMB_DATA);
	CHECK_EQ(bstate(img, 2), VMB_ZERO);
	CHECK_EQ(bstate(img, 3), VMB_ZERO);
	CHECK_EQ(bstate(img, 4), VMB_DATA);
	CHECK_EQ(vmb_image_alloc_bytes(img), 6 * BS);
	CHECK(fsync(fd) == 0);
	CHECK(st_blocks(img) + 2 * BS / 512 <= b0);
	CHECK(same_content(img, model, 8 * BS));

	/* a punch past the end does not change the size */
	CHECK_RC(FA(img, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 30000, 100000), 0);
	memset(model + 30000, 0, 8 * BS - 30000);
	CHECK_EQ(vmb_image_size(img), 8 * BS);
	CHECK_EQ(backing_size(img), 8 * BS);
	CHECK(same_content(img, model, 8 * BS));

	/* ZERO_RANGE inside */
	CHECK_RC(FA(img, FALLOC_FL_ZERO_RANGE, 0, BS), 0);
	memset(model, 0, BS);
	CHECK_EQ(bstate(img, 0), VMB_ZERO);
	CHECK_EQ(vmb_image_size(img), 8 * BS);
	CHECK(same_content(img, model, 8 * BS));

	/* ZERO_RANGE past the end grows the file */
	CHECK_RC(FA(img, FALLOC_FL_ZERO_RANGE, 32000, 10000), 0);
	memset(model + 32000, 0, 10000);
	CHECK_EQ(vmb_image_size(img), 42000);
	CHECK_EQ(backing_size(img), 42000);
	CHECK(same_content(img, model, 42000));
	CHECK(map_within(img, (42000 + BS - 1) / BS));

	/* ZERO_RANGE|KEEP_SIZE past the end does not */
	CHECK_RC(FA(img, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, 40000, 100000), 0);
	memset(model + 40000, 0, 2000);
	CHECK_EQ(vmb_image_size(img), 42000);
	CHECK_EQ(backing_size(img), 42000);
	CHECK(same_content(img, model, 42000));

	/* mode 0 past the end: size grows, space reserved, contents zero */
	CHECK(fsync(fd) == 0);
	b1 = st_blocks(img);
	CHECK_RC(FA(img, 0, 50000, 10000), 0);
	CHECK_EQ(vmb_image_size(img), 60000);
	CHECK_EQ(backing_size(img), 60000);
	CHECK(st_blocks(img) >= b1 + 2 * BS / 512);
	CHECK_EQ(bstate(img, 12), VMB_DATA);
	CHECK_EQ(bstate(img, 14), VMB_DATA);
	CHECK_EQ(bstate(img, 11), VMB_ZERO);
	CHECK(same_content(img, model, 60000));
	CHECK(map_within(img, (60000 + BS - 1) / BS));

	/* mode 0 inside over data keeps the data */
	CHECK_RC(FA(img, 0, 4 * BS, 2 * BS), 0);
	CHECK(same_content(img, model, 60000));

	/* KEEP_SIZE past the end: allocated, size unchanged */
	b1 = st_blocks(img);
	CHECK_RC(FA(img, FALLOC_FL_KEEP_SIZE, 60000, 40000), 0);
	CHECK_EQ(vmb_image_size(img), 60000);
	CHECK_EQ(backing_size(img), 60000);
	CHECK(st_blocks(img) >= b1 + 8 * BS / 512);
	CHECK(map_within(img, (60000 + BS - 1) / BS));
	CHECK(same_content(img, model, 60000));

	/* what is not supported */
	CHECK_RC(FA(img, FALLOC_FL_COLLAPSE_RANGE, 0, BS), -EOPNOTSUPP);
	CHECK_RC(FA(img, FALLOC_FL_INSERT_RANGE, 0, BS), -EOPNOTSUPP);
	CHECK_RC(FA(img, FALLOC_FL_PUNCH_HOLE, 0, BS), -EOPNOTSUPP);
	CHECK_RC(FA(img, 0, 0, 0), -EINVAL);
	CHECK_EQ(vmb_image_size(img), 60000);
	CHECK(same_content(img, model, 60000));
out:
	vmb_image_close(img);
	free(model);
	free(buf);
}

/* Zeros written into part of a data block make the block ZERO when its other bytes
 * (the old ones, read from the backing) are zeros too: restic writes zero runs at
 * unaligned offsets into a file it fallocated, and each run's edge blocks must not
 * stay allocated. */
static void test_zero_edges(void)
{
	const uint64_t size = 16 * BS + 300;
	unsigned char *model = calloc(1, 32 * BS), *buf = malloc(4 * BS), *zeros = calloc(1, 4 * BS);
	struct vmb_image *img = img_new("zedge.img", 0);
	uint64_t b0;
	int fd;

	if (!CHECK(model && buf && zeros && img))
		goto out;
	fd = vmb_image_fd(img);
	/* fallocate: every block DATA, all zeros in the backing */
	CHECK_RC(FA(img, 0, 0, size), 0);
	CHECK_EQ(vmb_image_alloc_bytes(img), 17 * BS);

	/* unaligned zeros over blocks 0..3: the edge blocks 0 and 3 become ZERO too */
	CHECK_EQ(wr(img, zeros, 3 * BS + 100, 100), 3 * BS + 100);
	CHECK_EQ(bstate(img, 0), VMB_ZERO);
	CHECK_EQ(bstate(img, 1), VMB_ZERO);
	CHECK_EQ(bstate(img, 3), VMB_ZERO);
	CHECK_EQ(bstate(img, 4), VMB_DATA);
	CHECK_EQ(vmb_image_alloc_bytes(img), 13 * BS);

	/* zeros next to data: the block with data stays DATA, the other edge goes */
	fill(buf, 100, 5 * BS, 11);
	CHECK_EQ(wr(img, buf, 100, 5 * BS), 100);
	memcpy(model + 5 * BS, buf, 100);
	CHECK_EQ(wr(img, zeros, BS - 50, 5 * BS + 100), BS - 50);
	CHECK_EQ(bstate(img, 5), VMB_DATA);
	CHECK_EQ(bstate(img, 6), VMB_ZERO);

	/* zeros over the only data of a block (old bytes replaced): ZERO */
	fill(buf, 1000, 7 * BS + 1000, 12);
	CHECK_EQ(wr(img, buf, 1000, 7 * BS + 1000), 1000);
	CHECK_EQ(bstate(img, 7), VMB_DATA);
	CHECK_EQ(wr(img, zeros, 1000, 7 * BS + 1000), 1000);
	CHECK_EQ(bstate(img, 7), VMB_ZERO);

	/* data in the block's rest, past the new bytes: stays DATA, bytes exact */
	fill(buf, 10, 8 * BS + 4000, 13);
	CHECK_EQ(wr(img, buf, 10, 8 * BS + 4000), 10);
	memcpy(model + 8 * BS + 4000, buf, 10);
	CHECK_EQ(wr(img, zeros, 3000, 8 * BS + 500), 3000);
	CHECK_EQ(bstate(img, 8), VMB_DATA);

	/* the last, partial block, extended by the write: ZERO, size right */
	CHECK_EQ(wr(img, zeros, 400, 16 * BS + 100), 400);
	CHECK_EQ(vmb_image_size(img), 16 * BS + 500);
	CHECK_EQ(backing_size(img), 16 * BS + 500);
	CHECK_EQ(bstate(img, 16), VMB_ZERO);
	CHECK(map_within(img, 17));
	/* the last block again, data then zeros ending at the size: freed in the
	 * backing too (a punch ending at an unaligned size only zeroes) */
	fill(buf, 10, 16 * BS + 200, 14);
	CHECK_EQ(wr(img, buf, 10, 16 * BS + 200), 10);
	CHECK_EQ(bstate(img, 16), VMB_DATA);
	CHECK(fsync(fd) == 0);
	CHECK_EQ(wr(img, zeros, 350, 16 * BS + 150), 350);
	CHECK_EQ(bstate(img, 16), VMB_ZERO);

	CHECK_EQ(vmb_image_alloc_bytes(img), (17 - 7) * BS);
	CHECK(same_content(img, model, 16 * BS + 500));
	CHECK(fsync(fd) == 0);
	b0 = st_blocks(img);
	CHECK(b0 <= (17 - 7 + 1) * BS / 512);   /* + one block of ext4's extent tree */
	vmb_image_close(img);

	/* the holes are in the backing file: a rebuilt map agrees */
	{
		char scname[VMB_SIDECAR_NAME_MAX];
		int bfd = openat(tdir, "zedge.img", O_RDWR | O_CLOEXEC);
		if (!CHECK(bfd >= 0)) {
			img = NULL;
			goto out;
		}
		vmb_sidecar_name(ino_of(bfd), scname);
		close(bfd);
		unlinkat(mapfd, scname, 0);
	}
	img = img_reopen("zedge.img", O_RDWR);
	if (!CHECK(img))
		goto out;
	CHECK_EQ(bstate(img, 0), VMB_ZERO);
	CHECK_EQ(bstate(img, 3), VMB_ZERO);
	CHECK_EQ(bstate(img, 7), VMB_ZERO);
	CHECK_EQ(bstate(img, 16), VMB_ZERO);
	CHECK(same_content(img, model, 16 * BS + 500));
out:
	vmb_image_close(img);
	free(model);
	free(buf);
	free(zeros);
}

static void test_seek(void)
{
	/* data in blocks 2-3 and 10; size 20 blocks + 100 bytes */
	const uint64_t size = 20 * BS + 100;
	struct vmb_image *img = img_new("seek.img", size);
	unsigned char buf[2 * BS];
	uint64_t res;

	REQUIRE(img);
	fill(buf, 2 * BS, 0, 7);
	CHECK_EQ(wr(img, buf, 2 * BS, 2 * BS), 2 * BS);
	CHECK_EQ(wr(img, buf, 10, 10 * BS + 5), 10);

#define SEEK_IS(off, wh, want) do { res = 12345678; \
	CHECK_RC(vmb_image_seek(img, (off), (wh), &res, NULL), 0); CHECK_EQ(res, (want)); } while (0)
	SEEK_IS(0, SEEK_DATA, 2 * BS);
	SEEK_IS(2 * BS + 5, SEEK_DATA, 2 * BS + 5);
	SEEK_IS(4 * BS, SEEK_DATA, 10 * BS);
	SEEK_IS(10 * BS + 4000, SEEK_DATA, 10 * BS + 4000);
	SEEK_IS(0, SEEK_HOLE, 0);
	SEEK_IS(2 * BS, SEEK_HOLE, 4 * BS);
	SEEK_IS(3 * BS + 1, SEEK_HOLE, 4 * BS);
	SEEK_IS(10 * BS, SEEK_HOLE, 11 * BS);
	SEEK_IS(size - 1, SEEK_HOLE, size - 1);
	/* after the last data */
	CHECK_RC(vmb_image_seek(img, 11 * BS, SEEK_DATA, &res, NULL), -ENXIO);
	CHECK_RC(vmb_image_seek(img, size - 1, SEEK_DATA, &res, NULL), -ENXIO);
	/* at and past EOF */
	CHECK_RC(vmb_image_seek(img, size, SEEK_DATA, &res, NULL), -ENXIO);
	CHECK_RC(vmb_image_seek(img, size, SEEK_HOLE, &res, NULL), -ENXIO);
	CHECK_RC(vmb_image_seek(img, size + BS * 100, SEEK_HOLE, &res, NULL), -ENXIO);
	CHECK_RC(vmb_image_seek(img, 0, SEEK_CUR, &res, NULL), -EINVAL);

	/* data up to the end: the hole is at EOF */
	CHECK_EQ(wr(img, buf, BS + 100, 19 * BS), BS + 100);
	SEEK_IS(19 * BS, SEEK_HOLE, size);
	SEEK_IS(size - 1, SEEK_HOLE, size);
	SEEK_IS(size - 1, SEEK_DATA, size - 1);
	SEEK_IS(11 * BS, SEEK_DATA, 19 * BS);
	/* grown by truncate: the new tail is a hole */
	CHECK_RC(vmb_image_truncate(img, size + 3 * BS, NULL), 0);
	SEEK_IS(19 * BS, SEEK_HOLE, 21 * BS);
	CHECK_RC(vmb_image_seek(img, 21 * BS, SEEK_DATA, &res, NULL), -ENXIO);
	SEEK_IS(size + 3 * BS - 1, SEEK_HOLE, size + 3 * BS - 1);
	/* an empty file */
	CHECK_RC(vmb_image_truncate(img, 0, NULL), 0);
	CHECK_RC(vmb_image_seek(img, 0, SEEK_DATA, &res, NULL), -ENXIO);
	CHECK_RC(vmb_image_seek(img, 0, SEEK_HOLE, &res, NULL), -ENXIO);
#undef SEEK_IS
	vmb_image_close(img);
}

static void test_copy_range(void)
{
	const uint64_t ssize = 10 * BS + 500, dsize = 12 * BS;
	unsigned char *smodel = calloc(1, 64 * BS), *dmodel = calloc(1, 64 * BS);
	unsigned char *buf = malloc(dsize);
	struct vmb_image *src = img_new("csrc.img", ssize);
	struct vmb_image *dst = img_new("cdst.img", 0);
	struct vmb_image *dst2 = img_new("cdst2.img", 0);
	struct vmb_image *ro = NULL;
	struct vmb_blockmap sm;
	uint64_t b0, blk, expect_blocks;
	unsigned char *marks;
	int fd;

	vmb_blockmap_init(&sm);
	if (!CHECK(smodel && dmodel && buf && src && dst && dst2))
		goto out;
	/* src: data in blocks 1-2, part of block 6, the partial last block */
	fill(buf, 2 * BS, BS, 11);
	CHECK_EQ(wr(src, buf, 2 * BS, BS), 2 * BS);
	memcpy(smodel + BS, buf, 2 * BS);
	fill(buf, 1000, 6 * BS + 30, 12);
	CHECK_EQ(wr(src, buf, 1000, 6 * BS + 30), 1000);
	memcpy(smodel + 6 * BS + 30, buf, 1000);
	fill(buf, 500, 10 * BS, 13);
	CHECK_EQ(wr(src, buf, 500, 10 * BS), 500);
	memcpy(smodel + 10 * BS, buf, 500);
	CHECK(same_content(src, smodel, ssize));

	/* dst: data everywhere */
	fill(buf, dsize, 0, 14);
	CHECK_EQ(wr(dst, buf, dsize, 0), dsize);
	memcpy(dmodel, buf, dsize);
	fd = vmb_image_fd(dst);
	CHECK(fsync(fd) == 0);
	b0 = st_blocks(dst);

	CHECK_EQ(vmb_image_copy_range(src, 0, dst, 0, ssize, NULL), ssize);
	memcpy(dmodel, smodel, ssize);
	CHECK_EQ(vmb_image_size(dst), dsize);
	CHECK(same_content(dst, dmodel, dsize));
	CHECK_EQ(bstate(dst, 0), VMB_ZERO);
	CHECK_EQ(bstate(dst, 1), VMB_DATA);
	CHECK_EQ(bstate(dst, 3), VMB_ZERO);
	CHECK_EQ(bstate(dst, 5), VMB_ZERO);
	CHECK_EQ(bstate(dst, 6), VMB_DATA);
	CHECK_EQ(bstate(dst, 9), VMB_ZERO);
	CHECK_EQ(bstate(dst, 10), VMB_DATA);
	CHECK_EQ(bstate(dst, 11), VMB_DATA);
	CHECK_EQ(vmb_image_alloc_bytes(dst), 5 * BS);
	CHECK(fsync(fd) == 0);
	CHECK(st_blocks(dst) + 7 * BS / 512 <= b0);

	/* unaligned, into an empty file that grows; the length is clipped at the
	 * source's end */
	CHECK_EQ(vmb_image_copy_range(src, 100, dst2, 5000, 1 << 20, NULL), ssize - 100);
	memset(dmodel, 0, 64 * BS);
	memcpy(dmodel + 5000, smodel + 100, ssize - 100);
	CHECK_EQ(vmb_image_size(dst2), 5000 + ssize - 100);
	CHECK_EQ(backing_size(dst2), 5000 + ssize - 100);
	CHECK(same_content(dst2, dmodel, 5000 + ssize - 100));
	/* holes stay holes: only blocks that receive source data blocks are data */
	marks = calloc(1, 64);
	CHECK_RC(vmb_image_map_copy(src, &sm), 0);
	for (blk = 0; marks && blk < (ssize + BS - 1) / BS; blk++) {
		uint64_t a, b, d;
		if (vmb_blockmap_get(&sm, blk, NULL) != VMB_DATA)
			continue;
		a = blk * BS < 100 ? 100 : blk * BS;
		b = (blk + 1) * BS > ssize ? ssize : (blk + 1) * BS;
		for (d = a - 100 + 5000; d < b - 100 + 5000; d += 1)
			marks[d / BS] = 1;
	}
	expect_blocks = 0;
	for (blk = 0; marks && blk < 64; blk++) {
		expect_blocks += marks[blk];
		if (!marks[blk] && blk < (5000 + ssize - 100 + BS - 1) / BS)
			CHECK(bstate(dst2, blk) != VMB_DATA);
	}
	free(marks);
	CHECK_EQ(vmb_image_alloc_bytes(dst2), expect_blocks * BS);
	CHECK(map_within(dst2, (5000 + ssize - 100 + BS - 1) / BS));

	/* nothing to copy */
	CHECK_EQ(vmb_image_copy_range(src, ssize, dst2, 0, 100, NULL), 0);
	CHECK_EQ(vmb_image_copy_range(src, 0, dst2, 0, 0, NULL), 0);
	CHECK_EQ(vmb_image_size(dst2), 5000 + ssize - 100);

	/* into a read-only image */
	ro = img_reopen("cdst.img", O_RDONLY);
	if (CHECK(ro != NULL)) {
		CHECK(!vmb_image_writable(ro));
		CHECK_RC((int)vmb_image_copy_range(src, 0, ro, 0, 100, NULL), -EBADF);
		CHECK_RC((int)vmb_image_write(ro, buf, 10, 0, NULL), -EBADF);
		CHECK_RC(vmb_image_truncate(ro, 0, NULL), -EBADF);
		CHECK_RC(FA(ro, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, BS), -EBADF);
	}
out:
	vmb_blockmap_destroy(&sm);
	vmb_image_close(ro);
	vmb_image_close(src);
	vmb_image_close(dst);
	vmb_image_close(dst2);
	free(smodel);
	free(dmodel);
	free(buf);
}

/* Load the map of `name` through a fresh descriptor. */
static int load(const char *name, struct vmb_blockmap *m, int *rebuilt)
{
	uint64_t size;
	struct vmb_err e;
	int fd = openat(tdir, name, O_RDONLY | O_CLOEXEC), r;

	if (fd < 0)
		return -errno;
	vmb_err_clear(&e);
	*rebuilt = -1;
	r = vmb_image_load_map(fd, mapfd, name, m, &size, rebuilt, &e);
	if (r < 0)
		fprintf(stderr, "    load_map(%s): %s\n", name, e.msg);
	close(fd);
	return r;
}

static void test_sync_persists(void)
{
	struct vmb_image *img = img_new("sync.img", 0);
	struct vmb_blockmap m, cur;
	unsigned char buf[3 * BS];
	int rebuilt;

	REQUIRE(img);
	vmb_blockmap_init(&m);
	vmb_blockmap_init(&cur);
	fill(buf, sizeof(buf), 0, 15);
	CHECK_EQ(wr(img, buf, BS, 0), BS);
	CHECK_EQ(wr(img, buf, BS, 5 * BS), BS);
	CHECK_RC(vmb_image_sync(img, 0, NULL), 0);
	CHECK(sidecar_exists(ino_of(vmb_image_fd(img))));
	CHECK_RC(load("sync.img", &m, &rebuilt), 0);
	CHECK_EQ(rebuilt, 0);
	CHECK_RC(vmb_image_map_copy(img, &cur), 0);
	CHECK(vmb_blockmap_equal(&m, &cur));
	CHECK_EQ(m.data_blocks, 2);

	/* changed since: the sidecar no longer matches */
	CHECK_EQ(wr(img, buf, 2 * BS, 9 * BS), 2 * BS);
	CHECK_RC(load("sync.img", &m, &rebuilt), 0);
	CHECK_EQ(rebuilt, 1);
	CHECK_RC(vmb_image_sync(img, 1, NULL), 0);
	CHECK_RC(load("sync.img", &m, &rebuilt), 0);
	CHECK_EQ(rebuilt, 0);
	CHECK_RC(vmb_image_map_copy(img, &cur), 0);
	CHECK(vmb_blockmap_equal(&m, &cur));
	CHECK_EQ(m.data_blocks, 4);

	/* persist after a change, then nothing left to do */
	CHECK_RC(vmb_image_truncate(img, 6 * BS, NULL), 0);
	CHECK_RC(vmb_image_persist(img, NULL), 0);
	CHECK_RC(load("sync.img", &m, &rebuilt), 0);
	CHECK_EQ(rebuilt, 0);
	CHECK_EQ(m.data_blocks, 2);
	CHECK_RC(vmb_image_persist(img, NULL), 0);
	vmb_blockmap_destroy(&m);
	vmb_blockmap_destroy(&cur);
	vmb_image_close(img);
}

static void test_reopen_identical(void)
{
	unsigned char *model = calloc(1, 64 * BS), buf[4 * BS], zeros[2 * BS];
	struct vmb_image *img = img_new("reopen.img", 0);
	struct vmb_blockmap before, after;
	char scname[VMB_SIDECAR_NAME_MAX];
	struct stat s1, s2;
	uint64_t ino;
	int rebuilt;

	vmb_blockmap_init(&before);
	vmb_blockmap_init(&after);
	memset(zeros, 0, sizeof(zeros));
	if (!CHECK(model && img))
		goto out;
	fill(buf, sizeof(buf), 0, 16);
	CHECK_EQ(wr(img, buf, sizeof(buf), 3), sizeof(buf));
	memcpy(model + 3, buf, sizeof(buf));
	CHECK_EQ(wr(img, zeros, 2 * BS, 8 * BS), 2 * BS);
	CHECK_EQ(wr(img, buf, 77, 12 * BS + 9), 77);
	memcpy(model + 12 * BS + 9, buf, 77);
	CHECK_RC(FA(img, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, BS, BS), 0);
	memset(model + BS, 0, BS);
	CHECK_RC(vmb_image_map_copy(img, &before), 0);
	ino = ino_of(vmb_image_fd(img));
	vmb_image_close(img);

	CHECK_RC(load("reopen.img", &after, &rebuilt), 0);
	CHECK_EQ(rebuilt, 0);
	CHECK(vmb_blockmap_equal(&before, &after));
	img = img_reopen("reopen.img", O_RDWR);
	if (!CHECK(img != NULL))
		goto out;
	CHECK_RC(vmb_image_map_copy(img, &after), 0);
	CHECK(vmb_blockmap_equal(&before, &after));
	CHECK(same_content(img, model, 12 * BS + 86));

	/* closing an unchanged image leaves the sidecar alone */
	vmb_sidecar_name(ino, scname);
	CHECK(fstatat(mapfd, scname, &s1, 0) == 0);
	vmb_image_close(img);
	img = NULL;
	CHECK(fstatat(mapfd, scname, &s2, 0) == 0);
	CHECK_EQ(s1.st_ino, s2.st_ino);
out:
	vmb_image_close(img);
	vmb_blockmap_destroy(&before);
	vmb_blockmap_destroy(&after);
	free(model);
}

static void test_changed_behind_back(void)
{
	struct vmb_image *img = img_new("behind.img", 8 * BS);
	unsigned char buf[BS], rbuf[BS];
	struct vmb_blockmap m;
	struct timespec ts = { 0, 20 * 1000 * 1000 };
	int fd, rebuilt;

	REQUIRE(img);
	vmb_blockmap_init(&m);
	fill(buf, BS, 0, 17);
	CHECK_EQ(wr(img, buf, BS, 0), BS);
	vmb_image_close(img);
	CHECK_RC(load("behind.img", &m, &rebuilt), 0);
	CHECK_EQ(rebuilt, 0);
	CHECK_EQ(vmb_blockmap_get(&m, 5, NULL), VMB_ZERO);

	/* written directly in the store, same size (after a tick of the coarse clock) */
	nanosleep(&ts, NULL);
	fd = openat(tdir, "behind.img", O_RDWR | O_CLOEXEC);
	CHECK(fd >= 0);
	fill(buf, BS, 5 * BS, 18);
	CHECK(pwrite(fd, buf, 300, 5 * BS + 50) == 300);
	close(fd);

	CHECK_RC(load("behind.img", &m, &rebuilt), 0);
	CHECK_EQ(rebuilt, 1);
	CHECK_EQ(vmb_blockmap_get(&m, 5, NULL), VMB_DATA);
	img = img_reopen("behind.img", O_RDWR);
	if (CHECK(img != NULL)) {
		CHECK_EQ(vmb_image_size(img), 8 * BS);
		CHECK_EQ(bstate(img, 5), VMB_DATA);
		memset(rbuf, 0xAA, sizeof(rbuf));
		CHECK_EQ(vmb_image_read(img, rbuf, 300, 5 * BS + 50, NULL, NULL), 300);
		CHECK(memcmp(rbuf, buf, 300) == 0);
		vmb_image_close(img);
	}
	/* the rebuilt map was saved at close */
	CHECK_RC(load("behind.img", &m, &rebuilt), 0);
	CHECK_EQ(rebuilt, 0);

	/* grown behind the map */
	nanosleep(&ts, NULL);
	fd = openat(tdir, "behind.img", O_RDWR | O_CLOEXEC);
	CHECK(fd >= 0);
	CHECK(pwrite(fd, buf, 10, 20 * BS) == 10);
	close(fd);
	img = img_reopen("behind.img", O_RDWR);
	if (CHECK(img != NULL)) {
		CHECK_EQ(vmb_image_size(img), 20 * BS + 10);
		CHECK_EQ(vmb_image_read(img, rbuf, 10, 20 * BS, NULL, NULL), 10);
		CHECK(memcmp(rbuf, buf, 10) == 0);
		vmb_image_close(img);
	}
	vmb_blockmap_destroy(&m);
}

/* Open must fail with -EIO and a message naming the file and saying why. */
static void expect_damaged(const char *name, const char *why)
{
	struct vmb_image *img = (struct vmb_image *)1;
	struct vmb_blockmap m;
	struct vmb_err e;
	uint64_t size;
	int fd, rebuilt;

	fd = openat(tdir, name, O_RDWR | O_CLOEXEC);
	REQUIRE(fd >= 0);
	vmb_err_clear(&e);
	CHECK_RC(vmb_image_open(&img, fd, mapfd, name, NULL, &e), -EIO);
	CHECK(img == NULL);
	CHECK_EQ(e.code, EIO);
	CHECK_STR(e.msg, name);
	CHECK_STR(e.msg, why);
	CHECK(fcntl(fd, F_GETFD) >= 0);   /* still the caller's */
	vmb_blockmap_init(&m);
	vmb_err_clear(&e);
	CHECK_RC(vmb_image_load_map(fd, mapfd, name, &m, &size, &rebuilt, &e), -EIO);
	CHECK_STR(e.msg, why);
	vmb_blockmap_destroy(&m);
	if (img == NULL)
		close(fd);
	else
		vmb_image_close(img);
}

static void test_damaged_sidecar(void)
{
	static const char *names[] = { "corrupt.img", "corrupt2.img", "short.img" };
	char scname[3][VMB_SIDECAR_NAME_MAX];
	unsigned char buf[BS], c;
	struct vmb_image *img;
	int i, sfd;

	for (i = 0; i < 3; i++) {
		img = img_new(names[i], 4 * BS);
		REQUIRE(img);
		fill(buf, BS, 0, 19);
		CHECK_EQ(wr(img, buf, BS, 2 * BS), BS);
		vmb_sidecar_name(ino_of(vmb_image_fd(img)), scname[i]);
		vmb_image_close(img);
		REQUIRE(faccessat(mapfd, scname[i], F_OK, 0) == 0);
	}
	/* a flipped byte in the header page, then in a record page */
	for (i = 0; i < 2; i++) {
		off_t at = i == 0 ? 100 : BS + 5;
		sfd = openat(mapfd, scname[i], O_RDWR | O_CLOEXEC);
		REQUIRE(sfd >= 0);
		CHECK(pread(sfd, &c, 1, at) == 1);
		c ^= 0x40;
		CHECK(pwrite(sfd, &c, 1, at) == 1);
		close(sfd);
		expect_damaged(names[i], "sidecar map is corrupt");
	}
	/* cut short */
	sfd = openat(mapfd, scname[2], O_RDWR | O_CLOEXEC);
	REQUIRE(sfd >= 0);
	CHECK(ftruncate(sfd, 5000) == 0);
	close(sfd);
	expect_damaged(names[2], "truncated");
}

/* ---- main ---- */

int main(void)
{

	if (harness_tmpdir(tmpdir, sizeof(tmpdir), "image") < 0)
		return 99;
	tdir = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (tdir < 0 || mkdirat(tdir, "maps", 0700) < 0 ||
	    (mapfd = openat(tdir, "maps", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		perror(tmpdir);
		return 99;
	}
	RUN(test_open_fresh_sparse);
	RUN(test_unaligned_rw);
	RUN(test_zero_writes);
	RUN(test_zero_edges);
	RUN(test_holes_only);
	RUN(test_truncate);
	RUN(test_fallocate);
	RUN(test_seek);
	RUN(test_copy_range);
	RUN(test_sync_persists);
	RUN(test_reopen_identical);
	RUN(test_changed_behind_back);
	RUN(test_damaged_sidecar);
	close(mapfd);
	close(tdir);
	harness_rmtree(tmpdir);
	return harness_exit("test_image");
}
