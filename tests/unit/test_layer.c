/* test_layer.c - unit tests of a store's layers and their chains (src/layer/):
 * chains of 1, 2, 16 and 17 layers (the last merged) against an in-memory model of
 * every layer's content (random maps, random data, random sizes and base limits),
 * lookup and read checked at every block boundary, the layer map format and its
 * messages, missing/corrupt/truncated files giving -EIO naming the layer and its
 * file, list/stat/remove, refcounts and the cache, concurrent readers. */
#include "config.h"
#include "layer/layer.h"
#include "map/pages.h"
#include "base/crc32c.h"
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define BS VMB_BLOCK_SIZE
#define MAXL 40

static char tmpdir[4096];
static char metapath[4200];   /* the current test's STORE/.vmbundlefs */
static int metafd = -1;
static int nstores;
static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static uint64_t rndn(uint64_t n)
{
	return n ? rnd() % n : 0;
}

static uint64_t blocks(uint64_t size)
{
	return (size + BS - 1) / BS;
}

/* ---- the model ---- */

struct mlayer {
	char id[VMB_BASE_ID_LEN + 1];
	uint64_t size;
	unsigned char *content;   /* size bytes */
	int *src;                 /* per block: index of the layer holding it, or -1 */
	unsigned char *clip;      /* per block: a layer above its source ends inside it */
	unsigned depth;
	struct vmb_base *b;       /* the test's reference */
};

static struct mlayer L[MAXL];
static int nl;

static void model_free(void)
{
	for (int i = 0; i < nl; i++) {
		vmb_base_put(L[i].b);
		free(L[i].content);
		free(L[i].src);
		free(L[i].clip);
	}
	memset(L, 0, sizeof(L));
	nl = 0;
}

/* A file of random size with a random map over base (index or -1), made into a
 * layer; the model's entry nl. max_blocks bounds its size. Returns its index. */
static int make_layer(struct vmb_layers *ls, int base, uint64_t max_blocks, int must_merge)
{
	struct mlayer *M = &L[nl], *B = base >= 0 ? &L[base] : NULL;
	struct vmb_blockmap map;
	struct vmb_err err;
	char path[4200];
	uint64_t nb, blk, limit, lim, i;
	unsigned char *blk_state;
	int fd, rc;

	memset(M, 0, sizeof(*M));
	M->size = rndn(max_blocks) * BS + (rndn(3) ? rndn(BS) : 0);
	/* often: a layer ending inside its base's last block (a file shrunk a little) */
	if (B && B->size && !rndn(3))
		M->size = B->size - 1 - rndn(B->size % BS ? B->size % BS : BS);
	nb = blocks(M->size);
	M->content = calloc(1, M->size + 1);
	M->src = calloc(nb + 1, sizeof(int));
	M->clip = calloc(nb + 1, 1);
	blk_state = calloc(nb + 1, 1);
	snprintf(path, sizeof(path), "%s/work.%d", tmpdir, nl);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (!CHECK(fd >= 0 && M->content && M->src && M->clip && blk_state))
		return -1;
	vmb_blockmap_init(&map);
	for (blk = 0; blk < nb; ) {
		uint64_t run = 1 + rndn(6);
		unsigned st = (unsigned)rndn(3);   /* ABSENT, DATA, ZERO */

		if (run > nb - blk)
			run = nb - blk;
		for (i = blk; i < blk + run; i++)
			blk_state[i] = (unsigned char)st;
		if (st)
			CHECK_RC(vmb_blockmap_set(&map, blk, run, st), 0);
		blk += run;
	}
	/* a stray extent past the size: create must ignore it */
	if (rndn(2))
		vmb_blockmap_set(&map, nb + 3, 2, VMB_DATA);
	limit = rndn(2) ? nb + rndn(4) : rndn(nb + 1);
	lim = B ? limit : 0;
	if (B && lim > nb)
		lim = nb;
	if (B && lim > blocks(B->size))
		lim = blocks(B->size);
	for (blk = 0; blk < nb; blk++) {
		uint64_t off = blk * BS, end = off + BS < M->size ? off + BS : M->size;

		if (blk_state[blk] == VMB_DATA) {
			for (i = off; i < end; i++)
				M->content[i] = (unsigned char)(rnd() | 1);
			CHECK(pwrite(fd, M->content + off, end - off, (off_t)off) ==
			      (ssize_t)(end - off));
			M->src[blk] = nl;
		} else if (blk_state[blk] == VMB_ZERO || blk >= lim) {
			M->src[blk] = -1;
		} else {
			for (i = off; i < end; i++)
				M->content[i] = i < B->size ? B->content[i] : 0;
			M->src[blk] = B->src[blk];
			M->clip[blk] = M->src[blk] >= 0 &&
				       (B->clip[blk] || (blk == nb - 1 && M->size % BS));
		}
	}
	CHECK(ftruncate(fd, (off_t)M->size) == 0);
	free(blk_state);
	vmb_err_clear(&err);
	rc = vmb_layers_create(ls, fd, &map, M->size, B ? B->b : NULL, limit, M->id, &err);
	CHECK_RC(rc, 0);
	if (rc)
		fprintf(stderr, "    %s\n", err.msg);
	vmb_blockmap_destroy(&map);
	close(fd);
	unlink(path);
	M->depth = B ? B->depth + 1 : 1;
	if (must_merge || M->depth > VMB_LAYER_DEPTH_MAX) {
		/* merged: one layer holding all of it */
		M->depth = 1;
		for (blk = 0; blk < nb; blk++)
			if (M->src[blk] >= 0) {
				M->src[blk] = nl;
				M->clip[blk] = 0;
			}
	}
	rc = vmb_layers_get(ls, M->id, &M->b, &err);
	CHECK_RC(rc, 0);
	if (rc) {
		fprintf(stderr, "    %s\n", err.msg);
		return -1;
	}
	return nl++;
}

/* Every lookup and read of layer i against the model. */
static void check_layer(int li)
{
	struct mlayer *M = &L[li];
	struct vmb_base *b = M->b;
	struct vmb_err err;
	uint64_t nb = blocks(M->size), blk, run, data = 0, k;
	unsigned char *buf;
	size_t cap = (size_t)(nb + 3) * BS;
	int fd;

	if (!CHECK(b != NULL))
		return;
	CHECK_EQ(b->size, M->size);
	CHECK_EQ(b->depth, M->depth);
	CHECK(!strcmp(b->id, M->id));
	for (blk = 0; blk < nb; blk++)
		data += M->src[blk] >= 0;
	CHECK_EQ(b->data_blocks, data);
	/* lookup at every block: state, source layer, maximal runs */
	for (blk = 0; blk < nb + 3; blk++) {
		int want = blk < nb ? M->src[blk] : -1;
		enum vmb_bstate st = b->ops->lookup(b, blk, &run, &fd);

		CHECK(run >= 1);
		if (want >= 0) {
			const char *id = vmb_layers_fd_id(b, fd);

			CHECK_EQ(st, VMB_DATA);
			if (M->clip[blk])
				CHECK_EQ(fd, -1);
			else if (!CHECK(id && !strcmp(id, L[want].id)))
				fprintf(stderr, "    block %" PRIu64 " of layer %d\n", blk, li);
		} else {
			CHECK_EQ(st, VMB_ZERO);
			CHECK_EQ(fd, -1);
		}
		for (k = blk; k < blk + run && k < nb; k++)
			CHECK(M->src[k] == want && M->clip[k] == M->clip[blk]);
		if (blk + run < nb)
			CHECK(M->src[blk + run] != want || M->clip[blk + run] != M->clip[blk]);
		if (blk >= nb)
			CHECK_EQ(run, VMB_BLOCK_MAX - blk);
		/* the descriptor reads the block's bytes at their own offset */
		if (want >= 0 && !M->clip[blk] && blk * BS < M->size) {
			unsigned char c = 0xaa;

			CHECK(pread(fd, &c, 1, (off_t)(blk * BS)) == 1);
			CHECK_EQ(c, M->content[blk * BS]);
		}
	}
	buf = malloc(cap);
	if (!CHECK(buf))
		return;
	/* the whole content, and past the size */
	memset(buf, 0x55, cap);
	CHECK_EQ(b->ops->read(b, buf, cap, 0, &err), cap);
	CHECK(!memcmp(buf, M->content, M->size));
	for (k = M->size; k < cap; k++)
		if (buf[k]) {
			CHECK(!"zeros past the size");
			break;
		}
	/* across every block boundary */
	for (blk = 1; blk <= nb; blk++) {
		uint64_t off = blk * BS - 1;
		unsigned char two[2] = { 0x55, 0x55 }, want[2];

		want[0] = off < M->size ? M->content[off] : 0;
		want[1] = off + 1 < M->size ? M->content[off + 1] : 0;
		CHECK_EQ(b->ops->read(b, two, 2, off, &err), 2);
		CHECK(two[0] == want[0] && two[1] == want[1]);
	}
	/* random ranges */
	for (k = 0; k < 40; k++) {
		uint64_t off = rndn(cap), len = rndn(cap - off) + 1, i;

		memset(buf, 0x55, len);
		CHECK_EQ(b->ops->read(b, buf, len, off, &err), len);
		for (i = 0; i < len; i++)
			if (buf[i] != (off + i < M->size ? M->content[off + i] : 0)) {
				CHECK(!"random read differs");
				break;
			}
	}
	free(buf);
}

/* ---- helpers ---- */

/* A fresh store's metadata directory for the next test. */
static int new_store(void)
{
	if (metafd >= 0)
		close(metafd);
	snprintf(metapath, sizeof(metapath), "%s/s%d", tmpdir, nstores++);
	if (mkdir(metapath, 0700) < 0)
		return -1;
	snprintf(metapath + strlen(metapath), sizeof(metapath) - strlen(metapath),
		 "/.vmbundlefs");
	if (mkdir(metapath, 0700) < 0)
		return -1;
	metafd = open(metapath, O_RDONLY | O_DIRECTORY);
	return metafd < 0 ? -1 : 0;
}

static struct vmb_layers *open_layers(void)
{
	struct vmb_layers *ls = NULL;
	struct vmb_err err;

	if (vmb_layers_open(&ls, metafd, NULL, &err)) {
		fprintf(stderr, "vmb_layers_open: %s\n", err.msg);
		return NULL;
	}
	return ls;
}

static int layers_fd(void)
{
	return openat(metafd, VMB_LAYERS_DIR, O_RDONLY | O_DIRECTORY);
}

/* Read a layer file into buf (*len), or write it back. */
static int slurp(const char *id, const char *suffix, unsigned char **buf, size_t *len)
{
	char name[64];
	struct stat st;
	int d = layers_fd(), fd;

	snprintf(name, sizeof(name), "%s%s", id, suffix);
	fd = openat(d, name, O_RDONLY);
	close(d);
	if (fd < 0 || fstat(fd, &st) < 0)
		return -1;
	*len = (size_t)st.st_size;
	*buf = malloc(*len + 1);
	if (pread(fd, *buf, *len, 0) != (ssize_t)*len) {
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

static int spit(const char *id, const char *suffix, const unsigned char *buf, size_t len)
{
	char name[64];
	int d = layers_fd(), fd, rc = 0;

	snprintf(name, sizeof(name), "%s%s", id, suffix);
	fd = openat(d, name, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	close(d);
	if (fd < 0)
		return -1;
	if (write(fd, buf, len) != (ssize_t)len)
		rc = -1;
	close(fd);
	return rc;
}

static void put_all(void)
{
	model_free();
}

/* ---- tests ---- */

static void test_chain(unsigned depth, int merge_last)
{
	struct vmb_layers *ls = open_layers();
	int base = -1, i;

	if (!CHECK(ls))
		return;
	for (unsigned d = 0; d < depth; d++) {
		i = make_layer(ls, base, 40, merge_last && d == depth - 1);
		if (i < 0)
			break;
		check_layer(i);
		base = i;
	}
	/* every layer again, the cache full */
	for (i = 0; i < nl; i++)
		check_layer(i);
	put_all();
	vmb_layers_close(ls);
}

static void test_chain_1(void) { test_chain(1, 0); }
static void test_chain_2(void) { for (int k = 0; k < 8; k++) test_chain(2, 0); }
static void test_chain_16(void) { test_chain(16, 0); }
static void test_chain_17(void) { test_chain(17, 1); }

/* Sizes and limits at their edges: a base larger than the layer, a limit past
 * both, a layer of 0 bytes, a base of 0 bytes. */
static void test_edges(void)
{
	struct vmb_layers *ls = open_layers();
	unsigned char buf[3 * BS];
	struct vmb_blockmap m;
	struct vmb_base *b0 = NULL, *b1 = NULL;
	struct vmb_err err;
	char id0[33], id1[33], path[4200];
	uint64_t run;
	int fd, sfd;

	if (!CHECK(ls))
		return;
	vmb_blockmap_init(&m);
	/* base: 3 blocks of 0x11, 2.5 blocks long */
	snprintf(path, sizeof(path), "%s/edge0", tmpdir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	memset(buf, 0x11, sizeof(buf));
	CHECK(pwrite(fd, buf, 2 * BS + BS / 2, 0) == 2 * BS + BS / 2);
	vmb_blockmap_set(&m, 0, 3, VMB_DATA);
	CHECK_RC(vmb_layers_create(ls, fd, &m, 2 * BS + BS / 2, NULL, 99, id0, &err), 0);
	close(fd);
	unlink(path);   /* the layer has the inode now: a new file for the next */
	CHECK_RC(vmb_layers_get(ls, id0, &b0, &err), 0);
	/* on it: a file of 1.5 blocks, nothing of its own, limit 99 */
	vmb_blockmap_destroy(&m);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	CHECK(ftruncate(fd, BS + BS / 2) == 0);
	CHECK_RC(vmb_layers_create(ls, fd, &m, BS + BS / 2, b0, 99, id1, &err), 0);
	CHECK_RC(vmb_layers_get(ls, id1, &b1, &err), 0);
	close(fd);
	unlink(path);
	if (b1) {
		struct vmb_layer_info li;

		CHECK_RC(vmb_layers_stat(ls, id1, &li, &err), 0);
		CHECK_EQ(li.limit, 2);   /* clipped to the layer's blocks */
		CHECK_EQ(b1->data_blocks, 2);
		memset(buf, 0x55, sizeof(buf));
		CHECK_EQ(b1->ops->read(b1, buf, sizeof(buf), 0, &err), sizeof(buf));
		/* the base's bytes up to the layer's size, zeros after (the base's
		 * block 1 is whole, but the layer ends at 1.5 blocks) */
		CHECK(buf[0] == 0x11 && buf[BS + BS / 2 - 1] == 0x11);
		CHECK(buf[BS + BS / 2] == 0 && buf[2 * BS] == 0);
		CHECK_EQ(b1->ops->lookup(b1, 1, &run, &sfd), VMB_DATA);
		CHECK_EQ(run, 1);
		CHECK_EQ(b1->ops->lookup(b1, 2, &run, &sfd), VMB_ZERO);
	}
	/* a layer of 0 bytes over a base: reads nothing but zeros */
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	{
		char id2[33];
		struct vmb_base *b2 = NULL;

		CHECK_RC(vmb_layers_create(ls, fd, &m, 0, b0, 5, id2, &err), 0);
		CHECK_RC(vmb_layers_get(ls, id2, &b2, &err), 0);
		if (b2) {
			CHECK_EQ(b2->size, 0);
			CHECK_EQ(b2->data_blocks, 0);
			CHECK_EQ(b2->depth, 2);
			CHECK_EQ(b2->ops->read(b2, buf, BS, 0, &err), BS);
			CHECK(buf[0] == 0 && buf[BS - 1] == 0);
		}
		vmb_base_put(b2);
		/* a size that does not match the file */
		CHECK_RC(vmb_layers_create(ls, fd, &m, 5, NULL, 0, id2, &err), -EINVAL);
		CHECK_STR(err.msg, "of 0 bytes as one of 5");
	}
	close(fd);
	unlink(path);
	vmb_base_put(b1);
	vmb_base_put(b0);
	vmb_blockmap_destroy(&m);
	vmb_layers_close(ls);
}

static void test_map_format(void)
{
	struct vmb_layer_hdr h, h2;
	struct vmb_blockmap m, m2;
	struct vmb_err err;
	unsigned char *b;
	void *buf;
	size_t len;
	const char *id = "0123456789abcdef0123456789abcdef";

	memset(&h, 0, sizeof(h));
	vmb_blockmap_init(&m);
	vmb_blockmap_init(&m2);
	h.stamp.size = 1000 * BS;
	h.stamp.ino = 77;
	h.stamp.mtime_sec = 1700000000;
	h.stamp.mtime_nsec = 3;
	memcpy(h.base, "fedcba9876543210fedcba9876543210", 33);
	h.limit = 900;
	h.depth = 5;
	for (unsigned i = 0; i < 200; i++)
		vmb_blockmap_set(&m, i * 3, 2, i % 4 ? VMB_DATA : VMB_ZERO);
	REQUIRE(vmb_layer_map_encode(&m, &h, &buf, &len, &err) == 0);
	b = buf;
	CHECK_EQ(len, 3 * 4096);
	CHECK(!memcmp(b, "VMBLAYR1", 8));
	CHECK_EQ(b[8], 1);
	CHECK_EQ(b[80], 1);
	CHECK(!memcmp(b + 88, h.base, 32));
	CHECK_EQ(b[120] | b[121] << 8, 900);
	CHECK_EQ(b[128], 5);
	CHECK_RC(vmb_layer_map_decode(buf, len, id, &m2, &h2, &err), 0);
	CHECK(vmb_blockmap_equal(&m, &m2));
	CHECK(!strcmp(h2.base, h.base));
	CHECK_EQ(h2.limit, 900);
	CHECK_EQ(h2.depth, 5);
	CHECK(vmb_stamp_equal(&h.stamp, &h2.stamp));
	/* errors name the layer and the offset */
	b[4096 + 5] ^= 1;
	CHECK_RC(vmb_layer_map_decode(buf, len, id, &m2, &h2, &err), -EBADMSG);
	CHECK_STR(err.msg, "layer '0123456789abcdef0123456789abcdef' is corrupt (bad "
		  "checksum at offset 4096)");
	b[4096 + 5] ^= 1;
	CHECK_RC(vmb_layer_map_decode(buf, len - 100, id, &m2, &h2, &err), -EBADMSG);
	CHECK_STR(err.msg, "is truncated (12188 bytes, expected 12288)");
	b[128] = 17;   /* depth past the limit */
	vmb_pages_seal(b, len);
	CHECK_RC(vmb_layer_map_decode(buf, len, id, &m2, &h2, &err), -EBADMSG);
	CHECK_STR(err.msg, "bad depth 17 at offset 128");
	b[128] = 5;
	b[80] = 0;     /* a base id without the flag */
	vmb_pages_seal(b, len);
	CHECK_RC(vmb_layer_map_decode(buf, len, id, &m2, &h2, &err), -EBADMSG);
	CHECK_STR(err.msg, "a base id without the base flag at offset 88");
	b[80] = 1;
	b[88] = 'G';
	vmb_pages_seal(b, len);
	CHECK_RC(vmb_layer_map_decode(buf, len, id, &m2, &h2, &err), -EBADMSG);
	CHECK_STR(err.msg, "invalid base id at offset 88");
	b[88] = 'f';
	b[121] = 0x10;   /* limit 4096 + 900 past 1000 blocks */
	vmb_pages_seal(b, len);
	CHECK_RC(vmb_layer_map_decode(buf, len, id, &m2, &h2, &err), -EBADMSG);
	CHECK_STR(err.msg, "past the layer's 1000 blocks at offset 120");
	b[121] = 900 >> 8;
	b[8] = 2;
	vmb_pages_seal(b, len);
	CHECK_RC(vmb_layer_map_decode(buf, len, id, &m2, &h2, &err), -EPROTONOSUPPORT);
	b[8] = 1;
	b[200] = 1;
	vmb_pages_seal(b, len);
	CHECK_RC(vmb_layer_map_decode(buf, len, id, &m2, &h2, &err), -EBADMSG);
	CHECK_STR(err.msg, "non-zero padding at offset 200");
	b[200] = 0;
	vmb_pages_seal(b, len);
	CHECK_RC(vmb_layer_map_decode(buf, len, id, &m2, &h2, &err), 0);
	free(buf);
	/* an extent past the size is refused both ways */
	h.stamp.size = 10 * BS;
	h.limit = 10;
	CHECK_RC(vmb_layer_map_encode(&m, &h, &buf, &len, &err), -EINVAL);
	vmb_blockmap_destroy(&m);
	vmb_blockmap_destroy(&m2);
	CHECK(vmb_base_id_valid(id));
	CHECK(!vmb_base_id_valid("0123456789ABCDEF0123456789abcdef"));
	CHECK(!vmb_base_id_valid("0123456789abcdef0123456789abcde"));
	CHECK(!vmb_base_id_valid("0123456789abcdef0123456789abcdef0"));
}

/* A chain of three; each file of the middle one damaged in turn: a fresh set of
 * layers (empty cache) gets -EIO naming the layer and its file. */
static void test_damage(void)
{
	struct vmb_layers *ls = open_layers();
	struct vmb_base *b = NULL;
	struct vmb_err err;
	unsigned char *map = NULL, *data = NULL, *bad;
	size_t mlen = 0, dlen = 0;
	char want[4600];
	int i0, i1, i2, d;

	if (!CHECK(ls))
		return;
	i0 = make_layer(ls, -1, 20, 0);
	i1 = make_layer(ls, i0, 20, 0);
	i2 = make_layer(ls, i1, 20, 0);
	REQUIRE(i2 >= 0);
	{
		char ids[3][33];

		memcpy(ids[0], L[i0].id, 33);
		memcpy(ids[1], L[i1].id, 33);
		memcpy(ids[2], L[i2].id, 33);
		put_all();
		vmb_layers_close(ls);
		ls = open_layers();
		REQUIRE(ls);
		REQUIRE(slurp(ids[1], ".map", &map, &mlen) == 0);
		REQUIRE(slurp(ids[1], ".data", &data, &dlen) == 0);
		d = layers_fd();

		/* the .map missing */
		CHECK(unlinkat(d, (snprintf(want, sizeof(want), "%s.map", ids[1]), want), 0) == 0);
		CHECK_RC(vmb_layers_get(ls, ids[2], &b, &err), -EIO);
		CHECK(b == NULL);
		snprintf(want, sizeof(want), "layer '%s' is missing (%s/layers/%s.map)"
			 "; needed by layer '%s'", ids[1], metapath, ids[1], ids[2]);
		CHECK_STR(err.msg, want);
		/* corrupt */
		bad = malloc(mlen);
		memcpy(bad, map, mlen);
		bad[mlen - 1] ^= 0x40;
		CHECK(spit(ids[1], ".map", bad, mlen) == 0);
		CHECK_RC(vmb_layers_get(ls, ids[2], &b, &err), -EIO);
		snprintf(want, sizeof(want), "layer '%s' is corrupt (bad checksum at offset %zu): "
			 "%s/layers/%s.map", ids[1], mlen - 4096, metapath, ids[1]);
		CHECK_STR(err.msg, want);
		/* truncated */
		CHECK(spit(ids[1], ".map", map, mlen - 1) == 0);
		CHECK_RC(vmb_layers_get(ls, ids[1], &b, &err), -EIO);
		snprintf(want, sizeof(want), "layer '%s' is truncated (%zu bytes, expected %zu)",
			 ids[1], mlen - 1, mlen);
		CHECK_STR(err.msg, want);
		CHECK(strstr(err.msg, "needed by") == NULL);
		/* stat says the same */
		{
			struct vmb_layer_info li;

			CHECK_RC(vmb_layers_stat(ls, ids[1], &li, &err), -EIO);
			CHECK_STR(err.msg, want);
		}
		CHECK(spit(ids[1], ".map", map, mlen) == 0);
		/* the .data missing */
		snprintf(want, sizeof(want), "%s.data", ids[1]);
		CHECK(unlinkat(d, want, 0) == 0);
		CHECK_RC(vmb_layers_get(ls, ids[2], &b, &err), -EIO);
		snprintf(want, sizeof(want), "layer '%s' is missing its data (%s/"
			 "layers/%s.data); needed by layer '%s'", ids[1], metapath, ids[1], ids[2]);
		CHECK_STR(err.msg, want);
		/* the .data changed (one byte longer) */
		data[dlen] = 0;
		CHECK(spit(ids[1], ".data", data, dlen + 1) == 0);
		CHECK_RC(vmb_layers_get(ls, ids[2], &b, &err), -EIO);
		snprintf(want, sizeof(want), "layer '%s' was changed: %s/layers/"
			 "%s.data has %zu bytes, its map says %zu", ids[1], metapath, ids[1],
			 dlen + 1, dlen);
		CHECK_STR(err.msg, want);
		/* nothing was left open by the failures */
		{
			char (*open)[33];
			size_t n = 9;

			CHECK_RC(vmb_layers_open_ids(ls, &open, &n), 0);
			CHECK_EQ(n, 0);
			free(open);
		}
		/* the top's base reached through a loop (its own id as its base's base) is
		 * refused, not followed forever: make layer 1 stand on layer 2 */
		{
			struct vmb_blockmap m;
			struct vmb_layer_hdr h;
			void *enc;
			size_t elen;
			struct timespec ts[2];

			vmb_blockmap_init(&m);
			CHECK_RC(vmb_layer_map_decode(map, mlen, ids[1], &m, &h, &err), 0);
			memcpy(h.base, ids[2], 33);
			h.depth = 2;
			CHECK_RC(vmb_layer_map_encode(&m, &h, &enc, &elen, &err), 0);
			CHECK(spit(ids[1], ".map", enc, elen) == 0);
			CHECK(spit(ids[1], ".data", data, dlen) == 0);
			ts[0] = ts[1] = (struct timespec){ h.stamp.mtime_sec, h.stamp.mtime_nsec };
			snprintf(want, sizeof(want), "%s.data", ids[1]);
			CHECK(utimensat(d, want, ts, 0) == 0);
			CHECK_RC(vmb_layers_get(ls, ids[2], &b, &err), -EIO);
			CHECK_STR(err.msg, "its chain loops");
			free(enc);
			vmb_blockmap_destroy(&m);
			CHECK(spit(ids[1], ".map", map, mlen) == 0);
		}
		/* restored: the whole chain opens and reads again */
		CHECK_RC(vmb_layers_get(ls, ids[2], &b, &err), 0);
		vmb_base_put(b);
		close(d);
		free(bad);
	}
	free(map);
	free(data);
	vmb_layers_close(ls);
}

/* A layer's .data that shrinks under an open chain: reads fail with -EIO naming it,
 * never zeros. */
static void test_read_eio(void)
{
	struct vmb_layers *ls = open_layers();
	unsigned char buf[BS];
	struct vmb_err err;
	char name[64];
	int i, d;
	uint64_t blk;

	if (!CHECK(ls))
		return;
	for (;;) {
		i = make_layer(ls, -1, 20, 0);
		REQUIRE(i >= 0);
		if (L[i].b->data_blocks && L[i].size > BS)
			break;
		model_free();
	}
	for (blk = 0; L[i].src[blk] < 0; blk++)
		;
	d = layers_fd();
	snprintf(name, sizeof(name), "%s.data", L[i].id);
	{
		int fd = openat(d, name, O_WRONLY);

		CHECK(fd >= 0 && ftruncate(fd, (off_t)(blk * BS)) == 0);
		close(fd);
	}
	CHECK_EQ(L[i].b->ops->read(L[i].b, buf, 1, blk * BS, &err), -EIO);
	snprintf(name, sizeof(name), "cannot read layer '%s' (", L[i].id);
	CHECK_STR(err.msg, name);
	CHECK_STR(err.msg, "before its size");
	close(d);
	put_all();
	vmb_layers_close(ls);
}

static void test_cache_list_remove(void)
{
	struct vmb_layers *ls = open_layers();
	struct vmb_layer_list list;
	struct vmb_layer_info li;
	struct vmb_base *again = NULL;
	struct vmb_err err;
	char (*ids)[33] = NULL, top[33], mid[33], bot[33];
	size_t n = 0;
	int i0, i1, i2, d, fd;

	if (!CHECK(ls))
		return;
	i0 = make_layer(ls, -1, 10, 0);
	i1 = make_layer(ls, i0, 10, 0);
	i2 = make_layer(ls, i1, 10, 0);
	REQUIRE(i2 >= 0);
	memcpy(top, L[i2].id, 33);
	memcpy(mid, L[i1].id, 33);
	memcpy(bot, L[i0].id, 33);
	/* one chain per id: a second get is the same object, one more reference */
	CHECK_RC(vmb_layers_get(ls, top, &again, &err), 0);
	CHECK(again == L[i2].b);
	CHECK_EQ(again->refs, 2);
	vmb_base_put(again);
	/* the resolver is the same */
	{
		struct vmb_base_resolver r = vmb_layers_resolver(ls);

		CHECK_RC(r.open(r.arg, mid, &again, &err), 0);
		CHECK(again == L[i1].b);
		vmb_base_put(again);
		CHECK_RC(r.open(r.arg, "nothex", &again, &err), -EINVAL);
	}
	CHECK_RC(vmb_layers_open_ids(ls, &ids, &n), 0);
	CHECK_EQ(n, 3);
	free(ids);
	/* in use: not removed */
	CHECK_RC(vmb_layers_remove(ls, bot, &err), -EBUSY);
	CHECK_STR(err.msg, "is in use");
	/* the test drops the bottom and middle: the top keeps them open */
	vmb_base_put(L[i0].b);
	L[i0].b = NULL;
	vmb_base_put(L[i1].b);
	L[i1].b = NULL;
	CHECK_RC(vmb_layers_open_ids(ls, &ids, &n), 0);
	CHECK_EQ(n, 3);
	free(ids);
	CHECK_RC(vmb_layers_remove(ls, mid, &err), -EBUSY);
	vmb_base_put(L[i2].b);
	L[i2].b = NULL;
	CHECK_RC(vmb_layers_open_ids(ls, &ids, &n), 0);
	CHECK_EQ(n, 0);
	CHECK(ids == NULL);
	/* stat */
	CHECK_RC(vmb_layers_stat(ls, top, &li, &err), 0);
	CHECK(!strcmp(li.base, mid));
	CHECK_EQ(li.depth, 3);
	CHECK_EQ(li.size, L[i2].size);
	CHECK_RC(vmb_layers_stat(ls, bot, &li, &err), 0);
	CHECK(li.base[0] == '\0');
	CHECK_EQ(li.depth, 1);
	/* orphans and strays */
	d = layers_fd();
	fd = openat(d, "00000000000000000000000000000001.data", O_CREAT | O_WRONLY, 0400);
	close(fd);
	fd = openat(d, "00000000000000000000000000000002.tmp", O_CREAT | O_WRONLY, 0600);
	close(fd);
	fd = openat(d, "junk", O_CREAT | O_WRONLY, 0600);
	close(fd);
	CHECK_RC(vmb_layers_list(ls, &list, &err), 0);
	CHECK_EQ(list.n, 3);
	CHECK_EQ(list.norphans, 2);
	CHECK_EQ(list.nstray, 1);
	if (list.norphans == 2) {
		CHECK(!strcmp(list.orphans[0], "00000000000000000000000000000001"));
		CHECK(!strcmp(list.orphans[1], "00000000000000000000000000000002"));
	}
	if (list.nstray == 1)
		CHECK(!strcmp(list.stray[0], "junk"));
	for (size_t k = 1; k < list.n; k++)
		CHECK(strcmp(list.ids[k - 1], list.ids[k]) < 0);
	vmb_layer_list_free(&list);
	CHECK_RC(vmb_layers_remove(ls, "00000000000000000000000000000001", &err), 0);
	CHECK_RC(vmb_layers_remove(ls, "00000000000000000000000000000002", &err), 0);
	CHECK_RC(vmb_layers_remove(ls, "00000000000000000000000000000002", &err), -ENOENT);
	/* removing the middle: the top fails naming it; the others remain */
	CHECK_RC(vmb_layers_remove(ls, mid, &err), 0);
	CHECK_RC(vmb_layers_stat(ls, mid, &li, &err), -ENOENT);
	CHECK_RC(vmb_layers_get(ls, top, &again, &err), -EIO);
	CHECK_STR(err.msg, mid);
	CHECK_RC(vmb_layers_list(ls, &list, &err), 0);
	CHECK_EQ(list.n, 2);
	CHECK_EQ(list.norphans, 0);
	vmb_layer_list_free(&list);
	unlinkat(d, "junk", 0);
	close(d);
	put_all();
	vmb_layers_close(ls);
}

static void test_create_copy(void)
{
	struct vmb_layers *ls = open_layers();
	struct vmb_base *b = NULL;
	struct vmb_err err;
	unsigned char *buf, *want;
	char id[33], path[4200];
	uint64_t size = 40 * BS + 123;
	int fd;

	if (!CHECK(ls))
		return;
	want = calloc(1, size);
	buf = malloc(size);
	snprintf(path, sizeof(path), "%s/copysrc", tmpdir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	REQUIRE(fd >= 0 && want && buf);
	for (uint64_t off = 3 * BS + 7; off < size; off += 9 * BS) {
		memset(want + off, (int)(off & 0xff) | 1, 100);
		CHECK(pwrite(fd, want + off, 100, (off_t)off) == 100);
	}
	CHECK(ftruncate(fd, (off_t)size) == 0);
	CHECK_RC(vmb_layers_create_copy(ls, fd, size, id, &err), 0);
	close(fd);
	unlink(path);
	CHECK_RC(vmb_layers_get(ls, id, &b, &err), 0);
	if (b) {
		CHECK_EQ(b->size, size);
		CHECK_EQ(b->depth, 1);
		CHECK(b->data_blocks < 41);   /* holes stayed holes */
		CHECK_EQ(b->ops->read(b, buf, size, 0, &err), size);
		CHECK(!memcmp(buf, want, size));
	}
	vmb_base_put(b);
	free(buf);
	free(want);
	vmb_layers_close(ls);
}

/* Threads read a 16-deep chain at random and check against the model while other
 * threads get and put its layers (the cache). */
struct reader { int seed; int bad; };

static void *reader_fn(void *arg)
{
	struct reader *r = arg;
	uint64_t x = 0x12345678u + (uint64_t)r->seed * 7919;
	unsigned char buf[3 * BS];
	struct vmb_err err;

	for (int k = 0; k < 3000; k++) {
		struct mlayer *M;
		uint64_t off, len;

		x ^= x << 13; x ^= x >> 7; x ^= x << 17;
		M = &L[x % nl];
		off = (x >> 8) % (M->size + BS);
		len = 1 + (x >> 24) % sizeof(buf);
		if (M->b->ops->read(M->b, buf, len, off, &err) != (ssize_t)len) {
			r->bad++;
			continue;
		}
		for (uint64_t i = 0; i < len; i++)
			if (buf[i] != (off + i < M->size ? M->content[off + i] : 0)) {
				r->bad++;
				break;
			}
	}
	return NULL;
}

static struct vmb_layers *shared_ls;

static void *getter_fn(void *arg)
{
	struct reader *r = arg;
	struct vmb_base *b;
	struct vmb_err err;

	for (int k = 0; k < 2000; k++) {
		struct mlayer *M = &L[(k + r->seed) % nl];

		if (vmb_layers_get(shared_ls, M->id, &b, &err) || b != M->b)
			r->bad++;
		vmb_base_put(b);
	}
	return NULL;
}

static void test_threads(void)
{
	pthread_t t[6];
	struct reader r[6];
	int base = -1;

	shared_ls = open_layers();
	if (!CHECK(shared_ls))
		return;
	for (int d = 0; d < 16; d++)
		base = make_layer(shared_ls, base, 30, 0);
	REQUIRE(base >= 0);
	for (int i = 0; i < 6; i++) {
		r[i] = (struct reader){ .seed = i };
		CHECK(pthread_create(&t[i], NULL, i < 4 ? reader_fn : getter_fn, &r[i]) == 0);
	}
	for (int i = 0; i < 6; i++) {
		pthread_join(t[i], NULL);
		CHECK_EQ(r[i].bad, 0);
	}
	put_all();
	vmb_layers_close(shared_ls);
}

/* Chains and merged layers past the depth limit, then a chain on the merged one. */
static void test_past_depth(void)
{
	struct vmb_layers *ls = open_layers();
	int base = -1, i;

	if (!CHECK(ls))
		return;
	for (int d = 0; d < 20; d++) {
		int merge = d == 16;   /* the 17th: merged; then 18, 19, 20 stand on it */

		i = make_layer(ls, base, 24, merge);
		REQUIRE(i >= 0);
		CHECK_EQ(L[i].b->depth, merge ? 1 : (d < 16 ? d + 1 : d - 15));
		check_layer(i);
		base = i;
	}
	put_all();
	vmb_layers_close(ls);
}

/* Bad input leaves nothing behind: a file on another filesystem (the frozen inode
 * cannot be linked), a base of another store, an invalid id. Modes whatever the
 * umask: layers/ 0700, .map 0600, .data 0400. */
static void test_bad_input(void)
{
	struct vmb_layers *ls = open_layers(), *other = NULL;
	struct vmb_layer_list list;
	struct vmb_blockmap m;
	struct vmb_base *b = NULL, *ob = NULL;
	struct vmb_err err;
	struct stat st;
	char id[33], oid[33], path[4200], name[64], keep[4200];
	mode_t old = umask(0);
	int fd, d;

	if (!CHECK(ls))
		return;
	vmb_blockmap_init(&m);
	vmb_blockmap_set(&m, 0, 1, VMB_DATA);
	/* another filesystem */
	snprintf(path, sizeof(path), "/dev/shm/vmb-test-layer.%d", (int)getpid());
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd >= 0) {
		struct stat a, b2;

		CHECK(write(fd, "x", 1) == 1);
		CHECK(fstat(fd, &a) == 0 && stat(tmpdir, &b2) == 0);
		if (a.st_dev != b2.st_dev) {
			CHECK_RC(vmb_layers_create(ls, fd, &m, 1, NULL, 0, id, &err), -EXDEV);
			CHECK_STR(err.msg, "layers must be on the store's filesystem");
			CHECK(id[0] == '\0');
			CHECK(fstat(fd, &a) == 0 && (a.st_mode & 07777) == 0644);
		}
		close(fd);
		unlink(path);
	}
	CHECK_RC(vmb_layers_list(ls, &list, &err), 0);
	CHECK_EQ(list.n + list.norphans + list.nstray, 0);
	vmb_layer_list_free(&list);
	/* a base of another store's layers */
	snprintf(keep, sizeof(keep), "%s", metapath);
	REQUIRE(new_store() == 0);
	other = open_layers();
	REQUIRE(other);
	snprintf(path, sizeof(path), "%s/bad0", tmpdir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	CHECK(write(fd, "y", 1) == 1);
	CHECK_RC(vmb_layers_create(other, fd, &m, 1, NULL, 0, oid, &err), 0);
	close(fd);
	unlink(path);
	CHECK_RC(vmb_layers_get(other, oid, &ob, &err), 0);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	CHECK(write(fd, "z", 1) == 1);
	CHECK_RC(vmb_layers_create(ls, fd, &m, 1, ob, 1, id, &err), -EINVAL);
	CHECK_STR(err.msg, "not a layer of this store");
	/* a good one: modes with umask 0 */
	CHECK_RC(vmb_layers_create(ls, fd, &m, 1, NULL, 0, id, &err), 0);
	/* the caller's file keeps its mode until it is sealed, once its name is gone */
	CHECK(fstat(fd, &st) == 0 && (st.st_mode & 07777) == 0644);
	close(fd);
	unlink(path);
	CHECK_RC(vmb_layers_seal(ls, id, &err), 0);
	CHECK(fstatat(metafd, VMB_LAYERS_DIR, &st, 0) == 0 && (st.st_mode & 07777) == 0700);
	fd = open(keep, O_RDONLY | O_DIRECTORY);
	d = openat(fd, VMB_LAYERS_DIR, O_RDONLY | O_DIRECTORY);
	close(fd);
	snprintf(name, sizeof(name), "%s.map", id);
	CHECK(fstatat(d, name, &st, 0) == 0 && (st.st_mode & 07777) == 0600);
	snprintf(name, sizeof(name), "%s.data", id);
	CHECK(fstatat(d, name, &st, 0) == 0 && (st.st_mode & 07777) == 0400);
	close(d);
	CHECK_RC(vmb_layers_get(ls, "0123", &b, &err), -EINVAL);
	CHECK_RC(vmb_layers_get(ls, "0123456789abcdef0123456789abcdeF", &b, &err), -EINVAL);
	CHECK(b == NULL);
	CHECK_RC(vmb_layers_get(ls, "0123456789abcdef0123456789abcdef", &b, &err), -EIO);
	CHECK_STR(err.msg, "is missing");
	umask(old);
	vmb_base_put(ob);
	vmb_layers_close(other);
	vmb_blockmap_destroy(&m);
	vmb_layers_close(ls);
}

/* kill -9 while layers are being made (by create and create_copy, in a child):
 * every layer that exists opens and reads whole; what a kill cut short is at most
 * an orphan, which remove takes away. */
static void test_kill(void)
{
	struct vmb_layers *ls = open_layers();
	struct vmb_layer_list list;
	struct vmb_err err;
	unsigned char *buf = malloc(1 << 20);
	size_t total = 0, orphans = 0;

	if (!CHECK(ls && buf))
		return;
	for (int round = 0; round < 12; round++) {
		pid_t pid = fork();

		if (pid == 0) {
			char path[4200], id[33];
			struct vmb_blockmap m;

			vmb_blockmap_init(&m);
			vmb_blockmap_set(&m, 0, 256, VMB_DATA);
			memset(buf, 0x5a, 1 << 20);
			for (int k = 0; ; k++) {
				int fd;

				snprintf(path, sizeof(path), "%s/kill.%d.%d", tmpdir, round, k);
				fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
				if (fd < 0 || pwrite(fd, buf, 1 << 20, 0) != 1 << 20)
					_exit(1);
				if (k % 2 ? vmb_layers_create_copy(ls, fd, 1 << 20, id, NULL) :
					    vmb_layers_create(ls, fd, &m, 1 << 20, NULL, 0, id, NULL))
					_exit(2);
				close(fd);
				unlink(path);
			}
		}
		REQUIRE(pid > 0);
		usleep(20000 + (useconds_t)rndn(80000));
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	CHECK_RC(vmb_layers_list(ls, &list, &err), 0);
	for (size_t i = 0; i < list.n; i++) {
		struct vmb_base *b = NULL;

		if (!CHECK(vmb_layers_get(ls, list.ids[i], &b, &err) == 0)) {
			fprintf(stderr, "    %s\n", err.msg);
			continue;
		}
		CHECK_EQ(b->size, 1 << 20);
		CHECK_EQ(b->ops->read(b, buf, 1 << 20, 0, &err), 1 << 20);
		CHECK(buf[0] == 0x5a && buf[(1 << 20) - 1] == 0x5a);
		vmb_base_put(b);
		total++;
	}
	for (size_t i = 0; i < list.norphans; i++) {
		CHECK_RC(vmb_layers_remove(ls, list.orphans[i], &err), 0);
		orphans++;
	}
	CHECK_EQ(list.nstray, 0);
	vmb_layer_list_free(&list);
	CHECK_RC(vmb_layers_list(ls, &list, &err), 0);
	CHECK_EQ(list.n, total);
	CHECK_EQ(list.norphans, 0);
	vmb_layer_list_free(&list);
	if (getenv("VMB_TEST_VERBOSE"))
		fprintf(stderr, "   %zu layers made, %zu orphans removed\n", total, orphans);
	free(buf);
	vmb_layers_close(ls);
}

#define TEST(fn) do { \
	if (new_store()) { \
		perror(metapath); \
		return 99; \
	} \
	RUN(fn); \
} while (0)

int main(int argc, char **argv)
{
	(void)argc;
	if (harness_tmpdir(tmpdir, sizeof(tmpdir), "layer"))
		return 99;
	if (getenv("VMB_TEST_SEED"))
		rng = strtoull(getenv("VMB_TEST_SEED"), NULL, 0);
	TEST(test_map_format);
	TEST(test_chain_1);
	TEST(test_chain_2);
	TEST(test_chain_16);
	TEST(test_chain_17);
	TEST(test_past_depth);
	TEST(test_edges);
	TEST(test_damage);
	TEST(test_read_eio);
	TEST(test_cache_list_remove);
	TEST(test_create_copy);
	TEST(test_threads);
	TEST(test_bad_input);
	TEST(test_kill);
	close(metafd);
	harness_rmtree(tmpdir);
	return harness_exit(argv[0]);
}
