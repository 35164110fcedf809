/* rcmp: read a file the way a remote-image test needs, comparing every block with a
 * reference: correct bytes or EIO, never wrong bytes.
 *
 * usage: rcmp [-j THREADS] [-b BLOCK] [-s] [-r] [-n NBLOCKS] [-O OFFSET] FILE REF
 *   -j THREADS  readers in this process (default 1); reader t starts at block
 *               t * nblocks / THREADS and wraps around, so all read all of it
 *   -b BLOCK    bytes per read (default 65536)
 *   -O OFFSET   read from OFFSET only (default 0)
 *   -n NBLOCKS  read at most NBLOCKS blocks from OFFSET (default: to the end)
 *   -s          strict: an EIO is a failure too
 *   -r          reverse order (each reader reads its blocks from the last)
 * Prints "ok=N eio=N wrong=N err=N" (blocks, summed over the readers) and the first
 * wrong block; exits 0 when nothing was wrong (and, with -s, no EIO), else 1; 2 on
 * bad usage or when FILE's size differs from REF's.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *file, *ref;
static size_t block = 65536;
static uint64_t off0, nblocks, size;
static int threads = 1, reverse;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t n_ok, n_eio, n_wrong, n_err;
static char first_wrong[256];

static ssize_t rd(int fd, char *buf, size_t len, uint64_t off)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = pread(fd, buf + got, len - got, (off_t)(off + got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

static void *reader(void *arg)
{
	long t = (long)arg;
	int fd = open(file, O_RDONLY), rfd = open(ref, O_RDONLY);
	char *a = malloc(block), *b = malloc(block);
	uint64_t i, start = nblocks * (uint64_t)t / (uint64_t)threads;
	uint64_t ok = 0, eio = 0, wrong = 0, err = 0;

	if (fd < 0 || rfd < 0 || !a || !b) {
		fprintf(stderr, "rcmp: open: %s\n", strerror(errno));
		pthread_mutex_lock(&mu);
		n_err++;
		pthread_mutex_unlock(&mu);
		return NULL;
	}
	for (i = 0; i < nblocks; i++) {
		uint64_t k = (start + (reverse ? nblocks - 1 - i : i)) % nblocks;
		uint64_t off = off0 + k * block;
		size_t len = off + block > size ? (size_t)(size - off) : block;
		ssize_t n = rd(fd, a, len, off), m;
		if (n == -EIO) {
			eio++;
			continue;
		}
		if (n < 0) {
			err++;
			fprintf(stderr, "rcmp: read %s at %" PRIu64 ": %s\n", file, off, strerror((int)-n));
			continue;
		}
		m = rd(rfd, b, len, off);
		if (m != (ssize_t)len) {
			err++;
			continue;
		}
		if (n != (ssize_t)len || memcmp(a, b, len)) {
			wrong++;
			pthread_mutex_lock(&mu);
			if (!first_wrong[0]) {
				size_t j = 0;
				while (j < (size_t)n && j < len && a[j] == b[j])
					j++;
				snprintf(first_wrong, sizeof(first_wrong),
					 "first wrong block at %" PRIu64 ": %zd of %zu bytes read, first difference at +%zu",
					 off, n, len, j);
			}
			pthread_mutex_unlock(&mu);
			continue;
		}
		ok++;
	}
	close(fd);
	close(rfd);
	free(a);
	free(b);
	pthread_mutex_lock(&mu);
	n_ok += ok;
	n_eio += eio;
	n_wrong += wrong;
	n_err += err;
	pthread_mutex_unlock(&mu);
	return NULL;
}

int main(int argc, char **argv)
{
	int opt, strict = 0;
	uint64_t maxn = 0;
	struct stat sa, sb;
	pthread_t *th;
	long t;

	while ((opt = getopt(argc, argv, "j:b:sn:O:r")) != -1) {
		switch (opt) {
		case 'j': threads = atoi(optarg); break;
		case 'b': block = strtoull(optarg, NULL, 0); break;
		case 's': strict = 1; break;
		case 'n': maxn = strtoull(optarg, NULL, 0); break;
		case 'O': off0 = strtoull(optarg, NULL, 0); break;
		case 'r': reverse = 1; break;
		default: return 2;
		}
	}
	if (optind != argc - 2 || threads < 1 || threads > 256 || block == 0 || block > (64u << 20)) {
		fprintf(stderr, "usage: rcmp [-j THREADS] [-b BLOCK] [-s] [-r] [-n NBLOCKS] [-O OFFSET] FILE REF\n");
		return 2;
	}
	file = argv[optind];
	ref = argv[optind + 1];
	if (stat(file, &sa) < 0 || stat(ref, &sb) < 0) {
		fprintf(stderr, "rcmp: stat: %s\n", strerror(errno));
		return 2;
	}
	if (sa.st_size != sb.st_size) {
		printf("size %jd, reference %jd\n", (intmax_t)sa.st_size, (intmax_t)sb.st_size);
		return 2;
	}
	size = (uint64_t)sa.st_size;
	if (off0 >= size) {
		printf("ok=0 eio=0 wrong=0 err=0\n");
		return 0;
	}
	nblocks = (size - off0 + block - 1) / block;
	if (maxn && maxn < nblocks)
		nblocks = maxn;
	th = calloc((size_t)threads, sizeof(*th));
	if (!th)
		return 2;
	for (t = 0; t < threads; t++)
		if (pthread_create(&th[t], NULL, reader, (void *)t) != 0)
			return 2;
	for (t = 0; t < threads; t++)
		pthread_join(th[t], NULL);
	free(th);
	printf("ok=%" PRIu64 " eio=%" PRIu64 " wrong=%" PRIu64 " err=%" PRIu64 "\n", n_ok, n_eio, n_wrong, n_err);
	if (first_wrong[0])
		printf("%s\n", first_wrong);
	return (n_wrong || n_err || (strict && n_eio)) ? 1 : 0;
}
