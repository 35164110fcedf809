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
	 * with the prefix that nobody holds a lock on is always a leftover. A sweeper
	 * (gc, fsck: vmb_ops_staging_sweep) may take the lock of a "new." directory
	 * between its mkdir and its lock and remove it: then another is made. */
	clock_gettime(CLOCK_REALTIME, &ts);
	for (i = 0; ; i++) {
		struct stat st;

		if (i == 100) {
			r = vmb_err_set(err, EAGAIN, "cannot create a directory in '%s/%s/%s'",
					s->path, VMB_META_DIR, VMB_STORE_STAGING_DIR);
			goto fail;
		}
		snprintf(tmp, sizeof(tmp), VMB_STORE_STAGING_NEW "%ld.%lx", (long)getpid(),
			 (unsigned long)(ts.tv_nsec + i));
		if (mkdirat(sfd, tmp, 0700) < 0) {
			if (errno == EEXIST)
				continue;
			r = vmb_err_sys(err, errno, "cannot create a directory in '%s/%s/%s'",
					s->path, VMB_META_DIR, VMB_STORE_STAGING_DIR);
			goto fail;
		}
		dfd = openat(sfd, tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (dfd < 0 && errno == ENOENT)   /* swept */
			continue;
		if (dfd < 0) {
			r = vmb_err_sys(err, errno, "cannot open the staging directory '%s'", tmp);
			unlinkat(sfd, tmp, AT_REMOVEDIR);
			goto fail;
		}
		if (flock(dfd, LOCK_EX | LOCK_NB) == 0 && fstat(dfd, &st) == 0 && st.st_nlink > 0)
			break;
		unlinkat(sfd, tmp, AT_REMOVEDIR);   /* a sweeper has it (fsck -n leaves it) */
		close(dfd);
		dfd = -1;
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
