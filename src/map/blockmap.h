/* blockmap.h - the extent map of one layer of a sparse image.
 *
 * The map covers block numbers [0, 2^63) and knows three states per block:
 *   VMB_DATA    the block's bytes are stored in this layer's backing file;
 *   VMB_ZERO    the block reads as zeros (an explicit zero: it hides any base);
 *   VMB_ABSENT  this layer says nothing about the block (read the base, or zeros
 *               when there is none). ABSENT is the default and is never stored.
 * Storage: a sorted array of non-overlapping extents; adjacent extents of the same
 * state are always merged, so the array is canonical (two maps describing the same
 * states are byte-for-byte equal). Lookups are binary searches, O(log n); updates
 * are O(log n + moved extents).
 *
 * Not thread-safe: the owner (struct vmb_image) serialises access with its map lock.
 * A vmb_blockmap owns its extent array; vmb_blockmap_destroy frees it and is safe on
 * a zeroed or already destroyed map.
 */
#ifndef VMB_BLOCKMAP_H
#define VMB_BLOCKMAP_H

#include <stddef.h>
#include <stdint.h>

#define VMB_BLOCK_SHIFT 12
#define VMB_BLOCK_SIZE  (1u << VMB_BLOCK_SHIFT)   /* 4096 bytes */
#define VMB_BLOCK_MAX   (UINT64_C(1) << 51)       /* blocks: 2^63 bytes */

enum vmb_bstate {
	VMB_ABSENT = 0,
	VMB_DATA = 1,
	VMB_ZERO = 2,
};

/* State masks for vmb_blockmap_next(). */
#define VMB_M_ABSENT (1u << VMB_ABSENT)
#define VMB_M_DATA   (1u << VMB_DATA)
#define VMB_M_ZERO   (1u << VMB_ZERO)

struct vmb_extent {
	uint64_t start;   /* first block */
	uint64_t len;     /* blocks, > 0 */
	uint32_t state;   /* VMB_DATA or VMB_ZERO */
};

struct vmb_blockmap {
	struct vmb_extent *ext;
	size_t n;            /* extents in use */
	size_t cap;          /* extents allocated */
	uint64_t data_blocks;  /* running count of VMB_DATA blocks */
	uint64_t zero_blocks;  /* running count of VMB_ZERO blocks */
	/* Change tracking (borrowed, may be NULL): every block that vmb_blockmap_set or
	 * vmb_blockmap_truncate changes is also set to VMB_DATA in *track (the journal
	 * saves only those, journal.h). A map replaced wholesale (vmb_blockmap_copy into
	 * it, a decode, a struct assignment from a fresh map) has track NULL, and so
	 * does one whose tracking failed (ENOMEM in truncate): the owner then knows the
	 * changes are unknown. */
	struct vmb_blockmap *track;
};

void vmb_blockmap_init(struct vmb_blockmap *m);
void vmb_blockmap_destroy(struct vmb_blockmap *m);

/* Set blocks [start, start+len) to state st (VMB_ABSENT clears them). len 0 is a
 * no-op. Returns 0, -EINVAL for a range past VMB_BLOCK_MAX or a bad state, -ENOMEM.
 * On failure the map is unchanged. */
int vmb_blockmap_set(struct vmb_blockmap *m, uint64_t start, uint64_t len,
		     enum vmb_bstate st);

/* State of block blk; *run (if non-NULL) gets the number of blocks from blk on that
 * share the state (for a trailing ABSENT run: VMB_BLOCK_MAX - blk). */
enum vmb_bstate vmb_blockmap_get(const struct vmb_blockmap *m, uint64_t blk,
				 uint64_t *run);

/* First block >= blk whose state is in mask (VMB_M_*), stored in *found.
 * Returns 0, or -ENXIO when there is none below VMB_BLOCK_MAX. */
int vmb_blockmap_next(const struct vmb_blockmap *m, uint64_t blk, unsigned mask,
		      uint64_t *found);

/* Forget every block >= nblocks (they become ABSENT). */
void vmb_blockmap_truncate(struct vmb_blockmap *m, uint64_t nblocks);

/* dst = copy of src (dst must be initialised; its old content is freed; its track
 * is dropped). Returns 0 or -ENOMEM (dst unchanged). */
int vmb_blockmap_copy(struct vmb_blockmap *dst, const struct vmb_blockmap *src);

/* dst = m, except that every block in an extent of mask (any state) has the state
 * val has there (ABSENT included). One pass, O(m->n + mask->n + val->n), where
 * applying val's extents one by one with vmb_blockmap_set would move m's array
 * once per extent (the replay of a map's journal, journal.c). dst must be
 * initialised and differ from m; its old content is freed. 0 or -ENOMEM (dst
 * unchanged). */
int vmb_blockmap_patch(struct vmb_blockmap *dst, const struct vmb_blockmap *m,
		       const struct vmb_blockmap *mask, const struct vmb_blockmap *val);

/* 1 if the two maps describe the same states, else 0. */
int vmb_blockmap_equal(const struct vmb_blockmap *a, const struct vmb_blockmap *b);

/* Check the invariants (sorted, non-overlapping, merged, len > 0, states valid,
 * counters right, within VMB_BLOCK_MAX). Returns 0 or -EINVAL. */
int vmb_blockmap_check(const struct vmb_blockmap *m);

#endif
