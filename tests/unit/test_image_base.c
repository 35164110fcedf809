/* test_image_base.c - unit tests of images over a base (src/image/, LAYERS.md), with
 * the in-memory test double of a base (testbase.h): reads through the base below
 * the limit, writes that merge with the base's bytes, the limit rule of truncate,
 * punch and zero over the base, seeks and st_blocks through the chain, copies out
 * of a layered file, version-2 sidecars (current, stale), the rebuild rule after a
 * daemon killed between a write and the next save, a lost map, a missing or failing
 * layer (-EIO naming it, never zeros), deltas made by create_delta, read-only frozen
 * images, flatten; ranges handed out for splicing; and freeze with the store's real layers (layer/). */
#include "config.h"
#include "image/image.h"
#include "map/sidecar.h"
#include "layer/layer.h"
#include "harness.h"
#include "testbase.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#define BS 4096u
#define NB 64                       /* blocks of the base */
#define BSIZE (NB * BS - 1000)      /* its size: the last block partial */

static char tmpdir[4096];
static int tdir = -1, mapfd = -1;
static unsigned char *bdata;        /* the base's bytes */
static unsigned char bmask[NB];     /* its data blocks */
static struct tbase *bases[4];
static struct tbase_table table = { bases, 4 };
static const struct vmb_base_resolver resolver = { tbase_resolve, &table };

/* ---- helpers ---- */

/* Base content: blocks 0..NB-1, data in blocks 0-9, 20-29 (29: zeros but DATA),
 * 40-63; the rest holes. */
static void make_bases(void)
{
	bdata = calloc(1, NB * BS);
	for (unsigned b = 0; b < NB; b++) {
		bmask[b] = b < 10 || (b >= 20 && b < 30) || b >= 40;
		if (bmask[b] && b != 29)
			for (unsigned i = 0; i < BS; i++)
				bdata[b * BS + i] = (unsigned char)(b * 7 + i % 251 + 1);
	}
	memset(bdata + BSIZE, 0, NB * BS - BSIZE);
	bases[0] = tbase_new(1, bdata, BSIZE, bmask, tdir);   /* with a descriptor */
	bases[1] = tbase_new(2, bdata, BSIZE, bmask, -1);     /* read only (a remote) */
}

/* A new delta "name" over base i (create_delta), opened. */
static struct vmb_image *delta(const char *name, int i)
{
	struct vmb_image *img = NULL;
	struct vmb_err e;
	struct stat like;
	int fd, r;

	unlinkat(tdir, name, 0);
	memset(&like, 0, sizeof(like));
	like.st_mode = S_IFREG | 0640;
	like.st_uid = getuid();
	like.st_gid = getgid();
	like.st_mtim.tv_sec = 1700000000;
	vmb_err_clear(&e);
	r = vmb_image_create_delta(tdir, name, &bases[i]->b, BSIZE, &like, mapfd, &e);
	if (r < 0) {
		fprintf(stderr, "    create_delta(%s): %s\n", name, e.msg);
		return NULL;
	}
	fd = openat(tdir, name, O_RDWR | O_CLOEXEC);
	r = vmb_image_open2(&img, fd, mapfd, name, NULL, &resolver, &e);
	if (r < 0) {
		fprintf(stderr, "    open2(%s): %s\n", name, e.msg);
		close(fd);
		return NULL;
	}
	return img;
}

static struct vmb_image *reopen(const char *name, int *rebuilt)
{
	struct vmb_image *img = NULL;
	struct vmb_blockmap m;
	struct vmb_err e;
	uint64_t size;
	int fd = openat(tdir, name, O_RDWR | O_CLOEXEC), r;

	vmb_err_clear(&e);
	if (rebuilt) {
		vmb_blockmap_init(&m);
		*rebuilt = -1;
		if (vmb_image_load_map2(fd, mapfd, name, NULL, &m, &size, rebuilt, NULL, &e) < 0)
			fprintf(stderr, "    load_map2(%s): %s\n", name, e.msg);
		vmb_blockmap_destroy(&m);
	}
	r = vmb_image_open2(&img, fd, mapfd, name, NULL, &resolver, &e);
	if (r < 0) {
		fprintf(stderr, "    open2(%s): %s\n", name, e.msg);
		close(fd);
		return NULL;
	}
	return img;
}

/* img reads as want (size bytes) everywhere. */
static int same(struct vmb_image *img, const unsigned char *want, uint64_t size)
{
	unsigned char *got = malloc(size + 1);
	ssize_t n = vmb_image_read(img, got, size + 1, 0, NULL, NULL);
	int ok = n == (ssize_t)size && !memcmp(got, want, size);

	if (!ok) {
		for (uint64_t i = 0; i < size && n == (ssize_t)size; i++)
			if (got[i] != want[i]) {
				fprintf(stderr, "    differs at %llu: %u, want %u\n",
					(unsigned long long)i, got[i], want[i]);
				break;
			}
		if (n != (ssize_t)size)
			fprintf(stderr, "    read %zd, want %llu\n", n, (unsigned long long)size);
	}
	free(got);
	return ok;
}

static uint64_t seek(struct vmb_image *img, uint64_t off, int whence)
{
	uint64_t res = 0;
	int r = vmb_image_seek(img, off, whence, &res, NULL);

	return r < 0 ? (uint64_t)r : res;
}

/* ---- tests ---- */

/* Reads, seeks and st_blocks through the base: ABSENT blocks below the limit read
 * the base, with its holes; all_data only for the delta's own DATA. */
static void test_read_through(void)
{
	struct vmb_image *img = delta("rt.img", 0);
	unsigned char buf[3 * BS];
	size_t n;
	int holes;

	REQUIRE(img != NULL);
	CHECK_EQ(vmb_image_size(img), BSIZE);
	CHECK(same(img, bdata, BSIZE));
	CHECK_EQ(vmb_image_alloc_bytes(img), 44ull * BS);
	CHECK_EQ(seek(img, 0, SEEK_DATA), 0);
	CHECK_EQ(seek(img, 0, SEEK_HOLE), 10 * BS);
	CHECK_EQ(seek(img, 10 * BS + 5, SEEK_DATA), 20 * BS);
	CHECK_EQ(seek(img, 30 * BS, SEEK_DATA), 40 * BS);
	CHECK_EQ(seek(img, 41 * BS + 3, SEEK_HOLE), BSIZE);
	CHECK_EQ(seek(img, BSIZE, SEEK_DATA), (uint64_t)-ENXIO);
	CHECK(!vmb_image_all_data(img, 0, BS, &n));
	/* a range of one base run: its descriptor, for splicing */
	{
		int bfd = -2;
		CHECK_EQ(vmb_image_read_fd(img, 100, 3 * BS, &bfd, &n), 1);
		CHECK_EQ(bfd, bases[0]->fd);
		CHECK_EQ(n, 3 * BS);
		CHECK(pread(bfd, buf, 3 * BS, 100) == 3 * BS && !memcmp(buf, bdata + 100, 3 * BS));
		CHECK_EQ(vmb_image_read_fd(img, 9 * BS, 2 * BS, &bfd, &n), 0);   /* a hole */
		CHECK_EQ(vmb_image_read_fd(img, 12 * BS, BS, &bfd, &n), 0);
	}
	/* a range of holes in the base is a holes-only read */
	CHECK_EQ(vmb_image_read(img, buf, 2 * BS, 12 * BS, &holes, NULL), 2 * BS);
	CHECK_EQ(holes, 1);
	CHECK_EQ(vmb_image_read(img, buf, 3 * BS, 9 * BS, &holes, NULL), 3 * BS);
	CHECK_EQ(holes, 0);
	CHECK(!memcmp(buf, bdata + 9 * BS, 3 * BS));
	/* st_blocks is kept while nothing changes: no walk of the base again */
	{
		uint64_t before = bases[0]->lookups;
		CHECK_EQ(vmb_image_alloc_bytes(img), 44ull * BS);
		CHECK_EQ(bases[0]->lookups, before);
	}
	vmb_image_close(img);
}

/* Ranges handed out for splicing (vmb_image_read_fd): never from a base descriptor
 * that ends before the range (a damaged layer, or a lower layer's data ending at its
 * own size: a splice would end early, a short read), and never from the base where
 * someone else has written the delta since (checked as a read checks: the backing
 * file's new data is the content). */
static void test_read_fd(void)
{
	unsigned char buf[2 * BS];
	struct vmb_image *img;
	size_t n;
	int fd, bfd, wfd;

	bases[2] = tbase_new(3, bdata, BSIZE, bmask, tdir);
	REQUIRE(bases[2] != NULL);
	img = delta("rf.img", 2);
	REQUIRE(img != NULL);
	CHECK_EQ(vmb_image_read_fd(img, 40 * BS, 2 * BS, &fd, &n), 1);
	CHECK_EQ(fd, bases[2]->fd);
	/* the base's descriptor cut short at block 41 (damaged) */
	REQUIRE(ftruncate(bases[2]->fd, 41 * BS + 100) == 0);
	CHECK_EQ(vmb_image_read_fd(img, 40 * BS, 2 * BS, &fd, &n), 0);
	CHECK_EQ(vmb_image_read_fd(img, 40 * BS, BS + 100, &fd, &n), 1);
	CHECK_EQ(n, BS + 100);
	CHECK_EQ(vmb_image_read(img, buf, 2 * BS, 40 * BS, NULL, NULL), 2 * BS);
	CHECK(!memcmp(buf, bdata + 40 * BS, 2 * BS));   /* read through the base's read */
	/* someone else writes block 2 of the delta (ABSENT: the base's so far) */
	memset(buf, 0x5a, BS);
	wfd = openat(tdir, "rf.img", O_RDWR | O_CLOEXEC);
	REQUIRE(wfd >= 0);
	usleep(10000);   /* a later mtime */
	CHECK(pwrite(wfd, buf, BS, 2 * BS) == BS);
	close(wfd);
	bfd = -2;
	CHECK_EQ(vmb_image_read_fd(img, 2 * BS, BS, &bfd, &n), 1);
	CHECK_EQ(bfd, vmb_image_fd(img));   /* the delta's, not the base's */
	CHECK(pread(bfd, buf + BS, BS, 2 * BS) == BS && !memcmp(buf, buf + BS, BS));
	CHECK_EQ(vmb_image_take_foreign(img), 1);
	vmb_image_close(img);
	vmb_base_put(&bases[2]->b);
	bases[2] = NULL;
}

/* Writes: a partial block over the base keeps the base's other bytes; zeros over a
 * whole block hide it (ZERO); a partial zero write into a base block whose other
 * bytes are zeros makes it ZERO; into holes of the base nothing changes. */
static void test_write(void)
{
	struct vmb_image *img = delta("w.img", 1);   /* a base read only by read */
	unsigned char *want = malloc(BSIZE + 3 * BS), buf[BS];
	uint64_t alloc;

	REQUIRE(img != NULL);
	memcpy(want, bdata, BSIZE);
	memset(buf, 0xab, sizeof(buf));
	CHECK_EQ(vmb_image_write(img, buf, 100, 3 * BS + 10, NULL), 100);
	memset(want + 3 * BS + 10, 0xab, 100);
	CHECK_EQ(vmb_image_write(img, buf, BS, 5 * BS + 2000, NULL), BS);   /* two blocks */
	memset(want + 5 * BS + 2000, 0xab, BS);
	memset(buf, 0, sizeof(buf));
	CHECK_EQ(vmb_image_write(img, buf, BS, 7 * BS, NULL), BS);   /* ZERO, hides it */
	memset(want + 7 * BS, 0, BS);
	CHECK_EQ(vmb_image_write(img, buf, 10, 29 * BS + 5, NULL), 10);   /* zeros on zeros */
	CHECK_EQ(vmb_image_write(img, buf, 10, 12 * BS + 5, NULL), 10);   /* on a hole */
	CHECK(same(img, want, BSIZE));
	alloc = vmb_image_alloc_bytes(img);
	CHECK_EQ(alloc, 42ull * BS);   /* 7 and 29 zero now */
	CHECK_EQ(seek(img, 7 * BS, SEEK_DATA), 8 * BS);
	CHECK_EQ(seek(img, 28 * BS, SEEK_HOLE), 29 * BS);
	/* past the end: the partial last block keeps the base's bytes, zeros between */
	memset(buf, 0xcd, sizeof(buf));
	CHECK_EQ(vmb_image_write(img, buf, 10, BSIZE + 500, NULL), 10);
	memset(want + BSIZE, 0, 500);
	memset(want + BSIZE + 500, 0xcd, 10);
	CHECK(same(img, want, BSIZE + 510));
	vmb_image_close(img);
	/* the saved map (version 2) is used as it is */
	{
		int rebuilt;
		img = reopen("w.img", &rebuilt);
		CHECK_EQ(rebuilt, 0);
		REQUIRE(img != NULL);
		CHECK(same(img, want, BSIZE + 510));
		CHECK_EQ(vmb_image_alloc_bytes(img), 42ull * BS);
		vmb_image_close(img);
	}
	free(want);
}

/* Truncate: the limit goes down (xattr too); a shrink into a base block copies it
 * first; a shrink-then-extend reads zeros; punch and zero range over the base. */
static void test_truncate_punch(void)
{
	struct vmb_image *img = delta("t.img", 0);
	unsigned char *want = calloc(1, NB * BS);
	char x[80];
	ssize_t n;
	int fd;

	REQUIRE(img != NULL);
	memcpy(want, bdata, BSIZE);
	CHECK_RC(vmb_image_truncate(img, 45 * BS + 100, NULL), 0);
	fd = vmb_image_fd(img);
	n = fgetxattr(fd, VMB_BASE_XATTR, x, sizeof(x) - 1);
	REQUIRE(n > 0);
	x[n] = '\0';
	CHECK_STR(x, " 45");
	CHECK_RC(vmb_image_truncate(img, 50 * BS, NULL), 0);
	memset(want + 45 * BS + 100, 0, NB * BS - (45 * BS + 100));
	CHECK(same(img, want, 50 * BS));
	CHECK_EQ(seek(img, 46 * BS, SEEK_DATA), (uint64_t)-ENXIO);
	CHECK_EQ(vmb_image_alloc_bytes(img), 26ull * BS);   /* 0-9, 20-29, 40-45 */
	/* aligned: no block copied, the limit at the size */
	CHECK_RC(vmb_image_truncate(img, 42 * BS, NULL), 0);
	CHECK_RC(vmb_image_truncate(img, 50 * BS, NULL), 0);
	memset(want + 42 * BS, 0, 8 * BS);
	CHECK(same(img, want, 50 * BS));
	/* punch: whole blocks hide the base, partial edges keep its other bytes */
	CHECK_RC(vmb_image_fallocate(img, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				     2 * BS + 100, 3 * BS, NULL), 0);
	memset(want + 2 * BS + 100, 0, 3 * BS);
	CHECK_RC(vmb_image_fallocate(img, FALLOC_FL_ZERO_RANGE, 21 * BS, 2 * BS, NULL), 0);
	memset(want + 21 * BS, 0, 2 * BS);
	CHECK(same(img, want, 50 * BS));
	CHECK_EQ(seek(img, 3 * BS, SEEK_DATA), 5 * BS - 0);
	/* fallocate mode 0 over base blocks changes nothing they read */
	CHECK_RC(vmb_image_fallocate(img, 0, 0, 12 * BS, NULL), 0);
	CHECK(same(img, want, 50 * BS));
	vmb_image_close(img);
	img = reopen("t.img", NULL);
	REQUIRE(img != NULL);
	CHECK(same(img, want, 50 * BS));
	vmb_image_close(img);
	free(want);
}

/* Two images over one delta, as two mounts of a store: what one changes shows in
 * the other at its next check (an open, a read of a hole, a stat) after the commit
 * at a close (vmb_image_commit), also where the change is in the map only: blocks
 * zeroed over the base (a punch, a block of zeros written) and a limit lowered by a
 * truncate down and up again. The change sets the backing file's modification
 * time, as it would on a plain file, and the commit sets it again, so that an image
 * that looked in between looks again. */
static void test_two_mounts(void)
{
	struct vmb_image *a = delta("two.img", 0), *b;
	unsigned char *want = calloc(1, NB * BS), zeros[BS];
	struct stat st;

	REQUIRE(a != NULL);
	b = reopen("two.img", NULL);
	REQUIRE(b != NULL);
	memcpy(want, bdata, BSIZE);
	CHECK(same(b, want, BSIZE));
	/* a punch over base blocks: the backing file, a hole there, does not change */
	REQUIRE(fstat(vmb_image_fd(a), &st) == 0);
	CHECK_EQ((long long)st.st_mtim.tv_sec, 1700000000LL);
	CHECK_RC(vmb_image_fallocate(a, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 3 * BS,
				     2 * BS, NULL), 0);
	memset(want + 3 * BS, 0, 2 * BS);
	REQUIRE(fstat(vmb_image_fd(a), &st) == 0);
	CHECK((long long)st.st_mtim.tv_sec > 1700000000LL);   /* the punch's time */
	/* a whole block of zeros written over a base block */
	memset(zeros, 0, sizeof(zeros));
	CHECK_EQ(vmb_image_write(a, zeros, BS, 6 * BS, NULL), (ssize_t)BS);
	memset(want + 6 * BS, 0, BS);
	/* down and up again: the limit goes down to 45 */
	CHECK_RC(vmb_image_truncate(a, 45 * BS + 100, NULL), 0);
	CHECK_RC(vmb_image_truncate(a, BSIZE, NULL), 0);
	memset(want + 45 * BS + 100, 0, BSIZE - (45 * BS + 100));
	CHECK(same(a, want, BSIZE));
	/* the other image looks before the commit: it sees a change (and the map
	 * committed before it); the commit sets the time again, so that it looks
	 * again */
	CHECK_EQ(vmb_image_revalidate(b, 0, NULL), 1);
	CHECK_RC(vmb_image_commit(a, NULL), 0);
	/* the other image finds the change and takes the committed map */
	CHECK_EQ(vmb_image_revalidate(b, 0, NULL), 1);
	CHECK(same(b, want, BSIZE));
	CHECK_EQ(seek(b, 3 * BS, SEEK_DATA), 5 * BS);
	CHECK_EQ(seek(b, 46 * BS, SEEK_DATA), (uint64_t)-ENXIO);
	CHECK_EQ(vmb_image_alloc_bytes(b), vmb_image_alloc_bytes(a));
	/* and the other way */
	CHECK_RC(vmb_image_fallocate(b, FALLOC_FL_ZERO_RANGE, 21 * BS, 2 * BS, NULL), 0);
	memset(want + 21 * BS, 0, 2 * BS);
	CHECK_RC(vmb_image_commit(b, NULL), 0);
	CHECK_EQ(vmb_image_revalidate(a, 0, NULL), 1);
	CHECK(same(a, want, BSIZE));
	/* nothing changed: no check finds a change, a commit saves nothing */
	CHECK_RC(vmb_image_commit(a, NULL), 0);
	CHECK_EQ(vmb_image_revalidate(b, 0, NULL), 0);
	vmb_image_close(a);
	vmb_image_close(b);
	a = reopen("two.img", NULL);
	REQUIRE(a != NULL);
	CHECK(same(a, want, BSIZE));
	vmb_image_close(a);
	free(want);
}

/* A daemon killed between a change and the next save: the reopened file is rebuilt
 * from its last committed map and its backing file: committed ZERO stays, data
 * written since is DATA, a committed DATA block punched since is ZERO; a block
 * zeroed since the commit and not saved reads the base again (old content, never
 * invented). A stale version-2 sidecar (limit other than the xattr) is rebuilt the
 * same way. Without any committed map, holes read the base (lost, reported). */
static void test_rebuild(void)
{
	struct vmb_image *img = delta("k.img", 0);
	unsigned char buf[BS], *want = malloc(BSIZE);
	struct vmb_image_baseinfo bi;
	struct vmb_blockmap m;
	char scname[VMB_SIDECAR_NAME_MAX];
	struct stat st;
	uint64_t size;
	int rebuilt, status;
	pid_t pid;

	REQUIRE(img != NULL);
	memcpy(want, bdata, BSIZE);
	memset(buf, 0x5a, BS);
	REQUIRE(vmb_image_write(img, buf, BS, 3 * BS, NULL) == BS);   /* DATA, committed */
	REQUIRE(vmb_image_write(img, buf, BS, 4 * BS, NULL) == BS);   /* punched later */
	REQUIRE(vmb_image_fallocate(img, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 5 * BS,
				    BS, NULL) == 0);                   /* ZERO, committed */
	REQUIRE(vmb_image_sync(img, 0, NULL) == 0);
	vmb_image_close(img);
	pid = fork();
	if (pid == 0) {
		img = reopen("k.img", NULL);
		if (!img)
			_exit(2);
		memset(buf, 0x77, BS);
		if (vmb_image_write(img, buf, BS, 7 * BS, NULL) != BS ||
		    vmb_image_fallocate(img, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					4 * BS, BS, NULL) < 0 ||
		    vmb_image_fallocate(img, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					9 * BS, BS, NULL) < 0)
			_exit(3);
		_exit(0);   /* killed: no save */
	}
	REQUIRE(pid > 0);
	REQUIRE(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
	memset(want + 3 * BS, 0x5a, BS);
	memset(want + 4 * BS, 0, BS);      /* punched since: a hole of committed DATA */
	memset(want + 5 * BS, 0, BS);      /* committed ZERO */
	memset(want + 7 * BS, 0x77, BS);   /* data since */
	/* block 9: zeroed since, not saved: the base again */
	img = reopen("k.img", &rebuilt);
	CHECK_EQ(rebuilt, 1);
	REQUIRE(img != NULL);
	CHECK(same(img, want, BSIZE));
	CHECK_EQ(seek(img, 4 * BS, SEEK_DATA), 6 * BS);
	vmb_image_close(img);
	/* a stale version 2: the xattr's limit differs from the sidecar's */
	{
		int fd = openat(tdir, "k.img", O_RDWR | O_CLOEXEC);
		REQUIRE(fd >= 0);
		REQUIRE(vmb_image_set_base_xattr(fd, "k.img", bases[0]->b.id, 30, NULL) == 0);
		close(fd);
	}
	memset(want + 30 * BS, 0, BSIZE - 30 * BS);
	img = reopen("k.img", &rebuilt);
	CHECK_EQ(rebuilt, 1);
	REQUIRE(img != NULL);
	CHECK(same(img, want, BSIZE));
	vmb_image_close(img);
	/* lost: no sidecar at all: holes read the base (block 5 too), reported */
	{
		int fd = openat(tdir, "k.img", O_RDWR | O_CLOEXEC);
		REQUIRE(fd >= 0 && fstat(fd, &st) == 0);
		vmb_sidecar_name(st.st_ino, scname);
		REQUIRE(vmb_sidecar_remove(mapfd, scname, NULL) == 0);
		vmb_blockmap_init(&m);
		CHECK_RC(vmb_image_load_map2(fd, mapfd, "k.img", &resolver, &m, &size, &rebuilt, &bi,
					     NULL), 0);
		CHECK_EQ(rebuilt, 1);
		CHECK_EQ(bi.lost, 1);
		CHECK(!strcmp(bi.id, bases[0]->b.id));
		CHECK_EQ(bi.limit, 30);
		CHECK(bi.base == &bases[0]->b);
		CHECK_EQ(vmb_image_chain_data_blocks(&m, bi.base, bi.limit, size),
			 10ull + 10ull);   /* 0-9 (3, 4 data or base), 20-29 */
		CHECK_EQ(vmb_blockmap_get(&m, 5, NULL), VMB_ABSENT);
		vmb_base_put(bi.base);
		vmb_blockmap_destroy(&m);
		/* the old reader refuses a layered file */
		CHECK_RC(vmb_image_load_map(fd, mapfd, "k.img", &m, &size, &rebuilt, NULL), -EIO);
		close(fd);
	}
	free(want);
}

/* A missing layer, a layer that fails, no layers given: -EIO naming the layer. */
static void test_missing_layer(void)
{
	struct vmb_image *img = delta("m.img", 0), *img2 = NULL;
	unsigned char buf[BS];
	struct tbase *keep;
	struct vmb_err e;
	ssize_t n;
	int fd;

	REQUIRE(img != NULL);
	vmb_image_close(img);
	vmb_err_clear(&e);
	fd = openat(tdir, "m.img", O_RDWR | O_CLOEXEC);
	CHECK_RC(vmb_image_open(&img2, fd, mapfd, "m.img", NULL, &e), -EIO);
	CHECK_STR(e.msg, "no layers were given");
	CHECK_STR(e.msg, bases[0]->b.id);
	keep = bases[0];
	bases[0] = NULL;
	vmb_err_clear(&e);
	CHECK_RC(vmb_image_open2(&img2, fd, mapfd, "m.img", NULL, &resolver, &e), -EIO);
	CHECK_STR(e.msg, "cannot open 'm.img'");
	CHECK_STR(e.msg, keep->b.id);
	bases[0] = keep;
	REQUIRE(vmb_image_open2(&img2, fd, mapfd, "m.img", NULL, &resolver, &e) == 0);
	keep->fail = 1;
	memset(buf, 0x11, BS);
	vmb_err_clear(&e);
	n = vmb_image_read(img2, buf, BS, 0, NULL, &e);
	CHECK_EQ(n, (uint64_t)-EIO);
	CHECK_STR(e.msg, keep->b.id);
	CHECK_STR(e.msg, "cannot read 'm.img'");
	/* a write into part of a base block cannot make up the rest */
	CHECK(vmb_image_write(img2, buf, 10, 100, &e) < 0);
	keep->fail = 0;
	CHECK_EQ(vmb_image_read(img2, buf, BS, 0, NULL, &e), BS);
	CHECK(!memcmp(buf, bdata, BS));
	vmb_image_close(img2);
	/* a corrupt base xattr */
	fd = openat(tdir, "m.img", O_RDWR | O_CLOEXEC);
	REQUIRE(fsetxattr(fd, VMB_BASE_XATTR, "xyz 12", 6, 0) == 0);
	vmb_err_clear(&e);
	CHECK_RC(vmb_image_open2(&img2, fd, mapfd, "m.img", NULL, &resolver, &e), -EIO);
	CHECK_STR(e.msg, "base xattr of 'm.img' is corrupt ('xyz 12')");
	close(fd);
}

/* copy_range out of a layered file (base blocks by copy_file_range from its
 * descriptor, or by read) into a plain file: holes stay holes. */
static void test_copy(void)
{
	for (int i = 0; i < 2; i++) {
		struct vmb_image *src = delta("cs.img", i), *dst = NULL;
		unsigned char *want = calloc(1, BSIZE);
		int fd = openat(tdir, "cd.img", O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

		REQUIRE(src != NULL && fd >= 0);
		REQUIRE(vmb_image_open(&dst, fd, mapfd, "cd.img", NULL, NULL) == 0);
		CHECK_EQ(vmb_image_copy_range(src, 0, dst, 0, BSIZE, NULL), BSIZE);
		CHECK(same(dst, bdata, BSIZE));
		CHECK_EQ(vmb_image_alloc_bytes(dst), 44ull * BS);
		/* unaligned, into a delta over the same base: merged edges */
		memcpy(want, bdata, BSIZE);
		memcpy(want + 20 * BS + 7, bdata + 3 * BS + 100, 5 * BS);
		CHECK_EQ(vmb_image_copy_range(dst, 3 * BS + 100, src, 20 * BS + 7, 5 * BS, NULL),
			 5 * BS);
		CHECK(same(src, want, BSIZE));
		vmb_image_close(src);
		vmb_image_close(dst);
		free(want);
	}
}

/* A frozen image: reads like its base, refuses changes with EROFS. */
static void test_frozen(void)
{
	struct vmb_image *img = NULL, *dst = NULL;
	struct vmb_err e;
	unsigned char b = 1;
	int fd;

	REQUIRE(vmb_image_open_frozen(&img, &bases[0]->b, BSIZE, "snap/x.img", NULL, NULL) == 0);
	CHECK(same(img, bdata, BSIZE));
	CHECK_EQ(vmb_image_alloc_bytes(img), 44ull * BS);
	CHECK_EQ(seek(img, 10 * BS, SEEK_DATA), 20 * BS);
	CHECK_EQ(vmb_image_fd(img), (uint64_t)-1);
	vmb_err_clear(&e);
	CHECK_RC((int)vmb_image_write(img, &b, 1, 0, &e), -EROFS);
	CHECK_STR(e.msg, "read-only snapshot");
	CHECK_RC(vmb_image_truncate(img, 0, NULL), -EROFS);
	CHECK_RC(vmb_image_fallocate(img, 0, 0, 1, NULL), -EROFS);
	CHECK_RC(vmb_image_park(img), -EBUSY);
	CHECK_RC(vmb_image_sync(img, 0, NULL), 0);
	fd = openat(tdir, "fz.img", O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	REQUIRE(vmb_image_open(&dst, fd, mapfd, "fz.img", NULL, NULL) == 0);
	CHECK_EQ(vmb_image_copy_range(img, 0, dst, 0, BSIZE, NULL), BSIZE);
	CHECK(same(dst, bdata, BSIZE));
	CHECK_RC((int)vmb_image_copy_range(dst, 0, img, 0, 10, NULL), -EROFS);
	vmb_image_close(dst);
	vmb_image_close(img);
}

/* create_delta: mode, owner, times, the xattr, its committed (empty) map; flatten:
 * a plain file with the same content, readable without layers. */
static void test_create_flatten(void)
{
	struct vmb_image *img = delta("f.img", 0);
	unsigned char buf[100], *want = malloc(BSIZE);
	struct stat st, st2;
	char x[80];
	int rebuilt, fd;

	REQUIRE(img != NULL);
	CHECK(fstat(vmb_image_fd(img), &st) == 0);
	CHECK_EQ(st.st_mode & 07777, 0640);
	CHECK_EQ(st.st_mtim.tv_sec, 1700000000);
	CHECK_EQ(st.st_blocks, 0);
	vmb_image_close(img);
	img = reopen("f.img", &rebuilt);
	CHECK_EQ(rebuilt, 0);
	REQUIRE(img != NULL);
	memcpy(want, bdata, BSIZE);
	memset(buf, 0x42, sizeof(buf));
	CHECK_EQ(vmb_image_write(img, buf, sizeof(buf), 22 * BS + 1, NULL), sizeof(buf));
	memcpy(want + 22 * BS + 1, buf, sizeof(buf));
	CHECK(fsetxattr(vmb_image_fd(img), "user.test", "v", 1, 0) == 0);
	CHECK_RC(vmb_image_flatten(img, tdir, "f.img", NULL), 0);
	CHECK(same(img, want, BSIZE));
	CHECK(vmb_image_base(img, NULL) == NULL);
	CHECK_EQ(vmb_image_alloc_bytes(img), 44ull * BS);
	CHECK(fstatat(tdir, "f.img", &st2, 0) == 0);
	CHECK(st2.st_ino != st.st_ino);
	CHECK_EQ(st2.st_mode & 07777, 0640);
	CHECK_EQ((uint64_t)st2.st_blocks, 44ull * BS / 512);
	fd = openat(tdir, "f.img", O_RDONLY | O_CLOEXEC);
	CHECK(fgetxattr(fd, VMB_BASE_XATTR, x, sizeof(x)) < 0 && errno == ENODATA);
	CHECK(fgetxattr(fd, "user.test", x, sizeof(x)) == 1);
	close(fd);
	CHECK_RC(vmb_image_flatten(img, tdir, "f.img", NULL), 0);   /* no base: nothing */
	vmb_image_close(img);
	/* a plain file now: opens without layers, with its saved map */
	fd = openat(tdir, "f.img", O_RDWR | O_CLOEXEC);
	img = NULL;
	CHECK_RC(vmb_image_open(&img, fd, mapfd, "f.img", NULL, NULL), 0);
	if (img) {
		CHECK(same(img, want, BSIZE));
		vmb_image_close(img);
	}
	free(want);
}

/* Freeze with real layers: the inode becomes a layer, the name a new empty delta
 * with the same content, owner, mode, times; later writes never reach the layer;
 * an empty delta is not frozen again; a second freeze stands on the first; a hard
 * link is refused; offline freeze; flatten of a two-layer file. */
static void test_freeze(void)
{
	struct vmb_layers *ls = NULL;
	struct vmb_base_resolver lres;
	struct vmb_image *img = NULL, *fz = NULL;
	struct vmb_base *b1 = NULL;
	unsigned char *v1 = calloc(1, 40 * BS), *v2 = calloc(1, 40 * BS), buf[BS];
	char id1[VMB_BASE_ID_LEN + 1], id2[VMB_BASE_ID_LEN + 1], id3[VMB_BASE_ID_LEN + 1];
	char path[128];
	struct stat before, after, lst;
	struct vmb_err e;
	uint64_t ino = 1, limit;
	int metafd, fd, rebuilt;

	REQUIRE(mkdirat(tdir, "meta", 0700) == 0);
	metafd = openat(tdir, "meta", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	vmb_err_clear(&e);
	REQUIRE(vmb_layers_open(&ls, metafd, NULL, &e) == 0);
	lres = vmb_layers_resolver(ls);
	/* a plain file: data in blocks 0-4 and 10, a hole between, 40 blocks */
	fd = openat(tdir, "fr.img", O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0604);
	REQUIRE(fd >= 0 && vmb_image_open2(&img, fd, mapfd, "fr.img", NULL, &lres, &e) == 0);
	for (unsigned i = 0; i < 5 * BS; i++)
		v1[i] = (unsigned char)(i % 253 + 1);
	memset(v1 + 10 * BS, 0x10, BS);
	REQUIRE(vmb_image_write(img, v1, 5 * BS, 0, NULL) == 5 * BS);
	REQUIRE(vmb_image_write(img, v1 + 10 * BS, BS, 10 * BS, NULL) == BS);
	REQUIRE(vmb_image_truncate(img, 40 * BS - 10, NULL) == 0);
	CHECK(fstat(vmb_image_fd(img), &before) == 0);
	CHECK_RC(vmb_image_freeze(img, ls, tdir, "fr.img", id1, &ino, &e), 0);
	CHECK(ino != 0 && ino != before.st_ino);
	CHECK(fstatat(tdir, "fr.img", &after, 0) == 0);
	CHECK_EQ(after.st_ino, ino);
	CHECK_EQ(after.st_mode & 07777, 0604);
	CHECK_EQ(after.st_mtim.tv_sec, before.st_mtim.tv_sec);
	CHECK_EQ(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec);
	CHECK_EQ(after.st_blocks, 0);
	snprintf(path, sizeof(path), "layers/%s.data", id1);
	CHECK(fstatat(metafd, path, &lst, 0) == 0 && lst.st_ino == before.st_ino);
	CHECK(vmb_image_base(img, &limit) != NULL && limit == 40);
	CHECK(same(img, v1, 40 * BS - 10));
	CHECK_EQ(vmb_image_alloc_bytes(img), 6ull * BS);
	CHECK_EQ(seek(img, 5 * BS, SEEK_DATA), 10 * BS);
	/* nothing changed since: the same layer */
	CHECK_RC(vmb_image_freeze(img, ls, tdir, "fr.img", id2, &ino, &e), 0);
	CHECK(!strcmp(id1, id2));
	CHECK_EQ(ino, 0);
	/* writes after the freeze stay in the delta */
	memcpy(v2, v1, 40 * BS);
	memset(buf, 0xee, BS);
	REQUIRE(vmb_image_write(img, buf, 100, 2 * BS + 50, NULL) == 100);
	memset(v2 + 2 * BS + 50, 0xee, 100);
	REQUIRE(vmb_image_fallocate(img, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 10 * BS, BS,
				    NULL) == 0);
	memset(v2 + 10 * BS, 0, BS);
	CHECK(same(img, v2, 40 * BS - 10));
	REQUIRE(vmb_layers_get(ls, id1, &b1, &e) == 0);
	REQUIRE(vmb_image_open_frozen(&fz, b1, 40 * BS - 10, "v1", NULL, NULL) == 0);
	CHECK(same(fz, v1, 40 * BS - 10));
	vmb_image_close(fz);
	/* a second freeze stands on the first */
	CHECK_RC(vmb_image_freeze(img, ls, tdir, "fr.img", id2, &ino, &e), 0);
	CHECK(strcmp(id1, id2) != 0);
	CHECK(vmb_image_base(img, NULL) && vmb_image_base(img, NULL)->depth == 2);
	CHECK(same(img, v2, 40 * BS - 10));
	CHECK_EQ(vmb_image_alloc_bytes(img), 5ull * BS);
	vmb_image_close(img);
	img = NULL;
	/* reopened: its saved map (version 2) is current */
	fd = openat(tdir, "fr.img", O_RDWR | O_CLOEXEC);
	{
		struct vmb_blockmap m;
		uint64_t size;
		vmb_blockmap_init(&m);
		CHECK_RC(vmb_image_load_map2(fd, mapfd, "fr.img", NULL, &m, &size, &rebuilt, NULL,
					     &e), 0);
		CHECK_EQ(rebuilt, 0);
		vmb_blockmap_destroy(&m);
	}
	REQUIRE(vmb_image_open2(&img, fd, mapfd, "fr.img", NULL, &lres, &e) == 0);
	CHECK(same(img, v2, 40 * BS - 10));
	/* a hard link: refused, nothing changes */
	REQUIRE(linkat(tdir, "fr.img", tdir, "fr-link.img", 0) == 0);
	REQUIRE(vmb_image_write(img, buf, 10, 0, NULL) == 10);
	memset(v2, 0xee, 10);
	vmb_err_clear(&e);
	CHECK_RC(vmb_image_freeze(img, ls, tdir, "fr.img", id3, &ino, &e), -EMLINK);
	CHECK_STR(e.msg, "hard links");
	CHECK(same(img, v2, 40 * BS - 10));
	unlinkat(tdir, "fr-link.img", 0);
	/* flatten: a plain file again, every layer's bytes in it */
	CHECK_RC(vmb_image_flatten(img, tdir, "fr.img", &e), 0);
	CHECK(same(img, v2, 40 * BS - 10));
	CHECK(vmb_image_base(img, NULL) == NULL);
	vmb_image_close(img);
	/* offline: opened, frozen, closed */
	CHECK_RC(vmb_image_freeze_offline(ls, tdir, "fr.img", mapfd, NULL, id3, &ino, &e), 0);
	CHECK(ino != 0);
	fd = openat(tdir, "fr.img", O_RDWR | O_CLOEXEC);
	img = NULL;
	REQUIRE(vmb_image_open2(&img, fd, mapfd, "fr.img", NULL, &lres, &e) == 0);
	CHECK(same(img, v2, 40 * BS - 10));
	CHECK(!strcmp(vmb_image_base(img, NULL)->id, id3));
	vmb_image_close(img);
	vmb_base_put(b1);
	vmb_layers_close(ls);
	close(metafd);
	free(v1);
	free(v2);
}

static void remove_tmpdir(void)
{
	harness_rmtree(tmpdir);
}

int main(void)
{
	if (getuid() != 0)
		SKIP("trusted.* xattrs need root");
	if (harness_tmpdir(tmpdir, sizeof(tmpdir), "imgbase") < 0)
		return 99;
	tdir = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (tdir < 0 || mkdirat(tdir, "maps", 0700) < 0 ||
	    (mapfd = openat(tdir, "maps", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return 99;
	if (fsetxattr(tdir, "trusted.vmbundlefs.probe", "1", 1, 0) < 0)
		SKIP("no trusted.* xattrs on the temporary directory's filesystem");
	make_bases();
	RUN(test_read_through);
	RUN(test_read_fd);
	RUN(test_write);
	RUN(test_truncate_punch);
	RUN(test_two_mounts);
	RUN(test_rebuild);
	RUN(test_missing_layer);
	RUN(test_copy);
	RUN(test_frozen);
	RUN(test_create_flatten);
	RUN(test_freeze);
	vmb_base_put(&bases[0]->b);
	vmb_base_put(&bases[1]->b);
	free(bdata);
	close(mapfd);
	close(tdir);
	remove_tmpdir();
	return harness_exit("test_image_base");
}
