/* test_es.c — shipper/es.c, the parts that need no server: host URLs, the
 * Authorization header, GET / parsing and version rejections, certificate
 * fingerprints, configuration errors of es_client_new(), and failover between two
 * refused hosts (local closed ports). The live behaviour is in
 * tests/esdouble/test_es_client.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hostbeat/config.h"
#include "hostbeat/mem.h"
#include "hostbeat/metrics.h"
#include "shipper/es.h"

/* ---- host URLs ---------------------------------------------------------------------- */

struct host_case {
	const char *spec, *scheme, *path, *want;
};

static void test_host_forms(void **state)
{
	static const struct host_case ok[] = {
	    {"localhost", "http", "", "http://localhost:9200"},
	    {"es1:9201", "http", "", "http://es1:9201"},
	    {"es1", "https", "", "https://es1:9200"},
	    {"10.0.0.7:1", "http", NULL, "http://10.0.0.7:1"},
	    {"es-1.example.com:65535", "http", "", "http://es-1.example.com:65535"},
	    {"https://es1", "http", "", "https://es1:9200"},
	    {"http://es1:9200/", "https", "", "http://es1:9200"},
	    {"HTTPS://ES1:443", "http", "", "https://ES1:443"},
	    {"http://es1:9200/prefix/", "http", "", "http://es1:9200/prefix"},
	    {"http://es1:9200/a/b", "http", "/ignored", "http://es1:9200/a/b"},
	    {"es1", "http", "/base/", "http://es1:9200/base"},
	    {"es1:9300", "http", "base", "http://es1:9300/base"},
	    {"http://es1", "http", "//base//", "http://es1:9200/base"},
	    {"[::1]:9200", "http", "", "http://[::1]:9200"},
	    {"[::1]", "https", "", "https://[::1]:9200"},
	    {"https://[fe80::1:2]:9243/es", "http", "", "https://[fe80::1:2]:9243/es"},
	    {"[::ffff:10.0.0.1]:80", "http", "", "http://[::ffff:10.0.0.1]:80"},
	};
	char url[ES_URL_MAX], err[256];

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		int rc = es_host_parse(ok[i].spec, ok[i].scheme, ok[i].path, url, sizeof(url), err,
				       sizeof(err));

		if (rc != 0)
			fail_msg("%s: %s", ok[i].spec, err);
		assert_string_equal(url, ok[i].want);
	}
}

static void test_host_rejections(void **state)
{
	static const char *const bad[] = {
	    "",           ":9200",        "es1:",           "es1:0",
	    "es1:65536",  "es1:99999999", "es1:abc",        "es1:-1",
	    "es1:9200:1", "::1",          "::1:9200",       "[::1",
	    "[]:9200",    "[::1]x",       "[::1]:",         "[zz::1]",
	    "[1.2.3.4]",  "ftp://es1",    "http://u:p@es1", "es1?x=1",
	    "es 1",       "http://:9200", "http://",        "es1/a#b",
	    "es\x01",     "es%1",         "https:///path",
	};
	char url[ES_URL_MAX], err[256];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (es_host_parse(bad[i], "http", "", url, sizeof(url), err, sizeof(err)) !=
		    -EINVAL)
			fail_msg("accepted \"%s\" as %s", bad[i], url);
		assert_string_equal(url, "");
		assert_true(err[0] != '\0');
	}
	/* a bad default scheme is caught for hosts that need it */
	assert_int_equal(es_host_parse("es1", "ftp", "", url, sizeof(url), err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "http or https"));
	assert_int_equal(
	    es_host_parse("https://es1", "ftp", "", url, sizeof(url), err, sizeof(err)), 0);
	/* the URL must fit */
	assert_int_equal(es_host_parse("es1", "http", "", url, 15, err, sizeof(err)), -EINVAL);
	assert_int_equal(es_host_parse("es1", "http", "", url, 16, err, sizeof(err)), 0);
	assert_string_equal(url, "http://es1:9200");
}

static void test_host_long_name(void **state)
{
	char spec[1200], url[ES_URL_MAX], err[256];

	(void)state;
	memset(spec, 'a', sizeof(spec) - 1);
	spec[sizeof(spec) - 1] = '\0';
	assert_int_equal(es_host_parse(spec, "http", "", url, sizeof(url), err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "too long"));
}

/* ---- Authorization -------------------------------------------------------------------- */

static void test_auth_basic(void **state)
{
	char out[256], err[128];

	(void)state;
	assert_int_equal(
	    es_auth_header("elastic", "changeme", NULL, out, sizeof(out), err, sizeof(err)),
	    (int)strlen("Authorization: Basic ZWxhc3RpYzpjaGFuZ2VtZQ=="));
	assert_string_equal(out, "Authorization: Basic ZWxhc3RpYzpjaGFuZ2VtZQ==");
	/* RFC 7617 §2's example */
	assert_true(
	    es_auth_header("Aladdin", "open sesame", "", out, sizeof(out), err, sizeof(err)) > 0);
	assert_string_equal(out, "Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
	/* no password: "user:" */
	assert_true(es_auth_header("user", NULL, NULL, out, sizeof(out), err, sizeof(err)) > 0);
	assert_string_equal(out, "Authorization: Basic dXNlcjo=");
	/* UTF-8 passes through as bytes */
	assert_true(es_auth_header("u", "p\xc3\xa9", NULL, out, sizeof(out), err, sizeof(err)) > 0);
	assert_string_equal(out, "Authorization: Basic dTpww6k=");
}

static void test_auth_api_key(void **state)
{
	char out[256], err[128];

	(void)state;
	/* the example of the ES create-API-key docs: id:api_key → `encoded` */
	assert_true(es_auth_header(NULL, NULL, "VuaCfGcBCdbkQm-e5aOx:ui2lp2axTNmsyakw9tvNnw", out,
				   sizeof(out), err, sizeof(err)) > 0);
	assert_string_equal(
	    out,
	    "Authorization: ApiKey VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==");
	/* the encoded form is sent as given */
	assert_true(es_auth_header(
			"", "", "VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==", out,
			sizeof(out), err, sizeof(err)) > 0);
	assert_string_equal(
	    out,
	    "Authorization: ApiKey VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==");
}

static void test_auth_rejections(void **state)
{
	char out[64], err[128];

	(void)state;
	assert_int_equal(es_auth_header(NULL, NULL, NULL, out, sizeof(out), err, sizeof(err)), 0);
	assert_string_equal(out, "");
	assert_int_equal(es_auth_header("", "", "", out, sizeof(out), err, sizeof(err)), 0);
	assert_int_equal(es_auth_header("u", "p", "id:key", out, sizeof(out), err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "not both"));
	assert_int_equal(es_auth_header(NULL, "p", NULL, out, sizeof(out), err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(es_auth_header("a:b", "p", NULL, out, sizeof(out), err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(
	    es_auth_header(NULL, NULL, "not base64!", out, sizeof(out), err, sizeof(err)), -EINVAL);
	assert_int_equal(es_auth_header(NULL, NULL, "abc", out, sizeof(out), err, sizeof(err)),
			 -EINVAL); /* not a multiple of 4 */
	assert_int_equal(es_auth_header(NULL, NULL, "ab=c", out, sizeof(out), err, sizeof(err)),
			 -EINVAL); /* '=' inside */
	assert_int_equal(es_auth_header(NULL, NULL, ":key", out, sizeof(out), err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(es_auth_header(NULL, NULL, "id:", out, sizeof(out), err, sizeof(err)),
			 -EINVAL);
	/* too small a buffer: an error and "", never a cut header */
	assert_int_equal(es_auth_header("elastic", "changeme", NULL, out, 40, err, sizeof(err)),
			 -ENAMETOOLONG);
	assert_string_equal(out, "");
	assert_int_equal(es_auth_header("elastic", "changeme", NULL, out, 46, err, sizeof(err)),
			 45);
}

/* ---- GET / ------------------------------------------------------------------------------ */

/* docs/reference/ecosystem.md §3: the spec example (RootNodeInfoResponse, 9.1). */
static const char info_91[] =
    "{\"name\":\"instance-0000000000\",\"cluster_name\":\"my_test_cluster\","
    "\"cluster_uuid\":\"zk-HjQtYQGyL3NFSSu7InA\",\"version\":{\"number\":\"9.1.0\","
    "\"build_flavor\":\"default\",\"build_type\":\"docker\",\"build_hash\":\"00000000\","
    "\"build_date\":\"2025-07-09T22:10:13.578182715Z\",\"build_snapshot\":false,"
    "\"lucene_version\":\"10.2.2\",\"minimum_wire_compatibility_version\":\"8.19.0\","
    "\"minimum_index_compatibility_version\":\"8.0.0\"},\"tagline\":\"You Know, for Search\"}";

/* 7.17 (lucene 8.11.x, min wire 6.8.0, min index 6.0.0-beta1), pretty-printed as ES
 * does with ?pretty. */
static const char info_717[] =
    "{\n"
    "  \"name\" : \"es01\",\n"
    "  \"cluster_name\" : \"docker-cluster\",\n"
    "  \"cluster_uuid\" : \"q1W2e3R4t5Y6u7I8o9P0aA\",\n"
    "  \"version\" : {\n"
    "    \"number\" : \"7.17.22\",\n"
    "    \"build_flavor\" : \"default\",\n"
    "    \"build_type\" : \"docker\",\n"
    "    \"build_hash\" : \"38e9ca2e81304a821c50862dafab089ca863944b\",\n"
    "    \"build_date\" : \"2024-06-06T07:35:17.876121680Z\",\n"
    "    \"build_snapshot\" : false,\n"
    "    \"lucene_version\" : \"8.11.3\",\n"
    "    \"minimum_wire_compatibility_version\" : \"6.8.0\",\n"
    "    \"minimum_index_compatibility_version\" : \"6.0.0-beta1\"\n"
    "  },\n"
    "  \"tagline\" : \"You Know, for Search\"\n"
    "}\n";

static const char info_8[] =
    "{\"name\":\"es01\",\"cluster_name\":\"docker-cluster\",\"cluster_uuid\":\"x\","
    "\"version\":{\"number\":\"8.15.0\",\"build_flavor\":\"default\",\"build_type\":\"docker\","
    "\"lucene_version\":\"9.11.1\",\"minimum_wire_compatibility_version\":\"7.17.0\","
    "\"minimum_index_compatibility_version\":\"7.0.0\"},\"tagline\":\"You Know, for Search\"}";

/* ecosystem.md §2.8: OpenSearch names its distribution and has no build_flavor. */
static const char info_os2[] =
    "{\"name\":\"os01\",\"cluster_name\":\"opensearch-cluster\",\"cluster_uuid\":\"y\","
    "\"version\":{\"distribution\":\"opensearch\",\"number\":\"2.11.0\",\"build_type\":\"tar\","
    "\"lucene_version\":\"9.7.0\",\"minimum_wire_compatibility_version\":\"7.10.0\","
    "\"minimum_index_compatibility_version\":\"7.0.0\"},"
    "\"tagline\":\"The OpenSearch Project: https://opensearch.org/\"}";

static int parse(const char *body, bool product, struct es_info *info, char *err, size_t n)
{
	return es_info_parse(body, strlen(body), product, info, err, n);
}

static void test_info_versions(void **state)
{
	struct es_info info;
	char err[256];

	(void)state;
	assert_int_equal(parse(info_91, true, &info, err, sizeof(err)), 0);
	assert_int_equal(info.major, 9);
	assert_int_equal(info.minor, 1);
	assert_int_equal(info.patch, 0);
	assert_string_equal(info.number, "9.1.0");
	assert_string_equal(info.distribution, "elasticsearch");
	assert_string_equal(info.build_flavor, "default");
	assert_string_equal(info.cluster_name, "my_test_cluster");
	assert_false(info.opensearch);
	assert_false(info.serverless);
	assert_false(info.product_missing);

	assert_int_equal(parse(info_717, true, &info, err, sizeof(err)), 0);
	assert_int_equal(info.major, 7);
	assert_int_equal(info.minor, 17);
	assert_int_equal(info.patch, 22);
	assert_string_equal(info.cluster_name, "docker-cluster");

	assert_int_equal(parse(info_8, true, &info, err, sizeof(err)), 0);
	assert_int_equal(info.major * 10000 + info.minor * 100 + info.patch, 81500);

	assert_int_equal(parse(info_os2, false, &info, err, sizeof(err)), 0);
	assert_true(info.opensearch);
	assert_string_equal(info.distribution, "opensearch");
	assert_int_equal(info.major, 2);
	assert_int_equal(info.minor, 11);
	assert_string_equal(info.build_flavor, "");
	assert_string_equal(info.cluster_name, "opensearch-cluster");
	assert_false(info.product_missing); /* OpenSearch never sends the header */
}

static void test_info_variants(void **state)
{
	struct es_info info;
	char err[256];

	(void)state;
	/* serverless reports a fixed 8.x number and its flavor */
	assert_int_equal(parse("{\"cluster_name\":\"s\",\"version\":{\"number\":\"8.11.0\","
			       "\"build_flavor\":\"serverless\"}}",
			       true, &info, err, sizeof(err)),
			 0);
	assert_true(info.serverless);
	assert_string_equal(info.build_flavor, "serverless");
	/* OpenSearch with compatibility.override_main_response_version */
	assert_int_equal(
	    parse("{\"version\":{\"distribution\":\"opensearch\",\"number\":\"7.10.2\"}}", false,
		  &info, err, sizeof(err)),
	    0);
	assert_true(info.opensearch);
	assert_int_equal(info.major, 7);
	assert_string_equal(info.cluster_name, "");
	/* pre-releases and two-part numbers */
	assert_int_equal(
	    parse("{\"version\":{\"number\":\"8.0.0-rc1\"}}", true, &info, err, sizeof(err)), 0);
	assert_int_equal(info.major * 100 + info.minor * 10 + info.patch, 800);
	assert_int_equal(
	    parse("{\"version\":{\"number\":\"9.2.0-SNAPSHOT\"}}", true, &info, err, sizeof(err)),
	    0);
	assert_int_equal(info.minor, 2);
	assert_int_equal(
	    parse("{\"version\":{\"number\":\"7.17\"}}", true, &info, err, sizeof(err)), 0);
	assert_int_equal(info.patch, 0);
	/* explicit elasticsearch distribution */
	assert_int_equal(
	    parse("{\"version\":{\"distribution\":\"elasticsearch\",\"number\":\"8.1.2\"}}", true,
		  &info, err, sizeof(err)),
	    0);
	assert_false(info.opensearch);
}

static void test_info_product_header(void **state)
{
	struct es_info info;
	char err[256];

	(void)state;
	assert_int_equal(parse(info_8, false, &info, err, sizeof(err)), 0);
	assert_true(info.product_missing);
	assert_int_equal(parse(info_91, false, &info, err, sizeof(err)), 0);
	assert_true(info.product_missing);
	assert_int_equal(
	    parse("{\"version\":{\"number\":\"7.14.0\"}}", false, &info, err, sizeof(err)), 0);
	assert_true(info.product_missing);
	/* before 7.14 ES did not send it */
	assert_int_equal(
	    parse("{\"version\":{\"number\":\"7.13.4\"}}", false, &info, err, sizeof(err)), 0);
	assert_false(info.product_missing);
	assert_int_equal(parse(info_717, true, &info, err, sizeof(err)), 0);
	assert_false(info.product_missing);
}

static void test_info_rejections(void **state)
{
	static const char *const unsupported[] = {
	    "{\"version\":{\"number\":\"6.8.23\"}}",
	    "{\"version\":{\"number\":\"5.6.16\",\"build_flavor\":\"oss\"}}",
	    "{\"version\":{\"distribution\":\"opensearch\",\"number\":\"0.9.0\"}}",
	    "{\"version\":{\"distribution\":\"solr\",\"number\":\"8.0.0\"}}",
	};
	static const char *const unreadable[] = {
	    "",
	    "not json",
	    "[]",
	    "{}",
	    "{\"version\":\"8.15.0\"}",
	    "{\"version\":{}}",
	    "{\"version\":{\"number\":8}}",
	    "{\"version\":{\"number\":\"8\"}}",
	    "{\"version\":{\"number\":\"x.y.z\"}}",
	    "{\"version\":{\"number\":\"8.15.0x\"}}",
	    "{\"version\":{\"number\":\"8..1\"}}",
	    "{\"version\":{\"number\":\"99999999.1.0\"}}",
	    "{\"version\":{\"number\":\"8.15.0\"}",
	    "{\"version\":{\"number\":\"8.15.0\"}} trailing",
	    "<html><body>502 Bad Gateway</body></html>",
	};
	struct es_info info;
	char err[256];

	(void)state;
	for (size_t i = 0; i < sizeof(unsupported) / sizeof(unsupported[0]); i++) {
		err[0] = '\0';
		if (parse(unsupported[i], true, &info, err, sizeof(err)) != -EOPNOTSUPP)
			fail_msg("not refused: %s", unsupported[i]);
		assert_true(err[0] != '\0');
	}
	assert_int_equal(parse(unsupported[0], true, &info, err, sizeof(err)), -EOPNOTSUPP);
	assert_string_equal(err, "Elasticsearch 6.8.23 is not supported (7.0 or later needed)");
	assert_int_equal(parse(unsupported[2], true, &info, err, sizeof(err)), -EOPNOTSUPP);
	assert_non_null(strstr(err, "OpenSearch 0.9.0"));
	for (size_t i = 0; i < sizeof(unreadable) / sizeof(unreadable[0]); i++) {
		err[0] = '\0';
		if (parse(unreadable[i], true, &info, err, sizeof(err)) != -EBADMSG)
			fail_msg("accepted: %s", unreadable[i]);
		assert_true(err[0] != '\0');
	}
	/* the length is honoured: no NUL needed, nothing read past it */
	assert_int_equal(es_info_parse(info_8, 20, true, &info, err, sizeof(err)), -EBADMSG);
	assert_int_equal(es_info_parse(NULL, 0, true, &info, err, sizeof(err)), -EBADMSG);
}

/* ---- fingerprints ----------------------------------------------------------------------- */

/* A self-signed P-256 CA; `openssl x509 -noout -fingerprint -sha256` printed the value. */
static const char ec_ca_pem[] = "-----BEGIN CERTIFICATE-----\n"
				"MIIBbjCCARWgAwIBAgIUIoIutFT4+5iON66lfUWqFCm/7EswCgYIKoZIzj0EAwIw\n"
				"DTELMAkGA1UEAwwCaGIwHhcNMjYxMjAyMTk0ODUwWhcNMzYxMTI5MTk0ODUwWjAN\n"
				"MQswCQYDVQQDDAJoYjBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABDtb5E8uuJw8\n"
				"R9UaOQ4EgrT7t1lAguom3aFpn7TW5+4HgZMwiOh5eXNvIdIsD2DocRnbaXqiexju\n"
				"DvFtxkmGlOGjUzBRMB0GA1UdDgQWBBQsqLjQGN6ZDO1xUJjALJHCqgvcgzAfBgNV\n"
				"HSMEGDAWgBQsqLjQGN6ZDO1xUJjALJHCqgvcgzAPBgNVHRMBAf8EBTADAQH/MAoG\n"
				"CCqGSM49BAMCA0cAMEQCID7/MHndpDuRuab4OjssnbeQmrkkKtX1YkEOiUYAX/Qw\n"
				"AiA7StX705/IK415n3i0/ogqhGOQbNkF47Mq2m1HY35r+g==\n"
				"-----END CERTIFICATE-----\n";

static void test_fingerprint_cert(void **state)
{
	char hex[65], pem[sizeof(ec_ca_pem) + 64];

	(void)state;
	assert_int_equal(es_cert_fingerprint(ec_ca_pem, strlen(ec_ca_pem), hex), 0);
	assert_string_equal(hex,
			    "8541597574c3a3f371eb6832f7bd6b27c6fb1fd538db0d20cb0a4b0d45b9a8ae");
	/* text around the block (as in CURLINFO_CERTINFO's "Cert:" or a bundle) */
	snprintf(pem, sizeof(pem), "Subject: CN=hb\n%s\ntrailer", ec_ca_pem);
	assert_int_equal(es_cert_fingerprint(pem, strlen(pem), hex), 0);
	assert_string_equal(hex,
			    "8541597574c3a3f371eb6832f7bd6b27c6fb1fd538db0d20cb0a4b0d45b9a8ae");
	/* broken inputs */
	assert_int_equal(es_cert_fingerprint("nothing", 7, hex), -EINVAL);
	assert_string_equal(hex, "");
	assert_int_equal(es_cert_fingerprint(ec_ca_pem, 200, hex), -EINVAL); /* no END */
	snprintf(pem, sizeof(pem), "-----BEGIN CERTIFICATE-----\nQUJD!\n-----END CERTIFICATE-----");
	assert_int_equal(es_cert_fingerprint(pem, strlen(pem), hex), -EINVAL);
	snprintf(pem, sizeof(pem), "-----BEGIN CERTIFICATE-----\nQUJD\n-----END CERTIFICATE-----");
	assert_int_equal(es_cert_fingerprint(pem, strlen(pem), hex), -EINVAL); /* not DER */
}

/* SHA-256 across the padding boundaries (55/56/63/64/65/119/120 bytes): DER-looking data
 * (0x30 first) in a PEM frame; digests from Python's hashlib. */
static void test_fingerprint_sha256_lengths(void **state)
{
	static const struct {
		const char *b64, *sha;
	} v[] = {
	    {"MAo=", "9a271f2a916b0b6ee6cecb2426f0b3206ef074578be55d9bc94f6f3fe3ab86aa"},
	    {"MAoRGB8mLTQ7QklQV15lbHN6gYiPlp2kq7K5wMfO1dzj6vH4/wYNFBsiKTA3PkVMU1phaG92fQ==",
	     "3eed752cac29fe1c5f511168bbb1f8290808fcd25ab7b4f3bef7fdbced033bcd"},
	    {"MAoRGB8mLTQ7QklQV15lbHN6gYiPlp2kq7K5wMfO1dzj6vH4/wYNFBsiKTA3PkVMU1phaG92fYQ=",
	     "aab7af36752a5d6305b6a61eb67d4a496bab89e39efa792166e7123a41b6d445"},
	    {"MAoRGB8mLTQ7QklQV15lbHN6gYiPlp2kq7K5wMfO1dzj6vH4/wYNFBsiKTA3PkVMU1phaG92fYSLkpmgp661",
	     "7cb2d6c124aae19a9bc35fcb3c79a7318031154395e2af870276a47bff5ad7ed"},
	    {"MAoRGB8mLTQ7QklQV15lbHN6gYiPlp2kq7K5wMfO1dzj6vH4/wYNFBsiKTA3PkVMU1phaG92fYSLkpmgp661"
	     "vA==",
	     "50b425501e2a12b30d8821b96d84e1ea108ef0acf7c2a1f22f76a17999f3872e"},
	    {"MAoRGB8mLTQ7QklQV15lbHN6gYiPlp2kq7K5wMfO1dzj6vH4/wYNFBsiKTA3PkVMU1phaG92fYSLkpmgp661"
	     "vMM=",
	     "20255d702e04f724d8d68e05366c9a7a607922352404a55e5ca82bd029329fe1"},
	    {"MAoRGB8mLTQ7QklQV15lbHN6gYiPlp2kq7K5wMfO1dzj6vH4/wYNFBsiKTA3PkVMU1phaG92fYSLkpmgp661"
	     "vMPK0djf5u30+wIJEBceJSwzOkFIT1ZdZGtyeYCHjpWco6qxuL/GzdTb4unw9/4FDBMaISgvNj0=",
	     "c5e41ca1bdd8dff1865f440a3173a88810d57d7bda3594d47ef88b0ab4a748c4"},
	    {"MAoRGB8mLTQ7QklQV15lbHN6gYiPlp2kq7K5wMfO1dzj6vH4/wYNFBsiKTA3PkVMU1phaG92fYSLkpmgp661"
	     "vMPK0djf5u30+wIJEBceJSwzOkFIT1ZdZGtyeYCHjpWco6qxuL/GzdTb4unw9/4FDBMaISgvNj1E",
	     "4722e06340b2c0f17a1f9433ccc0a85f754140e36c1fa8e0c9a7c02a073eea0e"},
	};
	char pem[512], hex[65];

	(void)state;
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		snprintf(pem, sizeof(pem),
			 "-----BEGIN CERTIFICATE-----\n%s\n-----END CERTIFICATE-----\n", v[i].b64);
		assert_int_equal(es_cert_fingerprint(pem, strlen(pem), hex), 0);
		assert_string_equal(hex, v[i].sha);
	}
}

/* ---- es_client_new() -------------------------------------------------------------------- */

static struct es_client *client_with(struct hb_config *cfg, char *err, size_t errlen,
				     const char *const *ov, size_t n)
{
	char *all[16];
	struct cfg_error cerr;
	size_t k = 0;

	all[k++] = (char *)"output.file.enabled=false";
	for (size_t i = 0; i < n; i++)
		all[k++] = (char *)ov[i];
	if (cfg_load_string("", "test_es", all, k, cfg, &cerr) != 0)
		fail_msg("config: %s", cerr.msg);
	return es_client_new(cfg, err, errlen);
}

static void expect_refused(const char *const *ov, size_t n, const char *needle)
{
	struct hb_config cfg;
	struct es_client *c;
	char err[512] = "";

	c = client_with(&cfg, err, sizeof(err), ov, n);
	if (c)
		fail_msg("accepted a config that should fail with \"%s\"", needle);
	if (!strstr(err, needle))
		fail_msg("error \"%s\" does not mention \"%s\"", err, needle);
	cfg_free(&cfg);
}

static void test_client_config(void **state)
{
	static const char *const good[] = {
	    "output.elasticsearch.hosts=[\"es1\", \"https://es2:9243/p\", \"[::1]:9201\"]",
	    "output.elasticsearch.path=/base",
	    "output.elasticsearch.api_key=id:key",
	    "output.elasticsearch.headers.X-Test=1",
	    ("output.elasticsearch.ssl.ca_trusted_fingerprint=85:41:59:75:74:C3:A3:F3:71:EB:68:32:"
	     "F7:BD:6B:27:C6:FB:1F:D5:38:DB:0D:20:CB:0A:4B:0D:45:B9:A8:AE"),
	};
	struct hb_config cfg;
	struct es_client *c;
	struct es_response r;
	char err[512] = "";

	(void)state;
	c = client_with(&cfg, err, sizeof(err), good, sizeof(good) / sizeof(good[0]));
	if (!c)
		fail_msg("%s", err);
	assert_int_equal(es_client_host_count(c), 3);
	assert_string_equal(es_client_host(c), "http://es1:9200/base");
	assert_string_equal(es_client_error(c), "");
	/* bad arguments never reach the network */
	assert_int_equal(es_request(c, "GET", "no-slash", NULL, NULL, 0, false, &r), -EINVAL);
	assert_int_equal(es_request(c, "PATCH", "/", NULL, NULL, 0, false, &r), -EINVAL);
	assert_int_equal(es_request(c, "POST", "/", NULL, NULL, 5, false, &r), -EINVAL);
	assert_string_equal(es_client_host(c), "http://es1:9200/base");
	es_client_free(c);
	cfg_free(&cfg);
	es_client_free(NULL);
}

static void test_client_config_errors(void **state)
{
	static const char *const bad_host[] = {"output.elasticsearch.hosts=[\"es1\", \"es2:0\"]"};
	static const char *const both[] = {"output.elasticsearch.username=u",
					   "output.elasticsearch.api_key=id:key"};
	static const char *const fp[] = {"output.elasticsearch.ssl.ca_trusted_fingerprint=abcd"};
	static const char *const ca[] = {
	    "output.elasticsearch.ssl.certificate_authorities=[\"/nonexistent/ca.pem\"]"};
	static const char *const ca_notpem[] = {
	    "output.elasticsearch.ssl.certificate_authorities=[\"/proc/self/status\"]"};
	static const char *const cert_only[] = {
	    "output.elasticsearch.ssl.certificate=/proc/self/status"};
	static const char *const key_missing[] = {
	    "output.elasticsearch.ssl.certificate=/proc/self/status",
	    "output.elasticsearch.ssl.key=/nonexistent/key.pem"};
	static const char *const hdr[] = {"output.elasticsearch.headers.Content-Type=text/plain"};
	static const char *const no_tls_checks[] = {
	    "output.elasticsearch.ssl.enabled=false",
	    "output.elasticsearch.ssl.certificate_authorities=[\"/nonexistent/ca.pem\"]"};
	struct hb_config cfg;
	struct es_client *c;
	char err[512];

	(void)state;
	expect_refused(bad_host, 1, "es2:0");
	expect_refused(both, 2, "not both");
	expect_refused(fp, 1, "ca_trusted_fingerprint");
	expect_refused(ca, 1, "/nonexistent/ca.pem");
	expect_refused(ca_notpem, 1, "no PEM certificate");
	expect_refused(cert_only, 1, "go together");
	expect_refused(key_missing, 2, "/nonexistent/key.pem");
	expect_refused(hdr, 1, "Content-Type is set by the output");
	/* ssl.enabled: false ignores the ssl.* settings, as Beats */
	c = client_with(&cfg, err, sizeof(err), no_tls_checks, 2);
	assert_non_null(c);
	es_client_free(c);
	cfg_free(&cfg);
}

/* ---- failover ----------------------------------------------------------------------------- */

/* A local TCP port nothing listens on (bound then closed). */
static unsigned closed_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
	close(fd);
	return ntohs(a.sin_port);
}

static void test_failover_round_robin(void **state)
{
	char hosts[128], h0[64], h1[64], err[512];
	const char *ov[1] = {hosts};
	unsigned p0 = closed_port(), p1 = closed_port();
	struct hb_config cfg;
	struct es_client *c;
	struct es_response r;

	(void)state;
	snprintf(hosts, sizeof(hosts),
		 "output.elasticsearch.hosts=[\"127.0.0.1:%u\", \"127.0.0.1:%u\"]", p0, p1);
	snprintf(h0, sizeof(h0), "http://127.0.0.1:%u", p0);
	snprintf(h1, sizeof(h1), "http://127.0.0.1:%u", p1);
	metrics_reset();
	c = client_with(&cfg, err, sizeof(err), ov, 1);
	assert_non_null(c);
	assert_string_equal(es_client_host(c), h0);
	assert_int_equal(es_request(c, "GET", "/", NULL, NULL, 0, false, &r), -ECONNREFUSED);
	assert_string_equal(r.host, h0);
	assert_non_null(strstr(es_client_error(c), h0));
	assert_string_equal(es_client_host(c), h1);
	assert_int_equal(
	    es_request(c, "POST", "/_bulk", "application/x-ndjson", "{}\n", 3, false, &r),
	    -ECONNREFUSED);
	assert_string_equal(es_client_host(c), h0); /* round robin */
	assert_int_equal(metrics_get("output.es.requests"), 2);
	assert_int_equal(metrics_get("output.es.transport_errors"), 2);
	assert_int_equal(metrics_get("output.es.failovers"), 2);
	es_client_free(c);
	cfg_free(&cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_host_forms),
	    cmocka_unit_test(test_host_rejections),
	    cmocka_unit_test(test_host_long_name),
	    cmocka_unit_test(test_auth_basic),
	    cmocka_unit_test(test_auth_api_key),
	    cmocka_unit_test(test_auth_rejections),
	    cmocka_unit_test(test_info_versions),
	    cmocka_unit_test(test_info_variants),
	    cmocka_unit_test(test_info_product_header),
	    cmocka_unit_test(test_info_rejections),
	    cmocka_unit_test(test_fingerprint_cert),
	    cmocka_unit_test(test_fingerprint_sha256_lengths),
	    cmocka_unit_test(test_client_config),
	    cmocka_unit_test(test_client_config_errors),
	    cmocka_unit_test(test_failover_round_robin),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
