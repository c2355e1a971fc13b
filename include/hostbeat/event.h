/* event.h — the typed event that producers fill and the shipper serialises.
 *
 * Producers never format JSON. A transaction event has a typed envelope (protocol,
 * client/server tuple, times, byte counts, status) from which shipper/encode.c
 * derives every ECS and legacy Packetbeat envelope field (source.*, destination.*,
 * client.*, server.*, network.*, event.*, related.ip, type, status, ...), plus a
 * list of protocol fields (`http.response.status_code`, `dns.answers[i].data`,
 * `method`, `query`, ...) whose values live in the event's arena.
 *
 * Keys are static strings with dotted paths; the encoder nests them. A key that is
 * added several times with EVF_ARRAY becomes a JSON array; object arrays use
 * `member` + `elem` (dns.answers[elem].member). Strings are copied into the arena
 * and may hold any bytes: the encoder makes them valid UTF-8 and caps them.
 *
 * Lifetime: events come from an ev_pool (bounded; no malloc per packet once warm)
 * and go back to it with ev_pool_put() after the output wrote them. A pending
 * request is simply an event that has not been published yet.
 */
#ifndef HOSTBEAT_EVENT_H
#define HOSTBEAT_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hostbeat/ip.h"

enum ev_kind {
	EV_KIND_TRANSACTION, /* packetbeat-* : a request/response pair (or half of one) */
	EV_KIND_METRIC,      /* topbeat-*    : one metricset sample (sys/) */
	EV_KIND_SELF,        /* the agent's own metrics (hostbeat-metrics) */
};

enum ev_status {
	EV_STATUS_NONE, /* not a transaction */
	EV_STATUS_OK,
	EV_STATUS_ERROR,
	EV_STATUS_SERVER_ERROR,
	EV_STATUS_CLIENT_ERROR,
};

enum ev_vtype {
	EV_T_STR,
	EV_T_INT,
	EV_T_UINT,
	EV_T_BOOL,
	EV_T_DOUBLE,
	EV_T_IP,
	EV_T_TIME, /* ns since epoch, written as RFC 3339 with µs */
};

#define EVF_ARRAY 0x01 /* an element of the JSON array at `key` */

struct ev_field {
	const char *key;    /* static dotted path, e.g. "dns.question.name" */
	const char *member; /* static member name inside an array of objects, else NULL */
	uint16_t elem;      /* element index for arrays of objects */
	uint8_t type;       /* enum ev_vtype */
	uint8_t flags;      /* EVF_* */
	union {
		struct {
			const char *p; /* in the event arena */
			uint32_t len;
		} s;
		int64_t i;
		uint64_t u;
		double d;
		bool b;
		struct hb_ip ip;
	} v;
};

struct ev_chunk; /* arena overflow chunk (core/event.c) */

#define EV_INLINE_FIELDS 96
#define EV_INLINE_ARENA 2048
#define EV_COMMUNITY_ID_LEN 31

struct event {
	enum ev_kind kind;
	const char *dataset; /* static: "http", "dns", ... (type, event.dataset, network.protocol);
				metrics: "system.cpu" ... */
	enum ev_status status;
	uint64_t ts;       /* @timestamp: first packet of the request (or of the lone response) */
	uint64_t start_ns; /* event.start, 0 = unknown (a response without request) */
	uint64_t end_ns;   /* event.end: first packet of the response, 0 = none */
	bool has_tuple;
	uint8_t transport; /* IPPROTO_TCP / IPPROTO_UDP / IPPROTO_ICMP ... */
	struct hb_ip client_ip, server_ip;
	uint16_t client_port, server_port;
	bool has_client_bytes, has_server_bytes;
	uint64_t client_bytes; /* application bytes client→server (source.bytes) */
	uint64_t server_bytes; /* application bytes server→client (destination.bytes) */
	const char
	    *iface; /* observer.ingress.interface.name; static for the agent's life, or NULL */

	/* protocol fields */
	uint16_t nfields;
	uint16_t fields_cap;
	struct ev_field *fields; /* points at inline_fields or a larger array */
	uint32_t dropped_fields; /* fields refused (caps); counted in metrics too */

	/* arena */
	char *arena; /* current chunk */
	uint32_t arena_used;
	uint32_t arena_size;
	uint32_t arena_total; /* bytes in all chunks */
	struct ev_chunk *chunks;

	struct ev_pool *pool;
	struct event *next; /* queue / free-list link */

	/* network.community_id, hashed once per connection by the flow layer and copied
	 * here by txn_init_event(); "" = the encoder computes it. 31 = "1:" + 28
	 * base64 + NUL (COMMUNITY_ID_LEN in net/community_id.h). Cleared by the pool. */
	char community_id[EV_COMMUNITY_ID_LEN];

	struct ev_field inline_fields[EV_INLINE_FIELDS];
	char inline_arena[EV_INLINE_ARENA];
};

/* "OK", "Error", "Server Error", "Client Error"; NULL for EV_STATUS_NONE. */
const char *ev_status_name(enum ev_status s);

/* ---- pool ---------------------------------------------------------------- */

struct ev_pool_stats;

/* An ev_pool hands out at most `max_events` live events (pending + queued). Each
 * event may grow its arena in chunks up to `max_event_bytes` and its field array up
 * to `max_fields`. Thread-safe. Returns NULL on allocation failure. */
struct ev_pool *ev_pool_new(size_t max_events, size_t max_event_bytes, size_t max_fields);
void ev_pool_free(struct ev_pool *p);
/* A reset event, or NULL when the pool is at its cap or memory is short (the caller
 * drops what it was building and counts it; the pool counts "events.pool_exhausted"). */
struct event *ev_pool_get(struct ev_pool *p, enum ev_kind kind, const char *dataset);
/* Return an event (NULL is a no-op). */
void ev_pool_put(struct event *ev);
/* ev_pool_put() of each of n events (NULLs skipped), one lock per run of one pool. */
void ev_pool_put_many(struct event **evs, size_t n);
size_t ev_pool_live(const struct ev_pool *p);

/* ---- fields --------------------------------------------------------------- */
/* Every setter returns 0, or -ENOSPC when a cap refused the field (counted). */

int ev_set_str(struct event *ev, const char *key, const void *s, size_t len);
int ev_set_strz(struct event *ev, const char *key, const char *s);
int ev_set_int(struct event *ev, const char *key, int64_t v);
int ev_set_uint(struct event *ev, const char *key, uint64_t v);
int ev_set_bool(struct event *ev, const char *key, bool v);
int ev_set_double(struct event *ev, const char *key, double v);
int ev_set_ip(struct event *ev, const char *key, const struct hb_ip *ip);
int ev_set_time(struct event *ev, const char *key, uint64_t ns);
/* Append one element to the array at key. */
int ev_append_str(struct event *ev, const char *key, const void *s, size_t len);
int ev_append_ip(struct event *ev, const char *key, const struct hb_ip *ip);
/* Member of element `elem` in an array of objects at key. */
int ev_obj_str(struct event *ev, const char *key, unsigned elem, const char *member, const void *s,
	       size_t len);
int ev_obj_uint(struct event *ev, const char *key, unsigned elem, const char *member, uint64_t v);
int ev_obj_int(struct event *ev, const char *key, unsigned elem, const char *member, int64_t v);
int ev_obj_bool(struct event *ev, const char *key, unsigned elem, const char *member, bool v);
/* printf into a string field (e.g. "class IN, type A, google.com"). */
int ev_set_fmt(struct event *ev, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The last field with this exact key (no member), or NULL. Linear; for tests and
 * for parsers that fill a field in two steps. */
const struct ev_field *ev_find(const struct event *ev, const char *key);
/* Remove every field with this key (e.g. a pending request field replaced later). */
void ev_remove(struct event *ev, const char *key);
/* ev_remove() of each of keys[0, n), in one pass over the fields. */
void ev_remove_keys(struct event *ev, const char *const *keys, size_t n);

/* Copy `len` bytes into the arena (s == NULL: reserve them uninitialised), NUL-terminated;
 * returns the copy or NULL when the cap refused it. */
char *ev_arena_copy(struct event *ev, const void *s, size_t len);

/* ---- sink: where producers hand finished events -------------------------- */

struct ev_sink {
	/* Takes ownership of ev. Must not fail: a sink that cannot take the event
	 * counts the drop and returns it to its pool. */
	void (*publish)(struct ev_sink *sink, struct event *ev);
	struct ev_pool *pool; /* where producers get events */
};

static inline void ev_publish(struct ev_sink *sink, struct event *ev)
{
	sink->publish(sink, ev);
}

#endif
