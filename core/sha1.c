/* sha1.c — SHA-1 (FIPS 180-4, §5.1.1 padding, §6.1.2 hash computation).
 *
 * Message schedule W[0..79] from each 512-bit block, big-endian words; 80 rounds
 * with f/K changing every 20 rounds; padding = 0x80, zeros, 64-bit bit length.
 *
 * On x86-64 CPUs with the SHA extensions (Intel since Goldmont/Ice Lake, AMD since
 * Zen) a block is hashed by the SHA1RNDS4/SHA1NEXTE/SHA1MSG1/SHA1MSG2 instructions
 * instead: ~25x fewer instructions. Chosen once, from CPUID; both are tested.
 */
#include <stdbool.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>
#define SHA1_X86 1
#endif

#include "hostbeat/sha1.h"

static uint32_t rol32(uint32_t x, unsigned n)
{
	return x << n | x >> (32 - n);
}

static void sha1_block_portable(uint32_t h[5], const uint8_t *p)
{
	uint32_t w[80];
	uint32_t a, b, c, d, e, f, k, t;
	int i;

	for (i = 0; i < 16; i++)
		w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
		       (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
	for (i = 16; i < 80; i++)
		w[i] = rol32(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);

	a = h[0];
	b = h[1];
	c = h[2];
	d = h[3];
	e = h[4];
	for (i = 0; i < 80; i++) {
		if (i < 20) {
			f = (b & c) | (~b & d); /* Ch */
			k = 0x5a827999;
		} else if (i < 40) {
			f = b ^ c ^ d; /* Parity */
			k = 0x6ed9eba1;
		} else if (i < 60) {
			f = (b & c) | (b & d) | (c & d); /* Maj */
			k = 0x8f1bbcdc;
		} else {
			f = b ^ c ^ d;
			k = 0xca62c1d6;
		}
		t = rol32(a, 5) + f + e + k + w[i];
		e = d;
		d = c;
		c = rol32(b, 30);
		b = a;
		a = t;
	}
	h[0] += a;
	h[1] += b;
	h[2] += c;
	h[3] += d;
	h[4] += e;
}

#ifdef SHA1_X86
/* Four rounds per SHA1RNDS4 on the state A:B:C:D (A in the top lane); E is carried
 * as the top lane of the vector SHA1NEXTE returns (rol(A', 30) + the next four W).
 * Schedule, four words at a time: W[i] = msg2(msg1(W[i-4], W[i-3]) ^ W[i-2], W[i-1]),
 * which is FIPS 180-4's w[t] = rol1(w[t-3] ^ w[t-8] ^ w[t-14] ^ w[t-16]). */
__attribute__((target("sha,sse4.1,ssse3"))) static void sha1_block_x86(uint32_t h[5],
								       const uint8_t *p)
{
	const __m128i bswap = _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
	__m128i w[20], abcd, abcd0, prev, e, e0;
	int i;

	abcd0 = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)(const void *)h), 0x1b);
	e0 = _mm_set_epi32((int)h[4], 0, 0, 0);
	for (i = 0; i < 4; i++)
		w[i] = _mm_shuffle_epi8(
		    _mm_loadu_si128((const __m128i *)(const void *)(p + 16 * i)), bswap);
	for (i = 4; i < 20; i++)
		w[i] = _mm_sha1msg2_epu32(
		    _mm_xor_si128(_mm_sha1msg1_epu32(w[i - 4], w[i - 3]), w[i - 2]), w[i - 1]);

	abcd = _mm_sha1rnds4_epu32(abcd0, _mm_add_epi32(e0, w[0]), 0);
	prev = abcd0;
#define SHA1_GROUP(i, f)                                \
	do {                                            \
		e = _mm_sha1nexte_epu32(prev, w[i]);    \
		prev = abcd;                            \
		abcd = _mm_sha1rnds4_epu32(abcd, e, f); \
	} while (0)
	/* the function selector must be a constant: one line per group of four rounds */
	SHA1_GROUP(1, 0);
	SHA1_GROUP(2, 0);
	SHA1_GROUP(3, 0);
	SHA1_GROUP(4, 0);
	SHA1_GROUP(5, 1);
	SHA1_GROUP(6, 1);
	SHA1_GROUP(7, 1);
	SHA1_GROUP(8, 1);
	SHA1_GROUP(9, 1);
	SHA1_GROUP(10, 2);
	SHA1_GROUP(11, 2);
	SHA1_GROUP(12, 2);
	SHA1_GROUP(13, 2);
	SHA1_GROUP(14, 2);
	SHA1_GROUP(15, 3);
	SHA1_GROUP(16, 3);
	SHA1_GROUP(17, 3);
	SHA1_GROUP(18, 3);
	SHA1_GROUP(19, 3);
#undef SHA1_GROUP
	e = _mm_sha1nexte_epu32(prev, e0); /* E after round 79, plus the old E */
	abcd = _mm_shuffle_epi32(_mm_add_epi32(abcd, abcd0), 0x1b);
	_mm_storeu_si128((__m128i *)(void *)h, abcd);
	h[4] = (uint32_t)_mm_extract_epi32(e, 3);
}

static bool cpu_has_sha(void)
{
	unsigned a, b, c, d;

	if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_SSE4_1) || !(c & bit_SSSE3))
		return false;
	return __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & bit_SHA);
}
#endif

/* 0 = not decided yet, 1 = portable, 2 = SHA extensions. Racing first calls all
 * store the same answer. */
static int accel_state;

static void sha1_block(uint32_t h[5], const uint8_t *p)
{
	int st = __atomic_load_n(&accel_state, __ATOMIC_RELAXED);

	if (st == 0) {
		st = 1;
#ifdef SHA1_X86
		if (cpu_has_sha())
			st = 2;
#endif
		__atomic_store_n(&accel_state, st, __ATOMIC_RELAXED);
	}
#ifdef SHA1_X86
	if (st == 2) {
		sha1_block_x86(h, p);
		return;
	}
#endif
	sha1_block_portable(h, p);
}

bool sha1_use_accel(bool on)
{
	bool have = false;

#ifdef SHA1_X86
	have = cpu_has_sha();
#endif
	__atomic_store_n(&accel_state, on && have ? 2 : 1, __ATOMIC_RELAXED);
	return on && have;
}

void sha1_init(struct sha1_ctx *c)
{
	/* FIPS 180-4 §5.3.1 initial hash value */
	c->h[0] = 0x67452301;
	c->h[1] = 0xefcdab89;
	c->h[2] = 0x98badcfe;
	c->h[3] = 0x10325476;
	c->h[4] = 0xc3d2e1f0;
	c->total = 0;
	c->nblock = 0;
}

void sha1_update(struct sha1_ctx *c, const void *data, size_t len)
{
	const uint8_t *p = data;
	size_t n;

	c->total += len;
	if (c->nblock) {
		n = sizeof(c->block) - c->nblock;
		if (n > len)
			n = len;
		memcpy(c->block + c->nblock, p, n);
		c->nblock += n;
		p += n;
		len -= n;
		if (c->nblock < sizeof(c->block))
			return;
		sha1_block(c->h, c->block);
		c->nblock = 0;
	}
	while (len >= 64) {
		sha1_block(c->h, p);
		p += 64;
		len -= 64;
	}
	if (len) {
		memcpy(c->block, p, len);
		c->nblock = len;
	}
}

void sha1_final(struct sha1_ctx *c, uint8_t out[SHA1_DIGEST_LEN])
{
	uint64_t bits = c->total * 8;
	int i;

	c->block[c->nblock++] = 0x80;
	if (c->nblock > 56) {
		memset(c->block + c->nblock, 0, 64 - c->nblock);
		sha1_block(c->h, c->block);
		c->nblock = 0;
	}
	memset(c->block + c->nblock, 0, 56 - c->nblock);
	for (i = 0; i < 8; i++)
		c->block[56 + i] = (uint8_t)(bits >> (56 - 8 * i));
	sha1_block(c->h, c->block);
	for (i = 0; i < 5; i++) {
		out[4 * i] = (uint8_t)(c->h[i] >> 24);
		out[4 * i + 1] = (uint8_t)(c->h[i] >> 16);
		out[4 * i + 2] = (uint8_t)(c->h[i] >> 8);
		out[4 * i + 3] = (uint8_t)c->h[i];
	}
}

void sha1(const void *data, size_t len, uint8_t out[SHA1_DIGEST_LEN])
{
	struct sha1_ctx c;

	sha1_init(&c);
	sha1_update(&c, data, len);
	sha1_final(&c, out);
}
