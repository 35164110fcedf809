/* snapshot.c - take, delete and list snapshots of a bundle (ops.h, manifest.h).
 *
 * Take: (the daemon pauses the bundle's writers) every regular file is frozen into a
 * layer (a small file without a base is copied into a new layer instead, so that
 * the live file stays plain), directories, symlinks and user.* xattrs are recorded,
 * then the manifest is written atomically: until its rename nothing refers to the
 * snapshot (a crash before leaves layers only gc collects; the live files, now
 * deltas over their frozen content, read the same). FIFOs and sockets are not part
 * of a snapshot.
 */
#include "config.h"
#include "base/fdio.h"
#include "store/ops_int.h"
#include "store/store.h"
#include "layer/layer.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct snap {
	struct vmb_opctx *c;
	struct vmb_manifest m;
	size_t toplen;        /* strlen(bundle) */
	unsigned frozen;
};

static void fill(struct vmb_mf_ent *e, char kind, const struct stat *st, const char *path)
{
	memset(e, 0, sizeof(*e));
	e->kind = kind;
	e->mode = kind == 'l' ? 0 : (uint32_t)(st->st_mode & 07777);
	e->uid = st->st_uid;
	e->gid = st->st_gid;
	e->mtime_sec = st->st_mtim.tv_sec;
	e->mtime_nsec = (uint32_t)st->st_mtim.tv_nsec;
	e->size = S_ISREG(st->st_mode) ? (uint64_t)st->st_size : 0;
	e->path = (char *)path;
}

static int snap_file(struct snap *sn, const struct vmb_tree_ent *e, const char *rel,
		     struct vmb_err *err)
{
	char id[VMB_BASE_ID_LEN + 1];
	struct vmb_mf_ent me;
	int fd, r, based;

	fd = openat(e->dfd, e->name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return vmb_err_sys(err, errno, "cannot open '%s'", e->msgpath);
	based = vmb_ops_base_of(fd, e->msgpath, id, err);
	if (based < 0) {
		close(fd);
		return based;
	}
	/* A plain file with other hard links is copied into its layer too: a freeze
	 * would make its other names the layer's data file. */
	if (!based && ((uint64_t)e->st->st_size <= VMB_CLONE_COPY_MAX || e->st->st_nlink > 1))
		r = vmb_layers_create_copy(sn->c->layers, fd, (uint64_t)e->st->st_size, id, err);
	else
		r = vmb_ops_freeze(sn->c, e->dfd, e->name, e->path, id, err);
	if (r < 0) {
		vmb_err_prefix(err, "cannot snapshot '%s'", e->msgpath);
		close(fd);
		return r;
	}
	vmb_op_step("snapshot", 1);
	fill(&me, 'f', e->st, rel);
	memcpy(me.id, id, sizeof(me.id));
	r = vmb_manifest_add(&sn->m, &me);
	if (r < 0)
		r = vmb_err_set(err, ENOMEM, "out of memory");
	else
		r = vmb_ops_xattrs_to_manifest(fd, &sn->m, e->msgpath, err);
	close(fd);
	return r;
}

static int snap_ent(void *arg, enum vmb_tree_event ev, const struct vmb_tree_ent *e,
		    struct vmb_err *err)
{
	struct snap *sn = arg;
	const char *rel = e->path + sn->toplen + 1;
	struct vmb_mf_ent me;
	char target[PATH_MAX];
	ssize_t n;
	int fd, r;

	if (ev == VMB_TREE_DIR_POST)
		return 0;
	if (ev == VMB_TREE_DIR) {
		fill(&me, 'd', e->st, rel);
		if (vmb_manifest_add(&sn->m, &me) < 0)
			return vmb_err_set(err, ENOMEM, "out of memory");
		fd = openat(e->dfd, e->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return vmb_err_sys(err, errno, "cannot open '%s'", e->msgpath);
		r = vmb_ops_xattrs_to_manifest(fd, &sn->m, e->msgpath, err);
		close(fd);
		return r;
	}
	if (S_ISREG(e->st->st_mode))
		return snap_file(sn, e, rel, err);
	if (S_ISLNK(e->st->st_mode)) {
		n = readlinkat(e->dfd, e->name, target, sizeof(target) - 1);
		if (n < 0)
			return vmb_err_sys(err, errno, "cannot read symbolic link '%s'",
					   e->msgpath);
		target[n] = '\0';
		fill(&me, 'l', e->st, rel);
		me.target = target;
		if (vmb_manifest_add(&sn->m, &me) < 0)
			return vmb_err_set(err, ENOMEM, "out of memory");
		return 0;
	}
	return 0;   /* FIFOs, sockets: not part of a snapshot */
}

int vmb_op_snapshot(struct vmb_opctx *c, const char *bundle, const char *name,
		    char **where, struct vmb_err *err)
{
	char defname[32], file[NAME_MAX + 2];
	struct snap sn = { 0 };
	struct vmb_mf_ent me;
	struct stat st;
	int bfd = -1, sfd = -1, paused = 0, r;

	*where = NULL;
	sn.c = c;
	r = vmb_ops_bundle_check(c, bundle, err);
	if (r < 0)
		return r;
	if (!name) {
		time_t now = time(NULL);
		struct tm tm;

		gmtime_r(&now, &tm);
		strftime(defname, sizeof(defname), "%Y%m%dT%H%M%SZ", &tm);
		name = defname;
	}
	r = vmb_snapshot_name_check(bundle, name, err);
	if (r < 0)
		return r;
	snprintf(file, sizeof(file), "%s@%s", bundle, name);
	sfd = vmb_ops_snapdir(c->store, 1, err);
	if (sfd < 0)
		return sfd;
	if (faccessat(sfd, file, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
		r = vmb_err_set(err, EEXIST, "snapshot '%s' exists", file);
		goto out;
	}
	bfd = openat(c->store->dirfd, bundle, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (bfd < 0 || fstat(bfd, &st) < 0) {
		r = vmb_err_sys(err, errno, "cannot open bundle '%s'", bundle);
		goto out;
	}
	if (c->pause) {
		r = c->pause(c->arg, bundle, err);
		if (r < 0)
			goto out;
		paused = 1;
	}
	sn.m.bundle = strdup(bundle);
	sn.m.created = (int64_t)time(NULL);
	sn.toplen = strlen(bundle);
	fill(&me, 'd', &st, ".");
	if (!sn.m.bundle || vmb_manifest_add(&sn.m, &me) < 0) {
		r = vmb_err_set(err, ENOMEM, "out of memory");
		goto out;
	}
	r = vmb_ops_xattrs_to_manifest(bfd, &sn.m, bundle, err);
	if (r == 0)
		r = vmb_tree_walk(bfd, bundle, snap_ent, &sn, err);
	if (r < 0)
		goto out;
	vmb_op_step("snapshot", 2);
	r = vmb_manifest_write(sfd, file, &sn.m, err);
	if (r < 0)
		goto out;
	vmb_op_step("snapshot", 3);
	*where = strdup(file);
	if (!*where)
		r = vmb_err_set(err, ENOMEM, "out of memory");
out:
	if (paused)
		c->resume(c->arg, bundle);
	vmb_manifest_free(&sn.m);
	if (bfd >= 0)
		close(bfd);
	if (sfd >= 0)
		close(sfd);
	return r;
}

int vmb_op_snapshot_delete(struct vmb_opctx *c, const char *spec, struct vmb_err *err)
{
	char *bundle, *name;
	int sfd, r;

	r = vmb_snapshot_split(spec, &bundle, &name, err);
	if (r < 0)
		return r;
	free(bundle);
	free(name);
	sfd = vmb_ops_snapdir(c->store, 0, err);
	if (sfd == -ENOENT)
		return vmb_err_set(err, ENOENT, "no snapshot '%s' in store '%s'", spec,
				   c->store->path);
	if (sfd < 0)
		return sfd;
	if (unlinkat(sfd, spec, 0) < 0)
		r = errno == ENOENT ?
			vmb_err_set(err, ENOENT, "no snapshot '%s' in store '%s'", spec,
				    c->store->path) :
			vmb_err_sys(err, errno, "cannot remove snapshot '%s'", spec);
	else if (vmb_fsync(sfd) < 0)
		r = vmb_err_sys(err, errno, "cannot remove snapshot '%s'", spec);
	close(sfd);
	return r;
}

void vmb_snapshot_list_free(struct vmb_snapshot_info *l, size_t n)
{
	size_t i;

	for (i = 0; l && i < n; i++)
		free(l[i].spec);
	free(l);
}

static int by_spec(const void *a, const void *b)
{
	return strcmp(((const struct vmb_snapshot_info *)a)->spec,
		      ((const struct vmb_snapshot_info *)b)->spec);
}

int vmb_op_snapshot_list(struct vmb_opctx *c, const char *bundle,
			 struct vmb_snapshot_info **out, size_t *n, struct vmb_err *err)
{
	struct vmb_snapshot_info *l = NULL;
	size_t cnt = 0, cap = 0, blen = bundle ? strlen(bundle) : 0;
	struct dirent *de;
	DIR *d;
	int sfd, r = 0;

	*out = NULL;
	*n = 0;
	if (bundle && (r = vmb_name_check(bundle, err)) < 0)
		return vmb_err_prefix(err, "bad bundle name");
	sfd = vmb_ops_snapdir(c->store, 0, err);
	if (sfd == -ENOENT)
		return 0;
	if (sfd < 0)
		return sfd;
	d = fdopendir(sfd);
	if (!d) {
		r = vmb_err_sys(err, errno, "cannot read '%s/%s/%s'", c->store->path,
				VMB_META_DIR, VMB_SNAPSHOTS_DIR);
		close(sfd);
		return r;
	}
	while ((de = readdir(d))) {
		struct vmb_manifest m;
		struct vmb_err e;
		const char *at = strrchr(de->d_name, '@');
		size_t i;

		if (de->d_name[0] == '.' || !at)
			continue;
		if (bundle && ((size_t)(at - de->d_name) != blen ||
			       strncmp(de->d_name, bundle, blen)))
			continue;
		if (cnt == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			struct vmb_snapshot_info *nl = realloc(l, ncap * sizeof(*nl));
			if (!nl) {
				r = vmb_err_set(err, ENOMEM, "out of memory");
				break;
			}
			l = nl;
			cap = ncap;
		}
		memset(&l[cnt], 0, sizeof(l[cnt]));
		l[cnt].spec = strdup(de->d_name);
		if (!l[cnt].spec) {
			r = vmb_err_set(err, ENOMEM, "out of memory");
			break;
		}
		if (vmb_manifest_read(dirfd(d), de->d_name, &m, &e) < 0) {
			vmb_log_msg(c->log, "%s", e.msg);
			l[cnt].damaged = 1;
		} else {
			l[cnt].created = m.created;
			for (i = 0; i < m.n; i++)
				if (m.ents[i].kind == 'f') {
					l[cnt].files++;
					l[cnt].logical += m.ents[i].size;
				}
			vmb_manifest_free(&m);
		}
		cnt++;
	}
	closedir(d);
	if (r < 0) {
		vmb_snapshot_list_free(l, cnt);
		return r;
	}
	if (cnt)
		qsort(l, cnt, sizeof(*l), by_spec);
	*out = l;
	*n = cnt;
	return 0;
}
