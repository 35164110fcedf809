# libvmbundle: the FUSE-free core, and the vmbundlefs command.
noinst_LIBRARIES += src/libvmbundle.a
src_libvmbundle_a_CPPFLAGS = $(AM_CPPFLAGS) $(CRYPTO_CFLAGS) $(ARCHIVE_CFLAGS)
src_libvmbundle_a_SOURCES = \
	src/err.c src/err.h \
	src/crc32c.c src/crc32c.h \
	src/digest.c src/digest.h \
	src/blockmap.c src/blockmap.h \
	src/sidecar.c src/sidecar.h \
	src/journal.c src/journal.h \
	src/image.c src/image.h \
	src/dio.c src/dio.h \
	src/fdio.c src/fdio.h \
	src/store.c src/store_walk.c src/store.h \
	src/vfs.c src/vfs_ns.c src/vfs_file.c src/vfs_dir.c src/vfs_xattr.c \
	src/vfs.h src/vfs_int.h \
	src/fsck.c src/fsck.h \
	src/auxfile.c src/auxfile.h \
	src/holders.c src/holders.h \
	src/lock.c src/lock.h src/vfs_lock.c

# What every program linking libvmbundle needs.
VMB_CORE_LIBS = src/libvmbundle.a $(ARCHIVE_LIBS) $(CRYPTO_LIBS)

bin_PROGRAMS += vmbundlefs
vmbundlefs_SOURCES = src/cli.h src/cli_main.c src/cli_cmds.c src/cli_mount.c
vmbundlefs_LDADD = fs/libvmbfs.a $(VMB_CORE_LIBS) $(FUSE_LIBS)
