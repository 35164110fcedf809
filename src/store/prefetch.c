/* prefetch.c - fetch every missing data chunk of a file's remote base into the
 * cache (ops.h, vmb_prefetch_file). Resumable by construction: what is cached is
 * skipped (one stat per chunk), so a prefetch killed halfway starts where it
 * stopped. The rate cap sleeps so that the bytes fetched never run ahead of
 * rate * elapsed time.
 */
#include "config.h"
#include "store/ops_int.h"
#include "layer/layer.h"
#include "remote/rimage.h"
#include "base/clock.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The remote image behind file name in dirfd, for prefetch: 0 with *ri (NULL when
 * it has none) and *b (a reference to its base, or NULL; vmb_base_put), or -errno. */
static int rimage_of(struct vmb_layers *ls, int dirfd, const char *name, struct vmb_base **b,
		     struct vmb_rimage **ri, struct vmb_err *err)
{
	char id[VMB_BASE_ID_LEN + 1];
	int fd, rc;

	*b = NULL;
	*ri = NULL;
	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return vmb_err_sys(err, errno, "cannot open '%s'", name);
	rc = vmb_ops_base_of(fd, name, id, err);
	close(fd);
	if (rc <= 0)
		return rc;
	rc = vmb_layers_get(ls, id, b, err);
	if (rc)
		return vmb_err_prefix(err, "cannot prefetch '%s'", name);
	*ri = vmb_layers_remote_of(*b);
	return 0;
}

int vmb_prefetch_file(struct vmb_layers *ls, int dirfd, const char *name,
		      uint64_t rate, void (*progress)(void *arg, uint64_t done,
						      uint64_t total),
		      void *arg, uint64_t *fetched, struct vmb_err *err)
{
	struct vmb_base *b = NULL;
	struct vmb_rimage *ri;
	uint64_t i, n, total = 0, done = 0, got = 0;
	double t0 = vmb_now_s();
	int rc;

	*fetched = 0;
	rc = rimage_of(ls, dirfd, name, &b, &ri, err);
	if (rc || !ri)
		goto out;
	n = vmb_rimage_chunks(ri);
	for (i = 0; i < n; i++)
		if (vmb_rimage_chunk_data(ri, i))
			total += vmb_rimage_chunk_len(ri, i);
	for (i = 0; i < n; i++) {
		uint64_t f = 0;

		if (!vmb_rimage_chunk_data(ri, i))
			continue;
		rc = vmb_rimage_fill(ri, i, &f, err);
		if (rc) {
			vmb_err_prefix(err, "cannot prefetch '%s'", name);
			break;
		}
		got += f;
		done += vmb_rimage_chunk_len(ri, i);
		if (progress)
			progress(arg, done, total);
		if (rate && f) {
			double ahead = (double)got / (double)rate - (vmb_now_s() - t0);

			if (ahead > 0)
				usleep((useconds_t)(ahead * 1e6));
		}
	}
out:
	*fetched = got;
	vmb_base_put(b);
	return rc;
}

int vmb_prefetch_kept(struct vmb_layers *ls, int dirfd, const char *name, uint64_t *kept,
		      uint64_t *total, struct vmb_err *err)
{
	struct vmb_base *b = NULL;
	struct vmb_rimage_info inf;
	struct vmb_rimage *ri;
	int rc;

	*kept = *total = 0;
	rc = rimage_of(ls, dirfd, name, &b, &ri, err);
	if (rc == 0 && ri) {
		rc = vmb_rimage_info(ri, &inf, err);
		if (rc == 0) {
			*kept = inf.cached_bytes;
			*total = inf.cached_bytes + inf.remote_bytes;
		}
	}
	vmb_base_put(b);
	return rc;
}
