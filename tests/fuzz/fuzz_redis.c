/* fuzz_redis.c — libFuzzer harness for the Redis parser (net/proto/redis.c).
 *
 * Input layout:
 *   byte 0        option bits: 0x01 send_request, 0x02 send_response,
 *                 0x04 tiny limits (max_line 64, max_depth 3, max_elements 8,
 *                 max_bulk 256, max_return_value 16, max_query 64,
 *                 max_message 64, max_pending 2), 0x08 transaction timeout 1 s
 *   then the [h][payload] records of fuzz_stream.h (default event byte).
 */
#include "fuzz_stream.h"

extern const struct proto_ops redis_proto;

static const struct fz_limit fz_limits[] = {
    {"max_line_bytes", 64, 65536},  {"max_depth", 3, 16},
    {"max_elements", 8, 1u << 20},  {"max_bulk_bytes", 256, 512u << 20},
    {"max_return_value", 16, 1024}, {"max_query", 64, 1024},
};

static void fz_configure(struct fz_run *r, uint8_t opt)
{
	if (opt & 0x08)
		r->cfg.transaction_timeout = NS_PER_SEC;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct fz_opts opts = {.server_port = 6379,
					    .tiny_bit = 0x04,
					    .tiny_message_size = 64,
					    .limits = fz_limits,
					    .nlimits = sizeof(fz_limits) / sizeof(fz_limits[0]),
					    .configure = fz_configure};

	return fz_main(&redis_proto, &opts, data, size);
}
