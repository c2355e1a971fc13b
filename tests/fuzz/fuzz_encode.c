/* fuzz_encode.c — libFuzzer harness for shipper/encode.c, the only JSON writer.
 *
 * The input builds one event: an envelope (kind, status, transport, addresses,
 * ports, byte counts, times, Community ID text, interface, dataset) and a list of
 * fields, each picked from tables of keys (nested, colliding with the envelope's
 * "a" vs "a.b", related.*, too deep, in the event's arena) and members, with any
 * type, flags, element and value bytes. Input layout:
 *   byte 0     max_string selector; byte 1-2  envelope bits; then 34 envelope bytes
 *   then       records [op][a][b][len][len bytes of value]: op picks key and type,
 *              a the member and flags, b the element.
 * Checked on every input (abort() on failure): the general encoder, the template
 * path without its shape cache and the template path through the cache (one
 * template for the whole run, so shapes of earlier inputs are cached and the pool
 * hands out the same memory with other keys in it) write the same bytes and count
 * the same anomalies; the document is valid JSON (json-c) and valid UTF-8.
 */
#include <json-c/json.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hostbeat/encode.h"
#include "hostbeat/event.h"
#include "hostbeat/metrics.h"
#include "hostbeat/strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                             \
	do {                                                                                 \
		if (!(c)) {                                                                  \
			fprintf(stderr, "fuzz_encode: %s:%d: %s\n", __FILE__, __LINE__, #c); \
			abort();                                                             \
		}                                                                            \
	} while (0)

static const char *const keys[] = {
    "method",
    "query",
    "dns.answers",
    "dns.answers.x",
    "dns.resolved_ip",
    "related.ip",
    "related.ip",
    "related.hosts",
    "related.user",
    "related.ip.x",
    "client.ip",
    "client.port",
    "client.domain",
    "event.kind",
    "event.action",
    "event",
    "agent.name",
    "@timestamp",
    "tags",
    "type",
    "status",
    "network",
    "source.bytes",
    "a",
    "a.b",
    "a.b.c",
    "a-b",
    "ab",
    "k\"ey",
    "k\xc3\xa9y",
    "zz.top",
    "http.request.headers.content-length",
    "observer.ingress.interface.name.x",
    "d.d.d.d.d.d.d.d.d.d.d.d.d.d.d.d.d.d.d.d.d.d.d.d.d.d.d.d.d.d.d.d.d",
    "aaaaaaaaaaaaaaaa.b",
    "aaaaaaaaaaaaaaaab",
};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))
#define NARENA 3 /* keys past the table: copied into the event's arena */

static const char *const members[] = {"name", "type", "class", "data", "ttl", "na\"me"};
static const char *const datasets[] = {"http", "dns", "sys\"x", "system.cpu", "x."};
static const char *const ifaces[] = {"eth0", "e\xffth"};

static struct {
	bool ready;
	struct ev_pool *pool;
	struct encode_opts o;
	struct strbuf a, b, c;
} fz;

static const char *const anomaly_names[] = {"encode.key_conflicts", "encode.truncated_strings",
					    "encode.non_finite"};

static void anomalies(uint64_t *v)
{
	for (size_t i = 0; i < 3; i++)
		v[i] = metrics_get(anomaly_names[i]);
}

static bool utf8_ok(const unsigned char *p, size_t n)
{
	size_t i = 0, j, k;

	while (i < n) {
		unsigned char c = p[i];

		k = c < 0x80 ? 1 : c >= 0xc2 && c < 0xe0 ? 2 : c >= 0xe0 && c < 0xf0 ? 3 : 4;
		if (c >= 0x80 && (c < 0xc2 || c > 0xf4))
			return false;
		if (n - i < k)
			return false;
		for (j = 1; j < k; j++)
			if ((p[i + j] & 0xc0) != 0x80)
				return false;
		if ((c == 0xe0 && p[i + 1] < 0xa0) || (c == 0xed && p[i + 1] > 0x9f) ||
		    (c == 0xf0 && p[i + 1] < 0x90) || (c == 0xf4 && p[i + 1] > 0x8f))
			return false;
		i += k;
	}
	return true;
}

static int init(void)
{
	fz.pool = ev_pool_new(4, 1 << 20, 512);
	if (!fz.pool)
		return -1;
	fz.o.agent_name = "fuzz";
	fz.o.agent_version = "8.0.0";
	fz.o.agent_type = "hostbeat";
	fz.o.agent_id = fz.o.agent_ephemeral_id = "6c0e1b5c-4a7b-4d0e-9f61-3b2a1c0d9e8f";
	fz.o.host_name = "h\xc3\xa9";
	fz.o.tmpl = encode_tmpl_new(&fz.o);
	if (!fz.o.tmpl)
		return -1;
	strbuf_init(&fz.a);
	strbuf_init(&fz.b);
	strbuf_init(&fz.c);
	fz.ready = true;
	return 0;
}

static uint64_t le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* The envelope from 2 + 34 bytes at p. */
static void envelope(struct event *ev, const uint8_t *p)
{
	unsigned bits = p[0] | p[1] << 8;

	p += 2;
	ev->status = (enum ev_status)(bits & 7) % 5;
	ev->transport = (bits >> 3 & 3) == 0   ? IPPROTO_TCP
			: (bits >> 3 & 3) == 1 ? IPPROTO_UDP
			: (bits >> 3 & 3) == 2 ? IPPROTO_ICMP
					       : 47;
	ev->has_tuple = bits >> 5 & 1;
	ev->has_client_bytes = bits >> 6 & 1;
	ev->has_server_bytes = bits >> 7 & 1;
	ev->client_ip.ver = bits >> 8 & 1 ? 6 : 4;
	ev->server_ip.ver = bits >> 9 & 1 ? (bits >> 10 & 1 ? 0 : 6) : 4;
	memcpy(ev->client_ip.a, p, 16);
	memcpy(ev->server_ip.a, bits >> 11 & 1 ? p : p + 4, 16); /* maybe the same */
	ev->client_port = (uint16_t)(p[20] | p[21] << 8);
	ev->server_port = (uint16_t)(p[22] | p[23] << 8);
	ev->client_bytes = p[24] * 1000003ULL;
	ev->server_bytes = bits >> 12 & 1 ? UINT64_MAX - p[25] : p[25];
	ev->ts = le64(p + 26) >> 4; /* up to the year 2500 */
	ev->start_ns = bits >> 13 & 1 ? ev->ts : 0;
	ev->end_ns = bits >> 14 & 1 ? ev->ts + p[24] * 999983ULL : 0;
	if (bits >> 15 & 1)
		snprintf(ev->community_id, sizeof(ev->community_id), "1:%02x%c%02x", p[0],
			 p[1] % 4 ? 'a' : '"', p[2]);
	ev->iface = p[3] % 3 ? NULL : ifaces[p[3] % 2];
}

static void add_field(struct event *ev, uint8_t op, uint8_t a, uint8_t b, const uint8_t *v,
		      size_t n)
{
	unsigned k = op % (NKEYS + NARENA), type = op / (NKEYS + NARENA) % 8;
	const char *key = k < NKEYS ? keys[k] : NULL, *member = a % 4 ? NULL : members[a / 4 % 6];
	struct ev_field *f;
	struct hb_ip ip;
	double d;

	if (!key) { /* header names: in the arena, several texts at the same places */
		char name[40];
		int len = snprintf(name, sizeof(name), "http.request.headers.h%u", (a + k) % 5);

		key = ev_arena_copy(ev, name, (size_t)len);
		if (!key)
			return;
	}
	switch (type) {
	case 0:
	case 1:
		if (member)
			ev_obj_str(ev, key, b % 4, member, v, n);
		else if (a & 1)
			ev_append_str(ev, key, v, n);
		else
			ev_set_str(ev, key, v, n);
		return;
	case 2:
		if (member)
			ev_obj_uint(ev, key, b % 4, member, n >= 8 ? le64(v) : n);
		else
			ev_set_uint(ev, key, n >= 8 ? le64(v) : n);
		return;
	case 3:
		if (member)
			ev_obj_int(ev, key, b % 4, member, -(int64_t)n);
		else
			ev_set_int(ev, key, n >= 8 ? (int64_t)le64(v) : -(int64_t)n);
		return;
	case 4:
		if (member)
			ev_obj_bool(ev, key, b % 4, member, n & 1);
		else
			ev_set_bool(ev, key, n & 1);
		return;
	case 5:
		d = 0;
		if (n >= 8)
			memcpy(&d, v, 8);
		else
			d = n / 7.0;
		ev_set_double(ev, key, d);
		return;
	case 6:
		memset(&ip, 0, sizeof(ip));
		ip.ver = b % 3 == 0 ? 4 : b % 3 == 1 ? 6 : b;
		memcpy(ip.a, v, n < 16 ? n : 16);
		if (a & 1)
			ev_append_ip(ev, key, &ip);
		else
			ev_set_ip(ev, key, &ip);
		return;
	default:
		ev_set_time(ev, key, n >= 8 ? le64(v) >> 4 : n);
		if (member && ev->nfields) { /* a member of another type, made by hand */
			f = &ev->fields[ev->nfields - 1];
			f->member = member;
			f->elem = b % 4;
		}
		return;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t caps[] = {0, 1, 2, 5, 16, 64};
	struct encode_opts general, plain;
	struct event *ev;
	uint64_t an[4][3];
	size_t i, n;
	json_tokener *tok;
	json_object *j;

	if (!fz.ready && init() != 0)
		abort();
	if (size < 37)
		return 0;
	ev = ev_pool_get(fz.pool,
			 data[1] & 0x80 && data[2] & 1 ? EV_KIND_METRIC : EV_KIND_TRANSACTION,
			 datasets[data[0] / 8 % 5]);
	CHECK(ev != NULL);
	if (data[2] & 2)
		ev->kind = EV_KIND_SELF;
	envelope(ev, data + 1);
	for (i = 37; size - i >= 4;) {
		n = data[i + 3];
		if (n > size - i - 4)
			n = size - i - 4;
		add_field(ev, data[i], data[i + 1], data[i + 2], data + i + 4, n);
		i += 4 + n;
	}
	fz.o.max_string = caps[data[0] % 6];
	general = fz.o;
	general.tmpl = NULL;
	plain = fz.o;
	plain.no_shape_cache = true;
	anomalies(an[0]);
	strbuf_reset(&fz.a);
	CHECK(encode_event(ev, &general, &fz.a) == 0);
	anomalies(an[1]);
	strbuf_reset(&fz.b);
	CHECK(encode_event(ev, &plain, &fz.b) == 0);
	anomalies(an[2]);
	CHECK(fz.a.len == fz.b.len && memcmp(fz.a.p, fz.b.p, fz.a.len) == 0);
	for (int pass = 0; pass < 2; pass++) { /* recorded (or already cached), then cached */
		strbuf_reset(&fz.c);
		CHECK(encode_event(ev, &fz.o, &fz.c) == 0);
		CHECK(fz.a.len == fz.c.len && memcmp(fz.a.p, fz.c.p, fz.a.len) == 0);
	}
	anomalies(an[3]);
	for (i = 0; i < 3; i++) {
		CHECK(an[2][i] - an[1][i] == an[1][i] - an[0][i]);
		CHECK(an[3][i] - an[2][i] == 2 * (an[1][i] - an[0][i]));
	}
	CHECK(utf8_ok((const unsigned char *)fz.a.p, fz.a.len));
	/* deeper than json-c's default 32: keys nest up to MAX_DEPTH (32) objects */
	tok = json_tokener_new_ex(64);
	CHECK(tok != NULL);
	j = json_tokener_parse_ex(tok, fz.a.p, (int)fz.a.len);
	CHECK(j != NULL && json_tokener_get_error(tok) == json_tokener_success);
	json_object_put(j);
	json_tokener_free(tok);
	ev_pool_put(ev);
	return 0;
}
