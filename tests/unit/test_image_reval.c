/* test_image_reval.c - unit tests of image revalidation (src/image.c, image.h),
 * without a mount: a backing file changed by someone else (another descriptor, as
 * another mount or a writer in the store would) while an image is open over it is
 * found, the map rebuilt rather than read as zeros, and a map is never saved unless
 * it describes the backing file; the image's own changes are not taken for
 * someone else's. */
#include "config.h"
#include "image/image.h"
#include "map/sidecar.h"
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <unistd.h>

#define BS 4096u
#define MiB (1u << 20)

static char tmpdir[4096];
static int tdir = -1;      /* the temporary directory */
static int mapfd = -1;     /* its "maps" subdirectory */
static unsigned char xbuf[MiB];

static struct vmb_image *img_open(const char *name, uint64_t size, int create, int flags)
{
	struct vmb_image *img = NULL;
	struct vmb_err e;
	int fd = openat(tdir, name, flags | O_CLOEXEC | (create ? O_CREAT | O_TRUNC : 0), 0644);

	if (fd < 0)
		return NULL;
	if (create && ftruncate(fd, (off_t)size) < 0) {
		close(fd);
		return NULL;
	}
	vmb_err_clear(&e);
	if (vmb_image_open(&img, fd, mapfd, name, NULL, &e) < 0) {
		fprintf(stderr, "    vmb_image_open(%s): %s\n", name, e.msg);
		close(fd);
		return NULL;
	}
	return img;
}

/* The image writes one byte c at off. */
static ssize_t wr(struct vmb_image *img, int c, uint64_t off)
{
	unsigned char b = (unsigned char)c;

	return vmb_image_write(img, &b, 1, off, NULL);
}

/* Someone else writes len bytes of byte c at off (a descriptor of its own). */
static int foreign_write(const char *name, uint64_t off, size_t len, int c)
{
	int fd = openat(tdir, name, O_WRONLY | O_CLOEXEC), ok;

	if (fd < 0)
		return 0;
	memset(xbuf, c, len);
	ok = pwrite(fd, xbuf, len, (off_t)off) == (ssize_t)len && fsync(fd) == 0;
	close(fd);
	return ok;
}

static int foreign_truncate(const char *name, uint64_t size)
{
	int fd = openat(tdir, name, O_WRONLY | O_CLOEXEC), ok;

	if (fd < 0)
		return 0;
	ok = ftruncate(fd, (off_t)size) == 0;
	close(fd);
	return ok;
}

/* The saved map of name, loaded as vmbundlefs ls and fsck load it. */
static int load(const char *name, struct vmb_blockmap *m, int *rebuilt)
{
	uint64_t size;
	struct vmb_err e;
	int fd = openat(tdir, name, O_RDONLY | O_CLOEXEC), r;

	if (fd < 0)
		return -errno;
	vmb_err_clear(&e);
	r = vmb_image_load_map(fd, mapfd, name, m, &size, rebuilt, &e);
	close(fd);
	return r;
}

/* The bytes [off, off + len) read as byte c through the image (not as holes). */
static int reads_as(struct vmb_image *img, uint64_t off, size_t len, int c)
{
	static unsigned char buf[MiB];
	int holes = -1;

	memset(buf, c ^ 0x5a, len);
	if (vmb_image_read(img, buf, len, off, &holes, NULL) != (ssize_t)len)
		return 0;
	if (holes == 1)
		return c == 0;
	for (size_t i = 0; i < len; i++)
		if (buf[i] != c)
			return 0;
	return 1;
}

/* The scenario, one image over the file: a read of a range the map calls
 * zeros finds the foreign write; SEEK_DATA finds it; the map saved at close is the
 * rebuilt one, under the stamp it was built from. */
static void test_read_finds_foreign_write(void)
{
	struct vmb_image *img = img_open("a.img", 64 * MiB, 1, O_RDWR);
	struct vmb_blockmap m;
	uint64_t res = 0;
	int rebuilt = -1;

	REQUIRE(img);
	CHECK_RC(vmb_image_persist(img, NULL), 0);
	CHECK(reads_as(img, 32 * MiB, MiB, 0));
	REQUIRE(foreign_write("a.img", 32 * MiB, MiB, 'X'));
	CHECK(reads_as(img, 32 * MiB, MiB, 'X'));
	CHECK_RC(vmb_image_seek(img, 0, SEEK_DATA, &res, NULL), 0);
	CHECK_EQ(res, 32 * MiB);
	CHECK_EQ(vmb_image_alloc_bytes(img), MiB);
	CHECK_EQ(vmb_image_take_foreign(img), 1);
	CHECK_EQ(vmb_image_take_foreign(img), 0);
	vmb_image_close(img);
	vmb_blockmap_init(&m);
	CHECK_RC(load("a.img", &m, &rebuilt), 0);
	CHECK_EQ(rebuilt, 0);   /* saved, and trusted */
	CHECK_EQ(vmb_blockmap_get(&m, 32 * MiB / BS, NULL), VMB_DATA);
	CHECK_EQ(m.data_blocks, MiB / BS);
	vmb_blockmap_destroy(&m);
}

/* No read, no seek: the change is found by persist (and by close), so the map saved
 * is never the stale one under the new stamp. */
static void test_persist_revalidates(void)
{
	struct vmb_image *img = img_open("b.img", 64 * MiB, 1, O_RDWR);
	struct vmb_blockmap m;
	int rebuilt = -1;

	REQUIRE(img);
	CHECK_EQ(wr(img, 'a', 0), 1);   /* an own change: the map is to be saved */
	REQUIRE(foreign_write("b.img", 32 * MiB, MiB, 'X'));
	CHECK_RC(vmb_image_persist(img, NULL), 0);
	vmb_blockmap_init(&m);
	CHECK_RC(load("b.img", &m, &rebuilt), 0);
	CHECK_EQ(rebuilt, 0);
	CHECK_EQ(vmb_blockmap_get(&m, 32 * MiB / BS, NULL), VMB_DATA);
	CHECK_EQ(vmb_blockmap_get(&m, 0, NULL), VMB_DATA);
	/* and at close, from a read-write image that changed nothing since */
	REQUIRE(foreign_write("b.img", 40 * MiB, MiB, 'Y'));
	vmb_image_close(img);
	CHECK_RC(load("b.img", &m, &rebuilt), 0);
	CHECK_EQ(rebuilt, 0);
	CHECK_EQ(vmb_blockmap_get(&m, 40 * MiB / BS, NULL), VMB_DATA);
	CHECK_EQ(m.data_blocks, 2 * MiB / BS + 1);
	vmb_blockmap_destroy(&m);
}

/* The image's own changes are not someone else's; a foreign truncate, extension and
 * punch are found by an explicit check (open, getattr) and by seek. */
static void test_own_and_foreign_shapes(void)
{
	struct vmb_image *img = img_open("c.img", 16 * MiB, 1, O_RDWR);
	struct timespec ts[2] = { { 0, UTIME_OMIT }, { 12345, 0 } };
	uint64_t res = 0;
	int fd;

	REQUIRE(img);
	CHECK_EQ(wr(img, 'o', 5 * BS), 1);
	CHECK_RC(vmb_image_truncate(img, 20 * MiB, NULL), 0);
	CHECK_RC(vmb_image_fallocate(img, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, BS,
				     NULL), 0);
	CHECK_RC(vmb_image_fallocate(img, 0, 8 * MiB, MiB, NULL), 0);
	CHECK_RC(vmb_image_set_times(img, ts, NULL), 0);
	CHECK_RC(vmb_image_sync(img, 0, NULL), 0);
	CHECK_RC(vmb_image_revalidate(img, 0, NULL), 0);
	CHECK_EQ(vmb_image_take_foreign(img), 0);

	REQUIRE(foreign_truncate("c.img", 40 * MiB));
	REQUIRE(foreign_write("c.img", 36 * MiB, MiB, 'Z'));
	CHECK_RC(vmb_image_revalidate(img, 0, NULL), 1);
	CHECK_EQ(vmb_image_size(img), 40 * MiB);
	CHECK(reads_as(img, 36 * MiB, MiB, 'Z'));
	CHECK(reads_as(img, 5 * BS, 1, 'o'));
	fd = openat(tdir, "c.img", O_WRONLY | O_CLOEXEC);
	REQUIRE(fd >= 0);
	CHECK(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 36 * MiB, MiB) == 0);
	close(fd);
	CHECK_RC(vmb_image_seek(img, 10 * MiB, SEEK_DATA, &res, NULL), -ENXIO);
	CHECK(reads_as(img, 36 * MiB, MiB, 0));
	REQUIRE(foreign_truncate("c.img", 3 * BS));
	CHECK_RC(vmb_image_seek(img, 0, SEEK_HOLE, &res, NULL), 0);
	CHECK_EQ(vmb_image_size(img), 3 * BS);
	CHECK_EQ(vmb_image_alloc_bytes(img), 0);
	CHECK_EQ(vmb_image_take_foreign(img), 1);
	vmb_image_close(img);
}

/* A read-only image (a read-only handle, a read-only store) finds the change too,
 * and the read-write image over the same file saves the right map. */
static void test_readonly_image(void)
{
	struct vmb_image *rw = img_open("d.img", 8 * MiB, 1, O_RDWR), *ro;
	struct vmb_blockmap m;
	int rebuilt = -1;

	REQUIRE(rw);
	CHECK_RC(vmb_image_persist(rw, NULL), 0);
	ro = img_open("d.img", 0, 0, O_RDONLY);
	REQUIRE(ro);
	CHECK_EQ(wr(rw, 'w', 4 * MiB), 1);   /* rw's own write: foreign to ro */
	CHECK(reads_as(ro, 4 * MiB, 1, 'w'));
	CHECK_EQ(vmb_image_take_foreign(ro), 1);
	CHECK_EQ(vmb_image_take_foreign(rw), 0);
	vmb_image_close(ro);
	vmb_image_close(rw);
	vmb_blockmap_init(&m);
	CHECK_RC(load("d.img", &m, &rebuilt), 0);
	CHECK_EQ(rebuilt, 0);
	CHECK_EQ(vmb_blockmap_get(&m, 4 * MiB / BS, NULL), VMB_DATA);
	vmb_blockmap_destroy(&m);
}

/* A private image (vmb_image_set_private: a URL mount's shadow store) is never
 * looked at for outside changes: a read keeps the map it has and takes nothing
 * for foreign. The same image made public again finds the change. */
static void test_private_image(void)
{
	struct vmb_image *img = img_open("e.img", 8 * MiB, 1, O_RDWR);

	REQUIRE(img);
	CHECK_RC(vmb_image_persist(img, NULL), 0);
	vmb_image_set_private(img, 1);
	REQUIRE(foreign_write("e.img", 2 * MiB, MiB, 'P'));
	CHECK_RC(vmb_image_revalidate(img, 0, NULL), 0);
	CHECK(reads_as(img, 2 * MiB, MiB, 0));   /* the map it has: a hole */
	CHECK_EQ(vmb_image_take_foreign(img), 0);
	vmb_image_set_private(img, 0);
	CHECK_RC(vmb_image_revalidate(img, 0, NULL), 1);
	CHECK(reads_as(img, 2 * MiB, MiB, 'P'));
	CHECK_EQ(vmb_image_take_foreign(img), 1);
	vmb_image_close(img);
}

int main(void)
{
	if (harness_tmpdir(tmpdir, sizeof(tmpdir), "image_reval") < 0)
		return 99;
	tdir = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (tdir < 0 || mkdirat(tdir, "maps", 0700) < 0 ||
	    (mapfd = openat(tdir, "maps", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		perror(tmpdir);
		return 99;
	}
	RUN(test_read_finds_foreign_write);
	RUN(test_persist_revalidates);
	RUN(test_own_and_foreign_shapes);
	RUN(test_readonly_image);
	RUN(test_private_image);
	close(mapfd);
	close(tdir);
	harness_rmtree(tmpdir);
	return harness_exit("test_image_reval");
}
