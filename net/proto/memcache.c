/* memcache.c — memcached text and binary protocols over TCP and UDP (Packetbeat's "memcache").
 *
 * Specs: memcached doc/protocol.txt (text commands, responses, the UDP frame header),
 * https://github.com/memcached/memcached/wiki/BinaryProtocolRevamped (binary protocol).
 * Fields follow Packetbeat 8 protos/memcache (docs/reference/packetbeat.md §1.3, §5.4):
 * memcache.protocol_type, memcache.request.*, memcache.response.*, event.action =
 * "memcache.<request type>"; memcache has no method/query/resource.
 *
 * Text protocol: a command line, for storage commands followed by a data block.
 *
 *   set|add|replace|append|prepend <key> <flags> <exptime> <bytes> [noreply]\r\n<data>\r\n
 *   cas <key> <flags> <exptime> <bytes> <cas unique> [noreply]\r\n<data>\r\n
 *   get|gets <key>*  gat|gats <exptime> <key>*  incr|decr <key> <delta> [noreply]
 *   touch <key> <exptime> [noreply]  delete <key> [noreply]  flush_all [<delay>] [noreply]
 *   stats [<args>]  verbosity <level> [noreply]  version  quit  slabs ..  lru_crawler ..
 *
 * Responses are one line (STORED, NOT_FOUND, <number>, CLIENT_ERROR <msg>, ...) or a
 * sequence merged into one response, as Packetbeat merges them:
 *   VALUE <key> <flags> <bytes> [<cas>]\r\n<data>\r\n ... END\r\n
 *   STAT <name> <value>\r\n ... END\r\n
 *
 * Binary protocol: a 24-byte header, then extras, key and value (network byte order).
 *
 *     Byte/     0       |       1       |       2       |       3       |
 *        +---------------+---------------+---------------+---------------+
 *       0| Magic 80 / 81 | Opcode        | Key length                    |
 *       4| Extras length | Data type     | vbucket (req) / status (res)  |
 *       8| Total body length = extras + key + value                      |
 *      12| Opaque (copied into the response)                             |
 *      16| CAS                                                   (64 bits)|
 *        +---------------+---------------+---------------+---------------+
 *
 * UDP: every datagram starts with an 8-byte frame header.
 *
 *        | Request ID (16)               | Sequence number (16)          |
 *        | Total datagrams (16)          | Reserved (16)                 |
 *
 * Values are never kept: data blocks and binary values are counted (count_values,
 * bytes) as they stream by. Only small binary bodies that are exported are read whole:
 * stat values, counter results and version strings (at most max_line_bytes).
 *
 * Transactions. TCP: finished requests wait in a FIFO (cap max_pending). A text
 * response completes the oldest; a binary response completes the request with the same
 * opaque and opcode, and the requests queued before that one are closed without a
 * response: quiet ones (GetQ, GetKQ, SetQ, ...) as OK — their silence is the answer —
 * others as unmatched. Requests that never get a response (noreply, quit, QuitQ) are
 * published as OK at once. UDP: request and response pair by the frame's request ID in
 * a table of max_udp_slots; a response's datagrams are decoded in sequence order as they
 * arrive (a line cut at a datagram boundary is carried in one bounded buffer per flow);
 * datagrams out of order are only counted, and the transaction completes when the frame
 * header's total has arrived. A quiet request waits until udptransactiontimeout, then OK.
 *
 * Status (Packetbeat computeTransactionStatus): binary status 0 → OK, > 0x80 → Server
 * Error, else Error; text CLIENT_ERROR / SAME → Client Error; SERVER_ERROR, BUSY,
 * BADCLASS, NOSPARE, NOTFULL, UNSAFE → Server Error; ERROR, NOT_STORED, NOT_FOUND →
 * Error; anything else OK. Unmatched halves are Error + error.message (Packetbeat uses
 * Server Error / Client Error for them; hostbeat reports every protocol the same way).
 */
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "hostbeat/clock.h"
#include "hostbeat/cursor.h"
#include "hostbeat/event.h"
#include "hostbeat/mem.h"
#include "hostbeat/metrics.h"
#include "hostbeat/proto.h"
#include "hostbeat/strbuf.h"

/* The one exported symbol (listed in net/proto/registry.c). */
extern const struct proto_ops memcache_proto;

#define MC_BIN_HDR 24
#define MC_MAGIC_REQ 0x80
#define MC_MAGIC_RES 0x81
#define MC_OP_QUITQ 0x17
#define MC_CARRY_MAX 2048 /* UDP: a line cut at a datagram boundary, at most this long */
#define MC_DEF_TIMEOUT (10ull * NS_PER_SEC)
#define MC_DEF_MAX_PENDING 64
#define MC_DEF_MAX_TEXT (10u << 20)

#define NOTE_UNMATCHED_REQ "Unmatched request"
#define NOTE_UNMATCHED_RESP "Unmatched response"
#define NOTE_REQ_LOSS "Packet loss while capturing the request"
#define NOTE_RESP_LOSS "Packet loss while capturing the response"
#define NOTE_RESP_INCOMPLETE "Response incomplete"
#define NOTE_REQ_INCOMPLETE "Request incomplete"
#define NOTE_UDP_UNDECODED "Response datagrams out of order: not decoded"

/* ---- configuration ------------------------------------------------------------------ */

struct mc_config {
	bool parse_unknown;
	uint64_t udp_timeout;
	uint64_t max_line_bytes;
	uint64_t max_keys;
	uint64_t max_stats;
	uint64_t max_udp_slots;
};

static const struct cfg_field mc_config_fields[] = {
    {"parseunknown", CFG_BOOL, offsetof(struct mc_config, parse_unknown), "false",
     "accept unknown text commands (command UNKNOWN) instead of giving up on the connection", 0, 0},
    {"udptransactiontimeout", CFG_DURATION, offsetof(struct mc_config, udp_timeout), "10s",
     "how long a UDP request waits for its response (quiet ones are then published as OK)", 0, 0},
    {"max_line_bytes", CFG_SIZE, offsetof(struct mc_config, max_line_bytes), "8192",
     "longest text line; also the largest binary key and decoded binary value", 256, 1 << 20},
    {"max_keys", CFG_UINT, offsetof(struct mc_config, max_keys), "128",
     "keys exported per message; more are counted (limit_exceeded), not exported", 1, 65535},
    {"max_stats", CFG_UINT, offsetof(struct mc_config, max_stats), "512",
     "stats entries exported per response", 1, 65535},
    {"max_udp_slots", CFG_UINT, offsetof(struct mc_config, max_udp_slots), "32",
     "UDP request IDs tracked per flow; the oldest gives way", 1, 4096},
};

static const struct mc_config mc_defaults = {
    .parse_unknown = false,
    .udp_timeout = MC_DEF_TIMEOUT,
    .max_line_bytes = 8192,
    .max_keys = 128,
    .max_stats = 512,
    .max_udp_slots = 32,
};

/* ---- command tables (Packetbeat codes.go / text.go / binary.go) ---------------------- */

enum mc_type {
	MT_UNKNOWN,
	MT_LOAD,
	MT_STORE,
	MT_DELETE,
	MT_COUNTER,
	MT_INFO,
	MT_SLABCTRL,
	MT_LRU,
	MT_STATS,
	MT_SUCCESS,
	MT_FAIL,
	MT_AUTH,
};

/* A string constant with its length: the names below become event fields, and
 * strlen() per field adds up. */
struct lit {
	const char *s;
	size_t n;
};

/* a table entry's name and its length */
#define NAME(z) z, sizeof(z) - 1

static const struct lit mc_type_names[] = {
    {NAME("UNKNOWN")}, {NAME("Load")},    {NAME("Store")},    {NAME("Delete")},
    {NAME("Counter")}, {NAME("Info")},    {NAME("SlabCtrl")}, {NAME("LRUCrawler")},
    {NAME("Stats")},   {NAME("Success")}, {NAME("Fail")},     {NAME("Auth")},
};

static const struct lit mc_actions[] = {
    {NAME("memcache.unknown")},  {NAME("memcache.load")},       {NAME("memcache.store")},
    {NAME("memcache.delete")},   {NAME("memcache.counter")},    {NAME("memcache.info")},
    {NAME("memcache.slabctrl")}, {NAME("memcache.lrucrawler")}, {NAME("memcache.stats")},
    {NAME("memcache.success")},  {NAME("memcache.fail")},       {NAME("memcache.auth")},
};

/* Transaction status classes. */
enum mc_st { ST_OK, ST_ERROR, ST_CLIENT, ST_SERVER };

/* Text request argument layouts. */
enum mc_targs {
	TA_KEYS,      /* <key>* */
	TA_GAT,       /* <exptime> <key>* */
	TA_STORE,     /* <key> <flags> <exptime> <bytes> [noreply] + data */
	TA_CAS,       /* ... <bytes> <cas unique> [noreply] + data */
	TA_COUNTER,   /* <key> <delta> [noreply] */
	TA_TOUCH,     /* <key> <exptime> [noreply] */
	TA_DELETE,    /* <key> [noreply] */
	TA_FLUSH,     /* [<delay>] [noreply] */
	TA_RAW,       /* raw_args */
	TA_VERBOSITY, /* <level> [noreply] */
	TA_NONE,
	TA_QUIT,
	TA_SLABS, /* reassign <src> <dst> | automove <0|1|2> */
	TA_LRU,   /* enable | disable | sleep <us> | tocrawl <n> | crawl <args> */
};

struct text_req {
	const char *name;
	size_t len;
	uint8_t type;
	uint8_t args;
};

/* Looked up in order: the common commands first. */
static const struct text_req text_requests[] = {
    {NAME("get"), MT_LOAD, TA_KEYS},
    {NAME("set"), MT_STORE, TA_STORE},
    {NAME("delete"), MT_DELETE, TA_DELETE},
    {NAME("gets"), MT_LOAD, TA_KEYS},
    {NAME("incr"), MT_COUNTER, TA_COUNTER},
    {NAME("decr"), MT_COUNTER, TA_COUNTER},
    {NAME("add"), MT_STORE, TA_STORE},
    {NAME("replace"), MT_STORE, TA_STORE},
    {NAME("append"), MT_STORE, TA_STORE},
    {NAME("prepend"), MT_STORE, TA_STORE},
    {NAME("cas"), MT_STORE, TA_CAS},
    {NAME("touch"), MT_STORE, TA_TOUCH},
    {NAME("gat"), MT_LOAD, TA_GAT},
    {NAME("gats"), MT_LOAD, TA_GAT},
    {NAME("flush_all"), MT_DELETE, TA_FLUSH},
    {NAME("stats"), MT_STATS, TA_RAW},
    {NAME("verbosity"), MT_INFO, TA_VERBOSITY},
    {NAME("version"), MT_INFO, TA_NONE},
    {NAME("quit"), MT_INFO, TA_QUIT},
    {NAME("slabs"), MT_SLABCTRL, TA_SLABS},
    {NAME("lru_crawler"), MT_LRU, TA_LRU},
};

/* Text response kinds. */
enum mc_tres {
	TR_NONE,
	TR_VALUE, /* merged up to END */
	TR_STAT,  /* merged up to END */
	TR_END,
	TR_PLAIN,   /* one word */
	TR_MSG,     /* word + error message */
	TR_VERSION, /* VERSION <string> */
	TR_COUNTER, /* <number> */
	TR_UNKNOWN, /* parseunknown */
	TR_BSTAT,   /* binary Stat responses, merged up to the one without a key */
};

struct text_res {
	const char *name;
	size_t len;
	uint8_t type;
	uint8_t kind;
	uint8_t st;
};

/* Looked up in order: the common responses first. */
static const struct text_res text_responses[] = {
    {NAME("VALUE"), MT_LOAD, TR_VALUE, ST_OK},
    {NAME("END"), MT_LOAD, TR_END, ST_OK},
    {NAME("STORED"), MT_SUCCESS, TR_PLAIN, ST_OK},
    {NAME("DELETED"), MT_SUCCESS, TR_PLAIN, ST_OK},
    {NAME("NOT_FOUND"), MT_FAIL, TR_PLAIN, ST_ERROR},
    {NAME("NOT_STORED"), MT_FAIL, TR_PLAIN, ST_ERROR},
    {NAME("EXISTS"), MT_SUCCESS, TR_PLAIN, ST_OK},
    {NAME("TOUCHED"), MT_SUCCESS, TR_PLAIN, ST_OK},
    {NAME("STAT"), MT_STATS, TR_STAT, ST_OK},
    {NAME("OK"), MT_SUCCESS, TR_PLAIN, ST_OK},
    {NAME("RESET"), MT_SUCCESS, TR_PLAIN, ST_OK},
    {NAME("ERROR"), MT_FAIL, TR_PLAIN, ST_ERROR},
    {NAME("CLIENT_ERROR"), MT_FAIL, TR_MSG, ST_CLIENT},
    {NAME("SERVER_ERROR"), MT_FAIL, TR_MSG, ST_SERVER},
    {NAME("BUSY"), MT_FAIL, TR_MSG, ST_SERVER},
    {NAME("BADCLASS"), MT_FAIL, TR_MSG, ST_SERVER},
    {NAME("NOSPARE"), MT_FAIL, TR_MSG, ST_SERVER},
    {NAME("NOTFULL"), MT_FAIL, TR_MSG, ST_SERVER},
    {NAME("UNSAFE"), MT_FAIL, TR_MSG, ST_SERVER},
    {NAME("SAME"), MT_FAIL, TR_MSG, ST_CLIENT},
    {NAME("VERSION"), MT_INFO, TR_VERSION, ST_OK},
};

/* Binary request extras / response bodies that are decoded. */
enum mc_bargs { BA_NONE, BA_STORE, BA_COUNTER, BA_EXPTIME, BA_VERBOSITY };
enum mc_bres { BR_NONE, BR_FLAGS, BR_COUNTER, BR_VERSION, BR_STAT };

struct bin_op {
	const char *name;    /* NULL: unknown opcode */
	const char *command; /* NULL: "UNKNOWN" */
	uint8_t type;
	uint8_t req;
	uint8_t res;
	bool quiet;
};

#define BIN_NOPS 0x48
static const struct bin_op bin_ops[BIN_NOPS] = {
    [0x00] = {"Get", "get", MT_LOAD, BA_NONE, BR_FLAGS, false},
    [0x01] = {"Set", "set", MT_STORE, BA_STORE, BR_NONE, false},
    [0x02] = {"Add", "add", MT_STORE, BA_STORE, BR_NONE, false},
    [0x03] = {"Replace", "replace", MT_STORE, BA_STORE, BR_NONE, false},
    [0x04] = {"Delete", "delete", MT_DELETE, BA_NONE, BR_NONE, false},
    [0x05] = {"Increment", "incr", MT_COUNTER, BA_COUNTER, BR_COUNTER, false},
    [0x06] = {"Decrement", "decr", MT_COUNTER, BA_COUNTER, BR_COUNTER, false},
    [0x07] = {"Quit", "quit", MT_INFO, BA_NONE, BR_NONE, false},
    [0x08] = {"Flush", "flush_all", MT_DELETE, BA_EXPTIME, BR_NONE, false},
    [0x09] = {"GetQ", "get", MT_LOAD, BA_NONE, BR_FLAGS, true},
    [0x0a] = {"No-op", "noop", MT_INFO, BA_NONE, BR_NONE, false},
    [0x0b] = {"Version", "version", MT_INFO, BA_NONE, BR_VERSION, false},
    [0x0c] = {"GetK", "get", MT_LOAD, BA_NONE, BR_FLAGS, false},
    [0x0d] = {"GetKQ", "get", MT_LOAD, BA_NONE, BR_FLAGS, true},
    [0x0e] = {"Append", "append", MT_STORE, BA_NONE, BR_NONE, false},
    [0x0f] = {"Prepend", "prepend", MT_STORE, BA_NONE, BR_NONE, false},
    [0x10] = {"Stat", "stats", MT_STATS, BA_NONE, BR_STAT, false},
    [0x11] = {"SetQ", "set", MT_STORE, BA_STORE, BR_NONE, true},
    [0x12] = {"AddQ", "add", MT_STORE, BA_STORE, BR_NONE, true},
    [0x13] = {"ReplaceQ", "replace", MT_STORE, BA_STORE, BR_NONE, true},
    [0x14] = {"DeleteQ", "delete", MT_DELETE, BA_NONE, BR_NONE, true},
    [0x15] = {"IncrementQ", "incr", MT_COUNTER, BA_COUNTER, BR_COUNTER, true},
    [0x16] = {"DecrementQ", "decr", MT_COUNTER, BA_COUNTER, BR_COUNTER, true},
    [0x17] = {"QuitQ", "quit", MT_INFO, BA_NONE, BR_NONE, true},
    [0x18] = {"FlushQ", "flush_all", MT_DELETE, BA_EXPTIME, BR_NONE, true},
    [0x19] = {"AppendQ", "append", MT_STORE, BA_NONE, BR_NONE, true},
    [0x1a] = {"PrependQ", "prepend", MT_STORE, BA_NONE, BR_NONE, true},
    [0x1b] = {"Verbosity", "verbosity", MT_INFO, BA_VERBOSITY, BR_NONE, false},
    [0x1c] = {"Touch", "touch", MT_STORE, BA_EXPTIME, BR_NONE, false},
    [0x1d] = {"GAT", "gat", MT_LOAD, BA_EXPTIME, BR_FLAGS, false},
    [0x1e] = {"GATQ", "gat", MT_LOAD, BA_EXPTIME, BR_FLAGS, true},
    [0x20] = {"SASL list mechs", "sasl_list", MT_AUTH, BA_NONE, BR_NONE, false},
    [0x21] = {"SASL Auth", "sasl_auth", MT_AUTH, BA_NONE, BR_NONE, false},
    [0x22] = {"SASL Step", "sasl_step", MT_AUTH, BA_NONE, BR_NONE, false},
    [0x23] = {"GatK", "gat", MT_LOAD, BA_EXPTIME, BR_FLAGS, false},
    [0x24] = {"GatKQ", "gat", MT_LOAD, BA_EXPTIME, BR_FLAGS, true},
    [0x30] = {"RGet", NULL, MT_UNKNOWN, BA_NONE, BR_NONE, false},
    [0x31] = {"RSet", NULL, MT_UNKNOWN, BA_NONE, BR_NONE, false},
    [0x32] = {"RSetQ", NULL, MT_UNKNOWN, BA_NONE, BR_NONE, true},
    [0x33] = {"RAppend", NULL, MT_UNKNOWN, BA_NONE, BR_NONE, false},
    [0x34] = {"RAppendQ", NULL, MT_UNKNOWN, BA_NONE, BR_NONE, true},
    [0x35] = {"RPrepend", NULL, MT_UNKNOWN, BA_NONE, BR_NONE, false},
    [0x36] = {"RPrependQ", NULL, MT_UNKNOWN, BA_NONE, BR_NONE, true},
    [0x37] = {"RDelete", NULL, MT_UNKNOWN, BA_NONE, BR_NONE, false},
    [0x38] = {"RDeleteQ", NULL, MT_UNKNOWN, BA_NONE, BR_NONE, true},
    [0x39] = {"RIncr", NULL, MT_UNKNOWN, BA_NONE, BR_NONE, false},
    [0x3a] = {"RIncrQ", NULL, MT_UNKNOWN, BA_NONE, BR_NONE, true},
    [0x3b] = {"RDecr", NULL, MT_UNKNOWN, BA_NONE, BR_NONE, false},
    [0x3c] = {"RDecrQ", NULL, MT_UNKNOWN, BA_NONE, BR_NONE, true},
    [0x3d] = {"Set VBucket", NULL, MT_UNKNOWN, BA_NONE, BR_NONE, false},
    [0x3e] = {"Get VBucket", NULL, MT_UNKNOWN, BA_NONE, BR_NONE, false},
    [0x3f] = {"Del VBucket", NULL, MT_UNKNOWN, BA_NONE, BR_NONE, false},
    [0x40] = {"TAP Connect", NULL, MT_UNKNOWN, BA_NONE, BR_NONE, false},
    [0x41] = {"TAP Mutation", NULL, MT_UNKNOWN, BA_NONE, BR_NONE, false},
    [0x42] = {"TAP Delete", NULL, MT_UNKNOWN, BA_NONE, BR_NONE, false},
    [0x43] = {"TAP Flush", NULL, MT_UNKNOWN, BA_NONE, BR_NONE, false},
    [0x44] = {"TAP Opaque", NULL, MT_UNKNOWN, BA_NONE, BR_NONE, false},
    [0x45] = {"TAP VBucket Set", NULL, MT_UNKNOWN, BA_NONE, BR_NONE, false},
    [0x46] = {"TAP Checkpoint Start", NULL, MT_UNKNOWN, BA_NONE, BR_NONE, false},
    [0x47] = {"TAP Checkpoint End", NULL, MT_UNKNOWN, BA_NONE, BR_NONE, false},
};

struct bin_status {
	uint16_t code;
	const char *name;
};

static const struct bin_status bin_statuses[] = {
    {0x00, "Success"},
    {0x01, "Key not found"},
    {0x02, "Key exists"},
    {0x03, "Value too large"},
    {0x04, "Invalid arguments"},
    {0x05, "Item not stored"},
    {0x06, "Incr/Decr on non-numeric value."},
    {0x07, "The vbucket belongs to another server"},
    {0x20, "Authentication error"},
    {0x21, "Authentication continue"},
    {0x81, "Unknown command"},
    {0x82, "Out of memory"},
    {0x83, "Not supported"},
    {0x84, "Internal error"},
    {0x85, "Busy"},
    {0x86, "Temporary failure"},
};

/* ---- state ------------------------------------------------------------------------- */

enum mc_state {
	MS_MSG,       /* at a message boundary */
	MS_DATA,      /* `left` bytes of a data block / binary value to skip */
	MS_CRLF,      /* the "\r\n" after a text data block */
	MS_SKIP_LINE, /* unsynced: skipping the rest of an over-long junk line */
};

/* One direction's parser (TCP), or one UDP slot's response parser. */
struct mc_dir {
	enum mc_state state;
	bool synced; /* a message was recognised in this direction */
	bool ts_set;
	bool data_crlf;   /* the data block ends in "\r\n" (text) */
	uint8_t crlf;     /* MS_CRLF: bytes of "\r\n" seen */
	uint64_t msg_ts;  /* first byte of the current message (part) */
	size_t scan;      /* bytes of an incomplete line already searched for '\n' */
	uint64_t left;    /* MS_DATA: bytes to go */
	uint64_t bytes;   /* wire bytes of the current request / merged response */
	struct event *ev; /* request being read, or transaction being answered (owned) */
	unsigned nkeys;
	bool keys_capped;
	/* request */
	bool no_response; /* noreply, quit, QuitQ: published at once */
	bool text_store;  /* count_values = 1 once the data block is through */
	/* response */
	bool resp_open; /* a response is in progress (ev may be NULL: pool exhausted) */
	bool unmatched; /* ... without a request */
	bool binary;
	bool agg_done; /* binary stats: the terminating message was seen */
	uint8_t agg;   /* TR_VALUE / TR_STAT / TR_BSTAT while merging */
	uint8_t st;    /* enum mc_st */
	uint32_t opaque;
	uint64_t resp_ts;
	uint64_t nvalues, vbytes;
	unsigned nstats;
	struct strbuf text; /* send_response text */
};

struct mc_slot {
	bool used;
	bool resp_seen;
	bool broken; /* datagrams out of order: counted, not decoded */
	uint16_t id;
	uint16_t total, next_seq, received;
	uint64_t since;   /* for udptransactiontimeout */
	uint64_t resp_ts; /* first response datagram */
	uint64_t undecoded_bytes;
	struct event *req; /* the request waiting for its response (owned) */
	struct mc_dir rd;
};

struct mc_conn {
	const struct mc_config *cfg;
	bool udp;
	bool send_request, send_response;
	size_t max_line, max_text, max_keys, max_stats;
	uint64_t timeout, udp_timeout;
	struct txn_fifo fifo;
	size_t lost_pending; /* finished requests that got no event (pool exhausted) */
	struct mc_dir dir[2];
	/* UDP */
	struct mc_slot *slots;
	size_t nslots;
	struct mc_slot *cur; /* slot of the datagram being parsed */
	uint16_t cur_id;
	uint8_t *carry; /* MC_CARRY_MAX bytes */
	size_t carry_len;
	struct mc_slot *carry_slot;
	struct metric *m_resync, *m_undecoded;
};

/* ---- small helpers ------------------------------------------------------------------- */

struct span {
	const uint8_t *p;
	size_t n;
};

#define REQ_KEY(n) "memcache.request." n
#define RES_KEY(n) "memcache.response." n
#define KEY(req, n) ((req) ? REQ_KEY(n) : RES_KEY(n))

static void f_str(struct event *ev, const char *key, const void *p, size_t n)
{
	if (ev)
		ev_set_str(ev, key, p, n);
}

/* inline: strlen() of a constant folds away */
static inline void f_strz(struct event *ev, const char *key, const char *s)
{
	if (ev)
		ev_set_str(ev, key, s, strlen(s));
}

static void f_lit(struct event *ev, const char *key, const struct lit *l)
{
	if (ev)
		ev_set_str(ev, key, l->s, l->n);
}

static void f_uint(struct event *ev, const char *key, uint64_t v)
{
	if (ev)
		ev_set_uint(ev, key, v);
}

static void f_int(struct event *ev, const char *key, int64_t v)
{
	if (ev)
		ev_set_int(ev, key, v);
}

static void f_bool(struct event *ev, const char *key, bool v)
{
	if (ev)
		ev_set_bool(ev, key, v);
}

static bool ev_flag(const struct event *ev, const char *key)
{
	const struct ev_field *f = ev_find(ev, key);

	return f && f->type == EV_T_BOOL && f->v.b;
}

static bool ev_uint_is(const struct event *ev, const char *key, uint64_t v)
{
	const struct ev_field *f = ev_find(ev, key);

	return f && f->type == EV_T_UINT && f->v.u == v;
}

/* Next space-separated token of *rest (memcached splits on ' ' only). Scans in
 * locals: through *rest every byte read would reload the span. */
static inline bool next_tok(struct span *rest, struct span *tok)
{
	const uint8_t *p = rest->p;
	size_t n = rest->n, i = 0, j;

	while (i < n && p[i] == ' ')
		i++;
	if (i == n) {
		if (i) {
			rest->p = p + i;
			rest->n = 0;
		}
		return false;
	}
	for (j = i; j < n && p[j] != ' '; j++)
		;
	tok->p = p + i;
	tok->n = j - i;
	rest->p = p + j;
	rest->n = n - j;
	return true;
}

/* The last token of s ({NULL, 0} when there is none), what a next_tok() loop over
 * s would end with. */
static struct span last_tok(struct span s)
{
	size_t end = s.n, i;

	while (end && s.p[end - 1] == ' ')
		end--;
	if (!end)
		return (struct span){NULL, 0};
	for (i = end; i && s.p[i - 1] != ' '; i--)
		;
	return (struct span){s.p + i, end - i};
}

static struct span trim_left(struct span s)
{
	while (s.n && s.p[0] == ' ') {
		s.p++;
		s.n--;
	}
	return s;
}

/* t is the n-byte name z: names are a few bytes, a loop beats calling memcmp */
static inline bool tok_is(struct span t, const char *z, size_t n)
{
	size_t i;

	if (t.n != n)
		return false;
	for (i = 0; i < n && t.p[i] == (uint8_t)z[i]; i++)
		;
	return i == n;
}

static inline bool tok_eq(struct span t, const char *z)
{
	return tok_is(t, z, strlen(z));
}

/* Decimal digits only, no overflow. */
static bool parse_u64(struct span t, uint64_t *out)
{
	uint64_t v = 0;

	if (t.n == 0 || t.n > 20)
		return false;
	for (size_t i = 0; i < t.n; i++) {
		unsigned d = (unsigned)t.p[i] - '0';

		/* up to 19 digits cannot overflow */
		if (d > 9 || (i == 19 && v > (UINT64_MAX - d) / 10))
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

static bool parse_i64(struct span t, int64_t *out)
{
	bool neg = t.n && t.p[0] == '-';
	uint64_t v;

	if (neg) {
		t.p++;
		t.n--;
	}
	if (!parse_u64(t, &v) || v > (uint64_t)INT64_MAX)
		return false;
	*out = neg ? -(int64_t)v : (int64_t)v;
	return true;
}

static enum ev_status st_status(uint8_t st)
{
	switch (st) {
	case ST_ERROR:
		return EV_STATUS_ERROR;
	case ST_CLIENT:
		return EV_STATUS_CLIENT_ERROR;
	case ST_SERVER:
		return EV_STATUS_SERVER_ERROR;
	default:
		return EV_STATUS_OK;
	}
}

static const char *bin_status_name(uint16_t code)
{
	for (size_t i = 0; i < sizeof(bin_statuses) / sizeof(bin_statuses[0]); i++)
		if (bin_statuses[i].code == code)
			return bin_statuses[i].name;
	return NULL;
}

static void count_skip(struct mc_conn *c, size_t n)
{
	if (!c->m_resync)
		c->m_resync = metrics_counter("memcache.resync_skipped_bytes");
	metric_add(c->m_resync, n);
}

static void count_undecoded(struct mc_conn *c)
{
	if (!c->m_undecoded)
		c->m_undecoded = metrics_counter("memcache.udp_undecoded_datagrams");
	metric_inc(c->m_undecoded);
}

static void text_append(struct mc_conn *c, struct mc_dir *d, const void *p, size_t n)
{
	if (!c->send_response || !d->ev || d->text.len >= c->max_text)
		return;
	if (n > c->max_text - d->text.len)
		n = c->max_text - d->text.len;
	strbuf_append(&d->text, p, n);
}

static void dir_reset(struct mc_dir *d)
{
	struct strbuf keep = d->text;

	memset(d, 0, sizeof(*d));
	d->text = keep;
	strbuf_reset(&d->text);
}

/* ---- transactions ---------------------------------------------------------------------- */

/* A request closed without a response: quiet/noreply ones are OK (their silence is the
 * answer), the others are unmatched. */
static void publish_pending(struct proto_ctx *ctx, struct event *ev, const char *reason)
{
	if (!ev)
		return;
	if (ev_flag(ev, REQ_KEY("quiet")) || ev_flag(ev, REQ_KEY("noreply")))
		txn_publish(ctx, ev);
	else
		txn_publish_unmatched(ctx, ev, reason, true);
}

static void fifo_expire(struct mc_conn *c, struct proto_ctx *ctx)
{
	struct event *ev;

	while ((ev = txn_fifo_peek(&c->fifo)) && ctx->ts > ev->start_ns &&
	       ctx->ts - ev->start_ns > c->timeout)
		publish_pending(ctx, txn_fifo_pop(&c->fifo), NOTE_UNMATCHED_REQ);
}

static void fifo_flush(struct mc_conn *c, struct proto_ctx *ctx)
{
	struct event *ev;

	while ((ev = txn_fifo_pop(&c->fifo)))
		publish_pending(ctx, ev, NOTE_UNMATCHED_REQ);
}

/* Binary: the pending request with this opaque and opcode; the ones queued before it
 * are closed without a response. NULL when there is none (the FIFO is left alone). */
static struct event *fifo_take_binary(struct mc_conn *c, struct proto_ctx *ctx, unsigned opcode,
				      uint32_t opaque)
{
	struct event *ev, *hit = NULL;

	for (ev = c->fifo.head; ev; ev = ev->next) {
		if (ev_uint_is(ev, REQ_KEY("opaque"), opaque) &&
		    ev_uint_is(ev, REQ_KEY("opcode_value"), opcode)) {
			hit = ev;
			break;
		}
	}
	if (!hit)
		return NULL;
	while ((ev = txn_fifo_pop(&c->fifo)) != hit)
		publish_pending(ctx, ev, NOTE_UNMATCHED_REQ);
	return hit;
}

static struct mc_slot *slot_find(struct mc_conn *c, uint16_t id)
{
	for (size_t i = 0; i < c->nslots; i++)
		if (c->slots[i].used && c->slots[i].id == id)
			return &c->slots[i];
	return NULL;
}

static void resp_finish(struct mc_conn *c, struct mc_dir *d, struct proto_ctx *ctx,
			const char *note);

/* Close a UDP slot: an open response is published with what arrived, a waiting
 * request as closed without a response. */
static void slot_flush(struct mc_conn *c, struct mc_slot *s, struct proto_ctx *ctx)
{
	if (s->rd.resp_open) {
		s->rd.bytes += s->undecoded_bytes;
		resp_finish(c, &s->rd, ctx, s->broken ? NOTE_UDP_UNDECODED : NOTE_RESP_INCOMPLETE);
	} else if (s->req && s->resp_seen) {
		/* a response arrived, but not one datagram of it could be decoded */
		s->req->end_ns = s->resp_ts;
		s->req->has_server_bytes = true;
		s->req->server_bytes = s->undecoded_bytes;
		txn_add_note(s->req, NOTE_UDP_UNDECODED);
		txn_publish(ctx, s->req);
		s->req = NULL;
	}
	publish_pending(ctx, s->req, NOTE_UNMATCHED_REQ);
	s->req = NULL;
	if (c->carry_slot == s) {
		c->carry_slot = NULL;
		c->carry_len = 0;
	}
	ev_pool_put(s->rd.ev); /* NULL: rd.ev is only set while resp_open */
	dir_reset(&s->rd);
	s->used = false;
	s->resp_seen = s->broken = false;
	s->undecoded_bytes = 0;
}

/* Find or allocate the slot for `id`; the oldest slot gives way when all are used. */
static struct mc_slot *slot_get(struct mc_conn *c, uint16_t id, struct proto_ctx *ctx)
{
	struct mc_slot *s = slot_find(c, id), *old = NULL;

	if (s)
		return s;
	for (size_t i = 0; i < c->nslots; i++) {
		if (!c->slots[i].used) {
			s = &c->slots[i];
			break;
		}
		if (!old || c->slots[i].since < old->since)
			old = &c->slots[i];
	}
	if (!s) {
		metric_inc(ctx->stats->limit_exceeded);
		slot_flush(c, old, ctx);
		s = old;
	}
	s->used = true;
	s->id = id;
	s->since = ctx->ts;
	return s;
}

static void udp_expire(struct mc_conn *c, struct proto_ctx *ctx)
{
	for (size_t i = 0; i < c->nslots; i++) {
		struct mc_slot *s = &c->slots[i];

		if (s->used && ctx->ts > s->since && ctx->ts - s->since > c->udp_timeout)
			slot_flush(c, s, ctx);
	}
}

static struct event *new_event(struct mc_dir *d, struct proto_ctx *ctx, bool binary)
{
	struct event *ev = txn_new_event(ctx, &memcache_proto);

	if (ev) {
		txn_init_event(ev, ctx->conn, d->msg_ts);
		if (binary)
			ev_set_str(ev, "memcache.protocol_type", "binary", 6);
		else
			ev_set_str(ev, "memcache.protocol_type", "text", 4);
	}
	return ev;
}

static void request_begin(struct mc_dir *d, struct proto_ctx *ctx, bool binary)
{
	d->ev = new_event(d, ctx, binary);
	d->nkeys = 0;
	d->keys_capped = false;
	d->no_response = false;
	d->text_store = false;
}

static void set_type(struct event *ev, bool req, uint8_t type)
{
	f_lit(ev, KEY(req, "type"), &mc_type_names[type]);
	if (req)
		f_lit(ev, "event.action", &mc_actions[type]);
}

static void request_done(struct mc_conn *c, struct mc_dir *d, struct proto_ctx *ctx)
{
	struct event *ev = d->ev;
	bool no_response = d->no_response;

	d->ev = NULL;
	metric_inc(ctx->stats->messages);
	if (ev) {
		ev->has_client_bytes = true;
		ev->client_bytes = d->bytes;
		if (d->text_store)
			ev_set_uint(ev, REQ_KEY("count_values"), 1);
	}
	d->bytes = 0;
	d->no_response = d->text_store = false;
	if (no_response) {
		if (ev)
			txn_publish(ctx, ev);
		return;
	}
	if (c->udp) {
		struct mc_slot *s;

		if (!ev)
			return;
		s = slot_get(c, c->cur_id, ctx);
		publish_pending(ctx, s->req, NOTE_UNMATCHED_REQ);
		s->req = ev;
		s->since = ev->start_ns;
		return;
	}
	if (!ev) {
		c->lost_pending++;
		return;
	}
	if (txn_fifo_push(&c->fifo, ev) < 0) {
		/* Full: the oldest request gives way, counted. */
		metric_inc(ctx->stats->limit_exceeded);
		publish_pending(ctx, txn_fifo_pop(&c->fifo), NOTE_UNMATCHED_REQ);
		txn_fifo_push(&c->fifo, ev);
	}
}

/* A response starts: find its request (or make an orphan event). */
static void resp_begin(struct mc_conn *c, struct mc_dir *d, struct proto_ctx *ctx, bool binary,
		       unsigned opcode, uint32_t opaque)
{
	struct event *ev = NULL;
	bool lost = false;

	d->resp_open = true;
	d->binary = binary;
	d->unmatched = false;
	d->agg = TR_NONE;
	d->agg_done = false;
	d->st = ST_OK;
	d->opaque = opaque;
	d->resp_ts = d->msg_ts;
	d->nvalues = d->vbytes = 0;
	d->nkeys = d->nstats = 0;
	d->keys_capped = false;
	d->bytes = 0;
	strbuf_reset(&d->text);
	if (c->udp) {
		if (c->cur) {
			ev = c->cur->req;
			c->cur->req = NULL;
		}
	} else if (binary) {
		ev = fifo_take_binary(c, ctx, opcode, opaque);
	} else {
		ev = txn_fifo_pop(&c->fifo);
	}
	if (!ev && !c->udp && c->lost_pending) {
		c->lost_pending--; /* its request got no event: nothing to publish */
		lost = true;
	}
	if (!ev && !lost) {
		ev = new_event(d, ctx, binary);
		d->unmatched = true;
	}
	d->ev = ev;
}

static void resp_finish(struct mc_conn *c, struct mc_dir *d, struct proto_ctx *ctx,
			const char *note)
{
	struct event *ev = d->ev;

	d->ev = NULL;
	d->resp_open = false;
	metric_inc(ctx->stats->messages);
	if (ev) {
		if (d->agg == TR_VALUE) {
			ev_set_uint(ev, RES_KEY("count_values"), d->nvalues);
			ev_set_uint(ev, RES_KEY("bytes"), d->vbytes);
		}
		ev->end_ns = d->resp_ts;
		ev->has_server_bytes = true;
		ev->server_bytes = d->bytes;
		ev->status = st_status(d->st);
		if (c->send_response)
			ev_set_str(ev, "response", d->text.p ? d->text.p : "", d->text.len);
		if (note)
			txn_add_note(ev, note);
		if (d->unmatched) {
			txn_publish_unmatched(ctx, ev, NOTE_UNMATCHED_RESP, false);
		} else {
			/* "success" and "failure" are both 7 bytes */
			ev_set_str(ev, "event.outcome",
				   ev->status == EV_STATUS_OK ? "success" : "failure", 7);
			txn_publish(ctx, ev);
		}
	}
	d->bytes = 0;
	d->agg = TR_NONE;
	strbuf_reset(&d->text);
}

static void add_key(struct mc_conn *c, struct mc_dir *d, bool req, struct span k,
		    struct proto_ctx *ctx)
{
	if (!d->ev)
		return;
	if (d->nkeys >= c->max_keys) {
		if (!d->keys_capped) {
			d->keys_capped = true;
			metric_inc(ctx->stats->limit_exceeded);
		}
		return;
	}
	d->nkeys++;
	ev_append_str(d->ev, KEY(req, "keys"), k.p, k.n);
}

/* ---- text protocol ---------------------------------------------------------------------- */

static const struct text_req *find_text_req(struct span t)
{
	for (size_t i = 0; i < sizeof(text_requests) / sizeof(text_requests[0]); i++)
		if (tok_is(t, text_requests[i].name, text_requests[i].len))
			return &text_requests[i];
	return NULL;
}

static const struct text_res *find_text_res(struct span t)
{
	for (size_t i = 0; i < sizeof(text_responses) / sizeof(text_responses[0]); i++)
		if (tok_is(t, text_responses[i].name, text_responses[i].len))
			return &text_responses[i];
	return NULL;
}

static void tok_uint(struct event *ev, const char *key, struct span *rest)
{
	struct span t;
	uint64_t v;

	if (next_tok(rest, &t) && parse_u64(t, &v))
		f_uint(ev, key, v);
}

/* slabs reassign <src> <dst> | slabs automove <0|1|2> */
static void text_slabs(struct event *ev, struct span rest)
{
	struct span sub, t;
	int64_t v;
	uint64_t u;

	if (!next_tok(&rest, &sub)) {
		f_strz(ev, REQ_KEY("command"), "slabs");
		return;
	}
	if (tok_eq(sub, "reassign")) {
		f_strz(ev, REQ_KEY("command"), "slabs reassign");
		if (next_tok(&rest, &t) && parse_i64(t, &v))
			f_int(ev, REQ_KEY("source_class"), v);
		if (next_tok(&rest, &t) && parse_i64(t, &v))
			f_int(ev, REQ_KEY("dest_class"), v);
	} else if (tok_eq(sub, "automove")) {
		f_strz(ev, REQ_KEY("command"), "slabs automove");
		if (next_tok(&rest, &t) && parse_u64(t, &u)) {
			static const char *const modes[] = {"standby", "slow", "aggressive"};

			if (u < 3)
				f_strz(ev, REQ_KEY("automove"), modes[u]);
			else
				f_str(ev, REQ_KEY("automove"), t.p, t.n);
		}
	} else {
		f_strz(ev, REQ_KEY("command"), "slabs");
		f_str(ev, REQ_KEY("raw_args"), sub.p, (size_t)(rest.p + rest.n - sub.p));
	}
}

/* lru_crawler enable | disable | sleep <us> | tocrawl <n> | crawl <classes> */
static void text_lru(struct event *ev, struct span rest)
{
	struct span sub;

	if (!next_tok(&rest, &sub)) {
		f_strz(ev, REQ_KEY("command"), "lru_crawler");
		return;
	}
	if (tok_eq(sub, "enable") || tok_eq(sub, "disable")) {
		f_strz(ev, REQ_KEY("command"),
		       sub.n == 6 ? "lru_crawler enable" : "lru_crawler disable");
	} else if (tok_eq(sub, "sleep")) {
		f_strz(ev, REQ_KEY("command"), "lru_crawler sleep");
		tok_uint(ev, REQ_KEY("sleep_us"), &rest);
	} else if (tok_eq(sub, "tocrawl")) {
		f_strz(ev, REQ_KEY("command"), "lru_crawler tocrawl");
		tok_uint(ev, REQ_KEY("value"), &rest);
	} else {
		struct span raw = trim_left(rest);

		f_strz(ev, REQ_KEY("command"),
		       tok_eq(sub, "crawl") ? "lru_crawler crawl" : "lru_crawler");
		if (!tok_eq(sub, "crawl"))
			raw = (struct span){sub.p, (size_t)(rest.p + rest.n - sub.p)};
		f_str(ev, REQ_KEY("raw_args"), raw.p, raw.n);
	}
}

/* One complete request line. Returns 0, or -1 when the connection is unparseable. */
static int text_request(struct mc_conn *c, struct mc_dir *d, struct span line, size_t wire,
			struct proto_ctx *ctx)
{
	struct span rest = line, cmd, t, last;
	const struct text_req *tr;
	struct event *ev;
	uint64_t v;
	bool noreply;

	if (!next_tok(&rest, &cmd))
		return 0; /* empty line: memcached answers ERROR; not a transaction here */
	tr = find_text_req(cmd);
	if (!tr && !d->synced) {
		count_skip(c, wire); /* resync: not a command line */
		return 0;
	}
	if (!tr && !c->cfg->parse_unknown)
		return -1;
	d->synced = true;
	request_begin(d, ctx, false);
	ev = d->ev;
	d->bytes = wire;
	if (c->send_request && ev)
		ev_set_str(ev, "request", line.p, line.n < c->max_text ? line.n : c->max_text);
	if (!tr) {
		f_strz(ev, REQ_KEY("command"), "UNKNOWN");
		set_type(ev, true, MT_UNKNOWN);
		f_str(ev, REQ_KEY("line"), line.p, line.n);
		request_done(c, d, ctx);
		return 0;
	}
	/* memcached: noreply is the last token (of the commands that take one) */
	noreply = false;
	if (tr->args != TA_KEYS && tr->args != TA_GAT && tr->args != TA_RAW &&
	    tr->args != TA_SLABS && tr->args != TA_LRU) {
		last = last_tok(rest);
		noreply = last.p && tok_eq(last, "noreply");
	}
	if (tr->args != TA_SLABS && tr->args != TA_LRU)
		f_str(ev, REQ_KEY("command"), tr->name, tr->len);
	set_type(ev, true, tr->type);
	switch (tr->args) {
	case TA_GAT:
		tok_uint(ev, REQ_KEY("exptime"), &rest);
		/* fall through */
	case TA_KEYS:
		while (next_tok(&rest, &t))
			add_key(c, d, true, t, ctx);
		noreply = false;
		break;
	case TA_STORE:
	case TA_CAS: {
		bool have_bytes = false;

		if (next_tok(&rest, &t))
			add_key(c, d, true, t, ctx);
		tok_uint(ev, REQ_KEY("flags"), &rest);
		tok_uint(ev, REQ_KEY("exptime"), &rest);
		if (next_tok(&rest, &t) && parse_u64(t, &v)) {
			f_uint(ev, REQ_KEY("bytes"), v);
			have_bytes = true;
		}
		if (tr->args == TA_CAS)
			tok_uint(ev, REQ_KEY("cas_unique"), &rest);
		f_bool(ev, REQ_KEY("noreply"), noreply);
		d->no_response = noreply;
		if (have_bytes) {
			/* the data block follows: the request ends after it */
			d->text_store = true;
			d->state = MS_DATA;
			d->left = v;
			d->data_crlf = true;
			if (v == 0) {
				d->state = MS_CRLF;
				d->crlf = 0;
			}
			return 0;
		}
		break;
	}
	case TA_COUNTER:
		if (next_tok(&rest, &t))
			add_key(c, d, true, t, ctx);
		tok_uint(ev, REQ_KEY("delta"), &rest);
		f_bool(ev, REQ_KEY("noreply"), noreply);
		break;
	case TA_TOUCH:
		if (next_tok(&rest, &t))
			add_key(c, d, true, t, ctx);
		tok_uint(ev, REQ_KEY("exptime"), &rest);
		f_bool(ev, REQ_KEY("noreply"), noreply);
		break;
	case TA_DELETE:
		if (next_tok(&rest, &t))
			add_key(c, d, true, t, ctx);
		f_bool(ev, REQ_KEY("noreply"), noreply);
		break;
	case TA_FLUSH:
		if (next_tok(&rest, &t) && parse_u64(t, &v))
			f_uint(ev, REQ_KEY("exptime"), v);
		else
			f_uint(ev, REQ_KEY("exptime"), 0);
		f_bool(ev, REQ_KEY("noreply"), noreply);
		break;
	case TA_RAW:
		rest = trim_left(rest);
		f_str(ev, REQ_KEY("raw_args"), rest.p ? rest.p : line.p, rest.n);
		noreply = false;
		break;
	case TA_VERBOSITY:
		tok_uint(ev, REQ_KEY("verbosity"), &rest);
		f_bool(ev, REQ_KEY("noreply"), noreply);
		break;
	case TA_QUIT:
		f_bool(ev, REQ_KEY("noreply"), false);
		noreply = true; /* the server just closes */
		break;
	case TA_SLABS:
		text_slabs(ev, rest);
		noreply = false;
		break;
	case TA_LRU:
		text_lru(ev, rest);
		noreply = false;
		break;
	default:
		noreply = false;
		break;
	}
	d->no_response = noreply;
	request_done(c, d, ctx);
	return 0;
}

/* Does a text response line continue the merged response that is open? */
static bool text_continues(const struct mc_dir *d, uint8_t kind)
{
	if (d->binary)
		return false;
	if (d->agg == TR_VALUE)
		return kind == TR_VALUE || kind == TR_END;
	if (d->agg == TR_STAT)
		return kind == TR_STAT || kind == TR_END;
	return false;
}

/* One complete response line. Returns 0, or -1 when the connection is unparseable. */
static int text_response(struct mc_conn *c, struct mc_dir *d, struct span line, size_t wire,
			 struct proto_ctx *ctx)
{
	struct span rest = line, cmd, t;
	const struct text_res *tr;
	uint8_t kind;
	uint64_t v = 0;
	struct event *ev;

	if (!next_tok(&rest, &cmd))
		return 0; /* empty line: memcached never sends one; ignored */
	tr = find_text_res(cmd);
	if (tr)
		kind = tr->kind;
	else if (parse_u64(cmd, &v))
		kind = TR_COUNTER;
	else if (!d->synced) {
		count_skip(c, wire);
		return 0;
	} else if (c->cfg->parse_unknown)
		kind = TR_UNKNOWN;
	else
		return -1;
	d->synced = true;
	if (d->resp_open && !text_continues(d, kind))
		resp_finish(c, d, ctx, NULL);
	if (!d->resp_open) {
		resp_begin(c, d, ctx, false, 0, 0);
		ev = d->ev;
		if (tr)
			f_str(ev, RES_KEY("command"), tr->name, tr->len);
		else
			f_strz(ev, RES_KEY("command"),
			       kind == TR_COUNTER ? "<counter_op_res>" : "UNKNOWN");
		set_type(ev, false, tr ? tr->type : kind == TR_COUNTER ? MT_COUNTER : MT_UNKNOWN);
		d->st = tr ? tr->st : ST_OK;
	}
	ev = d->ev;
	d->bytes += wire;
	text_append(c, d, line.p, line.n);
	text_append(c, d, "\r\n", 2);
	switch (kind) {
	case TR_VALUE: {
		uint64_t flags, n;
		bool first = d->nvalues == 0;

		if (next_tok(&rest, &t))
			add_key(c, d, false, t, ctx);
		if (!next_tok(&rest, &t) || !parse_u64(t, &flags) || !next_tok(&rest, &t) ||
		    !parse_u64(t, &n))
			return -1; /* the data block cannot be delimited */
		if (first)
			f_uint(ev, RES_KEY("flags"), flags);
		if (next_tok(&rest, &t) && parse_u64(t, &v) && first)
			f_uint(ev, RES_KEY("cas_unique"), v);
		d->nvalues++;
		d->vbytes += n;
		d->agg = TR_VALUE;
		d->state = n ? MS_DATA : MS_CRLF;
		d->left = n;
		d->crlf = 0;
		d->data_crlf = true;
		return 0;
	}
	case TR_STAT: {
		struct span name = {NULL, 0}, value;

		d->agg = TR_STAT;
		next_tok(&rest, &name);
		value = trim_left(rest);
		if (d->nstats >= c->max_stats) {
			if (d->nstats++ == c->max_stats)
				metric_inc(ctx->stats->limit_exceeded);
			return 0;
		}
		if (ev) {
			ev_obj_str(ev, RES_KEY("stats"), d->nstats, "name",
				   name.p ? name.p : line.p, name.n);
			ev_obj_str(ev, RES_KEY("stats"), d->nstats, "value",
				   value.p ? value.p : line.p, value.n);
		}
		d->nstats++;
		return 0;
	}
	case TR_MSG:
		rest = trim_left(rest);
		f_str(ev, RES_KEY("error_msg"), rest.p ? rest.p : line.p, rest.n);
		break;
	case TR_VERSION:
		rest = trim_left(rest);
		f_str(ev, RES_KEY("version"), rest.p ? rest.p : line.p, rest.n);
		break;
	case TR_COUNTER:
		f_uint(ev, RES_KEY("value"), v);
		break;
	case TR_UNKNOWN:
		f_str(ev, RES_KEY("line"), line.p, line.n);
		break;
	default:
		break;
	}
	resp_finish(c, d, ctx, NULL);
	return 0;
}

enum { R_OK = 0, R_MORE = 1, R_ERR = -1 };

/* At a message boundary, not binary: one line, complete or not yet. */
static int text_line(struct mc_conn *c, struct mc_dir *d, enum proto_dir dir, struct cursor *in,
		     struct proto_ctx *ctx)
{
	size_t avail = cur_left(in), wire;
	struct cursor s = *in;
	struct span line;
	long nl;
	int rc;

	if (d->scan > avail)
		d->scan = 0;
	cur_skip(&s, d->scan);
	nl = cur_find(&s, '\n');
	if (nl < 0) {
		if (avail <= c->max_line) {
			d->scan = avail;
			return R_MORE;
		}
		if (d->synced) {
			metric_inc(ctx->stats->limit_exceeded);
			return R_ERR;
		}
		/* unsynced junk without a line end: skip it, then to its end */
		count_skip(c, avail);
		cur_skip(in, avail);
		d->scan = 0;
		d->state = MS_SKIP_LINE;
		d->ts_set = false;
		return R_OK;
	}
	d->scan = 0;
	wire = (size_t)nl - in->off + 1;
	line.n = wire - 1;
	line.p = cur_bytes(in, wire);
	if (!line.p)
		return R_ERR;
	if (line.n && line.p[line.n - 1] == '\r')
		line.n--;
	if (line.n > c->max_line) {
		if (!d->synced) {
			count_skip(c, wire);
			d->ts_set = false;
			return R_OK;
		}
		metric_inc(ctx->stats->limit_exceeded);
		return R_ERR;
	}
	rc = dir == DIR_TO_SERVER ? text_request(c, d, line, wire, ctx)
				  : text_response(c, d, line, wire, ctx);
	if (d->state == MS_MSG)
		d->ts_set = false;
	return rc < 0 ? R_ERR : R_OK;
}

/* ---- binary protocol --------------------------------------------------------------------- */

struct bin_hdr {
	uint8_t magic, opcode, extlen;
	uint16_t keylen, vbs; /* vbucket (request) or status (response) */
	uint32_t total, opaque;
	uint64_t cas;
	const uint8_t *extras, *key, *body; /* body: the value when read whole, else NULL */
	uint32_t vlen;
};

static const struct bin_op *bin_op_of(uint8_t opcode)
{
	return opcode < BIN_NOPS && bin_ops[opcode].name ? &bin_ops[opcode] : NULL;
}

static void bin_common(struct event *ev, bool req, const struct bin_op *op, const struct bin_hdr *h)
{
	f_strz(ev, KEY(req, "command"), op && op->command ? op->command : "UNKNOWN");
	set_type(ev, req, op ? op->type : MT_UNKNOWN);
	if (op)
		f_strz(ev, KEY(req, "opcode"), op->name);
	f_uint(ev, KEY(req, "opcode_value"), h->opcode);
	f_uint(ev, KEY(req, "opaque"), h->opaque);
	if (h->cas)
		f_uint(ev, KEY(req, "cas_unique"), h->cas);
}

static void bin_request(struct mc_conn *c, struct mc_dir *d, const struct bin_hdr *h,
			struct proto_ctx *ctx)
{
	const struct bin_op *op = bin_op_of(h->opcode);
	struct event *ev;
	struct cursor x;

	request_begin(d, ctx, true);
	ev = d->ev;
	bin_common(ev, true, op, h);
	if (h->keylen)
		add_key(c, d, true, (struct span){h->key, h->keylen}, ctx);
	if (h->vlen) {
		f_uint(ev, REQ_KEY("count_values"), 1);
		f_uint(ev, REQ_KEY("bytes"), h->vlen);
	}
	f_bool(ev, REQ_KEY("quiet"), op && op->quiet);
	f_uint(ev, REQ_KEY("vbucket"), h->vbs);
	/* extras (missing ones read as 0, as Packetbeat reports them) */
	cur_init(&x, h->extras, h->extlen);
	switch (op ? op->req : BA_NONE) {
	case BA_STORE: {
		uint32_t flags = cur_be32(&x), exptime = cur_be32(&x);

		f_uint(ev, REQ_KEY("flags"), flags);
		f_uint(ev, REQ_KEY("exptime"), exptime);
		break;
	}
	case BA_COUNTER: {
		uint64_t delta = cur_be64(&x), initial = cur_be64(&x);
		uint32_t exptime = cur_be32(&x);

		f_uint(ev, REQ_KEY("delta"), delta);
		f_uint(ev, REQ_KEY("initial"), initial);
		f_uint(ev, REQ_KEY("exptime"), exptime);
		break;
	}
	case BA_EXPTIME:
		f_uint(ev, REQ_KEY("exptime"), cur_be32(&x));
		break;
	case BA_VERBOSITY:
		f_uint(ev, REQ_KEY("verbosity"), cur_be32(&x));
		break;
	default:
		break;
	}
	if (c->send_request && ev) {
		char buf[320];
		int n = snprintf(buf, sizeof(buf), "%s %.*s", op ? op->name : "UNKNOWN",
				 (int)(h->keylen < 250 ? h->keylen : 250), (const char *)h->key);

		if (n > 0) {
			size_t len = (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1;

			ev_set_str(ev, "request", buf, len < c->max_text ? len : c->max_text);
		}
	}
	d->no_response = h->opcode == MC_OP_QUITQ;
}

static void bin_response(struct mc_conn *c, struct mc_dir *d, const struct bin_hdr *h,
			 struct proto_ctx *ctx)
{
	const struct bin_op *op = bin_op_of(h->opcode);
	bool stat = op && op->res == BR_STAT;
	struct event *ev;

	if (d->resp_open && !(d->binary && d->agg == TR_BSTAT && stat && d->opaque == h->opaque))
		resp_finish(c, d, ctx, NULL);
	if (!d->resp_open) {
		const char *sname = bin_status_name(h->vbs);
		struct cursor x;

		resp_begin(c, d, ctx, true, h->opcode, h->opaque);
		ev = d->ev;
		bin_common(ev, false, op, h);
		if (sname)
			f_strz(ev, RES_KEY("status"), sname);
		f_uint(ev, RES_KEY("status_code"), h->vbs);
		d->st = h->vbs == 0 ? ST_OK : h->vbs > 0x80 ? ST_SERVER : ST_ERROR;
		if (h->keylen && !stat)
			add_key(c, d, false, (struct span){h->key, h->keylen}, ctx);
		if (h->vlen && !stat) {
			f_uint(ev, RES_KEY("count_values"), 1);
			f_uint(ev, RES_KEY("bytes"), h->vlen);
		}
		cur_init(&x, h->body, h->body ? h->vlen : 0);
		switch (op ? op->res : BR_NONE) {
		case BR_FLAGS: {
			struct cursor e;

			cur_init(&e, h->extras, h->extlen);
			f_uint(ev, RES_KEY("flags"), cur_be32(&e));
			break;
		}
		case BR_COUNTER:
			f_uint(ev, RES_KEY("value"), h->vbs == 0 ? cur_be64(&x) : 0);
			break;
		case BR_VERSION:
			if (h->body && h->vbs == 0)
				f_str(ev, RES_KEY("version"), h->body, h->vlen);
			break;
		default:
			break;
		}
		if (c->send_response && ev) {
			char buf[320];
			int n = snprintf(buf, sizeof(buf), "%s %s\r\n", op ? op->name : "UNKNOWN",
					 sname ? sname : "Unknown status");

			if (n > 0)
				text_append(c, d, buf,
					    (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
		}
	}
	ev = d->ev;
	if (stat) {
		d->agg = TR_BSTAT;
		if (!h->keylen || h->vbs != 0) {
			d->agg_done = true;
		} else if (d->nstats >= c->max_stats) {
			if (d->nstats++ == c->max_stats)
				metric_inc(ctx->stats->limit_exceeded);
		} else {
			if (ev) {
				ev_obj_str(ev, RES_KEY("stats"), d->nstats, "name", h->key,
					   h->keylen);
				ev_obj_str(ev, RES_KEY("stats"), d->nstats, "value",
					   h->body ? h->body : h->key, h->body ? h->vlen : 0);
			}
			d->nstats++;
		}
	}
}

/* At a message boundary with a binary magic byte. */
static int bin_message(struct mc_conn *c, struct mc_dir *d, enum proto_dir dir, struct cursor *in,
		       struct proto_ctx *ctx, size_t *needed)
{
	bool req = dir == DIR_TO_SERVER;
	size_t avail = cur_left(in), need;
	const struct bin_op *op;
	struct bin_hdr h;
	struct cursor p = *in;
	bool whole;

	if (avail < MC_BIN_HDR) {
		*needed = MC_BIN_HDR - avail;
		return R_MORE;
	}
	memset(&h, 0, sizeof(h));
	h.magic = cur_u8(&p);
	h.opcode = cur_u8(&p);
	h.keylen = cur_be16(&p);
	h.extlen = cur_u8(&p);
	cur_u8(&p); /* data type: always 0 (raw bytes) */
	h.vbs = cur_be16(&p);
	h.total = cur_be32(&p);
	h.opaque = cur_be32(&p);
	h.cas = cur_be64(&p);
	if (p.err || h.magic != (req ? MC_MAGIC_REQ : MC_MAGIC_RES))
		return R_ERR;
	if ((uint32_t)h.extlen + h.keylen > h.total)
		return R_ERR;
	if (h.keylen > c->max_line) {
		metric_inc(ctx->stats->limit_exceeded);
		return R_ERR;
	}
	h.vlen = h.total - h.extlen - h.keylen;
	op = bin_op_of(h.opcode);
	/* the bodies that are exported are read whole, when small */
	whole = !req && op &&
		(op->res == BR_STAT || op->res == BR_VERSION || op->res == BR_COUNTER) &&
		h.vlen <= c->max_line;
	need = MC_BIN_HDR + h.extlen + h.keylen + (whole ? h.vlen : 0);
	if (avail < need) {
		*needed = need - avail;
		return R_MORE;
	}
	cur_skip(in, MC_BIN_HDR);
	h.extras = cur_bytes(in, h.extlen);
	h.key = cur_bytes(in, h.keylen);
	h.body = whole && h.vlen ? cur_bytes(in, h.vlen) : NULL;
	if (in->err)
		return R_ERR;
	d->synced = true;
	if (req) {
		bin_request(c, d, &h, ctx);
		d->bytes = need;
	} else {
		bin_response(c, d, &h, ctx);
		d->bytes += need;
	}
	d->data_crlf = false;
	d->left = whole ? 0 : h.vlen;
	d->state = d->left ? MS_DATA : MS_MSG;
	return R_OK;
}

/* ---- the stream parser ---------------------------------------------------------------------- */

/* A message (part) is through: request done, response merged or finished. */
static void part_end(struct mc_conn *c, struct mc_dir *d, enum proto_dir dir, struct proto_ctx *ctx)
{
	d->state = MS_MSG;
	d->ts_set = false;
	if (dir == DIR_TO_SERVER) {
		request_done(c, d, ctx);
		return;
	}
	if (!d->resp_open || !d->binary)
		return; /* text VALUE data: the response goes on up to END */
	if (d->agg == TR_BSTAT && !d->agg_done)
		return;
	resp_finish(c, d, ctx, NULL);
}

static void data_end(struct mc_conn *c, struct mc_dir *d, enum proto_dir dir, struct proto_ctx *ctx)
{
	if (d->data_crlf) {
		d->state = MS_CRLF;
		d->crlf = 0;
	} else {
		part_end(c, d, dir, ctx);
	}
}

static struct parse_result mc_stream(struct mc_conn *c, struct mc_dir *d, enum proto_dir dir,
				     const uint8_t *data, size_t len, struct proto_ctx *ctx)
{
	struct parse_result r = {PARSE_OK, 0, 0};
	struct cursor in;
	int rc;

	cur_init(&in, data, len);
	while (cur_left(&in)) {
		switch (d->state) {
		case MS_MSG: {
			uint8_t b = cur_peek_u8(&in);

			if (!d->ts_set) {
				d->msg_ts = ctx->ts;
				d->ts_set = true;
			}
			if (b == MC_MAGIC_REQ || b == MC_MAGIC_RES) {
				rc = bin_message(c, d, dir, &in, ctx, &r.needed);
				if (rc == R_OK && d->state == MS_MSG)
					part_end(c, d, dir, ctx);
			} else {
				rc = text_line(c, d, dir, &in, ctx);
			}
			if (rc == R_MORE) {
				r.status = PARSE_NEED_MORE;
				goto out;
			}
			if (rc == R_ERR)
				goto err;
			break;
		}
		case MS_DATA: {
			size_t n = cur_left(&in) < d->left ? cur_left(&in) : (size_t)d->left;

			cur_skip(&in, n);
			d->left -= n;
			d->bytes += n;
			if (!d->left)
				data_end(c, d, dir, ctx);
			break;
		}
		case MS_CRLF: {
			uint8_t b = cur_u8(&in);

			if (b != (d->crlf == 0 ? '\r' : '\n'))
				goto err; /* memcached: "bad data chunk" */
			d->bytes++;
			if (++d->crlf == 2)
				part_end(c, d, dir, ctx);
			break;
		}
		case MS_SKIP_LINE: {
			long nl = cur_find(&in, '\n');
			size_t n = nl < 0 ? cur_left(&in) : (size_t)nl - in.off + 1;

			count_skip(c, n);
			cur_skip(&in, n);
			if (nl >= 0)
				d->state = MS_MSG;
			break;
		}
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

/* ---- UDP ------------------------------------------------------------------------------ */

/* Feed one in-order response datagram to the slot's parser; a line or header cut at
 * the end is carried (bounded) into the next datagram. */
static void udp_feed(struct mc_conn *c, struct mc_slot *s, const uint8_t *p, size_t n,
		     struct proto_ctx *ctx)
{
	struct mc_dir *d = &s->rd;
	struct parse_result pr;
	size_t off = 0, rest;

	if (c->carry_slot == s && c->carry_len) {
		size_t old = c->carry_len;
		size_t take = n < MC_CARRY_MAX - old ? n : MC_CARRY_MAX - old;

		memcpy(c->carry + old, p, take);
		c->carry_len += take;
		d->scan = 0;
		pr = mc_stream(c, d, DIR_TO_CLIENT, c->carry, c->carry_len, ctx);
		if (pr.status == PARSE_ERROR)
			goto broken;
		if (pr.consumed < old) {
			if (take < n || c->carry_len == MC_CARRY_MAX)
				goto broken; /* longer than the carry buffer */
			memmove(c->carry, c->carry + pr.consumed, c->carry_len - pr.consumed);
			c->carry_len -= pr.consumed;
			return;
		}
		off = pr.consumed - old;
		c->carry_len = 0;
		c->carry_slot = NULL;
	}
	d->scan = 0;
	pr = mc_stream(c, d, DIR_TO_CLIENT, p + off, n - off, ctx);
	if (pr.status == PARSE_ERROR)
		goto broken;
	rest = n - off - pr.consumed;
	if (rest) {
		if (rest > MC_CARRY_MAX || (c->carry_slot && c->carry_slot != s))
			goto broken;
		memcpy(c->carry, p + off + pr.consumed, rest);
		c->carry_len = rest;
		c->carry_slot = s;
	}
	return;
broken:
	if (c->carry_slot == s) {
		c->carry_slot = NULL;
		c->carry_len = 0;
	}
	s->broken = true;
	count_undecoded(c);
}

static struct parse_result udp_request(struct mc_conn *c, uint16_t id, uint16_t total,
				       const uint8_t *p, size_t n, struct proto_ctx *ctx)
{
	struct parse_result r = {PARSE_OK, 0, 0}, pr;
	struct mc_dir *d = &c->dir[DIR_TO_SERVER];
	struct mc_slot *s;

	if (total != 1) {
		/* memcached does not take requests spread over datagrams either */
		metric_inc(ctx->stats->limit_exceeded);
		return r;
	}
	s = slot_find(c, id);
	if (s)
		slot_flush(c, s, ctx); /* the ID is reused: the old one is over */
	c->cur_id = id;
	d->scan = 0;
	d->ts_set = false;
	pr = mc_stream(c, d, DIR_TO_SERVER, p, n, ctx);
	if (pr.status != PARSE_OK || pr.consumed < n || d->state != MS_MSG) {
		/* the datagram ended (or broke) inside a request */
		if (d->ev) {
			txn_add_note(d->ev, NOTE_REQ_INCOMPLETE);
			txn_publish_unmatched(ctx, d->ev, NOTE_UNMATCHED_REQ, true);
			d->ev = NULL;
		}
		dir_reset(d);
		r.status = PARSE_ERROR;
	}
	return r;
}

static struct parse_result udp_response(struct mc_conn *c, uint16_t id, uint16_t seq,
					uint16_t total, const uint8_t *p, size_t n,
					struct proto_ctx *ctx)
{
	struct parse_result r = {PARSE_OK, 0, 0};
	struct mc_slot *s = slot_get(c, id, ctx);

	if (!s->resp_seen) {
		s->resp_seen = true;
		s->total = total;
		s->next_seq = 0;
		s->received = 0;
		s->resp_ts = ctx->ts;
	} else if (total != s->total && !s->broken) {
		s->broken = true;
		count_undecoded(c);
	}
	s->received++;
	if (!s->broken && seq == s->next_seq) {
		s->next_seq++;
		c->cur = s;
		udp_feed(c, s, p, n, ctx);
		c->cur = NULL;
	} else {
		if (!s->broken)
			count_undecoded(c);
		s->broken = true;
		s->undecoded_bytes += n;
	}
	if (s->received >= s->total)
		slot_flush(c, s, ctx);
	return r;
}

static struct parse_result parse_udp(struct mc_conn *c, enum proto_dir dir, const uint8_t *data,
				     size_t len, struct proto_ctx *ctx)
{
	struct parse_result r = {PARSE_ERROR, len, 0};
	uint16_t id, seq, total;
	const uint8_t *payload;
	size_t plen;
	struct cursor cur;

	udp_expire(c, ctx);
	cur_init(&cur, data, len);
	id = cur_be16(&cur);
	seq = cur_be16(&cur);
	total = cur_be16(&cur);
	cur_be16(&cur); /* reserved */
	if (cur.err || total == 0 || seq >= total)
		return r;
	plen = cur_left(&cur);
	payload = cur_bytes(&cur, plen);
	if (!payload || plen == 0)
		return r;
	r = dir == DIR_TO_SERVER ? udp_request(c, id, total, payload, plen, ctx)
				 : udp_response(c, id, seq, total, payload, plen, ctx);
	r.consumed = len;
	return r;
}

/* ---- proto_ops ---------------------------------------------------------------------------- */

static void *mc_conn_new(const struct conn_info *info)
{
	const struct cfg_proto *cfg = info ? info->cfg : NULL;
	struct mc_conn *c = hb_calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->cfg = cfg && cfg->priv ? cfg->priv : &mc_defaults;
	c->udp = info && info->transport == IPPROTO_UDP;
	c->send_request = cfg && cfg->send_request;
	c->send_response = cfg && cfg->send_response;
	c->max_line = c->cfg->max_line_bytes ? c->cfg->max_line_bytes : mc_defaults.max_line_bytes;
	c->max_keys = c->cfg->max_keys ? c->cfg->max_keys : mc_defaults.max_keys;
	c->max_stats = c->cfg->max_stats ? c->cfg->max_stats : mc_defaults.max_stats;
	c->max_text = cfg && cfg->max_message_size ? cfg->max_message_size : MC_DEF_MAX_TEXT;
	c->timeout = cfg && cfg->transaction_timeout ? cfg->transaction_timeout : MC_DEF_TIMEOUT;
	c->udp_timeout = c->cfg->udp_timeout ? c->cfg->udp_timeout : MC_DEF_TIMEOUT;
	txn_fifo_init(&c->fifo, cfg && cfg->max_pending ? cfg->max_pending : MC_DEF_MAX_PENDING);
	strbuf_init(&c->dir[0].text);
	strbuf_init(&c->dir[1].text);
	if (c->udp) {
		c->nslots =
		    c->cfg->max_udp_slots ? c->cfg->max_udp_slots : mc_defaults.max_udp_slots;
		c->slots = hb_calloc(c->nslots, sizeof(*c->slots));
		c->carry = hb_malloc(MC_CARRY_MAX);
		if (!c->slots || !c->carry) {
			hb_free(c->slots);
			hb_free(c->carry);
			hb_free(c);
			return NULL;
		}
		for (size_t i = 0; i < c->nslots; i++)
			strbuf_init(&c->slots[i].rd.text);
	}
	return c;
}

static struct parse_result mc_parse(void *conn, enum proto_dir dir, const uint8_t *data, size_t len,
				    struct proto_ctx *ctx)
{
	struct mc_conn *c = conn;

	if (c->udp)
		return parse_udp(c, dir, data, len, ctx);
	fifo_expire(c, ctx);
	return mc_stream(c, &c->dir[dir], dir, data, len, ctx);
}

/* Bytes lost inside a data block or binary value are skipped (noted); anywhere else
 * the framing is gone: give up, the stream layer starts a fresh parser. */
static int mc_gap(void *conn, enum proto_dir dir, size_t n, struct proto_ctx *ctx)
{
	struct mc_conn *c = conn;
	struct mc_dir *d = &c->dir[dir];

	if (c->udp || d->state != MS_DATA || n > d->left)
		return -1;
	if (d->ev)
		txn_add_note(d->ev, dir == DIR_TO_SERVER ? NOTE_REQ_LOSS : NOTE_RESP_LOSS);
	d->left -= n;
	d->bytes += n;
	if (!d->left)
		data_end(c, d, dir, ctx);
	return 0;
}

static void mc_expire(void *conn, struct proto_ctx *ctx)
{
	struct mc_conn *c = conn;
	struct mc_dir *rq = &c->dir[DIR_TO_SERVER], *rs = &c->dir[DIR_TO_CLIENT];

	if (c->udp) {
		for (size_t i = 0; i < c->nslots; i++)
			if (c->slots[i].used)
				slot_flush(c, &c->slots[i], ctx);
	}
	if (rs->resp_open)
		resp_finish(c, rs, ctx, NOTE_RESP_INCOMPLETE);
	if (rq->ev) {
		txn_add_note(rq->ev, NOTE_REQ_INCOMPLETE);
		txn_publish_unmatched(ctx, rq->ev, NOTE_UNMATCHED_REQ, true);
		rq->ev = NULL;
	}
	dir_reset(rq);
	dir_reset(rs);
	fifo_flush(c, ctx);
	c->lost_pending = 0;
}

static void mc_conn_free(void *conn)
{
	struct mc_conn *c = conn;

	if (!c)
		return;
	txn_fifo_release(&c->fifo);
	for (int i = 0; i < 2; i++) {
		ev_pool_put(c->dir[i].ev);
		strbuf_free(&c->dir[i].text);
	}
	for (size_t i = 0; c->slots && i < c->nslots; i++) {
		ev_pool_put(c->slots[i].req);
		ev_pool_put(c->slots[i].rd.ev);
		strbuf_free(&c->slots[i].rd.text);
	}
	hb_free(c->slots);
	hb_free(c->carry);
	hb_free(c);
}

static const uint16_t memcache_ports[] = {11211};

const struct proto_ops memcache_proto = {
    .name = "memcache",
    .transports = PROTO_TCP | PROTO_UDP,
    .default_ports = memcache_ports,
    .ndefault_ports = sizeof(memcache_ports) / sizeof(memcache_ports[0]),
    .config = mc_config_fields,
    .nconfig = sizeof(mc_config_fields) / sizeof(mc_config_fields[0]),
    .config_size = sizeof(struct mc_config),
    .conn_new = mc_conn_new,
    .parse = mc_parse,
    .gap = mc_gap,
    .fin = NULL,
    .expire = mc_expire,
    .conn_free = mc_conn_free,
};
