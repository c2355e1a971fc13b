/* redis.c — Redis command/reply transactions over TCP (Packetbeat's "redis").
 *
 * Spec: RESP2 and RESP3, https://redis.io/docs/reference/protocol-spec/ (and the
 * RESP3 spec, https://github.com/antirez/RESP3/blob/master/spec.md); inline
 * commands and pub/sub as implemented by redis-server 7 (networking.c, pubsub.c).
 * Event fields follow Packetbeat 8 protos/redis (docs/reference/packetbeat.md §1.6,
 * §2.3, §2.4; ecosystem.md §1.2).
 *
 *   value     = type-byte payload CRLF [ body ]
 *   scalars   "+" text   "-" error   ":" int   "_" (null)   "#" t|f   "," double
 *             "(" big-number
 *   blobs     "$" len CRLF bytes CRLF  ("$-1" = null)   "!" bulk error   "=" verbatim
 *             ("txt:" 4-byte format prefix, then the text)
 *   aggregates "*" n (array, "*-1" = null)  "~" n (set)  ">" n (push)  "%" n (map:
 *             n key/value pairs)  "|" n (attribute: n pairs of metadata that precede
 *             the value they describe; not a value itself)
 *   request   = "*" n CRLF n x ( "$" len CRLF arg CRLF )   or an inline line
 *             "set a b" CRLF (a client line not starting with '*', as redis-server
 *             decides it)
 *
 * Rendering (Packetbeat's redis_parse.go): simple/bulk strings as they are, integers,
 * doubles and big numbers as their text, null bulk/array "nil", arrays/sets/pushes
 * "[a, b, [c, d]]", empty "[]"; a request's top-level words joined by one space
 * ("set key3 me"). RESP3 additions: maps "{k: v, k2: v2}", booleans "true"/"false",
 * null "nil", verbatim strings without their format prefix, attributes not shown.
 * Errors ("-" or "!") at the top level make the transaction status Error with
 * redis.error = the text.
 *
 * Streaming: type lines are parsed only when complete (PARSE_NEED_MORE with the line
 * left unconsumed; `scan` remembers how far it was searched, so byte-by-byte delivery
 * stays linear). Blob payloads are consumed as they arrive; only the first
 * `txt_cap` bytes of the rendered text are kept (max_return_value / max_query, or
 * max_message_size for send_request/send_response). Aggregates are a stack of
 * frames (depth capped); element counts are counters, never allocation sizes.
 *
 * Transactions: a finished command waits in a txn_fifo (cap max_pending) with a
 * small parallel record (command kind, argument count); the next reply completes
 * the oldest. The order of outstanding replies is kept exact even when events are
 * missing:
 *     [skip_head: requests already published as timed out]
 *     [fifo: pending request events]
 *     [lost_tail: requests that got no event (pending cap, pool exhausted)]
 * A reply to a timed-out request is published as an unmatched response; a reply
 * to a lost request is consumed silently (counted as redis.lost_requests when the
 * request was lost).
 *
 * Out-of-band server messages are not paired (counted in redis.pushes): RESP3
 * pushes (">"), and in RESP2 subscriber mode the "message"/"pmessage"/"smessage"
 * arrays. (S|P)SUBSCRIBE/(S|P)UNSUBSCRIBE send one confirmation per channel: the
 * first completes the command, the others are counted as pushes. After MONITOR's
 * +OK the server streams "+<timestamp> [db addr] ..." lines: counted in
 * redis.monitor_lines. HELLO 3 needs no switch: every RESP3 type is always accepted.
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
extern const struct proto_ops redis_proto;

#define REDIS_DEF_MAX_RETURN 1024
#define REDIS_DEF_MAX_QUERY 1024
#define REDIS_DEF_MAX_LINE 65536 /* redis-server's PROTO_INLINE_MAX_SIZE */
#define REDIS_DEF_MAX_DEPTH 16
#define REDIS_MAX_DEPTH_CAP 64 /* frames per direction (fixed array) */
#define REDIS_DEF_MAX_ELEMENTS (1u << 20)
#define REDIS_DEF_MAX_BULK (512ull << 20) /* redis-server's proto-max-bulk-len */
#define REDIS_DEF_MAX_MESSAGE (10u << 20)
#define REDIS_DEF_MAX_PENDING 64
#define REDIS_DEF_TIMEOUT (10ull * 1000000000ull)
#define REDIS_METHOD_MAX 64         /* bytes of an upper-cased command name kept */
#define REDIS_KEEP_BUF (64u << 10)  /* text buffers above this are freed after use */
#define REDIS_WORDS 3               /* top-level elements whose text is located */
#define REDIS_ABSORB_ANY UINT64_MAX /* UNSUBSCRIBE without channels: unknown count */

/* Private configuration (cfg_proto.priv), filled from redis_config_fields. */
struct redis_config {
	uint64_t max_return_value;
	uint64_t max_query;
	uint64_t max_line_bytes;
	uint64_t max_depth;
	uint64_t max_elements;
	uint64_t max_bulk_bytes;
	uint64_t queue_max_bytes;    /* Packetbeat option, accepted (see max_pending) */
	uint64_t queue_max_messages; /* Packetbeat option, accepted (see max_pending) */
};

static const struct cfg_field redis_config_fields[] = {
    {"max_return_value", CFG_SIZE, offsetof(struct redis_config, max_return_value), "1024",
     "bytes of redis.return_value / redis.error kept", 16, 1 << 30},
    {"max_query", CFG_SIZE, offsetof(struct redis_config, max_query), "1024",
     "bytes of query (the command words) kept", 64, 1 << 30},
    {"max_line_bytes", CFG_SIZE, offsetof(struct redis_config, max_line_bytes), "65536",
     "longest type line, simple string, error or inline command", 64, 64 << 20},
    {"max_depth", CFG_UINT, offsetof(struct redis_config, max_depth), "16",
     "deepest nesting of arrays/maps/sets/attributes", 1, REDIS_MAX_DEPTH_CAP},
    {"max_elements", CFG_UINT, offsetof(struct redis_config, max_elements), "1048576",
     "most elements announced by one array/set/push (map: pairs)", 1, 1ll << 31},
    {"max_bulk_bytes", CFG_SIZE, offsetof(struct redis_config, max_bulk_bytes), "512MiB",
     "largest bulk string length accepted", 64, 1ll << 40},
    {"queue_max_bytes", CFG_SIZE, offsetof(struct redis_config, queue_max_bytes), "1MiB",
     "accepted for Packetbeat compatibility; pending requests are capped by max_pending", 0, 0},
    {"queue_max_messages", CFG_UINT, offsetof(struct redis_config, queue_max_messages), "20000",
     "accepted for Packetbeat compatibility; see max_pending", 0, 0},
};

static const struct redis_config redis_defaults = {
    .max_return_value = REDIS_DEF_MAX_RETURN,
    .max_query = REDIS_DEF_MAX_QUERY,
    .max_line_bytes = REDIS_DEF_MAX_LINE,
    .max_depth = REDIS_DEF_MAX_DEPTH,
    .max_elements = REDIS_DEF_MAX_ELEMENTS,
    .max_bulk_bytes = REDIS_DEF_MAX_BULK,
};

static const uint16_t redis_ports[] = {6379};

/* Commands whose handling differs (recorded per pending request). */
enum redis_cmd {
	CMD_OTHER,
	CMD_SUBSCRIBE,
	CMD_PSUBSCRIBE,
	CMD_SSUBSCRIBE,
	CMD_UNSUBSCRIBE,
	CMD_PUNSUBSCRIBE,
	CMD_SUNSUBSCRIBE,
	CMD_MONITOR,
	CMD_RESET,
};

/* A command name in upper case with its length: every request is looked up in the
 * tables below, which are sorted by length (a lookup stops at the first longer name). */
struct redis_name {
	const char *s;
	uint8_t len;
	uint8_t kind; /* enum redis_cmd */
};

/* s, its length: the first two members of a struct redis_name initializer */
#define REDIS_NAME(s) s, sizeof(s) - 1

/* Commands handled apart (pub/sub confirmations are these names in lower case). */
static const struct redis_name special_cmds[] = {
    {REDIS_NAME("RESET"), CMD_RESET},
    {REDIS_NAME("MONITOR"), CMD_MONITOR},
    {REDIS_NAME("SUBSCRIBE"), CMD_SUBSCRIBE},
    {REDIS_NAME("PSUBSCRIBE"), CMD_PSUBSCRIBE},
    {REDIS_NAME("SSUBSCRIBE"), CMD_SSUBSCRIBE},
    {REDIS_NAME("UNSUBSCRIBE"), CMD_UNSUBSCRIBE},
    {REDIS_NAME("PUNSUBSCRIBE"), CMD_PUNSUBSCRIBE},
    {REDIS_NAME("SUNSUBSCRIBE"), CMD_SUNSUBSCRIBE},
};

/* Container commands whose first argument is a subcommand: method = both words
 * ("CONFIG GET"), resource = the next word (Packetbeat knows CLIENT, CONFIG, DEBUG
 * and SCRIPT; the newer containers are added). */
static const struct redis_name two_word_cmds[] = {
    {REDIS_NAME("ACL"), CMD_OTHER},      {REDIS_NAME("DEBUG"), CMD_OTHER},
    {REDIS_NAME("XINFO"), CMD_OTHER},    {REDIS_NAME("CLIENT"), CMD_OTHER},
    {REDIS_NAME("CONFIG"), CMD_OTHER},   {REDIS_NAME("MEMORY"), CMD_OTHER},
    {REDIS_NAME("MODULE"), CMD_OTHER},   {REDIS_NAME("SCRIPT"), CMD_OTHER},
    {REDIS_NAME("XGROUP"), CMD_OTHER},   {REDIS_NAME("CLUSTER"), CMD_OTHER},
    {REDIS_NAME("COMMAND"), CMD_OTHER},  {REDIS_NAME("LATENCY"), CMD_OTHER},
    {REDIS_NAME("FUNCTION"), CMD_OTHER},
};

enum redis_state {
	RS_LINE,      /* expecting a type line (or an inline command) */
	RS_BULK,      /* `bulk_left` payload bytes of a blob to go */
	RS_CRLF,      /* the CR LF after a blob payload; `crlf_got` seen */
	RS_SKIP_LINE, /* unsynced: skipping the rest of an over-long junk line */
};

/* One open aggregate. */
struct redis_frame {
	uint64_t left; /* elements still to come (maps/attributes: 2 per pair) */
	uint64_t idx;  /* elements done */
	uint8_t type;  /* '*' '~' '>' '%' '|' */
	bool bare;     /* a request's top-level array: words joined by ' ', no brackets */
};

/* One direction's resume state. */
struct redis_dir {
	enum redis_state state;
	bool synced;   /* a message was parsed in this direction */
	bool in_msg;   /* inside a message (a type line was parsed) */
	bool ts_set;   /* msg_ts holds the time of the current message's first byte */
	bool gap_lost; /* bytes of a blob were lost */
	bool is_error; /* top-level "-" or "!" */
	bool is_push;  /* top-level ">" */
	bool empty;    /* request "*0" / "*-1": redis-server ignores it, no reply */
	bool verbatim; /* skip the 4-byte format prefix of the current "=" blob */
	uint8_t top_type;
	uint8_t crlf_got;
	unsigned depth;
	unsigned quiet; /* open attribute frames: nothing is rendered inside them */
	uint64_t msg_ts;
	uint64_t msg_bytes; /* wire bytes of the current message */
	uint64_t top_count; /* elements announced by the top-level aggregate */
	uint64_t bulk_left;
	uint64_t bulk_skip; /* verbatim prefix bytes still to skip */
	size_t scan;        /* bytes of the pending line already searched for LF */
	/* rendered text, capped at txt_cap; the first top-level words located in it */
	struct strbuf txt;
	size_t txt_cap;
	bool txt_cut; /* the cap cut the text */
	unsigned nwords;
	size_t w_start[REDIS_WORDS], w_end[REDIS_WORDS];
	/* Last, and not cleared by redis_conn_new(): a frame is written whole when it
	 * is pushed, before anything reads it (1.5 KiB a direction not to memset). */
	struct redis_frame stack[REDIS_MAX_DEPTH_CAP];
};

/* What the FIFO's requests are, in the same order. */
struct redis_pend {
	uint8_t cmd; /* enum redis_cmd */
	uint32_t nargs;
};

struct redis_conn {
	size_t max_rv, max_query, max_msg, max_line;
	unsigned max_depth;
	uint64_t max_elements, max_bulk;
	uint64_t timeout;
	bool send_request, send_response;
	struct txn_fifo fifo;
	struct redis_pend *ring; /* fifo.cap entries, parallel to fifo */
	size_t ring_head;
	uint64_t skip_head; /* replies owed to requests published as timed out */
	uint64_t lost_tail; /* replies owed to requests that got no event */
	bool pubsub;        /* RESP2 subscriber mode */
	bool monitor;       /* after MONITOR's +OK */
	uint8_t absorb_cmd; /* further confirmations of this command are pushes */
	uint64_t absorb_left;
	struct metric *m_pushes, *m_monitor, *m_resync, *m_lost;
	struct redis_dir dir[2]; /* last: see redis_dir.stack */
};

/* ---- small helpers -------------------------------------------------------------- */

static uint8_t uc(uint8_t ch)
{
	return ch >= 'a' && ch <= 'z' ? (uint8_t)(ch - 32) : ch;
}

static uint8_t lc(uint8_t ch)
{
	return ch >= 'A' && ch <= 'Z' ? (uint8_t)(ch + 32) : ch;
}

static bool mem_ieq(const char *a, size_t n, const char *z)
{
	if (strlen(z) != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (lc((uint8_t)a[i]) != lc((uint8_t)z[i]))
			return false;
	return true;
}

/* m[0..n) is the upper-case name z, ignoring case. */
static bool name_is(const char *m, size_t n, const struct redis_name *z)
{
	if (n != z->len)
		return false;
	for (size_t i = 0; i < n; i++)
		if (uc((uint8_t)m[i]) != (uint8_t)z->s[i])
			return false;
	return true;
}

/* The entry of tab[0..k) (sorted by length) named m[0..n) (any case), or NULL. */
static const struct redis_name *name_find(const struct redis_name *tab, size_t k, const char *m,
					  size_t n)
{
	for (size_t i = 0; i < k && tab[i].len <= n; i++)
		if (tab[i].len == n && name_is(m, n, &tab[i]))
			return &tab[i];
	return NULL;
}

/* Signed decimal "-1", "42"; no sign-only, no overflow past INT64_MAX. */
static inline bool parse_i64(const uint8_t *p, size_t n, int64_t *out)
{
	bool neg = false;
	int64_t v = 0;
	size_t i = 0;

	if (n && p[0] == '-') {
		neg = true;
		i = 1;
	}
	if (i == n)
		return false;
	if (n - i <= 18) { /* 18 digits cannot overflow: no check per digit */
		for (; i < n; i++) {
			if ((uint8_t)(p[i] - '0') > 9)
				return false;
			v = v * 10 + (p[i] - '0');
		}
	} else {
		for (; i < n; i++) {
			if ((uint8_t)(p[i] - '0') > 9)
				return false;
			if (v > (INT64_MAX - (p[i] - '0')) / 10)
				return false;
			v = v * 10 + (p[i] - '0');
		}
	}
	*out = neg ? -v : v;
	return true;
}

static bool is_resp_type(uint8_t ch)
{
	return ch && strchr("+-:$*_#,(!=%~|>", ch) != NULL;
}

/* ---- the rendered text ------------------------------------------------------------ */

static inline void txt_put(struct redis_dir *d, const void *p, size_t n)
{
	size_t room;

	if (d->quiet || n == 0)
		return;
	room = d->txt_cap > d->txt.len ? d->txt_cap - d->txt.len : 0;
	if (n > room) {
		d->txt_cut = true;
		n = room;
	}
	if (n)
		strbuf_append(&d->txt, p, n);
}

static void txt_puts(struct redis_dir *d, const char *s)
{
	txt_put(d, s, strlen(s));
}

static void dir_reset_msg(struct redis_dir *d)
{
	d->state = RS_LINE;
	d->in_msg = false;
	d->ts_set = false;
	d->gap_lost = false;
	d->is_error = false;
	d->is_push = false;
	d->empty = false;
	d->verbatim = false;
	d->top_type = 0;
	d->crlf_got = 0;
	d->depth = 0;
	d->quiet = 0;
	d->msg_bytes = 0;
	d->top_count = 0;
	d->bulk_left = 0;
	d->bulk_skip = 0;
	d->scan = 0;
	d->txt_cut = false;
	d->nwords = 0;
	if (d->txt.cap > REDIS_KEEP_BUF)
		strbuf_free(&d->txt);
	strbuf_reset(&d->txt);
}

/* Text of top-level word i (may be cut by the cap), or false when not seen. */
static bool word(const struct redis_dir *d, unsigned i, const char **p, size_t *n)
{
	if (i >= d->nwords || d->txt.err)
		return false;
	*p = d->txt.p ? d->txt.p + d->w_start[i] : "";
	*n = d->w_end[i] - d->w_start[i];
	return true;
}

/* ---- pending requests ------------------------------------------------------------- */

static void ring_push(struct redis_conn *c, struct redis_pend p)
{
	/* called right after a successful txn_fifo_push: fifo.len includes this one */
	c->ring[(c->ring_head + c->fifo.len - 1) % c->fifo.cap] = p;
}

static struct redis_pend ring_pop(struct redis_conn *c)
{
	struct redis_pend p = c->ring[c->ring_head];

	c->ring_head = (c->ring_head + 1) % c->fifo.cap;
	return p;
}

/* Requests older than the timeout are published as unmatched; their replies are
 * still owed (skip_head) so that later replies pair with the right request. */
static void expire_old(struct redis_conn *c, struct proto_ctx *ctx)
{
	size_t before = c->fifo.len;
	const struct event *head = c->fifo.head;

	/* the oldest request decides: nothing to do unless it has timed out */
	if (!head || !(ctx->ts > head->start_ns && ctx->ts - head->start_ns > c->timeout))
		return;
	txn_fifo_expire(&c->fifo, ctx, c->timeout, "Unmatched request");
	for (size_t i = c->fifo.len; i < before; i++) {
		ring_pop(c);
		c->skip_head++;
	}
}

static void flush_pending(struct redis_conn *c, struct proto_ctx *ctx)
{
	txn_fifo_flush(&c->fifo, ctx, "Unmatched request");
	c->ring_head = 0;
	c->skip_head = 0;
	c->lost_tail = 0;
	c->absorb_left = 0;
}

/* ---- finished messages -------------------------------------------------------------- */

static enum redis_cmd cmd_kind(const char *m, size_t n)
{
	const struct redis_name *k =
	    name_find(special_cmds, sizeof(special_cmds) / sizeof(special_cmds[0]), m, n);

	return k ? (enum redis_cmd)k->kind : CMD_OTHER;
}

static void request_done(struct redis_conn *c, struct redis_dir *d, struct proto_ctx *ctx)
{
	char method[REDIS_METHOD_MAX], action[REDIS_METHOD_MAX + 6];
	const char *w0 = "", *w1 = "", *res = NULL;
	size_t n0 = 0, n1 = 0, nres = 0, nm, mwords = 1;
	struct redis_pend pend = {CMD_OTHER, 0};
	struct event *ev;

	if (d->empty || !word(d, 0, &w0, &n0))
		return; /* "*0": no command, no reply */
	if (word(d, 1, &w1, &n1) &&
	    name_find(two_word_cmds, sizeof(two_word_cmds) / sizeof(two_word_cmds[0]), w0, n0))
		mwords = 2;
	/* method: the command word(s) upper-cased; they are adjacent in txt */
	nm = mwords == 2 ? (size_t)(w1 + n1 - w0) : n0;
	if (nm > REDIS_METHOD_MAX)
		nm = REDIS_METHOD_MAX;
	for (size_t i = 0; i < nm; i++)
		method[i] = (char)uc((uint8_t)w0[i]);
	memcpy(action, "redis.", 6);
	for (size_t i = 0; i < nm; i++)
		action[6 + i] = (char)lc((uint8_t)w0[i]);
	if (word(d, (unsigned)mwords, &res, &nres) == false)
		res = NULL;
	pend.cmd = (uint8_t)(mwords == 1 ? cmd_kind(w0, n0) : CMD_OTHER);
	pend.nargs = d->top_count > 1
			 ? (uint32_t)(d->top_count - 1 > UINT32_MAX ? UINT32_MAX : d->top_count - 1)
			 : 0;

	/* once a request had no place, later ones have none either: order is kept */
	if (c->lost_tail || c->fifo.len >= c->fifo.cap) {
		if (!c->lost_tail)
			metric_inc(ctx->stats->limit_exceeded);
		c->lost_tail++;
		metric_inc(c->m_lost);
		return;
	}
	ev = txn_new_event(ctx, &redis_proto);
	if (!ev) {
		c->lost_tail++;
		metric_inc(c->m_lost);
		return;
	}
	ev->ts = ev->start_ns = d->msg_ts;
	ev->client_bytes = d->msg_bytes;
	ev->has_client_bytes = true;
	ev_set_str(ev, "method", method, nm);
	if (res)
		ev_set_str(ev, "resource", res, nres);
	ev_set_str(ev, "query", d->txt.p ? d->txt.p : "",
		   d->txt.len < c->max_query ? d->txt.len : c->max_query);
	ev_set_str(ev, "event.action", action, 6 + nm);
	if (c->send_request)
		ev_set_str(ev, "request", d->txt.p ? d->txt.p : "",
			   d->txt.len < c->max_msg ? d->txt.len : c->max_msg);
	if (d->gap_lost)
		txn_add_note(ev, "Packet loss while capturing the request");
	txn_fifo_push(&c->fifo, ev);
	ring_push(c, pend);
}

/* Reply fields into ev (the transaction or a lone response). */
static void reply_fields(struct redis_conn *c, struct redis_dir *d, struct event *ev)
{
	const char *t = d->txt.p ? d->txt.p : "";
	size_t n = d->txt.len;

	ev->end_ns = d->msg_ts;
	ev->server_bytes = d->msg_bytes;
	ev->has_server_bytes = true;
	if (d->is_error) {
		ev->status = EV_STATUS_ERROR;
		ev_set_str(ev, "redis.error", t, n < c->max_rv ? n : c->max_rv);
		ev_set_strz(ev, "event.outcome", "failure");
	} else {
		ev_set_str(ev, "redis.return_value", t, n < c->max_rv ? n : c->max_rv);
	}
	if (c->send_response)
		ev_set_str(ev, "response", t, n < c->max_msg ? n : c->max_msg);
	if (d->gap_lost)
		txn_add_note(ev, "Packet loss while capturing the response");
}

static void publish_lone_reply(struct redis_conn *c, struct redis_dir *d, struct proto_ctx *ctx)
{
	struct event *ev = txn_new_event(ctx, &redis_proto);

	if (!ev)
		return;
	ev->ts = d->msg_ts;
	reply_fields(c, d, ev);
	txn_publish_unmatched(ctx, ev, "Unmatched response", false);
}

/* Pair a reply with the oldest outstanding request. */
static void pair_reply(struct redis_conn *c, struct redis_dir *d, struct proto_ctx *ctx)
{
	struct redis_pend pend;
	struct event *ev;

	c->absorb_left = 0;
	if (c->skip_head) {
		c->skip_head--;
		publish_lone_reply(c, d, ctx);
		return;
	}
	ev = txn_fifo_pop(&c->fifo);
	if (!ev) {
		if (c->lost_tail)
			c->lost_tail--; /* its request got no event: nothing to publish */
		else
			publish_lone_reply(c, d, ctx);
		return;
	}
	pend = ring_pop(c);
	reply_fields(c, d, ev);
	txn_publish(ctx, ev);
	if (pend.cmd == CMD_MONITOR && !d->is_error)
		c->monitor = true;
	if (pend.cmd == CMD_RESET && !d->is_error) {
		c->monitor = false;
		c->pubsub = false;
	}
	if (pend.cmd >= CMD_SUBSCRIBE && pend.cmd <= CMD_SUNSUBSCRIBE) {
		c->absorb_cmd = pend.cmd;
		if (pend.nargs)
			c->absorb_left = pend.nargs - 1;
		else
			c->absorb_left = pend.cmd >= CMD_UNSUBSCRIBE ? REDIS_ABSORB_ANY : 0;
	}
}

/* The pub/sub confirmation kind of a reply ("subscribe", ...), CMD_OTHER if none. */
static enum redis_cmd confirm_kind(const struct redis_dir *d)
{
	const char *w;
	size_t n;
	enum redis_cmd k;

	if ((d->top_type != '*' && d->top_type != '>') || d->top_count != 3 || !word(d, 0, &w, &n))
		return CMD_OTHER;
	k = cmd_kind(w, n);
	return k >= CMD_SUBSCRIBE && k <= CMD_SUNSUBSCRIBE ? k : CMD_OTHER;
}

/* A confirmation's count (3rd element) updates RESP2 subscriber mode. */
static void track_mode(struct redis_conn *c, const struct redis_dir *d, enum redis_cmd k)
{
	const char *w;
	size_t n;
	int64_t v;

	if (k <= CMD_SSUBSCRIBE)
		c->pubsub = true;
	else if (word(d, 2, &w, &n) && parse_i64((const uint8_t *)w, n, &v) && v == 0)
		c->pubsub = false;
}

/* "message"/"pmessage"/"smessage" with their arity. */
static bool is_pubsub_message(const struct redis_dir *d)
{
	const char *w;
	size_t n;

	if (d->top_type != '*' || !word(d, 0, &w, &n))
		return false;
	return ((mem_ieq(w, n, "message") || mem_ieq(w, n, "smessage")) && d->top_count == 3) ||
	       (mem_ieq(w, n, "pmessage") && d->top_count == 4);
}

static void reply_done(struct redis_conn *c, struct redis_dir *d, struct proto_ctx *ctx)
{
	enum redis_cmd k = confirm_kind(d);
	bool idle = !c->fifo.len && !c->skip_head && !c->lost_tail;

	if (k != CMD_OTHER) {
		bool head_match = !c->skip_head && c->fifo.len && c->ring[c->ring_head].cmd == k;

		if (c->absorb_left && c->absorb_cmd == k &&
		    !(c->absorb_left == REDIS_ABSORB_ANY && head_match)) {
			if (c->absorb_left != REDIS_ABSORB_ANY)
				c->absorb_left--;
			track_mode(c, d, k);
			metric_inc(c->m_pushes);
			return;
		}
		if (head_match) {
			track_mode(c, d, k);
			pair_reply(c, d, ctx);
			return;
		}
		if (d->is_push || c->pubsub || idle) {
			track_mode(c, d, k);
			metric_inc(c->m_pushes);
			return;
		}
	}
	if (d->is_push || ((c->pubsub || idle) && is_pubsub_message(d))) {
		metric_inc(c->m_pushes);
		return;
	}
	if (c->monitor && d->top_type == '+' && d->txt.len && d->txt.p[0] >= '0' &&
	    d->txt.p[0] <= '9') {
		metric_inc(c->m_monitor);
		return;
	}
	pair_reply(c, d, ctx);
}

static void message_done(struct redis_conn *c, enum proto_dir dir, struct proto_ctx *ctx)
{
	struct redis_dir *d = &c->dir[dir];

	metric_inc(ctx->stats->messages);
	d->synced = true;
	if (dir == DIR_TO_SERVER)
		request_done(c, d, ctx);
	else
		reply_done(c, d, ctx);
	dir_reset_msg(d);
}

/* ---- values ------------------------------------------------------------------------- */

/* The current value is complete: close finished aggregates, finish the message. */
static void value_done(struct redis_conn *c, enum proto_dir dir, struct proto_ctx *ctx)
{
	struct redis_dir *d = &c->dir[dir];

	for (;;) {
		struct redis_frame *f;

		if (d->depth == 0) {
			message_done(c, dir, ctx);
			return;
		}
		f = &d->stack[d->depth - 1];
		if (d->depth == 1 && f->idx < REDIS_WORDS && !d->quiet) {
			d->w_end[f->idx] = d->txt.len;
			d->nwords = (unsigned)f->idx + 1;
		}
		f->idx++;
		if (--f->left)
			return;
		d->depth--;
		if (f->type == '|') {
			d->quiet--; /* an attribute is not a value: its parent still waits */
			return;
		}
		if (!f->bare)
			txt_puts(d, f->type == '%' ? "}" : "]");
	}
}

/* Separator before an element of the innermost aggregate; locate top-level words. */
static inline void elem_start(struct redis_dir *d)
{
	struct redis_frame *f;

	if (d->depth == 0)
		return;
	f = &d->stack[d->depth - 1];
	if (f->idx > 0) {
		if (f->bare)
			txt_puts(d, " ");
		else if (f->type == '%')
			txt_puts(d, f->idx % 2 ? ": " : ", ");
		else
			txt_puts(d, ", ");
	}
	if (d->depth == 1 && f->idx < REDIS_WORDS && !d->quiet)
		d->w_start[f->idx] = d->txt.len;
}

enum line_result { LINE_OK, LINE_ERROR, LINE_LIMIT };

/* One complete type line (without CR LF) inside or at the start of a message. */
static enum line_result type_line(struct redis_conn *c, enum proto_dir dir, const uint8_t *p,
				  size_t n, struct proto_ctx *ctx)
{
	struct redis_dir *d = &c->dir[dir];
	uint8_t t = p[0];
	const uint8_t *body = p + 1;
	size_t bn = n - 1;
	int64_t v;

	if (d->depth == 0 && t != '|') {
		d->top_type = t;
		if (t == '-' || t == '!')
			d->is_error = true;
		if (t == '>')
			d->is_push = true;
	}
	switch (t) {
	case '+':
	case '-':
	case ':':
	case ',':
	case '(':
		elem_start(d);
		txt_put(d, body, bn);
		break;
	case '_':
		elem_start(d);
		txt_puts(d, "nil");
		break;
	case '#':
		elem_start(d);
		if (bn == 1 && (body[0] == 't' || body[0] == 'f'))
			txt_puts(d, body[0] == 't' ? "true" : "false");
		else
			txt_put(d, body, bn);
		break;
	case '$':
	case '!':
	case '=':
		if (!parse_i64(body, bn, &v) || v < -1 || (v == -1 && t != '$'))
			return LINE_ERROR;
		if ((uint64_t)v > c->max_bulk && v != -1)
			return LINE_LIMIT;
		elem_start(d);
		if (v == -1) {
			txt_puts(d, "nil");
			break;
		}
		d->bulk_left = (uint64_t)v;
		d->bulk_skip = t == '=' && v >= 4 ? 4 : 0;
		d->state = v ? RS_BULK : RS_CRLF;
		d->crlf_got = 0;
		return LINE_OK;
	case '*':
	case '~':
	case '>':
	case '%':
	case '|': {
		struct redis_frame *f;
		bool bare = dir == DIR_TO_SERVER && d->depth == 0 && t == '*';

		if (!parse_i64(body, bn, &v) || v < -1 || (v == -1 && t != '*'))
			return LINE_ERROR;
		if (v > 0 && (uint64_t)v > c->max_elements)
			return LINE_LIMIT;
		if (d->depth == 0 && t != '|')
			d->top_count = v > 0 ? (uint64_t)v : 0;
		if (t != '|')
			elem_start(d);
		if (v <= 0) {
			if (bare) {
				d->empty = true;
			} else if (t != '|') {
				txt_puts(d, v < 0 ? "nil" : t == '%' ? "{}" : "[]");
			} else {
				return LINE_OK; /* an empty attribute: still waiting for the value
						 */
			}
			break;
		}
		if (d->depth >= c->max_depth)
			return LINE_LIMIT;
		f = &d->stack[d->depth++];
		f->type = t;
		f->bare = bare;
		f->idx = 0;
		f->left = t == '%' || t == '|' ? 2 * (uint64_t)v : (uint64_t)v;
		if (t == '|')
			d->quiet++;
		else if (!bare)
			txt_puts(d, t == '%' ? "{" : "[");
		return LINE_OK;
	}
	default:
		return LINE_ERROR;
	}
	value_done(c, dir, ctx);
	return LINE_OK;
}

/* A whole "$len CR LF payload CR LF" element inside an aggregate (the arguments of
 * every command), all in `in`: what the type line, blob and CR LF steps would do, in
 * one. Returns false, nothing consumed, for anything else (the general path takes
 * it, limits and errors included). */
static bool bulk_whole(struct redis_conn *c, enum proto_dir dir, struct cursor *in,
		       struct proto_ctx *ctx)
{
	struct redis_dir *d = &c->dir[dir];
	const uint8_t *p = in->p + in->off;
	size_t left = cur_left(in), i = 1, v = 0;

	if (left < 4 || p[0] != '$')
		return false;
	while (i < left && i <= 18 && (uint8_t)(p[i] - '0') <= 9) /* 18 digits: no overflow */
		v = v * 10 + (size_t)(p[i++] - '0');
	if (i == 1 || left - i < 2 || p[i] != '\r' || p[i + 1] != '\n' || v > c->max_bulk)
		return false;
	i += 2;
	if (left - i < v || left - i - v < 2 || p[i + v] != '\r' || p[i + v + 1] != '\n')
		return false;
	elem_start(d);
	if (!d->gap_lost)
		txt_put(d, p + i, v);
	d->msg_bytes += i + v + 2;
	d->scan = 0;
	cur_skip(in, i + v + 2);
	value_done(c, dir, ctx);
	return true;
}

/* An inline command "set a b": words split at blanks; "..." and '...' group words
 * (escapes are kept as written). */
static void inline_line(struct redis_conn *c, const uint8_t *p, size_t n, struct proto_ctx *ctx)
{
	struct redis_dir *d = &c->dir[DIR_TO_SERVER];
	struct redis_frame *f;
	size_t i = 0, nw = 0;

	d->top_type = '*';
	f = &d->stack[0];
	d->depth = 1;
	f->type = '*';
	f->bare = true;
	f->idx = 0;
	f->left = UINT64_MAX;
	while (i < n) {
		size_t s;

		while (i < n && (p[i] == ' ' || p[i] == '\t'))
			i++;
		if (i == n)
			break;
		elem_start(d);
		if (p[i] == '"' || p[i] == '\'') {
			uint8_t q = p[i++];

			s = i;
			while (i < n && p[i] != q)
				i += p[i] == '\\' && q == '"' && i + 1 < n ? 2 : 1;
			txt_put(d, p + s, (i < n ? i : n) - s);
			if (i < n)
				i++;
		} else {
			s = i;
			while (i < n && p[i] != ' ' && p[i] != '\t')
				i++;
			txt_put(d, p + s, i - s);
		}
		if (f->idx < REDIS_WORDS) {
			d->w_end[f->idx] = d->txt.len;
			d->nwords = (unsigned)f->idx + 1;
		}
		f->idx++;
		nw++;
	}
	d->top_count = nw;
	d->depth = 0;
	d->empty = nw == 0;
	message_done(c, DIR_TO_SERVER, ctx);
}

/* ---- proto_ops ---------------------------------------------------------------------- */

static void *redis_conn_new(const struct conn_info *info)
{
	const struct cfg_proto *cfg = info ? info->cfg : NULL;
	const struct redis_config *rc = cfg && cfg->priv ? cfg->priv : &redis_defaults;
	struct redis_conn *c = hb_malloc(sizeof(*c));
	size_t cap;

	if (!c)
		return NULL;
	/* everything but the frame stacks is cleared (see redis_dir.stack) */
	memset(c, 0, offsetof(struct redis_conn, dir));
	c->max_rv = rc->max_return_value ? rc->max_return_value : REDIS_DEF_MAX_RETURN;
	c->max_query = rc->max_query ? rc->max_query : REDIS_DEF_MAX_QUERY;
	c->max_line = rc->max_line_bytes ? rc->max_line_bytes : REDIS_DEF_MAX_LINE;
	c->max_depth = rc->max_depth && rc->max_depth <= REDIS_MAX_DEPTH_CAP
			   ? (unsigned)rc->max_depth
			   : REDIS_DEF_MAX_DEPTH;
	c->max_elements = rc->max_elements ? rc->max_elements : REDIS_DEF_MAX_ELEMENTS;
	c->max_bulk = rc->max_bulk_bytes ? rc->max_bulk_bytes : REDIS_DEF_MAX_BULK;
	c->max_msg = cfg && cfg->max_message_size ? cfg->max_message_size : REDIS_DEF_MAX_MESSAGE;
	c->timeout = cfg && cfg->transaction_timeout ? cfg->transaction_timeout : REDIS_DEF_TIMEOUT;
	c->send_request = cfg && cfg->send_request;
	c->send_response = cfg && cfg->send_response;
	cap = cfg && cfg->max_pending ? cfg->max_pending : REDIS_DEF_MAX_PENDING;
	txn_fifo_init(&c->fifo, cap);
	c->ring = hb_calloc(c->fifo.cap, sizeof(*c->ring)); /* sized from config */
	if (!c->ring) {
		hb_free(c);
		return NULL;
	}
	for (int i = 0; i < 2; i++) {
		memset(&c->dir[i], 0, offsetof(struct redis_dir, stack));
		strbuf_init(&c->dir[i].txt);
		dir_reset_msg(&c->dir[i]);
	}
	c->dir[DIR_TO_SERVER].txt_cap =
	    c->send_request && c->max_msg > c->max_query ? c->max_msg : c->max_query;
	c->dir[DIR_TO_CLIENT].txt_cap =
	    c->send_response && c->max_msg > c->max_rv ? c->max_msg : c->max_rv;
	/* method and resource come from the text: keep room for them */
	if (c->dir[DIR_TO_SERVER].txt_cap < 2 * REDIS_METHOD_MAX)
		c->dir[DIR_TO_SERVER].txt_cap = 2 * REDIS_METHOD_MAX;
	c->m_pushes = metrics_counter("redis.pushes");
	c->m_monitor = metrics_counter("redis.monitor_lines");
	c->m_resync = metrics_counter("redis.resync_skipped_bytes");
	c->m_lost = metrics_counter("redis.lost_requests");
	return c;
}

/* Unsynced direction (a fresh conn may start mid-stream): does this line look like
 * the start of a message? */
static bool plausible_start(enum proto_dir dir, const uint8_t *p, size_t n)
{
	if (n == 0)
		return false;
	if (dir == DIR_TO_CLIENT)
		return is_resp_type(p[0]);
	if (p[0] == '*')
		return true;
	return (p[0] >= 'a' && p[0] <= 'z') || (p[0] >= 'A' && p[0] <= 'Z');
}

static struct parse_result redis_parse(void *conn, enum proto_dir dir, const uint8_t *data,
				       size_t len, struct proto_ctx *ctx)
{
	struct redis_conn *c = conn;
	struct redis_dir *d = &c->dir[dir];
	struct parse_result r = {PARSE_OK, 0, 0};
	struct cursor in;

	expire_old(c, ctx);
	cur_init(&in, data, len);
	while (cur_left(&in)) {
		const uint8_t *p;
		size_t n, lstart, raw;
		long nl;

		if (!d->ts_set) {
			d->msg_ts = ctx->ts;
			d->ts_set = true;
		}
		switch (d->state) {
		case RS_BULK:
			n = cur_left(&in) < d->bulk_left ? cur_left(&in) : (size_t)d->bulk_left;
			p = cur_bytes(&in, n);
			d->bulk_left -= n;
			d->msg_bytes += n;
			if (d->bulk_skip) {
				size_t k = n < d->bulk_skip ? n : (size_t)d->bulk_skip;

				d->bulk_skip -= k;
				p += k;
				n -= k;
			}
			if (!d->gap_lost)
				txt_put(d, p, n);
			if (d->bulk_left)
				continue;
			d->state = RS_CRLF;
			if (cur_left(&in) < 2)
				continue;
			/* the CR LF is here too */
			/* FALLTHROUGH */
		case RS_CRLF:
			if (d->crlf_got == 0 && cur_left(&in) >= 2 && in.p[in.off] == '\r' &&
			    in.p[in.off + 1] == '\n') {
				/* the usual whole CR LF, in one step */
				cur_skip(&in, 2);
				d->msg_bytes += 2;
				d->state = RS_LINE;
				value_done(c, dir, ctx);
				continue;
			}
			if (cur_u8(&in) != (uint8_t) "\r\n"[d->crlf_got])
				goto err;
			d->msg_bytes++;
			if (++d->crlf_got < 2)
				continue;
			d->state = RS_LINE;
			value_done(c, dir, ctx);
			continue;
		case RS_SKIP_LINE:
			nl = cur_find(&in, '\n');
			n = nl < 0 ? cur_left(&in) : (size_t)nl - in.off + 1;
			metric_add(c->m_resync, n);
			cur_skip(&in, n);
			if (nl >= 0) {
				d->state = RS_LINE;
				d->ts_set = false;
			}
			continue;
		case RS_LINE:
			if (d->in_msg && d->depth && bulk_whole(c, dir, &in, ctx))
				continue;
			break;
		}
		/* a complete line, searched from where the previous call stopped */
		lstart = in.off;
		if (d->scan > cur_left(&in))
			d->scan = 0; /* re-presented shorter than before */
		cur_skip(&in, d->scan);
		nl = cur_find(&in, '\n');
		cur_seek(&in, lstart);
		if (nl < 0) {
			if (cur_left(&in) > c->max_line) {
				if (!d->synced && !d->in_msg) {
					metric_add(c->m_resync, cur_left(&in));
					cur_skip(&in, cur_left(&in));
					d->state = RS_SKIP_LINE;
					continue;
				}
				metric_inc(ctx->stats->limit_exceeded);
				goto err;
			}
			d->scan = cur_left(&in);
			r.status = PARSE_NEED_MORE;
			goto out;
		}
		d->scan = 0;
		raw = (size_t)nl - lstart + 1;
		p = cur_bytes(&in, raw);
		n = raw - 1;
		if (n && p[n - 1] == '\r')
			n--;
		if (n > c->max_line) {
			if (!d->synced && !d->in_msg) {
				metric_add(c->m_resync, raw);
				d->ts_set = false;
				continue;
			}
			metric_inc(ctx->stats->limit_exceeded);
			goto err;
		}
		if (!d->in_msg) {
			if (!d->synced && !plausible_start(dir, p, n)) {
				metric_add(c->m_resync, raw);
				d->ts_set = false;
				continue;
			}
			if (n == 0 && dir == DIR_TO_SERVER) {
				d->ts_set = false; /* an empty inline line: redis ignores it */
				continue;
			}
			d->in_msg = true;
		}
		d->msg_bytes += raw;
		if (dir == DIR_TO_SERVER && d->depth == 0 && (n == 0 || p[0] != '*')) {
			inline_line(c, p, n, ctx);
			continue;
		}
		if (n == 0)
			goto err;
		switch (type_line(c, dir, p, n, ctx)) {
		case LINE_OK:
			break;
		case LINE_LIMIT:
			metric_inc(ctx->stats->limit_exceeded);
			goto err;
		case LINE_ERROR:
			goto err;
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

static int redis_gap(void *conn, enum proto_dir dir, size_t n, struct proto_ctx *ctx)
{
	struct redis_conn *c = conn;
	struct redis_dir *d = &c->dir[dir];

	(void)ctx;
	/* only bytes inside a blob payload can be skipped without losing the framing */
	if (d->state != RS_BULK || n > d->bulk_left)
		return -1;
	d->bulk_left -= n;
	d->msg_bytes += n;
	d->gap_lost = true;
	d->txt_cut = true;
	if (d->bulk_skip)
		d->bulk_skip = n < d->bulk_skip ? d->bulk_skip - n : 0;
	if (d->bulk_left == 0)
		d->state = RS_CRLF;
	return 0;
}

static void redis_expire(void *conn, struct proto_ctx *ctx)
{
	struct redis_conn *c = conn;

	/* A partial message keeps its parse state: if the conn goes on, the reply it
	 * becomes is published as an unmatched response. */
	flush_pending(c, ctx);
}

static void redis_conn_free(void *conn)
{
	struct redis_conn *c = conn;

	if (!c)
		return;
	txn_fifo_release(&c->fifo);
	strbuf_free(&c->dir[0].txt);
	strbuf_free(&c->dir[1].txt);
	hb_free(c->ring);
	hb_free(c);
}

const struct proto_ops redis_proto = {
    .name = "redis",
    .transports = PROTO_TCP,
    .default_ports = redis_ports,
    .ndefault_ports = sizeof(redis_ports) / sizeof(redis_ports[0]),
    .config = redis_config_fields,
    .nconfig = sizeof(redis_config_fields) / sizeof(redis_config_fields[0]),
    .config_size = sizeof(struct redis_config),
    .conn_new = redis_conn_new,
    .parse = redis_parse,
    .gap = redis_gap,
    .fin = NULL,
    .expire = redis_expire,
    .conn_free = redis_conn_free,
};
