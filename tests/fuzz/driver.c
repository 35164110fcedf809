/* driver.c - a main() for the fuzz targets without libFuzzer (see fuzz.h).
 *
 *   fuzz_X --seeds DIR               write the target's seed inputs into DIR
 *   fuzz_X [--mutate N] INPUT...     run each input (a file, or every file of a
 *                                    directory) through the target; with --mutate,
 *                                    also N mutations of each (bit flips, byte
 *                                    changes, cuts, repeats), from a fixed PRNG seed
 *                                    (VMB_SEED, default 1) so a failure replays
 *
 * A target that finds a bug aborts (and the sanitizers of the build report it);
 * exit 0 means every input ran. Before each mutated input, its bytes are written to
 * $VMB_FUZZ_LAST (when set), so a crash leaves the input behind. */
#include "config.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "fuzz.h"
#include "base/fdio.h"

#define FUZZ_MAX_INPUT (4u << 20)

static uint64_t prng = 1;
static unsigned long runs;

static uint64_t next_rand(void)
{
	prng ^= prng << 13;
	prng ^= prng >> 7;
	prng ^= prng << 17;
	return prng;
}

static int write_file(const char *path, const uint8_t *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (fd < 0 || vmb_write_full(fd, buf, len) < 0) {
		fprintf(stderr, "cannot write %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

static void run_one(const uint8_t *buf, size_t len)
{
	const char *last = getenv("VMB_FUZZ_LAST");

	if (last && *last)
		write_file(last, buf, len);
	LLVMFuzzerTestOneInput(buf, len);
	runs++;
}

/* One random change of buf (len bytes, room for cap) in place; returns the new length. */
static size_t mutate(uint8_t *buf, size_t len, size_t cap)
{
	size_t pos, n;

	switch (next_rand() % 6) {
	case 0:   /* flip a bit */
		if (len)
			buf[next_rand() % len] ^= (uint8_t)(1u << (next_rand() % 8));
		break;
	case 1:   /* an interesting byte */
		if (len) {
			static const uint8_t v[] = { 0, 1, 0x7f, 0x80, 0xff, '\n', ' ', '*' };
			buf[next_rand() % len] = v[next_rand() % sizeof(v)];
		}
		break;
	case 2:   /* cut the tail */
		if (len)
			len = next_rand() % len;
		break;
	case 3:   /* overwrite 8 bytes with a large or small integer */
		if (len >= 8) {
			uint64_t x = next_rand() % 2 ? ~UINT64_C(0) >> (next_rand() % 64) :
						       next_rand() % 4096;
			pos = next_rand() % (len - 7);
			memcpy(buf + pos, &x, 8);
		}
		break;
	case 4:   /* repeat a piece */
		if (len) {
			pos = next_rand() % len;
			n = next_rand() % (len - pos) + 1;
			if (len + n <= cap) {
				memmove(buf + pos + n, buf + pos, len - pos);
				len += n;
			}
		}
		break;
	default:  /* random bytes over a range */
		if (len) {
			pos = next_rand() % len;
			n = next_rand() % 16 + 1;
			for (; n && pos < len; n--, pos++)
				buf[pos] = (uint8_t)next_rand();
		}
		break;
	}
	return len;
}

static int run_file(const char *path, unsigned long mutations)
{
	uint8_t *buf, *work;
	size_t len = 0, wlen;
	unsigned long i;
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "cannot open %s: %s\n", path, strerror(errno));
		return -1;
	}
	buf = malloc(FUZZ_MAX_INPUT);
	work = malloc(2 * FUZZ_MAX_INPUT);
	if (!buf || !work) {
		close(fd);
		free(buf);
		free(work);
		return -1;
	}
	while (len < FUZZ_MAX_INPUT && (n = read(fd, buf + len, FUZZ_MAX_INPUT - len)) > 0)
		len += (size_t)n;
	close(fd);
	run_one(buf, len);
	for (i = 0; i < mutations; i++) {
		unsigned k, rounds = (unsigned)(next_rand() % 4) + 1;

		memcpy(work, buf, len);
		wlen = len;
		for (k = 0; k < rounds; k++)
			wlen = mutate(work, wlen, 2 * FUZZ_MAX_INPUT);
		run_one(work, wlen);
	}
	free(buf);
	free(work);
	return 0;
}

static int run_path(const char *path, unsigned long mutations)
{
	struct dirent **names;
	struct stat st;
	char sub[4096];
	int n, i, r = 0;

	if (stat(path, &st) < 0) {
		fprintf(stderr, "cannot stat %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode))
		return run_file(path, mutations);
	n = scandir(path, &names, NULL, alphasort);
	if (n < 0) {
		fprintf(stderr, "cannot list %s: %s\n", path, strerror(errno));
		return -1;
	}
	for (i = 0; i < n; i++) {
		if (names[i]->d_name[0] != '.' && r == 0) {
			snprintf(sub, sizeof(sub), "%s/%s", path, names[i]->d_name);
			r = run_file(sub, mutations);
		}
		free(names[i]);
	}
	free(names);
	return r;
}

static int write_seeds(const char *dir)
{
	char path[4096];
	uint8_t *buf;
	size_t len;
	unsigned i;

	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		fprintf(stderr, "cannot make %s: %s\n", dir, strerror(errno));
		return 1;
	}
	for (i = 0; vmb_fuzz_seed(i, &buf, &len); i++) {
		snprintf(path, sizeof(path), "%s/seed-%u", dir, i);
		if (write_file(path, buf, len) < 0) {
			free(buf);
			return 1;
		}
		free(buf);
	}
	if (i == 0) {
		fprintf(stderr, "the target has no seeds\n");
		return 1;
	}
	printf("%u seeds in %s\n", i, dir);
	return 0;
}

int main(int argc, char **argv)
{
	unsigned long mutations = 0;
	const char *seed = getenv("VMB_SEED");
	int i = 1;

	if (argc == 3 && !strcmp(argv[1], "--seeds"))
		return write_seeds(argv[2]);
	if (argc > 2 && !strcmp(argv[1], "--mutate")) {
		mutations = strtoul(argv[2], NULL, 10);
		i = 3;
	}
	if (i >= argc) {
		fprintf(stderr, "usage: %s --seeds DIR | [--mutate N] INPUT...\n", argv[0]);
		return 2;
	}
	if (seed && *seed)
		prng = strtoull(seed, NULL, 10) | 1;
	for (; i < argc; i++)
		if (run_path(argv[i], mutations) < 0)
			return 1;
	printf("%lu inputs ran\n", runs);
	return 0;
}
