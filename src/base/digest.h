/* digest.h - SHA-256 through OpenSSL's EVP interface. The one place that maps
 * OpenSSL errors (vmb_digest_err). */
#ifndef VMB_DIGEST_H
#define VMB_DIGEST_H

#include <stddef.h>
#include <stdint.h>
#include "base/err.h"

#define VMB_SHA256_LEN 32
#define VMB_SHA256_HEX (2 * VMB_SHA256_LEN + 1)

struct vmb_sha256;   /* opaque streaming context */

int vmb_sha256_new(struct vmb_sha256 **out, struct vmb_err *err);
int vmb_sha256_update(struct vmb_sha256 *c, const void *buf, size_t len, struct vmb_err *err);
int vmb_sha256_final(struct vmb_sha256 *c, uint8_t out[VMB_SHA256_LEN], struct vmb_err *err);
void vmb_sha256_free(struct vmb_sha256 *c);   /* NULL-safe */

/* One-shot digest of a buffer. */
int vmb_sha256(const void *buf, size_t len, uint8_t out[VMB_SHA256_LEN], struct vmb_err *err);
/* MD5 of a buffer: only to compare with an S3 ETag (never for integrity). */
#define VMB_MD5_LEN 16
int vmb_md5(const void *buf, size_t len, uint8_t out[VMB_MD5_LEN], struct vmb_err *err);
/* Lower-case hex, NUL-terminated. */
void vmb_sha256_hex(const uint8_t d[VMB_SHA256_LEN], char hex[VMB_SHA256_HEX]);

#endif
