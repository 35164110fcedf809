/* pubfmt.c - the top index of a published store, object names, bundle names (see
 * pubfmt.h). The bundle manifest is in pubbundle.c, the image index in pubimage.c. */
#include "config.h"
#include "remote/pubfmt.h"
#include "remote/pubtext.h"
#include "base/digest.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* ---- names, objects, hex ---- */

int vmb_pub_name_check(const char *name, struct vmb_err *err)
{
	size_t n = strlen(name);

	if (n == 0)
		return vmb_err_set(err, EINVAL, "empty bundle name");
	if (!strcmp(name, ".") || !strcmp(name, "..") || !strcmp(name, ".vmbundlefs"))
		return vmb_err_set(err, EINVAL, "'%s' is not a usable bundle name", name);
	if (strchr(name, '/'))
		return vmb_err_set(err, EINVAL, "bundle name '%s' contains '/'", name);
	if (n > NAME_MAX)
		return vmb_err_set(err, EINVAL, "bundle name '%.32s...' is %zu bytes long "
				   "(at most %d)", name, n, NAME_MAX);
	return 0;
}

void vmb_pub_object_path(const uint8_t d[32], char out[VMB_PUB_OBJPATH_LEN])
{
	char hex[VMB_SHA256_HEX];

	vmb_sha256_hex(d, hex);
	memcpy(out, VMB_PUB_OBJECTS_DIR "/", 8);
	out[8] = hex[0];
	out[9] = hex[1];
	out[10] = '/';
	memcpy(out + 11, hex, VMB_SHA256_HEX);
}

int vmb_pub_hex_decode(const char *hex, size_t len, uint8_t *out, size_t outlen)
{
	return vmb_hex_ok(hex, len, out, outlen) ? 0 : -EINVAL;
}

/* ---- top index ---- */

void vmb_pub_index_free(struct vmb_pub_index *x)
{
	size_t i;

	for (i = 0; i < x->n; i++)
		free(x->bundles[i].name);
	free(x->bundles);
	memset(x, 0, sizeof(*x));
}

/* Position of name in the sorted list: found (1/0), *pos where it is or goes. */
static int index_pos(const struct vmb_pub_index *x, const char *name, size_t *pos)
{
	size_t lo = 0, hi = x->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(x->bundles[mid].name, name);

		if (c == 0) {
			*pos = mid;
			return 1;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*pos = lo;
	return 0;
}

const struct vmb_pub_ibundle *vmb_pub_index_find(const struct vmb_pub_index *x,
						  const char *name)
{
	size_t pos;

	return index_pos(x, name, &pos) ? &x->bundles[pos] : NULL;
}

int vmb_pub_index_set(struct vmb_pub_index *x, const char *name, const uint8_t digest[32],
		      struct vmb_err *err)
{
	size_t pos;
	char *copy;
	int r = vmb_pub_name_check(name, err);

	if (r < 0)
		return r;
	if (index_pos(x, name, &pos)) {
		memcpy(x->bundles[pos].digest, digest, 32);
		return 0;
	}
	if (x->n >= VMB_PUB_BUNDLES_MAX)
		return vmb_err_set(err, E2BIG, "a published store holds at most %u bundles",
				   VMB_PUB_BUNDLES_MAX);
	if (x->n == x->cap) {
		size_t ncap = x->cap ? 2 * x->cap : 16;
		struct vmb_pub_ibundle *nb = realloc(x->bundles, ncap * sizeof(*nb));

		if (!nb)
			return vmb_err_set(err, ENOMEM, "out of memory");
		x->bundles = nb;
		x->cap = ncap;
	}
	copy = strdup(name);
	if (!copy)
		return vmb_err_set(err, ENOMEM, "out of memory");
	memmove(x->bundles + pos + 1, x->bundles + pos, (x->n - pos) * sizeof(*x->bundles));
	x->bundles[pos].name = copy;
	memcpy(x->bundles[pos].digest, digest, 32);
	x->n++;
	return 0;
}

int vmb_pub_index_encode(const struct vmb_pub_index *x, const struct vmb_sign_key *key,
			 char **out, size_t *len, struct vmb_err *err)
{
	struct vmb_sbuf b = { 0 };
	uint8_t d[32], sig[VMB_ED25519_SIG_LEN];
	size_t i;
	int r;

	*out = NULL;
	*len = 0;
	if (x->n > VMB_PUB_BUNDLES_MAX)
		return vmb_err_set(err, EINVAL, "cannot write an index of %zu bundles (at "
				   "most %u)", x->n, VMB_PUB_BUNDLES_MAX);
	for (i = 0; i < x->n; i++) {
		r = vmb_pub_name_check(x->bundles[i].name, err);
		if (r < 0)
			return vmb_err_prefix(err, "cannot write an index");
		if (i && strcmp(x->bundles[i - 1].name, x->bundles[i].name) >= 0)
			return vmb_err_set(err, EINVAL, "cannot write an index: bundles not "
					   "sorted or listed twice ('%s')", x->bundles[i].name);
	}
	vmb_sbuf_putf(&b, "%s %d\ngeneration %" PRIu64 "\ncreated %" PRId64 "\n",
		      VMB_PUB_INDEX_MAGIC, VMB_PUB_VERSION, x->generation, x->created);
	for (i = 0; i < x->n; i++) {
		vmb_sbuf_put(&b, "bundle ", 7);
		vmb_sbuf_put_hex(&b, x->bundles[i].digest, 32);
		vmb_sbuf_put(&b, " ", 1);
		vmb_sbuf_put_esc(&b, x->bundles[i].name, strlen(x->bundles[i].name));
		vmb_sbuf_put(&b, "\n", 1);
	}
	if (b.nomem)
		goto nomem;
	r = vmb_sha256(b.p, b.len, d, err);
	if (r < 0)
		goto fail;
	vmb_sbuf_put(&b, "end ", 4);
	vmb_sbuf_put_hex(&b, d, 32);
	vmb_sbuf_put(&b, "\n", 1);
	if (key && !b.nomem) {
		r = vmb_sign(key, b.p, b.len, sig, err);
		if (r < 0)
			goto fail;
		vmb_sbuf_put(&b, "signature ed25519 ", 18);
		vmb_sbuf_put_hex(&b, sig, sizeof(sig));
		vmb_sbuf_put(&b, "\n", 1);
	}
	if (b.nomem)
		goto nomem;
	if (b.len > VMB_PUB_INDEX_MAX) {
		r = vmb_err_set(err, EFBIG, "cannot write an index: %zu bytes (at most %u)",
				b.len, VMB_PUB_INDEX_MAX);
		goto fail;
	}
	*out = b.p;
	*len = b.len;
	return 0;
nomem:
	r = vmb_err_set(err, ENOMEM, "out of memory");
fail:
	free(b.p);
	if (r != -ENOMEM)
		vmb_err_prefix(err, "cannot write an index");
	return r;
}

#define IDX_ERR(...) vmb_err_set(err, EINVAL, "index: " __VA_ARGS__)

/* "<word> <rest>" at line [p, nl): the rest, or NULL. */
static const char *after(const char *p, const char *nl, const char *word)
{
	size_t w = strlen(word);

	if ((size_t)(nl - p) <= w + 1 || memcmp(p, word, w) || p[w] != ' ')
		return NULL;
	return p + w + 1;
}

int vmb_pub_header_check(const char *p, const char *nl, const char *magic,
			 const char *what, struct vmb_err *err)
{
	const char *v = after(p, nl, magic);
	uint64_t ver;

	if (!v)
		return vmb_err_set(err, EINVAL, "%s: line 1: not a %s (bad magic)", what, what);
	if (!vmb_num_u(v, (size_t)(nl - v), 10, UINT32_MAX, &ver) || ver != VMB_PUB_VERSION)
		return vmb_err_set(err, EINVAL, "%s: line 1: version '%.*s' is not "
				   "supported (this vmbundlefs reads version %d: newer publisher?)", what,
				   (int)((size_t)(nl - v) > 16 ? 16 : (size_t)(nl - v)), v,
				   VMB_PUB_VERSION);
	return 0;
}

int vmb_pub_end_check(const char *buf, size_t len, const char *what, const char **body_end,
		      const char **end_next, struct vmb_err *err)
{
	const char *p = buf, *end = buf + len, *nl;
	uint8_t want[32], got[32];
	size_t line = 0;
	int r;

	if (len == 0 || buf[len - 1] != '\n')
		return vmb_err_set(err, EINVAL, "%s: truncated (no final newline)", what);
	for (; p < end; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(end - p));
		line++;
		if ((size_t)(nl - p) >= 4 && !memcmp(p, "end ", 4))
			break;
	}
	if (p >= end)
		return vmb_err_set(err, EINVAL, "%s: truncated (no 'end' line)", what);
	if (!vmb_hex_ok(p + 4, (size_t)(nl - p - 4), want, 32))
		return vmb_err_set(err, EINVAL, "%s: line %zu: bad hex in the 'end' line", what,
				   line);
	r = vmb_sha256(buf, (size_t)(p - buf), got, err);
	if (r < 0)
		return r;
	if (memcmp(want, got, 32))
		return vmb_err_set(err, EINVAL, "%s: line %zu: the end digest does not match "
				   "the content (corrupt or altered)", what, line);
	*body_end = p;
	*end_next = nl + 1;
	return 0;
}

static int index_line(struct vmb_pub_index *x, const char *p, const char *nl, size_t line,
		      struct vmb_err *err)
{
	const char *tok[4];
	size_t tl[4], k = vmb_tokens(p, (size_t)(nl - p), tok, tl, 3);
	struct vmb_pub_ibundle *bn;
	char *name;
	int nomem = 0, r;

	if (k != 3 || tl[0] != 6 || memcmp(tok[0], "bundle", 6))
		return IDX_ERR("line %zu: not a 'bundle <digest> <name>' line", line);
	if (x->n >= VMB_PUB_BUNDLES_MAX)
		return IDX_ERR("line %zu: more than %u bundles", line, VMB_PUB_BUNDLES_MAX);
	if (x->n == x->cap) {
		size_t ncap = x->cap ? 2 * x->cap : 16;

		bn = realloc(x->bundles, ncap * sizeof(*bn));
		if (!bn)
			return vmb_err_set(err, ENOMEM, "out of memory");
		x->bundles = bn;
		x->cap = ncap;
	}
	bn = &x->bundles[x->n];
	if (!vmb_hex_ok(tok[1], tl[1], bn->digest, 32))
		return IDX_ERR("line %zu: bad hex in the manifest digest", line);
	name = vmb_unesc(tok[2], tl[2], 0, NULL, &nomem);
	if (!name)
		return nomem ? vmb_err_set(err, ENOMEM, "out of memory") :
			IDX_ERR("line %zu: bad escape in the bundle name", line);
	r = vmb_pub_name_check(name, err);
	if (r < 0) {
		free(name);
		return vmb_err_prefix(err, "index: line %zu", line);
	}
	if (x->n && strcmp(x->bundles[x->n - 1].name, name) >= 0) {
		r = strcmp(x->bundles[x->n - 1].name, name) ?
			IDX_ERR("line %zu: bundle '%s' is not in sorted order", line, name) :
			IDX_ERR("line %zu: bundle '%s' is listed twice", line, name);
		free(name);
		return r;
	}
	bn->name = name;
	x->n++;
	return 0;
}

int vmb_pub_index_decode(const void *vbuf, size_t len, const uint8_t *pubkey,
			 struct vmb_pub_index *x, struct vmb_err *err)
{
	const char *buf = vbuf, *body_end, *tail, *end = buf + len, *p, *nl, *v;
	uint8_t sig[VMB_ED25519_SIG_LEN];
	size_t line = 0;
	int r;

	memset(x, 0, sizeof(*x));
	if (len > VMB_PUB_INDEX_MAX)
		return IDX_ERR("%zu bytes (at most %u)", len, VMB_PUB_INDEX_MAX);
	r = vmb_pub_end_check(buf, len, "index", &body_end, &tail, err);
	if (r < 0)
		return r;
	/* After the end line: nothing, or one signature line. */
	if (tail < end) {
		nl = memchr(tail, '\n', (size_t)(end - tail));
		v = after(tail, nl, "signature");
		if (!v || nl + 1 != end)
			return IDX_ERR("trailing bytes after the 'end' line");
		if ((size_t)(nl - v) < 8 || memcmp(v, "ed25519 ", 8))
			return IDX_ERR("the signature line names an unknown algorithm "
				       "(only ed25519 is known)");
		if (!vmb_hex_ok(v + 8, (size_t)(nl - v - 8), sig, sizeof(sig)))
			return IDX_ERR("bad hex in the signature line");
		x->signed_ = 1;
		if (pubkey) {
			struct vmb_err verr = { 0 };

			/* its own message buffer: err's cannot be both the output and an
			 * argument of one vmb_err_set (overlapping vsnprintf) */
			r = vmb_sign_verify(pubkey, buf, (size_t)(tail - buf), sig, &verr);
			if (r < 0) {
				x->signed_ = 0;
				if (r == -ENOMEM)
					return vmb_err_set(err, ENOMEM, "%s", verr.msg);
				return vmb_err_set(err, EINVAL, "index: bad signature (%s): "
						   "refusing it", verr.msg);
			}
		}
	} else if (pubkey) {
		return IDX_ERR("not signed, and a public key was given: refusing it");
	}
	for (p = buf; p < body_end; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(body_end - p));
		line++;
		if (line == 1) {
			r = vmb_pub_header_check(p, nl, VMB_PUB_INDEX_MAGIC, "index", err);
		} else if (line == 2) {
			v = after(p, nl, "generation");
			if (!v || !vmb_num_u(v, (size_t)(nl - v), 10, UINT64_MAX, &x->generation))
				r = IDX_ERR("line 2: no 'generation <number>'");
		} else if (line == 3) {
			v = after(p, nl, "created");
			if (!v || !vmb_num_s(v, (size_t)(nl - v), &x->created))
				r = IDX_ERR("line 3: no 'created <unix seconds>'");
		} else {
			r = index_line(x, p, nl, line, err);
		}
		if (r < 0)
			goto out;
	}
	if (line < 3)
		r = IDX_ERR("truncated (%zu of its 3 header lines)", line);
out:
	if (r < 0) {
		vmb_pub_index_free(x);
		memset(x, 0, sizeof(*x));
	}
	return r;
}
