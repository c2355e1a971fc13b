/* fuzz_thrift.c — libFuzzer harness for the Thrift RPC parser (net/proto/thrift.c).
 *
 * Input layout:
 *   byte 0        option bits: 0x01 send_request, 0x02 send_response,
 *                 0x04 tiny limits (string_max_size 4, collection_max_size 2,
 *                 max_depth 4, drop_after_n_struct_fields 4, max_method_size 8,
 *                 max_frame_size 64, max_rendered_size 64, max_message 16,
 *                 max_pending 2), 0x08 capture_reply=false, 0x10 obfuscate_strings,
 *                 0x20 force transport_type (0x40 set: framed, else socket),
 *                 0x80 force protocol_type (0x40 set: compact, else binary)
 *   then the [h][payload] records of fuzz_stream.h (default event byte).
 */
#include "fuzz_stream.h"

static const struct fz_limit fz_limits[] = {
    {"string_max_size", 4, 200},
    {"collection_max_size", 2, 15},
    {"max_depth", 4, 32},
    {"drop_after_n_struct_fields", 4, 500},
    {"max_method_size", 8, 255},
    {"max_frame_size", 64, 16777216},
    {"max_rendered_size", 64, 65536},
};

static void fz_configure(struct fz_run *r, uint8_t opt)
{
	fz_set(r, "capture_reply", !(opt & 0x08));
	if (opt & 0x10)
		fz_set(r, "obfuscate_strings", 1);
	if (opt & 0x20)
		fz_set_str(r, "transport_type", opt & 0x40 ? "framed" : "socket");
	if (opt & 0x80)
		fz_set_str(r, "protocol_type", opt & 0x40 ? "compact" : "binary");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct fz_opts opts = {.server_port = 9090,
					    .tiny_bit = 0x04,
					    .tiny_message_size = 16,
					    .limits = fz_limits,
					    .nlimits = sizeof(fz_limits) / sizeof(fz_limits[0]),
					    .configure = fz_configure};

	return fz_main(proto_find("thrift"), &opts, data, size);
}
