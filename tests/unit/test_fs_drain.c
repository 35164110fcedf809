/* test_fs_drain.c - vmb_fs_drain_interrupts (fs/fuse_drain.c) frees the INTERRUPT
 * requests libfuse still queues when a session ends, without a mount: requests are
 * handed to a session made with fuse_session_new (its replies go nowhere: it has no
 * descriptor). Under the sanitizer build, LeakSanitizer also finds any left. */
#define FUSE_USE_VERSION 314
#include "config.h"
#include "harness.h"
#include "fs/vmbfs.h"

#include <fuse_lowlevel.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <stddef.h>
#include <unistd.h>

#define INT_REQ_BIT 1ULL   /* the kernel's FUSE_INT_REQ_BIT (fs/fuse/dev.c) */

/* Hand the session one request: header (opcode, unique, nodeid) + arg of len bytes. */
static void request(struct fuse_session *se, uint32_t opcode, uint64_t unique,
		    uint64_t nodeid, const void *arg, size_t len)
{
	union {
		struct fuse_in_header in;
		unsigned char b[sizeof(struct fuse_in_header) + 64];
	} m;
	struct fuse_buf buf = { .mem = &m, .size = sizeof(m.in) + len };

	memset(&m, 0, sizeof(m));
	m.in.len = (uint32_t)buf.size;
	m.in.opcode = opcode;
	m.in.unique = unique;
	m.in.nodeid = nodeid;
	memcpy(m.b + sizeof(m.in), arg, len);
	fuse_session_process_buf(se, &buf);
}

/* A session (no mount) past its INIT. With fs: its userdata, and fuse_io.c's I/O
 * on fd (the INIT reply is written there; fs->patch_init as the caller set it);
 * without: replies to its descriptor (-1) fail quietly. */
static struct fuse_session *session_io(struct vmb_fs *fs, int fd, uint32_t kflags)
{
	static const struct fuse_lowlevel_ops ops;   /* no ops: libfuse answers ENOSYS */
	char *argv[] = { "test_fs_drain", NULL };
	struct fuse_args args = FUSE_ARGS_INIT(1, argv);
	struct fuse_session *se = fuse_session_new(&args, &ops, sizeof(ops), fs);
	struct fuse_init_in init = {
		.major = FUSE_KERNEL_VERSION,
		.minor = FUSE_KERNEL_MINOR_VERSION,
		.max_readahead = 1 << 20,
		.flags = kflags,
	};

	fuse_opt_free_args(&args);
	if (!se)
		return NULL;
	if (fs && vmb_fs_io_install(se, fd) < 0) {
		fuse_session_destroy(se);
		return NULL;
	}
	fuse_session_exit(se);
	request(se, FUSE_INIT, 2, 0, &init, sizeof(init));
	return se;
}

static struct fuse_session *session(void)
{
	return session_io(NULL, -1, 0);
}

/* the kernel's INTERRUPT (its own unique has the low bit set) for request target */
static void interrupt(struct fuse_session *se, uint64_t unique, uint64_t target)
{
	struct fuse_interrupt_in arg = { .unique = target };

	request(se, FUSE_INTERRUPT, unique | INT_REQ_BIT, 0, &arg, sizeof(arg));
}

/* a request libfuse answers itself (no bmap op): as the kernel's request unique */
static void bmap(struct fuse_session *se, uint64_t unique)
{
	struct fuse_bmap_in arg = { 0 };

	request(se, FUSE_BMAP, unique, FUSE_ROOT_ID, &arg, sizeof(arg));
}

/* INTERRUPTs of requests already answered: nothing else takes them off */
static void test_stale(void)
{
	struct fuse_session *se = session();

	REQUIRE(se != NULL);
	bmap(se, 4);
	bmap(se, 6);
	interrupt(se, 4, 4);
	interrupt(se, 6, 6);
	interrupt(se, 8, 8);   /* one for a request that never came */
	CHECK_EQ(vmb_fs_drain_interrupts(se, 0), 3);
	/* the session has a descriptor now: a second call leaves it alone */
	CHECK_EQ(vmb_fs_drain_interrupts(se, 0), 0);
	fuse_session_destroy(se);
}

/* an INTERRUPT that arrived before its request is ended by that request; and a
 * queued one is answered (EAGAIN) by the next request of any kind */
static void test_none_left(void)
{
	struct fuse_session *se = session();

	REQUIRE(se != NULL);
	interrupt(se, 10, 10);
	bmap(se, 10);
	interrupt(se, 12, 12);
	bmap(se, 14);
	CHECK_EQ(vmb_fs_drain_interrupts(se, 0), 0);
	fuse_session_destroy(se);
}

/* Read the INIT reply from the pipe: its flags, or 0xffffffff. */
static uint32_t init_flags(int fd)
{
	struct {
		struct fuse_out_header out;
		struct fuse_init_out arg;
	} m;
	ssize_t n = read(fd, &m, sizeof(m));

	if (n < (ssize_t)(sizeof(m.out) + offsetof(struct fuse_init_out, flags) + 4) ||
	    m.out.error || m.out.unique != 2)
		return 0xffffffffu;
	return m.arg.flags;
}

/* fuse_io.c: the INIT reply gets FUSE_PARALLEL_DIROPS when op_init asked for it
 * (libfuse 3.14 leaves it out) and the kernel offered it; nothing else changes */
static void test_io_init(void)
{
	struct vmb_fs fs;
	struct fuse_session *se;
	uint32_t f;
	int p[2];

	REQUIRE(pipe2(p, O_NONBLOCK | O_CLOEXEC) == 0);
	memset(&fs, 0, sizeof(fs));
	fs.patch_init = 1;   /* as op_init sets it */
	se = session_io(&fs, fcntl(p[1], F_DUPFD_CLOEXEC, 0), FUSE_PARALLEL_DIROPS | FUSE_ASYNC_READ);
	REQUIRE(se != NULL);
	f = init_flags(p[0]);
	CHECK(f != 0xffffffffu);
	CHECK(f & FUSE_PARALLEL_DIROPS);
	CHECK(f & FUSE_ASYNC_READ);
	CHECK_EQ(fs.patch_init, 0);   /* once */
	fuse_session_destroy(se);   /* closes its descriptor: a dup of p[1] */

	/* without the ask, libfuse's reply as it was */
	memset(&fs, 0, sizeof(fs));
	se = session_io(&fs, fcntl(p[1], F_DUPFD_CLOEXEC, 0), FUSE_PARALLEL_DIROPS);
	REQUIRE(se != NULL);
	f = init_flags(p[0]);
	CHECK(f != 0xffffffffu);
	CHECK(!(f & FUSE_PARALLEL_DIROPS));
	fuse_session_destroy(se);
	close(p[0]);
	close(p[1]);
}

int main(void)
{
	RUN(test_stale);
	RUN(test_none_left);
	RUN(test_io_init);
	return harness_exit("test_fs_drain");
}
