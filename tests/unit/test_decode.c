/* test_decode.c — net/decode.c on hand-built frames: every link type, VLAN/QinQ,
 * IPv4 options and padding, IPv6 extension headers, snapped frames, malformed
 * headers, and every truncation of a frame (run under ASan: never reads past caplen). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hostbeat/metrics.h"
#include "net/decode.h"

#define LT_NULL 0
#define LT_EN10MB 1
#define LT_RAW 12
#define LT_LOOP 108
#define LT_SLL 113
#define LT_IPV4 228
#define LT_SLL2 276

/* ---- frame builder ------------------------------------------------------- */

struct fb {
	uint8_t b[4096];
	size_t n;
};

static void put8(struct fb *f, uint8_t v)
{
	f->b[f->n++] = v;
}

static void put16(struct fb *f, uint16_t v)
{
	put8(f, (uint8_t)(v >> 8));
	put8(f, (uint8_t)v);
}

static void put32(struct fb *f, uint32_t v)
{
	put16(f, (uint16_t)(v >> 16));
	put16(f, (uint16_t)v);
}

static void putn(struct fb *f, const void *p, size_t n)
{
	memcpy(f->b + f->n, p, n);
	f->n += n;
}

static void putfill(struct fb *f, uint8_t c, size_t n)
{
	memset(f->b + f->n, c, n);
	f->n += n;
}

static void eth(struct fb *f, uint16_t type)
{
	static const uint8_t macs[12] = {2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2};

	putn(f, macs, sizeof(macs));
	put16(f, type);
}

/* IPv4 header for `l4len` bytes of L4 data, with `optlen` bytes of options (NOPs). */
static void ipv4(struct fb *f, uint8_t proto, size_t l4len, size_t optlen, uint16_t id,
		 uint16_t frag)
{
	put8(f, (uint8_t)(0x40 | (20 + optlen) / 4));
	put8(f, 0);
	put16(f, (uint16_t)(20 + optlen + l4len));
	put16(f, id);
	put16(f, frag);
	put8(f, 64);
	put8(f, proto);
	put16(f, 0);
	put32(f, 0x0a000001); /* 10.0.0.1 */
	put32(f, 0x0a000002); /* 10.0.0.2 */
	putfill(f, 1, optlen);
}

static const uint8_t v6src[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 1};
static const uint8_t v6dst[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 2};

static void ipv6(struct fb *f, uint8_t nh, size_t plen)
{
	put32(f, 0x60000000);
	put16(f, (uint16_t)plen);
	put8(f, nh);
	put8(f, 64);
	putn(f, v6src, 16);
	putn(f, v6dst, 16);
}

/* An 8-byte generic extension header (hop-by-hop / routing / dest opts: len 0). */
static void ext8(struct fb *f, uint8_t nh)
{
	put8(f, nh);
	put8(f, 0);
	putfill(f, 0, 6); /* six Pad1 options */
}

static void tcp(struct fb *f, uint16_t sp, uint16_t dp, uint32_t seq, uint32_t ack, uint8_t flags,
		size_t optlen)
{
	put16(f, sp);
	put16(f, dp);
	put32(f, seq);
	put32(f, ack);
	put16(f, (uint16_t)(((20 + optlen) / 4) << 12 | flags));
	put16(f, 29200);
	put32(f, 0);
	putfill(f, 1, optlen);
}

static void udp(struct fb *f, uint16_t sp, uint16_t dp, size_t plen)
{
	put16(f, sp);
	put16(f, dp);
	put16(f, (uint16_t)(8 + plen));
	put16(f, 0);
}

static const char http_req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
#define HTTP_LEN (sizeof(http_req) - 1)

/* Ethernet / IPv4 / TCP / HTTP request. */
static void build_eth_tcp(struct fb *f)
{
	f->n = 0;
	eth(f, 0x0800);
	ipv4(f, 6, 20 + HTTP_LEN, 0, 1, 0x4000);
	tcp(f, 40000, 80, 1000, 2000, 0x18, 0);
	putn(f, http_req, HTTP_LEN);
}

static struct decoder *dec(int lt)
{
	struct decoder_limits lim = {.frag_max_datagrams = 4, .frag_timeout_ns = 1000000000ULL};
	struct decoder *d = decoder_new(lt, &lim);

	assert_non_null(d);
	return d;
}

/* Decode from an exact-size heap copy so ASan sees any read past caplen. */
static enum decode_result run(struct decoder *d, const uint8_t *p, size_t caplen, size_t wirelen,
			      struct packet *pkt)
{
	uint8_t *copy = malloc(caplen ? caplen : 1);
	enum decode_result r;

	assert_non_null(copy);
	memcpy(copy, p, caplen);
	r = decode_packet(d, 42, copy, (uint32_t)caplen, (uint32_t)wirelen, "eth9", pkt);
	/* payload must lie inside the frame (or be a reassembly buffer) */
	if (r == DECODE_OK && !pkt->reassembled)
		assert_true(pkt->payload >= copy &&
			    pkt->payload + pkt->payload_len <= copy + caplen);
	free(copy);
	return r;
}

static void check_v4_tuple(const struct packet *p)
{
	static const uint8_t a[4] = {10, 0, 0, 1}, b[4] = {10, 0, 0, 2};

	assert_int_equal(p->src.ver, 4);
	assert_int_equal(p->dst.ver, 4);
	assert_memory_equal(p->src.a, a, 4);
	assert_memory_equal(p->dst.a, b, 4);
}

static int setup(void **state)
{
	(void)state;
	metrics_reset();
	return 0;
}

/* ---- tests --------------------------------------------------------------- */

static void test_eth_ipv4_tcp(void **state)
{
	struct decoder *d = dec(LT_EN10MB);
	struct packet p;
	struct fb f;

	(void)state;
	build_eth_tcp(&f);
	assert_int_equal(decode_packet(d, 77, f.b, (uint32_t)f.n, (uint32_t)f.n, "eth9", &p),
			 DECODE_OK);
	check_v4_tuple(&p);
	assert_int_equal(p.ts, 77);
	assert_string_equal(p.iface, "eth9");
	assert_int_equal(p.caplen, f.n);
	assert_int_equal(p.ip_proto, 6);
	assert_int_equal(p.sport, 40000);
	assert_int_equal(p.dport, 80);
	assert_int_equal(p.seq, 1000);
	assert_int_equal(p.ack, 2000);
	assert_int_equal(p.tcp_flags, TCPF_PSH | TCPF_ACK);
	assert_int_equal(p.window, 29200);
	assert_int_equal(p.nvlans, 0);
	assert_false(p.reassembled);
	assert_int_equal(p.payload_len, HTTP_LEN);
	assert_int_equal(p.payload_wire_len, HTTP_LEN);
	assert_memory_equal(p.payload, http_req, HTTP_LEN);
	assert_int_equal(metrics_get("decode.packets"), 1);
	decoder_free(d);
}

static void test_eth_ipv4_udp(void **state)
{
	struct decoder *d = dec(LT_EN10MB);
	struct packet p;
	struct fb f = {.n = 0};
	static const uint8_t dns[40] = {0x12, 0x34, 1, 0};

	(void)state;
	eth(&f, 0x0800);
	ipv4(&f, 17, 8 + sizeof(dns), 0, 2, 0);
	udp(&f, 5353, 53, sizeof(dns));
	putn(&f, dns, sizeof(dns));
	assert_int_equal(run(d, f.b, f.n, f.n, &p), DECODE_OK);
	check_v4_tuple(&p);
	assert_int_equal(p.ip_proto, 17);
	assert_int_equal(p.sport, 5353);
	assert_int_equal(p.dport, 53);
	assert_int_equal(p.payload_len, sizeof(dns));
	assert_int_equal(p.payload_wire_len, sizeof(dns));
	decoder_free(d);
}

static void test_vlan_qinq(void **state)
{
	struct decoder *d = dec(LT_EN10MB);
	struct packet p;
	struct fb f = {.n = 0};
	static const uint8_t macs[12] = {0};

	(void)state;
	/* one 802.1Q tag, priority bits set (must be masked off) */
	putn(&f, macs, 12);
	put16(&f, 0x8100);
	put16(&f, 0xa000 | 100);
	put16(&f, 0x0800);
	ipv4(&f, 17, 8 + 4, 0, 3, 0);
	udp(&f, 1000, 53, 4);
	put32(&f, 0xdeadbeef);
	assert_int_equal(run(d, f.b, f.n, f.n, &p), DECODE_OK);
	assert_int_equal(p.nvlans, 1);
	assert_int_equal(p.vlan[0], 100);
	assert_int_equal(p.payload_len, 4);

	/* 802.1ad outer 10, 802.1Q inner 20 */
	f.n = 0;
	putn(&f, macs, 12);
	put16(&f, 0x88a8);
	put16(&f, 10);
	put16(&f, 0x8100);
	put16(&f, 20);
	put16(&f, 0x0800);
	ipv4(&f, 17, 8, 0, 3, 0);
	udp(&f, 1000, 53, 0);
	assert_int_equal(run(d, f.b, f.n, f.n, &p), DECODE_OK);
	assert_int_equal(p.nvlans, 2);
	assert_int_equal(p.vlan[0], 10);
	assert_int_equal(p.vlan[1], 20);
	assert_int_equal(p.payload_len, 0);

	/* three tags (0x9100 outer): two kept, one skipped and counted */
	f.n = 0;
	putn(&f, macs, 12);
	put16(&f, 0x9100);
	put16(&f, 1);
	put16(&f, 0x88a8);
	put16(&f, 2);
	put16(&f, 0x8100);
	put16(&f, 3);
	put16(&f, 0x0800);
	ipv4(&f, 6, 20, 0, 3, 0);
	tcp(&f, 1, 2, 3, 4, 0x02, 0);
	assert_int_equal(run(d, f.b, f.n, f.n, &p), DECODE_OK);
	assert_int_equal(p.nvlans, 2);
	assert_int_equal(p.vlan[0], 1);
	assert_int_equal(p.vlan[1], 2);
	assert_int_equal(p.tcp_flags, TCPF_SYN);
	assert_int_equal(metrics_get("decode.vlan_tags_skipped"), 1);
	decoder_free(d);
}

static void test_sll(void **state)
{
	struct decoder *d = dec(LT_SLL);
	struct packet p;
	struct fb f = {.n = 0};

	(void)state;
	put16(&f, 0); /* packet type: to us */
	put16(&f, 1); /* ARPHRD_ETHER */
	put16(&f, 6); /* address length */
	putfill(&f, 0xaa, 8);
	put16(&f, 0x0800);
	ipv4(&f, 17, 8 + 3, 0, 1, 0);
	udp(&f, 33000, 53, 3);
	putn(&f, "abc", 3);
	assert_int_equal(run(d, f.b, f.n, f.n, &p), DECODE_OK);
	check_v4_tuple(&p);
	assert_int_equal(p.dport, 53);
	assert_int_equal(p.payload_len, 3);
	assert_memory_equal(p.payload, "abc", 3);

	/* SLL carrying ARP */
	f.n = 14;
	put16(&f, 0x0806);
	putfill(&f, 0, 28);
	assert_int_equal(run(d, f.b, f.n, f.n, &p), DECODE_OTHER);
	assert_int_equal(metrics_get("decode.non_ip"), 1);
	decoder_free(d);
}

static void test_sll2(void **state)
{
	struct decoder *d = dec(LT_SLL2);
	struct packet p;
	struct fb f = {.n = 0};

	(void)state;
	put16(&f, 0x86dd); /* protocol */
	put16(&f, 0);      /* reserved */
	put32(&f, 7);      /* ifindex */
	put16(&f, 1);      /* ARPHRD_ETHER */
	put8(&f, 4);       /* outgoing */
	put8(&f, 6);
	putfill(&f, 0xbb, 8);
	assert_int_equal(f.n, 20);
	ipv6(&f, 6, 20 + 5);
	tcp(&f, 443, 50000, 9, 10, 0x11, 0);
	putn(&f, "hello", 5);
	assert_int_equal(run(d, f.b, f.n, f.n, &p), DECODE_OK);
	assert_int_equal(p.src.ver, 6);
	assert_memory_equal(p.src.a, v6src, 16);
	assert_memory_equal(p.dst.a, v6dst, 16);
	assert_int_equal(p.sport, 443);
	assert_int_equal(p.tcp_flags, TCPF_FIN | TCPF_ACK);
	assert_int_equal(p.payload_len, 5);
	decoder_free(d);
}

static void build_null(struct fb *f, const uint8_t fam[4], bool v6)
{
	f->n = 0;
	putn(f, fam, 4);
	if (v6)
		ipv6(f, 17, 8 + 2);
	else
		ipv4(f, 17, 8 + 2, 0, 1, 0);
	udp(f, 1, 53, 2);
	put16(f, 0xabcd);
}

static void test_null_loop(void **state)
{
	static const uint8_t le2[4] = {2, 0, 0, 0}, be2[4] = {0, 0, 0, 2};
	static const uint8_t le10[4] = {10, 0, 0, 0}, be30[4] = {0, 0, 0, 30},
			     le24[4] = {24, 0, 0, 0}, be28[4] = {0, 0, 0, 28};
	static const uint8_t le99[4] = {99, 0, 0, 0};
	struct decoder *d = dec(LT_NULL), *l = dec(LT_LOOP);
	struct packet p;
	struct fb f;

	(void)state;
	build_null(&f, le2, false);
	assert_int_equal(run(d, f.b, f.n, f.n, &p), DECODE_OK);
	assert_int_equal(p.src.ver, 4);
	build_null(&f, be2, false);
	assert_int_equal(run(d, f.b, f.n, f.n, &p), DECODE_OK);
	assert_int_equal(p.payload_len, 2);
	build_null(&f, le10, true);
	assert_int_equal(run(d, f.b, f.n, f.n, &p), DECODE_OK);
	assert_int_equal(p.src.ver, 6);
	build_null(&f, be30, true);
	assert_int_equal(run(d, f.b, f.n, f.n, &p), DECODE_OK);
	build_null(&f, le24, true);
	assert_int_equal(run(d, f.b, f.n, f.n, &p), DECODE_OK);
	build_null(&f, be28, true);
	assert_int_equal(run(d, f.b, f.n, f.n, &p), DECODE_OK);
	build_null(&f, le99, false);
	assert_int_equal(run(d, f.b, f.n, f.n, &p), DECODE_OTHER);
	assert_int_equal(metrics_get("decode.non_ip"), 1);

	/* LOOP is always network order */
	build_null(&f, be2, false);
	assert_int_equal(run(l, f.b, f.n, f.n, &p), DECODE_OK);
	build_null(&f, le2, false);
	assert_int_equal(run(l, f.b, f.n, f.n, &p), DECODE_OTHER);
	decoder_free(d);
	decoder_free(l);
}

static void test_raw(void **state)
{
	struct decoder *raw = dec(LT_RAW), *raw101 = dec(101), *v4only = dec(LT_IPV4);
	struct packet p;
	struct fb f = {.n = 0};

	(void)state;
	ipv4(&f, 17, 8, 0, 1, 0);
	udp(&f, 9, 53, 0);
	assert_int_equal(run(raw, f.b, f.n, f.n, &p), DECODE_OK);
	assert_int_equal(run(raw101, f.b, f.n, f.n, &p), DECODE_OK);
	assert_int_equal(run(v4only, f.b, f.n, f.n, &p), DECODE_OK);
	f.n = 0;
	ipv6(&f, 17, 8);
	udp(&f, 9, 53, 0);
	assert_int_equal(run(raw, f.b, f.n, f.n, &p), DECODE_OK);
	assert_int_equal(p.src.ver, 6);
	assert_int_equal(run(v4only, f.b, f.n, f.n, &p), DECODE_MALFORMED);
	assert_int_equal(metrics_get("decode.malformed.bad_ip_header"), 1);
	decoder_free(raw);
	decoder_free(raw101);
	decoder_free(v4only);
}

static void test_ipv6_ext_headers(void **state)
{
	struct decoder *d = dec(LT_EN10MB);
	struct packet p;
	struct fb f = {.n = 0};

	(void)state;
	/* hop-by-hop → destination options → atomic fragment header → UDP */
	eth(&f, 0x86dd);
	ipv6(&f, 0, 8 + 8 + 8 + 8 + 6);
	ext8(&f, 60);
	ext8(&f, 44);
	put8(&f, 17); /* fragment header: next = UDP, offset 0, M = 0 */
	put8(&f, 0);
	put16(&f, 0);
	put32(&f, 0x1234);
	udp(&f, 7000, 53, 6);
	putn(&f, "query!", 6);
	assert_int_equal(run(d, f.b, f.n, f.n, &p), DECODE_OK);
	assert_int_equal(p.ip_proto, 17);
	assert_int_equal(p.dport, 53);
	assert_int_equal(p.payload_len, 6);
	assert_memory_equal(p.payload, "query!", 6);
	assert_false(p.reassembled);

	/* AH (payload len 4 → (4+2)*4 = 24 bytes) then TCP */
	f.n = 0;
	eth(&f, 0x86dd);
	ipv6(&f, 51, 24 + 20);
	put8(&f, 6);
	put8(&f, 4);
	putfill(&f, 0, 22);
	tcp(&f, 1, 2, 0, 0, 0x02, 0);
	assert_int_equal(run(d, f.b, f.n, f.n, &p), DECODE_OK);
	assert_int_equal(p.ip_proto, 6);
	assert_int_equal(p.payload_len, 0);

	/* ESP: not decodable */
	f.n = 0;
	eth(&f, 0x86dd);
	ipv6(&f, 50, 16);
	putfill(&f, 0, 16);
	assert_int_equal(run(d, f.b, f.n, f.n, &p), DECODE_OTHER);
	assert_int_equal(p.ip_proto, 50);
	assert_int_equal(metrics_get("decode.not_tcp_udp"), 1);
	decoder_free(d);
}

/* Two real fragments behind hop-by-hop + dest options, the second fragment first. */
static void test_ipv6_fragments(void **state)
{
	struct decoder *d = dec(LT_EN10MB);
	struct packet p;
	struct fb f1 = {.n = 0}, f2 = {.n = 0};
	uint8_t body[8 + 100];
	size_t i;

	(void)state;
	/* fragmentable part: UDP header + 100 payload bytes = 108 bytes; split 56 + 52 */
	body[0] = 0x1f;
	body[1] = 0x40; /* sport 8000 */
	body[2] = 0;
	body[3] = 53;
	body[4] = 0;
	body[5] = 108;
	body[6] = body[7] = 0;
	for (i = 8; i < sizeof(body); i++)
		body[i] = (uint8_t)i;

	eth(&f1, 0x86dd);
	ipv6(&f1, 0, 8 + 8 + 8 + 56);
	ext8(&f1, 60);
	ext8(&f1, 44);
	put8(&f1, 17);
	put8(&f1, 0);
	put16(&f1, 0 | 1); /* offset 0, M */
	put32(&f1, 0xabcdef01);
	putn(&f1, body, 56);

	eth(&f2, 0x86dd);
	ipv6(&f2, 44, 8 + 52);
	put8(&f2, 17);
	put8(&f2, 0);
	put16(&f2, 56); /* offset 56 (7 units << 3), M = 0 */
	put32(&f2, 0xabcdef01);
	putn(&f2, body + 56, 52);

	assert_int_equal(run(d, f2.b, f2.n, f2.n, &p), DECODE_FRAGMENT);
	assert_int_equal(run(d, f1.b, f1.n, f1.n, &p), DECODE_OK);
	assert_true(p.reassembled);
	assert_int_equal(p.ip_proto, 17);
	assert_int_equal(p.sport, 8000);
	assert_int_equal(p.dport, 53);
	assert_int_equal(p.payload_len, 100);
	assert_int_equal(p.payload_wire_len, 100);
	assert_memory_equal(p.payload, body + 8, 100);
	assert_int_equal(metrics_get("decode.fragments"), 2);
	assert_int_equal(metrics_get("ipfrag.reassembled"), 1);
	decoder_free(d);
}

static void test_too_many_ext_headers(void **state)
{
	struct decoder *d = dec(LT_EN10MB);
	struct packet p;
	struct fb f = {.n = 0};
	int i;

	(void)state;
	eth(&f, 0x86dd);
	ipv6(&f, 60, 9 * 8 + 8);
	for (i = 0; i < 9; i++)
		ext8(&f, i < 8 ? 60 : 17);
	udp(&f, 1, 2, 0);
	assert_int_equal(run(d, f.b, f.n, f.n, &p), DECODE_MALFORMED);
	assert_int_equal(metrics_get("decode.malformed.too_many_ext_headers"), 1);

	/* exactly 8 is fine */
	f.n = 0;
	eth(&f, 0x86dd);
	ipv6(&f, 60, 8 * 8 + 8);
	for (i = 0; i < 8; i++)
		ext8(&f, i < 7 ? 60 : 17);
	udp(&f, 1, 2, 0);
	assert_int_equal(run(d, f.b, f.n, f.n, &p), DECODE_OK);
	decoder_free(d);
}

static void test_ipv4_options(void **state)
{
	struct decoder *d = dec(LT_EN10MB);
	struct packet p;
	struct fb f = {.n = 0};

	(void)state;
	eth(&f, 0x0800);
	ipv4(&f, 6, 20 + 12 + HTTP_LEN, 12, 5, 0); /* ihl 8 */
	tcp(&f, 50000, 8080, 1, 2, 0x18, 12);      /* doff 8 (TCP options too) */
	putn(&f, http_req, HTTP_LEN);
	assert_int_equal(run(d, f.b, f.n, f.n, &p), DECODE_OK);
	assert_int_equal(p.dport, 8080);
	assert_int_equal(p.payload_len, HTTP_LEN);
	assert_memory_equal(p.payload, http_req, HTTP_LEN);
	decoder_free(d);
}

static void test_eth_padding_trimmed(void **state)
{
	struct decoder *d = dec(LT_EN10MB);
	struct packet p;
	struct fb f = {.n = 0};

	(void)state;
	/* 14 + 20 + 8 + 2 = 44 bytes, padded to the 60-byte Ethernet minimum */
	eth(&f, 0x0800);
	ipv4(&f, 17, 8 + 2, 0, 1, 0);
	udp(&f, 1, 53, 2);
	put16(&f, 0x4142);
	putfill(&f, 0xee, 60 - f.n);
	assert_int_equal(run(d, f.b, f.n, f.n, &p), DECODE_OK);
	assert_int_equal(p.payload_len, 2);
	assert_int_equal(p.payload_wire_len, 2);

	/* bare ACK padded: no payload */
	f.n = 0;
	eth(&f, 0x0800);
	ipv4(&f, 6, 20, 0, 1, 0);
	tcp(&f, 80, 40000, 5, 6, 0x10, 0);
	putfill(&f, 0, 60 - f.n);
	assert_int_equal(run(d, f.b, f.n, f.n, &p), DECODE_OK);
	assert_int_equal(p.payload_len, 0);
	assert_int_equal(p.payload_wire_len, 0);

	/* UDP length shorter than the IP payload: trimmed to the UDP length */
	f.n = 0;
	eth(&f, 0x0800);
	ipv4(&f, 17, 8 + 10, 0, 1, 0);
	udp(&f, 1, 53, 4);
	putfill(&f, 0x55, 10);
	assert_int_equal(run(d, f.b, f.n, f.n, &p), DECODE_OK);
	assert_int_equal(p.payload_len, 4);
	assert_int_equal(p.payload_wire_len, 4);
	decoder_free(d);
}

static void test_snapped(void **state)
{
	struct decoder *d = dec(LT_EN10MB);
	struct packet p;
	struct fb f = {.n = 0};

	(void)state;
	eth(&f, 0x0800);
	ipv4(&f, 6, 20 + 1000, 0, 1, 0);
	tcp(&f, 80, 40000, 5, 6, 0x18, 0);
	putfill(&f, 'x', 1000);
	assert_int_equal(run(d, f.b, 100, f.n, &p), DECODE_OK);
	assert_int_equal(p.caplen, 100);
	assert_int_equal(p.wirelen, f.n);
	assert_int_equal(p.payload_len, 100 - 54);
	assert_int_equal(p.payload_wire_len, 1000);
	/* the same frame, complete on the wire but shorter than its IP length: malformed */
	assert_int_equal(run(d, f.b, 100, 100, &p), DECODE_MALFORMED);
	assert_int_equal(metrics_get("decode.malformed.truncated_ip"), 1);
	decoder_free(d);
}

static void test_bad_headers(void **state)
{
	struct decoder *d = dec(LT_EN10MB);
	struct packet p;
	struct fb f;

	(void)state;
	build_eth_tcp(&f);
	f.b[14] = 0x55; /* version 5 */
	assert_int_equal(run(d, f.b, f.n, f.n, &p), DECODE_MALFORMED);
	build_eth_tcp(&f);
	f.b[14] = 0x44; /* IHL 4 */
	assert_int_equal(run(d, f.b, f.n, f.n, &p), DECODE_MALFORMED);
	build_eth_tcp(&f);
	f.b[16] = 0;
	f.b[17] = 10; /* total length < header */
	assert_int_equal(run(d, f.b, f.n, f.n, &p), DECODE_MALFORMED);
	assert_int_equal(metrics_get("decode.malformed.bad_ip_header"), 3);

	build_eth_tcp(&f);
	f.b[14 + 20 + 12] = 0x40; /* data offset 4 */
	assert_int_equal(run(d, f.b, f.n, f.n, &p), DECODE_MALFORMED);
	build_eth_tcp(&f);
	f.b[14 + 20 + 12] = 0xf0; /* data offset 15 = 60 bytes > segment */
	assert_int_equal(run(d, f.b, f.n, f.n, &p), DECODE_MALFORMED);
	assert_int_equal(metrics_get("decode.malformed.bad_tcp_header"), 2);

	f.n = 0;
	eth(&f, 0x0800);
	ipv4(&f, 17, 8 + 4, 0, 1, 0);
	udp(&f, 1, 53, 4);
	put32(&f, 0);
	f.b[14 + 20 + 5] = 7; /* UDP length 7 < 8 */
	assert_int_equal(run(d, f.b, f.n, f.n, &p), DECODE_MALFORMED);
	f.b[14 + 20 + 5] = 13; /* UDP length 13 > 12 available per IP */
	assert_int_equal(run(d, f.b, f.n, f.n, &p), DECODE_MALFORMED);
	assert_int_equal(metrics_get("decode.malformed.bad_udp_header"), 2);

	/* ICMP: valid but not TCP/UDP; the tuple is still filled */
	f.n = 0;
	eth(&f, 0x0800);
	ipv4(&f, 1, 8, 0, 1, 0);
	put32(&f, 0x08000000);
	put32(&f, 0);
	assert_int_equal(run(d, f.b, f.n, f.n, &p), DECODE_OTHER);
	assert_int_equal(p.ip_proto, 1);
	check_v4_tuple(&p);
	assert_int_equal(metrics_get("decode.not_tcp_udp"), 1);

	/* ARP */
	f.n = 0;
	eth(&f, 0x0806);
	putfill(&f, 0, 28);
	assert_int_equal(run(d, f.b, f.n, f.n, &p), DECODE_OTHER);
	assert_int_equal(metrics_get("decode.non_ip"), 1);
	decoder_free(d);
}

static void test_unsupported_link(void **state)
{
	struct decoder *d = dec(147); /* LINKTYPE_USER0 */
	struct packet p;
	struct fb f;

	(void)state;
	assert_int_equal(decoder_linktype_supported(147), -EPROTONOSUPPORT);
	assert_int_equal(decoder_linktype_supported(LT_EN10MB), 0);
	assert_int_equal(decoder_linktype_supported(LT_SLL2), 0);
	build_eth_tcp(&f);
	assert_int_equal(run(d, f.b, f.n, f.n, &p), DECODE_MALFORMED);
	assert_int_equal(metrics_get("decode.malformed.unsupported_link"), 1);
	decoder_free(d);
	decoder_free(NULL);
}

/* Every prefix of a frame, as a complete (short) frame and as a snapped one. */
static void truncate_everywhere(int lt, const struct fb *f, size_t hdrlen)
{
	struct decoder *d = dec(lt);
	enum decode_result r;
	struct packet p;
	size_t i;

	for (i = 0; i < f->n; i++) {
		r = run(d, f->b, i, i, &p);
		if (r != DECODE_MALFORMED && r != DECODE_OTHER)
			fail_msg("linktype %d cut at %zu/%zu: result %d", lt, i, f->n, r);
		r = run(d, f->b, i, f->n, &p);
		if (i < hdrlen) {
			if (r != DECODE_MALFORMED && r != DECODE_OTHER)
				fail_msg("linktype %d snapped at %zu: result %d", lt, i, r);
		} else {
			assert_int_equal(r, DECODE_OK);
			assert_int_equal(p.payload_len, i - hdrlen);
		}
	}
	assert_int_equal(run(d, f->b, f->n, f->n, &p), DECODE_OK);
	decoder_free(d);
}

static void test_truncated_everywhere(void **state)
{
	struct fb f = {.n = 0};
	int i;

	(void)state;
	build_eth_tcp(&f);
	truncate_everywhere(LT_EN10MB, &f, 14 + 20 + 20);

	f.n = 0;
	eth(&f, 0x88a8);
	put16(&f, 5);
	put16(&f, 0x8100);
	put16(&f, 6);
	put16(&f, 0x0800);
	ipv4(&f, 17, 8 + 16, 8, 1, 0);
	udp(&f, 1, 53, 16);
	putfill(&f, 'q', 16); /* eth() wrote the outer TPID where the EtherType goes */
	truncate_everywhere(LT_EN10MB, &f, 14 + 8 + 28 + 8);

	f.n = 0;
	eth(&f, 0x86dd);
	ipv6(&f, 0, 8 + 8 + 8 + 20 + 10);
	ext8(&f, 43);
	ext8(&f, 60);
	put8(&f, 6);
	put8(&f, 0);
	putfill(&f, 0, 6);
	tcp(&f, 1, 2, 3, 4, 0x18, 0);
	putfill(&f, 'z', 10);
	truncate_everywhere(LT_EN10MB, &f, 14 + 40 + 24 + 20);

	f.n = 0;
	put16(&f, 0x0800);
	put16(&f, 0);
	put32(&f, 1);
	put16(&f, 1);
	put8(&f, 0);
	put8(&f, 6);
	putfill(&f, 0, 8);
	ipv4(&f, 17, 8 + 5, 0, 1, 0);
	udp(&f, 1, 53, 5);
	putn(&f, "hello", 5);
	truncate_everywhere(LT_SLL2, &f, 20 + 28);

	for (i = 0; i < 2; i++) { /* both byte orders of the family */
		static const uint8_t fams[2][4] = {{2, 0, 0, 0}, {0, 0, 0, 2}};
		build_null(&f, fams[i], false);
		truncate_everywhere(LT_NULL, &f, 4 + 28);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_eth_ipv4_tcp, setup),
	    cmocka_unit_test_setup(test_eth_ipv4_udp, setup),
	    cmocka_unit_test_setup(test_vlan_qinq, setup),
	    cmocka_unit_test_setup(test_sll, setup),
	    cmocka_unit_test_setup(test_sll2, setup),
	    cmocka_unit_test_setup(test_null_loop, setup),
	    cmocka_unit_test_setup(test_raw, setup),
	    cmocka_unit_test_setup(test_ipv6_ext_headers, setup),
	    cmocka_unit_test_setup(test_ipv6_fragments, setup),
	    cmocka_unit_test_setup(test_too_many_ext_headers, setup),
	    cmocka_unit_test_setup(test_ipv4_options, setup),
	    cmocka_unit_test_setup(test_eth_padding_trimmed, setup),
	    cmocka_unit_test_setup(test_snapped, setup),
	    cmocka_unit_test_setup(test_bad_headers, setup),
	    cmocka_unit_test_setup(test_unsupported_link, setup),
	    cmocka_unit_test_setup(test_truncated_everywhere, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
