/* test_crc_digest.c - CRC-32C and SHA-256 against published vectors. */
#include "config.h"
#include "base/crc32c.h"
#include "base/digest.h"
#include "harness.h"

/* ---- CRC-32C ---- */

static void test_crc32c(void)
{
	static const char check[] = "123456789";
	unsigned char buf[32];
	int i;

	CHECK_EQ(vmb_crc32c(0, "123456789", 9), 0xe3069283u);   /* the check value */
	CHECK_EQ(vmb_crc32c(0, "", 0), 0);
	CHECK_EQ(vmb_crc32c(0, NULL, 0), 0);
	CHECK_EQ(vmb_crc32c(0x12345678u, NULL, 0), 0x12345678u);
	CHECK_EQ(vmb_crc32c(0, "a", 1), 0xc1d04330u);
	/* RFC 3720 (iSCSI), appendix B.4 */
	memset(buf, 0, sizeof(buf));
	CHECK_EQ(vmb_crc32c(0, buf, 32), 0x8a9136aau);
	memset(buf, 0xff, sizeof(buf));
	CHECK_EQ(vmb_crc32c(0, buf, 32), 0x62a8ab43u);
	for (i = 0; i < 32; i++)
		buf[i] = (unsigned char)i;
	CHECK_EQ(vmb_crc32c(0, buf, 32), 0x46dd794eu);
	for (i = 0; i < 32; i++)
		buf[i] = (unsigned char)(31 - i);
	CHECK_EQ(vmb_crc32c(0, buf, 32), 0x113fdb5cu);
	/* continuing from an earlier result, at every split point */
	for (i = 0; i <= 9; i++)
		CHECK_EQ(vmb_crc32c(vmb_crc32c(0, check, (size_t)i), check + i, (size_t)(9 - i)),
			 0xe3069283u);
}

/* The definition, one bit at a time (the reference for both implementations). */
static uint32_t crc_bitwise(uint32_t crc, const unsigned char *p, size_t len)
{
	crc = ~crc;
	while (len--) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0x82f63b78u & (0u - (crc & 1u)));
	}
	return ~crc;
}

/* xorshift64*: reproducible random bytes */
static uint64_t rnd_state = 0x9e3779b97f4a7c15u;

static uint64_t rnd(void)
{
	rnd_state ^= rnd_state >> 12;
	rnd_state ^= rnd_state << 25;
	rnd_state ^= rnd_state >> 27;
	return rnd_state * 0x2545f4914f6cdd1dull;
}

/* Each implementation on its own (the dispatcher only ever runs one of them). */
static void test_crc32c_impls(void)
{
	/* RFC 3720 appendix B.4: an iSCSI read command PDU (48 bytes) */
	static const unsigned char pdu[48] = {
		0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00,
		0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18, 0x28, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	};
	uint32_t (*const impl[3])(uint32_t, const void *, size_t) = {
		vmb_crc32c, vmb_crc32c_sw, vmb_crc32c_hw,
	};
	enum { BUF = 4096 + 64 };
	unsigned char *buf = malloc(BUF);
	unsigned char v[32];

	REQUIRE(buf);
	if (!vmb_crc32c_hw_available())
		fprintf(stderr, "note: no SSE4.2 here; vmb_crc32c_hw is the table version\n");
	for (int k = 0; k < 3; k++) {
		CHECK_EQ(impl[k](0, "123456789", 9), 0xe3069283u);
		CHECK_EQ(impl[k](0, pdu, sizeof(pdu)), 0xd9963a56u);
		memset(v, 0, sizeof(v));
		CHECK_EQ(impl[k](0, v, 32), 0x8a9136aau);
		memset(v, 0xff, sizeof(v));
		CHECK_EQ(impl[k](0, v, 32), 0x62a8ab43u);
		for (int i = 0; i < 32; i++)
			v[i] = (unsigned char)i;
		CHECK_EQ(impl[k](0, v, 32), 0x46dd794eu);
		CHECK_EQ(impl[k](0x1234u, NULL, 0), 0x1234u);
	}
	for (size_t i = 0; i < BUF; i++)
		buf[i] = (unsigned char)rnd();
	/* every start offset 0..15 (unaligned loads) against lengths that cross the
	 * 8-byte steps at every phase, then random slices of a page-sized buffer */
	for (size_t start = 0; start < 16; start++)
		for (size_t len = 0; len < 80; len++) {
			uint32_t want = crc_bitwise(0, buf + start, len);

			for (int k = 0; k < 3; k++)
				CHECK_EQ(impl[k](0, buf + start, len), want);
		}
	for (int round = 0; round < 300; round++) {
		size_t start = (size_t)(rnd() % 64), len = (size_t)(rnd() % (BUF - start));
		size_t cut = len ? (size_t)(rnd() % len) : 0;
		uint32_t seed = (uint32_t)rnd();
		uint32_t want = crc_bitwise(seed, buf + start, len);

		for (int k = 0; k < 3; k++) {
			CHECK_EQ(impl[k](seed, buf + start, len), want);
			/* chained at a random cut */
			CHECK_EQ(impl[k](impl[k](seed, buf + start, cut), buf + start + cut,
					 len - cut), want);
		}
	}
	free(buf);
}

/* ---- SHA-256 ---- */

static void check_hex(const void *buf, size_t len, const char *want)
{
	uint8_t d[VMB_SHA256_LEN];
	char hex[VMB_SHA256_HEX];
	struct vmb_err e;

	vmb_err_clear(&e);
	CHECK_RC(vmb_sha256(buf, len, d, &e), 0);
	vmb_sha256_hex(d, hex);
	if (!CHECK(!strcmp(hex, want)))
		fprintf(stderr, "    got  %s\n    want %s\n", hex, want);
}

static void test_sha256_vectors(void)
{
	static const char m448[] = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	char *million;

	check_hex("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	check_hex(NULL, 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	check_hex("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	check_hex(m448, sizeof(m448) - 1,
		  "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
	million = malloc(1000000);
	REQUIRE(million != NULL);
	memset(million, 'a', 1000000);
	check_hex(million, 1000000,
		  "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
	free(million);
}

static void test_sha256_hex(void)
{
	uint8_t d[VMB_SHA256_LEN];
	char hex[VMB_SHA256_HEX];
	int i;

	for (i = 0; i < VMB_SHA256_LEN; i++)
		d[i] = (uint8_t)(i * 8 + 7);
	memset(hex, 'X', sizeof(hex));
	vmb_sha256_hex(d, hex);
	CHECK(!strcmp(hex, "070f171f272f373f474f575f676f777f878f979fa7afb7bfc7cfd7dfe7eff7ff"));
	CHECK_EQ(strlen(hex), 64);
}

/* Streaming in pieces of every shape gives the one-shot digest; a context can be
 * reused after final. */
static void test_sha256_streaming(void)
{
	static unsigned char buf[100000];
	uint8_t one[VMB_SHA256_LEN], d[VMB_SHA256_LEN];
	struct vmb_sha256 *c = NULL;
	struct vmb_err e;
	uint32_t x = 2463534242u;
	size_t i, pos, step;
	int round;

	for (i = 0; i < sizeof(buf); i++) {
		x ^= x << 13, x ^= x >> 17, x ^= x << 5;
		buf[i] = (unsigned char)x;
	}
	vmb_err_clear(&e);
	REQUIRE(vmb_sha256(buf, sizeof(buf), one, &e) == 0);
	REQUIRE(vmb_sha256_new(&c, &e) == 0);
	REQUIRE(c != NULL);
	for (round = 0; round < 6; round++) {
		for (pos = 0; pos < sizeof(buf); pos += step) {
			x ^= x << 13, x ^= x >> 17, x ^= x << 5;
			step = round == 0 ? 1 : round == 1 ? 63 : round == 2 ? 64 :
			       round == 3 ? 65 : x % 9000;
			if (step > sizeof(buf) - pos)
				step = sizeof(buf) - pos;
			CHECK_RC(vmb_sha256_update(c, buf + pos, step, &e), 0);
			if (round == 5)
				CHECK_RC(vmb_sha256_update(c, NULL, 0, &e), 0);
		}
		CHECK_RC(vmb_sha256_final(c, d, &e), 0);   /* and the context restarts */
		CHECK(!memcmp(d, one, sizeof(d)));
	}
	/* final right after final: the digest of nothing */
	CHECK_RC(vmb_sha256_final(c, d, &e), 0);
	CHECK_RC(vmb_sha256(NULL, 0, one, &e), 0);
	CHECK(!memcmp(d, one, sizeof(d)));
	CHECK_EQ(e.code, 0);
	vmb_sha256_free(c);
	vmb_sha256_free(NULL);
}

int main(void)
{
	RUN(test_crc32c);
	RUN(test_crc32c_impls);
	RUN(test_sha256_vectors);
	RUN(test_sha256_hex);
	RUN(test_sha256_streaming);
	return harness_exit("test_crc_digest");
}
