/* test_blockmap.c - unit tests of the extent map (src/map/blockmap.c).
 *
 * Linked with -Wl,--wrap=malloc -Wl,--wrap=realloc so that allocation failures can
 * be injected (see test_enomem). VMB_SEED=<n> picks the seed of the randomized test.
 */
#include "config.h"
#include "map/blockmap.h"
#include "harness.h"

#include <errno.h>

#define MAX VMB_BLOCK_MAX

/* ---- allocation failure injection ---- */

void *__real_malloc(size_t n);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_realloc(void *p, size_t n);

static int fail_allocs;              /* every wrapped allocation fails while set */
static unsigned long failed_allocs;  /* how many did */

void *__wrap_malloc(size_t n)
{
	if (fail_allocs) {
		failed_allocs++;
		return NULL;
	}
	return __real_malloc(n);
}

void *__wrap_realloc(void *p, size_t n)
{
	if (fail_allocs) {
		failed_allocs++;
		return NULL;
	}
	return __real_realloc(p, n);
}

/* ---- helpers ---- */

/* Compare m with the expected extents {start, len, state}... */
static int map_is(const struct vmb_blockmap *m, const struct vmb_extent *want, size_t n)
{
	size_t i;

	if (m->n != n)
		return 0;
	for (i = 0; i < n; i++)
		if (m->ext[i].start != want[i].start || m->ext[i].len != want[i].len ||
		    m->ext[i].state != want[i].state)
			return 0;
	return 1;
}

static void dump(const char *what, const struct vmb_blockmap *m)
{
	size_t i;

	fprintf(stderr, "    %s: %zu extents, %" PRIu64 " data, %" PRIu64 " zero\n", what,
		m->n, m->data_blocks, m->zero_blocks);
	for (i = 0; i < m->n && i < 32; i++)
		fprintf(stderr, "      [%" PRIu64 ", +%" PRIu64 ") %s\n", m->ext[i].start,
			m->ext[i].len, m->ext[i].state == VMB_DATA ? "DATA" :
			m->ext[i].state == VMB_ZERO ? "ZERO" : "BAD");
}

#define CHECK_MAP(m, ...) do { \
	static const struct vmb_extent want_[] = { __VA_ARGS__ }; \
	if (!CHECK(map_is((m), want_, sizeof(want_) / sizeof(want_[0])))) \
		dump("map", (m)); \
	CHECK_RC(vmb_blockmap_check(m), 0); \
} while (0)

#define D(s, l) { (s), (l), VMB_DATA }
#define Z(s, l) { (s), (l), VMB_ZERO }

/* ---- edge cases ---- */

static void test_empty(void)
{
	struct vmb_blockmap m;
	uint64_t run = 7, f = 7;

	vmb_blockmap_init(&m);
	CHECK_RC(vmb_blockmap_check(&m), 0);
	CHECK_EQ(vmb_blockmap_get(&m, 0, &run), VMB_ABSENT);
	CHECK_EQ(run, MAX);
	CHECK_EQ(vmb_blockmap_get(&m, 12345, &run), VMB_ABSENT);
	CHECK_EQ(run, MAX - 12345);
	CHECK_EQ(vmb_blockmap_get(&m, MAX - 1, &run), VMB_ABSENT);
	CHECK_EQ(run, 1);
	CHECK_EQ(vmb_blockmap_get(&m, MAX, &run), VMB_ABSENT);
	CHECK_EQ(run, 0);
	CHECK_EQ(vmb_blockmap_get(&m, UINT64_MAX, NULL), VMB_ABSENT);
	CHECK_RC(vmb_blockmap_next(&m, 0, VMB_M_DATA | VMB_M_ZERO, &f), -ENXIO);
	CHECK_RC(vmb_blockmap_next(&m, 0, VMB_M_ABSENT, &f), 0);
	CHECK_EQ(f, 0);
	CHECK_RC(vmb_blockmap_next(&m, MAX - 1, VMB_M_ABSENT, &f), 0);
	CHECK_EQ(f, MAX - 1);
	CHECK_RC(vmb_blockmap_next(&m, MAX, VMB_M_ABSENT, &f), -ENXIO);
	CHECK_RC(vmb_blockmap_next(&m, UINT64_MAX, VMB_M_ABSENT, &f), -ENXIO);
	CHECK_RC(vmb_blockmap_next(&m, 0, 0, &f), -ENXIO);
	vmb_blockmap_truncate(&m, 0);
	vmb_blockmap_truncate(&m, 100);
	CHECK_RC(vmb_blockmap_set(&m, 5, 10, VMB_ABSENT), 0);
	CHECK_EQ(m.n, 0);
	CHECK_RC(vmb_blockmap_check(&m), 0);
	vmb_blockmap_destroy(&m);
	vmb_blockmap_destroy(&m);   /* twice is fine */
	CHECK_EQ(m.n, 0);
	CHECK(m.ext == NULL);
}

static void test_set_args(void)
{
	struct vmb_blockmap m;

	vmb_blockmap_init(&m);
	CHECK_RC(vmb_blockmap_set(&m, 0, 0, VMB_DATA), 0);
	CHECK_RC(vmb_blockmap_set(&m, MAX + 5, 0, VMB_DATA), 0);   /* len 0: no-op */
	CHECK_RC(vmb_blockmap_set(&m, 0, 1, (enum vmb_bstate)3), -EINVAL);
	CHECK_RC(vmb_blockmap_set(&m, 0, 0, (enum vmb_bstate)3), -EINVAL);
	CHECK_RC(vmb_blockmap_set(&m, MAX, 1, VMB_DATA), -EINVAL);
	CHECK_RC(vmb_blockmap_set(&m, MAX - 1, 2, VMB_DATA), -EINVAL);
	CHECK_RC(vmb_blockmap_set(&m, 1, MAX, VMB_DATA), -EINVAL);
	CHECK_RC(vmb_blockmap_set(&m, 1, UINT64_MAX, VMB_DATA), -EINVAL);   /* wraps */
	CHECK_RC(vmb_blockmap_set(&m, UINT64_MAX, 1, VMB_ZERO), -EINVAL);
	CHECK_RC(vmb_blockmap_set(&m, UINT64_MAX, UINT64_MAX, VMB_ABSENT), -EINVAL);
	CHECK_EQ(m.n, 0);
	CHECK_RC(vmb_blockmap_set(&m, MAX - 1, 1, VMB_DATA), 0);
	CHECK_MAP(&m, D(MAX - 1, 1));
	CHECK_EQ(m.data_blocks, 1);
	vmb_blockmap_destroy(&m);
}

static void test_set_get(void)
{
	struct vmb_blockmap m;
	uint64_t run;

	vmb_blockmap_init(&m);
	CHECK_RC(vmb_blockmap_set(&m, 10, 10, VMB_DATA), 0);
	CHECK_MAP(&m, D(10, 10));
	CHECK_EQ(m.data_blocks, 10);
	CHECK_EQ(m.zero_blocks, 0);
	CHECK_EQ(vmb_blockmap_get(&m, 9, &run), VMB_ABSENT);
	CHECK_EQ(run, 1);
	CHECK_EQ(vmb_blockmap_get(&m, 0, &run), VMB_ABSENT);
	CHECK_EQ(run, 10);
	CHECK_EQ(vmb_blockmap_get(&m, 10, &run), VMB_DATA);
	CHECK_EQ(run, 10);
	CHECK_EQ(vmb_blockmap_get(&m, 19, &run), VMB_DATA);
	CHECK_EQ(run, 1);
	CHECK_EQ(vmb_blockmap_get(&m, 20, &run), VMB_ABSENT);
	CHECK_EQ(run, MAX - 20);
	CHECK_EQ(vmb_blockmap_get(&m, 15, NULL), VMB_DATA);

	CHECK_RC(vmb_blockmap_set(&m, 20, 5, VMB_ZERO), 0);
	CHECK_MAP(&m, D(10, 10), Z(20, 5));
	CHECK_EQ(vmb_blockmap_get(&m, 19, &run), VMB_DATA);
	CHECK_EQ(run, 1);   /* the adjacent ZERO run is a different state */
	CHECK_EQ(vmb_blockmap_get(&m, 20, &run), VMB_ZERO);
	CHECK_EQ(run, 5);
	CHECK_EQ(m.zero_blocks, 5);
	vmb_blockmap_destroy(&m);
}

static void test_merge(void)
{
	struct vmb_blockmap m;

	vmb_blockmap_init(&m);
	/* touching on the right */
	CHECK_RC(vmb_blockmap_set(&m, 0, 10, VMB_DATA), 0);
	CHECK_RC(vmb_blockmap_set(&m, 10, 10, VMB_DATA), 0);
	CHECK_MAP(&m, D(0, 20));
	/* bridging a gap between two extents of the same state */
	CHECK_RC(vmb_blockmap_set(&m, 30, 10, VMB_DATA), 0);
	CHECK_MAP(&m, D(0, 20), D(30, 10));
	CHECK_RC(vmb_blockmap_set(&m, 20, 10, VMB_DATA), 0);
	CHECK_MAP(&m, D(0, 40));
	/* touching, different state: no merge */
	CHECK_RC(vmb_blockmap_set(&m, 40, 10, VMB_ZERO), 0);
	CHECK_MAP(&m, D(0, 40), Z(40, 10));
	/* overlapping both: absorbs into DATA, ZERO shrinks */
	CHECK_RC(vmb_blockmap_set(&m, 35, 10, VMB_DATA), 0);
	CHECK_MAP(&m, D(0, 45), Z(45, 5));
	CHECK_EQ(m.data_blocks, 45);
	CHECK_EQ(m.zero_blocks, 5);
	/* setting what is already there changes nothing */
	CHECK_RC(vmb_blockmap_set(&m, 45, 5, VMB_ZERO), 0);
	CHECK_RC(vmb_blockmap_set(&m, 3, 7, VMB_DATA), 0);
	CHECK_MAP(&m, D(0, 45), Z(45, 5));
	/* touching on the left */
	CHECK_RC(vmb_blockmap_set(&m, 100, 10, VMB_ZERO), 0);
	CHECK_RC(vmb_blockmap_set(&m, 90, 10, VMB_ZERO), 0);
	CHECK_MAP(&m, D(0, 45), Z(45, 5), Z(90, 20));
	/* a ZERO range that covers a DATA extent between two ZERO ones: one extent */
	CHECK_RC(vmb_blockmap_set(&m, 50, 40, VMB_DATA), 0);
	CHECK_MAP(&m, D(0, 45), Z(45, 5), D(50, 40), Z(90, 20));
	CHECK_RC(vmb_blockmap_set(&m, 50, 40, VMB_ZERO), 0);
	CHECK_MAP(&m, D(0, 45), Z(45, 65));
	CHECK_EQ(m.zero_blocks, 65);
	vmb_blockmap_destroy(&m);
}

static void test_split(void)
{
	struct vmb_blockmap m;

	vmb_blockmap_init(&m);
	CHECK_RC(vmb_blockmap_set(&m, 0, 100, VMB_DATA), 0);
	CHECK_RC(vmb_blockmap_set(&m, 40, 20, VMB_ZERO), 0);   /* one into three */
	CHECK_MAP(&m, D(0, 40), Z(40, 20), D(60, 40));
	CHECK_EQ(m.data_blocks, 80);
	CHECK_EQ(m.zero_blocks, 20);
	CHECK_RC(vmb_blockmap_set(&m, 10, 5, VMB_ABSENT), 0);  /* hole punched */
	CHECK_MAP(&m, D(0, 10), D(15, 25), Z(40, 20), D(60, 40));
	CHECK_EQ(m.data_blocks, 75);
	/* clear across boundaries: tail of one, a whole one, head of another */
	CHECK_RC(vmb_blockmap_set(&m, 20, 50, VMB_ABSENT), 0);
	CHECK_MAP(&m, D(0, 10), D(15, 5), D(70, 30));
	CHECK_EQ(m.data_blocks, 45);
	CHECK_EQ(m.zero_blocks, 0);
	/* set across boundaries: merges with the head of the first and second */
	CHECK_RC(vmb_blockmap_set(&m, 5, 70, VMB_DATA), 0);
	CHECK_MAP(&m, D(0, 100));
	/* a different state over several extents, exactly aligned */
	CHECK_RC(vmb_blockmap_set(&m, 10, 10, VMB_ZERO), 0);
	CHECK_RC(vmb_blockmap_set(&m, 30, 10, VMB_ZERO), 0);
	CHECK_MAP(&m, D(0, 10), Z(10, 10), D(20, 10), Z(30, 10), D(40, 60));
	CHECK_RC(vmb_blockmap_set(&m, 10, 30, VMB_ZERO), 0);
	CHECK_MAP(&m, D(0, 10), Z(10, 30), D(40, 60));
	/* clear everything */
	CHECK_RC(vmb_blockmap_set(&m, 0, MAX, VMB_ABSENT), 0);
	CHECK_EQ(m.n, 0);
	CHECK_EQ(m.data_blocks, 0);
	CHECK_RC(vmb_blockmap_check(&m), 0);
	vmb_blockmap_destroy(&m);
}

static void test_next(void)
{
	struct vmb_blockmap m;
	uint64_t f;

	vmb_blockmap_init(&m);
	CHECK_RC(vmb_blockmap_set(&m, 10, 10, VMB_DATA), 0);
	CHECK_RC(vmb_blockmap_set(&m, 20, 10, VMB_ZERO), 0);
	CHECK_RC(vmb_blockmap_set(&m, 50, 10, VMB_DATA), 0);

	CHECK_RC(vmb_blockmap_next(&m, 0, VMB_M_DATA, &f), 0);
	CHECK_EQ(f, 10);
	CHECK_RC(vmb_blockmap_next(&m, 15, VMB_M_DATA, &f), 0);
	CHECK_EQ(f, 15);
	CHECK_RC(vmb_blockmap_next(&m, 20, VMB_M_DATA, &f), 0);
	CHECK_EQ(f, 50);
	CHECK_RC(vmb_blockmap_next(&m, 60, VMB_M_DATA, &f), -ENXIO);
	CHECK_RC(vmb_blockmap_next(&m, 0, VMB_M_ZERO, &f), 0);
	CHECK_EQ(f, 20);
	CHECK_RC(vmb_blockmap_next(&m, 30, VMB_M_ZERO, &f), -ENXIO);
	CHECK_RC(vmb_blockmap_next(&m, 0, VMB_M_DATA | VMB_M_ZERO, &f), 0);
	CHECK_EQ(f, 10);
	CHECK_RC(vmb_blockmap_next(&m, 25, VMB_M_DATA | VMB_M_ZERO, &f), 0);
	CHECK_EQ(f, 25);
	CHECK_RC(vmb_blockmap_next(&m, 30, VMB_M_DATA | VMB_M_ZERO, &f), 0);
	CHECK_EQ(f, 50);
	CHECK_RC(vmb_blockmap_next(&m, 60, VMB_M_DATA | VMB_M_ZERO, &f), -ENXIO);
	CHECK_RC(vmb_blockmap_next(&m, 0, VMB_M_ABSENT, &f), 0);
	CHECK_EQ(f, 0);
	CHECK_RC(vmb_blockmap_next(&m, 10, VMB_M_ABSENT, &f), 0);
	CHECK_EQ(f, 30);   /* skips two touching extents */
	CHECK_RC(vmb_blockmap_next(&m, 50, VMB_M_ABSENT, &f), 0);
	CHECK_EQ(f, 60);
	CHECK_RC(vmb_blockmap_next(&m, 12, VMB_M_ABSENT | VMB_M_ZERO, &f), 0);
	CHECK_EQ(f, 20);
	CHECK_RC(vmb_blockmap_next(&m, 55, VMB_M_ABSENT | VMB_M_ZERO, &f), 0);
	CHECK_EQ(f, 60);
	CHECK_RC(vmb_blockmap_next(&m, 12, VMB_M_ABSENT | VMB_M_DATA, &f), 0);
	CHECK_EQ(f, 12);
	CHECK_RC(vmb_blockmap_next(&m, 21, VMB_M_ABSENT | VMB_M_DATA, &f), 0);
	CHECK_EQ(f, 30);
	CHECK_RC(vmb_blockmap_next(&m, 0, 0x100 | VMB_M_ZERO, &f), 0);   /* junk bits */
	CHECK_EQ(f, 20);
	CHECK_RC(vmb_blockmap_next(&m, 0, 0x100, &f), -ENXIO);

	/* an extent that ends at VMB_BLOCK_MAX */
	CHECK_RC(vmb_blockmap_set(&m, MAX - 10, 10, VMB_ZERO), 0);
	CHECK_RC(vmb_blockmap_next(&m, MAX - 10, VMB_M_ABSENT, &f), -ENXIO);
	CHECK_RC(vmb_blockmap_next(&m, MAX - 11, VMB_M_ABSENT, &f), 0);
	CHECK_EQ(f, MAX - 11);
	CHECK_RC(vmb_blockmap_next(&m, 60, VMB_M_ZERO, &f), 0);
	CHECK_EQ(f, MAX - 10);
	CHECK_RC(vmb_blockmap_next(&m, MAX - 1, VMB_M_ZERO, &f), 0);
	CHECK_EQ(f, MAX - 1);
	CHECK_RC(vmb_blockmap_next(&m, 60, VMB_M_DATA, &f), -ENXIO);
	vmb_blockmap_destroy(&m);
}

static void test_truncate(void)
{
	struct vmb_blockmap m;

	vmb_blockmap_init(&m);
	CHECK_RC(vmb_blockmap_set(&m, 0, 100, VMB_DATA), 0);
	CHECK_RC(vmb_blockmap_set(&m, 100, 100, VMB_ZERO), 0);
	CHECK_RC(vmb_blockmap_set(&m, 300, 100, VMB_DATA), 0);
	vmb_blockmap_truncate(&m, MAX);
	vmb_blockmap_truncate(&m, UINT64_MAX);
	vmb_blockmap_truncate(&m, 400);
	CHECK_MAP(&m, D(0, 100), Z(100, 100), D(300, 100));
	vmb_blockmap_truncate(&m, 350);   /* mid-extent */
	CHECK_MAP(&m, D(0, 100), Z(100, 100), D(300, 50));
	CHECK_EQ(m.data_blocks, 150);
	vmb_blockmap_truncate(&m, 250);   /* in a gap */
	CHECK_MAP(&m, D(0, 100), Z(100, 100));
	CHECK_EQ(m.data_blocks, 100);
	vmb_blockmap_truncate(&m, 150);   /* mid-extent */
	CHECK_MAP(&m, D(0, 100), Z(100, 50));
	CHECK_EQ(m.zero_blocks, 50);
	vmb_blockmap_truncate(&m, 100);   /* on a boundary */
	CHECK_MAP(&m, D(0, 100));
	CHECK_EQ(m.zero_blocks, 0);
	vmb_blockmap_truncate(&m, 1);
	CHECK_MAP(&m, D(0, 1));
	vmb_blockmap_truncate(&m, 0);
	CHECK_EQ(m.n, 0);
	CHECK_EQ(m.data_blocks, 0);
	CHECK_RC(vmb_blockmap_check(&m), 0);
	/* truncate at the top of the range */
	CHECK_RC(vmb_blockmap_set(&m, 0, MAX, VMB_ZERO), 0);
	vmb_blockmap_truncate(&m, MAX - 1);
	CHECK_MAP(&m, Z(0, MAX - 1));
	CHECK_EQ(m.zero_blocks, MAX - 1);
	vmb_blockmap_destroy(&m);
}

static void test_block_max(void)
{
	struct vmb_blockmap m;
	uint64_t run, f;

	vmb_blockmap_init(&m);
	CHECK_RC(vmb_blockmap_set(&m, 0, MAX, VMB_DATA), 0);
	CHECK_MAP(&m, D(0, MAX));
	CHECK_EQ(m.data_blocks, MAX);
	CHECK_EQ(vmb_blockmap_get(&m, 0, &run), VMB_DATA);
	CHECK_EQ(run, MAX);
	CHECK_EQ(vmb_blockmap_get(&m, MAX - 1, &run), VMB_DATA);
	CHECK_EQ(run, 1);
	CHECK_RC(vmb_blockmap_next(&m, 0, VMB_M_ABSENT, &f), -ENXIO);
	CHECK_RC(vmb_blockmap_set(&m, 1, MAX - 2, VMB_ZERO), 0);
	CHECK_MAP(&m, D(0, 1), Z(1, MAX - 2), D(MAX - 1, 1));
	CHECK_EQ(m.data_blocks, 2);
	CHECK_EQ(m.zero_blocks, MAX - 2);
	CHECK_RC(vmb_blockmap_set(&m, MAX - 1, 1, VMB_ABSENT), 0);
	CHECK_MAP(&m, D(0, 1), Z(1, MAX - 2));
	CHECK_RC(vmb_blockmap_next(&m, 0, VMB_M_ABSENT, &f), 0);
	CHECK_EQ(f, MAX - 1);
	CHECK_EQ(vmb_blockmap_get(&m, MAX - 1, &run), VMB_ABSENT);
	CHECK_EQ(run, 1);
	CHECK_RC(vmb_blockmap_set(&m, MAX - 1, 1, VMB_ZERO), 0);
	CHECK_MAP(&m, D(0, 1), Z(1, MAX - 1));
	CHECK_RC(vmb_blockmap_set(&m, 0, 1, VMB_ZERO), 0);
	CHECK_MAP(&m, Z(0, MAX));
	CHECK_EQ(m.zero_blocks, MAX);
	CHECK_EQ(m.data_blocks, 0);
	vmb_blockmap_destroy(&m);
}

static void test_copy_equal(void)
{
	struct vmb_blockmap a, b, c;

	vmb_blockmap_init(&a);
	vmb_blockmap_init(&b);
	vmb_blockmap_init(&c);
	CHECK(vmb_blockmap_equal(&a, &b));
	CHECK_RC(vmb_blockmap_set(&a, 5, 5, VMB_DATA), 0);
	CHECK_RC(vmb_blockmap_set(&a, 10, 5, VMB_ZERO), 0);
	CHECK(!vmb_blockmap_equal(&a, &b));
	CHECK_RC(vmb_blockmap_copy(&b, &a), 0);
	CHECK(vmb_blockmap_equal(&a, &b));
	CHECK_RC(vmb_blockmap_check(&b), 0);
	CHECK_EQ(b.data_blocks, 5);
	CHECK_EQ(b.zero_blocks, 5);
	CHECK(b.ext != a.ext);
	/* the copy is independent */
	CHECK_RC(vmb_blockmap_set(&b, 10, 1, VMB_DATA), 0);
	CHECK(!vmb_blockmap_equal(&a, &b));
	CHECK_MAP(&a, D(5, 5), Z(10, 5));
	/* same extent count, different lengths or states */
	CHECK_RC(vmb_blockmap_copy(&c, &a), 0);
	CHECK_RC(vmb_blockmap_set(&c, 14, 1, VMB_ABSENT), 0);
	CHECK(!vmb_blockmap_equal(&a, &c));
	CHECK_RC(vmb_blockmap_copy(&c, &a), 0);
	CHECK_RC(vmb_blockmap_set(&c, 5, 10, VMB_ABSENT), 0);
	CHECK_RC(vmb_blockmap_set(&c, 5, 5, VMB_ZERO), 0);
	CHECK_RC(vmb_blockmap_set(&c, 10, 5, VMB_DATA), 0);
	CHECK_EQ(c.n, a.n);
	CHECK(!vmb_blockmap_equal(&a, &c));
	/* the same states reached another way compare equal */
	CHECK_RC(vmb_blockmap_set(&c, 0, 100, VMB_ABSENT), 0);
	CHECK_RC(vmb_blockmap_set(&c, 12, 3, VMB_ZERO), 0);
	CHECK_RC(vmb_blockmap_set(&c, 5, 7, VMB_ZERO), 0);
	CHECK_RC(vmb_blockmap_set(&c, 5, 5, VMB_DATA), 0);
	CHECK(vmb_blockmap_equal(&a, &c));
	/* copying an empty map over a full one, and a map onto itself */
	vmb_blockmap_destroy(&c);
	CHECK_RC(vmb_blockmap_copy(&b, &c), 0);
	CHECK_EQ(b.n, 0);
	CHECK_EQ(b.data_blocks, 0);
	CHECK_RC(vmb_blockmap_check(&b), 0);
	CHECK_RC(vmb_blockmap_copy(&a, &a), 0);
	CHECK_MAP(&a, D(5, 5), Z(10, 5));
	vmb_blockmap_destroy(&a);
	vmb_blockmap_destroy(&b);
}

/* vmb_blockmap_check must catch every broken invariant. */
static void test_check(void)
{
	struct vmb_extent e[3];
	struct vmb_blockmap m = { e, 2, 3, 0, 0 };

	e[0] = (struct vmb_extent)D(0, 10);
	e[1] = (struct vmb_extent)Z(10, 10);
	m.data_blocks = 10;
	m.zero_blocks = 10;
	CHECK_RC(vmb_blockmap_check(&m), 0);
	m.data_blocks = 11;
	CHECK_RC(vmb_blockmap_check(&m), -EINVAL);           /* counter */
	m.data_blocks = 10;
	e[1].state = VMB_DATA;
	m.data_blocks = 20;
	m.zero_blocks = 0;
	CHECK_RC(vmb_blockmap_check(&m), -EINVAL);           /* not merged */
	e[1].start = 11;
	CHECK_RC(vmb_blockmap_check(&m), 0);
	e[1].start = 9;
	CHECK_RC(vmb_blockmap_check(&m), -EINVAL);           /* overlap */
	e[1].start = 11;
	e[1].state = 3;
	CHECK_RC(vmb_blockmap_check(&m), -EINVAL);           /* state */
	e[1].state = VMB_ABSENT;
	CHECK_RC(vmb_blockmap_check(&m), -EINVAL);           /* ABSENT is never stored */
	e[1].state = VMB_DATA;
	e[1].len = 0;
	m.data_blocks = 10;
	CHECK_RC(vmb_blockmap_check(&m), -EINVAL);           /* empty */
	e[0] = (struct vmb_extent)D(MAX - 5, 10);
	m.n = 1;
	CHECK_RC(vmb_blockmap_check(&m), -EINVAL);           /* past the end */
	e[0] = (struct vmb_extent)D(20, 10);
	e[1] = (struct vmb_extent)Z(0, 10);
	m.n = 2;
	m.data_blocks = 10;
	m.zero_blocks = 10;
	CHECK_RC(vmb_blockmap_check(&m), -EINVAL);           /* unsorted */
	m.n = 4;
	CHECK_RC(vmb_blockmap_check(&m), -EINVAL);           /* n > cap */
}

/* An update that cannot allocate fails with -ENOMEM and changes nothing. */
static void test_enomem(void)
{
	struct vmb_blockmap m, saved, dst;
	uint64_t x = 88172645463325252ull;
	unsigned long hits = 0;
	int i, rc;

	vmb_blockmap_init(&m);
	vmb_blockmap_init(&saved);
	vmb_blockmap_init(&dst);
	/* the first extent of an empty map needs memory */
	fail_allocs = 1;
	rc = vmb_blockmap_set(&m, 1, 1, VMB_DATA);
	fail_allocs = 0;
	if (rc == 0) {
		fprintf(stderr, "test_enomem: allocations are not wrapped, skipped\n");
		vmb_blockmap_destroy(&m);
		return;
	}
	CHECK_RC(rc, -ENOMEM);
	CHECK_EQ(m.n, 0);
	CHECK_EQ(m.data_blocks, 0);
	for (i = 0; i < 5000; i++) {
		uint64_t start, len;
		enum vmb_bstate st;

		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		start = x % 100000;
		len = 1 + (x >> 20) % 64;
		st = (enum vmb_bstate)((x >> 40) % 3);
		if (st == VMB_ABSENT && (x >> 50) % 2)
			st = VMB_DATA;   /* grow more than shrink */
		REQUIRE(vmb_blockmap_copy(&saved, &m) == 0);
		fail_allocs = 1;
		rc = vmb_blockmap_set(&m, start, len, st);
		fail_allocs = 0;
		if (rc == -ENOMEM) {
			hits++;
			CHECK(vmb_blockmap_equal(&m, &saved));
			CHECK_EQ(m.data_blocks, saved.data_blocks);
			CHECK_EQ(m.zero_blocks, saved.zero_blocks);
			rc = vmb_blockmap_set(&m, start, len, st);
		}
		CHECK_RC(rc, 0);
		CHECK_RC(vmb_blockmap_check(&m), 0);
	}
	CHECK(hits > 0);
	CHECK(m.n > 100);
	/* copy into a map that has content */
	CHECK_RC(vmb_blockmap_set(&dst, 1, 1, VMB_ZERO), 0);
	CHECK_RC(vmb_blockmap_copy(&saved, &dst), 0);
	fail_allocs = 1;
	CHECK_RC(vmb_blockmap_copy(&dst, &m), -ENOMEM);
	fail_allocs = 0;
	CHECK(vmb_blockmap_equal(&dst, &saved));
	CHECK_RC(vmb_blockmap_check(&dst), 0);
	/* clearing everything needs no memory */
	fail_allocs = 1;
	CHECK_RC(vmb_blockmap_set(&m, 0, MAX, VMB_ABSENT), 0);
	vmb_blockmap_truncate(&dst, 0);
	fail_allocs = 0;
	CHECK_EQ(m.n, 0);
	CHECK_RC(vmb_blockmap_check(&m), 0);
	vmb_blockmap_destroy(&m);
	vmb_blockmap_destroy(&saved);
	vmb_blockmap_destroy(&dst);
}

/* ---- randomized test against a byte-per-block model ---- */

#define NB 4096u

struct rnd {
	uint64_t s;
};

/* splitmix64: small, and the same sequence everywhere for a given seed */
static uint64_t rnd_next(struct rnd *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t rnd_below(struct rnd *r, uint64_t n)
{
	return rnd_next(r) % n;
}

/* A range length: mostly short, sometimes long, now and then to the end. */
static uint64_t rnd_len(struct rnd *r, uint64_t start)
{
	uint64_t room = NB - start;

	unsigned k = (unsigned)rnd_below(r, 1000);

	if (k < 2)
		return room;
	if (k < 6)
		return rnd_below(r, room + 1);
	if (k < 40)
		return 0;
	if (k < 150)
		return 1 + rnd_below(r, room < 256 ? room : 256);
	return 1 + rnd_below(r, room < 16 ? room : 16);
}

/* The map expanded over [0, NB) must equal the model; nothing may lie beyond. */
static int map_matches_model(const struct vmb_blockmap *m, const unsigned char *model)
{
	unsigned char got[NB];
	uint64_t data = 0, zero = 0;
	size_t i;

	memset(got, VMB_ABSENT, sizeof(got));
	for (i = 0; i < m->n; i++) {
		if (m->ext[i].start + m->ext[i].len > NB)
			return 0;
		memset(got + m->ext[i].start, (int)m->ext[i].state, m->ext[i].len);
	}
	if (memcmp(got, model, NB))
		return 0;
	for (i = 0; i < NB; i++) {
		data += model[i] == VMB_DATA;
		zero += model[i] == VMB_ZERO;
	}
	return m->data_blocks == data && m->zero_blocks == zero;
}

static void model_get(const unsigned char *model, uint64_t blk, unsigned *st, uint64_t *run)
{
	uint64_t i = blk;

	if (blk >= NB) {
		*st = VMB_ABSENT;
		*run = MAX - blk;
		return;
	}
	*st = model[blk];
	while (i < NB && model[i] == *st)
		i++;
	*run = (i == NB && *st == VMB_ABSENT) ? MAX - blk : i - blk;
}

static int model_next(const unsigned char *model, uint64_t blk, unsigned mask, uint64_t *f)
{
	uint64_t i;

	for (i = blk; i < NB; i++)
		if (mask & (1u << model[i])) {
			*f = i;
			return 0;
		}
	if (mask & VMB_M_ABSENT) {
		*f = blk > NB ? blk : NB;
		return 0;
	}
	return -ENXIO;
}

/* One random operation on m and the model; a description goes to desc. Returns 0
 * when map and model still agree. */
static int random_op(struct rnd *r, struct vmb_blockmap *m, struct vmb_blockmap *other,
		     unsigned char *model, char *desc, size_t dlen)
{
	uint64_t a = rnd_below(r, NB + 8), b, f1 = 0, f2 = 0, run1, run2;
	unsigned op = (unsigned)rnd_below(r, 100), st1, st2, mask;
	int rc1, rc2;

	if (op < 70) {
		a %= NB;
		b = rnd_len(r, a);
		st1 = (unsigned)rnd_below(r, 3);
		snprintf(desc, dlen, "set(%" PRIu64 ", %" PRIu64 ", %u)", a, b, st1);
		if (vmb_blockmap_set(m, a, b, (enum vmb_bstate)st1))
			return -1;
		memset(model + a, (int)st1, b);
	} else if (op < 72) {
		b = rnd_below(r, 16) ? NB - rnd_below(r, 64) : rnd_below(r, NB + 1);
		snprintf(desc, dlen, "truncate(%" PRIu64 ")", b);
		vmb_blockmap_truncate(m, b);
		if (b < NB)
			memset(model + b, VMB_ABSENT, NB - b);
	} else if (op < 85) {
		snprintf(desc, dlen, "get(%" PRIu64 ")", a);
		st1 = vmb_blockmap_get(m, a, &run1);
		model_get(model, a, &st2, &run2);
		if (st1 != st2 || run1 != run2)
			return -1;
	} else if (op < 97) {
		mask = 1 + (unsigned)rnd_below(r, 7);
		snprintf(desc, dlen, "next(%" PRIu64 ", %#x)", a, mask);
		rc1 = vmb_blockmap_next(m, a, mask, &f1);
		rc2 = model_next(model, a, mask, &f2);
		if (rc1 != rc2 || (rc1 == 0 && f1 != f2))
			return -1;
	} else {
		snprintf(desc, dlen, "copy/equal");
		if (vmb_blockmap_equal(other, m) != map_matches_model(other, model))
			return -1;
		if (vmb_blockmap_copy(other, m) || !vmb_blockmap_equal(other, m) ||
		    vmb_blockmap_check(other))
			return -1;
	}
	return 0;
}

static void test_random(void)
{
	struct vmb_blockmap m, other;
	static unsigned char model[NB];
	const char *env = getenv("VMB_SEED");
	const char *ops_env = getenv("VMB_RANDOM_OPS");
	uint64_t seed = env ? strtoull(env, NULL, 0) : 20240229;
	unsigned long ops = ops_env ? strtoul(ops_env, NULL, 0) : 250000, i;
	unsigned long max_n = 0;
	struct rnd r = { seed };
	char desc[128];

	if (ops < 200000 && !ops_env)
		ops = 200000;
	vmb_blockmap_init(&m);
	vmb_blockmap_init(&other);
	memset(model, VMB_ABSENT, sizeof(model));
	for (i = 0; i < ops; i++) {
		int bad = random_op(&r, &m, &other, model, desc, sizeof(desc)) != 0;

		bad |= vmb_blockmap_check(&m) != 0;
		bad |= !map_matches_model(&m, model);
		if (!CHECK(!bad)) {
			fprintf(stderr, "    VMB_SEED=%" PRIu64 ": operation %lu, %s\n",
				seed, i, desc);
			dump("map", &m);
			break;
		}
		if (m.n > max_n)
			max_n = m.n;
	}
	CHECK(max_n > 100);   /* the test reached interesting map sizes */
	if (getenv("VMB_TEST_VERBOSE"))
		fprintf(stderr, "   seed %" PRIu64 ", %lu operations, up to %lu extents\n",
			seed, i, max_n);
	vmb_blockmap_destroy(&m);
	vmb_blockmap_destroy(&other);
}

/* ---- change tracking and patch ---- */

static void test_track_patch(void)
{
	struct rnd r = { 0x5eed5eedu };
	struct vmb_blockmap m, base, dirty, mask, val, naive, out;

	for (int round = 0; round < 200; round++) {
		vmb_blockmap_init(&m);
		vmb_blockmap_init(&dirty);
		vmb_blockmap_init(&mask);
		vmb_blockmap_init(&val);
		vmb_blockmap_init(&naive);
		vmb_blockmap_init(&out);
		for (int i = 0; i < 60; i++)
			vmb_blockmap_set(&m, rnd_below(&r, 500), 1 + rnd_below(&r, 9),
					 (enum vmb_bstate)(1 + rnd_below(&r, 2)));
		vmb_blockmap_init(&base);
		vmb_blockmap_copy(&base, &m);
		/* tracked changes: replaying m's states on the tracked blocks over the
		 * old map gives m */
		m.track = &dirty;
		for (int i = 0; i < 1 + (int)rnd_below(&r, 8); i++) {
			if (rnd_below(&r, 6) == 0)
				vmb_blockmap_truncate(&m, rnd_below(&r, 600));
			else
				vmb_blockmap_set(&m, rnd_below(&r, 520), 1 + rnd_below(&r, 12),
						 (enum vmb_bstate)rnd_below(&r, 3));
		}
		CHECK(m.track == &dirty);
		for (size_t i = 0; i < dirty.n; i++) {
			uint64_t b = dirty.ext[i].start, end = b + dirty.ext[i].len, run;

			while (b < end) {
				enum vmb_bstate st = vmb_blockmap_get(&m, b, &run);

				if (run > end - b)
					run = end - b;
				vmb_blockmap_set(&mask, b, run, VMB_DATA);
				vmb_blockmap_set(&val, b, run, st);
				b += run;
			}
		}
		CHECK_RC(vmb_blockmap_patch(&out, &base, &mask, &val), 0);
		CHECK(vmb_blockmap_equal(&out, &m) && vmb_blockmap_check(&out) == 0);
		CHECK_EQ(out.data_blocks, m.data_blocks);
		CHECK_EQ(out.zero_blocks, m.zero_blocks);
		/* against setting val's extents one by one, with random masks */
		vmb_blockmap_destroy(&mask);
		vmb_blockmap_destroy(&val);
		vmb_blockmap_copy(&naive, &base);
		for (int i = 0; i < 10; i++) {
			uint64_t s = rnd_below(&r, 560), l = 1 + rnd_below(&r, 30);
			enum vmb_bstate st = (enum vmb_bstate)rnd_below(&r, 3);

			vmb_blockmap_set(&mask, s, l, VMB_DATA);
			vmb_blockmap_set(&val, s, l, st);
			vmb_blockmap_set(&naive, s, l, st);
		}
		CHECK_RC(vmb_blockmap_patch(&out, &base, &mask, &val), 0);
		CHECK(vmb_blockmap_equal(&out, &naive) && vmb_blockmap_check(&out) == 0);
		/* a map replaced wholesale forgets its tracker */
		vmb_blockmap_copy(&m, &base);
		CHECK(m.track == NULL);
		vmb_blockmap_destroy(&m);
		vmb_blockmap_destroy(&base);
		vmb_blockmap_destroy(&dirty);
		vmb_blockmap_destroy(&mask);
		vmb_blockmap_destroy(&val);
		vmb_blockmap_destroy(&naive);
		vmb_blockmap_destroy(&out);
	}
}

int main(void)
{
	RUN(test_empty);
	RUN(test_set_args);
	RUN(test_set_get);
	RUN(test_merge);
	RUN(test_split);
	RUN(test_next);
	RUN(test_truncate);
	RUN(test_block_max);
	RUN(test_copy_equal);
	RUN(test_check);
	RUN(test_enomem);
	RUN(test_random);
	RUN(test_track_patch);
	return harness_exit("test_blockmap");
}
