/* ipfrag.h — bounded IPv4 / IPv6 fragment reassembly (private to net/decode.c).
 *
 * Datagrams are keyed by (version, src, dst, id, protocol). At most `max_datagrams`
 * are under reassembly at once; when full the one whose first fragment is oldest is
 * evicted ("ipfrag.evicted"). Datagrams older than `timeout_ns` on the packet clock
 * are dropped ("ipfrag.timeout"). Overlapping fragments reject the whole datagram
 * (RFC 5722 policy, also applied to IPv4; "ipfrag.overlap"); an exact duplicate of
 * bytes already held is ignored ("ipfrag.duplicate"). A reassembled datagram is at
 * most 65535 bytes; a fragment reaching past that is refused ("ipfrag.too_big").
 *
 * Memory: a slot's 64 KiB buffer is allocated the first time the slot is used and
 * reused afterwards, so there is no allocation per fragment once warm.
 */
#ifndef HOSTBEAT_NET_IPFRAG_H
#define HOSTBEAT_NET_IPFRAG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hostbeat/ip.h"

#define IPFRAG_MAX_DATAGRAM 65535u

struct ipfrag;

struct ipfrag_key {
	struct hb_ip src, dst;
	uint32_t id;   /* IPv4: 16-bit identification; IPv6: 32-bit fragment id */
	uint8_t proto; /* IPv4 protocol / IPv6 next header of the fragment header */
};

enum ipfrag_result {
	IPFRAG_STORED,   /* kept; the datagram is not complete yet */
	IPFRAG_COMPLETE, /* *out / *out_len hold the reassembled payload */
	IPFRAG_DROPPED,  /* refused (invalid, overlap, too big, no memory): counted */
};

/* Returns new reassembler, caller frees with ipfrag_free(); NULL on allocation failure.
 * max_datagrams 0 → 64; timeout_ns 0 → 30 s. */
struct ipfrag *ipfrag_new(size_t max_datagrams, uint64_t timeout_ns);
void ipfrag_free(struct ipfrag *f);

/* Add one fragment: `len` bytes of payload (borrowed, copied) at byte offset `offset`
 * of the datagram's payload; `more` = more fragments follow. `ts` is the packet
 * time (ns) and drives the timeout. On IPFRAG_COMPLETE *out points into the
 * reassembler's buffer and stays valid until the next ipfrag_add()/ipfrag_free(). */
enum ipfrag_result ipfrag_add(struct ipfrag *f, const struct ipfrag_key *key, uint64_t ts,
			      uint32_t offset, const uint8_t *data, uint32_t len, bool more,
			      const uint8_t **out, uint32_t *out_len);

/* Datagrams currently under reassembly (tests). */
size_t ipfrag_pending(const struct ipfrag *f);

#endif
