/* rimage.c - a remote image as a struct vmb_base (rimage.h).
 *
 * Decisions:
 *  - the image's descriptors of cached chunks stay open in an LRU of
 *    VMB_RIMAGE_FDS slots; a slot has a user count, and a slot in use is never
 *    reused (a reader that finds every slot busy keeps its descriptor to itself and
 *    closes it after the read);
 *    (pieces handed out for splicing hold their slot until pieces_done);
 *  - readahead follows the last VMB_RIMAGE_STREAMS streams of contiguous reads and
 *    starts only once a stream is VMB_RIMAGE_RA_MIN long: a VM's clusters of small
 *    reads (and the kernel's readahead runs they become) fetch no chunk they do not
 *    cover; a sequential copy gets a window as long as it has read, up to the cap;
 *  - a chunk's bytes are read with pread from its cached file at the offset inside
 *    the chunk, or spliced from it (pieces); a cached file shorter than its chunk
 *    is -EIO (the cache verified its length: only a hand-edited cache gets there);
 *    a chunk a reader had to fetch is copied from the cache's memory until the
 *    cache has written it (vmb_cache_get_ref: the reader does not wait for the
 *    write), while readahead fills write their own (several workers write at once;
 *    the cache's one writer would set the pace of a sequential stream); a reader
 *    that waited for a readahead fill whose chunk could not be written (the
 *    cache's file system is full) gets its bytes from memory too, not the error.
 */
#include "config.h"
#include "remote/rimage.h"
#include "remote/remote.h"
#include "remote/pubfmt.h"
#include "remote/cache.h"
#include "remote/fetch.h"
#include "base/digest.h"
#include "base/cancel.h"
#include "base/clock.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct fdslot {
	uint64_t chunk;
	int fd;            /* -1: empty */
	unsigned users;
	uint64_t used;     /* LRU clock */
};

/* A stream of reads: bytes [start, end) were read with no gap (a read that begins
 * inside the span or right at its end continues it: the kernel's readahead requests
 * of one reader may arrive out of order across the daemon's threads). */
struct stream {
	uint64_t start, end;
	uint64_t ahead_to;    /* chunks below this were queued (0: none) */
	uint64_t used;        /* LRU clock; 0: an empty slot */
	uint64_t first_last;  /* the last chunk of its first read */
	int went_on;          /* a later read reached past first_last */
	int skipped_hole;     /* a read of it began past a hole after its end */
};

struct vmb_rimage {
	struct vmb_base base;              /* first: what callers see */
	struct vmb_remote *r;
	char *url;                         /* the layer's own URL (messages, kept key) */
	/* Under mu: other URLs of the same bytes (vmb_rimage_add_mirror), strings
	 * never freed before the image; pref: where the last fetch worked (0: url,
	 * k: mirror[k - 1]) */
	char *mirror[VMB_RIMAGE_MIRRORS];
	unsigned nmirrors, pref;
	uint64_t wait_t0, wait_log;   /* under mu; hard mode, every URL failing: since when (ms,
				       * 0: not waiting), and when it was last logged */
	uint8_t digest[32];
	char hex[65];
	struct vmb_pub_image idx;
	pthread_mutex_t mu;                /* guards what follows */
	struct fdslot fds[VMB_RIMAGE_FDS];
	uint64_t clock;
	struct stream ra[VMB_RIMAGE_STREAMS];   /* readahead: the streams seen last */
	uint64_t ra_clock;
	/* how often the last streams went on past the chunks of their first read: up
	 * on each that did, down on each retired without doing so
	 * (0..VMB_RIMAGE_NEAR_SCORE_MAX) */
	unsigned near_score;
	uint64_t errors;
	char last_error[256];
	/* a bit per chunk: known to be in the cache (this process got it there, or
	 * found it). A hint, set with atomics and never cleared: a chunk evicted since
	 * is found missing by its read, which fetches it again; only the probes of
	 * readahead and splicing skip their look in the cache for it. */
	uint8_t *seen;
};

static void seen_set(struct vmb_rimage *ri, uint64_t i)
{
	__atomic_fetch_or(&ri->seen[i / 8], (uint8_t)(1u << (i % 8)), __ATOMIC_RELAXED);
}

static int seen_get(const struct vmb_rimage *ri, uint64_t i)
{
	return (__atomic_load_n(&ri->seen[i / 8], __ATOMIC_RELAXED) >> (i % 8)) & 1;
}

extern const struct vmb_base_ops vmb_rimage_ops;

struct vmb_rimage *vmb_rimage_of(struct vmb_base *b)
{
	return b && b->ops == &vmb_rimage_ops ? (struct vmb_rimage *)b : NULL;
}

struct vmb_base *vmb_rimage_base(struct vmb_rimage *ri)
{
	return &ri->base;
}

uint64_t vmb_rimage_chunks(const struct vmb_rimage *ri)
{
	return ri->idx.n_chunks;
}

int vmb_rimage_chunk_data(const struct vmb_rimage *ri, uint64_t i)
{
	static const uint8_t zero[32];

	return i < ri->idx.n_chunks && memcmp(ri->idx.chunks[i], zero, 32) != 0;
}

uint64_t vmb_rimage_chunk_len(const struct vmb_rimage *ri, uint64_t i)
{
	uint64_t cs = ri->idx.chunk_size, start = i * cs;

	if (start >= ri->idx.size)
		return 0;
	return ri->idx.size - start < cs ? ri->idx.size - start : cs;
}

int vmb_rimage_chunk_cached(struct vmb_rimage *ri, uint64_t i)
{
	struct vmb_cache *c;

	if (!vmb_rimage_chunk_data(ri, i))
		return 1;
	if (vmb_remote_cache(ri->r, &c, NULL) < 0)
		return 0;
	return vmb_cache_has(c, ri->idx.chunks[i]) == 1;
}

/* ---- lookup: the index's data map ---- */

static enum vmb_bstate ri_lookup(struct vmb_base *b, uint64_t blk, uint64_t *run, int *fd)
{
	struct vmb_rimage *ri = (struct vmb_rimage *)b;
	const struct vmb_pub_image *x = &ri->idx;
	size_t lo = 0, hi = x->n_extents;

	*fd = -1;
	/* the first extent that ends after blk */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (x->ext[mid][0] + x->ext[mid][1] <= blk)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < x->n_extents && x->ext[lo][0] <= blk) {
		*run = x->ext[lo][0] + x->ext[lo][1] - blk;
		return VMB_DATA;
	}
	if (blk >= VMB_BLOCK_MAX)
		*run = 1;
	else
		*run = (lo < x->n_extents ? x->ext[lo][0] : VMB_BLOCK_MAX) - blk;
	return VMB_ZERO;
}

/* ---- getting a chunk's descriptor ---- */

struct fillarg {
	struct vmb_rimage *ri;
	uint64_t chunk;
	uint64_t fetched;
	int used;          /* the URL of the last call's bytes (fetch_any); -1 before
			    * the first (the cache fills again once after wrong bytes) */
};

/* The URLs of ri to try: the one that worked last first, or (after >= 0) the one
 * after URL after first, URL after last. n of them in urls, idx[k] the number of
 * urls[k] (0: ri->url, j: mirror[j - 1]). */
static unsigned urls_of(struct vmb_rimage *ri, int after,
			const char *urls[1 + VMB_RIMAGE_MIRRORS],
			unsigned idx[1 + VMB_RIMAGE_MIRRORS])
{
	unsigned n, k, start;

	pthread_mutex_lock(&ri->mu);
	n = 1 + ri->nmirrors;
	start = after >= 0 ? ((unsigned)after + 1) % n : ri->pref;
	for (k = 0; k < n; k++) {
		idx[k] = (start + k) % n;
		urls[k] = idx[k] ? ri->mirror[idx[k] - 1] : ri->url;
	}
	pthread_mutex_unlock(&ri->mu);
	return n;
}

/* Between two rounds over every URL in hard mode: 1 s, or less when this
 * thread's request is cancelled (1 then). */
static int pause_round(void)
{
	struct timespec ts = { 0, VMB_CANCEL_POLL_MS * 1000000L };
	int i;

	for (i = 0; i < 1000 / VMB_CANCEL_POLL_MS; i++) {
		if (vmb_cancel_requested())
			return 1;
		nanosleep(&ts, NULL);
	}
	return vmb_cancel_requested();
}

/* Fetch an object of ri from its URLs: the one that worked last, then the others
 * (the same content-addressed bytes: whichever answers). *used: the number of the
 * URL that sent the bytes. after >= 0 (the cache's second fill after wrong bytes,
 * which came from URL after): that one is asked last. A fetch that another URL
 * served makes that one the first from then on, said once in the log.
 * In hard mode with mirrors each URL is asked with the soft retry budget, and
 * the rounds over all of them go on while one of them failed for a cause that
 * may pass (-EIO: its budget ran out), until one answers, the request is
 * cancelled (-EINTR) or the fetchers close (-ECANCELED): a read waits for the
 * network as hard mode says, but from whichever URL comes back first. */
static int fetch_any(struct vmb_rimage *ri, int after, const uint8_t digest[32],
		     uint64_t len, void **buf, size_t *got, uint8_t sha[32], int *used,
		     struct vmb_err *err)
{
	const char *urls[1 + VMB_RIMAGE_MIRRORS];
	unsigned idx[1 + VMB_RIMAGE_MIRRORS];
	char first[VMB_ERR_MAX], why[VMB_ERR_MAX];
	uint64_t t0;
	unsigned n, k;
	int rc = -EIO, rc0 = 0, hard, passing;

	n = urls_of(ri, after, urls, idx);
	hard = n > 1 && vmb_remote_opts(ri->r)->hard;
	first[0] = why[0] = '\0';
	if (after >= 0 && n > 1) {   /* why the URL after it is asked first */
		char dh[VMB_SHA256_HEX];

		vmb_sha256_hex(digest, dh);
		snprintf(why, sizeof(why), "object %s from '%s' did not match its digest",
			 dh, urls[n - 1]);
	}
again:
	passing = 0;
	for (k = 0; k < n; k++) {
		if (k)
			vmb_err_clear(err);
		rc = vmb_remote_fetch_object(ri->r, urls[k], digest, len, buf, got, sha, hard,
					     err);
		if (rc == 0 || rc == -ECANCELED || rc == -EINTR || rc == -ENOMEM)
			break;
		passing |= rc == -EIO;
		if (!k) {
			rc0 = rc;
			snprintf(first, sizeof(first), "%s", err ? err->msg : strerror(-rc));
			if (!why[0])
				snprintf(why, sizeof(why), "%s", first);
		}
	}
	if (rc == 0) {
		int said;

		*used = (int)idx[k];
		pthread_mutex_lock(&ri->mu);
		said = (k || after >= 0) && ri->pref != idx[k];
		if (said)
			ri->pref = idx[k];
		pthread_mutex_unlock(&ri->mu);
		if (said)
			vmb_log_msg(vmb_remote_log(ri->r), "remote image %s: reading from '%s' "
				    "(%s)", ri->hex, urls[k], why);
		pthread_mutex_lock(&ri->mu);
		t0 = ri->wait_t0;
		ri->wait_t0 = ri->wait_log = 0;
		pthread_mutex_unlock(&ri->mu);
		if (t0)
			vmb_log_msg(vmb_remote_log(ri->r), "remote image %s: '%s' answers again "
				    "after %" PRIu64 " s", ri->hex, urls[k],
				    (vmb_now_ms() - t0) / 1000);
	} else if (k == n && n > 1) {
		/* every URL failed: the first one's cause, and how many others */
		char last[VMB_ERR_MAX];

		snprintf(last, sizeof(last), "%s", err ? err->msg : strerror(-rc));
		vmb_err_set(err, -rc0, "%s (and from its %u other URL%s: %s)", first, n - 1,
			    n > 2 ? "s" : "", last);
		rc = rc0;
		if (hard && passing) {
			/* said once a minute for the image, whichever reads wait */
			uint64_t now = vmb_now_ms();
			int say;

			pthread_mutex_lock(&ri->mu);
			if (!ri->wait_t0)
				ri->wait_t0 = now;
			t0 = ri->wait_t0;
			say = !ri->wait_log || now - ri->wait_log >= 60000;
			if (say)
				ri->wait_log = now;
			pthread_mutex_unlock(&ri->mu);
			if (say)
				vmb_log_msg(vmb_remote_log(ri->r), "remote image %s: %s; retrying "
					    "until it works (hard mode), %" PRIu64 " s so far",
					    ri->hex, err ? err->msg : first, (now - t0) / 1000);
			if (!pause_round())
				goto again;
			rc = vmb_err_set(err, EINTR, "remote image %s: the reader was "
					 "interrupted while waiting for the network (hard mode; "
					 "last error: %s)", ri->hex, first);
		}
	}
	return rc;
}

static int fill(void *arg, const uint8_t digest[32], uint64_t len, void **buf,
		size_t *got, uint8_t sha[32], int *have_sha, struct vmb_err *err)
{
	struct fillarg *fa = arg;
	int rc = fetch_any(fa->ri, fa->used, digest, len, buf, got, sha, &fa->used, err);

	*have_sha = rc == 0;
	if (rc == 0)
		fa->fetched += len;
	return rc;
}

/* A descriptor of chunk i (data chunk), from the LRU or the cache (fetching it,
 * unless nofetch: then -ENOENT when it is not cached). *slot: the LRU slot it is
 * in (release with put_fd), or -1 (caller closes). Or, when the cache has the
 * chunk's bytes in memory only (this call fetched them, or another fetch of this
 * process did moments ago: vmb_cache_get_ref), *fd = -1 and *mem a reference to
 * them (the caller gives it back with vmb_cache_mem_put). */
static int get_chunk(struct vmb_rimage *ri, uint64_t i, int *fd, int *slot,
		   struct vmb_cache_mem **mem, uint64_t *fetched, int nofetch,
		   struct vmb_err *err)
{
	struct fillarg fa = { .ri = ri, .chunk = i, .used = -1 };
	struct vmb_cache *c;
	int k, hit = 0, rc, victim = -1;

	*slot = -1;
	*mem = NULL;
	pthread_mutex_lock(&ri->mu);
	for (k = 0; k < VMB_RIMAGE_FDS; k++)
		if (ri->fds[k].fd >= 0 && ri->fds[k].chunk == i) {
			ri->fds[k].users++;
			ri->fds[k].used = ++ri->clock;
			*fd = ri->fds[k].fd;
			*slot = k;
			pthread_mutex_unlock(&ri->mu);
			vmb_remote_count(ri->r, 1, 0);
			seen_set(ri, i);
			return 0;
		}
	pthread_mutex_unlock(&ri->mu);

	rc = vmb_remote_cache(ri->r, &c, err);
	if (rc)
		return rc;
	if (nofetch && !seen_get(ri, i) && vmb_cache_has(c, ri->idx.chunks[i]) != 1)
		return -ENOENT;
	rc = vmb_cache_get_ref(c, ri->idx.chunks[i], vmb_rimage_chunk_len(ri, i),
			       nofetch ? NULL : fill, &fa, fd, mem, &hit, err);
	if (fetched)
		*fetched = fa.fetched;
	if (rc)
		return rc;
	vmb_remote_count(ri->r, hit, fa.fetched);
	seen_set(ri, i);
	if (*mem)
		return 0;   /* no descriptor to keep */

	pthread_mutex_lock(&ri->mu);
	for (k = 0; k < VMB_RIMAGE_FDS; k++) {
		if (ri->fds[k].fd >= 0 && ri->fds[k].chunk == i) {
			/* another reader put it in meanwhile: use ours alone */
			victim = -1;
			break;
		}
		if (ri->fds[k].users)
			continue;
		if (victim < 0 || ri->fds[k].fd < 0 ||
		    (ri->fds[victim].fd >= 0 && ri->fds[k].used < ri->fds[victim].used))
			victim = k;
	}
	if (victim >= 0) {
		if (ri->fds[victim].fd >= 0)
			close(ri->fds[victim].fd);
		ri->fds[victim] = (struct fdslot){ .chunk = i, .fd = *fd, .users = 1,
						   .used = ++ri->clock };
		*slot = victim;
	}
	pthread_mutex_unlock(&ri->mu);
	return 0;
}

static void put_fd(struct vmb_rimage *ri, int fd, int slot)
{
	if (slot < 0) {
		close(fd);
		return;
	}
	pthread_mutex_lock(&ri->mu);
	ri->fds[slot].users--;
	pthread_mutex_unlock(&ri->mu);
}

int vmb_rimage_fill(struct vmb_rimage *ri, uint64_t i, uint64_t *fetched,
		    struct vmb_err *err)
{
	struct fillarg fa = { .ri = ri, .chunk = i, .used = -1 };
	struct vmb_cache *c;
	int fd, hit, rc;

	if (fetched)
		*fetched = 0;
	if (!vmb_rimage_chunk_data(ri, i))
		return 0;
	rc = vmb_remote_cache(ri->r, &c, err);
	if (rc)
		return rc;
	if (vmb_cache_has(c, ri->idx.chunks[i]) == 1) {
		seen_set(ri, i);
		return 0;
	}
	/* not ..._ref: a readahead's fill writes its own temporary (several workers at
	 * once), so that the flusher, alone, does not become the pace of a sequential
	 * stream; only a reader's own fill leaves that to the flusher (get_chunk) */
	rc = vmb_cache_get_mem(c, ri->idx.chunks[i], vmb_rimage_chunk_len(ri, i), fill, &fa,
			       &fd, &hit, err);
	if (fetched)
		*fetched = fa.fetched;
	if (rc) {
		vmb_err_prefix(err, "remote image %s (%s): chunk %" PRIu64 " at offset %" PRIu64,
			       ri->hex, ri->url, i, i * (uint64_t)ri->idx.chunk_size);
		return rc;
	}
	close(fd);
	vmb_remote_count(ri->r, hit, fa.fetched);
	seen_set(ri, i);
	return 0;
}

/* ---- readahead ---- */

/* The window's cap in chunks: opts.readahead_max, else VMB_RIMAGE_RA_BYTES of
 * chunks (at least 4). */
static uint64_t ra_cap(const struct vmb_rimage *ri)
{
	uint64_t max = vmb_remote_opts(ri->r)->readahead_max;

	if (!max)
		max = VMB_RIMAGE_RA_BYTES / ri->idx.chunk_size;
	return max < 4 ? 4 : max;
}

/* The first chunk from i on that holds a data block (n_chunks: none), found
 * through the image's extents: a hole of any size costs one lookup. */
static uint64_t next_data_chunk(const struct vmb_rimage *ri, uint64_t i)
{
	uint64_t cs = ri->idx.chunk_size, blk, run, next;

	if (i >= ri->idx.n_chunks)
		return ri->idx.n_chunks;
	blk = i * (cs / VMB_BLOCK_SIZE);
	if (vmb_pub_image_lookup(&ri->idx, blk, &run) == VMB_DATA)
		return i;
	if (run > (UINT64_MAX - blk))
		return ri->idx.n_chunks;
	next = (blk + run) / (cs / VMB_BLOCK_SIZE);   /* >= i: blk is chunk i's first */
	return next < ri->idx.n_chunks ? next : ri->idx.n_chunks;
}

/* The chunk after the n-th data chunk from i on (a window of n data chunks that
 * skips holes), at most n_chunks. */
static uint64_t data_ahead(const struct vmb_rimage *ri, uint64_t i, uint64_t n)
{
	while (n-- > 0) {
		i = next_data_chunk(ri, i);
		if (i >= ri->idx.n_chunks)
			break;
		i++;
	}
	return i;
}

/* Bytes [from, to) hold no data block: a reader that goes from one to the other
 * skipped a hole, as a sparse copy (SEEK_DATA, then read) does. */
static int hole_between(const struct vmb_rimage *ri, uint64_t from, uint64_t to)
{
	uint64_t blk = from / VMB_BLOCK_SIZE, run;

	if (from >= to)
		return 1;
	if (vmb_pub_image_lookup(&ri->idx, blk, &run) != VMB_ZERO) {
		/* the stream ended inside a data block: the hole starts at the next */
		if (from % VMB_BLOCK_SIZE == 0)
			return 0;
		blk++;
		if (blk * VMB_BLOCK_SIZE >= to)
			return 1;
		if (vmb_pub_image_lookup(&ri->idx, blk, &run) != VMB_ZERO)
			return 0;
	}
	return run >= (to - 1) / VMB_BLOCK_SIZE - blk + 1;
}

/* The chunks to queue for a read of [off, end): [*from, *to). A read continues the
 * stream whose span holds off, or ends before it by at most `gap` or by nothing
 * but zero blocks (a sparse copy skipping a hole); other reads start a new stream
 * in the least recently used slot. A new stream reads
 * VMB_RIMAGE_NEAR chunks ahead when most of the streams before it went on: a later
 * read of theirs reached past the chunks of their first read (a VM's clusters of
 * small reads, which the kernel's readahead turns into a run of growing requests,
 * each waiting for the last: their next chunks are then on the way before the
 * requests for them come);
 * random reads, whose streams stop after their first read (whether or not it
 * crosses a chunk's end), soon turn that off (rimage.h). A stream reads further
 * ahead once it is VMB_RIMAGE_RA_MIN bytes long, as far ahead as it is long, up to
 * the cap; one that began at byte 0 counts as VMB_RIMAGE_START_MULT times as long
 * as it is (up to VMB_RIMAGE_RA_MIN). The window of a stream that skipped a hole
 * counts data chunks, past holes. One window serves both: the larger of the two,
 * from the read's end.
 * Returns the read's stream (ri->mu held). */
static struct stream *ra_window(struct vmb_rimage *ri, uint64_t off, uint64_t end,
				uint64_t *from, uint64_t *to)
{
	uint64_t cs = ri->idx.chunk_size, last = (end - 1) / cs, ahead = 0, len;
	/* a read may start this far past a stream's end and still continue it: small
	 * gaps of a cluster, and a reader's next request that overtook the one before
	 * it (the kernel's readahead requests, up to 1 MiB, are answered by several
	 * threads) */
	uint64_t gap = end - off > VMB_RIMAGE_GAP ? end - off : VMB_RIMAGE_GAP;
	struct stream *s = NULL;
	int k;

	*from = *to = 0;
	for (k = 0; k < VMB_RIMAGE_STREAMS; k++) {
		struct stream *t = &ri->ra[k];

		if (!t->used || off < t->start)
			continue;
		if (off <= t->end + gap) {
			s = t;
			break;
		}
		if (hole_between(ri, t->end, off)) {
			s = t;
			s->skipped_hole = 1;
			break;
		}
	}
	if (!s) {
		s = &ri->ra[0];
		for (k = 1; k < VMB_RIMAGE_STREAMS; k++)
			if (ri->ra[k].used < s->used)
				s = &ri->ra[k];
		if (s->used && !s->went_on && ri->near_score)
			ri->near_score--;
		*s = (struct stream){ .start = off, .end = end, .first_last = last };
		if (ri->near_score >= VMB_RIMAGE_NEAR_SCORE_ON)
			ahead = VMB_RIMAGE_NEAR;
	}
	s->used = ++ri->ra_clock;
	if (end > s->end)
		s->end = end;
	if (!s->went_on && (s->end - 1) / cs > s->first_last) {
		s->went_on = 1;
		if (ri->near_score < VMB_RIMAGE_NEAR_SCORE_MAX)
			ri->near_score++;
	}
	len = s->end - s->start;
	/* a stream from the image's start is taken for a sequential reader sooner,
	 * as the kernel's readahead takes a read at a file's start (a probe of a
	 * header is too short to count) */
	if (s->start == 0 && len < VMB_RIMAGE_RA_MIN) {
		len *= VMB_RIMAGE_START_MULT;
		if (len > VMB_RIMAGE_RA_MIN)
			len = VMB_RIMAGE_RA_MIN;
	}
	*to = last + 1 + ahead;
	if (len >= VMB_RIMAGE_RA_MIN) {
		uint64_t n = (len + cs - 1) / cs, t;

		if (n > ra_cap(ri))
			n = ra_cap(ri);
		/* past holes only for a reader seen to skip them: a plain sequential
		 * reader's window counts every chunk, holes included, as it did */
		t = s->skipped_hole ? data_ahead(ri, last + 1, n) : last + 1 + n;
		if (t > *to)
			*to = t;
	}
	if (*to == last + 1) {
		*to = 0;   /* no window */
		return s;
	}
	*from = last + 1 > s->ahead_to ? last + 1 : s->ahead_to;
	if (*to < *from)
		*to = *from;
	if (*to > ri->idx.n_chunks)
		*to = ri->idx.n_chunks;
	if (*to > s->ahead_to)
		s->ahead_to = *to;
	return s;
}

/* Queue the chunks of [from, to) not in the cache to the workers. Returns the first
 * chunk not queued because the queue is full (or has no workers), else to. */
static uint64_t queue_chunks(struct vmb_rimage *ri, uint64_t from, uint64_t to)
{
	for (uint64_t i = next_data_chunk(ri, from); i < to; i = next_data_chunk(ri, i + 1))
		if (vmb_rimage_chunk_data(ri, i) && !seen_get(ri, i) &&
		    !vmb_rimage_chunk_cached(ri, i) &&
		    vmb_remote_queue(ri->r, ri, i) < 0)
			return i;
	return to;
}

/* own: also queue the read's own chunks after its first (fetched beside the
 * reader, no bytes beyond the read), before the window. What a full queue leaves
 * of the window is the stream's again (its ahead_to goes back to it, unless the
 * slot went to another stream meanwhile): its next read queues it (a chunk queued
 * or cached since is skipped then). */
static void readahead(struct vmb_rimage *ri, uint64_t off, uint64_t end, int own)
{
	uint64_t cs = ri->idx.chunk_size, from, to, stop, start;
	struct stream *s;

	pthread_mutex_lock(&ri->mu);
	s = ra_window(ri, off, end, &from, &to);
	start = s->start;
	pthread_mutex_unlock(&ri->mu);
	if (own)
		queue_chunks(ri, off / cs + 1, (end - 1) / cs + 1);
	if (from >= to)
		return;
	stop = queue_chunks(ri, from, to);
	if (stop < to) {
		pthread_mutex_lock(&ri->mu);
		if (s->start == start && s->ahead_to > stop)
			s->ahead_to = stop;
		pthread_mutex_unlock(&ri->mu);
	}
}

/* ---- read ---- */

static ssize_t ri_read(struct vmb_base *b, void *buf, size_t len, uint64_t off,
		       struct vmb_err *err)
{
	struct vmb_rimage *ri = (struct vmb_rimage *)b;
	uint64_t cs = ri->idx.chunk_size, pos = off, end;
	unsigned char *p = buf;

	if (len > SSIZE_MAX || off > ri->idx.size || len > ri->idx.size - off)
		return vmb_err_set(err, EINVAL, "read of remote image %s out of range", ri->hex);
	end = off + len;
	if (len)
		readahead(ri, off, end, 1);
	while (pos < end) {
		uint64_t i = pos / cs, cstart = i * cs;
		uint64_t cend = cstart + vmb_rimage_chunk_len(ri, i);
		size_t n = (size_t)((cend < end ? cend : end) - pos), done = 0;
		struct vmb_cache_mem *mem;
		int fd, slot, rc;

		if (!vmb_rimage_chunk_data(ri, i)) {
			memset(p + (pos - off), 0, n);
			pos += n;
			continue;
		}
		rc = get_chunk(ri, i, &fd, &slot, &mem, NULL, 0, err);
		if (rc == -EINTR)
			return rc;   /* the reader gave up waiting (hard mode): no error of ours */
		if (rc) {
			vmb_err_prefix(err, "remote image %s (%s): chunk %" PRIu64 " at offset %"
				       PRIu64, ri->hex, ri->url, i, cstart);
			pthread_mutex_lock(&ri->mu);
			ri->errors++;
			snprintf(ri->last_error, sizeof(ri->last_error), "%.255s",
				 err ? err->msg : strerror(-rc));
			pthread_mutex_unlock(&ri->mu);
			vmb_remote_count_error(ri->r, err ? err->msg : strerror(-rc));
			/* a reader sees EIO whatever the cause (404, offline, refused...),
			 * the message says which */
			if (rc != -ENOMEM) {
				rc = -EIO;
				if (err)
					err->code = EIO;
			}
			return rc;
		}
		if (mem) {
			/* verified moments ago (its length too), still in memory only */
			memcpy(p + (pos - off), (const char *)mem->data + (pos - cstart), n);
			vmb_cache_mem_put(mem);
			pos += n;
			continue;
		}
		while (done < n) {
			ssize_t got = pread(fd, p + (pos - off) + done, n - done,
					    (off_t)(pos - cstart + done));

			if (got < 0 && errno == EINTR)
				continue;
			if (got <= 0) {
				rc = got < 0 ? -errno : -EIO;
				put_fd(ri, fd, slot);
				return vmb_err_set(err, -rc, "remote image %s: cannot read cached "
						   "chunk %" PRIu64 ": %s", ri->hex, i,
						   got < 0 ? strerror(-rc) : "it is short");
			}
			done += (size_t)got;
		}
		put_fd(ri, fd, slot);
		pos += n;
	}
	return (ssize_t)len;
}

/* ---- pieces: cached chunks handed out for splicing ---- */

static void ri_pieces_done(struct vmb_base *b, struct vmb_base_piece *pc, int n)
{
	struct vmb_rimage *ri = (struct vmb_rimage *)b;

	for (int k = 0; k < n; k++)
		put_fd(ri, pc[k].fd, (int)pc[k].tag);
}

static int ri_pieces(struct vmb_base *b, uint64_t off, size_t len,
		     struct vmb_base_piece *pc, int max)
{
	struct vmb_rimage *ri = (struct vmb_rimage *)b;
	uint64_t cs = ri->idx.chunk_size, pos = off, end, i;
	int n = 0;

	if (!len || off > ri->idx.size || len > ri->idx.size - off)
		return 0;
	end = off + len;
	if ((end - 1) / cs - off / cs + 1 > (uint64_t)max)
		return 0;
	for (i = off / cs; i <= (end - 1) / cs; i++)
		if (!vmb_rimage_chunk_data(ri, i))
			return 0;   /* zeros: read fills them */
	for (; pos < end; n++) {
		struct vmb_cache_mem *mem;
		uint64_t cstart, cend;
		int fd, slot;

		i = pos / cs;
		cstart = i * cs;
		cend = cstart + vmb_rimage_chunk_len(ri, i);
		if (get_chunk(ri, i, &fd, &slot, &mem, NULL, 1, NULL) < 0 || mem) {
			/* not cached, or in memory only: read copies it */
			vmb_cache_mem_put(mem);
			ri_pieces_done(b, pc, n);
			return 0;
		}
		pc[n] = (struct vmb_base_piece){ .fd = fd, .pos = pos - cstart,
						 .len = (size_t)((cend < end ? cend : end) - pos),
						 .owner = b, .tag = slot };
		pos += pc[n].len;
	}
	/* a read like any other for readahead (its own chunks are all here) */
	readahead(ri, off, end, 0);
	return n;
}

static void ri_destroy(struct vmb_base *b)
{
	struct vmb_rimage *ri = (struct vmb_rimage *)b;

	for (int k = 0; k < VMB_RIMAGE_FDS; k++)
		if (ri->fds[k].fd >= 0)
			close(ri->fds[k].fd);
	pthread_mutex_destroy(&ri->mu);
	vmb_pub_image_free(&ri->idx);
	free(ri->seen);
	free(ri->url);
	for (unsigned k = 0; k < ri->nmirrors; k++)
		free(ri->mirror[k]);
	free(ri);
}

const struct vmb_base_ops vmb_rimage_ops = {
	.lookup = ri_lookup,
	.read = ri_read,
	.destroy = ri_destroy,
	.pieces = ri_pieces,
	.pieces_done = ri_pieces_done,
};

/* ---- open, info ---- */

/* The image index from CACHE/meta or one of urls (a mirror's copy: the same
 * digest, checked as well). In hard mode with mirrors, as fetch_any: each URL
 * with the soft budget, rounds while one fails for a cause that may pass. */
static int load_index_max(struct vmb_remote *r, const char *const *urls, unsigned nurls,
			  const uint8_t digest[32], const char *hex, size_t max, void **buf,
			  size_t *len, struct vmb_err *err)
{
	int hard = nurls > 1 && vmb_remote_opts(r)->hard, rc, passing, said = 0;
	unsigned k;

	for (;;) {
		vmb_remote_meta_soft(hard);
		rc = vmb_remote_meta(r, urls[0], digest, max, buf, len, err);
		/* a URL that does not answer may answer later; one that sends wrong
		 * bytes (twice) is not waited for */
		passing = rc == -EIO && !vmb_remote_meta_mismatched();
		for (k = 1; rc && rc != -ENOMEM && rc != -ECANCELED && rc != -EINTR &&
			    k < nurls; k++) {
			struct vmb_err e2;
			int r2;

			vmb_err_clear(&e2);
			r2 = vmb_remote_meta(r, urls[k], digest, max, buf, len, &e2);
			if (r2 == 0 || r2 == -ECANCELED || r2 == -EINTR || r2 == -ENOMEM)
				rc = r2;
			passing |= r2 == -EIO && !vmb_remote_meta_mismatched();
		}
		vmb_remote_meta_soft(0);
		if (!rc || !hard || !passing || rc == -ENOMEM || rc == -ECANCELED ||
		    rc == -EINTR)
			return rc;
		if (!said) {
			said = 1;
			vmb_log_msg(vmb_remote_log(r), "remote image %s: cannot get its index from "
				    "any of its %u URLs (%s); retrying until it works (hard mode)",
				    hex, nurls, err ? err->msg : strerror(-rc));
		}
		if (pause_round())
			return vmb_err_set(err, EINTR, "remote image %s: the reader was "
					   "interrupted while waiting for its index (hard mode)",
					   hex);
	}
}

uint64_t vmb_rimage_index_limit(uint64_t size)
{
	uint64_t blocks, n;

	if (size > (1ULL << 50))
		return VMB_RIMAGE_INDEX_MAX;
	blocks = (size + 4095) / 4096;
	n = VMB_PIDX_HDR + (blocks + 1) / 2 * 16 +
	    (size + VMB_PIDX_CHUNK_MIN - 1) / VMB_PIDX_CHUNK_MIN * 32;
	return n < VMB_RIMAGE_INDEX_MAX ? n : VMB_RIMAGE_INDEX_MAX;
}

static int load_index(struct vmb_remote *r, const char *const *urls, unsigned nurls,
		      const uint8_t digest[32], const char *hex, uint64_t size, void **buf,
		      size_t *len, struct vmb_err *err)
{
	size_t max = (size_t)vmb_rimage_index_limit(size);
	int rc = load_index_max(r, urls, nurls, digest, hex, max, buf, len, err);

	if (rc == -EFBIG && err) {
		char why[sizeof(err->msg)];

		snprintf(why, sizeof(why), "%s", err->msg);
		vmb_err_set(err, EFBIG, "remote image %s (%s): its index is larger than %zu "
			    "bytes, the most the index of an image of %" PRIu64 " bytes may "
			    "have (%s)", hex, urls[0], max, size, why);
	}
	return rc;
}

/* Read, verify and decode the index (vmb_remote_meta), make the image. */
static int rimage_load(struct vmb_remote *r, const char *const *urls, unsigned nurls,
		       const uint8_t digest[32], uint64_t size, struct vmb_rimage **out,
		       size_t *len, struct vmb_err *err)
{
	const char *url = urls[0];
	struct vmb_rimage *ri;
	void *buf = NULL;
	int rc;

	*out = NULL;
	ri = calloc(1, sizeof(*ri));
	if (!ri || !(ri->url = strdup(url))) {
		free(ri);
		return vmb_err_set(err, ENOMEM, "out of memory opening a remote image");
	}
	memcpy(ri->digest, digest, 32);
	vmb_sha256_hex(digest, ri->hex);
	pthread_mutex_init(&ri->mu, NULL);
	for (int k = 0; k < VMB_RIMAGE_FDS; k++)
		ri->fds[k].fd = -1;
	rc = load_index(r, urls, nurls, digest, ri->hex, size, &buf, len, err);
	if (rc) {
		vmb_err_prefix(err, "cannot open remote image %s", ri->hex);
		goto fail;
	}
	rc = vmb_pub_image_decode(buf, *len, &ri->idx, err);
	free(buf);
	if (rc) {
		rc = vmb_err_prefix(err, "remote image %s (%s)", ri->hex, url);
		rc = -EIO;
		goto fail;
	}
	ri->seen = calloc((size_t)(ri->idx.n_chunks / 8 + 1), 1);
	if (!ri->seen) {
		rc = vmb_err_set(err, ENOMEM, "out of memory opening remote image %s", ri->hex);
		goto fail;
	}
	ri->r = r;
	memcpy(ri->base.id, ri->hex, VMB_BASE_ID_LEN);
	ri->base.id[VMB_BASE_ID_LEN] = '\0';
	ri->base.ops = &vmb_rimage_ops;
	ri->base.size = ri->idx.size;
	ri->base.data_blocks = ri->idx.data_blocks;
	ri->base.depth = 1;
	ri->base.refs = 1;
	*out = ri;
	return 0;
fail:
	pthread_mutex_destroy(&ri->mu);
	free(ri->seen);
	vmb_pub_image_free(&ri->idx);
	free(ri->url);
	free(ri);
	return rc;
}

/* An image the context keeps is shared (vmb_remote_image_claim): its index is
 * read, verified and decoded once per process, not at each open of a chain. */
int vmb_rimage_add_mirror(struct vmb_rimage *ri, const char *url)
{
	char *u;
	int rc = 0;

	pthread_mutex_lock(&ri->mu);
	if (!strcmp(ri->url, url))
		goto out;
	for (unsigned k = 0; k < ri->nmirrors; k++)
		if (!strcmp(ri->mirror[k], url))
			goto out;
	if (ri->nmirrors == VMB_RIMAGE_MIRRORS)
		goto out;   /* the ones it has serve */
	u = strdup(url);
	if (!u)
		rc = -ENOMEM;
	else
		ri->mirror[ri->nmirrors++] = u;
out:
	pthread_mutex_unlock(&ri->mu);
	return rc;
}

int vmb_rimage_open(struct vmb_remote *r, const char *url, const uint8_t digest[32],
		    uint64_t size, struct vmb_base **out, struct vmb_err *err)
{
	return vmb_rimage_open_urls(r, &url, 1, digest, size, out, err);
}

int vmb_rimage_open_urls(struct vmb_remote *r, const char *const *urls, unsigned nurls,
			 const uint8_t digest[32], uint64_t size, struct vmb_base **out,
			 struct vmb_err *err)
{
	const char *url = urls[0];
	struct vmb_rimage *ri = NULL;
	struct vmb_base *b = NULL;
	size_t len = 0;
	int rc;

	*out = NULL;
	if (vmb_remote_image_claim(r, url, digest, &b) == 0) {
		rc = rimage_load(r, urls, nurls, digest, size, &ri, &len, err);
		b = rc ? NULL : &ri->base;
		vmb_remote_image_done(r, url, digest, b, len);
		if (rc)
			return rc;
	}
	if (b->size != size) {
		char hex[65];

		vmb_sha256_hex(digest, hex);
		rc = vmb_err_set(err, EIO, "remote image %s (%s) has %" PRIu64 " bytes where "
				 "%" PRIu64 " were expected", hex, url, b->size, size);
		vmb_base_put(b);
		return rc;
	}
	for (unsigned k = 1; k < nurls; k++)
		if (vmb_rimage_add_mirror((struct vmb_rimage *)b, urls[k]) < 0) {
			vmb_base_put(b);
			return vmb_err_set(err, ENOMEM, "out of memory opening a remote image");
		}
	*out = b;
	return 0;
}

int vmb_rimage_info(struct vmb_rimage *ri, struct vmb_rimage_info *info, struct vmb_err *err)
{
	struct vmb_cache *c = NULL;
	uint64_t i;

	memset(info, 0, sizeof(*info));
	pthread_mutex_lock(&ri->mu);
	info->url = ri->pref ? ri->mirror[ri->pref - 1] : ri->url;   /* never freed before ri */
	info->mirrors = ri->nmirrors;
	pthread_mutex_unlock(&ri->mu);
	memcpy(info->index_hex, ri->hex, sizeof(info->index_hex));
	info->size = ri->idx.size;
	info->chunk_size = ri->idx.chunk_size;
	info->n_chunks = ri->idx.n_chunks;
	if (vmb_remote_cache(ri->r, &c, err) < 0)
		c = NULL;
	for (i = 0; i < ri->idx.n_chunks; i++) {
		if (!vmb_rimage_chunk_data(ri, i))
			continue;
		info->data_chunks++;
		if (c && vmb_cache_has(c, ri->idx.chunks[i]) == 1)
			info->cached_bytes += vmb_rimage_chunk_len(ri, i);
		else
			info->remote_bytes += vmb_rimage_chunk_len(ri, i);
	}
	pthread_mutex_lock(&ri->mu);
	info->errors = ri->errors;
	snprintf(info->last_error, sizeof(info->last_error), "%s", ri->last_error);
	pthread_mutex_unlock(&ri->mu);
	return 0;
}
