/* lock.c - advisory locks mirrored onto backing files (see lock.h). */
#include "config.h"
#include "lock/lock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

struct range {
	uint64_t start, end;    /* inclusive; UINT64_MAX = to EOF and beyond */
	short type;             /* F_RDLCK or F_WRLCK */
};

struct vmb_lock_owner {
	struct vmb_lock_owner *next;
	uint64_t owner;         /* the kernel's lock owner id */
	const void *via;        /* the handle it was first used through */
	int fd;                 /* its own open file description of the backing file */
	pid_t pid;              /* last process that locked through it */
	char comm[VMB_COMM_MAX];
	struct range *r;        /* shadow of its byte-range locks */
	size_t n, cap;
	char flock_type;        /* 0, 'r' (LOCK_SH) or 'w' (LOCK_EX) */
	int busy;               /* calls using fd right now */
	int dead;               /* released: close when no longer busy */
	int closing;            /* its handle was flushed and may be released soon */
	int settled;            /* a conflict already waited the settle time for it */
	int strong;             /* taken by a caller who could write the file */
	int in_strong;          /* counted in ls->strong */
	unsigned long charged;  /* locks counted against charged_pid's cap */
	pid_t charged_pid;
	struct vmb_lock_budget *budget;   /* fd taken from it (for uid), or NULL */
	uid_t uid;
};

/* ---- per-process counts (the cap) ---------------------------------------------- */

#define PROC_BUCKETS 256

struct vmb_lock_proc {
	struct vmb_lock_proc *next;
	pid_t pid;
	unsigned long n;
	int warned;             /* its refusal was logged */
};

int vmb_lockenv_init(struct vmb_lockenv *env, unsigned long max)
{
	memset(env, 0, sizeof(*env));
	env->procs = calloc(PROC_BUCKETS, sizeof(*env->procs));
	if (!env->procs)
		return -ENOMEM;
	pthread_mutex_init(&env->mu, NULL);
	env->max = max;
	return 0;
}

void vmb_lockenv_destroy(struct vmb_lockenv *env)
{
	size_t i;

	if (!env->procs)
		return;
	for (i = 0; i < PROC_BUCKETS; i++) {
		struct vmb_lock_proc *p, *next;
		for (p = env->procs[i]; p; p = next) {
			next = p->next;
			free(p);
		}
	}
	free(env->procs);
	env->procs = NULL;
	pthread_mutex_destroy(&env->mu);
}

/* pid's entry (made when create). Caller holds env->mu. */
static struct vmb_lock_proc *proc_get(struct vmb_lockenv *env, pid_t pid, int create)
{
	struct vmb_lock_proc **pp = &env->procs[(unsigned)pid % PROC_BUCKETS], *p;

	for (p = *pp; p; p = p->next)
		if (p->pid == pid)
			return p;
	if (!create || !(p = calloc(1, sizeof(*p))))
		return NULL;
	p->pid = pid;
	p->next = *pp;
	*pp = p;
	return p;
}

static void proc_add(struct vmb_lockenv *env, pid_t pid, long delta)
{
	struct vmb_lock_proc **pp, *p;

	if (!env || !env->procs || !delta)
		return;
	pthread_mutex_lock(&env->mu);
	p = proc_get(env, pid, delta > 0);
	if (p) {
		p->n = delta < 0 && (unsigned long)-delta > p->n ? 0 : p->n + (unsigned long)delta;
		if (p->n == 0) {
			for (pp = &env->procs[(unsigned)pid % PROC_BUCKETS]; *pp != p;
			     pp = &(*pp)->next)
				;
			*pp = p->next;
			free(p);
		}
	}
	pthread_mutex_unlock(&env->mu);
}

unsigned long vmb_lockenv_count(struct vmb_lockenv *env, pid_t pid)
{
	struct vmb_lock_proc *p;
	unsigned long n = 0;

	if (!env || !env->procs)
		return 0;
	pthread_mutex_lock(&env->mu);
	p = proc_get(env, pid, 0);
	if (p)
		n = p->n;
	pthread_mutex_unlock(&env->mu);
	return n;
}

/* -ENOLCK (with a message, logged once per process) when pid already holds the cap. */
static int cap_check(struct vmb_lockenv *env, pid_t pid, const char *comm,
		     struct vmb_err *err)
{
	struct vmb_lock_proc *p;
	int over = 0, log = 0;

	if (!env || !env->procs || !env->max)
		return 0;
	pthread_mutex_lock(&env->mu);
	p = proc_get(env, pid, 0);
	if (p && p->n >= env->max) {
		over = 1;
		log = !p->warned;
		p->warned = 1;
	}
	pthread_mutex_unlock(&env->mu);
	if (!over)
		return 0;
	vmb_err_set(err, ENOLCK, "pid %ld (%s) holds %lu locks through this mount, the most "
		    "one process may hold (mount option lock_cap)", (long)pid, comm, env->max);
	if (log)
		vmb_log_msg(env->log, "refused a lock: pid %ld (%s) holds %lu locks through this "
			    "mount, the most one process may hold (mount option lock_cap); "
			    "further refusals of this process are not logged", (long)pid, comm,
			    env->max);
	return -ENOLCK;
}

void vmb_waitgraph_init(struct vmb_waitgraph *g)
{
	memset(g, 0, sizeof(*g));
	pthread_mutex_init(&g->mu, NULL);
}

void vmb_waitgraph_destroy(struct vmb_waitgraph *g)
{
	free(g->e);
	pthread_mutex_destroy(&g->mu);
}

/* Does following "waits for" edges from `from` reach `to`? Caller holds g->mu. */
static int reaches(struct vmb_waitgraph *g, uint64_t from, uint64_t to, size_t depth)
{
	size_t i;

	if (from == to)
		return 1;
	if (depth > g->n)
		return 0;
	for (i = 0; i < g->n; i++)
		if (g->e[i].waiter == from && reaches(g, g->e[i].holder, to, depth + 1))
			return 1;
	return 0;
}

/* Record that waiter waits for holder, unless that closes a cycle (-EDEADLK). */
static int wait_edge_add(struct vmb_waitgraph *g, uint64_t waiter, uint64_t holder)
{
	int r = 0;

	pthread_mutex_lock(&g->mu);
	if (reaches(g, holder, waiter, 0)) {
		r = -EDEADLK;
	} else {
		if (g->n == g->cap) {
			size_t nc = g->cap ? g->cap * 2 : 16;
			struct vmb_wait_edge *ne = realloc(g->e, nc * sizeof(*ne));
			if (!ne) {
				pthread_mutex_unlock(&g->mu);
				return 0;   /* no detection rather than no lock */
			}
			g->e = ne;
			g->cap = nc;
		}
		g->e[g->n].waiter = waiter;
		g->e[g->n].holder = holder;
		g->n++;
	}
	pthread_mutex_unlock(&g->mu);
	return r;
}

static void wait_edge_remove(struct vmb_waitgraph *g, uint64_t waiter, uint64_t holder)
{
	size_t i;

	pthread_mutex_lock(&g->mu);
	for (i = 0; i < g->n; i++) {
		if (g->e[i].waiter == waiter && g->e[i].holder == holder) {
			g->e[i] = g->e[--g->n];
			break;
		}
	}
	pthread_mutex_unlock(&g->mu);
}

void vmb_lockset_init(struct vmb_lockset *ls, uint64_t ino, int metafd,
		      struct vmb_waitgraph *wg)
{
	pthread_condattr_t ca;

	memset(ls, 0, sizeof(*ls));
	pthread_mutex_init(&ls->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&ls->released, &ca);
	pthread_condattr_destroy(&ca);
	ls->ino = ino;
	ls->metafd = metafd;
	ls->wg = wg;
}

static void owner_free(struct vmb_lock_owner *o)
{
	if (o->fd >= 0)
		close(o->fd);   /* the kernel drops its OFD and flock locks */
	if (o->budget)
		o->budget->give(o->budget->arg, o->uid);
	free(o->r);
	free(o);
}

static int holding(const struct vmb_lock_owner *o)
{
	return o->n || o->flock_type;
}

static void describe(const struct vmb_lock_owner *o, struct vmb_holder *h)
{
	memset(h, 0, sizeof(*h));
	h->pid = o->pid;
	memcpy(h->comm, o->comm, sizeof(h->comm));
	if (o->n) {
		h->type = o->r[0].type == F_WRLCK ? 'w' : 'r';
		h->start = o->r[0].start;
		h->end = o->r[0].end;
	} else {
		h->type = 'f';
		h->end = UINT64_MAX;
	}
}

/* Tell the registry who holds a lock on the file through this mount: I/O only when
 * the file starts or stops being locked, or the owner named stops. Caller holds mu. */
static void publish(struct vmb_lockset *ls)
{
	struct vmb_lock_owner *o;
	struct vmb_holder h;

	if (ls->published && holding(ls->published))
		return;
	for (o = ls->owners; o && !holding(o); o = o->next)
		;
	ls->published = o;
	if (!o) {
		if (ls->has_record)
			vmb_holders_publish(ls->metafd, ls->ino, NULL, 0, NULL);
		ls->has_record = 0;
		return;
	}
	describe(o, &h);
	/* the registry only names holders; the locks stand if it cannot be written */
	ls->has_record = vmb_holders_publish(ls->metafd, ls->ino, &h, 1, NULL) == 0;
}

/* After o's locks changed: keep the in-use count and o's charge against the cap
 * right. Caller holds mu. */
static void account(struct vmb_lockset *ls, struct vmb_lock_owner *o)
{
	int counts = holding(o) && o->strong;
	unsigned long charge = o->n + (o->flock_type != 0);

	if (counts != o->in_strong) {
		o->in_strong = counts;
		if (counts)
			ls->strong++;
		else
			ls->strong--;
		if (ls->env && ls->env->hold) {
			struct vmb_holder h;
			describe(o, &h);
			ls->env->hold(ls->env->arg, ls, &h, counts ? 1 : -1);
		}
	}
	if (o->charged_pid != o->pid || o->charged != charge) {
		if (o->charged)
			proc_add(ls->env, o->charged_pid, -(long)o->charged);
		if (charge)
			proc_add(ls->env, o->pid, (long)charge);
		o->charged = charge;
		o->charged_pid = o->pid;
	}
}

/* o holds nothing any more (its descriptor is closing or its locks were dropped). */
static void drop_all(struct vmb_lockset *ls, struct vmb_lock_owner *o)
{
	o->n = 0;
	o->flock_type = 0;
	account(ls, o);
}

void vmb_lockset_destroy(struct vmb_lockset *ls)
{
	struct vmb_lock_owner *o, *next;

	for (o = ls->owners; o; o = next) {
		next = o->next;
		drop_all(ls, o);
		owner_free(o);
	}
	ls->owners = NULL;
	ls->published = NULL;
	if (ls->has_record)
		vmb_holders_publish(ls->metafd, ls->ino, NULL, 0, NULL);
	ls->has_record = 0;
	pthread_cond_destroy(&ls->released);
	pthread_mutex_destroy(&ls->mu);
}

/* owner's entry for a call through handle via. The kernel's owner ids of OFD and
 * flock locks are the addresses of open files, and an address is reused as soon as
 * the file is freed: a new open can lock with the id of one that was closed but
 * whose RELEASE has not reached the daemon yet. An entry whose handle was flushed
 * (closing) therefore belongs to a call through another handle only by mistake: it
 * is skipped, and its locks stand until that RELEASE drops them. (A POSIX owner,
 * a process, that locks again through another descriptor after a close starts a
 * new entry too: the close dropped its POSIX locks.) Caller holds mu. */
static struct vmb_lock_owner *find(struct vmb_lockset *ls, uint64_t owner, const void *via)
{
	struct vmb_lock_owner *o;

	for (o = ls->owners; o; o = o->next)
		if (o->owner == owner && !(o->closing && !o->dead && o->via != via))
			return o;
	return NULL;
}

/* Find or make owner's entry. Caller holds mu. */
static int get_owner(struct vmb_lockset *ls, const char *proc_path, const void *via,
		     uint64_t owner, pid_t pid, int strong, struct vmb_lock_owner **out,
		     struct vmb_err *err)
{
	struct vmb_lock_owner *o = find(ls, owner, via);

	*out = NULL;   /* the callers' failure path looks at it */
	if (!o) {
		o = calloc(1, sizeof(*o));
		if (!o)
			return vmb_err_set(err, ENOMEM, "out of memory");
		if (ls->budget) {
			int r = ls->budget->take(ls->budget->arg, pid, &o->uid, err);
			if (r < 0) {
				free(o);
				return r;
			}
			o->budget = ls->budget;
		}
		o->fd = open(proc_path, O_RDWR | O_CLOEXEC);
		if (o->fd < 0 && (errno == EACCES || errno == EROFS || errno == EPERM))
			o->fd = open(proc_path, O_RDONLY | O_CLOEXEC);
		if (o->fd < 0) {
			int e = errno;
			if (o->budget)
				o->budget->give(o->budget->arg, o->uid);
			free(o);
			return vmb_err_sys(err, e, "cannot open the backing file to lock it");
		}
		o->owner = owner;
		o->via = via;
		o->next = ls->owners;
		ls->owners = o;
	}
	if (o->dead) {   /* a waiter of a released owner got its lock: keep it */
		o->dead = 0;
		o->via = via;
	}
	o->closing = 0;   /* in use again: not on its way out */
	o->settled = 0;
	if (pid > 0 && pid != o->pid) {
		o->pid = pid;
		vmb_comm_of(pid, o->comm);
	}
	if (strong && !o->strong) {
		o->strong = 1;
		account(ls, o);
	}
	*out = o;
	return 0;
}

/* Unlink and free o if it is dead and idle. Caller holds mu. */
static void reap(struct vmb_lockset *ls, struct vmb_lock_owner *o)
{
	struct vmb_lock_owner **pp;

	if (!o->dead || o->busy)
		return;
	for (pp = &ls->owners; *pp; pp = &(*pp)->next) {
		if (*pp == o) {
			*pp = o->next;
			drop_all(ls, o);
			if (ls->published == o)
				ls->published = NULL;
			owner_free(o);
			publish(ls);
			pthread_cond_broadcast(&ls->released);
			return;
		}
	}
}

/* A call failed before it used o: forget o if that call made it and it holds
 * nothing (an owner with no locks and no waiter is only kept while it holds). */
static void reap_if_empty(struct vmb_lockset *ls, struct vmb_lock_owner *o, int r)
{
	if (r < 0 && o && !holding(o) && !o->busy) {
		o->dead = 1;
		reap(ls, o);
	}
}

static uint64_t end_of(const struct flock *fl)
{
	if (fl->l_len == 0)
		return UINT64_MAX;
	return (uint64_t)fl->l_start + (uint64_t)fl->l_len - 1;
}

/* Record in the shadow that o now holds type on [s, e] (F_UNLCK: nothing there). */
static int shadow_set(struct vmb_lock_owner *o, short type, uint64_t s, uint64_t e)
{
	size_t i, j;

	/* Each existing range loses [s, e]: it may keep a head and a tail. */
	for (i = 0; i < o->n;) {
		struct range *r = &o->r[i];
		if (r->end < s || r->start > e) {
			i++;
			continue;
		}
		if (r->start < s && r->end > e) {   /* split in two */
			if (o->n == o->cap) {
				size_t nc = o->cap ? o->cap * 2 : 4;
				struct range *nr = realloc(o->r, nc * sizeof(*nr));
				if (!nr)
					return -ENOMEM;
				o->r = nr;
				o->cap = nc;
				r = &o->r[i];
			}
			o->r[o->n] = *r;
			o->r[o->n].start = e + 1;
			o->n++;
			r->end = s - 1;
			i++;
		} else if (r->start < s) {
			r->end = s - 1;
			i++;
		} else if (r->end > e) {
			r->start = e + 1;
			i++;
		} else {
			for (j = i; j + 1 < o->n; j++)
				o->r[j] = o->r[j + 1];
			o->n--;
		}
	}
	if (type == F_UNLCK)
		return 0;
	if (o->n == o->cap) {
		size_t nc = o->cap ? o->cap * 2 : 4;
		struct range *nr = realloc(o->r, nc * sizeof(*nr));
		if (!nr)
			return -ENOMEM;
		o->r = nr;
		o->cap = nc;
	}
	o->r[o->n].start = s;
	o->r[o->n].end = e;
	o->r[o->n].type = type;
	o->n++;
	return 0;
}

static int any_closing(struct vmb_lockset *ls)
{
	struct vmb_lock_owner *o;

	for (o = ls->owners; o; o = o->next)
		if (o->closing && !o->dead && !o->settled)
			return 1;
	return 0;
}

/* Caller holds mu. */
static int settle_locked(struct vmb_lockset *ls)
{
	struct timespec until;
	int waited = 0;

	if (!any_closing(ls))
		return 0;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_nsec += (long)VMB_LOCK_SETTLE_MS * 1000000L;
	until.tv_sec += until.tv_nsec / 1000000000L;
	until.tv_nsec %= 1000000000L;
	while (any_closing(ls)) {
		waited = 1;
		if (pthread_cond_timedwait(&ls->released, &ls->mu, &until) == ETIMEDOUT)
			break;
	}
	if (any_closing(ls)) {   /* still open after all (a dup'ed descriptor): stop
				  * waiting for it next time; it stays closing for find() */
		struct vmb_lock_owner *o;
		for (o = ls->owners; o; o = o->next)
			if (o->closing)
				o->settled = 1;
	}
	return waited;
}

int vmb_lock_settle(struct vmb_lockset *ls)
{
	int r;

	pthread_mutex_lock(&ls->mu);
	r = settle_locked(ls);
	pthread_mutex_unlock(&ls->mu);
	return r;
}

/* Wait in fcntl/flock until done or interrupted. Returns 0 or -errno. */
static int wait_call(int fd, int use_flock, int op, struct flock *k, struct vmb_lock_wait *w)
{
	int r = 0;

	w->waiting = 1;
	for (;;) {
		if (w->interrupted) {
			r = -EINTR;
			break;
		}
		if ((use_flock ? flock(fd, op) : fcntl(fd, F_OFD_SETLKW, k)) == 0)
			break;
		if (errno != EINTR) {
			r = -errno;
			break;
		}
	}
	w->waiting = 0;
	return r;
}

void vmb_lock_interrupt(struct vmb_lock_wait *w)
{
	int i;

	w->interrupted = 1;
	/* The signal may land just before the waiter enters the system call: repeat it
	 * until the waiter has left (bounded: a second). */
	for (i = 0; i < 1000 && w->waiting; i++) {
		pthread_kill(w->thread, w->signo);
		usleep(1000);
	}
}

/* The owner of this mount holding the lock that conflicts with k for owner self, or
 * 0 when the conflict is with someone else (or there is none). */
static uint64_t conflicting_owner(struct vmb_lockset *ls, int fd, const struct flock *want,
				  uint64_t self)
{
	struct vmb_lock_owner *o;
	struct flock k = *want;
	uint64_t s, e, found = 0;

	if (fcntl(fd, F_OFD_GETLK, &k) < 0 || k.l_type == F_UNLCK)
		return 0;
	s = (uint64_t)k.l_start;
	e = k.l_len == 0 ? UINT64_MAX : s + (uint64_t)k.l_len - 1;
	pthread_mutex_lock(&ls->mu);
	for (o = ls->owners; o && !found; o = o->next) {
		size_t i;
		if (o->owner == self)
			continue;
		for (i = 0; i < o->n; i++)
			if (o->r[i].start <= e && o->r[i].end >= s &&
			    (o->r[i].type == F_WRLCK || want->l_type == F_WRLCK)) {
				found = o->owner;
				break;
			}
	}
	pthread_mutex_unlock(&ls->mu);
	return found;
}

int vmb_lock_set(struct vmb_lockset *ls, const char *proc_path, const void *via,
		 uint64_t owner, pid_t pid, int strong, const struct flock *fl,
		 struct vmb_lock_wait *wait, struct vmb_err *err)
{
	struct vmb_lock_owner *o;
	struct flock k;
	int r;

	if (fl->l_type != F_RDLCK && fl->l_type != F_WRLCK && fl->l_type != F_UNLCK)
		return -EINVAL;
	if (fl->l_start < 0 || fl->l_len < 0)
		return -EINVAL;
	pthread_mutex_lock(&ls->mu);
	if (fl->l_type == F_UNLCK && !find(ls, owner, via)) {
		pthread_mutex_unlock(&ls->mu);
		return 0;
	}
	r = get_owner(ls, proc_path, via, owner, pid, strong, &o, err);
	if (r == 0 && fl->l_type != F_UNLCK)   /* at the cap only unlocks pass */
		r = cap_check(ls->env, o->pid, o->comm, err);
	if (r < 0) {
		reap_if_empty(ls, o, r);
		pthread_mutex_unlock(&ls->mu);
		return r;
	}
	o->busy++;
	pthread_mutex_unlock(&ls->mu);

	memset(&k, 0, sizeof(k));
	k.l_type = fl->l_type;
	k.l_whence = SEEK_SET;
	k.l_start = fl->l_start;
	k.l_len = fl->l_len;
	if (wait && fl->l_type != F_UNLCK) {
		uint64_t holder = ls->wg ? conflicting_owner(ls, o->fd, &k, owner) : 0;

		r = holder ? wait_edge_add(ls->wg, owner, holder) : 0;
		if (r == 0)
			r = wait_call(o->fd, 0, 0, &k, wait);
		if (holder && r != -EDEADLK)
			wait_edge_remove(ls->wg, owner, holder);
	} else {
		r = fcntl(o->fd, F_OFD_SETLK, &k) == 0 ? 0 : -errno;
	}
	if (r == -EAGAIN) {   /* the holder may just have closed: wait for its release */
		vmb_lock_settle(ls);
		r = fcntl(o->fd, F_OFD_SETLK, &k) == 0 ? 0 : -errno;
	}

	pthread_mutex_lock(&ls->mu);
	o->busy--;
	if (r == 0 && o->dead && fl->l_type != F_UNLCK) {
		o->dead = 0;   /* released while it waited, but the lock is now held */
		o->via = via;
	}
	if (r == 0) {
		if (shadow_set(o, fl->l_type, (uint64_t)fl->l_start, end_of(fl)) < 0)
			o->n = 0;   /* out of memory: forget the shadow, keep the lock */
		account(ls, o);
		publish(ls);
	}
	reap(ls, o);
	pthread_mutex_unlock(&ls->mu);
	return r;
}

int vmb_lock_flock(struct vmb_lockset *ls, const char *proc_path, const void *via,
		   uint64_t owner, pid_t pid, int strong, int op, struct vmb_lock_wait *wait,
		   struct vmb_err *err)
{
	struct vmb_lock_owner *o;
	int r;

	op &= ~LOCK_NB;
	if (op != LOCK_SH && op != LOCK_EX && op != LOCK_UN)
		return -EINVAL;
	pthread_mutex_lock(&ls->mu);
	if (op == LOCK_UN && !find(ls, owner, via)) {
		pthread_mutex_unlock(&ls->mu);
		return 0;
	}
	r = get_owner(ls, proc_path, via, owner, pid, strong, &o, err);
	if (r == 0 && op != LOCK_UN && !o->flock_type)
		r = cap_check(ls->env, o->pid, o->comm, err);
	if (r < 0) {
		reap_if_empty(ls, o, r);
		pthread_mutex_unlock(&ls->mu);
		return r;
	}
	o->busy++;
	pthread_mutex_unlock(&ls->mu);

	if (wait && op != LOCK_UN)
		r = wait_call(o->fd, 1, op, NULL, wait);
	else
		r = flock(o->fd, op | LOCK_NB) == 0 ? 0 : -errno;
	if (r == -EWOULDBLOCK) {
		vmb_lock_settle(ls);
		r = flock(o->fd, op | LOCK_NB) == 0 ? 0 : -errno;
	}
	if (r == -EWOULDBLOCK)
		r = -EAGAIN;

	pthread_mutex_lock(&ls->mu);
	o->busy--;
	if (r == 0 && o->dead && op != LOCK_UN) {
		o->dead = 0;
		o->via = via;
	}
	if (r == 0) {
		o->flock_type = op == LOCK_UN ? 0 : op == LOCK_EX ? 'w' : 'r';
		account(ls, o);
		publish(ls);
	}
	reap(ls, o);
	pthread_mutex_unlock(&ls->mu);
	return r;
}

int vmb_lock_get(struct vmb_lockset *ls, const char *proc_path, const void *via, uint64_t owner,
		 struct flock *fl, struct vmb_err *err)
{
	struct vmb_lock_owner *o, *other;
	struct vmb_holder h;
	struct flock k;
	int fd, own_fd = 0, r = 0;
	uint64_t s, e;

	if (fl->l_type != F_RDLCK && fl->l_type != F_WRLCK)
		return -EINVAL;
	pthread_mutex_lock(&ls->mu);
	o = find(ls, owner, via);
	if (o)
		o->busy++;
	pthread_mutex_unlock(&ls->mu);
	fd = o ? o->fd : -1;
	if (fd < 0) {
		fd = open(proc_path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return vmb_err_sys(err, errno, "cannot open the backing file to test a lock");
		own_fd = 1;
	}
	memset(&k, 0, sizeof(k));
	k.l_type = fl->l_type;
	k.l_whence = SEEK_SET;
	k.l_start = fl->l_start;
	k.l_len = fl->l_len;
	if (fcntl(fd, F_OFD_GETLK, &k) < 0) {
		r = vmb_err_sys(err, errno, "cannot test a lock");
	} else if (k.l_type != F_UNLCK) {
		vmb_lock_settle(ls);
		memset(&k, 0, sizeof(k));
		k.l_type = fl->l_type;
		k.l_whence = SEEK_SET;
		k.l_start = fl->l_start;
		k.l_len = fl->l_len;
		if (fcntl(fd, F_OFD_GETLK, &k) < 0)
			r = vmb_err_sys(err, errno, "cannot test a lock");
	}
	if (own_fd)
		close(fd);
	pthread_mutex_lock(&ls->mu);
	if (o) {
		o->busy--;
		reap(ls, o);
	}
	if (r == 0 && k.l_type != F_UNLCK) {
		/* Name the holder: an owner of this mount, another mount, or the kernel's
		 * own answer (a POSIX lock taken directly on the backing file). */
		s = (uint64_t)k.l_start;
		e = k.l_len == 0 ? UINT64_MAX : s + (uint64_t)k.l_len - 1;
		for (other = ls->owners; other; other = other->next) {
			size_t i;
			if (other == o)
				continue;
			for (i = 0; i < other->n; i++)
				if (other->r[i].start <= e && other->r[i].end >= s &&
				    (other->r[i].type == F_WRLCK || fl->l_type == F_WRLCK))
					break;
			if (i < other->n)
				break;
		}
		if (other)
			k.l_pid = other->pid;
		else if (k.l_pid <= 0 && (vmb_holders_find(ls->metafd, ls->ino, s, e, 1, &h) ||
					   vmb_holders_find(ls->metafd, ls->ino, 1, 0, 1, &h)))
			k.l_pid = h.pid;
	}
	pthread_mutex_unlock(&ls->mu);
	if (r == 0)
		*fl = k;
	return r;
}

void vmb_lock_flush(struct vmb_lockset *ls, const void *via, uint64_t owner)
{
	struct vmb_lock_owner *o;
	struct flock k;

	pthread_mutex_lock(&ls->mu);
	for (o = ls->owners; o; o = o->next)
		if (o->via == via && (o->n || o->flock_type)) {
			o->closing = 1;
			o->settled = 0;
		}
	/* POSIX semantics: any close by a process drops all its locks on the file
	 * (every entry of the owner id, whichever handle it went through). */
	for (o = ls->owners; o; o = o->next) {
		if (o->owner != owner || !o->n)
			continue;
		memset(&k, 0, sizeof(k));
		k.l_type = F_UNLCK;
		k.l_whence = SEEK_SET;
		fcntl(o->fd, F_OFD_SETLK, &k);
		o->n = 0;
		account(ls, o);
		publish(ls);
	}
	pthread_mutex_unlock(&ls->mu);
}

void vmb_lock_release(struct vmb_lockset *ls, const void *via)
{
	struct vmb_lock_owner *o, *next;
	int changed = 0;

	pthread_mutex_lock(&ls->mu);
	for (o = ls->owners; o; o = next) {
		next = o->next;
		if (o->via != via)
			continue;
		o->dead = 1;
		changed = 1;
		if (!o->busy) {
			reap(ls, o);
		} else {   /* a waiter still uses the fd: drop what it holds now */
			struct flock k;
			memset(&k, 0, sizeof(k));
			k.l_type = F_UNLCK;
			k.l_whence = SEEK_SET;
			fcntl(o->fd, F_OFD_SETLK, &k);
			flock(o->fd, LOCK_UN);
			drop_all(ls, o);
		}
	}
	if (changed) {
		publish(ls);
		pthread_cond_broadcast(&ls->released);
	}
	pthread_mutex_unlock(&ls->mu);
}

static int any(struct vmb_lockset *ls, struct vmb_holder *h, int strong_only)
{
	struct vmb_lock_owner *o;
	int found = 0;

	pthread_mutex_lock(&ls->mu);
	for (o = ls->owners; o && !found; o = o->next) {
		if (!holding(o) || (strong_only && !o->strong))
			continue;
		found = 1;
		if (h)
			describe(o, h);
	}
	pthread_mutex_unlock(&ls->mu);
	return found;
}

int vmb_lock_any(struct vmb_lockset *ls, struct vmb_holder *h)
{
	return any(ls, h, 0);
}

int vmb_lock_any_strong(struct vmb_lockset *ls, struct vmb_holder *h)
{
	return any(ls, h, 1);
}

int vmb_lock_strong_only_by(struct vmb_lockset *ls, pid_t pid, struct vmb_holder *h)
{
	struct vmb_lock_owner *o;
	int only = 1;

	pthread_mutex_lock(&ls->mu);
	for (o = ls->owners; o && only; o = o->next) {
		if (!holding(o) || !o->strong || o->pid == pid)
			continue;
		only = 0;
		if (h)
			describe(o, h);
	}
	pthread_mutex_unlock(&ls->mu);
	return only;
}

/* ---- the file moved to a new inode (a freeze or flatten, issue 10) --------------- */

/* Every owner idle (no call using its descriptor)? Caller holds mu. */
static struct vmb_lock_owner *busy_owner(struct vmb_lockset *ls)
{
	struct vmb_lock_owner *o;

	for (o = ls->owners; o && !o->busy; o = o->next)
		;
	return o;
}

/* Take o's locks (its shadow) on nfd. 0 or -errno. */
static int retake(const struct vmb_lock_owner *o, int nfd)
{
	size_t i;

	for (i = 0; i < o->n; i++) {
		struct flock k;
		memset(&k, 0, sizeof(k));
		k.l_type = o->r[i].type;
		k.l_whence = SEEK_SET;
		k.l_start = (off_t)o->r[i].start;
		k.l_len = o->r[i].end == UINT64_MAX ? 0 : (off_t)(o->r[i].end - o->r[i].start + 1);
		if (fcntl(nfd, F_OFD_SETLK, &k) < 0)
			return -errno;
	}
	if (o->flock_type && flock(nfd, (o->flock_type == 'w' ? LOCK_EX : LOCK_SH) | LOCK_NB) < 0)
		return -errno;
	return 0;
}

/* Wait (1 s at most) until no call uses an owner's descriptor. Caller holds mu. */
static int wait_idle(struct vmb_lockset *ls, struct vmb_err *err)
{
	struct vmb_lock_owner *o;
	int tries;

	/* A call using an owner's descriptor ends soon, unless it waits for a lock. */
	for (tries = 0; busy_owner(ls) && tries < 1000; tries++) {
		pthread_mutex_unlock(&ls->mu);
		usleep(1000);
		pthread_mutex_lock(&ls->mu);
	}
	o = busy_owner(ls);
	if (o)
		return vmb_err_set(err, EBUSY, "a lock call of process %ld (%s) is waiting on it",
				   (long)o->pid, o->comm);
	return 0;
}

int vmb_lockset_idle(struct vmb_lockset *ls, struct vmb_err *err)
{
	int r;

	pthread_mutex_lock(&ls->mu);
	r = wait_idle(ls, err);
	pthread_mutex_unlock(&ls->mu);
	return r;
}

int vmb_lockset_move_begin(struct vmb_lockset *ls, const char *proc_path, uint64_t new_ino,
			   struct vmb_lockmove *mv, struct vmb_err *err)
{
	struct vmb_lock_owner *o;
	size_t n = 0, i;
	int *nfd = NULL, r;

	memset(mv, 0, sizeof(*mv));
	pthread_mutex_lock(&ls->mu);
	r = wait_idle(ls, err);
	if (r < 0)
		goto fail;
	for (o = ls->owners; o; o = o->next)
		n++;
	nfd = malloc((n ? n : 1) * sizeof(*nfd));
	if (!nfd) {
		r = vmb_err_set(err, ENOMEM, "out of memory");
		goto fail;
	}
	/* Every lock taken on the new inode before any goes from the old one: a process
	 * using the store directly, or another mount, never sees the file unlocked. */
	for (i = 0, o = ls->owners; o; o = o->next, i++) {
		int mode = fcntl(o->fd, F_GETFL);
		nfd[i] = open(proc_path, (mode >= 0 && (mode & O_ACCMODE) == O_RDWR ? O_RDWR :
					  O_RDONLY) | O_CLOEXEC);
		if (nfd[i] < 0) {
			r = vmb_err_sys(err, errno, "cannot open the new backing file to take its "
					"locks again");
			break;
		}
		r = retake(o, nfd[i]);
		if (r < 0) {
			vmb_err_sys(err, -r, "cannot take the locks of process %ld (%s) again on "
				    "the new backing file", (long)o->pid, o->comm);
			close(nfd[i]);
			break;
		}
	}
	if (r < 0) {
		while (i-- > 0)
			close(nfd[i]);   /* the new inode's locks go; the old ones stand */
		goto fail;
	}
	mv->ls = ls;
	mv->nfd = nfd;
	mv->n = n;
	mv->new_ino = new_ino;
	return 0;   /* holding mu: no lock call starts until move_end */
fail:
	pthread_mutex_unlock(&ls->mu);
	free(nfd);
	return r;
}

void vmb_lockset_move_end(struct vmb_lockmove *mv, int commit)
{
	struct vmb_lockset *ls = mv->ls;
	struct vmb_lock_owner *o;
	uint64_t old_ino;
	size_t i;
	int had;

	if (!ls)
		return;
	if (!commit) {
		for (i = 0; i < mv->n; i++)
			close(mv->nfd[i]);   /* the new inode's locks go; the old ones stand */
		goto out;
	}
	old_ino = ls->ino;
	had = ls->has_record;
	ls->ino = mv->new_ino;
	ls->has_record = 0;
	ls->published = NULL;
	publish(ls);   /* the registry names the holder under the new inode first */
	if (had)
		vmb_holders_publish(ls->metafd, old_ino, NULL, 0, NULL);
	for (i = 0, o = ls->owners; o; o = o->next, i++) {
		close(o->fd);   /* the old inode's locks go */
		o->fd = mv->nfd[i];
	}
out:
	pthread_mutex_unlock(&ls->mu);
	free(mv->nfd);
	memset(mv, 0, sizeof(*mv));
}

int vmb_lockset_rebind(struct vmb_lockset *ls, const char *proc_path, uint64_t new_ino,
		       struct vmb_err *err)
{
	struct vmb_lockmove mv;
	int r;

	pthread_mutex_lock(&ls->mu);
	r = ls->ino == new_ino;   /* moved already (vmb_lockset_move_begin/_end) */
	pthread_mutex_unlock(&ls->mu);
	if (r)
		return 0;
	r = vmb_lockset_move_begin(ls, proc_path, new_ino, &mv, err);
	if (r == 0)
		vmb_lockset_move_end(&mv, 1);
	return r;
}
