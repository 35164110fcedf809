/* base.h - what lies under a file's writable delta: an immutable source of blocks.
 *
 * A file's content is its delta (its backing file and block map, image.h) over an
 * optional base. Where the delta's map says VMB_ABSENT, the bytes come from the base
 * (below the delta's base limit; above it, zeros). A base is a chain of frozen local
 * layers (layer/layer.h) today, a remote image later (remote/): the image knows only
 * this interface.
 *
 * A base is immutable: its size, its map and its bytes never change while anyone holds
 * a reference, so it may be shared by any number of images and threads without a lock
 * (each implementation guards its own lazily built state). Reference counting: whoever
 * got a base from a resolver (or vmb_base_get) owns one reference and drops it with
 * vmb_base_put; the last put frees it.
 */
#ifndef VMB_BASE_H
#define VMB_BASE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "map/blockmap.h"
#include "base/err.h"

#define VMB_BASE_ID_LEN 32   /* a base's id: 32 lowercase hex digits */

struct vmb_base;

/* A piece of a range of a base handed out for splicing: len bytes at offset pos of
 * fd (pos is the offset in that descriptor, not in the base). owner and tag are for
 * the base that gave it out (its pieces_done releases what tag says; owner NULL:
 * nothing to release). */
struct vmb_base_piece {
	int fd;
	uint64_t pos;
	size_t len;
	struct vmb_base *owner;
	long tag;
};

struct vmb_base_ops {
	/* The state of block blk as the base reads: VMB_DATA or VMB_ZERO, never
	 * VMB_ABSENT (blocks past the base's size are VMB_ZERO). *run gets the number of
	 * blocks from blk on (>= 1) that share the state and, for DATA, the same source.
	 * For DATA, *fd gets a descriptor from which those blocks can be read at their
	 * own offsets (pread, splice, copy_file_range: blk * 4096 in the file is blk *
	 * 4096 of the base), valid while the caller holds its reference; -1 when the
	 * bytes must be read with read (a remote base). O(log extents), no I/O. */
	enum vmb_bstate (*lookup)(struct vmb_base *b, uint64_t blk, uint64_t *run, int *fd);
	/* Read len bytes at off (within the size). Returns len, or -errno with err set
	 * ("cannot read layer 'ID' of 'NAME': ..."); never a short count, never zeros in
	 * place of bytes it could not read. */
	ssize_t (*read)(struct vmb_base *b, void *buf, size_t len, uint64_t off,
			struct vmb_err *err);
	/* Free the base (called by the last vmb_base_put). */
	void (*destroy)(struct vmb_base *b);
	/* Optional (NULL: not offered). When every byte of [off, off + len) (within the
	 * size, len > 0) can be read now from descriptors, without fetching or waiting
	 * (a remote base: its cached chunks, each a file of its own): fills pc[0..n)
	 * with pieces that cover the range in order, exactly, and returns n (1..max);
	 * the descriptors stay valid until pieces_done(pc[0].owner, pc, n), which must
	 * follow (every piece has that owner: the base that gave them out, b or one
	 * below it; a caller that may lose its reference to b meanwhile holds one on
	 * the owner). Else 0 and nothing to release (use read). It counts as a read
	 * (readahead). */
	int (*pieces)(struct vmb_base *b, uint64_t off, size_t len,
		      struct vmb_base_piece *pc, int max);
	void (*pieces_done)(struct vmb_base *b, struct vmb_base_piece *pc, int n);
};

struct vmb_base {
	const struct vmb_base_ops *ops;
	char id[VMB_BASE_ID_LEN + 1];   /* the top layer's id, NUL-terminated */
	uint64_t size;                  /* logical size in bytes */
	uint64_t data_blocks;           /* blocks that read as DATA through the base */
	unsigned depth;                 /* layers in the chain (1 for one layer) */
	int refs;                       /* atomic (__atomic builtins) */
};

/* Take / drop a reference. vmb_base_put(NULL) is a no-op. */
void vmb_base_get(struct vmb_base *b);
void vmb_base_put(struct vmb_base *b);

/* How an image finds its base by id: the vfs and the store commands pass one backed
 * by the store's layers (layer/layer.h, vmb_layers_resolver). Returns 0 with a new
 * reference in *out, or -errno with err saying which base failed and why (-EIO for a
 * missing or corrupt layer: "layer 'ID' is missing (STORE/.vmbundlefs/layers/ID.map)"). */
struct vmb_base_resolver {
	int (*open)(void *arg, const char *id, struct vmb_base **out, struct vmb_err *err);
	void *arg;
};

#endif
