/* mountinfo.c - the one reader of /proc/self/mountinfo (mountinfo.h). */
#include "config.h"
#include "base/mountinfo.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void vmb_mountinfo_unescape(char *s)
{
	char *w = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*w++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*w++ = *s;
		}
	}
	*w = '\0';
}

/* The next field of *p (separated by single spaces), NUL-terminated in place; NULL
 * when there is none. */
static char *field(char **p)
{
	char *s = *p, *e;

	if (!s || !*s)
		return NULL;
	e = strchr(s, ' ');
	if (e) {
		*e = '\0';
		*p = e + 1;
	} else {
		*p = NULL;
	}
	return s;
}

int vmb_mountinfo_parse(char *line, struct vmb_mountinfo *m)
{
	char *p = line, *f[5], *opt, *fstype, *source;
	size_t len = strlen(line);
	int i;

	if (len && line[len - 1] == '\n')
		line[len - 1] = '\0';
	memset(m, 0, sizeof(*m));
	for (i = 0; i < 5; i++)   /* ID, PARENT, MAJOR:MINOR, ROOT, MOUNTPOINT */
		if (!(f[i] = field(&p)))
			return -EINVAL;
	if (!field(&p))           /* OPTIONS */
		return -EINVAL;
	do                        /* optional fields, up to "-" */
		opt = field(&p);
	while (opt && strcmp(opt, "-"));
	if (!opt || !(fstype = field(&p)) || !(source = field(&p)))
		return -EINVAL;
	vmb_mountinfo_unescape(f[3]);
	vmb_mountinfo_unescape(f[4]);
	vmb_mountinfo_unescape(fstype);
	vmb_mountinfo_unescape(source);
	m->dev = f[2];
	m->root = f[3];
	m->mountpoint = f[4];
	m->fstype = fstype;
	m->source = source;
	return 0;
}

int vmb_mountinfo_each(FILE *f, vmb_mountinfo_fn fn, void *arg)
{
	FILE *own = NULL;
	char *line = NULL;
	size_t cap = 0;
	int r = 0;

	if (!f) {
		f = own = fopen("/proc/self/mountinfo", "re");
		if (!f)
			return -errno;
	}
	errno = 0;
	while (getline(&line, &cap, f) >= 0) {
		struct vmb_mountinfo m;

		if (vmb_mountinfo_parse(line, &m) == 0 && (r = fn(arg, &m)) != 0)
			break;
		errno = 0;
	}
	if (!r && ferror(f))
		r = errno ? -errno : -EIO;
	free(line);
	if (own)
		fclose(own);
	return r;
}

struct want {
	const char *key;
	char *out;
	size_t size;
	int r;                     /* -ENOENT until found */
};

static int put(struct want *w, const char *val)
{
	size_t l = strlen(val);

	if (l >= w->size) {
		w->r = -ENAMETOOLONG;
		return 0;
	}
	memcpy(w->out, val, l + 1);
	w->r = 0;
	return 0;
}

static int dev_of(void *arg, const struct vmb_mountinfo *m)
{
	struct want *w = arg;

	return strcmp(m->mountpoint, w->key) ? 0 : put(w, m->dev);   /* the last wins */
}

static int mountpoint_of(void *arg, const struct vmb_mountinfo *m)
{
	struct want *w = arg;

	if (strcmp(m->dev, w->key))
		return 0;
	put(w, m->mountpoint);
	return 1;
}

static int find(const char *key, char *out, size_t size, vmb_mountinfo_fn fn)
{
	struct want w = { key, out, size, -ENOENT };
	int r;

	if (size)
		out[0] = '\0';
	r = vmb_mountinfo_each(NULL, fn, &w);
	if (r < 0)
		return r;
	if (w.r < 0 && size)
		out[0] = '\0';
	return w.r;
}

int vmb_mountinfo_dev_of(const char *mountpoint, char *dev, size_t size)
{
	return find(mountpoint, dev, size, dev_of);
}

int vmb_mountinfo_mountpoint_of(const char *dev, char *mp, size_t size)
{
	return find(dev, mp, size, mountpoint_of);
}
