/* stream_run.c — feed a .t stream script through one protocol parser and print
 * the published events as canonical text (tests/stream/).
 *
 *   stream_run PROTO FILE.t [--split-every-byte] [--expect FILE] [--set key=value]...
 *
 * Script format (in the style of Suricata's stream scripts):
 *   # comment                     ignored anywhere (write \x23 for a literal '#')
 *   >>> [raw]                     starts a client → server block
 *   <<< [raw]                     starts a server → client block
 *   @set key=value                protocol config (send_request, send_response,
 *                                 max_message_size, max_pending, transaction_timeout,
 *                                 or any key of the protocol's config table; sizes
 *                                 and durations as in the config file ("64KiB",
 *                                 "1h", "1m30s"), a bare duration in ms; lists a,b,c)
 *   @fin client|server            that side closes (fin() in its direction)
 *   @gap client|server N          N bytes lost in that side's direction
 *   @time +N                      advance the clock by N ms
 *   @expire                       call expire() now
 * Block content = the following lines up to the next marker/directive, each ended
 * with "\r\n" ("\n" in raw blocks); a line ending in a single '\' gets no line end;
 * "\xNN" and "\\" are escapes. Every block advances the clock by 1 ms.
 *
 * Each event prints as one line: status, start/end (ms after the script's epoch),
 * client/server bytes, then every field "key=value" in insertion order, joined with
 * " | " (arrays key[]=v, objects key[i].member=v; bytes outside printable ASCII,
 * '\' and '|' escaped as \xNN). A parser error prints "! parse_error <side>".
 *
 * --split-every-byte re-runs the script once per split position k, delivering
 * each block as two calls [0,k) and [k,n), and fails unless every run prints
 * exactly what the unsplit run printed. --expect compares with a file.
 * Exit: 0 ok, 1 mismatch, 2 usage/script/parser-contract error.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hostbeat/clock.h"
#include "hostbeat/config.h"
#include "hostbeat/event.h"
#include "hostbeat/ip.h"
#include "hostbeat/mem.h"
#include "hostbeat/metrics.h"
#include "hostbeat/proto.h"
#include "hostbeat/strbuf.h"

#define EPOCH_NS (1700000000ull * NS_PER_SEC)

enum act_kind { ACT_BLOCK, ACT_FIN, ACT_GAP, ACT_TIME, ACT_EXPIRE };

struct action {
	enum act_kind kind;
	enum proto_dir dir;
	uint8_t *data; /* ACT_BLOCK */
	size_t len;    /* ACT_BLOCK bytes, ACT_GAP bytes, ACT_TIME ms */
	int line;
};

struct script {
	struct action *acts;
	size_t n, cap;
	char **sets; /* "key=value" */
	size_t nsets;
	size_t max_block;
};

struct collect_sink {
	struct ev_sink sink; /* first: the parser sees only this */
	struct event *head, *tail;
};

struct side {
	uint8_t *p;
	size_t len, cap;
	size_t want; /* do not call parse before len reaches this */
};

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "stream_run: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

/* ---- script ----------------------------------------------------------------- */

static void add_action(struct script *s, struct action a)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 32;
		s->acts = realloc(s->acts, s->cap * sizeof(*s->acts));
		if (!s->acts)
			die("%s out of memory (line %d)", "", 0);
	}
	s->acts[s->n++] = a;
}

static int hexdig(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* Append one content line (escapes decoded) to the block. */
static void block_line(struct strbuf *b, const char *line, size_t n, bool raw, const char *file,
		       int lineno)
{
	bool no_eol = false;

	if (n && line[n - 1] == '\\' && (n < 2 || line[n - 2] != '\\')) {
		no_eol = true;
		n--;
	}
	for (size_t i = 0; i < n; i++) {
		if (line[i] != '\\') {
			strbuf_putc(b, line[i]);
			continue;
		}
		if (i + 1 < n && line[i + 1] == '\\') {
			strbuf_putc(b, '\\');
			i++;
		} else if (n - i >= 4 && line[i + 1] == 'x' && hexdig(line[i + 2]) >= 0 &&
			   hexdig(line[i + 3]) >= 0) {
			strbuf_putc(b, (char)(hexdig(line[i + 2]) << 4 | hexdig(line[i + 3])));
			i += 3;
		} else {
			die("%s:%d: bad escape", file, lineno);
		}
	}
	if (!no_eol)
		strbuf_puts(b, raw ? "\n" : "\r\n");
}

static enum proto_dir side_dir(const char *w, const char *file, int lineno)
{
	if (strncmp(w, "client", 6) == 0)
		return DIR_TO_SERVER;
	if (strncmp(w, "server", 6) == 0)
		return DIR_TO_CLIENT;
	die("%s:%d: expected client or server", file, lineno);
}

static void flush_block(struct script *s, struct strbuf *b, bool *open, enum proto_dir dir,
			int line)
{
	struct action a = {.kind = ACT_BLOCK, .dir = dir, .line = line};

	if (!*open)
		return;
	*open = false;
	a.len = b->len;
	a.data = malloc(b->len ? b->len : 1);
	if (!a.data)
		die("%s out of memory (line %d)", "", line);
	memcpy(a.data, b->p, b->len);
	if (a.len > s->max_block)
		s->max_block = a.len;
	add_action(s, a);
	strbuf_reset(b);
}

static void load_script(const char *file, struct script *s)
{
	FILE *f = fopen(file, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int lineno = 0, block_line_no = 0;
	struct strbuf b;
	bool open = false, raw = false;
	enum proto_dir dir = DIR_TO_SERVER;

	if (!f)
		die("cannot open %s (line %d)", file, 0);
	strbuf_init(&b);
	while ((n = getline(&line, &cap, f)) >= 0) {
		lineno++;
		while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (line[0] == '#')
			continue;
		if (strncmp(line, ">>>", 3) == 0 || strncmp(line, "<<<", 3) == 0) {
			flush_block(s, &b, &open, dir, block_line_no);
			dir = line[0] == '>' ? DIR_TO_SERVER : DIR_TO_CLIENT;
			raw = strstr(line + 3, "raw") != NULL;
			open = true;
			block_line_no = lineno;
			continue;
		}
		if (line[0] == '@') {
			struct action a = {.line = lineno};
			char *arg = strchr(line, ' ');

			flush_block(s, &b, &open, dir, block_line_no);
			arg = arg ? arg + 1 : line + n;
			if (strncmp(line, "@set ", 5) == 0) {
				s->sets = realloc(s->sets, (s->nsets + 1) * sizeof(*s->sets));
				if (!s->sets)
					die("%s out of memory (line %d)", "", 0);
				s->sets[s->nsets++] = strdup(arg);
				continue;
			} else if (strncmp(line, "@fin ", 5) == 0) {
				a.kind = ACT_FIN;
				a.dir = side_dir(arg, file, lineno);
			} else if (strncmp(line, "@gap ", 5) == 0) {
				char *num = strchr(arg, ' ');

				a.kind = ACT_GAP;
				a.dir = side_dir(arg, file, lineno);
				if (!num)
					die("%s:%d: @gap client|server N", file, lineno);
				a.len = strtoull(num + 1, NULL, 10);
			} else if (strncmp(line, "@time +", 7) == 0) {
				a.kind = ACT_TIME;
				a.len = strtoull(line + 7, NULL, 10);
			} else if (strcmp(line, "@expire") == 0) {
				a.kind = ACT_EXPIRE;
			} else {
				die("%s:%d: unknown directive", file, lineno);
			}
			add_action(s, a);
			continue;
		}
		if (!open) {
			if (n == 0)
				continue;
			die("%s:%d: content outside a >>> / <<< block", file, lineno);
		}
		block_line(&b, line, (size_t)n, raw, file, lineno);
	}
	flush_block(s, &b, &open, dir, block_line_no);
	if (b.err)
		die("%s out of memory (line %d)", file, lineno);
	strbuf_free(&b);
	free(line);
	fclose(f);
}

/* ---- configuration ----------------------------------------------------------- */

/* A size: bare bytes or with a unit ("64KiB", "1MiB", "10KB"), as the config file. */
static uint64_t parse_size(const char *v)
{
	uint64_t x = 0;

	if (cfg_parse_size(v, &x))
		die("bad size %s (line %d)", v, 0);
	return x;
}

/* A duration in ns: a bare number is milliseconds (script convention), anything else
 * Go-style as in the config file ("1h", "10s", "1m30s", "250ms"). */
static uint64_t parse_duration(const char *v)
{
	uint64_t x = 0;
	size_t n = strspn(v, "0123456789");

	if (n && v[n] == '\0')
		return strtoull(v, NULL, 10) * NS_PER_MS;
	if (cfg_parse_duration(v, &x))
		die("bad duration %s (line %d)", v, 0);
	return x;
}

static void set_list(struct cfg_strlist *l, const char *v)
{
	char *copy = strdup(v), *tok, *save = NULL;

	for (size_t i = 0; i < l->n; i++)
		hb_free(l->v[i]);
	hb_free(l->v);
	l->v = NULL;
	l->n = 0;
	if (!copy)
		return;
	for (tok = strtok_r(copy, "[], ", &save); tok; tok = strtok_r(NULL, "[], ", &save)) {
		char **nv = hb_realloc(l->v, (l->n + 1) * sizeof(*nv));

		if (!nv)
			break;
		l->v = nv;
		l->v[l->n++] = hb_strdup(tok);
	}
	free(copy);
}

static int set_field(const struct cfg_field *f, void *base, const char *v)
{
	char *at = (char *)base + f->offset;

	switch (f->type) {
	case CFG_BOOL:
		*(bool *)at = strcmp(v, "true") == 0;
		return 0;
	case CFG_INT:
		*(int64_t *)at = strtoll(v, NULL, 10);
		return 0;
	case CFG_UINT:
		*(uint64_t *)at = strtoull(v, NULL, 10);
		return 0;
	case CFG_SIZE:
		*(uint64_t *)at = parse_size(v);
		return 0;
	case CFG_DURATION:
		*(uint64_t *)at = parse_duration(v);
		return 0;
	case CFG_STRING:
		hb_free(*(char **)at);
		*(char **)at = hb_strdup(v);
		return 0;
	case CFG_STRLIST:
		set_list((struct cfg_strlist *)at, v);
		return 0;
	case CFG_PORTS:
		break;
	}
	return -EINVAL;
}

static void apply_set(const struct proto_ops *ops, struct cfg_proto *cfg, const char *kv)
{
	char key[128];
	const char *eq = strchr(kv, '=');
	size_t kn = eq ? (size_t)(eq - kv) : 0;

	if (!eq || kn >= sizeof(key))
		die("bad --set/@set %s (line %d)", kv, 0);
	memcpy(key, kv, kn);
	key[kn] = '\0';
	eq++;
	if (strcmp(key, "send_request") == 0) {
		cfg->send_request = strcmp(eq, "true") == 0;
	} else if (strcmp(key, "send_response") == 0) {
		cfg->send_response = strcmp(eq, "true") == 0;
	} else if (strcmp(key, "max_message_size") == 0) {
		cfg->max_message_size = parse_size(eq);
	} else if (strcmp(key, "max_pending") == 0) {
		cfg->max_pending = strtoull(eq, NULL, 10);
	} else if (strcmp(key, "transaction_timeout") == 0) {
		cfg->transaction_timeout = parse_duration(eq);
	} else {
		for (size_t i = 0; i < ops->nconfig; i++)
			if (strcmp(ops->config[i].key, key) == 0 &&
			    set_field(&ops->config[i], cfg->priv, eq) == 0)
				return;
		die("unknown config key %s (line %d)", key, 0);
	}
}

static void config_init(const struct proto_ops *ops, struct cfg_proto *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->ops = ops;
	cfg->enabled = true;
	cfg->transaction_timeout = 10 * NS_PER_SEC;
	cfg->max_message_size = 10u << 20;
	cfg->max_pending = 32;
	cfg->priv = ops->config_size ? hb_calloc(1, ops->config_size) : NULL;
	for (size_t i = 0; i < ops->nconfig; i++)
		if (ops->config[i].def && cfg->priv)
			set_field(&ops->config[i], cfg->priv, ops->config[i].def);
}

static void config_free(const struct proto_ops *ops, struct cfg_proto *cfg)
{
	for (size_t i = 0; i < ops->nconfig && cfg->priv; i++) {
		char *at = (char *)cfg->priv + ops->config[i].offset;

		if (ops->config[i].type == CFG_STRING)
			hb_free(*(char **)at);
		else if (ops->config[i].type == CFG_STRLIST)
			set_list((struct cfg_strlist *)at, "");
	}
	hb_free(cfg->priv);
}

/* ---- canonical event text ------------------------------------------------------ */

static void put_escaped(struct strbuf *o, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch < 0x20 || ch >= 0x7f || ch == '\\' || ch == '|')
			strbuf_appendf(o, "\\x%02x", ch);
		else
			strbuf_putc(o, (char)ch);
	}
}

static void put_time(struct strbuf *o, const char *name, uint64_t ns)
{
	if (!ns) {
		strbuf_appendf(o, " %s=-", name);
		return;
	}
	ns -= EPOCH_NS;
	if (ns % NS_PER_MS)
		strbuf_appendf(o, " %s=%" PRIu64 ".%06" PRIu64 "ms", name,
			       (uint64_t)(ns / NS_PER_MS), (uint64_t)(ns % NS_PER_MS));
	else
		strbuf_appendf(o, " %s=%" PRIu64 "ms", name, (uint64_t)(ns / NS_PER_MS));
}

static void print_event(struct strbuf *o, const struct event *ev)
{
	const char *status = ev_status_name(ev->status);

	strbuf_appendf(o, "%s %s", ev->dataset ? ev->dataset : "?", status ? status : "none");
	put_time(o, "ts", ev->ts);
	put_time(o, "start", ev->start_ns);
	put_time(o, "end", ev->end_ns);
	if (ev->has_client_bytes)
		strbuf_appendf(o, " client_bytes=%" PRIu64, ev->client_bytes);
	if (ev->has_server_bytes)
		strbuf_appendf(o, " server_bytes=%" PRIu64, ev->server_bytes);
	for (size_t i = 0; i < ev->nfields; i++) {
		const struct ev_field *f = &ev->fields[i];
		char ip[HB_IP_STRLEN];

		strbuf_appendf(o, " | %s", f->key);
		if (f->member)
			strbuf_appendf(o, "[%u].%s", f->elem, f->member);
		else if (f->flags & EVF_ARRAY)
			strbuf_puts(o, "[]");
		strbuf_putc(o, '=');
		switch (f->type) {
		case EV_T_STR:
			put_escaped(o, f->v.s.p, f->v.s.len);
			break;
		case EV_T_INT:
			strbuf_appendf(o, "%" PRId64, f->v.i);
			break;
		case EV_T_UINT:
			strbuf_appendf(o, "%" PRIu64, f->v.u);
			break;
		case EV_T_BOOL:
			strbuf_puts(o, f->v.b ? "true" : "false");
			break;
		case EV_T_DOUBLE:
			strbuf_appendf(o, "%.17g", f->v.d);
			break;
		case EV_T_IP:
			hb_ip_format(&f->v.ip, ip);
			strbuf_puts(o, ip);
			break;
		case EV_T_TIME:
			strbuf_appendf(o, "%" PRIu64, f->v.u);
			break;
		default:
			strbuf_puts(o, "?");
		}
	}
	if (ev->dropped_fields)
		strbuf_appendf(o, " | !dropped_fields=%u", ev->dropped_fields);
	strbuf_putc(o, '\n');
}

static void collect_publish(struct ev_sink *sink, struct event *ev)
{
	struct collect_sink *cs = (struct collect_sink *)sink;

	ev->next = NULL;
	if (cs->tail)
		cs->tail->next = ev;
	else
		cs->head = ev;
	cs->tail = ev;
}

/* Print and return the published events. */
static void drain(struct collect_sink *cs, struct strbuf *o)
{
	struct event *ev, *next;

	for (ev = cs->head; ev; ev = next) {
		next = ev->next;
		print_event(o, ev);
		ev_pool_put(ev);
	}
	cs->head = cs->tail = NULL;
}

/* ---- running --------------------------------------------------------------------- */

struct run {
	const struct proto_ops *ops;
	struct proto_ctx ctx;
	struct collect_sink *cs;
	void *conn;
	bool dead;
	struct side side[2];
	struct strbuf *out;
};

static void conn_end(struct run *r)
{
	if (!r->conn)
		return;
	r->ops->expire(r->conn, &r->ctx);
	r->ops->conn_free(r->conn);
	r->conn = NULL;
	drain(r->cs, r->out);
}

static void side_clear(struct run *r)
{
	for (int i = 0; i < 2; i++) {
		r->side[i].len = 0;
		r->side[i].want = 0;
	}
}

static void feed(struct run *r, enum proto_dir dir, const uint8_t *p, size_t n)
{
	struct side *s = &r->side[dir];

	if (r->dead || n == 0)
		return;
	if (s->cap - s->len < n) {
		s->cap = (s->len + n) * 2;
		s->p = realloc(s->p, s->cap);
		if (!s->p)
			die("%s out of memory (line %d)", "", 0);
	}
	memcpy(s->p + s->len, p, n);
	s->len += n;
	if (s->len < s->want)
		return;
	for (;;) {
		struct parse_result pr = r->ops->parse(r->conn, dir, s->p, s->len, &r->ctx);

		if (pr.consumed > s->len)
			die("%s: parser consumed more than it was given (line %d)", r->ops->name,
			    0);
		memmove(s->p, s->p + pr.consumed, s->len - pr.consumed);
		s->len -= pr.consumed;
		s->want = 0;
		drain(r->cs, r->out);
		if (pr.status == PARSE_ERROR) {
			strbuf_appendf(r->out, "! parse_error %s\n",
				       dir == DIR_TO_SERVER ? "client" : "server");
			conn_end(r);
			r->dead = true;
			return;
		}
		if (pr.status == PARSE_NEED_MORE) {
			s->want = s->len + (pr.needed ? pr.needed : 1);
			return;
		}
		if (s->len == 0)
			return;
		if (pr.consumed == 0)
			die("%s: PARSE_OK without progress (line %d)", r->ops->name, 0);
	}
}

/* One run of the script; `split` = SIZE_MAX for unsplit delivery. */
static void run_script(const struct proto_ops *ops, const struct script *sc,
		       const struct cfg_proto *cfg, struct ev_pool *pool, size_t split,
		       struct strbuf *out)
{
	struct collect_sink cs = {.sink = {.publish = collect_publish, .pool = pool}};
	struct conn_info info;
	struct run r;
	uint64_t now = EPOCH_NS;

	memset(&info, 0, sizeof(info));
	hb_ip_parse("10.0.0.1", &info.client_ip);
	hb_ip_parse("10.0.0.2", &info.server_ip);
	info.client_port = 40000;
	info.server_port = 80;
	info.transport = 6; /* IPPROTO_TCP */
	info.cfg = cfg;
	memset(&r, 0, sizeof(r));
	r.ops = ops;
	r.cs = &cs;
	r.out = out;
	r.ctx.conn = &info;
	r.ctx.sink = &cs.sink;
	r.ctx.stats = proto_stats_get(ops);
	r.conn = ops->conn_new(&info);
	if (!r.conn)
		die("%s: conn_new failed (line %d)", ops->name, 0);
	for (size_t i = 0; i < sc->n; i++) {
		const struct action *a = &sc->acts[i];

		switch (a->kind) {
		case ACT_BLOCK: {
			size_t k = split < a->len ? split : a->len;

			now += NS_PER_MS;
			r.ctx.ts = now;
			feed(&r, a->dir, a->data, k);
			feed(&r, a->dir, a->data + k, a->len - k);
			break;
		}
		case ACT_TIME:
			now += a->len * NS_PER_MS;
			r.ctx.ts = now;
			break;
		case ACT_FIN:
			r.ctx.ts = now;
			if (!r.dead && ops->fin)
				ops->fin(r.conn, a->dir, &r.ctx);
			drain(&cs, out);
			break;
		case ACT_GAP:
			r.ctx.ts = now;
			if (r.dead)
				break;
			if (ops->gap(r.conn, a->dir, a->len, &r.ctx) < 0) {
				strbuf_appendf(out, "! gap_reset %s\n",
					       a->dir == DIR_TO_SERVER ? "client" : "server");
				conn_end(&r);
				side_clear(&r);
				r.conn = ops->conn_new(&info);
				if (!r.conn)
					die("%s: conn_new failed (line %d)", ops->name, a->line);
			}
			drain(&cs, out);
			break;
		case ACT_EXPIRE:
			r.ctx.ts = now;
			if (!r.dead)
				ops->expire(r.conn, &r.ctx);
			drain(&cs, out);
			break;
		}
	}
	r.ctx.ts = now;
	conn_end(&r);
	free(r.side[0].p);
	free(r.side[1].p);
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t cap = 0, n = 0, got;

	if (!f)
		return NULL;
	do {
		if (cap - n < 4096) {
			cap = cap ? cap * 2 : 8192;
			buf = realloc(buf, cap);
			if (!buf)
				die("%s out of memory (line %d)", path, 0);
		}
		got = fread(buf + n, 1, cap - n, f);
		n += got;
	} while (got);
	fclose(f);
	*len = n;
	return buf;
}

static int line_len(const char *p, size_t n)
{
	const char *nl = memchr(p, '\n', n);

	return (int)(nl ? (size_t)(nl - p) : n);
}

/* Print the first line where a and b differ. */
static void show_diff(const char *what, const char *a, size_t an, const char *b, size_t bn)
{
	size_t i = 0, ls = 0;
	int line = 1;

	while (i < an && i < bn && a[i] == b[i]) {
		if (a[i] == '\n') {
			ls = i + 1;
			line++;
		}
		i++;
	}
	fprintf(stderr, "%s: first difference at output line %d\n", what, line);
	fprintf(stderr, "  want: %.*s\n", line_len(a + ls, an - ls), a + ls);
	fprintf(stderr, "  got:  %.*s\n", line_len(b + ls, bn - ls), b + ls);
}

int main(int argc, char **argv)
{
	const struct proto_ops *ops;
	struct script sc = {0};
	struct cfg_proto cfg;
	struct ev_pool *pool;
	struct strbuf base, other;
	const char *expect = NULL;
	bool split = false;
	int rc = 0;

	if (argc < 3) {
		fprintf(stderr,
			"usage: stream_run PROTO FILE.t [--split-every-byte] [--expect FILE] "
			"[--set key=value]...\n");
		return 2;
	}
	ops = proto_find(argv[1]);
	if (!ops)
		die("unknown protocol %s (line %d)", argv[1], 0);
	load_script(argv[2], &sc);
	config_init(ops, &cfg);
	for (size_t i = 0; i < sc.nsets; i++)
		apply_set(ops, &cfg, sc.sets[i]);
	for (int i = 3; i < argc; i++) {
		if (strcmp(argv[i], "--split-every-byte") == 0)
			split = true;
		else if (strcmp(argv[i], "--expect") == 0 && i + 1 < argc)
			expect = argv[++i];
		else if (strcmp(argv[i], "--set") == 0 && i + 1 < argc)
			apply_set(ops, &cfg, argv[++i]);
		else
			die("unknown argument %s (line %d)", argv[i], 0);
	}
	pool = ev_pool_new(4096, 64u << 20, 1024);
	if (!pool)
		die("%s out of memory (line %d)", "", 0);
	strbuf_init(&base);
	strbuf_init(&other);
	run_script(ops, &sc, &cfg, pool, SIZE_MAX, &base);
	if (ev_pool_live(pool))
		die("%s: events leaked by the parser (line %d)", ops->name, 0);
	if (!expect)
		fwrite(base.p, 1, base.len, stdout);
	for (size_t k = 0; split && k <= sc.max_block && rc == 0; k++) {
		strbuf_reset(&other);
		run_script(ops, &sc, &cfg, pool, k, &other);
		if (other.len != base.len || (base.len && memcmp(other.p, base.p, base.len) != 0)) {
			char what[64];

			snprintf(what, sizeof(what), "split at %zu", k);
			show_diff(what, base.p, base.len, other.p, other.len);
			rc = 1;
		}
	}
	if (expect && rc == 0) {
		size_t n;
		char *want = read_file(expect, &n);

		if (!want) {
			fprintf(stderr, "stream_run: cannot read %s\n", expect);
			rc = 1;
		} else if (n != base.len || (n && memcmp(want, base.p, n) != 0)) {
			show_diff(expect, want, n, base.p, base.len);
			rc = 1;
		}
		free(want);
	}
	strbuf_free(&base);
	strbuf_free(&other);
	ev_pool_free(pool);
	config_free(ops, &cfg);
	for (size_t i = 0; i < sc.n; i++)
		free(sc.acts[i].data);
	free(sc.acts);
	for (size_t i = 0; i < sc.nsets; i++)
		free(sc.sets[i]);
	free(sc.sets);
	return rc;
}
