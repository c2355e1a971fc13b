/* tcp_stream.c — TCP reassembly per direction: in-order delivery, retransmission and
 * overlap trimming, a small reorder window, explicit gaps, bounded parser tails.
 *
 * Spec: RFC 9293 §3.4 (sequence numbers; SYN and FIN each occupy one), RFC 1982
 * (serial arithmetic). Design after Suricata's stream layer: the parser reports what
 * it consumed and what it needs; this file alone buffers.
 *
 * A segment [seq, seq + wire_len) relative to next_seq:
 *
 *   end <= next_seq            entirely old          → "tcp.retransmits", dropped
 *   seq <  next_seq < end      overlaps              → "tcp.overlaps", front trimmed
 *   seq == next_seq            in order              → delivered, held segments drained
 *   seq >  next_seq            out of order          → held (window), or gap declared
 *
 * Invariants: held segments are sorted by seq relative to next_seq and all start after
 * it; buf holds only bytes the parser has seen but not consumed; env->buffered equals
 * the sum of buf/ooo capacities of every live stream of the table.
 */
#include "net/tcp_stream.h"

#include <errno.h>
#include <string.h>

#include "hostbeat/mem.h"

#define SEQ_LT(a, b) ((int32_t)((uint32_t)(a) - (uint32_t)(b)) < 0)
#define SEQ_LEQ(a, b) ((int32_t)((uint32_t)(a) - (uint32_t)(b)) <= 0)
#define SEQ_GT(a, b) SEQ_LT(b, a)
#define SEQ_GEQ(a, b) SEQ_LEQ(b, a)

#define BUF_MIN 2048u
/* Lengths are kept in uint32_t; a bigger configured limit is clamped. */
#define BUF_LIMIT (1u << 30)

static void stat_inc(struct metric *m)
{
	metric_inc(m);
}

static void gauge_sub(struct metric *m, uint64_t n)
{
	metric_add(m, (uint64_t)0 - n);
}

void tcp_stream_env_init(struct tcp_stream_env *env, const struct hb_config *cfg)
{
	memset(env, 0, sizeof(*env));
	env->max_buffer =
	    cfg->tcp_max_buffer > BUF_LIMIT ? BUF_LIMIT : (uint32_t)cfg->tcp_max_buffer;
	env->reorder_segments =
	    cfg->tcp_reorder_segments > 4096 ? 4096 : (uint32_t)cfg->tcp_reorder_segments;
	env->max_total = cfg->tcp_max_buffer_total;
	env->retransmits = metrics_counter("tcp.retransmits");
	env->overlaps = metrics_counter("tcp.overlaps");
	env->out_of_order = metrics_counter("tcp.out_of_order");
	env->gaps = metrics_counter("tcp.gaps");
	env->dropped_gaps = metrics_counter("tcp.dropped_because_of_gaps");
	env->overflow = metrics_counter("tcp.buffer_overflow");
	env->total_exceeded = metrics_counter("tcp.buffer_total_exceeded");
	env->buffer_bytes = metrics_gauge("tcp.buffer_bytes");
	env->conn_new_failed = metrics_counter("flows.conn_new_failed");
}

void tcp_stream_init(struct tcp_stream *s, const struct proto_ops *ops, void *conn)
{
	memset(s, 0, sizeof(*s));
	s->ops = ops;
	s->conn = conn;
	s->dead = conn == NULL;
}

/* ---- buffers ------------------------------------------------------------- */

/* Make *cap >= need. 0, -E2BIG (over the per-direction limit), -ENOBUFS (over the
 * table total) or -ENOMEM. */
static int buf_reserve(struct tcp_stream_env *env, uint8_t **buf, uint32_t *cap, uint64_t need)
{
	uint64_t ncap;
	uint8_t *p;

	if (need <= *cap)
		return 0;
	if (need > env->max_buffer)
		return -E2BIG;
	ncap = *cap ? (uint64_t)*cap * 2 : BUF_MIN;
	while (ncap < need)
		ncap *= 2;
	if (ncap > env->max_buffer)
		ncap = env->max_buffer;
	if (env->buffered + (ncap - *cap) > env->max_total) {
		ncap = need; /* try the exact size before giving up */
		if (env->buffered + (ncap - *cap) > env->max_total)
			return -ENOBUFS;
	}
	p = hb_realloc(*buf, ncap);
	if (!p)
		return -ENOMEM;
	env->buffered += ncap - *cap;
	metric_add(env->buffer_bytes, ncap - *cap);
	*buf = p;
	*cap = (uint32_t)ncap;
	return 0;
}

static void buf_release(struct tcp_stream_env *env, uint8_t **buf, uint32_t *cap)
{
	hb_free(*buf);
	env->buffered -= *cap;
	gauge_sub(env->buffer_bytes, *cap);
	*buf = NULL;
	*cap = 0;
}

static void tail_free(struct tcp_stream_env *env, struct tcp_dir *d)
{
	buf_release(env, &d->buf, &d->cap);
	d->len = 0;
	d->want = 0;
}

static void dir_free(struct tcp_stream_env *env, struct tcp_dir *d)
{
	tail_free(env, d);
	buf_release(env, &d->ooo, &d->ooo_cap);
	hb_free(d->segs);
	d->segs = NULL;
	d->nsegs = 0;
	d->ooo_len = 0;
}

/* ---- parser state changes -------------------------------------------------- */

static void parser_drop(struct tcp_stream *s, struct proto_ctx *ctx)
{
	if (!s->conn)
		return;
	if (s->ops->expire)
		s->ops->expire(s->conn, ctx);
	s->ops->conn_free(s->conn);
	s->conn = NULL;
}

/* The parser cannot continue (gap refused, limit hit): publish what it has, start a
 * fresh one that resyncs at a message boundary. Both tails belong to the old
 * parser's position and are dropped; held segments stay (they are stream data). */
static void stream_reset(struct tcp_stream_env *env, struct tcp_stream *s, struct proto_ctx *ctx)
{
	tail_free(env, &s->dir[0]);
	tail_free(env, &s->dir[1]);
	parser_drop(s, ctx);
	if (s->dead)
		return;
	s->conn = s->ops->conn_new(ctx->conn);
	if (!s->conn) {
		s->dead = true;
		stat_inc(env->conn_new_failed);
	}
}

/* PARSE_ERROR: the connection is unparseable for the rest of its life. */
static void stream_kill(struct tcp_stream_env *env, struct tcp_stream *s, struct proto_ctx *ctx)
{
	stat_inc(ctx->stats->parse_errors);
	parser_drop(s, ctx);
	s->dead = true;
	dir_free(env, &s->dir[0]);
	dir_free(env, &s->dir[1]);
}

static void stream_limit(struct tcp_stream_env *env, struct tcp_stream *s, int err,
			 struct proto_ctx *ctx)
{
	if (err == -E2BIG) {
		stat_inc(env->overflow);
		stat_inc(ctx->stats->limit_exceeded);
	} else {
		stat_inc(env->total_exceeded);
	}
	stream_reset(env, s, ctx);
}

/* n bytes of `dir` will never be seen. */
static void stream_gap(struct tcp_stream_env *env, struct tcp_stream *s, enum proto_dir dir,
		       uint64_t n, struct proto_ctx *ctx)
{
	struct tcp_dir *d = &s->dir[dir];
	int rc;

	if (n == 0 || s->dead || !s->conn)
		return;
	n += d->len;
	d->len = 0;
	d->want = 0;
	stat_inc(env->gaps);
	stat_inc(ctx->stats->gaps);
	rc = s->ops->gap ? s->ops->gap(s->conn, dir, (size_t)n, ctx) : -1;
	if (rc < 0) {
		stat_inc(ctx->stats->gap_drops);
		stat_inc(env->dropped_gaps);
		stream_reset(env, s, ctx);
	}
}

/* ---- feeding the parser ------------------------------------------------------ */

/* Parse p[0..len) as far as the parser goes. Sets *off to the bytes consumed and
 * d->want for the rest. Returns -1 when the stream died (p may be freed). */
static int run_parser(struct tcp_stream_env *env, struct tcp_stream *s, enum proto_dir dir,
		      const uint8_t *p, size_t len, struct proto_ctx *ctx, size_t *off)
{
	struct tcp_dir *d = &s->dir[dir];
	size_t o = 0;

	d->want = 0;
	while (o < len) {
		struct parse_result r = s->ops->parse(s->conn, dir, p + o, len - o, ctx);
		size_t need;

		if (r.status == PARSE_ERROR) {
			stream_kill(env, s, ctx);
			return -1;
		}
		if (r.consumed > len - o)
			r.consumed = len - o; /* a parser bug must not walk us off the buffer */
		o += r.consumed;
		if (r.status == PARSE_OK && r.consumed > 0)
			continue;
		/* NEED_MORE, or OK without progress (treated the same): wait for more. */
		need = r.status == PARSE_NEED_MORE && r.needed > 0 ? r.needed : 1;
		if (need > UINT32_MAX - (len - o))
			need = UINT32_MAX - (len - o);
		d->want = (uint32_t)(len - o + need);
		break;
	}
	*off = o;
	return 0;
}

/* In-order bytes of `dir`. Zero copy when no tail is buffered. */
static void stream_feed(struct tcp_stream_env *env, struct tcp_stream *s, enum proto_dir dir,
			const uint8_t *data, size_t len, struct proto_ctx *ctx)
{
	struct tcp_dir *d = &s->dir[dir];
	size_t off;
	int rc;

	if (len == 0 || s->dead || !s->conn)
		return;
	if (d->len == 0) {
		if (run_parser(env, s, dir, data, len, ctx, &off) < 0 || off == len)
			return;
		rc = buf_reserve(env, &d->buf, &d->cap, len - off);
		if (rc < 0) {
			stream_limit(env, s, rc, ctx);
			return;
		}
		memcpy(d->buf, data + off, len - off);
		d->len = (uint32_t)(len - off);
		return;
	}
	rc = buf_reserve(env, &d->buf, &d->cap, (uint64_t)d->len + len);
	if (rc < 0) {
		stream_limit(env, s, rc, ctx);
		return;
	}
	memcpy(d->buf + d->len, data, len);
	d->len += (uint32_t)len;
	if (d->len < d->want)
		return;
	if (run_parser(env, s, dir, d->buf, d->len, ctx, &off) < 0)
		return;
	memmove(d->buf, d->buf + off, d->len - off);
	d->len -= (uint32_t)off;
	if (d->len == 0)
		d->want = 0;
}

/* The segment starting exactly at next_seq: captured bytes, then the snapped rest. */
static void deliver(struct tcp_stream_env *env, struct tcp_stream *s, enum proto_dir dir,
		    const uint8_t *data, uint32_t caplen, uint32_t wire, struct proto_ctx *ctx)
{
	s->dir[dir].next_seq += wire;
	stream_feed(env, s, dir, data, caplen, ctx);
	if (wire > caplen)
		stream_gap(env, s, dir, wire - caplen, ctx);
}

/* ---- reorder window ------------------------------------------------------------ */

/* Deliver the held segments that are now in order. */
static void drain(struct tcp_stream_env *env, struct tcp_stream *s, enum proto_dir dir,
		  struct proto_ctx *ctx)
{
	struct tcp_dir *d = &s->dir[dir];

	while (d->nsegs && SEQ_LEQ(d->segs[0].seq, d->next_seq)) {
		struct tcp_seg g = d->segs[0];
		uint32_t trim, skip;

		d->nsegs--;
		memmove(d->segs, d->segs + 1, d->nsegs * sizeof(*d->segs));
		if (SEQ_LEQ(g.seq + g.wire_len, d->next_seq)) {
			stat_inc(env->retransmits);
			continue;
		}
		trim = d->next_seq - g.seq;
		if (trim)
			stat_inc(env->overlaps);
		skip = trim < g.len ? trim : g.len;
		/* d->ooo is not reallocated while its bytes are parsed: feeding only
		 * touches d->buf, and a dying stream stops this loop (nsegs = 0). */
		deliver(env, s, dir, g.len > skip ? d->ooo + g.off + skip : NULL, g.len - skip,
			g.wire_len - trim, ctx);
	}
	if (d->nsegs == 0)
		d->ooo_len = 0;
}

/* Stop waiting for the holes of `dir`: gap each one and deliver what follows it. */
static void flush_holes(struct tcp_stream_env *env, struct tcp_stream *s, enum proto_dir dir,
			struct proto_ctx *ctx)
{
	struct tcp_dir *d = &s->dir[dir];

	while (d->nsegs) {
		if (SEQ_GT(d->segs[0].seq, d->next_seq)) {
			uint32_t hole = d->segs[0].seq - d->next_seq;

			d->next_seq = d->segs[0].seq;
			stream_gap(env, s, dir, hole, ctx);
		}
		drain(env, s, dir, ctx);
	}
	d->ooo_len = 0;
}

/* Move the held bytes to the front of d->ooo. Segments with bytes own disjoint
 * regions; moving them in increasing offset order never overwrites bytes that have
 * not moved yet (each lands at or before its old offset). */
static void ooo_compact(struct tcp_dir *d)
{
	uint32_t pos = 0;

	for (uint32_t i = 0; i < d->nsegs; i++)
		if (d->segs[i].len == 0)
			d->segs[i].off = 0; /* nothing captured, nothing to move */
	for (;;) {
		uint32_t best = UINT32_MAX, bi = UINT32_MAX;

		for (uint32_t i = 0; i < d->nsegs; i++) {
			if (d->segs[i].len && d->segs[i].off >= pos && d->segs[i].off < best) {
				best = d->segs[i].off;
				bi = i;
			}
		}
		if (bi == UINT32_MAX)
			break;
		memmove(d->ooo + pos, d->ooo + best, d->segs[bi].len);
		d->segs[bi].off = pos;
		pos += d->segs[bi].len;
	}
	d->ooo_len = pos;
}

/* Hold an out-of-order segment. False when the window cannot take it. */
static bool hold(struct tcp_stream_env *env, struct tcp_dir *d, uint32_t seq, const uint8_t *data,
		 uint32_t caplen, uint32_t wire)
{
	uint32_t i;
	int32_t rel = (int32_t)(seq - d->next_seq);

	for (i = 0; i < d->nsegs; i++) {
		if (d->segs[i].seq == seq && d->segs[i].wire_len >= wire) {
			stat_inc(env->retransmits);
			return true;
		}
	}
	if (d->nsegs >= env->reorder_segments)
		return false;
	if (!d->segs) {
		d->segs = hb_calloc(env->reorder_segments, sizeof(*d->segs));
		if (!d->segs)
			return false;
	}
	if (d->ooo_cap - d->ooo_len < caplen) {
		ooo_compact(d);
		if (d->ooo_cap - d->ooo_len < caplen &&
		    buf_reserve(env, &d->ooo, &d->ooo_cap, (uint64_t)d->ooo_len + caplen) < 0)
			return false;
	}
	for (i = d->nsegs; i > 0 && (int32_t)(d->segs[i - 1].seq - d->next_seq) > rel; i--)
		d->segs[i] = d->segs[i - 1];
	d->segs[i] =
	    (struct tcp_seg){.seq = seq, .len = caplen, .wire_len = wire, .off = d->ooo_len};
	if (caplen)
		memcpy(d->ooo + d->ooo_len, data, caplen);
	d->ooo_len += caplen;
	d->nsegs++;
	stat_inc(env->out_of_order);
	return true;
}

static void handle_data(struct tcp_stream_env *env, struct tcp_stream *s, enum proto_dir dir,
			uint32_t seq, const uint8_t *data, uint32_t caplen, uint32_t wire,
			struct proto_ctx *ctx, bool may_hold)
{
	struct tcp_dir *d = &s->dir[dir];

	if (SEQ_LEQ(seq + wire, d->next_seq)) {
		stat_inc(env->retransmits);
		return;
	}
	if (SEQ_LT(seq, d->next_seq)) {
		uint32_t trim = d->next_seq - seq;
		uint32_t skip = trim < caplen ? trim : caplen;

		stat_inc(env->overlaps);
		if (skip) /* data may be NULL when nothing was captured */
			data += skip;
		caplen -= skip;
		wire -= trim;
		seq = d->next_seq;
	}
	if (seq == d->next_seq) {
		deliver(env, s, dir, data, caplen, wire, ctx);
		drain(env, s, dir, ctx);
		return;
	}
	if (may_hold) {
		if (hold(env, d, seq, data, caplen, wire))
			return;
		/* Window full: the holes before this segment are not coming. */
		flush_holes(env, s, dir, ctx);
		handle_data(env, s, dir, seq, data, caplen, wire, ctx, false);
		return;
	}
	stream_gap(env, s, dir, seq - d->next_seq, ctx);
	d->next_seq = seq;
	deliver(env, s, dir, data, caplen, wire, ctx);
}

/* ---- connection events ------------------------------------------------------------ */

static void finish_dir(struct tcp_stream_env *env, struct tcp_stream *s, enum proto_dir dir,
		       struct proto_ctx *ctx)
{
	struct tcp_dir *d = &s->dir[dir];

	d->fin = true;
	if (s->conn && !s->dead && s->ops->fin)
		s->ops->fin(s->conn, dir, ctx);
	/* Nothing more arrives in this direction: an incomplete tail is dead weight. */
	dir_free(env, d);
}

void tcp_stream_fin(struct tcp_stream_env *env, struct tcp_stream *s, enum proto_dir dir,
		    struct proto_ctx *ctx)
{
	if (s->dir[dir].fin)
		return;
	flush_holes(env, s, dir, ctx);
	finish_dir(env, s, dir, ctx);
}

enum tcp_stream_state tcp_stream_segment(struct tcp_stream_env *env, struct tcp_stream *s,
					 enum proto_dir dir, const struct packet *pkt,
					 struct proto_ctx *ctx)
{
	struct tcp_dir *d = &s->dir[dir];
	enum proto_dir odir = dir == DIR_TO_SERVER ? DIR_TO_CLIENT : DIR_TO_SERVER;
	struct tcp_dir *od = &s->dir[odir];
	uint8_t fl = pkt->tcp_flags;
	uint32_t seq = pkt->seq;
	uint32_t wire = pkt->payload_wire_len;
	uint32_t caplen = pkt->payload_len < wire ? pkt->payload_len : wire;

	if (fl & TCPF_SYN) {
		if (!d->syn) {
			d->syn = true;
			d->isn = seq;
		}
		if (!d->init) {
			d->next_seq = seq + 1;
			d->init = true;
		}
		seq += 1;
	}
	/* The peer acknowledged bytes at or past our first held segment: it received
	 * the hole, which we missed, so no retransmission will fill it. */
	if ((fl & TCPF_ACK) && od->nsegs && SEQ_GEQ(pkt->ack, od->segs[0].seq))
		flush_holes(env, s, odir, ctx);
	if (wire > 0 && !d->fin) {
		if (!d->init) {
			d->next_seq = seq; /* mid-stream pickup */
			d->init = true;
		}
		if (!s->dead)
			handle_data(env, s, dir, seq, pkt->payload, caplen, wire, ctx,
				    env->reorder_segments > 0);
	}
	if ((fl & TCPF_FIN) && !d->fin) {
		uint32_t fin_seq = seq + wire;

		if (!d->init) {
			d->next_seq = fin_seq;
			d->init = true;
		}
		flush_holes(env, s, dir, ctx);
		if (SEQ_LT(d->next_seq, fin_seq)) {
			uint32_t hole = fin_seq - d->next_seq;

			d->next_seq = fin_seq;
			stream_gap(env, s, dir, hole, ctx);
		}
		d->next_seq = fin_seq + 1;
		finish_dir(env, s, dir, ctx);
	}
	if (fl & TCPF_RST) {
		/* The response side first: a close-delimited response completes the
		 * pending request before the request side is closed. */
		tcp_stream_fin(env, s, DIR_TO_CLIENT, ctx);
		tcp_stream_fin(env, s, DIR_TO_SERVER, ctx);
		return TCP_STREAM_CLOSED;
	}
	return s->dir[0].fin && s->dir[1].fin ? TCP_STREAM_CLOSED : TCP_STREAM_OPEN;
}

void tcp_stream_flush(struct tcp_stream_env *env, struct tcp_stream *s, struct proto_ctx *ctx)
{
	flush_holes(env, s, DIR_TO_SERVER, ctx);
	flush_holes(env, s, DIR_TO_CLIENT, ctx);
}

void tcp_stream_release(struct tcp_stream_env *env, struct tcp_stream *s, struct proto_ctx *ctx)
{
	parser_drop(s, ctx);
	s->dead = true;
	dir_free(env, &s->dir[0]);
	dir_free(env, &s->dir[1]);
}
