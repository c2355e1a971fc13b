/* template.h — the index templates and the ILM policy hostbeat installs, as request
 * bodies built from the field table (shipper/fields.h). Pure: no I/O; the
 * Elasticsearch output sends what template_requests() lists.
 *
 * Spec: docs/reference/ecosystem.md §2.5 (composable + component templates, legacy
 * _template), §2.6 (ILM), §2.7–2.8 (versions, OpenSearch); elastic/elasticsearch-
 * specification indices/put_index_template, cluster/put_component_template,
 * indices/put_template, ilm/put_lifecycle.
 *
 * What is installed (<name> = setup.template.name, <policy> = setup.ilm.policy_name):
 *
 *   Elasticsearch ≥ 7.8, OpenSearch ≥ 1.0            Elasticsearch 7.0–7.7
 *   PUT /_ilm/policy/<policy>       (ES, ILM on)     PUT /_ilm/policy/<policy> (ILM on)
 *   PUT /_component_template/<name>-mappings         PUT /_template/<name>
 *   PUT /_component_template/<name>-settings             index_patterns: all three,
 *   PUT /_index_template/<name>-packetbeat  ["packetbeat-*"]     order 1, settings +
 *   PUT /_index_template/<name>-topbeat     ["topbeat-*"]        typeless mappings
 *   PUT /_index_template/<name>-metrics     ["hostbeat-metrics-*"]
 *
 * The index templates are composed of both components and have priority 149: above
 * ES' built-in ones (100), below a real Beats 8 Packetbeat's (150, "packetbeat-<ver>*").
 * At 150 our "packetbeat-*" would overlap theirs at the same priority, which ES refuses
 * ("multiple index templates may not match"); at 149 each index gets its own agent's
 * template. The patterns come from output.elasticsearch.index / topbeat_index (the
 * literal text before the first "%{", plus "*"); when one is a prefix of another, the
 * more specific template gets a higher priority, for the same reason.
 * OpenSearch has no ILM (it has ISM, /_plugins/_ism): setup.ilm is ignored there and
 * no index.lifecycle setting is written.
 *
 * Every body carries `_meta` {managed_by, version, fingerprint} (the legacy template:
 * in mappings._meta; an ILM policy only on ES ≥ 7.14, which added policy _meta).
 * The fingerprint is a hash of the body without its _meta, so it changes when the
 * field table or the settings change, and not with the agent version. An installer:
 *
 *   n = template_requests(...)
 *   for each r: GET r.path → template_installed_state(r, status, body)
 *       TMPL_ABSENT            → PUT r.path with r.body
 *       TMPL_CURRENT           → nothing to do
 *       TMPL_OUTDATED          → PUT if setup.template.overwrite, else warn once
 *   (the output prefixes output.elasticsearch.path to every path)
 *
 * Thread-safety: none needed (no state). Cost: a few hundred µs at start-up.
 */
#ifndef HOSTBEAT_SHIPPER_TEMPLATE_H
#define HOSTBEAT_SHIPPER_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hostbeat/config.h"
#include "hostbeat/strbuf.h"
#include "shipper/fields.h"

#define TMPL_MAX_REQUESTS 6
#define TMPL_NAME_MAX 200 /* setup.template.name / setup.ilm.policy_name, bytes */
#define TMPL_PATH_MAX 256
#define TMPL_FINGERPRINT_LEN 16 /* hex digits */
#define TMPL_PRIORITY 149

enum tmpl_dist {
	TMPL_DIST_ES,
	TMPL_DIST_OPENSEARCH,
};

/* The cluster, from GET / (version.distribution, version.number). */
struct tmpl_target {
	enum tmpl_dist dist;
	unsigned major, minor;
};

enum tmpl_kind {
	TMPL_REQ_ILM_POLICY, /* /_ilm/policy/<policy> */
	TMPL_REQ_COMPONENT,  /* /_component_template/<name>-mappings | -settings */
	TMPL_REQ_INDEX,      /* /_index_template/<name>-packetbeat | -topbeat | -metrics */
	TMPL_REQ_LEGACY,     /* /_template/<name> */
};

struct tmpl_request {
	enum tmpl_kind kind;
	const char *method;                         /* "PUT" (static) */
	char name[TMPL_NAME_MAX + 16];              /* the resource's name */
	char path[TMPL_PATH_MAX];                   /* GET it to check, PUT it to install */
	char fingerprint[TMPL_FINGERPRINT_LEN + 1]; /* "" when the body has no _meta */
	struct strbuf body;                         /* JSON, not NUL-terminated (strbuf_cstr()) */
};

/* distribution: NULL or "elasticsearch" → ES, "opensearch" → OpenSearch; number:
 * "8.15.0", "7.17.22", "2.11.0" (a "-SNAPSHOT"-like suffix is ignored). 0 or -EINVAL. */
int template_target_parse(const char *distribution, const char *number, struct tmpl_target *t);

/* Whether the target gets an ILM policy and index.lifecycle.name (ES only). */
bool template_ilm_supported(const struct tmpl_target *t);

/* Fill out[0, *n) with the requests to send in order, for `t` and the setup.template.*,
 * setup.ilm.* and output.elasticsearch.{index,topbeat_index} keys of cfg; `version` is
 * the agent version written in _meta. setup.template.enabled false → no templates
 * (the ILM policy is still listed when setup.ilm.enabled). Borrows everything; the
 * bodies are new — free them with template_requests_free(out, *n).
 * Returns 0, -ENOTSUP (ES < 7.0), -EINVAL (a name ES would refuse: setup.template.name
 * and setup.ilm.policy_name must be [a-z0-9][a-z0-9._-]*, at most TMPL_NAME_MAX bytes),
 * or -ENOMEM. On error *n is 0 and nothing is left to free. */
int template_requests(const struct tmpl_target *t, const struct hb_config *cfg, const char *version,
		      struct tmpl_request out[TMPL_MAX_REQUESTS], size_t *n);

/* The same with another field table (tests: the fingerprint follows the table). */
int template_requests_with(const struct tmpl_target *t, const struct hb_config *cfg,
			   const char *version, const struct field_def *tab, size_t ntab,
			   struct tmpl_request out[TMPL_MAX_REQUESTS], size_t *n);

void template_requests_free(struct tmpl_request *r, size_t n);

/* The "mappings" object of the field table tab[0, n) (properties nested from the
 * dotted paths, dynamic_templates from the wildcards, date_detection false, dynamic
 * true), appended to out. 0, -EINVAL (fields_check() fails: msg says why, may be
 * NULL) or -ENOMEM. */
int template_mappings(const struct field_def *tab, size_t n, struct strbuf *out, char *msg,
		      size_t msg_size);

enum tmpl_state {
	TMPL_ABSENT,   /* 404: install it */
	TMPL_CURRENT,  /* installed with our fingerprint */
	TMPL_OUTDATED, /* installed, other or no fingerprint (not ours, or older) */
};

/* Classify the answer to `GET r->path` (status and body as received). Returns an
 * enum tmpl_state, or -EPROTO (another status, or a body that is not the expected
 * JSON shape). */
int template_installed_state(const struct tmpl_request *r, int status, const char *body,
			     size_t len);

/* setup.ilm.delete_after as an ILM min_age: whole days ("30d") when it is a multiple
 * of 24 h, else hours rounded up ("36h", never deleting earlier than asked). Writes
 * into buf (NUL-terminated); returns its length. */
size_t template_ilm_age(uint64_t ns, char *buf, size_t size);

#endif
