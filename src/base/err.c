/* err.c - error messages kept for the user (see err.h). */
#include "config.h"
#include "base/err.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

void vmb_err_clear(struct vmb_err *e)
{
	if (!e)
		return;
	e->code = 0;
	e->msg[0] = '\0';
}

static void vformat(struct vmb_err *e, const char *fmt, va_list ap)
{
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
}

int vmb_err_set(struct vmb_err *e, int code, const char *fmt, ...)
{
	va_list ap;

	if (code < 0)
		code = -code;
	if (!e)
		return -code;
	e->code = code;
	va_start(ap, fmt);
	vformat(e, fmt, ap);
	va_end(ap);
	return -code;
}

int vmb_err_sys(struct vmb_err *e, int code, const char *fmt, ...)
{
	va_list ap;
	size_t n;

	if (code < 0)
		code = -code;
	if (!e)
		return -code;
	e->code = code;
	va_start(ap, fmt);
	vformat(e, fmt, ap);
	va_end(ap);
	n = strlen(e->msg);
	if (n < sizeof(e->msg))
		snprintf(e->msg + n, sizeof(e->msg) - n, ": %s", strerror(code));
	return -code;
}

int vmb_err_prefix(struct vmb_err *e, const char *fmt, ...)
{
	char old[VMB_ERR_MAX];
	va_list ap;
	size_t n;

	if (!e)
		return -EIO;
	if (!e->code)
		e->code = EIO;
	memcpy(old, e->msg, sizeof(old));
	va_start(ap, fmt);
	vformat(e, fmt, ap);
	va_end(ap);
	n = strlen(e->msg);
	if (old[0] && n < sizeof(e->msg))
		snprintf(e->msg + n, sizeof(e->msg) - n, ": %s", old);
	return -e->code;
}

/* A log line carries names that users chose (files, bundles): its control bytes
 * (other than newlines and tabs, which become spaces) are written as \xNN, so
 * that printing the log (vmbundlefs ls, status) sends no escape sequence to a
 * terminal. In place; what does not fit is cut. */
static void log_escape(char *buf, size_t size)
{
	char tmp[VMB_ERR_MAX + 64];
	size_t i, o = 0;

	for (i = 0; buf[i] && o + 5 < sizeof(tmp); i++) {
		unsigned char ch = (unsigned char)buf[i];

		if (ch == '\n' || ch == '\t' || ch == '\r')
			tmp[o++] = ' ';
		else if (ch < 0x20 || ch == 0x7f)
			o += (size_t)snprintf(tmp + o, sizeof(tmp) - o, "\\x%02x", ch);
		else
			tmp[o++] = (char)ch;
	}
	tmp[o] = '\0';
	snprintf(buf, size, "%s", tmp);
}

void vmb_log_msg(const struct vmb_log *log, const char *fmt, ...)
{
	char buf[VMB_ERR_MAX + 64];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	log_escape(buf, sizeof(buf));
	if (log && log->fn)
		log->fn(log->arg, buf);
	else
		fprintf(stderr, "vmbundlefs: %s\n", buf);
}

void vmb_log_limited(const struct vmb_log *log, struct vmb_ratelimit *rl, const char *fmt,
		     ...)
{
	char buf[VMB_ERR_MAX + 64];
	struct timespec now;
	unsigned left_out = 0;
	int say;
	va_list ap;

	clock_gettime(CLOCK_MONOTONIC, &now);
	pthread_mutex_lock(&rl->mu);
	if (!rl->start || now.tv_sec - rl->start >= 60) {
		left_out = rl->left_out;
		rl->start = now.tv_sec ? now.tv_sec : 1;
		rl->n = rl->left_out = 0;
	}
	say = rl->n < VMB_LOG_BURST;
	if (say)
		rl->n++;
	else
		rl->left_out++;
	pthread_mutex_unlock(&rl->mu);
	if (!say)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (left_out)
		vmb_log_msg(log, "%s (and %u more such messages in the last minute, not logged)",
			    buf, left_out);
	else
		vmb_log_msg(log, "%s", buf);
}
