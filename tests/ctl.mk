# The daemon side of structural commands (owned by helper ctl): the control
# channel, the write barrier, node rebinding, the .snapshots view.
check_PROGRAMS += tests/helpers/mksnap
tests_helpers_mksnap_SOURCES = tests/helpers/mksnap.c
tests_helpers_mksnap_LDADD = $(VMB_CORE_LIBS)

CTL_TESTS = \
	tests/ctl.sh \
	tests/ctl-barrier.sh \
	tests/ctl-rebind.sh \
	tests/ctl-view.sh \
	tests/ctl-snapshot.sh \
	tests/ctl-freeze-locks.sh \
	tests/ctl-freeze-lookup.sh

TESTS += $(CTL_TESTS)
EXTRA_DIST += $(CTL_TESTS)
