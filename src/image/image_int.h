/* image_int.h - what the parts of an image (image.c, image_write.c, image_base.c,
 * image_freeze.c) share: the struct and the helpers that more than one of them calls.
 * Not for use outside src/image/. Locking as in image.h: wlock before mlock; the
 * helpers say which lock their caller holds.
 */
#ifndef VMB_IMAGE_INT_H
#define VMB_IMAGE_INT_H

#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include "image/image.h"
#include "image/dio.h"
#include "map/base.h"
#include "map/sidecar.h"

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
	/* The base under the delta (map/base.h), NULL for none: one reference, owned.
	 * limit: blocks >= it never read the base (mlock; changed under wlock too). */
	struct vmb_base *base;
	uint64_t limit;
	int frozen;              /* vmb_image_open_frozen: no backing file, read-only */
	/* st_blocks through the chain (image_base.c), valid while alloc_gen == gen
	 * and alloc_ok (mlock). */
	uint64_t alloc_blocks, alloc_gen;
	int alloc_ok;
};

static inline uint64_t blocks_for(uint64_t bytes)
{
	return (bytes + BS - 1) / BS;
}

static inline int is_zero(const unsigned char *p, size_t n)
{
	if (n == 0)
		return 1;
	if (p[0])
		return 0;
	return memcmp(p, p + 1, n - 1) == 0;
}

/* image.c: the map and the size (caller holds wlock; they take mlock). */
int vmb_img_map_set(struct vmb_image *img, uint64_t start, uint64_t len, enum vmb_bstate st,
		    struct vmb_err *err);
enum vmb_bstate vmb_img_map_get(struct vmb_image *img, uint64_t blk);
int vmb_img_map_has_data(struct vmb_image *img, uint64_t start, uint64_t end);
void vmb_img_set_size(struct vmb_image *img, uint64_t size);
int vmb_img_grow_locked(struct vmb_image *img, uint64_t new_size, struct vmb_err *err);
int vmb_img_begin_change(struct vmb_image *img, struct vmb_err *err);
/* image.c: revalidation (caller holds wlock). */
void vmb_img_refresh_known(struct vmb_image *img);
int vmb_img_revalidate_locked(struct vmb_image *img, struct vmb_err *err);
/* image_write.c: give back the space reserved ahead of a writer (wlock). */
void vmb_img_give_back(struct vmb_image *img);

#endif
