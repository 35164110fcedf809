/* mksnap: make a snapshot of a bundle the simple way, for the tests of the
 * .snapshots view (vfs_snapview.c): every regular file copied into a new layer
 * (vmb_layers_create_copy), directories, symlinks and user.* xattrs recorded, the
 * manifest written (store/manifest.h). Not atomic against writers: the tests run it
 * on a quiet bundle.
 *
 *   mksnap STORE BUNDLE NAME
 */
#define _GNU_SOURCE
#include "config.h"
#include "layer/layer.h"
#include "store/manifest.h"
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

struct ctx {
	struct vmb_layers *ls;
	struct vmb_manifest m;
	size_t toplen;
};

static int xattrs(struct ctx *c, int dfd, const char *name)
{
	char path[64], list[4096], val[4096];
	ssize_t n, v;
	int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return 0;   /* a symlink: none */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = listxattr(path, list, sizeof(list));
	for (char *p = list; n > 0 && p < list + n; p += strlen(p) + 1) {
		if (strncmp(p, "user.", 5))
			continue;
		v = getxattr(path, p, val, sizeof(val));
		if (v >= 0 && vmb_manifest_add_xattr(&c->m, p, val, (size_t)v) < 0) {
			close(fd);
			return -ENOMEM;
		}
	}
	close(fd);
	return 0;
}

static int one(void *arg, enum vmb_tree_event ev, const struct vmb_tree_ent *e,
	       struct vmb_err *err)
{
	struct ctx *c = arg;
	struct vmb_mf_ent me;
	char target[4096];
	int r;

	if (ev == VMB_TREE_DIR_POST)
		return 0;
	memset(&me, 0, sizeof(me));
	me.mode = e->st->st_mode & 07777;
	me.uid = e->st->st_uid;
	me.gid = e->st->st_gid;
	me.mtime_sec = e->st->st_mtim.tv_sec;
	me.mtime_nsec = (uint32_t)e->st->st_mtim.tv_nsec;
	me.path = (char *)e->path + c->toplen + 1;
	if (S_ISDIR(e->st->st_mode)) {
		me.kind = 'd';
	} else if (S_ISLNK(e->st->st_mode)) {
		ssize_t n = readlinkat(e->dfd, e->name, target, sizeof(target) - 1);
		if (n < 0)
			return vmb_err_sys(err, errno, "readlink %s", e->path);
		target[n] = '\0';
		me.kind = 'l';
		me.mode = 0;
		me.target = target;
	} else if (S_ISREG(e->st->st_mode)) {
		int fd = openat(e->dfd, e->name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return vmb_err_sys(err, errno, "open %s", e->path);
		me.kind = 'f';
		me.size = (uint64_t)e->st->st_size;
		r = vmb_layers_create_copy(c->ls, fd, me.size, me.id, err);
		close(fd);
		if (r < 0)
			return r;
	} else {
		return 0;
	}
	r = vmb_manifest_add(&c->m, &me);
	if (r == 0)
		r = xattrs(c, e->dfd, e->name);
	return r < 0 ? vmb_err_set(err, -r, "cannot record %s", e->path) : 0;
}

int main(int argc, char **argv)
{
	struct vmb_err err = {0};
	struct vmb_store s = {0};
	struct ctx c;
	struct vmb_mf_ent root;
	struct stat st;
	char file[512];
	int fd = -1, snapdir, r;

	if (argc != 4) {
		fprintf(stderr, "usage: mksnap STORE BUNDLE NAME\n");
		return 2;
	}
	memset(&c, 0, sizeof(c));
	r = vmb_store_open(&s, argv[1], VMB_STORE_READ, &err);
	if (r == 0)
		r = vmb_layers_open(&c.ls, s.metafd, NULL, &err);
	if (r < 0)
		goto out;
	fd = openat(s.dirfd, argv[2], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		r = vmb_err_sys(&err, errno, "cannot open bundle %s", argv[2]);
		goto out;
	}
	c.m.bundle = strdup(argv[2]);
	c.m.created = 1700000000;
	memset(&root, 0, sizeof(root));
	root.kind = 'd';
	root.mode = st.st_mode & 07777;
	root.uid = st.st_uid;
	root.gid = st.st_gid;
	root.mtime_sec = st.st_mtim.tv_sec;
	root.mtime_nsec = (uint32_t)st.st_mtim.tv_nsec;
	root.path = ".";
	r = vmb_manifest_add(&c.m, &root);
	if (r == 0)
		r = xattrs(&c, s.dirfd, argv[2]);
	c.toplen = strlen(argv[2]);
	if (r == 0)
		r = vmb_tree_walk(fd, argv[2], one, &c, &err);
	if (r < 0)
		goto out;
	mkdirat(s.metafd, VMB_SNAPSHOTS_DIR, 0700);
	snapdir = openat(s.metafd, VMB_SNAPSHOTS_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	snprintf(file, sizeof(file), "%s@%s", argv[2], argv[3]);
	r = snapdir < 0 ? vmb_err_sys(&err, errno, "snapshots dir") :
	    vmb_manifest_write(snapdir, file, &c.m, &err);
	if (snapdir >= 0)
		close(snapdir);
out:
	if (r < 0)
		fprintf(stderr, "mksnap: %s\n", err.msg);
	if (fd >= 0)
		close(fd);
	vmb_manifest_free(&c.m);
	vmb_layers_close(c.ls);
	vmb_store_close(&s);
	return r < 0 ? 1 : 0;
}
