# vfs: the filesystem the FUSE adapter (fs/) serves: nodes, namespace, files, xattrs,
# locks and the in-use policy.
src_libvmbundle_a_SOURCES += \
	src/vfs/vfs.c src/vfs/vfs_ns.c src/vfs/vfs_file.c src/vfs/vfs_dir.c \
	src/vfs/vfs_xattr.c src/vfs/vfs_lock.c src/vfs/vfs_fds.c \
	src/vfs/vfs_ctl.c src/vfs/vfs_ctl_ops.c src/vfs/ctl.h src/vfs/vfs_barrier.c \
	src/vfs/vfs_snapview.c src/vfs/vfs_ctl_hooks.c src/vfs/vfs_share.c \
	src/vfs/vfs_cancel.c src/vfs/vfs_lazy.c \
	src/vfs/vfs.h src/vfs/vfs_int.h
