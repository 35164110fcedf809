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
