/* text.h - the text primitives of the line formats: snapshot manifests
 * (store/manifest.c) and the published formats (remote/pubfmt.c, pubbundle.c).
 * A growing buffer, %-escaping, tokens, numbers, hex and relative paths; the rules
 * are those of man/vmbundlefs.5.
 *
 * Two readings of a field: the canonical one (vmb_unesc, vmb_num_*), which the
 * published formats demand (one byte sequence per value, since digests cover
 * them), and the loose one (vmb_unesc_loose, vmb_num_*_loose) with which snapshot
 * manifests have always been read: escapes in either case and of bytes that need
 * none, leading zeros (at most 20 digits), "-0". Both write the same way.
 *
 * No state; a struct vmb_sbuf has one owner (its p is malloc'ed, freed by it). */
#ifndef VMB_TEXT_H
#define VMB_TEXT_H

#include <stddef.h>
#include <stdint.h>

struct vmb_sbuf {
	char *p;                   /* NUL after len bytes once anything was put */
	size_t len, cap;
	int nomem;                 /* an allocation failed: the buffer is incomplete */
};

void vmb_sbuf_put(struct vmb_sbuf *b, const void *s, size_t n);
/* At most 255 bytes of output. */
void vmb_sbuf_putf(struct vmb_sbuf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* %-escape: bytes <= 0x20, '%', 0x7f..0xff as %XX (uppercase). */
void vmb_sbuf_put_esc(struct vmb_sbuf *b, const char *s, size_t n);
/* A value that may be empty as one token (tokens are never empty): "-" for the
 * empty value, "%2D" for the value "-" (the one escape of a byte that needs none),
 * else as vmb_sbuf_put_esc. */
void vmb_sbuf_put_value(struct vmb_sbuf *b, const char *s, size_t n);
void vmb_sbuf_put_hex(struct vmb_sbuf *b, const uint8_t *d, size_t n);

/* Unescape [s, s+n) into a malloc'ed string (*len bytes, NUL after; len may be
 * NULL). Canonical: %XX with uppercase hex, exactly for the bytes that must be
 * escaped; %00 only when nul_ok; a raw byte that must be escaped is refused. NULL on
 * a bad escape, or no memory (*nomem set). */
char *vmb_unesc(const char *s, size_t n, int nul_ok, size_t *len, int *nomem);
/* The same, but %xx in either case and of any byte (%41 is "A"). */
char *vmb_unesc_loose(const char *s, size_t n, int nul_ok, size_t *len, int *nomem);

/* Split a line into at most max single-space-separated, non-empty tokens: their
 * count, or max + 1 when there are more, or an empty one. */
size_t vmb_tokens(const char *s, size_t n, const char **tok, size_t *tlen, size_t max);

/* Unsigned number in base 8, 10 or 16 (lowercase hex) up to max: 1 and *v, or 0.
 * Canonical: no leading zeros but "0". Loose: leading zeros, at most 20 digits. */
int vmb_num_u(const char *s, size_t n, int base, uint64_t max, uint64_t *v);
int vmb_num_u_loose(const char *s, size_t n, int base, uint64_t max, uint64_t *v);
/* Signed decimal, "-" for negatives ("-0" canonical only in the loose reading). */
int vmb_num_s(const char *s, size_t n, int64_t *v);
int vmb_num_s_loose(const char *s, size_t n, int64_t *v);
/* A time "<signed sec>.<exactly 9 digits>". */
int vmb_num_time(const char *s, size_t n, int64_t *sec, uint32_t *nsec);
int vmb_num_time_loose(const char *s, size_t n, int64_t *sec, uint32_t *nsec);

/* Exactly 2 * outlen lowercase hex digits, decoded into out (may be NULL). 1 or 0. */
int vmb_hex_ok(const char *s, size_t n, uint8_t *out, size_t outlen);
/* "." or '/'-joined names without "", ".", "..", each at most NAME_MAX bytes. */
int vmb_relpath_ok(const char *p);

#endif
