/* test_manifest.c - unit tests of snapshot manifests (store/manifest.c): round
 * trips with escapes and xattrs, every kind of bad input refused with a message,
 * snapshot names, atomic write that never replaces, read of a corrupt file. */
#include "config.h"
#include "store/manifest.h"
#include "base/crc32c.h"
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *ID = "0123456789abcdef0123456789abcdef";

static void sample(struct vmb_manifest *m)
{
	struct vmb_mf_ent e;

	memset(m, 0, sizeof(*m));
	m->bundle = strdup("mac 14");
	m->created = 1700000123;
	memset(&e, 0, sizeof(e));
	e.kind = 'd'; e.mode = 0755; e.uid = 1; e.gid = 2; e.mtime_sec = 10; e.mtime_nsec = 5;
	e.path = ".";
	vmb_manifest_add(m, &e);
	vmb_manifest_add_xattr(m, "user.a", "x\0y", 3);
	vmb_manifest_add_xattr(m, "user.empty", "", 0);
	vmb_manifest_add_xattr(m, "user.dash", "-", 1);
	e.path = "d%ir"; e.mode = 01777;
	vmb_manifest_add(m, &e);
	e.kind = 'f'; e.mode = 0640; e.size = 1ull << 34; memcpy(e.id, ID, 33);
	e.path = "d%ir/disk \n\xff.img";
	vmb_manifest_add(m, &e);
	e.kind = 'l'; e.mode = 0; e.path = "ln"; e.target = "d%ir/disk x";
	e.mtime_sec = -3;
	vmb_manifest_add(m, &e);
}

static void test_roundtrip(void)
{
	struct vmb_manifest m, d;
	struct vmb_err err;
	char *buf, *buf2;
	size_t len, len2;

	sample(&m);
	CHECK_RC(vmb_manifest_encode(&m, &buf, &len, &err), 0);
	CHECK_STR(buf, "vmbundlefs-snapshot 2\nbundle mac%2014\ncreated 1700000123\n");
	CHECK_STR(buf, "d 0755 1 2 10.000000005 .\nx user.a x%00y\n"
		  "x user.empty -\nx user.dash %2D\n");
	CHECK_STR(buf, "f 0640 1 2 10.000000005 17179869184 " "0123456789abcdef0123456789abcdef"
		  " d%25ir/disk%20%0A%FF.img\n");
	CHECK_STR(buf, "l 1 2 -3.000000005 ln d%25ir/disk%20x\nend ");
	CHECK_RC(vmb_manifest_decode(buf, len, &d, &err), 0);
	REQUIRE(d.n == 4);
	CHECK(!strcmp(d.bundle, "mac 14"));
	CHECK(!strcmp(d.ents[2].path, "d%ir/disk \n\xff.img"));
	CHECK(!strcmp(d.ents[2].id, ID));
	CHECK_EQ(d.ents[2].size, 1ull << 34);
	CHECK_EQ(d.ents[1].mode, 01777);
	CHECK_EQ(d.ents[3].mtime_sec, (uint64_t)-3);
	CHECK(!strcmp(d.ents[3].target, "d%ir/disk x"));
	REQUIRE(d.ents[0].nxattrs == 3);
	CHECK_EQ(d.ents[0].xattrs[0].len, 3);
	CHECK(!memcmp(d.ents[0].xattrs[0].value, "x\0y", 3));
	CHECK_EQ(d.ents[0].xattrs[1].len, 0);   /* the empty value, not "-" */
	CHECK(!strcmp(d.ents[0].xattrs[1].name, "user.empty"));
	CHECK_EQ(d.ents[0].xattrs[2].len, 1);
	CHECK(!memcmp(d.ents[0].xattrs[2].value, "-", 1));
	CHECK_RC(vmb_manifest_encode(&d, &buf2, &len2, &err), 0);
	CHECK(len == len2 && !memcmp(buf, buf2, len));
	free(buf);
	free(buf2);
	vmb_manifest_free(&d);
	vmb_manifest_free(&m);
}

static char *with_end(const char *body);

/* A version 1 manifest (before empty values could be written) reads as written:
 * its "-" is the value "-". */
static void test_version1(void)
{
	struct vmb_manifest d;
	struct vmb_err err;
	char *s = with_end("vmbundlefs-snapshot 1\nbundle b\ncreated 1\n"
			   "d 0755 0 0 1.000000000 .\nx user.a -\nx user.b %2D\n");

	CHECK_RC(vmb_manifest_decode(s, strlen(s), &d, &err), 0);
	REQUIRE(d.n == 1 && d.ents[0].nxattrs == 2);
	CHECK(d.ents[0].xattrs[0].len == 1 && d.ents[0].xattrs[0].value[0] == '-');
	CHECK(d.ents[0].xattrs[1].len == 1 && d.ents[0].xattrs[1].value[0] == '-');
	vmb_manifest_free(&d);
	free(s);
}

/* Re-checksum a hand-made body: "...\n" + "end crc\n". */
static char *with_end(const char *body)
{
	size_t n = strlen(body);
	char *s = malloc(n + 16);

	memcpy(s, body, n);
	snprintf(s + n, 16, "end %08x\n", vmb_crc32c(0, body, n));
	return s;
}

static void bad(const char *body, const char *want)
{
	struct vmb_manifest m;
	struct vmb_err err;
	char *s = with_end(body);

	vmb_err_clear(&err);
	CHECK(vmb_manifest_decode(s, strlen(s), &m, &err) < 0);
	CHECK_STR(err.msg, want);
	free(s);
}

static void test_bad(void)
{
	struct vmb_manifest m;
	struct vmb_err err;
	const char *H = "vmbundlefs-snapshot 1\nbundle b\ncreated 1\n";
	char body[1024], *s, *buf;
	size_t len;

	bad("", "no header");
	bad("vmbundlefs-snapshot 3\nbundle b\ncreated 1\nd 0755 0 0 1.000000000 .\n",
	    "not supported");
	bad("vmbundlefs-snapshot 0\nbundle b\ncreated 1\nd 0755 0 0 1.000000000 .\n",
	    "not supported");
	bad("hello\n", "not a snapshot");
	snprintf(body, sizeof(body), "%sd 0755 0 0 1.000000000 .\nf 0644 0 0 1.000000000 5 %s a/b\n", H, ID);
	bad(body, "is not listed before it");
	snprintf(body, sizeof(body), "%sd 0755 0 0 1.000000000 .\nf 0644 0 0 1.000000000 5 %s ../x\n", H, ID);
	bad(body, "bad path");
	snprintf(body, sizeof(body), "%sd 0755 0 0 1.000000000 .\nf 0644 0 0 1.000000000 5 %s x\nf 0644 0 0 1.000000000 5 %s x\n", H, ID, ID);
	bad(body, "listed twice");
	snprintf(body, sizeof(body), "%sd 0755 0 0 1.000000000 .\nf 0644 0 0 1.000000000 5 0123 x\n", H);
	bad(body, "layer id");
	snprintf(body, sizeof(body), "%sd 0755 0 0 1.000000000 .\nf 0644 0 0 1.000000000 5 %s a%%2\n", H, ID);
	bad(body, "bad escape");
	snprintf(body, sizeof(body), "%sd 0755 0 0 1.000000000 .\nf 0644 0 0 1.000000000 5 %s a%%00b\n", H, ID);
	bad(body, "bad escape");
	snprintf(body, sizeof(body), "%sd 0755 0 0 1.000000000 .\nd 10755 0 0 1.000000000 y\n", H);
	bad(body, "bad record");
	snprintf(body, sizeof(body), "%sd 0755 0 0 1.00000000 .\n", H);
	bad(body, "bad time");
	snprintf(body, sizeof(body), "%sd 0755 0 0 1.000000000 .\nq 1\n", H);
	bad(body, "unknown record");
	snprintf(body, sizeof(body), "%sd 0755 0 0 1.000000000 .\nx root.a b\n", H);
	bad(body, "extended attribute");
	snprintf(body, sizeof(body), "%sd 0755 0 0 1.000000000 .\nd 0755 0 0 1.000000000  y\n", H);
	bad(body, "bad record");
	snprintf(body, sizeof(body), "%sf 0755 0 0 1.000000000 1 %s .\n", H, ID);
	bad(body, "'.' is not a directory");
	bad("vmbundlefs-snapshot 1\nbundle a/b\ncreated 1\nd 0755 0 0 1.000000000 .\n",
	    "bad bundle name");
	/* A flipped byte, a missing end, a cut: all refused. */
	sample(&m);
	REQUIRE(vmb_manifest_encode(&m, &buf, &len, &err) == 0);
	vmb_manifest_free(&m);
	buf[50] ^= 1;
	CHECK(vmb_manifest_decode(buf, len, &m, &err) == -EINVAL);
	CHECK_STR(err.msg, "checksum");
	buf[50] ^= 1;
	CHECK(vmb_manifest_decode(buf, len - 5, &m, &err) == -EINVAL);
	CHECK(vmb_manifest_decode(buf, len - 14, &m, &err) == -EINVAL);
	CHECK_STR(err.msg, "truncated");
	free(buf);
	/* Encoding refuses what would not decode. */
	sample(&m);
	free(m.ents[2].path);
	m.ents[2].path = strdup("a/../b");
	CHECK(vmb_manifest_encode(&m, &buf, &len, &err) == -EINVAL);
	vmb_manifest_free(&m);
	(void)s;
}

static void test_names(void)
{
	struct vmb_err err;
	char *b, *n, longname[300];

	CHECK_RC(vmb_snapshot_name_check("vm", "20260101T000000Z", &err), 0);
	CHECK_RC(vmb_snapshot_name_check("vm", "a@b", &err), -EINVAL);
	CHECK_STR(err.msg, "'@'");
	CHECK_RC(vmb_snapshot_name_check("vm", ".hidden", &err), -EINVAL);
	CHECK_RC(vmb_snapshot_name_check("vm", "a/b", &err), -EINVAL);
	CHECK_RC(vmb_snapshot_name_check("vm", "", &err), -EINVAL);
	CHECK_RC(vmb_snapshot_name_check("vm", "..", &err), -EINVAL);
	memset(longname, 'a', 254);
	longname[254] = '\0';
	CHECK_RC(vmb_snapshot_name_check("vm", longname, &err), -ENAMETOOLONG);
	/* A bundle name may hold '@', a snapshot name may not: split at the last. */
	CHECK_RC(vmb_snapshot_split("vm@x@y", &b, &n, &err), 0);
	CHECK(!strcmp(b, "vm@x") && !strcmp(n, "y"));
	free(b);
	free(n);
	CHECK_RC(vmb_snapshot_split("vm", &b, &n, &err), -EINVAL);
	CHECK_RC(vmb_snapshot_split("@x", &b, &n, &err), -EINVAL);
	CHECK_RC(vmb_snapshot_split("vm@", &b, &n, &err), -EINVAL);
	CHECK_RC(vmb_snapshot_split("vm@s1", &b, &n, &err), 0);
	CHECK(!strcmp(b, "vm") && !strcmp(n, "s1"));
	free(b);
	free(n);
}

static void test_files(void)
{
	char dir[PATH_MAX];
	struct vmb_manifest m, d;
	struct vmb_err err;
	struct stat st;
	int dfd, fd;

	REQUIRE(harness_tmpdir(dir, sizeof(dir), "manifest") == 0);
	dfd = open(dir, O_RDONLY | O_DIRECTORY);
	REQUIRE(dfd >= 0);
	sample(&m);
	CHECK_RC(vmb_manifest_write(dfd, "mac 14@s1", &m, &err), 0);
	CHECK_RC(vmb_manifest_write(dfd, "mac 14@s1", &m, &err), -EEXIST);
	CHECK(fstatat(dfd, "mac 14@s1", &st, 0) == 0 && (st.st_mode & 07777) == 0600);
	CHECK_RC(vmb_manifest_read(dfd, "mac 14@s1", &d, &err), 0);
	CHECK_EQ(d.n, 4);
	vmb_manifest_free(&d);
	CHECK_RC(vmb_manifest_read(dfd, "nope@x", &d, &err), -ENOENT);
	fd = openat(dfd, "mac 14@s1", O_WRONLY);
	CHECK(fd >= 0 && pwrite(fd, "Z", 1, 30) == 1);
	close(fd);
	CHECK_RC(vmb_manifest_read(dfd, "mac 14@s1", &d, &err), -EINVAL);
	CHECK_STR(err.msg, "snapshot manifest 'mac 14@s1' is corrupt");
	/* No temporary left behind. */
	CHECK(faccessat(dfd, ".tmp.x", F_OK, 0) < 0);
	vmb_manifest_free(&m);
	close(dfd);
	harness_rmtree(dir);
}

int main(int argc, char **argv)
{
	(void)argc;
	RUN(test_roundtrip);
	RUN(test_bad);
	RUN(test_version1);
	RUN(test_names);
	RUN(test_files);
	return harness_exit(argv[0]);
}
