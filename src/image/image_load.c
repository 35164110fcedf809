/* image_load.c - where an image's map comes from (image.h): the sidecar when it is
 * current, else a rebuild; the base xattr of a delta.
 *
 * A file without a base: its backing file is its content, so a missing or stale
 * map is rebuilt from the backing file's holes (vmb_sidecar_scan), exactly.
 * A delta with a base (LAYERS.md (4)): holes cannot tell ZERO from ABSENT, so the
 * rebuild starts from the last committed map (sidecar + journal up to its last
 * COMMIT, when the sidecar is this inode's and names this base): every block that
 * holds data in the backing file becomes DATA, every committed DATA block that is a
 * hole now ZERO; ABSENT and ZERO holes stay. Unsynced changes may be lost (the old
 * content shows), never invented. With no committed map, holes are ABSENT.
 */
#include "config.h"
#include "image/image_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>

/* "<32 hex> <decimal>" plus room to see that a value is too long. */
#define XATTR_MAX (VMB_BASE_ID_LEN + 1 + 20 + 8)

int vmb_image_get_base_xattr(int fd, const char *name, char id[VMB_BASE_ID_LEN + 1],
			     uint64_t *limit, struct vmb_err *err)
{
	char v[XATTR_MAX + 1];
	ssize_t n = fgetxattr(fd, VMB_BASE_XATTR, v, XATTR_MAX);
	uint64_t l = 0;
	struct stat st;
	ssize_t i;

	if (n < 0) {
		if (errno == ENODATA || errno == ENOTSUP)
			return 0;
		return vmb_err_sys(err, errno, "cannot read the base xattr of '%s'", name);
	}
	/* user.vmbundlefs.base is believed on the store owner's files only (xns.h) */
	if (fstat(fd, &st) < 0)
		return vmb_err_sys(err, errno, "cannot stat '%s'", name);
	if (!vmb_xns_trusts(st.st_uid))
		return 0;
	v[n] = '\0';
	if (n < VMB_BASE_ID_LEN + 2 || n > VMB_BASE_ID_LEN + 1 + 20 || v[VMB_BASE_ID_LEN] != ' ')
		goto bad;
	for (i = VMB_BASE_ID_LEN + 1; i < n; i++) {
		if (v[i] < '0' || v[i] > '9' || l > (VMB_BLOCK_MAX - (uint64_t)(v[i] - '0')) / 10)
			goto bad;
		l = l * 10 + (uint64_t)(v[i] - '0');
	}
	v[VMB_BASE_ID_LEN] = '\0';
	if (!vmb_base_id_valid(v))
		goto bad;
	memcpy(id, v, VMB_BASE_ID_LEN + 1);
	*limit = l;
	return 1;
bad:
	for (i = 0; i < n; i++)   /* printable in the message */
		if (v[i] < 0x20 || v[i] > 0x7e)
			v[i] = '?';
	return vmb_err_set(err, EIO, "the base xattr of '%s' is corrupt ('%.*s')", name,
			   (int)(n < 64 ? n : 64), v);
}

int vmb_image_set_base_xattr(int fd, const char *name, const char *id, uint64_t limit,
			     struct vmb_err *err)
{
	char v[XATTR_MAX];
	int n = snprintf(v, sizeof(v), "%s %" PRIu64, id, limit);

	if (fsetxattr(fd, VMB_BASE_XATTR, v, (size_t)n, 0) < 0)
		return vmb_err_sys(err, errno, "cannot set the base xattr of '%s'", name);
	return 0;
}

int vmb_img_reconcile(int fd, uint64_t size, const struct vmb_blockmap *committed,
		      struct vmb_blockmap *out, struct vmb_err *err)
{
	struct vmb_blockmap scan, r;
	size_t i;
	int rc;

	vmb_blockmap_init(&scan);
	vmb_blockmap_init(&r);
	rc = vmb_sidecar_scan(fd, size, &scan, err);
	if (rc < 0)
		goto out;
	if (committed) {
		rc = vmb_blockmap_copy(&r, committed);
		if (rc < 0)
			goto nomem;
		vmb_blockmap_truncate(&r, blocks_for(size));
		/* committed DATA that is a hole now: ZERO (DATA again just below) */
		for (i = 0; i < committed->n; i++) {
			const struct vmb_extent *e = &committed->ext[i];
			if (e->state == VMB_DATA && e->start < blocks_for(size) &&
			    (rc = vmb_blockmap_set(&r, e->start, e->len < blocks_for(size) - e->start ?
						   e->len : blocks_for(size) - e->start,
						   VMB_ZERO)) < 0)
				goto nomem;
		}
	}
	for (i = 0; i < scan.n; i++)
		if (scan.ext[i].state == VMB_DATA &&
		    (rc = vmb_blockmap_set(&r, scan.ext[i].start, scan.ext[i].len, VMB_DATA)) < 0)
			goto nomem;
	vmb_blockmap_destroy(out);
	*out = r;
	vmb_blockmap_init(&r);
	goto out;
nomem:
	rc = vmb_err_set(err, -rc, "out of memory rebuilding a map");
out:
	vmb_blockmap_destroy(&scan);
	vmb_blockmap_destroy(&r);
	return rc;
}

int vmb_img_load_map(int fd, int mapdir, const char *name, struct vmb_blockmap *m,
		     struct vmb_stamp *stamp, int *rebuilt, struct vmb_sidecar_pos *pos,
		     struct vmb_baseref *ref, int *lost, struct vmb_err *err)
{
	struct vmb_stamp now, saved;
	struct vmb_baseref sb;
	struct vmb_blockmap c;
	char scname[VMB_SIDECAR_NAME_MAX];
	int r, has, committed;

	*rebuilt = 0;
	*lost = 0;
	memset(ref, 0, sizeof(*ref));
	vmb_blockmap_init(&c);
	r = vmb_stamp_fd(fd, &now, err);
	if (r < 0)
		return vmb_err_prefix(err, "cannot open '%s'", name);
	*stamp = now;
	has = vmb_image_get_base_xattr(fd, name, ref->id, &ref->limit, err);
	if (has < 0)
		return vmb_err_prefix(err, "cannot open '%s'", name);
	if (has && ref->limit > blocks_for(now.size)) {
		/* Never so in a file's life (the limit only ever drops, and a truncate
		 * lowers it below the size): a share cut short between its xattr and its
		 * size (image_share.c). The blocks past the size read zeros, as before. */
		ref->limit = blocks_for(now.size);
		(void)vmb_image_set_base_xattr(fd, name, ref->id, ref->limit, NULL);
	}
	vmb_sidecar_name(now.ino, scname);
	r = vmb_sidecar_load2(mapdir, scname, &c, &saved, &sb, pos, err);
	if (r == 0 && vmb_stamp_equal(&now, &saved) && vmb_baseref_equal(&sb, ref)) {
		uint64_t last;
		vmb_blockmap_destroy(m);
		*m = c;
		if (vmb_blockmap_next(m, blocks_for(now.size), VMB_M_DATA | VMB_M_ZERO,
				      &last) == 0)
			return vmb_err_set(err, EIO, "cannot open '%s': sidecar map is "
					   "corrupt (extent past the end of the file)", name);
		return 0;
	}
	if (pos)
		pos->valid = 0;   /* the disk does not hold the map used from here */
	if (r < 0 && r != -ENOENT && r != -ESTALE) {
		vmb_blockmap_destroy(&c);
		vmb_err_prefix(err, "cannot open '%s'", name);
		if (r != -EBADMSG && r != -EPROTONOSUPPORT)
			return r;
		if (err)
			err->code = EIO;   /* a damaged map is an I/O error to the reader */
		return -EIO;
	}
	vmb_err_clear(err);
	*rebuilt = 1;
	if (!has) {
		/* Missing, or stale (changed behind the map): the backing file is the
		 * truth. */
		vmb_blockmap_destroy(&c);
		r = vmb_sidecar_scan(fd, now.size, m, err);
		if (r < 0)
			return vmb_err_prefix(err, "cannot open '%s': cannot rebuild its map", name);
		return 0;
	}
	/* A delta: the committed map is this file's when it is this inode's (same
	 * birth time) over the same base. */
	committed = (r == 0 || r == -ESTALE) && !strcmp(sb.id, ref->id) &&
		    saved.ino == now.ino && saved.btime_sec == now.btime_sec &&
		    saved.btime_nsec == now.btime_nsec;
	*lost = !committed ? VMB_IMG_MAP_LOST : VMB_IMG_MAP_OLDER;
	r = vmb_img_reconcile(fd, now.size, committed ? &c : NULL, m, err);
	vmb_blockmap_destroy(&c);
	if (r < 0)
		return vmb_err_prefix(err, "cannot open '%s': cannot rebuild its map", name);
	return 0;
}

int vmb_image_load_map(int fd, int mapdir_fd, const char *name, struct vmb_blockmap *m,
		       uint64_t *size, int *rebuilt, struct vmb_err *err)
{
	struct vmb_image_baseinfo bi;
	int r = vmb_image_load_map2(fd, mapdir_fd, name, NULL, m, size, rebuilt, &bi, err);

	if (r == 0 && bi.id[0]) {
		vmb_blockmap_destroy(m);
		return vmb_err_set(err, EIO, "cannot open '%s': it has a base (layer '%s') but "
				   "no layers were given", name, bi.id);
	}
	return r;
}

int vmb_image_load_map2(int fd, int mapdir_fd, const char *name,
			const struct vmb_base_resolver *res, struct vmb_blockmap *m,
			uint64_t *size, int *rebuilt, struct vmb_image_baseinfo *bi,
			struct vmb_err *err)
{
	struct vmb_baseref ref;
	struct vmb_stamp st;
	struct vmb_base *base = NULL;
	int r, lost;

	if (bi)
		memset(bi, 0, sizeof(*bi));
	r = vmb_img_load_map(fd, mapdir_fd, name, m, &st, rebuilt, NULL, &ref, &lost, err);
	if (r < 0)
		return r;
	if (ref.id[0] && res && bi) {
		r = res->open(res->arg, ref.id, &base, err);
		if (r < 0)
			return vmb_err_prefix(err, "cannot open '%s'", name);
	}
	*size = st.size;
	if (bi) {
		memcpy(bi->id, ref.id, sizeof(bi->id));
		bi->limit = ref.limit;
		bi->lost = !!(lost & VMB_IMG_MAP_LOST);
		bi->older = !!(lost & VMB_IMG_MAP_OLDER);
		bi->base = base;
	}
	return 0;
}
