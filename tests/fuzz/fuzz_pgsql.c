/* fuzz_pgsql.c — libFuzzer harness for the PostgreSQL parser (net/proto/pgsql.c).
 *
 * Input layout:
 *   byte 0        option bits: 0x01 send_request, 0x02 send_response,
 *                 0x20 tiny limits (max_rows 2, max_row_length 8, max_query_length 64,
 *                 max_statements 2, max_message_length 4096, max_message_size 64,
 *                 max_pending 2)
 *   then records  [h][payload]: h & 0x7f = n > 0 → the next n bytes go to the
 *                 server (h & 0x80 clear) or the client (set) in ONE parse call
 *                 sequence (so the fuzzer controls split points);
 *                 n == 0 → an event byte e follows: e % 5 = 0 fin client, 1 fin
 *                 server, 2 gap (e >> 3) + 1 bytes in direction e & 4, 3 clock +
 *                 (e >> 3) seconds, 4 expire.
 * The stream layer is imitated: unconsumed tails are kept per direction and
 * re-presented; PARSE_ERROR ends the connection (expire + free), a refused gap
 * resets it (expire + free + new conn), as net/tcp_stream.c does.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hostbeat/clock.h"
#include "hostbeat/config.h"
#include "hostbeat/event.h"
#include "hostbeat/mem.h"
#include "hostbeat/proto.h"

extern const struct proto_ops pgsql_proto;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fz_sink {
	struct ev_sink sink;
	size_t published;
};

static void fz_publish(struct ev_sink *sink, struct event *ev)
{
	struct fz_sink *s = (struct fz_sink *)sink;

	/* touch every field like the encoder would */
	for (size_t i = 0; i < ev->nfields; i++)
		if (ev->fields[i].type == EV_T_STR && ev->fields[i].v.s.len)
			s->published += (uint8_t)ev->fields[i].v.s.p[ev->fields[i].v.s.len - 1];
	s->published++;
	ev_pool_put(ev);
}

static void fz_set(const struct proto_ops *ops, void *priv, const char *key, uint64_t val)
{
	for (size_t i = 0; i < ops->nconfig; i++)
		if (strcmp(ops->config[i].key, key) == 0)
			*(uint64_t *)((char *)priv + ops->config[i].offset) = val;
}

struct fz_side {
	uint8_t *p;
	size_t len;
};

struct fz_run {
	const struct proto_ops *ops;
	struct proto_ctx ctx;
	const struct conn_info *info;
	void *conn;
	bool dead;
	struct fz_side side[2];
};

static void fz_end(struct fz_run *r)
{
	if (r->conn) {
		r->ops->expire(r->conn, &r->ctx);
		r->ops->conn_free(r->conn);
	}
	r->conn = NULL;
	r->side[0].len = r->side[1].len = 0;
}

static void fz_feed(struct fz_run *r, enum proto_dir dir, const uint8_t *p, size_t n)
{
	struct fz_side *s = &r->side[dir];
	uint8_t *grown;

	if (r->dead || !r->conn)
		return;
	grown = realloc(s->p, s->len + n + 1);
	if (!grown)
		abort();
	s->p = grown;
	memcpy(s->p + s->len, p, n);
	s->len += n;
	for (;;) {
		struct parse_result pr = r->ops->parse(r->conn, dir, s->p, s->len, &r->ctx);

		if (pr.consumed > s->len)
			abort(); /* contract violation */
		memmove(s->p, s->p + pr.consumed, s->len - pr.consumed);
		s->len -= pr.consumed;
		if (pr.status == PARSE_ERROR) {
			fz_end(r);
			r->dead = true;
			return;
		}
		if (pr.status == PARSE_NEED_MORE || s->len == 0)
			return;
		if (pr.consumed == 0)
			abort(); /* PARSE_OK without progress would spin the stream layer */
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct proto_ops *ops = &pgsql_proto;
	struct fz_sink sink = {.sink = {.publish = fz_publish}};
	struct cfg_proto cfg;
	struct conn_info info;
	struct fz_run r;
	uint8_t opt;
	void *priv;
	size_t i = 1;

	if (!ops || size < 1)
		return 0;
	opt = data[0];
	priv = calloc(1, ops->config_size);
	sink.sink.pool = ev_pool_new(16, 256u << 10, 256);
	if (!priv || !sink.sink.pool)
		abort();
	memset(&cfg, 0, sizeof(cfg));
	cfg.ops = ops;
	cfg.priv = priv;
	cfg.send_request = opt & 0x01;
	cfg.send_response = opt & 0x02;
	cfg.transaction_timeout = 10 * NS_PER_SEC;
	cfg.max_message_size = opt & 0x20 ? 64 : 65536;
	cfg.max_pending = opt & 0x20 ? 2 : 8;
	fz_set(ops, priv, "max_rows", opt & 0x20 ? 2 : 10);
	fz_set(ops, priv, "max_row_length", opt & 0x20 ? 8 : 1024);
	fz_set(ops, priv, "max_query_length", opt & 0x20 ? 64 : 65536);
	fz_set(ops, priv, "max_statements", opt & 0x20 ? 2 : 32);
	fz_set(ops, priv, "max_message_length", opt & 0x20 ? 4096 : 1u << 30);

	memset(&info, 0, sizeof(info));
	info.client_ip.ver = 4;
	info.server_ip.ver = 4;
	info.client_port = 40000;
	info.server_port = 5432;
	info.transport = 6;
	info.cfg = &cfg;
	memset(&r, 0, sizeof(r));
	r.ops = ops;
	r.info = &info;
	r.ctx.conn = &info;
	r.ctx.sink = &sink.sink;
	r.ctx.stats = proto_stats_get(ops);
	r.ctx.ts = 1700000000ull * NS_PER_SEC;
	r.conn = ops->conn_new(&info);

	while (i < size && r.conn) {
		uint8_t h = data[i++];
		size_t n = h & 0x7f;
		enum proto_dir dir = h & 0x80 ? DIR_TO_CLIENT : DIR_TO_SERVER;

		r.ctx.ts += NS_PER_MS;
		if (n) {
			if (size - i < n)
				n = size - i;
			fz_feed(&r, dir, data + i, n);
			i += n;
			continue;
		}
		if (i >= size)
			break;
		h = data[i++];
		switch (h % 5) {
		case 0:
		case 1:
			if (ops->fin)
				ops->fin(r.conn, h % 5 ? DIR_TO_CLIENT : DIR_TO_SERVER, &r.ctx);
			break;
		case 2:
			if (ops->gap(r.conn, h & 4 ? DIR_TO_CLIENT : DIR_TO_SERVER,
				     (size_t)(h >> 3) + 1, &r.ctx) < 0) {
				fz_end(&r);
				r.conn = ops->conn_new(&info);
			}
			break;
		case 3:
			r.ctx.ts += (uint64_t)(h >> 3) * NS_PER_SEC;
			break;
		default:
			ops->expire(r.conn, &r.ctx);
			break;
		}
	}
	fz_end(&r);
	if (ev_pool_live(sink.sink.pool) != 0)
		abort(); /* an event leaked */
	free(r.side[0].p);
	free(r.side[1].p);
	ev_pool_free(sink.sink.pool);
	free(priv);
	return 0;
}
