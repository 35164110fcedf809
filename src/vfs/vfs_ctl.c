/* vfs_ctl.c - the control channel's socket and server thread (see ctl.h).
 *
 * One thread accepts connections and carries out their requests one at a time
 * (structural commands are serialised anyway), each as soon as it has come: a
 * connection whose request has not come yet waits in a poll set beside the others
 * (a client that connects and says nothing holds up no other) and is dropped after
 * VMB_CTL_TIMEOUT_MS. Ownership: struct vmb_ctl owns the socket, the run/ directory
 * descriptor, the stop pipe and the thread; vmb_ctl_stop undoes all of it.
 */
#define _GNU_SOURCE
#include "config.h"
#include "base/mountinfo.h"
#include "vfs/ctl.h"
#include "vfs/vfs_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

struct vmb_ctl {
	struct vmb_vfs *v;
	char *mountpoint;
	char name[64];          /* ctl.MAJOR:MINOR */
	int runfd;              /* STORE/.vmbundlefs/run */
	int sock;               /* listening */
	int stopfd[2];          /* a byte written to [1] stops the thread */
	pthread_t thread;
	int started;
	struct stat sockst;     /* the socket file we made: removed only if still ours */
};

static int proc_addr(struct sockaddr_un *sa, int dirfd, const char *name)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	/* Through the directory's descriptor: the store's path may be longer than a
	 * socket address can hold. */
	return snprintf(sa->sun_path, sizeof(sa->sun_path), "/proc/self/fd/%d/%s", dirfd,
			name) >= (int)sizeof(sa->sun_path) ? -ENAMETOOLONG : 0;
}

/* 1 when something listens on run/name. Never waits: a daemon whose backlog is
 * full (EAGAIN) is live. */
static int is_live(int runfd, const char *name)
{
	struct sockaddr_un sa;
	int fd, live;

	if (proc_addr(&sa, runfd, name) < 0)
		return 0;
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return 1;   /* cannot tell: keep it */
	live = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 ||
	       (errno != ECONNREFUSED && errno != ENOENT);
	close(fd);
	return live;
}

int vmb_ctl_mount_dev(const char *mountpoint, char *dev, size_t size)
{
	char *real = realpath(mountpoint, NULL);
	int r;

	if (size)
		dev[0] = '\0';
	if (!real)
		return -errno;
	r = vmb_mountinfo_dev_of(real, dev, size);
	free(real);
	return r;
}

int vmb_ctl_other_mount(struct vmb_vfs *v, char *which, size_t size)
{
	struct dirent *de;
	DIR *d;
	int fd, found = 0;

	if (v->private_store)
		return 0;
	fd = openat(v->store.metafd, VMB_CTL_RUN_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		    O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		return 0;   /* no mount has made its socket */
	d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		snprintf(which, size, "(cannot tell: cannot read '%s/%s/%s': %s)",
			 v->store_real, VMB_META_DIR, VMB_CTL_RUN_DIR, strerror(errno));
		if (fd >= 0)
			close(fd);
		return 1;
	}
	while (!found && (de = readdir(d))) {
		struct stat st;
		char mp[PATH_MAX];
		if (strncmp(de->d_name, VMB_CTL_PREFIX, strlen(VMB_CTL_PREFIX)) ||
		    !strcmp(de->d_name, v->ctl_self) ||
		    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISSOCK(st.st_mode) || !is_live(dirfd(d), de->d_name))
			continue;
		found = 1;
		if (vmb_mountinfo_mountpoint_of(de->d_name + strlen(VMB_CTL_PREFIX), mp,
						sizeof(mp)) == 0)
			snprintf(which, size, "'%s'", mp);
		else
			snprintf(which, size, "another place (its daemon's control socket is "
				 "'%s/%s/%s/%s')", v->store_real, VMB_META_DIR, VMB_CTL_RUN_DIR,
				 de->d_name);
	}
	closedir(d);
	return found;
}

/* Remove the sockets of daemons that are gone (nothing listens on them). */
static void sweep(struct vmb_ctl *c)
{
	int fd = openat(c->runfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *de;
	DIR *d;

	if (fd < 0)
		return;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return;
	}
	while ((de = readdir(d))) {
		struct stat st;
		if (strncmp(de->d_name, VMB_CTL_PREFIX, strlen(VMB_CTL_PREFIX)) ||
		    fstatat(c->runfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISSOCK(st.st_mode))
			continue;
		if (!is_live(c->runfd, de->d_name) && unlinkat(c->runfd, de->d_name, 0) == 0)
			vmb_log_msg(c->v->log, "removed the stale control socket '%s/%s/%s/%s' "
				    "(its daemon is gone)", c->v->store_real, VMB_META_DIR,
				    VMB_CTL_RUN_DIR, de->d_name);
	}
	closedir(d);
}

static int open_run_dir(struct vmb_ctl *c, struct vmb_err *err)
{
	struct vmb_vfs *v = c->v;
	struct stat st;

	/* Others may pass through .vmbundlefs to the sockets (everything else in it is
	 * 0700/0600 and stays the owner's). */
	if (fstat(v->store.metafd, &st) == 0 && (st.st_mode & 07777) == VMB_META_DIR_MODE &&
	    fchmod(v->store.metafd, VMB_CTL_META_MODE) < 0)
		vmb_log_msg(v->log, "cannot give '%s/%s' mode %04o (the control channel is for "
			    "its owner only): %s", v->store_real, VMB_META_DIR,
			    VMB_CTL_META_MODE, strerror(errno));
	if (mkdirat(v->store.metafd, VMB_CTL_RUN_DIR, VMB_CTL_RUN_MODE) < 0 && errno != EEXIST)
		return vmb_err_sys(err, errno, "cannot create '%s/%s/%s'", v->store_real,
				   VMB_META_DIR, VMB_CTL_RUN_DIR);
	c->runfd = openat(v->store.metafd, VMB_CTL_RUN_DIR,
			  O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (c->runfd < 0)
		return vmb_err_sys(err, errno, "cannot open '%s/%s/%s'", v->store_real,
				   VMB_META_DIR, VMB_CTL_RUN_DIR);
	if (fstat(c->runfd, &st) == 0 && (st.st_mode & 07777) != VMB_CTL_RUN_MODE)
		(void)fchmod(c->runfd, VMB_CTL_RUN_MODE);   /* umask */
	return 0;
}

static int make_socket(struct vmb_ctl *c, struct vmb_err *err)
{
	struct sockaddr_un sa;
	struct vmb_vfs *v = c->v;
	int r;

	if (proc_addr(&sa, c->runfd, c->name) < 0)
		return vmb_err_set(err, ENAMETOOLONG, "control socket name too long");
	c->sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (c->sock < 0)
		return vmb_err_sys(err, errno, "cannot make the control socket");
	r = bind(c->sock, (struct sockaddr *)&sa, sizeof(sa));
	if (r < 0 && errno == EADDRINUSE) {
		/* The device number of a mount is reused once it is gone: a socket by
		 * that name nobody listens on is a dead daemon's. */
		if (is_live(c->runfd, c->name))
			return vmb_err_set(err, EADDRINUSE, "the control socket '%s/%s/%s/%s' is "
					   "in use by another daemon", v->store_real, VMB_META_DIR,
					   VMB_CTL_RUN_DIR, c->name);
		unlinkat(c->runfd, c->name, 0);
		r = bind(c->sock, (struct sockaddr *)&sa, sizeof(sa));
	}
	if (r < 0 || fstatat(c->runfd, c->name, &c->sockst, AT_SYMLINK_NOFOLLOW) < 0)
		return vmb_err_sys(err, errno, "cannot bind the control socket '%s/%s/%s/%s'",
				   v->store_real, VMB_META_DIR, VMB_CTL_RUN_DIR, c->name);
	/* Anyone may connect; the daemon checks who asks. */
	if (fchmodat(c->runfd, c->name, 0666, 0) < 0 || listen(c->sock, 16) < 0)
		return vmb_err_sys(err, errno, "cannot set up the control socket '%s/%s/%s/%s'",
				   v->store_real, VMB_META_DIR, VMB_CTL_RUN_DIR, c->name);
	return 0;
}

/* The peer's supplementary groups (SO_PEERGROUPS), malloc'ed. */
static int peer_groups(int fd, gid_t **out, int *n)
{
	socklen_t len = 32 * sizeof(gid_t);
	gid_t *g = NULL;

	*out = NULL;
	*n = 0;
	for (;;) {
		gid_t *ng = realloc(g, len ? len : sizeof(gid_t));
		if (!ng) {
			free(g);
			return -ENOMEM;
		}
		g = ng;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, g, &len) == 0)
			break;
		if (errno != ERANGE) {
			free(g);
			return -errno;
		}
	}
	*out = g;
	*n = (int)(len / sizeof(gid_t));
	return 0;
}

static void reply(int fd, int code, const char *msg)
{
	char buf[VMB_CTL_REPLY_MAX];
	int len = snprintf(buf, sizeof(buf), "%d %s", code, msg ? msg : "");

	if (len >= (int)sizeof(buf))
		len = (int)sizeof(buf) - 1;
	(void)send(fd, buf, (size_t)len, MSG_NOSIGNAL);
}

/* Carry out the request waiting on fd (connected, non-blocking, readable or hung
 * up). 1: nothing there yet (a spurious wake-up: keep waiting), 0: done. */
static int serve_one(struct vmb_ctl *c, int fd)
{
	struct vmb_ctl_caller who = {0};
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	struct vmb_err err;
	char *buf = NULL, *argv[8], *msg = NULL;
	ssize_t len;
	int argc = 0, r, again = 0;

	vmb_err_clear(&err);
	buf = malloc(VMB_CTL_MSG_MAX + 1);
	if (!buf) {
		reply(fd, ENOMEM, "out of memory");
		goto out;
	}
	len = recv(fd, buf, VMB_CTL_MSG_MAX + 1, MSG_TRUNC | MSG_DONTWAIT);
	if (len < 0 && (errno == EAGAIN || errno == EINTR)) {
		again = 1;
		goto out;
	}
	if (len <= 0)
		goto out;   /* gone */
	if (len > VMB_CTL_MSG_MAX) {
		reply(fd, EMSGSIZE, "request too long");
		goto out;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0) {
		reply(fd, EACCES, "cannot tell who is asking (SO_PEERCRED)");
		goto out;
	}
	who.uid = cred.uid;
	who.gid = cred.gid;
	who.pid = cred.pid;
	if (peer_groups(fd, &who.groups, &who.ngroups) < 0) {
		reply(fd, EACCES, "cannot tell the caller's groups (SO_PEERGROUPS)");
		goto out;
	}
	if (buf[len - 1] != '\0')
		buf[len++] = '\0';   /* the last field may come unterminated */
	for (char *s = buf; s < buf + len; s += strlen(s) + 1) {
		if (argc == (int)(sizeof(argv) / sizeof(argv[0]))) {
			reply(fd, E2BIG, "too many arguments");
			goto out;
		}
		argv[argc++] = s;
	}
	r = vmb_ctl_handle(c->v, c->mountpoint, &who, argv, argc, &msg, &err);
	if (r < 0)
		reply(fd, -r, err.msg[0] ? err.msg : strerror(-r));
	else
		reply(fd, 0, msg);
out:
	free(msg);
	free(buf);
	free(who.groups);
	return again;
}

/* Connections accepted whose request has not come yet: served as soon as it does,
 * in the order they come, so that a client that says nothing holds up no other
 * (it is dropped after VMB_CTL_TIMEOUT_MS); at most CTL_PENDING_MAX at once (a
 * new one pushes out the oldest). */
#define CTL_PENDING_MAX 64

struct pending {
	int fd;
	long long since_ms;   /* CLOCK_MONOTONIC */
};

static long long now_ms(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

static void *serve(void *arg)
{
	struct vmb_ctl *c = arg;
	struct pending pend[CTL_PENDING_MAX];
	struct pollfd p[2 + CTL_PENDING_MAX];
	size_t np = 0, i, k;

	for (;;) {
		long long now = now_ms();
		int fd, wait = -1;

		if (c->v->ctl_resume_at) {   /* a test's barrier: let it down in time */
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			if ((long long)ts.tv_sec >= c->v->ctl_resume_at) {
				c->v->ctl_resume_at = 0;
				vmb_barrier_resume(c->v);
				vmb_log_msg(c->v->log, "test barrier let down after its time");
			} else {
				wait = (int)(c->v->ctl_resume_at - ts.tv_sec) * 1000;
			}
		}
		/* the silent ones whose time is up go */
		for (i = k = 0; i < np; i++) {
			if (now - pend[i].since_ms >= VMB_CTL_TIMEOUT_MS)
				close(pend[i].fd);
			else
				pend[k++] = pend[i];
		}
		np = k;
		if (np) {
			long long left = pend[0].since_ms + VMB_CTL_TIMEOUT_MS - now;
			if (wait < 0 || left < wait)
				wait = (int)(left > 0 ? left : 0);
		}
		p[0] = (struct pollfd){ .fd = c->sock, .events = POLLIN };
		p[1] = (struct pollfd){ .fd = c->stopfd[0], .events = POLLIN };
		for (i = 0; i < np; i++)
			p[2 + i] = (struct pollfd){ .fd = pend[i].fd, .events = POLLIN };
		if (poll(p, 2 + np, wait) < 0) {
			if (errno == EINTR)
				continue;
			vmb_log_msg(c->v->log, "control channel stopped: poll: %s",
				    strerror(errno));
			break;
		}
		if (p[1].revents)
			break;
		/* requests that came (or clients that went), oldest first */
		for (i = k = 0; i < np; i++) {
			if (p[2 + i].revents && serve_one(c, pend[i].fd) == 0)
				close(pend[i].fd);
			else
				pend[k++] = pend[i];
		}
		np = k;
		if (!(p[0].revents & POLLIN))
			continue;
		fd = accept4(c->sock, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0)
			continue;
		if (np == CTL_PENDING_MAX) {   /* the oldest has had the most time */
			close(pend[0].fd);
			memmove(pend, pend + 1, (np - 1) * sizeof(*pend));
			np--;
		}
		pend[np].fd = fd;
		pend[np].since_ms = now_ms();
		np++;
	}
	for (i = 0; i < np; i++)
		close(pend[i].fd);
	return NULL;
}

int vmb_ctl_start(struct vmb_ctl **out, struct vmb_vfs *v, const char *mountpoint,
		  const char *devname, struct vmb_err *err)
{
	struct vmb_ctl *c;
	int r;

	*out = NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return vmb_err_set(err, ENOMEM, "out of memory");
	c->v = v;
	c->runfd = c->sock = c->stopfd[0] = c->stopfd[1] = -1;
	c->mountpoint = strdup(mountpoint);
	if (!c->mountpoint) {
		r = vmb_err_set(err, ENOMEM, "out of memory");
		goto fail;
	}
	if (!devname[0] || strchr(devname, '/') ||
	    snprintf(c->name, sizeof(c->name), VMB_CTL_PREFIX "%s", devname) >=
	    (int)sizeof(c->name)) {
		r = vmb_err_set(err, EINVAL, "bad device name '%s' for the control socket",
				devname);
		goto fail;
	}
	r = open_run_dir(c, err);
	if (r < 0)
		goto fail;
	sweep(c);
	r = make_socket(c, err);
	if (r < 0)
		goto fail;
	snprintf(v->ctl_self, sizeof(v->ctl_self), "%s", c->name);
	if (pipe2(c->stopfd, O_CLOEXEC) < 0) {
		r = vmb_err_sys(err, errno, "cannot start the control channel");
		goto fail;
	}
	r = -pthread_create(&c->thread, NULL, serve, c);
	if (r < 0) {
		vmb_err_set(err, -r, "cannot start the control channel's thread: %s",
			    strerror(-r));
		goto fail;
	}
	c->started = 1;
	*out = c;
	return 0;
fail:
	vmb_ctl_stop(c);
	return r;
}

void vmb_ctl_stop(struct vmb_ctl *c)
{
	struct stat st;

	if (!c)
		return;
	if (c->started) {
		char b = 1;
		if (write(c->stopfd[1], &b, 1) != 1)
			vmb_log_msg(c->v->log, "cannot stop the control channel: %s",
				    strerror(errno));
		pthread_join(c->thread, NULL);
		c->v->ctl_resume_at = 0;
		vmb_barrier_resume(c->v);   /* no barrier outlives the channel */
	}
	if (c->sock >= 0) {
		close(c->sock);
		/* Only our own socket (a new daemon on the same device may have replaced
		 * a name it found stale). */
		if (c->runfd >= 0 && c->sockst.st_ino &&
		    fstatat(c->runfd, c->name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    st.st_ino == c->sockst.st_ino && st.st_dev == c->sockst.st_dev)
			unlinkat(c->runfd, c->name, 0);
	}
	if (c->runfd >= 0)
		close(c->runfd);
	if (c->stopfd[0] >= 0)
		close(c->stopfd[0]);
	if (c->stopfd[1] >= 0)
		close(c->stopfd[1]);
	free(c->mountpoint);
	free(c);
}
