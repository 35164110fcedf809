/* cli_archive_stub.c - placeholder until import/export land. */
#include "config.h"
#include "cli.h"

static int not_yet(const char *what)
{
	vmb_cli_error("'%s' is not available in this build", what);
	return VMB_EXIT_ERROR;
}

int vmb_cli_import(int argc, char **argv) { (void)argc; (void)argv; return not_yet("import"); }
int vmb_cli_export(int argc, char **argv) { (void)argc; (void)argv; return not_yet("export"); }
int vmb_cli_deps(int argc, char **argv) { (void)argc; (void)argv; return not_yet("deps"); }
