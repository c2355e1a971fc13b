/* http.c — HTTP/1.x request/response transactions over TCP (Packetbeat's "http").
 *
 * Specs: RFC 9112 (HTTP/1.1 message syntax and framing), RFC 9110 (semantics),
 * RFC 7617 (Basic authentication). Event fields follow Packetbeat 8 / ECS 8
 * (docs/reference/packetbeat.md §1.2, §2.1–2.5; ecosystem.md §1.2, §1.5).
 *
 *   request  = method SP request-target SP "HTTP/1." DIGIT CRLF
 *              *( field-name ":" OWS field-value OWS CRLF ) CRLF [ body ]
 *   response = "HTTP/1." DIGIT SP 3DIGIT SP [ reason-phrase ] CRLF
 *              *( field-line CRLF ) CRLF [ body ]
 *   chunked  = *( HEXSIZE [ ";" ext ] CRLF DATA CRLF ) "0" [ ";" ext ] CRLF
 *              *( trailer-field CRLF ) CRLF
 *
 * Body length (RFC 9112 §6.3): none for HEAD responses, 1xx, 204 and 304;
 * Transfer-Encoding: chunked; else Content-Length; else none for requests and
 * "until the server closes" for responses (ends at fin(DIR_TO_CLIENT) or expire()).
 *
 * Streaming: the start line and header block are parsed only once complete (the
 * parser answers PARSE_NEED_MORE with consumed = 0 until the empty line arrives;
 * `scan` remembers how far it already looked, so byte-by-byte delivery stays
 * linear). Body bytes are consumed as they arrive and never kept, except the parts
 * that are exported (send_request/send_response with include_*body_for, body
 * content, x-www-form-urlencoded request bodies for url.query), which are copied
 * into a per-direction buffer capped at max_message_size and then into the event.
 *
 * Transactions: a finished request waits in a txn_fifo (cap max_pending); a final
 * response (not 1xx) completes the oldest. Interim 1xx responses (e.g. the
 * "100 Continue" of Expect: 100-continue) are skipped. 101 / successful CONNECT
 * switch the connection to a tunnel whose bytes are ignored.
 *
 * Resync: a direction that has not yet parsed a message (a fresh conn may start
 * mid-stream after the stream layer reset it on a gap) skips whole lines until one
 * looks like a start line, and counts the skipped bytes (http.resync_skipped_bytes).
 * On a synced direction anything invalid is PARSE_ERROR.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "hostbeat/cursor.h"
#include "hostbeat/event.h"
#include "hostbeat/mem.h"
#include "hostbeat/metrics.h"
#include "hostbeat/proto.h"
#include "hostbeat/strbuf.h"

/* The one exported symbol (listed in net/proto/registry.c). */
extern const struct proto_ops http_proto;

#define HTTP_DEF_MAX_HEADER_BYTES 65536
#define HTTP_DEF_MAX_LINE_BYTES 8192
#define HTTP_DEF_MAX_HEADERS 128
#define HTTP_DEF_MAX_MESSAGE (10u << 20)
#define HTTP_DEF_MAX_PENDING 32
#define HTTP_DEF_TIMEOUT (10ull * 1000000000ull)
#define HTTP_MAX_PARAMS 256 /* url.query pairs re-encoded per request */
#define HTTP_MAX_CHUNK_SIZE (1ull << 62)
#define HTTP_MAX_USER 256         /* decoded Basic credentials kept to find user.name */
#define HTTP_KEEP_BUF (64u << 10) /* capture buffers above this are freed after use */

/* Private configuration (cfg_proto.priv), filled from http_config_fields. */
struct http_config {
	struct cfg_strlist send_headers;
	bool send_all_headers;
	bool split_cookie; /* accepted; cookies are exported as one string */
	char *real_ip_header;
	struct cfg_strlist include_body_for;
	struct cfg_strlist include_request_body_for;
	struct cfg_strlist include_response_body_for;
	bool decode_body; /* accepted; bodies are exported as sent */
	struct cfg_strlist hide_keywords;
	bool redact_authorization;
	struct cfg_strlist redact_headers;
	uint64_t max_header_bytes;
	uint64_t max_line_bytes;
	uint64_t max_headers;
};

static const struct cfg_field http_config_fields[] = {
    {"send_headers", CFG_STRLIST, offsetof(struct http_config, send_headers), NULL,
     "headers exported as http.*.headers.<name> (case-insensitive)", 0, 0},
    {"send_all_headers", CFG_BOOL, offsetof(struct http_config, send_all_headers), "false",
     "export every header", 0, 0},
    {"split_cookie", CFG_BOOL, offsetof(struct http_config, split_cookie), "false",
     "accepted for compatibility; cookies stay one string", 0, 0},
    {"real_ip_header", CFG_STRING, offsetof(struct http_config, real_ip_header), NULL,
     "header holding the client address (network.forwarded_ip)", 0, 0},
    {"include_body_for", CFG_STRLIST, offsetof(struct http_config, include_body_for), NULL,
     "content-type substrings whose bodies are exported", 0, 0},
    {"include_request_body_for", CFG_STRLIST,
     offsetof(struct http_config, include_request_body_for), NULL,
     "content-type substrings whose request bodies are exported", 0, 0},
    {"include_response_body_for", CFG_STRLIST,
     offsetof(struct http_config, include_response_body_for), NULL,
     "content-type substrings whose response bodies are exported", 0, 0},
    {"decode_body", CFG_BOOL, offsetof(struct http_config, decode_body), "true",
     "accepted; compressed bodies are exported as sent", 0, 0},
    {"hide_keywords", CFG_STRLIST, offsetof(struct http_config, hide_keywords), NULL,
     "query/form parameters whose values become xxxxx", 0, 0},
    {"redact_authorization", CFG_BOOL, offsetof(struct http_config, redact_authorization), "false",
     "replace Authorization/Proxy-Authorization values with *", 0, 0},
    {"redact_headers", CFG_STRLIST, offsetof(struct http_config, redact_headers), NULL,
     "headers whose values become REDACTED", 0, 0},
    {"max_header_bytes", CFG_SIZE, offsetof(struct http_config, max_header_bytes), "65536",
     "largest start line + header block", 256, 16 << 20},
    {"max_line_bytes", CFG_SIZE, offsetof(struct http_config, max_line_bytes), "8192",
     "longest start/header/chunk-size line", 64, 1 << 20},
    {"max_headers", CFG_UINT, offsetof(struct http_config, max_headers), "128",
     "most header lines per message", 1, 4096},
};

enum http_state {
	HS_START,      /* at a message boundary: blank lines, resync, header block */
	HS_SKIP_LINE,  /* unsynced: skipping the rest of an over-long junk line */
	HS_BODY_LEN,   /* Content-Length body: `left` bytes to go */
	HS_BODY_CLOSE, /* body delimited by the server closing */
	HS_CHUNK_SIZE, /* expecting a chunk-size line */
	HS_CHUNK_DATA, /* `left` bytes of chunk data to go */
	HS_CHUNK_END,  /* expecting the CRLF after chunk data */
	HS_TRAILERS,   /* trailer lines up to the empty line */
	HS_TUNNEL,     /* after 101 / CONNECT 2xx: not HTTP any more */
};

/* One direction's resume state. */
struct http_dir {
	enum http_state state;
	bool synced;   /* a message was parsed in this direction */
	bool seen;     /* bytes were seen (skipped or parsed) in this direction */
	bool ts_set;   /* msg_ts holds the time of the current message's first byte */
	bool gap_lost; /* bytes of the current body were lost */
	bool has_cl;
	bool unmatched; /* response without a request */
	bool is_head;   /* response to a HEAD request */
	uint64_t msg_ts;
	size_t scan; /* header block bytes already scanned for its end */
	unsigned nlines;
	uint64_t left;
	uint64_t msg_bytes;  /* wire bytes of the current message */
	uint64_t body_bytes; /* decoded body bytes */
	uint64_t content_length;
	unsigned status_code;
	unsigned ntrailers;
	struct event *ev; /* the transaction this message belongs to (owned here) */

	/* capture of exported text: [raw headers][body] */
	bool cap_raw_body; /* raw text includes the body */
	bool cap_content;  /* http.*.body.content */
	bool cap_form;     /* url.query from an urlencoded request body */
	bool cap_full;
	uint8_t *buf;
	size_t buf_len, buf_cap, hdr_part;
	bool want_raw;
	bool url_pending; /* url.* wait for the urlencoded body (url.query) */

	/* request: Host header kept for url.* when they wait for the body */
	char host[256];
	size_t host_n;
	uint16_t host_port;
};

struct http_pair {
	uint32_t koff, klen, voff, vlen; /* decoded strings in http_conn.dec */
};

struct http_conn {
	const struct http_config *hc;
	size_t max_header_bytes, max_line_bytes, max_headers;
	size_t max_msg;
	uint64_t timeout;
	bool send_request, send_response;
	struct txn_fifo fifo;
	size_t lost_pending; /* finished requests that got no event (pool exhausted) */
	struct http_dir dir[2];
	struct strbuf scratch; /* header joins, keys, phrase */
	struct strbuf dec;     /* url.query: decoded keys and values */
	struct strbuf enc;     /* url.query: the re-encoded string */
	size_t npairs;
	struct metric *m_resync;
	/* last: http_conn_new() zeroes everything before it, only pairs[0, npairs) is
	 * ever read, and a connection is opened per TCP flow */
	struct http_pair pairs[HTTP_MAX_PARAMS];
};

struct span {
	const uint8_t *p;
	size_t n;
};

static const struct http_config http_defaults = {
    .decode_body = true,
    .max_header_bytes = HTTP_DEF_MAX_HEADER_BYTES,
    .max_line_bytes = HTTP_DEF_MAX_LINE_BYTES,
    .max_headers = HTTP_DEF_MAX_HEADERS,
};

static const uint16_t http_ports[] = {80, 8080, 8000, 5000, 8002};

/* The key of http.request.method: response_head finds the field by this pointer. */
static const char http_method_key[] = "http.request.method";

/* ---- small text helpers ---------------------------------------------------- */

static uint8_t lc(uint8_t ch)
{
	return ch >= 'A' && ch <= 'Z' ? (uint8_t)(ch + 32) : ch;
}

/* RFC 9110 §5.6.2 token characters: DIGIT, ALPHA and "!#$%&'*+-.^_`|~"; none from
 * 0x80 up. A table, as nodejs/http-parser has: every byte of every header name is
 * looked up. */
static const uint8_t tchar_tab[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x00 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x10 */
    0, 1, 0, 1, 1, 1, 1, 1, 0, 0, 1, 1, 0, 1, 1, 0, /* 0x20 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, /* 0x30 */
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x40 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, /* 0x50 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x60 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 1, 0, /* 0x70 */
};

static bool is_tchar(uint8_t ch)
{
	return tchar_tab[ch];
}

static bool span_ieq(struct span s, const char *z)
{
	size_t n = strlen(z);

	if (s.n != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (lc(s.p[i]) != lc((uint8_t)z[i]))
			return false;
	return true;
}

static bool span_ieq_span(struct span a, struct span b)
{
	if (a.n != b.n)
		return false;
	for (size_t i = 0; i < a.n; i++)
		if (lc(a.p[i]) != lc(b.p[i]))
			return false;
	return true;
}

/* Case-insensitive substring test: does `s` contain `z`? */
static bool span_icontains(struct span s, const char *z)
{
	size_t n = strlen(z);

	if (n == 0)
		return true;
	for (size_t i = 0; n <= s.n && i <= s.n - n; i++) {
		size_t k = 0;

		while (k < n && lc(s.p[i + k]) == lc((uint8_t)z[k]))
			k++;
		if (k == n)
			return true;
	}
	return false;
}

static struct span span_trim(struct span s)
{
	while (s.n && (s.p[0] == ' ' || s.p[0] == '\t')) {
		s.p++;
		s.n--;
	}
	while (s.n && (s.p[s.n - 1] == ' ' || s.p[s.n - 1] == '\t'))
		s.n--;
	return s;
}

static bool list_has(const struct cfg_strlist *l, struct span name)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i] && span_ieq(name, l->v[i]))
			return true;
	return false;
}

static bool list_matches(const struct cfg_strlist *l, struct span ctype)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i] && l->v[i][0] && span_icontains(ctype, l->v[i]))
			return true;
	return false;
}

/* Decimal digits only, no overflow past `max`. */
static bool parse_dec(struct span s, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (s.n == 0)
		return false;
	for (size_t i = 0; i < s.n; i++) {
		if (s.p[i] < '0' || s.p[i] > '9')
			return false;
		if (v > (max - (uint64_t)(s.p[i] - '0')) / 10)
			return false;
		v = v * 10 + (uint64_t)(s.p[i] - '0');
	}
	*out = v;
	return true;
}

static int hexval(uint8_t ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* Next line of `c` without its CR LF (a bare LF ends a line too); false at the end. */
static bool next_line(struct cursor *c, struct span *line)
{
	long nl = cur_find(c, '\n');
	size_t start = c->off;

	if (nl < 0)
		return false;
	line->p = cur_bytes(c, (size_t)nl - start + 1);
	if (!line->p)
		return false;
	line->n = (size_t)nl - start;
	if (line->n && line->p[line->n - 1] == '\r')
		line->n--;
	return true;
}

/* ---- start lines ------------------------------------------------------------- */

enum sl_kind { SL_BAD, SL_REQUEST, SL_RESPONSE, SL_H2, SL_09 };

struct start_line {
	struct span method, target, phrase;
	char version[4]; /* "1.1" */
	unsigned code;
};

/* "HTTP/d.d" → major/minor digits, or false. */
static bool parse_version(struct span s, char ver[4])
{
	if (s.n != 8 || memcmp(s.p, "HTTP/", 5) != 0 || s.p[6] != '.')
		return false;
	if (s.p[5] < '0' || s.p[5] > '9' || s.p[7] < '0' || s.p[7] > '9')
		return false;
	ver[0] = (char)s.p[5];
	ver[1] = '.';
	ver[2] = (char)s.p[7];
	ver[3] = '\0';
	return true;
}

static enum sl_kind parse_request_line(struct span l, struct start_line *sl)
{
	const uint8_t *sp1, *sp2;
	struct span ver;

	sp1 = memchr(l.p, ' ', l.n);
	if (!sp1 || sp1 == l.p)
		return SL_BAD;
	sl->method = (struct span){l.p, (size_t)(sp1 - l.p)};
	for (size_t i = 0; i < sl->method.n; i++)
		if (!is_tchar(sl->method.p[i]))
			return SL_BAD;
	sp2 = memchr(sp1 + 1, ' ', l.n - (size_t)(sp1 + 1 - l.p));
	if (!sp2) {
		/* HTTP/0.9 "GET /path": no version. */
		return sp1 + 1 < l.p + l.n && sp1[1] == '/' ? SL_09 : SL_BAD;
	}
	sl->target = (struct span){sp1 + 1, (size_t)(sp2 - sp1 - 1)};
	if (sl->target.n == 0)
		return SL_BAD;
	for (size_t i = 0; i < sl->target.n; i++)
		if (sl->target.p[i] <= ' ' || sl->target.p[i] == 0x7f)
			return SL_BAD;
	ver = (struct span){sp2 + 1, l.n - (size_t)(sp2 + 1 - l.p)};
	if (!parse_version(ver, sl->version))
		return SL_BAD;
	if (sl->version[0] == '2' && span_ieq(sl->method, "PRI"))
		return SL_H2;
	return sl->version[0] == '1' ? SL_REQUEST : SL_BAD;
}

static enum sl_kind parse_status_line(struct span l, struct start_line *sl)
{
	uint64_t code;

	if (l.n < 12 || !parse_version((struct span){l.p, 8}, sl->version))
		return SL_BAD;
	if (sl->version[0] != '1' || l.p[8] != ' ')
		return SL_BAD;
	if (!parse_dec((struct span){l.p + 9, 3}, 999, &code) || code < 100)
		return SL_BAD;
	sl->code = (unsigned)code;
	if (l.n == 12) {
		sl->phrase = (struct span){l.p + 12, 0};
	} else {
		if (l.p[12] != ' ')
			return SL_BAD;
		sl->phrase = (struct span){l.p + 13, l.n - 13};
	}
	return SL_RESPONSE;
}

/* ---- headers ------------------------------------------------------------------ */

/* Each header line is split once per message: as the block scanner (parse_head)
 * finds the lines, hdr_block_add() splits each, checks the framing headers, notes the
 * values of the well-known headers and indexes up to HTTP_HDR_INDEX lines (a scan
 * resumed over several calls does this once the block is complete, with
 * hdr_block_parse()). Everything after it (exported headers, redaction, url/user
 * fields) reads that. A block with more lines than the index holds is walked again
 * line by line (hdr_next), which yields the same sequence. */
#define HTTP_HDR_INDEX 64

/* Headers the parser itself reads. Their names all differ in length, so a length
 * lookup and one compare classify a name (hdr_kind_of). */
enum hdr_kind {
	HK_OTHER,
	HK_CONTENT_LENGTH,
	HK_CONTENT_TYPE,
	HK_TRANSFER_ENCODING,
	HK_HOST,
	HK_USER_AGENT,
	HK_REFERER,
	HK_AUTHORIZATION,
	HK_PROXY_AUTHORIZATION,
	HK_N
};

/* One header line (not a folded continuation) of a complete block. */
struct http_hdr {
	struct span name;
	struct span value; /* without the blanks around it */
	size_t line_n;     /* the whole line without CR LF; name.p is its start */
	enum hdr_kind kind;
};

/* What the framing headers say. */
struct framing {
	bool has_cl, te, chunked;
	uint64_t cl;
};

/* A complete header block (start line included), parsed once: hdr_block_init(),
 * then hdr_block_add() for each line after the start line, as the block scanner
 * finds them. */
struct hdr_block {
	const uint8_t *p;
	size_t len;
	const char *real_ip_name; /* config real_ip_header, or NULL */
	size_t real_ip_n;
	bool bad;  /* a malformed line or invalid framing: the message is an error */
	bool any;  /* a header line was added (a folded line before it is bad) */
	bool walk; /* more lines than h[] holds: hdr_next walks p instead */
	struct framing fr;
	/* values of the first and of the last line of each kind; p == NULL: absent */
	struct span first[HK_N], last[HK_N];
	struct span real_ip; /* first real_ip_header value */
	size_t n;
	struct http_hdr h[HTTP_HDR_INDEX];
};

/* Does the header name `s` (tchars only) equal `z` (n bytes of lower-case letters
 * and '-'), ignoring case? ch | 0x20 lower-cases a letter and keeps '-' (0x2d); the
 * only other byte it turns into one of those is CR (0x0d), which is not a tchar. */
static bool name_eq(const uint8_t *s, const char *z, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((s[i] | 0x20) != (uint8_t)z[i])
			return false;
	return true;
}

static enum hdr_kind hdr_kind_of(struct span name)
{
	static const char *const names[HK_N] = {
	    [HK_CONTENT_LENGTH] = "content-length",
	    [HK_CONTENT_TYPE] = "content-type",
	    [HK_TRANSFER_ENCODING] = "transfer-encoding",
	    [HK_HOST] = "host",
	    [HK_USER_AGENT] = "user-agent",
	    [HK_REFERER] = "referer",
	    [HK_AUTHORIZATION] = "authorization",
	    [HK_PROXY_AUTHORIZATION] = "proxy-authorization",
	};
	/* the one candidate for each length */
	static const uint8_t by_len[20] = {
	    [4] = HK_HOST,
	    [7] = HK_REFERER,
	    [10] = HK_USER_AGENT,
	    [12] = HK_CONTENT_TYPE,
	    [13] = HK_AUTHORIZATION,
	    [14] = HK_CONTENT_LENGTH,
	    [17] = HK_TRANSFER_ENCODING,
	    [19] = HK_PROXY_AUTHORIZATION,
	};
	enum hdr_kind k = name.n < sizeof(by_len) ? (enum hdr_kind)by_len[name.n] : HK_OTHER;

	return k != HK_OTHER && name_eq(name.p, names[k], name.n) ? k : HK_OTHER;
}

/* One header line split at the colon and classified. Returns false for a malformed
 * line: no colon, nothing before it, or a byte before it that is not a tchar (one
 * scan: the first byte that is not a tchar must be the colon, which is not one). */
static bool split_header(struct span line, struct http_hdr *h)
{
	size_t n = 0;

	while (n < line.n && is_tchar(line.p[n]))
		n++;
	if (n == 0 || n == line.n || line.p[n] != ':')
		return false;
	h->name = (struct span){line.p, n};
	h->value = span_trim((struct span){line.p + n + 1, line.n - n - 1});
	h->line_n = line.n;
	h->kind = hdr_kind_of(h->name);
	return true;
}

/* Same name, ignoring case. Two known kinds are equal names exactly when the kinds
 * are; a known name never equals an HK_OTHER one. */
static bool hdr_same_name(const struct http_hdr *a, const struct http_hdr *b)
{
	return a->kind == b->kind && (a->kind != HK_OTHER || span_ieq_span(a->name, b->name));
}

/* Content-Length / Transfer-Encoding of one line into `fr`; false when malformed. */
static bool note_framing(struct framing *fr, const struct http_hdr *h)
{
	if (h->kind == HK_CONTENT_LENGTH) {
		uint64_t v;

		if (!parse_dec(h->value, HTTP_MAX_CHUNK_SIZE, &v))
			return false;
		if (fr->has_cl && fr->cl != v)
			return false;
		fr->has_cl = true;
		fr->cl = v;
	} else if (h->kind == HK_TRANSFER_ENCODING) {
		const uint8_t *comma;
		struct span last = h->value;

		while ((comma = memchr(last.p, ',', last.n)))
			last = (struct span){comma + 1, last.n - (size_t)(comma + 1 - last.p)};
		fr->te = true;
		fr->chunked = span_ieq(span_trim(last), "chunked");
	}
	return true;
}

static void hdr_block_init(const struct http_conn *c, struct hdr_block *b)
{
	b->p = NULL;
	b->len = 0;
	b->real_ip_name = c->hc->real_ip_header;
	b->real_ip_n = b->real_ip_name ? strlen(b->real_ip_name) : 0;
	b->bad = b->any = b->walk = false;
	memset(&b->fr, 0, sizeof(b->fr));
	memset(b->first, 0, sizeof(b->first));
	memset(b->last, 0, sizeof(b->last));
	b->real_ip = (struct span){NULL, 0};
	b->n = 0;
}

/* One non-empty line after the start line. Errors are only noted (b->bad): the
 * scanner adds lines of a block that may still turn out incomplete or over a
 * limit, and those outcomes come first. */
static void hdr_block_add(struct hdr_block *b, struct span line)
{
	struct http_hdr h;

	if (b->bad)
		return;
	if (line.p[0] == ' ' || line.p[0] == '\t') {
		b->bad = !b->any; /* folded onto nothing; else obsolete folding, ignored */
		return;
	}
	b->any = true;
	if (!split_header(line, &h) || !note_framing(&b->fr, &h)) {
		b->bad = true;
		return;
	}
	if (h.kind != HK_OTHER) {
		if (!b->first[h.kind].p)
			b->first[h.kind] = h.value;
		b->last[h.kind] = h.value;
	}
	if (b->real_ip_n == h.name.n && !b->real_ip.p && span_ieq(h.name, b->real_ip_name))
		b->real_ip = h.value;
	if (b->n < HTTP_HDR_INDEX)
		b->h[b->n++] = h;
	else
		b->walk = true;
}

/* Parse the complete block `blk` (start line .. empty line) in one go. */
static void hdr_block_parse(const struct http_conn *c, struct hdr_block *b, const uint8_t *blk,
			    size_t len)
{
	struct cursor cur;
	struct span line;

	hdr_block_init(c, b);
	b->p = blk;
	b->len = len;
	cur_init(&cur, blk, len);
	next_line(&cur, &line); /* the start line */
	while (next_line(&cur, &line) && line.n)
		hdr_block_add(b, line);
}

/* Iterate the header lines of a parsed block, in order; folded continuation lines
 * are skipped. An iterator may be copied to resume from the same line later. */
struct hdr_iter {
	const struct hdr_block *b;
	size_t i;          /* next index in b->h */
	struct cursor cur; /* b->walk: the next line of b->p */
};

static void hdr_iter_init(struct hdr_iter *it, const struct hdr_block *b)
{
	struct span first;

	it->b = b;
	it->i = 0;
	cur_init(&it->cur, b->p, b->len);
	if (b->walk)
		next_line(&it->cur, &first); /* the start line */
}

static bool hdr_next(struct hdr_iter *it, struct http_hdr *h)
{
	struct span line;

	if (!it->b->walk) {
		if (it->i == it->b->n)
			return false;
		*h = it->b->h[it->i++];
		return true;
	}
	while (next_line(&it->cur, &line)) {
		if (line.n == 0)
			return false;
		if (line.p[0] == ' ' || line.p[0] == '\t')
			continue;
		if (split_header(line, h))
			return true;
	}
	return false;
}

/* ---- capture buffer --------------------------------------------------------- */

static void cap_append(struct http_conn *c, struct http_dir *d, const uint8_t *p, size_t n)
{
	size_t room;

	if (d->cap_full || n == 0)
		return;
	room = c->max_msg - d->buf_len;
	if (n > room) {
		n = room;
		d->cap_full = true;
	}
	if (n == 0)
		return;
	if (d->buf_cap - d->buf_len < n) {
		size_t ncap = d->buf_cap ? d->buf_cap : 1024;
		uint8_t *nb;

		while (ncap - d->buf_len < n && ncap < c->max_msg)
			ncap *= 2;
		if (ncap > c->max_msg)
			ncap = c->max_msg;
		nb = hb_realloc(d->buf, ncap);
		if (!nb) {
			d->cap_full = true;
			return;
		}
		d->buf = nb;
		d->buf_cap = ncap;
	}
	memcpy(d->buf + d->buf_len, p, n);
	d->buf_len += n;
}

static bool capturing_body(const struct http_dir *d)
{
	return d->cap_raw_body || d->cap_content || d->cap_form;
}

/* Copy the raw header block into the capture buffer, with credentials redacted:
 * everything after the colon of Authorization / Proxy-Authorization (and of the
 * redact_headers) becomes '*', as Packetbeat does with the raw request. */
static void cap_headers(struct http_conn *c, struct http_dir *d, const struct hdr_block *b)
{
	struct hdr_iter it;
	struct http_hdr h;
	size_t base = d->buf_len;

	cap_append(c, d, b->p, b->len);
	if (d->buf_len == base)
		return;
	hdr_iter_init(&it, b);
	while (hdr_next(&it, &h)) {
		size_t at = (size_t)(h.name.p - b->p);
		bool hide;

		hide = (c->hc->redact_authorization &&
			(h.kind == HK_AUTHORIZATION || h.kind == HK_PROXY_AUTHORIZATION)) ||
		       list_has(&c->hc->redact_headers, h.name);
		if (!hide)
			continue;
		for (size_t i = at + h.name.n + 1; i < at + h.line_n && base + i < d->buf_len; i++)
			d->buf[base + i] = '*';
	}
}

static void cap_reset(struct http_dir *d)
{
	if (d->buf_cap > HTTP_KEEP_BUF) {
		hb_free(d->buf);
		d->buf = NULL;
		d->buf_cap = 0;
	}
	d->buf_len = 0;
	d->hdr_part = 0;
	d->cap_full = false;
	d->cap_raw_body = d->cap_content = d->cap_form = d->want_raw = false;
}

/* ---- url.query: decode, sort by key, hide, re-encode (Go url.Values.Encode) ---- */

/* Percent-decode (and '+' → ' ' when `plus`) into c->dec; false on a bad escape. */
static bool url_unescape(struct http_conn *c, struct span s, bool plus, uint32_t *off,
			 uint32_t *len)
{
	size_t start = c->dec.len;

	if (!c->dec.p && strbuf_grow(&c->dec, 64) < 0)
		return false; /* keeps dec.p non-NULL for the spans taken from it */
	for (size_t i = 0; i < s.n; i++) {
		uint8_t ch = s.p[i];

		if (ch == '%') {
			int hi, lo;

			if (s.n - i < 3)
				goto bad;
			hi = hexval(s.p[i + 1]);
			lo = hexval(s.p[i + 2]);
			if (hi < 0 || lo < 0)
				goto bad;
			ch = (uint8_t)(hi << 4 | lo);
			i += 2;
		} else if (ch == '+' && plus) {
			ch = ' ';
		}
		strbuf_putc(&c->dec, (char)ch);
	}
	if (c->dec.err || c->dec.len - start > UINT32_MAX)
		return false;
	*off = (uint32_t)start;
	*len = (uint32_t)(c->dec.len - start);
	return true;
bad:
	strbuf_truncate(&c->dec, start);
	return false;
}

/* Add the pairs of one query string ("a=1&b=2"); pairs with bad escapes or a ';'
 * in them are skipped, as Go's url.ParseQuery does. */
static void params_add(struct http_conn *c, struct span q, struct proto_ctx *ctx)
{
	while (q.n) {
		const uint8_t *amp = memchr(q.p, '&', q.n);
		struct span part = {q.p, amp ? (size_t)(amp - q.p) : q.n};
		struct span key = part, val = {part.p + part.n, 0};
		const uint8_t *eq;
		struct http_pair pr;

		q.p += part.n + (amp ? 1 : 0);
		q.n -= part.n + (amp ? 1 : 0);
		if (part.n == 0 || memchr(part.p, ';', part.n))
			continue;
		eq = memchr(part.p, '=', part.n);
		if (eq) {
			key.n = (size_t)(eq - part.p);
			val = (struct span){eq + 1, part.n - key.n - 1};
		}
		if (c->npairs == HTTP_MAX_PARAMS) {
			metric_inc(ctx->stats->limit_exceeded);
			return;
		}
		if (!url_unescape(c, key, true, &pr.koff, &pr.klen) ||
		    !url_unescape(c, val, true, &pr.voff, &pr.vlen))
			continue;
		c->pairs[c->npairs++] = pr;
	}
}

static int pair_cmp(const struct http_conn *c, const struct http_pair *a, const struct http_pair *b)
{
	size_t n = a->klen < b->klen ? a->klen : b->klen;
	int r = memcmp(c->dec.p + a->koff, c->dec.p + b->koff, n);

	if (r)
		return r;
	return a->klen < b->klen ? -1 : a->klen > b->klen;
}

static void query_escape(struct strbuf *sb, const char *s, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";

	for (size_t i = 0; i < n; i++) {
		uint8_t ch = (uint8_t)s[i];

		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.' || ch == '~') {
			strbuf_putc(sb, (char)ch);
		} else if (ch == ' ') {
			strbuf_putc(sb, '+');
		} else {
			char e[3] = {'%', hex[ch >> 4], hex[ch & 15]};

			strbuf_append(sb, e, 3);
		}
	}
}

static bool key_hidden(const struct http_conn *c, const struct http_pair *p)
{
	const struct cfg_strlist *l = &c->hc->hide_keywords;

	for (size_t i = 0; i < l->n; i++) {
		size_t n = l->v[i] ? strlen(l->v[i]) : 0;

		if (n != p->klen || n == 0)
			continue;
		if (span_ieq((struct span){(const uint8_t *)c->dec.p + p->koff, p->klen}, l->v[i]))
			return true;
	}
	return false;
}

/* Build c->enc from c->pairs: stable-sorted by key, hidden values replaced. */
static void params_encode(struct http_conn *c)
{
	strbuf_reset(&c->enc);
	/* insertion sort: stable, and npairs is capped */
	for (size_t i = 1; i < c->npairs; i++) {
		struct http_pair t = c->pairs[i];
		size_t j = i;

		while (j > 0 && pair_cmp(c, &c->pairs[j - 1], &t) > 0) {
			c->pairs[j] = c->pairs[j - 1];
			j--;
		}
		c->pairs[j] = t;
	}
	for (size_t i = 0; i < c->npairs; i++) {
		const struct http_pair *p = &c->pairs[i];

		if (i)
			strbuf_putc(&c->enc, '&');
		query_escape(&c->enc, c->dec.p + p->koff, p->klen);
		strbuf_putc(&c->enc, '=');
		if (key_hidden(c, p))
			strbuf_puts(&c->enc, "xxxxx");
		else
			query_escape(&c->enc, c->dec.p + p->voff, p->vlen);
	}
}

/* ---- request fields ----------------------------------------------------------- */

/* Key "<prefix><lower-case name>" in the event arena (the arena lives as long as
 * the event, so the key outlives every use of the field). */
static const char *header_key(struct http_conn *c, struct event *ev, const char *prefix,
			      struct span name)
{
	strbuf_reset(&c->scratch);
	strbuf_puts(&c->scratch, prefix);
	for (size_t i = 0; i < name.n; i++)
		strbuf_putc(&c->scratch, (char)lc(name.p[i]));
	if (c->scratch.err)
		return NULL;
	return ev_arena_copy(ev, c->scratch.p, c->scratch.len);
}

/* Has a line before line `idx` the name of `h`? */
static bool hdr_seen_before(const struct hdr_block *b, size_t idx, const struct http_hdr *h)
{
	struct hdr_iter it;
	struct http_hdr e;

	hdr_iter_init(&it, b);
	for (size_t k = 0; k < idx && hdr_next(&it, &e); k++)
		if (hdr_same_name(&e, h))
			return true;
	return false;
}

/* http.*.headers.<name> for the first line `h` of its name; `after` (NULL for
 * Content-Type) is positioned after it, for the later lines of the same name. */
static void export_header(struct http_conn *c, struct event *ev, const struct hdr_block *b,
			  const char *prefix, const struct http_hdr *h,
			  const struct hdr_iter *after)
{
	const struct http_config *hc = c->hc;
	const char *key = header_key(c, ev, prefix, h->name);
	struct hdr_iter later;
	struct http_hdr h2;

	if (!key)
		return;
	if (hc->redact_authorization &&
	    (h->kind == HK_AUTHORIZATION || h->kind == HK_PROXY_AUTHORIZATION)) {
		ev_set_strz(ev, key, "*");
		return;
	}
	if (list_has(&hc->redact_headers, h->name)) {
		ev_set_strz(ev, key, "REDACTED");
		return;
	}
	if (h->kind == HK_CONTENT_TYPE) {
		ev_set_str(ev, key, b->last[HK_CONTENT_TYPE].p, b->last[HK_CONTENT_TYPE].n);
		return;
	}
	strbuf_reset(&c->scratch);
	strbuf_append(&c->scratch, h->value.p, h->value.n);
	later = *after;
	while (hdr_next(&later, &h2)) {
		if (!hdr_same_name(&h2, h))
			continue;
		strbuf_append(&c->scratch, ", ", 2);
		strbuf_append(&c->scratch, h2.value.p, h2.value.n);
	}
	if (!c->scratch.err)
		ev_set_str(ev, key, c->scratch.p, c->scratch.len);
}

/* http.{request,response}.headers.*: content-type always, the rest when listed in
 * send_headers or with send_all_headers; repeated headers joined with ", " at the
 * position of their first line, except content-type, which is the last line's value
 * (the one the body decisions use): a repeated Content-Type is not a list (RFC 9110
 * §8.3), and Packetbeat keeps the last one, so a response sending "Content-type:
 * application/octet-stream" then "Content-Type: binary" is "binary". content-length
 * is added when the message completes (as a number). */
static void export_headers(struct http_conn *c, struct event *ev, const struct hdr_block *b,
			   const char *prefix)
{
	const struct http_config *hc = c->hc;
	struct hdr_iter it;
	struct http_hdr h;
	size_t idx = 0;

	if (!hc->send_all_headers && hc->send_headers.n == 0) {
		/* the usual configuration: Content-Type alone, no need to walk the lines
		 * (every spelling of the name makes the same key) */
		static const struct http_hdr ct = {
		    .name = {(const uint8_t *)"content-type", 12},
		    .kind = HK_CONTENT_TYPE,
		};

		if (b->first[HK_CONTENT_TYPE].p)
			export_header(c, ev, b, prefix, &ct, NULL);
		return;
	}
	hdr_iter_init(&it, b);
	for (; hdr_next(&it, &h); idx++) {
		if (h.kind == HK_CONTENT_LENGTH)
			continue;
		if (h.kind != HK_CONTENT_TYPE && !hc->send_all_headers &&
		    !list_has(&hc->send_headers, h.name))
			continue;
		/* already emitted with an earlier line of the same name? */
		if (!hdr_seen_before(b, idx, &h))
			export_header(c, ev, b, prefix, &h, &it);
	}
}

/* user.name from "Authorization: Basic base64(user:password)". */
static void basic_user(struct event *ev, struct span auth)
{
	static const char b64[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	uint8_t out[HTTP_MAX_USER];
	size_t n = 0, user;
	uint32_t acc = 0;
	int bits = 0;

	if (auth.n < 6 || !span_ieq((struct span){auth.p, 5}, "basic") || auth.p[5] != ' ')
		return;
	auth = span_trim((struct span){auth.p + 6, auth.n - 6});
	for (size_t i = 0; i < auth.n && auth.p[i] != '='; i++) {
		const char *pos = auth.p[i] ? strchr(b64, auth.p[i]) : NULL;

		if (!pos)
			return;
		acc = acc << 6 | (uint32_t)(pos - b64);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (n == sizeof(out))
				break;
			out[n++] = (uint8_t)(acc >> bits);
		}
	}
	for (user = 0; user < n && out[user] != ':'; user++)
		;
	if (user == n || user == 0)
		return; /* no "user:" part */
	ev_set_str(ev, "user.name", out, user);
	ev_append_str(ev, "related.user", out, user);
}

/* The request target split into a path (percent-decoded, as Go's url.URL.Path) and
 * the raw query string. */
struct target {
	struct span raw_path, query;
	bool has_query;
};

static void split_target(struct span t, struct target *out)
{
	const uint8_t *q, *h;

	memset(out, 0, sizeof(*out));
	/* absolute-form: skip "scheme://authority" */
	if (t.n > 7 && (span_ieq((struct span){t.p, 7}, "http://") ||
			(t.n > 8 && span_ieq((struct span){t.p, 8}, "https://")))) {
		const uint8_t *auth = (const uint8_t *)memchr(t.p, '/', t.n) + 2;
		const uint8_t *slash = memchr(auth, '/', t.n - (size_t)(auth - t.p));

		t = slash ? (struct span){slash, t.n - (size_t)(slash - t.p)}
			  : (struct span){t.p + t.n, 0};
	}
	h = memchr(t.p, '#', t.n);
	if (h)
		t.n = (size_t)(h - t.p);
	q = memchr(t.p, '?', t.n);
	if (q) {
		out->raw_path = (struct span){t.p, (size_t)(q - t.p)};
		out->query = (struct span){q + 1, t.n - out->raw_path.n - 1};
		out->has_query = true;
	} else {
		out->raw_path = t;
	}
}

/* Fields known when the request header block is complete. */
static void request_head_fields(struct http_conn *c, struct event *ev, const struct start_line *sl,
				const struct hdr_block *b, struct proto_ctx *ctx)
{
	struct target tg;
	struct span v, path;
	uint32_t poff, plen;
	const char *ps;

	split_target(sl->target, &tg);
	/* decoded path lives in c->dec until the request is finished */
	strbuf_reset(&c->dec);
	c->npairs = 0;
	if (url_unescape(c, tg.raw_path, false, &poff, &plen)) {
		path = (struct span){(const uint8_t *)c->dec.p + poff, plen};
	} else {
		path = tg.raw_path;
	}
	if (span_ieq(sl->method, "CONNECT"))
		path = sl->target;
	ps = ev_arena_copy(ev, path.p, path.n); /* c->dec may move: keep a stable copy */
	if (ps)
		path = (struct span){(const uint8_t *)ps, path.n};

	ev_set_str(ev, "method", sl->method.p, sl->method.n);
	strbuf_reset(&c->scratch);
	strbuf_append(&c->scratch, sl->method.p, sl->method.n);
	strbuf_putc(&c->scratch, ' ');
	strbuf_append(&c->scratch, path.p, path.n);
	if (!c->scratch.err)
		ev_set_str(ev, "query", c->scratch.p, c->scratch.len);
	ev_set_str(ev, "path", path.p, path.n);
	ev_set_strz(ev, "http.version", sl->version);
	ev_set_str(ev, http_method_key, sl->method.p, sl->method.n);
	export_headers(c, ev, b, "http.request.headers.");
	v = b->first[HK_USER_AGENT];
	if (v.p)
		ev_set_str(ev, "user_agent.original", v.p, v.n);
	v = b->first[HK_REFERER];
	if (v.p)
		ev_set_str(ev, "http.request.referrer", v.p, v.n);
	if (b->first[HK_AUTHORIZATION].p)
		basic_user(ev, b->first[HK_AUTHORIZATION]);
	v = b->real_ip;
	if (v.p) {
		const uint8_t *comma = memchr(v.p, ',', v.n);

		if (comma)
			v.n = (size_t)(comma - v.p);
		v = span_trim(v);
		if (v.n)
			ev_set_str(ev, "network.forwarded_ip", v.p, v.n);
	}
	if (tg.has_query)
		params_add(c, tg.query, ctx);
}

/* url.* and the Host-derived fields; after the body when it feeds url.query. */
static void request_url_fields(struct http_conn *c, struct event *ev, const uint8_t *host_p,
			       size_t host_n, uint16_t host_port, struct proto_ctx *ctx)
{
	const struct ev_field *pf = ev_find(ev, "path");
	struct span path = pf ? (struct span){(const uint8_t *)pf->v.s.p, pf->v.s.len}
			      : (struct span){(const uint8_t *)"", 0};
	unsigned port = host_port ? host_port : ctx->conn->server_port;
	const uint8_t *slash, *dot;
	struct span last;

	if (host_n) {
		ev_set_str(ev, "destination.domain", host_p, host_n);
		ev_set_str(ev, "server.domain", host_p, host_n);
		ev_append_str(ev, "related.hosts", host_p, host_n);
	}
	ev_set_strz(ev, "url.scheme", "http");
	if (host_n)
		ev_set_str(ev, "url.domain", host_p, host_n);
	if (port != 80)
		ev_set_uint(ev, "url.port", port);
	ev_set_str(ev, "url.path", path.p, path.n);
	params_encode(c);
	if (c->enc.len && !c->enc.err)
		ev_set_str(ev, "url.query", c->enc.p, c->enc.len);
	/* url.extension: after the last '.' of the last path segment */
	slash = path.n ? memrchr(path.p, '/', path.n) : NULL;
	last = slash ? (struct span){slash + 1, path.n - (size_t)(slash + 1 - path.p)} : path;
	dot = last.n ? memrchr(last.p, '.', last.n) : NULL;
	if (dot && (size_t)(dot + 1 - last.p) < last.n)
		ev_set_str(ev, "url.extension", dot + 1, last.n - (size_t)(dot + 1 - last.p));
	if (host_n && path.n) {
		strbuf_reset(&c->scratch);
		strbuf_puts(&c->scratch, "http://");
		if (memchr(host_p, ':', host_n)) { /* IPv6 literal */
			strbuf_putc(&c->scratch, '[');
			strbuf_append(&c->scratch, host_p, host_n);
			strbuf_putc(&c->scratch, ']');
		} else {
			strbuf_append(&c->scratch, host_p, host_n);
		}
		if (port != 80)
			strbuf_appendf(&c->scratch, ":%u", port);
		strbuf_append(&c->scratch, path.p, path.n);
		if (c->enc.len) {
			strbuf_putc(&c->scratch, '?');
			strbuf_append(&c->scratch, c->enc.p, c->enc.len);
		}
		if (!c->scratch.err)
			ev_set_str(ev, "url.full", c->scratch.p, c->scratch.len);
	}
}

/* Host header → host (no port, no IPv6 brackets, as Go's net.SplitHostPort) and
 * port (0 when absent or not a number). */
static void split_host(struct span h, struct span *host, uint16_t *port)
{
	const uint8_t *colon = NULL;
	uint64_t p;

	*port = 0;
	*host = h;
	if (h.n && h.p[0] == '[') {
		const uint8_t *rb = memchr(h.p, ']', h.n);

		if (!rb)
			return;
		*host = (struct span){h.p + 1, (size_t)(rb - h.p) - 1};
		if (rb + 1 < h.p + h.n && rb[1] == ':')
			colon = rb + 1;
	} else {
		colon = memrchr(h.p, ':', h.n);
		if (colon)
			host->n = (size_t)(colon - h.p);
	}
	if (colon &&
	    parse_dec((struct span){colon + 1, h.n - (size_t)(colon + 1 - h.p)}, 65535, &p))
		*port = (uint16_t)p;
}

/* ---- message lifecycle -------------------------------------------------------- */

static void dir_reset(struct http_dir *d)
{
	d->state = HS_START;
	d->ts_set = false;
	d->gap_lost = false;
	d->has_cl = false;
	d->unmatched = false;
	d->is_head = false;
	d->scan = 0;
	d->nlines = 0;
	d->left = 0;
	d->msg_bytes = 0;
	d->body_bytes = 0;
	d->content_length = 0;
	d->status_code = 0;
	d->ntrailers = 0;
	d->url_pending = false;
	d->host_n = 0;
	d->host_port = 0;
	d->ev = NULL;
	cap_reset(d);
}

/* Body framing fields and exported text, shared by both directions. */
static void finish_fields(struct http_conn *c, struct http_dir *d, struct event *ev, bool request)
{
	uint64_t cl = d->has_cl ? d->content_length : d->body_bytes;
	const uint8_t *body = d->buf ? d->buf + d->hdr_part : NULL;
	size_t body_len = d->buf_len - d->hdr_part;

	(void)c;
	if (request) {
		ev_set_uint(ev, "http.request.headers.content-length", cl);
		ev_set_uint(ev, "http.request.bytes", d->msg_bytes);
		if (d->body_bytes)
			ev_set_uint(ev, "http.request.body.bytes", d->body_bytes);
		if (d->cap_content)
			ev_set_str(ev, "http.request.body.content",
				   body ? body : (const uint8_t *)"", body_len);
		if (d->want_raw)
			ev_set_str(ev, "request", d->buf ? d->buf : (const uint8_t *)"",
				   d->hdr_part + (d->cap_raw_body ? body_len : 0));
		ev->client_bytes = d->msg_bytes;
		ev->has_client_bytes = true;
		if (d->gap_lost)
			txn_add_note(ev, "Packet loss while capturing the request");
	} else {
		ev_set_uint(ev, "http.response.headers.content-length", cl);
		ev_set_uint(ev, "http.response.bytes", d->msg_bytes);
		if (d->body_bytes)
			ev_set_uint(ev, "http.response.body.bytes", d->body_bytes);
		if (d->cap_content)
			ev_set_str(ev, "http.response.body.content",
				   body ? body : (const uint8_t *)"", body_len);
		if (d->want_raw)
			ev_set_str(ev, "response", d->buf ? d->buf : (const uint8_t *)"",
				   d->hdr_part + (d->cap_raw_body ? body_len : 0));
		ev->server_bytes = d->msg_bytes;
		ev->has_server_bytes = true;
		if (d->gap_lost)
			txn_add_note(ev, "Packet loss while capturing the response");
	}
}

/* url.* of a request whose urlencoded body feeds url.query. */
static void request_url_late(struct http_conn *c, struct http_dir *d, struct event *ev,
			     struct proto_ctx *ctx)
{
	const uint8_t *body = d->buf ? d->buf + d->hdr_part : (const uint8_t *)"";

	if (!d->url_pending)
		return;
	d->url_pending = false;
	if (!d->gap_lost)
		params_add(c, (struct span){body, d->buf_len - d->hdr_part}, ctx);
	request_url_fields(c, ev, (const uint8_t *)d->host, d->host_n, d->host_port, ctx);
}

static void push_request(struct http_conn *c, struct event *ev, struct proto_ctx *ctx)
{
	if (txn_fifo_push(&c->fifo, ev) == -ENOSPC) {
		metric_inc(ctx->stats->limit_exceeded);
		txn_publish_unmatched(ctx, txn_fifo_pop(&c->fifo), "Unmatched request", true);
		txn_fifo_push(&c->fifo, ev);
	}
}

static void request_done(struct http_conn *c, struct http_dir *d, struct proto_ctx *ctx)
{
	struct event *ev = d->ev;

	metric_inc(ctx->stats->messages);
	if (!ev) {
		if (!d->unmatched) /* unmatched here means "already taken by a response" */
			c->lost_pending++;
		dir_reset(d);
		return;
	}
	request_url_late(c, d, ev, ctx);
	finish_fields(c, d, ev, true);
	push_request(c, ev, ctx);
	dir_reset(d);
}

static void response_done(struct http_conn *c, struct http_dir *d, struct proto_ctx *ctx)
{
	struct event *ev = d->ev;

	metric_inc(ctx->stats->messages);
	if (ev) {
		finish_fields(c, d, ev, false);
		if (d->unmatched) {
			txn_publish_unmatched(ctx, ev, "Unmatched response", false);
		} else {
			ev->status = d->status_code >= 400 ? EV_STATUS_ERROR : EV_STATUS_OK;
			txn_publish(ctx, ev);
		}
	}
	d->ev = NULL;
	dir_reset(d);
}

static void message_done(struct http_conn *c, enum proto_dir dir, struct proto_ctx *ctx)
{
	if (dir == DIR_TO_SERVER)
		request_done(c, &c->dir[dir], ctx);
	else
		response_done(c, &c->dir[dir], ctx);
}

static bool want_body(const struct http_config *hc, const struct cfg_strlist *own, bool have_ctype,
		      struct span ctype)
{
	return have_ctype &&
	       (list_matches(&hc->include_body_for, ctype) || list_matches(own, ctype));
}

/* Set up body framing after a complete header block. Returns false on invalid
 * framing. */
static bool start_body(struct http_conn *c, struct http_dir *d, const struct framing *fr,
		       bool request, bool no_body)
{
	(void)c;
	d->has_cl = fr->has_cl;
	d->content_length = fr->cl;
	if (no_body) {
		d->state = HS_START;
		return true;
	}
	if (fr->chunked) {
		d->state = HS_CHUNK_SIZE;
		return true;
	}
	if (fr->te && request)
		return false; /* RFC 9112 §6.3: unknown coding on a request → 400 */
	if (fr->te) {
		d->state = HS_BODY_CLOSE;
		return true;
	}
	if (fr->has_cl) {
		d->left = fr->cl;
		d->state = fr->cl ? HS_BODY_LEN : HS_START;
		return true;
	}
	d->state = request ? HS_START : HS_BODY_CLOSE;
	return true;
}

enum head_result { HEAD_OK, HEAD_MORE, HEAD_ERROR };

/* A complete request header block. */
static enum head_result request_head(struct http_conn *c, struct http_dir *d,
				     const struct start_line *sl, const struct hdr_block *b,
				     struct proto_ctx *ctx)
{
	const struct http_config *hc = c->hc;
	struct event *ev;
	struct span ctype;
	bool have_ctype;

	if (b->bad)
		return HEAD_ERROR;
	txn_fifo_expire(&c->fifo, ctx, c->timeout, "Unmatched request");
	ctype = b->last[HK_CONTENT_TYPE];
	have_ctype = ctype.p != NULL;
	ev = txn_new_event(ctx, &http_proto);
	d->ev = ev;
	if (ev) {
		txn_init_event(ev, ctx->conn, d->msg_ts);
		request_head_fields(c, ev, sl, b, ctx);
	}
	d->want_raw = c->send_request && ev;
	d->cap_content = ev && want_body(hc, &hc->include_request_body_for, have_ctype, ctype);
	d->cap_raw_body = d->want_raw && d->cap_content;
	d->cap_form = ev && have_ctype && span_icontains(ctype, "x-www-form-urlencoded");
	if (d->want_raw)
		cap_headers(c, d, b);
	d->hdr_part = d->buf_len;
	if (!start_body(c, d, &b->fr, true, false))
		return HEAD_ERROR;
	if (ev) {
		struct span host = {(const uint8_t *)"", 0};
		uint16_t port = 0;

		if (b->first[HK_HOST].p)
			split_host(b->first[HK_HOST], &host, &port);
		if (d->cap_form && d->state != HS_START) {
			/* url.query also takes the body's parameters: wait for it */
			d->url_pending = true;
			d->host_n = host.n < sizeof(d->host) ? host.n : sizeof(d->host) - 1;
			memcpy(d->host, host.p, d->host_n);
			d->host_port = port;
		} else {
			request_url_fields(c, ev, host.p, host.n, port, ctx);
		}
	}
	return HEAD_OK;
}

/* http.request.method of a request event, or NULL. It is set with the key
 * http_method_key, so comparing key pointers finds it, from the front where it is
 * (ev_find compares the text of every key from the back). */
static const struct ev_field *request_method(const struct event *ev)
{
	for (size_t i = 0; i < ev->nfields; i++)
		if (ev->fields[i].key == http_method_key && !ev->fields[i].member)
			return &ev->fields[i];
	return NULL;
}

/* Is `f` (http.request.method, or NULL) the method `m`? */
static bool method_is(const struct ev_field *f, const char *m)
{
	return f && strlen(m) == f->v.s.len && memcmp(f->v.s.p, m, f->v.s.len) == 0;
}

/* A complete response header block. */
static enum head_result response_head(struct http_conn *c, struct http_dir *d,
				      const struct start_line *sl, const struct hdr_block *b,
				      struct proto_ctx *ctx)
{
	const struct http_config *hc = c->hc;
	struct http_dir *rq = &c->dir[DIR_TO_SERVER];
	struct event *ev;
	struct span ctype;
	bool have_ctype, no_body, tunnel = false;
	size_t i;

	if (b->bad)
		return HEAD_ERROR;
	txn_fifo_expire(&c->fifo, ctx, c->timeout, "Unmatched request");
	if (sl->code < 200 && sl->code != 101) {
		/* interim response (100 Continue, 103 Early Hints): not a transaction */
		metric_inc(ctx->stats->messages);
		d->state = HS_START;
		d->ts_set = false;
		return HEAD_OK;
	}
	ev = txn_fifo_pop(&c->fifo);
	if (!ev && c->lost_pending) {
		c->lost_pending--; /* its request got no event: nothing to complete */
	} else if (!ev && rq->ev) {
		/* answered before the request finished (early reject) */
		ev = rq->ev;
		rq->ev = NULL;
		rq->unmatched = true;
		request_url_late(c, rq, ev, ctx);
		finish_fields(c, rq, ev, true);
	} else if (!ev) {
		ev = txn_new_event(ctx, &http_proto);
		if (ev) {
			txn_init_event(ev, ctx->conn, d->msg_ts);
			ev_set_strz(ev, "http.version", sl->version);
			d->unmatched = true;
		}
	}
	d->ev = ev;
	d->status_code = sl->code;
	if (ev) {
		const struct ev_field *method = request_method(ev);

		ev->end_ns = d->msg_ts;
		d->is_head = method_is(method, "HEAD");
		tunnel = sl->code == 101 || (method_is(method, "CONNECT") && sl->code < 300);
		ev_set_uint(ev, "http.response.status_code", sl->code);
		strbuf_reset(&c->scratch);
		for (i = 0; i < sl->phrase.n; i++)
			strbuf_putc(&c->scratch, (char)lc(sl->phrase.p[i]));
		if (!c->scratch.err)
			ev_set_str(ev, "http.response.status_phrase", c->scratch.p, c->scratch.len);
		export_headers(c, ev, b, "http.response.headers.");
	}
	ctype = b->last[HK_CONTENT_TYPE];
	have_ctype = ctype.p != NULL;
	d->want_raw = c->send_response && ev;
	d->cap_content = ev && want_body(hc, &hc->include_response_body_for, have_ctype, ctype);
	d->cap_raw_body = d->want_raw && d->cap_content;
	if (d->want_raw)
		cap_headers(c, d, b);
	d->hdr_part = d->buf_len;
	no_body = d->is_head || sl->code == 204 || sl->code == 304 || tunnel;
	if (!start_body(c, d, &b->fr, false, no_body))
		return HEAD_ERROR;
	if (tunnel)
		d->state = HS_TUNNEL; /* response_done below resets it; restored by caller */
	return HEAD_OK;
}

/* ---- the header block scanner ----------------------------------------------- */

static void count_skip(struct http_conn *c, size_t n)
{
	if (!c->m_resync)
		c->m_resync = metrics_counter("http.resync_skipped_bytes");
	metric_add(c->m_resync, n);
}

/* At a message boundary: skip blank lines (and, unsynced, junk lines), find the
 * complete header block and process it. `*used` = bytes consumed. */
static enum head_result parse_head(struct http_conn *c, enum proto_dir dir, struct cursor *in,
				   struct proto_ctx *ctx)
{
	struct http_dir *d = &c->dir[dir];
	struct hdr_block b;
	struct start_line sl;
	enum sl_kind kind;
	enum head_result hr;
	struct cursor blk;
	struct span line;
	size_t start, blen;
	bool indexed, have_sl = false;

	/* blank lines between messages (RFC 9112 §2.2) */
	while (d->scan == 0 && cur_left(in)) {
		uint8_t ch = cur_peek_u8(in);

		if (ch != '\r' && ch != '\n')
			break;
		cur_skip(in, 1);
	}
	if (!cur_left(in))
		return HEAD_MORE;
	if (!d->ts_set) {
		d->msg_ts = ctx->ts;
		d->ts_set = true;
	}
	start = in->off;
	/* scan lines from where the previous call stopped */
	cur_init(&blk, in->p + start, in->len - start);
	if (d->scan > blk.len) { /* the caller re-presented less than before */
		d->scan = 0;
		d->nlines = 0;
	}
	cur_seek(&blk, d->scan);
	/* From the start line on, each header line goes to `b` as it is found; a scan
	 * resumed from an earlier call parses the whole block again once complete. */
	indexed = d->scan == 0;
	if (indexed)
		hdr_block_init(c, &b);
	for (;;) {
		size_t lstart = blk.off;

		if (!next_line(&blk, &line)) {
			size_t partial = blk.len - lstart;

			if (partial > c->max_line_bytes) {
				if (!d->synced && d->nlines == 0) {
					/* junk without line ends: skip it, then to its end */
					count_skip(c, in->len - start);
					d->seen = true;
					cur_seek(in, in->len);
					d->state = HS_SKIP_LINE;
					d->ts_set = false;
					return HEAD_OK;
				}
				metric_inc(ctx->stats->limit_exceeded);
				return HEAD_ERROR;
			}
			if (blk.len > c->max_header_bytes) {
				metric_inc(ctx->stats->limit_exceeded);
				return HEAD_ERROR;
			}
			d->scan = lstart;
			return HEAD_MORE;
		}
		if (line.n > c->max_line_bytes && (d->synced || d->nlines)) {
			metric_inc(ctx->stats->limit_exceeded);
			return HEAD_ERROR;
		}
		if (d->nlines == 0) {
			memset(&sl, 0, sizeof(sl));
			kind = dir == DIR_TO_SERVER ? parse_request_line(line, &sl)
						    : parse_status_line(line, &sl);
			if (kind == SL_H2 || (kind == SL_09 && !d->seen))
				return HEAD_ERROR;
			if (kind != SL_REQUEST && kind != SL_RESPONSE) {
				if (d->synced)
					return HEAD_ERROR;
				/* resync: drop this line and look at the next */
				d->seen = true;
				count_skip(c, blk.off);
				cur_skip(in, blk.off);
				d->ts_set = false;
				d->scan = 0;
				return HEAD_OK;
			}
			have_sl = true;
			d->nlines = 1;
			continue;
		}
		if (blk.off > c->max_header_bytes) {
			metric_inc(ctx->stats->limit_exceeded);
			return HEAD_ERROR;
		}
		if (line.n == 0)
			break; /* end of the header block */
		if (d->nlines > c->max_headers) {
			metric_inc(ctx->stats->limit_exceeded);
			return HEAD_ERROR;
		}
		d->nlines++;
		if (indexed)
			hdr_block_add(&b, line);
	}
	blen = blk.off;
	if (indexed) {
		b.p = in->p + start;
		b.len = blen;
	} else {
		hdr_block_parse(c, &b, in->p + start, blen);
	}
	if (!have_sl) {
		/* the start line was seen by an earlier call: parse it again (cheap) */
		cur_init(&blk, in->p + start, blen);
		next_line(&blk, &line);
		memset(&sl, 0, sizeof(sl));
		if (dir == DIR_TO_SERVER)
			parse_request_line(line, &sl);
		else
			parse_status_line(line, &sl);
	}
	d->seen = true;
	d->synced = true;
	d->msg_bytes = blen;
	hr = dir == DIR_TO_SERVER ? request_head(c, d, &sl, &b, ctx)
				  : response_head(c, d, &sl, &b, ctx);
	if (hr != HEAD_OK)
		return hr;
	cur_skip(in, blen);
	d->scan = 0;
	d->nlines = 0;
	if (dir == DIR_TO_CLIENT && sl.code < 200 && sl.code != 101)
		return HEAD_OK; /* interim: nothing to finish */
	if (d->state == HS_TUNNEL) {
		response_done(c, d, ctx);
		c->dir[0].state = HS_TUNNEL;
		c->dir[1].state = HS_TUNNEL;
		return HEAD_OK;
	}
	if (d->state == HS_START)
		message_done(c, dir, ctx);
	return HEAD_OK;
}

/* ---- body states --------------------------------------------------------------- */

static void body_bytes(struct http_conn *c, struct http_dir *d, const uint8_t *p, size_t n)
{
	d->msg_bytes += n;
	d->body_bytes += n;
	if (capturing_body(d) && !d->gap_lost)
		cap_append(c, d, p, n);
}

/* One line of chunked framing; HEAD_MORE when incomplete. */
static enum head_result chunk_line(struct http_conn *c, struct http_dir *d, struct cursor *in,
				   struct span *line, struct proto_ctx *ctx)
{
	size_t start = in->off;

	if (!next_line(in, line)) {
		if (cur_left(in) > c->max_line_bytes) {
			metric_inc(ctx->stats->limit_exceeded);
			return HEAD_ERROR;
		}
		return HEAD_MORE;
	}
	if (line->n > c->max_line_bytes) {
		metric_inc(ctx->stats->limit_exceeded);
		return HEAD_ERROR;
	}
	d->msg_bytes += in->off - start;
	return HEAD_OK;
}

static enum head_result parse_chunk_size(struct http_dir *d, struct span line)
{
	uint64_t v = 0;
	size_t i = 0;
	int h;

	while (i < line.n && (h = hexval(line.p[i])) >= 0) {
		if (v > (HTTP_MAX_CHUNK_SIZE >> 4))
			return HEAD_ERROR;
		v = v << 4 | (uint64_t)h;
		i++;
	}
	if (i == 0)
		return HEAD_ERROR;
	while (i < line.n && (line.p[i] == ' ' || line.p[i] == '\t'))
		i++;
	if (i < line.n && line.p[i] != ';')
		return HEAD_ERROR; /* anything after the size must be an extension */
	d->left = v;
	d->state = v ? HS_CHUNK_DATA : HS_TRAILERS;
	return HEAD_OK;
}

/* ---- proto_ops ------------------------------------------------------------------ */

static void *http_conn_new(const struct conn_info *info)
{
	const struct cfg_proto *cfg = info ? info->cfg : NULL;
	struct http_conn *c = hb_malloc(sizeof(*c));

	if (!c)
		return NULL;
	memset(c, 0, offsetof(struct http_conn, pairs));
	c->hc = cfg && cfg->priv ? cfg->priv : &http_defaults;
	c->max_header_bytes =
	    c->hc->max_header_bytes ? c->hc->max_header_bytes : HTTP_DEF_MAX_HEADER_BYTES;
	c->max_line_bytes = c->hc->max_line_bytes ? c->hc->max_line_bytes : HTTP_DEF_MAX_LINE_BYTES;
	c->max_headers = c->hc->max_headers ? c->hc->max_headers : HTTP_DEF_MAX_HEADERS;
	c->max_msg = cfg && cfg->max_message_size ? cfg->max_message_size : HTTP_DEF_MAX_MESSAGE;
	c->timeout = cfg && cfg->transaction_timeout ? cfg->transaction_timeout : HTTP_DEF_TIMEOUT;
	c->send_request = cfg && cfg->send_request;
	c->send_response = cfg && cfg->send_response;
	txn_fifo_init(&c->fifo, cfg && cfg->max_pending ? cfg->max_pending : HTTP_DEF_MAX_PENDING);
	strbuf_init(&c->scratch);
	strbuf_init(&c->dec);
	strbuf_init(&c->enc);
	dir_reset(&c->dir[0]);
	dir_reset(&c->dir[1]);
	return c;
}

static struct parse_result http_parse(void *conn, enum proto_dir dir, const uint8_t *data,
				      size_t len, struct proto_ctx *ctx)
{
	struct http_conn *c = conn;
	struct http_dir *d = &c->dir[dir];
	struct parse_result r = {PARSE_OK, 0, 0};
	struct cursor in;
	struct span line;
	enum head_result hr;

	cur_init(&in, data, len);
	while (cur_left(&in)) {
		size_t n;
		const uint8_t *p;

		switch (d->state) {
		case HS_START:
			hr = parse_head(c, dir, &in, ctx);
			if (hr == HEAD_MORE) {
				r.status = PARSE_NEED_MORE;
				goto out;
			}
			if (hr == HEAD_ERROR)
				goto err;
			break;
		case HS_SKIP_LINE: {
			long nl = cur_find(&in, '\n');

			n = nl < 0 ? cur_left(&in) : (size_t)nl - in.off + 1;
			count_skip(c, n);
			cur_skip(&in, n);
			if (nl >= 0)
				d->state = HS_START;
			break;
		}
		case HS_TUNNEL:
			cur_skip(&in, cur_left(&in));
			break;
		case HS_BODY_LEN:
		case HS_CHUNK_DATA:
			n = cur_left(&in) < d->left ? cur_left(&in) : (size_t)d->left;
			p = cur_bytes(&in, n);
			body_bytes(c, d, p, n);
			d->left -= n;
			if (d->left)
				break;
			if (d->state == HS_CHUNK_DATA)
				d->state = HS_CHUNK_END;
			else
				message_done(c, dir, ctx);
			break;
		case HS_BODY_CLOSE:
			n = cur_left(&in);
			body_bytes(c, d, cur_bytes(&in, n), n);
			break;
		case HS_CHUNK_SIZE:
		case HS_CHUNK_END:
		case HS_TRAILERS:
			hr = chunk_line(c, d, &in, &line, ctx);
			if (hr == HEAD_MORE) {
				r.status = PARSE_NEED_MORE;
				goto out;
			}
			if (hr == HEAD_ERROR)
				goto err;
			if (d->state == HS_CHUNK_SIZE) {
				if (parse_chunk_size(d, line) != HEAD_OK)
					goto err;
			} else if (d->state == HS_CHUNK_END) {
				if (line.n)
					goto err;
				d->state = HS_CHUNK_SIZE;
			} else if (line.n == 0) {
				message_done(c, dir, ctx);
			} else if (++d->ntrailers > c->max_headers) {
				metric_inc(ctx->stats->limit_exceeded);
				goto err;
			}
			break;
		}
	}
out:
	r.consumed = in.off;
	return r;
err:
	r.status = PARSE_ERROR;
	r.consumed = in.off;
	return r;
}

static int http_gap(void *conn, enum proto_dir dir, size_t n, struct proto_ctx *ctx)
{
	struct http_conn *c = conn;
	struct http_dir *d = &c->dir[dir];

	/* gaps and gap_drops are counted by the stream layer, which calls us. */
	switch (d->state) {
	case HS_TUNNEL:
		return 0;
	case HS_BODY_CLOSE:
		d->gap_lost = true;
		d->msg_bytes += n;
		d->body_bytes += n;
		return 0;
	case HS_BODY_LEN:
	case HS_CHUNK_DATA:
		if (n > d->left)
			break;
		d->gap_lost = true;
		d->msg_bytes += n;
		d->body_bytes += n;
		d->left -= n;
		if (d->left == 0) {
			if (d->state == HS_CHUNK_DATA)
				d->state = HS_CHUNK_END;
			else
				message_done(c, dir, ctx);
		}
		return 0;
	default:
		break;
	}
	return -1;
}

static void http_fin(void *conn, enum proto_dir dir, struct proto_ctx *ctx)
{
	struct http_conn *c = conn;
	struct http_dir *d = &c->dir[dir];

	if (dir == DIR_TO_CLIENT && d->state == HS_BODY_CLOSE)
		response_done(c, d, ctx);
}

static void http_expire(void *conn, struct proto_ctx *ctx)
{
	struct http_conn *c = conn;
	struct http_dir *rs = &c->dir[DIR_TO_CLIENT], *rq = &c->dir[DIR_TO_SERVER];

	/* a response whose headers were seen is published with what arrived */
	if (rs->ev)
		response_done(c, rs, ctx);
	else if (rs->state != HS_TUNNEL)
		dir_reset(rs);
	if (rq->ev) {
		request_url_late(c, rq, rq->ev, ctx);
		finish_fields(c, rq, rq->ev, true);
		txn_publish_unmatched(ctx, rq->ev, "Unmatched request", true);
		rq->ev = NULL;
	}
	if (rq->state != HS_TUNNEL)
		dir_reset(rq);
	txn_fifo_flush(&c->fifo, ctx, "Unmatched request");
	c->lost_pending = 0;
}

static void http_conn_free(void *conn)
{
	struct http_conn *c = conn;

	if (!c)
		return;
	txn_fifo_release(&c->fifo);
	for (int i = 0; i < 2; i++) {
		ev_pool_put(c->dir[i].ev);
		hb_free(c->dir[i].buf);
	}
	strbuf_free(&c->scratch);
	strbuf_free(&c->dec);
	strbuf_free(&c->enc);
	hb_free(c);
}

const struct proto_ops http_proto = {
    .name = "http",
    .transports = PROTO_TCP,
    .default_ports = http_ports,
    .ndefault_ports = sizeof(http_ports) / sizeof(http_ports[0]),
    .config = http_config_fields,
    .nconfig = sizeof(http_config_fields) / sizeof(http_config_fields[0]),
    .config_size = sizeof(struct http_config),
    .conn_new = http_conn_new,
    .parse = http_parse,
    .gap = http_gap,
    .fin = http_fin,
    .expire = http_expire,
    .conn_free = http_conn_free,
};
