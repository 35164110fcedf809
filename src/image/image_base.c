/* image_base.c - reading an image (image.h): reads, SEEK_DATA/SEEK_HOLE, the bytes
 * allocated. */
#include "config.h"
#include "image/image_int.h"
#include "base/fdio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

