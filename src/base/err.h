/* err.h - error reporting for libvmbundle.
 *
 * Every fallible function in src/ returns 0 (or a count) on success and -errno on
 * failure, and, when given a non-NULL struct vmb_err, leaves a message there for the
 * user that says what failed and on what, e.g.
 *   "cannot open 'mac14/disk.img': sidecar map is corrupt (bad checksum at offset 4096)".
 * A vmb_err is owned by the caller (usually on its stack); nothing in it is freed.
 */
#ifndef VMB_ERR_H
#define VMB_ERR_H

#include <stdarg.h>

#define VMB_ERR_MAX 512

struct vmb_err {
	int code;               /* positive errno of the last failure, 0 if none */
	char msg[VMB_ERR_MAX];  /* NUL-terminated message, "" if none */
};

/* Clear e (may be NULL). */
void vmb_err_clear(struct vmb_err *e);

/* Record a failure: e->code = code, e->msg = formatted text. Returns -code.
 * e may be NULL (then only the return value matters). */
int vmb_err_set(struct vmb_err *e, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* As vmb_err_set, and appends ": <strerror(code)>" to the message. */
int vmb_err_sys(struct vmb_err *e, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prefix an existing message: "<prefix>: <old message>". Returns -e->code
 * (or -EIO when e holds no code). e may be NULL. */
int vmb_err_prefix(struct vmb_err *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* A sink for messages that have no caller to return to (a map that could not be
 * persisted when the last handle closed, a file that failed to open while serving
 * a request). Owned by whoever embeds the library; fn must be thread-safe. */
struct vmb_log {
	void (*fn)(void *arg, const char *msg);
	void *arg;
};

/* Format and send a message to log (NULL log: stderr). */
void vmb_log_msg(const struct vmb_log *log, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* A limit on one kind of message that may come for every request (a change found
 * on each open of a file another mount keeps writing): at most VMB_LOG_BURST in a
 * minute; the first one after a minute with more says how many were left out. One
 * static struct per kind, VMB_RATELIMIT_INIT. */
#include <pthread.h>
#include <time.h>
#define VMB_LOG_BURST 10
struct vmb_ratelimit {
	pthread_mutex_t mu;
	time_t start;          /* CLOCK_MONOTONIC seconds: the minute's start */
	unsigned n, left_out;
};
#define VMB_RATELIMIT_INIT { PTHREAD_MUTEX_INITIALIZER, 0, 0, 0 }
void vmb_log_limited(const struct vmb_log *log, struct vmb_ratelimit *rl, const char *fmt,
		     ...) __attribute__((format(printf, 3, 4)));

#endif
