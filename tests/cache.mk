# Unit tests of the shared chunk cache (src/remote/cache*.c): no network, no mount.
VMB_CACHE_TESTS = tests/unit/test_cache

check_PROGRAMS += $(VMB_CACHE_TESTS)
TESTS += $(VMB_CACHE_TESTS)

tests_unit_test_cache_SOURCES = tests/unit/test_cache.c tests/unit/harness.h
tests_unit_test_cache_LDADD = $(VMB_CORE_LIBS)

TESTS += tests/cache-fsck.sh
EXTRA_DIST += tests/cache-fsck.sh

TESTS += tests/cache-perms.sh
EXTRA_DIST += tests/cache-perms.sh

TESTS += tests/dir-durable.sh
EXTRA_DIST += tests/dir-durable.sh
