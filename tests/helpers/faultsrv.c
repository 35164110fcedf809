/* faultsrv: a small HTTP/1.1 file server with fault injection, for the remote-image
 * tests (issue 11). Serves DIR read-only on 127.0.0.1 (GET and HEAD, one Range
 * "bytes=A-B" / "A-" / "-N", keep-alive), one thread per connection, and logs one
 * line per request. It must never crash, whatever a client sends: requests are
 * bounded (8 KiB of headers), paths are checked (no "..", no NUL, no symlink out of
 * DIR), and an idle connection is closed after -t seconds.
 *
 * usage: faultsrv [-p PORT] [-P PORTFILE] [-l LOG] [-c CTLFILE] [-r RULE]... [-s SEED]
 *                 [-t IDLE_S] [-m MAXCONN] DIR
 *   -p PORT      port on 127.0.0.1 (default 0: a free port chosen by the kernel)
 *   -P PORTFILE  write the port there (temp + rename) once listening
 *   -l LOG       access log (default: stderr), one line per request, flushed:
 *                  METHOD PATH RANGE STATUS BYTES FAULT
 *                RANGE is the Range header or "-", BYTES the body bytes sent, FAULT
 *                the rule applied ("-" for none), e.g.
 *                  GET /objects/ab/ab12.. bytes=0-65535 206 65536 -
 *   -c CTLFILE   rules, one a line ('#' comments); the file is re-read whenever it
 *                changes (checked on every request), so a test switches faults on
 *                and off by rewriting it (write a temp and rename it over). A
 *                missing or empty file means no faults.
 *   -r RULE      a rule on the command line (tried before the control file's)
 *   -s SEED      seed of the generator used by prob= (default 1)
 *
 * A rule: ACTION [path=GLOB] [method=M] [every=N] [prob=P] [count=N] [at=BYTES]
 *                [secs=S] [rate=BYTES_PER_S] [code=STATUS]
 *   ACTIONS  drop-before  close the connection once the request is read, no answer
 *            drop-after   send the headers, then close (no body)
 *            reset        as drop-before, but with a TCP RST (SO_LINGER 0)
 *            truncate     send the headers (full Content-Length), AT body bytes
 *                         (default half), then close
 *            flip         send the whole body with the byte at AT (default the middle)
 *                         inverted
 *            status       answer CODE (default 503) with a short body; 500 and 503
 *                         are shorthands for "status code=500/503"
 *            stall        send AT body bytes (default half), sleep SECS (default 5),
 *                         then send the rest
 *            slow         send the body at RATE bytes/s (default 65536)
 *   path=GLOB   fnmatch(3) pattern on the request path (default "*", '/' matches too)
 *   every=N     apply to every Nth request this rule matches (default 1: all)
 *   prob=P      apply with probability P (0..1)
 *   count=N     apply at most N times in all (default unlimited)
 * The first rule whose conditions hold applies; the others are not consulted.
 * SIGHUP also reloads the control file. SIGTERM/SIGINT exit 0.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include "tcplisten.h"

#define MAX_HDR 8192
#define MAX_RULES 64

enum action { A_NONE, A_DROP_BEFORE, A_DROP_AFTER, A_RESET, A_TRUNCATE, A_FLIP,
	      A_STATUS, A_STALL, A_SLOW };
static const char *action_names[] = { "-", "drop-before", "drop-after", "reset",
				      "truncate", "flip", "status", "stall", "slow" };

struct rule {
	enum action act;
	char path[256];
	char method[16];
	uint64_t every, count, applied, seen;
	double prob;
	int64_t at;        /* -1: default */
	double secs;
	uint64_t rate;
	int code;
};

struct ruleset {
	struct rule r[MAX_RULES];
	int n;
};

static struct ruleset cmd_rules, file_rules;
static const char *ctl_path;
static struct stat ctl_st;
static int ctl_loaded;
static volatile sig_atomic_t reload_flag;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;  /* rules, rng, log, nconn */
static uint64_t rng_state = 1;
static FILE *access_f;
static int root_fd = -1;
static int idle_s = 30;
static int max_conn = 256;
static int nconn;

static uint64_t rng_next(void)
{
	/* xorshift64* */
	uint64_t x = rng_state;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	rng_state = x;
	return x * 0x2545F4914F6CDD1DULL;
}

__attribute__((format(printf, 1, 2))) static void logmsg(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "faultsrv: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end)
		return -1;
	*out = v;
	return 0;
}

/* parse_rule: one line of tokens into R; -1 (with a message) on a bad rule. */
static int parse_rule(char *line, struct rule *r)
{
	char *save = NULL, *tok;
	int first = 1;

	memset(r, 0, sizeof(*r));
	strcpy(r->path, "*");
	r->every = 1;
	r->prob = 1.0;
	r->at = -1;
	r->secs = 5;
	r->rate = 65536;
	r->code = 503;
	for (tok = strtok_r(line, " \t\r\n", &save); tok; tok = strtok_r(NULL, " \t\r\n", &save)) {
		char *eq = strchr(tok, '=');
		uint64_t v;
		if (first) {
			int i;
			first = 0;
			if (!strcmp(tok, "500") || !strcmp(tok, "503")) {
				r->act = A_STATUS;
				r->code = atoi(tok);
				continue;
			}
			for (i = 1; i < (int)(sizeof(action_names) / sizeof(action_names[0])); i++)
				if (!strcmp(tok, action_names[i]))
					r->act = (enum action)i;
			if (r->act == A_NONE) {
				logmsg("unknown action '%s'", tok);
				return -1;
			}
			continue;
		}
		if (!eq) {
			logmsg("rule option '%s' is not KEY=VALUE", tok);
			return -1;
		}
		*eq++ = 0;
		if (!strcmp(tok, "path")) {
			if (strlen(eq) >= sizeof(r->path))
				goto bad;
			strcpy(r->path, eq);
		} else if (!strcmp(tok, "method")) {
			if (strlen(eq) >= sizeof(r->method))
				goto bad;
			strcpy(r->method, eq);
		} else if (!strcmp(tok, "every")) {
			if (parse_u64(eq, &r->every) || r->every == 0)
				goto bad;
		} else if (!strcmp(tok, "count")) {
			if (parse_u64(eq, &r->count))
				goto bad;
			if (r->count == 0)
				r->count = UINT64_MAX - 1;  /* never */
		} else if (!strcmp(tok, "prob")) {
			char *end;
			r->prob = strtod(eq, &end);
			if (*end || !(r->prob >= 0 && r->prob <= 1))
				goto bad;
		} else if (!strcmp(tok, "at")) {
			if (parse_u64(eq, &v) || v > INT64_MAX)
				goto bad;
			r->at = (int64_t)v;
		} else if (!strcmp(tok, "secs")) {
			char *end;
			r->secs = strtod(eq, &end);
			if (*end || !(r->secs >= 0 && r->secs <= 3600))
				goto bad;
		} else if (!strcmp(tok, "rate")) {
			if (parse_u64(eq, &r->rate) || r->rate == 0)
				goto bad;
		} else if (!strcmp(tok, "code")) {
			if (parse_u64(eq, &v) || v < 100 || v > 599)
				goto bad;
			r->code = (int)v;
		} else {
			logmsg("unknown rule option '%s'", tok);
			return -1;
		}
		continue;
bad:
		logmsg("bad value '%s' for '%s'", eq, tok);
		return -1;
	}
	return first ? 1 : 0;   /* 1: empty line */
}

static int add_rule(struct ruleset *rs, const char *text)
{
	char buf[1024];
	struct rule r = { .act = A_NONE };
	int rc;
	char *hash;

	if (strlen(text) >= sizeof(buf))
		return -1;
	strcpy(buf, text);
	hash = strchr(buf, '#');
	if (hash)
		*hash = 0;
	rc = parse_rule(buf, &r);
	if (rc)
		return rc < 0 ? -1 : 0;
	if (rs->n >= MAX_RULES) {
		logmsg("too many rules (at most %d)", MAX_RULES);
		return -1;
	}
	rs->r[rs->n++] = r;
	return 0;
}

/* Called with mu held: re-read the control file if it changed. */
static void maybe_reload(void)
{
	struct stat st;
	FILE *f;
	char line[1024];
	int changed;

	if (!ctl_path)
		return;
	if (stat(ctl_path, &st) < 0) {
		if (ctl_loaded && file_rules.n)
			logmsg("control file %s gone: no file rules", ctl_path);
		file_rules.n = 0;
		ctl_loaded = 0;
		memset(&ctl_st, 0, sizeof(ctl_st));
		return;
	}
	changed = !ctl_loaded || reload_flag || st.st_ino != ctl_st.st_ino ||
		  st.st_size != ctl_st.st_size || st.st_mtim.tv_sec != ctl_st.st_mtim.tv_sec ||
		  st.st_mtim.tv_nsec != ctl_st.st_mtim.tv_nsec;
	if (!changed)
		return;
	reload_flag = 0;
	f = fopen(ctl_path, "r");
	if (!f)
		return;
	file_rules.n = 0;
	while (fgets(line, sizeof(line), f))
		if (add_rule(&file_rules, line) < 0)
			logmsg("control file %s: ignoring a bad rule", ctl_path);
	fclose(f);
	ctl_st = st;
	ctl_loaded = 1;
}

/* Pick the rule for this request (copied to OUT); returns its action. */
static enum action pick_rule(const char *method, const char *path, struct rule *out)
{
	struct ruleset *sets[2] = { &cmd_rules, &file_rules };
	int s, i;
	enum action act = A_NONE;

	pthread_mutex_lock(&mu);
	maybe_reload();
	for (s = 0; s < 2 && act == A_NONE; s++) {
		for (i = 0; i < sets[s]->n; i++) {
			struct rule *r = &sets[s]->r[i];
			if (fnmatch(r->path, path, 0) != 0)
				continue;
			if (r->method[0] && strcasecmp(r->method, method))
				continue;
			if (r->count && r->applied >= r->count)
				continue;
			r->seen++;
			if (r->seen % r->every)
				continue;
			if (r->prob < 1.0 &&
			    (double)(rng_next() >> 11) / (double)(1ULL << 53) >= r->prob)
				continue;
			r->applied++;
			*out = *r;
			act = r->act;
			break;
		}
	}
	pthread_mutex_unlock(&mu);
	return act;
}

static void access_log(const char *method, const char *path, const char *range, int status,
		       uint64_t bytes, enum action act)
{
	pthread_mutex_lock(&mu);
	fprintf(access_f, "%s %s %s %d %" PRIu64 " %s\n", method, path, range[0] ? range : "-",
		status, bytes, action_names[act]);
	fflush(access_f);
	pthread_mutex_unlock(&mu);
}

/* ---------------------------------------------------------------- connection I/O */

struct conn {
	int fd;
	char buf[MAX_HDR + 1];
	size_t len;     /* bytes in buf */
};

/* send_all: 0, or -1 when the peer is gone. */
static int send_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n) {
		ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

/* read_request: read up to the end of the headers. Returns the header length
 * (through "\r\n\r\n"), 0 on a clean EOF before anything, -1 on error/timeout,
 * -2 when the headers are too long. */
static ssize_t read_request(struct conn *c)
{
	for (;;) {
		char *end;
		ssize_t r;
		c->buf[c->len] = 0;
		if (c->len && memchr(c->buf, 0, c->len))
			return -3;      /* NUL in the headers */
		end = strstr(c->buf, "\r\n\r\n");
		if (end)
			return end + 4 - c->buf;
		if (c->len >= MAX_HDR)
			return -2;
		r = recv(c->fd, c->buf + c->len, MAX_HDR - c->len, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0)
			return c->len ? -1 : 0;
		if (r < 0)
			return -1;
		c->len += (size_t)r;
	}
}

static const char *reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 206: return "Partial Content";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 411: return "Length Required";
	case 413: return "Payload Too Large";
	case 416: return "Range Not Satisfiable";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	default: return "Status";
	}
}

/* simple_reply: a small text answer. Returns -1 when the peer is gone. */
static int simple_reply(int fd, int status, int keep, int head, const char *extra)
{
	char hdr[512], body[128];
	int bl = snprintf(body, sizeof(body), "%d %s\n", status, reason(status));
	int hl = snprintf(hdr, sizeof(hdr),
			  "HTTP/1.1 %d %s\r\nServer: faultsrv\r\nContent-Type: text/plain\r\n"
			  "Content-Length: %d\r\n%s%s\r\n",
			  status, reason(status), bl, keep ? "" : "Connection: close\r\n",
			  extra ? extra : "");
	if (send_all(fd, hdr, (size_t)hl) < 0)
		return -1;
	if (!head && send_all(fd, body, (size_t)bl) < 0)
		return -1;
	return 0;
}

/* header_value: the value of header NAME in the header block HDRS (NUL-terminated,
 * lines end in \r\n), trimmed, into OUT; 0 found, -1 absent. */
static int header_value(const char *hdrs, const char *name, char *out, size_t outsz)
{
	const char *p = strstr(hdrs, "\r\n");
	size_t nl = strlen(name);
	while (p && p[2]) {
		const char *line = p + 2, *eol = strstr(line, "\r\n");
		if (!eol)
			break;
		if ((size_t)(eol - line) > nl && !strncasecmp(line, name, nl) && line[nl] == ':') {
			const char *v = line + nl + 1;
			size_t l;
			while (v < eol && (*v == ' ' || *v == '\t'))
				v++;
			l = (size_t)(eol - v);
			while (l && (v[l - 1] == ' ' || v[l - 1] == '\t'))
				l--;
			if (l >= outsz)
				l = outsz - 1;
			memcpy(out, v, l);
			out[l] = 0;
			return 0;
		}
		p = eol;
	}
	return -1;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9') return c - '0';
	if (c >= 'a' && c <= 'f') return c - 'a' + 10;
	if (c >= 'A' && c <= 'F') return c - 'A' + 10;
	return -1;
}

/* decode_path: the request target into a relative path under root; -1 if bad. */
static int decode_path(const char *target, char *out, size_t outsz)
{
	size_t o = 0;
	const char *p = target, *seg;
	if (*p != '/')
		return -1;
	while (*p == '/')
		p++;
	for (; *p && *p != '?' && *p != '#'; p++) {
		int c = (unsigned char)*p;
		if (c == '%') {
			int h = hexval(p[1]), l = h < 0 ? -1 : hexval(p[2]);
			if (l < 0)
				return -1;
			c = h * 16 + l;
			p += 2;
		}
		if (c == 0)
			return -1;
		if (o + 1 >= outsz)
			return -1;
		out[o++] = (char)c;
	}
	out[o] = 0;
	if (o == 0)
		return -1;
	/* no "." or ".." segment, no empty segment */
	for (seg = out;;) {
		const char *sl = strchr(seg, '/');
		size_t l = sl ? (size_t)(sl - seg) : strlen(seg);
		if (l == 0 || (l == 1 && seg[0] == '.') || (l == 2 && seg[0] == '.' && seg[1] == '.'))
			return -1;
		if (!sl)
			break;
		seg = sl + 1;
	}
	return 0;
}

/* open_under_root: open REL below root_fd, refusing symlinks on the way. */
static int open_under_root(const char *rel)
{
	char tmp[PATH_MAX];
	char *save = NULL, *comp, *next;
	int dir = dup(root_fd), fd;

	if (dir < 0)
		return -1;
	if (strlen(rel) >= sizeof(tmp)) {
		close(dir);
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(tmp, rel);
	comp = strtok_r(tmp, "/", &save);
	while (comp) {
		next = strtok_r(NULL, "/", &save);
		fd = openat(dir, comp, (next ? O_DIRECTORY : 0) | O_RDONLY | O_NOFOLLOW | O_CLOEXEC |
				       O_NONBLOCK);
		close(dir);
		if (fd < 0)
			return -1;
		dir = fd;
		comp = next;
	}
	return dir;
}

/* parse_range: "bytes=..." against SIZE. 1: a range [*off, *off+*len); 0: serve the
 * whole (no or unsupported range); -1: unsatisfiable (416). */
static int parse_range(const char *v, uint64_t size, uint64_t *off, uint64_t *len)
{
	uint64_t a, b;
	char *end;
	if (strncasecmp(v, "bytes=", 6))
		return 0;
	v += 6;
	while (*v == ' ')
		v++;
	if (strchr(v, ','))
		return 0;       /* several ranges: serve the whole, as RFC 9110 allows */
	if (*v == '-') {
		if (v[1] < '0' || v[1] > '9')
			return 0;
		errno = 0;
		b = strtoull(v + 1, &end, 10);
		if (errno || *end)
			return 0;
		if (b == 0 || size == 0)
			return -1;
		if (b > size)
			b = size;
		*off = size - b;
		*len = b;
		return 1;
	}
	if (*v < '0' || *v > '9')
		return 0;
	errno = 0;
	a = strtoull(v, &end, 10);
	if (errno || *end != '-')
		return 0;
	v = end + 1;
	if (*v == 0) {
		b = UINT64_MAX;
	} else {
		if (*v < '0' || *v > '9')
			return 0;
		errno = 0;
		b = strtoull(v, &end, 10);
		if (errno || *end || b < a)
			return 0;
	}
	if (a >= size)
		return -1;
	if (b >= size)
		b = size - 1;
	*off = a;
	*len = b - a + 1;
	return 1;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_s(double s)
{
	struct timespec ts;
	if (s <= 0)
		return;
	ts.tv_sec = (time_t)s;
	ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* send_body: LEN bytes of FD from OFF, with the fault R applied; returns the body
 * bytes sent, and *gone = 1 when the connection must be closed. */
static uint64_t send_body(int sock, int fd, uint64_t off, uint64_t len, const struct rule *r,
			  enum action act, int *gone)
{
	static const size_t BUFSZ = 65536;
	char *buf = malloc(BUFSZ);
	uint64_t sent = 0, stop = len, at = len / 2;
	double t0 = now_s();
	int stalled = 0;

	if (!buf) {
		*gone = 1;
		return 0;
	}
	if (act == A_TRUNCATE || act == A_FLIP || act == A_STALL) {
		if (r->at >= 0)
			at = (uint64_t)r->at;
		if (act == A_FLIP && at >= len)
			at = len ? len - 1 : 0;
		if (act == A_TRUNCATE) {
			if (at >= len)
				at = len ? len - 1 : 0;
			stop = at;
		}
	}
	while (sent < stop) {
		size_t want = stop - sent < BUFSZ ? (size_t)(stop - sent) : BUFSZ;
		ssize_t n;
		if (act == A_STALL && !stalled && sent < at && at - sent < want)
			want = (size_t)(at - sent);
		if (act == A_STALL && !stalled && sent == at) {
			sleep_s(r->secs);
			stalled = 1;
		}
		if (act == A_SLOW && want > r->rate / 10 + 1)
			want = (size_t)(r->rate / 10 + 1);
		n = pread(fd, buf, want, (off_t)(off + sent));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {   /* the file shrank or failed: the body cannot be completed */
			*gone = 1;
			break;
		}
		if (act == A_FLIP && at >= sent && at < sent + (uint64_t)n)
			buf[at - sent] ^= (char)0xff;
		if (send_all(sock, buf, (size_t)n) < 0) {
			*gone = 1;
			break;
		}
		sent += (uint64_t)n;
		if (act == A_SLOW) {
			double due = t0 + (double)sent / (double)r->rate;
			sleep_s(due - now_s());
		}
	}
	if (act == A_STALL && !stalled && sent == at && !*gone)
		sleep_s(r->secs);
	if (act == A_TRUNCATE)
		*gone = 1;
	free(buf);
	return sent;
}

static void hard_close(int fd)
{
	struct linger lg = { 1, 0 };
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

/* handle_one: one request from C (headers in c->buf[0..hlen)). Returns 1 to keep
 * the connection, 0 to close it, -1 to reset it. */
static int handle_one(struct conn *c, size_t hlen)
{
	char method[16], target[4096], version[16], rel[4096], range[256] = "", val[256];
	char hdr[1024];
	int keep, head, status, n, fd, rr = 0;
	struct stat st;
	uint64_t off = 0, len = 0, sent = 0;
	struct rule r = { .act = A_NONE };
	enum action act;
	int gone = 0;
	char *sp1, *sp2, *eol;

	c->buf[hlen - 2] = 0;   /* the block ends in one "\r\n" */
	eol = strstr(c->buf, "\r\n");
	if (eol)
		*eol = 0;
	sp1 = strchr(c->buf, ' ');
	sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
	if (!sp1 || !sp2 || (size_t)(sp1 - c->buf) >= sizeof(method) ||
	    (size_t)(sp2 - sp1 - 1) >= sizeof(target) || strlen(sp2 + 1) >= sizeof(version) ||
	    strchr(sp2 + 1, ' ')) {
		access_log("-", "-", "", 400, 0, A_NONE);
		simple_reply(c->fd, 400, 0, 0, NULL);
		return 0;
	}
	memcpy(method, c->buf, (size_t)(sp1 - c->buf));
	method[sp1 - c->buf] = 0;
	memcpy(target, sp1 + 1, (size_t)(sp2 - sp1 - 1));
	target[sp2 - sp1 - 1] = 0;
	strcpy(version, sp2 + 1);
	if (eol)
		*eol = '\r';    /* header_value needs the "\r\n" after the request line */

	if (!strcmp(version, "HTTP/1.1"))
		keep = 1;
	else if (!strcmp(version, "HTTP/1.0"))
		keep = 0;
	else {
		access_log(method, "-", "", 505, 0, A_NONE);
		simple_reply(c->fd, 505, 0, 0, NULL);
		return 0;
	}
	for (n = 0; target[n]; n++)         /* the log stays one line per request */
		if ((unsigned char)target[n] <= ' ' || target[n] == 0x7f)
			target[n] = '?';
	if (header_value(c->buf, "Connection", val, sizeof(val)) == 0) {
		if (strcasestr(val, "close"))
			keep = 0;
		else if (strcasestr(val, "keep-alive"))
			keep = 1;
	}
	if (header_value(c->buf, "Transfer-Encoding", val, sizeof(val)) == 0 ||
	    (header_value(c->buf, "Content-Length", val, sizeof(val)) == 0 && strcmp(val, "0"))) {
		/* no request bodies here: refuse and close (the body is not read) */
		access_log(method, target, "", 413, 0, A_NONE);
		simple_reply(c->fd, 413, 0, 0, NULL);
		return 0;
	}
	if (header_value(c->buf, "Range", range, sizeof(range)) < 0)
		range[0] = 0;
	for (n = 0; range[n]; n++)
		if ((unsigned char)range[n] <= ' ' || range[n] == 0x7f)
			range[n] = '_';
	head = !strcmp(method, "HEAD");
	if (!head && strcmp(method, "GET")) {
		access_log(method, target, range, 405, 0, A_NONE);
		return simple_reply(c->fd, 405, keep, 0, "Allow: GET, HEAD\r\n") < 0 ? 0 : keep;
	}

	act = pick_rule(method, target, &r);
	switch (act) {
	case A_DROP_BEFORE:
		access_log(method, target, range, 0, 0, act);
		return 0;
	case A_RESET:
		access_log(method, target, range, 0, 0, act);
		return -1;
	case A_STATUS:
		access_log(method, target, range, r.code, 0, act);
		return simple_reply(c->fd, r.code, keep, head, NULL) < 0 ? 0 : keep;
	default:
		break;
	}

	if (decode_path(target, rel, sizeof(rel)) < 0) {
		access_log(method, target, range, 400, 0, act);
		return simple_reply(c->fd, 400, keep, head, NULL) < 0 ? 0 : keep;
	}
	fd = open_under_root(rel);
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		status = (fd < 0 && (errno == ELOOP || errno == EACCES)) ? 403 : 404;
		if (fd >= 0)
			close(fd);
		access_log(method, target, range, status, 0, act);
		return simple_reply(c->fd, status, keep, head, NULL) < 0 ? 0 : keep;
	}
	status = 200;
	len = (uint64_t)st.st_size;
	if (range[0]) {
		rr = parse_range(range, (uint64_t)st.st_size, &off, &len);
		if (rr < 0) {
			char extra[64];
			close(fd);
			snprintf(extra, sizeof(extra), "Content-Range: bytes */%" PRIu64 "\r\n",
				 (uint64_t)st.st_size);
			access_log(method, target, range, 416, 0, act);
			return simple_reply(c->fd, 416, keep, head, extra) < 0 ? 0 : keep;
		}
		if (rr == 0) {
			off = 0;
			len = (uint64_t)st.st_size;
		} else {
			status = 206;
		}
	}
	n = snprintf(hdr, sizeof(hdr),
		     "HTTP/1.1 %d %s\r\nServer: faultsrv\r\nContent-Type: application/octet-stream\r\n"
		     "Accept-Ranges: bytes\r\nContent-Length: %" PRIu64 "\r\n",
		     status, reason(status), len);
	if (status == 206)
		n += snprintf(hdr + n, sizeof(hdr) - (size_t)n,
			      "Content-Range: bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64 "\r\n", off,
			      off + len - 1, (uint64_t)st.st_size);
	n += snprintf(hdr + n, sizeof(hdr) - (size_t)n, "%s\r\n", keep ? "" : "Connection: close\r\n");
	if (send_all(c->fd, hdr, (size_t)n) < 0) {
		close(fd);
		access_log(method, target, range, status, 0, act);
		return 0;
	}
	if (act == A_DROP_AFTER) {
		close(fd);
		access_log(method, target, range, status, 0, act);
		return 0;
	}
	if (!head)
		sent = send_body(c->fd, fd, off, len, &r, act, &gone);
	close(fd);
	access_log(method, target, range, status, sent, act);
	return gone ? 0 : keep;
}

/* lingering_close: stop sending, drain what the client still sends (up to 0.5 s or
 * 1 MiB), then close, so that an error answer is not lost to a reset caused by
 * unread request bytes. */
static void lingering_close(int fd)
{
	struct timeval tv = { 0, 500000 };
	char buf[4096];
	size_t total = 0;
	double t0 = now_s();

	shutdown(fd, SHUT_WR);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	while (total < (1u << 20) && now_s() - t0 < 0.5) {
		ssize_t r = recv(fd, buf, sizeof(buf), 0);
		if (r <= 0)
			break;
		total += (size_t)r;
	}
	close(fd);
}

static void *conn_main(void *arg)
{
	struct conn *c = arg;
	struct timeval tv = { idle_s, 0 };
	int one = 1, rc = 0;

	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	for (;;) {
		ssize_t hl = read_request(c);
		if (hl == 0 || hl == -1)
			break;
		if (hl == -2 || hl == -3) {
			access_log("-", "-", "", hl == -2 ? 431 : 400, 0, A_NONE);
			simple_reply(c->fd, hl == -2 ? 431 : 400, 0, 0, NULL);
			break;
		}
		rc = handle_one(c, (size_t)hl);
		if (rc <= 0)
			break;
		/* pipelined bytes after this request stay for the next one */
		memmove(c->buf, c->buf + hl, c->len - (size_t)hl);
		c->len -= (size_t)hl;
	}
	if (rc < 0)
		hard_close(c->fd);
	else
		lingering_close(c->fd);
	free(c);
	pthread_mutex_lock(&mu);
	nconn--;
	pthread_mutex_unlock(&mu);
	return NULL;
}

static void on_hup(int sig)
{
	(void)sig;
	reload_flag = 1;
}

static void on_term(int sig)
{
	(void)sig;
	_exit(0);
}

static void usage(void)
{
	fprintf(stderr, "usage: faultsrv [-p PORT] [-P PORTFILE] [-l LOG] [-c CTLFILE] [-r RULE]... "
			"[-s SEED] [-t IDLE_S] [-m MAXCONN] DIR\n");
	exit(2);
}

int main(int argc, char **argv)
{
	int opt, ls;
	long port = 0;
	const char *portfile = NULL, *logpath = NULL;
	struct sigaction act;
	pthread_attr_t attr;

	while ((opt = getopt(argc, argv, "p:P:l:c:r:s:t:m:h")) != -1) {
		switch (opt) {
		case 'p': port = strtol(optarg, NULL, 10); break;
		case 'P': portfile = optarg; break;
		case 'l': logpath = optarg; break;
		case 'c': ctl_path = optarg; break;
		case 'r':
			if (add_rule(&cmd_rules, optarg) < 0) {
				fprintf(stderr, "faultsrv: bad rule '%s'\n", optarg);
				return 2;
			}
			break;
		case 's': rng_state = strtoull(optarg, NULL, 0) * 2654435761ULL + 1; break;
		case 't': idle_s = atoi(optarg); break;
		case 'm': max_conn = atoi(optarg); break;
		default: usage();
		}
	}
	if (optind != argc - 1 || port < 0 || port > 65535 || idle_s <= 0 || max_conn <= 0)
		usage();
	root_fd = open(argv[optind], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (root_fd < 0) {
		fprintf(stderr, "faultsrv: cannot open '%s': %s\n", argv[optind], strerror(errno));
		return 1;
	}
	access_f = stderr;
	if (logpath) {
		access_f = fopen(logpath, "a");
		if (!access_f) {
			fprintf(stderr, "faultsrv: cannot open log '%s': %s\n", logpath, strerror(errno));
			return 1;
		}
	}
	memset(&act, 0, sizeof(act));
	act.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &act, NULL);
	act.sa_handler = on_hup;
	act.sa_flags = SA_RESTART;
	sigaction(SIGHUP, &act, NULL);
	act.sa_handler = on_term;
	sigaction(SIGTERM, &act, NULL);
	sigaction(SIGINT, &act, NULL);

	ls = tcp_listen_loopback("faultsrv", port, portfile);
	if (ls < 0)
		return 1;
	pthread_mutex_lock(&mu);
	maybe_reload();
	pthread_mutex_unlock(&mu);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	for (;;) {
		pthread_t th;
		struct conn *c;
		int fd = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				sleep_s(0.05);
				continue;
			}
			perror("faultsrv: accept");
			return 1;
		}
		pthread_mutex_lock(&mu);
		if (nconn >= max_conn) {
			pthread_mutex_unlock(&mu);
			close(fd);
			continue;
		}
		nconn++;
		pthread_mutex_unlock(&mu);
		c = calloc(1, sizeof(*c));
		if (c)
			c->fd = fd;
		if (!c || pthread_create(&th, &attr, conn_main, c) != 0) {
			free(c);
			close(fd);
			pthread_mutex_lock(&mu);
			nconn--;
			pthread_mutex_unlock(&mu);
			continue;
		}
	}
}
