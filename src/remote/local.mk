# remote: remote images (issue 11): the published format, the fetchers (libcurl only
# here), the host's shared verified chunk cache, remote images as bases.
src_libvmbundle_a_SOURCES += \
	src/remote/cache.h src/remote/cache_int.h \
	src/remote/cache_open.c \
	src/remote/cache_lock.c \
	src/remote/cache_get.c \
	src/remote/cache_evict.c \
	src/remote/cache_pin.c \
	src/remote/cache_fsck.c \
	src/remote/cache_stats.c
