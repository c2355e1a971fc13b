/* fuzz_dns.c — libFuzzer harness for net/proto/dns.c (UDP and TCP paths).
 *
 * Input layout:
 *   byte 0   bit 0: TCP (else UDP)   bit 1: include_authorities/additionals
 *            bit 2: send_request/response   bit 3: expire() after every record
 *   byte 1   direction pattern: record i goes DIR_TO_CLIENT when bit (i % 8) is set
 *   then records: [len_hi len_lo][len bytes] — a datagram (UDP) or a segment (TCP,
 *   fed through a miniature stream layer that keeps the unconsumed tail).
 * Each record advances the clock by 1 s, so the transaction timeout fires too.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <netinet/in.h>

#include "hostbeat/clock.h"
#include "hostbeat/config.h"
#include "hostbeat/event.h"
#include "hostbeat/proto.h"

extern const struct proto_ops dns_proto;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_TAIL_MAX (1u << 17)

struct fuzz_sink {
	struct ev_sink sink;
	size_t published;
};

static void fuzz_publish(struct ev_sink *sink, struct event *ev)
{
	struct fuzz_sink *s = (struct fuzz_sink *)sink;

	s->published++;
	ev_pool_put(ev);
}

static void set_cfg(void *priv, const char *key, uint64_t v)
{
	for (size_t i = 0; i < dns_proto.nconfig; i++) {
		const struct cfg_field *cf = &dns_proto.config[i];

		if (strcmp(cf->key, key) != 0)
			continue;
		if (cf->type == CFG_BOOL)
			*(bool *)((char *)priv + cf->offset) = v != 0;
		else
			*(uint64_t *)((char *)priv + cf->offset) = v;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_sink sink = {.sink.publish = fuzz_publish};
	struct conn_info info = {0};
	struct cfg_proto cp = {0};
	struct proto_ctx ctx = {0};
	uint8_t *tail[2] = {NULL, NULL};
	size_t tlen[2] = {0, 0};
	bool dead = false, tcp;
	uint8_t mode, pattern;
	void *priv = NULL, *conn = NULL;
	size_t off = 2;
	unsigned rec = 0;

	if (size < 2)
		return 0;
	mode = data[0];
	pattern = data[1];
	tcp = mode & 1;

	sink.sink.pool = ev_pool_new(64, 1 << 20, 4096);
	priv = calloc(1, dns_proto.config_size);
	tail[0] = malloc(FUZZ_TAIL_MAX);
	tail[1] = malloc(FUZZ_TAIL_MAX);
	if (!sink.sink.pool || !priv || !tail[0] || !tail[1])
		goto out;
	set_cfg(priv, "max_records", 64);
	set_cfg(priv, "include_authorities", mode & 2);
	set_cfg(priv, "include_additionals", mode & 2);
	cp.ops = &dns_proto;
	cp.enabled = true;
	cp.send_request = mode & 4;
	cp.send_response = mode & 4;
	cp.transaction_timeout = 3 * NS_PER_SEC;
	cp.max_message_size = 4096;
	cp.max_pending = 8;
	cp.priv = priv;
	info.client_ip.ver = 4;
	info.server_ip.ver = 4;
	info.client_port = 40000;
	info.server_port = 53;
	info.transport = tcp ? IPPROTO_TCP : IPPROTO_UDP;
	info.cfg = &cp;
	ctx.conn = &info;
	ctx.sink = &sink.sink;
	ctx.stats = proto_stats_get(&dns_proto);
	ctx.ts = 1700000000ULL * NS_PER_SEC;

	conn = dns_proto.conn_new(&info);
	if (!conn)
		goto out;

	while (size - off >= 2) {
		size_t n = (size_t)data[off] << 8 | data[off + 1];
		enum proto_dir dir = (pattern >> (rec % 8)) & 1 ? DIR_TO_CLIENT : DIR_TO_SERVER;
		struct parse_result r;

		off += 2;
		if (size - off < n)
			n = size - off;
		ctx.ts += NS_PER_SEC;
		if (!tcp) {
			dns_proto.parse(conn, dir, data + off, n, &ctx);
		} else if (!dead) {
			if (FUZZ_TAIL_MAX - tlen[dir] < n) {
				dead = true;
			} else {
				memcpy(tail[dir] + tlen[dir], data + off, n);
				tlen[dir] += n;
				r = dns_proto.parse(conn, dir, tail[dir], tlen[dir], &ctx);
				if (r.consumed > tlen[dir])
					abort(); /* contract violation */
				if (r.status == PARSE_ERROR) {
					dead = true;
				} else {
					memmove(tail[dir], tail[dir] + r.consumed,
						tlen[dir] - r.consumed);
					tlen[dir] -= r.consumed;
				}
			}
			if (!dead && (rec % 5) == 4 && tlen[dir] &&
			    dns_proto.gap(conn, dir, 1, &ctx) < 0)
				dead = true;
		}
		if (mode & 8)
			dns_proto.expire(conn, &ctx);
		off += n;
		rec++;
	}
	dns_proto.expire(conn, &ctx);
	/* Everything pending was published: the pool must be empty again. */
	if (ev_pool_live(sink.sink.pool) != 0)
		abort();
out:
	dns_proto.conn_free(conn);
	ev_pool_free(sink.sink.pool);
	free(tail[0]);
	free(tail[1]);
	free(priv);
	return 0;
}
