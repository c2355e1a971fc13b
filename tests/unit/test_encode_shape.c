/* test_encode_shape.c — the encoder's shape cache (shipper/encode.c, "shape cache").
 *
 * Differential: events of many shapes (parser-like field lists, repeated keys,
 * arrays of objects, related.ip merged with the addresses, "a" vs "a.b" conflicts,
 * keys too deep, truncated and non-ASCII strings, legacy fields on and off, tags,
 * metrics) with random values, interleaved, encoded through one template: each
 * document must be the one written without the cache (and by the general encoder),
 * with the same anomalies counted. Pairs of events that differ in one part of the
 * shape only (each envelope part, a member name, the element order, a key), in
 * turn: neither may be written from the other's entry. Then what the cache itself
 * promises: keys in the event's arena are compared by text, a full cache evicts and
 * counts it, a failed allocation leaves no entry, and two threads may share a
 * template.
 */
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hostbeat/config.h"
#include "hostbeat/encode.h"
#include "hostbeat/event.h"
#include "hostbeat/ip.h"
#include "hostbeat/mem.h"
#include "hostbeat/metrics.h"
#include "hostbeat/strbuf.h"

#define T0 1424218386231442000ULL /* 2015-02-18T00:13:06.231442Z */
#define NRECIPES 12

struct fx {
	struct ev_pool *pool;
	struct strbuf want, got;
	uint64_t seed;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->pool = ev_pool_new(64, 1 << 20, 4096);
	assert_non_null(f->pool);
	strbuf_init(&f->want);
	strbuf_init(&f->got);
	f->seed = 7;
	metrics_reset();
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	strbuf_free(&f->want);
	strbuf_free(&f->got);
	ev_pool_free(f->pool);
	free(f);
	return 0;
}

static uint32_t rnd(struct fx *f)
{
	f->seed = f->seed * 6364136223846793005ULL + 1442695040888963407ULL;
	return (uint32_t)(f->seed >> 33);
}

#define PICK(f, a) ((a)[rnd(f) % (sizeof(a) / sizeof((a)[0]))])

static struct hb_ip ip(const char *s)
{
	struct hb_ip a;

	assert_int_equal(hb_ip_parse(s, &a), 0);
	return a;
}

static const char *const anomaly_names[] = {"encode.key_conflicts", "encode.truncated_strings",
					    "encode.non_finite"};

static void anomalies(uint64_t *v)
{
	for (size_t i = 0; i < 3; i++)
		v[i] = metrics_get(anomaly_names[i]);
}

/* ev through o (its template and cache) must give the document of the uncached
 * template path and of the general encoder, each counting the same anomalies. */
static void check(struct fx *f, const struct event *ev, const struct encode_opts *o)
{
	struct encode_opts plain = *o, general = *o;
	uint64_t a[3], b[3], c[3], d[3];

	plain.no_shape_cache = true;
	general.tmpl = NULL;
	anomalies(a);
	strbuf_reset(&f->want);
	assert_int_equal(encode_event(ev, &general, &f->want), 0);
	anomalies(b);
	strbuf_reset(&f->got);
	assert_int_equal(encode_event(ev, &plain, &f->got), 0);
	assert_string_equal(strbuf_cstr(&f->got), strbuf_cstr(&f->want));
	anomalies(c);
	strbuf_reset(&f->got);
	assert_int_equal(encode_event(ev, o, &f->got), 0);
	assert_string_equal(strbuf_cstr(&f->got), strbuf_cstr(&f->want));
	anomalies(d);
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(c[i] - b[i], b[i] - a[i]);
		assert_int_equal(d[i] - c[i], b[i] - a[i]);
	}
}

/* ---- events ------------------------------------------------------------------ */

static const char *const strs[] = {
    "",
    "GET",
    "www.example.com",
    "a\"quoted\\value\n",
    "caf\xc3\xa9 \xe2\x82\xac",                 /* UTF-8 */
    "\xff\xfe broken \xc3",                     /* invalid UTF-8 */
    "a value of forty-one bytes, plain ASCII.", /* cut by small max_string */
    "\x01\x1f control",
};

static const char *const ips[] = {"172.31.98.49", "93.184.216.34", "10.0.0.1"};

static const char *str(struct fx *f)
{
	return PICK(f, strs);
}

static int add_str(struct fx *f, struct event *ev, const char *key)
{
	const char *s = str(f);

	return ev_set_str(ev, key, s, strlen(s));
}

/* A transaction with the envelope parts `variant` selects (bit 0: bytes, bit 1: the
 * times, bit 2: IPv6, bit 3: the same address both ways); the values are random. */
static struct event *txn(struct fx *f, const char *dataset, uint8_t transport, unsigned variant)
{
	struct event *ev = ev_pool_get(f->pool, EV_KIND_TRANSACTION, dataset);
	unsigned c;

	assert_non_null(ev);
	ev->status = (enum ev_status)(1 + variant % 4);
	ev->ts = T0 + (uint64_t)rnd(f) * 1000003ULL;
	if (variant & 2) {
		ev->start_ns = ev->ts;
		ev->end_ns = ev->ts + rnd(f) % 5 * 999999937ULL;
	}
	ev->has_tuple = true;
	ev->transport = transport;
	c = rnd(f) % 3;
	ev->client_ip = ip(variant & 4 ? "2001:db8::7" : ips[c]);
	ev->server_ip = ip(variant & 4 ? "2001:db8::1" : ips[(c + 1 + rnd(f) % 2) % 3]);
	if (variant & 8)
		ev->server_ip = ev->client_ip;
	ev->client_port = (uint16_t)rnd(f);
	ev->server_port = (uint16_t)(rnd(f) % 3 ? 80 : 0);
	ev->has_client_bytes = ev->has_server_bytes = variant & 1;
	ev->client_bytes = rnd(f) % 3 ? rnd(f) : 0;
	ev->server_bytes = rnd(f) % 3 ? rnd(f) : UINT64_MAX / 2;
	if (rnd(f) % 2)
		snprintf(ev->community_id, sizeof(ev->community_id), "1:%08x+/=", rnd(f));
	return ev;
}

/* HTTP as the parser adds it; a header key in the event's arena. */
static struct event *recipe_http(struct fx *f, unsigned variant)
{
	static const char ct[] = "http.response.headers.content-type";
	struct event *ev = txn(f, "http", IPPROTO_TCP, variant);
	char *key = ev_arena_copy(ev, ct, sizeof(ct) - 1);

	assert_non_null(key);
	add_str(f, ev, "method");
	add_str(f, ev, "query");
	add_str(f, ev, "url.full");
	add_str(f, ev, "http.request.method");
	ev_set_uint(ev, "http.response.status_code", rnd(f) % 600);
	add_str(f, ev, key);
	add_str(f, ev, "user_agent.original");
	add_str(f, ev, "destination.domain"); /* into the envelope's object */
	add_str(f, ev, "server.domain");
	ev_append_str(ev, "related.hosts", "www.example.com", 15);
	if (variant & 16)
		ev_set_uint(ev, "http.request.bytes", rnd(f));
	return ev;
}

/* DNS: answers as an array of objects, related.ip merged with the addresses (a set:
 * which values are duplicates differs from event to event). */
static struct event *recipe_dns(struct fx *f, unsigned variant)
{
	struct event *ev = txn(f, "dns", IPPROTO_UDP, variant);
	struct hb_ip a;
	const char *data;
	unsigned i, n = 1 + variant % 3;

	add_str(f, ev, "dns.question.name");
	ev_set_strz(ev, "dns.question.type", "A");
	for (i = 0; i < n; i++) {
		unsigned elem = variant & 16 ? n - 1 - i : i; /* the same keys, in another order */

		ev_obj_str(ev, "dns.answers", elem, variant & 32 ? "name" : "class", "b.example",
			   9);
		ev_obj_uint(ev, "dns.answers", elem, "ttl", rnd(f));
		data = PICK(f, ips);
		ev_obj_str(ev, "dns.answers", elem, "data", data, strlen(data));
		a = rnd(f) % 2 ? ev->client_ip : ip(PICK(f, ips));
		ev_append_ip(ev, "related.ip", &a);
	}
	ev_set_uint(ev, "dns.answers_count", n);
	return ev;
}

/* Repeated keys: a scalar set twice (the last wins), arrays, a scalar and an array
 * under one key (a conflict put_group() counts), fields added out of order. */
static struct event *recipe_repeats(struct fx *f, unsigned variant)
{
	struct event *ev = txn(f, "redis", IPPROTO_TCP, variant);

	add_str(f, ev, "redis.return_value");
	add_str(f, ev, "method");
	add_str(f, ev, "method");
	ev_append_str(ev, "redis.args", "x", 1);
	add_str(f, ev, "aaa.z");
	ev_append_str(ev, "redis.args", "y", 1);
	ev_set_int(ev, "aaa.b", -(int64_t)rnd(f));
	add_str(f, ev, "mixed");
	ev_append_str(ev, "mixed", "m", 1);
	ev_set_bool(ev, "aaa.c", rnd(f) % 2);
	return ev;
}

/* Key conflicts: "a" and "a.b" (the object is kept), a key nested too deep. */
static struct event *recipe_conflicts(struct fx *f, unsigned variant)
{
	static const char deep[] =
	    "d.d.d.d.d.d.d.d.d.d.d.d.d.d.d.d.d.d.d.d.d.d.d.d.d.d.d.d.d.d.d.d.d.d";
	struct event *ev = txn(f, "mysql", IPPROTO_TCP, variant);

	add_str(f, ev, "mysql.query");
	ev_set_uint(ev, "mysql.query.x", rnd(f));
	ev_set_uint(ev, deep, 1);
	add_str(f, ev, "zz");
	add_str(f, ev, "zz.top");
	return ev;
}

/* Protocol keys between and inside the envelope's objects; a removed field. */
static struct event *recipe_interleave(struct fx *f, unsigned variant)
{
	struct event *ev = txn(f, "pgsql", IPPROTO_TCP, variant);

	add_str(f, ev, "client.domain");
	add_str(f, ev, "event.action");
	add_str(f, ev, "network.direction");
	add_str(f, ev, "source.domain");
	add_str(f, ev, "agent.hostname");
	add_str(f, ev, "@metadata.x");
	add_str(f, ev, "zzz");
	add_str(f, ev, "tags2");
	ev->fields[2].key = NULL; /* removed: not written */
	return ev;
}

/* A protocol field on a derived key or inside one: the fast path gives up, the
 * general path writes them (a negative entry in the cache). */
static struct event *recipe_bail(struct fx *f, unsigned variant)
{
	struct event *ev = txn(f, "thrift", IPPROTO_TCP, variant);

	add_str(f, ev, "thrift.service");
	if (variant & 16)
		add_str(f, ev, "event.kind");
	else
		add_str(f, ev, "related.ip.x");
	return ev;
}

/* ICMP (no ports), a transport without a name, no tuple at all. */
static struct event *recipe_icmp(struct fx *f, unsigned variant)
{
	static const uint8_t tr[] = {IPPROTO_ICMP, IPPROTO_ICMPV6, 47, IPPROTO_TCP};
	struct event *ev = txn(f, "icmp", tr[variant % 4], variant);

	ev->has_tuple = !(variant & 16);
	add_str(f, ev, "icmp.request.message");
	ev_set_uint(ev, "icmp.request.code", rnd(f) % 256);
	ev->iface = variant & 32 ? "eth0" : NULL;
	return ev;
}

/* Every value type, doubles that are not finite; a string bigger than the inline
 * arena (a chunk: such events do not use the cache). */
static struct event *recipe_values(struct fx *f, unsigned variant)
{
	static char big[3000];
	struct event *ev = txn(f, "mongodb", IPPROTO_TCP, variant);
	struct hb_ip a = ip(PICK(f, ips));

	if (variant & 32) {
		memset(big, 'b', sizeof(big));
		ev_set_str(ev, "v.big", big, sizeof(big));
	}
	ev_set_int(ev, "v.int", (int64_t)rnd(f) - (int64_t)rnd(f));
	ev_set_uint(ev, "v.uint", (uint64_t)rnd(f) << 32);
	ev_set_bool(ev, "v.bool", rnd(f) % 2);
	ev_set_double(ev, "v.double", rnd(f) % 4 ? rnd(f) / 7.0 : NAN);
	ev_set_ip(ev, "v.ip", &a);
	ev_set_time(ev, "v.time", T0 + rnd(f));
	ev_set_fmt(ev, "v.fmt", "class IN, type A, %u", rnd(f));
	return ev;
}

/* Metrics: no transaction envelope; event.module and metricset.name. */
static struct event *recipe_metric(struct fx *f, unsigned variant)
{
	struct event *ev = ev_pool_get(f->pool, variant & 1 ? EV_KIND_SELF : EV_KIND_METRIC,
				       variant & 2 ? "system.cpu" : "system.memory");

	assert_non_null(ev);
	ev->ts = T0 + (uint64_t)rnd(f) * 1000ULL;
	ev_set_double(ev, "system.cpu.total.pct", rnd(f) % 10000 / 10000.0);
	ev_set_uint(ev, "system.cpu.cores", rnd(f) % 64);
	ev_set_double(ev, "system.cpu.user.pct", rnd(f) / 3.0);
	return ev;
}

/* Many fields (arrays of objects with several elements), over SHAPE_FIELDS sometimes. */
static struct event *recipe_many(struct fx *f, unsigned variant)
{
	struct event *ev = txn(f, "memcache", IPPROTO_TCP, variant);
	unsigned i, n = variant & 16 ? 60 : 12;

	for (i = 0; i < n; i++) {
		ev_obj_uint(ev, "memcache.items", i, "size", rnd(f));
		ev_obj_str(ev, "memcache.items", i, "key", "k", 1);
	}
	add_str(f, ev, "memcache.request.command");
	return ev;
}

/* A key only in the arena (another header), the same text at another address. */
static struct event *recipe_arena2(struct fx *f, unsigned variant)
{
	static const char h1[] = "http.request.headers.accept", h2[] = "http.request.headers.x";
	struct event *ev = txn(f, "http", IPPROTO_TCP, variant);
	char *k1, *k2;

	add_str(f, ev, "method");
	k2 = ev_arena_copy(ev, h2, sizeof(h2) - 1);
	k1 = ev_arena_copy(ev, h1, sizeof(h1) - 1);
	assert_non_null(k1);
	assert_non_null(k2);
	add_str(f, ev, variant & 16 ? k2 : k1);
	add_str(f, ev, variant & 16 ? k1 : k2);
	return ev;
}

static struct event *recipe(struct fx *f, unsigned r, unsigned variant)
{
	switch (r % NRECIPES) {
	case 0:
		return recipe_http(f, variant);
	case 1:
		return recipe_dns(f, variant);
	case 2:
		return recipe_repeats(f, variant);
	case 3:
		return recipe_conflicts(f, variant);
	case 4:
		return recipe_interleave(f, variant);
	case 5:
		return recipe_bail(f, variant);
	case 6:
		return recipe_icmp(f, variant);
	case 7:
		return recipe_values(f, variant);
	case 8:
		return recipe_metric(f, variant);
	case 9:
		return recipe_many(f, variant);
	case 10:
		return recipe_arena2(f, variant);
	default:
		return txn(f, "tls", IPPROTO_TCP, variant); /* no protocol field */
	}
}

static void opts_init(struct encode_opts *o, struct cfg_strlist *tags, bool legacy,
		      size_t max_string)
{
	memset(o, 0, sizeof(*o));
	o->agent_name = "h";
	o->agent_version = "8.0.0";
	o->agent_type = "hostbeat";
	o->agent_id = o->agent_ephemeral_id = "6c0e1b5c-4a7b-4d0e-9f61-3b2a1c0d9e8f";
	o->host_name = "h\xc3\xa9";
	o->tags = tags;
	o->legacy_fields = legacy;
	o->max_string = max_string;
}

/* A template for o, which then uses it. */
static struct encode_tmpl *tmpl_for(struct encode_opts *o)
{
	struct encode_tmpl *t = encode_tmpl_new(o);

	assert_non_null(t);
	o->tmpl = t;
	return t;
}

/* ---- tests ---------------------------------------------------------------------- */

/* Shapes interleaved at random through one template per set of options: the first
 * event of each shape is recorded, the later ones (about 48 shapes: most fit the
 * cache) come from it, with their own values. */
static void test_shapes_match_uncached(void **state)
{
	static const unsigned variants[] = {3, 16 | 7, 32 | 8 | 1, 32 | 16 | 4 | 2};
	struct fx *f = *state;
	char *tv[] = {"web", "t\"2"};
	struct cfg_strlist tags = {tv, 2};
	struct encode_opts o;
	struct encode_tmpl *t;
	unsigned k, it;

	for (k = 0; k < 4; k++) {
		opts_init(&o, k & 1 ? &tags : NULL, k & 2, 0);
		t = tmpl_for(&o);
		for (it = 0; it < 3000; it++) {
			struct event *ev = recipe(f, rnd(f), PICK(f, variants));

			o.max_string = k == 3 && rnd(f) % 2 ? 16 : 0; /* values cut or not */
			check(f, ev, &o);
			ev_pool_put(ev);
		}
		encode_tmpl_free(t);
	}
}

/* Each shape twice in a row (recorded, then written from the cache), then the
 * shapes again in reverse order. */
static void test_twice_then_interleaved(void **state)
{
	struct fx *f = *state;
	struct encode_opts o;
	struct encode_tmpl *t;
	unsigned r, v;

	opts_init(&o, NULL, true, 0);
	t = tmpl_for(&o);
	for (r = 0; r < NRECIPES; r++) {
		for (v = 0; v < 2; v++) {
			struct event *ev = recipe(f, r, 3);

			check(f, ev, &o);
			ev_pool_put(ev);
		}
	}
	for (r = NRECIPES; r-- > 0;) {
		struct event *ev = recipe(f, r, 3);

		check(f, ev, &o);
		ev_pool_put(ev);
	}
	encode_tmpl_free(t);
}

/* Envelope `m` of an HTTP event: each one differs from the base (0) in one thing
 * that changes the text between the values. */
static void envelope(struct event *ev, struct encode_opts *o, unsigned m)
{
	static const char http2[] = "http"; /* the same text elsewhere: another shape */

	switch (m) {
	case 1:
		ev->status = EV_STATUS_ERROR;
		break;
	case 2:
		ev->status = EV_STATUS_NONE;
		break;
	case 3:
		ev->transport = IPPROTO_UDP;
		break;
	case 4:
		ev->transport = IPPROTO_ICMP; /* no ports */
		break;
	case 5:
		ev->transport = 47; /* no transport name, no Community ID */
		break;
	case 6:
		ev->client_ip = ip("2001:db8::7");
		ev->server_ip = ip("2001:db8::1");
		break;
	case 7:
		o->legacy_fields = true; /* the same template */
		break;
	case 8:
		ev->has_client_bytes = false;
		break;
	case 9:
		ev->has_server_bytes = false;
		break;
	case 10:
		ev->start_ns = 0;
		break;
	case 11:
		ev->end_ns = 0;
		break;
	case 12:
		ev->has_tuple = false;
		break;
	case 13:
		memset(&ev->server_ip, 0, sizeof(ev->server_ip)); /* ports, no address */
		break;
	case 14:
		memset(&ev->client_ip, 0, sizeof(ev->client_ip));
		break;
	case 15:
		ev->server_ip = ip("2001:db8::1"); /* no Community ID: two families */
		ev->community_id[0] = '\0';
		break;
	case 16:
		ev->server_ip = ev->client_ip; /* related.ip has one address */
		break;
	case 17:
		ev->kind = EV_KIND_SELF;
		break;
	case 18:
		ev->iface = "eth0";
		break;
	case 19:
		ev->dataset = http2;
		break;
	case 20:
		ev->community_id[0] = '\0'; /* computed: the same shape as the base */
		break;
	case 21:
		/* the same shape as the base, but this text needs escaping: written
		 * by the general path, even when the shape is cached */
		memcpy(ev->community_id, "1:a\"b\\c\x01", 9);
		break;
	case 22:
		/* every byte used, no NUL: the text ends with the array */
		memset(ev->community_id, 'c', sizeof(ev->community_id));
		break;
	default:
		break;
	}
}

/* The base event with the envelope variants of the digits of m (base 100). */
static struct event *enveloped(struct fx *f, struct encode_opts *o, unsigned m)
{
	struct event *ev = ev_pool_get(f->pool, EV_KIND_TRANSACTION, "http");

	assert_non_null(ev);
	ev->status = EV_STATUS_OK;
	ev->ts = T0 + (uint64_t)rnd(f) * 1000003ULL;
	ev->start_ns = ev->ts;
	ev->end_ns = ev->ts + rnd(f);
	ev->has_tuple = true;
	ev->transport = IPPROTO_TCP;
	ev->client_ip = ip("172.31.98.49");
	ev->server_ip = ip("93.184.216.34");
	ev->client_port = (uint16_t)rnd(f);
	ev->server_port = (uint16_t)rnd(f);
	ev->has_client_bytes = ev->has_server_bytes = true;
	ev->client_bytes = rnd(f);
	ev->server_bytes = rnd(f);
	snprintf(ev->community_id, sizeof(ev->community_id), "1:%08x", rnd(f));
	o->legacy_fields = false;
	for (; m; m /= 100)
		envelope(ev, o, m % 100);
	add_str(f, ev, "method");
	ev_set_uint(ev, "http.response.status_code", rnd(f) % 600);
	return ev;
}

/* Pairs of envelopes that differ in one part of the shape, each three times in
 * turn with new values: a part missing from the shape would write one with the
 * other's text. */
static void test_envelope_shapes(void **state)
{
	static const unsigned pairs[][2] = {
	    {0, 1},        {0, 2},  {0, 3},  {0, 4},  {0, 5},       {0, 6},  {0, 7},  {0, 8},
	    {0, 9},        {0, 10}, {0, 11}, {0, 12}, {0, 13},      {0, 14}, {0, 15}, {0, 16},
	    {0, 17},       {0, 18}, {0, 19}, {0, 20}, {1412, 1413}, /* no tuple, or one without
								       addresses: ports only */
	    {506, 140506}, /* no client address, the rest the same */
	    {506, 130506}, /* no server address */
	    {0, 21},       {21, 0}, {0, 22},
	};
	struct fx *f = *state;
	struct encode_opts o;
	struct encode_tmpl *t;
	unsigned p, k;

	opts_init(&o, NULL, false, 2); /* strings cut: anomalies to count */
	t = tmpl_for(&o);
	for (p = 0; p < sizeof(pairs) / sizeof(pairs[0]); p++) {
		for (k = 0; k < 6; k++) {
			struct event *ev = enveloped(f, &o, pairs[p][k % 2]);

			check(f, ev, &o);
			ev_pool_put(ev);
		}
	}
	encode_tmpl_free(t);
}

/* Protocol fields of variant m: the pairs below differ in one part of the shape. */
static struct event *fielded(struct fx *f, unsigned m)
{
	struct event *ev = ev_pool_get(f->pool, EV_KIND_METRIC, "system.x");
	unsigned i;

	assert_non_null(ev);
	ev->ts = T0 + rnd(f);
	for (i = 0; i < 2; i++) {
		unsigned elem = m == 3 ? 1 - i : i;

		/* members are sorted by name: "d" goes after "c", "a" before it */
		ev_obj_uint(ev, "x.arr", elem, m == 1 ? "d" : "a", rnd(f));
		ev_obj_uint(ev, "x.arr", elem, m == 2 ? "b" : "c", rnd(f));
	}
	if (m == 4)
		ev_set_uint(ev, "x.arr.b", rnd(f)); /* "a" vs "a.b" */
	else
		ev_set_uint(ev, "x.arr-b", rnd(f));
	ev_append_str(ev, m == 5 ? "x.set" : "x.sex", "s", 1);
	/* the same keys with another type or flags: the text around the values, or
	 * how they are written, differs */
	if (m == 6)
		ev_set_int(ev, "x.val", -(int64_t)rnd(f));
	else if (m == 7)
		ev_set_bool(ev, "x.val", rnd(f) % 2);
	else if (m == 8)
		ev_append_str(ev, "x.val", "a\"b", 3); /* an array */
	else if (m == 9)
		ev_set_double(ev, "x.val", rnd(f) / 8.0);
	else
		ev_set_str(ev, "x.val", "a\"b", 3);
	if (m == 10)
		ev_obj_str(ev, "x.arr", 1, "c", "7", 1); /* a member's type */
	else
		ev_obj_uint(ev, "x.arr", 1, "c", 7);
	ev_append_str(ev, "x.list", "l", 1);
	if (m == 11)
		ev_set_str(ev, "x.list", "l", 1); /* a scalar and an array: a conflict */
	else
		ev_append_str(ev, "x.list", "m", 1);
	return ev;
}

/* Pairs of events whose fields differ in one thing (a member name, the element
 * order, a key, a field's type or flags), in turn with new values. */
static void test_field_shapes(void **state)
{
	struct fx *f = *state;
	struct encode_opts o;
	struct encode_tmpl *t;
	unsigned m, k;

	opts_init(&o, NULL, false, 0);
	t = tmpl_for(&o);
	for (m = 1; m <= 11; m++) {
		for (k = 0; k < 6; k++) {
			struct event *ev = fielded(f, k % 2 ? m : 0);

			check(f, ev, &o);
			ev_pool_put(ev);
		}
	}
	encode_tmpl_free(t);
}

/* Keys are static strings, identified by their pointer: the second event is written
 * from the skeleton recorded for the first, so a key whose text changed under the
 * same pointer keeps its recorded text (that is the contract of event.h, and the
 * proof that the cache is used); without the cache the new text is written. */
static void test_static_keys_by_pointer(void **state)
{
	struct fx *f = *state;
	static char key[] = "zz.a";
	struct encode_opts o;
	struct encode_tmpl *t;
	struct event *ev;

	opts_init(&o, NULL, false, 0);
	t = tmpl_for(&o);
	ev = ev_pool_get(f->pool, EV_KIND_METRIC, "system.x");
	assert_non_null(ev);
	ev_set_uint(ev, key, 1);
	check(f, ev, &o); /* recorded */
	assert_non_null(strstr(strbuf_cstr(&f->got), "\"zz\":{\"a\":1}"));
	key[3] = 'b';
	strbuf_reset(&f->got);
	assert_int_equal(encode_event(ev, &o, &f->got), 0);
	assert_non_null(strstr(strbuf_cstr(&f->got), "\"zz\":{\"a\":1}"));
	o.no_shape_cache = true;
	strbuf_reset(&f->got);
	assert_int_equal(encode_event(ev, &o, &f->got), 0);
	assert_non_null(strstr(strbuf_cstr(&f->got), "\"zz\":{\"b\":1}"));
	key[3] = 'a';
	ev_pool_put(ev);
	encode_tmpl_free(t);
}

/* A key in the event's arena is compared by its text: the next event from the pool
 * (the same memory) has another header name at the same address. */
static void test_arena_keys_by_text(void **state)
{
	struct fx *f = *state;
	static const char *const names[] = {"http.request.headers.accept",
					    "http.request.headers.cookie",
					    "http.request.headers.accept"};
	const char *prev = NULL;
	struct encode_opts o;
	struct encode_tmpl *t;
	unsigned i;

	opts_init(&o, NULL, false, 0);
	t = tmpl_for(&o);
	for (i = 0; i < 3; i++) {
		struct event *ev = txn(f, "http", IPPROTO_TCP, 7);
		char *key = ev_arena_copy(ev, names[i], strlen(names[i]));

		assert_non_null(key);
		if (prev)
			assert_ptr_equal(key, prev); /* the trap is set */
		prev = key;
		ev_set_strz(ev, key, "v");
		check(f, ev, &o);
		assert_non_null(strstr(strbuf_cstr(&f->got), names[i] + 21));
		ev_pool_put(ev);
	}
	/* the same with the key in an arena chunk (the inline arena full): such an event
	 * does not use the cache, as a chunk freed with one event may come back at the
	 * same address with another text */
	for (i = 0; i < 3; i++) {
		struct event *ev = txn(f, "http", IPPROTO_TCP, 7);
		char *fill = ev_arena_copy(ev, NULL, EV_INLINE_ARENA - 16);
		char *key;

		assert_non_null(fill);
		memset(fill, 'f', EV_INLINE_ARENA - 16);
		key = ev_arena_copy(ev, names[i], strlen(names[i]));
		assert_non_null(key);
		assert_non_null(ev->chunks);
		ev_set_strz(ev, key, "v");
		check(f, ev, &o);
		check(f, ev, &o);
		assert_non_null(strstr(strbuf_cstr(&f->got), names[i] + 21));
		ev_pool_put(ev);
	}
	encode_tmpl_free(t);
}

/* More shapes than entries: entries are replaced and counted; the documents stay
 * right; a shape just recorded is written from the cache without an eviction. */
static void test_evictions(void **state)
{
	struct fx *f = *state;
	static const char *const keys[] = {"k.a", "k.b", "k.c", "k.d", "k.e",
					   "k.f", "k.g", "k.h", "k.i"};
	const unsigned nshapes = 300;
	struct encode_opts o;
	struct encode_tmpl *t;
	uint64_t ev0, ev1;
	unsigned s, i, round;

	opts_init(&o, NULL, false, 0);
	t = tmpl_for(&o);
	ev0 = metrics_get("encode.shape_evictions");
	for (round = 0; round < 2; round++) {
		for (s = 1; s <= nshapes; s++) {
			struct event *ev = txn(f, "x", IPPROTO_TCP, 7);

			for (i = 0; i < 9; i++) /* the set bits of s pick the keys */
				if (s >> i & 1)
					ev_set_uint(ev, keys[i], rnd(f));
			check(f, ev, &o);
			ev_pool_put(ev);
		}
		if (round == 0) {
			/* 300 new shapes, 64 entries: at least 300 - 64 replaced one */
			ev1 = metrics_get("encode.shape_evictions");
			assert_true(ev1 - ev0 >= nshapes - 64);
		}
	}
	for (i = 0; i < 2; i++) {
		struct event *ev = txn(f, "x", IPPROTO_TCP, 7);

		ev_set_uint(ev, keys[0], rnd(f));
		ev_set_uint(ev, keys[8], rnd(f));
		check(f, ev, &o); /* the first is recorded (maybe evicting), the second is not */
		ev_pool_put(ev);
		if (i == 0)
			ev1 = metrics_get("encode.shape_evictions");
	}
	assert_int_equal(metrics_get("encode.shape_evictions"), ev1);
	encode_tmpl_free(t);
}

/* No memory while a shape is recorded or written: -ENOMEM, the output cut back, and
 * the next events of that shape are still right. */
static void test_out_of_memory(void **state)
{
	struct fx *f = *state;
	struct encode_opts o;
	struct encode_tmpl *t;
	struct strbuf out;
	unsigned i;

	opts_init(&o, NULL, true, 0);
	t = tmpl_for(&o);
	for (i = 0; i < 4; i++) {
		struct event *ev = recipe_http(f, 3);

		strbuf_init(&out); /* empty: the first byte needs an allocation */
		mem_fail_after(0);
		assert_int_equal(encode_event(ev, &o, &out), -ENOMEM);
		mem_fail_reset();
		assert_int_equal(out.len, 0);
		strbuf_free(&out);
		check(f, ev, &o);
		ev_pool_put(ev);
	}
	encode_tmpl_free(t);
}

#define NTHREAD_EVENTS 48

struct shared {
	const struct encode_opts *o;
	struct event *ev[NTHREAD_EVENTS];
	char *want[NTHREAD_EVENTS];
	unsigned bad;
};

static void *encoder(void *arg)
{
	struct shared *sh = arg;
	struct strbuf out;
	unsigned i, bad = 0;

	strbuf_init(&out);
	for (i = 0; i < 40 * NTHREAD_EVENTS; i++) {
		strbuf_reset(&out);
		if (encode_event(sh->ev[i % NTHREAD_EVENTS], sh->o, &out) != 0 ||
		    strcmp(strbuf_cstr(&out), sh->want[i % NTHREAD_EVENTS]) != 0)
			bad++;
	}
	strbuf_free(&out);
	return (void *)(uintptr_t)bad;
}

/* Two threads share one template: one of them has the cache at a time, the other
 * encodes without it; every document is right. */
static void test_threads(void **state)
{
	struct fx *f = *state;
	struct encode_opts o, plain;
	struct encode_tmpl *t;
	struct shared sh;
	pthread_t th[2];
	void *bad;
	unsigned i;

	opts_init(&o, NULL, false, 0);
	t = tmpl_for(&o);
	plain = o;
	plain.no_shape_cache = true;
	sh.o = &o;
	for (i = 0; i < NTHREAD_EVENTS; i++) {
		sh.ev[i] = recipe(f, i, i % 4);
		strbuf_reset(&f->want);
		assert_int_equal(encode_event(sh.ev[i], &plain, &f->want), 0);
		sh.want[i] = strdup(strbuf_cstr(&f->want));
		assert_non_null(sh.want[i]);
	}
	for (i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&th[i], NULL, encoder, &sh), 0);
	for (i = 0; i < 2; i++) {
		assert_int_equal(pthread_join(th[i], &bad), 0);
		assert_int_equal((uintptr_t)bad, 0);
	}
	for (i = 0; i < NTHREAD_EVENTS; i++) {
		free(sh.want[i]);
		ev_pool_put(sh.ev[i]);
	}
	encode_tmpl_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_shapes_match_uncached, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_twice_then_interleaved, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_envelope_shapes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_field_shapes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_static_keys_by_pointer, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_arena_keys_by_text, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_evictions, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_out_of_memory, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
