/* es_out.h — the Elasticsearch delivery loop (private to shipper/; see es_out.c). */
#ifndef HOSTBEAT_SHIPPER_ES_OUT_H
#define HOSTBEAT_SHIPPER_ES_OUT_H

#include <stdbool.h>

#include "hostbeat/config.h"
#include "hostbeat/encode.h"
#include "shipper/queue.h"

struct es_out;

/* Opens the client, the spool (queue.spool.path) and the dead-letter file. Borrows
 * cfg, eo and q for its whole life. NULL with the reason logged. Does not connect:
 * es_out_run() does, and keeps documents in the spool until it can. */
struct es_out *es_out_new(const struct hb_config *cfg, const struct encode_opts *eo,
			  struct ship_queue *q);
/* Deliver until the queue is closed and everything is delivered, or until
 * past_deadline(arg) is true; then persist what is left in memory to the spool.
 * Takes the events it pops (they go back to their pool). */
void es_out_run(struct es_out *o, bool (*past_deadline)(void *), void *arg);
void es_out_free(struct es_out *o); /* NULL-safe */

#endif
