/* fetchtool - drive a fetcher (src/remote/fetch.h) from the shell, for the tests.
 *
 *   fetchtool [options] URL get PATH [OFF LEN]    the object (or a range) to stdout
 *   fetchtool [options] URL head PATH             its size on stdout
 *   fetchtool [options] URL put PATH FILE         upload FILE's bytes as PATH
 *   fetchtool [options] URL many PATH N THREADS   N whole gets from THREADS threads,
 *                                                 each compared with the first
 *   fetchtool [options] URL prio BGPATH NBG FGPATH  after a get of FGPATH alone,
 *                                                 NBG background threads get BGPATH
 *                                                 (vmb_fetch_set_background), then,
 *                                                 150 ms later, this thread gets
 *                                                 FGPATH; prints how many background
 *                                                 gets had ended when it returned
 * options: -c CAFILE  -e ENDPOINT  -r REGION  -n RETRIES  -H (hard)  -b BACKOFF_MS
 *          -l LOW_SPEED_TIME_S  -m MAX (bytes, default 64 MiB)  -v (stats on stderr)
 *          -k MS (another thread cancels the fetcher after MS milliseconds)
 *          -i N (max_inflight: transfers at once)
 * Exit status: 0, or the errno of the failure (its message on stderr); 99 for usage.
 */
#include "config.h"
#include "remote/fetch.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static struct vmb_fetcher *f;
static const char *mpath;
static size_t maxlen = 64u << 20;
static unsigned char *first;
static ssize_t first_len;
static int per_thread, bad;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static int fail(const struct vmb_err *err, ssize_t rc)
{
	fprintf(stderr, "fetchtool: %s\n", err->msg);
	return (int)-rc;
}

static long cancel_ms;

static void *canceller(void *arg)
{
	(void)arg;
	usleep((useconds_t)cancel_ms * 1000);
	vmb_fetcher_cancel(f);
	return NULL;
}

static void *many_main(void *arg)
{
	unsigned char *buf = malloc(maxlen);
	struct vmb_err err;
	int i;

	(void)arg;
	for (i = 0; buf && i < per_thread; i++) {
		ssize_t n = vmb_fetch_get(f, mpath, 0, 0, buf, maxlen, &err);

		if (n != first_len || memcmp(buf, first, (size_t)n)) {
			pthread_mutex_lock(&mu);
			if (n < 0)
				fprintf(stderr, "fetchtool: %s\n", err.msg);
			bad++;
			pthread_mutex_unlock(&mu);
		}
	}
	free(buf);
	return NULL;
}

static int bg_done;

static void *bg_main(void *arg)
{
	unsigned char *buf = malloc(maxlen);
	struct vmb_err err;
	ssize_t n;

	vmb_fetch_set_background(1);
	n = buf ? vmb_fetch_get(f, (const char *)arg, 0, 0, buf, maxlen, &err) : -ENOMEM;
	pthread_mutex_lock(&mu);
	if (n < 0) {
		fprintf(stderr, "fetchtool: background get: %s\n", err.msg);
		bad++;
	}
	bg_done++;
	pthread_mutex_unlock(&mu);
	free(buf);
	return NULL;
}

int main(int argc, char **argv)
{
	struct vmb_fetch_opts o;
	struct vmb_fetch_stats st;
	struct vmb_err err;
	int opt, verbose = 0, rc = 0;
	ssize_t n;

	vmb_fetch_opts_default(&o);
	pthread_t cth;

	while ((opt = getopt(argc, argv, "c:e:r:n:Hb:l:m:vk:i:")) != -1) {
		switch (opt) {
		case 'c': o.cafile = optarg; break;
		case 'e': o.endpoint = optarg; break;
		case 'r': o.region = optarg; break;
		case 'n': o.retries = atoi(optarg); break;
		case 'H': o.hard = 1; break;
		case 'b': o.backoff_ms = atol(optarg); o.backoff_max_ms = 4 * o.backoff_ms; break;
		case 'l': o.low_speed_time_s = atol(optarg); break;
		case 'm': maxlen = (size_t)atoll(optarg); break;
		case 'i': o.max_inflight = (unsigned)atoi(optarg); break;
		case 'v': verbose = 1; break;
		case 'k': cancel_ms = atol(optarg); break;
		default: return 99;
		}
	}
	if (argc - optind < 3)
		return 99;
	if (vmb_fetcher_open(argv[optind], &o, &f, &err))
		return fail(&err, -err.code);
	const char *cmd = argv[optind + 1], *path = argv[optind + 2];

	if (cancel_ms)
		pthread_create(&cth, NULL, canceller, NULL);

	if (!strcmp(cmd, "get")) {
		unsigned char *buf = malloc(maxlen);
		uint64_t off = 0;
		size_t len = 0;

		if (argc - optind >= 5) {
			off = strtoull(argv[optind + 3], NULL, 0);
			len = strtoull(argv[optind + 4], NULL, 0);
			if (len > maxlen)
				return 99;
		}
		n = buf ? vmb_fetch_get(f, path, off, len, buf, maxlen, &err) : -ENOMEM;
		if (n < 0)
			rc = fail(&err, n);
		else if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n)
			rc = EIO;
		free(buf);
	} else if (!strcmp(cmd, "head")) {
		uint64_t len = 0;

		n = vmb_fetch_head(f, path, &len, &err);
		if (n < 0)
			rc = fail(&err, n);
		else
			printf("%llu\n", (unsigned long long)len);
	} else if (!strcmp(cmd, "put") && argc - optind >= 4) {
		int fd = open(argv[optind + 3], O_RDONLY);
		struct stat sb;
		unsigned char *buf = NULL;

		if (fd < 0 || fstat(fd, &sb) || !(buf = malloc((size_t)sb.st_size + 1)) ||
		    read(fd, buf, (size_t)sb.st_size) != sb.st_size) {
			perror(argv[optind + 3]);
			rc = EIO;
		} else {
			n = vmb_fetch_put(f, path, buf, (size_t)sb.st_size, &err);
			if (n < 0)
				rc = fail(&err, n);
		}
		if (fd >= 0)
			close(fd);
		free(buf);
	} else if (!strcmp(cmd, "many") && argc - optind >= 5) {
		int nthreads = atoi(argv[optind + 4]), i;
		pthread_t th[64];

		mpath = path;
		first = malloc(maxlen);
		first_len = first ? vmb_fetch_get(f, path, 0, 0, first, maxlen, &err) : -ENOMEM;
		if (first_len < 0) {
			rc = fail(&err, first_len);
		} else {
			if (nthreads < 1 || nthreads > 64)
				return 99;
			per_thread = atoi(argv[optind + 3]) / nthreads;
			for (i = 0; i < nthreads; i++)
				pthread_create(&th[i], NULL, many_main, NULL);
			for (i = 0; i < nthreads; i++)
				pthread_join(th[i], NULL);
			if (bad) {
				fprintf(stderr, "fetchtool: %d gets failed or differed\n", bad);
				rc = EIO;
			}
		}
		free(first);
	} else if (!strcmp(cmd, "prio") && argc - optind >= 5) {
		int nbg = atoi(argv[optind + 3]), i, at;
		unsigned char *buf = malloc(maxlen);
		pthread_t th[64];

		if (nbg < 1 || nbg > 64 || !buf)
			return 99;
		/* first one get of FGPATH alone, as a mount's warm-up does: until a
		 * server's first answer, curl holds further transfers to it to see
		 * whether it multiplexes (CURLOPT_PIPEWAIT) */
		n = vmb_fetch_get(f, argv[optind + 4], 0, 0, buf, maxlen, &err);
		if (n < 0)
			return fail(&err, n);
		for (i = 0; i < nbg; i++)
			pthread_create(&th[i], NULL, bg_main, (void *)path);
		usleep(150000);
		n = vmb_fetch_get(f, argv[optind + 4], 0, 0, buf, maxlen, &err);
		pthread_mutex_lock(&mu);
		at = bg_done;
		pthread_mutex_unlock(&mu);
		if (n < 0)
			rc = fail(&err, n);
		else
			printf("%d\n", at);
		for (i = 0; i < nbg; i++)
			pthread_join(th[i], NULL);
		if (bad)
			rc = EIO;
		free(buf);
	} else {
		rc = 99;
	}
	if (verbose) {
		vmb_fetcher_stats(f, &st);
		fprintf(stderr, "stats: requests %llu bytes %llu retries %llu errors %llu "
			"own_thread %llu\n",
			(unsigned long long)st.requests, (unsigned long long)st.bytes,
			(unsigned long long)st.retries, (unsigned long long)st.errors,
			(unsigned long long)st.own_thread);
	}
	if (cancel_ms)
		pthread_join(cth, NULL);
	vmb_fetcher_close(f);
	return rc;
}
