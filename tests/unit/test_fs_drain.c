/* test_fs_drain.c - vmb_fs_drain_interrupts (fs/fuse_drain.c) frees the INTERRUPT
 * requests libfuse still queues when a session ends, without a mount: requests are
 * handed to a session made with fuse_session_new (its replies go nowhere: it has no
 * descriptor). Under the sanitizer build, LeakSanitizer also finds any left. */
#define FUSE_USE_VERSION 314
#include "config.h"
#include "harness.h"
#include "fs/vmbfs.h"

#include <fuse_lowlevel.h>
#include <linux/fuse.h>

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

static struct fuse_session *session(void)
{
	static const struct fuse_lowlevel_ops ops;   /* no ops: libfuse answers ENOSYS */
	char *argv[] = { "test_fs_drain", NULL };
	struct fuse_args args = FUSE_ARGS_INIT(1, argv);
	struct fuse_session *se = fuse_session_new(&args, &ops, sizeof(ops), NULL);
	struct fuse_init_in init = {
		.major = FUSE_KERNEL_VERSION,
		.minor = FUSE_KERNEL_MINOR_VERSION,
		.max_readahead = 1 << 20,
	};

	fuse_opt_free_args(&args);
	if (!se)
		return NULL;
	fuse_session_exit(se);   /* replies to its descriptor (-1) fail quietly */
	request(se, FUSE_INIT, 2, 0, &init, sizeof(init));
	return se;
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
	CHECK_EQ(vmb_fs_drain_interrupts(se), 3);
	/* the session has a descriptor now: a second call leaves it alone */
	CHECK_EQ(vmb_fs_drain_interrupts(se), 0);
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
	CHECK_EQ(vmb_fs_drain_interrupts(se), 0);
	fuse_session_destroy(se);
}

int main(void)
{
	RUN(test_stale);
	RUN(test_none_left);
	return harness_exit("test_fs_drain");
}
