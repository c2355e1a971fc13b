/* tcp_stream.h — per-connection TCP reassembly feeding one protocol parser.
 *
 * Spec: RFC 9293 (sequence space, SYN/FIN each take one sequence number), RFC 1982
 * (serial number arithmetic: a < b iff (int32_t)(a - b) < 0, so wrap-around at
 * 0xffffffff is invisible).
 *
 * Only net/flow.c uses this. A struct tcp_stream lives inside a flow entry and owns
 * the parser state (`conn`) plus, per direction:
 *
 *   next_seq ─┐                         held out-of-order segments (≤ reorder_segments)
 *             ▼                         ┌───────┐     ┌───────┐
 *   ...delivered│  hole (missing)       │ seg A │ ... │ seg B │
 *                                       └───────┘     └───────┘
 *   in-order bytes → parse(); the unconsumed tail of an incomplete message is kept in
 *   `buf` (≤ tcp_max_buffer) and parsing resumes from it when `want` bytes are there.
 *
 * A hole is given up on (declared as a gap to the parser) when the reorder window is
 * full, the peer acknowledges data beyond it, a FIN arrives, or the flow ends. The
 * gap size passed to ops->gap() includes the unconsumed tail, which is dropped: from
 * the parser's point of view every byte after what it consumed is missing.
 *
 * Buffers are allocated per connection on first need, reused, and accounted (by
 * capacity) against tcp_max_buffer_total per flow table ("tcp.buffer_bytes").
 */
#ifndef HOSTBEAT_NET_TCP_STREAM_H
#define HOSTBEAT_NET_TCP_STREAM_H

#include <stdbool.h>
#include <stdint.h>

#include "hostbeat/config.h"
#include "hostbeat/metrics.h"
#include "hostbeat/proto.h"
#include "net/packet.h"

/* Shared by every stream of one flow table (one capture thread). */
struct tcp_stream_env {
	uint32_t max_buffer;       /* per direction, bytes (tail and reorder data each) */
	uint32_t reorder_segments; /* held out-of-order segments per direction */
	uint64_t max_total;        /* all buffers of this table together */
	uint64_t buffered;         /* bytes of buffer capacity currently allocated */
	struct metric *retransmits, *overlaps, *out_of_order, *gaps, *dropped_gaps;
	struct metric *overflow, *total_exceeded, *buffer_bytes, *conn_new_failed;
};

/* One held out-of-order segment; its captured bytes are at ooo + off. */
struct tcp_seg {
	uint32_t seq;
	uint32_t len;      /* captured bytes */
	uint32_t wire_len; /* bytes on the wire (> len when snapped) */
	uint32_t off;
};

struct tcp_dir {
	uint32_t next_seq; /* next byte expected in order (valid when init) */
	bool init;
	bool syn; /* a SYN was seen; isn is its sequence number */
	uint32_t isn;
	bool fin;     /* FIN (or end) seen and ops->fin called: ignore further data */
	uint8_t *buf; /* unconsumed tail, owned */
	uint32_t len, cap;
	uint32_t want;        /* parse again once len >= want */
	struct tcp_seg *segs; /* sorted by seq, owned, reorder_segments entries */
	uint32_t nsegs;
	uint8_t *ooo; /* bytes of the held segments, owned */
	uint32_t ooo_len, ooo_cap;
};

struct tcp_stream {
	const struct proto_ops *ops;
	void *conn;            /* parser state, owned; NULL once dead */
	bool dead;             /* unparseable: packets are only tracked for FIN/RST */
	struct tcp_dir dir[2]; /* indexed by enum proto_dir */
};

enum tcp_stream_state {
	TCP_STREAM_OPEN,
	TCP_STREAM_CLOSED, /* FIN both ways or RST: ops->fin already called, release it */
};

/* Reads the limits from cfg (borrowed, only during the call) and registers counters. */
void tcp_stream_env_init(struct tcp_stream_env *env, const struct hb_config *cfg);

/* Takes ownership of conn (from ops->conn_new; NULL makes the stream dead). */
void tcp_stream_init(struct tcp_stream *s, const struct proto_ops *ops, void *conn);

/* One TCP segment of direction `dir`. pkt and ctx are borrowed for the call;
 * ctx->conn must stay valid for the stream's life (conn_new on parser reset). */
enum tcp_stream_state tcp_stream_segment(struct tcp_stream_env *env, struct tcp_stream *s,
					 enum proto_dir dir, const struct packet *pkt,
					 struct proto_ctx *ctx);

/* Give up on every hole: deliver the held segments, declaring gaps. */
void tcp_stream_flush(struct tcp_stream_env *env, struct tcp_stream *s, struct proto_ctx *ctx);

/* End of direction `dir` without a FIN (capture ended): flush it, then ops->fin.
 * No-op when that direction already finished. */
void tcp_stream_fin(struct tcp_stream_env *env, struct tcp_stream *s, enum proto_dir dir,
		    struct proto_ctx *ctx);

/* ops->expire + ops->conn_free (when the parser is alive) and free every buffer.
 * The stream is dead afterwards; calling it twice is harmless. */
void tcp_stream_release(struct tcp_stream_env *env, struct tcp_stream *s, struct proto_ctx *ctx);

#endif
