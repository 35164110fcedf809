/* fdio.c - whole-buffer reads and writes (fdio.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fdio.h"

int vmb_pwrite_full(int fd, const void *buf, size_t len, uint64_t off, size_t *done)
{
	size_t got = 0;
	int r = 0;

	while (got < len) {
		ssize_t n = pwrite(fd, (const char *)buf + got, len - got, (off_t)(off + got));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = n < 0 ? -errno : -EIO;
			break;
		}
		got += (size_t)n;
	}
	if (done)
		*done = got;
	return r;
}

ssize_t vmb_pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = pread(fd, (char *)buf + got, len - got, (off_t)(off + got));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0) {
			memset((char *)buf + got, 0, len - got);
			break;
		}
		got += (size_t)n;
	}
	return (ssize_t)len;
}

int vmb_write_full(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

ssize_t vmb_read_full(int fd, void *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, (char *)buf + got, len - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

static _Thread_local int sync_scratch;

void vmb_sync_scratch(int on)
{
	sync_scratch = on;
}

int vmb_fsync(int fd)
{
	return sync_scratch ? 0 : fsync(fd);
}

int vmb_fdatasync(int fd)
{
	return sync_scratch ? 0 : fdatasync(fd);
}

int vmb_fsync_parent(const char *path)
{
	char *p = strdup(path), *s;
	const char *dir;
	int fd, r = 0;

	if (!p)
		return -ENOMEM;
	while ((s = strrchr(p, '/')) && s > p && !s[1])
		*s = '\0';   /* trailing slashes */
	s = strrchr(p, '/');
	if (!s)
		dir = ".";
	else if (s == p)
		dir = "/";
	else {
		*s = '\0';
		dir = p;
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0)
		r = -errno;
	if (fd >= 0)
		close(fd);
	free(p);
	return r;
}

int vmb_mkdir_parents(const char *path, int sync_required, size_t *at)
{
	char *p = strdup(path), *s;
	int r = 0;

	if (!p)
		return -ENOMEM;
	for (s = p + 1; (s = strchr(s, '/')); s++) {
		*s = '\0';
		if (mkdir(p, 0755) == 0) {
			int f = vmb_fsync_parent(p);

			if (f < 0 && sync_required)
				r = f;
		} else if (errno != EEXIST) {
			r = -errno;
		}
		*s = '/';
		if (r < 0) {
			if (at)
				*at = (size_t)(s - p);
			break;
		}
	}
	free(p);
	return r;
}
