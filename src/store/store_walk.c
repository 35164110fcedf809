/* store_walk.c - walking directory trees without a depth limit, and the walks of a
 * store's bundles: vmbundlefs ls, fsck, export (see store.h).
 *
 * The walk works on directory descriptors only: every entry is reached with
 * fstatat/openat relative to its parent's descriptor (O_NOFOLLOW, O_DIRECTORY), so
 * no path is ever handed to the kernel and depth is bounded by memory alone. The
 * stack is an array on the heap, one frame per directory being walked, holding the
 * directory's sorted names (read once, when it is entered) and the position in
 * them. At most WALK_FDS frames hold an open descriptor: descending past that closes
 * the shallowest one (the top's own stays open); coming back up reopens a closed
 * parent with openat(child, ".."), accepted only if its device and inode are the
 * ones recorded when it was entered (a directory moved meanwhile fails the walk with
 * ESTALE rather than walking somewhere else). A deep chain therefore costs one
 * extra open per level, and a shallow tree none.
 *
 * Paths are built for the callbacks (an archive needs the full name) and for
 * messages; only messages are shortened (vmb_path_msg), and never fail.
 */
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

#define WALK_FDS 16        /* open directory descriptors below the top, at most */
#define MSG_HEAD 40        /* bytes kept at the start of a shortened path */
#define MSG_TAIL (VMB_PATH_MSG_MAX - MSG_HEAD - 3)   /* and at its end: 277 */

/* A message holds at most VMB_ERR_MAX (512) bytes: a longer path would push out
 * what the message says about it, so paths are shortened well before PATH_MAX. */
const char *vmb_path_msg(const char *path, size_t len, char buf[VMB_PATH_MSG_MAX + 1])
{
	_Static_assert(MSG_TAIL >= NAME_MAX + 1, "the last name must fit");
	if (len <= VMB_PATH_MSG_MAX)
		return path;
	memcpy(buf, path, MSG_HEAD);
	memcpy(buf + MSG_HEAD, "...", 3);
	memcpy(buf + MSG_HEAD + 3, path + len - MSG_TAIL, MSG_TAIL);
	buf[VMB_PATH_MSG_MAX] = '\0';
	return buf;
}

struct frame {
	int fd;                 /* -1 while closed */
	struct stat st;         /* the directory's own */
	char **names;           /* sorted */
	size_t n, next;
	size_t plen;            /* length of its path */
};

struct walk {
	struct frame *f;
	size_t depth, cap;
	size_t nopen;           /* frames 1.. with an open fd */
	size_t lowest_open;     /* shallowest frame (>= 1) that may hold an open fd */
	char *path;
	size_t pcap;
	char msg[VMB_PATH_MSG_MAX + 1];
};

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_names(char **v, size_t n)
{
	while (n)
		free(v[--n]);
	free(v);
}

/* The sorted names of directory fd (not consumed). 0 or -errno. */
static int list_names(int fd, char ***out, size_t *n)
{
	char **v = NULL;
	size_t cnt = 0, cap = 0;
	struct dirent *de;
	DIR *d;
	int dfd = dup(fd), r = 0;

	*out = NULL;
	*n = 0;
	if (dfd < 0)
		return -errno;
	d = fdopendir(dfd);
	if (!d) {
		r = -errno;
		close(dfd);
		return r;
	}
	rewinddir(d);
	while ((errno = 0, de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (cnt == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			char **nv = realloc(v, ncap * sizeof(*nv));

			if (!nv) {
				r = -ENOMEM;
				goto out;
			}
			v = nv;
			cap = ncap;
		}
		v[cnt] = strdup(de->d_name);
		if (!v[cnt]) {
			r = -ENOMEM;
			goto out;
		}
		cnt++;
	}
	if (errno)
		r = -errno;
out:
	closedir(d);
	if (r < 0) {
		free_names(v, cnt);
		return r;
	}
	if (cnt)
		qsort(v, cnt, sizeof(*v), by_name);
	*out = v;
	*n = cnt;
	return 0;
}

static const char *msg(struct walk *w, size_t len)
{
	return vmb_path_msg(w->path, len, w->msg);
}

/* path[0..plen) + "/" + name. */
static int path_set(struct walk *w, size_t plen, const char *name, size_t *len)
{
	size_t nl = strlen(name), need = plen + 1 + nl + 1;

	if (need > w->pcap) {
		size_t ncap = w->pcap * 2 > need ? w->pcap * 2 : need;
		char *np = realloc(w->path, ncap);

		if (!np)
			return -ENOMEM;
		w->path = np;
		w->pcap = ncap;
	}
	w->path[plen] = '/';
	memcpy(w->path + plen + 1, name, nl + 1);
	*len = plen + 1 + nl;
	return 0;
}

/* Push directory fd (consumed) with stat st, whose path is path[0..plen). */
static int push(struct walk *w, int fd, const struct stat *st, size_t plen,
		struct vmb_err *err)
{
	struct frame *f;
	int r;

	if (w->depth == w->cap) {
		size_t ncap = w->cap ? w->cap * 2 : 32;
		struct frame *nf = realloc(w->f, ncap * sizeof(*nf));

		if (!nf) {
			close(fd);
			return vmb_err_set(err, ENOMEM, "out of memory");
		}
		w->f = nf;
		w->cap = ncap;
	}
	f = &w->f[w->depth];
	memset(f, 0, sizeof(*f));
	f->fd = fd;
	f->st = *st;
	f->plen = plen;
	r = list_names(fd, &f->names, &f->n);
	if (r < 0) {
		close(fd);
		return vmb_err_sys(err, -r, "cannot read directory '%s'", msg(w, plen));
	}
	w->depth++;
	if (w->depth > 1)
		w->nopen++;
	/* Too many open: close the shallowest (never the top's). */
	if (w->nopen > WALK_FDS) {
		while (w->f[w->lowest_open].fd < 0)
			w->lowest_open++;
		close(w->f[w->lowest_open].fd);
		w->f[w->lowest_open].fd = -1;
		w->lowest_open++;
		w->nopen--;
	}
	return 0;
}

/* Pop the top frame, reopening its parent through ".." if it was closed. The open
 * frames above the top's are always the run [lowest_open, depth). */
static int pop(struct walk *w, struct vmb_err *err)
{
	size_t pi = w->depth - 2;
	struct frame *f = &w->f[w->depth - 1], *p = &w->f[pi];
	struct stat st;
	int r = 0;

	if (p->fd < 0) {
		p->fd = openat(f->fd, "..", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (p->fd < 0)
			r = vmb_err_sys(err, errno, "cannot reopen directory '%s'",
					msg(w, p->plen));
		else if (fstat(p->fd, &st) < 0)
			r = vmb_err_sys(err, errno, "cannot stat directory '%s'",
					msg(w, p->plen));
		else if (st.st_dev != p->st.st_dev || st.st_ino != p->st.st_ino)
			r = vmb_err_set(err, ESTALE, "directory '%s' was moved while it was "
					"walked; run the command again", msg(w, f->plen));
		if (r < 0 && p->fd >= 0) {
			close(p->fd);
			p->fd = -1;
		}
		if (p->fd >= 0) {
			w->nopen++;
			w->lowest_open = pi;
		}
	}
	close(f->fd);
	f->fd = -1;
	free_names(f->names, f->n);
	f->names = NULL;
	f->n = 0;
	w->nopen--;
	w->depth--;
	if (w->lowest_open > w->depth)
		w->lowest_open = w->depth;
	if (w->lowest_open < 1)
		w->lowest_open = 1;
	return r;
}

int vmb_tree_walk(int dfd, const char *top, vmb_tree_fn fn, void *arg, struct vmb_err *err)
{
	struct walk w;
	struct stat st;
	int fd, r;

	memset(&w, 0, sizeof(w));
	w.lowest_open = 1;
	w.pcap = strlen(top) + 256;
	w.path = malloc(w.pcap);
	if (!w.path)
		return vmb_err_set(err, ENOMEM, "out of memory");
	memcpy(w.path, top, strlen(top) + 1);
	fd = fcntl(dfd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0 || fstat(fd, &st) < 0) {
		r = vmb_err_sys(err, errno, "cannot read directory '%s'", top);
		if (fd >= 0)
			close(fd);
		goto out;
	}
	r = push(&w, fd, &st, strlen(top), err);
	while (r == 0 && w.depth > 0) {
		struct frame *f = &w.f[w.depth - 1];
		struct vmb_tree_ent e;
		size_t len;

		if (f->next == f->n) {
			struct frame done;

			if (w.depth == 1)
				break;
			done = *f;
			r = pop(&w, err);
			if (r < 0)
				break;
			f = &w.f[w.depth - 1];
			/* The directory just finished: its post-order event. */
			path_set(&w, f->plen, f->names[f->next - 1], &len);   /* fits */
			e.dfd = f->fd;
			e.name = f->names[f->next - 1];
			e.path = w.path;
			e.pathlen = len;
			e.msgpath = msg(&w, len);
			e.st = &done.st;
			e.depth = w.depth;
			r = fn(arg, VMB_TREE_DIR_POST, &e, err);
			continue;
		}
		e.name = f->names[f->next++];
		if (path_set(&w, f->plen, e.name, &len) < 0) {
			r = vmb_err_set(err, ENOMEM, "out of memory");
			break;
		}
		e.dfd = f->fd;
		e.path = w.path;
		e.pathlen = len;
		e.msgpath = msg(&w, len);
		e.st = &st;
		e.depth = w.depth;
		if (fstatat(f->fd, e.name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno != ENOENT)   /* gone meanwhile: nothing to walk */
				r = vmb_err_sys(err, errno, "cannot stat '%s'", e.msgpath);
			continue;
		}
		if (!S_ISDIR(st.st_mode)) {
			r = fn(arg, VMB_TREE_FILE, &e, err);
			continue;
		}
		r = fn(arg, VMB_TREE_DIR, &e, err);
		if (r != 0) {
			if (r == VMB_TREE_SKIP)
				r = 0;
			continue;
		}
		fd = openat(f->fd, e.name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0) {
			if (errno != ENOENT)
				r = vmb_err_sys(err, errno, "cannot open directory '%s'",
						e.msgpath);
			continue;
		}
		if (fstat(fd, &st) < 0) {
			r = vmb_err_sys(err, errno, "cannot stat directory '%s'", e.msgpath);
			close(fd);
			continue;
		}
		r = push(&w, fd, &st, len, err);
	}
	while (w.depth > 0) {
		struct frame *f = &w.f[--w.depth];

		if (f->fd >= 0)
			close(f->fd);
		free_names(f->names, f->n);
	}
out:
	free(w.f);
	free(w.path);
	return r;
}

/* ---- the regular files of a bundle ---------------------------------------------- */

struct files {
	vmb_walk_fn fn;
	void *arg;
};

static int each_file(void *arg, enum vmb_tree_event ev, const struct vmb_tree_ent *e,
		     struct vmb_err *err)
{
	struct files *c = arg;
	int fd, r;

	if (ev != VMB_TREE_FILE || !S_ISREG(e->st->st_mode))
		return 0;
	fd = openat(e->dfd, e->name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : vmb_err_sys(err, errno, "cannot open '%s'",
							 e->msgpath);
	r = c->fn(c->arg, e->msgpath, fd, e->st);
	close(fd);
	return r;
}

int vmb_store_walk(struct vmb_store *s, const char *bundle, vmb_walk_fn fn, void *arg,
		   struct vmb_err *err)
{
	struct files c = { fn, arg };
	int fd, r;

	fd = openat(s->dirfd, bundle, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return vmb_err_sys(err, errno, "cannot open bundle '%s'", bundle);
	r = vmb_tree_walk(fd, bundle, each_file, &c, err);
	close(fd);
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
	/* A file over layers counts its own delta's data here (its layers are
	 * counted once per store by vmbundlefs ls: own and shared bytes). */
	if (vmb_image_load_map2(fd, a->s->mapfd, relpath, NULL, &m, &size, &rebuilt, NULL,
				&e) < 0) {
		fprintf(stderr, "vmbundlefs: %s\n", e.msg);
		a->b->damaged = 1;
		a->b->allocated += (uint64_t)st->st_blocks * 512;
	} else {
		a->b->allocated += m.data_blocks * VMB_BLOCK_SIZE;
	}
	vmb_blockmap_destroy(&m);
	return 0;
}

static int by_bundle(const void *x, const void *y)
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
		qsort(list, cnt, sizeof(*list), by_bundle);
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
