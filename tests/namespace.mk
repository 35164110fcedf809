# Namespace and multi-user tests: creating, modes, special files, signals.
NS_TESTS = \
	tests/mount-create-race.sh \
	tests/mount-create-fail.sh \
	tests/mount-modes.sh \
	tests/mount-special.sh \
	tests/mount-signal.sh \
	tests/mount-signal-open.sh \
	tests/mount-unlinked-map.sh

TESTS += $(NS_TESTS)
EXTRA_DIST += $(NS_TESTS)
