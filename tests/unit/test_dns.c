/* test_dns.c — net/proto/dns.c through its proto_ops, with a collecting ev_sink.
 *
 * Messages are built here with a tiny builder (mb_*); TCP is fed through a
 * miniature stream layer that keeps the unconsumed tail, like net/tcp_stream.c.
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
#include "hostbeat/event.h"
#include "hostbeat/metrics.h"
#include "hostbeat/proto.h"

extern const struct proto_ops dns_proto;

#define T0 (1440662455638957000ULL) /* 2015-08-27T08:00:55.638957Z */
#define MAXEV 64

/* ---- message builder ---------------------------------------------------------- */

struct mb {
	uint8_t b[70000];
	size_t len;
};

static void put8(struct mb *m, unsigned v)
{
	m->b[m->len++] = (uint8_t)v;
}

static void put16(struct mb *m, unsigned v)
{
	put8(m, v >> 8);
	put8(m, v);
}

static void put32(struct mb *m, uint32_t v)
{
	put16(m, v >> 16);
	put16(m, v & 0xffff);
}

static void putn(struct mb *m, const void *p, size_t n)
{
	memcpy(m->b + m->len, p, n);
	m->len += n;
}

/* Dotted name, uncompressed; "" is the root. */
static void put_name(struct mb *m, const char *name)
{
	while (*name) {
		const char *dot = strchr(name, '.');
		size_t n = dot ? (size_t)(dot - name) : strlen(name);

		put8(m, (unsigned)n);
		putn(m, name, n);
		name += n;
		if (*name == '.')
			name++;
	}
	put8(m, 0);
}

static void put_ptr(struct mb *m, unsigned off)
{
	put16(m, 0xc000 | off);
}

static void put_hdr(struct mb *m, unsigned id, unsigned flags, unsigned qd, unsigned an,
		    unsigned ns, unsigned ar)
{
	m->len = 0;
	put16(m, id);
	put16(m, flags);
	put16(m, qd);
	put16(m, an);
	put16(m, ns);
	put16(m, ar);
}

static void put_question(struct mb *m, const char *name, unsigned type, unsigned klass)
{
	put_name(m, name);
	put16(m, type);
	put16(m, klass);
}

/* The owner name is written by the caller; returns where RDLENGTH goes. */
static size_t rr_begin(struct mb *m, unsigned type, unsigned klass, uint32_t ttl)
{
	size_t at;

	put16(m, type);
	put16(m, klass);
	put32(m, ttl);
	at = m->len;
	put16(m, 0);
	return at;
}

static void rr_end(struct mb *m, size_t at)
{
	size_t n = m->len - at - 2;

	m->b[at] = (uint8_t)(n >> 8);
	m->b[at + 1] = (uint8_t)n;
}

static void put_opt(struct mb *m, unsigned udp, unsigned ext, unsigned version, bool do_bit)
{
	put8(m, 0);
	put16(m, 41);
	put16(m, udp);
	put32(m, (uint32_t)ext << 24 | (uint32_t)version << 16 | (do_bit ? 0x8000u : 0));
	put16(m, 0);
}

/* query for `name`/`type` with id, RD set */
static void build_query(struct mb *m, unsigned id, const char *name, unsigned type)
{
	put_hdr(m, id, 0x0100, 1, 0, 0, 0);
	put_question(m, name, type, 1);
}

/* google.com A response with n A answers 1.2.3.(i+1), names compressed to offset 12 */
static void build_google(struct mb *m, unsigned id, unsigned n)
{
	put_hdr(m, id, 0x8180, 1, n, 0, 0);
	put_question(m, "google.com", 1, 1);
	for (unsigned i = 0; i < n; i++) {
		size_t at;

		put_ptr(m, 12);
		at = rr_begin(m, 1, 1, 299);
		put8(m, 74);
		put8(m, 125);
		put8(m, 239);
		put8(m, 96 + i);
		rr_end(m, at);
	}
}

/* ---- fixture: pool, collecting sink, connection -------------------------------- */

struct collect {
	struct ev_sink sink;
	struct event *ev[MAXEV];
	size_t n;
};

static void collect_publish(struct ev_sink *sink, struct event *ev)
{
	struct collect *c = (struct collect *)sink;

	if (c->n < MAXEV)
		c->ev[c->n++] = ev;
	else
		ev_pool_put(ev);
}

struct fx {
	struct ev_pool *pool;
	struct collect col;
	struct conn_info info;
	struct cfg_proto cp;
	void *priv;
	struct proto_ctx ctx;
	void *conn;
	/* mini stream layer (TCP) */
	uint8_t buf[2][140000];
	size_t blen[2];
	bool dead;
};

static void cfg_set(struct fx *f, const char *key, uint64_t v)
{
	for (size_t i = 0; i < dns_proto.nconfig; i++) {
		const struct cfg_field *cf = &dns_proto.config[i];

		if (strcmp(cf->key, key) != 0)
			continue;
		if (cf->type == CFG_BOOL)
			*(bool *)((char *)f->priv + cf->offset) = v != 0;
		else
			*(uint64_t *)((char *)f->priv + cf->offset) = v;
		return;
	}
	fail_msg("no config key %s", key);
}

static struct fx *fx_new(bool tcp)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	metrics_reset();
	f->pool = ev_pool_new(256, 1 << 20, 4096);
	assert_non_null(f->pool);
	f->col.sink.publish = collect_publish;
	f->col.sink.pool = f->pool;
	f->priv = calloc(1, dns_proto.config_size);
	assert_non_null(f->priv);
	cfg_set(f, "max_records", 512);
	f->cp.ops = &dns_proto;
	f->cp.enabled = true;
	f->cp.transaction_timeout = 10 * NS_PER_SEC;
	f->cp.max_message_size = 10 * 1024 * 1024;
	f->cp.max_pending = 16;
	f->cp.priv = f->priv;
	hb_ip_parse("192.168.238.68", &f->info.client_ip);
	hb_ip_parse("192.168.238.1", &f->info.server_ip);
	f->info.client_port = 60893;
	f->info.server_port = 53;
	f->info.transport = tcp ? IPPROTO_TCP : IPPROTO_UDP;
	f->info.cfg = &f->cp;
	f->ctx.conn = &f->info;
	f->ctx.sink = &f->col.sink;
	f->ctx.stats = proto_stats_get(&dns_proto);
	return f;
}

/* (Re)create the parser after the config is set. */
static void fx_open(struct fx *f)
{
	f->conn = dns_proto.conn_new(&f->info);
	assert_non_null(f->conn);
}

static void fx_free(struct fx *f)
{
	if (f->conn) {
		dns_proto.expire(f->conn, &f->ctx);
		dns_proto.conn_free(f->conn);
	}
	for (size_t i = 0; i < f->col.n; i++)
		ev_pool_put(f->col.ev[i]);
	assert_int_equal(ev_pool_live(f->pool), 0);
	ev_pool_free(f->pool);
	free(f->priv);
	free(f);
}

static struct parse_result udp(struct fx *f, enum proto_dir dir, const struct mb *m, size_t len,
			       uint64_t ts)
{
	f->ctx.ts = ts;
	return dns_proto.parse(f->conn, dir, m->b, len, &f->ctx);
}

/* Mini stream layer: append, parse, keep the tail. Returns the last status. */
static enum parse_status tcp(struct fx *f, enum proto_dir dir, const void *p, size_t n, uint64_t ts)
{
	struct parse_result r;

	if (f->dead)
		return PARSE_ERROR;
	memcpy(f->buf[dir] + f->blen[dir], p, n);
	f->blen[dir] += n;
	f->ctx.ts = ts;
	r = dns_proto.parse(f->conn, dir, f->buf[dir], f->blen[dir], &f->ctx);
	assert_true(r.consumed <= f->blen[dir]);
	if (r.status == PARSE_ERROR) {
		f->dead = true;
		return r.status;
	}
	if (r.status == PARSE_OK)
		assert_int_equal(r.consumed, f->blen[dir]);
	memmove(f->buf[dir], f->buf[dir] + r.consumed, f->blen[dir] - r.consumed);
	f->blen[dir] -= r.consumed;
	return r.status;
}

/* length-prefixed copy of m */
static void framed(const struct mb *m, struct mb *out)
{
	out->len = 0;
	put16(out, (unsigned)m->len);
	putn(out, m->b, m->len);
}

/* ---- field helpers ------------------------------------------------------------- */

static const struct ev_field *fld(const struct event *ev, const char *key)
{
	return ev_find(ev, key);
}

static const struct ev_field *obj(const struct event *ev, const char *key, unsigned elem,
				  const char *member)
{
	for (size_t i = 0; i < ev->nfields; i++) {
		const struct ev_field *f = &ev->fields[i];

		if (f->member && f->elem == elem && strcmp(f->key, key) == 0 &&
		    strcmp(f->member, member) == 0)
			return f;
	}
	return NULL;
}

static size_t nelems(const struct event *ev, const char *key)
{
	size_t n = 0;

	for (size_t i = 0; i < ev->nfields; i++)
		if (ev->fields[i].member && strcmp(ev->fields[i].key, key) == 0 &&
		    ev->fields[i].elem + 1u > n)
			n = ev->fields[i].elem + 1u;
	return n;
}

static size_t nkey(const struct event *ev, const char *key)
{
	size_t n = 0;

	for (size_t i = 0; i < ev->nfields; i++)
		if (strcmp(ev->fields[i].key, key) == 0)
			n++;
	return n;
}

/* the i-th array element (no member) at key */
static const struct ev_field *nth(const struct event *ev, const char *key, size_t idx)
{
	for (size_t i = 0; i < ev->nfields; i++)
		if (!ev->fields[i].member && strcmp(ev->fields[i].key, key) == 0 && idx-- == 0)
			return &ev->fields[i];
	return NULL;
}

#define assert_fstr(f, want)                                                       \
	do {                                                                       \
		const struct ev_field *f_ = (f);                                   \
		assert_non_null(f_);                                               \
		assert_int_equal(f_->type, EV_T_STR);                              \
		char buf_[8192];                                                   \
		snprintf(buf_, sizeof(buf_), "%.*s", (int)f_->v.s.len, f_->v.s.p); \
		assert_string_equal(buf_, want);                                   \
	} while (0)

#define assert_fuint(f, want)                          \
	do {                                           \
		const struct ev_field *f_ = (f);       \
		assert_non_null(f_);                   \
		assert_int_equal(f_->type, EV_T_UINT); \
		assert_int_equal(f_->v.u, want);       \
	} while (0)

#define assert_fbool(f, want)                          \
	do {                                           \
		const struct ev_field *f_ = (f);       \
		assert_non_null(f_);                   \
		assert_int_equal(f_->type, EV_T_BOOL); \
		assert_int_equal(f_->v.b, want);       \
	} while (0)

static void assert_fip(const struct ev_field *f, const char *want)
{
	char txt[HB_IP_STRLEN];

	assert_non_null(f);
	assert_int_equal(f->type, EV_T_IP);
	hb_ip_format(&f->v.ip, txt);
	assert_string_equal(txt, want);
}

/* ---- tests --------------------------------------------------------------------- */

static void test_ops_contract(void **state)
{
	(void)state;
	assert_string_equal(dns_proto.name, "dns");
	assert_int_equal(dns_proto.transports, PROTO_TCP | PROTO_UDP);
	assert_int_equal(dns_proto.ndefault_ports, 1);
	assert_int_equal(dns_proto.default_ports[0], 53);
	assert_true(dns_proto.config_size > 0);
	dns_proto.conn_free(NULL);
}

/* Like dns_google_com.pcap: 28-byte query, 284-byte response, 16 A answers. */
static void test_udp_google_16_answers(void **state)
{
	struct fx *f = fx_new(false);
	struct mb q, r;
	struct event *ev;
	char ip[16];

	(void)state;
	fx_open(f);
	build_query(&q, 0x1234, "google.com", 1);
	build_google(&r, 0x1234, 16);
	assert_int_equal(q.len, 28);
	assert_int_equal(r.len, 284);
	assert_int_equal(udp(f, DIR_TO_SERVER, &q, q.len, T0).status, PARSE_OK);
	assert_int_equal(f->col.n, 0);
	assert_int_equal(udp(f, DIR_TO_CLIENT, &r, r.len, T0 + 61782000).status, PARSE_OK);
	assert_int_equal(f->col.n, 1);
	ev = f->col.ev[0];

	assert_string_equal(ev->dataset, "dns");
	assert_int_equal(ev->status, EV_STATUS_OK);
	assert_int_equal(ev->start_ns, T0);
	assert_int_equal(ev->ts, T0);
	assert_int_equal(ev->end_ns, T0 + 61782000);
	assert_true(ev->has_client_bytes && ev->has_server_bytes);
	assert_int_equal(ev->client_bytes, 28);
	assert_int_equal(ev->server_bytes, 284);
	assert_int_equal(ev->transport, IPPROTO_UDP);
	assert_int_equal(ev->client_port, 60893);

	assert_fstr(fld(ev, "method"), "QUERY");
	assert_fstr(fld(ev, "query"), "class IN, type A, google.com");
	assert_fstr(fld(ev, "resource"), "google.com");
	assert_fstr(fld(ev, "dns.type"), "answer");
	assert_fuint(fld(ev, "dns.id"), 0x1234);
	assert_fstr(fld(ev, "dns.op_code"), "QUERY");
	assert_fstr(fld(ev, "dns.response_code"), "NOERROR");
	assert_fbool(fld(ev, "dns.flags.recursion_desired"), true);
	assert_fbool(fld(ev, "dns.flags.recursion_available"), true);
	assert_fbool(fld(ev, "dns.flags.authoritative"), false);
	assert_fbool(fld(ev, "dns.flags.truncated_response"), false);
	assert_fbool(fld(ev, "dns.flags.authentic_data"), false);
	assert_fbool(fld(ev, "dns.flags.checking_disabled"), false);
	assert_int_equal(nkey(ev, "dns.header_flags"), 2);
	assert_fstr(nth(ev, "dns.header_flags", 0), "RD");
	assert_fstr(nth(ev, "dns.header_flags", 1), "RA");
	assert_fstr(fld(ev, "dns.question.name"), "google.com");
	assert_fstr(fld(ev, "dns.question.type"), "A");
	assert_fstr(fld(ev, "dns.question.class"), "IN");
	assert_fstr(fld(ev, "dns.question.etld_plus_one"), "google.com");
	assert_fstr(fld(ev, "dns.question.registered_domain"), "google.com");
	assert_fstr(fld(ev, "dns.question.top_level_domain"), "com");
	assert_null(fld(ev, "dns.question.subdomain"));
	assert_fuint(fld(ev, "dns.answers_count"), 16);
	assert_fuint(fld(ev, "dns.authorities_count"), 0);
	assert_fuint(fld(ev, "dns.additionals_count"), 0);
	assert_null(fld(ev, "dns.opt.udp_size"));
	assert_null(fld(ev, "error.message"));
	assert_null(fld(ev, "request"));
	assert_int_equal(nelems(ev, "dns.answers"), 16);
	assert_int_equal(nkey(ev, "dns.resolved_ip"), 16);
	assert_int_equal(nkey(ev, "related.ip"), 16);
	for (unsigned i = 0; i < 16; i++) {
		snprintf(ip, sizeof(ip), "74.125.239.%u", 96 + i);
		assert_fstr(obj(ev, "dns.answers", i, "name"), "google.com");
		assert_fstr(obj(ev, "dns.answers", i, "type"), "A");
		assert_fstr(obj(ev, "dns.answers", i, "class"), "IN");
		assert_fstr(obj(ev, "dns.answers", i, "ttl"), "299");
		assert_fstr(obj(ev, "dns.answers", i, "data"), ip);
		assert_fip(nth(ev, "dns.resolved_ip", i), ip);
		assert_fip(nth(ev, "related.ip", i), ip);
	}
	assert_int_equal(metrics_get("dns.messages"), 2);
	assert_int_equal(metrics_get("dns.transactions"), 1);
	fx_free(f);
}

/* The golden http_basic_auth DNS event: AAAA www.example.com, subdomain www. */
static void test_udp_aaaa_golden_shape(void **state)
{
	struct fx *f = fx_new(false);
	struct mb q, r;
	struct event *ev;
	static const uint8_t v6[16] = {0x26, 0x06, 0x28, 0x00, 0x02, 0x20, 0x00, 0x01,
				       0x02, 0x48, 0x18, 0x93, 0x25, 0xc8, 0x19, 0x46};
	size_t at;

	(void)state;
	fx_open(f);
	build_query(&q, 42715, "www.example.com", 28);
	put_hdr(&r, 42715, 0x8180, 1, 1, 0, 0);
	put_question(&r, "www.example.com", 28, 1);
	put_ptr(&r, 12);
	at = rr_begin(&r, 28, 1, 21353);
	putn(&r, v6, 16);
	rr_end(&r, at);
	assert_int_equal(q.len, 33);
	assert_int_equal(r.len, 61);
	udp(f, DIR_TO_SERVER, &q, q.len, T0);
	udp(f, DIR_TO_CLIENT, &r, r.len, T0 + 20690000);
	assert_int_equal(f->col.n, 1);
	ev = f->col.ev[0];
	assert_int_equal(ev->client_bytes, 33);
	assert_int_equal(ev->server_bytes, 61);
	assert_fstr(fld(ev, "query"), "class IN, type AAAA, www.example.com");
	assert_fstr(fld(ev, "dns.question.subdomain"), "www");
	assert_fstr(fld(ev, "dns.question.registered_domain"), "example.com");
	assert_fstr(fld(ev, "dns.question.etld_plus_one"), "example.com");
	assert_fstr(fld(ev, "dns.question.top_level_domain"), "com");
	assert_fstr(obj(ev, "dns.answers", 0, "data"), "2606:2800:220:1:248:1893:25c8:1946");
	assert_fstr(obj(ev, "dns.answers", 0, "ttl"), "21353");
	assert_fstr(obj(ev, "dns.answers", 0, "type"), "AAAA");
	assert_fip(nth(ev, "dns.resolved_ip", 0), "2606:2800:220:1:248:1893:25c8:1946");
	fx_free(f);
}

static void build_nxdomain(struct mb *r, unsigned id)
{
	size_t at;

	put_hdr(r, id, 0x8183, 1, 0, 1, 0);
	put_question(r, "nothing.elastic.co", 1, 1);
	put_ptr(r, 12 + 8); /* elastic.co */
	at = rr_begin(r, 6, 1, 1799);
	put_name(r, "ns-1.elastic.co");
	put_name(r, "hostmaster.elastic.co");
	put32(r, 2015082701);
	put32(r, 7200);
	put32(r, 3600);
	put32(r, 1209600);
	put32(r, 300);
	rr_end(r, at);
}

static void test_nxdomain_authorities(void **state)
{
	struct mb q, r;
	struct event *ev;

	(void)state;
	for (int include = 0; include < 2; include++) {
		struct fx *f = fx_new(false);

		cfg_set(f, "include_authorities", (uint64_t)include);
		fx_open(f);
		build_query(&q, 7, "nothing.elastic.co", 1);
		build_nxdomain(&r, 7);
		udp(f, DIR_TO_SERVER, &q, q.len, T0);
		udp(f, DIR_TO_CLIENT, &r, r.len, T0 + 1000);
		assert_int_equal(f->col.n, 1);
		ev = f->col.ev[0];
		assert_int_equal(ev->status, EV_STATUS_ERROR);
		assert_null(fld(ev, "error.message"));
		assert_fstr(fld(ev, "query"), "class IN, type A, nothing.elastic.co");
		assert_fstr(fld(ev, "dns.response_code"), "NXDOMAIN");
		assert_fuint(fld(ev, "dns.answers_count"), 0);
		assert_fuint(fld(ev, "dns.authorities_count"), 1);
		assert_int_equal(nelems(ev, "dns.answers"), 0);
		assert_fstr(fld(ev, "dns.question.subdomain"), "nothing");
		if (!include) {
			assert_int_equal(nelems(ev, "dns.authorities"), 0);
		} else {
			assert_int_equal(nelems(ev, "dns.authorities"), 1);
			assert_fstr(obj(ev, "dns.authorities", 0, "name"), "elastic.co");
			assert_fstr(obj(ev, "dns.authorities", 0, "type"), "SOA");
			assert_fstr(obj(ev, "dns.authorities", 0, "ttl"), "1799");
			assert_fstr(obj(ev, "dns.authorities", 0, "data"), "ns-1.elastic.co");
			assert_fstr(obj(ev, "dns.authorities", 0, "rname"),
				    "hostmaster.elastic.co");
			assert_fuint(obj(ev, "dns.authorities", 0, "serial"), 2015082701);
			assert_fuint(obj(ev, "dns.authorities", 0, "refresh"), 7200);
			assert_fuint(obj(ev, "dns.authorities", 0, "retry"), 3600);
			assert_fuint(obj(ev, "dns.authorities", 0, "expire"), 1209600);
			assert_fuint(obj(ev, "dns.authorities", 0, "minimum"), 300);
		}
		assert_int_equal(nkey(ev, "dns.resolved_ip"), 0);
		fx_free(f);
	}
}

/* One additional A record + OPT: the OPT is not counted as an additional. */
static void test_additionals_and_opt_do(void **state)
{
	struct mb q, r;
	struct event *ev;
	size_t at;

	(void)state;
	for (int include = 0; include < 2; include++) {
		struct fx *f = fx_new(false);

		cfg_set(f, "include_additionals", (uint64_t)include);
		fx_open(f);
		put_hdr(&q, 99, 0x0100, 1, 0, 0, 1);
		put_question(&q, "example.com", 15, 1);
		put_opt(&q, 4096, 0, 0, true);
		put_hdr(&r, 99, 0x81a0, 1, 1, 0, 2);
		put_question(&r, "example.com", 15, 1);
		put_ptr(&r, 12);
		at = rr_begin(&r, 15, 1, 3600);
		put16(&r, 10);
		put_name(&r, "mail.example.com");
		rr_end(&r, at);
		put_name(&r, "mail.example.com");
		at = rr_begin(&r, 1, 1, 60);
		put32(&r, 0x0a000001);
		rr_end(&r, at);
		put_opt(&r, 1232, 0, 0, true);

		udp(f, DIR_TO_SERVER, &q, q.len, T0);
		udp(f, DIR_TO_CLIENT, &r, r.len, T0 + 5);
		assert_int_equal(f->col.n, 1);
		ev = f->col.ev[0];
		assert_int_equal(ev->status, EV_STATUS_OK);
		assert_null(fld(ev, "error.message"));
		assert_fuint(fld(ev, "dns.additionals_count"), 1);
		assert_fstr(fld(ev, "dns.opt.version"), "0");
		assert_fbool(fld(ev, "dns.opt.do"), true);
		assert_fuint(fld(ev, "dns.opt.udp_size"), 1232);
		assert_fstr(fld(ev, "dns.opt.ext_rcode"), "NOERROR");
		assert_fbool(fld(ev, "dns.flags.authentic_data"), true);
		assert_int_equal(nkey(ev, "dns.header_flags"), 4);
		assert_fstr(nth(ev, "dns.header_flags", 0), "RD");
		assert_fstr(nth(ev, "dns.header_flags", 1), "RA");
		assert_fstr(nth(ev, "dns.header_flags", 2), "AD");
		assert_fstr(nth(ev, "dns.header_flags", 3), "DO");
		assert_fstr(obj(ev, "dns.answers", 0, "type"), "MX");
		assert_fstr(obj(ev, "dns.answers", 0, "data"), "mail.example.com");
		assert_fuint(obj(ev, "dns.answers", 0, "preference"), 10);
		/* an A record outside the answer section is not a resolved IP */
		assert_int_equal(nkey(ev, "dns.resolved_ip"), 0);
		if (include) {
			assert_int_equal(nelems(ev, "dns.additionals"), 1);
			assert_fstr(obj(ev, "dns.additionals", 0, "name"), "mail.example.com");
			assert_fstr(obj(ev, "dns.additionals", 0, "data"), "10.0.0.1");
		} else {
			assert_int_equal(nelems(ev, "dns.additionals"), 0);
		}
		fx_free(f);
	}
}

/* EDNS mismatch notes and the extended RCODE. */
static void test_edns_notes_and_ext_rcode(void **state)
{
	struct fx *f = fx_new(false);
	struct mb q, r;
	struct event *ev;

	(void)state;
	fx_open(f);
	/* EDNS query, plain response */
	put_hdr(&q, 1, 0x0100, 1, 0, 0, 1);
	put_question(&q, "a.example", 1, 1);
	put_opt(&q, 4096, 0, 0, false);
	put_hdr(&r, 1, 0x8180, 1, 0, 0, 0);
	put_question(&r, "a.example", 1, 1);
	udp(f, DIR_TO_SERVER, &q, q.len, T0);
	udp(f, DIR_TO_CLIENT, &r, r.len, T0 + 1);
	/* plain query, EDNS response with BADVERS (ext 1 -> 16) */
	build_query(&q, 2, "b.example", 1);
	put_hdr(&r, 2, 0x8180, 1, 0, 0, 1);
	put_question(&r, "b.example", 1, 1);
	put_opt(&r, 512, 1, 0, false);
	udp(f, DIR_TO_SERVER, &q, q.len, T0 + 2);
	udp(f, DIR_TO_CLIENT, &r, r.len, T0 + 3);
	assert_int_equal(f->col.n, 2);
	ev = f->col.ev[0];
	assert_int_equal(ev->status, EV_STATUS_OK);
	assert_fstr(fld(ev, "error.message"), "Responder does not support EDNS");
	assert_null(fld(ev, "dns.opt.udp_size")); /* the query's OPT fields were replaced */
	ev = f->col.ev[1];
	assert_int_equal(ev->status, EV_STATUS_ERROR);
	assert_fstr(fld(ev, "error.message"), "Unexpected EDNS answer");
	assert_fstr(fld(ev, "dns.response_code"), "BADSIG");
	assert_fstr(fld(ev, "dns.opt.ext_rcode"), "BADSIG");
	fx_free(f);
}

/* A name through a chain of pointers; a pointer loop and a forward pointer rejected. */
static void test_compression_pointers(void **state)
{
	struct fx *f = fx_new(false);
	struct mb m, r;
	struct event *ev;
	size_t at, www;

	(void)state;
	fx_open(f);
	/* response: question example.com; answer name "www" + ptr(12); CNAME data
	 * "cdn" + ptr(www) (two levels) */
	put_hdr(&r, 5, 0x8180, 1, 1, 0, 0);
	put_question(&r, "example.com", 5, 1);
	www = r.len;
	put8(&r, 3);
	putn(&r, "www", 3);
	put_ptr(&r, 12);
	at = rr_begin(&r, 5, 1, 30);
	put8(&r, 3);
	putn(&r, "cdn", 3);
	put_ptr(&r, (unsigned)www);
	rr_end(&r, at);
	assert_int_equal(udp(f, DIR_TO_CLIENT, &r, r.len, T0).status, PARSE_OK);
	assert_int_equal(f->col.n, 1);
	ev = f->col.ev[0];
	assert_fstr(obj(ev, "dns.answers", 0, "name"), "www.example.com");
	assert_fstr(obj(ev, "dns.answers", 0, "type"), "CNAME");
	assert_fstr(obj(ev, "dns.answers", 0, "data"), "cdn.www.example.com");

	/* pointer to itself in the question name */
	put_hdr(&m, 6, 0x0100, 1, 0, 0, 0);
	put_ptr(&m, 12);
	put16(&m, 1);
	put16(&m, 1);
	assert_int_equal(udp(f, DIR_TO_SERVER, &m, m.len, T0).status, PARSE_ERROR);
	/* two labels then a pointer back to the first label: a loop */
	put_hdr(&m, 7, 0x0100, 1, 0, 0, 0);
	put8(&m, 1);
	put8(&m, 'a');
	put8(&m, 1);
	put8(&m, 'b');
	put_ptr(&m, 12);
	put16(&m, 1);
	put16(&m, 1);
	assert_int_equal(udp(f, DIR_TO_SERVER, &m, m.len, T0).status, PARSE_ERROR);
	/* forward pointer */
	put_hdr(&m, 8, 0x0100, 1, 0, 0, 0);
	put_ptr(&m, 18);
	put16(&m, 1);
	put16(&m, 1);
	put_name(&m, "x");
	assert_int_equal(udp(f, DIR_TO_SERVER, &m, m.len, T0).status, PARSE_ERROR);
	/* pointer past the end */
	put_hdr(&m, 9, 0x0100, 1, 0, 0, 0);
	put_ptr(&m, 0x3fff);
	assert_int_equal(udp(f, DIR_TO_SERVER, &m, m.len, T0).status, PARSE_ERROR);
	/* extended label type 01xxxxxx */
	put_hdr(&m, 10, 0x0100, 1, 0, 0, 0);
	put8(&m, 0x41);
	put8(&m, 0);
	put16(&m, 1);
	put16(&m, 1);
	assert_int_equal(udp(f, DIR_TO_SERVER, &m, m.len, T0).status, PARSE_ERROR);
	assert_int_equal(f->col.n, 1);
	dns_proto.expire(f->conn, &f->ctx);
	assert_int_equal(f->col.n, 1); /* none of the bad queries became pending */
	fx_free(f);
}

/* Names longer than 255 wire bytes are rejected; 255 exactly is accepted. */
static void test_name_length_limit(void **state)
{
	struct fx *f = fx_new(false);
	struct mb m;
	char label[64];

	(void)state;
	fx_open(f);
	memset(label, 'x', 63);
	/* 3 x (1+63) + (1+61) + 1 = 255 */
	put_hdr(&m, 1, 0x0100, 1, 0, 0, 0);
	for (int i = 0; i < 3; i++) {
		put8(&m, 63);
		putn(&m, label, 63);
	}
	put8(&m, 61);
	putn(&m, label, 61);
	put8(&m, 0);
	put16(&m, 1);
	put16(&m, 1);
	assert_int_equal(udp(f, DIR_TO_SERVER, &m, m.len, T0).status, PARSE_OK);
	put_hdr(&m, 2, 0x0100, 1, 0, 0, 0);
	for (int i = 0; i < 3; i++) {
		put8(&m, 63);
		putn(&m, label, 63);
	}
	put8(&m, 62);
	putn(&m, label, 62);
	put8(&m, 0);
	put16(&m, 1);
	put16(&m, 1);
	assert_int_equal(udp(f, DIR_TO_SERVER, &m, m.len, T0).status, PARSE_ERROR);
	fx_free(f);
}

static void test_escaped_names_and_root(void **state)
{
	struct fx *f = fx_new(false);
	struct mb m;
	struct event *ev;
	static const uint8_t lab[] = {'a', '.', 'b', ' ', 1, '\\', 0xff, '"', ';'};

	(void)state;
	fx_open(f);
	put_hdr(&m, 1, 0x0100, 1, 0, 0, 0);
	put8(&m, sizeof(lab));
	putn(&m, lab, sizeof(lab));
	put_name(&m, "example.com");
	put16(&m, 16);
	put16(&m, 3);
	udp(f, DIR_TO_SERVER, &m, m.len, T0);
	put_hdr(&m, 2, 0x0100, 1, 0, 0, 0);
	put_question(&m, "", 2, 1);
	udp(f, DIR_TO_SERVER, &m, m.len, T0);
	dns_proto.expire(f->conn, &f->ctx);
	assert_int_equal(f->col.n, 2);
	ev = f->col.ev[0];
	assert_fstr(fld(ev, "dns.question.name"), "a\\.b\\ \\001\\\\\\255\\\"\\;.example.com");
	assert_fstr(fld(ev, "dns.question.class"), "CH");
	assert_fstr(fld(ev, "dns.question.type"), "TXT");
	assert_fstr(fld(ev, "dns.question.registered_domain"), "example.com");
	assert_fstr(fld(ev, "dns.question.subdomain"), "a\\.b\\ \\001\\\\\\255\\\"\\;");
	ev = f->col.ev[1];
	assert_fstr(fld(ev, "dns.question.name"), ".");
	assert_fstr(fld(ev, "query"), "class IN, type NS, .");
	assert_null(fld(ev, "dns.question.registered_domain"));
	assert_null(fld(ev, "dns.question.top_level_domain"));
	fx_free(f);
}

static void test_public_suffix_heuristic(void **state)
{
	static const struct {
		const char *name, *reg, *tld, *sub;
	} cases[] = {
	    {"www.bbc.co.uk", "bbc.co.uk", "co.uk", "www"},
	    {"a.b.example.com.au", "example.com.au", "com.au", "a.b"},
	    {"131.252.30.192.in-addr.arpa", "192.in-addr.arpa", "in-addr.arpa", "131.252.30"},
	    {"elastic.co", "elastic.co", "co", NULL},
	    {"co.uk", NULL, NULL, NULL},
	    {"localhost", NULL, NULL, NULL},
	    {"WWW.Example.COM", "Example.COM", "COM", "WWW"},
	};
	struct mb m;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fx *f = fx_new(false);
		struct event *ev;

		fx_open(f);
		build_query(&m, 1, cases[i].name, 1);
		udp(f, DIR_TO_SERVER, &m, m.len, T0);
		dns_proto.expire(f->conn, &f->ctx);
		assert_int_equal(f->col.n, 1);
		ev = f->col.ev[0];
		if (cases[i].reg) {
			assert_fstr(fld(ev, "dns.question.registered_domain"), cases[i].reg);
			assert_fstr(fld(ev, "dns.question.etld_plus_one"), cases[i].reg);
			assert_fstr(fld(ev, "dns.question.top_level_domain"), cases[i].tld);
		} else {
			assert_null(fld(ev, "dns.question.registered_domain"));
		}
		if (cases[i].sub)
			assert_fstr(fld(ev, "dns.question.subdomain"), cases[i].sub);
		else
			assert_null(fld(ev, "dns.question.subdomain"));
		fx_free(f);
	}
}

static void test_unmatched_query_expire_and_timeout(void **state)
{
	struct fx *f = fx_new(false);
	struct mb q;
	struct event *ev;

	(void)state;
	fx_open(f);
	build_query(&q, 1, "a.example.org", 1);
	udp(f, DIR_TO_SERVER, &q, q.len, T0);
	/* a later packet past the transaction timeout flushes it */
	build_query(&q, 2, "b.example.org", 1);
	udp(f, DIR_TO_SERVER, &q, q.len, T0 + 11 * NS_PER_SEC);
	assert_int_equal(f->col.n, 1);
	ev = f->col.ev[0];
	assert_int_equal(ev->status, EV_STATUS_ERROR);
	assert_fstr(fld(ev, "error.message"), "No response to this query was received");
	assert_fstr(fld(ev, "dns.type"), "query");
	assert_fstr(fld(ev, "dns.question.name"), "a.example.org");
	assert_fstr(fld(ev, "resource"), "a.example.org");
	assert_fstr(fld(ev, "dns.response_code"), "NOERROR");
	assert_int_equal(ev->client_bytes, q.len);
	assert_false(ev->has_server_bytes);
	assert_int_equal(ev->end_ns, 0);
	/* expire() flushes the rest */
	f->ctx.ts = T0 + 12 * NS_PER_SEC;
	dns_proto.expire(f->conn, &f->ctx);
	assert_int_equal(f->col.n, 2);
	assert_fstr(fld(f->col.ev[1], "dns.question.name"), "b.example.org");
	assert_fstr(fld(f->col.ev[1], "error.message"), "No response to this query was received");
	assert_int_equal(metrics_get("dns.unmatched_requests"), 2);
	fx_free(f);
}

static void test_unmatched_response(void **state)
{
	struct fx *f = fx_new(false);
	struct mb r;
	struct event *ev;

	(void)state;
	fx_open(f);
	build_google(&r, 77, 2);
	udp(f, DIR_TO_CLIENT, &r, r.len, T0 + 5);
	assert_int_equal(f->col.n, 1);
	ev = f->col.ev[0];
	assert_int_equal(ev->status, EV_STATUS_ERROR);
	assert_fstr(fld(ev, "error.message"), "Response: received without an associated Query");
	assert_int_equal(ev->start_ns, 0);
	assert_int_equal(ev->ts, T0 + 5);
	assert_false(ev->has_client_bytes);
	assert_int_equal(ev->server_bytes, r.len);
	assert_fstr(fld(ev, "dns.type"), "answer");
	assert_fstr(fld(ev, "method"), "QUERY");
	assert_fstr(fld(ev, "query"), "class IN, type A, google.com");
	assert_int_equal(nelems(ev, "dns.answers"), 2);
	assert_int_equal(metrics_get("dns.unmatched_responses"), 1);
	fx_free(f);
}

static void test_duplicate_id(void **state)
{
	struct fx *f = fx_new(false);
	struct mb q, r;

	(void)state;
	fx_open(f);
	build_query(&q, 5, "first.example.com", 1);
	udp(f, DIR_TO_SERVER, &q, q.len, T0);
	build_query(&q, 5, "google.com", 1);
	udp(f, DIR_TO_SERVER, &q, q.len, T0 + 1);
	assert_int_equal(f->col.n, 1);
	assert_fstr(fld(f->col.ev[0], "dns.question.name"), "first.example.com");
	assert_fstr(fld(f->col.ev[0], "error.message"),
		    "Another query with the same DNS ID from this client was received so this "
		    "query was closed without receiving a response");
	assert_int_equal(f->col.ev[0]->status, EV_STATUS_ERROR);
	build_google(&r, 5, 1);
	udp(f, DIR_TO_CLIENT, &r, r.len, T0 + 2);
	assert_int_equal(f->col.n, 2);
	assert_int_equal(f->col.ev[1]->status, EV_STATUS_OK);
	assert_int_equal(f->col.ev[1]->start_ns, T0 + 1);
	fx_free(f);
}

/* Responses match by ID, not by order; a full FIFO gives up its oldest query. */
static void test_out_of_order_and_pending_cap(void **state)
{
	struct fx *f = fx_new(false);
	struct mb q, r;

	(void)state;
	f->cp.max_pending = 2;
	fx_open(f);
	build_query(&q, 1, "one.example", 1);
	udp(f, DIR_TO_SERVER, &q, q.len, T0);
	build_query(&q, 2, "two.example", 1);
	udp(f, DIR_TO_SERVER, &q, q.len, T0 + 1);
	build_query(&q, 3, "three.example", 1);
	udp(f, DIR_TO_SERVER, &q, q.len, T0 + 2);
	assert_int_equal(f->col.n, 1);
	assert_fstr(fld(f->col.ev[0], "dns.question.name"), "one.example");
	assert_int_equal(metrics_get("dns.limit_exceeded"), 1);
	put_hdr(&r, 3, 0x8180, 1, 0, 0, 0);
	put_question(&r, "three.example", 1, 1);
	udp(f, DIR_TO_CLIENT, &r, r.len, T0 + 3);
	assert_int_equal(f->col.n, 2);
	assert_fstr(fld(f->col.ev[1], "dns.question.name"), "three.example");
	assert_int_equal(f->col.ev[1]->status, EV_STATUS_OK);
	fx_free(f);
}

/* A response that is not DNS ends its query (found by ID) with an error note. */
static void test_undecodable_response(void **state)
{
	struct fx *f = fx_new(false);
	struct mb q, r;

	(void)state;
	fx_open(f);
	build_query(&q, 0x4242, "x.example.com", 1);
	udp(f, DIR_TO_SERVER, &q, q.len, T0);
	put_hdr(&r, 0x4242, 0x8180, 1, 5, 0, 0); /* counts promise more than there is */
	put_question(&r, "x.example.com", 1, 1);
	assert_int_equal(udp(f, DIR_TO_CLIENT, &r, r.len, T0 + 9).status, PARSE_ERROR);
	assert_int_equal(f->col.n, 1);
	assert_int_equal(f->col.ev[0]->status, EV_STATUS_ERROR);
	assert_fstr(fld(f->col.ev[0], "error.message"),
		    "Response: Message's data could not be decoded as DNS");
	assert_fstr(fld(f->col.ev[0], "dns.question.name"), "x.example.com");
	/* the flow keeps working after the bad datagram */
	build_query(&q, 1, "y.example.com", 1);
	assert_int_equal(udp(f, DIR_TO_SERVER, &q, q.len, T0 + 10).status, PARSE_OK);
	fx_free(f);
}

/* qdcount 65535 on a bare header, and other hostile counts. */
static void test_hostile_counts(void **state)
{
	struct fx *f = fx_new(false);
	struct mb m;

	(void)state;
	fx_open(f);
	put_hdr(&m, 1, 0x0100, 65535, 0, 0, 0);
	assert_int_equal(m.len, 12);
	assert_int_equal(udp(f, DIR_TO_SERVER, &m, m.len, T0).status, PARSE_ERROR);
	put_hdr(&m, 1, 0x8180, 0, 65535, 65535, 65535);
	assert_int_equal(udp(f, DIR_TO_CLIENT, &m, m.len, T0).status, PARSE_ERROR);
	put_hdr(&m, 1, 0x0100, 0, 0, 0, 0);
	assert_int_equal(udp(f, DIR_TO_SERVER, &m, 11, T0).status, PARSE_ERROR);
	assert_int_equal(udp(f, DIR_TO_SERVER, &m, 0, T0).status, PARSE_ERROR);
	/* an RDLENGTH past the end */
	build_google(&m, 2, 1);
	m.b[m.len - 5] = 0xff;
	assert_int_equal(udp(f, DIR_TO_CLIENT, &m, m.len, T0).status, PARSE_ERROR);
	assert_int_equal(f->col.n, 0);
	/* a header-only query without a question is fine */
	put_hdr(&m, 3, 0x0100, 0, 0, 0, 0);
	assert_int_equal(udp(f, DIR_TO_SERVER, &m, m.len, T0).status, PARSE_OK);
	dns_proto.expire(f->conn, &f->ctx);
	assert_int_equal(f->col.n, 1);
	assert_null(fld(f->col.ev[0], "query"));
	assert_null(fld(f->col.ev[0], "dns.question.name"));
	assert_fstr(fld(f->col.ev[0], "method"), "QUERY");
	fx_free(f);
}

/* max_records: only that many entries are decoded; the rest is counted. */
static void test_max_records(void **state)
{
	struct fx *f = fx_new(false);
	struct mb q, r;

	(void)state;
	cfg_set(f, "max_records", 11); /* the question + 10 answers */
	fx_open(f);
	build_query(&q, 1, "google.com", 1);
	build_google(&r, 1, 600);
	udp(f, DIR_TO_SERVER, &q, q.len, T0);
	assert_int_equal(udp(f, DIR_TO_CLIENT, &r, r.len, T0 + 1).status, PARSE_OK);
	assert_int_equal(f->col.n, 1);
	assert_int_equal(nelems(f->col.ev[0], "dns.answers"), 10);
	assert_fuint(fld(f->col.ev[0], "dns.answers_count"), 600);
	assert_true(metrics_get("dns.limit_exceeded") >= 1);
	fx_free(f);
}

static void test_non_edns_too_large(void **state)
{
	struct fx *f = fx_new(false);
	struct mb q, r;

	(void)state;
	fx_open(f);
	build_query(&q, 1, "google.com", 1);
	build_google(&r, 1, 40); /* 28 + 40*16 = 668 bytes without OPT */
	udp(f, DIR_TO_SERVER, &q, q.len, T0);
	udp(f, DIR_TO_CLIENT, &r, r.len, T0 + 1);
	assert_int_equal(f->col.n, 1);
	assert_int_equal(f->col.ev[0]->status, EV_STATUS_OK);
	assert_fstr(fld(f->col.ev[0], "error.message"),
		    "Response: Non-EDNS packet has size greater than 512");
	fx_free(f);
}

static void test_send_request_response_text(void **state)
{
	struct fx *f = fx_new(false);
	struct mb q, r;
	struct event *ev;

	(void)state;
	f->cp.send_request = true;
	f->cp.send_response = true;
	fx_open(f);
	build_query(&q, 11674, "elastic.co", 1);
	build_nxdomain(&r, 11674);
	udp(f, DIR_TO_SERVER, &q, q.len, T0);
	udp(f, DIR_TO_CLIENT, &r, r.len, T0 + 1);
	ev = f->col.ev[0];
	assert_fstr(fld(ev, "request"),
		    "ID 11674; QR query; OPCODE QUERY; FLAGS rd; RCODE NOERROR; "
		    "QUESTION class IN, type A, elastic.co");
	assert_fstr(fld(ev, "response"),
		    "ID 11674; QR response; OPCODE QUERY; FLAGS rd ra; RCODE NXDOMAIN; "
		    "QUESTION class IN, type A, nothing.elastic.co; "
		    "AUTHORITY rname hostmaster.elastic.co, ns-1.elastic.co");
	fx_free(f);

	/* max_message_size caps the text */
	f = fx_new(false);
	f->cp.send_request = true;
	f->cp.max_message_size = 10;
	fx_open(f);
	udp(f, DIR_TO_SERVER, &q, q.len, T0);
	dns_proto.expire(f->conn, &f->ctx);
	assert_fstr(fld(f->col.ev[0], "request"), "ID 11674; ");
	assert_null(fld(f->col.ev[0], "response"));
	fx_free(f);
}

/* ---- every RR renderer ------------------------------------------------------------ */

struct rr_case {
	unsigned type;
	const char *type_name;
	const uint8_t *rdata; /* NULL: built by the case's switch below */
	size_t rdlen;
	const char *data;
	const char *k1, *v1; /* one string extra to check, optional */
	const char *k2;      /* one number extra, optional */
	uint64_t n2;
};

/* Append the RDATA of a case that contains names (compressed against offset 12
 * where a name "example.com" sits in the question). */
static void put_rdata(struct mb *m, unsigned type, int variant)
{
	switch (type) {
	case 2:
		put_name(m, "ns1.example.com");
		break;
	case 5:
		put8(m, 3);
		putn(m, "www", 3);
		put_ptr(m, 12);
		break;
	case 12:
		put_name(m, "host.example.net");
		break;
	case 39:
		put_name(m, "other.example");
		break;
	case 33:
		put16(m, 10);
		put16(m, 60);
		put16(m, 5060);
		put_name(m, "sip.example.com");
		break;
	case 35:
		put16(m, 100);
		put16(m, 10);
		put8(m, 1);
		putn(m, "S", 1);
		put8(m, 7);
		putn(m, "SIP+D2U", 7);
		put8(m, 0);
		put_name(m, "_sip._udp.example.com");
		break;
	case 46:
		put16(m, 1);
		put8(m, 8);
		put8(m, 2);
		put32(m, 3600);
		put32(m, 1700000000); /* 2023-11-14T22:13:20Z */
		put32(m, 1699000000); /* 2023-11-03T08:26:40Z */
		put16(m, 12345);
		put_name(m, "example.com");
		putn(m, "\x01\x02\x03", 3);
		break;
	case 47:
		put_name(m, "next.example.com");
		put8(m, 0);
		put8(m, 6);
		putn(m, "\x62\x01\x80\x08\x00\x03", 6); /* A NS SOA MX TXT AAAA RRSIG NSEC */
		break;
	case 64:
	case 65:
		put16(m, 1);
		if (variant)
			put_name(m, "");
		else
			put_name(m, "svc.example.com");
		put16(m, 1); /* alpn h2,h3 */
		put16(m, 6);
		putn(m, "\x02h2\x02h3", 6);
		put16(m, 3); /* port */
		put16(m, 2);
		put16(m, 8443);
		put16(m, 4); /* ipv4hint */
		put16(m, 8);
		putn(m, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
		break;
	}
}

static void test_rr_renderers(void **state)
{
	static const uint8_t hinfo[] = "\x05"
				       "Intel"
				       "\x05"
				       "Linux";
	static const uint8_t caa[] = "\x00\x05"
				     "issue"
				     "letsencrypt.org";
	static const uint8_t txt[] = {5,   'h', 'e', 'l', 'l', 'o', 6, 'w',
				      'o', 'r', '"', 'l', 'd', 1,   1};
	static const uint8_t ds[] = {0x30, 0x39, 8, 2, 0xde, 0xad, 0xbe, 0xef};
	static const uint8_t dnskey[] = {0x01, 0x01, 3, 13, 'M', 'a', 'n'};
	static const uint8_t nsec3[] = {1, 0, 0, 10, 2, 0xab, 0xcd, 5, 0, 0, 0, 0, 0, 0, 1, 0x40};
	static const uint8_t nsec3p[] = {1, 0, 0, 0, 0};
	static const uint8_t tlsa[] = {3, 1, 1, 0xab, 0x0c};
	static const uint8_t sshfp[] = {4, 2, 0xab, 0x0c};
	static const uint8_t unknown[] = {'h', 'i', 0, '\n', 200};
	static const uint8_t badaaaa[] = {1, 2, 3};
	static const struct rr_case cases[] = {
	    {2, "NS", NULL, 0, "ns1.example.com", NULL, NULL, NULL, 0},
	    {5, "CNAME", NULL, 0, "www.example.com", NULL, NULL, NULL, 0},
	    {12, "PTR", NULL, 0, "host.example.net", NULL, NULL, NULL, 0},
	    {39, "DNAME", NULL, 0, "other.example", NULL, NULL, NULL, 0},
	    {33, "SRV", NULL, 0, "sip.example.com", NULL, NULL, "port", 5060},
	    {35, "NAPTR", NULL, 0, "100 10 \"S\" \"SIP+D2U\" \"\" _sip._udp.example.com", NULL,
	     NULL, NULL, 0},
	    {46, "RRSIG", NULL, 0, "AQID", "expiration", "20231114221320", NULL, 0},
	    {47, "NSEC", NULL, 0, "next.example.com", "type_bits",
	     "A NS SOA MX TXT AAAA RRSIG NSEC", NULL, 0},
	    {64, "SVCB", NULL, 0, "1 svc.example.com alpn=h2,h3 port=8443 ipv4hint=1.2.3.4,5.6.7.8",
	     NULL, NULL, NULL, 0},
	    {13, "HINFO", hinfo, sizeof(hinfo) - 1, "\"Intel\" \"Linux\"", NULL, NULL, NULL, 0},
	    {257, "CAA", caa, sizeof(caa) - 1, "0 issue \"letsencrypt.org\"", NULL, NULL, NULL, 0},
	    {16, "TXT", txt, sizeof(txt), "hello wor\\\"ld \\001", NULL, NULL, NULL, 0},
	    {43, "DS", ds, sizeof(ds), "DEADBEEF", "key_tag", "12345", NULL, 0},
	    {48, "DNSKEY", dnskey, sizeof(dnskey), "TWFu", "algorithm", "ECDSAP256SHA256", NULL, 0},
	    {50, "NSEC3", nsec3, sizeof(nsec3), "00000000", "salt", "ABCD", NULL, 0},
	    {51, "NSEC3PARAM", nsec3p, sizeof(nsec3p), "-", "hash", "SHA1", NULL, 0},
	    {52, "TLSA", tlsa, sizeof(tlsa), "3 1 1 ab0c", NULL, NULL, NULL, 0},
	    {44, "SSHFP", sshfp, sizeof(sshfp), "4 2 AB0C", NULL, NULL, NULL, 0},
	    {65280, "65280", unknown, sizeof(unknown), "hi\\000\\n\\200", NULL, NULL, NULL, 0},
	    {28, "AAAA", badaaaa, sizeof(badaaaa), "\\001\\002\\003", NULL, NULL, NULL, 0},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct rr_case *k = &cases[i];
		struct fx *f = fx_new(false);
		struct mb r;
		struct event *ev;
		size_t at;

		fx_open(f);
		put_hdr(&r, 1, 0x8180, 1, 1, 0, 0);
		put_question(&r, "example.com", k->type, 1);
		put_ptr(&r, 12);
		at = rr_begin(&r, k->type, 1, 60);
		if (k->rdata)
			putn(&r, k->rdata, k->rdlen);
		else
			put_rdata(&r, k->type, 0);
		rr_end(&r, at);
		assert_int_equal(udp(f, DIR_TO_CLIENT, &r, r.len, T0).status, PARSE_OK);
		assert_int_equal(f->col.n, 1);
		ev = f->col.ev[0];
		assert_fstr(obj(ev, "dns.answers", 0, "type"), k->type_name);
		assert_fstr(obj(ev, "dns.answers", 0, "data"), k->data);
		if (k->k1)
			assert_fstr(obj(ev, "dns.answers", 0, k->k1), k->v1);
		if (k->k2)
			assert_fuint(obj(ev, "dns.answers", 0, k->k2), k->n2);
		fx_free(f);
	}
}

/* The remaining extras of the DNSSEC types, and SVCB with the root target. */
static void test_rr_dnssec_extras(void **state)
{
	struct fx *f = fx_new(false);
	struct mb r;
	struct event *ev;
	size_t at;

	(void)state;
	fx_open(f);
	put_hdr(&r, 1, 0x8180, 1, 2, 0, 0);
	put_question(&r, "example.com", 46, 1);
	put_ptr(&r, 12);
	at = rr_begin(&r, 46, 1, 60);
	put_rdata(&r, 46, 0);
	rr_end(&r, at);
	put_ptr(&r, 12);
	at = rr_begin(&r, 65, 1, 60);
	put_rdata(&r, 65, 1);
	rr_end(&r, at);
	udp(f, DIR_TO_CLIENT, &r, r.len, T0);
	ev = f->col.ev[0];
	assert_fstr(obj(ev, "dns.answers", 0, "type_covered"), "A");
	assert_fstr(obj(ev, "dns.answers", 0, "algorithm"), "RSASHA256");
	assert_fstr(obj(ev, "dns.answers", 0, "labels"), "2");
	assert_fstr(obj(ev, "dns.answers", 0, "original_ttl"), "3600");
	assert_fstr(obj(ev, "dns.answers", 0, "inception"), "20231103082640");
	assert_fstr(obj(ev, "dns.answers", 0, "key_tag"), "12345");
	assert_fstr(obj(ev, "dns.answers", 0, "signer_name"), "example.com");
	assert_fstr(obj(ev, "dns.answers", 1, "type"), "HTTPS");
	assert_fstr(obj(ev, "dns.answers", 1, "data"),
		    "1 . alpn=h2,h3 port=8443 ipv4hint=1.2.3.4,5.6.7.8");
	fx_free(f);
}

/* ---- TCP ------------------------------------------------------------------------- */

static void test_tcp_two_messages_one_segment(void **state)
{
	struct fx *f = fx_new(true);
	struct mb q1, q2, r1, r2, seg, tmp;

	(void)state;
	fx_open(f);
	build_query(&q1, 1, "google.com", 1);
	build_query(&q2, 2, "example.com", 28);
	build_google(&r1, 1, 2);
	put_hdr(&r2, 2, 0x8180, 1, 0, 0, 0);
	put_question(&r2, "example.com", 28, 1);
	seg.len = 0;
	framed(&q1, &tmp);
	putn(&seg, tmp.b, tmp.len);
	framed(&q2, &tmp);
	putn(&seg, tmp.b, tmp.len);
	assert_int_equal(tcp(f, DIR_TO_SERVER, seg.b, seg.len, T0), PARSE_OK);
	seg.len = 0;
	framed(&r2, &tmp);
	putn(&seg, tmp.b, tmp.len);
	framed(&r1, &tmp);
	putn(&seg, tmp.b, tmp.len);
	assert_int_equal(tcp(f, DIR_TO_CLIENT, seg.b, seg.len, T0 + 100), PARSE_OK);
	assert_int_equal(f->col.n, 2);
	assert_fstr(fld(f->col.ev[0], "dns.question.name"), "example.com");
	assert_fstr(fld(f->col.ev[1], "dns.question.name"), "google.com");
	/* Packetbeat counts the 2-byte length prefix in the TCP byte counts */
	assert_int_equal(f->col.ev[1]->client_bytes, q1.len + 2);
	assert_int_equal(f->col.ev[1]->server_bytes, r1.len + 2);
	assert_int_equal(f->col.ev[1]->transport, IPPROTO_TCP);
	assert_int_equal(f->col.ev[0]->status, EV_STATUS_OK);
	assert_int_equal(f->col.ev[1]->status, EV_STATUS_OK);
	fx_free(f);
}

static void test_tcp_split_three_calls(void **state)
{
	struct fx *f = fx_new(true);
	struct mb q, r, fq, fr;
	struct parse_result pr;

	(void)state;
	fx_open(f);
	build_query(&q, 9, "google.com", 1);
	build_google(&r, 9, 16);
	framed(&q, &fq);
	framed(&r, &fr);
	/* 1 byte: the parser needs one more for the prefix */
	f->ctx.ts = T0;
	pr = dns_proto.parse(f->conn, DIR_TO_SERVER, fq.b, 1, &f->ctx);
	assert_int_equal(pr.status, PARSE_NEED_MORE);
	assert_int_equal(pr.consumed, 0);
	assert_int_equal(pr.needed, 1);
	/* the prefix + 5 bytes: needs the rest of the message */
	f->ctx.ts = T0 + 1;
	pr = dns_proto.parse(f->conn, DIR_TO_SERVER, fq.b, 7, &f->ctx);
	assert_int_equal(pr.status, PARSE_NEED_MORE);
	assert_int_equal(pr.consumed, 0);
	assert_int_equal(pr.needed, fq.len - 7);
	f->ctx.ts = T0 + 2;
	pr = dns_proto.parse(f->conn, DIR_TO_SERVER, fq.b, fq.len, &f->ctx);
	assert_int_equal(pr.status, PARSE_OK);
	assert_int_equal(pr.consumed, fq.len);

	/* the response in three segments through the mini stream layer */
	assert_int_equal(tcp(f, DIR_TO_CLIENT, fr.b, 1, T0 + 50), PARSE_NEED_MORE);
	assert_int_equal(tcp(f, DIR_TO_CLIENT, fr.b + 1, 100, T0 + 60), PARSE_NEED_MORE);
	assert_int_equal(f->col.n, 0);
	assert_int_equal(tcp(f, DIR_TO_CLIENT, fr.b + 101, fr.len - 101, T0 + 70), PARSE_OK);
	assert_int_equal(f->col.n, 1);
	/* times are those of each message's first segment */
	assert_int_equal(f->col.ev[0]->start_ns, T0);
	assert_int_equal(f->col.ev[0]->end_ns, T0 + 50);
	assert_int_equal(nelems(f->col.ev[0], "dns.answers"), 16);
	assert_int_equal(f->col.ev[0]->server_bytes, 286);
	fx_free(f);
}

/* Split the framed query+response stream at every byte: always one good event. */
static void test_tcp_every_split(void **state)
{
	struct mb q, r, fq, fr;

	(void)state;
	build_query(&q, 3, "google.com", 1);
	build_google(&r, 3, 4);
	framed(&q, &fq);
	framed(&r, &fr);
	for (size_t cut = 0; cut <= fr.len; cut++) {
		struct fx *f = fx_new(true);

		fx_open(f);
		assert_int_equal(tcp(f, DIR_TO_SERVER, fq.b, fq.len, T0), PARSE_OK);
		if (cut)
			tcp(f, DIR_TO_CLIENT, fr.b, cut, T0 + 1);
		if (cut < fr.len)
			assert_int_equal(tcp(f, DIR_TO_CLIENT, fr.b + cut, fr.len - cut, T0 + 2),
					 PARSE_OK);
		assert_int_equal(f->col.n, 1);
		assert_int_equal(f->col.ev[0]->status, EV_STATUS_OK);
		assert_int_equal(nelems(f->col.ev[0], "dns.answers"), 4);
		assert_int_equal(f->col.ev[0]->end_ns, cut ? T0 + 1 : T0 + 2);
		fx_free(f);
	}
}

static void test_tcp_zero_length_and_garbage(void **state)
{
	struct fx *f = fx_new(true);
	struct mb q, fq;
	static const uint8_t zero[] = {0, 0, 1, 2};
	static const uint8_t junk[] = {0, 2, 1, 2};

	(void)state;
	fx_open(f);
	build_query(&q, 1, "elastic.co", 1);
	framed(&q, &fq);
	tcp(f, DIR_TO_SERVER, fq.b, fq.len, T0);
	assert_int_equal(tcp(f, DIR_TO_CLIENT, zero, sizeof(zero), T0 + 1), PARSE_ERROR);
	assert_int_equal(f->col.n, 1);
	assert_fstr(fld(f->col.ev[0], "error.message"),
		    "Response: Message's length was set to zero");
	assert_int_equal(f->col.ev[0]->client_bytes, fq.len);
	assert_false(f->col.ev[0]->has_server_bytes);
	fx_free(f);

	f = fx_new(true);
	fx_open(f);
	tcp(f, DIR_TO_SERVER, fq.b, fq.len, T0);
	assert_int_equal(tcp(f, DIR_TO_CLIENT, junk, sizeof(junk), T0 + 1), PARSE_ERROR);
	assert_int_equal(f->col.n, 0); /* 2 bytes: no readable ID 0x0102 pending */
	fx_free(f);
	assert_int_equal(metrics_get("dns.unmatched_requests"), 1);
}

static void test_tcp_gap_gives_up(void **state)
{
	struct fx *f = fx_new(true);
	struct mb q, fq;

	(void)state;
	fx_open(f);

	build_query(&q, 1, "elastic.co", 1);
	framed(&q, &fq);
	assert_int_equal(tcp(f, DIR_TO_SERVER, fq.b, 5, T0), PARSE_NEED_MORE);
	assert_int_equal(dns_proto.gap(f->conn, DIR_TO_SERVER, 100, &f->ctx), -1);
	assert_int_equal(dns_proto.gap(f->conn, DIR_TO_CLIENT, 1, &f->ctx), -1);
	assert_int_equal(f->col.n, 0);
	fx_free(f);
}

/* A response truncated at every offset: never a crash; the query is still closed. */
static void test_truncated_every_offset(void **state)
{
	struct mb q, r;
	size_t at;

	(void)state;
	build_query(&q, 0x0a0b, "example.com", 255);
	put_hdr(&r, 0x0a0b, 0x8180, 1, 3, 1, 2);
	put_question(&r, "example.com", 255, 1);
	put_ptr(&r, 12);
	at = rr_begin(&r, 15, 1, 60);
	put16(&r, 5);
	put_name(&r, "mx.example.com");
	rr_end(&r, at);
	put_ptr(&r, 12);
	at = rr_begin(&r, 16, 1, 60);
	putn(&r,
	     "\x03"
	     "abc",
	     4);
	rr_end(&r, at);
	put_ptr(&r, 12);
	at = rr_begin(&r, 46, 1, 60);
	put_rdata(&r, 46, 0);
	rr_end(&r, at);
	put_ptr(&r, 12);
	at = rr_begin(&r, 6, 1, 60);
	put_name(&r, "ns.example.com");
	put_name(&r, "h.example.com");
	for (int i = 0; i < 5; i++)
		put32(&r, (uint32_t)i);
	rr_end(&r, at);
	put_name(&r, "mx.example.com");
	at = rr_begin(&r, 1, 1, 60);
	put32(&r, 0x01020304);
	rr_end(&r, at);
	put_opt(&r, 4096, 0, 0, true);
	build_query(&q, 0x0a0b, "example.com", 255);

	for (size_t len = 0; len <= r.len; len++) {
		struct fx *f = fx_new(false);
		enum parse_status st;

		cfg_set(f, "include_authorities", 1);
		cfg_set(f, "include_additionals", 1);
		fx_open(f);
		udp(f, DIR_TO_SERVER, &q, q.len, T0);
		st = udp(f, DIR_TO_CLIENT, &r, len, T0 + 1).status;
		if (len == r.len) {
			assert_int_equal(st, PARSE_OK);
			assert_int_equal(f->col.n, 1);
			assert_int_equal(f->col.ev[0]->status, EV_STATUS_OK);
			assert_int_equal(nelems(f->col.ev[0], "dns.answers"), 3);
			assert_int_equal(nelems(f->col.ev[0], "dns.authorities"), 1);
			assert_int_equal(nelems(f->col.ev[0], "dns.additionals"), 1);
			assert_fbool(fld(f->col.ev[0], "dns.opt.do"), true);
		} else {
			assert_int_equal(st, PARSE_ERROR);
			if (len >= 2) {
				assert_int_equal(f->col.n, 1);
				assert_fstr(fld(f->col.ev[0], "error.message"),
					    "Response: Message's data could not be decoded as DNS");
			} else {
				assert_int_equal(f->col.n, 0);
			}
		}
		fx_free(f);
	}
}

/* ---- names: every byte, caps, pointers --------------------------------------------- */

/* The presentation form of one label as miekg writes it, written independently of
 * dns.c: its special characters as "\c", bytes outside 0x20..0x7e as "\DDD". */
static size_t ref_label(const uint8_t *s, size_t n, char *out)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		if (strchr(". '@;()\"\\", s[i]) && s[i] != 0)
			k += (size_t)sprintf(out + k, "\\%c", s[i]);
		else if (s[i] < 0x20 || s[i] > 0x7e)
			k += (size_t)sprintf(out + k, "\\%03u", s[i]);
		else
			out[k++] = (char)s[i];
	}
	out[k] = '\0';
	return k;
}

/* A question name of the labels lens[0..n) cut from `bytes`; its expected text in
 * `text` and the start of its last two labels in *reg. */
static void put_raw_name(struct mb *m, const uint8_t *bytes, const size_t *lens, size_t n,
			 char *text, size_t *reg)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		if (i)
			text[k++] = '.';
		if (i + 2 == n)
			*reg = k;
		put8(m, (unsigned)lens[i]);
		putn(m, bytes, lens[i]);
		k += ref_label(bytes, lens[i], text + k);
		bytes += lens[i];
	}
	text[k] = '\0';
	put8(m, 0);
}

/* Every byte value 0..255 inside labels, in a question, as an answer's owner name
 * (a pointer to the question) and as CNAME data (a pointer too). */
static void test_label_every_byte(void **state)
{
	uint8_t bytes[256];
	static const size_t lens[] = {63, 63, 2};

	(void)state;
	for (int i = 0; i < 256; i++)
		bytes[i] = (uint8_t)i;
	for (int half = 0; half < 2; half++) {
		struct fx *f = fx_new(false);
		struct mb q, r;
		char text[1100], want[1200];
		size_t reg = 0, at;
		struct event *ev;

		fx_open(f);
		put_hdr(&q, 9, 0x0100, 1, 0, 0, 0);
		put_raw_name(&q, bytes + 128 * half, lens, 3, text, &reg);
		put16(&q, 1);
		put16(&q, 1);
		memcpy(&r, &q, sizeof(r.b[0]) * q.len);
		r.len = q.len;
		r.b[2] = 0x81;
		r.b[3] = 0x80;
		r.b[7] = 1; /* ancount */
		put_ptr(&r, 12);
		at = rr_begin(&r, 5, 1, 60);
		put_ptr(&r, 12);
		rr_end(&r, at);
		udp(f, DIR_TO_SERVER, &q, q.len, T0);
		udp(f, DIR_TO_CLIENT, &r, r.len, T0 + 1);
		assert_int_equal(f->col.n, 1);
		ev = f->col.ev[0];
		assert_fstr(fld(ev, "dns.question.name"), text);
		assert_fstr(fld(ev, "resource"), text);
		snprintf(want, sizeof(want), "class IN, type A, %s", text);
		assert_fstr(fld(ev, "query"), want);
		assert_fstr(fld(ev, "dns.question.registered_domain"), text + reg);
		text[reg - 1] = '\0';
		assert_fstr(fld(ev, "dns.question.subdomain"), text);
		text[reg - 1] = '.';
		assert_fstr(obj(ev, "dns.answers", 0, "name"), text);
		assert_fstr(obj(ev, "dns.answers", 0, "data"), text);
		fx_free(f);
	}
}

/* The longest name (255 wire bytes), every byte escaped: 1003 characters. The
 * legacy `query` stops at 1023 bytes, the request text and a string extra (RRSIG
 * signer_name, after 47 bytes of other extras in a 1 KiB buffer) at their caps. */
static void test_long_escaped_name_caps(void **state)
{
	static const size_t lens[] = {63, 63, 63, 61};
	uint8_t bytes[250];
	char text[1100], want[2048];
	size_t reg = 0, at, n;
	struct fx *f;
	struct mb q, r;
	struct event *ev;

	(void)state;
	memset(bytes, 0xff, sizeof(bytes));
	bytes[0] = '.';
	bytes[249] = '\\';
	f = fx_new(false);
	f->cp.send_request = true;
	f->cp.max_message_size = 900;
	fx_open(f);
	put_hdr(&q, 1, 0x0100, 1, 0, 0, 0);
	put_raw_name(&q, bytes, lens, 4, text, &reg);
	assert_int_equal(q.len, 12 + 255);
	assert_int_equal(strlen(text), 2 + 248 * 4 + 2 + 3);
	put16(&q, 65280);
	put16(&q, 65280);
	udp(f, DIR_TO_SERVER, &q, q.len, T0);
	dns_proto.expire(f->conn, &f->ctx);
	assert_int_equal(f->col.n, 1);
	ev = f->col.ev[0];
	assert_fstr(fld(ev, "dns.question.name"), text);
	n = (size_t)snprintf(want, sizeof(want), "class 65280, type 65280, %s", text);
	assert_true(n > 1023);
	want[1023] = '\0';
	assert_fstr(fld(ev, "query"), want);
	snprintf(
	    want, sizeof(want),
	    "ID 1; QR query; OPCODE QUERY; FLAGS rd; RCODE NOERROR; QUESTION class 65280, type "
	    "65280, %s",
	    text);
	want[900] = '\0';
	assert_fstr(fld(ev, "request"), want);
	fx_free(f);

	f = fx_new(false);
	fx_open(f);
	put_hdr(&r, 1, 0x8180, 1, 1, 0, 0);
	put_question(&r, "example.com", 46, 1);
	put_ptr(&r, 12);
	at = rr_begin(&r, 46, 1, 60);
	put16(&r, 1);
	put8(&r, 8);
	put8(&r, 2);
	put32(&r, 3600);
	put32(&r, 1700000000);
	put32(&r, 1699000000);
	put16(&r, 12345);
	put_raw_name(&r, bytes, lens, 4, text, &reg);
	putn(&r, "\x01\x02\x03", 3);
	rr_end(&r, at);
	udp(f, DIR_TO_CLIENT, &r, r.len, T0);
	assert_int_equal(f->col.n, 1);
	ev = f->col.ev[0];
	text[1023 - 47] = '\0';
	assert_fstr(obj(ev, "dns.answers", 0, "signer_name"), text);
	assert_fstr(obj(ev, "dns.answers", 0, "type_covered"), "");
	assert_fstr(obj(ev, "dns.answers", 0, "data"), "AQID");
	fx_free(f);
}

/* Owner names that point at the first question's name, at its middle, and a
 * question name that itself ends in a pointer: the rules of RFC 1035 §4.1.4 as
 * dns.c checks them (every pointer goes before the previous target). */
static void test_owner_name_pointers(void **state)
{
	struct fx *f = fx_new(false);
	struct mb r;
	struct event *ev;
	size_t at;

	(void)state;
	cfg_set(f, "include_authorities", 1);
	fx_open(f);
	/* answers: ptr(12), ptr(12 + 4) = "example.com", "x" + ptr(12); authority ptr(12) */
	put_hdr(&r, 1, 0x8180, 1, 3, 1, 0);
	put_question(&r, "www.example.com", 1, 1);
	for (int i = 0; i < 3; i++) {
		if (i == 0)
			put_ptr(&r, 12);
		else if (i == 1)
			put_ptr(&r, 16);
		else {
			put8(&r, 1);
			put8(&r, 'x');
			put_ptr(&r, 12);
		}
		at = rr_begin(&r, 1, 1, 60);
		put32(&r, 0x0a000001u + (uint32_t)i);
		rr_end(&r, at);
	}
	put_ptr(&r, 12);
	at = rr_begin(&r, 2, 1, 60);
	put_ptr(&r, 16);
	rr_end(&r, at);
	assert_int_equal(udp(f, DIR_TO_CLIENT, &r, r.len, T0).status, PARSE_OK);
	ev = f->col.ev[0];
	assert_fstr(obj(ev, "dns.answers", 0, "name"), "www.example.com");
	assert_fstr(obj(ev, "dns.answers", 1, "name"), "example.com");
	assert_fstr(obj(ev, "dns.answers", 2, "name"), "x.www.example.com");
	assert_fstr(obj(ev, "dns.authorities", 0, "name"), "www.example.com");
	assert_fstr(obj(ev, "dns.authorities", 0, "data"), "example.com");

	/* question "a" + pointer to offset 8 (NSCOUNT = 0: the root); an answer
	 * pointing at it reads the same name */
	put_hdr(&r, 2, 0x8180, 1, 1, 0, 0);
	put8(&r, 1);
	put8(&r, 'a');
	put_ptr(&r, 8);
	put16(&r, 1);
	put16(&r, 1);
	put_ptr(&r, 12);
	at = rr_begin(&r, 1, 1, 60);
	put32(&r, 0x01020304);
	rr_end(&r, at);
	assert_int_equal(udp(f, DIR_TO_CLIENT, &r, r.len, T0).status, PARSE_OK);
	ev = f->col.ev[1];
	assert_fstr(fld(ev, "dns.question.name"), "a");
	assert_fstr(obj(ev, "dns.answers", 0, "name"), "a");

	/* question "\001\000" + pointer to its own second byte (offset 14, a zero):
	 * fine on its own, but through an answer's pointer to offset 12 the inner
	 * pointer no longer goes before the previous target: the response is bad */
	put_hdr(&r, 3, 0x8180, 1, 0, 0, 0);
	putn(&r, "\x02\x01\x00", 3);
	put_ptr(&r, 14);
	put16(&r, 1);
	put16(&r, 1);
	assert_int_equal(udp(f, DIR_TO_CLIENT, &r, r.len, T0).status, PARSE_OK);
	assert_fstr(fld(f->col.ev[2], "dns.question.name"), "\\001\\000");
	r.b[7] = 1; /* ancount */
	put_ptr(&r, 12);
	at = rr_begin(&r, 1, 1, 60);
	put32(&r, 0x01020304);
	rr_end(&r, at);
	assert_int_equal(udp(f, DIR_TO_CLIENT, &r, r.len, T0).status, PARSE_ERROR);
	assert_int_equal(f->col.n, 3);
	fx_free(f);
}

/* Every two-label suffix of the built-in list, in any case. */
static void test_public_suffix_list(void **state)
{
	static const char *const suffixes[] = {
	    "co.uk",          "org.uk",       "ac.uk",
	    "gov.uk",         "me.uk",        "net.uk",
	    "ltd.uk",         "plc.uk",       "com.au",
	    "net.au",         "org.au",       "edu.au",
	    "gov.au",         "co.nz",        "net.nz",
	    "org.nz",         "co.jp",        "ne.jp",
	    "or.jp",          "ac.jp",        "go.jp",
	    "co.kr",          "or.kr",        "com.br",
	    "net.br",         "org.br",       "com.cn",
	    "net.cn",         "org.cn",       "gov.cn",
	    "edu.cn",         "co.in",        "net.in",
	    "org.in",         "co.za",        "com.mx",
	    "com.ar",         "com.tr",       "com.tw",
	    "com.hk",         "com.sg",       "co.il",
	    "co.id",          "com.my",       "com.ph",
	    "com.vn",         "com.ua",       "com.pl",
	    "co.th",          "in-addr.arpa", "ip6.arpa",
	    "github.io",      "gitlab.io",    "herokuapp.com",
	    "appspot.com",    "blogspot.com", "azurewebsites.net",
	    "cloudfront.net",
	};
	struct fx *f = fx_new(false);
	struct mb q;

	(void)state;
	fx_open(f);
	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		char name[64], reg[64];
		struct event *ev;

		snprintf(name, sizeof(name), "a.b.%s", suffixes[i]);
		if (i % 2)
			for (char *p = name; *p; p++)
				*p = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
		build_query(&q, (unsigned)i, name, 1);
		udp(f, DIR_TO_SERVER, &q, q.len, T0);
		dns_proto.expire(f->conn, &f->ctx);
		assert_int_equal(f->col.n, 1);
		ev = f->col.ev[0];
		snprintf(reg, sizeof(reg), "%s", name + 2);
		assert_fstr(fld(ev, "dns.question.registered_domain"), reg);
		assert_fstr(fld(ev, "dns.question.top_level_domain"), name + 4);
		assert_fstr(fld(ev, "dns.question.subdomain"), i % 2 ? "A" : "a");
		ev_pool_put(ev);
		f->col.n = 0;
	}
	/* one label short of a suffix, and a near miss */
	build_query(&q, 1, "b.cO.Uk", 1);
	udp(f, DIR_TO_SERVER, &q, q.len, T0);
	build_query(&q, 2, "b.co.ukk", 1);
	udp(f, DIR_TO_SERVER, &q, q.len, T0);
	dns_proto.expire(f->conn, &f->ctx);
	assert_fstr(fld(f->col.ev[0], "dns.question.registered_domain"), "b.cO.Uk");
	assert_fstr(fld(f->col.ev[1], "dns.question.registered_domain"), "co.ukk");
	fx_free(f);
}

/* ---- pending queries ------------------------------------------------------------- */

/* Each key is on exactly one field of the event (members included). */
static void assert_once(const struct event *ev, const char *const *keys, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (nkey(ev, keys[i]) != 1)
			fail_msg("%s: %zu fields", keys[i], nkey(ev, keys[i]));
}

static const char *const once_keys[] = {
    "dns.type",
    "dns.id",
    "dns.op_code",
    "dns.response_code",
    "dns.question.name",
    "dns.answers_count",
    "dns.flags.authoritative",
    "method",
    "query",
    "resource",
};

/* A query with records of its own (OPT and an additional A): unmatched, it carries
 * its own dns.* fields; matched, only the response's. Also past 512 bytes (no OPT)
 * and with the request text, and over TCP. */
static void test_query_fields_matched_and_not(void **state)
{
	(void)state;
	for (int variant = 0; variant < 4; variant++) {
		struct fx *f = fx_new(variant == 3);
		struct mb q, r, fr;
		struct event *ev;
		size_t at;
		char big[200];

		cfg_set(f, "include_additionals", 1);
		f->cp.send_request = variant == 2;
		fx_open(f);
		memset(big, 'b', sizeof(big));
		put_hdr(&q, 7, 0x0100, 1, 0, 0, variant == 1 ? 4 : 2);
		put_question(&q, "q.example.com", 1, 1);
		for (int i = 0; i < (variant == 1 ? 4 : 1); i++) {
			put_ptr(&q, 12);
			at = rr_begin(&q, 16, 1, 5);
			put8(&q, sizeof(big) - 1);
			putn(&q, big, sizeof(big) - 1);
			rr_end(&q, at);
		}
		if (variant != 1)
			put_opt(&q, 1232, 0, 0, false);
		assert_true(variant == 1 ? q.len > 512 : q.len < 512);
		/* unmatched: published by expire() with the query's own fields */
		if (variant == 3) {
			framed(&q, &fr);
			tcp(f, DIR_TO_SERVER, fr.b, fr.len, T0);
		} else {
			udp(f, DIR_TO_SERVER, &q, q.len, T0);
		}
		dns_proto.expire(f->conn, &f->ctx);
		assert_int_equal(f->col.n, 1);
		ev = f->col.ev[0];
		assert_fstr(fld(ev, "dns.type"), "query");
		assert_once(ev, once_keys, sizeof(once_keys) / sizeof(once_keys[0]));
		assert_int_equal(nelems(ev, "dns.additionals"), variant == 1 ? 4 : 1);
		assert_fstr(obj(ev, "dns.additionals", 0, "type"), "TXT");
		if (variant == 1)
			assert_null(fld(ev, "dns.opt.udp_size"));
		else
			assert_fuint(fld(ev, "dns.opt.udp_size"), 1232);
		assert_int_equal(nkey(ev, "request"), variant == 2 ? 1 : 0);

		/* matched: the response's fields replace the query's */
		if (variant == 3) {
			tcp(f, DIR_TO_SERVER, fr.b, fr.len, T0 + 1);
		} else {
			udp(f, DIR_TO_SERVER, &q, q.len, T0 + 1);
		}
		build_google(&r, 7, 2);
		if (variant == 3) {
			framed(&r, &fr);
			tcp(f, DIR_TO_CLIENT, fr.b, fr.len, T0 + 2);
		} else {
			udp(f, DIR_TO_CLIENT, &r, r.len, T0 + 2);
		}
		assert_int_equal(f->col.n, 2);
		ev = f->col.ev[1];
		assert_fstr(fld(ev, "dns.type"), "answer");
		assert_once(ev, once_keys, sizeof(once_keys) / sizeof(once_keys[0]));
		assert_fstr(fld(ev, "dns.question.name"), "google.com");
		assert_fstr(fld(ev, "resource"), "q.example.com");
		assert_int_equal(nkey(ev, "dns.additionals"), 0);
		assert_null(fld(ev, "dns.opt.udp_size"));
		assert_int_equal(nkey(ev, "dns.resolved_ip"), 2);
		assert_int_equal(nkey(ev, "request"), variant == 2 ? 1 : 0);
		if (variant == 1)
			assert_fstr(fld(ev, "error.message"),
				    "Non-EDNS packet has size greater than 512");
		else if (variant != 3)
			assert_fstr(fld(ev, "error.message"), "Responder does not support EDNS");
		fx_free(f);
	}
}

/* More queries outstanding than fit without an allocation, answered in reverse
 * order; then a cap of 6 with a duplicate ID in the middle. */
static void test_many_pending(void **state)
{
	struct fx *f = fx_new(false);
	struct mb q, r;
	char name[32];

	(void)state;
	fx_open(f);
	for (unsigned id = 1; id <= 12; id++) {
		snprintf(name, sizeof(name), "h%u.example.com", id);
		build_query(&q, id, name, 1);
		udp(f, DIR_TO_SERVER, &q, q.len, T0 + id);
	}
	for (unsigned id = 12; id >= 1; id--) {
		struct event *ev;

		build_google(&r, id, 1);
		udp(f, DIR_TO_CLIENT, &r, r.len, T0 + 100);
		assert_int_equal(f->col.n, 13 - id);
		ev = f->col.ev[12 - id];
		snprintf(name, sizeof(name), "h%u.example.com", id);
		assert_fstr(fld(ev, "resource"), name);
		assert_int_equal(ev->status, EV_STATUS_OK);
		assert_int_equal(ev->start_ns, T0 + id);
	}
	assert_int_equal(metrics_get("dns.unmatched_requests"), 0);
	fx_free(f);

	f = fx_new(false);
	f->cp.max_pending = 6;
	fx_open(f);
	for (unsigned id = 1; id <= 7; id++) {
		snprintf(name, sizeof(name), "h%u.example.com", id);
		build_query(&q, id, name, 1);
		udp(f, DIR_TO_SERVER, &q, q.len, T0 + id);
	}
	assert_int_equal(f->col.n, 1);
	assert_fstr(fld(f->col.ev[0], "dns.question.name"), "h1.example.com");
	assert_int_equal(metrics_get("dns.limit_exceeded"), 1);
	build_query(&q, 4, "again.example.com", 1);
	udp(f, DIR_TO_SERVER, &q, q.len, T0 + 8);
	assert_int_equal(f->col.n, 2);
	assert_fstr(fld(f->col.ev[1], "dns.question.name"), "h4.example.com");
	assert_fstr(fld(f->col.ev[1], "error.message"),
		    "Another query with the same DNS ID from this client was received so this "
		    "query was closed without receiving a response");
	f->ctx.ts = T0 + 9;
	dns_proto.expire(f->conn, &f->ctx);
	assert_int_equal(f->col.n, 8);
	assert_fstr(fld(f->col.ev[7], "dns.question.name"), "again.example.com");
	fx_free(f);
}

/* A message with more entries than max_records counts limit_exceeded for the scan
 * and for the fields left out, whether the query is answered or not. */
static void test_capped_query_counts(void **state)
{
	struct fx *f = fx_new(false);
	struct mb q, r;
	size_t at;

	(void)state;
	cfg_set(f, "max_records", 1);
	fx_open(f);
	put_hdr(&q, 3, 0x0100, 1, 0, 0, 1);
	put_question(&q, "cap.example.com", 1, 1);
	put_ptr(&q, 12);
	at = rr_begin(&q, 1, 1, 5);
	put32(&q, 0x01020304);
	rr_end(&q, at);
	udp(f, DIR_TO_SERVER, &q, q.len, T0);
	assert_int_equal(metrics_get("dns.limit_exceeded"), 2);
	build_google(&r, 3, 1);
	udp(f, DIR_TO_CLIENT, &r, r.len, T0 + 1);
	assert_int_equal(metrics_get("dns.limit_exceeded"), 4);
	assert_int_equal(f->col.n, 1);
	assert_int_equal(nelems(f->col.ev[0], "dns.answers"), 0);
	udp(f, DIR_TO_SERVER, &q, q.len, T0 + 2);
	dns_proto.expire(f->conn, &f->ctx);
	assert_int_equal(metrics_get("dns.limit_exceeded"), 6);
	assert_int_equal(f->col.n, 2);
	assert_fstr(fld(f->col.ev[1], "dns.question.name"), "cap.example.com");
	assert_int_equal(nelems(f->col.ev[1], "dns.additionals"), 0);
	fx_free(f);
}

/* An unknown OPCODE is its number in the request text as in dns.op_code, whatever
 * the RCODE (the old code printed the RCODE's "Unknown N" there). */
static void test_unknown_opcode_text(void **state)
{
	struct fx *f = fx_new(false);
	struct mb q;

	(void)state;
	f->cp.send_request = true;
	fx_open(f);
	put_hdr(&q, 1, 14 << 11 | 14, 1, 0, 0, 0);
	put_question(&q, "example.com", 1, 1);
	udp(f, DIR_TO_SERVER, &q, q.len, T0);
	dns_proto.expire(f->conn, &f->ctx);
	assert_int_equal(f->col.n, 1);
	assert_fstr(fld(f->col.ev[0], "dns.op_code"), "14");
	assert_fstr(fld(f->col.ev[0], "dns.response_code"), "Unknown 14");
	assert_fstr(fld(f->col.ev[0], "request"),
		    "ID 1; QR query; OPCODE 14; FLAGS ; RCODE Unknown 14; "
		    "QUESTION class IN, type A, example.com");
	fx_free(f);
}

/* Pool exhausted: the transaction is lost and counted, nothing crashes. */
static void test_pool_exhausted(void **state)
{
	struct fx *f = fx_new(false);
	struct mb q, r;

	(void)state;
	ev_pool_free(f->pool);
	f->pool = ev_pool_new(1, 1 << 20, 4096);
	f->col.sink.pool = f->pool;
	fx_open(f);
	build_query(&q, 1, "a.example", 1);
	udp(f, DIR_TO_SERVER, &q, q.len, T0);
	build_query(&q, 2, "b.example", 1);
	udp(f, DIR_TO_SERVER, &q, q.len, T0);
	assert_int_equal(metrics_get("dns.pool_exhausted"), 1);
	build_google(&r, 2, 1);
	udp(f, DIR_TO_CLIENT, &r, r.len, T0 + 1); /* orphan, but no event available */
	assert_int_equal(f->col.n, 0);
	fx_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ops_contract),
	    cmocka_unit_test(test_udp_google_16_answers),
	    cmocka_unit_test(test_udp_aaaa_golden_shape),
	    cmocka_unit_test(test_nxdomain_authorities),
	    cmocka_unit_test(test_additionals_and_opt_do),
	    cmocka_unit_test(test_edns_notes_and_ext_rcode),
	    cmocka_unit_test(test_compression_pointers),
	    cmocka_unit_test(test_name_length_limit),
	    cmocka_unit_test(test_escaped_names_and_root),
	    cmocka_unit_test(test_public_suffix_heuristic),
	    cmocka_unit_test(test_unmatched_query_expire_and_timeout),
	    cmocka_unit_test(test_unmatched_response),
	    cmocka_unit_test(test_duplicate_id),
	    cmocka_unit_test(test_out_of_order_and_pending_cap),
	    cmocka_unit_test(test_undecodable_response),
	    cmocka_unit_test(test_hostile_counts),
	    cmocka_unit_test(test_max_records),
	    cmocka_unit_test(test_non_edns_too_large),
	    cmocka_unit_test(test_send_request_response_text),
	    cmocka_unit_test(test_rr_renderers),
	    cmocka_unit_test(test_rr_dnssec_extras),
	    cmocka_unit_test(test_tcp_two_messages_one_segment),
	    cmocka_unit_test(test_tcp_split_three_calls),
	    cmocka_unit_test(test_tcp_every_split),
	    cmocka_unit_test(test_tcp_zero_length_and_garbage),
	    cmocka_unit_test(test_tcp_gap_gives_up),
	    cmocka_unit_test(test_truncated_every_offset),
	    cmocka_unit_test(test_pool_exhausted),
	    cmocka_unit_test(test_label_every_byte),
	    cmocka_unit_test(test_long_escaped_name_caps),
	    cmocka_unit_test(test_owner_name_pointers),
	    cmocka_unit_test(test_public_suffix_list),
	    cmocka_unit_test(test_query_fields_matched_and_not),
	    cmocka_unit_test(test_many_pending),
	    cmocka_unit_test(test_capped_query_counts),
	    cmocka_unit_test(test_unknown_opcode_text),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
