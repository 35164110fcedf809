# Integration tests that really mount (owned by the integration-test author).
# Shell tests run with SH_LOG_COMPILER = $(SHELL) and re-exec themselves
# under bash; they source tests/lib.sh.  C helpers are plain C11.

check_PROGRAMS += tests/helpers/vmbio tests/helpers/modeltest tests/helpers/fdhog
tests_helpers_vmbio_SOURCES = tests/helpers/vmbio.c
tests_helpers_modeltest_SOURCES = tests/helpers/modeltest.c
tests_helpers_fdhog_SOURCES = tests/helpers/fdhog.c

INTEGRATION_TESTS = \
	tests/cli.sh \
	tests/layers-cli.sh \
	tests/layers-blocks.sh \
	tests/layers-read.sh \
	tests/layers-mount.sh \
	tests/layers-backup.sh \
	tests/layers-crash.sh \
	tests/layers-cp.sh \
	tests/layers-gc-race.sh \
	tests/layers-snap-qemu.sh \
	tests/layers-hardlink.sh \
	tests/layers-nonroot.sh \
	tests/fsck-leftovers.sh \
	tests/mount-toplevel.sh \
	tests/mount-posix.sh \
	tests/mount-persist.sh \
	tests/mount-sparse.sh \
	tests/mount-sparse-rsync.sh \
	tests/mount-fallocate.sh \
	tests/mount-cfr.sh \
	tests/mount-crash.sh \
	tests/mount-sidecar.sh \
	tests/mount-enospc.sh \
	tests/mount-direct.sh \
	tests/mount-concurrent.sh \
	tests/mount-parallel-lookup.sh \
	tests/model.sh \
	tests/mount-parked.sh \
	tests/mount-zero-edges.sh \
	tests/mount-coherence.sh \
	tests/cli-usage.sh \
	tests/mount-xattr-list.sh \
	tests/mount-fds.sh \
	tests/mount-inherit.sh \
	tests/store-deep.sh \
	tests/store-modes.sh \
	tests/mount-prealloc.sh \
	tests/mount-log.sh \
	tests/cli-log.sh

TESTS += $(INTEGRATION_TESTS)
EXTRA_DIST += tests/lib.sh tests/tsan.supp $(INTEGRATION_TESTS)
