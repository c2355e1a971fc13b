/* base64.h — Base64 encoding, standard alphabet with '=' padding (RFC 4648 §4). */
#ifndef HOSTBEAT_BASE64_H
#define HOSTBEAT_BASE64_H

#include <stddef.h>

/* Bytes needed in `out` for `len` input bytes, NUL included. */
#define BASE64_ENCODED_SIZE(len) ((((len) + 2) / 3) * 4 + 1)

/* Encode `len` bytes of `in` into `out` (NUL-terminated). Returns the length
 * written (excluding the NUL), or 0 when outsize is too small (out then holds ""
 * if outsize > 0). */
size_t base64_encode(const void *in, size_t len, char *out, size_t outsize);

#endif
