/* shipper.c — producers → bounded queue → one shipper thread → encode → output.
 *
 * Follows the libbeat pipeline shape (packetbeat.md §4.5: memory queue, one output
 * worker) with the drops made visible:
 *
 *   publish() ──push──► ship_queue ──pop ≤ SHIP_BATCH under one lock──► ship_batch():
 *                                      encode_event() + '\n' into one strbuf,
 *                                      ev_pool_put() right away (frees pool room),
 *                                      output->write(docs), output->flush()
 *
 * Full queue: replay blocks the producer (a file replay must not lose events), live
 * drops the new event and counts "queue.dropped". TODO(spool): the disk spool of a
 * later issue takes the event here instead of dropping it.
 * Shutdown: close the queue (new events are refused and counted
 * "queue.dropped_at_shutdown"), drain until empty or the deadline, close the output,
 * count what is left.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <string.h>

#include "hostbeat/clock.h"
#include "hostbeat/ctrmap.h"
#include "hostbeat/log.h"
#include "hostbeat/mem.h"
#include "hostbeat/metrics.h"
#include "hostbeat/shipper.h"
#include "hostbeat/strbuf.h"
#include "shipper/es_out.h"
#include "shipper/output.h"
#include "shipper/queue.h"

#define SHIP_BATCH 512
#define SHIP_DEFAULT_QUEUE 4096
#define SHIP_REPLAY_HIGH_WATER 256 /* replay: queue depth at which the reader waits */

#define SEL "shipper"

struct shipper {
	struct ev_sink sink; /* handed to producers; publish() finds the shipper from it */
	struct encode_opts eo;
	struct encode_tmpl *tmpl; /* owned; eo.tmpl points at it (NULL: general encoder) */
	bool replay;
	struct ship_queue *q;
	const struct ship_output_ops *ops;
	void *out;                     /* output state; NULL once closed */
	struct es_out *es;             /* output.elasticsearch instead of ops/out */
	struct ctrmap *_Atomic ctrmap; /* container.* for transactions; NULL: none */
	pthread_t thread;
	bool started, stopped;
	atomic_bool stopping;
	_Atomic uint64_t deadline; /* clock_mono_ns() limit for draining, when stopping */
	struct strbuf sb;          /* one batch of NDJSON lines */
	struct event *batch[SHIP_BATCH];
	struct ship_doc docs[SHIP_BATCH];
	struct metric *published, *dropped, *dropped_shutdown, *waits;
	struct metric *encode_errors, *out_dropped, *ctr_nospace;
};

static struct shipper *ship_of(struct ev_sink *sink)
{
	return (struct shipper *)(void *)((char *)sink - offsetof(struct shipper, sink));
}

static void ship_publish(struct ev_sink *sink, struct event *ev)
{
	struct shipper *s = ship_of(sink);
	bool waited = false;
	int rc;

	metric_inc(s->published);
	if (ev->has_tuple) {
		struct ctrmap *m = atomic_load_explicit(&s->ctrmap, memory_order_acquire);

		if (m && ctrmap_enrich(m, ev) < 0)
			metric_inc(s->ctr_nospace); /* the event goes without container.* */
	}
	rc = ship_queue_push(s->q, ev, s->replay, &waited);
	if (waited)
		metric_inc(s->waits);
	if (rc == 0)
		return;
	/* -EAGAIN: live and full (spool: later issue); -EPIPE: shutting down */
	metric_inc(rc == -EPIPE ? s->dropped_shutdown : s->dropped);
	ev_pool_put(ev);
}

void shipper_set_ctrmap(struct shipper *s, struct ctrmap *m)
{
	atomic_store_explicit(&s->ctrmap, m, memory_order_release);
}

/* Encode n popped events, give them back to the pool, write and flush. */
static void ship_batch(struct shipper *s, size_t n)
{
	size_t i, nd = 0, off;
	struct event *ev;
	int rc;

	strbuf_reset(&s->sb);
	for (i = 0; i < n; i++) {
		ev = s->batch[i];
		off = s->sb.len;
		rc = encode_event(ev, &s->eo, &s->sb);
		if (rc == 0 && strbuf_putc(&s->sb, '\n') < 0)
			rc = -ENOMEM;
		if (rc < 0) {
			strbuf_truncate(&s->sb, off);
			s->sb.err = false; /* the buffer is intact up to off; go on */
			metric_inc(s->encode_errors);
			metric_inc(s->out_dropped);
		} else {
			s->docs[nd].off = off;
			s->docs[nd].len = s->sb.len - off;
			encode_index_name(ev, s->docs[nd].index, sizeof(s->docs[nd].index));
			nd++;
		}
	}
	ev_pool_put_many(s->batch, n);
	if (nd)
		s->ops->write(s->out, s->sb.p, s->docs, nd);
	s->ops->flush(s->out);
}

static bool ship_past_deadline(struct shipper *s)
{
	return atomic_load(&s->stopping) && clock_mono_ns() >= atomic_load(&s->deadline);
}

static bool ship_past_deadline_cb(void *arg)
{
	return ship_past_deadline(arg);
}

/* The shipper loop: until the queue is closed and empty, or the stop deadline. */
static void ship_run(struct shipper *s)
{
	size_t n;

	if (s->es) { /* output.elasticsearch: its own loop (spool, retries) */
		es_out_run(s->es, ship_past_deadline_cb, s);
		return;
	}

	while (!ship_past_deadline(s)) {
		n = ship_queue_pop(s->q, s->batch, SHIP_BATCH);
		if (!n)
			break;
		ship_batch(s, n);
	}
	s->ops->close(s->out);
	s->out = NULL;
}

static void *ship_thread(void *arg)
{
	ship_run(arg);
	return NULL;
}

struct shipper *shipper_new(const struct hb_config *cfg, const struct encode_opts *eo,
			    struct ev_pool *pool, bool replay)
{
	struct shipper *s;
	const struct ship_output_ops *ops;

	if (cfg->es_enabled) {
		ops = NULL;
	} else if (cfg->file_enabled) {
		ops = &ship_out_file;
		if (cfg->console_enabled)
			log_warn(
			    SEL,
			    "output.file and output.console are both enabled; using output.file");
	} else if (cfg->console_enabled) {
		ops = &ship_out_console;
	} else {
		log_error(SEL, "no output enabled: output.elasticsearch, output.file or "
			       "output.console");
		return NULL;
	}
	s = hb_calloc(1, sizeof(*s));
	if (!s) {
		log_error(SEL, "out of memory");
		return NULL;
	}
	s->eo = *eo;
	s->tmpl = encode_tmpl_new(&s->eo); /* NULL: the general encoder, same bytes */
	s->eo.tmpl = s->tmpl;
	s->replay = replay;
	s->ops = ops;
	s->sink.publish = ship_publish;
	s->sink.pool = pool;
	strbuf_init(&s->sb);
	atomic_init(&s->stopping, false);
	atomic_init(&s->deadline, 0);
	s->published = metrics_counter("queue.published");
	s->dropped = metrics_counter("queue.dropped");
	s->dropped_shutdown = metrics_counter("queue.dropped_at_shutdown");
	s->waits = metrics_counter("queue.producer_waits");
	s->encode_errors = metrics_counter("encode.errors");
	s->out_dropped = metrics_counter("output.events.dropped");
	s->ctr_nospace = metrics_counter("ctrmap.enrich_no_room");
	s->q = ship_queue_new(cfg->queue_events ? cfg->queue_events : SHIP_DEFAULT_QUEUE);
	if (!s->q) {
		log_error(SEL, "out of memory");
		goto err;
	}
	if (ops)
		s->out = ops->open(cfg);
	else
		s->es = es_out_new(cfg, &s->eo, s->q);
	if (!s->out && !s->es)
		goto err; /* the output logged why */
	log_info(SEL, "output %s, queue of %zu events, %s mode", ops ? ops->name : "elasticsearch",
		 (size_t)(cfg->queue_events ? cfg->queue_events : SHIP_DEFAULT_QUEUE),
		 replay ? "replay (blocking)" : "live (drop when full)");
	return s;
err:
	s->stopped = true;
	shipper_free(s);
	return NULL;
}

struct ev_sink *shipper_sink(struct shipper *s)
{
	return &s->sink;
}

int shipper_start(struct shipper *s)
{
	int rc;

	if (s->started || s->stopped)
		return -EALREADY;
	rc = pthread_create(&s->thread, NULL, ship_thread, s);
	if (rc == 0 && s->replay)
		ship_queue_set_high_water(s->q, SHIP_REPLAY_HIGH_WATER);
	if (rc) {
		log_error(SEL, "cannot start the shipper thread: %s", strerror(rc));
		return -rc;
	}
	s->started = true;
	return 0;
}

void shipper_stop(struct shipper *s, uint64_t timeout_ns)
{
	struct event *ev, *next;
	size_t n;

	if (s->stopped)
		return;
	s->stopped = true;
	shipper_hurry(s, timeout_ns); /* keeps an earlier deadline a signal already set */
	ship_queue_close(s->q);
	if (s->started)
		pthread_join(s->thread, NULL);
	else
		ship_run(s);
	for (ev = ship_queue_take_all(s->q, &n); ev; ev = next) {
		next = ev->next;
		ev_pool_put(ev);
	}
	if (n) {
		metric_add(s->dropped_shutdown, n);
		log_warn(SEL, "%zu queued events not written before the shutdown timeout", n);
	}
}

void shipper_hurry(struct shipper *s, uint64_t timeout_ns)
{
	uint64_t now = clock_mono_ns();
	uint64_t d = timeout_ns > UINT64_MAX - now ? UINT64_MAX : now + timeout_ns;

	if (!atomic_load(&s->stopping) || d < atomic_load(&s->deadline))
		atomic_store(&s->deadline, d);
	atomic_store(&s->stopping, true);
}

void shipper_free(struct shipper *s)
{
	if (!s)
		return;
	if (!s->stopped)
		shipper_stop(s, 0);
	if (s->out)
		s->ops->close(s->out);
	es_out_free(s->es);
	ship_queue_free(s->q);
	strbuf_free(&s->sb);
	encode_tmpl_free(s->tmpl);
	hb_free(s);
}
