/* fuzz_mongodb.c — libFuzzer harness for the MongoDB wire protocol parser
 * (net/proto/mongodb.c).
 *
 * Input layout:
 *   byte 0        option bits: 0x01 send_request, 0x02 send_response,
 *                 0x04 tiny limits (max_doc_bytes 64, max_docs 1, max_doc_length 16,
 *                 max_message_size 64, max_pending 2, max_wire_message_size 4096),
 *                 0x08 unlimited documents (max_docs 0, max_doc_length 0)
 *   then the [h][payload] records of fuzz_stream.h (default event byte), with the
 *   direction bit inverted: h & 0x80 set sends to the server (the seeds rely on it).
 */
#include "fuzz_stream.h"

extern const struct proto_ops mongodb_proto;

static const struct fz_limit fz_limits[] = {
    {"max_doc_bytes", 64, 65536},
    {"max_docs", 1, 10},
    {"max_doc_length", 16, 5000},
    {"max_wire_message_size", 4096, 48000000},
};

static void fz_configure(struct fz_run *r, uint8_t opt)
{
	if (opt & 0x08) {
		fz_set(r, "max_docs", 0);
		fz_set(r, "max_doc_length", 0);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct fz_opts opts = {.server_port = 27017,
					    .hi_bit_to_server = true,
					    .tiny_bit = 0x04,
					    .tiny_message_size = 64,
					    .limits = fz_limits,
					    .nlimits = sizeof(fz_limits) / sizeof(fz_limits[0]),
					    .configure = fz_configure};

	return fz_main(&mongodb_proto, &opts, data, size);
}
