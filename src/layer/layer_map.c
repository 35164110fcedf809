/* layer_map.c - encode and decode a layer's .map (format in layer.h and
 * vmbundlefs(5); the pages, records and checksums are map/pages.c's, shared with
 * the sidecar maps).
 *
 * Decode checks, in order: the preamble (length, magic, version, header checksum),
 * the common header fields, then this format's own: flags, reserved, base id,
 * limit, depth, padding; then the records (pages.c) and last that every extent lies
 * below the layer's size. Every -EBADMSG message names the layer and the offset. */
#include "config.h"
#include "layer/layer.h"
#include "map/pages.h"
#include "base/le.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char layer_magic[8] = { 'V', 'M', 'B', 'L', 'A', 'Y', 'R', '1' };

/* This format's own header fields. */
enum {
	H_FLAGS = 80,
	H_RESERVED = 84,
	H_BASE = 88,
	H_LIMIT = 120,
	H_DEPTH = 128,
	H_END = 136,
};

#define F_BASE 1u   /* flags: has a base */

_Static_assert(sizeof(VMB_LAYER_MAGIC) == 9, "an 8-byte magic");

static uint64_t nblocks(uint64_t size)
{
	return size / VMB_BLOCK_SIZE + (size % VMB_BLOCK_SIZE != 0);
}

int vmb_layer_map_encode(const struct vmb_blockmap *m, const struct vmb_layer_hdr *h,
			 void **buf, size_t *len, struct vmb_err *err)
{
	int has_base = h->base[0] != '\0';
	unsigned char *b;
	int rc;

	*buf = NULL;
	*len = 0;
	if (has_base ? !vmb_base_id_valid(h->base) : h->limit != 0)
		return vmb_err_set(err, EINVAL, "invalid base '%s' of a layer", h->base);
	if (h->depth < 1 + (uint64_t)has_base || h->depth > VMB_LAYER_DEPTH_MAX ||
	    (!has_base && h->depth != 1))
		return vmb_err_set(err, EINVAL, "invalid layer depth %" PRIu64, h->depth);
	if (h->limit > nblocks(h->stamp.size))
		return vmb_err_set(err, EINVAL, "base limit %" PRIu64 " past the layer's %"
				   PRIu64 " blocks", h->limit, nblocks(h->stamp.size));
	if (m->n && m->ext[m->n - 1].start + m->ext[m->n - 1].len > nblocks(h->stamp.size))
		return vmb_err_set(err, EINVAL, "a layer's map reaches past its size");
	rc = vmb_pages_encode(m, &h->stamp, layer_magic, VMB_LAYER_VERSION, &b, len,
			      "layer map", err);
	if (rc)
		return rc;
	vmb_put_le32(b + H_FLAGS, has_base ? F_BASE : 0);
	if (has_base)
		memcpy(b + H_BASE, h->base, VMB_BASE_ID_LEN);
	vmb_put_le64(b + H_LIMIT, h->limit);
	vmb_put_le64(b + H_DEPTH, h->depth);
	vmb_pages_seal(b, *len);
	*buf = b;
	return 0;
}

/* This format's fields of header b into h; file names the layer. */
static int decode_own(const unsigned char *b, struct vmb_layer_hdr *h, const char *file,
		      struct vmb_err *err)
{
	uint32_t flags = vmb_get_le32(b + H_FLAGS);
	size_t i;

	if (flags & ~F_BASE)
		return vmb_corrupt_at(err, file, H_FLAGS, "unknown flags 0x%" PRIx32, flags);
	if (vmb_get_le32(b + H_RESERVED))
		return vmb_corrupt_at(err, file, H_RESERVED, "non-zero reserved field");
	memset(h->base, 0, sizeof(h->base));
	if (flags & F_BASE) {
		memcpy(h->base, b + H_BASE, VMB_BASE_ID_LEN);
		if (!vmb_base_id_valid(h->base))
			return vmb_corrupt_at(err, file, H_BASE, "invalid base id");
	} else {
		for (i = H_BASE; i < H_BASE + VMB_BASE_ID_LEN; i++)
			if (b[i])
				return vmb_corrupt_at(err, file, H_BASE,
						      "a base id without the base flag");
	}
	h->limit = vmb_get_le64(b + H_LIMIT);
	if (!(flags & F_BASE) && h->limit)
		return vmb_corrupt_at(err, file, H_LIMIT, "a base limit without a base");
	if (h->limit > nblocks(h->stamp.size))
		return vmb_corrupt_at(err, file, H_LIMIT, "base limit %" PRIu64 " past the "
				      "layer's %" PRIu64 " blocks", h->limit,
				      nblocks(h->stamp.size));
	h->depth = vmb_get_le64(b + H_DEPTH);
	if (h->depth < 1 || h->depth > VMB_LAYER_DEPTH_MAX ||
	    ((flags & F_BASE) ? h->depth < 2 : h->depth != 1))
		return vmb_corrupt_at(err, file, H_DEPTH, "bad depth %" PRIu64, h->depth);
	return vmb_pages_zero(b, H_END, VMB_PAGES_BODY, file, err);
}

int vmb_layer_map_decode(const void *buf, size_t len, const char *id,
			 struct vmb_blockmap *m, struct vmb_layer_hdr *h, struct vmb_err *err)
{
	const unsigned char *b = buf;
	struct vmb_blockmap tmp;
	struct vmb_layer_hdr hdr;
	char file[64];
	uint32_t version;
	uint64_t count;
	size_t expected;
	int rc;

	snprintf(file, sizeof(file), "layer '%.*s'", VMB_BASE_ID_LEN, id);
	vmb_blockmap_init(&tmp);
	memset(&hdr, 0, sizeof(hdr));
	rc = vmb_pages_preamble(b, len, layer_magic, VMB_LAYER_VERSION, &version, file, err);
	if (rc)
		goto out;
	rc = vmb_pages_header(b, &hdr.stamp, &count, &expected, file, err);
	if (rc)
		goto out;
	rc = decode_own(b, &hdr, file, err);
	if (rc)
		goto out;
	rc = vmb_pages_decode_map(b, len, count, expected, &tmp, file, err);
	if (rc)
		goto out;
	if (tmp.n && tmp.ext[tmp.n - 1].start + tmp.ext[tmp.n - 1].len >
		     nblocks(hdr.stamp.size)) {
		rc = vmb_corrupt_at(err, file, VMB_PAGES_PAGE + (uint64_t)(tmp.n - 1) /
				    VMB_PAGES_PER_PAGE * VMB_PAGES_PAGE + (tmp.n - 1) %
				    VMB_PAGES_PER_PAGE * 24, "extent past the layer's size");
		goto out;
	}
	vmb_blockmap_destroy(m);
	*m = tmp;
	vmb_blockmap_init(&tmp);
	*h = hdr;
out:
	vmb_blockmap_destroy(&tmp);
	return rc;
}
