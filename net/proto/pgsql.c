/* pgsql.c — PostgreSQL frontend/backend protocol v3 transactions over TCP (Packetbeat's "pgsql").
 *
 * Spec: https://www.postgresql.org/docs/current/protocol-flow.html and
 * protocol-message-formats.html (protocol 3.0/3.2). Event fields follow Packetbeat 8
 * (docs/reference/packetbeat.md §1.5, §2.3, §2.4): method, query, request, response,
 * pgsql.{num_rows,num_fields,error_code,error_message,error_severity}.
 *
 *   typed message       startup-phase message (client, no type byte)
 *   +------+--------+------...   +--------+--------+------...
 *   | type | len:32 | body       | len:32 | code:32| body
 *   +------+--------+------...   +--------+--------+------...
 *            len counts itself (>= 4), not the type byte.
 *   code: 196608 (3.0) StartupMessage, 80877103 SSLRequest, 80877104 GSSENCRequest,
 *         80877102 CancelRequest. SSL/GSS requests get a one-byte answer 'S'/'G'/'N'.
 *
 *   RowDescription 'T': n:16, n × { name\0, table:32, col:16, type:32, size:16, mod:32, fmt:16 }
 *   DataRow        'D': n:16, n × { len:32 (-1 = NULL), len bytes }
 *   ErrorResponse  'E': { code:8, value\0 }* \0   (S/V severity, C SQLSTATE, M message)
 *
 * Transactions. A simple query 'Q' may hold several statements; it is split at
 * semicolons outside quotes, dollar quotes and comments, and each statement becomes
 * one pending transaction. In the extended protocol, Parse texts are remembered (the
 * unnamed statement/portal in one slot each, named ones in a small capped table) and
 * each Execute becomes one transaction whose query is the text of the portal's
 * statement. A response opens at the first result message (T, D, C, E, I, s, G, H, W,
 * d, c) and is completed by CommandComplete, ErrorResponse, EmptyQueryResponse or
 * PortalSuspended; it completes the oldest pending transaction of the oldest batch.
 * A batch is what the server answers with one ReadyForQuery: one 'Q', or the
 * extended messages up to a Sync. ReadyForQuery ends the oldest batch: statements of
 * it still pending were not executed (an earlier one failed) and are published as
 * unmatched requests.
 *
 * Bytes (as Packetbeat counts them): source.bytes = the whole 'Q' message for each of
 * its statements, or the extended messages (Parse/Bind/Describe/Execute, Sync) that
 * led to the Execute; destination.bytes = from the response's first result message
 * through the completing message (T..C = 202 bytes for pgsql_request_response.pcap),
 * not ReadyForQuery.
 *
 * Streaming: a message whose content is needed (Q, P, B, E, C on the client; T, C, E
 * on the server) is read once a bounded prefix is present; the rest of its body is
 * skipped as it arrives. DataRows are decoded column by column as they stream and
 * only the exported prefix (max_row_length bytes of values, max_rows rows) is copied.
 * COPY data and everything else is skipped without buffering.
 *
 * SSL: an 'S' answer to SSLRequest (or 'G' to GSSENCRequest, or a TLS record where
 * the startup packet should be) means the rest is encrypted: counted in
 * pgsql.tls_sessions (pgsql.gssenc_sessions) and the connection is ignored.
 *
 * Resync: a direction that has not yet parsed a message (mid-stream start, or a fresh
 * conn after a refused gap) skips bytes until a plausible header (known type, sane
 * length) appears, counting pgsql.resync_skipped_bytes; on a synced direction an
 * unknown type or bad length is PARSE_ERROR.
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
extern const struct proto_ops pgsql_proto;

#define PG_DEF_MAX_ROWS 10
#define PG_DEF_MAX_ROW_LENGTH 1024
#define PG_DEF_MAX_MESSAGE_LENGTH (1ull << 30) /* PostgreSQL's own MaxAllocSize */
#define PG_DEF_MAX_QUERY_LENGTH 65536
#define PG_DEF_MAX_STATEMENTS 32
#define PG_DEF_MAX_MESSAGE (10u << 20)
#define PG_DEF_MAX_PENDING 64
#define PG_DEF_TIMEOUT (10ull * 1000000000ull)

#define PG_NAME_MAX 64       /* NAMEDATALEN: statement/portal names, incl. NUL */
#define PG_MAX_COLS 1664     /* MaxTupleAttributeNumber */
#define PG_INSPECT_MAX 32768 /* T/E bodies read at most this far */
#define PG_TAG_MAX 256       /* CommandComplete tags read at most this far */
#define PG_STARTUP_MAX 10000 /* MAX_STARTUP_PACKET_LENGTH */
#define PG_RESYNC_MAX 65536  /* unsynced bytes skipped before giving up */
#define PG_MAX_BATCHES 32    /* batches awaiting ReadyForQuery (merged beyond) */
#define PG_VERB_MAX 32

#define PG_CODE_V3 196608u
#define PG_CODE_CANCEL 80877102u
#define PG_CODE_SSL 80877103u
#define PG_CODE_GSSENC 80877104u

/* Private configuration (cfg_proto.priv), filled from pgsql_config_fields. */
struct pgsql_config {
	uint64_t max_rows;
	uint64_t max_row_length;
	uint64_t max_message_length;
	uint64_t max_query_length;
	uint64_t max_statements;
};

static const struct cfg_field pgsql_config_fields[] = {
    {"max_rows", CFG_UINT, offsetof(struct pgsql_config, max_rows), "10",
     "result rows kept in the response text", 0, 1000000},
    {"max_row_length", CFG_SIZE, offsetof(struct pgsql_config, max_row_length), "1024",
     "bytes of column values kept per row in the response text", 1, 1 << 20},
    {"max_message_length", CFG_SIZE, offsetof(struct pgsql_config, max_message_length), "1024MiB",
     "largest protocol message accepted (its length field)", 64, 1ll << 31},
    {"max_query_length", CFG_SIZE, offsetof(struct pgsql_config, max_query_length), "64KiB",
     "bytes of a query text read (longer ones are exported truncated)", 64, 192 << 10},
    {"max_statements", CFG_UINT, offsetof(struct pgsql_config, max_statements), "32",
     "named prepared statements/portals remembered per connection", 1, 4096},
};

static const struct pgsql_config pgsql_defaults = {
    .max_rows = PG_DEF_MAX_ROWS,
    .max_row_length = PG_DEF_MAX_ROW_LENGTH,
    .max_message_length = PG_DEF_MAX_MESSAGE_LENGTH,
    .max_query_length = PG_DEF_MAX_QUERY_LENGTH,
    .max_statements = PG_DEF_MAX_STATEMENTS,
};

static const uint16_t pgsql_ports[] = {5432};

enum pg_state {
	PS_HDR,    /* at a message boundary */
	PS_SKIP,   /* `left` body bytes to skip */
	PS_ROW,    /* streaming a DataRow body, `left` bytes to go */
	PS_IGNORE, /* encrypted or unsupported: everything is skipped */
};

enum pg_row_phase { ROW_NCOLS, ROW_COLHDR, ROW_VALUE, ROW_END };

struct pg_dir {
	enum pg_state state;
	bool synced;         /* a message was parsed in this direction */
	bool expect_startup; /* client: the next message has no type byte */
	bool ts_set;
	bool hdr_known; /* waiting for the body of a message whose header was read */
	uint8_t type;   /* of that message */
	uint64_t total; /* its size, type byte and length included */
	uint64_t msg_ts;
	uint64_t left;
	uint64_t skipped; /* resync bytes skipped while unsynced */
};

/* A statement text shared by the statement and the portals bound to it. */
struct pg_text {
	uint32_t refs;
	uint32_t len;
	char s[];
};

struct pg_stmt {
	struct pg_text *text; /* NULL = free slot */
	uint64_t seq;         /* insertion order, for eviction */
	char kind;            /* 'S' statement, 'P' portal */
	uint8_t nlen;
	char name[PG_NAME_MAX];
};

/* What one ReadyForQuery answers. */
struct pg_batch {
	uint32_t nev; /* its transactions still in the FIFO */
	uint32_t zs;  /* extra ReadyForQuery expected (batches merged on overflow) */
	bool closed;  /* its Q or Sync was seen */
	bool more;    /* it has statements without an event (limits): a response
			 beyond nev gets a fresh event with ts/bytes below */
	uint64_t ts, bytes;
};

/* The response being assembled (server direction). */
struct pg_resp {
	bool open;
	bool gap;
	bool have_fields; /* RowDescription seen */
	uint64_t ts;
	uint64_t bytes;
	uint32_t nfields;
	uint64_t rows;      /* DataRows seen */
	uint64_t rows_kept; /* rows written to csv */
	struct strbuf csv;
	bool csv_full;
	uint8_t binary[(PG_MAX_COLS + 7) / 8]; /* result columns in binary format */
	bool any_binary;                       /* a bit of binary[] is set */
	/* the DataRow being streamed */
	enum pg_row_phase phase;
	bool row_export;
	bool col_keep;
	uint16_t ncols, col;
	uint32_t vleft;
	size_t row_len;
	size_t keep_left;
	struct strbuf field;
};

struct pg_conn {
	const struct pgsql_config *pc;
	size_t max_rows, max_row_length, max_query_length, max_statements;
	uint64_t max_message_length;
	size_t max_msg;
	uint64_t timeout;
	bool send_request, send_response;
	bool startup;   /* between StartupMessage and the first ReadyForQuery */
	bool ssl_asked; /* SSLRequest/GSSENCRequest awaiting its one-byte answer */
	struct pg_dir dir[2];
	struct txn_fifo fifo;
	struct pg_batch batches[PG_MAX_BATCHES];
	size_t bhead, blen;
	/* extended protocol: bytes and time of the messages leading to an Execute */
	uint64_t ext_bytes, ext_ts;
	bool ext_ts_set;
	struct pg_text *unnamed_stmt, *unnamed_portal;
	struct pg_stmt *stmts; /* max_statements slots, allocated on first use */
	uint64_t stmt_seq;
	struct pg_resp rs;
	struct metric *m_tls, *m_gss, *m_cancel, *m_resync, *m_malformed, *m_unknown, *m_evicted,
	    *m_startup_err;
};

struct span {
	const uint8_t *p;
	size_t n;
};

static void count(struct metric **m, const char *name, uint64_t n)
{
	if (!*m)
		*m = metrics_counter(name);
	metric_add(*m, n);
}

/* ---- message types ------------------------------------------------------------ */

/* Message types each side may send: "BCdcfDEHFPpQSX" (client), "123AcCdDEGHIKnNRsStTVvWZ"
 * (server). Tables: the header of every message is judged against them. */
static const bool pg_client_types[256] = {
    ['B'] = true, ['C'] = true, ['d'] = true, ['c'] = true, ['f'] = true,
    ['D'] = true, ['E'] = true, ['H'] = true, ['F'] = true, ['P'] = true,
    ['p'] = true, ['Q'] = true, ['S'] = true, ['X'] = true,
};

static const bool pg_server_types[256] = {
    ['1'] = true, ['2'] = true, ['3'] = true, ['A'] = true, ['c'] = true, ['C'] = true,
    ['d'] = true, ['D'] = true, ['E'] = true, ['G'] = true, ['H'] = true, ['I'] = true,
    ['K'] = true, ['n'] = true, ['N'] = true, ['R'] = true, ['s'] = true, ['S'] = true,
    ['t'] = true, ['T'] = true, ['V'] = true, ['v'] = true, ['W'] = true, ['Z'] = true,
};

/* Exact length of fixed-size messages, 0 when variable. Used to judge a header
 * while resyncing. */
static uint32_t fixed_len(enum proto_dir dir, uint8_t t)
{
	if (t == 0)
		return 0;
	if (dir == DIR_TO_SERVER)
		return strchr("cSHX", t) ? 4 : 0;
	if (t == 'Z')
		return 5;
	return strchr("123nIc", t) ? 4 : 0;
}

/* ---- small text helpers ---------------------------------------------------- */

/* ' ', \t \n \v \f \r (9..13) */
static bool is_space(uint8_t ch)
{
	return ch == ' ' || (ch >= '\t' && ch <= '\r');
}

/* [A-Za-z0-9_] */
static bool is_ascii_ident(uint8_t ch)
{
	return (uint8_t)((ch | 0x20) - 'a') < 26 || (uint8_t)(ch - '0') < 10 || ch == '_';
}

static bool is_ident(uint8_t ch)
{
	return ch >= 0x80 || is_ascii_ident(ch);
}

/* Bytes next_statement() has to look at: the separator and what opens a quoted
 * string, a dollar quote or a comment. The rest is passed over in a tight loop. */
static const bool pg_stmt_special[256] = {
    [';'] = true, ['\''] = true, ['"'] = true, ['$'] = true, ['-'] = true, ['/'] = true,
};

static struct span span_trim(struct span s)
{
	while (s.n && is_space(s.p[0])) {
		s.p++;
		s.n--;
	}
	while (s.n && is_space(s.p[s.n - 1]))
		s.n--;
	return s;
}

/* Offset just past a comment starting at i ("--" or "/" "*", nested), or i. */
static size_t skip_comment(const uint8_t *p, size_t n, size_t i)
{
	if (n - i >= 2 && p[i] == '-' && p[i + 1] == '-') {
		while (i < n && p[i] != '\n')
			i++;
		return i;
	}
	if (n - i >= 2 && p[i] == '/' && p[i + 1] == '*') {
		unsigned depth = 0;

		while (i < n) {
			if (n - i >= 2 && p[i] == '/' && p[i + 1] == '*') {
				depth++;
				i += 2;
			} else if (n - i >= 2 && p[i] == '*' && p[i + 1] == '/') {
				i += 2;
				if (--depth == 0)
					break;
			} else {
				i++;
			}
		}
		return i;
	}
	return i;
}

/* Skip whitespace and comments from i. */
static size_t skip_blank(const uint8_t *p, size_t n, size_t i)
{
	for (;;) {
		size_t j;

		while (i < n && is_space(p[i]))
			i++;
		j = skip_comment(p, n, i);
		if (j == i)
			return i;
		i = j;
	}
}

/* Length of a dollar-quote tag "$tag$" at p[i] ('$' there), or 0. */
static size_t dollar_tag(const uint8_t *p, size_t n, size_t i)
{
	size_t j = i + 1;

	if (j < n && p[j] >= '0' && p[j] <= '9')
		return 0; /* $1 is a parameter */
	while (j < n && is_ident(p[j]))
		j++;
	return j < n && p[j] == '$' ? j + 1 - i : 0;
}

/* The next statement of a simple query starting at *pos: split at ';' outside
 * quotes, dollar quotes and comments; whitespace-trimmed; statements holding only
 * whitespace and comments are skipped (the server sends nothing for them). */
static bool next_statement(const uint8_t *p, size_t n, size_t *pos, struct span *out)
{
	while (*pos < n) {
		size_t i = *pos, start = i;

		for (;;) {
			uint8_t ch;
			size_t j;

			while (i < n && !pg_stmt_special[p[i]])
				i++;
			if (i == n || p[i] == ';')
				break;
			ch = p[i];
			j = skip_comment(p, n, i);
			if (j != i) {
				i = j;
			} else if (ch == '\'' || ch == '"') {
				/* E'...' strings take backslash escapes */
				bool esc = ch == '\'' && i > start &&
					   (p[i - 1] == 'E' || p[i - 1] == 'e') &&
					   (i - 1 == start || !is_ident(p[i - 2]));

				i++;
				while (i < n) {
					if (esc && p[i] == '\\' && n - i >= 2) {
						i += 2;
					} else if (p[i] == ch) {
						if (n - i >= 2 && p[i + 1] == ch) {
							i += 2; /* doubled quote */
						} else {
							i++;
							break;
						}
					} else {
						i++;
					}
				}
			} else if (ch == '$' && (i == start || !is_ident(p[i - 1])) &&
				   dollar_tag(p, n, i)) {
				size_t tl = dollar_tag(p, n, i);
				const uint8_t *tag = p + i;

				i += tl;
				while (i < n && !(n - i >= tl && memcmp(p + i, tag, tl) == 0))
					i++;
				i = n - i >= tl ? i + tl : n;
			} else {
				i++;
			}
		}
		*pos = i < n ? i + 1 : n;
		if (skip_blank(p, i, start) == i)
			continue; /* only blanks and comments */
		*out = span_trim((struct span){p + start, i - start});
		return true;
	}
	return false;
}

/* The SQL verb: the first word after blanks and comments, upper-cased, into buf.
 * Returns its length (0 = none). */
static size_t sql_verb(const uint8_t *p, size_t n, char buf[PG_VERB_MAX])
{
	size_t i = n && is_ascii_ident(p[0]) ? 0 : skip_blank(p, n, 0), k = 0;

	for (; i < n && k < PG_VERB_MAX - 1; i++, k++) {
		uint8_t ch = p[i], up = ch & 0xdf;

		if ((uint8_t)(up - 'A') < 26)
			buf[k] = (char)up; /* a letter */
		else if ((uint8_t)(ch - '0') < 10 || ch == '_')
			buf[k] = (char)ch;
		else
			break;
	}
	buf[k] = '\0';
	return k;
}

/* A NUL-terminated string at the cursor; false when no NUL is left. */
static bool cur_cstr(struct cursor *c, struct span *out)
{
	long z = cur_find(c, 0);
	size_t start = c->off;

	if (z < 0)
		return false;
	out->p = cur_bytes(c, (size_t)z - start + 1);
	out->n = (size_t)z - start;
	return out->p != NULL;
}

/* ---- response text: Packetbeat's CSV (Go encoding/csv after "\n" → "\\n") ---- */

static void csv_put(struct pg_conn *c, const void *p, size_t n)
{
	struct pg_resp *rs = &c->rs;

	if (rs->csv_full)
		return;
	if (c->max_msg - rs->csv.len < n) {
		n = c->max_msg - rs->csv.len;
		rs->csv_full = true;
	}
	strbuf_append(&rs->csv, p, n);
}

/* Does the first UTF-8 rune of p count as white space for Go's unicode.IsSpace? */
static bool first_rune_space(const uint8_t *p, size_t n)
{
	uint32_t r;

	if (n == 0)
		return false;
	if (p[0] < 0x80)
		return is_space(p[0]);
	if ((p[0] & 0xe0) == 0xc0 && n >= 2)
		r = (uint32_t)(p[0] & 0x1f) << 6 | (p[1] & 0x3f);
	else if ((p[0] & 0xf0) == 0xe0 && n >= 3)
		r = (uint32_t)(p[0] & 0x0f) << 12 | (uint32_t)(p[1] & 0x3f) << 6 | (p[2] & 0x3f);
	else
		return false;
	return r == 0x85 || r == 0xa0 || r == 0x1680 || (r >= 0x2000 && r <= 0x200a) ||
	       r == 0x2028 || r == 0x2029 || r == 0x202f || r == 0x205f || r == 0x3000;
}

/* One CSV field. Row values get \n and \r written as "\n" / "\r" escapes, header
 * names only \n (as Packetbeat does); the field is quoted when Go's csv.Writer
 * would quote it. */
static void csv_field(struct pg_conn *c, const uint8_t *p, size_t n, bool header, bool first)
{
	bool quote = false;
	size_t i;

	if (!first)
		csv_put(c, ",", 1);
	if (n == 2 && p[0] == '\\' && p[1] == '.')
		quote = true;
	for (i = 0; i < n && !quote; i++)
		quote = p[i] == ',' || p[i] == '"' || (header && p[i] == '\r');
	if (!quote && n && p[0] != '\n' && !(p[0] == '\r' && !header))
		quote = first_rune_space(p, n);
	if (quote)
		csv_put(c, "\"", 1);
	for (i = 0; i < n;) {
		size_t j = i;

		while (j < n && p[j] != '\n' && p[j] != '\r' && !(quote && p[j] == '"'))
			j++;
		csv_put(c, p + i, j - i);
		if (j == n)
			break;
		if (p[j] == '\n')
			csv_put(c, "\\n", 2);
		else if (p[j] == '\r')
			csv_put(c, header ? "\r" : "\\r", header ? 1 : 2);
		else
			csv_put(c, "\"\"", 2);
		i = j + 1;
	}
	if (quote)
		csv_put(c, "\"", 1);
}

/* ---- prepared statements and portals -------------------------------------- */

static struct pg_text *text_new(const uint8_t *p, size_t n)
{
	struct pg_text *t = hb_malloc(sizeof(*t) + n + 1);

	if (!t)
		return NULL;
	t->refs = 1;
	t->len = (uint32_t)n;
	memcpy(t->s, p, n);
	t->s[n] = '\0';
	return t;
}

static struct pg_text *text_ref(struct pg_text *t)
{
	if (t)
		t->refs++;
	return t;
}

static void text_unref(struct pg_text *t)
{
	if (t && --t->refs == 0)
		hb_free(t);
}

static struct pg_stmt *stmt_find(struct pg_conn *c, char kind, struct span name)
{
	if (!c->stmts || name.n >= PG_NAME_MAX)
		return NULL;
	for (size_t i = 0; i < c->max_statements; i++) {
		struct pg_stmt *s = &c->stmts[i];

		if (s->text && s->kind == kind && s->nlen == name.n &&
		    memcmp(s->name, name.p, name.n) == 0)
			return s;
	}
	return NULL;
}

/* The text named `name` of `kind` (the unnamed one for ""), borrowed, or NULL. */
static struct pg_text *stmt_get(struct pg_conn *c, char kind, struct span name)
{
	struct pg_stmt *s;

	if (name.n == 0)
		return kind == 'S' ? c->unnamed_stmt : c->unnamed_portal;
	s = stmt_find(c, kind, name);
	return s ? s->text : NULL;
}

/* Remember `t` (a new reference is taken) under kind/name; replaces an existing
 * entry, else takes a free slot, else evicts the oldest (counted). */
static void stmt_put(struct pg_conn *c, char kind, struct span name, struct pg_text *t)
{
	struct pg_stmt *s, *victim = NULL;

	if (name.n == 0) {
		struct pg_text **slot = kind == 'S' ? &c->unnamed_stmt : &c->unnamed_portal;

		text_unref(*slot);
		*slot = text_ref(t);
		return;
	}
	if (name.n >= PG_NAME_MAX)
		return; /* not a valid name: lookups will miss and be counted */
	if (!c->stmts) {
		c->stmts = hb_calloc(c->max_statements, sizeof(*c->stmts));
		if (!c->stmts)
			return;
	}
	s = stmt_find(c, kind, name);
	for (size_t i = 0; !s && i < c->max_statements; i++) {
		struct pg_stmt *e = &c->stmts[i];

		if (!e->text) {
			s = e;
			break;
		}
		if (!victim || e->seq < victim->seq)
			victim = e;
	}
	if (!s) {
		s = victim;
		count(&c->m_evicted, "pgsql.statements_evicted", 1);
	}
	text_unref(s->text);
	s->text = text_ref(t);
	s->seq = ++c->stmt_seq;
	s->kind = kind;
	s->nlen = (uint8_t)name.n;
	memcpy(s->name, name.p, name.n);
}

static void stmt_del(struct pg_conn *c, char kind, struct span name)
{
	struct pg_stmt *s;

	if (name.n == 0) {
		stmt_put(c, kind, name, NULL);
		return;
	}
	s = stmt_find(c, kind, name);
	if (s) {
		text_unref(s->text);
		s->text = NULL;
	}
}

/* ---- batches --------------------------------------------------------------------- */

static struct pg_batch *batch_oldest(struct pg_conn *c)
{
	return c->blen ? &c->batches[c->bhead] : NULL;
}

static struct pg_batch *batch_newest(struct pg_conn *c)
{
	return c->blen ? &c->batches[(c->bhead + c->blen - 1) % PG_MAX_BATCHES] : NULL;
}

/* A new batch; when the ring is full the newest one absorbs it (it then expects one
 * more ReadyForQuery), which keeps the order of the FIFO intact. */
static struct pg_batch *batch_push(struct pg_conn *c, struct proto_ctx *ctx, bool closed)
{
	struct pg_batch *b;

	if (c->blen == PG_MAX_BATCHES) {
		b = batch_newest(c);
		if (b->closed)
			b->zs++;
		b->closed = closed;
		metric_inc(ctx->stats->limit_exceeded);
		return b;
	}
	b = &c->batches[(c->bhead + c->blen++) % PG_MAX_BATCHES];
	memset(b, 0, sizeof(*b));
	b->closed = closed;
	return b;
}

/* The batch extended-protocol messages belong to: the newest one if still open. */
static struct pg_batch *batch_open(struct pg_conn *c, struct proto_ctx *ctx)
{
	struct pg_batch *b = batch_newest(c);

	return b && !b->closed ? b : batch_push(c, ctx, false);
}

/* A FIFO event left: take it off the oldest batch that has one. */
static void batch_event_gone(struct pg_conn *c)
{
	for (size_t i = 0; i < c->blen; i++) {
		struct pg_batch *b = &c->batches[(c->bhead + i) % PG_MAX_BATCHES];

		if (b->nev) {
			b->nev--;
			return;
		}
	}
}

static void expire_old(struct pg_conn *c, struct proto_ctx *ctx)
{
	struct event *ev;

	while ((ev = c->fifo.head) && ctx->ts > ev->start_ns &&
	       ctx->ts - ev->start_ns > c->timeout) {
		txn_fifo_pop(&c->fifo);
		batch_event_gone(c);
		txn_publish_unmatched(ctx, ev, "Unmatched request", true);
	}
}

/* ---- requests ------------------------------------------------------------------- */

/* "method" is set on pgsql events only here, always with this key: has_method() finds
 * it by pointer instead of comparing every key's text. */
static const char pg_key_method[] = "method";

static bool has_method(const struct event *ev)
{
	for (size_t i = 0; i < ev->nfields; i++)
		if (ev->fields[i].key == pg_key_method)
			return true;
	return false;
}

/* The verb of text[0..n) (a statement or a CommandComplete tag) as method. */
static void set_method(struct event *ev, const uint8_t *text, size_t n)
{
	char verb[PG_VERB_MAX];
	size_t k = sql_verb(text, n, verb);

	if (k)
		ev_set_str(ev, pg_key_method, verb, k);
}

/* A transaction event from the pool, starting at ts (txn_new_event() gave it the
 * connection's tuple and the packet's time). */
static struct event *event_at(struct proto_ctx *ctx, uint64_t ts)
{
	struct event *ev = txn_new_event(ctx, &pgsql_proto);

	if (ev)
		ev->ts = ev->start_ns = ts;
	return ev;
}

/* One pending transaction for `text` (NULL = unknown) in batch b. */
static void request_new(struct pg_conn *c, struct pg_batch *b, const uint8_t *text, size_t n,
			bool have_text, uint64_t ts, uint64_t bytes, struct proto_ctx *ctx)
{
	struct event *ev;

	b->ts = ts;
	b->bytes = bytes;
	if (c->fifo.len >= c->fifo.cap) {
		metric_inc(ctx->stats->limit_exceeded);
		b->more = true;
		return;
	}
	ev = event_at(ctx, ts);
	if (!ev) {
		b->more = true;
		return;
	}
	ev->client_bytes = bytes;
	ev->has_client_bytes = true;
	if (have_text) {
		set_method(ev, text, n);
		ev_set_str(ev, "query", text, n);
		if (c->send_request)
			ev_set_str(ev, "request", text, n < c->max_msg ? n : c->max_msg);
	}
	txn_fifo_push(&c->fifo, ev);
	b->nev++;
}

/* 'Q': body = query\0 (maybe only a prefix of it when truncated). */
static void on_query(struct pg_conn *c, struct span body, bool truncated, uint64_t total,
		     uint64_t ts, struct proto_ctx *ctx)
{
	const uint8_t *z = memchr(body.p, 0, body.n);
	struct span q = {body.p, z ? (size_t)(z - body.p) : body.n}, st;
	struct pg_batch *b;
	size_t pos = 0, nst = 0;

	if (!z && !truncated)
		count(&c->m_malformed, "pgsql.malformed_messages", 1);
	if (truncated && !z)
		metric_inc(ctx->stats->limit_exceeded);
	expire_old(c, ctx);
	metric_inc(ctx->stats->messages);
	c->ext_bytes = 0;
	c->ext_ts_set = false;
	b = batch_push(c, ctx, true);
	while (next_statement(q.p, q.n, &pos, &st)) {
		request_new(c, b, st.p, st.n, true, ts, total, ctx);
		nst++;
	}
	if (nst == 0) /* empty query: the server answers EmptyQueryResponse */
		request_new(c, b, q.p, 0, true, ts, total, ctx);
	if (truncated && !z)
		b->more = true; /* statements past the cut get events without text */
}

/* 'P': name\0 query\0 nparams:16 oids. */
static void on_parse(struct pg_conn *c, struct span body, bool truncated, struct proto_ctx *ctx)
{
	struct cursor cur;
	struct span name, q;
	struct pg_text *t;

	cur_init(&cur, body.p, body.n);
	if (!cur_cstr(&cur, &name)) {
		count(&c->m_malformed, "pgsql.malformed_messages", 1);
		return;
	}
	if (!cur_cstr(&cur, &q)) {
		if (!truncated) {
			count(&c->m_malformed, "pgsql.malformed_messages", 1);
			return;
		}
		metric_inc(ctx->stats->limit_exceeded);
		q = (struct span){body.p + cur.off, cur_left(&cur)};
	}
	q = span_trim(q);
	t = text_new(q.p, q.n);
	if (!t)
		return;
	stmt_put(c, 'S', name, t);
	text_unref(t);
}

/* 'B': portal\0 statement\0 ... */
static void on_bind(struct pg_conn *c, struct span body)
{
	struct cursor cur;
	struct span portal, stmt;
	struct pg_text *t;

	cur_init(&cur, body.p, body.n);
	if (!cur_cstr(&cur, &portal) || !cur_cstr(&cur, &stmt)) {
		count(&c->m_malformed, "pgsql.malformed_messages", 1);
		return;
	}
	t = stmt_get(c, 'S', stmt);
	if (t)
		stmt_put(c, 'P', portal, t);
	else
		stmt_del(c, 'P', portal);
}

/* 'E' (client): portal\0 maxrows:32 — one transaction. */
static void on_execute(struct pg_conn *c, struct span body, uint64_t total, struct proto_ctx *ctx)
{
	struct cursor cur;
	struct span portal;
	struct pg_text *t = NULL;
	struct pg_batch *b;

	cur_init(&cur, body.p, body.n);
	if (cur_cstr(&cur, &portal))
		t = stmt_get(c, 'P', portal);
	else
		count(&c->m_malformed, "pgsql.malformed_messages", 1);
	if (!t)
		count(&c->m_unknown, "pgsql.unknown_statements", 1);
	expire_old(c, ctx);
	metric_inc(ctx->stats->messages);
	b = batch_open(c, ctx);
	request_new(c, b, t ? (const uint8_t *)t->s : NULL, t ? t->len : 0, t != NULL, c->ext_ts,
		    c->ext_bytes + total, ctx);
	c->ext_bytes = 0;
	c->ext_ts_set = false;
}

/* 'C' (client Close): 'S'|'P' name\0 */
static void on_close(struct pg_conn *c, struct span body)
{
	struct cursor cur;
	struct span name;
	uint8_t kind;

	cur_init(&cur, body.p, body.n);
	kind = cur_u8(&cur);
	if (cur.err || (kind != 'S' && kind != 'P') || !cur_cstr(&cur, &name)) {
		count(&c->m_malformed, "pgsql.malformed_messages", 1);
		return;
	}
	stmt_del(c, (char)kind, name);
}

/* ---- responses ------------------------------------------------------------------ */

static void resp_reset(struct pg_resp *rs)
{
	rs->open = rs->gap = rs->have_fields = rs->csv_full = false;
	rs->bytes = rs->rows = rs->rows_kept = 0;
	rs->nfields = 0;
	strbuf_reset(&rs->csv);
	if (rs->any_binary) /* 208 bytes: cleared only when used */
		memset(rs->binary, 0, sizeof(rs->binary));
	rs->any_binary = false;
}

static void resp_open(struct pg_conn *c, uint64_t ts, struct proto_ctx *ctx)
{
	if (c->rs.open)
		return;
	resp_reset(&c->rs);
	c->rs.open = true;
	c->rs.ts = ts;
	expire_old(c, ctx);
}

struct pg_done {
	uint8_t type; /* C, E, I, s, or 0 (lost / incomplete) */
	struct span tag;
	struct span severity, code, message;
	const char *note;
};

/* Does a CommandComplete tag starting with verb p[0..n) end in a row count? */
static bool tag_verb_counts(const uint8_t *p, size_t n)
{
	switch (n) {
	case 4:
		return memcmp(p, "MOVE", 4) == 0 || memcmp(p, "COPY", 4) == 0;
	case 5:
		return memcmp(p, "MERGE", 5) == 0 || memcmp(p, "FETCH", 5) == 0;
	case 6:
		return memcmp(p, "SELECT", 6) == 0 || memcmp(p, "INSERT", 6) == 0 ||
		       memcmp(p, "UPDATE", 6) == 0 || memcmp(p, "DELETE", 6) == 0;
	default:
		return false;
	}
}

/* "SELECT 4" / "INSERT 0 1" / "COPY 3": the trailing row count, when the verb has one. */
static bool tag_rows(struct span tag, uint64_t *rows)
{
	size_t sp = 0, i;
	uint64_t v = 0;

	while (sp < tag.n && tag.p[sp] != ' ')
		sp++;
	if (!tag_verb_counts(tag.p, sp) || sp == tag.n)
		return false;
	i = tag.n;
	while (i > sp && tag.p[i - 1] >= '0' && tag.p[i - 1] <= '9')
		i--;
	if (i == tag.n || tag.p[i - 1] != ' ' || tag.n - i > 19)
		return false;
	for (; i < tag.n; i++)
		v = v * 10 + (uint64_t)(tag.p[i] - '0');
	*rows = v;
	return true;
}

/* The response is complete: pair it with the oldest pending transaction of the
 * oldest batch (or report it unmatched) and publish. */
static void resp_complete(struct pg_conn *c, const struct pg_done *dn, struct proto_ctx *ctx)
{
	struct pg_resp *rs = &c->rs;
	struct pg_batch *b = batch_oldest(c);
	struct event *ev = NULL;
	bool unmatched = false;
	uint64_t rows = rs->rows;

	if (b && b->nev && (ev = txn_fifo_pop(&c->fifo)) != NULL) {
		b->nev--;
	} else if (b && b->more) {
		ev = event_at(ctx, b->ts);
		if (ev) {
			ev->client_bytes = b->bytes;
			ev->has_client_bytes = true;
		}
	} else {
		ev = event_at(ctx, rs->ts);
		unmatched = true;
	}
	metric_inc(ctx->stats->messages);
	if (!ev)
		goto out;
	ev->end_ns = rs->ts;
	ev->server_bytes = rs->bytes;
	ev->has_server_bytes = true;
	if (dn->type == 'C') {
		tag_rows(dn->tag, &rows);
		if (!has_method(ev))
			set_method(ev, dn->tag.p, dn->tag.n);
	}
	ev_set_uint(ev, "pgsql.num_rows", rows);
	ev_set_uint(ev, "pgsql.num_fields", rs->nfields);
	if (dn->type == 'E') {
		ev->status = EV_STATUS_ERROR;
		ev_set_str(ev, "pgsql.error_code", dn->code.p, dn->code.n);
		ev_set_str(ev, "pgsql.error_message", dn->message.p, dn->message.n);
		ev_set_str(ev, "pgsql.error_severity", dn->severity.p, dn->severity.n);
	}
	if (c->send_response)
		ev_set_str(ev, "response", rs->csv.p ? rs->csv.p : "", rs->csv.len);
	if (rs->gap)
		txn_add_note(ev, "Packet loss while capturing the response");
	if (dn->note)
		txn_add_note(ev, dn->note);
	if (unmatched)
		txn_publish_unmatched(ctx, ev, "Unmatched response", false);
	else
		txn_publish(ctx, ev);
out:
	resp_reset(rs);
}

/* ReadyForQuery: the oldest batch is answered; what is still pending in it was not
 * executed. */
static void ready_for_query(struct pg_conn *c, struct proto_ctx *ctx)
{
	struct pg_batch *b = batch_oldest(c);

	resp_reset(&c->rs); /* a Describe's RowDescription without Execute */
	if (c->startup) {
		c->startup = false;
		return;
	}
	if (!b)
		return;
	if (b->zs) {
		b->zs--;
		return;
	}
	while (b->nev) {
		struct event *ev = txn_fifo_pop(&c->fifo);

		b->nev--;
		if (ev)
			txn_publish_unmatched(ctx, ev, "Unmatched request", true);
	}
	c->bhead = (c->bhead + 1) % PG_MAX_BATCHES;
	c->blen--;
}

/* 'T': n:16, n × { name\0, table:32, col:16, type:32, size:16, mod:32, fmt:16 } */
static void on_row_description(struct pg_conn *c, struct span body)
{
	struct pg_resp *rs = &c->rs;
	struct cursor cur;
	uint16_t n, i;

	cur_init(&cur, body.p, body.n);
	n = cur_be16(&cur);
	if (cur.err) {
		count(&c->m_malformed, "pgsql.malformed_messages", 1);
		return;
	}
	if (rs->have_fields)
		return; /* a second description in one response: keep the first */
	rs->have_fields = true;
	rs->nfields = n;
	if (!c->send_response)
		return; /* names and formats only serve the exported rows */
	for (i = 0; i < n; i++) {
		struct span name;
		uint16_t fmt;

		if (!cur_cstr(&cur, &name))
			break; /* truncated (PG_INSPECT_MAX) or malformed */
		cur_skip(&cur, 16);
		fmt = cur_be16(&cur);
		if (cur.err)
			break;
		if (fmt && i < PG_MAX_COLS) {
			rs->binary[i / 8] |= (uint8_t)(1u << (i % 8));
			rs->any_binary = true;
		}
		csv_field(c, name.p, name.n, true, i == 0);
	}
	if (n)
		csv_put(c, "\n", 1);
}

/* 'E'/'N' fields into dn. */
static void parse_error_fields(struct span body, struct pg_done *dn)
{
	struct cursor cur;
	struct span v, sev = {NULL, 0}, vsev = {NULL, 0};

	cur_init(&cur, body.p, body.n);
	for (;;) {
		uint8_t code = cur_u8(&cur);

		if (cur.err || code == 0 || !cur_cstr(&cur, &v))
			break;
		if (code == 'S')
			sev = v;
		else if (code == 'V')
			vsev = v; /* non-localized severity (9.6+) is preferred */
		else if (code == 'C')
			dn->code = v;
		else if (code == 'M')
			dn->message = v;
	}
	dn->severity = vsev.p ? vsev : sev;
}

/* ---- DataRow streaming -------------------------------------------------------- */

static void row_field_done(struct pg_conn *c)
{
	struct pg_resp *rs = &c->rs;

	if (rs->col_keep) {
		csv_field(c, (const uint8_t *)rs->field.p, rs->field.len, false, rs->col == 0);
		rs->row_len += rs->field.len;
	}
	rs->col++;
	rs->phase = rs->col < rs->ncols ? ROW_COLHDR : ROW_END;
}

static void row_end(struct pg_conn *c)
{
	if (c->rs.row_export)
		csv_put(c, "\n", 1);
	c->rs.row_export = false;
	c->rs.phase = ROW_END;
}

/* A DataRow whose body is all in `in` and of which nothing is exported: its framing is
 * checked (and a bad one counted) exactly as the column-by-column path of row_step()
 * would, without its state machine. */
static void row_skim(struct pg_conn *c, struct pg_dir *d, struct cursor *in)
{
	const uint8_t *p = in->p + in->off;
	size_t left = (size_t)d->left, off = 2;
	unsigned ncols;
	bool bad = false;

	if (left < 2) {
		off = 0;
		bad = true;
		goto out;
	}
	ncols = (unsigned)p[0] << 8 | p[1];
	for (unsigned col = 0; col < ncols; col++) {
		int32_t vlen;

		if (left - off < 4) {
			bad = true; /* the body ends inside the row */
			break;
		}
		vlen = (int32_t)((uint32_t)p[off] << 24 | (uint32_t)p[off + 1] << 16 |
				 (uint32_t)p[off + 2] << 8 | p[off + 3]);
		off += 4;
		if (vlen < -1 || (vlen > 0 && (size_t)vlen > left - off)) {
			bad = true;
			break;
		}
		if (vlen > 0)
			off += (size_t)vlen;
	}
	if (!bad && left > off) /* bytes after the last column */
		bad = true;
out:
	if (bad)
		count(&c->m_malformed, "pgsql.malformed_messages", 1);
	row_end(c);
	cur_skip(in, off);
	d->left = left - off;
	d->state = d->left ? PS_SKIP : PS_HDR;
}

/* Stream the DataRow body. Returns false with *needed set when a column header
 * is incomplete. */
static bool row_step(struct pg_conn *c, struct pg_dir *d, struct cursor *in, size_t *needed)
{
	struct pg_resp *rs = &c->rs;

	if (rs->phase == ROW_NCOLS && !rs->row_export && cur_left(in) >= d->left) {
		row_skim(c, d, in);
		return true;
	}
	while (d->left && rs->phase != ROW_END) {
		size_t avail = cur_left(in);
		int32_t vlen;
		size_t n;
		const uint8_t *p;

		switch (rs->phase) {
		case ROW_NCOLS:
		case ROW_COLHDR: {
			size_t want = rs->phase == ROW_NCOLS ? 2 : 4;

			if (d->left < want)
				goto malformed;
			if (avail < want) {
				*needed = want - avail;
				return false;
			}
			d->left -= want;
			if (rs->phase == ROW_NCOLS) {
				rs->ncols = cur_be16(in);
				rs->col = 0;
				rs->phase = rs->ncols ? ROW_COLHDR : ROW_END;
				break;
			}
			vlen = (int32_t)cur_be32(in);
			if (vlen < -1 || (vlen > 0 && (uint64_t)vlen > d->left))
				goto malformed;
			rs->col_keep = rs->row_export && rs->row_len < c->max_row_length;
			rs->keep_left = 0;
			strbuf_reset(&rs->field);
			if (rs->col_keep && vlen > 0 &&
			    !(rs->col < PG_MAX_COLS &&
			      (rs->binary[rs->col / 8] >> (rs->col % 8)) & 1))
				rs->keep_left = c->max_row_length - rs->row_len < (size_t)vlen
						    ? c->max_row_length - rs->row_len
						    : (size_t)vlen;
			if (vlen <= 0) {
				row_field_done(c);
			} else {
				rs->vleft = (uint32_t)vlen;
				rs->phase = ROW_VALUE;
			}
			break;
		}
		case ROW_VALUE:
			n = avail < rs->vleft ? avail : rs->vleft;
			if (n == 0)
				return true;
			p = cur_bytes(in, n);
			if (rs->keep_left) {
				size_t k = n < rs->keep_left ? n : rs->keep_left;

				strbuf_append(&rs->field, p, k);
				rs->keep_left -= k;
			}
			rs->vleft -= (uint32_t)n;
			d->left -= n;
			if (rs->vleft == 0)
				row_field_done(c);
			break;
		case ROW_END:
			break;
		}
	}
	if (rs->phase != ROW_END)
		goto malformed; /* body ended inside the row */
	row_end(c);
	if (d->left) { /* bytes after the last column */
		count(&c->m_malformed, "pgsql.malformed_messages", 1);
		d->state = PS_SKIP;
	} else {
		d->state = PS_HDR;
	}
	return true;
malformed:
	count(&c->m_malformed, "pgsql.malformed_messages", 1);
	row_end(c);
	d->state = d->left ? PS_SKIP : PS_HDR;
	return true;
}

/* ---- message dispatch -------------------------------------------------------------- */

/* How much of a body must be present before the message is handled. */
static size_t inspect_len(const struct pg_conn *c, enum proto_dir dir, uint8_t t, uint64_t body)
{
	uint64_t want = 0;

	if (dir == DIR_TO_SERVER) {
		switch (t) {
		case 'Q':
			want = c->max_query_length;
			break;
		case 'P':
			want = PG_NAME_MAX + c->max_query_length;
			break;
		case 'B':
			want = 2 * PG_NAME_MAX;
			break;
		case 'E':
		case 'C':
			want = PG_NAME_MAX + 1;
			break;
		default:
			break;
		}
	} else if (!c->startup) {
		switch (t) {
		case 'T':
		case 'E':
			want = PG_INSPECT_MAX;
			break;
		case 'C':
			want = PG_TAG_MAX;
			break;
		default:
			break;
		}
	}
	return (size_t)(body < want ? body : want);
}

/* A client message, header read, its inspected body prefix in `body`. */
static void client_message(struct pg_conn *c, uint8_t t, struct span body, uint64_t blen,
			   uint64_t total, uint64_t ts, struct proto_ctx *ctx)
{
	struct pg_batch *b;

	switch (t) {
	case 'Q':
		on_query(c, body, blen > body.n, total, ts, ctx);
		return;
	case 'E':
		if (!c->ext_ts_set)
			c->ext_ts = ts;
		on_execute(c, body, total, ctx);
		return;
	case 'P':
	case 'B':
	case 'D':
	case 'C':
	case 'H':
		if (!c->ext_ts_set) {
			c->ext_ts = ts;
			c->ext_ts_set = true;
		}
		c->ext_bytes += total;
		if (t == 'P')
			on_parse(c, body, blen > body.n, ctx);
		else if (t == 'B')
			on_bind(c, body);
		else if (t == 'C')
			on_close(c, body);
		return;
	case 'S': /* Sync: its bytes go to the batch's last Execute */
		b = batch_newest(c);
		if (b && !b->closed) {
			if (b->nev && c->fifo.tail)
				c->fifo.tail->client_bytes += total;
			b->bytes += total;
			b->closed = true;
		} else {
			batch_push(c, ctx, true);
		}
		c->ext_bytes = 0;
		c->ext_ts_set = false;
		return;
	case 'F': /* FunctionCall: answered by V and Z, no transaction */
		batch_push(c, ctx, true);
		return;
	case 'd':
	case 'c':
	case 'f': /* COPY FROM STDIN data: counted into the COPY statement */
		b = batch_oldest(c);
		if (b && b->nev && c->fifo.head)
			c->fifo.head->client_bytes += total;
		return;
	default: /* p (auth), X (terminate) */
		return;
	}
}

static void server_message(struct pg_conn *c, struct pg_dir *d, uint8_t t, struct span body,
			   uint64_t total, uint64_t ts, struct proto_ctx *ctx)
{
	struct pg_done dn;

	if (c->startup) {
		/* R, S, K, N, v, E (a failed login is not a transaction), Z */
		if (t == 'E')
			count(&c->m_startup_err, "pgsql.startup_errors", 1);
		if (t == 'Z')
			ready_for_query(c, ctx);
		return;
	}
	switch (t) {
	case 'T':
	case 'D':
	case 'G':
	case 'H':
	case 'W':
	case 'd':
	case 'c':
	case 'C':
	case 'E':
	case 'I':
	case 's':
		resp_open(c, ts, ctx);
		break;
	case 'Z':
		ready_for_query(c, ctx);
		return;
	default:
		/* N, S, A, K, 1, 2, 3, t, n, V, v, R: inside a response they count
		 * toward its bytes (Packetbeat measures first..last message). */
		if (c->rs.open)
			c->rs.bytes += total;
		return;
	}
	c->rs.bytes += total;
	switch (t) {
	case 'T':
		on_row_description(c, body);
		return;
	case 'D':
		c->rs.rows++;
		if (d->left == 0)
			return;
		c->rs.row_export =
		    c->send_response && c->rs.rows_kept < c->max_rows && !c->rs.csv_full;
		if (c->rs.row_export)
			c->rs.rows_kept++;
		c->rs.phase = ROW_NCOLS;
		c->rs.row_len = 0;
		d->state = PS_ROW;
		return;
	case 'C': {
		const uint8_t *z = memchr(body.p, 0, body.n);

		memset(&dn, 0, sizeof(dn));
		dn.type = 'C';
		dn.tag = body;
		if (z)
			dn.tag.n = (size_t)(z - body.p);
		resp_complete(c, &dn, ctx);
		return;
	}
	case 'E':
		memset(&dn, 0, sizeof(dn));
		dn.type = 'E';
		parse_error_fields(body, &dn);
		resp_complete(c, &dn, ctx);
		return;
	case 'I':
	case 's':
		memset(&dn, 0, sizeof(dn));
		dn.type = t;
		resp_complete(c, &dn, ctx);
		return;
	default: /* COPY messages: counted, skipped */
		return;
	}
}

/* The startup-phase messages of the client (no type byte). */
static enum parse_status startup_message(struct pg_conn *c, struct pg_dir *d, struct cursor *in,
					 size_t *needed)
{
	const uint8_t *p = in->p + in->off;
	size_t avail = cur_left(in);
	uint32_t len, code;

	if (avail >= 2 && p[0] == 0x16 && p[1] == 0x03) {
		/* a TLS handshake straight away (PostgreSQL 17 sslnegotiation=direct) */
		count(&c->m_tls, "pgsql.tls_sessions", 1);
		c->dir[0].state = c->dir[1].state = PS_IGNORE;
		return PARSE_OK;
	}
	if (avail < 8) {
		*needed = 8 - avail;
		return PARSE_NEED_MORE;
	}
	len = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
	code = (uint32_t)p[4] << 24 | (uint32_t)p[5] << 16 | (uint32_t)p[6] << 8 | p[7];
	if ((code == PG_CODE_SSL || code == PG_CODE_GSSENC) && len == 8) {
		c->ssl_asked = true;
	} else if (code == PG_CODE_CANCEL && len == 16) {
		count(&c->m_cancel, "pgsql.cancel_requests", 1);
	} else if ((code >> 16) == 3 && len >= 8 && len <= PG_STARTUP_MAX) {
		c->startup = true;
	} else if ((code >> 16) == 2 && len >= 8 && len <= PG_STARTUP_MAX) {
		c->dir[0].state = c->dir[1].state = PS_IGNORE; /* protocol 2: unsupported */
		return PARSE_OK;
	} else {
		d->expect_startup = false; /* a typed message: joined mid-stream */
		return PARSE_OK;
	}
	d->expect_startup = false;
	d->synced = true;
	d->ts_set = false;
	cur_skip(in, 8);
	d->left = len - 8;
	d->state = d->left ? PS_SKIP : PS_HDR;
	return PARSE_OK;
}

/* At a message boundary. */
static enum parse_status parse_header(struct pg_conn *c, enum proto_dir dir, struct cursor *in,
				      size_t *needed, struct proto_ctx *ctx)
{
	struct pg_dir *d = &c->dir[dir];
	const uint8_t *p;
	size_t avail = cur_left(in), want;
	uint8_t t;
	uint64_t len, body, ts;

	if (!d->ts_set) {
		d->msg_ts = ctx->ts;
		d->ts_set = true;
	}
	if (dir == DIR_TO_SERVER && d->expect_startup)
		return startup_message(c, d, in, needed); /* the caller loops */
	p = in->p + in->off;
	if (dir == DIR_TO_CLIENT && c->ssl_asked) {
		/* the one-byte answer to SSLRequest / GSSENCRequest */
		if (p[0] == 'S' || p[0] == 'G') {
			count(p[0] == 'S' ? &c->m_tls : &c->m_gss,
			      p[0] == 'S' ? "pgsql.tls_sessions" : "pgsql.gssenc_sessions", 1);
			c->dir[0].state = c->dir[1].state = PS_IGNORE;
			return PARSE_OK;
		}
		c->ssl_asked = false;
		if (p[0] == 'N') {
			cur_skip(in, 1);
			d->synced = true;
			d->ts_set = false;
			c->dir[DIR_TO_SERVER].expect_startup = true;
			return PARSE_OK;
		}
		/* an old server answers with ErrorResponse: parse it as usual */
	}
	if (avail < 5) {
		*needed = 5 - avail;
		return PARSE_NEED_MORE;
	}
	t = p[0];
	len = (uint64_t)p[1] << 24 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 8 | p[4];
	if (!(dir == DIR_TO_SERVER ? pg_client_types[t] : pg_server_types[t]) || len < 4 ||
	    len > c->max_message_length ||
	    (!d->synced && fixed_len(dir, t) && len != fixed_len(dir, t))) {
		if (d->synced) {
			if (len > c->max_message_length)
				metric_inc(ctx->stats->limit_exceeded);
			return PARSE_ERROR;
		}
		/* unsynced: look for a message boundary one byte further */
		if (++d->skipped > PG_RESYNC_MAX)
			return PARSE_ERROR;
		count(&c->m_resync, "pgsql.resync_skipped_bytes", 1);
		cur_skip(in, 1);
		d->ts_set = false;
		return PARSE_OK;
	}
	body = len - 4;
	want = inspect_len(c, dir, t, body);
	if (avail - 5 < want) {
		d->hdr_known = true;
		d->type = t;
		d->total = len + 1;
		*needed = want - (avail - 5);
		return PARSE_NEED_MORE;
	}
	d->hdr_known = false;
	d->synced = true;
	ts = d->msg_ts;
	d->ts_set = false;
	cur_skip(in, 5);
	p = cur_bytes(in, want);
	d->left = body - want;
	d->state = d->left ? PS_SKIP : PS_HDR;
	if (dir == DIR_TO_SERVER)
		client_message(c, t, (struct span){p, want}, body, len + 1, ts, ctx);
	else
		server_message(c, d, t, (struct span){p, want}, len + 1, ts, ctx);
	return PARSE_OK;
}

/* ---- proto_ops ------------------------------------------------------------------ */

static void *pgsql_conn_new(const struct conn_info *info)
{
	const struct cfg_proto *cfg = info ? info->cfg : NULL;
	struct pg_conn *c = hb_calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->pc = cfg && cfg->priv ? cfg->priv : &pgsql_defaults;
	c->max_rows = (size_t)c->pc->max_rows;
	c->max_row_length =
	    c->pc->max_row_length ? (size_t)c->pc->max_row_length : PG_DEF_MAX_ROW_LENGTH;
	c->max_message_length =
	    c->pc->max_message_length ? c->pc->max_message_length : PG_DEF_MAX_MESSAGE_LENGTH;
	c->max_query_length =
	    c->pc->max_query_length ? (size_t)c->pc->max_query_length : PG_DEF_MAX_QUERY_LENGTH;
	c->max_statements =
	    c->pc->max_statements ? (size_t)c->pc->max_statements : PG_DEF_MAX_STATEMENTS;
	c->max_msg =
	    cfg && cfg->max_message_size ? (size_t)cfg->max_message_size : PG_DEF_MAX_MESSAGE;
	c->timeout = cfg && cfg->transaction_timeout ? cfg->transaction_timeout : PG_DEF_TIMEOUT;
	c->send_request = cfg && cfg->send_request;
	c->send_response = cfg && cfg->send_response;
	txn_fifo_init(&c->fifo, cfg && cfg->max_pending ? cfg->max_pending : PG_DEF_MAX_PENDING);
	strbuf_init(&c->rs.csv);
	strbuf_init(&c->rs.field);
	c->dir[DIR_TO_SERVER].expect_startup = true;
	return c;
}

static struct parse_result pgsql_parse(void *conn, enum proto_dir dir, const uint8_t *data,
				       size_t len, struct proto_ctx *ctx)
{
	struct pg_conn *c = conn;
	struct pg_dir *d = &c->dir[dir];
	struct parse_result r = {PARSE_OK, 0, 0};
	struct cursor in;
	size_t n;

	cur_init(&in, data, len);
	while (cur_left(&in)) {
		switch (d->state) {
		case PS_IGNORE:
			cur_skip(&in, cur_left(&in));
			break;
		case PS_SKIP:
			n = cur_left(&in) < d->left ? cur_left(&in) : (size_t)d->left;
			cur_skip(&in, n);
			d->left -= n;
			if (d->left == 0)
				d->state = PS_HDR;
			break;
		case PS_ROW:
			if (!row_step(c, d, &in, &r.needed)) {
				r.status = PARSE_NEED_MORE;
				goto out;
			}
			break;
		case PS_HDR: {
			enum parse_status st = parse_header(c, dir, &in, &r.needed, ctx);

			if (st == PARSE_ERROR) {
				r.status = PARSE_ERROR;
				goto out;
			}
			if (st == PARSE_NEED_MORE) {
				r.status = PARSE_NEED_MORE;
				goto out;
			}
			break;
		}
		}
	}
out:
	r.consumed = in.off;
	return r;
}

/* A message lost whole or in part to a gap: what it meant, as far as it matters. */
static int lost_message(struct pg_conn *c, enum proto_dir dir, uint8_t t, struct proto_ctx *ctx)
{
	struct pg_done dn;

	if (t == 0)
		return -1;
	if (dir == DIR_TO_SERVER)
		return strchr("QEPBSF", t) ? -1 : 0; /* requests cannot be reconstructed */
	if (t == 'Z')
		return -1; /* the batches would drift */
	if (c->startup)
		return 0;
	if (strchr("TDGHWdc", t)) {
		resp_open(c, c->dir[dir].msg_ts, ctx);
		c->rs.gap = true;
	} else if (strchr("CEIs", t)) {
		memset(&dn, 0, sizeof(dn));
		resp_open(c, c->dir[dir].msg_ts, ctx);
		c->rs.gap = true;
		resp_complete(c, &dn, ctx);
	}
	return 0;
}

static int pgsql_gap(void *conn, enum proto_dir dir, size_t n, struct proto_ctx *ctx)
{
	struct pg_conn *c = conn;
	struct pg_dir *d = &c->dir[dir];

	/* gaps and gap_drops are counted by the stream layer, which calls us. */
	switch (d->state) {
	case PS_IGNORE:
		return 0;
	case PS_SKIP:
	case PS_ROW:
		if (n > d->left)
			return -1;
		d->left -= n;
		if (dir == DIR_TO_CLIENT && c->rs.open)
			c->rs.gap = true;
		if (d->state == PS_ROW) {
			row_end(c);
			d->state = PS_SKIP;
		}
		if (d->left == 0)
			d->state = PS_HDR;
		return 0;
	case PS_HDR:
		if (!d->hdr_known || n > d->total)
			return -1;
		/* the message whose prefix we were waiting for is (partly) lost */
		d->hdr_known = false;
		d->ts_set = false;
		d->left = d->total - n;
		d->state = d->left ? PS_SKIP : PS_HDR;
		return lost_message(c, dir, d->type, ctx);
	}
	return -1;
}

static void flush_all(struct pg_conn *c, struct proto_ctx *ctx)
{
	txn_fifo_flush(&c->fifo, ctx, "Unmatched request");
	c->bhead = c->blen = 0;
	resp_reset(&c->rs);
}

/* A result that never completed is published with what arrived (paired, or as an
 * unmatched response); then everything pending is unmatched. */
static void end_all(struct pg_conn *c, struct proto_ctx *ctx)
{
	if (c->rs.open) {
		struct pg_done dn;

		memset(&dn, 0, sizeof(dn));
		dn.note = "Incomplete response";
		resp_complete(c, &dn, ctx);
	}
	flush_all(c, ctx);
}

static void pgsql_fin(void *conn, enum proto_dir dir, struct proto_ctx *ctx)
{
	/* The server closed: nothing pending will be answered. A client FIN may be a
	 * half-close with answers still to come. */
	if (dir == DIR_TO_CLIENT)
		end_all(conn, ctx);
}

static void pgsql_expire(void *conn, struct proto_ctx *ctx)
{
	end_all(conn, ctx);
}

static void pgsql_conn_free(void *conn)
{
	struct pg_conn *c = conn;

	if (!c)
		return;
	txn_fifo_release(&c->fifo);
	if (c->stmts)
		for (size_t i = 0; i < c->max_statements; i++)
			text_unref(c->stmts[i].text);
	hb_free(c->stmts);
	text_unref(c->unnamed_stmt);
	text_unref(c->unnamed_portal);
	strbuf_free(&c->rs.csv);
	strbuf_free(&c->rs.field);
	hb_free(c);
}

const struct proto_ops pgsql_proto = {
    .name = "pgsql",
    .transports = PROTO_TCP,
    .default_ports = pgsql_ports,
    .ndefault_ports = sizeof(pgsql_ports) / sizeof(pgsql_ports[0]),
    .config = pgsql_config_fields,
    .nconfig = sizeof(pgsql_config_fields) / sizeof(pgsql_config_fields[0]),
    .config_size = sizeof(struct pgsql_config),
    .conn_new = pgsql_conn_new,
    .parse = pgsql_parse,
    .gap = pgsql_gap,
    .fin = pgsql_fin,
    .expire = pgsql_expire,
    .conn_free = pgsql_conn_free,
};
