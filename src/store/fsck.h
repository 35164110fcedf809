/* fsck.h - checking and repairing a store (vmbundlefs fsck). */
#ifndef VMB_FSCK_H
#define VMB_FSCK_H

#include "base/err.h"

struct vmb_fsck_result {
	unsigned files;        /* regular files checked */
	unsigned problems;     /* problems found */
	unsigned repaired;     /* of which repaired */
};

/* Check the store at path (which must not be mounted: the store lock is taken
 * exclusively) and, with repair, fix what can be fixed: a missing, stale or corrupt
 * sidecar map is rebuilt from the backing file's holes; a map that claims zeros where
 * the backing file holds data is rebuilt; space reserved past the end of a file by a
 * killed daemon is given back when its record (image/resrec.h) covers it, and space
 * past the end without a record (a user's preallocation) is left alone; sidecars of
 * files that no longer exist and leftover temporaries are removed; a directory or
 * file of the store's metadata that group or others may access gets mode 0700 or
 * 0600 (store.h). Each problem and repair is reported to say, one line each
 * ("BUNDLE/FILE: rebuilt map (...)"). Returns 0 when the check ran (see res), or
 * -errno when it could not (store missing, mounted, not a store). */
int vmb_fsck(const char *path, int repair, const struct vmb_log *say,
	     struct vmb_fsck_result *res, struct vmb_err *err);

#endif
