/* fsck.c - check and repair a store (see fsck.h). */
#include "config.h"
#include "remote/remote.h"
#include "store/fsck.h"
#include "store/store.h"
#include "store/ops_int.h"
#include "map/sidecar.h"
#include "image/image.h"
#include "image/resrec.h"
#include "layer/layer.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct fsck_ctx {
	struct vmb_store *s;
	int repair;
	const struct vmb_log *say;
	struct vmb_fsck_result *res;
	struct vmb_layers *layers;
	uint64_t *inos;          /* inode numbers of the files seen */
	size_t ninos, cap;
	int nomem;
	int noswept;             /* a bundle could not be walked: keep every map */
};

static int remember_ino(struct fsck_ctx *c, uint64_t ino)
{
	if (c->ninos == c->cap) {
		size_t ncap = c->cap ? c->cap * 2 : 256;
		uint64_t *n = realloc(c->inos, ncap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		c->inos = n;
		c->cap = ncap;
	}
	c->inos[c->ninos++] = ino;
	return 0;
}

/* 1 if the backing file holds a non-zero byte in any block the map calls ZERO. */
static int map_hides_data(int fd, const struct vmb_blockmap *map,
			  const struct vmb_blockmap *scan, uint64_t size)
{
	static const unsigned char zeros[VMB_BLOCK_SIZE];
	unsigned char buf[VMB_BLOCK_SIZE];
	uint64_t blk = 0, nblocks = (size + VMB_BLOCK_SIZE - 1) / VMB_BLOCK_SIZE, run;

	while (blk < nblocks) {
		if (vmb_blockmap_next(scan, blk, VMB_M_DATA, &blk) < 0 || blk >= nblocks)
			return 0;
		vmb_blockmap_get(scan, blk, &run);
		for (; run > 0 && blk < nblocks; run--, blk++) {
			ssize_t n;
			if (vmb_blockmap_get(map, blk, NULL) == VMB_DATA)
				continue;
			n = pread(fd, buf, sizeof(buf), (off_t)(blk * VMB_BLOCK_SIZE));
			if (n > 0 && memcmp(buf, zeros, (size_t)n) != 0)
				return 1;
		}
	}
	return 0;
}

/* Give it back: a truncate to the file's own size (through a writable descriptor
 * of the same file). 0 or -errno. */
static int trim_past_eof(int fd, uint64_t size)
{
	char proc[64];
	int wfd, r = 0;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	wfd = open(proc, O_WRONLY | O_CLOEXEC);
	if (wfd < 0)
		return -errno;
	if (ftruncate(wfd, (off_t)size) < 0)
		r = -errno;
	close(wfd);
	return r;
}

static void report(struct fsck_ctx *c, const char *path, const char *what, const char *why,
		   int fixed)
{
	c->res->problems++;
	if (fixed)
		c->res->repaired++;
	vmb_log_msg(c->say, "%s: %s%s%s%s", path, what, why ? " (" : "", why ? why : "",
		    why ? ")" : "");
}

/* Space a daemon reserved past the end of the file and recorded (resrec.h):
 * reported, and with repair given back, the record removed. The truncate changes the
 * file's times, so a map that was current is saved again with the new stamp (a
 * stale one is rebuilt by the checks that follow). */
static void fix_past_eof(struct fsck_ctx *c, const char *path, int fd, uint64_t size)
{
	static const char why[] = "a daemon was killed while the file was written";
	struct vmb_stamp now, saved;
	struct vmb_blockmap map;
	char name[VMB_SIDECAR_NAME_MAX];
	struct vmb_err e = {0};
	int current, r;

	if (!c->repair) {
		report(c, path, "space reserved past the end of the file", why, 0);
		return;
	}
	vmb_blockmap_init(&map);
	current = vmb_stamp_fd(fd, &now, &e) == 0;
	if (current) {
		vmb_sidecar_name(now.ino, name);
		current = vmb_sidecar_read(c->s->mapfd, name, &map, &saved, &e) == 0 &&
			  vmb_stamp_equal(&now, &saved);
	}
	r = trim_past_eof(fd, size);
	if (r == 0)
		r = vmb_resrec_clear(fd);
	if (r < 0) {
		report(c, path, "cannot give back space reserved past its end", strerror(-r), 0);
	} else {
		report(c, path, "gave back space reserved past the end of the file", why, 1);
		if (current && (vmb_stamp_fd(fd, &now, &e) < 0 ||
				vmb_sidecar_write(c->s->mapfd, name, &map, &now, 1, &e) < 0))
			report(c, path, "cannot save map", e.msg, 0);
	}
	vmb_blockmap_destroy(&map);
}

/* ---- the metadata's modes --------------------------------------------------------- */

/* What an import stages (VMB_STAGING_DIR, vmb_archive.h) carries the archive's own
 * modes; the staging directory itself is checked, not what is in it. */
static const char staging_dir[] = "staging";

/* The control channel's sockets (vfs/ctl.h) are reached by name through
 * .vmbundlefs and run/, which a mount gives o+x (0711), and only that. */
static const char run_dir[] = "run";

static void fix_mode(struct fsck_ctx *c, int dfd, const char *name, const char *path,
		     const struct stat *st, mode_t allowed)
{
	mode_t want = S_ISDIR(st->st_mode) ? VMB_META_DIR_MODE : VMB_META_FILE_MODE;
	char why[96];

	if (!(st->st_mode & 077 & ~allowed))
		return;
	snprintf(why, sizeof(why), "mode %04o lets other users in; metadata is the "
		 "owner's alone", (unsigned)(st->st_mode & 07777));
	if (!c->repair)
		report(c, path, "mode needs fixing", why, 0);
	else if ((dfd < 0 ? fchmod(c->s->metafd, want) : fchmodat(dfd, name, want, 0)) < 0)
		report(c, path, "cannot fix mode", strerror(errno), 0);
	else
		report(c, path, want == VMB_META_DIR_MODE ? "set mode 0700" : "set mode 0600",
		       why, 1);
}

/* A layer's data file is read-only (VMB_LAYER_DATA_MODE): a crash between a
 * freeze's rename and its seal (vmb_layers_seal) leaves the file's own mode. */
static int layer_data_mode(struct fsck_ctx *c, const struct vmb_tree_ent *e)
{
	static const char dir[] = VMB_META_DIR "/" VMB_LAYERS_DIR "/";
	size_t nl = strlen(e->name);
	char why[96];

	if (e->depth != 2 || !S_ISREG(e->st->st_mode) || strncmp(e->path, dir, sizeof(dir) - 1) ||
	    nl < 5 || strcmp(e->name + nl - 5, ".data"))
		return 0;
	/* Another name still on it: a freeze cut short before its rename, the inode
	 * still a bundle's file, whose mode must stay (check_layers removes it). */
	if ((e->st->st_mode & 07777) == VMB_LAYER_DATA_MODE || e->st->st_nlink > 1)
		return 1;
	snprintf(why, sizeof(why), "mode %04o: a crash cut a freeze short before it was made "
		 "read-only", (unsigned)(e->st->st_mode & 07777));
	if (!c->repair)
		report(c, e->msgpath, "layer data is not read-only", why, 0);
	else if (fchmodat(e->dfd, e->name, VMB_LAYER_DATA_MODE, 0) < 0)
		report(c, e->msgpath, "cannot make the layer data read-only", strerror(errno), 0);
	else
		report(c, e->msgpath, "set mode 0400", why, 1);
	return 1;
}

static int meta_mode(void *arg, enum vmb_tree_event ev, const struct vmb_tree_ent *e,
		     struct vmb_err *err)
{
	(void)err;
	if (ev == VMB_TREE_DIR_POST || S_ISLNK(e->st->st_mode))
		return 0;
	if (layer_data_mode(arg, e))
		return 0;
	if (ev == VMB_TREE_DIR && e->depth == 1 && !strcmp(e->name, run_dir)) {
		fix_mode(arg, e->dfd, e->name, e->msgpath, e->st, 011);
		return VMB_TREE_SKIP;   /* sockets, 0666 */
	}
	fix_mode(arg, e->dfd, e->name, e->msgpath, e->st, 0);
	if (ev == VMB_TREE_DIR && e->depth == 1 && !strcmp(e->name, staging_dir))
		return VMB_TREE_SKIP;
	return 0;
}

/* .vmbundlefs and everything in it: no access for group or others. */
static int check_meta_modes(struct fsck_ctx *c, struct vmb_err *err)
{
	struct stat st;

	if (fstat(c->s->metafd, &st) < 0)
		return vmb_err_sys(err, errno, "cannot stat '%s/%s'", c->s->path, VMB_META_DIR);
	fix_mode(c, -1, NULL, VMB_META_DIR, &st, 011);
	return vmb_tree_walk(c->s->metafd, VMB_META_DIR, meta_mode, c, err);
}

/* ---- files ------------------------------------------------------------------------ */

/* A reservation record (a daemon was killed while it had space reserved past the
 * end of the file): the space is given back only when the record covers every
 * block allocated past the end; blocks past the record's end are someone's own
 * preallocation (fallocate --keep-size), which is never undone, and then the
 * record alone goes. Without a record, space past the end is left alone. */
static void check_reservation(struct fsck_ctx *c, const char *path, int fd, uint64_t size)
{
	uint64_t end, eof = (size + VMB_BLOCK_SIZE - 1) / VMB_BLOCK_SIZE * VMB_BLOCK_SIZE;
	const char *what, *why;
	int r = vmb_resrec_get(fd, &end);

	if (r == 0)
		return;
	if (r < 0) {
		report(c, path, "cannot read its reservation record", strerror(-r), 0);
		return;
	}
	if (!vmb_allocated_from(fd, eof)) {
		what = c->repair ? "removed a reservation record" : "reservation record needs "
			"removing";
		why = "nothing is reserved past the end of the file";
	} else if (end <= eof || vmb_allocated_from(fd, (end + VMB_BLOCK_SIZE - 1) /
						    VMB_BLOCK_SIZE * VMB_BLOCK_SIZE)) {
		what = c->repair ? "kept the space past the end of the file, removed its "
			"reservation record" : "space past the end of the file is kept; its "
			"reservation record needs removing";
		why = "blocks past the reservation are someone's own preallocation";
	} else {
		fix_past_eof(c, path, fd, size);
		return;
	}
	if (!c->repair) {
		report(c, path, what, why, 0);
		return;
	}
	r = vmb_resrec_clear(fd);
	if (r < 0)
		report(c, path, "cannot remove its reservation record", strerror(-r), 0);
	else
		report(c, path, what, why, 1);
}

/* A delta with a base (LAYERS.md): its map by the rebuild rule of a layered file;
 * a base that cannot be opened is named; a map rebuilt without any committed map
 * ("lost") is reported, and with repair saved as rebuilt (the best there is). */
static void check_layered(struct fsck_ctx *c, const char *relpath, int fd,
			  const char *id)
{
	struct vmb_base_resolver res = vmb_layers_resolver(c->layers);
	struct vmb_image_baseinfo bi;
	struct vmb_blockmap map;
	struct vmb_baseref ref;
	struct vmb_stamp now;
	char name[VMB_SIDECAR_NAME_MAX];
	struct vmb_err e = {0};
	uint64_t size;
	int rebuilt = 0, r;
	const char *what;

	vmb_blockmap_init(&map);
	memset(&bi, 0, sizeof(bi));
	r = vmb_image_load_map2(fd, c->s->mapfd, relpath, &res, &map, &size, &rebuilt, &bi, &e);
	if (r < 0) {
		report(c, relpath, "cannot be read", e.msg, 0);
		goto out;
	}
	if (!rebuilt && !bi.lost)
		goto out;
	what = bi.lost ? "map of a layered file was lost: blocks zeroed since its last "
		"snapshot read their base again" :
		bi.older ? "map of a layered file was older than the file (a change cut "
		"short by a crash, or a damaged journal): blocks zeroed since its last "
		"commit read their base again" : "the map was older than the file";
	if (!c->repair) {
		report(c, relpath, "map needs rebuilding", what, 0);
		goto out;
	}
	memcpy(ref.id, id, sizeof(ref.id));
	ref.limit = bi.limit;
	r = vmb_stamp_fd(fd, &now, &e);
	if (r == 0) {
		vmb_sidecar_name(now.ino, name);
		r = vmb_sidecar_write2(c->s->mapfd, name, &map, &now, &ref, 1, &e);
	}
	if (r < 0)
		report(c, relpath, "cannot rebuild map", e.msg, 0);
	else
		report(c, relpath, "rebuilt map", what, 1);
out:
	vmb_base_put(bi.base);
	vmb_blockmap_destroy(&map);
}

static int check_file(void *arg, const char *relpath, int fd, const struct stat *st)
{
	struct fsck_ctx *c = arg;
	struct vmb_blockmap map, scan;
	struct vmb_stamp now, saved;
	char name[VMB_SIDECAR_NAME_MAX], why[VMB_ERR_MAX];
	struct vmb_err e = {0};
	uint64_t last;
	int r, bad = 0, unfixable = 0;

	c->res->files++;
	vmb_blockmap_init(&map);
	vmb_blockmap_init(&scan);
	if (remember_ino(c, (uint64_t)st->st_ino) < 0) {
		c->nomem = 1;
		return -ENOMEM;
	}
	why[0] = '\0';
	check_reservation(c, relpath, fd, (uint64_t)st->st_size);
	{
		char id[VMB_BASE_ID_LEN + 1];

		r = vmb_ops_base_of(fd, relpath, id, &e);
		if (r < 0) {
			report(c, relpath, "cannot be checked", e.msg, 0);
			goto out;
		}
		if (r > 0) {
			check_layered(c, relpath, fd, id);
			goto out;
		}
	}
	r = vmb_stamp_fd(fd, &now, &e);
	if (r == 0)
		r = vmb_sidecar_scan(fd, now.size, &scan, &e);
	if (r < 0) {
		report(c, relpath, "cannot be checked", e.msg, 0);
		goto out;
	}
	vmb_sidecar_name(now.ino, name);
	r = vmb_sidecar_read(c->s->mapfd, name, &map, &saved, &e);
	if (r == -ENOENT) {
		bad = 1;
		snprintf(why, sizeof(why), "it had no map");
	} else if (r == -EPROTONOSUPPORT) {
		unfixable = 1;
		snprintf(why, sizeof(why), "%s", e.msg);
	} else if (r < 0) {
		bad = 1;
		snprintf(why, sizeof(why), "%s", e.msg);
	} else if (!vmb_stamp_equal(&now, &saved)) {
		bad = 1;
		snprintf(why, sizeof(why), "the map was older than the file");
	} else if (map_hides_data(fd, &map, &scan, now.size)) {
		bad = 1;
		snprintf(why, sizeof(why), "the map called blocks zero that hold data");
	} else if (vmb_blockmap_next(&map, (now.size + VMB_BLOCK_SIZE - 1) / VMB_BLOCK_SIZE,
				     VMB_M_DATA | VMB_M_ZERO, &last) == 0) {
		/* opens fail on it (EIO): a map saved under the stamp of a file cut
		 * short by someone else while it was open */
		bad = 1;
		snprintf(why, sizeof(why), "the map has blocks past the end of the file");
	}
	if (unfixable) {
		report(c, relpath, "map left alone", why, 0);
		goto out;
	}
	if (!bad)
		goto out;
	if (!c->repair) {
		report(c, relpath, "map needs rebuilding", why, 0);
		goto out;
	}
	r = vmb_sidecar_write(c->s->mapfd, name, &scan, &now, 1, &e);
	if (r < 0)
		report(c, relpath, "cannot rebuild map", e.msg, 0);
	else
		report(c, relpath, "rebuilt map", why, 1);
out:
	vmb_blockmap_destroy(&map);
	vmb_blockmap_destroy(&scan);
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Remove sidecars of files that no longer exist, and leftover temporaries. */
static int sweep_maps(struct fsck_ctx *c, struct vmb_err *err)
{
	struct dirent *de;
	DIR *d;
	int fd;

	if (c->ninos)
		qsort(c->inos, c->ninos, sizeof(*c->inos), cmp_u64);
	fd = openat(c->s->mapfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || !(d = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return vmb_err_sys(err, errno, "cannot read the map directory of '%s'",
				   c->s->path);
	}
	while ((de = readdir(d))) {
		unsigned long long ino;
		char tail[8];
		const char *what = NULL;
		uint64_t key;

		if (de->d_name[0] == '.' && (!de->d_name[1] || !strcmp(de->d_name, "..")))
			continue;
		if (!strncmp(de->d_name, ".tmp.", 5)) {
			what = "removed a leftover temporary map";
		} else if (sscanf(de->d_name, "%16llx%7s", &ino, tail) == 2 &&
			   (!strcmp(tail, ".map") || !strcmp(tail, ".jnl")) &&
			   strlen(de->d_name) == 20) {
			key = ino;
			if (!c->ninos ||
			    !bsearch(&key, c->inos, c->ninos, sizeof(*c->inos), cmp_u64))
				what = "removed the map of a file that no longer exists";
		} else {
			what = "removed a stray file from the map directory";
		}
		if (!what)
			continue;
		if (!c->repair) {
			report(c, de->d_name, "needs removing", what + 8, 0);
			continue;
		}
		if (unlinkat(c->s->mapfd, de->d_name, 0) < 0)
			report(c, de->d_name, "cannot be removed", strerror(errno), 0);
		else
			report(c, de->d_name, what, NULL, 1);
	}
	closedir(d);
	return 0;
}

/* What a sweep said of one leftover (r 1: found, not removed; < 0: could not be
 * removed, e says why; 0: removed). verb: "remov" or "delet". */
static void report_leftover(struct fsck_ctx *c, const char *path, int r,
			    const struct vmb_err *e, const char *why, const char *verb)
{
	char what[32];

	if (r == 1)
		snprintf(what, sizeof(what), "needs %sing", verb);
	else if (r < 0)
		snprintf(what, sizeof(what), "cannot be %sed", verb);
	else
		snprintf(what, sizeof(what), "%sed", verb);
	report(c, path, what, r < 0 ? e->msg : why, r == 0);
}

/* A clone's or publish's staging directory nobody holds (vmb_ops_staging_sweep). */
static void staging_found(void *arg, const char *name, int r, const struct vmb_err *e)
{
	struct fsck_ctx *c = arg;
	char path[NAME_MAX + 64];
	const char *why = !strncmp(name, VMB_OPS_PUBLISH_PREFIX, strlen(VMB_OPS_PUBLISH_PREFIX)) ?
		"the lock directory of a publish that died" :
		!strncmp(name, VMB_STORE_STAGING_NEW, strlen(VMB_STORE_STAGING_NEW)) ?
		"a staging directory its maker left before it was named" :
		"the staging directory of a clone that died";

	snprintf(path, sizeof(path), "%s/%s/%s", VMB_META_DIR, VMB_OPS_STAGING_DIR, name);
	report_leftover(c, path, r, e, why, "remov");
}

/* A remote layer's temporary whose writer died (vmb_layers_sweep_rtmp). */
static void rtmp_found(void *arg, const char *name, int r, const struct vmb_err *e)
{
	char path[NAME_MAX + 64];

	snprintf(path, sizeof(path), "%s/%s/%s", VMB_META_DIR, VMB_LAYERS_DIR, name);
	report_leftover(arg, path, r, e, "the temporary of a remote layer whose writer died",
			"remov");
}

/* A snapshot of a publish that died (vmb_op_publish_sweep). */
static void pubsnap_found(void *arg, const char *spec, int r, const struct vmb_err *e)
{
	report_leftover(arg, spec, r, e, "the temporary snapshot of a publish that died",
			"delet");
}

/* The layers: each one's map readable and its base present; orphans of a crash
 * removed; snapshot manifests readable and their layers present; staging
 * directories of dead clones removed. Layers nothing uses are only counted (gc
 * removes them): they are not a problem. */
static void check_layers(struct fsck_ctx *c)
{
	struct vmb_opctx oc = { .store = c->s, .layers = c->layers, .log = c->say };
	struct vmb_layer_list ll = { 0 };
	struct vmb_ops_scan sc;
	struct vmb_err e = {0};
	size_t i, unused = 0;
	char what[VMB_ERR_MAX];

	if (vmb_layers_list(c->layers, &ll, &e) < 0) {
		report(c, "layers", "cannot be checked", e.msg, 0);
		return;
	}
	for (i = 0; i < ll.n; i++) {
		struct vmb_layer_info li;
		struct vmb_base *b;

		snprintf(what, sizeof(what), "layer '%s'", ll.ids[i]);
		if (vmb_layers_stat(c->layers, ll.ids[i], &li, &e) < 0) {
			report(c, what, "is damaged", e.msg, 0);
			continue;
		}
		/* The whole chain opens (every base present and sound). */
		if (li.base[0] && vmb_layers_get(c->layers, ll.ids[i], &b, &e) < 0)
			report(c, what, "its chain is damaged", e.msg, 0);
		else if (li.base[0])
			vmb_base_put(b);
	}
	for (i = 0; i < ll.norphans; i++) {
		snprintf(what, sizeof(what), "layer '%s'", ll.orphans[i]);
		if (!c->repair)
			report(c, what, "needs removing", "the leftover of a layer a crash cut "
			       "short", 0);
		else if (vmb_layers_remove(c->layers, ll.orphans[i], &e) < 0)
			report(c, what, "cannot be removed", e.msg, 0);
		else
			report(c, what, "removed", "the leftover of a layer a crash cut short", 1);
	}
	for (i = 0; i < ll.nstray; i++)
		report(c, ll.stray[i], "left alone", "a stray file in the layers directory", 0);
	vmb_op_publish_sweep(&oc, c->repair, pubsnap_found, c);
	vmb_ops_staging_sweep(c->s, c->repair, staging_found, c);
	vmb_layers_sweep_rtmp(c->layers, c->repair, rtmp_found, c);
	/* Manifests, and who uses what. */
	if (vmb_ops_scan(&oc, 0, &sc, &e) == 0) {
		for (i = 0; i < ll.n; i++) {
			char name[VMB_BASE_ID_LEN + 8];
			struct stat st;

			if (vmb_ops_used(&sc, ll.ids[i], NULL))
				continue;
			/* A freeze cut short before its rename: the layer's data is still
			 * a bundle's file (its other name), which a write changes. */
			snprintf(name, sizeof(name), "%s.data", ll.ids[i]);
			snprintf(what, sizeof(what), "layer '%s'", ll.ids[i]);
			if (fstatat(vmb_layers_dirfd(c->layers), name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
			    st.st_nlink < 2)
				unused++;
			else if (!c->repair)
				report(c, what, "needs removing", "a crash cut a freeze short: its "
				       "data is still a bundle's file", 0);
			else if (vmb_layers_remove(c->layers, ll.ids[i], &e) < 0)
				report(c, what, "cannot be removed", e.msg, 0);
			else
				report(c, what, "removed", "a crash cut a freeze short: its data "
				       "was still a bundle's file", 1);
		}
		/* A snapshot standing on a missing or damaged layer (a bundle's files
		 * that do are reported file by file above). */
		for (i = 0; i < sc.n; i++) {
			const struct vmb_ops_layer *l = vmb_ops_layer_of(&sc, sc.u[i].id);

			if (!l || !l->bad || !sc.u[i].user[sc.u[i].blen])
				continue;
			snprintf(what, sizeof(what), "layer '%s' is missing or damaged",
				 sc.u[i].id);
			report(c, sc.u[i].user, "snapshot cannot be read", what, 0);
		}
		vmb_ops_scan_free(&sc);
	}
	{
		struct vmb_snapshot_info *sl = NULL;
		size_t n = 0;

		if (vmb_op_snapshot_list(&oc, NULL, &sl, &n, &e) == 0)
			for (i = 0; i < n; i++)
				if (sl[i].damaged)
					report(c, sl[i].spec, "snapshot manifest is damaged",
					       "'vmbundlefs snapshot --delete' removes it", 0);
		vmb_snapshot_list_free(sl, n);
	}
	if (unused)
		vmb_log_msg(c->say, "note: %zu layer%s nothing uses ('vmbundlefs gc' removes "
			    "them)", unused, unused == 1 ? "" : "s");
	vmb_layer_list_free(&ll);
}

int vmb_fsck(const char *path, int repair, const struct vmb_log *say,
	     struct vmb_fsck_result *res, struct vmb_err *err)
{
	struct vmb_store s;
	struct vmb_remote *remote = NULL;
	struct fsck_ctx c;
	struct dirent *de;
	DIR *d = NULL;
	int fd, r;

	memset(res, 0, sizeof(*res));
	memset(&c, 0, sizeof(c));
	r = vmb_store_open(&s, path, VMB_STORE_EXCLUSIVE, err);
	if (r < 0)
		return r;
	c.s = &s;
	c.repair = repair;
	c.say = say;
	c.res = res;
	r = check_meta_modes(&c, err);
	if (r == 0)
		r = vmb_layers_open(&c.layers, s.metafd, say, err);
	if (r == 0)   /* lazy: only a file over a remote layer opens the cache */
		r = vmb_remote_open(NULL, say, &remote, err);
	if (r < 0)
		goto out;
	vmb_layers_set_remote(c.layers, remote);
	fd = openat(s.dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || !(d = fdopendir(fd))) {
		r = vmb_err_sys(err, errno, "cannot read store '%s'", path);
		if (fd >= 0)
			close(fd);
		goto out;
	}
	while ((de = readdir(d))) {
		struct stat st;

		if (de->d_name[0] == '.' && (!de->d_name[1] || !strcmp(de->d_name, "..")))
			continue;
		if (vmb_store_reserved(de->d_name) ||
		    fstatat(s.dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISDIR(st.st_mode))
			continue;
		if (strchr(de->d_name, '@'))   /* made behind vmbundlefs' back: not fixed */
			report(&c, de->d_name, "a bundle's name may not hold '@'",
			       vmb_snapshot_exists(s.metafd, de->d_name) ?
			       "BUNDLE@NAME names a snapshot: clone, export, deps and publish "
			       "take the snapshot of this name, not this bundle; rename it" :
			       "BUNDLE@NAME names a snapshot; rename it", 0);
		r = vmb_store_walk(&s, de->d_name, check_file, &c, err);
		if (r < 0) {
			if (c.nomem) {
				r = vmb_err_set(err, ENOMEM, "out of memory");
				goto out;
			}
			/* One bundle that cannot be walked does not stop the check; its
			 * files' maps must not be swept as orphans either. */
			report(&c, de->d_name, "cannot be checked", err->msg, 0);
			c.noswept = 1;
			r = 0;
		}
	}
	check_layers(&c);
	r = c.noswept ? 0 : sweep_maps(&c, err);
out:
	if (d)
		closedir(d);
	free(c.inos);
	vmb_remote_close(remote);
	vmb_layers_close(c.layers);
	vmb_store_close(&s);
	return r;
}
