# Remote images (issue 11), owned by helper rtest: the servers the tests start on
# loopback (our own fault-injecting HTTP server, a shaping TCP proxy), the harness
# tests/remote-lib.sh (nginx over HTTP/1.1 and HTTPS+HTTP/2 with a test CA, faultsrv,
# the S3-protocol server) and the server-based integration tests.
check_PROGRAMS += tests/helpers/faultsrv tests/helpers/shapeproxy tests/helpers/rcmp
tests_helpers_faultsrv_SOURCES = tests/helpers/faultsrv.c tests/helpers/tcplisten.c tests/helpers/tcplisten.h
tests_helpers_shapeproxy_SOURCES = tests/helpers/shapeproxy.c tests/helpers/tcplisten.c tests/helpers/tcplisten.h
tests_helpers_rcmp_SOURCES = tests/helpers/rcmp.c

REMOTE_TESTS = \
	tests/remote-servers.sh \
	tests/remote-nginx.sh \
	tests/remote-faults.sh \
	tests/remote-lazy-parallel.sh \
	tests/remote-share.sh \
	tests/remote-kill.sh \
	tests/remote-signal.sh \
	tests/remote-offline.sh \
	tests/remote-evict-meta.sh \
	tests/remote-hard-stop.sh \
	tests/remote-hard-intr.sh \
	tests/remote-s3.sh \
	tests/remote-flatten-cache.sh \
	tests/remote-prefetch-kept.sh

TESTS += $(REMOTE_TESTS)
EXTRA_DIST += tests/remote-lib.sh $(REMOTE_TESTS)
