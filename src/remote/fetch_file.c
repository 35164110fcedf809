/* fetch_file.c - the file://DIR transport: the fetcher API over local files. Reads
 * with pread, writes a temporary in the object's directory, fsyncs it, renames it over
 * the name and fsyncs the directory, so a reader sees the old object or the new one,
 * whole. Local errors are not transient: the loop does not retry them. */
#include "config.h"
#include "remote/fetch_int.h"
#include "base/fdio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int file_err(int e, const char *what, struct vmb_err *err)
{
	if (e == ENOENT || e == ENOTDIR)
		return vmb_err_set(err, ENOENT, "not found");
	return vmb_err_sys(err, e, "%s", what);
}

static ssize_t file_get(struct vmb_fetcher *f, struct vmb_fetch_req *req, struct vmb_err *err)
{
	char *p = NULL;
	struct stat st;
	ssize_t rc;
	size_t n;
	int fd = -1;

	if (asprintf(&p, "%s%s", f->base, req->path) < 0)
		return vmb_err_set(err, ENOMEM, "out of memory");
	fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = file_err(errno, "cannot open", err);
		goto out;
	}
	if (fstat(fd, &st)) {
		rc = file_err(errno, "cannot stat", err);
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = vmb_err_set(err, EINVAL, "not a regular file");
		goto out;
	}
	if (req->len) {
		if (req->off > (uint64_t)st.st_size || req->len > (uint64_t)st.st_size - req->off) {
			rc = vmb_err_set(err, EINVAL, "bytes [%llu, %llu) are past the end of "
					 "the object (%lld bytes)",
					 (unsigned long long)req->off,
					 (unsigned long long)(req->off + req->len),
					 (long long)st.st_size);
			goto out;
		}
		n = req->len;
	} else {
		if ((uint64_t)st.st_size > req->max) {
			rc = vmb_err_set(err, EFBIG, "the object is %lld bytes, more than the "
					 "%zu expected", (long long)st.st_size, req->max);
			goto out;
		}
		n = (size_t)st.st_size;
	}
	rc = vmb_pread_full(fd, req->buf, n, req->len ? req->off : 0);
	if (rc < 0)
		rc = vmb_err_sys(err, (int)-rc, "cannot read");
out:
	if (fd >= 0)
		close(fd);
	free(p);
	return rc;
}

static ssize_t file_head(struct vmb_fetcher *f, struct vmb_fetch_req *req, struct vmb_err *err)
{
	char *p = NULL;
	struct stat st;
	int rc = 0;

	if (asprintf(&p, "%s%s", f->base, req->path) < 0)
		return vmb_err_set(err, ENOMEM, "out of memory");
	if (stat(p, &st))
		rc = file_err(errno, "cannot stat", err);
	else if (!S_ISREG(st.st_mode))
		rc = vmb_err_set(err, EINVAL, "not a regular file");
	else
		req->size = (uint64_t)st.st_size;
	free(p);
	return rc;
}

/* mkdir -p of the directories of P. Each directory made is fsynced into its parent
 * before anything goes in it (an error if that fails): the object's own rename is
 * fsynced later, and a power loss must not take the new directory with it. */
static int make_parents(const char *p, struct vmb_err *err)
{
	size_t at = 0;
	int rc = vmb_mkdir_parents(p, 1, &at);

	return rc ? vmb_err_sys(err, -rc, "cannot create its directory '%.*s' (or make "
				"it durable)", (int)at, p) : 0;
}

static int fsync_dir_of(const char *p, struct vmb_err *err)
{
	int rc = vmb_fsync_parent(p);

	return rc ? vmb_err_sys(err, -rc, "cannot sync its directory") : 0;
}

static ssize_t file_put(struct vmb_fetcher *f, struct vmb_fetch_req *req, struct vmb_err *err)
{
	char *p = NULL, *tmp = NULL, *slash;
	struct timespec ts;
	int fd = -1, rc;

	clock_gettime(CLOCK_REALTIME, &ts);
	if (asprintf(&p, "%s%s", f->base, req->path) < 0) {
		p = NULL;
		return vmb_err_set(err, ENOMEM, "out of memory");
	}
	slash = strrchr(p, '/');
	if (asprintf(&tmp, "%.*s/.%s.tmp.%d.%lx", (int)(slash - p), p, slash + 1,
		     (int)getpid(), (unsigned long)ts.tv_nsec ^ (unsigned long)(uintptr_t)req) < 0) {
		tmp = NULL;
		rc = vmb_err_set(err, ENOMEM, "out of memory");
		goto out;
	}
	rc = make_parents(p, err);
	if (rc)
		goto out;
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = vmb_err_sys(err, errno, "cannot create '%s'", tmp);
		goto out;
	}
	rc = vmb_pwrite_full(fd, req->body, req->body_len, 0, NULL);
	if (rc) {
		vmb_err_sys(err, -rc, "cannot write '%s'", tmp);
		goto out;
	}
	if (fsync(fd)) {
		rc = vmb_err_sys(err, errno, "cannot sync '%s'", tmp);
		goto out;
	}
	if (close(fd)) {
		fd = -1;
		rc = vmb_err_sys(err, errno, "cannot write '%s'", tmp);
		goto out;
	}
	fd = -1;
	if (rename(tmp, p)) {
		rc = vmb_err_sys(err, errno, "cannot rename '%s' into place", tmp);
		goto out;
	}
	free(tmp);
	tmp = NULL;
	rc = fsync_dir_of(p, err);
out:
	if (fd >= 0)
		close(fd);
	if (tmp) {
		unlink(tmp);
		free(tmp);
	}
	free(p);
	return rc;
}

static ssize_t file_attempt(void *arg, struct vmb_fetch_req *req, int *transient,
			    struct vmb_err *err)
{
	struct vmb_fetcher *f = arg;

	*transient = 0;
	switch (req->op) {
	case VMB_FETCH_GET:
		return file_get(f, req, err);
	case VMB_FETCH_HEAD:
		return file_head(f, req, err);
	case VMB_FETCH_PUT:
		return file_put(f, req, err);
	}
	return vmb_err_set(err, EINVAL, "unknown request");
}

void vmb_fetch_file_init(struct vmb_fetcher *f)
{
	f->tp.attempt = file_attempt;
	f->tp.arg = f;
}
