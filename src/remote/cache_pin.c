/* cache_pin.c - the cache's named files: pins (pins/<name>, read by the evicter) and
 * url slots (urls/<sha256 of key>) (see cache.h). Both are replaced atomically
 * through tmp/ (temp, fsync, rename, fsync the directory). */
#include "config.h"
#include "remote/cache_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "base/fdio.h"

#define READ_MAX (256u << 20)

int vmb_cache_read_file(struct vmb_cache *c, int dfd, const char *name, char **buf,
			size_t *len, struct vmb_err *err)
{
	struct stat st;
	char *b;
	ssize_t n;
	int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	*buf = NULL;
	*len = 0;
	if (fd < 0)
		return vmb_err_sys(err, errno, "cache '%s': cannot open '%s'", c->path, name);
	if (fstat(fd, &st) < 0) {
		int e = errno;

		close(fd);
		return vmb_err_sys(err, e, "cache '%s': cannot stat '%s'", c->path, name);
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > READ_MAX) {
		close(fd);
		return vmb_err_set(err, EINVAL, "cache '%s': '%s' is not a regular file of at "
				   "most %u bytes", c->path, name, READ_MAX);
	}
	if (!vmb_cache_trusted(c, &st)) {
		/* a pin others could change (unpin what cannot be fetched again), a
		 * saved index (another store offline): not read */
		close(fd);
		return vmb_err_set(err, EPERM, "cache '%s': '%s' is owned by uid %u (mode %04o): "
				   "others could have changed it; remove it", c->path, name,
				   (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777));
	}
	b = malloc((size_t)st.st_size + 1);
	if (!b) {
		close(fd);
		return vmb_err_set(err, ENOMEM, "out of memory");
	}
	n = vmb_pread_full(fd, b, (size_t)st.st_size, 0);
	close(fd);
	if (n < 0) {
		free(b);
		return vmb_err_sys(err, (int)-n, "cache '%s': cannot read '%s'", c->path, name);
	}
	b[n] = '\0';
	*buf = b;
	*len = (size_t)n;
	return 0;
}

int vmb_cache_pin_read(struct vmb_cache *c, const char *name, uint8_t (**v)[32], size_t *n,
		       size_t *cap, struct vmb_err *err)
{
	size_t hl = strlen(VMB_CACHE_PIN_MAGIC), len;
	char *buf, *p, *nl;
	unsigned line = 1;
	int r = vmb_cache_read_file(c, c->pinsfd, name, &buf, &len, err);

	if (r < 0)
		return r;
	if (len < hl || memcmp(buf, VMB_CACHE_PIN_MAGIC, hl) != 0) {
		r = vmb_err_set(err, EINVAL, "cache '%s': pin '%s' is malformed (no "
				"'vmbundlefs-pin 1' header)", c->path, name);
		goto out;
	}
	for (p = buf + hl; p < buf + len; p = nl + 1) {
		line++;
		nl = memchr(p, '\n', (size_t)(buf + len - p));
		if (!nl || nl - p != 64) {
			r = vmb_err_set(err, EINVAL, "cache '%s': pin '%s' is malformed (line %u)",
					c->path, name, line);
			goto out;
		}
		if (*n == *cap) {
			size_t nc = *cap ? 2 * *cap : 256;
			void *nv = realloc(*v, nc * 32);

			if (!nv) {
				r = vmb_err_set(err, ENOMEM, "out of memory");
				goto out;
			}
			*v = nv;
			*cap = nc;
		}
		if (vmb_cache_unhex(p, (*v)[*n]) < 0) {
			r = vmb_err_set(err, EINVAL, "cache '%s': pin '%s' is malformed (line %u)",
					c->path, name, line);
			goto out;
		}
		(*n)++;
	}
out:
	free(buf);
	return r;
}

static int pin_name_check(struct vmb_cache *c, const char *name, struct vmb_err *err)
{
	size_t n = name ? strlen(name) : 0;

	if (n == 0 || n > 200 || name[0] == '.' ||
	    strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != n)
		return vmb_err_set(err, EINVAL, "cache '%s': bad pin name '%s' (1-200 of "
				   "A-Z a-z 0-9 . _ -, not starting with '.')", c->path,
				   name ? name : "");
	return 0;
}

int vmb_cache_pin(struct vmb_cache *c, const char *name, const uint8_t (*digests)[32],
		  size_t n, struct vmb_err *err)
{
	size_t hl = strlen(VMB_CACHE_PIN_MAGIC), len = hl + n * 65;
	char *buf;
	int efd = -1, r = pin_name_check(c, name, err);

	if (r < 0)
		return r;
	buf = malloc(len + 1);
	if (!buf)
		return vmb_err_set(err, ENOMEM, "out of memory");
	memcpy(buf, VMB_CACHE_PIN_MAGIC, hl);
	for (size_t i = 0; i < n; i++) {
		vmb_sha256_hex(digests[i], buf + hl + i * 65);
		buf[hl + i * 65 + 64] = '\n';
	}
	/* under lock/evict: no eviction runs with the old pins once we return */
	r = vmb_cache_lock_evict(c, 1, &efd, err);
	if (r == 0)
		r = vmb_cache_write_atomic(c, "pin", c->pinsfd, name, buf, len, err);
	if (efd >= 0)
		close(efd);
	free(buf);
	return r;
}

int vmb_cache_unpin(struct vmb_cache *c, const char *name, struct vmb_err *err)
{
	int r = pin_name_check(c, name, err);

	if (r < 0)
		return r;
	if (unlinkat(c->pinsfd, name, 0) < 0) {
		if (errno == ENOENT)
			return vmb_err_set(err, ENOENT, "cache '%s': no pin '%s'", c->path, name);
		return vmb_err_sys(err, errno, "cache '%s': cannot remove pin '%s'", c->path, name);
	}
	vmb_cache_fsync_dir(c->pinsfd, NULL);
	return 0;
}

static int url_name(const char *key, char hex[VMB_SHA256_HEX], struct vmb_err *err)
{
	uint8_t d[32];
	int r = vmb_sha256(key, strlen(key), d, err);

	if (r == 0)
		vmb_sha256_hex(d, hex);
	return r;
}

int vmb_cache_url_save(struct vmb_cache *c, const char *key, const void *buf, size_t len,
		       struct vmb_err *err)
{
	char hex[VMB_SHA256_HEX];
	int r = url_name(key, hex, err);

	if (r < 0)
		return r;
	return vmb_cache_write_atomic(c, "url", c->urlsfd, hex, buf, len, err);
}

int vmb_cache_url_load(struct vmb_cache *c, const char *key, void **buf, size_t *len,
		       struct vmb_err *err)
{
	char hex[VMB_SHA256_HEX], *b = NULL;
	int r = url_name(key, hex, err);

	*buf = NULL;
	*len = 0;
	if (r < 0)
		return r;
	if (faccessat(c->urlsfd, hex, F_OK, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT)
		return vmb_err_set(err, ENOENT, "cache '%s': nothing saved for '%s'", c->path, key);
	r = vmb_cache_read_file(c, c->urlsfd, hex, &b, len, err);
	if (r < 0)
		return r;
	*buf = b;
	return 0;
}
