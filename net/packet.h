/* packet.h — one decoded packet, L2 to L4, as handed from decode to the flow layer.
 *
 * Everything points into the capture buffer (or the fragment reassembly buffer) and
 * is borrowed for the duration of the packet's processing.
 */
#ifndef HOSTBEAT_NET_PACKET_H
#define HOSTBEAT_NET_PACKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hostbeat/ip.h"

#define PKT_MAX_VLANS 2

/* TCP flags (RFC 9293 numbering) */
#define TCPF_FIN 0x01
#define TCPF_SYN 0x02
#define TCPF_RST 0x04
#define TCPF_PSH 0x08
#define TCPF_ACK 0x10

struct packet {
	uint64_t ts; /* ns since epoch */
	uint32_t caplen, wirelen;
	const char *iface; /* capture device, NULL for files */

	uint8_t nvlans;
	uint16_t vlan[PKT_MAX_VLANS]; /* outer first */

	struct hb_ip src, dst;
	uint8_t ip_proto; /* IPPROTO_TCP / UDP / ICMP / ICMPV6 after extension headers */
	bool reassembled; /* payload came from IPv4/IPv6 fragment reassembly */

	uint16_t sport, dport; /* TCP/UDP */
	uint32_t seq, ack;     /* TCP */
	uint8_t tcp_flags;     /* TCPF_* */
	uint16_t window;

	const uint8_t *payload; /* L4 payload (TCP/UDP data), borrowed */
	uint32_t payload_len;   /* bytes present in the capture */
	uint32_t
	    payload_wire_len; /* bytes on the wire per the headers (>= payload_len when snapped) */
};

#endif
