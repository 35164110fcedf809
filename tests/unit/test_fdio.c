/* test_fdio.c - the whole-buffer read and write loops (src/base/fdio.c). */
#include "config.h"
#include "base/fdio.h"
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpl[] = "/tmp/vmb-fdio-XXXXXX";

static int tmpfile_fd(void)
{
	char name[sizeof(tmpl)];
	int fd;

	memcpy(name, tmpl, sizeof(tmpl));
	fd = mkstemp(name);
	if (fd >= 0)
		unlink(name);
	return fd;
}

/* pwrite and pread at offsets, past the end (zeros), and on bad descriptors. */
static void test_positional(void)
{
	char buf[8192], back[8192];
	size_t done = 77;
	struct stat st;
	int fd = tmpfile_fd(), rfd;
	unsigned i;

	REQUIRE(fd >= 0);
	for (i = 0; i < sizeof(buf); i++)
		buf[i] = (char)(i * 7 + 1);
	CHECK_RC(vmb_pwrite_full(fd, buf, sizeof(buf), 4096, &done), 0);
	CHECK_EQ(done, sizeof(buf));
	CHECK(fstat(fd, &st) == 0 && st.st_size == 4096 + 8192);
	CHECK_EQ(vmb_pread_full(fd, back, sizeof(back), 4096), (ssize_t)sizeof(back));
	CHECK(!memcmp(back, buf, sizeof(buf)));
	/* The last 4 KiB of the request lie past the end: they read as zeros. */
	memset(back, 0x55, sizeof(back));
	CHECK_EQ(vmb_pread_full(fd, back, sizeof(back), 8192), (ssize_t)sizeof(back));
	CHECK(!memcmp(back, buf + 4096, 4096));
	for (i = 4096; i < sizeof(back) && back[i] == 0; i++)
		;
	CHECK_EQ(i, sizeof(back));
	/* A hole reads as zeros too. */
	CHECK_EQ(vmb_pread_full(fd, back, 4096, 0), 4096);
	for (i = 0; i < 4096 && back[i] == 0; i++)
		;
	CHECK_EQ(i, 4096u);
	/* Errors come back as -errno, with nothing counted as written. */
	rfd = open("/dev/null", O_RDONLY);
	REQUIRE(rfd >= 0);
	done = 77;
	CHECK_RC(vmb_pwrite_full(rfd, buf, 10, 0, &done), -EBADF);
	CHECK_EQ(done, 0u);
	CHECK_RC(vmb_pwrite_full(rfd, buf, 10, 0, NULL), -EBADF);
	CHECK_EQ(vmb_pread_full(-1, back, 10, 0), -EBADF);
	close(rfd);
	close(fd);
}

struct feeder {
	int fd;
	const char *buf;
	size_t len;
};

/* Writes the buffer into a pipe in pieces of 1000 bytes, then closes it. */
static void *feed(void *arg)
{
	struct feeder *f = arg;
	size_t off = 0;

	while (off < f->len) {
		size_t n = f->len - off < 1000 ? f->len - off : 1000;
		if (write(f->fd, f->buf + off, n) != (ssize_t)n)
			break;
		off += n;
		usleep(100);
	}
	close(f->fd);
	return NULL;
}

/* Sequential reads gather short reads up to the end of the stream; writes push
 * a whole buffer through a pipe far smaller than it. */
static void test_sequential(void)
{
	static char buf[300000], back[300001];
	struct feeder f;
	pthread_t t;
	int p[2];
	unsigned i;

	for (i = 0; i < sizeof(buf); i++)
		buf[i] = (char)(i % 251);
	REQUIRE(pipe(p) == 0);
	f.fd = p[1];
	f.buf = buf;
	f.len = sizeof(buf);
	REQUIRE(pthread_create(&t, NULL, feed, &f) == 0);
	CHECK_EQ(vmb_read_full(p[0], back, sizeof(back)), (ssize_t)sizeof(buf));
	CHECK(!memcmp(back, buf, sizeof(buf)));
	pthread_join(t, NULL);
	close(p[0]);

	/* Through a pipe of one page: write() returns short or blocks while a child
	 * drains it. */
	REQUIRE(pipe(p) == 0);
	(void)fcntl(p[1], F_SETPIPE_SZ, 4096);
	if (fork() == 0) {
		close(p[1]);
		ssize_t n = vmb_read_full(p[0], back, sizeof(back));
		_exit(n == (ssize_t)sizeof(buf) && !memcmp(back, buf, sizeof(buf)) ? 0 : 1);
	}
	close(p[0]);
	CHECK_RC(vmb_write_full(p[1], buf, sizeof(buf)), 0);
	close(p[1]);
	{
		int status = 0;
		CHECK(wait(&status) > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	/* A closed reader: EPIPE, not a loop (SIGPIPE is ignored here). */
	signal(SIGPIPE, SIG_IGN);
	REQUIRE(pipe(p) == 0);
	close(p[0]);
	CHECK_RC(vmb_write_full(p[1], buf, 10), -EPIPE);
	close(p[1]);
}

/* mkdir -p of a path's parents: what exists is kept, what is missing is made (the
 * last component never), and a component that is a file stops it, naming it. */
static void test_mkdir_parents(void)
{
	char root[4096], p[4400];
	struct stat st;
	size_t at = 0;
	int fd;

	REQUIRE(harness_tmpdir(root, sizeof(root), "fdio") == 0);
	snprintf(p, sizeof(p), "%s/a/b/c/leaf", root);
	CHECK_RC(vmb_mkdir_parents(p, 1, &at), 0);
	snprintf(p, sizeof(p), "%s/a/b/c", root);
	CHECK(stat(p, &st) == 0 && S_ISDIR(st.st_mode));
	snprintf(p, sizeof(p), "%s/a/b/c/leaf", root);
	CHECK(access(p, F_OK) < 0 && errno == ENOENT);
	/* again: all there, nothing to do */
	CHECK_RC(vmb_mkdir_parents(p, 1, &at), 0);
	/* a trailing '/' makes the last one too */
	snprintf(p, sizeof(p), "%s/a/d/", root);
	CHECK_RC(vmb_mkdir_parents(p, 0, NULL), 0);
	snprintf(p, sizeof(p), "%s/a/d", root);
	CHECK(stat(p, &st) == 0 && S_ISDIR(st.st_mode));
	/* a file where a directory should be */
	snprintf(p, sizeof(p), "%s/a/f", root);
	fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0644);
	CHECK(fd >= 0);
	if (fd >= 0)
		close(fd);
	snprintf(p, sizeof(p), "%s/a/f/x/leaf", root);
	CHECK_RC(vmb_mkdir_parents(p, 1, &at), -ENOTDIR);
	CHECK_EQ(at, strlen(root) + strlen("/a/f/x"));
}

/* vmb_fsync/vmb_fdatasync: fsync(2)'s answer (EBADF on a bad descriptor, 0 on
 * a file), except on a thread that marked itself a scratch builder, where they
 * do nothing; other threads, and threads started later, still sync. */
static void *sync_bad(void *arg)
{
	(void)arg;
	return (void *)(intptr_t)(vmb_fsync(-1) == -1 && errno == EBADF &&
				  vmb_fdatasync(-1) == -1 && errno == EBADF);
}

static void test_sync_scratch(void)
{
	pthread_t t;
	void *ok = NULL;
	int fd = tmpfile_fd();

	REQUIRE(fd >= 0);
	CHECK(vmb_fsync(fd) == 0 && vmb_fdatasync(fd) == 0);
	errno = 0;
	CHECK(vmb_fsync(-1) == -1 && errno == EBADF);
	vmb_sync_scratch(1);
	CHECK_EQ(vmb_fsync(-1), 0);
	CHECK_EQ(vmb_fdatasync(-1), 0);
	REQUIRE(pthread_create(&t, NULL, sync_bad, NULL) == 0);
	REQUIRE(pthread_join(t, &ok) == 0);
	CHECK(ok != NULL);   /* another thread still syncs */
	vmb_sync_scratch(0);
	errno = 0;
	CHECK(vmb_fsync(-1) == -1 && errno == EBADF);
	CHECK(vmb_fdatasync(-1) == -1 && errno == EBADF);
	close(fd);
}

int main(void)
{
	RUN(test_positional);
	RUN(test_sequential);
	RUN(test_mkdir_parents);
	RUN(test_sync_scratch);
	return harness_exit("test_fdio");
}
