/* es_out.c — the Elasticsearch delivery loop of the shipper thread: memory queue →
 * _bulk, with the disk spool taking over whenever Elasticsearch cannot keep up, so
 * nothing is lost and nothing is indexed twice.
 *
 *            ┌──────────── healthy, spool empty ─────────────┐
 *   queue ───┤                                               ├──► bulk batch ──► POST _bulk
 *            └─ backing off / not set up / spool not empty ──► spool ──peek──┘
 *
 * - Every document gets an _id when it is encoded (run prefix + counter) and keeps
 *   it in the spool, and every action is `create`: a document that reached
 *   Elasticsearch before an answer was lost (timeout, kill -9) comes back as 409 on
 *   its next attempt and counts as delivered, not indexed twice.
 * - Per item: 2xx/409 done; 429/5xx retried with capped exponential backoff + jitter
 *   (only those items: bulk_batch_retain()); other 4xx written to the dead-letter
 *   file with the error and counted; 413 splits the request.
 * - A batch from memory that fails moves its undelivered documents to the spool
 *   right away, so a kill -9 during an outage loses nothing the output was handed.
 *   A batch peeked from the spool is acked there only once every item is resolved.
 * - While backing off (or before the start-up GET / and templates succeeded), the
 *   queue is drained into the spool so producers never block or drop; only a full
 *   spool drops, counted "spool.full_drops".
 * - Stop: drain until the queue and spool are empty or the deadline; then whatever
 *   is left in memory is persisted to the spool for the next start.
 *
 * Counters: "output.es.acked", "output.es.duplicates" (409: delivered before),
 * "output.es.retried", "output.es.dead_lettered", "output.es.batches",
 * "output.es.setup_failures", "spool.spooled", "spool.full_drops",
 * gauge "output.es.backoff_ms".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <stdarg.h>
#include <unistd.h>

#include "hostbeat/clock.h"
#include "hostbeat/log.h"
#include "hostbeat/mem.h"
#include "hostbeat/metrics.h"
#include "hostbeat/strbuf.h"
#include "shipper/bulk.h"
#include "shipper/es.h"
#include "shipper/es_out.h"
#include "shipper/esetup.h"
#include "shipper/spool.h"

#define SEL "output.elasticsearch"
#define POP_MAX 512
#define IDLE_WAIT_NS (100 * NS_PER_MS)
#define BULK_PATH "/_bulk?filter_path=errors,items.*.status,items.*.error"
#define MAX_BODY_BYTES (32u << 20) /* raw _bulk body cap (ES default limit: 100 MB) */

struct es_out {
	const struct hb_config *cfg;
	const struct encode_opts *eo;
	struct ship_queue *q;
	struct es_client *es;
	struct spool *spool;
	struct bulk_batch *batch;
	struct bulk_response resp;
	struct strbuf enc;  /* one encoded document */
	struct strbuf recs; /* records of the memory batch: index '\n' id '\n' json */
	size_t *rec_off;    /* per memory-batch document: its record in recs */
	size_t nrec, rec_cap;
	struct event *evs[POP_MAX];
	bool from_spool; /* the batch was peeked from the spool */
	size_t peeked;   /* spool records in the batch */
	bool ready;      /* GET / and templates done */
	uint64_t backoff, retry_at;
	uint64_t id_prefix, id_next;
	unsigned rnd;
	uint64_t warned_at; /* warn_rl(): last warning logged */
	unsigned suppressed;
	FILE *dead;
	struct bulk_index_cache idx_net, idx_sys, idx_self;
	struct metric *acked, *dups, *retried, *dead_n, *batches, *setup_fail, *spooled,
	    *full_drops, *backoff_ms, *encode_errors, *out_dropped, *written;
};

#define WARN_EVERY_NS (10 * NS_PER_SEC)

/* A warning at most every 10 s (an outage must not flood the log); the ones held
 * back are counted in the next. */
static void warn_rl(struct es_out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warn_rl(struct es_out *o, const char *fmt, ...)
{
	uint64_t now = clock_mono_ns();
	char msg[512];
	va_list ap;

	if (o->warned_at && now - o->warned_at < WARN_EVERY_NS) {
		o->suppressed++;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (o->suppressed)
		log_warn(SEL, "%s (%u similar warnings held back)", msg, o->suppressed);
	else
		log_warn(SEL, "%s", msg);
	o->warned_at = now;
	o->suppressed = 0;
}

/* A JSON string of n bytes of valid UTF-8 (the response parser made it so). */
static void json_str(struct strbuf *sb, const char *s, size_t n)
{
	strbuf_putc(sb, '"');
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\') {
			strbuf_putc(sb, '\\');
			strbuf_putc(sb, (char)c);
		} else if (c < 0x20) {
			strbuf_appendf(sb, "\\u%04x", c);
		} else {
			strbuf_putc(sb, (char)c);
		}
	}
	strbuf_putc(sb, '"');
}

/* ---- documents ------------------------------------------------------------ */

/* The index of an event: the configured pattern for its kind, over its @timestamp. */
static const char *index_of(struct es_out *o, const struct event *ev)
{
	const char *name = NULL;
	int64_t ts = (int64_t)ev->ts;

	switch (ev->kind) {
	case EV_KIND_TRANSACTION:
		bulk_index_cached(&o->idx_net, o->cfg->es_index, ts, o->eo->agent_version, &name);
		break;
	case EV_KIND_METRIC:
		bulk_index_cached(&o->idx_sys, o->cfg->es_topbeat_index, ts, o->eo->agent_version,
				  &name);
		break;
	case EV_KIND_SELF:
		bulk_index_cached(&o->idx_self, "hostbeat-metrics-%{+yyyy.MM.dd}", ts,
				  o->eo->agent_version, &name);
		break;
	}
	return name && *name ? name : NULL;
}

/* 20 characters of base64url: 60 bits of the run prefix, 60 of the counter. */
static void make_id(struct es_out *o, char id[21])
{
	static const char b64[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	uint64_t a = o->id_prefix, b = o->id_next++;

	for (int i = 0; i < 10; i++, a >>= 6)
		id[i] = b64[a & 63];
	for (int i = 10; i < 20; i++, b >>= 6)
		id[i] = b64[b & 63];
	id[20] = '\0';
}

/* Encode ev into a record "index\nid\njson" appended to sb; 0 or a negative errno. */
static int encode_record(struct es_out *o, const struct event *ev, struct strbuf *sb)
{
	const char *index = index_of(o, ev);
	size_t start = sb->len;
	char id[21];
	int rc;

	if (!index)
		return -EINVAL;
	make_id(o, id);
	strbuf_puts(sb, index);
	strbuf_putc(sb, '\n');
	strbuf_puts(sb, id);
	strbuf_putc(sb, '\n');
	rc = sb->err ? -ENOMEM : encode_event(ev, o->eo, sb);
	if (rc < 0) {
		strbuf_truncate(sb, start);
		sb->err = false;
	}
	return rc;
}

/* Split a record into its three parts; false when it is not one of ours. */
static bool split_record(const char *p, size_t len, const char **index, const char **id,
			 const char **json, size_t *json_len, size_t *index_len, size_t *id_len)
{
	const char *nl1 = memchr(p, '\n', len), *nl2;

	if (!nl1)
		return false;
	nl2 = memchr(nl1 + 1, '\n', len - (size_t)(nl1 + 1 - p));
	if (!nl2 || nl1 == p || nl2 == nl1 + 1 || nl2 + 1 >= p + len)
		return false;
	*index = p;
	*index_len = (size_t)(nl1 - p);
	*id = nl1 + 1;
	*id_len = (size_t)(nl2 - nl1 - 1);
	*json = nl2 + 1;
	*json_len = len - (size_t)(nl2 + 1 - p);
	return true;
}

/* Add one record to the batch; user = its position in the memory records (or none). */
static int add_record(struct es_out *o, const char *p, size_t len, size_t user)
{
	const char *index, *id, *json;
	size_t jl, il, dl;
	char ibuf[BULK_INDEX_MAX + 1], idbuf[64];

	if (!split_record(p, len, &index, &id, &json, &jl, &il, &dl) || il > BULK_INDEX_MAX ||
	    dl >= sizeof(idbuf))
		return -EINVAL;
	memcpy(ibuf, index, il);
	ibuf[il] = '\0';
	memcpy(idbuf, id, dl);
	idbuf[dl] = '\0';
	return bulk_batch_add_id(o->batch, ibuf, idbuf, o->cfg->es_pipeline, json, jl,
				 (void *)(uintptr_t)user);
}

/* ---- spool ---------------------------------------------------------------- */

static void spool_put(struct es_out *o, const char *p, size_t len)
{
	int rc = spool_append(o->spool, p, len);

	if (rc == 0) {
		metric_inc(o->spooled);
		return;
	}
	metric_inc(o->full_drops);
	if (rc != -ENOSPC && rc != -EMSGSIZE)
		warn_rl(o, "spool write failed: %s (document dropped)", strerror(-rc));
}

/* Encode events straight into the spool (the output is not taking them now). */
static void spool_events(struct es_out *o, struct event **evs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		strbuf_reset(&o->enc);
		if (encode_record(o, evs[i], &o->enc) < 0) {
			metric_inc(o->encode_errors);
			metric_inc(o->out_dropped);
		} else {
			spool_put(o, o->enc.p, o->enc.len);
		}
		ev_pool_put(evs[i]);
	}
	if (n)
		spool_sync(o->spool);
}

/* The undelivered documents of a memory batch go to the spool (order kept). */
static void spool_batch(struct es_out *o)
{
	size_t n = bulk_batch_count(o->batch);

	for (size_t i = 0; i < n && !o->from_spool; i++) {
		size_t r = (size_t)(uintptr_t)bulk_batch_item(o->batch, i)->user;
		size_t end = r + 1 < o->nrec ? o->rec_off[r + 1] : o->recs.len;

		spool_put(o, o->recs.p + o->rec_off[r], end - o->rec_off[r]);
	}
	if (n && !o->from_spool)
		spool_sync(o->spool);
	bulk_batch_reset(o->batch);
	o->nrec = 0;
	strbuf_reset(&o->recs);
}

/* ---- batches --------------------------------------------------------------- */

static int keep_rec_off(struct es_out *o, size_t off)
{
	if (o->nrec == o->rec_cap) {
		size_t cap = o->rec_cap ? o->rec_cap * 2 : 1024;
		size_t *v = hb_realloc(o->rec_off, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		o->rec_off = v;
		o->rec_cap = cap;
	}
	o->rec_off[o->nrec++] = off;
	return 0;
}

/* Encode popped events into the memory batch; events that do not fit wait in the
 * spool (order kept: the spool is empty whenever the memory path runs). */
static void batch_events(struct es_out *o, struct event **evs, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		size_t off = o->recs.len;
		int rc = encode_record(o, evs[i], &o->recs);

		if (rc == 0)
			rc = keep_rec_off(o, off);
		if (rc == 0)
			rc = add_record(o, o->recs.p + off, o->recs.len - off, o->nrec - 1);
		if (rc == -ENOSPC) { /* batch full: this and the rest go to the spool */
			o->nrec--;
			spool_put(o, o->recs.p + off, o->recs.len - off);
			strbuf_truncate(&o->recs, off);
		} else if (rc < 0) {
			if (o->nrec && o->rec_off[o->nrec - 1] == off)
				o->nrec--;
			strbuf_truncate(&o->recs, off);
			o->recs.err = false;
			metric_inc(o->encode_errors);
			metric_inc(o->out_dropped);
		}
		ev_pool_put(evs[i]);
	}
}

static void peek_spool(struct es_out *o)
{
	struct spool_doc docs[POP_MAX];
	size_t want = o->cfg->es_bulk_max_size < POP_MAX ? o->cfg->es_bulk_max_size : POP_MAX;
	long got = spool_peek(o->spool, docs, want);
	size_t n = got > 0 ? (size_t)got : 0, added = 0;

	o->from_spool = true;
	o->peeked = n;
	for (size_t i = 0; i < n; i++) {
		int rc = add_record(o, docs[i].data, docs[i].len, 0);

		if (rc == -ENOSPC) { /* the batch's byte cap: ack only what went in */
			o->peeked = i;
			break;
		}
		if (rc < 0) /* not a record of ours: nothing to deliver, acked with the batch */
			metric_inc(o->out_dropped);
		else
			added++;
	}
	if (!added && o->peeked) { /* only garbage: ack it away */
		spool_ack(o->spool, o->peeked);
		o->peeked = 0;
		o->from_spool = false;
	}
}

/* Write one refused document to the dead-letter file: the error and the document. */
static void dead_letter(struct es_out *o, size_t i, size_t ri)
{
	struct bulk_item *it = bulk_batch_item(o->batch, i);
	const char *raw = bulk_batch_raw(o->batch) + it->off, *nl;
	size_t tl, rl;
	const char *type = bulk_item_err_type(&o->resp, ri, &tl);
	const char *reason = bulk_item_err_reason(&o->resp, ri, &rl);
	struct strbuf line;

	metric_inc(o->dead_n);
	if (!o->dead)
		return;
	nl = memchr(raw, '\n', it->len);
	if (!nl)
		return;
	strbuf_init(&line);
	strbuf_appendf(&line, "{\"status\":%u,\"error\":{\"type\":", o->resp.item[ri].status);
	json_str(&line, type ? type : "", type ? tl : 0);
	strbuf_puts(&line, ",\"reason\":");
	json_str(&line, reason ? reason : "", reason ? rl : 0);
	strbuf_puts(&line, "},\"action\":");
	strbuf_append(&line, raw, (size_t)(nl - raw));
	strbuf_puts(&line, ",\"document\":");
	strbuf_append(&line, nl + 1, it->len - (size_t)(nl + 1 - raw) - 1);
	strbuf_puts(&line, "}\n");
	if (!line.err)
		fwrite(line.p, 1, line.len, o->dead);
	strbuf_free(&line);
}

/* POST items [from, to); 413 splits. Returns false on a transport failure. */
static bool send_range(struct es_out *o, size_t from, size_t to)
{
	struct bulk_payload pl;
	struct es_response r;
	int rc;

	if (bulk_batch_payload(o->batch, from, to, &pl) < 0)
		return false;
	rc =
	    es_request(o->es, "POST", BULK_PATH, "application/x-ndjson", pl.p, pl.len, pl.gzip, &r);
	if (rc < 0) {
		warn_rl(o, "bulk request failed: %s", es_client_error(o->es));
		return false;
	}
	if (bulk_response_parse(&o->resp, r.status, r.body, r.len, to - from) < 0)
		return true; /* items stay RETRY */
	if (o->resp.outcome == BULK_OUT_SPLIT && to - from > 1) {
		size_t mid = from + (to - from) / 2;

		return send_range(o, from, mid) && send_range(o, mid, to);
	}
	bulk_batch_record(o->batch, from, &o->resp);
	metric_add(o->acked, o->resp.n_ack + o->resp.n_duplicate);
	metric_add(o->written, o->resp.n_ack + o->resp.n_duplicate);
	metric_add(o->dups, o->resp.n_duplicate);
	for (size_t i = from; i < to; i++)
		if (bulk_batch_item(o->batch, i)->verdict == BULK_DEAD)
			dead_letter(o, i, i - from);
	if (o->resp.outcome == BULK_OUT_RETRY)
		warn_rl(o, "bulk request answered %d: retrying", o->resp.http_status);
	return true;
}

static void backoff(struct es_out *o)
{
	uint64_t max = o->cfg->es_backoff_max, b;

	b = o->backoff ? o->backoff * 2 : o->cfg->es_backoff_init;
	if (b > max)
		b = max;
	o->backoff = b;
	/* full jitter in [b/2, b] so many agents do not retry in step */
	o->retry_at = clock_mono_ns() + b / 2 + (uint64_t)rand_r(&o->rnd) % (b / 2 + 1);
	metric_set(o->backoff_ms, b / NS_PER_MS);
}

/* Send the batch; resolve what can be resolved, back off for the rest. */
static void send_batch(struct es_out *o)
{
	size_t n = bulk_batch_count(o->batch), kept;
	bool transport_ok;

	metric_inc(o->batches);
	transport_ok = send_range(o, 0, n);
	kept = bulk_batch_retain(o->batch);
	if (kept == 0) {
		if (o->from_spool)
			spool_ack(o->spool, o->peeked);
		o->from_spool = false;
		o->peeked = 0;
		o->nrec = 0;
		strbuf_reset(&o->recs);
		o->backoff = 0;
		metric_set(o->backoff_ms, 0);
		return;
	}
	metric_add(o->retried, kept);
	if (!transport_ok)
		o->ready = false; /* reconnect: GET / and templates again (maybe another host) */
	if (!o->from_spool)
		spool_batch(o); /* a kill -9 from now on loses nothing */
	backoff(o);
}

/* ---- set-up: GET /, templates ---------------------------------------------- */

static int setup(struct es_out *o)
{
	char err[256];

	if (es_setup_run(o->es, o->cfg, o->eo->agent_version, ES_SETUP_INSTALL, NULL, err,
			 sizeof(err)) == 0) {
		log_info(SEL, "connected to %s", es_client_host(o->es));
		return 0;
	}
	metric_inc(o->setup_fail);
	warn_rl(o, "%s (documents wait in the spool)", err);
	return -EAGAIN;
}

/* ---- the loop --------------------------------------------------------------- */

void es_out_run(struct es_out *o, bool (*past_deadline)(void *), void *arg)
{
	bool closed = false;
	size_t n;

	while (!past_deadline(arg)) {
		uint64_t now = clock_mono_ns();
		bool due = now >= o->retry_at;

		if (!o->ready && due) {
			o->ready = setup(o) == 0;
			if (!o->ready) {
				backoff(o);
				continue;
			}
		}
		if (o->ready && due) {
			if (bulk_batch_count(o->batch) == 0 && spool_count(o->spool) > 0) {
				/* keep the queue flowing into the spool behind the backlog */
				n = ship_queue_pop_wait(o->q, o->evs, POP_MAX, 0, &closed);
				spool_events(o, o->evs, n);
				peek_spool(o);
				if (bulk_batch_count(o->batch) ==
				    0) { /* a spool read error: no spin */
					struct timespec ts = {0, (long)IDLE_WAIT_NS};

					nanosleep(&ts, NULL);
				}
			} else if (bulk_batch_count(o->batch) == 0) {
				n = ship_queue_pop_wait(o->q, o->evs, POP_MAX, IDLE_WAIT_NS,
							&closed);
				batch_events(o, o->evs, n);
				/* top up while more is queued and the batch has room */
				while (n == POP_MAX &&
				       bulk_batch_count(o->batch) < o->cfg->es_bulk_max_size) {
					n = ship_queue_pop_wait(o->q, o->evs, POP_MAX, 0, &closed);
					batch_events(o, o->evs, n);
				}
			}
			if (bulk_batch_count(o->batch) > 0) {
				send_batch(o);
				continue;
			}
			if (closed && spool_count(o->spool) == 0)
				break; /* stopping, and everything is delivered */
			continue;
		}
		/* Not taking documents now: the queue drains into the spool. */
		{
			uint64_t wait = o->retry_at > now ? o->retry_at - now : 0;

			if (wait > IDLE_WAIT_NS)
				wait = IDLE_WAIT_NS;
			n = ship_queue_pop_wait(o->q, o->evs, POP_MAX, wait, &closed);
			spool_events(o, o->evs, n);
			if (closed && n == 0) {
				/* a closed queue does not wait: sleep out the backoff here */
				struct timespec ts = {0, (long)wait};

				if (wait)
					nanosleep(&ts, NULL);
			}
		}
	}
	/* Persist what is still in memory for the next start. */
	spool_batch(o);
	while ((n = ship_queue_pop_wait(o->q, o->evs, POP_MAX, 0, &closed)) > 0)
		spool_events(o, o->evs, n);
	spool_sync(o->spool);
	if (spool_count(o->spool))
		log_info(SEL, "%zu documents left in the spool %s for the next start",
			 (size_t)spool_count(o->spool), o->cfg->spool_path);
}

/* ---- life cycle ------------------------------------------------------------- */

struct es_out *es_out_new(const struct hb_config *cfg, const struct encode_opts *eo,
			  struct ship_queue *q)
{
	struct es_out *o = hb_calloc(1, sizeof(*o));
	struct spool_opts so = {0};
	struct timespec ts;
	char err[256];
	int rc;

	if (!o) {
		log_error(SEL, "out of memory");
		return NULL;
	}
	o->cfg = cfg;
	o->eo = eo;
	o->q = q;
	strbuf_init(&o->enc);
	strbuf_init(&o->recs);
	bulk_response_init(&o->resp);
	clock_gettime(CLOCK_REALTIME, &ts);
	o->rnd = (unsigned)ts.tv_nsec ^ (unsigned)getpid();
	o->id_prefix =
	    ((uint64_t)ts.tv_sec << 30) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 44);
	o->acked = metrics_counter("output.es.acked");
	o->dups = metrics_counter("output.es.duplicates");
	o->retried = metrics_counter("output.es.retried");
	o->dead_n = metrics_counter("output.es.dead_lettered");
	o->batches = metrics_counter("output.es.batches");
	o->setup_fail = metrics_counter("output.es.setup_failures");
	o->spooled = metrics_counter("spool.spooled");
	o->full_drops = metrics_counter("spool.full_drops");
	o->backoff_ms = metrics_gauge("output.es.backoff_ms");
	o->encode_errors = metrics_counter("encode.errors");
	o->out_dropped = metrics_counter("output.events.dropped");
	o->written = metrics_counter("output.events.written");

	o->es = es_client_new(cfg, err, sizeof(err));
	if (!o->es) {
		log_error(SEL, "%s", err);
		goto fail;
	}
	o->batch =
	    bulk_batch_new(cfg->es_bulk_max_size, MAX_BODY_BYTES, (int)cfg->es_compression_level);
	if (!o->batch) {
		log_error(SEL, "out of memory");
		goto fail;
	}
	so.max_bytes = cfg->spool_max_bytes;
	so.segment_bytes = cfg->spool_segment_bytes;
	so.fsync = strcmp(cfg->spool_fsync, "always") == 0  ? SPOOL_FSYNC_ALWAYS
		   : strcmp(cfg->spool_fsync, "never") == 0 ? SPOOL_FSYNC_NEVER
							    : SPOOL_FSYNC_BATCH;
	o->spool = spool_open(cfg->spool_path, &so, &rc);
	if (!o->spool) {
		log_error(SEL, "cannot open the spool %s: %s", cfg->spool_path, strerror(-rc));
		goto fail;
	}
	if (spool_count(o->spool))
		log_info(SEL, "%zu documents in the spool from an earlier run will be sent first",
			 (size_t)spool_count(o->spool));
	if (cfg->es_dead_letter_path && *cfg->es_dead_letter_path) {
		o->dead = fopen(cfg->es_dead_letter_path, "a");
		if (!o->dead)
			log_warn(SEL,
				 "cannot open the dead-letter file %s: %s (refused documents "
				 "are only counted)",
				 cfg->es_dead_letter_path, strerror(errno));
		else
			setvbuf(o->dead, NULL, _IOLBF, 0);
	}
	return o;
fail:
	es_out_free(o);
	return NULL;
}

void es_out_free(struct es_out *o)
{
	if (!o)
		return;
	if (o->dead)
		fclose(o->dead);
	spool_close(o->spool);
	bulk_batch_free(o->batch);
	bulk_response_free(&o->resp);
	es_client_free(o->es);
	strbuf_free(&o->enc);
	strbuf_free(&o->recs);
	hb_free(o->rec_off);
	hb_free(o);
}
