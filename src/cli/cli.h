/* cli.h - the vmbundlefs command's subcommands. Each returns the process exit
 * status: 0 ok, 1 error (message printed), 2 usage error; fsck has its own codes. */
#ifndef VMB_CLI_H
#define VMB_CLI_H

#define VMB_EXIT_OK 0
#define VMB_EXIT_ERROR 1
#define VMB_EXIT_USAGE 2

int vmb_cli_init(int argc, char **argv);
int vmb_cli_mount(int argc, char **argv);
int vmb_cli_ls(int argc, char **argv);
int vmb_cli_fsck(int argc, char **argv);
int vmb_cli_import(int argc, char **argv);
int vmb_cli_export(int argc, char **argv);
int vmb_cli_deps(int argc, char **argv);
int vmb_cli_status(int argc, char **argv);
int vmb_cli_ping(int argc, char **argv);

/* The control channel of a mounted store (cli_ctl.c, vfs/ctl.h). Structural
 * commands given STORE or a path inside a mount call vmb_cli_ctl_find: when
 * t->mountpoint is set the store is mounted (once) and the request goes to its
 * daemon with vmb_cli_ctl_call; when it is NULL they work on t->store directly.
 * A store with more than one mount is refused (-EBUSY, with a message naming them). */
#include "base/err.h"
struct vmb_ctl_target {
	char *store;        /* the store's path (realpath, or the mount's fsname) */
	char *mountpoint;   /* its one mount, or NULL */
	char dev[64];       /* the mount's device, "MAJOR:MINOR" */
	char *rel;          /* the target inside the mount ("" for its root), or NULL */
};
int vmb_cli_ctl_find(const char *target, struct vmb_ctl_target *t, struct vmb_err *err);
void vmb_cli_ctl_target_free(struct vmb_ctl_target *t);
/* Send argv (argv[0]: the op) and wait for the reply: 0 with *msg (malloc'ed: what
 * to print), or -errno with the daemon's message in err. */
int vmb_cli_ctl_call(const struct vmb_ctl_target *t, const char *const *argv, int argc,
		     char **msg, struct vmb_err *err);

/* "vmbundlefs: <message>" on stderr. */
void vmb_cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print the version line. */
void vmb_cli_version(void);
/* 1 when argv holds --help or --version for this subcommand (and prints it). */
int vmb_cli_common(int argc, char **argv, const char *usage);

#endif
