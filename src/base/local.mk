# base: errors, whole-buffer I/O, checksums, digests, signatures and the text
# primitives of the line formats (the ground; includes nothing).
src_libvmbundle_a_SOURCES += \
	src/base/err.c src/base/err.h \
	src/base/crc32c.c src/base/crc32c.h \
	src/base/bufpool.c src/base/bufpool.h src/base/clock.h \
	src/base/digest.c src/base/digest.h \
	src/base/sign.c src/base/sign.h \
	src/base/fdio.c src/base/fdio.h src/base/le.h \
	src/base/text.c src/base/text.h \
	src/base/pathtree.c src/base/pathtree.h \
	src/base/mountinfo.c src/base/mountinfo.h \
	src/base/cancel.c src/base/cancel.h
