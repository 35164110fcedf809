/* lockhelper: take, test and release advisory locks for the lock tests.
 *
 * Script mode:  lockhelper [-r] FILE STEP...
 *   Opens FILE (O_RDWR|O_CREAT, or O_RDONLY with -r) and runs each STEP (one argv
 *   word of space-separated fields) in order, printing one line per step:
 *       RESULT t=SECONDS.MICROS
 *   RESULT is "locked", "unlocked", "ok", an errno name ("EAGAIN", "EINTR", ...),
 *   "free" or "pid N r|w START LEN" (getlk), ... (see usage()).  Timestamps are
 *   CLOCK_REALTIME, comparable with `date +%s.%N`.  stdout is line-buffered.
 *
 * Other modes (see usage()): race, loop, handoff, killwait.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAXFD 64

static int fds[MAXFD];
static int nfds, cur = -1;
static const char *file;
static volatile sig_atomic_t got_usr1;

static void usage(void)
{
	fprintf(stderr,
		"usage: lockhelper [-r] FILE STEP...\n"
		"steps (each one argument):\n"
		"  posix r|w|u START LEN [wait]   F_SETLK / F_SETLKW (LEN 0: to EOF)\n"
		"  ofd r|w|u START LEN [wait]     F_OFD_SETLK / F_OFD_SETLKW\n"
		"  flock sh|ex|un [wait]          flock(2), LOCK_NB unless wait\n"
		"  getlk r|w START LEN            F_GETLK: 'free' or 'pid N r|w START LEN'\n"
		"  ofdgetlk r|w START LEN         F_OFD_GETLK, same output\n"
		"  tposix r|w START LEN           F_SETLK from a new thread: 'locked tid N'\n"
		"  open [ro] | dup | close [K] | use K   descriptors (the new one is current)\n"
		"  fork                           a child that keeps every fd until killed: 'child N'\n"
		"  pid                            'pid N'\n"
		"  hold [SECS]                    print 'holding', wait for SIGUSR1 (or SECS)\n"
		"  sleep MS | ready PATH | waitfile PATH\n"
		"  unlink PATH | rmdir PATH | rename OLD NEW | trunc PATH SIZE | otrunc PATH\n"
		"SIGUSR2 interrupts a waiting step (no SA_RESTART): it prints EINTR.\n"
		"modes:\n"
		"  lockhelper race DIR N ofd|flock|posix [PREFIX [rm]]\n"
		"      N times: write DIR/PREFIXi/{config.json,disk.img (1 MiB sparse),nvram.bin},\n"
		"      close them, at once take an exclusive non-blocking lock on nvram.bin,\n"
		"      release it (close); with rm, then remove the bundle.\n"
		"      prints 'race KIND N setupfails C fails F rmfails R secs S' (setupfails:\n"
		"      creating or opening failed; fails: the lock failed)\n"
		"  lockhelper loop FILE ofd|flock|posix N\n"
		"      N non-blocking exclusive lock/unlock round trips on one fd:\n"
		"      'loop KIND N fails F us_per_roundtrip U'\n"
		"  lockhelper handoff FILE ofd|flock|posix N [kill]\n"
		"      two processes take turns: open, lock (non-blocking), close (or, with kill,\n"
		"      a child locks and is SIGKILLed), then the other locks at once:\n"
		"      'handoff KIND N fails F'\n"
		"  lockhelper killwait FILE ofd|flock|posix RUNS\n"
		"      a holder is SIGKILLed while a waiter blocks; time until the waiter gets\n"
		"      the lock: 'killwait KIND ms M1 M2 ... median MED max MAX'\n");
	exit(2);
}

static const char *ename(int e)
{
	const char *n = strerrorname_np(e);
	return n ? n : "E???";
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void out(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf(" t=%.6f\n", now());
	fflush(stdout);
}

static void on_usr1(int s) { (void)s; got_usr1 = 1; }
static void on_usr2(int s) { (void)s; }

static void handlers(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = on_usr2;   /* no SA_RESTART: a waiting fcntl/flock returns EINTR */
	sigaction(SIGUSR2, &sa, NULL);
}

static short ltype(const char *s)
{
	if (!strcmp(s, "r"))
		return F_RDLCK;
	if (!strcmp(s, "w"))
		return F_WRLCK;
	if (!strcmp(s, "u"))
		return F_UNLCK;
	fprintf(stderr, "lockhelper: bad lock type '%s'\n", s);
	exit(2);
}

static int need_fd(void)
{
	if (cur < 0 || fds[cur] < 0) {
		fprintf(stderr, "lockhelper: no current descriptor\n");
		exit(2);
	}
	return fds[cur];
}

static int add_fd(int fd)
{
	if (nfds == MAXFD) {
		fprintf(stderr, "lockhelper: too many descriptors\n");
		exit(2);
	}
	fds[nfds] = fd;
	cur = nfds++;
	return cur;
}

static void set_lock(int cmd, short type, long long start, long long len, int wait)
{
	struct flock fl;
	int fd = need_fd();

	memset(&fl, 0, sizeof(fl));
	fl.l_type = type;
	fl.l_whence = SEEK_SET;
	fl.l_start = start;
	fl.l_len = len;
	if (cmd == F_SETLK && wait)
		cmd = F_SETLKW;
	else if (cmd == F_OFD_SETLK && wait)
		cmd = F_OFD_SETLKW;
	if (fcntl(fd, cmd, &fl) == 0)
		out("%s", type == F_UNLCK ? "unlocked" : "locked");
	else
		out("%s", ename(errno));
}

static void get_lock(int cmd, short type, long long start, long long len)
{
	struct flock fl;
	int fd = need_fd();

	memset(&fl, 0, sizeof(fl));
	fl.l_type = type;
	fl.l_whence = SEEK_SET;
	fl.l_start = start;
	fl.l_len = len;
	if (fcntl(fd, cmd, &fl) < 0)
		out("%s", ename(errno));
	else if (fl.l_type == F_UNLCK)
		out("free");
	else
		out("pid %ld %s %lld %lld", (long)fl.l_pid, fl.l_type == F_WRLCK ? "w" : "r",
		    (long long)fl.l_start, (long long)fl.l_len);
}

struct tlock { short type; long long start, len; int err; pid_t tid; };

static void *thread_lock(void *arg)
{
	struct tlock *t = arg;
	struct flock fl;

	memset(&fl, 0, sizeof(fl));
	fl.l_type = t->type;
	fl.l_whence = SEEK_SET;
	fl.l_start = t->start;
	fl.l_len = t->len;
	t->tid = (pid_t)syscall(SYS_gettid);
	t->err = fcntl(need_fd(), F_SETLK, &fl) == 0 ? 0 : errno;
	return NULL;
}

static void hold(double secs)
{
	double end = mono() + secs;

	out("holding");
	while (!got_usr1 && (secs <= 0 || mono() < end))
		usleep(2000);
	got_usr1 = 0;
	out("released-hold");
}

static void step(char *s)
{
	char *w[8];
	int n = 0;
	char *save = NULL, *tok;

	for (tok = strtok_r(s, " ", &save); tok && n < 8; tok = strtok_r(NULL, " ", &save))
		w[n++] = tok;
	if (n == 0)
		usage();
#define ARGS(k) do { if (n < (k)) usage(); } while (0)
	if (!strcmp(w[0], "posix") || !strcmp(w[0], "ofd")) {
		ARGS(4);
		set_lock(w[0][0] == 'p' ? F_SETLK : F_OFD_SETLK, ltype(w[1]), atoll(w[2]),
			 atoll(w[3]), n > 4 && !strcmp(w[4], "wait"));
	} else if (!strcmp(w[0], "getlk") || !strcmp(w[0], "ofdgetlk")) {
		ARGS(4);
		get_lock(w[0][0] == 'g' ? F_GETLK : F_OFD_GETLK, ltype(w[1]), atoll(w[2]),
			 atoll(w[3]));
	} else if (!strcmp(w[0], "flock")) {
		int op;
		ARGS(2);
		op = !strcmp(w[1], "sh") ? LOCK_SH : !strcmp(w[1], "ex") ? LOCK_EX :
		     !strcmp(w[1], "un") ? LOCK_UN : -1;
		if (op < 0)
			usage();
		if (!(n > 2 && !strcmp(w[2], "wait")))
			op |= LOCK_NB;
		if (flock(need_fd(), op) == 0)
			out("%s", (op & ~LOCK_NB) == LOCK_UN ? "unlocked" : "locked");
		else
			out("%s", ename(errno));
	} else if (!strcmp(w[0], "tposix")) {
		struct tlock t;
		pthread_t th;
		ARGS(4);
		t.type = ltype(w[1]);
		t.start = atoll(w[2]);
		t.len = atoll(w[3]);
		t.err = 0;
		pthread_create(&th, NULL, thread_lock, &t);
		pthread_join(th, NULL);
		if (t.err)
			out("%s", ename(t.err));
		else
			out("locked tid %ld", (long)t.tid);
	} else if (!strcmp(w[0], "open")) {
		int ro = n > 1 && !strcmp(w[1], "ro");
		int fd = open(file, ro ? O_RDONLY : O_RDWR | O_CREAT, 0644);
		if (fd < 0)
			out("%s", ename(errno));
		else
			out("fd %d", add_fd(fd));
	} else if (!strcmp(w[0], "dup")) {
		int fd = dup(need_fd());
		if (fd < 0)
			out("%s", ename(errno));
		else
			out("fd %d", add_fd(fd));
	} else if (!strcmp(w[0], "close")) {
		int k = n > 1 ? atoi(w[1]) : cur;
		if (k < 0 || k >= nfds || fds[k] < 0)
			usage();
		out("%s", close(fds[k]) == 0 ? "ok" : ename(errno));
		fds[k] = -1;
	} else if (!strcmp(w[0], "use")) {
		ARGS(2);
		cur = atoi(w[1]);
		if (cur < 0 || cur >= nfds)
			usage();
		out("ok");
	} else if (!strcmp(w[0], "fork")) {
		pid_t p = fork();
		if (p == 0) {
			for (;;)
				pause();
		}
		out("child %ld", (long)p);
	} else if (!strcmp(w[0], "pid")) {
		out("pid %ld", (long)getpid());
	} else if (!strcmp(w[0], "hold")) {
		hold(n > 1 ? atof(w[1]) : 0);
	} else if (!strcmp(w[0], "sleep")) {
		ARGS(2);
		usleep((useconds_t)atoi(w[1]) * 1000);
		out("slept");
	} else if (!strcmp(w[0], "ready")) {
		int fd;
		char tmp[PATH_MAX];
		ARGS(2);
		snprintf(tmp, sizeof(tmp), "%s.tmp", w[1]);
		fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd >= 0)
			close(fd);
		rename(tmp, w[1]);
		out("ready");
	} else if (!strcmp(w[0], "waitfile")) {
		ARGS(2);
		while (access(w[1], F_OK) != 0)
			usleep(2000);
		out("ok");
	} else if (!strcmp(w[0], "unlink")) {
		ARGS(2);
		out("%s", unlink(w[1]) == 0 ? "ok" : ename(errno));
	} else if (!strcmp(w[0], "rmdir")) {
		ARGS(2);
		out("%s", rmdir(w[1]) == 0 ? "ok" : ename(errno));
	} else if (!strcmp(w[0], "rename")) {
		ARGS(3);
		out("%s", rename(w[1], w[2]) == 0 ? "ok" : ename(errno));
	} else if (!strcmp(w[0], "trunc")) {
		ARGS(3);
		out("%s", truncate(w[1], atoll(w[2])) == 0 ? "ok" : ename(errno));
	} else if (!strcmp(w[0], "otrunc")) {
		int fd;
		ARGS(2);
		fd = open(w[1], O_WRONLY | O_TRUNC);
		if (fd >= 0)
			close(fd);
		out("%s", fd >= 0 ? "ok" : ename(errno));
	} else {
		usage();
	}
#undef ARGS
}

/* ---- modes ---- */

enum kind { K_OFD, K_FLOCK, K_POSIX };

static enum kind kind_of(const char *s)
{
	if (!strcmp(s, "ofd"))
		return K_OFD;
	if (!strcmp(s, "flock"))
		return K_FLOCK;
	if (!strcmp(s, "posix"))
		return K_POSIX;
	usage();
	return K_OFD;
}

/* Exclusive lock of the whole file (wait or not); 0 or errno. */
static int xlock(int fd, enum kind k, int wait)
{
	struct flock fl;
	int r;

	if (k == K_FLOCK) {
		r = flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB));
		return r == 0 ? 0 : errno;
	}
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	if (k == K_OFD)
		r = fcntl(fd, wait ? F_OFD_SETLKW : F_OFD_SETLK, &fl);
	else
		r = fcntl(fd, wait ? F_SETLKW : F_SETLK, &fl);
	return r == 0 ? 0 : errno;
}

static int xunlock(int fd, enum kind k)
{
	struct flock fl;

	if (k == K_FLOCK)
		return flock(fd, LOCK_UN) == 0 ? 0 : errno;
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_UNLCK;
	fl.l_whence = SEEK_SET;
	return fcntl(fd, k == K_OFD ? F_OFD_SETLK : F_SETLK, &fl) == 0 ? 0 : errno;
}

static int write_file(const char *path, const void *buf, size_t len, off_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (fd < 0)
		return errno;
	if ((len && pwrite(fd, buf, len, 0) != (ssize_t)len) ||
	    (size && ftruncate(fd, size) < 0)) {
		int e = errno;
		close(fd);
		return e ? e : EIO;
	}
	return close(fd) == 0 ? 0 : errno;
}

static int mode_race(int argc, char **argv)
{
	const char *dir, *prefix;
	long n, i, fails = 0, rmfails = 0, setupfails = 0;
	enum kind k;
	char b[PATH_MAX], p[PATH_MAX + 32], cfg[256], boot[512], nv[4096];
	int rm;
	double t0;

	if (argc < 5)
		usage();
	dir = argv[2];
	n = atol(argv[3]);
	k = kind_of(argv[4]);
	prefix = argc > 5 ? argv[5] : "race";
	rm = argc > 6 && !strcmp(argv[6], "rm");
	memset(boot, 0, sizeof(boot));
	boot[510] = 0x55;
	boot[511] = (char)0xaa;
	memset(nv, 0xa5, sizeof(nv));
	t0 = mono();
	for (i = 0; i < n; i++) {
		int e, fd;
		size_t cl;

		snprintf(b, sizeof(b), "%s/%s%06ld", dir, prefix, i);
		if (mkdir(b, 0755) < 0) {
			if (setupfails < 20)
				fprintf(stderr, "race %ld: mkdir %s: %s\n", i, b, strerror(errno));
			setupfails++;
			continue;
		}
		cl = (size_t)snprintf(cfg, sizeof(cfg),
				      "{\"name\": \"%s%06ld\", \"cpus\": 2, \"memory\": 1024}\n",
				      prefix, i);
		snprintf(p, sizeof(p), "%s/config.json", b);
		e = write_file(p, cfg, cl, 0);
		if (!e) {
			snprintf(p, sizeof(p), "%s/disk.img", b);
			e = write_file(p, boot, sizeof(boot), 1 << 20);
		}
		if (!e) {
			snprintf(p, sizeof(p), "%s/nvram.bin", b);
			e = write_file(p, nv, sizeof(nv), 0);
		}
		if (e) {
			if (setupfails < 20)
				fprintf(stderr, "race %ld: writing %s: %s\n", i, p, strerror(e));
			setupfails++;
			continue;
		}
		/* at once: the VM starts */
		fd = open(p, O_RDWR | O_CLOEXEC);
		if (fd < 0) {
			e = errno;
			if (setupfails < 20)
				fprintf(stderr, "race %ld: open %s: %s\n", i, p, strerror(e));
			setupfails++;
			continue;
		} else {
			e = xlock(fd, k, 0);
			close(fd);   /* the VM stops: its lock goes */
		}
		if (e) {
			if (fails < 20)
				fprintf(stderr, "race %ld: lock of %s: %s\n", i, p, ename(e));
			fails++;
		}
		if (rm) {
			const char *names[] = { "config.json", "disk.img", "nvram.bin" };
			int j, bad = 0;
			for (j = 0; j < 3; j++) {
				snprintf(p, sizeof(p), "%s/%s", b, names[j]);
				if (unlink(p) < 0) {
					if (rmfails < 20)
						fprintf(stderr, "race %ld: unlink %s: %s\n", i, p,
							ename(errno));
					bad = 1;
				}
			}
			if (!bad && rmdir(b) < 0) {
				if (rmfails < 20)
					fprintf(stderr, "race %ld: rmdir %s: %s\n", i, b, ename(errno));
				bad = 1;
			}
			rmfails += bad;
		}
	}
	printf("race %s %ld setupfails %ld fails %ld rmfails %ld secs %.2f\n", argv[4], n,
	       setupfails, fails, rmfails, mono() - t0);
	return fails || rmfails || setupfails ? 1 : 0;
}

static int mode_loop(int argc, char **argv)
{
	long n, i, fails = 0;
	enum kind k;
	double t0, dt;
	int fd;

	if (argc < 5)
		usage();
	k = kind_of(argv[3]);
	n = atol(argv[4]);
	fd = open(argv[2], O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		printf("%s\n", ename(errno));
		return 1;
	}
	t0 = mono();
	for (i = 0; i < n; i++) {
		int e = xlock(fd, k, 0);
		if (e) {
			if (fails < 10)
				fprintf(stderr, "loop %ld: %s\n", i, ename(e));
			fails++;
			continue;
		}
		e = xunlock(fd, k);
		if (e) {
			fprintf(stderr, "loop %ld: unlock: %s\n", i, ename(e));
			fails++;
		}
	}
	dt = mono() - t0;
	close(fd);
	printf("loop %s %ld fails %ld us_per_roundtrip %.2f\n", argv[3], n, fails,
	       n ? dt * 1e6 / (double)n : 0.0);
	return fails ? 1 : 0;
}

static void xread(int fd, void *buf, size_t n)
{
	if (read(fd, buf, n) != (ssize_t)n) {
		fprintf(stderr, "lockhelper: pipe read failed\n");
		_exit(3);
	}
}

static void xwrite(int fd, const void *buf, size_t n)
{
	if (write(fd, buf, n) != (ssize_t)n) {
		fprintf(stderr, "lockhelper: pipe write failed\n");
		_exit(3);
	}
}

/* One turn: open, lock without waiting, close. Returns 0 or errno. */
static int turn(const char *path, enum kind k)
{
	int fd = open(path, O_RDWR | O_CLOEXEC), e;

	if (fd < 0)
		return errno;
	e = xlock(fd, k, 0);
	close(fd);
	return e;
}

static int mode_handoff(int argc, char **argv)
{
	const char *path;
	long n, i, fails = 0;
	enum kind k;
	int kill_mode;

	if (argc < 5)
		usage();
	path = argv[2];
	k = kind_of(argv[3]);
	n = atol(argv[4]);
	kill_mode = argc > 5 && !strcmp(argv[5], "kill");
	if (kill_mode) {
		for (i = 0; i < n; i++) {
			int p[2], e;
			char c;
			pid_t pid;

			if (pipe(p) < 0)
				return 3;
			pid = fork();
			if (pid == 0) {
				int fd = open(path, O_RDWR | O_CLOEXEC);
				c = fd >= 0 && xlock(fd, k, 0) == 0 ? 'y' : 'n';
				xwrite(p[1], &c, 1);
				for (;;)
					pause();
			}
			close(p[1]);
			xread(p[0], &c, 1);
			close(p[0]);
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			e = turn(path, k);   /* the holder is gone: at once */
			if (c != 'y' || e) {
				if (fails < 10)
					fprintf(stderr, "handoff %ld: %s\n", i,
						c != 'y' ? "child could not lock" : ename(e));
				fails++;
			}
		}
	} else {
		int ab[2], ba[2], res[2];
		pid_t pid;
		long cf = 0;
		char c = 't';

		if (pipe(ab) < 0 || pipe(ba) < 0 || pipe(res) < 0)
			return 3;
		pid = fork();
		if (pid == 0) {
			for (i = 0; i < n; i++) {
				xread(ab[0], &c, 1);
				if (turn(path, k)) {
					if (cf < 10)
						fprintf(stderr, "handoff child %ld failed\n", i);
					cf++;
				}
				xwrite(ba[1], &c, 1);
			}
			xwrite(res[1], &cf, sizeof(cf));
			_exit(0);
		}
		for (i = 0; i < n; i++) {
			int e = turn(path, k);
			if (e) {
				if (fails < 10)
					fprintf(stderr, "handoff parent %ld: %s\n", i, ename(e));
				fails++;
			}
			xwrite(ab[1], &c, 1);
			xread(ba[0], &c, 1);
		}
		xread(res[0], &cf, sizeof(cf));
		waitpid(pid, NULL, 0);
		fails += cf;
		n *= 2;
	}
	printf("handoff %s %ld fails %ld\n", argv[3], n, fails);
	return fails ? 1 : 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static int mode_killwait(int argc, char **argv)
{
	const char *path;
	enum kind k;
	int runs, i;
	double *ms;

	if (argc < 5)
		usage();
	path = argv[2];
	k = kind_of(argv[3]);
	runs = atoi(argv[4]);
	if (runs < 1)
		usage();
	ms = calloc((size_t)runs, sizeof(*ms));
	if (!ms)
		return 3;
	printf("killwait %s ms", argv[3]);
	for (i = 0; i < runs; i++) {
		int hp[2], wp[2], dp[2];
		pid_t holder, waiter;
		double t0, t1 = 0;
		char c;
		struct pollfd pfd;

		if (pipe(hp) < 0 || pipe(wp) < 0 || pipe(dp) < 0)
			return 3;
		holder = fork();
		if (holder == 0) {
			int fd = open(path, O_RDWR | O_CLOEXEC);
			c = fd >= 0 && xlock(fd, k, 0) == 0 ? 'y' : 'n';
			xwrite(hp[1], &c, 1);
			for (;;)
				pause();
		}
		xread(hp[0], &c, 1);
		if (c != 'y') {
			fprintf(stderr, "killwait: the holder could not lock\n");
			kill(holder, SIGKILL);
			waitpid(holder, NULL, 0);
			return 1;
		}
		waiter = fork();
		if (waiter == 0) {
			int fd = open(path, O_RDWR | O_CLOEXEC), e;
			double t;
			xwrite(wp[1], "w", 1);
			e = fd >= 0 ? xlock(fd, k, 1) : errno;
			t = e ? -1.0 : now();
			xwrite(dp[1], &t, sizeof(t));
			_exit(0);
		}
		xread(wp[0], &c, 1);
		usleep(100000);   /* let the waiter block */
		t0 = now();
		kill(holder, SIGKILL);
		pfd.fd = dp[0];
		pfd.events = POLLIN;
		if (poll(&pfd, 1, 10000) == 1) {
			xread(dp[0], &t1, sizeof(t1));
			ms[i] = t1 < 0 ? 99999.0 : (t1 - t0) * 1e3;
		} else {
			ms[i] = 99999.0;   /* never woke */
			kill(waiter, SIGKILL);
		}
		waitpid(holder, NULL, 0);
		waitpid(waiter, NULL, 0);
		close(hp[0]); close(hp[1]); close(wp[0]); close(wp[1]);
		close(dp[0]); close(dp[1]);
		printf(" %.2f", ms[i]);
		fflush(stdout);
	}
	qsort(ms, (size_t)runs, sizeof(*ms), cmp_double);
	printf(" median %.2f max %.2f\n", runs % 2 ? ms[runs / 2] :
	       (ms[runs / 2 - 1] + ms[runs / 2]) / 2, ms[runs - 1]);
	free(ms);
	return 0;
}

int main(int argc, char **argv)
{
	int i, ro = 0, first = 1, fd;

	setvbuf(stdout, NULL, _IOLBF, 0);
	handlers();
	if (argc < 2)
		usage();
	if (!strcmp(argv[1], "race"))
		return mode_race(argc, argv);
	if (!strcmp(argv[1], "loop"))
		return mode_loop(argc, argv);
	if (!strcmp(argv[1], "handoff"))
		return mode_handoff(argc, argv);
	if (!strcmp(argv[1], "killwait"))
		return mode_killwait(argc, argv);
	if (!strcmp(argv[1], "-r")) {
		ro = 1;
		first = 2;
	}
	if (argc <= first)
		usage();
	file = argv[first];
	fd = open(file, ro ? O_RDONLY : O_RDWR | O_CREAT, 0644);
	if (fd < 0) {
		out("%s", ename(errno));
		return 1;
	}
	add_fd(fd);
	for (i = first + 1; i < argc; i++) {
		char *s = strdup(argv[i]);
		if (!s)
			return 3;
		step(s);
		free(s);
	}
	return 0;
}
