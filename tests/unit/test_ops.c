/* test_ops.c - unit tests of the structural operations (store/ops.h) on a store
 * without a mount: clone (content shared, O(1) space, metadata kept, bad input
 * changes nothing), snapshot (content frozen while the bundle changes, names,
 * list, delete), clone of a snapshot, deps, own/shared space, flatten (plain
 * files again), gc (removes only what nothing uses; removes nothing when a
 * reference cannot be read), the daemon's hooks, and crash safety: each operation
 * killed (SIGKILL, VMB_OP_KILL_AT) after each of its steps leaves the old or the
 * new state, which fsck finds clean (or repairs) and gc tidies. */
#include "config.h"
#include "store/ops.h"
#include "store/ops_int.h"
#include "store/manifest.h"
#include "store/store.h"
#include "store/fsck.h"
#include "image/image.h"
#include "layer/layer.h"
#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#define MB (1024 * 1024)
#define DISK (16 * MB)

static char tmpdir[PATH_MAX], spath[PATH_MAX + 16];
static struct vmb_store S;
static struct vmb_opctx C;
static unsigned char *disk0;   /* vm/disk.img as made */

static const char *P(const char *rel)
{
	static char buf[PATH_MAX * 2];
	snprintf(buf, sizeof(buf), "%s/%s", spath, rel);
	return buf;
}

static void open_store(void)
{
	struct vmb_err err;

	memset(&C, 0, sizeof(C));
	if (vmb_store_open(&S, spath, VMB_STORE_EXCLUSIVE, &err) < 0 ||
	    vmb_layers_open(&C.layers, S.metafd, NULL, &err) < 0) {
		fprintf(stderr, "cannot open the store: %s\n", err.msg);
		exit(1);
	}
	C.store = &S;
}

static void close_store(void)
{
	vmb_layers_close(C.layers);
	vmb_store_close(&S);
	C.layers = NULL;
}

static void put_file(const char *rel, const void *buf, size_t len, off_t off)
{
	int fd = open(P(rel), O_WRONLY | O_CREAT, 0644);

	if (fd < 0 || pwrite(fd, buf, len, off) != (ssize_t)len) {
		perror(rel);
		exit(1);
	}
	close(fd);
}

/* vm: disk.img (16 MiB, data at 0, 5 MiB and the last block), config (small,
 * 0640, user.k), sub/ (0750) with nested.img (2 MiB, data at 1 MiB), a symlink. */
static void make_bundle(const char *name)
{
	char rel[256];
	unsigned i;
	int fd;
	struct timespec ts[2] = { { 1000, 5 }, { 2000, 7 } };

	disk0 = calloc(1, DISK);
	for (i = 0; i < 3 * 4096; i++)
		disk0[i] = (unsigned char)(i * 7 + 1);
	for (i = 0; i < 8192; i++)
		disk0[5 * MB + i] = (unsigned char)(i * 13 + 3);
	for (i = 0; i < 4096; i++)
		disk0[DISK - 4096 + i] = 0xab;
	mkdir(P(name), 0755);
	snprintf(rel, sizeof(rel), "%s/disk.img", name);
	put_file(rel, disk0, 3 * 4096, 0);
	put_file(rel, disk0 + 5 * MB, 8192, 5 * MB);
	put_file(rel, disk0 + DISK - 4096, 4096, DISK - 4096);
	snprintf(rel, sizeof(rel), "%s/config", name);
	put_file(rel, "hello config\n", 13, 0);
	chmod(P(rel), 0640);
	setxattr(P(rel), "user.k", "v\0w", 3, 0);
	utimensat(AT_FDCWD, P(rel), ts, 0);
	snprintf(rel, sizeof(rel), "%s/sub", name);
	mkdir(P(rel), 0750);
	snprintf(rel, sizeof(rel), "%s/sub/nested.img", name);
	put_file(rel, "nested", 6, MB);
	fd = open(P(rel), O_WRONLY);
	if (fd >= 0) {
		if (ftruncate(fd, 2 * MB) < 0)
			perror("ftruncate");
		close(fd);
	}
	snprintf(rel, sizeof(rel), "%s/link", name);
	symlink("disk.img", P(rel));
	snprintf(rel, sizeof(rel), "%s/sub", name);
	utimensat(AT_FDCWD, P(rel), ts, 0);
}

/* The whole content of rel read through its image (its chain). NULL on failure. */
static unsigned char *content(const char *rel, uint64_t *size)
{
	struct vmb_base_resolver res = vmb_layers_resolver(C.layers);
	struct vmb_image *img;
	struct vmb_err err;
	unsigned char *buf;
	ssize_t n;
	int fd = open(P(rel), O_RDONLY);

	if (fd < 0)
		return NULL;
	if (vmb_image_open2(&img, fd, S.mapfd, rel, NULL, &res, &err) < 0) {
		fprintf(stderr, "open2 %s: %s\n", rel, err.msg);
		close(fd);
		return NULL;
	}
	*size = vmb_image_size(img);
	buf = calloc(1, *size + 1);
	n = vmb_image_read(img, buf, *size, 0, NULL, &err);
	vmb_image_close(img);
	if (n != (ssize_t)*size) {
		fprintf(stderr, "read %s: %s\n", rel, err.msg);
		free(buf);
		return NULL;
	}
	return buf;
}

static int same_as_disk0(const char *rel)
{
	uint64_t size;
	unsigned char *b = content(rel, &size);
	int ok = b && size == DISK && !memcmp(b, disk0, DISK);

	free(b);
	return ok;
}

static void write_image(const char *rel, const void *buf, size_t len, uint64_t off)
{
	struct vmb_base_resolver res = vmb_layers_resolver(C.layers);
	struct vmb_image *img;
	struct vmb_err err;
	int fd = open(P(rel), O_RDWR);

	if (fd < 0 || vmb_image_open2(&img, fd, S.mapfd, rel, NULL, &res, &err) < 0) {
		fprintf(stderr, "cannot open %s\n", rel);
		exit(1);
	}
	if (vmb_image_write(img, buf, len, off, &err) != (ssize_t)len)
		fprintf(stderr, "write %s: %s\n", rel, err.msg);
	vmb_image_close(img);
}

static int has_base(const char *rel)
{
	char v[128];

	return getxattr(P(rel), VMB_BASE_XATTR, v, sizeof(v)) > 0;
}

/* Remove a bundle with its files' maps (as through a mount). */
static int rmrf(const char *rel)
{
	struct vmb_err err;

	return vmb_tree_remove(S.dirfd, rel, S.mapfd, &err);
}

static int exists(const char *rel)
{
	struct stat st;

	return lstat(P(rel), &st) == 0;
}

static unsigned count_dir(const char *rel)
{
	DIR *d = opendir(P(rel));
	struct dirent *de;
	unsigned n = 0;

	if (!d)
		return 0;
	while ((de = readdir(d)))
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

static unsigned fsck_problems(int repair)
{
	struct vmb_fsck_result res;
	struct vmb_err err;
	int r;

	close_store();
	r = vmb_fsck(spath, repair, NULL, &res, &err);
	open_store();
	if (r < 0) {
		fprintf(stderr, "fsck: %s\n", err.msg);
		return 1000;
	}
	if (repair && res.repaired != res.problems)
		return 1000 + res.problems - res.repaired;
	return res.problems;
}

static void test_clone(void)
{
	struct vmb_err err;
	struct stat a, b;
	char v[8];
	uint64_t size;
	unsigned char *buf;

	CHECK_RC(vmb_op_clone(&C, "vm", "vm2", &err), 0);
	CHECK(same_as_disk0("vm/disk.img"));
	CHECK(same_as_disk0("vm2/disk.img"));
	CHECK(has_base("vm/disk.img") && has_base("vm2/disk.img"));
	/* No data space: the clone's delta is empty. */
	CHECK(stat(P("vm2/disk.img"), &b) == 0 && b.st_blocks == 0);
	/* The small file is a plain copy with its mode, times, xattr. */
	CHECK(!has_base("vm2/config") && !has_base("vm/config"));
	CHECK(stat(P("vm/config"), &a) == 0 && stat(P("vm2/config"), &b) == 0);
	CHECK_EQ(b.st_mode & 07777, 0640);
	CHECK_EQ(b.st_mtim.tv_sec, 2000);
	CHECK_EQ(b.st_mtim.tv_nsec, 7);
	CHECK(getxattr(P("vm2/config"), "user.k", v, sizeof(v)) == 3 && !memcmp(v, "v\0w", 3));
	CHECK(stat(P("vm2/sub"), &b) == 0 && (b.st_mode & 07777) == 0750 &&
	      b.st_mtim.tv_sec == 2000);
	CHECK(readlink(P("vm2/link"), v, sizeof(v)) == 8 && !memcmp(v, "disk.img", 8));
	buf = content("vm2/sub/nested.img", &size);
	CHECK(buf && size == 2 * MB && !memcmp(buf + MB, "nested", 6));
	free(buf);
	/* The staging directory is gone. */
	CHECK_EQ(count_dir(".vmbundlefs/staging"), 0);
	/* Writes to one never show in the other. */
	write_image("vm2/disk.img", "CLONE", 5, 100);
	CHECK(same_as_disk0("vm/disk.img"));
	buf = content("vm2/disk.img", &size);
	CHECK(buf && !memcmp(buf + 100, "CLONE", 5) && !memcmp(buf + 105, disk0 + 105, 4096));
	free(buf);
	write_image("vm2/disk.img", disk0 + 100, 5, 100);
	CHECK(same_as_disk0("vm2/disk.img"));
	/* A clone of a clone: a chain of layers. */
	CHECK_RC(vmb_op_clone(&C, "vm2", "vm3", &err), 0);
	CHECK(same_as_disk0("vm3/disk.img"));
	CHECK_EQ(fsck_problems(0), 0);
}

static void test_clone_bad(void)
{
	struct vmb_err err;
	unsigned nbundles = count_dir(".");

	CHECK_RC(vmb_op_clone(&C, "nope", "x", &err), -ENOENT);
	CHECK_STR(err.msg, "no bundle");
	CHECK(!exists("x"));
	CHECK_RC(vmb_op_clone(&C, "vm", "vm2", &err), -EEXIST);
	CHECK_STR(err.msg, "'vm2' exists");
	CHECK_RC(vmb_op_clone(&C, "vm", "", &err), -EINVAL);
	CHECK_RC(vmb_op_clone(&C, "vm", "a/b", &err), -EINVAL);
	CHECK_RC(vmb_op_clone(&C, "vm", ".vmbundlefs", &err), -EINVAL);
	CHECK_RC(vmb_op_clone(&C, "vm", ".hidden", &err), -EINVAL);
	CHECK_RC(vmb_op_clone(&C, "../vm", "y", &err), -EINVAL);
	CHECK_RC(vmb_op_clone(&C, "vm@nosuch", "y", &err), -ENOENT);
	CHECK(!exists("y"));
	CHECK_EQ(count_dir("."), nbundles);
	CHECK_EQ(count_dir(".vmbundlefs/staging"), 0);
}

static void test_snapshot(void)
{
	struct vmb_snapshot_info *l;
	struct vmb_manifest m;
	struct vmb_base *b;
	struct vmb_err err;
	char *where = NULL, big[64];
	unsigned char *buf;
	uint64_t size;
	size_t n, i;
	int sfd;

	CHECK_RC(vmb_op_snapshot(&C, "vm", "s1", &where, &err), 0);
	CHECK(where && !strcmp(where, "vm@s1"));
	free(where);
	CHECK(exists(".vmbundlefs/snapshots/vm@s1"));
	/* The live small file stays plain. */
	CHECK(!has_base("vm/config"));
	/* Change the bundle: the snapshot keeps the old bytes. */
	write_image("vm/disk.img", "AFTER", 5, 5 * MB);
	put_file("vm/config", "changed", 7, 0);
	sfd = openat(S.metafd, VMB_SNAPSHOTS_DIR, O_RDONLY | O_DIRECTORY);
	REQUIRE(vmb_manifest_read(sfd, "vm@s1", &m, &err) == 0);
	close(sfd);
	for (i = 0; i < m.n; i++) {
		if (m.ents[i].kind != 'f')
			continue;
		REQUIRE(vmb_layers_get(C.layers, m.ents[i].id, &b, &err) == 0);
		buf = calloc(1, m.ents[i].size + 1);
		CHECK(b->ops->read(b, buf, m.ents[i].size, 0, &err) == (ssize_t)m.ents[i].size);
		if (!strcmp(m.ents[i].path, "disk.img"))
			CHECK(m.ents[i].size == DISK && !memcmp(buf, disk0, DISK));
		if (!strcmp(m.ents[i].path, "config")) {
			CHECK(!memcmp(buf, "hello config\n", 13));
			CHECK_EQ(m.ents[i].mode, 0640);
			CHECK_EQ(m.ents[i].nxattrs, 1);
		}
		free(buf);
		vmb_base_put(b);
	}
	CHECK_EQ(m.n, 6);   /* ., config, disk.img, link, sub, sub/nested.img */
	vmb_manifest_free(&m);
	/* Clone of the snapshot: the old content. */
	CHECK_RC(vmb_op_clone(&C, "vm@s1", "fromsnap", &err), 0);
	CHECK(same_as_disk0("fromsnap/disk.img"));
	buf = content("fromsnap/config", &size);
	CHECK(buf && size == 13 && !memcmp(buf, "hello config\n", 13));
	free(buf);
	CHECK(!has_base("fromsnap/config"));
	/* Bad input: nothing changes. */
	CHECK_RC(vmb_op_snapshot(&C, "vm", "s1", &where, &err), -EEXIST);
	CHECK_RC(vmb_op_snapshot(&C, "vm", "a@b", &where, &err), -EINVAL);
	CHECK_RC(vmb_op_snapshot(&C, "vm", ".x", &where, &err), -EINVAL);
	CHECK_RC(vmb_op_snapshot(&C, "vm", "a/b", &where, &err), -EINVAL);
	CHECK_RC(vmb_op_snapshot(&C, "missing", "s", &where, &err), -ENOENT);
	CHECK_STR(err.msg, "no bundle 'missing'");
	CHECK_EQ(count_dir(".vmbundlefs/snapshots"), 1);
	/* Default name: the UTC time. */
	CHECK_RC(vmb_op_snapshot(&C, "vm2", NULL, &where, &err), 0);
	CHECK(where && strlen(where) == strlen("vm2@20260101T000000Z") && where[strlen(where) - 1] == 'Z');
	snprintf(big, sizeof(big), "%s", where ? where : "");
	CHECK_RC(vmb_op_snapshot_list(&C, NULL, &l, &n, &err), 0);
	CHECK_EQ(n, 2);
	if (n == 2) {
		CHECK(!strncmp(l[0].spec, "vm2@", 4) && !strcmp(l[1].spec, "vm@s1"));
		CHECK_EQ(l[1].files, 3);
		CHECK_EQ(l[1].logical, DISK + 13 + 2 * MB);
	}
	vmb_snapshot_list_free(l, n);
	CHECK_RC(vmb_op_snapshot_list(&C, "vm", &l, &n, &err), 0);
	CHECK_EQ(n, 1);
	vmb_snapshot_list_free(l, n);
	CHECK_RC(vmb_op_snapshot_delete(&C, big, &err), 0);
	CHECK_RC(vmb_op_snapshot_delete(&C, big, &err), -ENOENT);
	CHECK_RC(vmb_op_snapshot_delete(&C, "vm", &err), -EINVAL);
	free(where);
	/* Put vm back as it was. */
	write_image("vm/disk.img", disk0 + 5 * MB, 5, 5 * MB);
	put_file("vm/config", "hello c", 7, 0);
	CHECK(same_as_disk0("vm/disk.img"));
	CHECK_EQ(fsck_problems(1), 1);   /* vm/config was changed behind its map */
	CHECK_EQ(fsck_problems(0), 0);
}

static void test_deps_space(void)
{
	struct vmb_space *sp;
	struct vmb_deps d;
	struct vmb_err err;
	size_t n, i, j;
	int found = 0;

	CHECK_RC(vmb_op_deps(&C, "vm3", &d, &err), 0);
	CHECK(d.nfiles == 2);   /* disk.img and sub/nested.img */
	for (i = 0; i < d.nfiles; i++)
		if (!strcmp(d.files[i].path, "disk.img")) {
			CHECK(d.files[i].depth >= 2);
			CHECK_EQ(d.files[i].size, DISK);
		}
	for (i = 0; i < d.nlayers; i++)
		for (j = 0; j < d.layers[i].nusers; j++)
			found |= !strcmp(d.layers[i].users[j], "vm@s1");
	CHECK(found);
	vmb_deps_free(&d);
	CHECK_RC(vmb_op_deps(&C, "vm@s1", &d, &err), 0);
	CHECK_EQ(d.nfiles, 3);
	vmb_deps_free(&d);
	CHECK_RC(vmb_op_deps(&C, "nope", &d, &err), -ENOENT);
	CHECK_RC(vmb_op_space(&C, &sp, &n, &err), 0);
	for (i = 0; i < n; i++)
		if (!strcmp(sp[i].name, "vm"))
			CHECK(sp[i].shared >= 3 * 4096 + 8192 + 4096);
	vmb_space_free(sp, n);
}

static void test_gc(void)
{
	struct vmb_layer_list ll;
	struct vmb_gc_result res;
	struct vmb_err err;
	size_t before;
	int fd;

	CHECK_RC(vmb_layers_list(C.layers, &ll, &err), 0);
	before = ll.n;
	vmb_layer_list_free(&ll);
	/* The layer of the small file of vm2's deleted snapshot: nothing uses it. */
	CHECK_RC(vmb_op_gc(&C, &res, &err), 0);
	CHECK_EQ(res.layers_removed, 1);
	CHECK_RC(vmb_op_gc(&C, &res, &err), 0);
	CHECK_EQ(res.layers_removed, 0);
	/* A corrupt manifest: gc removes nothing. */
	fd = openat(S.metafd, "snapshots/vm@bad", O_WRONLY | O_CREAT, 0600);
	CHECK(fd >= 0 && write(fd, "garbage\n", 8) == 8);
	close(fd);
	CHECK(vmb_op_gc(&C, &res, &err) < 0);
	CHECK_STR(err.msg, "gc removed nothing");
	CHECK_STR(err.msg, "vm@bad");
	unlinkat(S.metafd, "snapshots/vm@bad", 0);
	/* Remove the clones and the snapshot: their layers go, vm's stay. */
	CHECK(rmrf("vm2") == 0 && rmrf("vm3") == 0 && rmrf("fromsnap") == 0);
	CHECK_RC(vmb_op_snapshot_delete(&C, "vm@s1", &err), 0);
	CHECK_RC(vmb_op_gc(&C, &res, &err), 0);
	CHECK(res.layers_removed > 0);
	CHECK(res.bytes_freed > 0 || res.layers_removed > 0);
	CHECK(same_as_disk0("vm/disk.img"));
	CHECK_RC(vmb_layers_list(C.layers, &ll, &err), 0);
	CHECK(ll.n < before && ll.n >= 1);
	vmb_layer_list_free(&ll);
	/* An orphan .data (a crash before its .map): removed. */
	fd = openat(vmb_layers_dirfd(C.layers), "0123456789abcdef0123456789abcdef.data",
		    O_WRONLY | O_CREAT, 0400);
	close(fd);
	CHECK_RC(vmb_op_gc(&C, &res, &err), 0);
	CHECK_EQ(res.orphans_removed, 1);
	CHECK_EQ(res.layers_removed, 0);
	CHECK_EQ(fsck_problems(0), 0);
}

static int busy_all(void *arg, const char *id)
{
	(void)arg;
	(void)id;
	return 1;
}

static unsigned hook_freezes, hook_pauses, hook_resumes;
static int hook_freeze(void *arg, int dirfd, const char *name, const char *relpath,
		       char id[VMB_BASE_ID_LEN + 1], struct vmb_err *err)
{
	struct vmb_opctx off = C;

	(void)arg;
	off.freeze = NULL;
	hook_freezes++;
	CHECK(!strncmp(relpath, "vm/", 3));
	return vmb_ops_freeze(&off, dirfd, name, relpath, id, err);
}

static int hook_pause(void *arg, const char *bundle, struct vmb_err *err)
{
	(void)arg;
	(void)err;
	hook_pauses++;
	CHECK(!strcmp(bundle, "vm"));
	return 0;
}

static void hook_resume(void *arg, const char *bundle)
{
	(void)arg;
	(void)bundle;
	hook_resumes++;
}

static int hook_pause_fails(void *arg, const char *bundle, struct vmb_err *err)
{
	(void)arg;
	return vmb_err_set(err, EBUSY, "bundle '%s' cannot be paused", bundle);
}

static void test_hooks(void)
{
	struct vmb_gc_result res;
	struct vmb_err err;
	char *where;

	/* The daemon's hooks: pause/resume around the freezes, freeze by the hook. */
	C.freeze = hook_freeze;
	C.pause = hook_pause;
	C.resume = hook_resume;
	CHECK_RC(vmb_op_snapshot(&C, "vm", "h", &where, &err), 0);
	free(where);
	CHECK(hook_freezes >= 2);   /* disk.img, sub/nested.img */
	CHECK_EQ(hook_pauses, 1);
	CHECK_EQ(hook_resumes, 1);
	C.pause = hook_pause_fails;
	CHECK_RC(vmb_op_snapshot(&C, "vm", "h2", &where, &err), -EBUSY);
	CHECK(!exists(".vmbundlefs/snapshots/vm@h2"));
	C.freeze = NULL;
	C.pause = NULL;
	C.resume = NULL;
	CHECK_RC(vmb_op_snapshot_delete(&C, "vm@h", &err), 0);
	/* layer_busy keeps a layer nothing else uses. */
	C.layer_busy = busy_all;
	CHECK_RC(vmb_op_gc(&C, &res, &err), 0);
	CHECK_EQ(res.layers_removed, 0);
	C.layer_busy = NULL;
	CHECK_RC(vmb_op_gc(&C, &res, &err), 0);
	CHECK(res.layers_removed > 0);
}

static void test_flatten(void)
{
	struct vmb_err err;
	unsigned char *buf;
	int fd;

	CHECK_RC(vmb_op_clone(&C, "vm", "flat", &err), 0);
	CHECK(has_base("flat/disk.img"));
	write_image("flat/disk.img", "FLAT", 4, 7 * MB);
	CHECK_RC(vmb_op_flatten(&C, "flat", &err), 0);
	CHECK(!has_base("flat/disk.img") && !has_base("flat/sub/nested.img"));
	/* Plain: the backing file itself is the content. */
	buf = malloc(DISK);
	fd = open(P("flat/disk.img"), O_RDONLY);
	CHECK(fd >= 0 && pread(fd, buf, DISK, 0) == DISK);
	close(fd);
	CHECK(!memcmp(buf, disk0, 7 * MB) && !memcmp(buf + 7 * MB, "FLAT", 4) &&
	      !memcmp(buf + 7 * MB + 4, disk0 + 7 * MB + 4, DISK - 7 * MB - 4));
	free(buf);
	CHECK(same_as_disk0("vm/disk.img"));
	CHECK_RC(vmb_op_flatten(&C, "flat", &err), 0);   /* idempotent */
	CHECK_RC(vmb_op_flatten(&C, "nope", &err), -ENOENT);
	CHECK_EQ(fsck_problems(0), 0);
}

/* fsck of layers: a lost map, a corrupt and a missing layer (named, the other
 * bundles still checked), an orphan .data. */
static struct vmb_log fsck_say;
static char fsck_out[65536];
static void say_fn(void *arg, const char *msg)
{
	(void)arg;
	strncat(fsck_out, msg, sizeof(fsck_out) - strlen(fsck_out) - 2);
	strcat(fsck_out, "\n");
}

static int fsck_run(int repair, struct vmb_fsck_result *res)
{
	struct vmb_err err;
	int r;

	fsck_out[0] = '\0';
	fsck_say.fn = say_fn;
	close_store();
	r = vmb_fsck(spath, repair, &fsck_say, res, &err);
	open_store();
	return r;
}

static void test_fsck_layers(void)
{
	struct vmb_fsck_result res;
	struct vmb_err err;
	char id[VMB_BASE_ID_LEN + 1], v[128], name[VMB_BASE_ID_LEN + 8], sc[64];
	struct stat st;
	ssize_t n;
	int fd;

	char saved[65536];
	ssize_t savedlen;

	/* fk and fk2 on a layer of their own (vm's content and a write). */
	CHECK_RC(vmb_op_clone(&C, "vm", "fk", &err), 0);
	write_image("fk/disk.img", "FK", 2, 3 * MB);
	CHECK_RC(vmb_op_clone(&C, "fk", "fk2", &err), 0);
	CHECK_RC(fsck_run(0, &res), 0);
	CHECK_EQ(res.problems, 0);
	/* A lost map: reported, rebuilt. */
	REQUIRE(stat(P("fk/disk.img"), &st) == 0);
	snprintf(sc, sizeof(sc), "maps/%016llx.map", (unsigned long long)st.st_ino);
	CHECK(unlinkat(S.metafd, sc, 0) == 0);
	CHECK_RC(fsck_run(1, &res), 0);
	CHECK_STR(fsck_out, "fk/disk.img");
	CHECK_STR(fsck_out, "map of a layered file was lost");
	CHECK(res.problems >= 1 && res.repaired == res.problems);
	CHECK_RC(fsck_run(0, &res), 0);
	CHECK_EQ(res.problems, 0);
	/* fk's layer made missing: named, the file reported, the check goes on. */
	n = getxattr(P("fk/disk.img"), VMB_BASE_XATTR, v, sizeof(v) - 1);
	REQUIRE(n > VMB_BASE_ID_LEN);
	memcpy(id, v, VMB_BASE_ID_LEN);
	id[VMB_BASE_ID_LEN] = '\0';
	snprintf(name, sizeof(name), "%s.map", id);
	fd = openat(vmb_layers_dirfd(C.layers), name, O_RDONLY);
	savedlen = fd >= 0 ? read(fd, saved, sizeof(saved)) : -1;
	close(fd);
	REQUIRE(savedlen > 0 && savedlen < (ssize_t)sizeof(saved));
	CHECK(unlinkat(vmb_layers_dirfd(C.layers), name, 0) == 0);
	CHECK_RC(fsck_run(1, &res), 0);
	CHECK_STR(fsck_out, id);
	CHECK_STR(fsck_out, "fk/disk.img");
	CHECK_STR(fsck_out, "fk2/disk.img");
	CHECK(res.problems > res.repaired);
	CHECK(vmb_op_gc(&C, &(struct vmb_gc_result){ 0 }, &err) < 0);   /* removes nothing */
	CHECK_STR(err.msg, id);
	/* Corrupt instead: also named. */
	fd = openat(vmb_layers_dirfd(C.layers), name, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0 && write(fd, saved, (size_t)savedlen) == savedlen);
	CHECK(pwrite(fd, "XX", 2, 100) == 2);
	close(fd);
	CHECK_RC(fsck_run(0, &res), 0);
	CHECK_STR(fsck_out, id);
	CHECK_STR(fsck_out, "corrupt");
	CHECK(res.problems >= 1);
	CHECK(same_as_disk0("vm/disk.img"));   /* vm does not need that layer */
	/* Sound again: the layer restored, the clones removed, gc takes the layer. */
	fd = openat(vmb_layers_dirfd(C.layers), name, O_WRONLY | O_TRUNC);
	CHECK(fd >= 0 && write(fd, saved, (size_t)savedlen) == savedlen);
	close(fd);
	CHECK(rmrf("fk") == 0 && rmrf("fk2") == 0);
	CHECK_RC(vmb_op_gc(&C, &(struct vmb_gc_result){ 0 }, &err), 0);
	CHECK_RC(fsck_run(0, &res), 0);
	CHECK_EQ(res.problems, 0);
}

/* A plain file's map saved under its stamp but calling blocks past its end data (a
 * daemon saved it so when someone else cut the file short while it was open):
 * opens failed on it with EIO and fsck found nothing; fsck reports and rebuilds it. */
static void test_fsck_map_past_end(void)
{
	struct vmb_fsck_result res;
	struct vmb_blockmap m;
	struct vmb_stamp st;
	struct vmb_err err;
	char name[VMB_SIDECAR_NAME_MAX];
	int fd;

	REQUIRE(mkdir(P("pe"), 0755) == 0);
	fd = open(P("pe/disk.img"), O_RDWR | O_CREAT | O_EXCL, 0644);
	REQUIRE(fd >= 0);
	CHECK(pwrite(fd, "data", 4, 0) == 4);
	CHECK(ftruncate(fd, 4096) == 0);
	vmb_blockmap_init(&m);
	CHECK_RC(vmb_blockmap_set(&m, 0, 256, VMB_DATA), 0);   /* 1 MiB of data */
	CHECK_RC(vmb_stamp_fd(fd, &st, &err), 0);
	vmb_sidecar_name(st.ino, name);
	CHECK_RC(vmb_sidecar_write(S.mapfd, name, &m, &st, 1, &err), 0);
	vmb_blockmap_destroy(&m);
	close(fd);
	CHECK_RC(fsck_run(0, &res), 0);
	CHECK_EQ(res.problems, 1);
	CHECK_STR(fsck_out, "pe/disk.img: map needs rebuilding (the map has blocks past the "
		  "end of the file)");
	CHECK_RC(fsck_run(1, &res), 0);
	CHECK_EQ(res.repaired, 1);
	CHECK_RC(fsck_run(0, &res), 0);
	CHECK_EQ(res.problems, 0);
	fd = open(P("pe/disk.img"), O_RDONLY);
	REQUIRE(fd >= 0);
	CHECK_RC(vmb_image_load_map(fd, S.mapfd, "pe/disk.img", &m, &(uint64_t){0},
				    &(int){0}, &err), 0);   /* opens again */
	vmb_blockmap_destroy(&m);
	close(fd);
}

/* Run op in a child killed after step `step`; 1 when it was killed there. */
static int killed_at(const char *op, unsigned step, int (*fn)(void))
{
	char v[64];
	pid_t pid;
	int st;

	snprintf(v, sizeof(v), "%s:%u", op, step);
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		setenv("VMB_OP_KILL_AT", v, 1);
		_exit(fn() == 0 ? 0 : 1);
	}
	if (pid < 0 || waitpid(pid, &st, 0) != pid)
		return 0;
	return WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;
}

static int do_clone(void) { struct vmb_err e; return vmb_op_clone(&C, "vm", "kc", &e); }
static int do_snap(void) { struct vmb_err e; char *w; return vmb_op_snapshot(&C, "vm", "ks", &w, &e); }
static int do_flatten(void) { struct vmb_err e; return vmb_op_flatten(&C, "kf", &e); }
static int do_gc(void) { struct vmb_gc_result r; struct vmb_err e; return vmb_op_gc(&C, &r, &e); }

/* Hard links: a plain file with two names is copied into its layer, never frozen
 * (its other name would become the layer's data file). */
static void test_hardlinks(void)
{
	struct vmb_err err;
	struct stat a, b;
	char *where;
	uint64_t size;
	unsigned char *buf;

	REQUIRE(mkdir(P("hl"), 0755) == 0);
	put_file("hl/big.img", disk0, 2 * MB, 0);
	{
		char first[PATH_MAX * 2];
		snprintf(first, sizeof(first), "%s", P("hl/big.img"));
		REQUIRE(link(first, P("hl/other.img")) == 0);
	}
	fsck_problems(1);
	CHECK_RC(vmb_op_snapshot(&C, "hl", "s", &where, &err), 0);
	free(where);
	CHECK_RC(vmb_op_clone(&C, "hl", "hl2", &err), 0);
	CHECK(stat(P("hl/big.img"), &a) == 0 && stat(P("hl/other.img"), &b) == 0);
	CHECK(a.st_ino == b.st_ino && a.st_nlink == 2 && (a.st_mode & 0777) == 0644);
	CHECK(!has_base("hl/big.img"));
	buf = content("hl2/big.img", &size);
	CHECK(buf && size == 2 * MB && !memcmp(buf, disk0, 2 * MB));
	free(buf);
	/* A write through the other name changes neither the clone nor the snapshot's
	 * layer. */
	put_file("hl/other.img", "XYZ", 3, 0);
	buf = content("hl2/big.img", &size);
	CHECK(buf && !memcmp(buf, disk0, 2 * MB));
	free(buf);
	CHECK(rmrf("hl") == 0 && rmrf("hl2") == 0);
	CHECK_RC(vmb_op_snapshot_delete(&C, "hl@s", &err), 0);
	CHECK_RC(vmb_op_gc(&C, &(struct vmb_gc_result){ 0 }, &err), 0);
	CHECK_EQ(fsck_problems(0), 0);
}

static void test_crash(void)
{
	struct vmb_gc_result res;
	struct vmb_err err;
	unsigned step;

	for (step = 1; step <= 4; step++) {
		/* The child holds no lock of its own: it shares the parent's open store. */
		CHECK(killed_at("clone", step, do_clone));
		if (exists("kc")) {
			CHECK(step == 4);
			CHECK(same_as_disk0("kc/disk.img"));
		} else {
			CHECK(step < 4);
		}
		CHECK(same_as_disk0("vm/disk.img"));
		if (count_dir(".vmbundlefs/staging") > 0) {   /* fsck -n reports it */
			struct vmb_fsck_result fr;
			CHECK_RC(fsck_run(0, &fr), 0);
			CHECK(fr.problems >= 1 && strstr(fsck_out, "staging/cln.") &&
			      strstr(fsck_out, "needs removing"));
		}
		CHECK_EQ(fsck_problems(1) >= 1000, 0);
		CHECK_EQ(count_dir(".vmbundlefs/staging"), 0);   /* fsck removed it */
		CHECK_RC(vmb_op_gc(&C, &res, &err), 0);
		CHECK_EQ(count_dir(".vmbundlefs/staging"), 0);
		CHECK_EQ(fsck_problems(0), 0);
		CHECK(rmrf("kc") == 0);
	}
	for (step = 1; step <= 3; step++) {
		struct vmb_manifest m;
		int sfd;

		CHECK(killed_at("snapshot", step, do_snap));
		sfd = openat(S.metafd, VMB_SNAPSHOTS_DIR, O_RDONLY | O_DIRECTORY);
		if (step < 3) {
			CHECK(faccessat(sfd, "vm@ks", F_OK, 0) < 0);
		} else {
			CHECK(vmb_manifest_read(sfd, "vm@ks", &m, &err) == 0);
			vmb_manifest_free(&m);
		}
		close(sfd);
		CHECK(same_as_disk0("vm/disk.img"));
		CHECK_EQ(fsck_problems(1) >= 1000, 0);
		CHECK_RC(vmb_op_gc(&C, &res, &err), 0);
		CHECK_EQ(fsck_problems(0), 0);
		vmb_op_snapshot_delete(&C, "vm@ks", &err);
	}
	/* Killed inside a freeze, after its layer is made, before the new delta is
	 * in place: the file reads as before, the layer is nobody's. */
	write_image("vm/disk.img", disk0 + 42, 1, 42);   /* a delta to freeze */
	{
		struct stat a, b;
		CHECK(stat(P("vm/disk.img"), &a) == 0);
		CHECK(killed_at("freeze", 1, do_clone));
		/* its inode is linked as the layer's data, but its mode is its own */
		CHECK(stat(P("vm/disk.img"), &b) == 0);
		CHECK(a.st_ino == b.st_ino && b.st_nlink == 2);
		CHECK_EQ(b.st_mode & 07777, a.st_mode & 07777);
		/* fsck removes that layer (its data is still the file), mode untouched */
		CHECK(fsck_problems(0) >= 1);
		CHECK_EQ(fsck_problems(1) >= 1000, 0);
		CHECK(stat(P("vm/disk.img"), &b) == 0);
		CHECK(a.st_ino == b.st_ino && b.st_nlink == 1);
		CHECK_EQ(b.st_mode & 07777, a.st_mode & 07777);
	}
	CHECK(!exists("kc"));
	CHECK(same_as_disk0("vm/disk.img"));
	CHECK_RC(vmb_op_gc(&C, &res, &err), 0);
	CHECK_EQ(fsck_problems(0), 0);
	CHECK(same_as_disk0("vm/disk.img"));
	/* Killed right after the rename, before the layer is made read-only: the
	 * file reads as before; fsck makes the layer read-only. */
	write_image("vm/disk.img", disk0 + 43, 1, 43);
	{
		char v[128], data[VMB_BASE_ID_LEN + 32];
		struct stat a, b;
		ssize_t n;
		CHECK(stat(P("vm/disk.img"), &a) == 0);
		CHECK(killed_at("freeze", 2, do_clone));
		CHECK(same_as_disk0("vm/disk.img"));
		n = getxattr(P("vm/disk.img"), VMB_BASE_XATTR, v, sizeof(v) - 1);
		CHECK(n > VMB_BASE_ID_LEN);
		if (n > VMB_BASE_ID_LEN) {
			snprintf(data, sizeof(data), ".vmbundlefs/layers/%.32s.data", v);
			CHECK(stat(P(data), &b) == 0 && b.st_ino == a.st_ino);
			CHECK_EQ(b.st_mode & 07777, a.st_mode & 07777);   /* not sealed */
			CHECK(fsck_problems(0) >= 1);   /* and the old inode's map */
			CHECK(fsck_problems(1) < 1000);
			CHECK(stat(P(data), &b) == 0 && (b.st_mode & 07777) == 0400);
		}
		CHECK_EQ(fsck_problems(0), 0);
		CHECK_RC(vmb_op_gc(&C, &res, &err), 0);
		rmrf("kc");
	}
	CHECK_RC(vmb_op_clone(&C, "vm", "kf", &err), 0);
	for (step = 1; step <= 2; step++) {
		CHECK(killed_at("flatten", step, do_flatten));
		CHECK(same_as_disk0("kf/disk.img"));
		CHECK_EQ(fsck_problems(0), 0);
	}
	CHECK(!has_base("kf/disk.img"));
	CHECK(rmrf("kf") == 0);
	for (step = 1; step <= 2; step++) {
		char *w;
		CHECK_RC(vmb_op_snapshot(&C, "vm", "g", &w, &err), 0);
		free(w);
		CHECK_RC(vmb_op_snapshot_delete(&C, "vm@g", &err), 0);
		CHECK(killed_at("gc", step, do_gc));
		CHECK(same_as_disk0("vm/disk.img"));
		CHECK_EQ(fsck_problems(0), 0);
		CHECK_RC(vmb_op_gc(&C, &res, &err), 0);
	}
}

int main(int argc, char **argv)
{
	struct vmb_err err;

	(void)argc;
	if (harness_tmpdir(tmpdir, sizeof(tmpdir), "ops") < 0)
		return 1;
	snprintf(spath, sizeof(spath), "%s/store", tmpdir);
	if (vmb_store_init(spath, &err) < 0) {
		fprintf(stderr, "init: %s\n", err.msg);
		return 1;
	}
	make_bundle("vm");
	{
		char v[4];
		if (setxattr(P("vm"), "user.probe", "1", 1, 0) < 0 ||
		    setxattr(P("vm/config"), "trusted.vmbundlefs.probe", "1", 1, 0) < 0 ||
		    getxattr(P("vm/config"), "trusted.vmbundlefs.probe", v, sizeof(v)) < 0) {
			harness_rmtree(tmpdir);
			SKIP("no user./trusted. xattrs here (needs root on a filesystem with xattrs)");
		}
		removexattr(P("vm/config"), "trusted.vmbundlefs.probe");
	}
	open_store();
	/* The bundle was made directly in the store: fsck gives its files their maps. */
	fsck_problems(1);
	RUN(test_clone);
	RUN(test_clone_bad);
	RUN(test_snapshot);
	RUN(test_deps_space);
	RUN(test_gc);
	RUN(test_hooks);
	RUN(test_flatten);
	RUN(test_fsck_layers);
	RUN(test_fsck_map_past_end);
	RUN(test_hardlinks);
	RUN(test_crash);
	close_store();
	free(disk0);
	harness_rmtree(tmpdir);
	return harness_exit(argv[0]);
}
