/* portfilter.c — the generated port filter's verdict from a few header bytes.
 *
 * The program libpcap compiles from
 *   (T) or (vlan and ((T) or (vlan and (T))))
 *   T = tcp port A or udp port B or port C ... or (ip[6:2] & 0x3fff != 0) or (ip6[6] == 44)
 * reads, at each VLAN level, the EtherType; for IPv4 the protocol, the fragment
 * field, the header length and the two ports (only when the fragment offset is 0);
 * for IPv6 the next header (no extension headers are followed) and the ports right
 * after the fixed header. A load past caplen makes it reject. Where this file cannot
 * be sure every load the program would make is in bounds, or the packet is SCTP
 * ("port C" matches it and its ports are not looked up here), it answers PF_ASK.
 */
#include <string.h>

#include <pcap/dlt.h>

#include "hostbeat/proto.h"
#include "net/portfilter.h"

#define ETH_P_IPV4 0x0800
#define ETH_P_IPV6 0x86dd
#define IPPROTO_FRAGMENT_HDR 44
#define IP_MF 0x2000
#define IP_OFFSET 0x1fff
#define IPV6_HDR_LEN 40

unsigned port_filter_transports(const struct cfg_proto *p)
{
	if ((p->ops->transports & (PROTO_TCP | PROTO_UDP)) == (PROTO_TCP | PROTO_UDP))
		return PROTO_TCP | PROTO_UDP;
	return p->ops->transports & PROTO_UDP ? PROTO_UDP : PROTO_TCP;
}

static void set_port(uint64_t *set, uint16_t port)
{
	set[port / 64] |= UINT64_C(1) << (port % 64);
}

static bool has_port(const uint64_t *set, uint16_t port)
{
	return set[port / 64] >> (port % 64) & 1;
}

void port_filter_init(struct port_filter *f, const struct hb_config *cfg, int linktype, bool vlan)
{
	const struct cfg_proto *p;
	unsigned tr;
	size_t i, j;

	memset(f, 0, sizeof(*f));
	switch (linktype) {
	case DLT_EN10MB:
		f->type_off = 12;
		f->l3_off = 14;
		f->vlan_levels = vlan ? 2 : 0;
		break;
	case DLT_LINUX_SLL:
		if (vlan)
			return; /* libpcap has no `vlan` for SLL: not the program we know */
		f->type_off = 14;
		f->l3_off = 16;
		break;
	default:
		return;
	}
	for (i = 0; i < cfg->nprotos; i++) {
		p = &cfg->protos[i];
		if (!p->enabled || !p->ops)
			continue;
		tr = port_filter_transports(p);
		for (j = 0; j < p->ports.n; j++) {
			if (tr & PROTO_TCP)
				set_port(f->tcp, p->ports.v[j]);
			if (tr & PROTO_UDP)
				set_port(f->udp, p->ports.v[j]);
		}
	}
	f->on = true;
}

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static bool is_vlan_tpid(uint16_t t)
{
	return t == 0x8100 || t == 0x88a8 || t == 0x9100; /* what libpcap's `vlan` tests */
}

/* tcp/udp ports at l4: in the set of proto (6 or 17)? */
static bool ports_match(const struct port_filter *f, uint8_t proto, const uint8_t *l4)
{
	const uint64_t *set = proto == 6 ? f->tcp : f->udp;

	return has_port(set, be16(l4)) || has_port(set, be16(l4 + 2));
}

static enum pf_verdict check_ipv4(const struct port_filter *f, const uint8_t *p, size_t caplen,
				  size_t l3)
{
	uint16_t frag;
	uint8_t proto;
	size_t ihl;

	if (caplen < l3 + 20)
		return PF_ASK;
	proto = p[l3 + 9];
	frag = be16(p + l3 + 6);
	if (frag & IP_OFFSET)
		return PF_PASS; /* a later fragment: no port terms, the fragment term holds */
	if (proto != 6 && proto != 17) {
		if (proto == 132)
			return PF_ASK; /* SCTP: "port N" terms read its ports */
		return frag & IP_MF ? PF_PASS : PF_DROP;
	}
	ihl = (size_t)(p[l3] & 0xf) * 4;
	if (caplen < l3 + ihl + 4) /* (the program does not check ihl >= 20 either) */
		return PF_ASK;
	if (ports_match(f, proto, p + l3 + ihl))
		return PF_PASS;
	return frag & IP_MF ? PF_PASS : PF_DROP;
}

static enum pf_verdict check_ipv6(const struct port_filter *f, const uint8_t *p, size_t caplen,
				  size_t l3)
{
	uint8_t nh;

	if (caplen < l3 + IPV6_HDR_LEN + 4)
		return PF_ASK;
	nh = p[l3 + 6];
	if (nh == IPPROTO_FRAGMENT_HDR)
		return PF_PASS;
	if (nh != 6 && nh != 17)
		return nh == 132 ? PF_ASK : PF_DROP;
	return ports_match(f, nh, p + l3 + IPV6_HDR_LEN) ? PF_PASS : PF_DROP;
}

enum pf_verdict port_filter_check(const struct port_filter *f, const uint8_t *p, size_t caplen)
{
	size_t toff, l3;
	uint16_t type;
	unsigned level;

	if (!f->on)
		return PF_ASK;
	toff = f->type_off;
	l3 = f->l3_off;
	for (level = 0;; level++) {
		if (caplen < toff + 2)
			return PF_ASK;
		type = be16(p + toff);
		if (type == ETH_P_IPV4)
			return check_ipv4(f, p, caplen, l3);
		if (type == ETH_P_IPV6)
			return check_ipv6(f, p, caplen, l3);
		if (level == f->vlan_levels || !is_vlan_tpid(type))
			return PF_DROP; /* not IP, or a tag deeper than the filter looks */
		toff += 4;
		l3 += 4;
	}
}
