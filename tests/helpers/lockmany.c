/* lockmany - many locks from one process, and lock latency (tests of the lock cap).
 *
 *   lockmany hog FILE N [hold|hammer]
 *       N POSIX write locks (F_SETLK) on distinct one-byte ranges of FILE (offsets
 *       0, 2, 4, ...); prints "hog ok A enolck B other C first_error E"; with hold,
 *       then prints "holding" and waits for a signal; with hammer, prints "holding"
 *       and goes on trying new ranges until killed.
 *   lockmany lat FILE ROUNDS PAIRS
 *       ROUNDS rounds of PAIRS lock/unlock pairs (F_SETLK of byte 0, then F_UNLCK),
 *       each pair timed: prints "round R median_us M" per round, then
 *       "lat median_us M" (the median of the round medians).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int setlk(int fd, short type, off_t start)
{
	struct flock fl;

	memset(&fl, 0, sizeof(fl));
	fl.l_type = type;
	fl.l_whence = SEEK_SET;
	fl.l_start = start;
	fl.l_len = 1;
	return fcntl(fd, F_SETLK, &fl) == 0 ? 0 : errno;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double now_us(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

int main(int argc, char **argv)
{
	int fd;

	if (argc < 4) {
		fprintf(stderr, "usage: lockmany hog FILE N [hold] | lat FILE ROUNDS PAIRS\n");
		return 2;
	}
	fd = open(argv[2], O_RDWR);
	if (fd < 0) {
		perror(argv[2]);
		return 1;
	}
	if (!strcmp(argv[1], "hog")) {
		long n = atol(argv[3]), i, ok = 0, nolck = 0, other = 0;
		int first = 0;
		for (i = 0; i < n; i++) {
			int e = setlk(fd, F_WRLCK, (off_t)i * 2);
			if (!e)
				ok++;
			else if (e == ENOLCK)
				nolck++;
			else
				other++;
			if (e && !first)
				first = e;
		}
		printf("hog ok %ld enolck %ld other %ld first_error %s\n", ok, nolck, other,
		       first ? strerror(first) : "none");
		fflush(stdout);
		if (argc > 4 && !strcmp(argv[4], "hold")) {
			printf("holding\n");
			fflush(stdout);
			pause();
		}
		if (argc > 4 && !strcmp(argv[4], "hammer")) {
			printf("holding\n");
			fflush(stdout);
			for (;; i++)
				setlk(fd, F_WRLCK, (off_t)i * 2);
		}
		return 0;
	}
	if (!strcmp(argv[1], "lat") && argc >= 5) {
		int rounds = atoi(argv[3]), pairs = atoi(argv[4]), r, j;
		double *t = calloc((size_t)pairs, sizeof(*t)), *med = calloc((size_t)rounds,
									   sizeof(*med));
		int rc = 0;

		if (!t || !med) {
			rc = 1;
			goto lat_out;
		}
		for (r = 0; r < rounds; r++) {
			for (j = 0; j < pairs; j++) {
				double t0 = now_us();
				if (setlk(fd, F_WRLCK, 0) || setlk(fd, F_UNLCK, 0)) {
					perror("lock");
					rc = 1;
					goto lat_out;
				}
				t[j] = now_us() - t0;
			}
			qsort(t, (size_t)pairs, sizeof(*t), cmp);
			med[r] = t[pairs / 2];
			printf("round %d median_us %.1f\n", r, med[r]);
		}
		qsort(med, (size_t)rounds, sizeof(*med), cmp);
		printf("lat median_us %.1f\n", med[rounds / 2]);
lat_out:
		free(t);
		free(med);
		return rc;
	}
	fprintf(stderr, "lockmany: unknown mode '%s'\n", argv[1]);
	return 2;
}
