/* fuzz_memcache.c — libFuzzer harness for the memcache parser (net/proto/memcache.c).
 *
 * Input layout:
 *   byte 0        option bits: 0x01 send_request, 0x02 send_response, 0x04 UDP
 *                 (every record is one datagram, frame header included), 0x08
 *                 parseunknown, 0x10 tiny limits (max_line 256, max_keys 2,
 *                 max_stats 2, max_pending 2, max_udp_slots 2, max_message 16)
 *   then records  [h][payload]: h & 0x7f = n > 0 → the next n bytes go to the
 *                 server (h & 0x80 clear) or the client (set): TCP appends them to
 *                 that direction's stream, UDP hands them over as one datagram;
 *                 n == 0 → an event byte e follows: e % 4 = 0 gap (e >> 3) + 1 bytes
 *                 in direction e & 4, 1 clock + (e >> 3) * 100 ms, 2 expire,
 *                 3 fin (no-op for memcache).
 * TCP imitates the stream layer: unconsumed tails are kept and re-presented;
 * PARSE_ERROR ends the connection (expire + free), a refused gap resets it.
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

extern const struct proto_ops memcache_proto;

static void fz_publish(struct ev_sink *sink, struct event *ev)
{
	(void)sink;
	/* touch every string like the encoder would */
	for (size_t i = 0; i < ev->nfields; i++)
		if (ev->fields[i].type == EV_T_STR && ev->fields[i].v.s.len &&
		    ev->fields[i].v.s.p[ev->fields[i].v.s.len - 1] == 0x7f)
			ev->dropped_fields++;
	ev_pool_put(ev);
}

static void fz_set(void *priv, const char *key, uint64_t v)
{
	const struct proto_ops *ops = &memcache_proto;

	for (size_t i = 0; i < ops->nconfig; i++) {
		const struct cfg_field *cf = &ops->config[i];
		char *at = (char *)priv + cf->offset;

		if (strcmp(cf->key, key) != 0)
			continue;
		if (cf->type == CFG_BOOL)
			*(bool *)at = v != 0;
		else
			*(uint64_t *)at = v;
	}
}

struct fz_side {
	uint8_t *p;
	size_t len;
};

struct fz_run {
	struct proto_ctx ctx;
	void *conn;
	bool dead;
	bool udp;
	struct fz_side side[2];
};

static void fz_end(struct fz_run *r)
{
	if (r->conn) {
		memcache_proto.expire(r->conn, &r->ctx);
		memcache_proto.conn_free(r->conn);
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
	if (r->udp) {
		struct parse_result pr = memcache_proto.parse(r->conn, dir, p, n, &r->ctx);

		if (pr.consumed > n)
			abort();
		return; /* a bad datagram costs only itself */
	}
	grown = realloc(s->p, s->len + n + 1);
	if (!grown)
		abort();
	s->p = grown;
	memcpy(s->p + s->len, p, n);
	s->len += n;
	for (;;) {
		struct parse_result pr = memcache_proto.parse(r->conn, dir, s->p, s->len, &r->ctx);

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
	struct ev_sink sink = {.publish = fz_publish};
	struct cfg_proto cfg;
	struct conn_info info;
	struct fz_run r;
	bool tiny;
	uint8_t opt;
	void *priv;
	size_t i = 1;

	if (size < 1)
		return 0;
	opt = data[0];
	tiny = opt & 0x10;
	priv = calloc(1, memcache_proto.config_size);
	sink.pool = ev_pool_new(16, 256u << 10, 256);
	if (!priv || !sink.pool)
		abort();
	memset(&cfg, 0, sizeof(cfg));
	cfg.ops = &memcache_proto;
	cfg.priv = priv;
	cfg.send_request = opt & 0x01;
	cfg.send_response = opt & 0x02;
	cfg.transaction_timeout = 10 * NS_PER_SEC;
	cfg.max_message_size = tiny ? 16 : 65536;
	cfg.max_pending = tiny ? 2 : 8;
	fz_set(priv, "parseunknown", opt & 0x08);
	fz_set(priv, "udptransactiontimeout", 200 * NS_PER_MS);
	fz_set(priv, "max_line_bytes", tiny ? 256 : 8192);
	fz_set(priv, "max_keys", tiny ? 2 : 128);
	fz_set(priv, "max_stats", tiny ? 2 : 512);
	fz_set(priv, "max_udp_slots", tiny ? 2 : 32);

	memset(&info, 0, sizeof(info));
	info.client_ip.ver = 4;
	info.server_ip.ver = 4;
	info.client_port = 40000;
	info.server_port = 11211;
	info.transport = opt & 0x04 ? 17 : 6;
	info.cfg = &cfg;
	memset(&r, 0, sizeof(r));
	r.udp = opt & 0x04;
	r.ctx.conn = &info;
	r.ctx.sink = &sink;
	r.ctx.stats = proto_stats_get(&memcache_proto);
	r.ctx.ts = 1700000000ull * NS_PER_SEC;
	r.conn = memcache_proto.conn_new(&info);

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
		switch (h % 4) {
		case 0:
			if (memcache_proto.gap(r.conn, h & 4 ? DIR_TO_CLIENT : DIR_TO_SERVER,
					       (size_t)(h >> 3) + 1, &r.ctx) < 0) {
				fz_end(&r);
				r.conn = memcache_proto.conn_new(&info);
			}
			break;
		case 1:
			r.ctx.ts += (uint64_t)(h >> 3) * 100 * NS_PER_MS;
			break;
		case 2:
			memcache_proto.expire(r.conn, &r.ctx);
			break;
		default:
			if (memcache_proto.fin)
				memcache_proto.fin(r.conn, h & 4 ? DIR_TO_CLIENT : DIR_TO_SERVER,
						   &r.ctx);
			break;
		}
	}
	fz_end(&r);
	if (ev_pool_live(sink.pool) != 0)
		abort(); /* an event leaked */
	free(r.side[0].p);
	free(r.side[1].p);
	ev_pool_free(sink.pool);
	free(priv);
	return 0;
}
