/* manifest.h - a snapshot's manifest: STORE/.vmbundlefs/snapshots/<BUNDLE>@<NAME>.
 *
 * Text, one record per line (man/vmbundlefs.5, "Snapshot manifests"):
 *   vmbundlefs-snapshot 2           (1 is read too: see VMB_MANIFEST_VERSION)
 *   bundle <name>
 *   created <unix seconds>
 *   d <mode octal> <uid> <gid> <mtime sec.nsec> <path>
 *   f <mode octal> <uid> <gid> <mtime sec.nsec> <size> <layer ID> <path>
 *   l <uid> <gid> <mtime sec.nsec> <path> <target>
 *   x <name> <value>              a user.* xattr of the record above it ("-":
 *                                 empty; "%2D": "-")
 *   end <crc32c of every byte before this line, 8 lowercase hex>
 * Names, paths, targets and xattr values are %-escaped: bytes <= 0x20, '%' and
 * 0x7f..0xff as %XX. Paths are relative to the bundle, "." for the bundle itself
 * (always the first record); a record's parent directory is always an earlier 'd'
 * record. A decoder refuses anything else (bad checksum, unknown record, a path
 * with "..", "", duplicate paths, a missing parent) with -EINVAL and a message.
 *
 * A struct vmb_manifest owns every string in it; vmb_manifest_free frees them and
 * is safe on a zeroed manifest. Not thread-safe (one owner).
 */
#ifndef VMB_MANIFEST_H
#define VMB_MANIFEST_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "base/err.h"
#include "base/pathtree.h"
#include "map/base.h"

#define VMB_MANIFEST_MAGIC "vmbundlefs-snapshot"
/* 2: an empty attribute value is "-", the value "-" is "%2D" (1 had no way to write
 * an empty one); version 1 manifests are read as they were written. */
#define VMB_MANIFEST_VERSION 2
#define VMB_SNAPSHOTS_DIR "snapshots"        /* under STORE/.vmbundlefs */
#define VMB_MANIFEST_MAX (256u << 20)        /* a larger manifest is refused */

struct vmb_mf_ent {
	char kind;                       /* 'd', 'f' or 'l' */
	uint32_t mode;                   /* permission bits (07777); 0 for 'l' */
	uint32_t uid, gid;
	int64_t mtime_sec;
	uint32_t mtime_nsec;
	uint64_t size;                   /* 'f' */
	char id[VMB_BASE_ID_LEN + 1];    /* 'f': its layer */
	char *path;                      /* relative to the bundle, "." for its root */
	char *target;                    /* 'l' */
	struct vmb_xattr *xattrs;        /* base/pathtree.h */
	size_t nxattrs;
};

struct vmb_manifest {
	char *bundle;
	int64_t created;
	struct vmb_mf_ent *ents;
	size_t n, cap;
};

void vmb_manifest_free(struct vmb_manifest *m);

/* Append a record (strings copied). path must obey the rules above (checked by
 * encode/decode, not here). Returns 0 or -ENOMEM. */
int vmb_manifest_add(struct vmb_manifest *m, const struct vmb_mf_ent *e);
/* Add an xattr to the last record. 0 or -ENOMEM. */
int vmb_manifest_add_xattr(struct vmb_manifest *m, const char *name, const void *value,
			   size_t len);

/* Encode into a malloc'ed buffer (*out, *len). -EINVAL for a manifest that would
 * not decode (a bad path or id), -ENOMEM. */
int vmb_manifest_encode(const struct vmb_manifest *m, char **out, size_t *len,
			struct vmb_err *err);
/* Decode buf into *m (zeroed first). -EINVAL with a message naming the line. */
int vmb_manifest_decode(const char *buf, size_t len, struct vmb_manifest *m,
			struct vmb_err *err);

/* A snapshot name: a valid file name (vmb_name_check), no '@', not starting with
 * '.', and BUNDLE@NAME fits NAME_MAX. 0 or -EINVAL/-ENAMETOOLONG with a message. */
int vmb_snapshot_name_check(const char *bundle, const char *name, struct vmb_err *err);

/* Split "BUNDLE@NAME" (at the last '@') into malloc'ed parts, both checked.
 * -EINVAL with a message when there is no '@' or a part is bad. */
int vmb_snapshot_split(const char *spec, char **bundle, char **name, struct vmb_err *err);

/* 1 when spec ("BUNDLE@NAME") is a snapshot of the store whose metadata directory
 * is metafd (its manifest a regular file), else 0. A name holding '@' is a
 * snapshot's before a bundle's: a bundle named so (made before they were refused,
 * or behind vmbundlefs' back) never hides a snapshot. */
int vmb_snapshot_exists(int metafd, const char *spec);

/* Write manifest m as snapdir/<file> atomically (temp, fsync, rename, fsync dir),
 * refusing to replace an existing one (-EEXIST). Read one back (-ENOENT when
 * missing, -EINVAL when corrupt, messages name the file). */
int vmb_manifest_write(int snapdir, const char *file, const struct vmb_manifest *m,
		       struct vmb_err *err);
int vmb_manifest_read(int snapdir, const char *file, struct vmb_manifest *m,
		      struct vmb_err *err);

#endif
