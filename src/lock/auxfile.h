/* auxfile.h - aux-storage files (NVRAM) and whether a bundle is in use.
 *
 * A VM runner locks its bundle's aux-storage file while the VM runs. vmbundlefs
 * recognises aux-storage files by name (glob patterns on the file's base name) and
 * treats a bundle whose aux-storage file is locked as in use: structural changes to
 * it (delete, rename, replace, truncating its images) are refused with EBUSY.
 * Locks taken through a mount are mirrored onto the backing files, so checking the
 * backing file finds them too.
 */
#ifndef VMB_AUXFILE_H
#define VMB_AUXFILE_H

#include <limits.h>
#include <stddef.h>
#include "base/err.h"
#include "lock/holders.h"
#include "store/store.h"

#define VMB_AUX_FILE "aux-patterns"   /* STORE/.vmbundlefs/aux-patterns: one glob a line */

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

/* Is bundle `name` in use? 1 with *u filled, 0, or -errno. */
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
