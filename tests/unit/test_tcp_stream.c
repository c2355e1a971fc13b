/* test_tcp_stream.c — TCP reassembly through the flow table with a line protocol:
 * in-order delivery, reorder window, retransmissions, overlaps, sequence wrap, gaps
 * (accepted and refused), NEED_MORE tails split at every byte, `needed`, snapped
 * packets, buffer caps (per direction and total), parse errors.
 *
 * Test protocol "test": requests "REQ n\n", responses "RSP n\n", "BIN k\n" + k raw
 * bytes (asks for exactly what it needs). Every call is written to a text log that
 * the tests compare whole.
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
#include "hostbeat/mem.h"
#include "hostbeat/metrics.h"
#include "hostbeat/proto.h"
#include "net/flow.h"
#include "net/packet.h"

/* ---- the test protocol ----------------------------------------------------- */

static char tlog[65536];
static size_t tlog_len;
static int tp_gap_result;
static size_t tp_parse_calls;

static void tlogf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void tlogf(const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tlog + tlog_len, sizeof(tlog) - tlog_len, fmt, ap);
	va_end(ap);
	assert_true(n >= 0 && (size_t)n < sizeof(tlog) - tlog_len);
	tlog_len += (size_t)n;
}

static void tlog_reset(void)
{
	tlog_len = 0;
	tlog[0] = '\0';
}

struct tp_conn {
	uint16_t cport;
	bool synced; /* saw a valid line since start or since a gap */
};

static void *tp_conn_new(const struct conn_info *info)
{
	struct tp_conn *c = calloc(1, sizeof(*c));

	assert_non_null(c);
	c->cport = info->client_port;
	tlogf("new:%u>%u;", info->client_port, info->server_port);
	return c;
}

static struct parse_result tp_parse(void *conn, enum proto_dir dir, const uint8_t *data, size_t len,
				    struct proto_ctx *ctx)
{
	struct tp_conn *c = conn;
	const uint8_t *nl = memchr(data, '\n', len);
	const char *want = dir == DIR_TO_SERVER ? "REQ " : "RSP ";
	char ch = dir == DIR_TO_SERVER ? 'S' : 'C';
	size_t n;

	assert_non_null(ctx->stats);
	assert_int_equal(ctx->conn->transport, IPPROTO_TCP);
	tp_parse_calls++;
	if (!nl)
		return (struct parse_result){PARSE_NEED_MORE, 0, 0};
	n = (size_t)(nl - data) + 1;
	if (n > 4 && memcmp(data, "BIN ", 4) == 0) {
		size_t k = strtoul((const char *)data + 4, NULL, 10);

		if (len - n < k)
			return (struct parse_result){PARSE_NEED_MORE, 0, k - (len - n)};
		tlogf("%c:BIN %zu;", ch, k);
		c->synced = true;
		return (struct parse_result){PARSE_OK, n + k, 0};
	}
	if (n > 4 && memcmp(data, want, 4) == 0) {
		tlogf("%c:%.*s;", ch, (int)(n - 1), (const char *)data);
		c->synced = true;
		return (struct parse_result){PARSE_OK, n, 0};
	}
	if (!c->synced) {
		tlogf("resync;");
		return (struct parse_result){PARSE_OK, n, 0};
	}
	return (struct parse_result){PARSE_ERROR, 0, 0};
}

static int tp_gap(void *conn, enum proto_dir dir, size_t n, struct proto_ctx *ctx)
{
	struct tp_conn *c = conn;

	(void)ctx;
	tlogf("gap:%c:%zu;", dir == DIR_TO_SERVER ? 'S' : 'C', n);
	if (tp_gap_result == 0)
		c->synced = false;
	return tp_gap_result;
}

static void tp_fin(void *conn, enum proto_dir dir, struct proto_ctx *ctx)
{
	(void)conn;
	(void)ctx;
	tlogf("fin:%c;", dir == DIR_TO_SERVER ? 'S' : 'C');
}

static void tp_expire(void *conn, struct proto_ctx *ctx)
{
	(void)ctx;
	tlogf("exp:%u;", ((struct tp_conn *)conn)->cport);
}

static void tp_conn_free(void *conn)
{
	if (!conn)
		return;
	tlogf("free:%u;", ((struct tp_conn *)conn)->cport);
	free(conn);
}

static const struct proto_ops test_proto = {
    .name = "test",
    .transports = PROTO_TCP,
    .conn_new = tp_conn_new,
    .parse = tp_parse,
    .gap = tp_gap,
    .fin = tp_fin,
    .expire = tp_expire,
    .conn_free = tp_conn_free,
};

/* ---- fixtures ---------------------------------------------------------------- */

static struct hb_config cfg;
static uint16_t ports[] = {8080};

static void sink_publish(struct ev_sink *sink, struct event *ev)
{
	(void)sink;
	(void)ev;
	fail_msg("the test protocol never publishes");
}

static struct ev_sink sink = {.publish = sink_publish};

static int setup(void **state)
{
	(void)state;
	memset(&cfg, 0, sizeof(cfg));
	cfg.nprotos = 1;
	cfg.protos[0].ops = &test_proto;
	cfg.protos[0].enabled = true;
	cfg.protos[0].ports.v = ports;
	cfg.protos[0].ports.n = 1;
	cfg.protos[0].transaction_timeout = 10 * NS_PER_SEC;
	cfg.max_flows = 16;
	cfg.flow_timeout = 60 * NS_PER_SEC;
	cfg.tcp_max_buffer = 4096;
	cfg.tcp_reorder_segments = 4;
	cfg.tcp_max_buffer_total = 1 << 20;
	metrics_reset();
	tlog_reset();
	tp_gap_result = 0;
	tp_parse_calls = 0;
	return 0;
}

#define CPORT 40000
#define ISN_C 1000u
#define ISN_S 5000u

/* One TCP segment of the connection 10.0.0.1:cport <-> 10.0.0.2:8080. */
static struct packet seg(uint16_t cport, bool from_client, uint8_t flags, uint32_t seq,
			 const void *data, size_t len)
{
	struct packet p;

	memset(&p, 0, sizeof(p));
	p.ts = 1000 * NS_PER_SEC;
	p.ip_proto = IPPROTO_TCP;
	p.src.ver = p.dst.ver = 4;
	memcpy(p.src.a, from_client ? "\x0a\x00\x00\x01" : "\x0a\x00\x00\x02", 4);
	memcpy(p.dst.a, from_client ? "\x0a\x00\x00\x02" : "\x0a\x00\x00\x01", 4);
	p.sport = from_client ? cport : 8080;
	p.dport = from_client ? 8080 : cport;
	p.tcp_flags = flags;
	p.seq = seq;
	p.payload = data;
	p.payload_len = p.payload_wire_len = (uint32_t)len;
	return p;
}

static void send_seg(struct flow_table *t, bool from_client, uint8_t flags, uint32_t seq,
		     const char *data)
{
	struct packet p = seg(CPORT, from_client, flags, seq, data, data ? strlen(data) : 0);

	flow_process(t, &p);
}

/* Handshake with client ISN isn and server ISN ISN_S; data starts at isn + 1. */
static struct flow_table *open_conn(uint32_t isn)
{
	struct flow_table *t = flow_table_new(&cfg, &sink);

	assert_non_null(t);
	send_seg(t, true, TCPF_SYN, isn, NULL);
	send_seg(t, false, TCPF_SYN | TCPF_ACK, ISN_S, NULL);
	send_seg(t, true, TCPF_ACK, isn + 1, NULL);
	assert_int_equal(flow_count(t), 1);
	return t;
}

/* ---- tests -------------------------------------------------------------------- */

static void test_in_order_request_response_fin(void **state)
{
	struct flow_table *t = open_conn(ISN_C);

	(void)state;
	send_seg(t, true, TCPF_ACK | TCPF_PSH, ISN_C + 1, "REQ 1\nREQ 2\n");
	send_seg(t, false, TCPF_ACK | TCPF_PSH, ISN_S + 1, "RSP 1\n");
	send_seg(t, false, TCPF_ACK | TCPF_PSH, ISN_S + 7, "RSP 2\n");
	send_seg(t, true, TCPF_ACK | TCPF_FIN, ISN_C + 13, NULL);
	assert_int_equal(flow_count(t), 1);
	send_seg(t, false, TCPF_ACK | TCPF_FIN, ISN_S + 13, NULL);
	assert_int_equal(flow_count(t), 0);
	/* The last ACK of the teardown must not open a new flow. */
	send_seg(t, true, TCPF_ACK, ISN_C + 14, NULL);
	assert_int_equal(flow_count(t), 0);
	assert_string_equal(tlog, "new:40000>8080;S:REQ 1;S:REQ 2;C:RSP 1;C:RSP 2;fin:S;fin:C;"
				  "exp:40000;free:40000;");
	assert_int_equal(metrics_get("flows.created"), 1);
	assert_int_equal(metrics_get("flows.closed"), 1);
	assert_int_equal(metrics_get("flows.active"), 0);
	assert_int_equal(metrics_get("tcp.gaps"), 0);
	flow_table_free(t);
	assert_int_equal(metrics_get("tcp.buffer_bytes"), 0);
}

static void test_reorder(void **state)
{
	struct flow_table *t = open_conn(ISN_C);

	(void)state;
	send_seg(t, true, TCPF_ACK, ISN_C + 7, "REQ 2\n");
	assert_string_equal(tlog, "new:40000>8080;");
	send_seg(t, true, TCPF_ACK, ISN_C + 1, "REQ 1\n");
	send_seg(t, true, TCPF_ACK, ISN_C + 13, "REQ 3\n");
	assert_string_equal(tlog, "new:40000>8080;S:REQ 1;S:REQ 2;S:REQ 3;");
	assert_int_equal(metrics_get("tcp.out_of_order"), 1);
	assert_int_equal(metrics_get("tcp.gaps"), 0);

	/* Reordered pieces of one message, three held, filled last. */
	tlog_reset();
	send_seg(t, true, TCPF_ACK, ISN_C + 23, "4\n");
	send_seg(t, true, TCPF_ACK, ISN_C + 22, " ");
	send_seg(t, true, TCPF_ACK, ISN_C + 21, "Q");
	assert_string_equal(tlog, "");
	send_seg(t, true, TCPF_ACK, ISN_C + 19, "RE");
	assert_string_equal(tlog, "S:REQ 4;");
	assert_int_equal(metrics_get("tcp.gaps"), 0);
	flow_table_free(t);
	assert_int_equal(metrics_get("tcp.buffer_bytes"), 0);
}

static void test_retransmissions_delivered_once(void **state)
{
	struct flow_table *t = open_conn(ISN_C);

	(void)state;
	send_seg(t, true, TCPF_ACK, ISN_C + 1, "REQ 1\n");
	send_seg(t, true, TCPF_ACK, ISN_C + 1, "REQ 1\n");
	send_seg(t, true, TCPF_ACK, ISN_C + 13, "REQ 3\n"); /* held */
	send_seg(t, true, TCPF_ACK, ISN_C + 13, "REQ 3\n"); /* held duplicate */
	send_seg(t, true, TCPF_ACK, ISN_C + 7, "REQ 2\n");
	send_seg(t, true, TCPF_ACK, ISN_C + 7, "REQ 2\n");
	send_seg(t, true, TCPF_SYN, ISN_C, NULL); /* retransmitted SYN: same connection */
	assert_int_equal(flow_count(t), 1);
	assert_string_equal(tlog, "new:40000>8080;S:REQ 1;S:REQ 2;S:REQ 3;");
	assert_int_equal(metrics_get("tcp.retransmits"), 3);
	assert_int_equal(metrics_get("flows.created"), 1);
	flow_table_free(t);
}

static void test_overlap_trimmed(void **state)
{
	struct flow_table *t = open_conn(ISN_C);

	(void)state;
	send_seg(t, true, TCPF_ACK, ISN_C + 1, "REQ 1\nRE");
	send_seg(t, true, TCPF_ACK, ISN_C + 1, "REQ 1\nREQ 2\n");
	send_seg(t, true, TCPF_ACK, ISN_C + 11, "2\nREQ 3\n");
	/* A held segment overlapping the one that fills the hole. */
	send_seg(t, true, TCPF_ACK, ISN_C + 23, "4\nREQ 5\n");
	send_seg(t, true, TCPF_ACK, ISN_C + 19, "REQ 4\n");
	assert_string_equal(tlog, "new:40000>8080;S:REQ 1;S:REQ 2;S:REQ 3;S:REQ 4;S:REQ 5;");
	assert_int_equal(metrics_get("tcp.overlaps"), 3);
	assert_int_equal(metrics_get("tcp.gaps"), 0);
	flow_table_free(t);
}

static void test_sequence_wraparound(void **state)
{
	uint32_t isn = 0xfffffff8u; /* data starts at 0xfffffff9 */
	struct flow_table *t = open_conn(isn);

	(void)state;
	/* REQ 1 at fffffff9, REQ 2 at ffffffff (wraps), REQ 3 at 5: sent 3, 2, 1. */
	send_seg(t, true, TCPF_ACK, 5u, "REQ 3\n");
	send_seg(t, true, TCPF_ACK, 0xffffffffu, "REQ 2\n");
	send_seg(t, true, TCPF_ACK, 0xfffffff9u, "REQ 1\n");
	send_seg(t, true, TCPF_ACK, 0xfffffff9u, "REQ 1\n"); /* old across the wrap */
	send_seg(t, true, TCPF_ACK, 11u, "REQ 4\n");
	assert_string_equal(tlog, "new:40000>8080;S:REQ 1;S:REQ 2;S:REQ 3;S:REQ 4;");
	assert_int_equal(metrics_get("tcp.retransmits"), 1);
	assert_int_equal(metrics_get("tcp.gaps"), 0);
	flow_table_free(t);
}

static void test_gap_declared_on_ack_and_fin(void **state)
{
	struct flow_table *t = open_conn(ISN_C);

	(void)state;
	send_seg(t, true, TCPF_ACK, ISN_C + 1, "REQ 1\n");
	/* "REQ 2\n" (6 bytes) lost */
	send_seg(t, true, TCPF_ACK, ISN_C + 13, "REQ 3\n");
	assert_string_equal(tlog, "new:40000>8080;S:REQ 1;");
	/* The server acknowledges past the hole: it is not coming back. */
	struct packet ack = seg(CPORT, false, TCPF_ACK, ISN_S + 1, NULL, 0);

	ack.ack = ISN_C + 19;
	flow_process(t, &ack);
	assert_string_equal(tlog, "new:40000>8080;S:REQ 1;gap:S:6;S:REQ 3;");

	/* A hole before a FIN: gap, then fin. */
	tlog_reset();
	send_seg(t, true, TCPF_ACK, ISN_C + 29, "REQ 5\n");
	send_seg(t, true, TCPF_ACK | TCPF_FIN, ISN_C + 35, NULL);
	assert_string_equal(tlog, "gap:S:10;S:REQ 5;fin:S;");
	assert_int_equal(metrics_get("tcp.gaps"), 2);
	assert_int_equal(metrics_get("test.gaps"), 2);
	assert_int_equal(metrics_get("test.gap_drops"), 0);
	flow_table_free(t);
}

static void test_gap_when_window_full(void **state)
{
	struct flow_table *t = open_conn(ISN_C);
	char msg[8];

	(void)state;
	send_seg(t, true, TCPF_ACK, ISN_C + 1, "REQ 0\n");
	/* REQ 1 lost; REQ 2..5 fill the window of 4; REQ 6 overflows it. */
	for (unsigned i = 2; i <= 6; i++) {
		snprintf(msg, sizeof(msg), "REQ %u\n", i);
		send_seg(t, true, TCPF_ACK, ISN_C + 1 + 6 * i, msg);
	}
	assert_string_equal(tlog, "new:40000>8080;S:REQ 0;gap:S:6;S:REQ 2;S:REQ 3;S:REQ 4;"
				  "S:REQ 5;S:REQ 6;");
	assert_int_equal(metrics_get("tcp.gaps"), 1);
	flow_table_free(t);
}

static void test_gap_refused_resets_parser(void **state)
{
	struct flow_table *t = open_conn(ISN_C);

	(void)state;
	tp_gap_result = -1;
	send_seg(t, true, TCPF_ACK, ISN_C + 1, "REQ 1\n");
	send_seg(t, true, TCPF_ACK, ISN_C + 14, "EQ 3\nREQ 4\n"); /* starts mid-line */
	send_seg(t, true, TCPF_ACK | TCPF_FIN, ISN_C + 25, NULL);
	send_seg(t, false, TCPF_ACK, ISN_S + 1, "RSP 4\n");
	assert_string_equal(tlog, "new:40000>8080;S:REQ 1;gap:S:7;exp:40000;free:40000;"
				  "new:40000>8080;resync;S:REQ 4;fin:S;C:RSP 4;");
	assert_int_equal(metrics_get("tcp.dropped_because_of_gaps"), 1);
	assert_int_equal(metrics_get("test.gap_drops"), 1);
	assert_int_equal(metrics_get("test.gaps"), 1);
	flow_table_free(t);
}

static void test_snapped_segment_is_a_gap(void **state)
{
	struct flow_table *t = open_conn(ISN_C);
	struct packet p = seg(CPORT, true, TCPF_ACK, ISN_C + 7, "REQ 2\n", 6);

	(void)state;
	send_seg(t, true, TCPF_ACK, ISN_C + 1, "REQ 1\n");
	p.payload_len = 3; /* "REQ" captured, " 2\n" snapped */
	flow_process(t, &p);
	send_seg(t, true, TCPF_ACK, ISN_C + 13, "REQ 3\n");
	/* The unconsumed "REQ" counts as missing too. */
	assert_string_equal(tlog, "new:40000>8080;S:REQ 1;gap:S:6;S:REQ 3;");
	flow_table_free(t);
}

/* Parse `stream` cut into pieces at `cuts` (sorted offsets) and return the log. */
static void run_split(const char *stream, const size_t *cuts, size_t ncuts, char *out, size_t outsz)
{
	struct flow_table *t;
	size_t len = strlen(stream), prev = 0;

	tlog_reset();
	t = open_conn(ISN_C);
	for (size_t i = 0; i <= ncuts; i++) {
		size_t end = i < ncuts ? cuts[i] : len;
		struct packet p = seg(CPORT, true, TCPF_ACK, ISN_C + 1 + (uint32_t)prev,
				      stream + prev, end - prev);

		flow_process(t, &p);
		prev = end;
	}
	flow_table_free(t);
	snprintf(out, outsz, "%s", tlog);
}

static void test_need_more_split_at_every_byte(void **state)
{
	const char *stream = "REQ 1\nREQ 22\nREQ 333\n";
	size_t len = strlen(stream);
	char ref[512], got[512];
	size_t cuts[32];

	(void)state;
	run_split(stream, NULL, 0, ref, sizeof(ref));
	assert_string_equal(ref, "new:40000>8080;S:REQ 1;S:REQ 22;S:REQ 333;fin:C;"
				 "exp:40000;free:40000;");
	for (size_t i = 1; i < len; i++) {
		for (size_t j = i + 1; j <= len; j++) {
			cuts[0] = i;
			cuts[1] = j;
			run_split(stream, cuts, j < len ? 2 : 1, got, sizeof(got));
			assert_string_equal(got, ref);
		}
	}
	for (size_t i = 0; i + 1 < len; i++)
		cuts[i] = i + 1;
	run_split(stream, cuts, len - 1, got, sizeof(got));
	assert_string_equal(got, ref);
	assert_int_equal(metrics_get("tcp.buffer_bytes"), 0);
	assert_int_equal(metrics_get("tcp.gaps"), 0);
}

static void test_needed_is_honoured(void **state)
{
	const char *stream = "BIN 10\n0123456789";
	size_t cuts[32];
	char got[256];

	(void)state;
	for (size_t i = 0; i + 1 < strlen(stream); i++)
		cuts[i] = i + 1;
	run_split(stream, cuts, strlen(stream) - 1, got, sizeof(got));
	assert_string_equal(got, "new:40000>8080;S:BIN 10;fin:C;exp:40000;free:40000;");
	/* 7 calls until the header line is complete, then none until all 10 bytes. */
	assert_int_equal(tp_parse_calls, 8);
}

static void test_buffer_cap_per_direction(void **state)
{
	struct flow_table *t;

	(void)state;
	cfg.tcp_max_buffer = 16;
	t = open_conn(ISN_C);
	send_seg(t, true, TCPF_ACK, ISN_C + 1, "REQ xxxxxx");  /* 10 bytes buffered */
	send_seg(t, true, TCPF_ACK, ISN_C + 11, "xxxxxxxxxx"); /* 20 > 16 */
	assert_int_equal(metrics_get("tcp.buffer_overflow"), 1);
	assert_int_equal(metrics_get("test.limit_exceeded"), 1);
	send_seg(t, true, TCPF_ACK, ISN_C + 21, "xx\nREQ 5\n");
	assert_string_equal(tlog, "new:40000>8080;exp:40000;free:40000;new:40000>8080;"
				  "resync;S:REQ 5;");
	assert_int_equal(flow_count(t), 1);
	flow_table_free(t);
	assert_int_equal(metrics_get("tcp.buffer_bytes"), 0);
}

static void test_buffer_total_cap(void **state)
{
	struct flow_table *t;
	struct packet p;

	(void)state;
	cfg.tcp_max_buffer = 16;
	cfg.tcp_max_buffer_total = 20;
	t = flow_table_new(&cfg, &sink);
	assert_non_null(t);
	p = seg(40001, true, TCPF_ACK, 1, "REQ 123", 7);
	flow_process(t, &p);
	assert_int_equal(metrics_get("tcp.buffer_bytes"), 16);
	p = seg(40002, true, TCPF_ACK, 1, "REQ 456", 7);
	flow_process(t, &p);
	assert_int_equal(metrics_get("tcp.buffer_total_exceeded"), 1);
	assert_int_equal(metrics_get("tcp.buffer_bytes"), 16);
	assert_string_equal(tlog, "new:40001>8080;new:40002>8080;exp:40002;free:40002;"
				  "new:40002>8080;");
	flow_table_free(t);
	assert_int_equal(metrics_get("tcp.buffer_bytes"), 0);
}

static void test_parse_error_stops_feeding(void **state)
{
	struct flow_table *t = open_conn(ISN_C);
	size_t calls;

	(void)state;
	send_seg(t, true, TCPF_ACK, ISN_C + 1, "REQ 1\nBAD\nREQ 2\n");
	calls = tp_parse_calls;
	send_seg(t, true, TCPF_ACK, ISN_C + 17, "REQ 3\n");
	send_seg(t, false, TCPF_ACK, ISN_S + 1, "RSP 1\n");
	assert_int_equal(tp_parse_calls, calls);
	assert_int_equal(metrics_get("test.parse_errors"), 1);
	assert_int_equal(flow_count(t), 1);
	send_seg(t, true, TCPF_ACK | TCPF_RST, ISN_C + 23, NULL);
	assert_int_equal(flow_count(t), 0);
	assert_string_equal(tlog, "new:40000>8080;S:REQ 1;exp:40000;free:40000;");
	assert_int_equal(metrics_get("flows.closed"), 1);
	flow_table_free(t);
}

/* Packetbeat's wsgi_loopback.pcap: after the teardown the capture repeats the
 * opening SYN and the first response segment. They are late duplicates of the
 * closed connection, not a new one: no flow, nothing parsed. A SYN with another
 * ISN is a new connection on the same ports. */
static void test_late_duplicates_after_close(void **state)
{
	struct flow_table *t = open_conn(ISN_C);

	(void)state;
	send_seg(t, true, TCPF_ACK | TCPF_PSH, ISN_C + 1, "REQ 1\n");
	send_seg(t, false, TCPF_ACK | TCPF_PSH, ISN_S + 1, "RSP 1\n");
	send_seg(t, false, TCPF_ACK | TCPF_FIN, ISN_S + 7, NULL);
	send_seg(t, true, TCPF_ACK | TCPF_FIN, ISN_C + 7, NULL);
	assert_int_equal(flow_count(t), 0);
	send_seg(t, true, TCPF_SYN, ISN_C, NULL);
	send_seg(t, false, TCPF_ACK | TCPF_PSH, ISN_S + 1, "RSP 1\n");
	send_seg(t, false, TCPF_SYN | TCPF_ACK, ISN_S, NULL);
	assert_int_equal(flow_count(t), 0);
	assert_string_equal(tlog, "new:40000>8080;S:REQ 1;C:RSP 1;fin:C;fin:S;exp:40000;"
				  "free:40000;");
	assert_int_equal(metrics_get("flows.created"), 1);
	assert_int_equal(metrics_get("flows.closed"), 1);
	send_seg(t, true, TCPF_SYN, ISN_C + 100000, NULL);
	assert_int_equal(flow_count(t), 1);
	assert_int_equal(metrics_get("flows.created"), 2);
	flow_table_free(t);
}

static void test_rst_closes(void **state)
{
	struct flow_table *t = open_conn(ISN_C);

	(void)state;
	send_seg(t, true, TCPF_ACK, ISN_C + 1, "REQ 1\n");
	send_seg(t, false, TCPF_RST, ISN_S + 1, NULL);
	assert_int_equal(flow_count(t), 0);
	assert_string_equal(tlog, "new:40000>8080;S:REQ 1;fin:C;fin:S;exp:40000;free:40000;");
	assert_int_equal(metrics_get("flows.closed"), 1);
	flow_table_free(t);
}

/* xorshift32: deterministic pseudo-random numbers for the soup tests. */
static uint32_t rnd(uint32_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x;
}

static size_t soup_stream(char *buf, size_t size)
{
	size_t len = 0;

	for (unsigned i = 1; i <= 40; i++)
		len += (size_t)snprintf(buf + len, size - len, "REQ %u%s\n", i,
					i % 3 ? "" : "xxxxxxxxxxxxxxxxxxxxxxxxx");
	return len;
}

/* Segments reordered within blocks of 4 (never more than 3 held) and duplicated
 * at random: the parser sees exactly the in-order stream. */
static void test_soup_reorder_and_duplicates(void **state)
{
	char stream[2048], ref[4096];
	size_t len = soup_stream(stream, sizeof(stream));
	uint32_t x = 12345;

	(void)state;
	run_split(stream, NULL, 0, ref, sizeof(ref));
	for (int round = 0; round < 200; round++) {
		size_t start[256], end[256], n = 0, order[256];
		struct flow_table *t;

		for (size_t off = 0; off < len; n++) {
			size_t l = 1 + rnd(&x) % 24;

			start[n] = off;
			end[n] = off + l < len ? off + l : len;
			off = end[n];
		}
		for (size_t i = 0; i < n; i++)
			order[i] = i;
		for (size_t b = 0; b < n; b += 4) {
			size_t m = n - b < 4 ? n - b : 4;

			for (size_t i = m; i > 1; i--) {
				size_t j = rnd(&x) % i, tmp = order[b + i - 1];

				order[b + i - 1] = order[b + j];
				order[b + j] = tmp;
			}
		}
		tlog_reset();
		t = open_conn(ISN_C);
		for (size_t i = 0; i < n; i++) {
			size_t k = order[i];
			struct packet p = seg(CPORT, true, TCPF_ACK, ISN_C + 1 + (uint32_t)start[k],
					      stream + start[k], end[k] - start[k]);

			flow_process(t, &p);
			if (rnd(&x) % 5 == 0) /* a retransmission of something already sent */
				flow_process(t, &p);
		}
		flow_table_free(t);
		assert_string_equal(tlog, ref);
		assert_int_equal(metrics_get("tcp.gaps"), 0);
		assert_int_equal(metrics_get("tcp.buffer_bytes"), 0);
	}
}

/* Drops, snaps, overlaps, ACKs past holes, refused gaps, tiny buffers: no crash,
 * every conn_new freed, every buffer byte returned. */
static void test_soup_loss(void **state)
{
	char stream[2048];
	size_t len = soup_stream(stream, sizeof(stream));
	uint32_t x = 777;

	(void)state;
	for (int round = 0; round < 300; round++) {
		struct flow_table *t;
		size_t news = 0, frees = 0;
		uint32_t isn;

		cfg.tcp_max_buffer = 8 + rnd(&x) % 64;
		cfg.tcp_reorder_segments = rnd(&x) % 5;
		cfg.tcp_max_buffer_total = 16 + rnd(&x) % 200;
		tp_gap_result = rnd(&x) % 2 ? 0 : -1;
		isn = 0xffffff00u + rnd(&x) % 256; /* wraps within the stream */
		tlog_reset();
		t = open_conn(isn);
		for (int i = 0; i < 120; i++) {
			size_t off = rnd(&x) % len, l = 1 + rnd(&x) % 30;
			struct packet p;

			if (off + l > len)
				l = len - off;
			p = seg(CPORT, rnd(&x) % 4 != 0, TCPF_ACK, 0, stream + off, l);
			p.seq = rnd(&x) % 3 ? isn + 1 + (uint32_t)off : rnd(&x);
			if (rnd(&x) % 8 == 0)
				p.payload_len = (uint32_t)(rnd(&x) % (l + 1));
			p.ack = rnd(&x) % 2 ? isn + 1 + rnd(&x) % (uint32_t)len : rnd(&x);
			if (rnd(&x) % 40 == 0)
				p.tcp_flags |= TCPF_FIN;
			if (rnd(&x) % 200 == 0)
				p.tcp_flags |= TCPF_RST;
			flow_process(t, &p);
		}
		flow_table_free(t);
		for (const char *q = tlog; (q = strstr(q, "new:")); q++)
			news++;
		for (const char *q = tlog; (q = strstr(q, "free:")); q++)
			frees++;
		assert_int_equal(news, frees);
		assert_int_equal(metrics_get("tcp.buffer_bytes"), 0);
		assert_int_equal(metrics_get("flows.active"), 0);
	}
	/* The soup did reach the paths it is meant to shake. */
	assert_true(metrics_get("tcp.gaps") > 0);
	assert_true(metrics_get("tcp.dropped_because_of_gaps") > 0);
	assert_true(metrics_get("tcp.overlaps") > 0);
	assert_true(metrics_get("tcp.out_of_order") > 0);
	assert_true(metrics_get("tcp.buffer_overflow") > 0);
	assert_true(metrics_get("tcp.buffer_total_exceeded") > 0);
	assert_true(metrics_get("test.parse_errors") > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_in_order_request_response_fin, setup),
	    cmocka_unit_test_setup(test_reorder, setup),
	    cmocka_unit_test_setup(test_retransmissions_delivered_once, setup),
	    cmocka_unit_test_setup(test_overlap_trimmed, setup),
	    cmocka_unit_test_setup(test_sequence_wraparound, setup),
	    cmocka_unit_test_setup(test_gap_declared_on_ack_and_fin, setup),
	    cmocka_unit_test_setup(test_gap_when_window_full, setup),
	    cmocka_unit_test_setup(test_gap_refused_resets_parser, setup),
	    cmocka_unit_test_setup(test_snapped_segment_is_a_gap, setup),
	    cmocka_unit_test_setup(test_need_more_split_at_every_byte, setup),
	    cmocka_unit_test_setup(test_needed_is_honoured, setup),
	    cmocka_unit_test_setup(test_buffer_cap_per_direction, setup),
	    cmocka_unit_test_setup(test_buffer_total_cap, setup),
	    cmocka_unit_test_setup(test_parse_error_stops_feeding, setup),
	    cmocka_unit_test_setup(test_rst_closes, setup),
	    cmocka_unit_test_setup(test_late_duplicates_after_close, setup),
	    cmocka_unit_test_setup(test_soup_reorder_and_duplicates, setup),
	    cmocka_unit_test_setup(test_soup_loss, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
