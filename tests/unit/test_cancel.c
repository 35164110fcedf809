/* test_cancel.c - base/cancel.h: which pending signals of a reader cancel its
 * request, a reader that is gone, the FUSE INTERRUPT flag when /proc cannot tell. */
#include "config.h"
#include "harness.h"
#include "base/cancel.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_sig(int s) { (void)s; }

/* 1 if this thread's token (for pid) says cancelled; a fresh token each time. */
static int cancelled_for(pid_t pid)
{
	struct vmb_cancel c;
	int r;

	vmb_cancel_init(&c, pid);
	vmb_cancel_set_current(&c);
	r = vmb_cancel_requested();
	vmb_cancel_set_current(NULL);
	return r;
}

static void test_no_token(void)
{
	vmb_cancel_set_current(NULL);
	CHECK(vmb_cancel_current() == NULL);
	CHECK_EQ(vmb_cancel_requested(), 0);
	CHECK_EQ(cancelled_for(getpid()), 0);   /* nothing pending here */
}

/* A stopped child keeps its signals pending: which of them end a wait. */
static void test_pending(void)
{
	struct sigaction sa = { .sa_handler = on_sig };
	int st;
	pid_t pid = fork();

	REQUIRE(pid >= 0);
	if (pid == 0) {
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGWINCH, &sa, NULL);
		sigaction(SIGUSR1, &sa, NULL);
		for (;;)
			pause();
	}
	kill(pid, SIGSTOP);
	REQUIRE(waitpid(pid, &st, WUNTRACED) == pid && WIFSTOPPED(st));
	CHECK_EQ(cancelled_for(pid), 0);
	kill(pid, SIGWINCH);
	kill(pid, SIGUSR1);
	usleep(50000);
	CHECK_EQ(cancelled_for(pid), 0);   /* caught, but not an ending signal */
	kill(pid, SIGINT);
	usleep(50000);
	CHECK_EQ(cancelled_for(pid), 1);   /* a caught SIGINT (dd) */
	kill(pid, SIGKILL);
	REQUIRE(waitpid(pid, &st, 0) == pid);
	CHECK_EQ(cancelled_for(pid), 1);   /* gone */
}

static void test_blocked(void)
{
	sigset_t set, old;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, &old);
	raise(SIGTERM);
	CHECK_EQ(cancelled_for(gettid()), 0);   /* pending but blocked */
	signal(SIGTERM, SIG_IGN);   /* drop it */
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	signal(SIGTERM, SIG_DFL);
}

static void test_interrupt_flag(void)
{
	struct vmb_cancel c;

	vmb_cancel_init(&c, 0);   /* no pid: /proc cannot tell */
	vmb_cancel_set_current(&c);
	CHECK_EQ(vmb_cancel_requested(), 0);
	vmb_cancel_interrupt(&c);
	CHECK_EQ(vmb_cancel_requested(), 1);
	vmb_cancel_set_current(NULL);
	vmb_cancel_init(&c, getpid());   /* /proc can tell: the flag alone is not enough */
	vmb_cancel_set_current(&c);
	vmb_cancel_interrupt(&c);
	CHECK_EQ(vmb_cancel_requested(), 0);
	vmb_cancel_set_current(NULL);
}

int main(void)
{
	RUN(test_no_token);
	RUN(test_pending);
	RUN(test_blocked);
	RUN(test_interrupt_flag);
	return harness_exit("test_cancel");
}
