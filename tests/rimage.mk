# Remote images, pull, prefetch and mounts of URLs (issue 11, owner rimage), with
# file:// URLs: no server needed. tests/helpers/mkpub publishes plain directories.
check_PROGRAMS += tests/helpers/mkpub
tests_helpers_mkpub_SOURCES = tests/helpers/mkpub.c
tests_helpers_mkpub_LDADD = $(VMB_CORE_LIBS)

VMB_RIMAGE_TESTS = tests/remote-pull.sh tests/remote-mount.sh
TESTS += $(VMB_RIMAGE_TESTS)
EXTRA_DIST += $(VMB_RIMAGE_TESTS)
