/* pubseal.h - for the fuzzers of the published text formats: a copy of an input
 * whose first "end " line carries the right SHA-256 of what precedes it, so that
 * mutations reach the parser behind the digest check. */
#ifndef VMB_FUZZ_PUBSEAL_H
#define VMB_FUZZ_PUBSEAL_H

#include <stdlib.h>
#include <string.h>
#include "base/digest.h"

/* malloc'ed, or NULL when the input has no "end " line starting a line. */
static inline char *vmb_fuzz_reseal(const uint8_t *data, size_t size, size_t *len)
{
	const char *buf = (const char *)data, *p = buf, *end = buf + size, *nl;
	char hex[VMB_SHA256_HEX], *o;
	uint8_t d[32];
	size_t off, rest;

	while (p < end) {
		if ((size_t)(end - p) >= 4 && !memcmp(p, "end ", 4))
			break;
		nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			return NULL;
		p = nl + 1;
	}
	if (p >= end)
		return NULL;
	off = (size_t)(p - buf);
	nl = memchr(p, '\n', (size_t)(end - p));
	rest = nl ? (size_t)(end - nl) : 0;
	if (vmb_sha256(buf, off, d, NULL) < 0)
		return NULL;
	vmb_sha256_hex(d, hex);
	o = malloc(off + 4 + 64 + rest + 1);
	if (!o)
		return NULL;
	memcpy(o, buf, off);
	memcpy(o + off, "end ", 4);
	memcpy(o + off + 4, hex, 64);
	if (rest)
		memcpy(o + off + 68, nl, rest);
	*len = off + 68 + rest;
	return o;
}

#endif
