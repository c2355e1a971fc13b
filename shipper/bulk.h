/* bulk.h — the pure part of the Elasticsearch output: index names, `_bulk` request
 * bodies and `_bulk` response verdicts. No I/O: the HTTP layer only moves bytes.
 *
 * Spec: elastic/elasticsearch-specification specification/_global/bulk/
 * {BulkRequest.ts,BulkResponse.ts,types.ts}; docs/reference/ecosystem.md §2.1–2.2, §2.4.
 *
 * One round trip, as the HTTP layer drives it:
 *
 *   bulk_batch_add() × n          encoded documents → `{"create":{"_index":…}}\n<doc>\n`
 *   bulk_batch_payload(0, n)      the body (gzipped when compression_level > 0)
 *   POST /_bulk?filter_path=errors,items.*.status,items.*.error
 *   bulk_response_parse(status, body, len, n)
 *     outcome BULK_OUT_SPLIT      (413) resend [from, mid) and [mid, to) separately:
 *                                  ranges of one batch need no copy and no re-encoding
 *   bulk_batch_record(from, resp) per range sent
 *   for each item: verdict ACK / DUPLICATE → done, DEAD → dead-letter, RETRY → stays
 *   bulk_batch_retain()           keeps only the RETRY items, in order; top up with
 *                                  more bulk_batch_add() and send again after a backoff
 *
 * Thread-safety: none; a batch and a response belong to one (the output's) thread.
 * Cost: once warm (largest batch seen), adding, compressing, parsing and retaining
 * allocate nothing.
 */
#ifndef HOSTBEAT_SHIPPER_BULK_H
#define HOSTBEAT_SHIPPER_BULK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hostbeat/strbuf.h"

/* ---- index names ------------------------------------------------------------ */

/* Elasticsearch refuses index names longer than 255 bytes. */
#define BULK_INDEX_MAX 255

/* A Beats-style index pattern: literal text, `%{+FMT}` and `%{[agent.version]}`.
 *   FMT is a Joda-like date of the event's @timestamp in UTC: yyyy, yy, MM, M, dd, d,
 *   HH, H; other characters are literal, '…' quotes letters ('' is a quote).
 *   e.g. "packetbeat-%{+yyyy.MM.dd}", "hostbeat-%{[agent.version]}-%{+yyyy.MM}".
 * Literal text must obey Elasticsearch's rules: lowercase, none of \ / * ? " < > | , # :
 * space or control characters, not starting with - _ +, not "." or "..".
 *
 * Returns 0, or -EINVAL with a one-line reason in msg (always NUL-terminated when
 * msg_size > 0) and *err_off = the byte offset in `pattern` it is about, so the config
 * loader can print file:LINE:(COL + *err_off). err_off and msg may be NULL. */
int bulk_index_validate(const char *pattern, size_t *err_off, char *msg, size_t msg_size);

/* Write the index name for an event with @timestamp `ts_ns` (ns since the epoch, UTC;
 * negative = before 1970) into out. `version` replaces %{[agent.version]} (ASCII
 * letters are lowercased, as Beats do). Returns the length (out NUL-terminated),
 * -EINVAL (pattern fails bulk_index_validate(), or version is NULL when needed or
 * holds a forbidden character) or -ENAMETOOLONG (over BULK_INDEX_MAX or size - 1). */
int bulk_index_format(const char *pattern, int64_t ts_ns, const char *version, char *out,
		      size_t size);

/* bulk_index_format() remembered for one UTC hour (every token is constant within an
 * hour), so the hot path formats once an hour instead of per event (~200 ns). One cache
 * per (pattern, version): zero it to start, and again if either changes. */
struct bulk_index_cache {
	int64_t lo, hi; /* the name is valid for ts_ns in [lo, hi) */
	int len;        /* bulk_index_format()'s result */
	char name[BULK_INDEX_MAX + 1];
};

/* Same result as bulk_index_format(); *name points into the cache ("" on error). */
int bulk_index_cached(struct bulk_index_cache *c, const char *pattern, int64_t ts_ns,
		      const char *version, const char **name);

/* ---- request bodies ----------------------------------------------------------- */

enum bulk_verdict {
	BULK_RETRY,     /* not sent yet, 429, 5xx, missing or unreadable answer: send again */
	BULK_ACK,       /* 2xx: stored */
	BULK_DUPLICATE, /* 409: already stored (a retried create); counts as acked */
	BULK_DEAD,      /* other 4xx, or alone and still too large: never retry */
};

struct bulk_item {
	size_t off;       /* action line start in the raw body */
	size_t len;       /* action line + document, both '\n' included */
	void *user;       /* the caller's (its event), carried through retain */
	uint32_t retries; /* times bulk_batch_retain() kept it */
	uint8_t verdict;  /* enum bulk_verdict; BULK_RETRY until recorded */
};

struct bulk_payload {
	const char *p; /* valid until the next call on the batch */
	size_t len;
	size_t raw_len; /* uncompressed bytes */
	bool gzip;      /* send Content-Encoding: gzip */
};

struct bulk_batch; /* opaque */

/* A batch of at most max_docs documents and max_bytes of raw (uncompressed) body.
 * compression_level: 0 = plain, 1–9 = gzip. Returns new — caller frees with
 * bulk_batch_free(); NULL on allocation failure or a bad argument (0 caps, level > 9). */
struct bulk_batch *bulk_batch_new(size_t max_docs, size_t max_bytes, int compression_level);
void bulk_batch_free(struct bulk_batch *b);
/* Empty the batch; memory is kept. */
void bulk_batch_reset(struct bulk_batch *b);

/* Append one document: `doc` is one compact JSON object as encode_event() writes it (no
 * newline). index: a bulk_index_format() result; pipeline: NULL or "" for none. Both are
 * JSON-escaped into the action line. Copies everything; `user` is stored as is.
 * Returns 0; -ENOSPC when the batch is full (max_docs, or max_bytes with this document:
 * send it, then add again); -E2BIG when this document alone exceeds max_bytes (drop it);
 * -EINVAL for a NULL/empty argument or a raw '\n' in doc; -ENOMEM (batch unchanged). */
int bulk_batch_add(struct bulk_batch *b, const char *index, const char *pipeline, const char *doc,
		   size_t len, void *user);

/* Same, with a document `_id` in the action line (`{"create":{"_index":…,"_id":…}}`):
 * a create that reaches Elasticsearch twice (a retry after a lost answer, a replay
 * after a kill -9) then answers 409 instead of indexing a duplicate. id NULL or "":
 * none (Elasticsearch generates one). */
int bulk_batch_add_id(struct bulk_batch *b, const char *index, const char *id, const char *pipeline,
		      const char *doc, size_t len, void *user);

/* The raw body: item i's action line and document are at bulk_batch_item(b, i)->off.
 * Borrowed; valid until the next add/retain/reset. */
const char *bulk_batch_raw(const struct bulk_batch *b);

size_t bulk_batch_count(const struct bulk_batch *b);
/* Raw body bytes of all items. */
size_t bulk_batch_bytes(const struct bulk_batch *b);
/* Item i (i < count), or NULL. Borrowed; valid until the next add/retain/reset. */
struct bulk_item *bulk_batch_item(struct bulk_batch *b, size_t i);

/* The request body for items [from, to) (from < to <= count): the raw bytes, or their
 * gzip when the batch compresses (into a buffer the batch reuses). 0, -EINVAL (bad
 * range) or -ENOMEM. */
int bulk_batch_payload(struct bulk_batch *b, size_t from, size_t to, struct bulk_payload *out);

struct bulk_response;
/* Copy the verdicts of `r` (the answer to the range starting at `from`) to the items. */
void bulk_batch_record(struct bulk_batch *b, size_t from, const struct bulk_response *r);

/* Drop every item whose verdict is not BULK_RETRY; the rest move to the front in order
 * (body compacted in place: no re-encoding, no allocation) with retries + 1 and verdict
 * back to BULK_RETRY. Returns the number kept. */
size_t bulk_batch_retain(struct bulk_batch *b);

/* ---- responses ----------------------------------------------------------------- */

#define BULK_ERR_TYPE_MAX 128   /* bytes of error.type kept per item (valid UTF-8) */
#define BULK_ERR_REASON_MAX 512 /* bytes of error.reason kept per item */
#define BULK_JSON_MAX_DEPTH 64  /* deeper response JSON is unreadable */

enum bulk_outcome {
	BULK_OUT_ITEMS, /* 2xx: per-item verdicts */
	BULK_OUT_SPLIT, /* 413: every item RETRY; split the range (one item alone is DEAD) */
	BULK_OUT_RETRY, /* other non-2xx or no usable body: every item RETRY */
};

enum bulk_proto_err {
	BULK_PROTO_OK,
	BULK_PROTO_UNREADABLE, /* 2xx but no JSON object with errors/items */
	BULK_PROTO_MALFORMED,  /* JSON broke off inside items: the rest are RETRY */
	BULK_PROTO_TOO_FEW,    /* fewer items than sent: the unmatched ones are RETRY */
	BULK_PROTO_TOO_MANY,   /* more items than sent: the extra ones are ignored */
	BULK_PROTO_BAD_ITEM,   /* an item without a usable status: it is RETRY */
};

struct bulk_item_result {
	uint8_t verdict;     /* enum bulk_verdict */
	uint16_t status;     /* the item's HTTP status; 0 when missing or unusable */
	uint16_t type_len;   /* error.type in r->text at type_off; 0 = none */
	uint16_t reason_len; /* error.reason in r->text at reason_off; 0 = none */
	uint32_t type_off, reason_off;
};

struct bulk_response {
	int http_status;
	enum bulk_outcome outcome;
	enum bulk_proto_err proto; /* the first protocol error, BULK_PROTO_OK when none */
	size_t nitems;             /* items sent = entries in item[] */
	size_t n_ack, n_duplicate, n_retry, n_dead;
	size_t n_bad_items; /* items with no usable status (retry) */
	size_t n_extra;     /* items beyond nitems (ignored) */
	/* The whole-request error (top-level "error": object or string), if any. */
	uint32_t err_type_off, err_reason_off;
	uint16_t err_type_len, err_reason_len;
	struct bulk_item_result *item; /* nitems entries, sized from the request only */
	size_t item_cap;
	struct strbuf text; /* error texts: valid UTF-8, capped, not NUL-terminated */
};

void bulk_response_init(struct bulk_response *r);
/* Release the memory; r is left initialised. NULL is a no-op. */
void bulk_response_free(struct bulk_response *r);

/* Classify the answer to a request of `nitems` documents. Borrows body for the call.
 * Every item gets exactly one verdict and the four counters add up to nitems.
 *   2xx, "errors":false  → all ACK without reading the items (fast path)
 *   2xx otherwise        → per item: 2xx ACK, 409 DUPLICATE, 429/5xx/1xx/3xx RETRY,
 *                          other 4xx DEAD (type and reason kept); an item missing or
 *                          without an integer status → RETRY and r->proto set
 *   413                  → BULK_OUT_SPLIT (nitems == 1: that item DEAD)
 *   any other status     → BULK_OUT_RETRY, all RETRY
 * Numbers in the body never size anything. Returns 0, or -ENOMEM when item[] could
 * not grow (then nitems is 0 and the caller retries the whole range). */
int bulk_response_parse(struct bulk_response *r, int http_status, const char *body, size_t len,
			size_t nitems);

/* Error texts of item i (NULL / 0 when none). */
static inline const char *bulk_item_err_type(const struct bulk_response *r, size_t i, size_t *len)
{
	*len = r->item[i].type_len;
	return *len ? r->text.p + r->item[i].type_off : NULL;
}

static inline const char *bulk_item_err_reason(const struct bulk_response *r, size_t i, size_t *len)
{
	*len = r->item[i].reason_len;
	return *len ? r->text.p + r->item[i].reason_off : NULL;
}

const char *bulk_verdict_name(enum bulk_verdict v);
const char *bulk_proto_err_name(enum bulk_proto_err e);

#endif
