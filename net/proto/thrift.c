/* thrift.c — Apache Thrift RPC over TCP (Packetbeat's "thrift"): calls paired with
 * replies by sequence id and method name.
 *
 * Specs: apache/thrift doc/specs/thrift-binary-protocol.md,
 * thrift-compact-protocol.md, thrift-rpc.md (message types, framed transport).
 * Field names and value rendering follow Packetbeat 8 (protos/thrift):
 * `method`, `query` = "add16(1: 1, 2: 1)", thrift.params = "(1: 1, 2: 1)",
 * thrift.return_value ("" for void), thrift.exceptions = "(1: (1: 4, 2: \"...\"))".
 *
 * Transports (detected per direction from the first bytes; `transport_type` /
 * `protocol_type` override detection when set):
 *   unframed (TSocket / TBufferedTransport):  message message ...
 *   framed (TFramedTransport):                [len:be32][message] ...
 *
 * Binary protocol message header, strict and old (non-strict) form:
 *   +--------+--------+--------+--------+ +----------------+ +-------------+
 *   |1000 0000 0000 0001|unused | type   | | name: be32 len | | seqid: be32 |
 *   +--------+--------+--------+--------+ | + bytes        | +-------------+
 *   +----------------+ +--------+ +-------------+
 *   | name: be32 len | | type:u8| | seqid: be32 |      (old: length first, > 0)
 *   +----------------+ +--------+ +-------------+
 *   struct = ( field-type:u8 field-id:be16 value )* 0x00
 *   values: bool/byte 1, i16 2, i32 4, i64/double 8 (BE), uuid 16, string be32 len +
 *   bytes, list/set etype:u8 size:be32 elems, map ktype:u8 vtype:u8 size:be32 pairs.
 *
 * Compact protocol message header:
 *   +--------+--------+----------------+----------------+
 *   |  0x82  |tttvvvvv| seqid: varint  | name: varint len + bytes |   (v = 1)
 *   +--------+--------+----------------+----------------+
 *   struct = ( ddddtttt [zigzag i16 id if dddd = 0] value )* 0x00; bool fields carry
 *   the value in tttt (1 true, 2 false); ints are zigzag varints, doubles LE,
 *   lists sssstttt [varint size if ssss = 15], maps varint size [kkkkvvvv].
 *
 * Streaming: the parser consumes one token at a time (a header, a scalar, a
 * collection header, a string length) and answers PARSE_NEED_MORE with the bytes
 * before the incomplete token consumed, so the stream layer keeps at most one
 * token (a message header: <= max_method_size + 12 bytes). Nesting lives in an
 * explicit stack (max_depth). String bytes are consumed as they arrive; only the
 * first string_max_size bytes are kept to render. The rendered text of a message is
 * capped at max_rendered_size. Framed messages are also bounded by their frame: a
 * frame over max_frame_size is skipped unparsed, a malformed message inside a frame
 * skips the rest of the frame; both are counted. Unframed, a malformed message makes
 * the connection unparseable (PARSE_ERROR).
 *
 * Transactions: calls wait in a per-connection list (cap max_pending). A reply or
 * exception (types 2, 3) completes the oldest pending call with the same seqid and
 * method name ("Svc:m" calls of TMultiplexedProtocol match "m" replies). Calls queued
 * before the one completed never got a reply: like Packetbeat ("two requests without
 * reply, assuming the old one is oneway") they are published as OK without a
 * response (old clients send oneway calls as type 1; counter thrift.presumed_oneway).
 * Oneway calls (type 4) are published at once. A reply whose first field has id 0
 * is a return value; any other field is a declared exception (status Error), and a
 * TApplicationException (type 3) is an exception struct too.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hostbeat/cursor.h"
#include "hostbeat/event.h"
#include "hostbeat/mem.h"
#include "hostbeat/numtext.h"
#include "hostbeat/metrics.h"
#include "hostbeat/proto.h"
#include "hostbeat/strbuf.h"

/* The one exported symbol (listed in net/proto/registry.c). */
extern const struct proto_ops thrift_proto;

#define TH_MAX_DEPTH 64          /* hard ceiling of max_depth (the stack is inline) */
#define TH_METHOD_CAP 1024       /* hard ceiling of max_method_size */
#define TH_DEF_STRING_MAX 200    /* Packetbeat string_max_size */
#define TH_DEF_COLLECTION_MAX 15 /* Packetbeat collection_max_size */
#define TH_DEF_DROP_AFTER 500    /* Packetbeat drop_after_n_struct_fields */
#define TH_DEF_DEPTH 32
#define TH_DEF_METHOD 255
#define TH_DEF_FRAME (16u << 20)
#define TH_DEF_RENDERED 65536
#define TH_DEF_MAX_MSG (10u << 20)
#define TH_DEF_PENDING 64
#define TH_DEF_TIMEOUT (10ull * 1000000000ull)

#define TH_VERSION_MASK 0xffff0000u
#define TH_VERSION_1 0x80010000u
#define TH_COMPACT_ID 0x82
#define TH_COMPACT_VERSION 1

enum th_msg_type { MT_CALL = 1, MT_REPLY = 2, MT_EXCEPTION = 3, MT_ONEWAY = 4 };

/* Wire-independent value types (binary and compact codes map onto these). */
enum th_type {
	T_INVALID,
	T_BOOL,
	T_BYTE,
	T_I16,
	T_I32,
	T_I64,
	T_DOUBLE,
	T_STRING,
	T_STRUCT,
	T_MAP,
	T_SET,
	T_LIST,
	T_UUID,
};

enum th_wire { TW_BINARY, TW_COMPACT };

/* Private configuration (cfg_proto.priv), filled from thrift_config_fields. */
struct thrift_config {
	char *transport_type; /* NULL = detect; socket|buffered|framed */
	char *protocol_type;  /* NULL = detect; binary|compact */
	struct cfg_strlist idl_files;
	uint64_t string_max_size;
	uint64_t collection_max_size;
	uint64_t drop_after_n_struct_fields;
	bool capture_reply;
	bool obfuscate_strings;
	uint64_t max_depth;
	uint64_t max_method_size;
	uint64_t max_frame_size;
	uint64_t max_rendered_size;
};

static const struct cfg_field thrift_config_fields[] = {
    {"transport_type", CFG_STRING, offsetof(struct thrift_config, transport_type), NULL,
     "socket (also buffered) or framed; unset = detected per connection", 0, 0},
    {"protocol_type", CFG_STRING, offsetof(struct thrift_config, protocol_type), NULL,
     "binary or compact; unset = detected per connection", 0, 0},
    {"idl_files", CFG_STRLIST, offsetof(struct thrift_config, idl_files), NULL,
     "accepted; IDL files are not read yet, fields render by id", 0, 0},
    {"string_max_size", CFG_UINT, offsetof(struct thrift_config, string_max_size), "200",
     "string bytes rendered; longer strings end in ...", 1, 1 << 20},
    {"collection_max_size", CFG_UINT, offsetof(struct thrift_config, collection_max_size), "15",
     "elements/fields rendered per collection or struct; then ...", 1, 1 << 20},
    {"drop_after_n_struct_fields", CFG_UINT,
     offsetof(struct thrift_config, drop_after_n_struct_fields), "500",
     "a struct with more fields is malformed", 1, 1 << 24},
    {"capture_reply", CFG_BOOL, offsetof(struct thrift_config, capture_reply), "true",
     "render return values and exceptions", 0, 0},
    {"obfuscate_strings", CFG_BOOL, offsetof(struct thrift_config, obfuscate_strings), "false",
     "render every non-empty string as \"*\"", 0, 0},
    {"max_depth", CFG_UINT, offsetof(struct thrift_config, max_depth), "32",
     "deepest nesting of structs/collections", 1, TH_MAX_DEPTH},
    {"max_method_size", CFG_UINT, offsetof(struct thrift_config, max_method_size), "255",
     "longest method name", 1, TH_METHOD_CAP},
    {"max_frame_size", CFG_SIZE, offsetof(struct thrift_config, max_frame_size), "16MiB",
     "larger frames are skipped unparsed", 64, 1ll << 31},
    {"max_rendered_size", CFG_SIZE, offsetof(struct thrift_config, max_rendered_size), "64KiB",
     "rendered params/return text per message; longer ends in ...", 64, 16 << 20},
};

static const struct thrift_config thrift_defaults = {
    .string_max_size = TH_DEF_STRING_MAX,
    .collection_max_size = TH_DEF_COLLECTION_MAX,
    .drop_after_n_struct_fields = TH_DEF_DROP_AFTER,
    .capture_reply = true,
    .max_depth = TH_DEF_DEPTH,
    .max_method_size = TH_DEF_METHOD,
    .max_frame_size = TH_DEF_FRAME,
    .max_rendered_size = TH_DEF_RENDERED,
};

static const uint16_t thrift_ports[] = {9090};

enum th_state {
	TS_START,  /* at a message boundary (frame header, detection) */
	TS_HEADER, /* expecting the message header */
	TS_BODY,   /* inside the argument/result struct */
	TS_STRING, /* inside string bytes */
	TS_SKIP,   /* skipping the rest of a frame */
};

enum th_level_kind { LV_STRUCT, LV_LIST, LV_SET, LV_MAP };

struct th_level {
	uint8_t kind;   /* enum th_level_kind */
	uint8_t t1, t2; /* element type, or key and value types */
	bool muted;     /* nothing inside is rendered */
	bool nonempty;  /* list/set: brackets were rendered */
	int16_t last_id;
	uint32_t idx;  /* fields / elements / pairs started */
	uint64_t left; /* list/set: elements to go; map: keys + values to go */
};

/* One direction's resume state. */
struct th_dir {
	enum th_state state;
	bool detected;
	bool framed;
	uint8_t wire; /* enum th_wire */
	bool in_msg;  /* msg_ts holds the time of the current message's first byte */
	bool gap_lost;
	uint64_t msg_ts;
	uint64_t msg_bytes;
	uint64_t frame_left; /* framed: bytes of the current frame not consumed yet */
	uint32_t frame_len;

	/* message header */
	uint8_t mtype;
	int32_t seqid;
	size_t method_len; /* of method[], below */

	/* body (the levels in stack[], below) */
	unsigned depth;
	bool have_value; /* a value of type value_type is due next */
	uint8_t value_type;
	bool value_muted;

	/* string in progress */
	uint64_t str_left;
	size_t str_have;
	bool str_trunc;
	bool str_muted;
	bool str_stop; /* packet loss: capture no more of this string */
	uint8_t *sbuf; /* string_max_size bytes, allocated on first use */

	/* rendered text: params or the result struct */
	struct strbuf out;
	bool out_trunc;
	int32_t first_id; /* reply: id of the first result field, -1 = none */
	size_t first_start, first_end;
	bool first_open; /* the first field's value is being rendered */

	/* Last, and not cleared by thrift_conn_new(): each is written before it is
	 * read (read_header(), push()), and together they are most of the 5 KiB a
	 * connection would otherwise clear. */
	char method[TH_METHOD_CAP + 1];
	struct th_level stack[TH_MAX_DEPTH];
};

struct th_pending {
	struct event *ev;
	int32_t seqid;
	const char *method; /* the event's "method" text (its arena), NULL = none */
	size_t method_len;
};

struct thrift_conn {
	struct thrift_config cfgv; /* borrowed strings/lists of cfg_proto.priv */
	int force_framed;          /* -1 detect, 0 unframed, 1 framed */
	int force_wire;            /* -1 detect, else enum th_wire */
	size_t max_msg;
	uint64_t timeout;
	bool send_request, send_response;
	struct th_pending *pend; /* pend_cap slots, [0, npend) in use */
	size_t npend, pend_cap;
	struct strbuf scratch;
	struct metric *m_malformed, *m_frames_skipped, *m_oneway;
	struct th_dir dir[2]; /* last: see the end of struct th_dir */
};

enum step { ST_OK, ST_MORE, ST_BAD, ST_FATAL };

/* ---- rendering ------------------------------------------------------------------ */

static void out_put_slow(struct thrift_conn *c, struct th_dir *d, const void *s, size_t n)
{
	size_t room;

	if (d->out_trunc)
		return;
	room = c->cfgv.max_rendered_size - d->out.len;
	if (n > room) {
		n = room;
		d->out_trunc = true;
	}
	if (strbuf_append(&d->out, s, n) < 0)
		d->out_trunc = true;
}

/* Append to the rendered text, cut at max_rendered_size. Inline: every token of
 * every message writes here; the common case (room in the cap and in the buffer) is
 * a copy. */
static inline void out_put(struct thrift_conn *c, struct th_dir *d, const void *s, size_t n)
{
	struct strbuf *o = &d->out;

	if (!d->out_trunc && c->cfgv.max_rendered_size - o->len >= n && o->cap - o->len >= n) {
		memcpy(o->p + o->len, s, n);
		o->len += n;
		return;
	}
	out_put_slow(c, d, s, n);
}

static inline void out_puts(struct thrift_conn *c, struct th_dir *d, const char *s)
{
	out_put(c, d, s, strlen(s));
}

/* Go's strconv.FormatFloat(v, 'f', -1, 64): the shortest digits that read back as
 * v, in plain (never exponent) notation; "NaN", "+Inf", "-Inf". */
static void fmt_double(double v, char *buf, size_t cap)
{
	char e[40], digits[24];
	size_t nd = 0, o = 0;
	int exp10, p;
	const char *s;

	if (isnan(v)) {
		snprintf(buf, cap, "NaN");
		return;
	}
	if (isinf(v)) {
		snprintf(buf, cap, "%s", v > 0 ? "+Inf" : "-Inf");
		return;
	}
	for (p = 1; p < 17; p++) {
		snprintf(e, sizeof(e), "%.*e", p - 1, v);
		if (strtod(e, NULL) == v)
			break;
	}
	snprintf(e, sizeof(e), "%.*e", p - 1, v);
	s = e;
	if (*s == '-') {
		buf[o++] = '-';
		s++;
	}
	for (; *s && *s != 'e'; s++)
		if (*s >= '0' && *s <= '9' && nd < sizeof(digits))
			digits[nd++] = *s;
	exp10 = *s == 'e' ? atoi(s + 1) : 0;
	while (nd > 1 && digits[nd - 1] == '0')
		nd--;
	/* 1e308 needs 309 digits: the caller's buffer is 400 bytes */
	if (exp10 >= 0) {
		for (int i = 0; i <= exp10 && o + 2 < cap; i++)
			buf[o++] = (size_t)i < nd ? digits[i] : '0';
		if (nd > (size_t)exp10 + 1 && o + 2 < cap) {
			buf[o++] = '.';
			for (size_t i = (size_t)exp10 + 1; i < nd && o + 1 < cap; i++)
				buf[o++] = digits[i];
		}
	} else {
		buf[o++] = '0';
		buf[o++] = '.';
		for (int i = 0; i < -exp10 - 1 && o + 1 < cap; i++)
			buf[o++] = '0';
		for (size_t i = 0; i < nd && o + 1 < cap; i++)
			buf[o++] = digits[i];
	}
	buf[o] = '\0';
}

/* Length of the valid UTF-8 sequence at p (Go's rules: no overlongs, no
 * surrogates, <= U+10FFFF), or 0. *cp receives the code point. */
static size_t utf8_seq(const uint8_t *p, size_t n, uint32_t *cp)
{
	uint32_t c;
	size_t len;

	if (p[0] < 0x80) {
		*cp = p[0];
		return 1;
	}
	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		len = 2;
		c = p[0] & 0x1f;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		len = 3;
		c = p[0] & 0x0f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		len = 4;
		c = p[0] & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (p[i] & 0x3f);
	}
	if ((len == 3 && c < 0x800) || (len == 4 && (c < 0x10000 || c > 0x10ffff)) ||
	    (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return len;
}

static bool utf8_valid(const uint8_t *p, size_t n)
{
	uint32_t cp;

	for (size_t i = 0; i < n;) {
		size_t k = utf8_seq(p + i, n - i, &cp);

		if (!k)
			return false;
		i += k;
	}
	return true;
}

/* Non-ASCII code points Go's unicode.IsPrint rejects (spaces, controls, format
 * characters, private use); an approximation of the Unicode tables. */
static bool cp_unprintable(uint32_t c)
{
	return (c >= 0x80 && c <= 0xa0) || c == 0xad || (c >= 0x2000 && c <= 0x200f) ||
	       (c >= 0x2028 && c <= 0x202f) || (c >= 0x205f && c <= 0x206f) || c == 0x3000 ||
	       c == 0xfeff || (c >= 0xfff9 && c <= 0xfffb) || (c >= 0xe000 && c <= 0xf8ff) ||
	       c >= 0xf0000;
}

/* Go's strconv.Quote of valid UTF-8. */
static void render_quoted(struct thrift_conn *c, struct th_dir *d, const uint8_t *p, size_t n)
{
	char esc[16];

	out_put(c, d, "\"", 1);
	for (size_t i = 0; i < n && !d->out_trunc;) {
		uint32_t cp = 0;
		size_t k = utf8_seq(p + i, n - i, &cp);

		if (k == 0)
			k = 1; /* not reached: callers validate first */
		switch (cp) {
		case '"':
			out_put(c, d, "\\\"", 2);
			break;
		case '\\':
			out_put(c, d, "\\\\", 2);
			break;
		case '\a':
			out_put(c, d, "\\a", 2);
			break;
		case '\b':
			out_put(c, d, "\\b", 2);
			break;
		case '\f':
			out_put(c, d, "\\f", 2);
			break;
		case '\n':
			out_put(c, d, "\\n", 2);
			break;
		case '\r':
			out_put(c, d, "\\r", 2);
			break;
		case '\t':
			out_put(c, d, "\\t", 2);
			break;
		case '\v':
			out_put(c, d, "\\v", 2);
			break;
		default:
			if (cp < 0x20 || cp == 0x7f) {
				snprintf(esc, sizeof(esc), "\\x%02x", (unsigned)cp);
				out_puts(c, d, esc);
			} else if (cp < 0x80 || !cp_unprintable(cp)) {
				out_put(c, d, p + i, k);
			} else if (cp < 0x10000) {
				snprintf(esc, sizeof(esc), "\\u%04x", (unsigned)cp);
				out_puts(c, d, esc);
			} else {
				snprintf(esc, sizeof(esc), "\\U%08x", (unsigned)cp);
				out_puts(c, d, esc);
			}
			break;
		}
		i += k;
	}
	out_put(c, d, "\"", 1);
}

/* A finished string as Packetbeat renders it: the first string_max_size bytes plus
 * "..." when longer; "" when empty; "*" obfuscated; Go-quoted when valid UTF-8,
 * else lower-case hex of the (cut) bytes. */
static void render_string(struct thrift_conn *c, struct th_dir *d)
{
	static const char hex[] = "0123456789abcdef";
	const uint8_t *p = d->sbuf;
	size_t n = d->str_have;
	bool dots = d->str_trunc;

	if (n == 0 && !dots) {
		out_put(c, d, "\"\"", 2);
		return;
	}
	if (c->cfgv.obfuscate_strings) {
		out_put(c, d, "\"*\"", 3);
		return;
	}
	if (utf8_valid(p, n)) {
		/* "..." is ASCII: the cut text stays valid */
		if (!dots) {
			render_quoted(c, d, p, n);
			return;
		}
		render_quoted(c, d, p, n);
		/* move the closing quote behind the dots */
		if (!d->out_trunc && d->out.len) {
			d->out.len--;
			out_put(c, d, "...\"", 4);
		}
		return;
	}
	for (size_t i = 0; i < n && !d->out_trunc; i++) {
		char h[2] = {hex[p[i] >> 4], hex[p[i] & 15]};

		out_put(c, d, h, 2);
	}
	if (dots)
		out_put(c, d, "2e2e2e", 6);
}

/* ---- wire helpers ----------------------------------------------------------------- */

static enum th_type binary_type(uint8_t t)
{
	switch (t) {
	case 2:
		return T_BOOL;
	case 3:
		return T_BYTE;
	case 4:
		return T_DOUBLE;
	case 6:
		return T_I16;
	case 8:
		return T_I32;
	case 10:
		return T_I64;
	case 11:
		return T_STRING;
	case 12:
		return T_STRUCT;
	case 13:
		return T_MAP;
	case 14:
		return T_SET;
	case 15:
		return T_LIST;
	case 16:
		return T_UUID;
	default:
		return T_INVALID;
	}
}

/* Compact element types (lists, sets, maps); field types differ only for bool. */
static enum th_type compact_type(uint8_t t)
{
	static const uint8_t map[16] = {
	    T_INVALID, T_BOOL, T_BOOL, T_BYTE, T_I16,    T_I32,  T_I64,     T_DOUBLE,
	    T_STRING,  T_LIST, T_SET,  T_MAP,  T_STRUCT, T_UUID, T_INVALID, T_INVALID,
	};

	return (enum th_type)map[t & 15];
}

/* Unsigned LEB128 of at most maxlen bytes. Returns ST_OK, ST_MORE (the cursor
 * ran out) or ST_BAD (too long). */
static enum step read_varint(struct cursor *cur, unsigned maxlen, uint64_t *v)
{
	uint64_t r = 0;

	for (unsigned i = 0; i < maxlen; i++) {
		uint8_t b;

		if (!cur_left(cur))
			return ST_MORE;
		b = cur_u8(cur);
		r |= (uint64_t)(b & 0x7f) << (7 * i);
		if (!(b & 0x80)) {
			*v = r;
			return ST_OK;
		}
	}
	return ST_BAD;
}

static int64_t zigzag64(uint64_t n)
{
	return (int64_t)(n >> 1) ^ -(int64_t)(n & 1);
}

static int32_t zigzag32(uint64_t n)
{
	uint32_t u = (uint32_t)n;

	return (int32_t)(u >> 1) ^ -(int32_t)(u & 1);
}

static bool name_char(uint8_t ch)
{
	return ch > 0x20 && ch < 0x7f;
}

/* ---- direction state ---------------------------------------------------------------- */

static void msg_reset(struct th_dir *d)
{
	d->in_msg = false;
	d->gap_lost = false;
	d->msg_bytes = 0;
	d->method_len = 0;
	d->depth = 0;
	d->have_value = false;
	d->str_left = 0;
	d->str_have = 0;
	d->str_trunc = false;
	strbuf_reset(&d->out);
	d->out_trunc = false;
	d->first_id = -1;
	d->first_start = d->first_end = 0;
	d->first_open = false;
}

/* Bytes of the current message were consumed. */
static void took(struct th_dir *d, size_t n)
{
	d->msg_bytes += n;
	if (d->framed)
		d->frame_left -= n;
}

/* ---- transactions -------------------------------------------------------------------- */

static void pend_remove(struct thrift_conn *c, size_t i)
{
	memmove(&c->pend[i], &c->pend[i + 1], (c->npend - i - 1) * sizeof(c->pend[0]));
	c->npend--;
}

static void pend_expire(struct thrift_conn *c, struct proto_ctx *ctx)
{
	while (c->npend && ctx->ts > c->pend[0].ev->start_ns &&
	       ctx->ts - c->pend[0].ev->start_ns > c->timeout) {
		struct event *ev = c->pend[0].ev;

		pend_remove(c, 0);
		txn_publish_unmatched(ctx, ev, "Unmatched request", true);
	}
}

static void pend_flush(struct thrift_conn *c, struct proto_ctx *ctx)
{
	while (c->npend) {
		struct event *ev = c->pend[0].ev;

		pend_remove(c, 0);
		txn_publish_unmatched(ctx, ev, "Unmatched request", true);
	}
}

static bool str_eq(const char *a, size_t an, const char *b, size_t bn)
{
	return an == bn && memcmp(a, b, an) == 0;
}

/* Does the pending call answer to a reply named m? "Svc:m" (multiplexed) matches
 * "m". */
static bool method_matches(const struct th_pending *p, const char *m, size_t mn)
{
	const char *colon;

	if (!p->method)
		return false;
	if (str_eq(p->method, p->method_len, m, mn))
		return true;
	colon = memchr(p->method, ':', p->method_len);
	return colon && str_eq(colon + 1, p->method_len - (size_t)(colon + 1 - p->method), m, mn);
}

/* p[0..n) as field `key`, capped at max_message_size (request/response text). */
static void set_capped(struct thrift_conn *c, struct event *ev, const char *key, const char *p,
		       size_t n)
{
	ev_set_str(ev, key, p, n < c->max_msg ? n : c->max_msg);
}

static void request_done(struct thrift_conn *c, struct th_dir *d, struct proto_ctx *ctx)
{
	const struct ev_field *mf;
	const char *mp, *colon;
	struct event *ev;
	size_t mlen;

	pend_expire(c, ctx);
	ev = txn_new_event(ctx, &thrift_proto);
	if (!ev)
		return;
	txn_init_event(ev, ctx->conn, d->msg_ts);
	if (d->out_trunc)
		strbuf_puts(&d->out, "...");
	ev_set_str(ev, "method", d->method, d->method_len);
	/* the method text stays in the event's arena while the call waits: taken now,
	 * while it is the last field, for the replies to match against */
	mf = ev_find(ev, "method");
	mp = mf ? mf->v.s.p : NULL;
	mlen = mf ? mf->v.s.len : 0;
	colon = memchr(d->method, ':', d->method_len);
	if (colon && colon > d->method) {
		/* TMultiplexedProtocol: "Service:method" names the service */
		ev_set_str(ev, "path", d->method, (size_t)(colon - d->method));
		ev_set_str(ev, "thrift.service", d->method, (size_t)(colon - d->method));
	}
	strbuf_reset(&c->scratch);
	strbuf_append(&c->scratch, d->method, d->method_len);
	strbuf_append(&c->scratch, d->out.p, d->out.len);
	if (!c->scratch.err) {
		ev_set_str(ev, "query", c->scratch.p, c->scratch.len);
		if (c->send_request)
			set_capped(c, ev, "request", c->scratch.p, c->scratch.len);
	}
	ev_set_str(ev, "thrift.params", d->out.p ? d->out.p : "", d->out.len);
	ev->client_bytes = d->framed ? d->frame_len : d->msg_bytes;
	ev->has_client_bytes = true;
	if (d->gap_lost)
		txn_add_note(ev, "Packet loss while capturing the request");
	if (d->mtype == MT_ONEWAY) {
		txn_publish(ctx, ev);
		return;
	}
	if (c->npend == c->pend_cap) {
		struct event *old = c->pend[0].ev;

		metric_inc(ctx->stats->limit_exceeded);
		pend_remove(c, 0);
		txn_publish_unmatched(ctx, old, "Unmatched request", true);
	}
	c->pend[c->npend].ev = ev;
	c->pend[c->npend].seqid = d->seqid;
	c->pend[c->npend].method = mp;
	c->pend[c->npend].method_len = mlen;
	c->npend++;
}

static void reply_done(struct thrift_conn *c, struct th_dir *d, struct proto_ctx *ctx)
{
	const char *text = d->out.p ? d->out.p : "";
	struct event *ev = NULL;
	bool exc = false, matched = false;
	int32_t first_id = c->cfgv.capture_reply ? d->first_id : -1;
	size_t i, rs = 0, rn = 0;

	pend_expire(c, ctx);
	for (i = 0; i < c->npend; i++) {
		if (c->pend[i].seqid == d->seqid &&
		    method_matches(&c->pend[i], d->method, d->method_len))
			break;
	}
	if (i < c->npend) {
		/* the calls before it never got a reply: oneway */
		while (i--) {
			struct event *old = c->pend[0].ev;

			pend_remove(c, 0);
			metric_inc(c->m_oneway);
			txn_publish(ctx, old);
		}
		ev = c->pend[0].ev;
		pend_remove(c, 0);
		matched = true;
	} else {
		ev = txn_new_event(ctx, &thrift_proto);
		if (!ev)
			return;
		txn_init_event(ev, ctx->conn, d->msg_ts);
		ev_set_str(ev, "method", d->method, d->method_len);
	}
	ev->end_ns = d->msg_ts;
	ev->server_bytes = d->framed ? d->frame_len : d->msg_bytes;
	ev->has_server_bytes = true;
	if (d->first_open)
		d->first_end = d->out.len; /* cut short by a gap */
	if (first_id == 0) {
		rs = d->first_start < d->out.len ? d->first_start : d->out.len;
		rn = (d->first_end < d->out.len ? d->first_end : d->out.len) - rs;
	} else if (first_id > 0) {
		exc = true;
	}
	if (!exc && !(d->out_trunc && rs + rn == d->out.len)) {
		/* the return value as rendered: no copy to make */
		ev_set_str(ev, "thrift.return_value", text + rs, rn);
		if (c->send_response)
			set_capped(c, ev, "response", text + rs, rn);
	} else {
		strbuf_reset(&c->scratch);
		if (exc) {
			strbuf_puts(&c->scratch, "Exceptions: ");
			strbuf_append(&c->scratch, text, d->out.len);
			if (d->out_trunc)
				strbuf_puts(&c->scratch, "...");
		} else {
			strbuf_append(&c->scratch, text + rs, rn);
			strbuf_puts(&c->scratch, "...");
		}
		if (!c->scratch.err) {
			if (exc) {
				ev_set_str(ev, "thrift.return_value", "", 0);
				ev_set_str(ev, "thrift.exceptions", c->scratch.p + 12,
					   c->scratch.len - 12);
			} else {
				ev_set_str(ev, "thrift.return_value", c->scratch.p, c->scratch.len);
			}
			if (c->send_response)
				set_capped(c, ev, "response", c->scratch.p, c->scratch.len);
		}
	}
	if (d->gap_lost)
		txn_add_note(ev, "Packet loss while capturing the response");
	if (!matched) {
		txn_publish_unmatched(ctx, ev, "Unmatched response", false);
		return;
	}
	ev->status = exc ? EV_STATUS_ERROR : EV_STATUS_OK;
	txn_publish(ctx, ev);
}

/* A complete (or, after a gap, truncated) message. */
static void message_done(struct thrift_conn *c, struct th_dir *d, struct proto_ctx *ctx)
{
	metric_inc(ctx->stats->messages);
	if (d->mtype == MT_CALL || d->mtype == MT_ONEWAY)
		request_done(c, d, ctx);
	else
		reply_done(c, d, ctx);
	msg_reset(d);
	d->state = d->framed && d->frame_left ? TS_SKIP : TS_START;
}

/* A malformed message inside a frame: drop it, skip the rest of the frame. */
static void message_bad(struct thrift_conn *c, struct th_dir *d)
{
	metric_inc(c->m_malformed);
	msg_reset(d);
	d->state = d->frame_left ? TS_SKIP : TS_START;
}

/* ---- detection and headers ----------------------------------------------------------- */

/* Decide framing and wire protocol from the first bytes of a direction:
 *   80 01 ..             unframed strict binary     82 v1 ..    unframed compact
 *   LLLL 80 01 ..        framed strict binary       LLLL 82 v1  framed compact
 *   NNNN name...         unframed old binary (0 < N <= max_method_size, printable)
 *   LLLL NNNN name...    framed old binary
 * Does not consume: the first message is then parsed from the same bytes. */
static enum step detect(struct thrift_conn *c, struct th_dir *d, const uint8_t *p, size_t n)
{
	size_t maxm = c->cfgv.max_method_size;
	struct cursor cur;
	uint8_t b0, b1, b4, b5, b8;
	uint32_t l, m;

	cur_init(&cur, p, n);
	if (c->force_framed >= 0) {
		d->framed = c->force_framed;
		if (c->force_wire >= 0) {
			d->wire = (uint8_t)c->force_wire;
			return ST_OK;
		}
		if (d->framed)
			cur_skip(&cur, 4);
		b0 = cur_u8(&cur);
		if (cur.err)
			return ST_MORE;
		d->wire = b0 == TH_COMPACT_ID ? TW_COMPACT : TW_BINARY;
		return ST_OK;
	}
	b0 = cur_u8(&cur);
	b1 = cur_u8(&cur);
	if (cur.err)
		return ST_MORE;
	if (b0 == 0x80 || b0 == TH_COMPACT_ID) {
		d->framed = false;
		if (b0 == 0x80 && b1 == 0x01 && c->force_wire != TW_COMPACT)
			d->wire = TW_BINARY;
		else if (b0 == TH_COMPACT_ID && (b1 & 0x1f) == TH_COMPACT_VERSION &&
			 c->force_wire != TW_BINARY)
			d->wire = TW_COMPACT;
		else
			return ST_FATAL;
		return ST_OK;
	}
	cur_seek(&cur, 0);
	l = cur_be32(&cur);
	b4 = cur_u8(&cur);
	b5 = cur_u8(&cur);
	if (cur.err)
		return ST_MORE;
	if (b4 == 0x80 && b5 == 0x01 && c->force_wire != TW_COMPACT) {
		d->framed = true;
		d->wire = TW_BINARY;
		return ST_OK;
	}
	if (b4 == TH_COMPACT_ID && (b5 & 0x1f) == TH_COMPACT_VERSION &&
	    c->force_wire != TW_BINARY) {
		d->framed = true;
		d->wire = TW_COMPACT;
		return ST_OK;
	}
	if (c->force_wire == TW_COMPACT)
		return ST_FATAL;
	/* old (non-strict) binary: a method name length, then the name */
	if (l > 0 && l <= maxm && name_char(b4)) {
		d->framed = false;
		d->wire = TW_BINARY;
		return ST_OK;
	}
	cur_seek(&cur, 4);
	m = cur_be32(&cur);
	b8 = cur_u8(&cur);
	if (cur.err)
		return ST_MORE;
	if (m > 0 && m <= maxm && m <= l && l - m >= 9 && name_char(b8)) {
		d->framed = true;
		d->wire = TW_BINARY;
		return ST_OK;
	}
	return ST_FATAL;
}

/* The message header on `cur` (limited to the frame). */
static enum step read_header(struct thrift_conn *c, struct th_dir *d, struct cursor *cur)
{
	size_t maxm = c->cfgv.max_method_size;
	const uint8_t *name;
	uint64_t v, nl;
	uint8_t type;
	enum step st;

	if (d->wire == TW_BINARY) {
		uint32_t w = cur_be32(cur);

		if (cur->err)
			return ST_MORE;
		if (w & 0x80000000u) {
			if ((w & TH_VERSION_MASK) != TH_VERSION_1)
				return ST_BAD;
			type = (uint8_t)(w & 0xff);
			nl = cur_be32(cur);
			if (cur->err)
				return ST_MORE;
			if (nl > maxm)
				return ST_BAD;
			name = cur_bytes(cur, (size_t)nl);
			d->seqid = (int32_t)cur_be32(cur);
		} else {
			nl = w;
			if (nl > maxm)
				return ST_BAD;
			name = cur_bytes(cur, (size_t)nl);
			type = cur_u8(cur);
			d->seqid = (int32_t)cur_be32(cur);
		}
		if (cur->err)
			return ST_MORE;
	} else {
		uint8_t b0 = cur_u8(cur), b1 = cur_u8(cur);

		if (cur->err)
			return ST_MORE;
		if (b0 != TH_COMPACT_ID || (b1 & 0x1f) != TH_COMPACT_VERSION)
			return ST_BAD;
		type = b1 >> 5;
		st = read_varint(cur, 5, &v);
		if (st != ST_OK)
			return st;
		d->seqid = (int32_t)(uint32_t)v;
		st = read_varint(cur, 5, &nl);
		if (st != ST_OK)
			return st;
		if (nl > maxm)
			return ST_BAD;
		name = cur_bytes(cur, (size_t)nl);
		if (cur->err)
			return ST_MORE;
	}
	if (type < MT_CALL || type > MT_ONEWAY)
		return ST_BAD;
	d->mtype = type;
	memcpy(d->method, name, (size_t)nl);
	d->method_len = (size_t)nl;
	d->method[nl] = '\0';
	return ST_OK;
}

/* ---- body ----------------------------------------------------------------------------- */

static enum step push(struct thrift_conn *c, struct th_dir *d, enum th_level_kind kind, uint8_t t1,
		      uint8_t t2, uint64_t n, bool muted)
{
	struct th_level *lv;

	if (d->depth >= c->cfgv.max_depth)
		return ST_BAD;
	lv = &d->stack[d->depth++];
	memset(lv, 0, sizeof(*lv));
	lv->kind = (uint8_t)kind;
	lv->t1 = t1;
	lv->t2 = t2;
	lv->muted = muted;
	lv->left = kind == LV_MAP ? 2 * n : n;
	if (muted)
		return ST_OK;
	switch (kind) {
	case LV_STRUCT:
		out_put(c, d, "(", 1);
		break;
	case LV_LIST:
		/* Packetbeat renders an empty list or set as nothing at all */
		if (n) {
			out_put(c, d, "[", 1);
			lv->nonempty = true;
		}
		break;
	case LV_SET:
		if (n) {
			out_put(c, d, "{", 1);
			lv->nonempty = true;
		}
		break;
	case LV_MAP:
		out_put(c, d, "{", 1);
		break;
	}
	return ST_OK;
}

static void pop(struct thrift_conn *c, struct th_dir *d)
{
	struct th_level *lv = &d->stack[--d->depth];

	if (lv->muted)
		return;
	switch (lv->kind) {
	case LV_STRUCT:
		out_put(c, d, ")", 1);
		break;
	case LV_LIST:
		if (lv->nonempty)
			out_put(c, d, "]", 1);
		break;
	case LV_SET:
		if (lv->nonempty)
			out_put(c, d, "}", 1);
		break;
	case LV_MAP:
		out_put(c, d, "}", 1);
		break;
	}
}

/* Render the separator of element `idx` of a level; returns whether the element
 * itself is muted. */
static inline bool element_prefix(struct thrift_conn *c, struct th_dir *d, struct th_level *lv,
				  uint32_t idx)
{
	if (lv->muted)
		return true;
	if (idx > c->cfgv.collection_max_size)
		return true;
	if (idx)
		out_put(c, d, ", ", 2);
	if (idx == c->cfgv.collection_max_size) {
		out_put(c, d, "...", 3);
		return true;
	}
	return false;
}

/* v in decimal (a field id: followed by ": ") into the rendered text. The text is
 * made in a buffer so that the common case copies a fixed 24 bytes from where it
 * starts (a copy of constant size the compiler inlines) and counts only the text. */
static inline void out_int(struct thrift_conn *c, struct th_dir *d, int64_t v, bool field_id)
{
	char buf[48] = {0}; /* copied in part: no uninitialised bytes */
	struct strbuf *o = &d->out;
	char *end = buf + 24, *t = hb_i64_text(v, end);
	size_t n;

	if (field_id) {
		*end++ = ':';
		*end++ = ' ';
	}
	n = (size_t)(end - t); /* <= 22 */
	if (!d->out_trunc && c->cfgv.max_rendered_size - o->len >= n && o->cap - o->len >= 24) {
		memcpy(o->p + o->len, t, 24);
		o->len += n;
		return;
	}
	out_put_slow(c, d, t, n);
}

static void render_int(struct thrift_conn *c, struct th_dir *d, bool muted, int64_t v)
{
	if (!muted)
		out_int(c, d, v, false);
}

static void render_bool(struct thrift_conn *c, struct th_dir *d, bool muted, bool v)
{
	if (!muted)
		out_puts(c, d, v ? "true" : "false");
}

/* Read one value of type d->value_type (a token; strings and containers only
 * their header). */
static enum step read_value(struct thrift_conn *c, struct th_dir *d, struct cursor *cur)
{
	bool muted = d->value_muted, compact = d->wire == TW_COMPACT;
	uint64_t v, n;
	enum step st;
	uint8_t b, k;

	switch ((enum th_type)d->value_type) {
	case T_BOOL:
		b = cur_u8(cur);
		if (cur->err)
			return ST_MORE;
		render_bool(c, d, muted, compact ? b == 1 : b != 0);
		return ST_OK;
	case T_BYTE:
		b = cur_u8(cur);
		if (cur->err)
			return ST_MORE;
		render_int(c, d, muted, (int8_t)b);
		return ST_OK;
	case T_I16:
	case T_I32:
	case T_I64:
		if (compact) {
			st = read_varint(cur, d->value_type == T_I64 ? 10 : 5, &v);
			if (st != ST_OK)
				return st;
			if (d->value_type == T_I64)
				render_int(c, d, muted, zigzag64(v));
			else if (d->value_type == T_I32)
				render_int(c, d, muted, zigzag32(v));
			else
				render_int(c, d, muted, (int16_t)zigzag32(v));
			return ST_OK;
		}
		if (d->value_type == T_I16)
			v = (uint64_t)(int64_t)(int16_t)cur_be16(cur);
		else if (d->value_type == T_I32)
			v = (uint64_t)(int64_t)(int32_t)cur_be32(cur);
		else
			v = cur_be64(cur);
		if (cur->err)
			return ST_MORE;
		render_int(c, d, muted, (int64_t)v);
		return ST_OK;
	case T_DOUBLE: {
		char buf[400];
		double dv;

		v = compact ? cur_le64(cur) : cur_be64(cur);
		if (cur->err)
			return ST_MORE;
		memcpy(&dv, &v, sizeof(dv));
		if (!muted) {
			fmt_double(dv, buf, sizeof(buf));
			out_puts(c, d, buf);
		}
		return ST_OK;
	}
	case T_UUID: {
		const uint8_t *u = cur_bytes(cur, 16);
		char buf[40];
		size_t o = 0;

		if (!u)
			return ST_MORE;
		for (int i = 0; i < 16; i++) {
			if (i == 4 || i == 6 || i == 8 || i == 10)
				buf[o++] = '-';
			o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%02x", u[i]);
		}
		if (!muted)
			out_put(c, d, buf, o);
		return ST_OK;
	}
	case T_STRING:
		if (compact) {
			st = read_varint(cur, 5, &n);
			if (st != ST_OK)
				return st;
		} else {
			n = cur_be32(cur);
			if (cur->err)
				return ST_MORE;
		}
		if (n > INT32_MAX)
			return ST_BAD;
		d->str_left = n;
		d->str_have = 0;
		d->str_trunc = false;
		d->str_stop = false;
		d->str_muted = muted;
		if (!muted && !d->sbuf) {
			d->sbuf = hb_malloc(c->cfgv.string_max_size);
			if (!d->sbuf)
				d->str_muted = true; /* memory short: the value is left out */
		}
		d->state = TS_STRING;
		return ST_OK;
	case T_STRUCT:
		return push(c, d, LV_STRUCT, 0, 0, 0, muted);
	case T_LIST:
	case T_SET:
		b = cur_u8(cur);
		if (cur->err)
			return ST_MORE;
		if (compact) {
			k = compact_type(b & 15);
			n = b >> 4;
			if (n == 15) {
				st = read_varint(cur, 5, &n);
				if (st != ST_OK)
					return st;
			}
		} else {
			k = binary_type(b);
			n = cur_be32(cur);
			if (cur->err)
				return ST_MORE;
		}
		if (n > INT32_MAX || (k == T_INVALID && n))
			return ST_BAD;
		return push(c, d, d->value_type == T_LIST ? LV_LIST : LV_SET, k, 0, n, muted);
	case T_MAP: {
		uint8_t kt = T_INVALID, vt = T_INVALID;

		if (compact) {
			st = read_varint(cur, 5, &n);
			if (st != ST_OK)
				return st;
			if (n) {
				b = cur_u8(cur);
				if (cur->err)
					return ST_MORE;
				kt = compact_type(b >> 4);
				vt = compact_type(b & 15);
			}
		} else {
			kt = binary_type(cur_u8(cur));
			vt = binary_type(cur_u8(cur));
			n = cur_be32(cur);
			if (cur->err)
				return ST_MORE;
		}
		if (n > INT32_MAX || (n && (kt == T_INVALID || vt == T_INVALID)))
			return ST_BAD;
		return push(c, d, LV_MAP, kt, vt, n, muted);
	}
	default:
		return ST_BAD;
	}
}

/* A struct field header (or STOP) at the top of the stack. */
static enum step read_field(struct thrift_conn *c, struct th_dir *d, struct cursor *cur)
{
	struct th_level *lv = &d->stack[d->depth - 1];
	bool top = d->depth == 1, muted;
	uint8_t b = cur_u8(cur), type;
	int32_t id = 0;

	if (cur->err)
		return ST_MORE;
	if (b != 0 && lv->idx >= c->cfgv.drop_after_n_struct_fields)
		return ST_BAD;
	if (d->wire == TW_BINARY) {
		if (b != 0) {
			id = (int16_t)cur_be16(cur);
			if (cur->err)
				return ST_MORE;
		}
		type = b == 0 ? 0 : (uint8_t)binary_type(b);
	} else {
		uint8_t delta = b >> 4;

		if (b != 0 && delta == 0) {
			uint64_t v;
			enum step st = read_varint(cur, 5, &v);

			if (st != ST_OK)
				return st;
			id = (int16_t)zigzag32(v);
		} else if (b != 0) {
			id = lv->last_id + delta;
		}
		type = b == 0 ? 0 : (uint8_t)compact_type(b & 15);
		if (b != 0 && (b & 15) == 0)
			return ST_BAD;
	}
	if (top && d->first_open) {
		d->first_end = d->out.len;
		d->first_open = false;
	}
	if (b == 0) {
		pop(c, d);
		return ST_OK;
	}
	if (type == T_INVALID)
		return ST_BAD;
	lv->last_id = (int16_t)id;
	muted = element_prefix(c, d, lv, lv->idx);
	lv->idx++;
	if (!muted) {
		out_int(c, d, id, true); /* "%d: " */
	}
	if (top && lv->idx == 1) {
		d->first_id = id < 0 ? INT32_MAX : id; /* a negative id is no return value */
		d->first_start = d->out.len;
		d->first_open = true;
	}
	if (d->wire == TW_COMPACT && ((b & 15) == 1 || (b & 15) == 2)) {
		render_bool(c, d, muted, (b & 15) == 1);
		return ST_OK;
	}
	d->have_value = true;
	d->value_type = type;
	d->value_muted = muted;
	return ST_OK;
}

/* One step inside the body. */
static enum step body_step(struct thrift_conn *c, struct th_dir *d, struct cursor *cur)
{
	struct th_level *lv;

	if (d->have_value) {
		enum step st = read_value(c, d, cur);

		if (st == ST_OK)
			d->have_value = false;
		return st;
	}
	lv = &d->stack[d->depth - 1];
	if (lv->kind == LV_STRUCT)
		return read_field(c, d, cur);
	if (lv->left == 0) {
		pop(c, d);
		return ST_OK;
	}
	if (lv->kind == LV_MAP) {
		if (lv->left % 2 == 0) {
			d->value_muted = element_prefix(c, d, lv, lv->idx);
			lv->idx++;
			d->value_type = lv->t1;
		} else {
			d->value_muted = lv->muted || lv->idx - 1 >= c->cfgv.collection_max_size;
			if (!d->value_muted)
				out_put(c, d, ": ", 2);
			d->value_type = lv->t2;
		}
	} else {
		d->value_muted = element_prefix(c, d, lv, lv->idx);
		lv->idx++;
		d->value_type = lv->t1;
	}
	lv->left--;
	d->have_value = true;
	return ST_OK;
}

/* ---- proto_ops ------------------------------------------------------------------------ */

static int parse_choice(const char *v, const char *a, const char *a2, const char *b)
{
	if (!v || !v[0])
		return -1;
	if (strcmp(v, a) == 0 || (a2 && strcmp(v, a2) == 0))
		return 0;
	if (strcmp(v, b) == 0)
		return 1;
	return -1;
}

static void *thrift_conn_new(const struct conn_info *info)
{
	const struct cfg_proto *cfg = info ? info->cfg : NULL;
	struct thrift_conn *c = hb_malloc(sizeof(*c));

	if (!c)
		return NULL;
	/* all zero but the per-direction buffers (struct th_dir) */
	memset(c, 0, offsetof(struct thrift_conn, dir));
	for (int i = 0; i < 2; i++)
		memset(&c->dir[i], 0, offsetof(struct th_dir, method));
	/* a copy, with every unset (zero) limit at its default: a table that was
	 * not filled by the config loader (tests) still gets sane limits */
	c->cfgv = cfg && cfg->priv ? *(const struct thrift_config *)cfg->priv : thrift_defaults;
	if (!c->cfgv.string_max_size)
		c->cfgv.string_max_size = TH_DEF_STRING_MAX;
	if (!c->cfgv.collection_max_size)
		c->cfgv.collection_max_size = TH_DEF_COLLECTION_MAX;
	if (!c->cfgv.drop_after_n_struct_fields)
		c->cfgv.drop_after_n_struct_fields = TH_DEF_DROP_AFTER;
	if (!c->cfgv.max_depth || c->cfgv.max_depth > TH_MAX_DEPTH)
		c->cfgv.max_depth = TH_DEF_DEPTH;
	if (!c->cfgv.max_method_size || c->cfgv.max_method_size > TH_METHOD_CAP)
		c->cfgv.max_method_size = TH_DEF_METHOD;
	if (!c->cfgv.max_frame_size)
		c->cfgv.max_frame_size = TH_DEF_FRAME;
	if (!c->cfgv.max_rendered_size)
		c->cfgv.max_rendered_size = TH_DEF_RENDERED;
	c->force_framed = parse_choice(c->cfgv.transport_type, "socket", "buffered", "framed");
	c->force_wire = parse_choice(c->cfgv.protocol_type, "binary", NULL, "compact");
	c->max_msg = cfg && cfg->max_message_size ? cfg->max_message_size : TH_DEF_MAX_MSG;
	c->timeout = cfg && cfg->transaction_timeout ? cfg->transaction_timeout : TH_DEF_TIMEOUT;
	c->send_request = cfg && cfg->send_request;
	c->send_response = cfg && cfg->send_response;
	c->pend_cap = cfg && cfg->max_pending ? cfg->max_pending : TH_DEF_PENDING;
	c->pend = hb_malloc(c->pend_cap * sizeof(c->pend[0])); /* written before read */
	if (!c->pend) {
		hb_free(c);
		return NULL;
	}
	strbuf_init(&c->scratch);
	for (int i = 0; i < 2; i++) {
		strbuf_init(&c->dir[i].out);
		msg_reset(&c->dir[i]);
		c->dir[i].state = TS_START;
	}
	c->m_malformed = metrics_counter("thrift.malformed_messages");
	c->m_frames_skipped = metrics_counter("thrift.frames_skipped");
	c->m_oneway = metrics_counter("thrift.presumed_oneway");
	return c;
}

static struct parse_result thrift_parse(void *conn, enum proto_dir dir, const uint8_t *data,
					size_t len, struct proto_ctx *ctx)
{
	struct thrift_conn *c = conn;
	struct th_dir *d = &c->dir[dir];
	struct parse_result r = {PARSE_OK, 0, 0};
	size_t off = 0;

	while (off < len) {
		size_t avail = len - off, lim = avail;
		struct cursor cur;
		enum step st = ST_OK;
		bool at_frame_end = false;

		if (!d->in_msg && (d->state == TS_START || d->state == TS_HEADER)) {
			d->in_msg = true;
			d->msg_ts = ctx->ts;
		}
		if (d->framed && d->state != TS_START) {
			if (d->frame_left <= avail) {
				lim = (size_t)d->frame_left;
				at_frame_end = true;
			}
		}
		cur_init(&cur, data + off, lim);
		switch (d->state) {
		case TS_SKIP: {
			size_t n = lim;

			off += n;
			d->frame_left -= n;
			if (d->frame_left == 0) {
				msg_reset(d);
				d->state = TS_START;
			}
			continue;
		}
		case TS_STRING: {
			size_t n = d->str_left < lim ? (size_t)d->str_left : lim;
			size_t room = c->cfgv.string_max_size - d->str_have;

			if (!d->str_muted && !d->str_stop) {
				size_t k = n < room ? n : room;
				const uint8_t *b = cur_bytes(&cur, k);

				if (b && k)
					memcpy(d->sbuf + d->str_have, b, k);
				d->str_have += k;
				if (n > room)
					d->str_trunc = true;
			}
			off += n;
			took(d, n);
			d->str_left -= n;
			if (d->str_left == 0) {
				if (!d->str_muted)
					render_string(c, d);
				d->state = TS_BODY;
			} else if (d->framed && d->frame_left == 0) {
				st = ST_BAD; /* the string runs past its frame */
				break;
			}
			continue;
		}
		case TS_START:
			if (!d->detected) {
				st = detect(c, d, data + off, avail);
				if (st == ST_MORE)
					goto more;
				if (st != ST_OK) {
					r.status = PARSE_ERROR;
					goto out;
				}
				d->detected = true;
			}
			if (d->framed) {
				uint32_t fl = cur_be32(&cur);

				if (cur.err)
					goto more;
				off += 4;
				if (fl & 0x80000000u) {
					r.status = PARSE_ERROR; /* not a frame length */
					goto out;
				}
				d->frame_len = fl;
				d->frame_left = fl;
				if (fl > c->cfgv.max_frame_size) {
					metric_inc(ctx->stats->limit_exceeded);
					metric_inc(c->m_frames_skipped);
					d->state = fl ? TS_SKIP : TS_START;
					continue;
				}
				if (fl == 0) {
					msg_reset(d);
					continue;
				}
			}
			d->state = TS_HEADER;
			continue;
		case TS_HEADER:
			st = read_header(c, d, &cur);
			if (st == ST_OK) {
				off += cur.off;
				took(d, cur.off);
				d->state = TS_BODY;
				strbuf_reset(&d->out);
				st = push(c, d, LV_STRUCT, 0, 0, 0,
					  (d->mtype == MT_REPLY || d->mtype == MT_EXCEPTION) &&
					      !c->cfgv.capture_reply);
			}
			break;
		case TS_BODY: {
			size_t done = 0;

			/* token after token on this cursor while the body goes on and
			 * bytes are left (as the outer loop would); the bytes are counted
			 * (took) before anything reads the counts */
			while ((st = body_step(c, d, &cur)) == ST_OK) {
				done = cur.off;
				if (d->depth == 0 || d->state != TS_BODY || !cur_left(&cur))
					break;
			}
			off += done;
			took(d, done);
			if (st == ST_OK && d->depth == 0)
				message_done(c, d, ctx);
			break;
		}
		}
		if (st == ST_OK)
			continue;
		if (st == ST_MORE && !at_frame_end)
			goto more;
		/* malformed, or a token running past the end of its frame */
		if (!d->framed) {
			r.status = PARSE_ERROR;
			goto out;
		}
		message_bad(c, d);
	}
	goto out;
more:
	r.status = PARSE_NEED_MORE;
	r.needed = 1;
out:
	r.consumed = off;
	return r;
}

/* Packet loss cut the current string: keep what was captured, marked cut. */
static void string_cut(struct th_dir *d)
{
	d->str_stop = true;
	if (!d->str_muted)
		d->str_trunc = true;
}

static int thrift_gap(void *conn, enum proto_dir dir, size_t n, struct proto_ctx *ctx)
{
	struct thrift_conn *c = conn;
	struct th_dir *d = &c->dir[dir];

	/* gaps and gap_drops are counted by the stream layer, which calls us. */
	if (d->framed && d->state != TS_START && n <= d->frame_left) {
		d->frame_left -= n;
		d->msg_bytes += n;
		if (d->state == TS_BODY || d->state == TS_STRING) {
			/* the header is known: publish what was rendered (no closing
			 * brackets: the text visibly ends where the loss began), noted */
			d->gap_lost = true;
			if (d->state == TS_STRING) {
				string_cut(d);
				if (!d->str_muted)
					render_string(c, d);
			}
			if (d->first_open) {
				d->first_end = d->out.len;
				d->first_open = false;
			}
			d->depth = 0;
			message_done(c, d, ctx);
		} else {
			msg_reset(d);
			d->state = d->frame_left ? TS_SKIP : TS_START;
		}
		return 0;
	}
	if (d->state == TS_STRING && n <= d->str_left) {
		/* only string bytes were lost: skip them, keep the text before */
		d->gap_lost = true;
		string_cut(d);
		d->str_left -= n;
		took(d, n);
		if (d->str_left == 0) {
			if (!d->str_muted)
				render_string(c, d);
			d->state = TS_BODY;
		}
		return 0;
	}
	return -1;
}

static void thrift_fin(void *conn, enum proto_dir dir, struct proto_ctx *ctx)
{
	struct thrift_conn *c = conn;

	/* the server closed: the calls still waiting will not be answered */
	if (dir == DIR_TO_CLIENT)
		pend_flush(c, ctx);
}

static void thrift_expire(void *conn, struct proto_ctx *ctx)
{
	pend_flush(conn, ctx);
}

static void thrift_conn_free(void *conn)
{
	struct thrift_conn *c = conn;

	if (!c)
		return;
	for (size_t i = 0; i < c->npend; i++)
		ev_pool_put(c->pend[i].ev);
	for (int i = 0; i < 2; i++) {
		hb_free(c->dir[i].sbuf);
		strbuf_free(&c->dir[i].out);
	}
	strbuf_free(&c->scratch);
	hb_free(c->pend);
	hb_free(c);
}

const struct proto_ops thrift_proto = {
    .name = "thrift",
    .transports = PROTO_TCP,
    .default_ports = thrift_ports,
    .ndefault_ports = sizeof(thrift_ports) / sizeof(thrift_ports[0]),
    .config = thrift_config_fields,
    .nconfig = sizeof(thrift_config_fields) / sizeof(thrift_config_fields[0]),
    .config_size = sizeof(struct thrift_config),
    .conn_new = thrift_conn_new,
    .parse = thrift_parse,
    .gap = thrift_gap,
    .fin = thrift_fin,
    .expire = thrift_expire,
    .conn_free = thrift_conn_free,
};
