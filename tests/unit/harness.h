/* harness.h - a tiny assertion harness for the unit tests (no FUSE, no framework).
 *
 *   CHECK(cond)              count a check; on failure print file:line and cond
 *   CHECK_EQ(a, b)           as CHECK(a == b), printing both values as uint64
 *   CHECK_RC(expr, want)     as CHECK_EQ for int return codes (0, -EINVAL, ...)
 *   CHECK_STR(s, sub)        s contains the substring sub
 *   REQUIRE(cond)            CHECK, and return from the (void) test on failure
 *   RUN(fn)                  run one test function, print its name with -v
 *   SKIP(why)                exit 77: the test cannot run here
 *   harness_exit()           1 if any check failed, else 0 (return it from main)
 *
 * Each test program includes this once; the counters are per program.
 */
#ifndef VMB_TEST_HARNESS_H
#define VMB_TEST_HARNESS_H

#include <ftw.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HARNESS_SKIP 77

static unsigned long harness_checks;
static unsigned long harness_failures;
static const char *harness_test = "";

static inline int harness_fail(const char *file, int line, const char *expr)
{
	harness_failures++;
	fprintf(stderr, "%s:%d: %s: CHECK failed: %s\n", file, line, harness_test, expr);
	return 0;
}

/* Counts one check; returns ok so that REQUIRE can act on it. */
static inline int harness_check(int ok, const char *file, int line, const char *expr)
{
	harness_checks++;
	return ok ? 1 : harness_fail(file, line, expr);
}

#define CHECK(cond) harness_check(!!(cond), __FILE__, __LINE__, #cond)

#define CHECK_EQ(a, b) do { \
	uint64_t check_a_ = (uint64_t)(a), check_b_ = (uint64_t)(b); \
	harness_checks++; \
	if (check_a_ != check_b_) { \
		harness_fail(__FILE__, __LINE__, #a " == " #b); \
		fprintf(stderr, "    left:  %" PRIu64 " (0x%" PRIx64 ")\n" \
			"    right: %" PRIu64 " (0x%" PRIx64 ")\n", \
			check_a_, check_a_, check_b_, check_b_); \
	} \
} while (0)

#define CHECK_RC(expr, want) do { \
	int check_got_ = (expr), check_want_ = (want); \
	harness_checks++; \
	if (check_got_ != check_want_) { \
		harness_fail(__FILE__, __LINE__, #expr " == " #want); \
		fprintf(stderr, "    got %d (%s), want %d (%s)\n", \
			check_got_, strerror(check_got_ < 0 ? -check_got_ : check_got_), \
			check_want_, strerror(check_want_ < 0 ? -check_want_ : check_want_)); \
	} \
} while (0)

#define CHECK_STR(s, sub) do { \
	const char *check_s_ = (s), *check_sub_ = (sub); \
	harness_checks++; \
	if (!strstr(check_s_, check_sub_)) { \
		harness_fail(__FILE__, __LINE__, "strstr(" #s ", " #sub ")"); \
		fprintf(stderr, "    string:    \"%s\"\n    substring: \"%s\"\n", \
			check_s_, check_sub_); \
	} \
} while (0)

#define REQUIRE(cond) do { if (!CHECK(cond)) return; } while (0)

#define RUN(fn) do { \
	harness_test = #fn; \
	if (getenv("VMB_TEST_VERBOSE")) \
		fprintf(stderr, "-- %s\n", #fn); \
	fn(); \
} while (0)

#define SKIP(why) do { \
	fprintf(stderr, "SKIP: %s\n", (why)); \
	exit(HARNESS_SKIP); \
} while (0)

/* A fresh directory $TMPDIR/vmb-test-NAME.XXXXXX (/tmp when TMPDIR is unset or
 * empty), its path in buf. 0, or -1 after saying why. */
static inline int harness_tmpdir(char *buf, size_t size, const char *name)
{
	const char *base = getenv("TMPDIR");

	snprintf(buf, size, "%s/vmb-test-%s.XXXXXX", base && *base ? base : "/tmp", name);
	if (!mkdtemp(buf)) {
		perror("mkdtemp");
		return -1;
	}
	return 0;
}

/* Like harness_tmpdir, but always under /tmp (as tests/lib.sh does), for tests
 * that switch to another uid: $TMPDIR may be private to root (contrib/setup.sh
 * makes it 0700), and that uid could not reach anything below it. */
static inline int harness_tmpdir_shared(char *buf, size_t size, const char *name)
{
	snprintf(buf, size, "/tmp/vmb-test-%s.XXXXXX", name);
	if (!mkdtemp(buf)) {
		perror("mkdtemp");
		return -1;
	}
	return 0;
}

static inline int harness_rm_one(const char *p, const struct stat *sb, int flag,
				 struct FTW *ftw)
{
	(void)sb; (void)flag; (void)ftw;
	return remove(p);
}

/* Remove dir and everything below it, unless VMB_KEEP_TMP is set (to look at it
 * after a failure). */
static inline void harness_rmtree(const char *dir)
{
	if (!getenv("VMB_KEEP_TMP"))
		nftw(dir, harness_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static inline int harness_exit(const char *prog)
{
	fprintf(stderr, "%s: %lu checks, %lu failed\n", prog, harness_checks,
		harness_failures);
	return harness_failures ? 1 : 0;
}

#endif
