/* holders.h - who holds locks on which backing file: a registry every mount of a
 * store publishes, so that other mounts, `vmbundlefs ls` and import can name the
 * holder of a lock they only see as "locked" (OFD locks carry no pid).
 *
 * STORE/.vmbundlefs/holders/<016x ino>.<daemon pid> names one holder of a lock on
 * that backing file through that mount, in one line:
 *     <holder pid> <type r|w|f> <start> <end|eof> <command>
 * It is written when the file starts being locked through the mount, rewritten only
 * when the holder it names stops holding while others still hold, and removed when
 * the mount holds no lock on the file: O(1) I/O, and none for most lock changes.
 *
 * STORE/.vmbundlefs/holders/bundle.<016x bundle dir ino>/<daemon pid> says that
 * bundle is in use through that mount: the holder line above, then a line with the
 * locked file's path relative to the store (or its name). It is written when the
 * bundle goes from not in use to in use through the mount, rewritten only when the
 * holder it names stops, and removed when the bundle is no longer in use there, so
 * a check of one bundle reads one small directory.
 *
 * Files are written as temporary + rename, not fsync'ed (they describe running
 * processes). Readers trust an entry only while its daemon pid is alive; a lock that
 * exists on the backing file but appears in no live entry is reported without a
 * holder. Unknown or malformed entries are ignored.
 */
#ifndef VMB_HOLDERS_H
#define VMB_HOLDERS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "base/err.h"

#define VMB_HOLDERS_DIR "holders"
#define VMB_COMM_MAX 64

struct vmb_holder {
	pid_t pid;                  /* process that took the lock */
	char type;                  /* 'r' read, 'w' write, 'f' flock (shared or not) */
	uint64_t start, end;        /* byte range, end inclusive; UINT64_MAX = EOF */
	char comm[VMB_COMM_MAX];    /* its command name, "?" if unknown */
};

/* Replace the registry entry of (ino, this process) by list (n entries; n == 0
 * removes it). metafd is the store's .vmbundlefs directory; -1: no registry (this
 * and vmb_holders_find do nothing). */
int vmb_holders_publish(int metafd, uint64_t ino, const struct vmb_holder *list, size_t n,
			struct vmb_err *err);

/* Find a live holder of ino whose range overlaps [start, end] (any range when
 * end < start). Returns 1 and *h, or 0 when none is known. exclude_self skips this
 * process's own entries. */
int vmb_holders_find(int metafd, uint64_t ino, uint64_t start, uint64_t end,
		     int exclude_self, struct vmb_holder *h);

/* Record (h non-NULL) or remove (h NULL) that bundle directory inode bundle_ino is
 * in use through this process; path names the locked file for messages. */
int vmb_holders_bundle_set(int metafd, uint64_t bundle_ino, const struct vmb_holder *h,
			   const char *path, struct vmb_err *err);

/* A live daemon's record of bundle_ino (other than this process's when exclude_self):
 * 1 with *h and path (may be NULL), else 0. Reads one small directory. */
int vmb_holders_bundle_find(int metafd, uint64_t bundle_ino, int exclude_self,
			    struct vmb_holder *h, char *path, size_t pathsz);

/* Parse one registry line ("<pid> <type> <start> <end|eof> <command>"): 0 or -1. */
int vmb_holders_parse(const char *line, struct vmb_holder *h);

/* Remove entries of daemons that are no longer running (called at mount). */
void vmb_holders_sweep(int metafd);

/* The process (thread group) id of thread tid, from /proc; tid itself if unknown. */
pid_t vmb_tgid_of(pid_t tid);

/* The command name of pid (from /proc), "?" if unknown. */
void vmb_comm_of(pid_t pid, char comm[VMB_COMM_MAX]);

/* "pid 4242 (qemu-system-x86)" */
void vmb_holder_describe(const struct vmb_holder *h, char *buf, size_t size);

#endif
