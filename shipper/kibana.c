/* kibana.c — the dashboards into Kibana through the saved objects import API (kibana.h).
 *
 * Spec: docs/reference/ecosystem.md §4.1–4.2; Beats' libbeat/dashboards/kibana_loader.go
 * (Kibana ≥ 7.14, one NDJSON multipart upload with overwrite=true) and
 * elastic-agent-libs kibana/client.go ImportMultiPartFormFile (the request below).
 *
 * The requests (one keep-alive libcurl handle for the whole run):
 *
 *   GET /base/api/status HTTP/1.1                   until ready, capped backoff
 *   Accept: application/json
 *   Authorization: Basic …                          or ApiKey …, when configured
 *
 *   POST /base[/s/<space>]/api/saved_objects/_import?overwrite=true HTTP/1.1
 *   Accept: application/json
 *   Authorization: …
 *   kbn-xsrf: true                                  Kibana refuses writes without it
 *   Content-Type: multipart/form-data; boundary=hostbeat-<32 hex>
 *   Content-Length: N                               never Expect: 100-continue
 *
 *   --hostbeat-…\r\n
 *   Content-Disposition: form-data; name="file"; filename="hostbeat.ndjson"\r\n
 *   Content-Type: application/ndjson\r\n
 *   \r\n
 *   {…object…}\n{…object…}\n\r\n
 *   --hostbeat-…--\r\n
 *
 * The import answers 200 whenever the request itself was valid; `success` says
 * whether every object went in. Objects with errors are not created, the others are:
 * a partial import is reported object by object and is an error for the caller.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "hostbeat/clock.h"
#include "hostbeat/config.h"
#include "hostbeat/log.h"
#include "hostbeat/mem.h"
#include "hostbeat/metrics.h"
#include "hostbeat/strbuf.h"
#include "shipper/es.h"
#include "shipper/kibana.h"
#include "shipper/http.h"

#ifndef HB_VERSION
#define HB_VERSION "0.1.0" /* as core/main.c */
#endif

#define KB_LOG "setup.kibana"
#define KB_URL_MAX ES_URL_MAX
#define KB_ANSWER_MAX (16UL << 20)   /* bytes of one answer */
#define KB_CA_FILE_MAX (4UL << 20)   /* bytes read from one CA file */
#define KB_STATUS_TIMEOUT_MS 10000L  /* one GET /api/status, at most */
#define KB_IMPORT_TIMEOUT_MS 120000L /* one import: Kibana migrates every object */
#define KB_CONNECT_TIMEOUT_MS 10000L
#define KB_POLL_FIRST_MS 250L     /* status backoff: 250 ms, doubling ... */
#define KB_POLL_MAX_MS 4000L      /* ... up to 4 s between polls */
#define KB_IMPORT_TRIES 4         /* an import answered 5xx (or lost) is sent again */
#define KB_IMPORT_BACKOFF_MS 500L /* 0.5 s, 1 s, 2 s between them */

enum kb_verify { KB_VERIFY_NONE, KB_VERIFY_CERTIFICATE, KB_VERIFY_FULL };

struct kb_client {
	CURL *h;
	char base[KB_URL_MAX];
	bool https;
	struct curl_slist *headers; /* Accept, Authorization, Expect: */
	struct strbuf body;         /* the answer being received */
	struct strbuf url;
	bool over_cap;
	char curl_err[CURL_ERROR_SIZE];
	struct metric *m_requests;
};

/* Copy at most size - 1 bytes of s, always NUL-terminated. */
static void copy_str(char *dst, size_t size, const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (!size)
		return;
	if (n >= size)
		n = size - 1;
	if (n)
		memcpy(dst, s, n);
	dst[n] = '\0';
}

static const char *mem_find(const char *p, size_t len, const char *needle, size_t n)
{
	if (n == 0 || len < n)
		return NULL;
	for (size_t i = 0; len - i >= n; i++)
		if (p[i] == needle[0] && memcmp(p + i, needle, n) == 0)
			return p + i;
	return NULL;
}

/* ---- URLs ---------------------------------------------------------------------------- */

/* Does the host entry name a port? Forms as es_host_parse(): [scheme://]authority[/path]
 * with authority host, host:port, [v6] or [v6]:port. */
static bool spec_has_port(const char *spec)
{
	const char *a = strstr(spec, "://"), *end;

	a = a ? a + 3 : spec;
	end = strchr(a, '/');
	if (!end)
		end = a + strlen(a);
	if (a < end && *a == '[') {
		const char *rb = memchr(a, ']', (size_t)(end - a));

		return rb && rb + 1 < end && rb[1] == ':';
	}
	return memchr(a, ':', (size_t)(end - a)) != NULL;
}

int kibana_base_url(const char *host, const char *protocol, const char *path, char *url,
		    size_t size, char *err, size_t errlen)
{
	char tmp[KB_URL_MAX], msg[300];
	const char *auth, *slash, *colon;
	int n;

	if (size)
		url[0] = '\0';
	if (es_host_parse(host, protocol && *protocol ? protocol : "http", path ? path : "", tmp,
			  sizeof(tmp), msg, sizeof(msg)) < 0) {
		http_set_err(err, errlen, "setup.kibana.host: %s", msg);
		return -EINVAL;
	}
	if (spec_has_port(host)) {
		n = snprintf(url, size, "%s", tmp);
	} else {
		/* es_host_parse() wrote the Elasticsearch port: "scheme://host:9200[/p]" */
		auth = strstr(tmp, "://") + 3;
		slash = strchr(auth, '/');
		if (!slash)
			slash = auth + strlen(auth);
		colon = slash;
		while (colon > auth && *colon != ':')
			colon--;
		n = snprintf(url, size, "%.*s:%d%s", (int)(colon - tmp), tmp, KIBANA_DEFAULT_PORT,
			     slash);
	}
	if (n < 0 || (size_t)n >= size) {
		if (size)
			url[0] = '\0';
		http_set_err(err, errlen, "setup.kibana.host: URL too long");
		return -EINVAL;
	}
	return 0;
}

int kibana_import_path(const char *space_id, char *out, size_t size)
{
	static const char api[] = "/api/saved_objects/_import?overwrite=true";
	int n;

	if (size)
		out[0] = '\0';
	if (!space_id || !*space_id) {
		n = snprintf(out, size, "%s", api);
	} else {
		for (const char *p = space_id; *p; p++)
			if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' ||
			      *p == '-'))
				return -EINVAL;
		n = snprintf(out, size, "/s/%s%s", space_id, api);
	}
	if (n < 0 || (size_t)n >= size) {
		if (size)
			out[0] = '\0';
		return -ENAMETOOLONG;
	}
	return 0;
}

/* ---- /api/status ------------------------------------------------------------------------ */

/* "8.15.0", "7.17.20", "9.1.0-SNAPSHOT" → major/minor/patch (patch may be absent). */
/* A JSON object from body with nothing but whitespace after it, or NULL. */
static struct json_object *parse_object(const char *body, size_t len)
{
	struct json_tokener *tok;
	struct json_object *root;

	if (!body || len > INT_MAX)
		return NULL;
	tok = json_tokener_new();
	if (!tok)
		return NULL;
	root = json_tokener_parse_ex(tok, body, (int)len);
	if (root && json_tokener_get_error(tok) == json_tokener_success) {
		for (size_t i = json_tokener_get_parse_end(tok); i < len; i++) {
			if (!isspace((unsigned char)body[i])) {
				json_object_put(root);
				root = NULL;
				break;
			}
		}
	} else if (root) {
		json_object_put(root);
		root = NULL;
	}
	json_tokener_free(tok);
	if (root && !json_object_is_type(root, json_type_object)) {
		json_object_put(root);
		root = NULL;
	}
	return root;
}

static struct json_object *get(struct json_object *o, const char *key, enum json_type type)
{
	struct json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, type))
		return NULL;
	return v;
}

static const char *get_str(struct json_object *o, const char *key)
{
	struct json_object *v = get(o, key, json_type_string);

	return v ? json_object_get_string(v) : NULL;
}

int kibana_status_parse(const char *body, size_t len, struct kibana_status *st, char *err,
			size_t errlen)
{
	struct json_object *root, *overall;
	const char *level, *state, *number;
	int rc = -EBADMSG;

	memset(st, 0, sizeof(*st));
	root = parse_object(body, len);
	if (!root) {
		http_set_err(err, errlen, "/api/status: the answer is not a JSON object");
		return -EBADMSG;
	}
	overall = get(get(root, "status", json_type_object), "overall", json_type_object);
	level = get_str(overall, "level");
	state = get_str(overall, "state");
	if (level) {
		st->format = KIBANA_STATUS_V8;
		st->ready = strcmp(level, "available") == 0;
	} else if (state) {
		st->format = KIBANA_STATUS_V7;
		st->ready = strcmp(state, "green") == 0;
		level = state;
	} else {
		http_set_err(err, errlen, "/api/status: no status.overall.level or .state");
		goto out;
	}
	copy_str(st->level, sizeof(st->level), level);
	number = get_str(get(root, "version", json_type_object), "number");
	if (!number) {
		/* Kibana 8 answers unauthenticated callers (status.allowAnonymous) with a
		 * redacted status that has no version. */
		http_set_err(err, errlen,
			     "/api/status: no version.number (a redacted anonymous answer? set "
			     "setup.kibana.username/password or api_key)");
		goto out;
	}
	if (http_version_parse(number, &st->major, &st->minor, &st->patch) < 0 ||
	    strlen(number) >= sizeof(st->number)) {
		http_set_err(err, errlen, "/api/status: cannot read version.number \"%.40s\"",
			     number);
		goto out;
	}
	copy_str(st->number, sizeof(st->number), number);
	rc = 0;
out:
	json_object_put(root);
	return rc;
}

int kibana_bundle_path(const char *dir, int major, int minor, char *path, size_t size, char *err,
		       size_t errlen)
{
	const char *sub;
	int n;

	if (size)
		path[0] = '\0';
	if (major >= 8) {
		sub = "kibana-8";
	} else if (major == 7 && minor >= 17) {
		sub = "kibana-7";
	} else if (major == 7 && minor >= 14) {
		/* The 7.x bundle carries coreMigrationVersion 7.17.0: older Kibana refuses
		 * every object as "from a more recent version". */
		http_set_err(
		    err, errlen,
		    "Kibana %d.%d is not supported: the dashboards need Kibana 7.17 or later",
		    major, minor);
		return -EOPNOTSUPP;
	} else {
		http_set_err(
		    err, errlen,
		    "Kibana %d.%d is too old: loading dashboards needs Kibana 7.17 or later (the "
		    "import API as Beats use it needs 7.14)",
		    major, minor);
		return -EOPNOTSUPP;
	}
	n = snprintf(path, size, "%s/%s/%s", dir && *dir ? dir : ".", sub, KIBANA_BUNDLE_NAME);
	if (n < 0 || (size_t)n >= size) {
		if (size)
			path[0] = '\0';
		http_set_err(err, errlen, "setup.dashboards.directory: path too long");
		return -ENAMETOOLONG;
	}
	return 0;
}

/* ---- multipart body ---------------------------------------------------------------------- */

/* RFC 2046 §5.1.1 bcharsnospace (the space is allowed inside, but we never need it). */
static bool boundary_char_ok(unsigned char ch)
{
	return isalnum(ch) || strchr("'()+_,-./:=?", ch) != NULL;
}

int kibana_multipart_build(const char *boundary, const void *payload, size_t len,
			   struct strbuf *out)
{
	char delim[KIBANA_BOUNDARY_MAX + 2];
	size_t blen, start = out->len;

	if (!boundary || (len && !payload))
		return -EINVAL;
	blen = strlen(boundary);
	if (blen == 0 || blen > 70)
		return -EINVAL;
	for (size_t i = 0; i < blen; i++)
		if (!boundary_char_ok((unsigned char)boundary[i]))
			return -EINVAL;
	snprintf(delim, sizeof(delim), "--%s", boundary);
	if (mem_find(payload, len, delim, blen + 2))
		return -EEXIST;

	strbuf_appendf(out,
		       "--%s\r\n"
		       "Content-Disposition: form-data; name=\"file\"; filename=\"%s\"\r\n"
		       "Content-Type: application/ndjson\r\n"
		       "\r\n",
		       boundary, KIBANA_BUNDLE_NAME);
	strbuf_append(out, payload, len);
	strbuf_appendf(out, "\r\n--%s--\r\n", boundary);
	if (out->err) {
		strbuf_truncate(out, start);
		return -ENOMEM;
	}
	return 0;
}

int kibana_boundary_new(const void *payload, size_t len, char out[KIBANA_BOUNDARY_MAX])
{
	static const char hex[] = "0123456789abcdef";

	/* 128 random bits: a clash with the payload is as good as impossible, but cheap to
	 * rule out, and a payload made to contain boundaries must not break the upload. */
	for (int attempt = 0; attempt < 16; attempt++) {
		unsigned char rnd[16];
		char delim[KIBANA_BOUNDARY_MAX + 2];
		size_t n;

		if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
			return -EIO;
		n = (size_t)snprintf(out, KIBANA_BOUNDARY_MAX, "hostbeat-");
		for (size_t i = 0; i < sizeof(rnd); i++) {
			out[n++] = hex[rnd[i] >> 4];
			out[n++] = hex[rnd[i] & 15];
		}
		out[n] = '\0';
		snprintf(delim, sizeof(delim), "--%s", out);
		if (!mem_find(payload, len, delim, n + 2))
			return 0;
	}
	return -EIO;
}

/* The export summary line: an object whose exportedCount is truthy (what Kibana's
 * import stream filters out). */
static bool summary_line(const char *p, size_t len)
{
	struct json_object *o, *v;
	bool yes = false;

	if (!mem_find(p, len, "\"exportedCount\"", 15))
		return false;
	o = parse_object(p, len);
	if (o && json_object_object_get_ex(o, "exportedCount", &v))
		yes = json_object_get_boolean(v);
	json_object_put(o);
	return yes;
}

size_t kibana_bundle_count(const char *p, size_t len)
{
	size_t count = 0, i = 0;

	while (i < len) {
		const char *nl = memchr(p + i, '\n', len - i);
		size_t end = nl ? (size_t)(nl - p) : len, s = i;

		while (s < end && isspace((unsigned char)p[s]))
			s++;
		if (s < end && !summary_line(p + s, end - s))
			count++;
		i = end + 1;
	}
	return count;
}

/* ---- import answer ------------------------------------------------------------------------ */

static void fill_failure(struct kibana_failure *f, struct json_object *e)
{
	struct json_object *error = get(e, "error", json_type_object), *refs;
	const char *title = get_str(get(e, "meta", json_type_object), "title");
	const char *msg;

	copy_str(f->type, sizeof(f->type), get_str(e, "type"));
	copy_str(f->id, sizeof(f->id), get_str(e, "id"));
	copy_str(f->title, sizeof(f->title), title ? title : get_str(e, "title"));
	copy_str(f->error_type, sizeof(f->error_type), get_str(error, "type"));
	f->detail[0] = '\0';
	refs = get(error, "references", json_type_array);
	if (refs) {
		size_t n = json_object_array_length(refs), used = 0;

		used = (size_t)snprintf(f->detail, sizeof(f->detail), "missing");
		for (size_t i = 0; i < n && used < sizeof(f->detail); i++) {
			struct json_object *r = json_object_array_get_idx(refs, i);
			const char *t = get_str(r, "type"), *id = get_str(r, "id");
			int w = snprintf(f->detail + used, sizeof(f->detail) - used, "%s %s:%s",
					 i ? "," : "", t ? t : "?", id ? id : "?");

			if (w < 0)
				break;
			used += (size_t)w;
		}
		return;
	}
	msg = get_str(error, "message");
	copy_str(f->detail, sizeof(f->detail), msg);
}

int kibana_import_parse(const char *body, size_t len, struct kibana_report *rep, char *err,
			size_t errlen)
{
	struct json_object *root, *success, *count, *errors;
	int rc = -EBADMSG;

	rep->imported = false;
	rep->success_count = rep->error_count = rep->nfailures = 0;
	root = parse_object(body, len);
	if (!root) {
		http_set_err(err, errlen, "import: the answer is not a JSON object");
		return -EBADMSG;
	}
	success = get(root, "success", json_type_boolean);
	if (!success) {
		http_set_err(err, errlen, "import: no boolean \"success\" in the answer");
		goto out;
	}
	count = get(root, "successCount", json_type_int);
	if (count && json_object_get_int64(count) > 0)
		rep->success_count = (size_t)json_object_get_int64(count);
	errors = get(root, "errors", json_type_array);
	if (errors) {
		rep->error_count = json_object_array_length(errors);
		for (size_t i = 0; i < rep->error_count && rep->nfailures < KIBANA_MAX_FAILURES;
		     i++) {
			struct json_object *e = json_object_array_get_idx(errors, i);

			if (json_object_is_type(e, json_type_object))
				fill_failure(&rep->failures[rep->nfailures++], e);
		}
	}
	rep->imported = json_object_get_boolean(success);
	if (rep->imported) {
		rc = 0;
	} else {
		const struct kibana_failure *f = rep->nfailures ? &rep->failures[0] : NULL;

		if (f)
			http_set_err(
			    err, errlen,
			    "import: %zu object(s) imported, %zu failed; first: %s \"%s\": %s%s%s",
			    rep->success_count, rep->error_count, f->type, f->id,
			    f->error_type[0] ? f->error_type : "error", f->detail[0] ? ": " : "",
			    f->detail);
		else
			http_set_err(err, errlen,
				     "import: success is false, %zu object(s) imported",
				     rep->success_count);
		rc = -EIO;
	}
out:
	json_object_put(root);
	return rc;
}

/* ---- the HTTP client --------------------------------------------------------------------- */

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	struct kb_client *c = arg;
	size_t len = size * n;

	if (len > KB_ANSWER_MAX - c->body.len) {
		c->over_cap = true;
		return 0;
	}
	if (strbuf_append(&c->body, p, len) < 0)
		return 0;
	return len;
}

/* The configured CA files as one PEM text. */
static int load_cas(const struct cfg_strlist *cas, struct strbuf *pem, char *err, size_t errlen)
{
	return http_load_cas(cas, "setup.kibana.ssl.certificate_authorities", KB_CA_FILE_MAX, pem,
			     err, errlen);
}

#define SETOPT(h, opt, val) (curl_easy_setopt((h), (opt), (val)) == CURLE_OK)

/* ssl.* for an https base URL, as output.elasticsearch.ssl.* in es.c. */
static int set_tls(struct kb_client *c, const struct hb_config *cfg, char *err, size_t errlen)
{
	const char *mode = cfg->kibana_ssl_verification_mode && *cfg->kibana_ssl_verification_mode
			       ? cfg->kibana_ssl_verification_mode
			       : "full";
	enum kb_verify verify;
	struct strbuf pem;
	int rc = 0;

	if (strcmp(mode, "none") == 0) {
		verify = KB_VERIFY_NONE;
	} else if (strcmp(mode, "certificate") == 0) {
		verify = KB_VERIFY_CERTIFICATE;
	} else if (strcmp(mode, "full") == 0 || strcmp(mode, "strict") == 0) {
		verify = KB_VERIFY_FULL;
	} else {
		http_set_err(
		    err, errlen,
		    "setup.kibana.ssl.verification_mode \"%s\": full, strict, certificate or none",
		    mode);
		return -EINVAL;
	}
	if (!c->https || !cfg->kibana_ssl_enabled)
		return 0; /* checked anyway; an https URL then gets curl's defaults */
	strbuf_init(&pem);
	rc = load_cas(&cfg->kibana_ssl_cas, &pem, err, errlen);
	if (rc == 0 &&
	    !(SETOPT(c->h, CURLOPT_SSL_VERIFYPEER, verify != KB_VERIFY_NONE ? 1L : 0L) &&
	      SETOPT(c->h, CURLOPT_SSL_VERIFYHOST, verify == KB_VERIFY_FULL ? 2L : 0L))) {
		http_set_err(err, errlen, "libcurl: cannot set the TLS options");
		rc = -ENOMEM;
	}
	if (rc == 0 && pem.len) {
		struct curl_blob blob = {.data = pem.p, .len = pem.len, .flags = CURL_BLOB_COPY};

		/* only the configured CAs are trusted, as in Beats */
		if (!SETOPT(c->h, CURLOPT_CAINFO_BLOB, &blob) ||
		    !SETOPT(c->h, CURLOPT_CAPATH, (char *)NULL)) {
			http_set_err(err, errlen, "libcurl: cannot set the CA bundle");
			rc = -ENOMEM;
		}
	}
	strbuf_free(&pem);
	return rc;
}

static void client_free(struct kb_client *c)
{
	if (!c)
		return;
	if (c->h)
		curl_easy_cleanup(c->h);
	curl_slist_free_all(c->headers);
	strbuf_free(&c->body);
	strbuf_free(&c->url);
	hb_free(c);
}

static struct kb_client *client_new(const struct hb_config *cfg, const char *agent_version,
				    char *err, size_t errlen)
{
	struct kb_client *c;
	char ua[96], *auth = NULL;
	size_t asize;
	int rc;

	if (http_global_init(err, errlen) < 0) {
		return NULL;
	}
	c = hb_calloc(1, sizeof(*c));
	if (!c) {
		http_set_err(err, errlen, "out of memory");
		return NULL;
	}
	strbuf_init(&c->body);
	strbuf_init(&c->url);
	c->m_requests = metrics_counter("setup.kibana.requests");
	if (kibana_base_url(cfg->kibana_host ? cfg->kibana_host : "localhost", cfg->kibana_protocol,
			    cfg->kibana_path, c->base, sizeof(c->base), err, errlen) < 0)
		goto fail;
	c->https = strncmp(c->base, "https:", 6) == 0;

	asize = 64 + 2 * ((cfg->kibana_username ? strlen(cfg->kibana_username) : 0) +
			  (cfg->kibana_password ? strlen(cfg->kibana_password) : 0) +
			  (cfg->kibana_api_key ? strlen(cfg->kibana_api_key) : 0));
	auth = hb_malloc(asize);
	if (!auth)
		goto oom;
	rc = es_auth_header(cfg->kibana_username, cfg->kibana_password, cfg->kibana_api_key, auth,
			    asize, err, errlen);
	if (rc < 0) {
		char msg[256];

		copy_str(msg, sizeof(msg), err);
		http_set_err(err, errlen, "setup.kibana: %s", msg);
		goto fail;
	}
	if (http_add_header(&c->headers, "Accept: application/json") < 0 ||
	    http_add_header(&c->headers, "Expect:") < 0 ||
	    (rc > 0 && http_add_header(&c->headers, auth) < 0))
		goto oom;

	c->h = curl_easy_init();
	snprintf(ua, sizeof(ua), "hostbeat/%.60s", agent_version ? agent_version : HB_VERSION);
	if (!c->h ||
	    !(SETOPT(c->h, CURLOPT_NOSIGNAL, 1L) &&
	      SETOPT(c->h, CURLOPT_PROTOCOLS_STR, "http,https") &&
	      SETOPT(c->h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1) &&
	      SETOPT(c->h, CURLOPT_CONNECTTIMEOUT_MS, KB_CONNECT_TIMEOUT_MS) &&
	      SETOPT(c->h, CURLOPT_USERAGENT, ua) && SETOPT(c->h, CURLOPT_ACCEPT_ENCODING, "") &&
	      SETOPT(c->h, CURLOPT_WRITEFUNCTION, on_body) && SETOPT(c->h, CURLOPT_WRITEDATA, c) &&
	      SETOPT(c->h, CURLOPT_ERRORBUFFER, c->curl_err))) {
		http_set_err(err, errlen, "libcurl: cannot set up a handle");
		goto fail;
	}
	if (set_tls(c, cfg, err, errlen) < 0)
		goto fail;
	memset(auth, 0, asize);
	hb_free(auth);
	return c;
oom:
	http_set_err(err, errlen, "out of memory");
fail:
	if (auth) {
		memset(auth, 0, asize);
		hb_free(auth);
	}
	client_free(c);
	return NULL;
}

/* libcurl result → errno (as es.c). */
/* One request. extra: more header lines (NULL-terminated array, may be NULL). 0 with
 * *status and the answer in c->body, or a negative errno with the reason in msg. */
static int kb_request(struct kb_client *c, const char *method, const char *path,
		      const char *const *extra, const void *body, size_t len, long timeout_ms,
		      int *status, char *msg, size_t msglen)
{
	struct curl_slist hdr[4], *list = c->headers;
	CURLcode crc;
	long code = 0;
	size_t nx = 0;
	int rc;

	*status = 0;
	c->curl_err[0] = '\0';
	c->over_cap = false;
	strbuf_reset(&c->url);
	strbuf_puts(&c->url, c->base);
	strbuf_puts(&c->url, path);
	strbuf_reset(&c->body);
	if (c->url.err || !SETOPT(c->h, CURLOPT_URL, strbuf_cstr(&c->url))) {
		http_set_err(msg, msglen, "out of memory");
		return -ENOMEM;
	}
	/* per-request header nodes chained in front of the fixed list, no allocation */
	for (; extra && extra[nx] && nx < sizeof(hdr) / sizeof(hdr[0]); nx++) {
		hdr[nx].data = (char *)extra[nx];
		hdr[nx].next = list;
		list = &hdr[nx];
	}
	if (strcmp(method, "POST") == 0) {
		curl_easy_setopt(c->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
		curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, len ? body : "");
	} else {
		curl_easy_setopt(c->h, CURLOPT_HTTPGET, 1L);
	}
	curl_easy_setopt(c->h, CURLOPT_TIMEOUT_MS, timeout_ms > 0 ? timeout_ms : 1L);
	curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, list);
	crc = curl_easy_perform(c->h);
	curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, (struct curl_slist *)NULL); /* hdr[] dies */
	metric_inc(c->m_requests);
	if (crc == CURLE_OK) {
		curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &code);
		*status = (int)code;
		strbuf_cstr(&c->body);
		if (c->body.err) {
			http_set_err(msg, msglen, "out of memory for the answer");
			return -ENOMEM;
		}
		return 0;
	}
	if (crc == CURLE_WRITE_ERROR && (c->over_cap || c->body.err)) {
		http_set_err(msg, msglen, "%s %s%s: %s", method, c->base, path,
			     c->over_cap ? "answer too big" : "out of memory for the answer");
		return c->over_cap ? -EFBIG : -ENOMEM;
	}
	rc = http_map_curl_error(c->h, crc);
	http_set_err(msg, msglen, "%s %s%s: %s", method, c->base, path,
		     c->curl_err[0] ? c->curl_err : curl_easy_strerror(crc));
	return rc;
}

/* Kibana's error answers are {"statusCode":N,"error":"…","message":"…"}; anything else
 * (a proxy's page, 7.x's plain "Kibana server is not ready yet") is shown as text. One
 * line: control characters and runs of spaces become one space. */
static void answer_message(const struct kb_client *c, char *out, size_t size)
{
	struct json_object *root = parse_object(c->body.p, c->body.len);
	const char *m = get_str(root, "message");
	const char *src = m ? m : c->body.p ? c->body.p : "";
	size_t slen = m ? strlen(m) : c->body.len, n = 0;

	for (size_t i = 0; i < slen && n + 1 < size; i++) {
		unsigned char ch = (unsigned char)src[i];

		if (ch < ' ' || ch == 0x7f || ch == ' ') {
			if (n && out[n - 1] != ' ')
				out[n++] = ' ';
		} else {
			out[n++] = (char)ch;
		}
	}
	while (n && out[n - 1] == ' ')
		n--;
	if (size)
		out[n] = '\0';
	json_object_put(root);
}

static void sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Milliseconds from now to the deadline, rounded up: a sleep of that long ends past it
 * (rounding down would wake just before it and spin through sub-millisecond polls). */
static long ms_until(uint64_t now, uint64_t deadline)
{
	return now >= deadline ? 0 : (long)((deadline - now + NS_PER_MS - 1) / NS_PER_MS);
}

/* ---- the sequence -------------------------------------------------------------------------- */

/* GET /api/status until ready or the deadline. 0 with st filled, or an errno. */
static int wait_ready(struct kb_client *c, uint64_t timeout_ns, struct kibana_report *rep,
		      struct kibana_status *st, char *err, size_t errlen)
{
	uint64_t start = clock_mono_ns(), deadline = start + timeout_ns;
	long delay = KB_POLL_FIRST_MS;
	char last[300] = "no answer", msg[512];
	bool said = false;

	for (;;) {
		uint64_t now = clock_mono_ns();
		long left_ms = ms_until(now, deadline);
		int status = 0, rc;

		rc = kb_request(c, "GET", "/api/status", NULL, NULL, 0,
				left_ms < KB_STATUS_TIMEOUT_MS ? left_ms : KB_STATUS_TIMEOUT_MS,
				&status, msg, sizeof(msg));
		rep->status_polls++;
		if (rc == -EPROTO || rc == -ENOMEM) {
			/* TLS set-up or verification: waiting does not fix it */
			http_set_err(err, errlen, "%s", msg);
			return rc;
		}
		if (rc < 0) {
			copy_str(last, sizeof(last), msg);
		} else if (status == 401 || status == 403) {
			answer_message(c, msg, sizeof(msg));
			http_set_err(
			    err, errlen,
			    "GET %s/api/status: HTTP %d (check setup.kibana.username/password "
			    "or api_key): %.200s",
			    c->base, status, msg);
			return -EACCES;
		} else if (status == 404) {
			http_set_err(err, errlen,
				     "GET %s/api/status: HTTP 404: no Kibana API there (check "
				     "setup.kibana.host and setup.kibana.path)",
				     c->base);
			return -ENOENT;
		} else {
			int prc = kibana_status_parse(c->body.p, c->body.len, st, msg, sizeof(msg));

			if (prc == 0 && status == 200 && st->ready) {
				copy_str(rep->version, sizeof(rep->version), st->number);
				rep->major = st->major;
				rep->minor = st->minor;
				rep->patch = st->patch;
				log_info(KB_LOG, "Kibana %s at %s is ready", st->number, c->base);
				return 0;
			}
			if (prc == 0) {
				snprintf(last, sizeof(last), "HTTP %d, Kibana %s, %s %s", status,
					 st->number,
					 st->format == KIBANA_STATUS_V8 ? "level" : "state",
					 st->level);
			} else {
				char text[160];

				answer_message(c, text, sizeof(text));
				snprintf(last, sizeof(last), "HTTP %d: %s", status, text);
			}
		}
		if (!said) {
			log_info(KB_LOG, "waiting for Kibana at %s (%s)", c->base, last);
			said = true;
		}
		now = clock_mono_ns();
		if (now >= deadline) {
			http_set_err(err, errlen, "Kibana at %s not ready after %llu s; last: %s",
				     c->base, (unsigned long long)((now - start) / NS_PER_SEC),
				     last);
			return -ETIMEDOUT;
		}
		left_ms = ms_until(now, deadline);
		sleep_ms(delay < left_ms ? delay : left_ms);
		delay = delay * 2 < KB_POLL_MAX_MS ? delay * 2 : KB_POLL_MAX_MS;
	}
}

static int read_bundle(const char *path, struct strbuf *out, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	char buf[65536];
	size_t n;
	int rc = 0;

	if (!f) {
		rc = errno == ENOENT ? -ENOENT : -EINVAL;
		http_set_err(err, errlen, "dashboards bundle %s: %s", path, strerror(errno));
		return rc;
	}
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
		if (n > KIBANA_BUNDLE_MAX - out->len) {
			http_set_err(err, errlen, "dashboards bundle %s: over %lu MiB", path,
				     KIBANA_BUNDLE_MAX >> 20);
			rc = -EFBIG;
			break;
		}
		strbuf_append(out, buf, n);
	}
	if (!rc && ferror(f)) {
		http_set_err(err, errlen, "dashboards bundle %s: read error", path);
		rc = -EIO;
	}
	fclose(f);
	if (!rc && out->len && out->p[out->len - 1] != '\n')
		strbuf_putc(out, '\n'); /* Kibana splits on \n; end the last object too */
	if (!rc && out->err) {
		http_set_err(err, errlen, "out of memory");
		rc = -ENOMEM;
	}
	return rc;
}

static bool retry_transport(int rc)
{
	return rc == -ECONNREFUSED || rc == -ECONNRESET || rc == -ETIMEDOUT ||
	       rc == -EHOSTUNREACH || rc == -ENETUNREACH || rc == -EIO;
}

/* POST the body, again on 5xx/429 and lost connections. */
static int import(struct kb_client *c, const char *path, const char *ctype,
		  const struct strbuf *body, struct kibana_report *rep, char *err, size_t errlen)
{
	const char *const extra[] = {"kbn-xsrf: true", ctype, NULL};
	struct metric *m_retries = metrics_counter("setup.dashboards.retries");
	long delay = KB_IMPORT_BACKOFF_MS;
	char msg[512];
	int status = 0, rc = -EIO;

	for (int attempt = 0; attempt < KB_IMPORT_TRIES; attempt++) {
		if (attempt) {
			metric_inc(m_retries);
			sleep_ms(delay);
			delay *= 2;
		}
		rc = kb_request(c, "POST", path, extra, body->p, body->len, KB_IMPORT_TIMEOUT_MS,
				&status, msg, sizeof(msg));
		rep->import_attempts++;
		if (rc < 0) {
			http_set_err(err, errlen, "%s", msg);
			if (!retry_transport(rc))
				return rc;
			log_warn(KB_LOG, "import: %s (attempt %d of %d)", msg, attempt + 1,
				 KB_IMPORT_TRIES);
			continue;
		}
		if (status == 200)
			return kibana_import_parse(c->body.p, c->body.len, rep, err, errlen);
		answer_message(c, msg, sizeof(msg));
		if (status == 401 || status == 403) {
			http_set_err(
			    err, errlen,
			    "POST %s%s: HTTP %d (the user needs the saved objects privileges of "
			    "Kibana): %.200s",
			    c->base, path, status, msg);
			return -EACCES;
		}
		if (status == 413) {
			http_set_err(err, errlen,
				     "POST %s%s: HTTP 413: the bundle (%zu bytes) is over "
				     "savedObjects.maxImportPayloadBytes (or a proxy's limit)",
				     c->base, path, body->len);
			return -EFBIG;
		}
		http_set_err(err, errlen, "POST %s%s: HTTP %d: %.300s", c->base, path, status, msg);
		if (status < 500 && status != 429)
			return -EIO;
		log_warn(KB_LOG, "import: HTTP %d (attempt %d of %d)", status, attempt + 1,
			 KB_IMPORT_TRIES);
		rc = -EIO;
	}
	return rc;
}

int kibana_load_dashboards(const struct hb_config *cfg, const char *agent_version,
			   struct kibana_report *rep, char *err, size_t errlen)
{
	struct kb_client *c = NULL;
	struct kibana_status st;
	struct strbuf bundle, body;
	char path[256], boundary[KIBANA_BOUNDARY_MAX], ctype[128];
	int rc;

	memset(rep, 0, sizeof(*rep));
	if (errlen)
		err[0] = '\0';
	strbuf_init(&bundle);
	strbuf_init(&body);
	if (kibana_import_path(cfg->kibana_space_id, path, sizeof(path)) < 0) {
		http_set_err(
		    err, errlen,
		    "setup.kibana.space.id \"%.100s\": lower-case letters, digits, '_' and '-'",
		    cfg->kibana_space_id);
		rc = -EINVAL;
		goto out;
	}
	c = client_new(cfg, agent_version, err, errlen);
	if (!c) {
		rc = -EINVAL;
		goto out;
	}
	rc = wait_ready(c, cfg->dashboards_timeout, rep, &st, err, errlen);
	if (rc < 0)
		goto out;
	rc = kibana_bundle_path(cfg->dashboards_directory, st.major, st.minor, rep->bundle,
				sizeof(rep->bundle), err, errlen);
	if (rc < 0)
		goto out;
	rc = read_bundle(rep->bundle, &bundle, err, errlen);
	if (rc < 0)
		goto out;
	rep->objects = kibana_bundle_count(bundle.p, bundle.len);
	if (rep->objects == 0) {
		http_set_err(err, errlen, "dashboards bundle %s: no saved objects", rep->bundle);
		rc = -EBADMSG;
		goto out;
	}
	rc = kibana_boundary_new(bundle.p, bundle.len, boundary);
	if (rc == 0)
		rc = kibana_multipart_build(boundary, bundle.p, bundle.len, &body);
	if (rc < 0) {
		http_set_err(err, errlen, "import body: %s", strerror(-rc));
		goto out;
	}
	snprintf(ctype, sizeof(ctype), "Content-Type: multipart/form-data; boundary=%s", boundary);
	log_info(KB_LOG, "importing %zu saved objects from %s into Kibana %s at %s%s", rep->objects,
		 rep->bundle, rep->version, c->base, path);
	rc = import(c, path, ctype, &body, rep, err, errlen);
	metric_add(metrics_counter("setup.dashboards.loaded"), rep->success_count);
	metric_add(metrics_counter("setup.dashboards.failed"), rep->error_count);
	if (rc == 0)
		log_info(KB_LOG, "dashboards loaded: %zu saved objects", rep->success_count);
	for (size_t i = 0; i < rep->nfailures; i++) {
		const struct kibana_failure *f = &rep->failures[i];

		log_warn(KB_LOG, "not imported: %s \"%s\" (%s): %s%s%s", f->type, f->id, f->title,
			 f->error_type, f->detail[0] ? ": " : "", f->detail);
	}
out:
	client_free(c);
	strbuf_free(&bundle);
	strbuf_free(&body);
	return rc;
}
