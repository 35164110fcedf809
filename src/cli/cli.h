/* cli.h - the vmbundlefs command's subcommands. Each returns the process exit
 * status: 0 ok, 1 error (message printed), 2 usage error; fsck has its own codes. */
#ifndef VMB_CLI_H
#define VMB_CLI_H

#include <stddef.h>
#include "base/err.h"
#include "store/ops.h"
#include "store/store.h"

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
int vmb_cli_clone(int argc, char **argv);
int vmb_cli_snapshot(int argc, char **argv);
int vmb_cli_flatten(int argc, char **argv);
int vmb_cli_gc(int argc, char **argv);
int vmb_cli_ping(int argc, char **argv);
int vmb_cli_pull(int argc, char **argv);
int vmb_cli_prefetch(int argc, char **argv);
/* mount of a published store's URL (cli_remote.c): a private read-only shadow store
 * pulled into CACHE/mnt/, mounted read-only. */
int vmb_cli_mount_url(const char *url, const char *mountpoint, const char *fuse_opts,
		      int foreground, int debug, const char *logfile);

/* Parse the remote options of an -o list (cache=, cache_max=, hard, soft, cafile=,
 * pubkey=, endpoint=) into o (strings point into a copy that lives for the
 * process). strict: any other option is an error (pull, prefetch, publish, whose
 * -o holds nothing else: a misspelt cache= must not quietly mean the default
 * cache); else other options are skipped (a mount's -o list, whose FUSE options
 * are parsed elsewhere). 0 or -EINVAL with a message. */
struct vmb_remote_opts;
int vmb_cli_remote_opts(const char *opts, struct vmb_remote_opts *o, int strict,
			struct vmb_err *err);
int vmb_cli_publish(int argc, char **argv);

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

/* A store opened for a structural command run by the CLI itself (cli_ops.c): with
 * its lock taken exclusively, writable, with its layers and remote layers (lazy: no
 * cache touched unless used); c is ready for store/ops.h. vmb_cli_ops_begin: 0, or
 * -errno with a message (-EBUSY: mounted, -EROFS); it waits while another command
 * or fsck holds the lock of a store that is not mounted. */
struct vmb_cli_ops {
	struct vmb_store s;
	struct vmb_opctx c;
	struct vmb_remote *r;
};
int vmb_cli_ops_begin(struct vmb_cli_ops *o, const char *store, struct vmb_err *err);
/* The remote options the stores vmb_cli_ops_begin opens from now on use (default:
 * none, i.e. the default cache): a command's -o (pull, publish). ro's strings must
 * live for the process (vmb_cli_remote_opts's do). */
void vmb_cli_ops_remote_opts(const struct vmb_remote_opts *ro);
void vmb_cli_ops_end(struct vmb_cli_ops *o);
/* A remote context with those options (lazy: no cache touched unless used), for a
 * command that reads bundles over remote layers without vmb_cli_ops_begin
 * (export). 0 or -errno with a message; vmb_remote_close it. */
int vmb_cli_remote_ctx(struct vmb_remote **r, struct vmb_err *err);

/* "vmbundlefs: <message>" on stderr. */
void vmb_cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A log (base/err.h) that writes each message so, for the library's logging in the
 * CLI's own processes (pull, prefetch, publish, structural commands). */
extern const struct vmb_log vmb_cli_log;
/* Errors about a store (src/cli/cli_log.c). where is a STORE argument or a path
 * inside a mount of one; code the errno of the failure (err.code).
 * vmb_cli_store_error prints "vmbundlefs: <message>" and, when a daemon's messages
 * may explain code (vmb_cli_log_explains: EIO, EBUSY, a daemon gone, ...) and where
 * leads to a store, a second line naming the store's log and `vmbundlefs status`
 * (vmb_cli_log_hint). Usage errors use vmb_cli_error and stay short. */
void vmb_cli_store_error(const char *where, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int vmb_cli_log_explains(int code);
void vmb_cli_log_hint(const char *where);
/* The store that where names: where itself when it holds a store's metadata
 * directory, else the source of the vmbundlefs mount that holds where (from
 * /proc/self/mountinfo). malloc'd; NULL when none. */
char *vmb_cli_store_of(const char *where);
/* STORE/.vmbundlefs/log into buf; -ENAMETOOLONG when it does not fit. */
int vmb_cli_log_path(const char *store, char *buf, size_t size);
/* ls: on stderr, the last up to show lines of the store's log of the last window
 * seconds that are not routine (mounted, unmounted, stopping on signal, note: ...),
 * with their count and a pointer to `vmbundlefs status`; nothing when there are
 * none or the log cannot be read. */
#define VMB_CLI_LS_LOG_LINES 3
#define VMB_CLI_LS_LOG_WINDOW (24 * 3600)
void vmb_cli_log_recent(const char *store, int metafd, size_t show, long window);
/* One vmbundlefs mount, as /proc/self/mountinfo shows it (unescaped). */
struct vmb_cli_mount {
	char dev[64];            /* major:minor */
	char mp[PATH_MAX];       /* the mount point */
	char source[PATH_MAX];   /* the store, as the mount's fsname spells it */
};
/* The vmbundlefs mounts (*n of them; *out malloc'ed, NULL when none), from
 * base/mountinfo.h (cli_ctl.c). */
int vmb_cli_mounts(struct vmb_cli_mount **out, size_t *n, struct vmb_err *err);
/* The deepest of all[0..n) whose mount point holds real (a realpath), or NULL;
 * *rel (may be NULL) its path inside, "" at the mount point (points into real). */
const struct vmb_cli_mount *vmb_cli_mount_holding(const struct vmb_cli_mount *all, size_t n,
						  const char *real, const char **rel);
/* Print the version line. */
void vmb_cli_version(void);
/* 1 when argv holds --help or --version for this subcommand (and prints it). */
int vmb_cli_common(int argc, char **argv, const char *usage);

#endif
