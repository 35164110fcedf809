# Unit tests of the FUSE adapter (fs/) that need no mount: libfuse sessions fed
# requests by the test itself.
VMB_FS_TESTS = tests/unit/test_fs_drain

check_PROGRAMS += $(VMB_FS_TESTS)
TESTS += $(VMB_FS_TESTS)

tests_unit_test_fs_drain_SOURCES = tests/unit/test_fs_drain.c tests/unit/harness.h
tests_unit_test_fs_drain_CPPFLAGS = $(AM_CPPFLAGS) $(FUSE_CFLAGS)
tests_unit_test_fs_drain_LDADD = fs/libvmbfs.a $(VMB_CORE_LIBS) $(FUSE_LIBS)
