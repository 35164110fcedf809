# Tests of import/export through archives (owned by the archive authors).
# The unit test needs no mount; the shell tests use lib.sh and archive-lib.sh.
check_PROGRAMS += tests/unit/test_archive
tests_unit_test_archive_SOURCES = tests/unit/test_archive.c tests/unit/harness.h
tests_unit_test_archive_CPPFLAGS = $(AM_CPPFLAGS) $(ARCHIVE_CFLAGS)
tests_unit_test_archive_LDADD = $(VMB_CORE_LIBS)

ARCHIVE_TESTS = \
	tests/unit/test_archive \
	tests/archive-roundtrip.sh \
	tests/archive-import.sh \
	tests/archive-hostile.sh \
	tests/archive-mount.sh \
	tests/archive-symlinks.sh \
	tests/archive-xattrs.sh

TESTS += $(ARCHIVE_TESTS)
EXTRA_DIST += tests/archive-lib.sh tests/archive-roundtrip.sh tests/archive-import.sh \
	tests/archive-hostile.sh tests/archive-mount.sh tests/archive-symlinks.sh tests/archive-xattrs.sh \
	bench/archive.sh
