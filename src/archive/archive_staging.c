/* archive_staging.c - the import staging area and removal of trees (see vmb_archive.h).
 *
 * STORE/.vmbundlefs/staging/imp.<pid>.<n>/ is one import's work directory. Its
 * importer holds an exclusive flock on it for as long as it runs, so a directory
 * nobody holds a lock on is the leftover of an import that died (kill -9, power
 * loss) and the next import removes it, with the sidecar maps of its files.
 */
#include "config.h"
#include "archive/vmb_archive.h"
#include "map/sidecar.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TREE_DEPTH_MAX 512

static int remove_children(int fd, const char *name, dev_t dev, int mapfd, int depth,
			   struct vmb_err *err);

/* Remove entry `name` of directory dfd (whose device is dev). */
static int remove_entry(int dfd, const char *name, dev_t dev, int mapfd, int depth,
			struct vmb_err *err)
{
	char scname[VMB_SIDECAR_NAME_MAX];
	struct stat st;
	int fd, r;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			return 0;
		return vmb_err_sys(err, errno, "cannot remove '%s'", name);
	}
	if (S_ISDIR(st.st_mode)) {
		if (st.st_dev != dev)
			return vmb_err_set(err, EXDEV, "cannot remove '%s': another "
					   "filesystem is mounted there", name);
		if (depth > TREE_DEPTH_MAX)
			return vmb_err_set(err, ELOOP, "cannot remove '%s': nested too "
					   "deeply", name);
		/* A read-only directory (its mode applied at the end of an import)
		 * must become writable before its entries can go. */
		if ((st.st_mode & S_IRWXU) != S_IRWXU &&
		    fchmodat(dfd, name, (st.st_mode & 07777) | S_IRWXU, 0) < 0)
			return vmb_err_sys(err, errno, "cannot remove '%s'", name);
		fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return vmb_err_sys(err, errno, "cannot remove '%s'", name);
		r = remove_children(fd, name, dev, mapfd, depth + 1, err);
		if (r < 0)
			return r;
		if (unlinkat(dfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
			return vmb_err_sys(err, errno, "cannot remove '%s'", name);
		return 0;
	}
	/* The last link of a regular file takes its sidecar map with it. */
	if (S_ISREG(st.st_mode) && st.st_nlink <= 1 && mapfd >= 0) {
		vmb_sidecar_name((uint64_t)st.st_ino, scname);
		r = vmb_sidecar_remove(mapfd, scname, err);
		if (r < 0)
			return r;
	}
	if (unlinkat(dfd, name, 0) < 0 && errno != ENOENT)
		return vmb_err_sys(err, errno, "cannot remove '%s'", name);
	return 0;
}

/* Remove everything in directory fd (consumed). */
static int remove_children(int fd, const char *name, dev_t dev, int mapfd, int depth,
			   struct vmb_err *err)
{
	struct dirent *de;
	DIR *d = fdopendir(fd);
	int r = 0;

	if (!d) {
		r = vmb_err_sys(err, errno, "cannot read '%s'", name);
		close(fd);
		return r;
	}
	while (r == 0 && (errno = 0, de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		r = remove_entry(dirfd(d), de->d_name, dev, mapfd, depth, err);
		if (r == 0)
			/* Entries were removed while reading: start over, so that
			 * none is skipped. */
			rewinddir(d);
	}
	if (r == 0 && errno)
		r = vmb_err_sys(err, errno, "cannot read '%s'", name);
	closedir(d);
	return r;
}

int vmb_tree_remove(int dirfd, const char *name, int mapfd, struct vmb_err *err)
{
	struct stat st;

	if (fstat(dirfd, &st) < 0)
		return vmb_err_sys(err, errno, "cannot remove '%s'", name);
	return remove_entry(dirfd, name, st.st_dev, mapfd, 0, err);
}

/* Remove staging directories whose import is gone (nobody holds their lock). */
static void remove_stale(int stagefd, int mapfd)
{
	struct dirent *de;
	struct vmb_err e;
	DIR *d;
	int fd = dup(stagefd);

	if (fd < 0)
		return;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return;
	}
	while ((de = readdir(d))) {
		int lfd;

		if (strncmp(de->d_name, "imp.", 4))
			continue;
		lfd = openat(stagefd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
			     O_CLOEXEC);
		if (lfd < 0)
			continue;
		if (flock(lfd, LOCK_EX | LOCK_NB) == 0)
			vmb_tree_remove(stagefd, de->d_name, mapfd, &e);
		close(lfd);
	}
	closedir(d);
}

int vmb_staging_create(struct vmb_store *s, int *stagefd, int *fd, char *name,
		       struct vmb_err *err)
{
	struct timespec ts;
	char tmp[NAME_MAX + 1];
	int sfd, dfd = -1, i, r;

	*stagefd = *fd = -1;
	if (mkdirat(s->metafd, VMB_STAGING_DIR, 0700) < 0 && errno != EEXIST)
		return vmb_err_sys(err, errno, "cannot create the staging directory "
				   "'%s/%s/%s'", s->path, VMB_META_DIR, VMB_STAGING_DIR);
	sfd = openat(s->metafd, VMB_STAGING_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		     O_CLOEXEC);
	if (sfd < 0)
		return vmb_err_sys(err, errno, "cannot open the staging directory "
				   "'%s/%s/%s'", s->path, VMB_META_DIR, VMB_STAGING_DIR);
	remove_stale(sfd, s->mapfd);
	/* Made under a "new." name and locked before it is renamed to "imp.": an
	 * "imp." directory without a lock holder is always a leftover. */
	clock_gettime(CLOCK_REALTIME, &ts);
	for (i = 0; i < 100; i++) {
		snprintf(tmp, sizeof(tmp), "new.%ld.%lx", (long)getpid(),
			 (unsigned long)(ts.tv_nsec + i));
		if (mkdirat(sfd, tmp, 0700) == 0)
			break;
		if (errno != EEXIST || i == 99) {
			r = vmb_err_sys(err, errno, "cannot create a directory in '%s/%s/%s'",
					s->path, VMB_META_DIR, VMB_STAGING_DIR);
			goto fail;
		}
	}
	dfd = openat(sfd, tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0 || flock(dfd, LOCK_EX | LOCK_NB) < 0) {
		r = vmb_err_sys(err, errno, "cannot open the staging directory '%s'", tmp);
		unlinkat(sfd, tmp, AT_REMOVEDIR);
		goto fail;
	}
	snprintf(name, NAME_MAX + 1, "imp.%s", tmp + 4);
	if (renameat(sfd, tmp, sfd, name) < 0) {
		r = vmb_err_sys(err, errno, "cannot rename the staging directory '%s'", tmp);
		unlinkat(sfd, tmp, AT_REMOVEDIR);
		goto fail;
	}
	*stagefd = sfd;
	*fd = dfd;
	return 0;
fail:
	if (dfd >= 0)
		close(dfd);
	close(sfd);
	return r;
}
