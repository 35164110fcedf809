/* auxfile.c - aux-storage names and the in-use test (see auxfile.h). */
#include "config.h"
#include "auxfile.h"

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *const vmb_aux_default_patterns[] = {
	"nvram.bin", "AuxiliaryStorage", "efi_vars.fd", "*.nvram", "*VARS*.fd", NULL,
};

int vmb_aux_match(const char *base, const char *const *patterns)
{
	const char *const *p;

	for (p = patterns ? patterns : vmb_aux_default_patterns; *p; p++)
		if (fnmatch(*p, base, 0) == 0)
			return 1;
	return 0;
}

struct inuse_ctx {
	const char *const *patterns;
	char *who;
	size_t whosz;
	int found;
};

static int check_file(void *arg, const char *relpath, int fd, const struct stat *st)
{
	struct inuse_ctx *c = arg;
	const char *base = strrchr(relpath, '/');
	struct flock fl;

	base = base ? base + 1 : relpath;
	if (!vmb_aux_match(base, c->patterns))
		return 0;
	/* Would an exclusive lock of the whole file conflict with anyone's? The walk's
	 * fd is read-only, which F_OFD_GETLK accepts for either lock type. */
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	if (fcntl(fd, F_OFD_GETLK, &fl) < 0)
		return -errno;
	if (fl.l_type == F_UNLCK)
		return 0;
	c->found = 1;
	if (fl.l_pid > 0)
		snprintf(c->who, c->whosz, "pid %ld holds a lock on '%s'", (long)fl.l_pid, relpath);
	else
		snprintf(c->who, c->whosz, "'%s' is locked", relpath);
	return 1;   /* stop the walk */
}

int vmb_bundle_in_use(struct vmb_store *s, const char *name, const char *const *patterns,
		      char *who, size_t whosz, struct vmb_err *err)
{
	struct inuse_ctx c = { patterns, who, whosz, 0 };
	int r;

	if (whosz)
		who[0] = '\0';
	r = vmb_store_walk(s, name, check_file, &c, err);
	if (r < 0)
		return r;
	return c.found;
}
