/* fuzz_stream.h — shared machinery of the protocol-parser libFuzzer harnesses.
 *
 * Follows the parser contract of include/hostbeat/proto.h and imitates the stream
 * layer of net/tcp_stream.c closely enough that a parser sees what it would see in
 * production:
 *   - TCP: the unconsumed tail of each direction is kept and re-presented together
 *     with the next bytes; parse() is called again while it returns PARSE_OK with
 *     progress, and not before the `needed` bytes of a PARSE_NEED_MORE arrived.
 *   - a gap of n bytes is declared to the parser as n + the unconsumed tail, which is
 *     dropped (the tail belongs to the lost position); a refused gap (-1) resets the
 *     connection: expire() + conn_free() + conn_new().
 *   - PARSE_ERROR ends the connection for good: expire() + conn_free(), later input
 *     is ignored.
 *   - UDP (fz_opts.udp): every chunk is one datagram; no tail, a bad datagram costs
 *     only itself.
 * On top of the stream imitation the harness checks the contract: consumed <= len,
 * no PARSE_OK without progress, and no pooled event may outlive the connection.
 *
 * Usage (every function is static; one harness includes this once):
 *
 *   struct fz_run r;
 *   fz_open(&r, ops, &opts);          allocates priv + event pool, default config
 *   r.cfg.send_request = ...;         common knobs are plain fields of r.cfg
 *   fz_set(&r, "max_rows", 10);       protocol knobs go into the parser's priv
 *   fz_start(&r);                     conn_new()
 *   fz_run_records(&r, data, size);   the common [h][payload] input layout, or own
 *                                     loop over fz_feed/fz_gap/fz_fin/fz_expire
 *   fz_close(&r);                     the one cleanup path: expire, free, leak check
 *
 * or, for the common layout below, all of it in one call: fz_main().
 *
 * Common input layout (fz_run_records):
 *   records  [h][payload]: h & 0x7f = n > 0 → the next n bytes go to the server
 *            (h & 0x80 clear; inverted by fz_opts.hi_bit_to_server) or the client in
 *            one fz_feed() (so the fuzzer controls split points);
 *            n == 0 → an event byte e follows, decoded by fz_opts.event, by default
 *            fz_event_default(): e % 5 = 0 fin client, 1 fin server, 2 gap
 *            (e >> 3) + 1 bytes in direction e & 4, 3 clock + (e >> 3) seconds,
 *            4 expire.
 *   The clock advances 1 ms per record. The loop stops once the connection is gone.
 *
 * Memory: plain malloc/calloc (the harness is not the agent; allocation failure
 * aborts). Everything is owned by struct fz_run and released by fz_close().
 */
#ifndef HB_FUZZ_STREAM_H
#define HB_FUZZ_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <netinet/in.h>

#include "hostbeat/clock.h"
#include "hostbeat/config.h"
#include "hostbeat/event.h"
#include "hostbeat/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fz_run;

/* A numeric priv override whose value depends on the tiny-limits option bit. */
struct fz_limit {
	const char *key;
	uint64_t tiny, normal;
};

struct fz_opts {
	uint16_t server_port;
	bool udp;              /* datagrams (IPPROTO_UDP), else a TCP stream */
	bool hi_bit_to_server; /* fz_run_records: h & 0x80 means DIR_TO_SERVER */
	/* Event pool limits; 0 = 16 events, 256 KiB per event, 256 fields. */
	size_t pool_events, pool_event_bytes, pool_fields;
	/* fz_run_records: decodes an event byte; NULL = fz_event_default. */
	void (*event)(struct fz_run *r, uint8_t e);
	/* fz_main only: option byte 0 has 0x01 send_request, 0x02 send_response and
	 * tiny_bit, which selects max_message_size tiny_message_size (else 65536),
	 * max_pending 2 (else 8) and the tiny column of limits[]. configure (may be
	 * NULL) then interprets the protocol's other option bits. */
	uint8_t tiny_bit;
	uint64_t tiny_message_size;
	const struct fz_limit *limits;
	size_t nlimits;
	void (*configure)(struct fz_run *r, uint8_t opt);
};

struct fz_side {
	uint8_t *p;  /* unconsumed tail (malloc'ed, grows) */
	size_t len;  /* bytes in p */
	size_t want; /* do not call parse() before len reaches this (0 = any) */
};

struct fz_run {
	struct ev_sink sink; /* first: fz_publish() casts back to the run */
	size_t published;    /* events seen, plus a byte of each string (keeps reads live) */
	const struct proto_ops *ops;
	struct fz_opts opts;
	void *priv; /* ops->config_size bytes; strings/lists in it are borrowed statics */
	struct cfg_proto cfg;
	struct conn_info info;
	struct proto_ctx ctx;
	void *conn; /* NULL once the connection died (PARSE_ERROR, failed reset) */
	struct fz_side side[2];
};

/* The sink: read every string field like the encoder would, return the event. */
static void fz_publish(struct ev_sink *sink, struct event *ev)
{
	struct fz_run *r = (struct fz_run *)sink;

	for (size_t i = 0; i < ev->nfields; i++)
		if (ev->fields[i].type == EV_T_STR && ev->fields[i].v.s.len)
			r->published += (uint8_t)ev->fields[i].v.s.p[ev->fields[i].v.s.len - 1];
	r->published++;
	ev_pool_put(ev);
}

/* Allocates priv and the pool and fills the default config, conn_info and context.
 * The connection is created by fz_start() so the caller can adjust the config first. */
static inline void fz_open(struct fz_run *r, const struct proto_ops *ops,
			   const struct fz_opts *opts)
{
	memset(r, 0, sizeof(*r));
	r->ops = ops;
	r->opts = *opts;
	r->sink.publish = fz_publish;
	r->sink.pool = ev_pool_new(opts->pool_events ? opts->pool_events : 16,
				   opts->pool_event_bytes ? opts->pool_event_bytes : 256u << 10,
				   opts->pool_fields ? opts->pool_fields : 256);
	r->priv = calloc(1, ops->config_size ? ops->config_size : 1);
	if (!r->sink.pool || !r->priv)
		abort();
	r->cfg.ops = ops;
	r->cfg.enabled = true;
	r->cfg.transaction_timeout = 10 * NS_PER_SEC;
	r->cfg.max_message_size = 65536;
	r->cfg.max_pending = 8;
	r->cfg.priv = r->priv;
	r->info.client_ip.ver = 4;
	r->info.server_ip.ver = 4;
	r->info.client_port = 40000;
	r->info.server_port = opts->server_port;
	r->info.transport = opts->udp ? IPPROTO_UDP : IPPROTO_TCP;
	r->info.cfg = &r->cfg;
	r->ctx.conn = &r->info;
	r->ctx.sink = &r->sink;
	r->ctx.stats = proto_stats_get(ops);
	r->ctx.ts = 1700000000ull * NS_PER_SEC;
}

/* The protocol's config field `key`, or NULL when the protocol has none by that name
 * (an override for a key the protocol lacks is ignored, as a config file would be). */
static inline const struct cfg_field *fz_field(const struct fz_run *r, const char *key)
{
	for (size_t i = 0; i < r->ops->nconfig; i++)
		if (strcmp(r->ops->config[i].key, key) == 0)
			return &r->ops->config[i];
	return NULL;
}

/* Numeric or boolean override of a priv field (bool: v != 0; durations in ns). */
static inline void fz_set(struct fz_run *r, const char *key, uint64_t v)
{
	const struct cfg_field *cf = fz_field(r, key);
	char *at;

	if (!cf)
		return;
	at = (char *)r->priv + cf->offset;
	if (cf->type == CFG_BOOL)
		*(bool *)at = v != 0;
	else if (cf->type == CFG_INT)
		*(int64_t *)at = (int64_t)v;
	else if (cf->type == CFG_UINT || cf->type == CFG_DURATION || cf->type == CFG_SIZE)
		*(uint64_t *)at = v;
	else
		abort(); /* harness bug: wrong setter for this key */
}

/* String override; `s` is borrowed (a static string) and never freed. */
static inline void fz_set_str(struct fz_run *r, const char *key, const char *s)
{
	const struct cfg_field *cf = fz_field(r, key);

	if (!cf)
		return;
	if (cf->type != CFG_STRING)
		abort();
	*(const char **)((char *)r->priv + cf->offset) = s;
}

/* String-list override; `v` is a borrowed static NULL-terminated array. */
static inline void fz_set_list(struct fz_run *r, const char *key, char **v)
{
	const struct cfg_field *cf = fz_field(r, key);
	struct cfg_strlist *l;

	if (!cf)
		return;
	if (cf->type != CFG_STRLIST)
		abort();
	l = (struct cfg_strlist *)((char *)r->priv + cf->offset);
	l->v = v;
	for (l->n = 0; v[l->n]; l->n++)
		;
}

/* Creates the connection. False when conn_new() refused (nothing to fuzz). */
static inline bool fz_start(struct fz_run *r)
{
	r->conn = r->ops->conn_new(&r->info);
	return r->conn != NULL;
}

/* Publishes what is pending and frees the connection; both tails are dropped. */
static inline void fz_end(struct fz_run *r)
{
	if (r->conn) {
		if (r->ops->expire)
			r->ops->expire(r->conn, &r->ctx);
		r->ops->conn_free(r->conn);
	}
	r->conn = NULL;
	for (int d = 0; d < 2; d++)
		r->side[d].len = r->side[d].want = 0;
}

/* n bytes of `dir`: one datagram (UDP) or the next stream bytes (TCP). */
static inline void fz_feed(struct fz_run *r, enum proto_dir dir, const uint8_t *p, size_t n)
{
	struct fz_side *s = &r->side[dir];
	uint8_t *grown;

	if (!r->conn || n == 0)
		return;
	if (r->opts.udp) {
		struct parse_result pr = r->ops->parse(r->conn, dir, p, n, &r->ctx);

		if (pr.consumed > n)
			abort(); /* contract violation */
		return;
	}
	grown = realloc(s->p, s->len + n);
	if (!grown)
		abort();
	s->p = grown;
	memcpy(s->p + s->len, p, n);
	s->len += n;
	if (s->len < s->want)
		return; /* the parser asked for more than has arrived */
	s->want = 0;
	for (;;) {
		struct parse_result pr = r->ops->parse(r->conn, dir, s->p, s->len, &r->ctx);

		if (pr.consumed > s->len)
			abort(); /* contract violation */
		if (pr.status == PARSE_ERROR) {
			fz_end(r);
			return;
		}
		memmove(s->p, s->p + pr.consumed, s->len - pr.consumed);
		s->len -= pr.consumed;
		if (s->len == 0)
			return;
		if (pr.status == PARSE_NEED_MORE) {
			s->want = pr.needed > SIZE_MAX - s->len ? SIZE_MAX : s->len + pr.needed;
			return;
		}
		if (pr.consumed == 0)
			abort(); /* PARSE_OK without progress would spin the stream layer */
	}
}

/* n bytes of `dir` are lost. As net/tcp_stream.c: the tail is part of the gap. */
static inline void fz_gap(struct fz_run *r, enum proto_dir dir, size_t n)
{
	struct fz_side *s = &r->side[dir];

	if (!r->conn || n == 0)
		return;
	n += s->len;
	s->len = s->want = 0;
	if (!r->ops->gap || r->ops->gap(r->conn, dir, n, &r->ctx) < 0) {
		fz_end(r);
		fz_start(r); /* resync at a message boundary; NULL ends the run */
	}
}

static inline void fz_fin(struct fz_run *r, enum proto_dir dir)
{
	if (r->conn && r->ops->fin)
		r->ops->fin(r->conn, dir, &r->ctx);
}

static inline void fz_expire(struct fz_run *r)
{
	if (r->conn && r->ops->expire)
		r->ops->expire(r->conn, &r->ctx);
}

/* The default event byte: fin / gap / clock / expire (see the file comment). */
static inline void fz_event_default(struct fz_run *r, uint8_t e)
{
	switch (e % 5) {
	case 0:
	case 1:
		fz_fin(r, e % 5 ? DIR_TO_CLIENT : DIR_TO_SERVER);
		break;
	case 2:
		fz_gap(r, e & 4 ? DIR_TO_CLIENT : DIR_TO_SERVER, (size_t)(e >> 3) + 1);
		break;
	case 3:
		r->ctx.ts += (uint64_t)(e >> 3) * NS_PER_SEC;
		break;
	default:
		fz_expire(r);
		break;
	}
}

/* Interprets data[0..size) as [h][payload] records (see the file comment). */
static inline void fz_run_records(struct fz_run *r, const uint8_t *data, size_t size)
{
	void (*event)(struct fz_run *, uint8_t) = r->opts.event ? r->opts.event : fz_event_default;
	size_t i = 0;

	while (i < size && r->conn) {
		uint8_t h = data[i++];
		size_t n = h & 0x7f;
		bool hi = h & 0x80;

		r->ctx.ts += NS_PER_MS;
		if (n) {
			if (size - i < n)
				n = size - i;
			fz_feed(r, hi != r->opts.hi_bit_to_server ? DIR_TO_CLIENT : DIR_TO_SERVER,
				data + i, n);
			i += n;
		} else if (i < size) {
			event(r, data[i++]);
		}
	}
}

/* The one cleanup path: end the connection, check that every pooled event came
 * back (a parser that leaks a pending event aborts here), free everything. */
static inline void fz_close(struct fz_run *r)
{
	fz_end(r);
	if (ev_pool_live(r->sink.pool) != 0)
		abort(); /* an event leaked */
	free(r->side[0].p);
	free(r->side[1].p);
	ev_pool_free(r->sink.pool);
	free(r->priv);
	memset(r, 0, sizeof(*r));
}

/* A whole harness for the common layout: option byte 0 (see struct fz_opts), then
 * the records of fz_run_records(). */
static inline int fz_main(const struct proto_ops *ops, const struct fz_opts *opts,
			  const uint8_t *data, size_t size)
{
	struct fz_run r;
	bool tiny;

	if (!ops || size < 1)
		return 0;
	tiny = data[0] & opts->tiny_bit;
	fz_open(&r, ops, opts);
	r.cfg.send_request = data[0] & 0x01;
	r.cfg.send_response = data[0] & 0x02;
	r.cfg.max_message_size = tiny ? opts->tiny_message_size : 65536;
	r.cfg.max_pending = tiny ? 2 : 8;
	for (size_t i = 0; i < opts->nlimits; i++)
		fz_set(&r, opts->limits[i].key,
		       tiny ? opts->limits[i].tiny : opts->limits[i].normal);
	if (opts->configure)
		opts->configure(&r, data[0]);
	if (fz_start(&r))
		fz_run_records(&r, data + 1, size - 1);
	fz_close(&r);
	return 0;
}

#endif /* HB_FUZZ_STREAM_H */
