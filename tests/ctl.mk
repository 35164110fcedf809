# The daemon side of structural commands (owned by helper ctl): the control
# channel, the write barrier, node rebinding, the .snapshots view.
CTL_TESTS = \
	tests/ctl.sh \
	tests/ctl-barrier.sh \
	tests/ctl-rebind.sh

TESTS += $(CTL_TESTS)
EXTRA_DIST += $(CTL_TESTS)
