/* fuzz_bulk_response.c — libFuzzer harness for shipper/bulk.c's _bulk response parser.
 *
 * Input layout:
 *   byte 0-1  items sent, little endian, mod 513
 *   byte 2    HTTP status: statuses[byte % N]
 *   then      the response body
 * Checked on every input (abort() on failure): every item gets exactly one valid
 * verdict and the counters add up; a non-2xx status retries everything (413 alone:
 * dead); error texts lie inside the text arena, within their caps, in valid UTF-8.
 * Then the verdicts go through a real batch: record + retain must keep exactly the
 * retried items, in order, with their bytes intact.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shipper/bulk.h"

static const int statuses[] = {200, 201, 200, 200, 413, 429, 500, 503, 400, 404, 409, 100, 302, 0};

#define CHECK(c)                                                                               \
	do {                                                                                   \
		if (!(c)) {                                                                    \
			fprintf(stderr, "fuzz_bulk_response: %s:%d: %s\n", __FILE__, __LINE__, \
				#c);                                                           \
			abort();                                                               \
		}                                                                              \
	} while (0)

static bool utf8_ok(const unsigned char *p, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned char c = p[i];
		size_t k = c < 0x80 ? 1 : c >= 0xc2 && c < 0xe0 ? 2 : c >= 0xe0 && c < 0xf0 ? 3 : 4;

		if (c >= 0x80 && (c < 0xc2 || c > 0xf4))
			return false;
		if (n - i < k)
			return false;
		for (size_t j = 1; j < k; j++)
			if ((p[i + j] & 0xc0) != 0x80)
				return false;
		if ((c == 0xe0 && p[i + 1] < 0xa0) || (c == 0xed && p[i + 1] > 0x9f) ||
		    (c == 0xf0 && p[i + 1] < 0x90) || (c == 0xf4 && p[i + 1] > 0x8f))
			return false;
		i += k;
	}
	return true;
}

static void check_text(const struct bulk_response *r, uint32_t off, uint16_t len, size_t cap)
{
	CHECK(len <= cap);
	if (!len)
		return;
	CHECK(off <= r->text.len && len <= r->text.len - off);
	CHECK(utf8_ok((const unsigned char *)r->text.p + off, len));
}

static void check(const struct bulk_response *r, int status, size_t nitems)
{
	size_t count[4] = {0};
	bool ok = status >= 200 && status < 300;

	CHECK(r->nitems == nitems);
	for (size_t i = 0; i < nitems; i++) {
		const struct bulk_item_result *it = &r->item[i];

		CHECK(it->verdict <= BULK_DEAD);
		count[it->verdict]++;
		check_text(r, it->type_off, it->type_len, BULK_ERR_TYPE_MAX);
		check_text(r, it->reason_off, it->reason_len, BULK_ERR_REASON_MAX);
		if (it->verdict == BULK_ACK && ok && r->proto == BULK_PROTO_OK && it->status)
			CHECK(it->status >= 200 && it->status < 300);
		if (it->verdict == BULK_DUPLICATE)
			CHECK(it->status == 409);
		if (it->verdict == BULK_DEAD)
			CHECK((it->status >= 400 && it->status < 500) || status == 413);
	}
	CHECK(count[BULK_ACK] == r->n_ack && count[BULK_DUPLICATE] == r->n_duplicate);
	CHECK(count[BULK_RETRY] == r->n_retry && count[BULK_DEAD] == r->n_dead);
	CHECK(r->n_ack + r->n_duplicate + r->n_retry + r->n_dead == nitems);
	check_text(r, r->err_type_off, r->err_type_len, BULK_ERR_TYPE_MAX);
	check_text(r, r->err_reason_off, r->err_reason_len, BULK_ERR_REASON_MAX);
	if (status == 413) {
		CHECK(r->outcome == BULK_OUT_SPLIT);
		CHECK(nitems == 1 ? r->n_dead == 1 : r->n_retry == nitems);
	} else if (!ok) {
		CHECK(r->outcome == BULK_OUT_RETRY && r->n_retry == nitems);
	} else {
		CHECK(r->outcome == BULK_OUT_ITEMS);
		CHECK(r->n_bad_items <= r->n_retry);
	}
}

/* Record the verdicts on a batch of {"n":i} documents and retain: the kept items are the
 * retried ones, in order, bytes intact. */
static void check_retain(const struct bulk_response *r, size_t nitems)
{
	struct bulk_batch *b = bulk_batch_new(nitems, 1 << 20, 0);
	struct bulk_payload pl;
	size_t kept, k = 0;

	if (!b)
		abort();
	for (size_t i = 0; i < nitems; i++) {
		char doc[32];
		int len = snprintf(doc, sizeof(doc), "{\"n\":%zu}", i);

		CHECK(bulk_batch_add(b, "i", NULL, doc, (size_t)len, (void *)(uintptr_t)i) == 0);
	}
	bulk_batch_record(b, 0, r);
	kept = bulk_batch_retain(b);
	CHECK(kept == r->n_retry);
	CHECK(bulk_batch_count(b) == kept);
	for (size_t i = 0; i < nitems; i++) {
		char line[64];
		int len;

		if (r->item[i].verdict != BULK_RETRY)
			continue;
		CHECK(bulk_batch_item(b, k)->user == (void *)(uintptr_t)i);
		CHECK(bulk_batch_payload(b, k, k + 1, &pl) == 0);
		len = snprintf(line, sizeof(line), "{\"create\":{\"_index\":\"i\"}}\n{\"n\":%zu}\n",
			       i);
		CHECK(pl.len == (size_t)len && !memcmp(pl.p, line, pl.len));
		k++;
	}
	CHECK(k == kept);
	bulk_batch_free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bulk_response r;
	size_t nitems, n2;
	int status;
	char *body;

	if (size < 3)
		return 0;
	nitems = ((size_t)data[0] | (size_t)data[1] << 8) % 513;
	status = statuses[data[2] % (sizeof(statuses) / sizeof(statuses[0]))];
	/* an exact-size copy so any over-read is caught */
	body = malloc(size - 3 ? size - 3 : 1);
	if (!body)
		return 0;
	memcpy(body, data + 3, size - 3);
	bulk_response_init(&r);
	if (bulk_response_parse(&r, status, body, size - 3, nitems) == 0) {
		check(&r, status, nitems);
		if (nitems)
			check_retain(&r, nitems);
	}
	/* reuse the warm response with another count: nothing stale may leak through */
	n2 = nitems / 2;
	if (bulk_response_parse(&r, status, body, size - 3, n2) == 0)
		check(&r, status, n2);
	bulk_response_free(&r);
	free(body);
	return 0;
}
