/* parser_fixture.h — shared cmocka fixture for the parser unit tests: drives one
 * proto_ops through the sink seam (include/hostbeat/proto.h) the way the stream layer
 * does, collects what it publishes, and checks event fields.
 *
 * Include after <cmocka.h> and the hostbeat headers. The including file may define
 * MAX_EVENTS (events one test may collect; default 64) and FX_EXTRA (extra members
 * appended to struct fx) before the include. Everything here is `static inline` so a
 * test file that does not use a helper compiles warning-free.
 *
 * Typical use:
 *   static int fx_setup(void **state)
 *   {
 *           struct fx *f = fx_new(&xxx_proto, 64, 1234);   (pool size, server port)
 *           fx_set_u(f, "max_foo", 10);                    (per-protocol limits)
 *           *state = f;
 *           return 0;
 *   }
 *   cmocka_unit_test_setup_teardown(test_x, fx_setup, fx_teardown)
 *
 * Ownership: struct fx owns the pool, the parser's config block (and any strings /
 * lists fx_set() put in it), the connection, the collected events and the feed tails;
 * fx_teardown() is the one cleanup path and also asserts no event leaked. */
#ifndef HB_TESTS_PARSER_FIXTURE_H
#define HB_TESTS_PARSER_FIXTURE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hostbeat/clock.h"
#include "hostbeat/config.h"
#include "hostbeat/event.h"
#include "hostbeat/mem.h"
#include "hostbeat/metrics.h"
#include "hostbeat/proto.h"

#ifndef T0
#define T0 (1700000000ull * NS_PER_SEC)
#endif
#ifndef MAX_EVENTS
#define MAX_EVENTS 64
#endif

struct fx {
	struct ev_sink sink; /* first: fx_publish() casts back */
	const struct proto_ops *ops;
	struct ev_pool *pool;
	struct cfg_proto cfg;
	struct conn_info info;
	struct proto_ctx ctx;
	void *conn;                   /* opened lazily by the first feed */
	struct event *ev[MAX_EVENTS]; /* published events, in order */
	size_t nev;
	uint8_t *tail[2]; /* per direction: bytes not consumed yet */
	size_t tlen[2];
	size_t max_tail[2];     /* largest tail left after a feed_n() */
	enum parse_status last; /* status of the last feed_n() */
#ifdef FX_EXTRA
	FX_EXTRA
#endif
};

/* The collecting sink: keep every published event (the fixture puts them back). */
static inline void fx_publish(struct ev_sink *sink, struct event *ev)
{
	struct fx *f = (struct fx *)sink;

	assert_true(f->nev < MAX_EVENTS);
	f->ev[f->nev++] = ev;
}

static inline const struct cfg_field *fx_key(struct fx *f, const char *key)
{
	for (size_t i = 0; i < f->ops->nconfig; i++)
		if (strcmp(f->ops->config[i].key, key) == 0)
			return &f->ops->config[i];
	fail_msg("no config key %s", key);
	return NULL;
}

/* Set one key of the parser's own config table from text ("a,b" for lists). */
static inline void fx_set(struct fx *f, const char *key, const char *val)
{
	const struct cfg_field *cf = fx_key(f, key);
	char *at = (char *)f->cfg.priv + cf->offset;

	switch (cf->type) {
	case CFG_BOOL:
		*(bool *)at = strcmp(val, "true") == 0;
		return;
	case CFG_UINT:
	case CFG_SIZE:
		*(uint64_t *)at = strtoull(val, NULL, 10);
		return;
	case CFG_STRING:
		hb_free(*(char **)at);
		*(char **)at = hb_strdup(val);
		return;
	case CFG_STRLIST: {
		struct cfg_strlist *l = (struct cfg_strlist *)at;
		char *copy = strdup(val), *save = NULL;

		for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
			l->v = hb_realloc(l->v, (l->n + 1) * sizeof(char *));
			l->v[l->n++] = hb_strdup(t);
		}
		free(copy);
		return;
	}
	default:
		fail_msg("config key %s: type not settable", key);
	}
}

/* Set one numeric (uint64_t-stored) key of the parser's config table. */
static inline void fx_set_u(struct fx *f, const char *key, uint64_t val)
{
	*(uint64_t *)((char *)f->cfg.priv + fx_key(f, key)->offset) = val;
}

/* A fixture for `ops`: a pool of `pool_events` events, cfg defaults (10 s timeout,
 * 10 MiB messages, 8 pending), the parser's config block zeroed, TCP
 * 10.0.0.1:40000 -> 10.0.0.2:server_port, clock at T0, metrics reset. */
static inline struct fx *fx_new(const struct proto_ops *ops, size_t pool_events,
				uint16_t server_port)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_non_null(ops);
	metrics_reset();
	f->ops = ops;
	f->pool = ev_pool_new(pool_events, 1u << 20, 256);
	assert_non_null(f->pool);
	f->sink.publish = fx_publish;
	f->sink.pool = f->pool;
	f->cfg.ops = f->ops;
	f->cfg.transaction_timeout = 10 * NS_PER_SEC;
	f->cfg.max_message_size = 10u << 20;
	f->cfg.max_pending = 8;
	f->cfg.priv = calloc(1, f->ops->config_size);
	hb_ip_parse("10.0.0.1", &f->info.client_ip);
	hb_ip_parse("10.0.0.2", &f->info.server_ip);
	f->info.client_port = 40000;
	f->info.server_port = server_port;
	f->info.transport = 6;
	f->info.cfg = &f->cfg;
	f->ctx.conn = &f->info;
	f->ctx.sink = &f->sink;
	f->ctx.stats = proto_stats_get(f->ops);
	f->ctx.ts = T0;
	return f;
}

static inline void fx_open(struct fx *f)
{
	f->conn = f->ops->conn_new(&f->info);
	assert_non_null(f->conn);
}

/* End the connection (expire flushes what is pending) and forget unread bytes. */
static inline void fx_close(struct fx *f)
{
	if (f->conn) {
		f->ops->expire(f->conn, &f->ctx);
		f->ops->conn_free(f->conn);
		f->conn = NULL;
	}
	f->tlen[0] = f->tlen[1] = 0;
}

/* Give every collected event back to the pool. */
static inline void fx_drop_events(struct fx *f)
{
	for (size_t i = 0; i < f->nev; i++)
		ev_pool_put(f->ev[i]);
	f->nev = 0;
}

/* The one cleanup path: close, return events (asserting none leaked), free config
 * strings/lists, tails, pool and the fixture. */
static inline void fx_free(struct fx *f)
{
	fx_close(f);
	fx_drop_events(f);
	assert_int_equal(ev_pool_live(f->pool), 0);
	for (size_t i = 0; i < f->ops->nconfig; i++) {
		char *at = (char *)f->cfg.priv + f->ops->config[i].offset;

		if (f->ops->config[i].type == CFG_STRING) {
			hb_free(*(char **)at);
		} else if (f->ops->config[i].type == CFG_STRLIST) {
			struct cfg_strlist *l = (struct cfg_strlist *)at;

			for (size_t k = 0; k < l->n; k++)
				hb_free(l->v[k]);
			hb_free(l->v);
		}
	}
	free(f->cfg.priv);
	free(f->tail[0]);
	free(f->tail[1]);
	ev_pool_free(f->pool);
	free(f);
}

static inline int fx_teardown(void **state)
{
	fx_free(*state);
	return 0;
}

/* Deliver bytes like the stream layer: keep the unconsumed tail, call again while
 * PARSE_OK makes progress. Returns (and records in f->last) the last status and
 * tracks the largest tail left behind (f->max_tail). */
static inline enum parse_status feed_n(struct fx *f, enum proto_dir dir, const void *p, size_t n)
{
	struct parse_result r;

	if (!f->conn)
		fx_open(f);
	f->tail[dir] = realloc(f->tail[dir], f->tlen[dir] + n + 1);
	memcpy(f->tail[dir] + f->tlen[dir], p, n);
	f->tlen[dir] += n;
	do {
		r = f->ops->parse(f->conn, dir, f->tail[dir], f->tlen[dir], &f->ctx);
		assert_true(r.consumed <= f->tlen[dir]);
		memmove(f->tail[dir], f->tail[dir] + r.consumed, f->tlen[dir] - r.consumed);
		f->tlen[dir] -= r.consumed;
		if (r.status == PARSE_OK && f->tlen[dir])
			assert_true(r.consumed > 0);
	} while (r.status == PARSE_OK && f->tlen[dir]);
	if (f->tlen[dir] > f->max_tail[dir])
		f->max_tail[dir] = f->tlen[dir];
	f->last = r.status;
	return r.status;
}

static inline enum parse_status feed(struct fx *f, enum proto_dir dir, const char *s)
{
	return feed_n(f, dir, s, strlen(s));
}

/* ---- field checks ------------------------------------------------------------------ */

static inline const struct ev_field *field(const struct event *ev, const char *key)
{
	const struct ev_field *fl = ev_find(ev, key);

	if (!fl)
		fail_msg("field %s missing", key);
	return fl;
}

static inline void assert_str(const struct event *ev, const char *key, const char *want)
{
	const struct ev_field *fl = field(ev, key);

	assert_int_equal(fl->type, EV_T_STR);
	if (fl->v.s.len != strlen(want) || memcmp(fl->v.s.p, want, fl->v.s.len) != 0)
		fail_msg("%s = \"%.*s\", want \"%s\"", key, (int)fl->v.s.len, fl->v.s.p, want);
}

static inline void assert_uint(const struct event *ev, const char *key, uint64_t want)
{
	const struct ev_field *fl = field(ev, key);

	assert_int_equal(fl->type, EV_T_UINT);
	assert_int_equal(fl->v.u, want);
}

#endif /* HB_TESTS_PARSER_FIXTURE_H */
