/* pubbundle.c - the bundle manifest of a published store (see pubfmt.h). */
#include "config.h"
#include "remote/pubfmt.h"
#include "remote/pubtext.h"
#include "base/digest.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BM "bundle manifest"
#define BM_ERR(...) vmb_err_set(err, EINVAL, BM ": " __VA_ARGS__)

void vmb_pub_bundle_free(struct vmb_pub_bundle *b)
{
	size_t i;

	for (i = 0; i < b->n; i++) {
		vmb_xattrs_free(b->ents[i].xattrs, b->ents[i].nxattrs);
		free(b->ents[i].path);
		free(b->ents[i].target);
	}
	free(b->ents);
	free(b->name);
	memset(b, 0, sizeof(*b));
}

int vmb_pub_bundle_add(struct vmb_pub_bundle *b, const struct vmb_pub_ent *e)
{
	struct vmb_pub_ent *n = vmb_grow(b->ents, &b->cap, b->n, sizeof(*n));

	if (!n)
		return -ENOMEM;
	b->ents = n;
	n = &b->ents[b->n];
	*n = *e;
	n->xattrs = NULL;
	n->nxattrs = 0;
	if (vmb_path_target_dup(e->path, e->target, &n->path, &n->target) < 0)
		return -ENOMEM;
	b->n++;
	return 0;
}

int vmb_pub_bundle_add_xattr(struct vmb_pub_bundle *b, const char *name,
			     const void *value, size_t len)
{
	struct vmb_pub_ent *e;

	if (!b->n)
		return -EINVAL;
	e = &b->ents[b->n - 1];
	return vmb_xattrs_add(&e->xattrs, &e->nxattrs, name, value, len);
}

/* ---- rules shared by encode and decode ---- */

static int ent_ok(const struct vmb_pub_ent *e, size_t rec, struct vmb_err *err)
{
	if (e->kind != 'd' && e->kind != 'f' && e->kind != 'i' && e->kind != 'l')
		return BM_ERR("record %zu: unknown kind '%c'", rec, e->kind);
	if (!vmb_relpath_ok(e->path))
		return BM_ERR("record %zu: bad path '%s' (empty, '.' or '..' components)",
			      rec, e->path);
	if (e->mode > 07777 || (e->kind == 'l' && e->mode) || e->mtime_nsec >= 1000000000u)
		return BM_ERR("record %zu: bad mode or time", rec);
	if (e->kind == 'f' && e->size >= VMB_PUB_SMALL_MAX)
		return BM_ERR("record %zu: small file '%s' of %" PRIu64 " bytes (at most %u)",
			      rec, e->path, e->size, VMB_PUB_SMALL_MAX - 1);
	if (e->kind == 'i' && e->size > (uint64_t)INT64_MAX)
		return BM_ERR("record %zu: bad size", rec);
	if (e->kind == 'l' && (!e->target || !e->target[0] || strlen(e->target) >= PATH_MAX))
		return BM_ERR("record %zu: bad symlink target", rec);
	if (e->kind != 'd' && !strcmp(e->path, "."))
		return BM_ERR("record %zu: '.' is not a directory", rec);
	if (!vmb_xattrs_ok(e->xattrs, e->nxattrs))
		return BM_ERR("record %zu: bad extended attribute", rec);
	for (size_t j = 0; j < e->nxattrs; j++)
		if (vmb_xattr_reserved(e->xattrs[j].name))
			return BM_ERR("record %zu: extended attribute '%s' is maintained by "
				      "vmbundlefs", rec, e->xattrs[j].name);
	return 0;
}

static const char *ent_path(const void *ents, size_t i, int *is_dir)
{
	const struct vmb_pub_ent *e = (const struct vmb_pub_ent *)ents + i;

	*is_dir = e->kind == 'd';
	return e->path;
}

/* "." first, every parent an earlier 'd', no path twice. */
static int tree_ok(const struct vmb_pub_bundle *b, struct vmb_err *err)
{
	const char *dup;
	size_t at;

	switch (vmb_tree_check(b->ents, b->n, ent_path, &at, &dup)) {
	case 0:
		return 0;
	case VMB_TREE_NO_ROOT:
		return BM_ERR("its first record is not the bundle's directory '.'");
	case VMB_TREE_DOT_TWICE:
		return BM_ERR("record %zu: '.' is listed twice", at + 1);
	case VMB_TREE_NO_PARENT:
		return BM_ERR("record %zu: the directory of '%s' is not listed before it",
			      at + 1, b->ents[at].path);
	case VMB_TREE_TWICE:
		return BM_ERR("'%s' is listed twice", dup);
	default:
		return vmb_err_set(err, ENOMEM, "out of memory");
	}
}

/* ---- encode ---- */

static void put_time(struct vmb_sbuf *s, int64_t sec, uint32_t nsec)
{
	vmb_sbuf_putf(s, "%" PRId64 ".%09" PRIu32 " ", sec, nsec);
}

int vmb_pub_bundle_encode(const struct vmb_pub_bundle *b, char **out, size_t *len,
			  struct vmb_err *err)
{
	struct vmb_sbuf s = { 0 };
	uint8_t d[32];
	size_t i, j;
	int r;

	*out = NULL;
	*len = 0;
	if (!b->name || vmb_pub_name_check(b->name, err) < 0)
		return vmb_err_set(err, EINVAL, "cannot write a bundle manifest: bad name");
	for (i = 0; i < b->n; i++) {
		r = ent_ok(&b->ents[i], i + 1, err);
		if (r < 0)
			return vmb_err_prefix(err, "cannot write");
	}
	r = tree_ok(b, err);
	if (r < 0)
		return r == -ENOMEM ? r : vmb_err_prefix(err, "cannot write");
	vmb_sbuf_putf(&s, "%s %d\nname ", VMB_PUB_BUNDLE_MAGIC, VMB_PUB_VERSION);
	vmb_sbuf_put_esc(&s, b->name, strlen(b->name));
	vmb_sbuf_put(&s, "\n", 1);
	for (i = 0; i < b->n; i++) {
		const struct vmb_pub_ent *e = &b->ents[i];

		vmb_sbuf_put(&s, &e->kind, 1);
		vmb_sbuf_put(&s, " ", 1);
		if (e->kind != 'l')
			vmb_sbuf_putf(&s, "%04" PRIo32 " ", e->mode);
		put_time(&s, e->mtime_sec, e->mtime_nsec);
		if (e->kind == 'f' || e->kind == 'i') {
			vmb_sbuf_putf(&s, "%" PRIu64 " ", e->size);
			vmb_sbuf_put_hex(&s, e->digest, 32);
			vmb_sbuf_put(&s, " ", 1);
		}
		vmb_sbuf_put_esc(&s, e->path, strlen(e->path));
		if (e->kind == 'l') {
			vmb_sbuf_put(&s, " ", 1);
			vmb_sbuf_put_esc(&s, e->target, strlen(e->target));
		}
		vmb_sbuf_put(&s, "\n", 1);
		for (j = 0; j < e->nxattrs; j++) {
			vmb_sbuf_put(&s, "x ", 2);
			vmb_sbuf_put_esc(&s, e->xattrs[j].name, strlen(e->xattrs[j].name));
			vmb_sbuf_put(&s, " ", 1);
			vmb_sbuf_put_value(&s, e->xattrs[j].value, e->xattrs[j].len);
			vmb_sbuf_put(&s, "\n", 1);
		}
	}
	if (!s.nomem) {
		r = vmb_sha256(s.p, s.len, d, err);
		if (r < 0) {
			free(s.p);
			return r;
		}
		vmb_sbuf_put(&s, "end ", 4);
		vmb_sbuf_put_hex(&s, d, 32);
		vmb_sbuf_put(&s, "\n", 1);
	}
	if (s.nomem) {
		free(s.p);
		return vmb_err_set(err, ENOMEM, "out of memory");
	}
	if (s.len > VMB_PUB_MANIFEST_MAX) {
		free(s.p);
		return vmb_err_set(err, EFBIG, "cannot write a bundle manifest of %zu bytes "
				   "(at most %u)", s.len, VMB_PUB_MANIFEST_MAX);
	}
	*out = s.p;
	*len = s.len;
	return 0;
}

/* ---- decode ---- */

static int decode_xattr(struct vmb_pub_bundle *b, const char **tok, const size_t *tl,
			size_t k, size_t line, struct vmb_err *err)
{
	char *name = NULL, *val = NULL;
	size_t vlen = 0;
	int nomem = 0, r = 0;

	if (k != 3 || !b->n)
		return BM_ERR("line %zu: bad 'x' record", line);
	name = vmb_unesc(tok[1], tl[1], 0, NULL, &nomem);
	/* An empty value is "-", the value "-" is "%2D" (the one escape of a byte that
	 * needs none): tokens are never empty. */
	if (tl[2] == 1 && tok[2][0] == '-') {
		val = strdup("");
		nomem |= !val;
	} else if (tl[2] == 3 && !memcmp(tok[2], "%2D", 3)) {
		val = strdup("-");
		nomem |= !val;
		vlen = 1;
	} else {
		val = vmb_unesc(tok[2], tl[2], 1, &vlen, &nomem);
	}
	if (!name || !val)
		r = nomem ? vmb_err_set(err, ENOMEM, "out of memory") :
			BM_ERR("line %zu: bad escape", line);
	else if (vmb_xattr_reserved(name)) {
		/* a name the mount maintains: never planted on the pulled files (import
		 * skips them too); counted for the puller's log. Another namespace than
		 * user.* is refused (ent_ok): the format has none. */
		if (!b->xattr_skipped++) {
			snprintf(b->xattr_first, sizeof(b->xattr_first), "%s", name);
			for (char *q = b->xattr_first; *q; q++)
				if ((unsigned char)*q < ' ' || (unsigned char)*q >= 0x7f)
					*q = '?';
		}
	} else if (vmb_pub_bundle_add_xattr(b, name, val, vlen) < 0)
		r = vmb_err_set(err, ENOMEM, "out of memory");
	free(name);
	free(val);
	return r;
}

static int decode_line(struct vmb_pub_bundle *b, const char *s, size_t n, size_t line,
		       struct vmb_err *err)
{
	const char *tok[8];
	size_t tl[8], k = vmb_tokens(s, n, tok, tl, 7), pi = 1, want;
	struct vmb_pub_ent e;
	uint64_t v;
	int nomem = 0, r;

	memset(&e, 0, sizeof(e));
	if (k == 0 || k > 7 || tl[0] != 1)
		return BM_ERR("line %zu: bad record", line);
	if (tok[0][0] == 'x')
		return decode_xattr(b, tok, tl, k, line, err);
	e.kind = tok[0][0];
	switch (e.kind) {
	case 'd': want = 4; break;
	case 'f': case 'i': want = 6; break;
	case 'l': want = 4; break;
	default:
		return BM_ERR("line %zu: unknown record '%c'", line, e.kind);
	}
	if (k != want)
		return BM_ERR("line %zu: '%c' record with %zu fields (%zu expected)", line,
			      e.kind, k, want);
	if (e.kind != 'l') {
		size_t j;

		for (j = 0, v = 0; j < tl[1]; j++) {
			if (tok[1][j] < '0' || tok[1][j] > '7')
				break;
			v = v * 8 + (uint64_t)(tok[1][j] - '0');
		}
		if (tl[1] != 4 || j != 4)
			return BM_ERR("line %zu: bad mode (4 octal digits)", line);
		e.mode = (uint32_t)v;
		pi = 2;
	}
	if (!vmb_num_time(tok[pi], tl[pi], &e.mtime_sec, &e.mtime_nsec))
		return BM_ERR("line %zu: bad time", line);
	pi++;
	if (e.kind == 'f' || e.kind == 'i') {
		if (!vmb_num_u(tok[pi], tl[pi], 10, (uint64_t)INT64_MAX, &e.size))
			return BM_ERR("line %zu: bad size", line);
		if (!vmb_hex_ok(tok[pi + 1], tl[pi + 1], e.digest, 32))
			return BM_ERR("line %zu: bad hex in the object digest", line);
		pi += 2;
	}
	e.path = vmb_unesc(tok[pi], tl[pi], 0, NULL, &nomem);
	if (e.kind == 'l' && e.path)
		e.target = vmb_unesc(tok[pi + 1], tl[pi + 1], 0, NULL, &nomem);
	r = 0;
	if (!e.path || (e.kind == 'l' && !e.target))
		r = nomem ? vmb_err_set(err, ENOMEM, "out of memory") :
			BM_ERR("line %zu: bad escape", line);
	if (r == 0)
		r = ent_ok(&e, b->n + 1, err);
	if (r == 0 && vmb_pub_bundle_add(b, &e) < 0)
		r = vmb_err_set(err, ENOMEM, "out of memory");
	free(e.path);
	free(e.target);
	return r;
}

int vmb_pub_bundle_decode(const void *vbuf, size_t len, struct vmb_pub_bundle *b,
			  struct vmb_err *err)
{
	const char *buf = vbuf, *body_end, *tail, *p, *nl;
	size_t line = 0, i;
	int r = 0, nomem = 0;

	memset(b, 0, sizeof(*b));
	if (len > VMB_PUB_MANIFEST_MAX)
		return BM_ERR("%zu bytes (at most %u)", len, VMB_PUB_MANIFEST_MAX);
	r = vmb_pub_end_check(buf, len, BM, &body_end, &tail, err);
	if (r < 0)
		return r;
	if (tail != buf + len)
		return BM_ERR("trailing bytes after the 'end' line");
	for (p = buf; p < body_end; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(body_end - p));
		line++;
		if (line == 1) {
			r = vmb_pub_header_check(p, nl, VMB_PUB_BUNDLE_MAGIC, BM, err);
		} else if (line == 2) {
			if (nl - p < 6 || memcmp(p, "name ", 5)) {
				r = BM_ERR("line 2: no 'name <bundle>'");
				goto out;
			}
			b->name = vmb_unesc(p + 5, (size_t)(nl - p - 5), 0, NULL, &nomem);
			if (!b->name)
				r = nomem ? vmb_err_set(err, ENOMEM, "out of memory") :
					BM_ERR("line 2: bad escape in the name");
			else if (vmb_pub_name_check(b->name, err) < 0)
				r = vmb_err_prefix(err, BM ": line 2");
		} else {
			r = decode_line(b, p, (size_t)(nl - p), line, err);
		}
		if (r < 0)
			goto out;
	}
	if (line < 2) {
		r = BM_ERR("truncated (no header)");
		goto out;
	}
	for (i = 0; i < b->n; i++) {   /* again, now with their xattrs */
		r = ent_ok(&b->ents[i], i + 1, err);
		if (r < 0)
			goto out;
	}
	r = tree_ok(b, err);
out:
	if (r < 0)
		vmb_pub_bundle_free(b);
	return r;
}
