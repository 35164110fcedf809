/* holders.c - the lock holder registry (see holders.h). */
#include "config.h"
#include "lock/holders.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

pid_t vmb_tgid_of(pid_t tid)
{
	char path[64], line[128];
	long tgid = 0;
	FILE *f;

	if (tid <= 0)
		return tid;
	snprintf(path, sizeof(path), "/proc/%ld/status", (long)tid);
	f = fopen(path, "re");
	if (!f)
		return tid;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Tgid: %ld", &tgid) == 1)
			break;
	fclose(f);
	return tgid > 0 ? (pid_t)tgid : tid;
}

void vmb_comm_of(pid_t pid, char comm[VMB_COMM_MAX])
{
	char path[64];
	ssize_t n;
	int fd;

	snprintf(comm, VMB_COMM_MAX, "?");
	snprintf(path, sizeof(path), "/proc/%ld/comm", (long)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	n = read(fd, comm, VMB_COMM_MAX - 1);
	close(fd);
	if (n <= 0) {
		snprintf(comm, VMB_COMM_MAX, "?");
		return;
	}
	comm[n] = '\0';
	comm[strcspn(comm, "\n")] = '\0';
	for (char *p = comm; *p; p++)   /* one word, for the registry's line format */
		if (*p == ' ' || *p == '\t')
			*p = '_';
}

void vmb_holder_describe(const struct vmb_holder *h, char *buf, size_t size)
{
	snprintf(buf, size, "pid %ld (%s)", (long)h->pid, h->comm);
}

static int open_dir(int metafd, int create)
{
	int fd = openat(metafd, VMB_HOLDERS_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0 && errno == ENOENT && create) {
		if (mkdirat(metafd, VMB_HOLDERS_DIR, 0700) < 0 && errno != EEXIST)
			return -1;
		fd = openat(metafd, VMB_HOLDERS_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	return fd;
}

static void put_line(FILE *f, const struct vmb_holder *h)
{
	if (h->end == UINT64_MAX)
		fprintf(f, "%ld %c %" PRIu64 " eof %s\n", (long)h->pid, h->type, h->start,
			h->comm);
	else
		fprintf(f, "%ld %c %" PRIu64 " %" PRIu64 " %s\n", (long)h->pid, h->type,
			h->start, h->end, h->comm);
}

int vmb_holders_publish(int metafd, uint64_t ino, const struct vmb_holder *list, size_t n,
			struct vmb_err *err)
{
	char name[64], tmp[80];
	FILE *f = NULL;
	int dfd, fd, r = 0;
	size_t i;

	if (metafd < 0)
		return 0;   /* no registry (vmb_lockset_init) */
	snprintf(name, sizeof(name), "%016" PRIx64 ".%ld", ino, (long)getpid());
	dfd = open_dir(metafd, n > 0);
	if (dfd < 0) {
		if (n == 0 && errno == ENOENT)
			return 0;
		return vmb_err_sys(err, errno, "cannot open the lock holder registry");
	}
	if (n == 0) {
		if (unlinkat(dfd, name, 0) < 0 && errno != ENOENT)
			r = vmb_err_sys(err, errno, "cannot remove lock holder entry '%s'", name);
		goto out;
	}
	snprintf(tmp, sizeof(tmp), ".tmp.%s", name);
	fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 || !(f = fdopen(fd, "w"))) {
		r = vmb_err_sys(err, errno, "cannot write lock holder entry '%s'", name);
		if (fd >= 0)
			close(fd);
		goto out;
	}
	for (i = 0; i < n; i++)
		put_line(f, &list[i]);
	if (fclose(f) != 0) {
		r = vmb_err_sys(err, errno, "cannot write lock holder entry '%s'", name);
		unlinkat(dfd, tmp, 0);
		goto out;
	}
	if (renameat(dfd, tmp, dfd, name) < 0) {
		r = vmb_err_sys(err, errno, "cannot write lock holder entry '%s'", name);
		unlinkat(dfd, tmp, 0);
	}
out:
	close(dfd);
	return r;
}

static int alive(pid_t pid)
{
	return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

int vmb_holders_parse(const char *line, struct vmb_holder *h)
{
	char endtok[32];
	long pid;

	memset(h, 0, sizeof(*h));
	if (sscanf(line, "%ld %c %" SCNu64 " %31s %63s", &pid, &h->type, &h->start, endtok,
		   h->comm) != 5)
		return -1;
	h->pid = (pid_t)pid;
	if (!strcmp(endtok, "eof"))
		h->end = UINT64_MAX;
	else if (sscanf(endtok, "%" SCNu64, &h->end) != 1)
		return -1;
	return 0;
}

int vmb_holders_find(int metafd, uint64_t ino, uint64_t start, uint64_t end,
		     int exclude_self, struct vmb_holder *h)
{
	char prefix[32], line[256];
	struct dirent *de;
	int dfd, found = 0;
	size_t plen;
	DIR *d;

	if (metafd < 0)
		return 0;
	dfd = open_dir(metafd, 0);
	if (dfd < 0)
		return 0;
	d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return 0;
	}
	plen = (size_t)snprintf(prefix, sizeof(prefix), "%016" PRIx64 ".", ino);
	while (!found && (de = readdir(d))) {
		long daemon;
		FILE *f;
		int fd;

		if (strncmp(de->d_name, prefix, plen) ||
		    sscanf(de->d_name + plen, "%ld", &daemon) != 1)
			continue;
		if ((exclude_self && daemon == (long)getpid()) || !alive((pid_t)daemon))
			continue;
		fd = openat(dfd, de->d_name, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || !(f = fdopen(fd, "r"))) {
			if (fd >= 0)
				close(fd);
			continue;
		}
		while (fgets(line, sizeof(line), f)) {
			struct vmb_holder cand;
			if (vmb_holders_parse(line, &cand) < 0)
				continue;
			if (end >= start && (cand.end < start || cand.start > end))
				continue;
			*h = cand;
			found = 1;
			break;
		}
		fclose(f);
	}
	closedir(d);
	return found;
}

#define BUNDLE_PREFIX "bundle."

/* Remove the entries of dead daemons from one bundle's directory (and it, if empty). */
static void sweep_bundle(int hfd, const char *name)
{
	struct dirent *de;
	DIR *d;
	int fd = openat(hfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return;
	}
	while ((de = readdir(d))) {
		const char *num = de->d_name;
		long daemon;
		char *end;

		if (!strncmp(num, ".tmp.", 5))   /* left by a daemon killed while writing */
			num += 5;
		else if (num[0] == '.')
			continue;
		daemon = strtol(num, &end, 10);
		if (*num && *end == '\0' && !alive((pid_t)daemon))
			unlinkat(dirfd(d), de->d_name, 0);
	}
	closedir(d);
	unlinkat(hfd, name, AT_REMOVEDIR);   /* fails (ENOTEMPTY) while in use: fine */
}

int vmb_holders_bundle_set(int metafd, uint64_t bundle_ino, const struct vmb_holder *h,
			   const char *path, struct vmb_err *err)
{
	char dir[64], name[32], tmp[48];
	int hfd, bfd = -1, fd = -1, r = 0, tries;
	FILE *f = NULL;

	snprintf(dir, sizeof(dir), BUNDLE_PREFIX "%016" PRIx64, bundle_ino);
	snprintf(name, sizeof(name), "%ld", (long)getpid());
	hfd = open_dir(metafd, h != NULL);
	if (hfd < 0) {
		if (!h && errno == ENOENT)
			return 0;
		return vmb_err_sys(err, errno, "cannot open the lock holder registry");
	}
	if (!h) {
		bfd = openat(hfd, dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (bfd >= 0) {
			if (unlinkat(bfd, name, 0) < 0 && errno != ENOENT)
				r = vmb_err_sys(err, errno, "cannot remove lock holder entry "
						"'%s/%s'", dir, name);
			unlinkat(hfd, dir, AT_REMOVEDIR);   /* another daemon's entry: stays */
		}
		goto out;
	}
	/* Another daemon may remove the (empty) directory between mkdir and create. */
	for (tries = 0; tries < 3; tries++) {
		if (mkdirat(hfd, dir, 0700) < 0 && errno != EEXIST)
			break;
		bfd = openat(hfd, dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (bfd < 0)
			continue;
		snprintf(tmp, sizeof(tmp), ".tmp.%s", name);
		fd = openat(bfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd >= 0)
			break;
		close(bfd);
		bfd = -1;
	}
	if (bfd < 0 || fd < 0 || !(f = fdopen(fd, "w"))) {
		r = vmb_err_sys(err, errno ? errno : EIO, "cannot write lock holder entry '%s'",
				dir);
		if (bfd >= 0 && fd >= 0)
			close(fd);
		goto out;
	}
	put_line(f, h);
	fprintf(f, "%s\n", path ? path : "?");
	if (fclose(f) != 0 || renameat(bfd, tmp, bfd, name) < 0) {
		r = vmb_err_sys(err, errno, "cannot write lock holder entry '%s/%s'", dir, name);
		unlinkat(bfd, tmp, 0);
	}
out:
	if (bfd >= 0)
		close(bfd);
	close(hfd);
	return r;
}

int vmb_holders_bundle_find(int metafd, uint64_t bundle_ino, int exclude_self,
			    struct vmb_holder *h, char *path, size_t pathsz)
{
	char dir[64], line[256], pline[4096 + 2];
	struct dirent *de;
	int hfd, fd, found = 0;
	DIR *d;

	snprintf(dir, sizeof(dir), "%s/" BUNDLE_PREFIX "%016" PRIx64, VMB_HOLDERS_DIR,
		 bundle_ino);
	hfd = openat(metafd, dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (hfd < 0)
		return 0;
	d = fdopendir(hfd);
	if (!d) {
		close(hfd);
		return 0;
	}
	while (!found && (de = readdir(d))) {
		long daemon;
		char *end;
		FILE *f;

		if (de->d_name[0] == '.')
			continue;
		daemon = strtol(de->d_name, &end, 10);
		if (*end || (exclude_self && daemon == (long)getpid()) || !alive((pid_t)daemon))
			continue;
		fd = openat(dirfd(d), de->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0 || !(f = fdopen(fd, "r"))) {
			if (fd >= 0)
				close(fd);
			continue;
		}
		if (fgets(line, sizeof(line), f) && vmb_holders_parse(line, h) == 0) {
			found = 1;
			if (path && pathsz) {
				if (!fgets(pline, sizeof(pline), f))
					snprintf(pline, sizeof(pline), "?");
				pline[strcspn(pline, "\n")] = '\0';
				snprintf(path, pathsz, "%s", pline);
			}
		}
		fclose(f);
	}
	closedir(d);
	return found;
}

void vmb_holders_sweep(int metafd)
{
	struct dirent *de;
	int dfd;
	DIR *d;

	dfd = open_dir(metafd, 0);
	if (dfd < 0)
		return;
	d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return;
	}
	while ((de = readdir(d))) {
		const char *dot = strrchr(de->d_name, '.');
		long daemon;

		if (!strncmp(de->d_name, BUNDLE_PREFIX, strlen(BUNDLE_PREFIX))) {
			sweep_bundle(dirfd(d), de->d_name);
			continue;
		}
		if (de->d_name[0] == '.' || !dot || sscanf(dot + 1, "%ld", &daemon) != 1)
			continue;
		if (!alive((pid_t)daemon))
			unlinkat(dirfd(d), de->d_name, 0);
	}
	closedir(d);
}
