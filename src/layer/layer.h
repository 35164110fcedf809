/* layer.h - a store's immutable layers and the chains they form (issue 10).
 *
 * A layer is a file's frozen content: STORE/.vmbundlefs/layers/<ID>.data (its
 * delta's backing file, DATA blocks at their own offsets, holes elsewhere, mode
 * 0400, never written again) and <ID>.map (the layer map, below). ID: 32 lowercase
 * hex digits, 128 random bits. A layer exists once its .map exists; a .data without
 * its .map is the leftover of a crash (vmb_layers_list reports it, gc removes it).
 * A layer's .map names its own base layer (or none) and its base limit: blocks >=
 * the limit never read the base; blocks >= ceil(size / 4096) read zeros.
 *
 * A chain is a layer and its bases down to one without a base, at most
 * VMB_LAYER_DEPTH_MAX layers. An open chain is a struct vmb_base (map/base.h): its
 * merged map (one sorted array of runs: block run -> the layer whose .data holds it;
 * the gaps read zeros) is built once when it is opened, so lookup is O(log runs)
 * and read a pread from the right layer. The descriptor lookup gives for a DATA run
 * is the .data of the layer holding it; that file ends at that layer's size (its
 * end of file reads as zeros: the content ends there). A block inside which a layer
 * above its source ends (a file shrunk to mid-block, then frozen) has no
 * descriptor (fd -1: read it with read, which gives zeros past that end). read
 * never returns a short count nor zeros in place of bytes it could not read (a
 * .data shorter than its layer: -EIO naming the layer and its file).
 *
 * Layer map format (<ID>.map, little-endian; the page format of map/pages.h, see
 * vmbundlefs(5) "Layers"): page 0: 0 magic "VMBLAYR1"  8 u32 version (1)
 *   12 u32 block size (4096)  16..55 the stamp of <ID>.data when the layer was
 *   made (u64 ino, u64 size = the layer's size in bytes, i64 mtime sec, u32 mtime
 *   nsec, u32 btime nsec, i64 btime sec)  56 u64 extent count  64 u64 data blocks
 *   72 u64 zero blocks  80 u32 flags (bit 0: has a base)  84 u32 reserved (0)
 *   88..119 the base's id (32 ASCII hex; zeros without a base)  120 u64 base limit
 *   (blocks; 0 without a base)  128 u64 depth (layers in the chain, this one
 *   included: 1 without a base, the base's + 1 with one)  136.. zero; pages 1..: the
 *   extents (DATA and ZERO, all below ceil(size / 4096)) as in pages.h.
 *
 * Ownership and reference counts: struct vmb_layers is owned by whoever opened it;
 * it keeps a cache of the open chains keyed by id (each layer is opened once per
 * process: every chain that stands on it shares it), holding no reference itself: a
 * chain leaves the cache when its last reference goes. Every vmb_base this module
 * hands out is one reference, dropped with vmb_base_put; a chain holds one
 * reference on its base chain. All bases must be put before vmb_layers_close.
 *
 * Locking: one mutex per struct vmb_layers guards its cache (taken by get, the
 * resolver, remove, open_ids, and by a chain's destroy); it is held while a chain is
 * opened (file I/O: layers are opened rarely), never while reading. An open chain is
 * immutable: lookup and read take no lock and may run from any number of threads.
 * create, create_copy, stat and list take no lock: they touch only files (a layer
 * being made is invisible until its .map is renamed in).
 */
#ifndef VMB_LAYER_H
#define VMB_LAYER_H

#include <stddef.h>
#include <stdint.h>
#include "map/base.h"
#include "map/blockmap.h"
#include "map/sidecar.h"
#include "base/err.h"

#define VMB_LAYERS_DIR      "layers"   /* in STORE/.vmbundlefs */
#define VMB_LAYER_DEPTH_MAX 16         /* deeper chains are merged by create */
#define VMB_LAYER_MAGIC     "VMBLAYR1"
#define VMB_LAYER_VERSION   1u
/* Modes: the directory and the .map files have store.h's metadata modes
 * (VMB_META_DIR_MODE 0700, VMB_META_FILE_MODE 0600; store/ sits above this module);
 * the .data files are read-only. */
#define VMB_LAYERS_DIR_MODE 0700
#define VMB_LAYER_MAP_MODE  0600
#define VMB_LAYER_DATA_MODE 0400
#define VMB_LAYER_REMOTE_MAGIC "vmbundlefs-remote 1"
#define VMB_LAYER_URL_MAX   4096
#define VMB_LAYER_MIRRORS   4        /* other URLs a remote layer keeps */

struct vmb_layers;
struct vmb_remote;

/* ---- the layer map (layer_map.c) ---- */

struct vmb_layer_hdr {
	struct vmb_stamp stamp;            /* of <ID>.data; stamp.size = the layer's size */
	char base[VMB_BASE_ID_LEN + 1];    /* "" without a base */
	uint64_t limit;                    /* base limit in blocks (0 without a base) */
	uint64_t depth;                    /* 1 .. VMB_LAYER_DEPTH_MAX */
};

/* Encode map m (DATA and ZERO extents, all below ceil(h->stamp.size / 4096)) and
 * header h into a malloc'ed buffer (*buf, caller frees). 0, -EINVAL for a header or
 * map the format cannot hold, -ENOMEM. */
int vmb_layer_map_encode(const struct vmb_blockmap *m, const struct vmb_layer_hdr *h,
			 void **buf, size_t *len, struct vmb_err *err);

/* Decode a layer map; id names the layer in messages ("layer 'ID' is corrupt (bad
 * checksum at offset 4096)", "layer 'ID' is truncated (5000 bytes, expected
 * 8192)"). m (initialised) is replaced on success, unchanged on failure; h is
 * filled on success. -EBADMSG corrupt or truncated, -EPROTONOSUPPORT newer
 * version, -ENOMEM. */
int vmb_layer_map_decode(const void *buf, size_t len, const char *id,
			 struct vmb_blockmap *m, struct vmb_layer_hdr *h, struct vmb_err *err);

/* ---- the layers directory (layers.c) ---- */

/* Open the layers of the store whose metadata directory is metafd (not consumed;
 * STORE/.vmbundlefs), creating layers/ (VMB_LAYERS_DIR_MODE) when missing. On a
 * read-only store without layers/, opens an empty set (every get: missing). log
 * (may be NULL: stderr; borrowed, must outlive *out) receives what has no caller
 * (a chain left open at close). */
int vmb_layers_open(struct vmb_layers **out, int metafd, const struct vmb_log *log,
		    struct vmb_err *err);

/* Close; NULL-safe. Every base got from ls must have been put before (a chain
 * still open is detached from ls, logged, and freed by its last put). */
void vmb_layers_close(struct vmb_layers *ls);

/* The layers directory's path ("STORE/.vmbundlefs/layers", for messages) and
 * descriptor (-1 when it does not exist); owned by ls. */
const char *vmb_layers_path(const struct vmb_layers *ls);
int vmb_layers_dirfd(const struct vmb_layers *ls);

/* A resolver (map/base.h) opening bases from ls (arg = ls; valid while ls is). */
struct vmb_base_resolver vmb_layers_resolver(struct vmb_layers *ls);

/* Open the chain of layer id (or take another reference on it when it is open):
 * 0 and one new reference in *out, or -errno with *out NULL. A missing or corrupt
 * layer anywhere in the chain is -EIO with a message naming that layer and its
 * file ("layer 'ID' is missing (STORE/.vmbundlefs/layers/ID.map)", "layer 'ID' is
 * corrupt (bad checksum at offset 4096): PATH/ID.map", followed by "; needed by
 * layer 'TOP'" when it is not id itself); an invalid id -EINVAL. */
int vmb_layers_get(struct vmb_layers *ls, const char *id, struct vmb_base **out,
		   struct vmb_err *err);

/* 1 when b is a chain of ls's layers (so that it can be a layer's base). */
int vmb_layers_owns(const struct vmb_layers *ls, const struct vmb_base *b);

/* Make a layer of a file's frozen content. fd (the caller's, not consumed): the
 * backing file, open for reading, its size `size`, its content map (DATA/ZERO;
 * extents at or past ceil(size / 4096) are ignored) over base (NULL: none; else a
 * chain of ls, referenced by the caller) with base limit `limit` (clipped to the
 * sizes of the layer and of its base). Steps: fsync(fd); its inode linked as
 * layers/<ID>.data (linkat AT_EMPTY_PATH, else /proc/self/fd/N), its mode left
 * alone (the inode is still the caller's file: the caller replaces its name, then
 * makes the layer read-only with vmb_layers_seal, so that a crash in between never
 * leaves the file's mode changed); <ID>.map written atomically (temporary <ID>.tmp, fsync, rename, fsync of
 * the directory). A crash before the end leaves at most an orphan .data/.tmp.
 * When base->depth + 1 > VMB_LAYER_DEPTH_MAX, writes a merged layer instead: a new
 * .data holding every block that reads as data through the chain (copy_file_range
 * from the layers' files, O(data)), its map those blocks, no base; fd's inode is
 * then neither linked nor chmod'ed. The new id goes to id. 0 or -errno (-EXDEV:
 * fd is not on the store's filesystem). */
int vmb_layers_create(struct vmb_layers *ls, int fd, const struct vmb_blockmap *map,
		      uint64_t size, struct vmb_base *base, uint64_t limit,
		      char id[VMB_BASE_ID_LEN + 1], struct vmb_err *err);

/* The same, always as a merged layer (a copy of the file's content through its
 * chain, O(data)): fd's inode is neither linked nor chmod'ed, so the file stays as
 * it was (one with other hard links: its other names keep naming the live file). */
int vmb_layers_create_merged(struct vmb_layers *ls, int fd, const struct vmb_blockmap *map,
			     uint64_t size, struct vmb_base *base, uint64_t limit,
			     char id[VMB_BASE_ID_LEN + 1], struct vmb_err *err);

/* Make layer id's .data read-only (VMB_LAYER_DATA_MODE), after vmb_layers_create
 * once the caller's name no longer names its inode. A layer that a crash left
 * unsealed works the same; fsck --repair seals it. 0 or -errno. */
int vmb_layers_seal(struct vmb_layers *ls, const char *id, struct vmb_err *err);

/* A layer without base holding a copy of the first `size` bytes of srcfd (small
 * files; not consumed; read with pread/copy_file_range, only its data segments
 * (SEEK_DATA) copied, so holes stay holes). Same durability as create. */
int vmb_layers_create_copy(struct vmb_layers *ls, int srcfd, uint64_t size,
			   char id[VMB_BASE_ID_LEN + 1], struct vmb_err *err);

/* Facts for deps, ls, gc and fsck, from the .map (decoded and checked) and an
 * fstat of the .data. */
struct vmb_layer_info {
	char id[VMB_BASE_ID_LEN + 1];
	char base[VMB_BASE_ID_LEN + 1];   /* "" without a base */
	uint64_t size;                    /* bytes */
	uint64_t limit;                   /* base limit, blocks */
	uint64_t depth;
	uint64_t data_blocks;             /* DATA blocks of this layer's own map */
	uint64_t alloc_bytes;             /* st_blocks * 512 of its .data */
	int remote;                       /* a remote layer (<id>.remote): no .map nor
					     .data, no base, depth 1 */
};
/* 0, -ENOENT (no .map: no such layer; message names the path), -EIO for a corrupt
 * .map or a missing .data (message as for get), -EINVAL invalid id. */
int vmb_layers_stat(struct vmb_layers *ls, const char *id, struct vmb_layer_info *li,
		    struct vmb_err *err);

/* The content of layers/: ids of the layers (a .map exists; sorted), orphans (a
 * .data or .tmp without its .map; sorted), stray names (anything else but .rtmp temporaries, with their
 * full names: fsck reports them). Free with vmb_layer_list_free. */
struct vmb_layer_list {
	char (*ids)[VMB_BASE_ID_LEN + 1];
	size_t n;
	char (*orphans)[VMB_BASE_ID_LEN + 1];
	size_t norphans;
	char **stray;
	size_t nstray;
};
int vmb_layers_list(struct vmb_layers *ls, struct vmb_layer_list *out,
		    struct vmb_err *err);
void vmb_layer_list_free(struct vmb_layer_list *l);

/* The temporaries of remote layers (".<ID>.<8 hex>.rtmp", vmb_layers_create_remote,
 * which holds a flock on its temporary until its rename) whose writer died: each
 * one nobody holds is told to found(arg, name, r, e) (may be NULL): r 0 removed,
 * 1 found only (remove 0), -errno (message in e). Returns how many were found
 * (remove: removed). vmb_layers_list leaves them out. */
uint64_t vmb_layers_sweep_rtmp(struct vmb_layers *ls, int remove,
			       void (*found)(void *arg, const char *name, int r,
					     const struct vmb_err *e),
			       void *arg);

/* Remove layer (or orphan) id: its .map first (then it no longer exists), then its
 * .data and any .tmp, then fsync the directory. -EBUSY when the layer is open in
 * this process (a chain of ls stands on it), -ENOENT when none of its files exist.
 * The caller (gc) makes sure nothing on disk refers to it. */
int vmb_layers_remove(struct vmb_layers *ls, const char *id, struct vmb_err *err);

/* The ids of every layer open in this process (each layer of each open chain),
 * sorted: *ids malloc'ed (caller frees; NULL when *n is 0). 0 or -ENOMEM. */
int vmb_layers_open_ids(struct vmb_layers *ls, char (**ids)[VMB_BASE_ID_LEN + 1],
			size_t *n);

/* The layer of a chain that a DATA run found by lookup reads from (for messages and
 * tests): the id of the layer whose .data fd is. NULL when fd is not one of b's. */
const char *vmb_layers_fd_id(const struct vmb_base *b, int fd);

/* ---- remote layers (remote_layer.c; issue 11, REMOTE.md §4) ----
 *
 * A remote layer is a remote image standing in the store as a layer: the file
 * layers/<ID>.remote (text, written atomically; replaced, atomically, only to add
 * a mirror):
 *     vmbundlefs-remote 1
 *     url <%-escaped URL of the published store>
 *     mirror <%-escaped URL>       0 to VMB_LAYER_MIRRORS lines: other published
 *                                  stores the same image was pulled from
 *     index <64 hex: the digest of the image index object>
 *     size <bytes>
 *     end <crc32c of every byte before this line, 8 hex>
 * The image's bytes are the same from every URL (content-addressed): a read tries
 * the URL that worked last, then the others (rimage.h).
 * ID = the first 32 hex digits of the index digest. It exists once its .remote
 * exists; it has no base (depth 1); local layers may stand on it. Opening it needs
 * the remote context given by vmb_layers_set_remote (the image index comes from the
 * cache's metadata, or is fetched); without one, get fails with -EIO ("layer 'ID'
 * is remote (URL) and no remote context was given"). */
struct vmb_layer_remote {
	char url[VMB_LAYER_URL_MAX];
	uint8_t index[32];
	uint64_t size;
	unsigned nmirrors;
	char mirror[VMB_LAYER_MIRRORS][VMB_LAYER_URL_MAX];
};
int vmb_layer_remote_encode(const struct vmb_layer_remote *rl, char **buf, size_t *len,
			    struct vmb_err *err);
/* -EBADMSG naming the layer and the field when anything is wrong. */
int vmb_layer_remote_decode(const void *buf, size_t len, const char *id,
			    struct vmb_layer_remote *rl, struct vmb_err *err);

/* Give ls the remote context its remote layers open with (borrowed: must outlive
 * every base of ls). */
void vmb_layers_set_remote(struct vmb_layers *ls, struct vmb_remote *r);

/* Write layers/<ID>.remote for rl (ID from rl->index; with rl's mirrors, none for
 * a pull). An existing one for the same index and size is kept; when rl->url is
 * none of its URLs (the same image pulled from a mirror) it is replaced by one
 * that adds rl->url as a mirror (the oldest mirror goes when VMB_LAYER_MIRRORS are
 * there). -EEXIST when the size differs (a damaged store). 0 or -errno. */
int vmb_layers_create_remote(struct vmb_layers *ls, const struct vmb_layer_remote *rl,
			     char id[VMB_BASE_ID_LEN + 1], struct vmb_err *err);

/* The remote image a chain of ls stands on (its bottom layer, when remote), or
 * NULL. Valid while the caller holds its reference on b. */
struct vmb_rimage *vmb_layers_remote_of(struct vmb_base *b);

/* Read layers/<id>.remote: 0, -ENOENT (not a remote layer; no message), -EIO with
 * a message naming the file when it is damaged. */
int vmb_layers_remote_info(struct vmb_layers *ls, const char *id,
			   struct vmb_layer_remote *rl, struct vmb_err *err);

/* Pin (remote/cache.h) in the cache of r the image indexes (CACHE/meta) of every
 * remote layer of ls, as the pin "layers-<SHA-256 of the layers directory's real
 * path>" (replaced; removed when ls has none): objects of meta/ are evicted with
 * the chunks, but a pulled bundle must open offline. Pull and the preload of a
 * mount call it. 0 or -errno. */
int vmb_layers_pin_remote(struct vmb_layers *ls, struct vmb_remote *r, struct vmb_err *err);
/* The name of that pin for the layers directory layers_path (absolute, real):
 * whoever removes a store (a URL mount's shadow store) removes its pin. */
#define VMB_LAYERS_PIN_NAME 72
void vmb_layers_pin_name(const char *layers_path, char name[VMB_LAYERS_PIN_NAME]);
/* Remove that pin (a store about to be removed: a URL mount's shadow store). */
void vmb_layers_unpin_remote(struct vmb_layers *ls, struct vmb_remote *r);

/* Preloading (a mount of a published store's URL): a thread of its own opens the
 * image of every remote layer of ls whose index is cached (CACHE/meta, so it never
 * fetches: vmb_remote_meta_local_only, even for an index damaged there; at most
 * VMB_REMOTE_KEEP images), which the remote context given by vmb_layers_set_remote
 * then keeps, so the first stat or open of a file finds its image decoded; it also
 * starts the fetcher of each URL (no request), so the first chunk fetch does not
 * start it. Failures are not reported: the open that needs the image meets them
 * again and says so. Start it in the process that serves (threads do not survive
 * a fork). stop (NULL-safe) makes the thread stop after the image it is loading
 * (local reads only) and joins it; call it before ls and the remote context are
 * closed. warm_url (may be NULL): a URL whose fetcher is started first (a mount
 * of a published store, whose bundles and layers come at their first lookups).
 * 0 or -errno (the thread could not start). */
struct vmb_layers_preload;
int vmb_layers_preload_start(struct vmb_layers *ls, const char *warm_url,
			     struct vmb_layers_preload **out, struct vmb_err *err);
void vmb_layers_preload_stop(struct vmb_layers_preload *p);
/* The number of images the preload opened so far (tests, logs). */
unsigned vmb_layers_preload_count(struct vmb_layers_preload *p);

#endif
