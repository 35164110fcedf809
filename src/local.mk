# libvmbundle: the FUSE-free core, one library built from the folders of src/, each
# listing its files in its own fragment (src/<folder>/local.mk, included from
# Makefile.am), bottom to top: base < map < remote < layer < image < store < lock < vfs, archive
# beside vfs, cli (the vmbundlefs command) on top. tests/layering.sh keeps the order.
noinst_LIBRARIES += src/libvmbundle.a
src_libvmbundle_a_CPPFLAGS = $(AM_CPPFLAGS) $(CRYPTO_CFLAGS) $(ARCHIVE_CFLAGS) $(CURL_CFLAGS)
src_libvmbundle_a_SOURCES =

# What every program linking libvmbundle needs.
VMB_CORE_LIBS = src/libvmbundle.a $(ARCHIVE_LIBS) $(CURL_LIBS) $(CRYPTO_LIBS)
