/* ip.h — an IPv4 or IPv6 address as it appears on the wire (network order). */
#ifndef HOSTBEAT_IP_H
#define HOSTBEAT_IP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct hb_ip {
	uint8_t ver;   /* 4 or 6; 0 = unset */
	uint8_t a[16]; /* v4 in a[0..3] */
};

#define HB_IP_STRLEN 46 /* INET6_ADDRSTRLEN */

static inline size_t hb_ip_len(const struct hb_ip *ip)
{
	return ip->ver == 6 ? 16 : 4;
}

static inline bool hb_ip_eq(const struct hb_ip *x, const struct hb_ip *y)
{
	return x->ver == y->ver && memcmp(x->a, y->a, hb_ip_len(x)) == 0;
}

/* Text form ("172.17.0.2", "fe80::1"); buf must hold HB_IP_STRLEN. Returns length. */
size_t hb_ip_format(const struct hb_ip *ip, char *buf);
/* Parse text form; 0 on success, -EINVAL otherwise. */
int hb_ip_parse(const char *s, struct hb_ip *ip);

#endif
