# Unit tests of the FUSE-free core (images, store, vfs, fsck), run without a mount.
# Each test is a plain C program (exit 0 pass, 1 fail, 77 skip) using tests/unit/harness.h.
VMB_CORE_TESTS = \
	tests/unit/test_image \
	tests/unit/test_store \
	tests/unit/test_walk \
	tests/unit/test_vfs \
	tests/unit/test_image_model \
	tests/unit/test_image_reval \
	tests/unit/test_manifest \
	tests/unit/test_ops \
	tests/unit/test_image_base \
	tests/unit/test_image_share

check_PROGRAMS += $(VMB_CORE_TESTS)
TESTS += $(VMB_CORE_TESTS)

tests_unit_test_image_SOURCES = tests/unit/test_image.c tests/unit/harness.h
tests_unit_test_image_LDADD = $(VMB_CORE_LIBS)

tests_unit_test_store_SOURCES = tests/unit/test_store.c tests/unit/harness.h
tests_unit_test_store_LDADD = $(VMB_CORE_LIBS)

tests_unit_test_walk_SOURCES = tests/unit/test_walk.c tests/unit/harness.h
tests_unit_test_walk_LDADD = $(VMB_CORE_LIBS)

tests_unit_test_vfs_SOURCES = tests/unit/test_vfs.c tests/unit/harness.h
tests_unit_test_vfs_LDADD = $(VMB_CORE_LIBS)

# A random sequence of operations against a byte-array model (VMB_SEED, VMB_OPS).
tests_unit_test_image_model_SOURCES = tests/unit/test_image_model.c tests/unit/harness.h \
	tests/unit/model_chain.c tests/unit/testbase.h
tests_unit_test_image_model_LDADD = $(VMB_CORE_LIBS)

tests_unit_test_image_reval_SOURCES = tests/unit/test_image_reval.c tests/unit/harness.h
tests_unit_test_image_reval_LDADD = $(VMB_CORE_LIBS)

# Images over a base (the in-memory double of a layer chain, testbase.h).
tests_unit_test_image_base_SOURCES = tests/unit/test_image_base.c tests/unit/harness.h \
	tests/unit/testbase.h
tests_unit_test_image_base_LDADD = $(VMB_CORE_LIBS)

# Copies that share a base (cp inside the mount), with the store's real layers.
tests_unit_test_image_share_SOURCES = tests/unit/test_image_share.c tests/unit/harness.h
tests_unit_test_image_share_LDADD = $(VMB_CORE_LIBS)

tests_unit_test_manifest_SOURCES = tests/unit/test_manifest.c tests/unit/harness.h
tests_unit_test_manifest_LDADD = $(VMB_CORE_LIBS)

tests_unit_test_ops_SOURCES = tests/unit/test_ops.c tests/unit/harness.h
tests_unit_test_ops_LDADD = $(VMB_CORE_LIBS)
