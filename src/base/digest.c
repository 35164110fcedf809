/* digest.c - SHA-256 through OpenSSL's EVP interface (see digest.h).
 *
 * A context can be reused: after vmb_sha256_final it starts a new digest with the
 * next vmb_sha256_update or vmb_sha256_final. The re-initialisation is deferred to
 * that call so that its failure is reported where it happens.
 */
#include "config.h"
#include "base/digest.h"

#include <errno.h>
#include <stdlib.h>

#include <openssl/err.h>
#include <openssl/evp.h>

struct vmb_sha256 {
	EVP_MD *md;        /* fetched once per context: no implicit fetch per init */
	EVP_MD_CTX *ctx;
	int need_init;     /* a digest was finalised; re-init before the next use */
};

/* The one place that turns OpenSSL's error queue into a vmb_err: the oldest queued
 * error (the root cause) goes into the message, the rest of the queue is dropped so
 * that it cannot be blamed on a later, unrelated call. Always -EIO. */
static int vmb_digest_err(struct vmb_err *err, const char *what)
{
	char buf[256];
	unsigned long e = ERR_get_error();

	ERR_clear_error();
	if (!e)
		return vmb_err_set(err, EIO, "SHA-256: %s failed", what);
	ERR_error_string_n(e, buf, sizeof(buf));
	return vmb_err_set(err, EIO, "SHA-256: %s failed: %s", what, buf);
}

static int ensure_init(struct vmb_sha256 *c, struct vmb_err *err)
{
	if (!c->need_init)
		return 0;
	if (EVP_DigestInit_ex2(c->ctx, c->md, NULL) != 1)
		return vmb_digest_err(err, "EVP_DigestInit_ex2");
	c->need_init = 0;
	return 0;
}

int vmb_sha256_new(struct vmb_sha256 **out, struct vmb_err *err)
{
	struct vmb_sha256 *c;
	int rc;

	*out = NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return vmb_err_set(err, ENOMEM, "SHA-256: out of memory");
	c->need_init = 1;
	c->md = EVP_MD_fetch(NULL, "SHA256", NULL);
	if (!c->md) {
		rc = vmb_digest_err(err, "EVP_MD_fetch(SHA256)");
		goto out;
	}
	c->ctx = EVP_MD_CTX_new();
	if (!c->ctx) {
		ERR_clear_error();
		rc = vmb_err_set(err, ENOMEM, "SHA-256: out of memory");
		goto out;
	}
	rc = ensure_init(c, err);
out:
	if (rc)
		vmb_sha256_free(c);
	else
		*out = c;
	return rc;
}

int vmb_sha256_update(struct vmb_sha256 *c, const void *buf, size_t len,
		      struct vmb_err *err)
{
	int rc = ensure_init(c, err);

	if (rc)
		return rc;
	if (len && EVP_DigestUpdate(c->ctx, buf, len) != 1)
		return vmb_digest_err(err, "EVP_DigestUpdate");
	return 0;
}

int vmb_sha256_final(struct vmb_sha256 *c, uint8_t out[VMB_SHA256_LEN],
		     struct vmb_err *err)
{
	unsigned int n = 0;
	int rc = ensure_init(c, err);

	if (rc)
		return rc;
	c->need_init = 1;
	if (EVP_DigestFinal_ex(c->ctx, out, &n) != 1)
		return vmb_digest_err(err, "EVP_DigestFinal_ex");
	if (n != VMB_SHA256_LEN)
		return vmb_err_set(err, EIO, "SHA-256: digest has %u bytes, expected %d",
				   n, VMB_SHA256_LEN);
	return 0;
}

void vmb_sha256_free(struct vmb_sha256 *c)
{
	if (!c)
		return;
	EVP_MD_CTX_free(c->ctx);
	EVP_MD_free(c->md);
	free(c);
}

int vmb_sha256(const void *buf, size_t len, uint8_t out[VMB_SHA256_LEN],
	       struct vmb_err *err)
{
	struct vmb_sha256 *c;
	int rc;

	rc = vmb_sha256_new(&c, err);
	if (rc)
		return rc;
	rc = vmb_sha256_update(c, buf, len, err);
	if (rc)
		goto out;
	rc = vmb_sha256_final(c, out, err);
out:
	vmb_sha256_free(c);
	return rc;
}

void vmb_sha256_hex(const uint8_t d[VMB_SHA256_LEN], char hex[VMB_SHA256_HEX])
{
	static const char digits[] = "0123456789abcdef";
	int i;

	for (i = 0; i < VMB_SHA256_LEN; i++) {
		hex[2 * i] = digits[d[i] >> 4];
		hex[2 * i + 1] = digits[d[i] & 0xf];
	}
	hex[2 * VMB_SHA256_LEN] = '\0';
}

int vmb_md5(const void *buf, size_t len, uint8_t out[VMB_MD5_LEN], struct vmb_err *err)
{
	unsigned int n = 0;

	if (EVP_Digest(buf, len, out, &n, EVP_md5(), NULL) != 1 || n != VMB_MD5_LEN) {
		char msg[256] = "";
		unsigned long e = ERR_get_error();

		ERR_clear_error();
		if (e)
			ERR_error_string_n(e, msg, sizeof(msg));
		return vmb_err_set(err, EIO, "MD5: EVP_Digest failed%s%s", e ? ": " : "", msg);
	}
	return 0;
}
