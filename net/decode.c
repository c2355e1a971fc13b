/* decode.c — L2 → L3 → L4 decoding of one captured frame (see decode.h).
 *
 * Specs: IEEE 802.3 / 802.1Q (VLAN, 802.1ad QinQ), tcpdump.org/linktypes
 * (LINKTYPE_LINUX_SLL, _SLL2, _NULL, _LOOP, _RAW, _IPV4, _IPV6), RFC 791 (IPv4),
 * RFC 8200 (IPv6 + extension headers), RFC 4302 (AH), RFC 9293 (TCP), RFC 768 (UDP).
 *
 *   Ethernet  | dst 6 | src 6 | [0x8100|0x88a8|0x9100 TCI 2]* | type 2 |
 *   SLL  (16) | pkttype 2 | hatype 2 | halen 2 | addr 8 | protocol 2 |
 *   SLL2 (20) | protocol 2 | rsvd 2 | ifindex 4 | hatype 2 | pkttype 1 | halen 1 | addr 8 |
 *   NULL/LOOP | family 4 (NULL: capturing host's order, LOOP: big-endian) |
 *
 *   IPv4      | ver/ihl | tos | total len | id | flags/frag off | ttl | proto | csum | src | dst |
 * options | IPv6      | ver/tc/flow 4 | payload len 2 | next hdr | hop limit | src 16 | dst 16 |
 * ext hdrs... | TCP       | sport | dport | seq 4 | ack 4 | doff/flags 2 | window | csum | urg |
 * options | UDP       | sport | dport | length | csum |
 *
 * Lengths: `cap` = bytes present in the capture, `wire` = bytes per the headers.
 * Ethernet padding beyond the IP length is trimmed; a frame cut by the snaplen
 * (caplen < wirelen) keeps cap < wire; a frame that is complete on the wire but
 * shorter than its IP header claims is malformed (truncated_ip).
 */
#include <errno.h>
#include <string.h>

#include "hostbeat/cursor.h"
#include "hostbeat/mem.h"
#include "hostbeat/metrics.h"
#include "net/decode.h"
#include "net/ipfrag.h"

/* Link-layer header type values as libpcap's pcap_datalink() reports them on Linux. */
#define LT_NULL 0
#define LT_EN10MB 1
#define LT_RAW 12           /* DLT_RAW on Linux */
#define LT_RAW_BSD 14       /* DLT_RAW on BSD/OS */
#define LT_RAW_LINKTYPE 101 /* LINKTYPE_RAW as stored in files */
#define LT_LOOP 108
#define LT_LINUX_SLL 113
#define LT_IPV4 228
#define LT_IPV6 229
#define LT_LINUX_SLL2 276

#define ETH_P_IPV4 0x0800
#define ETH_P_IPV6 0x86dd
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88a8
#define ETH_P_QINQ 0x9100

#define IPP_HOPOPTS 0
#define IPP_TCP 6
#define IPP_UDP 17
#define IPP_ROUTING 43
#define IPP_FRAGMENT 44
#define IPP_ESP 50
#define IPP_AH 51
#define IPP_NONE 59
#define IPP_DSTOPTS 60

#define DECODE_MAX_EXT_HEADERS 8

enum malformed_reason {
	MAL_TRUNCATED_L2,
	MAL_BAD_IP_HEADER,
	MAL_TRUNCATED_IP,
	MAL_BAD_TCP_HEADER,
	MAL_BAD_UDP_HEADER,
	MAL_TOO_MANY_EXT,
	MAL_UNSUPPORTED_LINK,
	MAL_COUNT,
};

static const char *const malformed_names[MAL_COUNT] = {
    [MAL_TRUNCATED_L2] = "decode.malformed.truncated_l2",
    [MAL_BAD_IP_HEADER] = "decode.malformed.bad_ip_header",
    [MAL_TRUNCATED_IP] = "decode.malformed.truncated_ip",
    [MAL_BAD_TCP_HEADER] = "decode.malformed.bad_tcp_header",
    [MAL_BAD_UDP_HEADER] = "decode.malformed.bad_udp_header",
    [MAL_TOO_MANY_EXT] = "decode.malformed.too_many_ext_headers",
    [MAL_UNSUPPORTED_LINK] = "decode.malformed.unsupported_link",
};

struct decoder {
	int linktype;
	struct ipfrag *frag;
	struct metric *m_packets;
	struct metric *m_non_ip;
	struct metric *m_not_tcp_udp;
	struct metric *m_vlan_skipped; /* tags beyond PKT_MAX_VLANS */
	struct metric *m_fragments;    /* IPv4/IPv6 fragments handed to ipfrag */
	struct metric *m_malformed[MAL_COUNT];
};

/* L3 found by the link layer. */
enum l3_kind { L3_NONE, L3_IPV4, L3_IPV6 };

int decoder_linktype_supported(int linktype)
{
	switch (linktype) {
	case LT_NULL:
	case LT_EN10MB:
	case LT_RAW:
	case LT_RAW_BSD:
	case LT_RAW_LINKTYPE:
	case LT_LOOP:
	case LT_LINUX_SLL:
	case LT_IPV4:
	case LT_IPV6:
	case LT_LINUX_SLL2:
		return 0;
	default:
		return -EPROTONOSUPPORT;
	}
}

struct decoder *decoder_new(int linktype, const struct decoder_limits *lim)
{
	struct decoder *d;
	int i;

	d = hb_calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->linktype = linktype;
	d->frag = ipfrag_new(lim ? lim->frag_max_datagrams : 0, lim ? lim->frag_timeout_ns : 0);
	if (!d->frag) {
		hb_free(d);
		return NULL;
	}
	d->m_packets = metrics_counter("decode.packets");
	d->m_non_ip = metrics_counter("decode.non_ip");
	d->m_not_tcp_udp = metrics_counter("decode.not_tcp_udp");
	d->m_vlan_skipped = metrics_counter("decode.vlan_tags_skipped");
	d->m_fragments = metrics_counter("decode.fragments");
	for (i = 0; i < MAL_COUNT; i++)
		d->m_malformed[i] = metrics_counter(malformed_names[i]);
	return d;
}

void decoder_free(struct decoder *d)
{
	if (!d)
		return;
	ipfrag_free(d->frag);
	hb_free(d);
}

static enum decode_result malformed(struct decoder *d, enum malformed_reason why)
{
	metric_inc(d->m_malformed[why]);
	return DECODE_MALFORMED;
}

static enum decode_result not_tcp_udp(struct decoder *d)
{
	metric_inc(d->m_not_tcp_udp);
	return DECODE_OTHER;
}

/* ---- L4 ------------------------------------------------------------------ */

static enum decode_result decode_l4(struct decoder *d, uint8_t proto, const uint8_t *p,
				    uint32_t cap, uint32_t wire, struct packet *out)
{
	struct cursor c;
	uint16_t doff_flags, ulen;
	uint32_t hl;

	out->ip_proto = proto;
	cur_init(&c, p, cap);
	switch (proto) {
	case IPP_TCP:
		out->sport = cur_be16(&c);
		out->dport = cur_be16(&c);
		out->seq = cur_be32(&c);
		out->ack = cur_be32(&c);
		doff_flags = cur_be16(&c);
		out->window = cur_be16(&c);
		cur_skip(&c, 4); /* checksum, urgent pointer */
		if (c.err)
			return malformed(d, wire < 20 ? MAL_BAD_TCP_HEADER : MAL_TRUNCATED_IP);
		out->tcp_flags = (uint8_t)(doff_flags & 0xff);
		hl = (uint32_t)(doff_flags >> 12) * 4;
		if (hl < 20 || wire < hl)
			return malformed(d, MAL_BAD_TCP_HEADER);
		if (cap < hl)
			return malformed(d, MAL_TRUNCATED_IP);
		out->payload = p + hl;
		out->payload_len = cap - hl;
		out->payload_wire_len = wire - hl;
		return DECODE_OK;
	case IPP_UDP:
		out->sport = cur_be16(&c);
		out->dport = cur_be16(&c);
		ulen = cur_be16(&c);
		cur_skip(&c, 2); /* checksum */
		if (c.err)
			return malformed(d, wire < 8 ? MAL_BAD_UDP_HEADER : MAL_TRUNCATED_IP);
		if (ulen < 8 || wire < ulen)
			return malformed(d, MAL_BAD_UDP_HEADER);
		if (cap > ulen)
			cap = ulen; /* trailing bytes after the UDP length are not payload */
		out->payload = p + 8;
		out->payload_len = cap - 8;
		out->payload_wire_len = (uint32_t)ulen - 8;
		return DECODE_OK;
	default:
		return not_tcp_udp(d);
	}
}

/* ---- IPv4 ---------------------------------------------------------------- */

static enum decode_result decode_ipv4(struct decoder *d, const uint8_t *p, uint32_t avail,
				      bool snapped, struct packet *out)
{
	struct ipfrag_key key;
	struct cursor c;
	const uint8_t *src, *dst, *data;
	uint16_t total, id, frag;
	uint32_t hl, cap, wire, off, dlen;
	uint8_t vihl, proto;
	bool more;

	cur_init(&c, p, avail);
	vihl = cur_u8(&c);
	cur_skip(&c, 1); /* TOS */
	total = cur_be16(&c);
	id = cur_be16(&c);
	frag = cur_be16(&c);
	cur_skip(&c, 1); /* TTL */
	proto = cur_u8(&c);
	cur_skip(&c, 2); /* checksum */
	src = cur_bytes(&c, 4);
	dst = cur_bytes(&c, 4);
	if (c.err)
		return malformed(d, MAL_TRUNCATED_IP);
	hl = (uint32_t)(vihl & 0x0f) * 4;
	if (vihl >> 4 != 4 || hl < 20 || total < hl)
		return malformed(d, MAL_BAD_IP_HEADER);
	if (!cur_skip(&c, hl - 20)) /* options */
		return malformed(d, MAL_TRUNCATED_IP);
	if (avail < total && !snapped)
		return malformed(d, MAL_TRUNCATED_IP);

	out->src.ver = 4;
	memcpy(out->src.a, src, 4);
	out->dst.ver = 4;
	memcpy(out->dst.a, dst, 4);
	out->ip_proto = proto;

	cap = (avail < total ? avail : total) - hl; /* trims Ethernet padding */
	wire = (uint32_t)total - hl;
	more = frag & 0x2000;
	off = (uint32_t)(frag & 0x1fff) * 8;
	if (!more && off == 0)
		return decode_l4(d, proto, p + hl, cap, wire, out);

	metric_inc(d->m_fragments);
	if (cap < wire)
		return malformed(d,
				 MAL_TRUNCATED_IP); /* a snapped fragment cannot be reassembled */
	memset(&key, 0, sizeof(key));
	key.src = out->src;
	key.dst = out->dst;
	key.id = id;
	key.proto = proto;
	switch (ipfrag_add(d->frag, &key, out->ts, off, p + hl, cap, more, &data, &dlen)) {
	case IPFRAG_STORED:
		return DECODE_FRAGMENT;
	case IPFRAG_DROPPED:
		return DECODE_MALFORMED; /* counted by ipfrag ("ipfrag.<reason>") */
	case IPFRAG_COMPLETE:
		break;
	}
	out->reassembled = true;
	return decode_l4(d, proto, data, dlen, dlen, out);
}

/* ---- IPv6 ---------------------------------------------------------------- */

/* Walk the extension header chain starting at next header `nh` over p[0..cap)
 * (wire bytes per the headers: `wire`), then decode L4. */
static enum decode_result decode_ipv6_chain(struct decoder *d, uint8_t nh, const uint8_t *p,
					    uint32_t cap, uint32_t wire, struct packet *out)
{
	struct ipfrag_key key;
	struct cursor c;
	const uint8_t *data;
	uint32_t hlen, off, id, dlen;
	uint16_t offm;
	uint8_t nnh, len;
	unsigned next = 0;

	for (;;) {
		switch (nh) {
		case IPP_HOPOPTS:
		case IPP_ROUTING:
		case IPP_DSTOPTS:
		case IPP_AH:
			if (++next > DECODE_MAX_EXT_HEADERS)
				return malformed(d, MAL_TOO_MANY_EXT);
			cur_init(&c, p, cap);
			nnh = cur_u8(&c);
			len = cur_u8(&c);
			if (c.err)
				return malformed(d,
						 wire < 2 ? MAL_BAD_IP_HEADER : MAL_TRUNCATED_IP);
			/* AH counts 32-bit words minus 2, the others 8-octet units minus 1 */
			hlen = nh == IPP_AH ? ((uint32_t)len + 2) * 4 : ((uint32_t)len + 1) * 8;
			if (wire < hlen)
				return malformed(d, MAL_BAD_IP_HEADER);
			if (cap < hlen)
				return malformed(d, MAL_TRUNCATED_IP);
			p += hlen;
			cap -= hlen;
			wire -= hlen;
			nh = nnh;
			break;
		case IPP_FRAGMENT:
			if (++next > DECODE_MAX_EXT_HEADERS)
				return malformed(d, MAL_TOO_MANY_EXT);
			cur_init(&c, p, cap);
			nnh = cur_u8(&c);
			cur_skip(&c, 1);
			offm = cur_be16(&c);
			id = cur_be32(&c);
			if (c.err)
				return malformed(d,
						 wire < 8 ? MAL_BAD_IP_HEADER : MAL_TRUNCATED_IP);
			p += 8;
			cap -= 8;
			wire -= 8;
			nh = nnh;
			off = offm & 0xfff8;
			if (off == 0 && !(offm & 1))
				break; /* atomic fragment (RFC 6946): not really fragmented */
			if (out->reassembled)
				return malformed(d, MAL_BAD_IP_HEADER); /* nested fragment header */
			metric_inc(d->m_fragments);
			if (cap < wire)
				return malformed(d, MAL_TRUNCATED_IP);
			memset(&key, 0, sizeof(key));
			key.src = out->src;
			key.dst = out->dst;
			key.id = id;
			key.proto = nnh;
			switch (ipfrag_add(d->frag, &key, out->ts, off, p, cap, offm & 1, &data,
					   &dlen)) {
			case IPFRAG_STORED:
				return DECODE_FRAGMENT;
			case IPFRAG_DROPPED:
				return DECODE_MALFORMED; /* counted by ipfrag */
			case IPFRAG_COMPLETE:
				break;
			}
			out->reassembled = true;
			p = data;
			cap = wire = dlen;
			break;
		case IPP_ESP:
		case IPP_NONE:
			out->ip_proto = nh;
			return not_tcp_udp(d);
		default:
			return decode_l4(d, nh, p, cap, wire, out);
		}
	}
}

static enum decode_result decode_ipv6(struct decoder *d, const uint8_t *p, uint32_t avail,
				      bool snapped, struct packet *out)
{
	struct cursor c;
	const uint8_t *src, *dst;
	uint32_t cap, wire;
	uint16_t plen;
	uint8_t ver, nh;

	cur_init(&c, p, avail);
	ver = cur_peek_u8(&c) >> 4;
	cur_skip(&c, 4); /* version, traffic class, flow label */
	plen = cur_be16(&c);
	nh = cur_u8(&c);
	cur_skip(&c, 1); /* hop limit */
	src = cur_bytes(&c, 16);
	dst = cur_bytes(&c, 16);
	if (c.err)
		return malformed(d, MAL_TRUNCATED_IP);
	if (ver != 6)
		return malformed(d, MAL_BAD_IP_HEADER);
	cap = avail - 40;
	/* payload length 0: a jumbogram or a segmentation-offload frame; use what we have */
	wire = plen ? plen : cap;
	if (cap < wire && !snapped)
		return malformed(d, MAL_TRUNCATED_IP);
	if (cap > wire)
		cap = wire; /* trims Ethernet padding */

	out->src.ver = 6;
	memcpy(out->src.a, src, 16);
	out->dst.ver = 6;
	memcpy(out->dst.a, dst, 16);
	out->ip_proto = nh;
	return decode_ipv6_chain(d, nh, p + 40, cap, wire, out);
}

/* ---- L2 ------------------------------------------------------------------ */

static enum l3_kind ethertype_l3(uint16_t type)
{
	return type == ETH_P_IPV4 ? L3_IPV4 : type == ETH_P_IPV6 ? L3_IPV6 : L3_NONE;
}

/* Skip any VLAN tags following an EtherType of `type`; record up to PKT_MAX_VLANS. */
static uint16_t skip_vlans(struct decoder *d, struct cursor *c, uint16_t type, struct packet *out)
{
	uint16_t tci;

	while (!c->err && (type == ETH_P_8021Q || type == ETH_P_8021AD || type == ETH_P_QINQ)) {
		tci = cur_be16(c);
		type = cur_be16(c);
		if (c->err)
			break;
		if (out->nvlans < PKT_MAX_VLANS)
			out->vlan[out->nvlans++] = tci & 0x0fff;
		else
			metric_inc(d->m_vlan_skipped);
	}
	return type;
}

static enum l3_kind family_l3(uint32_t fam)
{
	switch (fam) {
	case 2:
		return L3_IPV4;
	case 10: /* Linux */
	case 24: /* NetBSD, OpenBSD */
	case 28: /* FreeBSD, DragonFly */
	case 30: /* macOS */
		return L3_IPV6;
	default:
		return L3_NONE;
	}
}

static enum decode_result decode_l2(struct decoder *d, struct cursor *c, struct packet *out,
				    enum l3_kind *l3)
{
	const uint8_t *b;
	uint32_t fam;
	uint8_t ver;

	switch (d->linktype) {
	case LT_EN10MB:
		cur_skip(c, 12); /* dst, src MAC */
		*l3 = ethertype_l3(skip_vlans(d, c, cur_be16(c), out));
		break;
	case LT_LINUX_SLL:
		cur_skip(c, 14);
		*l3 = ethertype_l3(skip_vlans(d, c, cur_be16(c), out));
		break;
	case LT_LINUX_SLL2:
		*l3 = ethertype_l3(cur_be16(c));
		cur_skip(c, 18);
		break;
	case LT_NULL:
		/* host order of the capturing machine: if the value is not a small
		 * number in little-endian, it was written big-endian */
		b = cur_bytes(c, 4);
		if (!b)
			break;
		fam = (uint32_t)b[3] << 24 | (uint32_t)b[2] << 16 | (uint32_t)b[1] << 8 | b[0];
		if (fam & 0xffff0000u)
			fam = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 |
			      b[3];
		*l3 = family_l3(fam);
		break;
	case LT_LOOP:
		*l3 = family_l3(cur_be32(c));
		break;
	case LT_RAW:
	case LT_RAW_BSD:
	case LT_RAW_LINKTYPE:
	case LT_IPV4:
	case LT_IPV6:
		if (cur_left(c) == 0)
			return malformed(d, MAL_TRUNCATED_IP);
		ver = cur_peek_u8(c) >> 4;
		if ((ver != 4 && ver != 6) || (d->linktype == LT_IPV4 && ver != 4) ||
		    (d->linktype == LT_IPV6 && ver != 6))
			return malformed(d, MAL_BAD_IP_HEADER);
		*l3 = ver == 4 ? L3_IPV4 : L3_IPV6;
		break;
	default:
		return malformed(d, MAL_UNSUPPORTED_LINK);
	}
	if (c->err)
		return malformed(d, MAL_TRUNCATED_L2);
	if (*l3 == L3_NONE) {
		metric_inc(d->m_non_ip);
		return DECODE_OTHER;
	}
	return DECODE_OK;
}

enum decode_result decode_packet(struct decoder *d, uint64_t ts_ns, const uint8_t *frame,
				 uint32_t caplen, uint32_t wirelen, const char *iface,
				 struct packet *out)
{
	enum decode_result r;
	enum l3_kind l3 = L3_NONE;
	struct cursor c;
	bool snapped = caplen < wirelen;

	memset(out, 0, sizeof(*out));
	out->ts = ts_ns;
	out->caplen = caplen;
	out->wirelen = wirelen;
	out->iface = iface;
	metric_inc(d->m_packets);

	cur_init(&c, frame, caplen);
	r = decode_l2(d, &c, out, &l3);
	if (r != DECODE_OK)
		return r;
	if (l3 == L3_IPV4)
		return decode_ipv4(d, c.p + c.off, (uint32_t)cur_left(&c), snapped, out);
	return decode_ipv6(d, c.p + c.off, (uint32_t)cur_left(&c), snapped, out);
}
