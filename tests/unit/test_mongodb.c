/* test_mongodb.c — the MongoDB wire protocol parser (net/proto/mongodb.c) through the
 * sink seam: OP_MSG and legacy opcodes, pairing by responseTo, moreToCome/exhaust,
 * errors, unmatched halves, limits, hostile BSON, truncation and splits. Messages are
 * built with the small BSON writer below. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hostbeat/clock.h"
#include "hostbeat/config.h"
#include "hostbeat/event.h"
#include "hostbeat/mem.h"
#include "hostbeat/metrics.h"
#include "hostbeat/proto.h"

extern const struct proto_ops mongodb_proto;

/* ---- a tiny BSON / wire writer --------------------------------------------------- */

struct wb {
	uint8_t p[1 << 17];
	size_t n;
};

static void w_put(struct wb *b, const void *s, size_t n)
{
	assert_true(sizeof(b->p) - b->n >= n);
	memcpy(b->p + b->n, s, n);
	b->n += n;
}

static void w_u8(struct wb *b, uint8_t v)
{
	w_put(b, &v, 1);
}

static void w_le32(struct wb *b, uint32_t v)
{
	uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};

	w_put(b, x, 4);
}

static void w_le64(struct wb *b, uint64_t v)
{
	w_le32(b, (uint32_t)v);
	w_le32(b, (uint32_t)(v >> 32));
}

static void w_cstr(struct wb *b, const char *s)
{
	w_put(b, s, strlen(s) + 1);
}

static void w_patch32(struct wb *b, size_t at, uint32_t v)
{
	b->p[at] = (uint8_t)v;
	b->p[at + 1] = (uint8_t)(v >> 8);
	b->p[at + 2] = (uint8_t)(v >> 16);
	b->p[at + 3] = (uint8_t)(v >> 24);
}

static size_t d_begin(struct wb *b)
{
	size_t at = b->n;

	w_le32(b, 0);
	return at;
}

static void d_end(struct wb *b, size_t at)
{
	w_u8(b, 0);
	w_patch32(b, at, (uint32_t)(b->n - at));
}

static void e_str(struct wb *b, const char *k, const char *v)
{
	w_u8(b, 0x02);
	w_cstr(b, k);
	w_le32(b, (uint32_t)strlen(v) + 1);
	w_cstr(b, v);
}

static void e_i32(struct wb *b, const char *k, int32_t v)
{
	w_u8(b, 0x10);
	w_cstr(b, k);
	w_le32(b, (uint32_t)v);
}

static void e_i64(struct wb *b, const char *k, int64_t v)
{
	w_u8(b, 0x12);
	w_cstr(b, k);
	w_le64(b, (uint64_t)v);
}

static void e_dbl(struct wb *b, const char *k, double v)
{
	uint64_t bits;

	memcpy(&bits, &v, 8);
	w_u8(b, 0x01);
	w_cstr(b, k);
	w_le64(b, bits);
}

static size_t e_doc(struct wb *b, const char *k, bool array)
{
	w_u8(b, array ? 0x04 : 0x03);
	w_cstr(b, k);
	return d_begin(b);
}

static size_t m_begin(struct wb *b, int32_t rid, int32_t rto, int32_t op)
{
	size_t at = b->n;

	w_le32(b, 0);
	w_le32(b, (uint32_t)rid);
	w_le32(b, (uint32_t)rto);
	w_le32(b, (uint32_t)op);
	return at;
}

static void m_end(struct wb *b, size_t at)
{
	w_patch32(b, at, (uint32_t)(b->n - at));
}

/* OP_MSG with a body {cmd: collection-or-1, "$db": db} (+ extra i32 "x" if x >= 0). */
static void msg_cmd(struct wb *b, int32_t rid, uint32_t flags, const char *cmd, const char *coll,
		    const char *db)
{
	size_t m = m_begin(b, rid, 0, 2013), d;

	w_le32(b, flags);
	w_u8(b, 0);
	d = d_begin(b);
	if (coll)
		e_str(b, cmd, coll);
	else
		e_i32(b, cmd, 1);
	e_str(b, "$db", db);
	d_end(b, d);
	m_end(b, m);
}

/* OP_MSG reply {ok: ok} (+ errmsg when given). */
static void msg_ok(struct wb *b, int32_t rid, int32_t rto, uint32_t flags, double ok,
		   const char *errmsg)
{
	size_t m = m_begin(b, rid, rto, 2013), d;

	w_le32(b, flags);
	w_u8(b, 0);
	d = d_begin(b);
	e_dbl(b, "ok", ok);
	if (errmsg)
		e_str(b, "errmsg", errmsg);
	d_end(b, d);
	m_end(b, m);
}

/* OP_MSG reply with a cursor batch of n documents {i: k}. */
static void msg_batch(struct wb *b, int32_t rid, int32_t rto, int n, int64_t cursor)
{
	size_t m = m_begin(b, rid, rto, 2013), d, c, a;

	w_le32(b, 0);
	w_u8(b, 0);
	d = d_begin(b);
	c = e_doc(b, "cursor", false);
	a = e_doc(b, "firstBatch", true);
	for (int i = 0; i < n; i++) {
		char key[12];
		size_t e;

		snprintf(key, sizeof(key), "%d", i);
		e = e_doc(b, key, false);
		e_i32(b, "i", i);
		d_end(b, e);
	}
	d_end(b, a);
	e_i64(b, "id", cursor);
	e_str(b, "ns", "test.coll");
	d_end(b, c);
	e_dbl(b, "ok", 1);
	d_end(b, d);
	m_end(b, m);
}

/* ---- fixture (sink seam) ----------------------------------------------------------- */

#define MAX_EVENTS 32
#define FX_EXTRA struct wb *b; /* the message builder, heap: it is 128 KiB */
#include "parser_fixture.h"

static int fx_setup(void **state)
{
	struct fx *f = fx_new(&mongodb_proto, 64, 27017);

	f->b = calloc(1, sizeof(*f->b));
	assert_non_null(f->b);
	fx_set_u(f, "max_docs", 10);
	fx_set_u(f, "max_doc_length", 5000);
	fx_set_u(f, "max_doc_bytes", 65536);
	fx_set_u(f, "max_wire_message_size", 48000000);
	hb_ip_parse("172.17.0.4", &f->info.client_ip);
	hb_ip_parse("172.17.0.10", &f->info.server_ip);
	*state = f;
	return 0;
}

static int mdb_teardown(void **state)
{
	struct fx *f = *state;

	free(f->b);
	fx_free(f);
	return 0;
}

/* Send the builder's bytes in `dir`, then empty the builder; advance the clock 1 ms. */
static enum parse_status send_b(struct fx *f, enum proto_dir dir)
{
	enum parse_status st = feed_n(f, dir, f->b->p, f->b->n);

	f->b->n = 0;
	f->ctx.ts += NS_PER_MS;
	return st;
}

static void assert_int_field(const struct event *ev, const char *key, int64_t want)
{
	const struct ev_field *fl = field(ev, key);

	if (fl->type == EV_T_INT)
		assert_int_equal(fl->v.i, want);
	else if (fl->type == EV_T_UINT)
		assert_int_equal((int64_t)fl->v.u, want);
	else
		fail_msg("%s is not a number", key);
}

/* ---- tests --------------------------------------------------------------------------- */

static void test_op_msg_pair(void **state)
{
	struct fx *f = *state;
	struct event *ev;

	msg_cmd(f->b, 7, 0, "hello", NULL, "admin");
	assert_int_equal(send_b(f, DIR_TO_SERVER), PARSE_OK);
	assert_int_equal(f->nev, 0);
	msg_ok(f->b, 100, 7, 0, 1, NULL);
	send_b(f, DIR_TO_CLIENT);
	assert_int_equal(f->nev, 1);
	ev = f->ev[0];
	assert_int_equal(ev->status, EV_STATUS_OK);
	assert_str(ev, "method", "hello");
	assert_str(ev, "resource", "admin.$cmd");
	assert_str(ev, "query", "admin.$cmd.hello()");
	assert_true(ev->has_client_bytes && ev->has_server_bytes);
	assert_int_equal(ev->client_bytes, 52);
	assert_int_equal(ev->server_bytes, 38);
	assert_int_equal(ev->start_ns, T0);
	assert_int_equal(ev->end_ns, T0 + NS_PER_MS);
	assert_null(ev_find(ev, "request"));
	assert_null(ev_find(ev, "response"));
	assert_int_equal(metrics_get("mongodb.messages"), 2);
	assert_int_equal(metrics_get("mongodb.transactions"), 1);
}

static void test_op_msg_find_batch(void **state)
{
	struct fx *f = *state;
	struct event *ev;

	f->cfg.send_request = f->cfg.send_response = true;
	fx_set_u(f, "max_docs", 2);
	msg_cmd(f->b, 1, 0, "find", "coll", "test");
	send_b(f, DIR_TO_SERVER);
	msg_batch(f->b, 2, 1, 3, 4242);
	send_b(f, DIR_TO_CLIENT);
	assert_int_equal(f->nev, 1);
	ev = f->ev[0];
	assert_str(ev, "method", "find");
	assert_str(ev, "resource", "test.coll");
	assert_str(ev, "mongodb.fullCollectionName", "test.coll");
	assert_str(ev, "request", "test.coll.find()");
	assert_int_field(ev, "mongodb.numberReturned", 3);
	assert_int_field(ev, "mongodb.cursorId", 4242);
	assert_str(ev, "response", "{\"i\":0}\n{\"i\":1}\n[...]");
}

static void test_errors(void **state)
{
	struct fx *f = *state;
	size_t m, d, a, e;

	msg_cmd(f->b, 1, 0, "find", "c", "db");
	send_b(f, DIR_TO_SERVER);
	msg_ok(f->b, 2, 1, 0, 0, "unknown operator");
	send_b(f, DIR_TO_CLIENT);
	assert_int_equal(f->nev, 1);
	assert_int_equal(f->ev[0]->status, EV_STATUS_ERROR);
	assert_str(f->ev[0], "mongodb.error", "unknown operator");

	/* ok: 1 with writeErrors is an error too */
	msg_cmd(f->b, 3, 0, "insert", "c", "db");
	send_b(f, DIR_TO_SERVER);
	m = m_begin(f->b, 4, 3, 2013);
	w_le32(f->b, 0);
	w_u8(f->b, 0);
	d = d_begin(f->b);
	e_i32(f->b, "n", 0);
	a = e_doc(f->b, "writeErrors", true);
	e = e_doc(f->b, "0", false);
	e_i32(f->b, "code", 11000);
	d_end(f->b, e);
	d_end(f->b, a);
	e_dbl(f->b, "ok", 1);
	d_end(f->b, d);
	m_end(f->b, m);
	send_b(f, DIR_TO_CLIENT);
	assert_int_equal(f->nev, 2);
	assert_int_equal(f->ev[1]->status, EV_STATUS_ERROR);
	assert_str(f->ev[1], "mongodb.error", "[{\"code\":11000}]");

	/* ok: 0 without errmsg */
	msg_cmd(f->b, 5, 0, "frob", NULL, "db");
	send_b(f, DIR_TO_SERVER);
	msg_ok(f->b, 6, 5, 0, 0, NULL);
	send_b(f, DIR_TO_CLIENT);
	assert_str(f->ev[2], "mongodb.error", "ok: 0");
	assert_str(f->ev[2], "resource", "db.$cmd");
}

static void test_legacy_query_reply(void **state)
{
	struct fx *f = *state;
	struct event *ev;
	size_t m, d, e;

	f->cfg.send_request = f->cfg.send_response = true;
	/* OP_QUERY db.$cmd {count: "things", query: {}} skip 0 return -1 */
	m = m_begin(f->b, 20, 0, 2004);
	w_le32(f->b, 0);
	w_cstr(f->b, "db.$cmd");
	w_le32(f->b, 0);
	w_le32(f->b, (uint32_t)-1);
	d = d_begin(f->b);
	e_str(f->b, "count", "things");
	e = e_doc(f->b, "query", false);
	d_end(f->b, e);
	d_end(f->b, d);
	m_end(f->b, m);
	send_b(f, DIR_TO_SERVER);
	/* OP_REPLY: one document {$err: "boom"} */
	m = m_begin(f->b, 120, 20, 1);
	w_le32(f->b, 2);
	w_le64(f->b, 0);
	w_le32(f->b, 0);
	w_le32(f->b, 1);
	d = d_begin(f->b);
	e_str(f->b, "$err", "boom");
	d_end(f->b, d);
	m_end(f->b, m);
	send_b(f, DIR_TO_CLIENT);
	assert_int_equal(f->nev, 1);
	ev = f->ev[0];
	assert_str(ev, "method", "count");
	assert_str(ev, "resource", "db.things");
	assert_str(ev, "mongodb.fullCollectionName", "db.$cmd");
	assert_str(ev, "query", "db.things.count()");
	assert_str(ev, "request", "db.things.count({\"query\":{}})");
	assert_str(ev, "response", "{\"$err\":\"boom\"}");
	assert_int_field(ev, "mongodb.numberToReturn", -1);
	assert_int_field(ev, "mongodb.numberReturned", 1);
	assert_int_equal(ev->status, EV_STATUS_ERROR);
	assert_str(ev, "mongodb.error", "boom");
}

static void test_no_reply_ops(void **state)
{
	struct fx *f = *state;
	size_t m, d;

	/* OP_INSERT and OP_MSG with moreToCome: published at once, OK, no response */
	m = m_begin(f->b, 30, 0, 2002);
	w_le32(f->b, 0);
	w_cstr(f->b, "test.coll");
	d = d_begin(f->b);
	e_i32(f->b, "a", 1);
	d_end(f->b, d);
	m_end(f->b, m);
	send_b(f, DIR_TO_SERVER);
	assert_int_equal(f->nev, 1);
	assert_str(f->ev[0], "method", "insert");
	assert_str(f->ev[0], "resource", "test.coll");
	assert_int_equal(f->ev[0]->status, EV_STATUS_OK);
	assert_false(f->ev[0]->has_server_bytes);
	msg_cmd(f->b, 31, 2, "insert", "logs", "test");
	send_b(f, DIR_TO_SERVER);
	assert_int_equal(f->nev, 2);
	assert_int_equal(f->ev[1]->status, EV_STATUS_OK);
	assert_int_equal(f->ev[1]->end_ns, 0);
	fx_close(f);
	assert_int_equal(f->nev, 2); /* nothing was pending */
}

static void test_pipelined_out_of_order(void **state)
{
	struct fx *f = *state;

	msg_cmd(f->b, 1, 0, "count", "a", "d");
	msg_cmd(f->b, 2, 0, "count", "b", "d");
	msg_cmd(f->b, 3, 0, "count", "c", "d");
	send_b(f, DIR_TO_SERVER);
	msg_ok(f->b, 10, 3, 0, 1, NULL);
	msg_ok(f->b, 11, 1, 0, 1, NULL);
	msg_ok(f->b, 12, 2, 0, 1, NULL);
	send_b(f, DIR_TO_CLIENT);
	assert_int_equal(f->nev, 3);
	assert_str(f->ev[0], "resource", "d.c");
	assert_str(f->ev[1], "resource", "d.a");
	assert_str(f->ev[2], "resource", "d.b");
	for (int i = 0; i < 3; i++)
		assert_int_equal(f->ev[i]->status, EV_STATUS_OK);
}

static void test_exhaust(void **state)
{
	struct fx *f = *state;
	size_t at;

	msg_cmd(f->b, 1, 0x10000, "getMore", NULL, "local");
	send_b(f, DIR_TO_SERVER);
	msg_batch(f->b, 10, 1, 1, 9);
	f->b->p[16] = 2; /* flagBits: moreToCome */
	at = f->b->n;
	msg_batch(f->b, 11, 10, 2, 9);
	f->b->p[at + 16] = 2;
	msg_batch(f->b, 12, 11, 0, 0);
	send_b(f, DIR_TO_CLIENT);
	assert_int_equal(f->nev, 1);
	assert_int_field(f->ev[0], "mongodb.numberReturned", 1);
	assert_int_equal(metrics_get("mongodb.exhaust_replies"), 2);
	assert_int_equal(metrics_get("mongodb.unmatched_responses"), 0);
	/* the stream ended: a new reply to an unknown id is unmatched again */
	msg_ok(f->b, 13, 12, 0, 1, NULL);
	send_b(f, DIR_TO_CLIENT);
	assert_int_equal(f->nev, 2);
	assert_int_equal(metrics_get("mongodb.unmatched_responses"), 1);
}

static void test_unmatched(void **state)
{
	struct fx *f = *state;

	msg_ok(f->b, 10, 99, 0, 1, NULL);
	send_b(f, DIR_TO_CLIENT);
	assert_int_equal(f->nev, 1);
	assert_int_equal(f->ev[0]->status, EV_STATUS_ERROR);
	assert_str(f->ev[0], "error.message", "Unmatched response");
	assert_int_equal(f->ev[0]->start_ns, 0);
	msg_cmd(f->b, 1, 0, "find", "a", "x");
	send_b(f, DIR_TO_SERVER);
	f->ctx.ts += 11 * NS_PER_SEC; /* past transaction_timeout */
	msg_cmd(f->b, 2, 0, "find", "b", "x");
	send_b(f, DIR_TO_SERVER);
	assert_int_equal(f->nev, 2);
	assert_str(f->ev[1], "resource", "x.a");
	assert_str(f->ev[1], "error.message", "Unmatched request");
	/* the server closes: what is pending is unmatched now */
	f->ops->fin(f->conn, DIR_TO_CLIENT, &f->ctx);
	assert_int_equal(f->nev, 3);
	assert_str(f->ev[2], "resource", "x.b");
	assert_int_equal(metrics_get("mongodb.unmatched_requests"), 2);
	assert_int_equal(metrics_get("mongodb.unmatched_responses"), 1);
	/* a late reply to the expired request is an unmatched response */
	msg_ok(f->b, 11, 1, 0, 1, NULL);
	send_b(f, DIR_TO_CLIENT);
	assert_int_equal(f->nev, 4);
	assert_str(f->ev[3], "error.message", "Unmatched response");
}

static void test_pending_cap(void **state)
{
	struct fx *f = *state;

	f->cfg.max_pending = 2;
	for (int i = 1; i <= 3; i++)
		msg_cmd(f->b, i, 0, "ping", NULL, "admin");
	send_b(f, DIR_TO_SERVER);
	assert_int_equal(f->nev, 1);
	assert_str(f->ev[0], "error.message", "Unmatched request");
	assert_int_equal(metrics_get("mongodb.limit_exceeded"), 1);
	msg_ok(f->b, 12, 2, 0, 1, NULL);
	msg_ok(f->b, 13, 3, 0, 1, NULL);
	send_b(f, DIR_TO_CLIENT);
	assert_int_equal(f->nev, 3);
	assert_int_equal(f->ev[1]->status, EV_STATUS_OK);
	assert_int_equal(f->ev[2]->status, EV_STATUS_OK);
}

static void test_compressed(void **state)
{
	struct fx *f = *state;
	size_t m;

	for (int dir = 0; dir < 2; dir++) {
		m = m_begin(f->b, dir ? 50 : 5, dir ? 5 : 0, 2012);
		w_le32(f->b, 2013);
		w_le32(f->b, 100);
		w_u8(f->b, 2);
		w_put(f->b, "\x28\xb5\x2f\xfd", 4);
		m_end(f->b, m);
		send_b(f, dir ? DIR_TO_CLIENT : DIR_TO_SERVER);
	}
	assert_int_equal(f->nev, 1);
	assert_int_equal(f->ev[0]->status, EV_STATUS_OK);
	assert_str(f->ev[0], "method", "compressed");
	assert_int_equal(metrics_get("mongodb.compressed"), 2);
}

static void test_limits(void **state)
{
	struct fx *f = *state;
	uint8_t hdr[16] = {0x00, 0x10, 0x00, 0x00, 1, 0, 0, 0, 0, 0, 0, 0, 0xdd, 0x07, 0, 0};

	/* messageLength above max_wire_message_size on a synced stream: give up */
	fx_set_u(f, "max_wire_message_size", 4000);
	msg_cmd(f->b, 1, 0, "ping", NULL, "admin");
	send_b(f, DIR_TO_SERVER);
	assert_int_equal(feed_n(f, DIR_TO_SERVER, hdr, sizeof(hdr)), PARSE_ERROR);
	assert_int_equal(metrics_get("mongodb.limit_exceeded"), 1);
}

/* A 100 KB document with max_doc_bytes 64: walked over its prefix, the rest consumed
 * as it arrives — the parser never makes the stream layer hold the whole message. */
static void test_oversize_doc(void **state)
{
	struct fx *f = *state;
	static char big[100000];
	size_t m, d;

	f->cfg.send_request = true;
	fx_set_u(f, "max_doc_bytes", 64);
	memset(big, 'x', sizeof(big) - 1);
	m = m_begin(f->b, 1, 0, 2013);
	w_le32(f->b, 0);
	w_u8(f->b, 0);
	d = d_begin(f->b);
	e_str(f->b, "insert", "c");
	e_str(f->b, "blob", big);
	e_str(f->b, "$db", "test");
	d_end(f->b, d);
	m_end(f->b, m);
	for (size_t o = 0; o < f->b->n; o += 1400)
		feed_n(f, DIR_TO_SERVER, f->b->p + o, f->b->n - o < 1400 ? f->b->n - o : 1400);
	f->b->n = 0;
	assert_true(f->max_tail[DIR_TO_SERVER] < 1400 + 64);
	msg_ok(f->b, 2, 1, 0, 1, NULL);
	send_b(f, DIR_TO_CLIENT);
	assert_int_equal(f->nev, 1);
	assert_str(f->ev[0], "method", "insert");
	assert_null(ev_find(f->ev[0], "resource")); /* "$db" was past the cut */
	assert_int_equal(metrics_get("mongodb.docs_truncated"), 1);
	assert_int_equal(f->ev[0]->client_bytes, 100000 + 64);
}

static void test_hostile_bson(void **state)
{
	struct fx *f = *state;
	static const uint8_t bodies[][24] = {
	    /* doc length larger than the message */
	    {0xff, 0xff, 0x00, 0x00, 0x10, 'a', 0, 1, 0, 0, 0, 0},
	    /* string length negative */
	    {12, 0, 0, 0, 0x02, 'a', 0, 0xff, 0xff, 0xff, 0xff, 0},
	    /* nested document longer than its parent */
	    {16, 0, 0, 0, 0x03, 'a', 0, 0x40, 0, 0, 0, 0x10, 'b', 0, 0, 0},
	    /* unknown element type */
	    {12, 0, 0, 0, 0x42, 'a', 0, 1, 2, 3, 4, 0},
	    /* bool that is not 0/1, missing terminator */
	    {9, 0, 0, 0, 0x08, 'a', 0, 7, 1},
	    /* string without its NUL */
	    {15, 0, 0, 0, 0x02, 'a', 0, 3, 0, 0, 0, 'a', 'b', 'c', 0},
	};
	size_t lens[] = {12, 12, 16, 12, 9, 15};

	f->cfg.send_request = true;
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		size_t m = m_begin(f->b, (int32_t)i + 1, 0, 2013);

		w_le32(f->b, 0);
		w_u8(f->b, 0);
		w_put(f->b, bodies[i], lens[i]);
		m_end(f->b, m);
		assert_int_equal(send_b(f, DIR_TO_SERVER), PARSE_OK);
		msg_ok(f->b, 100 + (int32_t)i, (int32_t)i + 1, 0, 1, NULL);
		send_b(f, DIR_TO_CLIENT);
	}
	assert_int_equal(f->nev, 6);
	assert_int_equal(metrics_get("mongodb.malformed"), 6);
	for (size_t i = 0; i < 6; i++) {
		assert_int_equal(f->ev[i]->status, EV_STATUS_OK);
		assert_str(f->ev[i], "error.message", "Malformed MongoDB message");
	}
}

/* The reply's top level is walked once for its errors, its "cursor" documents and
 * its validity: a getMore's cursorId is replaced by the reply's (one field), every
 * "cursor" document counts, an error beside a cursor is still found, and a malformed
 * element after them is counted once. A "$db" holding a NUL names up to the NUL. */
static void test_reply_cursor_and_errors(void **state)
{
	struct fx *f = *state;
	struct event *ev;
	size_t m, d, c, a, e, n;
	unsigned ids = 0;

	/* getMore: int64 cursor in the command, the collection beside it */
	m = m_begin(f->b, 1, 0, 2013);
	w_le32(f->b, 0);
	w_u8(f->b, 0);
	d = d_begin(f->b);
	e_i64(f->b, "getMore", 77);
	e_str(f->b, "collection", "coll");
	w_u8(f->b, 0x02); /* "$db": "te\0st" */
	w_cstr(f->b, "$db");
	w_le32(f->b, 6);
	w_put(f->b, "te\0st", 6);
	d_end(f->b, d);
	m_end(f->b, m);
	send_b(f, DIR_TO_SERVER);
	/* {cursor: {nextBatch: [{}], id: 0}, cursor: {nextBatch: [{}, {}], id: 9},
	 *  errmsg: "late", ok: 0, then an element of unknown type} */
	m = m_begin(f->b, 2, 1, 2013);
	w_le32(f->b, 0);
	w_u8(f->b, 0);
	d = d_begin(f->b);
	for (int k = 0; k < 2; k++) {
		c = e_doc(f->b, "cursor", false);
		a = e_doc(f->b, "nextBatch", true);
		for (int i = 0; i <= k; i++) {
			e = e_doc(f->b, i ? "1" : "0", false);
			d_end(f->b, e);
		}
		d_end(f->b, a);
		e_i64(f->b, "id", k ? 9 : 0);
		d_end(f->b, c);
	}
	e_str(f->b, "errmsg", "late");
	e_dbl(f->b, "ok", 0);
	n = f->b->n;
	e_i32(f->b, "bad", 1);
	f->b->p[n] = 0x42; /* unknown type: malformed from here */
	d_end(f->b, d);
	m_end(f->b, m);
	send_b(f, DIR_TO_CLIENT);
	assert_int_equal(f->nev, 1);
	ev = f->ev[0];
	assert_str(ev, "method", "getMore");
	assert_str(ev, "resource", "te.coll");
	assert_str(ev, "mongodb.fullCollectionName", "te.coll");
	assert_str(ev, "query", "te.coll.getMore()");
	for (size_t i = 0; i < ev->nfields; i++)
		ids += strcmp(ev->fields[i].key, "mongodb.cursorId") == 0;
	assert_int_equal(ids, 1);
	assert_int_field(ev, "mongodb.cursorId", 9);
	assert_int_field(ev, "mongodb.numberReturned", 3);
	assert_int_equal(ev->status, EV_STATUS_ERROR);
	assert_str(ev, "mongodb.error", "late");
	assert_str(ev, "error.message", "Malformed MongoDB message");
	assert_int_equal(metrics_get("mongodb.malformed"), 1);
}

static void test_deep_nesting(void **state)
{
	struct fx *f = *state;
	size_t m, d, at[40];

	f->cfg.send_request = true;
	m = m_begin(f->b, 1, 0, 2013);
	w_le32(f->b, 0);
	w_u8(f->b, 0);
	d = d_begin(f->b);
	e_str(f->b, "find", "c");
	for (int i = 0; i < 40; i++)
		at[i] = e_doc(f->b, i ? "d" : "filter", false);
	for (int i = 39; i >= 0; i--)
		d_end(f->b, at[i]);
	e_str(f->b, "$db", "t");
	d_end(f->b, d);
	m_end(f->b, m);
	send_b(f, DIR_TO_SERVER);
	msg_ok(f->b, 2, 1, 0, 1, NULL);
	send_b(f, DIR_TO_CLIENT);
	assert_int_equal(f->nev, 1);
	assert_str(f->ev[0], "resource", "t.c");
	assert_null(ev_find(f->ev[0], "mongodb.query")); /* refused beyond depth 32 */
	assert_int_equal(metrics_get("mongodb.malformed"), 1);
}

static void test_all_types(void **state)
{
	struct fx *f = *state;
	static const uint8_t oid[12] = {0x55, 0x8b, 0xeb, 0xb4, 0x5f, 0x07,
					0x56, 0x65, 0xd2, 0xae, 0x86, 0x27};
	size_t m, d, q;

	f->cfg.send_request = true;
	m = m_begin(f->b, 1, 0, 2004);
	w_le32(f->b, 0);
	w_cstr(f->b, "t.c");
	w_le32(f->b, 0);
	w_le32(f->b, 0);
	q = d_begin(f->b);
	e_dbl(f->b, "d", -73.856077);
	e_dbl(f->b, "big", 1e21);
	w_u8(f->b, 0x05), w_cstr(f->b, "bin"), w_le32(f->b, 3), w_u8(f->b, 0),
	    w_put(f->b, "abc", 3);
	w_u8(f->b, 0x06), w_cstr(f->b, "u");
	w_u8(f->b, 0x07), w_cstr(f->b, "o"), w_put(f->b, oid, 12);
	w_u8(f->b, 0x08), w_cstr(f->b, "b"), w_u8(f->b, 1);
	w_u8(f->b, 0x09), w_cstr(f->b, "dt"), w_le64(f->b, 1435233204120ull);
	w_u8(f->b, 0x0a), w_cstr(f->b, "n");
	w_u8(f->b, 0x0b), w_cstr(f->b, "re"), w_cstr(f->b, "^x"), w_cstr(f->b, "im");
	w_u8(f->b, 0x0d), w_cstr(f->b, "js"), w_le32(f->b, 2), w_cstr(f->b, "f");
	w_u8(f->b, 0x11), w_cstr(f->b, "ts"), w_le64(f->b, 5);
	e_i64(f->b, "l", -5);
	w_u8(f->b, 0x13), w_cstr(f->b, "dec"), w_le64(f->b, 15),
	    w_le64(f->b, 0x3040000000000000ull);
	w_u8(f->b, 0xff), w_cstr(f->b, "mn");
	w_u8(f->b, 0x7f), w_cstr(f->b, "mx");
	e_str(f->b, "s", "a\"\\\x01");
	d = e_doc(f->b, "arr", true);
	e_i32(f->b, "0", 1);
	e_str(f->b, "1", "x");
	d_end(f->b, d);
	d_end(f->b, q);
	m_end(f->b, m);
	send_b(f, DIR_TO_SERVER);
	fx_close(f);
	assert_int_equal(f->nev, 1);
	assert_str(
	    f->ev[0], "mongodb.query",
	    "{\"d\":-73.856077,\"big\":1e+21,\"bin\":\"YWJj\",\"u\":null,"
	    "\"o\":\"558bebb45f075665d2ae8627\",\"b\":true,\"dt\":\"2015-06-25T11:53:24.12Z\","
	    "\"n\":null,\"re\":{\"$regex\":\"^x\",\"$options\":\"im\"},\"js\":\"f\",\"ts\":5,"
	    "\"l\":-5,\"dec\":{\"$numberDecimal\":\"15\"},\"mn\":{\"$minKey\":1},"
	    "\"mx\":{\"$maxKey\":1},\"s\":\"a\\\"\\\\\\u0001\",\"arr\":[1,\"x\"]}");
	assert_str(f->ev[0], "error.message", "Unmatched request");
}

static void test_caps(void **state)
{
	struct fx *f = *state;

	f->cfg.send_response = true;
	f->cfg.max_message_size = 21;
	fx_set_u(f, "max_doc_length", 6);
	fx_set_u(f, "max_docs", 0);
	msg_cmd(f->b, 1, 0, "find", "c", "d");
	send_b(f, DIR_TO_SERVER);
	msg_batch(f->b, 2, 1, 5, 0);
	send_b(f, DIR_TO_CLIENT);
	assert_int_equal(f->nev, 1);
	/* each line cut at 6 chars + " ...", and the whole capped at 21 bytes */
	assert_str(f->ev[0], "response", "{\"i\":0 ...\n{\"i\":1 ...");
	assert_int_field(f->ev[0], "mongodb.numberReturned", 5);
}

static void test_gap(void **state)
{
	struct fx *f = *state;
	size_t n;

	msg_cmd(f->b, 1, 0, "find", "c", "d");
	n = f->b->n;
	feed_n(f, DIR_TO_SERVER, f->b->p, 20);
	assert_int_equal(f->ops->gap(f->conn, DIR_TO_SERVER, n - 20, &f->ctx), 0);
	f->b->n = 0;
	msg_ok(f->b, 2, 1, 0, 1, NULL);
	send_b(f, DIR_TO_CLIENT);
	assert_int_equal(f->nev, 1);
	assert_str(f->ev[0], "error.message", "Packet loss while capturing the request");
	assert_int_equal(f->ev[0]->status, EV_STATUS_OK);
	/* at a boundary there is nothing to skip by */
	assert_int_equal(f->ops->gap(f->conn, DIR_TO_SERVER, 10, &f->ctx), -1);
	/* more than the message holds */
	msg_cmd(f->b, 3, 0, "ping", NULL, "admin");
	feed_n(f, DIR_TO_SERVER, f->b->p, 20);
	assert_int_equal(f->ops->gap(f->conn, DIR_TO_SERVER, 1000, &f->ctx), -1);
	f->b->n = 0;
}

static void test_resync(void **state)
{
	struct fx *f = *state;
	static const uint8_t junk[] = "\x01\x02garbage\xff\xff\xff\x7f";

	feed_n(f, DIR_TO_SERVER, junk, sizeof(junk) - 1);
	msg_cmd(f->b, 1, 0, "ping", NULL, "admin");
	send_b(f, DIR_TO_SERVER);
	msg_ok(f->b, 2, 1, 0, 1, NULL);
	send_b(f, DIR_TO_CLIENT);
	assert_int_equal(f->nev, 1);
	assert_int_equal(f->ev[0]->status, EV_STATUS_OK);
	assert_str(f->ev[0], "method", "ping");
	assert_int_equal(metrics_get("mongodb.resync_skipped_bytes"), sizeof(junk) - 1);
}

/* Request + reply pool exhaustion: the request without an event is remembered by id,
 * so its reply is not reported as unmatched. */
static void test_pool_exhausted(void **state)
{
	struct fx *f = *state;
	struct ev_pool *small = ev_pool_new(1, 1u << 16, 64);

	f->sink.pool = small;
	msg_cmd(f->b, 1, 0, "ping", NULL, "admin");
	msg_cmd(f->b, 2, 0, "ping", NULL, "admin");
	send_b(f, DIR_TO_SERVER);
	msg_ok(f->b, 11, 2, 0, 1, NULL);
	msg_ok(f->b, 10, 1, 0, 1, NULL);
	send_b(f, DIR_TO_CLIENT);
	assert_int_equal(f->nev, 1);
	assert_int_equal(f->ev[0]->status, EV_STATUS_OK);
	assert_int_equal(metrics_get("mongodb.pool_exhausted"), 1);
	assert_int_equal(metrics_get("mongodb.unmatched_responses"), 0);
	fx_close(f);
	fx_drop_events(f);
	f->sink.pool = f->pool;
	ev_pool_free(small);
}

/* Every split point of a request/reply pair gives the same event; every truncation
 * point ends cleanly (no crash, no leak, pending published at expire). */
static void test_split_and_truncate(void **state)
{
	struct fx *f = *state;
	struct wb *req = calloc(1, sizeof(*req)), *rsp = calloc(1, sizeof(*rsp));

	assert_non_null(req);
	assert_non_null(rsp);
	f->cfg.send_request = f->cfg.send_response = true;
	msg_cmd(req, 1, 1, "find", "coll", "test"); /* checksumPresent: the last 4 bytes */
	w_le32(req, 0);
	m_end(req, 0);
	msg_batch(rsp, 2, 1, 2, 0);
	for (size_t k = 0; k <= req->n; k++) {
		feed_n(f, DIR_TO_SERVER, req->p, k);
		feed_n(f, DIR_TO_SERVER, req->p + k, req->n - k);
		feed_n(f, DIR_TO_CLIENT, rsp->p, k < rsp->n ? k : rsp->n);
		feed_n(f, DIR_TO_CLIENT, rsp->p + (k < rsp->n ? k : rsp->n),
		       rsp->n - (k < rsp->n ? k : rsp->n));
		assert_int_equal(f->nev, 1);
		assert_int_equal(f->ev[0]->status, EV_STATUS_OK);
		assert_str(f->ev[0], "resource", "test.coll");
		assert_str(f->ev[0], "response", "{\"i\":0}\n{\"i\":1}");
		fx_close(f);
		fx_drop_events(f);
	}
	for (size_t k = 0; k < req->n + rsp->n; k++) {
		feed_n(f, DIR_TO_SERVER, req->p, k < req->n ? k : req->n);
		if (k > req->n)
			feed_n(f, DIR_TO_CLIENT, rsp->p, k - req->n);
		fx_close(f);
		assert_true(f->nev <= 1);
		fx_drop_events(f);
	}
	free(req);
	free(rsp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_op_msg_pair, fx_setup, mdb_teardown),
	    cmocka_unit_test_setup_teardown(test_op_msg_find_batch, fx_setup, mdb_teardown),
	    cmocka_unit_test_setup_teardown(test_errors, fx_setup, mdb_teardown),
	    cmocka_unit_test_setup_teardown(test_legacy_query_reply, fx_setup, mdb_teardown),
	    cmocka_unit_test_setup_teardown(test_no_reply_ops, fx_setup, mdb_teardown),
	    cmocka_unit_test_setup_teardown(test_pipelined_out_of_order, fx_setup, mdb_teardown),
	    cmocka_unit_test_setup_teardown(test_exhaust, fx_setup, mdb_teardown),
	    cmocka_unit_test_setup_teardown(test_unmatched, fx_setup, mdb_teardown),
	    cmocka_unit_test_setup_teardown(test_pending_cap, fx_setup, mdb_teardown),
	    cmocka_unit_test_setup_teardown(test_compressed, fx_setup, mdb_teardown),
	    cmocka_unit_test_setup_teardown(test_limits, fx_setup, mdb_teardown),
	    cmocka_unit_test_setup_teardown(test_oversize_doc, fx_setup, mdb_teardown),
	    cmocka_unit_test_setup_teardown(test_hostile_bson, fx_setup, mdb_teardown),
	    cmocka_unit_test_setup_teardown(test_reply_cursor_and_errors, fx_setup, mdb_teardown),
	    cmocka_unit_test_setup_teardown(test_deep_nesting, fx_setup, mdb_teardown),
	    cmocka_unit_test_setup_teardown(test_all_types, fx_setup, mdb_teardown),
	    cmocka_unit_test_setup_teardown(test_caps, fx_setup, mdb_teardown),
	    cmocka_unit_test_setup_teardown(test_gap, fx_setup, mdb_teardown),
	    cmocka_unit_test_setup_teardown(test_resync, fx_setup, mdb_teardown),
	    cmocka_unit_test_setup_teardown(test_pool_exhausted, fx_setup, mdb_teardown),
	    cmocka_unit_test_setup_teardown(test_split_and_truncate, fx_setup, mdb_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
