/* fields_dump — print the field table (shipper/fields.h) as JSON lines, one entry a
 * line, for tests/pcap/test_fields.py:
 *
 *   {"path":"dns.answers.ttl","type":"long","legacy":false,"rare":false,"wildcard":false}
 *
 * `type` is the Elasticsearch type. Exit 1 (with the reason on stderr) when the table
 * breaks its own invariants (fields_check()).
 */
#include <stdio.h>

#include "shipper/fields.h"

int main(void)
{
	char msg[256];

	if (fields_check(fields_table, fields_count, msg, sizeof(msg)) < 0) {
		fprintf(stderr, "fields_dump: %s\n", msg);
		return 1;
	}
	for (size_t i = 0; i < fields_count; i++) {
		const struct field_def *f = &fields_table[i];

		/* paths are code literals: no character needs escaping */
		printf(
		    "{\"path\":\"%s\",\"type\":\"%s\",\"legacy\":%s,\"rare\":%s,\"wildcard\":%s}\n",
		    f->path, field_type_es_name(f->type), f->flags & FF_LEGACY ? "true" : "false",
		    f->flags & FF_RARE ? "true" : "false", field_is_wildcard(f) ? "true" : "false");
	}
	return fflush(stdout) == 0 ? 0 : 1;
}
