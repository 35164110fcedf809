/* ctl.h - the control channel of a mount's daemon (vfs_ctl.c, vfs_ctl_ops.c).
 *
 * Structural commands (clone, snapshot, snapshot-delete, flatten, gc) given a store
 * that is mounted are carried out by the mount's daemon, never by a second writer
 * beside it. The command reaches the daemon through a socket in the store:
 *
 *   STORE/.vmbundlefs/run/ctl.<MAJOR>:<MINOR>
 *
 * AF_UNIX, SOCK_SEQPACKET, mode 0666, named by the device number of the mount (as
 * /proc/self/mountinfo shows it), so that a client finds the socket of a mount it
 * sees without listing run/: run/ has mode 0711 and .vmbundlefs is given o+x (0711)
 * by the daemon, so any user can reach the socket by its name and nothing else.
 * The daemon decides who may do what from the peer's credentials (SO_PEERCRED,
 * SO_PEERGROUPS): root, or the owner of the bundle; clone: read access to the
 * source and write access to the store's root, as the mount's own permission
 * checks would decide.
 *
 * One request per connection: one message "<op>\0<arg1>\0<arg2>\0..." (at most
 * VMB_CTL_MSG_MAX bytes); one reply "<errno decimal> <message>" (0: success, the
 * message is what to print; else the error's message). The socket exists while the
 * mount serves; it is removed at unmount, and a daemon starting sweeps sockets
 * nobody listens on (a killed daemon's).
 */
#ifndef VMB_CTL_H
#define VMB_CTL_H

#include <limits.h>
#include <sys/types.h>
#include "base/err.h"

#define VMB_CTL_RUN_DIR "run"
#define VMB_CTL_RUN_MODE 0711
#define VMB_CTL_META_MODE 0711     /* .vmbundlefs, for the sockets' sake */
#define VMB_CTL_PREFIX "ctl."
#define VMB_CTL_MSG_MAX (3 * PATH_MAX + 256)
#define VMB_CTL_REPLY_MAX (VMB_ERR_MAX + PATH_MAX + 64)
#define VMB_CTL_TIMEOUT_MS 5000    /* for a client to send its request */

struct vmb_vfs;
struct vmb_ctl;

/* The device ("MAJOR:MINOR") of the mount on mountpoint (its realpath; the last
 * mount there, the one on top) in this process's /proc/self/mountinfo
 * (base/mountinfo.h), in dev: the daemon's own, found without a stat of the mount
 * point (which would wait for the daemon). 0, or -errno (-ENOENT: not there). */
int vmb_ctl_mount_dev(const char *mountpoint, char *dev, size_t size);

/* Bind the socket of the mount whose device is devname ("MAJOR:MINOR") and start
 * the thread that serves it. mountpoint is for messages. Sweeps stale sockets. */
int vmb_ctl_start(struct vmb_ctl **out, struct vmb_vfs *v, const char *mountpoint,
		  const char *devname, struct vmb_err *err);
/* Stop serving (a request being carried out finishes first), remove the socket.
 * NULL-safe. */
void vmb_ctl_stop(struct vmb_ctl *c);

/* The caller of a request (vfs_ctl_ops.c). */
struct vmb_ctl_caller {
	uid_t uid;
	gid_t gid;
	pid_t pid;
	gid_t *groups;     /* supplementary groups */
	int ngroups;
};

/* Carry out one request (argv[0] is the op): returns 0 or -errno; *msg gets the
 * text of the reply (malloc'ed, may be NULL) or err the message of the failure. */
int vmb_ctl_handle(struct vmb_vfs *v, const char *mountpoint,
		   const struct vmb_ctl_caller *who, char **argv, int argc, char **msg,
		   struct vmb_err *err);
/* The same for a structural request once checked (vfs_ctl_hooks.c): the store
 * operation (store/ops.h) with the daemon's hooks. */
int vmb_ctl_run(struct vmb_vfs *v, const char *mountpoint, const struct vmb_ctl_caller *who,
		char **argv, int argc, char **msg, struct vmb_err *err);

#endif
