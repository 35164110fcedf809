/* create.c - making layers (layer.h): a frozen file's inode linked in, a merged
 * layer when the chain would be too deep, a layer copied from bytes.
 *
 * Order, for crash safety: the layer's .data is complete and durable (fsync) before
 * its .map is written; the .map goes in last (a temporary <ID>.tmp, fsync, rename,
 * fsync of the directory, which also makes the .data's name durable: both are
 * entries of that directory). Until the rename the layer does not exist; a crash
 * before it leaves an orphan .data (and perhaps a .tmp) that list reports and gc
 * removes. A failure removes what was made (and gives the frozen inode its mode back).
 */
#include "config.h"
#include "layer/layer_int.h"
#include "base/fdio.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define NAME_LEN (VMB_BASE_ID_LEN + 8)
#define COPY_BUF (1u << 20)

static int new_id(char id[VMB_BASE_ID_LEN + 1], struct vmb_err *err)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char r[VMB_BASE_ID_LEN / 2];
	size_t got = 0;
	ssize_t n;

	while (got < sizeof(r)) {
		n = getrandom(r + got, sizeof(r) - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return vmb_err_sys(err, errno, "cannot make a layer id (getrandom)");
		got += (size_t)n;
	}
	for (size_t i = 0; i < sizeof(r); i++) {
		id[2 * i] = hex[r[i] >> 4];
		id[2 * i + 1] = hex[r[i] & 15];
	}
	id[VMB_BASE_ID_LEN] = '\0';
	return 0;
}

int vmb_layer_copy(int dst, int src, uint64_t off, uint64_t len)
{
	loff_t in = (loff_t)off, outo = (loff_t)off;
	uint64_t done = 0;
	char *buf = NULL;
	ssize_t n;
	int rc = 0;

	while (done < len) {
		size_t want = len - done > (1u << 30) ? (1u << 30) : (size_t)(len - done);

		n = copy_file_range(src, &in, dst, &outo, want, 0);
		if (n > 0) {
			done += (uint64_t)n;
			continue;
		}
		if (n == 0)
			return -EIO;   /* the source ends early */
		if (errno == EINTR)
			continue;
		if (errno != EXDEV && errno != EINVAL && errno != ENOSYS &&
		    errno != EOPNOTSUPP && errno != EBADF)
			return -errno;
		break;   /* not here: by read and write */
	}
	while (done < len) {
		size_t want = len - done > COPY_BUF ? COPY_BUF : (size_t)(len - done);

		if (!buf && !(buf = malloc(COPY_BUF)))
			return -ENOMEM;
		n = pread(src, buf, want, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = n < 0 ? -errno : -EIO;
			break;
		}
		rc = vmb_pwrite_full(dst, buf, (size_t)n, off + done, NULL);
		if (rc)
			break;
		done += (uint64_t)n;
	}
	free(buf);
	return rc;
}

/* Write <id>.map holding m and h atomically and durably. */
static int write_map(struct vmb_layers *ls, const char *id, const struct vmb_blockmap *m,
		     const struct vmb_layer_hdr *h, struct vmb_err *err)
{
	char tmp[NAME_LEN], name[NAME_LEN];
	void *buf = NULL;
	size_t len;
	int fd = -1, created = 0, rc;

	snprintf(tmp, sizeof(tmp), "%s.tmp", id);
	snprintf(name, sizeof(name), "%s.map", id);
	rc = vmb_layer_map_encode(m, h, &buf, &len, err);
	if (rc)
		return rc;
	fd = openat(ls->dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		    VMB_LAYER_MAP_MODE);
	if (fd < 0) {
		rc = vmb_err_sys(err, errno, "cannot create '%s/%s'", ls->path, tmp);
		goto out;
	}
	created = 1;
	if (fchmod(fd, VMB_LAYER_MAP_MODE) < 0 || (rc = vmb_write_full(fd, buf, len)) ||
	    vmb_fsync(fd) < 0) {
		rc = vmb_err_sys(err, rc ? -rc : errno, "cannot write '%s/%s'", ls->path, tmp);
		goto out;
	}
	rc = close(fd);
	fd = -1;
	if (rc < 0) {
		rc = vmb_err_sys(err, errno, "cannot write '%s/%s'", ls->path, tmp);
		goto out;
	}
	if (renameat(ls->dirfd, tmp, ls->dirfd, name) < 0) {
		rc = vmb_err_sys(err, errno, "cannot rename '%s/%s' to '%s'", ls->path, tmp,
				 name);
		goto out;
	}
	created = 0;
	if (vmb_fsync(ls->dirfd) < 0) {
		/* the layer is there; whether it survives a crash is not known */
		rc = vmb_err_sys(err, errno, "cannot fsync '%s'", ls->path);
		unlinkat(ls->dirfd, name, 0);
	}
out:
	if (fd >= 0)
		close(fd);
	if (created)
		unlinkat(ls->dirfd, tmp, 0);
	free(buf);
	return rc;
}

/* Link fd's inode as dirfd/name. */
static int link_fd(struct vmb_layers *ls, int fd, const char *name)
{
	char proc[64];

	if (linkat(fd, "", ls->dirfd, name, AT_EMPTY_PATH) == 0)
		return 0;
	if (errno != ENOENT && errno != EPERM && errno != EINVAL)
		return -errno;
	/* AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH */
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	if (linkat(AT_FDCWD, proc, ls->dirfd, name, AT_SYMLINK_FOLLOW) == 0)
		return 0;
	return -errno;
}

/* A new, empty <id>.data (O_RDWR; *fd), a fresh id in id. */
static int create_data(struct vmb_layers *ls, char id[VMB_BASE_ID_LEN + 1], int *fd,
		       struct vmb_err *err)
{
	char name[NAME_LEN];
	int rc, tries;

	for (tries = 0; tries < 3; tries++) {
		rc = new_id(id, err);
		if (rc)
			return rc;
		snprintf(name, sizeof(name), "%s.data", id);
		*fd = openat(ls->dirfd, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW |
			     O_CLOEXEC, VMB_LAYER_DATA_MODE);
		if (*fd >= 0)
			return 0;
		if (errno != EEXIST)
			break;
	}
	return vmb_err_sys(err, errno, "cannot create '%s/%s'", ls->path, name);
}

/* The end of a layer made here: dfd (its .data, holding map's blocks) sized,
 * synced, made read-only, stamped; its .map written. Removes the .data on failure. */
static int publish(struct vmb_layers *ls, int dfd, const char *id, uint64_t size,
		   const struct vmb_blockmap *m, struct vmb_err *err)
{
	char name[NAME_LEN];
	struct vmb_layer_hdr h;
	int rc;

	memset(&h, 0, sizeof(h));
	h.depth = 1;
	if (ftruncate(dfd, (off_t)size) < 0 || vmb_fsync(dfd) < 0 ||
	    fchmod(dfd, VMB_LAYER_DATA_MODE) < 0) {
		rc = vmb_err_sys(err, errno, "cannot write '%s/%s.data'", ls->path, id);
		goto out;
	}
	rc = vmb_stamp_fd(dfd, &h.stamp, err);
	if (rc)
		goto out;
	rc = write_map(ls, id, m, &h, err);
out:
	if (rc) {
		snprintf(name, sizeof(name), "%s.data", id);
		unlinkat(ls->dirfd, name, 0);
	}
	return rc;
}

/* Bytes [off, off + len) of remote image b into dst at the same offsets. */
static int copy_remote(int dst, struct vmb_base *b, uint64_t off, uint64_t len,
		       struct vmb_err *err)
{
	size_t cap = 1u << 20, done;
	char *buf = malloc(cap);
	int rc = 0;

	if (!buf)
		return vmb_err_set(err, ENOMEM, "out of memory");
	while (len && !rc) {
		size_t n = len < cap ? (size_t)len : cap;
		ssize_t got = b->ops->read(b, buf, n, off, err);

		if (got < 0)
			rc = (int)got;
		else if ((rc = vmb_pwrite_full(dst, buf, n, off, &done)) < 0)
			rc = vmb_err_sys(err, -rc, "cannot write a merged layer");
		off += n;
		len -= n;
	}
	free(buf);
	return rc;
}

/* The merged layer of own (nb blocks, over below up to lim) in a new .data. fd is
 * the caller's file (layer 0 of the merge), size its size. */
static int create_merged(struct vmb_layers *ls, int fd, const struct vmb_blockmap *own,
			 uint64_t size, struct vmb_chain *below, uint64_t lim,
			 char id[VMB_BASE_ID_LEN + 1], struct vmb_err *err)
{
	struct vmb_blockmap m;
	struct vmb_run *runs = NULL;
	size_t nruns = 0, i;
	int dfd = -1, rc;

	vmb_blockmap_init(&m);
	rc = vmb_chain_merge(own, size, below, lim, &runs, &nruns);
	if (rc)
		return vmb_err_set(err, ENOMEM, "out of memory merging a chain of layers");
	rc = create_data(ls, id, &dfd, err);
	if (rc)
		goto out;
	for (i = 0; i < nruns; i++) {
		const struct vmb_run *r = &runs[i];
		int sfd = r->src ? below->lv[r->src - 1]->fd : fd;
		uint64_t ssize = r->src ? below->lv[r->src - 1]->base.size : size;
		uint64_t off = r->start * VMB_BLOCK_SIZE, end = (r->start + r->len) *
							      VMB_BLOCK_SIZE;

		if (end > ssize)
			end = ssize;
		if (end > r->zero_from)
			end = r->zero_from;
		if (end > off && sfd < 0 && r->src && below->lv[r->src - 1]->remote) {
			/* a remote image at the bottom: its bytes by read (fetched) */
			rc = copy_remote(dfd, below->lv[r->src - 1]->remote, off, end - off, err);
			if (rc)
				break;
		} else if (end > off && (rc = vmb_layer_copy(dfd, sfd, off, end - off))) {
			rc = vmb_err_sys(err, -rc, "cannot copy %s into merged layer '%s'",
					 r->src ? below->lv[r->src - 1]->data_path :
					 "the frozen file", id);
			break;
		}
		if ((rc = vmb_blockmap_set(&m, r->start, r->len, VMB_DATA))) {
			rc = vmb_err_set(err, -rc, "cannot map merged layer '%s'", id);
			break;
		}
	}
	if (rc) {
		char name[NAME_LEN];

		snprintf(name, sizeof(name), "%s.data", id);
		unlinkat(ls->dirfd, name, 0);
		goto out;
	}
	rc = publish(ls, dfd, id, size, &m, err);
out:
	if (dfd >= 0)
		close(dfd);
	free(runs);
	vmb_blockmap_destroy(&m);
	return rc;
}

static int create_layer(struct vmb_layers *ls, int fd, const struct vmb_blockmap *map,
			uint64_t size, struct vmb_base *base, uint64_t limit, int merge,
			char id[VMB_BASE_ID_LEN + 1], struct vmb_err *err)
{
	char name[NAME_LEN];
	struct vmb_blockmap own;
	struct vmb_layer_hdr h;
	struct stat st;
	uint64_t nb = vmb_layer_blocks(size), depth = base ? base->depth + 1u : 1;
	int rc, tries, linked = 0;

	id[0] = '\0';
	if (ls->dirfd < 0)
		return vmb_err_set(err, EROFS, "cannot make a layer: '%s' does not exist",
				   ls->path);
	if (base && !vmb_layers_owns(ls, base))
		return vmb_err_set(err, EINVAL, "cannot make a layer over '%s': not a layer "
				   "of this store", base->id);
	if (nb > VMB_BLOCK_MAX)
		return vmb_err_set(err, EFBIG, "cannot make a layer of %" PRIu64 " bytes", size);
	vmb_blockmap_init(&own);
	rc = vmb_blockmap_copy(&own, map);
	if (rc) {
		rc = vmb_err_set(err, ENOMEM, "out of memory making a layer");
		goto out;
	}
	vmb_blockmap_truncate(&own, nb);
	if (base) {
		if (limit > nb)
			limit = nb;
		if (limit > vmb_layer_blocks(base->size))
			limit = vmb_layer_blocks(base->size);
	} else {
		limit = 0;
	}
	if (fstat(fd, &st) < 0) {
		rc = vmb_err_sys(err, errno, "cannot make a layer: cannot stat the file");
		goto out;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != size) {
		rc = vmb_err_set(err, EINVAL, "cannot make a layer of a file of %lld bytes "
				 "as one of %" PRIu64, (long long)st.st_size, size);
		goto out;
	}
	if (merge || depth > VMB_LAYER_DEPTH_MAX) {
		rc = create_merged(ls, fd, &own, size, (struct vmb_chain *)base, limit, id,
				   err);
		goto out;
	}
	if (vmb_fsync(fd) < 0) {
		rc = vmb_err_sys(err, errno, "cannot make a layer: cannot fsync the file");
		goto out;
	}
	for (tries = 0; ; tries++) {
		rc = new_id(id, err);
		if (rc)
			goto out;
		snprintf(name, sizeof(name), "%s.data", id);
		rc = link_fd(ls, fd, name);
		if (rc != -EEXIST || tries == 2)
			break;
	}
	if (rc) {
		rc = vmb_err_sys(err, -rc, rc == -EXDEV ? "cannot link the file into '%s' "
				 "(layers must be on the store's filesystem)" :
				 "cannot link the file into '%s'", ls->path);
		goto out;
	}
	linked = 1;
	/* Not made read-only here: the inode is still the caller's file (a chmod
	 * would change its mode too, and a crash before its name moves would leave
	 * it so). The caller seals the layer once its name names another inode. */
	memset(&h, 0, sizeof(h));
	rc = vmb_stamp_fd(fd, &h.stamp, err);
	if (rc)
		goto out;
	if (base)
		memcpy(h.base, base->id, sizeof(h.base));
	h.limit = limit;
	h.depth = depth;
	rc = write_map(ls, id, &own, &h, err);
out:
	if (rc && linked)
		unlinkat(ls->dirfd, name, 0);
	if (rc)
		id[0] = '\0';
	vmb_blockmap_destroy(&own);
	return rc;
}

int vmb_layers_create(struct vmb_layers *ls, int fd, const struct vmb_blockmap *map,
		      uint64_t size, struct vmb_base *base, uint64_t limit,
		      char id[VMB_BASE_ID_LEN + 1], struct vmb_err *err)
{
	return create_layer(ls, fd, map, size, base, limit, 0, id, err);
}

int vmb_layers_create_merged(struct vmb_layers *ls, int fd, const struct vmb_blockmap *map,
			     uint64_t size, struct vmb_base *base, uint64_t limit,
			     char id[VMB_BASE_ID_LEN + 1], struct vmb_err *err)
{
	return create_layer(ls, fd, map, size, base, limit, 1, id, err);
}

int vmb_layers_seal(struct vmb_layers *ls, const char *id, struct vmb_err *err)
{
	char name[NAME_LEN];

	snprintf(name, sizeof(name), "%s.data", id);
	if (fchmodat(ls->dirfd, name, VMB_LAYER_DATA_MODE, 0) < 0)
		return vmb_err_sys(err, errno, "cannot make '%s/%s' read-only", ls->path, name);
	return 0;
}

int vmb_layers_create_copy(struct vmb_layers *ls, int srcfd, uint64_t size,
			   char id[VMB_BASE_ID_LEN + 1], struct vmb_err *err)
{
	struct vmb_blockmap m;
	uint64_t nb = vmb_layer_blocks(size);
	off_t pos = 0, data, hole;
	int dfd = -1, rc;

	id[0] = '\0';
	if (ls->dirfd < 0)
		return vmb_err_set(err, EROFS, "cannot make a layer: '%s' does not exist",
				   ls->path);
	if (nb > VMB_BLOCK_MAX)
		return vmb_err_set(err, EFBIG, "cannot make a layer of %" PRIu64 " bytes", size);
	vmb_blockmap_init(&m);
	rc = create_data(ls, id, &dfd, err);
	if (rc)
		goto out;
	while ((uint64_t)pos < size) {
		data = lseek(srcfd, pos, SEEK_DATA);
		if (data < 0 && errno == ENXIO)
			break;
		if (data < 0) {
			if (errno != EINVAL && errno != EOPNOTSUPP) {
				rc = vmb_err_sys(err, errno, "cannot copy the file into layer '%s'",
						 id);
				break;
			}
			data = pos;   /* no SEEK_DATA here: all of it is data */
			hole = (off_t)size;
		} else {
			hole = lseek(srcfd, data, SEEK_HOLE);
			if (hole < 0) {
				rc = vmb_err_sys(err, errno, "cannot copy the file into layer '%s'",
						 id);
				break;
			}
		}
		if ((uint64_t)data >= size)
			break;
		if ((uint64_t)hole > size)
			hole = (off_t)size;
		/* whole blocks: the map says DATA per block */
		data = data / VMB_BLOCK_SIZE * VMB_BLOCK_SIZE;
		hole = (off_t)((uint64_t)hole + VMB_BLOCK_SIZE - 1) / VMB_BLOCK_SIZE *
		       VMB_BLOCK_SIZE;
		if ((uint64_t)hole > size)
			hole = (off_t)size;
		rc = vmb_layer_copy(dfd, srcfd, (uint64_t)data, (uint64_t)(hole - data));
		if (rc) {
			rc = vmb_err_sys(err, -rc, "cannot copy the file into layer '%s'", id);
			break;
		}
		rc = vmb_blockmap_set(&m, (uint64_t)data / VMB_BLOCK_SIZE,
				      vmb_layer_blocks((uint64_t)hole) -
				      (uint64_t)data / VMB_BLOCK_SIZE, VMB_DATA);
		if (rc) {
			rc = vmb_err_set(err, -rc, "cannot map layer '%s'", id);
			break;
		}
		pos = hole;
	}
	if (rc) {
		char name[NAME_LEN];

		snprintf(name, sizeof(name), "%s.data", id);
		unlinkat(ls->dirfd, name, 0);
		goto out;
	}
	rc = publish(ls, dfd, id, size, &m, err);
out:
	if (rc)
		id[0] = '\0';
	if (dfd >= 0)
		close(dfd);
	vmb_blockmap_destroy(&m);
	return rc;
}
