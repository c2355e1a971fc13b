/* test_kibana.c — shipper/kibana.c, the parts that need no Kibana: base URLs (port 5601
 * by default), the space-aware import path, GET /api/status in the 8.x and 7.x formats,
 * the bundle chosen for a version, the multipart body byte for byte, boundaries, object
 * counting, import answers (success, missing references, partial, over the kept
 * failures), configuration errors and the readiness timeout against a closed port.
 * The live behaviour is in tests/kbdouble/test_kibana_client.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "hostbeat/clock.h"
#include "hostbeat/config.h"
#include "hostbeat/mem.h"
#include "hostbeat/strbuf.h"
#include "shipper/kibana.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* ---- base URL, import path ------------------------------------------------------------ */

struct url_case {
	const char *host, *protocol, *path, *want;
};

static void test_base_url(void **state)
{
	static const struct url_case ok[] = {
	    {"localhost:5601", "http", "", "http://localhost:5601"},
	    {"kibana", "http", "", "http://kibana:5601"},
	    {"kibana", "https", "", "https://kibana:5601"},
	    {"kibana:80", "http", NULL, "http://kibana:80"},
	    {"https://kibana", "http", "", "https://kibana:5601"},
	    {"http://kibana:9200", "http", "", "http://kibana:9200"}, /* an explicit 9200 stays */
	    {"http://kibana/base/", "http", "", "http://kibana:5601/base"},
	    {"kibana", "http", "/kibana/", "http://kibana:5601/kibana"},
	    {"kibana:5602", "http", "kb", "http://kibana:5602/kb"},
	    {"[::1]", "http", "", "http://[::1]:5601"},
	    {"[::1]:5602", "http", "", "http://[::1]:5602"},
	    {"https://[fe80::1]/k", "http", "", "https://[fe80::1]:5601/k"},
	};
	static const char *const bad[] = {
	    "",    "ftp://kibana", "kibana:0", "kibana:99999", "http://u:p@kibana",
	    "::1", "kibana?x=1"};
	char url[1024], err[256];

	(void)state;
	for (size_t i = 0; i < N_ELEMS(ok); i++) {
		if (kibana_base_url(ok[i].host, ok[i].protocol, ok[i].path, url, sizeof(url), err,
				    sizeof(err)) != 0)
			fail_msg("%s: %s", ok[i].host, err);
		assert_string_equal(url, ok[i].want);
	}
	for (size_t i = 0; i < N_ELEMS(bad); i++) {
		err[0] = '\0';
		if (kibana_base_url(bad[i], "http", "", url, sizeof(url), err, sizeof(err)) !=
		    -EINVAL)
			fail_msg("accepted \"%s\" as %s", bad[i], url);
		assert_string_equal(url, "");
		assert_non_null(strstr(err, "setup.kibana.host"));
	}
	/* the rewritten URL must fit too */
	assert_int_equal(kibana_base_url("kb", "http", "", url, 15, err, sizeof(err)), 0);
	assert_string_equal(url, "http://kb:5601");
	assert_int_equal(kibana_base_url("kb", "http", "", url, 14, err, sizeof(err)), -EINVAL);
	assert_string_equal(url, "");
}

static void test_import_path(void **state)
{
	char out[128];

	(void)state;
	assert_int_equal(kibana_import_path("", out, sizeof(out)), 0);
	assert_string_equal(out, "/api/saved_objects/_import?overwrite=true");
	assert_int_equal(kibana_import_path(NULL, out, sizeof(out)), 0);
	assert_string_equal(out, "/api/saved_objects/_import?overwrite=true");
	assert_int_equal(kibana_import_path("ops-team_2", out, sizeof(out)), 0);
	assert_string_equal(out, "/s/ops-team_2/api/saved_objects/_import?overwrite=true");
	assert_int_equal(kibana_import_path("Ops", out, sizeof(out)), -EINVAL);
	assert_int_equal(kibana_import_path("a b", out, sizeof(out)), -EINVAL);
	assert_int_equal(kibana_import_path("a/../b", out, sizeof(out)), -EINVAL);
	assert_int_equal(kibana_import_path("x?y", out, sizeof(out)), -EINVAL);
	assert_int_equal(kibana_import_path("ops", out, 20), -ENAMETOOLONG);
	assert_string_equal(out, "");
}

/* ---- /api/status ------------------------------------------------------------------------ */

static void test_status_v8(void **state)
{
	static const char ok[] =
	    "{\"name\":\"kb\",\"uuid\":\"u\",\"version\":{\"number\":\"8.15.0\",\"build_hash\":"
	    "\"abc\",\"build_number\":1,\"build_snapshot\":false},\"status\":{\"overall\":{"
	    "\"level\":\"available\",\"summary\":\"All services and plugins are available\"},"
	    "\"core\":{},\"plugins\":{}},\"metrics\":{}}\n";
	static const char degraded[] =
	    "{\"version\":{\"number\":\"9.1.0-SNAPSHOT\"},\"status\":{\"overall\":{\"level\":"
	    "\"degraded\"}}}";
	struct kibana_status st;
	char err[256];

	(void)state;
	assert_int_equal(kibana_status_parse(ok, strlen(ok), &st, err, sizeof(err)), 0);
	assert_int_equal(st.format, KIBANA_STATUS_V8);
	assert_true(st.ready);
	assert_string_equal(st.level, "available");
	assert_string_equal(st.number, "8.15.0");
	assert_int_equal(st.major, 8);
	assert_int_equal(st.minor, 15);
	assert_int_equal(st.patch, 0);

	assert_int_equal(kibana_status_parse(degraded, strlen(degraded), &st, err, sizeof(err)), 0);
	assert_false(st.ready);
	assert_string_equal(st.level, "degraded");
	assert_int_equal(st.major, 9);
	assert_int_equal(st.minor, 1);
	assert_string_equal(st.number, "9.1.0-SNAPSHOT");
}

static void test_status_v7(void **state)
{
	static const char green[] =
	    "{\"name\":\"kb\",\"version\":{\"number\":\"7.17.20\",\"build_snapshot\":false},"
	    "\"status\":{\"overall\":{\"since\":\"2024-05-01T00:00:00.000Z\",\"state\":\"green\","
	    "\"title\":\"Green\",\"nickname\":\"Looking good\",\"icon\":\"success\",\"uiColor\":"
	    "\"secondary\"},\"statuses\":[]}}";
	static const char red[] = "{\"version\":{\"number\":\"7.17.20\"},\"status\":{\"overall\":{"
				  "\"state\":\"red\"}}}";
	struct kibana_status st;
	char err[256];

	(void)state;
	assert_int_equal(kibana_status_parse(green, strlen(green), &st, err, sizeof(err)), 0);
	assert_int_equal(st.format, KIBANA_STATUS_V7);
	assert_true(st.ready);
	assert_string_equal(st.level, "green");
	assert_int_equal(st.major, 7);
	assert_int_equal(st.minor, 17);
	assert_int_equal(st.patch, 20);
	assert_int_equal(kibana_status_parse(red, strlen(red), &st, err, sizeof(err)), 0);
	assert_false(st.ready);
	assert_string_equal(st.level, "red");
}

static void test_status_rejections(void **state)
{
	static const char *const bad[] = {
	    "",
	    "Kibana server is not ready yet",
	    "[]",
	    "{\"version\":{\"number\":\"8.15.0\"}}",                             /* no status */
	    "{\"version\":{\"number\":\"8.15.0\"},\"status\":{\"overall\":{}}}", /* no level */
	    "{\"version\":{\"number\":\"8.15.0\"},\"status\":{\"overall\":{\"level\":1}}}",
	    "{\"version\":{\"number\":\"8\"},\"status\":{\"overall\":{\"level\":\"available\"}}}",
	    "{\"version\":{\"number\":\"8.x.0\"},\"status\":{\"overall\":{\"level\":\"available\"}}"
	    "}",
	    "{\"version\":{\"number\":8.15},\"status\":{\"overall\":{\"level\":\"available\"}}}",
	    "{\"version\":{\"number\":\"8.15.0\"},\"status\":{\"overall\":{\"level\":\"available\"}"
	    "}}x",
	};
	static const char redacted[] = "{\"status\":{\"overall\":{\"level\":\"available\"}}}";
	struct kibana_status st;
	char err[256];

	(void)state;
	for (size_t i = 0; i < N_ELEMS(bad); i++) {
		err[0] = '\0';
		if (kibana_status_parse(bad[i], strlen(bad[i]), &st, err, sizeof(err)) != -EBADMSG)
			fail_msg("accepted %s", bad[i]);
		assert_true(err[0] != '\0');
	}
	/* Kibana 8's answer to anonymous callers has no version: say what to configure */
	assert_int_equal(kibana_status_parse(redacted, strlen(redacted), &st, err, sizeof(err)),
			 -EBADMSG);
	assert_non_null(strstr(err, "username"));
}

/* ---- bundle choice -------------------------------------------------------------------------- */

static void test_bundle_path(void **state)
{
	char path[256], err[256];

	(void)state;
	assert_int_equal(kibana_bundle_path("/usr/share/hostbeat/dashboards", 8, 15, path,
					    sizeof(path), err, sizeof(err)),
			 0);
	assert_string_equal(path, "/usr/share/hostbeat/dashboards/kibana-8/hostbeat.ndjson");
	assert_int_equal(kibana_bundle_path("d", 8, 0, path, sizeof(path), err, sizeof(err)), 0);
	assert_string_equal(path, "d/kibana-8/hostbeat.ndjson");
	assert_int_equal(kibana_bundle_path("d", 9, 1, path, sizeof(path), err, sizeof(err)), 0);
	assert_string_equal(path, "d/kibana-8/hostbeat.ndjson");
	assert_int_equal(kibana_bundle_path("d", 7, 17, path, sizeof(path), err, sizeof(err)), 0);
	assert_string_equal(path, "d/kibana-7/hostbeat.ndjson");
	assert_int_equal(kibana_bundle_path(NULL, 7, 17, path, sizeof(path), err, sizeof(err)), 0);
	assert_string_equal(path, "./kibana-7/hostbeat.ndjson");

	/* 7.14–7.16: the import API is there but our 7.x objects are labelled 7.17.0 */
	assert_int_equal(kibana_bundle_path("d", 7, 16, path, sizeof(path), err, sizeof(err)),
			 -EOPNOTSUPP);
	assert_string_equal(path, "");
	assert_non_null(strstr(err, "7.16"));
	assert_non_null(strstr(err, "7.17 or later"));
	assert_int_equal(kibana_bundle_path("d", 7, 14, path, sizeof(path), err, sizeof(err)),
			 -EOPNOTSUPP);
	/* below 7.14 Beats cannot load either */
	assert_int_equal(kibana_bundle_path("d", 7, 10, path, sizeof(path), err, sizeof(err)),
			 -EOPNOTSUPP);
	assert_non_null(strstr(err, "7.14"));
	assert_int_equal(kibana_bundle_path("d", 6, 8, path, sizeof(path), err, sizeof(err)),
			 -EOPNOTSUPP);
	assert_non_null(strstr(err, "6.8"));
	assert_int_equal(kibana_bundle_path("a-long-directory", 8, 15, path, 20, err, sizeof(err)),
			 -ENAMETOOLONG);
	assert_string_equal(path, "");
}

/* ---- multipart ---------------------------------------------------------------------------------
 */

static void test_multipart_exact(void **state)
{
	static const char payload[] = "{\"type\":\"index-pattern\",\"id\":\"packetbeat-*\"}\n"
				      "{\"type\":\"dashboard\",\"id\":\"d\"}\n";
	static const char want[] =
	    "--XYZ\r\n"
	    "Content-Disposition: form-data; name=\"file\"; filename=\"hostbeat.ndjson\"\r\n"
	    "Content-Type: application/ndjson\r\n"
	    "\r\n"
	    "{\"type\":\"index-pattern\",\"id\":\"packetbeat-*\"}\n"
	    "{\"type\":\"dashboard\",\"id\":\"d\"}\n"
	    "\r\n"
	    "--XYZ--\r\n";
	struct strbuf sb;

	(void)state;
	strbuf_init(&sb);
	assert_int_equal(kibana_multipart_build("XYZ", payload, strlen(payload), &sb), 0);
	assert_int_equal(sb.len, strlen(want));
	assert_memory_equal(sb.p, want, sb.len);

	/* appends after what is there; an empty payload is still one part */
	strbuf_reset(&sb);
	strbuf_puts(&sb, "prefix");
	assert_int_equal(kibana_multipart_build("b", "", 0, &sb), 0);
	assert_string_equal(strbuf_cstr(&sb),
			    "prefix--b\r\nContent-Disposition: form-data; name=\"file\"; "
			    "filename=\"hostbeat.ndjson\"\r\nContent-Type: application/ndjson\r\n"
			    "\r\n\r\n--b--\r\n");
	strbuf_free(&sb);
}

static void test_multipart_rejections(void **state)
{
	static const char payload[] = "{\"title\":\"see --XYZ here\"}\n";
	char b71[72];
	struct strbuf sb;

	(void)state;
	strbuf_init(&sb);
	strbuf_puts(&sb, "keep");
	/* "--XYZ" inside the payload would end the part early */
	assert_int_equal(kibana_multipart_build("XYZ", payload, strlen(payload), &sb), -EEXIST);
	/* "XY" is also a prefix of the text after "--": a delimiter is a delimiter */
	assert_int_equal(kibana_multipart_build("XY", payload, strlen(payload), &sb), -EEXIST);
	assert_int_equal(kibana_multipart_build("XYZW", payload, strlen(payload), &sb), 0);
	strbuf_reset(&sb);
	strbuf_puts(&sb, "keep");
	assert_int_equal(kibana_multipart_build("", "x", 1, &sb), -EINVAL);
	assert_int_equal(kibana_multipart_build("a b", "x", 1, &sb), -EINVAL);
	assert_int_equal(kibana_multipart_build("a\"b", "x", 1, &sb), -EINVAL);
	assert_int_equal(kibana_multipart_build("a\r\nb", "x", 1, &sb), -EINVAL);
	assert_int_equal(kibana_multipart_build(NULL, "x", 1, &sb), -EINVAL);
	memset(b71, 'a', 71);
	b71[71] = '\0';
	assert_int_equal(kibana_multipart_build(b71, "x", 1, &sb), -EINVAL);
	b71[70] = '\0';
	assert_int_equal(kibana_multipart_build("'()+_,-./:=?Az09", "x", 1, &sb), 0);
	strbuf_reset(&sb);
	strbuf_puts(&sb, "keep");
	assert_int_equal(kibana_multipart_build(b71, "x", 1, &sb), 0); /* 70 is the limit */
	/* allocation failure: nothing half-written stays behind */
	strbuf_reset(&sb);
	strbuf_puts(&sb, "keep");
	sb.p = hb_realloc(sb.p, 5);
	sb.cap = 5;
	mem_fail_after(0);
	assert_int_equal(kibana_multipart_build("XYZ", "x", 1, &sb), -ENOMEM);
	mem_fail_reset();
	assert_int_equal(sb.len, 4);
	assert_memory_equal(sb.p, "keep", 4);
	strbuf_free(&sb);
}

static void test_boundary_new(void **state)
{
	static const char payload[] = "{\"id\":\"a\"}\n{\"id\":\"b\"}\n";
	char a[KIBANA_BOUNDARY_MAX], b[KIBANA_BOUNDARY_MAX];
	struct strbuf sb;

	(void)state;
	assert_int_equal(kibana_boundary_new(payload, strlen(payload), a), 0);
	assert_int_equal(kibana_boundary_new(payload, strlen(payload), b), 0);
	assert_int_equal(strlen(a), 9 + 32);
	assert_memory_equal(a, "hostbeat-", 9);
	for (size_t i = 9; i < strlen(a); i++)
		assert_non_null(strchr("0123456789abcdef", a[i]));
	assert_string_not_equal(a, b); /* 128 random bits each */
	/* and it builds */
	strbuf_init(&sb);
	assert_int_equal(kibana_multipart_build(a, payload, strlen(payload), &sb), 0);
	strbuf_free(&sb);
}

/* ---- counting objects
 * ------------------------------------------------------------------------------ */

static void test_bundle_count(void **state)
{
	static const char with_summary[] =
	    "{\"type\":\"index-pattern\",\"id\":\"p\"}\n"
	    "\n"
	    "   \n"
	    "{\"type\":\"dashboard\",\"id\":\"d\",\"attributes\":{\"description\":"
	    "\"\\\"exportedCount\\\" is not a summary here\"}}\r\n"
	    "{\"exportedCount\":2,\"missingRefCount\":0,\"missingReferences\":[]}\n";
	static const char no_newline[] = "{\"a\":1}\n{\"b\":2}";
	static const char zero_summary[] = "{\"exportedCount\":0}\n"; /* falsy: Kibana keeps it */

	(void)state;
	assert_int_equal(kibana_bundle_count(with_summary, strlen(with_summary)), 2);
	assert_int_equal(kibana_bundle_count(no_newline, strlen(no_newline)), 2);
	assert_int_equal(kibana_bundle_count("", 0), 0);
	assert_int_equal(kibana_bundle_count("\n\n", 2), 0);
	assert_int_equal(kibana_bundle_count(zero_summary, strlen(zero_summary)), 1);
}

/* ---- import answers
 * ------------------------------------------------------------------------------------ */

static void test_import_success(void **state)
{
	/* elastic/kibana docs/api/saved-objects/import.asciidoc */
	static const char ok[] =
	    "{\"success\":true,\"successCount\":2,\"successResults\":["
	    "{\"id\":\"my-pattern\",\"type\":\"index-pattern\",\"meta\":{\"icon\":"
	    "\"indexPatternApp\",\"title\":\"my-pattern-*\"}},"
	    "{\"id\":\"my-dashboard\",\"type\":\"dashboard\",\"meta\":{\"icon\":\"dashboardApp\","
	    "\"title\":\"Look at my dashboard\"}}],\"warnings\":[]}";
	struct kibana_report rep;
	char err[256] = "";

	(void)state;
	memset(&rep, 0x5a, sizeof(rep));
	assert_int_equal(kibana_import_parse(ok, strlen(ok), &rep, err, sizeof(err)), 0);
	assert_true(rep.imported);
	assert_int_equal(rep.success_count, 2);
	assert_int_equal(rep.error_count, 0);
	assert_int_equal(rep.nfailures, 0);
}

static void test_import_failures(void **state)
{
	static const char missing[] =
	    "{\"success\":false,\"successCount\":1,\"errors\":[{\"id\":\"my-vis\",\"type\":"
	    "\"visualization\",\"title\":\"Old title\",\"meta\":{\"title\":\"My vis\",\"icon\":"
	    "\"visualizeApp\"},\"error\":{\"type\":\"missing_references\",\"references\":["
	    "{\"type\":\"index-pattern\",\"id\":\"my-pattern-*\"},{\"type\":\"search\",\"id\":"
	    "\"s1\"}]}},"
	    "{\"id\":\"d\",\"type\":\"dashboard\",\"title\":\"Only the old title\",\"error\":{"
	    "\"type\":\"unknown\",\"message\":\"Document \\\"d\\\" belongs to a more recent "
	    "version of Kibana [10.9.0]\",\"statusCode\":400}},"
	    "{\"id\":\"x\",\"type\":\"widget\",\"error\":{\"type\":\"unsupported_type\"}}],"
	    "\"successResults\":[{\"id\":\"p\",\"type\":\"index-pattern\"}]}";
	struct kibana_report rep;
	char err[512];

	(void)state;
	assert_int_equal(kibana_import_parse(missing, strlen(missing), &rep, err, sizeof(err)),
			 -EIO);
	assert_false(rep.imported);
	assert_int_equal(rep.success_count, 1);
	assert_int_equal(rep.error_count, 3);
	assert_int_equal(rep.nfailures, 3);
	assert_string_equal(rep.failures[0].type, "visualization");
	assert_string_equal(rep.failures[0].id, "my-vis");
	assert_string_equal(rep.failures[0].title, "My vis"); /* meta.title first */
	assert_string_equal(rep.failures[0].error_type, "missing_references");
	assert_string_equal(rep.failures[0].detail,
			    "missing index-pattern:my-pattern-*, search:s1");
	assert_string_equal(rep.failures[1].title, "Only the old title");
	assert_string_equal(rep.failures[1].error_type, "unknown");
	assert_non_null(strstr(rep.failures[1].detail, "more recent version of Kibana"));
	assert_string_equal(rep.failures[2].error_type, "unsupported_type");
	assert_string_equal(rep.failures[2].detail, "");
	assert_string_equal(rep.failures[2].title, "");
	/* the reason names counts and the first failure */
	assert_non_null(strstr(err, "1 object(s) imported, 3 failed"));
	assert_non_null(strstr(err, "my-vis"));
	assert_non_null(strstr(err, "missing_references"));
}

static void test_import_many_failures(void **state)
{
	struct strbuf sb;
	struct kibana_report rep;
	char err[512];

	(void)state;
	strbuf_init(&sb);
	strbuf_puts(&sb, "{\"success\":false,\"successCount\":0,\"errors\":[");
	for (int i = 0; i < 40; i++)
		strbuf_appendf(
		    &sb,
		    "%s{\"id\":\"v%d\",\"type\":\"visualization\",\"meta\":{\"title\":\"%0300d"
		    "\"},\"error\":{\"type\":\"unknown\",\"message\":\"%0400d\"}}",
		    i ? "," : "", i, i, i);
	strbuf_puts(&sb, "]}");
	assert_int_equal(kibana_import_parse(sb.p, sb.len, &rep, err, sizeof(err)), -EIO);
	assert_int_equal(rep.error_count, 40);
	assert_int_equal(rep.nfailures, KIBANA_MAX_FAILURES);
	assert_string_equal(rep.failures[KIBANA_MAX_FAILURES - 1].id, "v15");
	/* long texts are cut, never overflow */
	assert_int_equal(strlen(rep.failures[3].title), sizeof(rep.failures[3].title) - 1);
	assert_int_equal(strlen(rep.failures[3].detail), sizeof(rep.failures[3].detail) - 1);
	strbuf_free(&sb);
}

static void test_import_bad_answers(void **state)
{
	static const char *const bad[] = {
	    "",
	    "<html>502 Bad Gateway</html>",
	    "[]",
	    "{\"successCount\":3}",
	    "{\"success\":\"true\",\"successCount\":3}",
	    "{\"success\":true} {}",
	};
	struct kibana_report rep;
	char err[256];

	(void)state;
	for (size_t i = 0; i < N_ELEMS(bad); i++) {
		err[0] = '\0';
		if (kibana_import_parse(bad[i], strlen(bad[i]), &rep, err, sizeof(err)) != -EBADMSG)
			fail_msg("accepted %s", bad[i]);
		assert_false(rep.imported);
		assert_true(err[0] != '\0');
	}
}

/* ---- kibana_load_dashboards without a Kibana
 * ------------------------------------------------------------ */

static int load_with(const char *const *ov, size_t n, struct kibana_report *rep, char *err,
		     size_t errlen)
{
	char *all[16];
	struct hb_config cfg;
	struct cfg_error cerr;
	size_t k = 0;
	int rc;

	all[k++] = (char *)"output.file.enabled=false";
	for (size_t i = 0; i < n; i++)
		all[k++] = (char *)ov[i];
	if (cfg_load_string("", "test_kibana", all, k, &cfg, &cerr) != 0)
		fail_msg("config: %s", cerr.msg);
	rc = kibana_load_dashboards(&cfg, "9.9.9", rep, err, errlen);
	cfg_free(&cfg);
	return rc;
}

static void expect_config_error(const char *const *ov, size_t n, const char *needle)
{
	struct kibana_report rep;
	char err[512] = "";

	assert_int_equal(load_with(ov, n, &rep, err, sizeof(err)), -EINVAL);
	if (!strstr(err, needle))
		fail_msg("\"%s\" not in \"%s\"", needle, err);
	assert_int_equal(rep.status_polls, 0); /* refused before any request */
}

static void test_config_errors(void **state)
{
	static const char *const space[] = {"setup.kibana.space.id=Marketing"};
	static const char *const host[] = {"setup.kibana.host=ftp://kibana"};
	static const char *const both[] = {"setup.kibana.username=u",
					   "setup.kibana.api_key=id:key"};
	static const char *const mode[] = {"setup.kibana.host=https://127.0.0.1:1",
					   "setup.kibana.ssl.verification_mode=sometimes"};
	static const char *const ca[] = {
	    "setup.kibana.host=https://127.0.0.1:1",
	    "setup.kibana.ssl.certificate_authorities=[/nonexistent/ca.pem]"};

	(void)state;
	expect_config_error(space, N_ELEMS(space), "space.id");
	expect_config_error(host, N_ELEMS(host), "setup.kibana.host");
	expect_config_error(both, N_ELEMS(both), "not both");
	expect_config_error(mode, N_ELEMS(mode), "verification_mode");
	expect_config_error(ca, N_ELEMS(ca), "/nonexistent/ca.pem");
}

static int closed_port(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

static void test_not_ready_timeout(void **state)
{
	char host[64], err[512] = "";
	const char *ov[] = {host, "setup.dashboards.timeout=1s"};
	struct kibana_report rep;
	uint64_t t0;
	double took;

	(void)state;
	snprintf(host, sizeof(host), "setup.kibana.host=127.0.0.1:%d", closed_port());
	t0 = clock_mono_ns();
	assert_int_equal(load_with(ov, N_ELEMS(ov), &rep, err, sizeof(err)), -ETIMEDOUT);
	took = (double)(clock_mono_ns() - t0) / 1e9;
	assert_true(took >= 0.9 && took < 3.0);
	/* 0, 0.25, 0.75 s: the backoff doubles, the deadline ends it */
	assert_in_range(rep.status_polls, 3, 4);
	assert_int_equal(rep.import_attempts, 0);
	assert_non_null(strstr(err, "not ready"));
	assert_non_null(strstr(err, "last: GET http://127.0.0.1:")); /* the last failure */
	assert_string_equal(rep.version, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_base_url),
	    cmocka_unit_test(test_import_path),
	    cmocka_unit_test(test_status_v8),
	    cmocka_unit_test(test_status_v7),
	    cmocka_unit_test(test_status_rejections),
	    cmocka_unit_test(test_bundle_path),
	    cmocka_unit_test(test_multipart_exact),
	    cmocka_unit_test(test_multipart_rejections),
	    cmocka_unit_test(test_boundary_new),
	    cmocka_unit_test(test_bundle_count),
	    cmocka_unit_test(test_import_success),
	    cmocka_unit_test(test_import_failures),
	    cmocka_unit_test(test_import_many_failures),
	    cmocka_unit_test(test_import_bad_answers),
	    cmocka_unit_test(test_config_errors),
	    cmocka_unit_test(test_not_ready_timeout),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
