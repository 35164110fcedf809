/* fuzz_pubbundle.c - fuzz the bundle manifest decoder of published stores
 * (remote/pubbundle.c, vmbundlefs(5) "PUBLISHED STORES").
 *
 * Oracle: the decoder rejects with a message (leaving an empty manifest) or accepts
 * without crashing; what it accepts encodes back to the very same bytes (the
 * encoding is canonical). Each input also runs with its end digest made right. */
#include "config.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fuzz.h"
#include "pubseal.h"
#include "remote/pubfmt.h"

static void must(int cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "fuzz_pubbundle: %s\n", what);
		abort();
	}
}

static void one(const uint8_t *data, size_t size)
{
	struct vmb_pub_bundle b;
	struct vmb_err err;
	char *o = NULL;
	size_t l = 0;

	vmb_err_clear(&err);
	if (vmb_pub_bundle_decode(data, size, &b, &err) == 0) {
		must(b.n >= 1 && b.ents[0].kind == 'd', "accepted without its '.'");
		must(vmb_pub_bundle_encode(&b, &o, &l, &err) == 0, "cannot re-encode");
		must(l == size && !memcmp(o, data, l), "encoding differs from the input");
		vmb_pub_bundle_free(&b);
		free(o);
	} else {
		must(err.msg[0] != '\0', "rejected without a message");
		must(b.n == 0 && b.ents == NULL && b.name == NULL, "rejected, but left records");
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s;
	size_t n;

	one(data, size);
	s = vmb_fuzz_reseal(data, size, &n);
	if (s) {
		one((const uint8_t *)s, n);
		free(s);
	}
	return 0;
}

/* Seeds: a bundle with only its root, and one with every record kind, escapes and
 * xattrs (empty, "-", binary). */
int vmb_fuzz_seed(unsigned i, uint8_t **out, size_t *len)
{
	struct vmb_pub_bundle b = { 0 };
	struct vmb_pub_ent e;
	char *buf = NULL;
	int r = 0;

	if (i > 1)
		return 0;
	b.name = strdup(i ? "mac 14%" : "vm");
	memset(&e, 0, sizeof(e));
	e.kind = 'd';
	e.mode = 0755;
	e.path = ".";
	if (!b.name || vmb_pub_bundle_add(&b, &e) < 0)
		goto out;
	if (i == 1) {
		vmb_pub_bundle_add_xattr(&b, "user.com.apple.x", "a\0b %", 5);
		e.mode = 02750;
		e.mtime_sec = -5;
		e.mtime_nsec = 999999999;
		e.path = "sub dir";
		vmb_pub_bundle_add(&b, &e);
		e.kind = 'f';
		e.mode = 0600;
		e.size = 4096;
		memset(e.digest, 0xc3, 32);
		e.path = "sub dir/nvram";
		vmb_pub_bundle_add(&b, &e);
		vmb_pub_bundle_add_xattr(&b, "user.empty", "", 0);
		vmb_pub_bundle_add_xattr(&b, "user.dash", "-", 1);
		e.kind = 'i';
		e.size = 17179869184ull;
		e.path = "disk\xc3\xa9.img";
		vmb_pub_bundle_add(&b, &e);
		e.kind = 'l';
		e.mode = 0;
		e.path = "link";
		e.target = "../../etc/passwd";
		vmb_pub_bundle_add(&b, &e);
	}
	if (vmb_pub_bundle_encode(&b, &buf, len, NULL) == 0) {
		*out = (uint8_t *)buf;
		r = 1;
	}
out:
	vmb_pub_bundle_free(&b);
	return r;
}
