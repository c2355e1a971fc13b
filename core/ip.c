/* ip.c — text form of IPv4/IPv6 addresses.
 *
 * hb_ip_format() writes the same text as glibc's inet_ntop() (RFC 5952 form:
 * lowercase hex without leading zeros, the first longest run of two or more zero
 * groups as "::", "::a.b.c.d" / "::ffff:a.b.c.d" for the v4-compatible and
 * v4-mapped forms) without its per-group sprintf: it runs for every address of
 * every event. Octets and hex groups come from tables of the 256 byte values (no
 * division), copied a word at a time: the text may be followed by up to three
 * scratch bytes, always inside the HB_IP_STRLEN buffer (16 bytes for IPv4).
 * tests/unit/test_ip.c compares both on many addresses.
 */
#include "hostbeat/ip.h"

#include <arpa/inet.h>
#include <errno.h>
#include <sys/socket.h>

/* Tables of the 256 byte values, built from constant expressions (so they cannot
 * disagree with the arithmetic): REPEAT256(m) is m(0), m(1), ..., m(255). */
#define REPEAT4(m, v) m(v), m((v) + 1), m((v) + 2), m((v) + 3)
#define REPEAT16(m, v) REPEAT4(m, v), REPEAT4(m, (v) + 4), REPEAT4(m, (v) + 8), REPEAT4(m, (v) + 12)
#define REPEAT64(m, v) \
	REPEAT16(m, v), REPEAT16(m, (v) + 16), REPEAT16(m, (v) + 32), REPEAT16(m, (v) + 48)
#define REPEAT256(m) REPEAT64(m, 0), REPEAT64(m, 64), REPEAT64(m, 128), REPEAT64(m, 192)

/* The decimal text of a byte followed by its '.', NUL-padded to 4 bytes, and its
 * digit count: an octet is one 4-byte copy, no division. */
struct dec_octet {
	char text[4];
	uint32_t len; /* 8-byte entries: one scaled index reaches both */
};

#define OCTET_LEN(v) (1 + ((v) >= 10) + ((v) >= 100))
#define POW10(k) ((k) == 2 ? 100 : (k) == 1 ? 10 : 1)
/* byte p of "<v>.\0\0" */
#define OCTET_CHAR(v, p)                                                        \
	((p) < OCTET_LEN(v)    ? '0' + (v) / POW10(OCTET_LEN(v) - 1 - (p)) % 10 \
	 : (p) == OCTET_LEN(v) ? '.'                                            \
			       : 0)
#define DEC_OCTET(v)                                                                      \
	{                                                                                 \
		{OCTET_CHAR(v, 0), OCTET_CHAR(v, 1), OCTET_CHAR(v, 2), OCTET_CHAR(v, 3)}, \
		    OCTET_LEN(v)                                                          \
	}

static const struct dec_octet dec_octets[256] = {REPEAT256(DEC_OCTET)};

/* The two lowercase hex digits of a byte. */
#define HEX_DIGIT(n) ((n) < 10 ? '0' + (n) : 'a' + (n)-10)
#define HEX_PAIR(v)                                    \
	{                                              \
		HEX_DIGIT((v) >> 4), HEX_DIGIT((v)&15) \
	}

static const char hex_pairs[256][2] = {REPEAT256(HEX_PAIR)};

/* One octet and its '.'; returns the end (past the '.'). Copies 4 bytes. */
static inline char *put_octet(char *d, uint8_t v)
{
	memcpy(d, dec_octets[v].text, 4);
	return d + dec_octets[v].len + 1;
}

/* Dotted quad of a[0..3]; returns the end. Writes up to 16 bytes, all inside the
 * HB_IP_STRLEN buffer; the caller puts the NUL at the end. */
static inline char *put_v4(char *d, const uint8_t *a)
{
	d = put_octet(d, a[0]);
	d = put_octet(d, a[1]);
	d = put_octet(d, a[2]);
	d = put_octet(d, a[3]);
	return d - 1; /* the last octet's '.' is not part of the address */
}

/* One group in lowercase hex without leading zeros; returns the end. Copies 4
 * bytes whatever the length (the group's digits, then NULs). */
static char *put_hex16(char *d, unsigned w)
{
	char t[8] = {0}; /* the four digits, then NULs to copy when there are fewer */
	unsigned n = w >= 0x1000 ? 4 : w >= 0x100 ? 3 : w >= 0x10 ? 2 : 1;

	memcpy(t, hex_pairs[w >> 8 & 255], 2);
	memcpy(t + 2, hex_pairs[w & 255], 2);
	memcpy(d, t + 4 - n, 4);
	return d + n;
}

/* Groups w[from, to) joined by ':'; returns the end. */
static char *put_groups(char *d, const unsigned *w, unsigned from, unsigned to)
{
	for (unsigned i = from; i < to; i++) {
		if (i > from)
			*d++ = ':';
		d = put_hex16(d, w[i]);
	}
	return d;
}

/* Not inlined into hb_ip_format(): IPv4, the common case, then needs no stack frame. */
static __attribute__((noinline)) size_t format_v6(const uint8_t *a, char *buf)
{
	unsigned w[8], zeros = 0, run, starts = 0, best, len = 0, i;
	char *d = buf;

	for (i = 0; i < 8; i++) {
		w[i] = (unsigned)a[2 * i] << 8 | a[2 * i + 1];
		zeros |= (unsigned)(w[i] == 0) << i;
	}
	/* The first longest run of zero groups (inet_ntop6's choice). Bit i of `run`
	 * after k steps says groups i..i+k are all zero; the last non-empty mask holds
	 * the starts of the longest runs, its lowest bit the first one. */
	for (run = zeros; run; run &= run >> 1) {
		starts = run;
		len++;
	}
	if (len < 2) {
		d = put_groups(d, w, 0, 8); /* a single zero group stays "0" */
	} else if ((best = (unsigned)__builtin_ctz(starts)) == 0 &&
		   (len == 6 || (len == 5 && w[5] == 0xffff))) {
		/* v4-compatible (::a.b.c.d) and v4-mapped (::ffff:a.b.c.d) */
		*d++ = ':';
		*d++ = ':';
		if (len == 5) {
			memcpy(d, "ffff:", 5);
			d += 5;
		}
		d = put_v4(d, a + 12);
	} else {
		d = put_groups(d, w, 0, best);
		*d++ = ':';
		*d++ = ':';
		d = put_groups(d, w, best + len, 8);
	}
	*d = '\0';
	return (size_t)(d - buf);
}

size_t hb_ip_format(const struct hb_ip *ip, char *buf)
{
	char *d;

	if (ip->ver == 4) {
		d = put_v4(buf, ip->a);
		*d = '\0';
		return (size_t)(d - buf);
	}
	if (ip->ver == 6)
		return format_v6(ip->a, buf);
	buf[0] = '\0';
	return 0;
}

int hb_ip_parse(const char *s, struct hb_ip *ip)
{
	memset(ip, 0, sizeof(*ip));
	if (inet_pton(AF_INET, s, ip->a) == 1) {
		ip->ver = 4;
		return 0;
	}
	if (inet_pton(AF_INET6, s, ip->a) == 1) {
		ip->ver = 6;
		return 0;
	}
	return -EINVAL;
}
