/* fuzz_http.c — libFuzzer harness for the HTTP/1.x parser (net/proto/http.c).
 *
 * Input layout:
 *   byte 0        option bits: 0x01 send_request, 0x02 send_response,
 *                 0x04 include_body_for=text,json,form, 0x08 send_all_headers,
 *                 0x10 redact_authorization + hide_keywords=pass,
 *                 0x20 tiny limits (max_line 64, max_header 256, max_message 64,
 *                 max_pending 2), 0x40 real_ip_header=x-forwarded-for
 *   then the [h][payload] records of fuzz_stream.h (default event byte).
 */
#include "fuzz_stream.h"

static char *fz_include[] = {"text", "json", "form", NULL};
static char *fz_hide[] = {"pass", NULL};

static const struct fz_limit fz_limits[] = {
    {"max_header_bytes", 256, 65536},
    {"max_line_bytes", 64, 8192},
    {"max_headers", 128, 128},
};

static void fz_configure(struct fz_run *r, uint8_t opt)
{
	if (opt & 0x04)
		fz_set_list(r, "include_body_for", fz_include);
	if (opt & 0x08)
		fz_set(r, "send_all_headers", 1);
	if (opt & 0x10) {
		fz_set(r, "redact_authorization", 1);
		fz_set_list(r, "hide_keywords", fz_hide);
	}
	if (opt & 0x40)
		fz_set_str(r, "real_ip_header", "x-forwarded-for");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct fz_opts opts = {.server_port = 8080,
					    .tiny_bit = 0x20,
					    .tiny_message_size = 64,
					    .limits = fz_limits,
					    .nlimits = sizeof(fz_limits) / sizeof(fz_limits[0]),
					    .configure = fz_configure};

	return fz_main(proto_find("http"), &opts, data, size);
}
