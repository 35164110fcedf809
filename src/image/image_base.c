/* image_base.c - reading an image through its base (image.h): reads,
 * SEEK_DATA/SEEK_HOLE, the bytes allocated.
 *
 * Block blk of a file reads from: its backing file when its map says DATA; zeros
 * when ZERO; when ABSENT, the base below the base limit (where the base has DATA),
 * else zeros. A lookup is one binary search in the delta's map and, for ABSENT
 * blocks below the limit, one in the base (its merged chain map, layer/), never a
 * walk per layer. A file without a base takes the paths it always took. */
#include "config.h"
#include "image/image_int.h"
#include "base/fdio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- the chain ---- */

enum vmb_src vmb_img_chain_get(struct vmb_image *img, uint64_t blk, uint64_t *run, int *bfd)
{
	uint64_t r, br;
	enum vmb_bstate st = vmb_blockmap_get(&img->map, blk, &r), bs;
	int fd = -1;

	if (st == VMB_DATA) {
		*run = r;
		return VMB_SRC_DELTA;
	}
	if (st == VMB_ZERO || !img->base || blk >= img->limit) {
		/* an ABSENT run that reaches the limit from below is cut there */
		*run = r;
		return VMB_SRC_ZERO;
	}
	if (r > img->limit - blk)
		r = img->limit - blk;
	bs = img->base->ops->lookup(img->base, blk, &br, &fd);
	if (br < r)
		r = br;
	*run = r ? r : 1;
	if (bs == VMB_DATA) {
		if (bfd)
			*bfd = fd;
		return VMB_SRC_BASE;
	}
	return VMB_SRC_ZERO;
}

enum vmb_src vmb_img_src(struct vmb_image *img, uint64_t blk)
{
	enum vmb_src s;
	uint64_t run;

	pthread_mutex_lock(&img->mlock);
	s = vmb_img_chain_get(img, blk, &run, NULL);
	pthread_mutex_unlock(&img->mlock);
	return s;
}

int vmb_img_base_read(struct vmb_image *img, void *buf, size_t len, uint64_t off,
		      struct vmb_err *err)
{
	struct vmb_base *b = img->base;
	size_t n = off < b->size ? (b->size - off < len ? (size_t)(b->size - off) : len) : 0;

	if (n > 0) {
		ssize_t r = b->ops->read(b, buf, n, off, err);
		if (r < 0)
			return vmb_err_prefix(err, "cannot read '%s' at offset %llu", img->name,
					      (unsigned long long)off);
	}
	memset((char *)buf + n, 0, len - n);
	return 0;
}

int vmb_img_block_content(struct vmb_image *img, uint64_t blk, unsigned char *b,
			  uint64_t end, struct vmb_err *err)
{
	uint64_t start = blk * BS, stop = start + BS;
	enum vmb_src s = vmb_img_src(img, blk);
	int r = 0;

	if (end < stop)
		stop = end > start ? end : start;
	memset(b, 0, BS);
	if (stop == start || s == VMB_SRC_ZERO)
		return 0;
	if (s == VMB_SRC_BASE)
		return vmb_img_base_read(img, b, (size_t)(stop - start), start, err);
	vmb_dio_wait_range(&img->dio, start, stop - start);
	if (vmb_pread_full(img->fd, b, (size_t)(stop - start), start) < 0)
		r = vmb_err_sys(err, errno, "cannot read '%s' at offset %llu", img->name,
				(unsigned long long)start);
	return r;
}

uint64_t vmb_img_lower_limit(struct vmb_image *img, uint64_t size)
{
	uint64_t limit = img->limit;
	struct vmb_err e;

	if (size / BS >= limit)
		return limit;
	limit = size / BS;
	vmb_err_clear(&e);
	if (vmb_image_set_base_xattr(img->fd, img->name, img->base->id, limit, &e) < 0)
		vmb_log_msg(img->log, "%s", e.msg);
	return limit;
}

uint64_t vmb_image_chain_data_blocks(const struct vmb_blockmap *m, struct vmb_base *base,
				     uint64_t limit, uint64_t size)
{
	uint64_t n = m->data_blocks, blk = 0, run, lim = blocks_for(size);

	if (!base)
		return n;
	if (limit < lim)
		lim = limit;
	while (blk < lim) {
		enum vmb_bstate st = vmb_blockmap_get(m, blk, &run);
		uint64_t end = run >= lim - blk ? lim : blk + run;

		if (st == VMB_ABSENT) {
			for (uint64_t b = blk; b < end;) {
				uint64_t br;
				int fd;
				enum vmb_bstate bs = base->ops->lookup(base, b, &br, &fd);
				uint64_t e = br >= end - b ? end : b + (br ? br : 1);
				if (bs == VMB_DATA)
					n += e - b;
				b = e;
			}
		}
		blk = end;
	}
	return n;
}

uint64_t vmb_image_alloc_bytes(struct vmb_image *img)
{
	uint64_t b;

	pthread_mutex_lock(&img->mlock);
	if (!img->base) {
		b = img->map.data_blocks;
	} else if (img->alloc_ok && img->alloc_gen == img->gen) {
		b = img->alloc_blocks;
	} else {
		b = vmb_image_chain_data_blocks(&img->map, img->base, img->limit, img->size);
		img->alloc_blocks = b;
		img->alloc_gen = img->gen;
		img->alloc_ok = 1;
	}
	pthread_mutex_unlock(&img->mlock);
	return b * BS;
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

static int covered_by_data(struct vmb_image *img, uint64_t off, size_t len);

int vmb_image_read_fd(struct vmb_image *img, uint64_t off, size_t len, int *fd, size_t *n)
{
	uint64_t run, end, stop;
	enum vmb_src st;
	struct stat sb;
	int bfd = -1;

	if (!img->base)
		return vmb_image_all_data(img, off, len, n) ? (*fd = img->fd, 1) : 0;
	if (len == 0)
		return 0;
	/* As vmb_image_read: a range the delta's map does not call all data may have
	 * been written by someone else (one statx, no data read). A failure is left
	 * for vmb_image_read to report. */
	if (!covered_by_data(img, off, len) && vmb_image_revalidate(img, 1, NULL) < 0)
		return 0;
	pthread_mutex_lock(&img->mlock);
	if (off >= img->size) {
		pthread_mutex_unlock(&img->mlock);
		return 0;
	}
	end = img->size - off < len ? img->size : off + len;
	st = vmb_img_chain_get(img, off / BS, &run, &bfd);
	pthread_mutex_unlock(&img->mlock);
	stop = run >= VMB_BLOCK_MAX - off / BS ? end : (off / BS + run) * BS;
	if (st == VMB_SRC_DELTA)
		return vmb_image_all_data(img, off, len, n) ? (*fd = img->fd, 1) : 0;
	/* from the base: one descriptor, and bytes it holds (not past its end) */
	if (st != VMB_SRC_BASE || bfd < 0 || stop < end || end > img->base->size)
		return 0;
	/* The bytes must be there: a splice that ends early would be a short read (the
	 * kernel takes it for the end of the file). A lower layer's descriptor ends at
	 * that layer's size, and a damaged one may end anywhere: vmb_image_read reads
	 * those (zeros past a layer's size; -EIO naming the layer for a damaged one). */
	if (fstat(bfd, &sb) < 0 || (uint64_t)sb.st_size < end)
		return 0;
	*fd = bfd;
	*n = (size_t)(end - off);
	return 1;
}

int vmb_image_read_pieces(struct vmb_image *img, uint64_t off, size_t len,
			  struct vmb_base_piece *pc, int max)
{
	struct vmb_base *b;
	uint64_t run, end, stop;
	enum vmb_src st;
	int n;

	if (len == 0)
		return 0;
	/* only a range the base reads is worth the check below (no statx for holes) */
	pthread_mutex_lock(&img->mlock);
	b = img->base;
	st = b && b->ops->pieces && off < img->size ?
	     vmb_img_chain_get(img, off / BS, &run, NULL) : VMB_SRC_ZERO;
	pthread_mutex_unlock(&img->mlock);
	if (st != VMB_SRC_BASE)
		return 0;
	/* as vmb_image_read_fd: the delta may have been written by someone else */
	if (vmb_image_revalidate(img, 1, NULL) < 0)
		return 0;
	/* the base may change (a snapshot freezes the file): ours is held meanwhile */
	pthread_mutex_lock(&img->mlock);
	b = img->base;
	if (!b || !b->ops->pieces || off >= img->size) {
		pthread_mutex_unlock(&img->mlock);
		return 0;
	}
	end = img->size - off < len ? img->size : off + len;
	st = vmb_img_chain_get(img, off / BS, &run, NULL);
	vmb_base_get(b);
	pthread_mutex_unlock(&img->mlock);
	stop = run >= VMB_BLOCK_MAX - off / BS ? end : (off / BS + run) * BS;
	n = st != VMB_SRC_BASE || stop < end || end > b->size ? 0 :
	    b->ops->pieces(b, off, (size_t)(end - off), pc, max);
	if (n > 0) {
		vmb_base_get(pc[0].owner);   /* dropped by vmb_image_read_pieces_done */
		vmb_dio_wait_range(&img->dio, off, end - off);
	}
	vmb_base_put(b);
	return n > 0 ? n : 0;
}

int vmb_image_has_pieces(struct vmb_image *img)
{
	int r;

	pthread_mutex_lock(&img->mlock);
	r = img->base && img->base->ops->pieces;
	pthread_mutex_unlock(&img->mlock);
	return r;
}

void vmb_image_read_pieces_done(struct vmb_image *img, struct vmb_base_piece *pc, int n)
{
	struct vmb_base *owner = n > 0 ? pc[0].owner : NULL;

	(void)img;
	if (!owner)
		return;
	owner->ops->pieces_done(owner, pc, n);   /* the base that gave them out */
	vmb_base_put(owner);
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
		for (pos = off; img->base && !any_data && pos < end;) {
			uint64_t run;
			any_data = vmb_img_chain_get(img, pos / BS, &run, NULL) != VMB_SRC_ZERO;
			pos = run >= VMB_BLOCK_MAX - pos / BS || (pos / BS + run) * BS >= end ?
			      end : (pos / BS + run) * BS;
		}
		pthread_mutex_unlock(&img->mlock);
		if (!any_data) {
			*holes_only = 1;
			return (ssize_t)len;
		}
	}
	for (pos = off; pos < end;) {
		uint64_t run, stop;
		enum vmb_src st;

		pthread_mutex_lock(&img->mlock);
		st = vmb_img_chain_get(img, pos / BS, &run, NULL);
		pthread_mutex_unlock(&img->mlock);
		stop = (pos / BS + run) * BS;
		if (run >= VMB_BLOCK_MAX || stop > end)
			stop = end;
		if (st == VMB_SRC_BASE) {
			int r = vmb_img_base_read(img, (char *)buf + (pos - off),
						  (size_t)(stop - pos), pos, err);
			if (r < 0)
				return r;
		} else if (st == VMB_SRC_DELTA) {
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


/* SEEK_DATA / SEEK_HOLE through the chain, from block off / 4096 on: the first
 * run that reads as data (or as zeros). Caller holds mlock. */
static int seek_chain(struct vmb_image *img, uint64_t off, int whence, uint64_t *res)
{
	uint64_t blk = off / BS, run, size = img->size;

	while (blk * BS < size) {
		enum vmb_src s = vmb_img_chain_get(img, blk, &run, NULL);
		if ((s != VMB_SRC_ZERO) == (whence == SEEK_DATA)) {
			*res = blk * BS > off ? blk * BS : off;
			if (*res > size)
				*res = size;
			return *res < size || whence == SEEK_HOLE ? 0 : -ENXIO;
		}
		if (run >= VMB_BLOCK_MAX - blk)
			break;
		blk += run;
	}
	if (whence == SEEK_DATA)
		return -ENXIO;
	*res = size;
	return 0;
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
	if (img->base) {
		r = seek_chain(img, off, whence, res);
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
