/* test_store.c - unit tests of store directories (src/store/store.c, src/store/store_walk.c)
 * and of fsck (src/store/fsck.c), without a mount: init and its layout, open and its
 * refusals, the store lock, names, bundle listing with sizes, the walk, and fsck's
 * check and repair of sidecar maps. */
#include "config.h"
#include "store/store.h"
#include "image/image.h"
#include "map/sidecar.h"
#include "store/fsck.h"
#include "image/resrec.h"
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#define BS 4096u

static char tmpdir[1024];
static char path_buf[2048];

/* tmpdir/rel (a static buffer: use before the next call) */
static const char *P(const char *rel)
{
	snprintf(path_buf, sizeof(path_buf), "%s/%s", tmpdir, rel);
	return path_buf;
}

static int write_text(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644), ok;

	if (fd < 0)
		return -1;
	ok = write(fd, text, strlen(text)) == (ssize_t)strlen(text);
	close(fd);
	return ok ? 0 : -1;
}

static unsigned char pat(uint64_t off, unsigned seed)
{
	return (unsigned char)((off * 131 + seed * 7 + (off >> 12)) % 251 + 1);
}

/* A sparse file of `size` bytes with `len` bytes of pattern at each offset. */
static int sparse_file(const char *path, uint64_t size, const uint64_t *offs, size_t n,
		       size_t len)
{
	unsigned char *buf = malloc(len ? len : 1);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644), ok = 1;

	if (fd < 0 || !buf) {
		free(buf);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	ok = ftruncate(fd, (off_t)size) == 0;
	for (size_t i = 0; ok && i < n; i++) {
		for (size_t j = 0; j < len; j++)
			buf[j] = pat(offs[i] + j, (unsigned)i);
		ok = pwrite(fd, buf, len, (off_t)offs[i]) == (ssize_t)len;
	}
	close(fd);
	free(buf);
	return ok ? 0 : -1;
}

/* ---- init / open ---- */

static void test_init_layout(void)
{
	char buf[128];
	struct vmb_err e;
	struct stat st;
	ssize_t n;
	int fd;

	vmb_err_clear(&e);
	CHECK_RC(vmb_store_init(P("s1"), &e), 0);
	fd = open(P("s1/.vmbundlefs/layout"), O_RDONLY | O_CLOEXEC);
	REQUIRE(fd >= 0);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	REQUIRE(n >= 0);
	buf[n] = '\0';
	CHECK(strcmp(buf, "vmbundlefs-store-layout 1\n") == 0);
	CHECK(stat(P("s1/.vmbundlefs/maps"), &st) == 0 && S_ISDIR(st.st_mode));
	CHECK(stat(P("s1/.vmbundlefs/lock"), &st) == 0 && S_ISREG(st.st_mode));

	/* again: refused */
	vmb_err_clear(&e);
	CHECK_RC(vmb_store_init(P("s1"), &e), -EEXIST);
	CHECK_EQ(e.code, EEXIST);
	CHECK_STR(e.msg, "already");

	/* an empty directory is fine, a non-empty one is not */
	CHECK(mkdir(P("empty"), 0755) == 0);
	CHECK_RC(vmb_store_init(P("empty"), NULL), 0);
	CHECK(mkdir(P("full"), 0755) == 0);
	CHECK(write_text(P("full/x"), "x") == 0);
	vmb_err_clear(&e);
	CHECK_RC(vmb_store_init(P("full"), &e), -ENOTEMPTY);
	CHECK_STR(e.msg, "not empty");
	CHECK(access(P("full/.vmbundlefs"), F_OK) < 0);
	/* a missing parent */
	CHECK(vmb_store_init(P("nope/deeper"), NULL) == -ENOENT);
}

static void test_open_errors(void)
{
	struct vmb_store s, s2;
	struct vmb_err e;

	memset(&s, 0, sizeof(s));
	vmb_err_clear(&e);
	CHECK_RC(vmb_store_open(&s, P("missing"), VMB_STORE_SHARED, &e), -ENOENT);
	CHECK_STR(e.msg, "missing");
	vmb_store_close(&s);   /* safe after a failed open */

	CHECK(mkdir(P("plain"), 0755) == 0);
	vmb_err_clear(&e);
	CHECK_RC(vmb_store_open(&s, P("plain"), VMB_STORE_SHARED, &e), -EINVAL);
	CHECK_STR(e.msg, "vmbundlefs init");
	CHECK_RC(vmb_store_open(&s, P("plain"), VMB_STORE_READ, NULL), -EINVAL);

	CHECK(write_text(P("afile"), "hello") == 0);
	CHECK_RC(vmb_store_open(&s, P("afile"), VMB_STORE_SHARED, NULL), -ENOTDIR);

	/* a metadata directory with no layout file */
	CHECK(mkdir(P("nolayout"), 0755) == 0);
	CHECK(mkdir(P("nolayout/.vmbundlefs"), 0755) == 0);
	vmb_err_clear(&e);
	CHECK_RC(vmb_store_open(&s, P("nolayout"), VMB_STORE_SHARED, &e), -EINVAL);
	CHECK_STR(e.msg, "vmbundlefs init");

	/* a newer layout */
	CHECK_RC(vmb_store_init(P("v2"), NULL), 0);
	CHECK(write_text(P("v2/.vmbundlefs/layout"), "vmbundlefs-store-layout 2\n") == 0);
	vmb_err_clear(&e);
	CHECK_RC(vmb_store_open(&s, P("v2"), VMB_STORE_SHARED, &e), -EPROTONOSUPPORT);
	CHECK_STR(e.msg, "layout version 2");
	CHECK_RC(vmb_store_open(&s, P("v2"), VMB_STORE_READ, NULL), -EPROTONOSUPPORT);

	/* garbage */
	static const char *bad[] = { "", "garbage\n", "vmbundlefs-store-layout\n",
				     "vmbundlefs-store-layout x\n", "vmbundlefs-store-layout 0\n",
				     "other-layout 1\n" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK(write_text(P("v2/.vmbundlefs/layout"), bad[i]) == 0);
		vmb_err_clear(&e);
		CHECK_RC(vmb_store_open(&s, P("v2"), VMB_STORE_SHARED, &e), -EINVAL);
		CHECK_STR(e.msg, "layout");
	}
	/* back to version 1: opens */
	CHECK(write_text(P("v2/.vmbundlefs/layout"), "vmbundlefs-store-layout 1\n") == 0);
	CHECK_RC(vmb_store_open(&s, P("v2"), VMB_STORE_SHARED, NULL), 0);
	CHECK(s.dirfd >= 0 && s.metafd >= 0 && s.mapfd >= 0 && s.lockfd >= 0);
	CHECK(!s.readonly);
	vmb_store_close(&s);
	vmb_store_close(&s);   /* twice is fine */
	memset(&s2, 0, sizeof(s2));
	vmb_store_close(&s2);  /* zeroed is fine */
}

static void test_lock(void)
{
	struct vmb_store a, b, c;
	struct vmb_err e;

	REQUIRE(vmb_store_init(P("locked"), NULL) == 0);
	CHECK_RC(vmb_store_open(&a, P("locked"), VMB_STORE_SHARED, NULL), 0);
	CHECK_RC(vmb_store_open(&b, P("locked"), VMB_STORE_SHARED, NULL), 0);
	vmb_err_clear(&e);
	CHECK_RC(vmb_store_open(&c, P("locked"), VMB_STORE_EXCLUSIVE, &e), -EBUSY);
	CHECK_STR(e.msg, "mounted");
	/* READ takes no lock */
	CHECK_RC(vmb_store_open(&c, P("locked"), VMB_STORE_READ, NULL), 0);
	CHECK_EQ(c.lockfd, -1);
	vmb_store_close(&c);
	vmb_store_close(&a);
	CHECK_RC(vmb_store_open(&c, P("locked"), VMB_STORE_EXCLUSIVE, NULL), -EBUSY);
	vmb_store_close(&b);

	/* nobody left: exclusive works, and then keeps shared and exclusive out */
	CHECK_RC(vmb_store_open(&c, P("locked"), VMB_STORE_EXCLUSIVE, NULL), 0);
	vmb_err_clear(&e);
	CHECK_RC(vmb_store_open(&a, P("locked"), VMB_STORE_SHARED, &e), -EBUSY);
	CHECK_STR(e.msg, "fsck");
	CHECK_RC(vmb_store_open(&a, P("locked"), VMB_STORE_EXCLUSIVE, NULL), -EBUSY);
	CHECK_RC(vmb_store_open(&a, P("locked"), VMB_STORE_READ, NULL), 0);
	vmb_store_close(&a);
	vmb_store_close(&c);
	CHECK_RC(vmb_store_open(&a, P("locked"), VMB_STORE_SHARED, NULL), 0);
	vmb_store_close(&a);
}

static void test_names(void)
{
	char name[300];
	struct vmb_err e;

	vmb_err_clear(&e);
	CHECK_RC(vmb_name_check("", &e), -EINVAL);
	CHECK(e.msg[0] != '\0');
	CHECK_RC(vmb_name_check(".", NULL), -EINVAL);
	CHECK_RC(vmb_name_check("..", NULL), -EINVAL);
	CHECK_RC(vmb_name_check("a/b", NULL), -EINVAL);
	CHECK_RC(vmb_name_check("/", NULL), -EINVAL);
	CHECK_RC(vmb_name_check("ab/", NULL), -EINVAL);
	CHECK_RC(vmb_name_check("...", NULL), 0);
	CHECK_RC(vmb_name_check(".hidden", NULL), 0);
	CHECK_RC(vmb_name_check("disk.img", NULL), 0);
	CHECK_RC(vmb_name_check("with space \xc3\xa9", NULL), 0);
	memset(name, 'n', sizeof(name));
	name[255] = '\0';
	CHECK_RC(vmb_name_check(name, NULL), 0);
	name[255] = 'n';
	name[256] = '\0';
	vmb_err_clear(&e);
	CHECK_RC(vmb_name_check(name, &e), -ENAMETOOLONG);
	CHECK_STR(e.msg, "256");
	name[299] = '\0';
	name[10] = '/';
	CHECK(vmb_name_check(name, NULL) < 0);

	CHECK(vmb_store_reserved(".vmbundlefs"));
	CHECK(!vmb_store_reserved(".vmbundlefs2"));
	CHECK(!vmb_store_reserved("vmbundlefs"));
	CHECK(!vmb_store_reserved(""));
}

/* ---- list and walk ---- */

static void test_list(void)
{
	static const uint64_t offs1[] = { 1 << 20 };
	static const uint64_t offs2[] = { 0, 5 << 20, (8 << 20) - 10 };
	struct vmb_bundle_info *list = NULL;
	struct vmb_store s;
	struct vmb_err e;
	size_t n = 99;

	REQUIRE(vmb_store_init(P("ls"), NULL) == 0);
	/* bundles made out of order; a file and a symlink at the top are no bundles */
	CHECK(mkdir(P("ls/zeta"), 0755) == 0);
	CHECK(mkdir(P("ls/alpha"), 0755) == 0);
	CHECK(mkdir(P("ls/alpha/sub"), 0755) == 0);
	CHECK(mkdir(P("ls/empty"), 0755) == 0);
	CHECK(write_text(P("ls/stray"), "not a bundle") == 0);
	CHECK(symlink("alpha", P("ls/link")) == 0);
	/* alpha: 10 MiB with one block; a nested 8 MiB with three pieces of 100 bytes
	 * (the last one straddles a block boundary and ends 90 bytes past 8 MiB);
	 * an 8-byte file */
	CHECK(sparse_file(P("ls/alpha/disk.img"), 10 << 20, offs1, 1, BS) == 0);
	CHECK(sparse_file(P("ls/alpha/sub/nvram"), 8 << 20, offs2, 3, 100) == 0);
	CHECK(write_text(P("ls/alpha/config.json"), "{\"x\":1}\n") == 0);
	/* zeta: an all-hole file, and a symlink that does not count */
	CHECK(sparse_file(P("ls/zeta/big.img"), 1ull << 32, NULL, 0, 0) == 0);
	CHECK(symlink("big.img", P("ls/zeta/alias")) == 0);

	CHECK_RC(vmb_store_open(&s, P("ls"), VMB_STORE_READ, NULL), 0);
	vmb_err_clear(&e);
	CHECK_RC(vmb_store_list(&s, &list, &n, &e), 0);
	CHECK_EQ(n, 3);
	if (CHECK(list != NULL) && n == 3) {
		CHECK(strcmp(list[0].name, "alpha") == 0);
		CHECK(strcmp(list[1].name, "empty") == 0);
		CHECK(strcmp(list[2].name, "zeta") == 0);
		CHECK_EQ(list[0].files, 3);
		CHECK_EQ(list[0].logical, (10u << 20) + (8u << 20) + 90 + 8);
		/* disk.img 1 block; nvram blocks 0, 1280, 2047, 2048; config.json 1 */
		CHECK_EQ(list[0].allocated, 6 * BS);
		CHECK_EQ(list[0].damaged, 0);
		CHECK_EQ(list[1].files, 0);
		CHECK_EQ(list[1].logical, 0);
		CHECK_EQ(list[1].allocated, 0);
		CHECK_EQ(list[2].files, 1);
		CHECK_EQ(list[2].logical, 1ull << 32);
		CHECK_EQ(list[2].allocated, 0);
		CHECK_EQ(list[2].damaged, 0);
	}
	vmb_bundle_list_free(list, n);
	vmb_store_close(&s);
}

struct walk_acc {
	char seen[16][PATH_MAX];
	uint64_t sizes[16];
	int n;
	int stop_at;   /* return 42 at this visit (1-based), 0: never */
	int bad_fd;
};

static int walk_fn(void *arg, const char *relpath, int fd, const struct stat *st)
{
	struct walk_acc *a = arg;
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || (fl & O_ACCMODE) != O_RDONLY || !S_ISREG(st->st_mode))
		a->bad_fd++;
	if (a->n < 16) {
		snprintf(a->seen[a->n], PATH_MAX, "%s", relpath);
		a->sizes[a->n] = (uint64_t)st->st_size;
	}
	a->n++;
	return a->stop_at && a->n == a->stop_at ? 42 : 0;
}

static int seen(const struct walk_acc *a, const char *rel, uint64_t size)
{
	for (int i = 0; i < a->n && i < 16; i++)
		if (strcmp(a->seen[i], rel) == 0)
			return a->sizes[i] == size;
	return 0;
}

static void test_walk(void)
{
	struct walk_acc *a = calloc(1, sizeof(*a));
	struct vmb_store s;
	struct vmb_err e;

	REQUIRE(a);
	REQUIRE(vmb_store_init(P("w"), NULL) == 0);
	CHECK(mkdir(P("w/b"), 0755) == 0);
	CHECK(mkdir(P("w/b/d1"), 0755) == 0);
	CHECK(mkdir(P("w/b/d1/d2"), 0755) == 0);
	CHECK(mkdir(P("w/b/d1/d2/d3"), 0755) == 0);
	CHECK(mkdir(P("w/b/emptydir"), 0755) == 0);
	CHECK(write_text(P("w/b/top"), "1") == 0);
	CHECK(write_text(P("w/b/d1/mid"), "22") == 0);
	CHECK(write_text(P("w/b/d1/d2/d3/deep"), "4444") == 0);
	CHECK(symlink("top", P("w/b/lnk")) == 0);
	CHECK(symlink("d1", P("w/b/dirlnk")) == 0);
	CHECK(mkfifo(P("w/b/fifo"), 0644) == 0);

	CHECK_RC(vmb_store_open(&s, P("w"), VMB_STORE_READ, NULL), 0);
	vmb_err_clear(&e);
	CHECK_RC(vmb_store_walk(&s, "b", walk_fn, a, &e), 0);
	CHECK_EQ(a->n, 3);
	CHECK(seen(a, "b/top", 1));
	CHECK(seen(a, "b/d1/mid", 2));
	CHECK(seen(a, "b/d1/d2/d3/deep", 4));
	CHECK_EQ(a->bad_fd, 0);

	/* a non-zero return stops the walk and is returned */
	memset(a, 0, sizeof(*a));
	a->stop_at = 2;
	CHECK_RC(vmb_store_walk(&s, "b", walk_fn, a, NULL), 42);
	CHECK_EQ(a->n, 2);

	memset(a, 0, sizeof(*a));
	vmb_err_clear(&e);
	CHECK_RC(vmb_store_walk(&s, "nosuch", walk_fn, a, &e), -ENOENT);
	CHECK_STR(e.msg, "nosuch");
	CHECK_EQ(a->n, 0);
	vmb_store_close(&s);
	free(a);
}

/* ---- fsck ---- */

struct said {
	char text[8192];
	int lines;
};

static void say_fn(void *arg, const char *msg)
{
	struct said *s = arg;
	size_t used = strlen(s->text);

	snprintf(s->text + used, sizeof(s->text) - used, "%s\n", msg);
	s->lines++;
}

/* Write `name` in the store's bundle through an image, so it gets a sidecar. */
static int make_image_file(struct vmb_store *s, const char *rel, uint64_t size,
			   unsigned seed, unsigned char **content, uint64_t *ino)
{
	struct vmb_image *img = NULL;
	unsigned char *buf = calloc(1, size);
	struct stat st;
	int fd, r;

	*content = buf;
	if (!buf)
		return -ENOMEM;
	fd = openat(s->dirfd, rel, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	fstat(fd, &st);
	*ino = (uint64_t)st.st_ino;
	r = vmb_image_open(&img, fd, s->mapfd, rel, NULL, NULL);
	if (r < 0) {
		close(fd);
		return r;
	}
	/* data every third block, zeros written in between */
	for (uint64_t b = 0; b * BS < size; b++) {
		size_t n = size - b * BS < BS ? (size_t)(size - b * BS) : BS;
		if (b % 3 == 0)
			for (size_t i = 0; i < n; i++)
				buf[b * BS + i] = pat(b * BS + i, seed);
		if (vmb_image_write(img, buf + b * BS, n, b * BS, NULL) != (ssize_t)n)
			r = -EIO;
	}
	vmb_image_close(img);
	return r;
}

static int flip_byte(int dirfd, const char *name, off_t at)
{
	unsigned char c;
	int fd = openat(dirfd, name, O_RDWR | O_CLOEXEC), ok;

	if (fd < 0)
		return -1;
	ok = pread(fd, &c, 1, at) == 1;
	c ^= 0x11;
	ok = ok && pwrite(fd, &c, 1, at) == 1;
	close(fd);
	return ok ? 0 : -1;
}

/* The image of rel reads `content` (size bytes), with its sidecar map used as is. */
static int image_intact(struct vmb_store *s, const char *rel, const unsigned char *content,
			uint64_t size)
{
	struct vmb_blockmap m;
	struct vmb_image *img = NULL;
	unsigned char *buf = malloc(size ? size : 1);
	uint64_t sz;
	int fd, rebuilt = -1, ok;

	vmb_blockmap_init(&m);
	fd = openat(s->dirfd, rel, O_RDWR | O_CLOEXEC);
	ok = buf && fd >= 0 &&
	     vmb_image_load_map(fd, s->mapfd, rel, &m, &sz, &rebuilt, NULL) == 0 &&
	     rebuilt == 0 && sz == size &&
	     vmb_image_open(&img, fd, s->mapfd, rel, NULL, NULL) == 0;
	if (ok) {
		ok = vmb_image_read(img, buf, size, 0, NULL, NULL) == (ssize_t)size &&
		     memcmp(buf, content, size) == 0;
		vmb_image_close(img);
	} else if (fd >= 0) {
		close(fd);
	}
	vmb_blockmap_destroy(&m);
	free(buf);
	return ok;
}

/* 512-byte blocks allocated to the file at rel of store s, or -1. */
static long long alloc_blocks(const char *rel)
{
	struct stat st;

	return stat(P(rel), &st) == 0 ? (long long)st.st_blocks : -1;
}

/* Space reserved past the end of a file (what a killed daemon leaves of the space
 * it reserves ahead of a writer): reported, and given back by repair. */
static void test_fsck_past_eof(void)
{
	struct vmb_fsck_result res;
	struct vmb_store s;
	struct said *said = calloc(1, sizeof(*said));
	struct vmb_log log = { say_fn, said };
	unsigned char *ca = NULL;
	uint64_t ia;
	long long before;
	int fd;

	REQUIRE(said);
	REQUIRE(vmb_store_init(P("fe"), NULL) == 0);
	CHECK(mkdir(P("fe/vm"), 0755) == 0);
	REQUIRE(vmb_store_open(&s, P("fe"), VMB_STORE_SHARED, NULL) == 0);
	CHECK_RC(make_image_file(&s, "vm/disk.img", 30 * BS, 4, &ca, &ia), 0);
	/* written back first: ext4 counts delayed blocks without the extent block
	 * their writeback may add, which would change st_blocks under the checks */
	fd = openat(s.dirfd, "vm/disk.img", O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0 && fsync(fd) == 0);
	if (fd >= 0)
		close(fd);
	before = alloc_blocks("fe/vm/disk.img");
	fd = openat(s.dirfd, "vm/disk.img", O_WRONLY | O_CLOEXEC);
	REQUIRE(fd >= 0);
	if (fallocate(fd, FALLOC_FL_KEEP_SIZE, 30 * BS, 256 * BS) < 0 ||
	    ioctl(fd, FS_IOC_FIEMAP, &(struct fiemap){ .fm_length = 1 }) < 0) {
		fprintf(stderr, "    (not checked: the test directory's filesystem has no "
			"fallocate or no FIEMAP)\n");
		close(fd);
		vmb_store_close(&s);
		free(ca);
		free(said);
		return;
	}
	vmb_store_close(&s);
	CHECK(alloc_blocks("fe/vm/disk.img") >= before + 256 * 8);

	/* Without a record it is someone's preallocation (fallocate --keep-size):
	 * never given back. The fallocate changed the file's times: its map is stale. */
	CHECK_RC(vmb_fsck(P("fe"), 1, &log, &res, NULL), 0);
	CHECK_EQ(res.problems, 1);
	CHECK_EQ(res.repaired, 1);
	CHECK_STR(said->text, "vm/disk.img: rebuilt map");
	CHECK(strstr(said->text, "past the end") == NULL);
	CHECK(alloc_blocks("fe/vm/disk.img") >= before + 256 * 8);

	/* Recorded (a daemon killed with space reserved ahead): given back. */
	if (vmb_resrec_set(fd, 30 * BS + 256 * BS) == -EPERM) {
		fprintf(stderr, "    (records not checked: trusted xattrs need root)\n");
		close(fd);
		free(ca);
		free(said);
		return;
	}
	close(fd);
	memset(said, 0, sizeof(*said));
	CHECK_RC(vmb_fsck(P("fe"), 0, &log, &res, NULL), 0);
	CHECK_EQ(res.problems, 1);
	CHECK_EQ(res.repaired, 0);
	CHECK_STR(said->text, "vm/disk.img: space reserved past the end of the file");
	memset(said, 0, sizeof(*said));
	CHECK_RC(vmb_fsck(P("fe"), 1, &log, &res, NULL), 0);
	CHECK_EQ(res.problems, 1);
	CHECK_EQ(res.repaired, 1);
	CHECK_STR(said->text, "vm/disk.img: gave back space reserved past the end");
	CHECK_EQ(alloc_blocks("fe/vm/disk.img"), before);
	memset(said, 0, sizeof(*said));
	CHECK_RC(vmb_fsck(P("fe"), 0, &log, &res, NULL), 0);
	CHECK_EQ(res.problems, 0);

	/* A map saved after the reservation (an fsync, then the kill) is current: it
	 * is kept, saved again with the stamp of the truncate, not rebuilt. */
	{
		struct vmb_blockmap m, back;
		struct vmb_stamp st, saved;
		char name[VMB_SIDECAR_NAME_MAX];

		REQUIRE(vmb_store_open(&s, P("fe"), VMB_STORE_SHARED, NULL) == 0);
		vmb_sidecar_name(ia, name);
		vmb_blockmap_init(&m);
		vmb_blockmap_init(&back);
		vmb_blockmap_set(&m, 0, 30, VMB_ZERO);
		for (uint64_t b = 0; b < 30; b += 3)
			vmb_blockmap_set(&m, b, 1, VMB_DATA);
		fd = openat(s.dirfd, "vm/disk.img", O_WRONLY | O_CLOEXEC);
		CHECK(fd >= 0 && vmb_resrec_set(fd, 94 * BS) == 0);
		CHECK(fd >= 0 && fallocate(fd, FALLOC_FL_KEEP_SIZE, 30 * BS, 64 * BS) == 0);
		CHECK(fd >= 0 && vmb_stamp_fd(fd, &st, NULL) == 0);
		CHECK_RC(vmb_sidecar_write(s.mapfd, name, &m, &st, 1, NULL), 0);
		if (fd >= 0)
			close(fd);
		vmb_store_close(&s);
		memset(said, 0, sizeof(*said));
		CHECK_RC(vmb_fsck(P("fe"), 1, &log, &res, NULL), 0);
		CHECK_EQ(res.problems, 1);
		CHECK_EQ(res.repaired, 1);
		CHECK_EQ(alloc_blocks("fe/vm/disk.img"), before);
		CHECK_RC(vmb_fsck(P("fe"), 0, &log, &res, NULL), 0);
		CHECK_EQ(res.problems, 0);
		REQUIRE(vmb_store_open(&s, P("fe"), VMB_STORE_READ, NULL) == 0);
		CHECK_RC(vmb_sidecar_read(s.mapfd, name, &back, &saved, NULL), 0);
		CHECK(vmb_blockmap_equal(&m, &back));   /* its ZERO blocks: kept */
		vmb_store_close(&s);

		/* A record, and a preallocation past its end: both kept, the
		 * record removed. */
		fd = open(P("fe/vm/disk.img"), O_WRONLY | O_CLOEXEC);
		CHECK(fd >= 0 && vmb_resrec_set(fd, 94 * BS) == 0);
		CHECK(fd >= 0 && fallocate(fd, FALLOC_FL_KEEP_SIZE, 30 * BS, 64 * BS) == 0);
		CHECK(fd >= 0 && fallocate(fd, FALLOC_FL_KEEP_SIZE, 200 * BS, 8 * BS) == 0);
		long long both = alloc_blocks("fe/vm/disk.img");
		memset(said, 0, sizeof(*said));
		CHECK_RC(vmb_fsck(P("fe"), 1, &log, &res, NULL), 0);
		CHECK_STR(said->text, "vm/disk.img: kept the space past the end of the file");
		CHECK_EQ(alloc_blocks("fe/vm/disk.img"), both);
		uint64_t e1 = 1;
		CHECK(fd >= 0 && vmb_resrec_get(fd, &e1) == 0);
		/* Only a record, nothing reserved: the record goes. */
		CHECK(fd >= 0 && ftruncate(fd, 30 * BS) == 0);
		CHECK(fd >= 0 && vmb_resrec_set(fd, 94 * BS) == 0);
		memset(said, 0, sizeof(*said));
		CHECK_RC(vmb_fsck(P("fe"), 1, &log, &res, NULL), 0);
		CHECK_STR(said->text, "vm/disk.img: removed a reservation record");
		CHECK(fd >= 0 && vmb_resrec_get(fd, &e1) == 0);
		if (fd >= 0)
			close(fd);
		vmb_blockmap_destroy(&m);
		vmb_blockmap_destroy(&back);
	}
	REQUIRE(vmb_store_open(&s, P("fe"), VMB_STORE_READ, NULL) == 0);
	CHECK(image_intact(&s, "vm/disk.img", ca, 30 * BS));
	vmb_store_close(&s);
	free(ca);
	free(said);
}

static void test_fsck(void)
{
	struct vmb_fsck_result res;
	struct vmb_store s, held;
	struct said *said = calloc(1, sizeof(*said));
	struct vmb_log log = { say_fn, said };
	unsigned char *ca = NULL, *cb = NULL, *cc = NULL;
	char na[VMB_SIDECAR_NAME_MAX], nb[VMB_SIDECAR_NAME_MAX], nc[VMB_SIDECAR_NAME_MAX];
	uint64_t ia, ib, ic;
	struct vmb_err e;
	int fd, i;

	REQUIRE(said);
	REQUIRE(vmb_store_init(P("fs"), NULL) == 0);
	CHECK(mkdir(P("fs/vm1"), 0755) == 0);
	CHECK(mkdir(P("fs/vm1/nested"), 0755) == 0);
	CHECK(mkdir(P("fs/vm2"), 0755) == 0);
	REQUIRE(vmb_store_open(&s, P("fs"), VMB_STORE_SHARED, NULL) == 0);
	CHECK_RC(make_image_file(&s, "vm1/disk.img", 20 * BS + 123, 1, &ca, &ia), 0);
	CHECK_RC(make_image_file(&s, "vm1/nested/aux.bin", 7 * BS, 2, &cb, &ib), 0);
	CHECK_RC(make_image_file(&s, "vm2/disk.img", 3 * BS + 1, 3, &cc, &ic), 0);
	vmb_sidecar_name(ia, na);
	vmb_sidecar_name(ib, nb);
	vmb_sidecar_name(ic, nc);
	CHECK(faccessat(s.mapfd, na, F_OK, 0) == 0);
	CHECK(faccessat(s.mapfd, nb, F_OK, 0) == 0);
	CHECK(faccessat(s.mapfd, nc, F_OK, 0) == 0);

	/* mounted (shared lock held): refused */
	vmb_err_clear(&e);
	CHECK_RC(vmb_fsck(P("fs"), 1, &log, &res, &e), -EBUSY);
	vmb_store_close(&s);

	/* clean */
	CHECK_RC(vmb_fsck(P("fs"), 1, &log, &res, NULL), 0);
	CHECK_EQ(res.files, 3);
	CHECK_EQ(res.problems, 0);
	CHECK_EQ(res.repaired, 0);
	CHECK_EQ(said->lines, 0);

	/* damage: a corrupt map, a missing map, an orphan map */
	REQUIRE(vmb_store_open(&s, P("fs"), VMB_STORE_READ, NULL) == 0);
	CHECK(flip_byte(s.mapfd, na, 4096 + 30) == 0);
	CHECK(unlinkat(s.mapfd, nb, 0) == 0);
	fd = openat(s.mapfd, "00000000deadbeef.map", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
		    0600);
	CHECK(fd >= 0);
	if (fd >= 0)
		close(fd);

	/* check only, twice: reported, nothing changed */
	for (i = 0; i < 2; i++) {
		memset(said, 0, sizeof(*said));
		CHECK_RC(vmb_fsck(P("fs"), 0, &log, &res, NULL), 0);
		CHECK_EQ(res.files, 3);
		CHECK_EQ(res.problems, 3);
		CHECK_EQ(res.repaired, 0);
		CHECK_EQ(said->lines, 3);
		CHECK_STR(said->text, "vm1/disk.img");
		CHECK_STR(said->text, "vm1/nested/aux.bin");
		CHECK_STR(said->text, "00000000deadbeef.map");
		CHECK(faccessat(s.mapfd, nb, F_OK, 0) < 0);
		CHECK(faccessat(s.mapfd, "00000000deadbeef.map", F_OK, 0) == 0);
	}

	/* repair */
	memset(said, 0, sizeof(*said));
	CHECK_RC(vmb_fsck(P("fs"), 1, &log, &res, NULL), 0);
	CHECK_EQ(res.files, 3);
	CHECK_EQ(res.problems, 3);
	CHECK_EQ(res.repaired, 3);
	CHECK_STR(said->text, "vm1/disk.img: rebuilt map");
	CHECK_STR(said->text, "vm1/nested/aux.bin: rebuilt map");
	CHECK(faccessat(s.mapfd, nb, F_OK, 0) == 0);
	CHECK(faccessat(s.mapfd, "00000000deadbeef.map", F_OK, 0) < 0);

	/* clean again, and the files read as before, their maps used as saved */
	memset(said, 0, sizeof(*said));
	CHECK_RC(vmb_fsck(P("fs"), 0, &log, &res, NULL), 0);
	CHECK_EQ(res.problems, 0);
	CHECK_EQ(res.repaired, 0);
	CHECK(image_intact(&s, "vm1/disk.img", ca, 20 * BS + 123));
	CHECK(image_intact(&s, "vm1/nested/aux.bin", cb, 7 * BS));
	CHECK(image_intact(&s, "vm2/disk.img", cc, 3 * BS + 1));

	/* a map saved into its journal (a write and a close) is current: fsck keeps
	 * the journal and finds nothing to do */
	{
		static const unsigned char blk[BS] = { 9 };
		struct vmb_image *img = NULL;
		char jn[64];

		fd = openat(s.dirfd, "vm1/disk.img", O_RDWR | O_CLOEXEC);
		CHECK(vmb_image_open(&img, fd, s.mapfd, "vm1/disk.img", NULL, NULL) == 0);
		CHECK(vmb_image_write(img, blk, BS, 4 * BS, NULL) == BS);
		memcpy(ca + 4 * BS, blk, BS);
		vmb_image_close(img);
		CHECK(vmb_sidecar_journal_name(na, jn, sizeof(jn)) == 0);
		CHECK(faccessat(s.mapfd, jn, F_OK, 0) == 0);
		for (i = 0; i < 2; i++) {
			CHECK_RC(vmb_fsck(P("fs"), i, &log, &res, NULL), 0);
			CHECK_EQ(res.problems, 0);
			CHECK(faccessat(s.mapfd, jn, F_OK, 0) == 0);
		}
		CHECK(image_intact(&s, "vm1/disk.img", ca, 20 * BS + 123));
	}

	/* a map that calls data zeros (with the right stamp) is rebuilt too */
	{
		struct vmb_blockmap zero;
		struct vmb_stamp st;
		fd = openat(s.dirfd, "vm2/disk.img", O_RDONLY | O_CLOEXEC);
		vmb_blockmap_init(&zero);
		vmb_blockmap_set(&zero, 0, 2, VMB_ZERO);
		CHECK(fd >= 0 && vmb_stamp_fd(fd, &st, NULL) == 0);
		CHECK_RC(vmb_sidecar_write(s.mapfd, nc, &zero, &st, 1, NULL), 0);
		vmb_blockmap_destroy(&zero);
		if (fd >= 0)
			close(fd);
		memset(said, 0, sizeof(*said));
		CHECK_RC(vmb_fsck(P("fs"), 1, &log, &res, NULL), 0);
		CHECK_EQ(res.problems, 1);
		CHECK_EQ(res.repaired, 1);
		CHECK_STR(said->text, "vm2/disk.img");
		CHECK(image_intact(&s, "vm2/disk.img", cc, 3 * BS + 1));
	}

	/* a leftover temporary and a stray file in the map directory */
	fd = openat(s.mapfd, ".tmp.0000000000000001.map.1.2", O_WRONLY | O_CREAT | O_CLOEXEC,
		    0600);
	if (CHECK(fd >= 0))
		close(fd);
	fd = openat(s.mapfd, "README", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (CHECK(fd >= 0))
		close(fd);
	CHECK_RC(vmb_fsck(P("fs"), 1, &log, &res, NULL), 0);
	CHECK_EQ(res.problems, 2);
	CHECK_EQ(res.repaired, 2);
	CHECK_RC(vmb_fsck(P("fs"), 0, &log, &res, NULL), 0);
	CHECK_EQ(res.problems, 0);

	/* fsck holds the store exclusively only while it runs */
	CHECK_RC(vmb_store_open(&held, P("fs"), VMB_STORE_SHARED, NULL), 0);
	vmb_store_close(&held);
	vmb_store_close(&s);

	/* not a store */
	vmb_err_clear(&e);
	CHECK_RC(vmb_fsck(P("plain"), 0, &log, &res, &e), -EINVAL);
	CHECK_RC(vmb_fsck(P("missing"), 0, &log, &res, NULL), -ENOENT);
	free(ca);
	free(cb);
	free(cc);
	free(said);
}

/* ---- main ---- */

int main(void)
{

	if (harness_tmpdir(tmpdir, sizeof(tmpdir), "store") < 0)
		return 99;
	RUN(test_init_layout);
	RUN(test_open_errors);
	RUN(test_lock);
	RUN(test_names);
	RUN(test_list);
	RUN(test_walk);
	RUN(test_fsck);
	RUN(test_fsck_past_eof);
	harness_rmtree(tmpdir);
	return harness_exit("test_store");
}
