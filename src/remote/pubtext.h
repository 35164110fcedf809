/* pubtext.h - the text primitives the published formats share (remote/pubfmt.c,
 * remote/pubbundle.c): a growing buffer, %-escaping, tokens, canonical numbers and
 * hex. Internal to src/remote/. */
#ifndef VMB_PUBTEXT_H
#define VMB_PUBTEXT_H

#include <stddef.h>
#include <stdint.h>
#include "base/err.h"

struct vmb_sbuf {
	char *p;
	size_t len, cap;
	int nomem;                 /* an allocation failed: the buffer is incomplete */
};

void vmb_sbuf_put(struct vmb_sbuf *b, const void *s, size_t n);
void vmb_sbuf_putf(struct vmb_sbuf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* %-escape: bytes <= 0x20, '%', 0x7f..0xff as %XX (uppercase). */
void vmb_sbuf_put_esc(struct vmb_sbuf *b, const char *s, size_t n);
void vmb_sbuf_put_hex(struct vmb_sbuf *b, const uint8_t *d, size_t n);

/* Unescape [s, s+n) into a malloc'ed string (*len bytes, NUL after; len may be
 * NULL). Only the canonical form is accepted: %XX with uppercase hex, exactly for
 * the bytes that must be escaped; %00 only when nul_ok. NULL on a bad escape, or no
 * memory (*nomem set). */
char *vmb_unesc(const char *s, size_t n, int nul_ok, size_t *len, int *nomem);
/* Split a line into at most max single-space-separated, non-empty tokens: their
 * count, or max + 1 when there are more, or an empty one. */
size_t vmb_tokens(const char *s, size_t n, const char **tok, size_t *tlen, size_t max);
/* Canonical unsigned number in base 8, 10 or 16 (lowercase, no leading zeros but
 * "0") up to max: 1 and *v, or 0. */
int vmb_num_u(const char *s, size_t n, int base, uint64_t max, uint64_t *v);
/* Canonical signed decimal ("-0" refused). */
int vmb_num_s(const char *s, size_t n, int64_t *v);
/* "<sec>.<9 digits>". */
int vmb_num_time(const char *s, size_t n, int64_t *sec, uint32_t *nsec);
/* Exactly 2 * outlen lowercase hex digits. 1 or 0. */
int vmb_hex_ok(const char *s, size_t n, uint8_t *out, size_t outlen);
/* "." or '/'-joined names without "", ".", "..", each at most NAME_MAX bytes. */
int vmb_pub_path_ok(const char *p);

/* The header line [p, nl) of a text format: "<magic> 1". -EINVAL ("<what>: line 1:
 * not a <what> (bad magic)", or another version). */
int vmb_pub_header_check(const char *p, const char *nl, const char *magic,
			 const char *what, struct vmb_err *err);
/* Find the first "end <hex>" line of a text object (ending in "\n") and check that
 * its SHA-256 covers every byte before it: *body_end is where that line starts,
 * *end_next just past it. -EINVAL naming what. */
int vmb_pub_end_check(const char *buf, size_t len, const char *what, const char **body_end,
		      const char **end_next, struct vmb_err *err);

#endif
