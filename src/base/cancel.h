/* cancel.h - a cancel token for one request whose wait may last (a read of a remote
 * image in hard mode, waiting for the network): the thread serving the request
 * makes it this thread's current token; the waits deep below (the cache's flight
 * wait, the fetcher's retry loop in hard mode) ask vmb_cancel_requested() at least
 * every VMB_CANCEL_POLL_MS and give up with -EINTR when it says so.
 *
 * A request is cancelled when its reader (the process, and thread, that made it)
 * has one of SIGKILL, SIGINT, SIGQUIT, SIGHUP, SIGTERM pending and not blocked
 * (a signal whose default action kills it shows as a pending SIGKILL), when the
 * reader is gone, or, for a reader this process cannot look at (/proc unreadable,
 * no pid), when vmb_cancel_interrupt was called (the kernel's FUSE INTERRUPT).
 * Other signals (SIGCHLD, SIGWINCH, SIGSTOP/SIGTSTP, SIGALRM...) never end a wait.
 *
 * Ownership: the token belongs to the serving thread (usually on its stack); only
 * vmb_cancel_interrupt may be called from another thread, and only while the
 * token is alive. A token is set current for one thread at a time. */
#ifndef VMB_CANCEL_H
#define VMB_CANCEL_H

#include <sys/types.h>

#define VMB_CANCEL_POLL_MS 100

struct vmb_cancel {
	pid_t pid;          /* the reader's thread id (0: unknown) */
	int interrupted;    /* vmb_cancel_interrupt (atomic) */
	int cancelled;      /* sticky once seen (serving thread only) */
};

void vmb_cancel_init(struct vmb_cancel *c, pid_t pid);
/* From any thread (FUSE INTERRUPT): look again now; honoured as is when the
 * reader cannot be looked at. */
void vmb_cancel_interrupt(struct vmb_cancel *c);
/* This thread's current token (NULL: none; then nothing is ever cancelled). */
void vmb_cancel_set_current(struct vmb_cancel *c);
struct vmb_cancel *vmb_cancel_current(void);
/* 1 when this thread's current request is cancelled (above), else 0. Reads
 * /proc/<pid>/status: call it every VMB_CANCEL_POLL_MS at most while waiting. */
int vmb_cancel_requested(void);

#endif
