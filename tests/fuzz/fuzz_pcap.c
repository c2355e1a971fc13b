/* fuzz_pcap.c — libFuzzer harness: the input is a whole pcap (or pcapng) file.
 *
 * The bytes are written to a memfd and replayed through the real file path:
 * capture_open(-I /proc/self/fd/N, topspeed) → decode → ipfrag → flow → tcp_stream →
 * parsers (http on 80, dns on 53) → a sink that returns every event to its pool,
 * then flow_flush_all at EOF. Truncated and corrupt files must end like EOF.
 * The BPF filter accepts everything so every packet reaches the decoder.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hostbeat/clock.h"
#include "hostbeat/config.h"
#include "hostbeat/event.h"
#include "hostbeat/log.h"
#include "hostbeat/mem.h"
#include "net/capture.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char fuzz_yaml[] =
    "packetbeat.interfaces.device: any\n"
    "packetbeat.interfaces.bpf_filter: \"len >= 0\"\n"
    "packetbeat.flow_table.max_flows: 64\n" /* small tables: one is built per input */
    "packetbeat.ipfrag.max_datagrams: 4\n"
    "packetbeat.protocols:\n"
    "- type: http\n"
    "  ports: [80]\n"
    "- type: dns\n"
    "  ports: [53]\n";

struct fuzz_state {
	bool ready;
	int fd;
	char path[64];
	struct hb_config cfg;
	struct ev_pool *pool;
};

static struct fuzz_state fz;

static void sink_publish(struct ev_sink *sink, struct event *ev)
{
	(void)sink;
	ev_pool_put(ev);
}

static int fuzz_init(void)
{
	struct cfg_error err;

	log_init(LOG_LEVEL_ERROR, NULL, false, "/dev/null");
	if (cfg_load_string(fuzz_yaml, "fuzz.yml", NULL, 0, &fz.cfg, &err) != 0) {
		fprintf(stderr, "fuzz_pcap: config: %s\n", err.msg);
		return -1;
	}
	fz.fd = memfd_create("fuzz_pcap", 0);
	if (fz.fd < 0)
		return -1;
	snprintf(fz.path, sizeof(fz.path), "/proc/self/fd/%d", fz.fd);
	hb_free(fz.cfg.pcap_file);
	fz.cfg.pcap_file = hb_strdup(fz.path);
	fz.cfg.topspeed = true;
	fz.cfg.loops = 1;
	fz.pool = ev_pool_new(256, 64 * 1024, 256);
	if (!fz.cfg.pcap_file || !fz.pool)
		return -1;
	fz.ready = true;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ev_sink sink;
	struct hb_clock clk;
	struct capture *c;

	if (!fz.ready && fuzz_init() != 0)
		return 0;
	if (ftruncate(fz.fd, 0) != 0 || pwrite(fz.fd, data, size, 0) != (ssize_t)size)
		return 0;

	sink.publish = sink_publish;
	sink.pool = fz.pool;
	clock_init(&clk, true);
	c = capture_open(&fz.cfg, NULL, &clk, &sink);
	if (!c)
		return 0; /* not a readable capture: refused at open */
	capture_run(c);
	capture_free(c);
	if (ev_pool_live(fz.pool) != 0) {
		fprintf(stderr, "fuzz_pcap: %zu events not returned to the pool\n",
			ev_pool_live(fz.pool));
		__builtin_trap();
	}
	return 0;
}
