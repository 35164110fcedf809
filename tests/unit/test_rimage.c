/* test_rimage.c - unit tests of remote images (src/remote/rimage.c, remote.c) and of
 * remote layers (src/layer/remote_layer.c), on a published directory the test
 * writes itself with pubfmt's encoders and a file:// URL (no network, no mount):
 * lookup from the index before any chunk is fetched, reads byte-equal to the
 * source, zero chunks never fetched, readahead filling the chunks ahead of a
 * sequential reader and never those after a cluster of small reads, warm reads from the cache, offline (the directory moved away):
 * cached chunks read, others -EIO naming the URL; wrong bytes served: -EIO, never
 * wrong bytes; the .remote layer format and its bad inputs; a local layer over a
 * remote one (a chain whose bottom is remote); list/stat/remove of remote layers;
 * open images kept by the context (an index read, verified and decoded once per
 * process, one loader at a time, the LRU limit) and the preload of a store's
 * remote layers (from CACHE/meta only); a large index fetched once, not in growing
 * buffers, and by one caller at a time (test_meta_flight); vmb_remote_top_once
 * (one index for every bundle of a URL mount); an older signed top index, or one
 * of the same generation with other content, refused as a rollback of the saved
 * one (per URL; without a key used; accepted once the slot is removed). */
#include "config.h"
#include "remote/remote.h"
#include "remote/rimage.h"
#include "remote/pubfmt.h"
#include "remote/cache.h"
#include "remote/fetch.h"
#include "layer/layer.h"
#include "base/crc32c.h"
#include "base/digest.h"
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#define BS 4096u
#define CS (64u << 10)

static char tmpdir[1024];
static char pubdir[1100], cachedir[1100], url[1200];

static void mkdirs(const char *p)
{
	char b[4700];

	snprintf(b, sizeof(b), "mkdir -p '%s'", p);
	if (system(b) != 0)
		abort();
}

static void put_object(const void *buf, size_t len, uint8_t d[32])
{
	char rel[VMB_PUB_OBJPATH_LEN], path[4400], dir[4500];
	int fd;

	vmb_sha256(buf, len, d, NULL);
	vmb_pub_object_path(d, rel);
	snprintf(path, sizeof(path), "%s/%s", pubdir, rel);
	snprintf(dir, sizeof(dir), "%s", path);
	*strrchr(dir, '/') = '\0';
	mkdirs(dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, buf, len) != (ssize_t)len)
		abort();
	close(fd);
}

/* Publish content (size bytes) as an image; its index digest into d. Blocks that
 * are all zero are holes. */
static void publish_image(const unsigned char *content, uint64_t size, uint8_t d[32])
{
	static const unsigned char zero[BS];
	struct vmb_pub_image x = { 0 };
	uint64_t nb = (size + BS - 1) / BS, b, i;
	void *enc;
	size_t len;

	x.chunk_size = CS;
	x.size = size;
	x.n_chunks = (size + CS - 1) / CS;
	x.ext = calloc(nb + 1, sizeof(*x.ext));
	x.chunks = calloc(x.n_chunks + 1, sizeof(*x.chunks));
	for (b = 0; b < nb; b++) {
		size_t l = size - b * BS < BS ? (size_t)(size - b * BS) : BS;

		if (!memcmp(content + b * BS, zero, l))
			continue;
		if (x.n_extents && x.ext[x.n_extents - 1][0] + x.ext[x.n_extents - 1][1] == b)
			x.ext[x.n_extents - 1][1]++;
		else {
			x.ext[x.n_extents][0] = b;
			x.ext[x.n_extents][1] = 1;
			x.n_extents++;
		}
		x.data_blocks++;
	}
	for (i = 0; i < x.n_chunks; i++) {
		uint64_t s = i * CS, l = size - s < CS ? size - s : CS, k;
		int data = 0;

		for (k = 0; k < l; k += BS)
			if (memcmp(content + s + k, zero, l - k < BS ? l - k : BS))
				data = 1;
		if (data)
			put_object(content + s, (size_t)l, x.chunks[i]);
	}
	if (vmb_pub_image_encode(&x, &enc, &len, NULL) != 0)
		abort();
	put_object(enc, len, d);
	free(enc);
	free(x.ext);
	free(x.chunks);
}

static unsigned char *content;
static uint64_t csize;
static uint8_t idx[32];

static void setup(void)
{
	uint64_t i;

	snprintf(pubdir, sizeof(pubdir), "%s/pub", tmpdir);
	snprintf(cachedir, sizeof(cachedir), "%s/cache", tmpdir);
	snprintf(url, sizeof(url), "file://%s", pubdir);
	mkdirs(pubdir);
	/* 20 chunks and a short one: data, a zero chunk (5), a chunk with holes (7),
	 * a zero tail (15..17), data at the end */
	csize = 20 * (uint64_t)CS + 5000;
	content = calloc(1, csize);
	for (i = 0; i < csize; i++)
		content[i] = (unsigned char)(i * 7 + i / 4096 + 3 * (i / CS));   /* chunks differ */
	memset(content + 5 * CS, 0, CS);
	memset(content + 7 * CS, 0, 3 * BS);
	memset(content + 7 * CS + 5 * BS, 0, 2 * BS);
	memset(content + 15 * CS, 0, 3 * CS);
	publish_image(content, csize, idx);
}

static struct vmb_remote *open_with(struct vmb_remote_opts *o, const struct vmb_log *lg)
{
	struct vmb_remote *r = NULL;
	struct vmb_err e = { 0 };

	o->cache_dir = cachedir;
	if (vmb_remote_open(o, lg, &r, &e) != 0) {
		fprintf(stderr, "%s\n", e.msg);
		abort();
	}
	return r;
}

static struct vmb_remote *open_remote(int offline)
{
	struct vmb_remote_opts o = { 0 };

	o.offline = offline;
	o.workers = 2;
	o.readahead_max = 4;
	return open_with(&o, NULL);
}

static int cached(struct vmb_remote *r, uint64_t chunk)
{
	struct vmb_cache *c;
	uint8_t d[32];
	uint64_t l = csize - chunk * CS < CS ? csize - chunk * CS : CS;

	vmb_sha256(content + chunk * CS, (size_t)l, d, NULL);
	if (vmb_remote_cache(r, &c, NULL))
		return -1;
	return vmb_cache_has(c, d);
}

static void test_lookup_read(void)
{
	struct vmb_remote *r = open_remote(0);
	struct vmb_base *b = NULL;
	struct vmb_err e = { 0 };
	unsigned char *buf = malloc(csize);
	uint64_t blk, run, nb = (csize + BS - 1) / BS, data = 0;
	int fd;

	CHECK_RC(vmb_rimage_open(r, url, idx, csize, &b, &e), 0);
	REQUIRE(b);
	CHECK_EQ(b->size, csize);
	CHECK_EQ(b->depth, 1);
	/* the map is exact before any chunk is fetched */
	for (blk = 0; blk < nb; blk++) {
		static const unsigned char zero[BS];
		size_t l = csize - blk * BS < BS ? (size_t)(csize - blk * BS) : BS;
		enum vmb_bstate s = b->ops->lookup(b, blk, &run, &fd);

		CHECK_EQ(fd, -1);
		CHECK(run >= 1);
		CHECK_EQ(s == VMB_DATA, memcmp(content + blk * BS, zero, l) != 0);
		data += s == VMB_DATA;
	}
	CHECK_EQ(b->data_blocks, data);
	CHECK_EQ(cached(r, 0), 0);
	/* a read in the middle, then the whole */
	CHECK_EQ(b->ops->read(b, buf, 10000, 3 * CS - 5000, &e), 10000);
	CHECK(!memcmp(buf, content + 3 * CS - 5000, 10000));
	CHECK_EQ(b->ops->read(b, buf, (size_t)csize, 0, &e), (int64_t)csize);
	CHECK(!memcmp(buf, content, csize));
	/* warm: again, from the descriptors kept open */
	CHECK_EQ(b->ops->read(b, buf, (size_t)csize, 0, &e), (int64_t)csize);
	CHECK(!memcmp(buf, content, csize));
	/* out of range */
	CHECK_RC((int)b->ops->read(b, buf, 2, csize - 1, &e), -EINVAL);
	{
		struct vmb_rimage_info inf;

		CHECK_RC(vmb_rimage_info(vmb_rimage_of(b), &inf, &e), 0);
		CHECK_EQ(inf.remote_bytes, 0);
		CHECK_EQ(inf.data_chunks, 17);
		CHECK_STR(inf.url, "file://");
	}
	vmb_base_put(b);
	vmb_remote_close(r);
	free(buf);
}

static void test_readahead_offline(void)
{
	struct vmb_remote *r;
	struct vmb_base *b = NULL;
	struct vmb_err e = { 0 };
	unsigned char buf[CS];
	char moved[4300], cmd[9000];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", cachedir);
	CHECK_EQ(system(cmd), 0);
	r = open_remote(0);
	CHECK_RC(vmb_rimage_open(r, url, idx, csize, &b, &e), 0);
	REQUIRE(b);
	/* a read's own chunks come, nothing after them */
	CHECK_EQ(b->ops->read(b, buf, CS, CS / 2, &e), CS);
	CHECK(!memcmp(buf, content + CS / 2, CS));
	/* a random read does not read ahead */
	CHECK_EQ(b->ops->read(b, buf, 100, 12 * CS, &e), 100);
	CHECK_RC(vmb_remote_idle(r, 30000), 0);   /* any readahead has run */
	CHECK_EQ(cached(r, 2), 0);
	CHECK_EQ(cached(r, 13), 0);
	vmb_base_put(b);
	vmb_remote_close(r);

	/* offline: the published directory gone */
	snprintf(moved, sizeof(moved), "%s.away", pubdir);
	CHECK_EQ(rename(pubdir, moved), 0);
	r = open_remote(0);
	CHECK_RC(vmb_rimage_open(r, url, idx, csize, &b, &e), 0);   /* index in CACHE/meta */
	REQUIRE(b);
	CHECK_EQ(b->ops->read(b, buf, CS, 0, &e), CS);
	CHECK(!memcmp(buf, content, CS));
	CHECK_EQ(b->ops->read(b, buf, 100, 12 * CS, &e), 100);
	CHECK(!memcmp(buf, content + 12 * CS, 100));
	CHECK_EQ(b->ops->read(b, buf, CS, 5 * CS, &e), CS);   /* a zero chunk */
	CHECK(!memcmp(buf, content + 5 * CS, CS));
	memset(&e, 0, sizeof(e));
	CHECK_RC((int)b->ops->read(b, buf, 100, 19 * CS, &e), -EIO);
	CHECK_STR(e.msg, "chunk 19");
	CHECK_STR(e.msg, url);
	{
		struct vmb_remote_stats st;

		vmb_remote_stats(r, &st);
		CHECK_EQ(st.errors, 1);
	}
	vmb_base_put(b);
	vmb_remote_close(r);
	/* with offline set, nothing is even tried */
	r = open_remote(1);
	CHECK_RC(vmb_rimage_open(r, url, idx, csize, &b, &e), 0);
	REQUIRE(b);
	CHECK_RC((int)b->ops->read(b, buf, 100, 19 * CS, &e), -EIO);
	CHECK_STR(e.msg, "offline");
	vmb_base_put(b);
	vmb_remote_close(r);
	CHECK_EQ(rename(moved, pubdir), 0);
}

/* A second image for readahead: RA_CHUNKS data chunks (more than
 * VMB_RIMAGE_RA_MIN + the window). */
#define RA_CHUNKS 96u
static unsigned char *racontent;
static uint8_t raidx[32];

/* Whether chunk `chunk` of an image whose bytes are `bytes` is in r's cache. */
static int content_cached(struct vmb_remote *r, const unsigned char *bytes,
			  uint64_t chunk)
{
	struct vmb_cache *c;
	uint8_t d[32];

	vmb_sha256(bytes + chunk * CS, CS, d, NULL);
	if (vmb_remote_cache(r, &c, NULL))
		return -1;
	return vmb_cache_has(c, d);
}

static int ra_cached(struct vmb_remote *r, uint64_t chunk)
{
	return content_cached(r, racontent, chunk);
}

/* A fresh cache and context (2 workers, the defaults otherwise: the window's cap,
 * the trigger) and the image idx of `size` bytes. queue_max:
 * vmb_remote_opts.queue_max (0: the default) */
static void ra_open(struct vmb_remote **r, struct vmb_base **b, const uint8_t idx_[32],
		    uint64_t size, unsigned queue_max)
{
	struct vmb_remote_opts o = { 0 };
	struct vmb_err e = { 0 };
	char cmd[9000];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", cachedir);
	CHECK_EQ(system(cmd), 0);
	o.cache_dir = cachedir;
	o.workers = 2;
	o.queue_max = queue_max;
	*r = NULL;
	*b = NULL;
	REQUIRE(vmb_remote_open(&o, NULL, r, &e) == 0);
	CHECK_RC(vmb_rimage_open(*r, url, idx_, size, b, &e), 0);
	REQUIRE(*b);
}

/* queue_max: vmb_remote_opts.queue_max (0: the default) */
static void ra_setup_q(struct vmb_remote **r, struct vmb_base **b, unsigned queue_max)
{
	uint64_t i;

	if (!racontent) {
		racontent = malloc(RA_CHUNKS * (size_t)CS);
		REQUIRE(racontent);
		for (i = 0; i < RA_CHUNKS * (uint64_t)CS; i++)
			racontent[i] = (unsigned char)(i * 13 + i / 4096 + 5 * (i / CS) + 1);
		publish_image(racontent, RA_CHUNKS * (uint64_t)CS, raidx);
	}
	ra_open(r, b, raidx, RA_CHUNKS * (uint64_t)CS, queue_max);
}

static void ra_setup(struct vmb_remote **r, struct vmb_base **b)
{
	ra_setup_q(r, b, 0);
}

/* A VM's cluster of small reads (forward, small gaps, inside two chunks) and a
 * short run of growing contiguous reads (what the kernel's readahead makes of
 * one): only the chunks read are fetched, none after them. */
static void test_readahead_cluster(void)
{
	struct vmb_remote *r;
	struct vmb_base *b;
	struct vmb_remote_stats st;
	struct vmb_err e = { 0 };
	unsigned char *buf = malloc(4 * CS);
	uint64_t off = 10 * (uint64_t)CS + 3 * BS, i, nwant = 0;
	size_t len;
	int k;

	REQUIRE(buf);
	ra_setup(&r, &b);
	for (k = 0; k < 10; k++) {
		len = (size_t)(1 + k % 3) * BS;
		CHECK_EQ(b->ops->read(b, buf, len, off, &e), (int64_t)len);
		CHECK(!memcmp(buf, racontent + off, len));
		off += len + (uint64_t)(k % 2) * BS;
	}
	CHECK(off < 12 * (uint64_t)CS);
	for (off = 30 * (uint64_t)CS, len = 16 * BS; len <= 4 * CS; off += len, len *= 2) {
		CHECK_EQ(b->ops->read(b, buf, len, off, &e), (int64_t)len);
		CHECK(!memcmp(buf, racontent + off, len));
	}
	CHECK_RC(vmb_remote_idle(r, 30000), 0);   /* readahead, if any, has run */
	for (i = 0; i < RA_CHUNKS; i++) {
		int want = (i >= 10 && i < 12) || (i >= 30 && i * CS < off);

		if (ra_cached(r, i) != want)
			fprintf(stderr, "chunk %llu: cached %d, want %d\n", (unsigned long long)i,
				ra_cached(r, i), want);
		CHECK_EQ(ra_cached(r, i), want);
		nwant += (uint64_t)want;
	}
	vmb_remote_stats(r, &st);
	CHECK_EQ(st.fetch_bytes, nwant * CS);
	vmb_base_put(b);
	vmb_remote_close(r);
	free(buf);
}

/* A sequential reader: once it is VMB_RIMAGE_RA_MIN long, the chunks ahead of it
 * fill; a stream elsewhere does not stop that of another reader. */
static void test_readahead_seq(void)
{
	struct vmb_remote *r;
	struct vmb_base *b;
	struct vmb_err e = { 0 };
	unsigned char *buf = malloc(2 * CS);
	uint64_t off, ahead;

	REQUIRE(buf);
	ra_setup(&r, &b);
	for (off = 0; off < VMB_RIMAGE_RA_MIN + 2 * CS; off += 2 * CS) {
		CHECK_EQ(b->ops->read(b, buf, 2 * CS, off, &e), 2 * CS);
		CHECK(!memcmp(buf, racontent + off, 2 * CS));
		/* a second reader elsewhere */
		CHECK_EQ(b->ops->read(b, buf, BS, (RA_CHUNKS - 1) * (uint64_t)CS, &e), BS);
	}
	ahead = off / CS + 8;
	CHECK_RC(vmb_remote_idle(r, 30000), 0);
	CHECK_EQ(ra_cached(r, off / CS), 1);
	CHECK_EQ(ra_cached(r, ahead), 1);
	vmb_base_put(b);
	vmb_remote_close(r);
	free(buf);
}

/* A stream from byte 0 counts as VMB_RIMAGE_START_MULT times as long: a probe of
 * the header (16 KiB) fetches only its chunk; a 128 KiB read from byte 0 (the
 * kernel's readahead request on a URL's mount) reads VMB_RIMAGE_RA_MIN ahead at
 * once; the same read elsewhere reads nothing ahead. */
static void test_readahead_start(void)
{
	struct vmb_remote *r;
	struct vmb_base *b;
	struct vmb_remote_stats st;
	struct vmb_err e = { 0 };
	size_t len = 128u << 10;
	unsigned char *buf = malloc(len);
	uint64_t last, c, before;

	REQUIRE(buf);
	ra_setup(&r, &b);
	CHECK_EQ(b->ops->read(b, buf, 4 * BS, 0, &e), 4 * BS);
	CHECK(!memcmp(buf, racontent, 4 * BS));
	CHECK_RC(vmb_remote_idle(r, 30000), 0);
	vmb_remote_stats(r, &st);
	CHECK_EQ(st.fetch_bytes, (uint64_t)CS);
	CHECK_EQ(ra_cached(r, 1), 0);

	CHECK_EQ(b->ops->read(b, buf, len, 0, &e), (int64_t)len);
	CHECK(!memcmp(buf, racontent, len));
	last = (len - 1) / CS;
	CHECK_RC(vmb_remote_idle(r, 30000), 0);
	for (c = last + 1; c <= last + VMB_RIMAGE_RA_MIN / CS; c++)
		CHECK_EQ(ra_cached(r, c), 1);
	CHECK_EQ(ra_cached(r, last + VMB_RIMAGE_RA_MIN / CS + 1), 0);

	vmb_remote_stats(r, &st);
	before = st.fetch_bytes;
	CHECK_EQ(b->ops->read(b, buf, len, 60 * (uint64_t)CS, &e), (int64_t)len);
	CHECK(!memcmp(buf, racontent + 60 * (uint64_t)CS, len));
	CHECK_RC(vmb_remote_idle(r, 30000), 0);
	vmb_remote_stats(r, &st);
	CHECK_EQ(st.fetch_bytes - before, (uint64_t)len);
	vmb_base_put(b);
	vmb_remote_close(r);
	free(buf);
}

/* A sparse copy (cp --sparse, tar --sparse: SEEK_DATA, then read each run of data
 * from its start). A plain sequential reader's window counts every chunk, holes
 * included; a read that begins where data begins after a hole continues the
 * stream before the hole, and from then on the window counts data chunks, past
 * holes of any size. Runs of data (chunks): [1, 41), [60, 62), [100, 102),
 * [140, 142), [180, 182); the rest is zeros. */
#define SP_CHUNKS 200u
static int sp_data(uint64_t c)
{
	return (c >= 1 && c < 41) || (c >= 60 && c < 62) || (c >= 100 && c < 102) ||
	       (c >= 140 && c < 142) || (c >= 180 && c < 182);
}

static void test_readahead_sparse(void)
{
	struct vmb_remote *r;
	struct vmb_base *b;
	struct vmb_remote_stats st;
	struct vmb_err e = { 0 };
	size_t len = 2 * CS, size = SP_CHUNKS * (size_t)CS;
	unsigned char *img = calloc(1, size), *buf = malloc(len);
	uint8_t spidx[32];
	uint64_t i, off, ndata = 0;

	REQUIRE(img && buf);
	for (i = 0; i < size; i++)
		if (sp_data(i / CS))
			img[i] = (unsigned char)((i * 13 + i / 4096 + 5 * (i / CS) + 1) | 1);
	publish_image(img, size, spidx);
	ra_open(&r, &b, spidx, size, 0);
#define SP_CACHED(k) content_cached(r, img, (k))
	/* the first run, 2.5 MiB: a window of 40 chunks, holes counted, so the run at
	 * 60 comes and the one at 100 does not */
	for (off = CS; off < 41 * (uint64_t)CS; off += len) {
		CHECK_EQ(b->ops->read(b, buf, len, off, &e), (int64_t)len);
		CHECK(!memcmp(buf, img + off, len));
	}
	CHECK_RC(vmb_remote_idle(r, 30000), 0);
	CHECK_EQ(SP_CACHED(60), 1);
	CHECK_EQ(SP_CACHED(100), 0);
	/* the next run, from its start: the stream skipped a hole; its window of 61
	 * data chunks reaches every run after it */
	off = 60 * (uint64_t)CS;
	CHECK_EQ(b->ops->read(b, buf, len, off, &e), (int64_t)len);
	CHECK(!memcmp(buf, img + off, len));
	CHECK_RC(vmb_remote_idle(r, 30000), 0);
	for (i = 0; i < SP_CHUNKS; i++) {
		if (!sp_data(i))
			continue;
		ndata++;
		if (SP_CACHED(i) != 1)
			fprintf(stderr, "chunk %llu is not cached\n", (unsigned long long)i);
		CHECK_EQ(SP_CACHED(i), 1);
	}
#undef SP_CACHED
	/* and no zero chunk was fetched */
	vmb_remote_stats(r, &st);
	CHECK_EQ(st.fetch_bytes, ndata * CS);
	vmb_base_put(b);
	vmb_remote_close(r);
	free(buf);
	free(img);
}

/* A new stream reads VMB_RIMAGE_NEAR chunks ahead once two streams went on past
 * the chunks of their first read (clusters of small reads crossing a chunk's end,
 * with small gaps); random reads, whose streams end with their first read, turn
 * it off again, and random reads that cross a chunk's end do not turn it back on:
 * then only the chunks read are fetched. */
static void test_readahead_near(void)
{
	struct vmb_remote *r;
	struct vmb_base *b;
	struct vmb_remote_stats st;
	struct vmb_err e = { 0 };
	unsigned char *buf = malloc(4 * BS);
	uint64_t c, off, before;
	int k;

	REQUIRE(buf);
	ra_setup(&r, &b);
	/* two clusters that cross into their next chunk, with 4 KiB gaps */
	for (c = 10; c <= 20; c += 10) {
		off = c * (uint64_t)CS + CS - 3 * BS;
		for (k = 0; k < 3; k++, off += 2 * BS) {
			CHECK_EQ(b->ops->read(b, buf, BS, off, &e), BS);
			CHECK(!memcmp(buf, racontent + off, BS));
		}
	}
	CHECK_RC(vmb_remote_idle(r, 30000), 0);
	CHECK_EQ(ra_cached(r, 12), 0);   /* not yet: the score was below 2 */
	CHECK_EQ(ra_cached(r, 22), 0);
	/* the next cluster's first read, inside chunk 40: 41..43 come with it */
	CHECK_EQ(b->ops->read(b, buf, BS, 40 * (uint64_t)CS, &e), BS);
	CHECK(!memcmp(buf, racontent + 40 * (uint64_t)CS, BS));
	CHECK_RC(vmb_remote_idle(r, 30000), 0);
	for (c = 41; c < 41 + VMB_RIMAGE_NEAR; c++)
		CHECK_EQ(ra_cached(r, c), 1);
	CHECK_EQ(ra_cached(r, 41 + VMB_RIMAGE_NEAR), 0);
	/* random single reads: a few still read ahead, then none */
	for (c = 50; c <= 66; c += 4)
		CHECK_EQ(b->ops->read(b, buf, BS, c * (uint64_t)CS, &e), BS);
	CHECK_RC(vmb_remote_idle(r, 30000), 0);
	vmb_remote_stats(r, &st);
	before = st.fetch_bytes;
	for (c = 68; c <= 92; c += 3) {   /* each across chunks c and c + 1 */
		off = c * (uint64_t)CS + CS - BS;
		CHECK_EQ(b->ops->read(b, buf, 2 * BS, off, &e), 2 * BS);
		CHECK(!memcmp(buf, racontent + off, 2 * BS));
	}
	CHECK_RC(vmb_remote_idle(r, 30000), 0);
	for (c = 68; c < RA_CHUNKS; c++)
		CHECK_EQ(ra_cached(r, c), c <= 93 && (c - 68) % 3 != 2);
	vmb_remote_stats(r, &st);
	CHECK_EQ(st.fetch_bytes - before, 18 * (uint64_t)CS);
	vmb_base_put(b);
	vmb_remote_close(r);
	free(buf);
}

/* A new stream whose first read is already VMB_RIMAGE_RA_MIN long, while near
 * readahead is on: one window from the read's end, the larger of the two, so the
 * chunks right after the read are queued too. */
static void test_readahead_near_long(void)
{
	struct vmb_remote *r;
	struct vmb_base *b;
	struct vmb_err e = { 0 };
	size_t big = VMB_RIMAGE_RA_MIN + CS;
	unsigned char *buf = malloc(big);
	uint64_t c, off, last;

	REQUIRE(buf);
	ra_setup(&r, &b);
	for (c = 10; c <= 20; c += 10) {   /* two streams that go on: the score is 2 */
		off = c * (uint64_t)CS + CS - BS;
		CHECK_EQ(b->ops->read(b, buf, BS, off, &e), BS);
		CHECK_EQ(b->ops->read(b, buf, 2 * BS, off + BS, &e), 2 * BS);
	}
	off = 40 * (uint64_t)CS;
	CHECK_EQ(b->ops->read(b, buf, big, off, &e), (int64_t)big);
	CHECK(!memcmp(buf, racontent + off, big));
	last = (off + big - 1) / CS;
	CHECK_RC(vmb_remote_idle(r, 30000), 0);
	for (c = last + 1; c <= last + VMB_RIMAGE_NEAR && c < RA_CHUNKS; c++)
		CHECK_EQ(ra_cached(r, c), 1);
	vmb_base_put(b);
	vmb_remote_close(r);
	free(buf);
}

/* A window the workers' queue cannot take whole (queue_max 1 here, 256 chunks in a
 * daemon): what it left is queued by the stream's next reads, even reads that end
 * where the stream ends; not skipped for good. */
static void test_readahead_queue_full(void)
{
	struct vmb_remote *r;
	struct vmb_base *b;
	struct vmb_err e = { 0 };
	unsigned char *buf = malloc(2 * CS);
	uint64_t off, last, c;
	int k;

	REQUIRE(buf);
	ra_setup_q(&r, &b, 1);
	for (off = 0; off < VMB_RIMAGE_RA_MIN; off += 2 * CS)
		CHECK_EQ(b->ops->read(b, buf, 2 * CS, off, &e), 2 * CS);
	last = (off - 1) / CS;
	for (k = 0; k < 8; k++) {   /* each: the queue is empty, takes one or more */
		CHECK_RC(vmb_remote_idle(r, 30000), 0);
		CHECK_EQ(b->ops->read(b, buf, BS, off - BS, &e), BS);
		CHECK(!memcmp(buf, racontent + off - BS, BS));
	}
	CHECK_RC(vmb_remote_idle(r, 30000), 0);
	for (c = last + 1; c <= last + 8; c++)
		CHECK_EQ(ra_cached(r, c), 1);
	vmb_base_put(b);
	vmb_remote_close(r);
	free(buf);
}

/* Two requests of one reader answered in the other order (the kernel's readahead
 * requests, up to 1 MiB, go to several threads): the later one, which starts past
 * the stream's end by its own length, goes on with the stream instead of starting
 * one that would have to grow to VMB_RIMAGE_RA_MIN again. */
static void test_readahead_overtaken(void)
{
	struct vmb_remote *r;
	struct vmb_base *b;
	struct vmb_err e = { 0 };
	size_t l = 8 * CS;
	unsigned char *buf = malloc(l);
	uint64_t off, c;

	REQUIRE(buf);
	ra_setup(&r, &b);
	for (off = 0; off < VMB_RIMAGE_RA_MIN; off += 2 * CS)   /* 32 chunks */
		CHECK_EQ(b->ops->read(b, buf, 2 * CS, off, &e), 2 * CS);
	CHECK_RC(vmb_remote_idle(r, 30000), 0);   /* chunks 32-63 came ahead */
	CHECK_EQ(ra_cached(r, 70), 0);
	CHECK_EQ(b->ops->read(b, buf, l, off + l, &e), (int64_t)l);   /* 40-47 first */
	CHECK(!memcmp(buf, racontent + off + l, l));
	CHECK_EQ(b->ops->read(b, buf, l, off, &e), (int64_t)l);   /* then 32-39 */
	CHECK(!memcmp(buf, racontent + off, l));
	CHECK_EQ(b->ops->read(b, buf, l, off + 2 * l, &e), (int64_t)l);   /* 48-55 */
	CHECK_RC(vmb_remote_idle(r, 30000), 0);
	/* one stream of 56 chunks: 56 ahead of chunk 55, to the image's end */
	for (c = 56; c < RA_CHUNKS; c++)
		CHECK_EQ(ra_cached(r, c), 1);
	vmb_base_put(b);
	vmb_remote_close(r);
	free(buf);
}

static void test_wrong_bytes(void)
{
	struct vmb_remote *r;
	struct vmb_base *b = NULL;
	struct vmb_err e = { 0 };
	char rel[VMB_PUB_OBJPATH_LEN], path[4400], cmd[9000];
	unsigned char buf[CS];
	uint8_t d[32];
	int fd;

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", cachedir);
	CHECK_EQ(system(cmd), 0);
	/* chunk 1 served with one byte changed */
	vmb_sha256(content + CS, CS, d, NULL);
	vmb_pub_object_path(d, rel);
	snprintf(path, sizeof(path), "%s/%s", pubdir, rel);
	fd = open(path, O_WRONLY);
	REQUIRE(fd >= 0);
	CHECK_EQ(pwrite(fd, "X", 1, 100), 1);
	close(fd);
	r = open_remote(0);
	CHECK_RC(vmb_rimage_open(r, url, idx, csize, &b, &e), 0);
	REQUIRE(b);
	CHECK_RC((int)b->ops->read(b, buf, CS, CS, &e), -EIO);
	CHECK_STR(e.msg, "digest");
	CHECK_EQ(cached(r, 1), 0);
	/* fixed at the source: reads again */
	fd = open(path, O_WRONLY);
	CHECK_EQ(pwrite(fd, content + CS + 100, 1, 100), 1);
	close(fd);
	CHECK_EQ(b->ops->read(b, buf, CS, CS, &e), CS);
	CHECK(!memcmp(buf, content + CS, CS));
	vmb_base_put(b);
	/* a wrong size for the index */
	CHECK_RC(vmb_rimage_open(r, url, idx, csize + 1, &b, &e), -EIO);
	CHECK_STR(e.msg, "bytes where");
	/* an index that is not there */
	d[0] ^= 1;
	CHECK(vmb_rimage_open(r, url, d, csize, &b, &e) < 0);
	vmb_remote_close(r);
}

/* An image with mirrors: a URL that fails is passed over (index and chunks), the
 * status says where the bytes come from; with every URL failing, the read's error
 * names the first and the others. */
static void test_mirrors(void)
{
	char cdir[4300], away[4400];
	struct vmb_remote_opts o = { 0 };
	struct vmb_remote *r = NULL;
	struct vmb_base *b = NULL;
	struct vmb_err e = { 0 };
	struct vmb_rimage_info inf;
	const char *urls[2] = { "file:///nonexistent/vmb-test-mirror", url };
	unsigned char *buf = malloc(csize);

	REQUIRE(buf);
	snprintf(cdir, sizeof(cdir), "%s/mcache", tmpdir);
	o.cache_dir = cdir;
	o.workers = 2;
	o.readahead_max = 4;
	REQUIRE(vmb_remote_open(&o, NULL, &r, &e) == 0);
	/* the index and every chunk from the second URL */
	CHECK_RC(vmb_rimage_open_urls(r, urls, 2, idx, csize, &b, &e), 0);
	REQUIRE(b);
	CHECK_EQ(b->ops->read(b, buf, (size_t)csize, 0, &e), (int64_t)csize);
	CHECK(!memcmp(buf, content, csize));
	CHECK_RC(vmb_rimage_info(vmb_rimage_of(b), &inf, &e), 0);
	CHECK(!strcmp(inf.url, url));
	CHECK_EQ(inf.mirrors, 1);
	CHECK_EQ(inf.errors, 0);
	/* adding a URL it has, or its own: nothing changes */
	CHECK_RC(vmb_rimage_add_mirror(vmb_rimage_of(b), url), 0);
	CHECK_RC(vmb_rimage_add_mirror(vmb_rimage_of(b), urls[0]), 0);
	CHECK_RC(vmb_rimage_info(vmb_rimage_of(b), &inf, &e), 0);
	CHECK_EQ(inf.mirrors, 1);
	vmb_base_put(b);
	vmb_remote_close(r);

	/* a cold cache, the good URL first and then gone: both fail, both named */
	snprintf(cdir, sizeof(cdir), "%s/mcache2", tmpdir);
	REQUIRE(vmb_remote_open(&o, NULL, &r, &e) == 0);
	urls[0] = url;
	urls[1] = "file:///nonexistent/vmb-test-mirror";
	CHECK_RC(vmb_rimage_open_urls(r, urls, 2, idx, csize, &b, &e), 0);   /* the index */
	REQUIRE(b);
	snprintf(away, sizeof(away), "%s.away", pubdir);
	REQUIRE(rename(pubdir, away) == 0);
	vmb_err_clear(&e);
	CHECK_RC((int)b->ops->read(b, buf, 4096, 0, &e), -EIO);
	CHECK_STR(e.msg, pubdir);
	CHECK_STR(e.msg, "(and from its 1 other URL: ");
	CHECK_STR(e.msg, "vmb-test-mirror");
	REQUIRE(rename(away, pubdir) == 0);
	CHECK_EQ(b->ops->read(b, buf, 4096, 0, &e), 4096);   /* back: it reads */
	CHECK(!memcmp(buf, content, 4096));
	vmb_base_put(b);
	vmb_remote_close(r);
	free(buf);
}

/* Hard mode with mirrors waits over URLs that do not answer, not over URLs that
 * answer with wrong bytes: an index that every URL sends damaged (fetched twice
 * from each) fails with -EIO at once instead of waiting for ever. */
struct wopen_arg {
	struct vmb_remote *r;
	const char **urls;
	int rc;
	struct vmb_err e;
};

static void *wopen_thread(void *p)
{
	struct wopen_arg *a = p;
	struct vmb_base *b = NULL;

	a->rc = vmb_rimage_open_urls(a->r, a->urls, 2, idx, csize, &b, &a->e);
	vmb_base_put(b);
	return NULL;
}

static void test_mirrors_wrong_hard(void)
{
	char cdir[4300], pa[1200], pb[1200], ua[1300], ub[1300], cmd[9500];
	char rel[VMB_PUB_OBJPATH_LEN];
	const char *urls[2] = { ua, ub };
	struct vmb_remote_opts o = { 0 };
	struct wopen_arg a = { 0 };
	struct timespec ts;
	pthread_t th;

	snprintf(pa, sizeof(pa), "%s/pubA", tmpdir);
	snprintf(pb, sizeof(pb), "%s/pubB", tmpdir);
	snprintf(ua, sizeof(ua), "file://%s", pa);
	snprintf(ub, sizeof(ub), "file://%s", pb);
	vmb_pub_object_path(idx, rel);
	/* both copies of the store have the index's bytes damaged (one flipped) */
	snprintf(cmd, sizeof(cmd), "cp -r '%s' '%s' && cp -r '%s' '%s' && for f in '%s/%s' "
		 "'%s/%s'; do printf 'X' | dd of=\"$f\" bs=1 seek=40 conv=notrunc "
		 "status=none || exit 1; done", pubdir, pa, pubdir, pb, pa, rel, pb, rel);
	REQUIRE(system(cmd) == 0);
	snprintf(cdir, sizeof(cdir), "%s/wcache", tmpdir);
	o.cache_dir = cdir;
	o.workers = 2;
	o.hard = 1;
	REQUIRE(vmb_remote_open(&o, NULL, &a.r, &a.e) == 0);
	a.urls = urls;
	REQUIRE(pthread_create(&th, NULL, wopen_thread, &a) == 0);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 20;
	if (pthread_timedjoin_np(th, NULL, &ts) != 0) {
		CHECK(!"the open returned within 20 s");
		fprintf(stderr, "test_mirrors_wrong_hard: still waiting, giving up\n");
		_exit(1);
	}
	CHECK_RC(a.rc, -EIO);
	CHECK_STR(a.e.msg, "does not match its digest (twice)");
	vmb_remote_close(a.r);
}

static void test_remote_layer_format(void)
{
	struct vmb_layer_remote rl, back;
	struct vmb_err e = { 0 };
	char id[VMB_BASE_ID_LEN + 1], hex[65];
	size_t len;
	char *buf;

	memset(&rl, 0, sizeof(rl));
	snprintf(rl.url, sizeof(rl.url), "file:///a dir/%%x\xc3\xa9");
	memcpy(rl.index, idx, 32);
	rl.size = 12345;
	vmb_sha256_hex(idx, hex);
	memcpy(id, hex, 32);
	id[32] = '\0';
	CHECK_RC(vmb_layer_remote_encode(&rl, &buf, &len, &e), 0);
	CHECK_STR(buf, "url file:///a%20dir/%25x%C3%A9\n");
	CHECK_RC(vmb_layer_remote_decode(buf, len, id, &back, &e), 0);
	CHECK(!strcmp(back.url, rl.url));
	CHECK(!memcmp(back.index, idx, 32));
	CHECK_EQ(back.size, 12345);
	/* every byte changed: refused */
	for (size_t i = 0; i < len; i++) {
		buf[i] ^= 0x01;
		CHECK(vmb_layer_remote_decode(buf, len, id, &back, &e) == -EBADMSG);
		buf[i] ^= 0x01;
	}
	CHECK_RC(vmb_layer_remote_decode(buf, len - 1, id, &back, &e), -EBADMSG);
	CHECK_RC(vmb_layer_remote_decode(buf, len, "00000000000000000000000000000000", &back,
					 &e), -EBADMSG);
	CHECK_STR(e.msg, "does not match its id");
	CHECK_RC(vmb_layer_remote_decode("", 0, id, &back, &e), -EBADMSG);
	free(buf);

	/* mirrors: their lines after the url line, escaped the same way */
	rl.nmirrors = 2;
	snprintf(rl.mirror[0], sizeof(rl.mirror[0]), "https://m1.example/p q");
	snprintf(rl.mirror[1], sizeof(rl.mirror[1]), "file:///m2");
	CHECK_RC(vmb_layer_remote_encode(&rl, &buf, &len, &e), 0);
	CHECK_STR(buf, "%C3%A9\nmirror https://m1.example/p%20q\nmirror file:///m2\nindex ");
	CHECK_RC(vmb_layer_remote_decode(buf, len, id, &back, &e), 0);
	CHECK_EQ(back.nmirrors, 2);
	CHECK(!strcmp(back.mirror[0], "https://m1.example/p q"));
	CHECK(!strcmp(back.mirror[1], "file:///m2"));
	CHECK(!strcmp(back.url, rl.url));
	for (size_t i = 0; i < len; i++) {
		buf[i] ^= 0x01;
		CHECK(vmb_layer_remote_decode(buf, len, id, &back, &e) == -EBADMSG);
		buf[i] ^= 0x01;
	}
	free(buf);
	/* more than VMB_LAYER_MIRRORS: not written, and not read */
	rl.nmirrors = VMB_LAYER_MIRRORS + 1;
	CHECK_RC(vmb_layer_remote_encode(&rl, &buf, &len, &e), -EINVAL);
	{
		char *t = NULL, *p2;
		size_t n = 0;
		FILE *f = open_memstream(&t, &n);

		REQUIRE(f);
		fprintf(f, "vmbundlefs-remote 1\nurl file:///a\n");
		for (int k = 0; k <= VMB_LAYER_MIRRORS; k++)
			fprintf(f, "mirror file:///m%d\n", k);
		fprintf(f, "index %s\nsize 12345\n", hex);
		fclose(f);
		p2 = malloc(n + 16);
		REQUIRE(p2);
		memcpy(p2, t, n);
		n += (size_t)sprintf(p2 + n, "end %08x\n", vmb_crc32c(0, t, n));
		CHECK_RC(vmb_layer_remote_decode(p2, n, id, &back, &e), -EBADMSG);
		CHECK_STR(e.msg, "too many mirrors");
		free(p2);
		free(t);
	}
	/* an empty mirror URL */
	rl.nmirrors = 1;
	rl.mirror[0][0] = '\0';
	CHECK_RC(vmb_layer_remote_encode(&rl, &buf, &len, &e), -EINVAL);
}

/* A store at path with its layers open (*ls) and *rl describing the test's remote
 * image; returns the metadata directory's descriptor (the caller closes it). */
static int store_layers(const char *path, struct vmb_layers **ls, struct vmb_layer_remote *rl)
{
	char meta[4500];
	struct vmb_err e = { 0 };
	int metafd;

	snprintf(meta, sizeof(meta), "%s/.vmbundlefs", path);
	mkdirs(meta);
	metafd = open(meta, O_RDONLY | O_DIRECTORY);
	CHECK(metafd >= 0);
	if (metafd >= 0)
		CHECK_RC(vmb_layers_open(ls, metafd, NULL, &e), 0);
	memset(rl, 0, sizeof(*rl));
	snprintf(rl->url, sizeof(rl->url), "%s", url);
	memcpy(rl->index, idx, 32);
	rl->size = csize;
	return metafd;
}

static void test_layers(void)
{
	char store[4300], id[VMB_BASE_ID_LEN + 1], id2[VMB_BASE_ID_LEN + 1];
	struct vmb_layer_remote rl;
	struct vmb_layers *ls = NULL;
	struct vmb_remote *r = open_remote(0);
	struct vmb_base *b = NULL, *top = NULL;
	struct vmb_layer_info li;
	struct vmb_layer_list ll;
	struct vmb_blockmap m;
	struct vmb_err e = { 0 };
	unsigned char *buf = malloc(csize);
	uint64_t run;
	int metafd, fd, bfd;

	snprintf(store, sizeof(store), "%s/store", tmpdir);
	metafd = store_layers(store, &ls, &rl);
	REQUIRE(metafd >= 0 && ls);
	CHECK_RC(vmb_layers_create_remote(ls, &rl, id, &e), 0);
	CHECK_RC(vmb_layers_create_remote(ls, &rl, id2, &e), 0);   /* same again: kept */
	rl.size++;
	CHECK_RC(vmb_layers_create_remote(ls, &rl, id2, &e), -EEXIST);
	rl.size--;
	snprintf(rl.url, sizeof(rl.url), "file:///nonexistent/mirror0");
	CHECK_RC(vmb_layers_create_remote(ls, &rl, id2, &e), 0);   /* a mirror: added */
	{
		struct vmb_layer_remote *back = malloc(sizeof(*back));

		REQUIRE(back);
		CHECK_RC(vmb_layers_remote_info(ls, id, back, &e), 0);
		CHECK(!strcmp(back->url, url));   /* the first pull's URL stays first */
		CHECK_EQ(back->nmirrors, 1);
		CHECK(!strcmp(back->mirror[0], "file:///nonexistent/mirror0"));
		/* the same mirror again, or the first URL: nothing added */
		CHECK_RC(vmb_layers_create_remote(ls, &rl, id2, &e), 0);
		snprintf(rl.url, sizeof(rl.url), "%s", url);
		CHECK_RC(vmb_layers_create_remote(ls, &rl, id2, &e), 0);
		CHECK_RC(vmb_layers_remote_info(ls, id, back, &e), 0);
		CHECK_EQ(back->nmirrors, 1);
		/* past VMB_LAYER_MIRRORS the oldest goes */
		for (int k = 1; k <= VMB_LAYER_MIRRORS; k++) {
			snprintf(rl.url, sizeof(rl.url), "file:///nonexistent/mirror%d", k);
			CHECK_RC(vmb_layers_create_remote(ls, &rl, id2, &e), 0);
		}
		CHECK_RC(vmb_layers_remote_info(ls, id, back, &e), 0);
		CHECK_EQ(back->nmirrors, VMB_LAYER_MIRRORS);
		CHECK(!strcmp(back->mirror[0], "file:///nonexistent/mirror1"));
		CHECK(!strcmp(back->mirror[VMB_LAYER_MIRRORS - 1], "file:///nonexistent/mirror4"));
		CHECK(!strcmp(back->url, url));
		free(back);
	}
	snprintf(rl.url, sizeof(rl.url), "%s", url);
	/* no remote context: a clear error */
	CHECK_RC(vmb_layers_get(ls, id, &b, &e), -EIO);
	CHECK_STR(e.msg, "no remote context");
	vmb_layers_set_remote(ls, r);
	CHECK_RC(vmb_layers_get(ls, id, &b, &e), 0);
	REQUIRE(b);
	CHECK(vmb_layers_remote_of(b) != NULL);
	CHECK_EQ(b->ops->read(b, buf, (size_t)csize, 0, &e), (int64_t)csize);
	CHECK(!memcmp(buf, content, csize));
	CHECK_EQ(b->ops->lookup(b, 5 * CS / BS, &run, &bfd), VMB_ZERO);
	CHECK_EQ(b->ops->lookup(b, 0, &run, &bfd), VMB_DATA);
	CHECK_EQ(bfd, -1);
	/* a local layer over it: blocks 1..2 its own, the rest from the remote */
	fd = openat(metafd, "top.data", O_RDWR | O_CREAT | O_TRUNC, 0600);
	REQUIRE(fd >= 0);
	memset(buf, 0xab, 2 * BS);
	CHECK_EQ(pwrite(fd, buf, 2 * BS, BS), 2 * BS);
	CHECK_EQ(ftruncate(fd, (off_t)csize), 0);
	vmb_blockmap_init(&m);
	CHECK_EQ(vmb_blockmap_set(&m, 1, 2, VMB_DATA), 0);
	CHECK_RC(vmb_layers_create(ls, fd, &m, csize, b, (csize + BS - 1) / BS, id2, &e), 0);
	vmb_blockmap_destroy(&m);
	close(fd);
	CHECK_RC(vmb_layers_get(ls, id2, &top, &e), 0);
	REQUIRE(top);
	CHECK_EQ(top->depth, 2);
	CHECK(vmb_layers_remote_of(top) == vmb_layers_remote_of(b));
	CHECK_EQ(top->ops->read(top, buf, (size_t)csize, 0, &e), (int64_t)csize);
	CHECK(!memcmp(buf, content, BS));
	CHECK(buf[BS] == 0xab && buf[3 * BS - 1] == 0xab);
	CHECK(!memcmp(buf + 3 * BS, content + 3 * BS, csize - 3 * BS));
	/* stat, list, remove */
	CHECK_RC(vmb_layers_stat(ls, id, &li, &e), 0);
	CHECK_EQ(li.remote, 1);
	CHECK_EQ(li.size, csize);
	CHECK_EQ(li.depth, 1);
	CHECK_RC(vmb_layers_stat(ls, id2, &li, &e), 0);
	CHECK(!strcmp(li.base, id));
	CHECK_RC(vmb_layers_list(ls, &ll, &e), 0);
	CHECK_EQ(ll.n, 2);
	vmb_layer_list_free(&ll);
	CHECK_RC(vmb_layers_remove(ls, id, &e), -EBUSY);
	vmb_base_put(top);
	vmb_base_put(b);
	CHECK_RC(vmb_layers_remove(ls, id2, &e), 0);
	CHECK_RC(vmb_layers_remove(ls, id, &e), 0);
	CHECK_RC(vmb_layers_stat(ls, id, &li, &e), -ENOENT);
	vmb_layers_close(ls);
	vmb_remote_close(r);
	close(metafd);
	free(buf);
}

static void fetcher_stats(struct vmb_remote *r, struct vmb_fetch_stats *fs)
{
	struct vmb_fetcher *f = NULL;
	struct vmb_err e = { 0 };

	memset(fs, 0, sizeof(*fs));
	if (vmb_remote_fetcher(r, url, &f, &e) == 0)
		vmb_fetcher_stats(f, fs);
}

static uint64_t index_loads(struct vmb_remote *r)
{
	struct vmb_remote_stats st;

	vmb_remote_stats(r, &st);
	return st.index_loads;
}

struct opener {
	struct vmb_remote *r;
	struct vmb_base *b;
	int rc;
};

static void *open_thread(void *arg)
{
	struct opener *o = arg;
	struct vmb_err e = { 0 };

	o->rc = vmb_rimage_open(o->r, url, idx, csize, &o->b, &e);
	return NULL;
}

static void test_kept(void)
{
	struct vmb_remote *r = open_remote(0);
	struct vmb_base *b = NULL, *b2 = NULL;
	struct vmb_err e = { 0 };
	struct vmb_remote_stats st;
	struct opener op[6];
	pthread_t th[6];
	unsigned char buf[100];
	char hex[65], metapath[4400], saved[4500];
	uint8_t d[VMB_REMOTE_KEEP + 2][32];
	int k;

	/* opened twice: one image, its index loaded once */
	CHECK_RC(vmb_rimage_open(r, url, idx, csize, &b, &e), 0);
	CHECK_RC(vmb_rimage_open(r, url, idx, csize, &b2, &e), 0);
	CHECK(b && b == b2);
	CHECK_EQ(index_loads(r), 1);
	vmb_base_put(b2);
	vmb_base_put(b);
	/* every user gone: still kept, so an open reads nothing, even without the
	 * index in CACHE/meta */
	vmb_sha256_hex(idx, hex);
	snprintf(metapath, sizeof(metapath), "%s/meta/%.2s/%s", cachedir, hex, hex);
	snprintf(saved, sizeof(saved), "%s.saved", metapath);
	CHECK_EQ(vmb_remote_meta_cached(r, idx), 1);
	CHECK_EQ(rename(metapath, saved), 0);
	CHECK_EQ(vmb_remote_meta_cached(r, idx), 0);
	CHECK_RC(vmb_rimage_open(r, url, idx, csize, &b, &e), 0);
	REQUIRE(b);
	CHECK_EQ(b->ops->read(b, buf, sizeof(buf), 0, &e), (int64_t)sizeof(buf));
	CHECK(!memcmp(buf, content, sizeof(buf)));
	CHECK_EQ(index_loads(r), 1);
	vmb_base_put(b);
	/* the same digest from another URL is another image */
	CHECK(vmb_rimage_open(r, "file:///nonexistent-vmb-test", idx, csize, &b, &e) < 0);
	CHECK_EQ(rename(saved, metapath), 0);
	vmb_remote_stats(r, &st);
	CHECK_EQ(st.images_kept, 1);
	vmb_remote_close(r);

	/* six threads open it at once on a fresh context: one loads, five wait */
	r = open_remote(0);
	for (k = 0; k < 6; k++) {
		op[k] = (struct opener){ .r = r };
		REQUIRE(pthread_create(&th[k], NULL, open_thread, &op[k]) == 0);
	}
	for (k = 0; k < 6; k++) {
		pthread_join(th[k], NULL);
		CHECK_RC(op[k].rc, 0);
		CHECK(op[k].b == op[0].b);
	}
	CHECK_EQ(index_loads(r), 1);
	for (k = 0; k < 6; k++)
		vmb_base_put(op[k].b);

	/* more images than kept: the least recently opened goes */
	for (k = 0; k < VMB_REMOTE_KEEP + 2; k++) {
		unsigned char small[BS];

		memset(small, k + 1, sizeof(small));
		publish_image(small, sizeof(small), d[k]);
		CHECK_RC(vmb_rimage_open(r, url, d[k], sizeof(small), &b, &e), 0);
		vmb_base_put(b);
	}
	vmb_remote_stats(r, &st);
	CHECK_EQ(st.images_kept, VMB_REMOTE_KEEP);
	CHECK_EQ(st.index_loads, VMB_REMOTE_KEEP + 3);
	CHECK_RC(vmb_rimage_open(r, url, d[VMB_REMOTE_KEEP + 1], BS, &b, &e), 0);   /* kept */
	vmb_base_put(b);
	CHECK_EQ(index_loads(r), VMB_REMOTE_KEEP + 3);
	CHECK_RC(vmb_rimage_open(r, url, idx, csize, &b, &e), 0);   /* dropped: loads again */
	vmb_base_put(b);
	CHECK_EQ(index_loads(r), VMB_REMOTE_KEEP + 4);
	vmb_remote_close(r);
}

/* The preload of a store's remote layers: their images opened in the background,
 * from CACHE/meta only (an index not cached is left alone: no fetch). */
static void test_preload(void)
{
	char store[4300];
	struct vmb_layer_remote rl;
	struct vmb_layers *ls = NULL;
	struct vmb_layers_preload *p = NULL;
	struct vmb_remote *r;
	struct vmb_base *b = NULL;
	struct vmb_err e = { 0 };
	struct vmb_remote_stats st;
	unsigned char other[2 * BS];
	uint8_t d2[32];
	char id[VMB_BASE_ID_LEN + 1];
	int metafd, k;

	snprintf(store, sizeof(store), "%s/pstore", tmpdir);
	metafd = store_layers(store, &ls, &rl);
	REQUIRE(metafd >= 0 && ls);
	CHECK_RC(vmb_layers_create_remote(ls, &rl, id, &e), 0);
	/* a second image whose index was never fetched */
	memset(other, 0x5a, sizeof(other));
	publish_image(other, sizeof(other), d2);
	memcpy(rl.index, d2, 32);
	rl.size = sizeof(other);
	CHECK_RC(vmb_layers_create_remote(ls, &rl, id, &e), 0);

	/* a third whose index is cached but damaged there */
	{
		unsigned char third[BS];
		uint8_t d3[32];
		char hex[65], path[4400];
		void *mb = NULL;
		size_t ml = 0;
		int fd;

		memset(third, 0x6b, sizeof(third));
		publish_image(third, sizeof(third), d3);
		memcpy(rl.index, d3, 32);
		rl.size = sizeof(third);
		CHECK_RC(vmb_layers_create_remote(ls, &rl, id, &e), 0);
		r = open_remote(0);
		CHECK_RC(vmb_remote_meta(r, url, d3, 1 << 20, &mb, &ml, &e), 0);
		free(mb);
		vmb_remote_close(r);
		vmb_sha256_hex(d3, hex);
		snprintf(path, sizeof(path), "%s/meta/%.2s/%s", cachedir, hex, hex);
		fd = open(path, O_WRONLY);
		REQUIRE(fd >= 0);
		CHECK_EQ(pwrite(fd, "X", 1, 70), 1);
		close(fd);
	}
	/* no remote context: nothing happens */
	CHECK_RC(vmb_layers_preload_start(ls, NULL, &p, &e), 0);
	vmb_layers_preload_stop(p);

	r = open_remote(0);
	vmb_layers_set_remote(ls, r);
	CHECK_RC(vmb_layers_preload_start(ls, NULL, &p, &e), 0);
	for (k = 0; k < 500 && vmb_layers_preload_count(p) < 1; k++)
		usleep(10000);
	usleep(50000);
	CHECK_EQ(vmb_layers_preload_count(p), 1);
	vmb_layers_preload_stop(p);
	CHECK_EQ(index_loads(r), 1);
	CHECK_EQ(vmb_remote_meta_cached(r, d2), 0);   /* not fetched */
	vmb_remote_stats(r, &st);
	CHECK_EQ(st.fetches, 0);
	{
		struct vmb_fetch_stats fs;

		fetcher_stats(r, &fs);   /* the damaged index was not fetched again */
		CHECK_EQ(fs.requests, 0);
	}
	CHECK_EQ(st.images_kept, 1);
	/* the chain of the preloaded layer opens without loading its index again */
	{
		char hex[65], lid[VMB_BASE_ID_LEN + 1];

		vmb_sha256_hex(idx, hex);
		memcpy(lid, hex, VMB_BASE_ID_LEN);
		lid[VMB_BASE_ID_LEN] = '\0';
		CHECK_RC(vmb_layers_get(ls, lid, &b, &e), 0);
		REQUIRE(b);
		CHECK_EQ(index_loads(r), 1);
		vmb_base_put(b);
	}
	/* stopped at once (before it ran): no harm */
	CHECK_RC(vmb_layers_preload_start(ls, NULL, &p, &e), 0);
	vmb_layers_preload_stop(p);
	vmb_layers_close(ls);
	vmb_remote_close(r);
	close(metafd);
}

/* An empty image of `size` bytes (every chunk a zero chunk): its index is
 * 64 + 32 * size / CS bytes. */
static void publish_empty(uint64_t size, uint8_t d[32])
{
	struct vmb_pub_image x = { 0 };
	void *enc;
	size_t len;

	x.chunk_size = CS;
	x.size = size;
	x.n_chunks = size / CS;
	x.ext = calloc(1, sizeof(*x.ext));
	x.chunks = calloc(x.n_chunks, sizeof(*x.chunks));
	REQUIRE(x.ext && x.chunks);
	REQUIRE(vmb_pub_image_encode(&x, &enc, &len, NULL) == 0);
	put_object(enc, len, d);
	free(enc);
	free(x.ext);
	free(x.chunks);
}

static void test_meta_once(void)
{
	struct vmb_remote *r;
	struct vmb_base *b = NULL;
	struct vmb_err e = { 0 };
	struct vmb_fetch_stats fs;
	uint8_t d[32];
	char cmd[9000];

	/* a 2 MiB index (a 4 GiB image): one GET (not a 1 MiB try first) */
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", cachedir);
	CHECK_EQ(system(cmd), 0);
	publish_empty(4ull << 30, d);
	r = open_remote(0);
	CHECK_RC(vmb_rimage_open(r, url, d, 4ull << 30, &b, &e), 0);
	vmb_base_put(b);
	fetcher_stats(r, &fs);
	CHECK_EQ(fs.requests, 1);
	CHECK_EQ(fs.errors, 0);
	CHECK_EQ(fs.bytes, 64 + 32 * ((4ull << 30) / CS));
	vmb_remote_close(r);
	/* an 8 MiB one (16 GiB): a first try, its length asked, then fetched once */
	publish_empty(16ull << 30, d);
	r = open_remote(0);
	CHECK_RC(vmb_rimage_open(r, url, d, 16ull << 30, &b, &e), 0);
	vmb_base_put(b);
	fetcher_stats(r, &fs);
	CHECK_EQ(fs.requests, 3);
	CHECK_EQ(fs.errors, 1);
	vmb_remote_close(r);
}

/* An image index is refused (EFBIG, naming the image, the URL and the sizes)
 * when it is larger than an image of the declared size can have, before it is
 * fetched whole or written to CACHE/meta; one larger than the whole cache may
 * hold is used, not written (outside report r27 G20). */
static void test_index_bound(void)
{
	struct vmb_remote_opts o = { 0 };
	struct vmb_remote *r;
	struct vmb_base *b = NULL;
	struct vmb_err e = { 0 };
	char cmd[9000], hex[65], path[4400];
	struct stat st;

	CHECK_EQ(vmb_rimage_index_limit(0), 64);
	CHECK_EQ(vmb_rimage_index_limit(4096), 64 + 16 + 32);
	CHECK_EQ(vmb_rimage_index_limit(1ull << 40), VMB_RIMAGE_INDEX_MAX);
	CHECK_EQ(vmb_rimage_index_limit(UINT64_MAX), VMB_RIMAGE_INDEX_MAX);
	CHECK(vmb_rimage_index_limit(csize) >= 64 + 16 * 4 + 32 * 21);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", cachedir);
	CHECK_EQ(system(cmd), 0);
	vmb_sha256_hex(idx, hex);
	snprintf(path, sizeof(path), "%s/meta/%.2s/%s", cachedir, hex, hex);
	r = open_remote(0);
	CHECK_RC(vmb_rimage_open(r, url, idx, 4096, &b, &e), -EFBIG);
	CHECK(!b);
	CHECK_STR(e.msg, hex);
	CHECK_STR(e.msg, url);
	CHECK_STR(e.msg, "larger than 112 bytes");
	CHECK_STR(e.msg, "an image of 4096 bytes");
	CHECK(stat(path, &st) < 0 && errno == ENOENT);   /* nothing written */
	/* the declared size: opens, and the index is kept */
	CHECK_RC(vmb_rimage_open(r, url, idx, csize, &b, &e), 0);
	vmb_base_put(b);
	CHECK(stat(path, &st) == 0);
	vmb_remote_close(r);
	/* a cache smaller than the index: used, not written */
	CHECK_EQ(system(cmd), 0);
	o.workers = 1;
	o.cache_max = 100;
	r = open_with(&o, NULL);
	CHECK_RC(vmb_rimage_open(r, url, idx, csize, &b, &e), 0);
	vmb_base_put(b);
	CHECK(stat(path, &st) < 0 && errno == ENOENT);
	vmb_remote_close(r);
}

/* A manifest or image index (CACHE/meta) is fetched by one caller while the others,
 * in this process or another (two contexts here), wait on its per-digest lock and
 * then read what it stored; a holder that dies without it (its lock released)
 * leaves the fetch to the waiter. */
struct meta_arg {
	struct vmb_remote *r;
	const uint8_t *d;
	int rc, done;
};

static void *meta_thread(void *p)
{
	struct meta_arg *a = p;
	struct vmb_err e = { 0 };
	void *buf = NULL;
	size_t len = 0;

	a->rc = vmb_remote_meta(a->r, url, a->d, 1 << 20, &buf, &len, &e);
	if (!a->rc && (len == 0 || buf == NULL))
		a->rc = -99;
	free(buf);
	__atomic_store_n(&a->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void test_meta_flight(void)
{
	struct vmb_remote *r1, *r2;
	struct vmb_cache *c;
	struct vmb_err e = { 0 };
	struct vmb_fetch_stats fs;
	struct meta_arg a = { 0 };
	char cmd[9000], hex[65], rel[VMB_PUB_OBJPATH_LEN];
	pthread_t th;
	int lfd = -1;

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", cachedir);
	CHECK_EQ(system(cmd), 0);
	r1 = open_remote(0);
	r2 = open_remote(0);
	REQUIRE(vmb_remote_cache(r1, &c, &e) == 0);
	/* 1: the holder stores it, the waiter reads it without fetching */
	CHECK_RC(vmb_cache_object_lock(c, idx, &lfd, &e), 0);
	a.r = r2;
	a.d = idx;
	REQUIRE(pthread_create(&th, NULL, meta_thread, &a) == 0);
	usleep(200000);
	CHECK_EQ(__atomic_load_n(&a.done, __ATOMIC_ACQUIRE), 0);   /* it waits */
	vmb_sha256_hex(idx, hex);
	vmb_pub_object_path(idx, rel);
	snprintf(cmd, sizeof(cmd), "mkdir -p '%s/meta/%.2s' && cp '%s/%s' '%s/meta/%.2s/%s'",
		 cachedir, hex, pubdir, rel, cachedir, hex, hex);
	CHECK_EQ(system(cmd), 0);
	vmb_cache_object_unlock(lfd);
	pthread_join(th, NULL);
	CHECK_EQ(a.rc, 0);
	fetcher_stats(r2, &fs);
	CHECK_EQ(fs.requests, 0);   /* read what the holder stored */
	/* 2: the holder goes without storing it: the waiter fetches it itself */
	snprintf(cmd, sizeof(cmd), "rm -rf '%s/meta'", cachedir);
	CHECK_EQ(system(cmd), 0);
	CHECK_RC(vmb_cache_object_lock(c, idx, &lfd, &e), 0);
	memset(&a, 0, sizeof(a));
	a.r = r2;
	a.d = idx;
	REQUIRE(pthread_create(&th, NULL, meta_thread, &a) == 0);
	usleep(200000);
	CHECK_EQ(__atomic_load_n(&a.done, __ATOMIC_ACQUIRE), 0);
	vmb_cache_object_unlock(lfd);
	pthread_join(th, NULL);
	CHECK_EQ(a.rc, 0);
	fetcher_stats(r2, &fs);
	CHECK_EQ(fs.requests, 1);
	vmb_remote_close(r2);
	vmb_remote_close(r1);
}

/* The top index of generation (created: its time) into dir, signed with k or not. */
static void put_top_in(const char *dir, uint64_t generation, int64_t created,
		       const struct vmb_sign_key *k)
{
	struct vmb_pub_index x = { 0 };
	struct vmb_err e = { 0 };
	char path[4400], *buf;
	size_t len;
	int fd;

	x.generation = generation;
	x.created = created;
	REQUIRE(vmb_pub_index_set(&x, "vm", idx, &e) == 0);
	REQUIRE(vmb_pub_index_encode(&x, k, &buf, &len, &e) == 0);
	snprintf(path, sizeof(path), "%s/%s", dir, VMB_PUB_INDEX_FILE);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	REQUIRE(fd >= 0 && write(fd, buf, len) == (ssize_t)len);
	close(fd);
	free(buf);
	vmb_pub_index_free(&x);
}

static void put_top(uint64_t generation)
{
	put_top_in(pubdir, generation, 1, NULL);
}

static void test_top_once(void)
{
	struct vmb_remote *r;
	struct vmb_pub_index t;
	struct vmb_err e = { 0 };
	struct vmb_fetch_stats fs;
	int stale;

	put_top(1);
	/* by default, every call fetches the index (the latest) */
	r = open_remote(0);
	CHECK_RC(vmb_remote_top(r, url, &t, &stale, &e), 0);
	vmb_pub_index_free(&t);
	put_top(2);
	CHECK_RC(vmb_remote_top(r, url, &t, &stale, &e), 0);
	CHECK_EQ(t.generation, 2);
	vmb_pub_index_free(&t);
	fetcher_stats(r, &fs);
	CHECK_EQ(fs.requests, 2);
	vmb_remote_close(r);
	/* top_once: the first one, fetched once */
	r = open_remote(0);
	vmb_remote_top_once(r);
	CHECK_RC(vmb_remote_top(r, url, &t, &stale, &e), 0);
	CHECK_EQ(t.generation, 2);
	vmb_pub_index_free(&t);
	put_top(3);
	CHECK_RC(vmb_remote_top(r, url, &t, &stale, &e), 0);
	CHECK_EQ(t.generation, 2);
	CHECK_EQ(t.n, 1);
	CHECK_EQ(stale, 0);
	vmb_pub_index_free(&t);
	fetcher_stats(r, &fs);
	CHECK_EQ(fs.requests, 1);
	vmb_remote_close(r);
	/* offline, top_once: the saved one (the last fetched: 2), stale each time */
	r = open_remote(1);
	vmb_remote_top_once(r);
	CHECK_RC(vmb_remote_top(r, url, &t, &stale, &e), 0);
	CHECK_EQ(t.generation, 2);
	CHECK_EQ(stale, 1);
	vmb_pub_index_free(&t);
	CHECK_RC(vmb_remote_top(r, url, &t, &stale, &e), 0);
	CHECK_EQ(t.generation, 2);
	CHECK_EQ(stale, 1);
	vmb_pub_index_free(&t);
	vmb_remote_close(r);
}

/* The generation saved for u in the cache (decoded without a key), or 0 (none). */
static uint64_t saved_generation(struct vmb_remote *r, const char *u)
{
	struct vmb_cache *c;
	struct vmb_pub_index x;
	struct vmb_err e = { 0 };
	void *buf;
	size_t len;
	uint64_t g = 0;

	if (vmb_remote_cache(r, &c, &e) != 0 || vmb_cache_url_load(c, u, &buf, &len, &e) != 0)
		return 0;
	if (vmb_pub_index_decode(buf, len, NULL, &x, &e) == 0)
		g = x.generation;
	vmb_pub_index_free(&x);
	free(buf);
	return g;
}

static char top_said[VMB_ERR_MAX];

static void top_say(void *arg, const char *msg)
{
	(void)arg;
	snprintf(top_said, sizeof(top_said), "%s", msg);
}

static const struct vmb_log top_log = { top_say, NULL };

static struct vmb_remote *open_remote_key(int offline, const char *pubkey)
{
	struct vmb_remote_opts o = { 0 };

	o.offline = offline;
	o.workers = 1;
	o.pubkey = pubkey;
	return open_with(&o, &top_log);
}

/* vmb_remote_top of url with a public key: -ESTALE, a message naming the URL, both
 * generations and the rollback; the saved index (generation want) stays. */
static void check_refused(const char *u, const char *pub, const char *gens, uint64_t want)
{
	struct vmb_remote *r = open_remote_key(0, pub);
	struct vmb_pub_index t;
	struct vmb_err e = { 0 };
	int stale;

	CHECK_RC(vmb_remote_top(r, u, &t, &stale, &e), -ESTALE);
	CHECK_STR(e.msg, u);
	CHECK_STR(e.msg, gens);
	CHECK_STR(e.msg, "refused as a rollback");
	CHECK_EQ(saved_generation(r, u), want);
	vmb_remote_close(r);
}

static void check_top(const char *u, const char *pub, int offline, uint64_t want)
{
	struct vmb_remote *r = open_remote_key(offline, pub);
	struct vmb_pub_index t;
	struct vmb_err e = { 0 };
	int stale;

	CHECK_RC(vmb_remote_top(r, u, &t, &stale, &e), 0);
	CHECK_EQ(t.generation, want);
	CHECK_EQ(stale, offline);
	vmb_pub_index_free(&t);
	CHECK_EQ(saved_generation(r, u), want);
	vmb_remote_close(r);
}

/* Outside report r27 G3: with pubkey=, an older signed index (or one of the same
 * generation with other content) is refused and the newer saved one kept; without
 * a key it is used (a log line). Per URL: a mirror has a slot of its own. */
static void test_top_rollback(void)
{
	struct vmb_sign_key *k = NULL;
	struct vmb_err e = { 0 };
	char pub[1200], dir2[1200], url2[1300], slot[2600], cmd[2700];
	uint8_t ud[32];
	char hex[65];

	snprintf(pub, sizeof(pub), "%s/rollback.pub", tmpdir);
	REQUIRE(vmb_sign_key_generate(&k, &e) == 0);
	REQUIRE(vmb_sign_key_save(k, pub, 1, &e) == 0);
	/* generation 2 fetched and saved (the unsigned one saved before does not
	 * verify with the key: not compared) */
	put_top_in(pubdir, 2, 10, k);
	check_top(url, pub, 0, 2);
	/* generation 1, validly signed: refused, the saved one stays and is the one
	 * used offline */
	put_top_in(pubdir, 1, 5, k);
	check_refused(url, pub, "generation 1, older than the verified index saved for "
		      "it in the cache (generation 2)", 2);
	check_top(url, pub, 1, 2);
	/* generation 2 again with other content: refused as well */
	put_top_in(pubdir, 2, 11, k);
	check_refused(url, pub, "generation 2, the same as the verified index saved "
		      "for it in the cache (generation 2) but other content", 2);
	/* the same index again, and a newer one: taken */
	put_top_in(pubdir, 2, 10, k);
	check_top(url, pub, 0, 2);
	put_top_in(pubdir, 3, 12, k);
	check_top(url, pub, 0, 3);
	/* a mirror (another URL) has its own slot: its first index is taken, its
	 * rollback refused */
	snprintf(dir2, sizeof(dir2), "%s/pub2", tmpdir);
	snprintf(url2, sizeof(url2), "file://%s", dir2);
	mkdirs(dir2);
	put_top_in(dir2, 2, 10, k);
	check_top(url2, pub, 0, 2);
	put_top_in(dir2, 1, 5, k);
	check_refused(url2, pub, "generation 1, older than", 2);
	/* without a key the older one is used and saved (nothing says which is
	 * genuine), with a log line */
	top_said[0] = '\0';
	check_top(url2, NULL, 0, 1);
	CHECK_STR(top_said, url2);
	CHECK_STR(top_said, "generation 1, older than the one saved in the cache "
		  "(generation 2); used and saved");
	/* a store published again from scratch: accepted once its slot is removed,
	 * as the message says */
	put_top_in(pubdir, 1, 20, k);
	check_refused(url, pub, "generation 1, older than", 3);
	REQUIRE(vmb_sha256(url, strlen(url), ud, &e) == 0);
	vmb_sha256_hex(ud, hex);
	snprintf(slot, sizeof(slot), "%s/urls/%s", cachedir, hex);
	CHECK_RC(unlink(slot), 0);
	check_top(url, pub, 0, 1);
	vmb_sign_key_free(k);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir2);
	CHECK_EQ(system(cmd), 0);
}

int main(int argc, char **argv)
{
	(void)argc;
	if (harness_tmpdir(tmpdir, sizeof(tmpdir), "rimage") < 0)
		return 1;
	setup();
	RUN(test_lookup_read);
	RUN(test_readahead_offline);
	RUN(test_readahead_cluster);
	RUN(test_readahead_seq);
	RUN(test_readahead_start);
	RUN(test_readahead_sparse);
	RUN(test_readahead_near);
	RUN(test_readahead_near_long);
	RUN(test_readahead_queue_full);
	RUN(test_readahead_overtaken);
	RUN(test_wrong_bytes);
	RUN(test_remote_layer_format);
	RUN(test_mirrors);
	RUN(test_mirrors_wrong_hard);
	RUN(test_layers);
	RUN(test_kept);
	RUN(test_preload);
	RUN(test_meta_once);
	RUN(test_index_bound);
	RUN(test_meta_flight);
	RUN(test_top_once);
	RUN(test_top_rollback);
	harness_rmtree(tmpdir);
	free(content);
	free(racontent);
	return harness_exit(argv[0]);
}
