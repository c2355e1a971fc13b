/* base64.c — Base64 encoding (RFC 4648 §4: standard alphabet, '=' padding).
 *
 *   in:  aaaaaaaa bbbbbbbb cccccccc
 *   out: aaaaaa aabbbb bbbbcc cccccc   (one 6-bit index per output char)
 */
#include <stdint.h>

#include "hostbeat/base64.h"

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t base64_encode(const void *in, size_t len, char *out, size_t outsize)
{
	const uint8_t *p = in;
	size_t need, i, o = 0;
	uint32_t v;

	if (len > (SIZE_MAX - 1) / 4 * 3 - 2) {
		if (outsize)
			out[0] = '\0';
		return 0;
	}
	need = BASE64_ENCODED_SIZE(len);
	if (outsize < need) {
		if (outsize)
			out[0] = '\0';
		return 0;
	}
	for (i = 0; len - i >= 3; i += 3) {
		v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		out[o++] = b64_alphabet[v >> 18 & 63];
		out[o++] = b64_alphabet[v >> 12 & 63];
		out[o++] = b64_alphabet[v >> 6 & 63];
		out[o++] = b64_alphabet[v & 63];
	}
	if (len - i == 1) {
		v = (uint32_t)p[i] << 16;
		out[o++] = b64_alphabet[v >> 18 & 63];
		out[o++] = b64_alphabet[v >> 12 & 63];
		out[o++] = '=';
		out[o++] = '=';
	} else if (len - i == 2) {
		v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
		out[o++] = b64_alphabet[v >> 18 & 63];
		out[o++] = b64_alphabet[v >> 12 & 63];
		out[o++] = b64_alphabet[v >> 6 & 63];
		out[o++] = '=';
	}
	out[o] = '\0';
	return o;
}
