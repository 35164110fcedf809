# The FUSE adapter: thin low-level ops over src/vfs. Only this library uses libfuse.
noinst_LIBRARIES += fs/libvmbfs.a
fs_libvmbfs_a_CPPFLAGS = $(AM_CPPFLAGS) $(FUSE_CFLAGS)
fs_libvmbfs_a_SOURCES = fs/vmbfs.h fs/fuse_ops.c fs/fuse_mount.c fs/fuse_pieces.c \
	fs/fuse_drain.c fs/fuse_io.c
