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

struct rm {
	dev_t dev;
	int mapfd;
};

/* A file (not a directory) `name` of dfd; the last link of a regular file takes
 * its sidecar map with it. */
static int remove_file(int dfd, const char *name, const char *msg, const struct stat *st,
		       int mapfd, struct vmb_err *err)
{
	char scname[VMB_SIDECAR_NAME_MAX];
	int r;

	if (S_ISREG(st->st_mode) && st->st_nlink <= 1 && mapfd >= 0) {
		vmb_sidecar_name((uint64_t)st->st_ino, scname);
		r = vmb_sidecar_remove(mapfd, scname, err);
		if (r < 0)
			return r;
	}
	if (unlinkat(dfd, name, 0) < 0 && errno != ENOENT)
		return vmb_err_sys(err, errno, "cannot remove '%s'", msg);
	return 0;
}

/* Before a directory is entered: same filesystem, and writable (a read-only
 * directory, its mode applied at the end of an import, must become writable
 * before its entries can go). */
static int enter_dir(int dfd, const char *name, const char *msg, const struct stat *st,
		     dev_t dev, struct vmb_err *err)
{
	if (st->st_dev != dev)
		return vmb_err_set(err, EXDEV, "cannot remove '%s': another filesystem is "
				   "mounted there", msg);
	if ((st->st_mode & S_IRWXU) != S_IRWXU &&
	    fchmodat(dfd, name, (st->st_mode & 07777) | S_IRWXU, 0) < 0)
		return vmb_err_sys(err, errno, "cannot remove '%s'", msg);
	return 0;
}

static int rm_ent(void *arg, enum vmb_tree_event ev, const struct vmb_tree_ent *e,
		  struct vmb_err *err)
{
	struct rm *c = arg;

	switch (ev) {
	case VMB_TREE_DIR:
		return enter_dir(e->dfd, e->name, e->msgpath, e->st, c->dev, err);
	case VMB_TREE_DIR_POST:
		if (unlinkat(e->dfd, e->name, AT_REMOVEDIR) < 0 && errno != ENOENT)
			return vmb_err_sys(err, errno, "cannot remove '%s'", e->msgpath);
		return 0;
	default:
		return remove_file(e->dfd, e->name, e->msgpath, e->st, c->mapfd, err);
	}
}

/* Depth first with vmb_tree_walk: no limit on depth. */
int vmb_tree_remove(int dirfd, const char *name, int mapfd, struct vmb_err *err)
{
	struct stat st, top;
	struct rm c;
	int fd, r;

	if (fstat(dirfd, &st) < 0)
		return vmb_err_sys(err, errno, "cannot remove '%s'", name);
	c.dev = st.st_dev;
	c.mapfd = mapfd;
	if (fstatat(dirfd, name, &top, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			return 0;
		return vmb_err_sys(err, errno, "cannot remove '%s'", name);
	}
	if (!S_ISDIR(top.st_mode))
		return remove_file(dirfd, name, name, &top, mapfd, err);
	r = enter_dir(dirfd, name, name, &top, c.dev, err);
	if (r < 0)
		return r;
	fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return vmb_err_sys(err, errno, "cannot remove '%s'", name);
	r = vmb_tree_walk(fd, name, rm_ent, &c, err);
	close(fd);
	if (r == 0 && unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		r = vmb_err_sys(err, errno, "cannot remove '%s'", name);
	return r;
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
