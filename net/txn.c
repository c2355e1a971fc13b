/* txn.c — helpers every parser uses to build, pair and publish transactions.
 *
 * A pending request is an event from the sink's pool that has not been published;
 * it waits in a per-connection FIFO (capped) until its response arrives, the
 * transaction timeout passes, or the connection ends. Unmatched halves are always
 * published with status Error and a reason, for every protocol.
 */
#include <errno.h>
#include <string.h>

#include "hostbeat/proto.h"

void txn_init_event(struct event *ev, const struct conn_info *conn, uint64_t start_ns)
{
	ev->has_tuple = true;
	ev->transport = conn->transport;
	ev->client_ip = conn->client_ip;
	ev->server_ip = conn->server_ip;
	ev->client_port = conn->client_port;
	ev->server_port = conn->server_port;
	ev->iface = conn->iface;
	memcpy(ev->community_id, conn->community_id, sizeof(ev->community_id));
	ev->ts = start_ns;
	ev->start_ns = start_ns;
	ev->status = EV_STATUS_OK;
}

struct event *txn_new_event(struct proto_ctx *ctx, const struct proto_ops *ops)
{
	struct event *ev = ev_pool_get(ctx->sink->pool, EV_KIND_TRANSACTION, ops->name);

	if (!ev) {
		metric_inc(ctx->stats->pool_exhausted);
		return NULL;
	}
	txn_init_event(ev, ctx->conn, ctx->ts);
	return ev;
}

int txn_add_note(struct event *ev, const char *note)
{
	const struct ev_field *old = ev_find(ev, "error.message");
	char *joined;
	size_t a, b;
	int rc;

	if (!old)
		return ev_set_strz(ev, "error.message", note);
	a = old->v.s.len;
	b = strlen(note);
	/* Build "old; note" in the arena, then replace the field. */
	joined = ev_arena_copy(ev, NULL, a + 2 + b);
	if (!joined)
		return -ENOSPC;
	memcpy(joined, old->v.s.p, a); /* arena chunks never move: old stays valid */
	memcpy(joined + a, "; ", 2);
	memcpy(joined + a + 2, note, b);
	joined[a + 2 + b] = '\0';
	ev_remove(ev, "error.message");
	rc = ev_set_str(ev, "error.message", joined, a + 2 + b);
	return rc;
}

void txn_publish(struct proto_ctx *ctx, struct event *ev)
{
	metric_inc(ctx->stats->transactions);
	ev_publish(ctx->sink, ev);
}

void txn_publish_unmatched(struct proto_ctx *ctx, struct event *ev, const char *reason,
			   bool is_request)
{
	ev->status = EV_STATUS_ERROR;
	txn_add_note(ev, reason);
	if (is_request) {
		metric_inc(ctx->stats->unmatched_requests);
	} else {
		/* A lone response has no request time: no event.start, no duration. */
		ev->start_ns = 0;
		metric_inc(ctx->stats->unmatched_responses);
	}
	txn_publish(ctx, ev);
}

void txn_fifo_init(struct txn_fifo *f, size_t cap)
{
	f->head = f->tail = NULL;
	f->len = 0;
	f->cap = cap ? cap : 1;
}

int txn_fifo_push(struct txn_fifo *f, struct event *ev)
{
	if (f->len >= f->cap)
		return -ENOSPC;
	ev->next = NULL;
	if (f->tail)
		f->tail->next = ev;
	else
		f->head = ev;
	f->tail = ev;
	f->len++;
	return 0;
}

struct event *txn_fifo_pop(struct txn_fifo *f)
{
	struct event *ev = f->head;

	if (!ev)
		return NULL;
	f->head = ev->next;
	if (!f->head)
		f->tail = NULL;
	f->len--;
	ev->next = NULL;
	return ev;
}

struct event *txn_fifo_peek(const struct txn_fifo *f)
{
	return f->head;
}

struct event *txn_fifo_take(struct txn_fifo *f, bool (*match)(const struct event *, const void *),
			    const void *arg)
{
	struct event *prev = NULL, *ev;

	for (ev = f->head; ev; prev = ev, ev = ev->next) {
		if (!match(ev, arg))
			continue;
		if (prev)
			prev->next = ev->next;
		else
			f->head = ev->next;
		if (f->tail == ev)
			f->tail = prev;
		f->len--;
		ev->next = NULL;
		return ev;
	}
	return NULL;
}

void txn_fifo_release(struct txn_fifo *f)
{
	struct event *ev;

	while ((ev = txn_fifo_pop(f)))
		ev_pool_put(ev);
}

void txn_fifo_flush(struct txn_fifo *f, struct proto_ctx *ctx, const char *reason)
{
	struct event *ev;

	while ((ev = txn_fifo_pop(f)))
		txn_publish_unmatched(ctx, ev, reason, true);
}

void txn_fifo_expire(struct txn_fifo *f, struct proto_ctx *ctx, uint64_t timeout,
		     const char *reason)
{
	struct event *ev;

	/* The FIFO is in arrival order, so the oldest requests are at the head. */
	while ((ev = txn_fifo_peek(f)) && ctx->ts > ev->start_ns &&
	       ctx->ts - ev->start_ns > timeout)
		txn_publish_unmatched(ctx, txn_fifo_pop(f), reason, true);
}
