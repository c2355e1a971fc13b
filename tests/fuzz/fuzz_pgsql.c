/* fuzz_pgsql.c — libFuzzer harness for the PostgreSQL parser (net/proto/pgsql.c).
 *
 * Input layout:
 *   byte 0        option bits: 0x01 send_request, 0x02 send_response,
 *                 0x20 tiny limits (max_rows 2, max_row_length 8, max_query_length 64,
 *                 max_statements 2, max_message_length 4096, max_message_size 64,
 *                 max_pending 2)
 *   then the [h][payload] records of fuzz_stream.h (default event byte).
 */
#include "fuzz_stream.h"

extern const struct proto_ops pgsql_proto;

static const struct fz_limit fz_limits[] = {
    {"max_rows", 2, 10},
    {"max_row_length", 8, 1024},
    {"max_query_length", 64, 65536},
    {"max_statements", 2, 32},
    {"max_message_length", 4096, 1u << 30},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct fz_opts opts = {.server_port = 5432,
					    .tiny_bit = 0x20,
					    .tiny_message_size = 64,
					    .limits = fz_limits,
					    .nlimits = sizeof(fz_limits) / sizeof(fz_limits[0])};

	return fz_main(&pgsql_proto, &opts, data, size);
}
