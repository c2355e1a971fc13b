/* flow.c — the bounded connection table: lookup, protocol choice, expiry, eviction.
 *
 * Spec: Packetbeat's protos/tcp + protos/udp behaviour (docs/reference/packetbeat.md
 * §2.6): protocol chosen by port, stream idle timeout = the protocol's
 * transaction_timeout, unknown ports not followed.
 *
 * Layout (all allocated at flow_table_new, no allocation per packet or flow here;
 * the parser's conn_new() allocates per connection):
 *
 *   buckets[hash & mask] ──► flows[i] ──hnext──► flows[j] ──► FLOW_NIL
 *   slots[p].head (oldest) ◄──prev/next──► ... slots[p].tail (newest)   one LRU per protocol
 *   free_list ──next──► recycled flows[]; flows[fresh..cap) never used yet
 *
 * Every protocol has a single idle timeout, so each per-protocol list ordered by
 * last_seen is also ordered by deadline: expiry pops from the heads while due, O(1)
 * per expired flow. last_seen is the table's monotonic packet clock, which keeps the
 * lists sorted even when capture timestamps step back. Eviction and flush_all take
 * the oldest head across the (few) protocols, so the order is deterministic.
 */
#include "net/flow.h"

#include <netinet/in.h>
#include <string.h>

#include "hostbeat/mem.h"
#include "hostbeat/metrics.h"
#include "hostbeat/proto.h"
#include "net/community_id.h"
#include "net/tcp_stream.h"

#define FLOW_NIL UINT32_MAX
#define NPORTS 65536

/* Direction-independent key: endpoint a is the lower (ip, port). Zeroed before use
 * so memcmp/hash over the whole struct is exact (no padding: 2*16 + 2*2 + 4). */
struct flow_key {
	uint8_t ip_a[16], ip_b[16];
	uint16_t port_a, port_b;
	uint8_t transport, ver;
	uint8_t pad[2];
};
_Static_assert(sizeof(struct flow_key) == 40, "key_hash() reads the key as five words");

struct proto_slot;

struct flow {
	struct flow_key key;
	uint32_t hnext;           /* next index in the bucket chain */
	struct flow *prev, *next; /* protocol LRU list; next also links the free list */
	struct proto_slot *slot;
	uint64_t last_seen;
	bool closed; /* TCP ended (FIN both ways / RST): parser released, the entry
		      * stays until idle so late duplicates of the connection's
		      * segments are recognised as retransmissions (Packetbeat keeps
		      * the stream until its idle timeout too) */
	struct conn_info info;
	struct tcp_stream st; /* parser state (ops, conn) for UDP too */
};

struct proto_slot {
	const struct cfg_proto *cfg;
	struct proto_stats *stats;
	uint64_t timeout;         /* ns idle; 0 = never */
	struct flow *head, *tail; /* oldest first */
};

struct flow_table {
	const struct hb_config *cfg;
	struct ev_sink *sink;
	struct flow *flows;
	uint32_t cap;
	uint32_t *buckets;
	uint32_t mask;
	struct flow *free_list;
	uint32_t fresh; /* flows[fresh..cap) were never used */
	size_t count;
	size_t nclosed;     /* of count: closed TCP flows kept until idle */
	uint64_t now;       /* latest packet time seen (never moves back) */
	uint64_t untracked; /* packets without a protocol since the last tick */
	struct proto_slot slots[CFG_MAX_PROTOS];
	size_t nslots;
	uint8_t *tcp_ports, *udp_ports; /* NPORTS each: slot index + 1, 0 = none */
	struct tcp_stream_env env;
	struct metric *created, *active, *expired, *evicted, *closed, *conn_new_failed,
	    *untracked_packets;
};

static void gauge_sub(struct metric *m, uint64_t n)
{
	metric_add(m, (uint64_t)0 - n);
}

/* ---- table ------------------------------------------------------------------ */

struct flow_table *flow_table_new(const struct hb_config *cfg, struct ev_sink *sink)
{
	struct flow_table *t;
	uint64_t cap = cfg->max_flows ? cfg->max_flows : 1;
	uint32_t nb = 1;

	if (cap > (1u << 26)) /* the config's own maximum */
		cap = 1u << 26;
	while (nb < cap)
		nb <<= 1;
	t = hb_calloc(1, sizeof(*t));
	if (!t)
		goto err;
	t->cfg = cfg;
	t->sink = sink;
	t->cap = (uint32_t)cap;
	t->mask = nb - 1;
	t->flows = hb_calloc(cap, sizeof(*t->flows));
	t->buckets = hb_malloc((size_t)nb * sizeof(*t->buckets));
	t->tcp_ports = hb_calloc(NPORTS, 1);
	t->udp_ports = hb_calloc(NPORTS, 1);
	if (!t->flows || !t->buckets || !t->tcp_ports || !t->udp_ports)
		goto err_table;
	for (uint32_t i = 0; i < nb; i++)
		t->buckets[i] = FLOW_NIL;
	/* flows[] is handed out from `fresh` upwards and recycled through free_list, so
	 * entries never used cost no resident memory (calloc'd pages stay untouched). */
	t->fresh = 0;

	for (size_t i = 0; i < cfg->nprotos && i < CFG_MAX_PROTOS; i++) {
		const struct cfg_proto *p = &cfg->protos[i];
		struct proto_slot *sl;
		uint8_t idx;

		if (!p->enabled || !p->ops)
			continue;
		sl = &t->slots[t->nslots];
		idx = (uint8_t)(++t->nslots);
		sl->cfg = p;
		sl->stats = proto_stats_get(p->ops);
		sl->timeout = p->transaction_timeout ? p->transaction_timeout : cfg->flow_timeout;
		/* First enabled protocol wins a port (Packetbeat: one protocol per port). */
		for (size_t k = 0; k < p->ports.n; k++) {
			uint16_t port = p->ports.v[k];

			if ((p->ops->transports & PROTO_TCP) && !t->tcp_ports[port])
				t->tcp_ports[port] = idx;
			if ((p->ops->transports & PROTO_UDP) && !t->udp_ports[port])
				t->udp_ports[port] = idx;
		}
	}

	tcp_stream_env_init(&t->env, cfg);
	t->created = metrics_counter("flows.created");
	t->active = metrics_gauge("flows.active");
	t->expired = metrics_counter("flows.expired");
	t->evicted = metrics_counter("flows.evicted");
	t->closed = metrics_counter("flows.closed");
	t->conn_new_failed = metrics_counter("flows.conn_new_failed");
	t->untracked_packets = metrics_counter("flows.untracked_packets");
	return t;

err_table:
	hb_free(t->udp_ports);
	hb_free(t->tcp_ports);
	hb_free(t->buckets);
	hb_free(t->flows);
	hb_free(t);
err:
	return NULL;
}

void flow_table_free(struct flow_table *t)
{
	if (!t)
		return;
	flow_flush_all(t, t->now);
	hb_free(t->udp_ports);
	hb_free(t->tcp_ports);
	hb_free(t->buckets);
	hb_free(t->flows);
	hb_free(t);
}

size_t flow_count(const struct flow_table *t)
{
	return t->count - t->nclosed;
}

/* ---- keys ------------------------------------------------------------------------ */

static void key_make(struct flow_key *k, const struct packet *pkt)
{
	size_t n = hb_ip_len(&pkt->src);
	int c = memcmp(pkt->src.a, pkt->dst.a, n);
	bool src_first = c < 0 || (c == 0 && pkt->sport <= pkt->dport);
	const struct hb_ip *a = src_first ? &pkt->src : &pkt->dst;
	const struct hb_ip *b = src_first ? &pkt->dst : &pkt->src;

	memset(k, 0, sizeof(*k));
	memcpy(k->ip_a, a->a, n);
	memcpy(k->ip_b, b->a, n);
	k->port_a = src_first ? pkt->sport : pkt->dport;
	k->port_b = src_first ? pkt->dport : pkt->sport;
	k->transport = pkt->ip_proto;
	k->ver = pkt->src.ver;
}

/* Five 64-bit words, each folded in with a multiply-xorshift step, then a final mix
 * so the low bits (the bucket) depend on every byte. key_make() zeroes the padding. */
static uint32_t key_hash(const struct flow_key *k)
{
	uint64_t w[sizeof(*k) / 8], h = 0x9e3779b97f4a7c15ULL;

	memcpy(w, k, sizeof(w));
	for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++) {
		h = (h ^ w[i]) * 0xff51afd7ed558ccdULL;
		h ^= h >> 32;
	}
	h ^= h >> 29;
	h *= 0xbf58476d1ce4e5b9ULL;
	h ^= h >> 32;
	return (uint32_t)h;
}

static struct flow *lookup(struct flow_table *t, const struct flow_key *k, uint32_t h)
{
	for (uint32_t i = t->buckets[h & t->mask]; i != FLOW_NIL; i = t->flows[i].hnext)
		if (memcmp(&t->flows[i].key, k, sizeof(*k)) == 0)
			return &t->flows[i];
	return NULL;
}

/* ---- lists -------------------------------------------------------------------------- */

static void lru_unlink(struct flow *f)
{
	struct proto_slot *sl = f->slot;

	if (f->prev)
		f->prev->next = f->next;
	else
		sl->head = f->next;
	if (f->next)
		f->next->prev = f->prev;
	else
		sl->tail = f->prev;
	f->prev = f->next = NULL;
}

static void lru_append(struct flow *f)
{
	struct proto_slot *sl = f->slot;

	f->prev = sl->tail;
	f->next = NULL;
	if (sl->tail)
		sl->tail->next = f;
	else
		sl->head = f;
	sl->tail = f;
}

/* The least recently seen flow of the table (ties: the first protocol). */
static struct flow *oldest(struct flow_table *t)
{
	struct flow *best = NULL;

	for (size_t i = 0; i < t->nslots; i++) {
		struct flow *h = t->slots[i].head;

		if (h && (!best || h->last_seen < best->last_seen))
			best = h;
	}
	return best;
}

static struct proto_ctx ctx_for(struct flow_table *t, struct flow *f, uint64_t ts)
{
	return (struct proto_ctx){
	    .conn = &f->info,
	    .ts = ts,
	    .sink = t->sink,
	    .stats = f->slot->stats,
	};
}

/* Unlink f from its bucket and list and put it on the free list. */
static void flow_remove(struct flow_table *t, struct flow *f)
{
	uint32_t idx = (uint32_t)(f - t->flows);
	uint32_t *pp = &t->buckets[key_hash(&f->key) & t->mask];

	while (*pp != idx)
		pp = &t->flows[*pp].hnext;
	*pp = f->hnext;
	lru_unlink(f);
	f->slot = NULL;
	f->next = t->free_list;
	t->free_list = f;
	t->count--;
	if (f->closed)
		t->nclosed--;
	else
		gauge_sub(t->active, 1);
}

/* Deliver what can be delivered, optionally end the response side (close-delimited
 * messages complete), then expire + free the parser and the entry. */
static void flow_end(struct flow_table *t, struct flow *f, uint64_t now, bool fin_response)
{
	struct proto_ctx ctx = ctx_for(t, f, now);

	if (f->info.transport == IPPROTO_TCP) {
		tcp_stream_flush(&t->env, &f->st, &ctx);
		if (fin_response)
			tcp_stream_fin(&t->env, &f->st, DIR_TO_CLIENT, &ctx);
	}
	tcp_stream_release(&t->env, &f->st, &ctx);
	flow_remove(t, f);
}

/* ---- creation ---------------------------------------------------------------------- */

/* Which protocol, and is the packet's sender the client? 0 = not tracked. */
static unsigned choose(const struct flow_table *t, const struct packet *pkt, bool *src_is_client)
{
	const uint8_t *map = pkt->ip_proto == IPPROTO_TCP ? t->tcp_ports : t->udp_ports;
	unsigned s = map[pkt->sport], d = map[pkt->dport];

	if (pkt->ip_proto == IPPROTO_TCP && (pkt->tcp_flags & TCPF_SYN)) {
		/* SYN: sender is the client; SYN-ACK: sender is the server. */
		*src_is_client = !(pkt->tcp_flags & TCPF_ACK);
		return *src_is_client ? d : s;
	}
	if (s && d) {
		/* Both ports are protocol ports: the lower one is the server. */
		*src_is_client = pkt->dport <= pkt->sport;
		return *src_is_client ? d : s;
	}
	*src_is_client = d != 0;
	return d ? d : s;
}

static struct flow *flow_create(struct flow_table *t, const struct packet *pkt,
				const struct flow_key *k, uint32_t h)
{
	bool src_is_client;
	unsigned idx = choose(t, pkt, &src_is_client);
	struct proto_slot *sl;
	struct flow *f;
	void *conn;

	if (!idx) {
		t->untracked++;
		return NULL;
	}
	/* A TCP flow starts at a SYN or at data: a stray ACK/FIN/RST (the tail of a
	 * connection we already closed) must not open a new one. */
	if (pkt->ip_proto == IPPROTO_TCP &&
	    ((pkt->tcp_flags & TCPF_RST) ||
	     (!(pkt->tcp_flags & TCPF_SYN) && pkt->payload_wire_len == 0)))
		return NULL;
	if (!t->free_list && t->fresh == t->cap) {
		struct flow *victim = oldest(t);

		metric_inc(t->evicted);
		flow_end(t, victim, t->now, false);
	}
	sl = &t->slots[idx - 1];
	f = t->free_list ? t->free_list : &t->flows[t->fresh];
	memset(&f->info, 0, sizeof(f->info));
	f->info.client_ip = src_is_client ? pkt->src : pkt->dst;
	f->info.server_ip = src_is_client ? pkt->dst : pkt->src;
	f->info.client_port = src_is_client ? pkt->sport : pkt->dport;
	f->info.server_port = src_is_client ? pkt->dport : pkt->sport;
	f->info.transport = pkt->ip_proto;
	f->info.iface = pkt->iface;
	f->info.cfg = sl->cfg;
	/* network.community_id is a property of the connection: hash it once here
	 * rather than once per transaction event (txn_init_event copies it). */
	if (community_id_v1(&f->info.client_ip, &f->info.server_ip, f->info.client_port,
			    f->info.server_port, f->info.transport, 0, f->info.community_id) != 0)
		f->info.community_id[0] = '\0';
	conn = sl->cfg->ops->conn_new(&f->info);
	if (!conn) {
		metric_inc(t->conn_new_failed);
		return NULL;
	}
	if (f == t->free_list)
		t->free_list = f->next;
	else
		t->fresh++;
	f->key = *k;
	f->slot = sl;
	f->last_seen = t->now;
	f->closed = false;
	tcp_stream_init(&f->st, sl->cfg->ops, conn);
	f->hnext = t->buckets[h & t->mask];
	t->buckets[h & t->mask] = (uint32_t)(f - t->flows);
	lru_append(f);
	t->count++;
	metric_inc(t->created);
	metric_inc(t->active);
	return f;
}

/* ---- packets ------------------------------------------------------------------------- */

static void udp_datagram(struct flow_table *t, struct flow *f, enum proto_dir dir,
			 const struct packet *pkt)
{
	struct proto_ctx ctx = ctx_for(t, f, pkt->ts);
	struct parse_result r;

	if (!f->st.conn || pkt->payload_len == 0)
		return;
	r = f->st.ops->parse(f->st.conn, dir, pkt->payload, pkt->payload_len, &ctx);
	/* Datagrams are independent: an error costs this one, not the flow. */
	if (r.status == PARSE_ERROR)
		metric_inc(f->slot->stats->parse_errors);
}

void flow_process(struct flow_table *t, const struct packet *pkt)
{
	struct flow_key k;
	struct flow *f;
	enum proto_dir dir;
	uint32_t h;

	if (pkt->ip_proto != IPPROTO_TCP && pkt->ip_proto != IPPROTO_UDP)
		return;
	if (pkt->ts > t->now)
		t->now = pkt->ts;
	key_make(&k, pkt);
	h = key_hash(&k);
	f = lookup(t, &k, h);
	if (f && pkt->ip_proto == IPPROTO_TCP && (pkt->tcp_flags & TCPF_SYN)) {
		/* A SYN (or, on a closed flow, a SYN-ACK) that is not a retransmission of
		 * the connection's own: the ports were reused for a new connection. */
		bool from_client =
		    hb_ip_eq(&pkt->src, &f->info.client_ip) && pkt->sport == f->info.client_port;
		const struct tcp_dir *d = &f->st.dir[from_client ? DIR_TO_SERVER : DIR_TO_CLIENT];
		bool syn_only = !(pkt->tcp_flags & TCPF_ACK);

		if ((syn_only || f->closed) &&
		    (syn_only != from_client || !d->syn || d->isn != pkt->seq)) {
			if (!f->closed)
				metric_inc(t->closed);
			flow_end(t, f, t->now, true);
			f = NULL;
		}
	}
	if (!f) {
		f = flow_create(t, pkt, &k, h);
		if (!f)
			return;
	}
	dir = hb_ip_eq(&pkt->src, &f->info.client_ip) && pkt->sport == f->info.client_port
		  ? DIR_TO_SERVER
		  : DIR_TO_CLIENT;
	f->last_seen = t->now;
	lru_unlink(f);
	lru_append(f);

	if (f->info.transport == IPPROTO_UDP) {
		udp_datagram(t, f, dir, pkt);
		return;
	}
	struct proto_ctx ctx = ctx_for(t, f, pkt->ts);

	if (f->closed)
		return; /* a late duplicate of a finished connection: nothing to parse */
	if (tcp_stream_segment(&t->env, &f->st, dir, pkt, &ctx) == TCP_STREAM_CLOSED) {
		tcp_stream_release(&t->env, &f->st, &ctx);
		f->closed = true;
		t->nclosed++;
		gauge_sub(t->active, 1);
		metric_inc(t->closed);
	}
}

void flow_tick(struct flow_table *t, uint64_t now)
{
	if (t->untracked) {
		metric_add(t->untracked_packets, t->untracked);
		t->untracked = 0;
	}
	for (size_t i = 0; i < t->nslots; i++) {
		struct proto_slot *sl = &t->slots[i];
		struct flow *f;

		if (!sl->timeout)
			continue;
		/* Idle for longer than the timeout: strictly more. */
		while ((f = sl->head) && now > f->last_seen && now - f->last_seen > sl->timeout) {
			if (!f->closed)
				metric_inc(t->expired);
			flow_end(t, f, now, false);
		}
	}
}

void flow_flush_all(struct flow_table *t, uint64_t now)
{
	struct flow *f;

	if (t->untracked) {
		metric_add(t->untracked_packets, t->untracked);
		t->untracked = 0;
	}
	while ((f = oldest(t))) {
		if (!f->closed)
			metric_inc(t->expired);
		flow_end(t, f, now, true);
	}
}
