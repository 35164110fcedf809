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

static struct fuse_session *session(void)
{
	static const struct fuse_lowlevel_ops ops;   /* no ops: libfuse answers ENOSYS */
	char *argv[] = { "test_fs_drain", NULL };
	struct fuse_args args = FUSE_ARGS_INIT(1, argv);
	struct fuse_session *se = fuse_session_new(&args, &ops, sizeof(ops), NULL);
	struct {
		struct fuse_in_header in;
		struct fuse_init_in arg;
	} init;
	struct fuse_buf buf = { .mem = &init, .size = sizeof(init) };

	fuse_opt_free_args(&args);
	if (!se)
		return NULL;
	fuse_session_exit(se);   /* replies to its descriptor (-1) fail quietly */
	memset(&init, 0, sizeof(init));
	init.in.len = sizeof(init);
	init.in.opcode = FUSE_INIT;
	init.in.unique = 2;
	init.arg.major = FUSE_KERNEL_VERSION;
	init.arg.minor = FUSE_KERNEL_MINOR_VERSION;
	init.arg.max_readahead = 1 << 20;
	fuse_session_process_buf(se, &buf);
	return se;
}

/* the kernel's INTERRUPT (its own unique has the low bit set) for request target */
static void interrupt(struct fuse_session *se, uint64_t unique, uint64_t target)
{
	struct {
		struct fuse_in_header in;
		struct fuse_interrupt_in arg;
	} m;
	struct fuse_buf buf = { .mem = &m, .size = sizeof(m) };

	memset(&m, 0, sizeof(m));
	m.in.len = sizeof(m);
	m.in.opcode = FUSE_INTERRUPT;
	m.in.unique = unique | INT_REQ_BIT;
	m.arg.unique = target;
	fuse_session_process_buf(se, &buf);
}

/* a request libfuse answers itself (no bmap op): as the kernel's request unique */
static void bmap(struct fuse_session *se, uint64_t unique)
{
	struct {
		struct fuse_in_header in;
		struct fuse_bmap_in arg;
	} m;
	struct fuse_buf buf = { .mem = &m, .size = sizeof(m) };

	memset(&m, 0, sizeof(m));
	m.in.len = sizeof(m);
	m.in.opcode = FUSE_BMAP;
	m.in.unique = unique;
	m.in.nodeid = FUSE_ROOT_ID;
	fuse_session_process_buf(se, &buf);
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
