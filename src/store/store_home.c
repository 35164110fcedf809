/* store_home.c - where a store's metadata directory was made (store.h,
 * vmb_store_check_home).
 *
 * STORE/.vmbundlefs/home holds the identity of the .vmbundlefs directory it was
 * written in: its inode number and birth time. A copy of the store (cp -r, rsync, a
 * restore from a backup) has a new directory, so another identity; a move within a
 * file system keeps it. A copy does not keep what layered files need (their base
 * xattr, dropped by a copy without xattrs; their maps, named by inode numbers), so
 * the mount says so once (vfs.c) when a copied store has layers.
 *
 *   vmbundlefs-store-home 1
 *   <inode number> <birth seconds>.<birth nanoseconds, 9 digits>   ("-" when the
 *                                                                   file system
 *                                                                   has no birth
 *                                                                   times)
 * Written whole (temporary, fsync, rename); rewritten after a copy is found.
 */
#include "config.h"
#include "store/store.h"
#include "base/fdio.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HOME_FILE "home"
#define HOME_MAGIC "vmbundlefs-store-home 1\n"

/* The identity line of the metadata directory (without its newline). */
static int identity(int metafd, char *buf, size_t size, struct vmb_err *err)
{
	struct statx sx;

	if (statx(metafd, "", AT_EMPTY_PATH, STATX_INO | STATX_BTIME, &sx) < 0)
		return vmb_err_sys(err, errno, "cannot stat the store's %s directory",
				   VMB_META_DIR);
	if (sx.stx_mask & STATX_BTIME)
		snprintf(buf, size, "%" PRIu64 " %" PRId64 ".%09" PRIu32, (uint64_t)sx.stx_ino,
			 (int64_t)sx.stx_btime.tv_sec, sx.stx_btime.tv_nsec);
	else
		snprintf(buf, size, "%" PRIu64 " -", (uint64_t)sx.stx_ino);
	return 0;
}

/* Write the home file (best effort for a store this process may not write: then
 * the next writer's mount records it). */
static void write_home(int metafd, const char *id)
{
	char tmp[64], text[160];
	int fd, n = snprintf(text, sizeof(text), "%s%s\n", HOME_MAGIC, id), ok;

	snprintf(tmp, sizeof(tmp), ".%s.%ld", HOME_FILE, (long)getpid());
	fd = openat(metafd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
		    VMB_META_FILE_MODE);
	if (fd < 0)
		return;
	ok = vmb_pwrite_full(fd, text, (size_t)n, 0, NULL) == 0 && vmb_fsync(fd) == 0;
	close(fd);
	if (!ok || renameat(metafd, tmp, metafd, HOME_FILE) < 0)
		unlinkat(metafd, tmp, 0);
	else
		(void)vmb_fsync(metafd);
}

void vmb_store_home_init(int metafd)
{
	char id[96];

	if (identity(metafd, id, sizeof(id), NULL) == 0)
		write_home(metafd, id);
}

int vmb_store_check_home(struct vmb_store *s, int *copied, struct vmb_err *err)
{
	char id[96], text[160];
	ssize_t n;
	int fd, r;

	*copied = 0;
	r = identity(s->metafd, id, sizeof(id), err);
	if (r < 0)
		return r;
	fd = openat(s->metafd, HOME_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno != ENOENT)
			return vmb_err_sys(err, errno, "cannot open '%s/%s/%s'", s->path,
					   VMB_META_DIR, HOME_FILE);
		write_home(s->metafd, id);   /* a store made before the file was */
		return 0;
	}
	n = pread(fd, text, sizeof(text) - 1, 0);
	close(fd);
	if (n < 0)
		return vmb_err_sys(err, errno, "cannot read '%s/%s/%s'", s->path, VMB_META_DIR,
				   HOME_FILE);
	text[n] = '\0';
	if (strncmp(text, HOME_MAGIC, strlen(HOME_MAGIC)) != 0 ||
	    strlen(text) != strlen(HOME_MAGIC) + strlen(id) + 1 ||
	    strncmp(text + strlen(HOME_MAGIC), id, strlen(id)) != 0) {
		/* another directory's (or damaged, which only costs this note) */
		*copied = 1;
		write_home(s->metafd, id);
	}
	return 0;
}
