/* test_walk.c - unit tests of the tree walk (src/store_walk.c) on trees deeper and
 * longer than the kernel's path limits, and of the commands built on it without a
 * mount (bundle listing, fsck): no depth limit, bounded descriptors, whole paths
 * for archives, shortened ones for messages, a directory moved during the walk. */
#include "config.h"
#include "store/store.h"
#include "store/fsck.h"
#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[1024];
static char path_buf[2048];

static const char *P(const char *rel)
{
	snprintf(path_buf, sizeof(path_buf), "%s/%s", tmpdir, rel);
	return path_buf;
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d)))
		n += de->d_name[0] != '.';
	closedir(d);
	return n - 1;   /* the DIR's own */
}

/* Make `levels` nested directories called `name` under dir fd (not consumed), then
 * a file "f" holding `text` at the bottom. Returns 0, or -1. */
static int deep_chain(int fd, const char *name, int levels, const char *text)
{
	int cur = dup(fd), nfd, ok = 1;

	for (int i = 0; ok && i < levels; i++) {
		ok = mkdirat(cur, name, 0755) == 0 &&
		     (nfd = openat(cur, name, O_RDONLY | O_DIRECTORY)) >= 0;
		close(cur);
		cur = ok ? nfd : -1;
	}
	if (ok) {
		int f = openat(cur, "f", O_WRONLY | O_CREAT | O_EXCL, 0644);

		ok = f >= 0 && write(f, text, strlen(text)) == (ssize_t)strlen(text);
		if (f >= 0)
			close(f);
	}
	if (cur >= 0)
		close(cur);
	return ok ? 0 : -1;
}

struct acc {
	int files, dirs, posts, base_fds, max_fds;
	size_t max_depth, longest, longest_msg;
	int msg_ok, path_ok;
	char last_msg[VMB_PATH_MSG_MAX + 1];
	int move_at_files;     /* rename moved_from to moved_to at this many files */
	int storefd;
	const char *moved_from, *moved_to;
};

static int on_entry(void *arg, enum vmb_tree_event ev, const struct vmb_tree_ent *e,
		    struct vmb_err *err)
{
	struct acc *a = arg;
	size_t ml = strlen(e->msgpath), nl = strlen(e->name);
	int fds = count_fds();

	(void)err;
	if (fds > a->max_fds)
		a->max_fds = fds;
	if (e->depth > a->max_depth)
		a->max_depth = e->depth;
	if (strlen(e->path) != e->pathlen || e->pathlen < nl ||
	    strcmp(e->path + e->pathlen - nl, e->name) || e->path[e->pathlen - nl - 1] != '/')
		a->path_ok = 0;
	/* messages: below PATH_MAX, ending with the whole name */
	if (ml > VMB_PATH_MSG_MAX || ml < nl || strcmp(e->msgpath + ml - nl, e->name) ||
	    (e->pathlen <= VMB_PATH_MSG_MAX && strcmp(e->msgpath, e->path)) ||
	    (e->pathlen > VMB_PATH_MSG_MAX && !strstr(e->msgpath, "...")))
		a->msg_ok = 0;
	if (e->pathlen > a->longest) {
		a->longest = e->pathlen;
		a->longest_msg = ml;
		snprintf(a->last_msg, sizeof(a->last_msg), "%s", e->msgpath);
	}
	switch (ev) {
	case VMB_TREE_FILE:
		a->files++;
		if (a->move_at_files && a->files == a->move_at_files &&
		    renameat(a->storefd, a->moved_from, a->storefd, a->moved_to) < 0)
			return -errno;
		break;
	case VMB_TREE_DIR:
		a->dirs++;
		break;
	case VMB_TREE_DIR_POST:
		a->posts++;
		break;
	}
	return 0;
}

static void acc_init(struct acc *a)
{
	memset(a, 0, sizeof(*a));
	a->msg_ok = a->path_ok = 1;
	a->base_fds = count_fds();
}

/* 3,000 levels of "d" (a 6,000-byte path) and 20 levels of 250-byte names (5,000
 * bytes), with files at the bottom: everything is walked, at most a few
 * descriptors are open, paths are whole, messages short. */
static void test_deep(void)
{
	char longname[251];
	struct acc *a = malloc(sizeof(*a));
	struct vmb_err e;
	int bfd;

	REQUIRE(a);
	memset(longname, 'n', 250);
	longname[250] = '\0';
	REQUIRE(mkdir(P("deep"), 0755) == 0);
	bfd = open(P("deep"), O_RDONLY | O_DIRECTORY);
	REQUIRE(bfd >= 0);
	CHECK(deep_chain(bfd, "d", 3000, "bottom") == 0);
	CHECK(deep_chain(bfd, longname, 20, "long") == 0);

	acc_init(a);
	vmb_err_clear(&e);
	CHECK_RC(vmb_tree_walk(bfd, "top", on_entry, a, &e), 0);
	CHECK_EQ(a->files, 2);
	CHECK_EQ(a->dirs, 3020);
	CHECK_EQ(a->posts, 3020);
	CHECK_EQ(a->max_depth, 3001);
	CHECK(a->path_ok);
	CHECK(a->msg_ok);
	CHECK_EQ(a->longest, 3 + 3000 * 2 + 2);   /* "top" + "/d" x 3000 + "/f" */
	CHECK(a->longest_msg == VMB_PATH_MSG_MAX);
	CHECK(strncmp(a->last_msg, "top/d/d/", 8) == 0);
	CHECK(strcmp(a->last_msg + strlen(a->last_msg) - 4, "/d/f") == 0);
	/* the walk's own descriptors stay bounded (16 directories and the top) */
	CHECK(a->max_fds - a->base_fds <= 20);
	CHECK_EQ(count_fds(), a->base_fds);
	close(bfd);
	free(a);
}

/* A directory moved while the walk was below it, out of the part whose
 * descriptors were closed: the walk fails with ESTALE and a message, rather than
 * walking somewhere else. */
static void test_moved(void)
{
	struct acc *a = malloc(sizeof(*a));
	struct vmb_err e;
	int bfd, sfd;

	REQUIRE(a);
	REQUIRE(mkdir(P("mv"), 0755) == 0);
	REQUIRE(mkdir(P("mv/b"), 0755) == 0);
	sfd = open(P("mv"), O_RDONLY | O_DIRECTORY);
	bfd = open(P("mv/b"), O_RDONLY | O_DIRECTORY);
	REQUIRE(sfd >= 0 && bfd >= 0);
	CHECK(deep_chain(bfd, "d", 40, "x") == 0);
	acc_init(a);
	a->move_at_files = 1;
	a->storefd = sfd;
	a->moved_from = "b/d/d/d/d/d";
	a->moved_to = "elsewhere";
	vmb_err_clear(&e);
	CHECK_RC(vmb_tree_walk(bfd, "b", on_entry, a, &e), -ESTALE);
	CHECK_STR(e.msg, "was moved while it was walked");
	CHECK_EQ(count_fds(), a->base_fds);
	close(bfd);
	close(sfd);
	free(a);
}

/* VMB_TREE_SKIP keeps the walk out of a directory; another non-zero return stops
 * it and is returned. */
static int skip_or_stop(void *arg, enum vmb_tree_event ev, const struct vmb_tree_ent *e,
			struct vmb_err *err)
{
	int *files = arg;

	(void)err;
	if (ev == VMB_TREE_DIR && !strcmp(e->name, "skip"))
		return VMB_TREE_SKIP;
	if (ev == VMB_TREE_FILE && ++*files == 2)
		return 7;
	return 0;
}

static void test_skip_stop(void)
{
	int fd, files = 0;

	REQUIRE(mkdir(P("ss"), 0755) == 0);
	REQUIRE(mkdir(P("ss/skip"), 0755) == 0);
	fd = open(P("ss/skip/inside"), O_WRONLY | O_CREAT, 0644);
	close(fd);
	fd = open(P("ss/a"), O_WRONLY | O_CREAT, 0644);
	close(fd);
	fd = open(P("ss/b"), O_WRONLY | O_CREAT, 0644);
	close(fd);
	fd = open(P("ss/c"), O_WRONLY | O_CREAT, 0644);
	close(fd);
	fd = open(P("ss"), O_RDONLY | O_DIRECTORY);
	REQUIRE(fd >= 0);
	CHECK_RC(vmb_tree_walk(fd, "ss", skip_or_stop, &files, NULL), 7);
	CHECK_EQ(files, 2);   /* a, b: nothing from skip/ */
	close(fd);
}

/* vmb_path_msg: short paths as they are, long ones shortened in the middle. */
static void test_msg(void)
{
	char *p = malloc(10000), buf[VMB_PATH_MSG_MAX + 1];
	const char *m;

	REQUIRE(p);
	memset(p, 'a', 9000);
	strcpy(p + 9000, "/lastname");
	m = vmb_path_msg(p, strlen(p), buf);
	CHECK(strlen(m) == VMB_PATH_MSG_MAX);
	CHECK(strstr(m, "...") != NULL);
	CHECK(strcmp(m + strlen(m) - 9, "/lastname") == 0);
	p[VMB_PATH_MSG_MAX] = '\0';
	CHECK(vmb_path_msg(p, VMB_PATH_MSG_MAX, buf) == p);
	/* a last name of NAME_MAX bytes stays whole */
	memset(p, 'a', 9000);
	p[9000 - NAME_MAX - 1] = '/';
	p[9000] = '\0';
	m = vmb_path_msg(p, 9000, buf);
	CHECK(strcmp(m + strlen(m) - NAME_MAX - 1, p + 9000 - NAME_MAX - 1) == 0);
	free(p);
}

static void quiet(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

/* The commands: ls (the bundle list) and fsck of a store with a bundle 3,000
 * levels deep and one with a 5,000-byte path. */
static void test_store_deep(void)
{
	char longname[251];
	struct vmb_bundle_info *list = NULL;
	struct vmb_log q = { quiet, NULL };
	struct vmb_fsck_result res;
	struct vmb_store s;
	struct vmb_err e;
	size_t n = 0;
	int sfd;

	memset(longname, 'n', 250);
	longname[250] = '\0';
	REQUIRE(vmb_store_init(P("store"), NULL) == 0);
	REQUIRE(mkdir(P("store/deep"), 0755) == 0);
	REQUIRE(mkdir(P("store/long"), 0755) == 0);
	sfd = open(P("store/deep"), O_RDONLY | O_DIRECTORY);
	REQUIRE(sfd >= 0);
	CHECK(deep_chain(sfd, "d", 3000, "bottom") == 0);
	close(sfd);
	sfd = open(P("store/long"), O_RDONLY | O_DIRECTORY);
	REQUIRE(sfd >= 0);
	CHECK(deep_chain(sfd, longname, 20, "long!") == 0);
	close(sfd);

	CHECK_RC(vmb_store_open(&s, P("store"), VMB_STORE_READ, NULL), 0);
	vmb_err_clear(&e);
	CHECK_RC(vmb_store_list(&s, &list, &n, &e), 0);
	CHECK_EQ(n, 2);
	if (n == 2 && list) {
		CHECK_EQ(list[0].files, 1);
		CHECK_EQ(list[0].logical, 6);
		CHECK_EQ(list[1].files, 1);
		CHECK_EQ(list[1].logical, 5);
	}
	vmb_bundle_list_free(list, n);
	vmb_store_close(&s);

	/* no maps yet: rebuilt, then clean */
	vmb_err_clear(&e);
	CHECK_RC(vmb_fsck(P("store"), 1, &q, &res, &e), 0);
	CHECK_EQ(res.files, 2);
	CHECK_EQ(res.problems, 2);
	CHECK_EQ(res.repaired, 2);
	CHECK_RC(vmb_fsck(P("store"), 0, &q, &res, &e), 0);
	CHECK_EQ(res.files, 2);
	CHECK_EQ(res.problems, 0);
}

int main(void)
{
	char cmd[1200];
	int r;

	if (harness_tmpdir(tmpdir, sizeof(tmpdir), "walk") < 0)
		return 1;
	RUN(test_msg);
	RUN(test_deep);
	RUN(test_moved);
	RUN(test_skip_stop);
	RUN(test_store_deep);
	/* nftw cannot remove trees deeper than PATH_MAX; rm -rf can */
	if (!getenv("VMB_KEEP_TMP")) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
		r = system(cmd);
		(void)r;
	}
	return harness_exit("test_walk");
}
