/* http.h — the libcurl plumbing the Elasticsearch client (es.c) and the Kibana loader
 * (kibana.c) share (private to shipper/): global init, error texts, CA bundles,
 * header lists, curl errors as errnos, version numbers. */
#ifndef HOSTBEAT_SHIPPER_HTTP_H
#define HOSTBEAT_SHIPPER_HTTP_H

#include <curl/curl.h>
#include <stddef.h>

#include "hostbeat/config.h"
#include "hostbeat/strbuf.h"

/* curl_global_init() once per process (thread-safe). 0, or -EIO with the reason in err. */
int http_global_init(char *err, size_t errlen);

/* printf into err (NULL or errlen 0: nothing). */
void http_set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Append the CA files `cas` to pem as one PEM text, each at most max_file bytes and
 * holding a certificate; `key` names the setting in messages. 0, -EINVAL or -ENOMEM
 * with the reason in err. */
int http_load_cas(const struct cfg_strlist *cas, const char *key, size_t max_file,
		  struct strbuf *pem, char *err, size_t errlen);

/* curl_slist_append() that keeps the list on failure. 0 or -ENOMEM. */
int http_add_header(struct curl_slist **l, const char *line);

/* A failed transfer as a negative errno: -ECONNREFUSED, -EHOSTUNREACH, -ENETUNREACH,
 * -ETIMEDOUT, -EPROTO (TLS, protocol), -ECONNRESET, -EBADMSG, -ENOMEM, else -EIO. */
int http_map_curl_error(CURL *h, CURLcode rc);

/* "8.15.0", "8.0.0-rc1", "7.17", "9.1.0-SNAPSHOT" → major/minor/patch (0 when absent).
 * 0 or -EINVAL. */
int http_version_parse(const char *s, int *major, int *minor, int *patch);

#endif
