/* kibana.h — load the dashboards into Kibana: wait for GET /api/status, pick the
 * bundle for the Kibana version, POST it to the saved objects import API.
 *
 * Spec: docs/reference/ecosystem.md §4.1 (saved objects, the two bundles), §4.2 (the
 * import request Beats send, /api/status formats, answer shapes); Beats'
 * libbeat/dashboards/kibana_loader.go and elastic-agent-libs kibana/client.go for the
 * behaviour copied here.
 *
 *   kibana_load_dashboards(cfg)
 *     1. GET <base>/api/status until HTTP 200 and "available" (8.x/9.x format,
 *        status.overall.level) or "green" (7.x format, status.overall.state), within
 *        setup.dashboards.timeout; capped exponential backoff; 401/403 stop at once
 *     2. version.number → <setup.dashboards.directory>/kibana-8/hostbeat.ndjson (8.0+)
 *        or kibana-7/hostbeat.ndjson (7.17.x); older Kibana is refused
 *     3. POST <base>[/s/<space>]/api/saved_objects/_import?overwrite=true, one
 *        multipart/form-data part "file" (filename hostbeat.ndjson, application/ndjson),
 *        kbn-xsrf, auth; 5xx and transport failures are retried (overwrite=true makes
 *        the import idempotent)
 *     4. the answer: success, successCount, errors[] → struct kibana_report
 *
 * Config: setup.kibana.{host,protocol,path,space.id,username,password,api_key,
 * ssl.enabled,ssl.verification_mode,ssl.certificate_authorities} and
 * setup.dashboards.{directory,timeout}. The host takes the forms of
 * output.elasticsearch.hosts (es_host_parse()) with 5601 as the default port.
 *
 * Counters: setup.dashboards.loaded (objects imported), setup.dashboards.failed
 * (objects Kibana refused), setup.dashboards.retries (import attempts after the first),
 * setup.kibana.requests.
 *
 * Not thread-safe against itself; call it from one thread (set-up, before the
 * pipeline starts, or the `setup --dashboards` command).
 */
#ifndef HOSTBEAT_SHIPPER_KIBANA_H
#define HOSTBEAT_SHIPPER_KIBANA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hostbeat/strbuf.h"

struct hb_config;

#define KIBANA_DEFAULT_PORT 5601
#define KIBANA_BUNDLE_NAME "hostbeat.ndjson"
#define KIBANA_MAX_FAILURES 16         /* failures kept in a report (all are counted) */
#define KIBANA_BUNDLE_MAX (64UL << 20) /* bytes read from a bundle file */
#define KIBANA_BOUNDARY_MAX 72         /* RFC 2046: 1..70 characters + NUL */
#define KIBANA_NUMBER_MAX 32
#define KIBANA_PATH_MAX 4096

/* One object Kibana did not import. Strings are cut to fit, always NUL-terminated. */
struct kibana_failure {
	char type[32];       /* "visualization" */
	char id[128];        /* "agent-http-count" */
	char title[128];     /* meta.title (or title), "" when absent */
	char error_type[32]; /* error.type: missing_references, unsupported_type, conflict,
				ambiguous_conflict, unknown */
	char detail[256];    /* error.message, or the missing references "index-pattern:x" */
};

struct kibana_report {
	char version[KIBANA_NUMBER_MAX]; /* Kibana version.number, "" before it is known */
	int major, minor, patch;
	char bundle[KIBANA_PATH_MAX]; /* the file sent */
	size_t objects;               /* saved objects in the bundle (summary line excluded) */
	unsigned status_polls;        /* GET /api/status sent */
	unsigned import_attempts;     /* POST _import sent */
	bool imported;                /* an import answer with success:true arrived */
	size_t success_count;         /* successCount */
	size_t error_count;           /* entries of errors[] */
	size_t nfailures;             /* entries filled in failures[] (≤ KIBANA_MAX_FAILURES) */
	struct kibana_failure failures[KIBANA_MAX_FAILURES];
};

/* Load the dashboards (the whole sequence above). Borrows cfg for the call.
 * agent_version goes into the User-Agent ("hostbeat/<agent_version>"; NULL = the
 * build's version). rep is always filled as far as the run went. Returns:
 *   0             every object imported
 *   -EIO          Kibana answered success:false (rep holds the failures), or kept
 *                 answering 5xx to the import, or another unexpected HTTP status
 *   -EACCES       401/403 (credentials, or the user may not import)
 *   -ETIMEDOUT    Kibana not ready within setup.dashboards.timeout
 *   -EOPNOTSUPP   a Kibana version without a bundle (< 7.17)
 *   -ENOENT       the bundle file is missing, or no Kibana API at the URL (404)
 *   -EBADMSG      an answer that cannot be read
 *   -EFBIG        the bundle is over KIBANA_BUNDLE_MAX or Kibana's payload limit (413)
 *   -EINVAL       a bad setup.kibana.* / setup.dashboards.* value
 *   -ENOMEM, or a transport errno of the last import attempt (-ECONNREFUSED, -EPROTO
 *   for TLS, ...)
 * err gets a one-line reason (always NUL-terminated when errlen > 0). */
int kibana_load_dashboards(const struct hb_config *cfg, const char *agent_version,
			   struct kibana_report *rep, char *err, size_t errlen);

/* ---- pure parts, exposed for tests ----------------------------------------------- */

/* setup.kibana.{host,protocol,path} → base URL "scheme://host:port[/prefix]", port
 * 5601 when the host names none. 0, or -EINVAL with a reason in err. */
int kibana_base_url(const char *host, const char *protocol, const char *path, char *url,
		    size_t size, char *err, size_t errlen);

/* The import path for a space: "/api/saved_objects/_import?overwrite=true" or
 * "/s/<space>/api/…". Space ids are Kibana's: a-z, 0-9, '_' and '-'. 0, -EINVAL (bad
 * space id), -ENAMETOOLONG. */
int kibana_import_path(const char *space_id, char *out, size_t size);

enum kibana_status_format { KIBANA_STATUS_V8, KIBANA_STATUS_V7 };

struct kibana_status {
	char number[KIBANA_NUMBER_MAX]; /* version.number */
	int major, minor, patch;
	enum kibana_status_format format;
	char level[24]; /* status.overall.level (v8) or .state (v7) as sent */
	bool ready;     /* level "available" or state "green" */
};

/* Parse a GET /api/status body (either format). Returns 0, or -EBADMSG (not JSON, no
 * status.overall.level/state, no or bad version.number) with a reason in err. */
int kibana_status_parse(const char *body, size_t len, struct kibana_status *st, char *err,
			size_t errlen);

/* "<dir>/kibana-8/hostbeat.ndjson" for Kibana ≥ 8.0, "<dir>/kibana-7/…" for 7.17.x.
 * Returns 0, -EOPNOTSUPP (older Kibana; the reason says what is needed) or
 * -ENAMETOOLONG, with a reason in err. The file is not looked at. */
int kibana_bundle_path(const char *dir, int major, int minor, char *path, size_t size, char *err,
		       size_t errlen);

/* The import body: one part named "file", filename KIBANA_BUNDLE_NAME, Content-Type
 * application/ndjson, CRLF line ends:
 *
 *   --B\r\n
 *   Content-Disposition: form-data; name="file"; filename="hostbeat.ndjson"\r\n
 *   Content-Type: application/ndjson\r\n
 *   \r\n
 *   <payload>\r\n
 *   --B--\r\n
 *
 * Appends to out. Returns 0, -EINVAL (boundary empty, over 70 characters or with a
 * character RFC 2046 does not allow), -EEXIST ("--B" occurs in the payload, so the
 * part would end early), -ENOMEM. */
int kibana_multipart_build(const char *boundary, const void *payload, size_t len,
			   struct strbuf *out);

/* A random boundary ("hostbeat-" + 32 hex digits) that does not occur in payload.
 * 0, or -EIO when no randomness is to be had. */
int kibana_boundary_new(const void *payload, size_t len, char out[KIBANA_BOUNDARY_MAX]);

/* Count the saved objects in an NDJSON bundle: non-blank lines that are not the
 * export summary ({"exportedCount":…}). Lines are not otherwise checked. */
size_t kibana_bundle_count(const char *p, size_t len);

/* Parse an import answer into rep (success_count, error_count, failures[]; imported
 * = success). Returns 0 when success is true, -EIO when false (rep says why),
 * -EBADMSG (not JSON, no boolean success) with a reason in err. */
int kibana_import_parse(const char *body, size_t len, struct kibana_report *rep, char *err,
			size_t errlen);

#endif
