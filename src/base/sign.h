/* sign.h - Ed25519 signatures through OpenSSL's EVP interface (the top index of a
 * published store, remote/pubfmt.h). The one place that maps OpenSSL's signing
 * errors (vmb_sign_err in sign.c).
 *
 * Keys are PEM files as OpenSSL writes them:
 *   private: `openssl genpkey -algorithm ed25519 -out key.pem` ("PRIVATE KEY", PKCS#8)
 *   public:  `openssl pkey -in key.pem -pubout -out pub.pem` ("PUBLIC KEY", SPKI)
 * A public key is used as its 32 raw bytes (what a verifier needs); loading one from
 * a private key file derives it.
 *
 * A struct vmb_sign_key is owned by whoever loaded or generated it and freed with
 * vmb_sign_key_free; it is immutable after loading, so several threads may sign with
 * it at once.
 */
#ifndef VMB_SIGN_H
#define VMB_SIGN_H

#include <stddef.h>
#include <stdint.h>
#include "base/err.h"

#define VMB_ED25519_PUB_LEN 32
#define VMB_ED25519_SIG_LEN 64

struct vmb_sign_key;   /* opaque: an Ed25519 private key */

/* Load the private key in the PEM file path. -ENOENT/-EACCES when it cannot be read,
 * -EINVAL when it is not an Ed25519 private key (message names the file). */
int vmb_sign_key_load(const char *path, struct vmb_sign_key **out, struct vmb_err *err);
/* A new random key (tests, key generation). */
int vmb_sign_key_generate(struct vmb_sign_key **out, struct vmb_err *err);
/* Write the key as PEM to path (mode 0600, refusing to replace a file): the private
 * key, or with public_only its public key. */
int vmb_sign_key_save(const struct vmb_sign_key *k, const char *path, int public_only,
		      struct vmb_err *err);
void vmb_sign_key_free(struct vmb_sign_key *k);   /* NULL-safe */
/* The key's public half, raw. */
void vmb_sign_key_public(const struct vmb_sign_key *k, uint8_t pub[VMB_ED25519_PUB_LEN]);

/* Load a public key from the PEM file path: a "PUBLIC KEY" or a private key (whose
 * public half is taken). Errors as vmb_sign_key_load. */
int vmb_sign_pub_load(const char *path, uint8_t pub[VMB_ED25519_PUB_LEN],
		      struct vmb_err *err);

/* Sign msg. 0 or -errno (-EIO with OpenSSL's reason). */
int vmb_sign(const struct vmb_sign_key *k, const void *msg, size_t len,
	     uint8_t sig[VMB_ED25519_SIG_LEN], struct vmb_err *err);
/* Verify sig over msg with the raw public key: 0 when valid, -EBADMSG ("signature
 * does not match") when not, -EINVAL for a public key that is not a point, -EIO
 * when OpenSSL fails. */
int vmb_sign_verify(const uint8_t pub[VMB_ED25519_PUB_LEN], const void *msg, size_t len,
		    const uint8_t sig[VMB_ED25519_SIG_LEN], struct vmb_err *err);

#endif
