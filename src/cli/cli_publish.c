/* cli_publish.c - vmbundlefs publish: bundles of a store (mounted or not) as a
 * published store (store/publish.h, vmbundlefs(5) "PUBLISHED STORES").
 *
 * A point-in-time state: each BUNDLE is snapshotted first (through the mount's
 * daemon when the store is mounted, as `vmbundlefs snapshot` does; else on the
 * store, locked exclusively for that moment), published from the snapshot's
 * immutable layers while VMs go on writing, and the temporary snapshot is deleted
 * afterwards, also on failure and on SIGINT/SIGTERM/SIGHUP (the publish stops at
 * the next chunk). BUNDLE@NAME publishes an existing snapshot under BUNDLE's name
 * (and leaves it). The temporary snapshots are held (vmb_op_publish_hold: a locked
 * directory in the store's staging directory, taken before them, let go after
 * they are deleted), so that those of a publish that was killed are deleted by
 * gc, fsck --repair or the next publish of the unmounted store, and those of one
 * that runs never are.
 */
#include "config.h"
#include "cli/cli.h"
#include "cli/progress.h"
#include "store/manifest.h"
#include "store/ops.h"
#include "store/publish.h"
#include "store/store.h"
#include "layer/layer.h"
#include "remote/fetch.h"
#include "remote/pubfmt.h"
#include "remote/remote.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char publish_usage[] =
	"Usage: vmbundlefs publish [OPTIONS] STORE|MOUNTPOINT NAME... DEST\n"
	"Publish bundles of a store (NAME: a bundle, or BUNDLE@SNAPSHOT for one of its\n"
	"snapshots) to DEST, a directory any web server or CDN can serve, or\n"
	"s3://BUCKET/PREFIX: static, immutable, content-addressed objects and an index\n"
	"replaced last, atomically.\n"
	"Each bundle is published from a snapshot taken first (removed afterwards), so\n"
	"a mounted store's VMs may go on writing. Objects already at DEST are not\n"
	"written again unless damaged (a directory's are read and compared; on S3, ETags\n"
	"are compared with MD5s); bundles already listed in DEST/index are kept.\n"
	"  -c, --chunk-size=SIZE  chunk size of images, a power of two from 64K to 16M\n"
	"                         (default 256K)\n"
	"  -s, --sign=KEY         sign the index with the Ed25519 private key in the PEM\n"
	"                         file KEY (openssl genpkey -algorithm ed25519)\n"
	"  -e, --endpoint=URL     s3: an S3-compatible server (https://host:port,\n"
	"                         path-style; default AWS_ENDPOINT_URL_S3,\n"
	"                         AWS_ENDPOINT_URL); credentials from AWS_ACCESS_KEY_ID /\n"
	"                         AWS_SECRET_ACCESS_KEY, AWS_PROFILE and ~/.aws files\n"
	"      --cafile=FILE      https: trust the CAs in FILE\n"
	"      --verify           a URL DEST: GET every object already there and check\n"
	"                         its SHA-256 (damaged: written again)\n"
	"  -o OPTS                for a pulled bundle whose images stand on remote\n"
	"                         images: the options of pull (cache=, cafile=, hard);\n"
	"                         chunks not in the cache are fetched\n"
	"  -q, --quiet            no summary line\n";

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static int parse_size(const char *s, uint32_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || s[0] == '-')
		return -1;
	if (*end == 'K' || *end == 'k')
		v <<= 10, end++;
	else if (*end == 'M' || *end == 'm')
		v <<= 20, end++;
	if (*end == 'i' && end[1] == 'B')
		end += 2;
	else if (*end == 'B' && end > s && (end[-1] == 'K' || end[-1] == 'k' || end[-1] == 'M' || end[-1] == 'm'))
		end++;
	if (*end || v > UINT32_MAX)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

struct target {
	char *store;              /* its path */
	struct vmb_ctl_target t;  /* t.mountpoint: mounted */
};

/* Take snapshot NAME of BUNDLE (mounted: through the daemon). */
static int take(struct target *tg, const char *bundle, const char *name, struct vmb_err *err)
{
	struct vmb_cli_ops o;
	char *where = NULL, *msg = NULL;
	int r;

	if (tg->t.mountpoint) {
		const char *req[] = { "snapshot", bundle, name };

		r = vmb_cli_ctl_call(&tg->t, req, 3, &msg, err);
		free(msg);
		return r;
	}
	r = vmb_cli_ops_begin(&o, tg->store, err);
	if (r == -EBUSY)   /* it was not mounted a moment ago */
		return vmb_err_set(err, EBUSY, "store '%s' was mounted meanwhile: try "
				   "again", tg->store);
	if (r < 0)
		return r;
	/* the snapshots earlier publishes left when they were killed */
	vmb_op_publish_sweep(&o.c, 1, NULL, NULL);
	r = vmb_op_snapshot(&o.c, bundle, name, &where, err);
	free(where);
	vmb_cli_ops_end(&o);
	return r;
}

/* Delete snapshot spec (mounted or not: asks again where the store is). */
static int drop(const char *store, const char *spec, struct vmb_err *err)
{
	struct vmb_ctl_target t;
	struct vmb_cli_ops o;
	char *msg = NULL;
	int r;

	r = vmb_cli_ctl_find(store, &t, err);
	if (r < 0)
		return r;
	if (t.mountpoint) {
		const char *req[] = { "snapshot-delete", spec };

		r = vmb_cli_ctl_call(&t, req, 2, &msg, err);
		free(msg);
		vmb_cli_ctl_target_free(&t);
		return r;
	}
	vmb_cli_ctl_target_free(&t);
	r = vmb_cli_ops_begin(&o, store, err);
	if (r < 0)
		return r;
	r = vmb_op_snapshot_delete(&o.c, spec, err);
	vmb_cli_ops_end(&o);
	return r;
}

int vmb_cli_publish(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "chunk-size", required_argument, NULL, 'c' },
		{ "sign", required_argument, NULL, 's' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "endpoint", required_argument, NULL, 'e' },
		{ "cafile", required_argument, NULL, 'C' },
		{ "verify", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct vmb_err err = { 0 };
	struct vmb_publish_opts po;
	struct vmb_publish_stats st;
	struct vmb_publish_item *items = NULL;
	char **snaps = NULL, **names = NULL;
	struct vmb_sign_key *key = NULL;
	struct vmb_pub_sink *sink = NULL;
	struct vmb_layers *ls = NULL;
	struct vmb_remote_opts ro;
	struct vmb_remote *rem = NULL;
	struct vmb_store s;
	struct vmb_progress bar;
	struct target tg;
	struct sigaction sa, old[3];
	const char *keyfile = NULL, *dest, *store, *endpoint = NULL, *cafile = NULL;
	char rdest[4096];
	struct vmb_fetch_opts fo;
	struct vmb_pubhold hold = { .stagefd = -1, .fd = -1 };
	int c, i, n, quiet = 0, rc = VMB_EXIT_ERROR, r, sigs[3] = { SIGINT, SIGTERM, SIGHUP };
	int store_open = 0, taken = 0;

	memset(&po, 0, sizeof(po));
	memset(&ro, 0, sizeof(ro));
	memset(&tg, 0, sizeof(tg));
	memset(&s, 0, sizeof(s));
	if (vmb_cli_common(argc, argv, publish_usage))
		return VMB_EXIT_OK;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+c:s:qe:o:", opts, NULL)) != -1) {
		if (c == 'c') {
			if (parse_size(optarg, &po.chunk_size) < 0 ||
			    po.chunk_size < VMB_PIDX_CHUNK_MIN || po.chunk_size > VMB_PIDX_CHUNK_MAX ||
			    (po.chunk_size & (po.chunk_size - 1))) {
				vmb_cli_error("bad chunk size '%s': a power of two from 64K to 16M",
					      optarg);
				return VMB_EXIT_USAGE;
			}
		} else if (c == 's') {
			keyfile = optarg;
		} else if (c == 'q') {
			quiet = 1;
		} else if (c == 'e') {
			endpoint = optarg;
		} else if (c == 'C') {
			cafile = optarg;
		} else if (c == 'V') {
			po.verify = 1;
		} else if (c == 'o') {
			if (vmb_cli_remote_opts(optarg, &ro, 1, &err) < 0) {
				vmb_cli_error("%s", err.msg);
				return VMB_EXIT_USAGE;
			}
		} else {
			fputs(publish_usage, stderr);
			return VMB_EXIT_USAGE;
		}
	}
	if (argc - optind < 3) {
		fputs(publish_usage, stderr);
		return VMB_EXIT_USAGE;
	}
	/* the same cache for the snapshots taken here (a pulled bundle's snapshot
	 * reads its remote images' indexes from it) */
	vmb_cli_ops_remote_opts(&ro);
	for (i = optind; i < argc; i++)
		if (!argv[i][0]) {
			fputs(publish_usage, stderr);
			return VMB_EXIT_USAGE;
		}
	store = argv[optind];
	dest = argv[argc - 1];
	n = argc - optind - 2;
	if (endpoint && strncmp(dest, "s3://", 5) && strncmp(dest, "s3+http", 7)) {
		vmb_cli_error("--endpoint is for an s3:// destination, not '%s'", dest);
		return VMB_EXIT_USAGE;
	}
	/* s3://: the endpoint of --endpoint, or the AWS tools' variables and config */
	if (!strncmp(dest, "s3", 2) && strstr(dest, "://")) {
		if (vmb_fetch_url_resolve(dest, endpoint, rdest, sizeof(rdest), &err) < 0) {
			vmb_cli_error("%s", err.msg);
			return err.code == EINVAL ? VMB_EXIT_USAGE : VMB_EXIT_ERROR;
		}
		dest = rdest;
	}
	if (keyfile && vmb_sign_key_load(keyfile, &key, &err) < 0) {
		vmb_cli_error("%s", err.msg);
		return VMB_EXIT_ERROR;
	}
	items = calloc((size_t)n, sizeof(*items));
	snaps = calloc((size_t)n, sizeof(*snaps));
	names = calloc((size_t)n, sizeof(*names));
	if (!items || !snaps || !names) {
		vmb_cli_error("out of memory");
		goto out;
	}
	/* Names first: nothing is snapshotted for a command that cannot run. */
	for (i = 0; i < n; i++) {
		const char *arg = argv[optind + 1 + i];
		char *b = NULL, *sn = NULL;
		int j;

		if (strchr(arg, '@')) {
			if (vmb_snapshot_split(arg, &b, &sn, &err) < 0) {
				vmb_cli_error("%s", err.msg);
				goto out;
			}
			free(sn);
			names[i] = b;
		} else {
			if (vmb_name_check(arg, &err) < 0 || vmb_pub_name_check(arg, &err) < 0) {
				vmb_cli_error("cannot publish '%s': %s", arg, err.msg);
				goto out;
			}
			names[i] = strdup(arg);
			if (!names[i]) {
				vmb_cli_error("out of memory");
				goto out;
			}
		}
		for (j = 0; j < i; j++)
			if (!strcmp(names[i], names[j])) {
				vmb_cli_error("cannot publish bundle '%s' twice", names[i]);
				goto out;
			}
	}
	if (vmb_cli_ctl_find(store, &tg.t, &err) < 0) {
		vmb_cli_store_error(store, err.code, "%s", err.msg);
		goto out;
	}
	tg.store = tg.t.store ? tg.t.store : (char *)store;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	for (i = 0; i < 3; i++)
		sigaction(sigs[i], &sa, &old[i]);
	/* The store (read only, no lock: it may be mounted), and the hold on the
	 * temporary snapshots, taken before them. */
	if (vmb_store_open(&s, tg.store, VMB_STORE_READ, &err) < 0) {
		vmb_cli_store_error(store, err.code, "%s", err.msg);
		goto out;
	}
	store_open = 1;
	for (i = 0; i < n; i++)
		if (!strchr(argv[optind + 1 + i], '@')) {
			if (vmb_op_publish_hold(&s, &hold, &err) < 0) {
				vmb_cli_store_error(store, err.code, "%s", err.msg);
				goto out;
			}
			break;
		}
	/* The temporary snapshots. */
	for (i = 0; i < n; i++) {
		const char *arg = argv[optind + 1 + i];
		char sname[NAME_MAX + 32];

		if (strchr(arg, '@')) {
			snaps[i] = strdup(arg);
		} else {
			vmb_op_publish_snapname(&hold, i, sname, sizeof(sname));
			if (take(&tg, arg, sname, &err) < 0) {
				vmb_cli_store_error(store, err.code, "cannot snapshot bundle '%s' "
						    "to publish it: %s", arg, err.msg);
				goto out;
			}
			if (asprintf(&snaps[i], "%s@%s", arg, sname) < 0)
				snaps[i] = NULL;
			taken = i + 1;
		}
		if (!snaps[i]) {
			vmb_cli_error("out of memory");
			goto out;
		}
		items[i].snapshot = snaps[i];
		items[i].name = names[i];
		if (stop)
			break;
	}
	if (stop) {
		vmb_cli_error("interrupted");
		goto out;
	}
	vmb_op_step("publish", 1);   /* test hook (store/ops.h): snapshots taken */
	/* DEST only now: a publish that cannot take its snapshots (a read-only
	 * mount, a bundle in use...) leaves no new directory behind */
	vmb_fetch_opts_default(&fo);
	fo.cafile = cafile;
	if ((strstr(dest, "://") ? vmb_pub_sink_url_open(dest, &fo, &sink, &err) :
	     vmb_pub_sink_dir_open(dest, &sink, &err)) < 0) {
		vmb_cli_error("%s", err.msg);
		goto out;
	}
	/* Read the snapshots' layers: they never change, whoever mounts the store. */
	if (vmb_layers_open(&ls, s.metafd, NULL, &err) < 0) {
		vmb_cli_store_error(store, err.code, "%s", err.msg);
		goto out;
	}
	/* A pulled bundle's images stand on remote layers: their chunks come from
	 * the host's cache (fetched when absent), as a mount reads them. Nothing is
	 * opened nor fetched for a bundle that has none. */
	if (vmb_remote_open(&ro, &vmb_cli_log, &rem, &err) < 0) {
		vmb_cli_error("%s", err.msg);
		goto out;
	}
	vmb_layers_set_remote(ls, rem);
	vmb_progress_init(&bar, stderr, "publish");
	po.key = key;
	po.progress = vmb_progress_update;
	po.progress_arg = &bar;
	po.cancel = &stop;
	r = vmb_publish(&s, ls, items, (size_t)n, sink, &po, &st, &err);
	vmb_progress_end(&bar);
	if (r < 0) {
		vmb_cli_error("cannot publish to '%s': %s", dest, err.msg);
		goto out;
	}
	if (!quiet) {
		char w[32], p[32], l[32], rep[64] = "";

		vmb_progress_bytes(w, sizeof(w), st.bytes_written);
		vmb_progress_bytes(p, sizeof(p), st.bytes_present);
		vmb_progress_bytes(l, sizeof(l), st.logical_bytes);
		if (st.objects_repaired)
			snprintf(rep, sizeof(rep), ", %" PRIu64 " damaged at DEST repaired",
				 st.objects_repaired);
		if (st.merged)
			fprintf(stderr, "vmbundlefs: note: another publish replaced the index at "
				"'%s' meanwhile: its bundles are kept\n", dest);
		printf("published %d bundle%s to %s (generation %" PRIu64 "%s): %s of files, "
		       "%" PRIu64 " objects written (%s), %" PRIu64 " already there (%s), "
		       "%" PRIu64 " of %" PRIu64 " chunks zero%s\n", n, n == 1 ? "" : "s", dest,
		       st.generation, key ? ", signed" : "", l, st.objects_written, w,
		       st.objects_present, p, st.zero_chunks, st.chunks, rep);
		if (fflush(stdout) != 0)
			goto out;
	}
	if (quiet && st.objects_repaired)
		fprintf(stderr, "vmbundlefs: note: %" PRIu64 " object%s at '%s' damaged "
			"(other bytes or length): written again\n", st.objects_repaired,
			st.objects_repaired == 1 ? "" : "s", dest);
	rc = VMB_EXIT_OK;
out:
	vmb_layers_close(ls);
	vmb_remote_close(rem);   /* after the layers, whose bases it serves */
	for (i = 0; i < taken; i++) {
		if (!snaps[i] || strchr(argv[optind + 1 + i], '@'))
			continue;
		if (drop(tg.store, snaps[i], &err) < 0) {
			vmb_cli_store_error(store, err.code, "cannot delete the temporary snapshot "
					    "'%s': %s (delete it with 'vmbundlefs snapshot --delete')",
					    snaps[i], err.msg);
			rc = VMB_EXIT_ERROR;
		}
	}
	vmb_op_publish_release(&hold);   /* after the snapshots are gone */
	if (store_open)
		vmb_store_close(&s);
	vmb_cli_ctl_target_free(&tg.t);
	for (i = 0; snaps && names && i < n; i++) {
		free(snaps[i]);
		free(names[i]);
	}
	free(snaps);
	free(names);
	free(items);
	vmb_pub_sink_close(sink);
	vmb_sign_key_free(key);
	return rc;
}
