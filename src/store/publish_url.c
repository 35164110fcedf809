/* publish_url.c - the sink of vmbundlefs publish over a fetcher (remote/fetch.h):
 * s3://BUCKET/PREFIX (PUT signed with SigV4 by libcurl), and whatever else the
 * fetchers can PUT to (file://DIR, a WebDAV-like http(s) server).
 *
 *   check: HEAD: its length; on S3 its ETag against the MD5 of the bytes (a
 *          GET settles an ETag that differs); with verify, a GET of it
 *   put: one PUT (atomic on S3: an object appears whole or not)
 *   get: GET of the whole object
 *   sync: nothing (a PUT is durable once answered)
 * No lock: two publishes to one prefix at once are not serialised (the last index
 * wins; every object either wrote stays valid). */
#include "config.h"
#include "store/publish.h"
#include "remote/fetch.h"
#include "base/digest.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct url_sink {
	struct vmb_pub_sink s;
	struct vmb_fetcher *f;
	int s3;                   /* s3://, s3+http(s)://: ETags are MD5s of PUTs */
	int etag_not_md5;         /* seen an ETag that is not the object's MD5 */
};

static int is_md5_hex(const char *e)
{
	size_t i;

	for (i = 0; i < 32; i++)
		if (!isxdigit((unsigned char)e[i]))
			return 0;
	return e[32] == '\0';
}

/* GET the object: VMB_PUB_GOOD when its SHA-256 is d, else VMB_PUB_DAMAGED. */
static int url_read_back(struct url_sink *u, const char *path, const uint8_t d[32],
			 size_t len, struct vmb_err *err)
{
	uint8_t sha[32];
	void *buf = malloc(len + 1);
	ssize_t n;

	if (!buf)
		return vmb_err_set(err, ENOMEM, "out of memory");
	n = vmb_fetch_get_sha(u->f, path, buf, len + 1, sha, 0, err);
	free(buf);
	if (n == -ENOENT || n == -EFBIG) {   /* gone, or grew, meanwhile */
		vmb_err_clear(err);
		return VMB_PUB_DAMAGED;
	}
	if (n < 0)
		return (int)n;
	return (size_t)n == len && !memcmp(sha, d, 32) ? VMB_PUB_GOOD : VMB_PUB_DAMAGED;
}

static int url_check(struct vmb_pub_sink *s, const char *path, const uint8_t d[32],
		     const void *buf, size_t len, int verify, struct vmb_err *err)
{
	struct url_sink *u = (struct url_sink *)s;
	uint64_t have = 0;
	uint8_t md5[VMB_MD5_LEN];
	char etag[72], hex[2 * VMB_MD5_LEN + 1];
	int r = vmb_fetch_head_etag(u->f, path, &have, etag, sizeof(etag), err), i;

	if (r == -ENOENT) {
		vmb_err_clear(err);
		return VMB_PUB_ABSENT;
	}
	if (r < 0)
		return r;
	if (have != len)
		return VMB_PUB_DAMAGED;
	if (verify)
		return url_read_back(u, path, d, len, err);
	/* S3: the ETag of an object of one PUT is the MD5 of its bytes (not with
	 * SSE-KMS or SSE-C, nor of a multipart upload: "<hex>-N") */
	if (!u->s3 || u->etag_not_md5 || !is_md5_hex(etag))
		return VMB_PUB_GOOD;
	r = vmb_md5(buf, len, md5, err);
	if (r < 0)
		return r;
	for (i = 0; i < VMB_MD5_LEN; i++)
		snprintf(hex + 2 * i, 3, "%02x", md5[i]);
	if (!strcasecmp(hex, etag))
		return VMB_PUB_GOOD;
	r = url_read_back(u, path, d, len, err);
	if (r == VMB_PUB_GOOD)
		u->etag_not_md5 = 1;   /* right bytes: this server's ETags are not MD5s */
	return r;
}

static int url_put(struct vmb_pub_sink *s, const char *path, const void *buf, size_t len,
		   struct vmb_err *err)
{
	struct url_sink *u = (struct url_sink *)s;

	return vmb_fetch_put(u->f, path, buf, len, err);
}

static int url_get(struct vmb_pub_sink *s, const char *path, size_t max, void **out,
		   size_t *len, struct vmb_err *err)
{
	struct url_sink *u = (struct url_sink *)s;
	char *buf = malloc(max ? max : 1), *small;
	ssize_t n;

	*out = NULL;
	*len = 0;
	if (!buf)
		return vmb_err_set(err, ENOMEM, "out of memory");
	n = vmb_fetch_get(u->f, path, 0, 0, buf, max, err);
	if (n < 0) {
		free(buf);
		return (int)n;
	}
	small = realloc(buf, (size_t)n ? (size_t)n : 1);
	*out = small ? small : buf;
	*len = (size_t)n;
	return 0;
}

static int url_sync(struct vmb_pub_sink *s, struct vmb_err *err)
{
	(void)s;
	(void)err;
	return 0;
}

static void url_close(struct vmb_pub_sink *s)
{
	struct url_sink *u = (struct url_sink *)s;

	vmb_fetcher_close(u->f);
	free(s->where);
	free(u);
}

static const struct vmb_pub_sink_ops url_ops = {
	.check = url_check,
	.put = url_put,
	.get = url_get,
	.sync = url_sync,
	.close = url_close,
};

int vmb_pub_sink_url_open(const char *url, const struct vmb_fetch_opts *fo,
			  struct vmb_pub_sink **out, struct vmb_err *err)
{
	struct url_sink *u;
	int r;

	*out = NULL;
	u = calloc(1, sizeof(*u));
	if (!u || !(u->s.where = strdup(url))) {
		free(u);
		return vmb_err_set(err, ENOMEM, "out of memory");
	}
	u->s.ops = &url_ops;
	u->s3 = !strncmp(url, "s3://", 5) || !strncmp(url, "s3+", 3);
	r = vmb_fetcher_open(url, fo, &u->f, err);
	if (r < 0) {
		free(u->s.where);
		free(u);
		return r;
	}
	*out = &u->s;
	return 0;
}
