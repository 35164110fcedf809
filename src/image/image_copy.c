/* image_copy.c - copy_file_range between images (image.h): data runs in the kernel
 * (copy_file_range from the source's backing file, or from its base's descriptor for
 * the blocks it reads from the base), holes as holes. Takes the destination's wlock;
 * the source is read like any reader. */
#include "config.h"
#include "image/image_int.h"
#include "base/fdio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Copy one data run from src's descriptor sfd (its backing file, or its base's:
 * bytes at their own offsets; -1: read through the base) to dst in the kernel,
 * falling back to read/write. */
static int copy_data(struct vmb_image *src, int sfd, uint64_t so, struct vmb_image *dst,
		     uint64_t dof, uint64_t n, struct vmb_err *err)
{
	char *buf = NULL;
	loff_t in = (loff_t)so, outp = (loff_t)dof;
	uint64_t left = n;

	while (left > 0 && sfd >= 0) {
		ssize_t c = copy_file_range(sfd, &in, dst->fd, &outp, (size_t)left, 0);
		if (c < 0 && errno == EINTR)
			continue;
		if (c < 0 && (errno == EXDEV || errno == EOPNOTSUPP || errno == ENOSYS ||
			      errno == EINVAL))
			break;
		if (c < 0)
			return vmb_err_sys(err, errno, "cannot copy '%s' to '%s'", src->name,
					   dst->name);
		if (c == 0 && sfd != src->fd)   /* a base's last block: zeros past its */
			break;                      /* end, read and written below */
		if (c == 0)   /* source shrank: the rest reads as zeros */
			return vmb_img_zero_locked(dst, (uint64_t)outp, (uint64_t)outp + left, err);
		left -= (uint64_t)c;
	}
	while (left > 0) {
		size_t chunk = left > (1u << 20) ? (1u << 20) : (size_t)left, done;
		ssize_t rd;
		int r;

		if (!buf && !(buf = malloc(1u << 20)))
			return vmb_err_set(err, ENOMEM, "cannot copy '%s': out of memory", src->name);
		if (sfd < 0) {
			rd = vmb_img_base_read(src, buf, chunk, (uint64_t)in, err);
			if (rd < 0) {
				free(buf);
				return (int)rd;
			}
		} else if ((rd = vmb_pread_full(sfd, buf, chunk, (uint64_t)in)) < 0) {
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

/* The bytes [pos, pos + n) of src, which read from st (DELTA or BASE), into buf. */
static int read_src(struct vmb_image *src, enum vmb_src st, void *buf, size_t n, uint64_t pos,
		    struct vmb_err *err)
{
	if (st == VMB_SRC_BASE)
		return vmb_img_base_read(src, buf, n, pos, err);
	vmb_dio_wait_range(&src->dio, pos, n);
	if (vmb_pread_full(src->fd, buf, n, pos) < 0)
		return vmb_err_sys(err, errno, "cannot read '%s' at offset %llu", src->name,
				   (unsigned long long)pos);
	return 0;
}

/* A data run of src [pos, pos + n) (from st, descriptor sfd) to dst at d, marked DATA
 * there. Into a delta, a partial block at either end that reads from dst's base is
 * merged with its bytes (within cover, dst's size before the copy). */
static int copy_run(struct vmb_image *src, enum vmb_src st, int sfd, uint64_t pos,
		    struct vmb_image *dst, uint64_t d, uint64_t n, uint64_t cover,
		    struct vmb_err *err)
{
	unsigned char b[VMB_BLOCK_SIZE];
	int r, i;

	for (i = 0; dst->base && i < 2 && n > 0; i++) {
		/* i = 0: the first block, 1: the last one */
		uint64_t at = i == 0 ? d : ((d + n) % BS ? (d + n) / BS * BS : d + n);
		uint64_t stop = i == 0 ? ((d / BS + 1) * BS < d + n ? (d / BS + 1) * BS : d + n)
				       : d + n;
		uint64_t start = at / BS * BS, cend = start + BS < cover ? start + BS : cover;

		if (at < d)
			at = d;
		if (at >= stop || (at == start && stop >= cend) ||
		    vmb_img_src(dst, at / BS) != VMB_SRC_BASE)
			continue;
		r = read_src(src, st, b, (size_t)(stop - at), pos + (at - d), err);
		if (r == 0)
			r = vmb_img_write_merged(dst, b, at, stop, cover, NULL, err);
		if (r < 0)
			return r;
		if (i == 0) {
			pos += stop - at;
			n -= stop - at;
			d = stop;
		} else {
			n -= stop - at;
		}
	}
	if (n == 0)
		return 0;
	r = copy_data(src, sfd, pos, dst, d, n, err);
	if (r == 0)
		r = vmb_img_map_set(dst, d / BS, blocks_for(d + n) - d / BS, VMB_DATA, err);
	return r;
}

int vmb_img_copy_prepare(struct vmb_image *src, struct vmb_image *dst, struct vmb_err *err)
{
	int r;

	vmb_image_drain(dst);
	r = vmb_img_revalidate_locked(dst, err);
	if (r < 0)
		return r;
	vmb_img_give_back(dst);
	if (src == dst)
		return 0;
	vmb_image_drain(src);
	/* The source is read by its map: check it (unless its own change is in
	 * progress, which stamps it). */
	r = vmb_image_revalidate(src, 1, err);
	return r < 0 ? r : 0;
}

ssize_t vmb_image_copy_range(struct vmb_image *src, uint64_t soff, struct vmb_image *dst,
			     uint64_t doff, size_t len, struct vmb_err *err)
{
	uint64_t ssize, pos, end, cover;
	int r = 0;

	r = vmb_img_check_writable(dst, err);
	if (r < 0)
		return r;
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
	r = vmb_img_copy_prepare(src, dst, err);
	if (r < 0)
		goto out;
	r = vmb_img_begin_change(dst, err);
	if (r < 0)
		goto out;
	cover = dst->size;
	if (doff + len > dst->size) {
		r = vmb_img_grow_locked(dst, doff + len, err);
		if (r < 0)
			goto out;
	}
	for (pos = soff; pos < end;) {
		uint64_t run, stop, d = doff + (pos - soff);
		enum vmb_src st;
		int bfd = -1;

		pthread_mutex_lock(&src->mlock);
		st = vmb_img_chain_get(src, pos / BS, &run, &bfd);
		pthread_mutex_unlock(&src->mlock);
		stop = run >= VMB_BLOCK_MAX - pos / BS ? end : (pos / BS + run) * BS;
		/* From a delta: one zero run however many sources it spans (zero_locked
		 * treats whole blocks and partial edges differently); a file without a
		 * base as before, run by run of its map. */
		while (st == VMB_SRC_ZERO && src->base && stop < end) {
			enum vmb_src s2;
			pthread_mutex_lock(&src->mlock);
			s2 = vmb_img_chain_get(src, stop / BS, &run, NULL);
			pthread_mutex_unlock(&src->mlock);
			if (s2 != VMB_SRC_ZERO)
				break;
			stop = run >= VMB_BLOCK_MAX - stop / BS ? end : (stop / BS + run) * BS;
		}
		if (stop > end)
			stop = end;
		if (st != VMB_SRC_ZERO) {
			r = copy_run(src, st, st == VMB_SRC_DELTA ? src->fd : bfd, pos, dst, d,
				     stop - pos, cover, err);
		} else {
			r = vmb_img_zero_locked(dst, d, d + (stop - pos), err);
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
