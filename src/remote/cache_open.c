/* cache_open.c - the cache's layout: default directory, open (create, version,
 * modes, writability), close, small file helpers (see cache.h). */
#include "config.h"
#include "remote/cache_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include "base/fdio.h"

/* What a cache's top level may hold (lost+found: a cache on a file system of its own). */
const char *const vmb_cache_known_top[] = {
	"version", "chunks", "tmp", "lock", "pins", "urls", "mnt", "meta", "lost+found", NULL,
};

void vmb_cache_opts_default(struct vmb_cache_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->min_free_bytes = VMB_CACHE_MIN_FREE_DEFAULT;
	o->fill_wait_ms = VMB_CACHE_FILL_WAIT_MS;
}

int vmb_cache_default_dir(char *buf, size_t size, struct vmb_err *err)
{
	const char *x = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	int n;

	if (geteuid() == 0)
		n = snprintf(buf, size, "/var/cache/vmbundlefs");
	else if (x && x[0] == '/')
		n = snprintf(buf, size, "%s/vmbundlefs", x);
	else {
		if (!home || home[0] != '/') {
			struct passwd *pw = getpwuid(geteuid());

			if (!pw || !pw->pw_dir || pw->pw_dir[0] != '/')
				return vmb_err_set(err, ENOENT, "no default cache directory: "
						   "HOME is not set (use -o cache=DIR)");
			home = pw->pw_dir;
		}
		n = snprintf(buf, size, "%s/.cache/vmbundlefs", home);
	}
	if (n < 0 || (size_t)n >= size)
		return vmb_err_set(err, ENAMETOOLONG, "default cache directory: path too long");
	return 0;
}

const char *vmb_cache_path(const struct vmb_cache *c)
{
	return c->path;
}

void vmb_cache_rel(const uint8_t d[32], char rel[VMB_CACHE_REL])
{
	char hex[65];

	vmb_sha256_hex(d, hex);
	snprintf(rel, VMB_CACHE_REL, "%.2s/%s", hex, hex);
}

int vmb_cache_unhex(const char *s, uint8_t d[32])
{
	for (int i = 0; i < 64; i++) {
		int v;

		if (s[i] >= '0' && s[i] <= '9')
			v = s[i] - '0';
		else if (s[i] >= 'a' && s[i] <= 'f')
			v = s[i] - 'a' + 10;
		else
			return -1;
		if (i & 1)
			d[i / 2] |= (uint8_t)v;
		else
			d[i / 2] = (uint8_t)(v << 4);
	}
	return 0;
}

/* Whether this process is in group gid (its effective group or a supplementary one). */
static int in_group(gid_t gid)
{
	gid_t *g;
	int n, yes = getegid() == gid;

	if (yes || (n = getgroups(0, NULL)) <= 0 || !(g = calloc((size_t)n, sizeof(*g))))
		return yes;
	n = getgroups(n, g);
	for (int i = 0; i < n && !yes; i++)
		yes = g[i] == gid;
	free(g);
	return yes;
}

int vmb_cache_trusted(const struct vmb_cache *c, const struct stat *st)
{
	int grp = c->shared && st->st_gid == c->gid;

	if ((st->st_mode & 0002) || ((st->st_mode & 0020) && !grp))
		return 0;
	return st->st_uid == 0 || st->st_uid == geteuid() || st->st_uid == c->owner || grp;
}

/* A directory of the cache's layout, name in at (shown: its path in messages, with
 * its '/'): absent, or a real directory (not a symbolic link, which fills would
 * write through and eviction would not follow) that vmb_cache_trusted accepts. One
 * of this process's that is group-writable in a cache that is not group-shared (a
 * umask of 002 made it) is narrowed instead. 0 or -errno with err set. */
static int check_dir(struct vmb_cache *c, int at, const char *name, const char *shown,
		     struct vmb_err *err)
{
	struct stat st;
	unsigned mode;

	if (fstatat(at, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			return 0;
		return vmb_err_sys(err, errno, "cache '%s': cannot stat %s", c->path, shown);
	}
	mode = (unsigned)(st.st_mode & 07777);
	if (!S_ISDIR(st.st_mode))
		return vmb_err_set(err, ENOTDIR, "cache '%s': %s is not a directory (%s): "
				   "fills would write through it and eviction skips it; "
				   "remove it (fsck --cache=DIR does)", c->path, shown,
				   S_ISLNK(st.st_mode) ? "a symbolic link" : "another file");
	if (st.st_mode & 0002)
		return vmb_err_set(err, EPERM, "cache '%s' is writable by everyone (%s: mode "
				   "%04o): anyone could plant wrong bytes in it; chmod o-w it or "
				   "choose another", c->path, shown, mode);
	if ((st.st_mode & 0020) && !(c->shared && st.st_gid == c->gid)) {
		if (c->shared || st.st_uid != geteuid() ||
		    fchmodat(at, name, st.st_mode & 07757, 0) < 0)
			return vmb_err_set(err, EPERM, "cache '%s': %s is writable by its group "
					   "(gid %u, mode %04o), %s: its members could plant "
					   "wrong bytes in it; chmod g-w it or choose another",
					   c->path, shown, (unsigned)st.st_gid, mode,
					   c->shared ? "not the cache's" :
					   "in a cache that is not group-shared");
		st.st_mode &= ~(mode_t)0020;
	}
	if (!vmb_cache_trusted(c, &st))
		return vmb_err_set(err, EPERM, "cache '%s': %s is owned by uid %u (mode %04o), "
				   "not by this process (uid %u), the cache's owner or root: "
				   "that user decides the bytes the cache serves; chown it or "
				   "choose another cache", c->path, shown, (unsigned)st.st_uid,
				   mode, (unsigned)geteuid());
	return 0;
}

/* The rest of the layout's directories: meta/, mnt/ and the 256 chunks/<aa> and
 * meta/<aa> (check_dir). */
static int check_layout(struct vmb_cache *c, struct vmb_err *err)
{
	char aa[3], shown[16];
	int r, mfd;

	if ((r = check_dir(c, c->dirfd, "meta", "meta/", err)) < 0 ||
	    (r = check_dir(c, c->dirfd, "mnt", "mnt/", err)) < 0)
		return r;
	for (int d = 0; d < 256; d++) {
		snprintf(aa, sizeof(aa), "%02x", d);
		snprintf(shown, sizeof(shown), "chunks/%s/", aa);
		r = check_dir(c, c->chunksfd, aa, shown, err);
		if (r == -ENOTDIR && c->opts.check)
			r = 0;   /* fsck's: a stray file it reports */
		if (r < 0)
			return r;
	}
	mfd = openat(c->dirfd, "meta", O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (mfd < 0)
		return errno == ENOENT ? 0 : vmb_err_sys(err, errno, "cache '%s': cannot open "
							 "meta/", c->path);
	for (int d = 0; d < 256 && r == 0; d++) {
		snprintf(aa, sizeof(aa), "%02x", d);
		snprintf(shown, sizeof(shown), "meta/%s/", aa);
		r = check_dir(c, mfd, aa, shown, err);
	}
	close(mfd);
	return r;
}

int vmb_cache_meta_dir(struct vmb_cache *c, const uint8_t digest[32], struct vmb_err *err)
{
	char hex[VMB_SHA256_HEX], aa[3];
	int r = vmb_cache_mkdir(c, c->dirfd, "meta"), mfd;

	if (r == 1)
		r = vmb_cache_fsync_dir(c->dirfd, NULL);
	if (r < 0)
		return vmb_err_sys(err, -r, "cache '%s': cannot create meta/", c->path);
	mfd = openat(c->dirfd, "meta", O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (mfd < 0)
		return vmb_err_sys(err, errno, "cache '%s': cannot open meta/", c->path);
	vmb_sha256_hex(digest, hex);
	snprintf(aa, sizeof(aa), "%.2s", hex);
	r = vmb_cache_mkdir(c, mfd, aa);
	if (r == 1)
		r = vmb_cache_fsync_dir(mfd, NULL);
	close(mfd);
	if (r < 0)
		return vmb_err_sys(err, -r, "cache '%s': cannot create meta/%s/", c->path, aa);
	return 0;
}

/* vmb_cache_mkdir with mode. */
static int mkdir_mode(int at, const char *name, mode_t mode)
{
	if (mkdirat(at, name, mode) == 0) {
		/* the umask may have taken bits: set them (and setgid) as decided */
		if (fchmodat(at, name, mode, 0) < 0)
			return -errno;
		return 1;
	}
	return errno == EEXIST ? 0 : -errno;
}

int vmb_cache_mkdir(struct vmb_cache *c, int at, const char *name)
{
	return mkdir_mode(at, name, c->dmode);
}

int vmb_cache_fsync_dir(int at, const char *name)
{
	int fd = name ? openat(at, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : at;
	int r = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		r = -errno;
	if (name)
		close(fd);
	return r;
}

void vmb_cache_tmp_name(const char *kind, char name[128], int tries)
{
	uint64_t rnd = 0;

	if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd))
		rnd ^= (uint64_t)(uintptr_t)&rnd ^ (uint64_t)tries << 32;
	snprintf(name, 128, "%s.%ld.%016llx", kind, (long)getpid(), (unsigned long long)rnd);
}

int vmb_cache_tmp_create(struct vmb_cache *c, const char *kind, char name[128],
			 struct vmb_err *err)
{
	for (int tries = 0; tries < 16; tries++) {
		int fd;

		vmb_cache_tmp_name(kind, name, tries);
		fd = openat(c->tmpfd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, c->fmode);
		if (fd >= 0) {
			if (fchmod(fd, c->fmode) < 0) {
				int e = errno;

				close(fd);
				unlinkat(c->tmpfd, name, 0);
				return vmb_err_sys(err, e, "cache '%s': cannot set the mode of "
						   "tmp/%s", c->path, name);
			}
			return fd;
		}
		if (errno != EEXIST)
			return vmb_err_sys(err, errno, "cache '%s': cannot create a temporary "
					   "in tmp/", c->path);
	}
	return vmb_err_set(err, EEXIST, "cache '%s': cannot create a temporary in tmp/",
			   c->path);
}

/* An unnamed temporary in tmp/ (O_TMPFILE), or -1 with errno set. */
static int open_anon(struct vmb_cache *c)
{
	return openat(c->tmpfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, c->fmode);
}

int vmb_cache_tmp_object(struct vmb_cache *c, const char *hex, char name[128],
			 struct vmb_err *err)
{
	int fd;

	if (!c->anon_tmp)
		return vmb_cache_tmp_create(c, hex, name, err);
	name[0] = '\0';
	fd = open_anon(c);
	if (fd < 0)
		return vmb_err_sys(err, errno, "cache '%s': cannot create an unnamed temporary "
				   "in tmp/", c->path);
	if (fchmod(fd, c->fmode) < 0) {
		int e = errno;

		close(fd);
		return vmb_err_sys(err, e, "cache '%s': cannot set the mode of an unnamed "
				   "temporary", c->path);
	}
	return fd;
}

int vmb_cache_tmp_write(struct vmb_cache *c, const char *hex, const void *buf, size_t len,
			char name[128], struct vmb_err *err)
{
	int fd = vmb_cache_tmp_object(c, hex, name, err), r;

	if (fd < 0) {
		name[0] = '\0';
		return fd;
	}
	r = vmb_pwrite_full(fd, buf, len, 0, NULL);
	if (r == 0)
		return fd;
	vmb_err_sys(err, -r, "cache '%s': cannot write %s%s", c->path,
		    name[0] ? "tmp/" : "an unnamed temporary", name);
	close(fd);
	if (name[0])
		unlinkat(c->tmpfd, name, 0);
	name[0] = '\0';
	return r;
}

int vmb_cache_link_anon(int fd, int dfd, const char *name)
{
	char path[40];

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	return linkat(AT_FDCWD, path, dfd, name, AT_SYMLINK_FOLLOW) < 0 ? -errno : 0;
}

/* Whether this file system makes unnamed temporaries in tmp/ and this process can
 * link them (O_TMPFILE support, /proc mounted): one tried and linked as
 * tmp/probe.<pid>.<rand>, then removed. Without it, fills use named temporaries. */
static int probe_anon(struct vmb_cache *c)
{
	char name[128];
	int fd, ok;

	fd = open_anon(c);
	if (fd < 0)
		return 0;
	vmb_cache_tmp_name("probe", name, 0);
	ok = vmb_cache_link_anon(fd, c->tmpfd, name) == 0;
	if (ok)
		unlinkat(c->tmpfd, name, 0);
	close(fd);
	return ok;
}

int vmb_cache_write_atomic(struct vmb_cache *c, const char *kind, int dfd, const char *name,
			   const void *buf, size_t len, struct vmb_err *err)
{
	char tmp[128];
	int fd = vmb_cache_tmp_create(c, kind, tmp, err), r;

	if (fd < 0)
		return fd;
	r = vmb_pwrite_full(fd, buf, len, 0, NULL);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	close(fd);
	if (r < 0) {
		vmb_err_sys(err, -r, "cache '%s': cannot write tmp/%s", c->path, tmp);
		goto fail;
	}
	if (renameat(c->tmpfd, tmp, dfd, name) < 0) {
		r = vmb_err_sys(err, errno, "cache '%s': cannot rename tmp/%s to '%s'",
				c->path, tmp, name);
		goto fail;
	}
	r = vmb_cache_fsync_dir(dfd, NULL);
	if (r < 0)
		return vmb_err_sys(err, -r, "cache '%s': cannot fsync a directory", c->path);
	return 0;
fail:
	unlinkat(c->tmpfd, tmp, 0);
	return r;
}

/* The version file: check it, or create it (temp + link, so that two processes
 * creating one cache agree) in a directory that holds nothing but ours. */
static int check_version(struct vmb_cache *c, struct vmb_err *err)
{
	char buf[64], tmp[64];
	ssize_t n;
	int fd, r;

	for (int tries = 0; tries < 2; tries++) {
		fd = openat(c->dirfd, "version", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd >= 0) {
			n = vmb_read_full(fd, buf, sizeof(buf) - 1);
			close(fd);
			if (n < 0)
				return vmb_err_sys(err, (int)-n, "cache '%s': cannot read its "
						   "version file", c->path);
			buf[n] = '\0';
			if (strcmp(buf, VMB_CACHE_VERSION) != 0)
				return vmb_err_set(err, EINVAL, "cache '%s': unknown version "
						   "'%.*s' (this vmbundlefs knows '%.*s')", c->path,
						   (int)strcspn(buf, "\n"), buf,
						   (int)strlen(VMB_CACHE_VERSION) - 1, VMB_CACHE_VERSION);
			return 0;
		}
		if (errno != ENOENT)
			return vmb_err_sys(err, errno, "cache '%s': cannot open its version file",
					   c->path);
		if (tries)
			break;
		/* absent: the directory must hold nothing but what a cache holds */
		{
			DIR *d;
			struct dirent *e;
			int dfd = openat(c->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

			if (dfd < 0 || !(d = fdopendir(dfd))) {
				if (dfd >= 0)
					close(dfd);
				return vmb_err_sys(err, errno, "cache '%s': cannot list it", c->path);
			}
			while ((e = readdir(d))) {
				int ok = !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
					 !strncmp(e->d_name, ".version.", 9);

				for (const char *const *k = vmb_cache_known_top; !ok && *k; k++)
					ok = !strcmp(e->d_name, *k);
				if (!ok) {
					vmb_err_set(err, ENOTEMPTY, "'%s' is not a vmbundlefs cache "
						    "(no version file) and holds other files ('%s'): "
						    "choose an empty or new directory", c->path,
						    e->d_name);
					closedir(d);
					return -ENOTEMPTY;
				}
			}
			closedir(d);
		}
		snprintf(tmp, sizeof(tmp), ".version.%ld.%lx", (long)getpid(),
			 (unsigned long)(uintptr_t)c);
		fd = openat(c->dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, c->fmode);
		if (fd < 0)
			return vmb_err_sys(err, errno, "cache '%s': cannot create its version file",
					   c->path);
		r = vmb_pwrite_full(fd, VMB_CACHE_VERSION, strlen(VMB_CACHE_VERSION), 0, NULL);
		if (r == 0 && fchmod(fd, c->fmode) < 0)
			r = -errno;
		if (r == 0 && fsync(fd) < 0)
			r = -errno;
		close(fd);
		if (r == 0 && linkat(c->dirfd, tmp, c->dirfd, "version", 0) < 0 &&
		    errno != EEXIST)
			r = -errno;
		unlinkat(c->dirfd, tmp, 0);
		if (r < 0)
			return vmb_err_sys(err, -r, "cache '%s': cannot write its version file",
					   c->path);
		vmb_cache_fsync_dir(c->dirfd, NULL);
	}
	return vmb_err_set(err, EIO, "cache '%s': its version file vanished", c->path);
}

/* Open (making it when absent) the cache's subdirectory name, a directory check_dir
 * accepts; *made (may be NULL): it was made. */
static int open_sub(struct vmb_cache *c, const char *name, int *fd, int *made,
		    struct vmb_err *err)
{
	/* lock/: nothing for others (c->ldmode; lock_modes narrows an older one) */
	int r = mkdir_mode(c->dirfd, name, strcmp(name, "lock") ? c->dmode : c->ldmode);
	char shown[16];
	struct stat st;

	if (made)
		*made = r == 1;
	if (r == 1)   /* its entry durable before anything in it counts as durable */
		r = vmb_cache_fsync_dir(c->dirfd, NULL);
	if (r < 0)
		return vmb_err_sys(err, -r, "cache '%s': cannot create %s/", c->path, name);
	snprintf(shown, sizeof(shown), "%s/", name);
	if ((r = check_dir(c, c->dirfd, name, shown, err)) < 0)
		return r;
	*fd = openat(c->dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (*fd < 0)
		return vmb_err_sys(err, errno, "cache '%s': cannot open %s/", c->path, name);
	if (faccessat(*fd, ".", W_OK | X_OK, AT_EACCESS) < 0) {
		int e = errno;

		fstat(*fd, &st);
		return vmb_err_sys(err, e, "cache '%s' is not writable by this process "
				   "(%s/: owner uid %u, mode %04o; this process runs as uid %u): "
				   "choose another with -o cache=DIR", c->path, name,
				   (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777),
				   (unsigned)geteuid());
	}
	return 0;
}

/* A new chunks/: its 256 subdirectories chunks/<aa> made now, with one fsync of
 * chunks/ for them all, rather than one by one by the flusher as the first objects
 * of each arrive (a mkdir and two directory fsyncs on the way of a first VM boot's
 * fills). Best effort: one not made here is made when first needed, as in a cache
 * an older vmbundlefs made. */
static void make_fanout(struct vmb_cache *c)
{
	char aa[3];
	int any = 0;

	for (int d = 0; d < 256; d++) {
		snprintf(aa, sizeof(aa), "%02x", d);
		if (vmb_cache_mkdir(c, c->chunksfd, aa) == 1)
			any = 1;
	}
	if (any)
		vmb_cache_fsync_dir(c->chunksfd, NULL);
}

/* How far fills may run ahead of the flusher: VMB_CACHE_PEND_BYTES, at most an
 * eighth of the RAM, at least 32 MiB. */
static uint64_t pend_max(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
	uint64_t m = VMB_CACHE_PEND_BYTES;

	if (pages > 0 && psize > 0 && (uint64_t)pages * (uint64_t)psize / 8 < m)
		m = (uint64_t)pages * (uint64_t)psize / 8;
	return m < (32u << 20) ? (32u << 20) : m;
}

/* Pending unnamed temporaries that keep their descriptor: a quarter of the soft
 * descriptor limit as it is at the open, between VMB_CACHE_PEND_FDS and
 * VMB_CACHE_PEND_FDS_MAX (a mount raises its limit first: fs/fuse_mount.c). */
static unsigned pend_fds_max(void)
{
	struct rlimit rl;
	rlim_t n = VMB_CACHE_PEND_FDS;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		n = rl.rlim_cur == RLIM_INFINITY ? VMB_CACHE_PEND_FDS_MAX : rl.rlim_cur / 4;
	if (n < VMB_CACHE_PEND_FDS)
		n = VMB_CACHE_PEND_FDS;
	return n > VMB_CACHE_PEND_FDS_MAX ? VMB_CACHE_PEND_FDS_MAX : (unsigned)n;
}

int vmb_cache_open(const char *dir, const struct vmb_cache_opts *opts,
		   struct vmb_cache **out, struct vmb_err *err)
{
	struct vmb_cache *c;
	struct stat st;
	int r, made = 0;

	*out = NULL;
	if (!dir || !*dir)
		return vmb_err_set(err, EINVAL, "no cache directory given");
	c = calloc(1, sizeof(*c));
	if (!c || !(c->path = strdup(dir))) {
		free(c);
		return vmb_err_set(err, ENOMEM, "cache '%s': out of memory", dir);
	}
	c->dirfd = c->chunksfd = c->tmpfd = c->lockfd = c->pinsfd = c->urlsfd = -1;
	c->fill_lfd = -1;
	if (opts)
		c->opts = *opts;
	else
		vmb_cache_opts_default(&c->opts);
	pthread_mutex_init(&c->mu, NULL);
	pthread_mutex_init(&c->ev_mu, NULL);
	pthread_cond_init(&c->ev_cv, NULL);
	pthread_mutex_init(&c->fl_mu, NULL);
	pthread_cond_init(&c->fl_cv, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&c->fl_wake, &ca);
		pthread_condattr_destroy(&ca);
	}

	c->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (c->dirfd < 0 && errno == ENOENT) {
		/* a new cache: 0755 whatever the umask (its parents as mkdir -p makes
		 * them, each durable in its own parent: best effort, as below) */
		r = vmb_mkdir_parents(dir, 0, NULL);
		if (r == 0 && mkdir(dir, 0755) == 0) {
			if (chmod(dir, 0755) < 0)
				r = -errno;
			else
				(void)vmb_fsync_parent(dir);   /* best effort: a
								 * parent we may
								 * not read */
		} else if (r == 0 && errno != EEXIST)
			r = -errno;
		if (r < 0) {
			r = vmb_err_sys(err, -r, "cannot create cache directory '%s'", dir);
			goto fail;
		}
	}
	if (c->dirfd < 0)
		c->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (c->dirfd < 0 || fstat(c->dirfd, &st) < 0) {
		r = vmb_err_sys(err, errno, "cannot open cache directory '%s'", dir);
		goto fail;
	}
	/* sticky or not: in a sticky one, anyone may make the cache's parts (a
	 * version file, chunks/ and the objects in it) before its first user does */
	if (st.st_mode & 0002) {
		r = vmb_err_set(err, EPERM, "cache '%s' is writable by everyone (mode %04o): "
				"anyone could plant wrong bytes in it; chmod o-w it or choose "
				"another", dir, (unsigned)(st.st_mode & 07777));
		goto fail;
	}
	c->owner = st.st_uid;
	c->gid = st.st_gid;
	c->shared = (st.st_mode & 0020) != 0;
	c->dmode = st.st_mode & 02775;
	c->fmode = 0644 | (st.st_mode & 0020);
	c->ldmode = c->shared ? (c->dmode & 02770) : 0700;
	c->lmode = c->shared ? 0660 : 0600;
	c->pend_max = pend_max();
	c->quiet_ms = VMB_CACHE_QUIET_MS;
	c->defer_max = VMB_CACHE_DEFER_BYTES < c->pend_max ? VMB_CACHE_DEFER_BYTES : c->pend_max;
	c->pend_fds_max = pend_fds_max();
	if (faccessat(c->dirfd, ".", W_OK | X_OK, AT_EACCESS) < 0) {
		/* a cache we may not write: say so before anything else */
		int e = errno;

		r = vmb_err_sys(err, e, "cache '%s' is not writable by this process (owner "
				"uid %u, mode %04o; this process runs as uid %u): choose another "
				"with -o cache=DIR", dir, (unsigned)st.st_uid,
				(unsigned)(st.st_mode & 07777), (unsigned)geteuid());
		goto fail;
	}
	/* owned by another user (a directory made first by someone else, under /tmp
	 * say): that user decides the bytes it serves, whoever is trusted below. A
	 * group-shared cache (group-writable) may be another member's. */
	if (st.st_uid != 0 && st.st_uid != geteuid() &&
	    !((st.st_mode & 0020) && in_group(st.st_gid))) {
		r = vmb_err_set(err, EPERM, "cache '%s' is owned by uid %u (mode %04o), not by "
				"this process (uid %u) or root: that user decides the bytes it "
				"serves; chown it or choose another (a cache shared by a group: "
				"mode 2775, this process in its group)", dir, (unsigned)st.st_uid,
				(unsigned)(st.st_mode & 07777), (unsigned)geteuid());
		goto fail;
	}
	r = check_version(c, err);
	if (r < 0)
		goto fail;
	if ((r = open_sub(c, "chunks", &c->chunksfd, &made, err)) < 0)
		goto fail;
	if (made)
		make_fanout(c);
	if ((r = open_sub(c, "tmp", &c->tmpfd, NULL, err)) < 0 ||
	    (r = open_sub(c, "lock", &c->lockfd, NULL, err)) < 0 ||
	    (r = open_sub(c, "pins", &c->pinsfd, NULL, err)) < 0 ||
	    (r = open_sub(c, "urls", &c->urlsfd, NULL, err)) < 0 ||
	    (r = check_layout(c, err)) < 0)
		goto fail;
	c->fill_lfd = r = vmb_cache_lock_open(c, err);
	if (r < 0)
		goto fail;
	vmb_cache_lock_modes(c);
	c->anon_tmp = !getenv("VMB_CACHE_NAMED_TMP") && probe_anon(c);
	if (!c->opts.no_sweep) {
		r = vmb_cache_sweep_tmp(c, 1, NULL, NULL, NULL, err);
		if (r < 0)
			goto fail;
	}
	vmb_cache_flush_start(c);
	if (!c->opts.evict_manual) {
		r = vmb_cache_evict_start(c);
		if (r < 0) {
			vmb_err_sys(err, -r, "cache '%s': cannot start its evicter", dir);
			goto fail;
		}
	}
	*out = c;
	return 0;
fail:
	vmb_cache_close(c);
	return r;
}

void vmb_cache_close(struct vmb_cache *c)
{
	if (!c)
		return;
	vmb_cache_flush_stop(c);
	vmb_cache_evict_stop(c);
	int fds[] = { c->dirfd, c->chunksfd, c->tmpfd, c->lockfd, c->pinsfd, c->urlsfd,
		      c->fill_lfd };

	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		if (fds[i] >= 0)
			close(fds[i]);
	pthread_mutex_destroy(&c->mu);
	pthread_mutex_destroy(&c->ev_mu);
	pthread_cond_destroy(&c->ev_cv);
	pthread_mutex_destroy(&c->fl_mu);
	pthread_cond_destroy(&c->fl_cv);
	pthread_cond_destroy(&c->fl_wake);
	free(c->path);
	free(c);
}
