# remote: published stores (issue 11): the published format (pubfmt), and later the
# fetchers, the shared chunk cache and remote images (REMOTE.md). Sits above map/,
# below layer/. libcurl and OpenSSL headers may appear here.
src_libvmbundle_a_SOURCES += \
	src/remote/pubfmt.c src/remote/pubfmt.h \
	src/remote/pubtext.c src/remote/pubtext.h \
	src/remote/pubbundle.c src/remote/pubimage.c
