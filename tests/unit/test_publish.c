/* test_publish.c - vmb_publish (store/publish.h) on a store without a mount: what
 * it writes decodes, every object is named by its digest, every chunk holds the
 * image's bytes, zero chunks (and zero blocks) are never stored, identical chunks
 * are one object; a republish writes nothing but the index, a republish after a
 * change writes about the change (counted by a sink that wraps the directory
 * sink); other bundles of the index are kept; a failure before the index leaves
 * the old index, and the next publish resumes; bad input writes nothing; an index
 * another publish wrote meanwhile (an S3 DEST is not locked) keeps its bundles,
 * and one replaced right after the put fails with "run the publish again". */
#include "config.h"
#include "store/ops.h"
#include "store/publish.h"
#include "store/store.h"
#include "image/image.h"
#include "layer/layer.h"
#include "remote/pubfmt.h"
#include "base/digest.h"
#include "base/sign.h"
#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#define KB 1024
#define MB (1024 * 1024)
#define DISK (8 * MB)
#define BIG (32 * MB)

static char tmpdir[PATH_MAX], spath[PATH_MAX + 16], dest[PATH_MAX + 16];
static struct vmb_store S;
static struct vmb_opctx C;
static unsigned char *disk0, *big0;

static const char *P(const char *rel)
{
	static char buf[PATH_MAX * 2];

	snprintf(buf, sizeof(buf), "%s/%s", spath, rel);
	return buf;
}

static void open_store(void)
{
	struct vmb_err err;

	memset(&C, 0, sizeof(C));
	if (vmb_store_open(&S, spath, VMB_STORE_EXCLUSIVE, &err) < 0 ||
	    vmb_layers_open(&C.layers, S.metafd, NULL, &err) < 0) {
		fprintf(stderr, "cannot open the store: %s\n", err.msg);
		exit(1);
	}
	C.store = &S;
}

static void close_store(void)
{
	vmb_layers_close(C.layers);
	vmb_store_close(&S);
	C.layers = NULL;
}

static void put_file(const char *rel, const void *buf, size_t len, off_t off)
{
	int fd = open(P(rel), O_WRONLY | O_CREAT, 0644);

	if (fd < 0 || pwrite(fd, buf, len, off) != (ssize_t)len) {
		perror(rel);
		exit(1);
	}
	close(fd);
}

static void write_image(const char *rel, const void *buf, size_t len, uint64_t off)
{
	struct vmb_base_resolver res = vmb_layers_resolver(C.layers);
	struct vmb_image *img;
	struct vmb_err err;
	int fd = open(P(rel), O_RDWR);

	if (fd < 0 || vmb_image_open2(&img, fd, S.mapfd, rel, NULL, &res, &err) < 0) {
		fprintf(stderr, "cannot open %s\n", rel);
		exit(1);
	}
	if (vmb_image_write(img, buf, len, off, &err) != (ssize_t)len)
		fprintf(stderr, "write %s: %s\n", rel, err.msg);
	vmb_image_close(img);
}

/* vm: disk.img (8 MiB: data at 0-12K, a written block of zeros at 3 MiB, the same
 * 256 KiB of bytes at 4 MiB and 5 MiB, the last block), config (small, 0640,
 * user.k), sub/ with holes.bin (100 KiB with a hole: published as an image), a
 * symlink. */
static void make_vm(void)
{
	static const unsigned char zero[4096];
	unsigned i;
	int fd;

	disk0 = calloc(1, DISK);
	for (i = 0; i < 3 * 4096; i++)
		disk0[i] = (unsigned char)(i * 7 + 1);
	for (i = 0; i < 256 * KB; i++)
		disk0[4 * MB + i] = disk0[5 * MB + i] = (unsigned char)(i * 13 + 3);
	for (i = 0; i < 4096; i++)
		disk0[DISK - 4096 + i] = 0xab;
	mkdir(P("vm"), 0755);
	put_file("vm/disk.img", disk0, 3 * 4096, 0);
	put_file("vm/disk.img", zero, 4096, 3 * MB);
	put_file("vm/disk.img", disk0 + 4 * MB, 256 * KB, 4 * MB);
	put_file("vm/disk.img", disk0 + 5 * MB, 256 * KB, 5 * MB);
	put_file("vm/disk.img", disk0 + DISK - 4096, 4096, DISK - 4096);
	put_file("vm/config", "hello config\n", 13, 0);
	chmod(P("vm/config"), 0640);
	setxattr(P("vm/config"), "user.k", "v\0w", 3, 0);
	mkdir(P("vm/sub"), 0750);
	put_file("vm/sub/holes.bin", "x", 1, 0);
	put_file("vm/sub/holes.bin", "y", 1, 100 * KB - 1);
	fd = open(P("vm/empty"), O_WRONLY | O_CREAT, 0600);
	close(fd);
	symlink("disk.img", P("vm/link"));
}

/* big: one 32 MiB image of distinct bytes. */
static void make_big(void)
{
	uint64_t i, x = 88172645463325252ull;

	big0 = malloc(BIG);
	for (i = 0; i < BIG / 8; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(big0 + 8 * i, &x, 8);
	}
	mkdir(P("big"), 0755);
	put_file("big/disk.img", big0, BIG, 0);
}

/* ---- a sink that counts (and can fail) around the directory sink ---- */

struct counting {
	struct vmb_pub_sink s;
	struct vmb_pub_sink *in;
	uint64_t puts, bytes, index_puts;
	long fail_after;           /* >= 0: the put after this many fails */
	/* "another publish": called once at the sink's sync (before the index is
	 * replaced) or right after the put of the index */
	void (*at_sync)(struct counting *c);
	void (*after_index)(struct counting *c);
};

static int c_check(struct vmb_pub_sink *s, const char *path, const uint8_t d[32],
		   const void *buf, size_t len, int verify, struct vmb_err *err)
{
	struct counting *c = (struct counting *)s;

	return c->in->ops->check(c->in, path, d, buf, len, verify, err);
}

static int c_put(struct vmb_pub_sink *s, const char *path, const void *buf, size_t len,
		 struct vmb_err *err)
{
	struct counting *c = (struct counting *)s;

	if (c->fail_after >= 0 && (long)c->puts >= c->fail_after)
		return vmb_err_set(err, EIO, "injected failure on '%s'", path);
	c->puts++;
	c->bytes += len;
	if (!strcmp(path, "index"))
		c->index_puts++;
	if (!strcmp(path, "index") && c->after_index) {
		void (*f)(struct counting *) = c->after_index;
		int r = c->in->ops->put(c->in, path, buf, len, err);

		c->after_index = NULL;
		if (r == 0)
			f(c);
		return r;
	}
	return c->in->ops->put(c->in, path, buf, len, err);
}

static int c_get(struct vmb_pub_sink *s, const char *path, size_t max, void **buf,
		 size_t *len, struct vmb_err *err)
{
	struct counting *c = (struct counting *)s;

	return c->in->ops->get(c->in, path, max, buf, len, err);
}

static int c_sync(struct vmb_pub_sink *s, struct vmb_err *err)
{
	struct counting *c = (struct counting *)s;

	if (c->at_sync) {
		c->at_sync(c);
		c->at_sync = NULL;
	}
	return c->in->ops->sync(c->in, err);
}

static void c_close(struct vmb_pub_sink *s)
{
	struct counting *c = (struct counting *)s;

	vmb_pub_sink_close(c->in);
}

static const struct vmb_pub_sink_ops counting_ops = {
	c_check, c_put, c_get, c_sync, c_close,
};

static int counting_open(struct counting *c, struct vmb_err *err)
{
	memset(c, 0, sizeof(*c));
	c->s.ops = &counting_ops;
	c->s.where = dest;
	c->fail_after = -1;
	return vmb_pub_sink_dir_open(dest, &c->in, err);
}

/* ---- reading back what was published ---- */

static void *slurp(const char *rel, size_t *len)
{
	char p[PATH_MAX * 2];
	struct stat st;
	void *buf;
	int fd;

	snprintf(p, sizeof(p), "%s/%s", dest, rel);
	fd = open(p, O_RDONLY);
	if (fd < 0)
		return NULL;
	fstat(fd, &st);
	buf = malloc((size_t)st.st_size + 1);
	if (read(fd, buf, (size_t)st.st_size) != st.st_size) {
		free(buf);
		buf = NULL;
	}
	*len = (size_t)st.st_size;
	close(fd);
	return buf;
}

/* The object d, checked against its digest. */
static void *object(const uint8_t d[32], size_t *len)
{
	char p[VMB_PUB_OBJPATH_LEN];
	uint8_t got[32];
	void *buf;

	vmb_pub_object_path(d, p);
	buf = slurp(p, len);
	if (!buf)
		return NULL;
	vmb_sha256(buf, *len, got, NULL);
	CHECK(!memcmp(got, d, 32));
	return buf;
}

/* Every file in DEST/objects is named by its digest; their count. */
static unsigned check_objects(void)
{
	char p[PATH_MAX * 2];
	DIR *top, *sub;
	struct dirent *a, *b;
	unsigned n = 0;

	snprintf(p, sizeof(p), "%s/objects", dest);
	top = opendir(p);
	if (!top)
		return 0;
	while ((a = readdir(top))) {
		if (a->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/objects/%s", dest, a->d_name);
		sub = opendir(p);
		while (sub && (b = readdir(sub))) {
			uint8_t d[32], got[32];
			char rel[PATH_MAX];
			size_t len;
			void *buf;

			if (b->d_name[0] == '.')
				continue;
			n++;
			CHECK(vmb_pub_hex_decode(b->d_name, strlen(b->d_name), d, 32) == 0);
			CHECK(!strncmp(b->d_name, a->d_name, 2));
			snprintf(rel, sizeof(rel), "objects/%s/%s", a->d_name, b->d_name);
			buf = slurp(rel, &len);
			if (!CHECK(buf))
				continue;
			vmb_sha256(buf, len, got, NULL);
			CHECK(!memcmp(got, d, 32));
			free(buf);
		}
		if (sub)
			closedir(sub);
	}
	closedir(top);
	return n;
}

static int is_zero(const unsigned char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

/* Image index d holds exactly src (size bytes): every chunk's object is its bytes,
 * zero chunks have no object, the map says DATA exactly for the blocks that are
 * not all zeros among those the source holds as data (all_data: every block). */
static void check_image(const uint8_t d[32], const unsigned char *src, uint64_t size)
{
	struct vmb_pub_image m;
	struct vmb_err err;
	size_t len, clen;
	uint64_t c, blk, run;
	void *buf = object(d, &len);

	REQUIRE(buf);
	CHECK_RC(vmb_pub_image_decode(buf, len, &m, &err), 0);
	free(buf);
	REQUIRE(m.size == size);
	for (c = 0; c < m.n_chunks; c++) {
		const unsigned char *want = src + c * m.chunk_size;

		clen = (size_t)vmb_pub_chunk_len(&m, c);
		if (vmb_pub_chunk_is_zero(&m, c)) {
			CHECK(is_zero(want, clen));
			continue;
		}
		buf = object(m.chunks[c], &len);
		REQUIRE(buf);
		CHECK_EQ(len, clen);
		CHECK(!memcmp(buf, want, clen));
		free(buf);
	}
	for (blk = 0; blk * 4096 < size; blk += run) {
		enum vmb_bstate st = vmb_pub_image_lookup(&m, blk, &run);
		uint64_t k;

		for (k = blk; k < blk + run && k * 4096 < size; k++) {
			size_t n = size - k * 4096 < 4096 ? (size_t)(size - k * 4096) : 4096;

			if (st == VMB_ZERO)
				CHECK(is_zero(src + k * 4096, n));
			else
				CHECK(!is_zero(src + k * 4096, n));
		}
	}
	vmb_pub_image_free(&m);
}

static int do_publish(struct counting *cs, const char *snap, const char *name,
		      const struct vmb_sign_key *key, struct vmb_publish_stats *st,
		      struct vmb_err *err)
{
	struct vmb_publish_item it = { snap, name };
	struct vmb_publish_opts o;

	memset(&o, 0, sizeof(o));
	o.key = key;
	o.now = 1700000000;
	o.chunk_size = 256u << 10;   /* the fixture's geometry, whatever the default */
	return vmb_publish(&S, C.layers, &it, 1, &cs->s, &o, st, err);
}

static void read_index(struct vmb_pub_index *x, const uint8_t *pub)
{
	struct vmb_err err;
	size_t len;
	void *buf = slurp("index", &len);

	memset(x, 0, sizeof(*x));
	REQUIRE(buf);
	CHECK_RC(vmb_pub_index_decode(buf, len, pub, x, &err), 0);
	free(buf);
}

static void test_publish_vm(void)
{
	struct counting cs;
	struct vmb_publish_stats st;
	struct vmb_pub_index x;
	struct vmb_pub_bundle b;
	struct vmb_err err;
	char *where = NULL;
	const struct vmb_pub_ibundle *ib;
	size_t len, i;
	void *buf;
	unsigned nobj;

	CHECK_RC(vmb_op_snapshot(&C, "vm", "p1", &where, &err), 0);
	free(where);
	REQUIRE(counting_open(&cs, &err) == 0);
	CHECK_RC(do_publish(&cs, "vm@p1", "vm", NULL, &st, &err), 0);
	vmb_pub_sink_close(&cs.s);
	CHECK_EQ(st.generation, 1);
	CHECK_EQ(st.images, 2);     /* disk.img, sub/holes.bin */
	CHECK_EQ(st.files, 2);      /* config, empty */
	CHECK_EQ(cs.bytes, st.bytes_written);
	CHECK_EQ(cs.puts, st.objects_written);
	CHECK_EQ(cs.index_puts, 1);
	/* disk.img: 32 chunks of 256 KiB, data in chunks 0, 16, 20 (= 16's bytes) and 31;
	 * the zero block at 3 MiB (chunk 12) is published as a hole. holes.bin: 1
	 * chunk (with data). */
	CHECK_EQ(st.chunks, 33);
	CHECK_EQ(st.zero_chunks, 28);
	/* objects: 3 distinct chunks of disk.img + 1 of holes.bin, 2 image indexes,
	 * config, empty, the manifest */
	nobj = check_objects();
	CHECK_EQ(nobj, 9);
	CHECK_EQ(st.objects_written, 10);   /* + the index */
	CHECK_EQ(st.objects_present, 1);    /* chunk 20 = chunk 16 */
	read_index(&x, NULL);
	CHECK_EQ(x.generation, 1);
	CHECK_EQ(x.created, 1700000000);
	REQUIRE(x.n == 1);
	ib = vmb_pub_index_find(&x, "vm");
	REQUIRE(ib);
	buf = object(ib->digest, &len);
	REQUIRE(buf);
	CHECK_RC(vmb_pub_bundle_decode(buf, len, &b, &err), 0);
	free(buf);
	CHECK(!strcmp(b.name, "vm"));
	for (i = 0; i < b.n; i++) {
		const struct vmb_pub_ent *e = &b.ents[i];

		if (!strcmp(e->path, "disk.img")) {
			CHECK_EQ(e->kind, 'i');
			CHECK_EQ(e->size, DISK);
			check_image(e->digest, disk0, DISK);
		} else if (!strcmp(e->path, "config")) {
			CHECK_EQ(e->kind, 'f');
			CHECK_EQ(e->mode, 0640);
			CHECK_EQ(e->size, 13);
			REQUIRE(e->nxattrs == 1);
			CHECK(!strcmp(e->xattrs[0].name, "user.k"));
			CHECK(e->xattrs[0].len == 3 && !memcmp(e->xattrs[0].value, "v\0w", 3));
			buf = object(e->digest, &len);
			CHECK(buf && len == 13 && !memcmp(buf, "hello config\n", 13));
			free(buf);
		} else if (!strcmp(e->path, "empty")) {
			CHECK_EQ(e->kind, 'f');
			CHECK_EQ(e->size, 0);
		} else if (!strcmp(e->path, "sub/holes.bin")) {
			unsigned char *h = calloc(1, 100 * KB);

			h[0] = 'x';
			h[100 * KB - 1] = 'y';
			CHECK_EQ(e->kind, 'i');
			check_image(e->digest, h, 100 * KB);
			free(h);
		} else if (!strcmp(e->path, "link")) {
			CHECK_EQ(e->kind, 'l');
			CHECK(!strcmp(e->target, "disk.img"));
		} else if (!strcmp(e->path, "sub")) {
			CHECK_EQ(e->kind, 'd');
			CHECK_EQ(e->mode, 0750);
		} else {
			CHECK(!strcmp(e->path, "."));
		}
	}
	CHECK_EQ(b.n, 7);
	vmb_pub_bundle_free(&b);
	vmb_pub_index_free(&x);

	/* The same again: only the index is written; generation 2. */
	REQUIRE(counting_open(&cs, &err) == 0);
	CHECK_RC(do_publish(&cs, "vm@p1", "vm", NULL, &st, &err), 0);
	vmb_pub_sink_close(&cs.s);
	CHECK_EQ(st.generation, 2);
	CHECK_EQ(cs.puts, 1);
	CHECK_EQ(cs.index_puts, 1);
	CHECK_EQ(check_objects(), 9);
}

static void test_republish_counts(void)
{
	struct counting cs;
	struct vmb_publish_stats st;
	struct vmb_pub_index x;
	struct vmb_err err;
	char *where = NULL;
	unsigned char *chg = malloc(MB);
	unsigned i;
	uint64_t first;

	CHECK_RC(vmb_op_snapshot(&C, "big", "b1", &where, &err), 0);
	free(where);
	REQUIRE(counting_open(&cs, &err) == 0);
	CHECK_RC(do_publish(&cs, "big@b1", "big", NULL, &st, &err), 0);
	vmb_pub_sink_close(&cs.s);
	first = cs.bytes;
	CHECK(first >= BIG && first < BIG + 64 * KB);
	/* "vm" is still listed: bundles not republished are kept. */
	read_index(&x, NULL);
	CHECK_EQ(x.n, 2);
	CHECK(vmb_pub_index_find(&x, "vm") != NULL);
	CHECK_EQ(x.generation, 3);
	vmb_pub_index_free(&x);

	/* Change 1 MiB (not aligned to chunks: 5 chunks change), republish: about
	 * 1.25 MiB of chunks, an image index, a manifest and the index. */
	for (i = 0; i < MB; i++)
		chg[i] = (unsigned char)(((uint64_t)i * 0x9E3779B97F4A7C15ull) >> 56);
	write_image("big/disk.img", chg, MB, 10 * MB + 128 * KB);
	memcpy(big0 + 10 * MB + 128 * KB, chg, MB);
	CHECK_RC(vmb_op_snapshot(&C, "big", "b2", &where, &err), 0);
	free(where);
	REQUIRE(counting_open(&cs, &err) == 0);
	CHECK_RC(do_publish(&cs, "big@b2", "big", NULL, &st, &err), 0);
	vmb_pub_sink_close(&cs.s);
	CHECK_EQ(st.objects_written, 5 + 3);
	CHECK(cs.bytes >= 5 * 256 * KB && cs.bytes < 5 * 256 * KB + 16 * KB);
	CHECK_EQ(st.bytes_present, BIG - 5 * 256 * KB);
	read_index(&x, NULL);
	{
		const struct vmb_pub_ibundle *ib = vmb_pub_index_find(&x, "big");
		struct vmb_pub_bundle b;
		size_t len;
		void *buf = ib ? object(ib->digest, &len) : NULL;

		REQUIRE(buf);
		CHECK_RC(vmb_pub_bundle_decode(buf, len, &b, &err), 0);
		free(buf);
		REQUIRE(b.n == 2);
		check_image(b.ents[1].digest, big0, BIG);
		vmb_pub_bundle_free(&b);
	}
	vmb_pub_index_free(&x);
	free(chg);
}

static void test_signed(void)
{
	struct vmb_sign_key *k = NULL;
	struct counting cs;
	struct vmb_publish_stats st;
	struct vmb_pub_index x;
	struct vmb_err err;
	uint8_t pub[32];
	size_t len;
	void *buf;

	REQUIRE(vmb_sign_key_generate(&k, &err) == 0);
	vmb_sign_key_public(k, pub);
	REQUIRE(counting_open(&cs, &err) == 0);
	CHECK_RC(do_publish(&cs, "vm@p1", "vm", k, &st, &err), 0);
	vmb_pub_sink_close(&cs.s);
	read_index(&x, pub);
	CHECK_EQ(x.signed_, 1);
	CHECK_EQ(x.n, 2);
	vmb_pub_index_free(&x);
	/* A byte changed: refused. */
	buf = slurp("index", &len);
	REQUIRE(buf);
	((char *)buf)[30] ^= 1;
	CHECK_RC(vmb_pub_index_decode(buf, len, pub, &x, &err), -EINVAL);
	free(buf);
	vmb_sign_key_free(k);
}

static void test_failure_resumes(void)
{
	struct counting cs;
	struct vmb_publish_stats st;
	struct vmb_err err;
	size_t len0, len1;
	void *before, *after;
	char *where = NULL;
	unsigned char *chg = malloc(4 * MB);
	unsigned i;

	for (i = 0; i < 4 * MB; i++)
		chg[i] = (unsigned char)(((uint64_t)i * 0xC2B2AE3D27D4EB4Full) >> 56);
	write_image("big/disk.img", chg, 4 * MB, 0);
	memcpy(big0, chg, 4 * MB);
	CHECK_RC(vmb_op_snapshot(&C, "big", "b3", &where, &err), 0);
	free(where);
	before = slurp("index", &len0);
	/* Fails after 6 of the 16 new chunks: the index is the old one. */
	REQUIRE(counting_open(&cs, &err) == 0);
	cs.fail_after = 6;
	CHECK_RC(do_publish(&cs, "big@b3", "big", NULL, &st, &err), -EIO);
	CHECK_STR(err.msg, "injected failure");
	vmb_pub_sink_close(&cs.s);
	after = slurp("index", &len1);
	CHECK(before && after && len0 == len1 && !memcmp(before, after, len0));
	free(after);
	/* The next publish writes only the 10 chunks left, and the rest. */
	REQUIRE(counting_open(&cs, &err) == 0);
	CHECK_RC(do_publish(&cs, "big@b3", "big", NULL, &st, &err), 0);
	vmb_pub_sink_close(&cs.s);
	CHECK_EQ(st.objects_written, 10 + 3);
	CHECK_EQ(st.objects_present, 128 - 10);
	free(before);
	free(chg);
}

/* What another publish to the same DEST does: sets bundle name to digest fill in
 * the index there (generation + 1), through the wrapped sink. */
static void other_publish(struct counting *c, const char *name, uint8_t fill)
{
	struct vmb_pub_index x;
	struct vmb_err err;
	uint8_t d[32];
	char *text = NULL;
	size_t len;

	memset(d, fill, sizeof(d));
	read_index(&x, NULL);
	CHECK_RC(vmb_pub_index_set(&x, name, d, &err), 0);
	x.generation++;
	CHECK_RC(vmb_pub_index_encode(&x, NULL, &text, &len, &err), 0);
	CHECK_RC(c->in->ops->put(c->in, "index", text, len, &err), 0);
	free(text);
	vmb_pub_index_free(&x);
}

static void other_adds(struct counting *c) { other_publish(c, "other", 0x5a); }
static void other_replaces_vm(struct counting *c) { other_publish(c, "vm", 0x11); }

static void test_concurrent_index(void)
{
	struct counting cs;
	struct vmb_publish_stats st;
	struct vmb_pub_index x0, x;
	const struct vmb_pub_ibundle *b;
	struct vmb_err err;

	read_index(&x0, NULL);
	/* Another publish replaces the index while this one writes its objects:
	 * its bundle is kept, this one's set over it, the generation goes on. */
	REQUIRE(counting_open(&cs, &err) == 0);
	cs.at_sync = other_adds;
	CHECK_RC(do_publish(&cs, "vm@p1", "vm", NULL, &st, &err), 0);
	vmb_pub_sink_close(&cs.s);
	CHECK_EQ(st.merged, 1);
	read_index(&x, NULL);
	b = vmb_pub_index_find(&x, "other");
	CHECK(b && b->digest[0] == 0x5a);
	b = vmb_pub_index_find(&x, "vm");
	/* (its own digest, not the other's fill: a real digest begins with 0x11 in
	 * one run in 256, so the whole of it is compared) */
	CHECK(b && !memcmp(b->digest, vmb_pub_index_find(&x0, "vm")->digest, 32));
	CHECK(vmb_pub_index_find(&x, "big") != NULL);
	CHECK_EQ(x.generation, x0.generation + 2);
	CHECK_EQ(st.generation, x.generation);
	vmb_pub_index_free(&x);
	/* Nobody else: nothing merged. */
	REQUIRE(counting_open(&cs, &err) == 0);
	CHECK_RC(do_publish(&cs, "vm@p1", "vm", NULL, &st, &err), 0);
	vmb_pub_sink_close(&cs.s);
	CHECK_EQ(st.merged, 0);
	/* Another replaces it right after this one's put, without this one's bundle:
	 * this publish says so. */
	REQUIRE(counting_open(&cs, &err) == 0);
	cs.after_index = other_replaces_vm;
	CHECK_RC(do_publish(&cs, "vm@p1", "vm", NULL, &st, &err), -EAGAIN);
	CHECK_STR(err.msg, "run the publish again");
	vmb_pub_sink_close(&cs.s);
	/* ... and running it again puts it right. */
	REQUIRE(counting_open(&cs, &err) == 0);
	CHECK_RC(do_publish(&cs, "vm@p1", "vm", NULL, &st, &err), 0);
	vmb_pub_sink_close(&cs.s);
	read_index(&x, NULL);
	b = vmb_pub_index_find(&x, "vm");
	CHECK(b && !memcmp(b->digest, vmb_pub_index_find(&x0, "vm")->digest, 32));
	CHECK(vmb_pub_index_find(&x, "other") != NULL);
	vmb_pub_index_free(&x);
	vmb_pub_index_free(&x0);
}

static void test_bad_input(void)
{
	struct counting cs;
	struct vmb_publish_stats st;
	struct vmb_publish_item it[2] = { { "vm@p1", "vm" }, { "vm@p1", "vm" } };
	struct vmb_publish_opts o;
	struct vmb_err err;
	char p[PATH_MAX * 2];
	size_t len0, len1;
	void *before = slurp("index", &len0), *after;
	int fd;

	memset(&o, 0, sizeof(o));
	REQUIRE(counting_open(&cs, &err) == 0);
	CHECK_RC(do_publish(&cs, "vm@nope", "vm", NULL, &st, &err), -ENOENT);
	CHECK_STR(err.msg, "no snapshot 'vm@nope'");
	CHECK_RC(vmb_publish(&S, C.layers, it, 2, &cs.s, &o, &st, &err), -EINVAL);
	CHECK_STR(err.msg, "twice");
	CHECK_RC(do_publish(&cs, "vm@p1", "..", NULL, &st, &err), -EINVAL);
	CHECK_RC(do_publish(&cs, "vm@p1", ".vmbundlefs", NULL, &st, &err), -EINVAL);
	o.chunk_size = 65536 + 4096;
	CHECK_RC(vmb_publish(&S, C.layers, it, 1, &cs.s, &o, &st, &err), -EINVAL);
	CHECK_STR(err.msg, "chunk size");
	CHECK_EQ(cs.puts, 0);
	/* Another publish to the same directory at once. */
	{
		struct vmb_pub_sink *s2 = NULL;

		CHECK_RC(vmb_pub_sink_dir_open(dest, &s2, &err), -EBUSY);
		CHECK_STR(err.msg, "another publish");
	}
	vmb_pub_sink_close(&cs.s);
	after = slurp("index", &len1);
	CHECK(before && after && len0 == len1 && !memcmp(before, after, len0));
	free(after);
	/* A corrupt index at DEST is not replaced. */
	snprintf(p, sizeof(p), "%s/index", dest);
	fd = open(p, O_WRONLY | O_TRUNC);
	CHECK(fd >= 0 && write(fd, "junk\n", 5) == 5);
	close(fd);
	REQUIRE(counting_open(&cs, &err) == 0);
	CHECK_RC(do_publish(&cs, "vm@p1", "vm", NULL, &st, &err), -EINVAL);
	CHECK_STR(err.msg, "is not a valid published index");
	CHECK_EQ(cs.puts, 0);
	vmb_pub_sink_close(&cs.s);
	free(before);
}

int main(void)
{
	struct vmb_err err;

	if (harness_tmpdir(tmpdir, sizeof(tmpdir), "publish"))
		return 99;
	snprintf(spath, sizeof(spath), "%s/store", tmpdir);
	snprintf(dest, sizeof(dest), "%s/pub", tmpdir);
	if (vmb_store_init(spath, &err) < 0) {
		fprintf(stderr, "init: %s\n", err.msg);
		return 99;
	}
	make_vm();
	make_big();
	open_store();
	RUN(test_publish_vm);
	RUN(test_republish_counts);
	RUN(test_signed);
	RUN(test_failure_resumes);
	RUN(test_concurrent_index);
	RUN(test_bad_input);
	close_store();
	free(disk0);
	free(big0);
	harness_rmtree(tmpdir);
	return harness_exit("test_publish");
}
