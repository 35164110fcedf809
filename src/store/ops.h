/* ops.h - the structural operations on a store (issue 10, LAYERS.md): clone,
 * snapshot (take, delete, list), flatten, gc, deps and the space of bundles.
 *
 * One function per operation; the CLI calls them on a store it opened exclusively
 * (not mounted), the daemon calls the same functions with its hooks (its open
 * images are frozen and rebound by it, a bundle's writers are paused around a
 * snapshot, gc asks it which layers its open files use). The caller serialises
 * operations: offline by the store's exclusive lock (VMB_STORE_EXCLUSIVE), in the
 * daemon by a structural mutex, so gc never runs beside a clone, snapshot or
 * flatten. None of them is thread-safe against another on the same store.
 *
 * Crash safety: every step leaves the store in the old or the new state, or a
 * state fsck and gc clean up (an unreferenced layer, a staging directory of a
 * clone that died: STORE/.vmbundlefs/staging/cln.*). A test hook: with
 * VMB_OP_KILL_AT=N in the environment, an operation kills its own process
 * (SIGKILL) right after its step N, to test exactly that; VMB_OP_STOP_AT=N
 * stops it there (SIGSTOP) for a test to act beside it. Steps of `vmbundlefs
 * publish` ("publish:1": its snapshots are taken, src/cli/cli_publish.c;
 * "publish:2": DEST's index read, store/publish.c).
 */
#ifndef VMB_OPS_H
#define VMB_OPS_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include "base/err.h"
#include "map/base.h"
#include "store/store.h"

struct vmb_layers;

/* Files up to this size are copied by clone (and stay plain files); larger ones
 * are frozen and shared. A file that already has a base is always shared. */
#define VMB_CLONE_COPY_MAX (1u << 20)

struct vmb_opctx {
	struct vmb_store *store;
	struct vmb_layers *layers;
	const struct vmb_log *log;
	/* Hooks, all optional (NULL offline): the daemon's. */
	void *arg;
	/* Write barrier on a bundle (pause: new changes wait, in-flight ones finish,
	 * its open images are drained). */
	int  (*pause)(void *arg, const char *bundle, struct vmb_err *err);
	void (*resume)(void *arg, const char *bundle);
	/* Freeze dirfd/name (relpath inside the store, "BUNDLE/dir/file", to find
	 * its node): the daemon freezes its open image and rebinds the node; NULL:
	 * the image is opened here, frozen, closed. Contract of vmb_image_freeze. */
	int  (*freeze)(void *arg, int dirfd, const char *name, const char *relpath,
		       char id[VMB_BASE_ID_LEN + 1], struct vmb_err *err);
	/* Same for flatten. */
	int  (*flatten)(void *arg, int dirfd, const char *name, const char *relpath,
			struct vmb_err *err);
	/* gc: 1 when layer id is used by a file open in the daemon. */
	int  (*layer_busy)(void *arg, const char *id);
};

/* Clone bundle SRC (or snapshot "BUNDLE@NAME") into a new bundle DST that shares
 * every layer: files > VMB_CLONE_COPY_MAX (or with a base) become fresh empty
 * deltas over the frozen content, smaller plain files are copied; directories,
 * symlinks, FIFOs, modes, owners, times and user.* xattrs are kept; hard links
 * between files are not. DST is built in STORE/.vmbundlefs/staging/ and renamed
 * into place last: on any failure nothing named DST exists.
 * -ENOENT no SRC, -EEXIST DST exists, -EINVAL bad name. */
int vmb_op_clone(struct vmb_opctx *c, const char *src, const char *dst,
		 struct vmb_err *err);

/* Snapshot bundle: pause, freeze every regular file (small plain ones copied
 * into a layer so they stay plain), write the manifest, resume. name NULL: the
 * UTC time "YYYYmmddTHHMMSSZ". *where: a malloc'ed "BUNDLE@NAME" (the manifest's
 * file name in STORE/.vmbundlefs/snapshots/, and the name under MNT/.snapshots/).
 * -ENOENT no bundle, -EEXIST name taken, -EINVAL bad name. */
int vmb_op_snapshot(struct vmb_opctx *c, const char *bundle, const char *name,
		    char **where, struct vmb_err *err);
/* Remove snapshot "BUNDLE@NAME" (its manifest; its layers go with gc when nothing
 * else uses them). -ENOENT when there is no such snapshot. */
int vmb_op_snapshot_delete(struct vmb_opctx *c, const char *spec, struct vmb_err *err);

struct vmb_snapshot_info {
	char *spec;          /* "BUNDLE@NAME" */
	int64_t created;
	uint64_t files;
	uint64_t logical;    /* sum of file sizes */
	int damaged;         /* its manifest is unreadable (err says why on stderr/log) */
};
/* The snapshots of bundle (NULL: all), sorted by spec. */
int vmb_op_snapshot_list(struct vmb_opctx *c, const char *bundle,
			 struct vmb_snapshot_info **out, size_t *n, struct vmb_err *err);
void vmb_snapshot_list_free(struct vmb_snapshot_info *l, size_t n);

/* Make every regular file of bundle a plain file again (no base), readable
 * without vmbundlefs. Idempotent. */
int vmb_op_flatten(struct vmb_opctx *c, const char *bundle, struct vmb_err *err);

struct vmb_gc_result {
	uint64_t layers_removed, bytes_freed, orphans_removed, staging_removed;
	uint64_t layers_kept;
};
/* Remove layers nothing references (a file's base xattr, a manifest, another
 * layer's base, a file open in the daemon: layer_busy), orphan .data files,
 * leftovers of clones and manifests that died. */
int vmb_op_gc(struct vmb_opctx *c, struct vmb_gc_result *res, struct vmb_err *err);

/* The temporary snapshots of `vmbundlefs publish` (pubsnap.c). The publish holds
 * a locked directory STORE/.vmbundlefs/staging/pub.<HOLDER> (vmb_op_publish_hold)
 * before it takes its snapshots, named by vmb_op_publish_snapname
 * ("publish-<HOLDER>-<i>", <HOLDER> "<pid>.<hex>"), and lets it go
 * (vmb_op_publish_release) only after it deleted them. vmb_op_publish_sweep finds
 * (remove: deletes, vmb_op_snapshot_delete) the snapshots with such a name whose
 * holder is gone (its publish died), never one of a publish still running; each
 * is told to found(arg, "BUNDLE@NAME", r, e): r 0 deleted, 1 found only, -errno
 * (message in e). Returns how many were found (remove: deleted). Snapshot names
 * of another form are never touched. */
#define VMB_OPS_PUBLISH_SNAP_PREFIX "publish-"
struct vmb_pubhold {
	int stagefd, fd;          /* the staging directory, the held one (-1: none) */
	char holder[NAME_MAX + 1];
};
int vmb_op_publish_hold(struct vmb_store *s, struct vmb_pubhold *h, struct vmb_err *err);
void vmb_op_publish_snapname(const struct vmb_pubhold *h, int i, char *buf, size_t size);
void vmb_op_publish_release(struct vmb_pubhold *h);
uint64_t vmb_op_publish_sweep(struct vmb_opctx *c, int remove,
			      void (*found)(void *arg, const char *spec, int r,
					    const struct vmb_err *e),
			      void *arg);

/* deps: the layers a bundle (or "BUNDLE@NAME") stands on. */
struct vmb_dep_file {
	char *path;                  /* relative to the store */
	uint64_t size;
	uint64_t delta_bytes;        /* DATA of its own delta (0 for a snapshot) */
	char **chain;                /* layer ids, top first */
	size_t depth;
};
struct vmb_dep_layer {
	char id[VMB_BASE_ID_LEN + 1];
	uint64_t data_bytes;         /* bytes of its .data (allocated) */
	char **users;                /* bundles and BUNDLE@NAME snapshots on it */
	size_t nusers;
};
struct vmb_deps {
	struct vmb_dep_file *files;
	size_t nfiles;
	struct vmb_dep_layer *layers;
	size_t nlayers;
};
int vmb_op_deps(struct vmb_opctx *c, const char *bundle, struct vmb_deps *out,
		struct vmb_err *err);
void vmb_deps_free(struct vmb_deps *d);

/* ls: own bytes (delta data + layers only this bundle's chains use) and shared
 * bytes (layers others use too) of every bundle, by name. */
struct vmb_space {
	char *name;
	uint64_t own, shared;
};
int vmb_op_space(struct vmb_opctx *c, struct vmb_space **out, size_t *n,
		 struct vmb_err *err);
void vmb_space_free(struct vmb_space *s, size_t n);

/* ---- remote bundles (pull.c, prefetch.c; issue 11) ---- */
struct vmb_remote;
struct vmb_pub_bundle;

/* Pull bundle BUNDLE of the published store at url into a new local bundle NAME
 * (NULL: BUNDLE): small files written whole, images as empty deltas over remote
 * layers (layers/<ID>.remote); dirs, symlinks, modes, mtimes and user.* xattrs as
 * published, owned by the caller. Sets r as c->layers' remote context. -EEXIST
 * NAME exists, -ENOENT no such bundle at url, -EINVAL bad name. */
int vmb_op_pull(struct vmb_opctx *c, struct vmb_remote *r, const char *url,
		const char *bundle, const char *name, struct vmb_err *err);
/* vmb_op_pull of the bundle whose manifest object is manifest (a digest the
 * caller took from a verified top index: a mount of the URL, which pulls its
 * bundles into its shadow store when they are first looked up, all from the top
 * index it was mounted with). The new bundle is NAME. keep (0: no check): the
 * pull is refused (-ENOSPC, nothing written) when the bundle's small files would
 * leave less than keep bytes free in the store's file system. */
int vmb_op_pull_at(struct vmb_opctx *c, struct vmb_remote *r, const char *url,
		   const char *name, const uint8_t manifest[32], uint64_t keep,
		   struct vmb_err *err);
/* The verified manifest of bundle at url (top index, then the manifest object). */
int vmb_pull_manifest(struct vmb_remote *r, const char *url, const char *bundle,
		      struct vmb_pub_bundle *m, struct vmb_err *err);

/* Prefetch: make every data chunk of the remote base of file dirfd/name present in
 * the cache. progress (may be NULL) is called after each chunk with the bytes done
 * and the total (of data chunks); rate: bytes/s cap (0: none). A file without a
 * remote base: 0, *total 0. */
int vmb_prefetch_file(struct vmb_layers *ls, int dirfd, const char *name,
		      uint64_t rate, void (*progress)(void *arg, uint64_t done,
						      uint64_t total),
		      void *arg, uint64_t *fetched, struct vmb_err *err);

/* After a prefetch: the bytes of the data chunks of the remote base of file
 * dirfd/name that are in the cache now (*kept) and all of them (*total); a file
 * without a remote base: 0, 0. One look per chunk. */
int vmb_prefetch_kept(struct vmb_layers *ls, int dirfd, const char *name, uint64_t *kept,
		      uint64_t *total, struct vmb_err *err);

/* The test hook: SIGKILL the process after step `step` of an operation when
 * VMB_OP_KILL_AT says so (see above). */
void vmb_op_step(const char *op, unsigned step);

#endif
