/* test_memcache.c — net/proto/memcache.c through its proto_ops, with a collecting ev_sink.
 *
 * TCP is fed through a miniature stream layer that keeps the unconsumed tail, like
 * net/tcp_stream.c; UDP datagrams (8-byte frame header + payload) are built here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <netinet/in.h>

#include "hostbeat/clock.h"
#include "hostbeat/config.h"
#include "hostbeat/event.h"
#include "hostbeat/metrics.h"
#include "hostbeat/proto.h"

extern const struct proto_ops memcache_proto;

#define T0 (1440633336006720000ULL)
#define MS (1000000ULL)
#define MAXEV 512

/* ---- binary message builder --------------------------------------------------------- */

struct mb {
	uint8_t b[200000];
	size_t len;
};

static void put8(struct mb *m, unsigned v)
{
	m->b[m->len++] = (uint8_t)v;
}

static void put16(struct mb *m, unsigned v)
{
	put8(m, v >> 8);
	put8(m, v & 0xff);
}

static void put32(struct mb *m, uint32_t v)
{
	put16(m, v >> 16);
	put16(m, v & 0xffff);
}

static void put64(struct mb *m, uint64_t v)
{
	put32(m, (uint32_t)(v >> 32));
	put32(m, (uint32_t)v);
}

static void putn(struct mb *m, const void *p, size_t n)
{
	memcpy(m->b + m->len, p, n);
	m->len += n;
}

static void puts_(struct mb *m, const char *s)
{
	putn(m, s, strlen(s));
}

/* Append one binary message. */
static void bin(struct mb *m, unsigned magic, unsigned op, const char *key, const void *extras,
		size_t extlen, size_t vlen, unsigned vbs, uint32_t opaque, uint64_t cas)
{
	size_t klen = key ? strlen(key) : 0;

	put8(m, magic);
	put8(m, op);
	put16(m, (unsigned)klen);
	put8(m, (unsigned)extlen);
	put8(m, 0);
	put16(m, vbs);
	put32(m, (uint32_t)(extlen + klen + vlen));
	put32(m, opaque);
	put64(m, cas);
	if (extlen)
		putn(m, extras, extlen);
	if (klen)
		putn(m, key, klen);
	for (size_t i = 0; i < vlen; i++)
		put8(m, 'v');
}

/* ---- fixture ---------------------------------------------------------------------------- */

struct collect {
	struct ev_sink sink;
	struct event *ev[MAXEV];
	size_t n;
};

static void collect_publish(struct ev_sink *sink, struct event *ev)
{
	struct collect *c = (struct collect *)sink;

	if (c->n < MAXEV)
		c->ev[c->n++] = ev;
	else
		ev_pool_put(ev);
}

struct fx {
	struct ev_pool *pool;
	struct collect col;
	struct conn_info info;
	struct cfg_proto cp;
	void *priv;
	struct proto_ctx ctx;
	void *conn;
	uint8_t buf[2][200000];
	size_t blen[2];
	bool dead;
};

static void cfg_set(struct fx *f, const char *key, uint64_t v)
{
	for (size_t i = 0; i < memcache_proto.nconfig; i++) {
		const struct cfg_field *cf = &memcache_proto.config[i];

		if (strcmp(cf->key, key) != 0)
			continue;
		if (cf->type == CFG_BOOL)
			*(bool *)((char *)f->priv + cf->offset) = v != 0;
		else
			*(uint64_t *)((char *)f->priv + cf->offset) = v;
		return;
	}
	fail_msg("no config key %s", key);
}

static struct fx *fx_new_pool(bool tcp, size_t pool_events)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	metrics_reset();
	f->pool = ev_pool_new(pool_events, 1 << 20, 4096);
	assert_non_null(f->pool);
	f->col.sink.publish = collect_publish;
	f->col.sink.pool = f->pool;
	f->priv = calloc(1, memcache_proto.config_size);
	assert_non_null(f->priv);
	cfg_set(f, "udptransactiontimeout", 200 * MS);
	cfg_set(f, "max_line_bytes", 8192);
	cfg_set(f, "max_keys", 128);
	cfg_set(f, "max_stats", 512);
	cfg_set(f, "max_udp_slots", 8);
	f->cp.ops = &memcache_proto;
	f->cp.enabled = true;
	f->cp.transaction_timeout = 10 * NS_PER_SEC;
	f->cp.max_message_size = 10 * 1024 * 1024;
	f->cp.max_pending = 16;
	f->cp.priv = f->priv;
	hb_ip_parse("192.168.188.37", &f->info.client_ip);
	hb_ip_parse("192.168.188.38", &f->info.server_ip);
	f->info.client_port = 55313;
	f->info.server_port = 11211;
	f->info.transport = tcp ? IPPROTO_TCP : IPPROTO_UDP;
	f->info.cfg = &f->cp;
	f->ctx.conn = &f->info;
	f->ctx.sink = &f->col.sink;
	f->ctx.stats = proto_stats_get(&memcache_proto);
	return f;
}

static struct fx *fx_new(bool tcp)
{
	return fx_new_pool(tcp, 1024);
}

static void fx_open(struct fx *f)
{
	f->conn = memcache_proto.conn_new(&f->info);
	assert_non_null(f->conn);
}

static void fx_expire(struct fx *f, uint64_t ts)
{
	f->ctx.ts = ts;
	memcache_proto.expire(f->conn, &f->ctx);
}

static void fx_free(struct fx *f)
{
	if (f->conn) {
		memcache_proto.expire(f->conn, &f->ctx);
		memcache_proto.conn_free(f->conn);
	}
	for (size_t i = 0; i < f->col.n; i++)
		ev_pool_put(f->col.ev[i]);
	assert_int_equal(ev_pool_live(f->pool), 0);
	ev_pool_free(f->pool);
	free(f->priv);
	free(f);
}

/* Mini stream layer: append, parse, keep the tail. */
static enum parse_status tcp(struct fx *f, enum proto_dir dir, const void *p, size_t n, uint64_t ts)
{
	struct parse_result r;
	size_t off = 0;

	if (f->dead)
		return PARSE_ERROR;
	memcpy(f->buf[dir] + f->blen[dir], p, n);
	f->blen[dir] += n;
	f->ctx.ts = ts;
	for (;;) {
		r = memcache_proto.parse(f->conn, dir, f->buf[dir] + off, f->blen[dir] - off,
					 &f->ctx);
		assert_true(r.consumed <= f->blen[dir] - off);
		if (r.status == PARSE_ERROR) {
			f->dead = true;
			return r.status;
		}
		off += r.consumed;
		if (r.status != PARSE_OK || r.consumed == 0 || off == f->blen[dir])
			break;
	}
	memmove(f->buf[dir], f->buf[dir] + off, f->blen[dir] - off);
	f->blen[dir] -= off;
	return r.status;
}

static enum parse_status tcps(struct fx *f, enum proto_dir dir, const char *s, uint64_t ts)
{
	return tcp(f, dir, s, strlen(s), ts);
}

static struct parse_result udp(struct fx *f, enum proto_dir dir, unsigned id, unsigned seq,
			       unsigned total, const void *p, size_t n, uint64_t ts)
{
	struct mb *m = malloc(sizeof(*m));
	struct parse_result r;

	assert_non_null(m);
	m->len = 0;
	put16(m, id);
	put16(m, seq);
	put16(m, total);
	put16(m, 0);
	putn(m, p, n);
	f->ctx.ts = ts;
	r = memcache_proto.parse(f->conn, dir, m->b, m->len, &f->ctx);
	free(m);
	return r;
}

/* ---- event inspection ------------------------------------------------------------------ */

static const struct ev_field *fld(const struct event *ev, const char *key)
{
	return ev_find(ev, key);
}

static void assert_str(const struct event *ev, const char *key, const char *want)
{
	const struct ev_field *f = fld(ev, key);

	if (!f)
		fail_msg("missing %s", key);
	assert_int_equal(f->type, EV_T_STR);
	if (f->v.s.len != strlen(want) || memcmp(f->v.s.p, want, f->v.s.len) != 0)
		fail_msg("%s = '%.*s', want '%s'", key, (int)f->v.s.len, f->v.s.p, want);
}

static void assert_uint(const struct event *ev, const char *key, uint64_t want)
{
	const struct ev_field *f = fld(ev, key);

	if (!f)
		fail_msg("missing %s", key);
	assert_int_equal(f->type, EV_T_UINT);
	assert_int_equal(f->v.u, want);
}

static void assert_bool(const struct event *ev, const char *key, bool want)
{
	const struct ev_field *f = fld(ev, key);

	if (!f)
		fail_msg("missing %s", key);
	assert_int_equal(f->type, EV_T_BOOL);
	assert_int_equal(f->v.b, want);
}

static size_t count_key(const struct event *ev, const char *key, const char *member)
{
	size_t n = 0;

	for (size_t i = 0; i < ev->nfields; i++) {
		const struct ev_field *f = &ev->fields[i];

		if (strcmp(f->key, key) == 0 &&
		    (member ? f->member && strcmp(f->member, member) == 0 : !f->member))
			n++;
	}
	return n;
}

/* the i-th element of an array of strings */
static void assert_elem(const struct event *ev, const char *key, size_t i, const char *want)
{
	size_t k = 0;

	for (size_t j = 0; j < ev->nfields; j++) {
		const struct ev_field *f = &ev->fields[j];

		if (strcmp(f->key, key) != 0 || f->member)
			continue;
		if (k++ == i) {
			if (f->v.s.len != strlen(want) || memcmp(f->v.s.p, want, f->v.s.len))
				fail_msg("%s[%zu] = '%.*s', want '%s'", key, i, (int)f->v.s.len,
					 f->v.s.p, want);
			return;
		}
	}
	fail_msg("%s has no element %zu", key, i);
}

static const char *REQ_CMD = "memcache.request.command";
static const char *RES_CMD = "memcache.response.command";

/* ---- text over TCP ----------------------------------------------------------------------- */

static void test_text_set_get(void **state)
{
	struct fx *f = fx_new(true);
	const struct event *e;

	(void)state;
	fx_open(f);
	assert_int_equal(tcps(f, DIR_TO_SERVER, "set k1 3 60 5\r\nhello\r\n", T0), PARSE_OK);
	assert_int_equal(f->col.n, 0);
	tcps(f, DIR_TO_CLIENT, "STORED\r\n", T0 + MS);
	assert_int_equal(f->col.n, 1);
	e = f->col.ev[0];
	assert_int_equal(e->status, EV_STATUS_OK);
	assert_str(e, "memcache.protocol_type", "text");
	assert_str(e, REQ_CMD, "set");
	assert_str(e, "memcache.request.type", "Store");
	assert_str(e, "event.action", "memcache.store");
	assert_elem(e, "memcache.request.keys", 0, "k1");
	assert_uint(e, "memcache.request.flags", 3);
	assert_uint(e, "memcache.request.exptime", 60);
	assert_uint(e, "memcache.request.bytes", 5);
	assert_uint(e, "memcache.request.count_values", 1);
	assert_bool(e, "memcache.request.noreply", false);
	assert_str(e, RES_CMD, "STORED");
	assert_str(e, "memcache.response.type", "Success");
	assert_str(e, "event.outcome", "success");
	assert_int_equal(e->client_bytes, 22);
	assert_int_equal(e->server_bytes, 8);
	assert_int_equal(e->start_ns, T0);
	assert_int_equal(e->end_ns, T0 + MS);

	tcps(f, DIR_TO_SERVER, "get x k1 k2\r\n", T0 + 2 * MS);
	tcps(f, DIR_TO_CLIENT, "VALUE k1 3 5\r\nhello\r\nVALUE k2 0 2 77\r\nhi\r\n", T0 + 3 * MS);
	assert_int_equal(f->col.n, 1); /* still open until END */
	tcps(f, DIR_TO_CLIENT, "END\r\n", T0 + 4 * MS);
	assert_int_equal(f->col.n, 2);
	e = f->col.ev[1];
	assert_int_equal(count_key(e, "memcache.request.keys", NULL), 3);
	assert_elem(e, "memcache.response.keys", 0, "k1");
	assert_elem(e, "memcache.response.keys", 1, "k2");
	assert_uint(e, "memcache.response.count_values", 2);
	assert_uint(e, "memcache.response.bytes", 7);
	assert_uint(e, "memcache.response.flags", 3);
	assert_str(e, RES_CMD, "VALUE");
	assert_int_equal(e->end_ns, T0 + 3 * MS); /* first packet of the response */
	assert_int_equal(e->server_bytes,
			 strlen("VALUE k1 3 5\r\nhello\r\nVALUE k2 0 2 77\r\nhi\r\nEND\r\n"));
	fx_free(f);
}

static void test_text_statuses(void **state)
{
	static const struct {
		const char *req, *resp;
		enum ev_status st;
		const char *errmsg;
	} cases[] = {
	    {"delete k\r\n", "NOT_FOUND\r\n", EV_STATUS_ERROR, NULL},
	    {"delete k\r\n", "DELETED\r\n", EV_STATUS_OK, NULL},
	    {"add k 0 0 1\r\nx\r\n", "NOT_STORED\r\n", EV_STATUS_ERROR, NULL},
	    {"incr k 1\r\n", "CLIENT_ERROR bad value\r\n", EV_STATUS_CLIENT_ERROR, "bad value"},
	    {"set k 0 0 1\r\nx\r\n", "SERVER_ERROR out of memory\r\n", EV_STATUS_SERVER_ERROR,
	     "out of memory"},
	    {"slabs reassign 1 2\r\n", "BUSY try later\r\n", EV_STATUS_SERVER_ERROR, "try later"},
	    {"slabs reassign 1 1\r\n", "SAME src and dst\r\n", EV_STATUS_CLIENT_ERROR,
	     "src and dst"},
	    {"version\r\n", "ERROR\r\n", EV_STATUS_ERROR, NULL},
	    {"cas k 0 0 1 5\r\nx\r\n", "EXISTS\r\n", EV_STATUS_OK, NULL},
	    {"get k\r\n", "END\r\n", EV_STATUS_OK, NULL},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fx *f = fx_new(true);

		fx_open(f);
		tcps(f, DIR_TO_SERVER, cases[i].req, T0);
		tcps(f, DIR_TO_CLIENT, cases[i].resp, T0 + MS);
		assert_int_equal(f->col.n, 1);
		assert_int_equal(f->col.ev[0]->status, cases[i].st);
		if (cases[i].errmsg)
			assert_str(f->col.ev[0], "memcache.response.error_msg", cases[i].errmsg);
		fx_free(f);
	}
}

static void test_text_counter_version_stats(void **state)
{
	struct fx *f = fx_new(true);
	const struct event *e;

	(void)state;
	fx_open(f);
	tcps(f, DIR_TO_SERVER, "incr cnt 2\r\ndecr cnt 5\r\nversion\r\nstats items\r\n", T0);
	tcps(f, DIR_TO_CLIENT, "2\r\n0\r\nVERSION 1.6.18\r\nSTAT items:1:number 3\r\n", T0 + MS);
	assert_int_equal(f->col.n, 3);
	assert_uint(f->col.ev[0], "memcache.request.delta", 2);
	assert_uint(f->col.ev[0], "memcache.response.value", 2);
	assert_str(f->col.ev[0], "memcache.response.type", "Counter");
	assert_uint(f->col.ev[1], "memcache.response.value", 0);
	assert_str(f->col.ev[2], "memcache.response.version", "1.6.18");
	tcps(f, DIR_TO_CLIENT, "STAT items:1:age 10 s\r\nEND\r\n", T0 + 2 * MS);
	assert_int_equal(f->col.n, 4);
	e = f->col.ev[3];
	assert_str(e, "memcache.request.raw_args", "items");
	assert_str(e, RES_CMD, "STAT");
	assert_int_equal(count_key(e, "memcache.response.stats", "name"), 2);
	assert_int_equal(count_key(e, "memcache.response.stats", "value"), 2);
	fx_free(f);
}

static void test_text_noreply_quit(void **state)
{
	struct fx *f = fx_new(true);

	(void)state;
	fx_open(f);
	tcps(f, DIR_TO_SERVER, "set a 0 0 1 noreply\r\n1\r\ndelete a noreply\r\nget a\r\n", T0);
	assert_int_equal(f->col.n, 2); /* noreply published at once, OK, no response */
	assert_int_equal(f->col.ev[0]->status, EV_STATUS_OK);
	assert_bool(f->col.ev[0], "memcache.request.noreply", true);
	assert_int_equal(f->col.ev[0]->end_ns, 0);
	assert_null(fld(f->col.ev[1], RES_CMD));
	tcps(f, DIR_TO_CLIENT, "END\r\n", T0 + MS);
	assert_int_equal(f->col.n, 3);
	assert_str(f->col.ev[2], REQ_CMD, "get");
	tcps(f, DIR_TO_SERVER, "quit\r\n", T0 + 2 * MS);
	assert_int_equal(f->col.n, 4);
	assert_int_equal(f->col.ev[3]->status, EV_STATUS_OK);
	/* "get noreply": a key named noreply, still answered */
	tcps(f, DIR_TO_SERVER, "get noreply\r\n", T0 + 3 * MS);
	assert_int_equal(f->col.n, 4);
	fx_free(f);
	/* expire published the pending get as unmatched (after fx_free's expire: nothing
	 * left to check here, the pool assertion in fx_free checks it was published) */
}

/* noreply counts only as the last token (trailing spaces allowed) and only for the
 * commands that take it; stats/get keep waiting for their response. */
static void test_text_noreply_last_token(void **state)
{
	struct fx *f = fx_new(true);

	(void)state;
	fx_open(f);
	tcps(f, DIR_TO_SERVER, "incr n 5 noreply   \r\n", T0);
	assert_int_equal(f->col.n, 1);
	assert_str(f->col.ev[0], REQ_CMD, "incr");
	assert_bool(f->col.ev[0], "memcache.request.noreply", true);
	tcps(f, DIR_TO_SERVER, "flush_all  noreply\r\n", T0 + MS);
	assert_int_equal(f->col.n, 2);
	assert_bool(f->col.ev[1], "memcache.request.noreply", true);
	tcps(f, DIR_TO_SERVER, "touch k 10 noreplyX\r\nstats noreply\r\n", T0 + 2 * MS);
	assert_int_equal(f->col.n, 2); /* both wait for a response */
	tcps(f, DIR_TO_CLIENT, "TOUCHED\r\nEND\r\n", T0 + 3 * MS);
	assert_int_equal(f->col.n, 4);
	assert_str(f->col.ev[2], REQ_CMD, "touch");
	assert_bool(f->col.ev[2], "memcache.request.noreply", false);
	assert_str(f->col.ev[2], RES_CMD, "TOUCHED");
	assert_str(f->col.ev[3], REQ_CMD, "stats");
	assert_str(f->col.ev[3], "memcache.request.raw_args", "noreply");
	assert_str(f->col.ev[3], RES_CMD, "END");
	fx_free(f);
}

static void test_text_pipelined_and_unmatched(void **state)
{
	struct fx *f = fx_new(true);

	(void)state;
	fx_open(f);
	tcps(f, DIR_TO_CLIENT, "STORED\r\n", T0); /* no request */
	assert_int_equal(f->col.n, 1);
	assert_int_equal(f->col.ev[0]->status, EV_STATUS_ERROR);
	assert_str(f->col.ev[0], "error.message", "Unmatched response");
	assert_int_equal(f->col.ev[0]->start_ns, 0);
	assert_int_equal(metrics_get("memcache.unmatched_responses"), 1);

	tcps(f, DIR_TO_SERVER, "get a\r\nget b\r\nget c\r\n", T0 + MS);
	tcps(f, DIR_TO_CLIENT, "END\r\nEND\r\n", T0 + 2 * MS);
	assert_int_equal(f->col.n, 3);
	assert_elem(f->col.ev[1], "memcache.request.keys", 0, "a");
	assert_elem(f->col.ev[2], "memcache.request.keys", 0, "b");
	/* the third one times out when the parser next runs */
	tcps(f, DIR_TO_SERVER, "get d\r\n", T0 + 20 * NS_PER_SEC);
	assert_int_equal(f->col.n, 4);
	assert_str(f->col.ev[3], "error.message", "Unmatched request");
	assert_elem(f->col.ev[3], "memcache.request.keys", 0, "c");
	fx_expire(f, T0 + 21 * NS_PER_SEC);
	assert_int_equal(f->col.n, 5);
	assert_int_equal(f->col.ev[4]->status, EV_STATUS_ERROR);
	assert_int_equal(metrics_get("memcache.unmatched_requests"), 2);
	fx_free(f);
}

static void test_text_unknown_command(void **state)
{
	struct fx *f = fx_new(true);

	(void)state;
	fx_open(f);
	tcps(f, DIR_TO_SERVER, "get a\r\n", T0);
	/* synced: an unknown command makes the connection unparseable */
	assert_int_equal(tcps(f, DIR_TO_SERVER, "frobnicate x\r\n", T0), PARSE_ERROR);
	fx_free(f);

	f = fx_new(true);
	cfg_set(f, "parseunknown", 1);
	fx_open(f);
	tcps(f, DIR_TO_SERVER, "get a\r\nfrobnicate x\r\n", T0);
	tcps(f, DIR_TO_CLIENT, "END\r\nWHATEVER 1\r\n", T0 + MS);
	assert_int_equal(f->col.n, 2);
	assert_str(f->col.ev[1], REQ_CMD, "UNKNOWN");
	assert_str(f->col.ev[1], "memcache.request.line", "frobnicate x");
	assert_str(f->col.ev[1], RES_CMD, "UNKNOWN");
	assert_str(f->col.ev[1], "memcache.response.line", "WHATEVER 1");
	fx_free(f);
}

static void test_text_resync(void **state)
{
	struct fx *f = fx_new(true);

	(void)state;
	fx_open(f);
	/* a parser that starts mid-stream skips lines until a command line */
	tcps(f, DIR_TO_SERVER, "aaaaaaaaaa\r\nbbbb\r\nget k\r\n", T0);
	tcps(f, DIR_TO_CLIENT, "zzzz\r\nEND\r\n", T0 + MS);
	assert_int_equal(f->col.n, 1);
	assert_int_equal(f->col.ev[0]->status, EV_STATUS_OK);
	assert_true(metrics_get("memcache.resync_skipped_bytes") >= 18);
	fx_free(f);
}

static void test_text_limits(void **state)
{
	struct fx *f = fx_new(true);
	char line[2048];
	size_t n;

	(void)state;
	cfg_set(f, "max_keys", 4);
	cfg_set(f, "max_line_bytes", 256);
	fx_open(f);
	tcps(f, DIR_TO_SERVER, "get a b c d e f g\r\n", T0);
	tcps(f, DIR_TO_CLIENT, "END\r\n", T0 + MS);
	assert_int_equal(f->col.n, 1);
	assert_int_equal(count_key(f->col.ev[0], "memcache.request.keys", NULL), 4);
	assert_int_equal(metrics_get("memcache.limit_exceeded"), 1);
	/* an over-long line on a synced connection: unparseable, counted */
	n = (size_t)snprintf(line, sizeof(line), "get ");
	memset(line + n, 'k', 600);
	line[n + 600] = '\0';
	assert_int_equal(tcps(f, DIR_TO_SERVER, line, T0 + 2 * MS), PARSE_ERROR);
	assert_int_equal(metrics_get("memcache.limit_exceeded"), 2);
	fx_free(f);
}

static void test_text_bad_data_block(void **state)
{
	struct fx *f = fx_new(true);

	(void)state;
	fx_open(f);
	/* the data block is not followed by \r\n */
	assert_int_equal(tcps(f, DIR_TO_SERVER, "set k 0 0 2\r\nabcd\r\n", T0), PARSE_ERROR);
	fx_free(f);
	f = fx_new(true);
	fx_open(f);
	/* a VALUE line whose length cannot be read */
	tcps(f, DIR_TO_SERVER, "get k\r\n", T0);
	assert_int_equal(tcps(f, DIR_TO_CLIENT, "VALUE k 0 x\r\n", T0), PARSE_ERROR);
	fx_free(f);
}

static void test_text_huge_length_streams(void **state)
{
	struct fx *f = fx_new(true);
	static char chunk[65536];

	(void)state;
	memset(chunk, 'x', sizeof(chunk));
	fx_open(f);
	/* a 1 MiB value is consumed as it streams, never buffered */
	tcps(f, DIR_TO_SERVER, "set big 0 0 1048576\r\n", T0);
	for (int i = 0; i < 16; i++) {
		assert_int_equal(tcp(f, DIR_TO_SERVER, chunk, sizeof(chunk), T0), PARSE_OK);
		assert_int_equal(f->blen[DIR_TO_SERVER], 0);
	}
	tcps(f, DIR_TO_SERVER, "\r\n", T0);
	tcps(f, DIR_TO_CLIENT, "STORED\r\n", T0 + MS);
	assert_int_equal(f->col.n, 1);
	assert_uint(f->col.ev[0], "memcache.request.bytes", 1048576);
	assert_int_equal(f->col.ev[0]->client_bytes, 21 + 1048576 + 2);
	fx_free(f);
}

static void test_send_request_response_capped(void **state)
{
	struct fx *f = fx_new(true);
	const struct ev_field *rq, *rs;

	(void)state;
	f->cp.send_request = true;
	f->cp.send_response = true;
	f->cp.max_message_size = 10;
	fx_open(f);
	tcps(f, DIR_TO_SERVER, "get key1 key2 key3\r\n", T0);
	tcps(f, DIR_TO_CLIENT, "VALUE key1 0 3\r\nSECRET\r\nEND\r\n", T0 + MS);
	/* "SECRET" is 6 bytes, not 3: bad data chunk */
	assert_true(f->dead);
	fx_free(f);

	f = fx_new(true);
	f->cp.send_request = true;
	f->cp.send_response = true;
	f->cp.max_message_size = 10;
	fx_open(f);
	tcps(f, DIR_TO_SERVER, "get key1 key2 key3\r\n", T0);
	tcps(f, DIR_TO_CLIENT, "VALUE key1 0 3\r\nSEC\r\nEND\r\n", T0 + MS);
	assert_int_equal(f->col.n, 1);
	rq = fld(f->col.ev[0], "request");
	rs = fld(f->col.ev[0], "response");
	assert_non_null(rq);
	assert_non_null(rs);
	assert_int_equal(rq->v.s.len, 10);
	assert_memory_equal(rq->v.s.p, "get key1 k", 10);
	assert_int_equal(rs->v.s.len, 10);
	assert_memory_equal(rs->v.s.p, "VALUE key1", 10);
	fx_free(f);

	f = fx_new(true);
	f->cp.send_request = true;
	f->cp.send_response = true;
	fx_open(f);
	tcps(f, DIR_TO_SERVER, "set k 0 0 6\r\nSECRET\r\n", T0);
	tcps(f, DIR_TO_CLIENT, "STORED\r\n", T0 + MS);
	assert_str(f->col.ev[0], "request", "set k 0 0 6");
	assert_str(f->col.ev[0], "response", "STORED\r\n");
	fx_free(f);
}

static void test_gap_in_value(void **state)
{
	struct fx *f = fx_new(true);

	(void)state;
	fx_open(f);
	tcps(f, DIR_TO_SERVER, "set k 0 0 10\r\n01", T0);
	assert_int_equal(memcache_proto.gap(f->conn, DIR_TO_SERVER, 5, &f->ctx), 0);
	tcps(f, DIR_TO_SERVER, "789\r\n", T0);
	tcps(f, DIR_TO_CLIENT, "STORED\r\n", T0 + MS);
	assert_int_equal(f->col.n, 1);
	assert_int_equal(f->col.ev[0]->status, EV_STATUS_OK);
	assert_str(f->col.ev[0], "error.message", "Packet loss while capturing the request");
	/* a gap bigger than the rest of the value, or outside one: give up */
	tcps(f, DIR_TO_SERVER, "set k 0 0 4\r\n", T0);
	assert_int_equal(memcache_proto.gap(f->conn, DIR_TO_SERVER, 50, &f->ctx), -1);
	assert_int_equal(memcache_proto.gap(f->conn, DIR_TO_CLIENT, 1, &f->ctx), -1);
	fx_free(f);
}

static void test_pool_exhausted_keeps_pairing(void **state)
{
	struct fx *f = fx_new_pool(true, 1);

	(void)state;
	fx_open(f);
	tcps(f, DIR_TO_SERVER, "get a\r\nget b\r\n", T0); /* b gets no event */
	assert_int_equal(metrics_get("memcache.pool_exhausted"), 1);
	tcps(f, DIR_TO_CLIENT, "END\r\n", T0 + MS);
	assert_int_equal(f->col.n, 1);
	assert_elem(f->col.ev[0], "memcache.request.keys", 0, "a");
	ev_pool_put(f->col.ev[0]);
	f->col.n = 0;
	tcps(f, DIR_TO_CLIENT, "END\r\n", T0 + 2 * MS); /* b's answer: nothing published */
	assert_int_equal(f->col.n, 0);
	assert_int_equal(metrics_get("memcache.unmatched_responses"), 0);
	fx_free(f);
}

/* ---- binary over TCP ------------------------------------------------------------------------ */

static void test_bin_set_get(void **state)
{
	struct fx *f = fx_new(true);
	struct mb *m = calloc(1, sizeof(*m));
	uint8_t ext[8] = {0, 0, 0, 5, 0, 0, 0, 0};
	uint8_t flags[4] = {0, 0, 0, 5};
	const struct event *e;

	(void)state;
	fx_open(f);
	bin(m, 0x80, 0x01, "test_key", ext, 8, 2046, 0, 0x10000, 0);
	tcp(f, DIR_TO_SERVER, m->b, m->len, T0);
	m->len = 0;
	bin(m, 0x81, 0x01, NULL, NULL, 0, 0, 0, 0x10000, 283);
	tcp(f, DIR_TO_CLIENT, m->b, m->len, T0 + MS);
	assert_int_equal(f->col.n, 1);
	e = f->col.ev[0];
	assert_str(e, "memcache.protocol_type", "binary");
	assert_str(e, "memcache.request.opcode", "Set");
	assert_str(e, REQ_CMD, "set");
	assert_uint(e, "memcache.request.bytes", 2046);
	assert_uint(e, "memcache.request.count_values", 1);
	assert_uint(e, "memcache.request.flags", 5);
	assert_uint(e, "memcache.request.exptime", 0);
	assert_uint(e, "memcache.request.opaque", 0x10000);
	assert_bool(e, "memcache.request.quiet", false);
	assert_str(e, "memcache.response.status", "Success");
	assert_uint(e, "memcache.response.cas_unique", 283);
	assert_int_equal(e->client_bytes, 24 + 8 + 8 + 2046);
	assert_int_equal(e->server_bytes, 24);

	m->len = 0;
	bin(m, 0x80, 0x0c, "test_key", NULL, 0, 0, 0, 2, 0);
	tcp(f, DIR_TO_SERVER, m->b, m->len, T0 + 2 * MS);
	m->len = 0;
	bin(m, 0x81, 0x0c, "test_key", flags, 4, 2046, 0, 2, 283);
	/* the value arrives in pieces and is never buffered */
	tcp(f, DIR_TO_CLIENT, m->b, 100, T0 + 3 * MS);
	assert_int_equal(f->blen[DIR_TO_CLIENT], 0);
	tcp(f, DIR_TO_CLIENT, m->b + 100, m->len - 100, T0 + 4 * MS);
	assert_int_equal(f->col.n, 2);
	e = f->col.ev[1];
	assert_str(e, "memcache.request.type", "Load");
	assert_str(e, "memcache.response.type", "Load");
	assert_uint(e, "memcache.response.bytes", 2046);
	assert_uint(e, "memcache.response.count_values", 1);
	assert_uint(e, "memcache.response.flags", 5);
	assert_elem(e, "memcache.response.keys", 0, "test_key");
	assert_int_equal(e->end_ns, T0 + 3 * MS);
	free(m);
	fx_free(f);
}

static void test_bin_quiet_and_noop(void **state)
{
	struct fx *f = fx_new(true);
	struct mb *m = calloc(1, sizeof(*m));
	uint8_t flags[4] = {0};

	(void)state;
	fx_open(f);
	bin(m, 0x80, 0x0d, "x", NULL, 0, 0, 0, 4, 0);
	bin(m, 0x80, 0x0d, "k1", NULL, 0, 0, 0, 5, 0);
	bin(m, 0x80, 0x0d, "y", NULL, 0, 0, 0, 6, 0);
	bin(m, 0x80, 0x0a, NULL, NULL, 0, 0, 0, 7, 0);
	tcp(f, DIR_TO_SERVER, m->b, m->len, T0);
	m->len = 0;
	bin(m, 0x81, 0x0d, "k1", flags, 4, 10, 0, 5, 9);
	bin(m, 0x81, 0x0a, NULL, NULL, 0, 0, 0, 7, 0);
	tcp(f, DIR_TO_CLIENT, m->b, m->len, T0 + MS);
	assert_int_equal(f->col.n, 4);
	assert_elem(f->col.ev[0], "memcache.request.keys", 0, "x");
	assert_int_equal(f->col.ev[0]->status, EV_STATUS_OK);
	assert_null(fld(f->col.ev[0], "memcache.response.opcode"));
	assert_bool(f->col.ev[0], "memcache.request.quiet", true);
	assert_elem(f->col.ev[1], "memcache.response.keys", 0, "k1");
	assert_elem(f->col.ev[2], "memcache.request.keys", 0, "y");
	assert_null(fld(f->col.ev[2], "memcache.response.opcode"));
	assert_str(f->col.ev[3], REQ_CMD, "noop");
	assert_uint(f->col.ev[3], "memcache.response.opaque", 7);
	assert_int_equal(metrics_get("memcache.unmatched_requests"), 0);
	/* quiet requests still pending at the end are OK too; QuitQ goes at once */
	m->len = 0;
	bin(m, 0x80, 0x11, "k", "\0\0\0\0\0\0\0\0", 8, 3, 0, 8, 0);
	bin(m, 0x80, 0x17, NULL, NULL, 0, 0, 0, 9, 0);
	tcp(f, DIR_TO_SERVER, m->b, m->len, T0 + 2 * MS);
	assert_int_equal(f->col.n, 5);
	assert_str(f->col.ev[4], "memcache.request.opcode", "QuitQ");
	fx_expire(f, T0 + 3 * MS);
	assert_int_equal(f->col.n, 6);
	assert_int_equal(f->col.ev[5]->status, EV_STATUS_OK);
	assert_null(fld(f->col.ev[5], "error.message"));
	free(m);
	fx_free(f);
}

static void test_bin_statuses_counter_stats(void **state)
{
	struct fx *f = fx_new(true);
	struct mb *m = calloc(1, sizeof(*m));
	uint8_t cext[20] = {0, 0, 0, 0, 0, 0, 0, 2};
	const struct event *e;

	(void)state;
	fx_open(f);
	bin(m, 0x80, 0x05, "cnt", cext, 20, 0, 0, 1, 0);
	bin(m, 0x80, 0x0c, "gone", NULL, 0, 0, 0, 2, 0);
	bin(m, 0x80, 0x1b, NULL, "\0\0\0\1", 4, 0, 0, 3, 0);
	bin(m, 0x80, 0x10, NULL, NULL, 0, 0, 0, 4, 0);
	tcp(f, DIR_TO_SERVER, m->b, m->len, T0);
	m->len = 0;
	/* Increment → 42 */
	bin(m, 0x81, 0x05, NULL, NULL, 0, 0, 0, 1, 1);
	m->b[11] = 8; /* total body 8: the counter value */
	put64(m, 42);
	bin(m, 0x81, 0x0c, NULL, NULL, 0, 9, 1, 2, 0);    /* Key not found */
	bin(m, 0x81, 0x1b, NULL, NULL, 0, 0, 0x81, 3, 0); /* Unknown command */
	bin(m, 0x81, 0x10, "pid", NULL, 0, 1, 0, 4, 0);
	bin(m, 0x81, 0x10, "uptime", NULL, 0, 2, 0, 4, 0);
	tcp(f, DIR_TO_CLIENT, m->b, m->len, T0 + MS);
	assert_int_equal(f->col.n, 3); /* stats still open */
	e = f->col.ev[0];
	assert_uint(e, "memcache.request.delta", 2);
	assert_uint(e, "memcache.request.initial", 0);
	assert_uint(e, "memcache.response.value", 42);
	assert_int_equal(f->col.ev[1]->status, EV_STATUS_ERROR);
	assert_str(f->col.ev[1], "memcache.response.status", "Key not found");
	assert_int_equal(f->col.ev[2]->status, EV_STATUS_SERVER_ERROR);
	assert_uint(f->col.ev[2], "memcache.request.verbosity", 1);
	m->len = 0;
	bin(m, 0x81, 0x10, NULL, NULL, 0, 0, 0, 4, 0);
	tcp(f, DIR_TO_CLIENT, m->b, m->len, T0 + 2 * MS);
	assert_int_equal(f->col.n, 4);
	e = f->col.ev[3];
	assert_int_equal(count_key(e, "memcache.response.stats", "name"), 2);
	assert_int_equal(e->server_bytes, 3 * 24 + 4 + 8);
	free(m);
	fx_free(f);
}

static void test_bin_unmatched_and_skipped(void **state)
{
	struct fx *f = fx_new(true);
	struct mb *m = calloc(1, sizeof(*m));

	(void)state;
	fx_open(f);
	bin(m, 0x80, 0x0c, "a", NULL, 0, 0, 0, 1, 0);
	bin(m, 0x80, 0x0c, "b", NULL, 0, 0, 0, 2, 0);
	tcp(f, DIR_TO_SERVER, m->b, m->len, T0);
	m->len = 0;
	bin(m, 0x81, 0x0c, NULL, NULL, 0, 0, 1, 99, 0); /* nobody's opaque */
	bin(m, 0x81, 0x0c, NULL, NULL, 0, 0, 1, 2, 0);  /* b's: a is skipped */
	tcp(f, DIR_TO_CLIENT, m->b, m->len, T0 + MS);
	assert_int_equal(f->col.n, 3);
	assert_str(f->col.ev[0], "error.message", "Unmatched response");
	assert_str(f->col.ev[1], "error.message", "Unmatched request");
	assert_elem(f->col.ev[1], "memcache.request.keys", 0, "a");
	assert_elem(f->col.ev[2], "memcache.request.keys", 0, "b");
	assert_null(fld(f->col.ev[2], "error.message"));
	free(m);
	fx_free(f);
}

static void test_bin_malformed(void **state)
{
	struct fx *f;
	struct mb *m = calloc(1, sizeof(*m));

	(void)state;
	/* key + extras longer than the body */
	f = fx_new(true);
	fx_open(f);
	bin(m, 0x80, 0x01, "key", NULL, 0, 0, 0, 1, 0);
	m->b[11] = 1;
	assert_int_equal(tcp(f, DIR_TO_SERVER, m->b, m->len, T0), PARSE_ERROR);
	fx_free(f);
	/* a response magic from the client */
	f = fx_new(true);
	fx_open(f);
	m->len = 0;
	bin(m, 0x81, 0x01, NULL, NULL, 0, 0, 0, 1, 0);
	assert_int_equal(tcp(f, DIR_TO_SERVER, m->b, m->len, T0), PARSE_ERROR);
	fx_free(f);
	/* a key longer than max_line_bytes */
	f = fx_new(true);
	cfg_set(f, "max_line_bytes", 256);
	fx_open(f);
	m->len = 0;
	put8(m, 0x80);
	put8(m, 0);
	put16(m, 60000);
	put8(m, 0);
	put8(m, 0);
	put16(m, 0);
	put32(m, 60000);
	put32(m, 0);
	put64(m, 0);
	assert_int_equal(tcp(f, DIR_TO_SERVER, m->b, m->len, T0), PARSE_ERROR);
	assert_int_equal(metrics_get("memcache.limit_exceeded"), 1);
	fx_free(f);
	/* huge total body: skipped as it streams, no buffering */
	f = fx_new(true);
	fx_open(f);
	m->len = 0;
	bin(m, 0x80, 0x01, "k", "\0\0\0\0\0\0\0\0", 8, 0, 0, 1, 0);
	m->b[8] = 0xff;
	assert_int_equal(tcp(f, DIR_TO_SERVER, m->b, m->len, T0), PARSE_OK);
	assert_int_equal(f->blen[DIR_TO_SERVER], 0);
	fx_free(f);
	free(m);
}

static void test_fifo_cap(void **state)
{
	struct fx *f = fx_new(true);
	char req[64];

	(void)state;
	f->cp.max_pending = 4;
	fx_open(f);
	for (int i = 0; i < 6; i++) {
		snprintf(req, sizeof(req), "get k%d\r\n", i);
		tcps(f, DIR_TO_SERVER, req, T0);
	}
	assert_int_equal(f->col.n, 2);
	assert_int_equal(metrics_get("memcache.limit_exceeded"), 2);
	assert_elem(f->col.ev[0], "memcache.request.keys", 0, "k0");
	fx_free(f);
}

/* Every message above, delivered split at every byte (no crash, same events). */
static void test_split_every_byte(void **state)
{
	static const char *const reqs =
	    "set k1 0 0 5\r\nhello\r\nget k1 k2\r\nincr n 1\r\nstats\r\ndelete k noreply\r\n";
	static const char *const resps =
	    "STORED\r\nVALUE k1 0 5\r\nhello\r\nEND\r\n7\r\nSTAT pid 1\r\nEND\r\n";
	size_t nreq = strlen(reqs), nres = strlen(resps);

	(void)state;
	for (size_t k = 0; k <= nreq; k++) {
		struct fx *f = fx_new(true);

		fx_open(f);
		tcp(f, DIR_TO_SERVER, reqs, k, T0);
		tcp(f, DIR_TO_SERVER, reqs + k, nreq - k, T0);
		tcp(f, DIR_TO_CLIENT, resps, k < nres ? k : nres, T0 + MS);
		tcp(f, DIR_TO_CLIENT, resps + (k < nres ? k : nres), nres - (k < nres ? k : nres),
		    T0 + MS);
		assert_false(f->dead);
		assert_int_equal(f->col.n, 5);
		assert_str(f->col.ev[4], RES_CMD, "STAT");
		fx_free(f);
	}
}

/* Truncated messages at every length: no crash, nothing invented. */
static void test_truncation(void **state)
{
	struct mb *m = calloc(1, sizeof(*m));

	(void)state;
	bin(m, 0x80, 0x05, "cnt", "\0\0\0\0\0\0\0\2\0\0\0\0\0\0\0\0\0\0\0\0", 20, 0, 0, 1, 0);
	puts_(m, "set k 0 0 3\r\nabc\r\n");
	for (size_t k = 0; k < m->len; k++) {
		struct fx *f = fx_new(true);

		fx_open(f);
		tcp(f, DIR_TO_SERVER, m->b, k, T0);
		tcp(f, DIR_TO_CLIENT, m->b, k, T0);
		fx_free(f);
		f = fx_new(false);
		fx_open(f);
		udp(f, DIR_TO_SERVER, 1, 0, 1, m->b, k, T0);
		udp(f, DIR_TO_CLIENT, 1, 0, 1, m->b, k, T0);
		fx_free(f);
	}
	free(m);
}

/* ---- UDP --------------------------------------------------------------------------------------
 */

static void test_udp_text_pairing_by_id(void **state)
{
	struct fx *f = fx_new(false);

	(void)state;
	fx_open(f);
	udp(f, DIR_TO_SERVER, 1, 0, 1, "get a\r\n", 7, T0);
	udp(f, DIR_TO_SERVER, 2, 0, 1, "get b\r\n", 7, T0 + MS);
	udp(f, DIR_TO_CLIENT, 2, 0, 1, "END\r\n", 5, T0 + 2 * MS);
	assert_int_equal(f->col.n, 1);
	assert_elem(f->col.ev[0], "memcache.request.keys", 0, "b");
	assert_int_equal(f->col.ev[0]->client_bytes, 7);
	assert_int_equal(f->col.ev[0]->server_bytes, 5);
	udp(f, DIR_TO_CLIENT, 1, 0, 1, "VALUE a 0 1\r\nx\r\nEND\r\n", 21, T0 + 3 * MS);
	assert_int_equal(f->col.n, 2);
	assert_elem(f->col.ev[1], "memcache.response.keys", 0, "a");
	/* noreply: at once */
	udp(f, DIR_TO_SERVER, 3, 0, 1, "set a 0 0 1 noreply\r\n1\r\n", 24, T0 + 4 * MS);
	assert_int_equal(f->col.n, 3);
	assert_int_equal(f->col.ev[2]->status, EV_STATUS_OK);
	/* a response nobody asked for */
	udp(f, DIR_TO_CLIENT, 9, 0, 1, "STORED\r\n", 8, T0 + 5 * MS);
	assert_int_equal(f->col.n, 4);
	assert_str(f->col.ev[3], "error.message", "Unmatched response");
	fx_free(f);
}

static void test_udp_quiet_timeout(void **state)
{
	struct fx *f = fx_new(false);
	struct mb *m = calloc(1, sizeof(*m));

	(void)state;
	fx_open(f);
	bin(m, 0x80, 0x11, "k", "\0\0\0\0\0\0\0\0", 8, 4, 0, 1, 0);
	udp(f, DIR_TO_SERVER, 1, 0, 1, m->b, m->len, T0);
	m->len = 0;
	bin(m, 0x80, 0x0c, "k", NULL, 0, 0, 0, 2, 0);
	udp(f, DIR_TO_SERVER, 2, 0, 1, m->b, m->len, T0 + MS);
	assert_int_equal(f->col.n, 0);
	/* udptransactiontimeout (200 ms here) passes */
	udp(f, DIR_TO_SERVER, 3, 0, 1, "version\r\n", 9, T0 + 500 * MS);
	assert_int_equal(f->col.n, 2);
	assert_int_equal(f->col.ev[0]->status, EV_STATUS_OK); /* quiet SetQ */
	assert_bool(f->col.ev[0], "memcache.request.quiet", true);
	assert_int_equal(f->col.ev[1]->status, EV_STATUS_ERROR); /* GetK without answer */
	assert_str(f->col.ev[1], "error.message", "Unmatched request");
	free(m);
	fx_free(f);
}

static void test_udp_multi_datagram(void **state)
{
	struct fx *f = fx_new(false);
	static char resp[4000];
	size_t n = 0, cut1, cut2;
	const struct event *e;

	(void)state;
	fx_open(f);
	n += (size_t)snprintf(resp + n, sizeof(resp) - n, "VALUE big 0 2000\r\n");
	memset(resp + n, 'x', 2000);
	n += 2000;
	n += (size_t)snprintf(resp + n, sizeof(resp) - n, "\r\nVALUE small 0 2\r\nab\r\nEND\r\n");
	cut1 = 1392;
	cut2 = n - 20; /* inside "VALUE small 0 2" */
	udp(f, DIR_TO_SERVER, 7, 0, 1, "get big small\r\n", 15, T0);
	udp(f, DIR_TO_CLIENT, 7, 0, 3, resp, cut1, T0 + MS);
	udp(f, DIR_TO_CLIENT, 7, 1, 3, resp + cut1, cut2 - cut1, T0 + 2 * MS);
	assert_int_equal(f->col.n, 0);
	udp(f, DIR_TO_CLIENT, 7, 2, 3, resp + cut2, n - cut2, T0 + 3 * MS);
	assert_int_equal(f->col.n, 1);
	e = f->col.ev[0];
	assert_int_equal(e->status, EV_STATUS_OK);
	assert_int_equal(count_key(e, "memcache.response.keys", NULL), 2);
	assert_uint(e, "memcache.response.bytes", 2002);
	assert_int_equal(e->server_bytes, n);
	assert_int_equal(e->end_ns, T0 + MS);
	assert_null(fld(e, "error.message"));

	/* out of order: counted, completed when all arrived */
	udp(f, DIR_TO_SERVER, 8, 0, 1, "get big small\r\n", 15, T0 + 4 * MS);
	udp(f, DIR_TO_CLIENT, 8, 1, 3, resp + cut1, cut2 - cut1, T0 + 5 * MS);
	udp(f, DIR_TO_CLIENT, 8, 0, 3, resp, cut1, T0 + 6 * MS);
	assert_int_equal(f->col.n, 1);
	udp(f, DIR_TO_CLIENT, 8, 2, 3, resp + cut2, n - cut2, T0 + 7 * MS);
	assert_int_equal(f->col.n, 2);
	e = f->col.ev[1];
	assert_str(e, "error.message", "Response datagrams out of order: not decoded");
	assert_int_equal(e->end_ns, T0 + 5 * MS);
	assert_true(metrics_get("memcache.udp_undecoded_datagrams") >= 1);
	fx_free(f);
}

static void test_udp_hostile(void **state)
{
	struct fx *f = fx_new(false);
	uint8_t junk[6] = {0, 1, 0, 0, 0, 0};
	struct parse_result r;

	(void)state;
	fx_open(f);
	/* shorter than the frame header */
	f->ctx.ts = T0;
	r = memcache_proto.parse(f->conn, DIR_TO_SERVER, junk, sizeof(junk), &f->ctx);
	assert_int_equal(r.status, PARSE_ERROR);
	/* total 0, seq >= total */
	assert_int_equal(udp(f, DIR_TO_SERVER, 1, 0, 0, "get a\r\n", 7, T0).status, PARSE_ERROR);
	assert_int_equal(udp(f, DIR_TO_CLIENT, 1, 5, 2, "END\r\n", 5, T0).status, PARSE_ERROR);
	/* a request spread over datagrams: counted, ignored */
	udp(f, DIR_TO_SERVER, 2, 0, 2, "get a\r\n", 7, T0);
	assert_int_equal(metrics_get("memcache.limit_exceeded"), 1);
	/* a request cut at the datagram end */
	assert_int_equal(udp(f, DIR_TO_SERVER, 3, 0, 1, "set a 0 0 9\r\nab", 15, T0).status,
			 PARSE_ERROR);
	assert_int_equal(f->col.n, 1);
	assert_int_equal(f->col.ev[0]->status, EV_STATUS_ERROR);
	/* more request IDs than slots: the oldest gives way */
	for (unsigned id = 10; id < 30; id++)
		udp(f, DIR_TO_SERVER, id, 0, 1, "get a\r\n", 7, T0 + id);
	assert_int_equal(f->col.n, 1 + 12);
	fx_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_text_set_get),
	    cmocka_unit_test(test_text_statuses),
	    cmocka_unit_test(test_text_counter_version_stats),
	    cmocka_unit_test(test_text_noreply_quit),
	    cmocka_unit_test(test_text_noreply_last_token),
	    cmocka_unit_test(test_text_pipelined_and_unmatched),
	    cmocka_unit_test(test_text_unknown_command),
	    cmocka_unit_test(test_text_resync),
	    cmocka_unit_test(test_text_limits),
	    cmocka_unit_test(test_text_bad_data_block),
	    cmocka_unit_test(test_text_huge_length_streams),
	    cmocka_unit_test(test_send_request_response_capped),
	    cmocka_unit_test(test_gap_in_value),
	    cmocka_unit_test(test_pool_exhausted_keeps_pairing),
	    cmocka_unit_test(test_bin_set_get),
	    cmocka_unit_test(test_bin_quiet_and_noop),
	    cmocka_unit_test(test_bin_statuses_counter_stats),
	    cmocka_unit_test(test_bin_unmatched_and_skipped),
	    cmocka_unit_test(test_bin_malformed),
	    cmocka_unit_test(test_fifo_cap),
	    cmocka_unit_test(test_split_every_byte),
	    cmocka_unit_test(test_truncation),
	    cmocka_unit_test(test_udp_text_pairing_by_id),
	    cmocka_unit_test(test_udp_quiet_timeout),
	    cmocka_unit_test(test_udp_multi_datagram),
	    cmocka_unit_test(test_udp_hostile),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
