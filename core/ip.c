/* ip.c — text form of IPv4/IPv6 addresses. */
#include "hostbeat/ip.h"

#include <arpa/inet.h>
#include <errno.h>
#include <sys/socket.h>

size_t hb_ip_format(const struct hb_ip *ip, char *buf)
{
	if (ip->ver != 4 && ip->ver != 6) {
		buf[0] = '\0';
		return 0;
	}
	if (!inet_ntop(ip->ver == 6 ? AF_INET6 : AF_INET, ip->a, buf, HB_IP_STRLEN)) {
		buf[0] = '\0';
		return 0;
	}
	return strlen(buf);
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
