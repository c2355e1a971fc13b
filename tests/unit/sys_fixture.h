/* sys_fixture.h — shared cmocka fixture for the sys/ metricset unit tests: a sys_ctx
 * rooted at a fixture tree (tests/fixtures/proc/<case>/ is a hostfs root holding
 * proc/, sys/, etc/ ...), a collecting sink, field look-ups on what a metricset
 * published, temporary hostfs roots the test writes, and assert_near().
 *
 * Include after <cmocka.h>. MAX_SYS_EVENTS (default 4096) bounds one sample.
 *
 *   struct sfx *f = sfx_new("tests/fixtures/proc/cpu_basic");  (or an absolute path)
 *   f->cfg.stats_cpu_per_core = true;                          (config before create)
 *   void *st = sfx_create(f, &sys_cpu_metricset);
 *   sfx_sample(f, &sys_cpu_metricset, st, 10 * NS_PER_SEC);    (advance clocks 10 s)
 *   const struct event *ev = sfx_event(f, "system.cpu", 0);    (first such event)
 *   assert_near(sfx_double(ev, "system.cpu.user.pct"), 0.25, 1e-9);
 *   sys_cpu_metricset.destroy(st);
 *   sfx_free(f);
 *
 * sfx_sample() drops the previous sample's events first. Config defaults come from
 * cfg_load_string("", ...), so every topbeat.* default is the real one; sfx_new_cfg()
 * takes YAML (e.g. "topbeat.procs: ['^sleep$']"). The fixture owns everything.
 * Events are found by position (sfx_event), by an unsigned field (sfx_event_where,
 * e.g. process.pid) or by a string field (sfx_event_where_str, e.g. container.id);
 * all three return NULL when there is none.
 *
 * A hostfs root of the test's own, in a fresh temporary directory:
 *
 *   struct troot r;
 *   troot_new(&r);                                    (empty: /tmp/hb-sys-test-XXXXXX)
 *   troot_write(&r, "proc/stat", "cpu  1 2 3 4\n");   (missing directories are made)
 *   struct sfx *f = sfx_new(r.dir);
 *   ...
 *   troot_write(&r, "proc/stat", "cpu  5 6 7 8\n");   (rewritten in place: same inode)
 *   ...
 *   troot_free(&r);                                   (removes the whole tree)
 *
 * A file is rewritten in place (truncated, not replaced) because the metricsets keep
 * their /proc files open and pread them again, as the kernel's files change under a
 * descriptor that stays open. troot_write_len() writes bytes (NULs included),
 * troot_printf() formats, troot_open() hands out the stream for anything larger;
 * troot_mkdir(), troot_rename() and troot_rm() (a file or a whole subtree) shape the
 * tree, troot_path() names a file in it for the calls the fixture does not wrap.
 * When the file system refuses, they fail the test naming the path and the error
 * (the line cmocka prints is the fixture's; the path tells which call it was).
 *
 * assert_near(a, b, eps) passes when |a − b| <= eps (eps 0: equal); NaN is never
 * near anything. cmocka 1.1.5 (Debian 12) has no assert_double_equal. A failure
 * reports the caller's file and line, the expression and both values.
 *
 * assert_each_rejected(f, ms, st, &r, "proc/meminfo", bad, advance_ns) writes each
 * text of the array `bad` to that file in turn, advances the clocks and samples: no
 * sample may publish an event. A failure reports the caller's line and the index
 * in `bad` of the text that was accepted.
 */
#ifndef HB_TESTS_SYS_FIXTURE_H
#define HB_TESTS_SYS_FIXTURE_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hostbeat/clock.h"
#include "hostbeat/config.h"
#include "hostbeat/event.h"
#include "hostbeat/mem.h"
#include "hostbeat/sys.h"

#ifndef MAX_SYS_EVENTS
#define MAX_SYS_EVENTS 4096
#endif
#define SFX_T0 (1700000000ull * NS_PER_SEC)

/* cmocka 1.1.5 (Debian 12) has no assert_double_equal; see the comment at the top. */
#define assert_near(a, b, eps) sfx_assert_near_at((a), (b), (eps), #a, __FILE__, __LINE__)

static inline void sfx_assert_near_at(double a, double b, double eps, const char *expr,
				      const char *file, int line)
{
	if (a - b <= eps && b - a <= eps)
		return;
	print_error("ERROR: %s: %.10g is not %.10g (± %g)\n", expr, a, b, eps);
	_fail(file, line);
}

struct sfx {
	struct ev_sink sink; /* first: sfx_publish() casts back */
	struct ev_pool *pool;
	struct hb_config cfg;
	struct sys_ctx ctx;
	char buf[1 << 20];
	struct event *ev[MAX_SYS_EVENTS];
	size_t nev;
	size_t dropped; /* events the sink refused (MAX_SYS_EVENTS reached) */
};

static inline void sfx_publish(struct ev_sink *sink, struct event *ev)
{
	struct sfx *f = (struct sfx *)sink;

	if (f->nev >= MAX_SYS_EVENTS) {
		f->dropped++;
		ev_pool_put(ev);
		return;
	}
	f->ev[f->nev++] = ev;
}

static inline void sfx_clear(struct sfx *f)
{
	for (size_t i = 0; i < f->nev; i++)
		ev_pool_put(f->ev[i]);
	f->nev = 0;
}

/* A fixture rooted at `root` with the config `yaml` ("" = defaults). */
static inline struct sfx *sfx_new_cfg(const char *root, const char *yaml)
{
	struct sfx *f = calloc(1, sizeof(*f));
	struct cfg_error err;

	assert_non_null(f);
	if (cfg_load_string(yaml, "test.yml", NULL, 0, &f->cfg, &err) != 0)
		fail_msg("config: %s", err.msg);
	f->pool = ev_pool_new(MAX_SYS_EVENTS + 16, 1 << 20, 512);
	assert_non_null(f->pool);
	f->sink.publish = sfx_publish;
	f->sink.pool = f->pool;
	f->ctx.root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (f->ctx.root_fd < 0)
		fail_msg("cannot open fixture root %s", root);
	f->ctx.hostfs = root;
	f->ctx.cfg = &f->cfg;
	f->ctx.legacy = f->cfg.legacy_fields;
	f->ctx.now_ns = SFX_T0;
	f->ctx.mono_ns = 1000 * NS_PER_SEC;
	f->ctx.period_ns = f->cfg.topbeat_period;
	f->ctx.hz = 100;
	f->ctx.page_size = 4096;
	f->ctx.ncpu = 1;
	f->ctx.mem_total = 0;
	f->ctx.boot_time_ns = SFX_T0 - 3600 * NS_PER_SEC;
	f->ctx.buf = f->buf;
	f->ctx.buf_size = sizeof(f->buf);
	f->ctx.sink = &f->sink;
	return f;
}

static inline struct sfx *sfx_new(const char *root)
{
	return sfx_new_cfg(root, "");
}

static inline void *sfx_create(struct sfx *f, const struct sys_metricset *ms)
{
	void *st = ms->create(&f->ctx);

	assert_non_null(st);
	return st;
}

/* Advance both clocks by `advance_ns` (0 for the first sample), then sample. */
static inline void sfx_sample(struct sfx *f, const struct sys_metricset *ms, void *st,
			      uint64_t advance_ns)
{
	sfx_clear(f);
	f->ctx.now_ns += advance_ns;
	f->ctx.mono_ns += advance_ns;
	ms->sample(st, &f->ctx);
}

static inline void sfx_free(struct sfx *f)
{
	if (!f)
		return;
	sfx_clear(f);
	assert_int_equal(ev_pool_live(f->pool), 0); /* no event leaked by the metricset */
	ev_pool_free(f->pool);
	close(f->ctx.root_fd);
	cfg_free(&f->cfg);
	free(f);
}

/* The n-th published event of `dataset` (0-based), or NULL. */
static inline const struct event *sfx_event(const struct sfx *f, const char *dataset, size_t n)
{
	for (size_t i = 0; i < f->nev; i++)
		if (strcmp(f->ev[i]->dataset, dataset) == 0 && n-- == 0)
			return f->ev[i];
	return NULL;
}

static inline size_t sfx_count(const struct sfx *f, const char *dataset)
{
	size_t n = 0;

	for (size_t i = 0; i < f->nev; i++)
		n += strcmp(f->ev[i]->dataset, dataset) == 0;
	return n;
}

/* The event of `dataset` whose `key` is the unsigned `v` (e.g. process.pid), or NULL. */
static inline const struct event *sfx_event_where(const struct sfx *f, const char *dataset,
						  const char *key, uint64_t v)
{
	for (size_t i = 0; i < f->nev; i++) {
		const struct ev_field *x;

		if (strcmp(f->ev[i]->dataset, dataset) != 0)
			continue;
		x = ev_find(f->ev[i], key);
		if (x && ((x->type == EV_T_UINT && x->v.u == v) ||
			  (x->type == EV_T_INT && x->v.i >= 0 && (uint64_t)x->v.i == v)))
			return f->ev[i];
	}
	return NULL;
}

/* The event of `dataset` whose string `key` is `s` (e.g. container.id), or NULL. */
static inline const struct event *sfx_event_where_str(const struct sfx *f, const char *dataset,
						      const char *key, const char *s)
{
	size_t len = strlen(s);

	for (size_t i = 0; i < f->nev; i++) {
		const struct ev_field *x;

		if (strcmp(f->ev[i]->dataset, dataset) != 0)
			continue;
		x = ev_find(f->ev[i], key);
		if (x && x->type == EV_T_STR && x->v.s.len == len && memcmp(x->v.s.p, s, len) == 0)
			return f->ev[i];
	}
	return NULL;
}

static inline bool sfx_has(const struct event *ev, const char *key)
{
	return ev_find(ev, key) != NULL;
}

static inline const struct ev_field *sfx_field(const struct event *ev, const char *key)
{
	const struct ev_field *x = ev_find(ev, key);

	if (!x)
		fail_msg("event %s has no field %s", ev->dataset, key);
	return x;
}

static inline uint64_t sfx_uint(const struct event *ev, const char *key)
{
	const struct ev_field *x = sfx_field(ev, key);

	if (x->type == EV_T_INT && x->v.i >= 0)
		return (uint64_t)x->v.i;
	if (x->type != EV_T_UINT)
		fail_msg("%s is not an unsigned number", key);
	return x->v.u;
}

static inline double sfx_double(const struct event *ev, const char *key)
{
	const struct ev_field *x = sfx_field(ev, key);

	if (x->type == EV_T_DOUBLE)
		return x->v.d;
	if (x->type == EV_T_UINT)
		return (double)x->v.u;
	if (x->type == EV_T_INT)
		return (double)x->v.i;
	fail_msg("%s is not a number", key);
	return 0;
}

/* The string value as a NUL-terminated copy in a static-lifetime buffer of the
 * fixture-less kind: valid until the next call. */
static inline const char *sfx_str(const struct event *ev, const char *key)
{
	static char out[8192];
	const struct ev_field *x = sfx_field(ev, key);
	size_t n;

	if (x->type != EV_T_STR)
		fail_msg("%s is not a string", key);
	n = x->v.s.len < sizeof(out) - 1 ? x->v.s.len : sizeof(out) - 1;
	memcpy(out, x->v.s.p, n);
	out[n] = '\0';
	return out;
}

/* ---- a temporary hostfs root (see the comment at the top) ------------------ */

struct troot {
	char dir[64];
};

static inline void troot_new(struct troot *r)
{
	strcpy(r->dir, "/tmp/hb-sys-test-XXXXXX");
	if (!mkdtemp(r->dir))
		fail_msg("mkdtemp %s: %s", r->dir, strerror(errno));
}

/* `rel` under the root, in `out`. */
static inline char *troot_path(const struct troot *r, const char *rel, char *out, size_t size)
{
	int n = snprintf(out, size, "%s/%s", r->dir, rel);

	if (n < 0 || (size_t)n >= size)
		fail_msg("path too long: %s/%s", r->dir, rel);
	return out;
}

/* `rel` and the directories above it that are missing (mkdir -p). */
static inline void troot_mkdir(const struct troot *r, const char *rel)
{
	char path[4096];

	troot_path(r, rel, path, sizeof(path));
	for (char *p = path + strlen(r->dir) + 1;; p++) {
		bool end = *p == '\0';

		if (*p != '/' && !end)
			continue;
		*p = '\0';
		if (mkdir(path, 0755) != 0 && errno != EEXIST)
			fail_msg("mkdir %s: %s", path, strerror(errno));
		if (end)
			return;
		*p = '/';
	}
}

/* `rel` opened for writing, truncated in place (or created with its directories).
 * The caller fcloses it. */
static inline FILE *troot_open(const struct troot *r, const char *rel)
{
	char path[4096];
	const char *slash = strrchr(rel, '/');
	FILE *fp;

	if (slash) {
		char dir[4096];

		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - rel), rel);
		troot_mkdir(r, dir);
	}
	fp = fopen(troot_path(r, rel, path, sizeof(path)), "w");
	if (!fp)
		fail_msg("cannot write %s: %s", path, strerror(errno));
	return fp;
}

static inline void troot_write_len(const struct troot *r, const char *rel, const void *data,
				   size_t len)
{
	FILE *fp = troot_open(r, rel);

	if (fwrite(data, 1, len, fp) != len || fclose(fp) != 0)
		fail_msg("cannot write %s/%s", r->dir, rel);
}

static inline void troot_write(const struct troot *r, const char *rel, const char *text)
{
	troot_write_len(r, rel, text, strlen(text));
}

static inline __attribute__((format(printf, 3, 4))) void
troot_printf(const struct troot *r, const char *rel, const char *fmt, ...)
{
	FILE *fp = troot_open(r, rel);
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vfprintf(fp, fmt, ap);
	va_end(ap);
	if (fclose(fp) != 0 || n < 0)
		fail_msg("cannot write %s/%s", r->dir, rel);
}

static inline void troot_rename(const struct troot *r, const char *from, const char *to)
{
	char a[4096], b[4096];

	troot_path(r, from, a, sizeof(a));
	troot_path(r, to, b, sizeof(b));
	if (rename(a, b) != 0)
		fail_msg("rename %s %s: %s", a, b, strerror(errno));
}

static inline int troot_rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static inline void troot_rm_path(const char *path)
{
	if (nftw(path, troot_rm_one, 16, FTW_DEPTH | FTW_PHYS) != 0)
		fail_msg("cannot remove %s: %s", path, strerror(errno));
}

/* The file or the whole directory `rel`. */
static inline void troot_rm(const struct troot *r, const char *rel)
{
	char path[4096];

	troot_rm_path(troot_path(r, rel, path, sizeof(path)));
}

static inline void troot_free(struct troot *r)
{
	troot_rm_path(r->dir);
}

/* ---- assert_each_rejected (see the comment at the top) --------------------- */

#define assert_each_rejected(f, ms, st, r, rel, bad, advance_ns)                            \
	sfx_assert_each_rejected_at((f), (ms), (st), (r), (rel), (bad),                     \
				    sizeof(bad) / sizeof((bad)[0]), (advance_ns), __FILE__, \
				    __LINE__)

static inline void sfx_assert_each_rejected_at(struct sfx *f, const struct sys_metricset *ms,
					       void *st, const struct troot *r, const char *rel,
					       const char *const *bad, size_t n,
					       uint64_t advance_ns, const char *file, int line)
{
	for (size_t i = 0; i < n; i++) {
		troot_write(r, rel, bad[i]);
		sfx_sample(f, ms, st, advance_ns);
		if (f->nev != 0) {
			print_error("ERROR: %s holding bad[%zu]: %zu event(s) published\n", rel, i,
				    f->nev);
			_fail(file, line);
		}
	}
}

#endif
