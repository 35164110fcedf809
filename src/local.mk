# libvmbundle: the FUSE-free core. Owned by src/ authors.
noinst_LIBRARIES += src/libvmbundle.a
src_libvmbundle_a_CPPFLAGS = $(AM_CPPFLAGS) $(CRYPTO_CFLAGS)
src_libvmbundle_a_SOURCES = \
	src/err.c src/err.h \
	src/crc32c.c src/crc32c.h \
	src/digest.c src/digest.h \
	src/blockmap.c src/blockmap.h \
	src/sidecar.c src/sidecar.h

# What every program linking libvmbundle needs.
VMB_CORE_LIBS = src/libvmbundle.a $(CRYPTO_LIBS)
