# Remote images, pull, prefetch and mounts of URLs (issue 11, owner rimage), with
# file:// URLs: no server needed. tests/helpers/mkpub publishes plain directories.
check_PROGRAMS += tests/helpers/mkpub
tests_helpers_mkpub_SOURCES = tests/helpers/mkpub.c
tests_helpers_mkpub_LDADD = $(VMB_CORE_LIBS)

check_PROGRAMS += tests/unit/test_rimage
tests_unit_test_rimage_SOURCES = tests/unit/test_rimage.c tests/unit/harness.h
tests_unit_test_rimage_LDADD = $(VMB_CORE_LIBS)

VMB_RIMAGE_TESTS = tests/unit/test_rimage tests/remote-pull.sh tests/remote-mount.sh \
	tests/remote-preload.sh tests/remote-read.sh tests/model-layers.sh tests/remote-mirror.sh \
	tests/remote-mount-scratch.sh tests/remote-names.sh tests/remote-pull-deep.sh \
	tests/remote-lazy-ino.sh
TESTS += $(VMB_RIMAGE_TESTS)
EXTRA_DIST += tests/remote-pull.sh tests/remote-mount.sh tests/remote-preload.sh \
	tests/remote-read.sh tests/model-layers.sh tests/remote-mirror.sh \
	tests/remote-mount-scratch.sh tests/remote-names.sh tests/remote-pull-deep.sh \
	tests/remote-lazy-ino.sh
