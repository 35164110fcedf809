/* fuse_io.c - the session's own device I/O (vmbfs.h, vmb_fs_io_install).
 *
 * Why: libfuse 3.14 takes FUSE_CAP_PARALLEL_DIROPS into conn->want by default
 * (and op_init asks for it) but never puts FUSE_PARALLEL_DIROPS into its INIT
 * reply (do_init builds the reply flags from want, and that one is missing from
 * the list; later versions have it). The kernel then serializes every lookup and
 * readdir of a directory on a mutex of its own: one lookup that waits (a URL
 * mount's bundle pulled at its first lookup, in hard mode for as long as the
 * network is down) holds up every other lookup in that directory, and ls -l of
 * the mount's root with it. The daemon answers lookups of one directory at once
 * (the kernel still never sends two lookups of one name, nor a lookup beside a
 * change of the directory: those take the directory's lock exclusively).
 *
 * Decisions:
 *  - the only public way to the reply is the session's I/O: after
 *    fuse_session_mount, fuse_session_custom_io installs functions that do what
 *    libfuse does without them (read, writev, splice both ways: the splice
 *    capabilities stay as they were), except that the INIT reply (the first
 *    reply written, while op_init has set fs->patch_init) gets
 *    FUSE_PARALLEL_DIROPS when the kernel offered it;
 *  - the same functions serve fuse_drain.c once the session has ended (drain
 *    mode: nothing is read, answers are counted, not written): libfuse 3.14
 *    allocates a new io on each fuse_session_custom_io and frees only the last.
 */
#define FUSE_USE_VERSION 314
#include "config.h"
#include "fs/vmbfs.h"

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <linux/fuse.h>
#include <stddef.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

static int drain_mode;             /* set once the loop has ended (one thread then) */
static __thread unsigned drained;  /* answers other than the drain's, in drain mode */
static uint64_t drain_unique;

static ssize_t io_writev(int fd, struct iovec *iov, int count, void *userdata)
{
	struct vmb_fs *fs = userdata;
	const struct fuse_out_header *out = count > 0 ? iov[0].iov_base : NULL;

	if (drain_mode) {
		size_t len = 0;

		if (out && iov[0].iov_len >= sizeof(*out) && out->unique != drain_unique)
			drained++;
		for (int i = 0; i < count; i++)
			len += iov[i].iov_len;
		return (ssize_t)len;
	}
	if (fs && __atomic_load_n(&fs->patch_init, __ATOMIC_ACQUIRE)) {
		/* the INIT reply: its header, then struct fuse_init_out, whose flags
		 * come at the same offset in every protocol minor */
		if (count >= 2 && out && iov[0].iov_len >= sizeof(*out) && !out->error &&
		    out->unique && iov[1].iov_len >= offsetof(struct fuse_init_out, flags) +
		    sizeof(uint32_t))
			((struct fuse_init_out *)iov[1].iov_base)->flags |= FUSE_PARALLEL_DIROPS;
		__atomic_store_n(&fs->patch_init, 0, __ATOMIC_RELEASE);
	}
	return writev(fd, iov, count);
}

static ssize_t io_read(int fd, void *buf, size_t len, void *userdata)
{
	(void)userdata;
	if (drain_mode) {
		errno = ENODEV;
		return -1;
	}
	return read(fd, buf, len);
}

static ssize_t io_splice(int fdin, off_t *offin, int fdout, off_t *offout, size_t len,
			 unsigned int flags, void *userdata)
{
	(void)userdata;
	if (drain_mode) {
		errno = ENODEV;
		return -1;
	}
	return splice(fdin, offin, fdout, offout, len, flags);
}

static const struct fuse_custom_io io = {
	.writev = io_writev,
	.read = io_read,
	.splice_receive = io_splice,
	.splice_send = io_splice,
};

int vmb_fs_io_install(struct fuse_session *se, int fd)
{
	return fd < 0 ? -EBADF : fuse_session_custom_io(se, &io, fd);
}

void vmb_fs_io_drain(uint64_t unique, int on)
{
	drain_unique = unique;
	drain_mode = on;
	drained = 0;
}

unsigned vmb_fs_io_drained(void)
{
	unsigned n = drained;

	drained = 0;
	return n;
}
