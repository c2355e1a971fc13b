/* test_ip.c — core/ip.c: hb_ip_format() writes exactly what inet_ntop() writes (IPv4
 * octets of every length, RFC 5952 zero runs, the v4-mapped and v4-compatible forms),
 * on chosen and on many random addresses, and writes nothing past the text's buffer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "hostbeat/ip.h"

/* hb_ip_format(ip) against inet_ntop(), text and length. */
static void check_same(const struct hb_ip *ip)
{
	char want[HB_IP_STRLEN], got[HB_IP_STRLEN + 8];
	size_t n;

	memset(got, 'x', sizeof(got));
	assert_non_null(inet_ntop(ip->ver == 6 ? AF_INET6 : AF_INET, ip->a, want, sizeof(want)));
	n = hb_ip_format(ip, got);
	assert_string_equal(got, want);
	assert_int_equal(n, strlen(want));
}

static struct hb_ip v6_words(const unsigned w[8])
{
	struct hb_ip ip = {.ver = 6};

	for (unsigned i = 0; i < 8; i++) {
		ip.a[2 * i] = (uint8_t)(w[i] >> 8);
		ip.a[2 * i + 1] = (uint8_t)w[i];
	}
	return ip;
}

static void test_v6_known(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
	    {"::", "::"},
	    {"::1", "::1"},
	    {"1::", "1::"},
	    {"::ffff:1.2.3.4", "::ffff:1.2.3.4"},
	    {"::1.2.3.4", "::1.2.3.4"},
	    {"::ffff:0:1.2.3.4", "::ffff:0:102:304"}, /* not mapped: group 5 is 0 */
	    {"fe80::1", "fe80::1"},
	    {"2001:db8::ff00:42:8329", "2001:db8::ff00:42:8329"},
	    {"2001:0db8:0000:0000:0001:0000:0000:0001", "2001:db8::1:0:0:1"}, /* tie: first */
	    {"2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"}, /* one zero group: no :: */
	    {"1:0:0:2:0:0:0:3", "1:0:0:2::3"},                /* the longer run wins */
	    {"0:0:1:0:0:0:0:0", "0:0:1::"},
	    {"ABCD:EF01:2345:6789:ABCD:EF01:2345:6789", "abcd:ef01:2345:6789:abcd:ef01:2345:6789"},
	    {"::ffff:255.255.255.255", "::ffff:255.255.255.255"},
	    {"::0.0.1.0", "::100"}, /* seven zero groups: not v4-compatible */
	};
	char got[HB_IP_STRLEN];
	struct hb_ip ip;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(hb_ip_parse(cases[i].in, &ip), 0);
		assert_int_equal(ip.ver, 6);
		assert_int_equal(hb_ip_format(&ip, got), strlen(cases[i].out));
		assert_string_equal(got, cases[i].out);
		check_same(&ip);
	}
}

/* Every pattern of zero / non-zero groups, with short and long group values and
 * the 0xffff of v4-mapped addresses: covers every run length, position and tie. */
static void test_v6_all_zero_patterns(void **state)
{
	static const unsigned vals[] = {0x1, 0xa, 0x10, 0xbc, 0x100, 0xdef, 0x1000, 0xffff};
	unsigned w[8];

	(void)state;
	for (unsigned mask = 0; mask < 256; mask++)
		for (unsigned v = 0; v < sizeof(vals) / sizeof(vals[0]); v++) {
			for (unsigned i = 0; i < 8; i++)
				w[i] = mask >> i & 1 ? vals[(v + i) % 8] : 0;
			struct hb_ip ip = v6_words(w);

			check_same(&ip);
		}
}

static void test_v6_random(void **state)
{
	uint64_t x = 0x9e3779b97f4a7c15ULL;
	unsigned w[8];

	(void)state;
	for (unsigned n = 0; n < 200000; n++) {
		for (unsigned i = 0; i < 8; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			/* zero groups often, small values often, the rest anything */
			switch (x >> 60 & 3) {
			case 0:
				w[i] = 0;
				break;
			case 1:
				w[i] = (unsigned)(x & 0xff);
				break;
			case 2:
				w[i] = n & 1 ? 0xffff : 0;
				break;
			default:
				w[i] = (unsigned)(x & 0xffff);
				break;
			}
		}
		struct hb_ip ip = v6_words(w);

		check_same(&ip);
	}
}

static void test_v4(void **state)
{
	struct hb_ip ip = {.ver = 4};
	char got[HB_IP_STRLEN];

	(void)state;
	for (unsigned v = 0; v < 256; v++) {
		ip.a[0] = (uint8_t)v;
		ip.a[1] = (uint8_t)(255 - v);
		ip.a[2] = (uint8_t)(v * 7);
		ip.a[3] = (uint8_t)(v / 3);
		check_same(&ip);
	}
	assert_int_equal(hb_ip_parse("172.17.0.2", &ip), 0);
	assert_int_equal(hb_ip_format(&ip, got), 10);
	assert_string_equal(got, "172.17.0.2");
	memset(ip.a, 0, 4);
	check_same(&ip);
	memset(ip.a, 255, 4);
	check_same(&ip);
}

static void test_v4_known(void **state)
{
	static const char *const cases[] = {
	    "0.0.0.0",     "255.255.255.255", "1.2.3.4",      "10.0.0.10",   "100.99.9.0",
	    "9.10.99.100", "172.17.0.2",      "192.168.1.1",  "127.0.0.1",   "200.250.255.199",
	    "0.0.0.1",     "1.0.0.0",         "99.100.101.9", "224.0.0.251", "8.8.8.8",
	};
	char got[HB_IP_STRLEN];
	struct hb_ip ip;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(hb_ip_parse(cases[i], &ip), 0);
		assert_int_equal(ip.ver, 4);
		assert_int_equal(hb_ip_format(&ip, got), strlen(cases[i]));
		assert_string_equal(got, cases[i]);
		check_same(&ip);
	}
}

static uint64_t xorshift(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/* Every byte value in every position (the others random), then random addresses. */
static void test_v4_random(void **state)
{
	struct hb_ip ip = {.ver = 4};
	uint64_t x = 0x2545f4914f6cdd1dULL;

	(void)state;
	for (unsigned pos = 0; pos < 4; pos++)
		for (unsigned v = 0; v < 256; v++) {
			uint64_t r = xorshift(&x);

			memcpy(ip.a, &r, 4);
			ip.a[pos] = (uint8_t)v;
			check_same(&ip);
		}
	for (unsigned n = 0; n < 500000; n++) {
		uint64_t r = xorshift(&x);

		/* short octets often: 0-9 and 10-99 as well as 100-255 */
		for (unsigned i = 0; i < 4; i++) {
			unsigned b = (unsigned)(r >> (8 * i)) & 0xff;

			switch (r >> (32 + 2 * i) & 3) {
			case 0:
				b %= 10;
				break;
			case 1:
				b %= 100;
				break;
			default:
				break;
			}
			ip.a[i] = (uint8_t)b;
		}
		check_same(&ip);
	}
}

/* ::ffff:a.b.c.d and ::a.b.c.d with random v4 parts, and their near misses. */
static void test_v6_embedded_v4(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
	    {"::ffff:0.0.0.0", "::ffff:0.0.0.0"}, /* groups 6-7 zero too: the first run wins */
	    {"::ffff:0.0.0.1", "::ffff:0.0.0.1"},
	    {"::ffff:10.0.0.10", "::ffff:10.0.0.10"},
	    {"::0.1.0.0", "::0.1.0.0"},               /* v4-compatible: group 6 non-zero */
	    {"::0.0.0.1", "::1"},                     /* seven zero groups */
	    {"::1:ffff:1.2.3.4", "::1:ffff:102:304"}, /* group 4 non-zero: not mapped */
	    {"::fffe:1.2.3.4", "::fffe:102:304"},
	    {"0:0:0:0:1::", "::1:0:0:0"},           /* runs 0-3 and 5-7: the longer one */
	    {"1:0:0:1:0:0:1:1", "1::1:0:0:1:1"},    /* tie of two: the first */
	    {"1:1:0:0:1:0:0:0", "1:1:0:0:1::"},     /* the longer one, at the end */
	    {"0:1:0:1:0:1:0:1", "0:1:0:1:0:1:0:1"}, /* single zero groups stay */
	};
	struct hb_ip ip = {.ver = 6};
	char got[HB_IP_STRLEN];
	uint64_t x = 0x853c49e6748fea9bULL;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(hb_ip_parse(cases[i].in, &ip), 0);
		assert_int_equal(hb_ip_format(&ip, got), strlen(cases[i].out));
		assert_string_equal(got, cases[i].out);
		check_same(&ip);
	}
	for (unsigned n = 0; n < 200000; n++) {
		uint64_t r = xorshift(&x);

		memset(ip.a, 0, 16);
		memcpy(ip.a + 12, &r, 4);
		if (r >> 32 & 1)
			ip.a[12] = 0; /* small v4 parts, down to ::ffff:0.0.x.y */
		if (r >> 33 & 1)
			ip.a[13] = 0;
		switch (r >> 34 & 3) {
		case 0: /* ::a.b.c.d */
			break;
		case 1: /* ::ffff:a.b.c.d */
			ip.a[10] = ip.a[11] = 0xff;
			break;
		case 2: /* a non-zero group before: neither form */
			ip.a[(r >> 36) % 10] = (uint8_t)(r >> 40 | 1);
			ip.a[10] = ip.a[11] = 0xff;
			break;
		default: /* ffff elsewhere */
			ip.a[8] = ip.a[9] = 0xff;
			break;
		}
		check_same(&ip);
	}
}

/* Uniformly random addresses (mostly no zero group at all). */
static void test_v6_uniform(void **state)
{
	struct hb_ip ip = {.ver = 6};
	uint64_t x = 0xda3e39cb94b95bdbULL;

	(void)state;
	for (unsigned n = 0; n < 200000; n++) {
		uint64_t r1 = xorshift(&x), r2 = xorshift(&x);

		memcpy(ip.a, &r1, 8);
		memcpy(ip.a + 8, &r2, 8);
		check_same(&ip);
	}
}

/* The text is written with whole-word copies past its end: they must stay inside
 * INET_ADDRSTRLEN (16) for IPv4 and HB_IP_STRLEN for IPv6. */
static void test_writes_in_bounds(void **state)
{
	static const char *const addrs[] = {
	    "255.255.255.255",
	    "1.1.1.1",
	    "0.0.0.0",
	    "10.100.1.200",
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:f",
	    "f:f:f:f:f:f:f:f",
	    "::ffff:255.255.255.255",
	    "1::",
	    "::",
	    "1234:5678:9abc:def0:1234:5678:9abc:d",
	};
	char buf[HB_IP_STRLEN + 32];
	struct hb_ip ip;
	size_t n, limit;

	(void)state;
	for (size_t i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++) {
		assert_int_equal(hb_ip_parse(addrs[i], &ip), 0);
		memset(buf, 0x5a, sizeof(buf));
		n = hb_ip_format(&ip, buf);
		assert_string_equal(buf, addrs[i]);
		assert_int_equal(n, strlen(addrs[i]));
		limit = ip.ver == 4 ? 16 : HB_IP_STRLEN;
		for (size_t k = limit; k < sizeof(buf); k++)
			assert_int_equal((unsigned char)buf[k], 0x5a);
	}
}

static void test_unset(void **state)
{
	struct hb_ip ip;
	char got[HB_IP_STRLEN] = "junk";

	(void)state;
	memset(&ip, 0, sizeof(ip));
	assert_int_equal(hb_ip_format(&ip, got), 0);
	assert_string_equal(got, "");
	assert_int_equal(hb_ip_parse("not an address", &ip), -EINVAL);
	assert_int_equal(hb_ip_parse("1.2.3", &ip), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_v6_known),   cmocka_unit_test(test_v6_all_zero_patterns),
	    cmocka_unit_test(test_v6_random),  cmocka_unit_test(test_v4),
	    cmocka_unit_test(test_unset),      cmocka_unit_test(test_v4_known),
	    cmocka_unit_test(test_v4_random),  cmocka_unit_test(test_v6_embedded_v4),
	    cmocka_unit_test(test_v6_uniform), cmocka_unit_test(test_writes_in_bounds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
