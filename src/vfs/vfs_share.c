/* vfs_share.c - copies inside the mount share layers (issue 10 section 6).
 *
 * cp (coreutils 9.1) copies a file whose st_blocks says it is not sparse with
 * copy_file_range from offset 0 to its end into the new, empty file; the kernel
 * passes it on in pieces of at most 4 GiB - 4 KiB. Such a copy shares the source's
 * layers instead of copying bytes (vmb_image_share_range): the first piece freezes
 * the source when its own delta holds data in the range (the freeze a clone makes:
 * under the structural mutex and its bundle's write barrier, the node following
 * the new inode), then the destination takes the source's base; each following
 * piece extends the share. Small plain files (VMB_CLONE_COPY_MAX) are copied, so
 * they stay plain files, as clone does; so are partial, unaligned, overlapping
 * and other copies that cannot be shared, and sources that cannot be frozen
 * (hard links, a bundle paused by someone else, and every file while another mount
 * of the store serves: that mount's descriptors of the file would write into the
 * frozen inode, now a layer's data; vmb_ctl_other_mount). A copy from the snapshot
 * view shares the snapshot's layer, as does a copy of a file already over a layer
 * whose own delta holds nothing in the range (no freeze). Sharing across bundles
 * is allowed (clone does it).
 */
#include "config.h"
#include "vfs/vfs_int.h"
#include "store/ops.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* n's path in the store ("BUNDLE/dir/file") and the length of its bundle's name;
 * -1 when it is not in a bundle or not known. */
static int node_path(struct vmb_vfs *v, struct vmb_node *n, char *path, size_t size,
		     size_t *blen)
{
	const char *names[1024];
	struct vmb_node *x;
	size_t k = 0, len = 0;
	int r = -1;

	pthread_mutex_lock(&v->tlock);
	for (x = n; x && x != &v->root && k < sizeof(names) / sizeof(names[0]); x = x->parent) {
		if (!x->name)
			goto out;
		names[k++] = x->name;
	}
	if (x != &v->root || k < 2)
		goto out;
	*blen = strlen(names[k - 1]);
	while (k > 0) {
		size_t l = strlen(names[--k]);
		if (len + l + 2 > size)
			goto out;
		memcpy(path + len, names[k], l);
		len += l;
		path[len++] = k ? '/' : '\0';
	}
	r = 0;
out:
	pthread_mutex_unlock(&v->tlock);
	return r;
}

/* The directory of path (relative to the store), opened one component at a time
 * without following symlinks; *name points at its last component. */
static int open_parent(struct vmb_vfs *v, char *path, const char **name)
{
	char *p = path, *slash;
	int dfd = dup(v->store.dirfd), nfd;

	while (dfd >= 0 && (slash = strchr(p, '/'))) {
		*slash = '\0';
		nfd = openat(dfd, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		*slash = '/';
		close(dfd);
		dfd = nfd;
		p = slash + 1;
	}
	*name = p;
	return dfd;
}

/* Freeze in's file so that its content is a layer (the first piece of a copy). 0
 * when frozen, else -errno (logged when it is not one of the expected refusals). */
static int freeze_source(struct vmb_file *in)
{
	struct vmb_vfs *v = in->vfs;
	char path[PATH_MAX], bundle[NAME_MAX + 1], id[VMB_BASE_ID_LEN + 1];
	char other[PATH_MAX + 128];
	const char *name;
	struct vmb_err err;
	struct stat st;
	size_t blen;
	int dfd, r;

	if (node_path(v, in->node, path, sizeof(path), &blen) < 0 || blen > NAME_MAX)
		return -ENOENT;
	memcpy(bundle, path, blen);
	bundle[blen] = '\0';
	vmb_err_clear(&err);
	pthread_mutex_lock(&v->opmu);
	/* Another mount's descriptors of the file would go on writing the frozen
	 * inode, the layer's data: no freeze while one serves (as for structural
	 * commands), its bytes are copied. Said once while other mounts are seen.
	 * Asked before the pause: a refused copy holds nothing in the bundle. */
	if (vmb_ctl_other_mount(v, other, sizeof(other))) {
		if (!v->other_said)
			vmb_log_msg(v->log, "copies inside the mount copy the bytes of files "
				    "that are not over layers yet (first '%s'): the store is also "
				    "mounted at %s, whose writes could go into the layer a freeze "
				    "makes", path, other);
		v->other_said = 1;
		r = -EBUSY;
		goto unlock;
	}
	v->other_said = 0;
	r = vmb_barrier_pause(v, bundle, &err);
	if (r < 0)
		goto unlock;
	dfd = open_parent(v, path, &name);
	if (dfd < 0) {
		r = vmb_err_sys(&err, errno, "cannot open the directory of '%s'", path);
	} else if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		   st.st_dev != in->node->dev || st.st_ino != in->node->ino) {
		r = -ENOENT;   /* renamed meanwhile */
	} else {
		r = vmb_ctl_freeze(v, dfd, name, path, id, &err);
	}
	if (dfd >= 0)
		close(dfd);
	vmb_barrier_resume(v);
unlock:
	pthread_mutex_unlock(&v->opmu);
	if (r < 0 && r != -EMLINK && r != -EBUSY && r != -ENOENT)
		vmb_log_msg(v->log, "a copy of '%s' copies its bytes: %s", path, err.msg);
	return r;
}

ssize_t vmb_vfs_share_range(struct vmb_file *in, uint64_t off_in, struct vmb_file *out,
			    uint64_t off_out, size_t len)
{
	struct vmb_vfs *v = out->vfs;
	struct vmb_err err;
	ssize_t r;
	int how;

	if (off_in != off_out || out->sv || !in->img || !out->img)
		return 0;
	how = vmb_image_share_hint(in->img, out->img, off_in, len);
	if (how == 0)
		return 0;
	if (how == 2) {
		/* the source's own bytes become a layer first: not for small plain files,
		 * nor the snapshot view's (always over a layer, never own bytes) */
		if (in->sv || (!vmb_image_base(in->img, NULL) &&
			       vmb_image_size(in->img) <= VMB_CLONE_COPY_MAX))
			return 0;
		if (freeze_source(in) < 0)
			return 0;
	}
	vmb_err_clear(&err);
	vmb_change_begin(v, out->node, NULL);
	r = in->sv ? 0 : vmb_fds_hold(v, in->node, &err);
	if (r == 0) {
		r = vmb_fds_hold(v, out->node, &err);
		if (r == 0) {
			r = vmb_image_share_range(in->img, out->img, off_in, len, &err);
			vmb_fds_unhold(v, out->node);
		}
		if (!in->sv)
			vmb_fds_unhold(v, in->node);
	}
	vmb_change_end(v, out->node);
	if (r < 0) {
		vmb_log_msg(v->log, "a copy shares no layers, its bytes are copied: %s", err.msg);
		return 0;
	}
	return r;
}
