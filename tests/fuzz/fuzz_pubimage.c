/* fuzz_pubimage.c - fuzz the image index decoder of published stores
 * (remote/pubimage.c, vmbundlefs(5) "PUBLISHED STORES").
 *
 * Oracle: the decoder rejects with a message (leaving nothing allocated) or accepts
 * without crashing; what it accepts validates, encodes back to the same bytes, and
 * its lookups agree with its extents and chunk digests: walking the blocks by runs
 * counts exactly data_blocks, and a chunk is zero exactly when no DATA run meets it. */
#include "config.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fuzz.h"
#include "remote/pubfmt.h"

static void must(int cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "fuzz_pubimage: %s\n", what);
		abort();
	}
}

static void check_lookups(const struct vmb_pub_image *m)
{
	uint64_t nblocks = (m->size + VMB_BLOCK_SIZE - 1) / VMB_BLOCK_SIZE;
	uint64_t cb = m->chunk_size / VMB_BLOCK_SIZE, blk = 0, data = 0, run, steps = 0;

	while (blk < nblocks && steps++ < 100000) {
		enum vmb_bstate st = vmb_pub_image_lookup(m, blk, &run);

		must(run >= 1, "a run of 0 blocks");
		if (st == VMB_DATA) {
			uint64_t c;

			must(run <= nblocks - blk, "a DATA run past the size");
			data += run;
			for (c = blk / cb; c <= (blk + run - 1) / cb && c < blk / cb + 4; c++)
				must(!vmb_pub_chunk_is_zero(m, c), "a DATA block in a zero chunk");
		} else {
			must(st == VMB_ZERO, "a state neither DATA nor ZERO");
		}
		blk += run;
	}
	if (steps <= 100000)
		must(data == m->data_blocks, "runs do not add up to data_blocks");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vmb_pub_image m;
	struct vmb_err err;
	void *b = NULL;
	size_t l = 0;

	vmb_err_clear(&err);
	if (vmb_pub_image_decode(data, size, &m, &err) == 0) {
		must(vmb_pub_image_validate(&m, &err) == 0, "accepted, but does not validate");
		must(vmb_pub_image_encode(&m, &b, &l, &err) == 0, "cannot re-encode");
		must(l == size && !memcmp(b, data, l), "encoding differs from the input");
		check_lookups(&m);
		vmb_pub_image_free(&m);
		free(b);
	} else {
		must(err.msg[0] != '\0', "rejected without a message");
		must(m.ext == NULL && m.chunks == NULL, "rejected, but left arrays");
	}
	return 0;
}

/* Seeds: an empty image, and a 2.5 MiB one of 64 KiB chunks with three extents
 * (one spanning chunks) and a short last chunk. */
int vmb_fuzz_seed(unsigned i, uint8_t **out, size_t *len)
{
	struct vmb_pub_image m = { 0 };
	uint64_t ext[3][2] = { { 0, 2 }, { 14, 20 }, { 640, 1 } };
	uint8_t (*ch)[32] = NULL;
	void *buf = NULL;
	uint64_t c;
	int r = 0;

	if (i > 1)
		return 0;
	m.chunk_size = i ? 65536 : VMB_PIDX_CHUNK_DEFAULT;
	if (i == 1) {
		m.size = 640 * 4096 + 100;
		m.n_chunks = 41;
		m.n_extents = 3;
		m.data_blocks = 23;
		m.ext = ext;
		ch = calloc(41, 32);
		if (!ch)
			return 0;
		for (c = 0; c < 41; c++)
			if (c <= 2 || c == 40)
				memset(ch[c], (int)c + 1, 32);
		m.chunks = ch;
	}
	if (vmb_pub_image_encode(&m, &buf, len, NULL) == 0) {
		*out = buf;
		r = 1;
	}
	free(ch);
	return r;
}
