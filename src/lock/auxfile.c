/* auxfile.c - aux-storage names and the in-use test (see auxfile.h). */
#include "config.h"
#include "lock/auxfile.h"

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
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
	int aux_only;
	struct vmb_store *s;
	struct vmb_inuse *u;
	struct flocked { dev_t dev; ino_t ino; } *fl;   /* flock locks in /proc/locks */
	size_t nfl;
};

/* flock locks are separate from fcntl ones and F_OFD_GETLK does not see them; the
 * kernel's list in /proc/locks does (testing by taking one could make a VM's own
 * non-blocking flock fail). Lines: "N: FLOCK  ADVISORY  WRITE pid MAJ:MIN:INO 0 EOF",
 * with MAJ and MIN in hex. Read once per bundle. */
static void load_flocks(struct inuse_ctx *c)
{
	char line[256], kind[16];
	unsigned int maj, min;
	unsigned long long ino;
	size_t cap = 0;
	FILE *f = fopen("/proc/locks", "re");

	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		struct flocked *nf;
		if (sscanf(line, "%*s %15s %*s %*s %*s %x:%x:%llu", kind, &maj, &min, &ino) != 4 &&
		    sscanf(line, "%*s %*s %15s %*s %*s %*s %x:%x:%llu", kind, &maj, &min, &ino) != 4)
			continue;
		if (strcmp(kind, "FLOCK"))
			continue;
		if (c->nfl == cap) {
			cap = cap ? cap * 2 : 16;
			nf = realloc(c->fl, cap * sizeof(*nf));
			if (!nf)
				break;
			c->fl = nf;
		}
		c->fl[c->nfl].dev = makedev(maj, min);
		c->fl[c->nfl].ino = (ino_t)ino;
		c->nfl++;
	}
	fclose(f);
}

static int flock_held(const struct inuse_ctx *c, const struct stat *st)
{
	size_t i;

	for (i = 0; i < c->nfl; i++)
		if (c->fl[i].ino == st->st_ino && c->fl[i].dev == st->st_dev)
			return 1;
	return 0;
}

static int check_file(void *arg, const char *relpath, int fd, const struct stat *st)
{
	struct inuse_ctx *c = arg;
	const char *base = strrchr(relpath, '/');
	struct vmb_holder h;
	struct flock fl;

	base = base ? base + 1 : relpath;
	if (c->aux_only && !vmb_aux_match(base, c->patterns))
		return 0;
	/* Would an exclusive lock of the whole file conflict with anyone's? */
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	if (fcntl(fd, F_OFD_GETLK, &fl) < 0)
		return -errno;
	if (fl.l_type == F_UNLCK && !flock_held(c, st))
		return 0;
	/* A lock a mount took names its holder in the registry; it makes the bundle in
	 * use only if that mount says so (the bundle's record, checked before). */
	if (!(fl.l_type != F_UNLCK && fl.l_pid > 0) &&
	    vmb_holders_find(c->s->metafd, (uint64_t)st->st_ino, 1, 0, 0, &h))
		return 0;
	memset(c->u, 0, sizeof(*c->u));
	c->u->ino = (uint64_t)st->st_ino;
	snprintf(c->u->path, sizeof(c->u->path), "%s", relpath);
	if (fl.l_type != F_UNLCK && fl.l_pid > 0) {
		c->u->known = 1;
		c->u->h.pid = fl.l_pid;
		c->u->h.type = fl.l_type == F_WRLCK ? 'w' : 'r';
		vmb_comm_of(fl.l_pid, c->u->h.comm);
	}
	return 1;   /* stop the walk */
}

void vmb_inuse_describe(const struct vmb_inuse *u, char *buf, size_t size)
{
	if (u->known)
		snprintf(buf, size, "pid %ld (%s) holds a lock on '%s'", (long)u->h.pid,
			 u->h.comm, u->path);
	else
		snprintf(buf, size, "'%s' is locked", u->path);
}

int vmb_inuse_rule_parse(const char *word, int *aux_only, struct vmb_err *err)
{
	if (!strcmp(word, "any"))
		*aux_only = 0;
	else if (!strcmp(word, "aux"))
		*aux_only = 1;
	else
		return vmb_err_set(err, EINVAL, "unknown in-use rule '%s' (expected 'any': any "
				   "lock in a bundle, or 'aux': locks on aux-storage files)", word);
	return 0;
}

int vmb_inuse_rule_load(struct vmb_store *s, int *aux_only, struct vmb_err *err)
{
	char buf[256], word[32], *line, *save = NULL;
	int fd, found = 0, r;
	ssize_t n;

	*aux_only = 0;
	fd = openat(s->metafd, VMB_INUSE_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : vmb_err_sys(err, errno, "cannot read %s/%s of "
							 "store '%s'", VMB_META_DIR,
							 VMB_INUSE_FILE, s->path);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return vmb_err_sys(err, errno, "cannot read %s/%s", VMB_META_DIR, VMB_INUSE_FILE);
	buf[n] = '\0';
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char extra[2];
		while (*line == ' ' || *line == '\t')
			line++;
		if (!*line || *line == '#')
			continue;
		if (sscanf(line, "rule %31s %1s", word, extra) != 1 || found)
			return vmb_err_set(err, EINVAL, "store '%s': %s/%s: expected one line "
					   "'rule any' or 'rule aux', found '%.64s'", s->path,
					   VMB_META_DIR, VMB_INUSE_FILE, line);
		r = vmb_inuse_rule_parse(word, aux_only, err);
		if (r < 0)
			return vmb_err_prefix(err, "store '%s': %s/%s", s->path, VMB_META_DIR,
					      VMB_INUSE_FILE);
		found = 1;
	}
	if (!found)
		return vmb_err_set(err, EINVAL, "store '%s': %s/%s is empty: expected one line "
				   "'rule any' or 'rule aux'", s->path, VMB_META_DIR,
				   VMB_INUSE_FILE);
	return 0;
}

int vmb_bundle_holder(struct vmb_store *s, const char *name, const char *const *patterns,
		      struct vmb_inuse *u, struct vmb_err *err)
{
	struct inuse_ctx c = { patterns, 0, s, u, NULL, 0 };
	char **own = NULL;
	struct stat st;
	int r;

	memset(u, 0, sizeof(*u));
	r = vmb_inuse_rule_load(s, &c.aux_only, err);
	if (r < 0)
		return r;
	if (fstatat(s->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return vmb_err_sys(err, errno, "cannot open bundle '%s'", name);
	if (!S_ISDIR(st.st_mode))
		return vmb_err_set(err, ENOENT, "'%s' is not a bundle", name);
	/* in use through a mount: its record, one small directory */
	if (vmb_holders_bundle_find(s->metafd, (uint64_t)st.st_ino, 0, &u->h, u->path,
				    sizeof(u->path))) {
		u->known = 1;
		return 1;
	}
	if (!patterns) {
		r = vmb_aux_load(s, &own, err);
		if (r < 0)
			return r;
		c.patterns = (const char *const *)own;
	}
	load_flocks(&c);
	r = vmb_store_walk(s, name, check_file, &c, err);
	free(c.fl);
	vmb_aux_free(own);
	return r < 0 ? r : r > 0;
}
int vmb_bundle_in_use(struct vmb_store *s, const char *name, const char *const *patterns,
		      char *who, size_t whosz, struct vmb_err *err)
{
	struct vmb_inuse u;
	int r = vmb_bundle_holder(s, name, patterns, &u, err);

	if (whosz)
		who[0] = '\0';
	if (r > 0 && whosz)
		vmb_inuse_describe(&u, who, whosz);
	return r;
}

void vmb_aux_free(char **patterns)
{
	char **p;

	if (!patterns)
		return;
	for (p = patterns; *p; p++)
		free(*p);
	free(patterns);
}

/* Split text at any of seps into a NULL-terminated list, skipping empty items and
 * lines starting with '#'. */
static int split_list(const char *text, const char *seps, char ***out, struct vmb_err *err)
{
	char **list = NULL, *copy, *tok, *save = NULL;
	size_t n = 0;

	*out = NULL;
	copy = strdup(text);
	if (!copy)
		return vmb_err_set(err, ENOMEM, "out of memory");
	for (tok = strtok_r(copy, seps, &save); tok; tok = strtok_r(NULL, seps, &save)) {
		char **nl;
		while (*tok == ' ' || *tok == '\t')
			tok++;
		if (!*tok || *tok == '#')
			continue;
		nl = realloc(list, (n + 2) * sizeof(*nl));
		if (nl) {
			list = nl;
			list[n] = strdup(tok);
		}
		if (!nl || !list[n]) {
			if (list)
				list[n] = NULL;
			vmb_aux_free(list);
			free(copy);
			return vmb_err_set(err, ENOMEM, "out of memory");
		}
		list[++n] = NULL;
	}
	free(copy);
	if (!list)
		return vmb_err_set(err, EINVAL, "no aux-storage patterns in '%s'", text);
	*out = list;
	return 0;
}

int vmb_aux_parse(const char *spec, char ***out, struct vmb_err *err)
{
	return split_list(spec, ":", out, err);
}

int vmb_aux_load(struct vmb_store *s, char ***out, struct vmb_err *err)
{
	char buf[4096];
	ssize_t n;
	int fd, r;

	*out = NULL;
	fd = openat(s->metafd, VMB_AUX_FILE, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : vmb_err_sys(err, errno, "cannot read %s/%s of "
							 "store '%s'", VMB_META_DIR,
							 VMB_AUX_FILE, s->path);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return vmb_err_sys(err, errno, "cannot read %s/%s", VMB_META_DIR, VMB_AUX_FILE);
	buf[n] = '\0';
	r = split_list(buf, "\n", out, err);
	if (r < 0)
		vmb_err_prefix(err, "store '%s'", s->path);
	return r;
}
