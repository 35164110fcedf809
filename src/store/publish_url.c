/* publish_url.c - the sink of vmbundlefs publish over a fetcher (remote/fetch.h):
 * s3://BUCKET/PREFIX (PUT signed with SigV4 by libcurl), and whatever else the
 * fetchers can PUT to (file://DIR, a WebDAV-like http(s) server).
 *
 *   exists: HEAD, with the object's length     put: one PUT (atomic on S3: an
 *   get: GET of the whole object                    object appears whole or not)
 *   sync: nothing (a PUT is durable once answered)
 * No lock: two publishes to one prefix at once are not serialised (the last index
 * wins; every object either wrote stays valid). */
#include "config.h"
#include "store/publish.h"
#include "remote/fetch.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct url_sink {
	struct vmb_pub_sink s;
	struct vmb_fetcher *f;
};

static int url_exists(struct vmb_pub_sink *s, const char *path, uint64_t len,
		      struct vmb_err *err)
{
	struct url_sink *u = (struct url_sink *)s;
	uint64_t have = 0;
	int r = vmb_fetch_head(u->f, path, &have, err);

	if (r == -ENOENT) {
		vmb_err_clear(err);
		return 0;
	}
	if (r < 0)
		return r;
	return have == len;
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
	.exists = url_exists,
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
	r = vmb_fetcher_open(url, fo, &u->f, err);
	if (r < 0) {
		free(u->s.where);
		free(u);
		return r;
	}
	*out = &u->s;
	return 0;
}
