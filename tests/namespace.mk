# Namespace and multi-user tests: creating, modes, special files, signals.
NS_TESTS = \
	tests/mount-create-race.sh

TESTS += $(NS_TESTS)
EXTRA_DIST += $(NS_TESTS)
