/* out_console.c — output.console: one JSON document per line on stdout.
 *
 * With `pretty` every document is re-indented (2 spaces, encode_pretty()) and
 * followed by a newline. The stream is flushed at the end of every batch; the
 * batch's documents count as written only when that flush succeeds.
 */
#include <errno.h>

#include "hostbeat/encode.h"
#include "hostbeat/log.h"
#include "hostbeat/mem.h"
#include "hostbeat/strbuf.h"
#include "shipper/output.h"

struct out_console {
	FILE *fp; /* borrowed (stdout) */
	bool pretty;
	struct strbuf pbuf;  /* pretty-printing scratch */
	size_t pending_docs; /* written since the last flush */
	size_t pending_bytes;
	bool failed; /* a write since the last flush failed */
	struct ship_output_counters m;
};

void ship_output_counters(struct ship_output_counters *c)
{
	c->written = metrics_counter("output.events.written");
	c->bytes = metrics_counter("output.bytes");
	c->dropped = metrics_counter("output.events.dropped");
	c->write_errors = metrics_counter("output.write_errors");
}

void *ship_out_console_open_stream(FILE *fp, bool pretty)
{
	struct out_console *c = hb_calloc(1, sizeof(*c));

	if (!c) {
		log_error("shipper.console", "out of memory");
		return NULL;
	}
	c->fp = fp;
	c->pretty = pretty;
	strbuf_init(&c->pbuf);
	ship_output_counters(&c->m);
	return c;
}

static void *console_open(const struct hb_config *cfg)
{
	return ship_out_console_open_stream(stdout, cfg->console_pretty);
}

static void console_write(void *st, const char *buf, const struct ship_doc *docs, size_t n)
{
	struct out_console *c = st;
	const char *p;
	size_t i, len;

	for (i = 0; i < n; i++) {
		p = buf + docs[i].off;
		len = docs[i].len;
		if (c->pretty) {
			strbuf_reset(&c->pbuf);
			encode_pretty(p, len && p[len - 1] == '\n' ? len - 1 : len, &c->pbuf);
			strbuf_putc(&c->pbuf, '\n');
			if (c->pbuf.err) {
				metric_inc(c->m.dropped);
				continue;
			}
			p = c->pbuf.p;
			len = c->pbuf.len;
		}
		if (fwrite(p, 1, len, c->fp) != len)
			c->failed = true;
		c->pending_docs++;
		c->pending_bytes += len;
	}
}

static int console_flush(void *st)
{
	struct out_console *c = st;
	int rc = 0;

	if (fflush(c->fp) != 0 || c->failed || ferror(c->fp)) {
		rc = -EIO;
		metric_inc(c->m.write_errors);
		metric_add(c->m.dropped, c->pending_docs);
		clearerr(c->fp);
	} else {
		metric_add(c->m.written, c->pending_docs);
		metric_add(c->m.bytes, c->pending_bytes);
	}
	c->failed = false;
	c->pending_docs = c->pending_bytes = 0;
	return rc;
}

static void console_close(void *st)
{
	struct out_console *c = st;

	if (!c)
		return;
	console_flush(c);
	strbuf_free(&c->pbuf);
	hb_free(c);
}

const struct ship_output_ops ship_out_console = {
    .name = "console",
    .open = console_open,
    .write = console_write,
    .flush = console_flush,
    .close = console_close,
};
