/* test_pathtree.c - base/pathtree.c: the rules of a listed tree (each broken once,
 * with the record it names), xattr arrays, array growth. */
#include "config.h"
#include "harness.h"
#include "base/pathtree.h"

#include <errno.h>

struct rec {
	const char *path;
	int dir;
};

static const char *rec_path(const void *ents, size_t i, int *is_dir)
{
	const struct rec *r = (const struct rec *)ents + i;

	*is_dir = r->dir;
	return r->path;
}

#define TREE(arr, at, dup) vmb_tree_check(arr, sizeof(arr) / sizeof(arr[0]), rec_path, at, dup)

static void test_tree(void)
{
	const char *dup;
	size_t at;
	static const struct rec good[] = {
		{ ".", 1 }, { "b", 1 }, { "a", 1 }, { "b/x", 0 }, { "a/c", 1 }, { "a/c/d", 0 },
		{ "top", 0 },
	};
	static const struct rec noroot1[] = { { "a", 1 } }, noroot2[] = { { ".", 0 } };
	static const struct rec dot2[] = { { ".", 1 }, { "a", 1 }, { ".", 1 } };
	static const struct rec noparent[] = { { ".", 1 }, { "a", 1 }, { "b/x", 0 } };
	static const struct rec parentfile[] = { { ".", 1 }, { "a", 0 }, { "a/x", 0 } };
	static const struct rec later[] = { { ".", 1 }, { "a/x", 0 }, { "a", 1 } };
	static const struct rec twice[] = { { ".", 1 }, { "a", 0 }, { "b", 1 }, { "a", 0 } };
	static const struct rec twicedir[] = { { ".", 1 }, { "d", 1 }, { "d", 1 }, { "d/e", 0 } };

	CHECK_RC(TREE(good, &at, &dup), 0);
	CHECK_RC(vmb_tree_check(good, 0, rec_path, &at, &dup), VMB_TREE_NO_ROOT);
	CHECK_RC(TREE(noroot1, &at, &dup), VMB_TREE_NO_ROOT);
	CHECK_RC(TREE(noroot2, &at, &dup), VMB_TREE_NO_ROOT);
	CHECK_RC(TREE(dot2, &at, &dup), VMB_TREE_DOT_TWICE);
	CHECK_EQ(at, 2);
	CHECK_RC(TREE(noparent, &at, &dup), VMB_TREE_NO_PARENT);
	CHECK_EQ(at, 2);
	CHECK_RC(TREE(parentfile, &at, &dup), VMB_TREE_NO_PARENT);
	CHECK_EQ(at, 2);
	CHECK_RC(TREE(later, &at, &dup), VMB_TREE_NO_PARENT);
	CHECK_EQ(at, 1);
	CHECK_RC(TREE(twice, &at, &dup), VMB_TREE_TWICE);
	CHECK(dup && !strcmp(dup, "a"));
	CHECK_RC(TREE(twicedir, &at, &dup), VMB_TREE_TWICE);
	CHECK(dup && !strcmp(dup, "d"));
}

static void test_xattrs(void)
{
	struct vmb_xattr *x = NULL;
	size_t n = 0;
	char big[65537];

	CHECK(vmb_xattrs_ok(x, n));
	CHECK_RC(vmb_xattrs_add(&x, &n, "user.a", "v\0w", 3), 0);
	CHECK_RC(vmb_xattrs_add(&x, &n, "user.empty", "", 0), 0);
	REQUIRE(n == 2);
	CHECK(!strcmp(x[0].name, "user.a") && x[0].len == 3 && !memcmp(x[0].value, "v\0w", 4));
	CHECK(x[1].len == 0 && x[1].value[0] == '\0');
	CHECK(vmb_xattrs_ok(x, n));
	memset(big, 'v', sizeof(big));
	CHECK_RC(vmb_xattrs_add(&x, &n, "user.big", big, 65536), 0);
	CHECK(vmb_xattrs_ok(x, n));
	CHECK_RC(vmb_xattrs_add(&x, &n, "user.bigger", big, 65537), 0);
	CHECK(!vmb_xattrs_ok(x, n));
	CHECK(vmb_xattrs_ok(x, n - 1));
	vmb_xattrs_free(x, n);

	static const char *const bad[] = { "user.", "trusted.a", "use.a", "" };
	size_t i;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		x = NULL;
		n = 0;
		CHECK_RC(vmb_xattrs_add(&x, &n, bad[i], "v", 1), 0);
		CHECK(!vmb_xattrs_ok(x, n));
		vmb_xattrs_free(x, n);
	}
	char name[300] = "user.";
	memset(name + 5, 'n', 250);
	name[255] = '\0';
	x = NULL;
	n = 0;
	CHECK_RC(vmb_xattrs_add(&x, &n, name, "v", 1), 0);
	CHECK(vmb_xattrs_ok(x, n));
	name[255] = 'n';
	name[256] = '\0';
	CHECK_RC(vmb_xattrs_add(&x, &n, name, "v", 1), 0);
	CHECK(!vmb_xattrs_ok(x, n));
	vmb_xattrs_free(x, n);
}

static void test_grow_dup(void)
{
	int *a = NULL, *na;
	size_t cap = 0, n;
	char *p, *t;

	for (n = 0; n < 100; n++) {
		na = vmb_grow(a, &cap, n, sizeof(*a));
		REQUIRE(na);
		a = na;
		a[n] = (int)n;
		CHECK(cap > n);
	}
	CHECK_EQ(cap, 128);
	CHECK(a[99] == 99 && a[16] == 16);
	free(a);
	CHECK_RC(vmb_path_target_dup("a/b", "t", &p, &t), 0);
	CHECK(!strcmp(p, "a/b") && !strcmp(t, "t"));
	free(p);
	free(t);
	CHECK_RC(vmb_path_target_dup(NULL, NULL, &p, &t), 0);
	CHECK(!strcmp(p, "") && t == NULL);
	free(p);
}

int main(void)
{
	RUN(test_tree);
	RUN(test_xattrs);
	RUN(test_grow_dup);
	return harness_exit("test_pathtree");
}
