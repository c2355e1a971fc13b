/* community_id.h — Community ID flow hash v1 (corelight/community-id-spec).
 *
 *   input = seed(2,BE) | saddr | daddr | proto(1) | 0x00 | sport(2,BE) | dport(2,BE)
 *   id    = "1:" base64(sha1(input))       (endpoints ordered, see the spec)
 */
#ifndef HOSTBEAT_NET_COMMUNITY_ID_H
#define HOSTBEAT_NET_COMMUNITY_ID_H

#include <stddef.h>
#include <stdint.h>

#include "hostbeat/ip.h"

#define COMMUNITY_ID_LEN 31 /* "1:" + 28 base64 chars + NUL */

/* For ICMP/ICMPv6 pass type as sport and code as dport. Writes a NUL-terminated
 * id into out. Returns 0, or -EINVAL when the address families differ or are unset. */
int community_id_v1(const struct hb_ip *src, const struct hb_ip *dst, uint16_t sport,
		    uint16_t dport, uint8_t ip_proto, uint16_t seed, char out[COMMUNITY_ID_LEN]);

#endif
