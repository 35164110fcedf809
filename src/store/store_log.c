/* store_log.c - the daemons' log in STORE/.vmbundlefs (see store_log.h). */
#include "config.h"
#include "store/store_log.h"
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LOCK_NAME VMB_STORE_LOG_FILE ".lock"
#define LINE_MAX_BYTES 4096

struct vmb_store_log {
	pthread_mutex_t mu;   /* guards fd */
	long max;             /* VMB_STORE_LOG_MAX, or VMB_TEST_LOG_MAX for tests */
	int metafd;           /* STORE/.vmbundlefs */
	int fd;               /* the log, O_APPEND; -1 when it cannot be opened */
	char *mnt;
};

static int open_log(int metafd)
{
	struct stat st;
	int fd = openat(metafd, VMB_STORE_LOG_FILE, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC |
			O_NOFOLLOW | O_NONBLOCK, 0600);

	if (fd < 0)
		return -errno;
	/* Metadata is root's (the log names files and users): never more than 0600. */
	if (fstat(fd, &st) == 0 && (st.st_mode & 07777) != 0600 && st.st_uid == geteuid())
		(void)fchmod(fd, 0600);
	return fd;
}

int vmb_store_log_open(struct vmb_store_log **out, const char *store,
		       const char *mountpoint, struct vmb_err *err)
{
	struct vmb_store_log *l = calloc(1, sizeof(*l));
	int dfd = -1, r;

	*out = NULL;
	if (!l || !(l->mnt = strdup(mountpoint))) {
		free(l);
		return vmb_err_set(err, ENOMEM, "out of memory");
	}
	l->metafd = l->fd = -1;
	l->max = VMB_STORE_LOG_MAX;
	if (getenv("VMB_TEST_LOG_MAX"))   /* tests: rotate after a few lines */
		l->max = strtol(getenv("VMB_TEST_LOG_MAX"), NULL, 10);
	dfd = open(store, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		r = vmb_err_sys(err, errno, "cannot open store '%s'", store);
		goto fail;
	}
	l->metafd = openat(dfd, VMB_META_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	close(dfd);
	if (l->metafd < 0) {
		r = vmb_err_sys(err, errno, "cannot open '%s/%s'", store, VMB_META_DIR);
		goto fail;
	}
	l->fd = open_log(l->metafd);
	if (l->fd < 0) {
		r = vmb_err_sys(err, -l->fd, "cannot open the log '%s/%s/%s'", store,
				VMB_META_DIR, VMB_STORE_LOG_FILE);
		goto fail;
	}
	pthread_mutex_init(&l->mu, NULL);
	*out = l;
	return 0;
fail:
	if (l->metafd >= 0)
		close(l->metafd);
	free(l->mnt);
	free(l);
	return r;
}

/* Another daemon rotated (or someone removed the log): follow the name. */
static void follow_name(struct vmb_store_log *l)
{
	struct stat cur, mine;
	int fd;

	if (l->fd >= 0 && fstatat(l->metafd, VMB_STORE_LOG_FILE, &cur, AT_SYMLINK_NOFOLLOW) == 0 &&
	    fstat(l->fd, &mine) == 0 && cur.st_ino == mine.st_ino && cur.st_dev == mine.st_dev)
		return;
	fd = open_log(l->metafd);
	if (fd < 0)
		return;   /* keep writing where we were */
	if (l->fd >= 0)
		close(l->fd);
	l->fd = fd;
}

/* Past the cap: rotate under log.lock, taken without waiting (whoever holds it is
 * rotating already). Only a log that is still the current one is renamed. */
static void maybe_rotate(struct vmb_store_log *l)
{
	char from[32], to[32];
	struct stat mine, cur;
	int lk, i;

	if (fstat(l->fd, &mine) < 0 || mine.st_size <= l->max)
		return;
	lk = openat(l->metafd, LOCK_NAME, O_RDONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (lk < 0)
		return;
	if (flock(lk, LOCK_EX | LOCK_NB) == 0) {
		if (fstatat(l->metafd, VMB_STORE_LOG_FILE, &cur, AT_SYMLINK_NOFOLLOW) == 0 &&
		    cur.st_ino == mine.st_ino && cur.st_dev == mine.st_dev) {
			for (i = VMB_STORE_LOG_KEEP; i > 1; i--) {
				snprintf(from, sizeof(from), "%s.%d", VMB_STORE_LOG_FILE, i - 1);
				snprintf(to, sizeof(to), "%s.%d", VMB_STORE_LOG_FILE, i);
				(void)renameat(l->metafd, from, l->metafd, to);
			}
			snprintf(to, sizeof(to), "%s.1", VMB_STORE_LOG_FILE);
			(void)renameat(l->metafd, VMB_STORE_LOG_FILE, l->metafd, to);
		}
		follow_name(l);
		flock(lk, LOCK_UN);
	}
	close(lk);
}

void vmb_store_log_write(struct vmb_store_log *l, const char *msg)
{
	char line[LINE_MAX_BYTES];
	struct timespec ts;
	struct tm tm;
	size_t n, i, start;
	int k;

	if (!l)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	k = snprintf(line + n, sizeof(line) - n, ".%03ldZ vmbundlefs[%ld] %s: ",
		     ts.tv_nsec / 1000000, (long)getpid(), l->mnt);
	n += k > 0 ? (size_t)k : 0;
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	start = n;
	for (i = 0; msg[i] && n < sizeof(line) - 1; i++)
		line[n++] = msg[i];
	for (i = start; i < n; i++)   /* one message, one line */
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	line[n++] = '\n';
	pthread_mutex_lock(&l->mu);
	follow_name(l);
	if (l->fd >= 0 && write(l->fd, line, n) == (ssize_t)n)
		maybe_rotate(l);
	pthread_mutex_unlock(&l->mu);
}

void vmb_store_log_close(struct vmb_store_log *l)
{
	if (!l)
		return;
	if (l->fd >= 0)
		close(l->fd);
	if (l->metafd >= 0)
		close(l->metafd);
	pthread_mutex_destroy(&l->mu);
	free(l->mnt);
	free(l);
}

/* Read one generation whole (it is at most a little over VMB_STORE_LOG_MAX). */
static int read_gen(int metafd, const char *name, char **buf, size_t *len)
{
	struct stat st;
	size_t cap, got = 0;
	ssize_t k;
	int fd = openat(metafd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);

	*buf = NULL;
	*len = 0;
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return -EINVAL;
	}
	cap = (size_t)st.st_size + 4096;
	if (cap > 4 * (size_t)VMB_STORE_LOG_MAX)
		cap = 4 * (size_t)VMB_STORE_LOG_MAX;
	if (st.st_size > (off_t)cap)
		(void)lseek(fd, st.st_size - (off_t)cap, SEEK_SET);
	*buf = malloc(cap + 1);
	if (!*buf) {
		close(fd);
		return -ENOMEM;
	}
	while (got < cap && (k = read(fd, *buf + got, cap - got)) > 0)
		got += (size_t)k;
	close(fd);
	(*buf)[got] = '\0';
	*len = got;
	return 0;
}

int vmb_store_log_tail(int metafd, size_t n, char ***lines, size_t *count,
		       struct vmb_err *err)
{
	char **out = NULL, name[32];
	size_t have = 0, gen;
	int r = 0;

	*lines = NULL;
	*count = 0;
	out = calloc(1, sizeof(*out));
	if (!out)
		return vmb_err_set(err, ENOMEM, "out of memory");
	/* Newest generation first; each one's lines go before those already taken. */
	for (gen = 0; gen <= VMB_STORE_LOG_KEEP && have < n; gen++) {
		char *buf, *p, *end;
		size_t len, nl = 0, take, i;
		char **grown;

		if (gen == 0)
			snprintf(name, sizeof(name), "%s", VMB_STORE_LOG_FILE);
		else
			snprintf(name, sizeof(name), "%s.%zu", VMB_STORE_LOG_FILE, gen);
		r = read_gen(metafd, name, &buf, &len);
		if (r < 0) {
			r = vmb_err_sys(err, -r, "cannot read the log '%s/%s'", VMB_META_DIR, name);
			goto out;
		}
		for (i = 0; i < len; i++)
			nl += buf[i] == '\n';
		if (len && buf[len - 1] != '\n')
			nl++;
		take = nl < n - have ? nl : n - have;
		grown = realloc(out, (have + take + 1) * sizeof(*out));
		if (!grown) {
			free(buf);
			r = vmb_err_set(err, ENOMEM, "out of memory");
			goto out;
		}
		out = grown;
		memmove(out + take, out, have * sizeof(*out));
		/* the last `take` lines of buf */
		p = buf;
		for (i = 0; i < nl - take; i++)
			p = strchr(p, '\n') + 1;
		for (i = 0; i < take; i++) {
			end = strchr(p, '\n');
			if (end)
				*end = '\0';
			out[i] = strdup(p);
			if (!out[i]) {
				while (i-- > 0)
					free(out[i]);
				memmove(out, out + take, have * sizeof(*out));
				out[have] = NULL;
				free(buf);
				r = vmb_err_set(err, ENOMEM, "out of memory");
				goto out;
			}
			p = end ? end + 1 : p + strlen(p);
		}
		have += take;
		out[have] = NULL;
		free(buf);
	}
out:
	if (r < 0) {
		vmb_store_log_free(out);
		return r;
	}
	*lines = out;
	*count = have;
	return 0;
}

void vmb_store_log_free(char **lines)
{
	size_t i;

	if (!lines)
		return;
	for (i = 0; lines[i]; i++)
		free(lines[i]);
	free(lines);
}
