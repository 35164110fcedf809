/* vmbio: a multi-call helper for the integration tests.
 *
 * Every subcommand that performs a system call prints, on failure, the errno
 * name (e.g. "ENXIO") on stdout and exits 1, so shell tests can compare it.
 * Usage errors exit 2.  See usage() for the list of subcommands.
 *
 * FILL arguments: a decimal byte value 0..255 (every byte the same), or "pN"
 * (N a decimal seed >= 1): the byte at absolute file offset X is
 * pat_byte(N, X), never zero, so misplaced or lost data is detected.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/mman.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <linux/falloc.h>

#define BLK 4096ULL

static const char *ename(int e)
{
    const char *n = strerrorname_np(e);
    return n ? n : "E???";
}

/* Print the errno name of a failed call and exit 1. */
static void die_errno(const char *what)
{
    int e = errno;
    printf("%s\n", ename(e));
    fflush(stdout);
    fprintf(stderr, "vmbio: %s: %s\n", what, strerror(e));
    exit(1);
}

static void usage(void)
{
    fprintf(stderr,
        "usage: vmbio SUBCOMMAND ARGS...\n"
        "  map FILE                       data extents (SEEK_DATA/SEEK_HOLE) as 'OFF LEN'\n"
        "  mapsum FILE                    bytes of 4 KiB blocks touched by data extents\n"
        "  seek FILE OFF data|hole        result of lseek, or the errno name\n"
        "  falloc FILE MODE OFF LEN       MODE: 0 keep punch zero zero-keep\n"
        "  cfr SRC SOFF DST DOFF LEN      copy_file_range loop; prints bytes copied\n"
        "  rename2 OLD NEW noreplace|exchange|none\n"
        "  blocks FILE                    st_blocks\n"
        "  pwrite FILE OFF LEN FILL [sync] write (creating FILE if needed)\n"
        "  verify FILE OFF LEN FILL       check contents; prints ok or 'mismatch at X'\n"
        "  verify0 FILE OFF LEN FILL      same, but zero bytes are also accepted\n"
        "  truncate PATH SIZE             truncate(2) by path\n"
        "  mmapw FILE OFF LEN FILL        write through a shared mapping (msync)\n"
        "  fsync FILE\n"
        "  read FILE                      read everything; prints 'ok BYTES' or errno\n"
        "  create FILE | mkdir DIR | rmdir DIR | unlink FILE\n"
        "  mknod PATH fifo|sock|chr\n"
        "  symlink TARGET PATH | link OLD NEW | rename OLD NEW\n"
        "  stat PATH                      prints ok or the errno name\n"
        "  setxattr FILE NAME VALUE | getxattr FILE NAME | removexattr FILE NAME\n"
        "  listxattr FILE\n"
        "  cmpsparse A B                  compare two files using SEEK_DATA to skip common holes\n"
        "  sum FILE                       hash of the size and the non-zero blocks of data extents\n"
        "  mapcheck FILE                  read it all: every non-zero byte must be in a data extent\n"
        "  checkholes FILE                read samples of every hole; they must be zero\n"
        "  crashwrite LOG CHUNK STRIDE N FILE...   fsync'ed chunk writer\n"
        "  crashcheck LOG CHUNK STRIDE FILE...     verify after a crash\n"
        "  fill FILE CHUNK [nosync]       write pattern p7 (each chunk fsync'ed) until an error\n"
        "  ops FILE                       apply 'w OFF LEN FILL', 't SIZE', 'r OFF LEN', 's'\n"
        "                                 lines from stdin through one descriptor\n"
        "FILE may be fd:N: descriptor N inherited from the caller (its open file)\n");
    exit(2);
}

static unsigned long long num(const char *s)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || end == s || *end) {
        fprintf(stderr, "vmbio: bad number '%s'\n", s);
        exit(2);
    }
    return v;
}

/* ---- fill patterns ---- */

static inline unsigned char pat_byte(unsigned seed, uint64_t x)
{
    uint64_t h = (x >> 3) * 0x9E3779B97F4A7C15ULL + seed * 0xC2B2AE3D27D4EB4FULL;
    h ^= h >> 29;
    unsigned char b = (unsigned char)(h >> (8 * (x & 7)));
    return b ? b : (unsigned char)(seed | 1);
}

struct fill {
    int is_pat;
    unsigned seed;
    unsigned char byte;
};

static struct fill parse_fill(const char *s)
{
    struct fill f = {0};
    if (s[0] == 'p') {
        f.is_pat = 1;
        f.seed = (unsigned)num(s + 1);
        if (f.seed == 0) usage();
    } else {
        unsigned long long v = num(s);
        if (v > 255) usage();
        f.byte = (unsigned char)v;
    }
    return f;
}

static void fill_buf(unsigned char *buf, size_t len, uint64_t off, struct fill f)
{
    if (!f.is_pat) {
        memset(buf, f.byte, len);
        return;
    }
    for (size_t i = 0; i < len; i++)
        buf[i] = pat_byte(f.seed, off + i);
}

/* ---- I/O helpers ---- */

/* "fd:N" names descriptor N, inherited from the caller (a shell's exec 7<FILE):
 * the same open file, so the same handle of a mount; used through a dup. */
static int xopen(const char *path, int flags)
{
    if (!strncmp(path, "fd:", 3)) {
        int fd = dup((int)num(path + 3));
        if (fd < 0) die_errno(path);
        return fd;
    }
    int fd = open(path, flags, 0644);
    if (fd < 0) die_errno(path);
    return fd;
}

static void pwrite_all(int fd, const void *buf, size_t len, off_t off)
{
    const char *p = buf;
    while (len) {
        ssize_t n = pwrite(fd, p, len, off);
        if (n < 0) {
            if (errno == EINTR) continue;
            die_errno("pwrite");
        }
        if (n == 0) { errno = EIO; die_errno("pwrite returned 0"); }
        p += n; len -= (size_t)n; off += n;
    }
}

/* Returns bytes read (short only at EOF); exits on error. */
static size_t pread_all(int fd, void *buf, size_t len, off_t off)
{
    char *p = buf;
    size_t got = 0;
    while (got < len) {
        ssize_t n = pread(fd, p + got, len - got, off + (off_t)got);
        if (n < 0) {
            if (errno == EINTR) continue;
            die_errno("pread");
        }
        if (n == 0) break;
        got += (size_t)n;
    }
    return got;
}

static off_t fsize(int fd)
{
    struct stat st;
    if (fstat(fd, &st) < 0) die_errno("fstat");
    return st.st_size;
}

/* Iterate data extents.  Calls cb(off, len) for each. Returns 0. */
typedef void (*extent_cb)(off_t off, off_t len, void *arg);

static void for_each_extent(int fd, extent_cb cb, void *arg)
{
    off_t size = fsize(fd);
    off_t pos = 0;
    while (pos < size) {
        off_t d = lseek(fd, pos, SEEK_DATA);
        if (d < 0) {
            if (errno == ENXIO) break;
            die_errno("lseek SEEK_DATA");
        }
        off_t h = lseek(fd, d, SEEK_HOLE);
        if (h < 0) die_errno("lseek SEEK_HOLE");
        if (h <= d) {
            fprintf(stderr, "vmbio: SEEK_HOLE(%jd) = %jd <= data offset\n", (intmax_t)d, (intmax_t)h);
            printf("EBADSEEK\n");
            exit(1);
        }
        cb(d, h - d, arg);
        pos = h;
    }
}

static void print_extent(off_t off, off_t len, void *arg)
{
    (void)arg;
    printf("%jd %jd\n", (intmax_t)off, (intmax_t)len);
}

static void sum_extent(off_t off, off_t len, void *arg)
{
    uint64_t *sum = arg;
    uint64_t a = (uint64_t)off & ~(BLK - 1);
    uint64_t b = ((uint64_t)(off + len) + BLK - 1) & ~(BLK - 1);
    *sum += b - a;
}

/* ---- subcommands ---- */

static int cmd_map(int argc, char **argv)
{
    if (argc != 1) usage();
    int fd = xopen(argv[0], O_RDONLY);
    for_each_extent(fd, print_extent, NULL);
    close(fd);
    return 0;
}

static int cmd_mapsum(int argc, char **argv)
{
    if (argc != 1) usage();
    int fd = xopen(argv[0], O_RDONLY);
    uint64_t sum = 0;
    for_each_extent(fd, sum_extent, &sum);
    printf("%" PRIu64 "\n", sum);
    close(fd);
    return 0;
}

static int cmd_seek(int argc, char **argv)
{
    if (argc != 3) usage();
    int whence;
    if (!strcmp(argv[2], "data")) whence = SEEK_DATA;
    else if (!strcmp(argv[2], "hole")) whence = SEEK_HOLE;
    else usage();
    int fd = xopen(argv[0], O_RDONLY);
    off_t r = lseek(fd, (off_t)num(argv[1]), whence);
    if (r < 0) die_errno("lseek");
    printf("%jd\n", (intmax_t)r);
    close(fd);
    return 0;
}

static int cmd_falloc(int argc, char **argv)
{
    if (argc != 4) usage();
    int mode;
    const char *m = argv[1];
    if (!strcmp(m, "0")) mode = 0;
    else if (!strcmp(m, "keep")) mode = FALLOC_FL_KEEP_SIZE;
    else if (!strcmp(m, "punch")) mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
    else if (!strcmp(m, "zero")) mode = FALLOC_FL_ZERO_RANGE;
    else if (!strcmp(m, "zero-keep")) mode = FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
    else usage();
    int fd = xopen(argv[0], O_RDWR);
    if (fallocate(fd, mode, (off_t)num(argv[2]), (off_t)num(argv[3])) < 0)
        die_errno("fallocate");
    if (close(fd) < 0) die_errno("close");
    printf("ok\n");
    return 0;
}

static int cmd_cfr(int argc, char **argv)
{
    if (argc != 5) usage();
    int in = xopen(argv[0], O_RDONLY);
    int out = xopen(argv[2], O_WRONLY | O_CREAT);
    off_t soff = (off_t)num(argv[1]), doff = (off_t)num(argv[3]);
    uint64_t len = num(argv[4]), total = 0;
    while (len) {
        ssize_t n = copy_file_range(in, &soff, out, &doff, len > (1ULL << 30) ? (1ULL << 30) : len, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            die_errno("copy_file_range");
        }
        if (n == 0) break;
        total += (uint64_t)n;
        len -= (uint64_t)n;
    }
    if (close(out) < 0) die_errno("close");
    close(in);
    printf("%" PRIu64 "\n", total);
    return 0;
}

static int cmd_rename2(int argc, char **argv)
{
    if (argc != 3) usage();
    unsigned flags;
    if (!strcmp(argv[2], "noreplace")) flags = RENAME_NOREPLACE;
    else if (!strcmp(argv[2], "exchange")) flags = RENAME_EXCHANGE;
    else if (!strcmp(argv[2], "none")) flags = 0;
    else usage();
    if (renameat2(AT_FDCWD, argv[0], AT_FDCWD, argv[1], flags) < 0) die_errno("renameat2");
    printf("ok\n");
    return 0;
}

static int cmd_blocks(int argc, char **argv)
{
    if (argc != 1) usage();
    struct stat st;
    if (!strncmp(argv[0], "fd:", 3)) {   /* fstat through the caller's descriptor */
        if (fstat((int)num(argv[0] + 3), &st) < 0) die_errno(argv[0]);
    } else if (stat(argv[0], &st) < 0) {
        die_errno(argv[0]);
    }
    printf("%jd\n", (intmax_t)st.st_blocks);
    return 0;
}

static int cmd_pwrite(int argc, char **argv)
{
    if (argc != 4 && argc != 5) usage();
    int sync = argc == 5 && !strcmp(argv[4], "sync");
    if (argc == 5 && !sync) usage();
    uint64_t off = num(argv[1]), len = num(argv[2]);
    struct fill f = parse_fill(argv[3]);
    int fd = xopen(argv[0], O_WRONLY | O_CREAT);
    size_t bsz = 1 << 20;
    unsigned char *buf = malloc(bsz);
    if (!buf) abort();
    while (len) {
        size_t n = len < bsz ? (size_t)len : bsz;
        fill_buf(buf, n, off, f);
        pwrite_all(fd, buf, n, (off_t)off);
        off += n; len -= n;
    }
    free(buf);
    if (sync && fsync(fd) < 0) die_errno("fsync");
    if (close(fd) < 0) die_errno("close");
    printf("ok\n");
    return 0;
}

/* ops FILE: apply the operations read from stdin to FILE through one descriptor,
 * back to back: "w OFF LEN FILL" (pwrite), "t SIZE" (ftruncate), "r OFF LEN" (pread),
 * "s" (fsync). */
static int cmd_ops(int argc, char **argv)
{
    if (argc != 1) usage();
    int fd = xopen(argv[0], O_RDWR | O_CREAT);
    char line[256], op[8], fill[32];
    unsigned long long a, b;
    size_t cap = 0;
    unsigned char *buf = NULL;
    while (fgets(line, sizeof(line), stdin)) {
        int k = sscanf(line, "%7s %llu %llu %31s", op, &a, &b, fill);
        if (k < 1) continue;
        if (!strcmp(op, "w") && k == 4) {
            if (b > cap) { free(buf); cap = b; buf = malloc(cap); if (!buf) abort(); }
            fill_buf(buf, b, a, parse_fill(fill));
            pwrite_all(fd, buf, b, (off_t)a);
        } else if (!strcmp(op, "t") && k == 2) {
            if (ftruncate(fd, (off_t)a) < 0) die_errno("ftruncate");
        } else if (!strcmp(op, "r") && k == 3) {
            if (b > cap) { free(buf); cap = b; buf = malloc(cap); if (!buf) abort(); }
            pread_all(fd, buf, b, (off_t)a);
        } else if (!strcmp(op, "s") && k == 1) {
            if (fsync(fd) < 0) die_errno("fsync");
        } else {
            fprintf(stderr, "vmbio ops: bad line: %s", line);
            exit(2);
        }
    }
    free(buf);
    if (close(fd) < 0) die_errno("close");
    printf("ok\n");
    return 0;
}

/* mmapw FILE OFF LEN FILL: write through a MAP_SHARED mapping, msync. The
 * file must already be at least OFF+LEN long. */
static int cmd_mmapw(int argc, char **argv)
{
    if (argc != 4) usage();
    uint64_t off = num(argv[1]), len = num(argv[2]);
    struct fill f = parse_fill(argv[3]);
    int fd = xopen(argv[0], O_RDWR);
    long pg = sysconf(_SC_PAGESIZE);
    uint64_t moff = off & ~(uint64_t)(pg - 1), mlen = len + (off - moff);
    unsigned char *p = mmap(NULL, mlen, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)moff);
    if (p == MAP_FAILED) die_errno("mmap");
    fill_buf(p + (off - moff), len, off, f);
    if (msync(p, mlen, MS_SYNC) < 0) die_errno("msync");
    if (munmap(p, mlen) < 0) die_errno("munmap");
    if (close(fd) < 0) die_errno("close");
    printf("ok\n");
    return 0;
}

/* Returns -1 if ok, else the offset of the first mismatch.  Reads past EOF
 * count as a mismatch at EOF. */
static int64_t verify_fd(int fd, uint64_t off, uint64_t len, struct fill f, int zero_ok)
{
    size_t bsz = 1 << 20;
    unsigned char *buf = malloc(bsz), *want = malloc(bsz);
    if (!buf || !want) abort();
    int64_t bad = -1;
    while (len && bad < 0) {
        size_t n = len < bsz ? (size_t)len : bsz;
        size_t got = pread_all(fd, buf, n, (off_t)off);
        fill_buf(want, n, off, f);
        for (size_t i = 0; i < got; i++)
            if (buf[i] != want[i] && !(zero_ok && buf[i] == 0)) { bad = (int64_t)(off + i); break; }
        if (bad < 0 && got < n) bad = (int64_t)(off + got);
        off += n; len -= n;
    }
    free(buf); free(want);
    return bad;
}

static int cmd_verify(int argc, char **argv, int zero_ok)
{
    if (argc != 4) usage();
    int fd = xopen(argv[0], O_RDONLY);
    int64_t bad = verify_fd(fd, num(argv[1]), num(argv[2]), parse_fill(argv[3]), zero_ok);
    close(fd);
    if (bad >= 0) {
        printf("mismatch at %" PRId64 "\n", bad);
        return 1;
    }
    printf("ok\n");
    return 0;
}

static int cmd_fsync(int argc, char **argv)
{
    if (argc != 1) usage();
    int fd = xopen(argv[0], O_RDWR);
    if (fsync(fd) < 0) die_errno("fsync");
    if (close(fd) < 0) die_errno("close");
    printf("ok\n");
    return 0;
}

static int cmd_read(int argc, char **argv)
{
    if (argc != 1) usage();
    int fd = xopen(argv[0], O_RDONLY);
    size_t bsz = 1 << 20;
    char *buf = malloc(bsz);
    if (!buf) abort();
    uint64_t total = 0;
    for (;;) {
        ssize_t n = read(fd, buf, bsz);
        if (n < 0) { if (errno == EINTR) continue; die_errno("read"); }
        if (n == 0) break;
        total += (uint64_t)n;
    }
    free(buf);
    close(fd);
    printf("ok %" PRIu64 "\n", total);
    return 0;
}

static int ok_or_errno(int r, const char *what)
{
    if (r < 0) die_errno(what);
    printf("ok\n");
    return 0;
}

static int cmd_simple(const char *cmd, int argc, char **argv)
{
    if (!strcmp(cmd, "create")) {
        if (argc != 1) usage();
        int fd = open(argv[0], O_CREAT | O_EXCL | O_WRONLY, 0644);
        if (fd < 0) die_errno("open");
        return ok_or_errno(close(fd), "close");
    }
    if (!strcmp(cmd, "truncate")) {
        if (argc != 2) usage();
        return ok_or_errno(truncate(argv[0], (off_t)num(argv[1])), "truncate");
    }
    if (!strcmp(cmd, "mkdir")) { if (argc != 1) usage(); return ok_or_errno(mkdir(argv[0], 0755), "mkdir"); }
    if (!strcmp(cmd, "rmdir")) { if (argc != 1) usage(); return ok_or_errno(rmdir(argv[0]), "rmdir"); }
    if (!strcmp(cmd, "unlink")) { if (argc != 1) usage(); return ok_or_errno(unlink(argv[0]), "unlink"); }
    if (!strcmp(cmd, "symlink")) { if (argc != 2) usage(); return ok_or_errno(symlink(argv[0], argv[1]), "symlink"); }
    if (!strcmp(cmd, "link")) { if (argc != 2) usage(); return ok_or_errno(link(argv[0], argv[1]), "link"); }
    if (!strcmp(cmd, "rename")) { if (argc != 2) usage(); return ok_or_errno(rename(argv[0], argv[1]), "rename"); }
    if (!strcmp(cmd, "stat")) {
        if (argc != 1) usage();
        struct stat st;
        return ok_or_errno(lstat(argv[0], &st), "stat");
    }
    if (!strcmp(cmd, "mknod")) {
        if (argc != 2) usage();
        mode_t m;
        dev_t dev = 0;
        if (!strcmp(argv[1], "fifo")) m = S_IFIFO;
        else if (!strcmp(argv[1], "sock")) m = S_IFSOCK;
        else if (!strcmp(argv[1], "chr")) { m = S_IFCHR; dev = makedev(1, 3); }
        else usage();
        return ok_or_errno(mknod(argv[0], m | 0644, dev), "mknod");
    }
    if (!strcmp(cmd, "setxattr")) {
        if (argc != 3) usage();
        return ok_or_errno(lsetxattr(argv[0], argv[1], argv[2], strlen(argv[2]), 0), "setxattr");
    }
    if (!strcmp(cmd, "removexattr")) {
        if (argc != 2) usage();
        return ok_or_errno(lremovexattr(argv[0], argv[1]), "removexattr");
    }
    if (!strcmp(cmd, "getxattr")) {
        if (argc != 2) usage();
        char buf[65536];
        ssize_t n = lgetxattr(argv[0], argv[1], buf, sizeof buf);
        if (n < 0) die_errno("getxattr");
        printf("%.*s\n", (int)n, buf);
        return 0;
    }
    if (!strcmp(cmd, "listxattr")) {
        if (argc != 1) usage();
        char buf[65536];
        ssize_t n = llistxattr(argv[0], buf, sizeof buf);
        if (n < 0) die_errno("listxattr");
        for (ssize_t i = 0; i < n; i += (ssize_t)strlen(buf + i) + 1)
            printf("%s\n", buf + i);
        return 0;
    }
    usage();
    return 2;
}

/* ---- cmpsparse ---- */

struct extlist { off_t *v; size_t n, cap; };

static void collect_extent(off_t off, off_t len, void *arg)
{
    struct extlist *l = arg;
    if (l->n + 2 > l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->v = realloc(l->v, l->cap * sizeof *l->v);
        if (!l->v) abort();
    }
    l->v[l->n++] = off;
    l->v[l->n++] = off + len;
}

static int cmd_cmpsparse(int argc, char **argv)
{
    if (argc != 2) usage();
    int a = xopen(argv[0], O_RDONLY), b = xopen(argv[1], O_RDONLY);
    off_t sa = fsize(a), sb = fsize(b);
    if (sa != sb) {
        printf("size differs: %jd %jd\n", (intmax_t)sa, (intmax_t)sb);
        return 1;
    }
    struct extlist la = {0}, lb = {0};
    for_each_extent(a, collect_extent, &la);
    for_each_extent(b, collect_extent, &lb);
    /* Union of both lists: compare every range that is data in either. */
    size_t bsz = 1 << 20;
    unsigned char *ba = malloc(bsz), *bb = malloc(bsz);
    if (!ba || !bb) abort();
    uint64_t compared = 0;
    int rc = 0;
    for (int pass = 0; pass < 2 && !rc; pass++) {
        struct extlist *l = pass ? &lb : &la;
        for (size_t i = 0; i < l->n && !rc; i += 2) {
            off_t off = l->v[i], end = l->v[i + 1];
            while (off < end) {
                size_t n = (size_t)(end - off) < bsz ? (size_t)(end - off) : bsz;
                size_t ga = pread_all(a, ba, n, off), gb = pread_all(b, bb, n, off);
                if (ga != n || gb != n) {
                    printf("short read at %jd\n", (intmax_t)off);
                    rc = 1;
                    break;
                }
                if (memcmp(ba, bb, n)) {
                    for (size_t k = 0; k < n; k++)
                        if (ba[k] != bb[k]) { printf("differ at %jd\n", (intmax_t)(off + (off_t)k)); break; }
                    rc = 1;
                    break;
                }
                compared += n;
                off += (off_t)n;
            }
        }
    }
    free(ba); free(bb); free(la.v); free(lb.v);
    close(a); close(b);
    if (!rc) printf("same (%" PRIu64 " bytes compared)\n", compared);
    return rc;
}

/* ---- sum: a hash of size + data extents (offsets and bytes) ---- */

struct sumctx { int fd; uint64_t h; unsigned char *buf; };

static void sum_bytes(uint64_t *h, const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++) { *h ^= c[i]; *h *= 0x100000001b3ULL; }
}

static void sum_extent_cb(off_t off, off_t len, void *arg)
{
    struct sumctx *c = arg;
    /* Skip all-zero blocks so that the hash does not depend on how zeros
     * inside data extents are stored. */
    while (len > 0) {
        size_t n = len < (1 << 20) ? (size_t)len : (1 << 20);
        size_t got = pread_all(c->fd, c->buf, n, off);
        for (size_t b = 0; b < got; b += 4096) {
            size_t bn = got - b < 4096 ? got - b : 4096;
            size_t k = 0;
            while (k < bn && !c->buf[b + k]) k++;
            if (k == bn) continue;
            uint64_t o = (uint64_t)off + b;
            sum_bytes(&c->h, &o, sizeof o);
            sum_bytes(&c->h, c->buf + b, bn);
        }
        if (got < n) break;
        off += (off_t)n; len -= (off_t)n;
    }
}

static int cmd_sum(int argc, char **argv)
{
    if (argc != 1) usage();
    struct sumctx c = { .fd = xopen(argv[0], O_RDONLY), .h = 0xcbf29ce484222325ULL };
    c.buf = malloc(1 << 20);
    if (!c.buf) abort();
    uint64_t size = (uint64_t)fsize(c.fd);
    sum_bytes(&c.h, &size, sizeof size);
    for_each_extent(c.fd, sum_extent_cb, &c);
    free(c.buf);
    close(c.fd);
    printf("%016" PRIx64 "\n", c.h);
    return 0;
}

/* ---- mapcheck: every non-zero byte lies in a data extent; SEEK answers sane ---- */

static int cmd_mapcheck(int argc, char **argv)
{
    if (argc != 1) usage();
    int fd = xopen(argv[0], O_RDONLY);
    struct extlist l = {0};
    for_each_extent(fd, collect_extent, &l);
    off_t size = fsize(fd);
    unsigned char *buf = malloc(1 << 20);
    if (!buf) abort();
    int rc = 0;
    size_t e = 0;
    for (off_t off = 0; off < size && !rc;) {
        size_t n = size - off < (1 << 20) ? (size_t)(size - off) : (1 << 20);
        size_t got = pread_all(fd, buf, n, off);
        if (got < n) { printf("short read at %jd\n", (intmax_t)(off + (off_t)got)); rc = 1; break; }
        for (size_t i = 0; i < got; i++) {
            if (!buf[i]) continue;
            off_t x = off + (off_t)i;
            while (e < l.n && l.v[e + 1] <= x) e += 2;
            if (e >= l.n || x < l.v[e]) {
                printf("non-zero byte at %jd outside the data extents\n", (intmax_t)x);
                rc = 1;
                break;
            }
        }
        off += (off_t)n;
    }
    if (!rc && l.n && l.v[l.n - 1] > size) {
        printf("data extent ends at %jd past the size %jd\n", (intmax_t)l.v[l.n - 1], (intmax_t)size);
        rc = 1;
    }
    free(buf); free(l.v);
    close(fd);
    if (!rc) printf("ok\n");
    return rc;
}

/* ---- checkholes ---- */

static int check_zero(int fd, off_t off, off_t len, unsigned char *buf)
{
    while (len > 0) {
        size_t n = len < (1 << 20) ? (size_t)len : (1 << 20);
        size_t got = pread_all(fd, buf, n, off);
        for (size_t i = 0; i < got; i++)
            if (buf[i]) {
                printf("non-zero byte in a hole at %jd\n", (intmax_t)(off + (off_t)i));
                return 1;
            }
        if (got < n) { printf("short read at %jd\n", (intmax_t)(off + (off_t)got)); return 1; }
        off += (off_t)n; len -= (off_t)n;
    }
    return 0;
}

static int cmd_checkholes(int argc, char **argv)
{
    if (argc != 1) usage();
    int fd = xopen(argv[0], O_RDONLY);
    struct extlist l = {0};
    for_each_extent(fd, collect_extent, &l);
    off_t size = fsize(fd);
    unsigned char *buf = malloc(1 << 20);
    if (!buf) abort();
    int rc = 0, holes = 0;
    off_t prev = 0;
    for (size_t i = 0; i <= l.n && !rc; i += 2) {
        off_t hs = prev, he = i < l.n ? l.v[i] : size;
        if (i < l.n) prev = l.v[i + 1];
        if (he <= hs) continue;
        holes++;
        off_t len = he - hs, s = 65536;
        if (len <= 3 * s) { rc = check_zero(fd, hs, len, buf); continue; }
        rc = check_zero(fd, hs, s, buf)
          || check_zero(fd, he - s, s, buf)
          || check_zero(fd, (hs + len / 2) & ~(off_t)4095, s, buf);
    }
    free(buf); free(l.v);
    close(fd);
    if (!rc) printf("ok (%d holes)\n", holes);
    return rc;
}

/* ---- crash workload ---- */

/* Chunk i goes to file i % nf at offset (i / nf) * stride; its fill is pattern
 * p(fileindex+1). */
static int cmd_crashwrite(int argc, char **argv)
{
    if (argc < 5) usage();
    const char *logpath = argv[0];
    uint64_t chunk = num(argv[1]), stride = num(argv[2]), n = num(argv[3]);
    int nf = argc - 4;
    char **files = argv + 4;
    int *fds = calloc((size_t)nf, sizeof *fds);
    if (!fds) abort();
    for (int i = 0; i < nf; i++) fds[i] = xopen(files[i], O_RDWR | O_CREAT);
    int log = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (log < 0) die_errno(logpath);
    unsigned char *buf = malloc(chunk);
    if (!buf) abort();
    for (uint64_t i = 0; i < n; i++) {
        int fi = (int)(i % (uint64_t)nf);
        uint64_t off = (i / (uint64_t)nf) * stride;
        struct fill f = { .is_pat = 1, .seed = (unsigned)fi + 1 };
        fill_buf(buf, chunk, off, f);
        char line[64];
        int ll = snprintf(line, sizeof line, "writing %" PRIu64 "\n", i);
        if (write(log, line, (size_t)ll) != ll) die_errno("log");
        pwrite_all(fds[fi], buf, chunk, (off_t)off);
        if (fsync(fds[fi]) < 0) die_errno("fsync");
        ll = snprintf(line, sizeof line, "fsynced %" PRIu64 "\n", i);
        if (write(log, line, (size_t)ll) != ll) die_errno("log");
    }
    printf("done\n");
    return 0;
}

static int cmd_crashcheck(int argc, char **argv)
{
    if (argc < 4) usage();
    const char *logpath = argv[0];
    uint64_t chunk = num(argv[1]), stride = num(argv[2]);
    int nf = argc - 3;
    char **files = argv + 3;
    FILE *lf = fopen(logpath, "r");
    if (!lf) die_errno(logpath);
    int64_t last_synced = -1, last_started = -1;
    char line[128];
    while (fgets(line, sizeof line, lf)) {
        unsigned long long v;
        if (sscanf(line, "fsynced %llu", &v) == 1) {
            if ((int64_t)v != last_synced + 1) {
                printf("log out of order at %llu\n", v);
                return 1;
            }
            last_synced = (int64_t)v;
        } else if (sscanf(line, "writing %llu", &v) == 1) {
            last_started = (int64_t)v;
        }
    }
    fclose(lf);
    int rc = 0;
    for (int fi = 0; fi < nf && !rc; fi++) {
        int fd = xopen(files[fi], O_RDONLY);
        struct fill pat = { .is_pat = 1, .seed = (unsigned)fi + 1 };
        off_t size = fsize(fd);
        /* chunks of this file: i = k*nf + fi */
        uint64_t k;
        for (k = 0;; k++) {
            int64_t i = (int64_t)(k * (uint64_t)nf + (uint64_t)fi);
            uint64_t off = k * stride;
            if (i > last_started && (off_t)off >= size) break;
            int64_t bad;
            if (i <= last_synced) {
                bad = verify_fd(fd, off, chunk, pat, 0);
                if (bad >= 0) {
                    printf("%s: fsynced chunk %" PRId64 " (offset %" PRIu64 ") wrong at %" PRId64 "\n",
                           files[fi], i, off, bad);
                    rc = 1;
                    break;
                }
            } else if (i <= last_started) {
                /* in flight: pattern or zero, within the file size */
                uint64_t len = chunk;
                if ((off_t)off >= size) len = 0;
                else if ((off_t)(off + len) > size) len = (uint64_t)size - off;
                bad = verify_fd(fd, off, len, pat, 1);
                if (bad >= 0) {
                    printf("%s: in-flight chunk %" PRId64 " has garbage at %" PRId64 "\n", files[fi], i, bad);
                    rc = 1;
                    break;
                }
            } else {
                /* never written: must read as zero */
                struct fill z = {0};
                uint64_t len = chunk;
                if ((off_t)(off + len) > size) len = (uint64_t)size - off;
                bad = verify_fd(fd, off, len, z, 0);
                if (bad >= 0) {
                    printf("%s: chunk %" PRId64 " never written but has data at %" PRId64 "\n", files[fi], i, bad);
                    rc = 1;
                    break;
                }
            }
            /* the gap between chunks must be zero */
            if ((off_t)(off + chunk) < size) {
                struct fill z = {0};
                uint64_t gs = off + chunk, ge = off + stride;
                if ((off_t)ge > size) ge = (uint64_t)size;
                bad = verify_fd(fd, gs, ge - gs, z, 0);
                if (bad >= 0) {
                    printf("%s: gap after chunk %" PRId64 " not zero at %" PRId64 "\n", files[fi], i, bad);
                    rc = 1;
                    break;
                }
            }
        }
        if (rc) { close(fd); break; }
        /* The map must not claim data outside written chunk positions. */
        struct extlist l = {0};
        for_each_extent(fd, collect_extent, &l);
        for (size_t e = 0; e < l.n && !rc; e += 2) {
            uint64_t a = (uint64_t)l.v[e] & ~(BLK - 1), b = (uint64_t)l.v[e + 1];
            for (uint64_t blk = a; blk < b; blk += BLK) {
                uint64_t kk = blk / stride, in = blk % stride;
                int64_t i = (int64_t)(kk * (uint64_t)nf + (uint64_t)fi);
                if (in >= chunk || i > last_started) {
                    printf("%s: map claims data at %" PRIu64 " (extent %jd+%jd) that was never written\n",
                           files[fi], blk, (intmax_t)l.v[e], (intmax_t)(l.v[e + 1] - l.v[e]));
                    rc = 1;
                    break;
                }
            }
        }
        free(l.v);
        close(fd);
        if (!rc)
            printf("%s: ok (size %jd)\n", files[fi], (intmax_t)size);
    }
    if (!rc) printf("ok: %" PRId64 " chunks fsynced, %" PRId64 " started\n", last_synced + 1, last_started + 1);
    return rc;
}

/* ---- fill until error ---- */

static int cmd_fill(int argc, char **argv)
{
    if (argc != 2 && argc != 3) usage();
    int nosync = argc == 3 && !strcmp(argv[2], "nosync");
    if (argc == 3 && !nosync) usage();
    uint64_t chunk = num(argv[1]);
    int fd = xopen(argv[0], O_RDWR | O_CREAT | O_TRUNC);
    unsigned char *buf = malloc(chunk);
    if (!buf) abort();
    struct fill f = { .is_pat = 1, .seed = 7 };
    uint64_t off = 0;
    int err = 0;
    for (;;) {
        fill_buf(buf, chunk, off, f);
        size_t done = 0;
        while (done < chunk) {
            ssize_t n = pwrite(fd, buf + done, chunk - done, (off_t)(off + done));
            if (n < 0) { if (errno == EINTR) continue; err = errno; break; }
            if (n == 0) { err = EIO; break; }
            done += (size_t)n;
        }
        if (err) break;
        if (!nosync && fsync(fd) < 0) { err = errno; break; }
        off += chunk;
        if (off > (1ULL << 40)) break;
    }
    int cerr = close(fd) < 0 ? errno : 0;
    free(buf);
    printf("confirmed %" PRIu64 "\n", off);
    printf("error %s\n", err ? ename(err) : "none");
    printf("close %s\n", cerr ? ename(cerr) : "ok");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) usage();
    const char *c = argv[1];
    int n = argc - 2;
    char **a = argv + 2;
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (!strcmp(c, "map")) return cmd_map(n, a);
    if (!strcmp(c, "mapsum")) return cmd_mapsum(n, a);
    if (!strcmp(c, "seek")) return cmd_seek(n, a);
    if (!strcmp(c, "falloc")) return cmd_falloc(n, a);
    if (!strcmp(c, "cfr")) return cmd_cfr(n, a);
    if (!strcmp(c, "rename2")) return cmd_rename2(n, a);
    if (!strcmp(c, "blocks")) return cmd_blocks(n, a);
    if (!strcmp(c, "pwrite")) return cmd_pwrite(n, a);
    if (!strcmp(c, "verify")) return cmd_verify(n, a, 0);
    if (!strcmp(c, "mmapw")) return cmd_mmapw(n, a);
    if (!strcmp(c, "verify0")) return cmd_verify(n, a, 1);
    if (!strcmp(c, "fsync")) return cmd_fsync(n, a);
    if (!strcmp(c, "read")) return cmd_read(n, a);
    if (!strcmp(c, "cmpsparse")) return cmd_cmpsparse(n, a);
    if (!strcmp(c, "sum")) return cmd_sum(n, a);
    if (!strcmp(c, "mapcheck")) return cmd_mapcheck(n, a);
    if (!strcmp(c, "checkholes")) return cmd_checkholes(n, a);
    if (!strcmp(c, "crashwrite")) return cmd_crashwrite(n, a);
    if (!strcmp(c, "crashcheck")) return cmd_crashcheck(n, a);
    if (!strcmp(c, "fill")) return cmd_fill(n, a);
    if (!strcmp(c, "ops")) return cmd_ops(n, a);
    return cmd_simple(c, n, a);
}
