/* mkpub.c - publish plain directories as a published store for the tests (no
 * store, no vmbundlefs publish needed): mkpub [-c CHUNK] [-k KEY.pem] DEST DIR...
 * Each DIR becomes the bundle named by its last component: directories,
 * symlinks, regular files (< 1 MiB without holes: 'f' objects; else images whose
 * data map is the file's SEEK_DATA extents rounded out to 4 KiB), modes, mtimes
 * and user.* xattrs. Writes DEST/objects/... and DEST/index last (by rename), with
 * generation = the old one + 1. */
#include "config.h"
#include "remote/pubfmt.h"
#include "base/digest.h"
#include "base/sign.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#define BS 4096u

static const char *dest;
static uint32_t chunk = 256u << 10;

static void die(const char *what)
{
	fprintf(stderr, "mkpub: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void mkdirs(const char *p)
{
	char b[PATH_MAX];

	snprintf(b, sizeof(b), "%s", p);
	for (char *s = b + 1; *s; s++)
		if (*s == '/') {
			*s = '\0';
			mkdir(b, 0755);
			*s = '/';
		}
	mkdir(b, 0755);
}

static void put(const void *buf, size_t len, uint8_t d[32])
{
	char rel[VMB_PUB_OBJPATH_LEN], path[PATH_MAX], tmp[PATH_MAX + 8];
	int fd;

	vmb_sha256(buf, len, d, NULL);
	vmb_pub_object_path(d, rel);
	snprintf(path, sizeof(path), "%s/%s", dest, rel);
	if (access(path, F_OK) == 0)
		return;
	*strrchr(path, '/') = '\0';
	mkdirs(path);
	snprintf(path, sizeof(path), "%s/%s", dest, rel);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, buf, len) != (ssize_t)len || close(fd) < 0 ||
	    rename(tmp, path) < 0)
		die(path);
}

static void image(int fd, uint64_t size, uint8_t d[32])
{
	struct vmb_pub_image x = { 0 };
	uint64_t nb = (size + BS - 1) / BS, i;
	unsigned char *buf = malloc(chunk);
	off_t pos = 0, data, hole;
	void *enc;
	size_t len;

	x.chunk_size = chunk;
	x.size = size;
	x.n_chunks = (size + chunk - 1) / chunk;
	x.ext = calloc(nb / 2 + 2, sizeof(*x.ext));
	x.chunks = calloc(x.n_chunks + 1, sizeof(*x.chunks));
	while (pos < (off_t)size && (data = lseek(fd, pos, SEEK_DATA)) >= 0) {
		uint64_t b0, b1;

		hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0 || hole > (off_t)size)
			hole = (off_t)size;
		b0 = (uint64_t)data / BS;
		b1 = ((uint64_t)hole + BS - 1) / BS;
		if (x.n_extents && x.ext[x.n_extents - 1][0] + x.ext[x.n_extents - 1][1] >= b0) {
			x.ext[x.n_extents - 1][1] = b1 - x.ext[x.n_extents - 1][0];
		} else {
			x.ext[x.n_extents][0] = b0;
			x.ext[x.n_extents][1] = b1 - b0;
			x.n_extents++;
		}
		pos = hole;
	}
	for (i = 0; i < x.n_extents; i++)
		x.data_blocks += x.ext[i][1];
	for (i = 0; i < x.n_chunks; i++) {
		uint64_t s = i * chunk, l = size - s < chunk ? size - s : chunk, b;
		int has = 0;

		for (b = s / BS; b < (s + l + BS - 1) / BS && !has; b++) {
			uint64_t run;

			has = vmb_pub_image_lookup(&x, b, &run) == VMB_DATA;
		}
		if (!has)
			continue;
		if (pread(fd, buf, l, (off_t)s) != (ssize_t)l)
			die("read");
		put(buf, l, x.chunks[i]);
	}
	if (vmb_pub_image_encode(&x, &enc, &len, NULL) != 0) {
		fprintf(stderr, "mkpub: cannot encode an image index\n");
		exit(1);
	}
	put(enc, len, d);
	free(enc);
	free(x.ext);
	free(x.chunks);
	free(buf);
}

static void xattrs(struct vmb_pub_bundle *b, const char *path)
{
	char names[4096], val[65536];
	ssize_t n = llistxattr(path, names, sizeof(names));

	for (ssize_t i = 0; i < n; i += (ssize_t)strlen(names + i) + 1) {
		ssize_t v;

		if (strncmp(names + i, "user.", 5))
			continue;
		v = lgetxattr(path, names + i, val, sizeof(val));
		if (v >= 0)
			vmb_pub_bundle_add_xattr(b, names + i, val, (size_t)v);
	}
}

static void walk(struct vmb_pub_bundle *b, const char *root, const char *rel)
{
	char path[PATH_MAX], child[PATH_MAX];
	struct dirent **ents;
	struct stat st;
	int n;

	snprintf(path, sizeof(path), "%s%s%s", root, *rel ? "/" : "", rel);
	n = scandir(path, &ents, NULL, alphasort);
	if (n < 0)
		die(path);
	for (int i = 0; i < n; i++) {
		struct vmb_pub_ent e = { 0 };
		char full[PATH_MAX * 2], target[PATH_MAX];

		if (!strcmp(ents[i]->d_name, ".") || !strcmp(ents[i]->d_name, "..")) {
			free(ents[i]);
			continue;
		}
		snprintf(child, sizeof(child), "%s%s%s", rel, *rel ? "/" : "", ents[i]->d_name);
		snprintf(full, sizeof(full), "%s/%s", root, child);
		free(ents[i]);
		if (lstat(full, &st) < 0)
			die(full);
		e.path = child;
		e.mode = st.st_mode & 07777;
		e.mtime_sec = st.st_mtim.tv_sec;
		e.mtime_nsec = (uint32_t)st.st_mtim.tv_nsec;
		if (S_ISDIR(st.st_mode)) {
			e.kind = 'd';
			vmb_pub_bundle_add(b, &e);
			xattrs(b, full);
			walk(b, root, child);
			continue;
		}
		if (S_ISLNK(st.st_mode)) {
			ssize_t l = readlink(full, target, sizeof(target) - 1);

			if (l < 0)
				die(full);
			target[l] = '\0';
			e.kind = 'l';
			e.mode = 0;
			e.target = target;
			vmb_pub_bundle_add(b, &e);
			continue;
		}
		if (!S_ISREG(st.st_mode))
			continue;
		{
			int fd = open(full, O_RDONLY);

			if (fd < 0)
				die(full);
			e.size = (uint64_t)st.st_size;
			if (st.st_size < VMB_PUB_SMALL_MAX &&
			    (uint64_t)st.st_blocks * 512 >= (uint64_t)st.st_size) {
				char *buf = malloc((size_t)st.st_size + 1);

				if (pread(fd, buf, (size_t)st.st_size, 0) != st.st_size)
					die(full);
				e.kind = 'f';
				put(buf, (size_t)st.st_size, e.digest);
				free(buf);
			} else {
				e.kind = 'i';
				image(fd, (uint64_t)st.st_size, e.digest);
			}
			close(fd);
			vmb_pub_bundle_add(b, &e);
			xattrs(b, full);
		}
	}
	free(ents);
}

int main(int argc, char **argv)
{
	struct vmb_pub_index top = { 0 };
	struct vmb_sign_key *key = NULL;
	struct vmb_err err = { 0 };
	char path[PATH_MAX], tmp[PATH_MAX + 8];
	int c;

	while ((c = getopt(argc, argv, "c:k:")) != -1) {
		if (c == 'c')
			chunk = (uint32_t)strtoul(optarg, NULL, 0);
		else if (c == 'k' && vmb_sign_key_load(optarg, &key, &err) < 0) {
			fprintf(stderr, "mkpub: %s\n", err.msg);
			return 1;
		} else if (c != 'k') {
			fprintf(stderr, "usage: mkpub [-c CHUNK] [-k KEY.pem] DEST DIR...\n");
			return 2;
		}
	}
	if (argc - optind < 2) {
		fprintf(stderr, "usage: mkpub [-c CHUNK] [-k KEY.pem] DEST DIR...\n");
		return 2;
	}
	dest = argv[optind];
	mkdirs(dest);
	snprintf(path, sizeof(path), "%s/index", dest);
	{
		FILE *f = fopen(path, "r");

		if (f) {   /* keep the other bundles, bump the generation */
			static char buf[VMB_PUB_INDEX_MAX];
			size_t n = fread(buf, 1, sizeof(buf), f);

			fclose(f);
			if (vmb_pub_index_decode(buf, n, NULL, &top, &err) < 0) {
				fprintf(stderr, "mkpub: %s\n", err.msg);
				return 1;
			}
		}
	}
	top.generation++;
	top.created = (int64_t)time(NULL);
	for (int i = optind + 1; i < argc; i++) {
		struct vmb_pub_bundle b = { 0 };
		struct vmb_pub_ent root = { 0 };
		struct stat st;
		const char *name = strrchr(argv[i], '/') ? strrchr(argv[i], '/') + 1 : argv[i];
		uint8_t d[32];
		size_t len;
		char *enc;

		if (stat(argv[i], &st) < 0)
			die(argv[i]);
		b.name = strdup(name);
		root.kind = 'd';
		root.path = ".";
		root.mode = st.st_mode & 07777;
		root.mtime_sec = st.st_mtim.tv_sec;
		root.mtime_nsec = (uint32_t)st.st_mtim.tv_nsec;
		vmb_pub_bundle_add(&b, &root);
		xattrs(&b, argv[i]);
		walk(&b, argv[i], "");
		if (vmb_pub_bundle_encode(&b, &enc, &len, &err) < 0) {
			fprintf(stderr, "mkpub: %s\n", err.msg);
			return 1;
		}
		put(enc, len, d);
		free(enc);
		if (vmb_pub_index_set(&top, name, d, &err) < 0) {
			fprintf(stderr, "mkpub: %s\n", err.msg);
			return 1;
		}
		vmb_pub_bundle_free(&b);
	}
	{
		char *enc;
		size_t len;
		FILE *f;

		if (vmb_pub_index_encode(&top, key, &enc, &len, &err) < 0) {
			fprintf(stderr, "mkpub: %s\n", err.msg);
			return 1;
		}
		snprintf(tmp, sizeof(tmp), "%s.tmp", path);
		f = fopen(tmp, "w");
		if (!f || fwrite(enc, 1, len, f) != len || fclose(f) != 0 || rename(tmp, path) < 0)
			die(path);
		free(enc);
	}
	vmb_pub_index_free(&top);
	vmb_sign_key_free(key);
	return 0;
}
