/* fuzz_mysql.c — libFuzzer harness for the MySQL parser (net/proto/mysql.c).
 *
 * Input layout:
 *   byte 0        option bits: 0x01 send_request, 0x02 send_response, 0x04 all_commands,
 *                 0x08 tiny limits (max_rows 2, max_row_length 8, max_message 64,
 *                 max_pending 2, max_packet_head 1024, max_query_bytes 64,
 *                 max_statements 2)
 *   then the [h][payload] records of fuzz_stream.h (default event byte).
 */
#include "fuzz_stream.h"

extern const struct proto_ops mysql_proto;

static const struct fz_limit fz_limits[] = {
    {"max_rows", 2, 10},
    {"max_row_length", 8, 1024},
    {"max_packet_head", 1024, 16384},
    {"max_query_bytes", 64, 65536},
    {"max_statements", 2, 256},
};

static void fz_configure(struct fz_run *r, uint8_t opt)
{
	fz_set(r, "all_commands", opt & 0x04);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct fz_opts opts = {.server_port = 3306,
					    .tiny_bit = 0x08,
					    .tiny_message_size = 64,
					    .limits = fz_limits,
					    .nlimits = sizeof(fz_limits) / sizeof(fz_limits[0]),
					    .configure = fz_configure};

	return fz_main(&mysql_proto, &opts, data, size);
}
