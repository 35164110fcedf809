/* pathtree.h - what the two listings of a bundle's tree share: snapshot manifests
 * (store/manifest.c) and the bundle manifests of a published store
 * (remote/pubbundle.c). Both list records parents first, each with a relative path
 * and user.* extended attributes; the rules (man/vmbundlefs.5) are checked here,
 * the messages are the callers'.
 *
 * An xattr array (x, n) owns every name and value in it: vmb_xattrs_free frees
 * them and the array. No state, no locks. */
#ifndef VMB_PATHTREE_H
#define VMB_PATHTREE_H

#include <stddef.h>

struct vmb_xattr {
	char *name;                /* "user.xxx" */
	char *value;               /* len bytes, NUL after them */
	size_t len;
};

/* Append a copy of (name, value[len]) to the array *x of *n. 0 or -ENOMEM (the
 * array as it was). */
int vmb_xattrs_add(struct vmb_xattr **x, size_t *n, const char *name, const void *value,
		   size_t len);
void vmb_xattrs_free(struct vmb_xattr *x, size_t n);
/* Every name "user." and at least one more byte, at most 255 bytes; every value at
 * most 65536 bytes. 1 or 0. */
int vmb_xattrs_ok(const struct vmb_xattr *x, size_t n);
/* The names vmbundlefs maintains itself: user.vmbundlefs.lock, .stats, .remote
 * (the mount's virtual ones) and .base, .reserved (the marks of a user-namespace
 * store, image/xns.h): never written onto a bundle's files from outside (an
 * archive, a published manifest, a client of the mount), never copied or
 * exported. Other user.vmbundlefs.* names are a user's like any. 1 or 0. */
int vmb_xattr_reserved(const char *name);

/* The array arr (of *cap elements of size elsize, n used) with room for one more:
 * doubled (16 at first) when full, *cap updated. NULL when out of memory (arr as it
 * was, still the caller's). */
void *vmb_grow(void *arr, size_t *cap, size_t n, size_t elsize);

/* Copies of a record's path (NULL: "") and symlink target (may be NULL) into *path
 * and *target. 0 or -ENOMEM with nothing allocated. */
int vmb_path_target_dup(const char *path, const char *target, char **pathp,
			char **targetp);

/* The rules of a listing: record 0 is the directory ".", "." is not listed again,
 * every other record's parent is an earlier directory record, no path is listed
 * twice. path_of(ents, i, &is_dir) gives record i's path and whether it is a
 * directory. 0 when the rules hold; -ENOMEM; else the rule broken: */
enum {
	VMB_TREE_NO_ROOT = 1,      /* record 0 is not the directory "." */
	VMB_TREE_DOT_TWICE,        /* record *at is "." again */
	VMB_TREE_NO_PARENT,        /* the parent of record *at is not listed before it */
	VMB_TREE_TWICE,            /* the path *dup is listed twice */
};
int vmb_tree_check(const void *ents, size_t n,
		   const char *(*path_of)(const void *ents, size_t i, int *is_dir),
		   size_t *at, const char **dup);

#endif
