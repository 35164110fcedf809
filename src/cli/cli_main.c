/* cli_main.c - the vmbundlefs command: dispatch to a subcommand. */
#include "config.h"
#include "cli/cli.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char usage[] =
	"Usage: vmbundlefs COMMAND [OPTIONS] ...\n"
	"Mount a store of virtual-machine bundles whose images are sparse block maps.\n"
	"\n"
	"Commands:\n"
	"  init STORE                     create a new, empty store\n"
	"  mount [-f] [-d] [--log=FILE] [-o OPTS] STORE MOUNTPOINT\n"
	"                                 mount a store (unmount with fusermount3 -u)\n"
	"  ls [-b] STORE                  list bundles with logical and allocated sizes\n"
	"  fsck [-n] STORE                check a store and repair what can be repaired\n"
	"  import [--replace] [--max-size=BYTES] STORE ARCHIVE|- [NAME]\n"
	"                                 make a bundle from an archive (tar, zip, OVA)\n"
	"  export [--format=FMT] STORE NAME OUT|-\n"
	"                                 write a bundle as an archive, holes kept\n"
	"  clone STORE SRC DST            a new bundle sharing the layers of SRC (O(1))\n"
	"  snapshot STORE BUNDLE [NAME]   a read-only point-in-time copy of a bundle\n"
	"  snapshot --delete STORE BUNDLE@NAME | --list STORE [BUNDLE]\n"
	"  flatten [-o OPTS] STORE BUNDLE make a bundle's files plain again (no layers)\n"
	"  gc STORE                       remove layers nothing uses\n"
	"  deps STORE NAME                list the layers a bundle (or snapshot) stands on\n"
	"  status [-n LINES] STORE        mounts of a store, their daemons, the last lines\n"
	"                                 of the daemons' log (STORE/.vmbundlefs/log)\n"
	"  pull [-o OPTS] STORE URL#BUNDLE [NAME]\n"
	"                                 a local bundle over the images of a published\n"
	"                                 store, fetched lazily\n"
	"  prefetch [--rate BYTES/s] PATH...\n"
	"                                 fetch what is not cached of files' remote images\n"
	"  publish [-c SIZE] [-s KEY] [-e URL] STORE NAME... DEST\n"
	"                                 publish bundles as static, content-addressed\n"
	"                                 files (a directory a web server can serve,\n"
	"                                 or s3://BUCKET/PREFIX)\n"
	"  ping STORE|PATH                ask the mount's daemon whether it answers on its\n"
	"                                 control channel\n"
	"\n"
	"  --help, --version              also after any command\n"
	"See vmbundlefs(1) and vmbundlefs(5).\n";

void vmb_cli_error(const char *fmt, ...)
{
	va_list ap;

	fputs("vmbundlefs: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void log_line(void *arg, const char *msg)
{
	(void)arg;
	vmb_cli_error("%s", msg);
}

const struct vmb_log vmb_cli_log = { log_line, NULL };

void vmb_cli_version(void)
{
	printf("vmbundlefs %s\n", PACKAGE_VERSION);
}

int vmb_cli_common(int argc, char **argv, const char *text)
{
	int i;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--"))
			break;
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			fputs(text, stdout);
			return 1;
		}
		if (!strcmp(argv[i], "--version") || !strcmp(argv[i], "-V")) {
			vmb_cli_version();
			return 1;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} cmds[] = {
		{ "init", vmb_cli_init },
		{ "mount", vmb_cli_mount },
		{ "ls", vmb_cli_ls },
		{ "fsck", vmb_cli_fsck },
		{ "import", vmb_cli_import },
		{ "export", vmb_cli_export },
		{ "deps", vmb_cli_deps },
		{ "status", vmb_cli_status },
		{ "ping", vmb_cli_ping },
		{ "clone", vmb_cli_clone },
		{ "snapshot", vmb_cli_snapshot },
		{ "flatten", vmb_cli_flatten },
		{ "gc", vmb_cli_gc },
		{ "pull", vmb_cli_pull },
		{ "prefetch", vmb_cli_prefetch },
		{ "publish", vmb_cli_publish },
	};
	size_t i;

	if (argc < 2) {
		fputs(usage, stderr);
		return VMB_EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		fputs(usage, stdout);
		return VMB_EXIT_OK;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
		vmb_cli_version();
		return VMB_EXIT_OK;
	}
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (!strcmp(argv[1], cmds[i].name))
			return cmds[i].fn(argc - 1, argv + 1);
	vmb_cli_error("unknown command '%s' (try 'vmbundlefs --help')", argv[1]);
	return VMB_EXIT_USAGE;
}
