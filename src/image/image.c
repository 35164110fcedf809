/* image.c - a sparse file: backing file + block map (see image.h): opening, saving
 * the map, closing, parking, revalidation. Writes are in image_write.c, reads and
 * seeks through the base in image_base.c. */
#include "config.h"
#include "image/image_int.h"
#include "image/resrec.h"
#include "base/fdio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>


/* Wait for the writes queued for O_DIRECT (dio.h), so the backing file holds every
 * accepted byte; a failure among them is kept for fsync. */
void vmb_image_drain(struct vmb_image *img)
{
	vmb_dio_drain(&img->dio, 0, NULL);
}

/* The same, taking the failure (logged here): the error of fsync, or of the last
 * close. */
static int drain_err(struct vmb_image *img, struct vmb_err *err)
{
	uint64_t off = 0;
	int r = vmb_dio_drain(&img->dio, 1, &off);

	if (r < 0) {
		vmb_err_sys(err, -r, "an accepted write to '%s' at offset %llu failed", img->name,
			    (unsigned long long)off);
		vmb_log_msg(img->log, "%s", err->msg);
	}
	return r;
}



int vmb_image_open(struct vmb_image **out, int fd, int mapdir_fd, const char *name,
		   const struct vmb_log *log, struct vmb_err *err)
{
	return vmb_image_open2(out, fd, mapdir_fd, name, log, NULL, err);
}

struct vmb_image *vmb_img_alloc(const char *name, struct vmb_err *err)
{
	struct vmb_image *img = calloc(1, sizeof(*img));

	if (!img) {
		vmb_err_set(err, ENOMEM, "cannot open '%s': out of memory", name);
		return NULL;
	}
	img->fd = img->old_fd = -1;
	vmb_dio_init(&img->dio, 0);
	vmb_blockmap_init(&img->map);
	vmb_blockmap_init(&img->dirty);
	img->name = strdup(name);
	if (!img->name) {
		vmb_err_set(err, ENOMEM, "cannot open '%s': out of memory", name);
		vmb_image_close(img);
		return NULL;
	}
	pthread_mutex_init(&img->wlock, NULL);
	pthread_mutex_init(&img->mlock, NULL);
	img->locks_ready = 1;
	return img;
}

int vmb_image_open2(struct vmb_image **out, int fd, int mapdir_fd, const char *name,
		    const struct vmb_log *log, const struct vmb_base_resolver *res,
		    struct vmb_err *err)
{
	struct vmb_image *img;
	struct vmb_baseref ref;
	int rebuilt, lost, fl, r;

	*out = NULL;
	img = vmb_img_alloc(name, err);
	if (!img)
		return -ENOMEM;
	r = vmb_img_load_map(fd, mapdir_fd, name, &img->map, &img->known, &rebuilt, &img->pos,
			     &ref, &lost, err);
	if (r < 0)
		goto out;
	if (ref.id[0]) {
		if (!res) {
			r = vmb_err_set(err, EIO, "cannot open '%s': it has a base (layer '%s') "
					"but no layers were given", name, ref.id);
			goto out;
		}
		r = res->open(res->arg, ref.id, &img->base, err);
		if (r < 0) {
			img->base = NULL;
			vmb_err_prefix(err, "cannot open '%s'", name);
			goto out;
		}
		img->limit = ref.limit;
		if (lost & VMB_IMG_MAP_LOST)
			vmb_log_msg(log, "the map of '%s' (a file over layer '%s') was lost: "
				    "blocks zeroed since its last snapshot read their base again",
				    name, ref.id);
		else if (lost & VMB_IMG_MAP_OLDER)
			vmb_log_msg(log, "the map of '%s' (a file over layer '%s') was older "
				    "than the file (a change not yet committed by another "
				    "mount, cut short by a crash, or a damaged journal): blocks "
				    "zeroed since its last commit read their base again", name,
				    ref.id);
	}
	img->map.track = &img->dirty;
	img->ino = img->known.ino;
	img->size = img->known.size;
	img->known_ok = 1;
	fl = fcntl(fd, F_GETFL);
	img->writable = fl >= 0 && (fl & O_ACCMODE) == O_RDWR;
	img->on_disk = !rebuilt;
	img->fd = fd;
	img->mapdir = mapdir_fd;
	img->log = log;
	*out = img;
	return 0;
out:
	img->fd = -1;   /* the caller keeps fd on failure */
	vmb_image_close(img);
	return r;
}

/* Write the map under the stamp it was checked against (revalidate_locked); the
 * map of a file with no links left (unlinked or renamed over, through any mount or
 * in the store) is removed instead, never saved. Caller holds wlock. */
int vmb_img_persist_locked(struct vmb_image *img, int durable, struct vmb_err *err)
{
	char scname[VMB_SIDECAR_NAME_MAX];
	struct vmb_baseref ref;
	struct vmb_stamp st;
	struct stat fst;
	int r;

	uint64_t gen;

	pthread_mutex_lock(&img->mlock);
	gen = img->gen;
	pthread_mutex_unlock(&img->mlock);
	if (!img->writable || (img->on_disk && gen == img->saved_gen))
		return 0;
	vmb_image_drain(img);   /* the stamp is taken after the last write */
	if (fstat(img->fd, &fst) == 0 && fst.st_nlink == 0) {
		vmb_sidecar_name(img->ino, scname);
		r = vmb_sidecar_remove(img->mapdir, scname, err);
		if (r < 0)
			goto fail;
		img->saved_gen = gen;
		img->on_disk = 0;
		return 0;
	}
	/* Never save a map that does not describe the backing file as it is now: a
	 * change made by someone else is found here and the map rebuilt first. The
	 * stamp saved is the one the map was checked against, so a change that comes
	 * in after the check makes the saved map stale, never wrong. */
	r = vmb_img_revalidate_locked(img, err);
	if (r < 0)
		goto fail;
	if (img->map_only_unsaved) {   /* see map_only_unsaved */
		img->map_only = 1;
		vmb_img_refresh_known(img);
	}
	if (!img->known_ok) {
		r = vmb_err_set(err, EIO, "cannot stat the backing file");
		goto fail;
	}
	st = img->known;
	pthread_mutex_lock(&img->mlock);
	gen = img->gen;
	pthread_mutex_unlock(&img->mlock);
	vmb_sidecar_name(st.ino, scname);
	/* wlock keeps the map (and dirty) still; readers only read it. Only the changed
	 * blocks are appended to the journal while they are known. */
	vmb_img_baseref(img, &ref);
	r = vmb_sidecar_save2(img->mapdir, scname, &img->map,
			      img->map.track == &img->dirty ? &img->dirty : NULL, &st, &ref,
			      durable, &img->pos, err);
	if (r == 0) {
		pthread_mutex_lock(&img->mlock);
		vmb_blockmap_destroy(&img->dirty);
		img->map.track = &img->dirty;
		pthread_mutex_unlock(&img->mlock);
		img->saved_gen = gen;
		img->on_disk = 1;
		img->own_changed = img->map_only_unsaved = 0;
		return 0;
	}
fail:
	return vmb_err_prefix(err, "cannot save the map of '%s'", img->name);
}

int vmb_image_persist(struct vmb_image *img, struct vmb_err *err)
{
	int r;

	pthread_mutex_lock(&img->wlock);
	r = vmb_img_persist_locked(img, VMB_SIDECAR_SYNC_FILE, err);
	pthread_mutex_unlock(&img->wlock);
	return r;
}

int vmb_image_commit(struct vmb_image *img, struct vmb_err *err)
{
	int r = 0;

	if (img->frozen)
		return 0;
	pthread_mutex_lock(&img->wlock);   /* base changes under it (a freeze) */
	if (img->base)
		r = vmb_img_persist_locked(img, VMB_SIDECAR_SYNC_FILE, err);
	pthread_mutex_unlock(&img->wlock);
	return r;
}

void vmb_image_touch(struct vmb_image *img)
{
	pthread_mutex_lock(&img->mlock);
	img->gen++;
	pthread_mutex_unlock(&img->mlock);
}

void vmb_image_close(struct vmb_image *img)
{
	struct vmb_err err;
	struct stat st;

	if (!img)
		return;
	if (img->fd >= 0) {
		vmb_err_clear(&err);
		if (drain_err(img, &err) < 0)
			vmb_err_clear(&err);   /* logged */
		if (vmb_img_revalidate_locked(img, &err) < 0) {   /* before give_back punches */
			vmb_log_msg(img->log, "%s", err.msg);
			vmb_err_clear(&err);
		}
		if (img->writable)
			vmb_img_give_back(img);
		if (fstat(img->fd, &st) == 0 && st.st_nlink == 0) {
			char scname[VMB_SIDECAR_NAME_MAX];
			vmb_sidecar_name(img->ino, scname);
			if (img->writable && vmb_sidecar_remove(img->mapdir, scname, &err) < 0)
				vmb_log_msg(img->log, "%s", err.msg);
		} else if (vmb_img_persist_locked(img, VMB_SIDECAR_SYNC_FILE, &err) < 0) {
			vmb_log_msg(img->log, "%s", err.msg);
		}
		close(img->fd);
	}
	if (img->old_fd >= 0)
		close(img->old_fd);
	vmb_base_put(img->base);
	vmb_base_put(img->old_base);
	vmb_dio_destroy(&img->dio);
	if (img->locks_ready) {
		pthread_mutex_destroy(&img->wlock);
		pthread_mutex_destroy(&img->mlock);
	}
	vmb_blockmap_destroy(&img->map);
	vmb_blockmap_destroy(&img->dirty);
	free(img->name);
	free(img);
}

void vmb_img_baseref(struct vmb_image *img, struct vmb_baseref *ref)
{
	memset(ref, 0, sizeof(*ref));
	if (img->base) {
		memcpy(ref->id, img->base->id, sizeof(ref->id));
		ref->limit = img->limit;
	}
}

struct vmb_base *vmb_image_base(struct vmb_image *img, uint64_t *limit)
{
	struct vmb_base *b;

	pthread_mutex_lock(&img->mlock);
	b = img->base;
	if (limit)
		*limit = img->limit;
	pthread_mutex_unlock(&img->mlock);
	return b;
}

int vmb_img_check_writable(struct vmb_image *img, struct vmb_err *err)
{
	if (img->frozen)
		return vmb_err_set(err, EROFS, "'%s' is a read-only snapshot", img->name);
	if (!img->writable)
		return vmb_err_set(err, EBADF, "'%s' is open read-only", img->name);
	return 0;
}

uint64_t vmb_image_size(struct vmb_image *img)
{
	uint64_t s;

	pthread_mutex_lock(&img->mlock);
	s = img->size;
	pthread_mutex_unlock(&img->mlock);
	return s;
}

void vmb_image_set_direct_writes(struct vmb_image *img, int on)
{
	pthread_mutex_lock(&img->wlock);
	vmb_img_give_back(img);
	vmb_dio_destroy(&img->dio);
	vmb_dio_init(&img->dio, on && img->writable);
	pthread_mutex_unlock(&img->wlock);
}

void vmb_image_set_private(struct vmb_image *img, int on)
{
	__atomic_store_n(&img->private_file, on, __ATOMIC_RELAXED);
}

int vmb_image_fd(const struct vmb_image *img)
{
	return img->fd;
}

int vmb_image_park(struct vmb_image *img)
{
	struct stat st;
	int direct;

	if (img->frozen)
		return -EBUSY;   /* no descriptor of its own */
	pthread_mutex_lock(&img->wlock);
	if (img->fd < 0) {
		pthread_mutex_unlock(&img->wlock);
		return 0;
	}
	vmb_dio_drain(&img->dio, 0, NULL);
	/* No links: a file handle would not reopen it. A failed direct write: its
	 * error waits in the queue for fsync. */
	if (fstat(img->fd, &st) < 0 || st.st_nlink == 0 || img->dio.err) {
		pthread_mutex_unlock(&img->wlock);
		return -EBUSY;
	}
	/* The O_DIRECT descriptor, buffers and threads go too; direct writes start
	 * again with the next large write (unless they were turned off for good). */
	direct = img->dio.state >= 0;
	vmb_dio_destroy(&img->dio);
	vmb_dio_init(&img->dio, direct);
	close(img->fd);
	img->fd = -1;
	pthread_mutex_unlock(&img->wlock);
	return 0;
}

void vmb_image_unpark(struct vmb_image *img, int fd)
{
	pthread_mutex_lock(&img->wlock);
	if (img->fd >= 0)
		close(fd);
	else
		img->fd = fd;
	pthread_mutex_unlock(&img->wlock);
}


int vmb_image_writable(const struct vmb_image *img)
{
	return img->writable;
}

int vmb_image_map_copy(struct vmb_image *img, struct vmb_blockmap *dst)
{
	int r;

	pthread_mutex_lock(&img->mlock);
	r = vmb_blockmap_copy(dst, &img->map);
	pthread_mutex_unlock(&img->mlock);
	return r;
}

/* ---- changing (caller holds wlock) ---- */

int vmb_img_map_set(struct vmb_image *img, uint64_t start, uint64_t len, enum vmb_bstate st,
		   struct vmb_err *err)
{
	uint64_t f;
	int r;

	pthread_mutex_lock(&img->mlock);
	/* a delta's blocks that read the base becoming ZERO: the backing file cannot
	 * show it (see map_only) */
	if (img->base && st == VMB_ZERO && len && start < img->limit &&
	    vmb_blockmap_next(&img->map, start, VMB_M_ABSENT, &f) == 0 && f - start < len &&
	    f < img->limit)
		img->map_only = img->map_only_unsaved = 1;
	r = vmb_blockmap_set(&img->map, start, len, st);
	if (r == 0)
		img->gen++;
	pthread_mutex_unlock(&img->mlock);
	if (r < 0)
		return vmb_err_set(err, -r, "cannot update the map of '%s': %s", img->name,
				   strerror(-r));
	return 0;
}

enum vmb_bstate vmb_img_map_get(struct vmb_image *img, uint64_t blk)
{
	enum vmb_bstate st;

	pthread_mutex_lock(&img->mlock);
	st = vmb_blockmap_get(&img->map, blk, NULL);
	pthread_mutex_unlock(&img->mlock);
	return st;
}

/* Before the first change after the map was saved: append a BEGIN to its journal,
 * or remove the saved map when that fails, so that a daemon killed before the next
 * save leaves no map that could hide what was written (an untrusted or missing map
 * is rebuilt from the backing file). Caller holds wlock. */
int vmb_img_begin_change(struct vmb_image *img, struct vmb_err *err)
{
	char scname[VMB_SIDECAR_NAME_MAX];

	img->own_changed = 1;
	if (!img->on_disk)
		return 0;
	vmb_sidecar_name(img->ino, scname);
	if (img->pos.valid && vmb_sidecar_begin(img->mapdir, scname, &img->pos, NULL) == 0) {
		img->on_disk = 0;
		return 0;
	}
	img->pos.valid = 0;
	if (img->base) {
		/* A delta's saved map is never removed (its holes cannot tell ZERO from
		 * ABSENT: the rebuild needs the last committed map): saved whole, the map
		 * as it is (it describes the file: nothing changed since the check), then
		 * the BEGIN. */
		struct vmb_baseref ref;
		int r = -EIO;

		vmb_img_baseref(img, &ref);
		if (img->known_ok)
			r = vmb_sidecar_save2(img->mapdir, scname, &img->map, NULL, &img->known,
					      &ref, VMB_SIDECAR_SYNC_FILE, &img->pos, err);
		if (r == 0)
			r = vmb_sidecar_begin(img->mapdir, scname, &img->pos, err);
		if (r < 0) {
			img->pos.valid = 0;
			return vmb_err_prefix(err, "cannot change '%s': its map cannot be "
					      "journalled", img->name);
		}
		pthread_mutex_lock(&img->mlock);
		vmb_blockmap_destroy(&img->dirty);
		img->map.track = &img->dirty;
		pthread_mutex_unlock(&img->mlock);
		img->on_disk = 0;
		return 0;
	}
	if (vmb_sidecar_remove(img->mapdir, scname, err) < 0)
		return vmb_err_prefix(err, "cannot change '%s'", img->name);
	img->on_disk = 0;
	return 0;
}

int vmb_img_map_has_data(struct vmb_image *img, uint64_t start, uint64_t end)
{
	uint64_t found;
	int r;

	pthread_mutex_lock(&img->mlock);
	r = vmb_blockmap_next(&img->map, start, VMB_M_DATA, &found) == 0 && found < end;
	pthread_mutex_unlock(&img->mlock);
	return r;
}

void vmb_img_set_size(struct vmb_image *img, uint64_t size)
{
	pthread_mutex_lock(&img->mlock);
	img->size = size;
	img->gen++;
	pthread_mutex_unlock(&img->mlock);
}

/* Grow the logical size to new_size: backing size and ZERO blocks. */
int vmb_img_grow_locked(struct vmb_image *img, uint64_t new_size, struct vmb_err *err)
{
	uint64_t old = img->size;
	int r;

	if (new_size <= old)
		return 0;
	if (ftruncate(img->fd, (off_t)new_size) < 0)
		return vmb_err_sys(err, errno, "cannot extend '%s' to %llu bytes", img->name,
				   (unsigned long long)new_size);
	r = vmb_img_map_set(img, blocks_for(old), blocks_for(new_size) - blocks_for(old), VMB_ZERO, err);
	if (r < 0)
		return r;
	vmb_img_set_size(img, new_size);
	return 0;
}

/* ---- revalidation (see image.h) ---- */

/* The backing file's stamp after an own change. Caller holds wlock. While direct
 * writes are still queued the change is not complete: the stamp stays unknown
 * until a later call finds the queue empty. */
void vmb_img_refresh_known(struct vmb_image *img)
{
	if (img->map_only) {
		static const struct timespec now[2] = { { .tv_nsec = UTIME_OMIT },
							{ .tv_nsec = UTIME_NOW } };

		/* best effort: a failure leaves the times as they were (and another
		 * mount's view of the change to its next open after one that does) */
		if (futimens(img->fd, now) < 0)
			vmb_log_msg(img->log, "cannot set the modification time of '%s': %s",
				    img->name, strerror(errno));
		pthread_mutex_lock(&img->mlock);
		img->map_only = 0;
		img->gen++;   /* the stamp changes: saved under the new one */
		pthread_mutex_unlock(&img->mlock);
	}
	if (!vmb_dio_idle(&img->dio)) {
		img->known_ok = 0;
		return;
	}
	img->known_ok = vmb_stamp_fd(img->fd, &img->known, NULL) == 0;
}

/* A delta changed by someone else (revalidate_locked), when every change of this
 * image's own is in its saved map: its map from the last committed map on disk, if
 * that is this inode's over this base (the other mount's, committed at its close:
 * it names the blocks zeroed over the base, which the backing file cannot show),
 * reconciled with the backing file as at an open (vmb_img_load_map); *limit from
 * the base xattr, which the other mount may have lowered. 1 when so (*now: the stamp
 * the map was checked against), 0 when not (no such map, or own changes not saved:
 * this image is a writer of the file, and its own map the better guide). Caller
 * holds wlock. */
static int reload_committed(struct vmb_image *img, struct vmb_stamp *now,
			    struct vmb_blockmap *m, uint64_t *limit)
{
	struct vmb_baseref ref;
	struct vmb_stamp st;
	struct vmb_err e;
	int rebuilt, lost;

	if (img->own_changed)
		return 0;
	vmb_err_clear(&e);
	if (vmb_img_load_map(img->fd, img->mapdir, img->name, m, &st, &rebuilt, NULL, &ref,
			     &lost, &e) < 0 || (lost & VMB_IMG_MAP_LOST) ||
	    strcmp(ref.id, img->base->id) != 0)
		return 0;
	*now = st;
	*limit = ref.limit;
	return 1;
}

/* Caller holds wlock. 1: the backing file was changed by someone else since this
 * image's own last change (the map is rebuilt from it); 0: it was not, or that
 * cannot be told (own direct writes in flight); -errno. */
int vmb_img_revalidate_locked(struct vmb_image *img, struct vmb_err *err)
{
	struct vmb_blockmap m, old;
	struct vmb_stamp now;
	uint64_t limit = img->limit;
	int r;

	if (img->frozen)
		return 0;
	if (!img->known_ok) {
		/* Own direct writes were queued (or the stamp could not be taken): the
		 * stamp after them is taken as this image's own. A size other than the
		 * one they left is someone else's change made meanwhile (a truncate or
		 * an extension in the store, or through another mount), whose map must
		 * be rebuilt, not saved under the new stamp: it called data what is
		 * past the end now (and opens failed on that map). A change within the
		 * size cannot be told from ours (see vmbundlefs(5), SEVERAL MOUNTS). */
		uint64_t size;

		vmb_img_refresh_known(img);
		pthread_mutex_lock(&img->mlock);
		size = img->size;
		pthread_mutex_unlock(&img->mlock);
		if (!img->known_ok || img->known.size == size)
			return 0;
		now = img->known;
		goto changed;
	}
	r = vmb_stamp_fd(img->fd, &now, err);
	if (r < 0)
		return vmb_err_prefix(err, "cannot check '%s' for changes", img->name);
	if (vmb_stamp_equal(&now, &img->known))
		return 0;
changed:
	vmb_blockmap_init(&m);
	if (img->base && (r = reload_committed(img, &now, &m, &limit)) == 1) {
		r = 0;   /* the other mount's committed map (and limit) */
	} else if (img->base) {
		/* from the map as this image left it (wlock keeps it still) */
		r = vmb_img_reconcile(img->fd, now.size, &img->map, &m, err);
		if (r == 0 && now.size < img->size)
			limit = vmb_img_lower_limit(img, now.size);
	} else {
		r = vmb_sidecar_scan(img->fd, now.size, &m, err);
	}
	if (r < 0) {
		vmb_blockmap_destroy(&m);
		return vmb_err_prefix(err, "'%s' was changed outside this mount and its map "
				      "cannot be rebuilt", img->name);
	}
	pthread_mutex_lock(&img->mlock);
	old = img->map;
	img->map = m;
	img->size = now.size;
	img->limit = limit;
	img->gen++;   /* saved at the next persist, under the stamp it was built from */
	pthread_mutex_unlock(&img->mlock);
	vmb_blockmap_destroy(&old);
	img->known = now;
	/* The reservation's blocks may hold the other writer's data now: never punch
	 * them (fsck gives back what is left past the end, by its record). With
	 * nothing left past the end (a truncate freed it), the record goes too. */
	img->res_next = img->res_end = 0;
	if (img->res_recorded && !vmb_allocated_from(img->fd, blocks_for(now.size) * BS) &&
	    vmb_resrec_clear(img->fd) == 0)
		img->res_recorded = 0;
	/* A sidecar may exist (the other writer's): removed before our next change
	 * (not journalled: our journal position describes no sidecar on disk now).
	 * A delta's is left for our next save (never removed before a change). */
	img->on_disk = !img->base;
	img->pos.valid = 0;
	__atomic_store_n(&img->foreign, 1, __ATOMIC_RELEASE);
	{
		/* one for every open of a file another mount keeps changing: limited */
		static struct vmb_ratelimit rl = VMB_RATELIMIT_INIT;

		vmb_log_limited(img->log, &rl, "'%s' was changed outside this mount: its map "
				"was rebuilt from the backing file", img->name);
	}
	return 1;
}

int vmb_image_revalidate(struct vmb_image *img, int try, struct vmb_err *err)
{
	int r;

	if (__atomic_load_n(&img->private_file, __ATOMIC_RELAXED))
		return 0;   /* nobody else changes it: nothing to look for */
	if (try) {
		if (pthread_mutex_trylock(&img->wlock) != 0)
			return 0;   /* an own change is in progress: it stamps the file */
	} else {
		pthread_mutex_lock(&img->wlock);
	}
	r = vmb_img_revalidate_locked(img, err);
	pthread_mutex_unlock(&img->wlock);
	return r;
}

int vmb_image_take_foreign(struct vmb_image *img)
{
	return __atomic_exchange_n(&img->foreign, 0, __ATOMIC_ACQ_REL);
}

int vmb_image_stamp(struct vmb_image *img, struct vmb_stamp *s)
{
	int ok;

	pthread_mutex_lock(&img->wlock);
	if (!img->known_ok)
		vmb_img_refresh_known(img);
	ok = img->known_ok;
	if (ok)
		*s = img->known;
	pthread_mutex_unlock(&img->wlock);
	return ok ? 0 : -EAGAIN;
}

int vmb_image_set_times(struct vmb_image *img, const struct timespec ts[2],
			struct vmb_err *err)
{
	int r;

	if (img->frozen)
		return vmb_img_check_writable(img, err);
	pthread_mutex_lock(&img->wlock);
	r = vmb_img_revalidate_locked(img, err);
	if (r >= 0) {
		r = 0;
		if (futimens(img->fd, ts) < 0)
			r = vmb_err_sys(err, errno, "cannot set times");
		vmb_img_refresh_known(img);
		pthread_mutex_lock(&img->mlock);
		img->gen++;   /* the stamp changed: save the map under the new one */
		pthread_mutex_unlock(&img->mlock);
	}
	pthread_mutex_unlock(&img->wlock);
	return r;
}


int vmb_image_sync(struct vmb_image *img, int datasync, struct vmb_err *err)
{
	int r = 0;

	if (img->frozen)
		return 0;   /* nothing of its own to write */
	pthread_mutex_lock(&img->wlock);
	r = drain_err(img, err);
	if (r < 0)
		(void)fsync(img->fd);   /* the rest still goes out; the failure is reported */
	else if ((datasync ? fdatasync(img->fd) : fsync(img->fd)) < 0)
		r = vmb_err_sys(err, errno, "cannot sync '%s'", img->name);
	else
		r = vmb_img_persist_locked(img, VMB_SIDECAR_SYNC_DIR, err);
	pthread_mutex_unlock(&img->wlock);
	return r;
}

