/* fuzz_portfilter.c — libFuzzer harness: net/portfilter.c against libpcap's BPF.
 *
 * The first input byte picks a configuration and a link type (Ethernet with the
 * VLAN form of the generated filter, or Linux cooked with the plain form); the rest
 * is one captured packet. Whenever port_filter_check() answers (PF_PASS or PF_DROP),
 * pcap_offline_filter() on the program capture.c would install must agree; any
 * disagreement traps.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pcap/pcap.h>

#include "hostbeat/config.h"
#include "net/capture.h"
#include "net/portfilter.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
};
#define NCONFIGS (sizeof(configs) / sizeof(configs[0]))
static const int linktypes[] = {DLT_EN10MB, DLT_LINUX_SLL};
#define NLINKS (sizeof(linktypes) / sizeof(linktypes[0]))

static struct variant {
	struct hb_config cfg;
	struct port_filter f;
	struct bpf_program prog;
} variants[NCONFIGS * NLINKS];
static int ready;

static void setup(struct variant *v, const char *yaml, int linktype)
{
	struct cfg_error err = {{0}};
	char *filter, *cut;
	bool vlan = true;
	pcap_t *dead;

	if (cfg_load_string(yaml, "fuzz.yml", NULL, 0, &v->cfg, &err) != 0)
		abort();
	filter = capture_build_filter(&v->cfg);
	dead = pcap_open_dead(linktype, 262144);
	if (!filter || !dead)
		abort();
	if (pcap_compile(dead, &v->prog, filter, 1, PCAP_NETMASK_UNKNOWN) != 0) {
		cut = strstr(filter, ") or (vlan and "); /* "(T) or (vlan and ...)": T */
		if (!cut)
			abort();
		*cut = '\0';
		if (pcap_compile(dead, &v->prog, filter + 1, 1, PCAP_NETMASK_UNKNOWN) != 0)
			abort();
		vlan = false;
	}
	free(filter);
	pcap_close(dead);
	port_filter_init(&v->f, &v->cfg, linktype, vlan);
	if (!v->f.on)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pcap_pkthdr h;
	struct variant *v;
	enum pf_verdict r;
	uint8_t *pkt;
	size_t i;
	int bpf;

	if (!ready) {
		for (i = 0; i < NCONFIGS * NLINKS; i++)
			setup(&variants[i], configs[i / NLINKS], linktypes[i % NLINKS]);
		ready = 1;
	}
	if (size < 1)
		return 0;
	v = &variants[data[0] % (NCONFIGS * NLINKS)];
	/* a copy of exactly the packet's bytes, so ASan sees any read past caplen */
	pkt = malloc(size - 1 ? size - 1 : 1);
	if (!pkt)
		return 0;
	memcpy(pkt, data + 1, size - 1);
	r = port_filter_check(&v->f, pkt, size - 1);
	if (r != PF_ASK) {
		h.caplen = h.len = (bpf_u_int32)(size - 1);
		bpf = pcap_offline_filter(&v->prog, &h, pkt);
		if ((r == PF_PASS) != (bpf != 0)) {
			fprintf(stderr, "fuzz_portfilter: portfilter %s, BPF %s\n",
				r == PF_PASS ? "pass" : "drop", bpf ? "pass" : "drop");
			__builtin_trap();
		}
	}
	free(pkt);
	return 0;
}
