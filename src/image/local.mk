# image: one file, a delta over its base, and its direct-I/O path.
src_libvmbundle_a_SOURCES += \
	src/image/image.c src/image/image.h src/image/image_int.h \
	src/image/image_write.c src/image/image_base.c src/image/image_load.c src/image/image_copy.c src/image/image_freeze.c \
	src/image/image_share.c \
	src/image/resrec.c src/image/resrec.h src/image/xns.c src/image/xns.h \
	src/image/dio.c src/image/dio.h
