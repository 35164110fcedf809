# Unit tests of libvmbundle, without FUSE. Owned by the src/ core authors.
# Each test is a plain C program (exit 0 pass, 1 fail, 77 skip) using tests/unit/harness.h.
VMB_UNIT_TESTS = \
	tests/unit/test_blockmap \
	tests/unit/test_sidecar \
	tests/unit/test_journal \
	tests/unit/test_crc_digest \
	tests/unit/test_fdio \
	tests/unit/test_bufpool \
	tests/unit/test_lock \
	tests/unit/test_layer \
	tests/unit/test_pubfmt \
	tests/unit/test_publish \
	tests/unit/test_text \
	tests/unit/test_pathtree \
	tests/unit/test_mountinfo \
	tests/unit/test_cancel

check_PROGRAMS += $(VMB_UNIT_TESTS)
TESTS += $(VMB_UNIT_TESTS)

tests_unit_test_blockmap_SOURCES = tests/unit/test_blockmap.c tests/unit/harness.h
tests_unit_test_blockmap_LDADD = $(VMB_CORE_LIBS)
# Allocation failures are injected by wrapping malloc and realloc.
tests_unit_test_blockmap_LDFLAGS = $(AM_LDFLAGS) -Wl,--wrap=malloc -Wl,--wrap=realloc

tests_unit_test_mountinfo_SOURCES = tests/unit/test_mountinfo.c tests/unit/harness.h
tests_unit_test_mountinfo_LDADD = $(VMB_CORE_LIBS)

tests_unit_test_sidecar_SOURCES = tests/unit/test_sidecar.c tests/unit/harness.h
tests_unit_test_sidecar_LDADD = $(VMB_CORE_LIBS)

tests_unit_test_journal_SOURCES = tests/unit/test_journal.c tests/unit/harness.h
tests_unit_test_journal_LDADD = $(VMB_CORE_LIBS)

tests_unit_test_crc_digest_SOURCES = tests/unit/test_crc_digest.c tests/unit/harness.h
tests_unit_test_crc_digest_LDADD = $(VMB_CORE_LIBS)

tests_unit_test_fdio_SOURCES = tests/unit/test_fdio.c tests/unit/harness.h
tests_unit_test_fdio_LDADD = $(VMB_CORE_LIBS)

tests_unit_test_bufpool_SOURCES = tests/unit/test_bufpool.c tests/unit/harness.h
tests_unit_test_bufpool_LDADD = $(VMB_CORE_LIBS)

tests_unit_test_lock_SOURCES = tests/unit/test_lock.c tests/unit/harness.h
tests_unit_test_lock_LDADD = $(VMB_CORE_LIBS)

tests_unit_test_layer_SOURCES = tests/unit/test_layer.c tests/unit/harness.h
tests_unit_test_layer_LDADD = $(VMB_CORE_LIBS)

tests_unit_test_pubfmt_SOURCES = tests/unit/test_pubfmt.c tests/unit/harness.h
tests_unit_test_pubfmt_LDADD = $(VMB_CORE_LIBS)

tests_unit_test_publish_SOURCES = tests/unit/test_publish.c tests/unit/harness.h
tests_unit_test_publish_LDADD = $(VMB_CORE_LIBS)

tests_unit_test_text_SOURCES = tests/unit/test_text.c tests/unit/harness.h
tests_unit_test_text_LDADD = $(VMB_CORE_LIBS)

tests_unit_test_pathtree_SOURCES = tests/unit/test_pathtree.c tests/unit/harness.h
tests_unit_test_pathtree_LDADD = $(VMB_CORE_LIBS)

tests_unit_test_cancel_SOURCES = tests/unit/test_cancel.c tests/unit/harness.h
tests_unit_test_cancel_LDADD = $(VMB_CORE_LIBS)
