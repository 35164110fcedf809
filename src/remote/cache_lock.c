/* cache_lock.c - the cache's lock files (per digest and for the evicter), hashing a
 * file, sweeping stale temporaries, the kill hook for tests (see cache.h).
 *
 * The per-digest locks are one-byte OFD locks in one file, lock/objects, at an
 * offset taken from the digest (vmb_cache_lock_byte): no file is made or removed per
 * object (creating and removing a lock file per chunk made ext4's inode allocation
 * the most expensive part of a fill). The kernel releases a killed holder's locks.
 */
#include "config.h"
#include "remote/cache_int.h"
#include "base/cancel.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void vmb_cache_step(const char *point)
{
	const char *v = getenv("VMB_CACHE_KILL_AT");

	if (v && !strcmp(v, point))
		raise(SIGKILL);
}

static int lock_fd(int fd, off_t start, int wait)
{
	struct flock fl;

	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	fl.l_start = start;
	fl.l_len = start ? 1 : 0;
	while (fcntl(fd, wait ? F_OFD_SETLKW : F_OFD_SETLK, &fl) < 0) {
		if (errno == EINTR)
			continue;
		return errno == EACCES ? -EAGAIN : -errno;
	}
	return 0;
}

off_t vmb_cache_lock_byte(const uint8_t digest[32])
{
	uint64_t v = 0;

	/* the first 62 bits of the digest, plus 1: byte 0 is never an object's. Two
	 * digests share a byte with odds of 2^-62: they would only wait for each other. */
	for (int i = 0; i < 8; i++)
		v = v << 8 | digest[i];
	return (off_t)((v >> 2) | 1);
}

/* The mode of a lock file (or lock/) open as fd: want when ours (the umask may have
 * narrowed it, and the cache's other users must open it too; an older version made
 * it 0644, which let anyone take a read lock); when another's, root takes the
 * others' permissions off. 1 when others can still reach it. */
static int lock_fix(int fd, mode_t want)
{
	struct stat st;
	mode_t m;

	if (fstat(fd, &st) < 0)
		return 0;
	m = st.st_mode & 07777;
	if (st.st_uid == geteuid() && m != want && fchmod(fd, want) == 0)
		return 0;
	if (geteuid() == 0 && (m & 0007) && fchmod(fd, m & ~(mode_t)0007) == 0)
		return 0;
	return (m & 0007) != 0;
}

int vmb_cache_lock_open(struct vmb_cache *c, struct vmb_err *err)
{
	int fd = openat(c->lockfd, "objects", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
			c->lmode);

	if (fd < 0)
		return vmb_err_sys(err, errno, "cache '%s': cannot open lock/objects", c->path);
	lock_fix(fd, c->lmode);
	return fd;
}

void vmb_cache_lock_modes(struct vmb_cache *c)
{
	int open_d = lock_fix(c->lockfd, c->ldmode), open_f = 0;
	struct stat st;
	int fd = openat(c->lockfd, "evict", O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);

	if (fd >= 0) {
		if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
			open_f = lock_fix(fd, c->lmode);
		close(fd);
	}
	if (c->fill_lfd >= 0 && fstat(c->fill_lfd, &st) == 0 && (st.st_mode & 0007))
		open_f = 1;
	if (open_d && open_f)
		vmb_log_msg(c->opts.log, "cache '%s': lock/ and its files can be opened by "
			    "everyone: any user could stop this cache's fills and eviction with "
			    "a read lock; its owner's next use of the cache fixes that (or chmod "
			    "-R o-rwx it)", c->path);
}

static void lock_error(struct vmb_cache *c, const uint8_t digest[32], int r,
		       struct vmb_err *err)
{
	char hex[VMB_SHA256_HEX];

	vmb_sha256_hex(digest, hex);
	vmb_err_sys(err, -r, "cache '%s': cannot lock %s in lock/objects", c->path, hex);
}

int vmb_cache_lock(struct vmb_cache *c, const uint8_t digest[32], int wait, int *lfd,
		   struct vmb_err *err)
{
	int fd, r;

	*lfd = -1;
	/* a descriptor (an open file description) of its own per lock: OFD locks of one
	 * description never conflict, and this lock must conflict with our fills */
	fd = vmb_cache_lock_open(c, err);
	if (fd < 0)
		return fd;
	r = lock_fd(fd, vmb_cache_lock_byte(digest), wait);
	if (r < 0) {
		close(fd);
		if (r != -EAGAIN)
			lock_error(c, digest, r, err);
		return r;
	}
	*lfd = fd;
	return 0;
}

void vmb_cache_unlock(int lfd)
{
	if (lfd >= 0)
		close(lfd);   /* the last close of the description releases its lock */
}

/* The fill lock, polled: for a request that may be cancelled (base/cancel.h;
 * another process's fill may wait for the network for ever in hard mode, and a
 * blocking F_OFD_SETLKW ends only on a signal to this thread), and for a wait of at
 * most c->opts.fill_wait_ms (soft: the holder may be stopped, SIGSTOP or a frozen
 * container, and would hold every reader of the object for as long). Try, sleep
 * (1 ms, growing to 10), try again; look at the request every VMB_CANCEL_POLL_MS.
 * 0, -EINTR, -ETIMEDOUT or -errno. */
static int fill_lock_poll(struct vmb_cache *c, off_t byte)
{
	struct timespec nap = { 0, 1000000L }, t0, now, start;
	int poll_cancel = vmb_cancel_current() != NULL, r;
	long waited;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	start = t0;
	while ((r = lock_fd(c->fill_lfd, byte, 0)) == -EAGAIN) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		waited = (now.tv_sec - start.tv_sec) * 1000 +
			 (now.tv_nsec - start.tv_nsec) / 1000000;
		if (c->opts.fill_wait_ms && waited >= (long)c->opts.fill_wait_ms)
			return -ETIMEDOUT;
		if (poll_cancel &&
		    (now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000 >=
		    VMB_CANCEL_POLL_MS) {
			if (vmb_cancel_requested())
				return -EINTR;
			t0 = now;
		}
		nanosleep(&nap, NULL);
		nap.tv_nsec = nap.tv_nsec * 2 < 10000000L ? nap.tv_nsec * 2 : 10000000L;
	}
	return r;
}

int vmb_cache_object_lock(struct vmb_cache *c, const uint8_t digest[32], int *lfd,
			  struct vmb_err *err)
{
	struct timespec nap = { 0, 1000000L }, t0, now;
	int r;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while ((r = vmb_cache_lock(c, digest, 0, lfd, err)) == -EAGAIN) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		if ((now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000 >=
		    VMB_CANCEL_POLL_MS) {
			if (vmb_cancel_requested())
				return vmb_err_set(err, EINTR, "interrupted");
			t0 = now;
		}
		nanosleep(&nap, NULL);
		nap.tv_nsec = nap.tv_nsec * 2 < 10000000L ? nap.tv_nsec * 2 : 10000000L;
	}
	return r;
}

void vmb_cache_object_unlock(int lfd)
{
	vmb_cache_unlock(lfd);
}

/* Byte 0 of lock/objects (no object's byte: theirs are odd) says that a thread waits
 * for a fill lock: the waiter holds a shared lock on it through a description of its
 * own (waiting_begin); the flusher of another process looks for it
 * (vmb_cache_waited_on) and then does not wait for its fills to pause
 * (cache_flush.c). */
static void byte0(struct flock *fl, short type)
{
	memset(fl, 0, sizeof(*fl));
	fl->l_type = type;
	fl->l_whence = SEEK_SET;
	fl->l_start = 0;
	fl->l_len = 1;
}

/* The descriptor holding the waiter's lock, to close when done, or -1 (best effort:
 * the flusher then stops waiting at its limits). */
static int waiting_begin(struct vmb_cache *c)
{
	struct flock fl;
	int fd = vmb_cache_lock_open(c, NULL);

	if (fd < 0)
		return -1;
	byte0(&fl, F_RDLCK);
	if (fcntl(fd, F_OFD_SETLK, &fl) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int vmb_cache_waited_on(struct vmb_cache *c)
{
	struct flock fl;

	if (c->fill_lfd < 0)
		return 1;
	byte0(&fl, F_WRLCK);
	if (fcntl(c->fill_lfd, F_OFD_GETLK, &fl) < 0)
		return 1;
	return fl.l_type != F_UNLCK;
}

int vmb_cache_fill_lock(struct vmb_cache *c, const uint8_t digest[32], struct vmb_err *err)
{
	off_t byte = vmb_cache_lock_byte(digest);
	int r = lock_fd(c->fill_lfd, byte, 0), wfd;

	if (r == -EAGAIN) {
		/* another process fills it, or its flusher has it pending */
		wfd = waiting_begin(c);
		r = vmb_cancel_current() || c->opts.fill_wait_ms ? fill_lock_poll(c, byte)
								 : lock_fd(c->fill_lfd, byte, 1);
		if (wfd >= 0)
			close(wfd);
	}

	if (r == -EINTR)
		return vmb_err_set(err, EINTR, "interrupted while waiting for another "
				   "process's fill of a chunk");
	if (r == -ETIMEDOUT)
		return r;   /* the caller fills without it */
	if (r < 0)
		lock_error(c, digest, r, err);
	return r;
}

void vmb_cache_fill_unlock(struct vmb_cache *c, const uint8_t digest[32])
{
	struct flock fl;

	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_UNLCK;
	fl.l_whence = SEEK_SET;
	fl.l_start = vmb_cache_lock_byte(digest);
	fl.l_len = 1;
	while (fcntl(c->fill_lfd, F_OFD_SETLK, &fl) < 0 && errno == EINTR)
		;
}

int vmb_cache_lock_evict(struct vmb_cache *c, int wait, int *lfd, struct vmb_err *err)
{
	int fd = openat(c->lockfd, "evict", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
			c->lmode), r;

	*lfd = -1;
	if (fd < 0)
		return vmb_err_sys(err, errno, "cache '%s': cannot open lock/evict", c->path);
	lock_fix(fd, c->lmode);
	r = lock_fd(fd, 0, wait);
	if (r < 0) {
		close(fd);
		if (r == -EAGAIN)
			return r;
		return vmb_err_sys(err, -r, "cache '%s': cannot lock lock/evict", c->path);
	}
	*lfd = fd;
	return 0;
}

int vmb_cache_hash_fd(int fd, uint8_t out[32], uint64_t *size, struct vmb_err *err)
{
	enum { BUF = 1 << 20 };
	struct vmb_sha256 *h = NULL;
	uint8_t *buf = malloc(BUF);
	uint64_t off = 0;
	int r;

	if (!buf)
		return vmb_err_set(err, ENOMEM, "out of memory");
	r = vmb_sha256_new(&h, err);
	while (r == 0) {
		ssize_t n = pread(fd, buf, BUF, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = vmb_err_sys(err, errno, "read error");
			break;
		}
		if (n == 0)
			break;
		r = vmb_sha256_update(h, buf, (size_t)n, err);
		off += (uint64_t)n;
	}
	if (r == 0)
		r = vmb_sha256_final(h, out, err);
	vmb_sha256_free(h);
	free(buf);
	if (size)
		*size = off;
	return r;
}

/* A temporary of a fill is named <64 hex>.<pid>.<rand> and exists only while its
 * filler holds the digest's lock: it is stale when that lock is free. Others (pins,
 * url slots) are renamed within moments: stale after VMB_CACHE_TMP_STALE_SEC. */
int vmb_cache_sweep_tmp(struct vmb_cache *c, int repair, FILE *report, unsigned *n,
			unsigned *left, struct vmb_err *err)
{
	int dfd = openat(c->tmpfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *e;
	DIR *d;

	if (dfd < 0 || !(d = fdopendir(dfd))) {
		if (dfd >= 0)
			close(dfd);
		return vmb_err_sys(err, errno, "cache '%s': cannot list tmp/", c->path);
	}
	while ((e = readdir(d))) {
		uint8_t dg[32];
		struct stat st;
		int lfd, stale = 0;
		const char *why = "";

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (fstatat(c->tmpfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			if (report)
				fprintf(report, "cache '%s': tmp/%s: a stray directory (left alone)\n",
					c->path, e->d_name);
			if (n)
				(*n)++;
			if (left)
				(*left)++;
			continue;
		}
		if (strlen(e->d_name) > 65 && e->d_name[64] == '.' &&
		    vmb_cache_unhex(e->d_name, dg) == 0) {
			if (vmb_cache_lock(c, dg, 0, &lfd, NULL) < 0)
				continue;   /* its fill is running (or we cannot tell) */
			if (fstatat(c->tmpfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
				stale = 1;
				why = "a temporary of an interrupted fill";
				if ((!repair || unlinkat(c->tmpfd, e->d_name, 0) < 0) && left)
					(*left)++;
			}
			vmb_cache_unlock(lfd);
		} else if (st.st_mtime < time(NULL) - VMB_CACHE_TMP_STALE_SEC) {
			stale = 1;
			why = "an old temporary";
			if ((!repair || unlinkat(c->tmpfd, e->d_name, 0) < 0) && left)
				(*left)++;
		}
		if (stale) {
			if (report)
				fprintf(report, "cache '%s': tmp/%s: %s%s\n", c->path, e->d_name,
					why, repair ? " (removed)" : "");
			if (n)
				(*n)++;
		}
	}
	closedir(d);
	return 0;
}
