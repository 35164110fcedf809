/* cli_remote.c - the remote side of the vmbundlefs command (issue 11): its -o
 * options and `mount URL MNT` (a private read-only shadow store pulled into
 * CACHE/mnt/ and mounted read-only with the ordinary vfs); prefetch is
 * cli_prefetch.c.
 */
#include "config.h"
#include "base/fdio.h"
#include "cli/cli.h"
#include "cli/progress.h"
#include "fs/vmbfs.h"
#include "vfs/vfs.h"
#include "store/ops.h"
#include "store/store.h"
#include "layer/layer.h"
#include "remote/remote.h"
#include "remote/cache.h"
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
#include <sys/statvfs.h>
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

/* ---- mount URL ---- */

/* Remove the shadow stores under CACHE/mnt that no mount holds any more: each is
 * held by an flock on its directory, taken before it is made and kept by the
 * mount's daemon until it exits. */
static void sweep_shadows(const char *cdir, const char *mntdir)
{
	DIR *d = opendir(mntdir);
	struct dirent *de;
	char *real = realpath(mntdir, NULL);
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
		if (flock(fd, LOCK_EX | LOCK_NB) == 0 &&
		    vmb_tree_remove(dfd, de->d_name, -1, &e) == 0 && real) {
			/* the pin of its layers' image indexes (layer.h) goes with it */
			char lp[PATH_MAX + 300], pin[PATH_MAX + 100];
			char name[VMB_LAYERS_PIN_NAME];

			snprintf(lp, sizeof(lp), "%s/%s/" VMB_META_DIR "/%s", real, de->d_name,
				 VMB_LAYERS_DIR);
			vmb_layers_pin_name(lp, name);
			snprintf(pin, sizeof(pin), "%s/pins/%s", cdir, name);
			unlink(pin);
		}
		close(fd);
	}
	closedir(d);
	free(real);
}

/* Is name one of the comma-separated options in opts? */
static int has_opt(const char *opts, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = opts; p && *p;) {
		size_t l = strcspn(p, ",");

		if (l == n && !strncmp(p, name, n))
			return 1;
		p += l;
		if (*p == ',')
			p++;
	}
	return 0;
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
	struct vmb_vfs_lazy lazy;
	struct vmb_store s = { 0 };
	struct vmb_layers *ls = NULL;
	const char **names = NULL;
	uint8_t (*manifests)[32] = NULL;
	struct vmb_mount_opts mo;
	struct vmb_err err = { 0 };
	char *opts = NULL;
	unsigned rnd = 0;
	int stale = 0, rc, ok = 0, hold = -1;
	size_t i;

	memset(&ro, 0, sizeof(ro));
	shadow[0] = '\0';
	if (has_opt(fuse_opts, "rw")) {
		vmb_cli_error("cannot mount '%s': a mount of a published store is read-only "
			      "(-o rw is refused)", url_in);
		return VMB_EXIT_USAGE;
	}
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
	sweep_shadows(cdir, mntdir);
	if (getrandom(&rnd, sizeof(rnd), 0) < 0)
		rnd = (unsigned)getpid();
	snprintf(shadow, sizeof(shadow), "%s/%08x%08x", mntdir, rnd, (unsigned)getpid());
	/* held (by this process, then the daemon it becomes) while the mount lives */
	/* 0755: the mount's root shows its mode, and other users (allow_other) must
	 * reach the bundles as in a store made by init; CACHE/mnt/ stays 0700 */
	if (mkdir(shadow, 0700) < 0 ||
	    (hold = open(shadow, O_RDONLY | O_DIRECTORY | O_NOFOLLOW)) < 0 ||
	    flock(hold, LOCK_EX) < 0 || fchmod(hold, 0755) < 0) {
		vmb_cli_error("cannot create '%s': %s", shadow, strerror(errno));
		goto out;
	}
	/* the shadow store is scratch: nothing in it is synced (base/fdio.h); its
	 * bundles are pulled by the daemon when first looked up (vfs/vfs_lazy.c),
	 * all from this one top index */
	vmb_sync_scratch(1);
	rc = vmb_store_init(shadow, &err);
	if (!rc)   /* its first open makes what an open makes (the layers' files) */
		rc = vmb_store_open(&s, shadow, VMB_STORE_EXCLUSIVE, &err);
	if (!rc)
		rc = vmb_layers_open(&ls, s.metafd, &vmb_cli_log, &err);
	vmb_layers_close(ls);
	ls = NULL;
	if (s.path)
		vmb_store_close(&s);
	vmb_sync_scratch(0);
	if (rc < 0) {
		vmb_cli_error("cannot mount '%s': %s", url, err.msg);
		goto out;
	}
	names = calloc(top.n ? top.n : 1, sizeof(*names));
	manifests = calloc(top.n ? top.n : 1, sizeof(*manifests));
	if (!names || !manifests) {
		vmb_cli_error("out of memory");
		goto out;
	}
	for (i = 0; i < top.n; i++) {
		names[i] = top.bundles[i].name;
		memcpy(manifests[i], top.bundles[i].digest, 32);
	}
	lazy.url = url;
	lazy.n = top.n;
	lazy.names = names;
	lazy.manifests = (const uint8_t (*)[32])manifests;
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
	mo.source = url;
	mo.lazy = &lazy;
	ok = 1;
	rc = vmb_fs_main(&mo, &err);
	if (rc < 0) {
		vmb_cli_error("cannot mount '%s': %s", url, err.msg);
		ok = 0;
	}
out:
	free(names);
	free(manifests);
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
