/* vfs_ctl_ops.c - the requests of the control channel: who may do what, and which
 * operation carries it out (see ctl.h). Requests are carried out one at a time by
 * the channel's single thread: that is the daemon's structural mutex (a clone,
 * snapshot, flatten and gc never run at once). */
#include "config.h"
#include "vfs/ctl.h"
#include "vfs/vfs_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int in_group(const struct vmb_ctl_caller *w, gid_t gid)
{
	int i;

	if (w->gid == gid)
		return 1;
	for (i = 0; i < w->ngroups; i++)
		if (w->groups[i] == gid)
			return 1;
	return 0;
}

/* Would the mount's permission checks (default_permissions) let w do mask (R_OK,
 * W_OK, X_OK bits) on st? */
static int may(const struct vmb_ctl_caller *w, const struct stat *st, int mask)
{
	mode_t m = st->st_mode;

	if (w->uid == 0)
		return !(mask & X_OK) || S_ISDIR(m) || (m & 0111);
	if (st->st_uid == w->uid)
		return (int)((m >> 6) & 7 & (unsigned)mask) == mask;
	if (in_group(w, st->st_gid))
		return (int)((m >> 3) & 7 & (unsigned)mask) == mask;
	return (int)(m & 7 & (unsigned)mask) == mask;
}

/* A bundle named in a request: a valid top-level name. */
static int check_bundle_name(const char *name, struct vmb_err *err)
{
	int r = vmb_name_check(name, err);

	if (r < 0)
		return r;
	if (vmb_store_reserved(name))
		return vmb_err_set(err, EINVAL, "'%s' is not a bundle", name);
	return 0;
}

/* Root, or the owner of bundle name. */
static int check_owner(struct vmb_vfs *v, const struct vmb_ctl_caller *w, const char *op,
		       const char *name, struct vmb_err *err)
{
	struct stat st;
	int r = check_bundle_name(name, err);

	if (r < 0)
		return r;
	if (fstatat(v->store.dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return vmb_err_sys(err, errno, "cannot %s bundle '%s'", op, name);
	if (!S_ISDIR(st.st_mode))
		return vmb_err_set(err, ENOTDIR, "cannot %s '%s': not a bundle", op, name);
	if (w->uid == 0 || w->uid == st.st_uid)
		return 0;
	return vmb_err_set(err, EACCES, "cannot %s bundle '%s': only root or its owner "
			   "(uid %u) may, not uid %u", op, name, (unsigned)st.st_uid,
			   (unsigned)w->uid);
}

struct readable {
	const struct vmb_ctl_caller *w;
	const char *src;
};

static int check_readable(void *arg, enum vmb_tree_event ev, const struct vmb_tree_ent *e,
			  struct vmb_err *err)
{
	struct readable *rd = arg;
	int mask;

	if (ev == VMB_TREE_DIR_POST || S_ISLNK(e->st->st_mode))
		return 0;
	mask = ev == VMB_TREE_DIR ? R_OK | X_OK : S_ISREG(e->st->st_mode) ? R_OK : 0;
	if (mask && !may(rd->w, e->st, mask))
		return vmb_err_set(err, EACCES, "cannot clone '%s': '%s' is not readable by "
				   "uid %u", rd->src, e->msgpath, (unsigned)rd->w->uid);
	return 0;
}

/* clone SRC DST: the caller could read every file of SRC and create DST (write and
 * search the store's root), as a copy through the mount would need. */
static int check_clone(struct vmb_vfs *v, const struct vmb_ctl_caller *w, const char *src,
		       const char *dst, struct vmb_err *err)
{
	struct readable rd = { w, src };
	struct stat st;
	const char *at = strrchr(src, '@');
	int r, fd;

	r = check_bundle_name(dst, err);
	if (r < 0)
		return r;
	if (fstat(v->store.dirfd, &st) < 0)
		return vmb_err_sys(err, errno, "cannot stat the store");
	if (!may(w, &st, W_OK | X_OK))
		return vmb_err_set(err, EACCES, "cannot clone into '%s': uid %u may not create "
				   "bundles in the store", dst, (unsigned)w->uid);
	if (at) {   /* a snapshot BUNDLE@NAME (NAME has no '@'): as its bundle's owner */
		char bundle[NAME_MAX + 1];
		if (at == src || (size_t)(at - src) > NAME_MAX)
			return vmb_err_set(err, EINVAL, "'%s' is not a snapshot (BUNDLE@NAME)",
					   src);
		memcpy(bundle, src, (size_t)(at - src));
		bundle[at - src] = '\0';
		return w->uid == 0 ? check_bundle_name(bundle, err)
				   : check_owner(v, w, "clone a snapshot of", bundle, err);
	}
	r = check_bundle_name(src, err);
	if (r < 0)
		return r;
	if (w->uid == 0)
		return 0;
	fd = openat(v->store.dirfd, src, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return vmb_err_sys(err, errno, "cannot clone '%s'", src);
	if (fstat(fd, &st) < 0) {
		r = vmb_err_sys(err, errno, "cannot clone '%s'", src);
	} else if (!may(w, &st, R_OK | X_OK)) {
		r = vmb_err_set(err, EACCES, "cannot clone '%s': not readable by uid %u", src,
				(unsigned)w->uid);
	} else {
		r = vmb_tree_walk(fd, src, check_readable, &rd, err);
	}
	close(fd);
	return r;
}

/* The directory of relpath (inside the store: "bundle/.../name"), opened one name at
 * a time, never through a symlink; *name points into relpath. */
static int open_parent(struct vmb_vfs *v, const char *relpath, int *dirfd, const char **name,
		       struct vmb_err *err)
{
	const char *p = relpath, *slash;
	int fd = openat(v->store.dirfd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);

	while (fd >= 0 && (slash = strchr(p, '/'))) {
		char part[NAME_MAX + 1];
		int next;
		if ((size_t)(slash - p) > NAME_MAX || slash == p) {
			close(fd);
			return vmb_err_set(err, EINVAL, "bad path '%s'", relpath);
		}
		memcpy(part, p, (size_t)(slash - p));
		part[slash - p] = '\0';
		next = !strcmp(part, "..") || !strcmp(part, ".") ? -1 :
		       openat(fd, part, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0 && !errno)
			errno = EINVAL;
		close(fd);
		fd = next;
		p = slash + 1;
	}
	if (fd < 0)
		return vmb_err_sys(err, errno, "cannot open the directory of '%s'", relpath);
	*dirfd = fd;
	*name = p;
	return 0;
}

/* test-rebind REL NEWNAME: NEWNAME (a copy of REL made by the test, in the same
 * directory) takes REL's place, and the node of REL follows it as after a freeze:
 * under the bundle's barrier, its open image moved to the new inode, its locks taken
 * on it before the rename. */
static int test_rebind(struct vmb_vfs *v, const char *rel, const char *newname,
		       struct vmb_err *err)
{
	char bundle[NAME_MAX + 1], proc[64];
	const char *name = NULL, *slash = strchr(rel, '/');
	struct vmb_image *img = NULL;
	struct vmb_node *n = NULL;
	struct stat st;
	int dfd = -1, pfd = -1, locked = 0, r;

	if (!slash || (size_t)(slash - rel) > NAME_MAX || strchr(newname, '/'))
		return vmb_err_set(err, EINVAL, "test-rebind BUNDLE/.../NAME NEWNAME");
	memcpy(bundle, rel, (size_t)(slash - rel));
	bundle[slash - rel] = '\0';
	r = vmb_barrier_pause(v, bundle, err);
	if (r < 0)
		return r;
	r = open_parent(v, rel, &dfd, &name, err);
	if (r < 0)
		goto out;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		r = vmb_err_sys(err, errno, "cannot stat '%s'", rel);
		goto out;
	}
	pfd = openat(dfd, newname, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (pfd < 0) {
		r = vmb_err_sys(err, errno, "cannot open '%s'", newname);
		goto out;
	}
	n = vmb_node_find(v, st.st_dev, st.st_ino);
	if (n) {
		r = vmb_fds_lock(v, n, &img, err);
		if (r < 0)
			goto out;
		locked = r;
		if (img && (r = vmb_image_park(img)) < 0) {
			vmb_err_set(err, -r, "cannot park the image of '%s'", rel);
			goto out;
		}
		r = vmb_node_rebind(v, n, pfd, 0, err);
		if (r < 0) {
			if (img) {   /* back on the old inode */
				int fd = openat(dfd, name, (vmb_image_writable(img) ? O_RDWR :
							    O_RDONLY) | O_CLOEXEC | O_NOFOLLOW);
				if (fd >= 0)
					vmb_image_unpark(img, fd);
			}
			goto out;
		}
		pfd = -1;   /* the node's now */
	}
	if (renameat(dfd, newname, dfd, name) < 0)
		r = vmb_err_sys(err, errno, "cannot rename '%s' over '%s'", newname, rel);
	if (img) {
		int fd;
		vmb_node_procpath(n, proc);
		fd = open(proc, (vmb_image_writable(img) ? O_RDWR : O_RDONLY) | O_CLOEXEC);
		if (fd < 0) {
			r = vmb_err_sys(err, errno, "cannot open the new backing file of '%s'",
					rel);
			fd = openat(dfd, name, O_RDONLY | O_CLOEXEC);   /* keep it usable */
		}
		vmb_image_unpark(img, fd);
	}
out:
	if (locked)
		vmb_fds_unlock(v, n);
	if (n)
		vmb_node_put(v, n);
	if (pfd >= 0)
		close(pfd);
	if (dfd >= 0)
		close(dfd);
	vmb_barrier_resume(v);
	return r;
}

/* Test hooks (VMB_TEST_CTL_HOOKS): the barrier alone, held for at most a given
 * time (the channel's thread lets it down then: a test that dies leaves no mount
 * stuck). */
static int test_hook(struct vmb_vfs *v, const struct vmb_ctl_caller *who, char **argv,
		     int argc, char **msg, struct vmb_err *err)
{
	struct timespec now;
	int r;

	if (who->uid != 0)
		return vmb_err_set(err, EACCES, "test hooks are for root");
	if (!strcmp(argv[0], "test-rebind") && argc == 3)
		return test_rebind(v, argv[1], argv[2], err);
	if (!strcmp(argv[0], "test-resume") && argc == 1) {
		v->ctl_resume_at = 0;
		vmb_barrier_resume(v);
		return 0;
	}
	if (strcmp(argv[0], "test-pause") || argc != 3 || atoi(argv[2]) <= 0)
		return vmb_err_set(err, EINVAL, "test hooks: test-pause BUNDLE SECONDS, "
				   "test-resume, test-rebind REL NEWNAME");
	r = check_bundle_name(argv[1], err);
	if (r < 0)
		return r;
	r = vmb_barrier_pause(v, argv[1], err);
	if (r < 0)
		return r;
	clock_gettime(CLOCK_MONOTONIC, &now);
	v->ctl_resume_at = (long long)now.tv_sec + atoi(argv[2]);
	*msg = strdup("paused");
	return 0;
}

int vmb_ctl_handle(struct vmb_vfs *v, const char *mountpoint,
		   const struct vmb_ctl_caller *who, char **argv, int argc, char **msg,
		   struct vmb_err *err)
{
	const char *op = argc > 0 ? argv[0] : "";
	int r;

	*msg = NULL;
	if (!strcmp(op, "ping")) {
		if (argc != 1)
			return vmb_err_set(err, EINVAL, "ping takes no arguments");
		if (asprintf(msg, "daemon %ld of '%s' (store '%s') answers", (long)getpid(),
			     mountpoint, v->store_real) < 0) {
			*msg = NULL;
			return vmb_err_set(err, ENOMEM, "out of memory");
		}
		return 0;
	}
	if (v->ctl_test_hooks && !strncmp(op, "test-", 5))
		return test_hook(v, who, argv, argc, msg, err);
	if (strcmp(op, "snapshot") && strcmp(op, "snapshot-delete") && strcmp(op, "clone") &&
	    strcmp(op, "flatten") && strcmp(op, "gc") && strcmp(op, "pull"))
		return vmb_err_set(err, EOPNOTSUPP, "unknown request '%.64s'", op);
	if (v->readonly && v->private_store)
		/* a URL mount: its shadow store is the published one, read-only for
		 * good; what the user may have meant is said (pull, copy) */
		return vmb_err_set(err, EROFS, "cannot %s: '%s' is a mount of a published "
				   "store, read-only (its bundles can be pulled into a local "
				   "store with 'vmbundlefs pull'; a published store is mirrored "
				   "by copying its files as they are)", op, mountpoint);
	if (v->readonly)
		return vmb_err_set(err, EROFS, "cannot %s: the store is mounted read-only at "
				   "'%s'", op, mountpoint);
	if (!strcmp(op, "snapshot")) {
		if (argc < 2 || argc > 3)
			return vmb_err_set(err, EINVAL, "snapshot takes BUNDLE [NAME]");
		r = check_owner(v, who, "snapshot", argv[1], err);
		if (r < 0)
			return r;
		return vmb_ctl_run(v, mountpoint, who, argv, argc, msg, err);
	}
	if (!strcmp(op, "snapshot-delete")) {
		char bundle[NAME_MAX + 1];
		const char *at = argc == 2 ? strrchr(argv[1], '@') : NULL;
		if (!at || at == argv[1] || (size_t)(at - argv[1]) > NAME_MAX)
			return vmb_err_set(err, EINVAL, "snapshot-delete takes BUNDLE@NAME");
		memcpy(bundle, argv[1], (size_t)(at - argv[1]));
		bundle[at - argv[1]] = '\0';
		r = check_owner(v, who, "delete a snapshot of", bundle, err);
		if (r < 0 && !(r == -ENOENT && who->uid == 0))   /* root: its bundle may be gone */
			return r;
		vmb_err_clear(err);
		return vmb_ctl_run(v, mountpoint, who, argv, argc, msg, err);
	}
	if (!strcmp(op, "flatten")) {
		if (argc != 2)
			return vmb_err_set(err, EINVAL, "flatten takes BUNDLE");
		r = check_owner(v, who, "flatten", argv[1], err);
		if (r < 0)
			return r;
		return vmb_ctl_run(v, mountpoint, who, argv, argc, msg, err);
	}
	if (!strcmp(op, "clone")) {
		if (argc != 3)
			return vmb_err_set(err, EINVAL, "clone takes SRC DST");
		r = check_clone(v, who, argv[1], argv[2], err);
		if (r < 0)
			return r;
		return vmb_ctl_run(v, mountpoint, who, argv, argc, msg, err);
	}
	if (!strcmp(op, "pull")) {
		struct stat st;

		if (argc != 4)
			return vmb_err_set(err, EINVAL, "pull takes URL BUNDLE NAME");
		r = check_bundle_name(argv[3], err);
		if (r < 0)
			return r;
		if (fstat(v->store.dirfd, &st) < 0)
			return vmb_err_sys(err, errno, "cannot stat the store");
		if (!may(who, &st, W_OK | X_OK))
			return vmb_err_set(err, EACCES, "cannot pull into '%s': uid %u may not "
					   "create bundles in the store", argv[3],
					   (unsigned)who->uid);
		/* The daemon reads file:// URLs as root: only for root. */
		if (who->uid != 0 && !strstr(argv[1], "://"))
			return vmb_err_set(err, EACCES, "cannot pull '%s' through the mount: a "
					   "local directory is pulled by root only (use an http(s) "
					   "or s3 URL, or pull into an unmounted store)", argv[1]);
		if (who->uid != 0 && !strncmp(argv[1], "file:", 5))
			return vmb_err_set(err, EACCES, "cannot pull '%s' through the mount: "
					   "file:// URLs are pulled by root only", argv[1]);
		return vmb_ctl_run(v, mountpoint, who, argv, argc, msg, err);
	}
	/* gc */
	if (argc != 1)
		return vmb_err_set(err, EINVAL, "gc takes no arguments");
	{
		struct stat st;
		if (fstat(v->store.dirfd, &st) < 0)
			return vmb_err_sys(err, errno, "cannot stat the store");
		if (who->uid != 0 && who->uid != st.st_uid)
			return vmb_err_set(err, EACCES, "cannot gc: only root or the store's owner "
					   "(uid %u) may, not uid %u", (unsigned)st.st_uid,
					   (unsigned)who->uid);
	}
	return vmb_ctl_run(v, mountpoint, who, argv, argc, msg, err);
}
