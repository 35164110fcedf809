/* fuzz_sidecar.c - fuzz the sidecar map decoder (map/sidecar.c, vmbundlefs(5)).
 *
 * Oracle: a decoder must reject or accept without crashing, and what it accepts must
 * be a valid map (vmb_blockmap_check) that encodes and decodes back to itself with
 * the same stamp and base (version 2, a delta over a base). */
#include "config.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fuzz.h"
#include "map/blockmap.h"
#include "map/sidecar.h"

static void must(int cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "fuzz_sidecar: %s\n", what);
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vmb_blockmap m, m2;
	struct vmb_stamp s, s2;
	struct vmb_baseref b, b2;
	struct vmb_err err;
	void *buf = NULL;
	size_t len = 0;

	vmb_blockmap_init(&m);
	vmb_blockmap_init(&m2);
	if (vmb_sidecar_decode2(data, size, &m, &s, &b, &err) == 0) {
		must(vmb_blockmap_check(&m) == 0, "accepted a map that breaks its invariants");
		must(!b.id[0] || vmb_base_id_valid(b.id), "accepted a bad base id");
		must(vmb_sidecar_encode2(&m, &s, &b, &buf, &len, &err) == 0, "cannot re-encode");
		must(vmb_sidecar_decode2(buf, len, &m2, &s2, &b2, &err) == 0,
		     "cannot decode own output");
		must(vmb_blockmap_equal(&m, &m2), "round trip changed the map");
		must(vmb_stamp_equal(&s, &s2), "round trip changed the stamp");
		must(vmb_baseref_equal(&b, &b2), "round trip changed the base");
		free(buf);
	} else {
		must(err.msg[0] != '\0', "rejected without a message");
	}
	vmb_blockmap_destroy(&m);
	vmb_blockmap_destroy(&m2);
	return 0;
}

/* Seeds: an empty map, a small mixed one, one spanning three extent pages, and the
 * small one over a base (version 2). */
int vmb_fuzz_seed(unsigned i, uint8_t **out, size_t *len)
{
	struct vmb_stamp s = { .ino = 1234, .size = 1 << 20, .mtime_sec = 1700000000,
			       .mtime_nsec = 5, .btime_sec = 1690000000, .btime_nsec = 7 };
	struct vmb_blockmap m;
	void *buf = NULL;
	uint64_t b;
	int r = 0;

	static const struct vmb_baseref base = { "00112233445566778899aabbccddeeff", 101 };

	if (i > 3)
		return 0;
	vmb_blockmap_init(&m);
	if (i == 1 || i == 3) {
		vmb_blockmap_set(&m, 0, 3, VMB_DATA);
		vmb_blockmap_set(&m, 3, 10, VMB_ZERO);
		vmb_blockmap_set(&m, 100, 1, VMB_DATA);
		s.size = 101 * 4096;
	} else if (i == 2) {
		for (b = 0; b < 400; b++)
			vmb_blockmap_set(&m, b * 2, 1, b % 3 ? VMB_DATA : VMB_ZERO);
		s.size = 800 * 4096;
	}
	if (vmb_sidecar_encode2(&m, &s, i == 3 ? &base : NULL, &buf, len, NULL) == 0) {
		*out = buf;
		r = 1;
	}
	vmb_blockmap_destroy(&m);
	return r;
}
