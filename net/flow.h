/* flow.h — the bounded connection table: TCP connections and UDP flows.
 *
 * Keyed by the 5-tuple (direction-independent). On the first packet of a flow the
 * protocol is chosen by port (server = the side whose port a protocol is configured
 * for; for TCP the SYN sender is the client). Flows without a protocol are not
 * tracked. TCP payload goes through tcp_stream.c; UDP payload goes straight to
 * the parser, one datagram per call. Expiry runs on the injected clock: idle for
 * the protocol's transaction_timeout (or flow_timeout) → expire() + free. When the
 * table is full the least recently used flow is evicted (counted "flows.evicted").
 */
#ifndef HOSTBEAT_NET_FLOW_H
#define HOSTBEAT_NET_FLOW_H

#include <stdint.h>

#include "hostbeat/config.h"
#include "hostbeat/event.h"
#include "net/packet.h"

struct flow_table;

/* Returns new table, caller frees with flow_table_free() (which expires every flow
 * first). cfg and sink are borrowed and must outlive the table. NULL on failure. */
struct flow_table *flow_table_new(const struct hb_config *cfg, struct ev_sink *sink);
void flow_table_free(struct flow_table *t);

/* Process one decoded TCP/UDP packet. */
void flow_process(struct flow_table *t, const struct packet *pkt);
/* Expire flows idle for longer than their timeout at time `now`. Cheap when nothing
 * is due; call it every packet or every few ms. */
void flow_tick(struct flow_table *t, uint64_t now);
/* End of capture: expire every flow (pending requests become unmatched events). */
void flow_flush_all(struct flow_table *t, uint64_t now);
size_t flow_count(const struct flow_table *t);

#endif
