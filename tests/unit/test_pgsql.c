/* test_pgsql.c — the PostgreSQL parser (net/proto/pgsql.c) through the sink seam:
 * simple and extended queries, batches, errors, COPY, startup/SSL, limits, CSV
 * response text, gaps, resync, hostile lengths, every-byte splits. */
#include <errno.h>
#include <inttypes.h>
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

extern const struct proto_ops pgsql_proto;

#define MAX_EVENTS 64
#include "parser_fixture.h"

static int fx_setup(void **state)
{
	struct fx *f = fx_new(&pgsql_proto, MAX_EVENTS, 5432);

	f->cfg.max_pending = 16;
	fx_set_u(f, "max_rows", 10);
	fx_set_u(f, "max_row_length", 1024);
	fx_set_u(f, "max_message_length", 1u << 30);
	fx_set_u(f, "max_query_length", 65536);
	fx_set_u(f, "max_statements", 32);
	*state = f;
	return 0;
}

/* ---- message builders ------------------------------------------------------- */

struct buf {
	uint8_t p[16384];
	size_t n;
};

static void put(struct buf *b, const void *p, size_t n)
{
	assert_true(sizeof(b->p) - b->n >= n);
	memcpy(b->p + b->n, p, n);
	b->n += n;
}

static void put8(struct buf *b, uint8_t v)
{
	put(b, &v, 1);
}

static void put16(struct buf *b, uint16_t v)
{
	uint8_t x[2] = {(uint8_t)(v >> 8), (uint8_t)v};

	put(b, x, 2);
}

static void put32(struct buf *b, uint32_t v)
{
	uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};

	put(b, x, 4);
}

static void putz(struct buf *b, const char *s)
{
	put(b, s, strlen(s) + 1);
}

/* Open a typed message; close with msg_end() which patches the length. */
static size_t msg_begin(struct buf *b, char type)
{
	size_t at;

	put8(b, (uint8_t)type);
	at = b->n;
	put32(b, 0);
	return at;
}

static void msg_end(struct buf *b, size_t at)
{
	uint32_t len = (uint32_t)(b->n - at);

	b->p[at] = (uint8_t)(len >> 24);
	b->p[at + 1] = (uint8_t)(len >> 16);
	b->p[at + 2] = (uint8_t)(len >> 8);
	b->p[at + 3] = (uint8_t)len;
}

static void m_str(struct buf *b, char type, const char *s)
{
	size_t at = msg_begin(b, type);

	putz(b, s);
	msg_end(b, at);
}

static void m_empty(struct buf *b, char type)
{
	msg_end(b, msg_begin(b, type));
}

static void m_Z(struct buf *b)
{
	size_t at = msg_begin(b, 'Z');

	put8(b, 'I');
	msg_end(b, at);
}

/* RowDescription of text columns (fmt_mask bit i = column i binary). */
static void m_T(struct buf *b, unsigned fmt_mask, int n, ...)
{
	size_t at = msg_begin(b, 'T');
	va_list ap;

	put16(b, (uint16_t)n);
	va_start(ap, n);
	for (int i = 0; i < n; i++) {
		putz(b, va_arg(ap, const char *));
		put32(b, 16384);
		put16(b, (uint16_t)(i + 1));
		put32(b, 25);
		put16(b, 0xffff);
		put32(b, 0xffffffff);
		put16(b, (fmt_mask >> i) & 1);
	}
	va_end(ap);
	msg_end(b, at);
}

/* DataRow; NULL = SQL NULL. */
static void m_D(struct buf *b, int n, ...)
{
	size_t at = msg_begin(b, 'D');
	va_list ap;

	put16(b, (uint16_t)n);
	va_start(ap, n);
	for (int i = 0; i < n; i++) {
		const char *v = va_arg(ap, const char *);

		if (!v) {
			put32(b, 0xffffffff);
		} else {
			put32(b, (uint32_t)strlen(v));
			put(b, v, strlen(v));
		}
	}
	va_end(ap);
	msg_end(b, at);
}

static void m_E(struct buf *b, char type, const char *sev, const char *code, const char *m)
{
	size_t at = msg_begin(b, type);

	put8(b, 'S');
	putz(b, sev);
	put8(b, 'C');
	putz(b, code);
	put8(b, 'M');
	putz(b, m);
	put8(b, 0);
	msg_end(b, at);
}

static void m_P(struct buf *b, const char *name, const char *q)
{
	size_t at = msg_begin(b, 'P');

	putz(b, name);
	putz(b, q);
	put16(b, 1);
	put32(b, 23);
	msg_end(b, at);
}

static void m_B(struct buf *b, const char *portal, const char *stmt, const char *param)
{
	size_t at = msg_begin(b, 'B');

	putz(b, portal);
	putz(b, stmt);
	put16(b, 0);
	put16(b, 1);
	put32(b, (uint32_t)strlen(param));
	put(b, param, strlen(param));
	put16(b, 0);
	msg_end(b, at);
}

static void m_desc(struct buf *b, char kind, const char *name)
{
	size_t at = msg_begin(b, 'D');

	put8(b, (uint8_t)kind);
	putz(b, name);
	msg_end(b, at);
}

static void m_exec(struct buf *b, const char *portal, uint32_t maxrows)
{
	size_t at = msg_begin(b, 'E');

	putz(b, portal);
	put32(b, maxrows);
	msg_end(b, at);
}

static void m_close(struct buf *b, char kind, const char *name)
{
	size_t at = msg_begin(b, 'C');

	put8(b, (uint8_t)kind);
	putz(b, name);
	msg_end(b, at);
}

static void startup(struct buf *b)
{
	size_t at = b->n;

	put32(b, 0);
	put32(b, 196608);
	putz(b, "user");
	putz(b, "postgres");
	putz(b, "database");
	putz(b, "test");
	put8(b, 0);
	b->p[at + 2] = (uint8_t)((b->n - at) >> 8);
	b->p[at + 3] = (uint8_t)(b->n - at);
}

static enum parse_status feedb(struct fx *f, enum proto_dir dir, const struct buf *b)
{
	return feed_n(f, dir, b->p, b->n);
}

/* ---- assertions ------------------------------------------------------------- */

/* A select with a 3-column result of 4 rows, as in pgsql_request_response.pcap. */
static void select_response(struct buf *b)
{
	m_T(b, 0, 3, "a", "b", "c");
	m_D(b, 3, "mea", "meb", "mec");
	m_D(b, 3, "mea1", "meb1", "mec1");
	m_D(b, 3, "mea2", "meb2", "mec2");
	m_D(b, 3, "mea3", "meb3", "mec3");
	m_str(b, 'C', "SELECT 4");
}

/* ---- tests ---------------------------------------------------------------------- */

static void test_simple_select(void **state)
{
	struct fx *f = *state;
	struct buf q = {.n = 0}, r = {.n = 0};
	struct event *ev;
	size_t rbytes;

	f->cfg.send_request = f->cfg.send_response = true;
	m_str(&q, 'Q', "select * from test;");
	select_response(&r);
	rbytes = r.n;
	m_Z(&r);
	assert_int_equal(feedb(f, DIR_TO_SERVER, &q), PARSE_OK);
	f->ctx.ts = T0 + 2 * NS_PER_MS;
	assert_int_equal(feedb(f, DIR_TO_CLIENT, &r), PARSE_OK);
	assert_int_equal(f->nev, 1);
	ev = f->ev[0];
	assert_string_equal(ev->dataset, "pgsql");
	assert_int_equal(ev->status, EV_STATUS_OK);
	assert_int_equal(ev->start_ns, T0);
	assert_int_equal(ev->end_ns, T0 + 2 * NS_PER_MS);
	assert_int_equal(ev->client_bytes, q.n);
	assert_int_equal(ev->server_bytes, rbytes); /* T..C, not ReadyForQuery */
	assert_int_equal(rbytes, 202);
	assert_str(ev, "method", "SELECT");
	assert_str(ev, "query", "select * from test");
	assert_str(ev, "request", "select * from test");
	assert_str(ev, "response",
		   "a,b,c\nmea,meb,mec\nmea1,meb1,mec1\nmea2,meb2,mec2\nmea3,meb3,mec3\n");
	assert_uint(ev, "pgsql.num_rows", 4);
	assert_uint(ev, "pgsql.num_fields", 3);
	assert_null(ev_find(ev, "pgsql.error_code"));
	assert_int_equal(metrics_get("pgsql.transactions"), 1);
}

static void test_insert_and_no_send(void **state)
{
	struct fx *f = *state;
	struct buf q = {.n = 0}, r = {.n = 0};

	m_str(&q, 'Q', "insert into test(a, b, c) values('mea5', 'meb5', 'mec5');");
	m_str(&r, 'C', "INSERT 0 1");
	m_Z(&r);
	feedb(f, DIR_TO_SERVER, &q);
	feedb(f, DIR_TO_CLIENT, &r);
	assert_int_equal(f->nev, 1);
	assert_int_equal(f->ev[0]->client_bytes, 63);
	assert_int_equal(f->ev[0]->server_bytes, 16);
	assert_str(f->ev[0], "method", "INSERT");
	assert_uint(f->ev[0], "pgsql.num_rows", 1); /* from the command tag */
	assert_uint(f->ev[0], "pgsql.num_fields", 0);
	assert_null(ev_find(f->ev[0], "request"));
	assert_null(ev_find(f->ev[0], "response"));
}

static void test_error_response(void **state)
{
	struct fx *f = *state;
	struct buf q = {.n = 0}, r = {.n = 0}, n = {.n = 0};
	size_t at;

	m_str(&q, 'Q', "insert into t values (1)");
	/* a NoticeResponse first: ignored, not an error */
	m_E(&n, 'N', "NOTICE", "00000", "just saying");
	at = msg_begin(&r, 'E');
	put8(&r, 'S');
	putz(&r, "FEHLER");
	put8(&r, 'V');
	putz(&r, "ERROR");
	put8(&r, 'C');
	putz(&r, "23505");
	put8(&r, 'M');
	putz(&r, "duplicate key value violates unique constraint \"unique_a\"");
	put8(&r, 'D');
	putz(&r, "Key (a)=(1) already exists.");
	put8(&r, 0);
	msg_end(&r, at);
	m_Z(&r);
	feedb(f, DIR_TO_SERVER, &q);
	feedb(f, DIR_TO_CLIENT, &n);
	assert_int_equal(f->nev, 0);
	feedb(f, DIR_TO_CLIENT, &r);
	assert_int_equal(f->nev, 1);
	assert_int_equal(f->ev[0]->status, EV_STATUS_ERROR);
	assert_str(f->ev[0], "pgsql.error_code", "23505");
	assert_str(f->ev[0], "pgsql.error_severity", "ERROR"); /* V beats localized S */
	assert_str(f->ev[0], "pgsql.error_message",
		   "duplicate key value violates unique constraint \"unique_a\"");
	assert_int_equal(f->ev[0]->server_bytes, r.n - 6);
	assert_null(ev_find(f->ev[0], "error.message"));
}

static void test_multi_statement_batch(void **state)
{
	struct fx *f = *state;
	struct buf q = {.n = 0}, r = {.n = 0}, q2 = {.n = 0}, r2 = {.n = 0};

	m_str(&q, 'Q', "begin; select 1 ;update t set a=1; commit");
	m_str(&r, 'C', "BEGIN");
	m_T(&r, 0, 1, "?column?");
	m_D(&r, 1, "1");
	m_str(&r, 'C', "SELECT 1");
	m_E(&r, 'E', "ERROR", "42P01", "relation \"t\" does not exist");
	m_Z(&r); /* commit never ran */
	feedb(f, DIR_TO_SERVER, &q);
	feedb(f, DIR_TO_CLIENT, &r);
	assert_int_equal(f->nev, 4);
	assert_str(f->ev[0], "query", "begin");
	assert_str(f->ev[0], "method", "BEGIN");
	assert_int_equal(f->ev[0]->status, EV_STATUS_OK);
	assert_str(f->ev[1], "query", "select 1");
	assert_uint(f->ev[1], "pgsql.num_rows", 1);
	assert_str(f->ev[2], "method", "UPDATE");
	assert_int_equal(f->ev[2]->status, EV_STATUS_ERROR);
	assert_str(f->ev[3], "query", "commit");
	assert_int_equal(f->ev[3]->status, EV_STATUS_ERROR);
	assert_str(f->ev[3], "error.message", "Unmatched request");
	for (int i = 0; i < 4; i++)
		assert_int_equal(f->ev[i]->client_bytes, q.n);
	/* the next batch pairs normally */
	m_str(&q2, 'Q', "select 2");
	m_str(&r2, 'C', "SELECT 0");
	m_Z(&r2);
	feedb(f, DIR_TO_SERVER, &q2);
	feedb(f, DIR_TO_CLIENT, &r2);
	assert_int_equal(f->nev, 5);
	assert_str(f->ev[4], "query", "select 2");
	assert_int_equal(f->ev[4]->status, EV_STATUS_OK);
}

static void test_statement_split(void **state)
{
	struct fx *f = *state;
	struct buf q = {.n = 0}, r = {.n = 0};

	m_str(&q, 'Q',
	      "select ';' ; /* a; /* nested; */ b; */ select $$a;b$$, $x$;$x$ ;"
	      " select E'it\\'s;', \"q;\"\"\" ; -- only a comment; really\n ;  ; "
	      "select $1;");
	for (int i = 0; i < 4; i++)
		m_str(&r, 'C', "SELECT 1");
	m_Z(&r);
	feedb(f, DIR_TO_SERVER, &q);
	feedb(f, DIR_TO_CLIENT, &r);
	assert_int_equal(f->nev, 4);
	assert_str(f->ev[0], "query", "select ';'");
	assert_str(f->ev[1], "query", "/* a; /* nested; */ b; */ select $$a;b$$, $x$;$x$");
	assert_str(f->ev[1], "method", "SELECT");
	assert_str(f->ev[2], "query", "select E'it\\'s;', \"q;\"\"\"");
	assert_str(f->ev[3], "query", "select $1");
	for (int i = 0; i < 4; i++)
		assert_int_equal(f->ev[i]->status, EV_STATUS_OK);
}

static void test_empty_query(void **state)
{
	struct fx *f = *state;
	struct buf q = {.n = 0}, r = {.n = 0};

	m_str(&q, 'Q', " ; ");
	m_empty(&r, 'I');
	m_Z(&r);
	feedb(f, DIR_TO_SERVER, &q);
	feedb(f, DIR_TO_CLIENT, &r);
	assert_int_equal(f->nev, 1);
	assert_str(f->ev[0], "query", "");
	assert_null(ev_find(f->ev[0], "method"));
	assert_int_equal(f->ev[0]->status, EV_STATUS_OK);
	assert_int_equal(f->ev[0]->server_bytes, 5);
}

static void test_extended_unnamed(void **state)
{
	struct fx *f = *state;
	struct buf q = {.n = 0}, r = {.n = 0};
	size_t rstart, rend;

	f->cfg.send_response = true;
	m_P(&q, "", "SELECT * from test where id = $1");
	m_B(&q, "", "", "1");
	m_desc(&q, 'P', "");
	m_exec(&q, "", 0);
	m_empty(&q, 'S');
	m_empty(&r, '1');
	m_empty(&r, '2');
	rstart = r.n;
	m_T(&r, 0, 2, "id", "name");
	m_D(&r, 2, "1", "x");
	m_str(&r, 'C', "SELECT 1");
	rend = r.n;
	m_Z(&r);
	feedb(f, DIR_TO_SERVER, &q);
	feedb(f, DIR_TO_CLIENT, &r);
	assert_int_equal(f->nev, 1);
	assert_str(f->ev[0], "query", "SELECT * from test where id = $1");
	assert_str(f->ev[0], "method", "SELECT");
	assert_int_equal(f->ev[0]->client_bytes, q.n); /* Parse..Sync */
	assert_int_equal(f->ev[0]->server_bytes, rend - rstart);
	assert_str(f->ev[0], "response", "id,name\n1,x\n");
}

static void test_extended_named_reuse_close(void **state)
{
	struct fx *f = *state;
	struct buf a = {.n = 0}, ra = {.n = 0}, b = {.n = 0}, rb = {.n = 0};

	/* prepare only: no transaction */
	m_P(&a, "S_1", "insert into t values ($1)");
	m_empty(&a, 'S');
	m_empty(&ra, '1');
	m_Z(&ra);
	feedb(f, DIR_TO_SERVER, &a);
	feedb(f, DIR_TO_CLIENT, &ra);
	assert_int_equal(f->nev, 0);
	/* two executions in one batch (JDBC batch), then close and one more */
	m_B(&b, "", "S_1", "1");
	m_exec(&b, "", 0);
	m_B(&b, "", "S_1", "2");
	m_exec(&b, "", 0);
	m_close(&b, 'S', "S_1");
	m_B(&b, "", "S_1", "3");
	m_exec(&b, "", 0);
	m_empty(&b, 'S');
	m_empty(&rb, '2');
	m_str(&rb, 'C', "INSERT 0 1");
	m_empty(&rb, '2');
	m_str(&rb, 'C', "INSERT 0 1");
	m_empty(&rb, '3');
	m_E(&rb, 'E', "ERROR", "26000", "prepared statement \"S_1\" does not exist");
	m_Z(&rb);
	feedb(f, DIR_TO_SERVER, &b);
	feedb(f, DIR_TO_CLIENT, &rb);
	assert_int_equal(f->nev, 3);
	assert_str(f->ev[0], "query", "insert into t values ($1)");
	assert_str(f->ev[1], "query", "insert into t values ($1)");
	assert_uint(f->ev[1], "pgsql.num_rows", 1);
	/* closed: unknown text; method from nothing, error reported */
	assert_null(ev_find(f->ev[2], "query"));
	assert_int_equal(f->ev[2]->status, EV_STATUS_ERROR);
	assert_str(f->ev[2], "pgsql.error_code", "26000");
	assert_int_equal(metrics_get("pgsql.unknown_statements"), 1);
}

static void test_unknown_statement_method_from_tag(void **state)
{
	struct fx *f = *state;
	struct buf q = {.n = 0}, r = {.n = 0};

	m_B(&q, "", "S_9", "1");
	m_exec(&q, "", 0);
	m_empty(&q, 'S');
	m_empty(&r, '2');
	m_str(&r, 'C', "UPDATE 3");
	m_Z(&r);
	feedb(f, DIR_TO_SERVER, &q);
	feedb(f, DIR_TO_CLIENT, &r);
	assert_int_equal(f->nev, 1);
	assert_str(f->ev[0], "method", "UPDATE");
	assert_uint(f->ev[0], "pgsql.num_rows", 3);
	assert_null(ev_find(f->ev[0], "query"));
}

static void test_statement_table_cap(void **state)
{
	struct fx *f = *state;
	struct buf q = {.n = 0}, r = {.n = 0};

	fx_set_u(f, "max_statements", 2);
	m_P(&q, "s1", "select 1");
	m_P(&q, "s2", "select 2");
	m_P(&q, "s3", "select 3"); /* evicts s1 */
	m_B(&q, "", "s1", "x");
	m_exec(&q, "", 0);
	m_B(&q, "", "s3", "x");
	m_exec(&q, "", 0);
	m_empty(&q, 'S');
	m_str(&r, 'C', "SELECT 0");
	m_str(&r, 'C', "SELECT 0");
	m_Z(&r);
	feedb(f, DIR_TO_SERVER, &q);
	feedb(f, DIR_TO_CLIENT, &r);
	assert_int_equal(f->nev, 2);
	assert_null(ev_find(f->ev[0], "query"));
	assert_str(f->ev[1], "query", "select 3");
	assert_int_equal(metrics_get("pgsql.statements_evicted"), 1);
}

static void test_portal_suspended(void **state)
{
	struct fx *f = *state;
	struct buf q = {.n = 0}, r = {.n = 0};

	m_P(&q, "", "select g from generate_series(1,3) g");
	m_B(&q, "C_1", "", "x");
	m_exec(&q, "C_1", 2);
	m_exec(&q, "C_1", 2);
	m_empty(&q, 'S');
	m_D(&r, 1, "1");
	m_D(&r, 1, "2");
	m_empty(&r, 's');
	m_D(&r, 1, "3");
	m_str(&r, 'C', "SELECT 1");
	m_Z(&r);
	feedb(f, DIR_TO_SERVER, &q);
	feedb(f, DIR_TO_CLIENT, &r);
	assert_int_equal(f->nev, 2);
	assert_uint(f->ev[0], "pgsql.num_rows", 2); /* counted DataRows */
	assert_str(f->ev[0], "query", "select g from generate_series(1,3) g");
	assert_uint(f->ev[1], "pgsql.num_rows", 1);
}

static void test_copy_in_out(void **state)
{
	struct fx *f = *state;
	struct buf q = {.n = 0}, r1 = {.n = 0}, d = {.n = 0}, r2 = {.n = 0};
	struct buf q2 = {.n = 0}, r3 = {.n = 0};
	size_t at;

	m_str(&q, 'Q', "COPY t FROM STDIN");
	at = msg_begin(&r1, 'G');
	put8(&r1, 0);
	put16(&r1, 1);
	put16(&r1, 0);
	msg_end(&r1, at);
	m_str(&d, 'd', "1\tone\n");
	m_str(&d, 'd', "2\ttwo\n");
	m_empty(&d, 'c');
	m_str(&r2, 'C', "COPY 2");
	m_Z(&r2);
	feedb(f, DIR_TO_SERVER, &q);
	feedb(f, DIR_TO_CLIENT, &r1);
	feedb(f, DIR_TO_SERVER, &d);
	assert_int_equal(f->nev, 0);
	feedb(f, DIR_TO_CLIENT, &r2);
	assert_int_equal(f->nev, 1);
	assert_str(f->ev[0], "method", "COPY");
	assert_uint(f->ev[0], "pgsql.num_rows", 2);
	assert_int_equal(f->ev[0]->client_bytes, q.n + d.n);
	assert_int_equal(f->ev[0]->server_bytes, r1.n + r2.n - 6);

	m_str(&q2, 'Q', "COPY t TO STDOUT");
	at = msg_begin(&r3, 'H');
	put8(&r3, 0);
	put16(&r3, 0);
	msg_end(&r3, at);
	for (int i = 0; i < 50; i++)
		m_str(&r3, 'd', "row\n");
	m_empty(&r3, 'c');
	m_str(&r3, 'C', "COPY 50");
	m_Z(&r3);
	feedb(f, DIR_TO_SERVER, &q2);
	feedb(f, DIR_TO_CLIENT, &r3);
	assert_int_equal(f->nev, 2);
	assert_uint(f->ev[1], "pgsql.num_rows", 50);
	assert_int_equal(f->ev[1]->server_bytes, r3.n - 6);
}

static void test_startup_auth_skipped(void **state)
{
	struct fx *f = *state;
	struct buf s = {.n = 0}, r = {.n = 0}, p = {.n = 0}, r2 = {.n = 0}, q = {.n = 0},
		   r3 = {.n = 0};
	size_t at;

	startup(&s);
	at = msg_begin(&r, 'R');
	put32(&r, 5); /* MD5 */
	put32(&r, 0x01020304);
	msg_end(&r, at);
	m_str(&p, 'p', "md5abcdef");
	at = msg_begin(&r2, 'R');
	put32(&r2, 0);
	msg_end(&r2, at);
	at = msg_begin(&r2, 'S');
	putz(&r2, "server_version");
	putz(&r2, "15.4");
	msg_end(&r2, at);
	at = msg_begin(&r2, 'K');
	put32(&r2, 1234);
	put32(&r2, 5678);
	msg_end(&r2, at);
	m_Z(&r2);
	feedb(f, DIR_TO_SERVER, &s);
	feedb(f, DIR_TO_CLIENT, &r);
	feedb(f, DIR_TO_SERVER, &p);
	feedb(f, DIR_TO_CLIENT, &r2);
	assert_int_equal(f->nev, 0);
	m_str(&q, 'Q', "select 1");
	m_str(&r3, 'C', "SELECT 1");
	m_Z(&r3);
	feedb(f, DIR_TO_SERVER, &q);
	feedb(f, DIR_TO_CLIENT, &r3);
	assert_int_equal(f->nev, 1);
	assert_int_equal(f->ev[0]->status, EV_STATUS_OK);
	assert_int_equal(metrics_get("pgsql.unmatched_responses"), 0);
}

static void test_startup_failure_not_a_transaction(void **state)
{
	struct fx *f = *state;
	struct buf s = {.n = 0}, r = {.n = 0};

	startup(&s);
	m_E(&r, 'E', "FATAL", "28P01", "password authentication failed for user \"x\"");
	feedb(f, DIR_TO_SERVER, &s);
	feedb(f, DIR_TO_CLIENT, &r);
	f->ops->fin(f->conn, DIR_TO_CLIENT, &f->ctx);
	assert_int_equal(f->nev, 0);
	assert_int_equal(metrics_get("pgsql.startup_errors"), 1);
}

static void test_ssl_refused_then_startup(void **state)
{
	struct fx *f = *state;
	struct buf s = {.n = 0}, q = {.n = 0}, r = {.n = 0};

	put32(&s, 8);
	put32(&s, 80877103);
	feedb(f, DIR_TO_SERVER, &s);
	feed_n(f, DIR_TO_CLIENT, "N", 1);
	s.n = 0;
	startup(&s);
	feedb(f, DIR_TO_SERVER, &s);
	m_Z(&r);
	feedb(f, DIR_TO_CLIENT, &r);
	r.n = 0;
	m_str(&q, 'Q', "select 1");
	m_str(&r, 'C', "SELECT 1");
	m_Z(&r);
	feedb(f, DIR_TO_SERVER, &q);
	feedb(f, DIR_TO_CLIENT, &r);
	assert_int_equal(f->nev, 1);
	assert_int_equal(metrics_get("pgsql.tls_sessions"), 0);
}

static void test_ssl_accepted_ignored(void **state)
{
	struct fx *f = *state;
	struct buf s = {.n = 0}, q = {.n = 0};
	static const uint8_t hello[] = {0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5};

	put32(&s, 8);
	put32(&s, 80877103);
	feedb(f, DIR_TO_SERVER, &s);
	assert_int_equal(feed_n(f, DIR_TO_CLIENT, "S", 1), PARSE_OK);
	assert_int_equal(feed_n(f, DIR_TO_SERVER, hello, sizeof(hello)), PARSE_OK);
	m_str(&q, 'Q', "select 1"); /* whatever follows is opaque */
	assert_int_equal(feedb(f, DIR_TO_SERVER, &q), PARSE_OK);
	assert_int_equal(feed_n(f, DIR_TO_CLIENT, "\x17\x03\x03\x00\x01x", 6), PARSE_OK);
	assert_int_equal(metrics_get("pgsql.tls_sessions"), 1);
	assert_int_equal(f->nev, 0);
}

static void test_direct_tls_and_gss(void **state)
{
	struct fx *f = *state;
	struct buf s = {.n = 0};
	static const uint8_t hello[] = {0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5};

	assert_int_equal(feed_n(f, DIR_TO_SERVER, hello, sizeof(hello)), PARSE_OK);
	assert_int_equal(metrics_get("pgsql.tls_sessions"), 1);
	f->ops->conn_free(f->conn);
	f->conn = NULL;
	put32(&s, 8);
	put32(&s, 80877104);
	feedb(f, DIR_TO_SERVER, &s);
	feed_n(f, DIR_TO_CLIENT, "G", 1);
	assert_int_equal(metrics_get("pgsql.gssenc_sessions"), 1);
	assert_int_equal(feed_n(f, DIR_TO_SERVER, "\x00\x00\x00\x10garbagegarbage", 18), PARSE_OK);
	assert_int_equal(f->nev, 0);
}

static void test_cancel_request(void **state)
{
	struct fx *f = *state;
	struct buf s = {.n = 0};

	put32(&s, 16);
	put32(&s, 80877102);
	put32(&s, 1234);
	put32(&s, 5678);
	assert_int_equal(feedb(f, DIR_TO_SERVER, &s), PARSE_OK);
	f->ops->fin(f->conn, DIR_TO_SERVER, &f->ctx);
	assert_int_equal(metrics_get("pgsql.cancel_requests"), 1);
	assert_int_equal(f->nev, 0);
}

static void test_unmatched_both_ways(void **state)
{
	struct fx *f = *state;
	struct buf q = {.n = 0}, r = {.n = 0};

	/* a response without a request (joined mid-stream) */
	m_str(&r, 'C', "DELETE 2");
	m_Z(&r);
	feedb(f, DIR_TO_CLIENT, &r);
	assert_int_equal(f->nev, 1);
	assert_int_equal(f->ev[0]->status, EV_STATUS_ERROR);
	assert_str(f->ev[0], "error.message", "Unmatched response");
	assert_str(f->ev[0], "method", "DELETE");
	assert_int_equal(f->ev[0]->start_ns, 0);
	/* a request that times out: flushed when the next request comes */
	m_str(&q, 'Q', "select pg_sleep(100)");
	feedb(f, DIR_TO_SERVER, &q);
	f->ctx.ts = T0 + 11 * NS_PER_SEC;
	feedb(f, DIR_TO_SERVER, &q);
	assert_int_equal(f->nev, 2);
	assert_str(f->ev[1], "error.message", "Unmatched request");
	assert_str(f->ev[1], "query", "select pg_sleep(100)");
	/* the server closes: the pending one is unmatched too */
	f->ops->fin(f->conn, DIR_TO_CLIENT, &f->ctx);
	assert_int_equal(f->nev, 3);
	assert_str(f->ev[2], "error.message", "Unmatched request");
	assert_int_equal(metrics_get("pgsql.unmatched_requests"), 2);
	assert_int_equal(metrics_get("pgsql.unmatched_responses"), 1);
}

static void test_expire_publishes_pending(void **state)
{
	struct fx *f = *state;
	struct buf q = {.n = 0}, r = {.n = 0};

	m_str(&q, 'Q', "select 1; select 2");
	m_T(&r, 0, 1, "x");
	m_D(&r, 1, "1");
	feedb(f, DIR_TO_SERVER, &q);
	feedb(f, DIR_TO_CLIENT, &r);
	f->ops->expire(f->conn, &f->ctx);
	assert_int_equal(f->nev, 2);
	assert_int_equal(f->ev[0]->status, EV_STATUS_OK);
	assert_str(f->ev[0], "error.message", "Incomplete response");
	assert_uint(f->ev[0], "pgsql.num_rows", 1);
	assert_str(f->ev[1], "error.message", "Unmatched request");
}

static void test_rows_limits_and_csv(void **state)
{
	struct fx *f = *state;
	struct buf q = {.n = 0}, r = {.n = 0};

	f->cfg.send_response = true;
	fx_set_u(f, "max_rows", 3);
	fx_set_u(f, "max_row_length", 8);
	m_str(&q, 'Q', "select * from t");
	m_T(&r, 0x4, 3, "a,1", "b\nx", "bin");
	m_D(&r, 3, "1234567890", "z", "q");   /* first column truncated, rest omitted */
	m_D(&r, 3, "a\"b", NULL, "\x01\x02"); /* binary column: empty */
	m_D(&r, 3, " x", "l1\nl2\r", "q");
	m_D(&r, 3, "never", "kept", "x");
	m_D(&r, 0);
	m_str(&r, 'C', "SELECT 5");
	m_Z(&r);
	feedb(f, DIR_TO_SERVER, &q);
	feedb(f, DIR_TO_CLIENT, &r);
	assert_int_equal(f->nev, 1);
	assert_str(f->ev[0], "response",
		   "\"a,1\",b\\nx,bin\n12345678\n\"a\"\"b\",,\n\" x\",l1\\nl2\\r\n");
	assert_uint(f->ev[0], "pgsql.num_rows", 5);
	assert_uint(f->ev[0], "pgsql.num_fields", 3);
}

static void test_message_size_caps(void **state)
{
	struct fx *f = *state;
	struct buf q = {.n = 0}, r = {.n = 0};

	f->cfg.send_request = f->cfg.send_response = true;
	f->cfg.max_message_size = 10;
	m_str(&q, 'Q', "select 'a long query text'");
	m_T(&r, 0, 1, "column_name");
	m_D(&r, 1, "value");
	m_str(&r, 'C', "SELECT 1");
	m_Z(&r);
	feedb(f, DIR_TO_SERVER, &q);
	feedb(f, DIR_TO_CLIENT, &r);
	assert_int_equal(f->nev, 1);
	assert_str(f->ev[0], "request", "select 'a ");
	assert_str(f->ev[0], "response", "column_nam");
	assert_str(f->ev[0], "query", "select 'a long query text'");
}

static void test_query_truncated(void **state)
{
	struct fx *f = *state;
	struct buf q = {.n = 0}, r = {.n = 0};
	char text[300];

	fx_set_u(f, "max_query_length", 64);
	memset(text, 'x', sizeof(text) - 1);
	memcpy(text, "select 1; select '", 18);
	memcpy(text + sizeof(text) - 4, "';", 2);
	text[sizeof(text) - 2] = 'y';
	text[sizeof(text) - 1] = '\0';
	m_str(&q, 'Q', text);
	m_str(&r, 'C', "SELECT 1");
	m_str(&r, 'C', "SELECT 1");
	m_str(&r, 'C', "SELECT 1"); /* the statement past the cut */
	m_Z(&r);
	feedb(f, DIR_TO_SERVER, &q);
	feedb(f, DIR_TO_CLIENT, &r);
	assert_int_equal(f->nev, 3);
	assert_str(f->ev[0], "query", "select 1");
	assert_int_equal(field(f->ev[1], "query")->v.s.len, 64 - 10);
	assert_null(ev_find(f->ev[2], "query"));
	assert_int_equal(f->ev[2]->status, EV_STATUS_OK);
	assert_int_equal(f->ev[2]->client_bytes, q.n);
	assert_int_equal(metrics_get("pgsql.limit_exceeded"), 1);
}

static void test_pending_cap(void **state)
{
	struct fx *f = *state;
	struct buf q = {.n = 0}, r = {.n = 0};

	f->cfg.max_pending = 2;
	m_str(&q, 'Q', "select 1; select 2; select 3; select 4");
	for (int i = 0; i < 4; i++)
		m_str(&r, 'C', "SELECT 1");
	m_Z(&r);
	feedb(f, DIR_TO_SERVER, &q);
	feedb(f, DIR_TO_CLIENT, &r);
	assert_int_equal(f->nev, 4);
	assert_str(f->ev[1], "query", "select 2");
	assert_null(ev_find(f->ev[2], "query"));
	assert_str(f->ev[3], "method", "SELECT");
	for (int i = 0; i < 4; i++)
		assert_int_equal(f->ev[i]->status, EV_STATUS_OK);
	assert_int_equal(metrics_get("pgsql.limit_exceeded"), 2);
}

static void test_hostile_lengths(void **state)
{
	struct fx *f = *state;
	struct buf q = {.n = 0};
	static const uint8_t short_len[] = {'Q', 0, 0, 0, 3};
	static const uint8_t huge[] = {'D', 0x7f, 0xff, 0xff, 0xff};

	m_str(&q, 'Q', "select 1");
	feedb(f, DIR_TO_SERVER, &q);
	assert_int_equal(feed_n(f, DIR_TO_SERVER, short_len, sizeof(short_len)), PARSE_ERROR);
	f->ops->expire(f->conn, &f->ctx);
	f->ops->conn_free(f->conn);
	f->conn = NULL;
	f->tlen[0] = f->tlen[1] = 0;
	fx_set_u(f, "max_message_length", 1 << 20);
	feedb(f, DIR_TO_SERVER, &q);
	q.n = 0;
	m_str(&q, 'C', "SELECT 1");
	feedb(f, DIR_TO_CLIENT, &q); /* synced */
	assert_int_equal(feed_n(f, DIR_TO_CLIENT, huge, sizeof(huge)), PARSE_ERROR);
	assert_int_equal(metrics_get("pgsql.limit_exceeded"), 1);
}

static void test_malformed_datarow_continues(void **state)
{
	struct fx *f = *state;
	struct buf q = {.n = 0}, r = {.n = 0};
	size_t at;

	f->cfg.send_response = true;
	m_str(&q, 'Q', "select a from t");
	m_T(&r, 0, 1, "a");
	at = msg_begin(&r, 'D'); /* claims 65535 columns and a 1000-byte value */
	put16(&r, 0xffff);
	put32(&r, 1000);
	put(&r, "abc", 3);
	msg_end(&r, at);
	at = msg_begin(&r, 'D'); /* negative length other than -1 */
	put16(&r, 1);
	put32(&r, 0xfffffff0);
	msg_end(&r, at);
	m_D(&r, 1, "ok");
	m_str(&r, 'C', "SELECT 3");
	m_Z(&r);
	feedb(f, DIR_TO_SERVER, &q);
	assert_int_equal(feedb(f, DIR_TO_CLIENT, &r), PARSE_OK);
	assert_int_equal(f->nev, 1);
	assert_str(f->ev[0], "response", "a\n\n\nok\n");
	assert_int_equal(metrics_get("pgsql.malformed_messages"), 2);
}

/* Rows that are only counted (no send_response) are checked in one step when the
 * whole body is at hand, column by column when it streams in: every kind of bad row
 * is counted the same either way, and the messages after it are still understood. */
static void test_counted_rows_whole_or_streamed(void **state)
{
	struct fx *f = *state;
	struct buf q = {.n = 0}, r = {.n = 0};
	size_t at;

	m_str(&q, 'Q', "select a, b from t");
	m_T(&r, 0, 2, "a", "b");
	m_D(&r, 2, "x", NULL);   /* fine */
	at = msg_begin(&r, 'D'); /* a value longer than the body */
	put16(&r, 2);
	put32(&r, 1000);
	put(&r, "abc", 3);
	msg_end(&r, at);
	at = msg_begin(&r, 'D'); /* a length below -1 */
	put16(&r, 1);
	put32(&r, 0xfffffff0);
	msg_end(&r, at);
	at = msg_begin(&r, 'D'); /* bytes after the last column */
	put16(&r, 1);
	put32(&r, 1);
	put(&r, "zz", 2);
	msg_end(&r, at);
	at = msg_begin(&r, 'D'); /* ends inside the second column's length */
	put16(&r, 2);
	put32(&r, 1);
	put8(&r, 'q');
	put16(&r, 0);
	msg_end(&r, at);
	at = msg_begin(&r, 'D'); /* one byte: no column count */
	put8(&r, 0);
	msg_end(&r, at);
	at = msg_begin(&r, 'D'); /* no columns, then a stray byte */
	put16(&r, 0);
	put8(&r, 7);
	msg_end(&r, at);
	m_D(&r, 0); /* no columns: fine */
	m_str(&r, 'C', "SELECT");
	m_Z(&r);
	for (int streamed = 0; streamed < 2; streamed++) {
		uint64_t bad = metrics_get("pgsql.malformed_messages");

		assert_int_equal(feedb(f, DIR_TO_SERVER, &q), PARSE_OK);
		if (streamed) {
			for (size_t i = 0; i < r.n; i++)
				assert_int_not_equal(feed_n(f, DIR_TO_CLIENT, r.p + i, 1),
						     PARSE_ERROR);
		} else {
			assert_int_equal(feedb(f, DIR_TO_CLIENT, &r), PARSE_OK);
		}
		assert_int_equal(metrics_get("pgsql.malformed_messages") - bad, 6);
		assert_int_equal(f->nev, 1);
		assert_str(f->ev[0], "method", "SELECT");
		assert_uint(f->ev[0], "pgsql.num_rows", 8); /* the tag has no count */
		assert_uint(f->ev[0], "pgsql.num_fields", 2);
		assert_int_equal(f->ev[0]->server_bytes, r.n - 6); /* T..C, not Z */
		fx_close(f);
		fx_drop_events(f);
	}
}

static void test_resync_midstream(void **state)
{
	struct fx *f = *state;
	struct buf q = {.n = 0}, r = {.n = 0};

	/* the tail of some message, then a clean query */
	feed_n(f, DIR_TO_SERVER, "\xff\xfe\x00garbage", 10);
	m_str(&q, 'Q', "select 1");
	m_str(&r, 'C', "SELECT 1");
	m_Z(&r);
	assert_int_equal(feedb(f, DIR_TO_SERVER, &q), PARSE_OK);
	feedb(f, DIR_TO_CLIENT, &r);
	assert_int_equal(f->nev, 1);
	assert_str(f->ev[0], "query", "select 1");
	assert_true(metrics_get("pgsql.resync_skipped_bytes") >= 10);
}

static void test_gap_in_datarow(void **state)
{
	struct fx *f = *state;
	struct buf q = {.n = 0}, r1 = {.n = 0}, r2 = {.n = 0};
	char big[2000];

	memset(big, 'v', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	m_str(&q, 'Q', "select big from t");
	m_T(&r1, 0, 1, "big");
	m_D(&r1, 1, big);
	feedb(f, DIR_TO_SERVER, &q);
	feed_n(f, DIR_TO_CLIENT, r1.p, r1.n - 1500);
	assert_int_equal(f->ops->gap(f->conn, DIR_TO_CLIENT, 1400, &f->ctx), 0);
	feed_n(f, DIR_TO_CLIENT, r1.p + r1.n - 100, 100);
	m_str(&r2, 'C', "SELECT 1");
	m_Z(&r2);
	feedb(f, DIR_TO_CLIENT, &r2);
	assert_int_equal(f->nev, 1);
	assert_str(f->ev[0], "error.message", "Packet loss while capturing the response");
	assert_int_equal(f->ev[0]->status, EV_STATUS_OK);
	/* a gap in a header cannot be skipped */
	assert_int_equal(f->ops->gap(f->conn, DIR_TO_CLIENT, 3, &f->ctx), -1);
}

static void test_gap_loses_command_complete(void **state)
{
	struct fx *f = *state;
	struct buf q = {.n = 0}, r = {.n = 0};

	m_str(&q, 'Q', "update t set a = 1");
	m_str(&r, 'C', "UPDATE 7");
	feedb(f, DIR_TO_SERVER, &q);
	feed_n(f, DIR_TO_CLIENT, r.p, 6); /* header known, tag incomplete */
	assert_int_equal(f->ops->gap(f->conn, DIR_TO_CLIENT, r.n, &f->ctx), 0);
	assert_int_equal(f->nev, 1);
	assert_str(f->ev[0], "error.message", "Packet loss while capturing the response");
}

/* A whole session delivered split at every byte gives the same events. */
static void session(struct buf *c, struct buf *s)
{
	startup(c);
	m_str(c, 'Q', "select * from test; insert into t values (1)");
	m_P(c, "", "select $1");
	m_B(c, "", "", "7");
	m_desc(c, 'P', "");
	m_exec(c, "", 0);
	m_empty(c, 'S');
	m_empty(c, 'X');
	m_Z(s);
	select_response(s);
	m_E(s, 'N', "WARNING", "01000", "careful");
	m_str(s, 'C', "INSERT 0 1");
	m_Z(s);
	m_empty(s, '1');
	m_empty(s, '2');
	m_T(s, 0, 1, "?column?");
	m_D(s, 1, "7");
	m_str(s, 'C', "SELECT 1");
	m_Z(s);
}

static void test_split_every_byte(void **state)
{
	struct fx *f = *state;
	static struct buf c, s;
	char want[3][160];

	c.n = s.n = 0;
	f->cfg.send_response = true;
	session(&c, &s);
	/* reference run: client first, then server */
	feed_n(f, DIR_TO_SERVER, c.p, c.n);
	feed_n(f, DIR_TO_CLIENT, s.p, s.n);
	assert_int_equal(f->nev, 3);
	for (int i = 0; i < 3; i++) {
		const struct ev_field *q = field(f->ev[i], "query");

		snprintf(want[i], sizeof(want[i]), "%.*s/%" PRIu64 "/%" PRIu64, (int)q->v.s.len,
			 q->v.s.p, f->ev[i]->client_bytes, f->ev[i]->server_bytes);
	}
	for (size_t k = 1; k < s.n; k += 1) {
		size_t kc = k < c.n ? k : c.n - 1;

		f->ops->expire(f->conn, &f->ctx);
		f->ops->conn_free(f->conn);
		f->conn = NULL;
		for (size_t i = 0; i < f->nev; i++)
			ev_pool_put(f->ev[i]);
		f->nev = 0;
		f->tlen[0] = f->tlen[1] = 0;
		feed_n(f, DIR_TO_SERVER, c.p, kc);
		feed_n(f, DIR_TO_SERVER, c.p + kc, c.n - kc);
		feed_n(f, DIR_TO_CLIENT, s.p, k);
		feed_n(f, DIR_TO_CLIENT, s.p + k, s.n - k);
		assert_int_equal(f->nev, 3);
		for (int i = 0; i < 3; i++) {
			const struct ev_field *q = field(f->ev[i], "query");
			char got[160];

			snprintf(got, sizeof(got), "%.*s/%" PRIu64 "/%" PRIu64, (int)q->v.s.len,
				 q->v.s.p, f->ev[i]->client_bytes, f->ev[i]->server_bytes);
			assert_string_equal(got, want[i]);
		}
		assert_str(f->ev[0], "response",
			   "a,b,c\nmea,meb,mec\nmea1,meb1,mec1\nmea2,meb2,mec2\nmea3,meb3,mec3\n");
	}
}

/* Every prefix of the session, then expire: never crashes, leaks nothing. */
static void test_truncation_every_byte(void **state)
{
	struct fx *f = *state;
	static struct buf c, s;

	c.n = s.n = 0;
	f->cfg.send_request = f->cfg.send_response = true;
	session(&c, &s);
	for (size_t k = 0; k <= s.n; k++) {
		if (f->conn) {
			f->ops->expire(f->conn, &f->ctx);
			f->ops->conn_free(f->conn);
			f->conn = NULL;
		}
		for (size_t i = 0; i < f->nev; i++)
			ev_pool_put(f->ev[i]);
		f->nev = 0;
		f->tlen[0] = f->tlen[1] = 0;
		feed_n(f, DIR_TO_SERVER, c.p, k < c.n ? k : c.n);
		if (k)
			feed_n(f, DIR_TO_CLIENT, s.p, k);
		assert_true(f->nev <= 3);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_simple_select, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_insert_and_no_send, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_error_response, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_multi_statement_batch, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_statement_split, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_empty_query, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_extended_unnamed, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_extended_named_reuse_close, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_unknown_statement_method_from_tag, fx_setup,
					    fx_teardown),
	    cmocka_unit_test_setup_teardown(test_statement_table_cap, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_portal_suspended, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_copy_in_out, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_startup_auth_skipped, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_startup_failure_not_a_transaction, fx_setup,
					    fx_teardown),
	    cmocka_unit_test_setup_teardown(test_ssl_refused_then_startup, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_ssl_accepted_ignored, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_direct_tls_and_gss, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_cancel_request, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_unmatched_both_ways, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_expire_publishes_pending, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_rows_limits_and_csv, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_message_size_caps, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_query_truncated, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_pending_cap, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_hostile_lengths, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_malformed_datarow_continues, fx_setup,
					    fx_teardown),
	    cmocka_unit_test_setup_teardown(test_counted_rows_whole_or_streamed, fx_setup,
					    fx_teardown),
	    cmocka_unit_test_setup_teardown(test_resync_midstream, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_gap_in_datarow, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_gap_loses_command_complete, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_split_every_byte, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_truncation_every_byte, fx_setup, fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
