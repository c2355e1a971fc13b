/* test_encode.c — shipper/encode.c: envelope, nesting, ordering, arrays, strings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hostbeat/clock.h"
#include "hostbeat/encode.h"
#include "hostbeat/event.h"
#include "hostbeat/ip.h"
#include "hostbeat/mem.h"
#include "hostbeat/metrics.h"
#include "hostbeat/strbuf.h"

/* 2015-02-18T00:13:06.231442Z, the HTTP golden transaction of ecosystem.md §1.5 */
#define T_START 1424218386231442000ULL
#define T_END (T_START + 18341000ULL)

struct fx {
	struct ev_pool *pool;
	struct strbuf out;
	struct encode_opts o;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->pool = ev_pool_new(8, 1 << 20, 4096);
	assert_non_null(f->pool);
	strbuf_init(&f->out);
	metrics_reset();
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	strbuf_free(&f->out);
	ev_pool_free(f->pool);
	free(f);
	return 0;
}

static struct hb_ip ip(const char *s)
{
	struct hb_ip a;

	assert_int_equal(hb_ip_parse(s, &a), 0);
	return a;
}

/* A bare event without envelope: only @timestamp and ecs.version are derived. */
static struct event *bare(struct fx *f)
{
	struct event *ev = ev_pool_get(f->pool, EV_KIND_SELF, NULL);

	assert_non_null(ev);
	ev->ts = 0;
	return ev;
}

#define BARE_HEAD "{\"@timestamp\":\"1970-01-01T00:00:00.000Z\""
#define BARE_ECS "\"ecs\":{\"version\":\"8.0.0\"}"

static const char *const anomaly_names[] = {"encode.key_conflicts", "encode.truncated_strings",
					    "encode.non_finite"};

/* Encode ev with the general encoder (o.tmpl NULL) and again with a template for
 * the same options: without its shape cache, then twice with it (the first call
 * records the shape, the second is written from it). Every document and the
 * anomalies each one counts must be the same. Returns the document. */
static const char *enc_both(struct fx *f, struct event *ev, const struct encode_opts *opts)
{
	struct encode_opts o = *opts;
	struct encode_tmpl *t;
	uint64_t before[3], general[3];
	char *want;
	size_t i;
	int pass;

	for (i = 0; i < 3; i++)
		before[i] = metrics_get(anomaly_names[i]);
	o.tmpl = NULL;
	strbuf_reset(&f->out);
	assert_int_equal(encode_event(ev, &o, &f->out), 0);
	want = strdup(strbuf_cstr(&f->out));
	assert_non_null(want);
	for (i = 0; i < 3; i++)
		general[i] = metrics_get(anomaly_names[i]) - before[i];

	t = encode_tmpl_new(&o);
	assert_non_null(t);
	o.tmpl = t;
	for (pass = 0; pass < 3; pass++) {
		o.no_shape_cache = pass == 0;
		strbuf_reset(&f->out);
		assert_int_equal(encode_event(ev, &o, &f->out), 0);
		assert_string_equal(strbuf_cstr(&f->out), want);
	}
	for (i = 0; i < 3; i++) {
		assert_int_equal(metrics_get(anomaly_names[i]) - before[i], 4 * general[i]);
		metric_add(metrics_counter(anomaly_names[i]), (uint64_t)0 - 3 * general[i]);
	}
	encode_tmpl_free(t);
	free(want);
	return strbuf_cstr(&f->out);
}

static const char *enc(struct fx *f, struct event *ev)
{
	return enc_both(f, ev, &f->o);
}

static json_object *parse(const char *s)
{
	json_object *j = json_tokener_parse(s);

	if (!j)
		fail_msg("invalid JSON: %s", s);
	return j;
}

/* Value at a dotted path of nested objects (borrowed from root). */
static json_object *at(json_object *root, const char *path)
{
	char buf[256], *save = NULL, *tok;
	json_object *cur = root;

	snprintf(buf, sizeof(buf), "%s", path);
	for (tok = strtok_r(buf, ".", &save); tok; tok = strtok_r(NULL, ".", &save))
		if (!cur || !json_object_object_get_ex(cur, tok, &cur))
			return NULL;
	return cur;
}

static const char *at_str(json_object *root, const char *path)
{
	json_object *v = at(root, path);

	if (!v || !json_object_is_type(v, json_type_string))
		fail_msg("%s is not a string", path);
	return json_object_get_string(v);
}

static int64_t at_int(json_object *root, const char *path)
{
	json_object *v = at(root, path);

	if (!v || !json_object_is_type(v, json_type_int))
		fail_msg("%s is not an integer", path);
	return json_object_get_int64(v);
}

static struct event *http_txn(struct fx *f)
{
	struct event *ev = ev_pool_get(f->pool, EV_KIND_TRANSACTION, "http");

	assert_non_null(ev);
	ev->status = EV_STATUS_OK;
	ev->ts = T_START;
	ev->start_ns = T_START;
	ev->end_ns = T_END;
	ev->has_tuple = true;
	ev->transport = IPPROTO_TCP;
	ev->client_ip = ip("172.31.98.49");
	ev->server_ip = ip("93.184.216.34");
	ev->client_port = 55874;
	ev->server_port = 80;
	ev->has_client_bytes = ev->has_server_bytes = true;
	ev->client_bytes = 130;
	ev->server_bytes = 1591;
	return ev;
}

static void http_fields(struct event *ev)
{
	assert_int_equal(ev_set_strz(ev, "method", "GET"), 0);
	assert_int_equal(ev_set_strz(ev, "query", "GET /"), 0);
	assert_int_equal(ev_set_strz(ev, "url.full", "http://www.example.com/"), 0);
	assert_int_equal(ev_set_strz(ev, "url.scheme", "http"), 0);
	assert_int_equal(ev_set_strz(ev, "url.domain", "www.example.com"), 0);
	assert_int_equal(ev_set_strz(ev, "url.path", "/"), 0);
	assert_int_equal(ev_set_strz(ev, "http.version", "1.1"), 0);
	assert_int_equal(ev_set_strz(ev, "http.request.method", "GET"), 0);
	assert_int_equal(ev_set_uint(ev, "http.request.bytes", 130), 0);
	assert_int_equal(ev_set_uint(ev, "http.response.status_code", 200), 0);
	assert_int_equal(ev_set_strz(ev, "http.response.status_phrase", "ok"), 0);
	assert_int_equal(ev_set_uint(ev, "http.response.bytes", 1591), 0);
	assert_int_equal(ev_set_uint(ev, "http.response.body.bytes", 1270), 0);
	assert_int_equal(ev_set_strz(ev, "user_agent.original", "curl/7.37.1"), 0);
	assert_int_equal(ev_set_strz(ev, "destination.domain", "www.example.com"), 0);
	assert_int_equal(ev_set_strz(ev, "server.domain", "www.example.com"), 0);
	assert_int_equal(ev_append_str(ev, "related.hosts", "www.example.com", 15), 0);
}

/* The whole document, byte for byte: envelope derivation, merge of parser fields
 * into envelope objects, sorting at every level, Community ID spec vector. */
static void test_http_document(void **state)
{
	struct fx *f = *state;
	struct event *ev = http_txn(f);
	static const char expect[] =
	    "{\"@timestamp\":\"2015-02-18T00:13:06.231Z\","
	    "\"agent\":{\"name\":\"host1\",\"type\":\"hostbeat\",\"version\":\"8.0.0\"},"
	    "\"client\":{\"bytes\":130,\"ip\":\"172.31.98.49\",\"port\":55874},"
	    "\"destination\":{\"bytes\":1591,\"domain\":\"www.example.com\","
	    "\"ip\":\"93.184.216.34\",\"port\":80},"
	    "\"ecs\":{\"version\":\"8.0.0\"},"
	    "\"event\":{\"category\":[\"network\"],\"dataset\":\"http\",\"duration\":18341000,"
	    "\"end\":\"2015-02-18T00:13:06.249783Z\",\"kind\":\"event\","
	    "\"start\":\"2015-02-18T00:13:06.231442Z\",\"type\":[\"connection\",\"protocol\"]},"
	    "\"host\":{\"name\":\"host1\"},"
	    "\"http\":{\"request\":{\"bytes\":130,\"method\":\"GET\"},"
	    "\"response\":{\"body\":{\"bytes\":1270},\"bytes\":1591,\"status_code\":200,"
	    "\"status_phrase\":\"ok\"},\"version\":\"1.1\"},"
	    "\"method\":\"GET\","
	    "\"network\":{\"bytes\":1721,\"community_id\":\"1:TMPM5eEnGOXfxAjx6NKlyjx+X10=\","
	    "\"protocol\":\"http\",\"transport\":\"tcp\",\"type\":\"ipv4\"},"
	    "\"query\":\"GET /\","
	    "\"related\":{\"hosts\":[\"www.example.com\"],"
	    "\"ip\":[\"172.31.98.49\",\"93.184.216.34\"]},"
	    "\"server\":{\"bytes\":1591,\"domain\":\"www.example.com\","
	    "\"ip\":\"93.184.216.34\",\"port\":80},"
	    "\"source\":{\"bytes\":130,\"ip\":\"172.31.98.49\",\"port\":55874},"
	    "\"status\":\"OK\",\"type\":\"http\","
	    "\"url\":{\"domain\":\"www.example.com\",\"full\":\"http://www.example.com/\","
	    "\"path\":\"/\",\"scheme\":\"http\"},"
	    "\"user_agent\":{\"original\":\"curl/7.37.1\"}}";

	f->o.agent_type = "hostbeat";
	f->o.agent_name = "host1";
	f->o.agent_version = "8.0.0";
	f->o.host_name = "host1";
	http_fields(ev);
	assert_string_equal(enc(f, ev), expect);
	assert_int_equal(metrics_get("encode.key_conflicts"), 0);
	ev_pool_put(ev);
}

/* DNS golden vector: udp 172.31.98.49:51958 → 8.8.8.8:53; array of objects. */
static void test_dns_answers_and_related_ip(void **state)
{
	struct fx *f = *state;
	struct event *ev = http_txn(f);
	struct hb_ip a6 = ip("2606:2800:220:1:248:1893:25c8:1946"), cli = ip("172.31.98.49");
	json_object *j, *ans, *rel;

	ev->dataset = "dns";
	ev->transport = IPPROTO_UDP;
	ev->server_ip = ip("8.8.8.8");
	ev->client_port = 51958;
	ev->server_port = 53;
	/* element 1 first: output is ordered by elem, members by name */
	assert_int_equal(ev_obj_str(ev, "dns.answers", 1, "name", "b.example", 9), 0);
	assert_int_equal(ev_obj_str(ev, "dns.answers", 0, "type", "AAAA", 4), 0);
	assert_int_equal(ev_obj_str(ev, "dns.answers", 0, "name", "www.example.com", 15), 0);
	assert_int_equal(ev_obj_uint(ev, "dns.answers", 0, "ttl", 21353), 0);
	assert_int_equal(ev_obj_uint(ev, "dns.answers", 1, "ttl", 1), 0);
	assert_int_equal(ev_obj_uint(ev, "dns.answers", 1, "ttl", 2), 0); /* last wins */
	assert_int_equal(ev_set_uint(ev, "dns.answers_count", 2), 0);
	assert_int_equal(ev_append_ip(ev, "related.ip", &cli), 0); /* duplicate */
	assert_int_equal(ev_append_ip(ev, "related.ip", &a6), 0);
	assert_int_equal(ev_append_str(ev, "related.ip", "8.8.8.8", 7), 0); /* duplicate */
	assert_int_equal(ev_append_str(ev, "related.ip", "10.0.0.1", 8), 0);
	assert_int_equal(ev_append_ip(ev, "related.ip", &a6), 0); /* duplicate */

	j = parse(enc(f, ev));
	assert_string_equal(at_str(j, "network.community_id"), "1:/Zwm1tJot2cAhFAO0OxKQHuXs3Y=");
	assert_string_equal(at_str(j, "network.transport"), "udp");
	ans = at(j, "dns.answers");
	assert_non_null(ans);
	assert_true(json_object_is_type(ans, json_type_array));
	assert_int_equal(json_object_array_length(ans), 2);
	assert_string_equal(at_str(json_object_array_get_idx(ans, 0), "name"), "www.example.com");
	assert_int_equal(at_int(json_object_array_get_idx(ans, 0), "ttl"), 21353);
	assert_string_equal(at_str(json_object_array_get_idx(ans, 1), "name"), "b.example");
	assert_int_equal(at_int(json_object_array_get_idx(ans, 1), "ttl"), 2);
	assert_int_equal(json_object_object_length(json_object_array_get_idx(ans, 1)), 2);
	assert_int_equal(at_int(j, "dns.answers_count"), 2);
	assert_non_null(strstr(strbuf_cstr(&f->out),
			       "{\"name\":\"www.example.com\",\"ttl\":21353,\"type\":\"AAAA\"}"));

	rel = at(j, "related.ip");
	assert_non_null(rel);
	assert_int_equal(json_object_array_length(rel), 4);
	assert_string_equal(json_object_get_string(json_object_array_get_idx(rel, 0)),
			    "172.31.98.49");
	assert_string_equal(json_object_get_string(json_object_array_get_idx(rel, 1)), "8.8.8.8");
	assert_string_equal(json_object_get_string(json_object_array_get_idx(rel, 2)),
			    "2606:2800:220:1:248:1893:25c8:1946");
	assert_string_equal(json_object_get_string(json_object_array_get_idx(rel, 3)), "10.0.0.1");
	json_object_put(j);
	ev_pool_put(ev);
}

static void test_nesting_and_sorting(void **state)
{
	struct fx *f = *state;
	struct event *ev = bare(f);

	/* '.' ranks below every byte: "zz" object before "zz-x", "zz.c" object inside */
	assert_int_equal(ev_set_uint(ev, "zz.b", 1), 0);
	assert_int_equal(ev_set_uint(ev, "zz-x", 4), 0);
	assert_int_equal(ev_set_uint(ev, "zz.a", 2), 0);
	assert_int_equal(ev_set_int(ev, "aa", -3), 0);
	assert_int_equal(ev_set_uint(ev, "zz.c.d", 5), 0);
	assert_int_equal(ev_set_bool(ev, "zz.c.a", true), 0);
	assert_int_equal(ev_set_bool(ev, "Z", false), 0);
	assert_int_equal(ev_set_uint(ev, "zzz", 6), 0);
	assert_string_equal(enc(f, ev),
			    BARE_HEAD ",\"Z\":false,\"aa\":-3," BARE_ECS ","
				      "\"zz\":{\"a\":2,\"b\":1,\"c\":{\"a\":true,\"d\":5}},"
				      "\"zz-x\":4,\"zzz\":6}");
	ev_pool_put(ev);
}

static void test_arrays_and_duplicates(void **state)
{
	struct fx *f = *state;
	struct event *ev = bare(f);

	assert_int_equal(ev_append_str(ev, "x.list", "b", 1), 0);
	assert_int_equal(ev_set_uint(ev, "x.n", 1), 0);
	assert_int_equal(ev_append_str(ev, "x.list", "a", 1), 0);
	assert_int_equal(ev_append_str(ev, "x.list", "b", 1), 0); /* not a set: kept */
	assert_int_equal(ev_set_uint(ev, "x.n", 2), 0);           /* last one wins */
	assert_int_equal(ev_append_str(ev, "related.user", "u", 1), 0);
	assert_int_equal(ev_append_str(ev, "related.user", "u", 1), 0); /* a set */
	assert_string_equal(enc(f, ev), BARE_HEAD "," BARE_ECS ",\"related\":{\"user\":[\"u\"]},"
						  "\"x\":{\"list\":[\"b\",\"a\",\"b\"],\"n\":2}}");
	assert_int_equal(metrics_get("encode.key_conflicts"), 0);
	ev_pool_put(ev);
}

static void test_key_conflicts(void **state)
{
	struct fx *f = *state;
	struct event *ev = bare(f);

	assert_int_equal(ev_set_uint(ev, "a", 1), 0);
	assert_int_equal(ev_set_uint(ev, "a.b", 2), 0);
	assert_int_equal(ev_set_uint(ev, "c", 3), 0);         /* scalar ... */
	assert_int_equal(ev_append_str(ev, "c", "x", 1), 0);  /* ... and array: array wins */
	assert_int_equal(ev_set_uint(ev, "d", 4), 0);         /* scalar ... */
	assert_int_equal(ev_obj_uint(ev, "d", 0, "m", 5), 0); /* ... and objects: objects win */
	assert_int_equal(ev_set_uint(ev, "e.f", 6), 0);
	assert_int_equal(ev_set_uint(ev, "e.f.g", 7), 0);
	assert_string_equal(enc(f, ev),
			    BARE_HEAD ",\"a\":{\"b\":2},\"c\":[\"x\"],\"d\":[{\"m\":5}],"
				      "\"e\":{\"f\":{\"g\":7}}," BARE_ECS "}");
	assert_int_equal(metrics_get("encode.key_conflicts"), 4);
	ev_pool_put(ev);
}

static void test_times(void **state)
{
	struct fx *f = *state;
	struct event *ev = http_txn(f);
	json_object *j;

	assert_int_equal(ev_set_time(ev, "tls.server.not_after", 1000001000ULL), 0);
	j = parse(enc(f, ev));
	assert_string_equal(at_str(j, "@timestamp"), "2015-02-18T00:13:06.231Z");
	assert_string_equal(at_str(j, "event.start"), "2015-02-18T00:13:06.231442Z");
	assert_string_equal(at_str(j, "event.end"), "2015-02-18T00:13:06.249783Z");
	assert_int_equal(at_int(j, "event.duration"), 18341000);
	assert_string_equal(at_str(j, "tls.server.not_after"), "1970-01-01T00:00:01.000001Z");
	json_object_put(j);

	/* a response without request: no start, no duration */
	ev->start_ns = 0;
	j = parse(enc(f, ev));
	assert_null(at(j, "event.start"));
	assert_null(at(j, "event.duration"));
	assert_string_equal(at_str(j, "event.end"), "2015-02-18T00:13:06.249783Z");
	json_object_put(j);
	ev_pool_put(ev);
}

/* The encoder's own date arithmetic agrees with clock_format_rfc3339() (gmtime). */
static void test_time_formatting_matches_clock(void **state)
{
	static const uint64_t secs[] = {0,
					59,
					86399,
					86400,
					951782400 /* 2000-02-29 */,
					951868800,
					1078012800 /* 2004-02-29 */,
					1456704000,
					1440719999,
					1709164800 /* 2024-02-29 */,
					2147483647,
					4107456000 /* 2100-02-28 */,
					4107542400 /* 2100-03-01 */,
					4102444799,
					9000000000ULL};
	struct fx *f = *state;
	char want[64], got[80];
	size_t i;

	for (i = 0; i < sizeof(secs) / sizeof(secs[0]); i++) {
		uint64_t ns = secs[i] * NS_PER_SEC + (i * 123456789ULL) % NS_PER_SEC;
		struct event *ev = bare(f);
		json_object *j;

		ev->ts = ns;
		assert_int_equal(ev_set_time(ev, "t", ns), 0);
		j = parse(enc(f, ev));
		assert_true(clock_format_rfc3339(ns, 6, want, sizeof(want)) > 0);
		assert_string_equal(at_str(j, "t"), want);
		assert_true(clock_format_rfc3339(ns, 3, want, sizeof(want)) > 0);
		assert_string_equal(at_str(j, "@timestamp"), want);
		clock_format_index_date(ns, want);
		encode_index_name(ev, got, sizeof(got));
		assert_string_equal(got + strlen("hostbeat-metrics-"), want);
		json_object_put(j);
		ev_pool_put(ev);
	}
}

static void test_envelope_variants(void **state)
{
	struct fx *f = *state;
	struct event *ev = http_txn(f);
	json_object *j;

	ev->client_ip = ip("fe80::1");
	ev->server_ip = ip("fe80::2");
	ev->has_server_bytes = false;
	ev->status = EV_STATUS_SERVER_ERROR;
	ev->iface = "docker0";
	j = parse(enc(f, ev));
	assert_string_equal(at_str(j, "network.type"), "ipv6");
	assert_string_equal(at_str(j, "status"), "Server Error");
	assert_string_equal(at_str(j, "observer.ingress.interface.name"), "docker0");
	assert_string_equal(at_str(j, "source.ip"), "fe80::1");
	assert_int_equal(at_int(j, "source.bytes"), 130);
	assert_null(at(j, "destination.bytes"));
	assert_null(at(j, "server.bytes"));
	assert_null(at(j, "network.bytes"));
	assert_null(at(j, "agent"));
	assert_null(at(j, "tags"));
	json_object_put(j);

	/* ICMP: no ports, ipv6-icmp transport name */
	ev->transport = IPPROTO_ICMPV6;
	ev->client_port = 128;
	ev->server_port = 0;
	ev->status = EV_STATUS_CLIENT_ERROR;
	j = parse(enc(f, ev));
	assert_string_equal(at_str(j, "network.transport"), "ipv6-icmp");
	assert_string_equal(at_str(j, "status"), "Client Error");
	assert_null(at(j, "source.port"));
	assert_null(at(j, "server.port"));
	assert_non_null(at(j, "network.community_id"));
	json_object_put(j);
	ev_pool_put(ev);
}

static void test_legacy_fields(void **state)
{
	struct fx *f = *state;
	struct event *ev = http_txn(f);
	const char *legacy[] = {"client_ip", "client_port",  "ip",        "port", "bytes_in",
				"bytes_out", "responsetime", "transport", "count"};
	json_object *j;
	size_t i;

	j = parse(enc(f, ev));
	for (i = 0; i < sizeof(legacy) / sizeof(legacy[0]); i++)
		if (at(j, legacy[i]))
			fail_msg("%s present without legacy_fields", legacy[i]);
	json_object_put(j);

	f->o.legacy_fields = true;
	ev->end_ns = T_START + 38999999; /* 38.999999 ms → 38 (truncated) */
	j = parse(enc(f, ev));
	assert_string_equal(at_str(j, "client_ip"), "172.31.98.49");
	assert_int_equal(at_int(j, "client_port"), 55874);
	assert_string_equal(at_str(j, "ip"), "93.184.216.34");
	assert_int_equal(at_int(j, "port"), 80);
	assert_int_equal(at_int(j, "bytes_in"), 130);
	assert_int_equal(at_int(j, "bytes_out"), 1591);
	assert_int_equal(at_int(j, "responsetime"), 38);
	assert_string_equal(at_str(j, "transport"), "tcp");
	assert_int_equal(at_int(j, "count"), 1);
	assert_int_equal(at_int(j, "event.duration"), 38999999);
	json_object_put(j);
	ev_pool_put(ev);
}

static void test_agent_tags_metric(void **state)
{
	struct fx *f = *state;
	char *tv[] = {"web", "prod", "web"};
	struct cfg_strlist tags = {tv, 3};
	struct event *ev = ev_pool_get(f->pool, EV_KIND_METRIC, "system.cpu");
	json_object *j, *t;

	assert_non_null(ev);
	f->o.agent_type = "hostbeat";
	f->o.agent_id = "id-1";
	f->o.agent_ephemeral_id = "eph-1";
	f->o.tags = &tags;
	assert_int_equal(ev_set_double(ev, "system.cpu.total.pct", 1.0979), 0);
	j = parse(enc(f, ev));
	assert_string_equal(at_str(j, "agent.id"), "id-1");
	assert_string_equal(at_str(j, "agent.ephemeral_id"), "eph-1");
	assert_string_equal(at_str(j, "event.dataset"), "system.cpu");
	assert_string_equal(at_str(j, "event.module"), "system");
	assert_string_equal(at_str(j, "metricset.name"), "cpu");
	assert_null(at(j, "event.kind"));
	assert_null(at(j, "type"));
	t = at(j, "tags");
	assert_non_null(t);
	assert_int_equal(json_object_array_length(t), 3);
	assert_string_equal(json_object_get_string(json_object_array_get_idx(t, 1)), "prod");
	assert_non_null(strstr(strbuf_cstr(&f->out), "\"pct\":1.0979}"));
	json_object_put(j);
	ev_pool_put(ev);
}

static void test_escaping(void **state)
{
	struct fx *f = *state;
	struct event *ev = bare(f);
	char in[40];
	unsigned i;
	json_object *j;

	for (i = 0; i < 32; i++)
		in[i] = (char)i;
	memcpy(in + 32, "\"\\/\x7f", 4);
	assert_int_equal(ev_set_str(ev, "s", in, 36), 0);
	assert_string_equal(enc(f, ev),
			    BARE_HEAD "," BARE_ECS ",\"s\":\""
				      "\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007"
				      "\\b\\t\\n\\u000b\\f\\r\\u000e\\u000f"
				      "\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017"
				      "\\u0018\\u0019\\u001a\\u001b\\u001c\\u001d\\u001e\\u001f"
				      "\\\"\\\\/\x7f\"}");
	j = parse(strbuf_cstr(&f->out));
	assert_int_equal(json_object_get_string_len(at(j, "s")), 36);
	assert_memory_equal(json_object_get_string(at(j, "s")), in, 36);
	json_object_put(j);
	ev_pool_put(ev);
}

static void test_invalid_utf8(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
	    {"a\x80z", "a\xEF\xBF\xBDz"},                             /* lone continuation */
	    {"ab\xE2\x82", "ab\xEF\xBF\xBD"},                         /* truncated at end */
	    {"\xE2\x82z", "\xEF\xBF\xBDz"},                           /* truncated, then ASCII */
	    {"\xC0\xAF", "\xEF\xBF\xBD\xEF\xBF\xBD"},                 /* overlong 2-byte */
	    {"\xE0\x80\xAF", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"}, /* overlong 3-byte */
	    {"\xED\xA0\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"}, /* surrogate D800 */
	    {"\xF4\x90\x80\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"}, /* >10FFFF */
	    {"\xFF\xFE", "\xEF\xBF\xBD\xEF\xBF\xBD"},
	    {"\xE2\x82\xAC \xF0\x9F\x98\x80 \xED\x9F\xBF",
	     "\xE2\x82\xAC \xF0\x9F\x98\x80 \xED\x9F\xBF"},
	};
	struct fx *f = *state;
	char expect[128];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct event *ev = bare(f);
		json_object *j;

		assert_int_equal(ev_set_strz(ev, "s", cases[i].in), 0);
		snprintf(expect, sizeof(expect), BARE_HEAD "," BARE_ECS ",\"s\":\"%s\"}",
			 cases[i].out);
		assert_string_equal(enc(f, ev), expect);
		j = json_tokener_parse(strbuf_cstr(&f->out));
		assert_non_null(j);
		json_object_put(j);
		ev_pool_put(ev);
	}
}

static void test_string_cap(void **state)
{
	struct fx *f = *state;
	struct event *ev = bare(f);

	f->o.max_string = 10;
	assert_int_equal(ev_set_strz(ev, "a", "0123456789abcdef"), 0);
	assert_int_equal(ev_set_strz(ev, "b", "012345678\xE2\x82\xAC"), 0); /* € would cross 10 */
	assert_int_equal(ev_set_strz(ev, "c", "0123456789"), 0);            /* exactly 10: kept */
	assert_int_equal(ev_set_strz(ev, "d", "\n\n\n\n\n\n\n\n\n\n\n"), 0); /* 11 escaped bytes */
	assert_string_equal(enc(f, ev), BARE_HEAD
			    ",\"a\":\"0123456789\",\"b\":\"012345678\",\"c\":\"0123456789\","
			    "\"d\":\"\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\"," BARE_ECS "}");
	assert_int_equal(metrics_get("encode.truncated_strings"), 3);
	ev_pool_put(ev);
}

static void test_doubles(void **state)
{
	struct fx *f = *state;
	struct event *ev = bare(f);
	const double vals[] = {0.1, 1.0 / 3.0, 1e300, -2.5e-300, 123456789.125, 0.0};
	json_object *j;
	size_t i;

	assert_int_equal(ev_set_double(ev, "n.nan", NAN), 0);
	assert_int_equal(ev_set_double(ev, "n.inf", -INFINITY), 0);
	assert_int_equal(ev_set_double(ev, "v.a", 0.1), 0);
	assert_int_equal(ev_set_double(ev, "v.b", 2.0), 0);
	assert_non_null(
	    strstr(enc(f, ev), "\"n\":{\"inf\":null,\"nan\":null},\"v\":{\"a\":0.1,\"b\":2}"));
	assert_int_equal(metrics_get("encode.non_finite"), 2);
	ev_pool_put(ev);

	for (i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		ev = bare(f);
		assert_int_equal(ev_set_double(ev, "d", vals[i]), 0);
		j = parse(enc(f, ev));
		assert_true(json_object_get_double(at(j, "d")) == vals[i]);
		json_object_put(j);
		ev_pool_put(ev);
	}
}

/* The shortest form the encoder writes for a double: what "%.15g" (then 16, 17
 * digits) gives, the first that reads back as the same double. */
static void ref_double(double d, char *b, size_t size)
{
	int prec;

	for (prec = 15; prec < 17; prec++) {
		snprintf(b, size, "%.*g", prec, d);
		if (strtod(b, NULL) == d)
			return;
	}
	snprintf(b, size, "%.17g", d);
}

/* Decimal fractions (the sampler's rounded pcts) and arbitrary doubles: byte for
 * byte what printf gives, whichever path the encoder takes. */
static void test_doubles_as_printf(void **state)
{
	struct fx *f = *state;
	static const double p10[] = {1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7};
	const double edge[] = {1e-4,
			       9.9999e-5,
			       5e-5,
			       0.000012,
			       0.00011,
			       1e15,
			       999999999999999.0,
			       99999999999999.9,
			       0.5,
			       1.0979,
			       2.675,
			       1e-7,
			       123456.654321};
	unsigned seed = 12345;
	char want[48], got[64];
	const char *json, *v;

	for (unsigned i = 0; i < 20000 + sizeof(edge) / sizeof(edge[0]); i++) {
		double d;
		struct event *ev = bare(f);

		if (i < sizeof(edge) / sizeof(edge[0])) {
			d = edge[i];
		} else if (i % 2) {
			uint64_t r = ((uint64_t)rand_r(&seed) << 31 | (uint64_t)rand_r(&seed)) %
				     (i % 4 == 1 ? 10000 : 1000000000000000ULL);

			d = (double)r / p10[(unsigned)rand_r(&seed) % 8];
		} else {
			uint64_t bits = (uint64_t)rand_r(&seed) << 33 ^
					(uint64_t)rand_r(&seed) << 11 ^ (uint64_t)rand_r(&seed);

			memcpy(&d, &bits, sizeof(d));
			if (!isfinite(d))
				d = 1.5;
		}
		if (i % 3 == 0)
			d = -d;
		ref_double(d, want, sizeof(want));
		assert_int_equal(ev_set_double(ev, "d", d), 0);
		json = enc(f, ev);
		v = strstr(json, "\"d\":");
		assert_non_null(v);
		snprintf(got, sizeof(got), "%.*s", (int)strcspn(v + 4, ",}"), v + 4);
		if (strcmp(got, want) != 0)
			fail_msg("%.17g: wrote %s, printf gives %s", d, got, want);
		ev_pool_put(ev);
	}
}

static void test_index_names(void **state)
{
	struct fx *f = *state;
	struct event *ev = bare(f);
	char name[ENCODE_INDEX_NAME_LEN], small[12];

	ev->ts = 1440719999ULL * NS_PER_SEC + 999999999ULL; /* 2015-08-27T23:59:59.999999999Z */
	ev->kind = EV_KIND_TRANSACTION;
	encode_index_name(ev, name, sizeof(name));
	assert_string_equal(name, "packetbeat-2015.08.27");
	ev->ts += 1; /* midnight UTC */
	encode_index_name(ev, name, sizeof(name));
	assert_string_equal(name, "packetbeat-2015.08.28");
	ev->kind = EV_KIND_METRIC;
	encode_index_name(ev, name, sizeof(name));
	assert_string_equal(name, "topbeat-2015.08.28");
	ev->kind = EV_KIND_SELF;
	encode_index_name(ev, name, sizeof(name));
	assert_string_equal(name, "hostbeat-metrics-2015.08.28");
	encode_index_name(ev, small, sizeof(small));
	assert_string_equal(small, "hostbeat-me");
	ev_pool_put(ev);
}

/* ---- key order at every level, on the raw text ---------------------------------- */

static const char *check_value(const char *p);

static const char *skip_string(const char *p)
{
	assert_int_equal(*p, '"');
	for (p++; *p != '"'; p++) {
		assert_int_not_equal(*p, '\0');
		if (*p == '\\')
			p++;
	}
	return p + 1;
}

/* Members strictly increasing in byte order (no duplicates); returns the end. */
static const char *check_object(const char *p)
{
	const char *prev = NULL, *k, *e;
	size_t prev_len = 0, len;
	int c;

	assert_int_equal(*p++, '{');
	if (*p == '}')
		return p + 1;
	for (;;) {
		k = p + 1;
		e = skip_string(p);
		len = (size_t)(e - 1 - k);
		if (prev) {
			c = memcmp(prev, k, prev_len < len ? prev_len : len);
			if (!(c < 0 || (c == 0 && prev_len < len)))
				fail_msg("\"%.*s\" after \"%.*s\"", (int)len, k, (int)prev_len,
					 prev);
		}
		prev = k;
		prev_len = len;
		assert_int_equal(*e, ':');
		p = check_value(e + 1);
		if (*p == ',') {
			p++;
			continue;
		}
		assert_int_equal(*p, '}');
		return p + 1;
	}
}

static const char *check_value(const char *p)
{
	if (*p == '{')
		return check_object(p);
	if (*p == '"')
		return skip_string(p);
	if (*p == '[') {
		if (*++p == ']')
			return p + 1;
		for (;;) {
			p = check_value(p);
			if (*p == ']')
				return p + 1;
			assert_int_equal(*p++, ',');
		}
	}
	while (*p && *p != ',' && *p != '}' && *p != ']')
		p++;
	return p;
}

static void check_sorted_doc(const char *doc)
{
	json_object *j = parse(doc);

	assert_int_equal(*check_object(doc), '\0');
	json_object_put(j);
}

/* Every derived key (the encoder's table must be in key order: transaction with
 * legacy fields, tags and an interface; metric with module/metricset), with parser
 * keys landing before, between and inside the envelope objects. */
static void test_key_order_everywhere(void **state)
{
	static const char *const keys[] = {
	    "!first",        "@timestamp.x", "agent.aa",
	    "agent.zz",      "bytes_im",     "client.x",
	    "client_ipx",    "count.x",      "destination.a",
	    "destination.q", "ecs.aaa",      "event.action",
	    "event.outcome", "host.id",      "ipa",
	    "metricset.a",   "network.name", "observer.ingress.interface.id",
	    "observer.name", "port_x",       "related.hosts",
	    "responsetimes", "server.x",     "source.z",
	    "statuses",      "tagz",         "transports",
	    "type_x",        "zzz.last",
	};
	struct fx *f = *state;
	char *tv[] = {"t1", "t\"2", "t3"};
	struct cfg_strlist tags = {tv, 3};
	struct event *ev;
	json_object *j;
	const char *doc;
	size_t i;

	f->o.agent_name = "n";
	f->o.agent_id = "id";
	f->o.agent_ephemeral_id = "eid";
	f->o.agent_type = "hostbeat";
	f->o.agent_version = "1";
	f->o.host_name = "h";
	f->o.tags = &tags;
	f->o.legacy_fields = true;
	for (int v6 = 0; v6 < 2; v6++) {
		ev = http_txn(f);
		ev->iface = "eth0";
		if (v6) {
			ev->client_ip = ip("2001:db8::1");
			ev->server_ip = ip("::ffff:10.0.0.1");
		}
		/* reverse order: one run per key */
		for (i = sizeof(keys) / sizeof(keys[0]); i-- > 0;)
			assert_int_equal(ev_set_uint(ev, keys[i], i), 0);
		assert_int_equal(ev_append_ip(ev, "related.ip", &ev->server_ip), 0); /* dup */
		doc = enc(f, ev);
		check_sorted_doc(doc);
		j = parse(doc);
		for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
			assert_int_equal(at_int(j, keys[i]), i);
		assert_string_equal(at_str(j, "observer.ingress.interface.name"), "eth0");
		assert_int_equal(at_int(j, "bytes_in"), 130);
		assert_int_equal(at_int(j, "responsetime"), 18);
		assert_int_equal(json_object_array_length(at(j, "related.ip")), 2);
		assert_int_equal(json_object_array_length(at(j, "tags")), 3);
		assert_string_equal(at_str(j, "network.type"), v6 ? "ipv6" : "ipv4");
		assert_string_equal(at_str(j, "client_ip"), v6 ? "2001:db8::1" : "172.31.98.49");
		assert_string_equal(at_str(j, "ip"), v6 ? "::ffff:10.0.0.1" : "93.184.216.34");
		json_object_put(j);
		ev_pool_put(ev);
	}

	ev = ev_pool_get(f->pool, EV_KIND_METRIC, "system.cpu");
	assert_non_null(ev);
	ev->ts = T_START;
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		assert_int_equal(ev_set_uint(ev, keys[i], i), 0);
	doc = enc(f, ev);
	check_sorted_doc(doc);
	j = parse(doc);
	assert_string_equal(at_str(j, "event.module"), "system");
	assert_string_equal(at_str(j, "metricset.name"), "cpu");
	assert_int_equal(at_int(j, "metricset.a"), 15);
	json_object_put(j);
	ev_pool_put(ev);
}

/* The same fields in any insertion order give the same document: in order, in a
 * few runs (merged as they are), in many runs (merge sort), with arrays of objects
 * whose members come unsorted. */
static void test_insertion_order(void **state)
{
	enum { N = 60 };
	struct fx *f = *state;
	char keys[N][16], want[8192];
	unsigned perm[N], i, k, runs;
	struct event *ev;

	for (i = 0; i < N; i++)
		snprintf(keys[i], sizeof(keys[i]), "%c%c.k%02u", 'a' + i % 7, 'a' + i % 3, i);
	for (runs = 0; runs <= N; runs = runs ? runs * 2 : 1) {
		/* runs == 0: sorted order; else `runs` interleaved ascending sequences */
		for (i = 0, k = 0; runs && k < runs; k++)
			for (unsigned x = k; x < N; x += runs)
				perm[i++] = x;
		for (i = 0; !runs && i < N; i++)
			perm[i] = i;
		ev = http_txn(f);
		for (i = 0; i < N; i++) {
			/* sorted order of these keys is not index order: insert by index */
			assert_int_equal(ev_set_uint(ev, keys[perm[i]], perm[i]), 0);
		}
		for (i = 0; i < 3; i++) {
			assert_int_equal(ev_obj_str(ev, "dns.answers", i, "name", "n", 1), 0);
			assert_int_equal(ev_obj_str(ev, "dns.answers", i, "type", "A", 1), 0);
			assert_int_equal(ev_obj_uint(ev, "dns.answers", i, "class", i), 0);
		}
		if (!runs)
			snprintf(want, sizeof(want), "%s", enc(f, ev));
		else
			assert_string_equal(enc(f, ev), want);
		check_sorted_doc(want);
		ev_pool_put(ev);
	}
	assert_non_null(strstr(want, "\"answers\":[{\"class\":0,\"name\":\"n\",\"type\":\"A\"},"));
}

/* More fields and tags than the stack arrays hold: the heap path. */
static void test_many_fields(void **state)
{
	static const char *const keys[] = {"k.a", "k.b", "k.c", "k.d"};
	struct fx *f = *state;
	struct event *ev = bare(f);
	char *tv[200];
	struct cfg_strlist tags = {tv, 200};
	json_object *j;
	unsigned i;

	for (i = 0; i < 200; i++)
		tv[i] = "t";
	f->o.tags = &tags;
	for (i = 0; i < 1000; i++)
		assert_int_equal(ev_append_str(ev, keys[i % 4], "v", 1), 0);
	j = parse(enc(f, ev));
	assert_int_equal(json_object_array_length(at(j, "k.c")), 250);
	assert_int_equal(json_object_array_length(at(j, "tags")), 200);
	json_object_put(j);
	ev_pool_put(ev);
}

static void test_out_of_memory(void **state)
{
	struct fx *f = *state;
	struct event *ev = http_txn(f);

	http_fields(ev);
	strbuf_reset(&f->out);
	assert_int_equal(strbuf_append(&f->out, "keep", 4), 0);
	mem_fail_after(0);
	assert_int_equal(encode_event(ev, &f->o, &f->out), -ENOMEM);
	mem_fail_reset();
	assert_int_equal(f->out.len, 4); /* the partial document was cut off */
	assert_true(f->out.err);
	assert_int_equal(encode_event(NULL, &f->o, &f->out), -EINVAL);
	ev_pool_put(ev);
}

/* ---- the template's fast path against the general encoder -------------------- */

static uint32_t rnd_next(uint64_t *s)
{
	*s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
	return (uint32_t)(*s >> 33);
}

#define PICK(s, a) ((a)[rnd_next(s) % (sizeof(a) / sizeof((a)[0]))])

/* Random events, each encoded both ways by enc_both(): parser keys before, between,
 * on and inside the derived ones, one key as scalar, array and object array at once,
 * related.ip from the parser, odd bytes in keys, values, dataset, interface, agent
 * strings and tags, every envelope variant. */
static void test_fast_path_matches_general(void **state)
{
	static char deep[2 * 40 + 1];
	/* the last ones: lengths around the 8- and 16-byte key prefixes */
	static const char *const keys[] = {
	    "!first",
	    "0",
	    "@timestamp",
	    "@timestamp.x",
	    "agent",
	    "agent.id",
	    "agent.zz",
	    "bytes_in",
	    "client",
	    "client.ip",
	    "client.x",
	    "client_ip",
	    "count",
	    "destination.domain",
	    "destination.ip.x",
	    "dns.answers",
	    "ecs",
	    "event.action",
	    "event.kind",
	    "event.type",
	    "event.zz",
	    "host.name",
	    "http.request.headers.content-length",
	    "http.request.method",
	    "http.request.bytes",
	    "http.response.status_code",
	    "ip",
	    "metricset.name",
	    "method",
	    "network",
	    "network.community_id",
	    "observer.ingress",
	    "observer.ingress.interface.name",
	    "observer.ingress.interface.name.x",
	    "port",
	    "query",
	    "related.hosts",
	    "related.ip",
	    "related.ip",
	    "related.ip",
	    "related.ip.x",
	    "responsetime",
	    "server.domain",
	    "source.bytes",
	    "status",
	    "status.code",
	    "tags",
	    "tags.x",
	    "transport",
	    "type",
	    "url.full",
	    "zz.top",
	    "k\"ey",
	    "k\xc3\xa9y.x",
	    "aaaaaaaaaaaaaaaaaaaa",
	    "aaaaaaaaaaaaaaaaaaaa.b",
	    "aaaaaaaaaaaaaaaab",
	    "aaaaaaaaaaaaaaaa.b",
	    "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p",
	    deep,
	    "abcdefg",
	    "abcdefgh",
	    "abcdefgh.i",
	    "abcdefghi",
	    "abcdefghijklmno",
	    "abcdefghijklmno.p",
	    "abcdefghijklmnop",
	    "abcdefghijklmnoq",
	    "abcdefghijklmnopq",
	    "abcdefghijklmn.x",
	};
	static const char *const members[] = {"name", "type", "class", "data", "na\"me"};
	static const char *const strs[] = {
	    "",
	    "v",
	    "172.31.98.49",
	    "93.184.216.34",
	    "2001:db8::1",
	    "a\"b\\c\n",
	    "\xff\xfe",
	    "caf\xc3\xa9",
	    "a longer value of some forty bytes......",
	};
	static const char *const datasets[] = {"http",     "dns", "system.cpu", "system.", ".cpu",
					       "sys\"tem", "",    NULL,         "mysql"};
	static const char *const ifaces[] = {NULL, "eth0", "e\"th", ""};
	static const char *const ips[] = {"172.31.98.49", "93.184.216.34", "2001:db8::1",
					  "::ffff:10.0.0.1"};
	static const uint8_t transports[] = {IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP, IPPROTO_ICMPV6,
					     47};
	static const enum ev_kind kinds[] = {EV_KIND_TRANSACTION, EV_KIND_TRANSACTION,
					     EV_KIND_TRANSACTION, EV_KIND_METRIC, EV_KIND_SELF};
	static const size_t caps[] = {0, 0, 5, 100};
	char *tv[] = {"t1", NULL, "t\"2"};
	struct cfg_strlist tags3 = {tv, 3}, tags0 = {tv, 0};
	const struct cfg_strlist *const tagsets[] = {NULL, &tags0, &tags3};
	struct fx *f = *state;
	uint64_t seed = 42;
	struct encode_opts o;
	struct event *ev;
	unsigned it, i, n;

	for (i = 0; i < 40; i++)
		memcpy(deep + 2 * i, "d.", 2);
	deep[79] = '\0'; /* 40 segments: deeper than the encoder nests */
	for (it = 0; it < 4000; it++) {
		memset(&o, 0, sizeof(o));
		o.agent_name = rnd_next(&seed) % 4 ? "n" : NULL;
		o.agent_id = rnd_next(&seed) % 4 ? "id" : "i\"d\x01";
		o.agent_ephemeral_id = rnd_next(&seed) % 2 ? "eid" : NULL;
		o.agent_type = "hostbeat";
		o.agent_version = rnd_next(&seed) % 4 ? "1" : NULL;
		o.host_name = rnd_next(&seed) % 4 ? "h" : "h\xff";
		o.tags = PICK(&seed, tagsets);
		o.legacy_fields = rnd_next(&seed) % 2;
		o.max_string = PICK(&seed, caps);

		ev = ev_pool_get(f->pool, PICK(&seed, kinds), PICK(&seed, datasets));
		assert_non_null(ev);
		ev->ts = T_START + (uint64_t)(rnd_next(&seed) % 3) * 999999999ULL;
		ev->status = (enum ev_status)(rnd_next(&seed) % 5);
		ev->start_ns = rnd_next(&seed) % 4 ? ev->ts : 0;
		ev->end_ns = rnd_next(&seed) % 4 ? ev->ts + rnd_next(&seed) % 3 * 1500000000ULL : 0;
		if (rnd_next(&seed) % 8 == 0)
			ev->end_ns =
			    ev->start_ns ? ev->start_ns - 1 : 0; /* ends before it starts */
		ev->has_tuple = rnd_next(&seed) % 4 != 0;
		ev->transport = PICK(&seed, transports);
		ev->client_ip = ip(PICK(&seed, ips));
		ev->server_ip = rnd_next(&seed) % 4 ? ip(PICK(&seed, ips)) : ev->client_ip;
		ev->client_port = (uint16_t)rnd_next(&seed);
		ev->server_port = (uint16_t)(rnd_next(&seed) % 3 ? 80 : 0);
		ev->has_client_bytes = rnd_next(&seed) % 2;
		ev->has_server_bytes = rnd_next(&seed) % 2;
		ev->client_bytes = rnd_next(&seed) % 5000;
		ev->server_bytes = rnd_next(&seed) % 2 ? 0 : UINT64_MAX / 3;
		ev->iface = PICK(&seed, ifaces);
		if (rnd_next(&seed) % 3 == 0)
			snprintf(ev->community_id, sizeof(ev->community_id), "%s",
				 rnd_next(&seed) % 4 ? "1:abc+/=" : "1:\x01x");

		n = rnd_next(&seed) % 12 ? rnd_next(&seed) % 24 : rnd_next(&seed) % 80;
		for (i = 0; i < n && ev->nfields < ev->fields_cap; i++) {
			struct ev_field *fl = &ev->fields[ev->nfields++];
			const char *sv = PICK(&seed, strs);
			unsigned how = rnd_next(&seed) % 16;

			memset(fl, 0, sizeof(*fl));
			fl->key = rnd_next(&seed) % 40 ? PICK(&seed, keys) : NULL;
			if (how < 3) {
				fl->member = PICK(&seed, members);
				fl->elem = (uint16_t)(rnd_next(&seed) % 3);
			} else if (how < 7) {
				fl->flags = EVF_ARRAY;
			}
			switch (rnd_next(&seed) % 8) {
			case 0:
				fl->type = EV_T_INT;
				fl->v.i = -(int64_t)rnd_next(&seed);
				break;
			case 1:
				fl->type = EV_T_UINT;
				fl->v.u = rnd_next(&seed);
				break;
			case 2:
				fl->type = EV_T_BOOL;
				fl->v.b = rnd_next(&seed) % 2;
				break;
			case 3:
				fl->type = EV_T_DOUBLE;
				fl->v.d = rnd_next(&seed) % 5 ? rnd_next(&seed) / 7.0 : NAN;
				break;
			case 4:
				fl->type = EV_T_IP;
				fl->v.ip = ip(PICK(&seed, ips));
				break;
			case 5:
				fl->type = EV_T_TIME;
				fl->v.u = T_END + rnd_next(&seed);
				break;
			default:
				fl->type = EV_T_STR;
				fl->v.s.p = sv;
				fl->v.s.len = (uint32_t)strlen(sv);
				break;
			}
		}
		check_sorted_doc(enc_both(f, ev, &o));
		ev_pool_put(ev);
	}
}

/* A template made for other options is not used; no memory: -ENOMEM, the partial
 * document cut off, and no template. */
static void test_template_identity_and_memory(void **state)
{
	struct fx *f = *state;
	struct encode_opts a = {.agent_name = "a", .agent_type = "hostbeat"}, b = a;
	struct encode_tmpl *t;
	struct event *ev = http_txn(f);
	char *want;

	http_fields(ev);
	b.agent_name = "b";
	want = strdup(enc_both(f, ev, &b)); /* the document for b */
	assert_non_null(want);
	assert_non_null(strstr(want, "\"name\":\"b\""));
	t = encode_tmpl_new(&a);
	assert_non_null(t);
	b.tmpl = t; /* a's template: ignored */
	strbuf_reset(&f->out);
	assert_int_equal(encode_event(ev, &b, &f->out), 0);
	assert_string_equal(strbuf_cstr(&f->out), want);

	a.tmpl = t;
	strbuf_reset(&f->out);
	assert_int_equal(strbuf_append(&f->out, "keep", 4), 0);
	mem_fail_after(0);
	assert_int_equal(encode_event(ev, &a, &f->out), -ENOMEM);
	assert_null(encode_tmpl_new(&a));
	mem_fail_reset();
	assert_int_equal(f->out.len, 4);
	assert_true(f->out.err);
	assert_null(encode_tmpl_new(NULL));
	encode_tmpl_free(NULL);
	encode_tmpl_free(t);
	free(want);
	ev_pool_put(ev);
}

/* Every number the encoder writes, against printf: the digit count is worked out
 * without a loop (u64_digits()), so the values around each power of ten and of two
 * are checked, in protocol fields and in the envelope. */
static void test_numbers_exact(void **state)
{
	struct fx *f = *state;
	uint64_t vals[3 * 20 + 2 * 64 + 2], p = 1;
	char want[160];
	size_t n = 0, i, k;

	for (k = 0; k < 20; k++, p *= 10) {
		vals[n++] = p - 1;
		vals[n++] = p;
		vals[n++] = p + 1;
	}
	for (k = 0; k < 64; k++) {
		vals[n++] = ((uint64_t)1 << k) - 1;
		vals[n++] = (uint64_t)1 << k;
	}
	vals[n++] = UINT64_MAX;
	vals[n++] = UINT64_MAX - 1;
	for (i = 0; i < n; i++) {
		struct event *ev = http_txn(f);
		const char *doc;

		ev->client_bytes = vals[i];
		ev->server_bytes = vals[n - 1 - i];
		ev->client_port = (uint16_t)vals[i];
		assert_int_equal(ev_set_uint(ev, "v.u", vals[i]), 0);
		assert_int_equal(ev_set_int(ev, "v.i", (int64_t)vals[i]), 0);
		assert_int_equal(ev_obj_uint(ev, "v.o", 0, "u", vals[i]), 0);
		doc = enc(f, ev);
		snprintf(want, sizeof(want),
			 "\"v\":{\"i\":%" PRId64 ",\"o\":[{\"u\":%" PRIu64 "}],\"u\":%" PRIu64 "}",
			 (int64_t)vals[i], vals[i], vals[i]);
		assert_non_null(strstr(doc, want));
		snprintf(want, sizeof(want),
			 "\"client\":{\"bytes\":%" PRIu64 ",\"ip\":\"172.31.98.49\",\"port\":%u}",
			 vals[i], (unsigned)(uint16_t)vals[i]);
		assert_non_null(strstr(doc, want));
		snprintf(want, sizeof(want),
			 "\"source\":{\"bytes\":%" PRIu64 ",\"ip\":\"172.31.98.49\",\"port\":%u}",
			 vals[i], (unsigned)(uint16_t)vals[i]);
		assert_non_null(strstr(doc, want));
		snprintf(want, sizeof(want), "\"server\":{\"bytes\":%" PRIu64 ",", vals[n - 1 - i]);
		assert_non_null(strstr(doc, want));
		snprintf(want, sizeof(want), "\"network\":{\"bytes\":%" PRIu64 ",",
			 vals[i] + vals[n - 1 - i]);
		assert_non_null(strstr(doc, want));
		ev_pool_put(ev);
	}
}

/* The JSON text of s[0, len) cut to `cap` content bytes, for strings made of ASCII,
 * U+00E9 and lone 0x80 bytes (a U+FFFD): what the encoder must write. */
static size_t ref_string(const char *s, size_t len, size_t cap, char *out, bool *cut)
{
	size_t i = 0, n = 0, used = 0, w;
	unsigned char c;

	*cut = false;
	out[n++] = '"';
	while (i < len) {
		c = (unsigned char)s[i];
		w = c == 0xC3 ? 2 : c == 0x80 ? 3 : 1; /* content bytes */
		if (used + w > cap) {
			*cut = true;
			break;
		}
		used += w;
		if (c == 0xC3) {
			memcpy(out + n, s + i, 2);
			n += 2;
			i += 2;
			continue;
		}
		if (c == 0x80)
			n += (size_t)sprintf(out + n, "\xEF\xBF\xBD");
		else if (c == '"' || c == '\\')
			n += (size_t)sprintf(out + n, "\\%c", c);
		else if (c == '\n')
			n += (size_t)sprintf(out + n, "\\n");
		else if (c < 0x20)
			n += (size_t)sprintf(out + n, "\\u%04x", c);
		else
			out[n++] = (char)c;
		i++;
	}
	out[n++] = '"';
	out[n] = '\0';
	return n;
}

/* Strings of every length up to 100 with one byte that is not copied as it is at
 * every position (each check in words of 8, 4 and 1 bytes and the escaper's runs
 * meet it at each offset), with and without a cap near the length: the text must be
 * the reference's, by every path, with the cuts counted. */
static void test_strings_every_length(void **state)
{
	static const char *const bad[] = {"\"",   "\\",   "\x01",     "\n",
					  "\x1f", "\x7f", "\xC3\xA9", "\x80"};
	static const char *const keys[] = {
	    "s00", "s01", "s02", "s03", "s04", "s05", "s06", "s07", "s08", "s09", "s10", "s11",
	    "s12", "s13", "s14", "s15", "s16", "s17", "s18", "s19", "s20", "s21", "s22", "s23",
	    "s24", "s25", "s26", "s27", "s28", "s29", "s30", "s31", "s32", "s33", "s34", "s35",
	    "s36", "s37", "s38", "s39", "s40", "s41", "s42", "s43", "s44", "s45", "s46", "s47",
	};
	struct fx *f = *state;
	char s[128], want[1024], key[16];
	size_t len, b, at, first, cap_i, k;
	const size_t nk = sizeof(keys) / sizeof(keys[0]);

	for (cap_i = 0; cap_i < 3; cap_i++) {
		for (len = 0; len <= 100; len++) {
			for (b = 0; b < sizeof(bad) / sizeof(bad[0]); b++) {
				size_t blen = strlen(bad[b]);

				/* positions [first, first + nk) per event; one plain string too */
				for (first = 0; first == 0 || first + blen <= len; first += nk) {
					struct event *ev = bare(f);
					uint64_t cut0 = metrics_get("encode.truncated_strings"),
						 cuts = 0;
					const char *doc;
					bool cut;

					f->o.max_string = cap_i == 0   ? 0
							  : cap_i == 1 ? len
								       : len / 2 + 1;
					for (k = 0; k < nk; k++) {
						at = first + k;
						memset(s, 'a' + (int)(at % 26), len);
						if (at + blen <= len)
							memcpy(s + at, bad[b], blen);
						else if (k)
							break;
						assert_int_equal(ev_set_str(ev, keys[k], s, len),
								 0);
					}
					doc = enc(f, ev);
					for (k = 0; k < nk; k++) {
						at = first + k;
						memset(s, 'a' + (int)(at % 26), len);
						if (at + blen <= len)
							memcpy(s + at, bad[b], blen);
						else if (k)
							break;
						snprintf(key, sizeof(key), "\"%s\":", keys[k]);
						strcpy(want, key);
						ref_string(s, len,
							   f->o.max_string
							       ? f->o.max_string
							       : ENCODE_DEFAULT_MAX_STRING,
							   want + strlen(key), &cut);
						cuts += cut;
						if (!strstr(doc, want))
							fail_msg("len %zu at %zu: want %s in %s",
								 len, at, want, doc);
					}
					assert_int_equal(
					    metrics_get("encode.truncated_strings") - cut0, cuts);
					ev_pool_put(ev);
				}
			}
		}
	}
	f->o.max_string = 0;
}

/* Addresses are formatted through a per-thread cache of their text: many of them
 * (more than it holds, v4 and v6, some alike in their first bytes) must each get
 * inet_ntop()'s text wherever they appear, and an address that is none is null. */
static void test_address_texts(void **state)
{
	struct fx *f = *state;
	char c[INET6_ADDRSTRLEN], s[INET6_ADDRSTRLEN], v[INET6_ADDRSTRLEN], want[256];
	uint32_t x = 12345;
	unsigned i, k;

	for (i = 0; i < 400; i++) {
		struct event *ev = http_txn(f);
		struct hb_ip a, none;
		const char *doc;

		for (k = 0; k < 16; k++) { /* a small LCG: reproducible */
			x = x * 1103515245u + 12345u;
			ev->server_ip.a[k] = (uint8_t)(x >> 16);
			a.a[k] = (uint8_t)(x >> 8);
		}
		if (i % 3 == 0) /* alike: the first bytes shared, then differing */
			memcpy(ev->server_ip.a, "\x20\x01\x0d\xb8\0\0\0\0", 8);
		if (i < 2) /* all zeros (an empty cache entry's bytes) */
			memset(ev->server_ip.a, 0, sizeof(ev->server_ip.a));
		ev->client_ip.a[3] = (uint8_t)i;
		ev->client_ip.a[2] = (uint8_t)(i >> 8);
		ev->server_ip.ver = i % 2 ? 6 : 4;
		if (i % 2)
			ev->client_ip = ip("::ffff:10.0.0.1"), ev->client_ip.a[15] = (uint8_t)i;
		a.ver = i % 5 == 0 ? 4 : 6;
		memset(&none, 0, sizeof(none));
		assert_int_equal(ev_set_ip(ev, "v.ip", &a), 0);
		assert_int_equal(ev_set_ip(ev, "v.none", &none), 0);
		assert_int_equal(ev_append_ip(ev, "dns.resolved_ip", &a), 0);
		assert_int_equal(ev_append_ip(ev, "related.ip", &a), 0);
		doc = enc(f, ev);
		assert_non_null(inet_ntop(ev->client_ip.ver == 6 ? AF_INET6 : AF_INET,
					  ev->client_ip.a, c, sizeof(c)));
		assert_non_null(inet_ntop(ev->server_ip.ver == 6 ? AF_INET6 : AF_INET,
					  ev->server_ip.a, s, sizeof(s)));
		assert_non_null(inet_ntop(a.ver == 6 ? AF_INET6 : AF_INET, a.a, v, sizeof(v)));
		snprintf(want, sizeof(want), "\"client\":{\"bytes\":130,\"ip\":\"%s\",", c);
		assert_non_null(strstr(doc, want));
		snprintf(want, sizeof(want), "\"server\":{\"bytes\":1591,\"ip\":\"%s\",", s);
		assert_non_null(strstr(doc, want));
		snprintf(want, sizeof(want), "\"resolved_ip\":[\"%s\"]", v);
		assert_non_null(strstr(doc, want));
		snprintf(want, sizeof(want), "\"v\":{\"ip\":\"%s\",\"none\":null}", v);
		assert_non_null(strstr(doc, want));
		snprintf(want, sizeof(want), "\"related\":{\"ip\":[\"%s\",\"%s\",\"%s\"]}", c, s,
			 v);
		if (strcmp(c, v) && strcmp(s, v))
			assert_non_null(strstr(doc, want));
		ev_pool_put(ev);
	}
}

/* related.ip as a set when the parser's values are all addresses (as DNS adds
 * them; written without text compares) and when they are not: addresses equal to
 * the client's or server's, to each other, v4 vs the same v4 mapped into v6, values
 * that are no address (equal to each other: one null), and more values than the
 * duplicate check looks at (the first SET_SCAN_MAX). */
static void test_related_ip_sets(void **state)
{
	struct fx *f = *state;
	struct hb_ip cli = ip("172.31.98.49"), srv = ip("93.184.216.34"), mapped,
		     v6 = ip("2001:db8::1"), none, a;
	json_object *j, *rel;
	unsigned i, round;

	mapped = ip("::ffff:172.31.98.49");
	memset(&none, 0, sizeof(none));
	for (round = 0; round < 2; round++) {
		struct event *ev = http_txn(f);

		assert_int_equal(ev_append_ip(ev, "related.ip", &srv), 0);
		assert_int_equal(ev_append_ip(ev, "related.ip", &mapped), 0);
		assert_int_equal(ev_append_ip(ev, "related.ip", &none), 0);
		assert_int_equal(ev_append_ip(ev, "related.ip", &v6), 0);
		assert_int_equal(ev_append_ip(ev, "related.ip", &none), 0);
		assert_int_equal(ev_append_ip(ev, "related.ip", &cli), 0);
		assert_int_equal(ev_append_ip(ev, "related.ip", &v6), 0);
		if (round) /* not all addresses: the general set */
			assert_int_equal(ev_append_str(ev, "related.ip", "2001:db8::1", 11), 0);
		assert_non_null(strstr(enc(f, ev),
				       "\"ip\":[\"172.31.98.49\",\"93.184.216.34\","
				       "\"::ffff:172.31.98.49\",null,\"2001:db8::1\"]"));
		ev_pool_put(ev);
	}
	/* 2 + 64 values: the duplicate check looks at the first SET_SCAN_MAX (64) only,
	 * so the last value, equal to the 65th, is written again */
	for (round = 0; round < 2; round++) {
		struct event *ev = http_txn(f);

		for (i = 0; i < 62; i++) {
			a = ip("10.0.0.0");
			a.a[3] = (uint8_t)i;
			if (round && i == 7)
				a = srv; /* within the window: left out */
			assert_int_equal(ev_append_ip(ev, "related.ip", &a), 0);
		}
		a = ip("10.0.1.1");
		assert_int_equal(ev_append_ip(ev, "related.ip", &a), 0);
		assert_int_equal(ev_append_ip(ev, "related.ip", &a), 0);
		j = parse(enc(f, ev));
		rel = at(j, "related.ip");
		assert_non_null(rel);
		assert_int_equal(json_object_array_length(rel), 66 - round);
		for (i = 64 - round; i < 66 - round; i++)
			assert_string_equal(
			    json_object_get_string(json_object_array_get_idx(rel, i)), "10.0.1.1");
		json_object_put(j);
		ev_pool_put(ev);
	}
}

/* Other related.* keys are sets too, of any values: strings, and an address equal
 * to a string by its text. One value is no set (nothing to compare). */
static void test_related_other_sets(void **state)
{
	struct fx *f = *state;
	struct hb_ip a = ip("10.1.2.3");
	struct event *ev = http_txn(f);

	assert_int_equal(ev_append_str(ev, "related.user", "bob", 3), 0);
	assert_int_equal(ev_append_str(ev, "related.user", "10.1.2.3", 8), 0);
	assert_int_equal(ev_append_str(ev, "related.user", "bob", 3), 0);
	assert_int_equal(ev_append_ip(ev, "related.user", &a), 0);
	assert_int_equal(ev_append_str(ev, "related.user", "al\"ice", 6), 0);
	assert_non_null(strstr(enc(f, ev),
			       "\"related\":{\"ip\":[\"172.31.98.49\",\"93.184.216.34\"],"
			       "\"user\":[\"bob\",\"10.1.2.3\",\"al\\\"ice\"]}"));
	ev_pool_put(ev);
}

/* Times come from a per-thread cache of the last second: events going forward and
 * back across seconds (and a day, and the epoch) must each read as gmtime says. */
static void test_time_sequence(void **state)
{
	/* from T_START (.231442000): to a whole second, whose end is the next one */
	static const int64_t steps[] = {0,
					-231442000,
					1,
					999999,
					1000000000 - 1000001,
					1,
					-1,
					-999999999,
					1000000000,
					86400000000000,
					-86400000000000,
					-1,
					7,
					1000000000,
					999999999,
					1};
	struct fx *f = *state;
	uint64_t t = T_START;
	char want[64];
	size_t i;

	for (i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		struct event *ev = http_txn(f);
		json_object *j;

		t += (uint64_t)steps[i];
		ev->ts = t;
		ev->start_ns = t + 999999000;
		ev->end_ns = t + 1000000000;
		j = parse(enc(f, ev));
		assert_true(clock_format_rfc3339(ev->ts, 3, want, sizeof(want)) > 0);
		assert_string_equal(at_str(j, "@timestamp"), want);
		assert_true(clock_format_rfc3339(ev->start_ns, 6, want, sizeof(want)) > 0);
		assert_string_equal(at_str(j, "event.start"), want);
		assert_true(clock_format_rfc3339(ev->end_ns, 6, want, sizeof(want)) > 0);
		assert_string_equal(at_str(j, "event.end"), want);
		json_object_put(j);
		ev_pool_put(ev);
	}
}

static void test_pretty(void **state)
{
	struct fx *f = *state;
	static const char in[] = "{\"a\":{\"b\":[1,\"x,{}:\\\"\"],\"e\":{},\"f\":[]},\"c\":2}";
	static const char want[] = "{\n  \"a\": {\n    \"b\": [\n      1,\n      \"x,{}:\\\"\"\n"
				   "    ],\n    \"e\": {},\n    \"f\": []\n  },\n  \"c\": 2\n}";

	strbuf_reset(&f->out);
	assert_int_equal(encode_pretty(in, strlen(in), &f->out), 0);
	assert_string_equal(strbuf_cstr(&f->out), want);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_http_document, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dns_answers_and_related_ip, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_nesting_and_sorting, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_arrays_and_duplicates, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_key_conflicts, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_times, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_time_formatting_matches_clock, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_envelope_variants, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_legacy_fields, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_agent_tags_metric, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_escaping, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_invalid_utf8, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_string_cap, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_doubles, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_doubles_as_printf, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_index_names, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_key_order_everywhere, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_insertion_order, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_many_fields, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_out_of_memory, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_fast_path_matches_general, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_template_identity_and_memory, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_numbers_exact, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_strings_every_length, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_address_texts, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_related_ip_sets, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_related_other_sets, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_time_sequence, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pretty, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
