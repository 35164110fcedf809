/* resrec.h - the record of space reserved past the end of a backing file.
 *
 * An image reserves space ahead of a direct writer that extends its file, past EOF
 * (image.c, RESERVE_AHEAD), and gives back what no data went to. A daemon killed
 * meanwhile leaves that space allocated past EOF, where a user's own preallocation
 * (fallocate --keep-size) may also be. To tell them apart, the image records its
 * reservation on the backing file before making it: the extended attribute
 * VMB_RESREC_XATTR holds the end of the reservation in decimal. fsck gives back
 * space past EOF only when such a record covers all of it, and removes the record;
 * space past EOF without a record is someone's preallocation and is never touched.
 * The record costs one fsetxattr per reservation (every 64 MiB of an extending
 * run) and one fremovexattr when the run's reservation is given back; it is in the
 * store's namespace (xns.h: trusted, or user.vmbundlefs.reserved in a store made by
 * a user; never shown through the mount), so a daemon without CAP_SYS_ADMIN on a
 * trusted store cannot record and reserves no more than each write needs. No
 * state: these are plain calls on a descriptor.
 */
#ifndef VMB_RESREC_H
#define VMB_RESREC_H

#include <stdint.h>
#include "image/xns.h"

#define VMB_RESREC_XATTR (vmb_xns_resrec_name())

/* Record a reservation ending at end. 0 or -errno. */
int vmb_resrec_set(int fd, uint64_t end);

/* The recorded end: 1 and *end, 0 when there is no (readable) record, -errno. A
 * record that is not a number reads as covering nothing past EOF (*end = 0). */
int vmb_resrec_get(int fd, uint64_t *end);

/* Remove the record (none is fine). 0 or -errno. */
int vmb_resrec_clear(int fd);

/* 1 if any block of fd is allocated at or after off, 0 if none or when the
 * filesystem cannot say (no FIEMAP). */
int vmb_allocated_from(int fd, uint64_t off);

#endif
