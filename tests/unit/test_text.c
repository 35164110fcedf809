/* test_text.c - the text primitives of the line formats (base/text.c): escaping
 * round trips, the canonical and the loose readings of escapes and numbers (every
 * malformed form refused), tokens, hex, relative paths, the growing buffer. */
#include "config.h"
#include "harness.h"
#include "base/text.h"
#include "base/err.h"

#include <limits.h>

#define S(lit) (lit), (sizeof(lit) - 1)

/* Every byte value, escaped and read back by both readings. */
static void test_escape_roundtrip(void)
{
	struct vmb_sbuf b = { 0 };
	char all[256], *back;
	size_t i, len = 0;
	int nomem = 0;

	for (i = 0; i < 256; i++)
		all[i] = (char)i;
	vmb_sbuf_put_esc(&b, all, sizeof(all));
	REQUIRE(!b.nomem && b.p);
	for (i = 0; i < b.len; i++)   /* nothing left that must be escaped */
		CHECK((unsigned char)b.p[i] > 0x20 && (unsigned char)b.p[i] < 0x7f);
	CHECK(strstr(b.p, "%00%01") == b.p);
	CHECK(strstr(b.p, "%20!\"#$%25&") != NULL);
	CHECK(strstr(b.p, "~%7F%80") != NULL);
	CHECK(strstr(b.p, "%FE%FF") == b.p + b.len - 6);
	CHECK_EQ(b.len, (size_t)(256 - 33 - 1 - 129) + 3 * (33 + 1 + 129));
	back = vmb_unesc(b.p, b.len, 1, &len, &nomem);
	REQUIRE(back);
	CHECK_EQ(len, 256);
	CHECK(memcmp(back, all, 256) == 0);
	free(back);
	back = vmb_unesc_loose(b.p, b.len, 1, &len, &nomem);
	REQUIRE(back);
	CHECK(len == 256 && memcmp(back, all, 256) == 0);
	free(back);
	/* without nul_ok, the same text is refused (it holds %00), and so is only "%00" */
	CHECK(vmb_unesc(b.p, b.len, 0, NULL, &nomem) == NULL);
	CHECK(vmb_unesc_loose(S("a%00"), 0, NULL, &nomem) == NULL);
	CHECK(!nomem);
	free(b.p);

	/* a string with nothing to escape is written as it is */
	memset(&b, 0, sizeof(b));
	vmb_sbuf_put_esc(&b, S("plain/name.img"));
	CHECK(b.p && !strcmp(b.p, "plain/name.img"));
	free(b.p);
}

static int unesc_ok(char *(*f)(const char *, size_t, int, size_t *, int *),
		    const char *s, const char *want)
{
	int nomem = 0, ok;
	char *o = f(s, strlen(s), 0, NULL, &nomem);

	ok = o && !strcmp(o, want);
	free(o);
	return ok;
}

static int unesc_bad(char *(*f)(const char *, size_t, int, size_t *, int *), const char *s)
{
	int nomem = 0;
	char *o = f(s, strlen(s), 0, NULL, &nomem);

	free(o);
	return !o && !nomem;
}

static void test_unescape_forms(void)
{
	/* both readings */
	CHECK(unesc_ok(vmb_unesc, "a%20b%25c", "a b%c"));
	CHECK(unesc_ok(vmb_unesc_loose, "a%20b%25c", "a b%c"));
	CHECK(unesc_ok(vmb_unesc, "", ""));
	static const char *const bad_both[] = {
		"%", "%2", "a%", "a%2", "%G0", "%2G", "%-1", "a b", "a\tb", "\x7f", "\x80",
		"%00", "x%00y",
	};
	size_t i;

	for (i = 0; i < sizeof(bad_both) / sizeof(bad_both[0]); i++) {
		harness_test = bad_both[i];
		CHECK(unesc_bad(vmb_unesc, bad_both[i]));
		CHECK(unesc_bad(vmb_unesc_loose, bad_both[i]));
	}
	harness_test = "test_unescape_forms";
	/* canonical only: uppercase hex, and only for the bytes that must be escaped */
	CHECK(unesc_bad(vmb_unesc, "%2f"));
	CHECK(unesc_bad(vmb_unesc, "%41"));
	CHECK(unesc_bad(vmb_unesc, "%2D"));
	CHECK(unesc_bad(vmb_unesc, "%ff"));
	CHECK(unesc_ok(vmb_unesc, "%FF", "\xff"));
	/* the loose reading (snapshot manifests) takes them */
	CHECK(unesc_ok(vmb_unesc_loose, "%2f", "/"));
	CHECK(unesc_ok(vmb_unesc_loose, "%41", "A"));
	CHECK(unesc_ok(vmb_unesc_loose, "%ff", "\xff"));
	CHECK(unesc_ok(vmb_unesc_loose, "%2D", "-"));
}

static void test_numbers(void)
{
	uint64_t u = 7;
	int64_t s = 7;
	uint32_t ns = 7;

	CHECK(vmb_num_u(S("0"), 10, 100, &u) && u == 0);
	CHECK(vmb_num_u(S("18446744073709551615"), 10, UINT64_MAX, &u) && u == UINT64_MAX);
	CHECK(vmb_num_u(S("1777777777777777777777"), 8, UINT64_MAX, &u) && u == UINT64_MAX);
	CHECK(vmb_num_u(S("ffffffff"), 16, UINT32_MAX, &u) && u == UINT32_MAX);
	CHECK(vmb_num_u(S("755"), 8, 07777, &u) && u == 0755);
	/* malformed for both readings */
	static const struct { const char *s; int base; uint64_t max; } bad[] = {
		{ "", 10, UINT64_MAX },                      /* empty */
		{ "-1", 10, UINT64_MAX },                    /* a sign */
		{ "+1", 10, UINT64_MAX },
		{ " 1", 10, UINT64_MAX },                    /* a space */
		{ "1 ", 10, UINT64_MAX },
		{ "1a", 10, UINT64_MAX },                    /* not a digit of the base */
		{ "8", 8, UINT64_MAX },
		{ "g", 16, UINT64_MAX },
		{ "FF", 16, UINT64_MAX },                    /* uppercase hex */
		{ "18446744073709551616", 10, UINT64_MAX },  /* overflow */
		{ "99999999999999999999", 10, UINT64_MAX },
		{ "2000000000000000000000", 8, UINT64_MAX },
		{ "101", 10, 100 },                          /* above max */
		{ "100000000", 16, UINT32_MAX },
		{ "1.5", 10, UINT64_MAX },
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		harness_test = bad[i].s;
		u = 7;
		CHECK(!vmb_num_u(bad[i].s, strlen(bad[i].s), bad[i].base, bad[i].max, &u));
		CHECK(!vmb_num_u_loose(bad[i].s, strlen(bad[i].s), bad[i].base, bad[i].max, &u));
		CHECK_EQ(u, 7);   /* untouched */
	}
	harness_test = "test_numbers";
	/* leading zeros: canonical no, loose yes (up to 20 digits) */
	CHECK(!vmb_num_u(S("0755"), 8, 07777, &u));
	CHECK(!vmb_num_u(S("00"), 10, 100, &u));
	CHECK(vmb_num_u_loose(S("0755"), 8, 07777, &u) && u == 0755);
	CHECK(vmb_num_u_loose(S("0000abcd"), 16, UINT32_MAX, &u) && u == 0xabcd);
	CHECK(vmb_num_u_loose(S("00000000000000000001"), 10, 100, &u) && u == 1);
	CHECK(!vmb_num_u_loose(S("000000000000000000001"), 10, 100, &u));

	/* signed */
	CHECK(vmb_num_s(S("-9223372036854775807"), &s) && s == -INT64_MAX);
	CHECK(vmb_num_s(S("9223372036854775807"), &s) && s == INT64_MAX);
	CHECK(vmb_num_s(S("0"), &s) && s == 0);
	s = 7;
	CHECK(!vmb_num_s(S("9223372036854775808"), &s));
	CHECK(!vmb_num_s(S("-9223372036854775808"), &s));   /* INT64_MIN is not written */
	CHECK(!vmb_num_s(S("-"), &s));
	CHECK(!vmb_num_s(S("--1"), &s));
	CHECK(!vmb_num_s(S("+1"), &s));
	CHECK(!vmb_num_s(S(""), &s));
	CHECK(!vmb_num_s(S("-0"), &s));
	CHECK(!vmb_num_s(S("-01"), &s));
	CHECK(!vmb_num_s_loose(S("-"), &s));
	CHECK(!vmb_num_s_loose(S("--1"), &s));
	CHECK(!vmb_num_s_loose(S("9223372036854775808"), &s));
	CHECK_EQ(s, 7);
	CHECK(vmb_num_s_loose(S("-0"), &s) && s == 0);
	CHECK(vmb_num_s_loose(S("-01"), &s) && s == -1);

	/* times */
	CHECK(vmb_num_time(S("1700000000.000000001"), &s, &ns) && s == 1700000000 && ns == 1);
	CHECK(vmb_num_time(S("-1.999999999"), &s, &ns) && s == -1 && ns == 999999999);
	CHECK(vmb_num_time(S("0.000000000"), &s, &ns) && s == 0 && ns == 0);
	static const char *const bad_time[] = {
		"", "1", "1.", ".000000000", "1.00000000", "1.0000000000", "1.00000000a",
		"1.-00000001", "1.000000000.", "1,000000000", "a.000000000", "--1.000000000",
		"1 .000000000", "9223372036854775808.000000000", "1.00000000 ",
	};
	for (i = 0; i < sizeof(bad_time) / sizeof(bad_time[0]); i++) {
		harness_test = bad_time[i];
		s = 7;
		ns = 7;
		CHECK(!vmb_num_time(bad_time[i], strlen(bad_time[i]), &s, &ns));
		CHECK(!vmb_num_time_loose(bad_time[i], strlen(bad_time[i]), &s, &ns));
		CHECK(s == 7 && ns == 7);
	}
	harness_test = "test_numbers";
	CHECK(!vmb_num_time(S("-0.000000001"), &s, &ns));
	CHECK(!vmb_num_time(S("01.000000000"), &s, &ns));
	CHECK(vmb_num_time_loose(S("-0.000000001"), &s, &ns) && s == 0 && ns == 1);
	CHECK(vmb_num_time_loose(S("01.000000000"), &s, &ns) && s == 1 && ns == 0);
}

static void test_tokens(void)
{
	const char *tok[4];
	size_t tl[4];

	CHECK_EQ(vmb_tokens(S("a bb ccc"), tok, tl, 3), 3);
	CHECK(tok[0][0] == 'a' && tl[0] == 1 && tl[1] == 2 && tl[2] == 3 && tok[2][0] == 'c');
	CHECK_EQ(vmb_tokens(S(""), tok, tl, 3), 0);
	CHECK_EQ(vmb_tokens(S("x"), tok, tl, 3), 1);
	CHECK_EQ(vmb_tokens(S("a b c d"), tok, tl, 3), 4);    /* too many */
	CHECK_EQ(vmb_tokens(S("a  b"), tok, tl, 3), 4);       /* an empty token */
	CHECK_EQ(vmb_tokens(S(" a"), tok, tl, 3), 4);
	CHECK_EQ(vmb_tokens(S("a "), tok, tl, 3), 4);         /* a trailing space */
	CHECK_EQ(vmb_tokens(S(" "), tok, tl, 3), 4);
	CHECK_EQ(vmb_tokens(S("a\tb"), tok, tl, 3), 1);       /* only spaces split */
}

static void test_hex_paths(void)
{
	uint8_t d[4] = { 0 };

	CHECK(vmb_hex_ok(S("00ff10ab"), d, 4) && d[0] == 0 && d[1] == 0xff && d[3] == 0xab);
	CHECK(vmb_hex_ok(S("00ff10ab"), NULL, 4));
	CHECK(vmb_hex_ok(S(""), NULL, 0));
	CHECK(!vmb_hex_ok(S("00FF10ab"), d, 4));
	CHECK(!vmb_hex_ok(S("00ff10a"), d, 4));
	CHECK(!vmb_hex_ok(S("00ff10abc"), d, 4));
	CHECK(!vmb_hex_ok(S("00ff10ag"), d, 4));
	CHECK(!vmb_hex_ok(S("00ff 0ab"), d, 4));

	char longname[NAME_MAX + 2];

	CHECK(vmb_relpath_ok("."));
	CHECK(vmb_relpath_ok("a"));
	CHECK(vmb_relpath_ok("a/b/c.img"));
	CHECK(vmb_relpath_ok("..a/.b/a.."));
	CHECK(!vmb_relpath_ok(""));
	CHECK(!vmb_relpath_ok("/a"));
	CHECK(!vmb_relpath_ok("a/"));
	CHECK(!vmb_relpath_ok("a//b"));
	CHECK(!vmb_relpath_ok("./a"));
	CHECK(!vmb_relpath_ok("a/./b"));
	CHECK(!vmb_relpath_ok("a/.."));
	CHECK(!vmb_relpath_ok("../a"));
	memset(longname, 'n', NAME_MAX);
	longname[NAME_MAX] = '\0';
	CHECK(vmb_relpath_ok(longname));
	longname[NAME_MAX] = 'n';
	longname[NAME_MAX + 1] = '\0';
	CHECK(!vmb_relpath_ok(longname));
}

static void test_sbuf(void)
{
	struct vmb_sbuf b = { 0 };
	char big[600];
	size_t i;

	vmb_sbuf_putf(&b, "%s %d\n", "magic", 1);
	CHECK(b.p && !strcmp(b.p, "magic 1\n") && b.len == 8);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	vmb_sbuf_putf(&b, "%s", big);           /* at most 255 bytes of a putf */
	CHECK_EQ(b.len, 8 + 255);
	for (i = 0; i < 3000; i++)              /* grows past its first 4 KiB */
		vmb_sbuf_put(&b, "0123456789", 10);
	CHECK_EQ(b.len, 8 + 255 + 30000);
	CHECK(b.p[b.len] == '\0' && b.cap > b.len && !b.nomem);
	free(b.p);
	memset(&b, 0, sizeof(b));
	b.nomem = 1;                            /* a failed buffer takes nothing more */
	vmb_sbuf_put(&b, "x", 1);
	CHECK(b.p == NULL && b.len == 0);
}

static unsigned limited_n;
static char limited_last[512];

static void limited_fn(void *arg, const char *msg)
{
	(void)arg;
	limited_n++;
	snprintf(limited_last, sizeof(limited_last), "%s", msg);
}

/* vmb_log_limited: at most VMB_LOG_BURST of a kind a minute, the rest left out. */
static void test_log_limited(void)
{
	static struct vmb_ratelimit rl = VMB_RATELIMIT_INIT;
	const struct vmb_log lg = { limited_fn, NULL };

	for (int i = 0; i < VMB_LOG_BURST + 5; i++)
		vmb_log_limited(&lg, &rl, "change %d", i);
	CHECK_EQ(limited_n, VMB_LOG_BURST);
	CHECK_STR(limited_last, "change 9");
	CHECK_EQ(rl.left_out, 5);
}

/* A log line's control bytes (names users chose) are escaped: no escape sequence
 * reaches a terminal that prints the log (outside report r27 X-esc). */
static void test_log_escape(void)
{
	const struct vmb_log lg = { limited_fn, NULL };

	vmb_log_msg(&lg, "holds a lock on '%s'", "x\033[31mRED\033]0;T\007y\nz\tw");
	CHECK(!strcmp(limited_last, "holds a lock on 'x\\x1b[31mRED\\x1b]0;T\\x07y z w'"));
	CHECK(!strchr(limited_last, '\033'));
	vmb_log_msg(&lg, "caf\xc3\xa9 %s", "ok");   /* UTF-8 passes */
	CHECK(!strcmp(limited_last, "caf\xc3\xa9 ok"));
}

int main(void)
{
	RUN(test_escape_roundtrip);
	RUN(test_unescape_forms);
	RUN(test_numbers);
	RUN(test_tokens);
	RUN(test_hex_paths);
	RUN(test_sbuf);
	RUN(test_log_limited);
	RUN(test_log_escape);
	return harness_exit("test_text");
}
