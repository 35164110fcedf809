/* store_walk.c - walking a store's bundles: vmbundlefs ls and fsck (see store.h). */
#include "config.h"
#include "store/store.h"
#include "image/image.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define WALK_DEPTH_MAX 64

static int walk_dir(int dfd, char *path, size_t plen, int depth, vmb_walk_fn fn, void *arg,
		    struct vmb_err *err)
{
	struct dirent *de;
	DIR *d;
	int r = 0;

	if (depth > WALK_DEPTH_MAX)
		return vmb_err_set(err, ELOOP, "'%s' is nested too deeply", path);
	d = fdopendir(dfd);
	if (!d) {
		r = vmb_err_sys(err, errno, "cannot read directory '%s'", path);
		close(dfd);
		return r;
	}
	while (r == 0 && (errno = 0, de = readdir(d))) {
		struct stat st;
		size_t nlen = strlen(de->d_name);
		int fd;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (plen + 1 + nlen >= PATH_MAX) {
			r = vmb_err_set(err, ENAMETOOLONG, "path under '%s' is too long", path);
			break;
		}
		snprintf(path + plen, PATH_MAX - plen, "/%s", de->d_name);
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno != ENOENT)
				r = vmb_err_sys(err, errno, "cannot stat '%s'", path);
			continue;
		}
		if (S_ISDIR(st.st_mode)) {
			fd = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
				    O_CLOEXEC);
			if (fd < 0)
				r = vmb_err_sys(err, errno, "cannot open directory '%s'", path);
			else
				r = walk_dir(fd, path, plen + 1 + nlen, depth + 1, fn, arg, err);
		} else if (S_ISREG(st.st_mode)) {
			fd = openat(dirfd(d), de->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
			if (fd < 0) {
				r = vmb_err_sys(err, errno, "cannot open '%s'", path);
			} else {
				r = fn(arg, path, fd, &st);
				close(fd);
			}
		}
		path[plen] = '\0';
	}
	if (r == 0 && errno)
		r = vmb_err_sys(err, errno, "cannot read directory '%s'", path);
	closedir(d);
	return r;
}

int vmb_store_walk(struct vmb_store *s, const char *bundle, vmb_walk_fn fn, void *arg,
		   struct vmb_err *err)
{
	char *path;
	int fd, r;

	path = malloc(PATH_MAX);
	if (!path)
		return vmb_err_set(err, ENOMEM, "out of memory");
	snprintf(path, PATH_MAX, "%s", bundle);
	fd = openat(s->dirfd, bundle, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		r = vmb_err_sys(err, errno, "cannot open bundle '%s'", bundle);
	else
		r = walk_dir(fd, path, strlen(path), 0, fn, arg, err);
	free(path);
	return r;
}

struct list_acc {
	struct vmb_store *s;
	struct vmb_bundle_info *b;
};

static int list_file(void *arg, const char *relpath, int fd, const struct stat *st)
{
	struct list_acc *a = arg;
	struct vmb_blockmap m;
	struct vmb_err e;
	uint64_t size;
	int rebuilt;

	vmb_blockmap_init(&m);
	a->b->files++;
	a->b->logical += (uint64_t)st->st_size;
	if (vmb_image_load_map(fd, a->s->mapfd, relpath, &m, &size, &rebuilt, &e) < 0) {
		fprintf(stderr, "vmbundlefs: %s\n", e.msg);
		a->b->damaged = 1;
		a->b->allocated += (uint64_t)st->st_blocks * 512;
	} else {
		a->b->allocated += m.data_blocks * VMB_BLOCK_SIZE;
	}
	vmb_blockmap_destroy(&m);
	return 0;
}

static int by_name(const void *x, const void *y)
{
	const struct vmb_bundle_info *a = x, *b = y;
	return strcmp(a->name, b->name);
}

void vmb_bundle_list_free(struct vmb_bundle_info *list, size_t n)
{
	size_t i;

	if (!list)
		return;
	for (i = 0; i < n; i++)
		free(list[i].name);
	free(list);
}

int vmb_store_list(struct vmb_store *s, struct vmb_bundle_info **out, size_t *n,
		   struct vmb_err *err)
{
	struct vmb_bundle_info *list = NULL;
	size_t cnt = 0, cap = 0;
	struct dirent *de;
	DIR *d;
	int fd, r = 0;

	*out = NULL;
	*n = 0;
	fd = openat(s->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || !(d = fdopendir(fd))) {
		r = vmb_err_sys(err, errno, "cannot read store '%s'", s->path);
		if (fd >= 0)
			close(fd);
		return r;
	}
	while ((de = readdir(d))) {
		struct list_acc acc;
		struct stat st;

		if (de->d_name[0] == '.' && (!de->d_name[1] || !strcmp(de->d_name, "..")))
			continue;
		if (vmb_store_reserved(de->d_name))
			continue;
		if (fstatat(s->dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISDIR(st.st_mode))
			continue;
		if (cnt == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			struct vmb_bundle_info *nl = realloc(list, ncap * sizeof(*nl));
			if (!nl) {
				r = vmb_err_set(err, ENOMEM, "out of memory");
				goto out;
			}
			list = nl;
			cap = ncap;
		}
		memset(&list[cnt], 0, sizeof(list[cnt]));
		list[cnt].name = strdup(de->d_name);
		if (!list[cnt].name) {
			r = vmb_err_set(err, ENOMEM, "out of memory");
			goto out;
		}
		acc.s = s;
		acc.b = &list[cnt++];
		r = vmb_store_walk(s, de->d_name, list_file, &acc, err);
		if (r < 0)
			goto out;
	}
	if (cnt)
		qsort(list, cnt, sizeof(*list), by_name);
out:
	closedir(d);
	if (r < 0) {
		vmb_bundle_list_free(list, cnt);
		return r;
	}
	*out = list;
	*n = cnt;
	return 0;
}
