/* capture.h — libpcap sources: live devices (one thread each) or a pcap file (-I).
 *
 * A capture owns its pcap handle, its decoder and its flow table (flows never cross
 * threads). Live: immediate mode, `buffer_size` ring, snaplen, BPF filter (given or
 * generated from the protocol ports). File: pcap or pcapng, packet clock, -t/-l.
 */
#ifndef HOSTBEAT_NET_CAPTURE_H
#define HOSTBEAT_NET_CAPTURE_H

#include <stdbool.h>
#include <stddef.h>

#include "hostbeat/clock.h"
#include "hostbeat/config.h"
#include "hostbeat/event.h"

struct capture;

/* Expand cfg->devices (names, globs like "br-*", "any") minus cfg->exclude against
 * pcap_findalldevs(); "docker0" that does not exist falls back to "any" with a log
 * line saying so. Fills names (caller frees each and the array). 0 or -errno. */
int capture_resolve_devices(const struct hb_config *cfg, char ***names, size_t *n);
/* The BPF filter: cfg->bpf_filter or "tcp port 80 or udp port 53 or ..." from the
 * enabled protocols (both VLAN-tagged and untagged). Caller frees. */
char *capture_build_filter(const struct hb_config *cfg);

/* Open a live device or (device == NULL) cfg->pcap_file. Errors are logged with the
 * reason (permission, no such device, bad filter). Returns new capture or NULL. */
struct capture *capture_open(const struct hb_config *cfg, const char *device,
			     struct hb_clock *clock, struct ev_sink *sink);
/* Live: start the capture thread. File: read the whole file on the calling thread
 * (honouring -t and -l), then flush every flow at EOF. 0 or -errno. */
int capture_run(struct capture *c);
/* Ask the loop to stop (signal-safe flag + pcap_breakloop); join the thread; flush flows. */
void capture_stop(struct capture *c);
/* Only set the stop flag and pcap_breakloop() (async-signal-safe; no join). A file
 * replay in capture_run() then ends after the current packet and flushes its flows. */
void capture_request_stop(struct capture *c);
void capture_free(struct capture *c);
const char *capture_device(const struct capture *c);

struct capture_stats {
	uint64_t packets, bytes;
	uint64_t kernel_drops; /* pcap_stats ps_drop */
	uint64_t iface_drops;  /* pcap_stats ps_ifdrop */
};
void capture_get_stats(struct capture *c, struct capture_stats *st);

#endif
