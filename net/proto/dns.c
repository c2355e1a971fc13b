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
 * Transactions: each connection (TCP) or UDP flow keeps a FIFO of pending query
 * events; a response takes the pending query with the same ID. A pending query
 * carries the dns.* fields of the query (published as is when it stays
 * unmatched); when its response arrives those fields are replaced by the
 * response's, as Packetbeat does.
 */
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "hostbeat/base64.h"
#include "hostbeat/clock.h"
#include "hostbeat/cursor.h"
#include "hostbeat/mem.h"
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

struct dns_conn {
	struct txn_fifo pending; /* query events waiting for a response, oldest first */
	struct dns_cfg cfg;      /* copied at conn_new */
	bool tcp;
	bool send_request, send_response;
	size_t max_text;
	uint64_t timeout;
	/* TCP: time of the first segment of a message still incomplete, per direction,
	 * so event.start/end are the times of a message's first packet. */
	bool partial[2];
	uint64_t partial_ts[2];
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
	sb_put(b, &ch, 1);
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
			sb_printf(b, "\\%03u", ch);
		} else {
			sb_putc(b, (char)ch);
		}
	}
}

/* ---- registries (RFC 6895 / IANA names as miekg/dns spells them) -------------- */

struct code_name {
	uint16_t code;
	const char *name;
};

static const struct code_name dns_types[] = {
    {1, "A"},       {2, "NS"},        {3, "MD"},          {4, "MF"},          {5, "CNAME"},
    {6, "SOA"},     {7, "MB"},        {8, "MG"},          {9, "MR"},          {10, "NULL"},
    {12, "PTR"},    {13, "HINFO"},    {14, "MINFO"},      {15, "MX"},         {16, "TXT"},
    {17, "RP"},     {18, "AFSDB"},    {19, "X25"},        {20, "ISDN"},       {21, "RT"},
    {22, "NSAP"},   {23, "NSAP-PTR"}, {24, "SIG"},        {25, "KEY"},        {26, "PX"},
    {27, "GPOS"},   {28, "AAAA"},     {29, "LOC"},        {30, "NXT"},        {31, "EID"},
    {32, "NIMLOC"}, {33, "SRV"},      {34, "ATMA"},       {35, "NAPTR"},      {36, "KX"},
    {37, "CERT"},   {38, "A6"},       {39, "DNAME"},      {41, "OPT"},        {42, "APL"},
    {43, "DS"},     {44, "SSHFP"},    {45, "IPSECKEY"},   {46, "RRSIG"},      {47, "NSEC"},
    {48, "DNSKEY"}, {49, "DHCID"},    {50, "NSEC3"},      {51, "NSEC3PARAM"}, {52, "TLSA"},
    {53, "SMIMEA"}, {55, "HIP"},      {56, "NINFO"},      {57, "RKEY"},       {58, "TALINK"},
    {59, "CDS"},    {60, "CDNSKEY"},  {61, "OPENPGPKEY"}, {62, "CSYNC"},      {63, "ZONEMD"},
    {64, "SVCB"},   {65, "HTTPS"},    {99, "SPF"},        {100, "UINFO"},     {101, "UID"},
    {102, "GID"},   {103, "UNSPEC"},  {104, "NID"},       {105, "L32"},       {106, "L64"},
    {107, "LP"},    {108, "EUI48"},   {109, "EUI64"},     {249, "TKEY"},      {250, "TSIG"},
    {251, "IXFR"},  {252, "AXFR"},    {253, "MAILB"},     {254, "MAILA"},     {255, "ANY"},
    {256, "URI"},   {257, "CAA"},     {258, "AVC"},       {32768, "TA"},      {32769, "DLV"},
};

static const struct code_name dns_classes[] = {
    {1, "IN"}, {2, "CS"}, {3, "CH"}, {4, "HS"}, {254, "NONE"}, {255, "ANY"},
};

static const struct code_name dns_rcodes[] = {
    {0, "NOERROR"},  {1, "FORMERR"},  {2, "SERVFAIL"},  {3, "NXDOMAIN"},   {4, "NOTIMP"},
    {5, "REFUSED"},  {6, "YXDOMAIN"}, {7, "YXRRSET"},   {8, "NXRRSET"},    {9, "NOTAUTH"},
    {10, "NOTZONE"}, {16, "BADSIG"},  {17, "BADKEY"},   {18, "BADTIME"},   {19, "BADMODE"},
    {20, "BADNAME"}, {21, "BADALG"},  {22, "BADTRUNC"}, {23, "BADCOOKIE"},
};

static const struct code_name dns_opcodes[] = {
    {0, "QUERY"}, {1, "IQUERY"}, {2, "STATUS"}, {4, "NOTIFY"}, {5, "UPDATE"},
};

/* RFC 8624 / IANA DNSSEC algorithm numbers (miekg AlgorithmToString). */
static const struct code_name dns_algorithms[] = {
    {1, "RSAMD5"},
    {2, "DH"},
    {3, "DSA"},
    {5, "RSASHA1"},
    {6, "DSA-NSEC3-SHA1"},
    {7, "RSASHA1-NSEC3-SHA1"},
    {8, "RSASHA256"},
    {10, "RSASHA512"},
    {12, "ECC-GOST"},
    {13, "ECDSAP256SHA256"},
    {14, "ECDSAP384SHA384"},
    {15, "ED25519"},
    {16, "ED448"},
    {252, "INDIRECT"},
    {253, "PRIVATEDNS"},
    {254, "PRIVATEOID"},
};

/* DS digest types and NSEC3 hash algorithms (miekg HashToString). */
static const struct code_name dns_hashes[] = {
    {1, "SHA1"}, {2, "SHA256"}, {3, "GOST94"}, {4, "SHA384"}, {5, "SHA512"},
};

static const char *code_lookup(const struct code_name *t, size_t n, unsigned code)
{
	for (size_t i = 0; i < n; i++)
		if (t[i].code == code)
			return t[i].name;
	return NULL;
}

#define LOOKUP(table, code) code_lookup(table, sizeof(table) / sizeof(table[0]), code)

/* "%u" of v without printf (a TTL per answer); buf holds 11 bytes. Returns the length. */
static size_t u32_text(uint32_t v, char *buf)
{
	char tmp[10], *q = tmp + sizeof(tmp);
	size_t n;

	do {
		*--q = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	n = (size_t)(tmp + sizeof(tmp) - q);
	memcpy(buf, q, n);
	buf[n] = '\0';
	return n;
}

/* Name or decimal number (Packetbeat: dnsTypeToString etc. fall back to the number). */
static const char *code_text(const struct code_name *t, size_t n, unsigned code, char *buf,
			     size_t size)
{
	const char *s = code_lookup(t, n, code);

	if (s)
		return s;
	snprintf(buf, size, "%u", code);
	return buf;
}

#define CODE_TEXT(table, code, buf) \
	code_text(table, sizeof(table) / sizeof(table[0]), code, buf, sizeof(buf))

/* Packetbeat: unknown RCODEs are "Unknown N". */
static const char *rcode_text(unsigned rcode, char *buf, size_t size)
{
	const char *s = LOOKUP(dns_rcodes, rcode);

	if (s)
		return s;
	snprintf(buf, size, "Unknown %u", rcode);
	return buf;
}

/* ---- names ----------------------------------------------------------------- */

struct dns_labels {
	unsigned n;
	uint16_t start[DNS_MAX_LABELS]; /* offset of each label in the output text */
};

/* miekg escapes these inside a label (isDomainNameLabelSpecial). */
static bool label_special(uint8_t ch)
{
	return ch == '.' || ch == ' ' || ch == '\'' || ch == '@' || ch == ';' || ch == '(' ||
	       ch == ')' || ch == '"' || ch == '\\';
}

/* Read the name at the cursor into `out` (may be NULL: validate only) in
 * presentation form without the trailing dot, the root as ".". The cursor ends
 * after the name's bytes at its original position (after the first pointer).
 * `labels` (may be NULL) receives the label starts. Returns 0 or -EBADMSG. */
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
			for (size_t i = 0; i < b; i++) {
				if (label_special(lab[i])) {
					char two[2] = {'\\', (char)lab[i]};
					sb_put(out, two, 2);
				} else if (lab[i] < 0x20 || lab[i] > 0x7e) {
					sb_printf(out, "\\%03u", lab[i]);
				} else {
					sb_putc(out, (char)lab[i]);
				}
			}
		}
		nlabels++;
	}
	if (out && nlabels == 0)
		sb_putc(out, '.');
	if (labels)
		labels->n = nlabels < DNS_MAX_LABELS ? nlabels : DNS_MAX_LABELS;
	if (jumps)
		cur_seek(c, resume);
	return 0;
}

/* ---- registered domain: a small built-in stand-in for the public suffix list -- */

/* Two-label public suffixes that matter most in practice. Everything else uses the
 * last label as the suffix (the PSL's default "*" rule). */
static const char *const dns_two_label_suffixes[] = {
    "co.uk",          "org.uk",       "ac.uk",
    "gov.uk",         "me.uk",        "net.uk",
    "ltd.uk",         "plc.uk",       "com.au",
    "net.au",         "org.au",       "edu.au",
    "gov.au",         "co.nz",        "net.nz",
    "org.nz",         "co.jp",        "ne.jp",
    "or.jp",          "ac.jp",        "go.jp",
    "co.kr",          "or.kr",        "com.br",
    "net.br",         "org.br",       "com.cn",
    "net.cn",         "org.cn",       "gov.cn",
    "edu.cn",         "co.in",        "net.in",
    "org.in",         "co.za",        "com.mx",
    "com.ar",         "com.tr",       "com.tw",
    "com.hk",         "com.sg",       "co.il",
    "co.id",          "com.my",       "com.ph",
    "com.vn",         "com.ua",       "com.pl",
    "co.th",          "in-addr.arpa", "ip6.arpa",
    "github.io",      "gitlab.io",    "herokuapp.com",
    "appspot.com",    "blogspot.com", "azurewebsites.net",
    "cloudfront.net",
};

static bool two_label_suffix(const char *s)
{
	/* the suffixes are lowercase: the first byte rules out nearly all of them */
	int c0 = tolower((unsigned char)s[0]);

	for (size_t i = 0; i < sizeof(dns_two_label_suffixes) / sizeof(dns_two_label_suffixes[0]);
	     i++)
		if (c0 == dns_two_label_suffixes[i][0] &&
		    strcasecmp(s, dns_two_label_suffixes[i]) == 0)
			return true;
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
	nsuf = two_label_suffix(name + lab->start[n - 2]) ? 2 : 1;
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

/* Walk one RR header and skip its RDATA. Returns the RR type; rd_off and rd_len
 * locate the RDATA. Errors are left in c->err. */
static uint16_t rr_header(struct cursor *c, struct sb *name, uint16_t *klass, uint32_t *ttl,
			  size_t *rd_off, size_t *rd_len)
{
	uint16_t type, rdlen;

	if (dns_read_name(c, name, NULL) < 0) {
		c->err = true;
		return 0;
	}
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
		if (dns_read_name(&c, NULL, NULL) < 0)
			return -EBADMSG;
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
			type = rr_header(&c, NULL, &klass, &ttl, &rd_off, &rd_len);
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

static void rr_str_fmt(struct rr_text *t, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void rr_str_fmt(struct rr_text *t, const char *key, const char *fmt, ...)
{
	char tmp[64];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	rr_str_begin(t, key);
	sb_put(&t->xs, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
	rr_str_end(t);
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
	char num[8];
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
			sb_puts(out, CODE_TEXT(dns_types, (unsigned)window << 8 | i, num));
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
		rr_str_fmt(t, "algorithm", "%s", CODE_TEXT(dns_algorithms, alg, nb));
		rr_str_fmt(t, "digest_type", "%s", CODE_TEXT(dns_hashes, dt, nb));
		rr_str_fmt(t, "key_tag", "%u", tag);
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
		rr_str_fmt(t, "algorithm", "%s", CODE_TEXT(dns_algorithms, alg, nb));
		rr_str_fmt(t, "flags", "%u", flags);
		rr_str_fmt(t, "protocol", "%u", proto);
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
		rr_str_fmt(t, "algorithm", "%s", CODE_TEXT(dns_algorithms, alg, nb));
		rr_str_begin(t, "expiration");
		render_time(&t->xs, exp);
		rr_str_end(t);
		rr_str_begin(t, "inception");
		render_time(&t->xs, inc);
		rr_str_end(t);
		rr_str_fmt(t, "key_tag", "%u", tag);
		rr_str_fmt(t, "labels", "%u", labels);
		rr_str_fmt(t, "original_ttl", "%u", ottl);
		rr_str_begin(t, "signer_name");
		if (dns_read_name(&c, &t->xs, NULL) < 0)
			return false;
		rr_str_end(t);
		rr_str_fmt(t, "type_covered", "%s", CODE_TEXT(dns_types, covered, nb));
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
		rr_str_fmt(t, "flags", "%u", flags);
		rr_str_fmt(t, "hash", "%s", CODE_TEXT(dns_hashes, hash, nb));
		rr_str_fmt(t, "iterations", "%u", iter);
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
	struct proto_stats *stats;
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
	const char *tn = CODE_TEXT(dns_types, type, tb), *cn = CODE_TEXT(dns_classes, klass, cb);
	size_t n = u32_text(ttl, ttl_txt);

	ev_obj_str(ev, key, elem, "name", name, name_len);
	ev_obj_str(ev, key, elem, "type", tn, strlen(tn));
	ev_obj_str(ev, key, elem, "class", cn, strlen(cn));
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
	char nb[24];
	const char *opcode = CODE_TEXT(dns_opcodes, s->opcode, nb);

	ev_set_strz(ev, "dns.type", (s->flags & DNS_QR) ? "answer" : "query");
	ev_set_uint(ev, "dns.id", s->id);
	ev_set_strz(ev, "dns.op_code", opcode);
	if (e->legacy)
		ev_set_strz(ev, "method", opcode);
	ev_set_strz(ev, "dns.response_code", rcode_text(s->rcode, nb, sizeof(nb)));
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
		char v[16];

		ev_set_str(ev, "dns.opt.version", v, u32_text(s->version, v));
		ev_set_bool(ev, "dns.opt.do", s->do_bit);
		ev_set_uint(ev, "dns.opt.udp_size", s->udp_size);
		/* miekg's ExtendedRcode(): the upper 8 bits only, shifted into place. */
		ev_set_strz(ev, "dns.opt.ext_rcode",
			    rcode_text((unsigned)s->ext_rcode << 4, nb, sizeof(nb)));
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

		sb_printf(e->text, "ID %u; QR %s; OPCODE %s; FLAGS ", s->id,
			  (s->flags & DNS_QR) ? "response" : "query", opcode);
		for (size_t i = 0; i < sizeof(fl) / sizeof(fl[0]); i++) {
			if (!(s->flags & fl[i].bit))
				continue;
			if (!first)
				sb_putc(e->text, ' ');
			first = false;
			sb_puts(e->text, fl[i].name);
		}
		sb_puts(e->text, "; RCODE ");
		sb_puts(e->text, rcode_text(s->rcode, nb, sizeof(nb)));
	}
}

static void emit_question(const struct dns_emit *e, struct cursor *c, unsigned idx)
{
	char namebuf[DNS_NAME_TEXT_MAX];
	struct dns_labels lab;
	struct sb name;
	uint16_t qtype, qclass;
	char tb[16], cb[16];
	const char *tn, *cn;

	sb_init(&name, namebuf, sizeof(namebuf));
	if (dns_read_name(c, &name, &lab) < 0) {
		c->err = true;
		return;
	}
	qtype = cur_be16(c);
	qclass = cur_be16(c);
	if (c->err)
		return;
	tn = CODE_TEXT(dns_types, qtype, tb);
	cn = CODE_TEXT(dns_classes, qclass, cb);
	if (idx == 0) {
		ev_set_str(e->ev, "dns.question.name", name.p, name.len);
		ev_set_strz(e->ev, "dns.question.type", tn);
		ev_set_strz(e->ev, "dns.question.class", cn);
		emit_domain_parts(e->ev, name.p, name.len, &lab);
		if (e->legacy) {
			ev_set_fmt(e->ev, "query", "class %s, type %s, %s", cn, tn, name.p);
			ev_set_str(e->ev, "resource", name.p, name.len);
		}
	}
	if (e->text) {
		sb_puts(e->text, idx == 0 ? "; QUESTION " : "; ");
		sb_printf(e->text, "class %s, type %s, ", cn, tn);
		sb_put(e->text, name.p, name.len);
	}
}

/* Write the message's fields into e->ev. The message passed dns_scan(). */
static void dns_emit(const struct dns_emit *e, const uint8_t *msg, size_t len,
		     const struct dns_summary *s, uint64_t max_records)
{
	struct cursor c;
	uint64_t walked = 0;
	bool want[4];

	want[0] = false;
	want[1] = true;
	want[2] = e->cfg->include_authorities;
	want[3] = e->cfg->include_additionals;

	emit_header(e, s);
	cur_init(&c, msg, len);
	cur_skip(&c, DNS_HDR_LEN);
	for (unsigned i = 0; i < s->counts[0] && !c.err; i++, walked++) {
		if (walked >= max_records)
			goto capped;
		emit_question(e, &c, i);
	}
	for (int sec = 1; sec < 4; sec++) {
		unsigned elem = 0;
		bool first = true;

		for (unsigned i = 0; i < s->counts[sec] && !c.err; i++, walked++) {
			char namebuf[DNS_NAME_TEXT_MAX], data[DNS_RDATA_TEXT_MAX],
			    extra[DNS_EXTRA_TEXT_MAX];
			struct sb name;
			struct rr_text t = {.nx = 0};
			uint16_t type, klass;
			uint32_t ttl;
			size_t rd_off, rd_len;

			if (walked >= max_records)
				goto capped;
			sb_init(&name, namebuf, sizeof(namebuf));
			type = rr_header(&c, &name, &klass, &ttl, &rd_off, &rd_len);
			if (c.err)
				break;
			if (type == DNS_TYPE_OPT)
				continue; /* reported as dns.opt.* */
			if (!want[sec] && !e->text)
				continue;
			sb_init(&t.data, data, sizeof(data));
			sb_init(&t.xs, extra, sizeof(extra));
			render_rr(msg, rd_off, rd_len, type, &t);
			if (want[sec])
				emit_rr_fields(e->ev, section_keys[sec], elem++, name.p, name.len,
					       type, klass, ttl, &t);
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
	return;
capped:
	metric_inc(e->stats->limit_exceeded);
}

/* Every key dns_emit() may set: removed from a pending query when the response
 * replaces them. The legacy method/query/resource stay (they describe the query). */
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

static bool match_id(const struct event *ev, const void *arg)
{
	const struct ev_field *f = ev_find(ev, "dns.id");

	return f && f->type == EV_T_UINT && f->v.u == *(const uint16_t *)arg;
}

static void conn_cfg(const struct conn_info *info, struct dns_cfg *out)
{
	*out = dns_cfg_default;
	if (info && info->cfg && info->cfg->priv)
		*out = *(const struct dns_cfg *)info->cfg->priv;
	if (out->max_records == 0)
		out->max_records = dns_cfg_default.max_records;
}

/* Fill ev from the message (both passes already known to succeed). */
static void fill_event(struct dns_conn *dc, struct proto_ctx *ctx, struct event *ev,
		       const uint8_t *msg, size_t len, const struct dns_summary *s, bool legacy,
		       bool want_text, const char *text_key)
{
	char textbuf[DNS_MSG_TEXT_MAX];
	struct sb text = {0};
	struct dns_emit e = {
	    .ev = ev,
	    .cfg = &dc->cfg,
	    .stats = ctx->stats,
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

static void on_query(struct dns_conn *dc, struct proto_ctx *ctx, const uint8_t *msg, size_t len,
		     size_t wire_len, uint64_t ts, const struct dns_summary *s)
{
	struct event *ev, *old;
	uint16_t id = s->id;

	old = txn_fifo_take(&dc->pending, match_id, &id);
	if (old)
		txn_publish_unmatched(ctx, old, NOTE_DUPLICATE, true);

	ev = txn_new_event(ctx, &dns_proto);
	if (!ev)
		return;
	txn_init_event(ev, ctx->conn, ts);
	ev->has_client_bytes = true;
	ev->client_bytes = wire_len;
	fill_event(dc, ctx, ev, msg, len, s, true, dc->send_request, "request");
	if (!dc->tcp && !s->has_opt && len > DNS_PLAIN_UDP_MAX)
		txn_add_note(ev, NOTE_TOO_LARGE);

	if (txn_fifo_push(&dc->pending, ev) < 0) {
		/* Full: the oldest query gives way, counted. */
		metric_inc(ctx->stats->limit_exceeded);
		txn_publish_unmatched(ctx, txn_fifo_pop(&dc->pending), NOTE_NO_RESPONSE, true);
		txn_fifo_push(&dc->pending, ev);
	}
}

static void on_response(struct dns_conn *dc, struct proto_ctx *ctx, const uint8_t *msg, size_t len,
			size_t wire_len, uint64_t ts, const struct dns_summary *s)
{
	uint16_t id = s->id;
	struct event *ev = txn_fifo_take(&dc->pending, match_id, &id);
	bool req_edns;

	if (!ev) {
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
	req_edns = ev_find(ev, "dns.opt.udp_size") != NULL;
	remove_emitted(ev);
	ev->end_ns = ts;
	ev->has_server_bytes = true;
	ev->server_bytes = wire_len;
	fill_event(dc, ctx, ev, msg, len, s, false, dc->send_response, "response");
	ev->status = s->rcode == 0 ? EV_STATUS_OK : EV_STATUS_ERROR;
	if (!dc->tcp) {
		if (!s->has_opt && len > DNS_PLAIN_UDP_MAX)
			txn_add_note(ev, NOTE_RESP_TOO_LARGE);
		if (req_edns && !s->has_opt)
			txn_add_note(ev, NOTE_EDNS_NO_SUPPORT);
		else if (!req_edns && s->has_opt)
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

	cur_init(&c, msg, len);
	id = cur_be16(&c);
	if (c.err)
		return;
	ev = txn_fifo_take(&dc->pending, match_id, &id);
	if (!ev)
		return;
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
	txn_fifo_init(&dc->pending,
		      cp && cp->max_pending ? (size_t)cp->max_pending : DNS_DEFAULT_MAX_PENDING);
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
			if (dir == DIR_TO_CLIENT && txn_fifo_peek(&dc->pending)) {
				struct event *ev = txn_fifo_pop(&dc->pending);

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

	txn_fifo_expire(&dc->pending, ctx, dc->timeout, NOTE_NO_RESPONSE);
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

	txn_fifo_flush(&dc->pending, ctx, NOTE_NO_RESPONSE);
}

static void dns_conn_free(void *conn)
{
	struct dns_conn *dc = conn;

	if (!dc)
		return;
	/* The contract says expire() ran first; return anything left to its pool. */
	txn_fifo_release(&dc->pending);
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
