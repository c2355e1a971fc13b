/* es.c — HTTP to Elasticsearch/OpenSearch on libcurl: hosts, auth, TLS, failover (es.h).
 *
 * Spec: docs/reference/ecosystem.md §2.3 (auth, TLS), §2.7–2.8 (versions, OpenSearch),
 * §3 (GET /); config semantics as Beats' libbeat (outputs/elasticsearch, common/
 * transport/tlscommon).
 *
 * A request on the wire (one keep-alive connection per host):
 *
 *   POST /prefix/_bulk?filter_path=… HTTP/1.1
 *   Host: es1:9200
 *   User-Agent: hostbeat/0.1.0
 *   Accept-Encoding: gzip                    answers are decoded by curl
 *   Accept: application/json
 *   Authorization: Basic dXNlcjpwYXNz        or ApiKey base64(id:api_key)
 *   X-Custom: v                              output.elasticsearch.headers
 *   Content-Type: application/x-ndjson
 *   Content-Encoding: gzip                   when the body is gzip
 *   Content-Length: 1234                     never Expect: 100-continue
 *
 * TLS choices (ssl.* of output.elasticsearch, used for https hosts when ssl.enabled):
 * - certificate_authorities: every file is read at start-up and the PEM texts are
 *   handed to curl as one in-memory bundle (CURLOPT_CAINFO_BLOB, no temp file);
 *   CAPATH is switched off so, as in Beats, only those CAs are trusted.
 * - ca_trusted_fingerprint without OpenSSL headers: before the first request to a
 *   host, a probe handle connects with CURLOPT_CONNECT_ONLY (TLS handshake, nothing
 *   sent, so no credentials leak to an unverified peer) and reads the presented chain
 *   with CURLOPT_CERTINFO. A CA certificate (basicConstraints CA:TRUE) whose DER
 *   SHA-256 matches is added to the trusted bundle, and the real connection then
 *   verifies the chain and host name normally (verification_mode) — the same outcome as
 *   Beats' trustRootCA(). No match: normal verification decides. A verification failure
 *   later makes the next request probe again (the server's chain may have changed).
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

#include <curl/curl.h>
#include <json-c/json.h>

#include "hostbeat/base64.h"
#include "hostbeat/clock.h"
#include "hostbeat/config.h"
#include "hostbeat/log.h"
#include "hostbeat/mem.h"
#include "hostbeat/metrics.h"
#include "hostbeat/strbuf.h"
#include "shipper/es.h"
#include "shipper/http.h"

#ifndef HB_VERSION
#define HB_VERSION "0.1.0" /* as core/main.c */
#endif

#define ES_LOG "output.es"
#define ES_CA_FILE_MAX (4UL << 20)       /* bytes read from one CA file */
#define ES_BODY_KEEP (4UL << 20)         /* a bigger response buffer is released after use */
#define ES_CONNECT_TIMEOUT_MAX_MS 10000L /* connect timeout: min(10 s, timeout) */
#define ES_KEEPALIVE_IDLE_S 60L
#define ES_KEEPALIVE_INTVL_S 30L

enum es_verify { ES_VERIFY_NONE, ES_VERIFY_CERTIFICATE, ES_VERIFY_FULL };

struct es_host {
	char url[ES_URL_MAX]; /* base URL, prefix included */
	bool https;
	bool probed; /* ca_trusted_fingerprint: the chain was looked at */
	CURL *h;
};

struct es_client {
	struct es_host *host;
	size_t nhosts, cur;
	struct curl_slist *headers; /* sent with every request */
	long timeout_ms, connect_ms;

	/* TLS (https hosts, ssl.enabled) */
	bool tls;
	enum es_verify verify;
	struct strbuf ca_pem; /* configured CA files, concatenated */
	char fingerprint[65]; /* lowercase hex, "" = none */
	char *cert, *key, *key_pass;

	/* the answer being received */
	struct strbuf body;
	struct strbuf url; /* host URL + path of the request */
	size_t max_body;
	bool over_cap;
	bool product; /* X-Elastic-Product: Elasticsearch seen */
	char curl_err[CURL_ERROR_SIZE];
	char err[ES_URL_MAX + CURL_ERROR_SIZE + 512];

	struct metric *m_requests, *m_transport, *m_failovers, *m_latency;
};

/* ---- SHA-256 (FIPS 180-4), for ca_trusted_fingerprint ----------------------------- */

static const uint32_t sha256_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static uint32_t ror32(uint32_t x, unsigned n)
{
	return x >> n | x << (32 - n);
}

static void sha256_block(uint32_t st[8], const uint8_t b[64])
{
	uint32_t w[64], v[8], t1, t2;

	for (int i = 0; i < 16; i++)
		w[i] = (uint32_t)b[4 * i] << 24 | (uint32_t)b[4 * i + 1] << 16 |
		       (uint32_t)b[4 * i + 2] << 8 | b[4 * i + 3];
	for (int i = 16; i < 64; i++)
		w[i] = w[i - 16] + (ror32(w[i - 15], 7) ^ ror32(w[i - 15], 18) ^ w[i - 15] >> 3) +
		       w[i - 7] + (ror32(w[i - 2], 17) ^ ror32(w[i - 2], 19) ^ w[i - 2] >> 10);
	memcpy(v, st, sizeof(v));
	for (int i = 0; i < 64; i++) {
		t1 = v[7] + (ror32(v[4], 6) ^ ror32(v[4], 11) ^ ror32(v[4], 25)) +
		     ((v[4] & v[5]) ^ (~v[4] & v[6])) + sha256_k[i] + w[i];
		t2 = (ror32(v[0], 2) ^ ror32(v[0], 13) ^ ror32(v[0], 22)) +
		     ((v[0] & v[1]) ^ (v[0] & v[2]) ^ (v[1] & v[2]));
		memmove(v + 1, v, 7 * sizeof(v[0]));
		v[4] += t1;
		v[0] = t1 + t2;
	}
	for (int i = 0; i < 8; i++)
		st[i] += v[i];
}

static void sha256(const uint8_t *p, size_t len, uint8_t out[32])
{
	uint32_t st[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
			  0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
	uint8_t tail[128] = {0};
	uint64_t bits = (uint64_t)len * 8;
	size_t n = len % 64, tlen = n < 56 ? 64 : 128;

	for (size_t i = 0; len - i >= 64; i += 64)
		sha256_block(st, p + i);
	memcpy(tail, p + (len - n), n);
	tail[n] = 0x80;
	for (int i = 0; i < 8; i++)
		tail[tlen - 1 - i] = (uint8_t)(bits >> (8 * i));
	sha256_block(st, tail);
	if (tlen == 128)
		sha256_block(st, tail + 64);
	for (int i = 0; i < 8; i++) {
		out[4 * i] = (uint8_t)(st[i] >> 24);
		out[4 * i + 1] = (uint8_t)(st[i] >> 16);
		out[4 * i + 2] = (uint8_t)(st[i] >> 8);
		out[4 * i + 3] = (uint8_t)st[i];
	}
}

/* ---- PEM → DER → fingerprint --------------------------------------------------------- */

static int b64_value(unsigned char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '+')
		return 62;
	if (ch == '/')
		return 63;
	return -1;
}

/* Decode base64 text (whitespace ignored, '=' ends it) into out (room for len * 3 / 4).
 * Returns the byte count, or -EINVAL on another character. */
static long b64_decode(const char *s, size_t len, uint8_t *out)
{
	uint32_t acc = 0;
	unsigned nbits = 0;
	long o = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];
		int v;

		if (ch == '=')
			break;
		if (isspace(ch))
			continue;
		v = b64_value(ch);
		if (v < 0)
			return -EINVAL;
		acc = acc << 6 | (uint32_t)v;
		nbits += 6;
		if (nbits >= 8) {
			nbits -= 8;
			out[o++] = (uint8_t)(acc >> nbits);
		}
	}
	return o;
}

static const char *mem_find(const char *p, size_t len, const char *needle)
{
	size_t n = strlen(needle);

	for (size_t i = 0; len - i >= n && i < len; i++)
		if (memcmp(p + i, needle, n) == 0)
			return p + i;
	return NULL;
}

int es_cert_fingerprint(const char *pem, size_t len, char hex[65])
{
	static const char begin[] = "-----BEGIN CERTIFICATE-----";
	static const char end[] = "-----END CERTIFICATE-----";
	const char *b, *e;
	uint8_t *der, md[32];
	long n;

	hex[0] = '\0';
	b = mem_find(pem, len, begin);
	if (!b)
		return -EINVAL;
	b += sizeof(begin) - 1;
	e = mem_find(b, len - (size_t)(b - pem), end);
	if (!e)
		return -EINVAL;
	der = hb_malloc((size_t)(e - b) / 4 * 3 + 3);
	if (!der)
		return -ENOMEM;
	n = b64_decode(b, (size_t)(e - b), der);
	if (n < 2 || der[0] != 0x30) { /* a DER certificate is a SEQUENCE */
		hb_free(der);
		return -EINVAL;
	}
	sha256(der, (size_t)n, md);
	hb_free(der);
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	return 0;
}

/* "AB:cd:…" or "abcd…" → 64 lowercase hex digits. 0 or -EINVAL. */
static int fingerprint_normalise(const char *s, char out[65])
{
	size_t n = 0;

	for (; *s; s++) {
		if (*s == ':')
			continue;
		if (!isxdigit((unsigned char)*s) || n == 64)
			return -EINVAL;
		out[n++] = (char)tolower((unsigned char)*s);
	}
	out[n] = '\0';
	return n == 64 ? 0 : -EINVAL;
}

/* ---- hosts --------------------------------------------------------------------------- */

static bool host_char_ok(unsigned char ch)
{
	return isalnum(ch) || ch == '-' || ch == '.' || ch == '_';
}

static bool path_char_ok(unsigned char ch)
{
	return ch > ' ' && ch < 0x7f && ch != '?' && ch != '#';
}

/* Port text [p, p + n) → 1..65535. */
static int parse_port(const char *p, size_t n, unsigned *port)
{
	unsigned v = 0;

	if (n == 0 || n > 5)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -EINVAL;
		v = v * 10 + (unsigned)(p[i] - '0');
	}
	if (v < 1 || v > 65535)
		return -EINVAL;
	*port = v;
	return 0;
}

int es_host_parse(const char *spec, const char *def_scheme, const char *def_path, char *url,
		  size_t urlsize, char *err, size_t errlen)
{
	const char *scheme = def_scheme, *auth, *sep, *host, *path, *colon;
	size_t slen, alen, hlen, plen;
	unsigned port = ES_DEFAULT_PORT;
	int n;

	if (urlsize)
		url[0] = '\0';
	if (!spec || !*spec) {
		http_set_err(err, errlen, "empty host");
		return -EINVAL;
	}
	for (const char *q = spec; *q; q++) {
		if ((unsigned char)*q <= ' ' || *q == 0x7f) {
			http_set_err(err, errlen, "host \"%.100s\": spaces or control characters",
				     spec);
			return -EINVAL;
		}
	}
	sep = strstr(spec, "://");
	if (sep) {
		scheme = spec;
		slen = (size_t)(sep - spec);
		auth = sep + 3;
	} else {
		slen = scheme ? strlen(scheme) : 0;
		auth = spec;
	}
	if (slen == 4 && strncasecmp(scheme, "http", 4) == 0)
		scheme = "http";
	else if (slen == 5 && strncasecmp(scheme, "https", 5) == 0)
		scheme = "https";
	else {
		http_set_err(err, errlen, "host \"%.100s\": scheme must be http or https", spec);
		return -EINVAL;
	}
	if (strpbrk(auth, "?#@")) {
		http_set_err(err, errlen,
			     "host \"%.100s\": no query, fragment or credentials in a host (use "
			     "username/password)",
			     spec);
		return -EINVAL;
	}
	path = strchr(auth, '/');
	alen = path ? (size_t)(path - auth) : strlen(auth);
	if (!path || !path[1] || strcmp(path, "/") == 0)
		path = def_path ? def_path : "";

	/* authority: [v6]:port | [v6] | name:port | name */
	host = auth;
	if (alen && auth[0] == '[') {
		const char *rb = memchr(auth, ']', alen);

		if (!rb || rb == auth + 1) {
			http_set_err(err, errlen, "host \"%.100s\": bad [IPv6] address", spec);
			return -EINVAL;
		}
		for (const char *q = auth + 1; q < rb; q++) {
			if (!isxdigit((unsigned char)*q) && *q != ':' && *q != '.') {
				http_set_err(err, errlen, "host \"%.100s\": bad [IPv6] address",
					     spec);
				return -EINVAL;
			}
		}
		if (!memchr(auth + 1, ':', (size_t)(rb - auth - 1))) {
			http_set_err(err, errlen, "host \"%.100s\": bad [IPv6] address", spec);
			return -EINVAL;
		}
		hlen = (size_t)(rb - auth) + 1;
		colon = hlen < alen ? auth + hlen : NULL;
		if (colon && *colon != ':') {
			http_set_err(err, errlen, "host \"%.100s\": text after ]", spec);
			return -EINVAL;
		}
	} else {
		colon = memchr(auth, ':', alen);
		if (colon && memchr(colon + 1, ':', alen - (size_t)(colon + 1 - auth))) {
			http_set_err(
			    err, errlen,
			    "host \"%.100s\": an IPv6 address goes in brackets, [::1]:9200", spec);
			return -EINVAL;
		}
		hlen = colon ? (size_t)(colon - auth) : alen;
		if (hlen == 0) {
			http_set_err(err, errlen, "host \"%.100s\": no host name", spec);
			return -EINVAL;
		}
		for (size_t i = 0; i < hlen; i++) {
			if (!host_char_ok((unsigned char)auth[i])) {
				http_set_err(err, errlen,
					     "host \"%.100s\": bad character in host name", spec);
				return -EINVAL;
			}
		}
	}
	if (colon && parse_port(colon + 1, alen - (size_t)(colon + 1 - auth), &port) < 0) {
		http_set_err(err, errlen, "host \"%.100s\": port must be 1..65535", spec);
		return -EINVAL;
	}

	/* prefix: one leading '/', no trailing '/' */
	while (*path == '/')
		path++;
	plen = strlen(path);
	while (plen && path[plen - 1] == '/')
		plen--;
	for (size_t i = 0; i < plen; i++) {
		if (!path_char_ok((unsigned char)path[i])) {
			http_set_err(err, errlen, "host \"%.100s\": bad character in path \"%s\"",
				     spec, path);
			return -EINVAL;
		}
	}
	n = snprintf(url, urlsize, "%s://%.*s:%u%s%.*s", scheme, (int)hlen, host, port,
		     plen ? "/" : "", (int)plen, path);
	if (n < 0 || (size_t)n >= urlsize) {
		if (urlsize)
			url[0] = '\0';
		http_set_err(err, errlen, "host \"%.100s\": URL too long", spec);
		return -EINVAL;
	}
	return 0;
}

/* ---- auth ----------------------------------------------------------------------------- */

static bool is_base64_text(const char *s)
{
	size_t n = strlen(s), pad = 0;

	if (n == 0 || n % 4)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '=') {
			pad++;
			continue;
		}
		if (pad || b64_value((unsigned char)s[i]) < 0)
			return false; /* '=' only at the end */
	}
	return pad <= 2;
}

int es_auth_header(const char *username, const char *password, const char *api_key, char *out,
		   size_t size, char *err, size_t errlen)
{
	static const char basic[] = "Authorization: Basic ";
	static const char apikey[] = "Authorization: ApiKey ";
	const char *prefix;
	char *cred = NULL;
	size_t clen, plen, need;
	int rc;

	if (size)
		out[0] = '\0';
	if (username && !*username)
		username = NULL;
	if (password && !*password)
		password = NULL;
	if (api_key && !*api_key)
		api_key = NULL;
	if (api_key && (username || password)) {
		http_set_err(err, errlen, "set either api_key or username/password, not both");
		return -EINVAL;
	}
	if (password && !username) {
		http_set_err(err, errlen, "password without username");
		return -EINVAL;
	}
	if (!api_key && !username)
		return 0;
	if (username && strchr(username, ':')) {
		http_set_err(err, errlen, "username must not contain ':'");
		return -EINVAL;
	}
	if (api_key && !strchr(api_key, ':')) {
		/* already the `encoded` form returned by POST /_security/api_key */
		if (!is_base64_text(api_key)) {
			http_set_err(err, errlen,
				     "api_key must be \"id:api_key\" or its base64 encoding");
			return -EINVAL;
		}
		rc = snprintf(out, size, "%s%s", apikey, api_key);
		goto check;
	}
	if (api_key && (api_key[0] == ':' || api_key[strlen(api_key) - 1] == ':')) {
		http_set_err(err, errlen, "api_key must be \"id:api_key\"");
		return -EINVAL;
	}
	prefix = api_key ? apikey : basic;
	plen = strlen(prefix);
	if (api_key) {
		cred = hb_strdup(api_key);
	} else {
		clen = strlen(username) + 1 + (password ? strlen(password) : 0) + 1;
		cred = hb_malloc(clen);
		if (cred)
			snprintf(cred, clen, "%s:%s", username, password ? password : "");
	}
	if (!cred) {
		http_set_err(err, errlen, "out of memory");
		return -ENOMEM;
	}
	clen = strlen(cred);
	need = plen + BASE64_ENCODED_SIZE(clen);
	if (size < need) {
		hb_free(cred);
		http_set_err(err, errlen, "credentials too long");
		return -ENAMETOOLONG;
	}
	memcpy(out, prefix, plen);
	base64_encode(cred, clen, out + plen, size - plen);
	memset(cred, 0, clen);
	hb_free(cred);
	return (int)strlen(out);
check:
	if (rc < 0 || (size_t)rc >= size) {
		if (size)
			out[0] = '\0';
		http_set_err(err, errlen, "credentials too long");
		return -ENAMETOOLONG;
	}
	return rc;
}

/* ---- GET / ---------------------------------------------------------------------------- */

static const char *json_str(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* "8.15.0", "8.0.0-rc1", "7.17", "9.1.0-SNAPSHOT" → major/minor/patch. */
int es_info_parse(const char *body, size_t len, bool product_header, struct es_info *info,
		  char *err, size_t errlen)
{
	struct json_tokener *tok;
	struct json_object *root = NULL, *ver;
	const char *number, *dist, *flavor, *cluster;
	int rc = -EBADMSG;

	memset(info, 0, sizeof(*info));
	if (!body || len > INT_MAX) {
		http_set_err(err, errlen, "GET /: no body");
		return -EBADMSG;
	}
	tok = json_tokener_new();
	if (!tok) {
		http_set_err(err, errlen, "out of memory");
		return -ENOMEM;
	}
	root = json_tokener_parse_ex(tok, body, (int)len);
	if (root) { /* only whitespace may follow the object */
		for (size_t i = json_tokener_get_parse_end(tok); i < len && root; i++) {
			if (!isspace((unsigned char)body[i])) {
				json_object_put(root);
				root = NULL;
			}
		}
	}
	if (!root || json_tokener_get_error(tok) != json_tokener_success ||
	    !json_object_is_type(root, json_type_object)) {
		http_set_err(err, errlen, "GET /: the answer is not a JSON object");
		goto out;
	}
	if (!json_object_object_get_ex(root, "version", &ver) ||
	    !json_object_is_type(ver, json_type_object) || !(number = json_str(ver, "number"))) {
		http_set_err(err, errlen, "GET /: no version.number in the answer");
		goto out;
	}
	if (http_version_parse(number, &info->major, &info->minor, &info->patch) < 0 ||
	    strlen(number) >= sizeof(info->number)) {
		http_set_err(err, errlen, "GET /: cannot read version.number \"%.40s\"", number);
		goto out;
	}
	snprintf(info->number, sizeof(info->number), "%s", number);
	dist = json_str(ver, "distribution");
	if (dist && strcmp(dist, "opensearch") == 0) {
		info->opensearch = true;
	} else if (dist && strcmp(dist, "elasticsearch") != 0) {
		http_set_err(err, errlen,
			     "GET /: unknown distribution \"%.40s\" (elasticsearch or opensearch)",
			     dist);
		rc = -EOPNOTSUPP;
		goto out;
	}
	snprintf(info->distribution, sizeof(info->distribution), "%s",
		 info->opensearch ? "opensearch" : "elasticsearch");
	flavor = json_str(ver, "build_flavor");
	snprintf(info->build_flavor, sizeof(info->build_flavor), "%s", flavor ? flavor : "");
	info->serverless = flavor && strcmp(flavor, "serverless") == 0;
	cluster = json_str(root, "cluster_name");
	snprintf(info->cluster_name, sizeof(info->cluster_name), "%s", cluster ? cluster : "");

	if (info->opensearch && info->major < 1) {
		http_set_err(err, errlen, "OpenSearch %s is not supported (1.0 or later needed)",
			     number);
		rc = -EOPNOTSUPP;
		goto out;
	}
	if (!info->opensearch && info->major < 7) {
		http_set_err(err, errlen, "Elasticsearch %s is not supported (7.0 or later needed)",
			     number);
		rc = -EOPNOTSUPP;
		goto out;
	}
	/* The official clients refuse 7.14+ servers without the header (not Elasticsearch,
	 * or a proxy that drops headers); we only warn. */
	info->product_missing = !info->opensearch && !product_header &&
				(info->major > 7 || (info->major == 7 && info->minor >= 14));
	rc = 0;
out:
	json_object_put(root);
	json_tokener_free(tok);
	return rc;
}

/* ---- the client ---------------------------------------------------------------------- */

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	struct es_client *c = arg;
	size_t len = size * n;

	if (len > c->max_body - c->body.len) {
		c->over_cap = true;
		return 0; /* CURLE_WRITE_ERROR: the transfer stops, the connection is closed */
	}
	if (strbuf_append(&c->body, p, len) < 0)
		return 0;
	return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
	static const char name[] = "X-Elastic-Product:";
	struct es_client *c = arg;
	size_t len = size * n, i = sizeof(name) - 1;

	if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
		c->product = false; /* a new response (after a 1xx) */
	} else if (len >= i && strncasecmp(p, name, i) == 0) {
		while (i < len && (p[i] == ' ' || p[i] == '\t'))
			i++;
		c->product = len - i >= 13 && memcmp(p + i, "Elasticsearch", 13) == 0;
	}
	return len;
}

static bool header_named(const char *line, const char *name)
{
	size_t n = strlen(name);

	return strncasecmp(line, name, n) == 0 && line[n] == ':';
}

static bool cfg_has_header(const struct cfg_strlist *l, const char *name)
{
	for (size_t i = 0; i < l->n; i++)
		if (header_named(l->v[i], name))
			return true;
	return false;
}

/* Fixed headers: the user's first, then ours for names they did not set. */
static int build_headers(struct es_client *c, const struct hb_config *cfg, char *err, size_t errlen)
{
	static const char *const reserved[] = {"Content-Type",   "Content-Encoding",
					       "Content-Length", "Transfer-Encoding",
					       "Host",           "Expect"};
	char *auth = NULL;
	size_t asize;
	int rc;

	for (size_t i = 0; i < cfg->es_headers.n; i++) {
		const char *h = cfg->es_headers.v[i];

		if (!strchr(h, ':') || strpbrk(h, "\r\n")) {
			http_set_err(err, errlen, "output.elasticsearch.headers: bad header \"%s\"",
				     h);
			return -EINVAL;
		}
		for (size_t k = 0; k < sizeof(reserved) / sizeof(reserved[0]); k++) {
			if (header_named(h, reserved[k])) {
				http_set_err(
				    err, errlen,
				    "output.elasticsearch.headers: %s is set by the output",
				    reserved[k]);
				return -EINVAL;
			}
		}
		if (http_add_header(&c->headers, h) < 0)
			goto oom;
	}
	if (!cfg_has_header(&cfg->es_headers, "Accept") &&
	    http_add_header(&c->headers, "Accept: application/json") < 0)
		goto oom;
	if (http_add_header(&c->headers, "Expect:") < 0) /* no 100-continue round trip */
		goto oom;
	asize = 64 + BASE64_ENCODED_SIZE((cfg->es_username ? strlen(cfg->es_username) : 0) +
					 (cfg->es_password ? strlen(cfg->es_password) : 0) +
					 (cfg->es_api_key ? strlen(cfg->es_api_key) : 0) + 1);
	auth = hb_malloc(asize);
	if (!auth)
		goto oom;
	rc = es_auth_header(cfg->es_username, cfg->es_password, cfg->es_api_key, auth, asize, err,
			    errlen);
	if (rc < 0) {
		hb_free(auth);
		return rc;
	}
	if (rc > 0 && !cfg_has_header(&cfg->es_headers, "Authorization") &&
	    http_add_header(&c->headers, auth) < 0) {
		memset(auth, 0, asize);
		hb_free(auth);
		goto oom;
	}
	memset(auth, 0, asize);
	hb_free(auth);
	return 0;
oom:
	http_set_err(err, errlen, "out of memory");
	return -ENOMEM;
}

/* Read the CA files into one PEM bundle. */
static int load_cas(struct es_client *c, const struct cfg_strlist *cas, char *err, size_t errlen)
{
	return http_load_cas(cas, "ssl.certificate_authorities", ES_CA_FILE_MAX, &c->ca_pem, err,
			     errlen);
}

static int check_readable(const char *key, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");

	if (!f) {
		http_set_err(err, errlen, "%s: %s: %s", key, path, strerror(errno));
		return -EINVAL;
	}
	fclose(f);
	return 0;
}

static int load_tls(struct es_client *c, const struct hb_config *cfg, char *err, size_t errlen)
{
	const char *mode = cfg->ssl_verification_mode ? cfg->ssl_verification_mode : "full";
	int rc;

	c->tls = cfg->ssl_enabled;
	if (!c->tls)
		return 0; /* https hosts get curl's defaults: system CAs, full verification */
	if (strcmp(mode, "none") == 0) {
		c->verify = ES_VERIFY_NONE;
	} else if (strcmp(mode, "certificate") == 0) {
		c->verify = ES_VERIFY_CERTIFICATE;
	} else if (strcmp(mode, "full") == 0 || strcmp(mode, "strict") == 0) {
		c->verify = ES_VERIFY_FULL;
	} else {
		http_set_err(err, errlen,
			     "ssl.verification_mode \"%s\": full, strict, certificate or none",
			     mode);
		return -EINVAL;
	}
	rc = load_cas(c, &cfg->ssl_cas, err, errlen);
	if (rc < 0)
		return rc;
	if (cfg->ssl_ca_trusted_fingerprint && *cfg->ssl_ca_trusted_fingerprint &&
	    fingerprint_normalise(cfg->ssl_ca_trusted_fingerprint, c->fingerprint) < 0) {
		http_set_err(
		    err, errlen,
		    "ssl.ca_trusted_fingerprint: 64 hex digits (a SHA-256), colons allowed");
		return -EINVAL;
	}
	if (!!cfg->ssl_certificate != !!cfg->ssl_key) {
		http_set_err(err, errlen, "ssl.certificate and ssl.key go together");
		return -EINVAL;
	}
	if (cfg->ssl_certificate) {
		rc = check_readable("ssl.certificate", cfg->ssl_certificate, err, errlen);
		if (!rc)
			rc = check_readable("ssl.key", cfg->ssl_key, err, errlen);
		if (rc)
			return rc;
		c->cert = hb_strdup(cfg->ssl_certificate);
		c->key = hb_strdup(cfg->ssl_key);
		if (!c->cert || !c->key)
			goto oom;
	}
	if (cfg->ssl_key_passphrase && !(c->key_pass = hb_strdup(cfg->ssl_key_passphrase)))
		goto oom;
	return 0;
oom:
	http_set_err(err, errlen, "out of memory");
	return -ENOMEM;
}

#define SETOPT(h, opt, val) (curl_easy_setopt((h), (opt), (val)) == CURLE_OK)

/* TLS options shared by a host's handle and its fingerprint probe. */
static bool set_tls_common(struct es_client *c, CURL *h)
{
	bool ok = true;

	if (c->cert) {
		ok = ok && SETOPT(h, CURLOPT_SSLCERT, c->cert) && SETOPT(h, CURLOPT_SSLKEY, c->key);
		if (c->key_pass)
			ok = ok && SETOPT(h, CURLOPT_KEYPASSWD, c->key_pass);
	}
	return ok;
}

/* The trusted bundle: the configured CAs + `extra` (a learned CA, may be NULL). */
static bool set_cas(struct es_client *c, CURL *h, const char *extra, size_t elen)
{
	struct curl_blob blob = {.flags = CURL_BLOB_COPY};
	struct strbuf all;
	bool ok;

	if (!c->ca_pem.len && !elen)
		return true;
	strbuf_init(&all);
	strbuf_append(&all, c->ca_pem.p, c->ca_pem.len);
	strbuf_append(&all, extra, elen);
	if (all.err) {
		strbuf_free(&all);
		return false;
	}
	blob.data = all.p;
	blob.len = all.len;
	ok = SETOPT(h, CURLOPT_CAINFO_BLOB, &blob) && SETOPT(h, CURLOPT_CAPATH, (char *)NULL);
	strbuf_free(&all);
	return ok;
}

static CURL *handle_new(struct es_client *c, struct es_host *hs)
{
	CURL *h = curl_easy_init();
	bool ok;

	if (!h)
		return NULL;
	ok = SETOPT(h, CURLOPT_NOSIGNAL, 1L) && SETOPT(h, CURLOPT_PROTOCOLS_STR, "http,https") &&
	     SETOPT(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1) &&
	     SETOPT(h, CURLOPT_TCP_KEEPALIVE, 1L) &&
	     SETOPT(h, CURLOPT_TCP_KEEPIDLE, ES_KEEPALIVE_IDLE_S) &&
	     SETOPT(h, CURLOPT_TCP_KEEPINTVL, ES_KEEPALIVE_INTVL_S) &&
	     SETOPT(h, CURLOPT_TIMEOUT_MS, c->timeout_ms) &&
	     SETOPT(h, CURLOPT_CONNECTTIMEOUT_MS, c->connect_ms) &&
	     SETOPT(h, CURLOPT_USERAGENT, "hostbeat/" HB_VERSION) &&
	     SETOPT(h, CURLOPT_ACCEPT_ENCODING, "gzip") &&
	     SETOPT(h, CURLOPT_WRITEFUNCTION, on_body) && SETOPT(h, CURLOPT_WRITEDATA, c) &&
	     SETOPT(h, CURLOPT_HEADERFUNCTION, on_header) && SETOPT(h, CURLOPT_HEADERDATA, c) &&
	     SETOPT(h, CURLOPT_ERRORBUFFER, c->curl_err);
	if (ok && hs->https && c->tls) {
		ok = SETOPT(h, CURLOPT_SSL_VERIFYPEER, c->verify != ES_VERIFY_NONE ? 1L : 0L) &&
		     SETOPT(h, CURLOPT_SSL_VERIFYHOST, c->verify == ES_VERIFY_FULL ? 2L : 0L) &&
		     set_tls_common(c, h) && set_cas(c, h, NULL, 0);
	}
	if (!ok) {
		curl_easy_cleanup(h);
		return NULL;
	}
	return h;
}

struct es_client *es_client_new(const struct hb_config *cfg, char *err, size_t errlen)
{
	struct es_client *c;
	const char *proto = cfg->es_protocol && *cfg->es_protocol ? cfg->es_protocol : "http";
	uint64_t ms = cfg->es_timeout / NS_PER_MS;

	if (err && errlen)
		err[0] = '\0';
	if (http_global_init(err, errlen) < 0) {
		return NULL;
	}
	if (cfg->es_hosts.n == 0) {
		http_set_err(err, errlen, "output.elasticsearch.hosts is empty");
		return NULL;
	}
	c = hb_calloc(1, sizeof(*c));
	if (!c)
		goto oom;
	strbuf_init(&c->ca_pem);
	strbuf_init(&c->body);
	strbuf_init(&c->url);
	c->max_body = ES_MAX_RESPONSE_DEFAULT;
	c->timeout_ms = ms == 0 ? 1 : ms > LONG_MAX ? LONG_MAX : (long)ms;
	c->connect_ms =
	    c->timeout_ms < ES_CONNECT_TIMEOUT_MAX_MS ? c->timeout_ms : ES_CONNECT_TIMEOUT_MAX_MS;
	c->m_requests = metrics_counter("output.es.requests");
	c->m_transport = metrics_counter("output.es.transport_errors");
	c->m_failovers = metrics_counter("output.es.failovers");
	c->m_latency = metrics_gauge("output.es.latency_us");

	c->host = hb_calloc(cfg->es_hosts.n, sizeof(*c->host));
	if (!c->host)
		goto oom;
	for (size_t i = 0; i < cfg->es_hosts.n; i++) {
		struct es_host *hs = &c->host[c->nhosts];
		char msg[300];

		if (es_host_parse(cfg->es_hosts.v[i], proto, cfg->es_path, hs->url, sizeof(hs->url),
				  msg, sizeof(msg)) < 0) {
			http_set_err(err, errlen, "output.elasticsearch.hosts: %s", msg);
			goto fail;
		}
		hs->https = strncmp(hs->url, "https:", 6) == 0;
		c->nhosts++;
	}
	if (build_headers(c, cfg, err, errlen) < 0 || load_tls(c, cfg, err, errlen) < 0)
		goto fail;
	for (size_t i = 0; i < c->nhosts; i++) {
		c->host[i].h = handle_new(c, &c->host[i]);
		if (!c->host[i].h) {
			http_set_err(err, errlen, "libcurl: cannot set up a handle for %s",
				     c->host[i].url);
			goto fail;
		}
	}
	return c;
oom:
	http_set_err(err, errlen, "out of memory");
fail:
	es_client_free(c);
	return NULL;
}

void es_client_free(struct es_client *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->nhosts; i++)
		if (c->host[i].h)
			curl_easy_cleanup(c->host[i].h);
	hb_free(c->host);
	curl_slist_free_all(c->headers);
	strbuf_free(&c->ca_pem);
	strbuf_free(&c->body);
	strbuf_free(&c->url);
	hb_free(c->cert);
	hb_free(c->key);
	if (c->key_pass) {
		memset(c->key_pass, 0, strlen(c->key_pass));
		hb_free(c->key_pass);
	}
	hb_free(c);
}

void es_client_set_max_body(struct es_client *c, size_t bytes)
{
	c->max_body = bytes;
}

const char *es_client_host(const struct es_client *c)
{
	return c->host[c->cur].url;
}

size_t es_client_host_count(const struct es_client *c)
{
	return c->nhosts;
}

const char *es_client_error(const struct es_client *c)
{
	return c->err;
}

/* libcurl result → errno. *transport: the host is to blame (fail over). */
/* Out of memory is this agent's problem, not the host's: no failover for it. */
static int map_curl_error(CURL *h, CURLcode rc, bool *transport)
{
	int e = http_map_curl_error(h, rc);

	*transport = e != -ENOMEM;
	return e;
}

/* The chain of `hs` (CONNECT_ONLY: a handshake, nothing sent) → if a CA in it matches
 * ssl.ca_trusted_fingerprint, trust it on hs's handle. 0 (also: no match), or a
 * transport errno. */
static int probe_fingerprint(struct es_client *c, struct es_host *hs)
{
	struct curl_certinfo *ci = NULL;
	CURL *p = curl_easy_init();
	CURLcode crc;
	bool transport;
	int rc = 0, match = -1;

	if (!p)
		return -ENOMEM;
	if (!(SETOPT(p, CURLOPT_URL, hs->url) && SETOPT(p, CURLOPT_NOSIGNAL, 1L) &&
	      SETOPT(p, CURLOPT_PROTOCOLS_STR, "https") && SETOPT(p, CURLOPT_CONNECT_ONLY, 1L) &&
	      SETOPT(p, CURLOPT_CERTINFO, 1L) && SETOPT(p, CURLOPT_SSL_VERIFYPEER, 0L) &&
	      SETOPT(p, CURLOPT_SSL_VERIFYHOST, 0L) &&
	      SETOPT(p, CURLOPT_TIMEOUT_MS, c->timeout_ms) &&
	      SETOPT(p, CURLOPT_CONNECTTIMEOUT_MS, c->connect_ms) &&
	      SETOPT(p, CURLOPT_ERRORBUFFER, c->curl_err) && set_tls_common(c, p))) {
		curl_easy_cleanup(p);
		return -ENOMEM;
	}
	crc = curl_easy_perform(p);
	if (crc != CURLE_OK) {
		rc = map_curl_error(p, crc, &transport);
		snprintf(c->err, sizeof(c->err), "%s: %s", hs->url,
			 c->curl_err[0] ? c->curl_err : curl_easy_strerror(crc));
		goto out;
	}
	if (curl_easy_getinfo(p, CURLINFO_CERTINFO, &ci) != CURLE_OK || !ci)
		goto out;
	for (int i = 0; i < ci->num_of_certs && match < 0; i++) {
		const char *pem = NULL;
		bool is_ca = false;
		char hex[65];

		for (struct curl_slist *s = ci->certinfo[i]; s; s = s->next) {
			if (strncmp(s->data, "Cert:", 5) == 0)
				pem = s->data + 5;
			else if (strncmp(s->data, "X509v3 Basic Constraints:", 25) == 0)
				is_ca = strstr(s->data + 25, "CA:TRUE") != NULL;
		}
		if (pem && is_ca && es_cert_fingerprint(pem, strlen(pem), hex) == 0 &&
		    strcmp(hex, c->fingerprint) == 0) {
			match = i;
			if (!set_cas(c, hs->h, pem, strlen(pem)))
				rc = -ENOMEM;
		}
	}
	if (match < 0)
		log_warn(ES_LOG,
			 "%s: no CA certificate in the chain matches ssl.ca_trusted_fingerprint",
			 hs->url);
out:
	if (rc == 0)
		hs->probed = true;
	curl_easy_cleanup(p);
	return rc;
}

static bool method_known(const char *m)
{
	return strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0 || strcmp(m, "POST") == 0 ||
	       strcmp(m, "PUT") == 0 || strcmp(m, "DELETE") == 0;
}

static void failover(struct es_client *c)
{
	metric_inc(c->m_transport);
	if (c->nhosts > 1) {
		c->cur = (c->cur + 1) % c->nhosts;
		metric_inc(c->m_failovers);
	}
}

int es_request(struct es_client *c, const char *method, const char *path_and_query,
	       const char *content_type, const void *body, size_t len, bool gzip,
	       struct es_response *r)
{
	struct es_host *hs;
	/* Per-request header nodes chained in front of the fixed list: no allocation, and
	 * curl only reads the list during curl_easy_perform(). */
	struct curl_slist hdr[2];
	char ctype[128];
	struct curl_slist *list;
	bool head, send_body, transport;
	uint64_t t0;
	CURLcode crc;
	CURL *h;
	long status = 0;
	int rc;

	if (!c || !method || !path_and_query || path_and_query[0] != '/' || !r || (len && !body) ||
	    !method_known(method))
		return -EINVAL;
	memset(r, 0, sizeof(*r));
	c->err[0] = c->curl_err[0] = '\0';
	hs = &c->host[c->cur];
	h = hs->h;
	r->host = hs->url;

	if (hs->https && c->tls && c->fingerprint[0] && c->verify != ES_VERIFY_NONE &&
	    !hs->probed) {
		rc = probe_fingerprint(c, hs);
		if (rc < 0) {
			if (rc != -ENOMEM)
				failover(c);
			return rc;
		}
	}

	strbuf_reset(&c->url);
	strbuf_puts(&c->url, hs->url);
	strbuf_puts(&c->url, path_and_query);
	if (c->body.cap > ES_BODY_KEEP)
		strbuf_free(&c->body); /* do not keep one huge answer's buffer for ever */
	strbuf_reset(&c->body);
	if (c->url.err || !SETOPT(h, CURLOPT_URL, strbuf_cstr(&c->url))) {
		snprintf(c->err, sizeof(c->err), "out of memory");
		return -ENOMEM;
	}

	head = strcmp(method, "HEAD") == 0;
	send_body = len || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0;
	if (head) {
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	} else if (send_body) {
		curl_easy_setopt(h, CURLOPT_NOBODY, 0L);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, len ? body : "");
	} else {
		curl_easy_setopt(h, CURLOPT_NOBODY, 0L);
		curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
	}
	/* GET, POST and HEAD are what curl sends in those modes; the rest are named. */
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST,
			 head || strcmp(method, send_body ? "POST" : "GET") == 0 ? NULL : method);

	list = c->headers;
	if (send_body) {
		if (len)
			snprintf(ctype, sizeof(ctype), "Content-Type: %.100s",
				 content_type ? content_type : "application/json");
		else
			snprintf(ctype, sizeof(ctype), "Content-Type:"); /* none */
		hdr[0].data = ctype;
		hdr[0].next = list;
		list = &hdr[0];
		if (gzip && len) {
			hdr[1].data = (char *)"Content-Encoding: gzip";
			hdr[1].next = list;
			list = &hdr[1];
		}
	}
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);

	c->over_cap = false;
	c->product = false;
	t0 = clock_mono_ns();
	crc = curl_easy_perform(h);
	metric_set(c->m_latency, (clock_mono_ns() - t0) / NS_PER_US);
	metric_inc(c->m_requests);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, (struct curl_slist *)NULL); /* hdr[] dies here */

	if (crc == CURLE_OK) {
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
		r->status = (int)status;
		r->body = strbuf_cstr(&c->body);
		r->len = c->body.len;
		r->elastic_product = c->product;
		if (c->body.err) {
			snprintf(c->err, sizeof(c->err), "out of memory for the answer");
			return -ENOMEM;
		}
		return 0;
	}
	if (crc == CURLE_WRITE_ERROR && (c->over_cap || c->body.err)) {
		snprintf(c->err, sizeof(c->err), "%s %s: %s", method, hs->url,
			 c->over_cap ? "answer over the body cap" : "out of memory for the answer");
		return c->over_cap ? -EFBIG : -ENOMEM;
	}
	rc = map_curl_error(h, crc, &transport);
	snprintf(c->err, sizeof(c->err), "%s %s%.300s: %s", method, hs->url, path_and_query,
		 c->curl_err[0] ? c->curl_err : curl_easy_strerror(crc));
	if (rc == -EPROTO)
		hs->probed = false; /* the chain may have changed: look again next time */
	if (transport)
		failover(c);
	return rc;
}

int es_info(struct es_client *c, struct es_info *info, char *err, size_t errlen)
{
	struct es_response r;
	int rc;

	memset(info, 0, sizeof(*info));
	rc = es_request(c, "GET", "/", NULL, NULL, 0, false, &r);
	if (rc < 0) {
		http_set_err(err, errlen, "GET /: %s", c->err[0] ? c->err : strerror(-rc));
		return rc;
	}
	if (r.status == 401 || r.status == 403) {
		http_set_err(err, errlen,
			     "GET / on %s: HTTP %d (check username/password or api_key)", r.host,
			     r.status);
		return -EACCES;
	}
	if (r.status < 200 || r.status > 299) {
		http_set_err(err, errlen, "GET / on %s: HTTP %d: %.200s", r.host, r.status, r.body);
		return -EIO;
	}
	rc = es_info_parse(r.body, r.len, r.elastic_product, info, err, errlen);
	if (rc == 0 && info->product_missing)
		log_warn(ES_LOG,
			 "%s: Elasticsearch %s answered without X-Elastic-Product: Elasticsearch "
			 "(a proxy, or not Elasticsearch)",
			 r.host, info->number);
	return rc;
}
