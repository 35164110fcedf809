/* test_pubfmt.c - the published store format (remote/pubfmt.h) and Ed25519 signing
 * (base/sign.h): round trips, lookups, and every malformed input refused with
 * -EINVAL and a message naming what is wrong. */
#include "config.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "harness.h"
#include "base/digest.h"
#include "base/sign.h"
#include "remote/pubfmt.h"

static char tmp[256];

static void dg(uint8_t d[32], int seed)
{
	int i;

	for (i = 0; i < 32; i++)
		d[i] = (uint8_t)(seed * 31 + i + 1);
}

/* Replace the first occurrence of from by to in a malloc'ed text of *len bytes. */
static char *subst(const char *buf, size_t len, const char *from, const char *to,
		   size_t *nlen)
{
	const char *at = memmem(buf, len, from, strlen(from));
	size_t fl = strlen(from), tl = strlen(to);
	char *o;

	if (!at)
		return NULL;
	o = malloc(len - fl + tl + 1);
	memcpy(o, buf, (size_t)(at - buf));
	memcpy(o + (at - buf), to, tl);
	memcpy(o + (at - buf) + tl, at + fl, len - (size_t)(at - buf) - fl);
	*nlen = len - fl + tl;
	o[*nlen] = 0;
	return o;
}

/* Recompute the "end" line of a text object after the body was edited (so that a
 * test reaches the check behind the digest). */
static char *reseal(const char *buf, size_t len, size_t *nlen)
{
	const char *e = memmem(buf, len, "\nend ", 5);
	uint8_t d[32];
	char hex[65], *o;
	size_t body;

	if (!e)
		return NULL;
	body = (size_t)(e - buf) + 1;
	vmb_sha256(buf, body, d, NULL);
	vmb_sha256_hex(d, hex);
	o = malloc(body + 70);
	memcpy(o, buf, body);
	*nlen = body + (size_t)sprintf(o + body, "end %s\n", hex);
	return o;
}

/* ---- top index ---- */

static void make_index(struct vmb_pub_index *x)
{
	uint8_t d[32];

	memset(x, 0, sizeof(*x));
	x->generation = 7;
	x->created = 1700000000;
	dg(d, 1);
	CHECK_RC(vmb_pub_index_set(x, "win 11", d, NULL), 0);
	dg(d, 2);
	CHECK_RC(vmb_pub_index_set(x, "mac14", d, NULL), 0);
	dg(d, 3);
	CHECK_RC(vmb_pub_index_set(x, "caf\xc3\xa9%", d, NULL), 0);
}

static void test_index_roundtrip(void)
{
	struct vmb_pub_index x, y;
	struct vmb_err err;
	char *buf, *buf2;
	size_t len, len2;
	uint8_t d[32];

	make_index(&x);
	REQUIRE(x.n == 3);
	CHECK(!strcmp(x.bundles[0].name, "caf\xc3\xa9%"));
	CHECK(!strcmp(x.bundles[2].name, "win 11"));
	dg(d, 9);
	CHECK_RC(vmb_pub_index_set(&x, "mac14", d, NULL), 0);   /* replace */
	CHECK_EQ(x.n, 3);
	CHECK(!memcmp(vmb_pub_index_find(&x, "mac14")->digest, d, 32));
	CHECK(vmb_pub_index_find(&x, "nope") == NULL);
	CHECK_RC(vmb_pub_index_set(&x, "..", d, &err), -EINVAL);
	CHECK_STR(err.msg, "'..'");
	CHECK_RC(vmb_pub_index_set(&x, "a/b", d, &err), -EINVAL);
	CHECK_RC(vmb_pub_index_set(&x, ".vmbundlefs", d, &err), -EINVAL);
	CHECK_RC(vmb_pub_index_encode(&x, NULL, &buf, &len, &err), 0);
	CHECK(!memcmp(buf, "vmbundlefs-published 1\ngeneration 7\ncreated 1700000000\n"
		      "bundle ", 62));
	CHECK(memmem(buf, len, " caf%C3%A9%25\n", 14) != NULL);
	CHECK(memmem(buf, len, " win%2011\n", 10) != NULL);
	CHECK_RC(vmb_pub_index_decode(buf, len, NULL, &y, &err), 0);
	CHECK_EQ(y.generation, 7);
	CHECK_EQ(y.created, 1700000000);
	CHECK_EQ(y.n, 3);
	CHECK_EQ(y.signed_, 0);
	CHECK(!memcmp(vmb_pub_index_find(&y, "mac14")->digest, d, 32));
	CHECK_RC(vmb_pub_index_encode(&y, NULL, &buf2, &len2, &err), 0);
	CHECK(len == len2 && !memcmp(buf, buf2, len));
	free(buf2);
	vmb_pub_index_free(&y);
	free(buf);
	/* An empty index. */
	vmb_pub_index_free(&x);
	CHECK_RC(vmb_pub_index_encode(&x, NULL, &buf, &len, &err), 0);
	CHECK_RC(vmb_pub_index_decode(buf, len, NULL, &y, &err), 0);
	CHECK_EQ(y.n, 0);
	free(buf);
}

/* dec(text) must fail with -EINVAL and a message holding want. */
#define BAD_INDEX(buf, len, key, want) do { \
	struct vmb_pub_index bi_; \
	struct vmb_err be_; \
	vmb_err_clear(&be_); \
	CHECK_RC(vmb_pub_index_decode((buf), (len), (key), &bi_, &be_), -EINVAL); \
	CHECK_STR(be_.msg, (want)); \
	CHECK_EQ(bi_.n, 0); \
} while (0)

static void bad_index_text(const char *body, const char *want)
{
	size_t len = strlen(body), n2;
	char *s = reseal(body, len, &n2);

	REQUIRE(s);
	BAD_INDEX(s, n2, NULL, want);
	free(s);
}

static void test_index_bad(void)
{
	struct vmb_pub_index x;
	struct vmb_err err;
	char *buf, *b2;
	size_t len, n2;
	char hex[65];
	uint8_t d[32];

	make_index(&x);
	CHECK_RC(vmb_pub_index_encode(&x, NULL, &buf, &len, &err), 0);
	vmb_pub_index_free(&x);
	BAD_INDEX(buf, 0, NULL, "truncated");
	BAD_INDEX(buf, len - 1, NULL, "truncated (no final newline)");
	BAD_INDEX(buf, 100, NULL, "truncated");
	/* cut just before the end line: no end line */
	BAD_INDEX(buf, (size_t)((char *)memmem(buf, len, "\nend ", 5) - buf) + 1, NULL,
		  "no 'end' line");
	/* a changed byte: the end digest */
	b2 = subst(buf, len, "generation 7", "generation 8", &n2);
	BAD_INDEX(b2, n2, NULL, "end digest does not match");
	free(b2);
	/* trailing bytes */
	b2 = malloc(len + 10);
	memcpy(b2, buf, len);
	memcpy(b2 + len, "x\n", 2);
	BAD_INDEX(b2, len + 2, NULL, "trailing bytes");
	memcpy(b2 + len, "end 00\n", 7);
	BAD_INDEX(b2, len + 7, NULL, "trailing bytes");
	free(b2);
	/* bad hex in the end line */
	b2 = subst(buf, len, "\nend ", "\nend X", &n2);
	BAD_INDEX(b2, n2, NULL, "bad hex");
	free(b2);
	free(buf);
	/* Body errors (resealed so that the digest matches). */
	dg(d, 1);
	vmb_sha256_hex(d, hex);
	bad_index_text("vmbundlefs-publishe 1\ngeneration 1\ncreated 0\nend 0\n",
		       "bad magic");
	bad_index_text("vmbundlefs-published 2\ngeneration 1\ncreated 0\nend 0\n",
		       "version '2' is not supported");
	bad_index_text("vmbundlefs-published 1\ngeneration x\ncreated 0\nend 0\n",
		       "line 2");
	bad_index_text("vmbundlefs-published 1\ngeneration 01\ncreated 0\nend 0\n",
		       "line 2");
	bad_index_text("vmbundlefs-published 1\ngeneration 1\ncreate 0\nend 0\n",
		       "line 3");
	bad_index_text("vmbundlefs-published 1\ngeneration 1\nend 0\n", "truncated");
	{
		char t[1024];

		snprintf(t, sizeof(t), "vmbundlefs-published 1\ngeneration 1\ncreated 0\n"
			 "bundle %s b\nbundle %s a\nend 0\n", hex, hex);
		bad_index_text(t, "line 5: bundle 'a' is not in sorted order");
		snprintf(t, sizeof(t), "vmbundlefs-published 1\ngeneration 1\ncreated 0\n"
			 "bundle %s a\nbundle %s a\nend 0\n", hex, hex);
		bad_index_text(t, "line 5: bundle 'a' is listed twice");
		snprintf(t, sizeof(t), "vmbundlefs-published 1\ngeneration 1\ncreated 0\n"
			 "bundle %s ..\nend 0\n", hex);
		bad_index_text(t, "line 4: '..' is not a usable bundle name");
		snprintf(t, sizeof(t), "vmbundlefs-published 1\ngeneration 1\ncreated 0\n"
			 "bundle %s a/b\nend 0\n", hex);
		bad_index_text(t, "contains '/'");
		snprintf(t, sizeof(t), "vmbundlefs-published 1\ngeneration 1\ncreated 0\n"
			 "bundle %.63sG a\nend 0\n", hex);
		bad_index_text(t, "line 4: bad hex");
		snprintf(t, sizeof(t), "vmbundlefs-published 1\ngeneration 1\ncreated 0\n"
			 "bundle %s a%%2x\nend 0\n", hex);
		bad_index_text(t, "bad escape");
		snprintf(t, sizeof(t), "vmbundlefs-published 1\ngeneration 1\ncreated 0\n"
			 "bundle %s a%%41\nend 0\n", hex);   /* 'A' needs no escape */
		bad_index_text(t, "bad escape");
		snprintf(t, sizeof(t), "vmbundlefs-published 1\ngeneration 1\ncreated 0\n"
			 "bundle %s  a\nend 0\n", hex);
		bad_index_text(t, "line 4");
		snprintf(t, sizeof(t), "vmbundlefs-published 1\ngeneration 1\ncreated 0\n"
			 "bundles %s a\nend 0\n", hex);
		bad_index_text(t, "line 4");
	}
}

static int have_openssl(void)
{
	return system("openssl version >/dev/null 2>&1") == 0;
}

static void test_sign(void)
{
	struct vmb_sign_key *k = NULL, *k2 = NULL, *k3 = NULL;
	struct vmb_pub_index x, y;
	struct vmb_err err;
	uint8_t pub[32], pub2[32], pub3[32], sig[64];
	char path[512], ppath[512], cmd[2048], *buf, *b2;
	size_t len, n2;

	CHECK_RC(vmb_sign_key_generate(&k, &err), 0);
	CHECK_RC(vmb_sign_key_generate(&k2, &err), 0);
	REQUIRE(k && k2);
	vmb_sign_key_public(k, pub);
	vmb_sign_key_public(k2, pub2);
	CHECK(memcmp(pub, pub2, 32));
	CHECK_RC(vmb_sign(k, "abc", 3, sig, &err), 0);
	CHECK_RC(vmb_sign_verify(pub, "abc", 3, sig, &err), 0);
	CHECK_RC(vmb_sign_verify(pub, "abd", 3, sig, &err), -EBADMSG);
	CHECK_RC(vmb_sign_verify(pub2, "abc", 3, sig, &err), -EBADMSG);
	CHECK_STR(err.msg, "does not match");

	/* A signed index: verifies with the key; without one, only its form. */
	make_index(&x);
	CHECK_RC(vmb_pub_index_encode(&x, k, &buf, &len, &err), 0);
	CHECK(memmem(buf, len, "\nsignature ed25519 ", 19) != NULL);
	CHECK_RC(vmb_pub_index_decode(buf, len, pub, &y, &err), 0);
	CHECK_EQ(y.signed_, 1);
	CHECK_EQ(y.n, 3);
	vmb_pub_index_free(&y);
	CHECK_RC(vmb_pub_index_decode(buf, len, NULL, &y, &err), 0);
	CHECK_EQ(y.signed_, 1);
	vmb_pub_index_free(&y);
	/* another key */
	BAD_INDEX(buf, len, pub2, "index: bad signature (Ed25519 signature does not match "
		  "the key): refusing it");
	/* a tampered byte after signing, end line recomputed: the signature */
	b2 = subst(buf, len, "generation 7", "generation 8", &n2);
	{
		char *e = memmem(b2, n2, "\nend ", 5), *s2, *o;
		size_t n3;

		s2 = reseal(b2, n2, &n3);   /* drops the signature line ... */
		o = malloc(n3 + 200);
		memcpy(o, s2, n3);          /* ... put it back */
		memcpy(o + n3, strstr(e, "\nsignature") + 1, 147);
		BAD_INDEX(o, n3 + 147, pub, "bad signature");
		free(o);
		free(s2);
	}
	free(b2);
	/* a flipped digit of the signature */
	b2 = malloc(len);
	memcpy(b2, buf, len);
	b2[len - 2] = b2[len - 2] == '0' ? '1' : '0';
	BAD_INDEX(b2, len, pub, "bad signature");
	b2[len - 2] = 'g';
	BAD_INDEX(b2, len, NULL, "bad hex in the signature");
	free(b2);
	b2 = subst(buf, len, "ed25519", "ed25518", &n2);
	BAD_INDEX(b2, n2, NULL, "unknown algorithm");
	free(b2);
	/* missing signature with a key */
	free(buf);
	CHECK_RC(vmb_pub_index_encode(&x, NULL, &buf, &len, &err), 0);
	BAD_INDEX(buf, len, pub, "not signed");
	free(buf);
	vmb_pub_index_free(&x);

	/* PEM files: save/load round trip, public from a private file. */
	snprintf(path, sizeof(path), "%s/k.pem", tmp);
	snprintf(ppath, sizeof(ppath), "%s/k.pub", tmp);
	CHECK_RC(vmb_sign_key_save(k, path, 0, &err), 0);
	CHECK_RC(vmb_sign_key_save(k, path, 0, &err), -EEXIST);
	CHECK_RC(vmb_sign_key_save(k, ppath, 1, &err), 0);
	CHECK_RC(vmb_sign_key_load(path, &k3, &err), 0);
	vmb_sign_key_public(k3, pub3);
	CHECK(!memcmp(pub, pub3, 32));
	vmb_sign_key_free(k3);
	k3 = NULL;
	memset(pub3, 0, 32);
	CHECK_RC(vmb_sign_pub_load(ppath, pub3, &err), 0);
	CHECK(!memcmp(pub, pub3, 32));
	memset(pub3, 0, 32);
	CHECK_RC(vmb_sign_pub_load(path, pub3, &err), 0);
	CHECK(!memcmp(pub, pub3, 32));
	CHECK_RC(vmb_sign_key_load(ppath, &k3, &err), -EINVAL);   /* public only */
	CHECK_STR(err.msg, "k.pub");
	snprintf(cmd, sizeof(cmd), "%s/none.pem", tmp);
	CHECK_RC(vmb_sign_key_load(cmd, &k3, &err), -ENOENT);
	CHECK_STR(err.msg, "none.pem");
	snprintf(cmd, sizeof(cmd), "echo garbage > %s/g.pem", tmp);
	CHECK(system(cmd) == 0);
	snprintf(cmd, sizeof(cmd), "%s/g.pem", tmp);
	CHECK_RC(vmb_sign_key_load(cmd, &k3, &err), -EINVAL);
	CHECK_RC(vmb_sign_pub_load(cmd, pub3, &err), -EINVAL);
	CHECK_STR(err.msg, "holds no PEM");

	/* Keys as the openssl command writes them. */
	if (have_openssl()) {
		snprintf(cmd, sizeof(cmd), "openssl genpkey -algorithm ed25519 -out %s/o.pem "
			 "2>/dev/null && openssl pkey -in %s/o.pem -pubout -out %s/o.pub "
			 "2>/dev/null && openssl genpkey -algorithm x25519 -out %s/x.pem "
			 "2>/dev/null", tmp, tmp, tmp, tmp);
		CHECK(system(cmd) == 0);
		snprintf(path, sizeof(path), "%s/o.pem", tmp);
		snprintf(ppath, sizeof(ppath), "%s/o.pub", tmp);
		CHECK_RC(vmb_sign_key_load(path, &k3, &err), 0);
		CHECK_RC(vmb_sign_pub_load(ppath, pub3, &err), 0);
		if (k3) {
			CHECK_RC(vmb_sign(k3, "m", 1, sig, &err), 0);
			CHECK_RC(vmb_sign_verify(pub3, "m", 1, sig, &err), 0);
		}
		vmb_sign_key_free(k3);
		k3 = NULL;
		snprintf(path, sizeof(path), "%s/x.pem", tmp);
		CHECK_RC(vmb_sign_key_load(path, &k3, &err), -EINVAL);
		CHECK_STR(err.msg, "not hold an Ed25519 key");
	}
	vmb_sign_key_free(k);
	vmb_sign_key_free(k2);
}

/* ---- bundle manifest ---- */

static void make_bundle(struct vmb_pub_bundle *b)
{
	struct vmb_pub_ent e;

	memset(b, 0, sizeof(*b));
	b->name = strdup("mac 14");
	memset(&e, 0, sizeof(e));
	e.kind = 'd';
	e.mode = 0755;
	e.mtime_sec = 1700000000;
	e.mtime_nsec = 5;
	e.path = ".";
	CHECK_RC(vmb_pub_bundle_add(b, &e), 0);
	CHECK_RC(vmb_pub_bundle_add_xattr(b, "user.com.apple.x", "a\0b %", 5), 0);
	e.path = "sub dir";
	e.mode = 02750;
	e.mtime_sec = -5;
	e.mtime_nsec = 999999999;
	CHECK_RC(vmb_pub_bundle_add(b, &e), 0);
	e.kind = 'f';
	e.mode = 0600;
	e.size = 1000;
	dg(e.digest, 4);
	e.path = "config.plist";
	CHECK_RC(vmb_pub_bundle_add(b, &e), 0);
	CHECK_RC(vmb_pub_bundle_add_xattr(b, "user.empty", "", 0), 0);
	CHECK_RC(vmb_pub_bundle_add_xattr(b, "user.dash", "-", 1), 0);
	e.kind = 'i';
	e.size = 17179869184ull;
	dg(e.digest, 5);
	e.path = "sub dir/disk\xc3\xa9.img";
	CHECK_RC(vmb_pub_bundle_add(b, &e), 0);
	e.kind = 'l';
	e.mode = 0;
	e.path = "link";
	e.target = "../../etc/passwd";
	CHECK_RC(vmb_pub_bundle_add(b, &e), 0);
}

static void test_bundle_roundtrip(void)
{
	struct vmb_pub_bundle b, c;
	struct vmb_err err;
	char *buf, *buf2;
	size_t len, len2;

	make_bundle(&b);
	CHECK_RC(vmb_pub_bundle_encode(&b, &buf, &len, &err), 0);
	CHECK(!memcmp(buf, "vmbundlefs-bundle 1\nname mac%2014\nd 0755 1700000000.000000005 .\n"
		      "x user.com.apple.x a%00b%20%25\nd 2750 -5.999999999 sub%20dir\n", 118));
	CHECK(memmem(buf, len, "x user.empty -\nx user.dash %2D\n", 31) != NULL);
	CHECK(memmem(buf, len, "\nl -5.999999999 link ../../etc/passwd\n", 37) != NULL);
	CHECK_RC(vmb_pub_bundle_decode(buf, len, &c, &err), 0);
	REQUIRE(c.n == 5);
	CHECK(!strcmp(c.name, "mac 14"));
	CHECK_EQ(c.ents[0].nxattrs, 1);
	CHECK_EQ(c.ents[0].xattrs[0].len, 5);
	CHECK(!memcmp(c.ents[0].xattrs[0].value, "a\0b %", 5));
	CHECK_EQ(c.ents[1].mode, 02750);
	CHECK_EQ(c.ents[1].mtime_sec, -5);
	CHECK_EQ(c.ents[2].kind, 'f');
	CHECK_EQ(c.ents[2].nxattrs, 2);
	CHECK_EQ(c.ents[2].xattrs[0].len, 0);
	CHECK_EQ(c.ents[2].xattrs[1].len, 1);
	CHECK(!memcmp(c.ents[2].digest, b.ents[2].digest, 32));
	CHECK_EQ(c.ents[3].kind, 'i');
	CHECK_EQ(c.ents[3].size, 17179869184ull);
	CHECK(!strcmp(c.ents[3].path, "sub dir/disk\xc3\xa9.img"));
	CHECK(!strcmp(c.ents[4].target, "../../etc/passwd"));
	CHECK_RC(vmb_pub_bundle_encode(&c, &buf2, &len2, &err), 0);
	CHECK(len == len2 && !memcmp(buf, buf2, len));
	free(buf);
	free(buf2);
	vmb_pub_bundle_free(&c);
	/* Encode refuses what decode would refuse. */
	b.ents[4].path[0] = '\0';
	CHECK_RC(vmb_pub_bundle_encode(&b, &buf, &len, &err), -EINVAL);
	CHECK_STR(err.msg, "bad path");
	vmb_pub_bundle_free(&b);
}

#define BAD_BUNDLE(buf, len, want) do { \
	struct vmb_pub_bundle bb_; \
	struct vmb_err be_; \
	vmb_err_clear(&be_); \
	CHECK_RC(vmb_pub_bundle_decode((buf), (len), &bb_, &be_), -EINVAL); \
	CHECK_STR(be_.msg, (want)); \
	CHECK_EQ(bb_.n, 0); \
} while (0)

static void bad_bundle_text(const char *body, const char *want)
{
	char t[4096], hex[65], *s;
	uint8_t d[32];
	size_t n2;
	const char *p;
	char *w = t;

	/* "@" in body stands for a digest */
	dg(d, 6);
	vmb_sha256_hex(d, hex);
	for (p = body; *p; p++) {
		if (*p == '@') {
			memcpy(w, hex, 64);
			w += 64;
		} else {
			*w++ = *p;
		}
	}
	*w = 0;
	s = reseal(t, strlen(t), &n2);
	REQUIRE(s);
	BAD_BUNDLE(s, n2, want);
	free(s);
}

static void test_bundle_bad(void)
{
	struct vmb_pub_bundle b;
	struct vmb_err err;
	char *buf, *b2;
	size_t len, n2;

	make_bundle(&b);
	CHECK_RC(vmb_pub_bundle_encode(&b, &buf, &len, &err), 0);
	vmb_pub_bundle_free(&b);
	BAD_BUNDLE(buf, len - 1, "truncated");
	BAD_BUNDLE(buf, 50, "truncated");
	b2 = subst(buf, len, "sub%20dir\n", "sub%20dlr\n", &n2);
	BAD_BUNDLE(b2, n2, "end digest does not match");
	free(b2);
	b2 = malloc(len + 8);
	memcpy(b2, buf, len);
	memcpy(b2 + len, "d x\n", 4);
	BAD_BUNDLE(b2, len + 4, "trailing bytes");
	free(b2);
	free(buf);

#define H "vmbundlefs-bundle 1\nname vm\n"
	bad_bundle_text("vmbundlefs-bundl 1\nname vm\nd 0755 0.000000000 .\nend 0\n",
			"bad magic");
	bad_bundle_text("vmbundlefs-bundle 9\nname vm\nd 0755 0.000000000 .\nend 0\n",
			"version '9'");
	bad_bundle_text("vmbundlefs-bundle 1\nname ..\nd 0755 0.000000000 .\nend 0\n",
			"line 2");
	bad_bundle_text("vmbundlefs-bundle 1\nnam vm\nd 0755 0.000000000 .\nend 0\n",
			"line 2");
	bad_bundle_text(H "end 0\n", "first record is not the bundle's directory");
	bad_bundle_text(H "f 0644 0.000000000 5 @ .\nend 0\n", "'.' is not a directory");
	bad_bundle_text(H "d 0755 0.000000000 .\nf 0644 0.000000000 5 @ ../x\nend 0\n",
			"bad path '../x'");
	bad_bundle_text(H "d 0755 0.000000000 .\nf 0644 0.000000000 5 @ a/../x\nend 0\n",
			"bad path");
	bad_bundle_text(H "d 0755 0.000000000 .\nf 0644 0.000000000 5 @ a//x\nend 0\n",
			"bad path");
	bad_bundle_text(H "d 0755 0.000000000 .\nf 0644 0.000000000 5 @ a\n"
			"i 0644 0.000000000 5 @ a\nend 0\n", "'a' is listed twice");
	bad_bundle_text(H "d 0755 0.000000000 .\nf 0644 0.000000000 5 @ d/a\nend 0\n",
			"the directory of 'd/a' is not listed before it");
	bad_bundle_text(H "d 0755 0.000000000 .\nf 0644 0.000000000 5 @ d\n"
			"f 0644 0.000000000 5 @ d/a\nend 0\n", "not listed before it");
	bad_bundle_text(H "d 0755 0.000000000 .\nf 0644 0.000000000 5 0123 a\nend 0\n",
			"line 4: bad hex");
	bad_bundle_text(H "d 0755 0.000000000 .\nf 0644 0.000000000 1048576 @ a\nend 0\n",
			"small file 'a' of 1048576 bytes");
	bad_bundle_text(H "d 755 0.000000000 .\nend 0\n", "bad mode");
	bad_bundle_text(H "d 0855 0.000000000 .\nend 0\n", "bad mode");
	bad_bundle_text(H "d 0755 0.00000000 .\nend 0\n", "bad time");
	bad_bundle_text(H "d 0755 0.000000000 .\nf 0644 0.000000000 05 @ a\nend 0\n",
			"bad size");
	bad_bundle_text(H "d 0755 0.000000000 .\nq 0644 0.000000000 5 @ a\nend 0\n",
			"unknown record 'q'");
	bad_bundle_text(H "d 0755 0.000000000 .\nf 0644 0.000000000 5 @\nend 0\n",
			"fields");
	bad_bundle_text(H "x user.a b\nd 0755 0.000000000 .\nend 0\n", "bad 'x' record");
	bad_bundle_text(H "d 0755 0.000000000 .\nx trusted.a b\nend 0\n",
			"bad extended attribute");
	bad_bundle_text(H "d 0755 0.000000000 .\nx user.a %zz\nend 0\n", "bad escape");
	bad_bundle_text(H "d 0755 0.000000000 .\nl 0.000000000 a\nend 0\n", "fields");
	bad_bundle_text(H "d 0755 0.000000000 .\nd 0755 0.000000000 .\nend 0\n",
			"'.' is listed twice");
#undef H
}

/* A hostile manifest naming the xattrs a mount maintains (outside report r27
 * G9): decoded without them (counted, the first named), the others kept; encode
 * refuses them. */
static void test_bundle_reserved(void)
{
	static const char text[] = "vmbundlefs-bundle 1\nname vm\nd 0755 0.000000000 .\n"
		"x user.vmbundlefs.lock pid1\nx user.a 1\n"
		"d 0755 0.000000000 d\nx user.vmbundlefs.remote forged\n"
		"x user.vmbundlefs.stats -\nx user.vmbundlefs.other kept\nend 0\n";
	struct vmb_pub_bundle b;
	struct vmb_err err;
	char *s, *buf;
	size_t n, len;

	s = reseal(text, strlen(text), &n);
	REQUIRE(s);
	vmb_err_clear(&err);
	CHECK_RC(vmb_pub_bundle_decode(s, n, &b, &err), 0);
	free(s);
	REQUIRE(b.n == 2);
	CHECK_EQ(b.xattr_skipped, 3);
	CHECK(!strcmp(b.xattr_first, "user.vmbundlefs.lock"));
	REQUIRE(b.ents[0].nxattrs == 1);
	CHECK(!strcmp(b.ents[0].xattrs[0].name, "user.a"));
	REQUIRE(b.ents[1].nxattrs == 1);
	CHECK(!strcmp(b.ents[1].xattrs[0].name, "user.vmbundlefs.other"));
	/* encode never writes one */
	CHECK_RC(vmb_pub_bundle_add_xattr(&b, "user.vmbundlefs.remote", "x", 1), 0);
	CHECK_RC(vmb_pub_bundle_encode(&b, &buf, &len, &err), -EINVAL);
	CHECK_STR(err.msg, "'user.vmbundlefs.remote' is maintained by vmbundlefs");
	vmb_pub_bundle_free(&b);
}

/* ---- image index ---- */

/* 10 MiB + 5 bytes, chunk 64 KiB: data at blocks 0-3, 20-39 and the last block. */
static void make_image(struct vmb_pub_image *m)
{
	uint64_t c;

	memset(m, 0, sizeof(*m));
	m->chunk_size = 65536;
	m->size = (10u << 20) + 5;
	m->n_chunks = 161;
	m->n_extents = 3;
	m->ext = calloc(3, sizeof(*m->ext));
	m->ext[0][0] = 0;
	m->ext[0][1] = 4;
	m->ext[1][0] = 20;
	m->ext[1][1] = 20;
	m->ext[2][0] = 2560;
	m->ext[2][1] = 1;
	m->data_blocks = 25;
	m->chunks = calloc(m->n_chunks, 32);
	/* chunk 0: blocks 0-15 (extent 0), chunk 1: 16-31, chunk 2: 32-47, chunk 160:
	 * block 2560. */
	for (c = 0; c < m->n_chunks; c++)
		if (c <= 2 || c == 160)
			dg(m->chunks[c], (int)c + 10);
}

static void test_image_roundtrip(void)
{
	struct vmb_pub_image m, n;
	struct vmb_err err;
	void *buf, *buf2;
	size_t len, len2;
	uint64_t run;

	make_image(&m);
	CHECK_RC(vmb_pub_image_validate(&m, &err), 0);
	CHECK_RC(vmb_pub_image_encode(&m, &buf, &len, &err), 0);
	CHECK_EQ(len, 64 + 3 * 16 + 161 * 32);
	CHECK(!memcmp(buf, "VMBRIDX1\1\0\0\0\0\0\1\0", 16));
	CHECK_RC(vmb_pub_image_decode(buf, len, &n, &err), 0);
	CHECK_EQ(n.size, m.size);
	CHECK_EQ(n.n_chunks, 161);
	CHECK_EQ(n.data_blocks, 25);
	CHECK(!memcmp(n.chunks, m.chunks, 161 * 32));
	CHECK_RC(vmb_pub_image_encode(&n, &buf2, &len2, &err), 0);
	CHECK(len == len2 && !memcmp(buf, buf2, len));
	free(buf2);
	/* lookups */
	CHECK_EQ(vmb_pub_image_lookup(&n, 0, &run), VMB_DATA);
	CHECK_EQ(run, 4);
	CHECK_EQ(vmb_pub_image_lookup(&n, 3, &run), VMB_DATA);
	CHECK_EQ(run, 1);
	CHECK_EQ(vmb_pub_image_lookup(&n, 4, &run), VMB_ZERO);
	CHECK_EQ(run, 16);
	CHECK_EQ(vmb_pub_image_lookup(&n, 25, &run), VMB_DATA);
	CHECK_EQ(run, 15);
	CHECK_EQ(vmb_pub_image_lookup(&n, 40, &run), VMB_ZERO);
	CHECK_EQ(run, 2520);
	CHECK_EQ(vmb_pub_image_lookup(&n, 2560, &run), VMB_DATA);
	CHECK_EQ(run, 1);
	CHECK_EQ(vmb_pub_image_lookup(&n, 2561, &run), VMB_ZERO);
	CHECK_EQ(run, VMB_BLOCK_MAX - 2561);
	CHECK_EQ(vmb_pub_image_lookup(&n, 2561, NULL), VMB_ZERO);
	CHECK_EQ(vmb_pub_chunk_is_zero(&n, 0), 0);
	CHECK_EQ(vmb_pub_chunk_is_zero(&n, 3), 1);
	CHECK_EQ(vmb_pub_chunk_is_zero(&n, 160), 0);
	CHECK_EQ(vmb_pub_chunk_len(&n, 0), 65536);
	CHECK_EQ(vmb_pub_chunk_len(&n, 160), 5);
	CHECK_EQ(vmb_pub_chunk_len(&n, 161), 0);
	vmb_pub_image_free(&n);
	free(buf);
	vmb_pub_image_free(&m);
	/* An empty image: no extents, no chunks. */
	memset(&m, 0, sizeof(m));
	m.chunk_size = VMB_PIDX_CHUNK_DEFAULT;
	CHECK_RC(vmb_pub_image_encode(&m, &buf, &len, &err), 0);
	CHECK_EQ(len, 64);
	CHECK_RC(vmb_pub_image_decode(buf, len, &n, &err), 0);
	CHECK_EQ(vmb_pub_image_lookup(&n, 0, &run), VMB_ZERO);
	vmb_pub_image_free(&n);
	free(buf);
	/* An object path. */
	{
		char p[VMB_PUB_OBJPATH_LEN];
		uint8_t d[32];

		memset(d, 0xab, 32);
		vmb_pub_object_path(d, p);
		CHECK(!strncmp(p, "objects/ab/abab", 15));
		CHECK(!strcmp(p + 73, "ab"));
		CHECK_EQ(strlen(p), 75);
	}
}

#define BAD_IMAGE(buf, len, want) do { \
	struct vmb_pub_image bm_; \
	struct vmb_err be_; \
	vmb_err_clear(&be_); \
	CHECK_RC(vmb_pub_image_decode((buf), (len), &bm_, &be_), -EINVAL); \
	CHECK_STR(be_.msg, (want)); \
	CHECK(bm_.ext == NULL && bm_.chunks == NULL); \
} while (0)

static void put64(unsigned char *p, uint64_t v)
{
	int i;

	for (i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static void test_image_bad(void)
{
	struct vmb_pub_image m;
	struct vmb_err err;
	unsigned char *buf, *b;
	size_t len;
	void *vb;

	make_image(&m);
	CHECK_RC(vmb_pub_image_encode(&m, &vb, &len, &err), 0);
	buf = vb;
	b = malloc(len + 64);
#define FRESH() memcpy(b, buf, len)
	FRESH();
	BAD_IMAGE(b, 0, "truncated");
	BAD_IMAGE(b, 63, "truncated");
	BAD_IMAGE(b, len - 1, "truncated");
	BAD_IMAGE(b, 64 + 47, "truncated");
	memset(b + len, 0, 64);
	BAD_IMAGE(b, len + 1, "1 trailing bytes");
	BAD_IMAGE(b, len + 32, "32 trailing bytes");
	b[0] = 'X';
	BAD_IMAGE(b, len, "bad magic");
	FRESH();
	b[8] = 2;
	BAD_IMAGE(b, len, "version 2 is not supported");
	FRESH();
	b[12] = 1;   /* chunk size 65537 */
	BAD_IMAGE(b, len, "chunk size 65537 is not a power of two");
	FRESH();
	put64(b + 12 - 0, 0);   /* chunk size 0 and size 0 ... */
	BAD_IMAGE(b, len, "chunk size");
	FRESH();
	b[50] = 1;
	BAD_IMAGE(b, len, "reserved byte 50");
	FRESH();
	put64(b + 32, 160);   /* n_chunks */
	BAD_IMAGE(b, len - 32, "n_chunks is 160, but a size of 10485765 bytes makes 161");
	FRESH();
	put64(b + 40, 24);
	BAD_IMAGE(b, len, "data_blocks is 24, but the extents hold 25");
	FRESH();
	put64(b + 64 + 16, 2);   /* extent 1 at block 2: overlaps extent 0 */
	BAD_IMAGE(b, len, "extent 1 overlaps extent 0");
	FRESH();
	put64(b + 64 + 16, 4);   /* adjacent */
	BAD_IMAGE(b, len, "extent 1 is adjacent to extent 0");
	FRESH();
	put64(b + 64, 30);       /* extent 0 at 30 after extent 1 at 20: unsorted */
	put64(b + 64 + 8, 1);
	put64(b + 40, 22);
	BAD_IMAGE(b, len, "extent 1 is not sorted");
	FRESH();
	put64(b + 64 + 32, 2561);   /* extent 2 past the size */
	BAD_IMAGE(b, len, "extent 2 (blocks 2561+1) ends past the size");
	FRESH();
	put64(b + 64 + 32 + 8, 0);
	put64(b + 40, 24);
	BAD_IMAGE(b, len, "extent 2 is empty");
	FRESH();
	memset(b + 64 + 48 + 32 * 1, 0, 32);
	BAD_IMAGE(b, len, "chunk 1 holds data but has no digest");
	FRESH();
	b[64 + 48 + 32 * 5] = 1;
	BAD_IMAGE(b, len, "chunk 5 holds no data but has a digest");
	FRESH();
	put64(b + 24, UINT64_MAX / 8);   /* n_extents absurd: no overflow */
	BAD_IMAGE(b, len, "do not fit");
	FRESH();
	put64(b + 32, UINT64_MAX / 16);
	BAD_IMAGE(b, len, "do not fit");
	FRESH();
	put64(b + 16, UINT64_MAX);
	BAD_IMAGE(b, len, "too large");
#undef FRESH
	/* encode validates too */
	m.data_blocks = 3;
	CHECK_RC(vmb_pub_image_encode(&m, &vb, &len, &err), -EINVAL);
	CHECK_STR(err.msg, "cannot write an image index: image index: data_blocks");
	free(b);
	free(buf);
	vmb_pub_image_free(&m);
}

int main(void)
{
	if (harness_tmpdir(tmp, sizeof(tmp), "pubfmt"))
		return 99;
	RUN(test_index_roundtrip);
	RUN(test_index_bad);
	RUN(test_sign);
	RUN(test_bundle_roundtrip);
	RUN(test_bundle_bad);
	RUN(test_bundle_reserved);
	RUN(test_image_roundtrip);
	RUN(test_image_bad);
	harness_rmtree(tmp);
	return harness_exit("test_pubfmt");
}
