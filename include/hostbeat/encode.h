/* encode.h — the one place that writes JSON: struct event → one ECS 8 document.
 *
 * A transaction's typed envelope becomes @timestamp, type, status, event.*,
 * source/destination/client/server.*, network.* (with the Community ID), related.ip,
 * observer.ingress.interface.name; every event gets agent.*, host.name, ecs.version
 * and the configured tags. With legacy_fields the Packetbeat 1.x names are added
 * (client_ip, client_port, ip, port, bytes_in, bytes_out, responsetime, transport,
 * count). Then the protocol fields: dotted keys are nested into objects, EVF_ARRAY
 * elements with one key become a JSON array, member/elem become an array of objects.
 *
 * The output is deterministic: object members are sorted by key (byte order) at
 * every level. Strings are made valid UTF-8 (invalid sequences → U+FFFD) and capped
 * at max_string bytes; non-finite doubles are written as null. Anomalies are counted:
 * "encode.key_conflicts", "encode.truncated_strings", "encode.non_finite".
 *
 * Field keys and member names are static code strings; a byte 0x01 in them would
 * sort like '.'. A key that is both a value and an object prefix ("a" and "a.b")
 * keeps the object; a key set several times keeps its last value; "related.*"
 * arrays are deduplicated. For ICMP, client_port/server_port carry type/code: they
 * feed the Community ID and are not written as ports.
 *
 * Thread-safety: several threads may encode at once, with or without one template.
 * Cost: no allocation unless an event carries more than ~200 fields or ~30 tags.
 *
 * Fast path: an encode_tmpl built once from the options (encode_tmpl_new) holds the
 * per-agent text pre-rendered (agent.*, host.name, tags); with o->tmpl set the
 * envelope is written straight from the typed event, the protocol fields merged in
 * as it goes. The bytes are the same as without it (the general path, also taken
 * for the rare events the fast path does not handle: a protocol field on a derived
 * key or around one, a non-ASCII dataset or interface name).
 *
 * The template also holds a bounded cache of event "shapes" (the same protocol keys
 * in the same order and the same envelope: one kind of event from one parser): the
 * document text between the values, recorded from the first event of a shape; later
 * events of that shape are that text with their values put in. Same bytes; about
 * half the encoding time. Keys are taken as static strings, compared by pointer,
 * except keys in the event's arena (compared by text). Replaced entries are counted
 * in "encode.shape_evictions". One thread at a time uses the cache (an atomic flag,
 * never waited for); another thread meanwhile encodes without it.
 */
#ifndef HOSTBEAT_ENCODE_H
#define HOSTBEAT_ENCODE_H

#include <stdbool.h>
#include <stddef.h>

#include "hostbeat/config.h"
#include "hostbeat/event.h"
#include "hostbeat/strbuf.h"

#define ENCODE_DEFAULT_MAX_STRING (1024 * 1024)
#define ENCODE_INDEX_NAME_LEN 48 /* enough for every name encode_index_name() writes */

struct encode_tmpl;

/* Every pointer is borrowed and must outlive the encode calls; NULL strings are
 * simply not written. */
struct encode_opts {
	const char *agent_name;
	const char *agent_version;
	const char *agent_type; /* "hostbeat" */
	const char *agent_id;
	const char *agent_ephemeral_id;
	const char *host_name;
	const struct cfg_strlist *tags; /* NULL or empty: no `tags` */
	bool legacy_fields;
	size_t max_string; /* bytes of UTF-8 per string value; 0 = ENCODE_DEFAULT_MAX_STRING */
	/* NULL, or encode_tmpl_new() of these options: the fast path. A template whose
	 * agent/host/tags pointers are not this struct's is ignored. */
	const struct encode_tmpl *tmpl;
	/* For tests and benchmarks: do not use the template's shape cache (the bytes
	 * are the same with it). */
	bool no_shape_cache;
};

/* The per-options part of every document, pre-rendered, and the shape cache (about
 * 400 KiB, allocated at once; the kernel backs only the entries used): returns new —
 * caller frees with encode_tmpl_free() after the last encode_event() that uses it;
 * NULL when memory is short (encoding still works without it). Borrows nothing from
 * `o` but the identity of its agent/host/tags pointers, whose text must not change.
 * Any number of threads may use one template. */
struct encode_tmpl *encode_tmpl_new(const struct encode_opts *o);
void encode_tmpl_free(struct encode_tmpl *t);

/* Append one JSON document (no trailing newline) for `ev` to `out`. Borrows both.
 * Returns 0, -EINVAL (NULL argument), or -ENOMEM (out->err set); on error `out` is
 * cut back to its previous length. */
int encode_event(const struct event *ev, const struct encode_opts *o, struct strbuf *out);

/* The daily index the event belongs to, from the UTC date of ev->ts:
 * "packetbeat-YYYY.MM.DD" (transactions), "topbeat-YYYY.MM.DD" (metrics),
 * "hostbeat-metrics-YYYY.MM.DD" (the agent's own metrics). Always NUL-terminates
 * when size > 0; ENCODE_INDEX_NAME_LEN is always enough. */
void encode_index_name(const struct event *ev, char *buf, size_t size);

/* Re-indent one compact JSON document with 2 spaces per level (console pretty).
 * Appends to out; 0 or -ENOMEM. The input must be what encode_event() wrote. */
int encode_pretty(const char *json, size_t len, struct strbuf *out);

#endif
