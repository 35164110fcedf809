/* fuzz_pubindex.c - fuzz the top index decoder of published stores
 * (remote/pubfmt.c, vmbundlefs(5) "PUBLISHED STORES").
 *
 * Oracle: the decoder rejects with a message (leaving an empty index) or accepts
 * without crashing; what it accepts is sorted, unique and encodes back to the same
 * bytes up to its 'end' line (the signature line is not re-made: no key here).
 * Each input also runs with its end digest made right. */
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
		fprintf(stderr, "fuzz_pubindex: %s\n", what);
		abort();
	}
}

static void one(const uint8_t *data, size_t size)
{
	struct vmb_pub_index x;
	struct vmb_err err;
	char *b = NULL;
	size_t l = 0, i;

	vmb_err_clear(&err);
	if (vmb_pub_index_decode(data, size, NULL, &x, &err) == 0) {
		for (i = 1; i < x.n; i++)
			must(strcmp(x.bundles[i - 1].name, x.bundles[i].name) < 0, "not sorted");
		must(vmb_pub_index_encode(&x, NULL, &b, &l, &err) == 0, "cannot re-encode");
		must(l <= size && !memcmp(b, data, l), "encoding differs from the input");
		must(l == size || x.signed_, "bytes after 'end' accepted without a signature");
		vmb_pub_index_free(&x);
		free(b);
	} else {
		must(err.msg[0] != '\0', "rejected without a message");
		must(x.n == 0 && x.bundles == NULL, "rejected, but left bundles");
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

/* Seeds: an empty index, and one of three bundles with escapes, signed. */
int vmb_fuzz_seed(unsigned i, uint8_t **out, size_t *len)
{
	struct vmb_pub_index x = { 0 };
	struct vmb_sign_key *k = NULL;
	uint8_t d[32];
	char *buf = NULL;
	int r = 0;

	if (i > 1)
		return 0;
	x.generation = 3;
	x.created = 1700000000;
	if (i == 1) {
		memset(d, 0x5a, 32);
		vmb_pub_index_set(&x, "mac 14%", d, NULL);
		d[0] = 1;
		vmb_pub_index_set(&x, "caf\xc3\xa9", d, NULL);
		vmb_pub_index_set(&x, "a", d, NULL);
		if (vmb_sign_key_generate(&k, NULL) < 0)
			goto out;
	}
	if (vmb_pub_index_encode(&x, k, &buf, len, NULL) == 0) {
		*out = (uint8_t *)buf;
		r = 1;
	}
out:
	vmb_sign_key_free(k);
	vmb_pub_index_free(&x);
	return r;
}
