/* fetch_curl.c - the curl multi engine of a fetcher: one multi handle runs the
 * transfers of every calling thread (connection reuse, HTTP/2 multiplexing, up to
 * max_inflight at once), with a share handle for DNS and TLS sessions. The multi
 * handle's own pool shares connections among its transfers (curl's
 * CURL_LOCK_DATA_CONNECT is for several multi or easy users; here there is one multi
 * per fetcher, driven by one thread at a time, so the share needs no connection lock).
 *
 * Who drives it (one thread at a time, e->driving under f->mu):
 *  - a caller that finds the engine idle (no transfer running or queued, nobody
 *    driving, none ended in the last VMB_CURL_SELF_IDLE_NS) drives it itself for its
 *    own transfer: a lone reader fetches in its own thread, with no hand-over to
 *    another thread and back (each a wake-up, which on a virtual machine's idle vCPU
 *    can cost more than the transfer of a chunk on loopback). Transfers queued
 *    meanwhile run too; when its own ends and others remain, it hands them to the
 *    engine thread;
 *  - else the engine thread (one per fetcher) drives, until no transfer is left; a
 *    caller queues its easy handle, wakes the driver and waits on its transfer's own
 *    semaphore for "done": a completion wakes its caller alone, and after the
 *    driver has let go of f->mu (so the caller does not wake only to wait for it).
 * The queue of transfers waiting for one of the max_inflight slots puts background
 * ones (readahead workers: vmb_fetch_set_background) behind all others, and they
 * leave VMB_CURL_FG_SLOTS slots to the others (a reader's fetch then starts at once
 * however much readahead runs); a freed slot is taken at once.
 * A cancel ends queued and running transfers at the driver's next turn
 * (vmb_curl_engine_wake wakes it).
 */
#include "config.h"
#include "remote/fetch_int.h"
#include "base/clock.h"

#include <errno.h>
#include <semaphore.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>

/* A caller drives its own transfer only after the engine has been idle this long. */
#define VMB_CURL_FG_SLOTS 2   /* slots background transfers leave to the others */
#define VMB_CURL_SELF_IDLE_NS 2000000u

struct xfer {
	CURL *easy;
	int bg;            /* a background transfer (vmb_fetch_set_background) */
	CURLcode code;
	int done;          /* 1: code is set; -1: ended by a cancel; under f->mu */
	sem_t sem;         /* posted once done is set, after f->mu is let go: the
			    * caller waits on it without f->mu (a condition variable
			    * signalled under f->mu woke it only to wait for f->mu) */
	struct xfer *next;
};

struct vmb_curl_engine {
	CURLM *multi;
	CURLSH *share;
	pthread_t thread;
	pthread_cond_t cv;        /* the engine thread's: work for it, or stop */
	int stop;                 /* under f->mu */
	int driving;              /* a thread drives the multi handle; under f->mu */
	uint64_t idle_since_ns;   /* when the last transfer ended (CLOCK_MONOTONIC); under
				     f->mu */
	struct xfer *queue;       /* waiting for a slot; under f->mu */
	struct xfer **tail;
	/* in the multi handle: the driver's; a new driver takes them over under f->mu */
	struct xfer *active;
	unsigned nactive;
	unsigned nactive_bg;      /* of them background ones */
	/* easy handles done with, for the next attempts (a handle keeps its receive
	 * buffer, warm: base/bufpool.h says why that matters); under f->mu */
	CURL *idle[VMB_CURL_IDLE_EASY];
	unsigned nidle;
	/* the share is used by the engine's transfers and by easy handles set up and
	 * cleaned up in the callers' threads: one lock per kind of shared data */
	pthread_mutex_t locks[CURL_LOCK_DATA_LAST];
};

static void share_lock(CURL *h, curl_lock_data d, curl_lock_access a, void *arg)
{
	struct vmb_curl_engine *e = arg;

	pthread_mutex_lock(&e->locks[(unsigned)d < CURL_LOCK_DATA_LAST ? d : 0]);
}

static void share_unlock(CURL *h, curl_lock_data d, void *arg)
{
	struct vmb_curl_engine *e = arg;

	pthread_mutex_unlock(&e->locks[(unsigned)d < CURL_LOCK_DATA_LAST ? d : 0]);
}

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc;

static void global_init(void)
{
	global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int vmb_curl_global(struct vmb_err *err)
{
	pthread_once(&global_once, global_init);
	if (global_rc != CURLE_OK)
		return vmb_err_set(err, ENOMEM, "cannot initialise libcurl: %s",
				   curl_easy_strerror(global_rc));
	return 0;
}

static void finish(struct vmb_fetcher *f, struct xfer *x, CURLcode code, int how)
{
	pthread_mutex_lock(&f->mu);
	x->code = code;
	x->done = how;
	pthread_mutex_unlock(&f->mu);
	sem_post(&x->sem);   /* x may be gone once its caller has the post */
}

/* Ends every transfer, queued or running, as cancelled. */
static void cancel_all(struct vmb_fetcher *f)
{
	struct vmb_curl_engine *e = f->eng;
	struct xfer *x, *next;

	for (x = e->active; x; x = next) {
		next = x->next;
		curl_multi_remove_handle(e->multi, x->easy);
		finish(f, x, CURLE_ABORTED_BY_CALLBACK, -1);
	}
	e->active = NULL;
	e->nactive = 0;
	e->nactive_bg = 0;
	pthread_mutex_lock(&f->mu);
	for (x = e->queue; x; x = next) {
		next = x->next;
		x->code = CURLE_ABORTED_BY_CALLBACK;
		x->done = -1;
		sem_post(&x->sem);   /* next was read before: x may be gone */
	}
	e->queue = NULL;
	e->tail = &e->queue;
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mu);
}

/* Queue x (under f->mu): a background one at the tail, any other before the first
 * background one (in order among themselves). */
static void enqueue(struct vmb_curl_engine *e, struct xfer *x)
{
	struct xfer **pp = &e->queue;

	if (!x->bg)
		while (*pp && !(*pp)->bg)
			pp = &(*pp)->next;
	else
		pp = e->tail;
	x->next = *pp;
	*pp = x;
	if (!x->next)
		e->tail = &x->next;
}

/* The calling thread's transfers are background ones (fetch.h). */
static __thread int background;

void vmb_fetch_set_background(int on)
{
	background = !!on;
}

/* The head of the queue can start now (under f->mu): a slot is free, and for a
 * background transfer one that is not among the VMB_CURL_FG_SLOTS kept for the
 * others (when there are more than twice as many slots). */
static int can_take(const struct vmb_fetcher *f)
{
	const struct vmb_curl_engine *e = f->eng;
	unsigned max = f->opts.max_inflight;

	if (!e->queue || e->nactive >= max)
		return 0;
	if (e->queue->bg && max > 2 * VMB_CURL_FG_SLOTS)
		return e->nactive_bg < max - VMB_CURL_FG_SLOTS;
	return 1;
}

/* Drive the multi handle until me is done, or (me NULL: the engine thread) until no
 * transfer is running or queued; or everything is cancelled. The thread holds the
 * role (e->driving) and not f->mu. SIGPIPE is blocked meanwhile: every transfer runs
 * with CURLOPT_NOSIGNAL (threads), so a write to a connection the peer closed must
 * give EPIPE, not kill the process; one raised meanwhile is taken before the mask is
 * restored. */
static void drive(struct vmb_fetcher *f, struct xfer *me)
{
	struct vmb_curl_engine *e = f->eng;
	struct xfer *x, **pp;
	int running, left, stop, idle, done, slot;
	sigset_t pipe, old, pend;
	CURLMsg *m;

	sigemptyset(&pipe);
	sigaddset(&pipe, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe, &old);
	for (;;) {
		pthread_mutex_lock(&f->mu);
		stop = f->cancelled || e->stop;
		pthread_mutex_unlock(&f->mu);
		if (stop) {
			cancel_all(f);
			break;
		}
		/* take queued transfers while there are slots */
		pthread_mutex_lock(&f->mu);
		while (can_take(f)) {
			x = e->queue;
			e->queue = x->next;
			if (!e->queue)
				e->tail = &e->queue;
			x->next = e->active;
			e->active = x;
			e->nactive++;
			e->nactive_bg += (unsigned)x->bg;
			pthread_mutex_unlock(&f->mu);
			if (curl_multi_add_handle(e->multi, x->easy) != CURLM_OK) {
				e->active = x->next;
				e->nactive--;
				e->nactive_bg -= (unsigned)x->bg;
				finish(f, x, CURLE_OUT_OF_MEMORY, 1);
			}
			pthread_mutex_lock(&f->mu);
		}
		pthread_mutex_unlock(&f->mu);

		curl_multi_perform(e->multi, &running);
		while ((m = curl_multi_info_read(e->multi, &left))) {
			if (m->msg != CURLMSG_DONE)
				continue;
			for (pp = &e->active; *pp && (*pp)->easy != m->easy_handle; pp = &(*pp)->next)
				;
			if (!*pp)
				continue;
			x = *pp;
			*pp = x->next;
			e->nactive--;
			e->nactive_bg -= (unsigned)x->bg;   /* x is the caller's: not after finish */
			/* read m before removing: removal frees the message */
			{
				CURLcode code = m->data.result;

				curl_multi_remove_handle(e->multi, x->easy);
				finish(f, x, code, 1);
			}
		}
		pthread_mutex_lock(&f->mu);
		idle = !e->active && !e->queue;
		if (idle)
			e->idle_since_ns = vmb_now_ns();
		done = me ? me->done : idle;
		/* a slot freed by the transfers that just ended, and one queued for it:
		 * take it now (the poll would wait for the next event of a running
		 * transfer, or a whole timeout when none is left) */
		slot = can_take(f);
		pthread_mutex_unlock(&f->mu);
		if (done)
			break;
		if (slot)
			continue;
		curl_multi_poll(e->multi, NULL, 0, 1000, NULL);
	}
	if (!sigismember(&old, SIGPIPE) && sigpending(&pend) == 0 &&
	    sigismember(&pend, SIGPIPE)) {
		struct timespec zero = { 0, 0 };

		sigtimedwait(&pipe, NULL, &zero);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* The engine thread: drives while transfers are left to it. */
static void *engine_main(void *arg)
{
	struct vmb_fetcher *f = arg;
	struct vmb_curl_engine *e = f->eng;

	pthread_mutex_lock(&f->mu);
	for (;;) {
		while (!e->stop && (e->driving || (!e->active && !e->queue)))
			pthread_cond_wait(&e->cv, &f->mu);
		if (e->stop)
			break;
		e->driving = 1;
		pthread_mutex_unlock(&f->mu);
		drive(f, NULL);
		pthread_mutex_lock(&f->mu);
		e->driving = 0;
	}
	pthread_mutex_unlock(&f->mu);
	return NULL;
}

int vmb_curl_engine_start(struct vmb_fetcher *f, struct vmb_err *err)
{
	struct vmb_curl_engine *e;
	int rc, i;

	rc = vmb_curl_global(err);
	if (rc)
		return rc;
	e = calloc(1, sizeof(*e));
	if (!e)
		return vmb_err_set(err, ENOMEM, "cannot open '%s': out of memory", f->url);
	e->tail = &e->queue;
	pthread_cond_init(&e->cv, NULL);
	for (i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&e->locks[i], NULL);
	e->multi = curl_multi_init();
	e->share = curl_share_init();
	if (!e->multi || !e->share) {
		rc = vmb_err_set(err, ENOMEM, "cannot open '%s': out of memory (curl)", f->url);
		goto fail;
	}
	curl_share_setopt(e->share, CURLSHOPT_LOCKFUNC, share_lock);
	curl_share_setopt(e->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
	curl_share_setopt(e->share, CURLSHOPT_USERDATA, e);
	curl_share_setopt(e->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	curl_share_setopt(e->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
	curl_multi_setopt(e->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
	curl_multi_setopt(e->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)f->opts.max_inflight);
	curl_multi_setopt(e->multi, CURLMOPT_MAXCONNECTS, (long)f->opts.max_inflight);
	f->eng = e;
	rc = pthread_create(&e->thread, NULL, engine_main, f);
	if (rc) {
		f->eng = NULL;
		rc = vmb_err_sys(err, rc, "cannot open '%s': cannot start its fetch thread",
				 f->url);
		goto fail;
	}
	return 0;
fail:
	if (e->multi)
		curl_multi_cleanup(e->multi);
	if (e->share)
		curl_share_cleanup(e->share);
	for (i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&e->locks[i]);
	pthread_cond_destroy(&e->cv);
	free(e);
	return rc;
}

void vmb_curl_engine_wake(struct vmb_fetcher *f)
{
	if (f->eng)
		curl_multi_wakeup(f->eng->multi);
}

void vmb_curl_engine_stop(struct vmb_fetcher *f)
{
	struct vmb_curl_engine *e = f->eng;
	int i;

	if (!e)
		return;
	/* no call is in progress (fetch.h): nothing is queued or running */
	pthread_mutex_lock(&f->mu);
	e->stop = 1;
	pthread_cond_signal(&e->cv);
	pthread_mutex_unlock(&f->mu);
	curl_multi_wakeup(e->multi);
	pthread_join(e->thread, NULL);
	pthread_cond_destroy(&e->cv);
	while (e->nidle)
		curl_easy_cleanup(e->idle[--e->nidle]);   /* before the share's cleanup */
	curl_multi_cleanup(e->multi);
	curl_share_cleanup(e->share);
	for (i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&e->locks[i]);
	free(e);
	f->eng = NULL;
}

unsigned vmb_curl_engine_active(const struct vmb_fetcher *f)
{
	return f->eng->nactive;
}

CURL *vmb_curl_easy_get(struct vmb_fetcher *f)
{
	struct vmb_curl_engine *e = f->eng;
	CURL *easy = NULL;

	pthread_mutex_lock(&f->mu);
	if (e->nidle)
		easy = e->idle[--e->nidle];
	pthread_mutex_unlock(&f->mu);
	if (easy) {
		curl_easy_reset(easy);
		return easy;
	}
	return curl_easy_init();
}

void vmb_curl_easy_put(struct vmb_fetcher *f, CURL *easy)
{
	struct vmb_curl_engine *e = f->eng;

	if (!easy)
		return;
	pthread_mutex_lock(&f->mu);
	if (e->nidle < VMB_CURL_IDLE_EASY) {
		e->idle[e->nidle++] = easy;
		easy = NULL;
	}
	pthread_mutex_unlock(&f->mu);
	if (easy)
		curl_easy_cleanup(easy);
}

void vmb_curl_engine_share(struct vmb_fetcher *f, CURL *easy)
{
	curl_easy_setopt(easy, CURLOPT_SHARE, f->eng->share);
}

int vmb_curl_engine_run(struct vmb_fetcher *f, CURL *easy, CURLcode *code)
{
	struct vmb_curl_engine *e = f->eng;
	struct xfer x = { .easy = easy };
	int self;

	pthread_mutex_lock(&f->mu);
	if (f->cancelled || e->stop) {
		pthread_mutex_unlock(&f->mu);
		return -ECANCELED;
	}
	sem_init(&x.sem, 0, 0);
	/* an engine idle for a while: this thread drives its own transfer (see above).
	 * Transfers that keep coming (readahead, several readers) stay with the engine
	 * thread: a driver that leaves while others run hands them over, and the engine
	 * thread's wake-up is a gap for all of them. */
	self = !e->driving && !e->active && !e->queue &&
	       vmb_now_ns() - e->idle_since_ns >= VMB_CURL_SELF_IDLE_NS;
	x.bg = background;
	enqueue(e, &x);
	if (self) {
		e->driving = 1;
		f->st.own_thread++;
		pthread_mutex_unlock(&f->mu);
		drive(f, &x);
		pthread_mutex_lock(&f->mu);
		e->driving = 0;
		if (e->active || e->queue)
			pthread_cond_signal(&e->cv);   /* the rest is the engine thread's */
		pthread_mutex_unlock(&f->mu);
	} else {
		if (!e->driving)
			pthread_cond_signal(&e->cv);
		pthread_mutex_unlock(&f->mu);
		curl_multi_wakeup(e->multi);   /* a driver in curl_multi_poll takes it */
		/* x.done and x.code were set before the post (the semaphore orders
		 * them before this thread's reads) */
		while (sem_wait(&x.sem) < 0)
			;   /* EINTR (a signal handler ran): wait on */
	}
	sem_destroy(&x.sem);
	*code = x.code;
	return x.done < 0 ? -ECANCELED : 0;
}
