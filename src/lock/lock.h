/* lock.h - advisory locks of one file through a mount, mirrored onto its backing file.
 *
 * Every lock owner the kernel names (a process for POSIX locks, an open file for OFD
 * and flock locks) gets its own open file description of the backing file, and its
 * locks are taken there as OFD locks (flock locks with flock(2)). The kernel's own
 * lock code on the backing file then decides every conflict: between owners of this
 * mount, with processes using the backing file directly, and with other mounts of the
 * store. A shadow list of each owner's ranges names the holder of a conflict (OFD
 * locks carry no pid) and feeds the holder registry (holders.h).
 *
 * Lifetimes: an owner lives until the handle it was first used through is released
 * (RELEASE drops every OFD and flock lock taken through a handle: the kernel sends no
 * unlock for those) and no call is waiting on it. FLUSH (every close) drops a POSIX
 * owner's locks, and marks the owners of its handle closing. The kernel's owner id
 * of an OFD or flock lock is an open file's address, which a new open may reuse
 * before the old file's RELEASE arrives: an owner is found by id and handle, and a
 * closing owner is never lent to a call through another handle. Locking: ls->mu guards the owner list; it is never held while a call
 * waits for a lock.
 *
 * In use: an owner whose lock was taken by a caller who could also have written the
 * file (a handle opened for writing, the file's owner, or root: `strong`) makes the
 * file's bundle in use while it holds any lock; the environment's `hold` callback
 * hears every such owner start (+1) and stop (-1) holding, with ls->mu held, so the
 * mount keeps an O(1) counter per bundle. Other locks are ordinary advisory locks.
 *
 * Registry I/O: a lock change costs at most one write to the holder registry, and
 * only when the file starts or stops being locked through this mount, or when the
 * owner its entry names stops holding (holders.h); none otherwise.
 *
 * Cap: one process (by the pid the kernel gives) holds at most env->max locks (byte
 * ranges plus flock locks) through the mount; a lock call beyond that fails with
 * ENOLCK and a message naming the process (env->mu, never held with ls->mu waiting).
 */
#ifndef VMB_LOCK_H
#define VMB_LOCK_H

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/types.h>
#include "base/err.h"
#include "lock/holders.h"

struct vmb_lock_owner;

/* Who waits for whom, across every file of a mount: a waiting lock call that would
 * close a cycle fails with EDEADLK, as POSIX locks do on a local filesystem (the
 * mirrored OFD locks have no deadlock detection of their own). */
struct vmb_waitgraph {
	pthread_mutex_t mu;
	struct vmb_wait_edge { uint64_t waiter, holder; } *e;
	size_t n, cap;
};

void vmb_waitgraph_init(struct vmb_waitgraph *g);
void vmb_waitgraph_destroy(struct vmb_waitgraph *g);

/* One per mount, shared by every lockset: the per-process lock counts behind the cap
 * and the in-use callback. */
#define VMB_LOCK_CAP_DEFAULT 10000
struct vmb_lockset;
struct vmb_lock_proc;
struct vmb_lockenv {
	pthread_mutex_t mu;                 /* guards procs */
	struct vmb_lock_proc **procs;       /* hash of per-process counts */
	unsigned long max;                  /* locks per process; 0: no cap */
	const struct vmb_log *log;          /* borrowed, may be NULL: cap refusals */
	/* An owner of ls that makes its bundle in use started (+1) or stopped (-1)
	 * holding a lock; h describes it. Called with ls->mu held; must not call back
	 * into ls. */
	void (*hold)(void *arg, struct vmb_lockset *ls, const struct vmb_holder *h,
		     int delta);
	void *arg;
};

int vmb_lockenv_init(struct vmb_lockenv *env, unsigned long max);
void vmb_lockenv_destroy(struct vmb_lockenv *env);
/* Locks pid holds through the mount now (for tests and messages). */
unsigned long vmb_lockenv_count(struct vmb_lockenv *env, pid_t pid);

/* A budget for the owners' descriptors (optional; the mount's, vfs_fds.c): take is
 * called before an owner opens its descriptor, with the pid that locks (0 or
 * -errno with err filled: the owner is refused), give when that descriptor is
 * closed, with the uid take returned. */
struct vmb_lock_budget {
	int (*take)(void *arg, pid_t pid, uid_t *uid, struct vmb_err *err);
	void (*give)(void *arg, uid_t uid);
	void *arg;
};

struct vmb_lockset {
	struct vmb_lock_budget *budget;   /* borrowed, NULL: none (set after init) */
	pthread_mutex_t mu;
	pthread_cond_t released;   /* an owner went away */
	struct vmb_lock_owner *owners;
	uint64_t ino;      /* backing inode, for the registry */
	int metafd;        /* borrowed: the store's .vmbundlefs; -1: no holder registry
			    * (a snapshot file's locks, kept in the mount alone) */
	struct vmb_waitgraph *wg;   /* borrowed: the mount's */
	struct vmb_lockenv *env;    /* borrowed, may be NULL: set after init */
	void *cookie;               /* the caller's (the vfs node) */
	unsigned strong;            /* owners that make the bundle in use and hold locks */
	const struct vmb_lock_owner *published;   /* owner the registry entry names */
	int has_record;             /* the registry has an entry of this file */
};

/* A call that may wait (F_SETLKW, flock without LOCK_NB). Another thread interrupts
 * it with vmb_lock_interrupt: the waiter's thread gets signal `signo`, whose handler
 * must be installed without SA_RESTART (the FUSE adapter does this). */
struct vmb_lock_wait {
	pthread_t thread;
	int signo;
	volatile sig_atomic_t interrupted;
	volatile sig_atomic_t waiting;
};

void vmb_lockset_init(struct vmb_lockset *ls, uint64_t ino, int metafd,
		       struct vmb_waitgraph *wg);
/* Close every owner (their locks go), remove the registry entry. */
void vmb_lockset_destroy(struct vmb_lockset *ls);

/* F_GETLK / F_OFD_GETLK: fl in, the conflicting lock out (l_type F_UNLCK if none),
 * l_pid the holder's pid when known. proc_path opens the backing file. */
int vmb_lock_get(struct vmb_lockset *ls, const char *proc_path, const void *via,
		 uint64_t owner, struct flock *fl, struct vmb_err *err);

/* F_SETLK(W): take, change or drop a byte-range lock of owner, taken through handle
 * `via`. wait NULL: fail at once with -EAGAIN on a conflict; else wait, -EINTR when
 * interrupted. strong: the caller could write the file (see "In use" above); -ENOLCK
 * past the per-process cap. */
int vmb_lock_set(struct vmb_lockset *ls, const char *proc_path, const void *via,
		 uint64_t owner, pid_t pid, int strong, const struct flock *fl,
		 struct vmb_lock_wait *wait, struct vmb_err *err);

/* flock(2): op LOCK_SH, LOCK_EX or LOCK_UN (LOCK_NB is wait == NULL). */
int vmb_lock_flock(struct vmb_lockset *ls, const char *proc_path, const void *via,
		   uint64_t owner, pid_t pid, int strong, int op, struct vmb_lock_wait *wait,
		   struct vmb_err *err);

/* Close (FLUSH) through handle via by lock owner `owner`: drop owner's POSIX locks,
 * and note that via may be on its way out. The kernel sends RELEASE, which drops
 * OFD and flock locks, only after close(2) has returned; a lock call or in-use test
 * that meets a conflict with such a handle first waits (briefly) for its RELEASE,
 * so that "close, then lock at once" never fails spuriously. */
void vmb_lock_flush(struct vmb_lockset *ls, const void *via, uint64_t owner);

/* Wait (at most VMB_LOCK_SETTLE_MS) until no owner of a handle that was closed is
 * left. Returns 1 if it waited for something, else 0. */
#define VMB_LOCK_SETTLE_MS 1000
int vmb_lock_settle(struct vmb_lockset *ls);

/* Release of handle via: drop every owner first used through it. */
void vmb_lock_release(struct vmb_lockset *ls, const void *via);

/* 1 if some owner of this mount holds a lock (any kind) on the file; *h (if non-NULL)
 * gets one of them. _strong: only owners that make the bundle in use. */
int vmb_lock_any(struct vmb_lockset *ls, struct vmb_holder *h);
int vmb_lock_any_strong(struct vmb_lockset *ls, struct vmb_holder *h);

/* 1 if every strong owner holding a lock on the file is process pid (or there is
 * none), else 0 and *h names one that is not. */
int vmb_lock_strong_only_by(struct vmb_lockset *ls, pid_t pid, struct vmb_holder *h);

/* The file moved to a new inode (its name now names a copy of it: a freeze or a
 * flatten, issue 10), which proc_path opens: every owner's locks are taken on the
 * new inode before its descriptor of the old one is closed, the registry entry
 * moves to new_ino (written before the old one is removed). Waits (1 s at most) for
 * calls using the owners' descriptors; -EBUSY naming the process when one is still
 * waiting for a lock; -errno when a lock cannot be taken on the new inode (held
 * there by someone else): then nothing changed. */
int vmb_lockset_rebind(struct vmb_lockset *ls, const char *proc_path, uint64_t new_ino,
		       struct vmb_err *err);
/* The same in two steps around the change that makes the new inode the file's (the
 * rename of a freeze or flatten), so that its locks are on the new inode before the
 * name names it: move_begin takes every owner's locks on the new inode too (the
 * old inode keeps them) and returns 0 holding the lockset's mutex, so that no lock
 * call runs until move_end (errors and waits as for rebind; on failure nothing
 * changed and the mutex is not held); move_end(mv, 1) moves to the new inode
 * (registry entry, old descriptors closed), move_end(mv, 0) drops the new inode's
 * locks. Lock order: an image's wlock may be held around them (vmb_image_freeze2).
 * vmb_lockset_rebind to the inode a move ended on is a no-op. */
struct vmb_lockmove {
	struct vmb_lockset *ls;   /* NULL: nothing to end */
	int *nfd;
	size_t n;
	uint64_t new_ino;
};
int vmb_lockset_move_begin(struct vmb_lockset *ls, const char *proc_path, uint64_t new_ino,
			   struct vmb_lockmove *mv, struct vmb_err *err);
void vmb_lockset_move_end(struct vmb_lockmove *mv, int commit);
/* The same wait alone, before a change that cannot be undone: 0 when no call is
 * using an owner's descriptor (a lock call may start again right after). */
int vmb_lockset_idle(struct vmb_lockset *ls, struct vmb_err *err);

/* Interrupt a waiting call (from another thread). */
void vmb_lock_interrupt(struct vmb_lock_wait *w);

#endif
