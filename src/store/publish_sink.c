/* publish_sink.c - the directory sink of vmbundlefs publish (see publish.h).
 *
 *   DEST/index                 replaced last: DEST/.tmp/index.<pid>, fsync, rename,
 *                              fsync DEST
 *   DEST/objects/aa/<hex>      DEST/.tmp/<hex>.<pid>, fsync, rename; the aa
 *                              directories touched are fsync'ed by sync
 *   DEST/.tmp/                 temporaries; what a killed publish left is removed
 *                              when the next one opens DEST
 * The sink holds an exclusive flock on DEST's directory while open.
 */
#include "config.h"
#include "store/publish.h"
#include "base/fdio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define TMP_DIR ".tmp"

struct dir_sink {
	struct vmb_pub_sink s;
	int dfd;                  /* DEST, flock'ed */
	int tfd;                  /* DEST/.tmp */
	int ofd;                  /* DEST/objects */
	uint8_t touched[32];      /* bitmap of DEST/objects/aa written to */
	unsigned long seq;
	unsigned char *vbuf;      /* check's reads */
};

#define VBUF_SIZE (1u << 20)

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* An object of the right length is read and compared with buf: a damaged one
 * (another length, other bytes) is put again. Costs a read of what is there. */
static int dir_check(struct vmb_pub_sink *s, const char *path, const uint8_t dg[32],
		     const void *buf, size_t len, int verify, struct vmb_err *err)
{
	struct dir_sink *d = (struct dir_sink *)s;
	const unsigned char *want = buf;
	struct stat st;
	size_t off = 0;
	int fd, r = VMB_PUB_GOOD;

	(void)dg;
	(void)verify;   /* always: reading a local object is cheap beside hashing it */
	fd = openat(d->dfd, path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return VMB_PUB_ABSENT;
		if (errno == ELOOP)   /* a symbolic link where the object goes */
			return VMB_PUB_DAMAGED;
		return vmb_err_sys(err, errno, "cannot open '%s/%s'", s->where, path);
	}
	if (fstat(fd, &st) < 0) {
		r = vmb_err_sys(err, errno, "cannot look at '%s/%s'", s->where, path);
		goto out;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != len) {
		r = VMB_PUB_DAMAGED;
		goto out;
	}
	if (!d->vbuf && !(d->vbuf = malloc(VBUF_SIZE))) {
		r = vmb_err_set(err, ENOMEM, "out of memory");
		goto out;
	}
	while (off < len) {
		size_t n = len - off < VBUF_SIZE ? len - off : VBUF_SIZE;
		ssize_t got = vmb_read_full(fd, d->vbuf, n);

		if (got < 0) {
			/* unreadable (EIO on a bad sector...): written again */
			r = VMB_PUB_DAMAGED;
			goto out;
		}
		if ((size_t)got != n || memcmp(d->vbuf, want + off, n)) {
			r = VMB_PUB_DAMAGED;
			goto out;
		}
		off += n;
	}
out:
	close(fd);
	return r;
}

/* Write buf to a new temporary in DEST/.tmp, fsync'ed: its name in tmp. */
static int write_tmp(struct dir_sink *d, const char *base, const void *buf, size_t len,
		     char *tmp, size_t tmpsize, struct vmb_err *err)
{
	int fd, r;

	snprintf(tmp, tmpsize, "%s.%ld.%lu", base, (long)getpid(), d->seq++);
	fd = openat(d->tfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return vmb_err_sys(err, errno, "cannot create '%s/%s/%s'", d->s.where,
				   TMP_DIR, tmp);
	/* Whatever the umask: objects are served to anyone who can reach DEST. */
	r = fchmod(fd, 0644) < 0 ? -errno : 0;
	if (!r)
		r = vmb_write_full(fd, buf, len);
	if (!r && fsync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && !r)
		r = -errno;
	if (r) {
		unlinkat(d->tfd, tmp, 0);
		return vmb_err_sys(err, -r, "cannot write '%s/%s/%s'", d->s.where, TMP_DIR,
				   tmp);
	}
	return 0;
}

static int dir_put(struct vmb_pub_sink *s, const char *path, const void *buf, size_t len,
		   struct vmb_err *err)
{
	struct dir_sink *d = (struct dir_sink *)s;
	const char *slash = strrchr(path, '/');
	char tmp[256], sub[8];
	int r, hi, lo;

	r = write_tmp(d, slash ? slash + 1 : path, buf, len, tmp, sizeof(tmp), err);
	if (r < 0)
		return r;
	if (!strncmp(path, "objects/", 8) && strlen(path) > 11 && path[10] == '/' &&
	    (hi = hexval(path[8])) >= 0 && (lo = hexval(path[9])) >= 0) {
		unsigned idx = (unsigned)(hi * 16 + lo);

		memcpy(sub, path + 8, 2);
		sub[2] = '\0';
		if (mkdirat(d->ofd, sub, 0755) == 0)
			fchmodat(d->ofd, sub, 0755, 0);   /* whatever the umask */
		else if (errno != EEXIST) {
			r = vmb_err_sys(err, errno, "cannot create '%s/objects/%s'", s->where,
					sub);
			goto fail;
		}
		d->touched[idx / 8] |= (uint8_t)(1u << (idx % 8));
	}
	if (renameat(d->tfd, tmp, d->dfd, path) < 0) {
		r = vmb_err_sys(err, errno, "cannot rename '%s/%s/%s' to '%s/%s'", s->where,
				TMP_DIR, tmp, s->where, path);
		goto fail;
	}
	if (!slash && fsync(d->dfd) < 0)   /* the index: its rename is durable now */
		return vmb_err_sys(err, errno, "cannot fsync '%s'", s->where);
	return 0;
fail:
	unlinkat(d->tfd, tmp, 0);
	return r;
}

static int dir_get(struct vmb_pub_sink *s, const char *path, size_t max, void **out,
		   size_t *len, struct vmb_err *err)
{
	struct dir_sink *d = (struct dir_sink *)s;
	struct stat st;
	char *buf = NULL;
	ssize_t n;
	int fd, r = 0;

	*out = NULL;
	*len = 0;
	fd = openat(d->dfd, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return vmb_err_set(err, ENOENT, "no '%s/%s'", s->where, path);
		return vmb_err_sys(err, errno, "cannot open '%s/%s'", s->where, path);
	}
	if (fstat(fd, &st) < 0) {
		r = vmb_err_sys(err, errno, "cannot stat '%s/%s'", s->where, path);
		goto out;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > max) {
		r = vmb_err_set(err, EFBIG, "'%s/%s' is not a file of at most %zu bytes",
				s->where, path, max);
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		r = vmb_err_set(err, ENOMEM, "out of memory");
		goto out;
	}
	n = vmb_read_full(fd, buf, (size_t)st.st_size + 1);
	if (n < 0 || (size_t)n > (size_t)st.st_size) {
		r = n < 0 ? vmb_err_sys(err, (int)-n, "cannot read '%s/%s'", s->where, path) :
			vmb_err_set(err, EAGAIN, "'%s/%s' grew while read", s->where, path);
		goto out;
	}
	*out = buf;
	*len = (size_t)n;
	buf = NULL;
out:
	free(buf);
	close(fd);
	return r;
}

static int dir_sync(struct vmb_pub_sink *s, struct vmb_err *err)
{
	struct dir_sink *d = (struct dir_sink *)s;
	char sub[3];
	unsigned i;
	int fd;

	for (i = 0; i < 256; i++) {
		if (!(d->touched[i / 8] & (1u << (i % 8))))
			continue;
		snprintf(sub, sizeof(sub), "%02x", i);
		fd = openat(d->ofd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0 || fsync(fd) < 0) {
			int e = errno;

			if (fd >= 0)
				close(fd);
			return vmb_err_sys(err, e, "cannot fsync '%s/objects/%s'", s->where, sub);
		}
		close(fd);
	}
	memset(d->touched, 0, sizeof(d->touched));
	if (fsync(d->ofd) < 0 || fsync(d->dfd) < 0)
		return vmb_err_sys(err, errno, "cannot fsync '%s'", s->where);
	return 0;
}

static void dir_close(struct vmb_pub_sink *s)
{
	struct dir_sink *d = (struct dir_sink *)s;

	if (d->tfd >= 0)
		close(d->tfd);
	if (d->ofd >= 0)
		close(d->ofd);
	if (d->dfd >= 0)
		close(d->dfd);   /* releases the flock */
	free(d->vbuf);
	free(s->where);
	free(d);
}

static const struct vmb_pub_sink_ops dir_ops = {
	.check = dir_check,
	.put = dir_put,
	.get = dir_get,
	.sync = dir_sync,
	.close = dir_close,
};

/* Remove what a killed publish left in DEST/.tmp (we hold the lock). */
static void clean_tmp(int tfd)
{
	int fd = dup(tfd);
	DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;

	if (!dir) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((de = readdir(dir)) != NULL)
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			unlinkat(tfd, de->d_name, 0);
	closedir(dir);
}

static int subdir(int dfd, const char *name, const char *where, struct vmb_err *err)
{
	int fd;

	if (mkdirat(dfd, name, 0755) == 0)
		fchmodat(dfd, name, 0755, 0);   /* served to anyone: whatever the umask */
	else if (errno != EEXIST)
		return vmb_err_sys(err, errno, "cannot create '%s/%s'", where, name);
	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return vmb_err_sys(err, errno, "cannot open '%s/%s'", where, name);
	return fd;
}

int vmb_pub_sink_dir_open(const char *dest, struct vmb_pub_sink **out, struct vmb_err *err)
{
	struct dir_sink *d;
	int r = 0;

	*out = NULL;
	d = calloc(1, sizeof(*d));
	if (!d || !(d->s.where = strdup(dest))) {
		free(d);
		return vmb_err_set(err, ENOMEM, "out of memory");
	}
	d->s.ops = &dir_ops;
	d->dfd = d->tfd = d->ofd = -1;
	if (mkdir(dest, 0755) == 0) {
		chmod(dest, 0755);
		/* its entry durable before the index that sync makes durable in it */
		r = vmb_fsync_parent(dest);
		if (r < 0) {
			r = vmb_err_sys(err, -r, "cannot sync the directory that holds the "
					"destination '%s'", dest);
			goto out;
		}
	} else if (errno != EEXIST) {
		r = vmb_err_sys(err, errno, "cannot create the destination '%s'", dest);
		goto out;
	}
	d->dfd = open(dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (d->dfd < 0) {
		r = vmb_err_sys(err, errno, "cannot open the destination '%s'", dest);
		goto out;
	}
	if (flock(d->dfd, LOCK_EX | LOCK_NB) < 0) {
		r = errno == EWOULDBLOCK ?
			vmb_err_set(err, EBUSY, "another publish to '%s' is running", dest) :
			vmb_err_sys(err, errno, "cannot lock '%s'", dest);
		goto out;
	}
	d->tfd = subdir(d->dfd, TMP_DIR, dest, err);
	if (d->tfd < 0) {
		r = d->tfd;
		goto out;
	}
	clean_tmp(d->tfd);
	d->ofd = subdir(d->dfd, "objects", dest, err);
	if (d->ofd < 0) {
		r = d->ofd;
		goto out;
	}
	*out = &d->s;
out:
	if (r < 0)
		dir_close(&d->s);
	return r;
}

void vmb_pub_sink_close(struct vmb_pub_sink *s)
{
	if (s)
		s->ops->close(s);
}
