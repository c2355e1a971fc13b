/* mongodb.c — MongoDB wire protocol transactions over TCP (Packetbeat's "mongodb").
 *
 * Specs: https://www.mongodb.com/docs/manual/reference/mongodb-wire-protocol/ (OP_MSG,
 * OP_COMPRESSED, and the legacy opcodes OP_REPLY/QUERY/GET_MORE/INSERT/UPDATE/DELETE/
 * KILL_CURSORS), BSON 1.1 https://bsonspec.org/spec.html. Event fields follow
 * Packetbeat 8 (docs/reference/packetbeat.md §1.8, §2.3, §2.4; ecosystem.md §1.2).
 *
 *   header    int32 messageLength (includes the header) | int32 requestID |
 *             int32 responseTo | int32 opCode                  (all little-endian)
 *   OP_MSG    uint32 flagBits | section+ | [uint32 CRC-32C if flagBits & 1]
 *             section kind 0: BSON body document
 *             section kind 1: int32 size | cstring identifier | BSON document*
 *   OP_QUERY  int32 flags | cstring fullCollectionName | int32 numberToSkip |
 *             int32 numberToReturn | query doc | [returnFieldsSelector doc]
 *   OP_REPLY  int32 flags | int64 cursorID | int32 startingFrom |
 *             int32 numberReturned | doc*
 *   OP_GET_MORE  int32 0 | cstring ns | int32 numberToReturn | int64 cursorID
 *   OP_INSERT int32 flags | cstring ns | doc*
 *   OP_UPDATE int32 0 | cstring ns | int32 flags | selector doc | update doc
 *   OP_DELETE int32 0 | cstring ns | int32 flags | selector doc
 *   OP_KILL_CURSORS  int32 0 | int32 n | int64 cursorID*
 *   OP_COMPRESSED    int32 originalOpcode | int32 uncompressedSize | uint8 compressorId |
 *                    compressed bytes (not decoded)
 *   BSON doc  int32 length (includes itself and the 0 terminator) | element* | 0x00
 *   element   uint8 type | cstring name | value (size by type)
 *
 * Streaming: a message may be up to max_wire_message_size (48 MB) long, far more than
 * the stream layer buffers, so a message is consumed piece by piece: the header, a
 * bounded op prefix, then one BSON document at a time. A document up to max_doc_bytes
 * is walked whole once it is complete; a larger one is walked over its first
 * max_doc_bytes bytes (best effort, counted in mongodb.docs_truncated) and the rest is
 * consumed without being kept. Nothing else is buffered: what the event needs is
 * written into it as it is found, and only the rendered text of what is exported is
 * kept (capped) until the message ends.
 *
 * Transactions: a reply's responseTo is the request's requestID. Requests that expect
 * a reply (OP_QUERY, OP_GET_MORE, OP_MSG without moreToCome, OP_COMPRESSED of those)
 * wait in a txn_fifo with their ids beside it (same order); a reply takes the request
 * with its id, wherever it is in the FIFO. OP_INSERT/UPDATE/DELETE/KILL_CURSORS and
 * OP_MSG with moreToCome expect no reply: they are published as OK without response,
 * as Packetbeat does. An exhaust reply stream (OP_MSG replies with moreToCome, each
 * answering the previous one) is paired only with its first reply; the rest are
 * parsed and counted (mongodb.exhaust_replies). Direction decides request vs reply
 * (OP_MSG travels both ways).
 *
 * Errors: a reply is status Error with mongodb.error when its first document has
 * "$err", "writeErrors", "ok": 0 (with "errmsg") or "writeConcernError".
 * Malformed BSON inside a well-framed message is contained: that document is dropped
 * and counted (mongodb.malformed); only an impossible header ends the connection.
 *
 * Resync: a direction that has not parsed a message yet (a fresh conn that may start
 * mid-stream after a gap) slides byte by byte until a plausible header appears,
 * counting mongodb.resync_skipped_bytes, and gives up after MG_RESYNC_MAX bytes.
 */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hostbeat/base64.h"
#include "hostbeat/cursor.h"
#include "hostbeat/event.h"
#include "hostbeat/mem.h"
#include "hostbeat/numtext.h"
#include "hostbeat/metrics.h"
#include "hostbeat/proto.h"
#include "hostbeat/strbuf.h"

/* The one exported symbol (listed in net/proto/registry.c). */
extern const struct proto_ops mongodb_proto;

#define MG_HDR 16
#define MG_MAX_DEPTH 32  /* BSON nesting walked */
#define MG_MAX_CSTR 1024 /* fullCollectionName, sequence identifier */
#define MG_PREFIX_WINDOW (MG_MAX_CSTR + 32)
#define MG_RESYNC_MAX (64u << 10) /* junk skipped before giving up on a direction */
#define MG_LOST_IDS 16            /* requests that got no event, remembered by id */
#define MG_DEF_TIMEOUT (10ull * 1000000000ull)
#define MG_DEF_MAX_PENDING 64
#define MG_DEF_MAX_MESSAGE (10u << 20)
#define MG_METHOD_MAX 64
#define MG_RESOURCE_MAX 512

enum mg_opcode {
	OP_REPLY = 1,
	OP_UPDATE = 2001,
	OP_INSERT = 2002,
	OP_QUERY = 2004,
	OP_GET_MORE = 2005,
	OP_DELETE = 2006,
	OP_KILL_CURSORS = 2007,
	OP_COMPRESSED = 2012,
	OP_MSG = 2013,
};

#define MSG_CHECKSUM_PRESENT 0x1u
#define MSG_MORE_TO_COME 0x2u
#define MSG_REQUIRED_BITS 0xffffu /* bits 0-15: unknown ones set = invalid message */
#define MSG_KNOWN_BITS 0x3u

/* Private configuration (cfg_proto.priv), filled from mongodb_config_fields. */
struct mongodb_config {
	uint64_t max_docs;
	uint64_t max_doc_length;
	uint64_t max_doc_bytes;
	uint64_t max_wire_message_size;
};

static const struct cfg_field mongodb_config_fields[] = {
    {"max_docs", CFG_UINT, offsetof(struct mongodb_config, max_docs), "10",
     "documents exported per response (0 = all); more are marked [...]", 0, 1 << 20},
    {"max_doc_length", CFG_UINT, offsetof(struct mongodb_config, max_doc_length), "5000",
     "characters of one rendered document (0 = up to max_message_size); longer end in ' ...'", 0,
     1 << 30},
    {"max_doc_bytes", CFG_SIZE, offsetof(struct mongodb_config, max_doc_bytes), "64KiB",
     "largest BSON document walked whole (keep <= tcp.max_buffer); larger ones are walked "
     "over this prefix and the rest skipped",
     64, 16 << 20},
    {"max_wire_message_size", CFG_SIZE, offsetof(struct mongodb_config, max_wire_message_size),
     "48000000", "largest messageLength accepted (MongoDB's maxMessageSizeBytes)", 64, 1 << 30},
};

static const struct mongodb_config mongodb_defaults = {
    .max_docs = 10,
    .max_doc_length = 5000,
    .max_doc_bytes = 64u << 10,
    .max_wire_message_size = 48000000,
};

static const uint16_t mongodb_ports[] = {27017};

enum mg_state {
	MS_HEADER,   /* at a message boundary */
	MS_PREFIX,   /* the op's fixed fields and cstrings */
	MS_ITEM,     /* deciding what comes next: a section, a document, the end */
	MS_DOC,      /* one BSON document (role in mg_dir.role) */
	MS_SKIP_DOC, /* the tail of an oversize document */
	MS_SKIP,     /* the rest of the message (not decoded, or the checksum) */
};

enum mg_role {
	R_QUERY,    /* OP_QUERY query */
	R_FIELDS,   /* OP_QUERY returnFieldsSelector */
	R_SELECTOR, /* OP_UPDATE / OP_DELETE selector */
	R_UPDATE,   /* OP_UPDATE update */
	R_INSERT,   /* OP_INSERT documents */
	R_REPLY,    /* OP_REPLY documents */
	R_BODY,     /* OP_MSG kind 0 */
	R_SEQ,      /* OP_MSG kind 1 documents */
};

enum step { STEP_OK, STEP_MORE, STEP_ERR };

/* One direction's resume state; the message facts live only until it ends. */
struct mg_dir {
	enum mg_state state;
	enum mg_role role;
	bool synced;       /* a message was parsed in this direction */
	bool ts_set;       /* msg_ts holds the time of the current message's first byte */
	bool lost;         /* bytes of the current message were lost (gap) */
	bool bad;          /* malformed content seen (counted once per message) */
	bool in_seq;       /* inside an OP_MSG kind-1 section */
	bool continuation; /* exhaust reply after the first one: not reported */
	bool unmatched;    /* reply without a request; request: taken by an early reply */
	bool ignored;      /* a message we do not decode (unknown opcode): skipped */
	bool expects_reply;
	bool has_batch; /* OP_MSG reply: a cursor batch was found */
	bool err_set;   /* mongodb.error written */
	bool docs_more; /* response lines: "[...]" written */
	uint64_t msg_ts;
	uint64_t resync_skipped;
	uint32_t msg_len;
	uint32_t left;    /* bytes of the current message not consumed yet */
	uint32_t trailer; /* checksum bytes at the end of the message (0 or 4) */
	uint32_t seq_left;
	uint32_t doc_skip;
	int32_t request_id, response_to, opcode;
	uint32_t flags; /* OP_MSG flagBits */
	unsigned item;  /* documents seen in this message */
	uint64_t batch; /* OP_MSG reply: documents in cursor.firstBatch/nextBatch */
	unsigned nlines;
	struct event *ev; /* the transaction this message fills (owned while set) */
	/* request facts, written into the event when the request ends */
	size_t method_len, resource_len; /* the text in method[] and resource[], below */
	int64_t skip, limit;             /* OP_QUERY numberToSkip / numberToReturn */
	/* Last, and not cleared by mongodb_conn_new(): read only up to the lengths
	 * above (kept NUL-terminated too). */
	char method[MG_METHOD_MAX];
	char resource[MG_RESOURCE_MAX];
};

struct mg_conn {
	const struct mongodb_config *mc;
	size_t max_docs, max_doc_len, max_doc_bytes, max_wire, max_msg;
	uint64_t timeout;
	bool send_request, send_response;
	struct txn_fifo fifo;
	int32_t *ids; /* requestIDs of the FIFO's events, same order; fifo.cap slots */
	size_t nids;
	int32_t lost_ids[MG_LOST_IDS]; /* ring: requests whose event was not available */
	size_t nlost, lost_pos;
	bool exhaust; /* an exhaust stream is running: replies to exhaust_id continue it */
	int32_t exhaust_id;
	struct strbuf pshort, pfull; /* request params for `query` / `request` */
	struct strbuf lines;         /* response documents, one per line */
	struct strbuf tmp;           /* one rendered value */
	struct metric *m_compressed, *m_unknown, *m_truncated, *m_malformed, *m_exhaust, *m_resync;
	struct mg_dir dir[2]; /* last: see the end of struct mg_dir */
};

/* ---- BSON: element iterator ---------------------------------------------------- */

enum bson_type {
	BT_DOUBLE = 0x01,
	BT_STRING = 0x02,
	BT_DOC = 0x03,
	BT_ARRAY = 0x04,
	BT_BINARY = 0x05,
	BT_UNDEFINED = 0x06,
	BT_OID = 0x07,
	BT_BOOL = 0x08,
	BT_DATE = 0x09,
	BT_NULL = 0x0a,
	BT_REGEX = 0x0b,
	BT_DBPOINTER = 0x0c,
	BT_JS = 0x0d,
	BT_SYMBOL = 0x0e,
	BT_JS_SCOPE = 0x0f,
	BT_INT32 = 0x10,
	BT_TIMESTAMP = 0x11,
	BT_INT64 = 0x12,
	BT_DECIMAL = 0x13,
	BT_MINKEY = 0xff,
	BT_MAXKEY = 0x7f,
};

/* The elements of one document. `trunc`: only a prefix of the document is present
 * (an oversize document); running out of bytes then ends the walk instead of being
 * an error, and the last element may be cut. */
struct bdoc {
	struct cursor c; /* over the element list */
	bool trunc;
	bool cut; /* the walk ended at the cut, not at the terminator */
};

struct belem {
	uint8_t type;
	uint8_t subtype; /* binary */
	bool cut;        /* the value runs past the bytes present */
	const uint8_t *name;
	size_t nlen;
	const uint8_t *v; /* string: its bytes (no NUL); doc/array/js_scope: the whole value;
			     binary: payload; regex: pattern; dbpointer: ns; else: the value */
	size_t vlen;
	const uint8_t *v2; /* regex options, dbpointer ObjectId */
	size_t v2len;
};

static inline uint32_t le32_at(const uint8_t *p)
{
	struct cursor c;

	cur_init(&c, p, 4);
	return cur_le32(&c);
}

/* Open the document p[0..avail): avail == its declared length unless trunc. */
static int bdoc_open(struct bdoc *d, const uint8_t *p, size_t avail, bool trunc)
{
	uint32_t decl;

	memset(d, 0, sizeof(*d));
	d->trunc = trunc;
	if (avail < 4)
		return -1;
	decl = le32_at(p);
	if (!trunc) {
		if (decl < 5 || decl != avail || p[avail - 1] != 0)
			return -1;
		cur_init(&d->c, p + 4, avail - 5);
	} else {
		if (decl < 5)
			return -1;
		cur_init(&d->c, p + 4, avail - 4);
	}
	return 0;
}

/* A cstring at the cursor: its bytes without the NUL, cursor past the NUL. Inline:
 * every BSON element name goes through here. */
static inline bool take_cstr(struct cursor *c, const uint8_t **s, size_t *n)
{
	size_t left = cur_left(c);
	const uint8_t *p = c->p + c->off;
	const uint8_t *nul = left ? memchr(p, 0, left) : NULL;

	if (!nul)
		return false;
	*s = p;
	*n = (size_t)(nul - p);
	cur_skip(c, *n + 1);
	return true;
}

/* The value runs past the bytes present: in a truncated document keep what is there
 * (documents and strings can be walked in part), else it is malformed. */
static int elem_cut(struct bdoc *d, struct cursor *c, struct belem *e, const uint8_t *v,
		    bool partial_ok)
{
	if (!d->trunc)
		return -1;
	d->cut = true;
	if (!partial_ok)
		return 0;
	e->cut = true;
	e->v = v;
	e->vlen = c->len - (size_t)(v - c->p);
	cur_seek(c, c->len);
	return 1;
}

/* Next element: 1, 0 at the end, -1 when malformed. Every length read from the wire
 * is checked against the bytes that remain in the enclosing document. */
static int bson_next(struct bdoc *d, struct belem *e)
{
	struct cursor *c = &d->c;
	const uint8_t *v, *s;
	size_t fixed = 0;
	uint32_t len;

	if (cur_left(c) == 0)
		return 0;
	/* every path that returns 1 sets name and v; the rest is reset here */
	e->subtype = 0;
	e->cut = false;
	e->v2 = NULL;
	e->v2len = 0;
	e->type = cur_u8(c);
	if (e->type == 0)
		return -1; /* a terminator before the end of the document */
	if (!take_cstr(c, &e->name, &e->nlen)) {
		if (!d->trunc)
			return -1;
		d->cut = true;
		return 0;
	}
	v = c->p + c->off;
	switch (e->type) {
	case BT_DOUBLE:
	case BT_DATE:
	case BT_TIMESTAMP:
	case BT_INT64:
		fixed = 8;
		break;
	case BT_OID:
		fixed = 12;
		break;
	case BT_BOOL:
		fixed = 1;
		break;
	case BT_INT32:
		fixed = 4;
		break;
	case BT_DECIMAL:
		fixed = 16;
		break;
	case BT_UNDEFINED:
	case BT_NULL:
	case BT_MINKEY:
	case BT_MAXKEY:
		fixed = 0;
		break;
	case BT_STRING:
	case BT_JS:
	case BT_SYMBOL:
		if (cur_left(c) < 4)
			return elem_cut(d, c, e, v, false);
		len = cur_le32(c);
		if (len < 1 || len > INT32_MAX)
			return -1;
		if (cur_left(c) < len)
			return elem_cut(d, c, e, v + 4, true);
		e->v = cur_bytes(c, len);
		e->vlen = len - 1;
		return e->v[len - 1] == 0 ? 1 : -1;
	case BT_DOC:
	case BT_ARRAY:
	case BT_JS_SCOPE:
		if (cur_left(c) < 4)
			return elem_cut(d, c, e, v, false);
		len = le32_at(v);
		if (len < (e->type == BT_JS_SCOPE ? 14u : 5u) || len > INT32_MAX)
			return -1;
		if (cur_left(c) < len)
			return elem_cut(d, c, e, v, e->type != BT_JS_SCOPE);
		e->v = cur_bytes(c, len);
		e->vlen = len;
		return e->type == BT_JS_SCOPE || e->v[len - 1] == 0 ? 1 : -1;
	case BT_BINARY:
		if (cur_left(c) < 5)
			return elem_cut(d, c, e, v, false);
		len = cur_le32(c);
		if (len > INT32_MAX)
			return -1;
		e->subtype = cur_u8(c);
		if (cur_left(c) < len)
			return elem_cut(d, c, e, v + 5, true);
		e->v = cur_bytes(c, len);
		e->vlen = len;
		return 1;
	case BT_REGEX:
		if (!take_cstr(c, &e->v, &e->vlen) || !take_cstr(c, &e->v2, &e->v2len))
			return elem_cut(d, c, e, v, false);
		return 1;
	case BT_DBPOINTER:
		if (cur_left(c) < 4)
			return elem_cut(d, c, e, v, false);
		len = cur_le32(c);
		if (len < 1 || len > INT32_MAX)
			return -1;
		if (cur_left(c) < (size_t)len + 12)
			return elem_cut(d, c, e, v, false);
		s = cur_bytes(c, len);
		if (s[len - 1] != 0)
			return -1;
		e->v = s;
		e->vlen = len - 1;
		e->v2 = cur_bytes(c, 12);
		e->v2len = 12;
		return 1;
	default:
		return -1;
	}
	if (cur_left(c) < fixed)
		return elem_cut(d, c, e, v, false);
	e->v = cur_bytes(c, fixed);
	e->vlen = fixed;
	if (e->type == BT_BOOL && e->v[0] > 1)
		return -1;
	return 1;
}

static inline bool name_is(const struct belem *e, const char *z)
{
	size_t n = strlen(z);

	return e->nlen == n && memcmp(e->name, z, n) == 0;
}

static bool name_ieq(const uint8_t *p, size_t n, const char *z)
{
	if (strlen(z) != n)
		return false;
	for (size_t i = 0; i < n; i++) {
		uint8_t a = p[i], b = (uint8_t)z[i];

		if (a >= 'A' && a <= 'Z')
			a = (uint8_t)(a + 32);
		if (b >= 'A' && b <= 'Z')
			b = (uint8_t)(b + 32);
		if (a != b)
			return false;
	}
	return true;
}

static inline int64_t le64s(const uint8_t *p)
{
	struct cursor c;

	cur_init(&c, p, 8);
	return (int64_t)cur_le64(&c);
}

static double le_double(const uint8_t *p)
{
	struct cursor c;
	uint64_t bits;
	double v;

	cur_init(&c, p, 8);
	bits = cur_le64(&c);
	memcpy(&v, &bits, sizeof(v));
	return v;
}

/* A numeric element as a double (int32, int64, double, bool); false otherwise. */
static bool elem_number(const struct belem *e, double *out)
{
	if (e->cut)
		return false;
	switch (e->type) {
	case BT_DOUBLE:
		*out = le_double(e->v);
		return true;
	case BT_INT32:
		*out = (double)(int32_t)le32_at(e->v);
		return true;
	case BT_INT64:
		*out = (double)le64s(e->v);
		return true;
	case BT_BOOL:
		*out = e->v[0];
		return true;
	default:
		return false;
	}
}

static bool elem_int64(const struct belem *e, int64_t *out)
{
	if (e->cut)
		return false;
	if (e->type == BT_INT64) {
		*out = le64s(e->v);
		return true;
	}
	if (e->type == BT_INT32) {
		*out = (int32_t)le32_at(e->v);
		return true;
	}
	return false;
}

/* ---- BSON: rendering as JSON-ish text (Packetbeat's doc2str) ---------------------- */

/* Output into sb, never past `limit` bytes of it; `cut` once it stopped there. */
struct rnd {
	struct strbuf *sb;
	size_t limit;
	bool cut;
	bool bad;
};

static inline void r_put(struct rnd *r, const void *s, size_t n)
{
	size_t room;

	if (r->cut)
		return;
	room = r->limit > r->sb->len ? r->limit - r->sb->len : 0;
	if (n > room) {
		n = room;
		r->cut = true;
	}
	strbuf_append(r->sb, s, n);
}

static inline void r_puts(struct rnd *r, const char *s)
{
	r_put(r, s, strlen(s));
}

static void r_str(struct rnd *r, const uint8_t *p, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	struct strbuf *sb = r->sb;
	size_t i, run = 0;

	/* the common case, nothing to escape and room for all: one copy */
	for (i = 0; i < n && p[i] >= 0x20 && p[i] != '"' && p[i] != '\\'; i++)
		;
	if (i == n && !r->cut && sb->len <= r->limit && r->limit - sb->len >= n + 2 &&
	    (sb->cap - sb->len >= n + 2 || strbuf_grow(sb, n + 2) == 0)) {
		sb->p[sb->len] = '"';
		memcpy(sb->p + sb->len + 1, p, n);
		sb->p[sb->len + 1 + n] = '"';
		sb->len += n + 2;
		return;
	}
	r_put(r, "\"", 1);
	for (i = 0; i < n && !r->cut; i++) {
		uint8_t ch = p[i];
		char esc[6];

		if (ch >= 0x20 && ch != '"' && ch != '\\')
			continue;
		r_put(r, p + run, i - run);
		run = i + 1;
		esc[0] = '\\';
		if (ch == '"' || ch == '\\') {
			esc[1] = (char)ch;
			r_put(r, esc, 2);
		} else if (ch == '\n' || ch == '\r' || ch == '\t') {
			esc[1] = ch == '\n' ? 'n' : ch == '\r' ? 'r' : 't';
			r_put(r, esc, 2);
		} else {
			esc[1] = 'u';
			esc[2] = '0';
			esc[3] = '0';
			esc[4] = hex[ch >> 4];
			esc[5] = hex[ch & 15];
			r_put(r, esc, 6);
		}
	}
	if (run < n)
		r_put(r, p + run, n - run);
	r_put(r, "\"", 1);
}

static void r_hex(struct rnd *r, const uint8_t *p, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	char buf[2];

	for (size_t i = 0; i < n; i++) {
		buf[0] = hex[p[i] >> 4];
		buf[1] = hex[p[i] & 15];
		r_put(r, buf, 2);
	}
}

/* Shortest text that reads back as v, plain notation for exponents in [-6, 21)
 * like Go's encoding/json. */
static void r_double(struct rnd *r, double v)
{
	char buf[48], e[48];
	int prec, ex;

	if (!isfinite(v)) {
		r_puts(r, "null");
		return;
	}
	for (prec = 1; prec < 17; prec++) {
		snprintf(buf, sizeof(buf), "%.*e", prec - 1, v);
		if (strtod(buf, NULL) == v)
			break;
	}
	snprintf(e, sizeof(e), "%.*e", prec - 1, v);
	ex = atoi(strchr(e, 'e') + 1);
	if (v != 0 && (ex < -6 || ex >= 21))
		snprintf(buf, sizeof(buf), "%.*g", prec, v);
	else
		snprintf(buf, sizeof(buf), "%.*f", prec - 1 - ex > 0 ? prec - 1 - ex : 0, v);
	r_puts(r, buf);
}

/* The text is made in a buffer so that the common case (room under the limit and
 * in the buffer) copies a fixed 24 bytes from where it starts, a copy of constant
 * size the compiler inlines, and counts only the text. */
static void r_int(struct rnd *r, int64_t v)
{
	char buf[48] = {0}; /* copied in part: no uninitialised bytes */
	char *end = buf + 24, *t = hb_i64_text(v, end);
	size_t n = (size_t)(end - t);
	struct strbuf *sb = r->sb;

	if (!r->cut && sb->len <= r->limit && r->limit - sb->len >= n && sb->cap - sb->len >= 24) {
		memcpy(sb->p + sb->len, t, 24);
		sb->len += n;
		return;
	}
	r_put(r, t, n);
}

/* UTC date from ms since the epoch, RFC 3339 with trailing zeros of the fraction
 * trimmed (Go's time.Time JSON); out of range years as a number. */
static void r_date(struct rnd *r, int64_t ms)
{
	char buf[64], fr[8];
	struct tm tm;
	time_t secs;
	int64_t frac;

	if (ms < -62135596800000LL || ms > 253402300799999LL) {
		r_int(r, ms);
		return;
	}
	frac = ms % 1000;
	secs = (time_t)(ms / 1000);
	if (frac < 0) {
		frac += 1000;
		secs--;
	}
	gmtime_r(&secs, &tm);
	if (frac == 0) {
		fr[0] = '\0';
	} else {
		snprintf(fr, sizeof(fr), ".%03d", (int)frac);
		for (size_t k = strlen(fr); fr[k - 1] == '0'; k--)
			fr[k - 1] = '\0';
	}
	snprintf(buf, sizeof(buf), "\"%04d-%02d-%02dT%02d:%02d:%02d%sZ\"", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, fr);
	r_puts(r, buf);
}

/* IEEE 754-2008 decimal128 (BID) as coefficient "E" exponent; NaN/Infinity by name. */
static void r_decimal(struct rnd *r, const uint8_t *p)
{
	uint32_t limb[4]; /* coefficient, most significant first */
	uint64_t lo, hi;
	char digits[48], buf[80];
	int nd = 0, ex;
	bool neg;

	lo = (uint64_t)le32_at(p) | (uint64_t)le32_at(p + 4) << 32;
	hi = (uint64_t)le32_at(p + 8) | (uint64_t)le32_at(p + 12) << 32;
	neg = hi >> 63;
	if (((hi >> 58) & 0x1f) == 0x1f) {
		r_puts(r, "{\"$numberDecimal\":\"NaN\"}");
		return;
	}
	if (((hi >> 58) & 0x1f) == 0x1e) {
		r_puts(r, neg ? "{\"$numberDecimal\":\"-Infinity\"}"
			      : "{\"$numberDecimal\":\"Infinity\"}");
		return;
	}
	if (((hi >> 61) & 3) == 3) {
		ex = (int)((hi >> 47) & 0x3fff) - 6176;
		hi = lo = 0; /* coefficient above 10^34: non-canonical, means zero */
	} else {
		ex = (int)((hi >> 49) & 0x3fff) - 6176;
		hi &= 0x1ffffffffffffull;
	}
	limb[0] = (uint32_t)(hi >> 32);
	limb[1] = (uint32_t)hi;
	limb[2] = (uint32_t)(lo >> 32);
	limb[3] = (uint32_t)lo;
	do { /* long division by 10 over 32-bit limbs */
		uint64_t rem = 0;

		for (int i = 0; i < 4; i++) {
			uint64_t cur = rem << 32 | limb[i];

			limb[i] = (uint32_t)(cur / 10);
			rem = cur % 10;
		}
		digits[nd++] = (char)('0' + rem);
	} while ((limb[0] | limb[1] | limb[2] | limb[3]) && nd < 40);
	buf[0] = '\0';
	{
		size_t o = 0;

		if (neg)
			buf[o++] = '-';
		while (nd)
			buf[o++] = digits[--nd];
		buf[o] = '\0';
		if (ex)
			snprintf(buf + o, sizeof(buf) - o, "E%d", ex);
	}
	r_puts(r, "{\"$numberDecimal\":\"");
	r_puts(r, buf);
	r_puts(r, "\"}");
}

static void r_base64(struct rnd *r, const uint8_t *p, size_t n)
{
	char out[BASE64_ENCODED_SIZE(48)];

	r_put(r, "\"", 1);
	for (size_t o = 0; o < n && !r->cut; o += 48) {
		size_t k = n - o < 48 ? n - o : 48;
		size_t w = base64_encode(p + o, k, out, sizeof(out));

		r_put(r, out, w);
	}
	r_put(r, "\"", 1);
}

/* Top-level filter: render only the elements for which keep() is true. */
struct keep_rule {
	bool (*keep)(const struct belem *e, const void *arg);
	const void *arg;
};

static void render_doc(struct rnd *r, const uint8_t *p, size_t n, bool trunc, bool array,
		       unsigned depth, const struct keep_rule *rule, unsigned *kept);

static void render_value(struct rnd *r, const struct belem *e, unsigned depth)
{
	switch (e->type) {
	case BT_DOUBLE:
		r_double(r, le_double(e->v));
		break;
	case BT_STRING:
	case BT_JS:
	case BT_SYMBOL:
		r_str(r, e->v, e->vlen);
		break;
	case BT_DOC:
	case BT_ARRAY:
		render_doc(r, e->v, e->vlen, e->cut, e->type == BT_ARRAY, depth + 1, NULL, NULL);
		break;
	case BT_BINARY:
		r_base64(r, e->v, e->vlen);
		break;
	case BT_UNDEFINED:
	case BT_NULL:
		r_puts(r, "null");
		break;
	case BT_OID:
		r_put(r, "\"", 1);
		r_hex(r, e->v, 12);
		r_put(r, "\"", 1);
		break;
	case BT_BOOL:
		r_puts(r, e->v[0] ? "true" : "false");
		break;
	case BT_DATE:
		r_date(r, le64s(e->v));
		break;
	case BT_REGEX:
		r_puts(r, "{\"$regex\":");
		r_str(r, e->v, e->vlen);
		r_puts(r, ",\"$options\":");
		r_str(r, e->v2, e->v2len);
		r_put(r, "}", 1);
		break;
	case BT_DBPOINTER:
		r_puts(r, "{\"$ref\":");
		r_str(r, e->v, e->vlen);
		r_puts(r, ",\"$id\":\"");
		r_hex(r, e->v2, 12);
		r_puts(r, "\"}");
		break;
	case BT_JS_SCOPE: {
		/* int32 total | string (int32 len, bytes, NUL) | scope document */
		struct cursor c;
		uint32_t slen;
		const uint8_t *s;

		cur_init(&c, e->v, e->vlen);
		cur_skip(&c, 4);
		slen = cur_le32(&c);
		if (c.err || slen < 1 || cur_left(&c) < slen) {
			r->bad = true;
			return;
		}
		s = cur_bytes(&c, slen);
		if (s[slen - 1] != 0 || cur_left(&c) < 5 || le32_at(c.p + c.off) != cur_left(&c)) {
			r->bad = true;
			return;
		}
		r_puts(r, "{\"$code\":");
		r_str(r, s, slen - 1);
		r_puts(r, ",\"$scope\":");
		render_doc(r, c.p + c.off, cur_left(&c), false, false, depth + 1, NULL, NULL);
		r_put(r, "}", 1);
		break;
	}
	case BT_INT32:
		r_int(r, (int32_t)le32_at(e->v));
		break;
	case BT_TIMESTAMP:
	case BT_INT64:
		r_int(r, le64s(e->v));
		break;
	case BT_DECIMAL:
		r_decimal(r, e->v);
		break;
	case BT_MINKEY:
		r_puts(r, "{\"$minKey\":1}");
		break;
	case BT_MAXKEY:
		r_puts(r, "{\"$maxKey\":1}");
		break;
	default:
		r->bad = true;
		break;
	}
}

/* Render the document p[0..n) ({"k":v,...} or [v,...]). Depth is bounded; malformed
 * BSON sets r->bad and stops. `kept` counts the elements written at this level. */
static void render_doc(struct rnd *r, const uint8_t *p, size_t n, bool trunc, bool array,
		       unsigned depth, const struct keep_rule *rule, unsigned *kept)
{
	struct bdoc d;
	struct belem e;
	unsigned k = 0;
	int rc;

	if (depth > MG_MAX_DEPTH || bdoc_open(&d, p, n, trunc) < 0) {
		r->bad = true;
		return;
	}
	r_put(r, array ? "[" : "{", 1);
	while (!r->cut && !r->bad && (rc = bson_next(&d, &e)) != 0) {
		if (rc < 0) {
			r->bad = true;
			break;
		}
		if (rule && !rule->keep(&e, rule->arg))
			continue;
		if (k++)
			r_put(r, ",", 1);
		if (!array) {
			r_str(r, e.name, e.nlen);
			r_put(r, ":", 1);
		}
		render_value(r, &e, depth);
	}
	r_put(r, array ? "]" : "}", 1);
	if (kept)
		*kept = k;
}

/* ---- small helpers ---------------------------------------------------------------- */

/* mongodb.cursorId, replacing one the request or an earlier document set. Every
 * mongodb.cursorId field is added with this very key pointer, so a pass comparing
 * pointers tells whether there is one to remove (ev_remove compares text). */
static const char K_CURSOR_ID[] = "mongodb.cursorId";

static void replace_cursor_id(struct event *ev, int64_t id)
{
	for (size_t i = 0; i < ev->nfields; i++) {
		if (ev->fields[i].key == K_CURSOR_ID) {
			ev_remove(ev, K_CURSOR_ID);
			break;
		}
	}
	ev_set_int(ev, K_CURSOR_ID, id);
}

/* dst = src[0..n) cut to fit and NUL-terminated. Returns strlen(dst): a BSON string
 * may hold a NUL, and the text ends there. */
static size_t copy_z(char *dst, size_t cap, const void *src, size_t n)
{
	const char *nul;

	if (n >= cap)
		n = cap - 1;
	memmove(dst, src, n); /* may be dst itself (join_ns) */
	dst[n] = '\0';
	nul = memchr(dst, 0, n);
	return nul ? (size_t)(nul - dst) : n;
}

/* dst = a "." b, cut to fit. Returns strlen(dst). */
static size_t join_ns(char *dst, size_t cap, const void *a, size_t an, const void *b, size_t bn)
{
	size_t o = copy_z(dst, cap, a, an);

	if (cap - o < 2)
		return o;
	dst[o++] = '.';
	return o + copy_z(dst + o, cap - o, b, bn);
}

static void mark_bad(struct mg_conn *c, struct mg_dir *d)
{
	if (!d->bad) {
		d->bad = true;
		metric_inc(c->m_malformed);
		if (d->ev)
			txn_add_note(d->ev, "Malformed MongoDB message");
	}
}

/* Cap for one rendered document. */
static size_t doc_cap(const struct mg_conn *c)
{
	return c->max_doc_len ? c->max_doc_len : c->max_msg;
}

/* Render p[0..n) (or one element value when e != NULL) into c->tmp with the document
 * cap, Packetbeat style (" ..." after a cut). Returns false when malformed. */
static bool render_tmp(struct mg_conn *c, const struct belem *e, const uint8_t *p, size_t n,
		       bool trunc, const struct keep_rule *rule, unsigned *kept)
{
	struct rnd r = {&c->tmp, 0, false, false};

	strbuf_reset(&c->tmp);
	r.limit = doc_cap(c);
	if (e)
		render_value(&r, e, 0);
	else
		render_doc(&r, p, n, trunc, false, 0, rule, kept);
	if (r.bad)
		return false;
	if (r.cut || trunc || (e && e->cut))
		strbuf_puts(&c->tmp, " ...");
	return !c->tmp.err;
}

/* Append the document as one response line (max_docs, "[...]" after the last). */
static void add_line(struct mg_conn *c, struct mg_dir *d, const uint8_t *p, size_t n, bool trunc)
{
	if (!c->send_response || !d->ev || d->docs_more)
		return;
	if (c->max_docs && d->nlines >= c->max_docs) {
		d->docs_more = true;
		if (c->lines.len + 6 <= c->max_msg)
			strbuf_puts(&c->lines, "\n[...]");
		return;
	}
	if (!render_tmp(c, NULL, p, n, trunc, NULL, NULL))
		return;
	if (c->lines.len + 1 + c->tmp.len > c->max_msg) {
		d->docs_more = true;
		return;
	}
	if (d->nlines++)
		strbuf_putc(&c->lines, '\n');
	strbuf_append(&c->lines, c->tmp.p, c->tmp.len);
}

static void set_tmp(struct mg_conn *c, struct event *ev, const char *key)
{
	if (ev)
		ev_set_str(ev, key, c->tmp.p, c->tmp.len);
}

/* ---- pending requests: the FIFO plus their ids --------------------------------- */

static bool same_event(const struct event *ev, const void *arg)
{
	return ev == arg;
}

static void pend_expire(struct mg_conn *c, struct proto_ctx *ctx)
{
	size_t before = c->fifo.len, gone;

	txn_fifo_expire(&c->fifo, ctx, c->timeout, "Unmatched request");
	gone = before - c->fifo.len; /* expiry pops from the head */
	if (gone) {
		memmove(c->ids, c->ids + gone, (c->nids - gone) * sizeof(*c->ids));
		c->nids -= gone;
	}
}

static void pend_flush(struct mg_conn *c, struct proto_ctx *ctx)
{
	txn_fifo_flush(&c->fifo, ctx, "Unmatched request");
	c->nids = 0;
}

static void pend_push(struct mg_conn *c, struct event *ev, int32_t id, struct proto_ctx *ctx)
{
	if (c->fifo.len >= c->fifo.cap) {
		metric_inc(ctx->stats->limit_exceeded);
		txn_publish_unmatched(ctx, txn_fifo_pop(&c->fifo), "Unmatched request", true);
		memmove(c->ids, c->ids + 1, (c->nids - 1) * sizeof(*c->ids));
		c->nids--;
	}
	txn_fifo_push(&c->fifo, ev);
	c->ids[c->nids++] = id;
}

static struct event *pend_take(struct mg_conn *c, int32_t id)
{
	struct event *ev = c->fifo.head;
	size_t i;

	for (i = 0; i < c->nids && c->ids[i] != id; i++)
		;
	if (i == c->nids)
		return NULL;
	for (size_t k = 0; k < i && ev; k++)
		ev = ev->next;
	ev = ev ? txn_fifo_take(&c->fifo, same_event, ev) : NULL;
	memmove(c->ids + i, c->ids + i + 1, (c->nids - i - 1) * sizeof(*c->ids));
	c->nids--;
	return ev;
}

static void lost_add(struct mg_conn *c, int32_t id)
{
	c->lost_ids[c->lost_pos] = id;
	c->lost_pos = (c->lost_pos + 1) % MG_LOST_IDS;
	if (c->nlost < MG_LOST_IDS)
		c->nlost++;
}

static bool lost_take(struct mg_conn *c, int32_t id)
{
	for (size_t i = 0; i < c->nlost; i++) {
		if (c->lost_ids[i] == id) {
			c->lost_ids[i] = c->lost_ids[--c->nlost];
			c->lost_pos = c->nlost % MG_LOST_IDS;
			return true;
		}
	}
	return false;
}

/* ---- request documents --------------------------------------------------------- */

/* Commands whose first value names a collection (other string values, like
 * replSetHeartbeat's set name, do not). */
static bool names_collection(const char *method, size_t len)
{
#define NAME(z) z, sizeof(z) - 1
	static const struct {
		const char *name;
		size_t len;
	} cmds[] = {
	    {NAME("find")},
	    {NAME("insert")},
	    {NAME("update")},
	    {NAME("delete")},
	    {NAME("aggregate")},
	    {NAME("count")},
	    {NAME("distinct")},
	    {NAME("findAndModify")},
	    {NAME("findandmodify")},
	    {NAME("create")},
	    {NAME("drop")},
	    {NAME("listIndexes")},
	    {NAME("createIndexes")},
	    {NAME("dropIndexes")},
	    {NAME("collMod")},
	    {NAME("mapReduce")},
	    {NAME("mapreduce")},
	    {NAME("validate")},
	    {NAME("collStats")},
	    {NAME("geoNear")},
	    {NAME("geoSearch")},
	    {NAME("group")},
	    {NAME("compact")},
	    {NAME("reIndex")},
	    {NAME("convertToCapped")},
	    {NAME("cloneCollectionAsCapped")},
	    {NAME("dataSize")},
	    {NAME("parallelCollectionScan")},
	    {NAME("killCursors")},
	};
#undef NAME

	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (cmds[i].len == len && memcmp(method, cmds[i].name, len) == 0)
			return true;
	return false;
}

/* The key that carries the data of an insert/update/findandmodify command (left out
 * of `query`), or NULL for other commands. */
static const char *data_key(const struct mg_dir *d)
{
	const char *m = d->method;
	size_t n = d->method_len;

	if (n == 6 && memcmp(m, "insert", 6) == 0)
		return "documents";
	if (n == 6 && memcmp(m, "update", 6) == 0)
		return "updates";
	if (name_ieq((const uint8_t *)m, n, "findandmodify"))
		return "update";
	return NULL;
}

struct params_arg {
	bool drop_first;      /* the command key */
	bool drop_meta;       /* OP_MSG: "$db", "$clusterTime", "lsid", ... */
	const char *drop_key; /* `query`: also without the data (documents/updates/update) */
	unsigned idx;
};

static bool keep_param(const struct belem *e, const void *arg)
{
	struct params_arg *a = (struct params_arg *)arg; /* our own, non-const object */
	unsigned i = a->idx++;

	if (i == 0 && a->drop_first)
		return false;
	if (a->drop_meta &&
	    ((e->nlen && e->name[0] == '$') || name_is(e, "lsid") || name_is(e, "txnNumber") ||
	     name_is(e, "autocommit") || name_is(e, "startTransaction")))
		return false;
	return !(a->drop_key && e->nlen == strlen(a->drop_key) &&
		 memcmp(e->name, a->drop_key, e->nlen) == 0);
}

/* Packetbeat's params: the query document without the command key; `query` keeps
 * them only for insert/update/findandmodify, minus the data they carry. */
static void render_params(struct mg_conn *c, struct mg_dir *d, const uint8_t *p, size_t n,
			  bool trunc, bool is_cmd, bool meta)
{
	struct params_arg a = {is_cmd, meta, data_key(d), 0};
	struct keep_rule rule = {keep_param, &a};
	unsigned kept = 0;

	strbuf_reset(&c->pshort);
	strbuf_reset(&c->pfull);
	if (a.drop_key && render_tmp(c, NULL, p, n, trunc, &rule, &kept) && kept)
		strbuf_append(&c->pshort, c->tmp.p, c->tmp.len);
	if (!c->send_request)
		return;
	a.drop_key = NULL;
	a.idx = 0;
	if (!render_tmp(c, NULL, p, n, trunc, &rule, &kept))
		mark_bad(c, d);
	else if (kept)
		strbuf_append(&c->pfull, c->tmp.p, c->tmp.len);
}

/* OP_QUERY query document: a find, or a command when the namespace is "<db>.$cmd". */
static void query_doc(struct mg_conn *c, struct mg_dir *d, const uint8_t *p, size_t n, bool trunc)
{
	struct bdoc b;
	struct belem e;
	size_t rlen = d->resource_len;
	bool is_cmd = rlen >= 5 && memcmp(d->resource + rlen - 5, ".$cmd", 5) == 0;
	int rc;

	if (bdoc_open(&b, p, n, trunc) < 0 || (rc = bson_next(&b, &e)) < 0) {
		mark_bad(c, d);
		return;
	}
	if (is_cmd && rc == 1) {
		/* the command is the first key; a string value names the collection */
		d->method_len = copy_z(d->method, sizeof(d->method), e.name, e.nlen);
		if (e.type == BT_STRING && !e.cut && names_collection(d->method, d->method_len))
			d->resource_len = join_ns(d->resource, sizeof(d->resource), d->resource,
						  rlen - 5, e.v, e.vlen);
	}
	if (!d->ev)
		return;
	if (render_tmp(c, NULL, p, n, trunc, NULL, NULL))
		set_tmp(c, d->ev, "mongodb.query");
	else
		mark_bad(c, d);
	render_params(c, d, p, n, trunc, is_cmd, false);
}

/* OP_MSG body of a request: the command (first key), "$db", the collection. Walks
 * the whole top level: returns whether it is well formed (validate_doc). */
static bool msg_request_body(struct mg_conn *c, struct mg_dir *d, const uint8_t *p, size_t n,
			     bool trunc)
{
	struct bdoc b;
	struct belem e;
	const uint8_t *db = NULL, *coll = NULL;
	size_t dblen = 0, colllen = 0;
	bool getmore = false;
	unsigned i = 0;
	int rc;

	if (bdoc_open(&b, p, n, trunc) < 0) {
		mark_bad(c, d);
		return false;
	}
	while ((rc = bson_next(&b, &e)) == 1) {
		if (i++ == 0) {
			d->method_len = copy_z(d->method, sizeof(d->method), e.name, e.nlen);
			getmore = d->method_len == 7 && memcmp(d->method, "getMore", 7) == 0;
			if (e.type == BT_STRING && !e.cut &&
			    names_collection(d->method, d->method_len)) {
				coll = e.v;
				colllen = e.vlen;
			}
			if (getmore && e.type == BT_INT64 && d->ev)
				ev_set_int(d->ev, K_CURSOR_ID, le64s(e.v));
			continue;
		}
		if (name_is(&e, "$db") && e.type == BT_STRING && !e.cut) {
			db = e.v;
			dblen = e.vlen;
		} else if (name_is(&e, "collection") && e.type == BT_STRING && !e.cut && getmore) {
			coll = e.v;
			colllen = e.vlen;
		} else if (name_is(&e, "filter") && e.type == BT_DOC && d->ev) {
			if (render_tmp(c, &e, NULL, 0, false, NULL, NULL))
				set_tmp(c, d->ev, "mongodb.query");
			else
				mark_bad(c, d);
		}
	}
	if (rc < 0)
		mark_bad(c, d);
	if (db) {
		d->resource_len =
		    join_ns(d->resource, sizeof(d->resource), db, dblen,
			    coll ? coll : (const uint8_t *)"$cmd", coll ? colllen : 4);
		if (coll && d->ev)
			ev_set_str(d->ev, "mongodb.fullCollectionName", d->resource,
				   d->resource_len);
	}
	if (d->ev)
		render_params(c, d, p, n, trunc, true, true);
	return rc == 0;
}

/* ---- reply documents ---------------------------------------------------------------- */

static void set_error(struct mg_conn *c, struct mg_dir *d, const struct belem *e)
{
	if (d->err_set || !d->ev)
		return;
	if (e->type == BT_STRING) {
		ev_set_str(d->ev, "mongodb.error", e->v, e->vlen);
	} else if (render_tmp(c, e, NULL, 0, false, NULL, NULL)) {
		set_tmp(c, d->ev, "mongodb.error");
	} else {
		return;
	}
	d->err_set = true;
	d->ev->status = EV_STATUS_ERROR;
}

/* How a walk over a document's top level ended. */
enum walk_end { WALK_OK, WALK_MALFORMED, WALK_UNOPENED };

/* The first reply document: "$err" / "writeErrors" / ok:0 + errmsg / writeConcernError
 * make the transaction an Error (in that order of preference). The same walk over the
 * top level finds the "cursor" documents msg_reply_body reads (the first one in
 * *cursor, counted in *ncursor; cursor may be NULL) and tells whether the top level is
 * well formed, so the document is walked once. */
static enum walk_end reply_errors(struct mg_conn *c, struct mg_dir *d, const uint8_t *p, size_t n,
				  bool trunc, struct belem *cursor, unsigned *ncursor)
{
	struct bdoc b;
	struct belem e, err = {0}, werr = {0}, msg = {0}, wcerr = {0};
	bool have_err = false, have_werr = false, have_msg = false, have_wc = false;
	bool ok_zero = false;
	double okv;
	int rc;

	if (bdoc_open(&b, p, n, trunc) < 0)
		return WALK_UNOPENED;
	while ((rc = bson_next(&b, &e)) == 1) {
		if (cursor && e.type == BT_DOC && name_is(&e, "cursor") && (*ncursor)++ == 0)
			*cursor = e;
		if (e.cut)
			continue;
		if (name_is(&e, "$err")) {
			err = e;
			have_err = true;
		} else if (name_is(&e, "writeErrors")) {
			werr = e;
			have_werr = true;
		} else if (name_is(&e, "errmsg")) {
			msg = e;
			have_msg = true;
		} else if (name_is(&e, "writeConcernError")) {
			wcerr = e;
			have_wc = true;
		} else if (name_is(&e, "ok") && elem_number(&e, &okv)) {
			ok_zero = okv == 0;
		}
	}
	if (have_err) {
		set_error(c, d, &err);
	} else if (have_werr) {
		set_error(c, d, &werr);
	} else if (ok_zero) {
		if (have_msg) {
			set_error(c, d, &msg);
		} else {
			static const uint8_t okz[] = "ok: 0";
			struct belem z = {.type = BT_STRING, .v = okz, .vlen = 5};

			set_error(c, d, &z);
		}
	} else if (have_wc) {
		set_error(c, d, &wcerr);
	}
	return rc < 0 ? WALK_MALFORMED : WALK_OK;
}

/* One "cursor" document of an OP_MSG reply: cursor.id, cursor.firstBatch/nextBatch. */
static void reply_cursor(struct mg_conn *c, struct mg_dir *d, const struct belem *e)
{
	struct bdoc cb, ab;
	struct belem ce, ae;
	int rc;

	if (bdoc_open(&cb, e->v, e->vlen, e->cut) < 0)
		return;
	while ((rc = bson_next(&cb, &ce)) == 1) {
		int64_t id;

		if (name_is(&ce, "id") && elem_int64(&ce, &id) && d->ev)
			replace_cursor_id(d->ev, id);
		if ((!name_is(&ce, "firstBatch") && !name_is(&ce, "nextBatch")) ||
		    ce.type != BT_ARRAY || bdoc_open(&ab, ce.v, ce.vlen, ce.cut) < 0)
			continue;
		d->has_batch = true;
		while ((rc = bson_next(&ab, &ae)) == 1) {
			d->batch++;
			if (ae.type == BT_DOC)
				add_line(c, d, ae.v, ae.vlen, ae.cut);
		}
		if (rc < 0)
			mark_bad(c, d);
	}
	if (rc < 0)
		mark_bad(c, d);
}

/* OP_MSG reply body: errors, cursor.id, cursor.firstBatch/nextBatch. Returns whether
 * the top level is well formed (validate_doc). */
static bool msg_reply_body(struct mg_conn *c, struct mg_dir *d, const uint8_t *p, size_t n,
			   bool trunc)
{
	struct belem cursor;
	unsigned ncursor = 0;
	enum walk_end end = reply_errors(c, d, p, n, trunc, &cursor, &ncursor);

	if (end == WALK_UNOPENED) {
		mark_bad(c, d);
		return false;
	}
	if (ncursor)
		reply_cursor(c, d, &cursor);
	if (ncursor > 1) {
		/* more "cursor" keys (not seen in practice): the later ones in order */
		struct bdoc b;
		struct belem e;
		unsigned k = 0;

		bdoc_open(&b, p, n, trunc);
		while (bson_next(&b, &e) == 1)
			if (e.type == BT_DOC && name_is(&e, "cursor") && k++ > 0)
				reply_cursor(c, d, &e);
	}
	if (end == WALK_MALFORMED)
		mark_bad(c, d);
	if (!d->has_batch)
		add_line(c, d, p, n, trunc);
	return end == WALK_OK;
}

/* The top level of a document is well formed (nested ones are checked when walked). */
static bool validate_doc(const uint8_t *p, size_t n, bool trunc)
{
	struct bdoc b;
	struct belem e;
	int rc;

	if (bdoc_open(&b, p, n, trunc) < 0)
		return false;
	while ((rc = bson_next(&b, &e)) == 1)
		;
	return rc == 0;
}

/* One complete (or, when trunc, oversize and cut) document of the current message. */
static void process_doc(struct mg_conn *c, struct mg_dir *d, enum proto_dir dir, const uint8_t *p,
			size_t n, bool trunc)
{
	enum walk_end end;
	int valid = -1; /* -1: not walked yet by the role's reader */

	switch (d->role) {
	case R_QUERY:
		query_doc(c, d, p, n, trunc);
		break;
	case R_FIELDS:
	case R_SELECTOR:
	case R_UPDATE:
		if (!d->ev)
			break;
		if (!render_tmp(c, NULL, p, n, trunc, NULL, NULL)) {
			mark_bad(c, d);
			break;
		}
		set_tmp(c, d->ev,
			d->role == R_FIELDS     ? "mongodb.returnFieldsSelector"
			: d->role == R_SELECTOR ? "mongodb.selector"
						: "mongodb.update");
		break;
	case R_REPLY:
		if (d->item == 0) {
			end = reply_errors(c, d, p, n, trunc, NULL, NULL);
			valid = end == WALK_OK;
		}
		if (!d->ev)
			break;
		add_line(c, d, p, n, trunc);
		break;
	case R_BODY:
		if (dir == DIR_TO_SERVER)
			valid = msg_request_body(c, d, p, n, trunc);
		else
			valid = msg_reply_body(c, d, p, n, trunc);
		break;
	case R_INSERT:
	case R_SEQ:
		break; /* not exported: validated below only */
	}
	if (valid < 0)
		valid = validate_doc(p, n, trunc);
	if (!valid)
		mark_bad(c, d);
	d->item++;
}

/* ---- messages ------------------------------------------------------------------------ */

static const char *op_method(int32_t op)
{
	switch (op) {
	case OP_QUERY:
		return "find";
	case OP_INSERT:
		return "insert";
	case OP_UPDATE:
		return "update";
	case OP_DELETE:
		return "delete";
	case OP_GET_MORE:
		return "getMore";
	case OP_KILL_CURSORS:
		return "killCursors";
	case OP_COMPRESSED:
		return "compressed";
	default:
		return "msg";
	}
}

/* Smallest messageLength for an opcode in a direction, 0 when it is not valid there. */
static uint32_t op_min_len(int32_t op, enum proto_dir dir)
{
	bool req = dir == DIR_TO_SERVER;

	switch (op) {
	case OP_REPLY:
		return req ? 0 : MG_HDR + 20;
	case OP_MSG:
		return MG_HDR + 4;
	case OP_COMPRESSED:
		return MG_HDR + 9;
	case OP_QUERY:
		return req ? MG_HDR + 4 + 1 + 8 + 5 : 0;
	case OP_GET_MORE:
		return req ? MG_HDR + 4 + 1 + 4 + 8 : 0;
	case OP_INSERT:
		return req ? MG_HDR + 4 + 1 : 0;
	case OP_UPDATE:
		return req ? MG_HDR + 4 + 1 + 4 + 10 : 0;
	case OP_DELETE:
		return req ? MG_HDR + 4 + 1 + 4 + 5 : 0;
	case OP_KILL_CURSORS:
		return req ? MG_HDR + 8 : 0;
	default:
		return 0;
	}
}

/* Write the request's method/resource/query/request into its event. */
static void request_fields(struct mg_conn *c, struct mg_dir *d, struct event *ev)
{
	struct strbuf *q = &c->tmp;
	char num[20], *t;

	if (!ev)
		return;
	if (!d->method_len) {
		const char *m = op_method(d->opcode);

		d->method_len = copy_z(d->method, sizeof(d->method), m, strlen(m));
	}
	ev_set_str(ev, "method", d->method, d->method_len);
	if (d->resource_len)
		ev_set_str(ev, "resource", d->resource, d->resource_len);
	for (int full = 0; full < 2; full++) {
		const struct strbuf *params = full ? &c->pfull : &c->pshort;

		if (full && !c->send_request)
			break;
		/* "<resource>.<method>(<params>)[.skip(n)][.limit(n)]"; Packetbeat writes
		 * ".method(" without a resource */
		strbuf_reset(q);
		if (d->resource_len) {
			strbuf_append(q, d->resource, d->resource_len);
			strbuf_putc(q, '.');
		}
		strbuf_append(q, d->method, d->method_len);
		strbuf_putc(q, '(');
		strbuf_append(q, params->p, params->len);
		strbuf_putc(q, ')');
		if (d->skip > 0) {
			strbuf_append(q, ".skip(", 6);
			t = hb_i64_text(d->skip, num + sizeof(num));
			strbuf_append(q, t, (size_t)(num + sizeof(num) - t));
			strbuf_putc(q, ')');
		}
		if (d->limit > 0 && d->limit < 0x7fffffff) {
			strbuf_append(q, ".limit(", 7);
			t = hb_i64_text(d->limit, num + sizeof(num));
			strbuf_append(q, t, (size_t)(num + sizeof(num) - t));
			strbuf_putc(q, ')');
		}
		if (q->err)
			continue;
		if (full)
			ev_set_str(ev, "request", q->p, q->len > c->max_msg ? c->max_msg : q->len);
		else
			ev_set_str(ev, "query", q->p, q->len);
	}
	if (d->lost)
		txn_add_note(ev, "Packet loss while capturing the request");
}

static void reset_msg(struct mg_conn *c, struct mg_dir *d, enum proto_dir dir)
{
	d->state = MS_HEADER;
	d->ts_set = false;
	d->lost = d->bad = d->in_seq = d->continuation = d->unmatched = d->ignored = false;
	d->expects_reply = d->has_batch = d->err_set = d->docs_more = false;
	d->left = d->trailer = d->seq_left = d->doc_skip = 0;
	d->flags = 0;
	d->item = 0;
	d->batch = 0;
	d->nlines = 0;
	d->ev = NULL;
	d->method[0] = d->resource[0] = '\0';
	d->method_len = d->resource_len = 0;
	d->skip = d->limit = 0;
	if (dir == DIR_TO_SERVER) {
		strbuf_reset(&c->pshort);
		strbuf_reset(&c->pfull);
	} else {
		strbuf_reset(&c->lines);
	}
}

static void finish_request(struct mg_conn *c, struct mg_dir *d, struct proto_ctx *ctx)
{
	struct event *ev = d->ev;

	metric_inc(ctx->stats->messages);
	if (d->opcode == OP_MSG)
		d->expects_reply = !(d->flags & MSG_MORE_TO_COME);
	if (ev) {
		request_fields(c, d, ev);
		if (d->expects_reply)
			pend_push(c, ev, d->request_id, ctx);
		else
			txn_publish(ctx, ev); /* no reply on the wire: OK without response */
	} else if (d->expects_reply && !d->unmatched) {
		lost_add(c, d->request_id); /* unmatched here: already taken by a reply */
	}
	d->ev = NULL;
	reset_msg(c, d, DIR_TO_SERVER);
}

static void finish_response(struct mg_conn *c, struct mg_dir *d, struct proto_ctx *ctx)
{
	struct event *ev = d->ev;

	metric_inc(ctx->stats->messages);
	if (d->opcode == OP_MSG && (d->flags & MSG_MORE_TO_COME)) {
		c->exhaust = true; /* the next reply answers this one */
		c->exhaust_id = d->request_id;
	} else if (d->continuation) {
		c->exhaust = false;
	}
	if (ev) {
		if (d->has_batch)
			ev_set_uint(ev, "mongodb.numberReturned", d->batch);
		if (c->send_response && c->lines.len)
			ev_set_str(ev, "response", c->lines.p, c->lines.len);
		if (d->lost)
			txn_add_note(ev, "Packet loss while capturing the response");
		if (d->unmatched)
			txn_publish_unmatched(ctx, ev, "Unmatched response", false);
		else
			txn_publish(ctx, ev);
	}
	d->ev = NULL;
	reset_msg(c, d, DIR_TO_CLIENT);
}

static void finish_message(struct mg_conn *c, enum proto_dir dir, struct proto_ctx *ctx)
{
	struct mg_dir *d = &c->dir[dir];

	d->synced = true;
	if (d->ignored) {
		metric_inc(ctx->stats->messages);
		reset_msg(c, d, dir);
	} else if (dir == DIR_TO_SERVER)
		finish_request(c, d, ctx);
	else
		finish_response(c, d, ctx);
}

static void begin_request(struct mg_conn *c, struct mg_dir *d, struct proto_ctx *ctx)
{
	struct event *ev;

	pend_expire(c, ctx);
	d->expects_reply = d->opcode == OP_QUERY || d->opcode == OP_GET_MORE;
	ev = txn_new_event(ctx, &mongodb_proto);
	d->ev = ev;
	if (!ev)
		return;
	txn_init_event(ev, ctx->conn, d->msg_ts);
	ev->has_client_bytes = true;
	ev->client_bytes = d->msg_len;
}

static void begin_response(struct mg_conn *c, struct mg_dir *d, struct proto_ctx *ctx)
{
	struct mg_dir *rq = &c->dir[DIR_TO_SERVER];
	struct event *ev;

	pend_expire(c, ctx);
	if (c->exhaust && d->response_to == c->exhaust_id) {
		d->continuation = true;
		metric_inc(c->m_exhaust);
		return;
	}
	ev = pend_take(c, d->response_to);
	if (!ev && rq->ev && rq->state != MS_HEADER && rq->request_id == d->response_to) {
		/* answered before the request finished arriving */
		ev = rq->ev;
		rq->ev = NULL;
		rq->unmatched = true;
		request_fields(c, rq, ev);
	}
	if (!ev && lost_take(c, d->response_to))
		return; /* its request got no event: nothing to complete */
	if (!ev) {
		ev = txn_new_event(ctx, &mongodb_proto);
		if (!ev)
			return;
		txn_init_event(ev, ctx->conn, d->msg_ts);
		d->unmatched = true;
	}
	d->ev = ev;
	ev->end_ns = d->msg_ts;
	ev->has_server_bytes = true;
	ev->server_bytes = d->msg_len;
}

/* The 16-byte header. Unsynced, an implausible header slides the window by one byte. */
static enum step header_step(struct mg_conn *c, struct mg_dir *d, enum proto_dir dir,
			     struct cursor *in, struct proto_ctx *ctx, size_t *need)
{
	struct cursor h;
	uint32_t len, min;
	int32_t rid, rto, op;
	bool plausible;

	if (cur_left(in) < MG_HDR) {
		*need = MG_HDR - cur_left(in);
		return STEP_MORE;
	}
	cur_init(&h, in->p + in->off, MG_HDR);
	len = cur_le32(&h);
	rid = (int32_t)cur_le32(&h);
	rto = (int32_t)cur_le32(&h);
	op = (int32_t)cur_le32(&h);
	min = op_min_len(op, dir);
	plausible = min && len >= min && len <= c->max_wire &&
		    (dir == DIR_TO_CLIENT || rto == 0 || rto == -1);
	if (!plausible && !d->synced) {
		if (d->resync_skipped >= MG_RESYNC_MAX)
			return STEP_ERR;
		d->resync_skipped++;
		metric_inc(c->m_resync);
		cur_skip(in, 1);
		d->ts_set = false;
		return STEP_OK;
	}
	if (len < MG_HDR || len > c->max_wire) {
		if (len > c->max_wire)
			metric_inc(ctx->stats->limit_exceeded);
		return STEP_ERR;
	}
	cur_skip(in, MG_HDR);
	d->msg_len = len;
	d->left = len - MG_HDR;
	d->request_id = rid;
	d->response_to = rto;
	d->opcode = op;
	d->synced = true;
	if (op == OP_COMPRESSED)
		metric_inc(c->m_compressed);
	if (!min || len < min) {
		/* a well-framed message we do not decode (new opcode, wrong direction) */
		metric_inc(c->m_unknown);
		d->ignored = true; /* nothing to report */
		d->state = MS_SKIP;
		return STEP_OK;
	}
	if (dir == DIR_TO_SERVER)
		begin_request(c, d, ctx);
	else
		begin_response(c, d, ctx);
	d->state = MS_PREFIX;
	return STEP_OK;
}

/* The op's fixed fields. Waits for min(left, MG_PREFIX_WINDOW) bytes: enough for any
 * prefix with a fullCollectionName up to MG_MAX_CSTR bytes. */
static enum step prefix_step(struct mg_dir *d, struct cursor *in, size_t *need)
{
	size_t window = d->left < MG_PREFIX_WINDOW ? d->left : MG_PREFIX_WINDOW;
	struct cursor p;
	const uint8_t *ns = NULL;
	size_t nslen = 0;
	struct event *ev = d->ev;

	if (cur_left(in) < window) {
		*need = window - cur_left(in);
		return STEP_MORE;
	}
	cur_init(&p, in->p + in->off, window);
	switch (d->opcode) {
	case OP_MSG:
		d->flags = cur_le32(&p);
		if (d->flags & MSG_CHECKSUM_PRESENT)
			d->trailer = 4;
		if ((d->flags & MSG_REQUIRED_BITS & ~MSG_KNOWN_BITS) || d->left < 4 + d->trailer)
			goto bad;
		break;
	case OP_REPLY: {
		int64_t cursor_id;
		int32_t from, nret;

		cur_skip(&p, 4); /* responseFlags */
		cursor_id = (int64_t)cur_le64(&p);
		from = (int32_t)cur_le32(&p);
		nret = (int32_t)cur_le32(&p);
		if (ev) {
			replace_cursor_id(ev, cursor_id);
			ev_set_int(ev, "mongodb.startingFrom", from);
			ev_set_int(ev, "mongodb.numberReturned", nret);
		}
		break;
	}
	case OP_QUERY:
	case OP_GET_MORE:
	case OP_INSERT:
	case OP_UPDATE:
	case OP_DELETE:
		cur_skip(&p, 4); /* flags / ZERO */
		if (!take_cstr(&p, &ns, &nslen))
			goto bad;
		d->resource_len = copy_z(d->resource, sizeof(d->resource), ns, nslen);
		if (ev)
			ev_set_str(ev, "mongodb.fullCollectionName", ns, nslen);
		if (d->opcode == OP_QUERY) {
			d->skip = (int32_t)cur_le32(&p);
			d->limit = (int32_t)cur_le32(&p);
			if (ev && !p.err) {
				ev_set_int(ev, "mongodb.numberToSkip", d->skip);
				ev_set_int(ev, "mongodb.numberToReturn", d->limit);
			}
		} else if (d->opcode == OP_GET_MORE) {
			int32_t nret = (int32_t)cur_le32(&p);
			int64_t cursor_id = (int64_t)cur_le64(&p);

			if (ev && !p.err) {
				ev_set_int(ev, "mongodb.numberToReturn", nret);
				ev_set_int(ev, K_CURSOR_ID, cursor_id);
			}
		} else if (d->opcode != OP_INSERT) {
			cur_skip(&p, 4); /* flags */
		}
		break;
	case OP_KILL_CURSORS:
		cur_skip(&p, 8); /* ZERO, numberOfCursorIDs; the ids are not exported */
		break;
	case OP_COMPRESSED: {
		int32_t orig = (int32_t)cur_le32(&p);

		cur_skip(&p, 5); /* uncompressedSize, compressorId */
		if (p.err)
			goto bad;
		d->expects_reply = orig == OP_QUERY || orig == OP_GET_MORE || orig == OP_MSG;
		d->state = MS_SKIP; /* the compressed message itself is not decoded */
		cur_skip(in, p.off);
		d->left -= (uint32_t)p.off;
		return STEP_OK;
	}
	default:
		goto bad;
	}
	if (p.err)
		goto bad;
	cur_skip(in, p.off);
	d->left -= (uint32_t)p.off;
	d->state = MS_ITEM;
	return STEP_OK;
bad:
	return STEP_ERR; /* the caller counts it and skips the rest of the message */
}

/* What comes next in the message: a section header, a document, or the end. */
static enum step item_step(struct mg_dir *d, struct cursor *in, size_t *need)
{
	uint32_t body = d->left - d->trailer; /* bytes before the checksum */
	size_t window;
	struct cursor s;
	const uint8_t *id;
	size_t idlen;
	uint32_t size;
	uint8_t kind;

	if (d->in_seq && d->seq_left == 0)
		d->in_seq = false;
	if (d->in_seq) {
		d->role = R_SEQ;
		d->state = MS_DOC;
		return STEP_OK;
	}
	if (body == 0) {
		d->state = MS_SKIP; /* the checksum, if any */
		return STEP_OK;
	}
	switch (d->opcode) {
	case OP_MSG:
		break;
	case OP_QUERY:
		d->role = d->item == 0 ? R_QUERY : R_FIELDS;
		d->state = d->item < 2 ? MS_DOC : MS_SKIP;
		return STEP_OK;
	case OP_UPDATE:
		d->role = d->item == 0 ? R_SELECTOR : R_UPDATE;
		d->state = d->item < 2 ? MS_DOC : MS_SKIP;
		return STEP_OK;
	case OP_DELETE:
		d->role = R_SELECTOR;
		d->state = d->item < 1 ? MS_DOC : MS_SKIP;
		return STEP_OK;
	case OP_INSERT:
		d->role = R_INSERT;
		d->state = MS_DOC;
		return STEP_OK;
	case OP_REPLY:
		d->role = R_REPLY;
		d->state = MS_DOC;
		return STEP_OK;
	default:
		d->state = MS_SKIP;
		return STEP_OK;
	}
	/* OP_MSG section: kind 0 = body document; kind 1 = int32 size | cstring | docs */
	kind = cur_peek_u8(in);
	if (kind == 0) {
		cur_skip(in, 1);
		d->left--;
		d->role = R_BODY;
		d->state = MS_DOC;
		return STEP_OK;
	}
	if (kind != 1) {
		d->state = MS_SKIP; /* kind 2 (internal) or invalid: not decoded */
		return kind == 2 ? STEP_OK : STEP_ERR;
	}
	window = body < 1 + 4 + MG_MAX_CSTR + 1 ? body : 1 + 4 + MG_MAX_CSTR + 1;
	if (cur_left(in) < window) {
		*need = window - cur_left(in);
		return STEP_MORE;
	}
	cur_init(&s, in->p + in->off, window);
	cur_skip(&s, 1);
	size = cur_le32(&s);
	if (s.err || !take_cstr(&s, &id, &idlen) || size < 4 + idlen + 1 || size > body - 1)
		return STEP_ERR;
	d->seq_left = size - 4 - (uint32_t)idlen - 1;
	d->in_seq = true;
	cur_skip(in, s.off);
	d->left -= (uint32_t)s.off;
	return STEP_OK;
}

/* One BSON document: walked whole up to max_doc_bytes, else over that prefix. */
static enum step doc_step(struct mg_conn *c, struct mg_dir *d, enum proto_dir dir,
			  struct cursor *in, size_t *need)
{
	uint32_t room = d->in_seq ? d->seq_left : d->left - d->trailer;
	uint32_t len;
	size_t take;

	if (cur_left(in) < 4 && room >= 4) {
		*need = 4 - cur_left(in);
		return STEP_MORE;
	}
	len = room >= 4 ? le32_at(in->p + in->off) : 0;
	if (len < 5 || len > room)
		return STEP_ERR; /* the document does not fit its message: skip the rest */
	take = len <= c->max_doc_bytes ? len : c->max_doc_bytes;
	if (cur_left(in) < take) {
		*need = take - cur_left(in);
		return STEP_MORE;
	}
	process_doc(c, d, dir, in->p + in->off, take, take < len);
	cur_skip(in, take);
	d->left -= (uint32_t)take;
	if (d->in_seq)
		d->seq_left -= len;
	if (take < len) {
		metric_inc(c->m_truncated);
		d->doc_skip = len - (uint32_t)take;
		d->state = MS_SKIP_DOC;
	} else {
		d->state = MS_ITEM;
	}
	return STEP_OK;
}

/* ---- proto_ops ---------------------------------------------------------------------- */

static void *mongodb_conn_new(const struct conn_info *info)
{
	const struct cfg_proto *cfg = info ? info->cfg : NULL;
	struct mg_conn *c = hb_malloc(sizeof(*c));
	size_t cap;

	if (!c)
		return NULL;
	/* all zero but the per-direction text buffers (struct mg_dir) */
	memset(c, 0, offsetof(struct mg_conn, dir));
	for (int i = 0; i < 2; i++)
		memset(&c->dir[i], 0, offsetof(struct mg_dir, method));
	c->mc = cfg && cfg->priv ? cfg->priv : &mongodb_defaults;
	c->max_docs = (size_t)c->mc->max_docs;
	c->max_doc_len = (size_t)c->mc->max_doc_length;
	c->max_doc_bytes = c->mc->max_doc_bytes >= 64 ? (size_t)c->mc->max_doc_bytes
						      : (size_t)mongodb_defaults.max_doc_bytes;
	c->max_wire = c->mc->max_wire_message_size >= 64
			  ? (size_t)c->mc->max_wire_message_size
			  : (size_t)mongodb_defaults.max_wire_message_size;
	c->max_msg =
	    cfg && cfg->max_message_size ? (size_t)cfg->max_message_size : MG_DEF_MAX_MESSAGE;
	c->timeout = cfg && cfg->transaction_timeout ? cfg->transaction_timeout : MG_DEF_TIMEOUT;
	c->send_request = cfg && cfg->send_request;
	c->send_response = cfg && cfg->send_response;
	cap = cfg && cfg->max_pending ? (size_t)cfg->max_pending : MG_DEF_MAX_PENDING;
	txn_fifo_init(&c->fifo, cap);
	c->ids = hb_malloc(c->fifo.cap * sizeof(*c->ids)); /* [0, nids) written before read */
	if (!c->ids) {
		hb_free(c);
		return NULL;
	}
	strbuf_init(&c->pshort);
	strbuf_init(&c->pfull);
	strbuf_init(&c->lines);
	strbuf_init(&c->tmp);
	c->m_compressed = metrics_counter("mongodb.compressed");
	c->m_unknown = metrics_counter("mongodb.unknown_opcodes");
	c->m_truncated = metrics_counter("mongodb.docs_truncated");
	c->m_malformed = metrics_counter("mongodb.malformed");
	c->m_exhaust = metrics_counter("mongodb.exhaust_replies");
	c->m_resync = metrics_counter("mongodb.resync_skipped_bytes");
	reset_msg(c, &c->dir[0], DIR_TO_SERVER);
	reset_msg(c, &c->dir[1], DIR_TO_CLIENT);
	return c;
}

static struct parse_result mongodb_parse(void *conn, enum proto_dir dir, const uint8_t *data,
					 size_t len, struct proto_ctx *ctx)
{
	struct mg_conn *c = conn;
	struct mg_dir *d = &c->dir[dir];
	struct parse_result r = {PARSE_OK, 0, 0};
	struct cursor in;

	cur_init(&in, data, len);
	for (;;) {
		enum step st = STEP_OK;
		size_t need = 0, n;

		if (d->state != MS_HEADER && d->left == 0) {
			finish_message(c, dir, ctx);
			continue;
		}
		if (!cur_left(&in))
			break;
		if (d->state == MS_HEADER && !d->ts_set) {
			d->msg_ts = ctx->ts;
			d->ts_set = true;
		}
		switch (d->state) {
		case MS_HEADER:
			st = header_step(c, d, dir, &in, ctx, &need);
			break;
		case MS_PREFIX:
			st = prefix_step(d, &in, &need);
			break;
		case MS_ITEM:
			st = item_step(d, &in, &need);
			break;
		case MS_DOC:
			st = doc_step(c, d, dir, &in, &need);
			break;
		case MS_SKIP_DOC:
			n = cur_left(&in) < d->doc_skip ? cur_left(&in) : d->doc_skip;
			cur_skip(&in, n);
			d->doc_skip -= (uint32_t)n;
			d->left -= (uint32_t)n;
			if (d->doc_skip == 0)
				d->state = MS_ITEM;
			break;
		case MS_SKIP:
			n = cur_left(&in) < d->left ? cur_left(&in) : d->left;
			cur_skip(&in, n);
			d->left -= (uint32_t)n;
			break;
		}
		if (st == STEP_MORE) {
			r.status = PARSE_NEED_MORE;
			r.needed = need;
			break;
		}
		if (st == STEP_ERR) {
			if (d->state == MS_HEADER)
				goto err;
			/* malformed content inside a well-framed message: skip the rest */
			mark_bad(c, d);
			d->in_seq = false;
			d->state = MS_SKIP;
		}
	}
	r.consumed = in.off;
	return r;
err:
	r.status = PARSE_ERROR;
	r.consumed = in.off;
	return r;
}

static int mongodb_gap(void *conn, enum proto_dir dir, size_t n, struct proto_ctx *ctx)
{
	struct mg_conn *c = conn;
	struct mg_dir *d = &c->dir[dir];

	/* gaps and gap_drops are counted by the stream layer. Inside a message whose
	 * length is known the loss is skipped; at a boundary there is nothing to go on. */
	if (d->state == MS_HEADER || n > d->left)
		return -1;
	d->left -= (uint32_t)n;
	d->lost = true;
	d->in_seq = false;
	d->doc_skip = 0;
	d->state = MS_SKIP;
	if (d->left == 0)
		finish_message(c, dir, ctx);
	return 0;
}

static void mongodb_fin(void *conn, enum proto_dir dir, struct proto_ctx *ctx)
{
	struct mg_conn *c = conn;

	/* the server closed: nothing pending will be answered any more */
	if (dir == DIR_TO_CLIENT)
		pend_flush(c, ctx);
}

static void mongodb_expire(void *conn, struct proto_ctx *ctx)
{
	struct mg_conn *c = conn;
	struct mg_dir *rs = &c->dir[DIR_TO_CLIENT], *rq = &c->dir[DIR_TO_SERVER];

	/* a reply cut short is published with what arrived; it keeps its pairing */
	if (rs->ev) {
		struct event *ev = rs->ev;

		if (rs->has_batch)
			ev_set_uint(ev, "mongodb.numberReturned", rs->batch);
		txn_add_note(ev, "Response incomplete");
		if (rs->unmatched)
			txn_publish_unmatched(ctx, ev, "Unmatched response", false);
		else
			txn_publish(ctx, ev);
		rs->ev = NULL;
	}
	if (rq->ev) {
		request_fields(c, rq, rq->ev);
		txn_publish_unmatched(ctx, rq->ev, "Unmatched request", true);
		rq->ev = NULL;
		rq->unmatched = true; /* its reply, if any, is not waited for */
	}
	pend_flush(c, ctx);
	c->nlost = c->lost_pos = 0;
	c->exhaust = false;
}

static void mongodb_conn_free(void *conn)
{
	struct mg_conn *c = conn;

	if (!c)
		return;
	txn_fifo_release(&c->fifo);
	ev_pool_put(c->dir[0].ev);
	ev_pool_put(c->dir[1].ev);
	strbuf_free(&c->pshort);
	strbuf_free(&c->pfull);
	strbuf_free(&c->lines);
	strbuf_free(&c->tmp);
	hb_free(c->ids);
	hb_free(c);
}

const struct proto_ops mongodb_proto = {
    .name = "mongodb",
    .transports = PROTO_TCP,
    .default_ports = mongodb_ports,
    .ndefault_ports = sizeof(mongodb_ports) / sizeof(mongodb_ports[0]),
    .config = mongodb_config_fields,
    .nconfig = sizeof(mongodb_config_fields) / sizeof(mongodb_config_fields[0]),
    .config_size = sizeof(struct mongodb_config),
    .conn_new = mongodb_conn_new,
    .parse = mongodb_parse,
    .gap = mongodb_gap,
    .fin = mongodb_fin,
    .expire = mongodb_expire,
    .conn_free = mongodb_conn_free,
};
