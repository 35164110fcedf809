/* layer_int.h - what the files of src/layer/ share (not for other modules).
 *
 * struct vmb_layers (layers.c) owns the layers directory's descriptor and path and
 * the cache of open chains: a sorted array of (id, chain) under `mu`, a recursive
 * mutex (opening a chain opens its base under the same lock, and a failed open puts
 * the base, which may destroy it, which takes the lock again). The cache holds no
 * reference: a chain's destroy removes its entry (when the entry is still its own: a
 * get that met a chain whose count had reached zero replaced it).
 *
 * struct vmb_chain (chain.c) is one open layer with its chain below: immutable after
 * chain_open; lv[] lists the layers top down (lv[0] is the chain itself, the others
 * are kept alive by the reference on `below`), runs[] its merged map.
 */
#ifndef VMB_LAYER_INT_H
#define VMB_LAYER_INT_H

#include <pthread.h>
#include "layer/layer.h"

/* One run of the merged map: blocks [start, start + len) read from layer lv[src],
 * except that bytes at or past zero_from read zeros. zero_from is UINT64_MAX but in
 * a run of one block that a layer above its source ends inside (that layer's
 * content ends there, while the source's file goes on): lookup gives no descriptor
 * for such a block (the bytes must be read with read). */
struct vmb_run {
	uint64_t start;
	uint64_t len;
	uint64_t zero_from;
	uint32_t src;
};

struct vmb_chain {
	struct vmb_base base;              /* first: what callers see */
	struct vmb_layers *ls;             /* whose cache it is in; NULL once detached */
	struct vmb_base *below;            /* its base chain (one reference), or NULL */
	int fd;                            /* <id>.data, O_RDONLY */
	uint64_t limit;                    /* of its own base */
	char *data_path;                   /* ".../layers/<id>.data", for messages */
	struct vmb_chain *lv[VMB_LAYER_DEPTH_MAX];
	struct vmb_run *runs;
	size_t nruns;
	struct vmb_base *remote;           /* a remote layer (<id>.remote): the remote
					      image it reads from (one reference); fd -1 */
};

struct vmb_layers {
	int dirfd;                         /* layers/, or -1 when it does not exist */
	char *path;                        /* ".../.vmbundlefs/layers" */
	const struct vmb_log *log;
	pthread_mutex_t mu;                /* recursive; guards what follows */
	struct vmb_layers_ent { char id[VMB_BASE_ID_LEN + 1]; struct vmb_chain *c; } *cache;
	size_t n, cap;
	struct vmb_remote *remote;         /* opens .remote layers; NULL: they fail */
};

/* The ops of every chain (chain.c). */
extern const struct vmb_base_ops vmb_chain_ops;

static inline uint64_t vmb_layer_blocks(uint64_t size)
{
	return size / VMB_BLOCK_SIZE + (size % VMB_BLOCK_SIZE != 0);
}

/* The merged map of a layer whose own map is own (DATA and ZERO), size bytes
 * long, over chain below (NULL: none) with base limit limit: own DATA blocks as
 * src 0, blocks own leaves ABSENT below min(limit, its blocks) as below's runs with
 * src + 1 (the last block's zero_from at most size); adjacent runs of one src
 * merged. *runs malloc'ed (NULL when *n is 0). 0 or -ENOMEM. */
int vmb_chain_merge(const struct vmb_blockmap *own, uint64_t size,
		    const struct vmb_chain *below, uint64_t limit, struct vmb_run **runs,
		    size_t *n);

/* Open the chain of layer id, with ls->mu held (chain.c): read and check its .map,
 * open its .data, get its base (at most depth_max - 1 deep) through the cache, build
 * the merged map. The chain is not put in the cache (the caller does). -EIO with a
 * message naming the layer and its file, -ENOMEM, -EMFILE... */
int vmb_chain_open(struct vmb_layers *ls, const char *id, uint64_t depth_max,
		   struct vmb_chain **out, struct vmb_err *err);

/* Open the remote layer id (<id>.remote) as a chain of depth 1 whose one layer
 * reads from a remote image (remote_layer.c); with ls->mu held. -ENOENT (no
 * message) when there is no <id>.remote. */
int vmb_chain_open_remote(struct vmb_layers *ls, const char *id, struct vmb_chain **out,
			  struct vmb_err *err);

/* Get id from the cache or open it, with ls->mu held (layers.c). */
int vmb_layers_get_locked(struct vmb_layers *ls, const char *id, uint64_t depth_max,
			  struct vmb_chain **out, struct vmb_err *err);

/* Remove c from ls's cache when its entry is c (layers.c; takes ls->mu). */
void vmb_layers_forget(struct vmb_layers *ls, struct vmb_chain *c);

/* Read the whole of regular file dirfd/name into a malloc'ed *buf (layers.c). -errno
 * without a message (the caller names the file). */
int vmb_layers_read_file(int dirfd, const char *name, void **buf, size_t *len);

/* Read and decode <id>.map into m and h, with the messages of get: -EIO "layer 'ID'
 * is missing (PATH)" / "... is corrupt (...): PATH", -ENOMEM (layers.c). *missing
 * (may be NULL) is set to 1 when the .map does not exist. */
int vmb_layers_load_map(struct vmb_layers *ls, const char *id, struct vmb_blockmap *m,
			struct vmb_layer_hdr *h, int *missing, struct vmb_err *err);

/* Copy bytes [off, off + len) of src to the same offsets of dst: copy_file_range,
 * falling back to pread/pwrite. A source that ends early is -EIO (create.c). */
int vmb_layer_copy(int dst, int src, uint64_t off, uint64_t len);

/* 1 when name is a temporary of vmb_layers_create_remote (".<ID>.<8 hex>.rtmp"). */
int vmb_layer_is_rtmp(const char *name);

#endif
