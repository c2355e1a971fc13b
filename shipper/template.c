/* template.c — index templates and the ILM policy as JSON bodies (template.h).
 *
 * Spec: docs/reference/ecosystem.md §2.5–2.8; the body shapes follow
 * elastic/elasticsearch-specification (indices/put_index_template,
 * cluster/put_component_template, indices/put_template, ilm/put_lifecycle).
 *
 * The mappings are generated from the field table: the non-wildcard entries are
 * sorted segment-wise ('.' below every other byte), so the entries below one object
 * are contiguous, and written recursively:
 *
 *   dns.answers        (object) ─┐  "dns":{"properties":{
 *   dns.answers.class  keyword   │    "answers":{"properties":{"class":{…},"ttl":{…}}},
 *   dns.answers.ttl    long      │    "answers_count":{"type":"long"}}}
 *   dns.answers_count  long     ─┘
 *
 * Wildcard entries ("http.request.headers.*") become dynamic_templates (most specific
 * first), followed by Beats' catch-all "strings_as_keyword".
 *
 * Fingerprint: the first 64 bits of the SHA-1 of the body built without `_meta`, in hex.
 * Each body is built twice (once to hash, once with _meta): a few kB, at start-up.
 */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hostbeat/clock.h"
#include "hostbeat/mem.h"
#include "hostbeat/sha1.h"
#include "shipper/template.h"

#define KEYWORD_IGNORE_ABOVE 1024
#define SCALING_FACTOR 1000
#define METRICS_PATTERN "hostbeat-metrics-*"
#define NS_PER_HOUR (3600 * NS_PER_SEC)

/* ---- JSON text -------------------------------------------------------------- */

/* A JSON string of the NUL-terminated s (names, patterns, the version). */
static void put_str(struct strbuf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";

	strbuf_putc(b, '"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			strbuf_putc(b, '\\');
			strbuf_putc(b, (char)c);
		} else if (c < 0x20) {
			char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};

			strbuf_append(b, u, sizeof(u));
		} else {
			strbuf_putc(b, (char)c);
		}
	}
	strbuf_putc(b, '"');
}

/* "segment": for the `len` bytes at s (field path segments: code literals). */
static void put_key(struct strbuf *b, const char *s, size_t len)
{
	strbuf_putc(b, '"');
	strbuf_append(b, s, len);
	strbuf_append(b, "\":", 2);
}

/* ---- mappings ---------------------------------------------------------------- */

/* The mapping of one field: {"type":"keyword","ignore_above":1024}, ... */
static void put_field_mapping(struct strbuf *b, const struct field_def *f)
{
	strbuf_appendf(b, "{\"type\":\"%s\"", field_type_es_name(f->type));
	switch (f->type) {
	case FT_KEYWORD:
		strbuf_appendf(b, ",\"ignore_above\":%d", KEYWORD_IGNORE_ABOVE);
		break;
	case FT_KEYWORD_TEXT:
		strbuf_appendf(b, ",\"ignore_above\":%d,\"fields\":{\"text\":{\"type\":\"text\"}}",
			       KEYWORD_IGNORE_ABOVE);
		break;
	case FT_TEXT:
		strbuf_appendf(
		    b, ",\"fields\":{\"keyword\":{\"type\":\"keyword\",\"ignore_above\":%d}}",
		    KEYWORD_IGNORE_ABOVE);
		break;
	case FT_SCALED:
		strbuf_appendf(b, ",\"scaling_factor\":%d", SCALING_FACTOR);
		break;
	default:
		break;
	}
	if (f->params && f->params[0]) {
		strbuf_putc(b, ',');
		strbuf_puts(b, f->params);
	}
	strbuf_putc(b, '}');
}

/* Segment `d` (0-based) of path p: its start, and its length in *len; NULL when p has
 * fewer segments. */
static const char *segment(const char *p, size_t d, size_t *len)
{
	const char *end;

	while (d--) {
		p = strchr(p, '.');
		if (!p)
			return NULL;
		p++;
	}
	end = strchr(p, '.');
	*len = end ? (size_t)(end - p) : strlen(p);
	return p;
}

static int cmp_def(const void *a, const void *b)
{
	const struct field_def *const *x = a, *const *y = b;

	return fields_path_cmp((*x)->path, (*y)->path);
}

/* The members of the object whose entries are v[lo, hi) (they share segments
 * 0..d-1): `"seg":{…}` for each distinct segment d. fields_check() has run, so an
 * entry with children is an object. */
static void put_properties(struct strbuf *b, const struct field_def *const *v, size_t lo, size_t hi,
			   size_t d)
{
	size_t i = lo, j, len, len2;
	const char *seg, *s2;

	while (i < hi) {
		seg = segment(v[i]->path, d, &len);
		for (j = i + 1; j < hi; j++) {
			s2 = segment(v[j]->path, d, &len2);
			if (!s2 || len2 != len || memcmp(s2, seg, len) != 0)
				break;
		}
		if (i > lo)
			strbuf_putc(b, ',');
		put_key(b, seg, len);
		/* v[i] is the node itself when it ends here (it sorts first) */
		if (seg[len] == '\0' && (j - i == 1 || v[i]->type != FT_OBJECT)) {
			put_field_mapping(b, v[i]);
		} else {
			size_t first = seg[len] == '\0' ? i + 1 : i;

			strbuf_puts(b, "{\"properties\":{");
			put_properties(b, v, first, j, d + 1);
			strbuf_puts(b, "}}");
		}
		i = j;
	}
}

/* match_mapping_type for a wildcard entry's JSON values. */
static const char *dyn_match_type(unsigned type)
{
	switch (type) {
	case FT_LONG:
		return "long";
	case FT_DOUBLE:
	case FT_SCALED:
		return "double";
	case FT_BOOLEAN:
		return "boolean";
	case FT_OBJECT:
		return "object";
	default:
		return "string"; /* keyword, text, ip, date */
	}
}

/* {"<path with '_' for '.'>":{"path_match":"a.b.*","match_mapping_type":…,"mapping":…}} */
static void put_dynamic_template(struct strbuf *b, const struct field_def *f)
{
	size_t n = strlen(f->path) - 2; /* without ".*" */

	strbuf_putc(b, '{');
	strbuf_putc(b, '"');
	for (size_t i = 0; i < n; i++)
		strbuf_putc(b, f->path[i] == '.' ? '_' : f->path[i]);
	strbuf_puts(b, "\":{\"path_match\":");
	put_str(b, f->path);
	strbuf_appendf(b, ",\"match_mapping_type\":\"%s\",\"mapping\":", dyn_match_type(f->type));
	put_field_mapping(b, f);
	strbuf_puts(b, "}}");
}

/* Wildcards: the longer (more specific) prefix first, then by path. */
static int cmp_wild(const void *a, const void *b)
{
	const struct field_def *const *x = a, *const *y = b;
	size_t lx = strlen((*x)->path), ly = strlen((*y)->path);

	if (lx != ly)
		return lx > ly ? -1 : 1;
	return fields_path_cmp((*x)->path, (*y)->path);
}

/* The members of the mappings object (no braces), so that the legacy template can
 * put its _meta first. */
static int put_mapping_members(const struct field_def *tab, size_t n, struct strbuf *out, char *msg,
			       size_t msg_size)
{
	const struct field_def **v;
	char buf[160];
	size_t nleaf = 0, nwild = 0, i;
	int rc;

	rc = fields_check(tab, n, msg ? msg : buf, msg ? msg_size : sizeof(buf));
	if (rc < 0)
		return rc;
	v = hb_malloc((n ? n : 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	/* v[0, nleaf): the properties; v[n - nwild, n): the wildcards */
	for (i = 0; i < n; i++) {
		if (field_is_wildcard(&tab[i]))
			v[n - ++nwild] = &tab[i];
		else
			v[nleaf++] = &tab[i];
	}
	qsort(v, nleaf, sizeof(*v), cmp_def);
	qsort(v + nleaf, nwild, sizeof(*v), cmp_wild);

	strbuf_puts(out, "\"date_detection\":false,\"dynamic\":true,\"dynamic_templates\":[");
	for (i = 0; i < nwild; i++) {
		put_dynamic_template(out, v[nleaf + i]);
		strbuf_putc(out, ',');
	}
	/* Beats' catch-all: an unlisted string is a keyword, not text + keyword */
	strbuf_appendf(out,
		       "{\"strings_as_keyword\":{\"match_mapping_type\":\"string\",\"mapping\":"
		       "{\"type\":\"keyword\",\"ignore_above\":%d}}}],\"properties\":{",
		       KEYWORD_IGNORE_ABOVE);
	put_properties(out, v, 0, nleaf, 0);
	strbuf_putc(out, '}');
	hb_free(v);
	return out->err ? -ENOMEM : 0;
}

int template_mappings(const struct field_def *tab, size_t n, struct strbuf *out, char *msg,
		      size_t msg_size)
{
	int rc;

	strbuf_putc(out, '{');
	rc = put_mapping_members(tab, n, out, msg, msg_size);
	strbuf_putc(out, '}');
	return rc == 0 && out->err ? -ENOMEM : rc;
}

/* ---- settings, policy ----------------------------------------------------------- */

size_t template_ilm_age(uint64_t ns, char *buf, size_t size)
{
	uint64_t hours = ns / NS_PER_HOUR + (ns % NS_PER_HOUR != 0);
	int w;

	if (!hours)
		hours = 1;
	if (hours % 24 == 0)
		w = snprintf(buf, size, "%llud", (unsigned long long)(hours / 24));
	else
		w = snprintf(buf, size, "%lluh", (unsigned long long)hours);
	if (w < 0 || !size)
		return 0;
	return (size_t)w < size ? (size_t)w : size - 1;
}

bool template_ilm_supported(const struct tmpl_target *t)
{
	return t->dist == TMPL_DIST_ES;
}

/* {"index":{…}}: the settings every index of ours gets. */
static void put_settings(struct strbuf *b, const struct hb_config *cfg, bool lifecycle)
{
	strbuf_appendf(b, "{\"index\":{\"number_of_shards\":%lld", (long long)cfg->tmpl_shards);
	if (cfg->tmpl_replicas >= 0)
		strbuf_appendf(b, ",\"number_of_replicas\":%lld", (long long)cfg->tmpl_replicas);
	strbuf_puts(
	    b, ",\"refresh_interval\":\"5s\",\"mapping\":{\"total_fields\":{\"limit\":10000}}");
	if (lifecycle) {
		strbuf_puts(b, ",\"lifecycle\":{\"name\":");
		put_str(b, cfg->ilm_policy_name);
		strbuf_putc(b, '}');
	}
	strbuf_puts(b, "}}");
}

/* ---- requests ------------------------------------------------------------------ */

/* What one body needs besides the config. */
struct build {
	const struct tmpl_target *t;
	const struct hb_config *cfg;
	const char *version;
	const struct field_def *tab;
	size_t ntab;
	bool lifecycle;                    /* index.lifecycle.name in the settings */
	char names[2][TMPL_NAME_MAX + 16]; /* the two component templates */
	/* the index templates: pattern and priority; pattern "" = not installed */
	char patterns[3][TMPL_PATH_MAX];
	unsigned priority[3];
};

static const char *const index_suffix[3] = {"packetbeat", "topbeat", "metrics"};

/* "_meta":{…} (no leading comma). */
static void put_meta(struct strbuf *b, const struct build *bd, const char *fp)
{
	strbuf_puts(b, "\"_meta\":{\"managed_by\":\"hostbeat\",\"version\":");
	put_str(b, bd->version ? bd->version : "");
	strbuf_puts(b, ",\"fingerprint\":");
	put_str(b, fp);
	strbuf_putc(b, '}');
}

/* The body of request r (by kind and index `which`); fp NULL = without _meta. */
static int put_body(struct strbuf *b, const struct build *bd, enum tmpl_kind kind, int which,
		    const char *fp)
{
	char age[32];
	int rc = 0;

	switch (kind) {
	case TMPL_REQ_ILM_POLICY:
		template_ilm_age(bd->cfg->ilm_delete_after, age, sizeof(age));
		strbuf_appendf(
		    b,
		    "{\"policy\":{\"phases\":{\"hot\":{\"min_age\":\"0ms\",\"actions\":{}},"
		    "\"delete\":{\"min_age\":\"%s\",\"actions\":{\"delete\":{}}}}",
		    age);
		if (fp) {
			strbuf_putc(b, ',');
			put_meta(b, bd, fp);
		}
		strbuf_puts(b, "}}");
		break;
	case TMPL_REQ_COMPONENT:
		if (which == 0) {
			strbuf_puts(b, "{\"template\":{\"mappings\":");
			rc = template_mappings(bd->tab, bd->ntab, b, NULL, 0);
		} else {
			strbuf_puts(b, "{\"template\":{\"settings\":");
			put_settings(b, bd->cfg, bd->lifecycle);
		}
		strbuf_putc(b, '}');
		if (fp) {
			strbuf_putc(b, ',');
			put_meta(b, bd, fp);
		}
		strbuf_putc(b, '}');
		break;
	case TMPL_REQ_INDEX:
		strbuf_puts(b, "{\"index_patterns\":[");
		put_str(b, bd->patterns[which]);
		strbuf_appendf(b, "],\"priority\":%u,\"composed_of\":[", bd->priority[which]);
		put_str(b, bd->names[0]);
		strbuf_putc(b, ',');
		put_str(b, bd->names[1]);
		strbuf_putc(b, ']');
		if (fp) {
			strbuf_putc(b, ',');
			put_meta(b, bd, fp);
		}
		strbuf_putc(b, '}');
		break;
	case TMPL_REQ_LEGACY: {
		bool first = true;

		strbuf_puts(b, "{\"index_patterns\":[");
		for (int i = 0; i < 3; i++) {
			if (!bd->patterns[i][0])
				continue;
			if (!first)
				strbuf_putc(b, ',');
			first = false;
			put_str(b, bd->patterns[i]);
		}
		strbuf_puts(b, "],\"order\":1,\"settings\":");
		put_settings(b, bd->cfg, bd->lifecycle);
		/* typeless 7.x mappings; our _meta goes into them (a legacy template has none) */
		strbuf_puts(b, ",\"mappings\":{");
		if (fp) {
			put_meta(b, bd, fp);
			strbuf_putc(b, ',');
		}
		rc = put_mapping_members(bd->tab, bd->ntab, b, NULL, 0);
		strbuf_putc(b, '}');
		strbuf_putc(b, '}');
		break;
	}
	}
	if (rc == 0 && b->err)
		rc = -ENOMEM;
	return rc;
}

static bool name_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (!n || n > TMPL_NAME_MAX ||
	    !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9')))
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == '-'))
			return false;
	}
	return true;
}

/* The index_patterns entry for a Beats index pattern: its literal text before the
 * first "%{" followed by '*' (the whole name when it has no token); `def` when that
 * text is empty. */
static void index_glob(const char *pattern, const char *def, char *out, size_t size)
{
	const char *tok = pattern ? strstr(pattern, "%{") : NULL;
	size_t n;

	if (!pattern || tok == pattern) {
		snprintf(out, size, "%s", def);
		return;
	}
	n = tok ? (size_t)(tok - pattern) : strlen(pattern);
	if (n + 2 > size) {
		snprintf(out, size, "%s", def);
		return;
	}
	memcpy(out, pattern, n);
	if (tok)
		out[n++] = '*';
	out[n] = '\0';
}

/* Literal text of a glob ("packetbeat-*" → "packetbeat-"): its length. */
static size_t glob_prefix_len(const char *g)
{
	const char *star = strchr(g, '*');

	return star ? (size_t)(star - g) : strlen(g);
}

/* Two of our globs overlap when one's literal text is a prefix of the other's (an
 * exact name only matches itself). */
static bool globs_overlap(const char *a, const char *b)
{
	size_t la = glob_prefix_len(a), lb = glob_prefix_len(b);
	bool wa = a[la] == '*', wb = b[lb] == '*';

	if (!wa && !wb)
		return strcmp(a, b) == 0;
	if (wa && (la <= lb) && strncmp(a, b, la) == 0)
		return true;
	return wb && lb <= la && strncmp(a, b, lb) == 0;
}

static void plan_patterns(struct build *bd)
{
	index_glob(bd->cfg->es_index, "packetbeat-*", bd->patterns[0], sizeof(bd->patterns[0]));
	index_glob(bd->cfg->es_topbeat_index, "topbeat-*", bd->patterns[1],
		   sizeof(bd->patterns[1]));
	snprintf(bd->patterns[2], sizeof(bd->patterns[2]), "%s", METRICS_PATTERN);
	/* the same glob twice: one template is enough */
	for (int i = 1; i < 3; i++)
		for (int j = 0; j < i; j++)
			if (bd->patterns[j][0] && strcmp(bd->patterns[i], bd->patterns[j]) == 0)
				bd->patterns[i][0] = '\0';
	/* overlapping globs need distinct priorities: the more specific one wins */
	for (int i = 0; i < 3; i++) {
		bd->priority[i] = TMPL_PRIORITY;
		for (int j = 0; j < 3; j++)
			if (j != i && bd->patterns[i][0] && bd->patterns[j][0] &&
			    glob_prefix_len(bd->patterns[j]) < glob_prefix_len(bd->patterns[i]) &&
			    globs_overlap(bd->patterns[i], bd->patterns[j]))
				bd->priority[i]++;
	}
}

static void hex_fingerprint(const struct strbuf *b, char out[TMPL_FINGERPRINT_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	uint8_t d[SHA1_DIGEST_LEN];

	sha1(b->p, b->len, d);
	for (int i = 0; i < TMPL_FINGERPRINT_LEN / 2; i++) {
		out[2 * i] = hex[d[i] >> 4];
		out[2 * i + 1] = hex[d[i] & 15];
	}
	out[TMPL_FINGERPRINT_LEN] = '\0';
}

/* One request: name, path, fingerprint and body. */
static int add_request(struct tmpl_request *r, const struct build *bd, enum tmpl_kind kind,
		       int which)
{
	const char *name = bd->cfg->tmpl_name;
	bool meta = kind != TMPL_REQ_ILM_POLICY || bd->t->major > 7 ||
		    (bd->t->major == 7 && bd->t->minor >= 14);
	int rc;

	memset(r, 0, sizeof(*r));
	r->kind = kind;
	r->method = "PUT";
	strbuf_init(&r->body);
	switch (kind) {
	case TMPL_REQ_ILM_POLICY:
		snprintf(r->name, sizeof(r->name), "%s", bd->cfg->ilm_policy_name);
		snprintf(r->path, sizeof(r->path), "/_ilm/policy/%s", r->name);
		break;
	case TMPL_REQ_COMPONENT:
		snprintf(r->name, sizeof(r->name), "%s", bd->names[which]);
		snprintf(r->path, sizeof(r->path), "/_component_template/%s", r->name);
		break;
	case TMPL_REQ_INDEX:
		snprintf(r->name, sizeof(r->name), "%s-%s", name, index_suffix[which]);
		snprintf(r->path, sizeof(r->path), "/_index_template/%s", r->name);
		break;
	case TMPL_REQ_LEGACY:
		snprintf(r->name, sizeof(r->name), "%s", name);
		snprintf(r->path, sizeof(r->path), "/_template/%s", r->name);
		break;
	}
	if (meta) {
		rc = put_body(&r->body, bd, kind, which, NULL);
		if (rc < 0)
			goto err;
		hex_fingerprint(&r->body, r->fingerprint);
		strbuf_reset(&r->body);
	}
	rc = put_body(&r->body, bd, kind, which, meta ? r->fingerprint : NULL);
	if (rc < 0)
		goto err;
	return 0;
err:
	strbuf_free(&r->body);
	return rc;
}

int template_target_parse(const char *distribution, const char *number, struct tmpl_target *t)
{
	unsigned long v[2] = {0, 0};
	const char *p = number;
	char *end;

	if (!number || !t)
		return -EINVAL;
	if (!distribution || strcmp(distribution, "elasticsearch") == 0)
		t->dist = TMPL_DIST_ES;
	else if (strcmp(distribution, "opensearch") == 0)
		t->dist = TMPL_DIST_OPENSEARCH;
	else
		return -EINVAL;
	for (int i = 0; i < 2; i++) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		v[i] = strtoul(p, &end, 10);
		if (v[i] > 1000)
			return -EINVAL;
		p = end;
		if (i == 0 && *p++ != '.')
			return -EINVAL;
	}
	t->major = (unsigned)v[0];
	t->minor = (unsigned)v[1];
	return 0;
}

int template_requests_with(const struct tmpl_target *t, const struct hb_config *cfg,
			   const char *version, const struct field_def *tab, size_t ntab,
			   struct tmpl_request out[TMPL_MAX_REQUESTS], size_t *n)
{
	struct build bd;
	bool ilm, composable;
	size_t k = 0;
	int rc = 0;

	if (!t || !cfg || !out || !n || !tab)
		return -EINVAL;
	*n = 0;
	if (t->dist == TMPL_DIST_ES && t->major < 7)
		return -ENOTSUP;
	ilm = cfg->ilm_enabled && template_ilm_supported(t);
	if ((cfg->tmpl_enabled && !name_ok(cfg->tmpl_name)) ||
	    (ilm && !name_ok(cfg->ilm_policy_name)))
		return -EINVAL;
	composable =
	    t->dist == TMPL_DIST_OPENSEARCH || t->major > 7 || (t->major == 7 && t->minor >= 8);

	memset(&bd, 0, sizeof(bd));
	bd.t = t;
	bd.cfg = cfg;
	bd.version = version;
	bd.tab = tab;
	bd.ntab = ntab;
	bd.lifecycle = ilm;
	if (cfg->tmpl_enabled) {
		snprintf(bd.names[0], sizeof(bd.names[0]), "%s-mappings", cfg->tmpl_name);
		snprintf(bd.names[1], sizeof(bd.names[1]), "%s-settings", cfg->tmpl_name);
		plan_patterns(&bd);
	}

	if (ilm)
		rc = add_request(&out[k++], &bd, TMPL_REQ_ILM_POLICY, 0);
	if (rc == 0 && cfg->tmpl_enabled && composable) {
		for (int i = 0; rc == 0 && i < 2; i++)
			rc = add_request(&out[k++], &bd, TMPL_REQ_COMPONENT, i);
		for (int i = 0; rc == 0 && i < 3; i++)
			if (bd.patterns[i][0])
				rc = add_request(&out[k++], &bd, TMPL_REQ_INDEX, i);
	} else if (rc == 0 && cfg->tmpl_enabled) {
		rc = add_request(&out[k++], &bd, TMPL_REQ_LEGACY, 0);
	}
	if (rc < 0) {
		/* the failed request freed its own body */
		template_requests_free(out, k - 1);
		return rc;
	}
	*n = k;
	return 0;
}

int template_requests(const struct tmpl_target *t, const struct hb_config *cfg, const char *version,
		      struct tmpl_request out[TMPL_MAX_REQUESTS], size_t *n)
{
	return template_requests_with(t, cfg, version, fields_table, fields_count, out, n);
}

void template_requests_free(struct tmpl_request *r, size_t n)
{
	for (size_t i = 0; r && i < n; i++)
		strbuf_free(&r[i].body);
}

/* ---- what is installed ----------------------------------------------------------- */

static struct json_object *get_path(struct json_object *o, const char *const *keys)
{
	for (; o && *keys; keys++)
		if (!json_object_is_type(o, json_type_object) ||
		    !json_object_object_get_ex(o, *keys, &o))
			return NULL;
	return o;
}

/* The entry named `name` of the list at `list_key` ("index_templates": [{name, <item_key>:{…}}]).
 */
static struct json_object *named_item(struct json_object *root, const char *list_key,
				      const char *item_key, const char *name)
{
	struct json_object *list, *it, *nm, *val;

	if (!json_object_object_get_ex(root, list_key, &list) ||
	    !json_object_is_type(list, json_type_array))
		return NULL;
	for (size_t i = 0; i < json_object_array_length(list); i++) {
		it = json_object_array_get_idx(list, i);
		if (json_object_is_type(it, json_type_object) &&
		    json_object_object_get_ex(it, "name", &nm) &&
		    json_object_is_type(nm, json_type_string) &&
		    strcmp(json_object_get_string(nm), name) == 0 &&
		    json_object_object_get_ex(it, item_key, &val))
			return val;
	}
	return NULL;
}

int template_installed_state(const struct tmpl_request *r, int status, const char *body, size_t len)
{
	static const char *const meta_fp[] = {"_meta", "fingerprint", NULL};
	static const char *const policy_fp[] = {"policy", "_meta", "fingerprint", NULL};
	static const char *const legacy_fp[] = {"mappings", "_meta", "fingerprint", NULL};
	static const char *const legacy_doc_fp[] = {"mappings", "_doc", "_meta", "fingerprint",
						    NULL};
	struct json_tokener *tok;
	struct json_object *root, *item = NULL, *fp = NULL;
	int rc;

	if (!r)
		return -EINVAL;
	if (status == 404)
		return TMPL_ABSENT;
	if (status != 200 || !body || len > INT32_MAX)
		return -EPROTO;
	tok = json_tokener_new();
	if (!tok)
		return -ENOMEM;
	root = json_tokener_parse_ex(tok, body, (int)len);
	if (!root || json_tokener_get_error(tok) != json_tokener_success ||
	    json_tokener_get_parse_end(tok) != len ||
	    !json_object_is_type(root, json_type_object)) {
		rc = -EPROTO;
		goto out;
	}
	switch (r->kind) {
	case TMPL_REQ_INDEX:
		item = named_item(root, "index_templates", "index_template", r->name);
		fp = get_path(item, meta_fp);
		break;
	case TMPL_REQ_COMPONENT:
		item = named_item(root, "component_templates", "component_template", r->name);
		fp = get_path(item, meta_fp);
		break;
	case TMPL_REQ_LEGACY:
		json_object_object_get_ex(root, r->name, &item);
		fp = get_path(item, legacy_fp);
		if (!fp)
			fp = get_path(item, legacy_doc_fp);
		break;
	case TMPL_REQ_ILM_POLICY:
		json_object_object_get_ex(root, r->name, &item);
		fp = get_path(item, policy_fp);
		break;
	}
	if (!item || !json_object_is_type(item, json_type_object)) {
		rc = -EPROTO; /* a 200 that does not describe our resource */
		goto out;
	}
	rc = r->fingerprint[0] && fp && json_object_is_type(fp, json_type_string) &&
		     strcmp(json_object_get_string(fp), r->fingerprint) == 0
		 ? TMPL_CURRENT
		 : TMPL_OUTDATED;
out:
	json_object_put(root);
	json_tokener_free(tok);
	return rc;
}
