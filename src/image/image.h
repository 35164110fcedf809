/* image.h - one sparse file: its backing file plus its block map, over an optional
 * base.
 *
 * The backing file holds exactly the file's logical content, with holes where the
 * file reads as zeros, so a store is usable without vmbundlefs. The block map says,
 * per 4 KiB block, DATA (read the backing), ZERO (reads as zeros; the backing has a
 * hole there) or ABSENT (this layer has nothing: the base, or zeros when there is
 * no base, as for every file today). Invariants, kept by every operation:
 *   - the backing file's size is the logical size;
 *   - no map extent reaches past ceil(size / 4096);
 *   - a DATA block is never claimed for bytes that were not written.
 * Whole blocks written as zeros, PUNCH_HOLE and ZERO_RANGE become ZERO extents and
 * holes in the backing; reads of ZERO/ABSENT blocks never touch the backing.
 *
 * A file may be a delta over a base (map/base.h, LAYERS.md): its backing file's
 * xattr VMB_BASE_XATTR ("<ID> <limit>") names the base and the base limit, the
 * authority for "this file has a base". Its content: DATA blocks from the backing
 * file, ZERO blocks zeros (hiding the base), ABSENT blocks below the limit from the
 * base, above it zeros. For such a file the backing file alone is not its content:
 * its holes cannot tell ZERO from ABSENT, so its map is rebuilt from the last
 * committed map (vmb_image_open2) and never removed before a change. A truncate to
 * S lowers the limit to min(limit, floor(S / 4096)) (the partial block at S copied
 * from the base first), so that a shrink-then-extend reads zeros. A file without a
 * base is exactly as before (formats included).
 *
 * Ownership: an image owns its backing fd (closed by vmb_image_close), its map and
 * its reference to its base; it borrows mapdir_fd and log, which must outlive it. One image per backing inode:
 * the caller (vfs) shares it between every handle of that inode.
 *
 * Locking: wlock serialises every change (write, truncate, fallocate, copy into,
 * sync/persist); mlock guards map, size and dirty, held only briefly. Order:
 * wlock before mlock; when copying between two images, only the destination's
 * wlock is taken (the source is read like any reader, under its mlock).
 */
#ifndef VMB_IMAGE_H
#define VMB_IMAGE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include "map/blockmap.h"
#include "map/base.h"
#include "base/err.h"
#include "image/xns.h"

struct vmb_image;
struct vmb_stamp;
struct vmb_layers;

/* trusted.vmbundlefs.base, or user.vmbundlefs.base in a user-namespace store (xns.h) */
#define VMB_BASE_XATTR (vmb_xns_base_name())

/* Open an image over backing file fd (O_RDWR, or O_RDONLY for a read-only image).
 * The map comes from the sidecar in mapdir_fd when its stamp matches the backing
 * file; a missing or stale sidecar is rebuilt from the backing file's holes; a corrupt
 * one fails with -EIO ("cannot open 'NAME': sidecar map is corrupt (...)").
 * name (copied) names the file in messages. On success the image owns fd; on failure
 * the caller still does. */
int vmb_image_open(struct vmb_image **out, int fd, int mapdir_fd, const char *name,
		   const struct vmb_log *log, struct vmb_err *err);

/* The same for a file that may have a base: its base xattr is read and the base
 * resolved through res (NULL: a file with a base fails with -EIO "has a base but no
 * layers were given"; a base that cannot be resolved fails as the resolver says,
 * -EIO naming the layer). A delta's map comes from a version-2 sidecar whose stamp,
 * base and limit match; otherwise it is rebuilt from the last committed map (the
 * sidecar and its journal up to the last COMMIT, when it is this inode's and names
 * this base): every block that holds data in the backing file becomes DATA, every
 * committed DATA block that is a hole now ZERO, ABSENT and ZERO holes stay. With no
 * committed map, holes are ABSENT. vmb_image_open is open2 with res NULL. */
int vmb_image_open2(struct vmb_image **out, int fd, int mapdir_fd, const char *name,
		    const struct vmb_log *log, const struct vmb_base_resolver *res,
		    struct vmb_err *err);

/* Persist the map if it changed (durably), remove the sidecar instead when the backing
 * file has no links left, close the backing file, free. Failures go to the log.
 * NULL-safe. */
void vmb_image_close(struct vmb_image *img);

/* Read up to len bytes at off; returns bytes read (0 at or past EOF) or -errno.
 * When every byte of the range is a hole, buf is left untouched and *holes_only is
 * set to 1 (the caller can answer from a shared zero buffer); else *holes_only = 0
 * and buf holds the bytes. holes_only may be NULL (then buf is always filled). */
ssize_t vmb_image_read(struct vmb_image *img, void *buf, size_t len, uint64_t off,
		       int *holes_only, struct vmb_err *err);

/* When [off, off + len), clipped to the size, is all DATA: returns 1 with the
 * clipped length in *n (the bytes can then be read from vmb_image_fd at off, by
 * splice say); 0 when it is not (use vmb_image_read). */
int vmb_image_all_data(struct vmb_image *img, uint64_t off, size_t len, size_t *n);

/* The same through the base: returns 1 when [off, off + len), clipped to the size,
 * reads from one descriptor at the same offsets (the backing file's DATA, or one run
 * of the base's, vmb_base_ops.lookup) with *fd and the clipped length in *n; the
 * descriptor stays valid while img is open. 0: use vmb_image_read. As vmb_image_read,
 * a range that is not all DATA in a delta is checked for changes by someone else
 * first (one statx); a base descriptor is handed out only when it holds every byte
 * of the range (one fstat: a splice never ends early). A file without a base: as
 * vmb_image_all_data. */
int vmb_image_read_fd(struct vmb_image *img, uint64_t off, size_t len, int *fd, size_t *n);

/* When [off, off + len), clipped to the size, reads all from the base, and the base
 * can hand it out in pieces of descriptors now (a remote base's cached chunks,
 * vmb_base_ops.pieces): returns their number n (1..max), pc[0..n) covering the
 * clipped range in order; the descriptors stay valid until
 * vmb_image_read_pieces_done(img, pc, n), which must follow. 0: use
 * vmb_image_read_fd or vmb_image_read. As vmb_image_read, the delta is checked for
 * changes by someone else first (one statx). */
int vmb_image_read_pieces(struct vmb_image *img, uint64_t off, size_t len,
			  struct vmb_base_piece *pc, int max);
void vmb_image_read_pieces_done(struct vmb_image *img, struct vmb_base_piece *pc, int n);
/* 1 when img has a base that can hand out pieces (else vmb_image_read_pieces is
 * 0); no I/O. */
int vmb_image_has_pieces(struct vmb_image *img);

/* Bytes of file data this process has read from backing files so far (pread, or
 * handed out for splicing); reads of holes never count. */
uint64_t vmb_image_backing_read_bytes(void);

/* Write len bytes at off; returns bytes written (short only on ENOSPC and the like
 * after some progress) or -errno. */
ssize_t vmb_image_write(struct vmb_image *img, const void *buf, size_t len,
			uint64_t off, struct vmb_err *err);

int vmb_image_truncate(struct vmb_image *img, uint64_t size, struct vmb_err *err);

/* mode: 0, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE|FALLOC_FL_KEEP_SIZE,
 * FALLOC_FL_ZERO_RANGE (| FALLOC_FL_KEEP_SIZE). Others: -EOPNOTSUPP. */
int vmb_image_fallocate(struct vmb_image *img, int mode, uint64_t off, uint64_t len,
			struct vmb_err *err);

/* SEEK_DATA / SEEK_HOLE from the map. -ENXIO at or past EOF, and for SEEK_DATA
 * past the last data. */
int vmb_image_seek(struct vmb_image *img, uint64_t off, int whence, uint64_t *res,
		   struct vmb_err *err);

/* Copy len bytes from src at soff to dst at doff: data extents in the kernel
 * (copy_file_range on the backing files), holes as holes. Returns bytes copied. */
ssize_t vmb_image_copy_range(struct vmb_image *src, uint64_t soff, struct vmb_image *dst,
			     uint64_t doff, size_t len, struct vmb_err *err);

/* Copy [off, off + len) of src to the same offsets of dst by sharing src's base
 * instead of copying bytes (cp inside the mount, issue 10 section 6;
 * image_share.c). Shares when: src reads the whole range from its base (no DATA
 * or ZERO block of its own delta there); off is block-aligned and is dst's size;
 * dst has no base or the same one; every block of dst from its base limit (0
 * without a base) up to off is its own (DATA or ZERO), so that a higher limit
 * changes nothing it reads; the copy ends at src's end or on a block boundary.
 * Then dst takes src's base and the limit that makes it read src's bytes up to the
 * end, and its size becomes the end: O(1) in the range, no byte copied. Returns
 * the bytes copied (end - off), 0 when the range cannot be shared (nothing changed:
 * copy it with vmb_image_copy_range), or -errno (nothing changed). Takes dst's
 * wlock; src is read under its mlock, as by vmb_image_copy_range. Crash safe: a
 * file opened after a crash reads its old content or the new one. */
ssize_t vmb_image_share_range(struct vmb_image *src, struct vmb_image *dst, uint64_t off,
			      size_t len, struct vmb_err *err);

/* Whether vmb_image_share_range could share [off, off + len) of src into dst: 1 as
 * things are, 2 once src's delta holds nothing in the range (after a freeze of
 * src), 0 not. A hint from the maps as they are now (no backing file looked at). */
int vmb_image_share_hint(struct vmb_image *src, struct vmb_image *dst, uint64_t off, size_t len);

/* fsync/fdatasync the backing file, then persist the map durably. */
int vmb_image_sync(struct vmb_image *img, int datasync, struct vmb_err *err);

/* Persist the map now if it changed. */
int vmb_image_persist(struct vmb_image *img, struct vmb_err *err);

/* At a close of the file (FUSE's flush, which close(2) waits for): a delta's map is
 * committed if it changed, as at its last close. Its holes cannot tell ZERO from
 * ABSENT, so another mount that opens the file next takes the blocks this one
 * zeroed over the base from the committed map (close-to-open); the last close
 * itself comes later (FUSE's release does not hold up close(2)). A file without a
 * base: nothing to do (its backing file is its content). */
int vmb_image_commit(struct vmb_image *img, struct vmb_err *err);

/* Mark the map for persisting at close (after a metadata change such as chmod, which
 * changes the backing file's ctime and so the stamp). */
void vmb_image_touch(struct vmb_image *img);

uint64_t vmb_image_size(struct vmb_image *img);
/* Bytes of the blocks that read as data (st_blocks * 512): the delta's DATA blocks
 * and, below the base limit, its ABSENT blocks that the base holds as data. Kept
 * from one call to the next while nothing changes. */
uint64_t vmb_image_alloc_bytes(struct vmb_image *img);

/* The base (a borrowed reference, valid while img is open; NULL for none) and the
 * base limit in blocks. */
struct vmb_base *vmb_image_base(struct vmb_image *img, uint64_t *limit);

/* Wait until every write accepted so far is on the backing file (see dio.h); before
 * looking at the backing file from outside (vmb_image_fd). */
void vmb_image_drain(struct vmb_image *img);

/* The drain of the last close, before the file's state is remembered: also gives
 * back the space reserved ahead of a writer (its truncate changes the times). */
void vmb_image_settle(struct vmb_image *img);

/* Let large aligned writes bypass the backing file's page cache (dio.h); off by
 * default. Ignored for a read-only image. */
void vmb_image_set_direct_writes(struct vmb_image *img, int on);

/* The backing file is this process's alone and never changed from outside (the
 * shadow store of a URL's mount): the look for someone else's change that reads
 * and other operations make (revalidate, a stat of the backing file each) is
 * skipped. Off by default. */
void vmb_image_set_private(struct vmb_image *img, int on);

/* The backing descriptor; -1 while parked. */
int vmb_image_fd(const struct vmb_image *img);

/* Parking (the daemon's descriptor budget, vfs_fds.c): close the backing descriptor,
 * and the O_DIRECT one with its threads and buffers, once every accepted write is on
 * the file; the map stays in memory. The caller guarantees that no other call on img
 * runs until it is unparked, and reopens the same inode with the same access mode
 * (vmb_image_writable) for vmb_image_unpark, which takes that descriptor. A parked
 * image must be unparked before any other call. -EBUSY when it cannot be parked: the
 * file has no links left (no file handle would reopen it), or a direct write failed
 * and its error waits for fsync. */
int vmb_image_park(struct vmb_image *img);
void vmb_image_unpark(struct vmb_image *img, int fd);
int vmb_image_writable(const struct vmb_image *img);

/* A copy of the current map (for tests and tools). dst must be initialised. */
int vmb_image_map_copy(struct vmb_image *img, struct vmb_blockmap *dst);

/* ---- Changes made by someone else (another mount, a writer in the store) ----
 * An image remembers `known`, the backing file's stamp (sidecar.h: inode, size,
 * mtime, birth time) after its own last change: every synchronous change (write,
 * truncate, fallocate, copy into, giving back a reservation, set_times) takes it
 * with one statx under wlock right after the change. Direct writes still queued
 * (dio.h) leave it unknown; the first check that finds the queue empty takes it
 * then (a change by someone else in that window is taken for this image's own:
 * two writers of one file at once is not supported). A check compares the backing
 * file with `known`; when they differ, someone else changed it: the map is rebuilt
 * from the backing file (vmb_sidecar_scan, exact for a file with no base), the
 * reservation ahead of a writer is forgotten (never punched), the map is marked
 * for saving under the stamp it was rebuilt from, and the change is remembered for
 * vmb_image_take_foreign.
 * Checks are made: by persist, sync and close before the map is saved (a map is
 * never saved unless it matches the backing file; the stamp saved is the one it
 * was checked against); before truncate, fallocate and copy into; by seek; by a
 * read whose range is not all DATA (no data is read: one statx); by settle; and
 * by the callers on every open and getattr (vmb_image_revalidate).
 * A write does not check first (one statx per write, after it). */

/* Check now. try: return 0 at once when an own change holds wlock (it stamps the
 * file when done). Returns 1 when a change by someone else was found (the map was
 * rebuilt), 0 when not, or -errno (the statx or the rebuild failed). */
int vmb_image_revalidate(struct vmb_image *img, int try, struct vmb_err *err);

/* 1 once (then 0) after a check found a change made by someone else: pages of the
 * file cached from before it (the kernel's) are stale. */
int vmb_image_take_foreign(struct vmb_image *img);

/* The stamp the map describes (`known`); -EAGAIN while it is unknown. */
int vmb_image_stamp(struct vmb_image *img, struct vmb_stamp *s);

/* Set the backing file's times (futimens: ts as for utimensat) as an own change:
 * checked before, stamped after, the map saved under the new stamp at close. */
int vmb_image_set_times(struct vmb_image *img, const struct timespec ts[2],
			struct vmb_err *err);

/* ---- Layers (LAYERS.md) ---- */

/* A new empty delta dirfd/name over base (clone's files): created O_EXCL (never
 * through a symlink), size bytes (>= the base's size; -EINVAL below it), owner,
 * mode and times from like, its base xattr "<base id> <ceil(base size / 4096)>",
 * and, when mapdir_fd >= 0, its committed map (empty) saved in mapdir_fd so that a
 * later rebuild starts from it. Synced (not its directory). On failure nothing is
 * left. The base is borrowed. */
int vmb_image_create_delta(int dirfd, const char *name, struct vmb_base *base, uint64_t size,
			   const struct stat *like, int mapdir_fd, struct vmb_err *err);

/* A read-only image of base alone, size bytes (the `.snapshots` view): reads,
 * seeks, copy_range from it, alloc_bytes work; every change fails with -EROFS.
 * It takes its own reference to base. No descriptor: vmb_image_fd is -1, it cannot
 * be parked (-EBUSY), vmb_image_all_data is always 0. */
int vmb_image_open_frozen(struct vmb_image **out, struct vmb_base *base, uint64_t size,
			  const char *name, const struct vmb_log *log, struct vmb_err *err);

/* Freeze (the primitive behind snapshot and clone, LAYERS.md): img's current
 * backing inode becomes layer *id of ls (vmb_layers_create: linked into
 * layers/, its map written; a merged layer when the chain would be deeper than
 * VMB_LAYER_DEPTH_MAX), and dirfd/name (img's file) gets a fresh empty delta over
 * it: a new inode (O_TMPFILE in dirfd, else a named temporary) with the old file's
 * size, owner, mode, times and user.* xattrs, the base xattr "<ID> <ceil(size /
 * 4096)>" and its committed (empty) map, synced, renamed over the name, the
 * directory synced. O(1) in the file's size. Under img's wlock, after draining its
 * writes (a write that failed: -EIO, nothing frozen). The image then is on the new
 * delta (vmb_image_fd, stamp and inode change; *new_ino = the new inode, for the
 * caller to rebind its node); the old descriptor and base stay open inside the
 * image until the next freeze or close, so a read that looked them up just before
 * still reads the frozen content. A delta that adds nothing to its base (no DATA
 * or ZERO block, size and limit its base's) is not frozen again: *id = its base's
 * id, *new_ino = 0, nothing changes. A file with other hard links is refused
 * (-EMLINK: its other names would keep the inode that becomes the layer). On
 * failure the file is as it was (a layer made on the way is removed). */
int vmb_image_freeze(struct vmb_image *img, struct vmb_layers *ls, int dirfd,
		     const char *name, char id[VMB_BASE_ID_LEN + 1], uint64_t *new_ino,
		     struct vmb_err *err);

/* What a freeze or flatten tells its caller about the new backing file, so that
 * what the caller keeps on the file (the daemon: the locks mirrored from the mount,
 * vmb_lockset_move_begin) is on the new inode before the name names it. All
 * optional. prepare(arg, fd, err): the new backing file fd is complete, not yet
 * the name's: 0 to go on, -errno (err set) to give up (nothing changed). finish(arg,
 * done), after a prepare that returned 0: done = 1 when the name names the new
 * file now, 0 when the operation gave up. Both are called under img's wlock. */
struct vmb_image_hooks {
	int (*prepare)(void *arg, int fd, struct vmb_err *err);
	void (*finish)(void *arg, int done);
	void *arg;
};

/* vmb_image_freeze with hooks (NULL: none). */
int vmb_image_freeze2(struct vmb_image *img, struct vmb_layers *ls, int dirfd,
		      const char *name, const struct vmb_image_hooks *h,
		      char id[VMB_BASE_ID_LEN + 1], uint64_t *new_ino, struct vmb_err *err);

/* The same for a file no image is open on (offline structural commands): opened
 * (through ls's resolver), frozen, closed. */
int vmb_image_freeze_offline(struct vmb_layers *ls, int dirfd, const char *name,
			     int mapdir_fd, const struct vmb_log *log,
			     char id[VMB_BASE_ID_LEN + 1], uint64_t *new_ino, struct vmb_err *err);

/* Make img's file self-contained: a new plain file with its whole content (data
 * runs copied with copy_file_range from its backing file and its base's
 * descriptors, holes as holes), owner, mode, times and user.* xattrs, no base
 * xattr, synced, renamed over dirfd/name (which must name img's file), the
 * directory synced; the image then on it with no base (vmb_image_fd changes: the
 * caller rebinds its node to the new inode, vmb_image_stamp). A file without a base
 * is left alone (0). Under wlock, drained. On failure nothing changed. */
int vmb_image_flatten(struct vmb_image *img, int dirfd, const char *name, struct vmb_err *err);
/* vmb_image_flatten with hooks (NULL: none). */
int vmb_image_flatten2(struct vmb_image *img, int dirfd, const char *name,
		       const struct vmb_image_hooks *h, struct vmb_err *err);

/* Load a file's map without keeping an image open (vmbundlefs ls, fsck):
 * same rules as vmb_image_open. *rebuilt = 1 when the sidecar was missing or stale.
 * A file with a base fails with -EIO (its map alone is not its content): see
 * vmb_image_load_map2. */
int vmb_image_load_map(int fd, int mapdir_fd, const char *name, struct vmb_blockmap *m,
		       uint64_t *size, int *rebuilt, struct vmb_err *err);

/* What vmb_image_load_map2 found about the base. */
struct vmb_image_baseinfo {
	char id[VMB_BASE_ID_LEN + 1];   /* "" when the file has no base */
	uint64_t limit;                 /* the base limit, in blocks */
	int lost;                       /* a delta with a base whose map was rebuilt with
					 * no committed map: blocks zeroed since it was
					 * made read their base again (fsck reports it) */
	int older;                      /* one rebuilt from a committed map older than
					 * the file: blocks zeroed since that commit read
					 * their base again (fsck reports it) */
	struct vmb_base *base;          /* resolved (one reference: vmb_base_put) when
					 * res was given, else NULL */
};

/* The same as vmb_image_open2 without an image: the map by the same rules (the
 * rebuild of a delta included), the base described in *bi (may be NULL). res NULL:
 * the base is not resolved (the map is still loaded). */
int vmb_image_load_map2(int fd, int mapdir_fd, const char *name,
			const struct vmb_base_resolver *res, struct vmb_blockmap *m,
			uint64_t *size, int *rebuilt, struct vmb_image_baseinfo *bi,
			struct vmb_err *err);

/* Blocks that read as data in a file of size bytes whose map is m over base (NULL:
 * none) with the given limit: what vmb_image_alloc_bytes counts, for a map loaded
 * with vmb_image_load_map2. O(extents of m and of the base below the limit). */
uint64_t vmb_image_chain_data_blocks(const struct vmb_blockmap *m, struct vmb_base *base,
				     uint64_t limit, uint64_t size);

/* The base xattr of backing file fd: 1 with id and *limit, 0 when it has none,
 * -EIO when it is not "<32 hex> <decimal>" (message names the file), -errno. */
int vmb_image_get_base_xattr(int fd, const char *name, char id[VMB_BASE_ID_LEN + 1],
			     uint64_t *limit, struct vmb_err *err);
/* Set it (fsetxattr). 0 or -errno. */
int vmb_image_set_base_xattr(int fd, const char *name, const char *id, uint64_t limit,
			     struct vmb_err *err);

#endif
