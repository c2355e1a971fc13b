/* http.c — libcurl plumbing shared by es.c and kibana.c (see http.h). */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "shipper/http.h"

static pthread_once_t http_once = PTHREAD_ONCE_INIT;
static CURLcode http_init_rc = CURLE_FAILED_INIT;

static void http_init(void)
{
	http_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int http_global_init(char *err, size_t errlen)
{
	pthread_once(&http_once, http_init);
	if (http_init_rc == CURLE_OK)
		return 0;
	http_set_err(err, errlen, "curl_global_init: %s", curl_easy_strerror(http_init_rc));
	return -EIO;
}

void http_set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
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

int http_load_cas(const struct cfg_strlist *cas, const char *key, size_t max_file,
		  struct strbuf *pem, char *err, size_t errlen)
{
	static const char begin[] = "-----BEGIN CERTIFICATE-----";
	char buf[8192];

	for (size_t i = 0; i < cas->n; i++) {
		FILE *f = fopen(cas->v[i], "rb");
		size_t start = pem->len, n;

		if (!f) {
			http_set_err(err, errlen, "%s: %s: %s", key, cas->v[i], strerror(errno));
			return -EINVAL;
		}
		while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
			if (pem->len - start + n > max_file) {
				fclose(f);
				http_set_err(err, errlen, "%s: %s: too big", key, cas->v[i]);
				return -EINVAL;
			}
			strbuf_append(pem, buf, n);
		}
		fclose(f);
		strbuf_putc(pem, '\n');
		if (pem->err) {
			http_set_err(err, errlen, "out of memory");
			return -ENOMEM;
		}
		if (!mem_find(pem->p + start, pem->len - start, begin, sizeof(begin) - 1)) {
			http_set_err(err, errlen, "%s: %s: no PEM certificate", key, cas->v[i]);
			return -EINVAL;
		}
	}
	return 0;
}

int http_add_header(struct curl_slist **l, const char *line)
{
	struct curl_slist *n = curl_slist_append(*l, line);

	if (!n)
		return -ENOMEM;
	*l = n;
	return 0;
}

int http_map_curl_error(CURL *h, CURLcode rc)
{
	long oserr = 0;

	switch (rc) {
	case CURLE_COULDNT_CONNECT:
		curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &oserr);
		if (oserr == EHOSTUNREACH || oserr == ENETUNREACH || oserr == ETIMEDOUT)
			return -(int)oserr;
		return -ECONNREFUSED;
	case CURLE_COULDNT_RESOLVE_HOST:
		return -EHOSTUNREACH;
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_USE_SSL_FAILED:
	case CURLE_WEIRD_SERVER_REPLY:
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_HTTP2:
		return -EPROTO;
	case CURLE_GOT_NOTHING:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_PARTIAL_FILE:
		return -ECONNRESET;
	case CURLE_BAD_CONTENT_ENCODING:
		return -EBADMSG;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	default:
		return -EIO;
	}
}

int http_version_parse(const char *s, int *major, int *minor, int *patch)
{
	int part[3] = {0, 0, 0}, np = 0;

	while (np < 3) {
		long v = 0;
		int digits = 0;

		while (*s >= '0' && *s <= '9' && digits < 7) {
			v = v * 10 + (*s++ - '0');
			digits++;
		}
		if (!digits || (*s >= '0' && *s <= '9'))
			return -EINVAL;
		part[np++] = (int)v;
		if (*s != '.')
			break;
		s++;
	}
	if (np < 2 || (*s && *s != '-'))
		return -EINVAL;
	*major = part[0];
	*minor = part[1];
	*patch = part[2];
	return 0;
}
