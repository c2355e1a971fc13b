/* es.h — the HTTP layer of the Elasticsearch output, on libcurl. It only moves bytes:
 * request bodies come from bulk.c (and the template code), answers go back to them.
 *
 * Spec: docs/reference/ecosystem.md §2.3 (auth, TLS), §2.7–2.8 (versions, OpenSearch),
 * §3 (GET / shape); Beats' libbeat/outputs/elasticsearch and tlscommon for the config
 * semantics copied here.
 *
 *   es_client_new(cfg)                     hosts, auth, headers, TLS checked once
 *   es_info()                              GET /: version, distribution, flavor
 *   es_request("POST", "/_bulk?…", …)      0 + status/body, or -errno (transport)
 *     └─ transport failure → the client moves to the next host (round robin); the
 *        caller backs off and sends again
 *
 * One libcurl easy handle per host, kept alive between requests (HTTP/1.1 keep-alive
 * and TCP keepalive). Counters: output.es.requests, output.es.transport_errors,
 * output.es.failovers; gauge output.es.latency_us (the last request).
 *
 * Thread-safety: a client belongs to one thread (the shipper's). The only global state
 * is curl_global_init(), run once (pthread_once) by the first es_client_new().
 */
#ifndef HOSTBEAT_SHIPPER_ES_H
#define HOSTBEAT_SHIPPER_ES_H

#include <stdbool.h>
#include <stddef.h>

struct hb_config;

/* Response bodies bigger than this are an error (-EFBIG), the connection is dropped. */
#define ES_MAX_RESPONSE_DEFAULT (64UL << 20)
#define ES_DEFAULT_PORT 9200
#define ES_URL_MAX 1024 /* "https://[host]:port/prefix" of one host */

struct es_client; /* opaque */

/* Returns new — caller frees with es_client_free(). Borrows cfg for the call (everything
 * is copied): output.elasticsearch.{hosts,protocol,path,username,password,api_key,
 * headers,timeout} and ssl.*. CA files, the client certificate and key are read or
 * checked here. NULL with a one-line reason in err (always NUL-terminated when
 * errlen > 0) on a bad value or allocation failure. */
struct es_client *es_client_new(const struct hb_config *cfg, char *err, size_t errlen);
/* NULL is a no-op. */
void es_client_free(struct es_client *c);

/* Cap response bodies at `bytes` (default ES_MAX_RESPONSE_DEFAULT). */
void es_client_set_max_body(struct es_client *c, size_t bytes);

/* Base URL of the host the next request goes to, e.g. "https://es1:9200/prefix"
 * (never credentials). Borrowed; valid until es_client_free(). */
const char *es_client_host(const struct es_client *c);
size_t es_client_host_count(const struct es_client *c);
/* Why the last es_request()/es_info() failed ("" when it did not). Borrowed; valid
 * until the next call on the client. */
const char *es_client_error(const struct es_client *c);

struct es_response {
	int status;           /* HTTP status code */
	const char *body;     /* NUL-terminated (not counted in len); content-decoded */
	size_t len;           /* body and host are borrowed from the client: valid */
	const char *host;     /* until the next es_request()/es_info() or es_client_free() */
	bool elastic_product; /* the answer carried X-Elastic-Product: Elasticsearch */
};

/* Send one request to the current host.
 *   method          "GET", "HEAD", "POST", "PUT", "DELETE"
 *   path_and_query  starts with '/'; the host's path prefix is put in front
 *   content_type    NULL = application/json when there is a body
 *   body, len       borrowed for the call; NULL/0 = no body
 *   gzip            body is gzip data: send Content-Encoding: gzip
 * Returns 0 when an HTTP answer arrived (any status, in *r), or a negative errno:
 *   transport failures (the client then moves to the next host; counted in
 *   output.es.transport_errors / output.es.failovers):
 *     -ECONNREFUSED, -EHOSTUNREACH (also DNS), -ENETUNREACH, -ETIMEDOUT,
 *     -ECONNRESET (connection dropped, no or partial answer),
 *     -EPROTO (TLS handshake or verification, not HTTP)
 *   not the host's fault (no failover): -EFBIG (answer over the body cap),
 *     -EINVAL (bad argument), -ENOMEM.
 * es_client_error() says more. */
int es_request(struct es_client *c, const char *method, const char *path_and_query,
	       const char *content_type, const void *body, size_t len, bool gzip,
	       struct es_response *r);

#define ES_DIST_MAX 16
#define ES_FLAVOR_MAX 32
#define ES_CLUSTER_MAX 128
#define ES_NUMBER_MAX 32

struct es_info {
	int major, minor, patch;
	char number[ES_NUMBER_MAX];        /* version.number as sent, "8.15.0" */
	char distribution[ES_DIST_MAX];    /* "elasticsearch" | "opensearch" */
	char build_flavor[ES_FLAVOR_MAX];  /* "default", "serverless", "oss", "" */
	char cluster_name[ES_CLUSTER_MAX]; /* "" when absent */
	bool opensearch;
	bool serverless;      /* build_flavor "serverless" */
	bool product_missing; /* ES >= 7.14 without X-Elastic-Product: worth a warning */
};

/* GET / on the current host, parsed with es_info_parse() (the warning is logged).
 * Returns 0; a transport errno as es_request(); -EACCES (401/403); -EIO (another
 * non-2xx status); -EBADMSG (no usable version); -EOPNOTSUPP (a server we cannot
 * speak to). err gets a one-line reason on failure (may be NULL). */
int es_info(struct es_client *c, struct es_info *info, char *err, size_t errlen);

/* ---- pure parts, exposed for tests ----------------------------------------------- */

/* Parse a GET / body. product_header: the answer carried X-Elastic-Product:
 * Elasticsearch. Returns 0, -EBADMSG (not JSON, no version.number, bad number) or
 * -EOPNOTSUPP (Elasticsearch < 7.0, OpenSearch < 1.0) with a reason in err. */
int es_info_parse(const char *body, size_t len, bool product_header, struct es_info *info,
		  char *err, size_t errlen);

/* One output.elasticsearch.hosts entry → base URL "scheme://host:port[/prefix]" in url.
 *   "host", "host:port", "[v6]", "[v6]:port", "http(s)://host[:port][/prefix]"
 * def_scheme ("http" | "https") applies without a scheme, def_path ("" = none) without
 * a path in the entry; the port defaults to 9200. The prefix is written with one
 * leading '/' and no trailing one. Returns 0, or -EINVAL with a reason in err. */
int es_host_parse(const char *spec, const char *def_scheme, const char *def_path, char *url,
		  size_t urlsize, char *err, size_t errlen);

/* The Authorization header line for the credentials, in out:
 *   username (+ password) → "Authorization: Basic base64(user:password)"
 *   api_key "id:key"      → "Authorization: ApiKey base64(id:key)"
 *   api_key already base64 (no ':') → "Authorization: ApiKey <as given>"
 * Returns the line's length, 0 when there are no credentials (out = ""), or -EINVAL
 * (both kinds set, password without username, a bad api_key) / -ENAMETOOLONG with a
 * reason in err. */
int es_auth_header(const char *username, const char *password, const char *api_key, char *out,
		   size_t size, char *err, size_t errlen);

/* Hex SHA-256 (64 lowercase digits + NUL into hex) of the DER inside a PEM certificate.
 * Returns 0, or -EINVAL when pem holds no decodable certificate. */
int es_cert_fingerprint(const char *pem, size_t len, char hex[65]);

#endif
