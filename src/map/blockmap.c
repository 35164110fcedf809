/* blockmap.c - the extent map of one layer of a sparse image (see blockmap.h).
 *
 * The array m->ext is sorted by start, extents never overlap, every extent has
 * len > 0 and a stored state (DATA or ZERO), and two extents that touch always
 * differ in state. Every extent lies below VMB_BLOCK_MAX = 2^51, so start + len
 * never overflows a uint64_t; all public entry points reject block numbers at or
 * above VMB_BLOCK_MAX before doing any arithmetic with them.
 */
#include "config.h"
#include "map/blockmap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MIN_CAP 16u

static uint64_t ext_end(const struct vmb_extent *e)
{
	return e->start + e->len;
}

static int state_valid(unsigned st)
{
	return st == VMB_DATA || st == VMB_ZERO;
}

/* Index of the first extent whose end is > blk, or m->n if none. Since extents are
 * sorted and disjoint, their ends are sorted too. */
static size_t first_end_above(const struct vmb_blockmap *m, uint64_t blk)
{
	size_t lo = 0, hi = m->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (ext_end(&m->ext[mid]) > blk)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

/* Index of the first extent whose start is > blk, or m->n if none. */
static size_t first_start_above(const struct vmb_blockmap *m, uint64_t blk)
{
	size_t lo = 0, hi = m->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (m->ext[mid].start > blk)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

/* Add (sign > 0) or remove (sign < 0) an extent's blocks from the counters. */
static void count_extent(uint64_t *data, uint64_t *zero, const struct vmb_extent *e,
			 int sign)
{
	uint64_t *c = e->state == VMB_DATA ? data : zero;

	if (sign > 0)
		*c += e->len;
	else
		*c -= e->len;
}

/* Make room for at least `need` extents. On failure nothing changes. */
static int reserve(struct vmb_blockmap *m, size_t need)
{
	struct vmb_extent *p;
	size_t cap = m->cap ? m->cap : MIN_CAP;

	if (need <= m->cap)
		return 0;
	while (cap < need) {
		if (cap > SIZE_MAX / 2 / sizeof(*p))
			return -ENOMEM;
		cap *= 2;
	}
	p = realloc(m->ext, cap * sizeof(*p));
	if (!p)
		return -ENOMEM;
	m->ext = p;
	m->cap = cap;
	return 0;
}

/* Give memory back after a large clear or truncate. Best effort: when realloc
 * fails the larger array is simply kept. */
static void maybe_shrink(struct vmb_blockmap *m)
{
	struct vmb_extent *p;
	size_t cap;

	if (m->n == 0) {
		free(m->ext);
		m->ext = NULL;
		m->cap = 0;
		return;
	}
	if (m->cap <= 4 * MIN_CAP || m->n >= m->cap / 4)
		return;
	cap = m->n * 2;
	p = realloc(m->ext, cap * sizeof(*p));
	if (!p)
		return;
	m->ext = p;
	m->cap = cap;
}

void vmb_blockmap_init(struct vmb_blockmap *m)
{
	memset(m, 0, sizeof(*m));
}

void vmb_blockmap_destroy(struct vmb_blockmap *m)
{
	free(m->ext);
	memset(m, 0, sizeof(*m));
}

/* The extents that overlap or touch [start, end) are ext[lo, hi). They are replaced
 * by at most three: the part of ext[lo] before start, [start, end) itself unless it
 * is being cleared, and the part of ext[hi-1] after end, each merged with its
 * neighbour when they share a state. Anything outside [lo, hi) neither touches the
 * range nor can merge with a new piece: a piece that keeps its old extent's start
 * or end keeps that extent's neighbours, which differ from it in state. */
int vmb_blockmap_set(struct vmb_blockmap *m, uint64_t start, uint64_t len,
		     enum vmb_bstate st)
{
	struct vmb_extent piece[3];
	uint64_t end, data, zero;
	size_t lo, hi, r = 0, newn, i;
	int rc;

	if (st != VMB_ABSENT && !state_valid(st))
		return -EINVAL;
	if (len == 0)
		return 0;
	if (start >= VMB_BLOCK_MAX || len > VMB_BLOCK_MAX - start)
		return -EINVAL;
	end = start + len;
	if (m->track) {
		/* first, so that a failure leaves the map unchanged */
		rc = vmb_blockmap_set(m->track, start, len, VMB_DATA);
		if (rc)
			return rc;
	}

	lo = start ? first_end_above(m, start - 1) : 0;   /* first with end >= start */
	hi = first_start_above(m, end);                    /* first with start > end */

	if (lo < hi && m->ext[lo].start < start) {
		piece[r].start = m->ext[lo].start;
		piece[r].len = start - m->ext[lo].start;
		piece[r].state = m->ext[lo].state;
		r++;
	}
	if (st != VMB_ABSENT) {
		if (r && piece[r - 1].state == (uint32_t)st) {
			piece[r - 1].len = end - piece[r - 1].start;
		} else {
			piece[r].start = start;
			piece[r].len = len;
			piece[r].state = st;
			r++;
		}
	}
	if (lo < hi && ext_end(&m->ext[hi - 1]) > end) {
		const struct vmb_extent *e = &m->ext[hi - 1];

		if (r && ext_end(&piece[r - 1]) == end && piece[r - 1].state == e->state) {
			piece[r - 1].len = ext_end(e) - piece[r - 1].start;
		} else {
			piece[r].start = end;
			piece[r].len = ext_end(e) - end;
			piece[r].state = e->state;
			r++;
		}
	}

	newn = m->n - (hi - lo) + r;
	rc = reserve(m, newn);
	if (rc)
		return rc;   /* nothing has been changed yet */

	data = m->data_blocks;
	zero = m->zero_blocks;
	for (i = lo; i < hi; i++)
		count_extent(&data, &zero, &m->ext[i], -1);
	for (i = 0; i < r; i++)
		count_extent(&data, &zero, &piece[i], +1);

	if (hi - lo != r && m->n > hi)
		memmove(&m->ext[lo + r], &m->ext[hi], (m->n - hi) * sizeof(m->ext[0]));
	if (r)
		memcpy(&m->ext[lo], piece, r * sizeof(piece[0]));
	m->n = newn;
	m->data_blocks = data;
	m->zero_blocks = zero;
	if (r < hi - lo)
		maybe_shrink(m);
	return 0;
}

enum vmb_bstate vmb_blockmap_get(const struct vmb_blockmap *m, uint64_t blk,
				 uint64_t *run)
{
	size_t i;

	if (blk >= VMB_BLOCK_MAX) {
		if (run)
			*run = 0;
		return VMB_ABSENT;
	}
	i = first_end_above(m, blk);
	if (i < m->n && m->ext[i].start <= blk) {
		if (run)
			*run = ext_end(&m->ext[i]) - blk;
		return (enum vmb_bstate)m->ext[i].state;
	}
	if (run)
		*run = (i < m->n ? m->ext[i].start : VMB_BLOCK_MAX) - blk;
	return VMB_ABSENT;
}

/* Walks forward from the extent containing or following blk, alternating between
 * stored extents and the ABSENT gaps between them, until a state in mask. */
int vmb_blockmap_next(const struct vmb_blockmap *m, uint64_t blk, unsigned mask,
		      uint64_t *found)
{
	uint64_t cur = blk;
	size_t i;

	mask &= VMB_M_ABSENT | VMB_M_DATA | VMB_M_ZERO;
	if (!mask || blk >= VMB_BLOCK_MAX)
		return -ENXIO;
	i = first_end_above(m, blk);
	while (cur < VMB_BLOCK_MAX) {
		if (i < m->n && m->ext[i].start <= cur) {
			/* cur lies inside ext[i] */
			if (mask & (1u << m->ext[i].state))
				goto hit;
			cur = ext_end(&m->ext[i]);
			i++;
		} else {
			/* cur lies in an ABSENT gap ending at ext[i] or VMB_BLOCK_MAX */
			if (mask & VMB_M_ABSENT)
				goto hit;
			if (i == m->n)
				break;
			cur = m->ext[i].start;
		}
	}
	return -ENXIO;
hit:
	*found = cur;
	return 0;
}

void vmb_blockmap_truncate(struct vmb_blockmap *m, uint64_t nblocks)
{
	size_t i, j;

	if (nblocks >= VMB_BLOCK_MAX)
		return;
	i = first_end_above(m, nblocks);
	if (i == m->n)
		return;
	if (m->track && vmb_blockmap_set(m->track, nblocks, VMB_BLOCK_MAX - nblocks,
					 VMB_DATA) < 0)
		m->track = NULL;   /* the changes are no longer known */
	if (m->ext[i].start < nblocks) {
		/* cut the extent that straddles nblocks, keep its head */
		uint64_t cut = ext_end(&m->ext[i]) - nblocks;

		if (m->ext[i].state == VMB_DATA)
			m->data_blocks -= cut;
		else
			m->zero_blocks -= cut;
		m->ext[i].len -= cut;
		i++;
	}
	for (j = i; j < m->n; j++)
		count_extent(&m->data_blocks, &m->zero_blocks, &m->ext[j], -1);
	m->n = i;
	maybe_shrink(m);
}

int vmb_blockmap_copy(struct vmb_blockmap *dst, const struct vmb_blockmap *src)
{
	struct vmb_extent *p = NULL;

	if (dst == src)
		return 0;
	if (src->n) {
		if (src->n > SIZE_MAX / sizeof(*p))
			return -ENOMEM;
		p = malloc(src->n * sizeof(*p));
		if (!p)
			return -ENOMEM;
		memcpy(p, src->ext, src->n * sizeof(*p));
	}
	free(dst->ext);
	dst->ext = p;
	dst->track = NULL;
	dst->n = dst->cap = src->n;
	dst->data_blocks = src->data_blocks;
	dst->zero_blocks = src->zero_blocks;
	return 0;
}

/* Field by field: struct vmb_extent has tail padding, so no memcmp. */
int vmb_blockmap_equal(const struct vmb_blockmap *a, const struct vmb_blockmap *b)
{
	size_t i;

	if (a->n != b->n)
		return 0;
	for (i = 0; i < a->n; i++) {
		const struct vmb_extent *x = &a->ext[i], *y = &b->ext[i];

		if (x->start != y->start || x->len != y->len || x->state != y->state)
			return 0;
	}
	return 1;
}

int vmb_blockmap_check(const struct vmb_blockmap *m)
{
	uint64_t data = 0, zero = 0;
	size_t i;

	if (m->n > m->cap || (m->n && !m->ext))
		return -EINVAL;
	for (i = 0; i < m->n; i++) {
		const struct vmb_extent *e = &m->ext[i];

		if (!state_valid(e->state) || e->len == 0)
			return -EINVAL;
		if (e->start >= VMB_BLOCK_MAX || e->len > VMB_BLOCK_MAX - e->start)
			return -EINVAL;
		if (i > 0) {
			const struct vmb_extent *p = &m->ext[i - 1];

			if (ext_end(p) > e->start)
				return -EINVAL;   /* unsorted or overlapping */
			if (ext_end(p) == e->start && p->state == e->state)
				return -EINVAL;   /* not merged */
		}
		count_extent(&data, &zero, e, +1);
	}
	if (data != m->data_blocks || zero != m->zero_blocks)
		return -EINVAL;
	return 0;
}

/* ---- patch ---- */

/* Append [start, start+len) in state st to the end of m, merging with the last
 * extent. ABSENT pieces are skipped. */
static void patch_append(struct vmb_blockmap *m, uint64_t start, uint64_t len,
			 uint32_t st)
{
	struct vmb_extent *last = m->n ? &m->ext[m->n - 1] : NULL;

	if (!len || !state_valid(st))
		return;
	if (last && ext_end(last) == start && last->state == st) {
		last->len += len;
	} else {
		m->ext[m->n].start = start;
		m->ext[m->n].len = len;
		m->ext[m->n].state = st;
		m->n++;
	}
	if (st == VMB_DATA)
		m->data_blocks += len;
	else
		m->zero_blocks += len;
}

int vmb_blockmap_patch(struct vmb_blockmap *dst, const struct vmb_blockmap *m,
		       const struct vmb_blockmap *mask, const struct vmb_blockmap *val)
{
	struct vmb_blockmap out;
	size_t i = 0, k, j, need;
	uint64_t pos = 0;

	/* each mask extent splits at most one extent of m in two */
	if (m->n > SIZE_MAX / 2 - mask->n - val->n)
		return -ENOMEM;
	need = m->n + 2 * mask->n + val->n + 1;
	vmb_blockmap_init(&out);
	if (reserve(&out, need) < 0)
		return -ENOMEM;
	for (k = 0; k <= mask->n; k++) {
		uint64_t a = k < mask->n ? mask->ext[k].start : VMB_BLOCK_MAX;
		uint64_t b = k < mask->n ? ext_end(&mask->ext[k]) : VMB_BLOCK_MAX;

		/* m's extents (clipped to [pos, a)) before this range */
		for (; i < m->n && m->ext[i].start < a; i++) {
			uint64_t s = m->ext[i].start > pos ? m->ext[i].start : pos;
			uint64_t e = ext_end(&m->ext[i]) < a ? ext_end(&m->ext[i]) : a;
			size_t to;

			if (s < e)
				patch_append(&out, s, e - s, m->ext[i].state);
			if (ext_end(&m->ext[i]) > a)
				break;   /* its tail may survive past b */
			/* the whole extents after it that end by a, in one copy: none of
			 * them merges with its predecessor (m is canonical) */
			to = first_end_above(m, a);
			if (to > i + 1) {
				memcpy(&out.ext[out.n], &m->ext[i + 1], (to - i - 1) * sizeof(*out.ext));
				for (size_t x = i + 1; x < to; x++)
					count_extent(&out.data_blocks, &out.zero_blocks, &m->ext[x], +1);
				out.n += to - i - 1;
				i = to - 1;
			}
		}
		if (k == mask->n)
			break;
		/* val inside [a, b) */
		for (j = first_end_above(val, a); j < val->n && val->ext[j].start < b; j++) {
			uint64_t s = val->ext[j].start > a ? val->ext[j].start : a;
			uint64_t e = ext_end(&val->ext[j]) < b ? ext_end(&val->ext[j]) : b;

			patch_append(&out, s, e - s, val->ext[j].state);
		}
		/* m's extents wholly inside [a, b) are replaced */
		while (i < m->n && ext_end(&m->ext[i]) <= b)
			i++;
		pos = b;
	}
	vmb_blockmap_destroy(dst);
	*dst = out;
	maybe_shrink(dst);
	return 0;
}
