/* modeltest: model-based random-operation test of a directory's regular files.
 *
 * A long random sequence of operations (pwrite, ftruncate, fallocate punch /
 * zero-range / mode 0 / keep-size, copy_file_range, fsync, close+reopen and
 * remount) runs on a few files in DIR and on an in-memory model of each file
 * (a growable byte array).  After every operation the file size is checked;
 * every few operations a random range is read back and compared; periodically
 * every SEEK_DATA/SEEK_HOLE answer is checked against the model:
 *   - any byte inside a reported hole is zero in the model;
 *   - every non-zero model byte lies inside reported data;
 *   - SEEK_DATA/SEEK_HOLE at or past the size -> ENXIO; SEEK_HOLE <= size.
 * On failure it prints the seed, the operation number, the operation and the
 * preceding operations, and exits 1.
 *
 * usage: modeltest [--seed N] [--ops N] [--files N] [--dir DIR] [--existing] [--other-dir DIR2]
 *                  [--snapshot-cmd CMD --snapshot-view FMT [--snapshot-every N]]
 *                  [--remount-cmd CMD] [--remount-every N] [--check-blocks] [--verbose]
 * --existing: DIR/model<i>.img exist already (at most 64 MiB each: a layered or
 * pulled image, say); the model starts from what they read, after a check of
 * their SEEK_DATA/SEEK_HOLE answers against it. Without it they are created empty.
 * --other-dir DIR2: the same files seen through another mount of the same store.
 * Now and then a file is closed, opened through DIR2 (close-to-open: it must read
 * as the model, size, bytes, SEEK_DATA/SEEK_HOLE), written, punched or truncated
 * there, closed, and opened again in DIR, where the next operations must see that.
 * --snapshot-cmd CMD: every N operations (default ops/6), with the files open, run
 * "CMD NAME" (NAME: s<op>), which takes a snapshot of DIR's bundle; the files of
 * FMT (a printf format of NAME: the snapshot's directory) must then read as the
 * model, and the last snapshot still so at the end.
 * --check-blocks: at each seek check, st_blocks * 512 must equal the bytes of
 * the 4 KiB blocks touched by data extents (true for vmbundlefs, not for ext4).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/falloc.h>

#define KiB 1024ULL
#define MiB (1024ULL * 1024ULL)
#define MAX_OFF (64 * MiB)
#define MAX_IO (2 * MiB)
#define BLK 4096ULL
#define MAXF 8
#define HIST 40

struct mfile {
    char path[4096];
    int fd;
    ino_t ino;
    unsigned char *data;
    uint64_t size, cap;
};

static struct mfile files[MAXF];
static int nfiles = 3;
static uint64_t seed = 20240601;
static uint64_t nops = 2000;
static uint64_t opno;
static const char *dir = ".";
static const char *remount_cmd;
static uint64_t remount_every;
static int verbose;
static int check_blocks;
static int existing;
static const char *other_dir;
static const char *snap_cmd, *snap_view;
static uint64_t snap_every;
static char snap_last[64];
static unsigned char *snap_data[MAXF];
static uint64_t snap_size[MAXF];
static char curop[512];
static char hist[HIST][600];
static unsigned nhist;
static unsigned char *iobuf, *rdbuf;
static uint64_t stats[16];

/* ---- random numbers (xorshift64*) ---- */
static uint64_t rs;
static uint64_t rnd(void)
{
    rs ^= rs >> 12;
    rs ^= rs << 25;
    rs ^= rs >> 27;
    return rs * 0x2545F4914F6CDD1DULL;
}
static uint64_t rndn(uint64_t n) { return n ? rnd() % n : 0; }

/* Roughly log-uniform size in [1, max]; sizes over 128 KiB are less likely
 * (they cost time and prove little more). */
static uint64_t rsize(uint64_t max)
{
    unsigned e = (unsigned)rndn(22);
    if (e >= 17 && rndn(4)) e = (unsigned)rndn(17);
    uint64_t v = 1 + rndn(1ULL << e);
    return v > max ? max : v;
}

/* ---- failure reporting ---- */
static void fail(const char *fmt, ...)
{
    fflush(stdout);
    unsigned n = nhist < HIST ? nhist : HIST;
    fprintf(stderr, "modeltest: previous operations:\n");
    for (unsigned i = n; i > 0; i--)
        fprintf(stderr, "  %s\n", hist[(nhist - i) % HIST]);
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "modeltest: FAIL seed=%" PRIu64 " op=%" PRIu64 " [%s]: ", seed, opno, curop);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nmodeltest: reproduce with --seed %" PRIu64 " --ops %" PRIu64 "\n", seed, nops);
    exit(1);
}

static void setop(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(curop, sizeof curop, fmt, ap);
    va_end(ap);
    snprintf(hist[nhist % HIST], sizeof hist[0], "#%" PRIu64 " %s", opno, curop);
    nhist++;
    if (verbose) fprintf(stderr, "#%" PRIu64 " %s\n", opno, curop);
}

/* ---- model ---- */
static void model_reserve(struct mfile *f, uint64_t n)
{
    if (n <= f->cap) return;
    uint64_t nc = f->cap ? f->cap : MiB;
    while (nc < n) nc *= 2;
    unsigned char *p = realloc(f->data, nc);
    if (!p) { fprintf(stderr, "modeltest: out of memory\n"); exit(1); }
    f->data = p;
    f->cap = nc;
}

static void model_resize(struct mfile *f, uint64_t n)
{
    if (n > f->size) {
        model_reserve(f, n);
        memset(f->data + f->size, 0, n - f->size);
    }
    f->size = n;
}

static void model_write(struct mfile *f, uint64_t off, const unsigned char *buf, uint64_t len)
{
    if (off + len > f->size) model_resize(f, off + len);
    memcpy(f->data + off, buf, len);
}

static void model_zero(struct mfile *f, uint64_t off, uint64_t len)
{
    if (off >= f->size) return;
    if (off + len > f->size) len = f->size - off;
    memset(f->data + off, 0, len);
}

/* First non-zero byte in [a, b), or b. */
static uint64_t first_nonzero(const unsigned char *p, uint64_t a, uint64_t b)
{
    uint64_t i = a;
    while (i < b && (i & 7)) { if (p[i]) return i; i++; }
    while (i + 8 <= b) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        if (w) break;
        i += 8;
    }
    while (i < b) { if (p[i]) return i; i++; }
    return b;
}

/* ---- syscall wrappers that fail the test ---- */
static void xpwrite(struct mfile *f, const unsigned char *buf, uint64_t len, uint64_t off)
{
    uint64_t done = 0;
    while (done < len) {
        ssize_t n = pwrite(f->fd, buf + done, len - done, (off_t)(off + done));
        if (n < 0) {
            if (errno == EINTR) continue;
            fail("pwrite(%s, len %" PRIu64 ", off %" PRIu64 "): %s", f->path, len - done, off + done, strerror(errno));
        }
        if (n == 0) fail("pwrite returned 0");
        done += (uint64_t)n;
    }
}

static uint64_t xpread(struct mfile *f, unsigned char *buf, uint64_t len, uint64_t off)
{
    uint64_t done = 0;
    while (done < len) {
        ssize_t n = pread(f->fd, buf + done, len - done, (off_t)(off + done));
        if (n < 0) {
            if (errno == EINTR) continue;
            fail("pread(%s, len %" PRIu64 ", off %" PRIu64 "): %s", f->path, len - done, off + done, strerror(errno));
        }
        if (n == 0) break;
        done += (uint64_t)n;
    }
    return done;
}

static void xopen(struct mfile *f, int flags)
{
    f->fd = open(f->path, flags, 0644);
    if (f->fd < 0) fail("open(%s): %s", f->path, strerror(errno));
    struct stat st;
    if (fstat(f->fd, &st) < 0) fail("fstat: %s", strerror(errno));
    if (flags & O_TRUNC) {
        f->ino = st.st_ino;
    } else if (st.st_ino != f->ino) {
        fail("%s: st_ino changed from %ju to %ju", f->path, (uintmax_t)f->ino, (uintmax_t)st.st_ino);
    }
}

/* ---- checks ---- */
static void check_size(struct mfile *f)
{
    struct stat st;
    if (fstat(f->fd, &st) < 0) fail("fstat(%s): %s", f->path, strerror(errno));
    if ((uint64_t)st.st_size != f->size)
        fail("%s: st_size %jd, model %" PRIu64, f->path, (intmax_t)st.st_size, f->size);
}

static void check_range(struct mfile *f, uint64_t off, uint64_t len)
{
    while (len) {
        uint64_t n = len < MAX_IO ? len : MAX_IO;
        uint64_t got = xpread(f, rdbuf, n, off);
        uint64_t want = off >= f->size ? 0 : (f->size - off < n ? f->size - off : n);
        if (got != want)
            fail("%s: read of %" PRIu64 " at %" PRIu64 " returned %" PRIu64 ", model expects %" PRIu64,
                 f->path, n, off, got, want);
        if (got && memcmp(rdbuf, f->data + off, got)) {
            uint64_t i = 0;
            while (rdbuf[i] == f->data[off + i]) i++;
            fail("%s: content differs at offset %" PRIu64 " (read 0x%02x, model 0x%02x)",
                 f->path, off + i, rdbuf[i], f->data[off + i]);
        }
        if (got < n) return;
        off += n;
        len -= n;
    }
}

static void check_all(struct mfile *f)
{
    check_size(f);
    check_range(f, 0, f->size);
}

static off_t xseek(struct mfile *f, uint64_t off, int whence, int *err)
{
    off_t r = lseek(f->fd, (off_t)off, whence);
    *err = r < 0 ? errno : 0;
    return r;
}

static void check_seek(struct mfile *f)
{
    int err;
    uint64_t size = f->size, pos = 0;
    /* Walk data/hole boundaries. */
    unsigned guard = 0;
    uint64_t alloc = 0;
    while (pos < size) {
        if (++guard > 10000000) fail("%s: SEEK_DATA/SEEK_HOLE walk does not terminate", f->path);
        off_t d = xseek(f, pos, SEEK_DATA, &err);
        if (d < 0) {
            if (err != ENXIO) fail("%s: SEEK_DATA(%" PRIu64 "): %s", f->path, pos, strerror(err));
            uint64_t nz = first_nonzero(f->data, pos, size);
            if (nz < size)
                fail("%s: SEEK_DATA(%" PRIu64 ") = ENXIO but model byte %" PRIu64 " is non-zero", f->path, pos, nz);
            break;
        }
        if ((uint64_t)d < pos || (uint64_t)d >= size)
            fail("%s: SEEK_DATA(%" PRIu64 ") = %jd outside [%" PRIu64 ", size %" PRIu64 ")", f->path, pos, (intmax_t)d, pos, size);
        uint64_t nz = first_nonzero(f->data, pos, (uint64_t)d);
        if (nz < (uint64_t)d)
            fail("%s: SEEK_DATA(%" PRIu64 ") = %jd skips non-zero model byte at %" PRIu64, f->path, pos, (intmax_t)d, nz);
        off_t h = xseek(f, (uint64_t)d, SEEK_HOLE, &err);
        if (h < 0) fail("%s: SEEK_HOLE(%jd): %s", f->path, (intmax_t)d, strerror(err));
        if (h <= d || (uint64_t)h > size)
            fail("%s: SEEK_HOLE(%jd) = %jd, size %" PRIu64, f->path, (intmax_t)d, (intmax_t)h, size);
        alloc += (((uint64_t)h + BLK - 1) & ~(BLK - 1)) - ((uint64_t)d & ~(BLK - 1));
        pos = (uint64_t)h;
    }
    if (check_blocks) {
        struct stat st;
        if (fstat(f->fd, &st) < 0) fail("fstat: %s", strerror(errno));
        if ((uint64_t)st.st_blocks * 512 != alloc)
            fail("%s: st_blocks %jd (%ju bytes) but the data extents cover %" PRIu64 " bytes of blocks",
                 f->path, (intmax_t)st.st_blocks, (uintmax_t)st.st_blocks * 512, alloc);
    }
    /* Past the end. */
    off_t r = xseek(f, size, SEEK_DATA, &err);
    if (r >= 0 || err != ENXIO)
        fail("%s: SEEK_DATA(size %" PRIu64 ") = %jd (%s), expected ENXIO", f->path, size, (intmax_t)r, err ? strerror(err) : "no error");
    r = xseek(f, size + 1 + rndn(MiB), SEEK_HOLE, &err);
    if (r >= 0 || err != ENXIO)
        fail("%s: SEEK_HOLE(past size %" PRIu64 ") = %jd (%s), expected ENXIO", f->path, size, (intmax_t)r, err ? strerror(err) : "no error");
    /* A few random probes. */
    for (int i = 0; i < 8 && size; i++) {
        uint64_t x = rndn(size);
        off_t hh = xseek(f, x, SEEK_HOLE, &err);
        if (hh < 0) fail("%s: SEEK_HOLE(%" PRIu64 "): %s", f->path, x, strerror(err));
        if ((uint64_t)hh < x || (uint64_t)hh > size)
            fail("%s: SEEK_HOLE(%" PRIu64 ") = %jd, size %" PRIu64, f->path, x, (intmax_t)hh, size);
        /* [x, hh) is data or x is in a hole (hh == x) */
        off_t dd = xseek(f, x, SEEK_DATA, &err);
        if (dd < 0) {
            if (err != ENXIO) fail("%s: SEEK_DATA(%" PRIu64 "): %s", f->path, x, strerror(err));
            uint64_t nz = first_nonzero(f->data, x, size);
            if (nz < size) fail("%s: SEEK_DATA(%" PRIu64 ") = ENXIO but model byte %" PRIu64 " non-zero", f->path, x, nz);
        } else {
            if ((uint64_t)dd < x || (uint64_t)dd >= size)
                fail("%s: SEEK_DATA(%" PRIu64 ") = %jd out of range", f->path, x, (intmax_t)dd);
            uint64_t nz = first_nonzero(f->data, x, (uint64_t)dd);
            if (nz < (uint64_t)dd)
                fail("%s: SEEK_DATA(%" PRIu64 ") = %jd skips non-zero model byte at %" PRIu64, f->path, x, (intmax_t)dd, nz);
            if (hh != (off_t)x && dd != (off_t)x)
                fail("%s: offset %" PRIu64 " is neither in data (SEEK_DATA=%jd) nor in a hole (SEEK_HOLE=%jd)",
                     f->path, x, (intmax_t)dd, (intmax_t)hh);
        }
    }
}

/* ---- operations ---- */
static uint64_t pick_off(struct mfile *f)
{
    uint64_t off;
    switch (rndn(4)) {
    case 0: off = rndn(MAX_OFF); break;
    case 1: off = rndn(f->size + 1); break;
    case 2: off = f->size; break;
    default: {
        uint64_t base = f->size > MiB ? f->size - MiB : 0;
        off = base + rndn(2 * MiB);
    }
    }
    return off > MAX_OFF ? MAX_OFF : off;
}

static void fill_random(unsigned char *buf, uint64_t len)
{
    uint64_t i = 0;
    for (; i + 8 <= len; i += 8) { uint64_t v = rnd(); memcpy(buf + i, &v, 8); }
    for (; i < len; i++) buf[i] = (unsigned char)rnd();
}

static void op_pwrite(struct mfile *f)
{
    uint64_t off = pick_off(f), len = rsize(MAX_IO);
    int aligned = rndn(3) == 0;
    if (aligned) {
        off &= ~(BLK - 1);
        len = (len + BLK - 1) & ~(BLK - 1);
        if (len > MAX_IO) len = MAX_IO;
    }
    const char *kind;
    switch (rndn(8)) {
    case 0: case 1:
        memset(iobuf, 0, len);
        kind = "zeros";
        break;
    case 2: {
        /* random data with some zeroed 4 KiB-aligned blocks (file offsets) */
        fill_random(iobuf, len);
        for (uint64_t b = (off + BLK - 1) & ~(BLK - 1); b + BLK <= off + len; b += BLK)
            if (rndn(2)) memset(iobuf + (b - off), 0, BLK);
        kind = "mixed";
        break;
    }
    case 3:
        memset(iobuf, (int)(1 + rndn(255)), len);
        kind = "byte";
        break;
    default:
        fill_random(iobuf, len);
        kind = "random";
    }
    setop("pwrite %s off=%" PRIu64 " len=%" PRIu64 " %s%s", f->path, off, len, kind, aligned ? " aligned" : "");
    xpwrite(f, iobuf, len, off);
    model_write(f, off, iobuf, len);
    stats[0]++;
}

static void op_truncate(struct mfile *f)
{
    uint64_t n;
    switch (rndn(4)) {
    case 0: n = f->size ? rndn(f->size) : 0; break;                /* shrink */
    case 1: n = f->size + rsize(4 * MiB); break;                   /* grow */
    case 2: n = rndn(MAX_OFF); break;
    default: n = rndn(MAX_OFF) & ~(BLK - 1); break;
    }
    if (n > MAX_OFF + 4 * MiB) n = MAX_OFF;
    setop("ftruncate %s %" PRIu64 " (was %" PRIu64 ")", f->path, n, f->size);
    if (ftruncate(f->fd, (off_t)n) < 0) fail("ftruncate: %s", strerror(errno));
    model_resize(f, n);
    stats[1]++;
}

static void op_falloc(struct mfile *f)
{
    uint64_t off = rndn(3) ? rndn(f->size + MiB) : rndn(MAX_OFF);
    uint64_t len = rsize(4 * MiB);
    if (rndn(3) == 0) {
        off &= ~(BLK - 1);
        len = (len + BLK - 1) & ~(BLK - 1);
    }
    int mode;
    const char *name;
    switch (rndn(6)) {
    case 0: case 1: mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE; name = "punch"; break;
    case 2: mode = FALLOC_FL_ZERO_RANGE; name = "zero"; break;
    case 3: mode = FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE; name = "zero-keep"; break;
    case 4: mode = 0; name = "mode0"; break;
    default: mode = FALLOC_FL_KEEP_SIZE; name = "keep"; break;
    }
    setop("fallocate %s %s off=%" PRIu64 " len=%" PRIu64 " (size %" PRIu64 ")", f->path, name, off, len, f->size);
    if (fallocate(f->fd, mode, (off_t)off, (off_t)len) < 0)
        fail("fallocate: %s", strerror(errno));
    if (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE))
        model_zero(f, off, len);
    if (!(mode & FALLOC_FL_KEEP_SIZE) && off + len > f->size)
        model_resize(f, off + len);
    stats[2]++;
}

static void op_cfr(struct mfile *src, struct mfile *dst)
{
    uint64_t soff = rndn(5) ? rndn(src->size + 1) : rndn(MAX_OFF);
    uint64_t doff = pick_off(dst), len = rsize(MAX_IO);
    if (rndn(2)) {
        soff &= ~(BLK - 1);
        doff &= ~(BLK - 1);
        if (rndn(2)) len = (len + BLK - 1) & ~(BLK - 1);
    }
    setop("copy_file_range %s off=%" PRIu64 " -> %s off=%" PRIu64 " len=%" PRIu64 " (src size %" PRIu64 ")",
          src->path, soff, dst->path, doff, len, src->size);
    uint64_t done = 0;
    while (done < len) {
        off_t so = (off_t)(soff + done), dof = (off_t)(doff + done);
        ssize_t n = copy_file_range(src->fd, &so, dst->fd, &dof, len - done, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            fail("copy_file_range: %s", strerror(errno));
        }
        if (n == 0) break;
        uint64_t avail = soff + done >= src->size ? 0 : src->size - (soff + done);
        if ((uint64_t)n > avail)
            fail("copy_file_range copied %zd bytes but only %" PRIu64 " exist past the source offset", n, avail);
        if ((uint64_t)so != soff + done + (uint64_t)n || (uint64_t)dof != doff + done + (uint64_t)n)
            fail("copy_file_range offsets not advanced correctly");
        model_write(dst, doff + done, src->data + soff + done, (uint64_t)n);
        done += (uint64_t)n;
    }
    uint64_t expect = soff >= src->size ? 0 : (src->size - soff < len ? src->size - soff : len);
    if (done != expect)
        fail("copy_file_range copied %" PRIu64 " bytes in all, expected %" PRIu64, done, expect);
    stats[3]++;
}

static void op_fsync(struct mfile *f)
{
    int data = (int)rndn(2);
    setop("%s %s", data ? "fdatasync" : "fsync", f->path);
    if ((data ? fdatasync(f->fd) : fsync(f->fd)) < 0) fail("fsync: %s", strerror(errno));
    stats[4]++;
}

static void op_reopen(struct mfile *f)
{
    setop("close+reopen %s", f->path);
    if (close(f->fd) < 0) fail("close: %s", strerror(errno));
    xopen(f, O_RDWR);
    stats[5]++;
}

/* Close f, open it through the other mount, check it there, change it there or
 * not, close it, open it again here (--other-dir). */
static void op_other(struct mfile *f)
{
    char here[sizeof f->path];
    const char *base;
    uint64_t r = rndn(4);

    snprintf(here, sizeof here, "%s", f->path);
    base = strrchr(here, '/');
    setop("close %s for the other mount", f->path);
    if (close(f->fd) < 0) fail("close: %s", strerror(errno));
    if (snprintf(f->path, sizeof f->path, "%s/%s", other_dir, base ? base + 1 : here) >=
        (int)sizeof f->path)
        fail("the path in %s is too long", other_dir);
    setop("open %s (close-to-open)", f->path);
    f->fd = open(f->path, O_RDWR);
    if (f->fd < 0) fail("open(%s): %s", f->path, strerror(errno));
    check_size(f);
    if (r == 0) {
        setop("full-check %s (size %" PRIu64 ")", f->path, f->size);
        check_all(f);
    } else {
        uint64_t off = rndn(f->size + 1), len = rsize(MAX_IO);
        setop("read-check %s off=%" PRIu64 " len=%" PRIu64 " (size %" PRIu64 ")", f->path, off, len, f->size);
        check_range(f, off, len);
    }
    setop("seek-check %s (size %" PRIu64 ")", f->path, f->size);
    check_seek(f);
    if (r == 1)
        op_pwrite(f);
    else if (r == 2)
        op_falloc(f);
    else if (r == 3)
        op_truncate(f);
    check_size(f);
    setop("close %s", f->path);
    if (close(f->fd) < 0) fail("close(%s): %s", f->path, strerror(errno));
    snprintf(f->path, sizeof f->path, "%s", here);
    setop("open %s again (close-to-open)", f->path);
    xopen(f, O_RDWR);
    check_size(f);
    stats[9]++;
}

/* The files of snapshot name read as data[i] (size[i] bytes each). */
static void check_snapshot(const char *name, unsigned char *const *data, const uint64_t *size)
{
    char dirp[2048], path[4200];
    const char *at = strstr(snap_view, "%s");

    /* FMT with its %s replaced by name (not a format given to printf) */
    if (!at || snprintf(dirp, sizeof dirp, "%.*s%s%s", (int)(at - snap_view), snap_view, name,
                        at + 2) >= (int)sizeof dirp)
        fail("--snapshot-view needs one %%s, and a shorter path");
    for (int i = 0; i < nfiles; i++) {
        const char *base = strrchr(files[i].path, '/');
        struct stat st;
        uint64_t off = 0;
        int fd;

        if (snprintf(path, sizeof path, "%s/%s", dirp, base ? base + 1 : files[i].path) >=
            (int)sizeof path)
            fail("the path of snapshot %s is too long", name);
        setop("check snapshot %s: %s", name, path);
        fd = open(path, O_RDONLY);
        if (fd < 0) fail("open(%s): %s", path, strerror(errno));
        if (fstat(fd, &st) < 0) fail("fstat(%s): %s", path, strerror(errno));
        if ((uint64_t)st.st_size != size[i])
            fail("%s: st_size %jd, the files had %" PRIu64 " at the snapshot", path,
                 (intmax_t)st.st_size, size[i]);
        while (off < size[i]) {
            uint64_t len = size[i] - off < MAX_IO ? size[i] - off : MAX_IO;
            ssize_t n = pread(fd, rdbuf, len, (off_t)off);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) fail("pread(%s, off %" PRIu64 "): %s", path, off, n < 0 ? strerror(errno) : "short");
            for (ssize_t k = 0; k < n; k++)
                if (rdbuf[k] != data[i][off + (uint64_t)k])
                    fail("%s: differs at offset %" PRIu64 " (read 0x%02x, at the snapshot 0x%02x)",
                         path, off + (uint64_t)k, rdbuf[k], data[i][off + (uint64_t)k]);
            off += (uint64_t)n;
        }
        close(fd);
    }
}

/* A snapshot of the bundle, its files open (--snapshot-cmd). */
static void op_snapshot(void)
{
    char cmd[4200];
    unsigned char *data[MAXF];
    uint64_t size[MAXF];
    int st;

    snprintf(snap_last, sizeof snap_last, "s%" PRIu64, opno);
    snprintf(cmd, sizeof cmd, "%s %s", snap_cmd, snap_last);
    setop("snapshot: %s", cmd);
    fflush(stdout);
    st = system(cmd);
    if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail("the snapshot command failed (status %d)", st);
    for (int i = 0; i < nfiles; i++) {
        struct stat sb;

        data[i] = files[i].data;
        size[i] = files[i].size;
        /* a snapshot freezes a file: its name gets a new inode (vmbundlefs(5)) */
        if (stat(files[i].path, &sb) < 0) fail("stat(%s): %s", files[i].path, strerror(errno));
        files[i].ino = sb.st_ino;
    }
    check_snapshot(snap_last, data, size);
    for (int i = 0; i < nfiles; i++) {   /* kept for the check at the end */
        free(snap_data[i]);
        snap_data[i] = malloc(size[i] ? size[i] : 1);
        if (!snap_data[i]) fail("out of memory");
        memcpy(snap_data[i], data[i], size[i]);
        snap_size[i] = size[i];
    }
    stats[10]++;
}

static void op_remount(void)
{
    setop("remount (%s)", remount_cmd);
    for (int i = 0; i < nfiles; i++)
        if (close(files[i].fd) < 0) fail("close(%s): %s", files[i].path, strerror(errno));
    fflush(stdout);
    fflush(stderr);
    int st = system(remount_cmd);
    if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail("remount command failed (status %d)", st);
    for (int i = 0; i < nfiles; i++) {
        xopen(&files[i], O_RDWR);
        check_all(&files[i]);
        check_seek(&files[i]);
    }
    stats[6]++;
}

/* --existing: the model starts from the file's bytes as read now; its holes and
 * data (SEEK_DATA/SEEK_HOLE, st_blocks) must agree with them from the start. */
static void load_existing(struct mfile *f)
{
    struct stat st;

    setop("load %s", f->path);
    if (stat(f->path, &st) < 0) fail("stat(%s): %s", f->path, strerror(errno));
    if ((uint64_t)st.st_size > MAX_OFF)
        fail("%s has %jd bytes; --existing takes at most %llu", f->path, (intmax_t)st.st_size,
             (unsigned long long)MAX_OFF);
    f->ino = st.st_ino;
    xopen(f, O_RDWR);
    model_resize(f, (uint64_t)st.st_size);
    if (xpread(f, f->data, f->size, 0) != f->size) fail("%s: short read of its %" PRIu64 " bytes", f->path, f->size);
    check_size(f);
    check_seek(f);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--verbose")) { verbose = 1; continue; }
        if (!strcmp(a, "--check-blocks")) { check_blocks = 1; continue; }
        if (!strcmp(a, "--existing")) { existing = 1; continue; }
        if (!v) { fprintf(stderr, "modeltest: %s needs a value\n", a); return 2; }
        if (!strcmp(a, "--seed")) seed = strtoull(v, NULL, 0);
        else if (!strcmp(a, "--ops")) nops = strtoull(v, NULL, 0);
        else if (!strcmp(a, "--files")) nfiles = atoi(v);
        else if (!strcmp(a, "--dir")) dir = v;
        else if (!strcmp(a, "--other-dir")) other_dir = v;
        else if (!strcmp(a, "--snapshot-cmd")) snap_cmd = v;
        else if (!strcmp(a, "--snapshot-view")) snap_view = v;
        else if (!strcmp(a, "--snapshot-every")) snap_every = strtoull(v, NULL, 0);
        else if (!strcmp(a, "--remount-cmd")) remount_cmd = v;
        else if (!strcmp(a, "--remount-every")) remount_every = strtoull(v, NULL, 0);
        else { fprintf(stderr, "modeltest: unknown option %s\n", a); return 2; }
        i++;
    }
    if (nfiles < 2 || nfiles > MAXF) { fprintf(stderr, "modeltest: --files must be 2..%d\n", MAXF); return 2; }
    if (remount_cmd && !remount_every) remount_every = nops / 8 > 500 ? nops / 8 : 500;
    if (snap_cmd && !snap_view) { fprintf(stderr, "modeltest: --snapshot-cmd needs --snapshot-view\n"); return 2; }
    if (snap_cmd && !snap_every) snap_every = nops / 6 > 1 ? nops / 6 : 1;
    rs = seed * 0x9E3779B97F4A7C15ULL + 0x1234567;
    if (!rs) rs = 1;
    iobuf = malloc(MAX_IO);
    rdbuf = malloc(MAX_IO);
    if (!iobuf || !rdbuf) return 1;
    printf("modeltest: seed=%" PRIu64 " ops=%" PRIu64 " files=%d dir=%s remount=%s every %" PRIu64 "\n",
           seed, nops, nfiles, dir, remount_cmd ? remount_cmd : "(none)", remount_every);
    fflush(stdout);
    for (int i = 0; i < nfiles; i++) {
        snprintf(files[i].path, sizeof files[i].path, "%s/model%d.img", dir, i);
        opno = 0;
        if (!existing) {
            setop("create %s", files[i].path);
            xopen(&files[i], O_RDWR | O_CREAT | O_TRUNC);
            continue;
        }
        load_existing(&files[i]);
    }
    for (opno = 1; opno <= nops; opno++) {
        struct mfile *f = &files[rndn((uint64_t)nfiles)];
        uint64_t r = rndn(100);
        if (remount_cmd && opno % remount_every == 0) {
            op_remount();
        } else if (snap_cmd && opno % snap_every == 0) {
            op_snapshot();
        } else if (r < 38) {
            op_pwrite(f);
        } else if (r < 46) {
            op_truncate(f);
        } else if (r < 62) {
            op_falloc(f);
        } else if (r < 74) {
            struct mfile *g = &files[rndn((uint64_t)nfiles)];
            while (g == f) g = &files[rndn((uint64_t)nfiles)];
            op_cfr(f, g);
        } else if (r < 80) {
            op_fsync(f);
        } else if (r < 84) {
            if (other_dir && rndn(2))
                op_other(f);
            else
                op_reopen(f);
        } else {
            uint64_t off = rndn(f->size + 64 * KiB), len = rsize(MAX_IO);
            setop("read-check %s off=%" PRIu64 " len=%" PRIu64 " (size %" PRIu64 ")", f->path, off, len, f->size);
            check_range(f, off, len);
            stats[7]++;
        }
        check_size(f);
        if (opno % 16 == 0) {
            struct mfile *g = &files[rndn((uint64_t)nfiles)];
            uint64_t off = rndn(g->size + 1), len = rsize(MAX_IO);
            setop("read-check %s off=%" PRIu64 " len=%" PRIu64 " (size %" PRIu64 ")", g->path, off, len, g->size);
            check_range(g, off, len);
        }
        if (opno % 64 == 0) {
            struct mfile *g = &files[rndn((uint64_t)nfiles)];
            setop("seek-check %s (size %" PRIu64 ")", g->path, g->size);
            check_seek(g);
            stats[8]++;
        }
        if (opno % 2500 == 0) {
            for (int i = 0; i < nfiles; i++) {
                setop("full-check %s (size %" PRIu64 ")", files[i].path, files[i].size);
                check_all(&files[i]);
            }
            printf("modeltest: %" PRIu64 " ops ok\n", opno);
            fflush(stdout);
        }
    }
    opno = nops;
    if (snap_last[0])
        check_snapshot(snap_last, snap_data, snap_size);
    for (int i = 0; i < nfiles; i++) {
        setop("final check %s (size %" PRIu64 ")", files[i].path, files[i].size);
        check_all(&files[i]);
        check_seek(&files[i]);
        if (close(files[i].fd) < 0) fail("close: %s", strerror(errno));
        free(files[i].data);
    }
    printf("modeltest: PASS seed=%" PRIu64 " ops=%" PRIu64 ": pwrite %" PRIu64 ", truncate %" PRIu64
           ", fallocate %" PRIu64 ", copy_file_range %" PRIu64 ", fsync %" PRIu64 ", reopen %" PRIu64
           ", remount %" PRIu64 ", read-check %" PRIu64 ", seek-check %" PRIu64
           ", through the other mount %" PRIu64 ", snapshot %" PRIu64 "\n",
           seed, nops, stats[0], stats[1], stats[2], stats[3], stats[4], stats[5], stats[6], stats[7], stats[8],
           stats[9], stats[10]);
    free(iobuf);
    free(rdbuf);
    return 0;
}
