/* test_image_model.c - images (src/image/image.c) against a byte-array model.
 *
 * A random sequence of operations on NF images: writes (1 B .. 1 MiB, unaligned and
 * block-aligned, all-zero, mixed), truncate, fallocate PUNCH_HOLE and ZERO_RANGE
 * (with and without KEEP_SIZE), copy_range between images, sync, and close+reopen
 * (which must use the saved map, not rebuild it). After every operation the sizes
 * are compared and the allocation is bounded; often a random range is read back;
 * periodically every file is compared whole, every SEEK_DATA/SEEK_HOLE answer is
 * checked against the model, and every DATA block of the map must be a block that
 * was written (and not zeroed, punched or cut off since).
 *
 * Then the same over bases (model_chain.c): deltas, snapshots (freeze), clones and
 * flatten, every read, seek, st_blocks and map state checked exactly: VMB_CHAIN_OPS
 * / 2 operations over the test double of a base, VMB_CHAIN_OPS over real layers.
 *
 * Environment: VMB_SEED (default fixed), VMB_OPS (default 100000), VMB_CHAIN_OPS
 * (default 20000). A failure prints the seed, the operation number and the last
 * operations.
 */
#include "config.h"
#include "image/image.h"
#include "map/sidecar.h"
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

int model_chain(uint64_t seed, unsigned long nops, int dir, int real, unsigned long *checks);

#define BS 4096u
#define NF 3
#define MAXSZ (32u << 20)                /* files stay below this */
#define MAXBLK (MAXSZ / BS + 1)
#define WMAX (1u << 20)                  /* largest write / copy */
#define FULL_EVERY 5000                  /* whole-file checks */
#define SUBSET_EVERY 100                 /* map-against-written checks */
#define HIST 8

struct mf {
	char name[32];
	struct vmb_image *img;
	unsigned char *data;    /* the model: MAXSZ bytes, zero past size */
	uint64_t size;
	unsigned char *wr;      /* per block: may be DATA (written, not zeroed since) */
};

static char tmpdir[1024];
static int tdir = -1, mapfd = -1;
static struct mf files[NF];
static unsigned char *wbuf, *rbuf;
static uint64_t seed, rng;
static unsigned long opno;
static char hist[HIST][200];
static int failed;

/* ---- randomness ---- */

static uint64_t rnd(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * UINT64_C(2685821657736338717);
}

static uint64_t below(uint64_t n)
{
	return n ? rnd() % n : 0;
}

static void rfill(unsigned char *p, size_t n)
{
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		uint64_t v = rnd();
		memcpy(p + i, &v, 8);
	}
	for (; i < n; i++)
		p[i] = (unsigned char)rnd();
}

/* ---- reporting ---- */

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(hist[opno % HIST], sizeof(hist[0]), fmt, ap);
	va_end(ap);
}

#define FAIL(...) do { \
	if (!failed) \
		fail_report(__LINE__, __VA_ARGS__); \
	failed = 1; \
} while (0)

static void fail_report(int line, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail_report(int line, const char *fmt, ...)
{
	va_list ap;
	unsigned long i;

	harness_fail(__FILE__, line, "model");
	fprintf(stderr, "    VMB_SEED=%llu, failed at op %lu: ", (unsigned long long)seed, opno);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n    last operations:\n");
	for (i = opno >= HIST - 1 ? opno - (HIST - 1) : 0; i <= opno; i++)
		fprintf(stderr, "      %lu: %s\n", i, hist[i % HIST]);
}

/* ---- helpers ---- */

static uint64_t blocks_for(uint64_t b)
{
	return (b + BS - 1) / BS;
}

static int all_zero(const unsigned char *p, size_t n)
{
	return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/* Offset of the first non-zero byte of [a, b) of f's model, or b. */
static uint64_t first_nonzero(const struct mf *f, uint64_t a, uint64_t b)
{
	static const unsigned char zeros[BS];
	uint64_t i = a;

	while (i < b) {
		size_t n = b - i < BS ? (size_t)(b - i) : BS;
		if (memcmp(f->data + i, zeros, n) != 0)
			break;
		i += n;
	}
	for (; i < b; i++)
		if (f->data[i])
			return i;
	return b;
}

static int open_image(struct mf *f, int create)
{
	struct vmb_err e;
	int fd, r;

	fd = openat(tdir, f->name, O_RDWR | O_CLOEXEC | (create ? O_CREAT | O_TRUNC : 0), 0644);
	if (fd < 0)
		return -errno;
	vmb_err_clear(&e);
	r = vmb_image_open(&f->img, fd, mapfd, f->name, NULL, &e);
	if (r < 0) {
		FAIL("open %s: %d %s", f->name, r, e.msg);
		close(fd);
	}
	return r;
}

/* Mark the blocks of f that [a, b) (within the size) covers whole as not DATA. */
static void wr_clear_whole(struct mf *f, uint64_t a, uint64_t b)
{
	if (b > f->size)
		b = f->size;
	for (uint64_t blk = blocks_for(a); blk * BS < b; blk++) {
		uint64_t end = (blk + 1) * BS < f->size ? (blk + 1) * BS : f->size;
		if (end <= b)
			f->wr[blk] = 0;
	}
}

/* ---- checks ---- */

static void check_size(struct mf *f)
{
	struct stat st;

	harness_checks++;

	if (vmb_image_size(f->img) != f->size)
		FAIL("%s: size %llu, model %llu", f->name,
		     (unsigned long long)vmb_image_size(f->img), (unsigned long long)f->size);
	if (fstat(vmb_image_fd(f->img), &st) < 0 || (uint64_t)st.st_size != f->size)
		FAIL("%s: backing size %lld, model %llu", f->name, (long long)st.st_size,
		     (unsigned long long)f->size);
}

static uint64_t wr_count(const struct mf *f)
{
	uint64_t n = 0;

	for (uint64_t b = 0; b < blocks_for(f->size); b++)
		n += f->wr[b];
	return n;
}

static void check_alloc(struct mf *f)
{
	uint64_t a = vmb_image_alloc_bytes(f->img) / BS, w = wr_count(f);

	harness_checks++;

	if (a > w)
		FAIL("%s: %llu data blocks, but only %llu blocks written", f->name,
		     (unsigned long long)a, (unsigned long long)w);
}

/* Every DATA block of the map was written; the map is canonical and ends in the file. */
static void check_subset(struct mf *f)
{
	struct vmb_blockmap m;
	uint64_t nb = blocks_for(f->size), x;

	harness_checks++;

	vmb_blockmap_init(&m);
	if (vmb_image_map_copy(f->img, &m) < 0) {
		FAIL("map_copy");
		return;
	}
	if (vmb_blockmap_check(&m) < 0)
		FAIL("%s: map fails its invariants", f->name);
	if (vmb_blockmap_next(&m, nb, VMB_M_DATA | VMB_M_ZERO, &x) == 0)
		FAIL("%s: map extent at block %llu past the end (%llu blocks)", f->name,
		     (unsigned long long)x, (unsigned long long)nb);
	for (size_t i = 0; i < m.n && !failed; i++) {
		if (m.ext[i].state != VMB_DATA)
			continue;
		for (uint64_t b = m.ext[i].start; b < m.ext[i].start + m.ext[i].len; b++)
			if (b >= nb || !f->wr[b]) {
				FAIL("%s: block %llu is DATA but was not written", f->name,
				     (unsigned long long)b);
				break;
			}
	}
	vmb_blockmap_destroy(&m);
}

static void check_range(struct mf *f, uint64_t off, size_t len)
{
	size_t want;
	int holes = -1;
	ssize_t r;

	harness_checks++;

	if (len > WMAX)
		len = WMAX;
	want = off >= f->size ? 0 : (f->size - off < len ? (size_t)(f->size - off) : len);
	r = vmb_image_read(f->img, rbuf, len, off, &holes, NULL);
	if (r != (ssize_t)want) {
		FAIL("%s: read(%zu at %llu) = %zd, want %zu", f->name, len,
		     (unsigned long long)off, r, want);
		return;
	}
	if (want == 0)
		return;
	if (holes == 1) {
		uint64_t nz = first_nonzero(f, off, off + want);
		if (nz < off + want)
			FAIL("%s: read(%zu at %llu) says holes only; model has %02x at %llu",
			     f->name, len, (unsigned long long)off, f->data[nz],
			     (unsigned long long)nz);
		return;
	}
	if (holes != 0 || memcmp(rbuf, f->data + off, want) != 0) {
		size_t i = 0;
		while (i < want && rbuf[i] == f->data[off + i])
			i++;
		FAIL("%s: read(%zu at %llu) differs at %llu: %02x, model %02x (holes %d)",
		     f->name, len, (unsigned long long)off, (unsigned long long)(off + i),
		     i < want ? rbuf[i] : 0, i < want ? f->data[off + i] : 0, holes);
	}
}

static void check_whole(struct mf *f)
{
	for (uint64_t off = 0; off < f->size && !failed; off += WMAX)
		check_range(f, off, WMAX);
}

/* One SEEK_DATA / SEEK_HOLE answer at off, against the model. */
static void check_seek_at(struct mf *f, uint64_t off)
{
	uint64_t res = 0;
	int r;

	harness_checks++;

	r = vmb_image_seek(f->img, off, SEEK_DATA, &res, NULL);
	if (off >= f->size) {
		if (r != -ENXIO)
			FAIL("%s: SEEK_DATA(%llu) at/past EOF %llu = %d", f->name,
			     (unsigned long long)off, (unsigned long long)f->size, r);
	} else if (r == -ENXIO) {
		uint64_t nz = first_nonzero(f, off, f->size);
		if (nz < f->size)
			FAIL("%s: SEEK_DATA(%llu) = ENXIO but the model has data at %llu",
			     f->name, (unsigned long long)off, (unsigned long long)nz);
	} else if (r < 0 || res < off || res >= f->size) {
		FAIL("%s: SEEK_DATA(%llu) = %d, %llu (size %llu)", f->name,
		     (unsigned long long)off, r, (unsigned long long)res,
		     (unsigned long long)f->size);
	} else if (first_nonzero(f, off, res) < res) {
		FAIL("%s: SEEK_DATA(%llu) = %llu skips data at %llu", f->name,
		     (unsigned long long)off, (unsigned long long)res,
		     (unsigned long long)first_nonzero(f, off, res));
	}
	r = vmb_image_seek(f->img, off, SEEK_HOLE, &res, NULL);
	if (off >= f->size) {
		if (r != -ENXIO)
			FAIL("%s: SEEK_HOLE(%llu) at/past EOF = %d", f->name,
			     (unsigned long long)off, r);
	} else if (r < 0 || res < off || res > f->size) {
		FAIL("%s: SEEK_HOLE(%llu) = %d, %llu (size %llu)", f->name,
		     (unsigned long long)off, r, (unsigned long long)res,
		     (unsigned long long)f->size);
	} else if (res < f->size) {
		uint64_t end = (res / BS + 1) * BS < f->size ? (res / BS + 1) * BS : f->size;
		if (first_nonzero(f, res, end) < end)
			FAIL("%s: SEEK_HOLE(%llu) = %llu, but the model has data at %llu",
			     f->name, (unsigned long long)off, (unsigned long long)res,
			     (unsigned long long)first_nonzero(f, res, end));
	}
}

/* Walk the file by SEEK_DATA/SEEK_HOLE: every reported hole reads zero in the
 * model, so every non-zero byte lies in reported data. */
static void check_seek_walk(struct mf *f)
{
	uint64_t pos = 0, d, h;
	unsigned long steps = 0;

	harness_checks++;

	while (pos < f->size && !failed) {
		int r = vmb_image_seek(f->img, pos, SEEK_DATA, &d, NULL);
		if (r == -ENXIO) {
			if (first_nonzero(f, pos, f->size) < f->size)
				FAIL("%s: walk: no data after %llu, model has data at %llu",
				     f->name, (unsigned long long)pos,
				     (unsigned long long)first_nonzero(f, pos, f->size));
			return;
		}
		if (r < 0 || d < pos || d >= f->size) {
			FAIL("%s: walk: SEEK_DATA(%llu) = %d, %llu", f->name,
			     (unsigned long long)pos, r, (unsigned long long)d);
			return;
		}
		if (first_nonzero(f, pos, d) < d) {
			FAIL("%s: walk: hole [%llu, %llu) holds data at %llu", f->name,
			     (unsigned long long)pos, (unsigned long long)d,
			     (unsigned long long)first_nonzero(f, pos, d));
			return;
		}
		r = vmb_image_seek(f->img, d, SEEK_HOLE, &h, NULL);
		if (r < 0 || h <= d || h > f->size) {
			FAIL("%s: walk: SEEK_HOLE(%llu) = %d, %llu", f->name,
			     (unsigned long long)d, r, (unsigned long long)h);
			return;
		}
		pos = h;
		if (++steps > MAXBLK + 2) {
			FAIL("%s: walk does not end", f->name);
			return;
		}
	}
}

static void check_full(void)
{
	for (int i = 0; i < NF && !failed; i++) {
		check_size(&files[i]);
		check_whole(&files[i]);
		check_seek_walk(&files[i]);
		check_subset(&files[i]);
		check_alloc(&files[i]);
	}
}

/* ---- operations ---- */

static uint64_t pick_off(struct mf *f, size_t len)
{
	uint64_t off, lim = MAXSZ - len;

	switch (below(8)) {
	case 0: case 1: case 2:
		off = below(f->size + 65536);
		break;
	case 3: case 4:
		off = below(f->size / BS + 16) * BS;
		break;
	case 5:
		off = f->size > 8192 ? f->size - below(8192) : below(8192);
		break;
	case 6:
		off = f->size + below(3 * BS);
		break;
	default:
		off = below(MAXSZ);
		break;
	}
	return off > lim ? lim : off;
}

static size_t pick_len(void)
{
	switch (below(20)) {
	case 0: case 1: case 2: case 3: case 4: case 5: case 6: case 7:
		return 1 + below(512);
	case 8: case 9: case 10: case 11:
		return 1 + below(16384);
	case 12: case 13: case 14: case 15:
		return (1 + below(16)) * BS;
	case 16: case 17: case 18:
		return 16384 + below(256 * 1024);
	default:
		return 1 + below(WMAX);
	}
}

static void op_write(struct mf *f)
{
	size_t len = pick_len();
	uint64_t off = pick_off(f, len), end;
	const char *kind;
	ssize_t r;
	struct vmb_err e;

	if (below(3) == 0) {   /* block-aligned */
		off -= off % BS;
		if (len >= BS)
			len -= len % BS;
	}
	switch (below(10)) {
	case 0: case 1:
		memset(wbuf, 0, len);
		kind = "zeros";
		break;
	case 2: case 3:   /* data and zero blocks, by 4 KiB of the file */
		rfill(wbuf, len);
		for (uint64_t p = off; p < off + len;) {
			uint64_t stop = (p / BS + 1) * BS < off + len ? (p / BS + 1) * BS : off + len;
			if (rnd() & 1)
				memset(wbuf + (p - off), 0, stop - p);
			p = stop;
		}
		kind = "mixed";
		break;
	case 4:   /* sparse bytes */
		memset(wbuf, 0, len);
		for (size_t i = 0; i < 1 + len / 5000; i++)
			wbuf[below(len)] = (unsigned char)(1 + below(255));
		kind = "sparse";
		break;
	default:
		rfill(wbuf, len);
		kind = "random";
	}
	note("write %s %zu at %llu (%s)", f->name, len, (unsigned long long)off, kind);
	vmb_err_clear(&e);
	r = vmb_image_write(f->img, wbuf, len, off, &e);
	if (r != (ssize_t)len) {
		FAIL("write = %zd: %s", r, e.msg);
		return;
	}
	memcpy(f->data + off, wbuf, len);
	end = off + len;
	for (uint64_t b = off / BS; b * BS < end; b++) {
		uint64_t a = b * BS > off ? b * BS : off;
		uint64_t z = (b + 1) * BS < end ? (b + 1) * BS : end;
		int whole = a == b * BS && z == (b + 1) * BS;
		if (!all_zero(wbuf + (a - off), z - a))
			f->wr[b] = 1;
		else if (whole)
			f->wr[b] = 0;
		/* zeros into part of a block leave it as it was */
	}
	if (end > f->size)
		f->size = end;
}

static void op_truncate(struct mf *f)
{
	uint64_t ns;
	int r;

	switch (below(6)) {
	case 0: case 1:
		ns = below(f->size + 1);
		break;
	case 2:
		ns = f->size + below(65536);
		break;
	case 3:
		ns = below(f->size / BS + 4) * BS;
		break;
	case 4:
		ns = f->size > 100 ? f->size - below(100) : 0;
		break;
	default:
		ns = below(MAXSZ);
	}
	if (ns > MAXSZ)
		ns = MAXSZ;
	note("truncate %s %llu -> %llu", f->name, (unsigned long long)f->size,
	     (unsigned long long)ns);
	r = vmb_image_truncate(f->img, ns, NULL);
	if (r < 0) {
		FAIL("truncate = %d", r);
		return;
	}
	if (ns < f->size) {
		memset(f->data + ns, 0, f->size - ns);
		for (uint64_t b = blocks_for(ns); b < blocks_for(f->size); b++)
			f->wr[b] = 0;
	}
	f->size = ns;
}

static void op_zero(struct mf *f, int zero_range)
{
	size_t len = pick_len();
	uint64_t off = pick_off(f, len), end;
	int keep = zero_range ? (int)below(2) : 1, mode, r;
	struct vmb_err e;

	if (below(3) == 0) {
		off -= off % BS;
		if (len >= BS)
			len -= len % BS;
	}
	end = off + len;
	mode = zero_range ? FALLOC_FL_ZERO_RANGE : FALLOC_FL_PUNCH_HOLE;
	if (keep)
		mode |= FALLOC_FL_KEEP_SIZE;
	note("%s%s %s %zu at %llu (size %llu)", zero_range ? "zero_range" : "punch",
	     keep ? "|keep" : "", f->name, len, (unsigned long long)off,
	     (unsigned long long)f->size);
	vmb_err_clear(&e);
	r = vmb_image_fallocate(f->img, mode, off, len, &e);
	if (r < 0) {
		FAIL("fallocate = %d: %s", r, e.msg);
		return;
	}
	if (off < f->size)
		memset(f->data + off, 0, (end < f->size ? end : f->size) - off);
	wr_clear_whole(f, off, end);
	if (!keep && end > f->size)
		f->size = end;
}

static void op_copy(struct mf *src, struct mf *dst)
{
	size_t len = pick_len(), n;
	uint64_t soff, doff;
	ssize_t r;
	struct vmb_err e;

	soff = src->size ? below(src->size) : 0;
	if (below(3) == 0)
		soff -= soff % BS;
	doff = pick_off(dst, len);
	if (below(3) == 0)
		doff = doff - doff % BS + soff % BS;   /* same alignment */
	if (doff + len > MAXSZ)
		doff = MAXSZ - len;
	n = soff >= src->size ? 0 : (src->size - soff < len ? (size_t)(src->size - soff) : len);
	note("copy %s %zu at %llu -> %s at %llu (src size %llu, dst size %llu)", src->name,
	     len, (unsigned long long)soff, dst->name, (unsigned long long)doff,
	     (unsigned long long)src->size, (unsigned long long)dst->size);
	vmb_err_clear(&e);
	r = vmb_image_copy_range(src->img, soff, dst->img, doff, len, &e);
	if (r != (ssize_t)n) {
		FAIL("copy_range = %zd, want %zu: %s", r, n, e.msg);
		return;
	}
	if (n == 0)
		return;
	memcpy(dst->data + doff, src->data + soff, n);
	if (doff + n > dst->size)
		dst->size = doff + n;
	/* dst blocks: may be data if any byte from a may-be-data source block lands in
	 * them; not data if wholly (in the file) covered by bytes from other blocks */
	for (uint64_t b = doff / BS; b * BS < doff + n; b++) {
		uint64_t a = b * BS > doff ? b * BS : doff;
		uint64_t z = (b + 1) * BS < doff + n ? (b + 1) * BS : doff + n;
		uint64_t bend = (b + 1) * BS < dst->size ? (b + 1) * BS : dst->size;
		int any = 0;
		for (uint64_t s = a - doff + soff; s < z - doff + soff; s = (s / BS + 1) * BS)
			any |= src->wr[s / BS];
		if (any)
			dst->wr[b] = 1;
		else if (a == b * BS && z >= bend)
			dst->wr[b] = 0;
	}
}

static void op_sync(struct mf *f)
{
	struct vmb_blockmap cur, saved;
	uint64_t size;
	int fd, rebuilt = -1, r, ds = (int)below(2);

	note("sync %s (datasync %d)", f->name, ds);
	r = vmb_image_sync(f->img, ds, NULL);
	if (r < 0) {
		FAIL("sync = %d", r);
		return;
	}
	/* the saved map is the current one */
	vmb_blockmap_init(&cur);
	vmb_blockmap_init(&saved);
	fd = openat(tdir, f->name, O_RDONLY | O_CLOEXEC);
	r = fd < 0 ? -errno : vmb_image_load_map(fd, mapfd, f->name, &saved, &size, &rebuilt,
						 NULL);
	if (r < 0 || rebuilt != 0 || size != f->size)
		FAIL("after sync: load_map = %d, rebuilt %d, size %llu", r, rebuilt,
		     (unsigned long long)size);
	else if (vmb_image_map_copy(f->img, &cur) < 0 || !vmb_blockmap_equal(&cur, &saved))
		FAIL("after sync: the saved map differs from the image's");
	if (fd >= 0)
		close(fd);
	vmb_blockmap_destroy(&cur);
	vmb_blockmap_destroy(&saved);
}

static void op_reopen(struct mf *f)
{
	struct vmb_blockmap before, loaded, after;
	uint64_t size;
	int fd, rebuilt = -1, r;

	note("reopen %s", f->name);
	vmb_blockmap_init(&before);
	vmb_blockmap_init(&loaded);
	vmb_blockmap_init(&after);
	if (vmb_image_map_copy(f->img, &before) < 0)
		FAIL("map_copy");
	vmb_image_close(f->img);
	f->img = NULL;
	fd = openat(tdir, f->name, O_RDONLY | O_CLOEXEC);
	r = fd < 0 ? -errno : vmb_image_load_map(fd, mapfd, f->name, &loaded, &size, &rebuilt,
						 NULL);
	if (fd >= 0)
		close(fd);
	if (r < 0 || rebuilt != 0)
		FAIL("reopen %s: load_map = %d, rebuilt %d (the saved map was not used)",
		     f->name, r, rebuilt);
	else if (!vmb_blockmap_equal(&before, &loaded))
		FAIL("reopen %s: the saved map differs from the one at close", f->name);
	if (open_image(f, 0) == 0) {
		if (vmb_image_map_copy(f->img, &after) < 0 || !vmb_blockmap_equal(&before, &after))
			FAIL("reopen %s: the map differs after reopening", f->name);
	}
	vmb_blockmap_destroy(&before);
	vmb_blockmap_destroy(&loaded);
	vmb_blockmap_destroy(&after);
}

static void op_seek(struct mf *f)
{
	uint64_t off = below(f->size + 2 * BS);

	note("seek checks %s at %llu", f->name, (unsigned long long)off);
	check_seek_at(f, off);
	if (f->size)
		check_seek_at(f, f->size - 1);
	check_seek_at(f, f->size);
}

static void op_read(struct mf *f)
{
	size_t len = below(4) ? 1 + below(65536) : 1 + below(WMAX);
	uint64_t off = below(f->size + BS);

	note("read %s %zu at %llu", f->name, len, (unsigned long long)off);
	check_range(f, off, len);
}

/* ---- main ---- */

static void run(unsigned long nops)
{
	int i;

	for (i = 0; i < NF; i++) {
		snprintf(files[i].name, sizeof(files[i].name), "model%d.img", i);
		files[i].data = calloc(1, MAXSZ);
		files[i].wr = calloc(1, MAXBLK);
		if (!files[i].data || !files[i].wr) {
			FAIL("out of memory");
			return;
		}
		if (open_image(&files[i], 1) < 0)
			return;
	}
	for (opno = 0; opno < nops && !failed; opno++) {
		struct mf *f = &files[below(NF)];
		uint64_t k = below(1000);

		/* sync and reopen fsync the backing file and the map: kept rare */
		if (k < 430) {
			op_write(f);
		} else if (k < 460) {
			op_truncate(f);
		} else if (k < 540) {
			op_zero(f, 0);
		} else if (k < 620) {
			op_zero(f, 1);
		} else if (k < 730) {
			struct mf *d = &files[(f - files + 1 + below(NF - 1)) % NF];
			op_copy(f, d);
			if (!failed)
				check_size(d);
			if (!failed)
				check_alloc(d);
		} else if (k < 731) {
			op_sync(f);
		} else if (k < 732) {
			op_reopen(f);
		} else if (k < 850) {
			op_seek(f);
		} else {
			op_read(f);
		}
		if (failed)
			break;
		check_size(f);
		check_alloc(f);
		if (below(2))   /* a random range, often near the last change */
			check_range(f, below(f->size + BS), 1 + below(65536));
		if (opno % SUBSET_EVERY == 0)
			check_subset(f);
		if (opno % FULL_EVERY == FULL_EVERY - 1)
			check_full();
	}
	if (!failed) {
		opno = nops;
		note("final checks");
		check_full();
	}
	/* every file survives a last close and reopen */
	for (i = 0; i < NF && !failed; i++)
		op_reopen(&files[i]);
	if (!failed)
		check_full();
}

int main(void)
{
	const char *s = getenv("VMB_SEED"), *o = getenv("VMB_OPS");
	unsigned long nops = o ? strtoul(o, NULL, 0) : 100000;
	uint64_t data_ops;
	int i;

	seed = s ? strtoull(s, NULL, 0) : UINT64_C(20240611);
	rng = seed * UINT64_C(0x9e3779b97f4a7c15) + 0x1234567;
	if (!rng)
		rng = 1;
	fprintf(stderr, "test_image_model: VMB_SEED=%llu VMB_OPS=%lu\n",
		(unsigned long long)seed, nops);
	if (harness_tmpdir(tmpdir, sizeof(tmpdir), "model") < 0)
		return 99;
	tdir = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (tdir < 0 || mkdirat(tdir, "maps", 0700) < 0 ||
	    (mapfd = openat(tdir, "maps", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		perror(tmpdir);
		return 99;
	}
	wbuf = malloc(WMAX);
	rbuf = malloc(WMAX);
	if (!wbuf || !rbuf)
		return 99;
	run(nops);
	/* every operation and periodic check counts as a check of the harness */
	data_ops = opno;
	CHECK(!failed);
	CHECK(failed || data_ops >= nops);
	if (fsetxattr(tdir, "trusted.vmbundlefs.probe", "1", 1, 0) < 0) {
		fprintf(stderr, "test_image_model: SKIP the part over bases: no trusted.* "
			"xattrs here (not root?)\n");
	} else {
		const char *co = getenv("VMB_CHAIN_OPS");
		unsigned long cops = co ? strtoul(co, NULL, 0) : 20000, cchecks = 0;
		struct timespec t0, t1;
		int cr, real, d;

		/* over the test double (half as many), then over real layers */
		for (real = 0; real < 2 && !failed; real++) {
			char sub[16];
			snprintf(sub, sizeof(sub), "chain%d", real);
			if (mkdirat(tdir, sub, 0700) < 0 ||
			    (d = openat(tdir, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
				CHECK(0);
				break;
			}
			clock_gettime(CLOCK_MONOTONIC, &t0);
			cr = model_chain(seed + (uint64_t)real, real ? cops : cops / 2, d, real,
					 &cchecks);
			clock_gettime(CLOCK_MONOTONIC, &t1);
			fprintf(stderr, "test_image_model: %lu operations over %s in %.1f s\n",
				real ? cops : cops / 2, real ? "real layers" : "the test double",
				(double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
			harness_checks += cchecks;
			CHECK(cr == 0);
			close(d);
		}
	}
	for (i = 0; i < NF; i++) {
		vmb_image_close(files[i].img);
		free(files[i].data);
		free(files[i].wr);
	}
	free(wbuf);
	free(rbuf);
	close(mapfd);
	close(tdir);
	harness_rmtree(tmpdir);
	if (failed)
		fprintf(stderr, "test_image_model: reproduce with VMB_SEED=%llu\n",
			(unsigned long long)seed);
	return harness_exit("test_image_model");
}
