/* output.h — what every shipper output implements (private to shipper/).
 *
 * The shipper thread encodes a batch of events into one buffer of NDJSON lines and
 * hands it over as `ship_doc`s; the output writes them and, at flush, accounts for
 * them: it alone knows what reached the file or stream, so it counts
 * "output.events.written", "output.bytes", "output.events.dropped" and
 * "output.write_errors". Every call comes from the shipper thread only.
 */
#ifndef HOSTBEAT_SHIPPER_OUTPUT_H
#define HOSTBEAT_SHIPPER_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "hostbeat/config.h"
#include "hostbeat/encode.h"
#include "hostbeat/metrics.h"

/* One document of a batch: buf[off, off + len) ends with '\n'. */
struct ship_doc {
	size_t off, len;
	char index[ENCODE_INDEX_NAME_LEN]; /* encode_index_name() of the event */
};

struct ship_output_counters {
	struct metric *written, *bytes, *dropped, *write_errors;
};

struct ship_output_ops {
	const char *name;
	/* A new output state, or NULL with the reason logged. Borrows cfg for the call. */
	void *(*open)(const struct hb_config *cfg);
	/* Write (buffer) n documents of buf. Never fails as a whole: a document that
	 * cannot be written is counted dropped. */
	void (*write)(void *st, const char *buf, const struct ship_doc *docs, size_t n);
	/* Push buffered data to the kernel/stream; 0 or a negative errno. */
	int (*flush)(void *st);
	/* Flush and release everything. NULL is a no-op. */
	void (*close)(void *st);
};

extern const struct ship_output_ops ship_out_file;
extern const struct ship_output_ops ship_out_console;

/* Register the four output counters (start-up). */
void ship_output_counters(struct ship_output_counters *c);

/* Console output writing to `fp` instead of stdout (tests). Same ops otherwise. */
void *ship_out_console_open_stream(FILE *fp, bool pretty);

#endif
