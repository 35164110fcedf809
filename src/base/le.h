/* le.h - little-endian fields of the on-disk formats (sidecar maps, journals).
 *
 * memcpy and byte order: one load or store each (byte loops were not always
 * recognised, and decoding a 65,000-extent map reads 200,000 fields). p need not be
 * aligned. */
#ifndef VMB_LE_H
#define VMB_LE_H

#include <endian.h>
#include <stdint.h>
#include <string.h>

static inline void vmb_put_le32(unsigned char *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, sizeof(v));
}

static inline void vmb_put_le64(unsigned char *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, sizeof(v));
}

static inline uint32_t vmb_get_le32(const unsigned char *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return le32toh(v);
}

static inline uint64_t vmb_get_le64(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return le64toh(v);
}

#endif
