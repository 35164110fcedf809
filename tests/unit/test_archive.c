/* test_archive.c - archive import/export without a mount: entry paths, the
 * sparse writer, and the library round trip (libarchive-made archives, hostile
 * entries, sidecars, names, the progress text). */
#include "config.h"
#include "harness.h"
#include "archive/vmb_archive.h"
#include "archive/archive_int.h"
#include "image/image.h"
#include "cli/progress.h"
#include "map/sidecar.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[] = "/tmp/vmb-test-archive.XXXXXX";
static char path_buf[PATH_MAX];

static const char *P(const char *rel)
{
	snprintf(path_buf, sizeof(path_buf), "%s/%s", tmpdir, rel);
	return path_buf;
}

static void test_normalize(void)
{
	struct vmb_err e;
	char p[PATH_MAX];

	strcpy(p, "./a//b/./c/");
	CHECK_RC(vmb_apath_normalize(p, &e), 0);
	CHECK(!strcmp(p, "a/b/c"));
	strcpy(p, "./");
	CHECK_RC(vmb_apath_normalize(p, &e), 0);
	CHECK(!strcmp(p, ""));
	strcpy(p, "/etc/passwd");
	CHECK_RC(vmb_apath_normalize(p, &e), -EPERM);
	CHECK_STR(e.msg, "absolute path");
	strcpy(p, "a/../../x");
	CHECK_RC(vmb_apath_normalize(p, &e), -EPERM);
	CHECK_STR(e.msg, "'..' component");
	strcpy(p, "a/..");
	CHECK_RC(vmb_apath_normalize(p, &e), -EPERM);
	strcpy(p, "a/..b/.c");
	CHECK_RC(vmb_apath_normalize(p, &e), 0);
	CHECK(!strcmp(p, "a/..b/.c"));
}

static void test_pathset(void)
{
	struct vmb_pathset *s;
	unsigned old = 0;
	char name[32];
	int i;

	REQUIRE(vmb_pathset_new(&s) == 0);
	CHECK_RC(vmb_pathset_add(s, "a/b", S_IFREG, NULL), 0);
	CHECK_RC(vmb_pathset_add(s, "a/b", S_IFDIR, &old), -EEXIST);
	CHECK_EQ(old, S_IFREG);
	CHECK_EQ(vmb_pathset_get(s, "a/b"), S_IFREG);
	CHECK_EQ(vmb_pathset_get(s, "a"), 0);
	for (i = 0; i < 5000; i++) {   /* grows */
		snprintf(name, sizeof(name), "f%d", i);
		if (vmb_pathset_add(s, name, S_IFLNK, NULL) != 0)
			break;
	}
	CHECK_EQ(i, 5000);
	CHECK_EQ(vmb_pathset_get(s, "f4999"), S_IFLNK);
	CHECK_RC(vmb_pathset_set(s, "a/b", S_IFDIR), 0);
	CHECK_EQ(vmb_pathset_get(s, "a/b"), S_IFDIR);
	vmb_pathset_free(s);
	vmb_pathset_free(NULL);
}

/* Zero blocks split across data blocks still become holes; data is exact. */
static void test_swriter(void)
{
	struct vmb_budget b = { 0, UINT64_MAX, 0, UINT64_MAX };
	struct vmb_swriter w;
	struct vmb_err e;
	unsigned char *buf = calloc(1, 64 * 1024), back[100];
	struct stat st;
	int fd = open(P("sw"), O_RDWR | O_CREAT | O_TRUNC, 0600);

	REQUIRE(fd >= 0 && buf);
	REQUIRE(ftruncate(fd, 1 << 20) == 0);
	memset(buf + 40000, 'x', 100);
	vmb_sw_init(&w, fd, 1 << 20, &b);
	/* 64 KiB in three pieces at unaligned cuts: 0..1000, 1000..33333, rest. */
	CHECK_RC(vmb_sw_data(&w, buf, 1000, 0, &e), 0);
	CHECK_RC(vmb_sw_data(&w, buf + 1000, 32333, 1000, &e), 0);
	CHECK_RC(vmb_sw_data(&w, buf + 33333, 65536 - 33333, 33333, &e), 0);
	CHECK_RC(vmb_sw_data(&w, "tail", 4, (1 << 20) - 4, &e), 0);
	CHECK_RC(vmb_sw_finish(&w, &e), 0);
	CHECK_EQ(b.stored, 2 * 4096);     /* the block of 'x' and the last block */
	REQUIRE(fstat(fd, &st) == 0);
	CHECK(st.st_blocks * 512 <= 4 * 4096);
	CHECK_EQ(pread(fd, back, 100, 40000), 100);
	CHECK(back[0] == 'x' && back[99] == 'x');
	CHECK_EQ(lseek(fd, 0, SEEK_DATA), 36864);
	/* Out of order, and beyond the size. */
	CHECK_RC(vmb_sw_data(&w, "z", 1, 10, &e), -EBADMSG);
	vmb_sw_init(&w, fd, 4096, &b);
	CHECK_RC(vmb_sw_data(&w, "z", 1, 4096, &e), -EBADMSG);
	CHECK_STR(e.msg, "past its size");
	/* The budget. */
	b.stored = 0;
	b.max = 4096;
	b.explicit_max = 1;
	vmb_sw_init(&w, fd, 1 << 20, &b);
	memset(buf, 'y', 8192);
	CHECK_RC(vmb_sw_data(&w, buf, 8192, 0, &e), -EFBIG);
	CHECK_STR(e.msg, "--max-size");
	close(fd);
	free(buf);
}

/* Write a pax archive with libarchive: vm/, a sparse vm/disk.img (data at 1 MiB
 * and at the end of 64 MiB), vm/cfg (symlink), vm/hard (hard link), plus one
 * extra entry given by the caller. */
static void make_tar(const char *path, const char *extra_name, int extra_type,
		     const char *extra_link)
{
	struct archive *a = archive_write_new();
	struct archive_entry *e = archive_entry_new();
	static char data[8192];
	uint64_t size = 64 << 20;

	memset(data, 'd', sizeof(data));
	archive_write_set_format_pax_restricted(a);
	archive_write_open_filename(a, path);
	archive_entry_set_pathname(e, "vm/");
	archive_entry_set_filetype(e, AE_IFDIR);
	archive_entry_set_perm(e, 0755);
	archive_write_header(a, e);
	archive_entry_clear(e);
	archive_entry_set_pathname(e, "vm/disk.img");
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, 0644);
	archive_entry_set_mtime(e, 1600000000, 5);
	archive_entry_set_size(e, (la_int64_t)size);
	archive_entry_sparse_add_entry(e, 1 << 20, 4096);
	archive_entry_sparse_add_entry(e, (la_int64_t)size - 8192, 8192);
	archive_write_header(a, e);
	/* The pax writer skips the holes of the stream it is given. */
	{
		char *z = calloc(1, 1 << 20);
		archive_write_data(a, z, 1 << 20);
		archive_write_data(a, data, 4096);
		for (uint64_t off = (1 << 20) + 4096; off < size - 8192;) {
			size_t n = size - 8192 - off < (1 << 20) ? size - 8192 - off : 1 << 20;
			archive_write_data(a, z, n);
			off += n;
		}
		archive_write_data(a, data, 8192);
		free(z);
	}
	archive_entry_clear(e);
	archive_entry_set_pathname(e, "vm/cfg");
	archive_entry_set_filetype(e, AE_IFLNK);
	archive_entry_set_symlink(e, "disk.img");
	archive_entry_set_perm(e, 0777);
	archive_write_header(a, e);
	archive_entry_clear(e);
	archive_entry_set_pathname(e, "vm/hard");
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_hardlink(e, "vm/disk.img");
	archive_entry_set_perm(e, 0644);
	archive_write_header(a, e);
	if (extra_name) {
		archive_entry_clear(e);
		archive_entry_set_pathname(e, extra_name);
		archive_entry_set_filetype(e, (unsigned)extra_type);
		archive_entry_set_perm(e, 0644);
		if (extra_type == AE_IFLNK)
			archive_entry_set_symlink(e, extra_link);
		else if (extra_link)
			archive_entry_set_hardlink(e, extra_link);
		archive_entry_set_size(e, 0);
		archive_write_header(a, e);
	}
	archive_write_close(a);
	archive_write_free(a);
	archive_entry_free(e);
}

static int import_file(struct vmb_store *s, const char *path, const char *name,
		       struct vmb_err *e)
{
	struct vmb_import_opts o = { .name = name, .label = path };
	int fd = open(path, O_RDONLY), r;

	if (fd < 0)
		return -errno;
	r = vmb_archive_import(s, fd, &o, NULL, e);
	close(fd);
	return r;
}

static void test_import_export(void)
{
	struct vmb_export_opts xo = { .format = VMB_AFMT_TAR };
	struct vmb_blockmap m;
	struct vmb_store s;
	struct vmb_err e;
	struct stat st, st2;
	char name[NAME_MAX + 1], buf[16];
	uint64_t size;
	int fd, rebuilt;

	REQUIRE(vmb_store_init(P("store"), &e) == 0);
	REQUIRE(vmb_store_open(&s, P("store"), VMB_STORE_SHARED, &e) == 0);
	make_tar(P("a.tar"), NULL, 0, NULL);
	{
		struct vmb_import_opts o = { .label = P("a.tar") };
		fd = open(P("a.tar"), O_RDONLY);
		CHECK_RC(vmb_archive_import(&s, fd, &o, name, &e), 0);
		close(fd);
	}
	CHECK(!strcmp(name, "vm"));
	REQUIRE(stat(P("store/vm/disk.img"), &st) == 0);
	CHECK_EQ(st.st_size, 64 << 20);
	CHECK(st.st_blocks * 512 <= 16 * 4096);
	CHECK_EQ(st.st_mtim.tv_sec, 1600000000);
	CHECK_EQ(st.st_nlink, 2);
	fd = open(P("store/vm/disk.img"), O_RDONLY);
	CHECK_EQ(pread(fd, buf, 1, 1 << 20), 1);
	CHECK(buf[0] == 'd');
	/* The sidecar is there and trusted (not rebuilt). */
	vmb_blockmap_init(&m);
	CHECK_RC(vmb_image_load_map(fd, s.mapfd, "vm/disk.img", &m, &size, &rebuilt, &e), 0);
	CHECK_EQ(rebuilt, 0);
	CHECK_EQ(m.data_blocks, 3);
	vmb_blockmap_destroy(&m);
	close(fd);
	CHECK(lstat(P("store/vm/cfg"), &st2) == 0 && S_ISLNK(st2.st_mode));

	/* Existing name, then hostile extras: the store keeps only "vm". */
	CHECK_RC(import_file(&s, P("a.tar"), NULL, &e), -EEXIST);
	CHECK_STR(e.msg, "cannot import");
	CHECK_STR(e.msg, "already exists");
	make_tar(P("b.tar"), "vm/../../x", AE_IFREG, NULL);
	CHECK_RC(import_file(&s, P("b.tar"), "b", &e), -EPERM);
	CHECK_STR(e.msg, "'..' component");
	/* A symlink out of the bundle is stored as it is, never followed (issue #12). */
	make_tar(P("c.tar"), "vm/out", AE_IFLNK, "../../../etc");
	CHECK_RC(import_file(&s, P("c.tar"), "c", &e), 0);
	{
		char t[64];
		ssize_t n = readlink(P("store/c/out"), t, sizeof(t) - 1);
		CHECK(n == 12 && !memcmp(t, "../../../etc", 12));
		CHECK_RC(vmb_tree_remove(s.dirfd, "c", s.mapfd, &e), 0);
	}
	make_tar(P("d.tar"), "vm/fifo", AE_IFIFO, NULL);
	CHECK_RC(import_file(&s, P("d.tar"), "d", &e), -EPERM);
	CHECK_STR(e.msg, "FIFO");
	make_tar(P("f.tar"), "vm/disk.img", AE_IFREG, NULL);
	CHECK_RC(import_file(&s, P("f.tar"), "f", &e), -EPERM);
	CHECK_STR(e.msg, "duplicate entry 'vm/disk.img'");
	make_tar(P("g.tar"), "vm/h2", AE_IFREG, "vm/nothere");
	CHECK_RC(import_file(&s, P("g.tar"), "g", &e), -EPERM);
	CHECK(access(P("store/b"), F_OK) < 0 && access(P("store/f"), F_OK) < 0);
	CHECK(access(P("store/.vmbundlefs/staging"), F_OK) < 0);
	{
		struct vmb_bundle_info *list;
		size_t n;
		CHECK_RC(vmb_store_list(&s, &list, &n, &e), 0);
		CHECK_EQ(n, 1);
		vmb_bundle_list_free(list, n);
	}

	/* Export, then import the export under another name. */
	CHECK_RC(vmb_archive_export_file(&s, "vm", P("out.tar"), &xo, &e), 0);
	REQUIRE(stat(P("out.tar"), &st) == 0);
	CHECK(st.st_size < 64 * 1024);
	CHECK_RC(import_file(&s, P("out.tar"), "copy", &e), 0);
	REQUIRE(stat(P("store/copy/disk.img"), &st2) == 0);
	CHECK_EQ(st2.st_size, 64 << 20);
	CHECK(st2.st_blocks * 512 <= 16 * 4096);
	CHECK_EQ(st2.st_nlink, 2);
	CHECK_RC(vmb_archive_export_file(&s, "nosuch", P("x.tar"), &xo, &e), -ENOENT);
	CHECK(access(P("x.tar"), F_OK) < 0);
	vmb_store_close(&s);
}

static void test_formats(void)
{
	enum vmb_archive_format f;
	char line[256];

	CHECK_EQ(vmb_archive_format_from_name("a/b.tar.zst", &f), 1);
	CHECK_EQ(f, VMB_AFMT_TAR_ZST);
	CHECK_EQ(vmb_archive_format_from_name("b.TGZ", &f), 1);
	CHECK_EQ(f, VMB_AFMT_TAR_GZ);
	CHECK_EQ(vmb_archive_format_from_name("b.zip", &f), 1);
	CHECK_EQ(f, VMB_AFMT_ZIP);
	CHECK_EQ(vmb_archive_format_from_name("backup", &f), 0);
	CHECK_EQ(f, VMB_AFMT_TAR);
	CHECK_RC(vmb_archive_format_parse("tar.gz", &f), 0);
	CHECK_RC(vmb_archive_format_parse("rar", &f), -EINVAL);
	CHECK_EQ(vmb_import_margin(0), 64 << 20);
	CHECK_EQ(vmb_import_margin(UINT64_C(1) << 40), 1 << 30);
	vmb_progress_format(line, sizeof(line), "export vm", 512 << 20, 1 << 30, 2.0, 200);
	CHECK_STR(line, "512.0 MiB / 1.0 GiB");
	CHECK_STR(line, "256.0 MiB/s");
	CHECK_STR(line, "0:02 left");
	CHECK_STR(line, "[##########..........]");
	/* No estimate from the first frame (issue #9: "85:32 left" at 64 KiB of 20 GiB),
	 * before a second has passed, or before 1% (or 8 MiB) is done. */
	vmb_progress_format(line, sizeof(line), "export vm", 64 << 10, 20ull << 30, 0.001,
			    200);
	CHECK(strstr(line, "left") == NULL);
	vmb_progress_format(line, sizeof(line), "export vm", 512 << 20, 1 << 30, 0.5, 200);
	CHECK(strstr(line, "left") == NULL);
	vmb_progress_format(line, sizeof(line), "export vm", 1 << 20, 20ull << 30, 5.0, 200);
	CHECK(strstr(line, "left") == NULL);
	vmb_progress_format(line, sizeof(line), "export vm", 16 << 20, 20ull << 30, 1.0, 200);
	CHECK_STR(line, "left");
}

/* Which xattr names an archive carries: user.*, less the mount's reserved ones. */
static void test_xattr_kept(void)
{
	char longname[300];

	CHECK(vmb_archive_xattr_kept("user.com.apple.quarantine"));
	CHECK(vmb_archive_xattr_kept("user.x"));
	CHECK(vmb_archive_xattr_kept("user.vmbundlefs.other"));
	CHECK(!vmb_archive_xattr_kept("user."));
	CHECK(!vmb_archive_xattr_kept("trusted.vmbundlefs.base"));
	CHECK(!vmb_archive_xattr_kept("security.selinux"));
	CHECK(!vmb_archive_xattr_kept("system.posix_acl_access"));
	CHECK(!vmb_archive_xattr_kept("user.vmbundlefs.lock"));
	CHECK(!vmb_archive_xattr_kept("user.vmbundlefs.stats"));
	CHECK(!vmb_archive_xattr_kept("user.vmbundlefs.remote"));
	/* a user store's marks (image/xns.h) */
	CHECK(!vmb_archive_xattr_kept("user.vmbundlefs.base"));
	CHECK(!vmb_archive_xattr_kept("user.vmbundlefs.reserved"));
	CHECK(vmb_archive_xattr_kept("user.vmbundlefs.basex"));
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	memcpy(longname, "user.", 5);
	CHECK(!vmb_archive_xattr_kept(longname));
	longname[255] = '\0';
	CHECK(vmb_archive_xattr_kept(longname));
}

int main(void)
{
	char cmd[PATH_MAX + 32];
	int r;

	if (!mkdtemp(tmpdir))
		SKIP("cannot make a temporary directory");
	RUN(test_normalize);
	RUN(test_pathset);
	RUN(test_swriter);
	RUN(test_import_export);
	RUN(test_formats);
	RUN(test_xattr_kept);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	r = system(cmd);
	(void)r;
	return harness_exit("test_archive");
}
