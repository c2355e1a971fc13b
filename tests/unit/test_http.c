/* test_http.c — the HTTP/1.x parser (net/proto/http.c) through the sink seam:
 * fields, framing, transactions, limits, redaction, body export, gaps. */
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

#define MAX_EVENTS 32
#include "parser_fixture.h"

static int fx_setup(void **state)
{
	struct fx *f = fx_new(proto_find("http"), 64, 80);

	fx_set(f, "max_header_bytes", "65536");
	fx_set(f, "max_line_bytes", "8192");
	fx_set(f, "max_headers", "128");
	*state = f;
	return 0;
}

/* No string field of any event contains `needle`. */
static void assert_nowhere(struct fx *f, const char *needle)
{
	for (size_t i = 0; i < f->nev; i++)
		for (size_t k = 0; k < f->ev[i]->nfields; k++) {
			const struct ev_field *fl = &f->ev[i]->fields[k];

			if (fl->type == EV_T_STR &&
			    memmem(fl->v.s.p, fl->v.s.len, needle, strlen(needle)))
				fail_msg("\"%s\" found in %s", needle, fl->key);
		}
}

static const char get_req[] = "GET /dir/page.html?q=1 HTTP/1.1\r\n"
			      "Host: www.example.com\r\n"
			      "User-Agent: curl/7.37.1\r\n"
			      "Referer: http://ref/\r\n"
			      "\r\n";
static const char ok_resp[] = "HTTP/1.1 200 OK\r\n"
			      "Content-Type: text/html\r\n"
			      "Content-Length: 5\r\n"
			      "\r\n"
			      "hello";

static void test_get_fields(void **state)
{
	struct fx *f = *state;
	struct event *ev;

	assert_int_equal(feed(f, DIR_TO_SERVER, get_req), PARSE_OK);
	f->ctx.ts = T0 + 18 * NS_PER_MS;
	assert_int_equal(feed(f, DIR_TO_CLIENT, ok_resp), PARSE_OK);
	assert_int_equal(f->nev, 1);
	ev = f->ev[0];
	assert_string_equal(ev->dataset, "http");
	assert_int_equal(ev->status, EV_STATUS_OK);
	assert_int_equal(ev->start_ns, T0);
	assert_int_equal(ev->end_ns, T0 + 18 * NS_PER_MS);
	assert_int_equal(ev->client_bytes, strlen(get_req));
	assert_int_equal(ev->server_bytes, strlen(ok_resp));
	assert_str(ev, "method", "GET");
	assert_str(ev, "query", "GET /dir/page.html");
	assert_str(ev, "path", "/dir/page.html");
	assert_str(ev, "http.version", "1.1");
	assert_str(ev, "http.request.method", "GET");
	assert_str(ev, "url.full", "http://www.example.com/dir/page.html?q=1");
	assert_str(ev, "url.domain", "www.example.com");
	assert_str(ev, "url.query", "q=1");
	assert_str(ev, "url.extension", "html");
	assert_null(ev_find(ev, "url.port"));
	assert_str(ev, "destination.domain", "www.example.com");
	assert_str(ev, "server.domain", "www.example.com");
	assert_str(ev, "user_agent.original", "curl/7.37.1");
	assert_str(ev, "http.request.referrer", "http://ref/");
	assert_uint(ev, "http.request.bytes", strlen(get_req));
	assert_uint(ev, "http.request.headers.content-length", 0);
	assert_null(ev_find(ev, "http.request.body.bytes"));
	assert_uint(ev, "http.response.status_code", 200);
	assert_str(ev, "http.response.status_phrase", "ok");
	assert_str(ev, "http.response.headers.content-type", "text/html");
	assert_uint(ev, "http.response.headers.content-length", 5);
	assert_uint(ev, "http.response.bytes", strlen(ok_resp));
	assert_uint(ev, "http.response.body.bytes", 5);
	/* not listed in send_headers: not exported */
	assert_null(ev_find(ev, "http.request.headers.user-agent"));
	assert_null(ev_find(ev, "request"));
	assert_null(ev_find(ev, "response"));
	assert_int_equal(metrics_get("http.transactions"), 1);
	assert_int_equal(metrics_get("http.messages"), 2);
}

static void test_status_error(void **state)
{
	struct fx *f = *state;

	feed(f, DIR_TO_SERVER, "GET /x HTTP/1.1\r\nHost: h:8080\r\n\r\n");
	feed(f, DIR_TO_CLIENT, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n");
	assert_int_equal(f->nev, 1);
	assert_int_equal(f->ev[0]->status, EV_STATUS_ERROR);
	assert_str(f->ev[0], "http.response.status_phrase", "service unavailable");
	assert_uint(f->ev[0], "url.port", 8080);
	assert_str(f->ev[0], "url.full", "http://h:8080/x");
	assert_null(ev_find(f->ev[0], "error.message"));
}

static void test_incremental_no_copy(void **state)
{
	struct fx *f = *state;
	struct parse_result r;
	const char *part = "GET / HTTP/1.1\r\nHost: h\r\n";

	fx_open(f);
	/* an incomplete header block is not consumed */
	r = f->ops->parse(f->conn, DIR_TO_SERVER, (const uint8_t *)part, strlen(part), &f->ctx);
	assert_int_equal(r.status, PARSE_NEED_MORE);
	assert_int_equal(r.consumed, 0);
	/* a body is consumed as it arrives, whatever its size */
	feed(f, DIR_TO_SERVER, "GET / HTTP/1.1\r\n\r\n");
	assert_int_equal(
	    feed(f, DIR_TO_CLIENT, "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\nab"),
	    PARSE_OK);
	assert_int_equal(f->tlen[DIR_TO_CLIENT], 0);
	assert_int_equal(f->nev, 0);
	{
		static uint8_t big[99998];

		memset(big, 'x', sizeof(big));
		feed_n(f, DIR_TO_CLIENT, big, sizeof(big));
	}
	assert_int_equal(f->nev, 1);
	assert_uint(f->ev[0], "http.response.body.bytes", 100000);
	assert_null(ev_find(f->ev[0], "http.response.body.content"));
}

static void test_pipelining_and_chunked(void **state)
{
	struct fx *f = *state;

	feed(f, DIR_TO_SERVER, "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n");
	feed(f, DIR_TO_CLIENT,
	     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	     "3;ext=1\r\nabc\r\n");
	assert_int_equal(f->nev, 0);
	feed(f, DIR_TO_CLIENT,
	     "0\r\nTrailer: x\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
	assert_int_equal(f->nev, 2);
	assert_str(f->ev[0], "path", "/a");
	assert_uint(f->ev[0], "http.response.body.bytes", 3);
	assert_int_equal(f->ev[0]->status, EV_STATUS_OK);
	assert_str(f->ev[1], "path", "/b");
	assert_int_equal(f->ev[1]->status, EV_STATUS_ERROR);
}

static void test_header_limits(void **state)
{
	struct fx *f = *state;
	char req[4096];
	size_t n;

	fx_set(f, "max_header_bytes", "300");
	n = (size_t)snprintf(req, sizeof(req), "GET / HTTP/1.1\r\n");
	for (int i = 0; i < 40; i++)
		n += (size_t)snprintf(req + n, sizeof(req) - n, "X-H%d: value\r\n", i);
	assert_int_equal(feed_n(f, DIR_TO_SERVER, req, n), PARSE_ERROR);
	assert_int_equal(metrics_get("http.limit_exceeded"), 1);
}

static void test_header_count_limit(void **state)
{
	struct fx *f = *state;

	fx_set(f, "max_headers", "3");
	assert_int_equal(
	    feed(f, DIR_TO_SERVER, "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n"),
	    PARSE_ERROR);
	assert_int_equal(metrics_get("http.limit_exceeded"), 1);
}

static void test_invalid_input(void **state)
{
	struct fx *f = *state;

	/* HTTP/2 preface */
	assert_int_equal(feed(f, DIR_TO_SERVER, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), PARSE_ERROR);
	f->ops->conn_free(f->conn);
	f->conn = NULL;
	f->tlen[0] = 0;
	/* HTTP/0.9 */
	assert_int_equal(feed(f, DIR_TO_SERVER, "GET /old\r\n"), PARSE_ERROR);
	f->ops->conn_free(f->conn);
	f->conn = NULL;
	f->tlen[0] = 0;
	/* conflicting Content-Length */
	assert_int_equal(feed(f, DIR_TO_SERVER,
			      "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
			 PARSE_ERROR);
	f->ops->conn_free(f->conn);
	f->conn = NULL;
	f->tlen[0] = 0;
	/* garbage after a good message on a synced direction */
	assert_int_equal(feed(f, DIR_TO_SERVER, "GET / HTTP/1.1\r\n\r\n"), PARSE_OK);
	assert_int_equal(feed(f, DIR_TO_SERVER, "\x01\x02 nonsense\r\n\r\n"), PARSE_ERROR);
	/* a bad chunk size */
	assert_int_equal(
	    feed(f, DIR_TO_CLIENT, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
	    PARSE_ERROR);
}

static void test_hide_keywords(void **state)
{
	struct fx *f = *state;

	fx_set(f, "hide_keywords", "pass,password");
	feed(f, DIR_TO_SERVER, "GET /login?pass=secret&user=monica HTTP/1.1\r\nHost: h\r\n\r\n");
	feed(f, DIR_TO_CLIENT, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
	feed(f, DIR_TO_SERVER,
	     "POST /login HTTP/1.1\r\nHost: h\r\n"
	     "Content-Type: application/x-www-form-urlencoded\r\n"
	     "Content-Length: 33\r\n\r\nuser=monica&PassWord=secret&z=%41");
	feed(f, DIR_TO_CLIENT, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
	assert_int_equal(f->nev, 2);
	assert_str(f->ev[0], "url.query", "pass=xxxxx&user=monica");
	assert_str(f->ev[0], "url.path", "/login");
	assert_str(f->ev[1], "url.query", "PassWord=xxxxx&user=monica&z=A");
	assert_str(f->ev[1], "query", "POST /login");
	assert_nowhere(f, "secret");
}

static void test_default_keeps_params(void **state)
{
	struct fx *f = *state;

	feed(f, DIR_TO_SERVER, "GET /login?user=monica&pass=secret HTTP/1.1\r\n\r\n");
	feed(f, DIR_TO_CLIENT, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
	assert_int_equal(f->nev, 1);
	assert_str(f->ev[0], "url.query", "pass=secret&user=monica");
}

static const char auth_req[] = "GET / HTTP/1.1\r\nHost: www.example.com\r\n"
			       "Authorization: Basic c2ltcGxlc2ltb246YWJjZDEyMys=\r\n\r\n";

static void test_basic_auth_user(void **state)
{
	struct fx *f = *state;

	fx_set(f, "send_headers", "Authorization");
	feed(f, DIR_TO_SERVER, auth_req);
	feed(f, DIR_TO_CLIENT, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
	assert_int_equal(f->nev, 1);
	assert_str(f->ev[0], "user.name", "simplesimon");
	assert_str(f->ev[0], "related.user", "simplesimon");
	assert_str(f->ev[0], "http.request.headers.authorization",
		   "Basic c2ltcGxlc2ltb246YWJjZDEyMys=");
}

static void test_redact_authorization(void **state)
{
	struct fx *f = *state;
	const struct ev_field *raw;

	fx_set(f, "send_headers", "authorization");
	fx_set(f, "redact_authorization", "true");
	f->cfg.send_request = true;
	feed(f, DIR_TO_SERVER, auth_req);
	feed(f, DIR_TO_CLIENT, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
	assert_int_equal(f->nev, 1);
	assert_str(f->ev[0], "http.request.headers.authorization", "*");
	raw = field(f->ev[0], "request");
	assert_non_null(memmem(raw->v.s.p, raw->v.s.len, "Authorization:***", 17));
	assert_int_equal(raw->v.s.len, strlen(auth_req));
	assert_nowhere(f, "c2ltcGxl");
	assert_str(f->ev[0], "user.name", "simplesimon"); /* still derived */
}

static void test_include_body_for(void **state)
{
	struct fx *f = *state;

	fx_set(f, "include_body_for", "text/html");
	f->cfg.send_response = true;
	feed(f, DIR_TO_SERVER, get_req);
	feed(f, DIR_TO_CLIENT, ok_resp);
	feed(f, DIR_TO_SERVER, get_req);
	feed(f, DIR_TO_CLIENT,
	     "HTTP/1.1 200 OK\r\nContent-Type: image/png\r\n"
	     "Content-Length: 4\r\n\r\nPNG!");
	assert_int_equal(f->nev, 2);
	assert_str(f->ev[0], "http.response.body.content", "hello");
	assert_str(f->ev[0], "response", ok_resp);
	assert_null(ev_find(f->ev[1], "http.response.body.content"));
	/* raw text without the body that did not match */
	assert_str(f->ev[1], "response",
		   "HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 4\r\n\r\n");
}

static void test_message_size_cap(void **state)
{
	struct fx *f = *state;
	const struct ev_field *fl;

	fx_set(f, "include_body_for", "text/html");
	f->cfg.send_request = true;
	f->cfg.send_response = true;
	f->cfg.max_message_size = 30;
	feed(f, DIR_TO_SERVER, get_req);
	feed(f, DIR_TO_CLIENT, ok_resp);
	assert_int_equal(f->nev, 1);
	fl = field(f->ev[0], "request");
	assert_int_equal(fl->v.s.len, 30);
	assert_memory_equal(fl->v.s.p, get_req, 30);
	fl = field(f->ev[0], "response");
	assert_int_equal(fl->v.s.len, 30);
	/* byte counts are still the wire sizes */
	assert_uint(f->ev[0], "http.response.bytes", strlen(ok_resp));
}

static void test_gap_in_body(void **state)
{
	struct fx *f = *state;

	feed(f, DIR_TO_SERVER, get_req);
	feed(f, DIR_TO_CLIENT, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab");
	assert_int_equal(f->ops->gap(f->conn, DIR_TO_CLIENT, 5, &f->ctx), 0);
	feed(f, DIR_TO_CLIENT, "cde");
	assert_int_equal(f->nev, 1);
	assert_int_equal(f->ev[0]->status, EV_STATUS_OK);
	assert_str(f->ev[0], "error.message", "Packet loss while capturing the response");
	assert_uint(f->ev[0], "http.response.body.bytes", 10);
	/* a gap longer than the body, or in a header block, gives up */
	feed(f, DIR_TO_SERVER, "GET / HTTP/1.1\r\nHo");
	assert_int_equal(f->ops->gap(f->conn, DIR_TO_SERVER, 3, &f->ctx), -1);
	/* counting gaps is the stream layer's job, not the parser's */
	assert_int_equal(metrics_get("http.gaps"), 0);
}

static void test_unmatched(void **state)
{
	struct fx *f = *state;

	feed(f, DIR_TO_CLIENT, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
	assert_int_equal(f->nev, 1);
	assert_int_equal(f->ev[0]->status, EV_STATUS_ERROR);
	assert_int_equal(f->ev[0]->start_ns, 0);
	assert_str(f->ev[0], "error.message", "Unmatched response");
	/* a request that times out is flushed when the next message arrives */
	feed(f, DIR_TO_SERVER, "GET /1 HTTP/1.1\r\n\r\n");
	f->ctx.ts += 11 * NS_PER_SEC;
	feed(f, DIR_TO_SERVER, "GET /2 HTTP/1.1\r\n\r\n");
	assert_int_equal(f->nev, 2);
	assert_str(f->ev[1], "path", "/1");
	assert_str(f->ev[1], "error.message", "Unmatched request");
	/* the rest at expire */
	f->ops->expire(f->conn, &f->ctx);
	assert_int_equal(f->nev, 3);
	assert_str(f->ev[2], "path", "/2");
	assert_int_equal(f->ev[2]->status, EV_STATUS_ERROR);
	assert_int_equal(metrics_get("http.unmatched_requests"), 2);
	assert_int_equal(metrics_get("http.unmatched_responses"), 1);
}

static void test_continue_and_close(void **state)
{
	struct fx *f = *state;

	feed(f, DIR_TO_SERVER,
	     "POST /u HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n");
	feed(f, DIR_TO_CLIENT, "HTTP/1.1 100 Continue\r\n\r\n");
	assert_int_equal(f->nev, 0);
	feed(f, DIR_TO_SERVER, "hi");
	feed(f, DIR_TO_CLIENT, "HTTP/1.0 200 OK\r\n\r\nbody until close");
	assert_int_equal(f->nev, 0);
	f->ops->fin(f->conn, DIR_TO_CLIENT, &f->ctx);
	assert_int_equal(f->nev, 1);
	assert_uint(f->ev[0], "http.request.body.bytes", 2);
	assert_uint(f->ev[0], "http.response.body.bytes", 16);
	assert_null(ev_find(f->ev[0], "error.message"));
}

static void test_pending_cap(void **state)
{
	struct fx *f = *state;

	f->cfg.max_pending = 1;
	feed(f, DIR_TO_SERVER, "GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n");
	assert_int_equal(f->nev, 1);
	assert_str(f->ev[0], "path", "/1");
	assert_int_equal(f->ev[0]->status, EV_STATUS_ERROR);
	assert_int_equal(metrics_get("http.limit_exceeded"), 1);
}

static void test_pool_exhausted(void **state)
{
	struct fx *f = *state;

	ev_pool_free(f->pool);
	f->pool = ev_pool_new(1, 1u << 20, 256);
	f->sink.pool = f->pool;
	feed(f, DIR_TO_SERVER, "GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n");
	assert_int_equal(metrics_get("http.pool_exhausted"), 1);
	feed(f, DIR_TO_CLIENT,
	     "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
	     "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
	assert_int_equal(f->nev, 1);
	assert_str(f->ev[0], "path", "/1");
	assert_int_equal(f->ev[0]->status, EV_STATUS_OK);
}

/* A request with `nfill` filler lines between the headers the parser reads, so the
 * interesting lines land before and after the parser's index of header lines (64
 * lines; past it the block is walked instead). Written into buf, length returned. */
static size_t many_headers_req(char *buf, size_t cap, int nfill)
{
	size_t n = 0;

	n += (size_t)snprintf(buf + n, cap - n,
			      "POST /form HTTP/1.1\r\n"
			      "X-Dup: a\r\n"
			      "Content-Type: text/plain\r\n"
			      "Host: first.example\r\n");
	for (int i = 0; i < nfill; i++)
		n += (size_t)snprintf(buf + n, cap - n, "X-F%d: v%d\r\n", i, i);
	n += (size_t)snprintf(buf + n, cap - n,
			      "x-DUP: b\r\n"
			      "HOST: second.example:8080\r\n"
			      "user-agent: late-agent/1\r\n"
			      "X-Secret: hunter2\r\n"
			      "x-forwarded-for: 192.0.2.7, 10.0.0.1\r\n"
			      "X-Dup:c\r\n"
			      "content-type: application/x-www-form-urlencoded\r\n"
			      "Content-Length: 7\r\n"
			      "\r\n"
			      "a=1&b=2");
	assert_true(n < cap);
	return n;
}

static void check_many_headers(struct fx *f, const char *req, size_t len, bool bytewise)
{
	const struct ev_field *raw;
	struct event *ev;

	fx_set(f, "send_headers", "x-dup,X-F3,host");
	fx_set(f, "redact_headers", "x-secret");
	fx_set(f, "real_ip_header", "X-Forwarded-For");
	f->cfg.send_request = true;
	if (bytewise) {
		/* the scan resumes at every byte: the block is parsed again once complete */
		for (size_t i = 0; i < len; i++)
			assert_int_not_equal(feed_n(f, DIR_TO_SERVER, req + i, 1), PARSE_ERROR);
		assert_int_equal(f->last, PARSE_OK);
		assert_int_equal(f->tlen[DIR_TO_SERVER], 0);
	} else {
		assert_int_equal(feed_n(f, DIR_TO_SERVER, req, len), PARSE_OK);
	}
	assert_int_equal(feed(f, DIR_TO_CLIENT, "HTTP/1.1 204 No Content\r\n\r\n"), PARSE_OK);
	assert_int_equal(f->nev, 1);
	ev = f->ev[0];
	/* repeated lines joined at the first one, whatever the case of the name */
	assert_str(ev, "http.request.headers.x-dup", "a, b, c");
	assert_str(ev, "http.request.headers.x-f3", "v3");
	assert_str(ev, "http.request.headers.host", "first.example, second.example:8080");
	/* Content-Type: the last line; the rest: the first line */
	assert_str(ev, "http.request.headers.content-type", "application/x-www-form-urlencoded");
	assert_str(ev, "url.domain", "first.example");
	assert_null(ev_find(ev, "url.port"));
	assert_str(ev, "user_agent.original", "late-agent/1");
	assert_str(ev, "network.forwarded_ip", "192.0.2.7");
	assert_null(ev_find(ev, "http.request.headers.x-secret"));
	assert_null(ev_find(ev, "http.request.headers.x-f4"));
	/* the urlencoded body (last Content-Type) feeds url.query */
	assert_str(ev, "url.query", "a=1&b=2");
	assert_uint(ev, "http.request.body.bytes", 7);
	assert_uint(ev, "http.request.headers.content-length", 7);
	raw = field(ev, "request");
	assert_int_equal(raw->v.s.len, len - 7);
	assert_non_null(memmem(raw->v.s.p, raw->v.s.len, "\r\nX-Secret:********\r\n", 21));
	assert_nowhere(f, "hunter2");
}

static void test_headers_indexed(void **state)
{
	char req[8192];
	size_t n = many_headers_req(req, sizeof(req), 10);

	check_many_headers(*state, req, n, false);
}

static void test_headers_past_index(void **state)
{
	char req[8192];
	size_t n = many_headers_req(req, sizeof(req), 100);

	check_many_headers(*state, req, n, false);
}

static void test_headers_indexed_bytewise(void **state)
{
	char req[8192];
	size_t n = many_headers_req(req, sizeof(req), 10);

	check_many_headers(*state, req, n, true);
}

static void test_headers_past_index_bytewise(void **state)
{
	char req[8192];
	size_t n = many_headers_req(req, sizeof(req), 100);

	check_many_headers(*state, req, n, true);
}

/* send_all_headers: every name once, lower-cased, repeats joined; content-length is
 * the number; names of the framing headers match in any case. */
static void test_all_headers_mixed_case(void **state)
{
	struct fx *f = *state;
	struct event *ev;
	size_t nhdr = 0;

	fx_set(f, "send_all_headers", "true");
	feed(f, DIR_TO_SERVER, "GET / HTTP/1.1\r\nhOsT: h.example\r\nX-A: 1\r\n\r\n");
	assert_int_equal(feed(f, DIR_TO_CLIENT,
			      "HTTP/1.1 200 OK\r\n"
			      "Set-Cookie: a=1\r\n"
			      "CONTENT-type: text/html\r\n"
			      "set-COOKIE: b=2\r\n"
			      "X-Empty:\r\n"
			      "Content-Type: text/plain\r\n"
			      "TRANSFER-ENCODING: gzip, Chunked\r\n"
			      "\r\n"
			      "2\r\nhi\r\n0\r\n\r\n"),
			 PARSE_OK);
	assert_int_equal(f->nev, 1);
	ev = f->ev[0];
	assert_str(ev, "url.domain", "h.example");
	assert_str(ev, "http.request.headers.host", "h.example");
	assert_str(ev, "http.request.headers.x-a", "1");
	assert_str(ev, "http.response.headers.set-cookie", "a=1, b=2");
	assert_str(ev, "http.response.headers.content-type", "text/plain");
	assert_str(ev, "http.response.headers.x-empty", "");
	assert_str(ev, "http.response.headers.transfer-encoding", "gzip, Chunked");
	assert_uint(ev, "http.response.body.bytes", 2);
	assert_uint(ev, "http.response.headers.content-length", 2);
	for (size_t i = 0; i < ev->nfields; i++)
		if (strncmp(ev->fields[i].key, "http.response.headers.", 22) == 0)
			nhdr++;
	assert_int_equal(nhdr, 5); /* set-cookie, content-type, x-empty, t-e, c-l */
}

/* A header line that is not "token: value" makes the message an error; a folded
 * continuation line is ignored, unless there is no line before it to continue. */
static void test_malformed_header_lines(void **state)
{
	struct fx *f = *state;
	static const char *const bad[] = {
	    "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
	    "GET / HTTP/1.1\r\n: novalue\r\n\r\n",
	    "GET / HTTP/1.1\r\nNoColon\r\n\r\n",
	    "GET / HTTP/1.1\r\nA(b): x\r\n\r\n",
	    "GET / HTTP/1.1\r\n folded: x\r\nA: 1\r\n\r\n",
	    "GET / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(feed(f, DIR_TO_SERVER, bad[i]), PARSE_ERROR);
		fx_close(f);
	}
	fx_set(f, "send_headers", "a,b");
	assert_int_equal(
	    feed(f, DIR_TO_SERVER,
		 "GET / HTTP/1.1\r\nA: 1\r\n  more: of a\r\n\tstill a\r\nB:2 \r\n\r\n"),
	    PARSE_OK);
	feed(f, DIR_TO_CLIENT, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
	assert_int_equal(f->nev, 1);
	assert_str(f->ev[0], "http.request.headers.a", "1");
	assert_str(f->ev[0], "http.request.headers.b", "2");
	assert_null(ev_find(f->ev[0], "http.request.headers.more"));
}

/* The response's framing depends on the method of its request: HEAD has no body,
 * a successful CONNECT turns the connection into a tunnel. */
static void test_head_and_connect(void **state)
{
	struct fx *f = *state;

	feed(f, DIR_TO_SERVER, "HEAD /h HTTP/1.1\r\nHost: h\r\n\r\n");
	feed(f, DIR_TO_CLIENT, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n");
	assert_int_equal(f->nev, 1);
	assert_null(ev_find(f->ev[0], "http.response.body.bytes"));
	assert_uint(f->ev[0], "http.response.headers.content-length", 100);
	feed(f, DIR_TO_SERVER, "CONNECT h:443 HTTP/1.1\r\n\r\n");
	feed(f, DIR_TO_CLIENT, "HTTP/1.1 200 Connection established\r\n\r\n");
	assert_int_equal(f->nev, 2);
	assert_str(f->ev[1], "path", "h:443");
	/* tunnel bytes are not HTTP */
	assert_int_equal(feed(f, DIR_TO_SERVER, "\x16\x03\x01 not http\r\n\r\n"), PARSE_OK);
	assert_int_equal(feed(f, DIR_TO_CLIENT, "\x16\x03\x03 nor this\r\n\r\n"), PARSE_OK);
	assert_int_equal(f->nev, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_get_fields, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_status_error, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_incremental_no_copy, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_pipelining_and_chunked, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_header_limits, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_header_count_limit, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_invalid_input, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_hide_keywords, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_default_keeps_params, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_basic_auth_user, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_redact_authorization, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_include_body_for, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_message_size_cap, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_gap_in_body, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_unmatched, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_continue_and_close, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_pending_cap, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_pool_exhausted, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_headers_indexed, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_headers_past_index, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_headers_indexed_bytewise, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_headers_past_index_bytewise, fx_setup,
					    fx_teardown),
	    cmocka_unit_test_setup_teardown(test_all_headers_mixed_case, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_malformed_header_lines, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_head_and_connect, fx_setup, fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
