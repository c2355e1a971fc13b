/* pcapgen.c - deterministic multi-protocol benchmark capture generator for hostbeat.
 *
 * Writes a classic libpcap file (magic 0xa1b2c3d4, v2.4, snaplen 65535,
 * LINKTYPE_ETHERNET) of traffic as seen on a Docker bridge (docker0):
 * clients 172.17.0.10-250 talk to one server per protocol (172.17.0.2-9),
 * MAC addresses 02:42:ac:11:00:XX.  Every TCP connection is complete
 * (3-way handshake, request/response exchanges with client ACKs, FIN
 * teardown) with exact sequence/acknowledgement numbers, and every IPv4,
 * TCP and UDP checksum is correct.  Application payloads are well-formed:
 *
 *   http      HTTP/1.1 on TCP 80 (GET/POST, 404s, chunked, multi-segment bodies)
 *   dns       DNS on UDP 53 (A/AAAA/MX/TXT/CNAME, compression, NXDOMAIN+SOA)
 *   mysql     MySQL on TCP 3306 (greeting, login, COM_QUERY -> result set/OK/ERR)
 *   pgsql     PostgreSQL v3 on TCP 5432 (startup, simple Query, ErrorResponse)
 *   redis     Redis RESP2 on TCP 6379 (SET/GET/INCR/DEL, error replies)
 *   memcache  Memcache text protocol on TCP 11211 (set/get/delete)
 *   thrift    Thrift binary protocol, framed transport, on TCP 9090
 *   mongodb   MongoDB OP_MSG (opcode 2013) on TCP 27017 (find -> cursor reply)
 *
 * The output depends only on the command-line arguments (own xorshift64*
 * PRNG, fixed start time 2026-01-01T00:00:00Z), so equal arguments give a
 * byte-identical file.  The ground truth is printed to stdout: one line
 * "<proto> <transactions>" per protocol, then "packets <N>".
 *
 * Usage: pcapgen [-n CONNS_PER_PROTO] [-r REQS_PER_CONN] [-s SEED]
 *                [-c CONCURRENCY] -o out.pcap
 *
 * Pure C11 + libc; no libpcap.
 */

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__GNUC__)
#define PRINTF_FMT(a, b) __attribute__((format(printf, a, b)))
#define NORETURN __attribute__((noreturn))
#else
#define PRINTF_FMT(a, b)
#define NORETURN
#endif

/* ------------------------------------------------------------------------ */
/* Tunables                                                                  */
/* ------------------------------------------------------------------------ */

#define DEFAULT_CONNS 4000u /* connections (UDP: client sockets) per protocol */
#define DEFAULT_REQS 10u    /* request/response transactions per connection */
#define DEFAULT_SEED 1u
#define DEFAULT_CONCURRENCY 8u /* connections in flight at once */
#define MAX_CONCURRENCY 64u

#define SEG_MAX 1448u            /* max TCP payload per segment */
#define EPOCH_2026 1767225600ull /* 2026-01-01T00:00:00Z */
#define CLIENT_HOST_MIN 10u
#define CLIENT_HOST_MAX 250u
#define N_CLIENT_HOSTS (CLIENT_HOST_MAX - CLIENT_HOST_MIN + 1u)
#define EPHEMERAL_MIN 32768u
#define EPHEMERAL_MAX 60999u
#define N_EPHEMERAL (EPHEMERAL_MAX - EPHEMERAL_MIN + 1u)
#define CLIENT_WINDOW 64240u
#define SERVER_WINDOW 65160u

#define TH_FIN 0x01u
#define TH_SYN 0x02u
#define TH_PSH 0x08u
#define TH_ACK 0x10u

/* ------------------------------------------------------------------------ */
/* Protocol table                                                            */
/* ------------------------------------------------------------------------ */

enum { P_HTTP, P_DNS, P_MYSQL, P_PGSQL, P_REDIS, P_MEMCACHE, P_THRIFT, P_MONGODB, P_COUNT };

typedef struct {
	const char *name;    /* name printed in the ground-truth summary */
	uint16_t port;       /* server port */
	uint8_t server;      /* server host octet: 172.17.0.<server> */
	uint8_t udp;         /* 1: UDP request/response, no connection */
	uint8_t setup_steps; /* protocol setup exchanges before the first request */
} proto_info_t;

static const proto_info_t protos[P_COUNT] = {
    [P_HTTP] = {"http", 80, 2, 0, 0},       [P_DNS] = {"dns", 53, 3, 1, 0},
    [P_MYSQL] = {"mysql", 3306, 4, 0, 2}, /* greeting; login + OK */
    [P_PGSQL] = {"pgsql", 5432, 5, 0, 1}, /* startup + auth ok/ready */
    [P_REDIS] = {"redis", 6379, 6, 0, 0},   [P_MEMCACHE] = {"memcache", 11211, 7, 0, 0},
    [P_THRIFT] = {"thrift", 9090, 8, 0, 0}, [P_MONGODB] = {"mongodb", 27017, 9, 0, 0},
};

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */
/* ------------------------------------------------------------------------ */

NORETURN static void die(const char *msg)
{
	fprintf(stderr, "pcapgen: %s\n", msg);
	exit(1);
}

/* ------------------------------------------------------------------------ */
/* Growable byte buffer with big/little-endian writers                       */
/* ------------------------------------------------------------------------ */

typedef struct {
	uint8_t *p;
	size_t len, cap;
} buf_t;

static void buf_reserve(buf_t *b, size_t extra)
{
	size_t cap;
	uint8_t *np;

	if (b->len + extra <= b->cap)
		return;
	cap = b->cap ? b->cap : 1024;
	while (cap < b->len + extra)
		cap *= 2;
	np = realloc(b->p, cap);
	if (!np)
		die("out of memory");
	b->p = np;
	b->cap = cap;
}

static void buf_put(buf_t *b, const void *data, size_t n)
{
	buf_reserve(b, n);
	if (n)
		memcpy(b->p + b->len, data, n);
	b->len += n;
}

static void buf_u8(buf_t *b, unsigned v)
{
	uint8_t x = (uint8_t)v;
	buf_put(b, &x, 1);
}

static void buf_be16(buf_t *b, unsigned v)
{
	uint8_t x[2] = {(uint8_t)(v >> 8), (uint8_t)v};
	buf_put(b, x, 2);
}

static void buf_be32(buf_t *b, uint32_t v)
{
	uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
	buf_put(b, x, 4);
}

static void buf_le16(buf_t *b, unsigned v)
{
	uint8_t x[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
	buf_put(b, x, 2);
}

static void buf_le32(buf_t *b, uint32_t v)
{
	uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
	buf_put(b, x, 4);
}

static void buf_le64(buf_t *b, uint64_t v)
{
	buf_le32(b, (uint32_t)v);
	buf_le32(b, (uint32_t)(v >> 32));
}

static void buf_zero(buf_t *b, size_t n)
{
	buf_reserve(b, n);
	memset(b->p + b->len, 0, n);
	b->len += n;
}

/* String without its NUL terminator. */
static void buf_str(buf_t *b, const char *s)
{
	buf_put(b, s, strlen(s));
}

/* NUL-terminated string (C string on the wire). */
static void buf_cstr(buf_t *b, const char *s)
{
	buf_put(b, s, strlen(s) + 1);
}

PRINTF_FMT(2, 3)
static void buf_printf(buf_t *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		die("vsnprintf failed");
	buf_reserve(b, (size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf((char *)b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

static void put_be16(uint8_t *p, unsigned v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

/* Filler text for bodies: n bytes of lorem ipsum starting at offset off. */
static const char lorem[] =
    "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod "
    "tempor incididunt ut labore et dolore magna aliqua ut enim ad minim "
    "veniam quis nostrud exercitation ullamco laboris nisi ut aliquip ex ea "
    "commodo consequat duis aute irure dolor in reprehenderit in voluptate ";

static void buf_filler(buf_t *b, size_t n, uint32_t off)
{
	const size_t ll = sizeof lorem - 1;
	size_t i;

	buf_reserve(b, n);
	for (i = 0; i < n; i++)
		b->p[b->len + i] = (uint8_t)lorem[(off + i) % ll];
	b->len += n;
}

/* An HTML document of exactly n bytes (plain filler when n is tiny). */
static void buf_html(buf_t *b, size_t n, uint32_t off)
{
	static const char pre[] = "<!DOCTYPE html><html><body><p>";
	static const char post[] = "</p></body></html>\n";
	const size_t fixed = (sizeof pre - 1) + (sizeof post - 1);

	if (n <= fixed) {
		buf_filler(b, n, off);
		return;
	}
	buf_str(b, pre);
	buf_filler(b, n - fixed, off);
	buf_str(b, post);
}

/* ------------------------------------------------------------------------ */
/* Generator state                                                           */
/* ------------------------------------------------------------------------ */

/* Connection states; each emitting state writes exactly one packet. */
enum {
	ST_SYN,     /* client SYN */
	ST_SYNACK,  /* server SYN|ACK */
	ST_HSACK,   /* client ACK completing the handshake */
	ST_CDATA,   /* client message segment(s) / UDP query */
	ST_SDATA,   /* server message segment(s) / UDP response */
	ST_CACK,    /* client pure ACK of the server message */
	ST_FIN_C,   /* client FIN|ACK */
	ST_FIN_S,   /* server FIN|ACK */
	ST_LASTACK, /* client final ACK */
	ST_DONE
};

typedef struct {
	int active;
	int proto;
	int state;
	uint8_t chost;         /* client host octet: 172.17.0.<chost> */
	uint16_t cport;        /* client ephemeral port */
	uint32_t cseq, sseq;   /* next sequence number client / server sends */
	uint16_t cipid, sipid; /* IPv4 identification counters */
	uint64_t next_us;      /* due time of this connection's next packet */
	unsigned setup_step;   /* protocol setup exchanges done so far */
	uint32_t reqs_left;    /* transactions still to generate */
	uint32_t msgno;        /* client-side message counter (ids, seqids) */
	uint32_t peer_msgno;   /* server-side message counter */
	uint16_t dns_id;       /* DNS id of the next query */
	int need_ack;          /* client sends a pure ACK after the server message */
	buf_t cmsg, smsg;      /* current client / server message */
	size_t coff, soff;     /* bytes of cmsg / smsg already sent */
} conn_t;

typedef struct {
	FILE *out;
	uint64_t rng;     /* xorshift64* state */
	uint64_t now;     /* timestamp of the packet being written (us) */
	uint64_t last_us; /* timestamp of the last packet written (us) */
	uint64_t packets;
	uint64_t txns[P_COUNT];       /* ground truth: transactions per protocol */
	uint64_t conns_left[P_COUNT]; /* connections still to start per protocol */
	uint64_t conns_left_total;
	uint32_t reqs;    /* transactions per connection */
	uint8_t *portmap; /* bitmap of (client host, port) pairs used */
	unsigned nslots;
	conn_t slots[MAX_CONCURRENCY];
	uint8_t frame[2048];
} gen_t;

/* ------------------------------------------------------------------------ */
/* PRNG: xorshift64* seeded through splitmix64                               */
/* ------------------------------------------------------------------------ */

static void rng_seed(gen_t *g, uint64_t seed)
{
	uint64_t z = seed + 0x9E3779B97F4A7C15ull;

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	z ^= z >> 31;
	g->rng = z ? z : 0x2545F4914F6CDD1Dull;
}

static uint64_t rng_next(gen_t *g)
{
	uint64_t x = g->rng;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	g->rng = x;
	return x * 0x2545F4914F6CDD1Dull;
}

/* Uniform-ish integer in [0, n), n > 0. */
static uint32_t rnd(gen_t *g, uint32_t n)
{
	return (uint32_t)(((rng_next(g) >> 32) * (uint64_t)n) >> 32);
}

/* Integer in [lo, hi] inclusive. */
static uint32_t rndr(gen_t *g, uint32_t lo, uint32_t hi)
{
	return lo + rnd(g, hi - lo + 1);
}

/* True with probability permille/1000. */
static int chance(gen_t *g, unsigned permille)
{
	return rnd(g, 1000) < permille;
}

/* Random lowercase alphanumeric token of n characters into out[n+1]. */
static void str_token(gen_t *g, char *out, size_t n)
{
	static const char alnum[] = "abcdefghijklmnopqrstuvwxyz0123456789";
	size_t i;

	for (i = 0; i < n; i++)
		out[i] = alnum[rnd(g, sizeof alnum - 1)];
	out[n] = '\0';
}

/* Request -> response latency: mostly sub-millisecond, tail up to ~8 ms. */
static uint64_t server_latency(gen_t *g)
{
	uint32_t r = rnd(g, 100);

	if (r < 70)
		return rndr(g, 150, 900);
	if (r < 95)
		return rndr(g, 900, 3000);
	return rndr(g, 3000, 8000);
}

/* Client think time between transactions on one connection. */
static uint64_t think_time(gen_t *g)
{
	return rndr(g, 30, 600);
}

/* ------------------------------------------------------------------------ */
/* pcap output and L2-L4 framing                                             */
/* ------------------------------------------------------------------------ */

static void write_pcap_header(FILE *f)
{
	/* Classic pcap global header, written little-endian (magic d4 c3 b2 a1). */
	buf_t b = {0};

	buf_le32(&b, 0xa1b2c3d4u); /* magic */
	buf_le16(&b, 2);           /* version major */
	buf_le16(&b, 4);           /* version minor */
	buf_le32(&b, 0);           /* thiszone */
	buf_le32(&b, 0);           /* sigfigs */
	buf_le32(&b, 65535);       /* snaplen */
	buf_le32(&b, 1);           /* LINKTYPE_ETHERNET */
	fwrite(b.p, 1, b.len, f);
	free(b.p);
}

/* Write g->frame[0..len) as one record stamped g->now. */
static void write_record(gen_t *g, size_t len)
{
	uint8_t h[16];
	uint64_t sec = EPOCH_2026 + g->now / 1000000u;

	put_le32(h, (uint32_t)sec);
	put_le32(h + 4, (uint32_t)(g->now % 1000000u));
	put_le32(h + 8, (uint32_t)len);  /* incl_len */
	put_le32(h + 12, (uint32_t)len); /* orig_len */
	fwrite(h, 1, sizeof h, g->out);
	fwrite(g->frame, 1, len, g->out);
	g->packets++;
	g->last_us = g->now;
}

/* One's-complement sum of 16-bit big-endian words (odd tail padded). */
static uint32_t csum_add(uint32_t sum, const uint8_t *p, size_t n)
{
	while (n > 1) {
		sum += ((uint32_t)p[0] << 8) | p[1];
		p += 2;
		n -= 2;
	}
	if (n)
		sum += (uint32_t)p[0] << 8;
	return sum;
}

static uint16_t csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffffu) + (sum >> 16);
	return (uint16_t)(~sum & 0xffffu);
}

/* TCP/UDP checksum over the IPv4 pseudo-header and the L4 segment. */
static uint16_t l4_checksum(uint8_t src, uint8_t dst, uint8_t proto, const uint8_t *l4, size_t len)
{
	uint8_t ph[12] = {172,         17, 0, src, 172, 17, 0, dst, 0, proto, (uint8_t)(len >> 8),
			  (uint8_t)len};

	return csum_fold(csum_add(csum_add(0, ph, sizeof ph), l4, len));
}

/* Ethernet II + IPv4 (DF, TTL 64) headers; returns the L4 offset (34). */
static size_t put_eth_ipv4(uint8_t *f, uint8_t src, uint8_t dst, uint8_t proto, size_t l4len,
			   uint16_t ipid)
{
	static const uint8_t mac_prefix[5] = {0x02, 0x42, 0xac, 0x11, 0x00};
	uint8_t *ip = f + 14;

	memcpy(f, mac_prefix, 5);
	f[5] = dst;
	memcpy(f + 6, mac_prefix, 5);
	f[11] = src;
	f[12] = 0x08; /* ethertype IPv4 */
	f[13] = 0x00;

	ip[0] = 0x45; /* version 4, IHL 5 */
	ip[1] = 0x00; /* DSCP/ECN */
	put_be16(ip + 2, (unsigned)(20 + l4len));
	put_be16(ip + 4, ipid);
	put_be16(ip + 6, 0x4000); /* DF */
	ip[8] = 64;               /* TTL */
	ip[9] = proto;
	ip[10] = ip[11] = 0;
	ip[12] = 172;
	ip[13] = 17;
	ip[14] = 0;
	ip[15] = src;
	ip[16] = 172;
	ip[17] = 17;
	ip[18] = 0;
	ip[19] = dst;
	put_be16(ip + 10, csum_fold(csum_add(0, ip, 20)));
	return 34;
}

/* Emit one TCP segment of connection c and advance the sender's sequence. */
static void emit_tcp(gen_t *g, conn_t *c, int from_client, unsigned flags, const uint8_t *payload,
		     size_t plen)
{
	/* SYN options: MSS 1460, NOP, NOP, SACK permitted. */
	static const uint8_t synopts[8] = {2, 4, 0x05, 0xb4, 1, 1, 4, 2};
	const uint8_t shost = protos[c->proto].server;
	const uint16_t sport = protos[c->proto].port;
	const size_t optlen = (flags & TH_SYN) ? sizeof synopts : 0;
	const size_t hlen = 20 + optlen;
	const size_t tcplen = hlen + plen;
	const uint8_t src = from_client ? c->chost : shost;
	const uint8_t dst = from_client ? shost : c->chost;
	uint32_t *seq = from_client ? &c->cseq : &c->sseq;
	const uint32_t ack = from_client ? c->sseq : c->cseq;
	uint8_t *f = g->frame;
	uint8_t *t;
	size_t off;

	off = put_eth_ipv4(f, src, dst, 6, tcplen, from_client ? c->cipid++ : c->sipid++);
	t = f + off;
	put_be16(t, from_client ? c->cport : sport);
	put_be16(t + 2, from_client ? sport : c->cport);
	put_be32(t + 4, *seq);
	put_be32(t + 8, (flags & TH_ACK) ? ack : 0);
	t[12] = (uint8_t)((hlen / 4) << 4);
	t[13] = (uint8_t)flags;
	put_be16(t + 14, from_client ? CLIENT_WINDOW : SERVER_WINDOW);
	t[16] = t[17] = 0; /* checksum, filled below */
	t[18] = t[19] = 0; /* urgent pointer */
	if (optlen)
		memcpy(t + 20, synopts, optlen);
	if (plen)
		memcpy(t + hlen, payload, plen);
	put_be16(t + 16, l4_checksum(src, dst, 6, t, tcplen));

	*seq += (uint32_t)plen + ((flags & TH_SYN) ? 1u : 0u) + ((flags & TH_FIN) ? 1u : 0u);
	write_record(g, off + tcplen);
}

/* Emit one UDP datagram of (pseudo-)connection c. */
static void emit_udp(gen_t *g, conn_t *c, int from_client, const uint8_t *payload, size_t plen)
{
	const uint8_t shost = protos[c->proto].server;
	const uint16_t sport = protos[c->proto].port;
	const size_t udplen = 8 + plen;
	const uint8_t src = from_client ? c->chost : shost;
	const uint8_t dst = from_client ? shost : c->chost;
	uint8_t *f = g->frame;
	uint8_t *u;
	uint16_t sum;
	size_t off;

	if (udplen + 34 > sizeof g->frame)
		die("UDP payload too large");
	off = put_eth_ipv4(f, src, dst, 17, udplen, from_client ? c->cipid++ : c->sipid++);
	u = f + off;
	put_be16(u, from_client ? c->cport : sport);
	put_be16(u + 2, from_client ? sport : c->cport);
	put_be16(u + 4, (unsigned)udplen);
	u[6] = u[7] = 0;
	memcpy(u + 8, payload, plen);
	sum = l4_checksum(src, dst, 17, u, udplen);
	put_be16(u + 6, sum ? sum : 0xffffu); /* 0 means "no checksum" in UDP */
	write_record(g, off + udplen);
}

/* ------------------------------------------------------------------------ */
/* HTTP/1.1                                                                  */
/* ------------------------------------------------------------------------ */

static const char *const http_paths[] = {
    "/",
    "/index.html",
    "/search",
    "/api/v1/items",
    "/api/v1/users",
    "/static/app.js",
    "/static/style.css",
    "/images/logo.png",
    "/products/list",
    "/health",
};

static const char http_404_body[] =
    "<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n"
    "<center><h1>404 Not Found</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n";

/* RFC 7231 IMF-fixdate of the current generator time. */
static void http_date(const gen_t *g, char *out, size_t n)
{
	time_t t = (time_t)(EPOCH_2026 + g->last_us / 1000000u);
	struct tm *tm = gmtime(&t);

	if (!tm || !strftime(out, n, "%a, %d %b %Y %H:%M:%S GMT", tm))
		snprintf(out, n, "Thu, 01 Jan 2026 00:00:00 GMT");
}

static void build_http(gen_t *g, conn_t *c)
{
	buf_t *q = &c->cmsg, *r = &c->smsg;
	const uint32_t n = rnd(g, 100000);
	const char *path = http_paths[rnd(g, sizeof http_paths / sizeof http_paths[0])];
	char date[64];
	unsigned roll;

	http_date(g, date, sizeof date);

	if (chance(g, 40)) {
		/* POST with a JSON body. */
		char body[128], rbody[64];
		int bl = snprintf(body, sizeof body, "{\"id\":%u,\"name\":\"item-%u\",\"qty\":%u}",
				  (unsigned)n, (unsigned)n, (unsigned)rndr(g, 1, 99));
		int rl = snprintf(rbody, sizeof rbody, "{\"ok\":true,\"id\":%u}", (unsigned)n);

		buf_printf(q,
			   "POST /api/v1/items HTTP/1.1\r\n"
			   "Host: web.local\r\n"
			   "User-Agent: pcapgen/1.0\r\n"
			   "Accept: */*\r\n"
			   "Content-Type: application/json\r\n"
			   "Content-Length: %d\r\n"
			   "\r\n%s",
			   bl, body);
		buf_printf(r,
			   "HTTP/1.1 200 OK\r\n"
			   "Server: nginx\r\n"
			   "Date: %s\r\n"
			   "Content-Type: application/json\r\n"
			   "Content-Length: %d\r\n"
			   "\r\n%s",
			   date, rl, rbody);
		return;
	}

	buf_printf(q,
		   "GET %s?q=%u HTTP/1.1\r\n"
		   "Host: web.local\r\n"
		   "User-Agent: pcapgen/1.0\r\n"
		   "Accept: */*\r\n"
		   "\r\n",
		   path, (unsigned)n);

	roll = rnd(g, 1000);
	if (roll < 50) {
		/* ~5% 404 Not Found. */
		buf_printf(r,
			   "HTTP/1.1 404 Not Found\r\n"
			   "Server: nginx\r\n"
			   "Date: %s\r\n"
			   "Content-Type: text/html\r\n"
			   "Content-Length: %zu\r\n"
			   "\r\n",
			   date, sizeof http_404_body - 1);
		buf_str(r, http_404_body);
	} else if (roll < 130) {
		/* ~8% chunked: 2-3 data chunks and the terminating 0 chunk. */
		size_t cl[3];
		unsigned k = rndr(g, 2, 3), i;

		for (i = 0; i < k; i++)
			cl[i] = rndr(g, 40, 700);
		for (;;) {
			buf_printf(r,
				   "HTTP/1.1 200 OK\r\n"
				   "Server: nginx\r\n"
				   "Date: %s\r\n"
				   "Content-Type: text/html\r\n"
				   "Transfer-Encoding: chunked\r\n"
				   "\r\n",
				   date);
			for (i = 0; i < k; i++) {
				buf_printf(r, "%zx\r\n", cl[i]);
				buf_filler(r, cl[i], n + i * 61u);
				buf_str(r, "\r\n");
			}
			buf_str(r, "0\r\n\r\n");
			/* Keep the 5-byte terminator inside one segment: Wireshark 4.0
			 * flags a chunked body whose final CRLF is split across
			 * segments as malformed (valid TCP, but noisy in checks). */
			if (r->len % SEG_MAX == 0 || r->len % SEG_MAX >= 5)
				break;
			r->len = 0;
			cl[k - 1] += 8;
		}
	} else {
		/* 200 OK; ~3% of all responses are 2-6 KB (multi-segment). */
		size_t len = roll < 160 ? rndr(g, 2048, 6144) : rndr(g, 80, 1100);

		buf_printf(r,
			   "HTTP/1.1 200 OK\r\n"
			   "Server: nginx\r\n"
			   "Date: %s\r\n"
			   "Content-Type: text/html\r\n"
			   "Content-Length: %zu\r\n"
			   "\r\n",
			   date, len);
		buf_html(r, len, n);
	}
}

/* ------------------------------------------------------------------------ */
/* DNS (RFC 1035)                                                            */
/* ------------------------------------------------------------------------ */

enum {
	DNS_A = 1,
	DNS_NS = 2,
	DNS_CNAME = 5,
	DNS_SOA = 6,
	DNS_MX = 15,
	DNS_TXT = 16,
	DNS_AAAA = 28
};

static const char *const dns_domains[] = {
    "example.com", "example.org", "corp.local", "svc.internal", "docker.local", "acme.net",
};
static const char *const dns_hosts[] = {
    "www",  "api", "db",     "cache",  "mail",  "cdn",
    "auth", "img", "static", "search", "queue", "metrics",
};

/* Encode a dotted name as uncompressed labels plus the root label. */
static void dns_put_name(buf_t *b, const char *name)
{
	while (*name) {
		const char *dot = strchr(name, '.');
		size_t n = dot ? (size_t)(dot - name) : strlen(name);

		buf_u8(b, (unsigned)n);
		buf_put(b, name, n);
		name += n;
		if (*name == '.')
			name++;
	}
	buf_u8(b, 0);
}

/* Resource record header: compressed owner name pointer, type, IN, TTL, rdlength. */
static void dns_rr(buf_t *b, unsigned name_off, unsigned type, uint32_t ttl, unsigned rdlen)
{
	buf_be16(b, 0xc000u | name_off);
	buf_be16(b, type);
	buf_be16(b, 1); /* class IN */
	buf_be32(b, ttl);
	buf_be16(b, rdlen);
}

static void build_dns(gen_t *g, conn_t *c)
{
	buf_t *q = &c->cmsg, *r = &c->smsg;
	const uint16_t id = c->dns_id;
	const int nx = chance(g, 30); /* ~3% NXDOMAIN */
	const char *dom = dns_domains[rnd(g, sizeof dns_domains / sizeof dns_domains[0])];
	const unsigned pick = rnd(g, 100);
	const uint32_t ttl = rndr(g, 30, 3600);
	char host[32] = "", qname[96];
	unsigned qtype, zone_off, an = 0, i;

	c->dns_id = (uint16_t)(c->dns_id + 0x9e37u); /* odd step: distinct ids per socket */

	if (nx)
		qtype = rnd(g, 4) ? DNS_A : DNS_AAAA;
	else if (pick < 55)
		qtype = DNS_A;
	else if (pick < 80)
		qtype = DNS_AAAA;
	else if (pick < 88)
		qtype = DNS_MX;
	else if (pick < 94)
		qtype = DNS_TXT;
	else
		qtype = DNS_CNAME;

	if (qtype == DNS_MX || qtype == DNS_TXT) {
		snprintf(qname, sizeof qname, "%s", dom); /* mail/TXT records live on the domain */
		zone_off = 12;
	} else {
		const char *h = dns_hosts[rnd(g, sizeof dns_hosts / sizeof dns_hosts[0])];

		if (chance(g, 500))
			snprintf(host, sizeof host, "%s%u", h, (unsigned)rnd(g, 20));
		else
			snprintf(host, sizeof host, "%s", h);
		snprintf(qname, sizeof qname, "%s.%s", host, dom);
		zone_off = 12 + 1 + (unsigned)strlen(host); /* offset of the domain labels */
	}

	/* Query: RD set, one question. */
	buf_be16(q, id);
	buf_be16(q, 0x0100);
	buf_be16(q, 1);
	buf_be16(q, 0);
	buf_be16(q, 0);
	buf_be16(q, 0);
	dns_put_name(q, qname);
	buf_be16(q, qtype);
	buf_be16(q, 1);

	if (!nx) {
		switch (qtype) {
		case DNS_A:
		case DNS_AAAA:
		case DNS_MX:
			an = rndr(g, 1, 4);
			break;
		case DNS_TXT:
			an = rndr(g, 1, 2);
			break;
		default:
			an = 1;
			break;
		}
	}

	/* Response header: QR, RD, RA (+ rcode 3 for NXDOMAIN); question echoed. */
	buf_be16(r, id);
	buf_be16(r, nx ? 0x8183u : 0x8180u);
	buf_be16(r, 1);
	buf_be16(r, an);
	buf_be16(r, nx ? 1 : 0);
	buf_be16(r, 0);
	dns_put_name(r, qname);
	buf_be16(r, qtype);
	buf_be16(r, 1);

	if (nx) {
		/* Authority: SOA of the zone, all names compressed against the question. */
		dns_rr(r, zone_off, DNS_SOA, 900, (1 + 3 + 2) + (1 + 10 + 2) + 20);
		buf_u8(r, 3);
		buf_str(r, "ns1");
		buf_be16(r, 0xc000u | zone_off);
		buf_u8(r, 10);
		buf_str(r, "hostmaster");
		buf_be16(r, 0xc000u | zone_off);
		buf_be32(r, 2026010101u); /* serial */
		buf_be32(r, 7200);        /* refresh */
		buf_be32(r, 3600);        /* retry */
		buf_be32(r, 1209600);     /* expire */
		buf_be32(r, 300);         /* minimum */
		return;
	}

	for (i = 0; i < an; i++) {
		switch (qtype) {
		case DNS_A: {
			uint32_t base =
			    rnd(g, 2) ? 0xcb007100u : 0xc6336400u; /* 203.0.113/24, 198.51.100/24 */

			dns_rr(r, 12, DNS_A, ttl, 4);
			buf_be32(r, base | (1 + ((rnd(g, 60) * 4 + i) % 254)));
			break;
		}
		case DNS_AAAA:
			dns_rr(r, 12, DNS_AAAA, ttl, 16);
			buf_be32(r, 0x20010db8u); /* 2001:db8::/32 */
			buf_be32(r, (uint32_t)rng_next(g));
			buf_be32(r, 0);
			buf_be32(r, (rnd(g, 0x10000) << 8) | (i + 1));
			break;
		case DNS_MX:
			dns_rr(r, 12, DNS_MX, ttl, 2 + (1 + 3) + 2);
			buf_be16(r, 10 * (i + 1)); /* preference */
			buf_u8(r, 3);
			buf_printf(r, "mx%u", i + 1);
			buf_be16(r, 0xc00cu); /* mxN.<qname> */
			break;
		case DNS_TXT: {
			char txt[96];
			int tl;

			if (i == 0) {
				tl = snprintf(txt, sizeof txt, "v=spf1 include:_spf.%s ~all", dom);
			} else {
				char tok[33];

				str_token(g, tok, 32);
				tl = snprintf(txt, sizeof txt, "site-verification=%s", tok);
			}
			dns_rr(r, 12, DNS_TXT, ttl, 1 + (unsigned)tl);
			buf_u8(r, (unsigned)tl);
			buf_put(r, txt, (size_t)tl);
			break;
		}
		default: { /* CNAME -> edgeN.<domain> */
			char label[16];
			int ll = snprintf(label, sizeof label, "edge%u", (unsigned)rnd(g, 10));

			dns_rr(r, 12, DNS_CNAME, ttl, 1 + (unsigned)ll + 2);
			buf_u8(r, (unsigned)ll);
			buf_put(r, label, (size_t)ll);
			buf_be16(r, 0xc000u | zone_off);
			break;
		}
		}
	}
}

/* ------------------------------------------------------------------------ */
/* MySQL client/server protocol                                              */
/* ------------------------------------------------------------------------ */

#define MYSQL_CAPS                                                         \
	0x000ba20fu /* LONG_PASSWORD|FOUND_ROWS|LONG_FLAG|CONNECT_WITH_DB| \
		       PROTOCOL_41|TRANSACTIONS|SECURE_CONNECTION|         \
		       MULTI_STATEMENTS|MULTI_RESULTS|PLUGIN_AUTH */
#define MYSQL_STATUS_AUTOCOMMIT 0x0002u

/* Start a packet (3-byte length placeholder + sequence id); returns its offset. */
static size_t my_begin(buf_t *b, unsigned seq)
{
	size_t off = b->len;

	buf_zero(b, 3);
	buf_u8(b, seq);
	return off;
}

static void my_end(buf_t *b, size_t off)
{
	size_t n = b->len - off - 4;

	b->p[off] = (uint8_t)n;
	b->p[off + 1] = (uint8_t)(n >> 8);
	b->p[off + 2] = (uint8_t)(n >> 16);
}

static void my_lenenc_int(buf_t *b, uint64_t v)
{
	if (v < 251) {
		buf_u8(b, (unsigned)v);
	} else if (v < 0x10000u) {
		buf_u8(b, 0xfc);
		buf_le16(b, (unsigned)v);
	} else if (v < 0x1000000u) {
		buf_u8(b, 0xfd);
		buf_u8(b, (unsigned)v);
		buf_le16(b, (unsigned)(v >> 8));
	} else {
		buf_u8(b, 0xfe);
		buf_le64(b, v);
	}
}

static void my_lenenc_str(buf_t *b, const char *s)
{
	size_t n = strlen(s);

	my_lenenc_int(b, n);
	buf_put(b, s, n);
}

/* Protocol::ColumnDefinition41 packet for table test.t. */
static void my_coldef(buf_t *b, unsigned seq, const char *name, unsigned charset, uint32_t collen,
		      unsigned type, unsigned flags)
{
	size_t off = my_begin(b, seq);

	my_lenenc_str(b, "def");  /* catalog */
	my_lenenc_str(b, "test"); /* schema */
	my_lenenc_str(b, "t");    /* table */
	my_lenenc_str(b, "t");    /* org_table */
	my_lenenc_str(b, name);
	my_lenenc_str(b, name); /* org_name */
	buf_u8(b, 0x0c);        /* length of fixed fields */
	buf_le16(b, charset);
	buf_le32(b, collen);
	buf_u8(b, type);
	buf_le16(b, flags);
	buf_u8(b, 0);   /* decimals */
	buf_le16(b, 0); /* filler */
	my_end(b, off);
}

static void my_eof(buf_t *b, unsigned seq)
{
	size_t off = my_begin(b, seq);

	buf_u8(b, 0xfe);
	buf_le16(b, 0); /* warnings */
	buf_le16(b, MYSQL_STATUS_AUTOCOMMIT);
	my_end(b, off);
}

/* Setup step 0: server greeting (HandshakeV10).  Step 1: login + OK. */
static void build_mysql_setup(gen_t *g, conn_t *c, unsigned step)
{
	static const char scramble_chars[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
	size_t off, i;

	if (step == 0) {
		buf_t *r = &c->smsg;

		off = my_begin(r, 0);
		buf_u8(r, 10);                    /* protocol version */
		buf_cstr(r, "8.0.36");            /* server version */
		buf_le32(r, rndr(g, 8, 1000000)); /* connection id */
		for (i = 0; i < 8; i++)           /* auth-plugin-data part 1 */
			buf_u8(r, (uint8_t)scramble_chars[rnd(g, sizeof scramble_chars - 1)]);
		buf_u8(r, 0);                      /* filler */
		buf_le16(r, MYSQL_CAPS & 0xffffu); /* capability flags (lower) */
		buf_u8(r, 0xff);                   /* utf8mb4_0900_ai_ci */
		buf_le16(r, MYSQL_STATUS_AUTOCOMMIT);
		buf_le16(r, MYSQL_CAPS >> 16); /* capability flags (upper) */
		buf_u8(r, 21);                 /* auth-plugin-data length */
		buf_zero(r, 10);               /* reserved */
		for (i = 0; i < 12; i++)       /* auth-plugin-data part 2 */
			buf_u8(r, (uint8_t)scramble_chars[rnd(g, sizeof scramble_chars - 1)]);
		buf_u8(r, 0);
		buf_cstr(r, "mysql_native_password");
		my_end(r, off);
		c->need_ack = 0; /* the login request acknowledges the greeting */
		return;
	}

	/* HandshakeResponse41 */
	off = my_begin(&c->cmsg, 1);
	buf_le32(&c->cmsg, MYSQL_CAPS);
	buf_le32(&c->cmsg, 16777216u); /* max packet size */
	buf_u8(&c->cmsg, 0xff);        /* character set */
	buf_zero(&c->cmsg, 23);        /* filler */
	buf_cstr(&c->cmsg, "bench");   /* user */
	buf_u8(&c->cmsg, 20);          /* auth response length */
	for (i = 0; i < 20; i++)
		buf_u8(&c->cmsg, (uint8_t)rng_next(g));
	buf_cstr(&c->cmsg, "test"); /* database */
	buf_cstr(&c->cmsg, "mysql_native_password");
	my_end(&c->cmsg, off);

	/* OK_Packet */
	off = my_begin(&c->smsg, 2);
	buf_u8(&c->smsg, 0x00);
	my_lenenc_int(&c->smsg, 0); /* affected rows */
	my_lenenc_int(&c->smsg, 0); /* last insert id */
	buf_le16(&c->smsg, MYSQL_STATUS_AUTOCOMMIT);
	buf_le16(&c->smsg, 0); /* warnings */
	my_end(&c->smsg, off);
}

static void build_mysql(gen_t *g, conn_t *c)
{
	buf_t *q = &c->cmsg, *r = &c->smsg;
	const uint32_t n = rndr(g, 1, 1000000);
	const unsigned roll = rnd(g, 100);
	size_t off;

	off = my_begin(q, 0);
	buf_u8(q, 0x03); /* COM_QUERY */
	if (roll < 6) {
		/* UPDATE -> OK with 1 affected row. */
		buf_printf(q, "UPDATE t SET name = 'name_%u' WHERE id = %u",
			   (unsigned)rnd(g, 100000), (unsigned)n);
		my_end(q, off);
		off = my_begin(r, 1);
		buf_u8(r, 0x00);
		my_lenenc_int(r, 1);
		my_lenenc_int(r, 0);
		buf_le16(r, MYSQL_STATUS_AUTOCOMMIT);
		buf_le16(r, 0);
		/* No info string: its encoding without CLIENT_SESSION_TRACK is
		 * ambiguous between the docs and real servers. */
		my_end(r, off);
	} else if (roll < 9) {
		/* Syntax error -> ERR 1064. */
		char sql[96];

		snprintf(sql, sizeof sql, "SELEC id, name FROM t WHERE id = %u", (unsigned)n);
		buf_str(q, sql);
		my_end(q, off);
		off = my_begin(r, 1);
		buf_u8(r, 0xff);
		buf_le16(r, 1064);
		buf_u8(r, '#');
		buf_str(r, "42000");
		buf_printf(r,
			   "You have an error in your SQL syntax; check the manual that "
			   "corresponds to your MySQL server version for the right syntax "
			   "to use near '%s' at line 1",
			   sql);
		my_end(r, off);
	} else {
		/* SELECT -> result set: column count, 2 column defs, EOF, rows, EOF. */
		unsigned rows = rndr(g, 1, 3), i, seq = 1;

		if (rows == 1)
			buf_printf(q, "SELECT id, name FROM t WHERE id = %u", (unsigned)n);
		else
			buf_printf(q, "SELECT id, name FROM t WHERE id >= %u LIMIT %u", (unsigned)n,
				   rows);
		my_end(q, off);

		off = my_begin(r, seq++);
		my_lenenc_int(r, 2);
		my_end(r, off);
		my_coldef(r, seq++, "id", 63, 11, 0x03 /* LONG */,
			  0x4003 /* NOT_NULL|PRI_KEY|PART_KEY */);
		my_coldef(r, seq++, "name", 255, 1020, 0xfd /* VAR_STRING */, 0);
		my_eof(r, seq++);
		for (i = 0; i < rows; i++) {
			char idbuf[16], name[48];

			snprintf(idbuf, sizeof idbuf, "%u", (unsigned)(n + i));
			snprintf(name, sizeof name, "name_%u", (unsigned)rnd(g, 1000000));
			off = my_begin(r, seq++);
			my_lenenc_str(r, idbuf);
			my_lenenc_str(r, name);
			my_end(r, off);
		}
		my_eof(r, seq);
	}
}

/* ------------------------------------------------------------------------ */
/* PostgreSQL frontend/backend protocol v3                                   */
/* ------------------------------------------------------------------------ */

/* Start a typed message (type byte + int32 length placeholder). */
static size_t pg_begin(buf_t *b, char type)
{
	size_t off;

	buf_u8(b, (unsigned char)type);
	off = b->len;
	buf_be32(b, 0);
	return off;
}

/* Backpatch the length (includes itself, excludes the type byte). */
static void pg_end(buf_t *b, size_t off)
{
	put_be32(b->p + off, (uint32_t)(b->len - off));
}

static void pg_ready(buf_t *b)
{
	size_t off = pg_begin(b, 'Z');

	buf_u8(b, 'I'); /* idle */
	pg_end(b, off);
}

static void pg_param(buf_t *b, const char *k, const char *v)
{
	size_t off = pg_begin(b, 'S');

	buf_cstr(b, k);
	buf_cstr(b, v);
	pg_end(b, off);
}

/* StartupMessage -> AuthenticationOk, ParameterStatus, BackendKeyData, ReadyForQuery. */
static void build_pgsql_setup(gen_t *g, conn_t *c)
{
	buf_t *q = &c->cmsg, *r = &c->smsg;
	size_t off = q->len;

	buf_be32(q, 0);          /* length placeholder */
	buf_be32(q, 0x00030000); /* protocol 3.0 */
	buf_cstr(q, "user");
	buf_cstr(q, "bench");
	buf_cstr(q, "database");
	buf_cstr(q, "test");
	buf_cstr(q, "application_name");
	buf_cstr(q, "pcapgen");
	buf_u8(q, 0);
	put_be32(q->p + off, (uint32_t)(q->len - off));

	off = pg_begin(r, 'R');
	buf_be32(r, 0); /* AuthenticationOk */
	pg_end(r, off);
	pg_param(r, "server_version", "15.5");
	pg_param(r, "client_encoding", "UTF8");
	off = pg_begin(r, 'K');
	buf_be32(r, rndr(g, 100, 4000000)); /* backend pid */
	buf_be32(r, (uint32_t)rng_next(g)); /* secret key */
	pg_end(r, off);
	pg_ready(r);
}

static void build_pgsql(gen_t *g, conn_t *c)
{
	buf_t *q = &c->cmsg, *r = &c->smsg;
	const uint32_t n = rndr(g, 1, 1000000);
	const unsigned roll = rnd(g, 100);
	size_t off;

	off = pg_begin(q, 'Q');
	if (roll < 5) {
		/* ErrorResponse + ReadyForQuery. */
		buf_printf(q, "SELECT * FROM accounts WHERE id = %u", (unsigned)n);
		buf_u8(q, 0);
		pg_end(q, off);
		off = pg_begin(r, 'E');
		buf_u8(r, 'S');
		buf_cstr(r, "ERROR");
		buf_u8(r, 'V');
		buf_cstr(r, "ERROR");
		buf_u8(r, 'C');
		buf_cstr(r, "42P01");
		buf_u8(r, 'M');
		buf_cstr(r, "relation \"accounts\" does not exist");
		buf_u8(r, 'P');
		buf_cstr(r, "15");
		buf_u8(r, 'F');
		buf_cstr(r, "parse_relation.c");
		buf_u8(r, 'L');
		buf_cstr(r, "1392");
		buf_u8(r, 'R');
		buf_cstr(r, "parserOpenTable");
		buf_u8(r, 0);
		pg_end(r, off);
	} else if (roll < 10) {
		/* UPDATE -> CommandComplete "UPDATE 1". */
		buf_printf(q, "UPDATE t SET name = 'name_%u' WHERE id = %u",
			   (unsigned)rnd(g, 100000), (unsigned)n);
		buf_u8(q, 0);
		pg_end(q, off);
		off = pg_begin(r, 'C');
		buf_cstr(r, "UPDATE 1");
		pg_end(r, off);
	} else {
		/* RowDescription, DataRow x1-3, CommandComplete. */
		unsigned rows = rndr(g, 1, 3), i;
		char tag[32];

		if (rows == 1)
			buf_printf(q, "SELECT * FROM t WHERE id = %u", (unsigned)n);
		else
			buf_printf(q, "SELECT * FROM t WHERE id >= %u LIMIT %u", (unsigned)n, rows);
		buf_u8(q, 0);
		pg_end(q, off);

		off = pg_begin(r, 'T');
		buf_be16(r, 2);
		buf_cstr(r, "id");
		buf_be32(r, 16384);       /* table OID */
		buf_be16(r, 1);           /* attribute number */
		buf_be32(r, 23);          /* int4 */
		buf_be16(r, 4);           /* type size */
		buf_be32(r, 0xffffffffu); /* type modifier -1 */
		buf_be16(r, 0);           /* text format */
		buf_cstr(r, "name");
		buf_be32(r, 16384);
		buf_be16(r, 2);
		buf_be32(r, 25);      /* text */
		buf_be16(r, 0xffffu); /* -1: variable */
		buf_be32(r, 0xffffffffu);
		buf_be16(r, 0);
		pg_end(r, off);
		for (i = 0; i < rows; i++) {
			char idbuf[16], name[48];
			int il = snprintf(idbuf, sizeof idbuf, "%u", (unsigned)(n + i));
			int nl = snprintf(name, sizeof name, "name_%u", (unsigned)rnd(g, 1000000));

			off = pg_begin(r, 'D');
			buf_be16(r, 2);
			buf_be32(r, (uint32_t)il);
			buf_put(r, idbuf, (size_t)il);
			buf_be32(r, (uint32_t)nl);
			buf_put(r, name, (size_t)nl);
			pg_end(r, off);
		}
		snprintf(tag, sizeof tag, "SELECT %u", rows);
		off = pg_begin(r, 'C');
		buf_cstr(r, tag);
		pg_end(r, off);
	}
	pg_ready(r);
}

/* ------------------------------------------------------------------------ */
/* Redis RESP2                                                               */
/* ------------------------------------------------------------------------ */

/* Command as an array of bulk strings. */
static void resp_cmd(buf_t *b, unsigned argc, const char *const *argv)
{
	unsigned i;

	buf_printf(b, "*%u\r\n", argc);
	for (i = 0; i < argc; i++)
		buf_printf(b, "$%zu\r\n%s\r\n", strlen(argv[i]), argv[i]);
}

static void build_redis(gen_t *g, conn_t *c)
{
	buf_t *q = &c->cmsg, *r = &c->smsg;
	const uint32_t n = rnd(g, 100000);
	const unsigned roll = rnd(g, 100);
	char key[32], val[64];

	snprintf(key, sizeof key, "key:%u", (unsigned)n);
	memcpy(val, "value-", 6);
	str_token(g, val + 6, rndr(g, 4, 48));

	if (roll < 40) {
		const char *argv[3] = {"SET", key, val};

		resp_cmd(q, 3, argv);
		buf_str(r, "+OK\r\n");
	} else if (roll < 80) {
		const char *argv[2] = {"GET", key};

		resp_cmd(q, 2, argv);
		if (chance(g, 800))
			buf_printf(r, "$%zu\r\n%s\r\n", strlen(val), val);
		else
			buf_str(r, "$-1\r\n"); /* nil */
	} else if (roll < 88) {
		const char *argv[2] = {"INCR", key};

		snprintf(key, sizeof key, "counter:%u", (unsigned)(n % 1000));
		resp_cmd(q, 2, argv);
		buf_printf(r, ":%u\r\n", (unsigned)rndr(g, 1, 100000));
	} else if (roll < 96) {
		const char *argv[2] = {"DEL", key};

		resp_cmd(q, 2, argv);
		buf_printf(r, ":%u\r\n", (unsigned)rnd(g, 2));
	} else {
		/* List op on a string key -> error reply. */
		const char *argv[3] = {"LPUSH", key, val};

		resp_cmd(q, 3, argv);
		buf_str(r,
			"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
	}
}

/* ------------------------------------------------------------------------ */
/* Memcache text protocol                                                    */
/* ------------------------------------------------------------------------ */

static void build_memcache(gen_t *g, conn_t *c)
{
	buf_t *q = &c->cmsg, *r = &c->smsg;
	const uint32_t n = rnd(g, 100000);
	const unsigned roll = rnd(g, 100);
	char data[128];
	unsigned flags = 0, exptime = 0;
	size_t dl;

	if (chance(g, 300)) {
		memcpy(data, "hello", 6);
	} else {
		str_token(g, data, rndr(g, 5, 100));
		flags = rnd(g, 4);
		exptime = rnd(g, 2) ? 0 : 3600;
	}
	dl = strlen(data);

	if (roll < 45) {
		buf_printf(q, "set key:%u %u %u %zu\r\n%s\r\n", (unsigned)n, flags, exptime, dl,
			   data);
		buf_str(r, "STORED\r\n");
	} else if (roll < 90) {
		buf_printf(q, "get key:%u\r\n", (unsigned)n);
		if (chance(g, 750))
			buf_printf(r, "VALUE key:%u %u %zu\r\n%s\r\nEND\r\n", (unsigned)n, flags,
				   dl, data);
		else
			buf_str(r, "END\r\n"); /* miss */
	} else {
		buf_printf(q, "delete key:%u\r\n", (unsigned)n);
		buf_str(r, rnd(g, 3) ? "DELETED\r\n" : "NOT_FOUND\r\n");
	}
}

/* ------------------------------------------------------------------------ */
/* Thrift binary protocol, framed transport                                  */
/* ------------------------------------------------------------------------ */

enum { T_STOP = 0, T_I32 = 8, T_STRING = 11 };

static void thrift_msg_begin(buf_t *b, unsigned type, const char *method, uint32_t seqid,
			     size_t *frame_off)
{
	*frame_off = b->len;
	buf_be32(b, 0);                  /* frame length placeholder */
	buf_be32(b, 0x80010000u | type); /* strict version 1 | message type */
	buf_be32(b, (uint32_t)strlen(method));
	buf_str(b, method);
	buf_be32(b, seqid);
}

static void thrift_msg_end(buf_t *b, size_t frame_off)
{
	put_be32(b->p + frame_off, (uint32_t)(b->len - frame_off - 4));
}

static void thrift_i32(buf_t *b, unsigned id, uint32_t v)
{
	buf_u8(b, T_I32);
	buf_be16(b, id);
	buf_be32(b, v);
}

static void build_thrift(gen_t *g, conn_t *c)
{
	static const char *const methods[] = {"add", "subtract", "multiply", "divide"};
	buf_t *q = &c->cmsg, *r = &c->smsg;
	const unsigned m = rnd(g, 4);
	const uint32_t seqid = ++c->msgno;
	const int exc = chance(g, 40); /* ~4% divide by zero -> exception */
	int32_t a = (int32_t)rnd(g, 100000), b = (int32_t)rndr(g, 1, 1000), res;
	const char *method = exc ? "divide" : methods[m];
	size_t off;

	if (exc)
		b = 0;
	thrift_msg_begin(q, 1 /* CALL */, method, seqid, &off);
	thrift_i32(q, 1, (uint32_t)a);
	thrift_i32(q, 2, (uint32_t)b);
	buf_u8(q, T_STOP);
	thrift_msg_end(q, off);

	if (exc) {
		static const char msg[] = "Internal error processing divide";

		thrift_msg_begin(r, 3 /* EXCEPTION */, method, seqid, &off);
		buf_u8(r, T_STRING);
		buf_be16(r, 1); /* message */
		buf_be32(r, sizeof msg - 1);
		buf_str(r, msg);
		thrift_i32(r, 2, 6); /* type: INTERNAL_ERROR */
		buf_u8(r, T_STOP);
		thrift_msg_end(r, off);
		return;
	}

	switch (m) {
	case 0:
		res = a + b;
		break;
	case 1:
		res = a - b;
		break;
	case 2:
		res = (int32_t)((uint32_t)a * (uint32_t)b);
		break;
	default:
		res = a / b;
		break;
	}
	thrift_msg_begin(r, 2 /* REPLY */, method, seqid, &off);
	thrift_i32(r, 0, (uint32_t)res); /* field 0: success */
	buf_u8(r, T_STOP);
	thrift_msg_end(r, off);
}

/* ------------------------------------------------------------------------ */
/* MongoDB OP_MSG with BSON                                                  */
/* ------------------------------------------------------------------------ */

enum {
	BSON_DOUBLE = 0x01,
	BSON_STRING = 0x02,
	BSON_DOC = 0x03,
	BSON_ARRAY = 0x04,
	BSON_INT32 = 0x10,
	BSON_INT64 = 0x12
};

static size_t bson_begin(buf_t *b)
{
	size_t off = b->len;

	buf_le32(b, 0); /* total length placeholder */
	return off;
}

static void bson_end(buf_t *b, size_t off)
{
	buf_u8(b, 0); /* document terminator */
	put_le32(b->p + off, (uint32_t)(b->len - off));
}

static size_t bson_subdoc(buf_t *b, unsigned type, const char *name)
{
	buf_u8(b, type);
	buf_cstr(b, name);
	return bson_begin(b);
}

static void bson_string(buf_t *b, const char *name, const char *v)
{
	buf_u8(b, BSON_STRING);
	buf_cstr(b, name);
	buf_le32(b, (uint32_t)strlen(v) + 1);
	buf_cstr(b, v);
}

static void bson_int32(buf_t *b, const char *name, uint32_t v)
{
	buf_u8(b, BSON_INT32);
	buf_cstr(b, name);
	buf_le32(b, v);
}

static void bson_int64(buf_t *b, const char *name, uint64_t v)
{
	buf_u8(b, BSON_INT64);
	buf_cstr(b, name);
	buf_le64(b, v);
}

static void bson_double(buf_t *b, const char *name, double v)
{
	uint64_t bits;

	memcpy(&bits, &v, sizeof bits); /* IEEE-754 binary64 */
	buf_u8(b, BSON_DOUBLE);
	buf_cstr(b, name);
	buf_le64(b, bits);
}

/* MsgHeader + flagBits + section kind 0; returns the message offset. */
static size_t mongo_begin(buf_t *b, uint32_t request_id, uint32_t response_to)
{
	size_t off = b->len;

	buf_le32(b, 0); /* messageLength placeholder */
	buf_le32(b, request_id);
	buf_le32(b, response_to);
	buf_le32(b, 2013); /* OP_MSG */
	buf_le32(b, 0);    /* flagBits */
	buf_u8(b, 0);      /* section kind 0: body */
	return off;
}

static void mongo_end(buf_t *b, size_t off)
{
	put_le32(b->p + off, (uint32_t)(b->len - off));
}

static void build_mongodb(gen_t *g, conn_t *c)
{
	static const char *const colls[] = {"coll", "users", "orders", "items"};
	buf_t *q = &c->cmsg, *r = &c->smsg;
	const char *coll = colls[rnd(g, 4)];
	const uint32_t n = rnd(g, 1000000);
	const uint32_t req_id = c->msgno++;
	size_t moff, doff, sub, arr, elem;
	char ns[32], v[24];

	/* {find: coll, filter: {_id: n}, $db: "test"} */
	moff = mongo_begin(q, req_id, 0);
	doff = bson_begin(q);
	bson_string(q, "find", coll);
	sub = bson_subdoc(q, BSON_DOC, "filter");
	bson_int32(q, "_id", n);
	bson_end(q, sub);
	bson_string(q, "$db", "test");
	bson_end(q, doff);
	mongo_end(q, moff);

	/* {cursor: {firstBatch: [{_id: n, v: ...}], id: 0, ns: "test.coll"}, ok: 1.0} */
	snprintf(ns, sizeof ns, "test.%s", coll);
	moff = mongo_begin(r, c->peer_msgno++, req_id);
	doff = bson_begin(r);
	sub = bson_subdoc(r, BSON_DOC, "cursor");
	arr = bson_subdoc(r, BSON_ARRAY, "firstBatch");
	if (!chance(g, 100)) { /* ~10% not found: empty batch */
		str_token(g, v, rndr(g, 1, 16));
		elem = bson_subdoc(r, BSON_DOC, "0");
		bson_int32(r, "_id", n);
		bson_string(r, "v", v);
		bson_end(r, elem);
	}
	bson_end(r, arr);
	bson_int64(r, "id", 0);
	bson_string(r, "ns", ns);
	bson_end(r, sub);
	bson_double(r, "ok", 1.0);
	bson_end(r, doff);
	mongo_end(r, moff);
}

/* ------------------------------------------------------------------------ */
/* Connections                                                               */
/* ------------------------------------------------------------------------ */

/* Pick a client port for host so that (host, port) is not used anywhere else
 * in the capture (no 4-tuple reuse); restart the map if it fills up. */
static uint16_t alloc_port(gen_t *g, uint8_t host)
{
	const size_t base = (size_t)(host - CLIENT_HOST_MIN) * N_EPHEMERAL;
	unsigned tries, s;

	for (;;) {
		for (tries = 0; tries < 256; tries++) {
			uint32_t p = rnd(g, N_EPHEMERAL);
			size_t bit = base + p;

			if (!(g->portmap[bit >> 3] & (1u << (bit & 7)))) {
				g->portmap[bit >> 3] |= (uint8_t)(1u << (bit & 7));
				return (uint16_t)(EPHEMERAL_MIN + p);
			}
		}
		/* Exhausted (only with huge -n): forget history, keep live connections. */
		memset(g->portmap, 0, (N_CLIENT_HOSTS * N_EPHEMERAL + 7) / 8);
		for (s = 0; s < g->nslots; s++) {
			const conn_t *o = &g->slots[s];

			if (o->active) {
				size_t bit = (size_t)(o->chost - CLIENT_HOST_MIN) * N_EPHEMERAL +
					     (size_t)(o->cport - EPHEMERAL_MIN);

				g->portmap[bit >> 3] |= (uint8_t)(1u << (bit & 7));
			}
		}
	}
}

/* Build the next exchange of c (setup step or transaction), due at base+delay.
 * Without one left, move to teardown (TCP) or completion (UDP). */
static void next_exchange(gen_t *g, conn_t *c, uint64_t base, uint64_t delay)
{
	const proto_info_t *pi = &protos[c->proto];

	c->cmsg.len = c->smsg.len = 0;
	c->coff = c->soff = 0;
	c->need_ack = !pi->udp;
	c->next_us = base + delay;

	if (c->setup_step < pi->setup_steps) {
		if (c->proto == P_MYSQL)
			build_mysql_setup(g, c, c->setup_step);
		else
			build_pgsql_setup(g, c);
		c->setup_step++;
	} else if (c->reqs_left > 0) {
		c->reqs_left--;
		g->txns[c->proto]++;
		switch (c->proto) {
		case P_HTTP:
			build_http(g, c);
			break;
		case P_DNS:
			build_dns(g, c);
			break;
		case P_MYSQL:
			build_mysql(g, c);
			break;
		case P_PGSQL:
			build_pgsql(g, c);
			break;
		case P_REDIS:
			build_redis(g, c);
			break;
		case P_MEMCACHE:
			build_memcache(g, c);
			break;
		case P_THRIFT:
			build_thrift(g, c);
			break;
		default:
			build_mongodb(g, c);
			break;
		}
	} else {
		c->state = pi->udp ? ST_DONE : ST_FIN_C;
		return;
	}
	c->state = c->cmsg.len ? ST_CDATA : ST_SDATA;
}

static void conn_start(gen_t *g, conn_t *c, int proto, uint64_t start)
{
	c->proto = proto;
	c->chost = (uint8_t)(CLIENT_HOST_MIN + rnd(g, N_CLIENT_HOSTS));
	c->cport = alloc_port(g, c->chost);
	c->cseq = (uint32_t)rng_next(g);
	c->sseq = (uint32_t)rng_next(g);
	c->cipid = (uint16_t)rnd(g, 0x10000);
	c->sipid = (uint16_t)rnd(g, 0x10000);
	c->setup_step = 0;
	c->reqs_left = g->reqs;
	c->msgno = rnd(g, 1u << 20) + 1;
	c->peer_msgno = rnd(g, 1u << 20) + 1;
	c->dns_id = (uint16_t)rnd(g, 0x10000);
	if (protos[proto].udp) {
		next_exchange(g, c, start, 0);
	} else {
		c->state = ST_SYN;
		c->next_us = start;
	}
}

/* Choose the protocol of the next connection, weighted by what is left. */
static int pick_proto(gen_t *g)
{
	uint64_t x = ((rng_next(g) >> 11) % g->conns_left_total);
	int p;

	for (p = 0; p < P_COUNT - 1; p++) {
		if (x < g->conns_left[p])
			break;
		x -= g->conns_left[p];
	}
	return p;
}

/* Put a fresh connection into slot c (or leave it inactive when none remain). */
static void slot_fill(gen_t *g, conn_t *c, uint64_t start)
{
	c->active = 0;
	while (g->conns_left_total > 0) {
		int p = pick_proto(g);

		g->conns_left[p]--;
		g->conns_left_total--;
		conn_start(g, c, p, start);
		if (c->state != ST_DONE) {
			c->active = 1;
			return;
		}
	}
}

/* Send the next TCP segment of the current message in one direction. */
static void send_segment(gen_t *g, conn_t *c, int from_client)
{
	buf_t *m = from_client ? &c->cmsg : &c->smsg;
	size_t *off = from_client ? &c->coff : &c->soff;
	size_t n = m->len - *off;
	int last;

	if (n > SEG_MAX)
		n = SEG_MAX;
	last = (*off + n == m->len);
	emit_tcp(g, c, from_client, TH_ACK | (last ? TH_PSH : 0u), m->p + *off, n);
	*off += n;
}

/* Emit exactly one packet of connection c at g->now and schedule the next. */
static void conn_step(gen_t *g, conn_t *c)
{
	const int udp = protos[c->proto].udp;
	const uint64_t now = g->now;

	switch (c->state) {
	case ST_SYN:
		emit_tcp(g, c, 1, TH_SYN, NULL, 0);
		c->state = ST_SYNACK;
		c->next_us = now + rndr(g, 30, 150);
		break;
	case ST_SYNACK:
		emit_tcp(g, c, 0, TH_SYN | TH_ACK, NULL, 0);
		c->state = ST_HSACK;
		c->next_us = now + rndr(g, 5, 40);
		break;
	case ST_HSACK:
		emit_tcp(g, c, 1, TH_ACK, NULL, 0);
		next_exchange(g, c, now, rndr(g, 10, 120));
		break;
	case ST_CDATA:
		if (udp) {
			emit_udp(g, c, 1, c->cmsg.p, c->cmsg.len);
			c->coff = c->cmsg.len;
		} else {
			send_segment(g, c, 1);
		}
		if (c->coff == c->cmsg.len) {
			c->state = ST_SDATA;
			c->next_us = now + server_latency(g);
		} else {
			c->next_us = now + rndr(g, 1, 6);
		}
		break;
	case ST_SDATA:
		if (udp) {
			emit_udp(g, c, 0, c->smsg.p, c->smsg.len);
			c->soff = c->smsg.len;
		} else {
			send_segment(g, c, 0);
		}
		if (c->soff < c->smsg.len) {
			c->next_us = now + rndr(g, 2, 12);
		} else if (c->need_ack) {
			c->state = ST_CACK;
			c->next_us = now + rndr(g, 15, 60);
		} else {
			next_exchange(g, c, now, udp ? think_time(g) : rndr(g, 20, 150));
		}
		break;
	case ST_CACK:
		emit_tcp(g, c, 1, TH_ACK, NULL, 0);
		next_exchange(g, c, now, think_time(g));
		break;
	case ST_FIN_C:
		emit_tcp(g, c, 1, TH_FIN | TH_ACK, NULL, 0);
		c->state = ST_FIN_S;
		c->next_us = now + rndr(g, 20, 120);
		break;
	case ST_FIN_S:
		emit_tcp(g, c, 0, TH_FIN | TH_ACK, NULL, 0);
		c->state = ST_LASTACK;
		c->next_us = now + rndr(g, 5, 40);
		break;
	case ST_LASTACK:
		emit_tcp(g, c, 1, TH_ACK, NULL, 0);
		c->state = ST_DONE;
		break;
	default:
		break;
	}
}

/* ------------------------------------------------------------------------ */
/* Driver                                                                    */
/* ------------------------------------------------------------------------ */

NORETURN static void usage(int rc)
{
	fprintf(rc ? stderr : stdout,
		"usage: pcapgen [-n CONNS_PER_PROTO] [-r REQS_PER_CONN] [-s SEED] [-c CONCURRENCY] "
		"-o out.pcap\n"
		"  -n  connections per protocol (DNS: client sockets)   default %u\n"
		"  -r  request/response transactions per connection     default %u\n"
		"  -s  PRNG seed                                        default %u\n"
		"  -c  concurrent connections (1..%u)                   default %u\n"
		"Prints '<proto> <transactions>' per protocol and 'packets <N>' to stdout.\n",
		DEFAULT_CONNS, DEFAULT_REQS, DEFAULT_SEED, MAX_CONCURRENCY, DEFAULT_CONCURRENCY);
	exit(rc);
}

/* Parse a decimal unsigned option value within [0, max]. */
static uint64_t parse_num(const char *opt, const char *s, uint64_t max)
{
	char *end;
	unsigned long long v;

	if (!s || !*s || *s == '-')
		goto bad;
	v = strtoull(s, &end, 10);
	if (*end || v > max)
		goto bad;
	return v;
bad:
	fprintf(stderr, "pcapgen: invalid value for %s: '%s'\n", opt, s ? s : "");
	exit(2);
}

int main(int argc, char **argv)
{
	static gen_t gen; /* large; keep off the stack */
	gen_t *g = &gen;
	uint64_t conns = DEFAULT_CONNS, seed = DEFAULT_SEED;
	uint32_t reqs = DEFAULT_REQS;
	unsigned conc = DEFAULT_CONCURRENCY, i;
	const char *outpath = NULL;
	int a, p;

	for (a = 1; a < argc; a++) {
		const char *arg = argv[a], *val;

		if (arg[0] != '-' || arg[1] == '\0')
			usage(2);
		if (arg[1] == 'h' && arg[2] == '\0')
			usage(0);
		if (!strchr("nrsco", arg[1]))
			usage(2);
		val = arg[2] ? arg + 2 : (a + 1 < argc ? argv[++a] : NULL);
		if (!val)
			usage(2);
		switch (arg[1]) {
		case 'n':
			conns = parse_num("-n", val, 100000000u);
			break;
		case 'r':
			reqs = (uint32_t)parse_num("-r", val, 10000000u);
			break;
		case 's':
			seed = parse_num("-s", val, UINT64_MAX);
			break;
		case 'c':
			conc = (unsigned)parse_num("-c", val, MAX_CONCURRENCY);
			break;
		default:
			outpath = val;
			break;
		}
	}
	if (!outpath || conc == 0)
		usage(2);

	g->out = fopen(outpath, "wb");
	if (!g->out) {
		perror(outpath);
		return 1;
	}
	setvbuf(g->out, NULL, _IOFBF, 1u << 20);
	g->portmap = calloc((N_CLIENT_HOSTS * N_EPHEMERAL + 7) / 8, 1);
	if (!g->portmap)
		die("out of memory");
	rng_seed(g, seed);
	g->reqs = reqs;
	g->nslots = conc;
	for (p = 0; p < P_COUNT; p++) {
		g->conns_left[p] = conns;
		g->conns_left_total += conns;
	}

	write_pcap_header(g->out);

	/* Fill the concurrency slots with staggered start times. */
	for (i = 0; i < g->nslots; i++)
		slot_fill(g, &g->slots[i], (uint64_t)i * rndr(g, 20, 200));

	/* Event loop: always advance the connection whose next packet is due
	 * first; timestamps strictly increase by at least 1-3 us per packet. */
	for (;;) {
		conn_t *best = NULL;
		uint64_t now;

		for (i = 0; i < g->nslots; i++) {
			conn_t *c = &g->slots[i];

			if (c->active && (!best || c->next_us < best->next_us))
				best = c;
		}
		if (!best)
			break;
		now = g->last_us + rndr(g, 1, 3);
		if (best->next_us > now)
			now = best->next_us;
		g->now = now;
		conn_step(g, best);
		if (best->state == ST_DONE)
			slot_fill(g, best, now + rndr(g, 5, 200));
	}

	if (fflush(g->out) != 0 || ferror(g->out) || fclose(g->out) != 0) {
		perror(outpath);
		return 1;
	}

	for (p = 0; p < P_COUNT; p++)
		printf("%s %llu\n", protos[p].name, (unsigned long long)g->txns[p]);
	printf("packets %llu\n", (unsigned long long)g->packets);

	for (i = 0; i < MAX_CONCURRENCY; i++) {
		free(g->slots[i].cmsg.p);
		free(g->slots[i].smsg.p);
	}
	free(g->portmap);
	return 0;
}
