/* archive_path.c - safe paths for archive entries (see vmb_archive.h).
 *
 * What counts as hostile, lexically: an absolute path, a ".." component anywhere.
 * A symlink's target is never resolved: the import stores it as it is and never
 * follows it.
 * What the import checks on disk (archive_import.c): no entry is written through a
 * symlink (every component is opened with O_NOFOLLOW), no entry replaces an earlier
 * one (duplicates, kept in a vmb_pathset), hard links name an earlier regular file.
 */
#include "config.h"
#include "archive/vmb_archive.h"
#include "base/pathtree.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int vmb_apath_normalize(char *path, struct vmb_err *err)
{
	char *r = path, *w = path;

	/* No limit on the whole path: entries are made one name at a time (*at
	 * calls), as deep as a bundle can be made through the mount. */
	if (path[0] == '/')
		return vmb_err_set(err, EPERM, "entry '%s' has an absolute path", path);
	while (*r) {
		char *end = strchr(r, '/');
		size_t n = end ? (size_t)(end - r) : strlen(r);

		if (n == 0 || (n == 1 && r[0] == '.')) {
			/* empty or "." component: drop */
		} else if (n == 2 && r[0] == '.' && r[1] == '.') {
			return vmb_err_set(err, EPERM, "entry '%s' has a '..' component",
					   path);
		} else if (n > NAME_MAX) {
			return vmb_err_set(err, ENAMETOOLONG, "entry '%s' has a name of %zu "
					   "bytes (at most %d)", path, n, NAME_MAX);
		} else {
			if (w != path)
				*w++ = '/';
			memmove(w, r, n);
			w += n;
		}
		r += n;
		if (*r == '/')
			r++;
	}
	*w = '\0';
	return 0;
}

/* ---- a set of paths: open addressing, FNV-1a, grows at 1/2 load ---------------- */

struct pentry {
	char *path;
	unsigned type;
};

struct vmb_pathset {
	struct pentry *tab;
	size_t cap;     /* power of two */
	size_t n;
};

static uint64_t hash(const char *s)
{
	uint64_t h = UINT64_C(14695981039346656037);

	while (*s)
		h = (h ^ (unsigned char)*s++) * UINT64_C(1099511628211);
	return h;
}

int vmb_pathset_new(struct vmb_pathset **out)
{
	struct vmb_pathset *s = calloc(1, sizeof(*s));

	*out = NULL;
	if (!s)
		return -ENOMEM;
	s->cap = 64;
	s->tab = calloc(s->cap, sizeof(*s->tab));
	if (!s->tab) {
		free(s);
		return -ENOMEM;
	}
	*out = s;
	return 0;
}

void vmb_pathset_free(struct vmb_pathset *s)
{
	size_t i;

	if (!s)
		return;
	for (i = 0; s->tab && i < s->cap; i++)
		free(s->tab[i].path);
	free(s->tab);
	free(s);
}

static struct pentry *slot(const struct vmb_pathset *s, const char *path)
{
	size_t i = (size_t)hash(path) & (s->cap - 1);

	while (s->tab[i].path && strcmp(s->tab[i].path, path))
		i = (i + 1) & (s->cap - 1);
	return &s->tab[i];
}

static int grow(struct vmb_pathset *s)
{
	struct vmb_pathset n = { NULL, s->cap * 2, s->n };
	size_t i;

	n.tab = calloc(n.cap, sizeof(*n.tab));
	if (!n.tab)
		return -ENOMEM;
	for (i = 0; i < s->cap; i++)
		if (s->tab[i].path)
			*slot(&n, s->tab[i].path) = s->tab[i];
	free(s->tab);
	*s = n;
	return 0;
}

int vmb_pathset_add(struct vmb_pathset *s, const char *path, unsigned type,
		    unsigned *old_type)
{
	struct pentry *e;

	if ((s->n + 1) * 2 > s->cap && grow(s) < 0)
		return -ENOMEM;
	e = slot(s, path);
	if (e->path) {
		if (old_type)
			*old_type = e->type;
		return -EEXIST;
	}
	e->path = strdup(path);
	if (!e->path)
		return -ENOMEM;
	e->type = type;
	s->n++;
	return 0;
}

int vmb_pathset_set(struct vmb_pathset *s, const char *path, unsigned type)
{
	unsigned old;
	int r = vmb_pathset_add(s, path, type, &old);

	if (r == -EEXIST) {
		slot(s, path)->type = type;
		r = 0;
	}
	return r;
}

unsigned vmb_pathset_get(const struct vmb_pathset *s, const char *path)
{
	return slot(s, path)->type;
}

int vmb_archive_xattr_kept(const char *name)
{
	return !strncmp(name, "user.", 5) && name[5] && strlen(name) <= 255 &&
	       !vmb_xattr_reserved(name);
}
