/* encode.c — struct event → one ECS 8 JSON document; the only JSON writer.
 *
 * Follows: RFC 8259 (JSON), ECS 8.0 field reference, Packetbeat 8 pb/event.go for
 * the transaction envelope (docs/reference/ecosystem.md §1.1–1.3, §1.5;
 * packetbeat.md §2.1 for the legacy names), Unicode 15 §3.9 Table 3-7 for
 * well-formed UTF-8 and "U+FFFD substitution of maximal subparts" for the repair.
 *
 * How it works:
 *   1. The typed envelope is turned into extra ev_fields ("derived" fields, kept on
 *      the stack) — so envelope and protocol fields go through one code path and a
 *      parser's "destination.domain" lands in the same object as "destination.ip".
 *   2. Every field becomes an `ent` {field, seq}; seq is the insertion order, derived
 *      fields first. The ents are sorted by key, segment-wise ('.' ranks below every
 *      other byte, so "a" < "a.b" < "a-b" < "ab"), then by elem/member, then seq.
 *   3. One linear pass writes the document: consecutive ents with the same key form a
 *      group (scalar: the last one wins; EVF_ARRAY: a JSON array in insertion order;
 *      member/elem: an array of objects). Nested objects are opened and closed by
 *      comparing the key with the last written one (its parents are the open
 *      objects). Because of the ordering, a key "k" that is also an object prefix
 *      ("k.x") is immediately followed by the "k.*" keys: the leaf is dropped and
 *      counted. Derived keys are our literals: their prefixes are compile-time
 *      constants (K()) and they are written without an escaping scan.
 *
 *   {"@timestamp":..,"agent":{..},"destination":{"bytes":..,"domain":..,"ip":..},..}
 *
 * Arrays under "related." are sets: duplicates are skipped (first one kept), which
 * gives related.ip = client, server, then the parser's IPs in order. The check looks
 * at the first SET_SCAN_MAX elements only, so a huge DNS answer costs linear time.
 * No allocation per event unless an event has more fields than the stack arrays hold.
 */
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hostbeat/clock.h"
#include "hostbeat/encode.h"
#include "hostbeat/mem.h"
#include "hostbeat/metrics.h"
#include "net/community_id.h"

#define ECS_VERSION "8.0.0"
#define ENV_FIXED 64  /* derived fields besides tags (about 50 used) */
#define ENV_STACK 96  /* derived fields on the stack (ENV_FIXED + a few tags) */
#define ENT_STACK 256 /* entries on the stack; more → one heap array */
#define MAX_DEPTH 32  /* nesting levels; deeper keys are dropped and counted */
#define TS_LEN 32
#define ENC_PLAIN 0x80  /* derived flags only: text we formatted, plain ASCII (no scan) */
#define SET_SCAN_MAX 64 /* related.* dedupe looks at the first 64 elements (bounded work) */

_Static_assert(EV_COMMUNITY_ID_LEN == COMMUNITY_ID_LEN, "event.h community_id size");
_Static_assert(_Alignof(struct ev_field) >= _Alignof(uint64_t), "env.pfx after env.f");

/* One value to write: a field of the event or a derived one, with its order.
 * pfx = the first 8 key bytes ('.' mapped to 1) big-endian: most comparisons end
 * with one integer compare. */
struct ent {
	uint64_t pfx;
	const struct ev_field *f;
	uint32_t seq;
};

/* key_prefix() of a string literal, folded at compile time: the padding makes
 * bytes 0..7 always exist (zero past the key's end, as key_prefix() shifts). */
#define KPAD_(s) (s "\0\0\0\0\0\0\0")
#define KB_(s, i) ((uint64_t)(KPAD_(s)[i] == '.' ? 1 : (uint8_t)KPAD_(s)[i]) << (56 - 8 * (i)))
#define KPFX(s)                                                                              \
	(KB_(s, 0) | KB_(s, 1) | KB_(s, 2) | KB_(s, 3) | KB_(s, 4) | KB_(s, 5) | KB_(s, 6) | \
	 KB_(s, 7))
#define K(s) s, KPFX(s) /* a derived field's key and its prefix */

/* Derived envelope fields, their key prefixes, and the text they point at. */
struct env {
	struct ev_field *f;
	uint64_t *pfx;
	unsigned n, cap;
	char ts[TS_LEN], start[TS_LEN], end[TS_LEN];
	char cip[HB_IP_STRLEN], sip[HB_IP_STRLEN];
	size_t cip_len, sip_len; /* 0 = address not set */
	char cid[COMMUNITY_ID_LEN];
};

struct writer {
	struct strbuf *out;
	size_t max_string; /* for protocol fields; derived ones are ours and never cut */
	uint32_t nderived; /* ents with seq < nderived are derived fields */
	unsigned conflicts, truncated, non_finite;
};

/* ---- time ------------------------------------------------------------------- */

static void put2(char *b, unsigned v)
{
	b[0] = (char)('0' + v / 10 % 10);
	b[1] = (char)('0' + v % 10);
}

/* UTC civil date of a day number (days since 1970-01-01); H. Hinnant's algorithm. */
static void civil(uint64_t days, unsigned *y, unsigned *m, unsigned *d)
{
	uint64_t z = days + 719468, era = z / 146097, doe = z - era * 146097;
	uint64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	uint64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;

	*d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
	*m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
	*y = (unsigned)(yoe + era * 400 + (*m <= 2));
}

/* "YYYY-MM-DDTHH:MM:SS.fffZ" with 3 or 6 fraction digits; same text as
 * clock_format_rfc3339() without gmtime_r/strftime on the hot path. */
static size_t fmt_time(uint64_t ns, int digits, char *b)
{
	uint64_t secs = ns / NS_PER_SEC;
	unsigned frac = (unsigned)(ns % NS_PER_SEC), sod = (unsigned)(secs % 86400);
	unsigned y, m, d, i, div;

	civil(secs / 86400, &y, &m, &d);
	put2(b, y / 100);
	put2(b + 2, y % 100);
	b[4] = '-';
	put2(b + 5, m);
	b[7] = '-';
	put2(b + 8, d);
	b[10] = 'T';
	put2(b + 11, sod / 3600);
	b[13] = ':';
	put2(b + 14, sod / 60 % 60);
	b[16] = ':';
	put2(b + 17, sod % 60);
	b[19] = '.';
	div = digits == 6 ? 1000 : 1000000;
	frac /= div;
	for (i = (unsigned)digits; i > 0; i--) {
		b[19 + i] = (char)('0' + frac % 10);
		frac /= 10;
	}
	b[20 + digits] = 'Z';
	return 21 + (size_t)digits;
}

/* ---- derived fields -------------------------------------------------------- */

static struct ev_field *env_add(struct env *v, const char *key, uint64_t pfx, uint8_t type,
				uint8_t flags)
{
	struct ev_field *f;

	if (v->n == v->cap) /* cannot happen: cap is sized for the worst case */
		return NULL;
	v->pfx[v->n] = pfx;
	f = &v->f[v->n++];
	f->key = key;
	f->member = NULL;
	f->elem = 0;
	f->type = type;
	f->flags = flags;
	return f;
}

static void env_strn(struct env *v, const char *key, uint64_t pfx, const char *s, size_t len,
		     uint8_t flags)
{
	struct ev_field *f = env_add(v, key, pfx, EV_T_STR, flags);

	if (f) {
		f->v.s.p = s;
		f->v.s.len = (uint32_t)len;
	}
}

static void env_str(struct env *v, const char *key, uint64_t pfx, const char *s)
{
	if (s)
		env_strn(v, key, pfx, s, strlen(s), 0);
}

static void env_uint(struct env *v, const char *key, uint64_t pfx, uint64_t u)
{
	struct ev_field *f = env_add(v, key, pfx, EV_T_UINT, 0);

	if (f)
		f->v.u = u;
}

/* An address formatted once per event (it appears up to seven times). */
static void env_ipstr(struct env *v, const char *key, uint64_t pfx, const char *s, size_t len,
		      uint8_t flags)
{
	if (len)
		env_strn(v, key, pfx, s, len, flags | ENC_PLAIN);
}

static void env_time(struct env *v, const char *key, uint64_t pfx, uint64_t ns, int digits,
		     char *buf)
{
	env_strn(v, key, pfx, buf, fmt_time(ns, digits, buf), ENC_PLAIN);
}

/* Dotted quad without inet_ntop()'s printf; IPv6 through hb_ip_format(). */
static size_t ip_text(const struct hb_ip *ip, char *buf)
{
	char *d = buf;
	unsigned i, v;

	if (ip->ver == 6)
		return hb_ip_format(ip, buf);
	if (ip->ver != 4)
		return 0;
	for (i = 0; i < 4; i++) {
		v = ip->a[i];
		if (i)
			*d++ = '.';
		if (v >= 100)
			*d++ = (char)('0' + v / 100);
		if (v >= 10)
			*d++ = (char)('0' + v / 10 % 10);
		*d++ = (char)('0' + v % 10);
	}
	*d = '\0';
	return (size_t)(d - buf);
}

static const char *transport_name(uint8_t proto)
{
	switch (proto) {
	case IPPROTO_TCP:
		return "tcp";
	case IPPROTO_UDP:
		return "udp";
	case IPPROTO_ICMP:
		return "icmp";
	case IPPROTO_ICMPV6:
		return "ipv6-icmp";
	default:
		return NULL;
	}
}

/* Every derived field, written in sorted key order so that sorting them is a
 * linear pass (the sort still guarantees the order if this list drifts).
 * Transactions: packetbeat.md §2.1, ecosystem.md §1.2; metrics: ecosystem.md §1.4
 * (event.dataset "system.cpu" → event.module "system", metricset.name "cpu"). */
static void env_build(struct env *v, const struct event *ev, const struct encode_opts *o)
{
	bool tx = ev->kind == EV_KIND_TRANSACTION, legacy = tx && o->legacy_fields;
	bool tuple = tx && ev->has_tuple;
	bool icmp = ev->transport == IPPROTO_ICMP || ev->transport == IPPROTO_ICMPV6;
	bool ports = tuple && !icmp; /* ICMP "ports" are type/code, for the Community ID */
	bool cbytes = tx && ev->has_client_bytes, sbytes = tx && ev->has_server_bytes;
	bool times = tx && ev->start_ns && ev->end_ns;
	uint64_t duration = times && ev->end_ns > ev->start_ns ? ev->end_ns - ev->start_ns : 0;
	const char *tname = tx ? transport_name(ev->transport) : NULL;
	const char *dot = NULL, *status = tx ? ev_status_name(ev->status) : NULL;
	size_t i;

	v->cip_len = tuple ? ip_text(&ev->client_ip, v->cip) : 0;
	v->sip_len = tuple ? ip_text(&ev->server_ip, v->sip) : 0;
	if (!tx && ev->kind == EV_KIND_METRIC && ev->dataset) {
		dot = strchr(ev->dataset, '.');
		if (dot && (dot == ev->dataset || !dot[1]))
			dot = NULL;
	}

	env_time(v, K("@timestamp"), ev->ts, 3, v->ts);
	env_str(v, K("agent.ephemeral_id"), o->agent_ephemeral_id);
	env_str(v, K("agent.id"), o->agent_id);
	env_str(v, K("agent.name"), o->agent_name);
	env_str(v, K("agent.type"), o->agent_type);
	env_str(v, K("agent.version"), o->agent_version);
	if (legacy && cbytes)
		env_uint(v, K("bytes_in"), ev->client_bytes);
	if (legacy && sbytes)
		env_uint(v, K("bytes_out"), ev->server_bytes);
	if (cbytes)
		env_uint(v, K("client.bytes"), ev->client_bytes);
	env_ipstr(v, K("client.ip"), v->cip, v->cip_len, 0);
	if (ports)
		env_uint(v, K("client.port"), ev->client_port);
	if (legacy) {
		env_ipstr(v, K("client_ip"), v->cip, v->cip_len, 0);
		if (ports)
			env_uint(v, K("client_port"), ev->client_port);
		env_uint(v, K("count"), 1);
	}
	if (sbytes)
		env_uint(v, K("destination.bytes"), ev->server_bytes);
	env_ipstr(v, K("destination.ip"), v->sip, v->sip_len, 0);
	if (ports)
		env_uint(v, K("destination.port"), ev->server_port);
	env_strn(v, K("ecs.version"), ECS_VERSION, sizeof(ECS_VERSION) - 1, ENC_PLAIN);
	if (tx) {
		env_strn(v, K("event.category"), "network", 7, EVF_ARRAY | ENC_PLAIN);
		env_str(v, K("event.dataset"), ev->dataset);
		if (times)
			env_uint(v, K("event.duration"), duration);
		if (ev->end_ns)
			env_time(v, K("event.end"), ev->end_ns, 6, v->end);
		env_str(v, K("event.kind"), "event");
		if (ev->start_ns)
			env_time(v, K("event.start"), ev->start_ns, 6, v->start);
		env_strn(v, K("event.type"), "connection", 10, EVF_ARRAY | ENC_PLAIN);
		env_strn(v, K("event.type"), "protocol", 8, EVF_ARRAY | ENC_PLAIN);
	} else {
		env_str(v, K("event.dataset"), ev->dataset);
		if (dot)
			env_strn(v, K("event.module"), ev->dataset, (size_t)(dot - ev->dataset), 0);
	}
	env_str(v, K("host.name"), o->host_name);
	if (legacy)
		env_ipstr(v, K("ip"), v->sip, v->sip_len, 0);
	if (dot)
		env_str(v, K("metricset.name"), dot + 1);
	if (cbytes && sbytes)
		env_uint(v, K("network.bytes"), ev->client_bytes + ev->server_bytes);
	if (tname && v->cip_len && v->sip_len && ev->community_id[0])
		env_str(v, K("network.community_id"), ev->community_id);
	else if (tname && v->cip_len && v->sip_len &&
		 community_id_v1(&ev->client_ip, &ev->server_ip, ev->client_port, ev->server_port,
				 ev->transport, 0, v->cid) == 0)
		env_str(v, K("network.community_id"), v->cid);
	if (tx)
		env_str(v, K("network.protocol"), ev->dataset);
	env_str(v, K("network.transport"), tname);
	if (v->cip_len)
		env_str(v, K("network.type"), ev->client_ip.ver == 4 ? "ipv4" : "ipv6");
	if (tx)
		env_str(v, K("observer.ingress.interface.name"), ev->iface);
	if (legacy && ports)
		env_uint(v, K("port"), ev->server_port);
	env_ipstr(v, K("related.ip"), v->cip, v->cip_len, EVF_ARRAY);
	env_ipstr(v, K("related.ip"), v->sip, v->sip_len, EVF_ARRAY);
	if (legacy && times)
		env_uint(v, K("responsetime"), duration / NS_PER_MS);
	if (sbytes)
		env_uint(v, K("server.bytes"), ev->server_bytes);
	env_ipstr(v, K("server.ip"), v->sip, v->sip_len, 0);
	if (ports)
		env_uint(v, K("server.port"), ev->server_port);
	if (cbytes)
		env_uint(v, K("source.bytes"), ev->client_bytes);
	env_ipstr(v, K("source.ip"), v->cip, v->cip_len, 0);
	if (ports)
		env_uint(v, K("source.port"), ev->client_port);
	env_str(v, K("status"), status);
	for (i = 0; o->tags && i < o->tags->n; i++)
		if (o->tags->v[i])
			env_strn(v, K("tags"), o->tags->v[i], strlen(o->tags->v[i]), EVF_ARRAY);
	if (legacy)
		env_str(v, K("transport"), tname);
	if (tx)
		env_str(v, K("type"), ev->dataset);
}

/* ---- ordering -------------------------------------------------------------- */

static uint64_t key_prefix(const char *k)
{
	const uint64_t lo7 = 0x7f7f7f7f7f7f7f7fULL, hi = 0x8080808080808080ULL;
	uint64_t p = 0, x, dots;
	unsigned i;

	for (i = 0; i < 8 && k[i]; i++)
		p = p << 8 | (uint8_t)k[i];
	p <<= 8 * (8 - i);
	/* exact per-byte test for '.', then '.' → 0x01 */
	x = p ^ 0x2e2e2e2e2e2e2e2eULL;
	dots = ~(((x & lo7) + lo7) | x | lo7) & hi;
	return p ^ (dots >> 7) * (0x2e ^ 0x01);
}

/* Byte order within a segment; '.' (segment end) sorts below every other byte. */
static int key_cmp(const char *a, const char *b)
{
	for (;; a++, b++) {
		unsigned ca = (unsigned char)*a, cb = (unsigned char)*b;

		if (ca == '.')
			ca = 1;
		if (cb == '.')
			cb = 1;
		if (ca != cb)
			return ca < cb ? -1 : 1;
		if (!ca)
			return 0;
	}
}

static int ent_key_cmp(const struct ent *a, const struct ent *b)
{
	if (a->pfx != b->pfx)
		return a->pfx < b->pfx ? -1 : 1;
	if (!(a->pfx & 0xff) || a->f->key == b->f->key)
		return 0; /* both keys ended within the prefix, or the same static string */
	return key_cmp(a->f->key + 8, b->f->key + 8);
}

static int ent_cmp(const struct ent *a, const struct ent *b)
{
	int c = ent_key_cmp(a, b);

	if (c)
		return c;
	/* Same key: plain values before object members, then by element, member. */
	if (!a->f->member != !b->f->member)
		return a->f->member ? 1 : -1;
	if (a->f->member) {
		if (a->f->elem != b->f->elem)
			return a->f->elem < b->f->elem ? -1 : 1;
		c = key_cmp(a->f->member, b->f->member);
		if (c)
			return c;
	}
	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* ent_cmp(a, b) < 0, settled inline by the prefixes most of the time. */
static inline bool ent_lt(const struct ent *a, const struct ent *b)
{
	if (a->pfx != b->pfx)
		return a->pfx < b->pfx;
	return ent_cmp(a, b) < 0;
}

static void ent_isort(struct ent *e, size_t n)
{
	size_t i, j;
	struct ent x;

	for (i = 1; i < n; i++) {
		x = e[i];
		for (j = i; j > 0 && ent_lt(&x, &e[j - 1]); j--)
			e[j] = e[j - 1];
		e[j] = x;
	}
}

/* Merge the sorted runs e[0, mid) and e[mid, n); tmp holds mid entries. */
static void ent_merge(struct ent *e, size_t mid, size_t n, struct ent *tmp)
{
	size_t i = 0, j = mid, k = 0;

	if (mid == 0 || mid == n || !ent_lt(&e[mid], &e[mid - 1]))
		return;
	memcpy(tmp, e, mid * sizeof(*e));
	while (i < mid && j < n)
		e[k++] = ent_lt(&e[j], &tmp[i]) ? e[j++] : tmp[i++];
	while (i < mid)
		e[k++] = tmp[i++];
}

static void ent_msort(struct ent *e, size_t n, struct ent *tmp)
{
	size_t mid = n / 2;

	if (n <= 16) {
		ent_isort(e, n);
		return;
	}
	ent_msort(e, mid, tmp);
	ent_msort(e + mid, n - mid, tmp);
	ent_merge(e, mid, n, tmp);
}

/* ---- scalar writers -------------------------------------------------------- */

/* Length of the well-formed UTF-8 sequence at p (2..4), or -k: the first k bytes
 * are a maximal ill-formed subpart, to be replaced by one U+FFFD (Table 3-7). */
static int utf8_next(const uint8_t *p, size_t left)
{
	uint8_t c = p[0], lo = 0x80, hi = 0xBF;
	size_t need, i;

	if (c >= 0xC2 && c <= 0xDF) {
		need = 1;
	} else if (c >= 0xE0 && c <= 0xEF) {
		need = 2;
		if (c == 0xE0)
			lo = 0xA0; /* overlong */
		else if (c == 0xED)
			hi = 0x9F; /* surrogates */
	} else if (c >= 0xF0 && c <= 0xF4) {
		need = 3;
		if (c == 0xF0)
			lo = 0x90; /* overlong */
		else if (c == 0xF4)
			hi = 0x8F; /* > U+10FFFF */
	} else {
		return -1; /* continuation byte, C0, C1, F5..FF */
	}
	for (i = 1; i <= need; i++) {
		if (i >= left || p[i] < lo || p[i] > hi)
			return -(int)i;
		lo = 0x80;
		hi = 0xBF;
	}
	return (int)need + 1;
}

/* 1 for bytes copied as they are: printable ASCII except '"' and '\\'. */
static const uint8_t plain_tbl[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};

static inline bool plain_byte(uint8_t c)
{
	return plain_tbl[c];
}

/* plain_byte() for 8 bytes at once (SWAR): no byte < 0x20, >= 0x80, '"' or '\\'.
 * Each test is exact about "some byte matches", which is all that is asked. */
static inline bool plain_word(const char *s)
{
	const uint64_t ones = 0x0101010101010101ULL, hi = 0x8080808080808080ULL;
	uint64_t x, q, b;

	memcpy(&x, s, 8);
	q = x ^ (ones * '"');
	b = x ^ (ones * '\\');
	return !(((x - ones * 0x20) | x | ((q - ones) & ~q) | ((b - ones) & ~b)) & hi);
}

/* Room for n more bytes at o->p + o->len; false when memory is short (err set). */
static inline bool room(struct strbuf *o, size_t n)
{
	return o->cap - o->len >= n || strbuf_grow(o, n) == 0;
}

/* pre + '"' + s + '"' + post in one copy when s is plain ASCII within cap (the
 * common case); pre/post are optional single characters ('\0' = none). */
static bool put_plain(struct strbuf *o, char pre, const char *s, size_t len, size_t cap, char post)
{
	size_t i;
	char *d;

	if (len > cap)
		return false;
	for (i = 0; len - i >= 8; i += 8)
		if (!plain_word(s + i))
			return false;
	for (; i < len; i++)
		if (!plain_byte((uint8_t)s[i]))
			return false;
	if (!room(o, len + 4))
		return true; /* err is set; the document is discarded */
	d = o->p + o->len;
	if (pre)
		*d++ = pre;
	*d++ = '"';
	memcpy(d, s, len);
	d += len;
	*d++ = '"';
	if (post)
		*d++ = post;
	o->len = (size_t)(d - o->p);
	return true;
}

/* '"' + s + '"' for text known to be plain ASCII. */
static void put_raw_str(struct strbuf *o, const char *s, size_t len)
{
	char *d;

	if (!room(o, len + 2))
		return; /* err is set; the document is discarded */
	d = o->p + o->len;
	*d++ = '"';
	memcpy(d, s, len);
	d[len] = '"';
	o->len += len + 2;
}

/* A JSON string of at most `cap` bytes of UTF-8 content (before escaping). */
static void put_str_cap(struct writer *w, const char *s, size_t len, size_t cap)
{
	static const char hex[] = "0123456789abcdef";
	const uint8_t *p = (const uint8_t *)s, *end = p + len, *run;
	struct strbuf *o = w->out;
	size_t budget = cap;
	char esc[6];
	int n;

	if (put_plain(o, 0, s, len, cap, 0))
		return;
	strbuf_putc(o, '"');
	while (p < end) {
		run = p;
		while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\' &&
		       (size_t)(p - run) < budget)
			p++;
		if (p > run) {
			strbuf_append(o, run, (size_t)(p - run));
			budget -= (size_t)(p - run);
		}
		if (p == end)
			break;
		if (budget == 0)
			goto truncated;
		if (*p < 0x80) {
			esc[0] = '\\';
			switch (*p) {
			case '"':
				esc[1] = '"';
				n = 2;
				break;
			case '\\':
				esc[1] = '\\';
				n = 2;
				break;
			case '\b':
				esc[1] = 'b';
				n = 2;
				break;
			case '\f':
				esc[1] = 'f';
				n = 2;
				break;
			case '\n':
				esc[1] = 'n';
				n = 2;
				break;
			case '\r':
				esc[1] = 'r';
				n = 2;
				break;
			case '\t':
				esc[1] = 't';
				n = 2;
				break;
			default:
				memcpy(esc + 1, "u00", 3);
				esc[4] = hex[*p >> 4];
				esc[5] = hex[*p & 15];
				n = 6;
				break;
			}
			strbuf_append(o, esc, (size_t)n);
			budget--;
			p++;
			continue;
		}
		n = utf8_next(p, (size_t)(end - p));
		if (n > 0) {
			if ((size_t)n > budget)
				goto truncated;
			strbuf_append(o, p, (size_t)n);
			budget -= (size_t)n;
			p += n;
		} else {
			if (budget < 3)
				goto truncated;
			strbuf_append(o, "\xEF\xBF\xBD", 3);
			budget -= 3;
			p += -n;
		}
	}
	strbuf_putc(o, '"');
	return;
truncated:
	w->truncated++;
	strbuf_putc(o, '"');
}

static void put_u64(struct strbuf *o, uint64_t v)
{
	char b[24], *q = b + sizeof(b);

	do {
		*--q = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	strbuf_append(o, q, (size_t)(b + sizeof(b) - q));
}

static void put_i64(struct strbuf *o, int64_t v)
{
	if (v < 0) {
		strbuf_putc(o, '-');
		put_u64(o, (uint64_t)0 - (uint64_t)v);
	} else {
		put_u64(o, (uint64_t)v);
	}
}

/* Shortest of %.15g/%.16g/%.17g that reads back as the same double. */
static void put_double(struct writer *w, double d)
{
	char b[40];
	int prec;

	if (!isfinite(d)) {
		w->non_finite++;
		strbuf_append(w->out, "null", 4);
		return;
	}
	for (prec = 15; prec < 17; prec++) {
		snprintf(b, sizeof(b), "%.*g", prec, d);
		if (strtod(b, NULL) == d)
			break;
	}
	if (prec == 17)
		snprintf(b, sizeof(b), "%.17g", d);
	strbuf_puts(w->out, b);
}

static void put_value(struct writer *w, const struct ent *e)
{
	const struct ev_field *f = e->f;
	char b[TS_LEN > HB_IP_STRLEN ? TS_LEN : HB_IP_STRLEN];
	size_t n;

	switch (f->type) {
	case EV_T_STR:
		if (e->seq < w->nderived && (f->flags & ENC_PLAIN))
			put_raw_str(w->out, f->v.s.p, f->v.s.len);
		else
			put_str_cap(w, f->v.s.p, f->v.s.len,
				    e->seq < w->nderived ? SIZE_MAX : w->max_string);
		return;
	case EV_T_INT:
		put_i64(w->out, f->v.i);
		return;
	case EV_T_UINT:
		put_u64(w->out, f->v.u);
		return;
	case EV_T_BOOL:
		if (f->v.b)
			strbuf_append(w->out, "true", 4);
		else
			strbuf_append(w->out, "false", 5);
		return;
	case EV_T_DOUBLE:
		put_double(w, f->v.d);
		return;
	case EV_T_IP:
		n = ip_text(&f->v.ip, b);
		if (!n)
			break;
		put_str_cap(w, b, n, SIZE_MAX);
		return;
	case EV_T_TIME:
		n = fmt_time(f->v.u, 6, b);
		put_str_cap(w, b, n, SIZE_MAX);
		return;
	default:
		break;
	}
	strbuf_append(w->out, "null", 4);
}

/* Equality for the set semantics of related.*: same type and value; an IP and a
 * string compare by text. */
static bool value_eq(const struct ev_field *a, const struct ev_field *b)
{
	char t[HB_IP_STRLEN];
	size_t n;

	if (a->type == EV_T_STR && b->type == EV_T_IP) {
		const struct ev_field *x = a;

		a = b;
		b = x;
	}
	if (a->type == EV_T_IP && b->type == EV_T_STR) {
		n = ip_text(&a->v.ip, t);
		return n && n == b->v.s.len && memcmp(t, b->v.s.p, n) == 0;
	}
	if (a->type != b->type)
		return false;
	switch (a->type) {
	case EV_T_STR:
		return a->v.s.len == b->v.s.len && memcmp(a->v.s.p, b->v.s.p, a->v.s.len) == 0;
	case EV_T_IP:
		return hb_ip_eq(&a->v.ip, &b->v.ip);
	case EV_T_BOOL:
		return a->v.b == b->v.b;
	case EV_T_DOUBLE:
		return a->v.d == b->v.d;
	default:
		return a->v.u == b->v.u; /* INT, UINT, TIME share the bits */
	}
}

/* ---- structure ------------------------------------------------------------- */

/* The open objects: those of the last written key's parent segments. */
struct nest {
	unsigned depth;
	bool first[MAX_DEPTH + 1]; /* no member written yet at this level (0 = root) */
};

/* [','] "key": */
static void put_key(struct writer *w, bool comma, const char *k, size_t len)
{
	if (put_plain(w->out, comma ? ',' : 0, k, len, SIZE_MAX, ':'))
		return;
	if (comma)
		strbuf_putc(w->out, ',');
	put_str_cap(w, k, len, SIZE_MAX);
	strbuf_putc(w->out, ':');
}

/* [','] "key": for a key segment of a derived field: our literals are plain ASCII. */
static void put_key_raw(struct writer *w, bool comma, const char *k, size_t len)
{
	struct strbuf *o = w->out;
	char *d;

	if (!room(o, len + 4))
		return; /* err is set; the document is discarded */
	d = o->p + o->len;
	if (comma)
		*d++ = ',';
	*d++ = '"';
	memcpy(d, k, len);
	d += len;
	*d++ = '"';
	*d++ = ':';
	o->len = (size_t)(d - o->p);
}

/* The separator before the next member at the current level, and the key. */
static void put_member(struct writer *w, struct nest *ns, const char *k, size_t len, bool raw)
{
	if (raw)
		put_key_raw(w, !ns->first[ns->depth], k, len);
	else
		put_key(w, !ns->first[ns->depth], k, len);
	ns->first[ns->depth] = false;
}

/* Static names are mostly distinct: settle most comparisons without a call. */
static inline bool same_str(const char *a, const char *b)
{
	return a == b || (a[0] == b[0] && strcmp(a, b) == 0);
}

/* An array of objects: ents sorted by elem, member, seq. */
static void put_objarr(struct writer *w, const struct ent *e, size_t n)
{
	size_t k = 0, m, j;

	strbuf_putc(w->out, '[');
	while (k < n) {
		uint16_t elem = e[k].f->elem;

		if (k)
			strbuf_putc(w->out, ',');
		strbuf_putc(w->out, '{');
		for (m = k; m < n && e[m].f->elem == elem; m = j) {
			/* members with the same name: the last one wins */
			for (j = m + 1; j < n && e[j].f->elem == elem &&
					same_str(e[j].f->member, e[m].f->member);
			     j++)
				;
			put_key(w, m > k, e[m].f->member, strlen(e[m].f->member));
			put_value(w, &e[j - 1]);
		}
		strbuf_putc(w->out, '}');
		k = m;
	}
	strbuf_putc(w->out, ']');
}

/* The value of one key: ents [0, n) share it. */
static void put_group(struct writer *w, const struct ent *e, size_t n)
{
	size_t k, j, first_member = n, nscalar = 0;
	bool is_set, any = false;

	for (k = 0; k < n; k++) {
		if (e[k].f->member) {
			first_member = k;
			break;
		}
		if (!(e[k].f->flags & EVF_ARRAY))
			nscalar++;
	}
	if (first_member < n) {
		if (first_member)
			w->conflicts++; /* plain values and an object array under one key */
		put_objarr(w, e + first_member, n - first_member);
		return;
	}
	if (nscalar == n) {
		put_value(w, &e[n - 1]);
		return;
	}
	if (nscalar)
		w->conflicts++; /* scalar and array under one key: the array wins */
	is_set = strncmp(e[0].f->key, "related.", 8) == 0;
	strbuf_putc(w->out, '[');
	for (k = 0; k < n; k++) {
		if (!(e[k].f->flags & EVF_ARRAY))
			continue;
		for (j = 0; is_set && j < k && j < SET_SCAN_MAX; j++)
			if ((e[j].f->flags & EVF_ARRAY) && value_eq(e[j].f, e[k].f))
				break;
		if (is_set && j < k && j < SET_SCAN_MAX)
			continue;
		if (any)
			strbuf_putc(w->out, ',');
		any = true;
		put_value(w, &e[k]);
	}
	strbuf_putc(w->out, ']');
}

/* True when `next` is inside the object `key` ("key.…"). */
static bool is_inside(const char *key, const char *next)
{
	while (*key && *key == *next) {
		key++;
		next++;
	}
	return !*key && *next == '.';
}

/* is_inside() for the ents of a key `a` of `alen` bytes and a later key `b`, most
 * answers from the prefixes: "b is inside a" needs b's first alen bytes to be a's
 * and b[alen] == '.' (a prefix byte 1); only then are the bytes compared. */
static bool ent_inside(const struct ent *a, size_t alen, const struct ent *b)
{
	unsigned sh;

	if (alen < 8) {
		sh = 56 - 8 * (unsigned)alen;
		if (b->pfx >> sh != (a->pfx >> sh | 1))
			return false;
	} else if (a->pfx != b->pfx || !is_inside(a->f->key + 8, b->f->key + 8)) {
		return false; /* the first 8 bytes are equal up to '.' vs 0x01: recheck all */
	}
	return is_inside(a->f->key, b->f->key);
}

static void put_ents(struct writer *w, const struct ent *e, size_t n)
{
	struct nest ns;
	const char *seg[MAX_DEPTH + 1], *prev = NULL;
	size_t seglen[MAX_DEPTH + 1];
	size_t i = 0, j;
	unsigned nseg, common, k;
	bool too_deep;

	ns.depth = 0;
	ns.first[0] = true;
	strbuf_putc(w->out, '{');
	for (; i < n; i = j) {
		const char *key = e[i].f->key, *p, *dot, *a;
		bool raw = e[i].seq < w->nderived; /* our literals: plain ASCII */

		for (j = i + 1; j < n && e[j].pfx == e[i].pfx && ent_key_cmp(&e[j], &e[i]) == 0;
		     j++)
			;
		/* The parent segments shared with the last written key (its parents are the
		 * open objects): whole segments of the common prefix. */
		common = 0;
		p = key;
		if (prev)
			for (a = prev, dot = key; *dot && *a == *dot; a++, dot++)
				if (*dot == '.') {
					common++;
					p = dot + 1;
				}
		/* split the rest of the key into segments */
		nseg = common;
		too_deep = false;
		for (;; p = dot + 1) {
			if (nseg == MAX_DEPTH + 1) {
				too_deep = true;
				break;
			}
			for (dot = p; *dot && *dot != '.'; dot++)
				;
			seg[nseg] = p;
			seglen[nseg++] = (size_t)(dot - p);
			if (!*dot)
				break;
		}
		if (too_deep) {
			w->conflicts++; /* deeper than MAX_DEPTH */
			continue;
		}
		if (j < n &&
		    ent_inside(&e[i], (size_t)(seg[nseg - 1] + seglen[nseg - 1] - key), &e[j])) {
			w->conflicts++; /* "a" and "a.b": keep the object */
			continue;
		}
		/* close the open objects that are not parents of this key, open the rest */
		prev = key;
		while (ns.depth > common) {
			strbuf_putc(w->out, '}');
			ns.depth--;
		}
		for (k = common; k < nseg - 1; k++) {
			put_member(w, &ns, seg[k], seglen[k], raw);
			strbuf_putc(w->out, '{');
			ns.depth++;
			ns.first[ns.depth] = true;
		}
		put_member(w, &ns, seg[nseg - 1], seglen[nseg - 1], raw);
		put_group(w, e + i, j - i);
	}
	while (ns.depth > 0) {
		strbuf_putc(w->out, '}');
		ns.depth--;
	}
	strbuf_putc(w->out, '}');
}

/* ---- public ---------------------------------------------------------------- */

int encode_event(const struct event *ev, const struct encode_opts *o, struct strbuf *out)
{
	struct ev_field dstack[ENV_STACK];
	uint64_t pstack[ENV_STACK];
	struct ent estack[2 * ENT_STACK]; /* entries, then the merge scratch */
	struct ev_field *dheap = NULL;
	struct ent *ents = estack, *tmp = estack + ENT_STACK, *eheap = NULL;
	struct env env;
	struct writer w;
	size_t start, ntags, nent = 0, nmax, i;
	int rc = 0;

	if (!ev || !o || !out)
		return -EINVAL;
	start = out->len;
	ntags = o->tags ? o->tags->n : 0;

	env.f = dstack;
	env.pfx = pstack;
	env.cap = ENV_STACK;
	env.n = 0;
	if (ENV_FIXED + ntags > ENV_STACK) {
		/* the fields, then their prefixes (ev_field is 8-byte aligned) */
		dheap = hb_malloc((ENV_FIXED + ntags) * (sizeof(*dheap) + sizeof(uint64_t)));
		if (!dheap) {
			rc = -ENOMEM;
			goto out;
		}
		env.f = dheap;
		env.pfx = (uint64_t *)(void *)(dheap + ENV_FIXED + ntags);
		env.cap = (unsigned)(ENV_FIXED + ntags);
	}
	env_build(&env, ev, o);

	nmax = env.n + (size_t)ev->nfields;
	if (nmax > ENT_STACK) {
		eheap = hb_malloc(2 * nmax * sizeof(*eheap));
		if (!eheap) {
			rc = -ENOMEM;
			goto out;
		}
		ents = eheap;
		tmp = eheap + nmax;
	}
	for (i = 0; i < env.n; i++) {
		ents[nent].pfx = env.pfx[i];
		ents[nent].f = &env.f[i];
		ents[nent].seq = (uint32_t)nent;
		nent++;
	}
	for (i = 0; i < ev->nfields; i++) {
		if (!ev->fields[i].key)
			continue;
		ents[nent].pfx = key_prefix(ev->fields[i].key);
		ents[nent].f = &ev->fields[i];
		ents[nent].seq = (uint32_t)nent;
		nent++;
	}
	/* derived: already (nearly) in order; protocol fields: any order; then merge */
	ent_isort(ents, env.n);
	ent_msort(ents + env.n, nent - env.n, tmp);
	ent_merge(ents, env.n, nent, tmp);

	w.out = out;
	w.max_string = o->max_string ? o->max_string : ENCODE_DEFAULT_MAX_STRING;
	w.nderived = env.n;
	w.conflicts = w.truncated = w.non_finite = 0;
	put_ents(&w, ents, nent);

	/* Anomalies are rare: the counter lookup happens only when one occurred. */
	if (w.conflicts)
		metric_add(metrics_counter("encode.key_conflicts"), w.conflicts);
	if (w.truncated)
		metric_add(metrics_counter("encode.truncated_strings"), w.truncated);
	if (w.non_finite)
		metric_add(metrics_counter("encode.non_finite"), w.non_finite);
	if (out->err)
		rc = -ENOMEM;
out:
	if (rc < 0)
		strbuf_truncate(out, start);
	hb_free(eheap);
	hb_free(dheap);
	return rc;
}

void encode_index_name(const struct event *ev, char *buf, size_t size)
{
	const char *prefix;
	unsigned y, m, d;
	size_t n;

	if (!size)
		return;
	switch (ev->kind) {
	case EV_KIND_TRANSACTION:
		prefix = "packetbeat";
		break;
	case EV_KIND_METRIC:
		prefix = "topbeat";
		break;
	default:
		prefix = "hostbeat-metrics";
		break;
	}
	civil(ev->ts / NS_PER_SEC / 86400, &y, &m, &d);
	n = strlen(prefix);
	if (y <= 9999 && size >= n + 12) { /* the common case without printf */
		memcpy(buf, prefix, n);
		buf[n] = '-';
		put2(buf + n + 1, y / 100);
		put2(buf + n + 3, y % 100);
		buf[n + 5] = '.';
		put2(buf + n + 6, m);
		buf[n + 8] = '.';
		put2(buf + n + 9, d);
		buf[n + 11] = '\0';
		return;
	}
	snprintf(buf, size, "%s-%04u.%02u.%02u", prefix, y, m, d);
}

static void put_indent(struct strbuf *o, unsigned level)
{
	strbuf_putc(o, '\n');
	while (level--)
		strbuf_append(o, "  ", 2);
}

int encode_pretty(const char *json, size_t len, struct strbuf *out)
{
	unsigned level = 0;
	bool in_str = false, esc = false;
	size_t i;
	char c;

	for (i = 0; i < len; i++) {
		c = json[i];
		if (in_str) {
			strbuf_putc(out, c);
			if (esc)
				esc = false;
			else if (c == '\\')
				esc = true;
			else if (c == '"')
				in_str = false;
			continue;
		}
		switch (c) {
		case '"':
			in_str = true;
			strbuf_putc(out, c);
			break;
		case '{':
		case '[':
			strbuf_putc(out, c);
			if (i + 1 < len && (json[i + 1] == '}' || json[i + 1] == ']')) {
				strbuf_putc(out, json[++i]);
				break;
			}
			put_indent(out, ++level);
			break;
		case '}':
		case ']':
			if (level)
				level--;
			put_indent(out, level);
			strbuf_putc(out, c);
			break;
		case ',':
			strbuf_putc(out, c);
			put_indent(out, level);
			break;
		case ':':
			strbuf_append(out, ": ", 2);
			break;
		default:
			strbuf_putc(out, c);
			break;
		}
	}
	return out->err ? -ENOMEM : 0;
}
