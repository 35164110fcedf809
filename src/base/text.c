/* text.c - text primitives of the line formats (see text.h). */
#include "config.h"
#include "base/text.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void vmb_sbuf_put(struct vmb_sbuf *b, const void *s, size_t n)
{
	if (b->nomem)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t ncap = b->cap ? b->cap : 4096;
		char *np;

		while (ncap < b->len + n + 1)
			ncap *= 2;
		np = realloc(b->p, ncap);
		if (!np) {
			b->nomem = 1;
			return;
		}
		b->p = np;
		b->cap = ncap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void vmb_sbuf_putf(struct vmb_sbuf *b, const char *fmt, ...)
{
	char tmp[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n > 0)
		vmb_sbuf_put(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

static int must_escape(unsigned char c)
{
	return c <= 0x20 || c == '%' || c >= 0x7f;
}

void vmb_sbuf_put_esc(struct vmb_sbuf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t i, st = 0;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (must_escape(c)) {
			char e[3] = { '%', hex[c >> 4], hex[c & 15] };

			vmb_sbuf_put(b, s + st, i - st);
			vmb_sbuf_put(b, e, 3);
			st = i + 1;
		}
	}
	vmb_sbuf_put(b, s + st, n - st);
}

void vmb_sbuf_put_value(struct vmb_sbuf *b, const char *s, size_t n)
{
	if (!n)
		vmb_sbuf_put(b, "-", 1);
	else if (n == 1 && s[0] == '-')
		vmb_sbuf_put(b, "%2D", 3);
	else
		vmb_sbuf_put_esc(b, s, n);
}

void vmb_sbuf_put_hex(struct vmb_sbuf *b, const uint8_t *d, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	char tmp[2];
	size_t i;

	for (i = 0; i < n; i++) {
		tmp[0] = hex[d[i] >> 4];
		tmp[1] = hex[d[i] & 15];
		vmb_sbuf_put(b, tmp, 2);
	}
}

static int hexval_upper(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int hexval_lower(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static int hexval_any(char c)
{
	int d = hexval_upper(c);

	return d >= 0 ? d : hexval_lower(c);
}

static char *unesc(const char *s, size_t n, int nul_ok, int loose, size_t *len, int *nomem)
{
	int (*hexval)(char) = loose ? hexval_any : hexval_upper;
	char *o = malloc(n + 1);
	size_t i, w = 0;

	if (!o) {
		*nomem = 1;
		return NULL;
	}
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '%') {
			int hi, lo;
			unsigned char v;

			if (i + 2 >= n)
				goto bad;
			hi = hexval(s[i + 1]);
			lo = hexval(s[i + 2]);
			if (hi < 0 || lo < 0)
				goto bad;
			v = (unsigned char)(hi * 16 + lo);
			if ((!loose && !must_escape(v)) || (!nul_ok && v == 0))
				goto bad;
			o[w++] = (char)v;
			i += 2;
		} else if (must_escape(c)) {
			goto bad;
		} else {
			o[w++] = (char)c;
		}
	}
	o[w] = '\0';
	if (len)
		*len = w;
	return o;
bad:
	free(o);
	return NULL;
}

char *vmb_unesc(const char *s, size_t n, int nul_ok, size_t *len, int *nomem)
{
	return unesc(s, n, nul_ok, 0, len, nomem);
}

char *vmb_unesc_loose(const char *s, size_t n, int nul_ok, size_t *len, int *nomem)
{
	return unesc(s, n, nul_ok, 1, len, nomem);
}

size_t vmb_tokens(const char *s, size_t n, const char **tok, size_t *tlen, size_t max)
{
	size_t k = 0, i = 0;

	while (i < n) {
		size_t st = i;

		while (i < n && s[i] != ' ')
			i++;
		if (i == st || k == max)
			return max + 1;   /* an empty token, or too many */
		tok[k] = s + st;
		tlen[k] = i - st;
		k++;
		if (i < n) {
			i++;
			if (i == n)
				return max + 1;   /* a trailing space */
		}
	}
	return k;
}

static int num_u(const char *s, size_t n, int base, uint64_t max, int loose, uint64_t *v)
{
	uint64_t x = 0;
	size_t i;

	/* 22 octal digits hold any uint64_t; the loose reading stops at 20 */
	if (n == 0 || n > (loose ? 20u : 22u) || (!loose && n > 1 && s[0] == '0'))
		return 0;
	for (i = 0; i < n; i++) {
		int d = hexval_lower(s[i]);

		if (d < 0 || d >= base)
			return 0;
		if (x > (UINT64_MAX - (uint64_t)d) / (uint64_t)base)
			return 0;
		x = x * (uint64_t)base + (uint64_t)d;
	}
	if (x > max)
		return 0;
	*v = x;
	return 1;
}

int vmb_num_u(const char *s, size_t n, int base, uint64_t max, uint64_t *v)
{
	return num_u(s, n, base, max, 0, v);
}

int vmb_num_u_loose(const char *s, size_t n, int base, uint64_t max, uint64_t *v)
{
	return num_u(s, n, base, max, 1, v);
}

static int num_s(const char *s, size_t n, int loose, int64_t *v)
{
	uint64_t a;
	int neg = n && s[0] == '-';

	if (!num_u(s + neg, n - (size_t)neg, 10, (uint64_t)INT64_MAX, loose, &a) ||
	    (neg && a == 0 && !loose))
		return 0;
	*v = neg ? -(int64_t)a : (int64_t)a;
	return 1;
}

int vmb_num_s(const char *s, size_t n, int64_t *v)
{
	return num_s(s, n, 0, v);
}

int vmb_num_s_loose(const char *s, size_t n, int64_t *v)
{
	return num_s(s, n, 1, v);
}

static int num_time(const char *s, size_t n, int loose, int64_t *sec, uint32_t *nsec)
{
	const char *dot = memchr(s, '.', n);
	int64_t a;
	uint64_t b;
	size_t i;

	if (!dot || (size_t)(s + n - dot - 1) != 9 ||
	    !num_s(s, (size_t)(dot - s), loose, &a))
		return 0;
	for (i = 1, b = 0; i <= 9; i++) {
		if (dot[i] < '0' || dot[i] > '9')
			return 0;
		b = b * 10 + (uint64_t)(dot[i] - '0');
	}
	*sec = a;
	*nsec = (uint32_t)b;
	return 1;
}

int vmb_num_time(const char *s, size_t n, int64_t *sec, uint32_t *nsec)
{
	return num_time(s, n, 0, sec, nsec);
}

int vmb_num_time_loose(const char *s, size_t n, int64_t *sec, uint32_t *nsec)
{
	return num_time(s, n, 1, sec, nsec);
}

int vmb_hex_ok(const char *s, size_t n, uint8_t *out, size_t outlen)
{
	size_t i;

	if (n != 2 * outlen)
		return 0;
	for (i = 0; i < outlen; i++) {
		int hi = hexval_lower(s[2 * i]), lo = hexval_lower(s[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return 0;
		if (out)
			out[i] = (uint8_t)(hi * 16 + lo);
	}
	return 1;
}

int vmb_relpath_ok(const char *p)
{
	const char *c = p, *slash;

	if (!strcmp(p, "."))
		return 1;
	for (;;) {
		size_t len;

		slash = strchr(c, '/');
		len = slash ? (size_t)(slash - c) : strlen(c);
		if (len == 0 || len > NAME_MAX || (len == 1 && c[0] == '.') ||
		    (len == 2 && c[0] == '.' && c[1] == '.'))
			return 0;
		if (!slash)
			return 1;
		c = slash + 1;
	}
}
