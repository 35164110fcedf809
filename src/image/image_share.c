/* image_share.c - a copy that shares a base instead of copying bytes (image.h,
 * vmb_image_share_range): cp inside the mount (issue 10 §6).
 *
 * dst takes src's base (or keeps it, when it is the same) and a base limit that
 * makes it read src's bytes from off to the end of the copy; its size becomes that
 * end. Nothing below off changes for dst: every block of dst between its old limit
 * and off is its own (DATA or ZERO), so a higher limit reads nothing new there.
 *
 * On disk, in this order (each step leaves the old content or the new one):
 *   1. the map saved whole as a version-2 sidecar naming the new base and limit,
 *      under the current stamp (until step 2 it disagrees with the xattr: stale,
 *      rebuilt from it as the committed map, which is the map as it is);
 *   2. the base xattr "<ID> <new limit>" (the file's size is still off: a limit
 *      past ceil(size / 4096) is clipped when the file is opened, image_load.c);
 *   3. ftruncate to the end (the sidecar's stamp is then stale: rebuilt from it,
 *      it has no block past off, every hole there ABSENT: the new content).
 * The map is saved again under the new stamp by the next persist. */
#include "config.h"
#include "image/image_int.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <sys/xattr.h>

/* The base and limit that dst gets for the range, or 0 when the range cannot be
 * shared. Caller holds dst's wlock (and reads src under its mlock). *b: src's base,
 * with a reference. */
static int plan(struct vmb_image *src, struct vmb_image *dst, uint64_t off, size_t len,
		struct vmb_base **b, uint64_t *limit, uint64_t *end)
{
	uint64_t ssize, slimit, found, dlimit;
	int ok;

	*b = NULL;
	if (src == dst || off % BS || len == 0)
		return 0;
	pthread_mutex_lock(&src->mlock);
	ssize = src->size;
	slimit = src->limit;
	ok = src->base && off < ssize;
	if (ok) {
		*end = len > ssize - off ? ssize : off + len;
		/* src's own delta has nothing in the range: it reads its base there */
		ok = (*end == ssize || *end % BS == 0) &&
		     (vmb_blockmap_next(&src->map, off / BS, VMB_M_DATA | VMB_M_ZERO, &found) < 0 ||
		      found >= blocks_for(*end));
	}
	if (ok) {
		*b = src->base;
		vmb_base_get(*b);
	}
	pthread_mutex_unlock(&src->mlock);
	if (!ok)
		return 0;
	*limit = *end == ssize ? slimit : (slimit < *end / BS ? slimit : *end / BS);
	pthread_mutex_lock(&dst->mlock);
	dlimit = dst->base ? dst->limit : 0;
	/* an empty dst (truncated to 0 by cp) may change its base: it reads nothing */
	ok = dst->size == off && (!dst->base || off == 0 || !strcmp(dst->base->id, (*b)->id)) &&
	     *limit > off / BS && dlimit <= off / BS &&
	     (vmb_blockmap_next(&dst->map, dlimit, VMB_M_ABSENT, &found) < 0 ||
	      found >= off / BS);
	pthread_mutex_unlock(&dst->mlock);
	if (!ok) {
		vmb_base_put(*b);
		*b = NULL;
	}
	return ok;
}

int vmb_image_share_hint(struct vmb_image *src, struct vmb_image *dst, uint64_t off, size_t len)
{
	char sid[VMB_BASE_ID_LEN + 1] = "";
	uint64_t found, ssize, end;
	int clean, ok;

	if (src == dst || off % BS || len == 0 || dst->frozen || !dst->writable)
		return 0;
	pthread_mutex_lock(&src->mlock);
	ssize = src->size;
	ok = off < ssize;
	end = ok && len > ssize - off ? ssize : off + len;
	ok = ok && (end == ssize || end % BS == 0);
	clean = ok && src->base &&
		(vmb_blockmap_next(&src->map, off / BS, VMB_M_DATA | VMB_M_ZERO, &found) < 0 ||
		 found >= blocks_for(end));
	if (clean)
		memcpy(sid, src->base->id, sizeof(sid));
	pthread_mutex_unlock(&src->mlock);
	if (!ok)
		return 0;
	pthread_mutex_lock(&dst->mlock);
	ok = dst->size == off && (!dst->base || off == 0 || (clean && !strcmp(dst->base->id, sid)));
	if (ok && off > 0) {
		uint64_t dlimit = dst->base ? dst->limit : 0;
		ok = dlimit <= off / BS &&
		     (vmb_blockmap_next(&dst->map, dlimit, VMB_M_ABSENT, &found) < 0 ||
		      found >= off / BS);
	}
	pthread_mutex_unlock(&dst->mlock);
	if (!ok)
		return 0;
	return clean ? 1 : 2;
}

ssize_t vmb_image_share_range(struct vmb_image *src, struct vmb_image *dst, uint64_t off,
			      size_t len, struct vmb_err *err)
{
	char scname[VMB_SIDECAR_NAME_MAX];
	struct vmb_base *b = NULL, *oldb;
	struct vmb_baseref ref;
	uint64_t limit = 0, end = 0, oldlimit;
	ssize_t r;

	if (vmb_img_check_writable(dst, NULL) < 0)
		return 0;   /* the copy says why */
	pthread_mutex_lock(&dst->wlock);
	r = vmb_img_copy_prepare(src, dst, err);
	if (r < 0)
		goto out;
	if (!plan(src, dst, off, len, &b, &limit, &end) || !dst->known_ok)
		goto out;
	/* 1: the map as it is, saved whole under the new base and limit */
	memset(&ref, 0, sizeof(ref));
	memcpy(ref.id, b->id, sizeof(ref.id));
	ref.limit = limit;
	vmb_sidecar_name(dst->known.ino, scname);
	memset(&dst->pos, 0, sizeof(dst->pos));
	dst->on_disk = 0;
	r = vmb_sidecar_save2(dst->mapdir, scname, &dst->map, NULL, &dst->known, &ref,
			      VMB_SIDECAR_SYNC_FILE, &dst->pos, err);
	if (r < 0) {
		vmb_err_prefix(err, "cannot save the map of '%s'", dst->name);
		goto undo_map;
	}
	pthread_mutex_lock(&dst->mlock);
	vmb_blockmap_destroy(&dst->dirty);
	dst->map.track = &dst->dirty;
	pthread_mutex_unlock(&dst->mlock);
	/* 2: the authority */
	r = vmb_image_set_base_xattr(dst->fd, dst->name, ref.id, limit, err);
	if (r < 0)
		goto undo_map;
	pthread_mutex_lock(&dst->mlock);
	oldb = dst->base;
	oldlimit = dst->limit;
	if (oldb != b) {
		vmb_base_get(b);
		dst->base = b;
	}
	dst->limit = limit;
	dst->gen++;
	pthread_mutex_unlock(&dst->mlock);
	/* 3: the size */
	if (ftruncate(dst->fd, (off_t)end) < 0) {
		r = vmb_err_sys(err, errno, "cannot extend '%s' to %llu bytes", dst->name,
				(unsigned long long)end);
		pthread_mutex_lock(&dst->mlock);
		if (oldb != b) {
			dst->base = oldb;
			vmb_base_put(b);
		}
		dst->limit = oldlimit;
		dst->gen++;
		pthread_mutex_unlock(&dst->mlock);
		if (!oldb)
			fremovexattr(dst->fd, VMB_BASE_XATTR);
		else
			vmb_image_set_base_xattr(dst->fd, dst->name, oldb->id, oldlimit, NULL);
		goto undo_map;
	}
	if (oldb && oldb != b) {
		/* an empty dst's old base: kept until the next switch or close, as a
		 * freeze keeps it (image_freeze.c), for a reader that looked it up */
		vmb_base_put(dst->old_base);
		dst->old_base = oldb;
	}
	vmb_img_set_size(dst, end);
	r = (ssize_t)(end - off);
	goto out;
undo_map:
	/* the saved map names what the file is not: saved again at the next persist */
	memset(&dst->pos, 0, sizeof(dst->pos));
	dst->on_disk = 0;
	pthread_mutex_lock(&dst->mlock);
	dst->gen++;
	pthread_mutex_unlock(&dst->mlock);
out:
	vmb_base_put(b);
	vmb_img_refresh_known(dst);
	pthread_mutex_unlock(&dst->wlock);
	return r;
}
