/* test_image_share.c - unit tests of vmb_image_share_range and vmb_image_share_hint
 * (src/image/image_share.c, issue 10 section 6), with the store's real layers: a
 * whole-file share into an empty file, the same in pieces (the kernel's 4 GiB
 * pieces, cp's data extents after zeros it wrote), isolation both ways, st_blocks
 * and SEEK_DATA/SEEK_HOLE through the share, the share after a reopen, an empty
 * destination over another base, every case that must copy instead (nothing
 * changed), and a share cut short between its xattr and its size. */
#include "config.h"
#include "image/image.h"
#include "layer/layer.h"
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#define BS 4096u
#define NB 40
#define SSIZE (NB * BS - 100)   /* the source's size: its last block partial */

static char tmpdir[4096];
static int tdir = -1, mapfd = -1, metafd = -1;
static struct vmb_layers *ls;
static struct vmb_base_resolver lres;
static unsigned char *want;     /* the source's bytes */

static struct vmb_image *open_file(const char *name, int create)
{
	struct vmb_image *img = NULL;
	struct vmb_err e;
	int fd = openat(tdir, name, O_RDWR | O_CLOEXEC | (create ? O_CREAT | O_TRUNC : 0), 0644);

	vmb_err_clear(&e);
	if (fd < 0 || vmb_image_open2(&img, fd, mapfd, name, NULL, &lres, &e) < 0) {
		fprintf(stderr, "    open %s: %s\n", name, e.msg);
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	return img;
}

/* img reads as p (size bytes) everywhere. */
static int same(struct vmb_image *img, const unsigned char *p, uint64_t size)
{
	unsigned char *got = malloc(size + 1);
	ssize_t n = vmb_image_read(img, got, size + 1, 0, NULL, NULL);
	int ok = n == (ssize_t)size && !memcmp(got, p, size);

	if (!ok)
		fprintf(stderr, "    read %zd of %llu bytes, %s\n", n, (unsigned long long)size,
			n == (ssize_t)size ? "they differ" : "short");
	free(got);
	return ok;
}

static uint64_t seek(struct vmb_image *img, uint64_t off, int whence)
{
	uint64_t res = 0;
	int r = vmb_image_seek(img, off, whence, &res, NULL);

	return r < 0 ? (uint64_t)r : res;
}

/* The source: data in blocks 0-4, 10 and 30-39 (its last one partial), holes
 * between; frozen, so that it reads its layer. */
static struct vmb_image *make_source(const char *name)
{
	struct vmb_image *img = open_file(name, 1);
	char id[VMB_BASE_ID_LEN + 1];
	uint64_t ino;
	struct vmb_err e;

	if (!img)
		return NULL;
	memset(want, 0, NB * BS);
	for (unsigned i = 0; i < NB * BS; i++)
		if (i / BS < 5 || i / BS == 10 || i / BS >= 30)
			want[i] = (unsigned char)(i % 251 + 1);
	memset(want + SSIZE, 0, NB * BS - SSIZE);
	if (vmb_image_write(img, want, 5 * BS, 0, NULL) != 5 * BS ||
	    vmb_image_write(img, want + 10 * BS, BS, 10 * BS, NULL) != BS ||
	    vmb_image_write(img, want + 30 * BS, SSIZE - 30 * BS, 30 * BS, NULL) !=
	    (ssize_t)(SSIZE - 30 * BS))
		return NULL;
	CHECK_EQ(vmb_image_share_hint(img, img, 0, SSIZE), 0);
	vmb_err_clear(&e);
	if (vmb_image_freeze(img, ls, tdir, name, id, &ino, &e) < 0) {
		fprintf(stderr, "    freeze: %s\n", e.msg);
		return NULL;
	}
	return img;
}

/* A whole-file share into an empty file; isolation both ways; reopen. */
static void test_whole(void)
{
	struct vmb_image *src = open_file("w-src", 1), *dst, *plain;
	unsigned char *mine = malloc(NB * BS), buf[BS];
	char xa[128];
	ssize_t n;

	REQUIRE(src != NULL);
	/* a plain source: shared once frozen (2), after which as it is (1) */
	REQUIRE(vmb_image_write(src, "abc", 3, 0, NULL) == 3);
	plain = open_file("w-dst0", 1);
	REQUIRE(plain != NULL);
	CHECK_EQ(vmb_image_share_hint(src, plain, 0, 1u << 30), 2);
	CHECK_RC((int)vmb_image_share_range(src, plain, 0, 1u << 30, NULL), 0);
	CHECK_EQ(vmb_image_size(plain), 0);
	vmb_image_close(plain);
	vmb_image_close(src);
	src = make_source("w-src");
	REQUIRE(src != NULL);
	dst = open_file("w-dst", 1);
	REQUIRE(dst != NULL);
	CHECK_EQ(vmb_image_share_hint(src, dst, 0, 1u << 30), 1);
	/* cp's length: far past the end */
	n = vmb_image_share_range(src, dst, 0, (size_t)1 << 40, NULL);
	CHECK_EQ(n, SSIZE);
	CHECK_EQ(vmb_image_size(dst), SSIZE);
	CHECK(same(dst, want, SSIZE));
	CHECK_EQ(vmb_image_alloc_bytes(dst), vmb_image_alloc_bytes(src));
	CHECK_EQ(vmb_image_alloc_bytes(dst), 16ull * BS);
	CHECK_EQ(seek(dst, 5 * BS, SEEK_DATA), 10 * BS);
	CHECK_EQ(seek(dst, 10 * BS, SEEK_HOLE), 11 * BS);
	CHECK_EQ(seek(dst, 0, SEEK_HOLE), 5 * BS);
	CHECK(vmb_image_base(dst, NULL) == vmb_image_base(src, NULL));
	n = fgetxattr(vmb_image_fd(dst), VMB_BASE_XATTR, xa, sizeof(xa) - 1);
	CHECK(n > 0);
	if (n > 0) {
		xa[n] = '\0';
		CHECK_STR(xa, vmb_image_base(src, NULL)->id);
		CHECK_STR(xa, " 40");
	}
	/* writes to either never show in the other */
	memcpy(mine, want, NB * BS);
	memset(buf, 0xd5, BS);
	REQUIRE(vmb_image_write(dst, buf, 100, 2 * BS + 7, NULL) == 100);
	memset(mine + 2 * BS + 7, 0xd5, 100);
	REQUIRE(vmb_image_write(src, buf, BS, 20 * BS, NULL) == BS);
	CHECK(same(dst, mine, SSIZE));
	memcpy(want + 20 * BS, buf, BS);
	CHECK(same(src, want, SSIZE));
	/* the share is persisted: a reopen reads the same */
	vmb_image_close(dst);
	dst = open_file("w-dst", 0);
	REQUIRE(dst != NULL);
	CHECK(same(dst, mine, SSIZE));
	CHECK_EQ(vmb_image_alloc_bytes(dst), 16ull * BS);
	/* a source with its own data in the range is not shared as it is */
	n = vmb_image_share_range(src, plain = open_file("w-dst2", 1), 0, SSIZE, NULL);
	CHECK_EQ(n, 0);
	CHECK_EQ(vmb_image_share_hint(src, plain, 0, SSIZE), 2);
	/* ... but its clean part is */
	CHECK_EQ(vmb_image_share_range(src, plain, 0, 20 * BS, NULL), 20 * BS);
	CHECK(same(plain, want, 20 * BS));
	vmb_image_close(plain);
	vmb_image_close(dst);
	vmb_image_close(src);
	free(mine);
}

/* In pieces: the kernel's (aligned pieces to the end), and cp --sparse=never's
 * (zeros written over the holes, a data extent copied after them). */
static void test_pieces(void)
{
	struct vmb_image *src = make_source("p-src"), *dst, *z;
	unsigned char zero[5 * BS];

	REQUIRE(src != NULL);
	dst = open_file("p-dst", 1);
	REQUIRE(dst != NULL);
	CHECK_EQ(vmb_image_share_range(src, dst, 0, 8 * BS, NULL), 8 * BS);
	CHECK_EQ(vmb_image_size(dst), 8 * BS);
	CHECK(same(dst, want, 8 * BS));
	CHECK_EQ(vmb_image_share_hint(src, dst, 8 * BS, SSIZE), 1);
	CHECK_EQ(vmb_image_share_range(src, dst, 8 * BS, 12 * BS, NULL), 12 * BS);
	CHECK_EQ(vmb_image_share_range(src, dst, 20 * BS, SSIZE, NULL), SSIZE - 20 * BS);
	CHECK(same(dst, want, SSIZE));
	vmb_image_close(dst);
	dst = open_file("p-dst", 0);
	REQUIRE(dst != NULL);
	CHECK(same(dst, want, SSIZE));
	vmb_image_close(dst);
	/* a partial share, then extended by truncate: zeros past it, as on ext4 */
	dst = open_file("p-dst", 1);
	REQUIRE(dst != NULL);
	CHECK_EQ(vmb_image_share_range(src, dst, 0, 3 * BS, NULL), 3 * BS);
	CHECK_RC(vmb_image_truncate(dst, 10 * BS, NULL), 0);
	memset(zero, 0, sizeof(zero));
	{
		unsigned char *p = calloc(1, 10 * BS);
		memcpy(p, want, 3 * BS);
		CHECK(same(dst, p, 10 * BS));
		free(p);
	}
	vmb_image_close(dst);
	/* zeros written first (ZERO blocks), then the data extent at 10: shared */
	z = open_file("p-zero", 1);
	REQUIRE(z != NULL);
	for (unsigned b = 0; b < 10; b += 5)
		REQUIRE(vmb_image_write(z, zero, 5 * BS, b * BS, NULL) == 5 * BS);
	CHECK_EQ(vmb_image_share_range(src, z, 10 * BS, BS, NULL), BS);
	{
		unsigned char *p = calloc(1, 11 * BS);
		memcpy(p + 10 * BS, want + 10 * BS, BS);
		CHECK(same(z, p, 11 * BS));
		free(p);
	}
	CHECK_EQ(vmb_image_alloc_bytes(z), BS);
	vmb_image_close(z);
	vmb_image_close(src);
}

/* Copies that must copy bytes: nothing changes. */
static void test_refused(void)
{
	struct vmb_image *src = make_source("r-src"), *dst, *other;
	unsigned char b[BS];

	REQUIRE(src != NULL);
	dst = open_file("r-dst", 1);
	REQUIRE(dst != NULL);
	memset(b, 0x42, BS);
	/* dst not empty, and the copy not at its end */
	REQUIRE(vmb_image_write(dst, b, BS, 0, NULL) == BS);
	CHECK_EQ(vmb_image_share_hint(src, dst, 0, SSIZE), 0);
	CHECK_EQ(vmb_image_share_range(src, dst, 0, SSIZE, NULL), 0);
	/* at its end, but the offsets differ (not asked here: the same offsets
	 * only), or unaligned, or the end unaligned before the source's */
	CHECK_EQ(vmb_image_share_range(src, dst, BS + 1, BS, NULL), 0);
	CHECK_EQ(vmb_image_share_range(src, dst, BS, BS + 10, NULL), 0);
	CHECK_EQ(vmb_image_size(dst), BS);
	/* every block below the copy its own (DATA, ZERO after the truncate): the rest
	 * is shared above them */
	CHECK_RC(vmb_image_truncate(dst, 3 * BS, NULL), 0);
	CHECK_EQ(vmb_image_share_hint(src, dst, 3 * BS, SSIZE), 1);
	CHECK_EQ(vmb_image_share_range(src, dst, 3 * BS, SSIZE, NULL), SSIZE - 3 * BS);
	{
		unsigned char *p = malloc(NB * BS);
		memcpy(p, want, NB * BS);
		memset(p, 0x42, BS);
		memset(p + BS, 0, 2 * BS);
		CHECK(same(dst, p, SSIZE));
		free(p);
	}
	/* over another base already, at its end: refused */
	{
		struct vmb_image *s2 = make_source("r-src2"), *d2 = open_file("r-dst3", 1);
		REQUIRE(s2 != NULL && d2 != NULL);
		CHECK_EQ(vmb_image_share_range(s2, d2, 0, 8 * BS, NULL), 8 * BS);
		CHECK_EQ(vmb_image_share_hint(src, d2, 8 * BS, SSIZE), 0);
		CHECK_EQ(vmb_image_share_range(src, d2, 8 * BS, SSIZE, NULL), 0);
		CHECK_EQ(vmb_image_size(d2), 8 * BS);
		vmb_image_close(d2);
		vmb_image_close(s2);
	}
	/* the same image, and past the source's end */
	CHECK_EQ(vmb_image_share_range(src, src, 0, SSIZE, NULL), 0);
	other = open_file("r-dst2", 1);
	REQUIRE(other != NULL);
	CHECK_EQ(vmb_image_share_range(src, other, SSIZE + BS, BS, NULL), 0);
	CHECK_EQ(vmb_image_share_range(src, other, 0, 0, NULL), 0);
	/* a read-only destination */
	vmb_image_close(other);
	{
		int fd = openat(tdir, "r-dst2", O_RDONLY | O_CLOEXEC);
		struct vmb_err e;
		other = NULL;
		REQUIRE(fd >= 0 && vmb_image_open2(&other, fd, mapfd, "r-dst2", NULL, &lres, &e) == 0);
		CHECK_EQ(vmb_image_share_hint(src, other, 0, SSIZE), 0);
		CHECK_EQ(vmb_image_share_range(src, other, 0, SSIZE, NULL), 0);
		vmb_image_close(other);
	}
	vmb_image_close(dst);
	vmb_image_close(src);
}

/* An empty file over another base (cp over a clone's file, truncated to 0 by its
 * open) takes the source's base. */
static void test_other_base(void)
{
	struct vmb_image *a = make_source("o-a"), *b = NULL, *dst;
	unsigned char *wa = malloc(NB * BS), x[BS];
	char id[VMB_BASE_ID_LEN + 1];
	uint64_t ino;

	REQUIRE(a != NULL);
	memcpy(wa, want, NB * BS);
	dst = open_file("o-dst", 1);
	REQUIRE(dst != NULL);
	CHECK_EQ(vmb_image_share_range(a, dst, 0, SSIZE, NULL), SSIZE);
	/* a second source over another layer */
	b = open_file("o-b", 1);
	REQUIRE(b != NULL);
	memset(x, 0x77, BS);
	REQUIRE(vmb_image_write(b, x, BS, 0, NULL) == BS);
	REQUIRE(vmb_image_truncate(b, 2 * BS, NULL) == 0);
	REQUIRE(vmb_image_freeze(b, ls, tdir, "o-b", id, &ino, NULL) == 0);
	CHECK_RC(vmb_image_truncate(dst, 0, NULL), 0);
	CHECK_EQ(vmb_image_share_hint(b, dst, 0, 2 * BS), 1);
	CHECK_EQ(vmb_image_share_range(b, dst, 0, 2 * BS, NULL), 2 * BS);
	CHECK(vmb_image_base(dst, NULL) == vmb_image_base(b, NULL));
	{
		unsigned char p[2 * BS];
		memset(p, 0x77, BS);
		memset(p + BS, 0, BS);
		CHECK(same(dst, p, 2 * BS));
		vmb_image_close(dst);
		dst = open_file("o-dst", 0);
		REQUIRE(dst != NULL);
		CHECK(same(dst, p, 2 * BS));
	}
	CHECK(same(a, wa, SSIZE));
	vmb_image_close(dst);
	vmb_image_close(a);
	vmb_image_close(b);
	free(wa);
}

/* A share cut short after its xattr, before its size (a daemon killed there):
 * the file reads as before, and an extension past it reads zeros. */
static void test_cut_short(void)
{
	struct vmb_image *src = make_source("c-src"), *dst;
	unsigned char *z = calloc(1, 8 * BS);
	int fd;

	REQUIRE(src != NULL);
	fd = openat(tdir, "c-dst", O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	REQUIRE(fd >= 0);
	REQUIRE(vmb_image_set_base_xattr(fd, "c-dst", vmb_image_base(src, NULL)->id, 40,
					 NULL) == 0);
	close(fd);
	dst = open_file("c-dst", 0);
	REQUIRE(dst != NULL);
	CHECK_EQ(vmb_image_size(dst), 0);
	CHECK_RC(vmb_image_truncate(dst, 8 * BS, NULL), 0);
	CHECK(same(dst, z, 8 * BS));
	vmb_image_close(dst);
	dst = open_file("c-dst", 0);
	REQUIRE(dst != NULL);
	CHECK(same(dst, z, 8 * BS));
	vmb_image_close(dst);
	vmb_image_close(src);
	free(z);
}

int main(void)
{
	struct vmb_err e;

	if (getuid() != 0)
		SKIP("trusted.* xattrs need root");
	if (harness_tmpdir(tmpdir, sizeof(tmpdir), "imgshare") < 0)
		return 99;
	tdir = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (tdir < 0 || mkdirat(tdir, "maps", 0700) < 0 || mkdirat(tdir, "meta", 0700) < 0 ||
	    (mapfd = openat(tdir, "maps", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
	    (metafd = openat(tdir, "meta", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return 99;
	if (fsetxattr(tdir, "trusted.vmbundlefs.probe", "1", 1, 0) < 0)
		SKIP("no trusted.* xattrs on the temporary directory's filesystem");
	vmb_err_clear(&e);
	if (vmb_layers_open(&ls, metafd, NULL, &e) < 0) {
		fprintf(stderr, "layers: %s\n", e.msg);
		return 99;
	}
	lres = vmb_layers_resolver(ls);
	want = malloc(NB * BS);
	RUN(test_whole);
	RUN(test_pieces);
	RUN(test_refused);
	RUN(test_other_base);
	RUN(test_cut_short);
	vmb_layers_close(ls);
	free(want);
	close(metafd);
	close(mapfd);
	close(tdir);
	harness_rmtree(tmpdir);
	return harness_exit("test_image_share");
}
