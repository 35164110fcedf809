# remote: published stores (issue 11): the published format (pubfmt), the fetchers
# (libcurl lives only in fetch*.c), the shared chunk cache (cache*.c) and remote images
# (REMOTE.md). Sits above map/, below layer/. libcurl and OpenSSL headers may appear here.
src_libvmbundle_a_SOURCES += \
	src/remote/pubfmt.c src/remote/pubfmt.h \
	src/remote/pubtext.c src/remote/pubtext.h \
	src/remote/pubbundle.c src/remote/pubimage.c
# remote images as bases, and a process's remote context (rimage)
src_libvmbundle_a_SOURCES += \
	src/remote/remote.c src/remote/remote.h \
	src/remote/rimage.c src/remote/rimage.h
src_libvmbundle_a_SOURCES += \
	src/remote/fetch.h src/remote/fetch_int.h src/remote/fetch_s3.h \
	src/remote/fetch.c src/remote/fetch_retry.c src/remote/fetch_file.c \
	src/remote/fetch_curl.c src/remote/fetch_http.c src/remote/fetch_s3.c \
	src/remote/fetch_curlerr.c
# the cache (cache.h)
src_libvmbundle_a_SOURCES += \
	src/remote/cache.h src/remote/cache_int.h \
	src/remote/cache_open.c \
	src/remote/cache_lock.c \
	src/remote/cache_get.c \
	src/remote/cache_flush.c \
	src/remote/cache_evict.c \
	src/remote/cache_pin.c \
	src/remote/cache_fsck.c \
	src/remote/cache_stats.c
