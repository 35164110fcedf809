# vmbundlefs publish (issue 11, helper pubfmt): the published store format through
# the command, on a mounted store under a writer. tests/helpers/pubcheck reads a
# published directory as a reader must (every digest, the signature).
check_PROGRAMS += tests/helpers/pubcheck
tests_helpers_pubcheck_SOURCES = tests/helpers/pubcheck.c
tests_helpers_pubcheck_LDADD = $(VMB_CORE_LIBS)

PUBLISH_TESTS = tests/publish.sh tests/publish-s3.sh tests/publish-leftover.sh \
	tests/publish-repair.sh
TESTS += $(PUBLISH_TESTS)
EXTRA_DIST += $(PUBLISH_TESTS)
