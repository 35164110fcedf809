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
	int r = vmb_store_staging_create(s, "imp.", stagefd, fd, name, err);

	if (r == 0)
		remove_stale(*stagefd, s->mapfd);   /* its own is locked: it stays */
	return r;
}
