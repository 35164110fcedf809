/* pull.c - a local, writable bundle over the images of a published store (ops.h,
 * vmb_op_pull; issue 11 §3, REMOTE.md §4).
 *
 * Steps: NAME checked (must not exist); the top index of URL fetched (its
 * signature checked with the context's public key; offline: the one saved in the
 * cache), the bundle's manifest fetched and checked; a locked staging directory
 * made (as clone's; gc removes it when the pull died) and the tree built in it:
 * directories, symlinks, small files written whole (their bytes through the cache,
 * verified), images as empty deltas over remote layers (layers/<ID>.remote, the
 * base xattr as for clones), modes (less setuid and setgid), mtimes and user.*
 * xattrs as published (less the ones a mount maintains, user.vmbundlefs.lock,
 * .stats and .remote: the manifest's decode drops them, logged here), owned by the caller; then the tree renamed to STORE/NAME (RENAME_NOREPLACE). On any
 * failure nothing named NAME exists.
 */
#include "config.h"
#include "base/fdio.h"
#include "store/ops_int.h"
#include "store/store.h"
#include "image/image.h"
#include "layer/layer.h"
#include "remote/remote.h"
#include "remote/pubfmt.h"
#include "remote/rimage.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#define TREE "tree"


/* A published mode as it is made here: permission bits, less setuid and setgid
 * (as import makes them): a published store must not plant set-ID programs owned
 * by whoever pulls it (root, often). */
static mode_t pub_mode(const struct vmb_pub_ent *pe)
{
	return (mode_t)(pe->mode & 07777) & ~(mode_t)(S_ISUID | S_ISGID);
}

/* Where an entry is made: its parent directory (open, or the tree's root) and its
 * last name; mp is its path as messages show it (shortened, vmb_path_msg). */
struct at {
	int dfd;
	const char *leaf;
	const char *mp;
};

static int set_xattrs(int fd, const struct vmb_pub_ent *pe, const char *mp,
		      struct vmb_err *err)
{
	for (size_t j = 0; j < pe->nxattrs; j++)
		if (fsetxattr(fd, pe->xattrs[j].name, pe->xattrs[j].value, pe->xattrs[j].len,
			      0) < 0)
			return vmb_err_sys(err, errno, "cannot set xattr '%s' on '%s'",
					   pe->xattrs[j].name, mp);
	return 0;
}

static int set_times(int fd, const struct vmb_pub_ent *pe, const char *mp,
		     struct vmb_err *err)
{
	struct timespec ts[2];

	ts[0].tv_sec = ts[1].tv_sec = (time_t)pe->mtime_sec;
	ts[0].tv_nsec = ts[1].tv_nsec = (long)pe->mtime_nsec;
	if (futimens(fd, ts) < 0)
		return vmb_err_sys(err, errno, "cannot set the times of '%s'", mp);
	return 0;
}

/* The parent directory of path under root, opened (root itself for a name at the
 * top: a->dfd == root, not to be closed), and path's last name, in *a. The path has
 * no length limit (a published tree may be deeper than PATH_MAX): its directories
 * are opened a stretch of fewer than PATH_MAX bytes at a time, each relative to the
 * one before. Every directory in it is one this pull made (the manifest lists
 * parents first, vmb_tree_check), none is followed if a symlink. */
static int parent_of(int root, const char *path, struct at *a, struct vmb_err *err)
{
	const char *slash = strrchr(path, '/'), *p = path, *end;
	int fd = root, nfd, e;
	char *seg;

	a->dfd = root;
	a->leaf = slash ? slash + 1 : path;
	while (slash && p < slash) {
		end = slash;
		if (end - p >= PATH_MAX) {
			end = p + PATH_MAX - 1;
			while (end > p && *end != '/')
				end--;
		}
		seg = end > p ? strndup(p, (size_t)(end - p)) : NULL;
		if (!seg) {
			e = end > p ? ENOMEM : ENAMETOOLONG;
			goto fail;
		}
		nfd = openat(fd, seg, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		e = errno;
		free(seg);
		if (nfd < 0)
			goto fail;
		if (fd != root)
			close(fd);
		fd = nfd;
		p = end + 1;
	}
	a->dfd = fd;
	return 0;
fail:
	if (fd != root)
		close(fd);
	return vmb_err_sys(err, e, "cannot open the directory of '%s'", a->mp);
}

static int small_file(struct vmb_opctx *c, struct vmb_remote *r, const char *url,
		      const struct at *a, const struct vmb_pub_ent *pe, struct vmb_err *err)
{
	int fd, src = -1, hit, rc;

	fd = openat(a->dfd, a->leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		    0600);
	if (fd < 0)
		return vmb_err_sys(err, errno, "cannot create '%s'", a->mp);
	rc = 0;
	if (pe->size) {
		rc = vmb_remote_object(r, url, pe->digest, pe->size, &src, &hit, err);
		if (rc)
			vmb_err_prefix(err, "cannot pull '%s'", a->mp);
	}
	if (!rc && pe->size)
		rc = vmb_ops_copy_sparse(src, fd, pe->size, a->mp, err);
	if (!rc && ftruncate(fd, (off_t)pe->size) < 0)
		rc = vmb_err_sys(err, errno, "cannot size '%s'", a->mp);
	if (!rc)
		rc = set_xattrs(fd, pe, a->mp, err);
	if (!rc && fchmod(fd, pub_mode(pe)) < 0)
		rc = vmb_err_sys(err, errno, "cannot set the mode of '%s'", a->mp);
	if (!rc)
		rc = set_times(fd, pe, a->mp, err);
	if (!rc && vmb_fsync(fd) < 0)
		rc = vmb_err_sys(err, errno, "cannot sync '%s'", a->mp);
	if (!rc)
		rc = vmb_ops_save_plain_map(c, fd, a->mp, err);
	if (src >= 0)
		close(src);
	close(fd);
	return rc;
}

static int image_file(struct vmb_opctx *c, const char *url, const struct at *a,
		      const struct vmb_pub_ent *pe, struct vmb_err *err)
{
	struct vmb_layer_remote *rl = calloc(1, sizeof(*rl));
	char id[VMB_BASE_ID_LEN + 1];
	struct vmb_base *b = NULL;
	struct stat st;
	int fd, rc;

	if (!rl)
		return vmb_err_set(err, ENOMEM, "out of memory");
	snprintf(rl->url, sizeof(rl->url), "%s", url);
	memcpy(rl->index, pe->digest, 32);
	rl->size = pe->size;
	rc = vmb_layers_create_remote(c->layers, rl, id, err);
	free(rl);
	if (!rc)
		rc = vmb_layers_get(c->layers, id, &b, err);
	if (rc)
		return vmb_err_prefix(err, "cannot pull '%s'", a->mp);
	/* a layer open already (the same image pulled before, from elsewhere) tries
	 * this URL too from now on, as its file now says */
	if (vmb_layers_remote_of(b) && vmb_rimage_add_mirror(vmb_layers_remote_of(b), url) < 0) {
		vmb_base_put(b);
		return vmb_err_set(err, ENOMEM, "out of memory");
	}
	memset(&st, 0, sizeof(st));
	st.st_mode = S_IFREG | (pub_mode(pe));
	st.st_uid = geteuid();
	st.st_gid = getegid();
	st.st_size = (off_t)pe->size;
	st.st_mtim.tv_sec = (time_t)pe->mtime_sec;
	st.st_mtim.tv_nsec = (long)pe->mtime_nsec;
	st.st_atim = st.st_mtim;
	rc = vmb_image_create_delta(a->dfd, a->leaf, b, pe->size, &st, c->store->mapfd, err);
	if (rc)
		goto out;
	fd = openat(a->dfd, a->leaf, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		rc = vmb_err_sys(err, errno, "cannot open '%s'", a->mp);
		goto out;
	}
	rc = set_xattrs(fd, pe, a->mp, err);
	if (!rc)
		rc = set_times(fd, pe, a->mp, err);
	close(fd);
out:
	vmb_base_put(b);
	return rc;
}

/* Record i of m made under root (in the manifest's order: its parent exists). */
static int make_ent(struct vmb_opctx *c, struct vmb_remote *r, const char *url, int root,
		    const struct vmb_pub_ent *pe, size_t i, const struct at *a,
		    struct vmb_err *err)
{
	struct timespec ts[2];
	int fd, rc = 0;

	switch (pe->kind) {
	case 'd':
		if (i > 0 && mkdirat(a->dfd, a->leaf, 0700) < 0)
			return vmb_err_sys(err, errno, "cannot create '%s'", a->mp);
		if (!pe->nxattrs)
			return 0;
		fd = i == 0 ? dup(root) : openat(a->dfd, a->leaf, O_RDONLY | O_DIRECTORY |
						 O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return vmb_err_sys(err, errno, "cannot open '%s'", a->mp);
		rc = set_xattrs(fd, pe, a->mp, err);
		close(fd);
		return rc;
	case 'l':
		ts[0].tv_sec = ts[1].tv_sec = (time_t)pe->mtime_sec;
		ts[0].tv_nsec = ts[1].tv_nsec = (long)pe->mtime_nsec;
		if (symlinkat(pe->target, a->dfd, a->leaf) < 0 ||
		    utimensat(a->dfd, a->leaf, ts, AT_SYMLINK_NOFOLLOW) < 0)
			return vmb_err_sys(err, errno, "cannot create '%s'", a->mp);
		return 0;
	case 'f':
		return small_file(c, r, url, a, pe, err);
	case 'i':
		return image_file(c, url, a, pe, err);
	default:
		return vmb_err_set(err, EINVAL, "unknown record '%c' in the manifest",
				   pe->kind);
	}
}

/* Record pe's directory: its mode and times (after its entries are made). */
static int finish_dir(const struct vmb_pub_ent *pe, const struct at *a, size_t i,
		      int root, struct vmb_err *err)
{
	int fd, rc = 0;

	fd = i == 0 ? dup(root) : openat(a->dfd, a->leaf, O_RDONLY | O_DIRECTORY |
					 O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return vmb_err_sys(err, errno, "cannot open '%s'", a->mp);
	if (fchmod(fd, pub_mode(pe)) < 0)
		rc = vmb_err_sys(err, errno, "cannot set the mode of '%s'", a->mp);
	if (!rc)
		rc = set_times(fd, pe, a->mp, err);
	if (!rc && vmb_fsync(fd) < 0)
		rc = vmb_err_sys(err, errno, "cannot sync '%s'", a->mp);
	close(fd);
	return rc;
}

/* The tree of m under cln/tree. Paths of any length: every entry is made relative
 * to its parent's descriptor (parent_of), never by a path longer than PATH_MAX. */
static int build(struct vmb_opctx *c, struct vmb_remote *r, const char *url,
		 const struct vmb_pub_bundle *m, int cln, struct vmb_err *err)
{
	char mbuf[VMB_PATH_MSG_MAX + 1];
	int root = -1, rc = 0;
	struct at a;
	size_t i;

	if (mkdirat(cln, TREE, 0700) < 0 ||
	    (root = openat(cln, TREE, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return vmb_err_sys(err, errno, "cannot create the new bundle");
	for (i = 0; i < m->n && !rc; i++) {
		const struct vmb_pub_ent *pe = &m->ents[i];

		a.mp = vmb_path_msg(pe->path, strlen(pe->path), mbuf);
		rc = parent_of(root, pe->path, &a, err);
		if (rc)
			break;
		rc = make_ent(c, r, url, root, pe, i, &a, err);
		if (a.dfd != root)
			close(a.dfd);
		if (i == 0)
			vmb_op_step("pull", 2);
	}
	/* Directories last, deepest first: their modes (maybe read-only) and times. */
	for (i = m->n; !rc && i-- > 0;) {
		const struct vmb_pub_ent *pe = &m->ents[i];

		if (pe->kind != 'd')
			continue;
		a.mp = vmb_path_msg(pe->path, strlen(pe->path), mbuf);
		rc = parent_of(root, pe->path, &a, err);
		if (rc)
			break;
		rc = finish_dir(pe, &a, i, root, err);
		if (a.dfd != root)
			close(a.dfd);
	}
	close(root);
	return rc;
}

/* The verified manifest object digest of the published store at url (bundle: for
 * messages). */
static int manifest_at(struct vmb_remote *r, const char *url, const char *bundle,
		       const uint8_t digest[32], struct vmb_pub_bundle *m, struct vmb_err *err)
{
	void *buf = NULL;
	size_t len;
	int rc;

	memset(m, 0, sizeof(*m));
	rc = vmb_remote_meta(r, url, digest, VMB_PUB_MANIFEST_MAX, &buf, &len, err);
	if (rc)
		return vmb_err_prefix(err, "cannot get the manifest of '%s' from '%s'", bundle,
				      url);
	rc = vmb_pub_bundle_decode(buf, len, m, err);
	free(buf);
	if (rc)
		return vmb_err_prefix(err, "the manifest of '%s' from '%s'", bundle, url);
	return 0;
}

int vmb_pull_manifest(struct vmb_remote *r, const char *url, const char *bundle,
		      struct vmb_pub_bundle *m, struct vmb_err *err)
{
	struct vmb_pub_index top;
	const struct vmb_pub_ibundle *ib;
	uint8_t digest[32];
	int stale, rc;

	memset(m, 0, sizeof(*m));
	rc = vmb_remote_top(r, url, &top, &stale, err);
	if (rc)
		return rc;
	ib = vmb_pub_index_find(&top, bundle);
	if (!ib) {
		vmb_pub_index_free(&top);
		return vmb_err_set(err, ENOENT, "no bundle '%s' in '%s'", bundle, url);
	}
	memcpy(digest, ib->digest, 32);
	vmb_pub_index_free(&top);
	return manifest_at(r, url, bundle, digest, m, err);
}

/* The bytes the small files of manifest m take once copied (each rounded up to
 * 4 KiB, plus 4 KiB a record). */
static uint64_t small_bytes(const struct vmb_pub_bundle *m)
{
	uint64_t n = 0;
	size_t i;

	for (i = 0; i < m->n; i++) {
		n += 4096;
		if (m->ents[i].kind == 'f')
			n += (m->ents[i].size + 4095) & ~(uint64_t)4095;
	}
	return n;
}

/* keep (vmb_op_pull_at): refused when the small files of m would leave less
 * than keep bytes free in the store's file system. */
static int fits(struct vmb_opctx *c, const char *name, const struct vmb_pub_bundle *m,
		uint64_t keep, struct vmb_err *err)
{
	struct statvfs sv;
	uint64_t need = small_bytes(m), avail;

	if (fstatvfs(c->store->dirfd, &sv) < 0)
		return vmb_err_sys(err, errno, "cannot get the free space of store '%s'",
				   c->store->path);
	avail = (uint64_t)sv.f_bavail * sv.f_frsize;
	if (need + keep > avail)
		return vmb_err_set(err, ENOSPC, "bundle '%s' has %.1f MiB of small files, "
				   "copied into '%s', where %.1f MiB are free and %.1f MiB must "
				   "stay free", name, need / 1048576.0, c->store->path,
				   avail / 1048576.0, keep / 1048576.0);
	return 0;
}

/* vmb_op_pull and vmb_op_pull_at: the manifest from the top index (digest NULL)
 * or the one given. */
static int pull(struct vmb_opctx *c, struct vmb_remote *r, const char *url_in,
		const char *bundle, const char *name, const uint8_t *digest, uint64_t keep,
		struct vmb_err *err)
{
	char url[VMB_LAYER_URL_MAX], cname[NAME_MAX + 1];
	struct vmb_pub_bundle m;
	struct stat st;
	int stagefd = -1, cln = -1, rc;

	if (!name)
		name = bundle;
	rc = vmb_remote_url_norm(url_in, url, sizeof(url), err);
	if (rc)
		return rc;
	rc = vmb_name_check_new(name, err);
	if (rc < 0)
		return vmb_err_prefix(err, "bad bundle name");
	if (vmb_store_reserved(name) || name[0] == '.')
		return vmb_err_set(err, EINVAL, "bad bundle name '%s': a new bundle's name may "
				   "not start with '.'", name);
	if (fstatat(c->store->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
		return vmb_err_set(err, EEXIST, "'%s' exists in store '%s'", name,
				   c->store->path);
	vmb_layers_set_remote(c->layers, r);
	rc = digest ? manifest_at(r, url, bundle, digest, &m, err)
		    : vmb_pull_manifest(r, url, bundle, &m, err);
	if (rc)
		return rc;
	if (m.xattr_skipped)
		vmb_log_msg(c->log, "pull '%s' from '%s': %zu extended attribute%s maintained by "
			    "vmbundlefs (the first: %s) %s not pulled", name, url, m.xattr_skipped, m.xattr_skipped == 1 ? "" : "s",
			    m.xattr_first, m.xattr_skipped == 1 ? "was" : "were");
	if (keep) {
		rc = fits(c, name, &m, keep, err);
		if (rc)
			goto out;
	}
	rc = vmb_store_staging_create(c->store, VMB_OPS_CLONE_PREFIX, &stagefd, &cln, cname, err);
	if (rc < 0)
		goto out;
	vmb_op_step("pull", 1);
	rc = build(c, r, url, &m, cln, err);
	if (rc < 0)
		goto fail;
	vmb_op_step("pull", 3);
	if (renameat2(cln, TREE, c->store->dirfd, name, RENAME_NOREPLACE) < 0) {
		rc = errno == EEXIST ?
			vmb_err_set(err, EEXIST, "'%s' exists in store '%s'", name,
				    c->store->path) :
			vmb_err_sys(err, errno, "cannot rename the new bundle to '%s'", name);
		goto fail;
	}
	if (vmb_fsync(c->store->dirfd) < 0)
		vmb_log_msg(c->log, "pull '%s': cannot sync the store's directory: %s", name,
			    strerror(errno));
	unlinkat(stagefd, cname, AT_REMOVEDIR);
	{
		struct vmb_err e2;

		/* its image indexes stay in the cache: the bundle opens offline */
		if (vmb_layers_pin_remote(c->layers, r, &e2) < 0)
			vmb_log_msg(c->log, "pull '%s': %s (they may be evicted; the bundle "
				    "then opens only online)", name, e2.msg);
	}
	goto out;
fail:
	{
		struct vmb_err e2;

		if (vmb_tree_remove(stagefd, cname, c->store->mapfd, &e2) < 0)
			vmb_log_msg(c->log, "pull '%s': cannot remove its staging directory: %s "
				    "(gc removes it)", name, e2.msg);
	}
out:
	if (cln >= 0)
		close(cln);
	if (stagefd >= 0)
		close(stagefd);
	vmb_pub_bundle_free(&m);
	return rc;
}

int vmb_op_pull(struct vmb_opctx *c, struct vmb_remote *r, const char *url,
		const char *bundle, const char *name, struct vmb_err *err)
{
	return pull(c, r, url, bundle, name, NULL, 0, err);
}

int vmb_op_pull_at(struct vmb_opctx *c, struct vmb_remote *r, const char *url,
		   const char *name, const uint8_t manifest[32], uint64_t keep,
		   struct vmb_err *err)
{
	return pull(c, r, url, name, name, manifest, keep, err);
}
