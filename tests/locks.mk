# Lock tests (owned by the lock-test author): advisory locks through the mount,
# mirroring onto the backing files, aux-storage enforcement, the create-then-lock race.
# The helper tests/helpers/lockhelper takes, tests and holds POSIX, OFD and flock locks.
# bench/locks.sh (on demand) measures lock latency and SIGKILL-to-wakeup times.

check_PROGRAMS += tests/helpers/lockhelper tests/helpers/lockmany
tests_helpers_lockhelper_SOURCES = tests/helpers/lockhelper.c
tests_helpers_lockhelper_LDADD = -lpthread
tests_helpers_lockmany_SOURCES = tests/helpers/lockmany.c

LOCK_TESTS = \
	tests/lock-posix.sh \
	tests/lock-ofd-flock.sh \
	tests/lock-waiters.sh \
	tests/lock-backing.sh \
	tests/lock-inuse.sh \
	tests/lock-qemu.sh \
	tests/lock-qemu-system.sh \
	tests/lock-race.sh \
	tests/lock-late-release.sh \
	tests/lock-inuse-any.sh \
	tests/lock-inuse-cost.sh \
	tests/lock-cap.sh

TESTS += $(LOCK_TESTS)
EXTRA_DIST += tests/lock-lib.sh $(LOCK_TESTS) bench/locks.sh
