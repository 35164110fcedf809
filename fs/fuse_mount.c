/* fuse_mount.c - mount a store, tune the mount, run the multithreaded loop. */
#define FUSE_USE_VERSION 314
#include "config.h"
#include "fs/vmbfs.h"
#include "vfs/vfs.h"
#include "vfs/ctl.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

extern const struct fuse_lowlevel_ops vmb_fuse_ops;

#define DEFAULT_READAHEAD_KB VMB_FS_DEFAULT_READAHEAD_KB
#define DEFAULT_MAX_THREADS VMB_FS_DEFAULT_MAX_THREADS

/* msg to the mount's own destination: the --log file, else syslog (at prio), else
 * standard error (unless quiet). Under fs->loglock. */
static void emit(struct vmb_fs *fs, int prio, int quiet, const char *msg)
{
	if (fs->logfp) {
		fprintf(fs->logfp, "vmbundlefs: %s\n", msg);
		fflush(fs->logfp);
	} else if (fs->use_syslog) {
		syslog(prio, "%s", msg);
	} else if (!quiet) {
		fprintf(stderr, "vmbundlefs: %s\n", msg);
	}
}

static void log_line(void *arg, const char *msg)
{
	struct vmb_fs *fs = arg;

	pthread_mutex_lock(&fs->loglock);
	vmb_store_log_write(fs->slog, msg);
	emit(fs, LOG_ERR, 0, msg);
	pthread_mutex_unlock(&fs->loglock);
}

/* A mount's start and end, for a --log file or syslog (the store's log has its
 * own "mounted"/"unmounted" lines, which status reads; standard error, the
 * terminal of a foreground mount, does not get them). */
static void log_event(struct vmb_fs *fs, const char *fmt, ...)
{
	char msg[VMB_ERR_MAX + PATH_MAX * 2];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&fs->loglock);
	emit(fs, LOG_INFO, 1, msg);
	pthread_mutex_unlock(&fs->loglock);
}

struct own_opts {
	unsigned readahead_kb;   /* UINT_MAX: not given (the default of the mount's kind) */
	unsigned max_threads;
	unsigned idle_fds;
	unsigned open_fds;
	unsigned lock_fds;
	int readonly;
	int buffered_writes;
	char *aux_patterns;
	char *in_use;
	unsigned long lock_cap;
	char *cache, *cafile, *pubkey;   /* remote images (issue 11) */
	unsigned long long cache_max;
	int hard;
	int shadow;    /* internal (mount URL): the store is a shadow, removed at exit */
	char *pass;    /* options for libfuse, comma-separated */
};

/* Free what split_opts allocated (safe on a zeroed or half-filled struct). */
static void own_opts_free(struct own_opts *o)
{
	free(o->pass);
	free(o->aux_patterns);
	free(o->in_use);
	free(o->cache);
	free(o->cafile);
	free(o->pubkey);
}

/* SIZE with an optional K, M, G or T suffix (powers of 1024). */
static int parse_size(const char *s, unsigned long long *out)
{
	char *end;
	unsigned long long n;
	int shift = 0;

	errno = 0;
	n = strtoull(s, &end, 10);
	if (errno || end == s || s[0] == '-')
		return -1;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	default: break;
	}
	if (*end || (shift && n > (~0ULL >> shift)))
		return -1;
	*out = n << shift;
	return 0;
}

/* Take vmbundlefs' own options out of the -o list; keep the rest for libfuse. */
/* path made absolute against the working directory (malloc'ed), or NULL. */
static char *abs_path(const char *path)
{
	char *cwd, *out = NULL;

	if (path[0] == '/')
		return strdup(path);
	cwd = getcwd(NULL, 0);
	if (cwd && asprintf(&out, "%s/%s", strcmp(cwd, "/") ? cwd : "", path) < 0)
		out = NULL;
	free(cwd);
	return out;
}

static int split_opts(const char *in, struct own_opts *o, struct vmb_err *err)
{
	char *copy, *tok, *save = NULL;
	size_t used = 0, cap;
	int r = 0;

	o->readahead_kb = UINT_MAX;
	o->max_threads = DEFAULT_MAX_THREADS;
	o->readonly = 0;
	cap = (in ? strlen(in) : 0) + 1;
	o->pass = calloc(1, cap);
	copy = strdup(in ? in : "");
	if (!o->pass || !copy) {
		r = vmb_err_set(err, ENOMEM, "out of memory");
		goto out;
	}
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *end;
		if (!strncmp(tok, "idle_fds=", 9) || !strncmp(tok, "open_fds=", 9) ||
		    !strncmp(tok, "lock_fds=", 9)) {
			unsigned long n;
			errno = 0;
			n = strtoul(tok + 9, &end, 10);
			if (errno || !tok[9] || *end || n < 1 || n > 1u << 24) {
				r = vmb_err_set(err, EINVAL, "bad value in mount option '%s'", tok);
				goto out;
			}
			if (tok[0] == 'i')
				o->idle_fds = (unsigned)n;
			else if (tok[0] == 'o')
				o->open_fds = (unsigned)n;
			else
				o->lock_fds = (unsigned)n;
			continue;
		}
		if (!strncmp(tok, "readahead_kb=", 13) || !strncmp(tok, "max_threads=", 12)) {
			const char *val = strchr(tok, '=') + 1;
			unsigned long n;
			errno = 0;
			n = strtoul(val, &end, 10);
			if (errno || !*val || *end || n > 1u << 20 ||
			    (tok[0] == 'm' && (n < 1 || n > 1024))) {
				r = vmb_err_set(err, EINVAL, "bad value in mount option '%s'", tok);
				goto out;
			}
			if (tok[0] == 'r')
				o->readahead_kb = (unsigned)n;
			else
				o->max_threads = (unsigned)n;
			continue;
		}
		if (!strncmp(tok, "aux_patterns=", 13)) {
			free(o->aux_patterns);
			o->aux_patterns = strdup(tok + 13);
			if (!o->aux_patterns || !o->aux_patterns[0]) {
				r = vmb_err_set(err, EINVAL, "bad value in mount option '%s'", tok);
				goto out;
			}
			continue;
		}
		if (!strncmp(tok, "lock_cap=", 9)) {
			unsigned long n;
			errno = 0;
			n = strtoul(tok + 9, &end, 10);
			if (errno || !tok[9] || *end || n > 1ul << 30) {
				r = vmb_err_set(err, EINVAL, "bad value in mount option '%s' (a "
						"number of locks per process, 0 for no cap)", tok);
				goto out;
			}
			o->lock_cap = n ? n : (unsigned long)-1;
			continue;
		}
		if (!strncmp(tok, "in_use=", 7)) {
			if (strcmp(tok + 7, "any") && strcmp(tok + 7, "aux")) {
				r = vmb_err_set(err, EINVAL, "bad value in mount option '%s' "
						"(expected in_use=any or in_use=aux)", tok);
				goto out;
			}
			free(o->in_use);
			o->in_use = strdup(tok + 7);
			if (!o->in_use) {
				r = vmb_err_set(err, ENOMEM, "out of memory");
				goto out;
			}
			continue;
		}
		if (!strncmp(tok, "cache=", 6) || !strncmp(tok, "cafile=", 7) ||
		    !strncmp(tok, "pubkey=", 7)) {
			const char *val = strchr(tok, '=') + 1;
			char **dst = tok[1] == 'a' && tok[2] == 'c' ? &o->cache :
				     tok[1] == 'a' ? &o->cafile : &o->pubkey;

			if (!*val) {
				r = vmb_err_set(err, EINVAL, "bad value in mount option '%s'", tok);
				goto out;
			}
			free(*dst);
			/* absolute: a daemon works from / (a relative cache= made a
			 * second cache under /, and a relative cafile= failed) */
			*dst = abs_path(val);
			if (!*dst) {
				r = vmb_err_set(err, ENOMEM, "out of memory");
				goto out;
			}
			continue;
		}
		if (!strncmp(tok, "endpoint=", 9)) {
			/* the S3 endpoint of a URL mount: the CLI folds it into the URL the
			 * shadow store's bundles keep (cli/cli_remote.c); nothing here */
			if (!tok[9]) {
				r = vmb_err_set(err, EINVAL, "bad value in mount option '%s'", tok);
				goto out;
			}
			continue;
		}
		if (!strncmp(tok, "cache_max=", 10)) {
			if (parse_size(tok + 10, &o->cache_max) < 0) {
				r = vmb_err_set(err, EINVAL, "bad value in mount option '%s' (bytes, "
						"with an optional K, M, G or T)", tok);
				goto out;
			}
			continue;
		}
		if (!strcmp(tok, "hard")) {
			o->hard = 1;
			continue;
		}
		if (!strcmp(tok, "vmb_shadow")) {
			o->shadow = 1;
			continue;
		}
		if (!strcmp(tok, "soft")) {
			o->hard = 0;
			continue;
		}
		if (!strncmp(tok, "max_read=", 9)) {
			r = vmb_err_set(err, EINVAL, "mount option '%s': vmbundlefs sets max_read "
					"itself (%u)", tok, VMB_FS_MAX_SPLICE);
			goto out;
		}
		if (!strcmp(tok, "buffered_writes")) {
			o->buffered_writes = 1;
			continue;
		}
		if (!strcmp(tok, "ro"))
			o->readonly = 1;
		used += (size_t)snprintf(o->pass + used, cap - used, "%s%s", used ? "," : "", tok);
	}
out:
	free(copy);
	return r;
}

int vmb_fs_check_opts(const char *fuse_opts, struct vmb_err *err)
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct own_opts own = {0};
	struct fuse_session *se;
	int r = split_opts(fuse_opts, &own, err);

	if (r == 0 && own.pass[0]) {
		/* libfuse parses its options when the session is made, before any mount;
		 * it names an unknown one on stderr itself. */
		if (fuse_opt_add_arg(&args, "vmbundlefs") || fuse_opt_add_arg(&args, "-o") ||
		    fuse_opt_add_arg(&args, own.pass)) {
			r = vmb_err_set(err, ENOMEM, "out of memory");
		} else {
			se = fuse_session_new(&args, &vmb_fuse_ops, sizeof(vmb_fuse_ops), NULL);
			if (se)
				fuse_session_destroy(se);
			else
				r = vmb_err_set(err, EINVAL, "bad mount options '%s' (see "
						"vmbundlefs(1) and mount.fuse3(8))", own.pass);
		}
	}
	fuse_opt_free_args(&args);
	own_opts_free(&own);
	return r;
}

/* The device ("MAJOR:MINOR") of the mount on mountpoint (the last one is on top),
 * from mountinfo (vmb_ctl_mount_dev): a stat of the mount point would wait for this
 * very daemon. 0, or -1 when not found. */
static int mount_dev(const char *mountpoint, char *dev, size_t size)
{
	return vmb_ctl_mount_dev(mountpoint, dev, size) < 0 ? -1 : 0;
}

/* Our mount (device mydev) is no longer on mnt: unmounted or detached. */
static int gone_from(const char *mnt, const char *mydev)
{
	char dev[64];

	return mydev[0] && (mount_dev(mnt, dev, sizeof(dev)) < 0 || strcmp(dev, mydev) != 0);
}

/* Raise the mount's readahead so the kernel sends 1 MiB read requests (FUSE-NOTES:
 * max_readahead alone does not). */
static void set_readahead(struct vmb_fs *fs, const char *mountpoint, unsigned kb)
{
	char dev[64] = "", path[128];
	int fd;

	if (kb == 0 || mount_dev(mountpoint, dev, sizeof(dev)) < 0)
		return;
	snprintf(path, sizeof(path), "/sys/class/bdi/%s/read_ahead_kb", dev);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		char val[32];
		int len = snprintf(val, sizeof(val), "%u\n", kb);
		if (write(fd, val, (size_t)len) != len)
			vmb_log_msg(&fs->log, "cannot set the readahead of %s to %u KiB: %s",
				    mountpoint, kb, strerror(errno));
		close(fd);
	}
}

/* The control channel (vfs/ctl.h), once the daemon is what it will stay (after
 * fuse_daemonize's fork: threads do not survive it). Without it the mount still
 * serves; structural commands then say that its daemon does not answer. */
/* The session's end, seen from a thread of its own: when the session has exited (a
 * signal, an unmount), fetches still waiting for the network (hard mode) are ended,
 * so that the workers carrying them return and libfuse can join them. Polled: the
 * session has no notification, and 5 wake-ups a second cost nothing. */
struct exit_watch {
	struct fuse_session *se;
	struct vmb_vfs *vfs;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t th;
	int stop, started;
};

static void *watch_exit(void *arg)
{
	struct exit_watch *w = arg;
	struct timespec t;

	pthread_mutex_lock(&w->mu);
	while (!w->stop && !fuse_session_exited(w->se)) {
		vmb_fs_deadline(&t, 200);
		pthread_cond_timedwait(&w->cv, &w->mu, &t);
	}
	pthread_mutex_unlock(&w->mu);
	if (fuse_session_exited(w->se))
		vmb_vfs_cancel(w->vfs);
	return NULL;
}

static void watch_start(struct exit_watch *w, struct fuse_session *se, struct vmb_vfs *v)
{
	sigset_t all, old;

	w->se = se;
	w->vfs = v;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	/* signals are the main thread's (libfuse's handlers end the session there) */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	w->started = pthread_create(&w->th, NULL, watch_exit, w) == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static void watch_stop(struct exit_watch *w)
{
	if (!w->started)
		return;
	pthread_mutex_lock(&w->mu);
	w->stop = 1;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->th, NULL);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cv);
	w->started = 0;
}

static struct vmb_ctl *start_ctl(struct vmb_fs *fs, const char *mnt)
{
	struct vmb_ctl *c = NULL;
	struct vmb_err e = {0};
	char dev[64];

	if (mount_dev(mnt, dev, sizeof(dev)) < 0)
		vmb_log_msg(&fs->log, "no control channel: the mount on '%s' is not in "
			    "/proc/self/mountinfo", mnt);
	else if (vmb_ctl_start(&c, fs->vfs, mnt, dev, &e) < 0)
		vmb_log_msg(&fs->log, "no control channel (structural commands cannot reach "
			    "this mount): %s", e.msg);
	return c;
}

static int open_log(struct vmb_fs *fs, const struct vmb_mount_opts *o, struct vmb_err *err)
{
	pthread_mutex_init(&fs->loglock, NULL);
	pthread_mutex_init(&fs->wlock, NULL);
	pthread_cond_init(&fs->wdone, NULL);
	fs->log.fn = log_line;
	fs->log.arg = fs;
	{
		/* The store's own log, wherever else messages go; without one (not a
		 * store: the open fails and says so; a read-only store) the rest works. */
		char *mp = realpath(o->mountpoint, NULL);
		vmb_store_log_open(&fs->slog, o->store, mp ? mp : o->mountpoint, NULL);
		free(mp);
	}
	if (o->logfile) {
		fs->logfp = fopen(o->logfile, "ae");
		if (!fs->logfp)
			return vmb_err_sys(err, errno, "cannot open log file '%s'", o->logfile);
		setvbuf(fs->logfp, NULL, _IOLBF, 0);
	}
	return 0;
}

/* The descriptor caps of the vfs are fractions of this limit (vfs_fds.c): raise it
 * as far as allowed (the hard limit too, when running as root). */
static void raise_fd_limit(struct vmb_fs *fs)
{
	struct rlimit rl;
	long nr_open = 1048576;
	FILE *f = fopen("/proc/sys/fs/nr_open", "re");

	if (f) {
		if (fscanf(f, "%ld", &nr_open) != 1)
			nr_open = 1048576;
		fclose(f);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (geteuid() == 0 && rl.rlim_max < (rlim_t)nr_open)
		rl.rlim_max = (rlim_t)nr_open;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0 && getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	(void)fs;
}

static void wake_handler(int sig)
{
	(void)sig;
}

static int check_mountpoint(const char *mp, struct vmb_err *err)
{
	struct stat st;

	if (stat(mp, &st) < 0)
		return vmb_err_sys(err, errno, "cannot mount on '%s'", mp);
	if (!S_ISDIR(st.st_mode))
		return vmb_err_set(err, ENOTDIR, "cannot mount on '%s': not a directory", mp);
	return 0;
}

int vmb_fs_main(const struct vmb_mount_opts *o, struct vmb_err *err)
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fuse_loop_config *cfg = NULL;
	struct fuse_session *se = NULL;
	struct vmb_vfs_opts vo = {0};
	struct own_opts own = {0};
	struct vmb_ctl *ctl = NULL;
	struct vmb_fs fs;
	struct exit_watch watch = { 0 };
	char *optstr = NULL, *fsname = NULL, *p, *mnt = NULL;
	int mounted = 0, handlers = 0, stopped_by_signal = 0, r;
	char mydev[64] = "";

	memset(&fs, 0, sizeof(fs));
	raise_fd_limit(&fs);
	/* libfuse cancels its worker threads at unmount, which makes glibc load
	 * libgcc_s; load it now, while descriptors are plentiful. */
	if (!dlopen("libgcc_s.so.1", RTLD_NOW | RTLD_NODELETE))
		vmb_log_msg(NULL, "note: cannot preload libgcc_s.so.1: %s", dlerror());
	r = open_log(&fs, o, err);
	if (r < 0)
		goto out;
	r = split_opts(o->fuse_opts, &own, err);
	if (r < 0)
		goto out;
	r = check_mountpoint(o->mountpoint, err);
	if (r < 0)
		goto out;
	/* Absolute: a daemon works from / and must unmount what it mounted. */
	mnt = realpath(o->mountpoint, NULL);
	if (!mnt) {
		r = vmb_err_sys(err, errno, "cannot mount on '%s'", o->mountpoint);
		goto out;
	}
	vo.readonly = own.readonly;
	vo.private_store = own.shadow;
	vo.lazy = own.shadow ? o->lazy : NULL;
	vo.aux_patterns = own.aux_patterns;
	vo.inuse_rule = own.in_use;
	vo.lock_cap = own.lock_cap;
	vo.idle_fds = own.idle_fds;
	vo.open_fds = own.open_fds;
	vo.lock_fds = own.lock_fds;
	vo.buffered_writes = own.buffered_writes;
	vo.remote_cache = own.cache;
	vo.remote_cache_max = own.cache_max;
	vo.remote_hard = own.hard;
	vo.remote_cafile = own.cafile;
	vo.remote_pubkey = own.pubkey;
	vo.log = &fs.log;
	vo.stale = vmb_fs_stale;
	vo.stale_arg = &fs;
	vo.gone = vmb_fs_gone;
	r = vmb_vfs_new(&fs.vfs, o->store, &vo, err);
	if (r < 0)
		goto out;

	fsname = realpath(o->store, NULL);   /* absolute: 'vmbundlefs status' finds it */
	if (!fsname)
		fsname = strdup(o->store);
	if (!fsname) {
		r = vmb_err_set(err, ENOMEM, "out of memory");
		goto out;
	}
	for (p = fsname; *p; p++)   /* commas would split the option list */
		if (*p == ',' || *p == '\\')
			*p = '_';
	/* max_read keeps read requests spliceable (vmbfs.h); op_init says the same. */
	if (asprintf(&optstr, "fsname=%s,subtype=vmbundlefs,default_permissions,max_read=%u%s%s",
		     fsname, VMB_FS_MAX_SPLICE, own.pass[0] ? "," : "", own.pass) < 0) {
		optstr = NULL;
		r = vmb_err_set(err, ENOMEM, "out of memory");
		goto out;
	}
	if (fuse_opt_add_arg(&args, "vmbundlefs") || fuse_opt_add_arg(&args, "-o") ||
	    fuse_opt_add_arg(&args, optstr) || (o->debug && fuse_opt_add_arg(&args, "-d"))) {
		r = vmb_err_set(err, ENOMEM, "out of memory");
		goto out;
	}
	se = fuse_session_new(&args, &vmb_fuse_ops, sizeof(vmb_fuse_ops), &fs);
	if (!se) {
		r = vmb_err_set(err, EINVAL, "cannot start a FUSE session (bad mount options "
				"'%s'?)", own.pass);
		goto out;
	}
	fs.se = se;
	fs.hard = own.hard;
	if (fuse_set_signal_handlers(se) != 0) {
		r = vmb_err_set(err, EIO, "cannot install signal handlers");
		goto out;
	}
	handlers = 1;
	if (fuse_session_mount(se, mnt) != 0) {
		r = vmb_err_set(err, EIO, "cannot mount '%s' on '%s' (is /dev/fuse available, "
				"and fusermount3 installed?)", o->store, o->mountpoint);
		goto out;
	}
	mounted = 1;
	/* lookups of one directory at once (fuse_io.c); without it, as before */
	r = vmb_fs_io_install(se, fuse_session_fd(se));
	if (r < 0)
		vmb_log_msg(&fs.log, "note: lookups in one directory are answered one at a "
			    "time (cannot install the session's I/O: %s)", strerror(-r));
	else
		fs.own_io = 1;
	r = 0;
	(void)mount_dev(mnt, mydev, sizeof(mydev));   /* for the end: gone_from() */
	if (own.readahead_kb == UINT_MAX)
		own.readahead_kb = own.shadow ? VMB_FS_URL_READAHEAD_KB : DEFAULT_READAHEAD_KB;
	set_readahead(&fs, mnt, own.readahead_kb);
	if (!o->foreground) {
		if (!o->logfile) {
			openlog("vmbundlefs", LOG_PID, LOG_DAEMON);
			fs.use_syslog = 1;
		}
		if (fuse_daemonize(0) != 0) {
			r = vmb_err_set(err, EIO, "cannot become a daemon");
			goto out;
		}
	}
	vmb_store_log_write(fs.slog, "mounted");   /* by the daemon: its pid is on the line */
	log_event(&fs, "mounted '%s' on '%s' (daemon pid %ld)", o->source ? o->source : fsname,
		  mnt, (long)getpid());
	if (own.shadow) {
		/* a published store's URL: its images' indexes load now, in the
		 * background, not at the first open (a thread: after the fork) */
		struct vmb_err pe = { 0 };

		if (vmb_vfs_preload_remote(fs.vfs, &pe) < 0)
			vmb_log_msg(&fs.log, "note: %s", pe.msg);
	}
	ctl = start_ctl(&fs, mnt);
	{
		/* Wakes a worker out of a lock wait; no SA_RESTART, so the wait returns. */
		struct sigaction sa;
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = wake_handler;
		sigemptyset(&sa.sa_mask);
		sigaction(VMB_FS_WAKE_SIGNAL, &sa, NULL);
	}
	cfg = fuse_loop_cfg_create();
	if (!cfg) {
		r = vmb_err_set(err, ENOMEM, "out of memory");
		goto out;
	}
	fuse_loop_cfg_set_clone_fd(cfg, 0);
	fuse_loop_cfg_set_max_threads(cfg, own.max_threads);
	fuse_loop_cfg_set_idle_threads(cfg, own.max_threads / 2 ? own.max_threads / 2 : 1);
	watch_start(&watch, se, fs.vfs);
	r = fuse_session_loop_mt(se, cfg);
	watch_stop(&watch);
	stopped_by_signal = r > 0;
	if (r > 0) {   /* SIGTERM, SIGINT, SIGHUP: a requested stop, unmounted below */
		vmb_log_msg(&fs.log, "stopping on signal %d (%s): unmounting '%s'", r,
			    strsignal(r), mnt);
		r = 0;
	} else if (r == -ECONNABORTED && gone_from(mnt, mydev)) {
		/* The kernel ended the connection of a mount already detached (a lazy
		 * unmount whose last file closed): the end of its work, as ENODEV is;
		 * the kernel can report either when a request is read at that moment. */
		vmb_log_msg(&fs.log, "the FUSE connection for '%s' was closed after the mount "
			    "was detached", mnt);
		r = 0;
	} else if (r != 0) {
		r = vmb_err_set(err, -r, "the FUSE session for '%s' ended with an error", mnt);
	}
out:
	/* No structural command from now on (one being carried out finishes). */
	vmb_ctl_stop(ctl);
	if (mounted && stopped_by_signal) {
		/* The fetches are ended (watch_exit): answer what the kernel still asks
		 * (a failed read tried again), before the waiters go (a lock asked for
		 * meanwhile gets a waiter of its own, stopped below). */
		vmb_vfs_cancel(fs.vfs);
		vmb_fs_serve_grace(se, 100, 1000);
	}
	/* Waiting lock calls end before the session and the files they use go away. */
	vmb_fs_stop_waiters(&fs);
	if (cfg)
		fuse_loop_cfg_destroy(cfg);
	if (mounted) {
		fuse_session_unmount(se);
		char line[VMB_ERR_MAX + 64];
		snprintf(line, sizeof(line), r < 0 ? "unmounted after an error: %s" : "unmounted",
			 err->msg);
		vmb_store_log_write(fs.slog, line);
		if (r < 0)
			log_event(&fs, "unmounted '%s' after an error: %s", mnt, err->msg);
		else
			log_event(&fs, "unmounted '%s'", mnt);
	} else if (r < 0) {
		/* A mount that failed (started by a boot script, its error lost, say) is
		 * in the store's log too, where the CLI's message sends the user. */
		char line[VMB_ERR_MAX + 64];
		snprintf(line, sizeof(line), "cannot mount: %s", err->msg);
		vmb_store_log_write(fs.slog, line);
	}
	if (handlers)
		fuse_remove_signal_handlers(se);
	if (se && mounted)
		vmb_fs_drain_interrupts(se, fs.own_io);
	if (se)
		fuse_session_destroy(se);
	vmb_vfs_free(fs.vfs);   /* persists every open file's map */
	if (own.shadow && mounted) {
		struct vmb_err e2;

		if (vmb_vfs_remove_store(o->store, &e2) < 0)
			vmb_log_msg(&fs.log, "%s", e2.msg);
	}
	fuse_opt_free_args(&args);
	free(optstr);
	free(fsname);
	free(mnt);
	own_opts_free(&own);
	vmb_store_log_close(fs.slog);
	if (fs.logfp)
		fclose(fs.logfp);
	if (fs.use_syslog)
		closelog();
	pthread_mutex_destroy(&fs.loglock);
	pthread_cond_destroy(&fs.wdone);
	pthread_mutex_destroy(&fs.wlock);
	return r;
}
