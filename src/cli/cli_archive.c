/* cli_archive.c - vmbundlefs import, export and deps. */
#include "config.h"
#include "archive/vmb_archive.h"
#include "cli/cli.h"
#include "cli/progress.h"
#include "store/store.h"
#include "store/ops.h"
#include "layer/layer.h"
#include "remote/remote.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>


/* An export's or import's note (vmb_note_fn): kept, and printed once the progress
 * line is done. */
static void keep_note(void *arg, const char *msg)
{
	char *note = arg;

	if (!note[0])
		snprintf(note, VMB_ERR_MAX, "%s", msg);
}

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

/* SIGINT, SIGTERM and SIGHUP set the flag the library checks between blocks; no
 * SA_RESTART, so a blocked read of standard input returns. */
static void catch_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

/* BYTES with an optional K, M, G, T suffix (powers of 1024, "KiB" etc. also). */
static int parse_size(const char *s, uint64_t *out)
{
	unsigned long long v;
	char *end;
	int shift = 0;

	errno = 0;
	if (*s == '-' || *s == '\0')
		return -EINVAL;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	default: break;
	}
	if (shift && (!strcmp(end, "iB") || !strcmp(end, "B")))
		end += strlen(end);
	if (*end || (shift && v > (UINT64_MAX >> shift)) || v == 0)
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

/* A NAME argument that cannot name a bundle is a usage error: 1 when it is bad. */
static int bad_name(const char *name)
{
	struct vmb_err err = { 0 };

	if (vmb_name_check(name, &err) < 0) {
		vmb_cli_error("cannot use '%s' as a bundle name: %s", name, err.msg);
		return 1;
	}
	if (vmb_store_reserved_new(name)) {
		vmb_cli_error("'%s' is reserved by the store and cannot name a bundle", name);
		return 1;
	}
	return 0;
}

static const char import_usage[] =
	"Usage: vmbundlefs import [OPTIONS] STORE ARCHIVE|- [NAME]\n"
	"Make a new bundle in STORE from an archive: tar (pax, GNU, ustar, with sparse\n"
	"entries), zip (a zipped .utm bundle), an OVA, cpio, 7-zip, ISO 9660; compressed\n"
	"with gzip, bzip2, xz, zstd, lz4 ... (formats and compression are recognised by\n"
	"content). '-' reads standard input. Holes and whole 4 KiB blocks of zeros stay\n"
	"holes. The bundle appears whole under its name, or not at all.\n"
	"NAME defaults to the archive's single top-level directory, else the archive's\n"
	"file name without its extensions.\n"
	"  --replace          replace an existing bundle of that name (never one in use)\n"
	"  --max-size=BYTES   refuse an archive that would store more than BYTES (K, M, G,\n"
	"                     T suffixes; default: the free space of the store's\n"
	"                     filesystem less 1% of its size, at least 64 MiB, at most 1 GiB)\n"
	"  --no-sync          do not fsync the new bundle before it is moved into place\n"
	"  --help, --version\n";

int vmb_cli_import(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "replace", no_argument, NULL, 'r' },
		{ "max-size", required_argument, NULL, 'm' },
		{ "no-sync", no_argument, NULL, 'S' },
		{ NULL, 0, NULL, 0 },
	};
	struct vmb_import_opts o = { .sync = 1 };
	struct vmb_progress bar;
	struct vmb_err err = { 0 };
	struct vmb_store s = { 0 };
	char label[96], name[NAME_MAX + 1], note[VMB_ERR_MAX] = "";
	struct stat st;
	const char *arch;
	int c, fd = -1, r, rc = VMB_EXIT_ERROR;

	if (vmb_cli_common(argc, argv, import_usage))
		return VMB_EXIT_OK;
	setlocale(LC_CTYPE, "");
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			o.replace = 1;
			break;
		case 'm':
			if (parse_size(optarg, &o.max_size) < 0) {
				vmb_cli_error("--max-size: '%s' is not a size", optarg);
				return VMB_EXIT_USAGE;
			}
			break;
		case 'S':
			o.sync = 0;
			break;
		default:
			fputs(import_usage, stderr);
			return VMB_EXIT_USAGE;
		}
	}
	if (argc - optind < 2 || argc - optind > 3) {
		fputs(import_usage, stderr);
		return VMB_EXIT_USAGE;
	}
	arch = argv[optind + 1];
	o.label = arch;
	o.name = argc - optind == 3 ? argv[optind + 2] : NULL;
	if (o.name && bad_name(o.name))
		return VMB_EXIT_USAGE;
	if (o.name && vmb_name_check_new(o.name, &err) < 0) {   /* no '@' */
		vmb_cli_error("cannot use '%s' as a bundle name: %s", o.name, err.msg);
		return VMB_EXIT_USAGE;
	}
	if (!strcmp(arch, "-")) {
		fd = STDIN_FILENO;
	} else {
		fd = open(arch, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			vmb_cli_error("cannot import '%s': %s", arch, strerror(errno));
			return VMB_EXIT_ERROR;
		}
		if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
			o.archive_size = (uint64_t)st.st_size;
	}
	if (vmb_store_open(&s, argv[optind], VMB_STORE_SHARED, &err) < 0) {
		vmb_cli_store_error(argv[optind], err.code, "%s", err.msg);
		goto out;
	}
	catch_signals();
	snprintf(label, sizeof(label), "import %s", arch);
	vmb_progress_init(&bar, stderr, label);
	o.cancel = &stop_flag;
	o.progress = vmb_progress_update;
	o.progress_arg = &bar;
	o.note = keep_note;
	o.note_arg = note;
	r = vmb_archive_import(&s, fd, &o, name, &err);
	vmb_progress_end(&bar);
	if (note[0])
		fprintf(stderr, "vmbundlefs: note: %s\n", note);
	if (r < 0) {
		if (r == -EINTR)
			vmb_cli_error("%s; the store is unchanged", err.msg);
		else
			vmb_cli_store_error(argv[optind], err.code, "%s", err.msg);
		goto out;
	}
	rc = VMB_EXIT_OK;
out:
	vmb_store_close(&s);
	if (fd > STDIN_FILENO)
		close(fd);
	return rc;
}

static const char export_usage[] =
	"Usage: vmbundlefs export [OPTIONS] STORE NAME OUT|-\n"
	"Write bundle NAME of STORE as an archive. The format follows OUT's extension:\n"
	".tar or .ova (pax with sparse entries: the archive is about the size of the\n"
	"bundle's data, not of its logical size; the default for other names),\n"
	".tar.zst/.tzst, .tar.gz/.tgz, .tar.xz/.txz, .zip (no sparse entries in zip:\n"
	"holes are stored as deflated zeros). '-' writes standard output and needs\n"
	"--format. OUT is written to a temporary beside it and renamed when complete.\n"
	"  --format=FMT   tar, tar.zst, tar.gz, tar.xz or zip\n"
	"  --no-sync      do not fsync OUT before it is renamed into place\n"
	"  --help, --version\n";

int vmb_cli_export(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "format", required_argument, NULL, 'f' },
		{ "no-sync", no_argument, NULL, 'S' },
		{ NULL, 0, NULL, 0 },
	};
	struct vmb_export_opts o = { .sync = 1 };
	struct vmb_progress bar;
	struct vmb_err err = { 0 };
	struct vmb_store s = { 0 };
	char label[96], note[VMB_ERR_MAX] = "";
	const char *out;
	int c, have_format = 0, r, rc = VMB_EXIT_ERROR;

	if (vmb_cli_common(argc, argv, export_usage))
		return VMB_EXIT_OK;
	setlocale(LC_CTYPE, "");
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			if (vmb_archive_format_parse(optarg, &o.format) < 0) {
				vmb_cli_error("--format: unknown format '%s' (tar, tar.zst, "
					      "tar.gz, tar.xz, zip)", optarg);
				return VMB_EXIT_USAGE;
			}
			have_format = 1;
			break;
		case 'S':
			o.sync = 0;
			break;
		default:
			fputs(export_usage, stderr);
			return VMB_EXIT_USAGE;
		}
	}
	if (argc - optind != 3) {
		fputs(export_usage, stderr);
		return VMB_EXIT_USAGE;
	}
	out = argv[optind + 2];
	if (bad_name(argv[optind + 1]))
		return VMB_EXIT_USAGE;
	if (!strcmp(out, "-")) {
		if (!have_format) {
			vmb_cli_error("export to standard output needs --format");
			return VMB_EXIT_USAGE;
		}
		if (isatty(STDOUT_FILENO)) {
			vmb_cli_error("refusing to write an archive to a terminal");
			return VMB_EXIT_USAGE;
		}
	} else if (!have_format) {
		vmb_archive_format_from_name(out, &o.format);
	}
	if (vmb_store_open(&s, argv[optind], VMB_STORE_READ, &err) < 0) {
		vmb_cli_store_error(argv[optind], err.code, "%s", err.msg);
		goto done;
	}
	/* a pulled bundle's files read their chunks through the default cache */
	if (vmb_cli_remote_ctx(&o.remote, &err) < 0) {
		vmb_cli_error("cannot export '%s': %s", argv[optind + 1], err.msg);
		goto done;
	}
	catch_signals();
	snprintf(label, sizeof(label), "export %s", argv[optind + 1]);
	vmb_progress_init(&bar, stderr, label);
	o.cancel = &stop_flag;
	o.progress = vmb_progress_update;
	o.progress_arg = &bar;
	o.note = keep_note;
	o.note_arg = note;
	if (!strcmp(out, "-"))
		r = vmb_archive_export(&s, argv[optind + 1], STDOUT_FILENO, &o, &err);
	else
		r = vmb_archive_export_file(&s, argv[optind + 1], out, &o, &err);
	vmb_progress_end(&bar);
	if (note[0])
		fprintf(stderr, "vmbundlefs: note: %s\n", note);
	if (r < 0) {
		vmb_cli_store_error(argv[optind], err.code, "%s", err.msg);
		goto done;
	}
	rc = VMB_EXIT_OK;
done:
	vmb_remote_close(o.remote);
	vmb_store_close(&s);
	return rc;
}

static const char deps_usage[] =
	"Usage: vmbundlefs deps STORE NAME\n"
	"List the layers bundle NAME (or snapshot NAME = BUNDLE@SNAP) stands on, and\n"
	"which other bundles and snapshots share them. One line per layer:\n"
	"  layer ID DATA_BYTES USERS   (USERS: the others using it, comma-separated,\n"
	"                               or '-')\n"
	"followed, for a remote layer (an image of a published store), by\n"
	"  remote ID URL               (where its chunks are fetched from)\n"
	"  mirror ID URL               (one line for each other URL it was pulled from,\n"
	"                               tried when that one fails)\n"
	"then one line per file that has a base:\n"
	"  file SIZE DELTA_BYTES ID[,ID...] PATH   (its chain, top first)\n"
	"Prints nothing for a self-contained bundle.\n";

int vmb_cli_deps(int argc, char **argv)
{
	struct vmb_err err = { 0 };
	struct vmb_store s = { 0 };
	struct vmb_opctx c = { 0 };
	struct vmb_deps d = { 0 };
	size_t i, j;
	int rc = VMB_EXIT_ERROR;

	if (vmb_cli_common(argc, argv, deps_usage))
		return VMB_EXIT_OK;
	if (argc != 3 || argv[1][0] == '-' || argv[2][0] == '-') {
		fputs(deps_usage, stderr);
		return VMB_EXIT_USAGE;
	}
	if (bad_name(argv[2]))
		return VMB_EXIT_USAGE;
	if (vmb_store_open(&s, argv[1], VMB_STORE_READ, &err) < 0 ||
	    vmb_layers_open(&c.layers, s.metafd, NULL, &err) < 0) {
		vmb_cli_store_error(argv[1], err.code, "%s", err.msg);
		goto out;
	}
	c.store = &s;
	if (vmb_op_deps(&c, argv[2], &d, &err) < 0) {
		vmb_cli_store_error(argv[1], err.code, "%s", err.msg);
		goto out;
	}
	for (i = 0; i < d.nlayers; i++) {
		printf("layer %s %llu ", d.layers[i].id,
		       (unsigned long long)d.layers[i].data_bytes);
		for (j = 0; j < d.layers[i].nusers; j++)
			printf("%s%s", j ? "," : "", d.layers[i].users[j]);
		printf("%s\n", d.layers[i].nusers ? "" : "-");
		{
			struct vmb_layer_remote *rl = malloc(sizeof(*rl));

			if (rl && vmb_layers_remote_info(c.layers, d.layers[i].id, rl, NULL) == 0) {
				printf("remote %s %s\n", d.layers[i].id, rl->url);
				for (j = 0; j < rl->nmirrors; j++)
					printf("mirror %s %s\n", d.layers[i].id, rl->mirror[j]);
			}
			free(rl);
		}
	}
	for (i = 0; i < d.nfiles; i++) {
		printf("file %llu %llu ", (unsigned long long)d.files[i].size,
		       (unsigned long long)d.files[i].delta_bytes);
		for (j = 0; j < d.files[i].depth; j++)
			printf("%s%s", j ? "," : "", d.files[i].chain[j]);
		printf(" %s\n", d.files[i].path);
	}
	rc = fflush(stdout) == 0 ? VMB_EXIT_OK : VMB_EXIT_ERROR;
out:
	vmb_deps_free(&d);
	vmb_layers_close(c.layers);
	vmb_store_close(&s);
	return rc;
}
