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
	if (vmb_img_map_get(img, blk) != VMB_DATA)
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
			r = write_data(img, p + (pos - off), (size_t)(stop - pos), pos, old_size, &done);
			if (done > 0) {
				int r2 = vmb_img_map_set(img, pos / BS, blocks_for(pos + done) - pos / BS,
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
	vmb_img_refresh_known(img);   /* one statx; none while direct writes are queued */
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
	vmb_img_refresh_known(img);
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
		r = zero_locked(img, off, end, err);
		break;
	case FALLOC_FL_ZERO_RANGE:
	case FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE:
		r = zero_locked(img, off, end, err);
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
	r = vmb_img_revalidate_locked(dst, err);
	if (r < 0)
		goto out;
	vmb_img_give_back(dst);
	if (src != dst) {
		vmb_image_drain(src);
		/* The source is read by its map: check it (unless its own change is in
		 * progress, which stamps it). */
		r = vmb_image_revalidate(src, 1, err);
		if (r < 0)
			goto out;
	}
	r = vmb_img_begin_change(dst, err);
	if (r < 0)
		goto out;
	if (doff + len > dst->size) {
		r = vmb_img_grow_locked(dst, doff + len, err);
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
				r = vmb_img_map_set(dst, d / BS, blocks_for(d + (stop - pos)) - d / BS,
					    VMB_DATA, err);
		} else {
			r = zero_locked(dst, d, d + (stop - pos), err);
		}
		if (r < 0)
			goto out;
		pos = stop;
	}
out:
	vmb_img_refresh_known(dst);
	pthread_mutex_unlock(&dst->wlock);
	return r < 0 ? r : (ssize_t)len;
}
