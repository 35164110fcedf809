/* cli_remote.c - the remote side of the vmbundlefs command (issue 11): its -o
 * options, `prefetch PATH...`, and `mount URL MNT` (a private read-only shadow
 * store pulled into CACHE/mnt/ and mounted read-only with the ordinary vfs).
 *
 * prefetch: a path inside a mount is read through the mount (its data extents
 * only, found with SEEK_DATA/SEEK_HOLE), so the mount's daemon fetches and caches
 * what is missing, whoever runs it; a path in a store that is not mounted has its
 * remote base's chunks filled here. Either way what is cached is skipped, so a
 * prefetch that was stopped resumes where it stopped.
 */
#include "config.h"
#include "cli/cli.h"
#include "cli/progress.h"
#include "fs/vmbfs.h"
#include "store/ops.h"
#include "store/store.h"
#include "layer/layer.h"
#include "remote/remote.h"
#include "remote/pubfmt.h"
#include "remote/fetch.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The copies o points into, kept for the life of the process. */
static char *kept_opts[16];

int vmb_cli_remote_opts(const char *opts, struct vmb_remote_opts *o, int strict,
			struct vmb_err *err)
{
	char *copy = strdup(opts ? opts : ""), *tok, *save = NULL;
	size_t k;

	if (!copy)
		return vmb_err_set(err, ENOMEM, "out of memory");
	for (k = 0; k < 16 && kept_opts[k]; k++)
		;
	if (k == 16) {
		free(copy);
		return vmb_err_set(err, E2BIG, "too many -o options");
	}
	kept_opts[k] = copy;
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (!strncmp(tok, "cache=", 6) && tok[6])
			o->cache_dir = tok + 6;
		else if (!strncmp(tok, "cafile=", 7) && tok[7])
			o->cafile = tok + 7;
		else if (!strncmp(tok, "pubkey=", 7) && tok[7])
			o->pubkey = tok + 7;
		else if (!strncmp(tok, "endpoint=", 9) && tok[9])
			o->endpoint = tok + 9;
		else if (!strcmp(tok, "hard"))
			o->hard = 1;
		else if (!strcmp(tok, "soft"))
			o->hard = 0;
		else if (!strncmp(tok, "cache_max=", 10)) {
			char *end;
			unsigned long long n;

			errno = 0;
			n = strtoull(tok + 10, &end, 10);
			if (errno || end == tok + 10 || tok[10] == '-')
				return vmb_err_set(err, EINVAL, "bad value in option '%s'", tok);
			switch (*end) {
			case 'K': case 'k': n <<= 10; end++; break;
			case 'M': case 'm': n <<= 20; end++; break;
			case 'G': case 'g': n <<= 30; end++; break;
			case 'T': case 't': n <<= 40; end++; break;
			default: break;
			}
			if (*end)
				return vmb_err_set(err, EINVAL, "bad value in option '%s'", tok);
			o->cache_max = n;
		} else if (!strncmp(tok, "cache=", 6) || !strncmp(tok, "cafile=", 7) ||
			   !strncmp(tok, "pubkey=", 7) || !strncmp(tok, "endpoint=", 9)) {
			return vmb_err_set(err, EINVAL, "bad value in option '%s'", tok);
		} else if (strict) {
			return vmb_err_set(err, EINVAL, "unknown option '%s' (the options are "
					   "cache=, cache_max=, cafile=, pubkey=, endpoint=, "
					   "hard and soft)", tok);
		}
	}
	return 0;
}

/* ---- prefetch ---- */

static const char prefetch_usage[] =
	"Usage: vmbundlefs prefetch [--rate BYTES/s] [-o OPTS] PATH...\n"
	"Fetch into the cache every chunk of the remote images under the files PATH\n"
	"(files of a pulled bundle, through its mount or in its store) that is not\n"
	"cached yet, with a progress bar on a terminal. Stopped, it resumes where it\n"
	"was: what is cached is not fetched again.\n"
	"  --rate BYTES/s   at most this many bytes a second (K, M, G suffixes)\n"
	"  --endpoint URL   for a store that is not mounted: the S3-compatible endpoint\n"
	"                   of remote bases pulled from an s3:// URL that names none\n"
	"                   (those pulled through an endpoint remember it)\n"
	"  -o OPTS          as for pull (cache=, cafile=, hard), for a store that is\n"
	"                   not mounted\n";

/* The vmbundlefs mount holding real (a realpath), or NULL; *rel its path inside. */
static char *mount_of(const char *real, char **source, const char **rel)
{
	char line[PATH_MAX * 2 + 256], best[PATH_MAX] = "";
	size_t bl = 0;
	FILE *mi = fopen("/proc/self/mountinfo", "re");

	*source = NULL;
	while (mi && fgets(line, sizeof(line), mi)) {
		char mp[PATH_MAX], fstype[64], src[PATH_MAX];
		const char *sep = strstr(line, " - ");
		size_t l;

		if (!sep || sscanf(line, "%*s %*s %*s %*s %4095s", mp) != 1 ||
		    sscanf(sep + 3, "%63s %4095s", fstype, src) != 2 ||
		    strcmp(fstype, "fuse.vmbundlefs"))
			continue;
		vmb_cli_unescape(mp);
		vmb_cli_unescape(src);
		l = strlen(mp);
		if (!strncmp(real, mp, l) && (real[l] == '/' || !real[l]) && l + 1 > bl) {
			snprintf(best, sizeof(best), "%s", mp);
			bl = l + 1;
			free(*source);
			*source = strdup(src);
		}
	}
	if (mi)
		fclose(mi);
	if (!bl)
		return NULL;
	*rel = real + bl - 1 + (real[bl - 1] == '/');
	return strdup(best);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Read every data extent of path through the mount. */
static int prefetch_mounted(const char *path, uint64_t rate, struct vmb_progress *pb,
			    struct vmb_err *err)
{
	static char buf[1 << 20];
	struct stat st;
	off_t pos = 0, data, hole;
	uint64_t total = 0, done = 0;
	double t0 = now_s();
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0;

	if (fd < 0)
		return vmb_err_sys(err, errno, "cannot open '%s'", path);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return vmb_err_set(err, EINVAL, "'%s' is not a regular file", path);
	}
	total = (uint64_t)st.st_blocks * 512;
	while ((data = lseek(fd, pos, SEEK_DATA)) >= 0) {
		hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0)
			hole = st.st_size;
		for (pos = data; pos < hole;) {
			size_t n = (size_t)(hole - pos) < sizeof(buf) ? (size_t)(hole - pos)
								      : sizeof(buf);
			ssize_t got = pread(fd, buf, n, pos);

			if (got < 0 && errno == EINTR)
				continue;
			if (got <= 0) {
				rc = vmb_err_sys(err, got < 0 ? errno : EIO, "cannot read '%s' at "
						 "offset %lld (the mount's log says why)", path,
						 (long long)pos);
				goto out;
			}
			pos += got;
			done += (uint64_t)got;
			vmb_progress_update(pb, done, total > done ? total : done);
			if (rate) {
				double ahead = (double)done / (double)rate - (now_s() - t0);

				if (ahead > 0)
					usleep((useconds_t)(ahead * 1e6));
			}
		}
		/* the page cache need not keep what was only fetched */
		posix_fadvise(fd, data, hole - data, POSIX_FADV_DONTNEED);
	}
	if (errno != ENXIO)
		rc = vmb_err_sys(err, errno, "cannot seek in '%s'", path);
out:
	close(fd);
	return rc;
}

/* The store holding real (a path that is not in a mount): the nearest directory
 * above it with a .vmbundlefs directory. */
static char *store_above(const char *real)
{
	char *p = strdup(real), *slash;
	struct stat st;
	char meta[PATH_MAX + 32];

	while (p && (slash = strrchr(p, '/'))) {
		*slash = '\0';
		snprintf(meta, sizeof(meta), "%s/%s", *p ? p : "", VMB_META_DIR);
		if (stat(meta, &st) == 0 && S_ISDIR(st.st_mode))
			return p;
	}
	free(p);
	return NULL;
}

static int prefetch_store(const char *real, const struct vmb_remote_opts *ro, uint64_t rate,
			  struct vmb_progress *pb, struct vmb_err *err)
{
	struct vmb_store s = { 0 };
	struct vmb_layers *ls = NULL;
	struct vmb_remote *r = NULL;
	char *store = store_above(real), *dir = NULL;
	const char *name;
	uint64_t fetched = 0;
	int dfd = -1, rc;

	if (!store)
		return vmb_err_set(err, EINVAL, "'%s' is neither in a vmbundlefs mount nor in a "
				   "store", real);
	rc = vmb_store_open(&s, store, VMB_STORE_READ, err);
	if (!rc)
		rc = vmb_layers_open(&ls, s.metafd, &vmb_cli_log, err);
	if (!rc)
		rc = vmb_remote_open(ro, &vmb_cli_log, &r, err);
	if (rc)
		goto out;
	vmb_layers_set_remote(ls, r);
	dir = strdup(real);
	if (!dir) {
		rc = vmb_err_set(err, ENOMEM, "out of memory");
		goto out;
	}
	*strrchr(dir, '/') = '\0';
	name = strrchr(real, '/') + 1;
	dfd = open(*dir ? dir : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		rc = vmb_err_sys(err, errno, "cannot open '%s'", dir);
		goto out;
	}
	rc = vmb_prefetch_file(ls, dfd, name, rate, vmb_progress_update, pb, &fetched, err);
out:
	if (dfd >= 0)
		close(dfd);
	vmb_remote_close(r);
	vmb_layers_close(ls);
	if (s.path)
		vmb_store_close(&s);
	free(dir);
	free(store);
	return rc;
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
			char *end;
			unsigned long long n;

			errno = 0;
			n = strtoull(optarg, &end, 10);
			switch (*end) {
			case 'K': case 'k': n <<= 10; end++; break;
			case 'M': case 'm': n <<= 20; end++; break;
			case 'G': case 'g': n <<= 30; end++; break;
			default: break;
			}
			if (errno || end == optarg || *end || optarg[0] == '-' || !n) {
				vmb_cli_error("--rate: '%s' is not a number of bytes a second", optarg);
				return VMB_EXIT_USAGE;
			}
			rate = n;
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
		struct vmb_progress pb;
		char *real = realpath(argv[i], NULL), *mp, *source = NULL;
		const char *rel = NULL;
		int r;

		if (!real) {
			vmb_cli_error("cannot resolve '%s': %s", argv[i], strerror(errno));
			rc = VMB_EXIT_ERROR;
			continue;
		}
		vmb_progress_init(&pb, stderr, argv[i]);
		mp = mount_of(real, &source, &rel);
		if (mp && (endpoint || ro.endpoint))
			r = vmb_err_set(&err, EINVAL, "'%s' is in the mount '%s', whose daemon "
					"fetches from the endpoint its bundles remember: "
					"--endpoint is for a store that is not mounted", argv[i],
					mp);
		else if (mp)
			r = prefetch_mounted(real, rate, &pb, &err);
		else {
			ro.cache_no_pause = 1;   /* a kill loses little (cache.h) */
			r = prefetch_store(real, &ro, rate, &pb, &err);
		}
		vmb_progress_end(&pb);
		if (r < 0) {
			vmb_cli_store_error(argv[i], err.code, "%s", err.msg);
			rc = VMB_EXIT_ERROR;
		}
		free(mp);
		free(source);
		free(real);
	}
	return rc;
}

/* ---- mount URL ---- */

/* Remove the shadow stores under CACHE/mnt that no mount holds any more: each is
 * held by an flock on its directory, taken before it is made and kept by the
 * mount's daemon until it exits. */
static void sweep_shadows(const char *mntdir)
{
	DIR *d = opendir(mntdir);
	struct dirent *de;
	int dfd;

	if (!d)
		return;
	dfd = dirfd(d);
	while ((de = readdir(d))) {
		struct vmb_err e;
		int fd;

		if (de->d_name[0] == '.')
			continue;
		fd = openat(dfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			continue;
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			vmb_tree_remove(dfd, de->d_name, -1, &e);
		close(fd);
	}
	closedir(d);
}

int vmb_cli_mount_url(const char *url_in, const char *mountpoint, const char *fuse_opts,
		      int foreground, int debug, const char *logfile)
{
	char url[VMB_REMOTE_URL_MAX], rurl[VMB_REMOTE_URL_MAX], cdir[PATH_MAX];
	char mntdir[PATH_MAX + 8];
	char shadow[PATH_MAX + 64];
	struct vmb_remote_opts ro;
	struct vmb_remote *r = NULL;
	struct vmb_pub_index top = { 0 };
	struct vmb_store s = { 0 };
	struct vmb_layers *ls = NULL;
	struct vmb_opctx c;
	struct vmb_mount_opts mo;
	struct vmb_err err = { 0 };
	char *opts = NULL;
	unsigned rnd = 0;
	int stale = 0, rc, ok = 0, hold = -1;
	size_t i;

	memset(&ro, 0, sizeof(ro));
	shadow[0] = '\0';
	if (vmb_cli_remote_opts(fuse_opts, &ro, 0, &err) < 0 ||
	    vmb_fetch_url_resolve(url_in, ro.endpoint, rurl, sizeof(rurl), &err) < 0 ||
	    vmb_remote_url_norm(rurl, url, sizeof(url), &err) < 0) {
		vmb_cli_error("%s", err.msg);
		return err.code == EINVAL ? VMB_EXIT_USAGE : VMB_EXIT_ERROR;
	}
	if (ro.cache_dir && ro.cache_dir[0] != '/') {
		/* absolute: the daemon removes the shadow store from / at unmount */
		char cwd[PATH_MAX];

		if (!getcwd(cwd, sizeof(cwd)) ||
		    snprintf(cdir, sizeof(cdir), "%s/%s", cwd, ro.cache_dir) >= (int)sizeof(cdir)) {
			vmb_cli_error("cannot resolve the cache directory '%s'", ro.cache_dir);
			return VMB_EXIT_ERROR;
		}
		ro.cache_dir = cdir;
	} else if (ro.cache_dir)
		snprintf(cdir, sizeof(cdir), "%s", ro.cache_dir);
	else if (vmb_remote_default_cache(cdir, sizeof(cdir)) < 0) {
		vmb_cli_error("the default cache directory's name is too long");
		return VMB_EXIT_ERROR;
	}
	rc = vmb_remote_open(&ro, &vmb_cli_log, &r, &err);
	if (!rc) {
		/* every bundle pulled from this one index (one generation, one fetch) */
		vmb_remote_top_once(r);
		rc = vmb_remote_top(r, url, &top, &stale, &err);
	}
	if (rc) {
		vmb_cli_error("cannot mount '%s': %s", url, err.msg);
		vmb_remote_close(r);
		return VMB_EXIT_ERROR;
	}
	snprintf(mntdir, sizeof(mntdir), "%s/mnt", cdir);
	if (mkdir(mntdir, 0700) < 0 && errno != EEXIST) {
		vmb_cli_error("cannot create '%s': %s", mntdir, strerror(errno));
		goto out;
	}
	sweep_shadows(mntdir);
	if (getrandom(&rnd, sizeof(rnd), 0) < 0)
		rnd = (unsigned)getpid();
	snprintf(shadow, sizeof(shadow), "%s/%08x%08x", mntdir, rnd, (unsigned)getpid());
	/* held (by this process, then the daemon it becomes) while the mount lives */
	if (mkdir(shadow, 0700) < 0 ||
	    (hold = open(shadow, O_RDONLY | O_DIRECTORY | O_NOFOLLOW)) < 0 ||
	    flock(hold, LOCK_EX) < 0) {
		vmb_cli_error("cannot create '%s': %s", shadow, strerror(errno));
		goto out;
	}
	if (vmb_store_init(shadow, &err) < 0 ||
	    vmb_store_open(&s, shadow, VMB_STORE_EXCLUSIVE, &err) < 0 ||
	    vmb_layers_open(&ls, s.metafd, &vmb_cli_log, &err) < 0) {
		vmb_cli_error("cannot mount '%s': %s", url, err.msg);
		goto out;
	}
	memset(&c, 0, sizeof(c));
	c.store = &s;
	c.layers = ls;
	c.log = &vmb_cli_log;
	for (i = 0; i < top.n; i++) {
		if (vmb_op_pull(&c, r, url, top.bundles[i].name, top.bundles[i].name, &err) < 0) {
			vmb_cli_error("cannot mount '%s': %s", url, err.msg);
			goto out;
		}
	}
	vmb_layers_close(ls);
	ls = NULL;
	vmb_store_close(&s);
	memset(&s, 0, sizeof(s));
	vmb_remote_close(r);
	r = NULL;
	if (asprintf(&opts, "ro,vmb_shadow%s%s", fuse_opts && *fuse_opts ? "," : "",
		     fuse_opts ? fuse_opts : "") < 0) {
		opts = NULL;
		vmb_cli_error("out of memory");
		goto out;
	}
	memset(&mo, 0, sizeof(mo));
	mo.store = shadow;
	mo.mountpoint = mountpoint;
	mo.foreground = foreground;
	mo.debug = debug;
	mo.logfile = logfile;
	mo.fuse_opts = opts;
	ok = 1;
	rc = vmb_fs_main(&mo, &err);
	if (rc < 0) {
		vmb_cli_error("cannot mount '%s': %s", url, err.msg);
		ok = 0;
	}
out:
	if (ls)
		vmb_layers_close(ls);
	if (s.path)
		vmb_store_close(&s);
	vmb_remote_close(r);
	vmb_pub_index_free(&top);
	if (!ok && shadow[0]) {
		int mfd = open(mntdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		if (mfd >= 0) {
			vmb_tree_remove(mfd, strrchr(shadow, '/') + 1, -1, &err);
			close(mfd);
		}
	}
	if (hold >= 0)
		close(hold);
	free(opts);
	return ok ? VMB_EXIT_OK : VMB_EXIT_ERROR;
}
