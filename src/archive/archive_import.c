/* archive_import.c - make a bundle from an archive (see vmb_archive.h).
 *
 * The archive is extracted into STAGE/root/ (STAGE = a fresh directory under
 * STORE/.vmbundlefs/staging), every path component opened with O_NOFOLLOW, so no
 * entry is ever written through a symlink; then the bundle (STAGE/root, or its single
 * top-level directory) is renamed into the store in one step. Any failure removes
 * STAGE with the sidecars of the files in it.
 */
#include "config.h"
#include "archive/archive_int.h"
#include "base/pathtree.h"
#include "lock/auxfile.h"
#include "map/sidecar.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#define ROOT "root"
#define IMPLICIT 1u      /* pathset type bit: a directory made for a deeper entry */
#define READ_BLOCK (1u << 20)

struct dirmeta {
	char *path;
	mode_t mode;
	uid_t uid;
	gid_t gid;
	struct timespec mtime;
	int has_mtime;
	struct vmb_xattr *xa;     /* the entry's user.* xattrs (vmb_archive_xattr_kept) */
	size_t nxa;
};

/* The archive's bytes: our own callbacks, so that a signal interrupts a read that
 * waits for more input (libarchive's fd reader retries on EINTR). */
struct source {
	int fd;
	int seekable;
	volatile sig_atomic_t *cancel;
	void *buf;
	size_t bufsz;
};

struct imp {
	struct vmb_store *s;
	struct source src;
	const struct vmb_import_opts *o;
	struct archive *a;
	int stagefd, workfd, rootfd;
	char work[NAME_MAX + 1];
	struct vmb_pathset *seen;
	struct dirmeta *dirs;
	size_t ndirs, capdirs;
	struct dirmeta rootmeta;
	int have_rootmeta;
	struct vmb_budget budget;
	int chown_ok;
	char top[NAME_MAX + 1];   /* first component of the first entry */
	int ntop_multi;           /* entries with different first components */
	int top_is_dir;           /* top is a directory (explicit or implied) */
	uint64_t entries;
	char *path;               /* the current entry, normalised (any length) */
	char *tmp;                /* scratch of the same size */
	size_t pathcap;
	char *cdir;               /* the last parent directory (open_parent) */
	size_t cdirlen, cdircap;
	int cfd;                  /* ... open, or -1 */
	size_t xattr_bytes;       /* names and values kept for the directories */
	uint64_t xattr_skipped;   /* xattrs left out: other namespaces, reserved names */
	char xattr_first[VMB_ERR_MAX / 2];   /* the first of them, for the note */
};

static int cancelled(const struct imp *m)
{
	return m->o->cancel && *m->o->cancel;
}

static int interrupted(struct vmb_err *err)
{
	return vmb_err_set(err, EINTR, "interrupted");
}

static const char *entry_path(struct archive_entry *e)
{
	const char *p = archive_entry_pathname(e);

	return p ? p : archive_entry_pathname_utf8(e);
}

/* ---- paths ----------------------------------------------------------------------- */

/* Open the parent directory of m->path (relative to rootfd), making missing
 * directories (0777 less the umask, IMPLICIT), never following a symlink. *base
 * points at the last component. Returns the parent's fd (rootfd itself is dup'ed).
 * The last parent stays open (m->cfd, path m->cdir): entries come grouped by
 * directory, so most entries start there and a deep tree costs one open per
 * entry, not one per level. Nothing an import makes is ever replaced or removed,
 * so the cached directory is still the one at that path. */
static int open_parent(struct imp *m, const char **base, struct vmb_err *err)
{
	char *p = m->tmp, *slash, *last;
	size_t plen;
	int fd, nfd, r;

	strcpy(m->tmp, m->path);
	last = strrchr(m->tmp, '/');
	plen = last ? (size_t)(last - m->tmp) : 0;
	if (m->cfd >= 0 && m->cdirlen <= plen && !memcmp(m->cdir, m->tmp, m->cdirlen) &&
	    (m->cdirlen == plen || m->tmp[m->cdirlen] == '/')) {
		fd = fcntl(m->cfd, F_DUPFD_CLOEXEC, 0);
		p = m->tmp + m->cdirlen + 1;
	} else {
		fd = fcntl(m->rootfd, F_DUPFD_CLOEXEC, 0);
	}
	if (fd < 0)
		return vmb_err_sys(err, errno, "out of file descriptors");
	while (p <= m->tmp + plen && (slash = strchr(p, '/'))) {
		*slash = '\0';
		nfd = openat(fd, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (nfd < 0 && errno == ENOENT) {
			if (mkdirat(fd, p, 0777) < 0 && errno != EEXIST) {
				r = vmb_err_sys(err, errno, "cannot create directory '%s'",
						m->tmp);
				goto fail;
			}
			r = vmb_pathset_set(m->seen, m->tmp, S_IFDIR | IMPLICIT);
			if (r < 0) {
				vmb_err_set(err, ENOMEM, "out of memory");
				goto fail;
			}
			nfd = openat(fd, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		}
		if (nfd < 0) {
			unsigned t = vmb_pathset_get(m->seen, m->tmp) & ~IMPLICIT;

			if (errno == ELOOP || errno == ENOTDIR)
				r = vmb_err_set(err, EPERM, "entry '%s' goes through '%s', "
						"which is %s", m->path, m->tmp,
						t == S_IFLNK ? "a symlink" : "not a directory");
			else
				r = vmb_err_sys(err, errno, "cannot open directory '%s'",
						m->tmp);
			goto fail;
		}
		close(fd);
		fd = nfd;
		*slash = '/';
		p = slash + 1;
	}
	*base = m->path + plen + (last != NULL);
	/* Remember this parent (best effort: without it, the next entry starts
	 * from the root). */
	if (plen > 0 && (plen != m->cdirlen || m->cfd < 0 || memcmp(m->cdir, m->path, plen))) {
		if (m->cfd >= 0)
			close(m->cfd);
		m->cfd = -1;
		if (plen + 1 > m->cdircap) {
			char *nc = realloc(m->cdir, plen + 1);

			if (!nc)
				return fd;
			m->cdir = nc;
			m->cdircap = plen + 1;
		}
		memcpy(m->cdir, m->path, plen);
		m->cdir[plen] = '\0';
		m->cdirlen = plen;
		m->cfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	}
	return fd;
fail:
	close(fd);
	return r;
}

/* Open directory `path` (normalised, relative to rootfd; "" is rootfd itself), one
 * name at a time, never following a symlink. Returns the fd, or -errno. */
static int open_dir(struct imp *m, const char *path)
{
	const char *p = path;
	char name[NAME_MAX + 1];
	int fd = fcntl(m->rootfd, F_DUPFD_CLOEXEC, 0), nfd;

	while (fd >= 0 && *p) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);

		if (n > NAME_MAX) {
			close(fd);
			return -ENAMETOOLONG;
		}
		memcpy(name, p, n);
		name[n] = '\0';
		nfd = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		close(fd);
		fd = nfd;
		p += n;
		if (*p == '/')
			p++;
	}
	return fd < 0 ? -errno : fd;
}

/* Record a new entry path; refuse a duplicate. Directories may follow the
 * implicit directory made for an earlier, deeper entry. */
static int claim(struct imp *m, unsigned type, struct vmb_err *err)
{
	unsigned old = 0;
	int r = vmb_pathset_add(m->seen, m->path, type, &old);

	if (r == -EEXIST && type == S_IFDIR && old == (S_IFDIR | IMPLICIT))
		return vmb_pathset_set(m->seen, m->path, S_IFDIR) < 0 ?
			vmb_err_set(err, ENOMEM, "out of memory") : 1;
	if (r == -EEXIST)
		return vmb_err_set(err, EPERM, "duplicate entry '%s'", m->path);
	if (r < 0)
		return vmb_err_set(err, ENOMEM, "out of memory");
	return 0;
}

static void track_top(struct imp *m, mode_t type)
{
	const char *slash = strchr(m->path, '/');
	size_t n = slash ? (size_t)(slash - m->path) : strlen(m->path);
	int dir = slash || type == S_IFDIR;

	if (m->entries++ == 0) {
		memcpy(m->top, m->path, n);
		m->top[n] = '\0';
		m->top_is_dir = dir;
		return;
	}
	if (strlen(m->top) != n || memcmp(m->top, m->path, n))
		m->ntop_multi = 1;
	else if (!dir)
		m->top_is_dir = 0;
}

/* ---- metadata -------------------------------------------------------------------- */

static void meta_from(struct dirmeta *d, struct archive_entry *e)
{
	d->mode = archive_entry_perm(e) & 07777 & ~(mode_t)(S_ISUID | S_ISGID);
	d->uid = (uid_t)archive_entry_uid(e);
	d->gid = (gid_t)archive_entry_gid(e);
	d->has_mtime = archive_entry_mtime_is_set(e);
	d->mtime.tv_sec = archive_entry_mtime(e);
	d->mtime.tv_nsec = archive_entry_mtime_nsec(e);
	d->xa = NULL;
	d->nxa = 0;
}

/* The entry's xattrs into d (meta_from first): the user.* ones are kept, the
 * others counted (the note at the end). Bounded (vmb_archive.h): an entry with more
 * or bigger ones is refused, and so are the directories' past their total (kept
 * until the end, when their metadata is set); dir says that d is kept. */
static int xattrs_from(struct imp *m, struct dirmeta *d, struct archive_entry *e,
		       int dir, struct vmb_err *err)
{
	const char *name;
	const void *value;
	size_t len, n = 0;

	if (archive_entry_xattr_reset(e) == 0)
		return 0;
	while (archive_entry_xattr_next(e, &name, &value, &len) == ARCHIVE_OK) {
		if (!name || !vmb_archive_xattr_kept(name)) {
			if (!m->xattr_skipped++)
				snprintf(m->xattr_first, sizeof(m->xattr_first),
					 "'%.100s' of '%.200s'", name ? name : "",
					 m->path[0] ? m->path : ".");
			continue;
		}
		if (++n > VMB_ARCHIVE_XATTRS_MAX)
			return vmb_err_set(err, EPERM, "entry '%s' has more than %d extended "
					   "attributes (at most %d are imported)", m->path,
					   VMB_ARCHIVE_XATTRS_MAX, VMB_ARCHIVE_XATTRS_MAX);
		if (len > XATTR_SIZE_MAX)
			return vmb_err_set(err, EPERM, "entry '%s': extended attribute '%s' "
					   "has %zu bytes (at most %d)", m->path, name, len,
					   XATTR_SIZE_MAX);
		if (dir) {
			m->xattr_bytes += strlen(name) + len;
			if (m->xattr_bytes > VMB_ARCHIVE_XATTR_BYTES)
				return vmb_err_set(err, EPERM, "entry '%s': the directories' "
						   "extended attributes pass %zu MiB in all",
						   m->path, VMB_ARCHIVE_XATTR_BYTES >> 20);
		}
		if (vmb_xattrs_add(&d->xa, &d->nxa, name, value, len) < 0)
			return vmb_err_set(err, ENOMEM, "out of memory");
	}
	return 0;
}

/* xattrs, ownership, mode and mtime of an open file or directory. */
static int apply_meta_fd(struct imp *m, int fd, const struct dirmeta *d,
			 struct vmb_err *err)
{
	struct timespec ts[2] = { { 0, UTIME_OMIT }, d->mtime };
	size_t i;

	/* The xattrs first: the mode may leave the owner no write permission. */
	for (i = 0; i < d->nxa; i++)
		if (fsetxattr(fd, d->xa[i].name, d->xa[i].value, d->xa[i].len, 0) < 0)
			return vmb_err_sys(err, errno, "cannot set extended attribute '%s' "
					   "of '%s'", d->xa[i].name, d->path);
	if (m->chown_ok && fchown(fd, d->uid, d->gid) < 0)
		return vmb_err_sys(err, errno, "cannot set the owner of '%s'", d->path);
	if (fchmod(fd, d->mode) < 0)
		return vmb_err_sys(err, errno, "cannot set the mode of '%s'", d->path);
	if (d->has_mtime && futimens(fd, ts) < 0)
		return vmb_err_sys(err, errno, "cannot set the times of '%s'", d->path);
	return 0;
}

static int push_dir(struct imp *m, struct archive_entry *e, struct vmb_err *err)
{
	struct dirmeta *d;

	if (m->ndirs == m->capdirs) {
		size_t ncap = m->capdirs ? m->capdirs * 2 : 64;
		struct dirmeta *nd = realloc(m->dirs, ncap * sizeof(*nd));

		if (!nd)
			return vmb_err_set(err, ENOMEM, "out of memory");
		m->dirs = nd;
		m->capdirs = ncap;
	}
	d = &m->dirs[m->ndirs];
	d->path = strdup(m->path);
	if (!d->path)
		return vmb_err_set(err, ENOMEM, "out of memory");
	meta_from(d, e);
	m->ndirs++;   /* freed at the end, with what xattrs_from kept */
	return xattrs_from(m, d, e, 1, err);
}

/* ---- entries --------------------------------------------------------------------- */

static int do_dir(struct imp *m, struct archive_entry *e, struct vmb_err *err)
{
	const char *base;
	int pfd, r;

	if (!m->path[0]) {   /* "./": the archive's root */
		if (m->have_rootmeta)
			return vmb_err_set(err, EPERM, "duplicate entry '.'");
		meta_from(&m->rootmeta, e);
		m->rootmeta.path = NULL;
		m->have_rootmeta = 1;
		return xattrs_from(m, &m->rootmeta, e, 1, err);
	}
	r = claim(m, S_IFDIR, err);
	if (r < 0)
		return r;
	if (r == 0) {
		pfd = open_parent(m, &base, err);
		if (pfd < 0)
			return pfd;
		if (mkdirat(pfd, base, 0700) < 0)
			r = vmb_err_sys(err, errno, "cannot create directory '%s'", m->path);
		close(pfd);
		if (r < 0)
			return r;
	}
	return push_dir(m, e, err);
}

static int write_sidecar(struct imp *m, int fd, struct vmb_err *err)
{
	char scname[VMB_SIDECAR_NAME_MAX];
	struct vmb_blockmap map;
	struct vmb_stamp st;
	int r;

	vmb_blockmap_init(&map);
	r = vmb_stamp_fd(fd, &st, err);
	if (r == 0)
		r = vmb_sidecar_scan(fd, st.size, &map, err);
	if (r == 0) {
		vmb_sidecar_name(st.ino, scname);
		r = vmb_sidecar_write(m->s->mapfd, scname, &map, &st,
				      m->o->sync ? VMB_SIDECAR_SYNC_FILE : VMB_SIDECAR_SYNC_NONE,
				      err);
	}
	vmb_blockmap_destroy(&map);
	if (r < 0)
		return vmb_err_prefix(err, "cannot write the map of '%s'", m->path);
	return 0;
}

static int do_file(struct imp *m, struct archive_entry *e, struct vmb_err *err)
{
	struct vmb_swriter *w = NULL;
	struct dirmeta d;
	const char *base;
	uint64_t size = UINT64_MAX;
	int pfd, fd = -1, r;

	r = claim(m, S_IFREG, err);
	if (r < 0)
		return r;
	pfd = open_parent(m, &base, err);
	if (pfd < 0)
		return pfd;
	fd = openat(pfd, base, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	close(pfd);
	if (fd < 0)
		return vmb_err_sys(err, errno, "cannot create '%s'", m->path);
	if (archive_entry_size_is_set(e)) {
		if (archive_entry_size(e) < 0) {
			r = vmb_err_set(err, EBADMSG, "entry '%s' has a negative size",
					m->path);
			goto out;
		}
		size = (uint64_t)archive_entry_size(e);
		if (ftruncate(fd, (off_t)size) < 0) {
			r = vmb_err_sys(err, errno, "cannot make '%s' %" PRIu64 " bytes long",
					m->path, size);
			goto out;
		}
	}
	w = malloc(sizeof(*w));
	if (!w) {
		r = vmb_err_set(err, ENOMEM, "out of memory");
		goto out;
	}
	vmb_sw_init(w, fd, size, &m->budget);
	for (;;) {
		const void *buf;
		size_t n;
		la_int64_t off;

		r = archive_read_data_block(m->a, &buf, &n, &off);
		if (r == ARCHIVE_EOF)
			break;
		if (r != ARCHIVE_OK) {
			r = vmb_archive_err(err, m->a, "cannot read entry '%s'", m->path);
			goto out;
		}
		if (cancelled(m)) {
			r = interrupted(err);
			goto out;
		}
		if (off < 0) {
			r = vmb_err_set(err, EBADMSG, "entry '%s' has data at a negative "
					"offset", m->path);
			goto out;
		}
		r = vmb_sw_data(w, buf, n, (uint64_t)off, err);
		if (r < 0) {
			vmb_err_prefix(err, "entry '%s'", m->path);
			goto out;
		}
		if (m->o->progress)
			m->o->progress(m->o->progress_arg,
				       (uint64_t)archive_filter_bytes(m->a, -1),
				       m->o->archive_size);
	}
	r = vmb_sw_finish(w, err);
	if (r < 0) {
		vmb_err_prefix(err, "entry '%s'", m->path);
		goto out;
	}
	if (size == UINT64_MAX && ftruncate(fd, (off_t)w->end) < 0) {
		r = vmb_err_sys(err, errno, "cannot set the size of '%s'", m->path);
		goto out;
	}
	/* xattrs, mode and mtime last, then the map, stamped with the final mtime. */
	meta_from(&d, e);
	d.path = m->path;
	r = xattrs_from(m, &d, e, 0, err);
	if (r == 0)
		r = apply_meta_fd(m, fd, &d, err);
	vmb_xattrs_free(d.xa, d.nxa);
	if (r == 0 && m->o->sync && fdatasync(fd) < 0)
		r = vmb_err_sys(err, errno, "cannot sync '%s'", m->path);
	if (r == 0)
		r = write_sidecar(m, fd, err);
out:
	free(w);
	close(fd);
	return r;
}

static int do_hardlink(struct imp *m, struct archive_entry *e, const char *target,
		       struct vmb_err *err)
{
	char *t = NULL;
	const char *base;
	int pfd, r;

	if (archive_entry_size_is_set(e) && archive_entry_size(e) > 0)
		return vmb_err_set(err, EPERM, "hard link '%s' carries data of its own "
				   "(not supported)", m->path);
	t = strdup(target);
	if (!t)
		return vmb_err_set(err, ENOMEM, "out of memory");
	r = vmb_apath_normalize(t, err);
	if (r < 0) {
		vmb_err_prefix(err, "hard link '%s' points outside the bundle", m->path);
		goto out;
	}
	if (vmb_pathset_get(m->seen, t) != S_IFREG) {
		r = vmb_err_set(err, EPERM, "hard link '%s' points to '%s', which is not an "
				"earlier file of the archive", m->path, target);
		goto out;
	}
	r = claim(m, S_IFREG, err);
	if (r < 0)
		goto out;
	pfd = open_parent(m, &base, err);
	if (pfd < 0) {
		r = pfd;
		goto out;
	}
	{
		char *slash = strrchr(t, '/');
		int tfd;

		if (slash)
			*slash = '\0';
		tfd = open_dir(m, slash ? t : "");
		if (slash)
			*slash = '/';
		if (tfd < 0)
			r = vmb_err_sys(err, -tfd, "cannot link '%s' to '%s'", m->path, t);
		else if (linkat(tfd, slash ? slash + 1 : t, pfd, base, 0) < 0)
			r = vmb_err_sys(err, errno, "cannot link '%s' to '%s'", m->path, t);
		if (tfd >= 0)
			close(tfd);
	}
	close(pfd);
out:
	free(t);
	return r;
}

/* A symlink is stored as it is, wherever it points (an absolute link to a shared
 * ISO is common in VM bundles, and export stores such links): it is inert text. The
 * import never follows one (every path component is opened with O_NOFOLLOW, owner
 * and times are set with AT_SYMLINK_NOFOLLOW, hard links name earlier regular-file
 * entries, which never lie below a symlink), so no entry is written through it. */
static int do_symlink(struct imp *m, struct archive_entry *e, struct vmb_err *err)
{
	const char *target = archive_entry_symlink(e), *base;
	struct timespec ts[2] = { { 0, UTIME_OMIT }, { 0, 0 } };
	int pfd, r;

	if (!target)
		target = archive_entry_symlink_utf8(e);
	if (!target)
		return vmb_err_set(err, EBADMSG, "symlink '%s' has no target", m->path);
	if (!*target)
		return vmb_err_set(err, EPERM, "symlink '%s' has an empty target", m->path);
	if (strlen(target) >= PATH_MAX)
		return vmb_err_set(err, ENAMETOOLONG, "symlink '%s': its target is %zu bytes "
				   "long (at most %d)", m->path, strlen(target), PATH_MAX - 1);
	r = claim(m, S_IFLNK, err);
	if (r < 0)
		return r;
	pfd = open_parent(m, &base, err);
	if (pfd < 0)
		return pfd;
	if (symlinkat(target, pfd, base) < 0)
		r = vmb_err_sys(err, errno, "cannot create symlink '%s'", m->path);
	if (r == 0 && m->chown_ok &&
	    fchownat(pfd, base, (uid_t)archive_entry_uid(e), (gid_t)archive_entry_gid(e),
		     AT_SYMLINK_NOFOLLOW) < 0)
		r = vmb_err_sys(err, errno, "cannot set the owner of '%s'", m->path);
	if (r == 0 && archive_entry_mtime_is_set(e)) {
		ts[1].tv_sec = archive_entry_mtime(e);
		ts[1].tv_nsec = archive_entry_mtime_nsec(e);
		if (utimensat(pfd, base, ts, AT_SYMLINK_NOFOLLOW) < 0)
			r = vmb_err_sys(err, errno, "cannot set the times of '%s'", m->path);
	}
	close(pfd);
	return r;
}

static int do_entry(struct imp *m, struct archive_entry *e, struct vmb_err *err)
{
	const char *p = entry_path(e), *hl;
	mode_t type = archive_entry_filetype(e);
	int r;

	if (!p)
		return vmb_err_set(err, EBADMSG, "an entry has no usable path");
	if (strlen(p) + 1 > m->pathcap) {
		size_t cap = strlen(p) + 1 > 2 * m->pathcap ? strlen(p) + 1 : 2 * m->pathcap;
		char *np = realloc(m->path, cap), *nt;

		if (np)
			m->path = np;
		nt = np ? realloc(m->tmp, cap) : NULL;
		if (!nt)
			return vmb_err_set(err, ENOMEM, "out of memory");
		m->tmp = nt;
		m->pathcap = cap;
	}
	strcpy(m->path, p);
	r = vmb_apath_normalize(m->path, err);
	if (r < 0)
		return r;
	hl = archive_entry_hardlink(e);
	if (!hl)
		hl = archive_entry_hardlink_utf8(e);
	if (hl)
		type = S_IFREG;
	if (!m->path[0] && type != S_IFDIR)
		return vmb_err_set(err, EPERM, "entry '%s' names the archive's root but is "
				   "not a directory", p);
	if (m->path[0])
		track_top(m, type);
	if (hl)
		return do_hardlink(m, e, hl, err);
	switch (type) {
	case S_IFDIR:
		return do_dir(m, e, err);
	case S_IFREG:
		return do_file(m, e, err);
	case S_IFLNK:
		return do_symlink(m, e, err);
	case S_IFCHR:
	case S_IFBLK:
		return vmb_err_set(err, EPERM, "entry '%s' is a device node; a bundle holds "
				   "only files, directories and links", m->path);
	case S_IFIFO:
		return vmb_err_set(err, EPERM, "entry '%s' is a FIFO; a bundle holds only "
				   "files, directories and links", m->path);
	case S_IFSOCK:
		return vmb_err_set(err, EPERM, "entry '%s' is a socket; a bundle holds only "
				   "files, directories and links", m->path);
	default:
		return vmb_err_set(err, EPERM, "entry '%s' has an unknown type (0%o)",
				   m->path, (unsigned)type);
	}
}

/* ---- the name -------------------------------------------------------------------- */

static const char *const archive_exts[] = {
	".tar", ".tgz", ".taz", ".tbz", ".tbz2", ".txz", ".tzst", ".tlz", ".gz", ".bz2",
	".xz", ".zst", ".zstd", ".lz4", ".lz", ".lzma", ".Z", ".zip", ".ova", ".7z",
	".cpio", ".pax", NULL,
};

/* The archive's file name without its archive extensions, into out. */
static int name_from_label(const char *label, char *out, struct vmb_err *err)
{
	const char *base = strrchr(label, '/');
	int again = 1;
	size_t n;

	base = base ? base + 1 : label;
	if (!strcmp(label, "-"))
		return vmb_err_set(err, EINVAL, "cannot tell the bundle's name of an archive "
				   "read from standard input: give a NAME");
	n = strlen(base);
	if (n > NAME_MAX)
		n = NAME_MAX;
	memcpy(out, base, n);
	out[n] = '\0';
	while (again) {
		const char *const *x;

		again = 0;
		for (x = archive_exts; *x; x++) {
			size_t xl = strlen(*x);

			n = strlen(out);
			if (n > xl && !strcasecmp(out + n - xl, *x)) {
				out[n - xl] = '\0';
				again = 1;
				break;
			}
		}
	}
	return 0;
}

static int check_name(struct imp *m, const char *name, struct vmb_err *err)
{
	int r = vmb_name_check_new(name, err);

	if (r < 0)
		return vmb_err_prefix(err, "cannot use '%s' as the bundle's name", name);
	if (vmb_store_reserved_new(name))
		return vmb_err_set(err, EINVAL, "'%s' is reserved by the store and cannot "
				   "name a bundle", name);
	return 0;
}

/* Does bundle `name` exist, and may it be replaced? 0 = absent, 1 = present and
 * replaceable (opts->replace). */
static int check_existing(struct imp *m, const char *name, struct vmb_err *err)
{
	char who[256];
	struct stat st;
	int r;

	if (fstatat(m->s->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			return 0;
		return vmb_err_sys(err, errno, "cannot look up bundle '%s'", name);
	}
	if (!m->o->replace)
		return vmb_err_set(err, EEXIST, "bundle '%s' already exists (use --replace "
				   "to replace it)", name);
	if (!S_ISDIR(st.st_mode))
		return vmb_err_set(err, EEXIST, "'%s' in the store is not a bundle", name);
	r = vmb_bundle_in_use(m->s, name, m->o->aux_patterns, who, sizeof(who), err);
	if (r < 0)
		return vmb_err_prefix(err, "cannot tell whether bundle '%s' is in use", name);
	if (r > 0)
		return vmb_err_set(err, EBUSY, "bundle '%s' is in use (%s); it cannot be "
				   "replaced", name, who);
	return 1;
}

/* ---- finishing ------------------------------------------------------------------- */

static int by_path(const void *x, const void *y)
{
	return strcmp(((const struct dirmeta *)x)->path, ((const struct dirmeta *)y)->path);
}

/* After a directory's entries (vmb_tree_walk post-order: a directory's mode and
 * mtime are set after everything below it is done), its metadata if the archive
 * had an entry for it. */
static int apply_dir(void *arg, enum vmb_tree_event ev, const struct vmb_tree_ent *e,
		     struct vmb_err *err)
{
	struct imp *m = arg;
	struct dirmeta key, *d;
	int fd, r;

	if (ev != VMB_TREE_DIR_POST)
		return 0;
	key.path = (char *)e->path + 1;   /* the walk's top is "" */
	d = bsearch(&key, m->dirs, m->ndirs, sizeof(*m->dirs), by_path);
	if (!d)
		return 0;   /* made for a deeper entry (IMPLICIT): left as made */
	fd = openat(e->dfd, e->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return vmb_err_sys(err, errno, "cannot open directory '%s'", e->msgpath + 1);
	r = apply_meta_fd(m, fd, d, err);
	close(fd);
	return r;
}

/* The directories' metadata, deepest first. No fsync of each: finish() syncs the
 * whole staged bundle with syncfs. */
static int apply_dirs(struct imp *m, struct vmb_err *err)
{
	if (!m->ndirs)
		return 0;
	qsort(m->dirs, m->ndirs, sizeof(*m->dirs), by_path);
	return vmb_tree_walk(m->rootfd, "", apply_dir, m, err);
}

/* Move the finished bundle (srcdir/srcname) into the store as `name`. */
static int install(struct imp *m, int srcdir, const char *srcname, const char *name,
		   struct vmb_err *err)
{
	int r, tries;

	for (tries = 0; tries < 3; tries++) {
		r = check_existing(m, name, err);
		if (r < 0)
			return r;
		if (cancelled(m))
			return interrupted(err);
		if (r == 0) {
			if (renameat2(srcdir, srcname, m->s->dirfd, name, RENAME_NOREPLACE) == 0)
				return 0;
			if (errno == EEXIST)
				continue;   /* made meanwhile: look again */
			return vmb_err_sys(err, errno, "cannot move the bundle into place as "
					   "'%s'", name);
		}
		if (renameat2(srcdir, srcname, m->s->dirfd, name, RENAME_EXCHANGE) == 0) {
			/* The old bundle is now srcdir/srcname: remove it. */
			r = vmb_tree_remove(srcdir, srcname, m->s->mapfd, err);
			if (r < 0)
				return vmb_err_prefix(err, "bundle '%s' was replaced, but the "
						      "old one is left in the staging "
						      "directory", name);
			return 0;
		}
		if (errno == ENOENT)
			continue;   /* removed meanwhile: look again */
		return vmb_err_sys(err, errno, "cannot replace bundle '%s'", name);
	}
	return vmb_err_set(err, EAGAIN, "bundle '%s' keeps changing; try again", name);
}

static int finish(struct imp *m, char *name_out, struct vmb_err *err)
{
	char name[NAME_MAX + 1];
	const char *srcname = ROOT;
	int strip, srcdir = m->workfd, r;

	if (cancelled(m))
		return interrupted(err);
	if (m->entries == 0 && !m->have_rootmeta)
		return vmb_err_set(err, EBADMSG, "the archive has no entries");
	/* One top-level directory holding everything: that directory is the bundle. */
	strip = m->entries > 0 && !m->ntop_multi && m->top_is_dir;
	if (strip) {
		srcdir = m->rootfd;
		srcname = m->top;
	}
	if (m->o->name)
		snprintf(name, sizeof(name), "%s", m->o->name);
	else if (strip)
		snprintf(name, sizeof(name), "%s", m->top);
	else if ((r = name_from_label(m->o->label, name, err)) < 0)
		return r;
	r = check_name(m, name, err);
	if (r < 0)
		return r;
	r = apply_dirs(m, err);
	if (r < 0)
		return r;
	if (!strip) {
		struct dirmeta d = m->rootmeta;

		if (!m->have_rootmeta) {
			memset(&d, 0, sizeof(d));
			d.mode = 0755;
			d.uid = geteuid();
			d.gid = getegid();
		}
		d.path = ".";
		r = apply_meta_fd(m, m->rootfd, &d, err);
		if (r < 0)
			return r;
	}
	if (m->o->sync && syncfs(m->rootfd) < 0)
		return vmb_err_sys(err, errno, "cannot sync the staged bundle");
	r = install(m, srcdir, srcname, name, err);
	if (r < 0)
		return r;
	if (m->o->sync && fsync(m->s->dirfd) < 0)
		return vmb_err_sys(err, errno, "bundle '%s' is in place, but the store's "
				   "directory cannot be synced", name);
	if (name_out)
		snprintf(name_out, NAME_MAX + 1, "%s", name);
	return 0;
}

/* ---- setup ----------------------------------------------------------------------- */

uint64_t vmb_import_margin(uint64_t fs_bytes)
{
	uint64_t m = fs_bytes / 100;

	if (m < (UINT64_C(64) << 20))
		m = UINT64_C(64) << 20;
	if (m > (UINT64_C(1) << 30))
		m = UINT64_C(1) << 30;
	return m;
}

static int set_budget(struct imp *m, struct vmb_err *err)
{
	struct statvfs sv;
	uint64_t margin;

	if (fstatvfs(m->s->dirfd, &sv) < 0)
		return vmb_err_sys(err, errno, "cannot tell the free space of store '%s'",
				   m->s->path);
	m->budget.free = (uint64_t)sv.f_bavail * sv.f_frsize;
	margin = vmb_import_margin((uint64_t)sv.f_blocks * sv.f_frsize);
	if (m->o->max_size) {
		m->budget.max = m->o->max_size;
		m->budget.explicit_max = 1;
	} else {
		m->budget.max = m->budget.free > margin ? m->budget.free - margin : 0;
	}
	return 0;
}

static la_ssize_t src_read(struct archive *a, void *arg, const void **buf)
{
	struct source *src = arg;
	ssize_t n;

	for (;;) {
		n = read(src->fd, src->buf, src->bufsz);
		if (n >= 0) {
			*buf = src->buf;
			return n;
		}
		if (errno != EINTR) {
			archive_set_error(a, errno, "cannot read the archive");
			return -1;
		}
		if (src->cancel && *src->cancel) {
			archive_set_error(a, EINTR, "interrupted");
			return -1;
		}
	}
}

static la_int64_t src_skip(struct archive *a, void *arg, la_int64_t req)
{
	struct source *src = arg;

	(void)a;
	if (!src->seekable || req <= 0 || lseek(src->fd, (off_t)req, SEEK_CUR) < 0)
		return 0;   /* libarchive reads instead */
	return req;
}

static la_int64_t src_seek(struct archive *a, void *arg, la_int64_t off, int whence)
{
	struct source *src = arg;
	off_t r = lseek(src->fd, (off_t)off, whence);

	if (r < 0) {
		archive_set_error(a, errno, "cannot seek in the archive");
		return ARCHIVE_FATAL;
	}
	return r;
}

static int open_archive(struct imp *m, int fd, struct vmb_err *err)
{
	struct archive *a = archive_read_new();
	struct stat st;

	if (!a)
		return vmb_err_set(err, ENOMEM, "out of memory");
	m->a = a;
	m->src.fd = fd;
	m->src.cancel = m->o->cancel;
	m->src.seekable = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
		lseek(fd, 0, SEEK_CUR) >= 0;
	m->src.bufsz = READ_BLOCK;
	m->src.buf = malloc(READ_BLOCK);
	if (!m->src.buf)
		return vmb_err_set(err, ENOMEM, "out of memory");
	/* Compression by content; formats by content. Not "all": the mtree format
	 * reads the files its spec names from the local disk. */
	if (archive_read_support_filter_all(a) < ARCHIVE_WARN ||
	    archive_read_support_format_tar(a) != ARCHIVE_OK ||
	    archive_read_support_format_gnutar(a) != ARCHIVE_OK ||
	    archive_read_support_format_zip(a) != ARCHIVE_OK ||
	    archive_read_support_format_cpio(a) != ARCHIVE_OK ||
	    archive_read_support_format_7zip(a) != ARCHIVE_OK ||
	    archive_read_support_format_iso9660(a) != ARCHIVE_OK ||
	    archive_read_support_format_xar(a) < ARCHIVE_WARN ||
	    archive_read_support_format_rar(a) != ARCHIVE_OK ||
	    archive_read_support_format_rar5(a) != ARCHIVE_OK)
		return vmb_archive_err(err, a, "cannot set up the archive reader");
	archive_read_set_callback_data(a, &m->src);
	archive_read_set_read_callback(a, src_read);
	archive_read_set_skip_callback(a, src_skip);
	if (m->src.seekable)
		archive_read_set_seek_callback(a, src_seek);
	if (archive_read_open1(a) != ARCHIVE_OK)
		return vmb_archive_err(err, a, "cannot read the archive");
	return 0;
}

static int run(struct imp *m, int fd, char *name_out, struct vmb_err *err)
{
	struct archive_entry *e;
	int r;

	if (m->o->name) {
		r = check_name(m, m->o->name, err);
		if (r == 0)
			r = check_existing(m, m->o->name, err);
		if (r < 0)
			return r;
	}
	r = set_budget(m, err);
	if (r < 0)
		return r;
	if (vmb_pathset_new(&m->seen) < 0)
		return vmb_err_set(err, ENOMEM, "out of memory");
	r = vmb_staging_create(m->s, &m->stagefd, &m->workfd, m->work, err);
	if (r < 0)
		return r;
	if (mkdirat(m->workfd, ROOT, 0700) < 0 ||
	    (m->rootfd = openat(m->workfd, ROOT, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
				O_CLOEXEC)) < 0)
		return vmb_err_sys(err, errno, "cannot create the staging directory");
	r = open_archive(m, fd, err);
	if (r < 0)
		return r;
	for (;;) {
		if (cancelled(m))
			return interrupted(err);
		r = archive_read_next_header(m->a, &e);
		if (r == ARCHIVE_EOF)
			break;
		if (r < ARCHIVE_WARN)
			return vmb_archive_err(err, m->a, m->entries ? "cannot read the entry "
					       "after '%s'" : "cannot read the archive%s",
					       m->entries ? m->path : "");
		if (m->entries == 0 && geteuid() == 0) {
			int base = archive_format(m->a) & ARCHIVE_FORMAT_BASE_MASK;
			m->chown_ok = base == ARCHIVE_FORMAT_TAR ||
				base == ARCHIVE_FORMAT_CPIO;
		}
		r = do_entry(m, e, err);
		if (r < 0)
			return r;
	}
	r = finish(m, name_out, err);
	if (r == 0 && m->xattr_skipped && m->o->note) {
		char msg[VMB_ERR_MAX];

		snprintf(msg, sizeof(msg), "%" PRIu64 " extended attribute%s outside the "
			 "user.* namespace or reserved by vmbundlefs (the first: %s) %s not "
			 "imported", m->xattr_skipped, m->xattr_skipped == 1 ? "" : "s",
			 m->xattr_first, m->xattr_skipped == 1 ? "was" : "were");
		m->o->note(m->o->note_arg, msg);
	}
	return r;
}

int vmb_archive_import(struct vmb_store *s, int fd, const struct vmb_import_opts *opts,
		       char *name_out, struct vmb_err *err)
{
	struct vmb_err cleanup_err;
	struct imp *m;
	size_t i;
	int r;

	m = calloc(1, sizeof(*m));
	if (!m)
		return vmb_err_set(err, ENOMEM, "cannot import '%s': out of memory",
				   opts->label);
	m->s = s;
	m->o = opts;
	m->stagefd = m->workfd = m->rootfd = m->cfd = -1;
	r = run(m, fd, name_out, err);
	if (r < 0 && cancelled(m) && r != -EINTR)
		r = interrupted(err);   /* whatever failed, it failed because of that */
	if (r < 0)
		vmb_err_prefix(err, "cannot import '%s'", opts->label);
	if (m->a)
		archive_read_free(m->a);
	if (m->rootfd >= 0)
		close(m->rootfd);
	if (m->cfd >= 0)
		close(m->cfd);
	free(m->cdir);
	if (m->workfd >= 0) {
		/* Whatever is left: the whole import on failure, the empty work
		 * directory (or the old bundle's remains) on success. */
		if (vmb_tree_remove(m->stagefd, m->work, s->mapfd, &cleanup_err) < 0 &&
		    r == 0)
			vmb_log_msg(NULL, "%s", cleanup_err.msg);
		close(m->workfd);
	}
	if (m->stagefd >= 0) {
		close(m->stagefd);
		unlinkat(s->metafd, VMB_STAGING_DIR, AT_REMOVEDIR);  /* if empty */
	}
	for (i = 0; i < m->ndirs; i++) {
		free(m->dirs[i].path);
		vmb_xattrs_free(m->dirs[i].xa, m->dirs[i].nxa);
	}
	free(m->dirs);
	vmb_xattrs_free(m->rootmeta.xa, m->rootmeta.nxa);
	vmb_pathset_free(m->seen);
	free(m->path);
	free(m->tmp);
	free(m->src.buf);
	free(m);
	return r;
}
