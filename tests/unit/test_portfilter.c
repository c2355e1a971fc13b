/* test_portfilter.c — net/portfilter.c against the BPF program libpcap compiles.
 *
 * Every verdict port_filter_check() gives must be the one pcap_offline_filter()
 * gives for the filter capture.c generates from the same configuration: PF_PASS only
 * where the program accepts, PF_DROP only where it rejects (PF_ASK is always
 * allowed). Checked on random packets built around the headers the program reads
 * (VLAN tags of every kind and depth, IPv4 with options and fragments, IPv6 with and
 * without a fragment header, TCP/UDP/SCTP/ICMP, every truncation), on every packet
 * of the committed pcap corpus and of Packetbeat's captures when present, for
 * Ethernet (the VLAN form of the filter) and Linux cooked captures (the plain form).
 * Well-formed TCP and UDP packets must get an answer (not PF_ASK): that is the speed.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pcap/pcap.h>

#include "hostbeat/config.h"
#include "hostbeat/proto.h"
#include "net/capture.h"
#include "net/portfilter.h"

#define CORPUS_DIR "tests/fuzz/corpus/pcap"
#define SHARED_DIR "/work/shared/pcaps/beats"

/* The eight protocols on their bench ports, with one odd port list. */
static const char *const configs[] = {
    "packetbeat.protocols:\n"
    "- {type: http, ports: [80, 8080]}\n"
    "- {type: dns, ports: [53]}\n"
    "- {type: mysql, ports: [3306]}\n"
    "- {type: pgsql, ports: [5432]}\n"
    "- {type: redis, ports: [6379]}\n"
    "- {type: memcache, ports: [11211]}\n"
    "- {type: thrift, ports: [9090]}\n"
    "- {type: mongodb, ports: [27017]}\n",
    "packetbeat.protocols:\n- {type: dns, ports: [53, 5353]}\n",
    "packetbeat.protocols:\n- {type: http, ports: [80, 443, 65535, 1]}\n",
    "packetbeat.protocols:\n- {type: memcache, ports: [11211]}\n- {type: redis, ports: [80]}\n",
};
#define NCONFIGS (sizeof(configs) / sizeof(configs[0]))

struct setup {
	struct hb_config cfg;
	struct port_filter f;
	struct bpf_program prog;
	pcap_t *dead;
	int linktype;
};

/* What capture.c's set_filter() does: the VLAN form, or the plain one where the link
 * type has no `vlan`. */
static void setup_for(struct setup *s, const char *yaml, int linktype)
{
	struct cfg_error err = {{0}};
	char *filter, *plain, *cut;
	bool vlan = true;

	if (cfg_load_string(yaml, "t.yml", NULL, 0, &s->cfg, &err) != 0)
		fail_msg("config: %s", err.msg);
	filter = capture_build_filter(&s->cfg);
	assert_non_null(filter);
	s->linktype = linktype;
	s->dead = pcap_open_dead(linktype, 262144);
	assert_non_null(s->dead);
	if (pcap_compile(s->dead, &s->prog, filter, 1, PCAP_NETMASK_UNKNOWN) != 0) {
		/* "(T) or (vlan and ...)": T alone */
		cut = strstr(filter, ") or (vlan and ");
		assert_non_null(cut);
		plain = strndup(filter + 1, (size_t)(cut - filter - 1));
		assert_non_null(plain);
		if (pcap_compile(s->dead, &s->prog, plain, 1, PCAP_NETMASK_UNKNOWN) != 0)
			fail_msg("plain filter does not compile: %s", pcap_geterr(s->dead));
		free(plain);
		vlan = false;
	}
	free(filter);
	port_filter_init(&s->f, &s->cfg, linktype, vlan);
}

static void teardown_setup(struct setup *s)
{
	pcap_freecode(&s->prog);
	pcap_close(s->dead);
	cfg_free(&s->cfg);
}

struct tally {
	unsigned long pass, drop, ask;
};

/* The fast verdict agrees with BPF (or asks). */
static enum pf_verdict check_one(struct setup *s, const uint8_t *p, uint32_t caplen,
				 struct tally *t, const char *what)
{
	struct pcap_pkthdr h = {.caplen = caplen, .len = caplen};
	enum pf_verdict v = port_filter_check(&s->f, p, caplen);
	int bpf;

	if (v == PF_ASK) {
		t->ask++;
		return v;
	}
	bpf = pcap_offline_filter(&s->prog, &h, p);
	if ((v == PF_PASS) != (bpf != 0)) {
		fprintf(stderr, "%s: caplen %u:", what, caplen);
		for (uint32_t i = 0; i < caplen && i < 80; i++)
			fprintf(stderr, " %02x", p[i]);
		fprintf(stderr, "\n");
		fail_msg("%s: portfilter says %s, BPF says %s", what,
			 v == PF_PASS ? "pass" : "drop", bpf ? "pass" : "drop");
	}
	if (v == PF_PASS)
		t->pass++;
	else
		t->drop++;
	return v;
}

/* ---- random packets ------------------------------------------------------------- */

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint32_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng >> 16);
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static const uint16_t interesting_ports[] = {80,   8080,  53,  5353,  3306, 5432, 6379, 11211,
					     9090, 27017, 443, 65535, 1,    0,    81,   54};

static uint16_t any_port(void)
{
	if (rnd() % 3 == 0)
		return (uint16_t)rnd();
	return interesting_ports[rnd() % (sizeof(interesting_ports) / sizeof(*interesting_ports))];
}

static const uint16_t types[] = {0x0800, 0x86dd, 0x8100, 0x88a8, 0x9100, 0x0806, 0x8847};

/* A packet for the link type, mostly well-formed; sets *well_formed when it is an
 * untruncated IPv4/IPv6 TCP or UDP packet with at most two tags. Returns its length. */
static uint32_t build(uint8_t *p, int linktype, bool *well_formed)
{
	unsigned ntags = 0, i, ihl;
	uint32_t off, l3;
	uint16_t type;
	uint8_t proto;
	bool v6;

	memset(p, 0, 200);
	for (i = 0; i < 200; i++)
		p[i] = (uint8_t)rnd();
	if (linktype == DLT_EN10MB) {
		off = 12;
		ntags = rnd() % 8 < 5 ? 0 : rnd() % 4;
		for (i = 0; i < ntags; i++, off += 4)
			put16(p + off, types[2 + rnd() % 3]);
	} else {
		off = 14;
	}
	v6 = rnd() % 3 == 0;
	type = rnd() % 10 == 0 ? types[rnd() % 7] : v6 ? 0x86dd : 0x0800;
	put16(p + off, type);
	l3 = off + 2;
	v6 = type == 0x86dd;
	proto = (uint8_t[]){6, 6, 6, 17, 17, 132, 1, 44, 58, 0}[rnd() % 10];
	if (rnd() % 16 == 0)
		proto = (uint8_t)rnd();
	if (v6) {
		p[l3] = 0x60;
		p[l3 + 6] = proto;
		put16(p + l3 + 40, any_port());
		put16(p + l3 + 42, any_port());
		*well_formed = ntags <= 2 && type == 0x86dd && (proto == 6 || proto == 17);
		return l3 + 40 + 20;
	}
	ihl = rnd() % 8 == 0 ? rnd() % 16 : 5;
	p[l3] = (uint8_t)(0x40 | ihl);
	p[l3 + 9] = proto;
	switch (rnd() % 6) {
	case 0:
		put16(p + l3 + 6, 0x2000); /* MF, first fragment */
		break;
	case 1:
		put16(p + l3 + 6, (uint16_t)(1 + rnd() % 0x1fff)); /* later fragment */
		break;
	case 2:
		put16(p + l3 + 6, (uint16_t)rnd());
		break;
	default:
		put16(p + l3 + 6, rnd() % 2 ? 0x4000 : 0); /* DF or nothing */
		break;
	}
	put16(p + l3 + ihl * 4, any_port());
	put16(p + l3 + ihl * 4 + 2, any_port());
	*well_formed = ntags <= 2 && type == 0x0800 && ihl >= 5 && (proto == 6 || proto == 17);
	return l3 + 60 + 20;
}

static void random_packets(int linktype)
{
	uint8_t p[200];
	struct tally t = {0}, wf = {0};
	struct setup s;
	bool well_formed;
	uint32_t len, caplen;
	size_t c;
	int i;

	for (c = 0; c < NCONFIGS; c++) {
		setup_for(&s, configs[c], linktype);
		assert_true(s.f.on);
		for (i = 0; i < 100000; i++) {
			len = build(p, linktype, &well_formed);
			caplen = rnd() % 4 == 0 ? rnd() % (len + 1) : len;
			if (caplen == len && well_formed) {
				if (check_one(&s, p, caplen, &wf, "well-formed") == PF_ASK)
					fail_msg("a well-formed TCP/UDP packet got PF_ASK");
			} else {
				check_one(&s, p, caplen, &t, "random");
			}
		}
		teardown_setup(&s);
	}
	/* both answers occur, and most other packets get one too */
	assert_true(wf.pass > 1000 && wf.drop > 1000);
	assert_true(t.pass > 1000 && t.drop > 1000);
	assert_true(t.pass + t.drop > t.ask);
}

static void test_random_ethernet(void **state)
{
	(void)state;
	random_packets(DLT_EN10MB);
}

static void test_random_cooked(void **state)
{
	(void)state;
	random_packets(DLT_LINUX_SLL);
}

/* A few packets by hand, with the verdict they must get. */
static void test_known_answers(void **state)
{
	uint8_t p[128] = {0};
	struct tally t = {0};
	struct setup s;

	(void)state;
	setup_for(&s, configs[0], DLT_EN10MB);
	put16(p + 12, 0x0800);
	p[14] = 0x45;
	p[23] = 6;
	put16(p + 34, 40000);
	put16(p + 36, 80);
	assert_int_equal(check_one(&s, p, 54, &t, "tcp 80"), PF_PASS);
	put16(p + 36, 81);
	assert_int_equal(check_one(&s, p, 54, &t, "tcp 81"), PF_DROP);
	put16(p + 20, 0x2000); /* first fragment of a dropped port: reassembly needs it */
	assert_int_equal(check_one(&s, p, 54, &t, "MF"), PF_PASS);
	put16(p + 20, 0);
	p[23] = 17;
	put16(p + 36, 53);
	assert_int_equal(check_one(&s, p, 54, &t, "udp 53"), PF_PASS);
	put16(p + 36, 3306); /* mysql is TCP only */
	assert_int_equal(check_one(&s, p, 54, &t, "udp 3306"), PF_DROP);
	p[23] = 132; /* SCTP to "port 11211": BPF decides */
	put16(p + 36, 11211);
	assert_int_equal(port_filter_check(&s.f, p, 54), PF_ASK);
	assert_int_equal(port_filter_check(&s.f, p, 37), PF_ASK); /* ports cut off */

	/* two tags pass, three are deeper than the filter looks */
	memmove(p + 20, p + 12, 60);
	put16(p + 12, 0x88a8);
	put16(p + 16, 0x8100);
	p[31] = 6;
	put16(p + 44, 6379);
	assert_int_equal(check_one(&s, p, 62, &t, "QinQ redis"), PF_PASS);
	memmove(p + 16, p + 12, 80);
	put16(p + 12, 0x9100);
	assert_int_equal(check_one(&s, p, 66, &t, "three tags"), PF_DROP);
	teardown_setup(&s);

	/* link types the filter's shape is not known for always ask */
	setup_for(&s, configs[0], DLT_RAW);
	assert_false(s.f.on);
	assert_int_equal(port_filter_check(&s.f, p, 66), PF_ASK);
	teardown_setup(&s);
}

/* ---- real captures -------------------------------------------------------------- */

static void one_file(const char *path, struct tally *t)
{
	char errbuf[PCAP_ERRBUF_SIZE];
	struct pcap_pkthdr *h;
	const u_char *b;
	struct setup s;
	pcap_t *pc;
	size_t c;

	for (c = 0; c < NCONFIGS; c++) {
		pc = pcap_open_offline(path, errbuf);
		if (!pc)
			return; /* the corpus holds files libpcap refuses on purpose */
		setup_for(&s, configs[c], pcap_datalink(pc));
		while (pcap_next_ex(pc, &h, &b) == 1)
			check_one(&s, b, h->caplen, t, path);
		pcap_close(pc);
		teardown_setup(&s);
	}
}

static unsigned walk(const char *dir, struct tally *t)
{
	char path[4096];
	struct dirent *d;
	unsigned n = 0;
	DIR *dp = opendir(dir);

	if (!dp)
		return 0;
	while ((d = readdir(dp)) != NULL) {
		if (d->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, d->d_name);
		one_file(path, t);
		n++;
	}
	closedir(dp);
	return n;
}

static void test_real_captures(void **state)
{
	struct tally t = {0};
	unsigned n;

	(void)state;
	n = walk(CORPUS_DIR, &t);
	assert_true(n > 0);
	if (walk(SHARED_DIR, &t) == 0)
		print_message("(%s absent: Packetbeat's captures not checked)\n", SHARED_DIR);
	assert_true(t.pass > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_known_answers),
	    cmocka_unit_test(test_random_ethernet),
	    cmocka_unit_test(test_random_cooked),
	    cmocka_unit_test(test_real_captures),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
