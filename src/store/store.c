/* store.c - store directories: init, open, layout version, names (see store.h). */
#include "config.h"
#include "base/fdio.h"
#include "image/xns.h"
#include "layer/layer.h"
#include "store/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

int vmb_name_check(const char *name, struct vmb_err *err)
{
	size_t n = strlen(name);

	if (n == 0)
		return vmb_err_set(err, EINVAL, "empty name");
	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return vmb_err_set(err, EINVAL, "'%s' is not a usable name", name);
	if (strchr(name, '/'))
		return vmb_err_set(err, EINVAL, "name '%s' contains '/'", name);
	if (n > NAME_MAX)
		return vmb_err_set(err, ENAMETOOLONG, "name '%.32s...' is %zu bytes long "
				   "(at most %d)", name, n, NAME_MAX);
	return 0;
}

int vmb_store_reserved(const char *name)
{
	return strcmp(name, VMB_META_DIR) == 0;
}

int vmb_store_reserved_new(const char *name)
{
	return vmb_store_reserved(name) || strcmp(name, ".snapshots") == 0;
}

int vmb_name_check_new(const char *name, struct vmb_err *err)
{
	int r = vmb_name_check(name, err);

	if (r < 0)
		return r;
	if (strchr(name, '@'))
		return vmb_err_set(err, EINVAL, "a bundle's name may not hold '@' (BUNDLE@NAME "
				   "names a snapshot): '%s'", name);
	return 0;
}

static int write_file_atomic(int dirfd, const char *name, const char *text,
			     struct vmb_err *err)
{
	char tmp[64];
	size_t len = strlen(text);
	int fd, r = 0;

	snprintf(tmp, sizeof(tmp), ".tmp.%s.%ld", name, (long)getpid());
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, VMB_META_FILE_MODE);
	if (fd < 0)
		return vmb_err_sys(err, errno, "cannot create '%s'", name);
	if (fchmod(fd, VMB_META_FILE_MODE) < 0 || write(fd, text, len) != (ssize_t)len ||
	    vmb_fsync(fd) < 0)
		r = vmb_err_sys(err, errno ? errno : EIO, "cannot write '%s'", name);
	close(fd);
	if (r == 0 && renameat(dirfd, tmp, dirfd, name) < 0)
		r = vmb_err_sys(err, errno, "cannot rename '%s'", name);
	if (r < 0)
		unlinkat(dirfd, tmp, 0);
	else if (vmb_fsync(dirfd) < 0)
		r = vmb_err_sys(err, errno, "cannot sync the directory of '%s'", name);
	return r;
}

static int dir_is_empty(int fd)
{
	struct dirent *de;
	DIR *d;
	int dup_fd = dup(fd), empty = 1;

	if (dup_fd < 0)
		return -errno;
	d = fdopendir(dup_fd);
	if (!d) {
		close(dup_fd);
		return -errno;
	}
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
			empty = 0;
			break;
		}
	}
	closedir(d);
	return empty;
}

int vmb_store_init(const char *path, struct vmb_err *err)
{
	char text[64];
	int dfd = -1, mfd = -1, lfd, r;

	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		return vmb_err_sys(err, errno, "cannot create store '%s'", path);
	dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return vmb_err_sys(err, errno, "cannot open '%s'", path);
	if (faccessat(dfd, VMB_META_DIR, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
		r = vmb_err_set(err, EEXIST, "'%s' is already a vmbundlefs store", path);
		goto out;
	}
	r = dir_is_empty(dfd);
	if (r < 0) {
		r = vmb_err_sys(err, -r, "cannot read '%s'", path);
		goto out;
	}
	if (!r) {
		r = vmb_err_set(err, ENOTEMPTY, "cannot make a store in '%s': the directory "
				"is not empty", path);
		goto out;
	}
	/* Metadata is the owner's alone (store.h), whatever the umask: set, not
	 * masked. The store's root keeps the mode mkdir gave it. */
	if (mkdirat(dfd, VMB_META_DIR, VMB_META_DIR_MODE) < 0) {
		r = vmb_err_sys(err, errno, "cannot create '%s/%s'", path, VMB_META_DIR);
		goto out;
	}
	mfd = openat(dfd, VMB_META_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (mfd < 0 || fchmod(mfd, VMB_META_DIR_MODE) < 0 ||
	    mkdirat(mfd, VMB_MAPS_DIR, VMB_META_DIR_MODE) < 0 ||
	    fchmodat(mfd, VMB_MAPS_DIR, VMB_META_DIR_MODE, 0) < 0) {
		r = vmb_err_sys(err, errno, "cannot create '%s/%s/%s'", path, VMB_META_DIR,
				VMB_MAPS_DIR);
		goto out;
	}
	lfd = openat(mfd, VMB_LOCK_FILE, O_WRONLY | O_CREAT | O_CLOEXEC, VMB_META_FILE_MODE);
	if (lfd < 0 || fchmod(lfd, VMB_META_FILE_MODE) < 0) {
		r = vmb_err_sys(err, errno, "cannot create '%s/%s/%s'", path, VMB_META_DIR,
				VMB_LOCK_FILE);
		if (lfd >= 0)
			close(lfd);
		goto out;
	}
	close(lfd);
	/* root marks layered files in trusted.*, anyone else in user.* (xns.h) */
	r = write_file_atomic(mfd, VMB_XNS_FILE, geteuid() == 0 ? "trusted\n" : "user\n", err);
	if (r < 0)
		goto out;
	vmb_store_home_init(mfd);
	/* The layout file last: a store is a store once it exists. */
	snprintf(text, sizeof(text), "%s %d\n", VMB_LAYOUT_MAGIC, VMB_LAYOUT_VERSION);
	r = write_file_atomic(mfd, VMB_LAYOUT_FILE, text, err);
	if (r == 0 && vmb_fsync(dfd) < 0)
		r = vmb_err_sys(err, errno, "cannot sync '%s'", path);
out:
	if (mfd >= 0)
		close(mfd);
	close(dfd);
	return r;
}

/* The first bytes of text as a quoted C-like string: at most 40 bytes, escaped. */
static void quote_text(char *out, size_t size, const char *text, size_t len)
{
	size_t i, o = 0;

	for (i = 0; i < len && i < 40 && o + 8 < size; i++) {
		unsigned char c = (unsigned char)text[i];
		if (c == '\n')
			o += (size_t)snprintf(out + o, size - o, "\\n");
		else if (c == '\\' || c == '\'')
			o += (size_t)snprintf(out + o, size - o, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			o += (size_t)snprintf(out + o, size - o, "\\x%02x", c);
		else
			out[o++] = (char)c;
	}
	out[o] = '\0';
	if (i < len && o + 4 < size)
		snprintf(out + o, size - o, "...");
}

static int check_layout(struct vmb_store *s, struct vmb_err *err)
{
	char buf[128], magic[64], shown[200];
	struct stat st;
	ssize_t n;
	int fd, version = 0;

	fd = openat(s->metafd, VMB_LAYOUT_FILE, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return vmb_err_set(err, EINVAL, "'%s' is not a vmbundlefs store (no %s/%s); "
					   "create one with 'vmbundlefs init'", s->path,
					   VMB_META_DIR, VMB_LAYOUT_FILE);
		return vmb_err_sys(err, errno, "cannot open the layout file of store '%s'",
				   s->path);
	}
	n = read(fd, buf, sizeof(buf) - 1);
	if (n < 0 || fstat(fd, &st) < 0) {
		n = errno;
		close(fd);
		return vmb_err_sys(err, (int)n, "cannot read the layout file of store '%s'",
				   s->path);
	}
	close(fd);
	buf[n] = '\0';
	/* "MAGIC VERSION\n"; say what was found when it is not that. */
	if (sscanf(buf, "%63s %d", magic, &version) != 2 || strcmp(magic, VMB_LAYOUT_MAGIC) ||
	    version < 1) {
		if (st.st_size == 0)
			return vmb_err_set(err, EINVAL, "layout file '%s/%s/%s' is empty; "
					   "expected '%s %d'", s->path,
					   VMB_META_DIR, VMB_LAYOUT_FILE, VMB_LAYOUT_MAGIC,
					   VMB_LAYOUT_VERSION);
		quote_text(shown, sizeof(shown), buf, (size_t)n);
		return vmb_err_set(err, EINVAL, "layout file '%s/%s/%s' holds '%s' "
				   "(%lld bytes); expected '%s %d'", s->path,
				   VMB_META_DIR, VMB_LAYOUT_FILE, shown, (long long)st.st_size,
				   VMB_LAYOUT_MAGIC, VMB_LAYOUT_VERSION);
	}
	if (version > VMB_LAYOUT_VERSION)
		return vmb_err_set(err, EPROTONOSUPPORT, "store '%s' has layout version %d; "
				   "this vmbundlefs understands up to %d", s->path, version,
				   VMB_LAYOUT_VERSION);
	return 0;
}

/* The namespace file: *ns, 1 when it exists, 0 when missing (trusted), -errno. */
static int read_xns(struct vmb_store *s, int *ns, struct vmb_err *err)
{
	char buf[32], shown[200];
	ssize_t n;
	int fd;

	*ns = VMB_XNS_TRUSTED;
	fd = openat(s->metafd, VMB_XNS_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		return vmb_err_sys(err, errno, "cannot open '%s/%s/%s'", s->path, VMB_META_DIR,
				   VMB_XNS_FILE);
	}
	n = read(fd, buf, sizeof(buf) - 1);
	if (n < 0) {
		n = errno;
		close(fd);
		return vmb_err_sys(err, (int)n, "cannot read '%s/%s/%s'", s->path, VMB_META_DIR,
				   VMB_XNS_FILE);
	}
	close(fd);
	buf[n] = '\0';
	if (!strcmp(buf, "trusted\n"))
		return 1;
	if (!strcmp(buf, "user\n")) {
		*ns = VMB_XNS_USER;
		return 1;
	}
	quote_text(shown, sizeof(shown), buf, (size_t)n);
	return vmb_err_set(err, EINVAL, "'%s/%s/%s' holds '%s'; expected 'trusted' or 'user'",
			   s->path, VMB_META_DIR, VMB_XNS_FILE, shown);
}

/* Does the store have a layer (STORE/.vmbundlefs/layers not empty)? 1, 0, -errno. */
static int has_layers(struct vmb_store *s)
{
	int fd = openat(s->metafd, VMB_LAYERS_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
			O_CLOEXEC), r;

	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	r = dir_is_empty(fd);
	close(fd);
	return r < 0 ? r : !r;
}

/* The store's xattr namespace (store.h, vmb_store_open): read, given to a user's
 * older store, checked against who opens it, held for this process. */
static int open_xns(struct vmb_store *s, enum vmb_store_mode mode, struct vmb_err *err)
{
	struct stat st;
	int r;

	if (fstat(s->metafd, &st) < 0)
		return vmb_err_sys(err, errno, "cannot stat '%s/%s'", s->path, VMB_META_DIR);
	s->owner = st.st_uid;
	r = read_xns(s, &s->xns, err);
	if (r < 0)
		return r;
	if (r == 0 && mode != VMB_STORE_READ && !s->readonly && st.st_uid != 0 &&
	    geteuid() == st.st_uid && has_layers(s) == 0) {
		/* made by a user before the file existed: no layered file can be marked
		 * (trusted.* needs CAP_SYS_ADMIN), so the user namespace changes nothing */
		if (write_file_atomic(s->metafd, VMB_XNS_FILE, "user\n", err) < 0)
			return vmb_err_prefix(err, "cannot record the xattr namespace of store "
					      "'%s'", s->path);
		s->xns = VMB_XNS_USER;
	}
	if (s->xns == VMB_XNS_USER && mode != VMB_STORE_READ && geteuid() != st.st_uid)
		return vmb_err_set(err, EPERM, "store '%s' belongs to uid %lu and marks its "
				   "layered files with user.vmbundlefs.* xattrs (it was made by "
				   "that user, not root): only uid %lu may change it or mount it "
				   "(vmbundlefs(5), STORE LAYOUT)", s->path,
				   (unsigned long)st.st_uid, (unsigned long)st.st_uid);
	if (vmb_xns_hold(s->xns, s->owner) < 0)
		return vmb_err_set(err, EXDEV, "cannot open store '%s' (its layered files are "
				   "marked in the %s xattr namespace): a store of another "
				   "namespace or owner is open in this process", s->path,
				   s->xns == VMB_XNS_USER ? "user" : "trusted");
	s->xns_held = 1;
	return 0;
}

int vmb_store_open(struct vmb_store *s, const char *path, enum vmb_store_mode mode,
		   struct vmb_err *err)
{
	int r;

	memset(s, 0, sizeof(*s));
	s->dirfd = s->metafd = s->mapfd = s->lockfd = -1;
	s->path = strdup(path);
	if (!s->path)
		return vmb_err_set(err, ENOMEM, "out of memory");
	s->dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dirfd < 0) {
		r = vmb_err_sys(err, errno, "cannot open store '%s'", path);
		goto fail;
	}
	s->metafd = openat(s->dirfd, VMB_META_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
			   O_CLOEXEC);
	if (s->metafd < 0) {
		if (errno == ENOENT)
			r = vmb_err_set(err, EINVAL, "'%s' is not a vmbundlefs store (no %s/%s); "
					"create one with 'vmbundlefs init'", path, VMB_META_DIR,
					VMB_LAYOUT_FILE);
		else
			r = vmb_err_sys(err, errno, "cannot open '%s/%s'", path, VMB_META_DIR);
		goto fail;
	}
	r = check_layout(s, err);
	if (r < 0)
		goto fail;
	s->mapfd = openat(s->metafd, VMB_MAPS_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
			  O_CLOEXEC);
	if (s->mapfd < 0) {
		r = vmb_err_sys(err, errno, "cannot open '%s/%s/%s'", path, VMB_META_DIR,
				VMB_MAPS_DIR);
		goto fail;
	}
	s->readonly = faccessat(s->mapfd, ".", W_OK, AT_EACCESS) < 0;
	r = open_xns(s, mode, err);
	if (r < 0)
		goto fail;
	if (mode == VMB_STORE_READ)
		return 0;
	s->lockfd = openat(s->metafd, VMB_LOCK_FILE, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
			   VMB_META_FILE_MODE);
	if (s->lockfd < 0)
		s->lockfd = openat(s->metafd, VMB_LOCK_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (s->lockfd < 0) {
		r = vmb_err_sys(err, errno, "cannot open the lock file of store '%s'", path);
		goto fail;
	}
	if (flock(s->lockfd, (mode == VMB_STORE_EXCLUSIVE ? LOCK_EX : LOCK_SH) | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK)
			r = vmb_err_set(err, EBUSY, mode == VMB_STORE_EXCLUSIVE ?
					"store '%s' is mounted or in use; unmount it first" :
					"store '%s' is being checked (fsck); try again when it "
					"has finished", path);
		else
			r = vmb_err_sys(err, errno, "cannot lock store '%s'", path);
		goto fail;
	}
	return 0;
fail:
	vmb_store_close(s);
	return r;
}

void vmb_store_close(struct vmb_store *s)
{
	if (!s->path)   /* zeroed, or already closed */
		return;
	if (s->xns_held)
		vmb_xns_release();
	if (s->lockfd >= 0)
		close(s->lockfd);
	if (s->mapfd >= 0)
		close(s->mapfd);
	if (s->metafd >= 0)
		close(s->metafd);
	if (s->dirfd >= 0)
		close(s->dirfd);
	free(s->path);
	memset(s, 0, sizeof(*s));
}

int vmb_store_check_times(struct vmb_store *s, int *coarse, struct vmb_err *err)
{
	char name[64];
	struct statx stx;
	int64_t sec[3];
	uint32_t nsec[3];
	int fd, i, r = 0, whole = 1;

	*coarse = 0;
	snprintf(name, sizeof(name), ".timecheck.%ld", (long)getpid());
	fd = openat(s->metafd, name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		r = vmb_err_sys(err, errno, "cannot check the timestamps of store '%s'", s->path);
		goto unchecked;
	}
	for (i = 0; i < 3; i++) {
		char c = (char)('a' + i);
		if (pwrite(fd, &c, 1, 0) != 1 ||
		    statx(fd, "", AT_EMPTY_PATH, STATX_MTIME, &stx) < 0) {
			r = vmb_err_sys(err, errno, "cannot check the timestamps of store '%s'",
					s->path);
			close(fd);
			unlinkat(s->metafd, name, 0);
			goto unchecked;
		}
		sec[i] = stx.stx_mtime.tv_sec;
		nsec[i] = stx.stx_mtime.tv_nsec;
		if (nsec[i] != 0)
			whole = 0;
		if (i > 0 && sec[i] == sec[i - 1] && nsec[i] == nsec[i - 1])
			*coarse = 1;
	}
	if (whole)
		r = vmb_err_set(err, EOPNOTSUPP, "cannot mount store '%s': its filesystem keeps "
				"modification times in whole seconds, so a change made to a file "
				"from another mount or directly in the store could go unseen and "
				"be read as zeros; put the store on a filesystem with fine-grained "
				"timestamps (ext4 with 256-byte inodes, XFS, Btrfs, tmpfs)", s->path);
	close(fd);
	unlinkat(s->metafd, name, 0);
	return r;
unchecked:
	/* A full or read-only store still mounts (unchecked, said in the log). */
	if (r == -ENOSPC || r == -EDQUOT || r == -EROFS || r == -EACCES || r == -EPERM) {
		*coarse = -1;
		return 0;
	}
	return r;
}
