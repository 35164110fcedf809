/* flatten.c - make a bundle self-contained again (ops.h): every regular file with
 * a base becomes a plain file holding its whole content (vmb_image_flatten: a new
 * file written beside it, renamed over it; the daemon's hook when mounted). Each
 * file is replaced atomically, so a crash leaves every file either still on its
 * base or plain: both read the same; flatten again finishes. The layers the bundle
 * stood on stay until gc finds nothing else using them. */
#include "config.h"
#include "store/ops_int.h"
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct fl {
	struct vmb_opctx *c;
	unsigned done;
};

static int fl_ent(void *arg, enum vmb_tree_event ev, const struct vmb_tree_ent *e,
		  struct vmb_err *err)
{
	struct fl *f = arg;
	char id[VMB_BASE_ID_LEN + 1];
	int fd, r;

	if (ev != VMB_TREE_FILE || !S_ISREG(e->st->st_mode))
		return 0;
	fd = openat(e->dfd, e->name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return vmb_err_sys(err, errno, "cannot open '%s'", e->msgpath);
	r = vmb_ops_base_of(fd, e->msgpath, id, err);
	close(fd);
	if (r <= 0)
		return r;
	r = vmb_ops_flatten_file(f->c, e->dfd, e->name, e->path, err);
	if (r < 0)
		return vmb_err_prefix(err, "cannot flatten '%s'", e->msgpath);
	if (f->done++ == 0)
		vmb_op_step("flatten", 1);
	return 0;
}

int vmb_op_flatten(struct vmb_opctx *c, const char *bundle, struct vmb_err *err)
{
	struct fl f = { c, 0 };
	int bfd, r;

	r = vmb_ops_bundle_check(c, bundle, err);
	if (r < 0)
		return r;
	bfd = openat(c->store->dirfd, bundle, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (bfd < 0)
		return vmb_err_sys(err, errno, "cannot open bundle '%s'", bundle);
	/* No write barrier: each file is flattened under its image's own lock. */
	r = vmb_tree_walk(bfd, bundle, fl_ent, &f, err);
	if (r == 0)
		vmb_op_step("flatten", 2);
	close(bfd);
	return r;
}
