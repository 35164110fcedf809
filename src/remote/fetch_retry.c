/* fetch_retry.c - the retry policy (a pure function) and the retry loop that runs
 * one request over a struct vmb_transport, one call per attempt (see fetch.h). */
#include "config.h"
#include "remote/fetch_int.h"
#include "base/cancel.h"
#include "base/clock.h"

#include <errno.h>
#include <string.h>
#include <time.h>

long vmb_retry_delay_ms(int attempt, const struct vmb_fetch_opts *o, uint64_t rnd)
{
	uint64_t ceil = o->backoff_ms > 0 ? (uint64_t)o->backoff_ms : 0;
	uint64_t cap = o->backoff_max_ms > 0 ? (uint64_t)o->backoff_max_ms : 0;
	int i;

	for (i = 0; i < attempt && ceil < cap; i++)
		ceil *= 2;
	if (ceil > cap)
		ceil = cap;
	return (long)(rnd % (ceil + 1));
}

static const char *verb(enum vmb_fetch_op op)
{
	return op == VMB_FETCH_PUT ? "upload" : op == VMB_FETCH_HEAD ? "look up" : "fetch";
}

/* xorshift64*, under f->mu */
static uint64_t next_rand(struct vmb_fetcher *f)
{
	uint64_t x = f->rng;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	f->rng = x;
	return x * 0x2545f4914f6cdd1dull;
}

/* Sleeps DELAY ms unless the fetcher is cancelled: 0, or -ECANCELED; in hard mode,
 * -EINTR when this thread's request is (cancel.h: looked at every
 * VMB_CANCEL_POLL_MS). Under f->mu. */
static int backoff(struct vmb_fetcher *f, long delay)
{
	uint64_t end = vmb_now_ms() + (uint64_t)delay, until;
	int poll = f->opts.hard && vmb_cancel_current();
	struct timespec ts;

	while (!f->cancelled && vmb_now_ms() < end) {
		if (poll && vmb_cancel_requested())
			return -EINTR;
		until = end;
		if (poll && until > vmb_now_ms() + VMB_CANCEL_POLL_MS)
			until = vmb_now_ms() + VMB_CANCEL_POLL_MS;
		ts.tv_sec = (time_t)(until / 1000);
		ts.tv_nsec = (long)(until % 1000) * 1000000;
		pthread_cond_timedwait(&f->cv, &f->mu, &ts);
	}
	return f->cancelled ? -ECANCELED : 0;
}

ssize_t vmb_fetch_run(struct vmb_fetcher *f, struct vmb_fetch_req *req, struct vmb_err *err)
{
	struct vmb_err cause, prev = { 0 };   /* prev: the last transient failure */
	uint64_t t0 = vmb_now_ms(), last_log = 0;
	int attempt = 0, hard = f->opts.hard && !req->soft;
	ssize_t rc;
	long delay;

	for (;;) {
		int transient = 0;

		vmb_err_clear(&cause);
		rc = f->tp.attempt(f->tp.arg, req, &transient, &cause);
		if (rc >= 0)
			break;
		if (!cause.msg[0])
			vmb_err_set(&cause, (int)-rc, "%s", strerror((int)-rc));
		if (rc == -ECANCELED && !prev.msg[0])
			return vmb_err_set(err, ECANCELED, "cannot %s '%s': the fetcher is "
					   "closing", verb(req->op), req->url);
		if (rc == -ECANCELED)
			return vmb_err_set(err, ECANCELED, "cannot %s '%s': the fetcher is "
					   "closing (last error: %s)", verb(req->op), req->url,
					   prev.msg);
		if (!transient)
			return vmb_err_set(err, (int)-rc, "cannot %s '%s': %s", verb(req->op),
					   req->url, cause.msg);
		if (!hard && attempt >= f->opts.retries)
			return vmb_err_set(err, EIO, "cannot %s '%s': %s after %d attempt%s",
					   verb(req->op), req->url, cause.msg, attempt + 1,
					   attempt ? "s" : "");
		prev = cause;
		if (hard && vmb_cancel_requested())
			return vmb_err_set(err, EINTR, "cannot %s '%s': the reader was interrupted "
					   "while waiting for the network (hard mode; last error: "
					   "%s)", verb(req->op), req->url, cause.msg);
		pthread_mutex_lock(&f->mu);
		delay = vmb_retry_delay_ms(attempt, &f->opts, next_rand(f));
		f->st.retries++;
		vmb_fetch_note_error(f, req->url, cause.msg);
		if (hard && f->opts.log && vmb_now_ms() - last_log >= 60000) {
			last_log = vmb_now_ms();
			vmb_log_msg(f->opts.log, "%s '%s': %s; retrying until it works (hard "
				    "mode), %llu s so far", verb(req->op), req->url, cause.msg,
				    (unsigned long long)((last_log - t0) / 1000));
		}
		rc = backoff(f, delay);
		pthread_mutex_unlock(&f->mu);
		if (rc == -EINTR)
			return vmb_err_set(err, EINTR, "cannot %s '%s': the reader was interrupted "
					   "while waiting for the network (hard mode; last error: "
					   "%s)", verb(req->op), req->url, cause.msg);
		if (rc)
			return vmb_err_set(err, ECANCELED, "cannot %s '%s': the fetcher is "
					   "closing (last error: %s)", verb(req->op), req->url,
					   cause.msg);
		if (attempt < 1000)
			attempt++;
	}
	if (hard && f->opts.log && last_log)
		vmb_log_msg(f->opts.log, "%s '%s': works again after %llu s", verb(req->op),
			    req->url, (unsigned long long)((vmb_now_ms() - t0) / 1000));
	return rc;
}
