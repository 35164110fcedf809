/* gc.c - remove what nothing references (ops.h).
 *
 * First the scan (deps.c), strict: every bundle file's base xattr, every manifest
 * and the .map of every layer they reach must be readable, else gc removes nothing
 * (a reference it cannot see must not cost a layer; fsck says what is wrong). Then
 * every layer nobody uses (nor the daemon's open files: layer_busy; nor a chain
 * open in this process: vmb_layers_remove says EBUSY) is removed, tops of chains
 * before their bases (deepest first), so that a crash in between never leaves a
 * layer whose base is gone; then orphan .data/.tmp files of layers a crash cut
 * short, clone and publish staging directories nobody holds, and manifest
 * temporaries. Before all that, the temporary snapshots of publishes that died
 * (vmb_op_publish_sweep), so that the layers only they pinned go too. Each
 * removal is atomic (a layer ceases to exist with its .map), so a crash leaves a
 * store gc finishes next time.
 */
#include "config.h"
#include "store/ops_int.h"
#include "store/store.h"
#include "layer/layer.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

struct cand {
	char id[VMB_BASE_ID_LEN + 1];
	uint64_t depth, bytes;
};

static int deepest_first(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;

	if (x->depth != y->depth)
		return x->depth < y->depth ? 1 : -1;
	return strcmp(x->id, y->id);
}

/* A dead clone's staging directory that could not be removed. */
static void staging_failed(void *arg, const char *name, int r, const struct vmb_err *e)
{
	struct vmb_opctx *c = arg;

	(void)name;
	if (r < 0)
		vmb_log_msg(c->log, "gc: %s", e->msg);
}

/* A snapshot of a publish that died (vmb_op_publish_sweep). */
static void pubsnap_found(void *arg, const char *spec, int r, const struct vmb_err *e)
{
	struct vmb_opctx *c = arg;

	if (r < 0)
		vmb_log_msg(c->log, "gc: %s", e->msg);
	else
		vmb_log_msg(c->log, "gc: deleted snapshot '%s' of a publish that died", spec);
}

/* Manifest temporaries (".tmp.PID.NAME") of a snapshot that died before its rename. */
static uint64_t sweep_manifests(struct vmb_opctx *c)
{
	struct dirent *de;
	struct vmb_err e;
	uint64_t n = 0;
	DIR *d;
	int sfd = vmb_ops_snapdir(c->store, 0, &e);

	if (sfd < 0)
		return 0;
	d = fdopendir(sfd);
	if (!d) {
		close(sfd);
		return 0;
	}
	while ((de = readdir(d)))
		if (!strncmp(de->d_name, ".tmp.", 5) && unlinkat(dirfd(d), de->d_name, 0) == 0)
			n++;
	closedir(d);
	return n;
}

int vmb_op_gc(struct vmb_opctx *c, struct vmb_gc_result *res, struct vmb_err *err)
{
	struct vmb_layer_list list = { 0 };
	struct vmb_ops_scan sc;
	struct cand *cand = NULL;
	size_t i, nc = 0;
	int r;

	memset(res, 0, sizeof(*res));
	/* first: the layers only they pinned go in this same run */
	res->staging_removed = vmb_op_publish_sweep(c, 1, pubsnap_found, c);
	r = vmb_ops_scan(c, 1, &sc, err);
	if (r < 0)
		return vmb_err_prefix(err, "gc removed nothing ('vmbundlefs fsck' checks the "
				      "store)");
	r = vmb_layers_list(c->layers, &list, err);
	if (r < 0)
		goto out;
	cand = calloc(list.n ? list.n : 1, sizeof(*cand));
	if (!cand) {
		r = vmb_err_set(err, ENOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < list.n; i++) {
		struct vmb_layer_info li;
		struct vmb_err e;

		if (vmb_ops_used(&sc, list.ids[i], NULL) ||
		    (c->layer_busy && c->layer_busy(c->arg, list.ids[i]))) {
			res->layers_kept++;
			continue;
		}
		memcpy(cand[nc].id, list.ids[i], sizeof(cand[nc].id));
		if (vmb_layers_stat(c->layers, list.ids[i], &li, &e) == 0) {
			cand[nc].depth = li.depth;
			cand[nc].bytes = li.alloc_bytes;
		} else {
			cand[nc].depth = UINT64_MAX;   /* corrupt: cannot be anyone's base */
		}
		nc++;
	}
	qsort(cand, nc, sizeof(*cand), deepest_first);
	for (i = 0; i < nc; i++) {
		r = vmb_layers_remove(c->layers, cand[i].id, err);
		if (r == -EBUSY) {
			res->layers_kept++;
			r = 0;
			continue;
		}
		if (r < 0)
			goto out;
		res->layers_removed++;
		res->bytes_freed += cand[i].bytes;
		if (res->layers_removed == 1)
			vmb_op_step("gc", 1);
	}
	for (i = 0; i < list.norphans; i++) {
		r = vmb_layers_remove(c->layers, list.orphans[i], err);
		if (r == -ENOENT) {
			r = 0;
			continue;
		}
		if (r < 0)
			goto out;
		res->orphans_removed++;
	}
	res->staging_removed += vmb_ops_staging_sweep(c->store, 1, staging_failed, c) +
			      sweep_manifests(c) +
			      vmb_layers_sweep_rtmp(c->layers, 1, staging_failed, c);
	vmb_op_step("gc", 2);
out:
	free(cand);
	vmb_layer_list_free(&list);
	vmb_ops_scan_free(&sc);
	return r;
}
