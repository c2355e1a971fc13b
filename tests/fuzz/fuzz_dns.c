/* fuzz_dns.c — libFuzzer harness for net/proto/dns.c (UDP and TCP paths).
 *
 * Input layout (its own, not fuzz_stream.h's records):
 *   byte 0   bit 0: TCP (else UDP)   bit 1: include_authorities/additionals
 *            bit 2: send_request/response   bit 3: expire() after every record
 *   byte 1   direction pattern: record i goes DIR_TO_CLIENT when bit (i % 8) is set
 *   then records: [len_hi len_lo][len bytes] — a datagram (UDP) or a segment (TCP,
 *   fed through fuzz_stream.h's stream imitation). In TCP mode every fifth record
 *   that leaves a tail is followed by a 1-byte gap in its direction.
 * Each record advances the clock by 1 s, so the transaction timeout fires too.
 */
#include "fuzz_stream.h"

extern const struct proto_ops dns_proto;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_opts opts = {
	    .server_port = 53, .pool_events = 64, .pool_event_bytes = 1 << 20, .pool_fields = 4096};
	struct fz_run r;
	uint8_t mode, pattern;
	size_t off = 2;
	unsigned rec = 0;

	if (size < 2)
		return 0;
	mode = data[0];
	pattern = data[1];
	opts.udp = !(mode & 1);
	fz_open(&r, &dns_proto, &opts);
	fz_set(&r, "max_records", 64);
	fz_set(&r, "include_authorities", mode & 2);
	fz_set(&r, "include_additionals", mode & 2);
	r.cfg.send_request = mode & 4;
	r.cfg.send_response = mode & 4;
	r.cfg.transaction_timeout = 3 * NS_PER_SEC;
	r.cfg.max_message_size = 4096;
	fz_start(&r);
	while (r.conn && size - off >= 2) {
		size_t n = (size_t)data[off] << 8 | data[off + 1];
		enum proto_dir dir = (pattern >> (rec % 8)) & 1 ? DIR_TO_CLIENT : DIR_TO_SERVER;

		off += 2;
		if (size - off < n)
			n = size - off;
		r.ctx.ts += NS_PER_SEC;
		fz_feed(&r, dir, data + off, n);
		if (!opts.udp && rec % 5 == 4 && r.side[dir].len)
			fz_gap(&r, dir, 1);
		if (mode & 8)
			fz_expire(&r);
		off += n;
		rec++;
	}
	fz_close(&r);
	return 0;
}
