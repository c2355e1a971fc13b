/* numtext.h — decimal text of integers without printf, for the hot paths (the
 * encoder, the parsers' rendered text). Written backwards so the caller places it:
 * the text ends just before `end` (no NUL); the functions return where it starts.
 */
#ifndef HOSTBEAT_NUMTEXT_H
#define HOSTBEAT_NUMTEXT_H

#include <stdint.h>
#include <string.h>

/* "00" "01" ... "99": the two digits of v (< 100). */
static inline const char *hb_digit_pair(unsigned v)
{
	static const char pairs[201] = "0001020304050607080910111213141516171819"
				       "2021222324252627282930313233343536373839"
				       "4041424344454647484950515253545556575859"
				       "6061626364656667686970717273747576777879"
				       "8081828384858687888990919293949596979899";

	return pairs + 2 * v;
}

/* Two digits a step. */
static inline char *hb_u64_text(uint64_t v, char *end)
{
	char *q = end;

	while (v >= 100) {
		q -= 2;
		memcpy(q, hb_digit_pair((unsigned)(v % 100)), 2);
		v /= 100;
	}
	if (v >= 10) {
		q -= 2;
		memcpy(q, hb_digit_pair((unsigned)v), 2);
	} else {
		*--q = (char)('0' + v);
	}
	return q;
}

static inline char *hb_i64_text(int64_t v, char *end)
{
	char *q = hb_u64_text(v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v, end);

	if (v < 0)
		*--q = '-';
	return q;
}

#endif
