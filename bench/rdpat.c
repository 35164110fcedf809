/* rdpat: the read patterns of bench/remote.sh (built by it with cc; not part of the
 * build). Prints "BYTES SECONDS" on stdout; exits 1 naming the failure.
 *   rdpat first FILE OFF LEN        open, pread LEN bytes at OFF (time to first byte)
 *   rdpat seq FILE OFF LEN BS       read [OFF, OFF+LEN) sequentially in BS blocks
 *   rdpat list FILE LISTFILE        pread every "OFF LEN" line of LISTFILE, in order
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int rd(int fd, char *buf, uint64_t off, size_t len)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = pread(fd, buf + got, len - got, (off_t)(off + got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fprintf(stderr, "rdpat: pread at %" PRIu64 ": %s\n", off + got, strerror(errno));
			return -1;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return 0;
}

int main(int argc, char **argv)
{
	double t0;
	uint64_t total = 0;
	int fd;
	char *buf;

	if (argc < 3) {
		fprintf(stderr, "usage: rdpat first|seq|list FILE ...\n");
		return 2;
	}
	buf = malloc(16 << 20);
	if (!buf)
		return 1;
	t0 = now_s();
	fd = open(argv[2], O_RDONLY);
	if (fd < 0) {
		fprintf(stderr, "rdpat: open %s: %s\n", argv[2], strerror(errno));
		return 1;
	}
	if (!strcmp(argv[1], "first") && argc == 5) {
		uint64_t off = strtoull(argv[3], NULL, 0);
		size_t len = strtoull(argv[4], NULL, 0);
		if (len > (16 << 20) || rd(fd, buf, off, len) < 0)
			return 1;
		total = len;
	} else if (!strcmp(argv[1], "seq") && argc == 6) {
		uint64_t off = strtoull(argv[3], NULL, 0), len = strtoull(argv[4], NULL, 0);
		size_t bs = strtoull(argv[5], NULL, 0);
		if (bs == 0 || bs > (16 << 20))
			return 2;
		while (total < len) {
			size_t n = len - total < bs ? (size_t)(len - total) : bs;
			if (rd(fd, buf, off + total, n) < 0)
				return 1;
			total += n;
		}
	} else if (!strcmp(argv[1], "list") && argc == 4) {
		FILE *f = fopen(argv[3], "r");
		unsigned long long off, len;
		if (!f)
			return 1;
		while (fscanf(f, "%llu %llu", &off, &len) == 2) {
			if (len > (16 << 20) || rd(fd, buf, off, len) < 0)
				return 1;
			total += len;
		}
		fclose(f);
	} else {
		fprintf(stderr, "rdpat: bad arguments\n");
		return 2;
	}
	close(fd);
	printf("%" PRIu64 " %.6f\n", total, now_s() - t0);
	free(buf);
	return 0;
}
