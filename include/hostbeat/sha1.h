/* sha1.h — SHA-1 message digest (FIPS 180-4 §6.1), for the Community ID hash.
 *
 * Not for security: Community ID uses SHA-1 only as a well-known mixing function.
 */
#ifndef HOSTBEAT_SHA1_H
#define HOSTBEAT_SHA1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SHA1_DIGEST_LEN 20

struct sha1_ctx {
	uint32_t h[5];
	uint64_t total;    /* bytes hashed so far */
	uint8_t block[64]; /* pending partial block */
	size_t nblock;
};

void sha1_init(struct sha1_ctx *c);
void sha1_update(struct sha1_ctx *c, const void *data, size_t len);
/* Writes the digest; the context must be re-initialised before reuse. */
void sha1_final(struct sha1_ctx *c, uint8_t out[SHA1_DIGEST_LEN]);
/* One-shot digest of `len` bytes. */
void sha1(const void *data, size_t len, uint8_t out[SHA1_DIGEST_LEN]);
/* The CPU's SHA instructions are used when it has them. For tests: on = false
 * forces the portable code, on = true goes back to the CPU's; returns whether the
 * SHA instructions are now in use. */
bool sha1_use_accel(bool on);

#endif
