/* vfs_xattr.c - extended attributes: the user.* namespace, stored on the backing
 * files (see vfs.h). Other namespaces are refused with EOPNOTSUPP. The names
 * vmb_xattr_reserved gives are the mount's: user.vmbundlefs.lock, .stats and
 * .remote are virtual, .base and .reserved (the marks of a user-namespace store,
 * image/xns.h) are never shown, read, set or removed through the mount. */
#include "config.h"
#include "vfs/vfs_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include "base/pathtree.h"
#include "layer/layer.h"
#include "remote/remote.h"
#include "remote/rimage.h"

#define USER_NS "user."
#define LOCK_XATTR "user.vmbundlefs.lock"   /* virtual: who holds a lock on the file */
#define STATS_XATTR "user.vmbundlefs.stats" /* virtual, on the root: counters */
#define REMOTE_XATTR "user.vmbundlefs.remote" /* virtual, read-only: a file's remote
						  base (source URL, bytes cached) */

ssize_t vmb_xattr_text(const char *text, int len, void *buf, size_t size)
{
	if (size == 0)
		return len;
	if ((size_t)len > size)
		return -ERANGE;
	memcpy(buf, text, (size_t)len);
	return len;
}

/* "backing_read_bytes N\n": for benchmarks and for checking that holes are never
 * read from the store. */
static ssize_t stats_xattr(void *buf, size_t size)
{
	char text[64];
	int len = snprintf(text, sizeof(text), "backing_read_bytes %llu\n",
			   (unsigned long long)vmb_image_backing_read_bytes());

	return vmb_xattr_text(text, len, buf, size);
}

/* The root's user.vmbundlefs.remote: the daemon's remote counters (vmbundlefs
 * status); it has a value once a remote image was opened or read. */
static int root_remote_used(struct vmb_vfs *v)
{
	struct vmb_remote_stats rs;

	vmb_remote_stats(v->remote, &rs);
	return rs.reads || rs.errors || rs.fetches || rs.index_loads;
}

static ssize_t root_remote_xattr(struct vmb_vfs *v, void *buf, size_t size)
{
	struct vmb_remote_stats rs;
	char text[1024];
	int len;

	vmb_remote_stats(v->remote, &rs);
	if (!rs.reads && !rs.errors && !rs.fetches && !rs.index_loads)
		return -ENODATA;
	len = snprintf(text, sizeof(text),
		       "remote_reads %llu\nremote_hits %llu\nremote_fetches %llu\n"
		       "remote_fetch_bytes %llu\nremote_errors %llu\nremote_inflight %llu\n"
		       "remote_readahead %llu\nremote_seconds %llu\ncache_bytes %llu\n"
		       "cache_chunks %llu\nremote_index_loads %llu\nremote_images_kept %llu\n"
		       "remote_queued %llu\ncache_pending_bytes %llu\n"
		       "cache_dir %s\n%s%.255s%s",
		       (unsigned long long)rs.reads, (unsigned long long)rs.hits,
		       (unsigned long long)rs.fetches, (unsigned long long)rs.fetch_bytes,
		       (unsigned long long)rs.errors, (unsigned long long)rs.inflight,
		       (unsigned long long)rs.readahead, (unsigned long long)rs.seconds,
		       (unsigned long long)rs.cache_bytes, (unsigned long long)rs.cache_chunks,
		       (unsigned long long)rs.index_loads, (unsigned long long)rs.images_kept,
		       (unsigned long long)rs.queued, (unsigned long long)rs.cache_pending_bytes,
		       vmb_remote_cache_dir(v->remote), rs.last_error[0] ? "remote_last_error " : "",
		       rs.last_error, rs.last_error[0] ? "\n" : "");
	if (len >= (int)sizeof(text))
		len = (int)sizeof(text) - 1;
	return vmb_xattr_text(text, len, buf, size);
}

/* The remote image under the file at proc (its chain's bottom), with a reference
 * on its chain in *b (put it); NULL when the file has none. */
static struct vmb_rimage *remote_of(struct vmb_vfs *v, const char *proc, struct vmb_base **b)
{
	char val[128], id[VMB_BASE_ID_LEN + 1];
	ssize_t n = getxattr(proc, VMB_BASE_XATTR, val, sizeof(val) - 1);
	struct vmb_rimage *ri;
	struct stat st;

	*b = NULL;
	if (n < VMB_BASE_ID_LEN || stat(proc, &st) < 0 || !vmb_xns_trusts(st.st_uid))
		return NULL;
	memcpy(id, val, VMB_BASE_ID_LEN);
	id[VMB_BASE_ID_LEN] = '\0';
	if (vmb_layers_get(v->layers, id, b, NULL) < 0)
		return NULL;
	ri = vmb_layers_remote_of(*b);
	if (!ri) {
		vmb_base_put(*b);
		*b = NULL;
	}
	return ri;
}

static ssize_t remote_xattr(struct vmb_vfs *v, const char *proc, void *buf, size_t size)
{
	struct vmb_rimage_info inf;
	struct vmb_base *b;
	struct vmb_rimage *ri = remote_of(v, proc, &b);
	char *text;
	int len;
	ssize_t r;

	if (!ri)
		return -ENODATA;
	vmb_rimage_info(ri, &inf, NULL);
	len = asprintf(&text, "url %s\nindex %s\nsize %llu\nchunk_size %llu\n"
		       "cached_bytes %llu\nremote_bytes %llu\nerrors %llu\n%s%s%s",
		       inf.url, inf.index_hex, (unsigned long long)inf.size,
		       (unsigned long long)inf.chunk_size,
		       (unsigned long long)inf.cached_bytes,
		       (unsigned long long)inf.remote_bytes, (unsigned long long)inf.errors,
		       inf.last_error[0] ? "last_error " : "", inf.last_error,
		       inf.last_error[0] ? "\n" : "");
	vmb_base_put(b);
	if (len < 0)
		return -ENOMEM;
	r = vmb_xattr_text(text, len, buf, size);
	free(text);
	return r;
}

static int user_name(const char *name)
{
	return strncmp(name, USER_NS, strlen(USER_NS)) == 0 && name[strlen(USER_NS)];
}

/* Resolve the node for an xattr call; symlinks carry no user xattrs on Linux. */
static int xattr_node(struct vmb_vfs *v, uint64_t ino, const char *name,
		      struct vmb_node **n, char proc[64])
{
	int r;

	if (name && !user_name(name))
		return -EOPNOTSUPP;
	r = vmb_node_get(v, ino, n);
	if (r < 0)
		return r;
	if (S_ISLNK((*n)->type)) {
		vmb_node_put(v, *n);
		return name ? -EPERM : 0;
	}
	vmb_node_procpath(*n, proc);
	return 1;
}

ssize_t vmb_vfs_getxattr(struct vmb_vfs *v, uint64_t ino, const char *name, void *buf,
			 size_t size, struct vmb_err *err)
{
	struct vmb_node *n;
	char proc[64];
	ssize_t r;

	if (vmb_snapview_is(ino))
		return user_name(name) ? vmb_snapview_getxattr(v, ino, name, buf, size)
				       : -EOPNOTSUPP;
	r = xattr_node(v, ino, name, &n, proc);
	if (r <= 0)
		return r == 0 ? -ENODATA : r;
	if (!strcmp(name, LOCK_XATTR)) {
		r = vmb_lock_xattr(v, n, buf, size);
		vmb_node_put(v, n);
		return r;
	}
	if (n == &v->root && !strcmp(name, STATS_XATTR)) {
		vmb_node_put(v, n);
		return stats_xattr(buf, size);
	}
	if (n == &v->root && !strcmp(name, REMOTE_XATTR)) {
		vmb_node_put(v, n);
		return root_remote_xattr(v, buf, size);
	}
	if (!strcmp(name, REMOTE_XATTR)) {
		r = S_ISREG(n->type) ? remote_xattr(v, proc, buf, size) : -ENODATA;
		vmb_node_put(v, n);
		return r;
	}
	if (vmb_xattr_reserved(name)) {   /* the marks of a user-namespace store */
		vmb_node_put(v, n);
		return -ENODATA;
	}
	r = getxattr(proc, name, buf, size);
	if (r < 0)
		r = -errno;
	vmb_node_put(v, n);
	return r;
}

int vmb_vfs_setxattr(struct vmb_vfs *v, uint64_t ino, const char *name, const void *value,
		     size_t size, int flags, struct vmb_err *err)
{
	struct vmb_node *n;
	char proc[64];
	int r;

	if (v->readonly)
		return -EROFS;
	if (vmb_xattr_reserved(name))
		return vmb_err_set(err, EPERM, "%s is maintained by vmbundlefs", name);
	r = xattr_node(v, ino, name, &n, proc);
	if (r <= 0)
		return r;
	vmb_change_begin(v, n, NULL);
	r = setxattr(proc, name, value, size, flags) < 0 ? -errno : 0;
	if (r == 0) {   /* ctime moved: the map's stamp must follow */
		pthread_mutex_lock(&n->ilock);
		if (n->img)
			vmb_image_touch(n->img);
		pthread_mutex_unlock(&n->ilock);
	}
	vmb_change_end(v, n);
	vmb_node_put(v, n);
	return r;
}

/* Append name and its NUL to a listxattr reply (size 0: only count). */
static int list_add(char *buf, size_t size, ssize_t *out, const char *name)
{
	size_t nlen = strlen(name) + 1;

	if (size) {
		if ((size_t)*out + nlen > size)
			return -ERANGE;
		memcpy(buf + *out, name, nlen);
	}
	*out += (ssize_t)nlen;
	return 0;
}

ssize_t vmb_vfs_listxattr(struct vmb_vfs *v, uint64_t ino, char *buf, size_t size,
			  struct vmb_err *err)
{
	struct vmb_node *n;
	char proc[64], *all = NULL;
	ssize_t len, r, out = 0;
	size_t i;

	if (vmb_snapview_is(ino))
		return vmb_snapview_listxattr(v, ino, buf, size);
	r = xattr_node(v, ino, NULL, &n, proc);
	if (r <= 0)
		return r;
	for (;;) {   /* list everything, then keep the user.* names */
		len = listxattr(proc, NULL, 0);
		if (len < 0) {
			r = -errno;
			goto out;
		}
		free(all);
		all = malloc((size_t)len + 1);
		if (!all) {
			r = vmb_err_set(err, ENOMEM, "out of memory");
			goto out;
		}
		len = listxattr(proc, all, (size_t)len);
		if (len >= 0)
			break;
		if (errno != ERANGE) {
			r = -errno;
			goto out;
		}
	}
	for (i = 0; i < (size_t)len;) {
		size_t nlen = strlen(all + i) + 1;
		if (user_name(all + i) && !vmb_xattr_reserved(all + i)) {
			r = list_add(buf, size, &out, all + i);
			if (r < 0)
				goto out;
		}
		i += nlen;
	}
	/* The virtual attributes are listed where they have a value, as ext4 lists
	 * only the attributes that exist (getfattr -d -m - shows them). */
	if (n == &v->root) {
		r = list_add(buf, size, &out, STATS_XATTR);
		if (r < 0)
			goto out;
		if (root_remote_used(v) && (r = list_add(buf, size, &out, REMOTE_XATTR)) < 0)
			goto out;
	}
	if (S_ISREG(n->type)) {
		struct vmb_base *b;

		if (remote_of(v, proc, &b)) {
			vmb_base_put(b);
			r = list_add(buf, size, &out, REMOTE_XATTR);
			if (r < 0)
				goto out;
		}
	}
	if (S_ISREG(n->type) && vmb_lock_xattr(v, n, NULL, 0) > 0) {
		r = list_add(buf, size, &out, LOCK_XATTR);
		if (r < 0)
			goto out;
	}
	r = out;
out:
	free(all);
	vmb_node_put(v, n);
	return r;
}

int vmb_vfs_removexattr(struct vmb_vfs *v, uint64_t ino, const char *name,
			struct vmb_err *err)
{
	struct vmb_node *n;
	char proc[64];
	int r;

	if (v->readonly)
		return -EROFS;
	if (vmb_xattr_reserved(name))
		return vmb_err_set(err, EPERM, "%s is maintained by vmbundlefs", name);
	r = xattr_node(v, ino, name, &n, proc);
	if (r <= 0)
		return r == 0 ? -ENODATA : r;
	vmb_change_begin(v, n, NULL);
	r = removexattr(proc, name) < 0 ? -errno : 0;
	vmb_change_end(v, n);
	vmb_node_put(v, n);
	return r;
}
