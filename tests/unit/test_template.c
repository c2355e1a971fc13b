/* test_template.c — shipper/fields.c (the field table) and shipper/template.c (index
 * templates, ILM policy): bodies are JSON, the mapping is the table, per-version
 * shapes, fingerprints, installed-state answers; the encoder's envelope is in the
 * table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <json-c/json.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hostbeat/config.h"
#include "hostbeat/encode.h"
#include "hostbeat/event.h"
#include "hostbeat/ip.h"
#include "hostbeat/mem.h"
#include "hostbeat/metrics.h"
#include "hostbeat/strbuf.h"
#include "shipper/fields.h"
#include "shipper/template.h"

#define VERSION "0.1.0"

/* ---- helpers ------------------------------------------------------------------ */

static void load_cfg(struct hb_config *c, const char *const *ov, size_t n)
{
	struct cfg_error err;

	if (cfg_load_string(cfg_default_yaml, "(embedded)", (char *const *)ov, n, c, &err) != 0)
		fail_msg("config: %s", err.msg);
}

static struct tmpl_target target(const char *dist, const char *number)
{
	struct tmpl_target t;

	assert_int_equal(template_target_parse(dist, number, &t), 0);
	return t;
}

/* The whole text must be one JSON value. */
static json_object *parse_all(const char *s, size_t len)
{
	struct json_tokener *tok = json_tokener_new();
	json_object *j;

	assert_non_null(tok);
	j = json_tokener_parse_ex(tok, s, (int)len);
	if (!j || json_tokener_get_error(tok) != json_tokener_success ||
	    json_tokener_get_parse_end(tok) != len)
		fail_msg("invalid JSON (%zu bytes): %.300s", len, s);
	json_tokener_free(tok);
	return j;
}

static json_object *body_json(struct tmpl_request *r)
{
	return parse_all(r->body.p, r->body.len);
}

/* Value at a path of object members separated by '/' (names hold dots). */
static json_object *at(json_object *root, const char *path)
{
	char buf[512], *save = NULL, *tok;
	json_object *cur = root;

	snprintf(buf, sizeof(buf), "%s", path);
	for (tok = strtok_r(buf, "/", &save); tok; tok = strtok_r(NULL, "/", &save))
		if (!cur || !json_object_is_type(cur, json_type_object) ||
		    !json_object_object_get_ex(cur, tok, &cur))
			return NULL;
	return cur;
}

static const char *at_str(json_object *root, const char *path)
{
	json_object *v = at(root, path);

	if (!v || !json_object_is_type(v, json_type_string))
		fail_msg("%s is not a string", path);
	return json_object_get_string(v);
}

static int64_t at_int(json_object *root, const char *path)
{
	json_object *v = at(root, path);

	if (!v || !json_object_is_type(v, json_type_int))
		fail_msg("%s is not an integer", path);
	return json_object_get_int64(v);
}

/* The mapping of a dotted field path inside a "properties" tree. */
static json_object *prop(json_object *mappings, const char *dotted)
{
	char buf[512], *save = NULL, *tok;
	json_object *cur = mappings;

	snprintf(buf, sizeof(buf), "%s", dotted);
	for (tok = strtok_r(buf, ".", &save); tok; tok = strtok_r(NULL, ".", &save))
		if (!cur || !json_object_object_get_ex(cur, "properties", &cur) ||
		    !json_object_object_get_ex(cur, tok, &cur))
			return NULL;
	return cur;
}

static const char *prop_type(json_object *mappings, const char *dotted)
{
	json_object *p = prop(mappings, dotted), *t;

	if (!p)
		fail_msg("no mapping for %s", dotted);
	if (!json_object_object_get_ex(p, "type", &t))
		return "object"; /* {"properties":{…}} */
	return json_object_get_string(t);
}

struct reqs {
	struct tmpl_request r[TMPL_MAX_REQUESTS];
	size_t n;
	struct hb_config cfg;
};

static void build(struct reqs *q, const char *dist, const char *number, const char *const *ov,
		  size_t nov)
{
	struct tmpl_target t = target(dist, number);

	load_cfg(&q->cfg, ov, nov);
	assert_int_equal(template_requests(&t, &q->cfg, VERSION, q->r, &q->n), 0);
}

static void release(struct reqs *q)
{
	template_requests_free(q->r, q->n);
	cfg_free(&q->cfg);
}

static struct tmpl_request *find(struct reqs *q, const char *path)
{
	for (size_t i = 0; i < q->n; i++)
		if (strcmp(q->r[i].path, path) == 0)
			return &q->r[i];
	fail_msg("no request for %s", path);
	return NULL;
}

/* ---- the table ---------------------------------------------------------------- */

static void test_table_invariants(void **state)
{
	char msg[256];
	size_t legacy = 0, rare = 0, wild = 0;

	(void)state;
	assert_int_equal(fields_check(fields_table, fields_count, msg, sizeof(msg)), 0);
	assert_string_equal(msg, "");
	for (size_t i = 0; i < fields_count; i++) {
		const struct field_def *f = &fields_table[i];

		assert_non_null(field_type_es_name(f->type));
		legacy += (f->flags & FF_LEGACY) != 0;
		rare += (f->flags & FF_RARE) != 0;
		wild += field_is_wildcard(f);
	}
	assert_true(fields_count > 400);
	assert_true(legacy > 50 && rare > 0 && wild == 4);
	assert_null(field_type_es_name(FT_NTYPES));
}

static void test_check_finds_conflicts(void **state)
{
	static const struct field_def leaf_parent[] = {
	    {"cpu.user", FT_LONG, 0, NULL},
	    {"cpu.user.pct", FT_SCALED, 0, NULL},
	};
	static const struct field_def twice[] = {
	    {"a.b", FT_LONG, 0, NULL},
	    {"a.b", FT_KEYWORD, 0, NULL},
	};
	static const struct field_def wild_under_leaf[] = {
	    {"labels.*", FT_KEYWORD, 0, NULL},
	    {"labels", FT_KEYWORD, 0, NULL},
	};
	static const struct field_def bad_star[] = {{"a.*.b", FT_KEYWORD, 0, NULL}};
	static const struct field_def bad_dots[] = {{"a..b", FT_KEYWORD, 0, NULL}};
	static const struct field_def ok[] = {
	    {"dns.answers", FT_OBJECT, 0, NULL},
	    {"dns.answers.ttl", FT_LONG, 0, NULL},
	    {"dns.answers_count", FT_LONG, 0, NULL},
	};
	char msg[256];

	(void)state;
	assert_int_equal(fields_check(leaf_parent, 2, msg, sizeof(msg)), -EINVAL);
	assert_non_null(strstr(msg, "cpu.user is a leaf (long) and the parent of cpu.user.pct"));
	assert_int_equal(fields_check(twice, 2, msg, sizeof(msg)), -EINVAL);
	assert_non_null(strstr(msg, "listed twice"));
	assert_int_equal(fields_check(wild_under_leaf, 2, msg, sizeof(msg)), -EINVAL);
	assert_int_equal(fields_check(bad_star, 1, msg, sizeof(msg)), -EINVAL);
	assert_int_equal(fields_check(bad_dots, 1, msg, sizeof(msg)), -EINVAL);
	assert_int_equal(fields_check(ok, 3, msg, sizeof(msg)), 0);
	/* a table that fails the check yields no mapping */
	{
		struct strbuf b;

		strbuf_init(&b);
		assert_int_equal(template_mappings(leaf_parent, 2, &b, msg, sizeof(msg)), -EINVAL);
		strbuf_free(&b);
	}
}

static void test_lookup(void **state)
{
	const struct field_def *f;

	(void)state;
	f = fields_lookup("dns.answers.ttl");
	assert_non_null(f);
	assert_int_equal(f->type, FT_LONG);
	f = fields_lookup("http.request.headers.x-forwarded-for");
	assert_non_null(f);
	assert_string_equal(f->path, "http.request.headers.*");
	f = fields_lookup("http.request.headers.content-length"); /* exact beats the wildcard */
	assert_int_equal(f->type, FT_LONG);
	f = fields_lookup("hostbeat.tcp.gaps");
	assert_string_equal(f->path, "hostbeat.*");
	assert_int_equal(fields_lookup("hostbeat")->type, FT_OBJECT); /* the object itself */
	assert_int_equal(fields_lookup("http.request.headers")->type, FT_OBJECT);
	assert_null(fields_lookup("no.such.field"));
	assert_null(fields_lookup("dns")); /* an implicit parent is no entry */
}

/* ---- the mapping ------------------------------------------------------------- */

/* Collect every leaf of a properties tree as "path type" lines; fail on a node that
 * is both typed (not object) and has properties. */
static void walk_props(json_object *props, const char *prefix, struct strbuf *out, size_t *nleaf)
{
	json_object_object_foreach(props, name, m)
	{
		char path[512];
		json_object *sub, *t;
		bool has_props = json_object_object_get_ex(m, "properties", &sub);
		bool has_type = json_object_object_get_ex(m, "type", &t);

		snprintf(path, sizeof(path), "%s%s%s", prefix, *prefix ? "." : "", name);
		if (has_props) {
			if (has_type && strcmp(json_object_get_string(t), "object") != 0)
				fail_msg("%s is both a leaf and an object", path);
			walk_props(sub, path, out, nleaf);
			continue;
		}
		if (!has_type)
			fail_msg("%s has neither type nor properties", path);
		if (strcmp(json_object_get_string(t), "object") == 0)
			continue; /* an empty object: the parent of a wildcard */
		strbuf_appendf(out, "%s %s\n", path, json_object_get_string(t));
		++*nleaf;
	}
}

static void test_mapping_is_the_table(void **state)
{
	struct strbuf b, leaves;
	json_object *m, *props;
	size_t nleaf = 0, want = 0;

	(void)state;
	strbuf_init(&b);
	strbuf_init(&leaves);
	strbuf_putc(&leaves, '\n'); /* every line starts after a '\n' */
	assert_int_equal(template_mappings(fields_table, fields_count, &b, NULL, 0), 0);
	m = parse_all(b.p, b.len);
	assert_non_null(props = at(m, "properties"));
	walk_props(props, "", &leaves, &nleaf);
	strbuf_cstr(&leaves);
	/* every non-wildcard entry is in the mapping with its type, and nothing else */
	for (size_t i = 0; i < fields_count; i++) {
		const struct field_def *f = &fields_table[i];
		char line[600];

		if (field_is_wildcard(f))
			continue;
		if (f->type == FT_OBJECT) {
			assert_string_equal(prop_type(m, f->path), "object");
			continue;
		}
		snprintf(line, sizeof(line), "\n%s %s\n", f->path, field_type_es_name(f->type));
		if (!strstr(leaves.p, line))
			fail_msg("mapping lacks%s", line);
		want++;
	}
	assert_int_equal(nleaf, want);
	json_object_put(m);
	strbuf_free(&leaves);
	strbuf_free(&b);
}

static void test_mapping_details(void **state)
{
	struct strbuf b;
	json_object *m, *dt, *x;
	size_t n;

	(void)state;
	strbuf_init(&b);
	assert_int_equal(template_mappings(fields_table, fields_count, &b, NULL, 0), 0);
	m = parse_all(b.p, b.len);
	assert_false(json_object_get_boolean(at(m, "date_detection")));
	assert_true(json_object_get_boolean(at(m, "dynamic")));

	/* nesting from dotted paths */
	assert_string_equal(prop_type(m, "@timestamp"), "date");
	assert_string_equal(prop_type(m, "dns.answers.ttl"), "long");
	assert_string_equal(prop_type(m, "dns.answers_count"), "long");
	assert_string_equal(prop_type(m, "dns.answers"), "object"); /* plain, not nested */
	assert_null(at(prop(m, "dns.answers"), "type"));
	assert_string_equal(prop_type(m, "observer.ingress.interface.name"), "keyword");
	assert_string_equal(prop_type(m, "related.ip"), "ip");
	assert_string_equal(prop_type(m, "client_ip"), "ip");
	assert_string_equal(prop_type(m, "event.start"), "date");
	assert_string_equal(prop_type(m, "system.process.cpu.start_time"), "date");
	assert_string_equal(prop_type(m, "proc.cpu.start_time"), "keyword");
	assert_string_equal(prop_type(m, "system.load.1"), "double");
	assert_string_equal(prop_type(m, "dns.flags.authoritative"), "boolean");
	assert_string_equal(prop_type(m, "http.request.headers.content-length"), "long");
	/* Topbeat's cpu.user (ms) next to system.cpu.user.pct: no conflict */
	assert_string_equal(prop_type(m, "cpu.user"), "long");
	assert_string_equal(prop_type(m, "system.cpu.user.pct"), "scaled_float");
	/* type parameters */
	x = prop(m, "system.cpu.user.pct");
	assert_int_equal(at_int(x, "scaling_factor"), 1000);
	x = prop(m, "cpu.user_p");
	assert_int_equal(at_int(x, "scaling_factor"), 1000);
	x = prop(m, "dns.question.name");
	assert_int_equal(at_int(x, "ignore_above"), 1024);
	x = prop(m, "url.full");
	assert_string_equal(at_str(x, "type"), "keyword");
	assert_string_equal(at_str(x, "fields/text/type"), "text");
	x = prop(m, "request");
	assert_string_equal(at_str(x, "type"), "text");
	assert_string_equal(at_str(x, "fields/keyword/type"), "keyword");
	assert_string_equal(at_str(prop(m, "error.message"), "type"), "text");
	x = prop(m, "network.forwarded_ip");
	assert_true(json_object_get_boolean(at(x, "ignore_malformed")));

	/* dynamic templates: the wildcards, most specific first, then the catch-all */
	dt = at(m, "dynamic_templates");
	assert_true(json_object_is_type(dt, json_type_array));
	n = json_object_array_length(dt);
	assert_int_equal(n, 5);
	x = json_object_array_get_idx(dt, 0);
	assert_string_equal(at_str(x, "http_response_headers/path_match"),
			    "http.response.headers.*");
	x = json_object_array_get_idx(dt, 1);
	assert_string_equal(at_str(x, "http_request_headers/path_match"), "http.request.headers.*");
	assert_string_equal(at_str(x, "http_request_headers/match_mapping_type"), "string");
	assert_string_equal(at_str(x, "http_request_headers/mapping/type"), "keyword");
	x = json_object_array_get_idx(dt, 3);
	assert_string_equal(at_str(x, "hostbeat/path_match"), "hostbeat.*");
	assert_string_equal(at_str(x, "hostbeat/match_mapping_type"), "long");
	assert_string_equal(at_str(x, "hostbeat/mapping/type"), "long");
	x = json_object_array_get_idx(dt, 4);
	assert_string_equal(at_str(x, "strings_as_keyword/mapping/type"), "keyword");
	json_object_put(m);
	strbuf_free(&b);
}

/* ---- requests per target -------------------------------------------------------- */

static const char *const ilm_on[] = {"setup.ilm.enabled=true"};

static void test_composable_es8(void **state)
{
	struct reqs q;
	json_object *j;
	static const char *const paths[] = {
	    "/_ilm/policy/hostbeat",
	    "/_component_template/hostbeat-mappings",
	    "/_component_template/hostbeat-settings",
	    "/_index_template/hostbeat-packetbeat",
	    "/_index_template/hostbeat-topbeat",
	    "/_index_template/hostbeat-metrics",
	};
	static const char *const globs[] = {"packetbeat-*", "topbeat-*", "hostbeat-metrics-*"};

	(void)state;
	build(&q, "elasticsearch", "8.15.0", ilm_on, 1);
	assert_int_equal(q.n, 6);
	for (size_t i = 0; i < q.n; i++) {
		assert_string_equal(q.r[i].path, paths[i]);
		assert_string_equal(q.r[i].method, "PUT");
		assert_int_equal(strlen(q.r[i].fingerprint), TMPL_FINGERPRINT_LEN);
		j = body_json(&q.r[i]);
		/* _meta carries the fingerprint and our version */
		if (q.r[i].kind == TMPL_REQ_ILM_POLICY) {
			assert_string_equal(at_str(j, "policy/_meta/fingerprint"),
					    q.r[i].fingerprint);
		} else {
			assert_string_equal(at_str(j, "_meta/fingerprint"), q.r[i].fingerprint);
			assert_string_equal(at_str(j, "_meta/version"), VERSION);
			assert_string_equal(at_str(j, "_meta/managed_by"), "hostbeat");
		}
		if (q.r[i].kind == TMPL_REQ_INDEX) {
			json_object *c = at(j, "composed_of");

			assert_int_equal(at_int(j, "priority"), TMPL_PRIORITY);
			assert_int_equal(json_object_array_length(at(j, "index_patterns")), 1);
			assert_string_equal(json_object_get_string(json_object_array_get_idx(
						at(j, "index_patterns"), 0)),
					    globs[i - 3]);
			assert_int_equal(json_object_array_length(c), 2);
			assert_string_equal(json_object_get_string(json_object_array_get_idx(c, 0)),
					    "hostbeat-mappings");
			assert_string_equal(json_object_get_string(json_object_array_get_idx(c, 1)),
					    "hostbeat-settings");
		}
		json_object_put(j);
	}
	j = body_json(find(&q, "/_component_template/hostbeat-settings"));
	assert_string_equal(at_str(j, "template/settings/index/lifecycle/name"), "hostbeat");
	assert_int_equal(at_int(j, "template/settings/index/number_of_shards"), 1);
	assert_null(at(j, "template/settings/index/number_of_replicas")); /* -1: ES default */
	assert_string_equal(at_str(j, "template/settings/index/refresh_interval"), "5s");
	assert_int_equal(at_int(j, "template/settings/index/mapping/total_fields/limit"), 10000);
	json_object_put(j);
	j = body_json(find(&q, "/_component_template/hostbeat-mappings"));
	assert_string_equal(prop_type(at(j, "template/mappings"), "dns.answers.ttl"), "long");
	json_object_put(j);
	j = body_json(&q.r[0]);
	assert_string_equal(at_str(j, "policy/phases/delete/min_age"), "30d"); /* 720h */
	assert_non_null(at(j, "policy/phases/delete/actions/delete"));
	json_object_put(j);
	release(&q);
}

static void test_composable_from_7_8(void **state)
{
	struct reqs q;

	(void)state;
	build(&q, "elasticsearch", "7.8.0", NULL, 0);
	assert_int_equal(q.n, 5); /* ILM off by default */
	assert_int_equal(q.r[0].kind, TMPL_REQ_COMPONENT);
	assert_int_equal(q.r[4].kind, TMPL_REQ_INDEX);
	release(&q);
	build(&q, "elasticsearch", "9.1.0", NULL, 0);
	assert_int_equal(q.n, 5);
	release(&q);
}

static void test_legacy_7_x(void **state)
{
	struct reqs q;
	json_object *j, *pat;

	(void)state;
	build(&q, "elasticsearch", "7.7.1", ilm_on, 1);
	assert_int_equal(q.n, 2);
	assert_int_equal(q.r[0].kind, TMPL_REQ_ILM_POLICY);
	assert_string_equal(q.r[1].path, "/_template/hostbeat");
	assert_int_equal(q.r[1].kind, TMPL_REQ_LEGACY);
	/* ILM policy _meta came with 7.14: none before, so no fingerprint */
	assert_string_equal(q.r[0].fingerprint, "");
	j = body_json(&q.r[0]);
	assert_null(at(j, "policy/_meta"));
	json_object_put(j);

	j = body_json(&q.r[1]);
	pat = at(j, "index_patterns");
	assert_int_equal(json_object_array_length(pat), 3);
	assert_string_equal(json_object_get_string(json_object_array_get_idx(pat, 0)),
			    "packetbeat-*");
	assert_string_equal(json_object_get_string(json_object_array_get_idx(pat, 2)),
			    "hostbeat-metrics-*");
	assert_int_equal(at_int(j, "order"), 1);
	assert_null(at(j, "_meta"));         /* not a legacy template key */
	assert_null(at(j, "mappings/_doc")); /* typeless */
	assert_string_equal(at_str(j, "mappings/_meta/fingerprint"), q.r[1].fingerprint);
	assert_string_equal(prop_type(at(j, "mappings"), "system.cpu.user.pct"), "scaled_float");
	assert_string_equal(at_str(j, "settings/index/lifecycle/name"), "hostbeat");
	json_object_put(j);
	release(&q);

	build(&q, "elasticsearch", "7.0.0", NULL, 0);
	assert_int_equal(q.n, 1);
	assert_int_equal(q.r[0].kind, TMPL_REQ_LEGACY);
	release(&q);
}

static void test_unsupported_and_names(void **state)
{
	struct tmpl_request r[TMPL_MAX_REQUESTS];
	struct tmpl_target t = target("elasticsearch", "6.8.23");
	struct hb_config c;
	size_t n = 99;
	static const char *const bad_name[] = {"setup.template.name=Hostbeat Templates"};
	static const char *const bad_policy[] = {"setup.ilm.enabled=true",
						 "setup.ilm.policy_name=_hidden"};
	static const char *const off[] = {"setup.template.enabled=false", "setup.ilm.enabled=true"};

	(void)state;
	load_cfg(&c, NULL, 0);
	assert_int_equal(template_requests(&t, &c, VERSION, r, &n), -ENOTSUP);
	assert_int_equal(n, 0);
	cfg_free(&c);

	t = target("elasticsearch", "8.15.0");
	load_cfg(&c, bad_name, 1);
	assert_int_equal(template_requests(&t, &c, VERSION, r, &n), -EINVAL);
	cfg_free(&c);
	load_cfg(&c, bad_policy, 2);
	assert_int_equal(template_requests(&t, &c, VERSION, r, &n), -EINVAL);
	cfg_free(&c);
	/* templates off, ILM on: the policy only */
	load_cfg(&c, off, 2);
	assert_int_equal(template_requests(&t, &c, VERSION, r, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(r[0].kind, TMPL_REQ_ILM_POLICY);
	template_requests_free(r, n);
	cfg_free(&c);
}

static void test_opensearch(void **state)
{
	struct reqs q;
	json_object *j;

	(void)state;
	build(&q, "opensearch", "2.11.0", ilm_on, 1);
	assert_false(template_ilm_supported(&(struct tmpl_target){TMPL_DIST_OPENSEARCH, 2, 11}));
	/* no ILM on OpenSearch (ISM): no policy, no lifecycle setting */
	assert_int_equal(q.n, 5);
	for (size_t i = 0; i < q.n; i++)
		assert_int_not_equal(q.r[i].kind, TMPL_REQ_ILM_POLICY);
	j = body_json(find(&q, "/_component_template/hostbeat-settings"));
	assert_null(at(j, "template/settings/index/lifecycle"));
	json_object_put(j);
	/* only types OpenSearch knows */
	assert_string_equal(q.r[0].path, "/_component_template/hostbeat-mappings");
	assert_null(strstr(strbuf_cstr(&q.r[0].body), "match_only_text"));
	assert_null(strstr(strbuf_cstr(&q.r[0].body), "\"wildcard\""));
	release(&q);

	build(&q, "opensearch", "1.0.0", NULL, 0);
	assert_int_equal(q.n, 5);
	assert_int_equal(q.r[0].kind, TMPL_REQ_COMPONENT);
	release(&q);
}

static void test_replicas_and_shards(void **state)
{
	static const char *const ov[] = {"setup.template.settings.index.number_of_replicas=0",
					 "setup.template.settings.index.number_of_shards=3"};
	struct reqs q;
	json_object *j;

	(void)state;
	build(&q, "elasticsearch", "8.15.0", ov, 2);
	j = body_json(find(&q, "/_component_template/hostbeat-settings"));
	assert_int_equal(at_int(j, "template/settings/index/number_of_replicas"), 0);
	assert_int_equal(at_int(j, "template/settings/index/number_of_shards"), 3);
	assert_null(at(j, "template/settings/index/lifecycle"));
	json_object_put(j);
	release(&q);
}

static void test_index_patterns_from_config(void **state)
{
	static const char *const custom[] = {
	    "output.file.enabled=false",
	    "output.elasticsearch.index=netlogs-%{[agent.version]}-%{+yyyy.MM.dd}",
	    "output.elasticsearch.topbeat_index=netlogs-sys-%{+yyyy.MM}"};
	static const char *const same[] = {"output.file.enabled=false",
					   "output.elasticsearch.index=hb-%{+yyyy.MM.dd}",
					   "output.elasticsearch.topbeat_index=hb-%{+yyyy.MM}"};
	struct reqs q;
	json_object *a, *b;

	(void)state;
	build(&q, "elasticsearch", "8.15.0", custom, 3);
	a = body_json(find(&q, "/_index_template/hostbeat-packetbeat"));
	b = body_json(find(&q, "/_index_template/hostbeat-topbeat"));
	assert_string_equal(
	    json_object_get_string(json_object_array_get_idx(at(a, "index_patterns"), 0)),
	    "netlogs-*");
	assert_string_equal(
	    json_object_get_string(json_object_array_get_idx(at(b, "index_patterns"), 0)),
	    "netlogs-sys-*");
	/* overlapping globs: the more specific one wins on priority */
	assert_int_equal(at_int(a, "priority"), TMPL_PRIORITY);
	assert_int_equal(at_int(b, "priority"), TMPL_PRIORITY + 1);
	json_object_put(a);
	json_object_put(b);
	release(&q);

	/* one glob for both: one template */
	build(&q, "elasticsearch", "8.15.0", same, 3);
	assert_int_equal(q.n, 4);
	for (size_t i = 0; i < q.n; i++)
		assert_string_not_equal(q.r[i].path, "/_index_template/hostbeat-topbeat");
	release(&q);
}

/* ---- fingerprints ------------------------------------------------------------------ */

static void test_fingerprint_stable(void **state)
{
	struct reqs a, b;
	struct tmpl_request other[TMPL_MAX_REQUESTS];
	struct tmpl_target t = target("elasticsearch", "8.15.0");
	size_t n;

	(void)state;
	build(&a, "elasticsearch", "8.15.0", ilm_on, 1);
	build(&b, "elasticsearch", "8.15.0", ilm_on, 1);
	assert_int_equal(a.n, b.n);
	for (size_t i = 0; i < a.n; i++) {
		assert_string_equal(a.r[i].fingerprint, b.r[i].fingerprint);
		assert_int_equal(a.r[i].body.len, b.r[i].body.len);
		assert_memory_equal(a.r[i].body.p, b.r[i].body.p, a.r[i].body.len);
		for (size_t k = 0; k < i; k++) /* each body its own */
			assert_string_not_equal(a.r[i].fingerprint, a.r[k].fingerprint);
	}
	/* the agent version is in _meta but not in the fingerprint */
	assert_int_equal(template_requests(&t, &a.cfg, "9.9.9", other, &n), 0);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(other[i].fingerprint, a.r[i].fingerprint);
	assert_non_null(strstr(strbuf_cstr(&other[1].body), "\"version\":\"9.9.9\""));
	template_requests_free(other, n);
	release(&a);
	release(&b);
}

static void test_fingerprint_follows_table(void **state)
{
	struct reqs a;
	struct tmpl_request r[TMPL_MAX_REQUESTS];
	struct tmpl_target t = target("elasticsearch", "8.15.0");
	struct field_def *copy = malloc(fields_count * sizeof(*copy));
	size_t n, i;

	(void)state;
	assert_non_null(copy);
	build(&a, "elasticsearch", "8.15.0", NULL, 0);
	memcpy(copy, fields_table, fields_count * sizeof(*copy));
	/* the same table in another order: the same mapping */
	for (i = 0; i < fields_count / 2; i++) {
		struct field_def x = copy[i];

		copy[i] = copy[fields_count - 1 - i];
		copy[fields_count - 1 - i] = x;
	}
	assert_int_equal(template_requests_with(&t, &a.cfg, VERSION, copy, fields_count, r, &n), 0);
	for (i = 0; i < n; i++)
		assert_string_equal(r[i].fingerprint, a.r[i].fingerprint);
	template_requests_free(r, n);
	/* one type changed: the mappings component changes, nothing else */
	for (i = 0; i < fields_count; i++)
		if (strcmp(copy[i].path, "dns.answers.ttl") == 0)
			copy[i].type = FT_KEYWORD;
	assert_int_equal(template_requests_with(&t, &a.cfg, VERSION, copy, fields_count, r, &n), 0);
	assert_string_equal(r[0].path, "/_component_template/hostbeat-mappings");
	assert_string_not_equal(r[0].fingerprint, a.r[0].fingerprint);
	for (i = 1; i < n; i++)
		assert_string_equal(r[i].fingerprint, a.r[i].fingerprint);
	template_requests_free(r, n);
	/* one field less: changes too */
	assert_int_equal(template_requests_with(&t, &a.cfg, VERSION, copy, fields_count - 1, r, &n),
			 0);
	assert_string_not_equal(r[0].fingerprint, a.r[0].fingerprint);
	template_requests_free(r, n);
	/* a broken table: no requests */
	copy[0] = copy[1];
	assert_int_equal(template_requests_with(&t, &a.cfg, VERSION, copy, fields_count, r, &n),
			 -EINVAL);
	assert_int_equal(n, 0);
	free(copy);
	release(&a);
}

/* ---- what is installed ------------------------------------------------------------ */

/* The body ES answers to GET r->path, made from what we PUT (mutated = another
 * fingerprint in it). */
static void get_answer(const struct tmpl_request *r, bool mutated, struct strbuf *out)
{
	char *body = strdup(strbuf_cstr((struct strbuf *)&r->body));
	char *fp;

	assert_non_null(body);
	if (mutated) {
		fp = strstr(body, r->fingerprint);
		assert_non_null(fp);
		fp[0] = fp[0] == '0' ? '1' : '0';
	}
	strbuf_reset(out);
	switch (r->kind) {
	case TMPL_REQ_INDEX:
		strbuf_appendf(out,
			       "{\"index_templates\":[{\"name\":\"other\",\"index_template\":{}},"
			       "{\"name\":\"%s\",\"index_template\":%s}]}",
			       r->name, body);
		break;
	case TMPL_REQ_COMPONENT:
		strbuf_appendf(
		    out, "{\"component_templates\":[{\"name\":\"%s\",\"component_template\":%s}]}",
		    r->name, body);
		break;
	case TMPL_REQ_LEGACY:
		strbuf_appendf(out, "{\"%s\":%s}", r->name, body);
		break;
	case TMPL_REQ_ILM_POLICY:
		strbuf_appendf(out,
			       "{\"%s\":{\"version\":3,\"modified_date\":\"x\",\"policy\":%s}}",
			       r->name, strstr(body, "{\"phases\""));
		out->len--; /* the policy object closes once */
		break;
	}
	free(body);
}

static void check_states(struct reqs *q)
{
	struct strbuf ans;

	strbuf_init(&ans);
	for (size_t i = 0; i < q->n; i++) {
		struct tmpl_request *r = &q->r[i];

		assert_int_equal(template_installed_state(r, 404, "{}", 2), TMPL_ABSENT);
		assert_int_equal(template_installed_state(r, 500, "{}", 2), -EPROTO);
		assert_int_equal(template_installed_state(r, 200, "{\"a\":", 5), -EPROTO);
		assert_int_equal(template_installed_state(r, 200, "{}", 2), -EPROTO);
		get_answer(r, false, &ans);
		assert_int_equal(template_installed_state(r, 200, ans.p, ans.len),
				 r->fingerprint[0] ? TMPL_CURRENT : TMPL_OUTDATED);
		if (r->fingerprint[0]) {
			get_answer(r, true, &ans);
			assert_int_equal(template_installed_state(r, 200, ans.p, ans.len),
					 TMPL_OUTDATED);
		}
	}
	strbuf_free(&ans);
}

static void test_installed_state(void **state)
{
	struct reqs q;
	const char *someone_else = "{\"index_templates\":[{\"name\":\"hostbeat-packetbeat\","
				   "\"index_template\":{\"index_patterns\":[\"packetbeat-*\"]}}]}";

	(void)state;
	build(&q, "elasticsearch", "8.15.0", ilm_on, 1);
	check_states(&q);
	/* a template of the same name without our _meta: outdated, not ours */
	assert_int_equal(template_installed_state(find(&q, "/_index_template/hostbeat-packetbeat"),
						  200, someone_else, strlen(someone_else)),
			 TMPL_OUTDATED);
	release(&q);
	build(&q, "elasticsearch", "7.10.2", ilm_on, 1);
	check_states(&q);
	release(&q);
}

/* ---- ILM ages, targets ------------------------------------------------------------ */

static void test_ilm_age(void **state)
{
	char b[32];
	const uint64_t h = 3600ULL * 1000000000ULL;

	(void)state;
	assert_int_equal(template_ilm_age(720 * h, b, sizeof(b)), 3);
	assert_string_equal(b, "30d");
	template_ilm_age(24 * h, b, sizeof(b));
	assert_string_equal(b, "1d");
	template_ilm_age(36 * h, b, sizeof(b));
	assert_string_equal(b, "36h");
	template_ilm_age(h + 1, b, sizeof(b)); /* rounded up: never earlier than asked */
	assert_string_equal(b, "2h");
	template_ilm_age(0, b, sizeof(b));
	assert_string_equal(b, "1h");
	assert_int_equal(template_ilm_age(100000 * h, b, 3), 2); /* truncated, terminated */
	assert_string_equal(b, "10");
}

static void test_target_parse(void **state)
{
	struct tmpl_target t;

	(void)state;
	assert_int_equal(template_target_parse(NULL, "8.15.0", &t), 0);
	assert_int_equal(t.dist, TMPL_DIST_ES);
	assert_int_equal(t.major, 8);
	assert_int_equal(t.minor, 15);
	assert_int_equal(template_target_parse("opensearch", "2.11.0-SNAPSHOT", &t), 0);
	assert_int_equal(t.dist, TMPL_DIST_OPENSEARCH);
	assert_int_equal(t.major, 2);
	assert_int_equal(template_target_parse("elasticsearch", "7.17", &t), 0);
	assert_int_equal(t.minor, 17);
	assert_int_equal(template_target_parse("solr", "8.0.0", &t), -EINVAL);
	assert_int_equal(template_target_parse(NULL, "8", &t), -EINVAL);
	assert_int_equal(template_target_parse(NULL, "v8.1", &t), -EINVAL);
	assert_int_equal(template_target_parse(NULL, "", &t), -EINVAL);
	assert_int_equal(template_target_parse(NULL, NULL, &t), -EINVAL);
	assert_true(template_ilm_supported(&(struct tmpl_target){TMPL_DIST_ES, 7, 0}));
}

static void test_out_of_memory(void **state)
{
	struct tmpl_request r[TMPL_MAX_REQUESTS];
	struct tmpl_target t = target("elasticsearch", "8.15.0");
	struct hb_config c;
	size_t n;
	long k;
	int rc;

	(void)state;
	load_cfg(&c, ilm_on, 1);
	/* every allocation fails in turn: -ENOMEM and nothing leaks (ASan) */
	for (k = 0;; k++) {
		mem_fail_after(k);
		rc = template_requests(&t, &c, VERSION, r, &n);
		mem_fail_reset();
		if (rc == 0)
			break;
		assert_int_equal(rc, -ENOMEM);
		assert_int_equal(n, 0);
	}
	assert_true(k > 0);
	template_requests_free(r, n);
	cfg_free(&c);
}

/* ---- the encoder's envelope is in the table ---------------------------------------- */

static void check_doc_in_table(json_object *o, const char *prefix)
{
	json_object_object_foreach(o, k, v)
	{
		char path[512];
		const struct field_def *f;

		snprintf(path, sizeof(path), "%s%s%s", prefix, *prefix ? "." : "", k);
		if (json_object_is_type(v, json_type_array) && json_object_array_length(v) &&
		    json_object_is_type(json_object_array_get_idx(v, 0), json_type_object)) {
			for (size_t i = 0; i < json_object_array_length(v); i++)
				check_doc_in_table(json_object_array_get_idx(v, i), path);
			continue;
		}
		if (json_object_is_type(v, json_type_object)) {
			check_doc_in_table(v, path);
			continue;
		}
		f = fields_lookup(path);
		if (!f)
			fail_msg("the encoder writes %s, which is not in shipper/fields.c", path);
		if (f->type == FT_IP || f->type == FT_DATE || f->type == FT_KEYWORD) {
			if (json_object_is_type(v, json_type_array))
				v = json_object_array_get_idx(v, 0);
			assert_true(json_object_is_type(v, json_type_string));
		}
		if (f->type == FT_LONG && !json_object_is_type(v, json_type_int))
			fail_msg("%s: long in the table, not an integer in the document", path);
	}
}

static void test_envelope_in_table(void **state)
{
	struct ev_pool *pool = ev_pool_new(4, 1 << 16, 64);
	struct cfg_strlist tags = {(char *[]){"a", "b"}, 2};
	struct encode_opts o = {.agent_name = "h",
				.agent_version = VERSION,
				.agent_type = "hostbeat",
				.agent_id = "id",
				.agent_ephemeral_id = "eid",
				.host_name = "h",
				.tags = &tags,
				.legacy_fields = true};
	const enum ev_kind kinds[] = {EV_KIND_TRANSACTION, EV_KIND_METRIC, EV_KIND_SELF};
	const char *const datasets[] = {"http", "system.cpu", "hostbeat.metrics"};
	struct strbuf out;

	(void)state;
	assert_non_null(pool);
	strbuf_init(&out);
	metrics_reset();
	for (size_t i = 0; i < 3; i++) {
		struct event *ev = ev_pool_get(pool, kinds[i], datasets[i]);
		json_object *j;

		assert_non_null(ev);
		ev->ts = ev->start_ns = 1424218386231442000ULL;
		ev->end_ns = ev->start_ns + 18341000ULL;
		ev->status = EV_STATUS_OK;
		ev->has_tuple = true;
		ev->transport = IPPROTO_TCP;
		assert_int_equal(hb_ip_parse("172.31.98.49", &ev->client_ip), 0);
		assert_int_equal(hb_ip_parse("93.184.216.34", &ev->server_ip), 0);
		ev->client_port = 55874;
		ev->server_port = 80;
		ev->has_client_bytes = ev->has_server_bytes = true;
		ev->client_bytes = 130;
		ev->server_bytes = 1591;
		ev->iface = "eth0";
		if (kinds[i] == EV_KIND_SELF)
			metrics_fill_event(ev);
		strbuf_reset(&out);
		assert_int_equal(encode_event(ev, &o, &out), 0);
		j = parse_all(out.p, out.len);
		check_doc_in_table(j, "");
		if (kinds[i] == EV_KIND_TRANSACTION) { /* it did carry the legacy names */
			assert_non_null(at(j, "responsetime"));
			assert_non_null(at(j, "observer/ingress/interface/name"));
		}
		json_object_put(j);
		ev_pool_put(ev);
	}
	strbuf_free(&out);
	ev_pool_free(pool);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_table_invariants),
	    cmocka_unit_test(test_check_finds_conflicts),
	    cmocka_unit_test(test_lookup),
	    cmocka_unit_test(test_mapping_is_the_table),
	    cmocka_unit_test(test_mapping_details),
	    cmocka_unit_test(test_composable_es8),
	    cmocka_unit_test(test_composable_from_7_8),
	    cmocka_unit_test(test_legacy_7_x),
	    cmocka_unit_test(test_unsupported_and_names),
	    cmocka_unit_test(test_opensearch),
	    cmocka_unit_test(test_replicas_and_shards),
	    cmocka_unit_test(test_index_patterns_from_config),
	    cmocka_unit_test(test_fingerprint_stable),
	    cmocka_unit_test(test_fingerprint_follows_table),
	    cmocka_unit_test(test_installed_state),
	    cmocka_unit_test(test_ilm_age),
	    cmocka_unit_test(test_target_parse),
	    cmocka_unit_test(test_out_of_memory),
	    cmocka_unit_test(test_envelope_in_table),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
