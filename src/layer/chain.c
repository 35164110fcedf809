/* chain.c - an open layer and the chain below it, as a struct vmb_base (layer.h,
 * layer_int.h): the merged map, lookup, read, destroy.
 *
 * Decisions:
 *  - the merged map keeps DATA runs only (the gaps read zeros): a run names the
 *    layer (index into lv[]) whose .data holds its blocks at their own offsets;
 *  - a layer's .data ends at the layer's size: the bytes of its last block past
 *    that size read zeros (the layer's content ends there; a file extended after it
 *    was frozen reads zeros there, as on ext4); any other short read is -EIO;
 *  - a layer's .data must still be what its .map describes: same size and
 *    modification time as the stamp (not the inode number nor the birth time, so
 *    that a store copied with its times kept still opens); otherwise -EIO.
 */
#include "config.h"
#include "layer/layer_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- the merged map ---- */

struct runbuf {
	struct vmb_run *r;
	size_t n, cap;
};

static int add_run(struct runbuf *rb, uint64_t start, uint64_t len, uint32_t src,
		   uint64_t zero_from)
{
	struct vmb_run *last = rb->n ? &rb->r[rb->n - 1] : NULL;

	if (!len)
		return 0;
	if (last && last->src == src && last->start + last->len == start &&
	    last->zero_from == UINT64_MAX && zero_from == UINT64_MAX) {
		last->len += len;
		return 0;
	}
	if (rb->n == rb->cap) {
		size_t cap = rb->cap ? rb->cap * 2 : 16;
		struct vmb_run *r = realloc(rb->r, cap * sizeof(*r));

		if (!r)
			return -ENOMEM;
		rb->r = r;
		rb->cap = cap;
	}
	rb->r[rb->n++] = (struct vmb_run){ .start = start, .len = len, .src = src,
					   .zero_from = zero_from };
	return 0;
}

/* Index of the first run that ends after blk (n when none). */
static size_t run_find(const struct vmb_run *r, size_t n, uint64_t blk)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (r[mid].start + r[mid].len <= blk)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* below's runs within [lo, hi), src shifted by one; the layer ends at byte size. */
static int add_below(struct runbuf *rb, const struct vmb_chain *below, uint64_t lo,
		     uint64_t hi, uint64_t size)
{
	size_t i;
	int rc;

	if (!below || lo >= hi)
		return 0;
	for (i = run_find(below->runs, below->nruns, lo);
	     i < below->nruns && below->runs[i].start < hi; i++) {
		const struct vmb_run *r = &below->runs[i];
		uint64_t s = r->start > lo ? r->start : lo;
		uint64_t e = r->start + r->len < hi ? r->start + r->len : hi;
		uint64_t zf = r->zero_from < size ? r->zero_from : size;

		if (zf < e * VMB_BLOCK_SIZE) {
			/* the last block ends early: a run of its own */
			rc = add_run(rb, s, e - 1 - s, r->src + 1, UINT64_MAX);
			if (!rc)
				rc = add_run(rb, e - 1, 1, r->src + 1, zf);
		} else {
			rc = add_run(rb, s, e - s, r->src + 1, UINT64_MAX);
		}
		if (rc)
			return rc;
	}
	return 0;
}

int vmb_chain_merge(const struct vmb_blockmap *own, uint64_t size,
		    const struct vmb_chain *below, uint64_t limit, struct vmb_run **runs,
		    size_t *n)
{
	struct runbuf rb = { 0 };
	uint64_t nblocks = vmb_layer_blocks(size);
	uint64_t lim = below ? (limit < nblocks ? limit : nblocks) : 0, pos = 0;
	size_t i;
	int rc = 0;

	for (i = 0; i < own->n && own->ext[i].start < nblocks; i++) {
		const struct vmb_extent *e = &own->ext[i];
		uint64_t end = e->start + e->len < nblocks ? e->start + e->len : nblocks;

		/* the ABSENT gap before e reads the base, below the limit */
		rc = add_below(&rb, below, pos, e->start < lim ? e->start : lim, size);
		if (rc)
			goto out;
		if (e->state == VMB_DATA) {
			rc = add_run(&rb, e->start, end - e->start, 0, UINT64_MAX);
			if (rc)
				goto out;
		}
		pos = end;
	}
	rc = add_below(&rb, below, pos, lim, size);
out:
	if (rc) {
		free(rb.r);
		rb.r = NULL;
		rb.n = 0;
	}
	*runs = rb.r;
	*n = rb.n;
	return rc;
}

/* ---- the base's operations ---- */

static enum vmb_bstate chain_lookup(struct vmb_base *b, uint64_t blk, uint64_t *run, int *fd)
{
	struct vmb_chain *c = (struct vmb_chain *)b;
	size_t i = run_find(c->runs, c->nruns, blk);

	*fd = -1;
	if (i < c->nruns && c->runs[i].start <= blk) {
		*run = c->runs[i].start + c->runs[i].len - blk;
		if (c->runs[i].zero_from == UINT64_MAX)
			*fd = c->lv[c->runs[i].src]->fd;
		return VMB_DATA;
	}
	if (blk >= VMB_BLOCK_MAX)
		*run = 1;
	else
		*run = (i < c->nruns ? c->runs[i].start : VMB_BLOCK_MAX) - blk;
	return VMB_ZERO;
}

/* len bytes at off of layer l, zeros past its size and past zero_from; never a
 * short count. */
static ssize_t read_layer(const struct vmb_chain *l, unsigned char *buf, size_t len,
			  uint64_t off, uint64_t zero_from, struct vmb_err *err)
{
	uint64_t end = l->base.size < zero_from ? l->base.size : zero_from;
	size_t have = off >= end ? 0 : (end - off < len ? (size_t)(end - off) : len);
	size_t done = 0;
	ssize_t got;

	if (l->remote && have) {
		/* a remote layer: its image reads (fetching what is not cached) */
		got = l->remote->ops->read(l->remote, buf, have, off, err);
		if (got < 0)
			return got;
		done = have;
	}
	/* not vmb_pread_full: it reads zeros where the file ends early */
	while (done < have) {
		got = pread(l->fd, buf + done, have - done, (off_t)(off + done));
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return vmb_err_sys(err, errno, "cannot read layer '%s' (%s) at offset %"
					   PRIu64, l->base.id, l->data_path, off + done);
		if (got == 0)
			return vmb_err_set(err, EIO, "cannot read layer '%s' (%s): it ends at "
					   "offset %" PRIu64 ", before its size %" PRIu64,
					   l->base.id, l->data_path, off + done, l->base.size);
		done += (size_t)got;
	}
	memset(buf + have, 0, len - have);
	return (ssize_t)len;
}

static ssize_t chain_read(struct vmb_base *b, void *buf, size_t len, uint64_t off,
			  struct vmb_err *err)
{
	struct vmb_chain *c = (struct vmb_chain *)b;
	unsigned char *p = buf;
	uint64_t pos = off, end;
	size_t i;
	ssize_t r;

	if (len > SSIZE_MAX || off > UINT64_MAX - len || off + len > VMB_BLOCK_MAX *
	    (uint64_t)VMB_BLOCK_SIZE)
		return vmb_err_set(err, EINVAL, "read of layer '%s' out of range", b->id);
	end = off + len;
	i = run_find(c->runs, c->nruns, pos >> VMB_BLOCK_SHIFT);
	while (pos < end) {
		uint64_t rs = i < c->nruns ? c->runs[i].start * VMB_BLOCK_SIZE : end;
		uint64_t re = i < c->nruns ? (c->runs[i].start + c->runs[i].len) *
					     VMB_BLOCK_SIZE : end;
		size_t n;

		if (pos < rs) {
			/* a gap of the merged map: zeros */
			n = (size_t)((rs < end ? rs : end) - pos);
			memset(p + (pos - off), 0, n);
		} else {
			n = (size_t)((re < end ? re : end) - pos);
			r = read_layer(c->lv[c->runs[i].src], p + (pos - off), n, pos,
				       c->runs[i].zero_from, err);
			if (r < 0)
				return r;
			i++;
		}
		pos += n;
	}
	return (ssize_t)len;
}

/* A range inside one run of a remote layer: that image's cached chunks. */
static int chain_pieces(struct vmb_base *b, uint64_t off, size_t len,
			struct vmb_base_piece *pc, int max)
{
	struct vmb_chain *c = (struct vmb_chain *)b;
	const struct vmb_chain *l;
	const struct vmb_run *r;
	uint64_t end = off + len;
	size_t i;

	if (!len || off > UINT64_MAX - len)
		return 0;
	i = run_find(c->runs, c->nruns, off >> VMB_BLOCK_SHIFT);
	if (i >= c->nruns)
		return 0;
	r = &c->runs[i];
	l = c->lv[r->src];
	if (r->start * VMB_BLOCK_SIZE > off || (r->start + r->len) * VMB_BLOCK_SIZE < end ||
	    !l->remote || !l->remote->ops->pieces || end > l->base.size ||
	    end > r->zero_from)
		return 0;
	return l->remote->ops->pieces(l->remote, off, len, pc, max);
}

static void chain_pieces_done(struct vmb_base *b, struct vmb_base_piece *pc, int n)
{
	(void)b;
	if (n > 0 && pc[0].owner && pc[0].owner->ops->pieces_done)
		pc[0].owner->ops->pieces_done(pc[0].owner, pc, n);
}

static void chain_free(struct vmb_chain *c)
{
	if (c->fd >= 0)
		close(c->fd);
	vmb_base_put(c->below);
	vmb_base_put(c->remote);
	free(c->runs);
	free(c->data_path);
	free(c);
}

static void chain_destroy(struct vmb_base *b)
{
	struct vmb_chain *c = (struct vmb_chain *)b;

	if (c->ls)
		vmb_layers_forget(c->ls, c);
	chain_free(c);
}

const struct vmb_base_ops vmb_chain_ops = {
	.lookup = chain_lookup,
	.read = chain_read,
	.destroy = chain_destroy,
	.pieces = chain_pieces,
	.pieces_done = chain_pieces_done,
};

/* ---- opening ---- */

/* The .data of layer id, checked against its map's stamp. */
static int open_data(struct vmb_layers *ls, struct vmb_chain *c,
		     const struct vmb_layer_hdr *h, struct vmb_err *err)
{
	char name[VMB_BASE_ID_LEN + 8];
	struct stat st;

	snprintf(name, sizeof(name), "%s.data", c->base.id);
	c->fd = openat(ls->dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (c->fd < 0) {
		if (errno == ENOENT)
			return vmb_err_set(err, EIO, "layer '%s' is missing its data (%s)",
					   c->base.id, c->data_path);
		if (errno == ENOMEM || errno == EMFILE || errno == ENFILE)
			return vmb_err_sys(err, errno, "cannot open layer '%s' (%s)",
					   c->base.id, c->data_path);
		return vmb_err_sys(err, EIO, "cannot open layer '%s' (%s): %s", c->base.id,
				   c->data_path, strerror(errno));
	}
	if (fstat(c->fd, &st) < 0)
		return vmb_err_sys(err, EIO, "cannot stat layer '%s' (%s): %s", c->base.id,
				   c->data_path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return vmb_err_set(err, EIO, "layer '%s' is damaged: %s is not a regular file",
				   c->base.id, c->data_path);
	/* O_NONBLOCK only kept a FIFO from hanging the open: not for the callers */
	if (fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) & ~O_NONBLOCK) < 0)
		return vmb_err_sys(err, errno, "cannot open layer '%s' (%s)", c->base.id,
				   c->data_path);
	if ((uint64_t)st.st_size != h->stamp.size)
		return vmb_err_set(err, EIO, "layer '%s' was changed: %s has %" PRIu64
				   " bytes, its map says %" PRIu64, c->base.id, c->data_path,
				   (uint64_t)st.st_size, h->stamp.size);
	if ((int64_t)st.st_mtim.tv_sec != h->stamp.mtime_sec ||
	    (uint32_t)st.st_mtim.tv_nsec != h->stamp.mtime_nsec)
		return vmb_err_set(err, EIO, "layer '%s' was changed: %s was modified at "
				   "%lld.%09ld, its map says %" PRId64 ".%09" PRIu32,
				   c->base.id, c->data_path, (long long)st.st_mtim.tv_sec,
				   (long)st.st_mtim.tv_nsec, h->stamp.mtime_sec,
				   h->stamp.mtime_nsec);
	return 0;
}

int vmb_chain_open(struct vmb_layers *ls, const char *id, uint64_t depth_max,
		   struct vmb_chain **out, struct vmb_err *err)
{
	struct vmb_blockmap own;
	struct vmb_layer_hdr h;
	struct vmb_chain *c, *below = NULL;
	uint64_t limit = 0;
	size_t i;
	int rc;

	*out = NULL;
	if (ls->dirfd >= 0) {
		char rname[VMB_BASE_ID_LEN + 16];

		snprintf(rname, sizeof(rname), "%s.remote", id);
		if (faccessat(ls->dirfd, rname, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
			return vmb_chain_open_remote(ls, id, out, err);
	}
	vmb_blockmap_init(&own);
	c = calloc(1, sizeof(*c));
	if (!c)
		return vmb_err_set(err, ENOMEM, "out of memory opening layer '%s'", id);
	c->fd = -1;
	snprintf(c->base.id, sizeof(c->base.id), "%s", id);
	if (asprintf(&c->data_path, "%s/%s.data", ls->path, id) < 0) {
		c->data_path = NULL;
		rc = vmb_err_set(err, ENOMEM, "out of memory opening layer '%s'", id);
		goto fail;
	}
	rc = vmb_layers_load_map(ls, id, &own, &h, NULL, err);
	if (rc)
		goto fail;
	if (h.depth > depth_max) {
		rc = vmb_err_set(err, EIO, "layer '%s' is corrupt (depth %" PRIu64 " where "
				 "at most %" PRIu64 " fits: its chain loops): %s/%s.map", id,
				 h.depth, depth_max, ls->path, id);
		goto fail;
	}
	rc = open_data(ls, c, &h, err);
	if (rc)
		goto fail;
	if (h.base[0]) {
		rc = vmb_layers_get_locked(ls, h.base, h.depth - 1, &below, err);
		if (rc)
			goto fail;
		c->below = &below->base;
		if (below->base.depth != h.depth - 1) {
			rc = vmb_err_set(err, EIO, "layer '%s' is corrupt (depth %" PRIu64
					 " over base '%s' of depth %u): %s/%s.map", id, h.depth,
					 h.base, below->base.depth, ls->path, id);
			goto fail;
		}
		limit = vmb_layer_blocks(below->base.size);
		if (h.limit < limit)
			limit = h.limit;
	}
	c->limit = limit;
	c->lv[0] = c;
	for (i = 1; i < h.depth; i++)
		c->lv[i] = below->lv[i - 1];
	rc = vmb_chain_merge(&own, h.stamp.size, below, limit, &c->runs,
			     &c->nruns);
	if (rc) {
		rc = vmb_err_set(err, ENOMEM, "out of memory merging the chain of layer '%s'",
				 id);
		goto fail;
	}
	c->base.ops = &vmb_chain_ops;
	c->base.size = h.stamp.size;
	c->base.depth = (unsigned)h.depth;
	c->base.refs = 1;
	for (i = 0; i < c->nruns; i++)
		c->base.data_blocks += c->runs[i].len;
	vmb_blockmap_destroy(&own);
	*out = c;
	return 0;
fail:
	vmb_blockmap_destroy(&own);
	chain_free(c);   /* never in the cache: no forget */
	return rc;
}
