/* test_mysql.c — the MySQL parser (net/proto/mysql.c) through the sink seam: commands,
 * OK / ERR, result sets (classic EOF and DEPRECATE_EOF), prepared statements, the
 * connection phase (capabilities, TLS, compression), sequence ids, pairing, limits,
 * 16 MiB packets, gaps, hostile lengths and truncation at every byte. */
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

extern const struct proto_ops mysql_proto;

#define MAX_EVENTS 64
#include "parser_fixture.h"

static int fx_setup(void **state)
{
	struct fx *f = fx_new(&mysql_proto, 64, 3306);

	fx_set(f, "max_rows", "10");
	fx_set(f, "max_row_length", "1024");
	fx_set(f, "max_statements", "4");
	fx_set(f, "max_query_bytes", "65536");
	fx_set(f, "max_packet_head", "16384");
	*state = f;
	return 0;
}

static void assert_note(const struct event *ev, const char *want)
{
	const struct ev_field *fl = field(ev, "error.message");

	if (!memmem(fl->v.s.p, fl->v.s.len, want, strlen(want)))
		fail_msg("error.message '%.*s' lacks '%s'", (int)fl->v.s.len, fl->v.s.p, want);
}

/* ---- packet builder ---------------------------------------------------------------- */

struct pb {
	uint8_t *b;
	size_t len, cap;
};

static void pb_put(struct pb *p, const void *s, size_t n)
{
	if (p->cap - p->len < n) {
		p->cap = (p->len + n) * 2 + 64;
		p->b = realloc(p->b, p->cap);
		assert_non_null(p->b);
	}
	memcpy(p->b + p->len, s, n);
	p->len += n;
}

static void pb_u8(struct pb *p, unsigned v)
{
	uint8_t b = (uint8_t)v;

	pb_put(p, &b, 1);
}

static void pb_le(struct pb *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		pb_u8(p, (unsigned)(v >> (8 * i)) & 0xff);
}

static void pb_lenenc(struct pb *p, uint64_t n)
{
	if (n < 251) {
		pb_u8(p, (unsigned)n);
	} else if (n < 65536) {
		pb_u8(p, 0xfc);
		pb_le(p, n, 2);
	} else if (n < (1u << 24)) {
		pb_u8(p, 0xfd);
		pb_le(p, n, 3);
	} else {
		pb_u8(p, 0xfe);
		pb_le(p, n, 8);
	}
}

static void pb_lstr(struct pb *p, const char *s)
{
	pb_lenenc(p, strlen(s));
	pb_put(p, s, strlen(s));
}

/* Wrap payload[0..n) as one packet with `seq` into out. */
static void pkt(struct pb *out, unsigned seq, const struct pb *payload)
{
	pb_le(out, payload->len, 3);
	pb_u8(out, seq);
	pb_put(out, payload->b, payload->len);
}

static void pkt_raw(struct pb *out, unsigned seq, const void *s, size_t n)
{
	pb_le(out, n, 3);
	pb_u8(out, seq);
	pb_put(out, s, n);
}

static void query(struct pb *out, const char *sql)
{
	struct pb p = {0};

	pb_u8(&p, 0x03);
	pb_put(&p, sql, strlen(sql));
	pkt(out, 0, &p);
	free(p.b);
}

static void ok_pkt(struct pb *out, unsigned seq, unsigned hdr, uint64_t aff, uint64_t id,
		   unsigned status)
{
	struct pb p = {0};

	pb_u8(&p, hdr);
	pb_lenenc(&p, aff);
	pb_lenenc(&p, id);
	pb_le(&p, status, 2);
	pb_le(&p, 0, 2);
	pkt(out, seq, &p);
	free(p.b);
}

static void eof_pkt(struct pb *out, unsigned seq, unsigned status)
{
	uint8_t e[5] = {0xfe, 0, 0, (uint8_t)status, (uint8_t)(status >> 8)};

	pkt_raw(out, seq, e, 5);
}

static void err_pkt(struct pb *out, unsigned seq, unsigned code, const char *state, const char *msg)
{
	struct pb p = {0};

	pb_u8(&p, 0xff);
	pb_le(&p, code, 2);
	if (state) {
		pb_u8(&p, '#');
		pb_put(&p, state, 5);
	}
	pb_put(&p, msg, strlen(msg));
	pkt(out, seq, &p);
	free(p.b);
}

static void coldef(struct pb *out, unsigned seq, const char *db, const char *tbl, const char *name,
		   unsigned type, unsigned flags)
{
	struct pb p = {0};

	pb_lstr(&p, "def");
	pb_lstr(&p, db);
	pb_lstr(&p, tbl);
	pb_lstr(&p, tbl);
	pb_lstr(&p, name);
	pb_lstr(&p, name);
	pb_u8(&p, 0x0c);
	pb_le(&p, 33, 2);
	pb_le(&p, 255, 4);
	pb_u8(&p, type);
	pb_le(&p, flags, 2);
	pb_u8(&p, 0);
	pb_le(&p, 0, 2);
	pkt(out, seq, &p);
	free(p.b);
}

/* A text row of NUL-terminated values; NULL pointer = SQL NULL. */
static void text_row(struct pb *out, unsigned seq, int n, const char *const *v)
{
	struct pb p = {0};

	for (int i = 0; i < n; i++) {
		if (v[i])
			pb_lstr(&p, v[i]);
		else
			pb_u8(&p, 0xfb);
	}
	pkt(out, seq, &p);
	free(p.b);
}

static void feed_pb(struct fx *f, enum proto_dir dir, struct pb *p)
{
	feed_n(f, dir, p->b, p->len);
	p->len = 0;
}

static void tick(struct fx *f)
{
	f->ctx.ts += NS_PER_MS;
}

/* SELECT a, b FROM db.t with rows, classic (deprecate=false) or DEPRECATE_EOF. */
static void select_response(struct pb *out, bool deprecate, int nrows, const char *const *vals)
{
	unsigned seq = 1;
	uint8_t two = 2;

	pkt_raw(out, seq++, &two, 1);
	coldef(out, seq++, "db", "t", "a", 0xfd, 0);
	coldef(out, seq++, "db", "t", "b", 0xfd, 0);
	if (!deprecate)
		eof_pkt(out, seq++, 2);
	for (int i = 0; i < nrows; i++)
		text_row(out, seq++, 2, vals + 2 * i);
	if (deprecate)
		ok_pkt(out, seq, 0xfe, 0, 0, 2);
	else
		eof_pkt(out, seq, 2);
}

static const char *const rows3[] = {"1", "x", "2", NULL, "3", "a,\"b\""};

/* ---- tests ------------------------------------------------------------------------- */

static void test_query_ok(void **state)
{
	struct fx *f = *state;
	struct pb p = {0};

	query(&p, "  /* c */ insert into shop.orders values (1)");
	feed_pb(f, DIR_TO_SERVER, &p);
	assert_int_equal(f->nev, 0);
	tick(f);
	ok_pkt(&p, 1, 0x00, 3, 77, 2);
	feed_pb(f, DIR_TO_CLIENT, &p);
	assert_int_equal(f->nev, 1);
	assert_int_equal(f->ev[0]->status, EV_STATUS_OK);
	assert_str(f->ev[0], "method", "INSERT");
	assert_str(f->ev[0], "path", "shop.orders");
	assert_str(f->ev[0], "query", "/* c */ insert into shop.orders values (1)");
	assert_uint(f->ev[0], "mysql.affected_rows", 3);
	assert_uint(f->ev[0], "mysql.insert_id", 77);
	assert_uint(f->ev[0], "mysql.num_rows", 0);
	assert_int_equal(f->ev[0]->client_bytes, 4 + 1 + 44);
	assert_int_equal(f->ev[0]->server_bytes, 11);
	assert_int_equal(f->ev[0]->start_ns, T0);
	assert_int_equal(f->ev[0]->end_ns, T0 + NS_PER_MS);
	assert_null(ev_find(f->ev[0], "request"));
	assert_null(ev_find(f->ev[0], "response"));
	free(p.b);
}

static void test_err_packet(void **state)
{
	struct fx *f = *state;
	struct pb p = {0};

	query(&p, "select * from test");
	feed_pb(f, DIR_TO_SERVER, &p);
	err_pkt(&p, 1, 1046, "3D000", "No database selected");
	feed_pb(f, DIR_TO_CLIENT, &p);
	query(&p, "select 1");
	feed_pb(f, DIR_TO_SERVER, &p);
	err_pkt(&p, 1, 1045, NULL, "Access denied");
	feed_pb(f, DIR_TO_CLIENT, &p);
	assert_int_equal(f->nev, 2);
	assert_int_equal(f->ev[0]->status, EV_STATUS_ERROR);
	assert_uint(f->ev[0], "mysql.error_code", 1046);
	assert_str(f->ev[0], "mysql.error_message", "3D000: No database selected");
	assert_str(f->ev[1], "mysql.error_message", "Access denied");
	free(p.b);
}

static void resultset_case(struct fx *f, bool deprecate)
{
	struct pb p = {0};

	f->cfg.send_response = true;
	f->cfg.send_request = true;
	query(&p, "SELECT a, b FROM db.t");
	feed_pb(f, DIR_TO_SERVER, &p);
	select_response(&p, deprecate, 3, rows3);
	feed_pb(f, DIR_TO_CLIENT, &p);
	assert_int_equal(f->nev, 1);
	assert_uint(f->ev[0], "mysql.num_rows", 3);
	assert_uint(f->ev[0], "mysql.num_fields", 2);
	assert_str(f->ev[0], "path", "db.t");
	assert_str(f->ev[0], "request", "SELECT a, b FROM db.t");
	assert_str(f->ev[0], "response", "a,b\n1,x\n2,NULL\n3,\"a,\"\"b\"\"\"\n");
	/* the next query pairs normally: the terminator was consumed exactly */
	query(&p, "DO 1");
	feed_pb(f, DIR_TO_SERVER, &p);
	ok_pkt(&p, 1, 0, 0, 0, 2);
	feed_pb(f, DIR_TO_CLIENT, &p);
	assert_int_equal(f->nev, 2);
	assert_int_equal(f->ev[1]->status, EV_STATUS_OK);
	assert_str(f->ev[1], "method", "DO");
	free(p.b);
}

static void test_resultset_classic(void **state)
{
	resultset_case(*state, false);
}

static void test_resultset_deprecate_eof_detected(void **state)
{
	resultset_case(*state, true);
}

/* Greeting + handshake response negotiate DEPRECATE_EOF; an empty result set then
 * ends with an OK (0xfe) right after the definitions. */
static void handshake(struct fx *f, uint32_t scaps, uint32_t ccaps, const char *db, bool ssl)
{
	struct pb p = {0}, g = {0};

	pb_u8(&g, 10);
	pb_put(&g, "10.11.6-MariaDB", 16);
	pb_le(&g, 9, 4);
	pb_put(&g, "12345678", 8);
	pb_u8(&g, 0);
	pb_le(&g, scaps & 0xffff, 2);
	pb_u8(&g, 33);
	pb_le(&g, 2, 2);
	pb_le(&g, scaps >> 16, 2);
	pb_u8(&g, 21);
	pb_put(&g, "\0\0\0\0\0\0\0\0\0\0", 10);
	pb_put(&g, "123456789012\0mysql_native_password", 35);
	pkt(&p, 0, &g);
	feed_pb(f, DIR_TO_CLIENT, &p);
	g.len = 0;
	pb_le(&g, ccaps, 4);
	pb_le(&g, 1 << 24, 4);
	pb_u8(&g, 33);
	for (int i = 0; i < 23; i++)
		pb_u8(&g, 0);
	if (!ssl) {
		pb_put(&g, "root", 5);
		pb_u8(&g, 20);
		pb_put(&g, "01234567890123456789", 20);
		if (db)
			pb_put(&g, db, strlen(db) + 1);
	}
	pkt(&p, 1, &g);
	feed_pb(f, DIR_TO_SERVER, &p);
	if (!ssl) {
		/* auth switch, client answer, OK */
		pkt_raw(&p, 2,
			"\xfe"
			"caching_sha2_password\0xxxxxxxxxxxxxxxxxxxx",
			42);
		feed_pb(f, DIR_TO_CLIENT, &p);
		pkt_raw(&p, 3, "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy", 32);
		feed_pb(f, DIR_TO_SERVER, &p);
		pkt_raw(&p, 4, "\x01\x03", 2); /* fast auth success */
		feed_pb(f, DIR_TO_CLIENT, &p);
		ok_pkt(&p, 5, 0, 0, 0, 2);
		feed_pb(f, DIR_TO_CLIENT, &p);
	}
	free(p.b);
	free(g.b);
}

#define CAPS (0x200u | 0x8000u | 0x8u | 0x20000u | 0x80000u | 0x200000u)

static void test_handshake_deprecate_eof(void **state)
{
	struct fx *f = *state;
	struct pb p = {0};
	uint8_t one = 1;

	handshake(f, CAPS | 0x1000000u, CAPS | 0x1000000u, "appdb", false);
	assert_int_equal(f->nev, 0);
	query(&p, "select a from t where 0");
	feed_pb(f, DIR_TO_SERVER, &p);
	pkt_raw(&p, 1, &one, 1);
	coldef(&p, 2, "appdb", "t", "a", 3, 0);
	ok_pkt(&p, 3, 0xfe, 0, 0, 2); /* 7 bytes: the terminator, no rows */
	feed_pb(f, DIR_TO_CLIENT, &p);
	assert_int_equal(f->nev, 1);
	assert_uint(f->ev[0], "mysql.num_rows", 0);
	assert_uint(f->ev[0], "mysql.num_fields", 1);
	/* the default database from the handshake qualifies INSERT paths */
	query(&p, "insert into log values (1)");
	feed_pb(f, DIR_TO_SERVER, &p);
	ok_pkt(&p, 1, 0, 1, 0, 2);
	feed_pb(f, DIR_TO_CLIENT, &p);
	assert_int_equal(f->nev, 2);
	assert_str(f->ev[1], "path", "appdb.log");
	assert_int_equal(metrics_get("mysql.seq_mismatches"), 0);
	free(p.b);
}

static void test_tls_and_compression_ignored(void **state)
{
	struct fx *f = *state;
	struct pb p = {0};

	handshake(f, CAPS | 0x800u, CAPS | 0x800u, NULL, true);
	assert_int_equal(metrics_get("mysql.tls_sessions"), 1);
	pb_put(&p, "\x16\x03\x01\x00\x10", 5);
	query(&p, "select 1"); /* inside TLS: never parsed */
	feed_pb(f, DIR_TO_SERVER, &p);
	ok_pkt(&p, 1, 0, 0, 0, 2);
	feed_pb(f, DIR_TO_CLIENT, &p);
	assert_int_equal(f->nev, 0);
	f->ops->expire(f->conn, &f->ctx);
	f->ops->conn_free(f->conn);
	f->conn = NULL;
	f->tlen[0] = f->tlen[1] = 0;
	handshake(f, CAPS | 0x20u, CAPS | 0x20u, NULL, false);
	assert_int_equal(metrics_get("mysql.compressed_sessions"), 1);
	query(&p, "select 1");
	feed_pb(f, DIR_TO_SERVER, &p);
	assert_int_equal(f->nev, 0);
	free(p.b);
}

/* A compressed session picked up mid-stream is recognised from its packets. */
static void test_compressed_detected_midstream(void **state)
{
	struct fx *f = *state;
	struct pb p = {0}, q = {0};

	query(&q, "select 1");
	pb_le(&p, q.len, 3);
	pb_u8(&p, 0);
	pb_le(&p, 0, 3);
	pb_put(&p, q.b, q.len);
	feed_pb(f, DIR_TO_SERVER, &p);
	assert_int_equal(metrics_get("mysql.compressed_sessions"), 1);
	assert_int_equal(f->nev, 0);
	free(p.b);
	free(q.b);
}

static void test_prepare_execute(void **state)
{
	struct fx *f = *state;
	struct pb p = {0}, e = {0};
	uint8_t two = 2;

	f->cfg.send_response = true;
	pkt_raw(&p, 0,
		"\x16"
		"SELECT a, b FROM db.t WHERE a = ? AND b < ?",
		44);
	feed_pb(f, DIR_TO_SERVER, &p);
	pkt_raw(&p, 1, "\x00\x05\x00\x00\x00\x02\x00\x02\x00\x00\x00\x00", 12);
	coldef(&p, 2, "", "", "?", 0xfd, 0);
	coldef(&p, 3, "", "", "?", 0xfd, 0);
	eof_pkt(&p, 4, 2);
	coldef(&p, 5, "db", "t", "a", 0xfd, 0);
	coldef(&p, 6, "db", "t", "b", 3, 0);
	eof_pkt(&p, 7, 2);
	feed_pb(f, DIR_TO_CLIENT, &p);
	assert_int_equal(f->nev, 1);
	assert_str(f->ev[0], "query", "SELECT a, b FROM db.t WHERE a = ? AND b < ?");
	assert_uint(f->ev[0], "mysql.num_fields", 2);
	/* EXECUTE: string 'abc', NULL second parameter */
	pb_u8(&e, 0x17);
	pb_le(&e, 5, 4);
	pb_u8(&e, 0);
	pb_le(&e, 1, 4);
	pb_u8(&e, 0x02); /* NULL bitmap: param 1 */
	pb_u8(&e, 1);
	pb_put(&e, "\xfd\x00\x03\x00", 4);
	pb_lstr(&e, "abc");
	pkt(&p, 0, &e);
	feed_pb(f, DIR_TO_SERVER, &p);
	pkt_raw(&p, 1, &two, 1);
	coldef(&p, 2, "db", "t", "a", 0xfd, 0);
	coldef(&p, 3, "db", "t", "b", 3, 0x20);
	eof_pkt(&p, 4, 2);
	pkt_raw(&p, 5, "\x00\x00\x03xyz\xff\xff\xff\xff", 10); /* 'xyz', 4294967295 */
	pkt_raw(&p, 6, "\x00\x08\x01q", 4);                    /* 'q', NULL */
	eof_pkt(&p, 7, 2);
	feed_pb(f, DIR_TO_CLIENT, &p);
	assert_int_equal(f->nev, 2);
	assert_str(f->ev[1], "method", "SELECT");
	assert_str(f->ev[1], "query", "SELECT a, b FROM db.t WHERE a = ? AND b < ?");
	{
		const struct ev_field *fl = f->ev[1]->fields;
		int n = 0;

		for (size_t i = 0; i < f->ev[1]->nfields; i++)
			if (!strcmp(fl[i].key, "params"))
				n++;
		assert_int_equal(n, 2);
	}
	assert_str(f->ev[1], "response", "a,b\nxyz,4294967295\nq,NULL\n");
	assert_uint(f->ev[1], "mysql.num_rows", 2);
	/* CLOSE forgets the statement: a later EXECUTE is "unknown" */
	pkt_raw(&p, 0, "\x19\x05\x00\x00\x00", 5);
	feed_pb(f, DIR_TO_SERVER, &p);
	pkt_raw(&p, 0, "\x17\x05\x00\x00\x00\x00\x01\x00\x00\x00", 10);
	feed_pb(f, DIR_TO_SERVER, &p);
	err_pkt(&p, 1, 1243, "HY000", "Unknown prepared statement handler");
	feed_pb(f, DIR_TO_CLIENT, &p);
	assert_int_equal(f->nev, 3);
	assert_str(f->ev[2], "method", "STMT_EXECUTE");
	assert_note(f->ev[2], "The actual query being used is unknown");
	free(p.b);
	free(e.b);
}

/* MariaDB metadata cache: an EXECUTE result without column definitions
 * (metadata_follows = 0) takes path, column names and types from the statement's
 * PREPARE response; an EXECUTE result with definitions wins and refreshes them. */
static void exec_stmt(struct fx *f, struct pb *p, uint32_t id)
{
	pkt_raw(p, 0, "\x17\0\0\0\0\x00\x01\x00\x00\x00", 10);
	p->b[p->len - 9] = (uint8_t)id;
	feed_pb(f, DIR_TO_SERVER, p);
}

static void test_metadata_cache_remembered(void **state)
{
	struct fx *f = *state;
	struct pb p = {0};
	const char skip[2] = {2, 0}, follow[2] = {2, 1};

	f->cfg.send_response = true;
	pkt_raw(&p, 0, "\x16SELECT a, b FROM db.t", 22);
	feed_pb(f, DIR_TO_SERVER, &p);
	pkt_raw(&p, 1, "\x00\x07\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00", 12);
	coldef(&p, 2, "db", "t", "a", 0xfd, 0);
	coldef(&p, 3, "db", "t", "b", 3, 0);
	eof_pkt(&p, 4, 2);
	feed_pb(f, DIR_TO_CLIENT, &p);
	assert_int_equal(f->nev, 1);
	assert_null(ev_find(f->ev[0], "path")); /* a PREPARE's tables are not its path */
	assert_str(f->ev[0], "response", "");
	/* metadata skipped: the PREPARE's */
	exec_stmt(f, &p, 7);
	pkt_raw(&p, 1, skip, 2);
	eof_pkt(&p, 2, 2);
	pkt_raw(&p, 3, "\x00\x00\x03xyz\xfb\xff\xff\xff", 10); /* 'xyz', -5 */
	eof_pkt(&p, 4, 2);
	feed_pb(f, DIR_TO_CLIENT, &p);
	assert_int_equal(f->nev, 2);
	assert_str(f->ev[1], "query", "SELECT a, b FROM db.t");
	assert_str(f->ev[1], "path", "db.t");
	assert_str(f->ev[1], "response", "a,b\nxyz,-5\n");
	assert_uint(f->ev[1], "mysql.num_rows", 1);
	/* definitions sent: they win (db.u, b unsigned LONGLONG) and are remembered */
	exec_stmt(f, &p, 7);
	pkt_raw(&p, 1, follow, 2);
	coldef(&p, 2, "db", "u", "a", 0xfd, 0);
	coldef(&p, 3, "db", "u", "c", 8, 0x20);
	eof_pkt(&p, 4, 2);
	pkt_raw(&p, 5, "\x00\x00\x01q\xff\xff\xff\xff\xff\xff\xff\xff", 12);
	eof_pkt(&p, 6, 2);
	feed_pb(f, DIR_TO_CLIENT, &p);
	assert_int_equal(f->nev, 3);
	assert_str(f->ev[2], "path", "db.u");
	assert_str(f->ev[2], "response", "a,c\nq,18446744073709551615\n");
	exec_stmt(f, &p, 7);
	pkt_raw(&p, 1, skip, 2);
	eof_pkt(&p, 2, 2);
	pkt_raw(&p, 3, "\x00\x08\x01r", 4); /* 'r', NULL */
	pkt_raw(&p, 4, "\x00\x00\x01s\x02\x00\x00\x00\x00\x00\x00\x00", 12);
	eof_pkt(&p, 5, 2);
	feed_pb(f, DIR_TO_CLIENT, &p);
	assert_int_equal(f->nev, 4);
	assert_str(f->ev[3], "path", "db.u");
	assert_str(f->ev[3], "response", "a,c\nr,NULL\ns,2\n");
	assert_uint(f->ev[3], "mysql.num_rows", 2);
	/* another column count than remembered, or an unknown statement: counted only */
	exec_stmt(f, &p, 7);
	pkt_raw(&p, 1, "\x01\x00", 2);
	eof_pkt(&p, 2, 2);
	pkt_raw(&p, 3, "\x00\x00\x01t", 4);
	eof_pkt(&p, 4, 2);
	feed_pb(f, DIR_TO_CLIENT, &p);
	exec_stmt(f, &p, 9);
	pkt_raw(&p, 1, skip, 2);
	eof_pkt(&p, 2, 2);
	pkt_raw(&p, 3, "\x00\x00\x01s\x02\x00\x00\x00\x00\x00\x00\x00", 12);
	eof_pkt(&p, 4, 2);
	feed_pb(f, DIR_TO_CLIENT, &p);
	assert_int_equal(f->nev, 6);
	for (size_t i = 4; i < 6; i++) {
		assert_null(ev_find(f->ev[i], "path"));
		assert_str(f->ev[i], "response", "");
		assert_uint(f->ev[i], "mysql.num_rows", 1);
	}
	/* COM_RESET_CONNECTION forgets the statement and its metadata */
	pkt_raw(&p, 0, "\x1f", 1);
	feed_pb(f, DIR_TO_SERVER, &p);
	ok_pkt(&p, 1, 0, 0, 0, 2);
	feed_pb(f, DIR_TO_CLIENT, &p);
	exec_stmt(f, &p, 7);
	pkt_raw(&p, 1, skip, 2);
	eof_pkt(&p, 2, 2);
	pkt_raw(&p, 3, "\x00\x00\x01s\x02\x00\x00\x00\x00\x00\x00\x00", 12);
	eof_pkt(&p, 4, 2);
	feed_pb(f, DIR_TO_CLIENT, &p);
	assert_int_equal(f->nev, 7);
	assert_null(ev_find(f->ev[6], "path"));
	assert_note(f->ev[6], "The actual query being used is unknown");
	free(p.b);
}

static void test_seq_mismatch_counted(void **state)
{
	struct fx *f = *state;
	struct pb p = {0};

	query(&p, "select 1");
	feed_pb(f, DIR_TO_SERVER, &p);
	ok_pkt(&p, 5, 0, 0, 0, 2); /* must be 1 */
	feed_pb(f, DIR_TO_CLIENT, &p);
	assert_int_equal(f->nev, 1);
	assert_int_equal(metrics_get("mysql.seq_mismatches"), 1);
	query(&p, "select 2");
	feed_pb(f, DIR_TO_SERVER, &p);
	select_response(&p, false, 1, rows3);
	feed_pb(f, DIR_TO_CLIENT, &p);
	assert_int_equal(metrics_get("mysql.seq_mismatches"), 1);
	free(p.b);
}

static void test_unmatched_both_ways(void **state)
{
	struct fx *f = *state;
	struct pb p = {0};

	query(&p, "select 1");
	feed_pb(f, DIR_TO_SERVER, &p);
	ok_pkt(&p, 1, 0, 0, 0, 2);
	feed_pb(f, DIR_TO_CLIENT, &p);
	err_pkt(&p, 1, 1064, "42000", "stray");
	feed_pb(f, DIR_TO_CLIENT, &p);
	assert_int_equal(f->nev, 2);
	assert_int_equal(f->ev[1]->status, EV_STATUS_ERROR);
	assert_note(f->ev[1], "Unmatched response");
	assert_int_equal(f->ev[1]->start_ns, 0);
	query(&p, "update t set a = 1");
	feed_pb(f, DIR_TO_SERVER, &p);
	f->ops->expire(f->conn, &f->ctx);
	assert_int_equal(f->nev, 3);
	assert_note(f->ev[2], "Unmatched request");
	assert_str(f->ev[2], "method", "UPDATE");
	assert_int_equal(metrics_get("mysql.unmatched_requests"), 1);
	assert_int_equal(metrics_get("mysql.unmatched_responses"), 1);
	free(p.b);
}

static void test_timeout_and_pending_cap(void **state)
{
	struct fx *f = *state;
	struct pb p = {0};

	f->cfg.max_pending = 2;
	query(&p, "select 1");
	feed_pb(f, DIR_TO_SERVER, &p);
	f->ctx.ts += 11 * NS_PER_SEC;
	query(&p, "select 2"); /* the first one timed out */
	feed_pb(f, DIR_TO_SERVER, &p);
	assert_int_equal(f->nev, 1);
	assert_note(f->ev[0], "Unmatched request");
	query(&p, "select 3");
	query(&p, "select 4"); /* pipelined past max_pending: the oldest goes */
	feed_pb(f, DIR_TO_SERVER, &p);
	assert_int_equal(f->nev, 2);
	assert_str(f->ev[1], "query", "select 2");
	assert_int_equal(metrics_get("mysql.limit_exceeded"), 1);
	ok_pkt(&p, 1, 0, 3, 0, 2);
	ok_pkt(&p, 1, 0, 4, 0, 2);
	feed_pb(f, DIR_TO_CLIENT, &p);
	assert_int_equal(f->nev, 4);
	assert_str(f->ev[2], "query", "select 3");
	assert_uint(f->ev[3], "mysql.affected_rows", 4);
	free(p.b);
}

static void test_commands(void **state)
{
	struct fx *f = *state;
	struct pb p = {0};

	pkt_raw(&p, 0, "\x0e", 1); /* PING: not published by default */
	feed_pb(f, DIR_TO_SERVER, &p);
	ok_pkt(&p, 1, 0, 0, 0, 2);
	feed_pb(f, DIR_TO_CLIENT, &p);
	assert_int_equal(f->nev, 0);
	pkt_raw(&p, 0, "\x02shop", 5);
	feed_pb(f, DIR_TO_SERVER, &p);
	ok_pkt(&p, 1, 0, 0, 0, 2);
	feed_pb(f, DIR_TO_CLIENT, &p);
	assert_int_equal(f->nev, 1);
	assert_str(f->ev[0], "method", "INIT_DB");
	assert_str(f->ev[0], "query", "INIT_DB shop");
	query(&p, "delete from `orders` where 1");
	feed_pb(f, DIR_TO_SERVER, &p);
	ok_pkt(&p, 1, 0, 0, 0, 2);
	feed_pb(f, DIR_TO_CLIENT, &p);
	assert_str(f->ev[1], "path", "shop.orders");
	pkt_raw(&p, 0, "\x01", 1); /* QUIT: no response, nothing pending */
	feed_pb(f, DIR_TO_SERVER, &p);
	f->ops->expire(f->conn, &f->ctx);
	assert_int_equal(f->nev, 2);
	free(p.b);
}

static void test_all_commands(void **state)
{
	struct fx *f = *state;
	struct pb p = {0};

	fx_set(f, "all_commands", "true");
	pkt_raw(&p, 0, "\x0e", 1);
	feed_pb(f, DIR_TO_SERVER, &p);
	ok_pkt(&p, 1, 0, 0, 0, 2);
	feed_pb(f, DIR_TO_CLIENT, &p);
	pkt_raw(&p, 0, "\x01", 1);
	feed_pb(f, DIR_TO_SERVER, &p);
	assert_int_equal(f->nev, 2);
	assert_str(f->ev[0], "method", "PING");
	assert_str(f->ev[1], "method", "QUIT");
	assert_int_equal(f->ev[1]->status, EV_STATUS_OK);
	free(p.b);
}

/* max_rows / max_row_length cap the rendering, never the counting. */
static void test_row_limits(void **state)
{
	struct fx *f = *state;
	struct pb p = {0};
	const char *const vals[] = {"0123456789", "abcdef", "1", "2", "3", "4"};

	f->cfg.send_response = true;
	fx_set(f, "max_rows", "2");
	fx_set(f, "max_row_length", "12");
	query(&p, "select a, b from db.t");
	feed_pb(f, DIR_TO_SERVER, &p);
	select_response(&p, false, 3, vals);
	feed_pb(f, DIR_TO_CLIENT, &p);
	assert_int_equal(f->nev, 1);
	assert_uint(f->ev[0], "mysql.num_rows", 3);
	assert_str(f->ev[0], "response", "a,b\n0123456789,ab\n1,2\n");
	free(p.b);
}

/* send_request / send_response are capped at max_message_size. */
static void test_message_caps(void **state)
{
	struct fx *f = *state;
	struct pb p = {0};
	const struct ev_field *fl;

	f->cfg.send_request = f->cfg.send_response = true;
	f->cfg.max_message_size = 10;
	query(&p, "select a, b from db.t where long_condition = 1");
	feed_pb(f, DIR_TO_SERVER, &p);
	select_response(&p, false, 3, rows3);
	feed_pb(f, DIR_TO_CLIENT, &p);
	assert_int_equal(f->nev, 1);
	assert_str(f->ev[0], "request", "select a, ");
	fl = field(f->ev[0], "response");
	assert_true(fl->v.s.len <= 10);
	assert_str(f->ev[0], "query", "select a, b from db.t where long_condition = 1");
	free(p.b);
}

/* A payload of 0xffffff bytes continues in the next packet: one logical query whose
 * text is kept up to max_query_bytes; a 16 MiB row counts once. */
static void test_16mib_packets(void **state)
{
	struct fx *f = *state;
	struct pb p = {0};
	size_t total = 0xffffff + 10;
	uint8_t *big = malloc(total);
	const struct ev_field *q;
	uint8_t one = 1;

	assert_non_null(big);
	fx_set(f, "max_query_bytes", "100");
	big[0] = 0x03;
	memcpy(big + 1, "INSERT INTO t VALUES ('", 23);
	memset(big + 24, 'x', total - 24);
	pkt_raw(&p, 0, big, 0xffffff);
	pkt_raw(&p, 1, big + 0xffffff, 10);
	for (size_t off = 0; off < p.len; off += 65536) /* delivered in segments */
		feed_n(f, DIR_TO_SERVER, p.b + off, p.len - off < 65536 ? p.len - off : 65536);
	p.len = 0;
	assert_true(f->tlen[0] < 70000);
	ok_pkt(&p, 2, 0, 1, 0, 2);
	feed_pb(f, DIR_TO_CLIENT, &p);
	assert_int_equal(f->nev, 1);
	assert_int_equal(f->ev[0]->client_bytes, total + 8);
	q = field(f->ev[0], "query");
	assert_int_equal(q->v.s.len, 100);
	assert_note(f->ev[0], "Query text truncated");
	assert_int_equal(metrics_get("mysql.seq_mismatches"), 0);
	/* a result row of 0xffffff + 5 bytes: one row */
	query(&p, "select b from db.t");
	feed_pb(f, DIR_TO_SERVER, &p);
	pkt_raw(&p, 1, &one, 1);
	coldef(&p, 2, "db", "t", "b", 0xfc, 0);
	eof_pkt(&p, 3, 2);
	big[0] = 0xfd; /* lenenc 3-byte length: the value fills both packets */
	big[1] = 0xff;
	big[2] = 0xff;
	big[3] = 0xff;
	pkt_raw(&p, 4, big, 0xffffff);
	pkt_raw(&p, 5, big + 0xffffff, 5);
	eof_pkt(&p, 6, 2);
	for (size_t off = 0; off < p.len; off += 65536)
		feed_n(f, DIR_TO_CLIENT, p.b + off, p.len - off < 65536 ? p.len - off : 65536);
	assert_int_equal(f->nev, 2);
	assert_uint(f->ev[1], "mysql.num_rows", 1);
	free(big);
	free(p.b);
}

static void test_gaps(void **state)
{
	struct fx *f = *state;
	struct pb p = {0};
	uint8_t one = 1;

	/* inside a row payload: skipped, noted */
	query(&p, "select b from db.t");
	feed_pb(f, DIR_TO_SERVER, &p);
	pkt_raw(&p, 1, &one, 1);
	coldef(&p, 2, "db", "t", "b", 0xfc, 0);
	eof_pkt(&p, 3, 2);
	pb_put(&p, "\x32\x00\x00\x04\x31", 5); /* row of 50 bytes: lenenc 49 */
	pb_put(&p, "0123456789", 10);
	feed_pb(f, DIR_TO_CLIENT, &p);
	assert_int_equal(f->ops->gap(f->conn, DIR_TO_CLIENT, 30, &f->ctx), 0);
	pb_put(&p, "012345678", 9);
	eof_pkt(&p, 5, 2);
	feed_pb(f, DIR_TO_CLIENT, &p);
	assert_int_equal(f->nev, 1);
	assert_int_equal(f->ev[0]->status, EV_STATUS_OK);
	assert_note(f->ev[0], "Packet loss while capturing the response");
	assert_int_equal(f->ev[0]->server_bytes, 5 + 32 + 9 + 4 + 50 + 9);
	/* across a packet boundary: refused (the stream layer resyncs) */
	query(&p, "select 2");
	feed_pb(f, DIR_TO_SERVER, &p);
	assert_int_equal(f->ops->gap(f->conn, DIR_TO_CLIENT, 100, &f->ctx), -1);
	free(p.b);
}

/* Hostile lengths and counts: nothing is sized from the wire, nothing crashes. */
static void test_hostile(void **state)
{
	struct fx *f = *state;
	struct pb p = {0};

	f->cfg.send_response = true;
	query(&p, "select 1");
	feed_pb(f, DIR_TO_SERVER, &p);
	/* column count 2^60, then garbage definitions and a terminator */
	pkt_raw(&p, 1, "\xfe\x00\x00\x00\x00\x00\x00\x00\x10", 9);
	pkt_raw(&p, 2, "\xfc\xff\xff", 3);
	pkt_raw(&p, 3, "\x05", 1);
	feed_pb(f, DIR_TO_CLIENT, &p);
	f->ops->expire(f->conn, &f->ctx);
	/* PREPARE_OK announcing 65535 params and columns, EXECUTE with short data */
	pkt_raw(&p, 0, "\x16select ?", 9);
	feed_pb(f, DIR_TO_SERVER, &p);
	pkt_raw(&p, 1, "\x00\x09\x00\x00\x00\xff\xff\xff\xff\x00\x00\x00", 12);
	feed_pb(f, DIR_TO_CLIENT, &p);
	pkt_raw(&p, 0, "\x17\x09\x00\x00\x00\x00\x01\x00\x00\x00\xff", 11);
	feed_pb(f, DIR_TO_SERVER, &p);
	/* ERR and OK cut short */
	query(&p, "x");
	feed_pb(f, DIR_TO_SERVER, &p);
	pkt_raw(&p, 1, "\xff\x01", 2);
	feed_pb(f, DIR_TO_CLIENT, &p);
	f->ops->expire(f->conn, &f->ctx);
	assert_true(f->nev >= 1);
	free(p.b);
}

/* Every field of every collected event as text, for comparing runs. */
static void summary(const struct fx *f, char *out, size_t n)
{
	size_t at = 0;

	out[0] = '\0';
	for (size_t e = 0; e < f->nev; e++) {
		const struct event *ev = f->ev[e];

		at += (size_t)snprintf(
		    out + at, n - at, "#%d %llu %llu %llu %llu:", ev->status,
		    (unsigned long long)ev->start_ns, (unsigned long long)ev->end_ns,
		    (unsigned long long)ev->client_bytes, (unsigned long long)ev->server_bytes);
		for (size_t i = 0; i < ev->nfields && at < n; i++) {
			const struct ev_field *fl = &ev->fields[i];

			if (fl->type == EV_T_STR)
				at += (size_t)snprintf(out + at, n - at, " %s=%.*s", fl->key,
						       (int)fl->v.s.len, fl->v.s.p);
			else
				at += (size_t)snprintf(out + at, n - at, " %s=%llu", fl->key,
						       (unsigned long long)fl->v.u);
		}
		assert_true(at < n);
	}
}

/* Responses whose packets are all at hand are read packet after packet in one pass;
 * split anywhere they go through the general packet loop: the events are the same.
 * The conversation also covers the printf-like texts built without printf (a path
 * from the default database, an error whose message holds a NUL) and a path from the
 * SQL text replaced by the result's (MariaDB's INSERT ... RETURNING). */
static void test_whole_or_split_agree(void **state)
{
	struct fx *f = *state;
	struct pb c = {0}, s = {0};
	static char want[8192], got[8192];
	static const uint8_t err[] = "\xff\x7a\x04#42S02Table 'x.y' doesn't exist\0 and junk";
	size_t sel_at, sel_end;

	query(&c, "use shop");
	query(&c, "insert into orders values (1)");
	query(&c, "SELECT a, b FROM db.t");
	query(&c, "update x.y set a = 1");
	query(&c, "insert into a.b values (2) returning a, b");
	ok_pkt(&s, 1, 0, 0, 0, 2);
	ok_pkt(&s, 1, 0, 1, 9, 2);
	sel_at = s.len;
	select_response(&s, false, 3, rows3);
	sel_end = s.len;
	pkt_raw(&s, 1, err, sizeof(err) - 1);
	select_response(&s, true, 1, rows3);
	for (int send = 0; send < 2; send++) {
		f->cfg.send_response = f->cfg.send_request = send;
		/* reference: USE answered before the INSERT is read (its path uses the
		 * database), the rest pipelined and answered in one piece */
		feed_n(f, DIR_TO_SERVER, c.b, 13);
		feed_n(f, DIR_TO_CLIENT, s.b, 11);
		feed_n(f, DIR_TO_SERVER, c.b + 13, c.len - 13);
		feed_n(f, DIR_TO_CLIENT, s.b + 11, s.len - 11);
		assert_int_equal(f->nev, 5);
		assert_str(f->ev[1], "path", "shop.orders");
		assert_str(f->ev[2], "path", "db.t");
		assert_uint(f->ev[2], "mysql.num_rows", 3);
		assert_int_equal(f->ev[2]->server_bytes, sel_end - sel_at);
		assert_str(f->ev[3], "path", "x.y");
		assert_str(f->ev[3], "mysql.error_message", "42S02: Table 'x.y' doesn't exist");
		assert_str(f->ev[4], "path", "db.t");
		summary(f, want, sizeof(want));
		assert_non_null(strstr(want, " path=db.t"));
		assert_null(strstr(want, "path=a.b"));
		fx_close(f);
		fx_drop_events(f);
		for (size_t k = 12; k < s.len; k++) {
			feed_n(f, DIR_TO_SERVER, c.b, 13);
			feed_n(f, DIR_TO_CLIENT, s.b, 11);
			feed_n(f, DIR_TO_SERVER, c.b + 13, c.len - 13);
			feed_n(f, DIR_TO_CLIENT, s.b + 11, k - 11);
			feed_n(f, DIR_TO_CLIENT, s.b + k, s.len - k);
			summary(f, got, sizeof(got));
			assert_string_equal(got, want);
			fx_close(f);
			fx_drop_events(f);
		}
	}
	free(c.b);
	free(s.b);
}

/* Every prefix of a conversation, then expire + free: no crash, no leak. */
static void test_truncation_every_byte(void **state)
{
	struct fx *f = *state;
	struct pb c = {0}, s = {0};

	f->cfg.send_response = f->cfg.send_request = true;
	pkt_raw(&c, 0, "\x16select ? from t", 16);
	pkt_raw(&c, 0,
		"\x17\x01\x00\x00\x00\x00\x01\x00\x00\x00\x00\x01\x08\x00\x2a\x00\x00\x00\x00\x00"
		"\x00\x00",
		22);
	query(&c, "select a, b from db.t");
	pkt_raw(&s, 1, "\x00\x01\x00\x00\x00\x01\x00\x01\x00\x00\x00\x00", 12);
	coldef(&s, 2, "", "", "?", 8, 0);
	eof_pkt(&s, 3, 2);
	coldef(&s, 4, "d", "t", "c", 8, 0);
	eof_pkt(&s, 5, 2);
	pkt_raw(&s, 1, "\x01", 1);
	coldef(&s, 2, "d", "t", "c", 8, 0);
	eof_pkt(&s, 3, 2);
	pkt_raw(&s, 4, "\x00\x00\x07\x00\x00\x00\x00\x00\x00\x00", 10);
	eof_pkt(&s, 5, 2);
	select_response(&s, true, 3, rows3);
	for (size_t k = 0; k <= s.len; k++) {
		fx_open(f);
		feed_n(f, DIR_TO_SERVER, c.b, c.len);
		if (k)
			feed_n(f, DIR_TO_CLIENT, s.b, k);
		f->ops->expire(f->conn, &f->ctx);
		f->ops->conn_free(f->conn);
		f->conn = NULL;
		f->tlen[0] = f->tlen[1] = 0;
		for (size_t i = 0; i < f->nev; i++)
			ev_pool_put(f->ev[i]);
		f->nev = 0;
	}
	/* the whole conversation: three transactions */
	feed_n(f, DIR_TO_SERVER, c.b, c.len);
	feed_n(f, DIR_TO_CLIENT, s.b, s.len);
	assert_int_equal(f->nev, 3);
	assert_str(f->ev[1], "response", "c\n7\n");
	free(c.b);
	free(s.b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_query_ok, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_err_packet, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_resultset_classic, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_resultset_deprecate_eof_detected, fx_setup,
					    fx_teardown),
	    cmocka_unit_test_setup_teardown(test_handshake_deprecate_eof, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_tls_and_compression_ignored, fx_setup,
					    fx_teardown),
	    cmocka_unit_test_setup_teardown(test_compressed_detected_midstream, fx_setup,
					    fx_teardown),
	    cmocka_unit_test_setup_teardown(test_prepare_execute, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_metadata_cache_remembered, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_seq_mismatch_counted, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_unmatched_both_ways, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_timeout_and_pending_cap, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_commands, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_all_commands, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_row_limits, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_message_caps, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_16mib_packets, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_gaps, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_hostile, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_truncation_every_byte, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_whole_or_split_agree, fx_setup, fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
