/* fdio.h - whole-buffer reads and writes on file descriptors, retried across
 * EINTR and short transfers. One copy of these loops for the whole library.
 * All return 0 (or a count) or -errno; none keeps a message: the caller knows
 * what the descriptor is and says so. */
#ifndef VMB_FDIO_H
#define VMB_FDIO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Writes len bytes at off. *done (may be NULL) gets the bytes written, also on
 * failure. A write of 0 bytes for a non-empty buffer is -EIO. */
int vmb_pwrite_full(int fd, const void *buf, size_t len, uint64_t off, size_t *done);

/* Reads len bytes at off; what lies past the end of the file reads as zeros (the
 * file shrank under the caller). Returns len or -errno. */
ssize_t vmb_pread_full(int fd, void *buf, size_t len, uint64_t off);

/* write(2) all of buf at the file position. 0 or -errno (-EIO for a 0 write). */
int vmb_write_full(int fd, const void *buf, size_t len);

/* read(2) up to len bytes, stopping early only at end of file: the count read,
 * or -errno. */
ssize_t vmb_read_full(int fd, void *buf, size_t len);

/* fsync(2) and fdatasync(2) of a store's own files and directories (store/,
 * layer/, map/, image/): the same calls, except on a thread that builds a
 * scratch store (vmb_sync_scratch(1)), where they do nothing and return 0.
 * That is the private shadow store of a mount of a URL, built before the mount
 * by the command's thread, removed at unmount, rebuilt by every mount, and
 * swept by the next mount when a crash leaves it: its durability would buy
 * nothing and cost two fsyncs a file. The flag is per thread and starts clear
 * on every thread; the builder clears it before it becomes the daemon. The
 * remote cache (shared by every process on the host), published
 * destinations and the daemon's writes never go through these. */
int vmb_fsync(int fd);
int vmb_fdatasync(int fd);
void vmb_sync_scratch(int on);

/* fsync the directory that holds path (trailing slashes ignored; "." for a bare
 * name), so that the entry of a file or directory just made there is durable.
 * 0 or -errno. */
int vmb_fsync_parent(const char *path);

/* mkdir -p of the directories path names before its last '/' (so "a/b/" makes
 * a/b too), 0755 under the umask. Each directory made is fsynced into its parent
 * (vmb_fsync_parent) before the next is made, so it is durable before anything in
 * it: a failed fsync is an error when sync_required, else ignored (best effort: a
 * parent the caller may not read). 0, or -errno with *at (may be NULL) set to the
 * length of the prefix of path that could not be made or synced. */
int vmb_mkdir_parents(const char *path, int sync_required, size_t *at);

#endif
