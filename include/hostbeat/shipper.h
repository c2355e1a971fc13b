/* shipper.h — the pipeline between producers and the output: bounded queue, one
 * shipper thread that encodes (encode.h) and writes through the configured output
 * (output.file or output.console).
 *
 *   producers ──publish()──► queue (cfg->queue_events) ──► shipper thread
 *                                                          encode → output → ev_pool_put
 *
 * When the queue is full, replay mode (-I) blocks the producer until there is room,
 * so reading a file loses nothing; live mode drops the event and counts
 * "queue.dropped" (the disk spool arrives in a later issue and will take those).
 * Counters: "queue.published" (every event handed to publish(), accepted or not:
 * published = written + dropped + dropped_at_shutdown + output drops),
 * "queue.dropped", "queue.dropped_at_shutdown", "queue.producer_waits",
 * "queue.length" (gauge), "output.events.written", "output.bytes",
 * "output.events.dropped", "output.write_errors", "encode.errors".
 */
#ifndef HOSTBEAT_SHIPPER_H
#define HOSTBEAT_SHIPPER_H

#include <stdbool.h>
#include <stdint.h>

#include "hostbeat/config.h"
#include "hostbeat/encode.h"
#include "hostbeat/event.h"

struct shipper;

/* Opens the output (file: creates the directory, checks it is writable). Borrows cfg
 * for the call only; copies *eo, whose strings must outlive the shipper; borrows pool
 * (events published go back to it). Returns NULL with the reason logged. */
struct shipper *shipper_new(const struct hb_config *cfg, const struct encode_opts *eo,
			    struct ev_pool *pool, bool replay);
/* The sink producers publish into (owned by the shipper; valid until shipper_free()).
 * publish() is thread-safe. In replay mode it blocks while the queue is full, so
 * start the shipper before publishing more than queue_events events. */
struct ev_sink *shipper_sink(struct shipper *s);
/* Name the container of each transaction published from now on (container.*, from
 * Docker's state; ctrmap.h); NULL: stop. The map must outlive every publish. */
struct ctrmap;
void shipper_set_ctrmap(struct shipper *s, struct ctrmap *m);
/* Start the shipper thread. 0 or a negative errno. */
int shipper_start(struct shipper *s);
/* Refuse new events, write what is queued for at most timeout_ns, flush and close
 * the output, join the thread. What is left is counted "queue.dropped_at_shutdown"
 * and returned to the pool. Without shipper_start() the draining runs in the caller.
 * Idempotent. */
void shipper_stop(struct shipper *s, uint64_t timeout_ns);
/* From any thread (a signal while a file replay drains): a running or coming
 * shipper_stop() gives up writing timeout_ns from now (never later than a deadline
 * already set); the rest is handled as at the deadline (spooled or counted). */
void shipper_hurry(struct shipper *s, uint64_t timeout_ns);
/* Stops (timeout 0) when still running, then frees. NULL is a no-op. */
void shipper_free(struct shipper *s);

#endif
