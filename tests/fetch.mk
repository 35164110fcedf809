# Tests of the fetchers (src/remote/fetch*.c, issue 11). Unit tests need no network;
# the fetch-*.sh tests start their own servers on loopback (nginx, an npm S3 server)
# and skip (77) when those are absent.
check_PROGRAMS += tests/unit/test_fetch
TESTS += tests/unit/test_fetch
tests_unit_test_fetch_SOURCES = tests/unit/test_fetch.c tests/unit/harness.h
tests_unit_test_fetch_LDADD = $(VMB_CORE_LIBS)
# it also tests vmb_curl_err, from remote/fetch_int.h (curl/curl.h)
tests_unit_test_fetch_CPPFLAGS = $(AM_CPPFLAGS) $(CURL_CFLAGS)

check_PROGRAMS += tests/unit/test_s3cred
TESTS += tests/unit/test_s3cred
tests_unit_test_s3cred_SOURCES = tests/unit/test_s3cred.c tests/unit/harness.h
tests_unit_test_s3cred_LDADD = $(VMB_CORE_LIBS)

check_PROGRAMS += tests/helpers/fetchtool
tests_helpers_fetchtool_SOURCES = tests/helpers/fetchtool.c
tests_helpers_fetchtool_LDADD = $(VMB_CORE_LIBS)

TESTS += tests/fetch-http.sh
EXTRA_DIST += tests/fetch-http.sh
TESTS += tests/fetch-s3.sh
EXTRA_DIST += tests/fetch-s3.sh tests/helpers/s3sigv4.js
TESTS += tests/fetch-faults.sh
EXTRA_DIST += tests/fetch-faults.sh tests/helpers/faultsrv.js
