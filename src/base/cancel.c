/* cancel.c - per-request cancel tokens (cancel.h): a thread-local current token and
 * the look at the reader's pending signals in /proc/<pid>/status. */
#include "config.h"
#include "base/cancel.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static __thread struct vmb_cancel *current;

void vmb_cancel_init(struct vmb_cancel *c, pid_t pid)
{
	c->pid = pid;
	c->interrupted = 0;
	c->cancelled = 0;
}

void vmb_cancel_interrupt(struct vmb_cancel *c)
{
	__atomic_store_n(&c->interrupted, 1, __ATOMIC_SEQ_CST);
}

void vmb_cancel_set_current(struct vmb_cancel *c)
{
	current = c;
}

struct vmb_cancel *vmb_cancel_current(void)
{
	return current;
}

#define BIT(s) (1ULL << ((s) - 1))
#define ENDING (BIT(SIGKILL) | BIT(SIGINT) | BIT(SIGQUIT) | BIT(SIGHUP) | BIT(SIGTERM))

/* The hex mask after "NAME:\t" in buf, or 0. */
static uint64_t mask_of(const char *buf, const char *name)
{
	const char *p = strstr(buf, name);

	return p ? strtoull(p + strlen(name), NULL, 16) : 0;
}

/* 1: an ending signal is pending, or the reader is gone; 0: no; -1: cannot tell. */
static int look(pid_t pid)
{
	char path[64], buf[4096];
	uint64_t pend;
	ssize_t n;
	int fd;

	if (pid <= 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT || errno == ESRCH ? 1 : -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return n < 0 && errno == ESRCH ? 1 : -1;
	buf[n] = '\0';
	if (strstr(buf, "\nState:\tZ") || strstr(buf, "\nState:\tX"))
		return 1;
	if (!strstr(buf, "\nSigPnd:\t") || !strstr(buf, "\nSigBlk:\t"))
		return -1;
	pend = mask_of(buf, "\nSigPnd:\t") | mask_of(buf, "\nShdPnd:\t");
	pend &= ~mask_of(buf, "\nSigBlk:\t") | BIT(SIGKILL);
	return (pend & ENDING) != 0;
}

int vmb_cancel_requested(void)
{
	struct vmb_cancel *c = current;
	int r;

	if (!c)
		return 0;
	if (c->cancelled)
		return 1;
	r = look(c->pid);
	if (r < 0)
		r = __atomic_load_n(&c->interrupted, __ATOMIC_SEQ_CST);
	c->cancelled = r;
	return r;
}
