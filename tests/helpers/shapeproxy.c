/* shapeproxy: a TCP forwarder on loopback that shapes traffic like a WAN link, for
 * bench/remote.sh and the remote-image tests (these kernels have no netem).
 *
 * usage: shapeproxy [-p PORT] [-P PORTFILE] [-d DELAY_MS] [-r RATE] [-n] HOST:PORT
 *   -p PORT      listen on 127.0.0.1:PORT (default 0: a free port)
 *   -P PORTFILE  write the port there (temp + rename) once listening
 *   -d DELAY_MS  one-way latency added in each direction (default 10: 20 ms RTT);
 *                fractions allowed (0.5)
 *   -r RATE      link rate in each direction, shared by all connections, in bits/s
 *                with an optional k/M/G suffix (default 1G; 0: unlimited)
 *   -n           no handshake cost (by default a new connection waits one RTT before
 *                its first byte moves, as a TCP handshake over the link would)
 *   -q QUEUE     bytes a direction may hold in flight in the proxy (default 8 MiB)
 *
 * The model: each direction is a link with one FIFO. A chunk read from the sender
 * leaves the link's queue when the link has serialised it (max(arrival, link free) +
 * len*8/rate, shared by every connection of that direction) and is delivered DELAY
 * later. A direction holding more than QUEUE bytes stops reading (TCP backpressure).
 * EOF is forwarded in order as a shutdown(SHUT_WR); a reset or error closes both
 * sides. Two threads per connection, one per direction.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "tcplisten.h"

#define CHUNK 65536

struct link {
	pthread_mutex_t mu;
	double free_at;   /* monotonic seconds when the link is idle again */
};

static struct link links[2] = { { PTHREAD_MUTEX_INITIALIZER, 0 }, { PTHREAD_MUTEX_INITIALIZER, 0 } };
static double delay_s = 0.010;
static double rate_bps = 1e9;
static int handshake = 1;
static size_t queue_max = 8u << 20;
static struct sockaddr_storage target;
static socklen_t target_len;

struct pkt {
	struct pkt *next;
	double due;        /* delivery time */
	size_t len;        /* 0: EOF */
	char data[];
};

struct dir {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct pkt *head, *tail;
	size_t queued;
	int from, to;
	int failed;        /* the writer or reader saw an error: stop */
	int which;         /* 0: client to server, 1: server to client */
	struct conn *c;
};

struct conn {
	struct dir d[2];
	int cfd, sfd;
	int refs;
	pthread_mutex_t mu;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void to_timespec(double t, struct timespec *ts)
{
	ts->tv_sec = (time_t)t;
	ts->tv_nsec = (long)((t - (double)ts->tv_sec) * 1e9);
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

static void sleep_until(double t)
{
	struct timespec ts;
	to_timespec(t, &ts);
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static void conn_put(struct conn *c)
{
	int last;
	pthread_mutex_lock(&c->mu);
	last = --c->refs == 0;
	pthread_mutex_unlock(&c->mu);
	if (!last)
		return;
	for (int i = 0; i < 2; i++) {
		struct pkt *p = c->d[i].head, *n;
		for (; p; p = n) {
			n = p->next;
			free(p);
		}
		pthread_mutex_destroy(&c->d[i].mu);
		pthread_cond_destroy(&c->d[i].cv);
	}
	close(c->cfd);
	close(c->sfd);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

/* Fail the whole connection: both directions stop, both sockets are shut down. */
static void conn_fail(struct conn *c)
{
	for (int i = 0; i < 2; i++) {
		pthread_mutex_lock(&c->d[i].mu);
		c->d[i].failed = 1;
		pthread_cond_broadcast(&c->d[i].cv);
		pthread_mutex_unlock(&c->d[i].mu);
	}
	shutdown(c->cfd, SHUT_RDWR);
	shutdown(c->sfd, SHUT_RDWR);
}

static void enqueue(struct dir *d, struct pkt *p)
{
	double now = now_s(), dep;
	struct link *l = &links[d->which];

	pthread_mutex_lock(&l->mu);
	dep = l->free_at > now ? l->free_at : now;
	if (rate_bps > 0)
		dep += (double)p->len * 8.0 / rate_bps;
	l->free_at = dep;
	pthread_mutex_unlock(&l->mu);
	p->due = dep + delay_s;
	p->next = NULL;
	pthread_mutex_lock(&d->mu);
	if (d->tail)
		d->tail->next = p;
	else
		d->head = p;
	d->tail = p;
	d->queued += p->len;
	pthread_cond_broadcast(&d->cv);
	pthread_mutex_unlock(&d->mu);
}

/* The reader of a direction: read from d->from, queue with its due time. */
static void *reader_main(void *arg)
{
	struct dir *d = arg;
	struct conn *c = d->c;

	for (;;) {
		struct pkt *p = malloc(sizeof(*p) + CHUNK);
		ssize_t n;
		if (!p) {
			conn_fail(c);
			break;
		}
		pthread_mutex_lock(&d->mu);
		while (!d->failed && d->queued >= queue_max)
			pthread_cond_wait(&d->cv, &d->mu);
		if (d->failed) {
			pthread_mutex_unlock(&d->mu);
			free(p);
			break;
		}
		pthread_mutex_unlock(&d->mu);
		do
			n = recv(d->from, p->data, CHUNK, 0);
		while (n < 0 && errno == EINTR);
		if (n < 0) {
			free(p);
			conn_fail(c);
			break;
		}
		p->len = (size_t)n;
		enqueue(d, p);
		if (n == 0)
			break;
	}
	conn_put(c);
	return NULL;
}

/* The writer of a direction: deliver each chunk at its due time. */
static void *writer_main(void *arg)
{
	struct dir *d = arg;
	struct conn *c = d->c;

	for (;;) {
		struct pkt *p;
		size_t off = 0;
		pthread_mutex_lock(&d->mu);
		while (!d->failed && !d->head)
			pthread_cond_wait(&d->cv, &d->mu);
		if (d->failed) {
			pthread_mutex_unlock(&d->mu);
			break;
		}
		p = d->head;
		pthread_mutex_unlock(&d->mu);
		sleep_until(p->due);
		if (p->len == 0) {      /* EOF: pass it on */
			shutdown(d->to, SHUT_WR);
			break;
		}
		while (off < p->len) {
			ssize_t w = send(d->to, p->data + off, p->len - off, MSG_NOSIGNAL);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				conn_fail(c);
				goto out;
			}
			off += (size_t)w;
		}
		pthread_mutex_lock(&d->mu);
		d->head = p->next;
		if (!d->head)
			d->tail = NULL;
		d->queued -= p->len;
		pthread_cond_broadcast(&d->cv);
		pthread_mutex_unlock(&d->mu);
		free(p);
	}
out:
	conn_put(c);
	return NULL;
}

static void *conn_main(void *arg)
{
	struct conn *c = arg;
	pthread_attr_t attr;
	pthread_t th;
	int one = 1, started = 0;

	if (handshake && delay_s > 0)
		sleep_until(now_s() + 2 * delay_s);
	c->sfd = socket(target.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->sfd < 0 || connect(c->sfd, (struct sockaddr *)&target, target_len) < 0) {
		/* the upstream refused: reset the client */
		struct linger lg = { 1, 0 };
		setsockopt(c->cfd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		if (c->sfd < 0)
			c->sfd = -1;
		close(c->cfd);
		if (c->sfd >= 0)
			close(c->sfd);
		free(c);
		return NULL;
	}
	setsockopt(c->sfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(c->cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	for (int i = 0; i < 2; i++) {
		struct dir *d = &c->d[i];
		pthread_mutex_init(&d->mu, NULL);
		pthread_cond_init(&d->cv, NULL);
		d->which = i;
		d->c = c;
		d->from = i == 0 ? c->cfd : c->sfd;
		d->to = i == 0 ? c->sfd : c->cfd;
	}
	pthread_mutex_init(&c->mu, NULL);
	c->refs = 5;   /* 4 threads + this one */
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 128 * 1024);
	for (int i = 0; i < 2; i++) {
		if (pthread_create(&th, &attr, reader_main, &c->d[i]) == 0)
			started++;
		if (pthread_create(&th, &attr, writer_main, &c->d[i]) == 0)
			started++;
	}
	pthread_attr_destroy(&attr);
	if (started < 4) {
		conn_fail(c);
		pthread_mutex_lock(&c->mu);
		c->refs -= 4 - started;
		pthread_mutex_unlock(&c->mu);
	}
	conn_put(c);
	return NULL;
}

static int parse_rate(const char *s, double *out)
{
	char *end;
	double v = strtod(s, &end);
	if (end == s || v < 0)
		return -1;
	switch (*end) {
	case 0: break;
	case 'k': case 'K': v *= 1e3; end++; break;
	case 'm': case 'M': v *= 1e6; end++; break;
	case 'g': case 'G': v *= 1e9; end++; break;
	default: return -1;
	}
	if (*end)
		return -1;
	*out = v;
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: shapeproxy [-p PORT] [-P PORTFILE] [-d DELAY_MS] [-r RATE_BITS] "
			"[-n] [-q QUEUE_BYTES] HOST:PORT\n");
	exit(2);
}

int main(int argc, char **argv)
{
	int opt, ls;
	long port = 0;
	const char *portfile = NULL;
	char host[256], *colon;
	struct addrinfo hints, *ai;
	pthread_attr_t attr;

	while ((opt = getopt(argc, argv, "p:P:d:r:nq:h")) != -1) {
		switch (opt) {
		case 'p': port = strtol(optarg, NULL, 10); break;
		case 'P': portfile = optarg; break;
		case 'd': delay_s = strtod(optarg, NULL) / 1000.0; break;
		case 'r':
			if (parse_rate(optarg, &rate_bps) < 0)
				usage();
			break;
		case 'n': handshake = 0; break;
		case 'q': queue_max = strtoull(optarg, NULL, 10); break;
		default: usage();
		}
	}
	if (optind != argc - 1 || port < 0 || port > 65535 || delay_s < 0 || queue_max < CHUNK)
		usage();
	if (strlen(argv[optind]) >= sizeof(host))
		usage();
	strcpy(host, argv[optind]);
	colon = strrchr(host, ':');
	if (!colon)
		usage();
	*colon = 0;
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(host, colon + 1, &hints, &ai) != 0 || !ai) {
		fprintf(stderr, "shapeproxy: cannot resolve '%s'\n", argv[optind]);
		return 1;
	}
	memcpy(&target, ai->ai_addr, ai->ai_addrlen);
	target_len = ai->ai_addrlen;
	freeaddrinfo(ai);
	signal(SIGPIPE, SIG_IGN);

	ls = tcp_listen_loopback("shapeproxy", port, portfile);
	if (ls < 0)
		return 1;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	for (;;) {
		pthread_t th;
		struct conn *c;
		int fd = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE ||
			    errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				usleep(10000);
				continue;
			}
			perror("shapeproxy: accept");
			return 1;
		}
		c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		c->cfd = fd;
		c->sfd = -1;
		if (pthread_create(&th, &attr, conn_main, c) != 0) {
			close(fd);
			free(c);
		}
	}
}
