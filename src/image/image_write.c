/* image_write.c - changing an image (image.h): writes, truncate, fallocate, copies
 * into it, and the space reserved ahead of a direct writer. Every entry point takes
 * wlock. */
#include "config.h"
#include "image/image_int.h"
#include "image/resrec.h"
#include "base/fdio.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
		vmb_img_refresh_known(img);
	return r;
}

/* trim_reserved, its failure logged. Caller holds wlock. */
void vmb_img_give_back(struct vmb_image *img)
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
	if (vmb_img_revalidate_locked(img, &err) < 0)
		vmb_log_msg(img->log, "%s", err.msg);
	vmb_img_give_back(img);
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
		vmb_img_give_back(img);
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

int vmb_img_write_merged(struct vmb_image *img, const void *p, uint64_t pos, uint64_t stop,
			 uint64_t cover, uint64_t *wend, struct vmb_err *err)
{
	unsigned char b[VMB_BLOCK_SIZE];
	uint64_t blk = pos / BS, start = blk * BS, end = start + BS;
	size_t done;
	int r;

	if (cover < end)
		end = cover > stop ? cover : stop;
	r = vmb_img_block_content(img, blk, b, end, err);
	if (r < 0)
		return r;
	if (p)
		memcpy(b + (pos - start), p, (size_t)(stop - pos));
	else
		memset(b + (pos - start), 0, (size_t)(stop - pos));
	if (wend)
		*wend = end;
	if (is_zero(b, (size_t)(end - start)))   /* hides the base's block */
		return vmb_img_map_set(img, blk, 1, VMB_ZERO, err);
	vmb_dio_wait_range(&img->dio, start, end - start);
	r = vmb_pwrite_full(img->fd, b, (size_t)(end - start), start, &done);
	if (r < 0)
		return vmb_err_sys(err, -r, "cannot write '%s' at offset %llu", img->name,
				   (unsigned long long)start);
	return vmb_img_map_set(img, blk, 1, VMB_DATA, err);
}

/* Bytes [a, b) within the size become zeros: whole blocks are punched and marked ZERO,
 * partial edges of DATA blocks get zeros written; a partial edge of a block that
 * reads from the base becomes DATA with the base's other bytes, or ZERO when they
 * are zeros too. */
int vmb_img_zero_locked(struct vmb_image *img, uint64_t a, uint64_t b, struct vmb_err *err)
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
		if (vmb_img_map_has_data(img, A, B)) {
			/* To the end of the last block, past the size: a punch that ends
			 * at an unaligned size only zeroes the last block and leaves it
			 * allocated (a rebuilt map would call it data). */
			if (fallocate(img->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				      (off_t)(A * BS), (off_t)((B - A) * BS)) < 0)
				return vmb_err_sys(err, errno, "cannot punch a hole in '%s' at "
						   "offset %llu", img->name,
						   (unsigned long long)(A * BS));
		}
		r = vmb_img_map_set(img, A, B - A, VMB_ZERO, err);
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
			if (vmb_img_map_get(img, s / BS) == VMB_DATA) {
				static const unsigned char zeros[VMB_BLOCK_SIZE];
				size_t done;
				r = vmb_pwrite_full(img->fd, zeros, (size_t)(stop - s), s, &done);
				if (r < 0)
					return vmb_err_sys(err, -r, "cannot write zeros to '%s' at "
							   "offset %llu", img->name,
							   (unsigned long long)s);
			} else if (img->base && vmb_img_src(img, s / BS) == VMB_SRC_BASE) {
				r = vmb_img_write_merged(img, NULL, s, stop, img->size, NULL, err);
				if (r < 0)
					return r;
			}
			s = stop;
		}
	}
	return 0;
}

enum piece { P_DATA, P_ZERO, P_SKIP };

/* Whether the bytes of block blk outside [pos, stop), within the size, read as
 * zeros (the old bytes a zero write into part of the block keeps): from the backing
 * file for a DATA block, from the base for one that reads it. A read error counts
 * as "not zero": the piece is then written as data. */
static int rest_is_zero(struct vmb_image *img, uint64_t blk, uint64_t pos, uint64_t stop,
			enum vmb_src src)
{
	unsigned char b[VMB_BLOCK_SIZE];
	uint64_t bstart = blk * BS, bend = bstart + BS, size;
	ssize_t n;

	pthread_mutex_lock(&img->mlock);
	size = img->size;
	pthread_mutex_unlock(&img->mlock);
	if (bend > size)
		bend = size;
	if (src == VMB_SRC_BASE) {   /* the base's bytes (a delta's ABSENT block) */
		if (vmb_img_block_content(img, blk, b, bend, NULL) < 0)
			return 0;
		return is_zero(b, (size_t)(pos - bstart)) &&
		       (stop >= bend || is_zero(b + (stop - bstart), (size_t)(bend - stop)));
	}
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
	enum vmb_src src;
	int full;

	*stop = end < blk_end ? end : blk_end;
	if (!is_zero(p, (size_t)(*stop - pos)))
		return P_DATA;
	full = pos == blk * BS && *stop == blk_end;
	if (full)
		return P_ZERO;
	/* Zeros into part of a block that already reads as zeros change nothing. */
	src = vmb_img_src(img, blk);
	if (src == VMB_SRC_ZERO)
		return P_SKIP;
	/* Zeros into part of a data block whose other bytes are zeros too: the block
	 * becomes ZERO (restic's unaligned zero runs after fallocate). */
	return rest_is_zero(img, blk, pos, *stop, src) ? P_ZERO : P_DATA;
}

/* A data piece whose first or last block reads from the base and is covered only
 * in part (within old_size: past it the block reads zeros): that block written
 * whole (vmb_img_write_merged). Caller holds wlock. 1 when done (*n bytes of the
 * piece from pos), 0 when the block needs no merging, -errno. */
static int merge_edge(struct vmb_image *img, const unsigned char *p, uint64_t pos,
		      uint64_t stop, uint64_t old_size, uint64_t *bsize, size_t *n,
		      struct vmb_err *err)
{
	uint64_t start = pos / BS * BS, end = start + BS, cover, wend;
	int r;

	if (stop > end)
		stop = end;
	cover = end < old_size ? end : old_size;
	if ((pos == start && stop >= cover) || vmb_img_src(img, pos / BS) != VMB_SRC_BASE)
		return 0;
	r = vmb_img_write_merged(img, p, pos, stop, cover, &wend, err);
	if (r < 0)
		return r;
	if (wend > *bsize)
		*bsize = wend;
	*n = (size_t)(stop - pos);
	return 1;
}

/* Write the data piece [pos, stop) and mark it DATA; *done bytes of it written. A
 * partial block at either end that reads from the base is merged with the base's
 * bytes (merge_edge). Caller holds wlock. */
static int put_data(struct vmb_image *img, const unsigned char *p, uint64_t pos,
		    uint64_t stop, uint64_t old_size, uint64_t *bsize, size_t *done,
		    struct vmb_err *err)
{
	uint64_t a = pos, b = stop;   /* what goes through write_data */
	size_t n, mid = 0;
	int r;

	*done = 0;
	if (img->base) {
		if (b % BS && b / BS * BS > a) {   /* the last block, when not the first */
			uint64_t last = b / BS * BS;
			r = merge_edge(img, p + (last - pos), last, b, old_size, bsize, &n, err);
			if (r < 0)
				return r;
			if (r > 0)
				b = last;
		}
		r = merge_edge(img, p, a, b, old_size, bsize, &n, err);
		if (r < 0)
			return r;
		if (r > 0)
			a += n;
	}
	if (a < b) {
		r = write_data(img, p + (a - pos), (size_t)(b - a), a, old_size, &mid);
		if (mid > 0) {
			int r2 = vmb_img_map_set(img, a / BS, blocks_for(a + mid) - a / BS,
						 VMB_DATA, err);
			if (a + mid > *bsize)
				*bsize = a + mid;
			if (r2 < 0 && r == 0)
				r = r2;
		}
		if (r < 0 || mid < b - a) {
			*done = (size_t)(a - pos) + mid;
			return r;
		}
	}
	*done = (size_t)(stop - pos);
	return 0;
}

ssize_t vmb_image_write(struct vmb_image *img, const void *buf, size_t len, uint64_t off,
			struct vmb_err *err)
{
	const unsigned char *p = buf;
	uint64_t end = off + len, pos, written = 0, old_size, bsize;
	int r = 0;

	if (len == 0)
		return 0;
	r = vmb_img_check_writable(img, err);
	if (r < 0)
		return r;
	if (end < off || end > MAX_BYTES)
		return vmb_err_set(err, EFBIG, "cannot write '%s' past %llu bytes", img->name,
				   (unsigned long long)(VMB_BLOCK_MAX * BS));
	pthread_mutex_lock(&img->wlock);
	old_size = bsize = img->size;
	r = vmb_img_begin_change(img, err);
	if (r < 0)
		goto out;
	if (end > old_size) {
		/* The blocks past the old end read as zeros until written; the backing
		 * file is extended by the data itself, or at the end. */
		r = vmb_img_map_set(img, blocks_for(old_size), blocks_for(end) - blocks_for(old_size),
			    VMB_ZERO, err);
		if (r < 0)
			goto out;
		vmb_img_set_size(img, end);
	}
	for (pos = off; pos < end;) {
		uint64_t stop, s2;
		enum piece kind = classify(img, p + (pos - off), pos, end, &stop);

		/* Extend the run while the next pieces are of the same kind. */
		while (stop < end && classify(img, p + (stop - off), stop, end, &s2) == kind)
			stop = s2;
		if (kind == P_DATA) {
			size_t done;
			r = put_data(img, p + (pos - off), pos, stop, old_size, &bsize, &done, err);
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
			r = vmb_img_zero_locked(img, a, b < img->size ? b : img->size, err);
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
	vmb_img_refresh_known(img);   /* one statx; none while direct writes are queued */
	pthread_mutex_unlock(&img->wlock);
	if (r < 0 && written == 0)
		return r;
	return (ssize_t)written;
}

/* The limit rule of a delta shrinking to size (LAYERS.md): when size is not block
 * aligned and its block reads from the base, that block is copied into the delta
 * first (the base's bytes, zeros past size; ZERO when that is all zeros); then the
 * limit goes down to min(limit, floor(size / 4096)), the base xattr first. So a
 * shrink-then-extend reads zeros, as on ext4. Caller holds wlock. */
static int shrink_delta(struct vmb_image *img, uint64_t size, struct vmb_err *err)
{
	uint64_t blk = size / BS;
	int r;

	if (size % BS && vmb_img_src(img, blk) == VMB_SRC_BASE) {
		r = vmb_img_write_merged(img, NULL, size, size, size, NULL, err);
		if (r < 0)
			return r;
	}
	if (blk >= img->limit)
		return 0;
	r = vmb_image_set_base_xattr(img->fd, img->name, img->base->id, blk, err);
	if (r < 0)
		return vmb_err_prefix(err, "cannot truncate '%s'", img->name);
	pthread_mutex_lock(&img->mlock);
	img->limit = blk;
	img->gen++;
	pthread_mutex_unlock(&img->mlock);
	return 0;
}

int vmb_image_truncate(struct vmb_image *img, uint64_t size, struct vmb_err *err)
{
	int r = 0;

	r = vmb_img_check_writable(img, err);
	if (r < 0)
		return r;
	if (size > MAX_BYTES)
		return vmb_err_set(err, EFBIG, "cannot truncate '%s' to %llu bytes", img->name,
				   (unsigned long long)size);
	pthread_mutex_lock(&img->wlock);
	vmb_image_drain(img);
	r = vmb_img_revalidate_locked(img, err);
	if (r < 0)
		goto out;
	r = 0;
	vmb_img_give_back(img);
	if (size != img->size)
		r = vmb_img_begin_change(img, err);
	if (r < 0) {
		/* nothing changed */
	} else if (size > img->size) {
		r = vmb_img_grow_locked(img, size, err);
	} else if (size < img->size) {
		if (img->base)
			r = shrink_delta(img, size, err);
		if (r < 0) {
			/* the limit stays; the partial block, if copied, reads the same */
		} else if (ftruncate(img->fd, (off_t)size) < 0) {
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
	vmb_img_refresh_known(img);
out:
	pthread_mutex_unlock(&img->wlock);
	return r;
}

/* reserve_locked of a delta: blocks that read from the base are left alone (their
 * bytes are the base's: reserving them would need copying them, and an allocated
 * block under an ABSENT one would read as data after a rebuild), the rest as for a
 * file without a base, run by run. */
static int reserve_delta(struct vmb_image *img, int mode, uint64_t off, uint64_t len,
			 struct vmb_err *err)
{
	uint64_t end = off + len, pos, size = img->size;
	int pass, r;

	for (pass = 0; pass < 2; pass++) {   /* allocate, then mark (size known) */
		for (pos = off; pos < end;) {
			uint64_t run, stop, blk = pos / BS;
			enum vmb_src s;

			pthread_mutex_lock(&img->mlock);
			s = pos < size ? vmb_img_chain_get(img, blk, &run, NULL) : VMB_SRC_ZERO;
			pthread_mutex_unlock(&img->mlock);
			if (pos >= size || run >= VMB_BLOCK_MAX - blk || (blk + run) * BS >= end)
				stop = end;
			else
				stop = (blk + run) * BS;
			if (s == VMB_SRC_BASE) {
				pos = stop;
				continue;
			}
			if (pass == 0 && fallocate(img->fd, mode, (off_t)pos,
						   (off_t)(stop - pos)) < 0)
				return vmb_err_sys(err, errno, "cannot allocate %llu bytes in '%s' "
						   "at offset %llu", (unsigned long long)(stop - pos),
						   img->name, (unsigned long long)pos);
			if (pass == 1 && pos < size) {
				uint64_t lim = stop < size ? stop : size;
				r = vmb_img_map_set(img, pos / BS, blocks_for(lim) - pos / BS,
						    VMB_DATA, err);
				if (r < 0)
					return r;
			}
			pos = stop;
		}
		if (pass == 0 && !(mode & FALLOC_FL_KEEP_SIZE) && end > size) {
			r = vmb_img_map_set(img, blocks_for(size), blocks_for(end) - blocks_for(size),
					    VMB_ZERO, err);
			if (r < 0)
				return r;
			vmb_img_set_size(img, end);
			size = end;
		}
	}
	return 0;
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
	if (img->base)
		return reserve_delta(img, mode, off, len, err);
	if (fallocate(img->fd, mode, (off_t)off, (off_t)len) < 0)
		return vmb_err_sys(err, errno, "cannot allocate %llu bytes in '%s' at offset %llu",
				   (unsigned long long)len, img->name, (unsigned long long)off);
	if (!(mode & FALLOC_FL_KEEP_SIZE) && end > img->size) {
		r = vmb_img_map_set(img, blocks_for(img->size),
			    blocks_for(end) - blocks_for(img->size), VMB_ZERO, err);
		if (r < 0)
			return r;
		vmb_img_set_size(img, end);
	}
	lim = end < img->size ? end : img->size;
	if (off < lim)
		return vmb_img_map_set(img, off / BS, blocks_for(lim) - off / BS, VMB_DATA, err);
	return 0;
}

int vmb_image_fallocate(struct vmb_image *img, int mode, uint64_t off, uint64_t len,
			struct vmb_err *err)
{
	uint64_t end = off + len;
	int r = 0;

	r = vmb_img_check_writable(img, err);
	if (r < 0)
		return r;
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
	r = vmb_img_revalidate_locked(img, err);
	if (r >= 0) {
		vmb_img_give_back(img);
		r = vmb_img_begin_change(img, err);
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
		r = vmb_img_zero_locked(img, off, end, err);
		break;
	case FALLOC_FL_ZERO_RANGE:
	case FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE:
		r = vmb_img_zero_locked(img, off, end, err);
		if (r == 0 && !(mode & FALLOC_FL_KEEP_SIZE) && end > img->size)
			r = vmb_img_grow_locked(img, end, err);
		break;
	default:
		r = vmb_err_set(err, EOPNOTSUPP, "fallocate mode 0x%x is not supported on '%s'",
				mode, img->name);
	}
	vmb_img_refresh_known(img);
	pthread_mutex_unlock(&img->wlock);
	return r;
}
