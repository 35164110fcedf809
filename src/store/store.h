/* store.h - a store directory: layout version, hidden metadata, names, bundles.
 *
 *   STORE/.vmbundlefs/layout  "vmbundlefs-store-layout 1\n"
 *   STORE/.vmbundlefs/maps/   sidecar block maps (sidecar.h)
 *   STORE/.vmbundlefs/lock    mounts hold a shared flock on it, fsck an exclusive one
 *   STORE/.vmbundlefs/xattr-ns "trusted\n" or "user\n": the xattr namespace of the
 *                             marks on layered files (image/xns.h); missing: trusted
 *   STORE/BUNDLE/...          one directory per bundle, plain files inside
 *
 * Metadata belongs to the store's owner alone: .vmbundlefs and every directory in
 * it VMB_META_DIR_MODE, every file in it VMB_META_FILE_MODE, whoever creates them
 * and whatever the umask (another user could otherwise take the store lock, or read
 * who holds locks); fsck reports and repairs other modes. The store's root keeps
 * its own mode (traversable, so that bundles can be shared).
 *
 * A struct vmb_store owns its descriptors and path; vmb_store_close is safe on a
 * zeroed store, one whose open failed, and one already closed. Read-only after open: any number of threads may use it.
 */
#ifndef VMB_STORE_H
#define VMB_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <limits.h>
#include <sys/stat.h>
#include "base/err.h"

#define VMB_META_DIR     ".vmbundlefs"
#define VMB_LAYOUT_FILE  "layout"
#define VMB_MAPS_DIR     "maps"
#define VMB_LOCK_FILE    "lock"
#define VMB_XNS_FILE     "xattr-ns"
#define VMB_META_DIR_MODE  0700
#define VMB_META_FILE_MODE 0600
#define VMB_LAYOUT_VERSION 1
#define VMB_LAYOUT_MAGIC "vmbundlefs-store-layout"

struct vmb_store {
	char *path;
	int dirfd;     /* STORE, O_RDONLY|O_DIRECTORY */
	int metafd;    /* STORE/.vmbundlefs */
	int mapfd;     /* STORE/.vmbundlefs/maps */
	int lockfd;    /* STORE/.vmbundlefs/lock, flock'ed */
	int readonly;
	int xns;       /* enum vmb_xns of its marks (image/xns.h) */
	uid_t owner;   /* of STORE/.vmbundlefs */
	int xns_held;  /* vmb_xns_hold done, released by close */
};

enum vmb_store_mode {
	VMB_STORE_SHARED = 0,      /* a mount; other mounts and readers may share */
	VMB_STORE_EXCLUSIVE = 1,   /* fsck: nobody else */
	VMB_STORE_READ = 2,        /* ls: takes no lock, changes nothing */
};

/* Create a new store at path (must not exist, or be an empty directory). Its
 * xattr namespace (image/xns.h) is trusted when made by root, user otherwise. */
int vmb_store_init(const char *path, struct vmb_err *err);

/* Open an existing store. Errors: -ENOENT missing, -ENOTDIR, -EINVAL not a store,
 * -EPROTONOSUPPORT newer layout, -EBUSY (exclusive while mounted). The store's
 * xattr namespace becomes this process's (vmb_xns_hold; -EXDEV when another open
 * store holds another). A user-namespace store opens to change (SHARED, EXCLUSIVE)
 * for its owner only (-EPERM): the layered files another user (root serving it
 * to many) made would be owned by others, their base not believed. A store with no
 * namespace file, owned by and opened to change by a user other than root, with no
 * layer yet, is given "user" (a store made before the file existed). */
int vmb_store_open(struct vmb_store *s, const char *path, enum vmb_store_mode mode,
		   struct vmb_err *err);
void vmb_store_close(struct vmb_store *s);

/* Can the store's filesystem show every change of a file in its modification
 * time, on which a mount relies to find changes made by someone else (image.h)?
 * A probe file in the metadata directory is written three times, its mtime looked
 * at after each write. Returns 0 when the times have sub-second resolution (*coarse
 * set to 1 when two writes in a row still kept one time: a clock tick of some
 * milliseconds, as before Linux 6.13 or on NFS), -EOPNOTSUPP with a message when
 * they are whole seconds (FAT, ext4 with 128-byte inodes, ...), 0 with *coarse = -1
 * and the reason in err when the probe cannot be written (a full or read-only
 * store: not checked), else -errno. */
int vmb_store_check_times(struct vmb_store *s, int *coarse, struct vmb_err *err);

/* Was the store's metadata directory made elsewhere (store_home.c)? *copied = 1
 * when STORE/.vmbundlefs/home names another directory than this one: the store is
 * a copy (cp -r, rsync, a restore), whose layered files may have lost their base
 * xattr or their maps. The file is then (or when missing) written for this one,
 * best effort. 0, or -errno when the directory cannot be looked at. */
int vmb_store_check_home(struct vmb_store *s, int *copied, struct vmb_err *err);
/* Its first home file, by init (best effort). */
void vmb_store_home_init(int metafd);

/* A name usable for a bundle or a file: not "", ".", "..", no '/', at most
 * NAME_MAX bytes. 0, -EINVAL or -ENAMETOOLONG with a message. */
int vmb_name_check(const char *name, struct vmb_err *err);

/* 1 for names the top level of a store reserves (".vmbundlefs"). */
int vmb_store_reserved(const char *name);
/* 1 for names a new bundle may not take: those, and ".snapshots", which a mount
 * shows at its root in place of any bundle of that name. */
int vmb_store_reserved_new(const char *name);
/* A new bundle's name: vmb_name_check, and no '@' (BUNDLE@NAME names a snapshot).
 * 0, or -EINVAL/-ENAMETOOLONG with a message naming it. */
int vmb_name_check_new(const char *name, struct vmb_err *err);

struct vmb_bundle_info {
	char *name;
	uint64_t logical;     /* sum of st_size of regular files */
	uint64_t allocated;   /* bytes of DATA blocks in their maps */
	uint64_t files;       /* regular files */
	int damaged;          /* a file's map could not be read */
};

/* The store's bundles, sorted by name (*out: array the caller frees with
 * vmb_bundle_list_free). */
int vmb_store_list(struct vmb_store *s, struct vmb_bundle_info **out, size_t *n,
		   struct vmb_err *err);
void vmb_bundle_list_free(struct vmb_bundle_info *list, size_t n);

/* A walk of the tree under directory dfd (not consumed), depth first, each
 * directory's names in byte order, with no depth limit (store_walk.c): entries are
 * reached relative to their parent's descriptor, never by a path, and at most a
 * fixed number of descriptors are open at once. fn gets every entry: VMB_TREE_DIR
 * for a directory before its entries (return VMB_TREE_SKIP not to enter it),
 * VMB_TREE_DIR_POST after them, VMB_TREE_FILE for anything else. Any other non-zero
 * return stops the walk and is returned (with err filled by fn when negative).
 * e->dfd is the entry's parent, open for *at calls during the call; e->path is
 * "top/..." at its full length (any length: for archives), e->msgpath the same for
 * messages, shortened with "..." in the middle past VMB_PATH_MSG_MAX bytes (the
 * last name is always whole). Both are valid during the call only. */
enum vmb_tree_event { VMB_TREE_FILE, VMB_TREE_DIR, VMB_TREE_DIR_POST };
#define VMB_TREE_SKIP 0x7fffffff
struct vmb_tree_ent {
	int dfd;
	const char *name;
	const char *path;
	size_t pathlen;
	const char *msgpath;
	const struct stat *st;   /* lstat of the entry (the directory's own for POST) */
	size_t depth;            /* 1 for the entries of the top */
};
typedef int (*vmb_tree_fn)(void *arg, enum vmb_tree_event ev, const struct vmb_tree_ent *e,
			   struct vmb_err *err);
int vmb_tree_walk(int dfd, const char *top, vmb_tree_fn fn, void *arg, struct vmb_err *err);

/* A work directory STORE/.vmbundlefs/staging/<prefix><pid>.<n> (the staging
 * directory made on demand), locked with flock(2) for as long as *fd is open, so
 * that one with the prefix that nobody holds is a leftover of a process that died:
 * *stagefd the staging directory, *fd the new one, name its name (store_staging.c;
 * imports "imp.", clones "cln."). */
#define VMB_STORE_STAGING_DIR "staging"
#define VMB_STORE_STAGING_NEW "new."   /* before its lock is taken and its rename */
int vmb_store_staging_create(struct vmb_store *s, const char *prefix, int *stagefd, int *fd,
			     char name[NAME_MAX + 1], struct vmb_err *err);

/* Remove the tree `name` under dirfd (never following symlinks, staying on one
 * filesystem), removing the sidecar map of each regular file whose last link goes
 * (mapfd < 0: none). A missing tree is not an error. */
int vmb_tree_remove(int dirfd, const char *name, int mapfd, struct vmb_err *err);

/* path (len bytes) as it may appear in a message (at most VMB_PATH_MSG_MAX bytes,
 * so that a message of VMB_ERR_MAX bytes keeps what it says about it): itself when
 * short enough, else its first 40 bytes, "...", and its end, in buf. The end
 * always holds the whole last name. */
#define VMB_PATH_MSG_MAX 320
const char *vmb_path_msg(const char *path, size_t len, char buf[VMB_PATH_MSG_MAX + 1]);

/* Walk every regular file under a bundle (vmb_tree_walk). fn gets the file's path
 * relative to the store (as msgpath: for messages and the file's name, whose last
 * component is always whole) and an fd opened O_RDONLY|O_NOFOLLOW; a non-zero
 * return stops the walk and is returned. */
typedef int (*vmb_walk_fn)(void *arg, const char *relpath, int fd, const struct stat *st);
int vmb_store_walk(struct vmb_store *s, const char *bundle, vmb_walk_fn fn, void *arg,
		   struct vmb_err *err);

#endif
