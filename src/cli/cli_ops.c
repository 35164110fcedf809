/* cli_ops.c - vmbundlefs clone, snapshot, flatten and gc: the structural
 * commands (store/ops.h), run on a store that is not mounted.
 *
 * ops_route is the one place that decides where a command runs: given a store
 * with one mount (or a path inside a mount), the request goes to that mount's
 * daemon through the control channel (cli_ctl.c), which runs the same
 * store/ops.h functions with its hooks; a store with two mounts is refused; a
 * store that is not mounted is opened here with its lock taken exclusively (as
 * fsck does: EBUSY when a mount or fsck holds it all the same).
 */
#include "config.h"
#include "cli/cli.h"
#include "store/manifest.h"
#include "store/ops.h"
#include "store/store.h"
#include "store/store_log.h"
#include "layer/layer.h"
#include "remote/remote.h"
#include "remote/fetch.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The remote options of the command (pull's -o and its flags), for ops_begin. */
static struct vmb_remote_opts cli_ropts;

void vmb_cli_ops_remote_opts(const struct vmb_remote_opts *ro)
{
	cli_ropts = *ro;
}

/* The store's lock is held: by a mount (then EBUSY), or by another command run on
 * it while it is not mounted (a clone, a pull... or fsck), which this one waits
 * for, as commands in a row would have: fleets pull several bundles at once. The
 * wait says so once after a second; a mount made meanwhile ends it (EBUSY). */
static int open_waiting(struct vmb_cli_ops *o, const char *store, struct vmb_err *err)
{
	struct timespec nap = { 0, 50000000L };
	int said = 0, r;

	for (unsigned n = 0;; n++) {
		struct vmb_ctl_target t;
		struct vmb_err e = { 0 };
		int mounted;

		r = vmb_store_open(&o->s, store, VMB_STORE_EXCLUSIVE, err);
		if (r != -EBUSY)
			return r;
		if (vmb_cli_ctl_find(store, &t, &e) < 0) {
			mounted = 1;   /* cannot tell (or mounted twice): as before */
		} else {
			mounted = t.mountpoint != NULL;
			vmb_cli_ctl_target_free(&t);
		}
		if (mounted)
			return vmb_err_set(err, EBUSY, "store '%s' is mounted: unmount it "
					   "first", store);   /* the CLI names status */
		if (n == 20 && !said) {
			said = 1;
			vmb_cli_error("waiting for another command (or fsck) working on store "
				      "'%s'...", store);
		}
		nanosleep(&nap, NULL);
	}
}

int vmb_cli_ops_begin(struct vmb_cli_ops *o, const char *store, struct vmb_err *err)
{
	int r;

	memset(o, 0, sizeof(*o));
	r = open_waiting(o, store, err);
	if (r < 0)
		return r;
	if (o->s.readonly) {
		vmb_store_close(&o->s);
		return vmb_err_set(err, EROFS, "store '%s' is not writable by you", store);
	}
	r = vmb_layers_open(&o->c.layers, o->s.metafd, &vmb_cli_log, err);
	if (r < 0) {
		vmb_store_close(&o->s);
		return r;
	}
	r = vmb_remote_open(&cli_ropts, &vmb_cli_log, &o->r, err);
	if (r < 0) {
		vmb_layers_close(o->c.layers);
		vmb_store_close(&o->s);
		return r;
	}
	vmb_layers_set_remote(o->c.layers, o->r);
	o->c.store = &o->s;
	o->c.log = &vmb_cli_log;
	return 0;
}

int vmb_cli_remote_ctx(struct vmb_remote **r, struct vmb_err *err)
{
	return vmb_remote_open(&cli_ropts, &vmb_cli_log, r, err);
}

void vmb_cli_ops_end(struct vmb_cli_ops *o)
{
	vmb_remote_close(o->r);
	vmb_layers_close(o->c.layers);
	vmb_store_close(&o->s);
}

/* 1: the mount's daemon did it (its message printed), *rc set; 0: o is open on
 * the store (not mounted), go on here; -1: failed (message printed), *rc set. */
static int ops_route(const char *target, const char *const *req, int nreq,
		     struct vmb_cli_ops *o, int *rc)
{
	struct vmb_ctl_target t;
	struct vmb_err err = { 0 };
	char *msg = NULL;
	int r;

	*rc = VMB_EXIT_ERROR;
	if (vmb_cli_ctl_find(target, &t, &err) < 0) {
		vmb_cli_store_error(target, err.code, "%s", err.msg);
		return -1;
	}
	if (t.mountpoint) {
		r = vmb_cli_ctl_call(&t, req, nreq, &msg, &err);
		if (r < 0) {
			vmb_cli_store_error(target, err.code, "%s", err.msg);
		} else {
			if (msg && msg[0])
				printf("%s\n", msg);
			*rc = fflush(stdout) == 0 ? VMB_EXIT_OK : VMB_EXIT_ERROR;
		}
		free(msg);
		vmb_cli_ctl_target_free(&t);
		return r < 0 ? -1 : 1;
	}
	r = vmb_cli_ops_begin(o, target, &err);
	vmb_cli_ctl_target_free(&t);
	if (r < 0) {
		vmb_cli_store_error(target, err.code, "%s", err.msg);
		return -1;
	}
	return 0;
}

/* Arguments after getopt: exactly n, none empty. */
static int args_ok(int argc, char **argv, int n)
{
	int i;

	if (argc - optind != n)
		return 0;
	for (i = optind; i < argc; i++)
		if (!argv[i][0])
			return 0;
	return 1;
}

/* Only --help/--version (handled before) and "--": anything else starting with
 * '-' is an unknown option. */
static int no_opts(int argc, char **argv, const char *usage)
{
	static const struct option none[] = { { NULL, 0, NULL, 0 } };

	optind = 1;
	opterr = 1;
	if (getopt_long(argc, argv, "+", none, NULL) != -1) {
		fputs(usage, stderr);
		return 0;
	}
	return 1;
}

static const char clone_usage[] =
	"Usage: vmbundlefs clone STORE SRC DST\n"
	"Make a new bundle DST of STORE that shares the images of bundle SRC (or of\n"
	"snapshot SRC = BUNDLE@NAME): both go on with fresh, empty deltas over the\n"
	"same frozen layers, so a clone costs O(1) in the size of the images. Files of\n"
	"at most 1 MiB are copied. Directories, symbolic links, modes, owners, times\n"
	"and user.* extended attributes are kept; hard links between files are not.\n"
	"DST must not exist; on failure nothing named DST is left.\n";

int vmb_cli_clone(int argc, char **argv)
{
	struct vmb_err err = { 0 };
	struct vmb_cli_ops o;

	if (vmb_cli_common(argc, argv, clone_usage))
		return VMB_EXIT_OK;
	if (!no_opts(argc, argv, clone_usage))
		return VMB_EXIT_USAGE;
	if (!args_ok(argc, argv, 3)) {
		fputs(clone_usage, stderr);
		return VMB_EXIT_USAGE;
	}
	{
		const char *req[] = { "clone", argv[optind + 1], argv[optind + 2] };
		int rc;
		if (ops_route(argv[optind], req, 3, &o, &rc) != 0)
			return rc;
	}
	if (vmb_op_clone(&o.c, argv[optind + 1], argv[optind + 2], &err) < 0) {
		vmb_cli_store_error(argv[optind], err.code, "%s", err.msg);
		vmb_cli_ops_end(&o);
		return VMB_EXIT_ERROR;
	}
	vmb_cli_ops_end(&o);
	return VMB_EXIT_OK;
}

static const char snapshot_usage[] =
	"Usage: vmbundlefs snapshot STORE BUNDLE [NAME]\n"
	"       vmbundlefs snapshot --delete STORE BUNDLE@NAME\n"
	"       vmbundlefs snapshot --list STORE|MNT [BUNDLE]\n"
	"Take a point-in-time, read-only snapshot of every file of BUNDLE, named NAME\n"
	"(default: the UTC time, YYYYmmddTHHMMSSZ), and print where it is seen: its\n"
	"manifest STORE/.vmbundlefs/snapshots/BUNDLE@NAME (through a mount:\n"
	"MNT/.snapshots/BUNDLE@NAME/). A snapshot can be the SRC of clone and export.\n"
	"  -d, --delete   remove snapshot BUNDLE@NAME (its layers go with gc)\n"
	"  -l, --list     list the snapshots (of BUNDLE): name, creation time (UTC),\n"
	"                 files and logical size in bytes\n";

static int snapshot_list(struct vmb_cli_ops *o, const char *bundle)
{
	struct vmb_snapshot_info *l = NULL;
	struct vmb_err err = { 0 };
	size_t n = 0, i, w = 8;
	int damaged = 0;

	if (vmb_op_snapshot_list(&o->c, bundle, &l, &n, &err) < 0) {
		vmb_cli_store_error(o->s.path, err.code, "%s", err.msg);
		return VMB_EXIT_ERROR;
	}
	for (i = 0; i < n; i++)
		if (strlen(l[i].spec) > w)
			w = strlen(l[i].spec);
	printf("%-*s %-20s %7s %15s\n", (int)w, "SNAPSHOT", "CREATED", "FILES", "LOGICAL");
	for (i = 0; i < n; i++) {
		char when[32] = "-";
		time_t t = (time_t)l[i].created;
		struct tm tm;

		if (!l[i].damaged && gmtime_r(&t, &tm))
			strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		if (l[i].damaged)
			printf("%-*s %-20s %7s %15s  (damaged)\n", (int)w, l[i].spec, when, "-",
			       "-");
		else
			printf("%-*s %-20s %7llu %15llu\n", (int)w, l[i].spec, when,
			       (unsigned long long)l[i].files,
			       (unsigned long long)l[i].logical);
		damaged |= l[i].damaged;
	}
	vmb_snapshot_list_free(l, n);
	if (fflush(stdout) != 0)
		return VMB_EXIT_ERROR;
	return damaged ? VMB_EXIT_ERROR : VMB_EXIT_OK;
}

int vmb_cli_snapshot(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "delete", no_argument, NULL, 'd' },
		{ "list", no_argument, NULL, 'l' },
		{ NULL, 0, NULL, 0 },
	};
	struct vmb_err err = { 0 };
	struct vmb_cli_ops o;
	char *where = NULL;
	int del = 0, list = 0, c, rc = VMB_EXIT_ERROR, nargs;

	if (vmb_cli_common(argc, argv, snapshot_usage))
		return VMB_EXIT_OK;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+dl", opts, NULL)) != -1) {
		if (c == 'd')
			del = 1;
		else if (c == 'l')
			list = 1;
		else {
			fputs(snapshot_usage, stderr);
			return VMB_EXIT_USAGE;
		}
	}
	nargs = argc - optind;
	if ((del && list) || (del && !args_ok(argc, argv, 2)) ||
	    (list && !args_ok(argc, argv, 1) && !args_ok(argc, argv, 2)) ||
	    (!del && !list && !args_ok(argc, argv, 2) && !args_ok(argc, argv, 3))) {
		fputs(snapshot_usage, stderr);
		return VMB_EXIT_USAGE;
	}
	if (list) {
		/* Only reads the manifests: works on a mounted store too, given as
		 * STORE or as a path inside a mount of it (its store's, as the other
		 * commands find it; when that cannot be told, STORE as given). */
		struct vmb_ctl_target t;
		const char *store = argv[optind];
		struct vmb_err ferr = { 0 };

		if (vmb_cli_ctl_find(argv[optind], &t, &ferr) == 0 && t.store)
			store = t.store;
		memset(&o, 0, sizeof(o));
		if (vmb_store_open(&o.s, store, VMB_STORE_READ, &err) < 0) {
			vmb_cli_store_error(argv[optind], err.code, "%s", err.msg);
			vmb_cli_ctl_target_free(&t);
			return VMB_EXIT_ERROR;
		}
		o.c.store = &o.s;
		o.c.log = &vmb_cli_log;
		rc = snapshot_list(&o, nargs == 2 ? argv[optind + 1] : NULL);
		vmb_store_close(&o.s);
		vmb_cli_ctl_target_free(&t);
		return rc;
	}
	if (del) {
		const char *req[] = { "snapshot-delete", argv[optind + 1] };
		if (ops_route(argv[optind], req, 2, &o, &rc) != 0)
			return rc;
	} else {
		const char *req[] = { "snapshot", argv[optind + 1], argv[optind + 2] };
		if (ops_route(argv[optind], req, nargs == 3 ? 3 : 2, &o, &rc) != 0)
			return rc;
	}
	rc = VMB_EXIT_ERROR;
	if (del) {
		if (vmb_op_snapshot_delete(&o.c, argv[optind + 1], &err) < 0)
			vmb_cli_store_error(argv[optind], err.code, "%s", err.msg);
		else
			rc = VMB_EXIT_OK;
		vmb_cli_ops_end(&o);
		return rc;
	}
	if (vmb_op_snapshot(&o.c, argv[optind + 1], nargs == 3 ? argv[optind + 2] : NULL,
			    &where, &err) < 0) {
		vmb_cli_store_error(argv[optind], err.code, "%s", err.msg);
	} else {
		printf("%s/%s/%s/%s\n", argv[optind], VMB_META_DIR, VMB_SNAPSHOTS_DIR,
		       where);
		rc = fflush(stdout) == 0 ? VMB_EXIT_OK : VMB_EXIT_ERROR;
	}
	free(where);
	vmb_cli_ops_end(&o);
	return rc;
}

static const char flatten_usage[] =
	"Usage: vmbundlefs flatten [-o OPTS] STORE BUNDLE\n"
	"Make every file of BUNDLE a plain file again (its whole content in its own\n"
	"backing file, no base layer), so that the bundle is self-contained and\n"
	"readable without vmbundlefs. Costs the bundle's data in space and time.\n"
	"  -o OPTS   for a pulled bundle: the options of pull (cache=DIR, cafile=FILE,\n"
	"            hard...); chunks not in the cache are fetched\n"
	"When STORE is mounted the mount's daemon flattens (with its own -o options).\n";

int vmb_cli_flatten(int argc, char **argv)
{
	struct vmb_err err = { 0 };
	struct vmb_cli_ops o;
	char *ostr = NULL;
	int c, rc = VMB_EXIT_OK;

	if (vmb_cli_common(argc, argv, flatten_usage))
		return VMB_EXIT_OK;
	optind = 1;
	opterr = 1;
	while ((c = getopt(argc, argv, "+o:")) != -1) {
		if (c != 'o') {
			fputs(flatten_usage, stderr);
			return VMB_EXIT_USAGE;
		}
		ostr = optarg;
	}
	if (!args_ok(argc, argv, 2)) {
		fputs(flatten_usage, stderr);
		return VMB_EXIT_USAGE;
	}
	if (ostr && vmb_cli_remote_opts(ostr, &cli_ropts, 1, &err) < 0) {
		vmb_cli_error("%s", err.msg);
		return VMB_EXIT_USAGE;
	}
	{
		const char *req[] = { "flatten", argv[optind + 1] };
		struct vmb_ctl_target t;

		/* the daemon uses its own -o options: refuse ones it would ignore */
		if (ostr && vmb_cli_ctl_find(argv[optind], &t, &err) == 0) {
			int mounted = t.mountpoint != NULL;

			vmb_cli_ctl_target_free(&t);
			if (mounted) {
				vmb_cli_error("'%s' is mounted: its daemon flattens with the "
					      "mount's options; give -o %s to the mount instead",
					      argv[optind], ostr);
				return VMB_EXIT_USAGE;
			}
		}
		if (ops_route(argv[optind], req, 2, &o, &rc) != 0)
			return rc;
		rc = VMB_EXIT_OK;
	}
	if (vmb_op_flatten(&o.c, argv[optind + 1], &err) < 0) {
		vmb_cli_store_error(argv[optind], err.code, "%s", err.msg);
		rc = VMB_EXIT_ERROR;
	}
	vmb_cli_ops_end(&o);
	return rc;
}

static const char gc_usage[] =
	"Usage: vmbundlefs gc STORE\n"
	"Remove the layers of STORE that nothing references (no file of a bundle, no\n"
	"snapshot, no other layer), the leftovers of layers and clones a crash\n"
	"interrupted, and print what was freed.\n";

int vmb_cli_gc(int argc, char **argv)
{
	struct vmb_gc_result res = { 0 };
	struct vmb_err err = { 0 };
	struct vmb_cli_ops o;
	int rc = VMB_EXIT_OK;

	if (vmb_cli_common(argc, argv, gc_usage))
		return VMB_EXIT_OK;
	if (!no_opts(argc, argv, gc_usage))
		return VMB_EXIT_USAGE;
	if (!args_ok(argc, argv, 1)) {
		fputs(gc_usage, stderr);
		return VMB_EXIT_USAGE;
	}
	{
		const char *req[] = { "gc" };
		if (ops_route(argv[optind], req, 1, &o, &rc) != 0)
			return rc;
		rc = VMB_EXIT_OK;
	}
	if (vmb_op_gc(&o.c, &res, &err) < 0) {
		vmb_cli_store_error(argv[optind], err.code, "%s", err.msg);
		vmb_cli_ops_end(&o);
		return VMB_EXIT_ERROR;
	}
	printf("%s: %llu layers removed (%llu bytes), %llu kept, %llu leftovers removed\n",
	       argv[optind], (unsigned long long)res.layers_removed,
	       (unsigned long long)res.bytes_freed, (unsigned long long)res.layers_kept,
	       (unsigned long long)(res.orphans_removed + res.staging_removed));
	if (fflush(stdout) != 0)
		rc = VMB_EXIT_ERROR;
	vmb_cli_ops_end(&o);
	return rc;
}

static const char pull_usage[] =
	"Usage: vmbundlefs pull [-o OPTS] STORE URL#BUNDLE [NAME]\n"
	"Make a new bundle NAME (default BUNDLE) of STORE from bundle BUNDLE of the\n"
	"published store at URL (file://DIR or DIR, http://, https://, s3://): its\n"
	"small files are copied, its images become thin writable deltas over the\n"
	"remote images, whose chunks are fetched when first read (vmbundlefs prefetch\n"
	"fetches the rest, flatten makes the bundle self-contained). URL ends at the\n"
	"first '#' (a URL or directory holding '#' cannot be pulled from); BUNDLE is\n"
	"the rest, '#'s included.\n"
	"  -o OPTS   cache=DIR (the chunk cache; default /var/cache/vmbundlefs for\n"
	"            root, else ~/.cache/vmbundlefs), pubkey=FILE (refuse an index not\n"
	"            signed by this Ed25519 key), cafile=FILE (CA certificates for\n"
	"            https), hard (wait for the network instead of failing)\n"
	"  -e, --endpoint URL   an s3:// URL's S3-compatible server (http(s)://HOST[:PORT];\n"
	"            default AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL); the pulled\n"
	"            bundle remembers it (its URL becomes s3+http(s)://HOST[:PORT]/...)\n"
	"When STORE is mounted the mount's daemon pulls (with its own -o options).\n";

int vmb_cli_pull(int argc, char **argv)
{
	struct vmb_err err = { 0 };
	struct vmb_cli_ops o;
	static const struct option lopts[] = {
		{ "endpoint", required_argument, NULL, 'e' },
		{ NULL, 0, NULL, 0 },
	};
	char url[VMB_REMOTE_URL_MAX], rurl[VMB_REMOTE_URL_MAX], *hash, *spec = NULL;
	char *ostr = NULL;
	const char *name, *endpoint = NULL;
	int c, rc = VMB_EXIT_ERROR;

	if (vmb_cli_common(argc, argv, pull_usage))
		return VMB_EXIT_OK;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+o:e:", lopts, NULL)) != -1) {
		if (c == 'e') {
			endpoint = optarg;
			continue;
		}
		if (c != 'o') {
			fputs(pull_usage, stderr);
			return VMB_EXIT_USAGE;
		}
		ostr = optarg;
	}
	if (!args_ok(argc, argv, 2) && !args_ok(argc, argv, 3)) {
		fputs(pull_usage, stderr);
		return VMB_EXIT_USAGE;
	}
	if (ostr && vmb_cli_remote_opts(ostr, &cli_ropts, 1, &err) < 0) {
		vmb_cli_error("%s", err.msg);
		return VMB_EXIT_USAGE;
	}
	spec = strdup(argv[optind + 1]);
	if (!spec) {
		vmb_cli_error("out of memory");
		return VMB_EXIT_ERROR;
	}
	/* at the first '#': a URL has none (it would be a fragment, never sent), the
	 * bundle's name may hold more */
	hash = strchr(spec, '#');
	if (!hash || !hash[1] || hash == spec) {
		vmb_cli_error("'%s': give the bundle as URL#BUNDLE", spec);
		free(spec);
		return VMB_EXIT_USAGE;
	}
	*hash = '\0';
	name = argc - optind == 3 ? argv[optind + 2] : hash + 1;
	/* a name the new bundle cannot take is a usage error, as clone's is */
	if (vmb_name_check_new(name, &err) < 0 || name[0] == '.') {
		if (name[0] == '.' && !err.msg[0])
			vmb_err_set(&err, EINVAL, "a new bundle's name may not start with '.'");
		vmb_cli_error("bad bundle name '%s': %s", name, err.msg);
		free(spec);
		return VMB_EXIT_USAGE;
	}
	if (endpoint && cli_ropts.endpoint && strcmp(endpoint, cli_ropts.endpoint)) {
		vmb_cli_error("--endpoint '%s' and -o endpoint='%s' differ", endpoint,
			      cli_ropts.endpoint);
		free(spec);
		return VMB_EXIT_USAGE;
	}
	if (vmb_fetch_url_resolve(spec, endpoint ? endpoint : cli_ropts.endpoint, rurl,
				  sizeof(rurl), &err) < 0 ||
	    vmb_remote_url_norm(rurl, url, sizeof(url), &err) < 0) {
		vmb_cli_error("%s", err.msg);
		free(spec);
		return err.code == EINVAL ? VMB_EXIT_USAGE : VMB_EXIT_ERROR;
	}
	{
		const char *req[] = { "pull", url, hash + 1, name };
		struct vmb_ctl_target t;

		/* the daemon uses its own -o options: refuse ones it would ignore */
		if (ostr && vmb_cli_ctl_find(argv[optind], &t, &err) == 0) {
			int mounted = t.mountpoint != NULL;

			vmb_cli_ctl_target_free(&t);
			if (mounted) {
				vmb_cli_error("'%s' is mounted: its daemon pulls with the mount's "
					      "options; give -o %s to the mount instead", argv[optind],
					      ostr);
				free(spec);
				return VMB_EXIT_USAGE;
			}
		}
		if (ops_route(argv[optind], req, 4, &o, &rc) != 0) {
			free(spec);
			return rc;
		}
	}
	rc = VMB_EXIT_OK;
	if (vmb_op_pull(&o.c, o.r, url, hash + 1, name, &err) < 0) {
		vmb_cli_store_error(argv[optind], err.code, "%s", err.msg);
		rc = VMB_EXIT_ERROR;
	}
	vmb_cli_ops_end(&o);
	free(spec);
	return rc;
}
