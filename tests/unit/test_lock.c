/* test_lock.c - lock owners of one file (src/lock/lock.c), without a mount: the kernel's
 * owner ids of OFD and flock locks are addresses of open files and come back as soon
 * as a file is freed, before its RELEASE reaches the daemon; a close drops every
 * POSIX lock of its process; a conflict with a file that was just closed waits for
 * that file's RELEASE, at most VMB_LOCK_SETTLE_MS. */
#include "config.h"
#include "lock/lock.h"
#include "harness.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char tmpdir[1024], file[1100];
static struct vmb_waitgraph wg;
static int metafd = -1;

static double mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct flock range(short type, off_t start, off_t len)
{
	struct flock fl;

	memset(&fl, 0, sizeof(fl));
	fl.l_type = type;
	fl.l_whence = SEEK_SET;
	fl.l_start = start;
	fl.l_len = len;
	return fl;
}

/* What owner `owner` through handle via sees when it tests a write lock on
 * [start, start+len): F_UNLCK when free. */
static short probe(struct vmb_lockset *ls, const void *via, uint64_t owner, off_t start,
		   off_t len)
{
	struct flock fl = range(F_WRLCK, start, len);
	struct vmb_err e = {0};

	if (vmb_lock_get(ls, file, via, owner, &fl, &e) < 0)
		return -1;
	return fl.l_type;
}

static int setlk(struct vmb_lockset *ls, const void *via, uint64_t owner, short type,
		 off_t start, off_t len)
{
	struct flock fl = range(type, start, len);
	struct vmb_err e = {0};

	return vmb_lock_set(ls, file, via, owner, getpid(), 1, &fl, NULL, &e);
}

static void lockset_open(struct vmb_lockset *ls)
{
	struct stat st;

	if (stat(file, &st) < 0)
		st.st_ino = 1;
	vmb_lockset_init(ls, (uint64_t)st.st_ino, metafd, &wg);
}

struct late {
	struct vmb_lockset *ls;
	const void *via;
	unsigned ms;
};

static void *late_release(void *arg)
{
	struct late *l = arg;

	usleep(l->ms * 1000u);
	vmb_lock_release(l->ls, l->via);
	return NULL;
}

/* A closes (FLUSH), its RELEASE comes 150 ms later; B, a new open file with A's
 * owner id, locks at once. B waits for A's RELEASE rather than borrowing A's entry
 * and its lock, and that RELEASE leaves B's lock in place. */
static void test_recycled_owner_id(void)
{
	struct vmb_lockset ls;
	char ha, hb, hc, hd;
	struct late l;
	pthread_t t;
	double t0, dt;
	int r;

	lockset_open(&ls);
	CHECK_RC(setlk(&ls, &ha, 7, F_WRLCK, 0, 10), 0);
	vmb_lock_flush(&ls, &ha, 1000);   /* close(2) by A's process */
	l.ls = &ls;
	l.via = &ha;
	l.ms = 150;
	t0 = mono();   /* before the thread: its 150 ms cannot start before t0 */
	REQUIRE(pthread_create(&t, NULL, late_release, &l) == 0);
	r = setlk(&ls, &hb, 7, F_WRLCK, 0, 10);
	dt = mono() - t0;
	pthread_join(t, NULL);
	CHECK_RC(r, 0);
	if (!CHECK(dt >= 0.1))
		fprintf(stderr, "    B got the lock after %.3f s, before A's RELEASE\n", dt);
	CHECK(dt < 0.9);
	/* A's late RELEASE came and went: B still holds its lock. */
	CHECK_EQ(probe(&ls, &hc, 8, 0, 10), F_WRLCK);
	CHECK_RC(setlk(&ls, &hd, 9, F_WRLCK, 5, 1), -EAGAIN);
	/* B unlocks through its own handle, by the recycled id. */
	CHECK_RC(setlk(&ls, &hb, 7, F_UNLCK, 0, 10), 0);
	CHECK_EQ(probe(&ls, &hc, 8, 0, 10), F_UNLCK);
	vmb_lock_release(&ls, &hb);
	vmb_lockset_destroy(&ls);
}

/* The same with flock: B's flock through a recycled id survives A's late RELEASE. */
static void test_recycled_owner_id_flock(void)
{
	struct vmb_lockset ls;
	struct vmb_err e = {0};
	char ha, hb, hc;
	struct late l = { &ls, &ha, 100 };
	pthread_t t;

	lockset_open(&ls);
	CHECK_RC(vmb_lock_flock(&ls, file, &ha, 7, getpid(), 1, LOCK_EX, NULL, &e), 0);
	vmb_lock_flush(&ls, &ha, 1000);
	REQUIRE(pthread_create(&t, NULL, late_release, &l) == 0);
	CHECK_RC(vmb_lock_flock(&ls, file, &hb, 7, getpid(), 1, LOCK_EX, NULL, &e), 0);
	pthread_join(t, NULL);
	CHECK_RC(vmb_lock_flock(&ls, file, &hc, 8, getpid(), 1, LOCK_EX, NULL, &e), -EWOULDBLOCK);
	vmb_lock_release(&ls, &hb);
	CHECK_RC(vmb_lock_flock(&ls, file, &hc, 8, getpid(), 1, LOCK_EX, NULL, &e), 0);
	vmb_lock_release(&ls, &hc);
	vmb_lockset_destroy(&ls);
}

/* A process (POSIX owner 5) locks through one descriptor, closes it, locks again
 * through another and closes that: each close drops all of its POSIX locks. */
static void test_posix_close_drops_all(void)
{
	struct vmb_lockset ls;
	char h1, h2, hc;

	lockset_open(&ls);
	CHECK_RC(setlk(&ls, &h1, 5, F_WRLCK, 0, 5), 0);
	CHECK_RC(setlk(&ls, &h2, 5, F_WRLCK, 20, 5), 0);
	vmb_lock_flush(&ls, &h1, 5);
	CHECK_EQ(probe(&ls, &hc, 9, 0, 100), F_UNLCK);
	CHECK_RC(setlk(&ls, &h2, 5, F_WRLCK, 40, 5), 0);
	CHECK_EQ(probe(&ls, &hc, 9, 40, 1), F_WRLCK);
	vmb_lock_flush(&ls, &h2, 5);
	CHECK_EQ(probe(&ls, &hc, 9, 0, 100), F_UNLCK);
	vmb_lock_release(&ls, &h1);
	vmb_lock_release(&ls, &h2);
	vmb_lockset_destroy(&ls);
}

/* A conflict with a closed file whose RELEASE never comes (a dup'ed descriptor
 * keeps it open) fails after the settle time, not at once and not never. */
static void test_settle_bound(void)
{
	struct vmb_lockset ls;
	char ha, hb, hc;
	double t0, dt;

	lockset_open(&ls);
	CHECK_RC(setlk(&ls, &ha, 7, F_WRLCK, 0, 10), 0);
	vmb_lock_flush(&ls, &ha, 1000);
	t0 = mono();
	CHECK_RC(setlk(&ls, &hb, 8, F_WRLCK, 0, 10), -EAGAIN);
	dt = mono() - t0;
	if (!CHECK(dt >= VMB_LOCK_SETTLE_MS / 1000.0 * 0.9 && dt < 5))
		fprintf(stderr, "    EAGAIN after %.3f s\n", dt);
	/* The next conflict does not wait again for the same file, and the file's
	 * owner id, recycled by a new open file, is still not its. */
	t0 = mono();
	CHECK_RC(setlk(&ls, &hb, 8, F_WRLCK, 0, 10), -EAGAIN);
	CHECK_RC(setlk(&ls, &hc, 7, F_WRLCK, 0, 10), -EAGAIN);
	CHECK(mono() - t0 < 0.5);
	CHECK_EQ(probe(&ls, &hc, 7, 0, 10), F_WRLCK);
	vmb_lock_release(&ls, &ha);
	CHECK_RC(setlk(&ls, &hb, 8, F_WRLCK, 0, 10), 0);
	vmb_lock_release(&ls, &hb);
	vmb_lock_release(&ls, &hc);
	vmb_lockset_destroy(&ls);
}

static int holds;   /* the in-use callback's count */

static void on_hold(void *arg, struct vmb_lockset *ls, const struct vmb_holder *h, int delta)
{
	(void)arg;
	(void)ls;
	(void)h;
	holds += delta;
}

/* The inode of this file's registry entry (0 when there is none). */
static ino_t entry_ino(uint64_t ino)
{
	char name[96];
	struct stat st;

	snprintf(name, sizeof(name), "holders/%016llx.%ld", (unsigned long long)ino,
		 (long)getpid());
	return fstatat(metafd, name, &st, 0) == 0 ? st.st_ino : 0;
}

/* Issue 12: a lock change costs O(1) registry I/O (the entry is not rewritten while
 * the owner it names holds), one process holds at most env.max locks (ENOLCK past
 * it, unlocks always pass), and only strong owners call the in-use callback. */
static void test_cap_and_registry(void)
{
	struct vmb_lockenv env;
	struct vmb_lockset ls;
	struct vmb_err e = {0};
	struct flock fl;
	int ha, hb, i;
	ino_t first;

	CHECK_RC(vmb_lockenv_init(&env, 50), 0);
	env.hold = on_hold;
	lockset_open(&ls);
	ls.env = &env;
	holds = 0;
	CHECK_RC(setlk(&ls, &ha, 11, F_WRLCK, 0, 1), 0);
	CHECK(holds == 1);
	first = entry_ino(ls.ino);
	CHECK(first != 0);
	for (i = 1; i < 50; i++)
		CHECK_RC(setlk(&ls, &ha, 11, F_WRLCK, (off_t)i * 2, 1), 0);
	CHECK(entry_ino(ls.ino) == first);   /* 49 lock changes, no rewrite */
	CHECK(vmb_lockenv_count(&env, getpid()) == 50);
	CHECK_RC(setlk(&ls, &ha, 11, F_WRLCK, 1000, 1), -ENOLCK);
	CHECK_RC(setlk(&ls, &ha, 11, F_UNLCK, 0, 1), 0);   /* unlock passes at the cap */
	CHECK(vmb_lockenv_count(&env, getpid()) == 49);
	CHECK_RC(setlk(&ls, &ha, 11, F_WRLCK, 1000, 1), 0);
	/* a weak owner (a read-only taker) holds without making the bundle in use */
	fl = range(F_RDLCK, 5000, 1);
	CHECK_RC(vmb_lock_set(&ls, file, &hb, 12, getpid(), 0, &fl, NULL, &e), -ENOLCK);
	CHECK(holds == 1);
	vmb_lock_release(&ls, &ha);
	CHECK(holds == 0);
	CHECK(vmb_lockenv_count(&env, getpid()) == 0);
	CHECK(entry_ino(ls.ino) == 0);
	fl = range(F_RDLCK, 5000, 1);
	CHECK_RC(vmb_lock_set(&ls, file, &hb, 12, getpid(), 0, &fl, NULL, &e), 0);
	CHECK(holds == 0);
	CHECK(vmb_lock_any(&ls, NULL) == 1 && vmb_lock_any_strong(&ls, NULL) == 0);
	vmb_lock_release(&ls, &hb);
	vmb_lockset_destroy(&ls);
	vmb_lockenv_destroy(&env);
}

int main(void)
{
	int fd;

	if (harness_tmpdir(tmpdir, sizeof(tmpdir), "lock") < 0)
		return 99;
	snprintf(file, sizeof(file), "%s/nvram.bin", tmpdir);
	fd = open(file, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	metafd = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || metafd < 0 || ftruncate(fd, 4096) < 0) {
		perror(tmpdir);
		return 99;
	}
	close(fd);
	vmb_waitgraph_init(&wg);
	RUN(test_recycled_owner_id);
	RUN(test_recycled_owner_id_flock);
	RUN(test_posix_close_drops_all);
	RUN(test_settle_bound);
	RUN(test_cap_and_registry);
	vmb_waitgraph_destroy(&wg);
	close(metafd);
	harness_rmtree(tmpdir);
	return harness_exit("test_lock");
}
