/* vmb_archive.h - import and export of bundles as archives (libarchive).
 *
 * Import reads any archive libarchive detects by content (tar in every flavour:
 * ustar, pax, GNU, with pax and GNU sparse entries; zip; cpio; ISO 9660; 7-zip ...)
 * through any compression it detects by content (gzip, bzip2, xz, zstd, lz4 ...),
 * and makes a new bundle from it:
 *   - it extracts into STORE/.vmbundlefs/staging/imp.<pid>.<n>/ and renames the
 *     finished bundle into place (RENAME_NOREPLACE, or RENAME_EXCHANGE for a
 *     replace), so the bundle appears whole under its name or not at all;
 *   - regular files become sparse backing files: data is written at its offsets,
 *     holes (sparse entries) and whole 4 KiB blocks of zeros stay holes; each file's
 *     sidecar map is written once its data, mode and mtime are final, so the map is
 *     trusted on the first open;
 *   - hostile entries are refused (see archive_path.c) and any failure, or a
 *     cancellation, removes the staging directory: the store is left unchanged.
 * Export writes a bundle as pax tar with sparse entries (the archive's size is about
 * the allocated size), optionally compressed (gzip, zstd, xz), or as zip (no sparse
 * entries in zip: holes are written as zeros, which deflate squeezes).
 *
 * Every function returns 0 or -errno and leaves a message in err. Nothing here keeps
 * global state; cancellation and progress are the caller's (pointers in the options).
 */
#ifndef VMB_ARCHIVE_H
#define VMB_ARCHIVE_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include "base/err.h"
#include "store/store.h"

struct archive;

/* Where import stages its work, under STORE/.vmbundlefs. */
#define VMB_STAGING_DIR VMB_STORE_STAGING_DIR

/* Progress callback: done and total bytes (total 0 when unknown). Called at most once
 * per data block; the callee throttles its output. */
typedef void (*vmb_progress_fn)(void *arg, uint64_t done, uint64_t total);
/* A one-line remark for the user (the CLI prints it on stderr): what an export or
 * import left out that the user may want to know about. */
typedef void (*vmb_note_fn)(void *arg, const char *msg);

/* Extended attributes in archives: only the user.* namespace is written and
 * applied, less the names the mount maintains itself (user.vmbundlefs.lock,
 * .stats, .remote). An import keeps at most VMB_ARCHIVE_XATTRS_MAX of an entry's,
 * each value at most 65536 bytes, and at most VMB_ARCHIVE_XATTR_BYTES of names and
 * values in all for the directories (applied at the end); past that it fails
 * (-EPERM, a hostile archive). */
#define VMB_ARCHIVE_XATTRS_MAX 1024
#define VMB_ARCHIVE_XATTR_BYTES ((size_t)64 << 20)
/* 1 when an xattr of this name goes into (export) or comes out of (import) an
 * archive. */
int vmb_archive_xattr_kept(const char *name);

/* ---- errors (archive_err.c) ---------------------------------------------------- */

/* Map the last error of libarchive handle a to -errno and a message:
 * "<formatted prefix>: <libarchive's message>". libarchive's format errors
 * (ARCHIVE_ERRNO_FILE_FORMAT, ARCHIVE_ERRNO_MISC, no errno) become EBADMSG;
 * real errno values (ENOMEM, EIO, ENOSPC ...) are kept. Returns the -errno. */
int vmb_archive_err(struct vmb_err *err, struct archive *a, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ---- entry paths (archive_path.c) ---------------------------------------------- */

/* Normalise an entry's path in place: drop leading "./", empty and "." components,
 * and trailing '/'. Refuses (-EPERM, with a message naming the entry) an absolute
 * path and any ".." component; -ENAMETOOLONG for a component over NAME_MAX (the whole
 * path may have any length). An empty result (the archive's root, "./") is allowed:
 * *path = "". */
int vmb_apath_normalize(char *path, struct vmb_err *err);

/* A set of entry paths with their types (for duplicates and hard links). */
struct vmb_pathset;
int vmb_pathset_new(struct vmb_pathset **out);
void vmb_pathset_free(struct vmb_pathset *s);   /* NULL-safe */
/* Add path with type (S_IFREG, S_IFDIR, ...). 0, -EEXIST (already there; *old_type
 * set when old_type is non-NULL), -ENOMEM. */
int vmb_pathset_add(struct vmb_pathset *s, const char *path, unsigned type,
		    unsigned *old_type);
/* Set path's type, adding it when absent. 0 or -ENOMEM. */
int vmb_pathset_set(struct vmb_pathset *s, const char *path, unsigned type);
/* Type of path, 0 when absent. */
unsigned vmb_pathset_get(const struct vmb_pathset *s, const char *path);

/* ---- staging and trees (archive_staging.c) ------------------------------------- */

/* Create STORE/.vmbundlefs/staging (on demand) and a new, unique, empty directory in
 * it; remove the leftovers of imports whose process is gone. *fd gets the new
 * directory (O_DIRECTORY), name (NAME_MAX + 1 bytes) its name in the staging dir,
 * *stagefd the staging dir itself. */
int vmb_staging_create(struct vmb_store *s, int *stagefd, int *fd, char *name,
		       struct vmb_err *err);

/* ---- import (archive_import.c) -------------------------------------------------- */

struct vmb_import_opts {
	const char *name;          /* bundle name; NULL: derive it (see vmb_archive_import) */
	const char *label;         /* the archive in messages ("vm.tar", "-" for stdin) */
	int replace;               /* replace an existing bundle (never one in use) */
	uint64_t max_size;         /* bound on the bytes stored; 0: the default (free
				    * space of the store's filesystem less a margin) */
	uint64_t archive_size;     /* size of the archive when known (progress), or 0 */
	const char *const *aux_patterns;   /* for the in-use test; NULL: the defaults */
	int sync;                  /* fsync the files and directories before the rename */
	volatile sig_atomic_t *cancel;     /* non-zero: stop, clean up, -EINTR */
	vmb_progress_fn progress;  /* done = archive bytes consumed, total = archive_size */
	void *progress_arg;
	vmb_note_fn note;          /* NULL: none; xattrs not applied (other namespaces,
				    * reserved names), said once at the end */
	void *note_arg;
};

/* Free space margin kept by the default --max-size: 1% of the filesystem, at least
 * 64 MiB and at most 1 GiB. */
uint64_t vmb_import_margin(uint64_t fs_bytes);

/* Import the archive read from fd into store s (opened VMB_STORE_SHARED).
 * The name is opts->name, else the archive's single top-level directory (when every
 * entry lies under one directory, that directory is the bundle), else the archive's
 * file name (opts->label) without its archive extensions (.tar .gz .tgz .zst .xz
 * .bz2 .zip .ova ...). The chosen name is returned in name_out (NAME_MAX + 1 bytes,
 * may be NULL). Errors: -EEXIST (the name exists, no replace), -EBUSY (replace of a
 * bundle in use), -EPERM (a hostile entry), -EBADMSG (a damaged or unreadable
 * archive), -EFBIG (past max_size), -ENOSPC, -EINTR (cancelled), ... */
int vmb_archive_import(struct vmb_store *s, int fd, const struct vmb_import_opts *opts,
		       char *name_out, struct vmb_err *err);

/* ---- export (archive_export.c) -------------------------------------------------- */

enum vmb_archive_format {
	VMB_AFMT_TAR = 0,      /* pax (restricted) with sparse entries */
	VMB_AFMT_TAR_GZ,
	VMB_AFMT_TAR_ZST,
	VMB_AFMT_TAR_XZ,
	VMB_AFMT_ZIP,
};

/* "tar", "tar.gz" ("tgz"), "tar.zst" ("tzst"), "tar.xz" ("txz"), "zip".
 * 0 or -EINVAL. */
int vmb_archive_format_parse(const char *s, enum vmb_archive_format *f);
/* From a file name's extension: .tar .ova, .tar.gz .tgz, .tar.zst .tzst, .tar.xz
 * .txz, .zip. Returns 1 when the extension says, 0 when it does not (then *f is
 * VMB_AFMT_TAR, the default). */
int vmb_archive_format_from_name(const char *path, enum vmb_archive_format *f);
const char *vmb_archive_format_name(enum vmb_archive_format f);

struct vmb_remote;

struct vmb_export_opts {
	enum vmb_archive_format format;
	/* for files over remote layers (a pulled bundle): the context their chunks
	 * come from (remote/remote.h), borrowed; NULL: such a file fails to export
	 * ("no remote context was given") */
	struct vmb_remote *remote;
	int sync;                  /* vmb_archive_export_file: fsync before the rename */
	volatile sig_atomic_t *cancel;
	vmb_progress_fn progress;  /* done/total: data bytes of the bundle's files */
	void *progress_arg;
	vmb_note_fn note;          /* NULL: none; zip: the user.* xattrs it cannot keep,
				    * said once */
	void *note_arg;
};

/* Write bundle `name` of store s (any mode; VMB_STORE_READ suffices) to fd as an
 * archive. Entries are "NAME/" and "NAME/<path>" for everything in the bundle,
 * sorted by name: directories, regular files (tar: sparse, data extents only, from
 * each file's map), symlinks, and hard links (tar: as links; zip: as copies).
 * Tar formats carry the user.* xattrs of files and directories
 * (vmb_archive_xattr_kept; pax SCHILY.xattr / LIBARCHIVE.xattr records); zip
 * cannot (opts->note says so when there were some). */
int vmb_archive_export(struct vmb_store *s, const char *name, int fd,
		       const struct vmb_export_opts *opts, struct vmb_err *err);

/* The same into the file `path`, written to a temporary beside it and renamed into
 * place when complete (removed on failure). */
int vmb_archive_export_file(struct vmb_store *s, const char *name, const char *path,
			    const struct vmb_export_opts *opts, struct vmb_err *err);

#endif
