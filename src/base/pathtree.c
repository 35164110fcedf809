/* pathtree.c - records of a listed tree: xattrs and the tree rules (see pathtree.h). */
#include "config.h"
#include "base/pathtree.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int vmb_xattrs_add(struct vmb_xattr **x, size_t *n, const char *name, const void *value,
		   size_t len)
{
	struct vmb_xattr *nx = realloc(*x, (*n + 1) * sizeof(**x));

	if (!nx)
		return -ENOMEM;
	*x = nx;
	nx = &nx[*n];
	nx->name = strdup(name);
	nx->value = malloc(len + 1);
	if (!nx->name || !nx->value) {
		free(nx->name);
		free(nx->value);
		return -ENOMEM;
	}
	memcpy(nx->value, value, len);
	nx->value[len] = '\0';
	nx->len = len;
	(*n)++;
	return 0;
}

void vmb_xattrs_free(struct vmb_xattr *x, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(x[i].name);
		free(x[i].value);
	}
	free(x);
}

int vmb_xattrs_ok(const struct vmb_xattr *x, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strncmp(x[i].name, "user.", 5) || !x[i].name[5] ||
		    strlen(x[i].name) > 255 || x[i].len > 65536)
			return 0;
	return 1;
}

int vmb_xattr_reserved(const char *name)
{
	static const char *const names[] = {
		"lock", "stats", "remote",   /* the mount's virtual ones */
		"base", "reserved",          /* a user store's marks (image/xns.h) */
	};
	size_t i;

	if (strncmp(name, "user.vmbundlefs.", 16))
		return 0;
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(name + 16, names[i]))
			return 1;
	return 0;
}

void *vmb_grow(void *arr, size_t *cap, size_t n, size_t elsize)
{
	size_t ncap;
	void *na;

	if (n < *cap)
		return arr;
	ncap = *cap ? *cap * 2 : 16;
	na = realloc(arr, ncap * elsize);
	if (!na)
		return NULL;
	*cap = ncap;
	return na;
}

int vmb_path_target_dup(const char *path, const char *target, char **pathp,
			char **targetp)
{
	*pathp = strdup(path ? path : "");
	*targetp = target ? strdup(target) : NULL;
	if (!*pathp || (target && !*targetp)) {
		free(*pathp);
		free(*targetp);
		*pathp = *targetp = NULL;
		return -ENOMEM;
	}
	return 0;
}

static int by_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Where s is in the sorted v[0..n) (*found), or would go. */
static size_t sorted_pos(const char **v, size_t n, const char *s, int *found)
{
	size_t lo = 0, hi = n;

	*found = 0;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(v[mid], s);

		if (c == 0) {
			*found = 1;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int vmb_tree_check(const void *ents, size_t n,
		   const char *(*path_of)(const void *ents, size_t i, int *is_dir),
		   size_t *at, const char **dup)
{
	const char **dirs = NULL, **all = NULL;
	size_t i, nd = 0, pos;
	int r = 0, is_dir, found;

	*at = 0;
	*dup = NULL;
	if (n == 0 || strcmp(path_of(ents, 0, &is_dir), ".") || !is_dir)
		return VMB_TREE_NO_ROOT;
	dirs = malloc(n * sizeof(*dirs));
	all = malloc(n * sizeof(*all));
	if (!dirs || !all) {
		r = -ENOMEM;
		goto out;
	}
	for (i = 0; i < n; i++) {
		const char *p = path_of(ents, i, &is_dir), *slash = strrchr(p, '/');

		all[i] = p;
		*at = i;
		if (i > 0 && !strcmp(p, ".")) {
			r = VMB_TREE_DOT_TWICE;
			goto out;
		}
		if (i > 0) {
			char *parent = slash ? strndup(p, (size_t)(slash - p)) : strdup(".");

			if (!parent) {
				r = -ENOMEM;
				goto out;
			}
			sorted_pos(dirs, nd, parent, &found);
			free(parent);
			if (!found) {
				r = VMB_TREE_NO_PARENT;
				goto out;
			}
		}
		if (is_dir) {   /* kept sorted; a second listing is found below */
			pos = sorted_pos(dirs, nd, p, &found);
			if (!found) {
				memmove(dirs + pos + 1, dirs + pos, (nd - pos) * sizeof(*dirs));
				dirs[pos] = p;
				nd++;
			}
		}
	}
	qsort(all, n, sizeof(*all), by_str);
	for (i = 1; i < n; i++)
		if (!strcmp(all[i - 1], all[i])) {
			*dup = all[i];
			r = VMB_TREE_TWICE;
			goto out;
		}
out:
	free(dirs);
	free(all);
	return r;
}
