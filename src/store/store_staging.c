/* store_staging.c - a locked work directory in STORE/.vmbundlefs/staging (store.h):
 * the one way imports (archive_staging.c) and clones (clone.c) make theirs. */
#include "config.h"
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int vmb_store_staging_create(struct vmb_store *s, const char *prefix, int *stagefd, int *fd,
			     char name[NAME_MAX + 1], struct vmb_err *err)
{
	struct timespec ts;
	char tmp[NAME_MAX + 1];
	int sfd, dfd = -1, i, r;

	*stagefd = *fd = -1;
	if (mkdirat(s->metafd, VMB_STORE_STAGING_DIR, VMB_META_DIR_MODE) < 0 && errno != EEXIST)
		return vmb_err_sys(err, errno, "cannot create the staging directory "
				   "'%s/%s/%s'", s->path, VMB_META_DIR, VMB_STORE_STAGING_DIR);
	sfd = openat(s->metafd, VMB_STORE_STAGING_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		     O_CLOEXEC);
	if (sfd < 0)
		return vmb_err_sys(err, errno, "cannot open the staging directory "
				   "'%s/%s/%s'", s->path, VMB_META_DIR, VMB_STORE_STAGING_DIR);
	/* Made under a "new." name and locked before it gets its prefix: a directory
	 * with the prefix that nobody holds a lock on is always a leftover. */
	clock_gettime(CLOCK_REALTIME, &ts);
	for (i = 0; i < 100; i++) {
		snprintf(tmp, sizeof(tmp), "new.%ld.%lx", (long)getpid(),
			 (unsigned long)(ts.tv_nsec + i));
		if (mkdirat(sfd, tmp, 0700) == 0)
			break;
		if (errno != EEXIST || i == 99) {
			r = vmb_err_sys(err, errno, "cannot create a directory in '%s/%s/%s'",
					s->path, VMB_META_DIR, VMB_STORE_STAGING_DIR);
			goto fail;
		}
	}
	dfd = openat(sfd, tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0 || flock(dfd, LOCK_EX | LOCK_NB) < 0) {
		r = vmb_err_sys(err, errno, "cannot lock the staging directory '%s'", tmp);
		unlinkat(sfd, tmp, AT_REMOVEDIR);
		goto fail;
	}
	snprintf(name, NAME_MAX + 1, "%s%s", prefix, tmp + 4);
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
