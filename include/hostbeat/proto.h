/* proto.h — the protocol parser contract.
 *
 * One protocol = one file net/proto/NAME.c exposing only `const struct proto_ops
 * NAME_proto`, listed in net/proto/registry.c. The stream layer (net/tcp_stream.c)
 * or the UDP path hands a parser borrowed bytes of one direction; the parser returns
 * how much it consumed and how much more it needs; the stream layer keeps the
 * unconsumed tail (capped). Parsers never keep a copy of the input — only small
 * resume state — and read packet bytes only through the cursor (cursor.h).
 *
 * Transactions: a per-connection FIFO of pending requests (capped); a response
 * completes the oldest one (pipelining). A pending request is an event from
 * ctx->sink->pool that has not been published yet. Unmatched requests (timeout, FIN,
 * expiry) and responses without a request are published with status Error and an
 * error.message, for every protocol.
 */
#ifndef HOSTBEAT_PROTO_H
#define HOSTBEAT_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hostbeat/config.h"
#include "hostbeat/event.h"
#include "hostbeat/ip.h"
#include "hostbeat/metrics.h"

enum proto_dir {
	DIR_TO_SERVER = 0, /* client → server: requests */
	DIR_TO_CLIENT = 1, /* server → client: responses */
};

enum proto_transport_mask {
	PROTO_TCP = 1,
	PROTO_UDP = 2,
};

/* Immutable facts about one connection (TCP) or UDP flow, owned by the flow layer. */
struct conn_info {
	struct hb_ip client_ip, server_ip;
	uint16_t client_port, server_port;
	uint8_t transport; /* IPPROTO_TCP or IPPROTO_UDP */
	const char *iface; /* capture device name, NULL when reading a file */
	const struct cfg_proto *cfg;
	char community_id[EV_COMMUNITY_ID_LEN]; /* hashed once per connection; "" = unknown */
};

/* Counters every protocol has; registered by the registry as "<name>.<counter>". */
struct proto_stats {
	struct metric *messages;     /* requests + responses parsed */
	struct metric *transactions; /* events published (all statuses) */
	struct metric *unmatched_requests;
	struct metric *unmatched_responses;
	struct metric *parse_errors;   /* connection became unparseable */
	struct metric *limit_exceeded; /* a hard limit (line, headers, pending) was hit */
	struct metric *gaps;           /* gap() calls */
	struct metric *gap_drops;      /* gaps the parser could not resync from */
	struct metric *pool_exhausted; /* no event available: transaction lost */
};

/* Passed to every call. Everything borrowed for the duration of the call. */
struct proto_ctx {
	const struct conn_info *conn;
	uint64_t ts; /* timestamp of the packet being parsed (ns since epoch) */
	struct ev_sink *sink;
	struct proto_stats *stats;
};

enum parse_status {
	PARSE_OK,        /* consumed `consumed` bytes; call again with the rest, if any */
	PARSE_NEED_MORE, /* consumed `consumed`; the rest is an incomplete message: call
			    again when at least `needed` more bytes arrived (0 = any) */
	PARSE_ERROR,     /* the connection is unparseable from here: the stream layer
			    counts it, frees this conn (after expire) and ignores the rest */
};

struct parse_result {
	enum parse_status status;
	size_t consumed;
	size_t needed;
};

struct proto_ops {
	const char *name;    /* "http": the event dataset, type and counter prefix */
	unsigned transports; /* PROTO_TCP | PROTO_UDP */
	const uint16_t *default_ports;
	size_t ndefault_ports;
	/* Protocol-specific config keys (relative to the protocol entry), filling a
	 * struct of config_size bytes at cfg_proto.priv. May be NULL/0. */
	const struct cfg_field *config;
	size_t nconfig;
	size_t config_size;

	/* Returns new per-connection state, caller frees with conn_free(); NULL when
	 * memory is short (the flow is then ignored and counted). */
	void *(*conn_new)(const struct conn_info *info);
	/* Borrowed bytes of one direction. For UDP, one call per datagram. */
	struct parse_result (*parse)(void *conn, enum proto_dir dir, const uint8_t *data,
				     size_t len, struct proto_ctx *ctx);
	/* `n` bytes are missing in `dir` (packet loss). Return 0 when the parser skipped
	 * them and continues, -1 to give up (the stream layer then calls expire() and
	 * conn_free(), and starts a fresh conn_new() that resyncs at a message boundary). */
	int (*gap)(void *conn, enum proto_dir dir, size_t n, struct proto_ctx *ctx);
	/* FIN or RST seen in `dir`. A message delimited by close is complete now. May be NULL. */
	void (*fin)(void *conn, enum proto_dir dir, struct proto_ctx *ctx);
	/* Publish what is pending as unmatched: the flow idled out, was evicted, or the
	 * capture ended. ctx->ts is "now". Requests older than the transaction timeout are
	 * also flushed by the parser itself when it next runs. */
	void (*expire)(void *conn, struct proto_ctx *ctx);
	/* Free the state; pending events must already be published or returned to the
	 * pool. NULL-safe. */
	void (*conn_free)(void *conn);
};

/* net/proto/registry.c */
extern const struct proto_ops *const proto_registry[];
extern const size_t proto_registry_len;
const struct proto_ops *proto_find(const char *name);
/* Counters for one protocol, registered on first use, stable pointer. */
struct proto_stats *proto_stats_get(const struct proto_ops *ops);

/* Helpers for parsers (net/txn.c). ------------------------------------------ */

/* Fill the typed envelope of a new transaction event from the connection. */
void txn_init_event(struct event *ev, const struct conn_info *conn, uint64_t start_ns);
/* Get an event from the sink's pool for a new request; counts pool_exhausted. */
struct event *txn_new_event(struct proto_ctx *ctx, const struct proto_ops *ops);
/* Add a note to error.message (several notes are joined with "; "). */
int txn_add_note(struct event *ev, const char *note);
/* Publish ev as an unmatched half: status Error and error.message = reason. */
void txn_publish_unmatched(struct proto_ctx *ctx, struct event *ev, const char *reason,
			   bool is_request);
/* Publish a completed transaction and count it. */
void txn_publish(struct proto_ctx *ctx, struct event *ev);

/* A capped FIFO of pending request events (pipelining). */
struct txn_fifo {
	struct event *head, *tail;
	size_t len;
	size_t cap;
};

void txn_fifo_init(struct txn_fifo *f, size_t cap);
/* Append; returns -ENOSPC when full (caller publishes the oldest as unmatched first
 * or drops the new one, and counts limit_exceeded). */
int txn_fifo_push(struct txn_fifo *f, struct event *ev);
struct event *txn_fifo_pop(struct txn_fifo *f);
struct event *txn_fifo_peek(const struct txn_fifo *f);
/* Remove and return the first event for which match(ev, arg) is true, or NULL. */
struct event *txn_fifo_take(struct txn_fifo *f, bool (*match)(const struct event *, const void *),
			    const void *arg);
/* Return every pending request to its pool unpublished (conn_free after expire). */
void txn_fifo_release(struct txn_fifo *f);
/* Publish every pending request as unmatched with `reason`. */
void txn_fifo_flush(struct txn_fifo *f, struct proto_ctx *ctx, const char *reason);
/* Publish as unmatched the pending requests whose start is older than `timeout` ns
 * before ctx->ts. */
void txn_fifo_expire(struct txn_fifo *f, struct proto_ctx *ctx, uint64_t timeout,
		     const char *reason);

#endif
