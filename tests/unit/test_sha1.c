/* test_sha1.c — core/sha1.c: the FIPS 180-4 / RFC 3174 test vectors through the
 * portable code and through the CPU's SHA instructions (when it has them), and both
 * against each other on random messages of every length around the block edges,
 * fed whole and in random pieces. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "hostbeat/sha1.h"

static void hex(const uint8_t d[SHA1_DIGEST_LEN], char out[41])
{
	for (int i = 0; i < SHA1_DIGEST_LEN; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static void expect(const void *msg, size_t len, size_t repeat, const char *want)
{
	struct sha1_ctx c;
	uint8_t d[SHA1_DIGEST_LEN];
	char got[41];

	sha1_init(&c);
	for (size_t i = 0; i < repeat; i++)
		sha1_update(&c, msg, len);
	sha1_final(&c, d);
	hex(d, got);
	assert_string_equal(got, want);
}

static void vectors(void)
{
	expect("abc", 3, 1, "a9993e364706816aba3e25717850c26c9cd0d89d");
	expect("", 0, 1, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
	expect("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56, 1,
	       "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
	expect("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklm"
	       "nopqrlmnopqrsmnopqrstnopqrstu",
	       112, 1, "a49b2446a02c645bf419f995b67091253a04a259");
	expect("a", 1, 1000000, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
	expect("0123456701234567012345670123456701234567012345670123456701234567", 64, 10,
	       "dea356a2cddd90c7a7ecedc5ebb563934f460452");
}

static void test_portable_vectors(void **state)
{
	(void)state;
	assert_false(sha1_use_accel(false));
	vectors();
	sha1_use_accel(true);
}

static void test_accel_vectors(void **state)
{
	(void)state;
	if (!sha1_use_accel(true))
		skip(); /* this CPU has no SHA instructions */
	vectors();
}

static uint64_t rng = 88172645463325252ULL;

static uint32_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng >> 11);
}

static void digest_pieces(const uint8_t *m, size_t len, uint8_t d[SHA1_DIGEST_LEN])
{
	struct sha1_ctx c;
	size_t off = 0, n;

	sha1_init(&c);
	while (off < len) {
		n = 1 + rnd() % 80;
		if (n > len - off)
			n = len - off;
		sha1_update(&c, m + off, n);
		off += n;
	}
	sha1_final(&c, d);
}

static void test_accel_matches_portable(void **state)
{
	uint8_t m[700], a[SHA1_DIGEST_LEN], b[SHA1_DIGEST_LEN], c[SHA1_DIGEST_LEN];

	(void)state;
	if (!sha1_use_accel(true))
		skip();
	for (int round = 0; round < 20; round++) {
		for (size_t len = 0; len <= sizeof(m); len++) {
			for (size_t i = 0; i < len; i++)
				m[i] = (uint8_t)rnd();
			sha1_use_accel(false);
			sha1(m, len, a);
			sha1_use_accel(true);
			sha1(m, len, b);
			digest_pieces(m, len, c);
			if (memcmp(a, b, sizeof(a)) != 0 || memcmp(a, c, sizeof(a)) != 0)
				fail_msg("digests differ at length %zu", len);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_portable_vectors),
	    cmocka_unit_test(test_accel_vectors),
	    cmocka_unit_test(test_accel_matches_portable),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
