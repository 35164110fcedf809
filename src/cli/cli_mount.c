/* cli_mount.c - vmbundlefs mount: parse the command line, hand over to fs/. */
#include "config.h"
#include "cli/cli.h"
#include "fs/vmbfs.h"

#include <dirent.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A format: the defaults come from fs/vmbfs.h. */
static const char mount_usage_fmt[] =
	"Usage: vmbundlefs mount [-f] [-d] [--log=FILE] [-o OPT[,OPT...]] STORE|URL MOUNTPOINT\n"
	"Mount STORE on MOUNTPOINT; unmount with 'fusermount3 -u MOUNTPOINT'. A URL\n"
	"(file://, http://, https://, s3://) of a published store is mounted read-only.\n"
	"  -f, --foreground   stay in the foreground\n"
	"  -d, --debug        print FUSE requests (implies -f)\n"
	"  --log=FILE         append the daemon's messages to FILE\n"
	"                     (default: stderr in the foreground, syslog otherwise;\n"
	"                     always also the store's log, STORE/.vmbundlefs/log)\n"
	"  -o OPTS            FUSE mount options (allow_other, ro, ...) and\n"
	"                     readahead_kb=N (default %u; a URL's mount: %u),\n"
	"                     max_threads=N (default %u),\n"
	"                     aux_patterns=GLOB:GLOB... (aux-storage file names),\n"
	"                     in_use=any|aux (a bundle is in use while any of its files\n"
	"                     is locked (any, the default) or an aux-storage file (aux)),\n"
	"                     lock_cap=N (locks one process may hold, default 10000;\n"
	"                     0: no cap),\n"
	"                     idle_fds=N (descriptors kept open for idle files),\n"
	"                     open_fds=N (open files that keep their descriptors),\n"
	"                     lock_fds=N (files one user may hold locks on),\n"
	"                     buffered_writes (never write the store with O_DIRECT),\n"
	"                     remote images: cache=DIR (the host's chunk cache),\n"
	"                     cache_max=SIZE, hard (reads wait for the network; default\n"
	"                     soft: EIO after the retries), cafile=FILE, pubkey=FILE\n"
	"                     (refuse a top index not signed by this Ed25519 key),\n"
	"                     endpoint=URL (an s3:// URL's S3-compatible server;\n"
	"                     default AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL)\n";

static char mount_usage[2048];

static void make_usage(void)
{
	snprintf(mount_usage, sizeof(mount_usage), mount_usage_fmt,
		 (unsigned)VMB_FS_DEFAULT_READAHEAD_KB, (unsigned)VMB_FS_URL_READAHEAD_KB,
		 (unsigned)VMB_FS_DEFAULT_MAX_THREADS);
}

/* Join repeated -o arguments with commas. */
static int add_opts(char **all, const char *more)
{
	size_t a = *all ? strlen(*all) : 0, m = strlen(more);
	char *n = realloc(*all, a + m + 2);

	if (!n)
		return -1;
	if (a)
		n[a++] = ',';
	memcpy(n + a, more, m + 1);
	*all = n;
	return 0;
}

/* Whether the -o list OPTS has an endpoint= option. */
static int has_endpoint(const char *opts)
{
	const char *p = opts;

	while (p && *p) {
		if (!strncmp(p, "endpoint=", 9))
			return 1;
		p = strchr(p, ',');
		if (p)
			p++;
	}
	return 0;
}

/* The daemon keeps nothing of its starter's but 0-2: an inherited descriptor would
 * hold the starter's locks, and the write end of its pipes, for as long as the mount
 * lives (a script's flock never freed, a "$(vmbundlefs mount ...)" never ending).
 * Called first, before this process opens anything of its own. */
static void close_inherited(void)
{
	DIR *d;
	struct dirent *e;

	if (close_range(3, ~0U, 0) == 0)
		return;
	d = opendir("/proc/self/fd");
	if (!d) {
		for (int fd = 3; fd < 1024; fd++)
			close(fd);
		return;
	}
	while ((e = readdir(d))) {
		int fd = atoi(e->d_name);

		if (fd > 2 && fd != dirfd(d))
			close(fd);
	}
	closedir(d);
}

int vmb_cli_mount(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "foreground", no_argument, NULL, 'f' },
		{ "debug", no_argument, NULL, 'd' },
		{ "log", required_argument, NULL, 'L' },
		{ "options", required_argument, NULL, 'o' },
		{ NULL, 0, NULL, 0 },
	};
	struct vmb_mount_opts mo;
	struct vmb_err err = {0};
	char *fopts = NULL;
	int c, r, rc = VMB_EXIT_OK;

	close_inherited();
	make_usage();
	if (vmb_cli_common(argc, argv, mount_usage))
		return VMB_EXIT_OK;
	memset(&mo, 0, sizeof(mo));
	optind = 1;
	while ((c = getopt_long(argc, argv, "+fdo:", opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			mo.foreground = 1;
			break;
		case 'd':
			mo.debug = mo.foreground = 1;
			break;
		case 'L':
			mo.logfile = optarg;
			break;
		case 'o':
			if (add_opts(&fopts, optarg) < 0) {
				vmb_cli_error("out of memory");
				free(fopts);
				return VMB_EXIT_ERROR;
			}
			break;
		default:
			fputs(mount_usage, stderr);
			free(fopts);
			return VMB_EXIT_USAGE;
		}
	}
	if (argc - optind != 2) {
		fputs(mount_usage, stderr);
		free(fopts);
		return VMB_EXIT_USAGE;
	}
	mo.store = argv[optind];
	mo.mountpoint = argv[optind + 1];
	mo.fuse_opts = fopts;
	/* A bad -o option is a usage error (exit 2), found before anything is mounted. */
	if (vmb_fs_check_opts(fopts, &err) < 0) {
		vmb_cli_error("%s", err.msg);
		free(fopts);
		return VMB_EXIT_USAGE;
	}
	/* A published store's URL (or a directory holding one): its shadow store. */
	if (strstr(mo.store, "://")) {
		rc = vmb_cli_mount_url(mo.store, mo.mountpoint, fopts, mo.foreground, mo.debug,
				       mo.logfile);
		free(fopts);
		return rc;
	}
	/* a store's pulled bundles remember their endpoint (vmb_fetch_url_resolve) */
	if (has_endpoint(fopts)) {
		vmb_cli_error("mount option 'endpoint=' is for mounting an s3:// URL; the "
			      "bundles of store '%s' remember the endpoint they were pulled "
			      "from", mo.store);
		free(fopts);
		return VMB_EXIT_USAGE;
	}
	r = vmb_fs_main(&mo, &err);
	if (r < 0) {
		/* A failed mount is in the store's log too (fs/fuse_mount.c). */
		vmb_cli_store_error(mo.store, err.code, "%s", err.msg);
		rc = VMB_EXIT_ERROR;
	}
	free(fopts);
	return rc;
}
