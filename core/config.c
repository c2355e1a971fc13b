/* config.c — beats.yml → struct hb_config, through libyaml's document API and field tables.
 *
 * Follows Beats' configuration layout (Packetbeat 8.x reference packetbeat.yml; go-ucfg's
 * rule that a dotted key and the nested mapping it spells are the same key), plus the
 * hostbeat limits documented in beats.yml.
 *
 *   YAML text ──yaml_parser_load──▶ node tree ──flatten──▶ flat list of leaves
 *        { "packetbeat.protocols.0.ports", [80, 8080], key mark 12:5, value mark 12:12 }
 *   -E key=value ──same, under `key`──▶ replaces the leaves it covers, or adds new ones
 *   field tables {prefix, cfg_field[]} ──▶ hb_config / cfg_proto / cfg_proto.priv
 *   leaves no table consumed ──▶ "unknown key 'x' (did you mean 'y'?)"
 *
 * Flattening rules: mappings recurse; a sequence of mappings becomes numbered children
 * (`packetbeat.protocols.0.type`); a sequence of scalars is one list leaf; an empty
 * mapping or a null value is a "section marker" leaf (`output.console:` enables the
 * console output with its defaults). A key set twice, in either spelling, is an error.
 * Every message is "<name>:<line>:<col>: ..." (1-based), "-E:<n>: ..." for the n-th
 * override, "(default): ..." for a broken built-in default.
 */
#include "hostbeat/config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <yaml.h>

#include "hostbeat/log.h"
#include "hostbeat/mem.h"
#include "hostbeat/proto.h"
#include "shipper/bulk.h"

#define NS_US 1000ULL
#define NS_MS 1000000ULL
#define NS_S 1000000000ULL
#define NS_MIN (60 * NS_S)
#define NS_H (3600 * NS_S)
#define KIB 1024ULL
#define MIB (1024ULL * 1024)
#define GIB (1024ULL * 1024 * 1024)

/* Hard caps on what a config document may expand to (alias bombs, fuzzers). */
#define MAX_DEPTH 32
#define MAX_VISITS 100000
#define MAX_LEAVES 10000
#define MAX_LIST_ITEMS 4096
#define MAX_SUGGEST_LEN 128
#define MAX_ENTRIES 64          /* packetbeat.protocols / packetbeat.interfaces list entries */
#define MAX_ENV_LEN (64 * 1024) /* a value after ${VAR} expansion */
#define MAX_ENV_REFS 64         /* ${...} references in one value */

#define SRC_FILE 0
#define SRC_DEFAULT ((size_t)-1)

/* ---- the flat list ------------------------------------------------------------ */

enum flat_kind {
	FLAT_NULL, /* null value or empty mapping: a section marker */
	FLAT_SCALAR,
	FLAT_LIST, /* sequence of scalars (possibly empty) */
};

struct flat_item {
	char *s;
	unsigned line, col; /* 1-based mark of the value */
	bool whole_env;     /* the whole value was one ${...}: list types split it on ',' */
};

struct flat {
	char *key; /* dotted, owned */
	enum flat_kind kind;
	struct flat_item val;    /* SCALAR: the value; NULL/LIST: only the mark */
	struct flat_item *items; /* LIST */
	size_t nitems;
	unsigned kline, kcol; /* mark of the innermost key */
	size_t src;           /* SRC_FILE, or n for the n-th -E (1-based) */
	bool consumed;
};

struct flat_list {
	struct flat *v;
	size_t n, cap;
};

/* Values hostbeat accepts for compatibility but does not keep in hb_config, and
 * values stored converted (buffer_size_mb → bytes). Freed at the end of a load. */
struct scratch {
	/* converted, dumped back */
	uint64_t buffer_size_mb;
	uint64_t rotate_every_kb;
	/* accepted, ignored */
	char *iface_type;
	bool with_vlans, auto_promisc_mode;
	struct cfg_strlist internal_networks;
	int64_t fanout_group;
	uint64_t metrics_interval, poll_default_route;
	char *file_filename, *file_permissions;
	bool file_rotate_on_startup;
	uint64_t es_worker;
	char *ssl_renegotiation;
	struct cfg_strlist ssl_protocols, ssl_ciphers, ssl_curves;
	bool fields_under_root;
	int64_t max_procs;
	bool log_to_files, log_to_syslog, log_json, log_metrics_enabled;
	char *log_files_name, *log_files_permissions;
	uint64_t log_files_keepfiles, log_files_rotateeverybytes, log_metrics_period;
	uint64_t flush_min_events, flush_timeout;
};

/* Per-protocol Packetbeat keys that hostbeat accepts and ignores. */
struct proto_meta {
	bool fields_under_root, keep_null;
	struct cfg_strlist tags;
	char *index;
};

/* One entry of the 8.5+ `packetbeat.interfaces: [{device: eth0}, ...]` list. */
struct iface_entry {
	char *device;
	char *type;
	uint64_t snaplen, buffer_size_mb;
	char *bpf_filter;
};

struct strvec {
	char **v;
	size_t n, cap;
};

struct loader {
	const char *name; /* file name as given, for messages */
	struct cfg_error *err;
	bool failed;
	bool oom; /* the failure was an allocation */
	struct flat_list fl;
	struct strvec known;    /* every full key a table looked up (suggestions) */
	struct strvec sections; /* prefixes with free-form or numbered children */
	size_t visits;          /* nodes visited while flattening */
	struct scratch sc;
};

__attribute__((format(printf, 5, 6))) static int
fail_at(struct loader *ld, size_t src, unsigned line, unsigned col, const char *fmt, ...)
{
	char *m = ld->err->msg;
	size_t cap = sizeof(ld->err->msg);
	int off;
	va_list ap;

	if (ld->failed)
		return -EINVAL;
	ld->failed = true;
	if (src == SRC_FILE)
		off = snprintf(m, cap, "%s:%u:%u: ", ld->name, line, col);
	else if (src == SRC_DEFAULT)
		off = snprintf(m, cap, "(default): ");
	else
		off = snprintf(m, cap, "-E:%zu: ", src);
	if (off < 0 || (size_t)off >= cap)
		return -EINVAL;
	va_start(ap, fmt);
	vsnprintf(m + off, cap - (size_t)off, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static int fail_oom(struct loader *ld)
{
	ld->oom = true;
	if (!ld->failed) {
		ld->failed = true;
		snprintf(ld->err->msg, sizeof(ld->err->msg), "%s: out of memory", ld->name);
	}
	return -ENOMEM;
}

static char *key_join(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *k = hb_malloc(la + lb + 2);

	if (!k)
		return NULL;
	if (la) {
		memcpy(k, a, la);
		k[la++] = '.';
	}
	memcpy(k + la, b, lb + 1);
	return k;
}

static bool has_prefix(const char *key, const char *prefix)
{
	size_t n = strlen(prefix);

	return strncmp(key, prefix, n) == 0 && (key[n] == '\0' || key[n] == '.');
}

static void flat_free_one(struct flat *e)
{
	hb_free(e->key);
	hb_free(e->val.s);
	for (size_t i = 0; i < e->nitems; i++)
		hb_free(e->items[i].s);
	hb_free(e->items);
}

static void flat_list_free(struct flat_list *fl)
{
	for (size_t i = 0; i < fl->n; i++)
		flat_free_one(&fl->v[i]);
	hb_free(fl->v);
	memset(fl, 0, sizeof(*fl));
}

/* Appends a zeroed leaf; takes ownership of `key` (freed on failure). */
static struct flat *flat_add(struct loader *ld, struct flat_list *fl, char *key, size_t src,
			     yaml_mark_t kmark, yaml_mark_t vmark)
{
	struct flat *e;

	if (fl->n >= MAX_LEAVES) {
		hb_free(key);
		fail_at(ld, src, (unsigned)kmark.line + 1, (unsigned)kmark.column + 1,
			"more than %d configuration keys", MAX_LEAVES);
		return NULL;
	}
	if (fl->n == fl->cap) {
		size_t cap = fl->cap ? fl->cap * 2 : 64;
		struct flat *v = hb_realloc(fl->v, cap * sizeof(*v));

		if (!v) {
			hb_free(key);
			fail_oom(ld);
			return NULL;
		}
		fl->v = v;
		fl->cap = cap;
	}
	e = &fl->v[fl->n++];
	memset(e, 0, sizeof(*e));
	e->key = key;
	e->src = src;
	e->kline = (unsigned)kmark.line + 1;
	e->kcol = (unsigned)kmark.column + 1;
	e->val.line = (unsigned)vmark.line + 1;
	e->val.col = (unsigned)vmark.column + 1;
	return e;
}

static bool scalar_is_null(const yaml_node_t *n)
{
	const char *s = (const char *)n->data.scalar.value;

	if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	return s[0] == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
	       strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

/* A key is one or more non-empty components joined by dots, without NUL bytes. */
static bool key_text_ok(const char *k, size_t len)
{
	if (len == 0 || strlen(k) != len || k[0] == '.' || k[len - 1] == '.')
		return false;
	return strstr(k, "..") == NULL;
}

static int flatten(struct loader *ld, struct flat_list *fl, yaml_document_t *doc, yaml_node_t *node,
		   const char *key, yaml_mark_t kmark, size_t src, int depth);

static int flatten_mapping(struct loader *ld, struct flat_list *fl, yaml_document_t *doc,
			   yaml_node_t *node, const char *key, size_t src, int depth)
{
	for (yaml_node_pair_t *p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *kn = yaml_document_get_node(doc, p->key);
		yaml_node_t *vn = yaml_document_get_node(doc, p->value);
		const char *text;
		char *child;
		int rc;

		if (!kn || !vn)
			return fail_at(ld, src, (unsigned)node->start_mark.line + 1,
				       (unsigned)node->start_mark.column + 1,
				       "yaml: broken mapping");
		if (kn->type != YAML_SCALAR_NODE)
			return fail_at(ld, src, (unsigned)kn->start_mark.line + 1,
				       (unsigned)kn->start_mark.column + 1,
				       "mapping keys must be plain names");
		text = (const char *)kn->data.scalar.value;
		if (!key_text_ok(text, kn->data.scalar.length))
			return fail_at(ld, src, (unsigned)kn->start_mark.line + 1,
				       (unsigned)kn->start_mark.column + 1, "invalid key '%s'",
				       text);
		child = key ? key_join(key, text) : hb_strdup(text);
		if (!child)
			return fail_oom(ld);
		rc = flatten(ld, fl, doc, vn, child, kn->start_mark, src, depth + 1);
		hb_free(child);
		if (rc)
			return rc;
	}
	return 0;
}

static int flatten_sequence(struct loader *ld, struct flat_list *fl, yaml_document_t *doc,
			    yaml_node_t *node, const char *key, yaml_mark_t kmark, size_t src,
			    int depth)
{
	size_t n = (size_t)(node->data.sequence.items.top - node->data.sequence.items.start);
	size_t nmap = 0, nscalar = 0;
	struct flat *e;
	char *k;

	for (size_t i = 0; i < n; i++) {
		yaml_node_t *it = yaml_document_get_node(doc, node->data.sequence.items.start[i]);

		if (!it || it->type == YAML_SEQUENCE_NODE)
			return fail_at(
			    ld, src, (unsigned)(it ? it->start_mark : node->start_mark).line + 1,
			    (unsigned)(it ? it->start_mark : node->start_mark).column + 1,
			    "key '%s': nested lists are not supported", key);
		if (it->type == YAML_MAPPING_NODE)
			nmap++;
		else
			nscalar++;
	}
	if (nmap && nscalar)
		return fail_at(ld, src, (unsigned)node->start_mark.line + 1,
			       (unsigned)node->start_mark.column + 1,
			       "key '%s': a list holds either only values or only mappings", key);
	if (nmap) {
		for (size_t i = 0; i < n; i++) {
			yaml_node_t *it =
			    yaml_document_get_node(doc, node->data.sequence.items.start[i]);
			char idx[24];
			int rc;

			snprintf(idx, sizeof(idx), "%zu", i);
			k = key_join(key, idx);
			if (!k)
				return fail_oom(ld);
			rc = flatten(ld, fl, doc, it, k, it->start_mark, src, depth + 1);
			hb_free(k);
			if (rc)
				return rc;
		}
		return 0;
	}
	if (n > MAX_LIST_ITEMS)
		return fail_at(ld, src, (unsigned)node->start_mark.line + 1,
			       (unsigned)node->start_mark.column + 1,
			       "key '%s': more than %d list items", key, MAX_LIST_ITEMS);
	k = hb_strdup(key);
	if (!k)
		return fail_oom(ld);
	e = flat_add(ld, fl, k, src, kmark, node->start_mark);
	if (!e)
		return -EINVAL;
	e->kind = FLAT_LIST;
	if (n) {
		e->items = hb_calloc(n, sizeof(*e->items));
		if (!e->items)
			return fail_oom(ld);
	}
	for (size_t i = 0; i < n; i++) {
		yaml_node_t *it = yaml_document_get_node(doc, node->data.sequence.items.start[i]);

		e->items[i].s =
		    hb_strndup((const char *)it->data.scalar.value, it->data.scalar.length);
		if (!e->items[i].s)
			return fail_oom(ld);
		e->items[i].line = (unsigned)it->start_mark.line + 1;
		e->items[i].col = (unsigned)it->start_mark.column + 1;
		e->nitems++;
	}
	return 0;
}

/* Appends the leaves of `node` under `key` (NULL at the document root) to fl. */
static int flatten(struct loader *ld, struct flat_list *fl, yaml_document_t *doc, yaml_node_t *node,
		   const char *key, yaml_mark_t kmark, size_t src, int depth)
{
	struct flat *e;
	char *k;

	if (++ld->visits > MAX_VISITS || depth > MAX_DEPTH)
		return fail_at(ld, src, (unsigned)node->start_mark.line + 1,
			       (unsigned)node->start_mark.column + 1,
			       "yaml: document too large or nested too deeply");
	if (!key && node->type != YAML_MAPPING_NODE)
		return fail_at(ld, src, (unsigned)node->start_mark.line + 1,
			       (unsigned)node->start_mark.column + 1,
			       "expected a mapping of keys at the top level");
	switch (node->type) {
	case YAML_MAPPING_NODE:
		if (node->data.mapping.pairs.top == node->data.mapping.pairs.start && key)
			break; /* empty mapping: section marker */
		return flatten_mapping(ld, fl, doc, node, key, src, depth);
	case YAML_SEQUENCE_NODE:
		return flatten_sequence(ld, fl, doc, node, key, kmark, src, depth);
	case YAML_SCALAR_NODE:
		break;
	default:
		return fail_at(ld, src, (unsigned)node->start_mark.line + 1,
			       (unsigned)node->start_mark.column + 1, "yaml: empty node");
	}
	k = hb_strdup(key);
	if (!k)
		return fail_oom(ld);
	e = flat_add(ld, fl, k, src, kmark, node->start_mark);
	if (!e)
		return -EINVAL;
	if (node->type == YAML_SCALAR_NODE && !scalar_is_null(node)) {
		e->kind = FLAT_SCALAR;
		e->val.s =
		    hb_strndup((const char *)node->data.scalar.value, node->data.scalar.length);
		if (!e->val.s)
			return fail_oom(ld);
	}
	return 0;
}

static int cmp_flat_ptr(const void *a, const void *b)
{
	const struct flat *x = *(const struct flat *const *)a;
	const struct flat *y = *(const struct flat *const *)b;
	int c = strcmp(x->key, y->key);

	if (c)
		return c;
	return x < y ? -1 : x > y;
}

/* A key given twice (`a: {b: 1}` and `a.b: 2`), or a value that is also a section
 * (`a: 1` and `a.b: 2`), among fl->v[from..n). Reported at the later one. */
static int check_duplicates(struct loader *ld, struct flat_list *fl, size_t from)
{
	size_t n = fl->n - from;
	struct flat **s;
	int rc = 0;

	if (n < 2)
		return 0;
	s = hb_calloc(n, sizeof(*s));
	if (!s)
		return fail_oom(ld);
	for (size_t i = 0; i < n; i++)
		s[i] = &fl->v[from + i];
	qsort(s, n, sizeof(*s), cmp_flat_ptr);
	for (size_t i = 0; i < n && !rc; i++) {
		size_t len = strlen(s[i]->key);

		for (size_t j = i + 1; j < n && strncmp(s[j]->key, s[i]->key, len) == 0; j++) {
			const struct flat *first = s[i] < s[j] ? s[i] : s[j];
			const struct flat *later = s[i] < s[j] ? s[j] : s[i];
			char c = s[j]->key[len];

			if (c == '\0') {
				rc = fail_at(ld, later->src, later->kline, later->kcol,
					     "duplicate key '%s' (first set at line %u, column %u)",
					     later->key, first->kline, first->kcol);
				break;
			}
			if (c == '.' && s[i]->kind != FLAT_NULL) {
				rc = fail_at(ld, later->src, later->kline, later->kcol,
					     "key '%s' conflicts with '%s' (line %u, column %u)",
					     later->key, first->key, first->kline, first->kcol);
				break;
			}
		}
	}
	hb_free(s);
	return rc;
}

static int yaml_error(struct loader *ld, const yaml_parser_t *p, size_t src)
{
	yaml_mark_t m = p->error == YAML_READER_ERROR ? p->mark : p->problem_mark;

	if (p->error == YAML_MEMORY_ERROR)
		return fail_oom(ld);
	return fail_at(ld, src, (unsigned)m.line + 1, (unsigned)m.column + 1, "yaml: %s%s%s",
		       p->problem ? p->problem : "syntax error", p->context ? " " : "",
		       p->context ? p->context : "");
}

/* Parse the one YAML document of `p` into doc (its root is NULL when empty). On
 * success the caller deletes doc; on error it is already deleted. */
static int load_document(struct loader *ld, yaml_parser_t *p, yaml_document_t *doc, size_t src)
{
	yaml_document_t extra;
	yaml_node_t *root;

	if (!yaml_parser_load(p, doc))
		return yaml_error(ld, p, src);
	if (!yaml_document_get_root_node(doc))
		return 0;
	if (!yaml_parser_load(p, &extra)) {
		yaml_document_delete(doc);
		return yaml_error(ld, p, src);
	}
	root = yaml_document_get_root_node(&extra);
	if (root) {
		unsigned line = (unsigned)root->start_mark.line + 1;
		unsigned col = (unsigned)root->start_mark.column + 1;

		yaml_document_delete(&extra);
		yaml_document_delete(doc);
		return fail_at(ld, src, line, col, "yaml: only one document is allowed");
	}
	yaml_document_delete(&extra);
	return 0;
}

/* The file (or string) document → ld->fl. */
static int flatten_parser(struct loader *ld, yaml_parser_t *p)
{
	yaml_document_t doc;
	yaml_node_t *root;
	yaml_mark_t zero = {0, 0, 0};
	int rc;

	memset(&doc, 0, sizeof(doc));
	rc = load_document(ld, p, &doc, SRC_FILE);
	if (rc)
		return rc; /* doc already deleted */
	root = yaml_document_get_root_node(&doc);
	if (root)
		rc = flatten(ld, &ld->fl, &doc, root, NULL, zero, SRC_FILE, 0);
	yaml_document_delete(&doc);
	if (!rc)
		rc = check_duplicates(ld, &ld->fl, 0);
	return rc;
}

/* YAML `text` as the value of `key` → leaves in `out`. */
static int flatten_value(struct loader *ld, struct flat_list *out, const char *key,
			 const char *text, size_t src)
{
	yaml_parser_t p;
	yaml_document_t doc;
	yaml_node_t *root;
	yaml_mark_t zero = {0, 0, 0};
	int rc;

	if (!yaml_parser_initialize(&p))
		return fail_oom(ld);
	yaml_parser_set_input_string(&p, (const unsigned char *)text, strlen(text));
	memset(&doc, 0, sizeof(doc));
	rc = load_document(ld, &p, &doc, src);
	if (!rc) {
		root = yaml_document_get_root_node(&doc);
		if (root) {
			rc = flatten(ld, out, &doc, root, key, zero, src, 1);
		} else {
			char *k = hb_strdup(key);

			if (!k)
				rc = fail_oom(ld);
			else if (!flat_add(ld, out, k, src, zero, zero))
				rc = -EINVAL;
		}
		yaml_document_delete(&doc);
	}
	yaml_parser_delete(&p);
	if (!rc)
		rc = check_duplicates(ld, out, 0);
	return rc;
}

/* `-E key=value`: the value's leaves replace every leaf the key covers (or that
 * covers it) and are appended at the end. */
static int apply_override(struct loader *ld, const char *ov, size_t idx)
{
	const char *eq = strchr(ov, '=');
	struct flat_list add = {0};
	size_t j = 0;
	char *key;
	int rc;

	if (!eq || eq == ov)
		return fail_at(ld, idx, 0, 0, "expected KEY=VALUE, got '%s'", ov);
	key = hb_strndup(ov, (size_t)(eq - ov));
	if (!key)
		return fail_oom(ld);
	if (!key_text_ok(key, strlen(key))) {
		rc = fail_at(ld, idx, 0, 0, "invalid key '%s'", key);
		goto out;
	}
	rc = flatten_value(ld, &add, key, eq + 1, idx);
	if (rc)
		goto out;
	for (size_t i = 0; i < ld->fl.n; i++) {
		struct flat *e = &ld->fl.v[i];

		if (has_prefix(e->key, key) || has_prefix(key, e->key))
			flat_free_one(e);
		else
			ld->fl.v[j++] = *e;
	}
	ld->fl.n = j;
	for (size_t i = 0; i < add.n; i++) {
		struct flat *e;
		yaml_mark_t zero = {0, 0, 0};

		e = flat_add(ld, &ld->fl, add.v[i].key, idx, zero, zero);
		if (!e) {
			add.v[i].key = NULL; /* freed by flat_add */
			rc = -EINVAL;
			goto out;
		}
		*e = add.v[i];
		memset(&add.v[i], 0, sizeof(add.v[i]));
	}
out:
	flat_list_free(&add);
	hb_free(key);
	return rc;
}

/* ---- environment variables ------------------------------------------------------ */

/* Beats' (go-ucfg) ${VAR} expansion in scalar values, after YAML parsing and after the
 * -E overrides replaced their leaves (keys are never expanded):
 *   ${VAR}          the variable's value
 *   ${VAR:default}  `default` when VAR is unset (an empty VAR stays empty)
 *   ${VAR:?text}    error "text" when VAR is unset
 *   $${             a literal "${"
 * Stricter than Beats: an unset VAR without a default is an error ("environment variable
 * VAR is not set") where Beats substitutes "". Nested ${A:${B}} is refused. The result is
 * never parsed as YAML again: "[1,2]" from a variable stays that string. A list-typed key
 * whose whole value is one ${...} is split on ',' (ELASTICSEARCH_HOSTS="http://a,http://b"),
 * see set_value. */

struct env_buf {
	char *s;
	size_t n, cap;
};

static int env_put(struct env_buf *b, const char *p, size_t n)
{
	if (n > MAX_ENV_LEN - b->n)
		return -E2BIG;
	if (b->n + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 64;
		char *v;

		while (cap < b->n + n + 1)
			cap *= 2;
		v = hb_realloc(b->s, cap);
		if (!v)
			return -ENOMEM;
		b->s = v;
		b->cap = cap;
	}
	memcpy(b->s + b->n, p, n);
	b->n += n;
	b->s[b->n] = '\0';
	return 0;
}

static bool env_name_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '.' || c == '-';
}

/* Expands item->s in place; errors point at the value's mark. */
static int expand_item(struct loader *ld, size_t src, struct flat_item *it)
{
	struct env_buf b = {0};
	const char *p = it->s;
	size_t refs = 0;
	int rc = 0;

	it->whole_env = false;
	if (!strchr(p, '$'))
		return 0;
	while (*p && !rc) {
		const char *name, *end, *arg = NULL;
		size_t nlen, alen = 0;
		bool required = false;
		const char *val;
		char var[256];

		if (p[0] == '$' && p[1] == '$' && p[2] == '{') {
			rc = env_put(&b, "${", 2);
			p += 3;
			continue;
		}
		if (p[0] != '$' || p[1] != '{') {
			const char *q = strchr(p + 1, '$');
			size_t n = q ? (size_t)(q - p) : strlen(p);

			rc = env_put(&b, p, n);
			p += n;
			continue;
		}
		if (++refs > MAX_ENV_REFS) {
			rc = fail_at(ld, src, it->line, it->col,
				     "more than %d ${...} references in one value", MAX_ENV_REFS);
			break;
		}
		name = p + 2;
		for (end = name; env_name_char(*end); end++)
			;
		nlen = (size_t)(end - name);
		if (*end == ':') {
			required = end[1] == '?';
			arg = end + 1 + required;
			for (end = arg; *end && *end != '}'; end++) {
				if (end[0] == '$' && end[1] == '{') {
					rc = fail_at(ld, src, it->line, it->col,
						     "nested ${...} is not supported");
					break;
				}
			}
			alen = (size_t)(end - arg);
			if (rc)
				break;
		}
		if (*end != '}') {
			rc = fail_at(ld, src, it->line, it->col,
				     *end ? "invalid environment variable name in '%.*s'"
					  : "unterminated '%.*s' (missing '}')",
				     (int)((size_t)(end - p) > 64 ? 64 : (size_t)(end - p) + 1), p);
			break;
		}
		if (nlen == 0 || nlen >= sizeof(var)) {
			rc = fail_at(ld, src, it->line, it->col,
				     nlen ? "environment variable name too long"
					  : "empty environment variable name in '${...}'");
			break;
		}
		memcpy(var, name, nlen);
		var[nlen] = '\0';
		val = getenv(var);
		if (val) {
			rc = env_put(&b, val, strlen(val));
		} else if (arg && !required) {
			rc = env_put(&b, arg, alen);
		} else if (required && alen) {
			rc = fail_at(ld, src, it->line, it->col, "%.*s", (int)alen, arg);
		} else {
			rc = fail_at(ld, src, it->line, it->col,
				     "environment variable %s is not set", var);
		}
		if (!rc && p == it->s && end[1] == '\0')
			it->whole_env = true;
		p = end + 1;
	}
	if (rc == -E2BIG)
		rc = fail_at(ld, src, it->line, it->col,
			     "value longer than %d bytes after environment expansion", MAX_ENV_LEN);
	else if (rc == -ENOMEM)
		rc = fail_oom(ld);
	if (rc) {
		hb_free(b.s);
		it->whole_env = false;
		return rc;
	}
	if (!b.s) {
		b.s = hb_strdup("");
		if (!b.s)
			return fail_oom(ld);
	}
	hb_free(it->s);
	it->s = b.s;
	return 0;
}

static int expand_all(struct loader *ld)
{
	for (size_t i = 0; i < ld->fl.n; i++) {
		struct flat *e = &ld->fl.v[i];
		int rc = 0;

		if (e->kind == FLAT_SCALAR)
			rc = expand_item(ld, e->src, &e->val);
		for (size_t k = 0; k < e->nitems && !rc; k++)
			rc = expand_item(ld, e->src, &e->items[k]);
		if (rc)
			return rc;
	}
	return 0;
}

/* "a, b,,c" → items a, b, c (empty items dropped), each at the value's mark. */
static int split_env_list(struct loader *ld, const struct flat *e, struct flat *out)
{
	const char *p = e->val.s;
	size_t n = 1;

	memset(out, 0, sizeof(*out));
	out->key = e->key;
	out->kind = FLAT_LIST;
	out->val = e->val;
	out->src = e->src;
	for (const char *q = p; *q; q++)
		n += *q == ',';
	if (n > MAX_LIST_ITEMS)
		return fail_at(ld, e->src, e->val.line, e->val.col, "more than %d list items",
			       MAX_LIST_ITEMS);
	out->items = hb_calloc(n, sizeof(*out->items));
	if (!out->items)
		return fail_oom(ld);
	while (*p) {
		const char *c = strchr(p, ',');
		const char *end = c ? c : p + strlen(p);
		const char *a = p, *z = end;

		while (a < z && (*a == ' ' || *a == '\t'))
			a++;
		while (z > a && (z[-1] == ' ' || z[-1] == '\t'))
			z--;
		if (z > a) {
			struct flat_item *it = &out->items[out->nitems];

			it->s = hb_strndup(a, (size_t)(z - a));
			if (!it->s)
				return fail_oom(ld);
			it->line = e->val.line;
			it->col = e->val.col;
			out->nitems++;
		}
		p = c ? c + 1 : end;
	}
	return 0;
}

static struct flat *flat_find(struct loader *ld, const char *key)
{
	for (size_t i = 0; i < ld->fl.n; i++)
		if (strcmp(ld->fl.v[i].key, key) == 0)
			return &ld->fl.v[i];
	return NULL;
}

/* First leaf at or under `prefix`, NULL when the section is absent. */
static struct flat *section_first(struct loader *ld, const char *prefix)
{
	for (size_t i = 0; i < ld->fl.n; i++)
		if (has_prefix(ld->fl.v[i].key, prefix))
			return &ld->fl.v[i];
	return NULL;
}

/* Takes ownership of `k` (freed on failure). */
static int strvec_add(struct loader *ld, struct strvec *sv, char *k)
{
	if (sv->n == sv->cap) {
		size_t cap = sv->cap ? sv->cap * 2 : 128;
		char **v = hb_realloc(sv->v, cap * sizeof(*v));

		if (!v) {
			hb_free(k);
			return fail_oom(ld);
		}
		sv->v = v;
		sv->cap = cap;
	}
	sv->v[sv->n++] = k;
	return 0;
}

static void strvec_free(struct strvec *sv)
{
	for (size_t i = 0; i < sv->n; i++)
		hb_free(sv->v[i]);
	hb_free(sv->v);
	memset(sv, 0, sizeof(*sv));
}

/* Remember a full key (known) or a section prefix for suggestions. */
static int known_add(struct loader *ld, char *k)
{
	return strvec_add(ld, &ld->known, k);
}

static int remember(struct loader *ld, struct strvec *sv, const char *key)
{
	char *k = hb_strdup(key);

	return k ? strvec_add(ld, sv, k) : fail_oom(ld);
}

/* Consume everything at or under prefix without interpreting it (`setup.*`,
 * per-protocol `processors`): keys Packetbeat users have that hostbeat ignores. */
static int accept_tree(struct loader *ld, const char *prefix)
{
	for (size_t i = 0; i < ld->fl.n; i++)
		if (has_prefix(ld->fl.v[i].key, prefix))
			ld->fl.v[i].consumed = true;
	return remember(ld, &ld->sections, prefix);
}

/* ---- scalar parsers --------------------------------------------------------- */

static int parse_u64(const char *s, uint64_t *out)
{
	uint64_t v = 0;

	if (!*s)
		return -EINVAL;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return -EINVAL;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*out = v;
	return 0;
}

static int parse_i64(const char *s, int64_t *out)
{
	bool neg = *s == '-';
	uint64_t v;

	if (parse_u64(s + neg, &v) || v > (uint64_t)INT64_MAX + neg)
		return -EINVAL;
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	return 0;
}

static int parse_bool(const char *s, bool *out)
{
	if (!strcasecmp(s, "true") || !strcasecmp(s, "yes") || !strcasecmp(s, "on"))
		*out = true;
	else if (!strcasecmp(s, "false") || !strcasecmp(s, "no") || !strcasecmp(s, "off"))
		*out = false;
	else
		return -EINVAL;
	return 0;
}

/* Go-style: one or more <number>[.<fraction>]<unit> with unit ns, us, µs, ms, s, m,
 * h ("1m30s", "1.5s"); a bare number alone is seconds. */
int cfg_parse_duration(const char *s, uint64_t *ns)
{
	static const struct {
		const char *name;
		uint64_t ns;
	} units[] = {{"ns", 1},   {"us", NS_US}, {"\xc2\xb5s", NS_US}, {"ms", NS_MS},
		     {"s", NS_S}, {"m", NS_MIN}, {"h", NS_H}};
	const char *p = s;
	uint64_t total = 0;

	if (!s || !*s)
		return -EINVAL;
	while (*p) {
		const char *num = p, *frac = NULL;
		uint64_t ip = 0, unit = 0, val;
		size_t nfrac = 0, ulen = 0;

		while (*p >= '0' && *p <= '9') {
			if (ip > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
				return -EINVAL;
			ip = ip * 10 + (uint64_t)(*p++ - '0');
		}
		if (*p == '.') {
			frac = ++p;
			while (*p >= '0' && *p <= '9')
				p++;
			nfrac = (size_t)(p - frac);
		}
		if (p == num || (frac && p == num + 1))
			return -EINVAL; /* no digits at all */
		for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
			size_t l = strlen(units[i].name);

			/* longest match first: "ms" before "m" (the table lists it first) */
			if (strncmp(p, units[i].name, l) == 0 && l > ulen) {
				unit = units[i].ns;
				ulen = l;
			}
		}
		if (!unit) {
			if (num != s || *p)
				return -EINVAL; /* only a lone bare number means seconds */
			unit = NS_S;
		}
		p += ulen;
		if (ip > UINT64_MAX / unit)
			return -EINVAL;
		val = ip * unit;
		for (uint64_t i = 0, u = unit; i < nfrac && u; i++) {
			u /= 10;
			val += (uint64_t)(frac[i] - '0') * u; /* < unit: cannot overflow twice */
			if (val < ip * unit)
				return -EINVAL;
		}
		if (val > UINT64_MAX - total)
			return -EINVAL;
		total += val;
	}
	*ns = total;
	return 0;
}

/* <digits>[ ]<unit>, unit B, KiB/MiB/GiB/TiB (binary) or KB/MB/GB/TB (decimal),
 * case-insensitive; no unit = bytes. */
int cfg_parse_size(const char *s, uint64_t *bytes)
{
	static const struct {
		const char *name;
		uint64_t mult;
	} units[] = {{"", 1},
		     {"b", 1},
		     {"kib", KIB},
		     {"mib", MIB},
		     {"gib", GIB},
		     {"tib", GIB * 1024},
		     {"kb", 1000},
		     {"mb", 1000000},
		     {"gb", 1000000000ULL},
		     {"tb", 1000000000000ULL}};
	char num[32];
	size_t n = 0;
	uint64_t v;

	if (!s)
		return -EINVAL;
	while (s[n] >= '0' && s[n] <= '9')
		n++;
	if (n == 0 || n >= sizeof(num))
		return -EINVAL;
	memcpy(num, s, n);
	num[n] = '\0';
	if (parse_u64(num, &v))
		return -EINVAL;
	s += n;
	if (*s == ' ' && s[1])
		s++;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcasecmp(s, units[i].name) == 0) {
			if (v > UINT64_MAX / units[i].mult)
				return -EINVAL;
			*bytes = v * units[i].mult;
			return 0;
		}
	}
	return -EINVAL;
}

/* Largest unit that represents ns exactly: 90s → "90s", 1.5s → "1500ms". */
static void fmt_duration(uint64_t ns, char *buf, size_t cap)
{
	static const struct {
		const char *name;
		uint64_t ns;
	} units[] = {{"h", NS_H}, {"m", NS_MIN}, {"s", NS_S}, {"ms", NS_MS}, {"us", NS_US}};

	if (ns == 0) {
		snprintf(buf, cap, "0");
		return;
	}
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (ns % units[i].ns == 0) {
			snprintf(buf, cap, "%llu%s", (unsigned long long)(ns / units[i].ns),
				 units[i].name);
			return;
		}
	}
	snprintf(buf, cap, "%lluns", (unsigned long long)ns);
}

/* ---- typed values ----------------------------------------------------------- */

static void strlist_free(struct cfg_strlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		hb_free(l->v[i]);
	hb_free(l->v);
	l->v = NULL;
	l->n = 0;
}

static void ports_free(struct cfg_ports *p)
{
	hb_free(p->v);
	p->v = NULL;
	p->n = 0;
}

static const char *type_expect(const struct cfg_field *f)
{
	switch (f->type) {
	case CFG_BOOL:
		return "true or false";
	case CFG_INT:
	case CFG_UINT:
		return "an integer";
	case CFG_DURATION:
		return "a duration like 10s";
	case CFG_SIZE:
		return "a size like 64KiB";
	case CFG_STRING:
		return "a string";
	case CFG_STRLIST:
		return "a string or a list of strings";
	case CFG_PORTS:
		return "a port number 1..65535 or a list of them";
	}
	return "a value";
}

static int bad_value(struct loader *ld, const char *key, const struct cfg_field *f,
		     const struct flat *e, const struct flat_item *it)
{
	if (!it)
		return fail_at(ld, e->src, e->val.line, e->val.col,
			       "key '%s': expected %s, got a list", key, type_expect(f));
	return fail_at(ld, e->src, it->line, it->col, "key '%s': expected %s, got '%s'", key,
		       type_expect(f), it->s);
}

static int range_error(struct loader *ld, const char *key, const struct cfg_field *f,
		       const struct flat *e, const char *got)
{
	char lo[32], hi[32];

	if (f->type == CFG_DURATION) {
		fmt_duration((uint64_t)f->min, lo, sizeof(lo));
		fmt_duration((uint64_t)f->max, hi, sizeof(hi));
	} else {
		snprintf(lo, sizeof(lo), "%lld", (long long)f->min);
		snprintf(hi, sizeof(hi), "%lld", (long long)f->max);
	}
	return fail_at(ld, e->src, e->val.line, e->val.col,
		       "key '%s': expected %s between %s and %s, got '%s'", key,
		       f->type == CFG_DURATION ? "a duration"
		       : f->type == CFG_SIZE   ? "a size in bytes"
					       : "an integer",
		       lo, hi, got);
}

static int parse_port(const char *s, uint16_t *port)
{
	uint64_t v;

	if (parse_u64(s, &v) || v < 1 || v > 65535)
		return -EINVAL;
	*port = (uint16_t)v;
	return 0;
}

/* Store leaf `e` (not FLAT_NULL) into base + f->offset. */
static int set_value(struct loader *ld, const struct cfg_field *f, void *base, const char *key,
		     const struct flat *e)
{
	void *dst = (char *)base + f->offset;
	const char *s = e->val.s;
	bool ranged = f->min < f->max;

	if (e->kind == FLAT_LIST && f->type != CFG_STRLIST && f->type != CFG_PORTS)
		return bad_value(ld, key, f, e, NULL);
	if (e->kind == FLAT_SCALAR && e->val.whole_env && strchr(s, ',') &&
	    (f->type == CFG_STRLIST || f->type == CFG_PORTS)) {
		struct flat tmp;
		int rc = split_env_list(ld, e, &tmp);

		if (!rc)
			rc = set_value(ld, f, base, key, &tmp);
		for (size_t i = 0; i < tmp.nitems; i++)
			hb_free(tmp.items[i].s);
		hb_free(tmp.items);
		return rc;
	}
	switch (f->type) {
	case CFG_BOOL:
		if (parse_bool(s, dst))
			return bad_value(ld, key, f, e, &e->val);
		return 0;
	case CFG_INT: {
		int64_t v;

		if (parse_i64(s, &v))
			return bad_value(ld, key, f, e, &e->val);
		if (ranged && (v < f->min || v > f->max))
			return range_error(ld, key, f, e, s);
		*(int64_t *)dst = v;
		return 0;
	}
	case CFG_UINT:
	case CFG_DURATION:
	case CFG_SIZE: {
		uint64_t v;
		int rc = f->type == CFG_UINT       ? parse_u64(s, &v)
			 : f->type == CFG_DURATION ? cfg_parse_duration(s, &v)
						   : cfg_parse_size(s, &v);

		if (rc)
			return bad_value(ld, key, f, e, &e->val);
		if (ranged && (v < (uint64_t)f->min || v > (uint64_t)f->max))
			return range_error(ld, key, f, e, s);
		*(uint64_t *)dst = v;
		return 0;
	}
	case CFG_STRING: {
		char *v = hb_strdup(s);

		if (!v)
			return fail_oom(ld);
		hb_free(*(char **)dst);
		*(char **)dst = v;
		return 0;
	}
	case CFG_STRLIST: {
		struct cfg_strlist l = {0};
		size_t n = e->kind == FLAT_LIST ? e->nitems : 1;

		l.v = hb_calloc(n, sizeof(*l.v));
		if (!l.v)
			return fail_oom(ld);
		for (; l.n < n; l.n++) {
			l.v[l.n] = hb_strdup(e->kind == FLAT_LIST ? e->items[l.n].s : s);
			if (!l.v[l.n]) {
				strlist_free(&l);
				return fail_oom(ld);
			}
		}
		strlist_free(dst);
		*(struct cfg_strlist *)dst = l;
		return 0;
	}
	case CFG_PORTS: {
		struct cfg_ports pl = {0};
		size_t n = e->kind == FLAT_LIST ? e->nitems : 1;

		pl.v = hb_calloc(n, sizeof(*pl.v));
		if (!pl.v)
			return fail_oom(ld);
		for (size_t i = 0; i < n; i++) {
			const struct flat_item *it = e->kind == FLAT_LIST ? &e->items[i] : &e->val;
			uint16_t port;
			bool dup = false;

			if (parse_port(it->s, &port)) {
				ports_free(&pl);
				return bad_value(ld, key, f, e, it);
			}
			for (size_t k = 0; k < pl.n; k++)
				dup |= pl.v[k] == port;
			if (!dup)
				pl.v[pl.n++] = port;
		}
		ports_free(dst);
		*(struct cfg_ports *)dst = pl;
		return 0;
	}
	}
	return bad_value(ld, key, f, e, &e->val);
}

/* A built-in default: a scalar, or a YAML flow list for list types. */
static int set_default(struct loader *ld, const struct cfg_field *f, void *base, const char *key)
{
	struct flat tmp;
	int rc;

	if (f->def[0] != '[') {
		memset(&tmp, 0, sizeof(tmp));
		tmp.kind = FLAT_SCALAR;
		tmp.val.s = (char *)f->def;
		tmp.src = SRC_DEFAULT;
		return set_value(ld, f, base, key, &tmp);
	} else {
		struct flat_list fl = {0};

		rc = flatten_value(ld, &fl, key, f->def, SRC_DEFAULT);
		if (!rc && (fl.n != 1 || fl.v[0].kind != FLAT_LIST))
			rc = fail_at(ld, SRC_DEFAULT, 0, 0, "key '%s': bad default", key);
		if (!rc)
			rc = set_value(ld, f, base, key, &fl.v[0]);
		flat_list_free(&fl);
		return rc;
	}
}

/* Fill one field from the leaf prefix.key (consumed) or its default. *present tells
 * whether the file or -E gave a value. */
static int fill_field(struct loader *ld, const char *prefix, const struct cfg_field *f, void *base,
		      bool *present)
{
	char *full = key_join(prefix, f->key);
	struct flat *e;
	int rc;

	if (present)
		*present = false;
	if (!full)
		return fail_oom(ld);
	rc = known_add(ld, full);
	if (rc)
		return rc;
	e = flat_find(ld, full);
	if (e)
		e->consumed = true;
	if (e && e->kind != FLAT_NULL) {
		if (present)
			*present = true;
		return set_value(ld, f, base, full, e);
	}
	if (f->def)
		return set_default(ld, f, base, full);
	return 0;
}

static int fill_table(struct loader *ld, const char *prefix, const struct cfg_field *t, size_t n,
		      void *base)
{
	for (size_t i = 0; i < n; i++) {
		int rc = fill_field(ld, prefix, &t[i], base, NULL);

		if (rc)
			return rc;
	}
	return 0;
}

/* Frees the owned members (strings, lists) of a table-filled struct. */
static void free_table(const struct cfg_field *t, size_t n, void *base)
{
	for (size_t i = 0; i < n; i++) {
		void *p = (char *)base + t[i].offset;

		if (t[i].type == CFG_STRING) {
			hb_free(*(char **)p);
			*(char **)p = NULL;
		} else if (t[i].type == CFG_STRLIST) {
			strlist_free(p);
		} else if (t[i].type == CFG_PORTS) {
			ports_free(p);
		}
	}
}

/* ---- the tables ------------------------------------------------------------- */

#define F(k, t, st, m, d, lo, hi)                                                       \
	{                                                                               \
		.key = k, .type = t, .offset = offsetof(st, m), .def = d, .help = NULL, \
		.min = (int64_t)(lo), .max = (int64_t)(hi)                              \
	}
#define C(k, t, m, d) F(k, t, struct hb_config, m, d, 0, 0)
#define CR(k, t, m, d, lo, hi) F(k, t, struct hb_config, m, d, lo, hi)
#define S(k, t, m, d) F(k, t, struct scratch, m, d, 0, 0)
#define SR(k, t, m, d, lo, hi) F(k, t, struct scratch, m, d, lo, hi)

static const struct cfg_field iface_fields[] = {
    C("device", CFG_STRLIST, devices, "[docker0]"),
    C("exclude", CFG_STRLIST, exclude, NULL),
    CR("snaplen", CFG_UINT, snaplen, "65535", 68, 262144),
    C("bpf_filter", CFG_STRING, bpf_filter, NULL),
    CR("poll_timeout", CFG_DURATION, poll_timeout, "100ms", NS_MS, 10 * NS_S),
};

static const struct cfg_field limit_fields[] = {
    C("enabled", CFG_BOOL, packetbeat_enabled, "true"),
    C("container_metadata.enabled", CFG_BOOL, container_metadata, "true"),
    CR("flow_table.max_flows", CFG_UINT, max_flows, "65536", 1, 1 << 26),
    CR("flow_table.timeout", CFG_DURATION, flow_timeout, "30s", NS_MS, 24 * NS_H),
    CR("tcp.max_buffer", CFG_SIZE, tcp_max_buffer, "256KiB", 256, GIB),
    CR("tcp.reorder_segments", CFG_UINT, tcp_reorder_segments, "32", 0, 4096),
    CR("tcp.max_buffer_total", CFG_SIZE, tcp_max_buffer_total, "64MiB", KIB, 64 * GIB),
    CR("ipfrag.max_datagrams", CFG_UINT, ipfrag_max_datagrams, "256", 0, 1 << 20),
    CR("ipfrag.timeout", CFG_DURATION, ipfrag_timeout, "30s", NS_MS, 10 * NS_MIN),
    CR("max_pending_total", CFG_UINT, max_pending_total, "16384", 1, 1 << 24),
    CR("shutdown_timeout", CFG_DURATION, shutdown_timeout, "5s", 0, NS_H),
    C("ignore_outgoing", CFG_BOOL, ignore_outgoing, "false"),
};

static const struct cfg_field queue_fields[] = {
    CR("events", CFG_UINT, queue_events, "4096", 1, 1 << 24),
    CR("max_event_bytes", CFG_SIZE, max_event_bytes, "1MiB", KIB, 64 * MIB),
};

static const struct cfg_field file_fields[] = {
    C("enabled", CFG_BOOL, file_enabled, "true"),
    C("path", CFG_STRING, file_path, "./data"),
    CR("number_of_files", CFG_UINT, file_number_of_files, "7", 2, 1024),
};

static const struct cfg_field console_fields[] = {
    C("enabled", CFG_BOOL, console_enabled, "true"),
    C("pretty", CFG_BOOL, console_pretty, "false"),
};

/* Beats' names and defaults (packetbeat.md §4.1); topbeat_index and dead_letter.path are
 * hostbeat's (two daily indices; a file for documents Elasticsearch refuses for good). */
static const struct cfg_field es_fields[] = {
    C("enabled", CFG_BOOL, es_enabled, "true"),
    C("hosts", CFG_STRLIST, es_hosts, "[\"localhost:9200\"]"),
    C("protocol", CFG_STRING, es_protocol, "http"),
    C("path", CFG_STRING, es_path, ""),
    C("username", CFG_STRING, es_username, NULL),
    C("password", CFG_STRING, es_password, NULL),
    C("api_key", CFG_STRING, es_api_key, NULL),
    C("index", CFG_STRING, es_index, "packetbeat-%{+yyyy.MM.dd}"),
    C("topbeat_index", CFG_STRING, es_topbeat_index, "topbeat-%{+yyyy.MM.dd}"),
    C("pipeline", CFG_STRING, es_pipeline, NULL),
    CR("bulk_max_size", CFG_UINT, es_bulk_max_size, "1600", 1, 100000),
    CR("timeout", CFG_DURATION, es_timeout, "90s", NS_MS * 10, 24 * NS_H),
    CR("compression_level", CFG_INT, es_compression_level, "1", 0, 9),
    CR("backoff.init", CFG_DURATION, es_backoff_init, "1s", NS_MS, 24 * NS_H),
    CR("backoff.max", CFG_DURATION, es_backoff_max, "60s", NS_MS, 24 * NS_H),
    C("dead_letter.path", CFG_STRING, es_dead_letter_path, "data/dead_letter.ndjson"),
    C("ssl.enabled", CFG_BOOL, ssl_enabled, "true"),
    C("ssl.verification_mode", CFG_STRING, ssl_verification_mode, "full"),
    C("ssl.certificate_authorities", CFG_STRLIST, ssl_cas, NULL),
    C("ssl.certificate", CFG_STRING, ssl_certificate, NULL),
    C("ssl.key", CFG_STRING, ssl_key, NULL),
    C("ssl.key_passphrase", CFG_STRING, ssl_key_passphrase, NULL),
    C("ssl.ca_trusted_fingerprint", CFG_STRING, ssl_ca_trusted_fingerprint, NULL),
};

static const struct cfg_field spool_fields[] = {
    C("path", CFG_STRING, spool_path, "data/spool"),
    CR("max_bytes", CFG_SIZE, spool_max_bytes, "1GiB", 1 << 20, 1ULL << 50),
    CR("segment_bytes", CFG_SIZE, spool_segment_bytes, "16MiB", 64 << 10, 1ULL << 32),
    C("fsync", CFG_STRING, spool_fsync, "batch"),
};

static const struct cfg_field template_fields[] = {
    C("enabled", CFG_BOOL, tmpl_enabled, "true"),
    C("name", CFG_STRING, tmpl_name, "hostbeat"),
    C("overwrite", CFG_BOOL, tmpl_overwrite, "false"),
    CR("settings.index.number_of_shards", CFG_INT, tmpl_shards, "1", 1, 1024),
    CR("settings.index.number_of_replicas", CFG_INT, tmpl_replicas, "-1", -1, 64),
};

/* Beats' setup.kibana.* and setup.dashboards.* (packetbeat.md §4.3). */
static const struct cfg_field kibana_fields[] = {
    C("host", CFG_STRING, kibana_host, "localhost:5601"),
    C("protocol", CFG_STRING, kibana_protocol, "http"),
    C("path", CFG_STRING, kibana_path, ""),
    C("space.id", CFG_STRING, kibana_space_id, ""),
    C("username", CFG_STRING, kibana_username, NULL),
    C("password", CFG_STRING, kibana_password, NULL),
    C("api_key", CFG_STRING, kibana_api_key, NULL),
    C("ssl.enabled", CFG_BOOL, kibana_ssl_enabled, "true"),
    C("ssl.verification_mode", CFG_STRING, kibana_ssl_verification_mode, "full"),
    C("ssl.certificate_authorities", CFG_STRLIST, kibana_ssl_cas, NULL),
};

static const struct cfg_field dashboards_fields[] = {
    C("enabled", CFG_BOOL, dashboards_enabled, "false"),
    C("directory", CFG_STRING, dashboards_directory, "dashboards"),
    CR("timeout", CFG_DURATION, dashboards_timeout, "5m", NS_S, 24 * NS_H),
};

static const struct cfg_field ilm_fields[] = {
    C("enabled", CFG_BOOL, ilm_enabled, "false"),
    C("policy_name", CFG_STRING, ilm_policy_name, "hostbeat"),
    CR("delete_after", CFG_DURATION, ilm_delete_after, "720h", NS_H, 100000 * NS_H),
};

static const struct cfg_field general_fields[] = {
    C("name", CFG_STRING, name, NULL),
    C("tags", CFG_STRLIST, tags, NULL),
    C("legacy_fields", CFG_BOOL, legacy_fields, "false"),
};

static const struct cfg_field logging_fields[] = {
    C("level", CFG_STRING, log_level, "info"),
    C("selectors", CFG_STRLIST, log_selectors, NULL),
    C("to_stderr", CFG_BOOL, log_to_stderr, "false"),
    C("files.path", CFG_STRING, log_path, NULL),
};

/* Topbeat 1.x keys (topbeat.period, topbeat.procs, topbeat.stats.*) plus hostbeat's. The
 * ignore list: the pseudo and virtual filesystems Metricbeat skips (its default is the nodev
 * types of /proc/filesystems; a fixed list keeps the output the same on every kernel). */
static const struct cfg_field topbeat_fields[] = {
    C("enabled", CFG_BOOL, topbeat_enabled, "true"),
    CR("period", CFG_DURATION, topbeat_period, "10s", NS_S / 10, 24 * NS_H),
    C("hostfs", CFG_STRING, hostfs, "/"),
    C("procs", CFG_STRLIST, procs, "['.*']"),
    C("stats.system", CFG_BOOL, stats_system, "true"),
    C("stats.process", CFG_BOOL, stats_process, "true"),
    C("stats.filesystem", CFG_BOOL, stats_filesystem, "true"),
    C("stats.cpu_per_core", CFG_BOOL, stats_cpu_per_core, "false"),
    C("stats.container", CFG_BOOL, stats_container, "true"),
    C("stats.cpu_ticks", CFG_BOOL, cpu_ticks, "false"),
    C("filesystem.ignore_types", CFG_STRLIST, fs_ignore_types,
      "[autofs, binfmt_misc, bpf, cgroup, cgroup2, configfs, debugfs, devpts, devtmpfs, "
      "efivarfs, fuse.gvfsd-fuse, fusectl, hugetlbfs, mqueue, nsfs, overlay, proc, pstore, "
      "ramfs, rpc_pipefs, securityfs, selinuxfs, squashfs, sysfs, tracefs]"),
    CR("filesystem.timeout", CFG_DURATION, fs_timeout, "2s", NS_MS, 10 * 60 * NS_S),
    CR("process.max", CFG_UINT, proc_max, "65536", 16, 4194304),
    CR("process.cmdline_max", CFG_SIZE, cmdline_max, "4096", 64, 1048576),
    C("container.cgroup_root", CFG_STRING, cgroup_root, "sys/fs/cgroup"),
};

static const struct cfg_field metrics_fields[] = {
    CR("period", CFG_DURATION, metrics_period, "30s", NS_S, 24 * NS_H),
};

/* Stored converted in hb_config; dumped back from a scratch. */
static const struct cfg_field iface_conv_fields[] = {
    SR("buffer_size_mb", CFG_UINT, buffer_size_mb, "32", 1, 8192),
};

static const struct cfg_field file_conv_fields[] = {
    SR("rotate_every_kb", CFG_UINT, rotate_every_kb, "10240", 1, 1 << 30),
};

/* Accepted for compatibility with Packetbeat files, validated, not used. */
static const struct cfg_field iface_compat_fields[] = {
    S("type", CFG_STRING, iface_type, "pcap"),
    S("with_vlans", CFG_BOOL, with_vlans, NULL),
    S("internal_networks", CFG_STRLIST, internal_networks, NULL),
    S("auto_promisc_mode", CFG_BOOL, auto_promisc_mode, NULL),
    S("fanout_group", CFG_INT, fanout_group, NULL),
    S("metrics_interval", CFG_DURATION, metrics_interval, NULL),
    S("poll_default_route", CFG_DURATION, poll_default_route, NULL),
};

static const struct cfg_field file_compat_fields[] = {
    S("filename", CFG_STRING, file_filename, NULL),
    S("permissions", CFG_STRING, file_permissions, NULL),
    S("rotate_on_startup", CFG_BOOL, file_rotate_on_startup, NULL),
};

static const struct cfg_field es_compat_fields[] = {
    S("worker", CFG_UINT, es_worker, NULL),
    S("ssl.supported_protocols", CFG_STRLIST, ssl_protocols, NULL),
    S("ssl.cipher_suites", CFG_STRLIST, ssl_ciphers, NULL),
    S("ssl.curve_types", CFG_STRLIST, ssl_curves, NULL),
    S("ssl.renegotiation", CFG_STRING, ssl_renegotiation, NULL),
};

static const struct cfg_field general_compat_fields[] = {
    S("fields_under_root", CFG_BOOL, fields_under_root, NULL),
    S("max_procs", CFG_INT, max_procs, NULL),
};

static const struct cfg_field logging_compat_fields[] = {
    S("to_files", CFG_BOOL, log_to_files, NULL),
    S("to_syslog", CFG_BOOL, log_to_syslog, NULL),
    S("json", CFG_BOOL, log_json, NULL),
    S("files.name", CFG_STRING, log_files_name, NULL),
    S("files.permissions", CFG_STRING, log_files_permissions, NULL),
    S("files.keepfiles", CFG_UINT, log_files_keepfiles, NULL),
    S("files.rotateeverybytes", CFG_SIZE, log_files_rotateeverybytes, NULL),
    S("metrics.enabled", CFG_BOOL, log_metrics_enabled, NULL),
    SR("metrics.period", CFG_DURATION, log_metrics_period, NULL, NS_S, 24 * NS_H),
};

static const struct cfg_field queue_compat_fields[] = {
    S("flush.min_events", CFG_UINT, flush_min_events, NULL),
    S("flush.timeout", CFG_DURATION, flush_timeout, NULL),
};

/* Subtrees consumed whole (free-form in Beats, or features hostbeat does not have). */
static const char *const accepted_trees[] = {
    "fields",
    "processors",
    "setup.template.settings.index.codec",
    "setup.template.settings.index.refresh_interval",
    "setup.template.settings._source",
    "setup.template.append_fields",
    "setup.template.json",
    "setup.template.pattern",
    "setup.template.fields",
    "setup.ilm.check_exists",
    "setup.ilm.overwrite",
    "setup.ilm.rollover_alias",
    "setup.ilm.pattern",
    "setup.kibana.ssl.certificate",
    "setup.kibana.ssl.key",
    "setup.dashboards.beat",
    "setup.dashboards.index",
    "setup.dashboards.url",
    "setup.dashboards.file",
    "setup.dashboards.retry",
    "setup.dashboards.string_replacements",
    "monitoring",
    "path",
    "packetbeat.procs",
    "packetbeat.flows",
    "output.elasticsearch.headers",
};

enum table_base {
	TB_CFG,    /* fills hb_config, dumped, freed by cfg_free */
	TB_CONV,   /* scratch, converted into hb_config after the load, dumped back */
	TB_COMPAT, /* scratch, accepted and ignored */
};

struct table {
	const char *prefix;
	const struct cfg_field *f;
	size_t n;
	enum table_base base;
};

#define T(p, f, b)                                \
	{                                         \
		p, f, sizeof(f) / sizeof(f[0]), b \
	}

static const struct table tables[] = {
    T("packetbeat.interfaces", iface_fields, TB_CFG),
    T("packetbeat.interfaces", iface_conv_fields, TB_CONV),
    T("packetbeat.interfaces", iface_compat_fields, TB_COMPAT),
    T("packetbeat", limit_fields, TB_CFG),
    T("queue.mem", queue_fields, TB_CFG),
    T("queue.mem", queue_compat_fields, TB_COMPAT),
    T("output.file", file_fields, TB_CFG),
    T("output.file", file_conv_fields, TB_CONV),
    T("output.file", file_compat_fields, TB_COMPAT),
    T("output.console", console_fields, TB_CFG),
    T("output.elasticsearch", es_fields, TB_CFG),
    T("output.elasticsearch", es_compat_fields, TB_COMPAT),
    T("", general_fields, TB_CFG),
    T("", general_compat_fields, TB_COMPAT),
    T("logging", logging_fields, TB_CFG),
    T("logging", logging_compat_fields, TB_COMPAT),
    T("metrics", metrics_fields, TB_CFG),
    T("topbeat", topbeat_fields, TB_CFG),
    T("queue.spool", spool_fields, TB_CFG),
    T("setup.template", template_fields, TB_CFG),
    T("setup.ilm", ilm_fields, TB_CFG),
    T("setup.kibana", kibana_fields, TB_CFG),
    T("setup.dashboards", dashboards_fields, TB_CFG),
};

#define NTABLES (sizeof(tables) / sizeof(tables[0]))

/* Common keys of every packetbeat.protocols entry (Packetbeat's protos.ProtocolCommon). */
static const struct cfg_field proto_fields[] = {
    F("enabled", CFG_BOOL, struct cfg_proto, enabled, "true", 0, 0),
    F("ports", CFG_PORTS, struct cfg_proto, ports, NULL, 0, 0),
    F("send_request", CFG_BOOL, struct cfg_proto, send_request, "false", 0, 0),
    F("send_response", CFG_BOOL, struct cfg_proto, send_response, "false", 0, 0),
    F("transaction_timeout", CFG_DURATION, struct cfg_proto, transaction_timeout, "10s", NS_MS,
      24 * NS_H),
    F("max_message_size", CFG_SIZE, struct cfg_proto, max_message_size, "10MiB", 64, GIB),
    F("max_pending", CFG_UINT, struct cfg_proto, max_pending, "64", 1, 65536),
};

static const struct cfg_field proto_meta_fields[] = {
    F("fields_under_root", CFG_BOOL, struct proto_meta, fields_under_root, NULL, 0, 0),
    F("keep_null", CFG_BOOL, struct proto_meta, keep_null, NULL, 0, 0),
    F("tags", CFG_STRLIST, struct proto_meta, tags, NULL, 0, 0),
    F("index", CFG_STRING, struct proto_meta, index, NULL, 0, 0),
};

static const struct cfg_field iface_entry_fields[] = {
    F("device", CFG_STRING, struct iface_entry, device, NULL, 0, 0),
    F("type", CFG_STRING, struct iface_entry, type, NULL, 0, 0),
    F("snaplen", CFG_UINT, struct iface_entry, snaplen, NULL, 68, 262144),
    F("buffer_size_mb", CFG_UINT, struct iface_entry, buffer_size_mb, NULL, 1, 8192),
    F("bpf_filter", CFG_STRING, struct iface_entry, bpf_filter, NULL, 0, 0),
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Protocols Packetbeat decodes; those hostbeat has no parser for yet are skipped
 * with a warning instead of failing the whole file. */
static const char *const packetbeat_protocols[] = {
    "icmp",  "amqp",  "cassandra", "dhcpv4", "nfs",     "tls",  "sip", "memcache",
    "mysql", "pgsql", "redis",     "thrift", "mongodb", "http", "dns",
};

const char cfg_default_yaml[] = "packetbeat.interfaces.device: docker0\n"
				"packetbeat.protocols:\n"
				"- type: http\n"
				"  ports: [80, 8080, 8000, 5000, 8002]\n"
				"- type: dns\n"
				"  ports: [53]\n"
				"- type: memcache\n"
				"  ports: [11211]\n"
				"- type: mysql\n"
				"  ports: [3306, 3307]\n"
				"- type: pgsql\n"
				"  ports: [5432]\n"
				"- type: redis\n"
				"  ports: [6379]\n"
				"- type: thrift\n"
				"  ports: [9090]\n"
				"- type: mongodb\n"
				"  ports: [27017]\n"
				"output.file:\n"
				"  path: \"./data\"\n"
				"metrics.period: 10s\n";

/* ---- sections with structure -------------------------------------------------- */

static bool all_digits(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

/* Distinct first components under `prefix.` in order of appearance (borrowed
 * pointers into leaf keys, with their lengths). */
struct comps {
	const char **s;
	size_t *len;
	size_t n;
};

static int collect_comps(struct loader *ld, const char *prefix, struct comps *out)
{
	size_t pl = strlen(prefix);

	memset(out, 0, sizeof(*out));
	out->s = hb_calloc(ld->fl.n ? ld->fl.n : 1, sizeof(*out->s));
	out->len = hb_calloc(ld->fl.n ? ld->fl.n : 1, sizeof(*out->len));
	if (!out->s || !out->len)
		return fail_oom(ld);
	for (size_t i = 0; i < ld->fl.n; i++) {
		const char *k = ld->fl.v[i].key, *c, *dot;
		size_t cl;
		bool seen = false;

		if (strncmp(k, prefix, pl) != 0 || k[pl] != '.')
			continue;
		c = k + pl + 1;
		dot = strchr(c, '.');
		cl = dot ? (size_t)(dot - c) : strlen(c);
		for (size_t j = 0; j < out->n && !seen; j++)
			seen = out->len[j] == cl && strncmp(out->s[j], c, cl) == 0;
		if (seen)
			continue;
		if (out->n == MAX_ENTRIES)
			return fail_at(ld, ld->fl.v[i].src, ld->fl.v[i].kline, ld->fl.v[i].kcol,
				       "more than %d entries under '%s'", MAX_ENTRIES, prefix);
		out->s[out->n] = c;
		out->len[out->n++] = cl;
	}
	return 0;
}

static void comps_free(struct comps *c)
{
	hb_free(c->s);
	hb_free(c->len);
}

static int check_enum(struct loader *ld, const char *key, const char *val,
		      const char *const *allowed, size_t n, const char *list)
{
	struct flat *e;

	if (!val)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (strcmp(val, allowed[i]) == 0)
			return 0;
	e = flat_find(ld, key);
	if (!e)
		return fail_at(ld, SRC_DEFAULT, 0, 0, "key '%s': bad default '%s'", key, val);
	return fail_at(ld, e->src, e->val.line, e->val.col,
		       "key '%s': expected one of %s, got '%s'", key, list, val);
}

static const char *const iface_types[] = {"pcap", "af_packet"};

/* The 8.5+ list form: packetbeat.interfaces: [{device: eth0}, ...]. Per-device
 * options are validated and ignored (one capture setting for all devices). */
static int load_iface_list(struct loader *ld, struct hb_config *c)
{
	struct comps cs = {0};
	bool device_given;
	int rc;

	rc = remember(ld, &ld->sections, "packetbeat.interfaces");
	if (!rc)
		rc = collect_comps(ld, "packetbeat.interfaces", &cs);
	if (rc)
		goto out;
	device_given = flat_find(ld, "packetbeat.interfaces.device") &&
		       flat_find(ld, "packetbeat.interfaces.device")->kind != FLAT_NULL;
	for (size_t i = 0; i < cs.n && !device_given; i++) {
		if (all_digits(cs.s[i], cs.len[i])) {
			strlist_free(&c->devices); /* the list replaces the default */
			break;
		}
	}
	for (size_t i = 0; i < cs.n && !rc; i++) {
		struct iface_entry ent = {0};
		char *prefix, *tkey;
		char **v;

		if (!all_digits(cs.s[i], cs.len[i]))
			continue;
		prefix = hb_malloc(sizeof("packetbeat.interfaces.") + cs.len[i]);
		if (!prefix) {
			rc = fail_oom(ld);
			break;
		}
		snprintf(prefix, sizeof("packetbeat.interfaces.") + cs.len[i],
			 "packetbeat.interfaces.%.*s", (int)cs.len[i], cs.s[i]);
		rc = fill_table(ld, prefix, iface_entry_fields, NELEM(iface_entry_fields), &ent);
		tkey = rc ? NULL : key_join(prefix, "type");
		if (!rc && !tkey)
			rc = fail_oom(ld);
		if (!rc)
			rc = check_enum(ld, tkey, ent.type, iface_types, NELEM(iface_types),
					"pcap, af_packet");
		if (!rc && !ent.device) {
			struct flat *first = section_first(ld, prefix);

			rc = fail_at(ld, first->src, first->kline, first->kcol,
				     "interface entry '%s' has no 'device'", prefix);
		}
		if (!rc) {
			v = hb_realloc(c->devices.v, (c->devices.n + 1) * sizeof(*v));
			if (!v) {
				rc = fail_oom(ld);
			} else {
				c->devices.v = v;
				v[c->devices.n++] = ent.device;
				ent.device = NULL;
			}
		}
		hb_free(tkey);
		hb_free(prefix);
		free_table(iface_entry_fields, NELEM(iface_entry_fields), &ent);
	}
out:
	comps_free(&cs);
	return rc;
}

static bool is_packetbeat_protocol(const char *name)
{
	for (size_t i = 0; i < NELEM(packetbeat_protocols); i++)
		if (strcmp(name, packetbeat_protocols[i]) == 0)
			return true;
	return false;
}

static int unknown_protocol(struct loader *ld, const struct flat *at, const char *type)
{
	char known[256];
	size_t off = 0;

	known[0] = '\0';
	for (size_t i = 0; i < proto_registry_len && off < sizeof(known); i++) {
		int w = snprintf(known + off, sizeof(known) - off, "%s%s", i ? ", " : "",
				 proto_registry[i]->name);

		if (w < 0)
			break;
		off += (size_t)w;
	}
	return fail_at(ld, at->src, at->val.line, at->val.col,
		       "unknown protocol type '%s' (known: %s)", type, known);
}

/* Port conflicts between enabled protocols sharing a transport (Packetbeat maps a
 * port to exactly one parser per transport). */
static int check_port_conflicts(struct loader *ld, const struct hb_config *c,
				const struct cfg_proto *p, const char *prefix,
				const struct flat *at)
{
	char *pkey;
	struct flat *pe;
	int rc = 0;

	if (!p->enabled)
		return 0;
	pkey = key_join(prefix, "ports");
	if (!pkey)
		return fail_oom(ld);
	pe = flat_find(ld, pkey);
	for (size_t i = 0; i < c->nprotos && !rc; i++) {
		const struct cfg_proto *q = &c->protos[i];

		if (q == p || !q->enabled || !(q->ops->transports & p->ops->transports))
			continue;
		for (size_t a = 0; a < p->ports.n && !rc; a++) {
			for (size_t b = 0; b < q->ports.n; b++) {
				const struct flat *e = pe ? pe : at;
				unsigned line = e->val.line, col = e->val.col;

				if (p->ports.v[a] != q->ports.v[b])
					continue;
				if (pe && pe->kind == FLAT_LIST) {
					for (size_t k = 0; k < pe->nitems; k++) {
						uint16_t v;

						if (!parse_port(pe->items[k].s, &v) &&
						    v == p->ports.v[a]) {
							line = pe->items[k].line;
							col = pe->items[k].col;
							break;
						}
					}
				}
				rc = fail_at(ld, e->src, line, col,
					     "port %u is already used by protocol '%s'",
					     (unsigned)p->ports.v[a], q->ops->name);
				break;
			}
		}
	}
	hb_free(pkey);
	return rc;
}

static int load_proto_entry(struct loader *ld, struct hb_config *c, const char *comp, size_t clen)
{
	bool is_list = all_digits(comp, clen);
	struct proto_meta meta = {0};
	const struct proto_ops *ops;
	struct cfg_proto *p;
	struct flat *te, *first;
	char *prefix, *tkey = NULL, *sub = NULL;
	const char *type;
	bool ports_given = false;
	struct flat at;
	int rc = 0;

	prefix = hb_malloc(sizeof("packetbeat.protocols.") + clen);
	if (!prefix)
		return fail_oom(ld);
	snprintf(prefix, sizeof("packetbeat.protocols.") + clen, "packetbeat.protocols.%.*s",
		 (int)clen, comp);
	first = section_first(ld, prefix);
	tkey = key_join(prefix, "type");
	if (!tkey) {
		rc = fail_oom(ld);
		goto out;
	}
	te = flat_find(ld, tkey);
	if (te)
		te->consumed = true;
	if (is_list) {
		if (!te || te->kind != FLAT_SCALAR) {
			rc = fail_at(ld, first->src, first->kline, first->kcol,
				     "protocol entry '%s' has no 'type'", prefix);
			goto out;
		}
		type = te->val.s;
	} else {
		type = prefix + sizeof("packetbeat.protocols.") - 1;
		if (te && (te->kind != FLAT_SCALAR || strcmp(te->val.s, type) != 0)) {
			rc = fail_at(ld, te->src, te->val.line, te->val.col,
				     "key '%s': must be '%s' in the map form", tkey, type);
			goto out;
		}
		if (!te) {
			/* the protocol name is the key itself: point there */
			at = *first;
			at.val.line = first->kline;
			at.val.col = first->kcol;
			te = &at;
		}
	}
	rc = remember(ld, &ld->known, tkey);
	if (rc)
		goto out;
	ops = proto_find(type);
	if (!ops) {
		if (is_packetbeat_protocol(type)) {
			log_warn("config",
				 "%s:%u: protocol '%s' is not decoded by hostbeat yet; "
				 "entry ignored",
				 te->src ? "-E" : ld->name,
				 te->src ? (unsigned)te->src : te->val.line, type);
			rc = accept_tree(ld, prefix);
			goto out;
		}
		rc = unknown_protocol(ld, te, type);
		goto out;
	}
	for (size_t i = 0; i < c->nprotos; i++) {
		if (c->protos[i].ops == ops) {
			rc = fail_at(ld, te->src, te->val.line, te->val.col,
				     "protocol '%s' is configured twice", type);
			goto out;
		}
	}
	if (c->nprotos == CFG_MAX_PROTOS) {
		rc = fail_at(ld, te->src, te->val.line, te->val.col,
			     "more than %d protocol entries", CFG_MAX_PROTOS);
		goto out;
	}
	p = &c->protos[c->nprotos++];
	p->ops = ops;
	for (size_t i = 0; i < NELEM(proto_fields) && !rc; i++)
		rc = fill_field(ld, prefix, &proto_fields[i], p,
				proto_fields[i].type == CFG_PORTS ? &ports_given : NULL);
	if (!rc && !ports_given && ops->ndefault_ports) {
		p->ports.v = hb_calloc(ops->ndefault_ports, sizeof(*p->ports.v));
		if (!p->ports.v)
			rc = fail_oom(ld);
		else
			for (; p->ports.n < ops->ndefault_ports; p->ports.n++)
				p->ports.v[p->ports.n] = ops->default_ports[p->ports.n];
	}
	if (!rc)
		rc = fill_table(ld, prefix, proto_meta_fields, NELEM(proto_meta_fields), &meta);
	for (size_t i = 0; i < 2 && !rc; i++) {
		sub = key_join(prefix, i ? "processors" : "fields");
		rc = sub ? accept_tree(ld, sub) : fail_oom(ld);
		hb_free(sub);
	}
	if (!rc && ops->config_size) {
		p->priv = hb_calloc(1, ops->config_size);
		rc = p->priv ? fill_table(ld, prefix, ops->config, ops->nconfig, p->priv)
			     : fail_oom(ld);
	}
	if (!rc)
		rc = check_port_conflicts(ld, c, p, prefix, te);
out:
	free_table(proto_meta_fields, NELEM(proto_meta_fields), &meta);
	hb_free(tkey);
	hb_free(prefix);
	return rc;
}

static int load_protocols(struct loader *ld, struct hb_config *c)
{
	struct flat *e = flat_find(ld, "packetbeat.protocols");
	struct comps cs;
	int rc;

	if (e) {
		e->consumed = true;
		if (e->kind == FLAT_SCALAR || (e->kind == FLAT_LIST && e->nitems))
			return fail_at(ld, e->src, e->val.line, e->val.col,
				       "key 'packetbeat.protocols': expected a list of entries "
				       "like '- type: http'");
	}
	rc = remember(ld, &ld->sections, "packetbeat.protocols");
	if (rc)
		return rc;
	rc = collect_comps(ld, "packetbeat.protocols", &cs);
	for (size_t i = 0; i < cs.n && !rc; i++)
		rc = load_proto_entry(ld, c, cs.s[i], cs.len[i]);
	comps_free(&cs);
	return rc;
}

/* Exactly one output; none configured (or all disabled) means output.file. */
static int pick_output(struct loader *ld, struct hb_config *c)
{
	struct {
		const char *name;
		bool *enabled;
		struct flat *first;
	} outs[] = {{"output.file", &c->file_enabled, NULL},
		    {"output.console", &c->console_enabled, NULL},
		    {"output.elasticsearch", &c->es_enabled, NULL}};
	int a = -1, b = -1;

	for (int i = 0; i < 3; i++) {
		outs[i].first = section_first(ld, outs[i].name);
		if (!outs[i].first)
			*outs[i].enabled = false;
		if (!*outs[i].enabled)
			continue;
		if (a < 0)
			a = i;
		else if (b < 0)
			b = i;
	}
	if (b >= 0) {
		struct flat *at = outs[a].first > outs[b].first ? outs[a].first : outs[b].first;

		return fail_at(ld, at->src, at->kline, at->kcol,
			       "only one output can be enabled (%s and %s)", outs[a].name,
			       outs[b].name);
	}
	if (a < 0)
		c->file_enabled = true;
	return 0;
}

/* output.elasticsearch.headers is a free-form map: each scalar under it becomes one
 * "Name: value" line of es_headers. */
static int load_es_headers(struct loader *ld, struct hb_config *c)
{
	static const char prefix[] = "output.elasticsearch.headers.";

	for (size_t i = 0; i < ld->fl.n; i++) {
		struct flat *e = &ld->fl.v[i];
		const char *name = e->key + sizeof(prefix) - 1;
		char **v, *line;
		size_t n;

		if (strncmp(e->key, prefix, sizeof(prefix) - 1) != 0 || e->kind != FLAT_SCALAR)
			continue;
		if (!*name || strpbrk(name, ": \r\n") || strpbrk(e->val.s, "\r\n"))
			return fail_at(
			    ld, e->src, e->kline, e->kcol,
			    "bad HTTP header %s (a name without ':' or spaces, a value on "
			    "one line)",
			    name);
		n = strlen(name) + strlen(e->val.s) + 3;
		line = hb_malloc(n);
		v = line ? hb_realloc(c->es_headers.v, (c->es_headers.n + 1) * sizeof(*v)) : NULL;
		if (!v) {
			hb_free(line);
			return fail_oom(ld);
		}
		snprintf(line, n, "%s: %s", name, e->val.s);
		c->es_headers.v = v;
		v[c->es_headers.n++] = line;
	}
	return 0;
}

/* An index pattern the output could not expand is a config error, not a runtime one. */
static int check_index_pattern(struct loader *ld, const char *key, const char *pattern)
{
	char msg[160];
	size_t off = 0;
	struct flat *e;

	if (!pattern || bulk_index_validate(pattern, &off, msg, sizeof(msg)) == 0)
		return 0;
	e = flat_find(ld, key);
	if (!e)
		return fail_at(ld, SRC_DEFAULT, 0, 0, "%s: %s", key, msg);
	return fail_at(ld, e->src, e->val.line, e->val.col, "%s: %s", key, msg);
}

/* Topbeat's rule: with the sampler on, at least one of its stats must be on. */
static int check_topbeat(struct loader *ld, const struct hb_config *c)
{
	struct flat *at;

	if (!c->topbeat_enabled || c->stats_system || c->stats_process || c->stats_filesystem ||
	    c->stats_container)
		return 0;
	at = section_first(ld, "topbeat");
	if (!at)
		return 0;
	return fail_at(ld, at->src, at->kline, at->kcol,
		       "topbeat: at least one of stats.system, stats.process, stats.filesystem, "
		       "stats.container must be enabled (or set topbeat.enabled: false)");
}

static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	size_t row[MAX_SUGGEST_LEN + 1];

	if (la > MAX_SUGGEST_LEN || lb > MAX_SUGGEST_LEN)
		return SIZE_MAX;
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];

		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j];
			size_t best = diag + (a[i - 1] != b[j - 1]);

			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

static bool known_has_child(struct loader *ld, const char *key)
{
	for (size_t i = 0; i < ld->known.n; i++)
		if (has_prefix(ld->known.v[i], key) && ld->known.v[i][strlen(key)] == '.')
			return true;
	return false;
}

/* Closest known spelling of `key` into buf: a whole known key, or a known section
 * prefix with the rest of `key` kept ("packetbeat.protocol.0.type" →
 * "packetbeat.protocols.0.type"). False when nothing is close. */
static bool suggest(struct loader *ld, const char *key, char *buf, size_t cap)
{
	size_t limit = 2 + strlen(key) / 10, bestd = SIZE_MAX;

	buf[0] = '\0';
	for (size_t i = 0; i < ld->known.n; i++) {
		size_t d = edit_distance(key, ld->known.v[i]);

		if (d < bestd && d <= limit) {
			bestd = d;
			snprintf(buf, cap, "%s", ld->known.v[i]);
		}
	}
	for (size_t i = 0; i < ld->sections.n; i++) {
		const char *sec = ld->sections.v[i], *rest = key;
		size_t comps = 1, d;
		char head[MAX_SUGGEST_LEN + 1];

		for (const char *c = sec; *c; c++)
			comps += *c == '.';
		for (size_t k = 0; k < comps && rest; k++)
			rest = strchr(rest + (k > 0), '.');
		if (!rest || (size_t)(rest - key) > MAX_SUGGEST_LEN)
			continue; /* key has no more components than the section */
		memcpy(head, key, (size_t)(rest - key));
		head[rest - key] = '\0';
		d = edit_distance(head, sec);
		/* a typo in the section name, not a different section */
		if (d > 0 && d < bestd && d <= 1 + strlen(head) / 6) {
			bestd = d;
			snprintf(buf, cap, "%s%s", sec, rest);
		}
	}
	return bestd != SIZE_MAX;
}

/* Every leaf that no table consumed is an error, with the closest known key. */
static int check_unknown(struct loader *ld)
{
	for (size_t i = 0; i < ld->fl.n; i++) {
		const struct flat *e = &ld->fl.v[i];
		char best[256];

		if (e->consumed || (e->kind == FLAT_NULL && known_has_child(ld, e->key)))
			continue;
		if (suggest(ld, e->key, best, sizeof(best)))
			return fail_at(ld, e->src, e->kline, e->kcol,
				       "unknown key '%s' (did you mean '%s'?)", e->key, best);
		return fail_at(ld, e->src, e->kline, e->kcol, "unknown key '%s'", e->key);
	}
	return 0;
}

static void *table_base(const struct table *t, struct hb_config *c, struct scratch *sc)
{
	return t->base == TB_CFG ? (void *)c : (void *)sc;
}

static const char *const log_levels[] = {"error", "warning", "info", "debug"};
static const char *const spool_fsyncs[] = {"always", "batch", "never"};
static const char *const ssl_modes[] = {"full", "strict", "certificate", "none"};
static const char *const es_protocols[] = {"http", "https"};

/* Beats' `processors` (top level or per protocol) are accepted so a Packetbeat
 * config loads, but hostbeat runs none of them: say so once, where the first is. */
static void warn_processors(struct loader *ld)
{
	for (size_t i = 0; i < ld->fl.n; i++) {
		const struct flat *e = &ld->fl.v[i];
		const char *k = strstr(e->key, "processors");

		if (!k || (k != e->key && k[-1] != '.') || (k[10] && k[10] != '.'))
			continue;
		log_warn("config",
			 "%s:%u: processors are not run by hostbeat; ignored (container.* on "
			 "transactions comes from packetbeat.container_metadata.enabled)",
			 e->src ? "-E" : ld->name, e->src ? (unsigned)e->src : e->kline);
		return;
	}
}

static int fill_all(struct loader *ld, struct hb_config *c)
{
	struct flat *e;
	char host[256];
	int rc = 0;

	for (size_t i = 0; i < NTABLES && !rc; i++)
		rc = fill_table(ld, tables[i].prefix, tables[i].f, tables[i].n,
				table_base(&tables[i], c, &ld->sc));
	for (size_t i = 0; i < NELEM(accepted_trees) && !rc; i++)
		rc = accept_tree(ld, accepted_trees[i]);
	if (!rc)
		rc = load_iface_list(ld, c);
	if (!rc)
		rc = load_protocols(ld, c);
	if (rc)
		return rc;
	rc = check_enum(ld, "packetbeat.interfaces.type", ld->sc.iface_type, iface_types,
			NELEM(iface_types), "pcap, af_packet");
	if (!rc)
		rc = check_enum(ld, "logging.level", c->log_level, log_levels, NELEM(log_levels),
				"error, warning, info, debug");
	if (!rc)
		rc = pick_output(ld, c);
	if (!rc)
		rc = check_topbeat(ld, c);
	if (!rc)
		rc = load_es_headers(ld, c);
	if (!rc)
		rc = check_enum(ld, "queue.spool.fsync", c->spool_fsync, spool_fsyncs,
				NELEM(spool_fsyncs), "always, batch, never");
	if (!rc)
		rc = check_enum(ld, "output.elasticsearch.ssl.verification_mode",
				c->ssl_verification_mode, ssl_modes, NELEM(ssl_modes),
				"full, strict, certificate, none");
	if (!rc)
		rc = check_enum(ld, "output.elasticsearch.protocol", c->es_protocol, es_protocols,
				NELEM(es_protocols), "http, https");
	if (!rc)
		rc = check_index_pattern(ld, "output.elasticsearch.index", c->es_index);
	if (!rc)
		rc = check_index_pattern(ld, "output.elasticsearch.topbeat_index",
					 c->es_topbeat_index);
	if (!rc)
		rc = check_unknown(ld);
	if (rc)
		return rc;

	c->buffer_size = ld->sc.buffer_size_mb * MIB;
	c->file_rotate_every = ld->sc.rotate_every_kb * KIB;
	if (c->bpf_filter && !c->bpf_filter[0]) {
		hb_free(c->bpf_filter);
		c->bpf_filter = NULL; /* "" = generate from the ports, as in Packetbeat */
	}
	e = flat_find(ld, "metrics.period");
	if ((!e || e->kind == FLAT_NULL) && ld->sc.log_metrics_period)
		c->metrics_period = ld->sc.log_metrics_period; /* Packetbeat's spelling */
	if (!c->name) {
		if (gethostname(host, sizeof(host)) != 0)
			snprintf(host, sizeof(host), "localhost");
		host[sizeof(host) - 1] = '\0';
		c->name = hb_strdup(host);
		if (!c->name)
			return fail_oom(ld);
	}
	e = section_first(ld, "packetbeat.flows");
	if (e)
		log_warn("config", "packetbeat.flows is not implemented by hostbeat; ignored");
	warn_processors(ld);
	return 0;
}

static void loader_free(struct loader *ld)
{
	flat_list_free(&ld->fl);
	strvec_free(&ld->known);
	strvec_free(&ld->sections);
	for (size_t i = 0; i < NTABLES; i++)
		if (tables[i].base != TB_CFG)
			free_table(tables[i].f, tables[i].n, &ld->sc);
}

/* p: a parser with its input set (owned by the caller). */
static int load_with(yaml_parser_t *p, const char *name, char *const *ov, size_t nov,
		     struct hb_config *out, struct cfg_error *err)
{
	struct loader ld;
	int rc;

	memset(&ld, 0, sizeof(ld));
	memset(out, 0, sizeof(*out));
	ld.name = name;
	ld.err = err;
	err->msg[0] = '\0';
	out->path = hb_strdup(name);
	rc = out->path ? flatten_parser(&ld, p) : fail_oom(&ld);
	for (size_t i = 0; i < nov && !rc; i++)
		rc = apply_override(&ld, ov[i], i + 1);
	if (!rc)
		rc = expand_all(&ld);
	if (!rc)
		rc = fill_all(&ld, out);
	loader_free(&ld);
	if (rc) {
		cfg_free(out);
		return ld.oom ? -ENOMEM : -EINVAL;
	}
	return 0;
}

int cfg_load_string(const char *yaml, const char *name, char *const *overrides, size_t noverrides,
		    struct hb_config *out, struct cfg_error *err)
{
	yaml_parser_t p;
	int rc;

	if (!yaml_parser_initialize(&p)) {
		memset(out, 0, sizeof(*out));
		snprintf(err->msg, sizeof(err->msg), "%s: out of memory", name);
		return -ENOMEM;
	}
	yaml_parser_set_input_string(&p, (const unsigned char *)yaml, strlen(yaml));
	rc = load_with(&p, name, overrides, noverrides, out, err);
	yaml_parser_delete(&p);
	return rc;
}

int cfg_load(const char *path, char *const *overrides, size_t noverrides, struct hb_config *out,
	     struct cfg_error *err)
{
	yaml_parser_t p;
	FILE *f;
	int rc;

	if (!path) {
		if (access("beats.yml", F_OK) != 0)
			return cfg_load_string(cfg_default_yaml, "(embedded)", overrides,
					       noverrides, out, err);
		path = "beats.yml";
	}
	memset(out, 0, sizeof(*out));
	f = fopen(path, "r");
	if (!f) {
		snprintf(err->msg, sizeof(err->msg), "%s: cannot open: %s", path, strerror(errno));
		return -EINVAL;
	}
	if (!yaml_parser_initialize(&p)) {
		fclose(f);
		snprintf(err->msg, sizeof(err->msg), "%s: out of memory", path);
		return -ENOMEM;
	}
	yaml_parser_set_input_file(&p, f);
	rc = load_with(&p, path, overrides, noverrides, out, err);
	yaml_parser_delete(&p);
	fclose(f);
	return rc;
}

void cfg_free(struct hb_config *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < NTABLES; i++)
		if (tables[i].base == TB_CFG)
			free_table(tables[i].f, tables[i].n, c);
	for (size_t i = 0; i < c->nprotos; i++) {
		struct cfg_proto *p = &c->protos[i];

		ports_free(&p->ports);
		if (p->priv && p->ops->config)
			free_table(p->ops->config, p->ops->nconfig, p->priv);
		hb_free(p->priv);
	}
	strlist_free(&c->es_headers); /* filled from a free-form map, not a table */
	hb_free(c->path);
	hb_free(c->pcap_file);
	memset(c, 0, sizeof(*c));
}

const struct cfg_proto *cfg_proto_by_name(const struct hb_config *c, const char *name)
{
	for (size_t i = 0; i < c->nprotos; i++)
		if (strcmp(c->protos[i].ops->name, name) == 0)
			return &c->protos[i];
	return NULL;
}

/* ---- dump ------------------------------------------------------------------- */

static void dump_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (p[0] == '$' && p[1] == '{')
			fputs("$$", f); /* reads back as a literal "${", not a variable */
		else if (*p < 0x20 || *p == 0x7f)
			fprintf(f, "\\x%02x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

static void dump_field(FILE *f, const char *indent, const char *prefix, const struct cfg_field *fd,
		       const void *base)
{
	const void *p = (const char *)base + fd->offset;
	char buf[32];

	if (fd->type == CFG_STRING && !*(char *const *)p)
		return; /* unset: the loader's default (NULL) again */
	fprintf(f, "%s%s%s%s: ", indent, prefix, prefix[0] ? "." : "", fd->key);
	switch (fd->type) {
	case CFG_BOOL:
		fputs(*(const bool *)p ? "true" : "false", f);
		break;
	case CFG_INT:
		fprintf(f, "%lld", (long long)*(const int64_t *)p);
		break;
	case CFG_UINT:
	case CFG_SIZE:
		fprintf(f, "%llu", (unsigned long long)*(const uint64_t *)p);
		break;
	case CFG_DURATION:
		fmt_duration(*(const uint64_t *)p, buf, sizeof(buf));
		fputs(buf, f);
		break;
	case CFG_STRING:
		dump_string(f, *(char *const *)p);
		break;
	case CFG_STRLIST: {
		const struct cfg_strlist *l = p;

		fputc('[', f);
		for (size_t i = 0; i < l->n; i++) {
			fputs(i ? ", " : "", f);
			dump_string(f, l->v[i]);
		}
		fputc(']', f);
		break;
	}
	case CFG_PORTS: {
		const struct cfg_ports *l = p;

		fputc('[', f);
		for (size_t i = 0; i < l->n; i++)
			fprintf(f, "%s%u", i ? ", " : "", (unsigned)l->v[i]);
		fputc(']', f);
		break;
	}
	}
	fputc('\n', f);
}

int cfg_dump(const struct hb_config *c, void *file)
{
	FILE *f = file;
	struct scratch sc;

	memset(&sc, 0, sizeof(sc));
	sc.buffer_size_mb = c->buffer_size / MIB;
	sc.rotate_every_kb = c->file_rotate_every / KIB;
	fputs("# hostbeat effective configuration (defaults included)\n", f);
	for (size_t i = 0; i < NTABLES; i++) {
		if (tables[i].base == TB_COMPAT)
			continue;
		for (size_t k = 0; k < tables[i].n; k++)
			dump_field(f, "", tables[i].prefix, &tables[i].f[k],
				   tables[i].base == TB_CFG ? (const void *)c : (const void *)&sc);
	}
	if (!c->nprotos)
		fputs("packetbeat.protocols: []\n", f);
	else
		fputs("packetbeat.protocols:\n", f);
	for (size_t i = 0; i < c->nprotos; i++) {
		const struct cfg_proto *p = &c->protos[i];

		fputs("  - type: ", f);
		dump_string(f, p->ops->name);
		fputc('\n', f);
		for (size_t k = 0; k < NELEM(proto_fields); k++)
			dump_field(f, "    ", "", &proto_fields[k], p);
		for (size_t k = 0; p->priv && k < p->ops->nconfig; k++)
			dump_field(f, "    ", "", &p->ops->config[k], p->priv);
	}
	return ferror(f) ? -EIO : 0;
}
