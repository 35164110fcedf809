/* archive_export.c - write a bundle as an archive (see vmb_archive.h).
 *
 * Regular files are read from their backing files, guided by their maps: in tar, a
 * file with holes becomes a pax entry with a GNU sparse map (format 1.0) listing its
 * data extents, and only those bytes are read and stored; zip has no sparse entries,
 * so holes are fed to deflate as zeros from a read-only anonymous mapping (the zero
 * page: no memory, no reads of the backing file).
 *
 * A file with a base (a delta over layers, LAYERS.md) is read through its image:
 * its data extents are what reads as data through the chain (SEEK_DATA/SEEK_HOLE
 * of the image), its bytes come from the delta and the layers. The archive is
 * self-contained: it holds every file's whole content and no base.
 */
#include "config.h"
#include "archive/vmb_archive.h"
#include "image/image.h"
#include "layer/layer.h"
#include "store/manifest.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#define BS ((uint64_t)VMB_BLOCK_SIZE)
#define CHUNK (1u << 20)                  /* data read per pread */
#define ZEROS ((size_t)1 << 30)           /* the zero mapping */

struct hlink {
	dev_t dev;
	ino_t ino;
	char *path;
};

struct exp {
	struct vmb_store *s;
	const struct vmb_export_opts *o;
	const char *name;
	struct archive *a;
	struct archive_entry *e;
	int tar;
	unsigned char *buf;
	const unsigned char *zeros;
	struct hlink *links;
	size_t nlinks, caplinks;
	uint64_t done, total;
	const char *path;         /* archive path of the current entry: NAME/... (whole) */
	const char *rel;          /* the same without NAME/, for messages (shortened
				   * past PATH_MAX, store.h) */
	struct vmb_layers *layers;   /* the store's, for files with a base */
	int xattr_noted;          /* zip: the note about xattrs was given */
};

static int cancelled(const struct exp *x)
{
	return x->o->cancel && *x->o->cancel;
}

static void progress(struct exp *x, uint64_t n)
{
	x->done += n;
	if (x->o->progress)
		x->o->progress(x->o->progress_arg, x->done, x->total);
}

/* ---- formats --------------------------------------------------------------------- */

static const struct {
	const char *name;
	enum vmb_archive_format f;
} fmt_names[] = {
	{ "tar", VMB_AFMT_TAR }, { "tar.gz", VMB_AFMT_TAR_GZ }, { "tgz", VMB_AFMT_TAR_GZ },
	{ "tar.zst", VMB_AFMT_TAR_ZST }, { "tzst", VMB_AFMT_TAR_ZST },
	{ "tar.xz", VMB_AFMT_TAR_XZ }, { "txz", VMB_AFMT_TAR_XZ }, { "zip", VMB_AFMT_ZIP },
	{ "ova", VMB_AFMT_TAR },
};

int vmb_archive_format_parse(const char *s, enum vmb_archive_format *f)
{
	size_t i;

	for (i = 0; i < sizeof(fmt_names) / sizeof(fmt_names[0]); i++)
		if (!strcmp(s, fmt_names[i].name)) {
			*f = fmt_names[i].f;
			return 0;
		}
	return -EINVAL;
}

int vmb_archive_format_from_name(const char *path, enum vmb_archive_format *f)
{
	size_t i, n = strlen(path);

	*f = VMB_AFMT_TAR;
	for (i = 0; i < sizeof(fmt_names) / sizeof(fmt_names[0]); i++) {
		size_t k = strlen(fmt_names[i].name);

		if (n > k + 1 && path[n - k - 1] == '.' &&
		    !strcasecmp(path + n - k, fmt_names[i].name)) {
			*f = fmt_names[i].f;
			return 1;
		}
	}
	return 0;
}

const char *vmb_archive_format_name(enum vmb_archive_format f)
{
	switch (f) {
	case VMB_AFMT_TAR: return "tar";
	case VMB_AFMT_TAR_GZ: return "tar.gz";
	case VMB_AFMT_TAR_ZST: return "tar.zst";
	case VMB_AFMT_TAR_XZ: return "tar.xz";
	case VMB_AFMT_ZIP: return "zip";
	}
	return "?";
}

static int open_writer(struct exp *x, int fd, struct vmb_err *err)
{
	struct archive *a = archive_write_new();
	int r = ARCHIVE_OK;

	if (!a)
		return vmb_err_set(err, ENOMEM, "out of memory");
	x->a = a;
	x->tar = x->o->format != VMB_AFMT_ZIP;
	if (x->tar)
		r = archive_write_set_format_pax_restricted(a);
	else
		r = archive_write_set_format_zip(a);
	if (r == ARCHIVE_OK) {
		switch (x->o->format) {
		case VMB_AFMT_TAR_GZ: r = archive_write_add_filter_gzip(a); break;
		case VMB_AFMT_TAR_ZST: r = archive_write_add_filter_zstd(a); break;
		case VMB_AFMT_TAR_XZ: r = archive_write_add_filter_xz(a); break;
		default: break;
		}
	}
	if (r < ARCHIVE_WARN)
		return vmb_archive_err(err, a, "cannot set up a %s writer",
				       vmb_archive_format_name(x->o->format));
	archive_write_set_bytes_per_block(a, 64 * 1024);
	archive_write_set_bytes_in_last_block(a, 1);
	if (archive_write_open_fd(a, fd) != ARCHIVE_OK)
		return vmb_archive_err(err, a, "cannot start the archive");
	return 0;
}

/* ---- data ------------------------------------------------------------------------ */

static int put(struct exp *x, const void *p, size_t n, struct vmb_err *err)
{
	while (n > 0) {
		la_ssize_t k = archive_write_data(x->a, p, n);

		if (k <= 0)
			return vmb_archive_err(err, x->a, "cannot write '%s' to the archive",
					       x->rel);
		p = (const unsigned char *)p + k;
		n -= (size_t)k;
	}
	return 0;
}

/* A hole of len bytes: skipped by the tar writer's sparse map, deflated in zip. */
static int put_hole(struct exp *x, uint64_t len, struct vmb_err *err)
{
	size_t step = x->tar ? ZEROS : CHUNK;

	while (len > 0) {
		size_t n = len < step ? (size_t)len : step;
		int r;

		if (cancelled(x))
			return vmb_err_set(err, EINTR, "interrupted");
		r = put(x, x->zeros, n, err);
		if (r < 0)
			return r;
		len -= n;
	}
	return 0;
}

static int put_data(struct exp *x, int fd, uint64_t off, uint64_t len,
		    struct vmb_err *err)
{
	while (len > 0) {
		size_t n = len < CHUNK ? (size_t)len : CHUNK;
		ssize_t k;
		int r;

		if (cancelled(x))
			return vmb_err_set(err, EINTR, "interrupted");
		k = pread(fd, x->buf, n, (off_t)off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return vmb_err_sys(err, errno, "cannot read '%s'", x->rel);
		if (k == 0)
			return vmb_err_set(err, EIO, "'%s' shrank while it was being exported",
					   x->rel);
		r = put(x, x->buf, (size_t)k, err);
		if (r < 0)
			return r;
		progress(x, (uint64_t)k);
		off += (uint64_t)k;
		len -= (uint64_t)k;
	}
	return 0;
}

/* ---- entries --------------------------------------------------------------------- */

static void entry_meta(struct exp *x, const struct stat *st)
{
	archive_entry_clear(x->e);
	archive_entry_set_pathname(x->e, x->path);
	archive_entry_set_perm(x->e, st->st_mode & 07777);
	archive_entry_set_uid(x->e, st->st_uid);
	archive_entry_set_gid(x->e, st->st_gid);
	archive_entry_set_mtime(x->e, st->st_mtim.tv_sec, st->st_mtim.tv_nsec);
}

/* zip keeps no xattrs: say so once, naming the first entry that had some. */
static void xattr_note(struct exp *x)
{
	char msg[VMB_ERR_MAX];

	if (x->xattr_noted || !x->o->note)
		return;
	x->xattr_noted = 1;
	snprintf(msg, sizeof(msg), "zip keeps no extended attributes: the user.* "
		 "xattrs of %s%s%s (and of any other file) are not in the archive; "
		 "export to a tar format to keep them",
		 strcmp(x->rel, ".") ? "'" : "", strcmp(x->rel, ".") ? x->rel :
		 "the bundle's directory", strcmp(x->rel, ".") ? "'" : "");
	x->o->note(x->o->note_arg, msg);
}

/* The user.* xattrs of fd (vmb_archive_xattr_kept) into the current entry. */
static int entry_xattrs(struct exp *x, int fd, struct vmb_err *err)
{
	char *list = NULL, *p;
	ssize_t n, v;
	int r = 0;

	for (;;) {
		n = flistxattr(fd, NULL, 0);
		if (n < 0 && (errno == ENOTSUP || errno == EOPNOTSUPP))
			return 0;
		if (n < 0)
			return vmb_err_sys(err, errno, "cannot list the xattrs of '%s'", x->rel);
		if (n == 0)
			return 0;
		list = malloc((size_t)n);
		if (!list)
			return vmb_err_set(err, ENOMEM, "out of memory");
		n = flistxattr(fd, list, (size_t)n);
		if (n >= 0)
			break;
		free(list);
		list = NULL;
		if (errno != ERANGE)
			return vmb_err_sys(err, errno, "cannot list the xattrs of '%s'", x->rel);
	}
	for (p = list; p < list + n; p += strlen(p) + 1) {
		if (!vmb_archive_xattr_kept(p))
			continue;
		if (!x->tar) {
			xattr_note(x);
			break;
		}
		/* x->buf (CHUNK) holds any value (XATTR_SIZE_MAX); the entry copies it */
		v = fgetxattr(fd, p, x->buf, CHUNK);
		if (v < 0 && errno == ENODATA)
			continue;   /* removed meanwhile */
		if (v < 0) {
			r = vmb_err_sys(err, errno, "cannot read xattr '%s' of '%s'", p, x->rel);
			break;
		}
		archive_entry_xattr_add_entry(x->e, p, x->buf, (size_t)v);
	}
	free(list);
	return r;
}

/* The xattrs of a snapshot's record (its manifest keeps the user.* ones). */
static void entry_mf_xattrs(struct exp *x, const struct vmb_xattr *xa, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (!vmb_archive_xattr_kept(xa[i].name))
			continue;
		if (!x->tar) {
			xattr_note(x);
			return;
		}
		archive_entry_xattr_add_entry(x->e, xa[i].name, xa[i].value, xa[i].len);
	}
}

static int header(struct exp *x, struct vmb_err *err)
{
	int r = archive_write_header(x->a, x->e);

	if (r < ARCHIVE_WARN)
		return vmb_archive_err(err, x->a, "cannot write the entry of '%s'",
				       x->rel);
	return 0;
}

/* The first path of an inode with several links, or NULL (and remember this one). */
static int hardlink_of(struct exp *x, const struct stat *st, const char **first,
		       struct vmb_err *err)
{
	size_t i;

	*first = NULL;
	for (i = 0; i < x->nlinks; i++)
		if (x->links[i].dev == st->st_dev && x->links[i].ino == st->st_ino) {
			*first = x->links[i].path;
			return 0;
		}
	if (x->nlinks == x->caplinks) {
		size_t ncap = x->caplinks ? x->caplinks * 2 : 16;
		struct hlink *nl = realloc(x->links, ncap * sizeof(*nl));

		if (!nl)
			return vmb_err_set(err, ENOMEM, "out of memory");
		x->links = nl;
		x->caplinks = ncap;
	}
	x->links[x->nlinks].path = strdup(x->path);
	if (!x->links[x->nlinks].path)
		return vmb_err_set(err, ENOMEM, "out of memory");
	x->links[x->nlinks].dev = st->st_dev;
	x->links[x->nlinks].ino = st->st_ino;
	x->nlinks++;
	return 0;
}

/* A file with a base, through its image; fd is consumed. The header is written
 * here (after the common fields). */
static int do_image(struct exp *x, struct vmb_image *img, struct vmb_err *err);

static int do_layered(struct exp *x, int fd, struct vmb_err *err)
{
	struct vmb_base_resolver res = vmb_layers_resolver(x->layers);
	struct vmb_image *img = NULL;
	int r;

	r = vmb_image_open2(&img, fd, x->s->mapfd, x->rel, NULL, &res, err);
	if (r < 0) {
		close(fd);
		return r;
	}
	r = do_image(x, img, err);
	vmb_image_close(img);
	return r;
}

/* The content of img as the current entry (its header written here). */
static int do_image(struct exp *x, struct vmb_image *img, struct vmb_err *err)
{
	uint64_t size, off, data, hole = 0;
	int r = 0, holes;

	size = vmb_image_size(img);
	archive_entry_set_size(x->e, (la_int64_t)size);
	/* Data extents (tar): the runs that read as data through the chain; none
	 * for a file that is all data (as do_file). */
	r = vmb_image_seek(img, 0, SEEK_HOLE, &hole, err);
	if (r < 0 && r != -ENXIO)
		goto out;
	r = 0;
	holes = hole < size;
	for (off = holes ? 0 : size; x->tar && off < size; off = hole) {
		r = vmb_image_seek(img, off, SEEK_DATA, &data, err);
		if (r == -ENXIO)
			break;
		if (r < 0)
			goto out;
		r = vmb_image_seek(img, data, SEEK_HOLE, &hole, err);
		if (r < 0)
			goto out;
		archive_entry_sparse_add_entry(x->e, (la_int64_t)data, (la_int64_t)(hole - data));
	}
	if (x->tar && holes && archive_entry_sparse_count(x->e) == 0)
		archive_entry_sparse_add_entry(x->e, (la_int64_t)size, 0);
	r = header(x, err);
	for (off = 0; r == 0 && off < size; off = hole) {
		r = vmb_image_seek(img, off, SEEK_DATA, &data, err);
		if (r == -ENXIO) {
			data = hole = size;
			r = 0;
		} else if (r == 0) {
			r = vmb_image_seek(img, data, SEEK_HOLE, &hole, err);
		}
		if (r < 0)
			break;
		r = put_hole(x, data - off, err);
		while (r == 0 && data < hole) {
			size_t n = hole - data < CHUNK ? (size_t)(hole - data) : CHUNK;
			ssize_t k;

			if (cancelled(x)) {
				r = vmb_err_set(err, EINTR, "interrupted");
				break;
			}
			k = vmb_image_read(img, x->buf, n, data, NULL, err);
			if (k < 0) {
				r = (int)k;
				break;
			}
			if (k == 0) {
				r = vmb_err_set(err, EIO, "'%s' shrank while it was being "
						"exported", x->rel);
				break;
			}
			r = put(x, x->buf, (size_t)k, err);
			progress(x, (uint64_t)k);
			data += (uint64_t)k;
		}
	}
out:
	return r;
}

static int do_file(struct exp *x, int dfd, const char *name, struct vmb_err *err)
{
	struct vmb_blockmap m;
	struct stat st;
	uint64_t size, nblk, blk = 0, found, run, off, len;
	const char *first = NULL;
	int fd, rebuilt, r;

	vmb_blockmap_init(&m);
	fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return vmb_err_sys(err, errno, "cannot open '%s'", x->rel);
	if (fstat(fd, &st) < 0) {
		r = vmb_err_sys(err, errno, "cannot stat '%s'", x->rel);
		goto out;
	}
	entry_meta(x, &st);
	archive_entry_set_filetype(x->e, AE_IFREG);
	if (x->tar && st.st_nlink > 1) {
		r = hardlink_of(x, &st, &first, err);
		if (r < 0)
			goto out;
		if (first) {
			archive_entry_set_hardlink(x->e, first);
			archive_entry_set_size(x->e, 0);
			r = header(x, err);
			goto out;
		}
	}
	r = entry_xattrs(x, fd, err);
	if (r < 0)
		goto out;
	{
		char id[VMB_BASE_ID_LEN + 1];
		uint64_t limit;

		r = vmb_image_get_base_xattr(fd, x->rel, id, &limit, err);
		if (r < 0)
			goto out;
		if (r > 0) {
			vmb_blockmap_destroy(&m);
			return do_layered(x, fd, err);
		}
	}
	r = vmb_image_load_map(fd, x->s->mapfd, x->rel, &m, &size, &rebuilt, err);
	if (r < 0)
		goto out;
	nblk = (size + BS - 1) / BS;
	archive_entry_set_size(x->e, (la_int64_t)size);
	if (x->tar && m.data_blocks < nblk) {
		/* Holes: list the data extents (the size is set first: libarchive
		 * drops extents past it). An all-hole file gets one empty extent at
		 * its end, which keeps it sparse. */
		while (blk < nblk && vmb_blockmap_next(&m, blk, VMB_M_DATA, &found) == 0 &&
		       found < nblk) {
			vmb_blockmap_get(&m, found, &run);
			if (found + run > nblk)
				run = nblk - found;
			off = found * BS;
			len = run * BS;
			if (off + len > size)
				len = size - off;
			archive_entry_sparse_add_entry(x->e, (la_int64_t)off, (la_int64_t)len);
			blk = found + run;
		}
		if (archive_entry_sparse_count(x->e) == 0)
			archive_entry_sparse_add_entry(x->e, (la_int64_t)size, 0);
	}
	r = header(x, err);
	if (r < 0)
		goto out;
	/* The logical stream in order: holes (never read) and data extents. */
	for (blk = 0; blk < nblk;) {
		enum vmb_bstate stt = vmb_blockmap_get(&m, blk, &run);

		off = blk * BS;
		if (blk + run > nblk)
			run = nblk - blk;
		len = run * BS;
		if (off + len > size)
			len = size - off;
		if (stt == VMB_DATA)
			r = put_data(x, fd, off, len, err);
		else
			r = put_hole(x, len, err);
		if (r < 0)
			goto out;
		blk += run;
	}
out:
	vmb_blockmap_destroy(&m);
	close(fd);
	return r;
}

static int do_symlink(struct exp *x, int dfd, const char *name, const struct stat *st,
		      struct vmb_err *err)
{
	char target[PATH_MAX];
	ssize_t n = readlinkat(dfd, name, target, sizeof(target) - 1);

	if (n < 0)
		return vmb_err_sys(err, errno, "cannot read symlink '%s'", x->rel);
	target[n] = '\0';
	entry_meta(x, st);
	archive_entry_set_filetype(x->e, AE_IFLNK);
	archive_entry_set_symlink(x->e, target);
	return header(x, err);
}

/* One entry of the bundle (vmb_tree_walk), in the walk's order: a directory's
 * header before its entries, names in byte order. */
static int export_ent(void *arg, enum vmb_tree_event ev, const struct vmb_tree_ent *e,
		      struct vmb_err *err)
{
	struct exp *x = arg;

	if (ev == VMB_TREE_DIR_POST)
		return 0;
	x->path = e->path;
	/* NAME/ left out, unless the path was shortened (then it may be cut) */
	x->rel = e->msgpath == e->path ? e->path + strlen(x->name) + 1 : e->msgpath;
	if (cancelled(x))
		return vmb_err_set(err, EINTR, "interrupted");
	if (ev == VMB_TREE_DIR) {
		int dfd, r;

		entry_meta(x, e->st);
		archive_entry_set_filetype(x->e, AE_IFDIR);
		dfd = openat(e->dfd, e->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (dfd < 0)
			return vmb_err_sys(err, errno, "cannot open directory '%s'", x->rel);
		r = entry_xattrs(x, dfd, err);
		close(dfd);
		return r < 0 ? r : header(x, err);
	}
	if (S_ISREG(e->st->st_mode))
		return do_file(x, e->dfd, e->name, err);
	if (S_ISLNK(e->st->st_mode))
		return do_symlink(x, e->dfd, e->name, e->st, err);
	/* Nothing else can be in a bundle; anything put there behind the store's
	 * back (a FIFO, a socket) is left out. */
	return 0;
}

/* Allocated bytes of the bundle (the progress total). */
static int count_file(void *arg, const char *relpath, int fd, const struct stat *st)
{
	struct exp *x = arg;
	struct vmb_blockmap m;
	struct vmb_err e;
	uint64_t size;
	int rebuilt;

	struct vmb_base_resolver res = vmb_layers_resolver(x->layers);
	struct vmb_image_baseinfo bi;

	vmb_blockmap_init(&m);
	memset(&bi, 0, sizeof(bi));
	if (vmb_image_load_map2(fd, x->s->mapfd, relpath, &res, &m, &size, &rebuilt, &bi,
				&e) == 0)
		x->total += vmb_image_chain_data_blocks(&m, bi.base, bi.limit, size) * BS;
	vmb_base_put(bi.base);
	vmb_blockmap_destroy(&m);
	return 0;
}

/* The first size bytes of base b as the current entry (a snapshot's file): data
 * runs from b's map (lookup), bytes by b's read. */
static int do_base(struct exp *x, struct vmb_base *b, uint64_t size, struct vmb_err *err)
{
	uint64_t nblk = (size + BS - 1) / BS, blk, run, off, len;
	int r = 0, bfd, holes;

	archive_entry_set_size(x->e, (la_int64_t)size);
	/* Sparse entries only for a file with holes (as do_file): libarchive's
	 * sparse map of a file that is all data loses its bytes. */
	for (blk = 0; blk < nblk; blk += run)
		if (b->ops->lookup(b, blk, &run, &bfd) != VMB_DATA)
			break;
	holes = blk < nblk;
	for (blk = 0; x->tar && holes && blk < nblk; blk += run) {
		if (b->ops->lookup(b, blk, &run, &bfd) != VMB_DATA)
			continue;
		off = blk * BS;
		len = (blk + run > nblk ? nblk - blk : run) * BS;
		if (off + len > size)
			len = size - off;
		archive_entry_sparse_add_entry(x->e, (la_int64_t)off, (la_int64_t)len);
	}
	/* All holes: one empty extent at the end keeps it sparse. */
	if (x->tar && holes && archive_entry_sparse_count(x->e) == 0)
		archive_entry_sparse_add_entry(x->e, (la_int64_t)size, 0);
	r = header(x, err);
	for (blk = 0; r == 0 && blk < nblk; blk += run) {
		enum vmb_bstate st = b->ops->lookup(b, blk, &run, &bfd);

		if (blk + run > nblk)
			run = nblk - blk;
		off = blk * BS;
		len = run * BS;
		if (off + len > size)
			len = size - off;
		if (st != VMB_DATA) {
			r = put_hole(x, len, err);
			continue;
		}
		while (r == 0 && len > 0) {
			size_t n = len < CHUNK ? (size_t)len : CHUNK;
			ssize_t k;

			if (cancelled(x)) {
				r = vmb_err_set(err, EINTR, "interrupted");
				break;
			}
			k = b->ops->read(b, x->buf, n, off, err);
			if (k < 0) {
				r = (int)k;
				break;
			}
			r = put(x, x->buf, (size_t)k, err);
			progress(x, (uint64_t)k);
			off += (uint64_t)k;
			len -= (uint64_t)k;
		}
	}
	return r;
}

/* What both kinds of export need before the first entry: the copy buffer, the
 * entry, the zeros mapping and the store's layers (released by the caller's
 * cleanup, as before). */
static int setup(struct exp *x, struct vmb_err *err)
{
	void *z;
	int r;

	x->buf = malloc(CHUNK);
	x->e = archive_entry_new();
	z = mmap(NULL, ZEROS, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (!x->buf || !x->e || z == MAP_FAILED)
		return vmb_err_set(err, ENOMEM, "out of memory");
	x->zeros = z;
	r = vmb_layers_open(&x->layers, x->s->metafd, NULL, err);
	if (r < 0)
		return r;
	if (x->o->remote)
		vmb_layers_set_remote(x->layers, x->o->remote);
	return 0;
}

/* A snapshot BUNDLE@NAME (store/manifest.h): its tree from the manifest, each
 * file's content from its layer (read through the layer's chain); the archive's top
 * directory is named BUNDLE@NAME. */
static int run_snapshot(struct exp *x, int fd, struct vmb_err *err)
{
	struct vmb_manifest m = { 0 };
	char *path = NULL;
	size_t i, nlen = strlen(x->name);
	int sfd, r;

	sfd = openat(x->s->metafd, VMB_SNAPSHOTS_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		     O_CLOEXEC);
	if (sfd < 0)
		return vmb_err_set(err, ENOENT, "no bundle or snapshot '%s' in store '%s'",
				   x->name, x->s->path);
	r = vmb_manifest_read(sfd, x->name, &m, err);
	close(sfd);
	if (r == -ENOENT)
		return vmb_err_set(err, ENOENT, "no bundle or snapshot '%s' in store '%s'",
				   x->name, x->s->path);
	if (r < 0)
		return r;
	r = setup(x, err);
	if (r == 0)
		r = open_writer(x, fd, err);
	for (i = 0; r == 0 && i < m.n; i++) {
		const struct vmb_mf_ent *me = &m.ents[i];
		struct stat st;

		if (cancelled(x)) {
			r = vmb_err_set(err, EINTR, "interrupted");
			break;
		}
		free(path);
		path = malloc(nlen + strlen(me->path) + 2);
		if (!path) {
			r = vmb_err_set(err, ENOMEM, "out of memory");
			break;
		}
		if (i == 0)
			memcpy(path, x->name, nlen + 1);
		else
			sprintf(path, "%s/%s", x->name, me->path);
		x->path = path;
		x->rel = i == 0 ? "." : me->path;
		memset(&st, 0, sizeof(st));
		st.st_mode = me->mode;
		st.st_uid = me->uid;
		st.st_gid = me->gid;
		st.st_mtim.tv_sec = (time_t)me->mtime_sec;
		st.st_mtim.tv_nsec = me->mtime_nsec;
		entry_meta(x, &st);
		if (me->kind != 'l')
			entry_mf_xattrs(x, me->xattrs, me->nxattrs);
		if (me->kind == 'd') {
			archive_entry_set_filetype(x->e, AE_IFDIR);
			r = header(x, err);
		} else if (me->kind == 'l') {
			archive_entry_set_filetype(x->e, AE_IFLNK);
			archive_entry_set_symlink(x->e, me->target);
			r = header(x, err);
		} else {
			struct vmb_base *b = NULL;

			archive_entry_set_filetype(x->e, AE_IFREG);
			r = vmb_layers_get(x->layers, me->id, &b, err);
			if (r == 0 && b->size < me->size)
				r = vmb_err_set(err, EIO, "snapshot '%s': layer '%s' of '%s' is "
						"smaller than the file", x->name, me->id, me->path);
			if (r == 0)
				r = do_base(x, b, me->size, err);
			vmb_base_put(b);
		}
	}
	if (r == 0 && archive_write_close(x->a) != ARCHIVE_OK)
		r = vmb_archive_err(err, x->a, "cannot finish the archive");
	free(path);
	vmb_layers_close(x->layers);
	x->layers = NULL;
	vmb_manifest_free(&m);
	return r;
}

static int run(struct exp *x, int fd, struct vmb_err *err)
{
	struct stat st;
	int bfd = -1, r;

	r = vmb_name_check(x->name, err);
	if (r < 0)
		return r;
	if (vmb_store_reserved(x->name))
		return vmb_err_set(err, ENOENT, "no bundle '%s' in store '%s'", x->name,
				   x->s->path);
	/* a snapshot before a bundle of the same name (vmb_snapshot_exists) */
	if (vmb_snapshot_exists(x->s->metafd, x->name))
		return run_snapshot(x, fd, err);
	bfd = openat(x->s->dirfd, x->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (bfd < 0 && errno == ENOENT && strchr(x->name, '@'))
		return run_snapshot(x, fd, err);
	if (bfd < 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			return vmb_err_set(err, ENOENT, "no bundle '%s' in store '%s'",
					   x->name, x->s->path);
		return vmb_err_sys(err, errno, "cannot open bundle '%s'", x->name);
	}
	if (fstat(bfd, &st) < 0) {
		r = vmb_err_sys(err, errno, "cannot stat bundle '%s'", x->name);
		goto out;
	}
	r = setup(x, err);
	if (r < 0)
		goto out;
	if (x->o->progress) {
		r = vmb_store_walk(x->s, x->name, count_file, x, err);
		if (r < 0)
			goto out;
	}
	r = open_writer(x, fd, err);
	if (r < 0)
		goto out;
	x->path = x->name;
	x->rel = ".";
	entry_meta(x, &st);
	archive_entry_set_filetype(x->e, AE_IFDIR);
	r = entry_xattrs(x, bfd, err);
	if (r == 0)
		r = header(x, err);
	if (r == 0)
		r = vmb_tree_walk(bfd, x->name, export_ent, x, err);
	if (r == 0 && archive_write_close(x->a) != ARCHIVE_OK)
		r = vmb_archive_err(err, x->a, "cannot finish the archive");
out:
	vmb_layers_close(x->layers);
	x->layers = NULL;
	close(bfd);
	return r;
}

int vmb_archive_export(struct vmb_store *s, const char *name, int fd,
		       const struct vmb_export_opts *opts, struct vmb_err *err)
{
	struct exp *x = calloc(1, sizeof(*x));
	size_t i;
	int r;

	if (!x)
		return vmb_err_set(err, ENOMEM, "cannot export '%s': out of memory", name);
	x->s = s;
	x->o = opts;
	x->name = name;
	r = run(x, fd, err);
	if (r < 0)
		vmb_err_prefix(err, "cannot export '%s'", name);
	if (x->a)
		archive_write_free(x->a);   /* closes the archive when it is still open */
	if (x->e)
		archive_entry_free(x->e);
	if (x->zeros)
		munmap((void *)x->zeros, ZEROS);
	free(x->buf);
	for (i = 0; i < x->nlinks; i++)
		free(x->links[i].path);
	free(x->links);
	free(x);
	return r;
}

int vmb_archive_export_file(struct vmb_store *s, const char *name, const char *path,
			    const struct vmb_export_opts *opts, struct vmb_err *err)
{
	char *tmp;
	size_t n = strlen(path) + 64;
	int fd = -1, i, r;

	tmp = malloc(n);
	if (!tmp)
		return vmb_err_set(err, ENOMEM, "cannot export '%s': out of memory", name);
	for (i = 0; i < 100 && fd < 0; i++) {
		snprintf(tmp, n, "%s.tmp.%ld.%d", path, (long)getpid(), i);
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
		if (fd < 0 && errno != EEXIST)
			break;
	}
	if (fd < 0) {
		r = vmb_err_sys(err, errno, "cannot export '%s': cannot create '%s'", name,
				tmp);
		free(tmp);
		return r;
	}
	r = vmb_archive_export(s, name, fd, opts, err);
	if (r == 0 && opts->sync && fsync(fd) < 0)
		r = vmb_err_sys(err, errno, "cannot export '%s': cannot sync '%s'", name, tmp);
	if (close(fd) < 0 && r == 0)
		r = vmb_err_sys(err, errno, "cannot export '%s': cannot write '%s'", name,
				tmp);
	if (r == 0 && rename(tmp, path) < 0)
		r = vmb_err_sys(err, errno, "cannot export '%s': cannot rename '%s' to '%s'",
				name, tmp, path);
	if (r < 0)
		unlink(tmp);
	free(tmp);
	return r;
}
