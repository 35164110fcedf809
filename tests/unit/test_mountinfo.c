/* test_mountinfo.c - the one reader of /proc/self/mountinfo (base/mountinfo.c):
 * fields split, octal escapes decoded (spaces, a newline, a backslash, a tab in a
 * mount point, a store's path), optional fields skipped up to "-", malformed lines
 * skipped, a callback stopping the reading, lines longer than PATH_MAX, and this
 * process's own mountinfo (the root file system is in it). */
#include "config.h"
#include "harness.h"
#include "base/mountinfo.h"

#include <errno.h>
#include <limits.h>
#include <unistd.h>

static const char fixture[] =
	"22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
	"not a mountinfo line\n"
	"61 22 0:52 / /mnt/my\\040vms rw,nosuid,nodev,relatime shared:30 master:2 - "
	"fuse.vmbundlefs /srv/vm\\040store rw,user_id=0,group_id=0\n"
	"62 22 0:53 / /mnt/a\\012b\\134c\\011d rw - fuse.vmbundlefs /srv/s2 rw\n"
	"63 22 0:54 /sub /mnt/plain rw - tmpfs tmpfs rw\n"
	"64 22 0:55 / /mnt/short rw shared:4\n"   /* no "-": skipped */
	"65 22 0:56 / /mnt/plain rw - tmpfs other rw";   /* no newline at the end */

struct seen {
	char mp[8][64], src[8][64], dev[8][16], fstype[8][32], root[8][16];
	int n, stop_at;
};

static int collect(void *arg, const struct vmb_mountinfo *m)
{
	struct seen *s = arg;

	if (s->n < 8) {
		snprintf(s->mp[s->n], sizeof(s->mp[0]), "%s", m->mountpoint);
		snprintf(s->src[s->n], sizeof(s->src[0]), "%s", m->source);
		snprintf(s->dev[s->n], sizeof(s->dev[0]), "%s", m->dev);
		snprintf(s->fstype[s->n], sizeof(s->fstype[0]), "%s", m->fstype);
		snprintf(s->root[s->n], sizeof(s->root[0]), "%s", m->root);
	}
	s->n++;
	return s->n == s->stop_at ? 42 : 0;
}

static void test_fixture(void)
{
	struct seen s = { .stop_at = -1 };
	FILE *f = fmemopen((void *)fixture, sizeof(fixture) - 1, "r");

	REQUIRE(f);
	CHECK_RC(vmb_mountinfo_each(f, collect, &s), 0);
	fclose(f);
	CHECK_EQ(s.n, 5);
	CHECK(!strcmp(s.mp[0], "/") && !strcmp(s.dev[0], "8:1") && !strcmp(s.fstype[0], "ext4"));
	CHECK(!strcmp(s.src[0], "/dev/sda1"));
	CHECK(!strcmp(s.mp[1], "/mnt/my vms"));          /* \040 */
	CHECK(!strcmp(s.src[1], "/srv/vm store"));
	CHECK(!strcmp(s.fstype[1], "fuse.vmbundlefs"));  /* after two optional fields */
	CHECK(!strcmp(s.dev[1], "0:52"));
	CHECK(!strcmp(s.mp[2], "/mnt/a\nb\\c\td"));       /* \012 \134 \011 */
	CHECK(!strcmp(s.src[2], "/srv/s2") && !strcmp(s.dev[2], "0:53"));
	CHECK(!strcmp(s.root[3], "/sub") && !strcmp(s.fstype[3], "tmpfs"));
	CHECK(!strcmp(s.mp[4], "/mnt/plain") && !strcmp(s.src[4], "other"));
}

static void test_stop(void)
{
	struct seen s = { .stop_at = 2 };
	FILE *f = fmemopen((void *)fixture, sizeof(fixture) - 1, "r");

	REQUIRE(f);
	CHECK_RC(vmb_mountinfo_each(f, collect, &s), 42);
	fclose(f);
	CHECK_EQ(s.n, 2);
}

static void test_parse_edges(void)
{
	struct vmb_mountinfo m;
	char l1[] = "1 2 3:4 / /x rw - t s o\n", l2[] = "1 2 3:4 / /x rw -", l3[] = "",
	     l4[] = "1 2 3:4 / /a\\0400\\9\\400\\04 rw - t s", l5[] = "1 2 3:4 / /x";

	CHECK_RC(vmb_mountinfo_parse(l1, &m), 0);
	CHECK(!strcmp(m.mountpoint, "/x") && !strcmp(m.source, "s"));
	CHECK_RC(vmb_mountinfo_parse(l2, &m), -EINVAL);   /* no type, no source */
	CHECK_RC(vmb_mountinfo_parse(l3, &m), -EINVAL);
	CHECK_RC(vmb_mountinfo_parse(l5, &m), -EINVAL);
	/* a backslash not followed by three octal digits (first 0-3) stays */
	CHECK_RC(vmb_mountinfo_parse(l4, &m), 0);
	CHECK(!strcmp(m.mountpoint, "/a 0\\9\\400\\04"));
}

/* A line longer than any fixed buffer (the old readers' 2 * PATH_MAX). */
static void test_long_line(void)
{
	size_t n = 3 * PATH_MAX;
	char *text = malloc(n + 128), *p;
	struct seen s = { .stop_at = -1 };
	FILE *f;

	REQUIRE(text);
	p = text + sprintf(text, "70 22 0:60 / /mnt/long rw - fuse.vmbundlefs /");
	memset(p, 'x', n);
	strcpy(p + n, " rw\n71 22 0:61 / /after rw - tmpfs t rw\n");
	f = fmemopen(text, strlen(text), "r");
	REQUIRE(f);
	CHECK_RC(vmb_mountinfo_each(f, collect, &s), 0);
	fclose(f);
	CHECK_EQ(s.n, 2);
	CHECK(!strcmp(s.mp[0], "/mnt/long") && !strcmp(s.mp[1], "/after"));
	free(text);
}

/* This process's own: / is mounted; its device found; back to its mount point. */
static void test_self(void)
{
	char dev[64], mp[PATH_MAX];

	if (access("/proc/self/mountinfo", R_OK) != 0)
		return;
	CHECK_RC(vmb_mountinfo_dev_of("/", dev, sizeof(dev)), 0);
	CHECK(strchr(dev, ':') != NULL);
	CHECK_RC(vmb_mountinfo_mountpoint_of(dev, mp, sizeof(mp)), 0);
	CHECK_RC(vmb_mountinfo_dev_of("/no/such/mount/point", dev, sizeof(dev)), -ENOENT);
	CHECK_RC(vmb_mountinfo_mountpoint_of("999999:999999", mp, sizeof(mp)), -ENOENT);
	CHECK_RC(vmb_mountinfo_dev_of("/", dev, 2), -ENAMETOOLONG);
}

int main(void)
{
	RUN(test_fixture);
	RUN(test_stop);
	RUN(test_parse_edges);
	RUN(test_long_line);
	RUN(test_self);
	return harness_exit("test_mountinfo");
}
