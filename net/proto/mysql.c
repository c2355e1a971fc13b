/* mysql.c — MySQL / MariaDB client/server protocol transactions over TCP (Packetbeat's "mysql").
 *
 * Spec: MySQL Client/Server Protocol, https://dev.mysql.com/doc/dev/mysql-server/latest/
 * PAGE_PROTOCOL.html (packets, connection phase, COM_QUERY, COM_STMT_*, OK/ERR/EOF,
 * text and binary result sets, CLIENT_DEPRECATE_EOF, CLIENT_QUERY_ATTRIBUTES) and the
 * MariaDB protocol notes (https://mariadb.com/kb/en/clientserver-protocol/: progress
 * reports, metadata caching, COM_STMT_BULK_EXECUTE). Event fields follow Packetbeat 8
 * (docs/reference/packetbeat.md §1.4, §2.3, §2.4).
 *
 *   packet   = payload_length:le24  sequence_id:u8  payload[payload_length]
 *              (payload_length 0xffffff: the payload continues in the next packet)
 *   command  = seq 0 from the client: cmd:u8 arguments...
 *   OK       = 0x00|0xfe affected_rows:lenenc last_insert_id:lenenc status:le16 warnings:le16 info
 *   ERR      = 0xff code:le16 ['#' sqlstate:5] message
 *   EOF      = 0xfe warnings:le16 status:le16                      (payload length 5)
 *   resultset= column_count:lenenc [metadata_follows:u8 (MariaDB)]
 *              column_definition{column_count} [EOF]             (EOF unless DEPRECATE_EOF)
 *              row* (EOF | OK-with-0xfe-header | ERR)
 *   coldef41 = catalog schema table org_table name org_name :lenenc-str 0x0c
 *              charset:le16 length:le32 type:u8 flags:le16 decimals:u8 filler:le16
 *   prepare  = 0x00 stmt_id:le32 num_columns:le16 num_params:le16 0x00 warnings:le16
 *              [param defs EOF] [column defs EOF]
 *
 * Streaming: the packet layer reads the 4-byte header, then waits (PARSE_NEED_MORE with
 * consumed = 0) only for the *head* of a packet — min(payload, max_packet_head) bytes —
 * which holds everything exported from it (OK/ERR fields, column definitions, the row
 * text up to max_row_length, statement parameters); the rest of the packet is consumed
 * as it arrives and never kept. Query text is copied into a per-connection buffer capped
 * at max_query_bytes. Rows past max_rows are counted from their first byte only.
 *
 * Transactions: the protocol is strictly request/response, but some connectors pipeline
 * (MariaDB sends PREPARE + EXECUTE back to back), so requests wait in a FIFO (cap
 * max_pending) and a response completes the oldest. The response is parsed according to
 * the command it answers. A response's first sequence id must be the request's last + 1,
 * each further packet's the previous + 1; mismatches are counted (mysql.seq_mismatches).
 *
 * Prepared statements (per connection, max_statements, LRU, statement_timeout) keep
 * the SQL text, parameter types and the result metadata of the PREPARE response (path,
 * column names, column types), refreshed by every EXECUTE result that carries column
 * definitions; MariaDB's metadata cache (MARIADB_CLIENT_CACHE_METADATA) sends EXECUTE
 * results without them, which then get path, names and binary-row types from there.
 *
 * Connection phase: the greeting and handshake response record the capability flags
 * (CLIENT_DEPRECATE_EOF, CLIENT_QUERY_ATTRIBUTES, CLIENT_COMPRESS/ZSTD, CLIENT_SSL) and the
 * initial database; authentication (auth switch, more data) is skipped until the
 * server's OK or ERR. An SSL request (TLS upgrade) or negotiated compression makes the
 * connection opaque: counted (mysql.tls_sessions, mysql.compressed_sessions) and ignored.
 * Without a handshake (capture started mid-connection) the EOF form is detected from the
 * packets: a 0xfe packet of 5 bytes is an EOF, a longer one an OK terminator.
 *
 * Resync: until the first command (or the greeting) a direction skips whole segments
 * that do not start with a plausible packet (mysql.resync_skipped_bytes).
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hostbeat/cursor.h"
#include "hostbeat/event.h"
#include "hostbeat/mem.h"
#include "hostbeat/metrics.h"
#include "hostbeat/proto.h"
#include "hostbeat/strbuf.h"

/* The one exported symbol (listed in net/proto/registry.c). */
extern const struct proto_ops mysql_proto;

#define MY_HDR 4
#define MY_MAX_PAYLOAD 0xffffffu
#define MY_DEF_MAX_ROWS 10
#define MY_DEF_MAX_ROW_LENGTH 1024
#define MY_DEF_STMT_TIMEOUT (3600ull * 1000000000ull)
#define MY_DEF_MAX_STATEMENTS 256
#define MY_DEF_MAX_QUERY (64u << 10)
#define MY_DEF_MAX_HEAD (16u << 10)
#define MY_DEF_MAX_MESSAGE (10u << 20)
#define MY_DEF_MAX_PENDING 64
#define MY_MAX_RING 1024 /* pending requests tracked per connection, whatever the config */
#define MY_DEF_TIMEOUT (10ull * 1000000000ull)
#define MY_MAX_TYPED 256   /* columns whose binary type is remembered (binary rows) */
#define MY_MAX_PARAMS 1024 /* statement parameters whose types are remembered */
#define MY_MAX_PATH 1024   /* bytes of "db.table, db.table" kept */
#define MY_MAX_HEADER 4096 /* bytes of a statement's column-name line remembered */
#define MY_MAX_DB 64       /* MySQL identifiers are at most 64 characters */
#define MY_MAX_STMT_TEXT (64u << 10)
#define MY_KEEP_BUF (64u << 10) /* buffers above this are freed after use */

/* capability flags */
#define CAP_CONNECT_WITH_DB 0x00000008u
#define CAP_COMPRESS 0x00000020u
#define CAP_PROTOCOL_41 0x00000200u
#define CAP_SSL 0x00000800u
#define CAP_SECURE_CONNECTION 0x00008000u
#define CAP_PLUGIN_AUTH_LENENC 0x00200000u
#define CAP_DEPRECATE_EOF 0x01000000u
#define CAP_ZSTD 0x04000000u
#define CAP_QUERY_ATTRIBUTES 0x08000000u

#define SERVER_MORE_RESULTS 0x0008u
#define FLAG_UNSIGNED 0x0020u

/* commands */
enum {
	COM_SLEEP = 0x00,
	COM_QUIT = 0x01,
	COM_INIT_DB = 0x02,
	COM_QUERY = 0x03,
	COM_FIELD_LIST = 0x04,
	COM_STATISTICS = 0x09,
	COM_CHANGE_USER = 0x11,
	COM_BINLOG_DUMP = 0x12,
	COM_STMT_PREPARE = 0x16,
	COM_STMT_EXECUTE = 0x17,
	COM_STMT_SEND_LONG_DATA = 0x18,
	COM_STMT_CLOSE = 0x19,
	COM_STMT_FETCH = 0x1c,
	COM_BINLOG_DUMP_GTID = 0x1e,
	COM_RESET_CONNECTION = 0x1f,
	COM_STMT_BULK_EXECUTE = 0xfa, /* MariaDB */
};

static const char *const cmd_names[] = {
    "SLEEP",
    "QUIT",
    "INIT_DB",
    "QUERY",
    "FIELD_LIST",
    "CREATE_DB",
    "DROP_DB",
    "REFRESH",
    "SHUTDOWN",
    "STATISTICS",
    "PROCESS_INFO",
    "CONNECT",
    "PROCESS_KILL",
    "DEBUG",
    "PING",
    "TIME",
    "DELAYED_INSERT",
    "CHANGE_USER",
    "BINLOG_DUMP",
    "TABLE_DUMP",
    "CONNECT_OUT",
    "REGISTER_SLAVE",
    "STMT_PREPARE",
    "STMT_EXECUTE",
    "STMT_SEND_LONG_DATA",
    "STMT_CLOSE",
    "STMT_RESET",
    "SET_OPTION",
    "STMT_FETCH",
    "DAEMON",
    "BINLOG_DUMP_GTID",
    "RESET_CONNECTION",
};

static const char *cmd_name(uint8_t cmd)
{
	if (cmd < sizeof(cmd_names) / sizeof(cmd_names[0]))
		return cmd_names[cmd];
	return cmd == COM_STMT_BULK_EXECUTE ? "STMT_BULK_EXECUTE" : NULL;
}

/* Commands the server does not answer. */
static bool cmd_no_response(uint8_t cmd)
{
	return cmd == COM_QUIT || cmd == COM_STMT_CLOSE || cmd == COM_STMT_SEND_LONG_DATA;
}

/* ---- configuration ------------------------------------------------------------- */

/* Private configuration (cfg_proto.priv), filled from mysql_config_fields. */
struct mysql_config {
	uint64_t max_rows;
	uint64_t max_row_length;
	uint64_t statement_timeout;
	uint64_t max_statements;
	uint64_t max_query_bytes;
	uint64_t max_packet_head;
	bool all_commands;
};

static const struct cfg_field mysql_config_fields[] = {
    {"max_rows", CFG_UINT, offsetof(struct mysql_config, max_rows), "10",
     "result rows rendered into `response`", 0, 1 << 20},
    {"max_row_length", CFG_SIZE, offsetof(struct mysql_config, max_row_length), "1024",
     "bytes of column values rendered per row", 1, 1 << 20},
    {"statement_timeout", CFG_DURATION, offsetof(struct mysql_config, statement_timeout), "1h",
     "prepared statements unused for this long are forgotten", 0, 0},
    {"max_statements", CFG_UINT, offsetof(struct mysql_config, max_statements), "256",
     "prepared statements remembered per connection", 1, 65536},
    {"max_query_bytes", CFG_SIZE, offsetof(struct mysql_config, max_query_bytes), "64KiB",
     "bytes of SQL text kept for query/request", 64, 16 << 20},
    {"max_packet_head", CFG_SIZE, offsetof(struct mysql_config, max_packet_head), "16KiB",
     "bytes of a packet's start parsed (column definitions, OK/ERR, rendered rows)", 1024, 1 << 20},
    {"all_commands", CFG_BOOL, offsetof(struct mysql_config, all_commands), "false",
     "also publish PING, QUIT, STMT_CLOSE and the other non-query commands", 0, 0},
};

static const struct mysql_config mysql_defaults = {
    .max_rows = MY_DEF_MAX_ROWS,
    .max_row_length = MY_DEF_MAX_ROW_LENGTH,
    .statement_timeout = MY_DEF_STMT_TIMEOUT,
    .max_statements = MY_DEF_MAX_STATEMENTS,
    .max_query_bytes = MY_DEF_MAX_QUERY,
    .max_packet_head = MY_DEF_MAX_HEAD,
};

static const uint16_t mysql_ports[] = {3306, 3307};

/* ---- state ------------------------------------------------------------------------ */

enum my_phase {
	PH_UNKNOWN, /* nothing recognised yet (capture started mid-connection) */
	PH_GREETED, /* server greeting seen, handshake response expected */
	PH_AUTH,    /* authentication exchange until the server's OK / ERR */
	PH_CMD,     /* command phase */
	PH_IGNORED, /* TLS, compression, replication stream: bytes are consumed unparsed */
};

enum my_eof_mode { EOFM_UNKNOWN, EOFM_CLASSIC, EOFM_DEPRECATED };

/* A request waiting for (or being matched with) its response. */
struct my_req {
	struct event *ev; /* NULL when not published (or the pool was empty) */
	uint64_t start_ns;
	uint32_t stmt_id;
	uint8_t cmd;
	uint8_t seq;   /* sequence id of the request's last packet */
	bool use_db;   /* success switches the default database to newdb */
	bool has_path; /* ev has a "path" from the SQL text (the result's replaces it) */
	uint8_t newdb_len;
	char newdb[MY_MAX_DB + 1];
};

enum my_rs {
	RS_FIRST,       /* the first packet of a result (OK, ERR, column count, ...) */
	RS_DEFS,        /* ndefs column definitions to come */
	RS_DEFS_EOF,    /* after the definitions: EOF (classic) or the first row */
	RS_ROWS,        /* rows until EOF / OK / ERR */
	RS_PREP_PARAMS, /* PREPARE: parameter definitions */
	RS_PREP_COLS,   /* PREPARE: column definitions */
	RS_PREP_EOF,    /* PREPARE: an EOF may follow a definition block */
	RS_UNTIL_OK,    /* LOCAL INFILE / CHANGE_USER: until the server's OK or ERR */
	RS_FIELD_LIST,  /* COM_FIELD_LIST: definitions until EOF */
};

struct my_resp {
	bool active;
	bool unmatched;
	bool finish; /* the packet being consumed ends the response */
	bool gap_lost;
	bool is_error;
	bool binary; /* binary protocol rows (STMT_EXECUTE) */
	bool first_set_done;
	bool csv_full;
	bool types_ok; /* every column's type is known (binary rows) */
	enum my_rs st;
	struct my_req req; /* the answered request (ev owned here) */
	uint8_t next_seq;
	uint64_t bytes;
	uint64_t ndefs;      /* definitions still to come in this block */
	uint64_t prep_ncols; /* PREPARE: columns after the parameters */
	uint64_t num_fields, num_rows, rendered;
	uint64_t defs_named; /* column definitions of this set whose names parsed (path) */
	uint64_t affected, insert_id;
	uint32_t prep_id;
	uint16_t prep_nparams;
	unsigned ntypes;
	uint8_t types[MY_MAX_TYPED];
	uint8_t uns[MY_MAX_TYPED];
};

/* One direction's packet framing. */
struct my_dir {
	bool in_pkt;    /* pkt_left counts the rest of the current packet's payload */
	bool cont;      /* the current packet is 0xffffff long: the payload continues */
	bool want_cont; /* the next header continues the current logical packet */
	bool ts_set;
	bool synced;
	bool stream_query; /* payload bytes go to the query buffer */
	bool skipped;      /* unsynced junk was skipped at skip_ts */
	uint64_t skip_ts;
	uint8_t seq;
	uint32_t pkt_left;
	uint64_t msg_ts;
};

struct my_stmt {
	uint32_t id;
	bool used;
	bool have_types;
	uint16_t nparams;
	uint64_t last_used;
	char *text; /* owned, may be NULL */
	uint32_t text_len;
	uint8_t *types; /* 2 * min(nparams, MY_MAX_PARAMS) bytes when have_types, owned */
	/* The result metadata of the PREPARE response (refreshed by every EXECUTE result
	 * that carries column definitions), used when MariaDB's metadata cache makes an
	 * EXECUTE result skip its definitions. Valid for results of ncols columns. */
	bool have_cols; /* cols holds every column's type */
	uint16_t ncols; /* columns of the remembered result (0: nothing remembered) */
	uint8_t *cols;  /* cols_len (2 * ncols) bytes: type, unsigned flag; owned */
	uint16_t cols_len;
	char *path; /* "db.table, ..." of those columns, owned, may be NULL */
	uint16_t path_len;
	char *hdr; /* the `response` line of column names (send_response), owned */
	uint16_t hdr_len;
};

struct my_conn {
	const struct mysql_config *mc;
	size_t max_msg, max_query, max_head, max_row_len, max_rows;
	uint64_t timeout;
	bool send_request, send_response;
	enum my_phase phase;
	enum my_eof_mode eofm;
	uint32_t server_caps, client_caps;
	bool server_caps_known, client_caps_known;
	bool server_compress; /* the server offered compression */
	char db[MY_MAX_DB + 1];

	struct my_dir dir[2];

	/* the request being read */
	bool building;
	struct my_req cur;
	uint64_t req_bytes;
	bool q_trunc, q_gap;
	struct strbuf q; /* SQL text (COM_QUERY, COM_STMT_PREPARE) */
	/* or, when the whole command packet is in hand (it completes in the same
	 * parse() call), the text in place: borrowed packet bytes, used and cleared by
	 * request_done() */
	const uint8_t *q_direct;
	size_t q_direct_len;

	/* pending requests: a ring of ring_cap entries */
	struct my_req *ring;
	size_t ring_cap, ring_head, ring_len;

	struct my_resp rs;
	bool opt_eof; /* a trailing EOF of a PREPARE may follow with seq opt_eof_seq */
	uint8_t opt_eof_seq;
	struct strbuf csv;  /* `response` text */
	struct strbuf path; /* tables of the result set */

	struct my_stmt *stmts; /* max_statements entries, allocated on the first PREPARE */
	size_t nstmts_cap;
	uint32_t last_stmt;

	struct metric *m_tls, *m_compressed, *m_seq, *m_resync, *m_evicted, *m_ignored;
};

/* ---- small helpers ------------------------------------------------------------------ */

static uint64_t cur_lenenc(struct cursor *c)
{
	uint8_t b = cur_u8(c);

	switch (b) {
	case 0xfc:
		return cur_le16(c);
	case 0xfd:
		return cur_le24(c);
	case 0xfe:
		return cur_le64(c);
	case 0xfb: /* NULL: only meaningful in rows, handled there */
	case 0xff:
		c->err = true;
		return 0;
	default:
		return b;
	}
}

/* cur_lenstr() past its fast path. */
static bool cur_lenstr_slow(struct cursor *c, const uint8_t **p, size_t *n)
{
	uint64_t l = cur_lenenc(c);

	if (c->err || cur_left(c) < l) {
		c->err = true;
		return false;
	}
	*n = (size_t)l;
	*p = cur_bytes(c, (size_t)l);
	return *p != NULL || l == 0;
}

/* A length-encoded string; false (and c->err) when it does not fit. Column
 * definitions hold six of them: the usual one-byte length (< 0xfb) of a string that
 * is all there is read in place. */
static inline bool cur_lenstr(struct cursor *c, const uint8_t **p, size_t *n)
{
	size_t left = cur_left(c);

	if (left && c->p[c->off] < 0xfb && left - 1 >= c->p[c->off]) {
		*n = c->p[c->off];
		*p = c->p + c->off + 1;
		c->off += 1 + *n;
		return true;
	}
	return cur_lenstr_slow(c, p, n);
}

static uint8_t up(uint8_t ch)
{
	return ch >= 'a' && ch <= 'z' ? (uint8_t)(ch - 32) : ch;
}

/* [A-Za-z0-9_$] and every byte >= 0x80 */
static bool is_word(uint8_t ch)
{
	return (uint8_t)((ch | 0x20) - 'a') < 26 || (uint8_t)(ch - '0') < 10 || ch == '_' ||
	       ch == '$' || ch >= 0x80;
}

/* ' ', \t \n \v \f \r (9..13) */
static bool is_space(uint8_t ch)
{
	return ch == ' ' || (ch >= '\t' && ch <= '\r');
}

/* Skip whitespace and comments (/ * * /, -- , #). Executable comments
 * (/ *! ... * /, / *M! ... * /) are entered: their content is SQL. */
static size_t skip_blank(const uint8_t *s, size_t n, size_t i)
{
	while (i < n) {
		if (is_space(s[i]) || s[i] == '(') {
			i++;
		} else if (s[i] == '/' && n - i >= 2 && s[i + 1] == '*') {
			size_t j = i + 2;

			if (j < n && s[j] == 'M')
				j++;
			if (j < n && s[j] == '!') {
				for (j++; j < n && s[j] >= '0' && s[j] <= '9'; j++)
					;
				i = j;
				continue;
			}
			for (j = i + 2; n - j >= 2 && !(s[j] == '*' && s[j + 1] == '/'); j++)
				;
			i = n - j >= 2 ? j + 2 : n;
		} else if (s[i] == '*' && n - i >= 2 && s[i + 1] == '/') {
			i += 2; /* end of an executable comment */
		} else if (s[i] == '#' ||
			   (s[i] == '-' && n - i >= 3 && s[i + 1] == '-' && is_space(s[i + 2]))) {
			while (i < n && s[i] != '\n')
				i++;
		} else {
			break;
		}
	}
	return i;
}

/* The word at s[i..): its span [*ws, *ws + *wn). Returns the index after it. */
static size_t next_word(const uint8_t *s, size_t n, size_t i, size_t *ws, size_t *wn)
{
	i = skip_blank(s, n, i);
	*ws = i;
	while (i < n && is_word(s[i]))
		i++;
	*wn = i - *ws;
	return i;
}

static bool word_is(const uint8_t *s, size_t wn, const char *z)
{
	size_t k = strlen(z);

	if (wn != k)
		return false;
	for (size_t i = 0; i < k; i++)
		if (up(s[i]) != (uint8_t)z[i])
			return false;
	return true;
}

/* An identifier: `quoted` or bare. Returns the index after it, 0 when none. */
static size_t ident(const uint8_t *s, size_t n, size_t i, size_t *is, size_t *in)
{
	if (i < n && s[i] == '`') {
		size_t j = i + 1;

		while (j < n && s[j] != '`')
			j++;
		if (j >= n)
			return 0;
		*is = i + 1;
		*in = j - i - 1;
		return j + 1;
	}
	*is = i;
	while (i < n && is_word(s[i]))
		i++;
	*in = i - *is;
	return *in ? i : 0;
}

/* Append p[0..n) up to its first NUL (what printf's "%.*s" takes) at b[at], keeping
 * b, of cap bytes, a C string cut at cap - 1 bytes (what ev_set_fmt() keeps). Returns
 * the new length. */
static size_t fmt_str(char *b, size_t cap, size_t at, const void *p, size_t n)
{
	n = strnlen(p, n);
	if (n > cap - 1 - at)
		n = cap - 1 - at;
	memcpy(b + at, p, n);
	b[at + n] = '\0';
	return at + n;
}

/* ---- CSV rendering (Go encoding/csv, as Packetbeat's DumpInCSVFormat) ------------ */

/* Does the first UTF-8 character of s count as space for Go's unicode.IsSpace? */
static bool lead_space(const uint8_t *s, size_t n)
{
	uint32_t cp;

	if (n == 0)
		return false;
	if (s[0] < 0x80)
		return is_space(s[0]);
	if ((s[0] & 0xe0) == 0xc0 && n >= 2)
		cp = (uint32_t)(s[0] & 0x1f) << 6 | (s[1] & 0x3f);
	else if ((s[0] & 0xf0) == 0xe0 && n >= 3)
		cp = (uint32_t)(s[0] & 0x0f) << 12 | (uint32_t)(s[1] & 0x3f) << 6 | (s[2] & 0x3f);
	else
		return false;
	return cp == 0x85 || cp == 0xa0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) ||
	       cp == 0x2028 || cp == 0x2029 || cp == 0x202f || cp == 0x205f || cp == 0x3000;
}

/* Append one CSV field to c->csv. Newlines become "\n" (and, in rows, CRs "\r")
 * before quoting is decided, as Packetbeat does. */
static void csv_field(struct my_conn *c, const uint8_t *s, size_t n, bool first, bool row)
{
	struct strbuf *o = &c->csv;
	bool quote = false;
	size_t mark = o->len;

	if (c->rs.csv_full)
		return;
	for (size_t i = 0; i < n && !quote; i++)
		if (s[i] == ',' || s[i] == '"' || (!row && s[i] == '\r'))
			quote = true;
	if (n && !quote) {
		/* the first character after the \n / \r replacement */
		if (s[0] == '\n' || (row && s[0] == '\r'))
			quote = false;
		else
			quote = lead_space(s, n);
	}
	if (n == 2 && s[0] == '\\' && s[1] == '.')
		quote = true;
	if (!first)
		strbuf_putc(o, ',');
	if (quote)
		strbuf_putc(o, '"');
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\n')
			strbuf_append(o, "\\n", 2);
		else if (row && s[i] == '\r')
			strbuf_append(o, "\\r", 2);
		else if (quote && s[i] == '"')
			strbuf_append(o, "\"\"", 2);
		else
			strbuf_putc(o, (char)s[i]);
	}
	if (quote)
		strbuf_putc(o, '"');
	if (o->err || o->len > c->max_msg) {
		strbuf_truncate(o, mark);
		c->rs.csv_full = true;
	}
}

static void csv_eol(struct my_conn *c)
{
	if (!c->rs.csv_full && c->csv.len < c->max_msg)
		strbuf_putc(&c->csv, '\n');
	else
		c->rs.csv_full = true;
}

/* ---- statements -------------------------------------------------------------------- */

static void stmt_clear(struct my_stmt *s)
{
	hb_free(s->text);
	hb_free(s->types);
	hb_free(s->cols);
	hb_free(s->path);
	hb_free(s->hdr);
	memset(s, 0, sizeof(*s));
}

static struct my_stmt *stmt_find(struct my_conn *c, uint32_t id, uint64_t now)
{
	if (id == 0xffffffffu) /* MariaDB: the statement prepared last */
		id = c->last_stmt;
	for (size_t i = 0; c->stmts && i < c->nstmts_cap; i++) {
		struct my_stmt *s = &c->stmts[i];

		if (!s->used || s->id != id)
			continue;
		if (c->mc->statement_timeout && now > s->last_used &&
		    now - s->last_used > c->mc->statement_timeout) {
			stmt_clear(s);
			return NULL;
		}
		s->last_used = now;
		return s;
	}
	return NULL;
}

static struct my_stmt *stmt_add(struct my_conn *c, uint32_t id, uint16_t nparams, const char *text,
				size_t len, uint64_t now)
{
	struct my_stmt *s = NULL;

	if (!c->stmts) {
		c->stmts = hb_calloc(c->nstmts_cap, sizeof(*c->stmts));
		if (!c->stmts)
			return NULL;
	}
	for (size_t i = 0; i < c->nstmts_cap; i++) {
		struct my_stmt *t = &c->stmts[i];

		if (t->used && t->id == id) {
			s = t;
			break;
		}
		if (!t->used && !s)
			s = t;
	}
	if (!s) { /* full: forget the least recently used */
		s = &c->stmts[0];
		for (size_t i = 1; i < c->nstmts_cap; i++)
			if (c->stmts[i].last_used < s->last_used)
				s = &c->stmts[i];
		metric_inc(c->m_evicted);
	}
	stmt_clear(s);
	s->used = true;
	s->id = id;
	s->nparams = nparams;
	s->last_used = now;
	if (len > MY_MAX_STMT_TEXT)
		len = MY_MAX_STMT_TEXT;
	if (text && len) {
		s->text = hb_malloc(len);
		if (s->text) {
			memcpy(s->text, text, len);
			s->text_len = (uint32_t)len;
		}
	}
	c->last_stmt = id;
	return s;
}

/* The statement `id` (0xffffffff: the one prepared last) without touching its age. */
static struct my_stmt *stmt_peek(struct my_conn *c, uint32_t id)
{
	if (id == 0xffffffffu)
		id = c->last_stmt;
	for (size_t i = 0; c->stmts && i < c->nstmts_cap; i++)
		if (c->stmts[i].used && c->stmts[i].id == id)
			return &c->stmts[i];
	return NULL;
}

/* Keep n bytes of p in *dst (reallocated only when the size changes). */
static bool keep_bytes(void **dst, size_t *have, const void *p, size_t n)
{
	if (n != *have) {
		void *b = n ? hb_realloc(*dst, n) : NULL;

		if (n && !b)
			return false;
		if (!n)
			hb_free(*dst);
		*dst = b;
		*have = n;
	}
	if (n)
		memcpy(*dst, p, n);
	return true;
}

/* Remember the column definitions of the current response (PREPARE, or an EXECUTE
 * result carrying them: the newest win) for results that skip them. Only a complete
 * set is kept: path when every definition's names parsed, types when every type did. */
static void stmt_remember_cols(struct my_conn *c, struct my_stmt *st)
{
	const struct my_resp *rs = &c->rs;
	uint8_t tmp[2 * MY_MAX_TYPED];
	size_t have;
	void *p;

	if (!st)
		return;
	st->ncols = 0; /* until the new set is known complete */
	st->have_cols = false;
	if (rs->gap_lost || !rs->num_fields || rs->num_fields > MY_MAX_TYPED ||
	    rs->defs_named != rs->num_fields)
		return;
	have = st->path_len;
	p = st->path;
	if (!keep_bytes(&p, &have, c->path.p, c->path.err ? 0 : c->path.len))
		return;
	st->path = p;
	st->path_len = (uint16_t)have;
	st->ncols = (uint16_t)rs->num_fields;
	if (!rs->types_ok || rs->ntypes != rs->num_fields)
		return;
	for (unsigned i = 0; i < rs->ntypes; i++) {
		tmp[2 * i] = rs->types[i];
		tmp[2 * i + 1] = rs->uns[i];
	}
	have = st->cols_len;
	p = st->cols;
	if (!keep_bytes(&p, &have, tmp, 2u * rs->ntypes))
		return;
	st->cols = p;
	st->cols_len = (uint16_t)have;
	if (c->send_response) {
		/* rows are rendered only under their complete column-name line */
		size_t n = c->csv.len;

		if (n && c->csv.p[n - 1] == '\n')
			n--;
		if (c->csv.err || rs->csv_full || n > MY_MAX_HEADER)
			return;
		have = st->hdr_len;
		p = st->hdr;
		if (!keep_bytes(&p, &have, c->csv.p, n))
			return;
		st->hdr = p;
		st->hdr_len = (uint16_t)have;
	}
	st->have_cols = true;
}

/* An EXECUTE result of n columns without definitions (metadata cached): the
 * statement's remembered path and column types, when they describe n columns. */
static void stmt_recall_cols(struct my_conn *c, uint64_t n)
{
	struct my_resp *rs = &c->rs;
	const struct my_stmt *st = stmt_peek(c, rs->req.stmt_id);

	if (!st || !st->ncols || st->ncols != n)
		return;
	if (st->path_len)
		strbuf_append(&c->path, st->path, st->path_len);
	if (!st->have_cols || st->cols_len != 2u * n)
		return;
	if (c->send_response) {
		strbuf_append(&c->csv, st->hdr, st->hdr_len);
		csv_eol(c);
	}
	for (size_t i = 0; i < n; i++) {
		rs->types[i] = st->cols[2 * i];
		rs->uns[i] = st->cols[2 * i + 1];
	}
	rs->ntypes = (unsigned)n;
	rs->types_ok = true;
}

static void stmt_close(struct my_conn *c, uint32_t id)
{
	for (size_t i = 0; c->stmts && i < c->nstmts_cap; i++)
		if (c->stmts[i].used && c->stmts[i].id == id)
			stmt_clear(&c->stmts[i]);
}

/* ---- binary values (statement parameters, binary rows) ---------------------------- */

/* Shortest "%g" text that reads back as the same double. */
static int fmt_double(char *b, size_t n, double v, bool is_float)
{
	int len = 0;

	for (int prec = 1; prec <= 17; prec++) {
		len = snprintf(b, n, "%.*g", prec, v);
		if (is_float ? (float)strtod(b, NULL) == (float)v : strtod(b, NULL) == v)
			break;
	}
	return len;
}

enum val_style { VS_PARAM, VS_ROW };

/* One binary-protocol value of `type` from c into text b[0..n). Returns its length,
 * -1 when the bytes are short or the type is unknown. `view`/`vlen` point at the raw
 * bytes for string types instead (return value -2). */
static int bin_value(struct cursor *cu, uint8_t type, bool uns, enum val_style vs, char *b,
		     size_t n, const uint8_t **view, size_t *vlen)
{
	int len = -1;

	switch (type) {
	case 0x01: { /* TINY */
		uint8_t v = cur_u8(cu);
		len = uns || vs == VS_PARAM ? snprintf(b, n, "%u", v)
					    : snprintf(b, n, "%d", (int8_t)v);
		break;
	}
	case 0x02:   /* SHORT */
	case 0x0d: { /* YEAR */
		uint16_t v = cur_le16(cu);
		len = uns || vs == VS_PARAM ? snprintf(b, n, "%u", v)
					    : snprintf(b, n, "%d", (int16_t)v);
		break;
	}
	case 0x03:   /* LONG */
	case 0x09: { /* INT24 */
		uint32_t v = cur_le32(cu);
		len = uns || vs == VS_PARAM ? snprintf(b, n, "%lu", (unsigned long)v)
					    : snprintf(b, n, "%ld", (long)(int32_t)v);
		break;
	}
	case 0x08: { /* LONGLONG */
		uint64_t v = cur_le64(cu);
		len = uns ? snprintf(b, n, "%llu", (unsigned long long)v)
			  : snprintf(b, n, "%lld", (long long)(int64_t)v);
		break;
	}
	case 0x04: { /* FLOAT */
		uint32_t v = cur_le32(cu);
		float f;
		memcpy(&f, &v, sizeof(f));
		len = fmt_double(b, n, f, true);
		break;
	}
	case 0x05: { /* DOUBLE */
		uint64_t v = cur_le64(cu);
		double d;
		memcpy(&d, &v, sizeof(d));
		len = fmt_double(b, n, d, false);
		break;
	}
	case 0x06: /* NULL */
		len = snprintf(b, n, "NULL");
		break;
	case 0x07:   /* TIMESTAMP */
	case 0x0a:   /* DATE */
	case 0x0c: { /* DATETIME */
		uint8_t l = cur_u8(cu);
		unsigned y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0;
		unsigned long us = 0;
		struct cursor v;
		const uint8_t *p = cur_bytes(cu, l);

		if (!p)
			break;
		cur_init(&v, p, l);
		if (l >= 4) {
			y = cur_le16(&v);
			mo = cur_u8(&v);
			d = cur_u8(&v);
		}
		if (l >= 7) {
			h = cur_u8(&v);
			mi = cur_u8(&v);
			s = cur_u8(&v);
		}
		if (l >= 11)
			us = cur_le32(&v);
		if (vs ==
		    VS_PARAM) { /* Packetbeat: "2017/7/28 0:0:0", empty parts for absent ones */
			char ys[8] = "", ms[4] = "", ds[4] = "", hs[4] = "", mis[4] = "",
			     ss[4] = "";

			if (l >= 2)
				snprintf(ys, sizeof(ys), "%u", y);
			if (l >= 4) {
				snprintf(ms, sizeof(ms), "%u", mo & 0xff);
				snprintf(ds, sizeof(ds), "%u", d & 0xff);
			}
			if (l >= 7) {
				snprintf(hs, sizeof(hs), "%u", h & 0xff);
				snprintf(mis, sizeof(mis), "%u", mi & 0xff);
				snprintf(ss, sizeof(ss), "%u", s & 0xff);
			}
			len = snprintf(b, n, "%s/%s/%s %s:%s:%s", ys, ms, ds, hs, mis, ss);
		} else if (type == 0x0a) {
			len = snprintf(b, n, "%04u-%02u-%02u", y, mo, d);
		} else if (l >= 11) {
			len = snprintf(b, n, "%04u-%02u-%02u %02u:%02u:%02u.%06lu", y, mo, d, h, mi,
				       s, us);
		} else {
			len = snprintf(b, n, "%04u-%02u-%02u %02u:%02u:%02u", y, mo, d, h, mi, s);
		}
		break;
	}
	case 0x0b: { /* TIME */
		uint8_t l = cur_u8(cu);
		const uint8_t *p = cur_bytes(cu, l);
		struct cursor v;
		unsigned neg = 0, h = 0, mi = 0, s = 0;
		unsigned long days = 0, us = 0;

		if (!p)
			break;
		cur_init(&v, p, l);
		if (l >= 8) {
			neg = cur_u8(&v);
			days = cur_le32(&v);
			h = cur_u8(&v);
			mi = cur_u8(&v);
			s = cur_u8(&v);
		}
		if (l >= 12)
			us = cur_le32(&v);
		if (l >= 12)
			len = snprintf(b, n, "%s%02lu:%02u:%02u.%06lu", neg ? "-" : "",
				       days * 24 + h, mi, s, us);
		else
			len = snprintf(b, n, "%s%02lu:%02u:%02u", neg ? "-" : "", days * 24 + h, mi,
				       s);
		break;
	}
	case 0x00:
	case 0x0e:
	case 0x0f:
	case 0x10:
	case 0xf5:
	case 0xf6:
	case 0xf7:
	case 0xf8:
	case 0xf9:
	case 0xfa:
	case 0xfb:
	case 0xfc:
	case 0xfd:
	case 0xfe:
	case 0xff:
		/* DECIMAL, NEWDATE, VARCHAR, BIT, JSON, NEWDECIMAL, ENUM, SET, BLOBs, strings,
		 * GEOMETRY: length-encoded bytes */
		if (!cur_lenstr(cu, view, vlen))
			break;
		return -2;
	default:
		return -1;
	}
	if (cu->err || len < 0)
		return -1;
	return len < (int)n ? len : (int)n - 1;
}

/* COM_STMT_EXECUTE parameters → `params` (Packetbeat's rendering). `cu` is just after
 * the iteration count. Without `ev` the values are only skipped. */
static void exec_params(struct my_stmt *st, struct cursor *cu, struct event *ev, bool count,
			bool names)
{
	size_t np = st->nparams, nb;
	const uint8_t *nulls;
	uint8_t bound;
	char txt[96];

	if (count) {
		uint64_t pc = cur_lenenc(cu);

		if (cu->err || pc != np)
			return;
	}
	if (np == 0 || np > MY_MAX_PARAMS)
		return;
	nb = (np + 7) / 8;
	nulls = cur_bytes(cu, nb);
	bound = cur_u8(cu);
	if (cu->err)
		return;
	if (bound == 1) {
		uint8_t *t = st->types ? st->types : hb_malloc(2 * np);

		if (!t)
			return;
		st->types = t;
		for (size_t i = 0; i < np; i++) {
			t[2 * i] = cur_u8(cu);
			t[2 * i + 1] = cur_u8(cu);
			if (names) {
				const uint8_t *nm;
				size_t nn;

				cur_lenstr(cu, &nm, &nn);
			}
		}
		if (cu->err)
			return;
		st->have_types = true;
	}
	if (!st->have_types)
		return;
	for (size_t i = 0; i < np; i++) {
		const uint8_t *v = NULL;
		size_t vn = 0;
		int len;

		if (nulls[i / 8] & (1u << (i % 8))) {
			if (ev)
				ev_append_str(ev, "params", "NULL", 4);
			continue;
		}
		len = bin_value(cu, st->types[2 * i], st->types[2 * i + 1] & 0x80, VS_PARAM, txt,
				sizeof(txt), &v, &vn);
		if (len == -1)
			return; /* short or unknown type: the rest cannot be located */
		if (!ev)
			continue;
		if (len == -2)
			ev_append_str(ev, "params", v, vn);
		else
			ev_append_str(ev, "params", txt, (size_t)len);
	}
}

/* ---- pending requests ------------------------------------------------------------ */

/* A transaction event from the pool, starting at ts (txn_new_event() gave it the
 * connection's tuple and the packet's time). */
static struct event *event_at(struct proto_ctx *ctx, uint64_t ts)
{
	struct event *ev = txn_new_event(ctx, &mysql_proto);

	if (ev)
		ev->ts = ev->start_ns = ts;
	return ev;
}

static void ring_push(struct my_conn *c, const struct my_req *r, struct proto_ctx *ctx)
{
	if (c->ring_len == c->ring_cap) {
		struct my_req *old = &c->ring[c->ring_head];

		metric_inc(ctx->stats->limit_exceeded);
		if (old->ev)
			txn_publish_unmatched(ctx, old->ev, "Unmatched request", true);
		c->ring_head = (c->ring_head + 1) % c->ring_cap;
		c->ring_len--;
	}
	c->ring[(c->ring_head + c->ring_len) % c->ring_cap] = *r;
	c->ring_len++;
}

static bool ring_pop(struct my_conn *c, struct my_req *out)
{
	if (!c->ring_len)
		return false;
	*out = c->ring[c->ring_head];
	c->ring_head = (c->ring_head + 1) % c->ring_cap;
	c->ring_len--;
	return true;
}

/* Requests older than the transaction timeout will not be answered any more. */
static void ring_expire(struct my_conn *c, struct proto_ctx *ctx)
{
	while (c->ring_len) {
		struct my_req *r = &c->ring[c->ring_head];

		if (!(ctx->ts > r->start_ns && ctx->ts - r->start_ns > c->timeout))
			break;
		if (r->ev)
			txn_publish_unmatched(ctx, r->ev, "Unmatched request", true);
		c->ring_head = (c->ring_head + 1) % c->ring_cap;
		c->ring_len--;
	}
}

/* ---- requests ----------------------------------------------------------------------- */

/* method (SQL verb) and, for INSERT/UPDATE/DELETE/REPLACE, path from the SQL text. */
static void sql_fields(struct my_conn *c, struct event *ev, struct my_req *r, const uint8_t *s,
		       size_t n)
{
	size_t ws, wn, i, is, in, ts = 0, tn = 0, ds = 0, dn = 0;
	char verb[32];
	char path[1024]; /* as ev_set_fmt() would have printed it */
	size_t pn;

	/* the first word, upper-cased into verb as it is scanned (a text starting with
	 * it, the usual case, needs no skip_blank()) */
	i = n && is_word(s[0]) ? 0 : skip_blank(s, n, 0);
	for (wn = 0; i < n; i++, wn++) {
		uint8_t ch = s[i], upper = ch & 0xdf;

		if ((uint8_t)(upper - 'A') < 26)
			ch = upper; /* a letter */
		else if (!is_word(ch))
			break;
		if (wn < sizeof(verb))
			verb[wn] = (char)ch;
	}
	if (wn == 0)
		return;
	if (wn > sizeof(verb))
		wn = sizeof(verb);
	ev_set_str(ev, "method", verb, wn);
	if (wn == 3 && memcmp(verb, "USE", 3) == 0) {
		i = skip_blank(s, n, i);
		if (ident(s, n, i, &is, &in) && in <= MY_MAX_DB) {
			r->use_db = true;
			memcpy(r->newdb, s + is, in);
			r->newdb_len = (uint8_t)in;
		}
		return;
	}
	if (!(wn == 6 && (memcmp(verb, "INSERT", 6) == 0 || memcmp(verb, "UPDATE", 6) == 0 ||
			  memcmp(verb, "DELETE", 6) == 0)) &&
	    !(wn == 7 && memcmp(verb, "REPLACE", 7) == 0))
		return;
	/* skip modifiers and INTO / FROM */
	for (int k = 0; k < 6; k++) {
		size_t j = next_word(s, n, i, &ws, &wn);

		if (word_is(s + ws, wn, "LOW_PRIORITY") || word_is(s + ws, wn, "DELAYED") ||
		    word_is(s + ws, wn, "HIGH_PRIORITY") || word_is(s + ws, wn, "IGNORE") ||
		    word_is(s + ws, wn, "QUICK") || word_is(s + ws, wn, "INTO") ||
		    word_is(s + ws, wn, "FROM"))
			i = j;
		else
			break;
	}
	i = skip_blank(s, n, i);
	i = ident(s, n, i, &ts, &tn);
	if (!i)
		return;
	if (i < n && s[i] == '.') {
		ds = ts;
		dn = tn;
		if (!ident(s, n, i + 1, &ts, &tn))
			return;
	}
	r->has_path = true;
	if (!dn && !c->db[0]) {
		ev_set_str(ev, "path", s + ts, tn);
		return;
	}
	/* "db.table": each part up to a NUL, the whole cut at 1023 bytes */
	pn = dn ? fmt_str(path, sizeof(path), 0, s + ds, dn)
		: fmt_str(path, sizeof(path), 0, c->db, sizeof(c->db));
	pn = fmt_str(path, sizeof(path), pn, ".", 1);
	pn = fmt_str(path, sizeof(path), pn, s + ts, tn);
	ev_set_str(ev, "path", path, pn);
}

static bool want_publish(const struct my_conn *c, uint8_t cmd)
{
	return c->mc->all_commands || cmd == COM_QUERY || cmd == COM_STMT_PREPARE ||
	       cmd == COM_STMT_EXECUTE || cmd == COM_INIT_DB;
}

static bool is_trimmed(uint8_t ch)
{
	return ch == ' ' || ch == '\r' || ch == '\n' || ch == '\t';
}

/* Trim " \r\n\t" from both ends (Packetbeat's strings.Trim for `query`). */
static void trim(const uint8_t **s, size_t *n)
{
	while (*n && is_trimmed((*s)[0]))
		(*s)++, (*n)--;
	while (*n && is_trimmed((*s)[*n - 1]))
		(*n)--;
}

/* The whole request has been read. */
static void request_done(struct my_conn *c, struct proto_ctx *ctx)
{
	struct my_req *r = &c->cur;
	struct event *ev = r->ev;

	c->building = false;
	metric_inc(ctx->stats->messages);
	if (ev) {
		ev->client_bytes = c->req_bytes;
		ev->has_client_bytes = true;
		if (r->cmd == COM_QUERY || r->cmd == COM_STMT_PREPARE) {
			const uint8_t *s = (const uint8_t *)(c->q.p ? c->q.p : "");
			size_t n = c->q.err ? 0 : c->q.len;

			if (c->q_direct) {
				s = c->q_direct;
				n = c->q_direct_len;
			}

			if (c->send_request)
				ev_set_str(ev, "request", s, n < c->max_msg ? n : c->max_msg);
			sql_fields(c, ev, r, s, n);
			trim(&s, &n);
			ev_set_str(ev, "query", s, n);
			if (c->q_trunc)
				txn_add_note(ev, "Query text truncated");
		}
		if (c->q_gap)
			txn_add_note(ev, "Packet loss while capturing the request");
	}
	c->q_direct = NULL;
	if (c->q.cap > MY_KEEP_BUF)
		strbuf_free(&c->q);
	strbuf_reset(&c->q);
	r->ev = NULL; /* ownership moves to the FIFO (or is published below) */
	if (cmd_no_response(r->cmd)) {
		if (r->cmd == COM_STMT_CLOSE)
			stmt_close(c, r->stmt_id == 0xffffffffu ? c->last_stmt : r->stmt_id);
		if (ev)
			txn_publish(ctx, ev);
		return;
	}
	if (r->cmd == COM_BINLOG_DUMP || r->cmd == COM_BINLOG_DUMP_GTID) {
		/* a replication stream follows: not request/response any more */
		metric_inc(c->m_ignored);
		if (ev)
			ev_pool_put(ev);
		c->phase = PH_IGNORED;
		return;
	}
	r->ev = ev;
	ring_push(c, r, ctx);
	r->ev = NULL;
}

static void q_append(struct my_conn *c, const uint8_t *p, size_t n)
{
	if (c->q.len + n > c->max_query) {
		n = c->q.len < c->max_query ? c->max_query - c->q.len : 0;
		c->q_trunc = true;
	}
	if (n)
		strbuf_append(&c->q, p, n);
}

/* method / query of a command without SQL text: the command's name and argument.
 * h[0..hn) is the packet head (h[0] the command). */
static void command_fields(struct my_conn *c, struct event *ev, uint8_t cmd, const uint8_t *h,
			   size_t hn)
{
	const char *name = cmd_name(cmd);

	ev_set_strz(ev, "method", name);
	if ((cmd == COM_INIT_DB || cmd == COM_FIELD_LIST) && hn > 1) {
		size_t an = strnlen((const char *)h + 1, hn - 1);

		ev_set_fmt(ev, "query", "%s %.*s", name, (int)an, (const char *)h + 1);
		if (c->send_request)
			ev_set_str(ev, "request", h + 1, an);
	} else if (cmd == COM_STMT_CLOSE || cmd == COM_STMT_EXECUTE || cmd == COM_STMT_FETCH ||
		   cmd == COM_STMT_SEND_LONG_DATA || cmd == 0x1a) {
		ev_set_fmt(ev, "query", "%s %u", name, (unsigned)c->cur.stmt_id);
	} else {
		ev_set_strz(ev, "query", name);
	}
}

/* COM_STMT_EXECUTE: the prepared text, the parameters. */
static void execute_fields(struct my_conn *c, struct event *ev, const uint8_t *h, size_t hn,
			   struct proto_ctx *ctx)
{
	struct my_stmt *st = stmt_find(c, c->cur.stmt_id, ctx->ts);
	struct cursor cu;
	uint8_t flags;
	bool attrs;

	if (!st && c->cur.stmt_id == 0xffffffffu) {
		/* MariaDB pipelining: "the statement prepared last", whose PREPARE is
		 * still waiting for its response: take its text (no parameters yet) */
		for (size_t i = c->ring_len; i-- > 0;) {
			const struct my_req *p = &c->ring[(c->ring_head + i) % c->ring_cap];
			const struct ev_field *q = p->ev ? ev_find(p->ev, "query") : NULL;

			if (p->cmd != COM_STMT_PREPARE)
				continue;
			if (q) {
				struct my_req tmp = {0};

				sql_fields(c, ev, &tmp, (const uint8_t *)q->v.s.p, q->v.s.len);
				c->cur.has_path = tmp.has_path;
				ev_set_str(ev, "query", q->v.s.p, q->v.s.len);
				return;
			}
			break;
		}
	}
	if (!st || !st->text) {
		command_fields(c, ev, COM_STMT_EXECUTE, h, hn);
		txn_add_note(ev, "The actual query being used is unknown");
		if (!st)
			return;
	} else {
		struct my_req tmp = {0};
		const uint8_t *s = (const uint8_t *)st->text;
		size_t n = st->text_len;

		sql_fields(c, ev, &tmp, s, n);
		c->cur.has_path = tmp.has_path;
		if (c->send_request)
			ev_set_str(ev, "request", s, n < c->max_msg ? n : c->max_msg);
		trim(&s, &n);
		ev_set_str(ev, "query", s, n);
	}
	cur_init(&cu, h, hn);
	cur_skip(&cu, 5); /* cmd, stmt id */
	flags = cur_u8(&cu);
	cur_skip(&cu, 4); /* iteration count */
	attrs = c->client_caps_known && c->server_caps_known &&
		(c->client_caps & c->server_caps & CAP_QUERY_ATTRIBUTES) &&
		(st->nparams > 0 || (flags & 0x08));
	if (!cu.err)
		exec_params(st, &cu, ev, attrs, attrs);
}

/* First packet of a command (seq 0) in the command phase. h[0..hn) is its head. */
static int command_start(struct my_conn *c, const uint8_t *h, size_t hn, uint32_t len, uint8_t seq,
			 struct proto_ctx *ctx)
{
	struct my_req *r = &c->cur;
	uint8_t cmd = h[0];
	struct cursor cu;
	struct event *ev = NULL;

	ring_expire(c, ctx);
	memset(r, 0, sizeof(*r));
	r->cmd = cmd;
	r->seq = seq;
	r->start_ns = c->dir[DIR_TO_SERVER].msg_ts;
	c->building = true;
	c->req_bytes = 0;
	c->q_trunc = c->q_gap = false;
	c->q_direct = NULL;
	strbuf_reset(&c->q);
	cur_init(&cu, h, hn);
	cur_skip(&cu, 1);
	if (cmd == COM_STMT_EXECUTE || cmd == COM_STMT_CLOSE || cmd == COM_STMT_FETCH ||
	    cmd == COM_STMT_SEND_LONG_DATA || cmd == 0x1a /* STMT_RESET */) {
		r->stmt_id = cur_le32(&cu);
	}
	if (want_publish(c, cmd))
		ev = event_at(ctx, r->start_ns);
	r->ev = ev;
	if (cmd == COM_QUERY || cmd == COM_STMT_PREPARE) {
		size_t skip = 1;

		if (cmd == COM_QUERY && hn >= 3) {
			bool attrs = c->client_caps_known && c->server_caps_known &&
				     (c->client_caps & c->server_caps & CAP_QUERY_ATTRIBUTES);

			if (attrs || (h[1] == 0x00 && h[2] == 0x01)) {
				/* parameter_count, parameter_set_count [, parameters] */
				uint64_t pc = cur_lenenc(&cu);

				cur_lenenc(&cu);
				if (pc) {
					struct my_stmt tmp = {.nparams = (uint16_t)pc};

					if (pc <= MY_MAX_PARAMS) {
						exec_params(&tmp, &cu, NULL, false, true);
						hb_free(tmp.types);
					} else {
						cu.err = true;
					}
				}
				skip = cu.err ? hn : cu.off;
			}
		}
		c->dir[DIR_TO_SERVER].stream_query = hn < len;
		if (hn == len && len < MY_MAX_PAYLOAD) {
			/* the whole text is here, and packet_done() follows before parse()
			 * returns: request_done() takes it in place */
			c->q_direct = h + (skip < hn ? skip : hn);
			c->q_direct_len = hn - (skip < hn ? skip : hn);
			if (c->q_direct_len > c->max_query) {
				c->q_direct_len = c->max_query;
				c->q_trunc = true;
			}
			return 0;
		}
		if (skip < hn)
			q_append(c, h + skip, hn - skip);
		return 0;
	}
	if (ev) {
		if (cmd == COM_STMT_EXECUTE)
			execute_fields(c, ev, h, hn, ctx);
		else
			command_fields(c, ev, cmd, h, hn);
	}
	if (cmd == COM_INIT_DB) {
		size_t an = strnlen((const char *)h + 1, hn - 1);

		if (an <= MY_MAX_DB) {
			r->use_db = true;
			memcpy(r->newdb, h + 1, an);
			r->newdb_len = (uint8_t)an;
		}
	}
	return 0;
}

/* ---- connection phase ------------------------------------------------------------- */

static void go_ignored(struct my_conn *c, struct metric *m)
{
	metric_inc(m);
	c->phase = PH_IGNORED;
}

/* Protocol::Handshake v10 from the server. */
static void greeting(struct my_conn *c, const uint8_t *h, size_t hn)
{
	struct cursor cu;
	long nul;
	uint32_t caps;

	cur_init(&cu, h, hn);
	cur_skip(&cu, 1);
	nul = cur_find(&cu, 0);
	if (nul < 0)
		return;
	cur_seek(&cu, (size_t)nul + 1);
	cur_skip(&cu, 4 + 8 + 1); /* thread id, auth data 1, filler */
	caps = cur_le16(&cu);
	if (cu.err)
		return;
	if (cur_left(&cu) >= 5) {
		cur_skip(&cu, 3); /* charset, status */
		caps |= (uint32_t)cur_le16(&cu) << 16;
	}
	c->server_caps = caps;
	c->server_caps_known = true;
	c->server_compress = caps & (CAP_COMPRESS | CAP_ZSTD);
	c->phase = PH_GREETED;
}

/* HandshakeResponse41 / SSLRequest from the client. Returns true when the connection
 * becomes opaque (TLS or compression). */
static bool handshake_response(struct my_conn *c, const uint8_t *h, size_t hn, uint32_t len)
{
	struct cursor cu;
	uint32_t caps;
	long nul;

	cur_init(&cu, h, hn);
	caps = cur_le32(&cu);
	if (cu.err)
		return false;
	if (!(caps & CAP_PROTOCOL_41))
		caps &= 0xffff; /* HandshakeResponse320: 2-byte flags */
	c->client_caps = caps;
	c->client_caps_known = true;
	if ((caps & CAP_SSL) && len == 32) {
		go_ignored(c, c->m_tls);
		return true;
	}
	if ((caps & (CAP_COMPRESS | CAP_ZSTD)) &&
	    (!c->server_caps_known || (c->server_caps & caps & (CAP_COMPRESS | CAP_ZSTD)))) {
		go_ignored(c, c->m_compressed);
		return true;
	}
	if (!(caps & CAP_DEPRECATE_EOF))
		c->eofm = EOFM_CLASSIC;
	else if (c->server_caps_known)
		c->eofm = c->server_caps & CAP_DEPRECATE_EOF ? EOFM_DEPRECATED : EOFM_CLASSIC;
	c->phase = PH_AUTH;
	if (!(caps & CAP_PROTOCOL_41) || !(caps & CAP_CONNECT_WITH_DB))
		return false;
	cur_skip(&cu, 4 + 1 + 23); /* max packet, charset, filler */
	nul = cur_find(&cu, 0);    /* user name */
	if (nul < 0)
		return false;
	cur_seek(&cu, (size_t)nul + 1);
	if (caps & CAP_PLUGIN_AUTH_LENENC) {
		const uint8_t *p;
		size_t n;

		cur_lenstr(&cu, &p, &n);
	} else if (caps & CAP_SECURE_CONNECTION) {
		cur_skip(&cu, cur_u8(&cu));
	} else {
		nul = cur_find(&cu, 0);
		if (nul < 0)
			return false;
		cur_seek(&cu, (size_t)nul + 1);
	}
	nul = cur_find(&cu, 0);
	if (cu.err || nul < 0 || (size_t)nul - cu.off > MY_MAX_DB)
		return false;
	memcpy(c->db, cu.p + cu.off, (size_t)nul - cu.off);
	c->db[(size_t)nul - cu.off] = '\0';
	return false;
}

/* A compressed packet read as a plain one: comp_len:le24 seq uncomp_len:le24 body. With
 * uncomp_len 0 the body is plain packets (the first a command, seq 0); otherwise it
 * starts with a zlib (0x78, header % 31 == 0) or zstd (28 b5 2f fd) frame. */
static bool looks_compressed(const uint8_t *h, size_t hn, uint32_t len)
{
	uint32_t ulen, inner;

	if (hn < 8)
		return false;
	ulen = (uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16;
	if (ulen == 0) {
		inner = (uint32_t)h[3] | (uint32_t)h[4] << 8 | (uint32_t)h[5] << 16;
		return inner + 4 <= len && h[6] == 0 && cmd_name(h[7]) != NULL;
	}
	if (h[3] == 0x78 && ((unsigned)h[3] << 8 | h[4]) % 31 == 0)
		return true;
	return h[3] == 0x28 && h[4] == 0xb5 && h[5] == 0x2f && h[6] == 0xfd;
}

/* ---- responses ------------------------------------------------------------------------ */

static void seq_check(struct my_conn *c, uint8_t seq)
{
	if (seq != c->rs.next_seq)
		metric_inc(c->m_seq);
	c->rs.next_seq = (uint8_t)(seq + 1);
}

static void resp_begin(struct my_conn *c, uint8_t seq, struct proto_ctx *ctx)
{
	struct my_resp *rs = &c->rs;

	memset(rs, 0, offsetof(struct my_resp, types));
	rs->active = true;
	rs->st = RS_FIRST;
	strbuf_reset(&c->csv);
	strbuf_reset(&c->path);
	if (ring_pop(c, &rs->req)) {
		rs->next_seq = (uint8_t)(rs->req.seq + 1);
	} else {
		/* a response without a request: parsed as the answer to a query */
		rs->unmatched = true;
		rs->req.cmd = COM_QUERY;
		rs->req.ev = event_at(ctx, c->dir[DIR_TO_CLIENT].msg_ts);
		rs->next_seq = seq;
	}
	if (rs->req.ev)
		rs->req.ev->end_ns = c->dir[DIR_TO_CLIENT].msg_ts;
	seq_check(c, seq);
}

static void resp_finish(struct my_conn *c, struct proto_ctx *ctx, const char *note)
{
	struct my_resp *rs = &c->rs;
	struct event *ev = rs->req.ev;
	bool ok = !rs->is_error;

	metric_inc(ctx->stats->messages);
	if (ok && rs->req.use_db) {
		memcpy(c->db, rs->req.newdb, rs->req.newdb_len);
		c->db[rs->req.newdb_len] = '\0';
	}
	if (ok && rs->req.cmd == COM_STMT_PREPARE && !rs->unmatched) {
		const struct ev_field *q = ev ? ev_find(ev, "query") : NULL;

		struct my_stmt *st = stmt_add(c, rs->prep_id, rs->prep_nparams, q ? q->v.s.p : NULL,
					      q ? q->v.s.len : 0, ctx->ts);

		stmt_remember_cols(c, st);
	}
	if (rs->req.cmd == COM_RESET_CONNECTION || rs->req.cmd == COM_CHANGE_USER) {
		for (size_t i = 0; c->stmts && i < c->nstmts_cap; i++)
			stmt_clear(&c->stmts[i]);
	}
	if (ev) {
		ev_set_uint(ev, "mysql.affected_rows", rs->affected);
		ev_set_uint(ev, "mysql.insert_id", rs->insert_id);
		ev_set_uint(ev, "mysql.num_rows", rs->num_rows);
		ev_set_uint(ev, "mysql.num_fields", rs->num_fields);
		if (c->path.len && !c->path.err && rs->req.cmd != COM_STMT_PREPARE) {
			if (rs->req.has_path)
				ev_remove(ev, "path");
			ev_set_str(ev, "path", c->path.p, c->path.len);
		}
		if (c->send_response)
			ev_set_str(ev, "response", c->csv.p ? c->csv.p : "",
				   c->csv.err || rs->req.cmd == COM_STMT_PREPARE ? 0 : c->csv.len);
		ev->server_bytes = rs->bytes;
		ev->has_server_bytes = true;
		if (rs->gap_lost)
			txn_add_note(ev, "Packet loss while capturing the response");
		if (note)
			txn_add_note(ev, note);
		if (rs->unmatched) {
			txn_publish_unmatched(ctx, ev, "Unmatched response", false);
		} else {
			ev->status = rs->is_error ? EV_STATUS_ERROR : EV_STATUS_OK;
			txn_publish(ctx, ev);
		}
	}
	rs->req.ev = NULL;
	rs->active = false;
	rs->finish = false;
	if (c->csv.cap > MY_KEEP_BUF)
		strbuf_free(&c->csv);
}

/* OK packet (0x00 or 0xfe header): affected rows, insert id; returns its status flags. */
static uint16_t ok_packet(struct my_conn *c, const uint8_t *h, size_t hn, bool record)
{
	struct cursor cu;
	uint64_t aff, id;
	uint16_t status;

	cur_init(&cu, h, hn);
	cur_skip(&cu, 1);
	aff = cur_lenenc(&cu);
	id = cur_lenenc(&cu);
	status = cur_le16(&cu);
	if (cu.err)
		return 0;
	if (record) {
		c->rs.affected += aff;
		if (id)
			c->rs.insert_id = id;
	}
	return status;
}

static void err_packet(struct my_conn *c, const uint8_t *h, size_t hn)
{
	struct event *ev = c->rs.req.ev;
	struct cursor cu;
	uint16_t code;
	size_t rest;

	c->rs.is_error = true;
	cur_init(&cu, h, hn);
	cur_skip(&cu, 1);
	code = cur_le16(&cu);
	if (cu.err || !ev)
		return;
	ev_set_uint(ev, "mysql.error_code", code);
	rest = cur_left(&cu);
	if (rest >= 6 && cu.p[cu.off] == '#') {
		/* "SQLSTATE: message", each part up to a NUL, cut at 1023 bytes (as printed
		 * by ev_set_fmt) */
		char msg[1024];
		size_t n = fmt_str(msg, sizeof(msg), 0, cu.p + cu.off + 1, 5);

		n = fmt_str(msg, sizeof(msg), n, ": ", 2);
		n = fmt_str(msg, sizeof(msg), n, cu.p + cu.off + 6, rest - 6);
		ev_set_str(ev, "mysql.error_message", msg, n);
	} else {
		ev_set_str(ev, "mysql.error_message", cu.p + cu.off, rest);
	}
}

static bool bytes_eq(const char *a, const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((uint8_t)a[i] != b[i])
			return false;
	return true;
}

/* Add "schema.table" to c->path unless it is already there. */
static void path_add(struct my_conn *c, const uint8_t *schema, size_t ns, const uint8_t *table,
		     size_t nt)
{
	const char *p = c->path.p;
	size_t len = c->path.len, i = 0;

	if (len + ns + nt + 3 > MY_MAX_PATH)
		return;
	/* short strings (mostly one element): compared in place, no library calls */
	while (i < len) { /* elements are separated by ", " */
		size_t el = 0;

		while (i + el < len && p[i + el] != ',')
			el++;
		if (el == ns + 1 + nt && bytes_eq(p + i, schema, ns) && p[i + ns] == '.' &&
		    bytes_eq(p + i + ns + 1, table, nt))
			return;
		i += el + 2;
	}
	if (len)
		strbuf_append(&c->path, ", ", 2);
	strbuf_append(&c->path, schema, ns);
	strbuf_putc(&c->path, '.');
	strbuf_append(&c->path, table, nt);
}

/* What column_def() uses of a ColumnDefinition41. */
struct my_coldef {
	bool names_ok; /* catalog .. name parsed */
	bool types_ok; /* org_name and the fixed fields too */
	const uint8_t *schema, *table, *name;
	size_t nschema, ntable, nname;
	uint8_t type;
	uint16_t flags;
};

/* A string with a one-byte length at h[*off] that is all in h[0..hn): its offset,
 * and *off moved past it; 0 when it is not that. */
static inline size_t short_str(const uint8_t *h, size_t hn, size_t *off)
{
	size_t o = *off;

	if (o >= hn || h[o] >= 0xfb || hn - o - 1 < h[o])
		return 0;
	*off = o + 1 + h[o];
	return o + 1;
}

/* The fields of a column definition in h[0..hn). The usual one (six strings with
 * one-byte lengths, then the fixed fields behind their one-byte length 0x0c) is read
 * in place; anything else through the cursor, which stops at the first field that
 * does not fit. */
static void coldef_parse(const uint8_t *h, size_t hn, struct my_coldef *d)
{
	const uint8_t *sp;
	size_t off = 0, sch, tab, nam, sn;
	struct cursor cu;

	if (short_str(h, hn, &off) && (sch = short_str(h, hn, &off)) &&
	    (tab = short_str(h, hn, &off)) && short_str(h, hn, &off) &&
	    (nam = short_str(h, hn, &off)) && short_str(h, hn, &off) && hn - off >= 10 &&
	    h[off] < 0xfb) {
		d->names_ok = d->types_ok = true;
		d->schema = h + sch, d->nschema = h[sch - 1];
		d->table = h + tab, d->ntable = h[tab - 1];
		d->name = h + nam, d->nname = h[nam - 1];
		d->type = h[off + 7];                                /* len, charset:2, length:4 */
		d->flags = (uint16_t)(h[off + 8] | h[off + 9] << 8); /* then flags:le16 */
		return;
	}
	memset(d, 0, sizeof(*d));
	cur_init(&cu, h, hn);
	cur_lenstr(&cu, &sp, &sn); /* catalog */
	cur_lenstr(&cu, &d->schema, &d->nschema);
	cur_lenstr(&cu, &d->table, &d->ntable);
	cur_lenstr(&cu, &sp, &sn); /* org_table */
	cur_lenstr(&cu, &d->name, &d->nname);
	if (cu.err)
		return;
	d->names_ok = true;
	cur_lenstr(&cu, &sp, &sn); /* org_name */
	cur_lenenc(&cu);           /* length of the fixed fields */
	cur_skip(&cu, 2 + 4);
	d->type = cur_u8(&cu);
	d->flags = cur_le16(&cu);
	d->types_ok = !cu.err;
}

/* A column definition (Protocol::ColumnDefinition41). */
static void column_def(struct my_conn *c, const uint8_t *h, size_t hn)
{
	struct my_resp *rs = &c->rs;
	struct my_coldef cd;

	coldef_parse(h, hn, &cd);
	if (!cd.names_ok) {
		rs->types_ok = false;
		return;
	}
	if (!rs->first_set_done || rs->req.cmd == COM_STMT_PREPARE) {
		/* Packetbeat's path: distinct "schema.table" of the columns, ", "-joined
		 * (a PREPARE's is only remembered for its EXECUTEs, not published) */
		if (cd.ntable)
			path_add(c, cd.schema, cd.nschema, cd.table, cd.ntable);
		rs->defs_named++;
		if (c->send_response) /* a PREPARE's names are remembered, not published */
			csv_field(c, cd.name, cd.nname, rs->num_fields - rs->ndefs == 0, false);
	}
	if (!cd.types_ok) {
		rs->types_ok = false;
		return;
	}
	if (rs->ntypes < MY_MAX_TYPED) {
		rs->types[rs->ntypes] = cd.type;
		rs->uns[rs->ntypes] = (cd.flags & FLAG_UNSIGNED) != 0;
		rs->ntypes++;
	} else {
		rs->types_ok = false;
	}
}

/* One rendered row field, truncated to the row budget (Packetbeat's max_row_length). */
static bool row_put(struct my_conn *c, const uint8_t *s, size_t n, size_t *row_len, bool first)
{
	if (*row_len >= c->max_row_len)
		return false;
	if (n > c->max_row_len - *row_len)
		n = c->max_row_len - *row_len;
	csv_field(c, s, n, first, true);
	*row_len += n;
	return true;
}

/* A text-protocol row: length-encoded strings, 0xfb for NULL. */
static void text_row(struct my_conn *c, const uint8_t *h, size_t hn)
{
	struct cursor cu;
	size_t row_len = 0;
	bool first = true;

	cur_init(&cu, h, hn);
	while (cur_left(&cu)) {
		const uint8_t *v;
		uint64_t l;

		if (cur_peek_u8(&cu) == 0xfb) {
			cur_skip(&cu, 1);
			if (row_put(c, (const uint8_t *)"NULL", 4, &row_len, first))
				first = false;
			continue;
		}
		l = cur_lenenc(&cu);
		if (cu.err)
			break;
		if (l > cur_left(&cu))
			l = cur_left(&cu); /* beyond the head: what is there */
		v = cur_bytes(&cu, (size_t)l);
		if (row_put(c, v ? v : (const uint8_t *)"", (size_t)l, &row_len, first))
			first = false;
	}
	csv_eol(c);
}

/* A binary-protocol row: 0x00, NULL bitmap (offset 2), values by column type. */
static void binary_row(struct my_conn *c, const uint8_t *h, size_t hn)
{
	struct my_resp *rs = &c->rs;
	struct cursor cu;
	const uint8_t *nulls;
	size_t ncols = (size_t)rs->num_fields, row_len = 0;
	bool first = true;
	char txt[96];

	if (!rs->types_ok || rs->ntypes != ncols)
		return; /* types unknown (cached metadata, cursor fetch): counted only */
	cur_init(&cu, h, hn);
	cur_skip(&cu, 1);
	nulls = cur_bytes(&cu, (ncols + 7 + 2) / 8);
	for (size_t i = 0; nulls && i < ncols && !cu.err; i++) {
		size_t bit = i + 2;
		const uint8_t *v = NULL;
		size_t vn = 0;
		int len;

		if (nulls[bit / 8] & (1u << (bit % 8))) {
			if (row_put(c, (const uint8_t *)"NULL", 4, &row_len, first))
				first = false;
			continue;
		}
		len = bin_value(&cu, rs->types[i], rs->uns[i], VS_ROW, txt, sizeof(txt), &v, &vn);
		if (len == -1)
			break;
		if (len == -2 ? row_put(c, v ? v : (const uint8_t *)"", vn, &row_len, first)
			      : row_put(c, (const uint8_t *)txt, (size_t)len, &row_len, first))
			first = false;
	}
	csv_eol(c);
}

/* A packet that ends a definition block or a row set: EOF (5 bytes) or an OK with a
 * 0xfe header. Returns its status flags. */
static uint16_t terminator(struct my_conn *c, const uint8_t *h, size_t hn, uint32_t len)
{
	struct cursor cu;

	if (len <= 5) {
		cur_init(&cu, h, hn);
		cur_skip(&cu, 3);
		return cu.err ? 0 : cur_le16(&cu);
	}
	return ok_packet(c, h, hn, true);
}

static bool is_eof(uint8_t b0, uint32_t len)
{
	return b0 == 0xfe && len < 9;
}

/* After the definitions of a result set: the rows follow. */
static void defs_done(struct my_conn *c)
{
	if (!c->rs.first_set_done && c->send_response && c->rs.num_fields)
		csv_eol(c);
	if (!c->rs.first_set_done && c->rs.req.cmd == COM_STMT_EXECUTE && !c->rs.unmatched)
		stmt_remember_cols(c, stmt_peek(c, c->rs.req.stmt_id)); /* newest win */
	c->rs.st = c->eofm == EOFM_DEPRECATED ? RS_ROWS : RS_DEFS_EOF;
}

/* The end of a result (OK / EOF terminator): more results may follow. */
static void result_end(struct my_conn *c, uint16_t status)
{
	c->rs.first_set_done = true;
	if (status & SERVER_MORE_RESULTS)
		c->rs.st = RS_FIRST;
	else
		c->rs.finish = true;
}

static void first_packet(struct my_conn *c, const uint8_t *h, size_t hn, uint32_t len)
{
	struct my_resp *rs = &c->rs;
	uint8_t b0 = hn ? h[0] : 0;
	uint8_t cmd = rs->req.cmd;

	if (hn == 0) {
		rs->finish = true;
		return;
	}
	if (b0 == 0xff) {
		err_packet(c, h, hn);
		rs->finish = true;
		return;
	}
	if (b0 == 0x00 && cmd == COM_STMT_PREPARE && len >= 12) {
		struct cursor cu;

		cur_init(&cu, h, hn);
		cur_skip(&cu, 1);
		rs->prep_id = cur_le32(&cu);
		rs->prep_ncols = cur_le16(&cu);
		rs->prep_nparams = cur_le16(&cu);
		rs->num_fields = rs->prep_ncols;
		rs->first_set_done = true; /* the definitions are not a result */
		rs->types_ok = true;       /* column types are remembered for EXECUTE */
		if (rs->prep_nparams) {
			rs->st = RS_PREP_PARAMS;
			rs->ndefs = rs->prep_nparams;
		} else if (rs->prep_ncols) {
			rs->st = RS_PREP_COLS;
			rs->ndefs = rs->prep_ncols;
			rs->prep_ncols = 0;
		} else {
			rs->finish = true;
		}
		return;
	}
	if (b0 == 0x00 || (b0 == 0xfe && cmd != COM_FIELD_LIST)) {
		result_end(c, ok_packet(c, h, hn, true));
		return;
	}
	if (b0 == 0xfb && cmd == COM_QUERY) { /* LOCAL INFILE request: the client sends data */
		rs->st = RS_UNTIL_OK;
		return;
	}
	if (cmd == COM_CHANGE_USER && (b0 == 0xfe || b0 == 0x01)) {
		rs->st = RS_UNTIL_OK;
		return;
	}
	if (cmd == COM_FIELD_LIST) {
		rs->st = RS_FIELD_LIST;
		return;
	}
	if (cmd == COM_QUERY || cmd == COM_STMT_EXECUTE || cmd == COM_STMT_BULK_EXECUTE) {
		struct cursor cu;
		uint64_t n;

		cur_init(&cu, h, hn);
		n = cur_lenenc(&cu);
		if (cu.err || n == 0) {
			rs->finish = true;
			return;
		}
		rs->binary = cmd != COM_QUERY;
		if (!rs->first_set_done) {
			rs->num_fields = n;
			rs->ntypes = 0;
			rs->defs_named = 0;
			rs->types_ok = true;
		}
		/* MariaDB metadata caching (MARIADB_CLIENT_CACHE_METADATA): one more byte
		 * says whether definitions follow; without them the EOF (classic) or the
		 * rows come next. The statement's remembered metadata (PREPARE response or
		 * the last EXECUTE result with definitions) then gives path and the types
		 * of the binary rows; without it rows are counted, not rendered. */
		if (len == cu.off + 1 && cur_u8(&cu) == 0) {
			rs->types_ok = false;
			if (cmd == COM_STMT_EXECUTE && !rs->first_set_done)
				stmt_recall_cols(c, n);
			rs->st = c->eofm == EOFM_DEPRECATED ? RS_ROWS : RS_DEFS_EOF;
			return;
		}
		rs->ndefs = n;
		rs->st = RS_DEFS;
		return;
	}
	if (cmd == COM_STMT_FETCH) {
		rs->binary = true;
		rs->types_ok = false;
		rs->st = RS_ROWS;
		rs->first_set_done = true;
		if (is_eof(b0, len))
			result_end(c, terminator(c, h, hn, len));
		else
			rs->num_rows++;
		return;
	}
	rs->finish = true; /* STATISTICS string, or anything else: one packet */
}

/* Is the row arriving now rendered into `response` (else it is only counted)? */
static bool row_renders(const struct my_conn *c)
{
	return !c->rs.first_set_done && c->send_response && c->rs.rendered < c->max_rows &&
	       !c->rs.csv_full;
}

/* A parameter or column definition of a PREPARE response (RS_PREP_PARAMS/COLS). */
static void prep_def(struct my_conn *c, const uint8_t *h, size_t hn)
{
	struct my_resp *rs = &c->rs;

	if (hn && h[0] == 0xff) {
		err_packet(c, h, hn);
		rs->finish = true;
		return;
	}
	if (rs->st == RS_PREP_COLS)
		column_def(c, h, hn); /* remembered for the EXECUTEs */
	if (--rs->ndefs)
		return;
	rs->st = RS_PREP_EOF;
	if (c->eofm == EOFM_DEPRECATED && rs->prep_ncols) {
		rs->st = RS_PREP_COLS;
		rs->ndefs = rs->prep_ncols;
		rs->prep_ncols = 0;
	} else if (c->eofm == EOFM_DEPRECATED) {
		rs->finish = true;
	} else if (c->eofm == EOFM_UNKNOWN && !rs->prep_ncols) {
		/* an EOF may or may not follow: finish now, accept it later */
		rs->finish = true;
		c->opt_eof = true;
		c->opt_eof_seq = rs->next_seq;
	}
}

/* Head of a server packet that is part of the current response. */
static void response_packet(struct my_conn *c, const uint8_t *h, size_t hn, uint32_t len)
{
	struct my_resp *rs = &c->rs;
	uint8_t b0 = hn ? h[0] : 0;

	switch (rs->st) {
	case RS_FIRST:
		first_packet(c, h, hn, len);
		return;
	case RS_DEFS:
		if (b0 == 0xff) {
			err_packet(c, h, hn);
			rs->finish = true;
			return;
		}
		column_def(c, h, hn);
		if (--rs->ndefs == 0)
			defs_done(c);
		return;
	case RS_DEFS_EOF:
		rs->st = RS_ROWS;
		if (b0 == 0xfe && len <= 5) { /* EOF after the definitions: classic */
			c->eofm = EOFM_CLASSIC;
			return;
		}
		if (c->eofm == EOFM_UNKNOWN) /* a row or an OK terminator: no EOF */
			c->eofm = EOFM_DEPRECATED;
		/* fall through: no EOF, this is already a row or the terminator */
		/* FALLTHROUGH */
	case RS_ROWS:
		/* 0xfe starts a text row only for a value of 16 MiB or more, and never a
		 * binary row (0x00): a shorter 0xfe packet is the EOF / OK terminator */
		if (b0 == 0xfe && len < MY_MAX_PAYLOAD) {
			result_end(c, terminator(c, h, hn, len));
			return;
		}
		if (b0 == 0xff) {
			uint16_t code = hn >= 3 ? (uint16_t)(h[1] | h[2] << 8) : 0;

			if (code == 0xffff) /* MariaDB progress report */
				return;
			err_packet(c, h, hn);
			rs->finish = true;
			return;
		}
		if (row_renders(c)) {
			rs->rendered++;
			if (rs->binary)
				binary_row(c, h, hn);
			else
				text_row(c, h, hn);
		}
		rs->num_rows++;
		return;
	case RS_PREP_PARAMS:
	case RS_PREP_COLS:
		prep_def(c, h, hn);
		return;
	case RS_PREP_EOF:
		if (is_eof(b0, len)) {
			c->eofm = EOFM_CLASSIC;
			if (rs->prep_ncols) {
				rs->st = RS_PREP_COLS;
				rs->ndefs = rs->prep_ncols;
				rs->prep_ncols = 0;
			} else {
				rs->finish = true;
			}
			return;
		}
		/* no EOF (DEPRECATE_EOF): this is the first column definition */
		c->eofm = EOFM_DEPRECATED;
		if (!rs->prep_ncols) {
			rs->finish = true; /* nothing more was announced */
			return;
		}
		rs->st = RS_PREP_COLS;
		rs->ndefs = rs->prep_ncols;
		rs->prep_ncols = 0;
		prep_def(c, h, hn);
		return;
	case RS_UNTIL_OK:
		if (b0 == 0x00) {
			result_end(c, ok_packet(c, h, hn, true));
		} else if (b0 == 0xff) {
			err_packet(c, h, hn);
			rs->finish = true;
		}
		return;
	case RS_FIELD_LIST:
		if (b0 == 0xff) {
			err_packet(c, h, hn);
			rs->finish = true;
		} else if (is_eof(b0, len)) {
			rs->finish = true;
		}
		return;
	}
}

/* ---- packet dispatch ---------------------------------------------------------------- */

enum { PK_OK = 0, PK_SKIP_ALL = 1 };

/* The head of a new logical packet from the server. */
static int server_packet(struct my_conn *c, uint8_t seq, uint32_t len, const uint8_t *h, size_t hn,
			 struct proto_ctx *ctx)
{
	struct my_dir *d = &c->dir[DIR_TO_CLIENT];
	uint8_t b0 = hn ? h[0] : 0;

	if (c->phase == PH_UNKNOWN && !d->synced && seq == 0 && hn && (b0 == 10 || b0 == 0xff)) {
		d->synced = true;
		if (b0 == 10)
			greeting(c, h, hn);
		return PK_OK;
	}
	if (c->phase == PH_GREETED)
		return PK_OK; /* another server packet before the handshake response: ignore */
	if (c->phase == PH_AUTH) {
		/* auth switch (0xfe), more data (0x01) until OK / ERR */
		if (b0 == 0x00 || b0 == 0xff)
			c->phase = PH_CMD;
		return PK_OK;
	}
	if (c->opt_eof && !c->rs.active) {
		c->opt_eof = false;
		if (seq == c->opt_eof_seq && is_eof(b0, len)) {
			c->eofm = EOFM_CLASSIC;
			return PK_OK; /* the trailing EOF of a PREPARE response */
		}
	}
	if (!c->rs.active) {
		if (!d->synced && !c->ring_len)
			return PK_SKIP_ALL; /* the tail of something we did not see */
		d->synced = true;
		resp_begin(c, seq, ctx);
	} else {
		seq_check(c, seq);
	}
	response_packet(c, h, hn, len);
	return PK_OK;
}

/* The head of a new logical packet from the client. */
static int client_packet(struct my_conn *c, uint8_t seq, uint32_t len, const uint8_t *h, size_t hn,
			 struct proto_ctx *ctx)
{
	struct my_dir *d = &c->dir[DIR_TO_SERVER];

	if (c->phase == PH_GREETED && seq == 1) {
		d->synced = true;
		handshake_response(c, h, hn, len);
		return c->phase == PH_IGNORED ? PK_SKIP_ALL : PK_OK;
	}
	if (c->phase == PH_AUTH)
		return PK_OK; /* auth data: skipped */
	if (!d->synced && hn == 0 && len)
		return PK_SKIP_ALL;
	if (!d->synced && looks_compressed(h, hn, len)) {
		go_ignored(c, c->m_compressed);
		return PK_SKIP_ALL;
	}
	if (seq != 0 || hn == 0 || !cmd_name(h[0])) {
		/* synced: LOCAL INFILE data, CHANGE_USER auth data (skipped); else no boundary */
		return d->synced ? PK_OK : PK_SKIP_ALL;
	}
	if (!d->synced && h[0] == COM_SLEEP)
		return PK_SKIP_ALL; /* never sent by clients: not a packet boundary */
	d->synced = true;
	if (c->phase == PH_UNKNOWN || c->phase == PH_GREETED)
		c->phase = PH_CMD;
	return command_start(c, h, hn, len, seq, ctx);
}

/* The logical packet in `dir` is complete. Inlined in the packet loop: most packets
 * complete neither a request nor a response. */
static inline void packet_done(struct my_conn *c, enum proto_dir dir, struct proto_ctx *ctx)
{
	c->dir[dir].stream_query = false;
	c->dir[dir].ts_set = false;
	if (dir == DIR_TO_SERVER) {
		if (c->building)
			request_done(c, ctx);
	} else if (c->rs.active && c->rs.finish) {
		resp_finish(c, ctx, NULL);
	}
}

/* Bytes consumed in `dir` that belong to the current request / response. */
static void count_bytes(struct my_conn *c, enum proto_dir dir, size_t n)
{
	if (dir == DIR_TO_SERVER) {
		if (c->building)
			c->req_bytes += n;
	} else if (c->rs.active) {
		c->rs.bytes += n;
	}
}

/* Head bytes wanted for a new packet whose first payload byte is b0 (have_b0). An
 * unsynced direction decides from the header and the first byte whether this can be a
 * packet boundary at all, so junk never makes it wait for a large head. */
static size_t want_head(const struct my_conn *c, enum proto_dir dir, uint32_t len, uint8_t seq,
			bool have_b0, uint8_t b0)
{
	size_t full = len < c->max_head ? len : c->max_head;
	const struct my_dir *d = &c->dir[dir];

	if (!d->synced && len > 0 && c->phase != PH_GREETED) {
		if (dir == DIR_TO_CLIENT) {
			if (c->ring_len)
				return full; /* the response to a command we parsed */
			if (seq != 0 || c->phase != PH_UNKNOWN || c->dir[DIR_TO_SERVER].synced)
				return 0;
			if (len < 8 || len > 1024)
				return 0; /* greetings (or a refusing ERR) are short */
			if (!have_b0)
				return 1;
			return b0 == 10 || b0 == 0xff ? full : 0;
		}
		if (seq != 0)
			return 0;
		if (!have_b0)
			return 1;
		if (!cmd_name(b0) || b0 == COM_SLEEP)
			return len < 8 ? len : 8; /* enough to recognise a compressed packet */
	}

	if (dir == DIR_TO_CLIENT && c->rs.active && c->rs.st == RS_ROWS && len > 0) {
		if (!have_b0)
			return 1;
		if (b0 != 0xfe && b0 != 0xff &&
		    (c->rs.first_set_done || !c->send_response || c->rs.rendered >= c->max_rows))
			return 1; /* a row that is only counted */
	}
	return full;
}

/* Unsynced, junk was skipped in this same segment (same packet time): a piece that
 * would make us wait is the junk's tail, not a packet start (packets of an unsynced
 * direction are taken to start at a segment). */
static bool junk_tail(const struct my_conn *c, const struct my_dir *d, const struct proto_ctx *ctx)
{
	return !d->synced && d->skipped && d->skip_ts == ctx->ts && c->phase != PH_GREETED;
}

/* The packets of the active response that are whole in p[0..n) and fit a head (the
 * body of a result set, mostly), from a synced server in the command phase: what the
 * packet loop, server_packet() and want_head() would do for them, in fewer steps.
 * (The server direction's msg_ts only dates a response's first packet: not kept.)
 * Returns the bytes consumed. */
static size_t response_run(struct my_conn *c, const uint8_t *p, size_t n, struct proto_ctx *ctx)
{
	struct my_dir *d = &c->dir[DIR_TO_CLIENT];
	size_t off = 0;

	while (c->rs.active && n - off >= MY_HDR) {
		uint32_t plen =
		    (uint32_t)p[off] | (uint32_t)p[off + 1] << 8 | (uint32_t)p[off + 2] << 16;
		uint8_t seq = p[off + 3];

		if (plen > c->max_head || plen == MY_MAX_PAYLOAD || n - off - MY_HDR < plen)
			break;
		seq_check(c, seq);
		if (c->rs.st == RS_ROWS && plen && p[off + MY_HDR] != 0xfe &&
		    p[off + MY_HDR] != 0xff && !row_renders(c))
			c->rs.num_rows++; /* a row only counted: all response_packet() does */
		else
			response_packet(c, p + off + MY_HDR, plen, plen);
		d->seq = seq;
		d->cont = false;
		d->pkt_left = 0;
		c->rs.bytes += MY_HDR + plen;
		off += MY_HDR + plen;
		packet_done(c, DIR_TO_CLIENT, ctx);
	}
	return off;
}

static struct parse_result mysql_parse(void *conn, enum proto_dir dir, const uint8_t *data,
				       size_t len, struct proto_ctx *ctx)
{
	struct my_conn *c = conn;
	struct my_dir *d = &c->dir[dir];
	struct parse_result r = {PARSE_OK, 0, 0};
	size_t off = 0;

	if (c->phase == PH_IGNORED) {
		r.consumed = len;
		return r;
	}
	while (off < len) {
		size_t avail = len - off;
		uint32_t plen;
		uint8_t seq;
		size_t head;
		int rc;

		if (d->in_pkt) {
			size_t n = avail < d->pkt_left ? avail : d->pkt_left;

			if (d->stream_query)
				q_append(c, data + off, n);
			count_bytes(c, dir, n);
			off += n;
			d->pkt_left -= (uint32_t)n;
			if (d->pkt_left)
				break;
			d->in_pkt = false;
			if (d->cont)
				d->want_cont = true;
			else
				packet_done(c, dir, ctx);
			if (c->phase == PH_IGNORED) {
				off = len;
				break;
			}
			continue;
		}
		if (dir == DIR_TO_CLIENT && c->rs.active && d->synced && !d->want_cont &&
		    (c->phase == PH_CMD || c->phase == PH_UNKNOWN)) {
			size_t n = response_run(c, data + off, len - off, ctx);

			if (n) {
				off += n;
				continue;
			}
		}
		if (!d->ts_set) {
			d->msg_ts = ctx->ts;
			d->ts_set = true;
		}
		if (avail < MY_HDR) {
			if (junk_tail(c, d, ctx))
				goto skip_all;
			r.status = PARSE_NEED_MORE;
			r.needed = MY_HDR - avail;
			break;
		}
		plen = (uint32_t)data[off] | (uint32_t)data[off + 1] << 8 |
		       (uint32_t)data[off + 2] << 16;
		seq = data[off + 3];
		if (d->want_cont) {
			/* the next piece of a payload of 16 MiB or more */
			d->want_cont = false;
			d->in_pkt = true;
			d->cont = plen == MY_MAX_PAYLOAD;
			d->pkt_left = plen;
			if (dir == DIR_TO_CLIENT && c->rs.active)
				seq_check(c, seq);
			if (dir == DIR_TO_SERVER && c->building)
				c->cur.seq = seq; /* the response follows the last piece */
			count_bytes(c, dir, MY_HDR);
			off += MY_HDR;
			if (!plen) {
				d->in_pkt = false;
				if (!d->cont)
					packet_done(c, dir, ctx);
			}
			continue;
		}
		head = want_head(c, dir, plen, seq, avail > MY_HDR,
				 avail > MY_HDR ? data[off + 4] : 0);
		if (avail - MY_HDR < head) {
			if (junk_tail(c, d, ctx))
				goto skip_all;
			r.status = PARSE_NEED_MORE;
			r.needed = head - (avail - MY_HDR);
			break;
		}
		if (dir == DIR_TO_CLIENT)
			rc = server_packet(c, seq, plen, data + off + MY_HDR, head, ctx);
		else
			rc = client_packet(c, seq, plen, data + off + MY_HDR, head, ctx);
		if (rc == PK_SKIP_ALL)
			goto skip_all;
		d->seq = seq;
		if (dir == DIR_TO_SERVER && c->building)
			c->cur.seq = seq;
		count_bytes(c, dir, MY_HDR + head);
		off += MY_HDR + head;
		d->cont = plen == MY_MAX_PAYLOAD;
		d->pkt_left = plen - (uint32_t)head;
		d->in_pkt = d->pkt_left > 0;
		if (!d->in_pkt) {
			if (d->cont)
				d->want_cont = true;
			else
				packet_done(c, dir, ctx);
		}
		if (c->phase == PH_IGNORED) {
			off = len;
			break;
		}
	}
	r.consumed = off;
	if (r.status == PARSE_NEED_MORE && r.needed == 0)
		r.needed = 1;
	return r;
skip_all:
	/* not at a packet boundary: drop the rest of this segment */
	if (c->phase != PH_IGNORED)
		metric_add(c->m_resync, len - off);
	d->skipped = true;
	d->skip_ts = ctx->ts;
	d->ts_set = false;
	r.status = PARSE_OK;
	r.consumed = len;
	return r;
}

/* ---- proto_ops ------------------------------------------------------------------------- */

static void *mysql_conn_new(const struct conn_info *info)
{
	const struct cfg_proto *cfg = info ? info->cfg : NULL;
	struct my_conn *c = hb_calloc(1, sizeof(*c));
	size_t pend;

	if (!c)
		return NULL;
	c->mc = cfg && cfg->priv ? cfg->priv : &mysql_defaults;
	c->max_msg = cfg && cfg->max_message_size ? cfg->max_message_size : MY_DEF_MAX_MESSAGE;
	c->max_query = c->mc->max_query_bytes ? c->mc->max_query_bytes : MY_DEF_MAX_QUERY;
	c->max_head = c->mc->max_packet_head ? c->mc->max_packet_head : MY_DEF_MAX_HEAD;
	c->max_row_len = c->mc->max_row_length ? c->mc->max_row_length : MY_DEF_MAX_ROW_LENGTH;
	c->max_rows = c->mc->max_rows;
	c->nstmts_cap = c->mc->max_statements ? c->mc->max_statements : MY_DEF_MAX_STATEMENTS;
	c->timeout = cfg && cfg->transaction_timeout ? cfg->transaction_timeout : MY_DEF_TIMEOUT;
	c->send_request = cfg && cfg->send_request;
	c->send_response = cfg && cfg->send_response;
	pend = cfg && cfg->max_pending ? cfg->max_pending : MY_DEF_MAX_PENDING;
	c->ring_cap = pend < MY_MAX_RING ? pend : MY_MAX_RING;
	/* entries are written by ring_push() before anything reads them: not cleared */
	c->ring = hb_malloc(c->ring_cap * sizeof(*c->ring));
	if (!c->ring) {
		hb_free(c);
		return NULL;
	}
	strbuf_init(&c->q);
	strbuf_init(&c->csv);
	strbuf_init(&c->path);
	c->m_tls = metrics_counter("mysql.tls_sessions");
	c->m_compressed = metrics_counter("mysql.compressed_sessions");
	c->m_seq = metrics_counter("mysql.seq_mismatches");
	c->m_resync = metrics_counter("mysql.resync_skipped_bytes");
	c->m_evicted = metrics_counter("mysql.statements_evicted");
	c->m_ignored = metrics_counter("mysql.replication_sessions");
	return c;
}

static int mysql_gap(void *conn, enum proto_dir dir, size_t n, struct proto_ctx *ctx)
{
	struct my_conn *c = conn;
	struct my_dir *d = &c->dir[dir];

	if (c->phase == PH_IGNORED)
		return 0;
	if (d->in_pkt && n <= d->pkt_left) {
		/* inside a payload we were skipping or streaming: the framing holds */
		count_bytes(c, dir, n);
		d->pkt_left -= (uint32_t)n;
		if (dir == DIR_TO_SERVER && c->building)
			c->q_gap = true;
		if (dir == DIR_TO_CLIENT && c->rs.active)
			c->rs.gap_lost = true;
		if (d->pkt_left == 0) {
			d->in_pkt = false;
			if (d->cont)
				d->want_cont = true;
			else
				packet_done(c, dir, ctx);
		}
		return 0;
	}
	/* the framing is lost: publish what the response has so far (Packetbeat does the
	 * same inside result sets), then let the stream layer resync */
	if (dir == DIR_TO_CLIENT && c->rs.active) {
		c->rs.gap_lost = true;
		resp_finish(c, ctx, NULL);
	}
	return -1;
}

static void mysql_expire(void *conn, struct proto_ctx *ctx)
{
	struct my_conn *c = conn;
	struct my_req r;

	if (c->rs.active)
		resp_finish(c, ctx, "Response incomplete");
	if (c->building) {
		c->building = false;
		if (c->cur.ev)
			txn_publish_unmatched(ctx, c->cur.ev, "Unmatched request", true);
		c->cur.ev = NULL;
	}
	while (ring_pop(c, &r))
		if (r.ev)
			txn_publish_unmatched(ctx, r.ev, "Unmatched request", true);
	c->opt_eof = false;
	for (int i = 0; i < 2; i++) {
		c->dir[i].in_pkt = c->dir[i].want_cont = c->dir[i].stream_query = false;
		c->dir[i].ts_set = false;
	}
}

static void mysql_conn_free(void *conn)
{
	struct my_conn *c = conn;
	struct my_req r;

	if (!c)
		return;
	ev_pool_put(c->rs.req.ev);
	ev_pool_put(c->cur.ev);
	while (ring_pop(c, &r))
		ev_pool_put(r.ev);
	for (size_t i = 0; c->stmts && i < c->nstmts_cap; i++)
		stmt_clear(&c->stmts[i]);
	hb_free(c->stmts);
	hb_free(c->ring);
	strbuf_free(&c->q);
	strbuf_free(&c->csv);
	strbuf_free(&c->path);
	hb_free(c);
}

const struct proto_ops mysql_proto = {
    .name = "mysql",
    .transports = PROTO_TCP,
    .default_ports = mysql_ports,
    .ndefault_ports = sizeof(mysql_ports) / sizeof(mysql_ports[0]),
    .config = mysql_config_fields,
    .nconfig = sizeof(mysql_config_fields) / sizeof(mysql_config_fields[0]),
    .config_size = sizeof(struct mysql_config),
    .conn_new = mysql_conn_new,
    .parse = mysql_parse,
    .gap = mysql_gap,
    .expire = mysql_expire,
    .conn_free = mysql_conn_free,
};
