/* test_ipfrag.c — net/ipfrag.c: order, duplicates, overlap, timeout, eviction,
 * hostile offsets, no allocation once warm; and decode.c on Packetbeat's real
 * fragmented DNS response (udp_edns0_resp.pcap: 3398 bytes of DNS in IPv4 fragments). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <pcap/pcap.h>

#include "hostbeat/mem.h"
#include "hostbeat/metrics.h"
#include "net/decode.h"
#include "net/ipfrag.h"

#define EDNS0_PCAP "/work/shared/pcaps/beats/decoder/udp_edns0_resp.pcap"
#define SEC 1000000000ULL

static uint8_t data[IPFRAG_MAX_DATAGRAM + 64];

static int setup(void **state)
{
	size_t i;

	(void)state;
	metrics_reset();
	for (i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7 + i / 251);
	return 0;
}

static struct ipfrag_key key_n(uint32_t id)
{
	struct ipfrag_key k;

	memset(&k, 0, sizeof(k));
	k.src.ver = k.dst.ver = 4;
	k.src.a[0] = 10;
	k.src.a[3] = 1;
	k.dst.a[0] = 10;
	k.dst.a[3] = 2;
	k.id = id;
	k.proto = 17;
	return k;
}

/* Add data[off, off+len) as a fragment of datagram `id`. */
static enum ipfrag_result add(struct ipfrag *f, uint32_t id, uint64_t ts, uint32_t off,
			      uint32_t len, bool more, const uint8_t **out, uint32_t *out_len)
{
	struct ipfrag_key k = key_n(id);

	return ipfrag_add(f, &k, ts, off, data + off, len, more, out, out_len);
}

static void test_in_and_out_of_order(void **state)
{
	struct ipfrag *f = ipfrag_new(4, 10 * SEC);
	const uint8_t *out;
	uint32_t n;

	(void)state;
	assert_non_null(f);
	/* in order: 0..1480, 1480..2960, 2960..3001 */
	assert_int_equal(add(f, 1, 1, 0, 1480, true, &out, &n), IPFRAG_STORED);
	assert_int_equal(add(f, 1, 2, 1480, 1480, true, &out, &n), IPFRAG_STORED);
	assert_int_equal(ipfrag_pending(f), 1);
	assert_int_equal(add(f, 1, 3, 2960, 41, false, &out, &n), IPFRAG_COMPLETE);
	assert_int_equal(n, 3001);
	assert_memory_equal(out, data, 3001);
	assert_int_equal(ipfrag_pending(f), 0);

	/* last first, then middle, then first */
	assert_int_equal(add(f, 2, 1, 2960, 41, false, &out, &n), IPFRAG_STORED);
	assert_null(out);
	assert_int_equal(add(f, 2, 1, 1480, 1480, true, &out, &n), IPFRAG_STORED);
	assert_int_equal(add(f, 2, 1, 0, 1480, true, &out, &n), IPFRAG_COMPLETE);
	assert_int_equal(n, 3001);
	assert_memory_equal(out, data, 3001);

	/* interleaved datagrams with different ids do not mix */
	assert_int_equal(add(f, 3, 1, 0, 16, true, &out, &n), IPFRAG_STORED);
	assert_int_equal(add(f, 4, 1, 16, 3, false, &out, &n), IPFRAG_STORED);
	assert_int_equal(add(f, 4, 1, 0, 16, true, &out, &n), IPFRAG_COMPLETE);
	assert_int_equal(n, 19);
	assert_int_equal(add(f, 3, 1, 16, 5, false, &out, &n), IPFRAG_COMPLETE);
	assert_int_equal(n, 21);
	assert_int_equal(metrics_get("ipfrag.reassembled"), 4);
	ipfrag_free(f);
}

static void test_duplicates(void **state)
{
	struct ipfrag *f = ipfrag_new(4, 10 * SEC);
	const uint8_t *out;
	uint32_t n;

	(void)state;
	assert_int_equal(add(f, 7, 1, 0, 800, true, &out, &n), IPFRAG_STORED);
	assert_int_equal(add(f, 7, 1, 0, 800, true, &out, &n), IPFRAG_STORED);
	assert_int_equal(add(f, 7, 1, 800, 100, false, &out, &n), IPFRAG_COMPLETE);
	assert_int_equal(n, 900);
	assert_memory_equal(out, data, 900);
	assert_int_equal(metrics_get("ipfrag.duplicate"), 1);
	assert_int_equal(metrics_get("ipfrag.overlap"), 0);
	ipfrag_free(f);
}

static void test_overlap_rejects_datagram(void **state)
{
	struct ipfrag *f = ipfrag_new(4, 10 * SEC);
	struct ipfrag_key k = key_n(9);
	uint8_t evil[64];
	const uint8_t *out;
	uint32_t n;

	(void)state;
	/* partial overlap */
	assert_int_equal(add(f, 9, 1, 0, 64, true, &out, &n), IPFRAG_STORED);
	assert_int_equal(add(f, 9, 1, 32, 64, true, &out, &n), IPFRAG_DROPPED);
	assert_int_equal(metrics_get("ipfrag.overlap"), 1);
	assert_int_equal(ipfrag_pending(f), 0);
	/* the rest of the datagram does not resurrect it */
	assert_int_equal(add(f, 9, 1, 64, 8, false, &out, &n), IPFRAG_STORED);
	assert_int_equal(ipfrag_pending(f), 1);

	/* same range, different bytes: not a duplicate */
	memset(evil, 0x66, sizeof(evil));
	assert_int_equal(add(f, 10, 1, 0, 64, true, &out, &n), IPFRAG_STORED);
	assert_int_equal(ipfrag_add(f, &(struct ipfrag_key){0}, 1, 0, evil, 64, true, &out, &n),
			 IPFRAG_STORED); /* other key: separate datagram */
	k = key_n(10);
	assert_int_equal(ipfrag_add(f, &k, 1, 0, evil, 64, true, &out, &n), IPFRAG_DROPPED);
	assert_int_equal(metrics_get("ipfrag.overlap"), 2);
	ipfrag_free(f);
}

static void test_timeout(void **state)
{
	struct ipfrag *f = ipfrag_new(4, 5 * SEC);
	const uint8_t *out;
	uint32_t n;

	(void)state;
	/* missing middle piece */
	assert_int_equal(add(f, 1, 100 * SEC, 0, 8, true, &out, &n), IPFRAG_STORED);
	assert_int_equal(add(f, 1, 101 * SEC, 16, 8, false, &out, &n), IPFRAG_STORED);
	/* within the timeout it would still complete; past it, the datagram is gone */
	assert_int_equal(add(f, 2, 104 * SEC, 0, 8, true, &out, &n), IPFRAG_STORED);
	assert_int_equal(metrics_get("ipfrag.timeout"), 0);
	assert_int_equal(add(f, 1, 106 * SEC, 8, 8, true, &out, &n), IPFRAG_STORED);
	assert_int_equal(metrics_get("ipfrag.timeout"), 1);
	assert_int_equal(ipfrag_pending(f), 2); /* id 2 + the fresh id 1 */
	ipfrag_free(f);
}

static void test_eviction(void **state)
{
	struct ipfrag *f = ipfrag_new(2, 60 * SEC);
	const uint8_t *out;
	uint32_t n;

	(void)state;
	assert_int_equal(add(f, 1, 10, 0, 8, true, &out, &n), IPFRAG_STORED);
	assert_int_equal(add(f, 2, 20, 0, 8, true, &out, &n), IPFRAG_STORED);
	assert_int_equal(add(f, 3, 30, 0, 8, true, &out, &n), IPFRAG_STORED); /* evicts id 1 */
	assert_int_equal(metrics_get("ipfrag.evicted"), 1);
	assert_int_equal(ipfrag_pending(f), 2);
	/* id 2 survived, id 1 did not */
	assert_int_equal(add(f, 2, 40, 8, 4, false, &out, &n), IPFRAG_COMPLETE);
	assert_int_equal(n, 12);
	assert_int_equal(add(f, 1, 50, 8, 4, false, &out, &n), IPFRAG_STORED);
	ipfrag_free(f);
}

static void test_hostile(void **state)
{
	struct ipfrag *f = ipfrag_new(4, 60 * SEC);
	const uint8_t *out;
	uint32_t n;

	(void)state;
	/* the IPv4 maximum offset (8191 * 8) plus more than 7 bytes */
	assert_int_equal(add(f, 1, 1, 65528, 16, false, &out, &n), IPFRAG_DROPPED);
	assert_int_equal(add(f, 1, 1, 65528, 7, false, &out, &n), IPFRAG_STORED);
	/* an IPv6-style 32-bit offset far beyond the limit */
	assert_int_equal(add(f, 2, 1, 0, 8, true, &out, &n), IPFRAG_STORED);
	{
		struct ipfrag_key k = key_n(2);
		assert_int_equal(ipfrag_add(f, &k, 1, 0xfffffff8u, data, 16, false, &out, &n),
				 IPFRAG_DROPPED);
	}
	assert_int_equal(metrics_get("ipfrag.too_big"), 2);
	/* non-final fragment not a multiple of 8; misaligned offset; empty fragment */
	assert_int_equal(add(f, 3, 1, 0, 12, true, &out, &n), IPFRAG_DROPPED);
	assert_int_equal(add(f, 3, 1, 4, 8, true, &out, &n), IPFRAG_DROPPED);
	assert_int_equal(add(f, 3, 1, 0, 0, false, &out, &n), IPFRAG_DROPPED);
	assert_int_equal(metrics_get("ipfrag.invalid"), 3);
	/* a final fragment ending before data already held */
	assert_int_equal(add(f, 4, 1, 64, 8, true, &out, &n), IPFRAG_STORED);
	assert_int_equal(add(f, 4, 1, 0, 16, false, &out, &n), IPFRAG_DROPPED);
	/* a fragment beyond an already known end */
	assert_int_equal(add(f, 5, 1, 16, 4, false, &out, &n), IPFRAG_STORED);
	assert_int_equal(add(f, 5, 1, 24, 8, true, &out, &n), IPFRAG_DROPPED);
	/* two different final fragments */
	assert_int_equal(add(f, 6, 1, 16, 4, false, &out, &n), IPFRAG_STORED);
	assert_int_equal(add(f, 6, 1, 8, 4, false, &out, &n), IPFRAG_DROPPED);
	assert_int_equal(metrics_get("ipfrag.invalid"), 6);
	/* the largest legal datagram reassembles: 65528 + 7 = 65535 */
	assert_int_equal(add(f, 7, 1, 0, 65528, true, &out, &n), IPFRAG_STORED);
	assert_int_equal(add(f, 7, 1, 65528, 7, false, &out, &n), IPFRAG_COMPLETE);
	assert_int_equal(n, 65535);
	assert_memory_equal(out, data, 65535);
	ipfrag_free(f);
}

static void test_no_alloc_when_warm(void **state)
{
	struct ipfrag *f = ipfrag_new(1, 60 * SEC);
	const uint8_t *out;
	uint32_t n;
	int i;

	(void)state;
	assert_int_equal(add(f, 1, 1, 0, 8, true, &out, &n), IPFRAG_STORED);
	assert_int_equal(add(f, 1, 1, 8, 8, false, &out, &n), IPFRAG_COMPLETE);
	mem_fail_after(0); /* every allocation fails from here */
	for (i = 0; i < 50; i++) {
		assert_int_equal(add(f, 100 + (uint32_t)i, 2, 1480, 20, false, &out, &n),
				 IPFRAG_STORED);
		assert_int_equal(add(f, 100 + (uint32_t)i, 2, 0, 1480, true, &out, &n),
				 IPFRAG_COMPLETE);
		assert_int_equal(n, 1500);
	}
	mem_fail_reset();
	assert_int_equal(metrics_get("ipfrag.nomem"), 0);
	ipfrag_free(f);

	/* cold slot + no memory: dropped and counted, no crash */
	f = ipfrag_new(1, 60 * SEC);
	mem_fail_after(0);
	assert_int_equal(add(f, 1, 1, 0, 8, true, &out, &n), IPFRAG_DROPPED);
	mem_fail_reset();
	assert_int_equal(metrics_get("ipfrag.nomem"), 1);
	ipfrag_free(f);
}

/* IPv4 fragments through the decoder: Ethernet, UDP in three pieces. */
static size_t frag_frame(uint8_t *b, uint16_t id, uint16_t fragword, const uint8_t *pl, size_t len)
{
	static const uint8_t hdr[] = {
	    2,    0, 0, 0, 0, 1, 2, 0, 0,  0,  0, 2, 0x08, 0x00, /* Ethernet */
	    0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0, 192,  168,  1, 1, 192, 168, 1, 2,
	};
	size_t total = 20 + len;

	memcpy(b, hdr, sizeof(hdr));
	b[16] = (uint8_t)(total >> 8);
	b[17] = (uint8_t)total;
	b[18] = (uint8_t)(id >> 8);
	b[19] = (uint8_t)id;
	b[20] = (uint8_t)(fragword >> 8);
	b[21] = (uint8_t)fragword;
	memcpy(b + sizeof(hdr), pl, len);
	return sizeof(hdr) + len;
}

static void test_decode_ipv4_fragments(void **state)
{
	struct decoder_limits lim = {.frag_max_datagrams = 8, .frag_timeout_ns = 30 * SEC};
	struct decoder *d = decoder_new(1, &lim);
	uint8_t dgram[8 + 2000], frame[2100];
	struct packet p;
	size_t n, i;

	(void)state;
	assert_non_null(d);
	dgram[0] = 0;
	dgram[1] = 53;
	dgram[2] = 0xc0;
	dgram[3] = 0x00;
	dgram[4] = (uint8_t)(sizeof(dgram) >> 8);
	dgram[5] = (uint8_t)sizeof(dgram);
	dgram[6] = dgram[7] = 0;
	for (i = 8; i < sizeof(dgram); i++)
		dgram[i] = (uint8_t)(i ^ 0x5a);
	/* pieces: [0,800) [800,1600) [1600,2008); sent 2, 3, 1 */
	n = frag_frame(frame, 77, 0x2000 | 100, dgram + 800, 800);
	assert_int_equal(decode_packet(d, 1, frame, (uint32_t)n, (uint32_t)n, NULL, &p),
			 DECODE_FRAGMENT);
	n = frag_frame(frame, 77, 200, dgram + 1600, 408);
	assert_int_equal(decode_packet(d, 2, frame, (uint32_t)n, (uint32_t)n, NULL, &p),
			 DECODE_FRAGMENT);
	n = frag_frame(frame, 77, 0x2000, dgram, 800);
	assert_int_equal(decode_packet(d, 3, frame, (uint32_t)n, (uint32_t)n, NULL, &p), DECODE_OK);
	assert_true(p.reassembled);
	assert_int_equal(p.ts, 3);
	assert_int_equal(p.sport, 53);
	assert_int_equal(p.dport, 49152);
	assert_int_equal(p.payload_len, 2000);
	assert_int_equal(p.payload_wire_len, 2000);
	assert_memory_equal(p.payload, dgram + 8, 2000);

	/* a fragment cut by the snaplen cannot be reassembled */
	n = frag_frame(frame, 78, 0x2000, dgram, 800);
	assert_int_equal(decode_packet(d, 4, frame, 100, (uint32_t)n, NULL, &p), DECODE_MALFORMED);
	assert_int_equal(metrics_get("decode.fragments"), 4);
	decoder_free(d);
}

/* Packetbeat's capture: a DNS response with EDNS0, 3398 bytes of UDP payload sent
 * as IPv4 fragments. Exactly one complete UDP packet must come out. */
static void test_edns0_pcap(void **state)
{
	char errbuf[PCAP_ERRBUF_SIZE];
	struct decoder_limits lim = {.frag_max_datagrams = 16, .frag_timeout_ns = 30 * SEC};
	struct pcap_pkthdr *h;
	const u_char *bytes;
	struct decoder *d;
	struct packet p;
	pcap_t *pc;
	int ok = 0, frags = 0, other = 0;

	(void)state;
	if (access(EDNS0_PCAP, R_OK) != 0) {
		print_message("skipping: %s not present\n", EDNS0_PCAP);
		skip();
	}
	pc =
	    pcap_open_offline_with_tstamp_precision(EDNS0_PCAP, PCAP_TSTAMP_PRECISION_NANO, errbuf);
	assert_non_null(pc);
	d = decoder_new(pcap_datalink(pc), &lim);
	assert_non_null(d);
	while (pcap_next_ex(pc, &h, &bytes) == 1) {
		uint64_t ts = (uint64_t)h->ts.tv_sec * 1000000000ULL + (uint64_t)h->ts.tv_usec;

		switch (decode_packet(d, ts, bytes, h->caplen, h->len, NULL, &p)) {
		case DECODE_OK:
			ok++;
			assert_int_equal(p.ip_proto, 17);
			assert_true(p.reassembled);
			assert_int_equal(p.payload_len, 3398);
			assert_int_equal(p.payload_wire_len, 3398);
			assert_int_equal(p.sport, 53);
			break;
		case DECODE_FRAGMENT:
			frags++;
			break;
		default:
			other++;
			break;
		}
	}
	assert_int_equal(ok, 1);
	assert_true(frags >= 1);
	assert_int_equal(other, 0);
	assert_int_equal(metrics_get("ipfrag.reassembled"), 1);
	decoder_free(d);
	pcap_close(pc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_in_and_out_of_order, setup),
	    cmocka_unit_test_setup(test_duplicates, setup),
	    cmocka_unit_test_setup(test_overlap_rejects_datagram, setup),
	    cmocka_unit_test_setup(test_timeout, setup),
	    cmocka_unit_test_setup(test_eviction, setup),
	    cmocka_unit_test_setup(test_hostile, setup),
	    cmocka_unit_test_setup(test_no_alloc_when_warm, setup),
	    cmocka_unit_test_setup(test_decode_ipv4_fragments, setup),
	    cmocka_unit_test_setup(test_edns0_pcap, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
