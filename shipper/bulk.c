/* bulk.c — Elasticsearch `_bulk` bodies and verdicts, without I/O (bulk.h).
 *
 * Spec: elastic/elasticsearch-specification specification/_global/bulk/
 * {BulkRequest.ts,BulkResponse.ts,types.ts}; retry rules as Beats' applyItemStatus
 * (docs/reference/ecosystem.md §2.2).
 *
 * Request body, one item per document (every line ends with '\n', the last too):
 *
 *   item[i].off ─► {"create":{"_index":"packetbeat-2024.05.01"}}\n
 *                  {"@timestamp":"2024-05-01T12:00:00.123Z",...}\n
 *   item[i+1].off ─► ...
 *
 * Items are contiguous and in order, so items [from, to) are one byte range of the
 * body: a 413 split costs nothing and a retry compacts the body in place.
 *
 * Response (BulkResponse.ts), filtered by filter_path=errors,items.*.status,items.*.error
 * or not; items are in request order, each a one-member object named after the op:
 *
 *   {"took":12,"errors":true,"items":[{"create":{"_index":"…","_type":"_doc",
 *     "status":400,"error":{"type":"…","reason":"…","caused_by":{…}}}}, …]}
 *
 * The response is read by a small validating scanner (no tree, no allocation): it
 * looks only at errors, items[*].<op>.status/error.type/error.reason and the
 * whole-request error, and skips everything else with a depth cap. It is several times
 * faster than building a json-c tree of 1,600 items and bounds memory by the request.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <isa-l/igzip_lib.h>
#include <libdeflate.h>
#include <pthread.h>

#include "hostbeat/mem.h"
#include "shipper/bulk.h"

#define NS_PER_SEC_I 1000000000LL
#define BULK_MAX_BODY (1UL << 30) /* ES' own cap is 2 GiB */

/* ---- index names ------------------------------------------------------------ */

struct ymdh {
	long year;
	unsigned mon, day, hour;
};

/* UTC civil time of ts_ns (floor division: -1 ns is 1969-12-31T23:59:59); H. Hinnant's
 * days-to-civil algorithm on signed days. */
static void utc_ymdh(int64_t ts_ns, struct ymdh *t)
{
	int64_t secs = ts_ns / NS_PER_SEC_I, days, sod, z, era, doe, yoe, doy, mp;

	if (ts_ns % NS_PER_SEC_I < 0)
		secs--;
	days = secs / 86400;
	sod = secs % 86400;
	if (sod < 0) {
		sod += 86400;
		days--;
	}
	z = days + 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	t->day = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
	t->mon = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
	t->year = (long)(yoe + era * 400 + (t->mon <= 2));
	t->hour = (unsigned)(sod / 3600);
}

/* Output of the pattern walker; size 0 = validation only. */
struct ixw {
	char *out;
	size_t size, len;
	bool over;
};

static void ix_put(struct ixw *w, char c)
{
	if (w->size && w->len < w->size - 1)
		w->out[w->len] = c;
	else if (w->size)
		w->over = true;
	w->len++;
}

/* Unpadded or zero-padded to `width` digits (v >= 0). */
static void ix_num(struct ixw *w, long v, unsigned width)
{
	char d[24];
	unsigned n = 0;

	do {
		d[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v && n < sizeof(d));
	while (n < width)
		d[n++] = '0';
	while (n)
		ix_put(w, d[--n]);
}

/* Why byte c cannot be in an index name, or NULL. */
static const char *ix_bad_char(unsigned char c)
{
	if (c < 0x20 || c == 0x7f)
		return "control character in index name";
	if (c >= 'A' && c <= 'Z')
		return "index names must be lowercase";
	if (strchr("\\/*?\"<>|,#: ", c))
		return "character not allowed in index names (\\ / * ? \" < > | , # : space)";
	return NULL;
}

struct ix_err {
	const char *why;
	size_t off, len; /* the offending span of the pattern */
};

static bool ix_fail(struct ix_err *e, const char *why, size_t off, size_t len)
{
	e->why = why;
	e->off = off;
	e->len = len;
	return false;
}

/* One date token: `n` repetitions of letter c. */
static bool ix_date_token(struct ixw *w, const struct ymdh *t, char c, size_t n, size_t off,
			  struct ix_err *e)
{
	long v;
	unsigned width = (unsigned)n;

	switch (c) {
	case 'y':
		if (n != 4 && n != 2)
			return ix_fail(e, "year must be yyyy or yy", off, n);
		v = t ? (n == 2 ? t->year % 100 : t->year) : 0;
		break;
	case 'M':
		if (n > 2)
			return ix_fail(e, "month names are not supported; use MM or M", off, n);
		v = t ? t->mon : 0;
		break;
	case 'd':
		if (n > 2)
			return ix_fail(e, "day must be dd or d", off, n);
		v = t ? t->day : 0;
		break;
	case 'H':
		if (n > 2)
			return ix_fail(e, "hour must be HH or H", off, n);
		v = t ? t->hour : 0;
		break;
	case 'Y':
		return ix_fail(e, "YYYY is the week-based year; use yyyy", off, n);
	case 'D':
		return ix_fail(e, "D is the day of the year; use dd", off, n);
	case 'm':
		return ix_fail(e, "m is minutes (not supported); the month is MM", off, n);
	default:
		return ix_fail(e, "unsupported date token (yyyy yy MM M dd d HH H)", off, n);
	}
	ix_num(w, v, width);
	return true;
}

static bool is_letter(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* The body of %{+FMT}: pattern[*i] is the first byte after '+'. */
static bool ix_date(const char *pat, size_t *i, struct ixw *w, const struct ymdh *t,
		    struct ix_err *e)
{
	size_t start = *i - 3, j = *i;

	if (pat[j] == '}')
		return ix_fail(e, "empty date format in %{+}", start, 4);
	while (pat[j] != '}') {
		char c = pat[j];
		const char *why;

		if (!c)
			return ix_fail(e, "unterminated %{+...}", start, j - start);
		if (c == '\'' && pat[j + 1] == '\'') { /* '' = one quote */
			ix_put(w, '\'');
			j += 2;
		} else if (c == '\'') { /* 'quoted literal' */
			size_t q = j++;

			while (pat[j] != '\'' || pat[j + 1] == '\'') {
				if (!pat[j])
					return ix_fail(e, "unterminated quote in date format", q,
						       j - q);
				if ((why = ix_bad_char((unsigned char)pat[j])))
					return ix_fail(e, why, j, 1);
				ix_put(w, pat[j]);
				j += pat[j] == '\'' ? 2 : 1;
			}
			j++;
		} else if (is_letter(c)) {
			size_t n = 1;

			while (pat[j + n] == c)
				n++;
			if (!ix_date_token(w, t, c, n, j, e))
				return false;
			j += n;
		} else {
			if ((why = ix_bad_char((unsigned char)c)))
				return ix_fail(e, why, j, 1);
			ix_put(w, c);
			j++;
		}
	}
	*i = j + 1;
	return true;
}

#define IX_VERSION "%{[agent.version]}"

/* Walk `pat`; t == NULL validates only (then version is not needed). */
static bool ix_walk(const char *pat, const struct ymdh *t, const char *version, struct ixw *w,
		    struct ix_err *e)
{
	size_t i = 0;
	const char *why;

	if (!*pat)
		return ix_fail(e, "empty index name", 0, 0);
	if (strchr("-_+", pat[0]))
		return ix_fail(e, "index names must not start with - _ or +", 0, 1);
	if (!strcmp(pat, ".") || !strcmp(pat, ".."))
		return ix_fail(e, "index name cannot be . or ..", 0, strlen(pat));
	while (pat[i]) {
		if (pat[i] == '%' && pat[i + 1] == '{' && pat[i + 2] == '+') {
			i += 3;
			if (!ix_date(pat, &i, w, t, e))
				return false;
		} else if (pat[i] == '%' && pat[i + 1] == '{') {
			size_t n = strlen(IX_VERSION);

			if (strncmp(pat + i, IX_VERSION, n)) {
				const char *close = strchr(pat + i, '}');

				return ix_fail(
				    e,
				    "unsupported %{...}: only %{+yyyy.MM.dd}-style dates "
				    "and %{[agent.version]}",
				    i, close ? (size_t)(close - pat) + 1 - i : strlen(pat + i));
			}
			for (const char *v = t ? version : ""; *v; v++) {
				char c = *v >= 'A' && *v <= 'Z' ? (char)(*v - 'A' + 'a') : *v;

				if (ix_bad_char((unsigned char)c))
					return ix_fail(e,
						       "agent version holds a character not "
						       "allowed in index names",
						       i, n);
				ix_put(w, c);
			}
			i += n;
		} else {
			if ((why = ix_bad_char((unsigned char)pat[i])))
				return ix_fail(e, why, i, 1);
			ix_put(w, pat[i++]);
		}
	}
	return true;
}

int bulk_index_validate(const char *pattern, size_t *err_off, char *msg, size_t msg_size)
{
	struct ixw w = {0};
	struct ix_err e = {0};

	if (err_off)
		*err_off = 0;
	if (msg && msg_size)
		msg[0] = '\0';
	if (!pattern) {
		if (msg && msg_size)
			snprintf(msg, msg_size, "no index pattern");
		return -EINVAL;
	}
	if (ix_walk(pattern, NULL, NULL, &w, &e))
		return 0;
	if (err_off)
		*err_off = e.off;
	if (msg && msg_size) {
		if (e.len)
			snprintf(msg, msg_size, "%s: \"%.*s\"", e.why,
				 (int)(e.len > 40 ? 40 : e.len), pattern + e.off);
		else
			snprintf(msg, msg_size, "%s", e.why);
	}
	return -EINVAL;
}

int bulk_index_format(const char *pattern, int64_t ts_ns, const char *version, char *out,
		      size_t size)
{
	struct ixw w = {.out = out, .size = size};
	struct ix_err e;
	struct ymdh t;

	if (!pattern || !out || !size)
		return -EINVAL;
	out[0] = '\0';
	if (!version && strstr(pattern, IX_VERSION))
		return -EINVAL;
	utc_ymdh(ts_ns, &t);
	if (!ix_walk(pattern, &t, version, &w, &e))
		return -EINVAL;
	if (w.over || w.len > BULK_INDEX_MAX) {
		out[0] = '\0';
		return -ENAMETOOLONG;
	}
	out[w.len] = '\0';
	/* the version may have made "." or "..", an empty name or a bad first byte */
	if (!w.len || strchr("-_+", out[0]) || !strcmp(out, ".") || !strcmp(out, "..")) {
		out[0] = '\0';
		return -EINVAL;
	}
	return (int)w.len;
}

#define NS_PER_HOUR (3600 * NS_PER_SEC_I)

int bulk_index_cached(struct bulk_index_cache *c, const char *pattern, int64_t ts_ns,
		      const char *version, const char **name)
{
	int64_t t;

	if (ts_ns < c->lo || ts_ns >= c->hi) {
		t = ts_ns / NS_PER_HOUR * NS_PER_HOUR; /* toward zero: never overflows */
		if (ts_ns % NS_PER_HOUR < 0) {         /* before 1970: the hour is [t - 1h, t) */
			c->hi = t;
			c->lo = t < INT64_MIN + NS_PER_HOUR ? INT64_MIN : t - NS_PER_HOUR;
		} else {
			c->lo = t;
			c->hi = t > INT64_MAX - NS_PER_HOUR ? INT64_MAX : t + NS_PER_HOUR;
		}
		c->len = bulk_index_format(pattern, ts_ns, version, c->name, sizeof(c->name));
	}
	*name = c->name;
	return c->len;
}

/* ---- request bodies ----------------------------------------------------------- */

struct bulk_batch {
	struct strbuf body; /* raw NDJSON of every item */
	struct bulk_item *item;
	size_t n, cap;
	size_t max_docs, max_bytes;
	int level;
	/* made at the first compressed payload: ISA-L for the fast levels, libdeflate
	 * for the ones asked for their ratio (see GZIP_ISAL_MAX) */
	struct isal_zstream *isal;
	uint8_t *isal_buf;
	struct libdeflate_compressor *z;
	struct strbuf gz; /* the last compressed payload */
};

/* compression_level 1..GZIP_ISAL_MAX goes to ISA-L's igzip (level 1), the rest to
 * libdeflate at the same level. On the bench's NDJSON (2026-12-03, 1.8 MB batches)
 * igzip level 1 compresses at 2.7x libdeflate level 1's speed for 96 % of its ratio
 * (9.8 vs 10.2); levels 4..9 are for links where bytes cost more than CPU, and there
 * libdeflate's ratio is the better one. */
#define GZIP_ISAL_MAX 3
#define ISAL_LEVEL 1
#define ISAL_BUF_SIZE ISAL_DEF_LVL1_DEFAULT

/* libdeflate's allocations go through mem.h too (failure injection). */
static void deflate_alloc_init(void)
{
	libdeflate_set_memory_allocator(hb_malloc, hb_free);
}

struct bulk_batch *bulk_batch_new(size_t max_docs, size_t max_bytes, int compression_level)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	struct bulk_batch *b;

	if (!max_docs || !max_bytes || max_bytes > BULK_MAX_BODY || compression_level < 0 ||
	    compression_level > 9)
		return NULL;
	pthread_once(&once, deflate_alloc_init);
	b = hb_calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	strbuf_init(&b->body);
	strbuf_init(&b->gz);
	b->max_docs = max_docs;
	b->max_bytes = max_bytes;
	b->level = compression_level;
	return b;
}

void bulk_batch_free(struct bulk_batch *b)
{
	if (!b)
		return;
	libdeflate_free_compressor(b->z);
	hb_free(b->isal);
	hb_free(b->isal_buf);
	strbuf_free(&b->body);
	strbuf_free(&b->gz);
	hb_free(b->item);
	hb_free(b);
}

void bulk_batch_reset(struct bulk_batch *b)
{
	b->n = 0;
	strbuf_reset(&b->body);
	strbuf_reset(&b->gz);
}

size_t bulk_batch_count(const struct bulk_batch *b)
{
	return b->n;
}

size_t bulk_batch_bytes(const struct bulk_batch *b)
{
	return b->body.len;
}

struct bulk_item *bulk_batch_item(struct bulk_batch *b, size_t i)
{
	return i < b->n ? &b->item[i] : NULL;
}

/* Bytes of s once JSON-escaped ("\"" "\\" and control characters; the rest as is). */
static size_t esc_len(const char *s)
{
	size_t n = 0;

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		n += c == '"' || c == '\\' ? 2 : c < 0x20 ? 6 : 1;
	}
	return n;
}

static char *esc_put(char *d, const char *s)
{
	static const char hex[] = "0123456789abcdef";

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			*d++ = '\\';
			*d++ = (char)c;
		} else if (c < 0x20) {
			memcpy(d, "\\u00", 4);
			d[4] = hex[c >> 4];
			d[5] = hex[c & 15];
			d += 6;
		} else {
			*d++ = (char)c;
		}
	}
	return d;
}

#define ACT_PRE "{\"create\":{\"_index\":\""
#define ACT_ID "\",\"_id\":\""
#define ACT_PIPE "\",\"pipeline\":\""
#define ACT_END "\"}}\n"
#define LIT(d, s) (memcpy((d), (s), sizeof(s) - 1), (d) + sizeof(s) - 1)

int bulk_batch_add(struct bulk_batch *b, const char *index, const char *pipeline, const char *doc,
		   size_t len, void *user)
{
	return bulk_batch_add_id(b, index, NULL, pipeline, doc, len, user);
}

int bulk_batch_add_id(struct bulk_batch *b, const char *index, const char *id, const char *pipeline,
		      const char *doc, size_t len, void *user)
{
	size_t ilen, plen = 0, idlen = 0, line;
	struct bulk_item *it;
	char *d;

	if (!b || !index || !*index || !doc || !len || memchr(doc, '\n', len))
		return -EINVAL;
	if (b->n >= b->max_docs)
		return -ENOSPC;
	ilen = esc_len(index);
	if (pipeline && *pipeline)
		plen = sizeof(ACT_PIPE) - 1 + esc_len(pipeline);
	if (id && *id)
		idlen = sizeof(ACT_ID) - 1 + esc_len(id);
	line = sizeof(ACT_PRE) - 1 + ilen + idlen + plen + sizeof(ACT_END) - 1;
	if (len >= b->max_bytes || b->max_bytes - len - 1 < line) /* -1: the doc's '\n' */
		return -E2BIG;
	line += len + 1;
	if (b->max_bytes - b->body.len < line)
		return -ENOSPC;
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 64;
		struct bulk_item *ni;

		if (cap > b->max_docs)
			cap = b->max_docs;
		ni = hb_realloc(b->item, cap * sizeof(*ni));
		if (!ni)
			return -ENOMEM;
		b->item = ni;
		b->cap = cap;
	}
	if (strbuf_grow(&b->body, line) < 0) {
		b->body.err = false; /* the batch is unchanged and still usable */
		return -ENOMEM;
	}
	d = b->body.p + b->body.len;
	d = LIT(d, ACT_PRE);
	d = esc_put(d, index);
	if (idlen) {
		d = LIT(d, ACT_ID);
		d = esc_put(d, id);
	}
	if (plen) {
		d = LIT(d, ACT_PIPE);
		d = esc_put(d, pipeline);
	}
	d = LIT(d, ACT_END);
	memcpy(d, doc, len);
	d[len] = '\n';
	it = &b->item[b->n++];
	it->off = b->body.len;
	it->len = line;
	it->user = user;
	it->retries = 0;
	it->verdict = BULK_RETRY;
	b->body.len += line;
	return 0;
}

const char *bulk_batch_raw(const struct bulk_batch *b)
{
	return b->body.p;
}

/* One gzip member of raw into b->gz with igzip; the output grows while igzip asks for
 * room (incompressible input comes out as stored blocks, a little larger). */
static int gzip_isal(struct bulk_batch *b, const char *raw, size_t raw_len)
{
	struct isal_zstream *s;

	if (raw_len > UINT32_MAX)
		return -EINVAL;
	if (!b->isal) {
		b->isal = hb_malloc(sizeof(*b->isal));
		b->isal_buf = hb_malloc(ISAL_BUF_SIZE);
		if (!b->isal || !b->isal_buf) {
			hb_free(b->isal);
			hb_free(b->isal_buf);
			b->isal = NULL;
			b->isal_buf = NULL;
			return -ENOMEM;
		}
	}
	s = b->isal;
	isal_deflate_init(s);
	s->level = ISAL_LEVEL;
	s->level_buf = b->isal_buf;
	s->level_buf_size = ISAL_BUF_SIZE;
	s->gzip_flag = IGZIP_GZIP;
	s->end_of_stream = 1;
	s->flush = NO_FLUSH;
	s->next_in = (uint8_t *)(uintptr_t)raw;
	s->avail_in = (uint32_t)raw_len;
	for (;;) {
		size_t room = raw_len / 2 + 4096;

		if (strbuf_grow(&b->gz, room) < 0)
			return -ENOMEM;
		room = b->gz.cap - b->gz.len;
		if (room > UINT32_MAX)
			room = UINT32_MAX;
		s->next_out = (uint8_t *)b->gz.p + b->gz.len;
		s->avail_out = (uint32_t)room;
		if (isal_deflate(s) != COMP_OK)
			return -EIO;
		b->gz.len = (size_t)((char *)s->next_out - b->gz.p);
		if (s->internal_state.state == ZSTATE_END)
			return 0;
		if (s->avail_out) /* neither done nor out of room: igzip is stuck */
			return -EIO;
	}
}

static int gzip_libdeflate(struct bulk_batch *b, const char *raw, size_t raw_len)
{
	size_t bound;

	if (!b->z) {
		b->z = libdeflate_alloc_compressor(b->level);
		if (!b->z)
			return -ENOMEM;
	}
	bound = libdeflate_gzip_compress_bound(b->z, raw_len);
	if (strbuf_grow(&b->gz, bound) < 0)
		return -ENOMEM;
	/* one call; the output has the bound's room, so 0 (no room) cannot happen */
	b->gz.len = libdeflate_gzip_compress(b->z, raw, raw_len, b->gz.p, bound);
	return b->gz.len ? 0 : -EIO;
}

int bulk_batch_payload(struct bulk_batch *b, size_t from, size_t to, struct bulk_payload *out)
{
	const char *raw;
	size_t raw_len;
	int rc;

	if (!b || !out || from >= to || to > b->n)
		return -EINVAL;
	raw = b->body.p + b->item[from].off;
	raw_len = b->item[to - 1].off + b->item[to - 1].len - b->item[from].off;
	out->raw_len = raw_len;
	out->gzip = b->level > 0;
	if (!b->level) {
		out->p = raw;
		out->len = raw_len;
		return 0;
	}
	strbuf_reset(&b->gz);
	rc = b->level <= GZIP_ISAL_MAX ? gzip_isal(b, raw, raw_len)
				       : gzip_libdeflate(b, raw, raw_len);
	if (rc < 0)
		return rc;
	out->p = b->gz.p;
	out->len = b->gz.len;
	return 0;
}

void bulk_batch_record(struct bulk_batch *b, size_t from, const struct bulk_response *r)
{
	for (size_t i = 0; i < r->nitems && from < b->n && i < b->n - from; i++)
		b->item[from + i].verdict = r->item[i].verdict;
}

size_t bulk_batch_retain(struct bulk_batch *b)
{
	size_t w = 0, pos = 0;

	for (size_t i = 0; i < b->n; i++) {
		struct bulk_item it = b->item[i];

		if (it.verdict != BULK_RETRY)
			continue;
		if (it.off != pos) /* pos < it.off: kept items only move down */
			memmove(b->body.p + pos, b->body.p + it.off, it.len);
		it.off = pos;
		it.retries++;
		b->item[w++] = it;
		pos += it.len;
	}
	b->n = w;
	b->body.len = pos;
	return w;
}

/* ---- response scanner ---------------------------------------------------------- */

struct scan {
	const unsigned char *p, *end;
	bool bad; /* sticky: the JSON is malformed (or too deep) from here on */
};

/* A string token: the raw bytes between the quotes, escapes not decoded. */
struct jstr {
	const unsigned char *p;
	size_t len;
	bool esc;
};

struct jnum {
	uint64_t v; /* saturates at JNUM_BIG */
	bool is_int, neg;
};

#define JNUM_BIG 1000000000ULL

static int peek_slow(struct scan *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
		s->p++;
	return !s->bad && s->p < s->end ? *s->p : -1;
}

/* The next non-blank byte (not consumed), or -1 at the end or after an error. */
static inline int peek(struct scan *s)
{
	if (s->p<s->end && * s->p> ' ' && !s->bad)
		return *s->p;
	return peek_slow(s);
}

static bool eat(struct scan *s, char c)
{
	if (peek(s) != (unsigned char)c)
		return false;
	s->p++;
	return true;
}

static bool is_hex(unsigned char c)
{
	return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

/* At a '"': the string up to the closing quote, escapes validated. */
static bool scan_string(struct scan *s, struct jstr *out)
{
	const unsigned char *p = s->p + 1, *end = s->end;

	out->esc = false;
	while (p < end) {
		unsigned char c = *p;

		if (c == '"') {
			out->p = s->p + 1;
			out->len = (size_t)(p - out->p);
			s->p = p + 1;
			return true;
		}
		if (c < 0x20)
			break;
		if (c == '\\') {
			out->esc = true;
			if (end - p < 2)
				break;
			c = p[1];
			if (c == 'u') {
				if (end - p < 6 || !is_hex(p[2]) || !is_hex(p[3]) ||
				    !is_hex(p[4]) || !is_hex(p[5]))
					break;
				p += 6;
				continue;
			}
			if (!strchr("\"\\/bfnrt", c) || !c)
				break;
			p += 2;
			continue;
		}
		p++;
	}
	s->bad = true;
	return false;
}

/* A JSON number; values above JNUM_BIG saturate (never trusted for anything but a
 * range check). */
static bool scan_number(struct scan *s, struct jnum *n)
{
	const unsigned char *p = s->p, *end = s->end;

	n->v = 0;
	n->is_int = true;
	n->neg = false;
	if (p < end && *p == '-') {
		n->neg = true;
		p++;
	}
	if (p < end && *p == '0') {
		p++;
	} else if (p < end && *p >= '1' && *p <= '9') {
		for (; p < end && *p >= '0' && *p <= '9'; p++)
			n->v = n->v >= JNUM_BIG ? JNUM_BIG : n->v * 10 + (uint64_t)(*p - '0');
	} else {
		goto bad;
	}
	if (p < end && *p == '.') {
		n->is_int = false;
		if (++p >= end || *p < '0' || *p > '9')
			goto bad;
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		n->is_int = false;
		if (++p < end && (*p == '+' || *p == '-'))
			p++;
		if (p >= end || *p < '0' || *p > '9')
			goto bad;
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	}
	s->p = p;
	return true;
bad:
	s->bad = true;
	return false;
}

static bool scan_lit(struct scan *s, const char *lit, size_t n)
{
	if ((size_t)(s->end - s->p) < n || memcmp(s->p, lit, n)) {
		s->bad = true;
		return false;
	}
	s->p += n;
	return true;
}

/* Key of an object member and its ':'. */
static bool scan_key(struct scan *s, struct jstr *k)
{
	if (peek(s) != '"') {
		s->bad = true;
		return false;
	}
	if (!scan_string(s, k))
		return false;
	if (!eat(s, ':')) {
		s->bad = true;
		return false;
	}
	return true;
}

/* After a member or element: ',' → true (another follows); the closer → false. */
static bool next_member(struct scan *s, char close)
{
	int c = peek(s);

	if (c == ',') {
		s->p++;
		return true;
	}
	if (c == (unsigned char)close)
		s->p++;
	else
		s->bad = true;
	return false;
}

/* Validate and skip one value at nesting `depth` (the top-level object is 1). */
static void skip_value(struct scan *s, unsigned depth)
{
	struct jstr js;
	struct jnum jn;
	int c = peek(s);

	if (depth > BULK_JSON_MAX_DEPTH) {
		s->bad = true;
		return;
	}
	switch (c) {
	case '{':
		s->p++;
		if (eat(s, '}'))
			return;
		do {
			if (!scan_key(s, &js))
				return;
			skip_value(s, depth + 1);
		} while (!s->bad && next_member(s, '}'));
		return;
	case '[':
		s->p++;
		if (eat(s, ']'))
			return;
		do
			skip_value(s, depth + 1);
		while (!s->bad && next_member(s, ']'));
		return;
	case '"':
		scan_string(s, &js);
		return;
	case 't':
		scan_lit(s, "true", 4);
		return;
	case 'f':
		scan_lit(s, "false", 5);
		return;
	case 'n':
		scan_lit(s, "null", 4);
		return;
	default:
		if (c == '-' || (c >= '0' && c <= '9'))
			scan_number(s, &jn);
		else
			s->bad = true;
		return;
	}
}

/* ---- decoding strings into valid, capped UTF-8 ------------------------------------ */

/* Length of the valid UTF-8 sequence at p (RFC 3629: no overlongs, no surrogates,
 * <= U+10FFFF), or 0. */
static size_t utf8_seq(const unsigned char *p, size_t left)
{
	unsigned char c = p[0], lo = 0x80, hi = 0xbf;
	size_t n;

	if (c < 0x80)
		return 1;
	if (c < 0xc2 || c > 0xf4)
		return 0;
	n = c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	if (left < n || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

static unsigned hex4(const unsigned char *p)
{
	unsigned v = 0;

	for (int i = 0; i < 4; i++) {
		unsigned char c = p[i];

		v = v << 4 | (unsigned)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
	}
	return v;
}

static size_t utf8_put(unsigned cp, unsigned char *d)
{
	if (cp < 0x80) {
		d[0] = (unsigned char)cp;
		return 1;
	}
	if (cp < 0x800) {
		d[0] = (unsigned char)(0xc0 | cp >> 6);
		d[1] = (unsigned char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		d[0] = (unsigned char)(0xe0 | cp >> 12);
		d[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
		d[2] = (unsigned char)(0x80 | (cp & 0x3f));
		return 3;
	}
	d[0] = (unsigned char)(0xf0 | cp >> 18);
	d[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
	d[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
	d[3] = (unsigned char)(0x80 | (cp & 0x3f));
	return 4;
}

/* Decode a scanned string into d (at most cap bytes, whole characters only): escapes
 * resolved, surrogate pairs joined, lone surrogates and invalid bytes → U+FFFD.
 * Returns the bytes written. The escapes were validated by scan_string(). */
static size_t jstr_decode(const struct jstr *js, unsigned char *d, size_t cap)
{
	const unsigned char *p = js->p, *end = js->p + js->len;
	unsigned char ch[4];
	size_t n = 0;

	while (p < end) {
		size_t k;
		const unsigned char *src = ch;

		if (*p < 0x80 && *p != '\\') { /* plain ASCII, the common case */
			if (n == cap)
				break;
			d[n++] = *p++;
			continue;
		}
		if (*p == '\\') {
			unsigned cp;

			switch (p[1]) {
			case 'b':
				cp = '\b';
				break;
			case 'f':
				cp = '\f';
				break;
			case 'n':
				cp = '\n';
				break;
			case 'r':
				cp = '\r';
				break;
			case 't':
				cp = '\t';
				break;
			case 'u':
				cp = hex4(p + 2);
				break;
			default: /* " \ / */
				cp = p[1];
				break;
			}
			p += p[1] == 'u' ? 6 : 2;
			if (cp >= 0xd800 && cp <= 0xdbff && end - p >= 6 && p[0] == '\\' &&
			    p[1] == 'u') {
				unsigned lo = hex4(p + 2);

				if (lo >= 0xdc00 && lo <= 0xdfff) {
					cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
					p += 6;
				}
			}
			if (cp >= 0xd800 && cp <= 0xdfff)
				cp = 0xfffd;
			k = utf8_put(cp, ch);
		} else if ((k = utf8_seq(p, (size_t)(end - p)))) {
			src = p;
			p += k;
		} else {
			k = utf8_put(0xfffd, ch);
			p++;
		}
		if (cap - n < k)
			break;
		memcpy(d + n, src, k);
		n += k;
	}
	return n;
}

/* Keys we look for are short and plain; an escaped key is decoded first. */
static bool key_is(const struct jstr *k, const char *lit, size_t n)
{
	unsigned char buf[32];

	if (!k->esc)
		return k->len == n && !memcmp(k->p, lit, n);
	return jstr_decode(k, buf, sizeof(buf)) == n && !memcmp(buf, lit, n);
}

#define KEY_IS(k, lit) key_is((k), (lit), sizeof(lit) - 1)

/* Copy a string into r->text (capped); off/len stay 0 when memory is short. */
static void keep_text(struct bulk_response *r, const struct jstr *js, size_t cap, uint32_t *off,
		      uint16_t *len)
{
	size_t n;

	if (r->text.len > UINT32_MAX - cap || strbuf_grow(&r->text, cap) < 0)
		return;
	n = jstr_decode(js, (unsigned char *)r->text.p + r->text.len, cap);
	*off = (uint32_t)r->text.len;
	*len = (uint16_t)n;
	r->text.len += n;
}

/* ---- response walk ---------------------------------------------------------------- */

/* Where an error's texts go; keep == false for items beyond the request. Each text
 * is kept once per item, so the arena is bounded by the request, not the response. */
struct err_dst {
	uint32_t *type_off, *reason_off;
	uint16_t *type_len, *reason_len;
	bool keep;
};

/* "error": {"type":…, "reason":…, …} or (old servers, proxies) a plain string. */
static void parse_error(struct scan *s, struct bulk_response *r, const struct err_dst *e,
			unsigned depth)
{
	struct jstr k, v;
	int c = peek(s);

	if (c == '"') {
		if (scan_string(s, &v) && e->keep && !*e->reason_len)
			keep_text(r, &v, BULK_ERR_REASON_MAX, e->reason_off, e->reason_len);
		return;
	}
	if (c != '{' || depth > BULK_JSON_MAX_DEPTH) {
		skip_value(s, depth);
		return;
	}
	s->p++;
	if (eat(s, '}'))
		return;
	do {
		if (!scan_key(s, &k))
			return;
		if (peek(s) == '"' && KEY_IS(&k, "type")) {
			if (scan_string(s, &v) && e->keep && !*e->type_len)
				keep_text(r, &v, BULK_ERR_TYPE_MAX, e->type_off, e->type_len);
		} else if (peek(s) == '"' && KEY_IS(&k, "reason")) {
			if (scan_string(s, &v) && e->keep && !*e->reason_len)
				keep_text(r, &v, BULK_ERR_REASON_MAX, e->reason_off, e->reason_len);
		} else {
			skip_value(s, depth + 1);
		}
	} while (!s->bad && next_member(s, '}'));
}

static uint8_t verdict_of(unsigned status)
{
	if (status >= 200 && status < 300)
		return BULK_ACK;
	if (status == 409)
		return BULK_DUPLICATE;
	if (status == 429)
		return BULK_RETRY;
	if (status >= 400 && status < 500)
		return BULK_DEAD;
	return BULK_RETRY; /* 5xx, and 1xx/3xx which make no sense for an item */
}

/* The op object of an item: {"_index":…,"_type":"_doc","status":201,"error":{…}}. */
static void parse_op(struct scan *s, struct bulk_response *r, struct bulk_item_result *res,
		     bool keep, unsigned depth)
{
	struct err_dst e = {&res->type_off, &res->reason_off, &res->type_len, &res->reason_len,
			    keep};
	struct jstr k;
	struct jnum n;

	s->p++; /* '{' */
	if (eat(s, '}'))
		return;
	do {
		if (!scan_key(s, &k))
			return;
		if (KEY_IS(&k, "status")) {
			int c = peek(s);

			if (c == '-' || (c >= '0' && c <= '9')) {
				if (scan_number(s, &n) && n.is_int && !n.neg && n.v >= 100 &&
				    n.v <= 599)
					res->status = (uint16_t)n.v;
				else
					res->status = 0; /* 201.0, 1e3, -1, 99999999999: unusable */
			} else {
				res->status = 0; /* "201", null, {…}: wrong type */
				skip_value(s, depth + 1);
			}
		} else if (KEY_IS(&k, "error")) {
			parse_error(s, r, &e, depth + 1);
		} else {
			skip_value(s, depth + 1);
		}
	} while (!s->bad && next_member(s, '}'));
}

/* One element of "items": {"create":{…}} (any op name; the first object member). */
static void parse_item(struct scan *s, struct bulk_response *r, struct bulk_item_result *res,
		       bool keep, unsigned depth)
{
	struct jstr k;
	bool got_op = false;

	if (peek(s) != '{' || depth + 1 > BULK_JSON_MAX_DEPTH) {
		skip_value(s, depth);
		return;
	}
	s->p++;
	if (eat(s, '}'))
		return;
	do {
		if (!scan_key(s, &k))
			return;
		if (!got_op && peek(s) == '{') {
			parse_op(s, r, res, keep, depth + 1);
			got_op = true;
		} else {
			skip_value(s, depth + 1);
		}
	} while (!s->bad && next_member(s, '}'));
}

#define VERDICT_PENDING 0xff

static void set_proto(struct bulk_response *r, enum bulk_proto_err e)
{
	if (r->proto == BULK_PROTO_OK)
		r->proto = e;
}

/* "items": [...]; returns how many elements were read completely. */
static size_t parse_items(struct scan *s, struct bulk_response *r, unsigned depth)
{
	size_t idx = 0;

	s->p++; /* '[' */
	if (eat(s, ']'))
		return 0;
	do {
		struct bulk_item_result res = {.verdict = VERDICT_PENDING};
		bool keep = idx < r->nitems;

		parse_item(s, r, &res, keep, depth + 1);
		if (s->bad)
			break; /* an item cut off is not trusted, even with a status */
		if (keep) {
			res.verdict = res.status ? verdict_of(res.status) : BULK_RETRY;
			if (!res.status) {
				r->n_bad_items++;
				set_proto(r, BULK_PROTO_BAD_ITEM);
			}
			r->item[idx] = res;
		} else {
			r->n_extra++;
		}
		idx++;
	} while (!s->bad && next_member(s, ']'));
	return idx < r->nitems ? idx : r->nitems;
}

struct top {
	int errors; /* -1 absent or not a boolean, 0 false, 1 true */
	bool items_seen, fast;
	size_t matched;
};

static void parse_top(struct scan *s, struct bulk_response *r, bool ok, struct top *t)
{
	struct err_dst e = {&r->err_type_off, &r->err_reason_off, &r->err_type_len,
			    &r->err_reason_len, true};
	bool err_seen = false;
	struct jstr k;

	if (peek(s) != '{') {
		s->bad = true;
		return;
	}
	s->p++;
	if (eat(s, '}'))
		return;
	do {
		int c;

		if (!scan_key(s, &k))
			return;
		c = peek(s);
		if (KEY_IS(&k, "errors") && (c == 't' || c == 'f')) {
			t->errors = c == 't';
			scan_lit(s, c == 't' ? "true" : "false", c == 't' ? 4 : 5);
			if (ok && !t->errors && !s->bad && !t->items_seen) {
				t->fast = true; /* ES writes errors before items: stop here */
				return;
			}
		} else if (ok && !t->items_seen && c == '[' && KEY_IS(&k, "items")) {
			t->items_seen = true;
			t->matched = parse_items(s, r, 2);
		} else if (!err_seen && KEY_IS(&k, "error")) {
			err_seen = true;
			parse_error(s, r, &e, 2);
		} else {
			skip_value(s, 2);
		}
	} while (!s->bad && next_member(s, '}'));
}

void bulk_response_init(struct bulk_response *r)
{
	memset(r, 0, sizeof(*r));
	strbuf_init(&r->text);
}

void bulk_response_free(struct bulk_response *r)
{
	if (!r)
		return;
	hb_free(r->item);
	strbuf_free(&r->text);
	bulk_response_init(r);
}

int bulk_response_parse(struct bulk_response *r, int http_status, const char *body, size_t len,
			size_t nitems)
{
	struct scan s = {(const unsigned char *)body, (const unsigned char *)body, !body};
	struct top t = {.errors = -1};
	bool ok = http_status >= 200 && http_status < 300;
	uint8_t fill;

	r->http_status = http_status;
	r->proto = BULK_PROTO_OK;
	r->n_ack = r->n_duplicate = r->n_retry = r->n_dead = 0;
	r->n_bad_items = r->n_extra = 0;
	r->err_type_off = r->err_reason_off = 0;
	r->err_type_len = r->err_reason_len = 0;
	strbuf_reset(&r->text);
	if (nitems > r->item_cap) {
		struct bulk_item_result *ni = NULL;

		if (nitems <= SIZE_MAX / sizeof(*ni))
			ni = hb_realloc(r->item, nitems * sizeof(*ni));
		if (!ni) {
			r->nitems = 0;
			r->outcome = BULK_OUT_RETRY;
			return -ENOMEM;
		}
		r->item = ni;
		r->item_cap = nitems;
	}
	r->nitems = nitems;
	for (size_t i = 0; i < nitems; i++)
		r->item[i] = (struct bulk_item_result){.verdict = VERDICT_PENDING};
	if (body) {
		s.end += len;
		parse_top(&s, r, ok, &t);
	}

	if (http_status == 413) {
		r->outcome = BULK_OUT_SPLIT;
		fill = nitems == 1 ? BULK_DEAD : BULK_RETRY; /* one document: cannot split */
		if (nitems == 1)
			r->item[0].status = 413;
	} else if (!ok) {
		r->outcome = BULK_OUT_RETRY;
		fill = BULK_RETRY;
	} else {
		r->outcome = BULK_OUT_ITEMS;
		fill = BULK_RETRY;
		if (t.items_seen) {
			if (s.bad)
				set_proto(r, BULK_PROTO_MALFORMED);
			else if (t.matched < nitems)
				set_proto(r, BULK_PROTO_TOO_FEW);
			if (r->n_extra)
				set_proto(r, BULK_PROTO_TOO_MANY);
		} else if (t.fast) {
			fill = BULK_ACK;
		} else {
			set_proto(r, BULK_PROTO_UNREADABLE);
		}
	}
	for (size_t i = 0; i < nitems; i++) {
		struct bulk_item_result *it = &r->item[i];

		if (it->verdict == VERDICT_PENDING || !ok)
			it->verdict = fill;
		switch (it->verdict) {
		case BULK_ACK:
			r->n_ack++;
			break;
		case BULK_DUPLICATE:
			r->n_duplicate++;
			break;
		case BULK_DEAD:
			r->n_dead++;
			break;
		default:
			r->n_retry++;
			break;
		}
	}
	return 0;
}

const char *bulk_verdict_name(enum bulk_verdict v)
{
	switch (v) {
	case BULK_ACK:
		return "ack";
	case BULK_DUPLICATE:
		return "duplicate";
	case BULK_DEAD:
		return "dead";
	case BULK_RETRY:
		return "retry";
	}
	return "?";
}

const char *bulk_proto_err_name(enum bulk_proto_err e)
{
	switch (e) {
	case BULK_PROTO_OK:
		return "ok";
	case BULK_PROTO_UNREADABLE:
		return "unreadable response";
	case BULK_PROTO_MALFORMED:
		return "malformed JSON in items";
	case BULK_PROTO_TOO_FEW:
		return "fewer items than sent";
	case BULK_PROTO_TOO_MANY:
		return "more items than sent";
	case BULK_PROTO_BAD_ITEM:
		return "item without a usable status";
	}
	return "?";
}
