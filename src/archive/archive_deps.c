/* archive_deps.c - what a bundle depends on outside itself (see vmb_archive.h).
 * Bundles have no bases or remote objects yet, so the list is always empty; this is
 * where base images and remote objects will be listed when they arrive. */
#include "config.h"
#include "archive/vmb_archive.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>

int vmb_bundle_deps(struct vmb_store *s, const char *name, char ***list, size_t *n,
		    struct vmb_err *err)
{
	struct stat st;
	int r;

	*list = NULL;
	*n = 0;
	r = vmb_name_check(name, err);
	if (r < 0)
		return r;
	if (vmb_store_reserved(name))
		return vmb_err_set(err, ENOENT, "no bundle '%s' in store '%s'", name, s->path);
	if (fstatat(s->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			return vmb_err_set(err, ENOENT, "no bundle '%s' in store '%s'", name,
					   s->path);
		return vmb_err_sys(err, errno, "cannot look up bundle '%s'", name);
	}
	if (!S_ISDIR(st.st_mode))
		return vmb_err_set(err, ENOENT, "no bundle '%s' in store '%s' ('%s' is not a "
				   "directory)", name, s->path, name);
	return 0;
}

void vmb_bundle_deps_free(char **list, size_t n)
{
	size_t i;

	for (i = 0; list && i < n; i++)
		free(list[i]);
	free(list);
}
