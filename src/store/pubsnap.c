/* pubsnap.c - the temporary snapshots of `vmbundlefs publish` (ops.h): held by a
 * locked staging directory while they exist, so that those of a publish that
 * died (SIGKILL, a crash) are told from those of one still running and removed by
 * gc, fsck --repair and the next publish.
 *
 * The publish makes STORE/.vmbundlefs/staging/pub.<HOLDER> (vmb_store_staging_create:
 * locked before it gets its name) BEFORE it takes its snapshots, named
 * publish-<HOLDER>-<i>, deletes them, and only then removes the directory and
 * lets the lock go. A snapshot with such a name whose directory is missing or
 * unlocked is therefore a dead publish's.
 */
#include "config.h"
#include "store/ops_int.h"
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

int vmb_op_publish_hold(struct vmb_store *s, struct vmb_pubhold *h, struct vmb_err *err)
{
	char name[NAME_MAX + 1];
	int r;

	memset(h, 0, sizeof(*h));
	h->stagefd = h->fd = -1;
	r = vmb_store_staging_create(s, VMB_OPS_PUBLISH_PREFIX, &h->stagefd, &h->fd, name, err);
	if (r < 0)
		return vmb_err_prefix(err, "cannot hold the publish's snapshots");
	snprintf(h->holder, sizeof(h->holder), "%s", name + strlen(VMB_OPS_PUBLISH_PREFIX));
	return 0;
}

void vmb_op_publish_snapname(const struct vmb_pubhold *h, int i, char *buf, size_t size)
{
	snprintf(buf, size, "%s%s-%d", VMB_OPS_PUBLISH_SNAP_PREFIX, h->holder, i);
}

void vmb_op_publish_release(struct vmb_pubhold *h)
{
	char name[NAME_MAX + 8];

	if (h->fd < 0)
		return;
	/* removed while still locked: a sweeper that gets the lock afterwards finds
	 * nothing to remove */
	snprintf(name, sizeof(name), "%s%s", VMB_OPS_PUBLISH_PREFIX, h->holder);
	unlinkat(h->stagefd, name, AT_REMOVEDIR);
	close(h->fd);
	close(h->stagefd);
	h->fd = h->stagefd = -1;
}

/* The holder of snapshot name NAME ("publish-<pid>.<hex>-<i>"), into holder: 1,
 * or 0 when the name is not one publish makes (then it is never touched). */
static int holder_of(const char *name, char *holder, size_t size)
{
	const char *p = name + strlen(VMB_OPS_PUBLISH_SNAP_PREFIX), *dash, *q;
	size_t n;

	if (strncmp(name, VMB_OPS_PUBLISH_SNAP_PREFIX, strlen(VMB_OPS_PUBLISH_SNAP_PREFIX)))
		return 0;
	dash = strrchr(p, '-');
	if (!dash || !dash[1])
		return 0;
	for (q = dash + 1; *q; q++)
		if (*q < '0' || *q > '9')
			return 0;
	/* <pid>.<hex> */
	for (q = p; q < dash && *q >= '0' && *q <= '9'; q++)
		;
	if (q == p || q >= dash || *q != '.' || q + 1 == dash)
		return 0;
	for (q++; q < dash; q++)
		if (!((*q >= '0' && *q <= '9') || (*q >= 'a' && *q <= 'f')))
			return 0;
	n = (size_t)(dash - p);
	if (n + 1 > size)
		return 0;
	memcpy(holder, p, n);
	holder[n] = '\0';
	return 1;
}

uint64_t vmb_op_publish_sweep(struct vmb_opctx *c, int remove,
			      void (*found)(void *arg, const char *spec, int r,
					    const struct vmb_err *e),
			      void *arg)
{
	struct vmb_snapshot_info *sl = NULL;
	struct vmb_err e;
	uint64_t n = 0;
	size_t i, ns = 0;
	int sfd;

	vmb_err_clear(&e);
	if (vmb_op_snapshot_list(c, NULL, &sl, &ns, &e) < 0 || !ns) {
		vmb_snapshot_list_free(sl, ns);
		return 0;
	}
	sfd = openat(c->store->metafd, VMB_OPS_STAGING_DIR, O_RDONLY | O_DIRECTORY |
		     O_NOFOLLOW | O_CLOEXEC);
	for (i = 0; i < ns; i++) {
		const char *at = strrchr(sl[i].spec, '@');
		char holder[NAME_MAX + 1], dir[NAME_MAX + 8];
		int lfd = -1, r = 1;

		if (!at || !holder_of(at + 1, holder, sizeof(holder)))
			continue;
		snprintf(dir, sizeof(dir), "%s%s", VMB_OPS_PUBLISH_PREFIX, holder);
		if (sfd >= 0)
			lfd = openat(sfd, dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (lfd >= 0 && flock(lfd, LOCK_EX | LOCK_NB) < 0) {
			close(lfd);   /* its publish is running */
			continue;
		}
		/* dead (its lock is ours now, or its directory is gone) */
		vmb_err_clear(&e);
		if (remove) {
			r = vmb_op_snapshot_delete(c, sl[i].spec, &e);
			if (r == -ENOENT)   /* its publish deleted it meanwhile */
				r = 0;
			if (r == 0 && lfd >= 0)   /* its lock directory, held */
				unlinkat(sfd, dir, AT_REMOVEDIR);
		}
		if (r >= 0)
			n++;
		if (found)
			found(arg, sl[i].spec, r, &e);
		if (lfd >= 0)
			close(lfd);
	}
	if (sfd >= 0)
		close(sfd);
	vmb_snapshot_list_free(sl, ns);
	return n;
}
