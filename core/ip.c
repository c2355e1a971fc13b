/* ip.c — text form of IPv4/IPv6 addresses.
 *
 * hb_ip_format() writes the same text as glibc's inet_ntop() (RFC 5952 form:
 * lowercase hex without leading zeros, the first longest run of two or more zero
 * groups as "::", "::a.b.c.d" / "::ffff:a.b.c.d" for the v4-compatible and
 * v4-mapped forms) without its per-group sprintf: it runs for every address of
 * every event. tests/unit/test_ip.c compares both on many addresses.
 */
#include "hostbeat/ip.h"

#include <arpa/inet.h>
#include <errno.h>
#include <sys/socket.h>

/* Dotted quad of a[0..3]; returns the end. */
static char *put_v4(char *d, const uint8_t *a)
{
	unsigned i, v;

	for (i = 0; i < 4; i++) {
		v = a[i];
		if (i)
			*d++ = '.';
		if (v >= 100)
			*d++ = (char)('0' + v / 100);
		if (v >= 10)
			*d++ = (char)('0' + v / 10 % 10);
		*d++ = (char)('0' + v % 10);
	}
	return d;
}

/* One group in lowercase hex without leading zeros; returns the end. */
static char *put_hex16(char *d, unsigned w)
{
	static const char hex[] = "0123456789abcdef";
	int sh = w >= 0x1000 ? 12 : w >= 0x100 ? 8 : w >= 0x10 ? 4 : 0;

	for (; sh >= 0; sh -= 4)
		*d++ = hex[w >> sh & 15];
	return d;
}

static size_t format_v6(const uint8_t *a, char *buf)
{
	unsigned w[8], i;
	int best = -1, best_len = 0, cur = -1, cur_len = 0;
	char *d = buf;

	for (i = 0; i < 8; i++)
		w[i] = (unsigned)a[2 * i] << 8 | a[2 * i + 1];
	/* the first longest run of zero groups (inet_ntop6's choice) */
	for (i = 0; i < 8; i++) {
		if (w[i] == 0) {
			if (cur < 0) {
				cur = (int)i;
				cur_len = 0;
			}
			cur_len++;
			continue;
		}
		if (cur >= 0 && cur_len > best_len) {
			best = cur;
			best_len = cur_len;
		}
		cur = -1;
	}
	if (cur >= 0 && cur_len > best_len) {
		best = cur;
		best_len = cur_len;
	}
	if (best_len < 2)
		best = -1;

	for (i = 0; i < 8; i++) {
		if (best >= 0 && (int)i >= best && (int)i < best + best_len) {
			if ((int)i == best)
				*d++ = ':';
			continue;
		}
		if (i)
			*d++ = ':';
		/* v4-compatible (::a.b.c.d) and v4-mapped (::ffff:a.b.c.d) */
		if (i == 6 && best == 0 && (best_len == 6 || (best_len == 5 && w[5] == 0xffff))) {
			d = put_v4(d, a + 12);
			break;
		}
		d = put_hex16(d, w[i]);
	}
	if (best >= 0 && best + best_len == 8)
		*d++ = ':';
	*d = '\0';
	return (size_t)(d - buf);
}

size_t hb_ip_format(const struct hb_ip *ip, char *buf)
{
	char *d;

	if (ip->ver == 6)
		return format_v6(ip->a, buf);
	if (ip->ver != 4) {
		buf[0] = '\0';
		return 0;
	}
	d = put_v4(buf, ip->a);
	*d = '\0';
	return (size_t)(d - buf);
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
