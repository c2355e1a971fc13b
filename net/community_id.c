/* community_id.c — Community ID flow hash v1.
 *
 * Spec: https://github.com/corelight/community-id-spec (README, community-id.py);
 * ICMP type pairing from corelight/pycommunityid icmp.py / icmp6.py.
 *
 *   hash input (big-endian, no padding except the zero byte):
 *   +------+-------+-------+-------+------+-------+-------+
 *   | seed | saddr | daddr | proto | 0x00 | sport | dport |
 *   |  2   | 4|16  | 4|16  |   1   |  1   |   2   |   2   |
 *   +------+-------+-------+-------+------+-------+-------+
 *   ports only for TCP, UDP, SCTP, ICMP, ICMPv6.
 *   id = "1:" base64(sha1(input))
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "hostbeat/base64.h"
#include "hostbeat/sha1.h"
#include "net/community_id.h"

#define CID_PROTO_ICMP 1
#define CID_PROTO_TCP 6
#define CID_PROTO_UDP 17
#define CID_PROTO_ICMPV6 58
#define CID_PROTO_SCTP 132

/* Counterpart of an ICMP type in a request/response pair, or -1 (one-way). */
static int icmp4_counterpart(uint16_t type)
{
	switch (type) {
	case 8:
		return 0; /* echo ↔ echo reply */
	case 0:
		return 8;
	case 13:
		return 14; /* timestamp */
	case 14:
		return 13;
	case 15:
		return 16; /* information */
	case 16:
		return 15;
	case 10:
		return 9; /* router solicitation ↔ advertisement */
	case 9:
		return 10;
	case 17:
		return 18; /* address mask */
	case 18:
		return 17;
	default:
		return -1;
	}
}

static int icmp6_counterpart(uint16_t type)
{
	switch (type) {
	case 128:
		return 129; /* echo */
	case 129:
		return 128;
	case 133:
		return 134; /* RS / RA */
	case 134:
		return 133;
	case 135:
		return 136; /* NS / NA */
	case 136:
		return 135;
	case 130:
		return 131; /* MLD query / report */
	case 131:
		return 130;
	case 139:
		return 140; /* node information query / response */
	case 140:
		return 139;
	case 144:
		return 145; /* home agent address discovery */
	case 145:
		return 144;
	default:
		return -1;
	}
}

static bool has_ports(uint8_t proto)
{
	return proto == CID_PROTO_TCP || proto == CID_PROTO_UDP || proto == CID_PROTO_SCTP ||
	       proto == CID_PROTO_ICMP || proto == CID_PROTO_ICMPV6;
}

int community_id_v1(const struct hb_ip *src, const struct hb_ip *dst, uint16_t sport,
		    uint16_t dport, uint8_t ip_proto, uint16_t seed, char out[COMMUNITY_ID_LEN])
{
	uint8_t buf[2 + 16 + 16 + 1 + 1 + 2 + 2];
	uint8_t digest[SHA1_DIGEST_LEN];
	const uint8_t *a, *b;
	uint16_t pa = sport, pb = dport, tmp;
	bool one_way = false;
	size_t alen, n = 0;
	int cp = -1, cmp;

	out[0] = '\0';
	if (src->ver != dst->ver || (src->ver != 4 && src->ver != 6))
		return -EINVAL;
	alen = hb_ip_len(src);

	if (ip_proto == CID_PROTO_ICMP || ip_proto == CID_PROTO_ICMPV6) {
		cp = ip_proto == CID_PROTO_ICMP ? icmp4_counterpart(sport)
						: icmp6_counterpart(sport);
		if (cp >= 0)
			pb = (uint16_t)cp; /* two-way: port pair is (type, counterpart) */
		else
			one_way = true; /* (type, code), never reordered */
	}

	a = src->a;
	b = dst->a;
	if (!one_way) {
		cmp = memcmp(a, b, alen);
		if (!(cmp < 0 || (cmp == 0 && pa < pb))) {
			a = dst->a;
			b = src->a;
			tmp = pa;
			pa = pb;
			pb = tmp;
		}
	}

	buf[n++] = (uint8_t)(seed >> 8);
	buf[n++] = (uint8_t)seed;
	memcpy(buf + n, a, alen);
	n += alen;
	memcpy(buf + n, b, alen);
	n += alen;
	buf[n++] = ip_proto;
	buf[n++] = 0;
	if (has_ports(ip_proto)) {
		buf[n++] = (uint8_t)(pa >> 8);
		buf[n++] = (uint8_t)pa;
		buf[n++] = (uint8_t)(pb >> 8);
		buf[n++] = (uint8_t)pb;
	}
	sha1(buf, n, digest);
	out[0] = '1';
	out[1] = ':';
	if (base64_encode(digest, sizeof(digest), out + 2, COMMUNITY_ID_LEN - 2) == 0)
		return -EINVAL; /* cannot happen: 20 bytes → 28 chars + NUL */
	return 0;
}
