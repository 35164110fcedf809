/* cli_log.c - where the CLI sends a user when a daemon's messages may explain an
 * error: the store's log (store/store_log.h), named in one place for every command,
 * and the recent problems of that log that `ls` shows. */
#include "config.h"
#include "cli/cli.h"
#include "store/store.h"
#include "store/store_log.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* 1 when dir has a store's metadata directory. */
static int is_store(const char *dir)
{
	char p[PATH_MAX];
	struct stat st;

	if (snprintf(p, sizeof(p), "%s/%s", dir, VMB_META_DIR) >= (int)sizeof(p))
		return 0;
	return lstat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

char *vmb_cli_store_of(const char *where)
{
	struct vmb_ctl_target t;
	char *s = NULL;

	if (is_store(where))
		return strdup(where);
	/* a path inside a mount: the mount's store (cli_ctl.c reads mountinfo) */
	if (vmb_cli_ctl_find(where, &t, NULL) < 0)
		return NULL;
	if (is_store(t.store)) {
		s = t.store;
		t.store = NULL;
	}
	vmb_cli_ctl_target_free(&t);
	return s;
}

int vmb_cli_log_path(const char *store, char *buf, size_t size)
{
	if (snprintf(buf, size, "%s/%s/%s", store, VMB_META_DIR, VMB_STORE_LOG_FILE) >=
	    (int)size)
		return -ENAMETOOLONG;
	return 0;
}

/* Failures a daemon's messages can explain: I/O errors and corrupt metadata, a busy
 * or locked store, a daemon that is gone or did not answer, a full filesystem. A
 * missing file, a bad name or a refused permission says all there is to say. */
int vmb_cli_log_explains(int code)
{
	switch (code) {
	case EIO: case EBUSY: case EAGAIN: case EUCLEAN: case EBADMSG: case EPROTO:
	case ESTALE: case ENOTCONN: case ECONNREFUSED: case ECONNRESET: case EPIPE:
	case ETIMEDOUT: case EDEADLK: case ENOLCK: case ENOSPC: case EDQUOT:
	case EMFILE: case ENFILE:
		return 1;
	default:
		return 0;
	}
}

void vmb_cli_log_hint(const char *where)
{
	char *store = vmb_cli_store_of(where), log[PATH_MAX];

	if (store && vmb_cli_log_path(store, log, sizeof(log)) == 0)
		vmb_cli_error("the daemons' messages may say why: 'vmbundlefs status %s' "
			      "shows the last lines of their log, %s", store, log);
	free(store);
}

void vmb_cli_store_error(const char *where, int code, const char *fmt, ...)
{
	va_list ap;

	fputs("vmbundlefs: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (where && vmb_cli_log_explains(code))
		vmb_cli_log_hint(where);
}

/* Lines every daemon writes in the normal course of things. */
static int routine(const char *msg)
{
	return !strcmp(msg, "mounted") || !strcmp(msg, "unmounted") ||
	       !strncmp(msg, "stopping on signal ", 19) || !strncmp(msg, "note: ", 6);
}

/* A line's time ("2026-12-01T16:50:01.123Z ...") and its message (after
 * "vmbundlefs[PID] MOUNTPOINT: "; mount points with ": " in them are rare and only
 * make a line look like a problem). 0 when the line has neither. */
static int parse_line(const char *line, time_t *when, const char **msg)
{
	struct tm tm;
	const char *p, *end;

	memset(&tm, 0, sizeof(tm));
	end = strptime(line, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!end)
		return 0;
	*when = timegm(&tm);
	p = strstr(end, " vmbundlefs[");
	if (!p || !(p = strchr(p + 12, ']')) || !(p = strstr(p, ": ")))
		return 0;
	*msg = p + 2;
	return 1;
}

void vmb_cli_log_recent(const char *store, int metafd, size_t show, long window)
{
	struct vmb_err err = { 0 };
	char **all = NULL, log[PATH_MAX];
	size_t n = 0, i, problems = 0, first;
	time_t now = time(NULL);

	/* The current log and its older generations hold at most a few MiB; a log
	 * that cannot be read (not root) shows nothing: ls works for everyone. */
	if (vmb_store_log_tail(metafd, SIZE_MAX, &all, &n, &err) < 0 || n == 0 ||
	    vmb_cli_log_path(store, log, sizeof(log)) < 0)
		goto out;
	first = n;
	for (i = n; i-- > 0;) {
		const char *msg;
		time_t when;

		if (!parse_line(all[i], &when, &msg))
			continue;
		if (when < now - window)
			break;
		if (routine(msg))
			continue;
		problems++;
		if (problems <= show)
			first = i;
	}
	if (!problems)
		goto out;
	fflush(stdout);
	fprintf(stderr, "vmbundlefs: the daemons' log %s has %zu message%s of the last "
		"%ld hours that may concern you; the last:\n", log, problems,
		problems == 1 ? "" : "s", window / 3600);
	for (i = first; i < n; i++) {
		const char *msg;
		time_t when;

		if (parse_line(all[i], &when, &msg) && !routine(msg))
			fprintf(stderr, "  %s\n", all[i]);
	}
	fprintf(stderr, "('vmbundlefs status %s' shows the mounts and the whole end of the "
		"log)\n", store);
out:
	vmb_store_log_free(all);
}
