/* ops_int.h - what the structural operations (ops.h) share: bundle checks, the
 * freeze and flatten of one file (the daemon's hook, or an image opened here),
 * user.* xattrs, sparse copies, clone staging directories, tree removal, the scan
 * of who uses which layer. Not part of the library's interface. */
#ifndef VMB_OPS_INT_H
#define VMB_OPS_INT_H

#include <limits.h>
#include <stdint.h>
#include <sys/stat.h>
#include "store/ops.h"
#include "store/manifest.h"

#define VMB_OPS_STAGING_DIR VMB_STORE_STAGING_DIR   /* shared with import */
#define VMB_OPS_CLONE_PREFIX "cln."
#define VMB_OPS_PUBLISH_PREFIX "pub."     /* a publish's hold on its snapshots */

/* bundle names an existing bundle directory of the store: 0, -ENOENT ("no bundle
 * 'B' in store 'S'"), -EINVAL bad name. */
int vmb_ops_bundle_check(struct vmb_opctx *c, const char *bundle, struct vmb_err *err);

/* Freeze / flatten dirfd/name (relpath: "BUNDLE/..." for the daemon's hook and
 * messages). */
int vmb_ops_freeze(struct vmb_opctx *c, int dirfd, const char *name, const char *relpath,
		   char id[VMB_BASE_ID_LEN + 1], struct vmb_err *err);
int vmb_ops_flatten_file(struct vmb_opctx *c, int dirfd, const char *name,
			 const char *relpath, struct vmb_err *err);

/* The base xattr of fd: 1 with id, 0 none, -EIO malformed. */
int vmb_ops_base_of(int fd, const char *msgpath, char id[VMB_BASE_ID_LEN + 1],
		    struct vmb_err *err);

/* Copy the user.* xattrs of from to to (fds, not consumed). */
int vmb_ops_copy_xattrs(int from, int to, const char *msgpath, struct vmb_err *err);
/* Add the user.* xattrs of fd to the last record of m. */
int vmb_ops_xattrs_to_manifest(int fd, struct vmb_manifest *m, const char *msgpath,
			       struct vmb_err *err);

/* Save the map of a plain file the operation made (fd: its new backing file, after
 * its last change: times included), as fsck would rebuild it. */
int vmb_ops_save_plain_map(struct vmb_opctx *c, int fd, const char *msgpath,
			   struct vmb_err *err);

/* Copy [0, size) of src into dst (both fds), holes kept as holes. */
int vmb_ops_copy_sparse(int src, int dst, uint64_t size, const char *msgpath,
			struct vmb_err *err);

/* The clone and publish staging directories nobody holds (their process died):
 * "cln.*", "pub.*" (pubsnap.c), and "new.*" (vmb_store_staging_create died before
 * the rename; imports' "imp.*" are the next import's). Each one found is
 * told to found(arg, name, r) (may be NULL) with r = 0 when it was removed, -errno
 * (and the message in e) when it could not be, 1 when remove is 0 (only found).
 * Returns how many were found (remove: removed). */
uint64_t vmb_ops_staging_sweep(struct vmb_store *s, int remove,
			       void (*found)(void *arg, const char *name, int r,
					     const struct vmb_err *e),
			       void *arg);

/* STORE/.vmbundlefs/snapshots, created when create says so: an fd, or -errno
 * (-ENOENT when missing and not created). */
int vmb_ops_snapdir(struct vmb_store *s, int create, struct vmb_err *err);

/* Who uses which layer (deps.c). A user is a bundle ("vm") or a snapshot
 * ("vm@name"); every layer of a chain is used by whoever uses its top. */
struct vmb_ops_use {
	char id[VMB_BASE_ID_LEN + 1];
	char *user;
	size_t blen;             /* length of the user's bundle name ("B" of "B@N") */
};
struct vmb_ops_layer {           /* what the scan learnt of a layer */
	char id[VMB_BASE_ID_LEN + 1];
	char base[VMB_BASE_ID_LEN + 1];
	uint64_t alloc_bytes;
	int bad;                 /* missing or corrupt */
};
struct vmb_ops_scan {
	struct vmb_ops_use *u;   /* sorted by id, then user; unique */
	size_t n, cap;
	struct vmb_ops_layer *l; /* sorted by id */
	size_t nl, lcap;
};
/* strict: any file, manifest or layer that cannot be read fails the scan (gc: a
 * reference it cannot see must not let it remove a layer); otherwise such things
 * are logged and skipped. */
int vmb_ops_scan(struct vmb_opctx *c, int strict, struct vmb_ops_scan *sc,
		 struct vmb_err *err);
void vmb_ops_scan_free(struct vmb_ops_scan *sc);
/* What the scan knows of layer id (NULL: not used by anything). */
const struct vmb_ops_layer *vmb_ops_layer_of(const struct vmb_ops_scan *sc, const char *id);
/* The chain of id, top first, into ids (at most VMB_LAYER_DEPTH_MAX + 1): the
 * count. */
size_t vmb_ops_chain(const struct vmb_ops_scan *sc, const char *id,
		     char (*ids)[VMB_BASE_ID_LEN + 1], size_t max);
/* 1 when id has a user in sc (any, or other than `except` when given; a user
 * "B@..." counts as bundle B). */
int vmb_ops_used(const struct vmb_ops_scan *sc, const char *id, const char *except);

#endif
