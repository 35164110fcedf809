/* cli.h - the vmbundlefs command's subcommands. Each returns the process exit
 * status: 0 ok, 1 error (message printed), 2 usage error; fsck has its own codes. */
#ifndef VMB_CLI_H
#define VMB_CLI_H

#define VMB_EXIT_OK 0
#define VMB_EXIT_ERROR 1
#define VMB_EXIT_USAGE 2

int vmb_cli_init(int argc, char **argv);
int vmb_cli_mount(int argc, char **argv);
int vmb_cli_ls(int argc, char **argv);
int vmb_cli_fsck(int argc, char **argv);
int vmb_cli_import(int argc, char **argv);
int vmb_cli_export(int argc, char **argv);
int vmb_cli_deps(int argc, char **argv);
int vmb_cli_status(int argc, char **argv);

/* "vmbundlefs: <message>" on stderr. */
void vmb_cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print the version line. */
void vmb_cli_version(void);
/* 1 when argv holds --help or --version for this subcommand (and prints it). */
int vmb_cli_common(int argc, char **argv, const char *usage);

#endif
