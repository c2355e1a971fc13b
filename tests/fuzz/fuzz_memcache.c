/* fuzz_memcache.c — libFuzzer harness for the memcache parser (net/proto/memcache.c).
 *
 * Input layout:
 *   byte 0        option bits: 0x01 send_request, 0x02 send_response, 0x04 UDP
 *                 (every record is one datagram, frame header included), 0x08
 *                 parseunknown, 0x10 tiny limits (max_line 256, max_keys 2,
 *                 max_stats 2, max_pending 2, max_udp_slots 2, max_message 16)
 *   then the [h][payload] records of fuzz_stream.h, with memcache's own event byte
 *                 (fz_memcache_event): e % 4 = 0 gap (e >> 3) + 1 bytes in direction
 *                 e & 4, 1 clock + (e >> 3) * 100 ms (the UDP timeout is 200 ms),
 *                 2 expire, 3 fin in direction e & 4 (no-op for memcache).
 */
#include "fuzz_stream.h"

extern const struct proto_ops memcache_proto;

static const struct fz_limit fz_limits[] = {
    {"max_line_bytes", 256, 8192},
    {"max_keys", 2, 128},
    {"max_stats", 2, 512},
    {"max_udp_slots", 2, 32},
    {"udptransactiontimeout", 200 * NS_PER_MS, 200 * NS_PER_MS},
};

static void fz_configure(struct fz_run *r, uint8_t opt)
{
	fz_set(r, "parseunknown", opt & 0x08);
}

static void fz_memcache_event(struct fz_run *r, uint8_t e)
{
	enum proto_dir dir = e & 4 ? DIR_TO_CLIENT : DIR_TO_SERVER;

	switch (e % 4) {
	case 0:
		fz_gap(r, dir, (size_t)(e >> 3) + 1);
		break;
	case 1:
		r->ctx.ts += (uint64_t)(e >> 3) * 100 * NS_PER_MS;
		break;
	case 2:
		fz_expire(r);
		break;
	default:
		fz_fin(r, dir);
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_opts opts = {.server_port = 11211,
			       .event = fz_memcache_event,
			       .tiny_bit = 0x10,
			       .tiny_message_size = 16,
			       .limits = fz_limits,
			       .nlimits = sizeof(fz_limits) / sizeof(fz_limits[0]),
			       .configure = fz_configure};

	opts.udp = size > 0 && (data[0] & 0x04);
	return fz_main(&memcache_proto, &opts, data, size);
}
