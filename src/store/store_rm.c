/* store_rm.c - removal of a tree of a store (store.h, vmb_tree_remove): the work
 * directories of imports and clones, and what they leave behind. */
#include "config.h"
#include "store/store.h"
#include "map/sidecar.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
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
