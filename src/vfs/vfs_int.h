/* vfs_int.h - internals shared by the vfs_*.c files (see vfs.h for the rules). */
#ifndef VMB_VFS_INT_H
#define VMB_VFS_INT_H

#include <linux/capability.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/stat.h>
#include "vfs/vfs.h"
#include "store/store.h"
#include "image/image.h"
#include "lock/lock.h"

struct vmb_node {
	struct vmb_node *hnext;     /* hash chain (tlock) */
	dev_t dev;
	ino_t ino;
	mode_t type;                /* S_IFMT bits */
	int fd;                     /* O_PATH|O_NOFOLLOW of the backing inode, owned;
				     * -1 while parked (tlock) */
	struct file_handle *fh;     /* to reopen a parked node; NULL: never parked */
	struct vmb_node *lru_prev, *lru_next;   /* idle list (tlock) */
	int in_lru;
	uint64_t generation;
	uint64_t nlookup;           /* kernel references (tlock) */
	uint64_t refs;              /* in-flight ops (tlock): they keep fd open */
	uint64_t handles;           /* open handles (tlock): they keep the node, but
				     * not fd, which is parked like an idle node's
				     * (not when the file has no links left) */
	pthread_mutex_t ilock;      /* guards img, opens, cache stamp */
	struct vmb_image *img;
	unsigned opens;
	struct vmb_lockset *locks;  /* made on the first lock call (under ilock,
				     * published with a release store), freed with
				     * the node; vmb_node_locks reads it without ilock */
	int cache_valid;            /* the kernel's pages match (mtime, size) below */
	struct timespec cache_mtime;
	off_t cache_size;
	/* The open image's backing descriptor (olock, vfs_fds.c). */
	struct vmb_image *oimg;     /* the open image, or NULL */
	struct vmb_node *o_prev, *o_next;   /* on the open list: live and parkable */
	int o_listed;
	int o_live;                 /* its descriptor is open */
	int o_busy;                 /* being parked or reopened */
	unsigned o_users;           /* calls using the descriptor now */
	unsigned o_alone;           /* of them, releases in vmb_fds_hold_alone */
	/* Where it is (tlock): the directory it was last looked up or renamed into and
	 * that name (owned). A node pins its parent (parent->kids), so the chain up to
	 * the root is always there: a node's bundle is the ancestor whose parent is the
	 * root, found in memory without building a path. Renames and lookups through
	 * this mount keep it right; a rename made directly in the store is seen at the
	 * next lookup. */
	struct vmb_node *parent;
	char *name;
	/* A URL mount's bundle directory: the st_ino reported for it (vfs_lazy.c),
	 * the one the root's listing gave it before its pull; 0: the backing one.
	 * Set (atomically) at a lookup in the root. */
	uint64_t lazy_ino;
	uint64_t kids;
	/* In use (v->inuse_mu). On a locked file: the bundle its strong lock owners
	 * (lock.h) are counted in, how many, and its place in that bundle's list. On a
	 * bundle: the count over its files, the list, and its cached aux-storage names. */
	struct vmb_node *counted_in;
	unsigned counted;
	struct vmb_holder *lkh;     /* owned: the last strong holder counted */
	struct vmb_node *lk_prev, *lk_next;
	unsigned held;
	struct vmb_node *locked;
	struct vmb_auxcache *aux;   /* owned (v->auxmu) */
	int attr_ok;                /* the kernel was last told (attr_mtime, attr_size,
				     * attr_blocks) of this file (vmb_node_stat; ilock) */
	struct timespec attr_mtime;
	off_t attr_size;
	blkcnt_t attr_blocks;
	/* a name of it was removed through this mount (unlink, rename over it): the
	 * kernel knows, so an open of it without a name left is a reopen of a file
	 * still open (/proc/PID/fd), not a path the kernel took from a stale cache */
	atomic_int removed_here;
	atomic_uint changing;       /* changes in flight on it (vfs_barrier.c) */
	/* O_PATH descriptors of inodes it was bound to before a rebind, still in use
	 * by calls in flight then: closed when refs reaches 0 (tlock). */
	int *old_fds;
	size_t n_old_fds;
};

#define VMB_HASH_BITS 12

/* An entry of a list of handles open through the mount (v->dirs, v->files): the
 * handle h is on the list from its open to its release, so that vmb_vfs_free
 * releases those the kernel never released. The list's mutex is taken alone. */
struct vmb_open {
	struct vmb_open *prev, *next;
	void *h;                   /* the struct vmb_dir or struct vmb_file */
};
void vmb_open_link(pthread_mutex_t *mu, struct vmb_open **list, struct vmb_open *o,
		   void *h);
void vmb_open_unlink(pthread_mutex_t *mu, struct vmb_open **list, struct vmb_open *o);

struct vmb_vfs {
	struct vmb_store store;
	char *store_real;           /* realpath of the store, for messages */
	const struct vmb_log *log;
	int readonly;
	int private_store;         /* vmb_vfs_opts.private_store */
	int direct_writes;          /* large aligned writes bypass the backing's cache */
	char **aux_patterns;        /* owned; NULL: the defaults */
	int aux_only;               /* in-use rule: only locks on aux-storage files count */
	struct vmb_waitgraph waits; /* lock waits, for deadlock detection */
	struct vmb_lockenv lockenv; /* per-process lock cap, the in-use callback */
	unsigned long ncounted;     /* files with strong lock owners (inuse_mu) */
	pthread_mutex_t inuse_mu;   /* the in-use counts; order: a lockset's mu, then
				     * inuse_mu, then tlock */
	pthread_mutex_t auxmu;      /* the bundles' aux caches; taken alone */
	pthread_mutex_t tlock;
	struct vmb_node root;
	struct vmb_node **hash;     /* 1 << VMB_HASH_BITS chains */
	struct vmb_node *dead;      /* parked nodes whose inode's number a new inode
				     * took (vfs.c parked_other_locked), on hnext;
				     * never found by number (tlock) */
	uint64_t nodes;
	uint64_t next_generation;
	/* Idle nodes (no refs, known to the kernel) keep their descriptor until more
	 * than lru_cap are idle; then the oldest are parked (descriptor closed, reopened
	 * from its file handle on next use), so a store of any size fits the daemon's
	 * descriptor limit. */
	struct vmb_node *lru_first, *lru_last;
	size_t lru_count, lru_cap;
	int can_park;
	unsigned idle_fds_opt;      /* -o idle_fds, 0: a quarter of the limit */
	/* Open images' backing descriptors (vfs_fds.c): at most o_cap stay open while
	 * no call uses them; beyond that the least recently used are parked (closed,
	 * reopened from the file handle by the next call that needs them). */
	pthread_mutex_t olock;      /* after tlock and ilock, never before */
	pthread_cond_t ocond;       /* a node's o_busy ended */
	struct vmb_node *o_first, *o_last;
	size_t o_count, o_cap;
	unsigned o_waiting;         /* in vmb_fds_hold_alone */
	unsigned open_fds_opt;      /* -o open_fds, 0: an eighth of the limit */
	/* Lock owners' descriptors per user (olock, vfs_fds.c): they carry locks and
	 * are never parked, so each user other than root may have at most
	 * lockfd_user_cap of them, and all of them together lockfd_total_cap. */
	struct vmb_lock_budget lock_budget;
	struct vmb_uidcount { uid_t uid; size_t n; int warned; } *lockfd_users;
	size_t lockfd_nusers, lockfd_total, lockfd_user_cap, lockfd_total_cap;
	unsigned lock_fds_opt;      /* -o lock_fds, 0: a sixteenth of the limit */
	unsigned release_delay_ms;  /* test hook: VMB_TEST_RELEASE_DELAY_MS, 0 */
	unsigned freeze_delay_ms;   /* test hook: VMB_TEST_FREEZE_DELAY_MS, 0: a wait
				     * between a freeze's rename and its node's rebind */
	void (*stale)(void *arg, uint64_t ino, int pages);   /* vmb_vfs_opts.stale */
	void *stale_arg;
	void (*gone)(void *arg, uint64_t parent, const char *name);   /* opts.gone */
	int create_fail;            /* test hook: VMB_TEST_CREATE_FAIL, an errno that
				     * fails every create once the file is made; 0 */
	/* The write barrier (vfs_barrier.c): bundles paused now (read by every change,
	 * without a lock), and the one paused (barmu). */
	atomic_uint barriers;
	pthread_mutex_t barmu;      /* before tlock and any ilock */
	pthread_cond_t barcond;     /* a change ended, or a barrier went down */
	int paused;
	dev_t paused_dev;
	ino_t paused_ino;
	/* Test hooks of the control channel (VMB_TEST_CTL_HOOKS in the daemon's
	 * environment): test-pause raises a barrier until test-resume or this time
	 * (CLOCK_MONOTONIC seconds; 0: none), which the channel's thread watches. */
	int ctl_test_hooks;
	long long ctl_resume_at;
	/* This mount's control socket ("ctl.MAJOR:MINOR", set by vmb_ctl_start before
	 * the mount serves; "" without one): vmb_ctl_other_mount skips it. */
	char ctl_self[64];
	int other_said;             /* a copy's freeze was refused for another mount,
				     * logged (opmu); cleared when none is seen */
	struct vmb_layers *layers;   /* the store's layers (layer/layer.h) */
	/* The structural mutex: one structural change of layers at a time (the
	 * control channel's requests, vmb_ctl_run, and the freeze of a copy's source,
	 * vfs_share.c), so that gc never runs beside a freeze. Before barmu. */
	pthread_mutex_t opmu;
	/* Directories open through the mount (vfs_dir.c), so that vmb_vfs_free closes
	 * those the kernel never released (a daemon stopped by a signal). Taken alone. */
	pthread_mutex_t dirmu;
	struct vmb_open *dirs;
	/* Files open through the mount (vfs_file.c), likewise released at vmb_vfs_free
	 * when the kernel never sent their RELEASE. Taken alone. */
	pthread_mutex_t filemu;
	struct vmb_open *files;
	/* A URL mount's bundles not pulled yet (vfs_lazy.c): names sorted, owned;
	 * lazy_done[i] set (atomically) once names[i] is in the store; lazy_busy[i]
	 * while a lookup pulls it (under lazy_mu; lazy_cv wakes its waiters). A
	 * leaf lock: nothing is taken under it. n 0: none. */
	char *lazy_url;
	size_t lazy_n;
	char **lazy_names;
	uint8_t (*lazy_manifests)[32];
	unsigned char *lazy_done;
	unsigned char *lazy_busy;
	pthread_mutex_t lazy_mu;
	pthread_cond_t lazy_cv;
	uint64_t lazy_keep;          /* bytes a pull leaves free (vmb_op_pull_at) */
	struct vmb_remote *remote;   /* remote images' context (remote/remote.h; lazy:
					no cache nor network until a remote layer opens) */
	struct vmb_layers_preload *preload;   /* vmb_vfs_preload_remote's thread, or NULL */
	struct vmb_base_resolver resolver;
	struct vmb_snapview *snapview;
};

struct vmb_file {
	struct vmb_vfs *vfs;
	struct vmb_node *node;      /* holds a handle reference; NULL in the snapshot view */
	struct vmb_image *img;      /* node->img, counted in node->opens */
	int flags;
	uint64_t sv;                /* the snapshot view's node id of the file, or 0 */
	struct vmb_open link;       /* on v->files */
};

/* The read-only view of snapshots, MNT/.snapshots (vfs_snapview.c). Its node ids
 * have the low bit set (vmb_snapview_is); vmb_node_get refuses them with EROFS, so
 * that every change through them fails so; the read-only calls ask the view. */
#define VMB_SNAPVIEW_DIR ".snapshots"
struct vmb_snapview;
struct vmb_svdir;
int vmb_snapview_init(struct vmb_vfs *v);
void vmb_snapview_destroy(struct vmb_vfs *v);
int vmb_snapview_is(uint64_t ino);
int vmb_snapview_name(const char *name);     /* ".snapshots" */
int vmb_snapview_listed(struct vmb_vfs *v);  /* the store has a snapshot */
uint64_t vmb_snapview_ino(void);             /* st_ino of .snapshots */
uint64_t vmb_snapview_dir_id(struct vmb_vfs *v);   /* node id of .snapshots */
int vmb_snapview_lookup(struct vmb_vfs *v, uint64_t parent, const char *name,
			struct vmb_entry *e, struct vmb_err *err);
void vmb_snapview_forget(struct vmb_vfs *v, uint64_t ino, uint64_t nlookup);
int vmb_snapview_getattr(struct vmb_vfs *v, uint64_t ino, struct stat *st, struct vmb_err *err);
int vmb_snapview_readlink(struct vmb_vfs *v, uint64_t ino, char *buf, size_t size,
			  struct vmb_err *err);
int vmb_snapview_open(struct vmb_vfs *v, uint64_t ino, int flags, struct vmb_image **img,
		      struct vmb_err *err);
void vmb_snapview_release(struct vmb_vfs *v, uint64_t ino);
/* The lockset of an open snapshot file in *out (made now when create; NULL when it
 * has none, or -errno with err filled when it cannot be made), proc the path that
 * opens its lock file. It lives while a handle of the file is open. */
int vmb_snapview_locks(struct vmb_vfs *v, uint64_t ino, int create, struct vmb_lockset **out,
		       char proc[64], struct vmb_err *err);
int vmb_snapview_opendir(struct vmb_vfs *v, uint64_t ino, struct vmb_svdir **d,
			 struct vmb_err *err);
int vmb_snapview_readdir(struct vmb_vfs *v, struct vmb_svdir *d, uint64_t off,
			 vmb_fill_fn fill, void *arg, struct vmb_err *err);
void vmb_snapview_releasedir(struct vmb_vfs *v, struct vmb_svdir *d, int counted);
void vmb_dirs_close_all(struct vmb_vfs *v);
void vmb_files_close_all(struct vmb_vfs *v);
ssize_t vmb_snapview_getxattr(struct vmb_vfs *v, uint64_t ino, const char *name, void *buf,
			      size_t size);
ssize_t vmb_snapview_listxattr(struct vmb_vfs *v, uint64_t ino, char *buf, size_t size);
int vmb_snapview_layer_busy(struct vmb_vfs *v, const char *id);

size_t vmb_node_hash(dev_t dev, ino_t ino);

/* Take a reference on node n, reopening it if it was parked (0 or -ESTALE). */
int vmb_node_ref(struct vmb_vfs *v, struct vmb_node *n);

/* Drop a handle's reference on n (counted by vmb_node_image_get). */
void vmb_node_unhandle(struct vmb_vfs *v, struct vmb_node *n);

/* The descriptor budget (vfs_fds.c). Limits: the caps follow the soft
 * RLIMIT_NOFILE as it is now (it may be changed with prlimit while mounted). */
void vmb_fds_init(struct vmb_vfs *v);
void vmb_fds_destroy(struct vmb_vfs *v);
void vmb_fds_limits(struct vmb_vfs *v);
/* n's image img was just opened with a live descriptor (caller holds n->ilock). */
void vmb_fds_added(struct vmb_vfs *v, struct vmb_node *n, struct vmb_image *img);
/* Park what is past the cap (call with no ilock held). */
void vmb_fds_trim(struct vmb_vfs *v);
/* Make n's open image's descriptor usable (reopening it if parked) and keep it so
 * until vmb_fds_unhold: around every call on the image. -ESTALE when the file is
 * gone from the store, -EMFILE/-ENFILE when no descriptor is left. */
int vmb_fds_hold(struct vmb_vfs *v, struct vmb_node *n, struct vmb_err *err);
/* vmb_fds_hold for a caller that holds n->ilock (never call vmb_fds_hold so): while
 * n's image is busy (vmb_fds_lock, a park or a reopen) ilock is let go, and taken
 * again before the hold; *dropped (may be NULL) then says so, and the caller must
 * look at what ilock guards again (n->img may be another image, or none: then
 * -EBADF). */
int vmb_fds_hold_ilocked(struct vmb_vfs *v, struct vmb_node *n, int *dropped,
			 struct vmb_err *err);
void vmb_fds_unhold(struct vmb_vfs *v, struct vmb_node *n);
/* The same, then wait until no call other than handles' releases holds it: before
 * a handle goes (a spliced read unholds after its reply, when the handle may
 * already be closing). Its end, vmb_fds_unhold_alone, is called under n->ilock
 * by a release that is not the last close (the last one calls vmb_fds_removed),
 * and does not trim: call vmb_fds_trim after ilock. */
int vmb_fds_hold_alone(struct vmb_vfs *v, struct vmb_node *n, struct vmb_err *err);
void vmb_fds_unhold_alone(struct vmb_vfs *v, struct vmb_node *n);
/* n's image is being closed; the caller holds it (vmb_fds_hold). */
void vmb_fds_removed(struct vmb_vfs *v, struct vmb_node *n);
/* Keep the descriptors of the node of st (an inode about to lose its last link
 * through this mount) usable, until vmb_fds_unpin: once the link is gone, no file
 * handle reopens it. Returns the node to give to vmb_fds_unpin, or NULL. */
struct vmb_node *vmb_fds_pin(struct vmb_vfs *v, const struct stat *st);
void vmb_fds_unpin(struct vmb_vfs *v, struct vmb_node *n);

/* Take a reference on the node of id ino (0 or -ESTALE). */
int vmb_node_get(struct vmb_vfs *v, uint64_t ino, struct vmb_node **out);
void vmb_node_put(struct vmb_vfs *v, struct vmb_node *n);
uint64_t vmb_node_id(struct vmb_vfs *v, struct vmb_node *n);

/* Find or make the node of name in parent and count a lookup; fills e. */
int vmb_node_lookup(struct vmb_vfs *v, struct vmb_node *parent, const char *name,
		    struct vmb_entry *e, struct vmb_err *err);

/* The same for the inode of fd, an O_PATH descriptor the call takes over (closed on
 * every path): a node for what the daemon itself just made as name in parent (the
 * name is recorded for the node's place, never opened). */
int vmb_node_lookup_fd(struct vmb_vfs *v, struct vmb_node *parent, int fd, const char *name,
		       struct vmb_entry *e, struct vmb_err *err);

/* stat of a node as the mount shows it. */
int vmb_node_stat(struct vmb_vfs *v, struct vmb_node *n, struct stat *st, struct vmb_err *err);

/* "/proc/self/fd/N" for n's O_PATH fd. */
void vmb_node_procpath(const struct vmb_node *n, char buf[64]);

/* The node's path relative to the store, for messages ("?" when unknown). */
void vmb_node_relpath(struct vmb_vfs *v, const struct vmb_node *n, char *buf, size_t size);

/* Check a name for creating/renaming into parent. */
int vmb_check_new_name(struct vmb_vfs *v, struct vmb_node *parent, const char *name,
		       int is_dir, struct vmb_err *err);

/* Open (first handle) or share the node's image; put it back. */
int vmb_node_image_get(struct vmb_vfs *v, struct vmb_node *n, int backing_fd,
		       struct vmb_image **img, int *was_open, struct vmb_err *err);
void vmb_node_image_put(struct vmb_vfs *v, struct vmb_node *n);
/* At a close of f (vmb_vfs_flush), f open for writing: the file's queued direct
 * writes drained (they reach the backing file before close(2) returns), then a
 * delta's changed map committed (vmb_image_commit); a failure is logged (the last
 * close tries again). */
void vmb_vfs_commit(struct vmb_file *f);

/* New entries belong to the caller from their first instant: when the daemon runs
 * as root, the calling thread makes them with the caller's fsuid and fsgid
 * (setfsuid/setfsgid are per thread), keeping the daemon's capabilities, since the
 * kernel has already checked the caller's permissions (default_permissions). Nothing
 * is ever chowned by name. The thread's umask is 0 meanwhile (each thread that
 * creates gets its own umask with unshare(CLONE_FS)): the mode given is exact.
 * begin and end bracket the one call that creates; end keeps errno. The ids stay
 * when the daemon is not root or the caller is root. */
struct vmb_as_caller {
	int umask_set;
	mode_t old_umask;
	int switched;
	struct __user_cap_data_struct caps[2];
};
int vmb_as_caller_begin(const struct vmb_ctx *ctx, struct vmb_as_caller *s,
			struct vmb_err *err);
void vmb_as_caller_end(struct vmb_as_caller *s);

/* n was found under name in parent (a lookup) or moved there (a rename through the
 * mount): record it, recounting in-use locks when its bundle may have changed.
 * other_name (a lookup of a file with several links): a file open now (n->handles)
 * whose bundle that name would change keeps its place (it is where it was opened,
 * and its locks count there). Returns 1 if its parent changed. */
int vmb_node_move(struct vmb_vfs *v, struct vmb_node *n, struct vmb_node *parent,
		  const char *name, int other_name);

/* The node of st (if known) was renamed to name in parent through the mount. */
void vmb_node_renamed(struct vmb_vfs *v, const struct stat *st, struct vmb_node *parent,
		      const char *name);

/* The bundle of n (the ancestor whose parent is the root; n itself for a bundle),
 * NULL for the root or when unknown. Caller holds tlock. O(depth) in memory. */
struct vmb_node *vmb_node_bundle_locked(struct vmb_vfs *v, struct vmb_node *n);

/* The in-use callback of the mount's lock environment (arg is the vfs). */
void vmb_inuse_hold(void *arg, struct vmb_lockset *ls, const struct vmb_holder *h,
		    int delta);

/* Nodes moved between bundles (a rename or a lookup that reparented one): recount
 * the strong locks of every locked file in the bundles they are in now. */
void vmb_inuse_rebundle(struct vmb_vfs *v);

/* A change made through the mount in directory dir, with name gone (or NULL) and
 * name added (or NULL): keep the bundle's cached aux-storage names valid. */
void vmb_aux_cache_note(struct vmb_vfs *v, struct vmb_node *dir, const char *gone,
			const char *added);
void vmb_aux_cache_free(struct vmb_auxcache *c);

/* Refuse (-EBUSY, logged) a structural change to `name` in parent when its bundle is
 * in use by a process other than the caller. what: "remove", "rename", ... */
int vmb_check_not_in_use(struct vmb_vfs *v, struct vmb_node *parent, const char *name,
			 const struct vmb_ctx *ctx, const char *what, struct vmb_err *err);

/* The same for a change to node n itself (truncating it). */
int vmb_check_node_not_in_use(struct vmb_vfs *v, struct vmb_node *n,
			      const struct vmb_ctx *ctx, const char *what, struct vmb_err *err);

/* The value of the virtual xattr user.vmbundlefs.lock (-ENODATA when unlocked). */
ssize_t vmb_lock_xattr(struct vmb_vfs *v, struct vmb_node *n, void *buf, size_t size);

/* The reply of a virtual xattr whose value is text[0..len): its size when size is 0,
 * -ERANGE when it does not fit, else len with the bytes in buf (vfs_xattr.c). */
ssize_t vmb_xattr_text(const char *text, int len, void *buf, size_t size);

/* The write barrier (vfs_barrier.c). Every change through the mount runs between
 * begin and end on the node it changes (a directory for its entries; name: the
 * entry, which names a bundle when n is the root). begin2/end2: two nodes at once
 * (a rename; b may be NULL), never one after the other (a pause between the two
 * would wait for the first while the second waits for the pause). */
void vmb_barrier_init(struct vmb_vfs *v);
void vmb_barrier_destroy(struct vmb_vfs *v);
void vmb_change_begin(struct vmb_vfs *v, struct vmb_node *n, const char *name);
void vmb_change_end(struct vmb_vfs *v, struct vmb_node *n);
void vmb_change_begin2(struct vmb_vfs *v, struct vmb_node *a, const char *aname,
		       struct vmb_node *b, const char *bname);
void vmb_change_end2(struct vmb_vfs *v, struct vmb_node *a, struct vmb_node *b);
/* Raise the barrier of bundle (a top-level name): returns once the changes in
 * flight in it have ended and its open images are drained; new ones wait until
 * vmb_barrier_resume. -EBUSY when a bundle is paused already. */
int vmb_barrier_pause(struct vmb_vfs *v, const char *bundle, struct vmb_err *err);
void vmb_barrier_resume(struct vmb_vfs *v);

/* n's file is now the inode of newfd (an O_PATH descriptor the call takes over on
 * success; the caller closes it on failure): a freeze or flatten made a new inode
 * and renamed it (or is about to rename it) over n's name. Its lock owners' locks
 * are taken on the new inode before the old ones go (vmb_lockset_rebind), its
 * holder record moves, then the node's (dev, ino) hash entry, O_PATH descriptor
 * and file handle; the kernel's cached attributes are dropped (st_ino changed).
 * The caller holds a reference on n and, when n's image is open, the image alone
 * (vmb_fds_lock), whose own descriptor it moves (vmb_image_freeze does). When the
 * locks cannot be taken on the new inode: -errno and nothing changed, or with
 * force (the name already names the new inode: there is no going back) the failure
 * logged, naming the file, and the node moved all the same. */
int vmb_node_rebind(struct vmb_vfs *v, struct vmb_node *n, int newfd, int force,
		    struct vmb_err *err);

/* n's lockset, NULL when no lock call made one yet; read without n->ilock (a caller
 * holding o_busy must not take ilock: a stat or an open holds ilock while it waits
 * for o_busy). Valid while the caller holds a reference on n. */
static inline struct vmb_lockset *vmb_node_locks(struct vmb_node *n)
{
	return __atomic_load_n(&n->locks, __ATOMIC_ACQUIRE);
}

/* Set removed_here on the node of (dev, ino), if there is one. */
void vmb_node_mark_removed(struct vmb_vfs *v, dev_t dev, ino_t ino);

/* 1 when n has no name left and none was removed through this mount: the kernel
 * reached it by an entry it still caches of a name removed from outside (a bundle
 * replaced by import --replace, another mount's unlink). An open of such a file
 * and a lookup in such a directory answer ESTALE: the kernel walks the path again,
 * revalidating each step. A node whose name went through this mount is not (a
 * reopen through /proc/PID/fd, a working directory removed here). */
int vmb_node_gone_outside(struct vmb_node *n);

/* The node of (dev, ino) with a reference, or NULL. */
struct vmb_node *vmb_node_find(struct vmb_vfs *v, dev_t dev, ino_t ino);

/* n's open image alone: wait until no call uses it, keep every other user out
 * (o_busy) and its descriptor live until vmb_fds_unlock. 1 when it is open (*img
 * set), 0 when it is not (nothing held), -errno when it cannot be made live. Call
 * with no ilock held. */
int vmb_fds_lock(struct vmb_vfs *v, struct vmb_node *n, struct vmb_image **img,
		 struct vmb_err *err);
void vmb_fds_unlock(struct vmb_vfs *v, struct vmb_node *n);

/* Freeze dirfd/name (relpath in the store, for messages and its node), as the
 * control channel's freeze hook does (vfs_ctl_hooks.c): the node's image when the
 * kernel knows the file, then the node follows the new inode. Caller holds opmu and
 * the file's bundle paused; no call of its own holds the file. */
int vmb_ctl_freeze(struct vmb_vfs *v, int dirfd, const char *name, const char *relpath,
		   char id[VMB_BASE_ID_LEN + 1], struct vmb_err *err);

/* Does another mount of the store serve now (vfs_ctl.c)? A live control socket in
 * STORE/.vmbundlefs/run other than this mount's: 1 with *which naming it (its mount
 * point when this process sees it in /proc/self/mountinfo, else the socket), 1 as
 * well when run/ cannot be read (cannot tell), 0 when none (a URL mount's private
 * store: always 0). One readdir of a directory holding this mount's socket alone
 * when it is the only mount; a connect to each other socket. Freezing a file while
 * another mount serves would hand the inode that mount's descriptors write to the
 * layers (its writes would land in a layer, "never written again"): the copy's
 * freeze (vfs_share.c) and the structural requests (vmb_ctl_run) ask first. */
int vmb_ctl_other_mount(struct vmb_vfs *v, char *which, size_t size);

/* copy_file_range shares layers when it can (vfs_share.c): the bytes shared, 0 when
 * the copy must copy bytes (nothing changed). */
ssize_t vmb_vfs_share_range(struct vmb_file *in, uint64_t off_in, struct vmb_file *out,
			    uint64_t off_out, size_t len);

/* After a name lost its link: remove the sidecar of (ino) unless an image is open. */
void vmb_forget_sidecar(struct vmb_vfs *v, dev_t dev, ino_t ino);

/* vfs_lazy.c: a URL mount's bundles pulled when first needed. init copies o
 * (NULL: none); free is safe on a half-built vfs. lookup: when name is one of
 * them and not pulled yet, pull it (0, or -errno with a message, logged).
 * readdir: the root's listing, from the names alone (nothing is pulled). */
int vmb_lazy_init(struct vmb_vfs *v, const struct vmb_vfs_lazy *o, struct vmb_err *err);
void vmb_lazy_free(struct vmb_vfs *v);
int vmb_lazy_lookup(struct vmb_vfs *v, const char *name, struct vmb_err *err);
int vmb_lazy_readdir(struct vmb_vfs *v, uint64_t off, vmb_fill_fn fill, void *arg);
/* The inode number a URL mount reports for its bundle name (readdir's d_ino, st_ino
 * from the first lookup on, pulled or not: a fixed one per listed name), or 0 when
 * name is not one of its bundles. */
uint64_t vmb_lazy_ino(struct vmb_vfs *v, const char *name);
/* The root's st_nlink counts every listed bundle, pulled or not. */
void vmb_lazy_root_stat(struct vmb_vfs *v, struct stat *st);
/* vfs_ctl_hooks.c: the context of a structural operation on the mounted store. */
struct vmb_opctx;
void vmb_ctl_opctx(struct vmb_vfs *v, struct vmb_opctx *c);

#endif
