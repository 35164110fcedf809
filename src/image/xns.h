/* xns.h - the xattr namespace of the marks vmbundlefs keeps on backing files: the
 * base of a layered file (image.h, VMB_BASE_XATTR) and the reservation record
 * (resrec.h).
 *
 * A store records its namespace (store.h, STORE/.vmbundlefs/xattr-ns): "trusted"
 * (trusted.vmbundlefs.*: only CAP_SYS_ADMIN sets them, so a bundle's owner cannot
 * forge a base on their own file to read another bundle's layer) or "user"
 * (user.vmbundlefs.*: a store made by a user without that capability). Anyone who
 * can write a file can set its user xattrs, so in a user-namespace store a base is
 * believed only on a file owned by the store's owner (the owner of
 * STORE/.vmbundlefs), who controls every layer and map of the store anyway; a
 * user.vmbundlefs.base on anyone else's file is ignored (the file reads as its
 * backing file). A trusted-namespace store never reads user.vmbundlefs.* (no
 * downgrade). The mount hides and refuses user.vmbundlefs.base and .reserved,
 * and nothing copies them (vmb_xattr_reserved).
 *
 * One namespace per process at a time: vmb_store_open takes it (vmb_xns_hold) and
 * vmb_store_close gives it back; opening a store of the other namespace while one
 * is open fails. With no store open the namespace is trusted. Thread-safe.
 */
#ifndef VMB_XNS_H
#define VMB_XNS_H

#include <sys/types.h>

enum vmb_xns { VMB_XNS_TRUSTED = 0, VMB_XNS_USER = 1 };

#define VMB_XNS_BASE_TRUSTED "trusted.vmbundlefs.base"
#define VMB_XNS_BASE_USER "user.vmbundlefs.base"
#define VMB_XNS_RESREC_TRUSTED "trusted.vmbundlefs.reserved"
#define VMB_XNS_RESREC_USER "user.vmbundlefs.reserved"

/* Take the namespace ns with owner (the store's owner; unused for trusted) for one
 * more open store. 0, or -EXDEV when another store of this process holds another
 * namespace or owner. */
int vmb_xns_hold(enum vmb_xns ns, uid_t owner);
/* Give one hold back. */
void vmb_xns_release(void);

/* The names in the namespace held (trusted with none held). */
const char *vmb_xns_base_name(void);
const char *vmb_xns_resrec_name(void);
/* 1 when a base xattr on a file owned by uid is believed: always in the trusted
 * namespace, in the user one only for the store's owner. */
int vmb_xns_trusts(uid_t uid);

#endif
