/* model_chain.c - the second part of test_image_model: images over bases (deltas)
 * against a model that tracks every file's bytes AND the state of each of its blocks
 * (DATA, ZERO, ABSENT), its base limit and its base version, so that every read,
 * every SEEK_DATA/SEEK_HOLE answer, st_blocks and the map itself are checked exactly.
 *
 * Random operations on NC files: writes (data, all-zero, mixed, unaligned),
 * PUNCH_HOLE, ZERO_RANGE (with and without KEEP_SIZE), truncate up and down,
 * copy_range between files, seeks, reads, sync, reopen (the saved version-2 map must
 * be used), interleaved with
 *   freeze  (a snapshot: the file's content becomes a new immutable version, a base,
 *           and the file an empty delta over it),
 *   clone   (another file becomes an empty delta over an existing version),
 *   flatten (the file becomes a plain file with the same content),
 * and checks of every live version through a read-only frozen image. Run twice:
 * over the in-memory double of a base (testbase.h; freeze = create_delta over a
 * copy of the content; half of the bases with a descriptor for copy_file_range,
 * half read only by read, as a remote base), then over the store's real layers
 * (layer/: vmb_image_freeze, chains up to the merged layers past depth 16).
 */
#include "config.h"
#include "image/image.h"
#include "map/sidecar.h"
#include "layer/layer.h"
#include "testbase.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BS 4096u
#define NC 3
#define MAXC (4u << 20)                 /* files stay below this */
#define MAXCB (MAXC / BS + 1)
#define NV 24                           /* live versions at most */
#define HISTC 10

struct ver {
	struct vmb_base *b;     /* the base (one reference): a test double, or a chain
				 * of real layers */
	unsigned char *data;    /* its bytes (size) */
	unsigned char *mask;    /* its data blocks */
	uint64_t size;
	int users;              /* files over it */
};

struct cf {
	char name[32];
	struct vmb_image *img;
	unsigned char *data;    /* MAXC bytes, zero past size */
	unsigned char *st;      /* per block: 'A', 'D', 'Z' */
	uint64_t size, limit;
	struct ver *ver;        /* its base, NULL for none */
};

static int cdir = -1, cmap = -1;
static struct cf cfiles[NC];
static struct ver *vers[NV];
static struct tbase *tbl[NV];
static struct tbase_table ctable = { tbl, NV };
static struct vmb_base_resolver cres = { tbase_resolve, &ctable };
static struct vmb_layers *cls;   /* real layers (freeze), or NULL: the test double */
static unsigned next_id = 100;
static unsigned char *cbuf, *rdbuf;
static uint64_t crng, cseed;
static unsigned long cop, cchecks;
static char chist[HISTC][200];
static int cfailed;
static unsigned long nfreeze, nclone, nflatten, maxdepth;   /* what the run did */

static uint64_t crnd(void)
{
	crng ^= crng >> 12;
	crng ^= crng << 25;
	crng ^= crng >> 27;
	return crng * UINT64_C(2685821657736338717);
}

static uint64_t cbelow(uint64_t n)
{
	return n ? crnd() % n : 0;
}

static void cnote(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void cnote(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(chist[cop % HISTC], sizeof(chist[0]), fmt, ap);
	va_end(ap);
}

#define CFAIL(...) do { if (!cfailed) cfail(__LINE__, __VA_ARGS__); cfailed = 1; } while (0)

static void cfail(int line, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void cfail(int line, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "model_chain.c:%d: VMB_SEED=%llu, failed at chain op %lu: ", line,
		(unsigned long long)cseed, cop);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n    last operations:\n");
	for (unsigned long i = cop >= HISTC - 1 ? cop - (HISTC - 1) : 0; i <= cop; i++)
		fprintf(stderr, "      %lu: %s\n", i, chist[i % HISTC]);
}

static uint64_t bf(uint64_t b)
{
	return (b + BS - 1) / BS;
}

static int zeros(const unsigned char *p, size_t n)
{
	return n == 0 || (p[0] == 0 && !memcmp(p, p + 1, n - 1));
}

/* ---- the model's rules ---- */

/* Block b reads from the base (ABSENT below the limit, DATA in the base). */
static int from_base(const struct cf *f, uint64_t b)
{
	return f->st[b] == 'A' && f->ver && b < f->limit && b < bf(f->ver->size) &&
	       f->ver->mask[b];
}

/* Block b reads as data (SEEK_DATA, st_blocks). */
static int rad(const struct cf *f, uint64_t b)
{
	return f->st[b] == 'D' || from_base(f, b);
}

static void set_st(struct cf *f, uint64_t a, uint64_t b, unsigned char s)
{
	for (; a < b; a++)
		f->st[a] = s;
}

/* The bytes [a, b) of f's block blk (within end), with [ps, pe) replaced by p
 * (NULL: zeros), all zero? */
static int merged_zero(const struct cf *f, uint64_t blk, uint64_t end, uint64_t ps,
		       uint64_t pe, const unsigned char *p)
{
	uint64_t s = blk * BS, e = s + BS < end ? s + BS : end;

	if (e < pe)
		e = pe;
	for (uint64_t i = s; i < e; i++) {
		unsigned char c = i >= ps && i < pe ? (p ? p[i - ps] : 0) : f->data[i];
		if (c)
			return 0;
	}
	return 1;
}

static void grow(struct cf *f, uint64_t size)
{
	set_st(f, bf(f->size), bf(size), 'Z');
	f->size = size;
}

/* zero_locked: [a, b) within the size. */
static void m_zero(struct cf *f, uint64_t a, uint64_t b)
{
	uint64_t A, B, edge[2][2];

	if (b > f->size)
		b = f->size;
	if (a >= b)
		return;
	A = bf(a);
	B = b == f->size ? bf(b) : b / BS;
	if (A < B) {
		set_st(f, A, B, 'Z');
		edge[0][0] = a; edge[0][1] = A * BS;
		edge[1][0] = B * BS; edge[1][1] = b;
	} else {
		edge[0][0] = a; edge[0][1] = b;
		edge[1][0] = b; edge[1][1] = b;
	}
	for (int i = 0; i < 2; i++) {
		for (uint64_t s = edge[i][0]; s < edge[i][1];) {
			uint64_t blk = s / BS, stop = (blk + 1) * BS < edge[i][1] ? (blk + 1) * BS
										  : edge[i][1];
			if (f->st[blk] != 'D' && from_base(f, blk))
				f->st[blk] = merged_zero(f, blk, f->size, s, stop, NULL) ? 'Z' : 'D';
			s = stop;
		}
	}
	memset(f->data + a, 0, b - a);
}

/* ---- image side ---- */

static int c_open(struct cf *f)
{
	struct vmb_err e;
	int fd = openat(cdir, f->name, O_RDWR | O_CLOEXEC), r;

	vmb_err_clear(&e);
	r = fd < 0 ? -errno : vmb_image_open2(&f->img, fd, cmap, f->name, NULL, &cres, &e);
	if (r < 0) {
		CFAIL("open %s: %d %s", f->name, r, e.msg);
		if (fd >= 0)
			close(fd);
		f->img = NULL;
	}
	return r;
}

static void ver_put(struct ver *v)
{
	if (!v || --v->users > 0)
		return;
	for (int i = 0; i < NV; i++)
		if (vers[i] == v) {
			vers[i] = NULL;
			tbl[i] = NULL;
		}
	vmb_base_put(v->b);   /* NULL-safe */
	free(v->data);
	free(v->mask);
	free(v);
}

/* A new version from f's content as it reads now. NULL when the table is full. */
static struct ver *ver_new(const struct cf *f)
{
	struct ver *v;
	int slot = -1;

	for (int i = 0; i < NV && slot < 0; i++)
		if (!vers[i])
			slot = i;
	for (int i = (int)cbelow(NV), j = 0; slot < 0 && j < NV; j++, i = (i + 1) % NV)
		if (vers[i]->users == 1) {   /* only the table's: forgotten */
			ver_put(vers[i]);
			slot = i;
		}
	if (slot < 0)
		return NULL;
	v = calloc(1, sizeof(*v));
	v->size = f->size;
	v->data = malloc(f->size ? f->size : 1);
	v->mask = calloc(1, bf(f->size) + 1);
	memcpy(v->data, f->data, f->size);
	for (uint64_t b = 0; b < bf(f->size); b++)
		v->mask[b] = (unsigned char)rad(f, b);
	if (cls) {
		v->b = NULL;   /* the caller's: a layer */
	} else {
		struct tbase *tb = tbase_new(next_id++, v->data, v->size, v->mask,
					     cbelow(2) ? cdir : -1);
		v->b = tb ? &tb->b : NULL;
		tbl[slot] = tb;
	}
	if (!cls && !v->b) {
		CFAIL("tbase_new");
		free(v->data);
		free(v->mask);
		free(v);
		return NULL;
	}
	v->users = 1;   /* the table's, until it is forgotten to make room */
	vers[slot] = v;
	return v;
}

/* f's name becomes an empty delta over v (create_delta, renamed over it). */
static void make_delta(struct cf *f, struct ver *v)
{
	struct vmb_err e;
	struct stat like;

	if (f->img)
		vmb_image_close(f->img);
	f->img = NULL;
	memset(&like, 0, sizeof(like));
	like.st_mode = 0644;
	like.st_mtim.tv_sec = 1700000000 + (time_t)cop;
	unlinkat(cdir, "new.tmp", 0);
	vmb_err_clear(&e);
	if (vmb_image_create_delta(cdir, "new.tmp", v->b, v->size, &like, cmap, &e) < 0 ||
	    renameat(cdir, "new.tmp", cdir, f->name) < 0) {
		CFAIL("create_delta for %s: %s", f->name, e.msg);
		return;
	}
	v->users++;
	ver_put(f->ver);
	f->ver = v;
	memcpy(f->data, v->data, v->size);
	memset(f->data + v->size, 0, MAXC - v->size);
	f->size = v->size;
	f->limit = bf(v->size);
	set_st(f, 0, MAXCB, 'A');
	c_open(f);
}

/* ---- checks ---- */

static void check_read(struct cf *f, uint64_t off, size_t len)
{
	size_t want = off >= f->size ? 0 : (f->size - off < len ? (size_t)(f->size - off) : len);
	struct vmb_err e;
	int holes = -1;
	ssize_t r;

	cchecks++;
	vmb_err_clear(&e);
	r = vmb_image_read(f->img, rdbuf, len, off, &holes, &e);
	if (r != (ssize_t)want) {
		CFAIL("%s: read(%zu at %llu) = %zd, want %zu: %s", f->name, len,
		      (unsigned long long)off, r, want, e.msg);
		return;
	}
	if (want == 0)
		return;
	if (holes == 1) {
		for (uint64_t b = off / BS; b * BS < off + want; b++)
			if (rad(f, b)) {
				CFAIL("%s: read(%zu at %llu) says holes only; block %llu is data",
				      f->name, len, (unsigned long long)off, (unsigned long long)b);
				return;
			}
		if (!zeros(f->data + off, want))
			CFAIL("%s: holes-only read over model bytes", f->name);
		return;
	}
	if (memcmp(rdbuf, f->data + off, want)) {
		size_t i = 0;
		while (rdbuf[i] == f->data[off + i])
			i++;
		CFAIL("%s: read(%zu at %llu) differs at %llu: %02x, model %02x", f->name, len,
		      (unsigned long long)off, (unsigned long long)(off + i), rdbuf[i],
		      f->data[off + i]);
	}
}

static void check_seek(struct cf *f, uint64_t off)
{
	uint64_t res = 0, want = 0, b;
	int r, wr;

	cchecks++;
	for (int w = 0; w < 2 && !cfailed; w++) {
		int whence = w ? SEEK_HOLE : SEEK_DATA;
		r = vmb_image_seek(f->img, off, whence, &res, NULL);
		if (off >= f->size) {
			wr = -ENXIO;
		} else {
			for (b = off / BS; b < bf(f->size) && rad(f, b) != !w; b++)
				;
			want = b * BS > off ? b * BS : off;
			if (want > f->size)
				want = f->size;
			wr = !w && want >= f->size ? -ENXIO : 0;
		}
		if (r != wr || (r == 0 && res != want))
			CFAIL("%s: %s(%llu) = %d, %llu; model %d, %llu (size %llu)", f->name,
			      w ? "SEEK_HOLE" : "SEEK_DATA", (unsigned long long)off, r,
			      (unsigned long long)res, wr, (unsigned long long)want,
			      (unsigned long long)f->size);
	}
}

/* Size, st_blocks, base limit and the map itself, block by block. */
static void check_state(struct cf *f)
{
	struct vmb_blockmap m;
	uint64_t n = 0, limit = 0, b;
	struct vmb_base *base;

	cchecks++;
	if (vmb_image_size(f->img) != f->size) {
		CFAIL("%s: size %llu, model %llu", f->name,
		      (unsigned long long)vmb_image_size(f->img), (unsigned long long)f->size);
		return;
	}
	for (b = 0; b < bf(f->size); b++)
		n += (uint64_t)rad(f, b);
	if (vmb_image_alloc_bytes(f->img) != n * BS)
		CFAIL("%s: alloc %llu blocks, model %llu", f->name,
		      (unsigned long long)(vmb_image_alloc_bytes(f->img) / BS),
		      (unsigned long long)n);
	base = vmb_image_base(f->img, &limit);
	if ((base != NULL) != (f->ver != NULL) || (base && (base != f->ver->b ||
							     limit != f->limit)))
		CFAIL("%s: base %s limit %llu, model %s limit %llu", f->name,
		      base ? base->id : "-", (unsigned long long)limit,
		      f->ver ? f->ver->b->id : "-", (unsigned long long)f->limit);
	vmb_blockmap_init(&m);
	if (vmb_image_map_copy(f->img, &m) < 0 || vmb_blockmap_check(&m) < 0)
		CFAIL("%s: map", f->name);
	for (b = 0; b < bf(f->size) + 2 && !cfailed; b++) {
		enum vmb_bstate s = vmb_blockmap_get(&m, b, NULL);
		unsigned char want = b < bf(f->size) ? f->st[b] : 'A';
		unsigned char got = s == VMB_DATA ? 'D' : s == VMB_ZERO ? 'Z' : 'A';
		if (got != want)
			CFAIL("%s: block %llu is %c, model %c", f->name, (unsigned long long)b, got,
			      want);
	}
	vmb_blockmap_destroy(&m);
}

static void check_file(struct cf *f)
{
	check_state(f);
	for (uint64_t off = 0; off < f->size && !cfailed; off += 1u << 20)
		check_read(f, off, 1u << 20);
	check_seek(f, 0);
	for (int i = 0; i < 4 && !cfailed; i++)
		check_seek(f, cbelow(f->size + 2 * BS));
}

/* A version through a read-only frozen image: bytes, seeks, st_blocks. */
static void check_version(struct ver *v)
{
	struct vmb_image *img = NULL;
	struct cf tmp;

	cchecks++;
	if (vmb_image_open_frozen(&img, v->b, v->size, "frozen", NULL, NULL) < 0) {
		CFAIL("open_frozen");
		return;
	}
	memset(&tmp, 0, sizeof(tmp));
	snprintf(tmp.name, sizeof(tmp.name), "version %.16s", v->b->id);
	tmp.img = img;
	tmp.data = calloc(1, MAXC);
	tmp.st = malloc(MAXCB);
	memcpy(tmp.data, v->data, v->size);
	memset(tmp.st, 'A', MAXCB);
	tmp.size = v->size;
	tmp.limit = bf(v->size);
	tmp.ver = v;
	check_file(&tmp);
	vmb_image_close(img);
	free(tmp.data);
	free(tmp.st);
}

/* ---- operations ---- */

static uint64_t c_off(const struct cf *f, size_t len)
{
	uint64_t off;

	switch (cbelow(6)) {
	case 0: case 1:
		off = cbelow(f->size + 16384);
		break;
	case 2: case 3:
		off = cbelow(f->size / BS + 4) * BS;
		break;
	case 4:
		off = f->size > 8192 ? f->size - cbelow(8192) : cbelow(8192);
		break;
	default:
		off = cbelow(f->size + 1);
	}
	if (off + len > MAXC)
		off = MAXC - len;
	return off;
}

static void op_cwrite(struct cf *f)
{
	size_t len = cbelow(4) ? 1 + cbelow(16384) : 1 + cbelow(256 << 10);
	uint64_t off, end, b;
	int kind = (int)cbelow(4);
	struct vmb_err e;
	ssize_t r;

	if (cbelow(2))
		len = (len + BS - 1) / BS * BS;
	off = c_off(f, len);
	end = off + len;
	if (kind == 0)
		memset(cbuf, 0, len);
	else
		for (size_t i = 0; i < len; i++)
			cbuf[i] = kind == 1 && (i / 3000) % 2 ? 0 : (unsigned char)crnd();
	cnote("write %s %zu at %llu (kind %d, size %llu)", f->name, len,
	      (unsigned long long)off, kind, (unsigned long long)f->size);
	vmb_err_clear(&e);
	r = vmb_image_write(f->img, cbuf, len, off, &e);
	if (r != (ssize_t)len) {
		CFAIL("write = %zd: %s", r, e.msg);
		return;
	}
	if (end > f->size)
		grow(f, end);
	for (b = off / BS; b * BS < end; b++) {
		uint64_t ps = b * BS > off ? b * BS : off, pe = (b + 1) * BS < end ? (b + 1) * BS : end;
		const unsigned char *p = cbuf + (ps - off);
		if (!zeros(p, pe - ps))
			f->st[b] = 'D';
		else if (ps == b * BS && pe == (b + 1) * BS)
			f->st[b] = 'Z';
		else if (rad(f, b))
			f->st[b] = merged_zero(f, b, f->size, ps, pe, p) ? 'Z' : 'D';
	}
	memcpy(f->data + off, cbuf, len);
}

static void op_czero(struct cf *f)
{
	int mode;
	uint64_t off, len = 1 + cbelow(cbelow(3) ? 65536 : 512 << 10), end;
	struct vmb_err e;
	int r;

	switch (cbelow(3)) {
	case 0: mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE; break;
	case 1: mode = FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE; break;
	default: mode = FALLOC_FL_ZERO_RANGE; break;
	}
	off = c_off(f, len);
	end = off + len;
	cnote("fallocate %s 0x%x %llu at %llu (size %llu)", f->name, mode,
	      (unsigned long long)len, (unsigned long long)off, (unsigned long long)f->size);
	vmb_err_clear(&e);
	r = vmb_image_fallocate(f->img, mode, off, len, &e);
	if (r < 0) {
		CFAIL("fallocate = %d: %s", r, e.msg);
		return;
	}
	m_zero(f, off, end);
	if (!(mode & FALLOC_FL_KEEP_SIZE) && end > f->size)
		grow(f, end);
}

static void op_ctrunc(struct cf *f)
{
	uint64_t s;
	struct vmb_err e;
	int r;

	switch (cbelow(4)) {
	case 0: s = cbelow(f->size + 1); break;
	case 1: s = cbelow(f->size / BS + 2) * BS; break;
	case 2: s = f->size + cbelow(128 << 10); break;
	default: s = f->size > 3 * BS ? f->size - cbelow(3 * BS) : f->size; break;
	}
	if (s > MAXC)
		s = MAXC;
	cnote("truncate %s %llu -> %llu (limit %llu)", f->name, (unsigned long long)f->size,
	      (unsigned long long)s, (unsigned long long)f->limit);
	vmb_err_clear(&e);
	r = vmb_image_truncate(f->img, s, &e);
	if (r < 0) {
		CFAIL("truncate = %d: %s", r, e.msg);
		return;
	}
	if (s > f->size) {
		grow(f, s);
	} else if (s < f->size) {
		uint64_t b = s / BS;
		if (f->ver) {
			if (s % BS && from_base(f, b))
				f->st[b] = merged_zero(f, b, s, s, s, NULL) ? 'Z' : 'D';
			if (b < f->limit)
				f->limit = b;
		}
		set_st(f, bf(s), MAXCB, 'A');
		memset(f->data + s, 0, f->size - s);
		f->size = s;
	}
}

/* zero runs of a file without a base end where its map's state changes */
static int same_run(const struct cf *f, uint64_t a, uint64_t b)
{
	if (rad(f, a) != rad(f, b))
		return 0;
	return rad(f, a) || f->ver || f->st[a] == f->st[b];
}

static void op_ccopy(struct cf *src, struct cf *dst)
{
	size_t len = 1 + cbelow(cbelow(3) ? 65536 : 512 << 10);
	uint64_t soff = src->size ? cbelow(src->size) : 0, doff, cover, pos, end;
	struct vmb_err e;
	size_t n;
	ssize_t r;

	if (cbelow(3) == 0)
		soff -= soff % BS;
	doff = c_off(dst, len);
	if (cbelow(3) == 0)
		doff = doff - doff % BS + soff % BS;
	if (doff + len > MAXC)
		doff = MAXC - len;
	n = soff >= src->size ? 0 : (src->size - soff < len ? (size_t)(src->size - soff) : len);
	cnote("copy %s %zu at %llu -> %s at %llu (sizes %llu, %llu)", src->name, len,
	      (unsigned long long)soff, dst->name, (unsigned long long)doff,
	      (unsigned long long)src->size, (unsigned long long)dst->size);
	vmb_err_clear(&e);
	r = vmb_image_copy_range(src->img, soff, dst->img, doff, len, &e);
	if (r != (ssize_t)n) {
		CFAIL("copy_range = %zd, want %zu: %s", r, n, e.msg);
		return;
	}
	if (n == 0)
		return;
	cover = dst->size;
	if (doff + n > dst->size)
		grow(dst, doff + n);
	end = soff + n;
	for (pos = soff; pos < end;) {
		uint64_t stop = (pos / BS + 1) * BS, d = doff + (pos - soff);
		int data = rad(src, pos / BS);
		while (stop < end && same_run(src, pos / BS, stop / BS))
			stop += BS;
		if (stop > end)
			stop = end;
		if (data) {
			uint64_t de = d + (stop - pos);
			for (uint64_t b = d / BS; b * BS < de; b++) {
				uint64_t ps = b * BS > d ? b * BS : d, pe = (b + 1) * BS < de ? (b + 1) * BS : de;
				uint64_t cend = (b + 1) * BS < cover ? (b + 1) * BS : cover;
				int partial = !(ps == b * BS && pe >= cend);
				if (partial && dst->st[b] != 'D' && from_base(dst, b))
					dst->st[b] = merged_zero(dst, b, cover, ps, pe,
								 src->data + soff + (ps - doff)) ?
						     'Z' : 'D';
				else
					dst->st[b] = 'D';
			}
			memcpy(dst->data + d, src->data + pos, stop - pos);
		} else {
			m_zero(dst, d, d + (stop - pos));
		}
		pos = stop;
	}
}

static void op_freeze(struct cf *f)
{
	char id[VMB_BASE_ID_LEN + 1];
	struct vmb_err e;
	struct ver *v;
	uint64_t ino = 1;

	cnote("freeze %s (size %llu)", f->name, (unsigned long long)f->size);
	if (!cls) {   /* the double: a new delta over a copy of the content */
		v = ver_new(f);
		if (v)
			make_delta(f, v);
		nfreeze += v != NULL;
		return;
	}
	vmb_err_clear(&e);
	if (vmb_image_freeze(f->img, cls, cdir, f->name, id, &ino, &e) < 0) {
		CFAIL("freeze %s: %s", f->name, e.msg);
		return;
	}
	if (f->ver && !strcmp(id, f->ver->b->id)) {   /* nothing new: not frozen again */
		if (ino != 0)
			CFAIL("freeze %s: same layer, new inode", f->name);
		return;
	}
	if (ino == 0)
		CFAIL("freeze %s: a new layer without a new inode", f->name);
	v = ver_new(f);
	if (!v) {
		CFAIL("version table full");
		return;
	}
	if (vmb_layers_get(cls, id, &v->b, &e) < 0) {
		CFAIL("layers_get %s: %s", id, e.msg);
		return;
	}
	v->users++;
	ver_put(f->ver);
	f->ver = v;
	f->limit = bf(f->size);
	set_st(f, 0, MAXCB, 'A');
	nfreeze++;
	if (v->b->depth > maxdepth)
		maxdepth = v->b->depth;
}

static void op_clone(struct cf *g)
{
	struct ver *v = NULL;
	int n = 0;

	for (int i = 0; i < NV; i++)
		if (vers[i] && cbelow((uint64_t)++n) == 0)
			v = vers[i];
	if (!v)
		return;
	cnote("clone %s over %s", g->name, v->b->id);
	make_delta(g, v);
	nclone++;
}

static void op_flatten(struct cf *f)
{
	struct vmb_err e;

	cnote("flatten %s", f->name);
	vmb_err_clear(&e);
	if (vmb_image_flatten(f->img, cdir, f->name, &e) < 0) {
		CFAIL("flatten: %s", e.msg);
		return;
	}
	if (!f->ver)
		return;
	nflatten++;
	for (uint64_t b = 0; b < bf(f->size); b++)
		f->st[b] = rad(f, b) ? 'D' : 'Z';
	ver_put(f->ver);
	f->ver = NULL;
	f->limit = 0;
}

static void op_creopen(struct cf *f)
{
	struct vmb_blockmap before, loaded;
	struct vmb_err e;
	uint64_t size;
	int fd, rebuilt = -1, r;

	cnote("reopen %s", f->name);
	vmb_blockmap_init(&before);
	vmb_blockmap_init(&loaded);
	vmb_image_map_copy(f->img, &before);
	vmb_image_close(f->img);
	f->img = NULL;
	fd = openat(cdir, f->name, O_RDONLY | O_CLOEXEC);
	vmb_err_clear(&e);
	r = fd < 0 ? -errno : vmb_image_load_map2(fd, cmap, f->name, NULL, &loaded, &size,
						   &rebuilt, NULL, &e);
	if (fd >= 0)
		close(fd);
	if (r < 0 || rebuilt != 0 || !vmb_blockmap_equal(&before, &loaded))
		CFAIL("reopen %s: load_map2 = %d (%s), rebuilt %d: the saved map was not used",
		      f->name, r, e.msg, rebuilt);
	vmb_blockmap_destroy(&before);
	vmb_blockmap_destroy(&loaded);
	c_open(f);
}

/* Runs nops operations; returns 0 when every check held. */
int model_chain(uint64_t seed, unsigned long nops, int dir, int real, unsigned long *checks);
int model_chain(uint64_t seed, unsigned long nops, int dir, int real, unsigned long *checks)
{
	struct vmb_err e;
	int i, metafd = -1;

	cseed = seed;
	crng = seed * UINT64_C(0x2545f4914f6cdd1d) + 77;
	if (!crng)
		crng = 1;
	cdir = dir;
	cop = cchecks = 0;
	nfreeze = nclone = nflatten = maxdepth = 0;
	cfailed = 0;
	memset(vers, 0, sizeof(vers));
	memset(tbl, 0, sizeof(tbl));
	memset(cfiles, 0, sizeof(cfiles));
	if (mkdirat(dir, "cmaps", 0700) < 0 ||
	    (cmap = openat(dir, "cmaps", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -1;
	cls = NULL;
	cres.open = tbase_resolve;
	cres.arg = &ctable;
	if (real) {
		vmb_err_clear(&e);
		if (mkdirat(dir, "cmeta", 0700) < 0 ||
		    (metafd = openat(dir, "cmeta", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
		    vmb_layers_open(&cls, metafd, NULL, &e) < 0) {
			fprintf(stderr, "model_chain: cannot open layers: %s\n", e.msg);
			return -1;
		}
		cres = vmb_layers_resolver(cls);
	}
	cbuf = malloc(1u << 20);
	rdbuf = malloc(1u << 20);
	for (i = 0; i < NC; i++) {
		struct cf *f = &cfiles[i];
		int fd;
		snprintf(f->name, sizeof(f->name), "chain%d.img", i);
		f->data = calloc(1, MAXC);
		f->st = malloc(MAXCB);
		memset(f->st, 'A', MAXCB);
		fd = openat(dir, f->name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd >= 0)
			close(fd);
		c_open(f);
	}
	for (cop = 0; cop < nops && !cfailed; cop++) {
		struct cf *f = &cfiles[cbelow(NC)];
		uint64_t k = cbelow(1000);

		if (!f->img)
			break;
		if (k < 330) {
			op_cwrite(f);
		} else if (k < 420) {
			op_czero(f);
		} else if (k < 470) {
			op_ctrunc(f);
		} else if (k < 590) {
			struct cf *d = &cfiles[(f - cfiles + 1 + cbelow(NC - 1)) % NC];
			op_ccopy(f, d);
			if (!cfailed)
				check_state(d);
		} else if (k < 690) {
			cnote("seeks %s", f->name);
			for (int j = 0; j < 3 && !cfailed; j++)
				check_seek(f, cbelow(f->size + 2 * BS));
		} else if (k < 815) {
			size_t len = 1 + cbelow(cbelow(2) ? 65536 : 1u << 20);
			cnote("read %s %zu", f->name, len);
			check_read(f, cbelow(f->size + BS), len);
		} else if (k < 835) {
			op_freeze(f);
		} else if (k < 850) {
			op_clone(f);
		} else if (k < 856) {
			op_flatten(f);
		} else if (k < 862) {
			op_creopen(f);
		} else if (k < 865) {
			cnote("sync %s", f->name);
			if (vmb_image_sync(f->img, (int)cbelow(2), NULL) < 0)
				CFAIL("sync");
		} else if (k < 885) {
			struct ver *v = vers[cbelow(NV)];
			cnote("check version %s", v ? v->b->id : "-");
			if (v)
				check_version(v);
		} else {
			cnote("check %s", f->name);
			check_file(f);
		}
		if (cfailed || !f->img)
			break;
		check_state(f);
		if (cbelow(2))
			check_read(f, cbelow(f->size + BS), 1 + cbelow(32768));
	}
	for (i = 0; i < NC && !cfailed; i++) {
		cnote("final check %s", cfiles[i].name);
		check_file(&cfiles[i]);
		if (!cfailed)
			op_creopen(&cfiles[i]);
		if (!cfailed && cfiles[i].img)
			check_file(&cfiles[i]);
	}
	for (i = 0; i < NV && !cfailed; i++)
		if (vers[i])
			check_version(vers[i]);
	for (i = 0; i < NC; i++) {
		vmb_image_close(cfiles[i].img);
		ver_put(cfiles[i].ver);
		free(cfiles[i].data);
		free(cfiles[i].st);
	}
	for (i = 0; i < NV; i++)
		if (vers[i])
			ver_put(vers[i]);
	free(cbuf);
	free(rdbuf);
	close(cmap);
	vmb_layers_close(cls);
	cls = NULL;
	if (metafd >= 0)
		close(metafd);
	*checks = cchecks;
	fprintf(stderr, "model_chain (%s): %lu operations (%lu freezes, %lu clones, %lu "
		"flattens, chains up to %lu layers), %lu checks%s\n",
		real ? "real layers" : "test double", cop, nfreeze, nclone, nflatten, maxdepth,
		cchecks, cfailed ? ", FAILED" : "");
	return cfailed ? 1 : 0;
}
