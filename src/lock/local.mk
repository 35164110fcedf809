# lock: advisory locks mirrored onto backing files, the holder registry, aux files.
src_libvmbundle_a_SOURCES += \
	src/lock/auxfile.c src/lock/auxfile.h \
	src/lock/holders.c src/lock/holders.h \
	src/lock/lock.c src/lock/lock.h
