/* test_redis.c — the Redis parser (net/proto/redis.c) through the sink seam: RESP2
 * and RESP3 types, inline commands, pipelining, pub/sub and MONITOR, errors,
 * unmatched halves, limits, hostile input, streaming of large replies, caps. */
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

extern const struct proto_ops redis_proto;

#define MAX_EVENTS 64
#include "parser_fixture.h"

static int fx_setup_pool(void **state, size_t pool_events)
{
	struct fx *f = fx_new(&redis_proto, pool_events, 6379);

	fx_set_u(f, "max_return_value", 1024);
	fx_set_u(f, "max_query", 1024);
	fx_set_u(f, "max_line_bytes", 65536);
	fx_set_u(f, "max_depth", 16);
	fx_set_u(f, "max_elements", 1u << 20);
	fx_set_u(f, "max_bulk_bytes", 512u << 20);
	*state = f;
	return 0;
}

static int fx_setup(void **state)
{
	return fx_setup_pool(state, 96);
}

static int fx_setup_small_pool(void **state)
{
	return fx_setup_pool(state, 2);
}

/* One request, one reply: the return value (or error) rendered. */
static struct event *txn(struct fx *f, const char *req, const char *resp)
{
	size_t before = f->nev;

	assert_int_equal(feed(f, DIR_TO_SERVER, req), PARSE_OK);
	f->ctx.ts += NS_PER_MS;
	assert_int_equal(feed(f, DIR_TO_CLIENT, resp), PARSE_OK);
	f->ctx.ts += NS_PER_MS;
	assert_int_equal(f->nev, before + 1);
	return f->ev[before];
}

static void assert_rv(struct fx *f, const char *resp, const char *want)
{
	struct event *ev = txn(f, "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", resp);

	assert_int_equal(ev->status, EV_STATUS_OK);
	assert_str(ev, "redis.return_value", want);
	assert_null(ev_find(ev, "redis.error"));
}

/* ---- Packetbeat's session: SET / GET / LLEN error ---------------------------------- */

static const char set_req[] = "*3\r\n$3\r\nset\r\n$4\r\nkey3\r\n$2\r\nme\r\n";
static const char llen_err[] = "-ERR Operation against a key holding the wrong kind of value\r\n";

static void test_session(void **state)
{
	struct fx *f = *state;
	struct event *ev;

	assert_int_equal(feed(f, DIR_TO_SERVER, set_req), PARSE_OK);
	f->ctx.ts = T0 + 3 * NS_PER_MS;
	assert_int_equal(feed(f, DIR_TO_CLIENT, "+OK\r\n"), PARSE_OK);
	assert_int_equal(f->nev, 1);
	ev = f->ev[0];
	assert_string_equal(ev->dataset, "redis");
	assert_int_equal(ev->status, EV_STATUS_OK);
	assert_int_equal(ev->start_ns, T0);
	assert_int_equal(ev->end_ns, T0 + 3 * NS_PER_MS);
	assert_true(ev->has_client_bytes && ev->has_server_bytes);
	assert_int_equal(ev->client_bytes, strlen(set_req));
	assert_int_equal(ev->server_bytes, 5);
	assert_str(ev, "method", "SET");
	assert_str(ev, "resource", "key3");
	assert_str(ev, "query", "set key3 me");
	assert_str(ev, "redis.return_value", "OK");
	assert_str(ev, "event.action", "redis.set");
	assert_null(ev_find(ev, "request"));
	assert_null(ev_find(ev, "response"));
	assert_null(ev_find(ev, "error.message"));

	ev = txn(f, "*2\r\n$3\r\nget\r\n$4\r\nkey3\r\n", "$2\r\nme\r\n");
	assert_str(ev, "method", "GET");
	assert_str(ev, "query", "get key3");
	assert_str(ev, "redis.return_value", "me");
	assert_int_equal(ev->server_bytes, 8);

	ev = txn(f, "*2\r\n$4\r\nllen\r\n$4\r\nkey3\r\n", llen_err);
	assert_str(ev, "method", "LLEN");
	assert_int_equal(ev->status, EV_STATUS_ERROR);
	assert_str(ev, "redis.error",
		   "ERR Operation against a key holding the wrong kind of value");
	assert_str(ev, "event.outcome", "failure");
	assert_null(ev_find(ev, "redis.return_value"));
	assert_int_equal(metrics_get("redis.transactions"), 3);
	assert_int_equal(metrics_get("redis.messages"), 6);
}

static void test_resp2_replies(void **state)
{
	struct fx *f = *state;

	assert_rv(f, ":1\r\n", "1");
	assert_rv(f, ":-42\r\n", "-42");
	assert_rv(f, "$-1\r\n", "nil");
	assert_rv(f, "*-1\r\n", "nil");
	assert_rv(f, "*0\r\n", "[]");
	assert_rv(f, "$0\r\n\r\n", "");
	assert_rv(f, "*2\r\n$1\r\na\r\n$1\r\nb\r\n", "[a, b]");
	assert_rv(f, "*3\r\n$1\r\na\r\n*2\r\n:1\r\n:2\r\n$-1\r\n", "[a, [1, 2], nil]");
	assert_rv(f, "*2\r\n*0\r\n*1\r\n*0\r\n", "[[], [[]]]");
	/* an error inside an array (EXEC) does not make the transaction an error */
	assert_rv(f, "*2\r\n+OK\r\n-ERR x\r\n", "[OK, ERR x]");
	/* binary bulk content is kept as bytes (the encoder makes it valid UTF-8) */
	assert_rv(f, "$4\r\na\r\nb\r\n", "a\r\nb");
}

static void test_resp3_replies(void **state)
{
	struct fx *f = *state;
	struct event *ev;

	ev = txn(f, "*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n",
		 "%3\r\n$6\r\nserver\r\n$5\r\nredis\r\n$5\r\nproto\r\n:3\r\n"
		 "$7\r\nmodules\r\n*0\r\n");
	assert_str(ev, "method", "HELLO");
	assert_str(ev, "resource", "3");
	assert_str(ev, "redis.return_value", "{server: redis, proto: 3, modules: []}");
	assert_rv(f, "_\r\n", "nil");
	assert_rv(f, "#t\r\n", "true");
	assert_rv(f, "#f\r\n", "false");
	assert_rv(f, ",3.14\r\n", "3.14");
	assert_rv(f, ",inf\r\n", "inf");
	assert_rv(f, "(3492890328409238509324850943850943825024385\r\n",
		  "3492890328409238509324850943850943825024385");
	assert_rv(f, "=15\r\ntxt:Some string\r\n", "Some string");
	assert_rv(f, "=2\r\nab\r\n", "ab");
	assert_rv(f, "~2\r\n+a\r\n+b\r\n", "[a, b]");
	assert_rv(f, "%0\r\n", "{}");
	assert_rv(f, "%1\r\n+k\r\n*2\r\n:1\r\n%1\r\n+x\r\n_\r\n", "{k: [1, {x: nil}]}");
	/* attributes describe the value that follows and are not shown */
	assert_rv(f, "|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.19\r\n*2\r\n:2\r\n:3\r\n",
		  "[2, 3]");
	assert_rv(f, "*2\r\n:1\r\n|1\r\n+ttl\r\n:3600\r\n:2\r\n", "[1, 2]");
	assert_rv(f, "|0\r\n+OK\r\n", "OK");

	ev = txn(f, "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", "!21\r\nSYNTAX invalid syntax\r\n");
	assert_int_equal(ev->status, EV_STATUS_ERROR);
	assert_str(ev, "redis.error", "SYNTAX invalid syntax");
}

static void test_inline_commands(void **state)
{
	struct fx *f = *state;
	struct event *ev;

	ev = txn(f, "PING\r\n", "+PONG\r\n");
	assert_str(ev, "method", "PING");
	assert_str(ev, "query", "PING");
	assert_null(ev_find(ev, "resource"));
	assert_int_equal(ev->client_bytes, 6);
	/* bare LF, extra blanks, empty lines before (ignored by redis-server too) */
	ev = txn(f, "\r\n\n  set   a\tb\n", "+OK\r\n");
	assert_str(ev, "method", "SET");
	assert_str(ev, "resource", "a");
	assert_str(ev, "query", "set a b");
	assert_int_equal(ev->client_bytes, strlen("  set   a\tb\n"));
	ev = txn(f, "set k \"hello world\" 'x y'\r\n", "+OK\r\n");
	assert_str(ev, "query", "set k hello world x y");
	assert_str(ev, "resource", "k");
	/* "*0" / "*-1" requests get no reply: no transaction */
	assert_int_equal(feed(f, DIR_TO_SERVER, "*0\r\n*-1\r\n"), PARSE_OK);
	ev = txn(f, "*1\r\n$4\r\nPING\r\n", "+PONG\r\n");
	assert_str(ev, "method", "PING");
	assert_int_equal(f->nev, 4);
}

static void test_two_word_commands(void **state)
{
	struct fx *f = *state;
	struct event *ev;

	ev = txn(f, "*3\r\n$6\r\nconfig\r\n$3\r\nget\r\n$9\r\nmaxmemory\r\n",
		 "*2\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n");
	assert_str(ev, "method", "CONFIG GET");
	assert_str(ev, "resource", "maxmemory");
	assert_str(ev, "event.action", "redis.config get");
	assert_str(ev, "redis.return_value", "[maxmemory, 0]");
	ev = txn(f, "*1\r\n$6\r\nCONFIG\r\n", "-ERR wrong number of arguments\r\n");
	assert_str(ev, "method", "CONFIG");
	ev = txn(f, "*2\r\n$6\r\nobject\r\n$8\r\nencoding\r\n", "$-1\r\n");
	assert_str(ev, "method", "OBJECT");
	assert_str(ev, "resource", "encoding");
}

static void test_pipelining(void **state)
{
	struct fx *f = *state;

	assert_int_equal(feed(f, DIR_TO_SERVER,
			      "*3\r\n$5\r\nlpush\r\n$4\r\ntest\r\n$5\r\nhello\r\n"
			      "*2\r\n$4\r\nllen\r\n$4\r\ntest\r\n"
			      "PING\r\n"
			      "*3\r\n$6\r\nlindex\r\n$4\r\ntest\r\n$1\r\n3\r\n"),
			 PARSE_OK);
	assert_int_equal(f->nev, 0);
	f->ctx.ts = T0 + 5 * NS_PER_MS;
	assert_int_equal(feed(f, DIR_TO_CLIENT, ":1\r\n:1\r\n+PONG\r\n$-1\r\n"), PARSE_OK);
	assert_int_equal(f->nev, 4);
	assert_str(f->ev[0], "method", "LPUSH");
	assert_str(f->ev[0], "redis.return_value", "1");
	assert_str(f->ev[1], "method", "LLEN");
	assert_str(f->ev[2], "redis.return_value", "PONG");
	assert_str(f->ev[3], "query", "lindex test 3");
	assert_str(f->ev[3], "redis.return_value", "nil");
	assert_int_equal(f->ev[0]->client_bytes, 36);
	assert_int_equal(f->ev[2]->client_bytes, 6);
	assert_int_equal(f->ev[3]->server_bytes, 5);
	for (int i = 0; i < 4; i++)
		assert_int_equal(f->ev[i]->end_ns, T0 + 5 * NS_PER_MS);
}

static void test_unmatched(void **state)
{
	struct fx *f = *state;
	struct event *ev;

	/* a reply without a request */
	assert_int_equal(feed(f, DIR_TO_CLIENT, "+OK\r\n"), PARSE_OK);
	assert_int_equal(f->nev, 1);
	ev = f->ev[0];
	assert_int_equal(ev->status, EV_STATUS_ERROR);
	assert_str(ev, "error.message", "Unmatched response");
	assert_str(ev, "redis.return_value", "OK");
	assert_int_equal(ev->start_ns, 0);
	assert_int_equal(ev->server_bytes, 5);
	assert_int_equal(metrics_get("redis.unmatched_responses"), 1);

	/* a request that times out; its late reply is unmatched too and the next
	 * request still pairs with its own reply */
	assert_int_equal(feed(f, DIR_TO_SERVER, "*2\r\n$5\r\nBLPOP\r\n$1\r\nq\r\n"), PARSE_OK);
	f->ctx.ts += 11 * NS_PER_SEC;
	assert_int_equal(feed(f, DIR_TO_SERVER, "*1\r\n$4\r\nPING\r\n"), PARSE_OK);
	assert_int_equal(f->nev, 2);
	assert_str(f->ev[1], "method", "BLPOP");
	assert_str(f->ev[1], "error.message", "Unmatched request");
	assert_int_equal(f->ev[1]->status, EV_STATUS_ERROR);
	assert_false(f->ev[1]->has_server_bytes);
	assert_int_equal(feed(f, DIR_TO_CLIENT, "*2\r\n$1\r\nq\r\n$1\r\nv\r\n+PONG\r\n"), PARSE_OK);
	assert_int_equal(f->nev, 4);
	assert_str(f->ev[2], "error.message", "Unmatched response");
	assert_str(f->ev[2], "redis.return_value", "[q, v]");
	assert_str(f->ev[3], "method", "PING");
	assert_str(f->ev[3], "redis.return_value", "PONG");
	assert_int_equal(f->ev[3]->status, EV_STATUS_OK);

	/* pending at the end of the capture */
	assert_int_equal(feed(f, DIR_TO_SERVER, "GET x\r\n"), PARSE_OK);
	fx_close(f);
	assert_int_equal(f->nev, 5);
	assert_str(f->ev[4], "error.message", "Unmatched request");
	assert_int_equal(metrics_get("redis.unmatched_requests"), 2);
}

static void test_pubsub_resp2(void **state)
{
	struct fx *f = *state;
	struct event *ev;

	ev = txn(f, "*3\r\n$9\r\nSUBSCRIBE\r\n$1\r\na\r\n$1\r\nb\r\n",
		 "*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n"
		 "*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n");
	assert_str(ev, "method", "SUBSCRIBE");
	assert_str(ev, "resource", "a");
	assert_str(ev, "redis.return_value", "[subscribe, a, 1]");
	assert_int_equal(metrics_get("redis.pushes"), 1);
	/* messages are not transactions */
	assert_int_equal(feed(f, DIR_TO_CLIENT,
			      "*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$5\r\nhello\r\n"
			      "*3\r\n$7\r\nmessage\r\n$1\r\nb\r\n$2\r\nhi\r\n"),
			 PARSE_OK);
	assert_int_equal(f->nev, 1);
	assert_int_equal(metrics_get("redis.pushes"), 3);
	/* PSUBSCRIBE, a pmessage, then PING in subscriber mode */
	ev = txn(f, "*2\r\n$10\r\nPSUBSCRIBE\r\n$2\r\nn*\r\n",
		 "*3\r\n$10\r\npsubscribe\r\n$2\r\nn*\r\n:3\r\n");
	assert_str(ev, "method", "PSUBSCRIBE");
	assert_int_equal(feed(f, DIR_TO_SERVER, "*1\r\n$4\r\nPING\r\n"), PARSE_OK);
	assert_int_equal(feed(f, DIR_TO_CLIENT,
			      "*4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$2\r\nnx\r\n$1\r\n1\r\n"
			      "*2\r\n$4\r\npong\r\n$0\r\n\r\n"),
			 PARSE_OK);
	assert_int_equal(f->nev, 3);
	assert_str(f->ev[2], "method", "PING");
	assert_str(f->ev[2], "redis.return_value", "[pong, ]");
	/* UNSUBSCRIBE without channels: one reply per channel, the first pairs */
	ev = txn(f, "UNSUBSCRIBE\r\n",
		 "*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:2\r\n"
		 "*3\r\n$11\r\nunsubscribe\r\n$1\r\nb\r\n:1\r\n");
	assert_str(ev, "method", "UNSUBSCRIBE");
	assert_str(ev, "redis.return_value", "[unsubscribe, a, 2]");
	ev = txn(f, "PUNSUBSCRIBE\r\n", "*3\r\n$12\r\npunsubscribe\r\n$2\r\nn*\r\n:0\r\n");
	assert_str(ev, "method", "PUNSUBSCRIBE");
	/* out of subscriber mode: an array that starts with "message" is a reply */
	ev = txn(f, "*4\r\n$6\r\nLRANGE\r\n$1\r\nl\r\n$1\r\n0\r\n$2\r\n-1\r\n",
		 "*3\r\n$7\r\nmessage\r\n$1\r\nx\r\n$1\r\ny\r\n");
	assert_str(ev, "method", "LRANGE");
	assert_str(ev, "redis.return_value", "[message, x, y]");
	assert_int_equal(metrics_get("redis.pushes"), 5);
	assert_int_equal(metrics_get("redis.unmatched_responses"), 0);
}

static void test_pubsub_resp3(void **state)
{
	struct fx *f = *state;
	struct event *ev;

	txn(f, "HELLO 3\r\n", "%1\r\n$5\r\nproto\r\n:3\r\n");
	ev = txn(f, "*2\r\n$9\r\nSUBSCRIBE\r\n$2\r\nch\r\n",
		 ">3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n");
	assert_str(ev, "method", "SUBSCRIBE");
	assert_str(ev, "redis.return_value", "[subscribe, ch, 1]");
	/* pushes interleaved with a normal reply (RESP3 allows commands) */
	assert_int_equal(feed(f, DIR_TO_SERVER, "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"), PARSE_OK);
	assert_int_equal(feed(f, DIR_TO_CLIENT,
			      ">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n"
			      "$1\r\nv\r\n"
			      ">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n"),
			 PARSE_OK);
	assert_int_equal(f->nev, 3);
	assert_str(f->ev[2], "method", "GET");
	assert_str(f->ev[2], "redis.return_value", "v");
	assert_int_equal(metrics_get("redis.pushes"), 2);
	assert_int_equal(metrics_get("redis.unmatched_responses"), 0);
}

static void test_monitor(void **state)
{
	struct fx *f = *state;
	struct event *ev;

	ev = txn(f, "MONITOR\r\n", "+OK\r\n");
	assert_str(ev, "method", "MONITOR");
	assert_int_equal(feed(f, DIR_TO_CLIENT,
			      "+1339518083.107412 [0 127.0.0.1:60866] \"keys\" \"*\"\r\n"
			      "+1339518087.877697 [0 127.0.0.1:60866] \"dbsize\"\r\n"),
			 PARSE_OK);
	assert_int_equal(f->nev, 1);
	assert_int_equal(metrics_get("redis.monitor_lines"), 2);
	ev = txn(f, "RESET\r\n", "+RESET\r\n");
	assert_str(ev, "redis.return_value", "RESET");
	/* out of monitor mode a digit-led status is a reply again */
	assert_int_equal(feed(f, DIR_TO_CLIENT, "+123 x\r\n"), PARSE_OK);
	assert_int_equal(f->nev, 3);
	assert_str(f->ev[2], "error.message", "Unmatched response");
}

/* A big bulk reply is consumed as it arrives: never more than a line is left over,
 * and only max_return_value bytes of it are kept. */
static void test_streaming_bulk(void **state)
{
	struct fx *f = *state;
	const size_t big = 1u << 20;
	char chunk[1000], head[32];
	size_t sent = 0;
	struct event *ev;

	memset(chunk, 'x', sizeof(chunk));
	assert_int_equal(feed(f, DIR_TO_SERVER, "GET big\r\n"), PARSE_OK);
	snprintf(head, sizeof(head), "$%zu\r\n", big);
	assert_int_equal(feed(f, DIR_TO_CLIENT, "$10"), PARSE_NEED_MORE);
	assert_int_equal(f->tlen[DIR_TO_CLIENT], 3);
	assert_int_equal(feed(f, DIR_TO_CLIENT, head + 3), PARSE_OK);
	while (sent < big) {
		size_t n = big - sent < sizeof(chunk) ? big - sent : sizeof(chunk);

		assert_int_equal(feed_n(f, DIR_TO_CLIENT, chunk, n), PARSE_OK);
		assert_int_equal(f->tlen[DIR_TO_CLIENT], 0);
		sent += n;
	}
	assert_int_equal(f->nev, 0);
	assert_int_equal(feed(f, DIR_TO_CLIENT, "\r"), PARSE_OK);
	assert_int_equal(feed(f, DIR_TO_CLIENT, "\n"), PARSE_OK);
	assert_int_equal(f->nev, 1);
	ev = f->ev[0];
	assert_int_equal(ev->server_bytes, strlen(head) + big + 2);
	assert_int_equal(field(ev, "redis.return_value")->v.s.len, 1024);
}

static void test_caps(void **state)
{
	struct fx *f = *state;
	struct event *ev;
	char req[600], resp[600];

	f->cfg.send_request = true;
	f->cfg.send_response = true;
	f->cfg.max_message_size = 100;
	fx_set_u(f, "max_return_value", 20);
	fx_set_u(f, "max_query", 64);
	memset(req, 0, sizeof(req));
	memcpy(req, "SET k ", 6);
	memset(req + 6, 'v', 300);
	memcpy(req + 306, "\r\n", 2);
	snprintf(resp, sizeof(resp), "$200\r\n%0200d\r\n", 7);
	ev = txn(f, req, resp);
	assert_int_equal(field(ev, "query")->v.s.len, 64);
	assert_int_equal(field(ev, "request")->v.s.len, 100);
	assert_int_equal(field(ev, "redis.return_value")->v.s.len, 20);
	assert_int_equal(field(ev, "response")->v.s.len, 100);
	assert_str(ev, "resource", "k");
	assert_int_equal(ev->client_bytes, 308);
	assert_int_equal(ev->server_bytes, 208);
	ev = txn(f, "*2\r\n$4\r\nLLEN\r\n$1\r\nk\r\n", llen_err);
	assert_str(ev, "request", "LLEN k");
	assert_str(ev, "response", "ERR Operation against a key holding the wrong kind of value");
	assert_str(ev, "redis.error", "ERR Operation agains");
}

static void expect_error(struct fx *f, enum proto_dir dir, const char *s, bool limit)
{
	uint64_t before = metrics_get("redis.limit_exceeded");

	fx_close(f);
	if (dir == DIR_TO_CLIENT) /* sync the reply direction first */
		assert_int_equal(feed(f, DIR_TO_CLIENT, "+OK\r\n"), PARSE_OK);
	assert_int_equal(feed(f, dir, s), PARSE_ERROR);
	assert_int_equal(metrics_get("redis.limit_exceeded"), before + (limit ? 1 : 0));
	fx_close(f);
}

static void test_limits(void **state)
{
	struct fx *f = *state;
	char *line;

	fx_set_u(f, "max_line_bytes", 64);
	fx_set_u(f, "max_depth", 3);
	fx_set_u(f, "max_elements", 100);
	fx_set_u(f, "max_bulk_bytes", 1000);
	line = malloc(200);
	memset(line, 'a', 199);
	line[199] = '\0';
	line[0] = '+';
	/* an incomplete over-long line, and a complete one */
	expect_error(f, DIR_TO_CLIENT, line, true);
	line[150] = '\n';
	expect_error(f, DIR_TO_CLIENT, line, true);
	free(line);
	expect_error(f, DIR_TO_CLIENT, "*1\r\n*1\r\n*1\r\n*1\r\n", true);
	expect_error(f, DIR_TO_CLIENT, "*101\r\n", true);
	expect_error(f, DIR_TO_CLIENT, "%101\r\n", true);
	expect_error(f, DIR_TO_SERVER, "*2147483647\r\n", true);
	expect_error(f, DIR_TO_CLIENT, "$1001\r\n", true);
	expect_error(f, DIR_TO_SERVER, "*1\r\n$99999999999999999999\r\n", false);
	/* at the limits it works */
	fx_close(f);
	fx_drop_events(f);
	assert_int_equal(feed(f, DIR_TO_SERVER, "*1\r\n$4\r\nPING\r\n"), PARSE_OK);
	assert_int_equal(feed(f, DIR_TO_CLIENT, "*1\r\n*1\r\n*100\r\n"), PARSE_OK);
	for (int i = 0; i < 99; i++)
		assert_int_equal(feed(f, DIR_TO_CLIENT, ":1\r\n"), PARSE_OK);
	assert_int_equal(f->nev, 0);
	assert_int_equal(feed(f, DIR_TO_CLIENT, "$1000\r\n"), PARSE_OK);
	assert_int_equal(f->nev, 0);
	assert_int_equal(f->tlen[DIR_TO_CLIENT], 0);
}

static void test_malformed(void **state)
{
	struct fx *f = *state;

	expect_error(f, DIR_TO_CLIENT, "$abc\r\n", false);
	expect_error(f, DIR_TO_CLIENT, "$-2\r\n", false);
	expect_error(f, DIR_TO_CLIENT, "$\r\n", false);
	expect_error(f, DIR_TO_CLIENT, "*-2\r\n", false);
	expect_error(f, DIR_TO_CLIENT, "%-1\r\n", false);
	expect_error(f, DIR_TO_CLIENT, "!-1\r\n", false);
	expect_error(f, DIR_TO_CLIENT, "$2\r\nabXY", false);
	expect_error(f, DIR_TO_CLIENT, "?what\r\n", false);
	expect_error(f, DIR_TO_CLIENT, "\r\n", false);
	expect_error(f, DIR_TO_CLIENT, "*1\r\n\r\n", false);
	expect_error(f, DIR_TO_SERVER, "*1\r\n$3\r\nabcd\r\n", false);
	expect_error(f, DIR_TO_SERVER, "*x\r\n", false);
	expect_error(f, DIR_TO_SERVER, "*1\r\n?\r\n", false);
	/* RESP3 streamed strings are not supported */
	expect_error(f, DIR_TO_CLIENT, "$?\r\n", false);
	assert_int_equal(ev_pool_live(f->pool), f->nev);
}

/* Feed s byte by byte (every element streams through the general path) until the
 * parser reports an error; returns the last status. */
static enum parse_status feed_bytewise(struct fx *f, enum proto_dir dir, const char *s)
{
	enum parse_status st = PARSE_OK;

	for (size_t i = 0; s[i] && st != PARSE_ERROR; i++)
		st = feed_n(f, dir, s + i, 1);
	return st;
}

/* Arguments taken whole (length line, bytes and CR LF in one step) and the same
 * arguments streamed byte by byte give the same events; what the one step leaves to
 * the general path (an LF-only line, 19 digits, a null, a bad terminator, a length
 * over the limit) is decided alike both ways. */
static void test_whole_or_streamed_args(void **state)
{
	struct fx *f = *state;
	static const char *const reqs[] = {
	    "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n",         /* an empty argument */
	    "*2\r\n$3\nGET\r\n$1\r\nk\r\n",                     /* a line ended by LF alone */
	    "*2\r\n$3\r\nGET\r\n$01\r\nk\r\n",                  /* a leading zero */
	    "*3\r\n$4\r\nECHO\r\n$-1\r\n*1\r\n$1\r\nx\r\n",     /* null, nested */
	    "*2\r\n$3\r\nGET\r\n$0000000000000000001\r\nk\r\n", /* 19 digits */
	};
	static const char *const wants[] = {"SET k |SET", "GET k|GET", "GET k|GET",
					    "ECHO nil [x]|ECHO", "GET k|GET"};
	char got[128], big[1100];

	for (size_t r = 0; r < sizeof(reqs) / sizeof(reqs[0]); r++) {
		for (int streamed = 0; streamed < 2; streamed++) {
			const struct ev_field *q, *m;

			if (streamed)
				assert_int_equal(feed_bytewise(f, DIR_TO_SERVER, reqs[r]),
						 PARSE_OK);
			else
				assert_int_equal(feed(f, DIR_TO_SERVER, reqs[r]), PARSE_OK);
			assert_int_equal(feed(f, DIR_TO_CLIENT, "+OK\r\n"), PARSE_OK);
			assert_int_equal(f->nev, 1);
			q = field(f->ev[0], "query");
			m = field(f->ev[0], "method");
			snprintf(got, sizeof(got), "%.*s|%.*s", (int)q->v.s.len, q->v.s.p,
				 (int)m->v.s.len, m->v.s.p);
			assert_string_equal(got, wants[r]);
			assert_int_equal(f->ev[0]->client_bytes, strlen(reqs[r]));
			fx_close(f);
			fx_drop_events(f);
		}
	}
	fx_set_u(f, "max_bulk_bytes", 1000);
	for (int streamed = 0; streamed < 2; streamed++) {
		uint64_t limits = metrics_get("redis.limit_exceeded");
		enum parse_status (*in)(struct fx *, enum proto_dir, const char *) =
		    streamed ? feed_bytewise : feed;

		assert_int_equal(in(f, DIR_TO_SERVER, "*2\r\n$3\r\nGET\r\n$1\r\nkX\r\n"),
				 PARSE_ERROR);
		fx_close(f);
		assert_int_equal(metrics_get("redis.limit_exceeded"), limits);
		assert_int_equal(in(f, DIR_TO_SERVER, "*2\r\n$3\r\nGET\r\n$1X\nk\r\n"),
				 PARSE_ERROR);
		fx_close(f);
		/* over the limit, with the whole argument at hand */
		snprintf(big, sizeof(big), "*2\r\n$3\r\nGET\r\n$1001\r\n%01001d\r\n", 0);
		assert_int_equal(in(f, DIR_TO_SERVER, big), PARSE_ERROR);
		fx_close(f);
		assert_int_equal(metrics_get("redis.limit_exceeded"), limits + 1);
		assert_int_equal(in(f, DIR_TO_SERVER, "*1\r\n$1000\r\n"), PARSE_OK);
		fx_close(f);
		fx_drop_events(f);
	}
}

/* A fresh conn may start mid-stream: junk lines are skipped until one looks like a
 * message start. */
static void test_resync(void **state)
{
	struct fx *f = *state;
	struct event *ev;

	assert_int_equal(feed(f, DIR_TO_CLIENT, "llo world\r\n"), PARSE_OK);
	assert_int_equal(feed(f, DIR_TO_SERVER, "\x01\x02junk\r\n123\r\n"), PARSE_OK);
	assert_int_equal(f->nev, 0);
	ev = txn(f, "*1\r\n$4\r\nPING\r\n", "+PONG\r\n");
	assert_str(ev, "method", "PING");
	assert_int_equal(metrics_get("redis.resync_skipped_bytes"), 11 + 13);
}

static void test_gap(void **state)
{
	struct fx *f = *state;
	struct proto_ctx *ctx = &f->ctx;
	struct event *ev;

	assert_int_equal(feed(f, DIR_TO_SERVER, "GET k\r\n"), PARSE_OK);
	assert_int_equal(feed(f, DIR_TO_CLIENT, "$10\r\nab"), PARSE_OK);
	assert_int_equal(f->ops->gap(f->conn, DIR_TO_CLIENT, 5, ctx), 0);
	assert_int_equal(feed(f, DIR_TO_CLIENT, "xyz\r\n"), PARSE_OK);
	assert_int_equal(f->nev, 1);
	ev = f->ev[0];
	assert_str(ev, "error.message", "Packet loss while capturing the response");
	assert_int_equal(ev->status, EV_STATUS_OK);
	assert_int_equal(ev->server_bytes, 17);
	assert_str(ev, "redis.return_value", "ab");
	/* a gap in a bulk longer than what is left, or between messages: give up */
	assert_int_equal(feed(f, DIR_TO_CLIENT, "$3\r\na"), PARSE_OK);
	assert_int_equal(f->ops->gap(f->conn, DIR_TO_CLIENT, 5, ctx), -1);
	assert_int_equal(f->ops->gap(f->conn, DIR_TO_SERVER, 1, ctx), -1);
}

static void test_pending_cap_keeps_order(void **state)
{
	struct fx *f = *state;

	f->cfg.max_pending = 2;
	assert_int_equal(feed(f, DIR_TO_SERVER, "GET a\r\nGET b\r\nGET c\r\nGET d\r\n"), PARSE_OK);
	assert_int_equal(metrics_get("redis.limit_exceeded"), 1);
	assert_int_equal(metrics_get("redis.lost_requests"), 2);
	assert_int_equal(feed(f, DIR_TO_CLIENT, "$1\r\nA\r\n$1\r\nB\r\n"), PARSE_OK);
	/* a request sent while replies for lost ones are owed is lost too */
	assert_int_equal(feed(f, DIR_TO_SERVER, "GET e\r\n"), PARSE_OK);
	assert_int_equal(feed(f, DIR_TO_CLIENT, "$1\r\nC\r\n$1\r\nD\r\n$1\r\nE\r\n"), PARSE_OK);
	assert_int_equal(f->nev, 2);
	assert_str(f->ev[0], "resource", "a");
	assert_str(f->ev[0], "redis.return_value", "A");
	assert_str(f->ev[1], "resource", "b");
	assert_str(f->ev[1], "redis.return_value", "B");
	/* drained: pairing resumes */
	txn(f, "GET f\r\n", "$1\r\nF\r\n");
	assert_str(f->ev[2], "resource", "f");
	assert_str(f->ev[2], "redis.return_value", "F");
	assert_int_equal(metrics_get("redis.unmatched_responses"), 0);
}

static void test_pool_exhausted(void **state)
{
	struct fx *f = *state;

	assert_int_equal(feed(f, DIR_TO_SERVER, "GET a\r\nGET b\r\nGET c\r\n"), PARSE_OK);
	assert_int_equal(metrics_get("redis.pool_exhausted"), 1);
	assert_int_equal(feed(f, DIR_TO_CLIENT, "$1\r\nA\r\n$1\r\nB\r\n$1\r\nC\r\n"), PARSE_OK);
	assert_int_equal(f->nev, 2);
	assert_str(f->ev[1], "redis.return_value", "B");
}

/* Every split point of a pipelined exchange gives the same events; every prefix
 * of it is handled without a crash or a leak. */
static void test_every_split(void **state)
{
	struct fx *f = *state;
	static const char req[] = "*3\r\n$3\r\nset\r\n$4\r\nkey3\r\n$2\r\nme\r\n"
				  "HELLO 3\r\n"
				  "*2\r\n$4\r\nllen\r\n$4\r\nkey3\r\n";
	static const char resp[] = "+OK\r\n"
				   "%2\r\n$6\r\nserver\r\n$5\r\nredis\r\n|1\r\n+a\r\n:1\r\n"
				   "$5\r\nproto\r\n=7\r\ntxt:abc\r\n"
				   "-ERR wrong kind\r\n";
	char want[3][128];
	size_t nreq = strlen(req), nresp = strlen(resp);

	assert_int_equal(feed(f, DIR_TO_SERVER, req), PARSE_OK);
	assert_int_equal(feed(f, DIR_TO_CLIENT, resp), PARSE_OK);
	assert_int_equal(f->nev, 3);
	for (int i = 0; i < 3; i++) {
		const struct ev_field *fl =
		    ev_find(f->ev[i], i == 2 ? "redis.error" : "redis.return_value");

		assert_non_null(fl);
		snprintf(want[i], sizeof(want[i]), "%.*s|%" PRIu64 "|%" PRIu64, (int)fl->v.s.len,
			 fl->v.s.p, f->ev[i]->client_bytes, f->ev[i]->server_bytes);
	}
	assert_string_equal(want[1], "{server: redis, proto: abc}|9|63");
	fx_close(f);
	fx_drop_events(f);
	for (size_t k = 0; k <= nreq + nresp; k++) {
		if (k < nreq) {
			feed_n(f, DIR_TO_SERVER, req, k);
			feed_n(f, DIR_TO_SERVER, req + k, nreq - k);
			feed(f, DIR_TO_CLIENT, resp);
		} else {
			feed(f, DIR_TO_SERVER, req);
			feed_n(f, DIR_TO_CLIENT, resp, k - nreq);
			feed_n(f, DIR_TO_CLIENT, resp + (k - nreq), nresp - (k - nreq));
		}
		assert_int_equal(f->nev, 3);
		for (int i = 0; i < 3; i++) {
			const struct ev_field *fl =
			    ev_find(f->ev[i], i == 2 ? "redis.error" : "redis.return_value");
			char got[128];

			snprintf(got, sizeof(got), "%.*s|%" PRIu64 "|%" PRIu64, (int)fl->v.s.len,
				 fl->v.s.p, f->ev[i]->client_bytes, f->ev[i]->server_bytes);
			assert_string_equal(got, want[i]);
		}
		fx_close(f);
		fx_drop_events(f);
	}
	/* truncated at every byte: no crash, pending requests flushed, no leak */
	for (size_t k = 0; k <= nresp; k++) {
		feed(f, DIR_TO_SERVER, req);
		feed_n(f, DIR_TO_CLIENT, resp, k);
		fx_close(f);
		assert_int_equal(f->nev, 3);
		fx_drop_events(f);
	}
	assert_int_equal(ev_pool_live(f->pool), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_session, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_resp2_replies, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_resp3_replies, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_inline_commands, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_two_word_commands, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_pipelining, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_unmatched, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_pubsub_resp2, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_pubsub_resp3, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_monitor, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_streaming_bulk, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_caps, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_limits, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_malformed, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_resync, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_gap, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_pending_cap_keeps_order, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_pool_exhausted, fx_setup_small_pool, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_every_split, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_whole_or_streamed_args, fx_setup, fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
