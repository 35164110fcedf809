/* pubcheck.c - read a published store (a directory) the way a reader must, for the
 * shell tests: decode its index (with a public key: refuse an unsigned or altered
 * one), every bundle manifest and image index, and check every object it names
 * against its digest.
 *
 *   pubcheck [-k PUBKEY.pem] DEST                  check everything; print
 *                                                  "generation N bundles B objects O"
 *   pubcheck [-k PUBKEY.pem] DEST BUNDLE PATH OUT  also write the file's content
 *                                                  (zeros for holes) to OUT
 *   pubcheck -m DEST BUNDLE PATH                   print the file's data map:
 *                                                  "first_block nblocks" lines
 * DEST may be a URL the fetchers read (s3://BUCKET/PREFIX with -e ENDPOINT first,
 * http://...), read through remote/fetch.h.
 * Exit 0 ok, 1 on the first problem (its message on stderr). */
#include "config.h"
#include "remote/fetch.h"
#include "remote/pubfmt.h"
#include "base/digest.h"
#include "base/sign.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *dest;
static struct vmb_fetcher *F;
static unsigned long nobjects;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "pubcheck: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void *slurp(const char *rel, size_t *len)
{
	char p[8192];
	struct stat st;
	unsigned char *buf;
	int fd;

	if (F) {
		struct vmb_err err;
		ssize_t n;

		buf = malloc(64u << 20);
		n = buf ? vmb_fetch_get(F, rel, 0, 0, buf, 64u << 20, &err) : -ENOMEM;
		if (n < 0)
			die("%s", err.msg);
		*len = (size_t)n;
		return buf;
	}
	snprintf(p, sizeof(p), "%s/%s", dest, rel);
	fd = open(p, O_RDONLY);
	if (fd < 0 || fstat(fd, &st) < 0)
		die("cannot open '%s': %s", p, strerror(errno));
	buf = malloc((size_t)st.st_size + 1);
	if (!buf || read(fd, buf, (size_t)st.st_size) != st.st_size)
		die("cannot read '%s'", p);
	close(fd);
	*len = (size_t)st.st_size;
	return buf;
}

/* Object d, checked against its digest. */
static void *object(const uint8_t d[32], size_t *len)
{
	char p[VMB_PUB_OBJPATH_LEN];
	uint8_t got[32];
	void *buf;

	vmb_pub_object_path(d, p);
	buf = slurp(p, len);
	if (vmb_sha256(buf, *len, got, NULL) < 0 || memcmp(got, d, 32))
		die("object '%s' does not match its digest", p);
	nobjects++;
	return buf;
}

static void image(const uint8_t d[32], uint64_t size, const char *what, FILE *out,
		  int map)
{
	struct vmb_pub_image m;
	struct vmb_err err;
	size_t len, clen;
	uint64_t c, i;
	void *buf = object(d, &len);

	if (vmb_pub_image_decode(buf, len, &m, &err) < 0)
		die("%s: %s", what, err.msg);
	free(buf);
	if (m.size != size)
		die("%s: the image index and the manifest disagree on the size", what);
	if (map)
		for (i = 0; i < m.n_extents; i++)
			printf("%" PRIu64 " %" PRIu64 "\n", m.ext[i][0], m.ext[i][1]);
	for (c = 0; c < m.n_chunks; c++) {
		clen = (size_t)vmb_pub_chunk_len(&m, c);
		if (vmb_pub_chunk_is_zero(&m, c)) {
			if (out) {
				for (i = 0; i < clen; i++)
					fputc(0, out);
			}
			continue;
		}
		buf = object(m.chunks[c], &len);
		if (len != clen)
			die("%s: a chunk of the wrong length", what);
		if (out && fwrite(buf, 1, len, out) != len)
			die("%s: cannot write", what);
		free(buf);
	}
	vmb_pub_image_free(&m);
}

int main(int argc, char **argv)
{
	struct vmb_pub_index x;
	struct vmb_err err;
	uint8_t pub[32];
	const uint8_t *pk = NULL;
	const char *want_b = NULL, *want_p = NULL, *outp = NULL;
	int a = 1, map = 0, found = 0;
	size_t len, i, j;
	void *buf;

	const char *endpoint = NULL;

	if (a + 1 < argc && !strcmp(argv[a], "-e")) {
		endpoint = argv[a + 1];
		a += 2;
	}
	if (a + 1 < argc && !strcmp(argv[a], "-k")) {
		if (vmb_sign_pub_load(argv[a + 1], pub, &err) < 0)
			die("%s", err.msg);
		pk = pub;
		a += 2;
	} else if (a < argc && !strcmp(argv[a], "-m")) {
		map = 1;
		a++;
	}
	if (argc - a != 1 && argc - a != 4 - map) {
		fprintf(stderr, "usage: pubcheck [-e ENDPOINT] [-k PUB] DEST [BUNDLE PATH OUT] | "
			"[-e ENDPOINT] -m DEST BUNDLE PATH\n");
		return 2;
	}
	dest = argv[a];
	if (strstr(dest, "://")) {
		struct vmb_fetch_opts fo;

		vmb_fetch_opts_default(&fo);
		fo.endpoint = endpoint;
		if (vmb_fetcher_open(dest, &fo, &F, &err) < 0)
			die("%s", err.msg);
	}
	if (argc - a > 1) {
		want_b = argv[a + 1];
		want_p = argv[a + 2];
		outp = map ? NULL : argv[a + 3];
	}
	buf = slurp("index", &len);
	if (vmb_pub_index_decode(buf, len, pk, &x, &err) < 0)
		die("%s", err.msg);
	free(buf);
	for (i = 0; i < x.n; i++) {
		struct vmb_pub_bundle b;

		buf = object(x.bundles[i].digest, &len);
		if (vmb_pub_bundle_decode(buf, len, &b, &err) < 0)
			die("%s", err.msg);
		free(buf);
		if (strcmp(b.name, x.bundles[i].name))
			die("bundle '%s' has a manifest named '%s'", x.bundles[i].name, b.name);
		for (j = 0; j < b.n; j++) {
			const struct vmb_pub_ent *e = &b.ents[j];
			int want = want_b && !strcmp(want_b, b.name) && !strcmp(want_p, e->path);
			FILE *out = NULL;

			if (e->kind != 'f' && e->kind != 'i')
				continue;
			if (want && outp && !(out = fopen(outp, "w")))
				die("cannot create '%s'", outp);
			found |= want;
			if (e->kind == 'f') {
				buf = object(e->digest, &len);
				if (len != e->size)
					die("%s: a small file of the wrong length", e->path);
				if (out && fwrite(buf, 1, len, out) != len)
					die("cannot write '%s'", outp);
				free(buf);
			} else {
				image(e->digest, e->size, e->path, out, want && map);
			}
			if (out && fclose(out) != 0)
				die("cannot write '%s'", outp);
		}
		vmb_pub_bundle_free(&b);
	}
	if (want_b && !found)
		die("no file '%s' in bundle '%s'", want_p, want_b);
	if (!map)
		printf("generation %" PRIu64 " bundles %zu objects %lu%s\n", x.generation, x.n,
		       nobjects, x.signed_ ? " signed" : "");
	vmb_pub_index_free(&x);
	vmb_fetcher_close(F);
	return 0;
}
