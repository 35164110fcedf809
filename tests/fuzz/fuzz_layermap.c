/* fuzz_layermap.c - fuzz the layer map decoder (layer/layer_map.c, vmbundlefs(5)
 * "Layers").
 *
 * Oracle: a decoder must reject (with a message naming the layer, leaving the map
 * untouched) or accept without crashing, and what it accepts must be a valid map
 * (vmb_blockmap_check) lying below the layer's size, with a header the encoder
 * accepts (a valid base id or none, a limit within the size, a depth that fits),
 * that encodes back to the very same bytes. Each input also runs with its page
 * checksums made right. */
#include "config.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fuzz.h"
#include "layer/layer.h"
#include "map/blockmap.h"
#include "map/pages.h"

#define ID "0123456789abcdef0123456789abcdef"

static void must(int cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "fuzz_layermap: %s\n", what);
		abort();
	}
}

static void one(const uint8_t *data, size_t size)
{
	struct vmb_blockmap m, m2;
	struct vmb_layer_hdr h, h2;
	struct vmb_err err;
	void *buf = NULL;
	size_t len = 0;

	vmb_blockmap_init(&m);
	vmb_blockmap_init(&m2);
	vmb_blockmap_set(&m, 7, 1, VMB_DATA);   /* a rejected input leaves this alone */
	vmb_err_clear(&err);
	if (vmb_layer_map_decode(data, size, ID, &m, &h, &err) == 0) {
		must(vmb_blockmap_check(&m) == 0, "accepted a map that breaks its invariants");
		must(!m.n || m.ext[m.n - 1].start + m.ext[m.n - 1].len <=
			     (h.stamp.size + VMB_BLOCK_SIZE - 1) / VMB_BLOCK_SIZE,
		     "accepted an extent past the layer's size");
		must(h.depth >= 1 && h.depth <= VMB_LAYER_DEPTH_MAX, "accepted a bad depth");
		must(h.base[0] ? vmb_base_id_valid(h.base) && h.depth >= 2 :
				 h.limit == 0 && h.depth == 1, "accepted a bad base");
		must(vmb_layer_map_encode(&m, &h, &buf, &len, &err) == 0, "cannot re-encode");
		must(len == size && !memcmp(buf, data, size), "re-encoding differs");
		must(vmb_layer_map_decode(buf, len, ID, &m2, &h2, &err) == 0,
		     "cannot decode own output");
		must(vmb_blockmap_equal(&m, &m2), "round trip changed the map");
		must(!strcmp(h.base, h2.base) && h.limit == h2.limit && h.depth == h2.depth &&
		     vmb_stamp_equal(&h.stamp, &h2.stamp), "round trip changed the header");
		free(buf);
	} else {
		must(err.msg[0] != '\0', "rejected without a message");
		must(strstr(err.msg, "layer '" ID "'") != NULL || err.code == 12 /* ENOMEM */,
		     "a message not naming the layer");
		must(m.n == 1 && m.ext[0].start == 7, "a rejected input changed the map");
	}
	vmb_blockmap_destroy(&m);
	vmb_blockmap_destroy(&m2);
}

/* The input as it is, and with its page checksums made right (most mutations
 * otherwise stop at the first checksum, before the fields they changed). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *sealed;

	one(data, size);
	if (size >= VMB_PAGES_PAGE && size <= (1u << 20) && (sealed = malloc(size))) {
		memcpy(sealed, data, size);
		vmb_pages_seal(sealed, size);
		one(sealed, size);
		free(sealed);
	}
	return 0;
}

/* Seeds: a layer without a base and no extents, one with a base and a few, one
 * spanning three extent pages. */
int vmb_fuzz_seed(unsigned i, uint8_t **out, size_t *len)
{
	struct vmb_layer_hdr h;
	struct vmb_blockmap m;
	void *buf = NULL;
	uint64_t b;
	int r = 0;

	if (i > 2)
		return 0;
	memset(&h, 0, sizeof(h));
	h.stamp = (struct vmb_stamp){ .ino = 1234, .size = 1 << 20, .mtime_sec = 1700000000,
				      .mtime_nsec = 5, .btime_sec = 1690000000,
				      .btime_nsec = 7 };
	h.depth = 1;
	vmb_blockmap_init(&m);
	if (i == 1) {
		vmb_blockmap_set(&m, 0, 3, VMB_DATA);
		vmb_blockmap_set(&m, 3, 10, VMB_ZERO);
		vmb_blockmap_set(&m, 100, 1, VMB_DATA);
		h.stamp.size = 101 * 4096 - 5;
		memcpy(h.base, "fedcba9876543210fedcba9876543210", VMB_BASE_ID_LEN + 1);
		h.limit = 90;
		h.depth = 4;
	} else if (i == 2) {
		for (b = 0; b < 400; b++)
			vmb_blockmap_set(&m, b * 2, 1, b % 3 ? VMB_DATA : VMB_ZERO);
		h.stamp.size = 800 * 4096;
	}
	if (vmb_layer_map_encode(&m, &h, &buf, len, NULL) == 0) {
		*out = buf;
		r = 1;
	}
	vmb_blockmap_destroy(&m);
	return r;
}
