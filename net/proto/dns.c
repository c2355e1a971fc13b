/* dns.c — DNS over UDP and TCP: queries paired with responses by DNS ID.
 *
 * Specs: RFC 1035 (message format, §4.1.4 name compression), RFC 6891 (EDNS0 OPT),
 * RFC 4034/5155 (DNSSEC RR types), RFC 6895 (RCODE/OPCODE/CLASS registries),
 * RFC 7766 (DNS over TCP: 2-byte length prefix, several messages per connection).
 * Field names and value formats follow Packetbeat 8 (protos/dns, which renders RRs
 * with miekg/dns): names without the trailing dot, `ttl` as a string, RR-specific
 * keys (preference, rname, serial, ...) beside `data`.
 *
 * Header (RFC 1035 §4.1.1), 12 bytes, then the four sections:
 *
 *    0  1  2  3  4  5  6  7  8  9 10 11 12 13 14 15
 *   +--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+
 *   |                      ID                       |
 *   |QR|  OPCODE   |AA|TC|RD|RA| Z|AD|CD|   RCODE   |
 *   |          QDCOUNT / ANCOUNT / NSCOUNT / ARCOUNT |  (4 x 16 bits)
 *   +--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+
 *   question: QNAME QTYPE(16) QCLASS(16)
 *   RR:       NAME TYPE(16) CLASS(16) TTL(32) RDLENGTH(16) RDATA
 *
 * Names are label sequences ending in a zero byte or a compression pointer
 * (11xxxxxx xxxxxxxx = offset from the message start). Pointers are followed with
 * cur_seek(); each must point strictly before the previous target (before the
 * pointer itself for the first), which rules out loops and forward references,
 * and at most DNS_MAX_JUMPS are followed. A name is at most 255 wire bytes.
 *
 * EDNS0 OPT pseudo-RR (RFC 6891 §6.1.3): CLASS = UDP payload size, TTL =
 * EXTENDED-RCODE(8) VERSION(8) DO(1) Z(15).
 *
 * Decoding is two passes over the borrowed bytes, no allocation: dns_scan()
 * validates the whole message and collects the header/OPT summary; dns_emit()
 * walks it again writing fields into the event. Counts from the header only
 * bound loops whose every iteration consumes bytes; at most `max_records`
 * question+RR entries are walked per message (the rest is counted, not decoded).
 *
 * Transactions: each connection (TCP) or UDP flow keeps its pending queries in
 * arrival order; a response takes the first one with the same ID. The event then
 * has the response's dns.* fields, as Packetbeat does, beside the fields that
 * describe the query (method, query, resource, request). A query's own dns.*
 * fields are written only when it ends without a response (timeout, duplicate
 * ID, full list, undecodable response); until then its event keeps a copy of the
 * query message (struct dns_pending).
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "hostbeat/base64.h"
#include "hostbeat/clock.h"
#include "hostbeat/cursor.h"
#include "hostbeat/mem.h"
#include "hostbeat/numtext.h"
#include "hostbeat/proto.h"

#define DNS_HDR_LEN 12
#define DNS_NAME_WIRE_MAX 255  /* RFC 1035 §2.3.4 */
#define DNS_MAX_JUMPS 64       /* compression pointers followed per name */
#define DNS_NAME_TEXT_MAX 1040 /* 255 wire bytes, each escaped as "\DDD" at worst */
#define DNS_MAX_LABELS 128
#define DNS_RDATA_TEXT_MAX 4096 /* rendered `data` of one RR; longer is cut */
#define DNS_EXTRA_TEXT_MAX 1024 /* string-valued RR keys (type_bits, signer_name...) */
#define DNS_RR_MAX_EXTRA 8
#define DNS_MSG_TEXT_MAX 16384 /* request/response text, also capped by max_message_size */
#define DNS_PLAIN_UDP_MAX 512  /* RFC 1035 §4.2.1: larger needs EDNS0 */
#define DNS_TCP_PREFIX 2

#define DNS_TYPE_A 1
#define DNS_TYPE_OPT 41
#define DNS_TYPE_AAAA 28

#define DNS_QR 0x8000
#define DNS_AA 0x0400
#define DNS_TC 0x0200
#define DNS_RD 0x0100
#define DNS_RA 0x0080
#define DNS_AD 0x0020
#define DNS_CD 0x0010

/* error.message texts, as Packetbeat (protos/dns/errors.go). */
#define NOTE_NO_RESPONSE "No response to this query was received"
#define NOTE_ORPHAN "Response: received without an associated Query"
#define NOTE_DUPLICATE                                                              \
	"Another query with the same DNS ID from this client was received so this " \
	"query was closed without receiving a response"
#define NOTE_RESP_UNDECODABLE "Response: Message's data could not be decoded as DNS"
#define NOTE_RESP_ZERO_LENGTH "Response: Message's length was set to zero"
#define NOTE_TOO_LARGE "Non-EDNS packet has size greater than 512"
#define NOTE_RESP_TOO_LARGE "Response: Non-EDNS packet has size greater than 512"
#define NOTE_EDNS_NO_SUPPORT "Responder does not support EDNS"
#define NOTE_EDNS_UNEXPECTED "Unexpected EDNS answer"

/* ---- configuration ----------------------------------------------------------- */

struct dns_cfg {
	bool include_authorities;
	bool include_additionals;
	uint64_t max_records; /* questions + RRs decoded per message */
};

static const struct cfg_field dns_cfg_fields[] = {
    {"include_authorities", CFG_BOOL, offsetof(struct dns_cfg, include_authorities), "false",
     "add dns.authorities[] (the count is always there)", 0, 0},
    {"include_additionals", CFG_BOOL, offsetof(struct dns_cfg, include_additionals), "false",
     "add dns.additionals[] (the count is always there)", 0, 0},
    {"max_records", CFG_UINT, offsetof(struct dns_cfg, max_records), "512",
     "questions + resource records decoded per message; the rest is only counted", 1, 65535},
};

static const struct dns_cfg dns_cfg_default = {
    .include_authorities = false,
    .include_additionals = false,
    .max_records = 512,
};

extern const struct proto_ops dns_proto;

#define DNS_DEFAULT_TIMEOUT (10 * NS_PER_SEC)
#define DNS_DEFAULT_MAX_PENDING 64

/* ---- per-connection state ------------------------------------------------------ */

/* A query waiting for its response. Its event holds the envelope and the fields
 * that stay for the transaction (method, query, resource, request, notes). The
 * dns.* fields of the query are written only when it is published without a
 * response: a response replaces them, so for most queries they would be written
 * only to be taken out again. Until then `msg` is a copy of the query in the
 * event's own arena. msg == NULL: the dns.* fields are in the event already
 * (the request text was wanted, which comes from the same walk; or the query was
 * too large to copy). */
struct dns_pending {
	struct event *ev;
	const uint8_t *msg;
	size_t len;
	uint16_t id;
	bool edns; /* the query had an OPT RR */
};

#define DNS_PENDING_INLINE 4 /* pending queries held without an allocation */
#define DNS_DEFER_MAX 512    /* larger queries get their dns.* fields at once */

struct dns_conn {
	/* queries waiting for a response, oldest first: pend[0, npend); pend points
	 * at pend_inline or, past DNS_PENDING_INLINE, an array grown up to max_pending */
	struct dns_pending *pend;
	size_t npend, pend_cap, max_pending;
	struct dns_cfg cfg; /* copied at conn_new */
	bool tcp;
	bool send_request, send_response;
	size_t max_text;
	uint64_t timeout;
	/* TCP: time of the first segment of a message still incomplete, per direction,
	 * so event.start/end are the times of a message's first packet. */
	bool partial[2];
	uint64_t partial_ts[2];
	struct dns_pending pend_inline[DNS_PENDING_INLINE];
};

/* ---- a bounded text writer on caller memory ---------------------------------- */

struct sb {
	char *p;
	size_t cap; /* bytes at p, including room for the NUL */
	size_t len;
	bool trunc; /* something did not fit */
};

static void sb_init(struct sb *b, char *mem, size_t cap)
{
	b->p = mem;
	b->cap = cap;
	b->len = 0;
	b->trunc = false;
	if (cap)
		mem[0] = '\0';
}

static void sb_put(struct sb *b, const char *s, size_t n)
{
	if (b->cap == 0) {
		b->trunc = true;
		return;
	}
	if (b->cap - b->len < n + 1) {
		b->trunc = true;
		n = b->cap - b->len > 0 ? b->cap - b->len - 1 : 0;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void sb_puts(struct sb *b, const char *s)
{
	sb_put(b, s, strlen(s));
}

static void sb_putc(struct sb *b, char ch)
{
	if (b->cap - b->len < 2) { /* full, or room for the NUL only */
		sb_put(b, &ch, 1);
		return;
	}
	b->p[b->len++] = ch;
	b->p[b->len] = '\0';
}

/* "%u" of v without printf; buf holds 11 bytes. Returns the length. */
static size_t u32_text(uint32_t v, char *buf)
{
	char tmp[10], *q = hb_u64_text(v, tmp + sizeof(tmp));
	size_t n = (size_t)(tmp + sizeof(tmp) - q);

	memcpy(buf, q, n);
	buf[n] = '\0';
	return n;
}

/* "\DDD": a byte as miekg escapes it outside 0x20..0x7e; returns the end. */
static char *put_ddd(char *d, uint8_t ch)
{
	d[0] = '\\';
	d[1] = (char)('0' + ch / 100);
	d[2] = (char)('0' + ch / 10 % 10);
	d[3] = (char)('0' + ch % 10);
	return d + 4;
}

static void sb_printf(struct sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sb_printf(struct sb *b, const char *fmt, ...)
{
	char tmp[128];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	sb_put(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

static void sb_hex(struct sb *b, const uint8_t *p, size_t n, bool upper)
{
	const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";

	for (size_t i = 0; i < n && !b->trunc; i++) {
		char two[2] = {digits[p[i] >> 4], digits[p[i] & 15]};
		sb_put(b, two, 2);
	}
}

static void sb_base64(struct sb *b, const uint8_t *p, size_t n)
{
	char tmp[BASE64_ENCODED_SIZE(48)];

	/* 48 input bytes encode to 64 characters without padding, so chunks concatenate. */
	for (size_t i = 0; i < n && !b->trunc; i += 48) {
		size_t k = n - i < 48 ? n - i : 48;
		size_t w = base64_encode(p + i, k, tmp, sizeof(tmp));

		sb_put(b, tmp, w);
	}
}

/* RFC 4648 §7 base32hex, upper case, no padding (NSEC3 next hashed owner). */
static void sb_base32hex(struct sb *b, const uint8_t *p, size_t n)
{
	static const char alpha[] = "0123456789ABCDEFGHIJKLMNOPQRSTUV";
	uint32_t acc = 0;
	int bits = 0;

	for (size_t i = 0; i < n; i++) {
		acc = (acc << 8 | p[i]) & 0xffff;
		bits += 8;
		while (bits >= 5) {
			sb_putc(b, alpha[(acc >> (bits - 5)) & 31]);
			bits -= 5;
		}
	}
	if (bits > 0)
		sb_putc(b, alpha[(acc << (5 - bits)) & 31]);
}

/* Character-string / unknown RDATA text as miekg and Packetbeat print it:
 * `"` and `\` escaped, other bytes outside 0x20..0x7e as \DDD. Packetbeat's
 * hexStringToString also turns \t \r \n into two-character escapes. */
static void sb_escaped(struct sb *b, const uint8_t *p, size_t n, bool ctl_letters)
{
	for (size_t i = 0; i < n && !b->trunc; i++) {
		uint8_t ch = p[i];

		if (ch == '"' || ch == '\\') {
			char two[2] = {'\\', (char)ch};
			sb_put(b, two, 2);
		} else if (ctl_letters && (ch == '\t' || ch == '\r' || ch == '\n')) {
			sb_puts(b, ch == '\t' ? "\\t" : ch == '\r' ? "\\r" : "\\n");
		} else if (ch < 0x20 || ch > 0x7e) {
			char ddd[4];

			sb_put(b, ddd, (size_t)(put_ddd(ddd, ch) - ddd));
		} else {
			sb_putc(b, (char)ch);
		}
	}
}

/* ---- registries (RFC 6895 / IANA names as miekg/dns spells them) -------------- */

struct code_name {
	uint16_t code;
	uint8_t len; /* strlen(name) */
	const char *name;
};

/* A string literal as the (len, name) pair of the tables below. */
#define NAME_LEN(s) sizeof(s) - 1, s

/* RR types below 259 by code; the few above in dns_types_high. */
struct type_name {
	uint8_t len;
	const char *name; /* NULL: unassigned */
};

static const struct type_name dns_types[] = {
    [1] = {NAME_LEN("A")},           [2] = {NAME_LEN("NS")},     [3] = {NAME_LEN("MD")},
    [4] = {NAME_LEN("MF")},          [5] = {NAME_LEN("CNAME")},  [6] = {NAME_LEN("SOA")},
    [7] = {NAME_LEN("MB")},          [8] = {NAME_LEN("MG")},     [9] = {NAME_LEN("MR")},
    [10] = {NAME_LEN("NULL")},       [12] = {NAME_LEN("PTR")},   [13] = {NAME_LEN("HINFO")},
    [14] = {NAME_LEN("MINFO")},      [15] = {NAME_LEN("MX")},    [16] = {NAME_LEN("TXT")},
    [17] = {NAME_LEN("RP")},         [18] = {NAME_LEN("AFSDB")}, [19] = {NAME_LEN("X25")},
    [20] = {NAME_LEN("ISDN")},       [21] = {NAME_LEN("RT")},    [22] = {NAME_LEN("NSAP")},
    [23] = {NAME_LEN("NSAP-PTR")},   [24] = {NAME_LEN("SIG")},   [25] = {NAME_LEN("KEY")},
    [26] = {NAME_LEN("PX")},         [27] = {NAME_LEN("GPOS")},  [28] = {NAME_LEN("AAAA")},
    [29] = {NAME_LEN("LOC")},        [30] = {NAME_LEN("NXT")},   [31] = {NAME_LEN("EID")},
    [32] = {NAME_LEN("NIMLOC")},     [33] = {NAME_LEN("SRV")},   [34] = {NAME_LEN("ATMA")},
    [35] = {NAME_LEN("NAPTR")},      [36] = {NAME_LEN("KX")},    [37] = {NAME_LEN("CERT")},
    [38] = {NAME_LEN("A6")},         [39] = {NAME_LEN("DNAME")}, [41] = {NAME_LEN("OPT")},
    [42] = {NAME_LEN("APL")},        [43] = {NAME_LEN("DS")},    [44] = {NAME_LEN("SSHFP")},
    [45] = {NAME_LEN("IPSECKEY")},   [46] = {NAME_LEN("RRSIG")}, [47] = {NAME_LEN("NSEC")},
    [48] = {NAME_LEN("DNSKEY")},     [49] = {NAME_LEN("DHCID")}, [50] = {NAME_LEN("NSEC3")},
    [51] = {NAME_LEN("NSEC3PARAM")}, [52] = {NAME_LEN("TLSA")},  [53] = {NAME_LEN("SMIMEA")},
    [55] = {NAME_LEN("HIP")},        [56] = {NAME_LEN("NINFO")}, [57] = {NAME_LEN("RKEY")},
    [58] = {NAME_LEN("TALINK")},     [59] = {NAME_LEN("CDS")},   [60] = {NAME_LEN("CDNSKEY")},
    [61] = {NAME_LEN("OPENPGPKEY")}, [62] = {NAME_LEN("CSYNC")}, [63] = {NAME_LEN("ZONEMD")},
    [64] = {NAME_LEN("SVCB")},       [65] = {NAME_LEN("HTTPS")}, [99] = {NAME_LEN("SPF")},
    [100] = {NAME_LEN("UINFO")},     [101] = {NAME_LEN("UID")},  [102] = {NAME_LEN("GID")},
    [103] = {NAME_LEN("UNSPEC")},    [104] = {NAME_LEN("NID")},  [105] = {NAME_LEN("L32")},
    [106] = {NAME_LEN("L64")},       [107] = {NAME_LEN("LP")},   [108] = {NAME_LEN("EUI48")},
    [109] = {NAME_LEN("EUI64")},     [249] = {NAME_LEN("TKEY")}, [250] = {NAME_LEN("TSIG")},
    [251] = {NAME_LEN("IXFR")},      [252] = {NAME_LEN("AXFR")}, [253] = {NAME_LEN("MAILB")},
    [254] = {NAME_LEN("MAILA")},     [255] = {NAME_LEN("ANY")},  [256] = {NAME_LEN("URI")},
    [257] = {NAME_LEN("CAA")},       [258] = {NAME_LEN("AVC")},
};

static const struct code_name dns_types_high[] = {
    {32768, NAME_LEN("TA")},
    {32769, NAME_LEN("DLV")},
};

static const struct code_name dns_classes[] = {
    {1, NAME_LEN("IN")}, {2, NAME_LEN("CS")},     {3, NAME_LEN("CH")},
    {4, NAME_LEN("HS")}, {254, NAME_LEN("NONE")}, {255, NAME_LEN("ANY")},
};

static const struct code_name dns_rcodes[] = {
    {0, NAME_LEN("NOERROR")},    {1, NAME_LEN("FORMERR")},  {2, NAME_LEN("SERVFAIL")},
    {3, NAME_LEN("NXDOMAIN")},   {4, NAME_LEN("NOTIMP")},   {5, NAME_LEN("REFUSED")},
    {6, NAME_LEN("YXDOMAIN")},   {7, NAME_LEN("YXRRSET")},  {8, NAME_LEN("NXRRSET")},
    {9, NAME_LEN("NOTAUTH")},    {10, NAME_LEN("NOTZONE")}, {16, NAME_LEN("BADSIG")},
    {17, NAME_LEN("BADKEY")},    {18, NAME_LEN("BADTIME")}, {19, NAME_LEN("BADMODE")},
    {20, NAME_LEN("BADNAME")},   {21, NAME_LEN("BADALG")},  {22, NAME_LEN("BADTRUNC")},
    {23, NAME_LEN("BADCOOKIE")},
};

static const struct code_name dns_opcodes[] = {
    {0, NAME_LEN("QUERY")},  {1, NAME_LEN("IQUERY")}, {2, NAME_LEN("STATUS")},
    {4, NAME_LEN("NOTIFY")}, {5, NAME_LEN("UPDATE")},
};

/* RFC 8624 / IANA DNSSEC algorithm numbers (miekg AlgorithmToString). */
static const struct code_name dns_algorithms[] = {
    {1, NAME_LEN("RSAMD5")},
    {2, NAME_LEN("DH")},
    {3, NAME_LEN("DSA")},
    {5, NAME_LEN("RSASHA1")},
    {6, NAME_LEN("DSA-NSEC3-SHA1")},
    {7, NAME_LEN("RSASHA1-NSEC3-SHA1")},
    {8, NAME_LEN("RSASHA256")},
    {10, NAME_LEN("RSASHA512")},
    {12, NAME_LEN("ECC-GOST")},
    {13, NAME_LEN("ECDSAP256SHA256")},
    {14, NAME_LEN("ECDSAP384SHA384")},
    {15, NAME_LEN("ED25519")},
    {16, NAME_LEN("ED448")},
    {252, NAME_LEN("INDIRECT")},
    {253, NAME_LEN("PRIVATEDNS")},
    {254, NAME_LEN("PRIVATEOID")},
};

/* DS digest types and NSEC3 hash algorithms (miekg HashToString). */
static const struct code_name dns_hashes[] = {
    {1, NAME_LEN("SHA1")},   {2, NAME_LEN("SHA256")}, {3, NAME_LEN("GOST94")},
    {4, NAME_LEN("SHA384")}, {5, NAME_LEN("SHA512")},
};

/* Text that is not NUL-terminated: a static name, or a number in the caller's buffer. */
struct txt {
	const char *p;
	size_t len;
};

/* Linear: the tables are short and their most frequent codes come first. */
static const struct code_name *code_lookup(const struct code_name *t, size_t n, unsigned code)
{
	for (size_t i = 0; i < n; i++)
		if (t[i].code == code)
			return &t[i];
	return NULL;
}

#define LOOKUP(table, code) code_lookup(table, sizeof(table) / sizeof(table[0]), code)

/* Name or decimal number (Packetbeat: dnsTypeToString etc. fall back to the number);
 * buf holds 11 bytes. */
static struct txt code_text(const struct code_name *t, size_t n, unsigned code, char *buf)
{
	const struct code_name *e = code_lookup(t, n, code);

	if (e)
		return (struct txt){e->name, e->len};
	return (struct txt){buf, u32_text(code, buf)};
}

#define CODE_TEXT(table, code, buf) code_text(table, sizeof(table) / sizeof(table[0]), code, buf)

/* An RR type's name or number (the hot lookup: a direct index); buf holds 11 bytes. */
static struct txt type_text(unsigned code, char *buf)
{
	if (code < sizeof(dns_types) / sizeof(dns_types[0]) && dns_types[code].name)
		return (struct txt){dns_types[code].name, dns_types[code].len};
	return CODE_TEXT(dns_types_high, code, buf);
}

/* Packetbeat: unknown RCODEs are "Unknown N"; buf holds 19 bytes. */
static struct txt rcode_text(unsigned rcode, char *buf)
{
	const struct code_name *e = LOOKUP(dns_rcodes, rcode);

	if (e)
		return (struct txt){e->name, e->len};
	memcpy(buf, "Unknown ", 8);
	return (struct txt){buf, 8 + u32_text(rcode, buf + 8)};
}

/* ---- names ----------------------------------------------------------------- */

struct dns_labels {
	unsigned n;
	uint16_t start[DNS_MAX_LABELS]; /* offset of each label in the output text */
};

/* The label bytes miekg escapes, one bit per byte value: outside 0x20..0x7e as
 * "\DDD", its isDomainNameLabelSpecial characters . space ' @ ; ( ) " \ as "\c". */
#define LABEL_BIT(ch) (1u << ((ch)&31))
static const uint32_t label_escaped[8] = {
    0xffffffffu, /* 0x00-0x1f */
    LABEL_BIT(' ') | LABEL_BIT('"') | LABEL_BIT('\'') | LABEL_BIT('(') | LABEL_BIT(')') |
	LABEL_BIT('.') | LABEL_BIT(';'),
    LABEL_BIT('@') | LABEL_BIT('\\'),
    LABEL_BIT(0x7f),
    0xffffffffu,
    0xffffffffu,
    0xffffffffu,
    0xffffffffu, /* 0x80-0xff */
};

#define DNS_LABEL_MAX 63 /* RFC 1035 §2.3.4; the length byte's top bits are 00 */

/* One label's text at d, which has room for 4 bytes per label byte; returns the end. */
static char *label_text(char *d, const uint8_t *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint8_t ch = s[i];

		if (!(label_escaped[ch >> 5] & LABEL_BIT(ch))) {
			*d++ = (char)ch;
		} else if (ch >= 0x20 && ch <= 0x7e) {
			*d++ = '\\';
			*d++ = (char)ch;
		} else {
			d = put_ddd(d, ch);
		}
	}
	return d;
}

/* Append a label (n <= DNS_LABEL_MAX): straight into b when even the all-escaped
 * text fits, else through sb_put() to cut it at the cap like any other text. */
static void sb_label(struct sb *b, const uint8_t *s, size_t n)
{
	char tmp[4 * DNS_LABEL_MAX];
	bool direct = b->cap - b->len > 4 * n;
	char *d = direct ? b->p + b->len : tmp;
	char *end = label_text(d, s, n);

	if (direct) {
		*end = '\0';
		b->len = (size_t)(end - b->p);
	} else {
		sb_put(b, tmp, (size_t)(end - tmp));
	}
}

/* Read the name at the cursor into `out` (may be NULL: validate only) in
 * presentation form without the trailing dot, the root as ".". The cursor ends
 * after the name's bytes at its original position (after the first pointer).
 * `labels` (may be NULL) receives the label starts. Returns the number of
 * compression pointers followed, or -EBADMSG. */
static int dns_read_name(struct cursor *c, struct sb *out, struct dns_labels *labels)
{
	size_t resume = 0, wire = 1; /* the final zero byte */
	size_t limit = 0;            /* a pointer must go strictly before this */
	size_t base = out ? out->len : 0;
	unsigned jumps = 0, nlabels = 0;

	for (;;) {
		size_t at = c->off;
		uint8_t b = cur_u8(c);

		if (c->err)
			return -EBADMSG;
		if (b == 0)
			break;
		if ((b & 0xc0) == 0xc0) {
			size_t target = (size_t)(b & 0x3f) << 8 | cur_u8(c);

			if (c->err || ++jumps > DNS_MAX_JUMPS)
				return -EBADMSG;
			if (jumps == 1) {
				resume = c->off;
				limit = at;
			}
			if (target >= limit)
				return -EBADMSG; /* forward reference or loop */
			limit = target;
			cur_seek(c, target);
			continue;
		}
		if (b & 0xc0)
			return -EBADMSG; /* 01/10: extended label types (RFC 6891 §5) */
		wire += (size_t)b + 1;
		if (wire > DNS_NAME_WIRE_MAX)
			return -EBADMSG;
		const uint8_t *lab = cur_bytes(c, b);
		if (!lab)
			return -EBADMSG;
		if (out) {
			if (nlabels)
				sb_putc(out, '.');
			if (labels && nlabels < DNS_MAX_LABELS)
				labels->start[nlabels] = (uint16_t)(out->len - base);
			sb_label(out, lab, b);
		}
		nlabels++;
	}
	if (out && nlabels == 0)
		sb_putc(out, '.');
	if (labels)
		labels->n = nlabels < DNS_MAX_LABELS ? nlabels : DNS_MAX_LABELS;
	if (jumps)
		cur_seek(c, resume);
	return (int)jumps;
}

/* Move past a name dns_scan() accepted: its labels up to the zero byte, or up to
 * and including its first pointer. */
static void skip_name(struct cursor *c)
{
	for (;;) {
		uint8_t b = cur_u8(c);

		if (c->err || b == 0)
			return;
		if ((b & 0xc0) == 0xc0) {
			cur_skip(c, 1);
			return;
		}
		cur_skip(c, b);
	}
}

/* Most owner names in a response are a pointer to the first question's name,
 * which starts right after the header. */
static bool at_question_pointer(const struct cursor *c)
{
	return !c->err && c->len - c->off >= 2 && c->p[c->off] == (0xc0 | DNS_HDR_LEN >> 8) &&
	       c->p[c->off + 1] == (DNS_HDR_LEN & 0xff);
}

/* ---- registered domain: a small built-in stand-in for the public suffix list -- */

/* Two-label public suffixes that matter most in practice. Everything else uses the
 * last label as the suffix (the PSL's default "*" rule). */
struct suffix {
	uint8_t len;
	const char *s; /* lowercase */
};

/* Sorted by length, then bytes: two_label_suffix() searches it by halves. */
static const struct suffix dns_two_label_suffixes[] = {
    {NAME_LEN("ac.jp")},          {NAME_LEN("ac.uk")},
    {NAME_LEN("co.id")},          {NAME_LEN("co.il")},
    {NAME_LEN("co.in")},          {NAME_LEN("co.jp")},
    {NAME_LEN("co.kr")},          {NAME_LEN("co.nz")},
    {NAME_LEN("co.th")},          {NAME_LEN("co.uk")},
    {NAME_LEN("co.za")},          {NAME_LEN("go.jp")},
    {NAME_LEN("me.uk")},          {NAME_LEN("ne.jp")},
    {NAME_LEN("or.jp")},          {NAME_LEN("or.kr")},
    {NAME_LEN("com.ar")},         {NAME_LEN("com.au")},
    {NAME_LEN("com.br")},         {NAME_LEN("com.cn")},
    {NAME_LEN("com.hk")},         {NAME_LEN("com.mx")},
    {NAME_LEN("com.my")},         {NAME_LEN("com.ph")},
    {NAME_LEN("com.pl")},         {NAME_LEN("com.sg")},
    {NAME_LEN("com.tr")},         {NAME_LEN("com.tw")},
    {NAME_LEN("com.ua")},         {NAME_LEN("com.vn")},
    {NAME_LEN("edu.au")},         {NAME_LEN("edu.cn")},
    {NAME_LEN("gov.au")},         {NAME_LEN("gov.cn")},
    {NAME_LEN("gov.uk")},         {NAME_LEN("ltd.uk")},
    {NAME_LEN("net.au")},         {NAME_LEN("net.br")},
    {NAME_LEN("net.cn")},         {NAME_LEN("net.in")},
    {NAME_LEN("net.nz")},         {NAME_LEN("net.uk")},
    {NAME_LEN("org.au")},         {NAME_LEN("org.br")},
    {NAME_LEN("org.cn")},         {NAME_LEN("org.in")},
    {NAME_LEN("org.nz")},         {NAME_LEN("org.uk")},
    {NAME_LEN("plc.uk")},         {NAME_LEN("ip6.arpa")},
    {NAME_LEN("github.io")},      {NAME_LEN("gitlab.io")},
    {NAME_LEN("appspot.com")},    {NAME_LEN("blogspot.com")},
    {NAME_LEN("in-addr.arpa")},   {NAME_LEN("herokuapp.com")},
    {NAME_LEN("cloudfront.net")}, {NAME_LEN("azurewebsites.net")},
};

static int ascii_lower(int ch)
{
	return ch >= 'A' && ch <= 'Z' ? ch + ('a' - 'A') : ch;
}

/* Order of s[0, len) against x: by length, then by bytes with s lowercased. */
static int suffix_cmp(const char *s, size_t len, const struct suffix *x)
{
	if (len != x->len)
		return len < x->len ? -1 : 1;
	for (size_t k = 0; k < len; k++) {
		int ch = ascii_lower((unsigned char)s[k]);

		if (ch != (unsigned char)x->s[k])
			return ch < (unsigned char)x->s[k] ? -1 : 1;
	}
	return 0;
}

/* s[0, len) is one of the suffixes, ignoring ASCII case (hostbeat runs in the C
 * locale, where strcasecmp() compares exactly so). */
static bool two_label_suffix(const char *s, size_t len)
{
	size_t lo = 0, hi = sizeof(dns_two_label_suffixes) / sizeof(dns_two_label_suffixes[0]);

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = suffix_cmp(s, len, &dns_two_label_suffixes[mid]);

		if (c == 0)
			return true;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return false;
}

/* dns.question.{etld_plus_one,registered_domain,subdomain,top_level_domain}; only
 * when the name has a label left of its public suffix (as Go's publicsuffix). */
static void emit_domain_parts(struct event *ev, const char *name, size_t len,
			      const struct dns_labels *lab)
{
	unsigned n = lab->n, nsuf;
	size_t reg, tld;

	if (n < 2)
		return;
	nsuf = two_label_suffix(name + lab->start[n - 2], len - lab->start[n - 2]) ? 2 : 1;
	if (n <= nsuf)
		return;
	reg = lab->start[n - nsuf - 1];
	tld = lab->start[n - nsuf];
	ev_set_str(ev, "dns.question.etld_plus_one", name + reg, len - reg);
	ev_set_str(ev, "dns.question.registered_domain", name + reg, len - reg);
	ev_set_str(ev, "dns.question.top_level_domain", name + tld, len - tld);
	if (reg > 0)
		ev_set_str(ev, "dns.question.subdomain", name, reg - 1);
}

/* ---- pass 1: validate and summarise ------------------------------------------ */

struct dns_summary {
	uint16_t id, flags;
	uint16_t counts[4]; /* QD AN NS AR as in the header */
	unsigned opcode;
	unsigned rcode; /* with the OPT extended bits */
	bool has_opt;
	uint16_t udp_size;
	uint8_t ext_rcode, version;
	bool do_bit;
	bool capped; /* more entries than max_records: the rest was not walked */
};

/* Walk the rest of an RR after its owner name and skip its RDATA. Returns the RR
 * type; rd_off and rd_len locate the RDATA. Errors are left in c->err. */
static uint16_t rr_fixed(struct cursor *c, uint16_t *klass, uint32_t *ttl, size_t *rd_off,
			 size_t *rd_len)
{
	uint16_t type, rdlen;

	type = cur_be16(c);
	*klass = cur_be16(c);
	*ttl = cur_be32(c);
	rdlen = cur_be16(c);
	*rd_off = c->off;
	*rd_len = rdlen;
	cur_skip(c, rdlen);
	return type;
}

static int dns_scan(const uint8_t *msg, size_t len, uint64_t max_records, struct dns_summary *s)
{
	struct cursor c;
	uint64_t walked = 0;
	/* the first question's name has no pointer: a pointer to it reads the same
	 * labels (within the same limits), so it needs no second walk */
	bool q0_plain = false;

	memset(s, 0, sizeof(*s));
	cur_init(&c, msg, len);
	s->id = cur_be16(&c);
	s->flags = cur_be16(&c);
	for (int i = 0; i < 4; i++)
		s->counts[i] = cur_be16(&c);
	if (c.err)
		return -EBADMSG;
	s->opcode = (s->flags >> 11) & 0xf;
	s->rcode = s->flags & 0xf;

	for (unsigned i = 0; i < s->counts[0] && !c.err; i++, walked++) {
		if (walked >= max_records) {
			s->capped = true;
			return 0;
		}
		int jumps = dns_read_name(&c, NULL, NULL);

		if (jumps < 0)
			return -EBADMSG;
		if (i == 0)
			q0_plain = jumps == 0;
		cur_skip(&c, 4);
	}
	for (int sec = 1; sec < 4; sec++) {
		for (unsigned i = 0; i < s->counts[sec] && !c.err; i++, walked++) {
			uint16_t type, klass;
			uint32_t ttl;
			size_t rd_off, rd_len;

			if (walked >= max_records) {
				s->capped = true;
				goto done;
			}
			if (q0_plain && at_question_pointer(&c))
				cur_skip(&c, 2);
			else if (dns_read_name(&c, NULL, NULL) < 0)
				return -EBADMSG;
			type = rr_fixed(&c, &klass, &ttl, &rd_off, &rd_len);
			if (!c.err && sec == 3 && type == DNS_TYPE_OPT && !s->has_opt) {
				s->has_opt = true;
				s->udp_size = klass;
				s->ext_rcode = (uint8_t)(ttl >> 24);
				s->version = (uint8_t)(ttl >> 16);
				s->do_bit = (ttl & 0x8000) != 0;
			}
		}
	}
done:
	if (c.err)
		return -EBADMSG;
	if (s->has_opt)
		s->rcode |= (unsigned)s->ext_rcode << 4;
	return 0;
}

/* ---- RDATA rendering ---------------------------------------------------------- */

struct rr_extra {
	const char *key; /* static member name */
	bool num;        /* number (Packetbeat int) vs string */
	uint64_t u;
	size_t off, len; /* in rr_text.xs */
};

struct rr_text {
	struct sb data;
	struct sb xs;
	struct rr_extra x[DNS_RR_MAX_EXTRA];
	unsigned nx;
};

static void rr_num(struct rr_text *t, const char *key, uint64_t v)
{
	if (t->nx < DNS_RR_MAX_EXTRA)
		t->x[t->nx++] = (struct rr_extra){.key = key, .num = true, .u = v};
}

/* Start a string extra: its text is what is appended to t->xs until rr_str_end(). */
static void rr_str_begin(struct rr_text *t, const char *key)
{
	if (t->nx < DNS_RR_MAX_EXTRA)
		t->x[t->nx] = (struct rr_extra){.key = key, .off = t->xs.len};
}

static void rr_str_end(struct rr_text *t)
{
	if (t->nx < DNS_RR_MAX_EXTRA) {
		t->x[t->nx].len = t->xs.len - t->x[t->nx].off;
		t->nx++;
	}
}

/* A string extra with the text of s. */
static void rr_str(struct rr_text *t, const char *key, struct txt s)
{
	rr_str_begin(t, key);
	sb_put(&t->xs, s.p, s.len);
	rr_str_end(t);
}

/* A string extra holding a decimal number (Packetbeat prints these as strings). */
static void rr_str_u32(struct rr_text *t, const char *key, uint32_t v)
{
	char buf[16];

	rr_str(t, key, (struct txt){buf, u32_text(v, buf)});
}

/* Bytes left in the RDATA (the cursor's end is the RDATA end). */
static size_t rd_left(const struct cursor *c)
{
	return cur_left(c);
}

/* The rest of the RDATA: returns it and its length in *n, and moves to the end. */
static const uint8_t *rd_rest(struct cursor *c, size_t *n)
{
	const uint8_t *p;

	*n = cur_left(c);
	p = cur_bytes(c, *n);
	if (!p)
		*n = 0;
	return p;
}

static void render_type_bitmap(struct cursor *c, struct sb *out)
{
	char num[16];
	bool first = true;

	while (!c->err && rd_left(c) > 0) {
		uint8_t window = cur_u8(c), n = cur_u8(c);
		const uint8_t *bits;

		if (n == 0 || n > 32) {
			c->err = true;
			return;
		}
		bits = cur_bytes(c, n);
		if (!bits)
			return;
		for (unsigned i = 0; i < n * 8u; i++) {
			if (!(bits[i / 8] & (0x80 >> (i % 8))))
				continue;
			if (!first)
				sb_putc(out, ' ');
			first = false;
			struct txt tn = type_text((unsigned)window << 8 | i, num);

			sb_put(out, tn.p, tn.len);
		}
	}
}

/* One <character-string> (RFC 1035 §3.3): length byte + bytes. */
static void render_cstring(struct cursor *c, struct sb *out, bool quoted)
{
	uint8_t n = cur_u8(c);
	const uint8_t *s = cur_bytes(c, n);

	if (!s)
		return;
	if (quoted)
		sb_putc(out, '"');
	sb_escaped(out, s, n, false);
	if (quoted)
		sb_putc(out, '"');
}

static const char *svcb_key_name(unsigned key, char *buf, size_t size)
{
	static const char *const names[] = {"mandatory", "alpn", "no-default-alpn", "port",
					    "ipv4hint",  "ech",  "ipv6hint"};

	if (key < sizeof(names) / sizeof(names[0]))
		return names[key];
	snprintf(buf, size, "key%u", key);
	return buf;
}

/* SVCB/HTTPS SvcParams (RFC 9460 §2.1) in presentation form. */
static void render_svc_params(struct cursor *c, struct sb *out)
{
	char kb[16];

	while (!c->err && rd_left(c) > 0) {
		uint16_t key = cur_be16(c), n = cur_be16(c);
		const uint8_t *v = cur_bytes(c, n);
		struct cursor vc;

		if (!v)
			return;
		cur_init(&vc, v, n);
		sb_putc(out, ' ');
		sb_puts(out, svcb_key_name(key, kb, sizeof(kb)));
		if (key == 2)
			continue;
		sb_putc(out, '=');
		switch (key) {
		case 0: /* mandatory: list of keys */
			for (bool first = true; cur_left(&vc) >= 2; first = false) {
				if (!first)
					sb_putc(out, ',');
				sb_puts(out, svcb_key_name(cur_be16(&vc), kb, sizeof(kb)));
			}
			break;
		case 1: /* alpn: character-strings */
			for (bool first = true; !vc.err && cur_left(&vc) > 0; first = false) {
				if (!first)
					sb_putc(out, ',');
				render_cstring(&vc, out, false);
			}
			break;
		case 3:
			sb_printf(out, "%u", cur_be16(&vc));
			break;
		case 4:
		case 6: {
			size_t alen = key == 4 ? 4 : 16;

			for (bool first = true; cur_left(&vc) >= alen; first = false) {
				struct hb_ip ip = {.ver = key == 4 ? 4 : 6};
				char txt[HB_IP_STRLEN];

				memcpy(ip.a, cur_bytes(&vc, alen), alen);
				if (!first)
					sb_putc(out, ',');
				sb_put(out, txt, hb_ip_format(&ip, txt));
			}
			break;
		}
		case 5:
			sb_base64(out, v, n);
			break;
		default:
			sb_putc(out, '"');
			sb_escaped(out, v, n, false);
			sb_putc(out, '"');
			break;
		}
	}
}

static void render_time(struct sb *out, uint32_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (!gmtime_r(&tt, &tm))
		return;
	sb_printf(out, "%04d%02d%02d%02d%02d%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
		  tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* Render the RDATA of one RR into t. `msg`/`rd_off`/`rd_len` locate it; names may
 * point anywhere before. Returns false when the RDATA does not have the layout
 * of its type (the caller then prints it as an unknown type). Extras are added in
 * alphabetical key order, the order Packetbeat's text form uses. */
static bool render_rdata(const uint8_t *msg, size_t rd_off, size_t rd_len, uint16_t type,
			 struct rr_text *t)
{
	struct cursor c;
	struct sb *d = &t->data;
	const uint8_t *rest;
	size_t nrest;
	char nb[16];

	cur_init(&c, msg, rd_off + rd_len);
	cur_seek(&c, rd_off);
	switch (type) {
	case 1: /* A */
	case 28: /* AAAA */ {
		struct hb_ip ip = {.ver = type == 1 ? 4 : 6};
		char txt[HB_IP_STRLEN];

		const uint8_t *a = cur_bytes(&c, rd_len);

		if (!a || rd_len != hb_ip_len(&ip))
			return false;
		memcpy(ip.a, a, rd_len);
		sb_put(d, txt, hb_ip_format(&ip, txt));
		break;
	}
	case 2:
	case 3:
	case 4:
	case 5:
	case 7:
	case 8:
	case 9:
	case 12:
	case 39:
		/* NS MD MF CNAME MB MG MR PTR DNAME */
		if (dns_read_name(&c, d, NULL) < 0)
			return false;
		break;
	case 15: /* MX */
	case 36: /* KX */
		rr_num(t, "preference", cur_be16(&c));
		if (dns_read_name(&c, d, NULL) < 0)
			return false;
		break;
	case 6: { /* SOA: data = MNAME */
		uint32_t serial, refresh, retry, expire, minimum;

		if (dns_read_name(&c, d, NULL) < 0)
			return false;
		rr_str_begin(t, "rname");
		if (dns_read_name(&c, &t->xs, NULL) < 0)
			return false;
		size_t rname = t->nx;
		rr_str_end(t);
		serial = cur_be32(&c);
		refresh = cur_be32(&c);
		retry = cur_be32(&c);
		expire = cur_be32(&c);
		minimum = cur_be32(&c);
		/* keep alphabetical order: expire minimum refresh retry rname serial */
		struct rr_extra rn = t->x[rname];
		t->nx = (unsigned)rname;
		rr_num(t, "expire", expire);
		rr_num(t, "minimum", minimum);
		rr_num(t, "refresh", refresh);
		rr_num(t, "retry", retry);
		if (t->nx < DNS_RR_MAX_EXTRA)
			t->x[t->nx++] = rn;
		rr_num(t, "serial", serial);
		break;
	}
	case 33: { /* SRV */
		uint16_t prio = cur_be16(&c), weight = cur_be16(&c), port = cur_be16(&c);

		rr_num(t, "port", port);
		rr_num(t, "priority", prio);
		rr_num(t, "weight", weight);
		if (dns_read_name(&c, d, NULL) < 0)
			return false;
		break;
	}
	case 16: /* TXT */
	case 99: /* SPF */
		for (bool first = true; !c.err && rd_left(&c) > 0; first = false) {
			if (!first)
				sb_putc(d, ' ');
			render_cstring(&c, d, false);
		}
		break;
	case 13: /* HINFO */
		render_cstring(&c, d, true);
		sb_putc(d, ' ');
		render_cstring(&c, d, true);
		break;
	case 257: { /* CAA */
		uint8_t flags = cur_u8(&c), taglen = cur_u8(&c);
		const uint8_t *tag = cur_bytes(&c, taglen);

		if (!tag)
			return false;
		sb_printf(d, "%u ", flags);
		sb_escaped(d, tag, taglen, false);
		sb_puts(d, " \"");
		rest = rd_rest(&c, &nrest);
		sb_escaped(d, rest, nrest, false);
		sb_putc(d, '"');
		break;
	}
	case 35: { /* NAPTR */
		uint16_t order = cur_be16(&c), pref = cur_be16(&c);

		sb_printf(d, "%u %u ", order, pref);
		for (int i = 0; i < 3; i++) {
			render_cstring(&c, d, true);
			sb_putc(d, ' ');
		}
		if (c.err || dns_read_name(&c, d, NULL) < 0)
			return false;
		break;
	}
	case 43:   /* DS */
	case 59: { /* CDS */
		uint16_t tag = cur_be16(&c);
		uint8_t alg = cur_u8(&c), dt = cur_u8(&c);

		if (c.err)
			return false;
		rr_str(t, "algorithm", CODE_TEXT(dns_algorithms, alg, nb));
		rr_str(t, "digest_type", CODE_TEXT(dns_hashes, dt, nb));
		rr_str_u32(t, "key_tag", tag);
		rest = rd_rest(&c, &nrest);
		sb_hex(d, rest, nrest, true);
		break;
	}
	case 48:   /* DNSKEY */
	case 60: { /* CDNSKEY */
		uint16_t flags = cur_be16(&c);
		uint8_t proto = cur_u8(&c), alg = cur_u8(&c);

		if (c.err)
			return false;
		rr_str(t, "algorithm", CODE_TEXT(dns_algorithms, alg, nb));
		rr_str_u32(t, "flags", flags);
		rr_str_u32(t, "protocol", proto);
		rest = rd_rest(&c, &nrest);
		sb_base64(d, rest, nrest);
		break;
	}
	case 46: { /* RRSIG */
		uint16_t covered = cur_be16(&c);
		uint8_t alg = cur_u8(&c), labels = cur_u8(&c);
		uint32_t ottl = cur_be32(&c), exp = cur_be32(&c), inc = cur_be32(&c);
		uint16_t tag = cur_be16(&c);

		if (c.err)
			return false;
		rr_str(t, "algorithm", CODE_TEXT(dns_algorithms, alg, nb));
		rr_str_begin(t, "expiration");
		render_time(&t->xs, exp);
		rr_str_end(t);
		rr_str_begin(t, "inception");
		render_time(&t->xs, inc);
		rr_str_end(t);
		rr_str_u32(t, "key_tag", tag);
		rr_str_u32(t, "labels", labels);
		rr_str_u32(t, "original_ttl", ottl);
		rr_str_begin(t, "signer_name");
		if (dns_read_name(&c, &t->xs, NULL) < 0)
			return false;
		rr_str_end(t);
		rr_str(t, "type_covered", type_text(covered, nb));
		rest = rd_rest(&c, &nrest);
		sb_base64(d, rest, nrest);
		break;
	}
	case 47: /* NSEC */
		if (dns_read_name(&c, d, NULL) < 0)
			return false;
		rr_str_begin(t, "type_bits");
		render_type_bitmap(&c, &t->xs);
		rr_str_end(t);
		break;
	case 50:   /* NSEC3 */
	case 51: { /* NSEC3PARAM */
		uint8_t hash = cur_u8(&c), flags = cur_u8(&c);
		uint16_t iter = cur_be16(&c);
		uint8_t slen = cur_u8(&c);
		const uint8_t *salt = cur_bytes(&c, slen);

		if (!salt)
			return false;
		rr_str_u32(t, "flags", flags);
		rr_str(t, "hash", CODE_TEXT(dns_hashes, hash, nb));
		rr_str_u32(t, "iterations", iter);
		if (type == 51) { /* Packetbeat: data = salt */
			if (slen)
				sb_hex(d, salt, slen, true);
			else
				sb_putc(d, '-');
			break;
		}
		rr_str_begin(t, "salt");
		if (slen)
			sb_hex(&t->xs, salt, slen, true);
		else
			sb_putc(&t->xs, '-');
		rr_str_end(t);
		uint8_t hlen = cur_u8(&c);
		const uint8_t *next = cur_bytes(&c, hlen);
		if (!next)
			return false;
		sb_base32hex(d, next, hlen);
		rr_str_begin(t, "type_bits");
		render_type_bitmap(&c, &t->xs);
		rr_str_end(t);
		break;
	}
	case 52:   /* TLSA */
	case 53: { /* SMIMEA */
		uint8_t usage = cur_u8(&c), sel = cur_u8(&c), mt = cur_u8(&c);

		if (c.err)
			return false;
		sb_printf(d, "%u %u %u ", usage, sel, mt);
		rest = rd_rest(&c, &nrest);
		sb_hex(d, rest, nrest, false);
		break;
	}
	case 44: { /* SSHFP */
		uint8_t alg = cur_u8(&c), fpt = cur_u8(&c);

		if (c.err)
			return false;
		sb_printf(d, "%u %u ", alg, fpt);
		rest = rd_rest(&c, &nrest);
		sb_hex(d, rest, nrest, true);
		break;
	}
	case 64: /* SVCB */
	case 65: /* HTTPS */
		sb_printf(d, "%u ", cur_be16(&c));
		if (c.err || dns_read_name(&c, d, NULL) < 0)
			return false;
		render_svc_params(&c, d);
		break;
	default:
		return false;
	}
	return !c.err;
}

/* Render one RR's data + extras; unknown or malformed RDATA is printed as
 * Packetbeat prints unknown types (escaped bytes). */
static void render_rr(const uint8_t *msg, size_t rd_off, size_t rd_len, uint16_t type,
		      struct rr_text *t)
{
	if (render_rdata(msg, rd_off, rd_len, type, t))
		return;
	t->data.len = 0;
	t->data.trunc = false;
	t->xs.len = 0;
	t->nx = 0;
	sb_escaped(&t->data, msg + rd_off, rd_len, true);
}

/* ---- pass 2: fields ---------------------------------------------------------- */

struct dns_emit {
	struct event *ev;
	const struct dns_cfg *cfg;
	struct sb *text; /* request/response text, NULL when not wanted */
	bool legacy;     /* also set method/query/resource */
};

static const char *const section_keys[4] = {NULL, "dns.answers", "dns.authorities",
					    "dns.additionals"};
static const char *const section_text[4] = {"QUESTION", "ANSWER", "AUTHORITY", "ADDITIONAL"};

static void emit_rr_fields(struct event *ev, const char *key, unsigned elem, const char *name,
			   size_t name_len, uint16_t type, uint16_t klass, uint32_t ttl,
			   const struct rr_text *t)
{
	char tb[16], cb[16], ttl_txt[16];
	struct txt tn = type_text(type, tb), cn = CODE_TEXT(dns_classes, klass, cb);
	size_t n = u32_text(ttl, ttl_txt);

	ev_obj_str(ev, key, elem, "name", name, name_len);
	ev_obj_str(ev, key, elem, "type", tn.p, tn.len);
	ev_obj_str(ev, key, elem, "class", cn.p, cn.len);
	ev_obj_str(ev, key, elem, "ttl", ttl_txt, n);
	for (unsigned i = 0; i < t->nx; i++) {
		if (t->x[i].num)
			ev_obj_uint(ev, key, elem, t->x[i].key, t->x[i].u);
		else
			ev_obj_str(ev, key, elem, t->x[i].key, t->xs.p + t->x[i].off, t->x[i].len);
	}
	ev_obj_str(ev, key, elem, "data", t->data.p, t->data.len);
}

/* Packetbeat's rrToString: string-valued keys "key value, " then the data. */
static void text_rr(struct sb *text, const struct rr_text *t)
{
	for (unsigned i = 0; i < t->nx; i++) {
		if (t->x[i].num)
			continue;
		sb_puts(text, t->x[i].key);
		sb_putc(text, ' ');
		sb_put(text, t->xs.p + t->x[i].off, t->x[i].len);
		sb_puts(text, ", ");
	}
	sb_put(text, t->data.p, t->data.len);
}

static void emit_header(const struct dns_emit *e, const struct dns_summary *s)
{
	struct event *ev = e->ev;
	char ob[16], rb[24];
	struct txt opcode = CODE_TEXT(dns_opcodes, s->opcode, ob);
	struct txt rcode = rcode_text(s->rcode, rb);

	if (s->flags & DNS_QR)
		ev_set_str(ev, "dns.type", "answer", 6);
	else
		ev_set_str(ev, "dns.type", "query", 5);
	ev_set_uint(ev, "dns.id", s->id);
	ev_set_str(ev, "dns.op_code", opcode.p, opcode.len);
	if (e->legacy)
		ev_set_str(ev, "method", opcode.p, opcode.len);
	ev_set_str(ev, "dns.response_code", rcode.p, rcode.len);
	ev_set_bool(ev, "dns.flags.authoritative", s->flags & DNS_AA);
	ev_set_bool(ev, "dns.flags.truncated_response", s->flags & DNS_TC);
	ev_set_bool(ev, "dns.flags.recursion_desired", s->flags & DNS_RD);
	ev_set_bool(ev, "dns.flags.recursion_available", s->flags & DNS_RA);
	ev_set_bool(ev, "dns.flags.authentic_data", s->flags & DNS_AD);
	ev_set_bool(ev, "dns.flags.checking_disabled", s->flags & DNS_CD);
	if (s->flags & DNS_AA)
		ev_append_str(ev, "dns.header_flags", "AA", 2);
	if (s->flags & DNS_TC)
		ev_append_str(ev, "dns.header_flags", "TC", 2);
	if (s->flags & DNS_RD)
		ev_append_str(ev, "dns.header_flags", "RD", 2);
	if (s->flags & DNS_RA)
		ev_append_str(ev, "dns.header_flags", "RA", 2);
	if (s->flags & DNS_AD)
		ev_append_str(ev, "dns.header_flags", "AD", 2);
	if (s->flags & DNS_CD)
		ev_append_str(ev, "dns.header_flags", "CD", 2);
	if (s->has_opt && s->do_bit)
		ev_append_str(ev, "dns.header_flags", "DO", 2);
	if (s->has_opt) {
		char v[16], xb[24];
		/* miekg's ExtendedRcode(): the upper 8 bits only, shifted into place. */
		struct txt ext = rcode_text((unsigned)s->ext_rcode << 4, xb);

		ev_set_str(ev, "dns.opt.version", v, u32_text(s->version, v));
		ev_set_bool(ev, "dns.opt.do", s->do_bit);
		ev_set_uint(ev, "dns.opt.udp_size", s->udp_size);
		ev_set_str(ev, "dns.opt.ext_rcode", ext.p, ext.len);
	}
	ev_set_uint(ev, "dns.answers_count", s->counts[1]);
	ev_set_uint(ev, "dns.authorities_count", s->counts[2]);
	ev_set_uint(ev, "dns.additionals_count", s->counts[3] - (s->has_opt ? 1 : 0));

	if (e->text) {
		static const struct {
			uint16_t bit;
			const char *name;
		} fl[] = {{DNS_AA, "aa"}, {DNS_TC, "tc"}, {DNS_RD, "rd"},
			  {DNS_RA, "ra"}, {DNS_AD, "ad"}, {DNS_CD, "cd"}};
		bool first = true;
		char id[16];

		sb_puts(e->text, "ID ");
		sb_put(e->text, id, u32_text(s->id, id));
		sb_puts(e->text,
			(s->flags & DNS_QR) ? "; QR response; OPCODE " : "; QR query; OPCODE ");
		sb_put(e->text, opcode.p, opcode.len);
		sb_puts(e->text, "; FLAGS ");
		for (size_t i = 0; i < sizeof(fl) / sizeof(fl[0]); i++) {
			if (!(s->flags & fl[i].bit))
				continue;
			if (!first)
				sb_putc(e->text, ' ');
			first = false;
			sb_puts(e->text, fl[i].name);
		}
		sb_puts(e->text, "; RCODE ");
		sb_put(e->text, rcode.p, rcode.len);
	}
}

/* "class IN, type A, ": how Packetbeat starts a question's text (and `query`),
 * written at d, which has room for CLASS_TYPE_MAX bytes; returns the length.
 * A class or type is a name from the tables or a number, at most 10 bytes. */
#define CLASS_TYPE_MAX 64
static size_t class_type_text(char *d, struct txt cn, struct txt tn)
{
	char *p = d;

	memcpy(p, "class ", 6);
	p += 6;
	memcpy(p, cn.p, cn.len);
	p += cn.len;
	memcpy(p, ", type ", 7);
	p += 7;
	memcpy(p, tn.p, tn.len);
	p += tn.len;
	memcpy(p, ", ", 2);
	return (size_t)(p + 2 - d);
}

/* The legacy `query` ("class IN, type A, google.com") and `resource` of the first
 * question. */
static void emit_query_resource(struct event *ev, struct txt cn, struct txt tn,
				const struct sb *name)
{
	/* at most 1023 bytes, as the 1 KiB printf buffer this replaced */
	char qbuf[1024];
	size_t n = class_type_text(qbuf, cn, tn);
	size_t k = name->len < sizeof(qbuf) - 1 - n ? name->len : sizeof(qbuf) - 1 - n;

	memcpy(qbuf + n, name->p, k);
	ev_set_str(ev, "query", qbuf, n + k);
	ev_set_str(ev, "resource", name->p, name->len);
}

/* Question idx; its name text is left in `name` (an empty sb on caller memory). */
static void emit_question(const struct dns_emit *e, struct cursor *c, unsigned idx, struct sb *name)
{
	struct dns_labels lab;
	uint16_t qtype, qclass;
	char tb[16], cb[16];
	struct txt tn, cn;

	if (dns_read_name(c, name, &lab) < 0) {
		c->err = true;
		return;
	}
	qtype = cur_be16(c);
	qclass = cur_be16(c);
	if (c->err)
		return;
	tn = type_text(qtype, tb);
	cn = CODE_TEXT(dns_classes, qclass, cb);
	if (idx == 0) {
		ev_set_str(e->ev, "dns.question.name", name->p, name->len);
		ev_set_str(e->ev, "dns.question.type", tn.p, tn.len);
		ev_set_str(e->ev, "dns.question.class", cn.p, cn.len);
		emit_domain_parts(e->ev, name->p, name->len, &lab);
		if (e->legacy)
			emit_query_resource(e->ev, cn, tn, name);
	}
	if (e->text) {
		char ct[CLASS_TYPE_MAX];

		sb_puts(e->text, idx == 0 ? "; QUESTION " : "; ");
		sb_put(e->text, ct, class_type_text(ct, cn, tn));
		sb_put(e->text, name->p, name->len);
	}
}

/* Write the message's fields into e->ev. The message passed dns_scan(); when it
 * has more entries than max_records (s->capped), the rest is left out. */
static void dns_emit(const struct dns_emit *e, const uint8_t *msg, size_t len,
		     const struct dns_summary *s, uint64_t max_records)
{
	struct cursor c;
	uint64_t walked = 0;
	bool want[4];
	char q0buf[DNS_NAME_TEXT_MAX];
	struct sb q0; /* the first question's name; empty: none (a name is never "") */

	want[0] = false;
	want[1] = true;
	want[2] = e->cfg->include_authorities;
	want[3] = e->cfg->include_additionals;

	emit_header(e, s);
	cur_init(&c, msg, len);
	cur_skip(&c, DNS_HDR_LEN);
	sb_init(&q0, q0buf, sizeof(q0buf));
	for (unsigned i = 0; i < s->counts[0] && !c.err; i++, walked++) {
		char other[DNS_NAME_TEXT_MAX];
		struct sb name;

		if (walked >= max_records)
			return;
		sb_init(&name, other, sizeof(other));
		emit_question(e, &c, i, i == 0 ? &q0 : &name);
	}
	for (int sec = 1; sec < 4; sec++) {
		unsigned elem = 0;
		bool first = true;

		for (unsigned i = 0; i < s->counts[sec] && !c.err; i++, walked++) {
			char data[DNS_RDATA_TEXT_MAX], extra[DNS_EXTRA_TEXT_MAX];
			struct rr_text t; /* its sbs are set up below; x[0, nx) is used */
			uint16_t type, klass;
			uint32_t ttl;
			size_t name_off = c.off, rd_off, rd_len;

			if (walked >= max_records)
				return;
			/* the owner name is rendered below only when it is written */
			skip_name(&c);
			type = rr_fixed(&c, &klass, &ttl, &rd_off, &rd_len);
			if (c.err)
				break;
			if (type == DNS_TYPE_OPT)
				continue; /* reported as dns.opt.* */
			if (!want[sec] && !e->text)
				continue;
			sb_init(&t.data, data, sizeof(data));
			sb_init(&t.xs, extra, sizeof(extra));
			t.nx = 0;
			render_rr(msg, rd_off, rd_len, type, &t);
			if (want[sec]) {
				char namebuf[DNS_NAME_TEXT_MAX];
				struct sb name = q0;
				struct cursor nc;

				/* a pointer to the first question's name reads its labels
				 * (dns_scan() accepted that walk): the text is the same */
				cur_init(&nc, msg, len);
				cur_seek(&nc, name_off);
				if (q0.len == 0 || !at_question_pointer(&nc)) {
					sb_init(&name, namebuf, sizeof(namebuf));
					dns_read_name(&nc, &name, NULL);
				}
				emit_rr_fields(e->ev, section_keys[sec], elem++, name.p, name.len,
					       type, klass, ttl, &t);
			}
			if (sec == 1 && (type == DNS_TYPE_A || type == DNS_TYPE_AAAA) &&
			    rd_len == (type == DNS_TYPE_A ? 4u : 16u)) {
				struct hb_ip ip = {.ver = type == DNS_TYPE_A ? 4 : 6};

				memcpy(ip.a, msg + rd_off, rd_len);
				ev_append_ip(e->ev, "dns.resolved_ip", &ip);
				ev_append_ip(e->ev, "related.ip", &ip);
			}
			if (e->text) {
				sb_puts(e->text, "; ");
				if (first) {
					sb_puts(e->text, section_text[sec]);
					sb_putc(e->text, ' ');
				}
				text_rr(e->text, &t);
			}
			first = false;
		}
	}
}

/* Every key dns_emit() may set: removed from a pending query whose dns.* fields
 * were written at once (see struct dns_pending) when the response replaces them.
 * The legacy method/query/resource stay (they describe the query). */
static const char *const dns_emitted_keys[] = {
    "dns.type",
    "dns.id",
    "dns.op_code",
    "dns.response_code",
    "dns.flags.authoritative",
    "dns.flags.truncated_response",
    "dns.flags.recursion_desired",
    "dns.flags.recursion_available",
    "dns.flags.authentic_data",
    "dns.flags.checking_disabled",
    "dns.header_flags",
    "dns.opt.version",
    "dns.opt.do",
    "dns.opt.udp_size",
    "dns.opt.ext_rcode",
    "dns.answers_count",
    "dns.authorities_count",
    "dns.additionals_count",
    "dns.question.name",
    "dns.question.type",
    "dns.question.class",
    "dns.question.etld_plus_one",
    "dns.question.registered_domain",
    "dns.question.top_level_domain",
    "dns.question.subdomain",
    "dns.answers",
    "dns.authorities",
    "dns.additionals",
    "dns.resolved_ip",
    "related.ip",
};

static void remove_emitted(struct event *ev)
{
	ev_remove_keys(ev, dns_emitted_keys,
		       sizeof(dns_emitted_keys) / sizeof(dns_emitted_keys[0]));
}

/* ---- transactions ------------------------------------------------------------ */

static void conn_cfg(const struct conn_info *info, struct dns_cfg *out)
{
	*out = dns_cfg_default;
	if (info && info->cfg && info->cfg->priv)
		*out = *(const struct dns_cfg *)info->cfg->priv;
	if (out->max_records == 0)
		out->max_records = dns_cfg_default.max_records;
}

/* Write the message's fields into ev (dns_scan() accepted it as s); with
 * want_text, also its text under text_key. */
static void emit_fields(struct dns_conn *dc, struct event *ev, const uint8_t *msg, size_t len,
			const struct dns_summary *s, bool legacy, bool want_text,
			const char *text_key)
{
	char textbuf[DNS_MSG_TEXT_MAX];
	struct sb text = {0};
	struct dns_emit e = {
	    .ev = ev,
	    .cfg = &dc->cfg,
	    .text = NULL,
	    .legacy = legacy,
	};

	if (want_text && dc->max_text) {
		sb_init(&text, textbuf,
			dc->max_text + 1 < sizeof(textbuf) ? dc->max_text + 1 : sizeof(textbuf));
		e.text = &text;
	}
	dns_emit(&e, msg, len, s, dc->cfg.max_records);
	if (e.text)
		ev_set_str(ev, text_key, text.p, text.len);
}

/* emit_fields(), counting a message that had more entries than were decoded. */
static void fill_event(struct dns_conn *dc, struct proto_ctx *ctx, struct event *ev,
		       const uint8_t *msg, size_t len, const struct dns_summary *s, bool legacy,
		       bool want_text, const char *text_key)
{
	emit_fields(dc, ev, msg, len, s, legacy, want_text, text_key);
	if (s->capped)
		metric_inc(ctx->stats->limit_exceeded);
}

/* What emit_fields(legacy) adds to emit_fields(!legacy): method, and query and
 * resource from the first question. */
static void emit_legacy(struct event *ev, const uint8_t *msg, size_t len,
			const struct dns_summary *s)
{
	char ob[16], namebuf[DNS_NAME_TEXT_MAX], tb[16], cb[16];
	struct txt opcode = CODE_TEXT(dns_opcodes, s->opcode, ob);
	struct sb name;
	struct cursor c;
	uint16_t qtype, qclass;

	ev_set_str(ev, "method", opcode.p, opcode.len);
	if (s->counts[0] == 0)
		return; /* max_records >= 1: a first question is always decoded */
	cur_init(&c, msg, len);
	cur_skip(&c, DNS_HDR_LEN);
	sb_init(&name, namebuf, sizeof(namebuf));
	if (dns_read_name(&c, &name, NULL) < 0)
		return;
	qtype = cur_be16(&c);
	qclass = cur_be16(&c);
	if (c.err)
		return;
	emit_query_resource(ev, CODE_TEXT(dns_classes, qclass, cb), type_text(qtype, tb), &name);
}

static int pend_find(const struct dns_conn *dc, uint16_t id, size_t *at)
{
	for (size_t i = 0; i < dc->npend; i++) {
		if (dc->pend[i].id == id) {
			*at = i;
			return 0;
		}
	}
	return -ENOENT;
}

/* Append; -ENOSPC when max_pending are waiting, -ENOMEM when the list cannot grow
 * (either way the caller lets the oldest go, which makes room). */
static int pend_push(struct dns_conn *dc, const struct dns_pending *p)
{
	if (dc->npend >= dc->max_pending)
		return -ENOSPC;
	if (dc->npend == dc->pend_cap) {
		size_t cap =
		    dc->pend_cap * 2 < dc->max_pending ? dc->pend_cap * 2 : dc->max_pending;
		struct dns_pending *grown = hb_malloc(cap * sizeof(*grown));

		if (!grown)
			return -ENOMEM;
		memcpy(grown, dc->pend, dc->npend * sizeof(*grown));
		if (dc->pend != dc->pend_inline)
			hb_free(dc->pend);
		dc->pend = grown;
		dc->pend_cap = cap;
	}
	dc->pend[dc->npend++] = *p;
	return 0;
}

static struct dns_pending pend_remove(struct dns_conn *dc, size_t i)
{
	struct dns_pending p = dc->pend[i];

	memmove(&dc->pend[i], &dc->pend[i + 1], (dc->npend - i - 1) * sizeof(p));
	dc->npend--;
	return p;
}

/* Remove pending query i and return its event with the query's dns.* fields, to be
 * published without a response. */
static struct event *pend_take_unanswered(struct dns_conn *dc, size_t i)
{
	struct dns_pending p = pend_remove(dc, i);
	struct dns_summary s;

	/* the copy passed dns_scan() before; its cap was counted then */
	if (p.msg && dns_scan(p.msg, p.len, dc->cfg.max_records, &s) == 0)
		emit_fields(dc, p.ev, p.msg, p.len, &s, false, false, NULL);
	return p.ev;
}

/* The queries older than the transaction timeout; they are in arrival order. */
static void pend_expire(struct dns_conn *dc, struct proto_ctx *ctx)
{
	while (dc->npend > 0) {
		const struct event *ev = dc->pend[0].ev;

		if (!(ctx->ts > ev->start_ns && ctx->ts - ev->start_ns > dc->timeout))
			break;
		txn_publish_unmatched(ctx, pend_take_unanswered(dc, 0), NOTE_NO_RESPONSE, true);
	}
}

static void on_query(struct dns_conn *dc, struct proto_ctx *ctx, const uint8_t *msg, size_t len,
		     size_t wire_len, uint64_t ts, const struct dns_summary *s)
{
	struct dns_pending p = {.id = s->id, .edns = s->has_opt};
	struct event *ev;
	size_t old;

	if (pend_find(dc, s->id, &old) == 0)
		txn_publish_unmatched(ctx, pend_take_unanswered(dc, old), NOTE_DUPLICATE, true);

	ev = txn_new_event(ctx, &dns_proto);
	if (!ev)
		return;
	txn_init_event(ev, ctx->conn, ts);
	ev->has_client_bytes = true;
	ev->client_bytes = wire_len;
	p.ev = ev;
	/* The dns.* fields wait (struct dns_pending), unless the request text is
	 * wanted: it comes from the same walk. */
	if (!(dc->send_request && dc->max_text) && len <= DNS_DEFER_MAX)
		p.msg = (const uint8_t *)ev_arena_copy(ev, msg, len);
	if (p.msg) {
		p.len = len;
		emit_legacy(ev, msg, len, s);
		if (s->capped) /* counted now, as fill_event() would */
			metric_inc(ctx->stats->limit_exceeded);
	} else {
		fill_event(dc, ctx, ev, msg, len, s, true, dc->send_request, "request");
	}
	if (!dc->tcp && !s->has_opt && len > DNS_PLAIN_UDP_MAX)
		txn_add_note(ev, NOTE_TOO_LARGE);

	if (pend_push(dc, &p) < 0) {
		/* Full: the oldest query gives way, counted. */
		metric_inc(ctx->stats->limit_exceeded);
		txn_publish_unmatched(ctx, pend_take_unanswered(dc, 0), NOTE_NO_RESPONSE, true);
		pend_push(dc, &p);
	}
}

static void on_response(struct dns_conn *dc, struct proto_ctx *ctx, const uint8_t *msg, size_t len,
			size_t wire_len, uint64_t ts, const struct dns_summary *s)
{
	struct dns_pending p;
	struct event *ev;
	size_t at;

	if (pend_find(dc, s->id, &at) < 0) {
		ev = txn_new_event(ctx, &dns_proto);
		if (!ev)
			return;
		txn_init_event(ev, ctx->conn, ts);
		ev->end_ns = ts;
		ev->has_server_bytes = true;
		ev->server_bytes = wire_len;
		fill_event(dc, ctx, ev, msg, len, s, true, dc->send_response, "response");
		if (!dc->tcp && !s->has_opt && len > DNS_PLAIN_UDP_MAX)
			txn_add_note(ev, NOTE_RESP_TOO_LARGE);
		txn_publish_unmatched(ctx, ev, NOTE_ORPHAN, false);
		return;
	}
	p = pend_remove(dc, at);
	ev = p.ev;
	if (!p.msg)
		remove_emitted(ev); /* the response's replace them */
	ev->end_ns = ts;
	ev->has_server_bytes = true;
	ev->server_bytes = wire_len;
	fill_event(dc, ctx, ev, msg, len, s, false, dc->send_response, "response");
	ev->status = s->rcode == 0 ? EV_STATUS_OK : EV_STATUS_ERROR;
	if (!dc->tcp) {
		if (!s->has_opt && len > DNS_PLAIN_UDP_MAX)
			txn_add_note(ev, NOTE_RESP_TOO_LARGE);
		if (p.edns && !s->has_opt)
			txn_add_note(ev, NOTE_EDNS_NO_SUPPORT);
		else if (!p.edns && s->has_opt)
			txn_add_note(ev, NOTE_EDNS_UNEXPECTED);
	}
	txn_publish(ctx, ev);
}

/* A response whose body cannot be decoded still ends its query, if its ID can be
 * read (RFC 1035: the ID is the first two bytes). */
static void on_bad_response(struct dns_conn *dc, struct proto_ctx *ctx, const uint8_t *msg,
			    size_t len, const char *note)
{
	struct cursor c;
	uint16_t id;
	struct event *ev;
	size_t at;

	cur_init(&c, msg, len);
	id = cur_be16(&c);
	if (c.err || pend_find(dc, id, &at) < 0)
		return;
	ev = pend_take_unanswered(dc, at);
	ev->status = EV_STATUS_ERROR;
	txn_add_note(ev, note);
	txn_publish(ctx, ev);
}

/* One whole DNS message. Returns 0, or -EBADMSG when it could not be decoded. */
static int dns_message(struct dns_conn *dc, struct proto_ctx *ctx, enum proto_dir dir,
		       const uint8_t *msg, size_t len, size_t wire_len, uint64_t ts)
{
	struct dns_summary s;

	if (dns_scan(msg, len, dc->cfg.max_records, &s) < 0) {
		if (dir == DIR_TO_CLIENT)
			on_bad_response(dc, ctx, msg, len, NOTE_RESP_UNDECODABLE);
		return -EBADMSG;
	}
	if (s.capped)
		metric_inc(ctx->stats->limit_exceeded);
	metric_inc(ctx->stats->messages);
	if (s.flags & DNS_QR)
		on_response(dc, ctx, msg, len, wire_len, ts, &s);
	else
		on_query(dc, ctx, msg, len, wire_len, ts, &s);
	return 0;
}

/* ---- proto_ops ------------------------------------------------------------------ */

static void *dns_conn_new(const struct conn_info *info)
{
	struct dns_conn *dc = hb_calloc(1, sizeof(*dc));
	const struct cfg_proto *cp = info ? info->cfg : NULL;

	if (!dc)
		return NULL;
	conn_cfg(info, &dc->cfg);
	dc->tcp = info && info->transport == IPPROTO_TCP;
	dc->timeout = cp && cp->transaction_timeout ? cp->transaction_timeout : DNS_DEFAULT_TIMEOUT;
	dc->send_request = cp && cp->send_request;
	dc->send_response = cp && cp->send_response;
	dc->max_text =
	    cp ? (size_t)(cp->max_message_size < DNS_MSG_TEXT_MAX - 1 ? cp->max_message_size
								      : DNS_MSG_TEXT_MAX - 1)
	       : 0;
	dc->pend = dc->pend_inline;
	dc->pend_cap = DNS_PENDING_INLINE;
	dc->max_pending = cp && cp->max_pending ? (size_t)cp->max_pending : DNS_DEFAULT_MAX_PENDING;
	return dc;
}

static struct parse_result parse_udp(struct dns_conn *dc, enum proto_dir dir, const uint8_t *data,
				     size_t len, struct proto_ctx *ctx)
{
	struct parse_result r = {.status = PARSE_OK, .consumed = len, .needed = 0};

	if (dns_message(dc, ctx, dir, data, len, len, ctx->ts) < 0)
		r.status = PARSE_ERROR; /* this datagram only */
	return r;
}

/*
 * TCP (RFC 7766 §8): each message is preceded by its length.
 *
 *   +--------+--------+----------------- ... ---+
 *   |  length (16)    |  DNS message (length)    |
 *   +--------+--------+----------------- ... ---+
 *
 * Every complete message in `data` is handled; an incomplete tail is left to the
 * stream layer with `needed` = the bytes still missing.
 */
static struct parse_result parse_tcp(struct dns_conn *dc, enum proto_dir dir, const uint8_t *data,
				     size_t len, struct proto_ctx *ctx)
{
	struct parse_result r = {.status = PARSE_OK, .consumed = 0, .needed = 0};
	struct cursor c;

	cur_init(&c, data, len);
	while (cur_left(&c) > 0) {
		size_t start = c.off;
		uint16_t mlen;
		const uint8_t *msg;
		uint64_t ts = dc->partial[dir] ? dc->partial_ts[dir] : ctx->ts;

		if (cur_left(&c) < DNS_TCP_PREFIX) {
			r.status = PARSE_NEED_MORE;
			r.needed = DNS_TCP_PREFIX - cur_left(&c);
			goto partial;
		}
		mlen = cur_be16(&c);
		if (mlen == 0) {
			if (dir == DIR_TO_CLIENT && dc->npend > 0) {
				struct event *ev = pend_take_unanswered(dc, 0);

				ev->status = EV_STATUS_ERROR;
				txn_add_note(ev, NOTE_RESP_ZERO_LENGTH);
				txn_publish(ctx, ev);
			}
			r.status = PARSE_ERROR;
			r.consumed = start;
			return r;
		}
		if (cur_left(&c) < mlen) {
			r.status = PARSE_NEED_MORE;
			r.needed = mlen - cur_left(&c);
			c.off = start;
			goto partial;
		}
		msg = cur_bytes(&c, mlen);
		dc->partial[dir] = false;
		if (dns_message(dc, ctx, dir, msg, mlen, (size_t)mlen + DNS_TCP_PREFIX, ts) < 0) {
			/* The framing is intact but the content is not DNS: give up on the
			 * connection like Packetbeat drops the stream. */
			r.status = PARSE_ERROR;
			r.consumed = c.off;
			return r;
		}
	}
	r.consumed = c.off;
	return r;
partial:
	r.consumed = c.off;
	if (!dc->partial[dir]) {
		dc->partial[dir] = true;
		dc->partial_ts[dir] = ctx->ts;
	}
	return r;
}

static struct parse_result dns_parse(void *conn, enum proto_dir dir, const uint8_t *data,
				     size_t len, struct proto_ctx *ctx)
{
	struct dns_conn *dc = conn;

	pend_expire(dc, ctx);
	return dc->tcp ? parse_tcp(dc, dir, data, len, ctx) : parse_udp(dc, dir, data, len, ctx);
}

/* Inside a length-prefixed stream a hole loses the framing: give up; the stream
 * layer (which counts gaps and gap_drops) starts a fresh parser. */
static int dns_gap(void *conn, enum proto_dir dir, size_t n, struct proto_ctx *ctx)
{
	struct dns_conn *dc = conn;

	(void)n;
	(void)ctx;
	dc->partial[dir] = false;
	return -1;
}

static void dns_expire(void *conn, struct proto_ctx *ctx)
{
	struct dns_conn *dc = conn;

	while (dc->npend > 0)
		txn_publish_unmatched(ctx, pend_take_unanswered(dc, 0), NOTE_NO_RESPONSE, true);
}

static void dns_conn_free(void *conn)
{
	struct dns_conn *dc = conn;

	if (!dc)
		return;
	/* The contract says expire() ran first; return anything left to its pool. */
	for (size_t i = 0; i < dc->npend; i++)
		ev_pool_put(dc->pend[i].ev);
	if (dc->pend != dc->pend_inline)
		hb_free(dc->pend);
	hb_free(dc);
}

static const uint16_t dns_ports[] = {53};

const struct proto_ops dns_proto = {
    .name = "dns",
    .transports = PROTO_TCP | PROTO_UDP,
    .default_ports = dns_ports,
    .ndefault_ports = sizeof(dns_ports) / sizeof(dns_ports[0]),
    .config = dns_cfg_fields,
    .nconfig = sizeof(dns_cfg_fields) / sizeof(dns_cfg_fields[0]),
    .config_size = sizeof(struct dns_cfg),
    .conn_new = dns_conn_new,
    .parse = dns_parse,
    .gap = dns_gap,
    .fin = NULL,
    .expire = dns_expire,
    .conn_free = dns_conn_free,
};
