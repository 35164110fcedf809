# cli: the vmbundlefs command, a client of libvmbundle and of the FUSE adapter (fs/).
bin_PROGRAMS += vmbundlefs
vmbundlefs_SOURCES = \
	src/cli/cli.h src/cli/cli_main.c src/cli/cli_cmds.c src/cli/cli_mount.c \
	src/cli/cli_archive.c src/cli/cli_status.c src/cli/cli_ctl.c src/cli/cli_log.c \
	src/cli/cli_ops.c src/cli/cli_remote.c src/cli/cli_prefetch.c src/cli/cli_publish.c
vmbundlefs_LDADD = fs/libvmbfs.a $(VMB_CORE_LIBS) $(FUSE_LIBS)

# Progress lines of the command; in the library so that tests/unit/test_archive
# checks their text.
src_libvmbundle_a_SOURCES += src/cli/progress.c src/cli/progress.h
