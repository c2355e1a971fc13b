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
 *      Derived keys come from one table (dkeys[]) in sorted key order, each with its
 *      JSON member path prepared at compile time ("event.kind" → "event":{"kind":).
 *   2. Every field becomes an `ent` {field, seq}; seq is the insertion order, derived
 *      fields first. The ents are ordered by key, segment-wise ('.' ranks below every
 *      other byte, so "a" < "a.b" < "a-b" < "ab"), then by elem/member, then seq.
 *      Derived ents are in that order by construction; the protocol ents are checked
 *      in one pass and sorted only when a parser added them out of order; then both
 *      runs are merged.
 *   3. One linear pass writes the document: consecutive ents with the same key form a
 *      group (scalar: the last one wins; EVF_ARRAY: a JSON array in insertion order;
 *      member/elem: an array of objects). Nested objects are opened and closed by
 *      comparing the key with the last written one (its parents are the open
 *      objects). Because of the ordering, a key "k" that is also an object prefix
 *      ("k.x") is immediately followed by the "k.*" keys: the leaf is dropped and
 *      counted. Derived keys are our literals: their member paths are copied from
 *      the table without an escaping scan.
 *
 *   {"@timestamp":..,"agent":{..},"destination":{"bytes":..,"domain":..,"ip":..},..}
 *
 * The fast path (o->tmpl, built once per options by encode_tmpl_new()) writes the
 * same bytes without steps 1 and 2 for the envelope: encode_fast() walks dkeys[] in
 * order straight from the typed event (agent.*, host.name and tags pre-rendered in
 * the template, the transitions between derived keys from a table), and before each
 * derived key writes the sorted protocol ents that sort below it with the step-3
 * code. Where a protocol key would meet a derived one as one group (except
 * related.ip, merged as a set) or as "a" and "a.b", it gives up and this event takes
 * the general path above; so does one whose dataset, interface or Community ID needs
 * escaping (test_encode checks both paths give the same document on random events).
 *
 * With a template, a shape cache (see "shape cache" below) remembers for each kind
 * of event seen — same protocol keys in the same order, same envelope — the text
 * between its values; the next event of that kind is that text with its values put
 * in, byte for byte what encode_fast() writes.
 *
 * Arrays under "related." are sets: duplicates are skipped (first one kept), which
 * gives related.ip = client, server, then the parser's IPs in order. The check looks
 * at the first SET_SCAN_MAX elements only, so a huge DNS answer costs linear time.
 * No allocation per event unless an event has more fields than the stack arrays hold.
 */
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hostbeat/clock.h"
#include "hostbeat/encode.h"
#include "hostbeat/mem.h"
#include "hostbeat/numtext.h"
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
#define DK_MAX_SEG 4    /* segments of the deepest derived key */
#define DK_NONE 0xff    /* ent.dk of a protocol field */
#define DK_COPY 32      /* member paths up to this long are copied with a fixed size */

_Static_assert(EV_COMMUNITY_ID_LEN == COMMUNITY_ID_LEN, "event.h community_id size");

/* One value to write: a field of the event or a derived one, with its order.
 * pfx, pfx2 = the key bytes 0..7 and 8..15 ('.' mapped to 1, zero past the end)
 * big-endian: most comparisons end with one or two integer compares. dk = the
 * dkeys[] index of a derived field, else DK_NONE. */
struct ent {
	uint64_t pfx, pfx2;
	const struct ev_field *f;
	uint32_t seq;
	uint16_t klen; /* strlen(f->key); UINT16_MAX: that or more */
	uint8_t dk;
};

/* key_words() of a string literal, folded at compile time: the padding makes bytes
 * 0..15 always exist (zero past the key's end, as key_words() shifts). */
#define KPAD_(s) (s "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0")
#define KB_(s, i) \
	((uint64_t)(KPAD_(s)[i] == '.' ? 1 : (uint8_t)KPAD_(s)[i]) << (56 - 8 * ((i) % 8)))
#define KPFX(s)                                                                              \
	(KB_(s, 0) | KB_(s, 1) | KB_(s, 2) | KB_(s, 3) | KB_(s, 4) | KB_(s, 5) | KB_(s, 6) | \
	 KB_(s, 7))
#define KPFX2(s)                                                                                  \
	(KB_(s, 8) | KB_(s, 9) | KB_(s, 10) | KB_(s, 11) | KB_(s, 12) | KB_(s, 13) | KB_(s, 14) | \
	 KB_(s, 15))

/* ---- derived keys -------------------------------------------------------------- */

/* A derived field's key and its JSON member path, built at compile time:
 * "event.kind" → text "\"event\":{\"kind\":". Segment k starts at key + kseg[k] and
 * its member at text + tseg[k]: after the objects shared with the last written key,
 * the writer copies the rest of `text` in one go. */
struct dkey {
	const char *key;
	char text[2 * DK_COPY]; /* NUL-padded: DK_COPY bytes from any segment exist */
	uint64_t pfx, pfx2;     /* KPFX(key), KPFX2(key) */
	uint8_t len;            /* strlen(key) */
	uint8_t tlen;           /* strlen(text) */
	uint8_t depth;          /* '.' in the key = parent objects */
	uint8_t kseg[DK_MAX_SEG];
	uint8_t tseg[DK_MAX_SEG];
};

#define Q_(s) "\"" s "\""
#define DK_(key, text, depth, ...)                                                          \
	{                                                                                   \
		key, text, KPFX(key), KPFX2(key), sizeof(key) - 1, sizeof(text) - 1, depth, \
		    __VA_ARGS__                                                             \
	}
#define DK1(a) DK_(a, Q_(a) ":", 0, {0}, {0})
#define DK2(a, b) DK_(a "." b, Q_(a) ":{" Q_(b) ":", 1, {0, sizeof(a)}, {0, sizeof(Q_(a) ":{") - 1})
#define DK4(a, b, c, d)                                                         \
	DK_(a "." b "." c "." d, Q_(a) ":{" Q_(b) ":{" Q_(c) ":{" Q_(d) ":", 3, \
	    {0, sizeof(a), sizeof(a "." b), sizeof(a "." b "." c)},             \
	    {0, sizeof(Q_(a) ":{") - 1, sizeof(Q_(a) ":{" Q_(b) ":{") - 1,      \
	     sizeof(Q_(a) ":{" Q_(b) ":{" Q_(c) ":{") - 1})

/* Every derived key, in sorted key order. env_build() adds the derived fields in
 * this order and the writer relies on it (their ents are not sorted); test_encode
 * checks the order on documents that carry all of them. */
enum dkey_id {
	D_TIMESTAMP,
	D_AGENT_EPHEMERAL_ID,
	D_AGENT_ID,
	D_AGENT_NAME,
	D_AGENT_TYPE,
	D_AGENT_VERSION,
	D_BYTES_IN,
	D_BYTES_OUT,
	D_CLIENT_BYTES,
	D_CLIENT_IP,
	D_CLIENT_PORT,
	D_CLIENT_IP_LEGACY,
	D_CLIENT_PORT_LEGACY,
	D_COUNT,
	D_DESTINATION_BYTES,
	D_DESTINATION_IP,
	D_DESTINATION_PORT,
	D_ECS_VERSION,
	D_EVENT_CATEGORY,
	D_EVENT_DATASET,
	D_EVENT_DURATION,
	D_EVENT_END,
	D_EVENT_KIND,
	D_EVENT_MODULE,
	D_EVENT_START,
	D_EVENT_TYPE,
	D_HOST_NAME,
	D_IP,
	D_METRICSET_NAME,
	D_NETWORK_BYTES,
	D_NETWORK_COMMUNITY_ID,
	D_NETWORK_PROTOCOL,
	D_NETWORK_TRANSPORT,
	D_NETWORK_TYPE,
	D_OBSERVER_INTERFACE,
	D_PORT,
	D_RELATED_IP,
	D_RESPONSETIME,
	D_SERVER_BYTES,
	D_SERVER_IP,
	D_SERVER_PORT,
	D_SOURCE_BYTES,
	D_SOURCE_IP,
	D_SOURCE_PORT,
	D_STATUS,
	D_TAGS,
	D_TRANSPORT,
	D_TYPE,
	D_NKEYS
};

static const struct dkey dkeys[D_NKEYS] = {
    [D_TIMESTAMP] = DK1("@timestamp"),
    [D_AGENT_EPHEMERAL_ID] = DK2("agent", "ephemeral_id"),
    [D_AGENT_ID] = DK2("agent", "id"),
    [D_AGENT_NAME] = DK2("agent", "name"),
    [D_AGENT_TYPE] = DK2("agent", "type"),
    [D_AGENT_VERSION] = DK2("agent", "version"),
    [D_BYTES_IN] = DK1("bytes_in"),
    [D_BYTES_OUT] = DK1("bytes_out"),
    [D_CLIENT_BYTES] = DK2("client", "bytes"),
    [D_CLIENT_IP] = DK2("client", "ip"),
    [D_CLIENT_PORT] = DK2("client", "port"),
    [D_CLIENT_IP_LEGACY] = DK1("client_ip"),
    [D_CLIENT_PORT_LEGACY] = DK1("client_port"),
    [D_COUNT] = DK1("count"),
    [D_DESTINATION_BYTES] = DK2("destination", "bytes"),
    [D_DESTINATION_IP] = DK2("destination", "ip"),
    [D_DESTINATION_PORT] = DK2("destination", "port"),
    [D_ECS_VERSION] = DK2("ecs", "version"),
    [D_EVENT_CATEGORY] = DK2("event", "category"),
    [D_EVENT_DATASET] = DK2("event", "dataset"),
    [D_EVENT_DURATION] = DK2("event", "duration"),
    [D_EVENT_END] = DK2("event", "end"),
    [D_EVENT_KIND] = DK2("event", "kind"),
    [D_EVENT_MODULE] = DK2("event", "module"),
    [D_EVENT_START] = DK2("event", "start"),
    [D_EVENT_TYPE] = DK2("event", "type"),
    [D_HOST_NAME] = DK2("host", "name"),
    [D_IP] = DK1("ip"),
    [D_METRICSET_NAME] = DK2("metricset", "name"),
    [D_NETWORK_BYTES] = DK2("network", "bytes"),
    [D_NETWORK_COMMUNITY_ID] = DK2("network", "community_id"),
    [D_NETWORK_PROTOCOL] = DK2("network", "protocol"),
    [D_NETWORK_TRANSPORT] = DK2("network", "transport"),
    [D_NETWORK_TYPE] = DK2("network", "type"),
    [D_OBSERVER_INTERFACE] = DK4("observer", "ingress", "interface", "name"),
    [D_PORT] = DK1("port"),
    [D_RELATED_IP] = DK2("related", "ip"),
    [D_RESPONSETIME] = DK1("responsetime"),
    [D_SERVER_BYTES] = DK2("server", "bytes"),
    [D_SERVER_IP] = DK2("server", "ip"),
    [D_SERVER_PORT] = DK2("server", "port"),
    [D_SOURCE_BYTES] = DK2("source", "bytes"),
    [D_SOURCE_IP] = DK2("source", "ip"),
    [D_SOURCE_PORT] = DK2("source", "port"),
    [D_STATUS] = DK1("status"),
    [D_TAGS] = DK1("tags"),
    [D_TRANSPORT] = DK1("transport"),
    [D_TYPE] = DK1("type"),
};

/* The date and time of day of one second, "YYYY-MM-DDTHH:MM:SS" (19 bytes): the
 * three times of an event nearly always share it. */
struct tcache {
	uint64_t start; /* the second's first ns */
	bool valid;
	char text[19];
};

/* The last second each encoding thread formatted: events come in time order, so
 * most timestamps share it with the event before. */
static _Thread_local struct tcache thread_tcache;

/* Derived envelope fields, their dkeys[] ids, and the text they point at. */
struct env {
	struct ev_field *f;
	uint8_t *id;
	unsigned n, cap;
	char ts[TS_LEN], start[TS_LEN], end[TS_LEN];
	char cip[HB_IP_STRLEN], sip[HB_IP_STRLEN];
	size_t cip_len, sip_len; /* 0 = address not set */
	char cid[COMMUNITY_ID_LEN];
};

/* What a value in the document is, for the shape cache: V_NONE is text that is the
 * same for every event of a shape (it stays in the skeleton); the others are read
 * from each event. */
enum vkind {
	V_NONE,
	V_TS,       /* @timestamp */
	V_START,    /* event.start */
	V_END,      /* event.end */
	V_DURATION, /* event.duration */
	V_RESPMS,   /* responsetime */
	V_CBYTES,   /* client_bytes */
	V_SBYTES,   /* server_bytes */
	V_NBYTES,   /* their sum */
	V_CPORT,
	V_SPORT,
	V_CIP, /* client address text */
	V_SIP, /* server address text */
	V_CID, /* network.community_id */
	/* one protocol field's value, by its type (put_value()) */
	V_STR,
	V_INT,
	V_UINT,
	V_BOOL,
	V_DOUBLE,
	V_IP,
	V_TIME,
	V_SET,        /* a related.* array of 2 or more: put_array(), a set */
	V_RELATED,    /* related.ip with the parser's: put_related_set() */
	V_RELATED_IP, /* the same when the parser's are all addresses: put_related_ips() */
};

#define SHAPE_SLOTS 128 /* values of one document the cache records, at most */

/* Where encode_fast() wrote each per-event value (offsets in out->p), in document
 * order; a cached shape is the document without them (encode_shaped()). */
struct shape_rec {
	unsigned n;
	bool fail;          /* a value the skeleton cannot hold: no skeleton */
	unsigned conflicts; /* keys dropped ("a" vs "a.b", too deep, put_group()): the same every
			       time */
	struct {
		size_t start, end;
		uint8_t kind;      /* enum vkind */
		uint16_t first, n; /* a protocol value: its index in ev->fields; V_SET,
				      V_RELATED*: its n ents in the sorted array */
	} v[SHAPE_SLOTS];
};

struct writer {
	struct strbuf *out;
	size_t max_string; /* for protocol fields; derived ones are ours and never cut */
	uint32_t nderived; /* ents with seq < nderived are derived fields */
	unsigned conflicts, truncated, non_finite;
	/* while encode_fast() records a shape, else NULL: where put_group() wrote each
	 * protocol value, and the arrays the recorded indexes are into */
	struct shape_rec *rec;
	const struct ev_field *fields; /* ev->fields */
	const struct ent *ebase;       /* the sorted protocol ents */
};

/* Record that out->p[start, end) is a value of kind k (V_NONE: not recorded). */
static void rec_span(struct shape_rec *r, size_t start, size_t end, enum vkind k, size_t first,
		     size_t n)
{
	if (k == V_NONE)
		return;
	if (r->n == SHAPE_SLOTS || first > UINT16_MAX || n > UINT16_MAX) {
		r->fail = true;
		return;
	}
	r->v[r->n].start = start;
	r->v[r->n].end = end;
	r->v[r->n].kind = (uint8_t)k;
	r->v[r->n].first = (uint16_t)first;
	r->v[r->n].n = (uint16_t)n;
	r->n++;
}

/* ---- numbers ------------------------------------------------------------- */

/* Decimal digits of v (1..20), without a loop: log10 estimated from the bit length
 * (1233 / 4096 ~ log10(2)), then one compare with the power of ten it points at. */
static inline unsigned u64_digits(uint64_t v)
{
	/* 10^0 .. 10^19, exact as doubles */
	static const uint64_t p10[20] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,
					 1e7,  1e8,  1e9,  1e10, 1e11, 1e12, 1e13,
					 1e14, 1e15, 1e16, 1e17, 1e18, 1e19};
	unsigned t = (unsigned)(64 - __builtin_clzll(v | 1)) * 1233 >> 12;

	return t + ((v | 1) >= p10[t]);
}

/* ---- addresses -------------------------------------------------------------- */

/* hb_ip_eq() with fixed-size compares (no memcmp call). */
static inline bool ip_same(const struct hb_ip *x, const struct hb_ip *y)
{
	uint64_t a[2], b[2];
	uint32_t a4, b4;

	if (x->ver != y->ver)
		return false;
	if (x->ver != 6) {
		memcpy(&a4, x->a, 4);
		memcpy(&b4, y->a, 4);
		return a4 == b4;
	}
	memcpy(a, x->a, 16);
	memcpy(b, y->a, 16);
	return ((a[0] ^ b[0]) | (a[1] ^ b[1])) == 0;
}

/* The text of the addresses this thread formatted last, direct-mapped by a hash of
 * the address: the same few come back in event after event (the client and the
 * server) and within one (a DNS answer is in dns.resolved_ip and related.ip).
 * 64 entries of 64 bytes; an entry with ver 0 is empty. */
#define IPTEXT_SLOTS 64

struct iptext {
	struct hb_ip ip;
	uint8_t len;
	char text[HB_IP_STRLEN];
};

static _Thread_local struct iptext thread_iptext[IPTEXT_SLOTS];

/* hb_ip_format() through the cache: the text (0 bytes when ip is no address) is
 * copied to buf, which gets HB_IP_STRLEN bytes (the ones past the text are spare). */
static inline size_t ip_text(const struct hb_ip *ip, char *buf)
{
	struct iptext *c;
	uint64_t h, x[2];
	uint32_t x4;

	if (ip->ver == 4) {
		memcpy(&x4, ip->a, 4);
		h = x4;
	} else if (ip->ver == 6) {
		memcpy(x, ip->a, 16);
		h = x[0] ^ x[1] * 0xff51afd7ed558ccdULL;
	} else {
		return hb_ip_format(ip, buf);
	}
	c = &thread_iptext[(h * 0x9e3779b97f4a7c15ULL) >> 58];
	_Static_assert(IPTEXT_SLOTS == 64, "the index is the hash's top 6 bits");
	if (!ip_same(&c->ip, ip)) {
		c->len = (uint8_t)hb_ip_format(ip, c->text);
		c->ip = *ip;
	}
	memcpy(buf, c->text, HB_IP_STRLEN);
	return c->len;
}

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

/* "YYYY-MM-DDTHH:MM:SS" of a second since the epoch (19 bytes, no NUL). */
static void fmt_secs(uint64_t secs, char *b)
{
	unsigned sod = (unsigned)(secs % 86400), y, m, d;

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
}

/* "YYYY-MM-DDTHH:MM:SS.fffZ" with 3 or 6 fraction digits; same text as
 * clock_format_rfc3339() without gmtime_r/strftime on the hot path. `tc` (may be
 * NULL) keeps the text of the last second formatted. */
static inline size_t fmt_time(struct tcache *tc, uint64_t ns, int digits, char *b)
{
	uint64_t secs;
	unsigned frac;

	if (tc && tc->valid && ns - tc->start < NS_PER_SEC) {
		frac = (unsigned)(ns - tc->start); /* in the cached second: no division */
		memcpy(b, tc->text, 19);
	} else {
		secs = ns / NS_PER_SEC;
		frac = (unsigned)(ns % NS_PER_SEC);
		if (tc) {
			fmt_secs(secs, tc->text);
			tc->start = secs * NS_PER_SEC;
			tc->valid = true;
			memcpy(b, tc->text, 19);
		} else {
			fmt_secs(secs, b);
		}
	}
	b[19] = '.';
	if (digits == 6) {
		frac /= 1000; /* µs */
		memcpy(b + 20, hb_digit_pair(frac / 10000), 2);
		memcpy(b + 22, hb_digit_pair(frac / 100 % 100), 2);
		memcpy(b + 24, hb_digit_pair(frac % 100), 2);
	} else {
		frac /= 1000000; /* ms */
		b[20] = (char)('0' + frac / 100);
		memcpy(b + 21, hb_digit_pair(frac % 100), 2);
	}
	b[20 + digits] = 'Z';
	return 21 + (size_t)digits;
}

/* ---- derived fields -------------------------------------------------------- */

static struct ev_field *env_add(struct env *v, enum dkey_id id, uint8_t type, uint8_t flags)
{
	struct ev_field *f;

	if (v->n == v->cap) /* cannot happen: cap is sized for the worst case */
		return NULL;
	v->id[v->n] = (uint8_t)id;
	f = &v->f[v->n++];
	f->key = dkeys[id].key;
	f->member = NULL;
	f->elem = 0;
	f->type = type;
	f->flags = flags;
	return f;
}

static void env_strn(struct env *v, enum dkey_id id, const char *s, size_t len, uint8_t flags)
{
	struct ev_field *f = env_add(v, id, EV_T_STR, flags);

	if (f) {
		f->v.s.p = s;
		f->v.s.len = (uint32_t)len;
	}
}

static void env_str(struct env *v, enum dkey_id id, const char *s)
{
	if (s)
		env_strn(v, id, s, strlen(s), 0);
}

static void env_uint(struct env *v, enum dkey_id id, uint64_t u)
{
	struct ev_field *f = env_add(v, id, EV_T_UINT, 0);

	if (f)
		f->v.u = u;
}

/* An address formatted once per event (it appears up to seven times). */
static void env_ipstr(struct env *v, enum dkey_id id, const char *s, size_t len, uint8_t flags)
{
	if (len)
		env_strn(v, id, s, len, flags | ENC_PLAIN);
}

static void env_time(struct env *v, enum dkey_id id, uint64_t ns, int digits, char *buf)
{
	env_strn(v, id, buf, fmt_time(&thread_tcache, ns, digits, buf), ENC_PLAIN);
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

/* Every derived field, added in dkeys[] order: the ids never decrease, so the derived
 * ents need no sort. Transactions: packetbeat.md §2.1, ecosystem.md §1.2; metrics:
 * ecosystem.md §1.4 (event.dataset "system.cpu" → event.module "system",
 * metricset.name "cpu"). */
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

	env_time(v, D_TIMESTAMP, ev->ts, 3, v->ts);
	env_str(v, D_AGENT_EPHEMERAL_ID, o->agent_ephemeral_id);
	env_str(v, D_AGENT_ID, o->agent_id);
	env_str(v, D_AGENT_NAME, o->agent_name);
	env_str(v, D_AGENT_TYPE, o->agent_type);
	env_str(v, D_AGENT_VERSION, o->agent_version);
	if (legacy && cbytes)
		env_uint(v, D_BYTES_IN, ev->client_bytes);
	if (legacy && sbytes)
		env_uint(v, D_BYTES_OUT, ev->server_bytes);
	if (cbytes)
		env_uint(v, D_CLIENT_BYTES, ev->client_bytes);
	env_ipstr(v, D_CLIENT_IP, v->cip, v->cip_len, 0);
	if (ports)
		env_uint(v, D_CLIENT_PORT, ev->client_port);
	if (legacy) {
		env_ipstr(v, D_CLIENT_IP_LEGACY, v->cip, v->cip_len, 0);
		if (ports)
			env_uint(v, D_CLIENT_PORT_LEGACY, ev->client_port);
		env_uint(v, D_COUNT, 1);
	}
	if (sbytes)
		env_uint(v, D_DESTINATION_BYTES, ev->server_bytes);
	env_ipstr(v, D_DESTINATION_IP, v->sip, v->sip_len, 0);
	if (ports)
		env_uint(v, D_DESTINATION_PORT, ev->server_port);
	env_strn(v, D_ECS_VERSION, ECS_VERSION, sizeof(ECS_VERSION) - 1, ENC_PLAIN);
	if (tx) {
		env_strn(v, D_EVENT_CATEGORY, "network", 7, EVF_ARRAY | ENC_PLAIN);
		env_str(v, D_EVENT_DATASET, ev->dataset);
		if (times)
			env_uint(v, D_EVENT_DURATION, duration);
		if (ev->end_ns)
			env_time(v, D_EVENT_END, ev->end_ns, 6, v->end);
		env_strn(v, D_EVENT_KIND, "event", 5, ENC_PLAIN);
		if (ev->start_ns)
			env_time(v, D_EVENT_START, ev->start_ns, 6, v->start);
		env_strn(v, D_EVENT_TYPE, "connection", 10, EVF_ARRAY | ENC_PLAIN);
		env_strn(v, D_EVENT_TYPE, "protocol", 8, EVF_ARRAY | ENC_PLAIN);
	} else {
		env_str(v, D_EVENT_DATASET, ev->dataset);
		if (dot)
			env_strn(v, D_EVENT_MODULE, ev->dataset, (size_t)(dot - ev->dataset), 0);
	}
	env_str(v, D_HOST_NAME, o->host_name);
	if (legacy)
		env_ipstr(v, D_IP, v->sip, v->sip_len, 0);
	if (dot)
		env_str(v, D_METRICSET_NAME, dot + 1);
	if (cbytes && sbytes)
		env_uint(v, D_NETWORK_BYTES, ev->client_bytes + ev->server_bytes);
	if (tname && v->cip_len && v->sip_len && ev->community_id[0])
		env_strn(v, D_NETWORK_COMMUNITY_ID, ev->community_id,
			 strnlen(ev->community_id, sizeof(ev->community_id)), 0);
	else if (tname && v->cip_len && v->sip_len &&
		 community_id_v1(&ev->client_ip, &ev->server_ip, ev->client_port, ev->server_port,
				 ev->transport, 0, v->cid) == 0)
		env_str(v, D_NETWORK_COMMUNITY_ID, v->cid);
	if (tx)
		env_str(v, D_NETWORK_PROTOCOL, ev->dataset);
	if (tname)
		env_strn(v, D_NETWORK_TRANSPORT, tname, strlen(tname), ENC_PLAIN);
	if (v->cip_len)
		env_strn(v, D_NETWORK_TYPE, ev->client_ip.ver == 4 ? "ipv4" : "ipv6", 4, ENC_PLAIN);
	if (tx)
		env_str(v, D_OBSERVER_INTERFACE, ev->iface);
	if (legacy && ports)
		env_uint(v, D_PORT, ev->server_port);
	env_ipstr(v, D_RELATED_IP, v->cip, v->cip_len, EVF_ARRAY);
	env_ipstr(v, D_RELATED_IP, v->sip, v->sip_len, EVF_ARRAY);
	if (legacy && times)
		env_uint(v, D_RESPONSETIME, duration / NS_PER_MS);
	if (sbytes)
		env_uint(v, D_SERVER_BYTES, ev->server_bytes);
	env_ipstr(v, D_SERVER_IP, v->sip, v->sip_len, 0);
	if (ports)
		env_uint(v, D_SERVER_PORT, ev->server_port);
	if (cbytes)
		env_uint(v, D_SOURCE_BYTES, ev->client_bytes);
	env_ipstr(v, D_SOURCE_IP, v->cip, v->cip_len, 0);
	if (ports)
		env_uint(v, D_SOURCE_PORT, ev->client_port);
	if (status)
		env_strn(v, D_STATUS, status, strlen(status), ENC_PLAIN);
	for (i = 0; o->tags && i < o->tags->n; i++)
		if (o->tags->v[i])
			env_strn(v, D_TAGS, o->tags->v[i], strlen(o->tags->v[i]), EVF_ARRAY);
	if (legacy && tname)
		env_strn(v, D_TRANSPORT, tname, strlen(tname), ENC_PLAIN);
	if (tx)
		env_str(v, D_TYPE, ev->dataset);
}

/* ---- ordering -------------------------------------------------------------- */

/* Bytes [at, at + 8) of key k (len bytes) as a big-endian word, zero past the end,
 * '.' mapped to 1. Whole words are read only inside the key. */
static inline uint64_t key_word(const char *k, size_t len, size_t at)
{
	const uint64_t lo7 = 0x7f7f7f7f7f7f7f7fULL, hi = 0x8080808080808080ULL;
	uint64_t p = 0, x, dots;
	size_t i;

	if (len <= at)
		return 0;
	if (len >= 8) {
		/* the word at `at`, or the key's last 8 bytes shifted up to it */
		memcpy(&p, k + (len - at >= 8 ? at : len - 8), 8);
		if (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__)
			p = __builtin_bswap64(p);
		if (len - at < 8)
			p <<= 8 * (8 - (len - at));
	} else {
		for (i = at; i < len; i++)
			p = p << 8 | (uint8_t)k[i];
		p <<= 8 * (8 - (len - at));
	}
	/* exact per-byte test for '.', then '.' → 0x01 */
	x = p ^ 0x2e2e2e2e2e2e2e2eULL;
	dots = ~(((x & lo7) + lo7) | x | lo7) & hi;
	return p ^ (dots >> 7) * (0x2e ^ 0x01);
}

static void ent_key_words(struct ent *e, const char *k)
{
	size_t len = strlen(k);

	e->pfx = key_word(k, len, 0);
	e->pfx2 = key_word(k, len, 8);
	e->klen = (uint16_t)(len < UINT16_MAX ? len : UINT16_MAX);
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
	if (a->pfx2 != b->pfx2)
		return a->pfx2 < b->pfx2 ? -1 : 1;
	if (!(a->pfx2 & 0xff))
		return 0; /* both ended within 16 bytes */
	return key_cmp(a->f->key + 16, b->f->key + 16);
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
	if (a->pfx2 != b->pfx2)
		return a->pfx2 < b->pfx2;
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

#define RUNS_MAX 32  /* ascending runs merged as they are; more → merge sort */
#define ISORT_MAX 24 /* up to this many ents: insertion sort (fewer moves than merging) */

/* Sort the protocol ents. Parsers add their fields mostly in key order, in a few
 * ascending runs (the request's fields, then the response's; an answer's members):
 * find the runs and merge neighbours pairwise until one is left, or merge sort when
 * there are many. tmp holds n entries. */
static void ent_sort(struct ent *e, size_t n, struct ent *tmp)
{
	size_t b[RUNS_MAX + 1], nb = 0, i, k, m; /* run k is [b[k], b[k + 1]) */

	if (n <= ISORT_MAX) {
		ent_isort(e, n);
		return;
	}
	b[nb++] = 0;
	for (i = 1; i < n; i++) {
		if (!ent_lt(&e[i], &e[i - 1]))
			continue;
		if (nb == RUNS_MAX) {
			ent_msort(e, n, tmp);
			return;
		}
		b[nb++] = i;
	}
	b[nb] = n;
	while (nb > 1) {
		for (k = 0, m = 0; k < nb; k += 2, m++) {
			if (k + 1 < nb)
				ent_merge(e + b[k], b[k + 1] - b[k], b[k + 2] - b[k], tmp);
			b[m] = b[k];
		}
		b[m] = n;
		nb = m;
	}
}

/* Merge the sorted runs a[0, na) (derived) and b[0, nb) (protocol) into out; on equal
 * keys the derived ent goes first, as its seq is lower. */
static void ent_merge_into(const struct ent *a, size_t na, const struct ent *b, size_t nb,
			   struct ent *out)
{
	size_t i = 0, j = 0, k = 0;

	while (i < na && j < nb)
		out[k++] = ent_lt(&b[j], &a[i]) ? b[j++] : a[i++];
	if (i < na)
		memcpy(out + k, a + i, (na - i) * sizeof(*a));
	if (j < nb)
		memcpy(out + k, b + j, (nb - j) * sizeof(*b));
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

/* plain_byte() for the 8 bytes of x at once (SWAR): no byte < 0x20, >= 0x80, '"' or
 * '\\'. Each test is exact about "some byte matches", which is all that is asked. */
static inline bool plain_x(uint64_t x)
{
	const uint64_t ones = 0x0101010101010101ULL, hi = 0x8080808080808080ULL;
	uint64_t q = x ^ (ones * '"'), b = x ^ (ones * '\\');

	return !(((x - ones * 0x20) | x | ((q - ones) & ~q) | ((b - ones) & ~b)) & hi);
}

static inline bool plain_word(const char *s)
{
	uint64_t x;

	memcpy(&x, s, 8);
	return plain_x(x);
}

/* Every byte of s[0, len) is plain_byte(). From 8 bytes on, the last word is read
 * overlapping the one before: no byte loop. */
static bool plain_text(const char *s, size_t len)
{
	size_t i;

	if (len < 8) {
		for (i = 0; i < len; i++)
			if (!plain_byte((uint8_t)s[i]))
				return false;
		return true;
	}
	for (i = 0; len - i > 8; i += 8)
		if (!plain_word(s + i))
			return false;
	return plain_word(s + len - 8);
}

/* Copy s[0, len) to d and say whether every byte is plain_byte() (when not, d holds
 * a copy to be written over). Whole words, the last one overlapping the one before;
 * under 8 bytes two overlapping halves, or the first, middle and last byte: no
 * call, no loop per byte. */
static inline bool copy_plain(char *d, const char *s, size_t len)
{
	uint64_t x;
	uint32_t a, b;
	size_t i;

	if (len >= 8) {
		for (i = 0; len - i > 8; i += 8) {
			memcpy(&x, s + i, 8);
			if (!plain_x(x))
				return false;
			memcpy(d + i, &x, 8);
		}
		memcpy(&x, s + len - 8, 8);
		memcpy(d + len - 8, &x, 8);
		return plain_x(x);
	}
	if (len >= 4) {
		memcpy(&a, s, 4);
		memcpy(&b, s + len - 4, 4);
		memcpy(d, &a, 4);
		memcpy(d + len - 4, &b, 4);
		return plain_x((uint64_t)a << 32 | b);
	}
	if (!len)
		return true;
	d[0] = s[0];
	d[len / 2] = s[len / 2];
	d[len - 1] = s[len - 1];
	/* the three bytes (one, two or three of them) and five plain 'a's */
	x = (uint8_t)s[0] | (uint32_t)(uint8_t)s[len / 2] << 8 |
	    (uint32_t)(uint8_t)s[len - 1] << 16;
	return plain_x(x | 0x6161616161000000ULL);
}

/* Room for n more bytes at o->p + o->len; false when memory is short (err set). */
static inline bool room(struct strbuf *o, size_t n)
{
	return o->cap - o->len >= n || strbuf_grow(o, n) == 0;
}

/* pre + '"' + s + '"' + post in one copy when s is plain ASCII within cap (the
 * common case); pre/post are optional single characters ('\0' = none). */
static inline bool put_plain(struct strbuf *o, char pre, const char *s, size_t len, size_t cap,
			     char post)
{
	char *d;

	if (len > cap || !plain_text(s, len))
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

/* put_str_cap() of a string that needs escaping or cutting: runs of plain bytes
 * (8 at a time) copied, the rest one by one. */
static void put_str_esc(struct writer *w, const char *s, size_t len, size_t cap)
{
	static const char hex[] = "0123456789abcdef";
	/* the letter of a two-byte escape; 0: \u00XX */
	static const char esc2[0x60] = {['\b'] = 'b', ['\f'] = 'f', ['\n'] = 'n', ['\r'] = 'r',
					['\t'] = 't', ['"'] = '"',  ['\\'] = '\\'};
	const uint8_t *p = (const uint8_t *)s, *end = p + len, *run;
	struct strbuf *o = w->out;
	size_t budget = cap, n;
	char *d;
	int u;

	strbuf_putc(o, '"');
	while (p < end) {
		run = p;
		n = (size_t)(end - p) < budget ? (size_t)(end - p) : budget;
		while (n - (size_t)(p - run) >= 8 && plain_word((const char *)p))
			p += 8;
		while ((size_t)(p - run) < n && plain_byte(*p))
			p++;
		if (p > run) {
			strbuf_append(o, run, (size_t)(p - run));
			budget -= (size_t)(p - run);
		}
		if (p == end)
			break;
		if (budget == 0)
			goto truncated;
		if (!room(o, 6))
			return; /* err is set; the document is discarded */
		d = o->p + o->len;
		if (*p < 0x80) {
			d[0] = '\\';
			if (*p < sizeof(esc2) && esc2[*p]) {
				d[1] = esc2[*p];
				o->len += 2;
			} else {
				memcpy(d + 1, "u00", 3);
				d[4] = hex[*p >> 4];
				d[5] = hex[*p & 15];
				o->len += 6;
			}
			budget--;
			p++;
			continue;
		}
		u = utf8_next(p, (size_t)(end - p));
		if (u > 0) {
			if ((size_t)u > budget)
				goto truncated;
			d[0] = (char)p[0];
			d[1] = (char)p[1];
			if (u > 2)
				d[2] = (char)p[2];
			if (u > 3)
				d[3] = (char)p[3];
			o->len += (size_t)u;
			budget -= (size_t)u;
			p += u;
		} else {
			if (budget < 3)
				goto truncated;
			memcpy(d, "\xEF\xBF\xBD", 3); /* U+FFFD */
			o->len += 3;
			budget -= 3;
			p += -u;
		}
	}
	strbuf_putc(o, '"');
	return;
truncated:
	w->truncated++;
	strbuf_putc(o, '"');
}

/* A JSON string of at most `cap` bytes of UTF-8 content (before escaping): one copy
 * when it needs no escaping and fits (the common case, inline), else the escaper. */
static inline void put_str_cap(struct writer *w, const char *s, size_t len, size_t cap)
{
	if (!put_plain(w->out, 0, s, len, cap, 0))
		put_str_esc(w, s, len, cap);
}

static void put_u64(struct strbuf *o, uint64_t v)
{
	size_t n = u64_digits(v);

	if (!room(o, n))
		return; /* err is set; the document is discarded */
	hb_u64_text(v, o->p + o->len + n);
	o->len += n;
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
/* d = ±r / 10^k exactly (the double nearest that decimal) with k <= 6, r < 10^15 and
 * 1e-4 <= |d|: then "%.15g" prints exactly that decimal (15 digits are within a
 * double's precision; the exponent is in %g's fixed range) and it reads back as d,
 * so it is written here without printf. Covers the rounded fractions the sampler
 * writes (sys_round4); false for everything else. */
static bool put_double_short(struct strbuf *o, double d)
{
	static const double p10[] = {1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6};
	double a = fabs(d);
	uint64_t r = 0, ip, fp;
	unsigned k;
	char b[40], *p = b + sizeof(b);

	if (!(a >= 1e-4 && a < 1e15))
		return false;
	for (k = 0; k < sizeof(p10) / sizeof(p10[0]); k++) {
		double x = a * p10[k];

		if (x >= 1e15)
			return false;
		r = (uint64_t)(x + 0.5);
		if ((double)r / p10[k] == a)
			break;
	}
	if (k == sizeof(p10) / sizeof(p10[0]))
		return false;
	ip = r / (uint64_t)p10[k];
	fp = r % (uint64_t)p10[k];
	for (unsigned i = 0; i < k; i++, fp /= 10)
		*--p = (char)('0' + fp % 10); /* k is the least: the last digit is not 0 */
	if (k)
		*--p = '.';
	do
		*--p = (char)('0' + ip % 10);
	while (ip /= 10);
	if (d < 0)
		*--p = '-';
	strbuf_append(o, p, (size_t)(b + sizeof(b) - p));
	return true;
}

static void put_double(struct writer *w, double d)
{
	char b[40];
	int prec;

	if (put_double_short(w->out, d))
		return;
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
		n = fmt_time(NULL, f->v.u, 6, b);
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

/* A key split at its dots. The last written key's parent segments are the open
 * objects. */
struct kpath {
	const char *key;
	size_t len;
	unsigned depth;          /* dots: parent objects */
	bool plain;              /* no byte of the key needs escaping */
	uint32_t dot[MAX_DEPTH]; /* where they are */
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

/* Add the dots of the 8-byte word x read at key + at to k; m selects its bytes
 * still to look at (high bit of each). False past MAX_DEPTH. */
static inline bool kpath_dots(struct kpath *k, uint64_t x, uint64_t m, size_t at)
{
	const uint64_t lo7 = 0x7f7f7f7f7f7f7f7fULL;
	uint64_t y = x ^ 0x2e2e2e2e2e2e2e2eULL, dots = ~(((y & lo7) + lo7) | y | lo7) & m;
	unsigned b;

	while (dots) { /* exact: one bit per '.' byte */
		if (k->depth == MAX_DEPTH)
			return false;
		/* the byte of the lowest address first */
		if (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__) {
			b = (unsigned)__builtin_ctzll(dots) / 8;
			dots &= dots - 1;
		} else {
			b = (unsigned)__builtin_clzll(dots) / 8;
			dots &= ~(0x80ULL << (56 - 8 * b));
		}
		k->dot[k->depth++] = (uint32_t)(at + b);
	}
	return true;
}

/* Add the dots of key[from, len) to k (whose key and len are set) and clear k->plain
 * when a byte there (or just before, in the same word) needs escaping: a word at a
 * time. False past MAX_DEPTH. */
static bool kpath_scan(struct kpath *k, size_t from)
{
	const uint64_t hi = 0x8080808080808080ULL;
	const char *key = k->key;
	size_t len = k->len, i, rem;
	uint64_t x, m;

	if (len < 8) {
		for (i = from; i < len; i++) {
			k->plain = k->plain && plain_byte((uint8_t)key[i]);
			if (key[i] != '.')
				continue;
			if (k->depth == MAX_DEPTH)
				return false;
			k->dot[k->depth++] = (uint32_t)i;
		}
		return true;
	}
	for (i = from; len - i >= 8; i += 8) {
		memcpy(&x, key + i, 8);
		k->plain = k->plain && plain_x(x);
		if (!kpath_dots(k, x, hi, i))
			return false;
	}
	rem = len - i;
	if (rem) {
		/* the last 8 bytes, of which the last `rem` are new */
		memcpy(&x, key + len - 8, 8);
		k->plain = k->plain && plain_x(x);
		if (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__)
			m = hi << (8 * (8 - rem));
		else
			m = hi >> (8 * (8 - rem));
		if (!kpath_dots(k, x, m, len - 8))
			return false;
	}
	return true;
}

/* A protocol field's key: its dots and whether it needs escaping; false when it is
 * deeper than MAX_DEPTH. */
static bool kpath_split(struct kpath *k, const char *key)
{
	k->key = key;
	k->len = strlen(key);
	k->depth = 0;
	k->plain = true;
	return kpath_scan(k, 0);
}

static void kpath_derived(struct kpath *k, const struct dkey *dk)
{
	k->key = dk->key;
	k->len = dk->len;
	k->depth = dk->depth;
	k->plain = true;
	for (unsigned i = 0; i < dk->depth; i++)
		k->dot[i] = dk->kseg[i + 1] - 1u;
}

/* How many bytes a and b share from the start. */
static size_t common_len(const char *a, size_t alen, const char *b, size_t blen)
{
	size_t n = alen < blen ? alen : blen, i = 0;
	uint64_t x, y;

	for (; n - i >= 8; i += 8) {
		memcpy(&x, a + i, 8);
		memcpy(&y, b + i, 8);
		if (x != y)
			break;
	}
	while (i < n && a[i] == b[i])
		i++;
	return i;
}

/* Parent segments `k` shares with the last written key `prev`: its dots inside the
 * common bytes (`k` has a dot at the same place). */
static unsigned kpath_common(const struct kpath *prev, const struct kpath *k)
{
	size_t same = common_len(prev->key, prev->len, k->key, k->len);
	unsigned c = 0;

	while (c < prev->depth && prev->dot[c] < same)
		c++;
	return c;
}

/* kpath_split() and kpath_common() in one: the parents cur shares with the last
 * written key prev (NULL: none) are prev's dots inside their common bytes; only the
 * rest of the key is scanned (cur->plain covers the rest, from the first segment
 * not shared). Returns the shared parents, or -1 past MAX_DEPTH. */
static int kpath_next(const struct kpath *prev, struct kpath *cur, const char *key, size_t len)
{
	size_t same;
	unsigned c = 0;

	cur->key = key;
	cur->len = len;
	cur->plain = true;
	if (prev) {
		same = common_len(prev->key, prev->len, key, len);
		for (; c < prev->depth && prev->dot[c] < same; c++)
			cur->dot[c] = prev->dot[c];
	}
	cur->depth = c;
	if (!kpath_scan(cur, c ? cur->dot[c - 1] + 1u : 0))
		return -1;
	return (int)c;
}

/* kpath_common() of two derived keys, from their segment tables. */
static unsigned dkey_common(const struct dkey *prev, const struct dkey *k)
{
	unsigned c = 0, n;

	/* the keys up to and with the dot after segment c: by the prefixes when that is
	 * within 8 bytes (our literals hold no byte 0x01) */
	while (c < prev->depth && c < k->depth && (n = prev->kseg[c + 1]) == k->kseg[c + 1]) {
		if (n <= 8 ? (prev->pfx ^ k->pfx) >> (64 - 8 * n) != 0
			   : memcmp(prev->key, k->key, n) != 0)
			break;
		c++;
	}
	return c;
}

/* Close n objects. */
static void put_closes(struct strbuf *o, unsigned n)
{
	if (!n || !room(o, n))
		return;
	while (n--) /* one or two, nearly always: no call */
		o->p[o->len++] = '}';
}

/* [','] then the members of a derived key from segment `from` on, opening the
 * objects between them: one copy of the tail of its text. */
static void put_dpath(struct strbuf *o, bool comma, const struct dkey *dk, unsigned from)
{
	size_t n = (size_t)(dk->tlen - dk->tseg[from]);
	char *d;

	if (!room(o, DK_COPY + n + 1))
		return; /* err is set; the document is discarded */
	d = o->p + o->len;
	if (comma)
		*d++ = ',';
	/* a fixed-size copy (no call) when it fits; the bytes past n are spare room */
	if (n <= DK_COPY && dk->tseg[from] <= DK_COPY)
		memcpy(d, dk->text + dk->tseg[from], DK_COPY);
	else
		memcpy(d, dk->text + dk->tseg[from], n);
	o->len = (size_t)(d + n - o->p);
}

/* The same for a protocol field's key: "b":{"c": in one pass when those bytes need
 * no escaping (static code strings always), else segment by segment. */
static void put_path(struct writer *w, bool comma, const struct kpath *k, unsigned from)
{
	struct strbuf *o = w->out;
	size_t start = from ? k->dot[from - 1] + 1 : 0, end;
	unsigned seg;
	char *d;

	if (k->plain) {
		if (!room(o, k->len - start + 3 * (size_t)(k->depth - from) + 4))
			return; /* err is set; the document is discarded */
		d = o->p + o->len;
		if (comma)
			*d++ = ',';
		*d++ = '"';
		for (seg = from; seg < k->depth; seg++) {
			end = k->dot[seg];
			memcpy(d, k->key + start, end - start);
			d += end - start;
			memcpy(d, "\":{\"", 4);
			d += 4;
			start = end + 1;
		}
		memcpy(d, k->key + start, k->len - start);
		d += k->len - start;
		*d++ = '"';
		*d++ = ':';
		o->len = (size_t)(d - o->p);
		return;
	}
	for (seg = from; seg <= k->depth; seg++, comma = false) {
		end = seg < k->depth ? k->dot[seg] : k->len;
		put_key(w, comma, k->key + start, end - start);
		if (seg < k->depth)
			strbuf_putc(o, '{');
		start = end + 1;
	}
}

/* Static names are mostly distinct: settle most comparisons without a call. */
static inline bool same_str(const char *a, const char *b)
{
	return a == b || (a[0] == b[0] && strcmp(a, b) == 0);
}

/* put_value() of a protocol value; while a shape is recorded, its place and type. A
 * value of no known type is "null" every time: it stays in the skeleton. */
static void put_elem(struct writer *w, const struct ent *e)
{
	static const uint8_t kinds[] = {
	    [EV_T_STR] = V_STR,   [EV_T_INT] = V_INT,       [EV_T_UINT] = V_UINT,
	    [EV_T_BOOL] = V_BOOL, [EV_T_DOUBLE] = V_DOUBLE, [EV_T_IP] = V_IP,
	    [EV_T_TIME] = V_TIME,
	};
	size_t at = w->out->len;

	put_value(w, e);
	if (!w->rec)
		return;
	if (e->seq < w->nderived)
		w->rec->fail = true; /* not a field of the event (cannot happen) */
	else if (e->f->type < sizeof(kinds))
		rec_span(w->rec, at, w->out->len, (enum vkind)kinds[e->f->type],
			 (size_t)(e->f - w->fields), 0);
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
			put_elem(w, &e[j - 1]);
		}
		strbuf_putc(w->out, '}');
		k = m;
	}
	strbuf_putc(w->out, ']');
}

/* The EVF_ARRAY values of ents [0, n) as a JSON array; in a set, a value equal to
 * one of the first SET_SCAN_MAX before it is left out. */
static void put_array(struct writer *w, const struct ent *e, size_t n, bool is_set)
{
	size_t k, j;
	bool any = false;

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
		put_elem(w, &e[k]);
	}
	strbuf_putc(w->out, ']');
}

/* The value of one key: ents [0, n) share it. What is written depends on the
 * fields' members, elems and flags only — except in a set, where it depends on the
 * values too: a recorded shape keeps the rest as text between the values (and
 * counts the conflicts once), a set as a V_SET value. */
static void put_group(struct writer *w, const struct ent *e, size_t n)
{
	struct shape_rec *rec = w->rec;
	unsigned conflicts = w->conflicts;
	size_t k, first_member = n, nscalar = 0, at;

	if (n == 1 && !e->f->member && !(e->f->flags & EVF_ARRAY)) {
		put_elem(w, e); /* the common case: one scalar */
		return;
	}
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
	} else if (nscalar == n) {
		put_elem(w, &e[n - 1]);
	} else {
		if (nscalar)
			w->conflicts++; /* scalar and array under one key: the array wins */
		if (n - nscalar < 2 || e[0].pfx != KPFX("related.") ||
		    strncmp(e[0].f->key, "related.", 8) != 0) {
			put_array(w, e, n, false);
		} else if (!rec) {
			put_array(w, e, n, true);
		} else {
			at = w->out->len;
			w->rec = NULL;
			put_array(w, e, n, true);
			w->rec = rec;
			rec_span(rec, at, w->out->len, V_SET, (size_t)(e - w->ebase), n);
		}
	}
	if (rec)
		rec->conflicts += w->conflicts - conflicts;
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

/* Same key as e[i]: derived ents of one key share their dkeys[] index. */
static inline bool same_key(const struct ent *a, const struct ent *b)
{
	if (a->pfx != b->pfx || a->pfx2 != b->pfx2)
		return false;
	if (a->dk != DK_NONE && b->dk != DK_NONE)
		return a->dk == b->dk;
	return ent_key_cmp(a, b) == 0;
}

static void put_ents(struct writer *w, const struct ent *e, size_t n)
{
	struct kpath kp[2], *prev = NULL, *cur = &kp[0];
	const struct dkey *prev_dk = NULL; /* prev's dkey, when it was a derived key */
	unsigned common, open = 0;         /* open objects = the parents of prev */
	size_t i, j;

	strbuf_putc(w->out, '{');
	for (i = 0; i < n; i = j) {
		const struct dkey *dk = e[i].dk != DK_NONE ? &dkeys[e[i].dk] : NULL;

		for (j = i + 1; j < n && same_key(&e[j], &e[i]); j++)
			;
		if (dk && prev_dk && (j == n || e[j].dk != DK_NONE)) {
			/* derived after derived, followed by a derived key or nothing: no key
			 * of dkeys[] is inside another one, so only the nesting changes */
			common = dkey_common(prev_dk, dk);
			put_closes(w->out, open - common);
			put_dpath(w->out, true, dk, common);
			open = dk->depth;
			prev_dk = dk;
			prev = NULL;
			put_group(w, e + i, j - i);
			continue;
		}
		if (dk) {
			kpath_derived(cur, dk);
		} else if (!kpath_split(cur, e[i].f->key)) {
			w->conflicts++; /* deeper than MAX_DEPTH */
			continue;
		}
		if (j < n && ent_inside(&e[i], cur->len, &e[j])) {
			w->conflicts++; /* "a" and "a.b": keep the object */
			continue;
		}
		/* close the open objects that are not parents of this key, open the rest;
		 * a member follows another one at its level unless it is the first key */
		if (prev_dk && !prev) {
			prev = cur == &kp[0] ? &kp[1] : &kp[0];
			kpath_derived(prev, prev_dk);
		}
		common = prev ? kpath_common(prev, cur) : 0;
		put_closes(w->out, open - common);
		if (dk)
			put_dpath(w->out, prev != NULL, dk, common);
		else
			put_path(w, prev != NULL, cur, common);
		open = cur->depth;
		prev = cur;
		prev_dk = dk;
		cur = prev == &kp[0] ? &kp[1] : &kp[0];
		put_group(w, e + i, j - i);
	}
	put_closes(w->out, open);
	strbuf_putc(w->out, '}');
}

/* ---- fast path ------------------------------------------------------------- */

/* encode_fast() could not write this event: the general path does. */
#define FAST_BAIL 1
/* seq below this: derived values put_group() writes (related.ip's two) */
#define FAST_NDERIVED 2
/* Room per derived key besides its member path: the longest value that is not
 * per-event text (related.ip, two addresses) and the fixed-size copy's overshoot. */
#define FAST_VALUE_ROOM (2 * HB_IP_STRLEN + 8 + DK_COPY)

/* The per-options values, each a JSON value ready to copy; len 0 = not written. */
struct encode_tmpl {
	/* identity of the options it was built from (encode_event() checks it) */
	const char *agent_name, *agent_version, *agent_type, *agent_id, *agent_ephemeral_id;
	const char *host_name;
	const struct cfg_strlist *tags;
	struct strbuf text;
	uint32_t off[D_NKEYS], len[D_NKEYS];
	uint8_t common[D_NKEYS][D_NKEYS]; /* dkey_common() of every pair */
	size_t room;                      /* bytes an envelope writes, besides the event's text */
	struct shape_cache *cache;        /* NULL when memory was short (see "shape cache") */
};

struct shape_cache;
static struct shape_cache *shape_cache_new(void);

static void tmpl_value(struct encode_tmpl *t, struct writer *w, enum dkey_id id, const char *s)
{
	size_t at = t->text.len;

	if (!s)
		return;
	put_str_cap(w, s, strlen(s), SIZE_MAX);
	t->off[id] = (uint32_t)at;
	t->len[id] = (uint32_t)(t->text.len - at);
}

struct encode_tmpl *encode_tmpl_new(const struct encode_opts *o)
{
	struct encode_tmpl *t;
	struct writer w = {0};
	size_t i, j, at, n = 0;

	if (!o)
		return NULL;
	t = hb_calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->agent_name = o->agent_name;
	t->agent_version = o->agent_version;
	t->agent_type = o->agent_type;
	t->agent_id = o->agent_id;
	t->agent_ephemeral_id = o->agent_ephemeral_id;
	t->host_name = o->host_name;
	t->tags = o->tags;
	strbuf_init(&t->text);
	w.out = &t->text;
	tmpl_value(t, &w, D_AGENT_EPHEMERAL_ID, o->agent_ephemeral_id);
	tmpl_value(t, &w, D_AGENT_ID, o->agent_id);
	tmpl_value(t, &w, D_AGENT_NAME, o->agent_name);
	tmpl_value(t, &w, D_AGENT_TYPE, o->agent_type);
	tmpl_value(t, &w, D_AGENT_VERSION, o->agent_version);
	tmpl_value(t, &w, D_HOST_NAME, o->host_name);
	/* tags: the array put_group() writes for them (no set semantics) */
	at = t->text.len;
	for (i = 0; o->tags && i < o->tags->n; i++) {
		if (!o->tags->v[i])
			continue;
		strbuf_putc(&t->text, n++ ? ',' : '[');
		put_str_cap(&w, o->tags->v[i], strlen(o->tags->v[i]), SIZE_MAX);
	}
	if (n) {
		strbuf_putc(&t->text, ']');
		t->off[D_TAGS] = (uint32_t)at;
		t->len[D_TAGS] = (uint32_t)(t->text.len - at);
	}
	for (i = 0; i < D_NKEYS; i++) {
		t->room += dkeys[i].tlen + 1u + dkeys[i].depth + FAST_VALUE_ROOM;
		for (j = 0; j < D_NKEYS; j++)
			t->common[i][j] = (uint8_t)dkey_common(&dkeys[i], &dkeys[j]);
	}
	/* the template's values; '{' '}'; the objects a protocol key left open */
	t->room += t->text.len + 2 + MAX_DEPTH;
	if (t->text.err || t->text.len > UINT32_MAX) {
		encode_tmpl_free(t);
		return NULL;
	}
	t->cache = shape_cache_new(); /* without it: the same bytes, slower */
	return t;
}

void encode_tmpl_free(struct encode_tmpl *t)
{
	if (!t)
		return;
	hb_free(t->cache);
	strbuf_free(&t->text);
	hb_free(t);
}

static bool tmpl_matches(const struct encode_tmpl *t, const struct encode_opts *o)
{
	return t->agent_name == o->agent_name && t->agent_version == o->agent_version &&
	       t->agent_type == o->agent_type && t->agent_id == o->agent_id &&
	       t->agent_ephemeral_id == o->agent_ephemeral_id && t->host_name == o->host_name &&
	       t->tags == o->tags;
}

/* The envelope writer: derived keys in dkeys[] order straight from the event, the
 * sorted protocol ents merged in before the first derived key they sort below.
 * Writes what put_ents() writes for the same ents; gives up (bail) where the two
 * kinds of keys would meet as "a" and "a.b", or as one group other than related.ip —
 * the general path settles those. Room for the derived part is reserved up front
 * (and again after protocol fields were written): derived keys and values are stored
 * unchecked through a cursor `d`, the end of the document; out->len is brought up to
 * date only around protocol fields. A NULL cursor means the fast path gave up. */
struct fast {
	struct writer *w;
	const struct encode_tmpl *t;
	const struct ent *base;    /* the sorted protocol ents */
	struct shape_rec *rec;     /* NULL, or where the values are recorded */
	const struct ent *p, *end; /* protocol ents still to write */
	uint64_t next_pfx;         /* p->pfx; UINT64_MAX when none is left */
	struct kpath kp[2], *prev; /* the last written key when it was a protocol key */
	int prev_dk;               /* the last written key when it was a derived one, else -1 */
	unsigned open;             /* open objects = the parents of the last written key */
	size_t room;
	bool bail;
};

/* Key of protocol ent e sorts below derived key dk (equal keys: not below). */
static inline bool ent_below_dk(const struct ent *e, const struct dkey *dk)
{
	if (e->pfx != dk->pfx)
		return e->pfx < dk->pfx;
	if (e->pfx2 != dk->pfx2)
		return e->pfx2 < dk->pfx2;
	if (!(e->pfx2 & 0xff))
		return false; /* the same key of at most 15 bytes */
	return key_cmp(e->f->key + 16, dk->key + 16) < 0;
}

static bool ent_is_dk(const struct ent *e, const struct dkey *dk)
{
	return e->pfx == dk->pfx && e->pfx2 == dk->pfx2 &&
	       (!(e->pfx2 & 0xff) || key_cmp(e->f->key + 16, dk->key + 16) == 0);
}

static void fast_next(struct fast *f, const struct ent *p)
{
	f->p = p;
	f->next_pfx = p < f->end ? p->pfx : UINT64_MAX;
}

/* A derived value written at [start, end) of the output. */
static inline void rec_value(struct fast *f, const char *start, const char *end, enum vkind k)
{
	const char *p = f->w->out->p;

	if (f->rec)
		rec_span(f->rec, (size_t)(start - p), (size_t)(end - p), k, 0, 0);
}

/* Write the protocol groups that sort below `next` (NULL: all that are left). */
static void fast_flush(struct fast *f, const struct dkey *next)
{
	struct writer *w = f->w;
	const struct ent *e = f->p, *g;
	struct kpath *cur, *prev;
	unsigned common;
	int rc;

	if (f->prev_dk >= 0 &&
	    (ent_is_dk(e, &dkeys[f->prev_dk]) || is_inside(dkeys[f->prev_dk].key, e->f->key))) {
		f->bail = true; /* one group with a derived key, or inside it */
		return;
	}
	while (e < f->end && (!next || ent_below_dk(e, next))) {
		for (g = e + 1; g < f->end && same_key(g, e); g++)
			;
		cur = f->prev == &f->kp[0] ? &f->kp[1] : &f->kp[0];
		prev = f->prev;
		if (f->prev_dk >= 0) {
			prev = cur == &f->kp[0] ? &f->kp[1] : &f->kp[0];
			kpath_derived(prev, &dkeys[f->prev_dk]);
		}
		rc = kpath_next(prev, cur, e->f->key,
				e->klen < UINT16_MAX ? e->klen : strlen(e->f->key));
		if (rc < 0) {
			w->conflicts++; /* deeper than MAX_DEPTH */
			if (f->rec)
				f->rec->conflicts++;
			e = g;
			continue;
		}
		common = (unsigned)rc;
		if (g < f->end && (!next || ent_below_dk(g, next))) {
			if (ent_inside(e, cur->len, g)) {
				w->conflicts++; /* "a" and "a.b": keep the object */
				if (f->rec)
					f->rec->conflicts++;
				e = g;
				continue;
			}
		} else if (next && is_inside(e->f->key, next->key)) {
			f->bail = true; /* a derived key inside this one */
			return;
		}
		put_closes(w->out, f->open - common);
		put_path(w, prev != NULL, cur, common);
		f->open = cur->depth;
		f->prev = cur;
		f->prev_dk = -1;
		put_group(w, e, (size_t)(g - e)); /* records its values */
		e = g;
	}
	fast_next(f, e);
}

/* The member path of derived key dk from segment `from` on. */
static inline char *dput_path(char *d, const struct dkey *dk, unsigned common)
{
	unsigned from = dk->tseg[common], n = dk->tlen - from;

	if (n <= DK_COPY && from <= DK_COPY)
		memcpy(d, dk->text + from, DK_COPY); /* bytes past the path are spare room */
	else
		memcpy(d, dk->text + from, n);
	return d + n;
}

/* fast_key() after a protocol key, before the first key, or with protocol keys to
 * write first. */
static char *fast_key_slow(struct fast *f, char *d, enum dkey_id id)
{
	const struct dkey *dk = &dkeys[id];
	struct strbuf *o = f->w->out;
	unsigned common = 0, n;

	o->len = (size_t)(d - o->p);
	if (f->p < f->end && ent_below_dk(f->p, dk)) {
		fast_flush(f, dk);
		if (f->bail)
			return NULL;
		if (!room(o, f->room)) {
			f->bail = true; /* err is set: the caller returns -ENOMEM */
			return NULL;
		}
		d = o->p + o->len;
	}
	if (f->prev_dk >= 0) {
		common = f->t->common[f->prev_dk][id];
		for (n = dkeys[f->prev_dk].depth - common; n; n--)
			*d++ = '}';
		*d++ = ',';
	} else if (f->prev) {
		struct kpath *cur = f->prev == &f->kp[0] ? &f->kp[1] : &f->kp[0];

		kpath_derived(cur, dk);
		common = kpath_common(f->prev, cur);
		for (n = f->open - common; n; n--)
			*d++ = '}';
		*d++ = ',';
	}
	f->prev_dk = (int)id;
	f->prev = NULL;
	f->open = dk->depth;
	return dput_path(d, dk, common);
}

/* Open derived key `id` at d: close the objects it is not in, write its member
 * path; returns where its value goes (NULL once given up). */
static inline char *fast_key(struct fast *f, char *d, enum dkey_id id)
{
	const struct dkey *dk = &dkeys[id];
	unsigned common;

	if (!d)
		return NULL;
	if (f->prev_dk < 0 || f->next_pfx <= dk->pfx)
		return fast_key_slow(f, d, id);
	/* after a derived key: nothing can be inside either */
	common = f->t->common[f->prev_dk][id];
	memcpy(d, "}}}", DK_MAX_SEG - 1); /* the closes needed, and spare room */
	d += dkeys[f->prev_dk].depth - common;
	*d++ = ',';
	f->prev_dk = (int)id;
	f->open = dk->depth;
	return dput_path(d, dk, common);
}

static inline char *dput_str(char *d, const char *s, size_t n)
{
	*d++ = '"';
	memcpy(d, s, n);
	d[n] = '"';
	return d + n + 1;
}

/* '"' + the address + '"', or null when it is none (as put_value() writes it);
 * HB_IP_STRLEN + 2 bytes of room. */
static inline char *dput_ip(char *d, const struct hb_ip *ip)
{
	size_t n = ip_text(ip, d + 1);

	if (!n) {
		memcpy(d, "null", 4);
		return d + 4;
	}
	d[0] = '"';
	d[n + 1] = '"';
	return d + n + 2;
}

static inline char *dput_u64(char *d, uint64_t v)
{
	d += u64_digits(v);
	hb_u64_text(v, d);
	return d;
}

/* A string of plain ASCII (no escaping needed); vk: what it is, for the recorder. */
static inline char *fast_str(struct fast *f, char *d, enum dkey_id id, enum vkind vk, const char *s,
			     size_t n)
{
	char *v = fast_key(f, d, id);

	if (!v)
		return NULL;
	d = dput_str(v, s, n);
	rec_value(f, v, d, vk);
	return d;
}

static inline char *fast_uint(struct fast *f, char *d, enum dkey_id id, enum vkind vk, uint64_t u)
{
	char *v = fast_key(f, d, id);

	if (!v)
		return NULL;
	d = dput_u64(v, u);
	rec_value(f, v, d, vk);
	return d;
}

/* A JSON value as it is: the template's, or a literal. */
static inline char *fast_json(struct fast *f, char *d, enum dkey_id id, const char *json, size_t n)
{
	d = fast_key(f, d, id);
	if (d) {
		memcpy(d, json, n);
		d += n;
	}
	return d;
}

static inline char *fast_tmpl(struct fast *f, char *d, enum dkey_id id)
{
	if (!f->t->len[id])
		return d;
	return fast_json(f, d, id, f->t->text.p + f->t->off[id], f->t->len[id]);
}

/* '"' + the time + '"': what shape_write() writes for it as well. */
static inline char *dput_time(char *d, struct tcache *tc, uint64_t ns, int digits)
{
	*d++ = '"';
	d += fmt_time(tc, ns, digits, d);
	*d++ = '"';
	return d;
}

static inline char *fast_time(struct fast *f, char *d, enum dkey_id id, enum vkind vk,
			      struct tcache *tc, uint64_t ns, int digits)
{
	char *v = fast_key(f, d, id);

	if (!v)
		return NULL;
	d = dput_time(v, tc, ns, digits);
	rec_value(f, v, d, vk);
	return d;
}

/* Protocol ents on related.ip that join the derived group, at most (more: general path). */
#define FAST_RELATED_MAX 64

static void fast_ipent(struct ev_field *df, struct ent *e, const char *s, size_t n, uint32_t seq)
{
	const struct dkey *dk = &dkeys[D_RELATED_IP];

	*df = (struct ev_field){.key = dk->key, .type = EV_T_STR, .flags = EVF_ARRAY | ENC_PLAIN};
	df->v.s.p = s;
	df->v.s.len = (uint32_t)n;
	*e =
	    (struct ent){.pfx = dk->pfx, .pfx2 = dk->pfx2, .f = df, .seq = seq, .dk = D_RELATED_IP};
}

/* related.ip as one set: the derived addresses first (their seq is below
 * w->nderived, as in the general path), then the parser's ents e[0, n) (n at most
 * FAST_RELATED_MAX), written by put_group(). */
static void put_related_set(struct writer *w, const char *c, size_t cn, const char *s, size_t sn,
			    const struct ent *e, size_t n)
{
	struct ev_field df[2];
	struct ent set[2 + FAST_RELATED_MAX];
	size_t k = 0;

	if (cn)
		fast_ipent(&df[k], &set[k], c, cn, (uint32_t)k), k++;
	if (sn)
		fast_ipent(&df[k], &set[k], s, sn, (uint32_t)k), k++;
	memcpy(set + k, e, n * sizeof(*set));
	put_group(w, set, k + n);
}

/* The parser added to related.ip: one group with the derived values. */
static char *fast_related_set(struct fast *f, char *d, const char *c, size_t cn, const char *s,
			      size_t sn)
{
	struct strbuf *o = f->w->out;
	const struct ent *g, *e;
	size_t at;

	for (g = f->p; g < f->end && same_key(g, f->p); g++)
		;
	if ((size_t)(g - f->p) > FAST_RELATED_MAX) {
		f->bail = true;
		return NULL;
	}
	o->len = at = (size_t)(d - o->p);
	f->w->rec = NULL; /* which values are written depends on them: one slot */
	put_related_set(f->w, c, cn, s, sn, f->p, (size_t)(g - f->p));
	f->w->rec = f->rec;
	if (f->rec) {
		for (e = f->p; e < g; e++)
			if (!(e->f->flags & EVF_ARRAY) || e->f->member || e->f->type != EV_T_IP)
				break;
		rec_span(f->rec, at, o->len, e == g ? V_RELATED_IP : V_RELATED,
			 (size_t)(f->p - f->base), (size_t)(g - f->p));
	}
	fast_next(f, g);
	if (!room(o, f->room)) {
		f->bail = true; /* err is set: the caller returns -ENOMEM */
		return NULL;
	}
	return o->p + o->len;
}

/* related.ip: client then server, a duplicate skipped (value_eq() of two strings). */
static inline char *fast_related_ip(struct fast *f, char *d, const char *c, size_t cn,
				    const char *s, size_t sn)
{
	char *v;

	if (!cn && !sn)
		return d;
	d = fast_key(f, d, D_RELATED_IP);
	if (!d)
		return NULL;
	if (f->next_pfx == dkeys[D_RELATED_IP].pfx && ent_is_dk(f->p, &dkeys[D_RELATED_IP]))
		return fast_related_set(f, d, c, cn, s, sn);
	*d++ = '[';
	if (cn) {
		v = d;
		d = dput_str(d, c, cn);
		rec_value(f, v, d, V_CIP);
	}
	if (sn && !(cn == sn && memcmp(c, s, cn) == 0)) {
		if (cn)
			*d++ = ',';
		v = d;
		d = dput_str(d, s, sn);
		rec_value(f, v, d, V_SIP);
	}
	*d++ = ']';
	return d;
}

#define LIT(s) s, sizeof(s) - 1

/* The envelope as encode_fast() writes it, worked out once per event (fenv_prep(),
 * fenv_text()); it also tells the shapes apart (shape_env()). */
struct fenv {
	bool tx, legacy, ports, cbytes, sbytes, times, same_ip;
	uint64_t duration;
	const char *tname, *status, *ds, *dot, *iface, *cid;
	size_t cip_len, sip_len, ds_len, iface_len, cid_len, tn;
	char cip[HB_IP_STRLEN], sip[HB_IP_STRLEN], cidbuf[COMMUNITY_ID_LEN];
};

/* Every byte of the NUL-terminated s is plain_byte(); *len gets strlen(s). */
static bool plain_strz(const char *s, size_t *len)
{
	*len = strlen(s);
	return plain_text(s, *len);
}

/* What the shape cache needs: the envelope bits, the addresses and the Community
 * ID. */
static void fenv_prep(struct fenv *v, const struct event *ev, const struct encode_opts *o)
{
	bool tx = ev->kind == EV_KIND_TRANSACTION, tuple = tx && ev->has_tuple;
	bool icmp = ev->transport == IPPROTO_ICMP || ev->transport == IPPROTO_ICMPV6;

	v->tx = tx;
	v->legacy = tx && o->legacy_fields;
	v->ports = tuple && !icmp;
	v->cbytes = tx && ev->has_client_bytes;
	v->sbytes = tx && ev->has_server_bytes;
	v->times = tx && ev->start_ns && ev->end_ns;
	v->duration = v->times && ev->end_ns > ev->start_ns ? ev->end_ns - ev->start_ns : 0;
	v->tname = tx ? transport_name(ev->transport) : NULL;
	v->ds = ev->dataset;
	v->iface = tx ? ev->iface : NULL;
	v->cid = NULL;
	v->cid_len = 0;
	v->cip_len = v->sip_len = 0;
	if (tuple) {
		v->cip_len = ip_text(&ev->client_ip, v->cip);
		v->sip_len = ip_text(&ev->server_ip, v->sip);
	}
	/* the same text: both none, or the same address (one text per address) */
	v->same_ip =
	    v->cip_len == v->sip_len && (!v->cip_len || ip_same(&ev->client_ip, &ev->server_ip));
	if (v->tname && v->cip_len && v->sip_len) {
		if (ev->community_id[0]) {
			/* checked by fenv_text(), or by shape_write() as it copies it;
			 * all of the array when there is no NUL */
			v->cid = ev->community_id;
			v->cid_len = strnlen(v->cid, sizeof(ev->community_id));
		} else if (community_id_v1(&ev->client_ip, &ev->server_ip, ev->client_port,
					   ev->server_port, ev->transport, 0, v->cidbuf) == 0) {
			v->cid = v->cidbuf;
			v->cid_len = strlen(v->cid);
		}
	}
}

/* The rest of what encode_fast() writes: the static strings' lengths and names.
 * 0, or FAST_BAIL when the dataset, interface or Community ID needs escaping (they
 * are copied as they are). Not needed for an event of a recorded shape: the
 * skeleton holds the text of the first two (which was plain). */
static int fenv_text(struct fenv *v, const struct event *ev)
{
	if (v->cid && !plain_text(v->cid, v->cid_len))
		return FAST_BAIL;
	v->tn = v->tname ? strlen(v->tname) : 0;
	v->status = v->tx ? ev_status_name(ev->status) : NULL;
	v->ds_len = v->iface_len = 0;
	v->dot = NULL;
	if (v->ds && !plain_strz(v->ds, &v->ds_len))
		return FAST_BAIL;
	if (v->iface && !plain_strz(v->iface, &v->iface_len))
		return FAST_BAIL;
	if (!v->tx && ev->kind == EV_KIND_METRIC && v->ds) {
		v->dot = strchr(v->ds, '.');
		if (v->dot && (v->dot == v->ds || !v->dot[1]))
			v->dot = NULL;
	}
	return 0;
}

/* The document of env_build() + put_ents() for events the fast path handles: 0,
 * FAST_BAIL, or -ENOMEM. pe: the protocol ents, sorted. With rec, where each value
 * that differs between events of one shape went is recorded (enum vkind): the
 * calls below say what each one is. */
static int encode_fast(const struct event *ev, const struct fenv *v, const struct encode_tmpl *t,
		       struct writer *w, const struct ent *pe, size_t np, struct shape_rec *rec)
{
	bool tx = v->tx, legacy = v->legacy, ports = v->ports;
	bool cbytes = v->cbytes, sbytes = v->sbytes, times = v->times;
	const char *ds = v->ds, *dot = v->dot;
	size_t ds_len = v->ds_len;
	struct strbuf *out = w->out;
	struct tcache *tc = &thread_tcache;
	struct fast f;
	char *d;

	f.w = w;
	f.t = t;
	f.base = pe;
	f.rec = rec;
	f.end = pe + np;
	fast_next(&f, pe);
	f.prev = NULL;
	f.prev_dk = -1;
	f.open = 0;
	f.bail = false;
	f.room = t->room + 4 * (ds_len + 2) + v->iface_len + v->cid_len;
	if (!room(out, f.room))
		return -ENOMEM;
	d = out->p + out->len;
	*d++ = '{';

	d = fast_time(&f, d, D_TIMESTAMP, V_TS, tc, ev->ts, 3);
	d = fast_tmpl(&f, d, D_AGENT_EPHEMERAL_ID);
	d = fast_tmpl(&f, d, D_AGENT_ID);
	d = fast_tmpl(&f, d, D_AGENT_NAME);
	d = fast_tmpl(&f, d, D_AGENT_TYPE);
	d = fast_tmpl(&f, d, D_AGENT_VERSION);
	if (legacy && cbytes)
		d = fast_uint(&f, d, D_BYTES_IN, V_CBYTES, ev->client_bytes);
	if (legacy && sbytes)
		d = fast_uint(&f, d, D_BYTES_OUT, V_SBYTES, ev->server_bytes);
	if (cbytes)
		d = fast_uint(&f, d, D_CLIENT_BYTES, V_CBYTES, ev->client_bytes);
	if (v->cip_len)
		d = fast_str(&f, d, D_CLIENT_IP, V_CIP, v->cip, v->cip_len);
	if (ports)
		d = fast_uint(&f, d, D_CLIENT_PORT, V_CPORT, ev->client_port);
	if (legacy) {
		if (v->cip_len)
			d = fast_str(&f, d, D_CLIENT_IP_LEGACY, V_CIP, v->cip, v->cip_len);
		if (ports)
			d = fast_uint(&f, d, D_CLIENT_PORT_LEGACY, V_CPORT, ev->client_port);
		d = fast_uint(&f, d, D_COUNT, V_NONE, 1);
	}
	if (sbytes)
		d = fast_uint(&f, d, D_DESTINATION_BYTES, V_SBYTES, ev->server_bytes);
	if (v->sip_len)
		d = fast_str(&f, d, D_DESTINATION_IP, V_SIP, v->sip, v->sip_len);
	if (ports)
		d = fast_uint(&f, d, D_DESTINATION_PORT, V_SPORT, ev->server_port);
	d = fast_json(&f, d, D_ECS_VERSION, LIT("\"" ECS_VERSION "\""));
	if (tx) {
		d = fast_json(&f, d, D_EVENT_CATEGORY, LIT("[\"network\"]"));
		if (ds)
			d = fast_str(&f, d, D_EVENT_DATASET, V_NONE, ds, ds_len);
		if (times)
			d = fast_uint(&f, d, D_EVENT_DURATION, V_DURATION, v->duration);
		if (ev->end_ns)
			d = fast_time(&f, d, D_EVENT_END, V_END, tc, ev->end_ns, 6);
		d = fast_json(&f, d, D_EVENT_KIND, LIT("\"event\""));
		if (ev->start_ns)
			d = fast_time(&f, d, D_EVENT_START, V_START, tc, ev->start_ns, 6);
		d = fast_json(&f, d, D_EVENT_TYPE, LIT("[\"connection\",\"protocol\"]"));
	} else {
		if (ds)
			d = fast_str(&f, d, D_EVENT_DATASET, V_NONE, ds, ds_len);
		if (dot)
			d = fast_str(&f, d, D_EVENT_MODULE, V_NONE, ds, (size_t)(dot - ds));
	}
	d = fast_tmpl(&f, d, D_HOST_NAME);
	if (legacy && v->sip_len)
		d = fast_str(&f, d, D_IP, V_SIP, v->sip, v->sip_len);
	if (dot)
		d = fast_str(&f, d, D_METRICSET_NAME, V_NONE, dot + 1,
			     ds_len - (size_t)(dot + 1 - ds));
	if (cbytes && sbytes)
		d = fast_uint(&f, d, D_NETWORK_BYTES, V_NBYTES,
			      ev->client_bytes + ev->server_bytes);
	if (v->cid)
		d = fast_str(&f, d, D_NETWORK_COMMUNITY_ID, V_CID, v->cid, v->cid_len);
	if (tx && ds)
		d = fast_str(&f, d, D_NETWORK_PROTOCOL, V_NONE, ds, ds_len);
	if (v->tname)
		d = fast_str(&f, d, D_NETWORK_TRANSPORT, V_NONE, v->tname, v->tn);
	if (v->cip_len)
		d = fast_str(&f, d, D_NETWORK_TYPE, V_NONE,
			     ev->client_ip.ver == 4 ? "ipv4" : "ipv6", 4);
	if (v->iface)
		d = fast_str(&f, d, D_OBSERVER_INTERFACE, V_NONE, v->iface, v->iface_len);
	if (legacy && ports)
		d = fast_uint(&f, d, D_PORT, V_SPORT, ev->server_port);
	d = fast_related_ip(&f, d, v->cip, v->cip_len, v->sip, v->sip_len);
	if (legacy && times)
		d = fast_uint(&f, d, D_RESPONSETIME, V_RESPMS, v->duration / NS_PER_MS);
	if (sbytes)
		d = fast_uint(&f, d, D_SERVER_BYTES, V_SBYTES, ev->server_bytes);
	if (v->sip_len)
		d = fast_str(&f, d, D_SERVER_IP, V_SIP, v->sip, v->sip_len);
	if (ports)
		d = fast_uint(&f, d, D_SERVER_PORT, V_SPORT, ev->server_port);
	if (cbytes)
		d = fast_uint(&f, d, D_SOURCE_BYTES, V_CBYTES, ev->client_bytes);
	if (v->cip_len)
		d = fast_str(&f, d, D_SOURCE_IP, V_CIP, v->cip, v->cip_len);
	if (ports)
		d = fast_uint(&f, d, D_SOURCE_PORT, V_CPORT, ev->client_port);
	if (v->status)
		d = fast_str(&f, d, D_STATUS, V_NONE, v->status, strlen(v->status));
	d = fast_tmpl(&f, d, D_TAGS);
	if (legacy && v->tname)
		d = fast_str(&f, d, D_TRANSPORT, V_NONE, v->tname, v->tn);
	if (tx && ds)
		d = fast_str(&f, d, D_TYPE, V_NONE, ds, ds_len);
	if (!d)
		return out->err ? -ENOMEM : FAST_BAIL;
	out->len = (size_t)(d - out->p);
	if (f.p < f.end) {
		fast_flush(&f, NULL);
		if (f.bail)
			return FAST_BAIL;
	}
	put_closes(out, f.open);
	strbuf_putc(out, '}');
	return out->err ? -ENOMEM : 0;
}

/* ---- public ---------------------------------------------------------------- */

/* The protocol fields as ents, seq from `base` on, sorted unless they came in order;
 * tmp is scratch for ev->nfields entries. Returns how many. */
static size_t proto_ents(const struct event *ev, struct ent *pe, uint32_t base, struct ent *tmp)
{
	size_t i, np = 0;

	for (i = 0; i < ev->nfields; i++) {
		if (!ev->fields[i].key)
			continue;
		ent_key_words(&pe[np], ev->fields[i].key);
		pe[np].f = &ev->fields[i];
		pe[np].seq = (uint32_t)(base + np);
		pe[np].dk = DK_NONE;
		np++;
	}
	ent_sort(pe, np, tmp);
	return np;
}

static void writer_init(struct writer *w, const struct encode_opts *o, struct strbuf *out,
			uint32_t nderived)
{
	w->out = out;
	w->max_string = o->max_string ? o->max_string : ENCODE_DEFAULT_MAX_STRING;
	w->nderived = nderived;
	w->conflicts = w->truncated = w->non_finite = 0;
	w->rec = NULL;
	w->fields = NULL;
	w->ebase = NULL;
}

/* Anomalies are rare: the counter lookup happens only when one occurred. */
static void count_anomalies_slow(const struct writer *w)
{
	if (w->conflicts)
		metric_add(metrics_counter("encode.key_conflicts"), w->conflicts);
	if (w->truncated)
		metric_add(metrics_counter("encode.truncated_strings"), w->truncated);
	if (w->non_finite)
		metric_add(metrics_counter("encode.non_finite"), w->non_finite);
}

static inline void count_anomalies(const struct writer *w)
{
	if (w->conflicts | w->truncated | w->non_finite)
		count_anomalies_slow(w);
}

/* ---- shape cache ----------------------------------------------------------- */

/* Events of one kind from one parser come with the same protocol keys in the same
 * order and the same envelope: one "shape". For a shape everything in the document
 * but the values is the same every time: the sort, the nesting, the keys, the
 * agent's text. The first event of a shape is written by encode_fast(), which
 * records where each per-event value went (enum vkind); the document without them
 * is the shape's skeleton. The next events of the shape are written as skeleton
 * text, value, skeleton text, value, ...: derived values straight from the event,
 * protocol values by their type straight from their field. A key's group — a
 * scalar, the last of several, an array, an array of objects with its member
 * names — is written the same way for every event of the shape, so all of it but
 * the values is skeleton text; only a related.* set (which values are duplicates
 * differs from event to event) is written whole each time. (On the bench capture,
 * 320 k events of 8 protocols in 32 shapes: 54 % fewer instructions per document
 * than without the cache, about half the time, when each group was still written
 * by put_group(); caching only the sorted order saved a tenth. Groups as skeleton
 * text, with cheaper values and lookups, took another 46 % off: a DNS event
 * 15.8 k -> 6.7 k instructions, HTTP 8.5 k -> 4.4 k, the others ~4 k -> ~2.5 k.)
 *
 * A shape is: the envelope bits that decide which derived keys are written and the
 * text they bake in (shape_env(): kind, status, transport, IP version, legacy,
 * which of bytes, ports, times, addresses and Community ID there are, client ==
 * server address), the dataset and interface pointers (static strings: their text
 * is in the skeleton), and for each protocol field its key, member, elem, type and
 * flags (field_form(): they decide the group's text and how a value is written). The
 * options' agent, host and tags are the template's, which owns the cache. A lookup
 * first tries the entry the last event of the same envelope, dataset and field
 * count used (a hint), else hashes all of that but the forms and looks in two
 * sets; an entry is used only when every part is equal, never on a hash or a hint
 * alone. Keys are compared by pointer (event.h: static strings), except a key
 * in the event's arena (HTTP header names): its text is hashed, copied into the
 * entry and compared. An event whose arena grew chunks (a key may be in one) or
 * that has more than SHAPE_FIELDS fields does not use the cache.
 *
 * A shape the skeleton cannot hold (the fast path gives up on it, more than
 * SHAPE_SLOTS values, too much text) is kept as a negative entry: its events go to
 * the uncached path without recording again.
 *
 * Bounded: SHAPE_SETS x SHAPE_WAYS entries of fixed size, allocated with the
 * template. A shape may go to two sets (two parts of its hash); when all their
 * entries are taken, the least recently used one is replaced, counted in
 * "encode.shape_evictions". Thread-safety: any number of threads may use one
 * template; the cache is taken with an atomic flag (never waited for), and a thread
 * that finds it taken encodes without it. Same bytes either way.
 */

#define SHAPE_SETS 16   /* power of two */
#define SHAPE_WAYS 4    /* entries per set */
#define SHAPE_FIELDS 96 /* protocol fields of a cached shape, at most */
#define SHAPE_TEXT 2048 /* skeleton bytes */
#define SHAPE_KEYS 256  /* bytes of key text copied from the event's arena */
#define SHAPE_PAD 32    /* skeleton pieces up to this long are copied with a fixed size */
#define SHAPE_NOCOPY UINT16_MAX
#define SHAPE_VALUE_ROOM 64 /* the longest value of bounded size, quoted */

_Static_assert(HB_IP_STRLEN + 2 <= SHAPE_VALUE_ROOM && TS_LEN + 2 <= SHAPE_VALUE_ROOM &&
		   COMMUNITY_ID_LEN + 2 <= SHAPE_VALUE_ROOM && 21 <= SHAPE_VALUE_ROOM,
	       "a value of bounded size (an address, a time, an int64) fits SHAPE_VALUE_ROOM");
_Static_assert(SHAPE_TEXT < UINT16_MAX && SHAPE_KEYS < SHAPE_NOCOPY, "16-bit offsets");
_Static_assert((SHAPE_SETS & (SHAPE_SETS - 1)) == 0, "SHAPE_SETS is a power of two");

struct shape_field {
	const char *key; /* the event's pointer (compared as such unless copied) */
	const char *member;
	uint32_t form; /* field_form() */
	uint16_t copy; /* offset of the key's text in keys[], or SHAPE_NOCOPY */
};

/* The value that goes at text[at]; the last slot (V_NONE) marks the text's end. */
struct shape_slot {
	uint16_t at;
	uint8_t kind;      /* enum vkind */
	uint16_t first, n; /* a protocol value: ev->fields[first]; V_SET, V_RELATED*: the
			      fields perm[first, first + n) */
};

struct shape {
	bool valid;
	bool skeleton; /* false: a negative entry (the uncached path writes it) */
	uint64_t hash, env, used;
	const char *ds, *iface;
	uint16_t nfields;
	unsigned conflicts; /* key conflicts of every document of this shape */
	struct shape_field f[SHAPE_FIELDS];
	uint16_t perm[SHAPE_FIELDS]; /* sorted position → index in ev->fields */
	struct shape_slot slot[SHAPE_SLOTS + 1];
	char keys[SHAPE_KEYS];
	char text[SHAPE_TEXT + SHAPE_PAD];
};

#define SHAPE_HINTS 64 /* power of two */

struct shape_cache {
	atomic_flag busy; /* taken by the thread using the cache */
	uint64_t clock;   /* for least recently used */
	struct metric *evictions;
	/* the entry the last event of an envelope, dataset and field count used:
	 * tried first (shape_same() decides), which saves the hash when it is right */
	struct shape *hint[SHAPE_HINTS];
	struct shape e[SHAPE_SETS * SHAPE_WAYS];
};

static struct shape_cache *shape_cache_new(void)
{
	struct shape_cache *c = hb_calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	atomic_flag_clear(&c->busy);
	c->evictions = metrics_counter("encode.shape_evictions");
	return c;
}

static inline uint64_t shape_mix(uint64_t h, uint64_t x)
{
	h = (h ^ x) * 0x9e3779b97f4a7c15ULL;
	return h ^ h >> 29;
}

/* p is in the event's inline arena (with no chunks, the whole arena). */
static inline bool in_arena(const struct event *ev, const void *p)
{
	return (uintptr_t)p - (uintptr_t)ev->inline_arena < EV_INLINE_ARENA;
}

/* A hash of a key's text, 8 bytes at a time (only bytes of the key are read). */
static uint64_t text_hash(const char *s)
{
	size_t len = strlen(s), i;
	uint64_t h = len, x;

	for (i = 0; len - i > 8; i += 8) {
		memcpy(&x, s + i, 8);
		h = shape_mix(h, x);
	}
	if (len >= 8) {
		memcpy(&x, s + len - 8, 8); /* the last word, overlapping the one before */
	} else {
		for (x = 0; i < len; i++)
			x = x << 8 | (uint8_t)s[i];
	}
	return shape_mix(h, x);
}

/* What of a protocol field besides its key and member decides its text in the
 * document: its type, its flags and (of an object member) its element, adjacent in
 * struct ev_field and read as one word. A field that is no member has elem 0
 * (event.c); compared all the same, it could only make two shapes of one. */
static inline uint32_t field_form(const struct ev_field *f)
{
	uint32_t x;

	memcpy(&x, (const char *)f + offsetof(struct ev_field, elem), sizeof(x));
	return x;
}

_Static_assert(offsetof(struct ev_field, type) == offsetof(struct ev_field, elem) + 2 &&
		   offsetof(struct ev_field, flags) == offsetof(struct ev_field, elem) + 3,
	       "field_form() reads elem, type and flags as one word");

/* The envelope part of the shape (struct fenv + the event): what decides the
 * derived keys and the text baked into the skeleton. */
static uint64_t shape_env(const struct event *ev, const struct fenv *v)
{
	return ((uint64_t)ev->kind & 0xf) | ((uint64_t)ev->status & 0xf) << 4 |
	       (uint64_t)ev->transport << 8 | (uint64_t)(ev->client_ip.ver == 4) << 16 |
	       (uint64_t)v->legacy << 17 | (uint64_t)v->ports << 18 | (uint64_t)v->cbytes << 19 |
	       (uint64_t)v->sbytes << 20 | (uint64_t)(ev->start_ns != 0) << 21 |
	       (uint64_t)(ev->end_ns != 0) << 22 | (uint64_t)(v->cip_len != 0) << 23 |
	       (uint64_t)(v->sip_len != 0) << 24 | (uint64_t)(v->cid != NULL) << 25 |
	       (uint64_t)v->same_ip << 26;
}

/* Whether the event may use the cache at all: its keys and members must be
 * comparable by pointer or by the text of keys in its inline arena. */
static bool shape_usable(const struct event *ev, const struct fenv *v)
{
	return !ev->chunks && ev->nfields <= SHAPE_FIELDS && !in_arena(ev, v->ds) &&
	       !in_arena(ev, v->iface);
}

/* The lookup hash; false when the event may not use the cache (a member in its
 * arena). It picks the sets only (shape_same() decides), so it leaves out the
 * fields' forms, which seldom tell shapes apart: a multiply per field. */
static bool shape_hash(const struct event *ev, const struct fenv *v, uint64_t env, uint64_t *hash)
{
	const uint64_t k = 0x9e3779b97f4a7c15ULL;
	uint64_t h = shape_mix(env, ev->nfields), x;
	size_t i;

	h = shape_mix(shape_mix(h, (uintptr_t)v->ds), (uintptr_t)v->iface);
	for (i = 0; i < ev->nfields; i++) {
		const struct ev_field *fl = &ev->fields[i];

		x = in_arena(ev, fl->key) ? text_hash(fl->key) : (uintptr_t)fl->key;
		if (fl->member) {
			if (in_arena(ev, fl->member))
				return false;
			x += ((uintptr_t)fl->member + fl->elem) * k;
		}
		h = (h ^ x) * k;
	}
	*hash = shape_mix(h, 0);
	return true;
}

/* The hint for the event's envelope, dataset and field count. */
static struct shape **shape_hint(struct shape_cache *c, const struct event *ev,
				 const struct fenv *v, uint64_t env)
{
	uint64_t h = shape_mix(shape_mix(env, (uintptr_t)v->ds), ev->nfields);

	return &c->hint[h >> 32 & (SHAPE_HINTS - 1)];
}

/* The entry is this event's shape: every part compared. */
static bool shape_same(const struct shape *s, uint64_t env, const struct fenv *v,
		       const struct event *ev)
{
	size_t i;

	if (s->env != env || s->ds != v->ds || s->iface != v->iface || s->nfields != ev->nfields)
		return false;
	for (i = 0; i < ev->nfields; i++) {
		const struct ev_field *fl = &ev->fields[i];
		const struct shape_field *sf = &s->f[i];

		if (fl->member != sf->member || field_form(fl) != sf->form)
			return false;
		if (sf->copy == SHAPE_NOCOPY) {
			if (fl->key != sf->key)
				return false;
		} else if (!fl->key || strcmp(s->keys + sf->copy, fl->key) != 0) {
			return false; /* the arena may hold other text at the same address */
		}
	}
	return true;
}

/* Make s this event's shape (no skeleton yet); false when its arena keys do not fit. */
static bool shape_set_key(struct shape *s, uint64_t hash, uint64_t env, const struct fenv *v,
			  const struct event *ev)
{
	size_t i, n, kn = 0;

	for (i = 0; i < ev->nfields; i++) {
		const struct ev_field *fl = &ev->fields[i];
		struct shape_field *sf = &s->f[i];

		sf->key = fl->key;
		sf->member = fl->member;
		sf->form = field_form(fl);
		sf->copy = SHAPE_NOCOPY;
		if (!in_arena(ev, fl->key))
			continue;
		n = strlen(fl->key) + 1;
		if (n > SHAPE_KEYS - kn)
			return false;
		memcpy(s->keys + kn, fl->key, n);
		sf->copy = (uint16_t)kn;
		kn += n;
	}
	s->hash = hash;
	s->env = env;
	s->ds = v->ds;
	s->iface = v->iface;
	s->nfields = ev->nfields;
	s->skeleton = false;
	return true;
}

/* The document out->p[pos, end) without the values r recorded becomes s's skeleton;
 * false when it does not fit. pe: the sorted protocol ents it was written from. */
static bool shape_skeleton(struct shape *s, const struct shape_rec *r, const char *p, size_t pos,
			   size_t end, const struct event *ev, const struct ent *pe, size_t np)
{
	size_t at = 0, next, i;
	unsigned k;

	for (k = 0; k <= r->n; k++) {
		struct shape_slot *sl = &s->slot[k];

		next = k < r->n ? r->v[k].start : end;
		if (next < pos || next - pos > SHAPE_TEXT - at)
			return false;
		memcpy(s->text + at, p + pos, next - pos);
		at += next - pos;
		sl->at = (uint16_t)at;
		sl->kind = V_NONE;
		if (k == r->n)
			break;
		sl->kind = r->v[k].kind;
		sl->first = r->v[k].first;
		sl->n = r->v[k].n;
		pos = r->v[k].end;
	}
	for (i = 0; i < np; i++)
		s->perm[i] = (uint16_t)(pe[i].f - ev->fields);
	s->conflicts = r->conflicts;
	return true;
}

/* A set slot's ents rebuilt in the recorded order (e holds sl->n). Their key is
 * related.ip's or another related.* one; put_group() looks at the prefix only to
 * tell a related.* key, put_array() not at all. */
static void shape_ents(struct ent *e, const struct shape *s, const struct shape_slot *sl,
		       const struct event *ev)
{
	unsigned i;

	for (i = 0; i < sl->n; i++) {
		e[i].pfx = KPFX("related.ip");
		e[i].pfx2 = 0;
		e[i].f = &ev->fields[s->perm[sl->first + i]];
		e[i].seq = FAST_NDERIVED; /* a protocol value (put_value()) */
		e[i].klen = 0;
		e[i].dk = DK_NONE;
	}
}

/* put_related_set() when the parser's values are all addresses (array elements),
 * as DNS adds its answers: the same set with every value an address. Two values
 * are equal when the addresses are (ip_same(), value_eq() of two addresses): for
 * the client's and server's, which put_related_set() compares as text, that is the
 * same, as hb_ip_format() is inet_ntop() — one text per address, and a v4 text is
 * never a v6 one. Each address's text comes from ip_text(). */
static void put_related_ips(struct writer *w, const struct event *ev, const struct fenv *v,
			    const uint16_t *idx, size_t n)
{
	const struct hb_ip *set[2 + FAST_RELATED_MAX];
	struct strbuf *o = w->out;
	size_t k = 0, i, j;
	bool any = false;
	char *d;

	if (v->cip_len)
		set[k++] = &ev->client_ip;
	if (v->sip_len)
		set[k++] = &ev->server_ip;
	for (i = 0; i < n; i++)
		set[k++] = &ev->fields[idx[i]].v.ip;
	if (!room(o, 2 + k * (HB_IP_STRLEN + 3)))
		return; /* err is set; the document is discarded */
	d = o->p + o->len;
	*d++ = '[';
	for (i = 0; i < k; i++) {
		for (j = 0; j < i && j < SET_SCAN_MAX; j++)
			if (ip_same(set[j], set[i]))
				break;
		if (j < i && j < SET_SCAN_MAX)
			continue;
		if (any)
			*d++ = ',';
		any = true;
		d = dput_ip(d, set[i]);
	}
	*d++ = ']';
	o->len = (size_t)(d - o->p);
}

/* Bytes of room after each piece of skeleton text: the fixed-size copy's overshoot,
 * then a value of bounded size, or a string of up to SHAPE_ROOM - 2 bytes. */
#define SHAPE_ROOM (SHAPE_PAD + SHAPE_VALUE_ROOM)

/* The text of a number that a document holds twice or more (client.bytes and
 * source.bytes, ...), formatted the first time; len 0 = not yet. */
struct numtext {
	uint8_t len;
	char text[23];
};

static inline char *dput_u64_memo(char *d, uint64_t v, struct numtext *t)
{
	if (!t->len) {
		t->len = (uint8_t)u64_digits(v);
		hb_u64_text(v, t->text + t->len);
	}
	memcpy(d, t->text, 20); /* UINT64_MAX has 20 digits */
	return d + t->len;
}

/* '"' + an address's text (n bytes of the HB_IP_STRLEN of buf) + '"', copied with a
 * fixed size. */
static inline char *dput_iptext(char *d, const char *buf, size_t n)
{
	d[0] = '"';
	memcpy(d + 1, buf, HB_IP_STRLEN);
	d[n + 1] = '"';
	return d + n + 2;
}

/* d and end again after a value was written through out. */
static inline char *out_sync(const struct strbuf *o, char **end)
{
	*end = o->p + o->cap;
	return o->p + o->len;
}

/* The document of an event of shape s: skeleton text and values in turn. 0 or
 * -ENOMEM. Values that fit SHAPE_ROOM are written through the cursor d, the others
 * through out. */
static int shape_write(const struct shape *s, const struct event *ev, const struct fenv *v,
		       struct writer *w)
{
	struct strbuf *o = w->out;
	struct tcache *tc = &thread_tcache;
	const struct shape_slot *sl;
	const struct ev_field *f;
	struct ent e[SHAPE_FIELDS];
	struct numtext cbytes, sbytes, cport, sport;
	unsigned pos = 0, n;
	const char *str;
	size_t len, cap;
	char *d, *end;

	if (!room(o, SHAPE_ROOM))
		return -ENOMEM;
	d = out_sync(o, &end);
	cbytes.len = sbytes.len = cport.len = sport.len = 0;
	for (sl = s->slot;; sl++) {
		n = sl->at - pos;
		if ((size_t)(end - d) < n + SHAPE_ROOM) {
			o->len = (size_t)(d - o->p);
			if (!room(o, n + SHAPE_ROOM))
				return -ENOMEM;
			d = out_sync(o, &end);
		}
		/* a fixed-size copy (no call) when it fits; the bytes past n are spare room,
		 * and text[] has SHAPE_PAD bytes past SHAPE_TEXT */
		if (n <= SHAPE_PAD)
			memcpy(d, s->text + pos, SHAPE_PAD);
		else
			memcpy(d, s->text + pos, n);
		d += n;
		pos = sl->at;
		switch ((enum vkind)sl->kind) {
		case V_NONE: /* the end */
		default:
			o->len = (size_t)(d - o->p);
			return o->err ? -ENOMEM : 0;
		case V_TS:
			d = dput_time(d, tc, ev->ts, 3);
			continue;
		case V_START:
			d = dput_time(d, tc, ev->start_ns, 6);
			continue;
		case V_END:
			d = dput_time(d, tc, ev->end_ns, 6);
			continue;
		case V_DURATION:
			d = dput_u64(d, v->duration);
			continue;
		case V_RESPMS:
			d = dput_u64(d, v->duration / NS_PER_MS);
			continue;
		case V_CBYTES:
			d = dput_u64_memo(d, ev->client_bytes, &cbytes);
			continue;
		case V_SBYTES:
			d = dput_u64_memo(d, ev->server_bytes, &sbytes);
			continue;
		case V_NBYTES:
			d = dput_u64(d, ev->client_bytes + ev->server_bytes);
			continue;
		case V_CPORT:
			d = dput_u64_memo(d, ev->client_port, &cport);
			continue;
		case V_SPORT:
			d = dput_u64_memo(d, ev->server_port, &sport);
			continue;
		case V_CIP:
			d = dput_iptext(d, v->cip, v->cip_len);
			continue;
		case V_SIP:
			d = dput_iptext(d, v->sip, v->sip_len);
			continue;
		case V_CID:
			/* a string: fenv_prep() left its check to the copy (one that needs
			 * escaping is escaped, as the general path does) */
			str = v->cid;
			len = v->cid_len;
			cap = SIZE_MAX;
			break;
		case V_STR:
			f = &ev->fields[sl->first];
			str = f->v.s.p;
			len = f->v.s.len;
			cap = w->max_string;
			break; /* a string */
		case V_INT:
			f = &ev->fields[sl->first];
			if (f->v.i < 0) {
				*d++ = '-';
				d = dput_u64(d, (uint64_t)0 - (uint64_t)f->v.i);
			} else {
				d = dput_u64(d, (uint64_t)f->v.i);
			}
			continue;
		case V_UINT:
			d = dput_u64(d, ev->fields[sl->first].v.u);
			continue;
		case V_BOOL:
			f = &ev->fields[sl->first];
			memcpy(d, f->v.b ? "true" : "false", 5);
			d += f->v.b ? 4 : 5;
			continue;
		case V_IP:
			d = dput_ip(d, &ev->fields[sl->first].v.ip);
			continue;
		case V_TIME:
			d = dput_time(d, NULL, ev->fields[sl->first].v.u, 6);
			continue;
		case V_DOUBLE:
			o->len = (size_t)(d - o->p);
			put_double(w, ev->fields[sl->first].v.d);
			d = out_sync(o, &end);
			continue;
		case V_SET:
			o->len = (size_t)(d - o->p);
			shape_ents(e, s, sl, ev);
			put_array(w, e, sl->n, true);
			d = out_sync(o, &end);
			continue;
		case V_RELATED:
			o->len = (size_t)(d - o->p);
			shape_ents(e, s, sl, ev);
			put_related_set(w, v->cip, v->cip_len, v->sip, v->sip_len, e, sl->n);
			d = out_sync(o, &end);
			continue;
		case V_RELATED_IP:
			o->len = (size_t)(d - o->p);
			put_related_ips(w, ev, v, s->perm + sl->first, sl->n);
			d = out_sync(o, &end);
			continue;
		}
		/* a string: put_str_cap()'s common case in place */
		if (len <= SHAPE_ROOM - 2 && len <= cap && copy_plain(d + 1, str, len)) {
			d[0] = '"';
			d[len + 1] = '"';
			d += len + 2;
			continue;
		}
		o->len = (size_t)(d - o->p);
		put_str_cap(w, str, len, cap);
		d = out_sync(o, &end);
	}
}

/* proto_ents() + encode_fast(): 0, -ENOMEM, or FAST_BAIL (out holds a partial
 * document). With s (an entry keyed for this event's shape), the document's values
 * are recorded and s gets its skeleton, or becomes a negative entry. */
static int encode_fast_ents(const struct event *ev, const struct encode_opts *o, struct fenv *v,
			    struct strbuf *out, struct shape *s)
{
	struct ent estack[2 * ENT_STACK], *pe = estack, *eheap = NULL;
	struct shape_rec rec;
	struct writer w;
	size_t np, start = out->len;
	int rc;

	if (fenv_text(v, ev) != 0) {
		if (s) {
			s->valid = true; /* a negative entry: the general path writes the shape */
			s->skeleton = false;
		}
		return FAST_BAIL;
	}
	if (ev->nfields > ENT_STACK) {
		eheap = hb_malloc(2 * (size_t)ev->nfields * sizeof(*eheap));
		if (!eheap)
			return -ENOMEM;
		pe = eheap;
	}
	/* seq 0 and 1 are for the derived related.ip values (fast_related_ip()) */
	np = proto_ents(ev, pe, FAST_NDERIVED,
			pe + (ev->nfields > ENT_STACK ? ev->nfields : ENT_STACK));
	writer_init(&w, o, out, FAST_NDERIVED);
	rec.n = 0;
	rec.fail = false;
	rec.conflicts = 0;
	w.rec = s ? &rec : NULL;
	w.fields = ev->fields;
	w.ebase = pe;
	rc = encode_fast(ev, v, o->tmpl, &w, pe, np, w.rec);
	if (rc != FAST_BAIL)
		count_anomalies(&w);
	if (s) {
		s->valid = rc != -ENOMEM;
		s->skeleton = rc == 0 && !rec.fail &&
			      shape_skeleton(s, &rec, out->p, start, out->len, ev, pe, np);
	}
	hb_free(eheap);
	return rc;
}

/* An event of the shape of entry s: from its skeleton, or (a negative entry) by
 * encode_fast_ents(). 0, -ENOMEM or FAST_BAIL. */
static int shape_use(struct shape_cache *c, struct shape *s, const struct event *ev,
		     const struct encode_opts *o, struct fenv *v, struct strbuf *out)
{
	struct writer w;
	int rc;

	s->used = ++c->clock;
	if (!s->skeleton)
		return encode_fast_ents(ev, o, v, out, NULL);
	writer_init(&w, o, out, FAST_NDERIVED);
	w.conflicts = s->conflicts;
	rc = shape_write(s, ev, v, &w);
	count_anomalies(&w);
	return rc;
}

/* encode_fast_ents() through the cache: 0, -ENOMEM or FAST_BAIL. */
static int encode_shaped(struct shape_cache *c, const struct event *ev, const struct encode_opts *o,
			 struct fenv *v, struct strbuf *out)
{
	uint64_t env = shape_env(ev, v), hash;
	struct shape *set[2], *s, **hint;
	unsigned i;

	if (!shape_usable(ev, v))
		return encode_fast_ents(ev, o, v, out, NULL);
	/* The hint's entry was recorded from an event shape_hash() accepted: when it
	 * is this event's shape, so are this event's members (the same pointers). */
	hint = shape_hint(c, ev, v, env);
	s = *hint;
	if (s && s->valid && shape_same(s, env, v, ev))
		return shape_use(c, s, ev, o, v, out);
	if (!shape_hash(ev, v, env, &hash))
		return encode_fast_ents(ev, o, v, out, NULL);
	/* two sets to choose from: shapes that meet in one set spread over the other */
	set[0] = &c->e[(hash >> 32 & (SHAPE_SETS - 1)) * SHAPE_WAYS];
	set[1] = &c->e[(hash >> 48 & (SHAPE_SETS - 1)) * SHAPE_WAYS];
	for (i = 0; i < 2 * SHAPE_WAYS; i++) {
		s = &set[i / SHAPE_WAYS][i % SHAPE_WAYS];
		if (s->valid && s->hash == hash && shape_same(s, env, v, ev)) {
			*hint = s;
			return shape_use(c, s, ev, o, v, out);
		}
	}
	/* a miss: an empty entry of the two sets, else the least recently used one */
	s = set[0];
	for (i = 0; i < 2 * SHAPE_WAYS; i++) {
		struct shape *x = &set[i / SHAPE_WAYS][i % SHAPE_WAYS];

		if (!x->valid) {
			s = x;
			break;
		}
		if (x->used < s->used)
			s = x;
	}
	if (s->valid)
		metric_inc(c->evictions);
	s->valid = false;
	if (!shape_set_key(s, hash, env, v, ev))
		return encode_fast_ents(ev, o, v, out, NULL);
	s->used = ++c->clock;
	*hint = s;
	return encode_fast_ents(ev, o, v, out, s);
}

/* With a template: 0, -ENOMEM, or FAST_BAIL (out holds a partial document). */
static int encode_tmpl_event(const struct event *ev, const struct encode_opts *o,
			     struct strbuf *out)
{
	struct shape_cache *c = o->tmpl->cache;
	struct fenv v;
	int rc;

	fenv_prep(&v, ev, o);
	if (!c || o->no_shape_cache ||
	    atomic_flag_test_and_set_explicit(&c->busy, memory_order_acquire))
		return encode_fast_ents(ev, o, &v, out, NULL);
	rc = encode_shaped(c, ev, o, &v, out);
	atomic_flag_clear_explicit(&c->busy, memory_order_release);
	return rc;
}

/* The general path: derived fields as ev_fields, one merged sort, put_ents(). */
static int encode_general(const struct event *ev, const struct encode_opts *o, struct strbuf *out)
{
	struct ev_field dstack[ENV_STACK];
	uint8_t idstack[ENV_STACK];
	struct ent estack[2 * ENT_STACK]; /* the merged ents, then the two runs */
	struct ev_field *dheap = NULL;
	struct ent *ents = estack, *runs = estack + ENT_STACK, *eheap = NULL;
	struct env env;
	struct writer w;
	size_t start = out->len, ntags, np, nmax, i;
	int rc = 0;

	ntags = o->tags ? o->tags->n : 0;
	env.f = dstack;
	env.id = idstack;
	env.cap = ENV_STACK;
	env.n = 0;
	if (ENV_FIXED + ntags > ENV_STACK) {
		/* the fields, then their ids */
		dheap = hb_malloc((ENV_FIXED + ntags) * (sizeof(*dheap) + 1));
		if (!dheap) {
			rc = -ENOMEM;
			goto out;
		}
		env.f = dheap;
		env.id = (uint8_t *)(dheap + ENV_FIXED + ntags);
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
		runs = eheap + nmax;
	}
	/* derived: runs[0, env.n), in key order by construction */
	for (i = 0; i < env.n; i++) {
		runs[i].pfx = dkeys[env.id[i]].pfx;
		runs[i].pfx2 = dkeys[env.id[i]].pfx2;
		runs[i].f = &env.f[i];
		runs[i].seq = (uint32_t)i;
		runs[i].dk = env.id[i];
	}
	/* protocol fields after them (ents is scratch until the merge) */
	np = proto_ents(ev, runs + env.n, env.n, ents);
	ent_merge_into(runs, env.n, runs + env.n, np, ents);

	writer_init(&w, o, out, env.n);
	put_ents(&w, ents, env.n + np);
	count_anomalies(&w);
	if (out->err)
		rc = -ENOMEM;
out:
	if (rc < 0)
		strbuf_truncate(out, start);
	hb_free(eheap);
	hb_free(dheap);
	return rc;
}

int encode_event(const struct event *ev, const struct encode_opts *o, struct strbuf *out)
{
	size_t start;
	int rc = FAST_BAIL;

	if (!ev || !o || !out)
		return -EINVAL;
	start = out->len;
	if (o->tmpl && tmpl_matches(o->tmpl, o)) {
		rc = encode_tmpl_event(ev, o, out);
		if (rc != 0)
			strbuf_truncate(out, start);
	}
	if (rc == FAST_BAIL)
		rc = encode_general(ev, o, out);
	return rc;
}

/* The date of the last day encode_index_name() named, per thread, and its text
 * "-YYYY.MM.DD" with the NUL (when the year has four digits). */
static _Thread_local struct {
	uint64_t day;
	unsigned y, m, d;
	bool valid;
	char text[12];
} index_day;

void encode_index_name(const struct event *ev, char *buf, size_t size)
{
	/* NUL-padded: 16 bytes of each can be copied */
	static const struct {
		char text[17];
		uint8_t len;
	} prefixes[] = {{"packetbeat", 10}, {"topbeat", 7}, {"hostbeat-metrics", 16}};
	unsigned k = ev->kind == EV_KIND_TRANSACTION ? 0 : ev->kind == EV_KIND_METRIC ? 1 : 2;
	uint64_t day;
	char *t;

	if (!size)
		return;
	day = ev->ts / NS_PER_SEC / 86400;
	if (!index_day.valid || index_day.day != day) {
		civil(day, &index_day.y, &index_day.m, &index_day.d);
		index_day.day = day;
		index_day.valid = true;
		t = index_day.text;
		t[0] = '-';
		put2(t + 1, index_day.y / 100);
		put2(t + 3, index_day.y % 100);
		t[5] = '.';
		put2(t + 6, index_day.m);
		t[8] = '.';
		put2(t + 9, index_day.d);
		t[11] = '\0';
	}
	if (index_day.y <= 9999 && size >= 16 + sizeof(index_day.text)) {
		/* the common case: two fixed-size copies, the second over the first's
		 * padding */
		memcpy(buf, prefixes[k].text, 16);
		memcpy(buf + prefixes[k].len, index_day.text, sizeof(index_day.text));
		return;
	}
	snprintf(buf, size, "%s-%04u.%02u.%02u", prefixes[k].text, index_day.y, index_day.m,
		 index_day.d);
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
