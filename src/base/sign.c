/* sign.c - Ed25519 through OpenSSL's EVP interface (see sign.h). */
#include "config.h"
#include "base/sign.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

struct vmb_sign_key {
	EVP_PKEY *pkey;
	uint8_t pub[VMB_ED25519_PUB_LEN];
};

/* The one place that turns OpenSSL's error queue into a vmb_err (as digest.c does
 * for digests): the oldest queued error goes into the message, the rest of the
 * queue is dropped. Returns -code. */
static int vmb_sign_err(struct vmb_err *err, int code, const char *what)
{
	char buf[256];
	unsigned long e = ERR_get_error();

	ERR_clear_error();
	if (!e)
		return vmb_err_set(err, code, "%s", what);
	ERR_error_string_n(e, buf, sizeof(buf));
	return vmb_err_set(err, code, "%s: %s", what, buf);
}

/* Read a PEM file whole (keys are small: at most 64 KiB). */
static int read_pem(const char *path, char **out, size_t *len, struct vmb_err *err)
{
	char *buf = NULL;
	size_t n = 0;
	ssize_t r;
	int fd, rc = 0;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return vmb_err_sys(err, errno, "cannot open key file '%s'", path);
	buf = malloc(65536 + 1);
	if (!buf) {
		rc = vmb_err_set(err, ENOMEM, "out of memory");
		goto out;
	}
	for (;;) {
		r = read(fd, buf + n, 65536 + 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = vmb_err_sys(err, errno, "cannot read key file '%s'", path);
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > 65536) {
			rc = vmb_err_set(err, EINVAL, "key file '%s' is larger than 64 KiB: "
					 "not a PEM key", path);
			goto out;
		}
	}
	*out = buf;
	*len = n;
	buf = NULL;
out:
	free(buf);
	close(fd);
	return rc;
}

static int raw_pub(EVP_PKEY *pkey, uint8_t pub[VMB_ED25519_PUB_LEN], const char *path,
		   struct vmb_err *err)
{
	size_t n = VMB_ED25519_PUB_LEN;

	if (!EVP_PKEY_is_a(pkey, "ED25519")) {
		ERR_clear_error();
		return vmb_err_set(err, EINVAL, "key file '%s' does not hold an Ed25519 key "
				   "(it holds %s)", path, EVP_PKEY_get0_type_name(pkey) ?
				   EVP_PKEY_get0_type_name(pkey) : "an unknown key type");
	}
	if (EVP_PKEY_get_raw_public_key(pkey, pub, &n) != 1 || n != VMB_ED25519_PUB_LEN)
		return vmb_sign_err(err, EINVAL, "cannot take the public key");
	return 0;
}

/* Parse a private key (want_private) or any key from PEM text. */
static int parse_pem(const char *path, int want_private, EVP_PKEY **out,
		     struct vmb_err *err)
{
	char *pem = NULL;
	size_t len = 0;
	BIO *bio = NULL;
	EVP_PKEY *pkey = NULL;
	int rc;

	*out = NULL;
	rc = read_pem(path, &pem, &len, err);
	if (rc)
		return rc;
	bio = BIO_new_mem_buf(pem, (int)len);
	if (!bio) {
		rc = vmb_sign_err(err, ENOMEM, "out of memory");
		goto out;
	}
	pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	if (!pkey && !want_private) {
		ERR_clear_error();
		BIO_free(bio);
		bio = BIO_new_mem_buf(pem, (int)len);
		if (!bio) {
			rc = vmb_sign_err(err, ENOMEM, "out of memory");
			goto out;
		}
		pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	}
	if (!pkey) {
		char what[512];
		snprintf(what, sizeof(what), "key file '%s' holds no PEM %s key", path,
			 want_private ? "private" : "public or private");
		rc = vmb_sign_err(err, EINVAL, what);
		goto out;
	}
	*out = pkey;
out:
	BIO_free(bio);
	if (pem)
		memset(pem, 0, len);
	free(pem);
	return rc;
}

int vmb_sign_key_load(const char *path, struct vmb_sign_key **out, struct vmb_err *err)
{
	struct vmb_sign_key *k;
	int rc;

	*out = NULL;
	k = calloc(1, sizeof(*k));
	if (!k)
		return vmb_err_set(err, ENOMEM, "out of memory");
	rc = parse_pem(path, 1, &k->pkey, err);
	if (rc == 0)
		rc = raw_pub(k->pkey, k->pub, path, err);
	if (rc)
		vmb_sign_key_free(k);
	else
		*out = k;
	return rc;
}

int vmb_sign_key_generate(struct vmb_sign_key **out, struct vmb_err *err)
{
	struct vmb_sign_key *k;
	int rc = 0;

	*out = NULL;
	k = calloc(1, sizeof(*k));
	if (!k)
		return vmb_err_set(err, ENOMEM, "out of memory");
	k->pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (!k->pkey)
		rc = vmb_sign_err(err, EIO, "cannot generate an Ed25519 key");
	else
		rc = raw_pub(k->pkey, k->pub, "(generated)", err);
	if (rc)
		vmb_sign_key_free(k);
	else
		*out = k;
	return rc;
}

int vmb_sign_key_save(const struct vmb_sign_key *k, const char *path, int public_only,
		      struct vmb_err *err)
{
	BIO *bio = NULL;
	FILE *f = NULL;
	int fd, rc = 0, ok;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, public_only ? 0644 : 0600);
	if (fd < 0)
		return vmb_err_sys(err, errno, "cannot create key file '%s'", path);
	f = fdopen(fd, "w");
	if (!f) {
		rc = vmb_err_sys(err, errno, "cannot create key file '%s'", path);
		close(fd);
		goto out;
	}
	bio = BIO_new_fp(f, BIO_NOCLOSE);
	if (!bio) {
		rc = vmb_sign_err(err, ENOMEM, "out of memory");
		goto out;
	}
	ok = public_only ? PEM_write_bio_PUBKEY(bio, k->pkey) :
		PEM_write_bio_PrivateKey(bio, k->pkey, NULL, NULL, 0, NULL, NULL);
	if (ok != 1 || BIO_flush(bio) != 1) {
		rc = vmb_sign_err(err, EIO, "cannot write the key");
		goto out;
	}
out:
	BIO_free(bio);
	if (f && fclose(f) != 0 && !rc)
		rc = vmb_err_sys(err, errno, "cannot write key file '%s'", path);
	if (rc)
		unlink(path);
	return rc;
}

void vmb_sign_key_free(struct vmb_sign_key *k)
{
	if (!k)
		return;
	EVP_PKEY_free(k->pkey);
	free(k);
}

void vmb_sign_key_public(const struct vmb_sign_key *k, uint8_t pub[VMB_ED25519_PUB_LEN])
{
	memcpy(pub, k->pub, VMB_ED25519_PUB_LEN);
}

int vmb_sign_pub_load(const char *path, uint8_t pub[VMB_ED25519_PUB_LEN],
		      struct vmb_err *err)
{
	EVP_PKEY *pkey = NULL;
	int rc = parse_pem(path, 0, &pkey, err);

	if (rc == 0)
		rc = raw_pub(pkey, pub, path, err);
	EVP_PKEY_free(pkey);
	return rc;
}

int vmb_sign(const struct vmb_sign_key *k, const void *msg, size_t len,
	     uint8_t sig[VMB_ED25519_SIG_LEN], struct vmb_err *err)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	size_t n = VMB_ED25519_SIG_LEN;
	int rc = 0;

	if (!ctx)
		return vmb_sign_err(err, ENOMEM, "Ed25519: out of memory");
	if (EVP_DigestSignInit(ctx, NULL, NULL, NULL, k->pkey) != 1 ||
	    EVP_DigestSign(ctx, sig, &n, msg, len) != 1)
		rc = vmb_sign_err(err, EIO, "Ed25519: cannot sign");
	else if (n != VMB_ED25519_SIG_LEN)
		rc = vmb_err_set(err, EIO, "Ed25519: signature has %zu bytes, expected %d",
				 n, VMB_ED25519_SIG_LEN);
	EVP_MD_CTX_free(ctx);
	return rc;
}

int vmb_sign_verify(const uint8_t pub[VMB_ED25519_PUB_LEN], const void *msg, size_t len,
		    const uint8_t sig[VMB_ED25519_SIG_LEN], struct vmb_err *err)
{
	EVP_PKEY *pkey;
	EVP_MD_CTX *ctx = NULL;
	int rc = 0, v;

	pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, VMB_ED25519_PUB_LEN);
	if (!pkey)
		return vmb_sign_err(err, EINVAL, "Ed25519: bad public key");
	ctx = EVP_MD_CTX_new();
	if (!ctx) {
		rc = vmb_sign_err(err, ENOMEM, "Ed25519: out of memory");
		goto out;
	}
	if (EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pkey) != 1) {
		rc = vmb_sign_err(err, EIO, "Ed25519: cannot verify");
		goto out;
	}
	v = EVP_DigestVerify(ctx, sig, VMB_ED25519_SIG_LEN, msg, len);
	if (v == 0) {
		ERR_clear_error();
		rc = vmb_err_set(err, EBADMSG, "Ed25519 signature does not match the key");
	} else if (v != 1) {
		/* An invalid signature encoding is reported as an error, not as 0. */
		ERR_clear_error();
		rc = vmb_err_set(err, EBADMSG, "Ed25519 signature does not match the key");
	}
out:
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(pkey);
	return rc;
}
