/* fuse_pieces.c - spliced replies from a remote base's cached chunks (vmbfs.h).
 *
 * Decisions:
 *  - each worker thread keeps one pipe (O_NONBLOCK both ends, sized to a whole
 *    request), made on first use and closed at the thread's exit; the pieces are
 *    spliced into it (page references, no copy) and the chunks' descriptors are
 *    released at once (the pipe holds the pages, and a cached chunk never changes);
 *  - libfuse gets the pipe as one descriptor buffer (no seek): its own pipe then
 *    holds header + data, as for a local image's spliced read;
 *  - anything left in the pipe after the reply (libfuse failed half way) closes
 *    the pipe: the next request makes a new one, never sends stale bytes;
 *  - a splice that fails or comes up short leaves nothing replied: the pipe is
 *    dropped and the caller reads the bytes (vmb_vfs_read), which reports errors.
 */
#define FUSE_USE_VERSION 314
#include "config.h"
#include "fs/vmbfs.h"
#include "vfs/vfs.h"

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

struct rpipe {
	int fd[2];
};

static pthread_key_t rpipe_key;
static pthread_once_t rpipe_once = PTHREAD_ONCE_INIT;
static int rpipe_key_ok;

static void rpipe_free(void *arg)
{
	struct rpipe *p = arg;

	close(p->fd[0]);
	close(p->fd[1]);
	free(p);
}

static void make_rpipe_key(void)
{
	rpipe_key_ok = pthread_key_create(&rpipe_key, rpipe_free) == 0;
}

/* The calling thread's pipe, holding a whole request; NULL when none can be made. */
static struct rpipe *rpipe_get(void)
{
	struct rpipe *p;

	pthread_once(&rpipe_once, make_rpipe_key);
	if (!rpipe_key_ok)
		return NULL;
	p = pthread_getspecific(rpipe_key);
	if (p)
		return p;
	p = malloc(sizeof(*p));
	if (!p)
		return NULL;
	if (pipe2(p->fd, O_CLOEXEC | O_NONBLOCK) < 0) {
		free(p);
		return NULL;
	}
	if (fcntl(p->fd[0], F_SETPIPE_SZ, (int)VMB_FS_MAX_IO) < (int)VMB_FS_MAX_IO ||
	    pthread_setspecific(rpipe_key, p) != 0) {
		rpipe_free(p);
		return NULL;
	}
	return p;
}

static void rpipe_drop(struct rpipe *p)
{
	pthread_setspecific(rpipe_key, NULL);
	rpipe_free(p);
}

int vmb_fs_reply_pieces(struct fuse_req *req, struct vmb_file *f, size_t size, off_t off)
{
	struct vmb_base_piece pc[VMB_FS_PIECES];
	struct fuse_bufvec bv = FUSE_BUFVEC_INIT(0);
	struct rpipe *p;
	size_t total = 0;
	int n, k, left = 0;

	if (off < 0 || size > VMB_FS_MAX_SPLICE)
		return 0;
	n = vmb_vfs_read_pieces(f, (uint64_t)off, size, pc, VMB_FS_PIECES);
	if (n <= 0)
		return 0;
	p = rpipe_get();
	for (k = 0; p && k < n; k++) {
		loff_t pos = (loff_t)pc[k].pos;
		size_t want = pc[k].len;

		while (want > 0) {
			ssize_t s = splice(pc[k].fd, &pos, p->fd[1], NULL, want,
					   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);

			if (s < 0 && errno == EINTR)
				continue;
			if (s <= 0)
				break;
			want -= (size_t)s;
			total += (size_t)s;
		}
		if (want > 0)
			break;
	}
	vmb_vfs_read_pieces_done(f, pc, n);
	if (!p)
		return 0;
	if (k < n) {
		rpipe_drop(p);   /* bytes of a partial reply in it */
		return 0;
	}
	bv.buf[0].size = total;
	bv.buf[0].flags = FUSE_BUF_IS_FD;
	bv.buf[0].fd = p->fd[0];
	fuse_reply_data(req, &bv, 0);
	if (ioctl(p->fd[0], FIONREAD, &left) < 0 || left > 0)
		rpipe_drop(p);
	return 1;
}
