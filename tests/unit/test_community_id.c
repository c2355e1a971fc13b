/* test_community_id.c — SHA-1 (FIPS 180-4 vectors), Base64 (RFC 4648 §10) and
 * Community ID v1 (community-id-spec baseline + Packetbeat golden hashes). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "hostbeat/base64.h"
#include "hostbeat/sha1.h"
#include "net/community_id.h"

static void hex(const uint8_t *d, size_t n, char *out)
{
	size_t i;

	for (i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", d[i]);
}

static void check_sha1(const void *msg, size_t len, const char *want)
{
	uint8_t dg[SHA1_DIGEST_LEN];
	char h[41];

	sha1(msg, len, dg);
	hex(dg, sizeof(dg), h);
	assert_string_equal(h, want);
}

static void test_sha1_fips(void **state)
{
	(void)state;
	check_sha1("abc", 3, "a9993e364706816aba3e25717850c26c9cd0d89d");
	check_sha1("", 0, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
	check_sha1("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56,
		   "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
	check_sha1("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnop"
		   "jklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
		   112, "a49b2446a02c645bf419f995b67091253a04a259");
}

static void test_sha1_million_a(void **state)
{
	struct sha1_ctx c;
	uint8_t chunk[1000], dg[SHA1_DIGEST_LEN];
	char h[41];
	int i;

	(void)state;
	memset(chunk, 'a', sizeof(chunk));
	sha1_init(&c);
	/* uneven update sizes exercise the partial-block path */
	sha1_update(&c, chunk, 7);
	for (i = 0; i < 999; i++)
		sha1_update(&c, chunk, 1000);
	sha1_update(&c, chunk, 993);
	sha1_final(&c, dg);
	hex(dg, sizeof(dg), h);
	assert_string_equal(h, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
}

static void test_base64(void **state)
{
	static const char *const v[][2] = {
	    {"", ""},
	    {"f", "Zg=="},
	    {"fo", "Zm8="},
	    {"foo", "Zm9v"},
	    {"foob", "Zm9vYg=="},
	    {"fooba", "Zm9vYmE="},
	    {"foobar", "Zm9vYmFy"},
	};
	char out[16];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		assert_int_equal(base64_encode(v[i][0], strlen(v[i][0]), out, sizeof(out)),
				 strlen(v[i][1]));
		assert_string_equal(out, v[i][1]);
	}
	/* exactly enough room, then one byte short */
	assert_int_equal(base64_encode("foobar", 6, out, 9), 8);
	assert_int_equal(base64_encode("foobar", 6, out, 8), 0);
	assert_string_equal(out, "");
	/* all 64 alphabet characters, including + and / */
	{
		const uint8_t bin[] = {0xfb, 0xff, 0xbf};
		assert_int_equal(base64_encode(bin, 3, out, sizeof(out)), 4);
		assert_string_equal(out, "+/+/");
	}
}

struct cid_vec {
	const char *src, *dst;
	uint16_t sport, dport;
	uint8_t proto;
	const char *seed0, *seed1; /* seed1 NULL = not given */
};

/* ecosystem.md §1.6 (community-id-spec baseline/README.md) */
static const struct cid_vec cid_vecs[] = {
    {"1.2.3.4", "5.6.7.8", 1122, 3344, 6,
     "1:wCb3OG7yAFWelaUydu0D+125CLM=", "1:HhA1B+6CoLbiKPEs5nhNYN4XWfk="},
    {"5.6.7.8", "1.2.3.4", 3344, 1122, 6,
     "1:wCb3OG7yAFWelaUydu0D+125CLM=", "1:HhA1B+6CoLbiKPEs5nhNYN4XWfk="},
    {"1.2.3.4", "5.6.7.8", 1122, 3344, 17,
     "1:0Mu9InQx6z4ZiCZM/7HXi2WMhOg=", "1:OShq+iKDAMVouh/4bMxB9Sz4amw="},
    {"1.2.3.4", "5.6.7.8", 1122, 3344, 132,
     "1:EKt4MsxuyaE6mL+hmrEkQ9csDD8=", "1:uitchpn5MMGAQKBJh7bIr/bAr7s="},
    {"1.2.3.4", "5.6.7.8", 8, 0, 1,
     "1:crodRHL2FEsHjbv3UkRrfbs4bZ0=", "1:9pr4ZGTICiuZoIh90RRYE2RyXpU="},
    {"5.6.7.8", "1.2.3.4", 0, 0, 1,
     "1:crodRHL2FEsHjbv3UkRrfbs4bZ0=", "1:9pr4ZGTICiuZoIh90RRYE2RyXpU="},
    {"1.2.3.4", "5.6.7.8", 11, 0, 1,
     "1:f/YiSyWqczrTgfUCZlBUnvHRcPk=", "1:1DD7cWGC/Yg91YGsQeni8du3pIA="},
    {"fe80:0001:0203:0405:0607:0809:0A0B:0C0D", "fe80:1011:1213:1415:1617:1819:1A1B:1C1D", 128, 0,
     58, "1:0bf7hyMJUwt3fMED7z8LIfRpBeo=", "1:IO27GQzPuCtNnwFvjWALMHu5tJE="},
    {"fe80:1011:1213:1415:1617:1819:1A1B:1C1D", "fe80:0001:0203:0405:0607:0809:0A0B:0C0D", 129, 0,
     58, "1:0bf7hyMJUwt3fMED7z8LIfRpBeo=", "1:IO27GQzPuCtNnwFvjWALMHu5tJE="},
    {"fe80:0001:0203:0405:0607:0809:0A0B:0C0D", "fe80:1011:1213:1415:1617:1819:1A1B:1C1D", 146, 0,
     58, "1:fYC8+pz24E+EhANP1EZhpX0Dw10=", "1:Cv4IKJe56BNkF0MBW2YxQ3Nwc3s="},
    {"1.2.3.4", "5.6.7.8", 0, 0, 46,
     "1:ikv3kmf89luf73WPz1jOs49S768=", "1:/buhqeOmaRCopOZFy9HnoJd5XW8="},
    {"fe80:0001:0203:0405:0607:0809:0A0B:0C0D", "fe80:1011:1213:1415:1617:1819:1A1B:1C1D", 0, 0, 46,
     "1:wQ/2mwrnXP4lmJcHdGL5ePjR+e0=", "1:j6EyyfBzL4vWKHFXgUqb5Az3OxM="},
    {"2001:470:e5bf:dead:4957:2174:e82c:4887", "2607:f8b0:400c:c03::1a", 63943, 25, 6,
     "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4=", NULL},
    {"192.168.1.52", "8.8.8.8", 54585, 53, 17, "1:d/FP5EW3wiY1vCndhwleRRKHowQ=", NULL},
    {"192.168.0.89", "192.168.0.1", 8, 0, 1, "1:X0snYXpgwiv9TZtqg64sgzUn6Dk=", NULL},
    {"10.1.12.1", "10.1.12.2", 0, 0, 46, "1:KHlLkgoJW7ifUTyTSgyVfkFHzKw=", NULL},
    /* Packetbeat golden hashes */
    {"172.31.98.49", "8.8.8.8", 51958, 53, 17, "1:/Zwm1tJot2cAhFAO0OxKQHuXs3Y=", NULL},
    {"172.31.98.49", "93.184.216.34", 55874, 80, 6, "1:TMPM5eEnGOXfxAjx6NKlyjx+X10=", NULL},
};

/* ICMP reply "ports": type of the reply, its counterpart goes in the id (a reply's
 * code is 0 in the vectors). */
static void check_cid(const struct cid_vec *v, bool reverse, uint16_t seed, const char *want)
{
	struct hb_ip a, b;
	char out[COMMUNITY_ID_LEN];
	uint16_t sp = v->sport, dp = v->dport;
	bool icmp = v->proto == 1 || v->proto == 58;

	assert_int_equal(hb_ip_parse(v->src, &a), 0);
	assert_int_equal(hb_ip_parse(v->dst, &b), 0);
	if (!reverse) {
		assert_int_equal(community_id_v1(&a, &b, sp, dp, v->proto, seed, out), 0);
	} else if (!icmp) {
		assert_int_equal(community_id_v1(&b, &a, dp, sp, v->proto, seed, out), 0);
	} else {
		return; /* ICMP directions are listed as separate rows */
	}
	if (strcmp(out, want) != 0)
		fail_msg("%s -> %s proto %u seed %u%s: got %s want %s", v->src, v->dst, v->proto,
			 seed, reverse ? " (reversed)" : "", out, want);
	assert_int_equal(strlen(out), COMMUNITY_ID_LEN - 1);
}

static void test_cid_vectors(void **state)
{
	size_t i;
	int n = 0;

	(void)state;
	for (i = 0; i < sizeof(cid_vecs) / sizeof(cid_vecs[0]); i++) {
		check_cid(&cid_vecs[i], false, 0, cid_vecs[i].seed0);
		check_cid(&cid_vecs[i], true, 0, cid_vecs[i].seed0);
		n += 2;
		if (cid_vecs[i].seed1) {
			check_cid(&cid_vecs[i], false, 1, cid_vecs[i].seed1);
			check_cid(&cid_vecs[i], true, 1, cid_vecs[i].seed1);
			n += 2;
		}
	}
	assert_true(n > 50);
}

/* Echo request and its reply hash the same; a one-way type is not reordered. */
static void test_cid_icmp_pairing(void **state)
{
	struct hb_ip a, b;
	char req[COMMUNITY_ID_LEN], rep[COMMUNITY_ID_LEN], x[COMMUNITY_ID_LEN], y[COMMUNITY_ID_LEN];

	(void)state;
	assert_int_equal(hb_ip_parse("10.0.0.9", &a), 0);
	assert_int_equal(hb_ip_parse("10.0.0.1", &b), 0);
	/* timestamp 13 ↔ 14, from the higher address */
	community_id_v1(&a, &b, 13, 0, 1, 0, req);
	community_id_v1(&b, &a, 14, 0, 1, 0, rep);
	assert_string_equal(req, rep);
	/* destination unreachable (3) is one-way: direction matters */
	community_id_v1(&a, &b, 3, 1, 1, 0, x);
	community_id_v1(&b, &a, 3, 1, 1, 0, y);
	assert_string_not_equal(x, y);
	/* code matters for one-way types */
	community_id_v1(&a, &b, 3, 3, 1, 0, y);
	assert_string_not_equal(x, y);
}

static void test_cid_errors(void **state)
{
	struct hb_ip a, b, unset;
	char out[COMMUNITY_ID_LEN];

	(void)state;
	memset(&unset, 0, sizeof(unset));
	assert_int_equal(hb_ip_parse("10.0.0.1", &a), 0);
	assert_int_equal(hb_ip_parse("::1", &b), 0);
	assert_int_equal(community_id_v1(&a, &b, 1, 2, 6, 0, out), -EINVAL);
	assert_string_equal(out, "");
	assert_int_equal(community_id_v1(&unset, &unset, 1, 2, 6, 0, out), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sha1_fips),        cmocka_unit_test(test_sha1_million_a),
	    cmocka_unit_test(test_base64),           cmocka_unit_test(test_cid_vectors),
	    cmocka_unit_test(test_cid_icmp_pairing), cmocka_unit_test(test_cid_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
