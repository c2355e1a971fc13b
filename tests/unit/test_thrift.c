/* test_thrift.c — the Thrift RPC parser (net/proto/thrift.c) through the sink seam:
 * binary (strict and old) and compact protocols, framed and unframed transports,
 * rendering, pairing by seqid, oneway, exceptions, limits, gaps, hostile input. */
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

#define MAX_EVENTS 64
#include "parser_fixture.h"

static int fx_setup(void **state)
{
	struct fx *f = fx_new(proto_find("thrift"), MAX_EVENTS, 9090);

	/* the defaults of the config table */
	fx_set(f, "string_max_size", "200");
	fx_set(f, "collection_max_size", "15");
	fx_set(f, "drop_after_n_struct_fields", "500");
	fx_set(f, "capture_reply", "true");
	fx_set(f, "max_depth", "32");
	fx_set(f, "max_method_size", "255");
	fx_set(f, "max_frame_size", "16777216");
	fx_set(f, "max_rendered_size", "65536");
	*state = f;
	return 0;
}

/* ---- message builder ---------------------------------------------------------------- */

struct mb {
	uint8_t b[70000];
	size_t n;
};

static void u8(struct mb *m, unsigned v)
{
	assert_true(m->n < sizeof(m->b));
	m->b[m->n++] = (uint8_t)v;
}

static void be16(struct mb *m, unsigned v)
{
	u8(m, v >> 8);
	u8(m, v);
}

static void be32(struct mb *m, uint32_t v)
{
	be16(m, v >> 16);
	be16(m, v & 0xffff);
}

static void be64(struct mb *m, uint64_t v)
{
	be32(m, (uint32_t)(v >> 32));
	be32(m, (uint32_t)v);
}

static void raw(struct mb *m, const void *p, size_t n)
{
	assert_true(sizeof(m->b) - m->n >= n);
	memcpy(m->b + m->n, p, n);
	m->n += n;
}

static void bstr(struct mb *m, const char *s)
{
	be32(m, (uint32_t)strlen(s));
	raw(m, s, strlen(s));
}

static void varint(struct mb *m, uint64_t v)
{
	while (v >= 0x80) {
		u8(m, (unsigned)(v & 0x7f) | 0x80);
		v >>= 7;
	}
	u8(m, (unsigned)v);
}

static void cstr(struct mb *m, const char *s)
{
	varint(m, strlen(s));
	raw(m, s, strlen(s));
}

/* strict binary header */
static void bhdr(struct mb *m, const char *name, unsigned type, int32_t seqid)
{
	be32(m, 0x80010000u | type);
	bstr(m, name);
	be32(m, (uint32_t)seqid);
}

static void chdr(struct mb *m, const char *name, unsigned type, int32_t seqid)
{
	u8(m, 0x82);
	u8(m, type << 5 | 1);
	varint(m, (uint32_t)seqid);
	cstr(m, name);
}

/* binary field header */
static void bfld(struct mb *m, unsigned type, int id)
{
	u8(m, type);
	be16(m, (unsigned)id & 0xffff);
}

/* A whole framed copy of m. */
static void framed(struct mb *out, const struct mb *m)
{
	out->n = 0;
	be32(out, (uint32_t)m->n);
	raw(out, m->b, m->n);
}

static void bmsg_void(struct mb *m, const char *name, unsigned type, int32_t seqid)
{
	m->n = 0;
	bhdr(m, name, type, seqid);
	u8(m, 0);
}

/* reply add → (0: i32 v) */
static void breply_i32(struct mb *m, const char *name, int32_t seqid, int32_t v)
{
	m->n = 0;
	bhdr(m, name, 2, seqid);
	bfld(m, 8, 0);
	be32(m, (uint32_t)v);
	u8(m, 0);
}

/* ---- tests ------------------------------------------------------------------------- */

static void test_binary_call_reply(void **state)
{
	struct fx *f = *state;
	struct mb m;
	struct event *ev;

	f->cfg.send_request = f->cfg.send_response = true;
	m.n = 0;
	bhdr(&m, "add", 1, 1);
	bfld(&m, 8, 1);
	be32(&m, 1);
	bfld(&m, 8, 2);
	be32(&m, 1);
	u8(&m, 0);
	assert_int_equal(m.n, 30); /* as in thrift_tutorial.pcap */
	assert_int_equal(feed_n(f, DIR_TO_SERVER, m.b, m.n), PARSE_OK);
	assert_int_equal(f->nev, 0);
	f->ctx.ts = T0 + 5 * NS_PER_MS;
	breply_i32(&m, "add", 1, 2);
	assert_int_equal(feed_n(f, DIR_TO_CLIENT, m.b, m.n), PARSE_OK);
	assert_int_equal(f->nev, 1);
	ev = f->ev[0];
	assert_string_equal(ev->dataset, "thrift");
	assert_int_equal(ev->status, EV_STATUS_OK);
	assert_int_equal(ev->start_ns, T0);
	assert_int_equal(ev->end_ns, T0 + 5 * NS_PER_MS);
	assert_int_equal(ev->client_bytes, 30);
	assert_int_equal(ev->server_bytes, 23);
	assert_str(ev, "method", "add");
	assert_str(ev, "query", "add(1: 1, 2: 1)");
	assert_str(ev, "thrift.params", "(1: 1, 2: 1)");
	assert_str(ev, "thrift.return_value", "2");
	assert_str(ev, "request", "add(1: 1, 2: 1)");
	assert_str(ev, "response", "2");
	assert_null(ev_find(ev, "thrift.exceptions"));
	assert_null(ev_find(ev, "path"));
	assert_int_equal(metrics_get("thrift.messages"), 2);
}

static void test_void_and_nonstrict(void **state)
{
	struct fx *f = *state;
	struct mb m;

	/* old form: name length first, then type byte and seqid */
	m.n = 0;
	bstr(&m, "ping");
	u8(&m, 1);
	be32(&m, 0);
	u8(&m, 0);
	assert_int_equal(feed_n(f, DIR_TO_SERVER, m.b, m.n), PARSE_OK);
	m.n = 0;
	bstr(&m, "ping");
	u8(&m, 2);
	be32(&m, 0);
	u8(&m, 0);
	assert_int_equal(feed_n(f, DIR_TO_CLIENT, m.b, m.n), PARSE_OK);
	assert_int_equal(f->nev, 1);
	assert_str(f->ev[0], "query", "ping()");
	assert_str(f->ev[0], "thrift.params", "()");
	assert_str(f->ev[0], "thrift.return_value", "");
	assert_int_equal(f->ev[0]->status, EV_STATUS_OK);
}

/* Every binary type, nested, rendered as Packetbeat does. */
static void test_binary_rendering(void **state)
{
	struct fx *f = *state;
	struct mb m;
	double dv = 1.2;
	uint64_t bits;

	m.n = 0;
	bhdr(&m, "all", 1, 9);
	bfld(&m, 2, 1); /* bool */
	u8(&m, 1);
	bfld(&m, 3, 2); /* byte */
	u8(&m, 0xff);
	bfld(&m, 6, 3); /* i16 */
	be16(&m, 0xfffe);
	bfld(&m, 10, 4); /* i64 */
	be64(&m, (uint64_t)-9000000000ll);
	bfld(&m, 4, 5); /* double */
	memcpy(&bits, &dv, 8);
	be64(&m, bits);
	bfld(&m, 11, 6); /* string */
	bstr(&m, "x\"y");
	bfld(&m, 15, 7); /* list<string> */
	u8(&m, 11);
	be32(&m, 2);
	bstr(&m, "a");
	bstr(&m, "");
	bfld(&m, 14, 8); /* set<i32> */
	u8(&m, 8);
	be32(&m, 1);
	be32(&m, 7);
	bfld(&m, 13, 9); /* map<string,list<i16>> */
	u8(&m, 11);
	u8(&m, 15);
	be32(&m, 1);
	bstr(&m, "k");
	u8(&m, 6);
	be32(&m, 2);
	be16(&m, 1);
	be16(&m, 2);
	bfld(&m, 12, 10); /* struct { 1: struct {} } */
	bfld(&m, 12, 1);
	u8(&m, 0);
	u8(&m, 0);
	bfld(&m, 15, 11); /* empty list: nothing (Packetbeat) */
	u8(&m, 8);
	be32(&m, 0);
	bfld(&m, 13, 12); /* empty map */
	u8(&m, 8);
	u8(&m, 8);
	be32(&m, 0);
	bfld(&m, 16, 13); /* uuid */
	for (int i = 0; i < 16; i++)
		u8(&m, (unsigned)i);
	u8(&m, 0);
	assert_int_equal(feed_n(f, DIR_TO_SERVER, m.b, m.n), PARSE_OK);
	f->ops->expire(f->conn, &f->ctx);
	assert_int_equal(f->nev, 1);
	assert_str(f->ev[0], "thrift.params",
		   "(1: true, 2: -1, 3: -2, 4: -9000000000, 5: 1.2, 6: \"x\\\"y\", "
		   "7: [\"a\", \"\"], 8: {7}, 9: {\"k\": [1, 2]}, 10: (1: ()), 11: , 12: {}, "
		   "13: 00010203-0405-0607-0809-0a0b0c0d0e0f)");
	assert_int_equal(f->ev[0]->status, EV_STATUS_ERROR); /* expired unmatched */
}

/* Doubles as Go's FormatFloat(v, 'f', -1, 64). */
static void test_doubles(void **state)
{
	static const struct {
		double v;
		const char *want;
	} cases[] = {
	    {0.1, "0.1"},
	    {-0.0, "-0"},
	    {1e21, "1000000000000000000000"},
	    {1e-7, "0.0000001"},
	    {123456.789, "123456.789"},
	    {2.5, "2.5"},
	    {1.0 / 3, "0.3333333333333333"},
	    {1e-5, "0.00001"},
	};
	struct fx *f = *state;
	struct mb m;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t bits;
		char want[512];

		memcpy(&bits, &cases[i].v, 8);
		m.n = 0;
		bhdr(&m, "d", 4, (int32_t)i);
		bfld(&m, 4, 1);
		be64(&m, bits);
		u8(&m, 0);
		assert_int_equal(feed_n(f, DIR_TO_SERVER, m.b, m.n), PARSE_OK);
		assert_int_equal(f->nev, i + 1);
		snprintf(want, sizeof(want), "(1: %s)", cases[i].want);
		assert_str(f->ev[i], "thrift.params", want);
	}
	m.n = 0;
	bhdr(&m, "d", 4, 99);
	bfld(&m, 4, 1);
	be64(&m, 0x7ff8000000000000ull); /* NaN */
	bfld(&m, 4, 2);
	be64(&m, 0xfff0000000000000ull); /* -Inf */
	u8(&m, 0);
	feed_n(f, DIR_TO_SERVER, m.b, m.n);
	assert_str(f->ev[f->nev - 1], "thrift.params", "(1: NaN, 2: -Inf)");
}

static void test_compact(void **state)
{
	struct fx *f = *state;
	struct mb m;
	double dv = -2.5;
	uint64_t bits;

	m.n = 0;
	chdr(&m, "c", 1, 300);
	u8(&m, 0x15);     /* id 1, i32 */
	varint(&m, 3);    /* zigzag -2 */
	u8(&m, 0x16);     /* id 2, i64 */
	varint(&m, 2468); /* 1234 */
	u8(&m, 0x11);     /* id 3, bool true */
	u8(&m, 0x12);     /* id 4, bool false */
	u8(&m, 0x17);     /* id 5, double (LE) */
	memcpy(&bits, &dv, 8);
	for (int i = 0; i < 8; i++)
		u8(&m, (unsigned)(bits >> (8 * i)) & 0xff);
	u8(&m, 0x08); /* long form: id 100, binary */
	varint(&m, 200);
	cstr(&m, "hi");
	u8(&m, 0x19); /* id 101, list<bool> (2 elements) */
	u8(&m, 0x22);
	u8(&m, 1);
	u8(&m, 0);
	u8(&m, 0x1b); /* id 102, map<string,i16> */
	varint(&m, 1);
	u8(&m, 0x84);
	cstr(&m, "k");
	varint(&m, 5); /* -3 */
	u8(&m, 0x1b);  /* id 103, empty map */
	u8(&m, 0);
	u8(&m, 0x1a); /* id 104, set<i8> long form: 15 elements */
	u8(&m, 0xf3);
	varint(&m, 15);
	for (int i = 0; i < 15; i++)
		u8(&m, (unsigned)i);
	u8(&m, 0x1c); /* id 105, struct { 1: i16 7 } */
	u8(&m, 0x14);
	varint(&m, 14);
	u8(&m, 0);
	u8(&m, 0);
	assert_int_equal(feed_n(f, DIR_TO_SERVER, m.b, m.n), PARSE_OK);
	m.n = 0;
	chdr(&m, "c", 2, 300);
	u8(&m, 0x0c); /* id 0 is a long-form id: zigzag 0 */
	varint(&m, 0);
	u8(&m, 0x11); /* struct { 1: true } */
	u8(&m, 0);
	u8(&m, 0);
	assert_int_equal(feed_n(f, DIR_TO_CLIENT, m.b, m.n), PARSE_OK);
	assert_int_equal(f->nev, 1);
	assert_str(f->ev[0], "thrift.params",
		   "(1: -2, 2: 1234, 3: true, 4: false, 5: -2.5, 100: \"hi\", 101: [true, false], "
		   "102: {\"k\": -3}, 103: {}, 104: {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, "
		   "14}, 105: (1: 7))");
	assert_str(f->ev[0], "thrift.return_value", "(1: true)");
	assert_int_equal(f->ev[0]->status, EV_STATUS_OK);
}

static void test_framed_detect(void **state)
{
	struct fx *f = *state;
	struct mb m, fr;

	bmsg_void(&m, "ping", 1, 3);
	framed(&fr, &m);
	assert_int_equal(feed_n(f, DIR_TO_SERVER, fr.b, fr.n), PARSE_OK);
	m.n = 0;
	chdr(&m, "ping", 2, 3); /* the reply direction is detected on its own */
	u8(&m, 0);
	framed(&fr, &m);
	assert_int_equal(feed_n(f, DIR_TO_CLIENT, fr.b, fr.n), PARSE_OK);
	assert_int_equal(f->nev, 1);
	assert_int_equal(f->ev[0]->client_bytes, 17); /* the frame length */
	assert_int_equal(f->ev[0]->server_bytes, 9);
	assert_str(f->ev[0], "thrift.return_value", "");
}

/* transport_type/protocol_type force the framing and protocol instead of
 * detecting them. */
static void test_override(void **state)
{
	struct fx *f = *state;
	struct mb m, fr;

	fx_set(f, "transport_type", "socket");
	bmsg_void(&m, "ping", 1, 3);
	framed(&fr, &m);
	/* read as an old-form header with a 17-byte name: waits for its type byte */
	assert_int_equal(feed_n(f, DIR_TO_SERVER, fr.b, fr.n), PARSE_NEED_MORE);
	assert_int_equal(f->tlen[DIR_TO_SERVER], fr.n);
	fx_close(f);
	fx_set(f, "transport_type", "framed");
	fx_set(f, "protocol_type", "compact");
	assert_int_equal(feed_n(f, DIR_TO_SERVER, fr.b, fr.n), PARSE_OK); /* bad msg in frame */
	assert_int_equal(metrics_get("thrift.malformed_messages"), 1);
	fx_close(f);
	fx_set(f, "protocol_type", "binary");
	assert_int_equal(feed_n(f, DIR_TO_SERVER, fr.b, fr.n), PARSE_OK);
	f->ops->expire(f->conn, &f->ctx);
	assert_int_equal(f->nev, 1);
	assert_str(f->ev[0], "method", "ping");
}

static void test_exceptions(void **state)
{
	struct fx *f = *state;
	struct mb m;

	f->cfg.send_response = true;
	bmsg_void(&m, "calc", 1, 1);
	feed_n(f, DIR_TO_SERVER, m.b, m.n);
	m.n = 0;
	bhdr(&m, "calc", 2, 1);
	bfld(&m, 12, 1);
	bfld(&m, 8, 1);
	be32(&m, 4);
	bfld(&m, 11, 2);
	bstr(&m, "Cannot divide by 0");
	u8(&m, 0);
	u8(&m, 0);
	feed_n(f, DIR_TO_CLIENT, m.b, m.n);
	assert_int_equal(f->nev, 1);
	assert_int_equal(f->ev[0]->status, EV_STATUS_ERROR);
	assert_str(f->ev[0], "thrift.exceptions", "(1: (1: 4, 2: \"Cannot divide by 0\"))");
	assert_str(f->ev[0], "thrift.return_value", "");
	assert_str(f->ev[0], "response", "Exceptions: (1: (1: 4, 2: \"Cannot divide by 0\"))");
	/* TApplicationException: message type 3 */
	bmsg_void(&m, "nope", 1, 2);
	feed_n(f, DIR_TO_SERVER, m.b, m.n);
	m.n = 0;
	bhdr(&m, "nope", 3, 2);
	bfld(&m, 11, 1);
	bstr(&m, "Invalid method name");
	bfld(&m, 8, 2);
	be32(&m, 1);
	u8(&m, 0);
	feed_n(f, DIR_TO_CLIENT, m.b, m.n);
	assert_int_equal(f->nev, 2);
	assert_int_equal(f->ev[1]->status, EV_STATUS_ERROR);
	assert_str(f->ev[1], "thrift.exceptions", "(1: \"Invalid method name\", 2: 1)");
}

/* A frame that ends between the tokens of its struct: that message is malformed
 * (counted, no event), the next frame in the same bytes parses; a framed reply
 * completes its call, the return value taken from the rendered text. */
static void test_frame_ends_inside_struct(void **state)
{
	struct fx *f = *state;
	struct mb m, fr, all;

	m.n = 0;
	bhdr(&m, "add", 1, 1);
	bfld(&m, 8, 1);
	be32(&m, 5); /* no STOP: the frame ends after this token */
	framed(&fr, &m);
	all.n = 0;
	raw(&all, fr.b, fr.n);
	m.n = 0;
	bhdr(&m, "add", 1, 2);
	bfld(&m, 8, 1);
	be32(&m, 5);
	bfld(&m, 8, 2);
	be32(&m, 12345678);
	u8(&m, 0);
	framed(&fr, &m);
	raw(&all, fr.b, fr.n);
	assert_int_equal(feed_n(f, DIR_TO_SERVER, all.b, all.n), PARSE_OK);
	assert_int_equal(f->tlen[DIR_TO_SERVER], 0);
	assert_int_equal(metrics_get("thrift.malformed_messages"), 1);
	breply_i32(&m, "add", 2, -2147483647 - 1);
	framed(&fr, &m);
	assert_int_equal(feed_n(f, DIR_TO_CLIENT, fr.b, fr.n), PARSE_OK);
	assert_int_equal(f->nev, 1);
	assert_str(f->ev[0], "query", "add(1: 5, 2: 12345678)");
	assert_str(f->ev[0], "thrift.return_value", "-2147483648");
	assert_int_equal(f->ev[0]->status, EV_STATUS_OK);
}

static void test_oneway(void **state)
{
	struct fx *f = *state;
	struct mb m;

	bmsg_void(&m, "zip", 4, 0);
	feed_n(f, DIR_TO_SERVER, m.b, m.n);
	assert_int_equal(f->nev, 1); /* published at once */
	assert_int_equal(f->ev[0]->status, EV_STATUS_OK);
	assert_false(f->ev[0]->has_server_bytes);
	assert_null(ev_find(f->ev[0], "thrift.return_value"));
	/* type-1 calls without replies before a reply: presumed oneway */
	bmsg_void(&m, "zip", 1, 0);
	feed_n(f, DIR_TO_SERVER, m.b, m.n);
	feed_n(f, DIR_TO_SERVER, m.b, m.n);
	bmsg_void(&m, "ping", 1, 0);
	feed_n(f, DIR_TO_SERVER, m.b, m.n);
	assert_int_equal(f->nev, 1);
	bmsg_void(&m, "ping", 2, 0);
	feed_n(f, DIR_TO_CLIENT, m.b, m.n);
	assert_int_equal(f->nev, 4);
	assert_str(f->ev[1], "method", "zip");
	assert_int_equal(f->ev[1]->status, EV_STATUS_OK);
	assert_null(ev_find(f->ev[1], "error.message"));
	assert_str(f->ev[2], "method", "zip");
	assert_str(f->ev[3], "method", "ping");
	assert_int_equal(metrics_get("thrift.presumed_oneway"), 2);
	assert_int_equal(metrics_get("thrift.unmatched_requests"), 0);
}

static void test_seqid_pairing(void **state)
{
	struct fx *f = *state;
	struct mb m;

	for (int i = 1; i <= 3; i++) {
		bmsg_void(&m, "get", 1, i);
		feed_n(f, DIR_TO_SERVER, m.b, m.n);
	}
	breply_i32(&m, "get", 1, 10);
	feed_n(f, DIR_TO_CLIENT, m.b, m.n);
	breply_i32(&m, "other", 2, 20); /* right seqid, wrong method */
	feed_n(f, DIR_TO_CLIENT, m.b, m.n);
	breply_i32(&m, "get", 2, 30);
	feed_n(f, DIR_TO_CLIENT, m.b, m.n);
	assert_int_equal(f->nev, 3);
	assert_str(f->ev[0], "thrift.return_value", "10");
	assert_int_equal(f->ev[1]->status, EV_STATUS_ERROR);
	assert_str(f->ev[1], "error.message", "Unmatched response");
	assert_str(f->ev[1], "method", "other");
	assert_int_equal(f->ev[1]->start_ns, 0);
	assert_str(f->ev[2], "thrift.return_value", "30");
	/* the server closes with call 3 pending */
	f->ops->fin(f->conn, DIR_TO_CLIENT, &f->ctx);
	assert_int_equal(f->nev, 4);
	assert_str(f->ev[3], "error.message", "Unmatched request");
	assert_int_equal(metrics_get("thrift.unmatched_requests"), 1);
	assert_int_equal(metrics_get("thrift.unmatched_responses"), 1);
}

static void test_pending_cap_and_timeout(void **state)
{
	struct fx *f = *state;
	struct mb m;

	f->cfg.max_pending = 2;
	for (int i = 0; i < 3; i++) {
		bmsg_void(&m, "a", 1, i);
		feed_n(f, DIR_TO_SERVER, m.b, m.n);
	}
	assert_int_equal(f->nev, 1); /* the oldest made room */
	assert_str(f->ev[0], "error.message", "Unmatched request");
	assert_int_equal(metrics_get("thrift.limit_exceeded"), 1);
	f->ctx.ts = T0 + 11 * NS_PER_SEC;
	bmsg_void(&m, "b", 1, 9);
	feed_n(f, DIR_TO_SERVER, m.b, m.n);
	assert_int_equal(f->nev, 3); /* both timed out */
	f->ops->expire(f->conn, &f->ctx);
	assert_int_equal(f->nev, 4);
	assert_str(f->ev[3], "method", "b");
}

static void test_string_and_collection_caps(void **state)
{
	struct fx *f = *state;
	struct mb m;

	fx_set(f, "string_max_size", "4");
	fx_set(f, "collection_max_size", "2");
	m.n = 0;
	bhdr(&m, "caps", 4, 0);
	bfld(&m, 11, 1);
	bstr(&m, "abcdefgh");
	bfld(&m, 15, 2);
	u8(&m, 8);
	be32(&m, 4);
	for (int i = 0; i < 4; i++)
		be32(&m, (uint32_t)i);
	bfld(&m, 8, 3); /* third field: "..." */
	be32(&m, 3);
	bfld(&m, 8, 4);
	be32(&m, 4);
	u8(&m, 0);
	feed_n(f, DIR_TO_SERVER, m.b, m.n);
	assert_int_equal(f->nev, 1);
	assert_str(f->ev[0], "thrift.params", "(1: \"abcd...\", 2: [0, 1, ...], ...)");
	/* not UTF-8 after the cut: hex, dots included */
	fx_close(f);
	m.n = 0;
	bhdr(&m, "h", 4, 0);
	bfld(&m, 11, 1);
	bstr(&m, "abc\xc3\xa9"); /* cut inside é */
	bfld(&m, 11, 2);
	bstr(&m, "\xff");
	u8(&m, 0);
	feed_n(f, DIR_TO_SERVER, m.b, m.n);
	assert_str(f->ev[1], "thrift.params", "(1: 616263c32e2e2e, 2: ff)");
	/* obfuscation */
	fx_close(f);
	fx_set(f, "obfuscate_strings", "true");
	m.n = 0;
	bhdr(&m, "o", 4, 0);
	bfld(&m, 11, 1);
	bstr(&m, "secret");
	bfld(&m, 11, 2);
	bstr(&m, "");
	u8(&m, 0);
	feed_n(f, DIR_TO_SERVER, m.b, m.n);
	assert_str(f->ev[2], "thrift.params", "(1: \"*\", 2: \"\")");
}

/* A large string is consumed as it arrives and never buffered beyond the cap: the
 * parser keeps no tail while inside it. */
static void test_streaming_large_string(void **state)
{
	struct fx *f = *state;
	struct mb m;
	static uint8_t chunk[4096];
	struct parse_result r;

	memset(chunk, 'q', sizeof(chunk));
	m.n = 0;
	bhdr(&m, "put", 1, 1);
	bfld(&m, 11, 1);
	be32(&m, 1u << 24); /* 16 MiB string */
	fx_open(f);
	r = f->ops->parse(f->conn, DIR_TO_SERVER, m.b, m.n, &f->ctx);
	assert_int_equal(r.consumed, m.n);
	for (int i = 0; i < 4096; i++) {
		r = f->ops->parse(f->conn, DIR_TO_SERVER, chunk, sizeof(chunk), &f->ctx);
		assert_int_equal(r.consumed, sizeof(chunk));
	}
	r = f->ops->parse(f->conn, DIR_TO_SERVER, (const uint8_t *)"\0", 1, &f->ctx);
	assert_int_equal(r.consumed, 1);
	breply_i32(&m, "put", 1, 0);
	feed_n(f, DIR_TO_CLIENT, m.b, m.n);
	assert_int_equal(f->nev, 1);
	assert_int_equal(f->ev[0]->client_bytes, 15 + 3 + 4 + (1u << 24) + 1);
	{
		const struct ev_field *p = field(f->ev[0], "thrift.params");

		assert_int_equal(p->v.s.len, strlen("(1: \"\")") + 200 + 3);
	}
}

static void test_rendered_cap_and_send_caps(void **state)
{
	struct fx *f = *state;
	struct mb m;

	fx_set(f, "max_rendered_size", "64");
	f->cfg.send_request = f->cfg.send_response = true;
	f->cfg.max_message_size = 10;
	m.n = 0;
	bhdr(&m, "big", 1, 1);
	for (int i = 1; i <= 20; i++) {
		bfld(&m, 10, i);
		be64(&m, 1000000000000ull);
	}
	u8(&m, 0);
	feed_n(f, DIR_TO_SERVER, m.b, m.n);
	breply_i32(&m, "big", 1, 123456789);
	feed_n(f, DIR_TO_CLIENT, m.b, m.n);
	assert_int_equal(f->nev, 1);
	{
		const struct ev_field *p = field(f->ev[0], "thrift.params");

		assert_int_equal(p->v.s.len, 64 + 3);
		assert_memory_equal(p->v.s.p + 64, "...", 3);
	}
	assert_str(f->ev[0], "request", "big(1: 100");
	assert_str(f->ev[0], "response", "123456789");
}

static void test_depth_fields_and_method_limits(void **state)
{
	struct fx *f = *state;
	struct mb m, fr;

	/* nesting deeper than max_depth: malformed (unframed: unparseable) */
	fx_set(f, "max_depth", "4");
	m.n = 0;
	bhdr(&m, "deep", 1, 1);
	for (int i = 0; i < 5; i++)
		bfld(&m, 12, 1);
	for (int i = 0; i < 6; i++)
		u8(&m, 0);
	assert_int_equal(feed_n(f, DIR_TO_SERVER, m.b, m.n), PARSE_ERROR);
	fx_close(f);
	/* framed: the frame is skipped and counted, the next one parsed */
	framed(&fr, &m);
	assert_int_equal(feed_n(f, DIR_TO_SERVER, fr.b, fr.n), PARSE_OK);
	assert_int_equal(metrics_get("thrift.malformed_messages"), 1);
	bmsg_void(&m, "ok", 4, 2);
	framed(&fr, &m);
	assert_int_equal(feed_n(f, DIR_TO_SERVER, fr.b, fr.n), PARSE_OK);
	assert_int_equal(f->nev, 1);
	fx_close(f);
	/* more struct fields than drop_after_n_struct_fields */
	fx_set(f, "drop_after_n_struct_fields", "3");
	m.n = 0;
	bhdr(&m, "wide", 4, 1);
	for (int i = 0; i < 4; i++) {
		bfld(&m, 3, i);
		u8(&m, 1);
	}
	u8(&m, 0);
	assert_int_equal(feed_n(f, DIR_TO_SERVER, m.b, m.n), PARSE_ERROR);
	fx_close(f);
	/* a method name over max_method_size */
	fx_set(f, "max_method_size", "8");
	bmsg_void(&m, "muchtoolongname", 1, 1);
	assert_int_equal(feed_n(f, DIR_TO_SERVER, m.b, m.n), PARSE_ERROR);
	assert_int_equal(f->nev, 1);
}

static void test_frame_over_limit(void **state)
{
	struct fx *f = *state;
	struct mb m, fr;

	fx_set(f, "max_frame_size", "64");
	m.n = 0;
	bhdr(&m, "huge", 1, 1);
	bfld(&m, 11, 1);
	bstr(&m, "0123456789012345678901234567890123456789012345678901234567890123456789");
	u8(&m, 0);
	framed(&fr, &m);
	assert_int_equal(feed_n(f, DIR_TO_SERVER, fr.b, fr.n), PARSE_OK);
	bmsg_void(&m, "small", 4, 2);
	framed(&fr, &m);
	assert_int_equal(feed_n(f, DIR_TO_SERVER, fr.b, fr.n), PARSE_OK);
	assert_int_equal(f->nev, 1);
	assert_str(f->ev[0], "method", "small");
	assert_int_equal(metrics_get("thrift.frames_skipped"), 1);
	assert_int_equal(metrics_get("thrift.limit_exceeded"), 1);
}

/* Lengths and counts from the wire never allocate; bad ones are malformed. */
static void test_hostile(void **state)
{
	struct fx *f = *state;
	struct mb m;

	/* a list claiming 2^31-1 elements: parsed as far as bytes go */
	m.n = 0;
	bhdr(&m, "l", 1, 1);
	bfld(&m, 15, 1);
	u8(&m, 8);
	be32(&m, 0x7fffffff);
	be32(&m, 1);
	assert_int_equal(feed_n(f, DIR_TO_SERVER, m.b, m.n), PARSE_OK);
	assert_true(f->tlen[DIR_TO_SERVER] == 0); /* nothing kept */
	assert_int_equal(feed_n(f, DIR_TO_SERVER, m.b, 3), PARSE_NEED_MORE);
	assert_true(f->tlen[DIR_TO_SERVER] == 3); /* one incomplete element */
	fx_close(f);
	/* a negative string length */
	m.n = 0;
	bhdr(&m, "s", 1, 1);
	bfld(&m, 11, 1);
	be32(&m, 0xfffffff0u);
	assert_int_equal(feed_n(f, DIR_TO_SERVER, m.b, m.n), PARSE_ERROR);
	fx_close(f);
	/* unknown field type */
	m.n = 0;
	bhdr(&m, "t", 1, 1);
	bfld(&m, 99, 1);
	assert_int_equal(feed_n(f, DIR_TO_SERVER, m.b, m.n), PARSE_ERROR);
	fx_close(f);
	/* compact varint longer than 5 bytes */
	m.n = 0;
	chdr(&m, "v", 1, 1);
	u8(&m, 0x15);
	for (int i = 0; i < 6; i++)
		u8(&m, 0xff);
	u8(&m, 0);
	assert_int_equal(feed_n(f, DIR_TO_SERVER, m.b, m.n), PARSE_ERROR);
	fx_close(f);
	/* message type 0 and 5 */
	bmsg_void(&m, "x", 5, 1);
	assert_int_equal(feed_n(f, DIR_TO_SERVER, m.b, m.n), PARSE_ERROR);
	fx_close(f);
	/* not thrift at all */
	assert_int_equal(feed_n(f, DIR_TO_SERVER, "GET / HTTP/1.1\r\n", 16), PARSE_ERROR);
	fx_close(f);
	/* frame length with the top bit set (forced framed) */
	fx_set(f, "transport_type", "framed");
	assert_int_equal(feed_n(f, DIR_TO_SERVER, "\x80\x00\x00\x10\x80\x01", 6), PARSE_ERROR);
	assert_int_equal(f->nev, 0);
}

/* Every prefix of a few messages: no crash, no event from a cut message, and
 * byte-by-byte delivery gives the same events as one call. */
static void test_truncation_and_bytewise(void **state)
{
	struct fx *f = *state;
	struct mb req, rep, msgs[3];

	req.n = 0;
	bhdr(&req, "calc", 1, 7);
	bfld(&req, 12, 2);
	bfld(&req, 13, 1);
	u8(&req, 11);
	u8(&req, 4);
	be32(&req, 1);
	bstr(&req, "k");
	be64(&req, 0x4004000000000000ull);
	u8(&req, 0);
	u8(&req, 0);
	rep.n = 0;
	chdr(&rep, "calc", 2, 7);
	u8(&rep, 0x08);
	varint(&rep, 0);
	cstr(&rep, "ok");
	u8(&rep, 0);
	msgs[0] = req;
	framed(&msgs[1], &req);
	msgs[2] = rep;
	for (int k = 0; k < 3; k++) {
		for (size_t cut = 0; cut < msgs[k].n; cut++) {
			enum proto_dir dir = k == 2 ? DIR_TO_CLIENT : DIR_TO_SERVER;

			feed_n(f, dir, msgs[k].b, cut);
			fx_close(f);
			for (size_t i = 0; i < f->nev; i++)
				ev_pool_put(f->ev[i]);
			f->nev = 0;
		}
	}
	for (size_t i = 0; i < req.n; i++)
		assert_int_not_equal(feed_n(f, DIR_TO_SERVER, req.b + i, 1), PARSE_ERROR);
	for (size_t i = 0; i < rep.n; i++)
		assert_int_not_equal(feed_n(f, DIR_TO_CLIENT, rep.b + i, 1), PARSE_ERROR);
	assert_int_equal(f->nev, 1);
	assert_str(f->ev[0], "thrift.params", "(2: (1: {\"k\": 2.5}))");
	assert_str(f->ev[0], "thrift.return_value", "\"ok\"");
	assert_int_equal(f->ev[0]->client_bytes, req.n);
	assert_int_equal(f->ev[0]->server_bytes, rep.n);
}

static void test_gaps(void **state)
{
	struct fx *f = *state;
	struct mb m, fr;

	/* unframed: loss inside a string is skipped */
	m.n = 0;
	bhdr(&m, "put", 1, 1);
	bfld(&m, 11, 1);
	bstr(&m, "abcdefgh");
	u8(&m, 0);
	feed_n(f, DIR_TO_SERVER, m.b, m.n - 7);
	assert_int_equal(f->ops->gap(f->conn, DIR_TO_SERVER, 4, &f->ctx), 0);
	feed_n(f, DIR_TO_SERVER, m.b + m.n - 3, 3);
	breply_i32(&m, "put", 1, 1);
	feed_n(f, DIR_TO_CLIENT, m.b, m.n);
	assert_int_equal(f->nev, 1);
	assert_str(f->ev[0], "thrift.params", "(1: \"ab...\")");
	assert_str(f->ev[0], "error.message", "Packet loss while capturing the request");
	assert_int_equal(f->ev[0]->client_bytes, 15 + 3 + 12 + 1);
	/* unframed loss elsewhere: give up */
	assert_int_equal(f->ops->gap(f->conn, DIR_TO_SERVER, 4, &f->ctx), -1);
	fx_close(f);
	/* framed: loss inside a reply publishes it noted; the frame rest is skipped */
	bmsg_void(&m, "get", 1, 1);
	framed(&fr, &m);
	feed_n(f, DIR_TO_SERVER, fr.b, fr.n);
	breply_i32(&m, "get", 1, 77);
	framed(&fr, &m);
	feed_n(f, DIR_TO_CLIENT, fr.b, 4 + 15 + 3);
	assert_int_equal(f->ops->gap(f->conn, DIR_TO_CLIENT, 2, &f->ctx), 0);
	assert_int_equal(f->nev, 2);
	assert_str(f->ev[1], "error.message", "Packet loss while capturing the response");
	assert_int_equal(f->ev[1]->status, EV_STATUS_OK);
	feed_n(f, DIR_TO_CLIENT, fr.b + fr.n - 3, 3); /* the rest of the frame */
	bmsg_void(&m, "get", 4, 2);
	framed(&fr, &m);
	feed_n(f, DIR_TO_SERVER, fr.b, fr.n);
	assert_int_equal(f->nev, 3);
	/* a gap larger than the frame: give up */
	assert_int_equal(f->ops->gap(f->conn, DIR_TO_SERVER, 100, &f->ctx), -1);
}

static void test_capture_reply_off(void **state)
{
	struct fx *f = *state;
	struct mb m;

	fx_set(f, "capture_reply", "false");
	bmsg_void(&m, "calc", 1, 1);
	feed_n(f, DIR_TO_SERVER, m.b, m.n);
	m.n = 0;
	bhdr(&m, "calc", 2, 1);
	bfld(&m, 12, 1);
	u8(&m, 0);
	u8(&m, 0);
	feed_n(f, DIR_TO_CLIENT, m.b, m.n);
	assert_int_equal(f->nev, 1);
	assert_int_equal(f->ev[0]->status, EV_STATUS_OK);
	assert_str(f->ev[0], "thrift.return_value", "");
	assert_null(ev_find(f->ev[0], "thrift.exceptions"));
}

static void test_multiplexed(void **state)
{
	struct fx *f = *state;
	struct mb m;

	bmsg_void(&m, "Calculator:ping", 1, 1);
	feed_n(f, DIR_TO_SERVER, m.b, m.n);
	bmsg_void(&m, "ping", 2, 1);
	feed_n(f, DIR_TO_CLIENT, m.b, m.n);
	assert_int_equal(f->nev, 1);
	assert_int_equal(f->ev[0]->status, EV_STATUS_OK);
	assert_str(f->ev[0], "thrift.service", "Calculator");
	assert_str(f->ev[0], "path", "Calculator");
	assert_str(f->ev[0], "method", "Calculator:ping");
}

static void test_pool_and_memory(void **state)
{
	struct fx *f = *state;

	mem_fail_after(0);
	assert_null(f->ops->conn_new(&f->info));
	mem_fail_after(1);
	assert_null(f->ops->conn_new(&f->info));
	mem_fail_reset();
	f->ops->conn_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_binary_call_reply, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_void_and_nonstrict, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_binary_rendering, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_doubles, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_compact, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_framed_detect, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_override, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_exceptions, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_frame_ends_inside_struct, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_oneway, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_seqid_pairing, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_pending_cap_and_timeout, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_string_and_collection_caps, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_streaming_large_string, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_rendered_cap_and_send_caps, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_depth_fields_and_method_limits, fx_setup,
					    fx_teardown),
	    cmocka_unit_test_setup_teardown(test_frame_over_limit, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_hostile, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_truncation_and_bytewise, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_gaps, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_capture_reply_off, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_multiplexed, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_pool_and_memory, fx_setup, fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
