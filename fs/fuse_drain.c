/* fuse_drain.c - free the INTERRUPTs libfuse 3.14 still holds when a session ends
 * (vmbfs.h).
 *
 * An INTERRUPT that arrives after its request was answered (a process killed while
 * the kernel waits for its FLUSH, say) is queued by libfuse on the session's
 * interrupt list; the next request of any kind takes it off and answers it EAGAIN.
 * When none comes (the last close after a lazy unmount, a signal), the queued
 * request is never freed: fuse_session_destroy() does not walk that list (libfuse
 * 3.14, and its master of August 2026), and LeakSanitizer reports it.
 *
 * Decisions:
 *  - the only public way to that list is a request: after the loop has ended and the
 *    session is unmounted, BMAP requests (no op of ours: libfuse itself answers
 *    ENOSYS) are passed to fuse_session_process_buf, one per queued INTERRUPT;
 *  - their answers go to fuse_io.c's I/O in its drain mode, which counts the
 *    answers that are not the BMAP's: when a BMAP takes none off, the list is
 *    empty;
 *  - the BMAP's unique is odd: the kernel's are even, and an interrupted request's
 *    unique never equals it (a match would end the interrupt without an answer and
 *    leave the count at 0, stopping early: the rest stays queued, as before);
 *  - at most VMB_FS_DRAIN_MAX rounds; with -d, each BMAP shows in the debug log.
 *  - a session without that I/O (own_io 0: its install failed at mount, or a
 *    test's session) gets it on a /dev/null of ours, closed by
 *    fuse_session_destroy() as it would close /dev/fuse.
 */
#define FUSE_USE_VERSION 314
#include "config.h"
#include "fs/vmbfs.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <time.h>
#include <fuse_lowlevel.h>
#include <linux/fuse.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#define VMB_FS_DRAIN_MAX 4096
#define DRAIN_UNIQUE 1   /* odd: never a kernel request's */

unsigned vmb_fs_drain_interrupts(struct fuse_session *se, int own_io)
{
	struct {
		struct fuse_in_header in;
		struct fuse_bmap_in arg;
	} msg;
	struct fuse_buf buf;
	unsigned total = 0, got;
	int fd, n;

	if (fuse_session_fd(se) != -1)   /* still mounted: its descriptor is /dev/fuse */
		return 0;
	if (!own_io) {
		/* fuse_io.c's I/O on a /dev/null of ours (a second
		 * fuse_session_custom_io on a session that has it would leak the first) */
		fd = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (fd < 0)
			return 0;
		if (vmb_fs_io_install(se, fd) < 0) {
			close(fd);
			return 0;
		}
	}
	vmb_fs_io_drain(DRAIN_UNIQUE, 1);
	memset(&msg, 0, sizeof(msg));   /* libfuse only reads it */
	msg.in.len = sizeof(msg);
	msg.in.opcode = FUSE_BMAP;
	msg.in.unique = DRAIN_UNIQUE;
	msg.in.nodeid = FUSE_ROOT_ID;
	memset(&buf, 0, sizeof(buf));
	buf.mem = &msg;
	buf.size = sizeof(msg);
	for (n = 0; n < VMB_FS_DRAIN_MAX; n++) {
		fuse_session_process_buf(se, &buf);
		got = vmb_fs_io_drained();
		total += got;
		if (!got)
			break;
	}
	vmb_fs_io_drain(0, 0);
	return total;
}

/* fs/ includes no header of src/ but vfs/'s (tests/layering.sh): its own clock */
static int64_t now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

unsigned vmb_fs_serve_grace(struct fuse_session *se, int quiet_ms, int max_ms)
{
	struct fuse_buf buf;
	int64_t end = now_ms() + max_ms;
	unsigned served = 0;
	int fd = fuse_session_fd(se);

	if (fd < 0)
		return 0;
	memset(&buf, 0, sizeof(buf));
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int64_t left = end - now_ms();
		int r;

		if (left <= 0)
			break;
		r = poll(&p, 1, (int)(left < quiet_ms ? left : quiet_ms));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0 || !(p.revents & POLLIN))
			break;   /* quiet (or the connection is gone) */
		r = fuse_session_receive_buf(se, &buf);
		if (r == -EINTR || r == -EAGAIN)
			continue;
		if (r <= 0)
			break;
		fuse_session_process_buf(se, &buf);
		served++;
	}
	free(buf.mem);
	return served;
}
