/* publish.c - publish snapshots of bundles to a sink (see publish.h). */
#include "config.h"
#include "store/publish.h"
#include "store/ops_int.h"
#include "store/store.h"
#include "layer/layer.h"
#include "remote/pubfmt.h"
#include "base/digest.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- the digests known to be at the sink (open addressing) ---- */

struct dset {
	uint8_t (*keys)[32];
	size_t cap, n;             /* cap: a power of two (0: empty) */
};

static int dset_has_or_add(struct dset *s, const uint8_t d[32], int add)
{
	static const uint8_t zero[32];
	size_t i, mask;
	uint64_t h;

	if (add && (s->n + 1) * 2 > s->cap) {
		size_t ncap = s->cap ? s->cap * 2 : 1024, j;
		uint8_t (*nk)[32] = calloc(ncap, 32);

		if (!nk)
			return -ENOMEM;
		for (j = 0; j < s->cap; j++) {
			if (!memcmp(s->keys[j], zero, 32))
				continue;
			memcpy(&h, s->keys[j], 8);
			for (i = h & (ncap - 1); memcmp(nk[i], zero, 32); i = (i + 1) & (ncap - 1))
				;
			memcpy(nk[i], s->keys[j], 32);
		}
		free(s->keys);
		s->keys = nk;
		s->cap = ncap;
	}
	if (!s->cap)
		return 0;
	mask = s->cap - 1;
	memcpy(&h, d, 8);
	for (i = h & mask; memcmp(s->keys[i], zero, 32); i = (i + 1) & mask)
		if (!memcmp(s->keys[i], d, 32))
			return 1;
	if (add) {
		memcpy(s->keys[i], d, 32);
		s->n++;
	}
	return 0;
}

/* ---- the publish ---- */

struct pub {
	struct vmb_store *store;
	struct vmb_layers *ls;
	struct vmb_pub_sink *sink;
	const struct vmb_publish_opts *o;
	struct vmb_publish_stats *st;
	uint32_t cs;               /* chunk size */
	struct dset seen;          /* at the sink (found or written by us) */
	unsigned char *buf;        /* one chunk, or a whole small file */
	uint64_t done, total;
};

static int cancelled(struct pub *p, struct vmb_err *err)
{
	if (p->o->cancel && *p->o->cancel)
		return vmb_err_set(err, EINTR, "interrupted");
	return 0;
}

static void progress(struct pub *p, uint64_t add)
{
	p->done += add;
	if (p->o->progress)
		p->o->progress(p->o->progress_arg, p->done, p->total);
}

/* Make object d (len bytes of buf) present at the sink: written unless there. */
static int put_object(struct pub *p, const uint8_t d[32], const void *buf, size_t len,
		      struct vmb_err *err)
{
	char path[VMB_PUB_OBJPATH_LEN];
	int r;

	if (dset_has_or_add(&p->seen, d, 0) == 1) {
		p->st->objects_present++;
		p->st->bytes_present += len;
		return 0;
	}
	vmb_pub_object_path(d, path);
	r = p->sink->ops->check(p->sink, path, d, buf, len, p->o->verify, err);
	if (r < 0)
		return r;
	if (r == VMB_PUB_GOOD) {
		p->st->objects_present++;
		p->st->bytes_present += len;
	} else {
		/* a damaged object is replaced atomically: readers see the old or
		 * the right bytes, never half of them */
		int damaged = r == VMB_PUB_DAMAGED;

		r = p->sink->ops->put(p->sink, path, buf, len, err);
		if (r < 0)
			return r;
		p->st->objects_written++;
		p->st->bytes_written += len;
		if (damaged)
			p->st->objects_repaired++;
	}
	if (dset_has_or_add(&p->seen, d, 1) < 0)
		return vmb_err_set(err, ENOMEM, "out of memory");
	return 0;
}

static int hash_put(struct pub *p, const void *buf, size_t len, uint8_t d[32],
		    struct vmb_err *err)
{
	int r = vmb_sha256(buf, len, d, err);

	return r < 0 ? r : put_object(p, d, buf, len, err);
}

/* Read [off, off + len) of the file (size bytes over base b): zeros past b's end. */
static int read_range(struct vmb_base *b, unsigned char *buf, size_t len, uint64_t off,
		      const char *what, struct vmb_err *err)
{
	size_t have = off >= b->size ? 0 : (size_t)(b->size - off < len ? b->size - off : len);
	ssize_t n;

	if (have) {
		n = b->ops->read(b, buf, have, off, err);
		if (n < 0)
			return vmb_err_prefix(err, "cannot publish '%s'", what);
	}
	memset(buf + have, 0, len - have);
	return 0;
}

static int block_is_zero(const unsigned char *p, size_t n)
{
	static const unsigned char zero[256];
	size_t i;

	for (i = 0; i < n; i += sizeof(zero))
		if (memcmp(p + i, zero, n - i < sizeof(zero) ? n - i : sizeof(zero)))
			return 0;
	return 1;
}

/* Blocks [lo, hi) hold at least one DATA block of b. */
static int has_data(struct vmb_base *b, uint64_t lo, uint64_t hi)
{
	uint64_t blk = lo, run;
	int fd;

	while (blk < hi) {
		if (b->ops->lookup(b, blk, &run, &fd) == VMB_DATA)
			return 1;
		blk += run;
	}
	return 0;
}

/* Every block of [0, n) is DATA. */
static int all_data(struct vmb_base *b, uint64_t n)
{
	uint64_t blk = 0, run;
	int fd;

	while (blk < n) {
		if (b->ops->lookup(b, blk, &run, &fd) != VMB_DATA)
			return 0;
		blk += run;
	}
	return 1;
}

static int ext_add(struct vmb_pub_image *m, size_t *cap, uint64_t blk)
{
	if (m->n_extents && m->ext[m->n_extents - 1][0] + m->ext[m->n_extents - 1][1] == blk) {
		m->ext[m->n_extents - 1][1]++;
	} else {
		if (m->n_extents == *cap) {
			size_t ncap = *cap ? *cap * 2 : 64;
			uint64_t (*ne)[2] = realloc(m->ext, ncap * sizeof(*ne));

			if (!ne)
				return -ENOMEM;
			m->ext = ne;
			*cap = ncap;
		}
		m->ext[m->n_extents][0] = blk;
		m->ext[m->n_extents][1] = 1;
		m->n_extents++;
	}
	m->data_blocks++;
	return 0;
}

/* An image: its chunks, then its image index; *d gets the index's digest. */
static int publish_image(struct pub *p, struct vmb_base *b, uint64_t size, const char *what,
			 uint8_t d[32], struct vmb_err *err)
{
	struct vmb_pub_image m;
	uint64_t c, cb = p->cs / VMB_BLOCK_SIZE, nblocks = (size + VMB_BLOCK_SIZE - 1) /
		VMB_BLOCK_SIZE;
	size_t cap = 0, len = 0;
	void *idx = NULL;
	int r = 0;

	memset(&m, 0, sizeof(m));
	m.chunk_size = p->cs;
	m.size = size;
	m.n_chunks = (size + p->cs - 1) / p->cs;
	m.chunks = calloc(m.n_chunks ? (size_t)m.n_chunks : 1, 32);
	if (!m.chunks)
		return vmb_err_set(err, ENOMEM, "out of memory");
	for (c = 0; c < m.n_chunks; c++) {
		uint64_t lo = c * cb, hi = lo + cb < nblocks ? lo + cb : nblocks, blk, run;
		uint64_t clen = vmb_pub_chunk_len(&m, c), before = m.data_blocks;
		int fd;

		r = cancelled(p, err);
		if (r < 0)
			goto out;
		p->st->chunks++;
		if (!has_data(b, lo, hi)) {
			p->st->zero_chunks++;
			progress(p, clen);
			continue;
		}
		r = read_range(b, p->buf, (size_t)clen, c * p->cs, what, err);
		if (r < 0)
			goto out;
		/* The DATA blocks of the chunk whose bytes are not all zero. */
		for (blk = lo; blk < hi; blk += run) {
			uint64_t k;

			if (b->ops->lookup(b, blk, &run, &fd) != VMB_DATA)
				continue;
			if (run > hi - blk)
				run = hi - blk;
			for (k = blk; k < blk + run; k++) {
				size_t o = (size_t)((k - lo) * VMB_BLOCK_SIZE);
				size_t n = clen - o < VMB_BLOCK_SIZE ? (size_t)(clen - o) :
					VMB_BLOCK_SIZE;

				if (block_is_zero(p->buf + o, n))
					continue;
				if (ext_add(&m, &cap, k) < 0) {
					r = vmb_err_set(err, ENOMEM, "out of memory");
					goto out;
				}
			}
		}
		if (m.data_blocks == before) {
			p->st->zero_chunks++;
		} else {
			r = hash_put(p, p->buf, (size_t)clen, m.chunks[c], err);
			if (r < 0)
				goto out;
		}
		progress(p, clen);
	}
	r = vmb_pub_image_encode(&m, &idx, &len, err);
	if (r == 0)
		r = hash_put(p, idx, len, d, err);
	if (r < 0)
		vmb_err_prefix(err, "cannot publish '%s'", what);
out:
	free(idx);
	vmb_pub_image_free(&m);
	return r;
}

/* A regular file of the snapshot: 'f' (small, no holes) or 'i'. */
static int publish_file(struct pub *p, const struct vmb_mf_ent *me, const char *what,
			struct vmb_pub_ent *pe, struct vmb_err *err)
{
	struct vmb_base *b = NULL;
	uint64_t nblocks = (me->size + VMB_BLOCK_SIZE - 1) / VMB_BLOCK_SIZE;
	int r;

	r = vmb_layers_get(p->ls, me->id, &b, err);
	if (r < 0)
		return vmb_err_prefix(err, "cannot publish '%s'", what);
	pe->size = me->size;
	if (me->size < VMB_PUB_SMALL_MAX && all_data(b, nblocks)) {
		pe->kind = 'f';
		r = read_range(b, p->buf, (size_t)me->size, 0, what, err);
		if (r == 0)
			r = hash_put(p, p->buf, (size_t)me->size, pe->digest, err);
		if (r == 0)
			progress(p, me->size);
		p->st->files++;
	} else {
		pe->kind = 'i';
		r = publish_image(p, b, me->size, what, pe->digest, err);
		p->st->images++;
	}
	p->st->logical_bytes += me->size;
	vmb_base_put(b);
	return r;
}

static int read_snapshot(struct vmb_store *s, const char *spec, struct vmb_manifest *m,
			 struct vmb_err *err)
{
	int sfd = vmb_ops_snapdir(s, 0, err), r;

	memset(m, 0, sizeof(*m));
	if (sfd == -ENOENT)
		return vmb_err_set(err, ENOENT, "no snapshot '%s' in store '%s'", spec, s->path);
	if (sfd < 0)
		return sfd;
	r = vmb_manifest_read(sfd, spec, m, err);
	close(sfd);
	if (r == -ENOENT)
		return vmb_err_set(err, ENOENT, "no snapshot '%s' in store '%s'", spec, s->path);
	return r;
}

/* One bundle: its files, then its manifest object (digest in d). */
static int publish_bundle(struct pub *p, const struct vmb_manifest *m, const char *name,
			  uint8_t d[32], struct vmb_err *err)
{
	struct vmb_pub_bundle pb;
	char *text = NULL, what[2 * NAME_MAX + 8];
	size_t i, j, len = 0;
	int r = 0;

	memset(&pb, 0, sizeof(pb));
	pb.name = strdup(name);
	if (!pb.name)
		return vmb_err_set(err, ENOMEM, "out of memory");
	for (i = 0; i < m->n; i++) {
		const struct vmb_mf_ent *me = &m->ents[i];
		struct vmb_pub_ent pe;

		memset(&pe, 0, sizeof(pe));
		pe.kind = me->kind;
		pe.mode = me->kind == 'l' ? 0 : me->mode;
		pe.mtime_sec = me->mtime_sec;
		pe.mtime_nsec = me->mtime_nsec;
		pe.path = me->path;
		pe.target = me->target;
		if (me->kind == 'f') {
			snprintf(what, sizeof(what), "%s/%.*s", name, NAME_MAX, me->path);
			r = publish_file(p, me, what, &pe, err);
			if (r < 0)
				goto out;
		}
		if (vmb_pub_bundle_add(&pb, &pe) < 0) {
			r = vmb_err_set(err, ENOMEM, "out of memory");
			goto out;
		}
		for (j = 0; j < me->nxattrs; j++)
			if (vmb_pub_bundle_add_xattr(&pb, me->xattrs[j].name, me->xattrs[j].value,
						     me->xattrs[j].len) < 0) {
				r = vmb_err_set(err, ENOMEM, "out of memory");
				goto out;
			}
	}
	r = vmb_pub_bundle_encode(&pb, &text, &len, err);
	if (r == 0)
		r = hash_put(p, text, len, d, err);
	if (r < 0)
		vmb_err_prefix(err, "cannot publish bundle '%s'", name);
out:
	free(text);
	vmb_pub_bundle_free(&pb);
	return r;
}

/* The sink's current index: an empty one when there is none; *raw (may be NULL)
 * gets its bytes (malloc'ed; NULL, 0 when there is none). */
static int previous_index(struct vmb_pub_sink *sink, struct vmb_pub_index *x,
			  void **raw, size_t *rawlen, struct vmb_err *err)
{
	void *buf = NULL;
	size_t len = 0;
	int r;

	memset(x, 0, sizeof(*x));
	if (raw) {
		*raw = NULL;
		*rawlen = 0;
	}
	r = sink->ops->get(sink, VMB_PUB_INDEX_FILE, VMB_PUB_INDEX_MAX, &buf, &len, err);
	if (r == -ENOENT) {
		vmb_err_clear(err);
		return 0;
	}
	if (r == 0) {
		r = vmb_pub_index_decode(buf, len, NULL, x, err);
		if (r < 0)
			vmb_err_prefix(err, "the index at '%s' is not a valid published index "
				       "(not replacing it)", sink->where);
	}
	if (r == 0 && raw) {
		*raw = buf;
		*rawlen = len;
		buf = NULL;
	}
	free(buf);
	return r;
}

/* Before the index is replaced: the sink's index again. When it is not the one
 * this publish started from (another publish to the same DEST replaced it
 * meanwhile: S3 sinks are not locked), *x becomes it with this publish's bundles
 * set over it, so that the other publish's bundles are kept. */
static int merge_current(struct vmb_pub_sink *sink, struct vmb_pub_index *x,
			 const void *raw0, size_t len0, const struct vmb_publish_item *items,
			 const uint8_t (*ds)[32], size_t n, int *merged, struct vmb_err *err)
{
	struct vmb_pub_index cur;
	void *raw = NULL;
	size_t len = 0, i;
	int r;

	*merged = 0;
	r = previous_index(sink, &cur, &raw, &len, err);
	if (r < 0)
		return vmb_err_prefix(err, "cannot read the index at '%s' again before "
				      "replacing it", sink->where);
	if (len == len0 && (!len || !memcmp(raw, raw0, len))) {
		vmb_pub_index_free(&cur);
		free(raw);
		return 0;
	}
	free(raw);
	for (i = 0; i < n && r == 0; i++)
		r = vmb_pub_index_set(&cur, items[i].name, ds[i], err);
	if (r == 0 && cur.generation < x->generation)   /* never backwards */
		cur.generation = x->generation;
	if (r == 0 && cur.generation == UINT64_MAX)
		r = vmb_err_set(err, EOVERFLOW, "the index at '%s' has the last generation",
				sink->where);
	if (r < 0) {
		vmb_pub_index_free(&cur);
		return r;
	}
	vmb_pub_index_free(x);
	*x = cur;
	*merged = 1;
	return 0;
}

/* After the index is replaced: it names this publish's bundles (another publish
 * may have replaced it in the moment between merge_current and the put). */
static int check_put(struct vmb_pub_sink *sink, const struct vmb_publish_item *items,
		     const uint8_t (*ds)[32], size_t n, struct vmb_err *err)
{
	struct vmb_pub_index cur;
	size_t i;
	int r = previous_index(sink, &cur, NULL, NULL, err);

	if (r < 0)
		return vmb_err_prefix(err, "cannot read the index at '%s' back", sink->where);
	for (i = 0; i < n && r == 0; i++) {
		const struct vmb_pub_ibundle *b = vmb_pub_index_find(&cur, items[i].name);

		if (!b || memcmp(b->digest, ds[i], 32))
			r = vmb_err_set(err, EAGAIN, "another publish to '%s' replaced its "
					"index at the same moment: bundle '%s' is not in it as "
					"published; run the publish again (it writes only what "
					"is missing)", sink->where, items[i].name);
	}
	vmb_pub_index_free(&cur);
	return r;
}

int vmb_publish(struct vmb_store *store, struct vmb_layers *ls,
		const struct vmb_publish_item *items, size_t n, struct vmb_pub_sink *sink,
		const struct vmb_publish_opts *o, struct vmb_publish_stats *st,
		struct vmb_err *err)
{
	struct pub p;
	struct vmb_manifest *ms = NULL;
	struct vmb_pub_index x;
	uint8_t (*ds)[32] = NULL;
	void *raw0 = NULL;
	char *text = NULL;
	size_t i, j, len = 0, len0 = 0;
	int r = 0, merged = 0;

	memset(&p, 0, sizeof(p));
	memset(&x, 0, sizeof(x));
	memset(st, 0, sizeof(*st));
	p.store = store;
	p.ls = ls;
	p.sink = sink;
	p.o = o;
	p.st = st;
	p.cs = o->chunk_size ? o->chunk_size : VMB_PIDX_CHUNK_DEFAULT;
	if (p.cs < VMB_PIDX_CHUNK_MIN || p.cs > VMB_PIDX_CHUNK_MAX || (p.cs & (p.cs - 1)))
		return vmb_err_set(err, EINVAL, "bad chunk size %" PRIu32 ": a power of two "
				   "from 64 KiB to 16 MiB", p.cs);
	if (n == 0)
		return vmb_err_set(err, EINVAL, "nothing to publish");
	for (i = 0; i < n; i++) {
		r = vmb_pub_name_check(items[i].name, err);
		if (r < 0)
			return vmb_err_prefix(err, "cannot publish");
		for (j = 0; j < i; j++)
			if (!strcmp(items[i].name, items[j].name))
				return vmb_err_set(err, EINVAL, "cannot publish '%s' twice",
						   items[i].name);
	}
	/* Everything that can be refused is refused before the first write. */
	ms = calloc(n, sizeof(*ms));
	ds = calloc(n, sizeof(*ds));
	p.buf = malloc(p.cs > VMB_PUB_SMALL_MAX ? p.cs : VMB_PUB_SMALL_MAX);
	if (!ms || !ds || !p.buf) {
		r = vmb_err_set(err, ENOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < n; i++) {
		r = read_snapshot(store, items[i].snapshot, &ms[i], err);
		if (r < 0)
			goto out;
		for (j = 0; j < ms[i].n; j++)
			if (ms[i].ents[j].kind == 'f')
				p.total += ms[i].ents[j].size;
	}
	r = previous_index(sink, &x, &raw0, &len0, err);
	if (r < 0)
		goto out;
	vmb_op_step("publish", 2);   /* test hook (store/ops.h): the index read */
	if (x.generation == UINT64_MAX) {
		r = vmb_err_set(err, EOVERFLOW, "the index at '%s' has the last generation",
				sink->where);
		goto out;
	}
	progress(&p, 0);
	for (i = 0; i < n; i++) {
		r = publish_bundle(&p, &ms[i], items[i].name, ds[i], err);
		if (r == 0)
			r = vmb_pub_index_set(&x, items[i].name, ds[i], err);
		if (r < 0)
			goto out;
	}
	/* Every object durable before the index names it. */
	r = sink->ops->sync(sink, err);
	if (r < 0)
		goto out;
	r = merge_current(sink, &x, raw0, len0, items, (const uint8_t (*)[32])ds, n, &merged,
			  err);
	if (r < 0)
		goto out;
	st->merged = merged;
	x.generation++;
	x.created = o->now ? o->now : (int64_t)time(NULL);
	r = vmb_pub_index_encode(&x, o->key, &text, &len, err);
	if (r < 0)
		goto out;
	r = sink->ops->put(sink, VMB_PUB_INDEX_FILE, text, len, err);
	if (r < 0)
		goto out;
	st->objects_written++;
	st->bytes_written += len;
	st->generation = x.generation;
	r = check_put(sink, items, (const uint8_t (*)[32])ds, n, err);
out:
	for (i = 0; ms && i < n; i++)
		vmb_manifest_free(&ms[i]);
	free(ms);
	free(ds);
	free(raw0);
	free(text);
	free(p.buf);
	free(p.seen.keys);
	vmb_pub_index_free(&x);
	return r;
}
