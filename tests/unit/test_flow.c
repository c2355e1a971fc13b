/* test_flow.c — the flow table: protocol and server choice by port and TCP flags,
 * UDP direction, capacity and LRU eviction, idle expiry on the packet clock,
 * deterministic flush order, port reuse, failures, counters.
 *
 * A logging test protocol ("ftest", TCP + UDP on 8080 and 5353) records conn_new
 * (client>server), every message, fin, expire and free in one text log.
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

static char tlog[16384];
static size_t tlog_len;
static bool fail_conn_new;

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

struct fc {
	uint16_t cport;
};

static void *fp_conn_new(const struct conn_info *info)
{
	struct fc *c;

	if (fail_conn_new)
		return NULL;
	c = calloc(1, sizeof(*c));
	assert_non_null(c);
	c->cport = info->client_port;
	assert_non_null(info->cfg);
	tlogf("new:%u>%u%s;", info->client_port, info->server_port,
	      info->transport == IPPROTO_UDP ? "/u" : "");
	return c;
}

/* Each call is one whole message (tests send whole messages per segment). */
static struct parse_result fp_parse(void *conn, enum proto_dir dir, const uint8_t *data, size_t len,
				    struct proto_ctx *ctx)
{
	(void)conn;
	assert_non_null(ctx->stats);
	assert_non_null(ctx->sink);
	tlogf("%c:%.*s;", dir == DIR_TO_SERVER ? 'S' : 'C', (int)len, (const char *)data);
	if (len == 3 && memcmp(data, "ERR", 3) == 0)
		return (struct parse_result){PARSE_ERROR, 0, 0};
	return (struct parse_result){PARSE_OK, len, 0};
}

static int fp_gap(void *conn, enum proto_dir dir, size_t n, struct proto_ctx *ctx)
{
	(void)conn;
	(void)ctx;
	tlogf("gap:%d:%zu;", (int)dir, n);
	return 0;
}

static void fp_fin(void *conn, enum proto_dir dir, struct proto_ctx *ctx)
{
	(void)conn;
	(void)ctx;
	tlogf("fin:%c;", dir == DIR_TO_SERVER ? 'S' : 'C');
}

static void fp_expire(void *conn, struct proto_ctx *ctx)
{
	tlogf("exp:%u@%llu;", ((struct fc *)conn)->cport,
	      (unsigned long long)(ctx->ts / NS_PER_SEC));
}

static void fp_conn_free(void *conn)
{
	if (!conn)
		return;
	tlogf("free:%u;", ((struct fc *)conn)->cport);
	free(conn);
}

static const struct proto_ops ftest_proto = {
    .name = "ftest",
    .transports = PROTO_TCP | PROTO_UDP,
    .conn_new = fp_conn_new,
    .parse = fp_parse,
    .gap = fp_gap,
    .fin = fp_fin,
    .expire = fp_expire,
    .conn_free = fp_conn_free,
};

static struct hb_config cfg;
static uint16_t ports[] = {8080, 5353};

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
	cfg.protos[0].ops = &ftest_proto;
	cfg.protos[0].enabled = true;
	cfg.protos[0].ports.v = ports;
	cfg.protos[0].ports.n = 2;
	cfg.protos[0].transaction_timeout = 10 * NS_PER_SEC;
	cfg.max_flows = 4;
	cfg.flow_timeout = 60 * NS_PER_SEC;
	cfg.tcp_max_buffer = 4096;
	cfg.tcp_reorder_segments = 4;
	cfg.tcp_max_buffer_total = 1 << 20;
	metrics_reset();
	tlog_reset();
	fail_conn_new = false;
	return 0;
}

/* A packet from 10.0.0.1:sport to 10.0.0.2:dport at `sec` seconds. */
static struct packet pkt(uint8_t proto, uint64_t sec, bool from_a, uint16_t sport, uint16_t dport,
			 uint8_t flags, uint32_t seq, const char *data)
{
	struct packet p;

	memset(&p, 0, sizeof(p));
	p.ts = sec * NS_PER_SEC;
	p.ip_proto = proto;
	p.src.ver = p.dst.ver = 4;
	memcpy(p.src.a, from_a ? "\x0a\x00\x00\x01" : "\x0a\x00\x00\x02", 4);
	memcpy(p.dst.a, from_a ? "\x0a\x00\x00\x02" : "\x0a\x00\x00\x01", 4);
	p.sport = sport;
	p.dport = dport;
	p.tcp_flags = flags;
	p.seq = seq;
	p.payload = (const uint8_t *)data;
	p.payload_len = p.payload_wire_len = data ? (uint32_t)strlen(data) : 0;
	return p;
}

static void tcp(struct flow_table *t, uint64_t sec, bool from_a, uint16_t sport, uint16_t dport,
		uint8_t flags, uint32_t seq, const char *data)
{
	struct packet p = pkt(IPPROTO_TCP, sec, from_a, sport, dport, flags, seq, data);

	flow_process(t, &p);
}

static void udp(struct flow_table *t, uint64_t sec, bool from_a, uint16_t sport, uint16_t dport,
		const char *data)
{
	struct packet p = pkt(IPPROTO_UDP, sec, from_a, sport, dport, 0, 0, data);

	flow_process(t, &p);
}

static struct flow_table *table(void)
{
	struct flow_table *t = flow_table_new(&cfg, &sink);

	assert_non_null(t);
	return t;
}

/* ---- server choice --------------------------------------------------------------- */

static void test_syn_sender_is_client(void **state)
{
	struct flow_table *t = table();

	(void)state;
	/* Both ports are protocol ports; the SYN decides, not the port order. */
	tcp(t, 1, true, 5353, 8080, TCPF_SYN, 100, NULL);
	tcp(t, 1, false, 8080, 5353, TCPF_SYN | TCPF_ACK, 900, NULL);
	tcp(t, 1, true, 5353, 8080, TCPF_ACK, 101, "q");
	tcp(t, 1, false, 8080, 5353, TCPF_ACK, 901, "r");
	assert_string_equal(tlog, "new:5353>8080;S:q;C:r;");
	flow_table_free(t);
}

static void test_synack_sender_is_server(void **state)
{
	struct flow_table *t = table();

	(void)state;
	tcp(t, 1, false, 8080, 40000, TCPF_SYN | TCPF_ACK, 900, NULL);
	tcp(t, 1, true, 40000, 8080, TCPF_ACK, 101, "q");
	assert_string_equal(tlog, "new:40000>8080;S:q;");
	flow_table_free(t);
}

static void test_midstream_pickup_by_port(void **state)
{
	struct flow_table *t = table();

	(void)state;
	/* No SYN: the server answers first; its port makes it the server. */
	tcp(t, 1, false, 8080, 40001, TCPF_ACK, 900, "r0");
	tcp(t, 1, true, 40001, 8080, TCPF_ACK, 100, "q1");
	/* Both ports mapped, no SYN: the lower port is the server. */
	tcp(t, 1, true, 8080, 5353, TCPF_ACK, 100, "q2");
	assert_string_equal(tlog, "new:40001>8080;C:r0;S:q1;new:8080>5353;S:q2;");
	/* Unmapped ports are not tracked; a bare ACK of an unknown flow opens nothing. */
	tcp(t, 1, true, 40002, 9999, TCPF_ACK, 1, "x");
	tcp(t, 1, true, 40003, 8080, TCPF_ACK, 1, NULL);
	tcp(t, 1, true, 40003, 8080, TCPF_ACK | TCPF_FIN, 1, NULL);
	assert_int_equal(flow_count(t), 2);
	flow_tick(t, 1 * NS_PER_SEC);
	assert_int_equal(metrics_get("flows.untracked_packets"), 1);
	assert_int_equal(metrics_get("flows.created"), 2);
	assert_int_equal(metrics_get("flows.active"), 2);
	flow_table_free(t);
	assert_int_equal(metrics_get("flows.active"), 0);
}

static void test_udp_direction_by_port(void **state)
{
	struct flow_table *t = table();

	(void)state;
	udp(t, 1, true, 40000, 5353, "Q1");
	udp(t, 2, false, 5353, 40000, "A1");
	/* Server speaks first on another flow: still the server. */
	udp(t, 3, false, 5353, 40001, "A2");
	udp(t, 3, true, 40001, 5353, "ERR");
	udp(t, 4, true, 40001, 5353, "Q3");
	assert_string_equal(tlog, "new:40000>5353/u;S:Q1;C:A1;new:40001>5353/u;C:A2;S:ERR;S:Q3;");
	assert_int_equal(metrics_get("ftest.parse_errors"), 1);
	assert_int_equal(flow_count(t), 2);
	tlog_reset();
	flow_flush_all(t, 5 * NS_PER_SEC);
	/* UDP flows get no fin: just expire, oldest first. */
	assert_string_equal(tlog, "exp:40000@5;free:40000;exp:40001@5;free:40001;");
	flow_table_free(t);
}

/* ---- capacity, expiry, flush ---------------------------------------------------------- */

static void test_capacity_evicts_lru(void **state)
{
	struct flow_table *t = table();

	(void)state;
	for (uint16_t i = 1; i <= 4; i++)
		tcp(t, i, true, (uint16_t)(40000 + i), 8080, TCPF_ACK, 1, "q");
	/* 40001 is the oldest by creation, but seen again: 40002 is now the LRU. */
	tcp(t, 5, true, 40001, 8080, TCPF_ACK, 2, "q");
	tlog_reset();
	tcp(t, 6, true, 40005, 8080, TCPF_ACK, 1, "q");
	assert_string_equal(tlog, "exp:40002@6;free:40002;new:40005>8080;S:q;");
	assert_int_equal(flow_count(t), 4);
	assert_int_equal(metrics_get("flows.evicted"), 1);
	assert_int_equal(metrics_get("flows.created"), 5);
	assert_int_equal(metrics_get("flows.active"), 4);
	/* The evicted flow's next packet is a new flow, evicting the next LRU. */
	tlog_reset();
	tcp(t, 7, true, 40002, 8080, TCPF_ACK, 2, "q");
	assert_string_equal(tlog, "exp:40003@7;free:40003;new:40002>8080;S:q;");
	flow_table_free(t);
}

static void test_idle_expiry_on_packet_clock(void **state)
{
	struct flow_table *t = table();

	(void)state;
	tcp(t, 100, true, 40001, 8080, TCPF_ACK, 1, "q");
	tcp(t, 105, true, 40002, 8080, TCPF_ACK, 1, "q");
	tlog_reset();
	flow_tick(t, 110 * NS_PER_SEC); /* idle exactly the timeout: not yet */
	assert_string_equal(tlog, "");
	flow_tick(t, 110 * NS_PER_SEC + 1);
	assert_string_equal(tlog, "exp:40001@110;free:40001;");
	assert_int_equal(flow_count(t), 1);
	/* Traffic postpones expiry. */
	tcp(t, 114, true, 40002, 8080, TCPF_ACK, 2, "q");
	tlog_reset();
	flow_tick(t, 120 * NS_PER_SEC);
	assert_string_equal(tlog, "");
	flow_tick(t, 125 * NS_PER_SEC);
	assert_string_equal(tlog, "exp:40002@125;free:40002;");
	assert_int_equal(metrics_get("flows.expired"), 2);
	assert_int_equal(flow_count(t), 0);
	flow_table_free(t);
}

static void test_flush_all_oldest_first(void **state)
{
	struct flow_table *t = table();

	(void)state;
	tcp(t, 1, true, 40002, 8080, TCPF_ACK, 1, "a");
	tcp(t, 2, true, 40001, 8080, TCPF_ACK, 1, "b");
	tcp(t, 3, true, 40003, 8080, TCPF_ACK, 1, "c");
	tcp(t, 4, true, 40002, 8080, TCPF_ACK, 2, "d");
	tlog_reset();
	flow_flush_all(t, 9 * NS_PER_SEC);
	assert_string_equal(tlog, "fin:C;exp:40001@9;free:40001;fin:C;exp:40003@9;free:40003;"
				  "fin:C;exp:40002@9;free:40002;");
	assert_int_equal(flow_count(t), 0);
	assert_int_equal(metrics_get("flows.active"), 0);
	flow_table_free(t);
}

static void test_port_reuse_new_syn(void **state)
{
	struct flow_table *t = table();

	(void)state;
	tcp(t, 1, true, 40000, 8080, TCPF_SYN, 100, NULL);
	tcp(t, 1, true, 40000, 8080, TCPF_ACK, 101, "q1");
	tcp(t, 2, true, 40000, 8080, TCPF_SYN, 100, NULL);  /* retransmitted SYN */
	tcp(t, 3, true, 40000, 8080, TCPF_SYN, 7000, NULL); /* a new connection */
	tcp(t, 3, true, 40000, 8080, TCPF_ACK, 7001, "q2");
	assert_string_equal(tlog, "new:40000>8080;S:q1;fin:C;exp:40000@3;free:40000;"
				  "new:40000>8080;S:q2;");
	assert_int_equal(metrics_get("flows.created"), 2);
	flow_table_free(t);
}

static void test_conn_new_failure_counted(void **state)
{
	struct flow_table *t = table();

	(void)state;
	fail_conn_new = true;
	tcp(t, 1, true, 40000, 8080, TCPF_ACK, 1, "q");
	assert_int_equal(flow_count(t), 0);
	assert_int_equal(metrics_get("flows.conn_new_failed"), 1);
	fail_conn_new = false;
	tcp(t, 1, true, 40000, 8080, TCPF_ACK, 2, "q");
	assert_int_equal(flow_count(t), 1);
	flow_table_free(t);
}

static void test_table_alloc_failure(void **state)
{
	(void)state;
	for (long n = 0; n < 5; n++) {
		mem_fail_after(n);
		struct flow_table *t = flow_table_new(&cfg, &sink);

		mem_fail_reset();
		assert_null(t);
	}
	flow_table_free(NULL);
}

static void test_disabled_protocol_not_tracked(void **state)
{
	struct flow_table *t;

	(void)state;
	cfg.protos[0].enabled = false;
	t = table();
	tcp(t, 1, true, 40000, 8080, TCPF_SYN, 1, NULL);
	udp(t, 1, true, 40000, 5353, "Q");
	assert_int_equal(flow_count(t), 0);
	assert_string_equal(tlog, "");
	flow_table_free(t);
}

static void test_ipv6_flow(void **state)
{
	struct flow_table *t = table();
	struct packet p = pkt(IPPROTO_TCP, 1, true, 40000, 8080, TCPF_ACK, 1, "q");

	(void)state;
	p.src.ver = p.dst.ver = 6;
	memset(p.src.a, 0, 16);
	memset(p.dst.a, 0, 16);
	p.src.a[15] = 1;
	p.dst.a[15] = 2;
	flow_process(t, &p);
	/* The same ports over IPv4 are another flow. */
	tcp(t, 1, true, 40000, 8080, TCPF_ACK, 1, "q");
	assert_int_equal(flow_count(t), 2);
	/* The reply finds the v6 flow. */
	p.src.a[15] = 2;
	p.dst.a[15] = 1;
	p.sport = 8080;
	p.dport = 40000;
	p.payload = (const uint8_t *)"r";
	flow_process(t, &p);
	assert_int_equal(flow_count(t), 2);
	assert_string_equal(tlog, "new:40000>8080;S:q;new:40000>8080;S:q;C:r;");
	flow_table_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_syn_sender_is_client, setup),
	    cmocka_unit_test_setup(test_synack_sender_is_server, setup),
	    cmocka_unit_test_setup(test_midstream_pickup_by_port, setup),
	    cmocka_unit_test_setup(test_udp_direction_by_port, setup),
	    cmocka_unit_test_setup(test_capacity_evicts_lru, setup),
	    cmocka_unit_test_setup(test_idle_expiry_on_packet_clock, setup),
	    cmocka_unit_test_setup(test_flush_all_oldest_first, setup),
	    cmocka_unit_test_setup(test_port_reuse_new_syn, setup),
	    cmocka_unit_test_setup(test_conn_new_failure_counted, setup),
	    cmocka_unit_test_setup(test_table_alloc_failure, setup),
	    cmocka_unit_test_setup(test_disabled_protocol_not_tracked, setup),
	    cmocka_unit_test_setup(test_ipv6_flow, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
