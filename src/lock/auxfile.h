/* auxfile.h - aux-storage files (NVRAM), the in-use rule, and whether a bundle is in
 * use as the commands (ls, import) see it.
 *
 * A bundle is in use while a VM holds locks in it: under the default rule ("any"),
 * any advisory lock on any of its files (QEMU's image locks included); under the
 * narrower rule a store can choose ("aux": STORE/.vmbundlefs/in-use holds the line
 * "rule aux"), a lock on an aux-storage file, recognised by name (glob patterns on
 * the base name). Structural changes to a bundle in use (delete, rename, replace,
 * truncating its images) are refused with EBUSY. Locks through a mount count only
 * when their taker could also write the file (lock.h). The mount decides with
 * counters (vfs_lock.c); the commands here read the holder registry (holders.h)
 * and walk the bundle's backing files once.
 */
#ifndef VMB_AUXFILE_H
#define VMB_AUXFILE_H

#include <limits.h>
#include <stddef.h>
#include "base/err.h"
#include "lock/holders.h"
#include "store/store.h"

#define VMB_AUX_FILE "aux-patterns"   /* STORE/.vmbundlefs/aux-patterns: one glob a line */
#define VMB_INUSE_FILE "in-use"       /* STORE/.vmbundlefs/in-use: "rule any|aux" */

/* The store's in-use rule: *aux_only 0 (any lock, the default when the file is
 * missing) or 1 (aux-storage locks only). A malformed file is an error. */
int vmb_inuse_rule_load(struct vmb_store *s, int *aux_only, struct vmb_err *err);
/* "any" or "aux" (the in_use mount option). */
int vmb_inuse_rule_parse(const char *word, int *aux_only, struct vmb_err *err);

/* The default patterns: nvram.bin, AuxiliaryStorage, efi_vars.fd, *.nvram, *VARS*.fd */
extern const char *const vmb_aux_default_patterns[];

/* 1 if base (a file name without directories) matches one of patterns (a
 * NULL-terminated list; NULL means the defaults), else 0. */
int vmb_aux_match(const char *base, const char *const *patterns);

/* The store's own patterns (NULL-terminated, in *out, free with vmb_aux_free), or
 * *out = NULL when the store has no aux-patterns file (use the defaults). */
int vmb_aux_load(struct vmb_store *s, char ***out, struct vmb_err *err);
void vmb_aux_free(char **patterns);

/* Parse "PAT:PAT:..." (the aux_patterns mount option) into a list like vmb_aux_load. */
int vmb_aux_parse(const char *spec, char ***out, struct vmb_err *err);

struct vmb_inuse {
	int known;                 /* h names the holder */
	uint64_t ino;              /* the locked aux-storage file's inode */
	struct vmb_holder h;
	char path[PATH_MAX];       /* the locked aux-storage file, relative to the store */
};

/* Is bundle `name` in use (store's rule; patterns NULL: the store's aux patterns or
 * the defaults)? 1 with *u filled, 0, or -errno. Reads the registry, then walks the
 * bundle's files once (commands only; the mount never walks). */
int vmb_bundle_holder(struct vmb_store *s, const char *name, const char *const *patterns,
		      struct vmb_inuse *u, struct vmb_err *err);

/* "pid 4242 (qemu-system-x86) holds a lock on 'vm/nvram.bin'" */
void vmb_inuse_describe(const struct vmb_inuse *u, char *buf, size_t size);

/* Is bundle `name` of store s in use (an aux-storage file locked, through any mount
 * or directly)? Returns 1 and a description of the holder in who (e.g. "pid 4242
 * (qemu-system-x86)" or "a lock on 'nvram.bin'"), 0 if not, or -errno. */
int vmb_bundle_in_use(struct vmb_store *s, const char *name, const char *const *patterns,
		      char *who, size_t whosz, struct vmb_err *err);

#endif
