/* portfilter.h — the verdict of the generated port filter, without running it.
 *
 * File replay applies the BPF filter to every packet in user space
 * (pcap_offline_filter, an interpreter; ~350 instructions a packet for eight
 * protocols with two VLAN levels). When the filter is the one capture.c generates
 * from the protocol ports, most packets can be judged from a few header bytes: an
 * IPv4 or IPv6 TCP/UDP packet, at most two VLAN tags, ports in bounds. For those the
 * answer is exactly the program's: PF_PASS or PF_DROP. Anything else (SCTP, IPv4
 * options read past the capture, three tags, other link types) is PF_ASK: run BPF.
 *
 * Exactness rests on the generated program's shape (see build_port_filter() in
 * capture.c) and on libpcap's rule that a load past caplen rejects the packet; a
 * unit test and a libFuzzer harness check every verdict against pcap_offline_filter.
 */
#ifndef HOSTBEAT_NET_PORTFILTER_H
#define HOSTBEAT_NET_PORTFILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hostbeat/config.h"

enum pf_verdict { PF_ASK = 0, PF_PASS, PF_DROP };

struct port_filter {
	uint64_t tcp[65536 / 64]; /* ports the filter passes for TCP */
	uint64_t udp[65536 / 64]; /* ... for UDP */
	uint16_t l3_off;          /* where the network header starts */
	uint16_t type_off;        /* where the EtherType is */
	uint8_t vlan_levels;      /* tags the filter looks through (0..2) */
	bool on;                  /* false: every packet is PF_ASK */
};

/* The transports the generated filter names for protocol p: PROTO_TCP, PROTO_UDP or
 * both (then the term is "port N", which also matches SCTP). */
unsigned port_filter_transports(const struct cfg_proto *p);

/* Set f up for the filter generated from cfg on linktype (DLT_*); vlan says whether
 * the VLAN-nesting form was compiled. f->on is false when the link type is not one
 * this file knows (every packet is then PF_ASK). */
void port_filter_init(struct port_filter *f, const struct hb_config *cfg, int linktype, bool vlan);

/* The filter's verdict on a packet of caplen captured bytes, or PF_ASK. */
enum pf_verdict port_filter_check(const struct port_filter *f, const uint8_t *p, size_t caplen);

#endif
