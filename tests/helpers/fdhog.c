/* fdhog DIR N READY GO [flock]: create DIR/f00000 .. f(N-1), each with its own content, and
 * keep every one open (O_RDWR); then create the file READY and wait until GO exists;
 * then read every file back through its descriptor, check the content, write one more
 * line through it and read it back, close everything. When an open fails, the
 * files opened so far stay open until GO all the same, and it exits 1. Prints "verified N" and exits 0
 * when all N check out; else names the first failure and exits 1. With "flock",
 * each file is also locked (flock LOCK_EX|LOCK_NB) once open; locks refused with
 * ENOLCK are counted, and the line says "verified N, locked L, refused R". Used by
 * tests/mount-fds.sh to hold many files open through a mount. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static int content(char *buf, size_t size, long i, int second)
{
	return snprintf(buf, size, "%s file %05ld of the fd test, line %d\n",
			second ? "and" : "this is", i, second ? 2 : 1);
}

int main(int argc, char **argv)
{
	char path[4096], want[256], got[512];
	long n, i;
	int *fds, fd, failed = 0, lock = 0;
	long locked = 0, refused = 0;

	if (argc == 6 && !strcmp(argv[5], "flock"))
		lock = 1;
	else if (argc != 5) {
		fprintf(stderr, "usage: fdhog DIR N READY GO [flock]\n");
		return 2;
	}
	n = strtol(argv[2], NULL, 10);
	fds = calloc((size_t)n, sizeof(*fds));
	if (!fds)
		return 2;
	for (i = 0; i < n; i++) {
		int len;
		snprintf(path, sizeof(path), "%s/f%05ld", argv[1], i);
		fds[i] = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
		if (fds[i] < 0) {   /* hold what is open until GO all the same */
			printf("open %s (file %ld): %s\n", path, i, strerror(errno));
			failed = 1;
			n = i;
			break;
		}
		len = content(want, sizeof(want), i, 0);
		if (pwrite(fds[i], want, (size_t)len, 0) != len) {
			printf("write %s: %s\n", path, strerror(errno));
			return 1;
		}
		if (lock && flock(fds[i], LOCK_EX | LOCK_NB) == 0) {
			locked++;
		} else if (lock && errno == ENOLCK) {
			refused++;
		} else if (lock) {
			printf("flock %s: %s\n", path, strerror(errno));
			failed = 1;
			n = i + 1;
			break;
		}
	}
	fd = open(argv[3], O_WRONLY | O_CREAT, 0644);
	if (fd < 0) {
		printf("cannot create %s: %s\n", argv[3], strerror(errno));
		return 1;
	}
	close(fd);
	while (access(argv[4], F_OK) < 0)
		usleep(10000);
	if (failed)
		return 1;
	for (i = 0; i < n; i++) {
		int len = content(want, sizeof(want), i, 0), len2;
		ssize_t r = pread(fds[i], got, sizeof(got), 0);
		if (r != len || memcmp(got, want, (size_t)len)) {
			printf("file %ld reads back wrong (%zd bytes%s%s)\n", i, r,
			       r < 0 ? ": " : "", r < 0 ? strerror(errno) : "");
			return 1;
		}
		len2 = content(want + len, sizeof(want) - (size_t)len, i, 1);
		if (pwrite(fds[i], want + len, (size_t)len2, len) != len2) {
			printf("second write to file %ld: %s\n", i, strerror(errno));
			return 1;
		}
		r = pread(fds[i], got, sizeof(got), 0);
		if (r != len + len2 || memcmp(got, want, (size_t)(len + len2))) {
			printf("file %ld reads back wrong after its second write\n", i);
			return 1;
		}
	}
	for (i = 0; i < n; i++)
		if (close(fds[i]) < 0) {
			printf("close of file %ld: %s\n", i, strerror(errno));
			return 1;
		}
	if (lock)
		printf("verified %ld, locked %ld, refused %ld\n", n, locked, refused);
	else
		printf("verified %ld\n", n);
	free(fds);
	return 0;
}
