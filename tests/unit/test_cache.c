/* test_cache.c - the shared verified chunk cache (src/remote/cache.h) without network
 * or mount: layout and modes, open errors, single-flight across forked processes and
 * threads, takeover from a filler killed by SIGKILL, verification (refill, then EIO),
 * crashes at each step of a fill, LRU eviction with limits and pins, fsck. */
#include "config.h"

#include <errno.h>
#include <grp.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/digest.h"
#include "base/bufpool.h"
#include "remote/cache.h"
#include "remote/cache_int.h"   /* vmb_cache_rel, vmb_cache_lock_byte */
#include "harness.h"

static char root[4096];
static char uroot[4096];   /* under /tmp: for the checks run as uid 65534 */

/* An object: len bytes from a seed, and its digest. */
struct obj {
	uint8_t *data;
	uint64_t len;
	uint8_t d[32];
	char hex[VMB_SHA256_HEX];
};

static void obj_make(struct obj *o, unsigned seed, uint64_t len)
{
	o->data = malloc(len ? len : 1);
	o->len = len;
	for (uint64_t i = 0; i < len; i++)
		o->data[i] = (uint8_t)((i * 2654435761u + seed * 40503u) >> 7);
	vmb_sha256(o->data, len, o->d, NULL);
	vmb_sha256_hex(o->d, o->hex);
}

/* What a fill does. Each call appends one byte to countfile (shared by processes). */
struct fillspec {
	const struct obj *o;
	const char *countfile;
	int sleep_ms;      /* before writing */
	int bad_calls;     /* this many first calls (per process) write wrong bytes */
	int short_write;   /* write one byte less */
	int fail;          /* return -EHOSTUNREACH */
	int hang_half;     /* write half, tell hang_fd, then sleep forever */
	int hang_fd;
	int give_sha;      /* fillmem_cb: report the SHA-256 of the bytes it gives */
	int calls;
	int got_mem;       /* get_any (mem 3): results that came in memory */
};

static void count_call(const char *file)
{
	int fd = open(file, O_WRONLY | O_APPEND | O_CREAT, 0644);

	if (fd >= 0) {
		if (write(fd, "x", 1) != 1)
			perror("count");
		close(fd);
	}
}

static long count_of(const char *file)
{
	struct stat st;

	return stat(file, &st) == 0 ? (long)st.st_size : 0;
}

/* What both fills do: count the call, sleep, fail, hang (fd fills only, fd >= 0),
 * then *bufp gets a malloc'd copy of the object (wrong bytes for the first bad_calls
 * calls). 0 or -errno. */
static int fill_bytes(struct fillspec *s, uint64_t len, int fd, uint8_t **bufp,
		      struct vmb_err *err)
{
	int call = __atomic_fetch_add(&s->calls, 1, __ATOMIC_SEQ_CST);
	uint8_t *buf;

	*bufp = NULL;
	if (s->countfile)
		count_call(s->countfile);
	if (s->sleep_ms)
		usleep((useconds_t)s->sleep_ms * 1000);
	if (s->fail)
		return vmb_err_set(err, EHOSTUNREACH, "test: no route to the server");
	if (s->hang_half && fd >= 0) {
		if (pwrite(fd, s->o->data, len / 2, 0) < 0)
			return -errno;
		if (write(s->hang_fd, "h", 1) != 1)
			return -EIO;
		for (;;)
			pause();
	}
	buf = vmb_buf_get(len);   /* the cache gives it back (cache.h) */
	memcpy(buf, s->o->data, len);
	if (call < s->bad_calls && len)
		buf[len / 3] ^= 0x40;
	*bufp = buf;
	return 0;
}

static int fill_cb(void *arg, const uint8_t digest[32], uint64_t len, int fd,
		   struct vmb_err *err)
{
	struct fillspec *s = arg;
	uint64_t n = s->short_write ? len - 1 : len;
	uint8_t *buf;
	int r;

	(void)digest;
	r = fill_bytes(s, len, fd, &buf, err);
	if (r < 0)
		return r;
	if (pwrite(fd, buf, n, 0) != (ssize_t)n)
		r = -EIO;
	vmb_buf_put(buf);
	return r;
}

/* fill_cb's counterpart into memory (hang_half not supported). */
static int fillmem_cb(void *arg, const uint8_t digest[32], uint64_t len, void **bufp,
		      size_t *got, uint8_t sha[32], int *have_sha, struct vmb_err *err)
{
	struct fillspec *s = arg;
	uint8_t *buf;
	int r;

	(void)digest;
	*bufp = NULL;
	r = fill_bytes(s, len, -1, &buf, err);
	if (r < 0)
		return r;
	*bufp = buf;
	*got = s->short_write ? len - 1 : len;
	if (s->give_sha) {   /* as a fetcher hashing the body as it comes */
		r = vmb_sha256(buf, *got, sha, err);
		if (r < 0)
			return r;
		*have_sha = 1;
	}
	return 0;
}

static struct vmb_cache *open_cache(const char *dir, uint64_t max, uint64_t min_free)
{
	struct vmb_cache_opts o;
	struct vmb_cache *c = NULL;
	struct vmb_err err;

	vmb_cache_opts_default(&o);
	o.max_bytes = max;
	o.min_free_bytes = min_free;
	o.evict_manual = 1;
	vmb_err_clear(&err);
	if (vmb_cache_open(dir, &o, &c, &err) < 0)
		fprintf(stderr, "open cache: %s\n", err.msg);
	return c;
}

/* The fd holds exactly the object's bytes. */
static int fd_is(int fd, const struct obj *o)
{
	uint8_t *buf = malloc(o->len + 1);
	ssize_t n = pread(fd, buf, o->len + 1, 0);
	int ok = n == (ssize_t)o->len && memcmp(buf, o->data, o->len) == 0;

	free(buf);
	return ok;
}

/* A get through fill_cb (mem 0) or fillmem_cb (mem 1; mem 2: one that gives the
 * digest of its bytes, which the cache then does not compute; mem 3: that, through
 * vmb_cache_get_ref, whose bytes may come back in memory: then *fd is an fd of a
 * copy of them in a memfd, so that the callers read them as any other). */
static int get_any(struct vmb_cache *c, const struct obj *o, struct fillspec *s, int mem,
		   int *fd, int *hit, struct vmb_err *err)
{
	struct vmb_cache_mem *m = NULL;
	int r;

	vmb_err_clear(err);
	s->give_sha = mem >= 2;
	if (mem == 3) {
		r = vmb_cache_get_ref(c, o->d, o->len, fillmem_cb, s, fd, &m, hit, err);
		if (r == 0 && m) {
			if (*fd != -1)
				r = -EBADF;   /* one or the other */
			else if ((*fd = memfd_create("ref", MFD_CLOEXEC)) < 0 ||
				 pwrite(*fd, m->data, m->len, 0) != (ssize_t)m->len)
				r = -EIO;
			s->got_mem++;
			vmb_cache_mem_put(m);
		}
		return r;
	}
	if (mem)
		return vmb_cache_get_mem(c, o->d, o->len, fillmem_cb, s, fd, hit, err);
	return vmb_cache_get(c, o->d, o->len, fill_cb, s, fd, hit, err);
}

static int get_check_with(struct vmb_cache *c, const struct obj *o, struct fillspec *s,
			  int *hit, int mem)
{
	struct vmb_err err;
	int fd = -1, r, ok;

	r = get_any(c, o, s, mem, &fd, hit, &err);
	if (r < 0) {
		fprintf(stderr, "get %s: %s\n", o->hex, err.msg);
		return r;
	}
	ok = fd_is(fd, o);
	close(fd);
	return ok ? 0 : -EILSEQ;
}

static int get_check(struct vmb_cache *c, const struct obj *o, struct fillspec *s, int *hit)
{
	return get_check_with(c, o, s, hit, 0);
}

static void path_of(char *buf, size_t size, const char *dir, const char *sub, const struct obj *o)
{
	snprintf(buf, size, "%s/%s/%.2s/%s", dir, sub, o->hex, o->hex);
}

static int dir_entries(const char *path)
{
	char cmd[4200];
	FILE *p;
	int n = -1;

	snprintf(cmd, sizeof(cmd), "ls -A '%s' | wc -l", path);
	p = popen(cmd, "r");
	if (p) {
		if (fscanf(p, "%d", &n) != 1)
			n = -1;
		pclose(p);
	}
	return n;
}

static void test_basic(void)
{
	char dir[4200], p[4400], buf[64];
	struct obj o, empty;
	struct fillspec s = { 0 };
	struct vmb_cache *c;
	struct vmb_cache_stats st;
	struct stat sb;
	mode_t old = umask(077);
	int hit = -1, fd;

	snprintf(dir, sizeof(dir), "%s/basic/deeper/cache", root);
	obj_make(&o, 1, 100000);
	obj_make(&empty, 2, 0);
	s.o = &o;
	c = open_cache(dir, 0, 0);
	if (!c)
		umask(old);
	REQUIRE(c);
	CHECK_EQ(vmb_cache_has(c, o.d), 0);
	{
		struct vmb_err err;

		fd = -1;
		vmb_err_clear(&err);
		CHECK_RC(vmb_cache_get(c, o.d, o.len, NULL, NULL, &fd, &hit, &err), -ENOENT);
		CHECK_STR(err.msg, "is not in cache");
	}
	CHECK_RC(get_check(c, &o, &s, &hit), 0);   /* its temporary made under umask 077 */
	umask(old);
	CHECK_EQ(hit, 0);
	CHECK_EQ(s.calls, 1);
	CHECK_EQ(vmb_cache_has(c, o.d), 1);
	CHECK_RC(get_check(c, &o, &s, &hit), 0);
	CHECK_EQ(hit, 1);
	CHECK_EQ(s.calls, 1);
	s.o = &empty;
	CHECK_RC(get_check(c, &empty, &s, &hit), 0);
	/* filled objects are read at once, present (durable, in chunks/) once flushed */
	CHECK_RC(vmb_cache_flush(c), 0);
	vmb_cache_stats(c, &st);
	CHECK_EQ(st.hits, 1);
	CHECK_EQ(st.misses, 3);   /* the get without a fill too */
	CHECK_EQ(st.fills, 2);
	CHECK_EQ(st.fill_bytes, 100000);
	CHECK_EQ(st.chunks, 2);
	CHECK_EQ(st.bytes, 100000);
	CHECK_EQ(st.verify_failures, 0);

	/* layout and modes, whatever the umask was */
	snprintf(p, sizeof(p), "%s/version", dir);
	fd = open(p, O_RDONLY);
	REQUIRE(fd >= 0);
	memset(buf, 0, sizeof(buf));
	CHECK(read(fd, buf, sizeof(buf) - 1) == 19);
	close(fd);
	CHECK(!strcmp(buf, "vmbundlefs-cache 1\n"));
	CHECK(stat(dir, &sb) == 0 && (sb.st_mode & 07777) == 0755);
	snprintf(p, sizeof(p), "%s/chunks", dir);
	CHECK(stat(p, &sb) == 0 && (sb.st_mode & 07777) == 0755);
	snprintf(p, sizeof(p), "%s/chunks/%.2s", dir, o.hex);
	CHECK(stat(p, &sb) == 0 && (sb.st_mode & 07777) == 0755);
	path_of(p, sizeof(p), dir, "chunks", &o);
	CHECK(stat(p, &sb) == 0 && (sb.st_mode & 07777) == 0644 && sb.st_size == 100000);
	path_of(p, sizeof(p), dir, "lock", &o);
	CHECK(access(p, F_OK) < 0);   /* lock files go with their holder */
	snprintf(p, sizeof(p), "%s/tmp", dir);
	CHECK_EQ(dir_entries(p), 0);

	/* a wrong len for a present object: -EINVAL, the object stays */
	{
		struct vmb_err err;

		vmb_err_clear(&err);
		fd = -1;
		s.o = &o;
		CHECK_RC(vmb_cache_get(c, o.d, o.len + 1, fill_cb, &s, &fd, &hit, &err), -EINVAL);
		CHECK_STR(err.msg, "is 100000 bytes, not 100001");
		CHECK_EQ(vmb_cache_has(c, o.d), 1);
	}
	/* url slots */
	{
		struct vmb_err err;
		void *b = NULL;
		size_t n = 0;

		CHECK_RC(vmb_cache_url_load(c, "http://h/x", &b, &n, &err), -ENOENT);
		CHECK_RC(vmb_cache_url_save(c, "http://h/x", "index 1\n", 8, &err), 0);
		CHECK_RC(vmb_cache_url_save(c, "http://h/x", "index 2\n", 8, &err), 0);
		CHECK_RC(vmb_cache_url_load(c, "http://h/x", &b, &n, &err), 0);
		CHECK(n == 8 && b && !memcmp(b, "index 2\n", 8));
		free(b);
	}
	vmb_cache_close(c);

	/* persistent: a new open sees it */
	c = open_cache(dir, 0, 0);
	REQUIRE(c);
	{
		uint64_t b = 0, n = 0;

		CHECK_RC(vmb_cache_usage(c, &b, &n, NULL), 0);
		CHECK_EQ(b, 100000);
		CHECK_EQ(n, 2);
	}
	s.calls = 0;
	CHECK_RC(get_check(c, &o, &s, &hit), 0);
	CHECK_EQ(hit, 1);
	CHECK_EQ(s.calls, 0);
	vmb_cache_close(c);
	free(o.data);
	free(empty.data);
}

static void test_open_errors(void)
{
	char dir[4200], p[4400];
	struct vmb_cache *c = NULL;
	struct vmb_err err;
	int fd;

	/* a directory with other things in it and no version: refused, untouched */
	snprintf(dir, sizeof(dir), "%s/notcache", root);
	mkdir(dir, 0755);
	snprintf(p, sizeof(p), "%s/precious", dir);
	fd = open(p, O_WRONLY | O_CREAT, 0644);
	close(fd);
	vmb_err_clear(&err);
	CHECK_RC(vmb_cache_open(dir, NULL, &c, &err), -ENOTEMPTY);
	CHECK_STR(err.msg, "is not a vmbundlefs cache");
	CHECK(c == NULL);
	CHECK_EQ(dir_entries(dir), 1);

	/* an unknown version */
	snprintf(dir, sizeof(dir), "%s/v2", root);
	mkdir(dir, 0755);
	snprintf(p, sizeof(p), "%s/version", dir);
	fd = open(p, O_WRONLY | O_CREAT, 0644);
	CHECK(write(fd, "vmbundlefs-cache 2\n", 19) == 19);
	close(fd);
	vmb_err_clear(&err);
	CHECK_RC(vmb_cache_open(dir, NULL, &c, &err), -EINVAL);
	CHECK_STR(err.msg, "unknown version 'vmbundlefs-cache 2'");

	/* a file system of its own: lost+found is fine */
	snprintf(dir, sizeof(dir), "%s/fs", root);
	mkdir(dir, 0755);
	snprintf(p, sizeof(p), "%s/fs/lost+found", root);
	mkdir(p, 0700);
	c = open_cache(dir, 0, 0);
	CHECK(c != NULL);
	if (c)
		CHECK_EQ(vmb_cache_fsck(c, 0, NULL, NULL), 0);
	vmb_cache_close(c);
	c = NULL;

	/* world-writable: refused */
	snprintf(dir, sizeof(dir), "%s/ww", root);
	mkdir(dir, 0755);
	chmod(dir, 0777);
	vmb_err_clear(&err);
	CHECK_RC(vmb_cache_open(dir, NULL, &c, &err), -EPERM);
	CHECK_STR(err.msg, "writable by everyone");
	/* sticky too: anyone may make its parts (chunks/ and objects) before its
	 * first user does */
	chmod(dir, 01777);
	vmb_err_clear(&err);
	CHECK_RC(vmb_cache_open(dir, NULL, &c, &err), -EPERM);
	CHECK_STR(err.msg, "writable by everyone (mode 1777)");
	/* a part of it writable by everyone */
	snprintf(dir, sizeof(dir), "%s/wwsub", root);
	c = open_cache(dir, 0, 0);
	REQUIRE(c);
	vmb_cache_close(c);
	c = NULL;
	snprintf(p, sizeof(p), "%s/wwsub/chunks", root);
	chmod(p, 0777);
	vmb_err_clear(&err);
	CHECK_RC(vmb_cache_open(dir, NULL, &c, &err), -EPERM);
	CHECK_STR(err.msg, "writable by everyone (chunks/: mode 0777)");

	/* group-shared: subdirectories take its mode (setgid too), files 0664 */
	snprintf(dir, sizeof(dir), "%s/grp", root);
	mkdir(dir, 0755);
	chmod(dir, 02775);
	c = open_cache(dir, 0, 0);
	CHECK(c != NULL);
	if (c) {
		struct obj o;
		struct fillspec s = { 0 };
		struct stat sb;

		obj_make(&o, 3, 5000);
		s.o = &o;
		CHECK_RC(get_check(c, &o, &s, NULL), 0);
		CHECK_RC(vmb_cache_flush(c), 0);
		snprintf(p, sizeof(p), "%s/chunks", dir);
		CHECK(stat(p, &sb) == 0 && (sb.st_mode & 07777) == 02775);
		path_of(p, sizeof(p), dir, "chunks", &o);
		CHECK(stat(p, &sb) == 0 && (sb.st_mode & 07777) == 0664);
		vmb_cache_close(c);
		free(o.data);
	}

	/* a cache shared by a group: root and a member (uid 65534) both fill it */
	if (geteuid() == 0) {
		struct obj x, y;
		struct fillspec s = { 0 };
		struct stat sb;
		int status = 0, hit = -1;
		pid_t pid;

		snprintf(dir, sizeof(dir), "%s/grp2", uroot);
		mkdir(dir, 0755);
		CHECK(chown(dir, 0, 65534) == 0);
		chmod(dir, 02775);
		obj_make(&x, 4, 7000);
		obj_make(&y, 5, 9000);
		c = open_cache(dir, 0, 0);
		REQUIRE(c);
		s.o = &x;
		CHECK_RC(get_check(c, &x, &s, NULL), 0);
		vmb_cache_close(c);
		pid = fork();
		if (pid == 0) {
			struct vmb_cache *cc;
			int h1 = -1, h2 = -1, r1, r2;

			if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0)
				_exit(2);
			cc = open_cache(dir, 0, 0);
			if (!cc)
				_exit(3);
			s.o = &x;
			r1 = get_check(cc, &x, &s, &h1);
			s.o = &y;
			r2 = get_check(cc, &y, &s, &h2);
			vmb_cache_close(cc);
			_exit(r1 == 0 && h1 == 1 && r2 == 0 && h2 == 0 ? 0 : 1);
		}
		waitpid(pid, &status, 0);
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		path_of(p, sizeof(p), dir, "chunks", &y);
		CHECK(stat(p, &sb) == 0 && sb.st_uid == 65534 && sb.st_gid == 65534 &&
		      (sb.st_mode & 07777) == 0664);
		c = open_cache(dir, 0, 0);
		REQUIRE(c);
		s.o = &y;
		CHECK_RC(get_check(c, &y, &s, &hit), 0);
		CHECK_EQ(hit, 1);
		CHECK_EQ(vmb_cache_fsck(c, 1, NULL, NULL), 0);
		vmb_cache_close(c);
		c = NULL;
		free(x.data);
		free(y.data);
	}

	/* a user who cannot write the cache gets a clear error (no silent no-cache) */
	if (geteuid() == 0) {
		int pfd[2], status = 0;
		pid_t pid;
		char msg[VMB_ERR_MAX + 16] = "";
		ssize_t n;

		/* a cache made by root (0755): uid 65534 can reach it, not write it */
		snprintf(dir, sizeof(dir), "%s/rootonly", uroot);
		c = open_cache(dir, 0, 0);
		REQUIRE(c);
		vmb_cache_close(c);
		c = NULL;
		chmod(dir, 0755);   /* whatever umask test_basic left */
		CHECK(pipe(pfd) == 0);
		pid = fork();
		if (pid == 0) {
			struct vmb_err e;
			struct vmb_cache *cc = NULL;
			int r;

			close(pfd[0]);
			if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0)
				_exit(2);
			vmb_err_clear(&e);
			r = vmb_cache_open(dir, NULL, &cc, &e);
			dprintf(pfd[1], "%d %s", r, e.msg);
			_exit(cc ? 1 : 0);
		}
		close(pfd[1]);
		n = read(pfd[0], msg, sizeof(msg) - 1);
		close(pfd[0]);
		msg[n > 0 ? n : 0] = '\0';
		waitpid(pid, &status, 0);
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		CHECK_EQ(atoi(msg), -EACCES);
		CHECK_STR(msg, "is not writable by this process");
		CHECK_STR(msg, "uid 65534");
		CHECK_STR(msg, "-o cache=DIR");
	}
}

/* Open the cache at dir and close it: the open's result, its message in msg. */
static int open_msg(const char *dir, char *msg, size_t size)
{
	struct vmb_cache_opts o;
	struct vmb_cache *c = NULL;
	struct vmb_err err;
	int r;

	vmb_cache_opts_default(&o);
	o.min_free_bytes = 0;
	o.evict_manual = 1;
	vmb_err_clear(&err);
	r = vmb_cache_open(dir, &o, &c, &err);
	snprintf(msg, size, "%s", err.msg);
	vmb_cache_close(c);
	return r;
}

/* The open of a cache as uid (groups: gid only, or also sup when sup >= 0), in a
 * child: its result, or -1000 when the child could not switch. */
static int open_as(const char *dir, uid_t uid, gid_t gid, int sup)
{
	int status = 0;
	pid_t pid = fork();

	if (pid == 0) {
		gid_t g = (gid_t)sup;
		char msg[VMB_ERR_MAX];
		int r;

		if (setgroups(sup >= 0 ? 1 : 0, &g) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
			_exit(255);
		r = open_msg(dir, msg, sizeof(msg));
		if (r < 0)
			fprintf(stderr, "open as uid %u: %s\n", (unsigned)uid, msg);
		_exit(r < 0 ? -r : 0);
	}
	waitpid(pid, &status, 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status) == 255)
		return -1000;
	return -WEXITSTATUS(status);
}

/* Outside report r27 G1, G2, G11: every directory of the layout is checked when
 * the cache is opened, not only the top-level ones: world-writable, group-writable
 * (not group-shared), a symbolic link or a file, or owned by another user: refused,
 * naming the directory; a cache directory owned by another user is refused too,
 * but a group-shared one works for its members. */
static void test_open_layout(void)
{
	char dir[4200], p[4300], q[4300], msg[VMB_ERR_MAX];
	struct vmb_cache *c;
	struct stat sb;
	int fd;

	snprintf(dir, sizeof(dir), "%s/lay", uroot);
	c = open_cache(dir, 0, 0);
	REQUIRE(c);
	vmb_cache_close(c);
	chmod(dir, 0755);
	CHECK_RC(open_msg(dir, msg, sizeof(msg)), 0);

	/* chunks/ab writable by everyone (sticky or not), meta/, meta/cd, mnt/ */
	{
		static const struct {
			const char *rel, *say;
			mode_t made, bad;
		} cs[] = {
			{ "chunks/ab", "writable by everyone (chunks/ab/: mode 0777)", 0755, 0777 },
			{ "chunks/ab", "(chunks/ab/: mode 1777)", 0755, 01777 },
			{ "meta", "(meta/: mode 0777)", 0755, 0777 },
			{ "meta/cd", "(meta/cd/: mode 0777)", 0755, 0777 },
			{ "mnt", "(mnt/: mode 0777)", 0700, 0777 },
		};
		for (size_t k = 0; k < sizeof(cs) / sizeof(cs[0]); k++) {
			snprintf(p, sizeof(p), "%s/%s", dir, cs[k].rel);
			mkdir(p, cs[k].made);
			chmod(p, cs[k].bad);
			CHECK_RC(open_msg(dir, msg, sizeof(msg)), -EPERM);
			CHECK_STR(msg, cs[k].say);
			chmod(p, cs[k].made);
		}
	}
	CHECK_RC(open_msg(dir, msg, sizeof(msg)), 0);

	/* a group-writable one of ours in a cache that is not group-shared (a umask
	 * of 002): narrowed */
	snprintf(p, sizeof(p), "%s/chunks/0c", dir);
	chmod(p, 0775);
	CHECK_RC(open_msg(dir, msg, sizeof(msg)), 0);
	CHECK(stat(p, &sb) == 0 && (sb.st_mode & 07777) == 0755);

	/* G2: a symbolic link or a file where chunks/<aa> goes */
	snprintf(p, sizeof(p), "%s/chunks/00", dir);
	snprintf(q, sizeof(q), "%s/elsewhere", uroot);
	mkdir(q, 0755);
	CHECK(rmdir(p) == 0 && symlink(q, p) == 0);
	CHECK_RC(open_msg(dir, msg, sizeof(msg)), -ENOTDIR);
	CHECK_STR(msg, "chunks/00/ is not a directory (a symbolic link)");
	unlink(p);
	fd = open(p, O_WRONLY | O_CREAT, 0644);
	close(fd);
	CHECK_RC(open_msg(dir, msg, sizeof(msg)), -ENOTDIR);
	CHECK_STR(msg, "chunks/00/ is not a directory (another file)");
	unlink(p);
	snprintf(p, sizeof(p), "%s/meta/cd", dir);
	CHECK(rmdir(p) == 0 && symlink(q, p) == 0);
	CHECK_RC(open_msg(dir, msg, sizeof(msg)), -ENOTDIR);
	CHECK_STR(msg, "meta/cd/ is not a directory");
	unlink(p);
	snprintf(p, sizeof(p), "%s/chunks", dir);
	snprintf(q, sizeof(q), "%s/chunks.real", dir);
	CHECK(rename(p, q) == 0 && symlink(q, p) == 0);
	CHECK_RC(open_msg(dir, msg, sizeof(msg)), -ENOTDIR);
	CHECK_STR(msg, "chunks/ is not a directory (a symbolic link)");
	CHECK(unlink(p) == 0 && rename(q, p) == 0);
	CHECK_RC(open_msg(dir, msg, sizeof(msg)), 0);

	if (geteuid() != 0)
		return;
	/* G11: a directory of the layout owned by another user, even 0755 */
	snprintf(p, sizeof(p), "%s/chunks/d1", dir);
	CHECK(chown(p, 65534, 65534) == 0);
	CHECK_RC(open_msg(dir, msg, sizeof(msg)), -EPERM);
	CHECK_STR(msg, "chunks/d1/ is owned by uid 65534 (mode 0755)");
	chmod(p, 0775);   /* not narrowed: not ours */
	CHECK_RC(open_msg(dir, msg, sizeof(msg)), -EPERM);
	CHECK_STR(msg, "chunks/d1/ is writable by its group (gid 65534, mode 0775)");
	CHECK(chown(p, 0, 0) == 0 && chmod(p, 0755) == 0);
	snprintf(p, sizeof(p), "%s/meta", dir);
	CHECK(chown(p, 65534, 65534) == 0);
	CHECK_RC(open_msg(dir, msg, sizeof(msg)), -EPERM);
	CHECK_STR(msg, "meta/ is owned by uid 65534");
	CHECK(chown(p, 0, 0) == 0);
	CHECK_RC(open_msg(dir, msg, sizeof(msg)), 0);

	/* the cache directory itself made by another user (under /tmp, say) */
	CHECK(chown(dir, 65534, 65534) == 0);
	CHECK_RC(open_msg(dir, msg, sizeof(msg)), -EPERM);
	CHECK_STR(msg, "is owned by uid 65534 (mode 0755), not by this process (uid 0)");
	/* ... also group-shared, with a group root is not in */
	chmod(dir, 02775);
	CHECK_RC(open_msg(dir, msg, sizeof(msg)), -EPERM);
	CHECK_STR(msg, "is owned by uid 65534 (mode 2775)");
	/* but its owner opens it, and so does a member of its group (uid 65533 in
	 * group 65534), whose subdirectories are another member's */
	snprintf(p, sizeof(p), "%s/grpm", uroot);
	mkdir(p, 0755);
	CHECK(chown(p, 65534, 65534) == 0 && chmod(p, 02775) == 0);
	CHECK_RC(open_as(p, 65534, 65534, -1), 0);
	CHECK_RC(open_as(p, 65533, 65533, 65534), 0);
	CHECK_RC(open_as(p, 65533, 65533, -1), -EACCES);   /* not a member */
	CHECK_RC(open_msg(p, msg, sizeof(msg)), -EPERM);    /* root, not a member */
	CHECK_STR(msg, "is owned by uid 65534 (mode 2775)");
}

static char ut_log[2048];
static int ut_logs;

static void ut_log_fn(void *arg, const char *msg)
{
	(void)arg;
	ut_logs++;
	snprintf(ut_log, sizeof(ut_log), "%s", msg);
}

/* Replace the object's file in place (same inode, same size) with 'P's: what a
 * user who can write it does. */
static void object_spoil(const char *path, uint64_t len)
{
	uint8_t *b = malloc(len);
	int fd = open(path, O_WRONLY);

	memset(b, 'P', len);
	CHECK(fd >= 0 && pwrite(fd, b, len, 0) == (ssize_t)len);
	if (fd >= 0)
		close(fd);
	free(b);
}

/* Outside report r27 G1: a present object that others could write (mode 0666, or
 * group-writable in a cache that is not group-shared) or that another user owns is
 * not served: it is removed and fetched again, with a log line; fsck reports it. */
/* vmb_cache_fsck's report (repair or not) contains want, and it counts n problems. */
static void fsck_says(struct vmb_cache *c, int repair, int n, const char *want)
{
	char *out = NULL;
	size_t outlen = 0;
	FILE *f = open_memstream(&out, &outlen);

	CHECK_EQ(vmb_cache_fsck(c, repair, f, NULL), n);
	fclose(f);
	CHECK(out && strstr(out, want));
	free(out);
}

static void test_untrusted_object(void)
{
	struct vmb_cache_opts co;
	struct vmb_log lg = { ut_log_fn, NULL };
	struct vmb_cache *c = NULL;
	struct fillspec s = { 0 };
	struct vmb_err err;
	char dir[4200], p[4400];
	struct obj o;
	struct stat sb;
	int hit = -1;

	snprintf(dir, sizeof(dir), "%s/untrusted", uroot);
	vmb_cache_opts_default(&co);
	co.min_free_bytes = 0;
	co.evict_manual = 1;
	co.log = &lg;
	vmb_err_clear(&err);
	CHECK_RC(vmb_cache_open(dir, &co, &c, &err), 0);
	REQUIRE(c);
	chmod(dir, 0755);
	obj_make(&o, 41, 20000);
	s.o = &o;
	CHECK_RC(get_check(c, &o, &s, &hit), 0);
	CHECK_EQ(hit, 0);
	CHECK_RC(vmb_cache_flush(c), 0);
	path_of(p, sizeof(p), dir, "chunks", &o);
	CHECK(stat(p, &sb) == 0 && (sb.st_mode & 07777) == 0644);

	for (int how = 0; how < 3; how++) {
		if (how == 2 && geteuid() != 0)
			break;
		/* someone writes the object: anyone (0666), its group (0664), or its
		 * owner, another user */
		if (how == 2)
			CHECK(chown(p, 65534, 65534) == 0);
		else
			chmod(p, how == 0 ? 0666 : 0664);
		object_spoil(p, o.len);
		CHECK_EQ(vmb_cache_has(c, o.d), 0);
		ut_logs = 0;
		ut_log[0] = '\0';
		s.calls = 0;
		hit = -1;
		CHECK_RC(get_check(c, &o, &s, &hit), 0);   /* the right bytes */
		CHECK_EQ(hit, 0);
		CHECK_EQ(s.calls, 1);                       /* fetched again */
		CHECK_EQ(ut_logs, 1);
		CHECK_STR(ut_log, how == 0 ? "mode 0666: others could have changed its bytes" :
				  how == 1 ? "mode 0664" : "is owned by uid 65534");
		CHECK_RC(vmb_cache_flush(c), 0);
		CHECK(stat(p, &sb) == 0 && (sb.st_mode & 07777) == 0644 &&
		      sb.st_uid == geteuid());
		s.calls = 0;
		CHECK_RC(get_check(c, &o, &s, &hit), 0);   /* now a hit */
		CHECK_EQ(hit, 1);
		CHECK_EQ(s.calls, 0);
		CHECK_EQ(vmb_cache_has(c, o.d), 1);
	}

	/* fsck names it; with repair it goes */
	chmod(p, 0666);
	fsck_says(c, 1, 1, "mode 0666: others could change its bytes (removed)");
	CHECK(stat(p, &sb) < 0 && errno == ENOENT);

	/* a pin or a saved index that others could change is not read: the pin stops
	 * eviction (as a malformed one: it may protect what cannot be fetched again) */
	CHECK_RC(vmb_cache_url_save(c, "file:///x", "idx", 3, NULL), 0);
	{
		void *b = NULL;
		size_t n = 0;
		uint8_t h[32];
		char hex[VMB_SHA256_HEX];

		CHECK_RC(vmb_cache_url_load(c, "file:///x", &b, &n, NULL), 0);
		free(b);
		b = NULL;
		vmb_sha256("file:///x", 9, h, NULL);
		vmb_sha256_hex(h, hex);
		snprintf(p, sizeof(p), "%s/urls/%s", dir, hex);
		chmod(p, 0666);
		vmb_err_clear(&err);
		CHECK_RC(vmb_cache_url_load(c, "file:///x", &b, &n, &err), -EPERM);
		CHECK_STR(err.msg, "mode 0666): others could have changed it");
		free(b);
	}
	CHECK_RC(vmb_cache_pin(c, "vm1", (const uint8_t (*)[32])o.d, 1, NULL), 0);
	snprintf(p, sizeof(p), "%s/pins/vm1", dir);
	chmod(p, 0666);
	fsck_says(c, 0, 1, "'vm1' is owned by uid");
	vmb_cache_close(c);
	free(o.data);
}

static unsigned mode_of(const char *dir, const char *sub)
{
	char p[4400];
	struct stat sb;

	snprintf(p, sizeof(p), "%s/%s", dir, sub);
	return stat(p, &sb) == 0 ? (unsigned)(sb.st_mode & 07777) : 0xffff;
}

/* As uid 65534 (no group of the cache's): open lock/objects read-only and take a
 * read lock on the whole of it, as an unprivileged user who wanted to stop every
 * fill would. 0 when it could, else the errno of the open. */
static int rdlock_as_nobody(const char *dir, const char *file)
{
	int status = 0;
	pid_t pid = fork();

	if (pid == 0) {
		char p[4400];
		struct flock fl;
		int fd;

		if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0)
			_exit(255);
		snprintf(p, sizeof(p), "%s/lock/%s", dir, file);
		fd = open(p, O_RDONLY);
		if (fd < 0)
			_exit(errno);
		memset(&fl, 0, sizeof(fl));
		fl.l_type = F_RDLCK;
		_exit(fcntl(fd, F_OFD_SETLK, &fl) == 0 ? 0 : 254);
	}
	waitpid(pid, &status, 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Outside report r27 G19: lock/ and its files give others nothing (0700, 0600; in
 * a group-shared cache 2770, 0660), so no user who cannot write the cache may take
 * a read lock that stops every fill and eviction; an older cache's (0755, 0644)
 * are narrowed when their owner opens it. */
static void test_lock_modes(void)
{
	struct vmb_cache *c;
	struct vmb_err err;
	char dir[4200], p[4400];

	snprintf(dir, sizeof(dir), "%s/lockmodes", uroot);
	c = open_cache(dir, 0, 0);
	REQUIRE(c);
	vmb_err_clear(&err);
	CHECK_RC(vmb_cache_evict(c, &err), 0);   /* makes lock/evict */
	vmb_cache_close(c);
	chmod(dir, 0755);
	CHECK_EQ(mode_of(dir, "lock"), 0700);
	CHECK_EQ(mode_of(dir, "lock/objects"), 0600);
	CHECK_EQ(mode_of(dir, "lock/evict"), 0600);
	CHECK_EQ(mode_of(dir, "chunks"), 0755);

	/* as an older version made them */
	snprintf(p, sizeof(p), "%s/lock", dir);
	chmod(p, 0755);
	snprintf(p, sizeof(p), "%s/lock/objects", dir);
	chmod(p, 0644);
	snprintf(p, sizeof(p), "%s/lock/evict", dir);
	chmod(p, 0644);
	if (geteuid() == 0) {
		CHECK_EQ(rdlock_as_nobody(dir, "objects"), 0);   /* the hole */
		CHECK_EQ(rdlock_as_nobody(dir, "evict"), 0);
	}
	c = open_cache(dir, 0, 0);
	REQUIRE(c);
	vmb_cache_close(c);
	CHECK_EQ(mode_of(dir, "lock"), 0700);
	CHECK_EQ(mode_of(dir, "lock/objects"), 0600);
	CHECK_EQ(mode_of(dir, "lock/evict"), 0600);
	if (geteuid() == 0) {
		CHECK_EQ(rdlock_as_nobody(dir, "objects"), EACCES);
		CHECK_EQ(rdlock_as_nobody(dir, "evict"), EACCES);
	}

	/* a group-shared cache: its members keep them */
	snprintf(dir, sizeof(dir), "%s/lockgrp", uroot);
	mkdir(dir, 0755);
	chmod(dir, 02775);
	c = open_cache(dir, 0, 0);
	REQUIRE(c);
	vmb_err_clear(&err);
	CHECK_RC(vmb_cache_evict(c, &err), 0);
	vmb_cache_close(c);
	CHECK_EQ(mode_of(dir, "lock"), 02770);
	CHECK_EQ(mode_of(dir, "lock/objects"), 0660);
	CHECK_EQ(mode_of(dir, "lock/evict"), 0660);
	CHECK_EQ(mode_of(dir, "chunks"), 02775);
}

/* Outside report r27 G2: a symbolic link made at chunks/<aa> after the open (which
 * refuses one) no longer stops every eviction pass: the other directories are
 * evicted, with a log line. */
static void test_evict_link(void)
{
	struct vmb_cache_opts co;
	struct vmb_log lg = { ut_log_fn, NULL };
	struct vmb_cache *c = NULL;
	struct fillspec s = { 0 };
	struct vmb_err err;
	char dir[4200], p[4400], q[4400];
	struct obj o[6];
	uint64_t bytes = 0, chunks = 0;

	snprintf(dir, sizeof(dir), "%s/evlink", root);
	vmb_cache_opts_default(&co);
	co.min_free_bytes = 0;
	co.max_bytes = 30000;
	co.evict_manual = 1;
	co.log = &lg;
	vmb_err_clear(&err);
	CHECK_RC(vmb_cache_open(dir, &co, &c, &err), 0);
	REQUIRE(c);
	for (int i = 0; i < 6; i++) {
		obj_make(&o[i], 60 + (unsigned)i, 10000);
		s.o = &o[i];
		CHECK_RC(get_check(c, &o[i], &s, NULL), 0);
	}
	CHECK_RC(vmb_cache_flush(c), 0);
	snprintf(p, sizeof(p), "%s/chunks/00", dir);
	snprintf(q, sizeof(q), "%s/elsewhere", dir);
	CHECK(rename(p, q) == 0 && symlink(q, p) == 0);
	ut_logs = 0;
	vmb_err_clear(&err);
	CHECK_RC(vmb_cache_evict(c, &err), 0);
	CHECK_EQ(ut_logs, 1);
	CHECK_STR(ut_log, "chunks/00 is not a directory: eviction skips it");
	CHECK_RC(vmb_cache_usage(c, &bytes, &chunks, &err), 0);
	CHECK(bytes <= 30000 && chunks >= 1);
	vmb_cache_close(c);
	for (int i = 0; i < 6; i++)
		free(o[i].data);
}

/* Several processes with several threads each get the same objects at once: one
 * fill per object on the host, every reader gets the right bytes. */
#define SF_PROCS 4
#define SF_THREADS 4
#define SF_OBJS 3
static struct obj sf_objs[SF_OBJS];
static char sf_count[SF_OBJS][4300];
static struct vmb_cache *sf_cache;
static int sf_errors;

static void *sf_thread(void *arg)
{
	long t = (long)arg;

	for (int k = 0; k < SF_OBJS; k++) {
		int i = (int)((k + t) % SF_OBJS);
		struct fillspec s = { 0 };

		s.o = &sf_objs[i];
		s.countfile = sf_count[i];
		s.sleep_ms = 300;
		/* half the threads take bytes from memory (vmb_cache_get_ref): a
		 * flight's waiters of both kinds, whichever fills */
		if (get_check_with(sf_cache, &sf_objs[i], &s, NULL, t % 2 ? 3 : 0) < 0)
			__atomic_add_fetch(&sf_errors, 1, __ATOMIC_SEQ_CST);
	}
	return NULL;
}

static void test_single_flight(void)
{
	char dir[4200];
	pid_t pids[SF_PROCS];
	int go[2], ok = 1;

	snprintf(dir, sizeof(dir), "%s/sf", root);
	for (int i = 0; i < SF_OBJS; i++) {
		obj_make(&sf_objs[i], 10 + (unsigned)i, 256 * 1024 + (uint64_t)i);
		snprintf(sf_count[i], sizeof(sf_count[i]), "%s/count.%d", root, i);
	}
	REQUIRE(pipe(go) == 0);
	for (int p = 0; p < SF_PROCS; p++) {
		pids[p] = fork();
		if (pids[p] == 0) {
			pthread_t th[SF_THREADS];
			char b;

			close(go[1]);
			sf_cache = open_cache(dir, 0, 0);
			if (!sf_cache)
				_exit(3);
			if (p == 0)
				sf_cache->pend_fds_max = 0;   /* its pending ones get names */
			if (read(go[0], &b, 1) < 0)
				_exit(4);
			for (long t = 0; t < SF_THREADS; t++)
				pthread_create(&th[t], NULL, sf_thread, (void *)(t + p));
			for (int t = 0; t < SF_THREADS; t++)
				pthread_join(th[t], NULL);
			vmb_cache_close(sf_cache);
			_exit(sf_errors ? 1 : 0);
		}
	}
	close(go[0]);
	usleep(100000);
	close(go[1]);   /* all start together */
	for (int p = 0; p < SF_PROCS; p++) {
		int status = 0;

		waitpid(pids[p], &status, 0);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			ok = 0;
	}
	CHECK(ok);
	for (int i = 0; i < SF_OBJS; i++) {
		CHECK_EQ(count_of(sf_count[i]), 1);   /* exactly one fill per object */
		free(sf_objs[i].data);
	}
	/* and in one process, threads share one flight (waits counted) */
	{
		pthread_t th[SF_THREADS];
		struct vmb_cache_stats st;
		char d2[4300];

		snprintf(d2, sizeof(d2), "%s/sf2", root);
		for (int i = 0; i < SF_OBJS; i++) {
			obj_make(&sf_objs[i], 20 + (unsigned)i, 70000);
			snprintf(sf_count[i], sizeof(sf_count[i]), "%s/count2.%d", root, i);
		}
		sf_cache = open_cache(d2, 0, 0);
		REQUIRE(sf_cache);
		for (long t = 0; t < SF_THREADS; t++)
			pthread_create(&th[t], NULL, sf_thread, (void *)t);
		for (int t = 0; t < SF_THREADS; t++)
			pthread_join(th[t], NULL);
		CHECK_EQ(sf_errors, 0);
		vmb_cache_stats(sf_cache, &st);
		CHECK_EQ(st.fills, SF_OBJS);
		CHECK_EQ(st.hits + st.misses, SF_OBJS * SF_THREADS);
		CHECK(st.waits >= 1);
		for (int i = 0; i < SF_OBJS; i++) {
			CHECK_EQ(count_of(sf_count[i]), 1);
			free(sf_objs[i].data);
		}
		vmb_cache_close(sf_cache);
	}
}

/* Waiting for a pause (cache_flush.c): while fills keep coming, they stay pending
 * (the first one is not in chunks/); another process that needs one of them says
 * that it waits, and gets it long before the fills pause (quiet_ms is 10 s here),
 * without fetching it itself; vmb_cache_flush does not wait for a pause either. */
#define PZ_OBJS 300
static int pz_stop;

struct pz_arg {
	struct vmb_cache *c;
	struct obj *objs;
	int done, errors;
};

static void *pz_stream(void *arg)
{
	struct pz_arg *a = arg;

	for (int i = 0; i < PZ_OBJS && !__atomic_load_n(&pz_stop, __ATOMIC_SEQ_CST); i++) {
		struct fillspec s = { .o = &a->objs[i] };

		if (get_check_with(a->c, &a->objs[i], &s, NULL, 1) < 0)
			a->errors++;
		__atomic_store_n(&a->done, i + 1, __ATOMIC_SEQ_CST);
		usleep(1000);
	}
	return NULL;
}

static double secs_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

static void test_pause(void)
{
	struct obj *objs = calloc(PZ_OBJS, sizeof(*objs));
	struct pz_arg a = { 0 };
	struct vmb_cache_stats st;
	struct timespec t0;
	struct stat sb;
	char dir[4200], p0[4400];
	pthread_t th;
	pid_t pid;
	int status = 0, done;

	REQUIRE(objs);
	snprintf(dir, sizeof(dir), "%s/pause", root);
	for (int i = 0; i < PZ_OBJS; i++)
		obj_make(&objs[i], 3000 + (unsigned)i, 64 * 1024);
	a.c = open_cache(dir, 0, 0);
	REQUIRE(a.c);
	a.c->quiet_ms = 10000;
	a.objs = objs;
	pz_stop = 0;
	REQUIRE(pthread_create(&th, NULL, pz_stream, &a) == 0);
	while (__atomic_load_n(&a.done, __ATOMIC_SEQ_CST) < 30)
		usleep(1000);
	path_of(p0, sizeof(p0), dir, "chunks", &objs[0]);
	CHECK(stat(p0, &sb) < 0 && errno == ENOENT);   /* pending while they come */
	vmb_cache_stats(a.c, &st);
	CHECK(st.pending >= 30);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pid = fork();
	if (pid == 0) {
		struct vmb_cache *c2 = open_cache(dir, 0, 0);
		struct fillspec s = { .o = &objs[0], .fail = 1 };   /* must not fill */
		int r = c2 ? get_check(c2, &objs[0], &s, NULL) : -1;

		vmb_cache_close(c2);
		_exit(r < 0 ? 1 : s.calls ? 2 : 0);
	}
	REQUIRE(pid > 0);
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK(secs_since(&t0) < 5.0);   /* not the 10 s of quiet_ms */
	CHECK(stat(p0, &sb) == 0);
	__atomic_store_n(&pz_stop, 1, __ATOMIC_SEQ_CST);
	pthread_join(th, NULL);
	CHECK_EQ(a.errors, 0);
	done = __atomic_load_n(&a.done, __ATOMIC_SEQ_CST);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	vmb_cache_flush(a.c);
	CHECK(secs_since(&t0) < 5.0);
	vmb_cache_stats(a.c, &st);
	CHECK_EQ(st.pending, 0);
	for (int i = 0; i < done; i++) {
		path_of(p0, sizeof(p0), dir, "chunks", &objs[i]);
		CHECK(stat(p0, &sb) == 0 && (uint64_t)sb.st_size == objs[i].len);
	}
	vmb_cache_close(a.c);
	/* opts.no_pause (prefetch): present as they come, whatever quiet_ms */
	snprintf(dir, sizeof(dir), "%s/pause2", root);
	a.c = open_cache(dir, 0, 0);
	REQUIRE(a.c);
	a.c->quiet_ms = 10000;
	a.c->opts.no_pause = 1;
	for (int i = 0; i < 20; i++) {
		struct fillspec s = { .o = &objs[i] };

		CHECK_EQ(get_check_with(a.c, &objs[i], &s, NULL, 1), 0);
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	path_of(p0, sizeof(p0), dir, "chunks", &objs[19]);
	while (stat(p0, &sb) < 0 && secs_since(&t0) < 5.0)
		usleep(2000);
	CHECK(stat(p0, &sb) == 0);
	vmb_cache_close(a.c);
	for (int i = 0; i < PZ_OBJS; i++)
		free(objs[i].data);
	free(objs);
}

/* Past the budget of descriptors (pend_fds_max, lowered to 0 here), each pending
 * unnamed temporary is given a name in tmp/: the objects read right before and after
 * the flush, fsck finds nothing, tmp/ is empty. Fills into memory and into the fd,
 * and fills whose bytes the flusher writes (get_ref). */
static void test_pend_named(void)
{
	char dir[4200], p[4400];
	struct obj o[6];
	struct vmb_cache *c;
	struct vmb_cache_stats st;

	snprintf(dir, sizeof(dir), "%s/pendnamed", root);
	c = open_cache(dir, 0, 0);
	REQUIRE(c);
	c->pend_fds_max = 0;
	for (int i = 0; i < 6; i++) {
		struct fillspec s = { .o = &o[i] };
		int hit = -1;

		obj_make(&o[i], 60 + (unsigned)i, 100000 + 4096 * (uint64_t)i);
		/* 0, 1: into the fd, into memory; 2: bytes back in memory (get_ref) */
		CHECK_RC(get_check_with(c, &o[i], &s, &hit, i % 3 == 2 ? 3 : i % 3), 0);
		CHECK_EQ(hit, 0);
		s = (struct fillspec){ .o = &o[i] };
		CHECK_RC(get_check_with(c, &o[i], &s, &hit, i % 3 == 2 ? 3 : i % 3), 0);   /* pending or in place */
		CHECK_EQ(s.calls, 0);
	}
	CHECK_RC(vmb_cache_flush(c), 0);
	vmb_cache_stats(c, &st);
	CHECK_EQ(st.pending, 0);
	CHECK_EQ(st.fills, 6);
	snprintf(p, sizeof(p), "%s/tmp", dir);
	CHECK_EQ(dir_entries(p), 0);
	for (int i = 0; i < 6; i++) {
		path_of(p, sizeof(p), dir, "chunks", &o[i]);
		CHECK(access(p, F_OK) == 0);
	}
	CHECK_EQ(vmb_cache_fsck(c, 0, NULL, NULL), 0);
	vmb_cache_close(c);
	for (int i = 0; i < 6; i++)
		free(o[i].data);
}

/* This round's temporaries: named (VMB_CACHE_NAMED_TMP set: tmp/<hex>.<pid>.<rand>)
 * or, where the file system can, unnamed (O_TMPFILE). */
static int named_tmp;

/* What a killed fill leaves in tmp/ of the cache in dir: its named temporary, or
 * nothing (an unnamed one goes with its process). */
static int left_tmp(const char *dir)
{
	struct vmb_cache *c = NULL;
	struct vmb_cache_opts o;
	int anon;

	vmb_cache_opts_default(&o);
	o.evict_manual = 1;
	o.no_sweep = 1;
	if (vmb_cache_open(dir, &o, &c, NULL) < 0)
		return -1;
	anon = c->anon_tmp;
	vmb_cache_close(c);
	if (named_tmp)
		CHECK_EQ(anon, 0);   /* the knob is honoured */
	return anon ? 0 : 1;
}

/* The filler is killed (SIGKILL) mid-fill: nothing is visible, the waiter in
 * another process takes over and fills, the result is verified. */
static void test_takeover(void)
{
	char dir[4200], cnt[4300], p[4400];
	struct obj o;
	int hp[2], status = 0;
	pid_t a, b;
	char ch;

	snprintf(dir, sizeof(dir), "%s/takeover%s", root, named_tmp ? "-named" : "");
	snprintf(cnt, sizeof(cnt), "%s/count.takeover%s", root, named_tmp ? "-named" : "");
	obj_make(&o, 30, 300000);
	REQUIRE(pipe(hp) == 0);
	a = fork();
	if (a == 0) {
		struct fillspec s = { 0 };
		struct vmb_cache *c = open_cache(dir, 0, 0);

		close(hp[0]);
		s.o = &o;
		s.countfile = cnt;
		s.hang_half = 1;
		s.hang_fd = hp[1];
		if (c)
			get_check(c, &o, &s, NULL);
		_exit(5);
	}
	close(hp[1]);
	CHECK(read(hp[0], &ch, 1) == 1);   /* A has written half and hangs */
	close(hp[0]);
	REQUIRE(pipe(hp) == 0);
	b = fork();
	if (b == 0) {
		struct fillspec s = { 0 };
		struct vmb_cache *c = open_cache(dir, 0, 0);
		int hit = -1, r;

		close(hp[0]);
		if (write(hp[1], "o", 1) != 1)   /* opened (its sweep is over) */
			_exit(3);
		close(hp[1]);
		s.o = &o;
		s.countfile = cnt;
		r = c ? get_check(c, &o, &s, &hit) : -1;
		vmb_cache_close(c);   /* makes what it filled durable and present */
		_exit(r == 0 && hit == 0 && s.calls == 1 ? 0 : 1);
	}
	close(hp[1]);
	/* B's open is over before what follows looks at tmp/ and kills A: a B
	 * starved until after the kill would sweep A's temporary itself */
	CHECK(read(hp[0], &ch, 1) == 1);
	close(hp[0]);
	usleep(300000);   /* B is then (very likely) waiting on A's lock */
	{
		struct vmb_cache *c = open_cache(dir, 0, 0);   /* its sweep must spare A's temp */

		REQUIRE(c);
		CHECK_EQ(vmb_cache_has(c, o.d), 0);            /* no partial chunk visible */
		path_of(p, sizeof(p), dir, "chunks", &o);
		CHECK(access(p, F_OK) < 0);
		vmb_cache_close(c);
		snprintf(p, sizeof(p), "%s/tmp", dir);
		CHECK_EQ(dir_entries(p), left_tmp(dir));       /* A's temporary, in use */
	}
	CHECK_EQ(waitpid(b, &status, WNOHANG), 0);             /* B waits for A */
	kill(a, SIGKILL);
	waitpid(a, &status, 0);
	CHECK(WIFSIGNALED(status));
	waitpid(b, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);  /* B took over */
	CHECK_EQ(count_of(cnt), 2);
	{
		struct fillspec s = { 0 };
		struct vmb_cache *c;
		int hit = -1;

		snprintf(p, sizeof(p), "%s/tmp", dir);
		CHECK_EQ(dir_entries(p), left_tmp(dir));       /* A's stale temporary */
		c = open_cache(dir, 0, 0);                     /* removed by the sweep */
		REQUIRE(c);
		CHECK_EQ(dir_entries(p), 0);
		s.o = &o;
		CHECK_RC(get_check(c, &o, &s, &hit), 0);
		CHECK_EQ(hit, 1);
		CHECK_EQ(s.calls, 0);
		CHECK_EQ(vmb_cache_fsck(c, 0, NULL, NULL), 0);
		vmb_cache_close(c);
	}
	free(o.data);
}

/* Fills that go wrong, into a temporary (mem 0) or into memory (mem 1: the bytes
 * are checked before any temporary is made; mem 2: by the digest the fill gives). */
static void test_verify_with(int mem)
{
	static const char *const sfx[] = { "", "mem", "sha", "ref" };
	char dir[4200], p[4400];
	struct obj o;
	struct fillspec s = { 0 };
	struct vmb_cache *c;
	struct vmb_cache_stats st;
	struct vmb_err err;
	int fd = -1, hit;

	snprintf(dir, sizeof(dir), "%s/verify%s%s", root, sfx[mem], named_tmp ? "-named" : "");
	obj_make(&o, 40, 65536);
	c = open_cache(dir, 0, 0);
	REQUIRE(c);
	/* wrong bytes once: filled again, then right */
	s.o = &o;
	s.bad_calls = 1;
	CHECK_RC(get_check_with(c, &o, &s, &hit, mem), 0);
	CHECK_EQ(s.calls, 2);
	vmb_cache_stats(c, &st);
	CHECK_EQ(st.verify_failures, 1);
	CHECK_EQ(st.fills, 2);
	vmb_cache_close(c);

	/* wrong bytes every time: EIO after two fills, nothing visible */
	snprintf(dir, sizeof(dir), "%s/verify2%s%s", root, sfx[mem], named_tmp ? "-named" : "");
	c = open_cache(dir, 0, 0);
	REQUIRE(c);
	memset(&s, 0, sizeof(s));
	s.o = &o;
	s.bad_calls = 100;
	CHECK_RC(get_any(c, &o, &s, mem, &fd, &hit, &err), -EIO);
	CHECK_STR(err.msg, "fetched bytes do not match their digest (twice");
	CHECK_STR(err.msg, o.hex);
	CHECK_EQ(s.calls, 2);
	CHECK_EQ(fd, -1);
	CHECK_EQ(vmb_cache_has(c, o.d), 0);
	snprintf(p, sizeof(p), "%s/tmp", dir);
	CHECK_EQ(dir_entries(p), 0);
	/* a short fill: EIO naming the sizes */
	memset(&s, 0, sizeof(s));
	s.o = &o;
	s.short_write = 1;
	CHECK_RC(get_any(c, &o, &s, mem, &fd, &hit, &err), -EIO);
	CHECK_STR(err.msg, "65535 bytes instead of 65536");
	/* a failing fill: its error, unchanged, nothing visible */
	memset(&s, 0, sizeof(s));
	s.o = &o;
	s.fail = 1;
	CHECK_RC(get_any(c, &o, &s, mem, &fd, &hit, &err), -EHOSTUNREACH);
	CHECK_STR(err.msg, "no route to the server");
	CHECK_EQ(s.calls, 1);
	CHECK_EQ(vmb_cache_has(c, o.d), 0);
	CHECK_EQ(dir_entries(p), 0);
	/* then right: cached, and the cache was never poisoned */
	memset(&s, 0, sizeof(s));
	s.o = &o;
	CHECK_RC(get_check_with(c, &o, &s, &hit, mem), 0);
	CHECK_EQ(hit, 0);
	/* durable after a flush: no temporary left, a hit without a fill */
	CHECK_RC(vmb_cache_flush(c), 0);
	CHECK_EQ(dir_entries(p), 0);
	memset(&s, 0, sizeof(s));
	s.o = &o;
	CHECK_RC(get_any(c, &o, &s, mem, &fd, &hit, &err), 0);
	CHECK(fd >= 0 && fd_is(fd, &o));
	if (fd >= 0)
		close(fd);
	CHECK_EQ(hit, 1);
	CHECK_EQ(s.calls, 0);
	CHECK_EQ(vmb_cache_fsck(c, 0, NULL, NULL), 0);
	vmb_cache_close(c);
	free(o.data);
}

static void test_verify(void)
{
	test_verify_with(0);
}

static void test_verify_mem(void)
{
	test_verify_with(1);
}

static void test_verify_ref(void)
{
	test_verify_with(3);
}

/* vmb_cache_get_ref: the filler's bytes come back in memory, and its temporary is
 * written by the flusher. Before that, a get_ref of this process has them from
 * memory too, and a get_mem (a descriptor wanted) waits for the write; the object is
 * present (other processes: a fill lock that waits) only once durable; with the
 * memory budget at its least (defer_max 1: each write waits for the one before),
 * every object still comes right; nothing is left in tmp/, fsck is clean. */
static void test_ref(void)
{
	char dir[4200], p[4400];
	struct obj o[6];
	struct vmb_cache *c;
	struct vmb_cache_stats st;
	struct vmb_cache_mem *m = NULL;
	struct vmb_err err;
	int fd = -1, hit = -1;

	snprintf(dir, sizeof(dir), "%s/ref%s", root, named_tmp ? "-named" : "");
	c = open_cache(dir, 0, 0);
	REQUIRE(c);
	for (int i = 0; i < 6; i++)
		obj_make(&o[i], 90 + (unsigned)i, 200000 + 4096 * (uint64_t)i);
	/* the filler's own: in memory, no descriptor */
	{
		struct fillspec s = { .o = &o[0] };

		vmb_err_clear(&err);
		CHECK_RC(vmb_cache_get_ref(c, o[0].d, o[0].len, fillmem_cb, &s, &fd, &m, &hit,
					   &err), 0);
		CHECK_EQ(fd, -1);
		CHECK(m && m->len == o[0].len && !memcmp(m->data, o[0].data, o[0].len));
		CHECK_EQ(hit, 0);
		CHECK_EQ(s.calls, 1);
		vmb_cache_mem_put(m);
		/* fill-free gets of both kinds right after: right bytes, no second fill */
		s = (struct fillspec){ .o = &o[0] };
		CHECK_RC(get_check_with(c, &o[0], &s, &hit, 3), 0);
		CHECK_EQ(hit, 1);
		CHECK_RC(get_check_with(c, &o[0], &s, &hit, 1), 0);
		CHECK_EQ(hit, 1);
		CHECK_EQ(s.calls, 0);
	}
	/* no place for more than one object's bytes in memory at a time */
	c->defer_max = 1;
	for (int i = 1; i < 6; i++) {
		struct fillspec s = { .o = &o[i] };

		CHECK_RC(get_check_with(c, &o[i], &s, &hit, 3), 0);
		CHECK_EQ(hit, 0);
		CHECK_EQ(s.got_mem, 1);
	}
	CHECK_RC(vmb_cache_flush(c), 0);
	vmb_cache_stats(c, &st);
	CHECK_EQ(st.pending, 0);
	CHECK_EQ(st.fills, 6);
	CHECK_EQ(c->defer_bytes, 0);
	snprintf(p, sizeof(p), "%s/tmp", dir);
	CHECK_EQ(dir_entries(p), 0);
	for (int i = 0; i < 6; i++) {
		struct fillspec s = { .o = &o[i] };

		path_of(p, sizeof(p), dir, "chunks", &o[i]);
		CHECK(access(p, F_OK) == 0);
		/* durable now: a descriptor, never memory */
		CHECK_RC(get_check_with(c, &o[i], &s, &hit, 3), 0);
		CHECK_EQ(s.got_mem, 0);
		CHECK_EQ(hit, 1);
	}
	CHECK_EQ(vmb_cache_fsck(c, 0, NULL, NULL), 0);
	/* no flusher (it could not start, or the cache is closing): the fill's own
	 * thread writes and flushes, whichever kind */
	vmb_cache_flush_stop(c);
	{
		struct obj n2[2];

		for (int i = 0; i < 2; i++) {
			struct fillspec s;

			obj_make(&n2[i], 110 + (unsigned)i, 90000);
			s = (struct fillspec){ .o = &n2[i] };
			CHECK_RC(get_check_with(c, &n2[i], &s, &hit, i ? 1 : 3), 0);
			CHECK_EQ(hit, 0);
			path_of(p, sizeof(p), dir, "chunks", &n2[i]);
			CHECK(access(p, F_OK) == 0);   /* in place at once */
		}
		CHECK_EQ(c->npend_fds, 0);
		CHECK_EQ(c->defer_bytes, 0);
		vmb_cache_stats(c, &st);
		CHECK_EQ(st.pending, 0);
		free(n2[0].data);
		free(n2[1].data);
	}
	vmb_cache_close(c);
	/* a process killed after the check, before the write: nothing on the disk, and
	 * the next fills it again */
	{
		struct obj k;
		pid_t pid;
		int status = 0;
		struct fillspec s = { 0 };

		obj_make(&k, 99, 123456);
		s.o = &k;
		pid = fork();
		if (pid == 0) {
			struct vmb_cache *cc = open_cache(dir, 0, 0);

			setenv("VMB_CACHE_KILL_AT", "verified", 1);
			if (cc)
				get_check_with(cc, &k, &s, NULL, 3);
			_exit(0);
		}
		waitpid(pid, &status, 0);
		CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
		path_of(p, sizeof(p), dir, "chunks", &k);
		CHECK(access(p, F_OK) != 0);
		snprintf(p, sizeof(p), "%s/tmp", dir);
		CHECK_EQ(dir_entries(p), 0);
		c = open_cache(dir, 0, 0);
		REQUIRE(c);
		CHECK_RC(get_check_with(c, &k, &s, &hit, 3), 0);
		CHECK_EQ(hit, 0);
		CHECK_EQ(s.calls, 1);
		CHECK_EQ(vmb_cache_fsck(c, 0, NULL, NULL), 0);
		vmb_cache_close(c);
		free(k.data);
	}
	for (int i = 0; i < 6; i++)
		free(o[i].data);
}

/* The flusher cannot write a chunk whose bytes a reader took from memory (the disk
 * is full): the reader had right bytes, the chunk is not kept (not present, nothing
 * left in tmp/, its lock released, nothing pending), and the next get fills it
 * again. A cache on a tmpfs of 640 KiB: two objects of 256 KiB fit, a third does
 * not. Skipped (said) where tmpfs cannot be mounted. */
static void test_ref_full(void)
{
	char dir[4200], p[4300], cmd[4500];
	struct obj o[3];
	struct vmb_cache *c;
	struct vmb_cache_stats st;
	struct vmb_err err;
	int fd = -1, hit = -1;

	snprintf(dir, sizeof(dir), "%s/full", root);
	mkdir(dir, 0755);
	snprintf(cmd, sizeof(cmd), "mount -t tmpfs -o size=640k vmbtest '%s' 2>/dev/null", dir);
	if (system(cmd) != 0) {
		fprintf(stderr, "test_ref_full: skipped (cannot mount a tmpfs on %s)\n", dir);
		return;
	}
	snprintf(p, sizeof(p), "%s/c", dir);
	c = open_cache(p, 0, 0);
	REQUIRE(c);
	for (int i = 0; i < 3; i++) {
		struct fillspec s = { .o = &o[i] };

		obj_make(&o[i], 120 + (unsigned)i, 256 * 1024);
		CHECK_RC(get_check_with(c, &o[i], &s, &hit, 3), 0);   /* right bytes */
		CHECK_EQ(s.got_mem, 1);
		CHECK_RC(vmb_cache_flush(c), 0);
	}
	vmb_cache_stats(c, &st);
	CHECK_EQ(st.pending, 0);
	CHECK_EQ(c->defer_bytes, 0);
	CHECK_EQ(c->npend_fds, 0);
	snprintf(cmd, sizeof(cmd), "%s/c/tmp", dir);
	CHECK_EQ(dir_entries(cmd), 0);
	for (int i = 0; i < 2; i++) {
		path_of(cmd, sizeof(cmd), p, "chunks", &o[i]);
		CHECK(access(cmd, F_OK) == 0);
	}
	path_of(cmd, sizeof(cmd), p, "chunks", &o[2]);
	CHECK(access(cmd, F_OK) != 0);   /* not kept */
	CHECK_EQ(vmb_cache_has(c, o[2].d), 0);
	/* filled again (its lock was released): the disk still full, a descriptor wanted:
	 * the fill's own write fails, with the cause */
	{
		struct fillspec s = { .o = &o[2] };

		vmb_err_clear(&err);
		CHECK_RC(vmb_cache_get_mem(c, o[2].d, o[2].len, fillmem_cb, &s, &fd, &hit, &err),
			 -ENOSPC);
		CHECK_EQ(s.calls, 1);
		CHECK_STR(err.msg, "cannot write");
		CHECK_EQ(fd, -1);
	}
	snprintf(cmd, sizeof(cmd), "%s/c/tmp", dir);
	CHECK_EQ(dir_entries(cmd), 0);   /* nor does the failed fill leave anything */
	CHECK_EQ(vmb_cache_fsck(c, 0, NULL, NULL), 0);
	vmb_cache_close(c);
	snprintf(cmd, sizeof(cmd), "umount '%s'", dir);
	CHECK_EQ(system(cmd), 0);
	for (int i = 0; i < 3; i++)
		free(o[i].data);
}

/* A log that counts its lines and keeps the last (the tests' opts.log). */
struct loglines {
	pthread_mutex_t mu;
	unsigned n, said;   /* said: lines holding want */
	const char *want;
	char last[1024];
};

static void log_count(void *arg, const char *msg)
{
	struct loglines *l = arg;

	pthread_mutex_lock(&l->mu);
	l->n++;
	if (l->want && strstr(msg, l->want))
		l->said++;
	snprintf(l->last, sizeof(l->last), "%s", msg);
	pthread_mutex_unlock(&l->mu);
}

static struct vmb_cache *open_cache_log(const char *dir, const struct vmb_log *log,
					unsigned fill_wait_ms)
{
	struct vmb_cache_opts o;
	struct vmb_cache *c = NULL;
	struct vmb_err err;

	vmb_cache_opts_default(&o);
	o.min_free_bytes = 0;
	o.evict_manual = 1;
	o.log = log;
	o.fill_wait_ms = fill_wait_ms;
	vmb_err_clear(&err);
	if (vmb_cache_open(dir, &o, &c, &err) < 0)
		fprintf(stderr, "open cache: %s\n", err.msg);
	return c;
}

/* A get in a thread of its own, so that a test can tell that it waits (and end the
 * wait) instead of waiting with it. */
struct bg_get {
	struct vmb_cache *c;
	const struct obj *o;
	struct fillspec s;
	int mem, rc, hit, done;   /* done: __atomic */
	pthread_t th;
};

static void *bg_get_main(void *arg)
{
	struct bg_get *g = arg;

	g->rc = get_check_with(g->c, g->o, &g->s, &g->hit, g->mem);
	__atomic_store_n(&g->done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

static int bg_start(struct bg_get *g, struct vmb_cache *c, const struct obj *o, int mem,
		    int sleep_ms)
{
	memset(g, 0, sizeof(*g));
	g->c = c;
	g->o = o;
	g->mem = mem;
	g->s.o = o;
	g->s.sleep_ms = sleep_ms;
	g->rc = -1;
	return pthread_create(&g->th, NULL, bg_get_main, g);
}

/* Wait up to ms for g to be done: 1 when it is. */
static int bg_done_within(struct bg_get *g, int ms)
{
	for (int i = 0; i < ms / 10 && !__atomic_load_n(&g->done, __ATOMIC_SEQ_CST); i++)
		usleep(10000);
	return __atomic_load_n(&g->done, __ATOMIC_SEQ_CST);
}

/* The cache's file system is full (outside report r27 G13): a fill of
 * vmb_cache_get_mem (readahead) fetched and verified a chunk but cannot write its
 * temporary. A reader waiting for that fill (vmb_cache_get_ref) still gets the
 * bytes, from memory (was: the fill's ENOSPC, EIO to the reader); the filler itself
 * (it wants a descriptor) gets the error; nothing is kept, pending or left in tmp/;
 * the log says so once for all the fills that fail so, not once each. A tmpfs of
 * 256 KiB, objects of 384 KiB. Skipped (said) where tmpfs cannot be mounted. */
static void test_fill_full(void)
{
	char dir[4200], p[4300], cmd[4500];
	struct loglines ll = { .mu = PTHREAD_MUTEX_INITIALIZER, .want = "is not kept" };
	struct vmb_log log = { log_count, &ll };
	struct vmb_cache_stats st;
	struct obj o[4];
	struct vmb_cache *c;
	int hit = -1;

	snprintf(dir, sizeof(dir), "%s/fillfull%s", root, named_tmp ? "-named" : "");
	mkdir(dir, 0755);
	snprintf(cmd, sizeof(cmd), "mount -t tmpfs -o size=256k vmbtest '%s' 2>/dev/null", dir);
	if (system(cmd) != 0) {
		fprintf(stderr, "test_fill_full: skipped (cannot mount a tmpfs on %s)\n", dir);
		return;
	}
	snprintf(p, sizeof(p), "%s/c", dir);
	c = open_cache_log(p, &log, 0);
	REQUIRE(c);
	for (int i = 0; i < 4; i++)
		obj_make(&o[i], 140 + (unsigned)i, 384 * 1024);
	for (int i = 0; i < 2; i++) {
		struct bg_get ra;
		struct fillspec s = { .o = &o[i] };

		/* the readahead's fill starts first and takes its time; the reader
		 * comes meanwhile and waits for it */
		REQUIRE(bg_start(&ra, c, &o[i], 2, 300) == 0);
		usleep(100000);
		CHECK_RC(get_check_with(c, &o[i], &s, &hit, 3), 0);   /* right bytes */
		CHECK_EQ(s.got_mem, 1);
		CHECK_EQ(s.calls, 0);        /* the readahead's fetch, not one of its own */
		pthread_join(ra.th, NULL);
		CHECK_RC(ra.rc, -ENOSPC);    /* the readahead: no descriptor to give */
		CHECK_EQ(ra.s.calls, 1);
	}
	/* a reader's own fill: from memory; the flusher cannot write it either */
	for (int i = 2; i < 4; i++) {
		struct fillspec s = { .o = &o[i] };

		CHECK_RC(get_check_with(c, &o[i], &s, &hit, 3), 0);
		CHECK_EQ(s.got_mem, 1);
		CHECK_RC(vmb_cache_flush(c), 0);
	}
	vmb_cache_stats(c, &st);
	CHECK_EQ(st.pending, 0);
	CHECK_EQ(c->defer_bytes, 0);
	for (int i = 0; i < 4; i++) {
		struct fillspec s = { .o = &o[i] };

		CHECK_EQ(vmb_cache_has(c, o[i].d), 0);   /* not kept */
		/* fetched again by the next reader, its bytes right again */
		CHECK_RC(get_check_with(c, &o[i], &s, &hit, 3), 0);
		CHECK_EQ(s.calls, 1);
		CHECK_EQ(hit, 0);
	}
	CHECK_RC(vmb_cache_flush(c), 0);
	snprintf(cmd, sizeof(cmd), "%s/tmp", p);
	CHECK_EQ(dir_entries(cmd), 0);
	CHECK_EQ(ll.said, 1);   /* once, for the 8 fills not kept */
	if (ll.said != 1)
		fprintf(stderr, "    %u lines, the last: %s\n", ll.n, ll.last);
	CHECK_STR(ll.last, "No space left on device");
	/* room again: kept, and the log says that too */
	{
		struct obj small;
		struct fillspec s = { 0 };

		obj_make(&small, 150, 4096);
		s.o = &small;
		CHECK_RC(get_check_with(c, &small, &s, &hit, 1), 0);
		CHECK_RC(vmb_cache_flush(c), 0);
		CHECK_EQ(vmb_cache_has(c, small.d), 1);
		CHECK_STR(ll.last, "chunks are kept again");
		free(small.data);
	}
	CHECK_EQ(vmb_cache_fsck(c, 0, NULL, NULL), 0);
	vmb_cache_close(c);
	snprintf(cmd, sizeof(cmd), "umount '%s'", dir);
	CHECK_EQ(system(cmd), 0);
	for (int i = 0; i < 4; i++)
		free(o[i].data);
}

/* A process that holds a chunk's fill lock and is stopped (outside report r27 G18:
 * Ctrl-Z on a prefetch): a soft get (fill_wait_ms) waits that long, then fetches
 * the object itself, without the lock, with one log line naming it: right bytes,
 * kept (present after the flush) though the lock is still the stopped process's.
 * With fill_wait_ms 0 (hard mode) the get waits for the holder, and fills once it
 * is gone. Was: every get waited for as long as the holder was stopped. */
static void test_stopped_holder(void)
{
	char dir[4200], p[4400];
	struct loglines ll = { .mu = PTHREAD_MUTEX_INITIALIZER, .want = "another process" };
	struct vmb_log log = { log_count, &ll };
	struct vmb_cache *c, *hc;
	struct bg_get g[3];
	struct obj o[3];
	int hp[2], status = 0;
	pid_t pid;
	char ch;

	snprintf(dir, sizeof(dir), "%s/stopped%s", root, named_tmp ? "-named" : "");
	for (int i = 0; i < 3; i++)
		obj_make(&o[i], 160 + (unsigned)i, 200000);
	c = open_cache_log(dir, &log, 400);
	REQUIRE(c);
	hc = open_cache_log(dir, &log, 0);
	REQUIRE(hc);
	REQUIRE(pipe(hp) == 0);
	pid = fork();
	if (pid == 0) {
		/* the holder: as a fill of another process would, then stopped */
		snprintf(p, sizeof(p), "%s/lock/objects", dir);
		int fd = open(p, O_RDWR | O_CLOEXEC);

		for (int i = 0; i < 3 && fd >= 0; i++) {
			struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET,
					    .l_start = vmb_cache_lock_byte(o[i].d), .l_len = 1 };

			if (fcntl(fd, F_OFD_SETLK, &fl) < 0)
				_exit(2);
		}
		if (fd < 0 || write(hp[1], "l", 1) != 1)
			_exit(3);
		raise(SIGSTOP);
		for (;;)
			pause();
	}
	close(hp[1]);
	CHECK(read(hp[0], &ch, 1) == 1);
	close(hp[0]);
	CHECK(waitpid(pid, &status, WUNTRACED) == pid && WIFSTOPPED(status));
	/* soft, both kinds of reader (from memory; a descriptor): on their own after
	 * the bound */
	REQUIRE(bg_start(&g[0], c, &o[0], 3, 0) == 0);
	REQUIRE(bg_start(&g[1], c, &o[1], 1, 0) == 0);
	/* hard: waits */
	REQUIRE(bg_start(&g[2], hc, &o[2], 3, 0) == 0);
	usleep(200000);
	CHECK(!__atomic_load_n(&g[0].done, __ATOMIC_SEQ_CST));   /* waits a while first */
	CHECK(bg_done_within(&g[0], 5000));
	CHECK(bg_done_within(&g[1], 5000));
	usleep(300000);
	CHECK(!__atomic_load_n(&g[2].done, __ATOMIC_SEQ_CST));   /* hard mode waits on */
	if (g[0].done && g[1].done) {
		CHECK_RC(g[0].rc, 0);
		CHECK_RC(g[1].rc, 0);
		CHECK_EQ(g[0].s.calls, 1);
		CHECK_EQ(g[1].s.calls, 1);
		CHECK_EQ(g[0].s.got_mem, 1);
		CHECK_EQ(ll.said, 2);   /* one line each, naming it */
		CHECK_STR(ll.last, "another process has been filling it");
		CHECK(strstr(ll.last, o[0].hex) || strstr(ll.last, o[1].hex));
		/* kept without the lock: present once flushed */
		CHECK_RC(vmb_cache_flush(c), 0);
		for (int i = 0; i < 2; i++) {
			path_of(p, sizeof(p), dir, "chunks", &o[i]);
			CHECK(access(p, F_OK) == 0);
		}
		{
			/* the stopped process's locks are still its own (ours released
			 * none); a lock of ours waits for it */
			int lfd = -1;

			CHECK_RC(vmb_cache_lock(c, o[0].d, 0, &lfd, NULL), -EAGAIN);
			vmb_cache_unlock(lfd);
		}
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	/* the holder is gone: every get ends (the hard one fills now) */
	for (int i = 0; i < 3; i++) {
		CHECK(bg_done_within(&g[i], 10000));
		pthread_join(g[i].th, NULL);
		CHECK_RC(g[i].rc, 0);
		CHECK_EQ(g[i].s.calls, 1);
	}
	CHECK_EQ(ll.said, 2);   /* not the hard one */
	CHECK_RC(vmb_cache_flush(hc), 0);
	CHECK_EQ(vmb_cache_fsck(c, 0, NULL, NULL), 0);
	vmb_cache_close(hc);
	vmb_cache_close(c);
	for (int i = 0; i < 3; i++)
		free(o[i].data);
}

static void test_verify_sha(void)
{
	test_verify_with(2);
}

/* kill -9 at each step of a fill: before the rename nothing is visible (and the
 * temporary goes at the next open); after it the object is whole. */
static void test_crash(void)
{
	static const char *const points[] = { "filled", "verified", "renamed" };
	struct obj o, o2;

	obj_make(&o, 50, 200000);
	obj_make(&o2, 51, 5000);
	for (int i = 0; i < 3; i++) {
		char dir[4200], p[4400];
		struct vmb_cache *c;
		struct fillspec s = { 0 };
		int status = 0, hit = -1;
		pid_t pid;

		int pfd[2];
		char got = 0;

		snprintf(dir, sizeof(dir), "%s/crash-%s%s", root, points[i],
			 named_tmp ? "-named" : "");
		REQUIRE(pipe(pfd) == 0);
		pid = fork();
		if (pid == 0) {
			close(pfd[0]);
			c = open_cache(dir, 0, 0);
			if (i == 2) {
				/* the caller reads verified bytes before they are made
				 * durable: shown with another object first, as the
				 * flusher's kill at the rename may come before this
				 * thread's write to the pipe */
				struct fillspec s2 = { .o = &o2 };

				if (c && get_check(c, &o2, &s2, NULL) == 0 &&
				    write(pfd[1], "r", 1) != 1)
					_exit(1);
				if (c)
					vmb_cache_flush(c);   /* o2 in place: not killed */
			}
			s.o = &o;
			setenv("VMB_CACHE_KILL_AT", points[i], 1);
			if (c)
				get_check(c, &o, &s, NULL);
			vmb_cache_close(c);   /* the flusher renames ("renamed" kills it) */
			_exit(0);
		}
		close(pfd[1]);
		CHECK_EQ(read(pfd[0], &got, 1), i == 2 ? 1 : 0);
		close(pfd[0]);
		waitpid(pid, &status, 0);
		CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
		path_of(p, sizeof(p), dir, "chunks", &o);
		CHECK_EQ(access(p, F_OK) == 0, i == 2);
		snprintf(p, sizeof(p), "%s/tmp", dir);
		CHECK_EQ(dir_entries(p), i < 2 ? left_tmp(dir) : 0);
		c = open_cache(dir, 0, 0);
		REQUIRE(c);
		CHECK_EQ(dir_entries(p), 0);
		CHECK_EQ(vmb_cache_fsck(c, 0, NULL, NULL), 0);
		s.o = &o;
		CHECK_RC(get_check(c, &o, &s, &hit), 0);
		CHECK_EQ(hit, i == 2);
		CHECK_EQ(s.calls, i == 2 ? 0 : 1);
		vmb_cache_close(c);
	}
	free(o.data);
	free(o2.data);
}

static void set_age(const char *dir, const struct obj *o, time_t age)
{
	char p[4400];
	struct timespec ts[2];

	path_of(p, sizeof(p), dir, "chunks", o);
	ts[0].tv_sec = ts[1].tv_sec = time(NULL) - age;
	ts[0].tv_nsec = ts[1].tv_nsec = 0;
	utimensat(AT_FDCWD, p, ts, 0);
}

static struct vmb_cache *open_auto(const char *dir, uint64_t max)
{
	struct vmb_cache_opts o;
	struct vmb_cache *c = NULL;
	struct vmb_err err;

	vmb_cache_opts_default(&o);
	o.max_bytes = max;
	o.min_free_bytes = 0;
	if (vmb_cache_open(dir, &o, &c, &err) < 0)
		fprintf(stderr, "open cache: %s\n", err.msg);
	return c;
}

/* LRU order, the 90% target, pins, objects whose lock is held, the free-space rule,
 * an open descriptor of an evicted object, touch on hit, background eviction. */
static void test_evict(void)
{
	enum { N = 10, SZ = 4096 };
	char dir[4200], p[4400];
	struct obj o[N];
	struct fillspec s = { 0 };
	struct vmb_cache *c;
	struct vmb_cache_stats st;
	struct vmb_err err;
	struct flock fl;
	int fd0 = -1, lfd, hit;

	snprintf(dir, sizeof(dir), "%s/evict", root);
	c = open_cache(dir, 8 * SZ, 0);
	REQUIRE(c);
	for (int i = 0; i < N; i++) {
		obj_make(&o[i], 100 + (unsigned)i, SZ);
		s.o = &o[i];
		CHECK_RC(get_check(c, &o[i], &s, NULL), 0);
	}
	s.o = &o[0];
	CHECK_RC(vmb_cache_get(c, o[0].d, SZ, fill_cb, &s, &fd0, &hit, &err), 0);
	CHECK_RC(vmb_cache_flush(c), 0);
	for (int i = 0; i < N; i++)
		set_age(dir, &o[i], 3600 - i);   /* 0 is the oldest */
	/* pin 1; hold the lock of 2 as a filler would */
	CHECK_RC(vmb_cache_pin(c, "vm1", (const uint8_t (*)[32])o[1].d, 1, &err), 0);
	snprintf(p, sizeof(p), "%s/lock/objects", dir);
	lfd = open(p, O_RDWR | O_CREAT, 0644);
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_start = vmb_cache_lock_byte(o[2].d);
	fl.l_len = 1;
	CHECK(lfd >= 0 && fcntl(lfd, F_OFD_SETLK, &fl) == 0);

	vmb_err_clear(&err);
	CHECK_RC(vmb_cache_evict(c, &err), 0);
	/* 10 over 8: down to 90% of 8 = 7 objects; 0, 3, 4 go (1 pinned, 2 busy) */
	for (int i = 0; i < N; i++)
		CHECK_EQ(vmb_cache_has(c, o[i].d), !(i == 0 || i == 3 || i == 4));
	vmb_cache_stats(c, &st);
	CHECK_EQ(st.evicted, 3);
	CHECK_EQ(st.chunks, 7);
	CHECK_EQ(st.bytes, 7 * SZ);
	CHECK(fd_is(fd0, &o[0]));   /* an open descriptor stays readable */
	close(fd0);
	close(lfd);
	/* a hit touches an old object: it becomes the newest */
	set_age(dir, &o[5], 7200);
	CHECK_RC(get_check(c, &o[5], &s, &hit), 0);
	CHECK_EQ(hit, 1);
	vmb_cache_close(c);

	c = open_cache(dir, 5 * SZ, 0);
	REQUIRE(c);
	CHECK_RC(vmb_cache_evict(c, &err), 0);
	/* 7 over 5: down to 4; 1 pinned, 5 touched: 2, 6, 7 go */
	for (int i = 0; i < N; i++)
		CHECK_EQ(vmb_cache_has(c, o[i].d), i == 1 || i == 5 || i == 8 || i == 9);
	vmb_cache_close(c);

	/* less free space than wanted: everything goes but what is pinned */
	c = open_cache(dir, 0, UINT64_MAX / 2);
	REQUIRE(c);
	CHECK_RC(vmb_cache_evict(c, &err), 0);
	for (int i = 0; i < N; i++)
		CHECK_EQ(vmb_cache_has(c, o[i].d), i == 1);
	CHECK_RC(vmb_cache_unpin(c, "vm1", &err), 0);
	CHECK_RC(vmb_cache_unpin(c, "vm1", &err), -ENOENT);
	CHECK_RC(vmb_cache_pin(c, "../x", NULL, 0, &err), -EINVAL);
	CHECK_STR(err.msg, "bad pin name");
	CHECK_RC(vmb_cache_evict(c, &err), 0);
	CHECK_EQ(vmb_cache_has(c, o[1].d), 0);
	/* a malformed pin stops eviction */
	snprintf(p, sizeof(p), "%s/pins/broken", dir);
	lfd = open(p, O_WRONLY | O_CREAT, 0644);
	CHECK(write(lfd, "vmbundlefs-pin 1\nnot a digest\n", 30) == 30);
	close(lfd);
	s.o = &o[3];
	CHECK_RC(get_check(c, &o[3], &s, NULL), 0);
	vmb_err_clear(&err);
	CHECK_RC(vmb_cache_evict(c, &err), -EINVAL);
	CHECK_STR(err.msg, "pin 'broken' is malformed (line 2)");
	CHECK_EQ(vmb_cache_has(c, o[3].d), 1);
	unlink(p);
	vmb_cache_close(c);

	/* in the background, after fills: the limit holds without a call */
	snprintf(dir, sizeof(dir), "%s/evict-bg", root);
	c = open_auto(dir, 4 * SZ);
	REQUIRE(c);
	for (int i = 0; i < N; i++) {
		s.o = &o[i];
		CHECK_RC(get_check(c, &o[i], &s, NULL), 0);
		usleep(20000);   /* mtimes apart (the kernel's clock ticks are coarse) */
	}
	CHECK_RC(vmb_cache_flush(c), 0);   /* present (counted) once flushed */
	for (int t = 0; t < 200; t++) {
		vmb_cache_stats(c, &st);
		/* both: a fill counted while a scan ran can be lost from st.bytes until
		 * the next scan (the scan's total replaces the count), which the last
		 * fill's kick runs */
		if (st.bytes <= 4 * SZ && st.evicted >= 6)
			break;
		usleep(50000);
	}
	CHECK(st.bytes <= 4 * SZ && st.evicted >= 6);
	CHECK_EQ(vmb_cache_has(c, o[N - 1].d), 1);
	vmb_cache_close(c);
	for (int i = 0; i < N; i++)
		free(o[i].data);
}

/* Put o in meta/ as remote.c does (the layout's dirs first), mtime age seconds ago. */
static void meta_put(struct vmb_cache *c, const char *dir, const struct obj *o, time_t age)
{
	char p[4400];
	struct timespec ts[2];
	struct vmb_err err;
	int fd;

	CHECK_RC(vmb_cache_meta_dir(c, o->d, &err), 0);
	path_of(p, sizeof(p), dir, "meta", o);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	CHECK(fd >= 0 && write(fd, o->data, o->len) == (ssize_t)o->len);
	close(fd);
	clock_gettime(CLOCK_REALTIME, &ts[0]);
	ts[0].tv_sec -= age;
	ts[1] = ts[0];
	CHECK(utimensat(AT_FDCWD, p, ts, 0) == 0);
}

static int meta_has(const char *dir, const struct obj *o)
{
	char p[4400];

	path_of(p, sizeof(p), dir, "meta", o);
	return access(p, F_OK) == 0;
}

/* Objects of meta/ (manifests, image indexes) count in the cache's bytes and are
 * evicted with the chunks, oldest first, but never a pinned one (the indexes of a
 * pulled bundle's layers) (outside report r27 G8). */
static void test_evict_meta(void)
{
	enum { N = 4, SZ = 4096 };
	char dir[4200];
	struct obj o[N], m[3];
	struct fillspec s = { 0 };
	struct vmb_cache *c;
	struct vmb_cache_stats st;
	struct vmb_err err;
	uint64_t bytes = 0, chunks = 0;

	snprintf(dir, sizeof(dir), "%s/evict-meta", root);
	c = open_cache(dir, 0, 0);
	REQUIRE(c);
	for (int i = 0; i < N; i++) {
		obj_make(&o[i], 700 + (unsigned)i, SZ);
		s.o = &o[i];
		CHECK_RC(get_check(c, &o[i], &s, NULL), 0);
	}
	CHECK_RC(vmb_cache_flush(c), 0);
	for (int i = 0; i < N; i++)
		set_age(dir, &o[i], 1000 - i);   /* chunks: ages 1000..997 */
	for (int i = 0; i < 3; i++) {
		obj_make(&m[i], 800 + (unsigned)i, 2 * SZ);
		meta_put(c, dir, &m[i], 5000 - i);   /* meta: older than every chunk */
	}
	CHECK_RC(vmb_cache_usage(c, &bytes, &chunks, &err), 0);
	CHECK_EQ(bytes, (uint64_t)N * SZ + 3 * 2 * SZ);   /* meta/ counted */
	CHECK_EQ(chunks, N);
	vmb_cache_close(c);

	/* 10 pages over 8: down to 7.2; m0 pinned, m1 (oldest unpinned) then m2 go */
	c = open_cache(dir, 8 * SZ, 0);
	REQUIRE(c);
	CHECK_RC(vmb_cache_pin(c, "layers-x", (const uint8_t (*)[32])m[0].d, 1, &err), 0);
	vmb_err_clear(&err);
	CHECK_RC(vmb_cache_evict(c, &err), 0);
	CHECK_EQ(meta_has(dir, &m[0]), 1);
	CHECK_EQ(meta_has(dir, &m[1]), 0);
	CHECK_EQ(meta_has(dir, &m[2]), 0);
	for (int i = 0; i < N; i++)
		CHECK_EQ(vmb_cache_has(c, o[i].d), 1);
	vmb_cache_stats(c, &st);
	CHECK_EQ(st.evicted, 2);
	CHECK_EQ(st.bytes, (uint64_t)N * SZ + 2 * SZ);
	CHECK_EQ(st.chunks, N);
	/* a meta object being fetched (its lock held) is not evicted either */
	meta_put(c, dir, &m[1], 9000);
	{
		int lfd;

		CHECK_RC(vmb_cache_object_lock(c, m[1].d, &lfd, &err), 0);
		CHECK_RC(vmb_cache_evict(c, &err), 0);
		CHECK_EQ(meta_has(dir, &m[1]), 1);
		vmb_cache_object_unlock(lfd);
	}
	/* used again (new) and unpinned: now the chunks go first */
	meta_put(c, dir, &m[1], 0);
	CHECK_RC(vmb_cache_unpin(c, "layers-x", &err), 0);
	vmb_cache_close(c);
	c = open_cache(dir, 4 * SZ, 0);
	REQUIRE(c);
	CHECK_RC(vmb_cache_evict(c, &err), 0);
	CHECK_EQ(meta_has(dir, &m[0]), 0);   /* the oldest, unpinned now */
	CHECK_EQ(meta_has(dir, &m[1]), 1);   /* the newest */
	CHECK_EQ(vmb_cache_has(c, o[0].d), 0);
	vmb_cache_close(c);
	for (int i = 0; i < N; i++)
		free(o[i].data);
	for (int i = 0; i < 3; i++)
		free(m[i].data);
}

/* fsck --cache checks meta/ as chunks/: damaged and untrusted objects, stale
 * temporaries of its writes, stray files; repair removes them (r27 G14). */
static void test_fsck_meta(void)
{
	char dir[4200], p[4400], *rep = NULL;
	size_t replen = 0;
	struct obj m[3];
	struct vmb_cache *c;
	FILE *f;
	int fd;

	snprintf(dir, sizeof(dir), "%s/fsck-meta", root);
	c = open_cache(dir, 0, 0);
	REQUIRE(c);
	for (int i = 0; i < 3; i++) {
		obj_make(&m[i], 900 + (unsigned)i, 30000);
		meta_put(c, dir, &m[i], 0);
	}
	CHECK_EQ(vmb_cache_fsck(c, 0, NULL, NULL), 0);
	path_of(p, sizeof(p), dir, "meta", &m[0]);
	fd = open(p, O_WRONLY);
	CHECK(pwrite(fd, "X", 1, 99) == 1);
	close(fd);
	path_of(p, sizeof(p), dir, "meta", &m[1]);
	CHECK(chmod(p, 0666) == 0);
	snprintf(p, sizeof(p), "%s/meta/%.2s/.%s.4242.0badf00d", dir, m[2].hex, m[2].hex);
	fd = open(p, O_WRONLY | O_CREAT, 0644);
	close(fd);
	snprintf(p, sizeof(p), "%s/meta/%.2s/junk", dir, m[2].hex);
	fd = open(p, O_WRONLY | O_CREAT, 0644);
	close(fd);

	f = open_memstream(&rep, &replen);
	CHECK_EQ(vmb_cache_fsck(c, 0, f, NULL), 4);
	fclose(f);
	CHECK_STR(rep, "its bytes do not match its name");
	CHECK_STR(rep, "meta/");
	CHECK_STR(rep, m[0].hex);
	CHECK_STR(rep, "others could change its bytes");
	CHECK_STR(rep, "a temporary of an interrupted write of a metadata object");
	CHECK_STR(rep, "/junk: a stray file");
	CHECK_STR(rep, "3 objects (90000 bytes) checked: 2 bad, 1 stale temporaries, "
		  "1 stray files");
	CHECK(!strstr(rep, "(removed)"));
	free(rep);
	CHECK_EQ(meta_has(dir, &m[0]), 1);

	f = open_memstream(&rep, &replen);
	CHECK_EQ(vmb_cache_fsck(c, 1, f, NULL), 4);
	fclose(f);
	CHECK_STR(rep, "(removed)");
	free(rep);
	CHECK_EQ(meta_has(dir, &m[0]), 0);
	CHECK_EQ(meta_has(dir, &m[1]), 0);
	CHECK_EQ(meta_has(dir, &m[2]), 1);
	CHECK(access(p, F_OK) < 0);
	f = open_memstream(&rep, &replen);
	CHECK_EQ(vmb_cache_fsck(c, 0, f, NULL), 0);
	fclose(f);
	CHECK_STR(rep, "1 objects (30000 bytes) checked");
	free(rep);
	vmb_cache_close(c);
	for (int i = 0; i < 3; i++)
		free(m[i].data);
}

static char short_log[2048];
static int short_logs;

static void short_log_fn(void *arg, const char *msg)
{
	(void)arg;
	short_logs++;
	snprintf(short_log, sizeof(short_log), "%s", msg);
}

/* A file system with less free space than the cache leaves free (the space taken by
 * other files): the background evicter empties the cache once, says so once, and
 * does not scan chunks/ again after each fill (each scan looks at every object and
 * finds nothing to remove): only after 1 MiB of fills (5% of the cache if more). */
static void test_evict_short(void)
{
	enum { N = 12, SZ = 64 * 1024 };
	static const struct vmb_log lg = { short_log_fn, NULL };
	char dir[4200];
	struct obj o[N];
	struct fillspec s = { 0 };
	struct vmb_cache_opts co;
	struct vmb_cache *c = NULL;
	struct vmb_cache_stats st;
	struct vmb_err err;

	snprintf(dir, sizeof(dir), "%s/evict-short", root);
	vmb_cache_opts_default(&co);
	co.min_free_bytes = UINT64_MAX / 2;   /* never there */
	co.log = &lg;
	CHECK_RC(vmb_cache_open(dir, &co, &c, &err), 0);
	REQUIRE(c);
	for (int t = 0; t < 100; t++) {   /* the open's scan first (an empty cache) */
		vmb_cache_stats(c, &st);
		if (st.scans == 1 && short_logs == 1)
			break;
		usleep(20000);
	}
	for (int i = 0; i < N; i++) {
		obj_make(&o[i], 300 + (unsigned)i, SZ);
		s.o = &o[i];
		CHECK_RC(get_check(c, &o[i], &s, NULL), 0);
		CHECK_RC(vmb_cache_flush(c), 0);   /* present: evictable */
	}
	/* 12 x 64 KiB = 768 KiB of fills: the scan of the open, and none since */
	usleep(200000);
	vmb_cache_stats(c, &st);
	CHECK_EQ(st.scans, 1);
	/* 4 more: past 1 MiB, one more scan, which removes everything */
	for (int i = 0; i < 4; i++) {
		free(o[i].data);
		obj_make(&o[i], 400 + (unsigned)i, SZ);
		s.o = &o[i];
		CHECK_RC(get_check(c, &o[i], &s, NULL), 0);
		CHECK_RC(vmb_cache_flush(c), 0);
	}
	for (int t = 0; t < 100; t++) {
		vmb_cache_stats(c, &st);
		if (st.scans >= 2 && st.chunks == 0)
			break;
		usleep(20000);
	}
	CHECK_EQ(st.scans, 2);
	CHECK_EQ(st.chunks, 0);
	CHECK_EQ(vmb_cache_has(c, o[3].d), 0);
	/* said once, with the numbers, though two scans found the space short */
	CHECK_EQ(short_logs, 1);
	CHECK(strstr(short_log, "less than the") != NULL);
	CHECK(strstr(short_log, "chunks will be fetched again") != NULL);
	vmb_cache_close(c);
	for (int i = 0; i < N; i++)
		free(o[i].data);
}

/* fsck: a corrupted object, a stale temporary, a stray file, a malformed pin, a
 * leftover lock file; then repair; a present object of the wrong size is refilled. */
static void test_fsck(void)
{
	char dir[4200], p[4400], *rep = NULL;
	size_t replen = 0;
	struct obj o[3];
	struct fillspec s = { 0 };
	struct vmb_cache *c;
	struct vmb_cache_stats st;
	FILE *f;
	int fd, hit = -1;

	snprintf(dir, sizeof(dir), "%s/fsck", root);
	c = open_cache(dir, 0, 0);
	REQUIRE(c);
	for (int i = 0; i < 3; i++) {
		obj_make(&o[i], 200 + (unsigned)i, 50000);
		s.o = &o[i];
		CHECK_RC(get_check(c, &o[i], &s, NULL), 0);
	}
	CHECK_EQ(vmb_cache_fsck(c, 0, NULL, NULL), 0);
	path_of(p, sizeof(p), dir, "chunks", &o[0]);
	fd = open(p, O_WRONLY);
	CHECK(pwrite(fd, "X", 1, 1234) == 1);
	close(fd);
	snprintf(p, sizeof(p), "%s/tmp/%s.12345.0123456789abcdef", dir, o[1].hex);
	fd = open(p, O_WRONLY | O_CREAT, 0644);
	close(fd);
	snprintf(p, sizeof(p), "%s/chunks/%.2s/junk", dir, o[2].hex);
	fd = open(p, O_WRONLY | O_CREAT, 0644);
	close(fd);
	snprintf(p, sizeof(p), "%s/pins/p1", dir);
	fd = open(p, O_WRONLY | O_CREAT, 0644);
	CHECK(write(fd, "garbage\n", 8) == 8);
	close(fd);
	snprintf(p, sizeof(p), "%s/lock/%.2s", dir, o[2].hex);
	mkdir(p, 0755);
	path_of(p, sizeof(p), dir, "lock", &o[2]);
	fd = open(p, O_WRONLY | O_CREAT, 0644);
	close(fd);

	f = open_memstream(&rep, &replen);
	CHECK_EQ(vmb_cache_fsck(c, 0, f, NULL), 4);
	fclose(f);
	CHECK_STR(rep, "its bytes do not match its name");
	CHECK_STR(rep, o[0].hex);
	CHECK_STR(rep, "a temporary of an interrupted fill");
	CHECK_STR(rep, "/junk: a stray file");
	CHECK_STR(rep, "pin 'p1' is malformed");
	CHECK_STR(rep, "3 objects (150000 bytes) checked: 1 bad, 1 stale temporaries, "
		  "1 stray files, 1 malformed pins");
	CHECK(!strstr(rep, "(removed)"));
	free(rep);
	CHECK_EQ(vmb_cache_has(c, o[0].d), 1);   /* nothing removed without repair */

	f = open_memstream(&rep, &replen);
	CHECK_EQ(vmb_cache_fsck(c, 1, f, NULL), 4);
	fclose(f);
	CHECK_STR(rep, "(removed)");
	CHECK_STR(rep, "repaired what could be");
	free(rep);
	CHECK_EQ(vmb_cache_has(c, o[0].d), 0);
	CHECK(access(p, F_OK) < 0);              /* the leftover lock file */
	snprintf(p, sizeof(p), "%s/tmp", dir);
	CHECK_EQ(dir_entries(p), 0);
	CHECK_EQ(vmb_cache_fsck(c, 0, NULL, NULL), 1);   /* the pin is left to its owner */
	snprintf(p, sizeof(p), "%s/pins/p1", dir);
	unlink(p);
	f = open_memstream(&rep, &replen);
	CHECK_EQ(vmb_cache_fsck(c, 0, f, NULL), 0);
	fclose(f);
	CHECK_STR(rep, "2 objects (100000 bytes) checked");
	CHECK_STR(rep, "; clean");
	free(rep);
	/* the removed object is fetched again */
	s.o = &o[0];
	s.calls = 0;
	CHECK_RC(get_check(c, &o[0], &s, &hit), 0);
	CHECK_EQ(s.calls, 1);
	/* a present object cut short: found by its size at get, removed, refilled */
	path_of(p, sizeof(p), dir, "chunks", &o[1]);
	CHECK(truncate(p, 1000) == 0);
	s.o = &o[1];
	s.calls = 0;
	CHECK_RC(get_check(c, &o[1], &s, &hit), 0);
	CHECK_EQ(hit, 0);
	CHECK_EQ(s.calls, 1);
	vmb_cache_stats(c, &st);
	CHECK_EQ(st.verify_failures, 3);   /* the bad object (two fscks), the short one */
	CHECK_EQ(vmb_cache_fsck(c, 0, NULL, NULL), 0);
	vmb_cache_close(c);
	for (int i = 0; i < 3; i++)
		free(o[i].data);
}

/* Pages of the chunk file at path resident in the page cache, or -1. */
static long resident_pages(const char *path)
{
	long page = sysconf(_SC_PAGESIZE), n = -1;
	struct stat st;
	unsigned char *vec;
	void *m;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &st) < 0 || st.st_size == 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	vec = calloc((size_t)(st.st_size + page - 1) / page, 1);
	if (m != MAP_FAILED && vec && mincore(m, (size_t)st.st_size, vec) == 0) {
		n = 0;
		for (off_t i = 0; i < (st.st_size + page - 1) / page; i++)
			n += vec[i] & 1;
	}
	if (m != MAP_FAILED)
		munmap(m, (size_t)st.st_size);
	free(vec);
	close(fd);
	return n;
}

/* A filled object, once durable, leaves the page cache (cache_flush.c: a mount's
 * readers hold it in the mount's page cache; it is not kept twice); it still reads
 * right, from the disk. */
static void test_pages(void)
{
	char dir[4200], p[4400];
	struct obj o;
	struct fillspec s = { 0 };
	struct vmb_cache *c;
	struct statfs sf;
	int hit = -1;

	snprintf(dir, sizeof(dir), "%s/pages", root);
	obj_make(&o, 41, 1 << 20);
	s.o = &o;
	c = open_cache(dir, 0, 0);
	REQUIRE(c);
	/* The fill's returned fd is not read here: the flusher may drop the pages
	 * before a read through it, which would bring them back (a race this check
	 * lost about once in 20 runs under ASan). */
	{
		struct vmb_err err;
		int fd = -1;

		CHECK_RC(get_any(c, &o, &s, 1, &fd, &hit, &err), 0);
		CHECK_EQ(hit, 0);
		if (fd >= 0)
			close(fd);
	}
	CHECK_RC(vmb_cache_flush(c), 0);
	path_of(p, sizeof(p), dir, "chunks", &o);
	if (statfs(dir, &sf) == 0 && sf.f_type == TMPFS_MAGIC)
		fprintf(stderr, "test_pages: %s is on tmpfs, which keeps pages it has no other "
			"copy of: residency not checked\n", dir);
	else
		CHECK_EQ(resident_pages(p), 0);
	/* a reader still gets the bytes (from the disk) */
	hit = -1;
	CHECK_RC(get_check_with(c, &o, &s, &hit, 1), 0);
	CHECK_EQ(hit, 1);
	vmb_cache_close(c);
	free(o.data);
}

int main(void)
{
	if (harness_tmpdir(root, sizeof(root), "cache") < 0 ||
	    harness_tmpdir_shared(uroot, sizeof(uroot), "cache-uid") < 0)
		return 99;
	chmod(uroot, 0755);
	RUN(test_basic);
	RUN(test_open_errors);
	RUN(test_open_layout);
	RUN(test_untrusted_object);
	RUN(test_lock_modes);
	RUN(test_single_flight);
	RUN(test_takeover);
	RUN(test_verify);
	RUN(test_verify_mem);
	RUN(test_verify_sha);
	RUN(test_verify_ref);
	RUN(test_ref);
	RUN(test_ref_full);
	RUN(test_fill_full);
	RUN(test_stopped_holder);
	RUN(test_crash);
	RUN(test_pend_named);
	RUN(test_pause);
	RUN(test_pages);
	/* again with named temporaries (file systems without O_TMPFILE) */
	named_tmp = 1;
	setenv("VMB_CACHE_NAMED_TMP", "1", 1);
	RUN(test_takeover);
	RUN(test_verify);
	RUN(test_verify_mem);
	RUN(test_verify_ref);
	RUN(test_ref);
	RUN(test_fill_full);
	RUN(test_stopped_holder);
	RUN(test_crash);
	unsetenv("VMB_CACHE_NAMED_TMP");
	named_tmp = 0;
	RUN(test_evict);
	RUN(test_evict_short);
	RUN(test_evict_link);
	RUN(test_fsck);
	RUN(test_evict_meta);
	RUN(test_fsck_meta);
	harness_rmtree(root);
	harness_rmtree(uroot);
	return harness_exit("test_cache");
}
