/* cli_status.c - vmbundlefs status: the mounts of a store, their daemons, and the
 * last lines of the daemons' log (store/store_log.h). */
#include "config.h"
#include "cli/cli.h"
#include "store/store.h"
#include "store/store_log.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

static const char status_usage[] =
	"Usage: vmbundlefs status [-n LINES] STORE|MOUNTPOINT\n"
	"Show where STORE is mounted, the pid of each mount's daemon, its remote\n"
	"images' figures (cache size, hit ratio, transfers in flight, throughput,\n"
	"errors), and the last lines of the daemons' log (STORE/.vmbundlefs/log,\n"
	"readable by root only).\n"
	"  -n, --lines=N   how many log lines to show (default 10, 0: none)\n";

static unsigned long long stat_of(const char *text, const char *key)
{
	size_t l = strlen(key);
	const char *p = text;

	while (p && *p) {
		if (!strncmp(p, key, l) && p[l] == ' ')
			return strtoull(p + l + 1, NULL, 10);
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return 0;
}

/* The remote figures of the mount at mp (its root's user.vmbundlefs.remote). */
static void remote_status(const char *mp)
{
	char text[2048], *dir, *err;
	ssize_t n = getxattr(mp, "user.vmbundlefs.remote", text, sizeof(text) - 1);
	unsigned long long reads, hits, secs, bytes;

	if (n <= 0)
		return;
	text[n] = '\0';
	reads = stat_of(text, "remote_reads");
	hits = stat_of(text, "remote_hits");
	secs = stat_of(text, "remote_seconds");
	bytes = stat_of(text, "remote_fetch_bytes");
	if (!reads && !stat_of(text, "remote_errors") && !stat_of(text, "cache_bytes"))
		return;   /* no remote image read by this mount */
	dir = strstr(text, "cache_dir ");
	if (dir) {
		dir += 10;
		dir[strcspn(dir, "\n")] = '\0';
	}
	printf("  remote: cache %s: %llu bytes in %llu chunks; %llu chunk reads, hit ratio "
	       "%.1f%%; %llu fetches, %llu bytes fetched (%.1f MiB/s since mount); %llu in "
	       "flight, %llu queued for readahead; %llu bytes not yet durable; %llu errors\n",
	       dir ? dir : "?", stat_of(text, "cache_bytes"),
	       stat_of(text, "cache_chunks"), reads, reads ? 100.0 * (double)hits /
	       (double)reads : 0.0, stat_of(text, "remote_fetches"), bytes,
	       secs ? (double)bytes / (double)secs / 1048576.0 : 0.0,
	       stat_of(text, "remote_inflight"), stat_of(text, "remote_queued"),
	       stat_of(text, "cache_pending_bytes"), stat_of(text, "remote_errors"));
	err = strstr(dir ? dir + strlen(dir) + 1 : text, "remote_last_error ");
	if (err) {
		err += 18;
		err[strcspn(err, "\n")] = '\0';
		printf("  remote: last error: %s\n", err);
	}
}

/* The daemon of mount point mp: the last "mounted" line of the log that names it
 * (every line carries "vmbundlefs[PID] MOUNTPOINT: "). 0 when unknown. */
static long daemon_of(char **all, const char *mp)
{
	size_t i, mlen = strlen(mp);
	long pid = 0;

	for (i = 0; all && all[i]; i++) {
		const char *p = strstr(all[i], " vmbundlefs[");
		char *end;
		long v;

		if (!p)
			continue;
		v = strtol(p + 12, &end, 10);
		if (end[0] != ']' || end[1] != ' ' || strncmp(end + 2, mp, mlen) ||
		    strcmp(end + 2 + mlen, ": mounted"))
			continue;
		pid = v;
	}
	return pid;
}

int vmb_cli_status(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "lines", required_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 },
	};
	char *real = NULL, **tail = NULL, **all = NULL, *end;
	struct vmb_err err = { 0 };
	struct vmb_store s = { 0 };
	size_t ntail = 0, nall = 0, i, mounts = 0;
	unsigned long nlines = 10;
	int c, rc = VMB_EXIT_ERROR;
	struct vmb_cli_mount *mt = NULL;
	size_t nmt = 0;

	if (vmb_cli_common(argc, argv, status_usage))
		return VMB_EXIT_OK;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+n:", opts, NULL)) != -1) {
		if (c != 'n') {
			fputs(status_usage, stderr);
			return VMB_EXIT_USAGE;
		}
		errno = 0;
		nlines = strtoul(optarg, &end, 10);
		if (errno || !*optarg || *end || optarg[0] == '-' || nlines > 100000) {
			vmb_cli_error("--lines: '%s' is not a number of lines", optarg);
			return VMB_EXIT_USAGE;
		}
	}
	if (argc - optind != 1) {
		fputs(status_usage, stderr);
		return VMB_EXIT_USAGE;
	}
	if (vmb_store_open(&s, argv[optind], VMB_STORE_READ, &err) < 0) {
		/* a mount point: its store */
		char *st = vmb_cli_store_of(argv[optind]);

		if (!st || vmb_store_open(&s, st, VMB_STORE_READ, &err) < 0) {
			free(st);
			vmb_cli_store_error(argv[optind], err.code, "%s", err.msg);
			return VMB_EXIT_ERROR;
		}
		argv[optind] = st;   /* leaked on purpose: lives until exit */
	}
	real = realpath(argv[optind], NULL);
	if (!real) {
		vmb_cli_error("cannot resolve '%s': %s", argv[optind], strerror(errno));
		goto out;
	}
	for (end = real; *end; end++)   /* as the mount's fsname spells it */
		if (*end == ',' || *end == '\\')
			*end = '_';
	printf("store %s\n", argv[optind]);
	/* The whole log (all generations) names the daemons; the mounts come from the
	 * kernel. An unreadable log (not root) leaves the pids unknown. */
	if (vmb_store_log_tail(s.metafd, SIZE_MAX, &all, &nall, &err) < 0) {
		all = NULL;
		nall = 0;
	}
	(void)vmb_cli_mounts(&mt, &nmt, NULL);   /* unreadable: none listed */
	for (i = 0; i < nmt; i++) {
		const char *mp = mt[i].mp;
		long pid;

		if (strcmp(mt[i].source, real))
			continue;
		mounts++;
		pid = daemon_of(all, mp);
		if (pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM)) {
			printf("mounted on %s (daemon pid %ld)\n", mp, pid);
			remote_status(mp);
		}
		else if (pid > 0)
			printf("mounted on %s (daemon pid %ld is gone: unmount with "
			       "'fusermount3 -u %s')\n", mp, pid, mp);
		else
			printf("mounted on %s (daemon pid unknown)\n", mp);
	}
	free(mt);
	if (!mounts)
		printf("not mounted\n");
	rc = VMB_EXIT_OK;
	if (nlines == 0)
		goto out;
	if (vmb_store_log_tail(s.metafd, nlines, &tail, &ntail, &err) < 0) {
		vmb_cli_error("store '%s': %s", argv[optind], err.msg);
		rc = VMB_EXIT_ERROR;
		goto out;
	}
	if (ntail == 0) {
		printf("log %s/%s/%s: no messages\n", argv[optind], VMB_META_DIR,
		       VMB_STORE_LOG_FILE);
		goto out;
	}
	printf("log %s/%s/%s, last %zu lines:\n", argv[optind], VMB_META_DIR,
	       VMB_STORE_LOG_FILE, ntail);
	for (i = 0; i < ntail; i++)
		printf("  %s\n", tail[i]);
out:
	if (fflush(stdout) != 0)
		rc = VMB_EXIT_ERROR;
	vmb_store_log_free(tail);
	vmb_store_log_free(all);
	free(real);
	vmb_store_close(&s);
	return rc;
}
