/* test_vfs.c - the vfs layer (src/vfs*.c) called directly as a library, without FUSE:
 * the store's top level (bundles only, hidden metadata), files inside a bundle
 * (create, write, read, attributes, lseek, fallocate), rename (NOREPLACE, EXCHANGE,
 * replacing), hard links, unlink and the sidecar maps, symlinks, user.* xattrs,
 * name limits, and lookup/forget accounting (every node freed when the kernel's
 * references are given back). */
#include "config.h"
#include "vfs/vfs.h"
#include "vfs/vfs_int.h"   /* white box: the node count */
#include "map/sidecar.h"
#include "store/store.h"
#include "store/fsck.h"
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

#define BS 4096u
#define ROOT VMB_ROOT_INO

static char tmpdir[1024], store[1100];
static struct vmb_vfs *v;
static int sdir = -1;        /* the store directory, for looking behind the vfs */
static struct vmb_ctx ctx;
static char logbuf[8192];

static void log_fn(void *arg, const char *msg)
{
	size_t used = strlen(logbuf);

	(void)arg;
	snprintf(logbuf + used, sizeof(logbuf) - used, "%s\n", msg);
}

static const struct vmb_log test_log = { log_fn, NULL };

/* ---- helpers ---- */

static int map_exists(uint64_t st_ino)
{
	char name[VMB_SIDECAR_NAME_MAX], path[64];

	vmb_sidecar_name(st_ino, name);
	snprintf(path, sizeof(path), ".vmbundlefs/maps/%s", name);
	return faccessat(sdir, path, F_OK, 0) == 0;
}

/* Create parent/name with content; returns its node id (the lookup is owed). */
static uint64_t make_file(uint64_t parent, const char *name, const char *text,
			  struct vmb_entry *e)
{
	struct vmb_file *f = NULL;
	struct vmb_err err;
	int r;

	vmb_err_clear(&err);
	r = vmb_vfs_create(v, &ctx, parent, name, 0644, O_RDWR | O_CREAT | O_EXCL, e, &f, &err);
	if (r < 0) {
		fprintf(stderr, "    create %s: %d %s\n", name, r, err.msg);
		return 0;
	}
	if (text && vmb_vfs_write(f, text, strlen(text), 0, NULL) != (ssize_t)strlen(text))
		fprintf(stderr, "    write %s failed\n", name);
	vmb_vfs_release(v, f);
	return e->ino;
}

/* The content of node ino (up to size - 1 bytes), NUL-terminated in buf; -errno. */
static ssize_t slurp(uint64_t ino, char *buf, size_t size)
{
	struct vmb_file *f = NULL;
	ssize_t n;
	int r;

	r = vmb_vfs_open(v, &ctx, ino, O_RDONLY, &f, NULL, NULL);
	if (r < 0)
		return r;
	n = vmb_vfs_read(f, buf, size - 1, 0, NULL, NULL);
	buf[n > 0 ? n : 0] = '\0';
	vmb_vfs_release(v, f);
	return n;
}

/* Content of parent/name through a fresh lookup (forgotten again). */
static int content_is(uint64_t parent, const char *name, const char *want)
{
	struct vmb_entry e;
	char buf[256];
	int ok;

	if (vmb_vfs_lookup(v, parent, name, &e, NULL) < 0)
		return 0;
	ok = slurp(e.ino, buf, sizeof(buf)) >= 0 && strcmp(buf, want) == 0;
	vmb_vfs_forget(v, e.ino, 1);
	return ok;
}

struct names {
	char name[32][64];
	unsigned mode[32];
	int n;
	int limit;   /* fill reports "full" after this many entries in one call */
	int in_call;
	uint64_t next;   /* next_off of the last entry taken */
};

static int fill_fn(void *arg, const char *name, const struct stat *st, uint64_t next_off)
{
	struct names *d = arg;

	(void)next_off;
	if (d->limit && d->in_call >= d->limit)
		return 1;
	d->in_call++;
	d->next = next_off;
	if (d->n < 32) {
		snprintf(d->name[d->n], sizeof(d->name[0]), "%s", name);
		d->mode[d->n] = st->st_mode & S_IFMT;
	}
	d->n++;
	return 0;
}

static int has(const struct names *d, const char *name)
{
	for (int i = 0; i < d->n && i < 32; i++)
		if (strcmp(d->name[i], name) == 0)
			return 1;
	return 0;
}

/* Read a whole directory, limit entries per readdir call (0: unlimited). */
static int list_dir(uint64_t ino, struct names *d, int limit)
{
	struct vmb_dir *dir = NULL;
	uint64_t off = 0;
	int r, calls = 0;

	memset(d, 0, sizeof(*d));
	d->limit = limit;
	r = vmb_vfs_opendir(v, ino, &dir, NULL);
	if (r < 0)
		return r;
	for (;;) {
		d->in_call = 0;
		r = vmb_vfs_readdir(v, dir, off, fill_fn, d, NULL);
		if (r < 0 || d->in_call == 0 || ++calls > 100)
			break;
		off = d->next;   /* resume after the last entry taken */
	}
	vmb_vfs_releasedir(v, dir);
	return r;
}

/* ---- tests ---- */

static void test_top_level(void)
{
	struct vmb_entry e, b;
	struct vmb_file *f = NULL;
	struct names *d = calloc(1, sizeof(*d));
	struct vmb_err err;
	struct stat st;
	int fd;

	REQUIRE(d);
	vmb_err_clear(&err);
	CHECK_RC(vmb_vfs_mkdir(v, &ctx, ROOT, "vm1", 0755, &b, &err), 0);
	CHECK(S_ISDIR(b.attr.st_mode));
	CHECK(b.ino != 0 && b.ino != ROOT);
	CHECK_RC(vmb_vfs_mkdir(v, &ctx, ROOT, "vm1", 0755, &e, NULL), -EEXIST);

	/* only bundles at the top */
	vmb_err_clear(&err);
	CHECK_RC(vmb_vfs_create(v, &ctx, ROOT, "file", 0644, O_RDWR | O_CREAT, &e, &f, &err),
		 -EPERM);
	CHECK(f == NULL);
	CHECK_STR(err.msg, "file");
	CHECK(faccessat(sdir, "file", F_OK, AT_SYMLINK_NOFOLLOW) < 0);
	CHECK_RC(vmb_vfs_mknod(v, &ctx, ROOT, "node", S_IFREG | 0644, 0, &e, NULL), -EPERM);
	CHECK_RC(vmb_vfs_symlink(v, &ctx, "vm1", ROOT, "sl", &e, NULL), -EPERM);
	CHECK_RC(vmb_vfs_mkdir(v, &ctx, ROOT, ".vmbundlefs", 0755, &e, NULL), -EPERM);
	CHECK_RC(vmb_vfs_lookup(v, ROOT, ".vmbundlefs", &e, NULL), -ENOENT);
	CHECK_RC(vmb_vfs_rmdir(v, &ctx, ROOT, ".vmbundlefs", NULL), -ENOENT);

	/* things put there behind the mount are not shown */
	fd = openat(sdir, "stray.txt", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	CHECK(fd >= 0);
	if (fd >= 0)
		close(fd);
	CHECK(symlinkat("vm1", sdir, "link-to-vm1") == 0);
	CHECK_RC(vmb_vfs_lookup(v, ROOT, "stray.txt", &e, NULL), -ENOENT);
	CHECK_RC(vmb_vfs_lookup(v, ROOT, "link-to-vm1", &e, NULL), -ENOENT);
	CHECK_RC(vmb_vfs_unlink(v, &ctx, ROOT, "stray.txt", NULL), -ENOENT);
	CHECK(faccessat(sdir, "stray.txt", F_OK, 0) == 0);

	CHECK_RC(vmb_vfs_mkdir(v, &ctx, ROOT, "vm2", 0755, &e, NULL), 0);
	vmb_vfs_forget(v, e.ino, 1);
	CHECK_RC(list_dir(ROOT, d, 0), 0);
	CHECK_EQ(d->n, 4);
	CHECK(has(d, ".") && has(d, "..") && has(d, "vm1") && has(d, "vm2"));
	CHECK(!has(d, ".vmbundlefs") && !has(d, "stray.txt") && !has(d, "link-to-vm1"));
	for (int i = 0; i < d->n && i < 32; i++)
		CHECK_EQ(d->mode[i], S_IFDIR);
	/* the same, one entry per call */
	CHECK_RC(list_dir(ROOT, d, 1), 0);
	CHECK_EQ(d->n, 4);
	CHECK(has(d, "vm1") && has(d, "vm2") && !has(d, "stray.txt"));
	CHECK_RC(vmb_vfs_rmdir(v, &ctx, ROOT, "vm2", NULL), 0);
	CHECK(fstatat(sdir, "vm2", &st, 0) < 0);

	/* a file inside a bundle is listed with its type */
	CHECK(make_file(b.ino, "cfg", "x", &e) != 0);
	vmb_vfs_forget(v, e.ino, 1);
	CHECK_RC(list_dir(b.ino, d, 0), 0);
	CHECK(has(d, "cfg"));
	CHECK_RC(vmb_vfs_unlink(v, &ctx, b.ino, "cfg", NULL), 0);
	CHECK_RC(vmb_vfs_lookup(v, b.ino, "cfg", &e, NULL), -ENOENT);

	vmb_vfs_forget(v, b.ino, 1);
	free(d);
}

static void test_file_io(void)
{
	struct vmb_entry b, e, e2;
	struct vmb_file *f = NULL, *g = NULL;
	unsigned char buf[3 * BS], rd[3 * BS];
	struct stat st;
	uint64_t res, sino;
	int holes, keep = -1, fd;
	struct timespec tick = { 0, 20 * 1000 * 1000 };

	REQUIRE(vmb_vfs_lookup(v, ROOT, "vm1", &b, NULL) == 0);
	CHECK_RC(vmb_vfs_create(v, &ctx, b.ino, "disk.img", 0644, O_RDWR | O_CREAT | O_EXCL,
				&e, &f, NULL), 0);
	if (!CHECK(f != NULL))
		goto out;
	CHECK(S_ISREG(e.attr.st_mode));
	CHECK_EQ(e.attr.st_size, 0);
	sino = (uint64_t)e.attr.st_ino;
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (unsigned char)(i * 7 + 1);
	CHECK_EQ(vmb_vfs_write(f, buf, 100, 0, NULL), 100);
	CHECK_EQ(vmb_vfs_write(f, buf, BS, 3 * BS, NULL), BS);
	CHECK_EQ(vmb_vfs_write(f, buf, 10, 10 * BS + 5, NULL), 10);
	CHECK_RC(vmb_vfs_getattr(v, e.ino, &st, NULL), 0);
	CHECK_EQ(st.st_size, 10 * BS + 15);
	CHECK_EQ(st.st_blocks, 3 * BS / 512);
	CHECK_EQ(st.st_ino, sino);
	CHECK_EQ(st.st_blksize, 1 << 20);

	memset(rd, 0xEE, sizeof(rd));
	CHECK_EQ(vmb_vfs_read(f, rd, 100, 0, NULL, NULL), 100);
	CHECK(memcmp(rd, buf, 100) == 0);
	CHECK_EQ(vmb_vfs_read(f, rd, 2 * BS, 3 * BS - 50, NULL, NULL), 2 * BS);
	CHECK(rd[0] == 0 && rd[49] == 0 && memcmp(rd + 50, buf, BS) == 0 && rd[50 + BS] == 0);
	holes = -1;
	CHECK_EQ(vmb_vfs_read(f, rd, BS, 5 * BS, &holes, NULL), BS);
	CHECK_EQ(holes, 1);
	CHECK_EQ(vmb_vfs_read(f, rd, 100, 10 * BS + 10, NULL, NULL), 5);
	CHECK(memcmp(rd, buf + 5, 5) == 0);
	CHECK_EQ(vmb_vfs_read(f, rd, 100, 10 * BS + 15, NULL, NULL), 0);

	CHECK_RC(vmb_vfs_lseek(f, 100, SEEK_DATA, &res, NULL), 0);
	CHECK_EQ(res, 100);
	CHECK_RC(vmb_vfs_lseek(f, BS, SEEK_DATA, &res, NULL), 0);
	CHECK_EQ(res, 3 * BS);
	CHECK_RC(vmb_vfs_lseek(f, 3 * BS, SEEK_HOLE, &res, NULL), 0);
	CHECK_EQ(res, 4 * BS);
	CHECK_RC(vmb_vfs_lseek(f, 10 * BS + 15, SEEK_DATA, &res, NULL), -ENXIO);

	/* a second handle shares the image */
	CHECK_RC(vmb_vfs_open(v, &ctx, e.ino, O_RDWR, &g, &keep, NULL), 0);
	if (CHECK(g != NULL)) {
		CHECK_EQ(keep, 1);
		CHECK_EQ(vmb_vfs_read(g, rd, 10, 3 * BS, NULL, NULL), 10);
		CHECK(memcmp(rd, buf, 10) == 0);
		CHECK_RC(vmb_vfs_fallocate(g, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 3 * BS,
					   BS, NULL), 0);
		CHECK_RC(vmb_vfs_getattr(v, e.ino, &st, NULL), 0);
		CHECK_EQ(st.st_blocks, 2 * BS / 512);
		CHECK_EQ(vmb_vfs_read(f, rd, 10, 3 * BS, &holes, NULL), 10);
		CHECK_EQ(holes, 1);
		CHECK_RC(vmb_vfs_fsync(g, 1, NULL), 0);
		vmb_vfs_release(v, g);
	}
	vmb_vfs_release(v, f);
	f = NULL;
	/* closed: the map is saved */
	CHECK(map_exists(sino));
	CHECK_RC(vmb_vfs_getattr(v, e.ino, &st, NULL), 0);
	CHECK_EQ(st.st_size, 10 * BS + 15);

	/* reopened unchanged: the kernel's cache is still good */
	keep = -1;
	CHECK_RC(vmb_vfs_open(v, &ctx, e.ino, O_RDONLY, &f, &keep, NULL), 0);
	CHECK_EQ(keep, 1);
	if (f) {
		CHECK_EQ(vmb_vfs_read(f, rd, 100, 0, NULL, NULL), 100);
		CHECK(memcmp(rd, buf, 100) == 0);
		vmb_vfs_release(v, f);
		f = NULL;
	}
	/* changed behind the mount: it is not, and the new bytes are read */
	nanosleep(&tick, NULL);
	fd = openat(sdir, "vm1/disk.img", O_WRONLY | O_CLOEXEC);
	CHECK(fd >= 0 && pwrite(fd, "ZZ", 2, 6 * BS) == 2);
	if (fd >= 0)
		close(fd);
	keep = -1;
	CHECK_RC(vmb_vfs_open(v, &ctx, e.ino, O_RDONLY, &f, &keep, NULL), 0);
	CHECK_EQ(keep, 0);
	if (f) {
		CHECK_EQ(vmb_vfs_read(f, rd, 2, 6 * BS, NULL, NULL), 2);
		CHECK(rd[0] == 'Z' && rd[1] == 'Z');
		vmb_vfs_release(v, f);
		f = NULL;
	}

	/* truncate through setattr, without a handle */
	{
		struct stat attr, out;
		memset(&attr, 0, sizeof(attr));
		attr.st_size = 50;
		CHECK_RC(vmb_vfs_setattr(v, &ctx, e.ino, NULL, &attr, VMB_SET_SIZE, &out, NULL), 0);
		CHECK_EQ(out.st_size, 50);
		CHECK_RC(vmb_vfs_open(v, &ctx, e.ino, O_RDONLY, &f, NULL, NULL), 0);
		if (f) {
			CHECK_EQ(vmb_vfs_read(f, rd, 100, 0, NULL, NULL), 50);
			CHECK(memcmp(rd, buf, 50) == 0);
			vmb_vfs_release(v, f);
			f = NULL;
		}
		CHECK_RC(vmb_vfs_setattr(v, &ctx, b.ino, NULL, &attr, VMB_SET_SIZE, &out, NULL),
			 -EISDIR);
	}
	/* O_TRUNC on open */
	CHECK_RC(vmb_vfs_open(v, &ctx, e.ino, O_RDWR | O_TRUNC, &f, NULL, NULL), 0);
	if (f) {
		CHECK_RC(vmb_vfs_getattr(v, e.ino, &st, NULL), 0);
		CHECK_EQ(st.st_size, 0);
		vmb_vfs_release(v, f);
		f = NULL;
	}
	CHECK_RC(vmb_vfs_open(v, &ctx, b.ino, O_RDONLY, &f, NULL, NULL), -EISDIR);

	/* create over an existing file: refused with or without O_EXCL (the kernel
	 * creates only names it found absent; one that appeared since is never opened,
	 * let alone truncated, by the create path) */
	CHECK_RC(vmb_vfs_open(v, &ctx, e.ino, O_RDWR, &f, NULL, NULL), 0);
	if (f) {
		CHECK_EQ(vmb_vfs_write(f, "abc", 3, 0, NULL), 3);
		vmb_vfs_release(v, f);
		f = NULL;
	}
	CHECK_RC(vmb_vfs_create(v, &ctx, b.ino, "disk.img", 0644, O_RDWR | O_CREAT | O_EXCL,
				&e2, &f, NULL), -EEXIST);
	CHECK(f == NULL);
	CHECK(content_is(b.ino, "disk.img", "abc"));
	CHECK_RC(vmb_vfs_create(v, &ctx, b.ino, "disk.img", 0644, O_RDWR | O_CREAT | O_TRUNC,
				&e2, &f, NULL), -EEXIST);
	CHECK(f == NULL);
	CHECK(content_is(b.ino, "disk.img", "abc"));

	/* lookup of the same name gives the same node */
	CHECK_RC(vmb_vfs_lookup(v, b.ino, "disk.img", &e2, NULL), 0);
	CHECK_EQ(e2.ino, e.ino);
	CHECK_EQ(e2.generation, e.generation);
	vmb_vfs_forget(v, e2.ino, 1);
	vmb_vfs_forget(v, e.ino, 1);
out:
	vmb_vfs_forget(v, b.ino, 1);
}

static void test_rename(void)
{
	struct vmb_entry b, a, bb, c;
	struct stat sa, sb;
	uint64_t ia, ib, ic;

	REQUIRE(vmb_vfs_mkdir(v, &ctx, ROOT, "ren", 0755, &b, NULL) == 0);
	CHECK(make_file(b.ino, "a", "AAAA", &a) != 0);
	CHECK(make_file(b.ino, "b", "BBBB", &bb) != 0);
	CHECK(make_file(b.ino, "c", "CCCC", &c) != 0);
	ia = (uint64_t)a.attr.st_ino;
	ib = (uint64_t)bb.attr.st_ino;
	ic = (uint64_t)c.attr.st_ino;
	CHECK(map_exists(ia) && map_exists(ib) && map_exists(ic));

	CHECK_RC(vmb_vfs_rename(v, &ctx, b.ino, "a", b.ino, "b", RENAME_NOREPLACE, NULL),
		 -EEXIST);
	CHECK(content_is(b.ino, "a", "AAAA"));
	CHECK(content_is(b.ino, "b", "BBBB"));

	CHECK_RC(vmb_vfs_rename(v, &ctx, b.ino, "a", b.ino, "b", RENAME_EXCHANGE, NULL), 0);
	CHECK(content_is(b.ino, "a", "BBBB"));
	CHECK(content_is(b.ino, "b", "AAAA"));
	CHECK(fstatat(sdir, "ren/a", &sa, 0) == 0 && (uint64_t)sa.st_ino == ib);
	CHECK(fstatat(sdir, "ren/b", &sb, 0) == 0 && (uint64_t)sb.st_ino == ia);
	CHECK_RC(vmb_vfs_rename(v, &ctx, b.ino, "a", b.ino, "nothere", RENAME_EXCHANGE, NULL),
		 -ENOENT);

	/* NOREPLACE to a free name moves */
	CHECK_RC(vmb_vfs_rename(v, &ctx, b.ino, "a", b.ino, "d", RENAME_NOREPLACE, NULL), 0);
	CHECK(content_is(b.ino, "d", "BBBB"));
	CHECK(!content_is(b.ino, "a", "BBBB"));

	/* replacing "c" drops its map */
	CHECK_RC(vmb_vfs_rename(v, &ctx, b.ino, "d", b.ino, "c", 0, NULL), 0);
	CHECK(content_is(b.ino, "c", "BBBB"));
	CHECK(!map_exists(ic));
	CHECK(map_exists(ib));

	/* files cannot go to the top; bad flags; names */
	CHECK_RC(vmb_vfs_rename(v, &ctx, b.ino, "c", ROOT, "c", 0, NULL), -EPERM);
	CHECK_RC(vmb_vfs_rename(v, &ctx, b.ino, "c", b.ino, "e", 4, NULL), -EINVAL);
	CHECK_RC(vmb_vfs_rename(v, &ctx, b.ino, "nothere", b.ino, "e", 0, NULL), -ENOENT);
	CHECK(content_is(b.ino, "c", "BBBB"));

	/* a bundle can be renamed at the top */
	CHECK_RC(vmb_vfs_rename(v, &ctx, ROOT, "ren", ROOT, "ren2", 0, NULL), 0);
	CHECK(content_is(b.ino, "b", "AAAA"));   /* the node follows */
	CHECK_RC(vmb_vfs_rename(v, &ctx, ROOT, "ren2", ROOT, "ren", 0, NULL), 0);

	vmb_vfs_forget(v, a.ino, 1);
	vmb_vfs_forget(v, bb.ino, 1);
	vmb_vfs_forget(v, c.ino, 1);
	vmb_vfs_forget(v, b.ino, 1);
}

static void test_link_unlink(void)
{
	struct vmb_entry b, o, l, x, dir;
	struct vmb_file *f = NULL;
	struct stat st;
	uint64_t io, ix;

	REQUIRE(vmb_vfs_mkdir(v, &ctx, ROOT, "lnk", 0755, &b, NULL) == 0);
	CHECK(make_file(b.ino, "orig", "hello", &o) != 0);
	io = (uint64_t)o.attr.st_ino;
	CHECK(map_exists(io));

	CHECK_RC(vmb_vfs_link(v, &ctx, o.ino, b.ino, "alias", &l, NULL), 0);
	CHECK_EQ(l.attr.st_ino, io);
	CHECK_EQ(l.attr.st_nlink, 2);
	CHECK_EQ(l.ino, o.ino);   /* one node per inode */
	CHECK_RC(vmb_vfs_getattr(v, o.ino, &st, NULL), 0);
	CHECK_EQ(st.st_nlink, 2);
	CHECK(content_is(b.ino, "alias", "hello"));
	CHECK_RC(vmb_vfs_link(v, &ctx, o.ino, b.ino, "alias", &x, NULL), -EEXIST);
	CHECK_RC(vmb_vfs_link(v, &ctx, o.ino, ROOT, "toplink", &x, NULL), -EPERM);
	CHECK_RC(vmb_vfs_link(v, &ctx, b.ino, ROOT, "dirlink", &x, NULL), -EPERM);

	/* one link left: the map stays */
	CHECK_RC(vmb_vfs_unlink(v, &ctx, b.ino, "orig", NULL), 0);
	CHECK(map_exists(io));
	CHECK(content_is(b.ino, "alias", "hello"));
	/* the last one: the map goes */
	CHECK_RC(vmb_vfs_unlink(v, &ctx, b.ino, "alias", NULL), 0);
	CHECK(!map_exists(io));
	CHECK_RC(vmb_vfs_unlink(v, &ctx, b.ino, "alias", NULL), -ENOENT);

	/* unlinked while open: the map goes when the last handle closes */
	CHECK(make_file(b.ino, "busy", "data!", &x) != 0);
	ix = (uint64_t)x.attr.st_ino;
	CHECK(map_exists(ix));
	CHECK_RC(vmb_vfs_open(v, &ctx, x.ino, O_RDWR, &f, NULL, NULL), 0);
	CHECK_RC(vmb_vfs_unlink(v, &ctx, b.ino, "busy", NULL), 0);
	if (f) {
		char rd[8] = "";
		CHECK_EQ(vmb_vfs_read(f, rd, 5, 0, NULL, NULL), 5);
		CHECK(memcmp(rd, "data!", 5) == 0);
		vmb_vfs_release(v, f);
		f = NULL;
	}
	CHECK(!map_exists(ix));
	vmb_vfs_forget(v, x.ino, 1);
	/* the same, written to after the unlink */
	CHECK(make_file(b.ino, "busy2", "data!", &x) != 0);
	ix = (uint64_t)x.attr.st_ino;
	CHECK_RC(vmb_vfs_open(v, &ctx, x.ino, O_RDWR, &f, NULL, NULL), 0);
	CHECK_RC(vmb_vfs_unlink(v, &ctx, b.ino, "busy2", NULL), 0);
	if (f) {
		CHECK_EQ(vmb_vfs_write(f, "more", 4, 5 * BS, NULL), 4);
		CHECK_RC(vmb_vfs_fsync(f, 0, NULL), 0);
		vmb_vfs_release(v, f);
		f = NULL;
	}
	CHECK(!map_exists(ix));

	/* rmdir of a non-empty and an empty directory */
	CHECK_RC(vmb_vfs_mkdir(v, &ctx, b.ino, "sub", 0755, &dir, NULL), 0);
	CHECK(make_file(dir.ino, "inner", "i", &l) != 0);
	CHECK_RC(vmb_vfs_rmdir(v, &ctx, b.ino, "sub", NULL), -ENOTEMPTY);
	CHECK_RC(vmb_vfs_unlink(v, &ctx, dir.ino, "inner", NULL), 0);
	CHECK(!map_exists((uint64_t)l.attr.st_ino));
	CHECK_RC(vmb_vfs_rmdir(v, &ctx, b.ino, "sub", NULL), 0);
	CHECK_RC(vmb_vfs_unlink(v, &ctx, b.ino, "sub", NULL), -ENOENT);

	vmb_vfs_forget(v, l.ino, 1);
	vmb_vfs_forget(v, dir.ino, 1);
	vmb_vfs_forget(v, x.ino, 1);
	vmb_vfs_forget(v, o.ino, 2);   /* create and link */
	vmb_vfs_forget(v, b.ino, 1);
}

static void test_symlink(void)
{
	struct vmb_entry b, s, e;
	char buf[64];

	REQUIRE(vmb_vfs_lookup(v, ROOT, "vm1", &b, NULL) == 0);
	CHECK_RC(vmb_vfs_symlink(v, &ctx, "target/path", b.ino, "sl", &s, NULL), 0);
	CHECK(S_ISLNK(s.attr.st_mode));
	CHECK_EQ(s.attr.st_size, 11);
	memset(buf, 'x', sizeof(buf));
	CHECK_RC(vmb_vfs_readlink(v, s.ino, buf, sizeof(buf), NULL), 11);
	CHECK(strcmp(buf, "target/path") == 0);
	CHECK_RC(vmb_vfs_readlink(v, s.ino, buf, 5, NULL), 4);
	CHECK(strcmp(buf, "targ") == 0);
	CHECK_RC(vmb_vfs_lookup(v, b.ino, "sl", &e, NULL), 0);
	CHECK(S_ISLNK(e.attr.st_mode));
	CHECK_EQ(e.ino, s.ino);
	vmb_vfs_forget(v, e.ino, 1);
	CHECK_RC(vmb_vfs_symlink(v, &ctx, "x", b.ino, "sl", &e, NULL), -EEXIST);
	CHECK(vmb_vfs_open(v, &ctx, s.ino, O_RDONLY, &(struct vmb_file *){NULL}, NULL, NULL) < 0);
	CHECK_RC(vmb_vfs_unlink(v, &ctx, b.ino, "sl", NULL), 0);
	vmb_vfs_forget(v, s.ino, 1);
	vmb_vfs_forget(v, b.ino, 1);
}

static void test_xattr(void)
{
	struct vmb_entry b, e;
	char buf[256];
	ssize_t n;
	int found = 0;

	REQUIRE(vmb_vfs_lookup(v, ROOT, "vm1", &b, NULL) == 0);
	CHECK(make_file(b.ino, "x.img", "xx", &e) != 0);

	CHECK_RC(vmb_vfs_setxattr(v, e.ino, "user.test", "v1", 2, 0, NULL), 0);
	CHECK_EQ(vmb_vfs_getxattr(v, e.ino, "user.test", buf, 0, NULL), 2);
	memset(buf, 0, sizeof(buf));
	CHECK_EQ(vmb_vfs_getxattr(v, e.ino, "user.test", buf, sizeof(buf), NULL), 2);
	CHECK(memcmp(buf, "v1", 2) == 0);
	CHECK_EQ(vmb_vfs_getxattr(v, e.ino, "user.test", buf, 1, NULL), -ERANGE);
	CHECK_RC(vmb_vfs_setxattr(v, e.ino, "user.test", "v2", 2, XATTR_CREATE, NULL), -EEXIST);
	CHECK_RC(vmb_vfs_setxattr(v, e.ino, "user.nope", "v", 1, XATTR_REPLACE, NULL), -ENODATA);
	CHECK_RC(vmb_vfs_setxattr(v, e.ino, "user.other", "", 0, 0, NULL), 0);

	n = vmb_vfs_listxattr(v, e.ino, NULL, 0, NULL);
	CHECK_EQ(n, sizeof("user.test") + sizeof("user.other"));
	n = vmb_vfs_listxattr(v, e.ino, buf, sizeof(buf), NULL);
	CHECK_EQ(n, sizeof("user.test") + sizeof("user.other"));
	for (ssize_t i = 0; n > 0 && i < n; i += (ssize_t)strlen(buf + i) + 1) {
		CHECK(strncmp(buf + i, "user.", 5) == 0);
		found += !strcmp(buf + i, "user.test") + !strcmp(buf + i, "user.other");
	}
	CHECK_EQ(found, 2);
	CHECK_EQ(vmb_vfs_listxattr(v, e.ino, buf, 5, NULL), -ERANGE);

	CHECK_RC(vmb_vfs_removexattr(v, e.ino, "user.test", NULL), 0);
	CHECK_EQ(vmb_vfs_getxattr(v, e.ino, "user.test", buf, sizeof(buf), NULL), -ENODATA);
	CHECK_RC(vmb_vfs_removexattr(v, e.ino, "user.test", NULL), -ENODATA);
	CHECK_EQ(vmb_vfs_listxattr(v, e.ino, NULL, 0, NULL), sizeof("user.other"));

	/* other namespaces are refused */
	CHECK_RC(vmb_vfs_setxattr(v, e.ino, "trusted.x", "v", 1, 0, NULL), -EOPNOTSUPP);
	CHECK_EQ(vmb_vfs_getxattr(v, e.ino, "trusted.x", buf, sizeof(buf), NULL), -EOPNOTSUPP);
	CHECK_RC(vmb_vfs_removexattr(v, e.ino, "trusted.x", NULL), -EOPNOTSUPP);
	CHECK_RC(vmb_vfs_setxattr(v, e.ino, "security.x", "v", 1, 0, NULL), -EOPNOTSUPP);
	CHECK_RC(vmb_vfs_setxattr(v, e.ino, "user.", "v", 1, 0, NULL), -EOPNOTSUPP);
	CHECK_RC(vmb_vfs_setxattr(v, e.ino, "system.posix_acl_access", "v", 1, 0, NULL),
		 -EOPNOTSUPP);
	{
		char val[8];
		CHECK(lgetxattr(store, "trusted.x", val, sizeof(val)) < 0);
	}

	/* xattrs on a directory */
	CHECK_RC(vmb_vfs_setxattr(v, b.ino, "user.dir", "d", 1, 0, NULL), 0);
	CHECK_EQ(vmb_vfs_getxattr(v, b.ino, "user.dir", buf, sizeof(buf), NULL), 1);
	CHECK_RC(vmb_vfs_removexattr(v, b.ino, "user.dir", NULL), 0);

	/* the file is still fine; it stays, closed, with its xattr changed after its
	 * map was saved: fsck at the end must still find that map good */
	CHECK(content_is(b.ino, "x.img", "xx"));
	CHECK(map_exists((uint64_t)e.attr.st_ino));
	CHECK_RC(vmb_vfs_setxattr(v, e.ino, "user.late", "1", 1, 0, NULL), 0);
	vmb_vfs_forget(v, e.ino, 1);
	vmb_vfs_forget(v, b.ino, 1);
}

static void test_names(void)
{
	struct vmb_entry b, e, x;
	struct vmb_file *f = NULL;
	char name[300], ok[256];

	REQUIRE(vmb_vfs_lookup(v, ROOT, "vm1", &b, NULL) == 0);
	memset(name, 'n', sizeof(name));
	name[256] = '\0';
	memset(ok, 'k', sizeof(ok));
	ok[255] = '\0';

	CHECK_RC(vmb_vfs_lookup(v, b.ino, name, &e, NULL), -ENAMETOOLONG);
	CHECK_RC(vmb_vfs_lookup(v, ROOT, name, &e, NULL), -ENAMETOOLONG);
	CHECK_RC(vmb_vfs_create(v, &ctx, b.ino, name, 0644, O_RDWR | O_CREAT, &e, &f, NULL),
		 -ENAMETOOLONG);
	CHECK(f == NULL);
	CHECK_RC(vmb_vfs_mkdir(v, &ctx, ROOT, name, 0755, &e, NULL), -ENAMETOOLONG);
	CHECK_RC(vmb_vfs_mkdir(v, &ctx, b.ino, name, 0755, &e, NULL), -ENAMETOOLONG);
	CHECK_RC(vmb_vfs_symlink(v, &ctx, "t", b.ino, name, &e, NULL), -ENAMETOOLONG);
	CHECK_RC(vmb_vfs_unlink(v, &ctx, b.ino, name, NULL), -ENAMETOOLONG);

	/* 255 bytes is fine */
	CHECK(make_file(b.ino, ok, "ok", &e) != 0);
	CHECK_RC(vmb_vfs_link(v, &ctx, e.ino, b.ino, name, &x, NULL), -ENAMETOOLONG);
	CHECK_RC(vmb_vfs_rename(v, &ctx, b.ino, ok, b.ino, name, 0, NULL), -ENAMETOOLONG);
	CHECK(content_is(b.ino, ok, "ok"));
	CHECK_RC(vmb_vfs_unlink(v, &ctx, b.ino, ok, NULL), 0);
	vmb_vfs_forget(v, e.ino, 1);

	/* other bad names */
	CHECK_RC(vmb_vfs_lookup(v, b.ino, "", &e, NULL), -EINVAL);
	CHECK_RC(vmb_vfs_create(v, &ctx, b.ino, "a/b", 0644, O_RDWR | O_CREAT, &e, &f, NULL),
		 -EINVAL);
	CHECK_RC(vmb_vfs_mkdir(v, &ctx, b.ino, "..", 0755, &e, NULL), -EINVAL);
	vmb_vfs_forget(v, b.ino, 1);
}

static void test_statfs(void)
{
	struct statvfs sv;

	CHECK_RC(vmb_vfs_statfs(v, &sv, NULL), 0);
	CHECK_EQ(sv.f_namemax, 255);
	CHECK(sv.f_bsize > 0);
}

/* ---- main ---- */

int main(void)
{
	struct vmb_vfs_opts opts;
	struct vmb_fsck_result res;
	struct vmb_err err;
	int r;

	if (harness_tmpdir(tmpdir, sizeof(tmpdir), "vfs") < 0)
		return 99;
	snprintf(store, sizeof(store), "%s/store", tmpdir);
	vmb_err_clear(&err);
	if (vmb_store_init(store, &err) < 0) {
		fprintf(stderr, "init: %s\n", err.msg);
		return 99;
	}
	sdir = open(store, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ctx.uid = getuid();
	ctx.gid = getgid();
	ctx.pid = getpid();
	memset(&opts, 0, sizeof(opts));
	opts.log = &test_log;
	r = vmb_vfs_new(&v, store, &opts, &err);
	if (r < 0) {
		fprintf(stderr, "vmb_vfs_new: %s\n", err.msg);
		return 99;
	}
	RUN(test_top_level);
	RUN(test_file_io);
	RUN(test_rename);
	RUN(test_link_unlink);
	RUN(test_symlink);
	RUN(test_xattr);
	RUN(test_names);
	RUN(test_statfs);

	/* every lookup was given back: no node is left */
	harness_test = "main";
	CHECK_EQ(v->nodes, 0);
	vmb_vfs_free(v);
	v = NULL;
	/* and the store is left consistent: every map matches, none is orphaned */
	CHECK_RC(vmb_fsck(store, 0, &test_log, &res, NULL), 0);
	CHECK_EQ(res.problems, 0);
	CHECK_EQ(res.files, 4);   /* vm1/disk.img, vm1/x.img, ren/b, ren/c */
	if (res.problems)
		fprintf(stderr, "    fsck said:\n%s", logbuf);
	close(sdir);
	harness_rmtree(tmpdir);
	return harness_exit("test_vfs");
}
