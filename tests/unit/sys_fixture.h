/* sys_fixture.h — shared cmocka fixture for the sys/ metricset unit tests: a sys_ctx
 * rooted at a fixture tree (tests/fixtures/proc/<case>/ is a hostfs root holding
 * proc/, sys/, etc/ ...), a collecting sink, and field look-ups on what a metricset
 * published.
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
 */
#ifndef HB_TESTS_SYS_FIXTURE_H
#define HB_TESTS_SYS_FIXTURE_H

#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
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

/* cmocka 1.1.5 (Debian 12) has no assert_double_equal. */
#ifndef assert_near
#define assert_near(a, b, eps)                                  \
	do {                                                    \
		double a_ = (a), b_ = (b);                      \
		if (!(a_ - b_ <= (eps) && b_ - a_ <= (eps)))    \
			fail_msg("%.10g is not %.10g", a_, b_); \
	} while (0)
#endif

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

#endif
