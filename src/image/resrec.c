/* resrec.c - the record of space reserved past EOF (see resrec.h). */
#include "config.h"
#include "image/resrec.h"

#include <errno.h>
#include <inttypes.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/xattr.h>

int vmb_resrec_set(int fd, uint64_t end)
{
	char v[24];
	int n = snprintf(v, sizeof(v), "%" PRIu64, end);

	return fsetxattr(fd, VMB_RESREC_XATTR, v, (size_t)n, 0) < 0 ? -errno : 0;
}

int vmb_resrec_get(int fd, uint64_t *end)
{
	char v[24], *e;
	ssize_t n = fgetxattr(fd, VMB_RESREC_XATTR, v, sizeof(v) - 1);

	*end = 0;
	if (n < 0)
		return errno == ENODATA || errno == ENOTSUP || errno == ERANGE ? 0 : -errno;
	v[n] = '\0';
	errno = 0;
	*end = strtoull(v, &e, 10);
	if (errno || e == v || *e)
		*end = 0;
	return 1;
}

int vmb_resrec_clear(int fd)
{
	if (fremovexattr(fd, VMB_RESREC_XATTR) < 0 && errno != ENODATA && errno != ENOTSUP)
		return -errno;
	return 0;
}

int vmb_allocated_from(int fd, uint64_t off)
{
	struct {
		struct fiemap fm;
		struct fiemap_extent fe[1];
	} f;

	memset(&f, 0, sizeof(f));
	f.fm.fm_start = off;
	f.fm.fm_length = FIEMAP_MAX_OFFSET - off;
	f.fm.fm_extent_count = 1;
	if (off >= FIEMAP_MAX_OFFSET || ioctl(fd, FS_IOC_FIEMAP, &f.fm) < 0)
		return 0;
	return f.fm.fm_mapped_extents > 0;
}
