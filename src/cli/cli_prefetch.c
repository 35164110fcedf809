/* cli_prefetch.c - `vmbundlefs prefetch PATH...` (issue 11).
 *
 * A path inside a mount is read through the mount (its data extents only, found
 * with SEEK_DATA/SEEK_HOLE), so the mount's daemon fetches and caches what is
 * missing, whoever runs it; a path in a store that is not mounted has its remote
 * base's chunks filled here. Either way what is cached is skipped, so a prefetch
 * that was stopped resumes where it stopped.
 *
 * A directory (a bundle, a store, a mount) stands for every regular file under it,
 * walked without following symbolic links; other kinds of file (links, FIFOs) in
 * it are skipped, and named on their own they are an error. The rate cap holds
 * over each PATH: it sleeps so that the bytes read never run ahead of rate *
 * elapsed time.
 */
#include "config.h"
#include "cli/cli.h"
#include "cli/progress.h"
#include "fs/vmbfs.h"
#include "store/ops.h"
#include "store/store.h"
#include "layer/layer.h"
#include "remote/remote.h"
#include "remote/fetch.h"
#include "remote/cache.h"
#include "base/clock.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

static const char prefetch_usage[] =
	"Usage: vmbundlefs prefetch [--rate BYTES/s] [-o OPTS] PATH...\n"
	"Fetch into the cache every chunk of the remote images of the files PATH, or of\n"
	"every file under the directories PATH (a pulled bundle, through its mount or\n"
	"in its store), that is not cached yet, with a progress bar on a terminal.\n"
	"Stopped, it resumes where it was: what is cached is not fetched again.\n"
	"  --rate BYTES/s   at most this many bytes a second (K, M, G suffixes)\n"
	"  --endpoint URL   for a store that is not mounted: the S3-compatible endpoint\n"
	"                   of remote bases pulled from an s3:// URL that names none\n"
	"                   (those pulled through an endpoint remember it)\n"
	"  -o OPTS          as for pull (cache=, cafile=, hard), for a store that is\n"
	"                   not mounted\n";

/* One path's run: the rate cap's clock and count, over all of its files. */
struct run {
	uint64_t rate;
	double t0;
	uint64_t bytes;              /* read (mount) or fetched (store) so far */
	struct vmb_layers *ls;       /* a store that is not mounted; else NULL */
	uint64_t files;              /* regular files seen */
	int check;                   /* the second walk: what stayed in the cache */
	uint64_t kept, want;         /* its sums: data bytes cached, data bytes */
	char cache[PATH_MAX];        /* a store that is not mounted: its cache */
};

/* The vmbundlefs mount holding real (a realpath), or NULL. (Not vmb_cli_ctl_find:
 * a path in one of a store's two mounts is prefetched through it.) */
static char *mount_of(const char *real)
{
	struct vmb_cli_mount *all = NULL;
	const struct vmb_cli_mount *m;
	size_t n = 0;
	char *mp = NULL;

	if (vmb_cli_mounts(&all, &n, NULL) < 0)
		return NULL;
	m = vmb_cli_mount_holding(all, n, real, NULL);
	if (m)
		mp = strdup(m->mp);
	free(all);
	return mp;
}

/* Sleep while the run's bytes are ahead of its rate. */
static void pace(const struct run *run)
{
	double ahead;

	if (!run->rate)
		return;
	ahead = (double)run->bytes / (double)run->rate - (vmb_now_s() - run->t0);
	if (ahead > 0)
		usleep((useconds_t)(ahead * 1e6));
}

/* Read every data extent of fd (a file in a mount) through the mount. */
static int prefetch_mounted(int fd, const char *shown, const struct stat *st,
			    struct run *run, struct vmb_progress *pb, struct vmb_err *err)
{
	static char buf[1 << 20];
	off_t pos = 0, data, hole;
	uint64_t total = (uint64_t)st->st_blocks * 512, done = 0;

	while ((data = lseek(fd, pos, SEEK_DATA)) >= 0) {
		hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0)
			hole = st->st_size;
		for (pos = data; pos < hole;) {
			size_t n = (size_t)(hole - pos) < sizeof(buf) ? (size_t)(hole - pos)
								      : sizeof(buf);
			ssize_t got = pread(fd, buf, n, pos);

			if (got < 0 && errno == EINTR)
				continue;
			if (got <= 0)
				return vmb_err_sys(err, got < 0 ? errno : EIO, "cannot read '%s' "
						   "at offset %lld (the mount's log says why)",
						   shown, (long long)pos);
			pos += got;
			done += (uint64_t)got;
			run->bytes += (uint64_t)got;
			vmb_progress_update(pb, done, total > done ? total : done);
			pace(run);
		}
		/* the page cache need not keep what was only fetched */
		posix_fadvise(fd, data, hole - data, POSIX_FADV_DONTNEED);
	}
	if (errno != ENXIO)
		return vmb_err_sys(err, errno, "cannot seek in '%s'", shown);
	return 0;
}

/* One regular file, name in dirfd (shown: its path for messages and the bar). */
static int prefetch_one(int dirfd, const char *name, const char *shown, struct run *run,
			struct vmb_err *err)
{
	struct vmb_progress pb;
	uint64_t fetched = 0, kept = 0, total = 0;
	int r;

	if (run->check && run->ls) {
		r = vmb_prefetch_kept(run->ls, dirfd, name, &kept, &total, err);
		run->kept += kept;
		run->want += total;
		return r;
	}
	if (run->check) {
		/* the mount's daemon says what its cache holds of the file */
		char val[1024], proc[64];
		const char *p;
		ssize_t n;
		int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);

		if (fd < 0)
			return vmb_err_sys(err, errno, "cannot open '%s'", shown);
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
		n = getxattr(proc, "user.vmbundlefs.remote", val, sizeof(val) - 1);
		close(fd);
		if (n < 0)
			return 0;   /* no remote image */
		val[n] = '\0';
		if ((p = strstr(val, "cached_bytes ")))
			kept = strtoull(p + 13, NULL, 10);
		if ((p = strstr(val, "remote_bytes ")))
			total = strtoull(p + 13, NULL, 10);
		run->kept += kept;
		run->want += kept + total;
		return 0;
	}
	run->files++;
	vmb_progress_init(&pb, stderr, shown);
	if (run->ls) {
		/* paced by itself, from its own start: files one after the other each
		 * under the rate keep the whole run under it */
		r = vmb_prefetch_file(run->ls, dirfd, name, run->rate, vmb_progress_update,
				      &pb, &fetched, err);
		run->bytes += fetched;
	} else {
		int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		struct stat st;

		if (fd < 0) {
			r = vmb_err_sys(err, errno, "cannot open '%s'", shown);
		} else {
			r = fstat(fd, &st) < 0 ? vmb_err_sys(err, errno, "cannot stat '%s'", shown)
					       : prefetch_mounted(fd, shown, &st, run, &pb, err);
			close(fd);
		}
	}
	vmb_progress_end(&pb);
	return r;
}

/* name in dirfd: a regular file, or every regular file under a directory (depth
 * first, not following symbolic links). The first error ends the walk. */
static int walk(int at, const char *name, const char *shown, int top, struct run *run,
		struct vmb_err *err)
{
	struct stat st;
	struct dirent *e;
	DIR *d;
	int fd, r = 0;

	if (fstatat(at, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return vmb_err_sys(err, errno, "cannot stat '%s'", shown);
	if (S_ISREG(st.st_mode))
		return prefetch_one(at, name, shown, run, err);
	if (!S_ISDIR(st.st_mode))
		return top ? vmb_err_set(err, EINVAL, "'%s' is neither a regular file nor a "
					 "directory", shown) : 0;
	fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return vmb_err_sys(err, errno, "cannot open '%s'", shown);
	if (!(d = fdopendir(fd))) {
		r = vmb_err_sys(err, errno, "cannot list '%s'", shown);
		close(fd);
		return r;
	}
	while (r == 0 && (errno = 0, e = readdir(d))) {
		char *sub;

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		/* a store's own metadata holds no file of a bundle; a mount's
		 * .snapshots reads the layers its bundles read */
		if (top && (!strcmp(e->d_name, VMB_META_DIR) || !strcmp(e->d_name, ".snapshots")))
			continue;
		if (asprintf(&sub, "%s/%s", shown, e->d_name) < 0)
			r = vmb_err_set(err, ENOMEM, "out of memory");
		else
			r = walk(dirfd(d), e->d_name, sub, 0, run, err);
		free(sub);
	}
	if (r == 0 && errno)
		r = vmb_err_sys(err, errno, "cannot list '%s'", shown);
	closedir(d);
	return r;
}

/* The store holding real (a path that is not in a mount): the nearest directory
 * above it, or real itself, with a .vmbundlefs directory. */
static char *store_above(const char *real)
{
	char *p = strdup(real), *slash;
	struct stat st;
	char meta[PATH_MAX + 32];

	if (p) {
		snprintf(meta, sizeof(meta), "%s/%s", p, VMB_META_DIR);
		if (stat(meta, &st) == 0 && S_ISDIR(st.st_mode))
			return p;
	}
	while (p && (slash = strrchr(p, '/'))) {
		*slash = '\0';
		snprintf(meta, sizeof(meta), "%s/%s", *p ? p : "", VMB_META_DIR);
		if (stat(meta, &st) == 0 && S_ISDIR(st.st_mode))
			return p;
	}
	free(p);
	return NULL;
}

/* real in dir: dirfd of its parent and its last name (real "/" has none). */
static int parent_of(const char *real, char **dir, const char **name, int *dfd,
		     struct vmb_err *err)
{
	*dir = strdup(real);
	if (!*dir)
		return vmb_err_set(err, ENOMEM, "out of memory");
	*strrchr(*dir, '/') = '\0';
	*name = strrchr(real, '/') + 1;
	if (!**name)
		return vmb_err_set(err, EINVAL, "'/' is neither in a vmbundlefs mount nor in a "
				   "store");
	*dfd = open(**dir ? *dir : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (*dfd < 0)
		return vmb_err_sys(err, errno, "cannot open '%s'", **dir ? *dir : "/");
	return 0;
}

static int prefetch_store(const char *real, const char *shown,
			  const struct vmb_remote_opts *ro, struct run *run,
			  struct vmb_err *err)
{
	struct vmb_store s = { 0 };
	struct vmb_remote *r = NULL;
	char *store = store_above(real), *dir = NULL;
	const char *name;
	int dfd = -1, rc;

	if (!store)
		return vmb_err_set(err, EINVAL, "'%s' is neither in a vmbundlefs mount nor in a "
				   "store", shown);
	rc = vmb_store_open(&s, store, VMB_STORE_READ, err);
	if (!rc)
		rc = vmb_layers_open(&run->ls, s.metafd, &vmb_cli_log, err);
	if (!rc)
		rc = vmb_remote_open(ro, &vmb_cli_log, &r, err);
	if (rc)
		goto out;
	vmb_layers_set_remote(run->ls, r);
	rc = parent_of(real, &dir, &name, &dfd, err);
	if (!rc)
		rc = walk(dfd, name, shown, 1, run, err);
	if (!rc && run->bytes) {
		/* what stayed: every fill durable, the cache trimmed to its limits now
		 * rather than by its background thread later */
		struct vmb_cache *c;

		rc = vmb_remote_cache(r, &c, err);
		if (!rc)
			rc = vmb_cache_flush(c) < 0 ? vmb_err_set(err, EIO, "cannot make the "
				"chunks fetched durable in the cache '%s'", vmb_cache_path(c)) : 0;
		if (!rc)
			rc = vmb_cache_evict(c, err);
		if (!rc)
			snprintf(run->cache, sizeof(run->cache), "%s", vmb_cache_path(c));
	}
	if (!rc) {
		run->check = 1;
		rc = walk(dfd, name, shown, 1, run, err);
	}
out:
	if (dfd >= 0)
		close(dfd);
	vmb_remote_close(r);
	vmb_layers_close(run->ls);
	run->ls = NULL;
	if (s.path)
		vmb_store_close(&s);
	free(dir);
	free(store);
	return rc;
}

static int prefetch_in_mount(const char *real, const char *shown, struct run *run,
			     struct vmb_err *err)
{
	char *dir = NULL;
	const char *name;
	int dfd = -1, rc = parent_of(real, &dir, &name, &dfd, err);

	if (!rc)
		rc = walk(dfd, name, shown, 1, run, err);
	/* The daemon makes its fills durable once reads pause and trims its cache
	 * after them, in the background: look until what it holds stops changing
	 * (at most about 3 s) */
	run->check = 1;
	for (int k = 0; !rc && k < 10; k++) {
		struct timespec nap = { 0, 300000000L };
		uint64_t prev = run->kept;

		nanosleep(&nap, NULL);
		run->kept = run->want = 0;
		rc = walk(dfd, name, shown, 1, run, err);
		if (k > 0 && run->kept == prev)
			break;
	}
	if (dfd >= 0)
		close(dfd);
	free(dir);
	return rc;
}

static int parse_rate(const char *arg, uint64_t *rate)
{
	char *end;
	unsigned long long n;

	errno = 0;
	n = strtoull(arg, &end, 10);
	switch (*end) {
	case 'K': case 'k': n <<= 10; end++; break;
	case 'M': case 'm': n <<= 20; end++; break;
	case 'G': case 'g': n <<= 30; end++; break;
	default: break;
	}
	if (errno || end == arg || *end || arg[0] == '-' || !n)
		return -1;
	*rate = n;
	return 0;
}

/* A prefetch whose chunks did not all stay in the cache: say how much did and why. */
static void not_kept(const char *path, const char *mp, const struct vmb_remote_opts *ro,
		     struct run *run)
{
	char k[32], w[32], m[32], f[32];
	struct statvfs sv;

	vmb_progress_bytes(k, sizeof(k), run->kept);
	vmb_progress_bytes(w, sizeof(w), run->want);
	if (mp) {
		vmb_cli_error("'%s': only %s of the %s of its remote images stayed in the "
			      "cache of the mount '%s': it is trimmed to the mount's cache_max= "
			      "and to keep free space on its file system (see the mount's "
			      "options)", path, k, w, mp);
		return;
	}
	if (ro->cache_max)
		vmb_progress_bytes(m, sizeof(m), ro->cache_max);
	else
		snprintf(m, sizeof(m), "none");
	if (statvfs(run->cache, &sv) == 0)
		vmb_progress_bytes(f, sizeof(f), (uint64_t)sv.f_bavail * sv.f_frsize);
	else
		snprintf(f, sizeof(f), "unknown");
	if (!run->cache[0])
		snprintf(run->cache, sizeof(run->cache), "%s",
			 ro->cache_dir ? ro->cache_dir : "(the default)");
	vmb_cli_error("'%s': only %s of the %s of its remote images stayed in the cache "
		      "'%s' (cache_max=%s; %s free on its file system, of which it keeps "
		      "1 GiB free): give a larger cache_max= or free space", path, k, w,
		      run->cache, m, f);
}

int vmb_cli_prefetch(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "rate", required_argument, NULL, 'r' },
		{ "endpoint", required_argument, NULL, 'e' },
		{ NULL, 0, NULL, 0 },
	};
	struct vmb_remote_opts ro;
	const char *endpoint = NULL;
	char probe[VMB_REMOTE_URL_MAX];
	struct vmb_err err = { 0 };
	uint64_t rate = 0;
	int c, i, rc = VMB_EXIT_OK;

	if (vmb_cli_common(argc, argv, prefetch_usage))
		return VMB_EXIT_OK;
	memset(&ro, 0, sizeof(ro));
	optind = 1;
	while ((c = getopt_long(argc, argv, "+o:", opts, NULL)) != -1) {
		if (c == 'r') {
			if (parse_rate(optarg, &rate) < 0) {
				vmb_cli_error("--rate: '%s' is not a number of bytes a second",
					      optarg);
				return VMB_EXIT_USAGE;
			}
		} else if (c == 'o') {
			if (vmb_cli_remote_opts(optarg, &ro, 1, &err) < 0) {
				vmb_cli_error("%s", err.msg);
				return VMB_EXIT_USAGE;
			}
		} else if (c == 'e') {
			endpoint = optarg;
		} else {
			fputs(prefetch_usage, stderr);
			return VMB_EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		fputs(prefetch_usage, stderr);
		return VMB_EXIT_USAGE;
	}
	if (endpoint) {
		/* its form, checked now rather than at the first base that needs it */
		if (vmb_fetch_url_resolve("s3://bucket", endpoint, probe, sizeof(probe),
					  &err) < 0) {
			vmb_cli_error("--endpoint: %s", err.msg);
			return VMB_EXIT_USAGE;
		}
		ro.endpoint = endpoint;
	}
	for (i = optind; i < argc; i++) {
		struct run run = { .rate = rate, .t0 = vmb_now_s() };
		char *real = realpath(argv[i], NULL), *mp;
		int r;

		if (!real) {
			vmb_cli_error("cannot resolve '%s': %s", argv[i], strerror(errno));
			rc = VMB_EXIT_ERROR;
			continue;
		}
		vmb_err_clear(&err);
		mp = mount_of(real);
		if (mp && (endpoint || ro.endpoint))
			r = vmb_err_set(&err, EINVAL, "'%s' is in the mount '%s', whose daemon "
					"fetches from the endpoint its bundles remember: "
					"--endpoint is for a store that is not mounted", argv[i],
					mp);
		else if (mp)
			r = prefetch_in_mount(real, argv[i], &run, &err);
		else {
			ro.cache_no_pause = 1;   /* a kill loses little (cache.h) */
			r = prefetch_store(real, argv[i], &ro, &run, &err);
		}
		if (r < 0) {
			vmb_cli_store_error(argv[i], err.code, "%s", err.msg);
			rc = VMB_EXIT_ERROR;
		} else if (run.kept < run.want) {
			not_kept(argv[i], mp, &ro, &run);
			rc = VMB_EXIT_ERROR;
		}
		free(mp);
		free(real);
	}
	return rc;
}
