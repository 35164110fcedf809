/* fuzz_manifest.c - fuzz the snapshot manifest decoder (store/manifest.c,
 * vmbundlefs(5) "Snapshot manifests").
 *
 * Oracle: the decoder rejects with a message or accepts without crashing; what it
 * accepts encodes again, and that encoding decodes to a manifest that encodes to
 * the same bytes (a fixed point), with the same number of records. */
#include "config.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fuzz.h"
#include "store/manifest.h"

static void must(int cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "fuzz_manifest: %s\n", what);
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vmb_manifest m, m2;
	struct vmb_err err;
	char *b1 = NULL, *b2 = NULL;
	size_t l1 = 0, l2 = 0;

	vmb_err_clear(&err);
	if (vmb_manifest_decode((const char *)data, size, &m, &err) == 0) {
		must(vmb_manifest_encode(&m, &b1, &l1, &err) == 0, "cannot re-encode");
		must(vmb_manifest_decode(b1, l1, &m2, &err) == 0, "cannot decode own output");
		must(m.n == m2.n, "round trip changed the number of records");
		must(vmb_manifest_encode(&m2, &b2, &l2, &err) == 0, "cannot re-encode twice");
		must(l1 == l2 && !memcmp(b1, b2, l1), "encoding is not a fixed point");
		vmb_manifest_free(&m);
		vmb_manifest_free(&m2);
		free(b1);
		free(b2);
	} else {
		must(err.msg[0] != '\0', "rejected without a message");
	}
	return 0;
}

/* Seeds: a bundle with only its root, and one with every record kind, escapes and
 * xattrs. */
int vmb_fuzz_seed(unsigned i, uint8_t **out, size_t *len)
{
	struct vmb_manifest m = { 0 };
	struct vmb_mf_ent e;
	char *buf = NULL;
	int r = 0;

	if (i > 1)
		return 0;
	m.bundle = strdup(i ? "mac 14%" : "vm");
	m.created = 1700000000;
	memset(&e, 0, sizeof(e));
	e.kind = 'd';
	e.mode = 0755;
	e.path = ".";
	if (!m.bundle || vmb_manifest_add(&m, &e) < 0)
		goto out;
	if (i == 1) {
		vmb_manifest_add_xattr(&m, "user.com.apple.x", "a\0b %", 5);
		e.kind = 'd';
		e.mode = 02750;
		e.uid = 1000;
		e.mtime_sec = -5;
		e.mtime_nsec = 999999999;
		e.path = "sub dir";
		vmb_manifest_add(&m, &e);
		e.kind = 'f';
		e.mode = 0600;
		e.size = 17179869184ull;
		memcpy(e.id, "0123456789abcdef0123456789abcdef", 33);
		e.path = "sub dir/disk\xc3\xa9.img";
		vmb_manifest_add(&m, &e);
		vmb_manifest_add_xattr(&m, "user.k", "v", 1);
		e.kind = 'l';
		e.mode = 0;
		e.path = "link";
		e.target = "../../etc/passwd";
		vmb_manifest_add(&m, &e);
	}
	if (vmb_manifest_encode(&m, &buf, len, NULL) == 0) {
		*out = (uint8_t *)buf;
		r = 1;
	}
out:
	vmb_manifest_free(&m);
	return r;
}
