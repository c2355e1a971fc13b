/* fields.h — every field hostbeat writes, with its Elasticsearch type.
 *
 * One static table: the index templates are built from it (shipper/template.c), and
 * the documents the agent really writes are checked against it (tests/pcap/
 * test_fields.py reads it through tests/tools/fields_dump), so the mapping and the
 * documents cannot drift apart silently: a new ev_set_*() key without a table entry,
 * or a value of another JSON type than the entry's, fails that test.
 *
 * Paths are the dotted keys of the documents ("dns.question.name"). Members of an
 * array of objects are written under the array's path ("dns.answers.ttl"); the array
 * itself is an FT_OBJECT entry (a plain object, not `nested`, as Packetbeat maps it).
 * A path ending in ".*" stands for every key below it (free-form maps such as
 * http.request.headers.*, the self-metrics hostbeat.*): it becomes a dynamic template.
 *
 * Invariants (fields_check() verifies them; test_template runs it):
 *   - no path twice;
 *   - no path is both a leaf and the parent of another path ("a" and "a.b"): the
 *     encoder would drop the leaf (encode.key_conflicts) and ES would refuse one of
 *     the two documents;
 *   - only FT_OBJECT entries have children; wildcards end in ".*" and contain no other '*'.
 */
#ifndef HOSTBEAT_SHIPPER_FIELDS_H
#define HOSTBEAT_SHIPPER_FIELDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum field_type {
	FT_KEYWORD,      /* keyword, ignore_above 1024 (the default for strings) */
	FT_KEYWORD_TEXT, /* keyword + a `.text` text multi-field (ECS style: url.full) */
	FT_TEXT,         /* text + a `.keyword` keyword multi-field (raw request text) */
	FT_LONG,         /* counts, bytes, ports, durations (ns), ids */
	FT_DOUBLE,       /* load averages */
	FT_SCALED,       /* scaled_float, scaling_factor 1000: every *.pct / *_p fraction */
	FT_BOOLEAN,
	FT_IP,     /* IPv4/IPv6 literal */
	FT_DATE,   /* RFC 3339 (strict_date_optional_time) */
	FT_OBJECT, /* a plain object (arrays of objects, maps) */
	FT_NTYPES
};

#define FF_LEGACY 0x01 /* only with legacy_fields: Packetbeat 1.x / Topbeat 1.x names */
#define FF_RARE 0x02   /* no golden capture or live sample of test_fields.py carries it */

struct field_def {
	const char *path;   /* dotted; "a.b.*" = any key below a.b */
	uint8_t type;       /* enum field_type */
	uint8_t flags;      /* FF_* */
	const char *params; /* NULL, or more mapping members as JSON text, e.g.
			       "\"ignore_malformed\":true" (appended verbatim) */
};

extern const struct field_def fields_table[];
extern const size_t fields_count;

/* The Elasticsearch type name: "keyword", "text", "long", "double", "scaled_float",
 * "boolean", "ip", "date", "object"; NULL for an unknown value. */
const char *field_type_es_name(unsigned type);

/* True when the entry is a wildcard ("a.b.*"). */
bool field_is_wildcard(const struct field_def *f);

/* The entry a document path falls under: the exact entry, else the wildcard with the
 * longest prefix ("http.request.headers.x-a" → "http.request.headers.*"); NULL when
 * none. `path` is a leaf path of a document, array elements collapsed. */
const struct field_def *fields_lookup(const char *path);

/* Check the invariants above on `tab[0, n)` (pass fields_table, fields_count for the
 * real one). Returns 0, or -EINVAL with the first problem in msg (NUL-terminated when
 * size > 0). */
int fields_check(const struct field_def *tab, size_t n, char *msg, size_t size);

/* Segment-wise path order ('.' sorts below every other byte: "a" < "a.b" < "a-b"),
 * the order template.c writes properties in. strcmp-like result. */
int fields_path_cmp(const char *a, const char *b);

#endif
