/* decode.h — L2 → L3 → L4 decoding of one captured frame into a struct packet.
 *
 * Link types: DLT_EN10MB (Ethernet, 802.1Q / 802.1ad / QinQ), DLT_LINUX_SLL,
 * DLT_LINUX_SLL2, DLT_NULL / DLT_LOOP, DLT_RAW. IPv4 (options, fragments →
 * ipfrag.c), IPv6 (extension headers, fragment header → ipfrag.c), TCP, UDP.
 * Every read goes through the cursor; a malformed frame is a counted drop
 * ("decode.<reason>"), never a crash.
 */
#ifndef HOSTBEAT_NET_DECODE_H
#define HOSTBEAT_NET_DECODE_H

#include <stddef.h>
#include <stdint.h>

#include "net/packet.h"

struct decoder;

struct decoder_limits {
	size_t frag_max_datagrams; /* datagrams under reassembly at once */
	uint64_t frag_timeout_ns;
};

/* Returns new decoder, caller frees with decoder_free(); NULL on allocation failure. */
struct decoder *decoder_new(int linktype, const struct decoder_limits *lim);
void decoder_free(struct decoder *d);
/* 0 when the link type is supported, -EPROTONOSUPPORT otherwise. */
int decoder_linktype_supported(int linktype);

enum decode_result {
	DECODE_OK = 0,    /* TCP or UDP packet in *out */
	DECODE_OTHER,     /* valid but not TCP/UDP (ARP, ICMP, ...): ignored, counted */
	DECODE_FRAGMENT,  /* a fragment was stored, datagram not complete yet */
	DECODE_MALFORMED, /* counted by reason */
};

/* Decode one frame. `iface` (borrowed, static for the capture's life) is copied
 * into out->iface. On DECODE_OK, out's pointers are valid until the next call. */
enum decode_result decode_packet(struct decoder *d, uint64_t ts_ns, const uint8_t *frame,
				 uint32_t caplen, uint32_t wirelen, const char *iface,
				 struct packet *out);

#endif
