/* image.c - a sparse file: backing file + block map (see image.h). */
#include "config.h"
#include "image/image.h"
#include "map/sidecar.h"
#include "image/dio.h"
#include "image/resrec.h"
#include "base/fdio.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BS ((uint64_t)VMB_BLOCK_SIZE)
#define MAX_BYTES (VMB_BLOCK_MAX * BS)   /* 2^63: the largest file size */

struct vmb_image {
	int fd;                  /* backing file, owned */
	int mapdir;              /* borrowed */
	int writable;
	uint64_t ino;
	char *name;              /* for messages, owned */
	const struct vmb_log *log;
	pthread_mutex_t wlock;   /* serialises changes */
	pthread_mutex_t mlock;   /* guards map, size, gen */
	struct vmb_blockmap map;
	uint64_t size;
	uint64_t gen;            /* bumped by every change (mlock) */
	uint64_t saved_gen;      /* gen of the map last saved (wlock) */
	int on_disk;             /* the sidecar holds this map (wlock) */
	/* Blocks changed since the map was last saved or loaded: map.track points here
	 * while they are known (blockmap.h; a map replaced wholesale has no track, and
	 * is then saved whole). With pos, a save appends only these to the journal. */
	struct vmb_blockmap dirty;   /* (mlock) */
	struct vmb_sidecar_pos pos;  /* the saved map on disk (wlock) */
	int locks_ready;
	struct vmb_dio dio;      /* large aligned writes (wlock) */
	uint64_t res_next;       /* reserved run: where its next write starts (wlock) */
	uint64_t res_end;        /* end of the space reserved ahead, 0: none (wlock) */
	int res_recorded;        /* its record is on the backing file (resrec.h) (wlock) */
	/* Revalidation (image.h, vmb_image_revalidate): the backing file's stamp after
	 * this image's own last change, which the map describes. known_ok is 0 while
	 * an own change is not stamped yet (direct writes still queued). (wlock) */
	struct vmb_stamp known;
	int known_ok;
	int foreign;             /* a change by someone else was found and not yet
				  * taken by vmb_image_take_foreign (atomic) */
};

static void give_back(struct vmb_image *img);
static int revalidate_locked(struct vmb_image *img, struct vmb_err *err);
static void refresh_known(struct vmb_image *img);

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

static uint64_t blocks_for(uint64_t bytes)
{
	return (bytes + BS - 1) / BS;
}

static int is_zero(const unsigned char *p, size_t n)
{
	if (n == 0)
		return 1;
	if (p[0])
		return 0;
	return memcmp(p, p + 1, n - 1) == 0;
}

/* Load the map of backing file fd: sidecar if its stamp matches, else a scan. */
static int load_map(int fd, int mapdir, const char *name, struct vmb_blockmap *m,
		    struct vmb_stamp *stamp, int *rebuilt, struct vmb_sidecar_pos *pos,
		    struct vmb_err *err)
{
	struct vmb_stamp now, saved;
	char scname[VMB_SIDECAR_NAME_MAX];
	int r;

	*rebuilt = 0;
	r = vmb_stamp_fd(fd, &now, err);
	if (r < 0)
		return vmb_err_prefix(err, "cannot open '%s'", name);
	*stamp = now;
	vmb_sidecar_name(now.ino, scname);
	r = vmb_sidecar_load(mapdir, scname, m, &saved, pos, err);
	if (r == 0 && vmb_stamp_equal(&now, &saved)) {
		uint64_t last;
		if (vmb_blockmap_next(m, blocks_for(now.size), VMB_M_DATA | VMB_M_ZERO,
				      &last) == 0)
			return vmb_err_set(err, EIO, "cannot open '%s': sidecar map is "
					   "corrupt (extent past the end of the file)", name);
		return 0;
	}
	if (pos)
		pos->valid = 0;   /* the disk does not hold the map used from here */
	if (r < 0 && r != -ENOENT && r != -ESTALE) {
		vmb_err_prefix(err, "cannot open '%s'", name);
		if (r != -EBADMSG && r != -EPROTONOSUPPORT)
			return r;
		if (err)
			err->code = EIO;   /* a damaged map is an I/O error to the reader */
		return -EIO;
	}
	/* Missing, or stale (changed behind the map): the backing file is the truth. */
	*rebuilt = 1;
	r = vmb_sidecar_scan(fd, now.size, m, err);
	if (r < 0)
		return vmb_err_prefix(err, "cannot open '%s': cannot rebuild its map", name);
	return 0;
}

int vmb_image_load_map(int fd, int mapdir_fd, const char *name, struct vmb_blockmap *m,
		       uint64_t *size, int *rebuilt, struct vmb_err *err)
{
	struct vmb_stamp st;
	int r = load_map(fd, mapdir_fd, name, m, &st, rebuilt, NULL, err);

	if (r == 0)
		*size = st.size;
	return r;
}

int vmb_image_open(struct vmb_image **out, int fd, int mapdir_fd, const char *name,
		   const struct vmb_log *log, struct vmb_err *err)
{
	struct vmb_image *img;
	int rebuilt, fl, r;

	*out = NULL;
	img = calloc(1, sizeof(*img));
	if (!img)
		return vmb_err_set(err, ENOMEM, "cannot open '%s': out of memory", name);
	img->fd = -1;
	vmb_dio_init(&img->dio, 0);
	vmb_blockmap_init(&img->map);
	vmb_blockmap_init(&img->dirty);
	img->name = strdup(name);
	if (!img->name) {
		r = vmb_err_set(err, ENOMEM, "cannot open '%s': out of memory", name);
		goto out;
	}
	pthread_mutex_init(&img->wlock, NULL);
	pthread_mutex_init(&img->mlock, NULL);
	img->locks_ready = 1;
	r = load_map(fd, mapdir_fd, name, &img->map, &img->known, &rebuilt, &img->pos, err);
	if (r < 0)
		goto out;
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
static int persist_locked(struct vmb_image *img, int durable, struct vmb_err *err)
{
	char scname[VMB_SIDECAR_NAME_MAX];
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
	r = revalidate_locked(img, err);
	if (r < 0)
		goto fail;
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
	r = vmb_sidecar_save(img->mapdir, scname, &img->map,
			     img->map.track == &img->dirty ? &img->dirty : NULL, &st, durable,
			     &img->pos, err);
	if (r == 0) {
		pthread_mutex_lock(&img->mlock);
		vmb_blockmap_destroy(&img->dirty);
		img->map.track = &img->dirty;
		pthread_mutex_unlock(&img->mlock);
		img->saved_gen = gen;
		img->on_disk = 1;
		return 0;
	}
fail:
	return vmb_err_prefix(err, "cannot save the map of '%s'", img->name);
}

int vmb_image_persist(struct vmb_image *img, struct vmb_err *err)
{
	int r;

	pthread_mutex_lock(&img->wlock);
	r = persist_locked(img, VMB_SIDECAR_SYNC_FILE, err);
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
		if (revalidate_locked(img, &err) < 0) {   /* before give_back punches */
			vmb_log_msg(img->log, "%s", err.msg);
			vmb_err_clear(&err);
		}
		if (img->writable)
			give_back(img);
		if (fstat(img->fd, &st) == 0 && st.st_nlink == 0) {
			char scname[VMB_SIDECAR_NAME_MAX];
			vmb_sidecar_name(img->ino, scname);
			if (img->writable && vmb_sidecar_remove(img->mapdir, scname, &err) < 0)
				vmb_log_msg(img->log, "%s", err.msg);
		} else if (persist_locked(img, VMB_SIDECAR_SYNC_FILE, &err) < 0) {
			vmb_log_msg(img->log, "%s", err.msg);
		}
		close(img->fd);
	}
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

uint64_t vmb_image_size(struct vmb_image *img)
{
	uint64_t s;

	pthread_mutex_lock(&img->mlock);
	s = img->size;
	pthread_mutex_unlock(&img->mlock);
	return s;
}

uint64_t vmb_image_alloc_bytes(struct vmb_image *img)
{
	uint64_t b;

	pthread_mutex_lock(&img->mlock);
	b = img->map.data_blocks * BS;
	pthread_mutex_unlock(&img->mlock);
	return b;
}

void vmb_image_set_direct_writes(struct vmb_image *img, int on)
{
	pthread_mutex_lock(&img->wlock);
	give_back(img);
	vmb_dio_destroy(&img->dio);
	vmb_dio_init(&img->dio, on && img->writable);
	pthread_mutex_unlock(&img->wlock);
}

int vmb_image_fd(const struct vmb_image *img)
{
	return img->fd;
}

int vmb_image_park(struct vmb_image *img)
{
	struct stat st;
	int direct;

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

/* ---- reading ---- */

/* Bytes of file data read from backing files by this process: pread into a buffer,
 * or handed out for splicing (vmb_image_all_data). Holes never count. */
static uint64_t backing_read_bytes;

uint64_t vmb_image_backing_read_bytes(void)
{
	return __atomic_load_n(&backing_read_bytes, __ATOMIC_RELAXED);
}

int vmb_image_all_data(struct vmb_image *img, uint64_t off, size_t len, size_t *n)
{
	uint64_t run, end;
	enum vmb_bstate st;

	pthread_mutex_lock(&img->mlock);
	if (off >= img->size || len == 0) {
		pthread_mutex_unlock(&img->mlock);
		return 0;
	}
	end = img->size - off < len ? img->size : off + len;
	st = vmb_blockmap_get(&img->map, off / BS, &run);
	pthread_mutex_unlock(&img->mlock);
	if (st != VMB_DATA || (run < VMB_BLOCK_MAX && (off / BS + run) * BS < end))
		return 0;
	vmb_dio_wait_range(&img->dio, off, end - off);
	*n = (size_t)(end - off);
	__atomic_add_fetch(&backing_read_bytes, *n, __ATOMIC_RELAXED);
	return 1;
}

/* [off, off + len) lies within the size and is all DATA. */
static int covered_by_data(struct vmb_image *img, uint64_t off, size_t len)
{
	uint64_t run;
	int r;

	pthread_mutex_lock(&img->mlock);
	r = off < img->size && len <= img->size - off &&
	    vmb_blockmap_get(&img->map, off / BS, &run) == VMB_DATA &&
	    (run >= VMB_BLOCK_MAX || (off / BS + run) * BS >= off + len);
	pthread_mutex_unlock(&img->mlock);
	return r;
}

ssize_t vmb_image_read(struct vmb_image *img, void *buf, size_t len, uint64_t off,
		       int *holes_only, struct vmb_err *err)
{
	uint64_t size, pos, end;
	int any_data = 0;

	if (holes_only)
		*holes_only = 0;
	if (len == 0)
		return 0;
	/* A range the map does not call all data (or past its end) may have been
	 * written by someone else: one statx finds out, no data is read. */
	if (!covered_by_data(img, off, len)) {
		int r = vmb_image_revalidate(img, 1, err);
		if (r < 0)
			return r;
	}
	pthread_mutex_lock(&img->mlock);
	size = img->size;
	pthread_mutex_unlock(&img->mlock);
	if (off >= size)
		return 0;
	if (len > size - off)
		len = (size_t)(size - off);
	end = off + len;
	vmb_dio_wait_range(&img->dio, off, len);

	/* First pass: is there any data at all? (Holes-only reads touch nothing.) */
	if (holes_only) {
		uint64_t found;
		pthread_mutex_lock(&img->mlock);
		any_data = vmb_blockmap_next(&img->map, off / BS, VMB_M_DATA, &found) == 0 &&
			   found * BS < end;
		pthread_mutex_unlock(&img->mlock);
		if (!any_data) {
			*holes_only = 1;
			return (ssize_t)len;
		}
	}
	for (pos = off; pos < end;) {
		uint64_t run, stop;
		enum vmb_bstate st;

		pthread_mutex_lock(&img->mlock);
		st = vmb_blockmap_get(&img->map, pos / BS, &run);
		pthread_mutex_unlock(&img->mlock);
		stop = (pos / BS + run) * BS;
		if (run >= VMB_BLOCK_MAX || stop > end)
			stop = end;
		if (st == VMB_DATA) {
			ssize_t n = vmb_pread_full(img->fd, (char *)buf + (pos - off),
					       (size_t)(stop - pos), pos);
			if (n < 0)
				return vmb_err_sys(err, (int)-n, "cannot read '%s' at offset %llu",
						   img->name, (unsigned long long)pos);
			__atomic_add_fetch(&backing_read_bytes, stop - pos, __ATOMIC_RELAXED);
		} else {
			memset((char *)buf + (pos - off), 0, (size_t)(stop - pos));
		}
		pos = stop;
	}
	return (ssize_t)len;
}

/* ---- changing (caller holds wlock) ---- */

static int map_set(struct vmb_image *img, uint64_t start, uint64_t len, enum vmb_bstate st,
		   struct vmb_err *err)
{
	int r;

	pthread_mutex_lock(&img->mlock);
	r = vmb_blockmap_set(&img->map, start, len, st);
	if (r == 0)
		img->gen++;
	pthread_mutex_unlock(&img->mlock);
	if (r < 0)
		return vmb_err_set(err, -r, "cannot update the map of '%s': %s", img->name,
				   strerror(-r));
	return 0;
}

static enum vmb_bstate map_get(struct vmb_image *img, uint64_t blk)
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
static int begin_change(struct vmb_image *img, struct vmb_err *err)
{
	char scname[VMB_SIDECAR_NAME_MAX];

	if (!img->on_disk)
		return 0;
	vmb_sidecar_name(img->ino, scname);
	if (img->pos.valid && vmb_sidecar_begin(img->mapdir, scname, &img->pos, NULL) == 0) {
		img->on_disk = 0;
		return 0;
	}
	img->pos.valid = 0;
	if (vmb_sidecar_remove(img->mapdir, scname, err) < 0)
		return vmb_err_prefix(err, "cannot change '%s'", img->name);
	img->on_disk = 0;
	return 0;
}

static int map_has_data(struct vmb_image *img, uint64_t start, uint64_t end)
{
	uint64_t found;
	int r;

	pthread_mutex_lock(&img->mlock);
	r = vmb_blockmap_next(&img->map, start, VMB_M_DATA, &found) == 0 && found < end;
	pthread_mutex_unlock(&img->mlock);
	return r;
}

static void set_size(struct vmb_image *img, uint64_t size)
{
	pthread_mutex_lock(&img->mlock);
	img->size = size;
	img->gen++;
	pthread_mutex_unlock(&img->mlock);
}

/* Grow the logical size to new_size: backing size and ZERO blocks. */
static int grow_locked(struct vmb_image *img, uint64_t new_size, struct vmb_err *err)
{
	uint64_t old = img->size;
	int r;

	if (new_size <= old)
		return 0;
	if (ftruncate(img->fd, (off_t)new_size) < 0)
		return vmb_err_sys(err, errno, "cannot extend '%s' to %llu bytes", img->name,
				   (unsigned long long)new_size);
	r = map_set(img, blocks_for(old), blocks_for(new_size) - blocks_for(old), VMB_ZERO, err);
	if (r < 0)
		return r;
	set_size(img, new_size);
	return 0;
}

/* Space for a direct write is reserved before the write is accepted (dio.h), so
 * ENOSPC reaches the writer. Every fallocate waits for all the direct writes in
 * flight (ext4, XFS), so a write that extends the file reserves RESERVE_AHEAD more
 * past its end (beyond EOF, KEEP_SIZE): the writes that continue the run, as a
 * sequential writer's do, need none. What no data went to is given back by
 * trim_reserved: when a write leaves the run, and before truncate, fallocate,
 * copy_file_range and the last close. A crash can leave it reserved past EOF,
 * where nothing reads it: the reservation ahead is recorded on the backing file
 * before it is made (resrec.h), and fsck gives back only recorded space. Someone
 * else's preallocation past EOF (fallocate --keep-size, through the mount or
 * directly) is never given back: with one there, no space is reserved ahead, and a
 * reservation is not truncated away when allocated blocks lie past its end. */
#define RESERVE_AHEAD (64u << 20)

/* Give back the reservation's unused part: past EOF (a truncate to the same size)
 * and, below it, blocks that hold no data. Caller holds wlock. */
static int trim_reserved(struct vmb_image *img)
{
	uint64_t a = img->res_next, b = img->res_end, lim, blk, run;
	struct stat st;
	int r = 0, changed = 0;

	if (!b)
		return 0;
	img->res_next = img->res_end = 0;
	vmb_image_drain(img);   /* every accepted byte is in the file (and its size) */
	if (fstat(img->fd, &st) < 0)
		return -errno;
	/* A truncate to the same size frees everything past EOF: not when blocks
	 * past the reservation are someone else's (then ours stays too). */
	if ((uint64_t)st.st_size < b && !vmb_allocated_from(img->fd, blocks_for(b) * BS)) {
		if (ftruncate(img->fd, st.st_size) < 0)
			r = -errno;
		changed = 1;
	}
	if (img->res_recorded && r == 0) {
		r = vmb_resrec_clear(img->fd);
		img->res_recorded = 0;
	}
	lim = (uint64_t)st.st_size < b ? (uint64_t)st.st_size : b;
	pthread_mutex_lock(&img->mlock);
	for (blk = blocks_for(a); r == 0 && blk * BS < lim; blk += run) {
		enum vmb_bstate bs = vmb_blockmap_get(&img->map, blk, &run);
		uint64_t e = (blk + run) * BS < lim ? (blk + run) * BS : lim;
		if (bs == VMB_DATA || e <= blk * BS)
			continue;
		if (fallocate(img->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			      (off_t)(blk * BS), (off_t)(e - blk * BS)) < 0)
			r = -errno;
		changed = 1;
	}
	if (changed)
		img->gen++;   /* the backing file's times changed: save the map again */
	pthread_mutex_unlock(&img->mlock);
	if (changed)
		refresh_known(img);
	return r;
}

/* trim_reserved, its failure logged. Caller holds wlock. */
static void give_back(struct vmb_image *img)
{
	int r = trim_reserved(img);

	if (r < 0)
		vmb_log_msg(img->log, "cannot give back space reserved for '%s': %s",
			    img->name, strerror(-r));
}

void vmb_image_settle(struct vmb_image *img)
{
	struct vmb_err err;

	vmb_err_clear(&err);
	pthread_mutex_lock(&img->wlock);
	vmb_image_drain(img);
	if (revalidate_locked(img, &err) < 0)
		vmb_log_msg(img->log, "%s", err.msg);
	give_back(img);
	pthread_mutex_unlock(&img->wlock);
}

/* May space be reserved ahead up to new_end? Not when blocks are allocated past EOF
 * beyond what this run reserved (someone's preallocation), nor without a record of
 * it (set here, before the reservation). Caller holds wlock. */
static int reserve_ahead_ok(struct vmb_image *img, uint64_t old_size, uint64_t new_end)
{
	uint64_t ours = blocks_for(old_size) * BS;

	if (img->res_end && blocks_for(img->res_end) * BS > ours)
		ours = blocks_for(img->res_end) * BS;
	if (vmb_allocated_from(img->fd, ours))
		return 0;
	if (vmb_resrec_set(img->fd, new_end) < 0)
		return 0;
	img->res_recorded = 1;
	return 1;
}

/* ---- revalidation (see image.h) ---- */

/* The backing file's stamp after an own change. Caller holds wlock. While direct
 * writes are still queued the change is not complete: the stamp stays unknown
 * until a later call finds the queue empty. */
static void refresh_known(struct vmb_image *img)
{
	if (!vmb_dio_idle(&img->dio)) {
		img->known_ok = 0;
		return;
	}
	img->known_ok = vmb_stamp_fd(img->fd, &img->known, NULL) == 0;
}

/* Caller holds wlock. 1: the backing file was changed by someone else since this
 * image's own last change (the map is rebuilt from it); 0: it was not, or that
 * cannot be told (own direct writes in flight); -errno. */
static int revalidate_locked(struct vmb_image *img, struct vmb_err *err)
{
	struct vmb_blockmap m, old;
	struct vmb_stamp now;
	int r;

	if (!img->known_ok) {
		refresh_known(img);
		return 0;
	}
	r = vmb_stamp_fd(img->fd, &now, err);
	if (r < 0)
		return vmb_err_prefix(err, "cannot check '%s' for changes", img->name);
	if (vmb_stamp_equal(&now, &img->known))
		return 0;
	vmb_blockmap_init(&m);
	r = vmb_sidecar_scan(img->fd, now.size, &m, err);
	if (r < 0) {
		vmb_blockmap_destroy(&m);
		return vmb_err_prefix(err, "'%s' was changed outside this mount and its map "
				      "cannot be rebuilt", img->name);
	}
	pthread_mutex_lock(&img->mlock);
	old = img->map;
	img->map = m;
	img->size = now.size;
	img->gen++;   /* saved at the next persist, under the stamp it was built from */
	pthread_mutex_unlock(&img->mlock);
	vmb_blockmap_destroy(&old);
	img->known = now;
	/* The reservation's blocks may hold the other writer's data now: never punch
	 * them (fsck gives back what is left past the end). */
	img->res_next = img->res_end = 0;
	/* A sidecar may exist (the other writer's): removed before our next change
	 * (not journalled: our journal position describes no sidecar on disk now). */
	img->on_disk = 1;
	img->pos.valid = 0;
	__atomic_store_n(&img->foreign, 1, __ATOMIC_RELEASE);
	vmb_log_msg(img->log, "'%s' was changed outside this mount: its map was rebuilt "
		    "from the backing file", img->name);
	return 1;
}

int vmb_image_revalidate(struct vmb_image *img, int try, struct vmb_err *err)
{
	int r;

	if (try) {
		if (pthread_mutex_trylock(&img->wlock) != 0)
			return 0;   /* an own change is in progress: it stamps the file */
	} else {
		pthread_mutex_lock(&img->wlock);
	}
	r = revalidate_locked(img, err);
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
		refresh_known(img);
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

	pthread_mutex_lock(&img->wlock);
	r = revalidate_locked(img, err);
	if (r >= 0) {
		r = 0;
		if (futimens(img->fd, ts) < 0)
			r = vmb_err_sys(err, errno, "cannot set times");
		refresh_known(img);
		pthread_mutex_lock(&img->mlock);
		img->gen++;   /* the stamp changed: save the map under the new one */
		pthread_mutex_unlock(&img->mlock);
	}
	pthread_mutex_unlock(&img->wlock);
	return r;
}

/* Reserve [off, off+len) for a direct write (see RESERVE_AHEAD). 0, or -errno with
 * nothing reserved (-EOPNOTSUPP: the filesystem cannot). Caller holds wlock. */
static int reserve(struct vmb_image *img, uint64_t off, size_t len, uint64_t old_size)
{
	uint64_t end = off + len, from = off;

	if (img->res_end && off == img->res_next) {
		if (end <= img->res_end) {
			img->res_next = end;
			return 0;
		}
		from = img->res_end;   /* the run goes on past its reservation */
	} else {
		give_back(img);
	}
	if (end > old_size && reserve_ahead_ok(img, old_size, end + RESERVE_AHEAD) &&
	    fallocate(img->fd, FALLOC_FL_KEEP_SIZE, (off_t)from,
		      (off_t)(end + RESERVE_AHEAD - from)) == 0) {
		img->res_next = end;
		img->res_end = end + RESERVE_AHEAD;
		return 0;
	}
	/* Not extending, too little room for more than this write, someone's space
	 * past EOF, or no record possible. */
	if (img->res_recorded && !img->res_end) {   /* recorded, then not reserved */
		vmb_resrec_clear(img->fd);
		img->res_recorded = 0;
	}
	if (fallocate(img->fd, FALLOC_FL_KEEP_SIZE, (off_t)from, (off_t)(end - from)) < 0)
		return -errno;
	if (img->res_end) {   /* still the run; its reservation ends here now */
		img->res_next = end;
		if (img->res_end < end)
			img->res_end = end;
	}
	return 0;
}

/* Write data: large aligned runs directly (dio.h), the rest through the page cache. */
static int write_data(struct vmb_image *img, const void *buf, size_t len, uint64_t off,
		      uint64_t old_size, size_t *done)
{
	int r;

	*done = 0;
	if (vmb_dio_eligible(&img->dio, img->fd, off, len)) {
		r = reserve(img, off, len, old_size);
		if (r == 0) {
			vmb_dio_pwrite(&img->dio, buf, len, off);
			*done = len;
			return 0;
		}
		if (r != -EOPNOTSUPP && r != -EINVAL && r != -ENOSYS)
			return r;
		vmb_dio_disable(&img->dio);   /* cannot reserve: through the page cache */
	}
	/* After the queued writes this one overlaps. */
	vmb_dio_wait_range(&img->dio, off, len);
	return vmb_pwrite_full(img->fd, buf, len, off, done);
}

/* Bytes [a, b) within the size become zeros: whole blocks are punched and marked ZERO,
 * partial edges of DATA blocks get zeros written. */
static int zero_locked(struct vmb_image *img, uint64_t a, uint64_t b, struct vmb_err *err)
{
	uint64_t A, B, edge[2][2];
	int i, r;

	vmb_dio_wait_range(&img->dio, a, b - a);
	if (b > img->size)
		b = img->size;
	if (a >= b)
		return 0;
	A = blocks_for(a);
	B = (b == img->size) ? blocks_for(b) : b / BS;
	if (A < B) {
		if (map_has_data(img, A, B)) {
			/* To the end of the last block, past the size: a punch that ends
			 * at an unaligned size only zeroes the last block and leaves it
			 * allocated (a rebuilt map would call it data). */
			if (fallocate(img->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				      (off_t)(A * BS), (off_t)((B - A) * BS)) < 0)
				return vmb_err_sys(err, errno, "cannot punch a hole in '%s' at "
						   "offset %llu", img->name,
						   (unsigned long long)(A * BS));
		}
		r = map_set(img, A, B - A, VMB_ZERO, err);
		if (r < 0)
			return r;
		edge[0][0] = a; edge[0][1] = A * BS;
		edge[1][0] = B * BS; edge[1][1] = b;
	} else {   /* inside one or two blocks, no whole block */
		edge[0][0] = a; edge[0][1] = b;
		edge[1][0] = b; edge[1][1] = b;
	}
	for (i = 0; i < 2; i++) {
		uint64_t s = edge[i][0], e = edge[i][1];
		while (s < e) {
			uint64_t blk_end = (s / BS + 1) * BS, stop = e < blk_end ? e : blk_end;
			if (map_get(img, s / BS) == VMB_DATA) {
				static const unsigned char zeros[VMB_BLOCK_SIZE];
				size_t done;
				r = vmb_pwrite_full(img->fd, zeros, (size_t)(stop - s), s, &done);
				if (r < 0)
					return vmb_err_sys(err, -r, "cannot write zeros to '%s' at "
							   "offset %llu", img->name,
							   (unsigned long long)s);
			}
			s = stop;
		}
	}
	return 0;
}

enum piece { P_DATA, P_ZERO, P_SKIP };

/* Whether the bytes of DATA block blk outside [pos, stop), within the size, read
 * as zeros in the backing file (the old bytes a zero write into part of the block
 * keeps). A read error counts as "not zero": the piece is then written as data. */
static int rest_is_zero(struct vmb_image *img, uint64_t blk, uint64_t pos, uint64_t stop)
{
	unsigned char b[VMB_BLOCK_SIZE];
	uint64_t bstart = blk * BS, bend = bstart + BS, size;
	ssize_t n;

	pthread_mutex_lock(&img->mlock);
	size = img->size;
	pthread_mutex_unlock(&img->mlock);
	if (bend > size)
		bend = size;
	vmb_dio_wait_range(&img->dio, bstart, bend - bstart);
	/* Past the backing file's end (a write extending the file) reads as zeros. */
	n = vmb_pread_full(img->fd, b, (size_t)(bend - bstart), bstart);
	if (n < 0)
		return 0;
	memset(b + n, 0, (size_t)(bend - bstart) - (size_t)n);
	return is_zero(b, (size_t)(pos - bstart)) &&
	       (stop >= bend || is_zero(b + (stop - bstart), (size_t)(bend - stop)));
}

/* Classify the piece of a write starting at pos (at most to the end of its block).
 * P_ZERO: the whole block reads as zeros after the write (the caller widens the
 * piece to the block, within the size). */
static enum piece classify(struct vmb_image *img, const unsigned char *p, uint64_t pos,
			   uint64_t end, uint64_t *stop)
{
	uint64_t blk = pos / BS, blk_end = (blk + 1) * BS;
	int full;

	*stop = end < blk_end ? end : blk_end;
	if (!is_zero(p, (size_t)(*stop - pos)))
		return P_DATA;
	full = pos == blk * BS && *stop == blk_end;
	if (full)
		return P_ZERO;
	/* Zeros into part of a block that already reads as zeros change nothing. */
	if (map_get(img, blk) != VMB_DATA)
		return P_SKIP;
	/* Zeros into part of a data block whose other bytes are zeros too: the block
	 * becomes ZERO (restic's unaligned zero runs after fallocate). */
	return rest_is_zero(img, blk, pos, *stop) ? P_ZERO : P_DATA;
}

ssize_t vmb_image_write(struct vmb_image *img, const void *buf, size_t len, uint64_t off,
			struct vmb_err *err)
{
	const unsigned char *p = buf;
	uint64_t end = off + len, pos, written = 0, old_size, bsize;
	int r = 0;

	if (len == 0)
		return 0;
	if (!img->writable)
		return vmb_err_set(err, EBADF, "'%s' is open read-only", img->name);
	if (end < off || end > MAX_BYTES)
		return vmb_err_set(err, EFBIG, "cannot write '%s' past %llu bytes", img->name,
				   (unsigned long long)(VMB_BLOCK_MAX * BS));
	pthread_mutex_lock(&img->wlock);
	old_size = bsize = img->size;
	r = begin_change(img, err);
	if (r < 0)
		goto out;
	if (end > old_size) {
		/* The blocks past the old end read as zeros until written; the backing
		 * file is extended by the data itself, or at the end. */
		r = map_set(img, blocks_for(old_size), blocks_for(end) - blocks_for(old_size),
			    VMB_ZERO, err);
		if (r < 0)
			goto out;
		set_size(img, end);
	}
	for (pos = off; pos < end;) {
		uint64_t stop, s2;
		enum piece kind = classify(img, p + (pos - off), pos, end, &stop);

		/* Extend the run while the next pieces are of the same kind. */
		while (stop < end && classify(img, p + (stop - off), stop, end, &s2) == kind)
			stop = s2;
		if (kind == P_DATA) {
			size_t done;
			r = write_data(img, p + (pos - off), (size_t)(stop - pos), pos, old_size, &done);
			if (done > 0) {
				int r2 = map_set(img, pos / BS, blocks_for(pos + done) - pos / BS,
						 VMB_DATA, err);
				if (pos + done > bsize)
					bsize = pos + done;
				if (r2 < 0 && r == 0)
					r = r2;
			}
			written += done;
			if (r < 0) {
				if (!err || err->code == 0)
					vmb_err_sys(err, -r, "cannot write '%s' at offset %llu",
						    img->name, (unsigned long long)(pos + done));
				break;
			}
		} else if (kind == P_ZERO) {
			/* Whole blocks: a partial block at either end is all zeros. */
			uint64_t a = pos / BS * BS, b = blocks_for(stop) * BS;
			r = zero_locked(img, a, b < img->size ? b : img->size, err);
			if (r < 0)
				break;
			written += stop - pos;
		} else {
			written += stop - pos;
		}
		pos = stop;
	}
	if (end > old_size) {
		/* On failure the size stays where the written bytes end (never below the
		 * old size), as on a local filesystem. */
		uint64_t want = r < 0 ? (off + written > old_size ? off + written : old_size) : end;
		if (bsize < want && ftruncate(img->fd, (off_t)want) < 0) {
			int e = errno;
			if (r == 0)
				r = vmb_err_sys(err, e, "cannot extend '%s' to %llu bytes",
						img->name, (unsigned long long)want);
			want = bsize > old_size ? bsize : old_size;
			if (written > want - off)
				written = want > off ? want - off : 0;
		}
		if (want < end) {
			pthread_mutex_lock(&img->mlock);
			vmb_blockmap_truncate(&img->map, blocks_for(want));
			img->size = want;
			img->gen++;
			pthread_mutex_unlock(&img->mlock);
		}
	}
out:
	refresh_known(img);   /* one statx; none while direct writes are queued */
	pthread_mutex_unlock(&img->wlock);
	if (r < 0 && written == 0)
		return r;
	return (ssize_t)written;
}

int vmb_image_truncate(struct vmb_image *img, uint64_t size, struct vmb_err *err)
{
	int r = 0;

	if (!img->writable)
		return vmb_err_set(err, EBADF, "'%s' is open read-only", img->name);
	if (size > MAX_BYTES)
		return vmb_err_set(err, EFBIG, "cannot truncate '%s' to %llu bytes", img->name,
				   (unsigned long long)size);
	pthread_mutex_lock(&img->wlock);
	vmb_image_drain(img);
	r = revalidate_locked(img, err);
	if (r < 0)
		goto out;
	r = 0;
	give_back(img);
	if (size != img->size)
		r = begin_change(img, err);
	if (r < 0) {
		/* nothing changed */
	} else if (size > img->size) {
		r = grow_locked(img, size, err);
	} else if (size < img->size) {
		if (ftruncate(img->fd, (off_t)size) < 0) {
			r = vmb_err_sys(err, errno, "cannot truncate '%s' to %llu bytes",
					img->name, (unsigned long long)size);
		} else {
			pthread_mutex_lock(&img->mlock);
			vmb_blockmap_truncate(&img->map, blocks_for(size));
			img->size = size;
			img->gen++;
			pthread_mutex_unlock(&img->mlock);
		}
	}
	refresh_known(img);
out:
	pthread_mutex_unlock(&img->wlock);
	return r;
}

/* fallocate mode 0 / KEEP_SIZE: reserve space in the backing file; the reserved
 * blocks become DATA (they are allocated and read as zeros from the backing). */
static int reserve_locked(struct vmb_image *img, int mode, uint64_t off, uint64_t len,
			  struct vmb_err *err)
{
	uint64_t end = off + len, lim;
	int r;

	/* A user's own space past EOF: a record left by a killed daemon must not make
	 * fsck give it back (give_back has removed this image's own). */
	if ((mode & FALLOC_FL_KEEP_SIZE) && end > img->size && !img->res_recorded)
		vmb_resrec_clear(img->fd);
	if (fallocate(img->fd, mode, (off_t)off, (off_t)len) < 0)
		return vmb_err_sys(err, errno, "cannot allocate %llu bytes in '%s' at offset %llu",
				   (unsigned long long)len, img->name, (unsigned long long)off);
	if (!(mode & FALLOC_FL_KEEP_SIZE) && end > img->size) {
		r = map_set(img, blocks_for(img->size),
			    blocks_for(end) - blocks_for(img->size), VMB_ZERO, err);
		if (r < 0)
			return r;
		set_size(img, end);
	}
	lim = end < img->size ? end : img->size;
	if (off < lim)
		return map_set(img, off / BS, blocks_for(lim) - off / BS, VMB_DATA, err);
	return 0;
}

int vmb_image_fallocate(struct vmb_image *img, int mode, uint64_t off, uint64_t len,
			struct vmb_err *err)
{
	uint64_t end = off + len;
	int r = 0;

	if (!img->writable)
		return vmb_err_set(err, EBADF, "'%s' is open read-only", img->name);
	if (len == 0)
		return vmb_err_set(err, EINVAL, "fallocate on '%s': bad range", img->name);
	if (end < off)
		return vmb_err_set(err, EFBIG, "fallocate on '%s' past %llu bytes", img->name,
				   (unsigned long long)MAX_BYTES);
	if (end > MAX_BYTES)
		return vmb_err_set(err, EFBIG, "fallocate on '%s' past %llu bytes", img->name,
				   (unsigned long long)(VMB_BLOCK_MAX * BS));
	pthread_mutex_lock(&img->wlock);
	vmb_image_drain(img);
	r = revalidate_locked(img, err);
	if (r >= 0) {
		give_back(img);
		r = begin_change(img, err);
	}
	if (r < 0)
		mode = -1;   /* skip to the end */
	switch (mode) {
	case -1:
		break;
	case 0:
	case FALLOC_FL_KEEP_SIZE:
		r = reserve_locked(img, mode, off, len, err);
		break;
	case FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE:
		r = zero_locked(img, off, end, err);
		break;
	case FALLOC_FL_ZERO_RANGE:
	case FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE:
		r = zero_locked(img, off, end, err);
		if (r == 0 && !(mode & FALLOC_FL_KEEP_SIZE) && end > img->size)
			r = grow_locked(img, end, err);
		break;
	default:
		r = vmb_err_set(err, EOPNOTSUPP, "fallocate mode 0x%x is not supported on '%s'",
				mode, img->name);
	}
	refresh_known(img);
	pthread_mutex_unlock(&img->wlock);
	return r;
}

int vmb_image_seek(struct vmb_image *img, uint64_t off, int whence, uint64_t *res,
		   struct vmb_err *err)
{
	uint64_t found, size;
	enum vmb_bstate st;
	int r = 0;

	if (whence != SEEK_DATA && whence != SEEK_HOLE)
		return vmb_err_set(err, EINVAL, "lseek on '%s': bad whence %d", img->name, whence);
	r = vmb_image_revalidate(img, 1, err);
	if (r < 0)
		return r;
	r = 0;
	pthread_mutex_lock(&img->mlock);
	size = img->size;
	if (off >= size) {
		r = -ENXIO;
		goto out;
	}
	st = vmb_blockmap_get(&img->map, off / BS, NULL);
	if (whence == SEEK_DATA) {
		if (st == VMB_DATA)
			*res = off;
		else if (vmb_blockmap_next(&img->map, off / BS, VMB_M_DATA, &found) < 0 ||
			 found * BS >= size)
			r = -ENXIO;
		else
			*res = found * BS;
	} else {
		if (st != VMB_DATA)
			*res = off;
		else if (vmb_blockmap_next(&img->map, off / BS, VMB_M_ZERO | VMB_M_ABSENT,
					   &found) < 0 || found * BS >= size)
			*res = size;
		else
			*res = found * BS;
	}
out:
	pthread_mutex_unlock(&img->mlock);
	return r;
}

/* Copy one data run from src to dst in the kernel, falling back to read/write. */
static int copy_data(struct vmb_image *src, uint64_t so, struct vmb_image *dst, uint64_t dof,
		     uint64_t n, struct vmb_err *err)
{
	char *buf = NULL;
	loff_t in = (loff_t)so, outp = (loff_t)dof;
	uint64_t left = n;

	while (left > 0) {
		ssize_t c = copy_file_range(src->fd, &in, dst->fd, &outp, (size_t)left, 0);
		if (c < 0 && errno == EINTR)
			continue;
		if (c < 0 && (errno == EXDEV || errno == EOPNOTSUPP || errno == ENOSYS ||
			      errno == EINVAL))
			break;
		if (c < 0)
			return vmb_err_sys(err, errno, "cannot copy '%s' to '%s'", src->name,
					   dst->name);
		if (c == 0)   /* source shrank: the rest reads as zeros */
			return zero_locked(dst, (uint64_t)outp, (uint64_t)outp + left, err);
		left -= (uint64_t)c;
	}
	while (left > 0) {
		size_t chunk = left > (1u << 20) ? (1u << 20) : (size_t)left, done;
		ssize_t rd;
		int r;

		if (!buf && !(buf = malloc(1u << 20)))
			return vmb_err_set(err, ENOMEM, "cannot copy '%s': out of memory", src->name);
		rd = vmb_pread_full(src->fd, buf, chunk, (uint64_t)in);
		if (rd < 0) {
			free(buf);
			return vmb_err_sys(err, (int)-rd, "cannot read '%s'", src->name);
		}
		r = vmb_pwrite_full(dst->fd, buf, chunk, (uint64_t)outp, &done);
		if (r < 0) {
			free(buf);
			return vmb_err_sys(err, -r, "cannot write '%s'", dst->name);
		}
		in += (loff_t)chunk;
		outp += (loff_t)chunk;
		left -= chunk;
	}
	free(buf);
	return 0;
}

ssize_t vmb_image_copy_range(struct vmb_image *src, uint64_t soff, struct vmb_image *dst,
			     uint64_t doff, size_t len, struct vmb_err *err)
{
	uint64_t ssize, pos, end;
	int r = 0;

	if (!dst->writable)
		return vmb_err_set(err, EBADF, "'%s' is open read-only", dst->name);
	ssize = vmb_image_size(src);
	if (soff >= ssize || len == 0)
		return 0;
	if (len > ssize - soff)
		len = (size_t)(ssize - soff);
	if (doff + len < doff || doff + len > MAX_BYTES)
		return vmb_err_set(err, EFBIG, "cannot copy into '%s' past %llu bytes", dst->name,
				   (unsigned long long)(VMB_BLOCK_MAX * BS));
	end = soff + len;
	pthread_mutex_lock(&dst->wlock);
	vmb_image_drain(dst);
	r = revalidate_locked(dst, err);
	if (r < 0)
		goto out;
	give_back(dst);
	if (src != dst) {
		vmb_image_drain(src);
		/* The source is read by its map: check it (unless its own change is in
		 * progress, which stamps it). */
		r = vmb_image_revalidate(src, 1, err);
		if (r < 0)
			goto out;
	}
	r = begin_change(dst, err);
	if (r < 0)
		goto out;
	if (doff + len > dst->size) {
		r = grow_locked(dst, doff + len, err);
		if (r < 0)
			goto out;
	}
	for (pos = soff; pos < end;) {
		uint64_t run, stop, d = doff + (pos - soff);
		enum vmb_bstate st;

		pthread_mutex_lock(&src->mlock);
		st = vmb_blockmap_get(&src->map, pos / BS, &run);
		pthread_mutex_unlock(&src->mlock);
		stop = (pos / BS + run) * BS;
		if (run >= VMB_BLOCK_MAX || stop > end)
			stop = end;
		if (st == VMB_DATA) {
			r = copy_data(src, pos, dst, d, stop - pos, err);
			if (r == 0)
				r = map_set(dst, d / BS, blocks_for(d + (stop - pos)) - d / BS,
					    VMB_DATA, err);
		} else {
			r = zero_locked(dst, d, d + (stop - pos), err);
		}
		if (r < 0)
			goto out;
		pos = stop;
	}
out:
	refresh_known(dst);
	pthread_mutex_unlock(&dst->wlock);
	return r < 0 ? r : (ssize_t)len;
}

int vmb_image_sync(struct vmb_image *img, int datasync, struct vmb_err *err)
{
	int r = 0;

	pthread_mutex_lock(&img->wlock);
	r = drain_err(img, err);
	if (r < 0)
		(void)fsync(img->fd);   /* the rest still goes out; the failure is reported */
	else if ((datasync ? fdatasync(img->fd) : fsync(img->fd)) < 0)
		r = vmb_err_sys(err, errno, "cannot sync '%s'", img->name);
	else
		r = persist_locked(img, VMB_SIDECAR_SYNC_DIR, err);
	pthread_mutex_unlock(&img->wlock);
	return r;
}
