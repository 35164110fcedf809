/* cli_cmds.c - vmbundlefs init, ls and fsck. */
#include "config.h"
#include "cli/cli.h"
#include "remote/cache.h"
#include "store/fsck.h"
#include "store/store.h"
#include "store/store_log.h"
#include "store/ops.h"
#include "layer/layer.h"
#include "lock/auxfile.h"

#include <errno.h>

#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static const char init_usage[] =
	"Usage: vmbundlefs init STORE\n"
	"Create a new, empty store in STORE (a new or empty directory).\n";

int vmb_cli_init(int argc, char **argv)
{
	struct vmb_err err = {0};

	if (vmb_cli_common(argc, argv, init_usage))
		return VMB_EXIT_OK;
	if (argc != 2 || argv[1][0] == '-') {
		fputs(init_usage, stderr);
		return VMB_EXIT_USAGE;
	}
	if (vmb_store_init(argv[1], &err) < 0) {
		vmb_cli_store_error(argv[1], err.code, "%s", err.msg);
		return VMB_EXIT_ERROR;
	}
	return VMB_EXIT_OK;
}

static const char ls_usage[] =
	"Usage: vmbundlefs ls [-b|--bytes] STORE\n"
	"List the bundles of STORE: logical size (sum of file sizes), allocated size\n"
	"(data blocks in the files' own maps), number of files, own size (allocated\n"
	"plus the layers only this bundle and its snapshots use: what removing them\n"
	"frees) and shared size (layers other bundles use too).\n"
	"  -b, --bytes   print sizes in bytes\n";

static void human(char *buf, size_t size, unsigned long long v, int bytes)
{
	static const char units[] = "BKMGTPE";
	double d = (double)v;
	int u = 0;

	if (bytes) {
		snprintf(buf, size, "%llu", v);
		return;
	}
	while (d >= 1024 && u < 6) {
		d /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, size, "%lluB", v);
	else
		snprintf(buf, size, "%.1f%c", d, units[u]);
}

int vmb_cli_ls(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "bytes", no_argument, NULL, 'b' },
		{ NULL, 0, NULL, 0 },
	};
	struct vmb_bundle_info *list = NULL;
	struct vmb_err err = {0};
	struct vmb_inuse u;
	struct vmb_store s;
	struct vmb_opctx oc = { 0 };
	struct vmb_space *sp = NULL;
	size_t nsp = 0;
	int space_ok = 1;
	char **aux = NULL;
	size_t n = 0, i, w = 4;
	int bytes = 0, c, r, damaged = 0;

	if (vmb_cli_common(argc, argv, ls_usage))
		return VMB_EXIT_OK;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+b", opts, NULL)) != -1) {
		if (c != 'b') {
			fputs(ls_usage, stderr);
			return VMB_EXIT_USAGE;
		}
		bytes = 1;
	}
	if (argc - optind != 1) {
		fputs(ls_usage, stderr);
		return VMB_EXIT_USAGE;
	}
	r = vmb_store_open(&s, argv[optind], VMB_STORE_READ, &err);
	if (r == 0)
		r = vmb_store_list(&s, &list, &n, &err);
	/* Own and shared bytes need the layers: without them (a store whose metadata
	 * the caller cannot read), those columns say '-'. */
	if (r == 0) {
		struct vmb_err e2 = { 0 };
		oc.store = &s;
		if (vmb_layers_open(&oc.layers, s.metafd, NULL, &e2) < 0 ||
		    vmb_op_space(&oc, &sp, &nsp, &e2) < 0) {
			vmb_cli_store_error(argv[optind], e2.code, "own and shared sizes "
					    "unknown: %s", e2.msg);
			space_ok = 0;
		}
	}
	if (r == 0)
		r = vmb_aux_load(&s, &aux, &err);
	if (r == 0) {
		int aux_only;
		r = vmb_inuse_rule_load(&s, &aux_only, &err);
	}
	if (r < 0) {
		vmb_cli_store_error(argv[optind], err.code, "%s", err.msg);
		vmb_space_free(sp, nsp);
		vmb_layers_close(oc.layers);
		vmb_store_close(&s);
		vmb_bundle_list_free(list, n);
		return VMB_EXIT_ERROR;
	}
	for (i = 0; i < n; i++)
		if (strlen(list[i].name) > w)
			w = strlen(list[i].name);
	printf("%-*s %15s %15s %7s %15s %15s\n", (int)w, "NAME", "LOGICAL", "ALLOCATED",
	       "FILES", "OWN", "SHARED");
	for (i = 0; i < n; i++) {
		char lg[32], al[32], ow[32], sh[32];
		uint64_t own = list[i].allocated, shared = 0;
		size_t k;

		for (k = 0; k < nsp; k++)
			if (!strcmp(sp[k].name, list[i].name)) {
				own += sp[k].own;
				shared = sp[k].shared;
			}
		human(lg, sizeof(lg), (unsigned long long)list[i].logical, bytes);
		human(al, sizeof(al), (unsigned long long)list[i].allocated, bytes);
		human(ow, sizeof(ow), (unsigned long long)own, bytes);
		human(sh, sizeof(sh), (unsigned long long)shared, bytes);
		if (!space_ok)
			strcpy(ow, "-"), strcpy(sh, "-");
		printf("%-*s %15s %15s %7llu %15s %15s", (int)w, list[i].name, lg, al,
		       (unsigned long long)list[i].files, ow, sh);
		if (list[i].damaged)
			printf("  (damaged)");
		r = vmb_bundle_holder(&s, list[i].name, (const char *const *)aux, &u, &err);
		if (r > 0) {
			if (u.known)
				printf("  in use by pid %ld (%s)", (long)u.h.pid, u.h.comm);
			else
				printf("  in use ('%s' is locked)", u.path);
		} else if (r < 0) {
			printf("  (in use? unknown)");
			fflush(stdout);
			vmb_cli_store_error(argv[optind], err.code,
					    "cannot tell whether bundle '%s' is in use: %s",
					    list[i].name, err.msg);
		}
		printf("\n");
		damaged |= list[i].damaged;
	}
	if (damaged)
		vmb_cli_store_error(argv[optind], EIO, "damaged bundles: 'vmbundlefs fsck -n %s' "
				    "names the files", argv[optind]);
	/* What went wrong lately in the mounts, where a user looks first. */
	vmb_cli_log_recent(argv[optind], s.metafd, VMB_CLI_LS_LOG_LINES,
			   VMB_CLI_LS_LOG_WINDOW);
	vmb_aux_free(aux);
	vmb_space_free(sp, nsp);
	vmb_layers_close(oc.layers);
	vmb_store_close(&s);
	vmb_bundle_list_free(list, n);
	return damaged ? VMB_EXIT_ERROR : VMB_EXIT_OK;
}

static const char fsck_usage[] =
	"Usage: vmbundlefs fsck [-n] STORE\n"
	"       vmbundlefs fsck [-n] --cache[=DIR]\n"
	"Check STORE (not mounted) and repair what can be repaired: rebuild missing,\n"
	"stale or corrupt block maps from the backing files, remove maps of files\n"
	"that no longer exist, make the store's metadata its owner's alone (0700/0600).\n"
	"With --cache, check the cache of remote chunks instead (DIR, or this user's\n"
	"default): re-hash every chunk, remove bad ones, stale temporaries and stray\n"
	"files; it may be in use meanwhile.\n"
	"  -n, --no-repair   only check\n"
	"Exit status: 0 clean, 1 problems found and all repaired, 4 problems left,\n"
	"8 the check could not run, 2 a usage error.\n";

static void say_line(void *arg, const char *msg)
{
	printf("%s\n", msg);
}

/* vmbundlefs fsck --cache[=DIR] */
static int fsck_cache(const char *dir, int repair)
{
	struct vmb_cache_opts o;
	struct vmb_cache_fsck_result res;
	struct vmb_cache *c = NULL;
	struct vmb_err err = {0};
	char def[PATH_MAX];
	struct stat st;
	int r;

	if (!dir) {
		if (vmb_cache_default_dir(def, sizeof(def), &err) < 0) {
			fprintf(stderr, "vmbundlefs: %s\n", err.msg);
			return 8;
		}
		dir = def;
	}
	if (stat(dir, &st) < 0) {
		fprintf(stderr, "vmbundlefs: no cache at '%s': %s\n", dir, strerror(errno));
		return 8;
	}
	vmb_cache_opts_default(&o);
	o.min_free_bytes = 0;
	o.evict_manual = 1;   /* a check evicts nothing */
	o.no_sweep = !repair; /* and -n removes nothing */
	o.check = 1;          /* a file at chunks/<aa> is its to report */
	if (vmb_cache_open(dir, &o, &c, &err) < 0) {
		fprintf(stderr, "vmbundlefs: %s\n", err.msg);
		return 8;
	}
	r = vmb_cache_fsck_res(c, repair, stdout, &res, &err);
	vmb_cache_close(c);
	if (r < 0) {
		fprintf(stderr, "vmbundlefs: %s\n", err.msg);
		return 8;
	}
	if (res.problems == 0)
		return 0;
	return repair && res.repaired == res.problems ? 1 : 4;
}

int vmb_cli_fsck(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "no-repair", no_argument, NULL, 'n' },
		{ "cache", optional_argument, NULL, 'C' },
		{ NULL, 0, NULL, 0 },
	};
	const char *cache_dir = NULL;
	int cache = 0;
	struct vmb_log say = { say_line, NULL };
	struct vmb_fsck_result res;
	struct vmb_err err = {0};
	char log[PATH_MAX];
	int repair = 1, c;

	if (vmb_cli_common(argc, argv, fsck_usage))
		return VMB_EXIT_OK;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+n", opts, NULL)) != -1) {
		if (c == 'C') {
			cache = 1;
			cache_dir = optarg;
			continue;
		}
		if (c != 'n') {
			fputs(fsck_usage, stderr);
			return VMB_EXIT_USAGE;
		}
		repair = 0;
	}
	if (cache && !cache_dir && argc - optind == 1)
		cache_dir = argv[optind++];   /* --cache DIR */
	if (cache && argc == optind && (!cache_dir || *cache_dir))
		return fsck_cache(cache_dir, repair);
	if (cache || argc - optind != 1) {
		fputs(fsck_usage, stderr);
		return VMB_EXIT_USAGE;
	}
	if (vmb_fsck(argv[optind], repair, &say, &res, &err) < 0) {
		/* mounted (EBUSY): status says where, and the log what happened */
		vmb_cli_store_error(argv[optind], err.code, "%s", err.msg);
		return 8;
	}
	printf("%s: %u files checked, %u problems, %u repaired\n", argv[optind], res.files,
	       res.problems, res.repaired);
	if (res.problems == 0)
		return 0;
	/* What a mount made of these files (an EIO, and why) is in the daemons' log. */
	if (vmb_cli_log_path(argv[optind], log, sizeof(log)) == 0)
		printf("the daemons' messages about them: %s\n", log);
	return res.repaired == res.problems ? 1 : 4;
}
