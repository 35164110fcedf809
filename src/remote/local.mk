# remote: published stores over the network (issue 11): fetchers (libcurl lives only
# in fetch*.c), the published format, the shared chunk cache and remote images.
src_libvmbundle_a_SOURCES += \
	src/remote/fetch.h src/remote/fetch_int.h src/remote/fetch_s3.h \
	src/remote/fetch.c src/remote/fetch_retry.c src/remote/fetch_file.c \
	src/remote/fetch_curl.c src/remote/fetch_http.c src/remote/fetch_s3.c \
	src/remote/fetch_curlerr.c
