/* test_sys_cpu.c — the cpu metricset (sys/cpu.c): /proc/stat line parsing and the
 * interval maths on synthetic samples, then the metricset on fixture trees
 * (tests/fixtures/proc/cpu_*) and on two-sample trees rewritten in a temporary
 * directory between samples (the metricset keeps proc/stat open): percentages,
 * first sample, counters going backwards, CPU hotplug, legacy names, malformed
 * files — and this host's /proc/stat against libproc2's reading of it. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <libproc2/stat.h>

#include "hostbeat/metrics.h"
#include "sys_fixture.h"
#include "sys/cpu.h"

#define FIX "tests/fixtures/proc/"
#define TEN_S (10 * NS_PER_SEC)

/* One cpuN line: user nice system idle iowait irq softirq steal guest guest_nice. */
struct core_line {
	long id;
	uint64_t v[10];
};

/* proc/stat with the "cpu" line = the sum of `cores` (or `sum` when not NULL). */
static void write_stat(const struct troot *r, const uint64_t *sum, const struct core_line *cores,
		       size_t n)
{
	char text[8192];
	uint64_t tot[10] = {0};
	size_t off = 0, i;
	int c;

	for (i = 0; i < n; i++)
		for (c = 0; c < 10; c++)
			tot[c] += cores[i].v[c];
	if (sum)
		memcpy(tot, sum, sizeof(tot));
	off += (size_t)snprintf(text + off, sizeof(text) - off, "cpu ");
	for (c = 0; c < 10; c++)
		off += (size_t)snprintf(text + off, sizeof(text) - off, " %llu",
					(unsigned long long)tot[c]);
	for (i = 0; i < n; i++) {
		off += (size_t)snprintf(text + off, sizeof(text) - off, "\ncpu%ld", cores[i].id);
		for (c = 0; c < 10; c++)
			off += (size_t)snprintf(text + off, sizeof(text) - off, " %llu",
						(unsigned long long)cores[i].v[c]);
	}
	snprintf(text + off, sizeof(text) - off,
		 "\nintr 1234 0 0\nctxt 5678\nbtime 1699996400\nprocesses 100\n"
		 "procs_running 1\nprocs_blocked 0\n");
	troot_write(r, "proc/stat", text);
}

static const char *const states[SYS_CPU_NSTATES] = {"user",   "nice", "system",  "idle",
						    "iowait", "irq",  "softirq", "steal"};

/* The double at "<prefix><state><suffix>", e.g. system.cpu. user .norm.pct */
static double state_double(const struct event *ev, const char *prefix, int s, const char *suffix)
{
	char key[96];

	snprintf(key, sizeof(key), "%s%s%s", prefix, states[s], suffix);
	return sfx_double(ev, key);
}

static bool state_has(const struct event *ev, const char *prefix, int s, const char *suffix)
{
	char key[96];

	snprintf(key, sizeof(key), "%s%s%s", prefix, states[s], suffix);
	return sfx_has(ev, key);
}

static uint64_t state_uint(const struct event *ev, const char *prefix, int s, const char *suffix)
{
	char key[96];

	snprintf(key, sizeof(key), "%s%s%s", prefix, states[s], suffix);
	return sfx_uint(ev, key);
}

/* The system.core event of core `id`; the test fails when there is none. */
static const struct event *core_event(const struct sfx *f, uint64_t id)
{
	const struct event *ev = sfx_event_where(f, "system.core", "system.core.id", id);

	if (!ev)
		fail_msg("no system.core event for core %llu", (unsigned long long)id);
	return ev;
}

/* A temporary root whose proc/stat holds `cores` (the "cpu" line their sum), and a
 * fixture on it with per-core events on. */
static struct sfx *stat_fixture(struct troot *r, const struct core_line *cores, size_t n)
{
	struct sfx *f;

	troot_new(r);
	write_stat(r, NULL, cores, n);
	f = sfx_new(r->dir);
	f->cfg.stats_cpu_per_core = true;
	return f;
}

/* ---- pure functions -------------------------------------------------------- */

static int parse(const char *s, struct sys_cpu_times *t, long *id)
{
	struct sys_text line = sys_text_of(s, strlen(s));

	return sys_cpu_parse_line(&line, t, id);
}

static void test_parse_line(void **state)
{
	struct sys_cpu_times t;
	long id = 99;

	(void)state;
	assert_int_equal(parse("cpu  14220 1 2701 262761 575 3 82 992 40 7", &t, &id), 0);
	assert_int_equal(id, -1);
	assert_int_equal(t.t[SYS_CPU_USER], 14220);
	assert_int_equal(t.t[SYS_CPU_NICE], 1);
	assert_int_equal(t.t[SYS_CPU_SYSTEM], 2701);
	assert_int_equal(t.t[SYS_CPU_IDLE], 262761);
	assert_int_equal(t.t[SYS_CPU_IOWAIT], 575);
	assert_int_equal(t.t[SYS_CPU_IRQ], 3);
	assert_int_equal(t.t[SYS_CPU_SOFTIRQ], 82);
	assert_int_equal(t.t[SYS_CPU_STEAL], 992);
	/* guest (40) and guest_nice (7) are inside user and nice: not in the total */
	assert_int_equal(sys_cpu_total(&t), 14220 + 1 + 2701 + 262761 + 575 + 3 + 82 + 992);

	assert_int_equal(parse("cpu17 1 2 3 4 5 6 7 8 9 10", &t, &id), 0);
	assert_int_equal(id, 17);
	assert_int_equal(t.t[SYS_CPU_STEAL], 8);
	assert_int_equal(parse("cpu0\t5 6 7 8", &t, &id), 0); /* tabs; Linux 2.4: 4 columns */
	assert_int_equal(id, 0);
	assert_int_equal(t.t[SYS_CPU_USER], 5);
	assert_int_equal(t.t[SYS_CPU_IDLE], 8);
	assert_int_equal(t.t[SYS_CPU_IOWAIT], 0);
	assert_int_equal(t.t[SYS_CPU_STEAL], 0);
	assert_int_equal(parse("cpu 1 2 3 4 5 6 7", &t, &id), 0); /* 2.6.9: no steal */
	assert_int_equal(t.t[SYS_CPU_SOFTIRQ], 7);
	assert_int_equal(t.t[SYS_CPU_STEAL], 0);

	/* not cpu lines */
	assert_int_equal(parse("intr 1 2 3", &t, &id), -ENOENT);
	assert_int_equal(parse("ctxt 5", &t, &id), -ENOENT);
	assert_int_equal(parse("cpufreq 1 2 3 4", &t, &id), -ENOENT);
	assert_int_equal(parse("", &t, &id), -ENOENT);
	assert_int_equal(parse("cp", &t, &id), -ENOENT);
	/* malformed cpu lines */
	assert_int_equal(parse("cpu 1 2 3", &t, &id), -EINVAL);
	assert_int_equal(parse("cpu", &t, &id), -EINVAL);
	assert_int_equal(parse("cpu 1 -2 3 4", &t, &id), -EINVAL);
	assert_int_equal(parse("cpu 1 2 3 4x", &t, &id), -EINVAL);
	assert_int_equal(parse("cpu 1 2 3 99999999999999999999", &t, &id), -EINVAL);
	assert_int_equal(parse("cpu99999999999 1 2 3 4", &t, &id), -EINVAL);
}

static void test_frac(void **state)
{
	/* 2 cores × 10 s × 100 Hz = 2000 ticks; guest +200 inside user's +300 */
	struct sys_cpu_times a = {{1000, 0, 500, 9000, 100, 10, 20, 0}};
	struct sys_cpu_times b = {{1300, 0, 600, 10500, 150, 20, 60, 0}};
	struct sys_cpu_frac fr;

	(void)state;
	assert_int_equal(sys_cpu_frac(&a, &b, &fr), 0);
	assert_near(fr.state[SYS_CPU_USER], 300.0 / 2000, 1e-12);
	assert_near(fr.state[SYS_CPU_SYSTEM], 100.0 / 2000, 1e-12);
	assert_near(fr.state[SYS_CPU_IDLE], 1500.0 / 2000, 1e-12);
	assert_near(fr.state[SYS_CPU_IOWAIT], 50.0 / 2000, 1e-12);
	assert_near(fr.state[SYS_CPU_IRQ], 10.0 / 2000, 1e-12);
	assert_near(fr.state[SYS_CPU_SOFTIRQ], 40.0 / 2000, 1e-12);
	assert_near(fr.state[SYS_CPU_NICE], 0, 1e-12);
	assert_near(fr.state[SYS_CPU_STEAL], 0, 1e-12);
	/* total = all but idle and iowait */
	assert_near(fr.busy, (2000.0 - 1500 - 50) / 2000, 1e-12);

	/* nothing elapsed: nothing to say, *out untouched */
	fr.busy = 42;
	assert_int_equal(sys_cpu_frac(&b, &b, &fr), -EAGAIN);
	assert_near(fr.busy, 42, 0);
	/* any counter backwards, even with the total going forward */
	b.t[SYS_CPU_IOWAIT] = 99;
	assert_int_equal(sys_cpu_frac(&a, &b, &fr), -ERANGE);
	assert_int_equal(sys_cpu_frac(&b, &a, &fr), -ERANGE);
	assert_near(fr.busy, 42, 0);
}

static void test_ticks_ms(void **state)
{
	(void)state;
	assert_int_equal(sys_cpu_ticks_ms(716481, 100), 7164810);
	assert_int_equal(sys_cpu_ticks_ms(3, 300), 10);
	assert_int_equal(sys_cpu_ticks_ms(1001, 1000), 1001);
	assert_int_equal(sys_cpu_ticks_ms(250, 0), 2500); /* unknown hz: USER_HZ 100 */
	/* no overflow in ticks × 1000 */
	assert_true(sys_cpu_ticks_ms(UINT64_MAX / 10, 100) ==
		    UINT64_MAX / 10 / 100 * 1000 + UINT64_MAX / 10 % 100 * 10);
}

/* ---- the metricset on fixture trees ---------------------------------------- */

static void test_first_sample(void **state)
{
	struct sfx *f = sfx_new(FIX "cpu_basic");
	const struct event *ev;
	void *st;
	int s;

	(void)state;
	st = sfx_create(f, &sys_cpu_metricset);
	sfx_sample(f, &sys_cpu_metricset, st, 0);
	assert_int_equal(sfx_count(f, "system.cpu"), 1);
	assert_int_equal(sfx_count(f, "system.core"), 0); /* cpu_per_core is off by default */
	ev = sfx_event(f, "system.cpu", 0);
	assert_string_equal(sfx_str(ev, "type"), "system");
	assert_int_equal(sfx_uint(ev, "system.cpu.cores"), 4);
	/* no previous sample: no percentages; no ticks without cpu_ticks; no legacy */
	for (s = 0; s < SYS_CPU_NSTATES; s++) {
		assert_false(state_has(ev, "system.cpu.", s, ".pct"));
		assert_false(state_has(ev, "system.cpu.", s, ".norm.pct"));
		assert_false(state_has(ev, "system.cpu.", s, ".ticks"));
		assert_false(state_has(ev, "cpu.", s, ""));
	}
	assert_false(sfx_has(ev, "system.cpu.total.pct"));
	assert_false(sfx_has(ev, "host.cpu.usage"));
	sys_cpu_metricset.destroy(st);
	sfx_free(f);
}

static void test_ticks_legacy_per_core(void **state)
{
	static const uint64_t sum[8] = {716481, 2056, 237228, 9660216, 12430, 0, 15240, 3206};
	static const uint64_t cpu2[8] = {190877, 1034, 61002, 2399501, 4120, 0, 5211, 845};
	struct sfx *f = sfx_new(FIX "cpu_basic");
	const struct event *ev;
	void *st;
	int s;

	(void)state;
	f->cfg.cpu_ticks = true;
	f->cfg.stats_cpu_per_core = true;
	f->ctx.legacy = true;
	f->ctx.hz = 100;
	st = sfx_create(f, &sys_cpu_metricset);
	sfx_sample(f, &sys_cpu_metricset, st, 0);
	ev = sfx_event(f, "system.cpu", 0);
	assert_non_null(ev);
	for (s = 0; s < SYS_CPU_NSTATES; s++) {
		assert_int_equal(state_uint(ev, "system.cpu.", s, ".ticks"), sum[s]);
		assert_int_equal(state_uint(ev, "cpu.", s, ""), sum[s] * 10); /* ms */
		assert_false(state_has(ev, "cpu.", s, "_p"));
	}
	assert_int_equal(sfx_count(f, "system.core"), 4);
	for (uint64_t id = 0; id < 4; id++) {
		ev = core_event(f, id);
		assert_string_equal(sfx_str(ev, "type"), "core");
		assert_int_equal(sfx_uint(ev, "core.id"), id);
		assert_false(sfx_has(ev, "system.core.user.pct"));
		assert_false(sfx_has(ev, "core.user_p"));
	}
	ev = core_event(f, 2);
	for (s = 0; s < SYS_CPU_NSTATES; s++) {
		assert_int_equal(state_uint(ev, "system.core.", s, ".ticks"), cpu2[s]);
		assert_int_equal(state_uint(ev, "core.", s, ""), cpu2[s] * 10);
	}
	sys_cpu_metricset.destroy(st);
	sfx_free(f);
}

static void test_old_kernel(void **state)
{
	struct sfx *f = sfx_new(FIX "cpu_old_kernel");
	const struct event *ev;
	void *st;

	(void)state;
	f->cfg.cpu_ticks = true;
	f->cfg.stats_cpu_per_core = true;
	st = sfx_create(f, &sys_cpu_metricset);
	sfx_sample(f, &sys_cpu_metricset, st, 0);
	ev = sfx_event(f, "system.cpu", 0);
	assert_non_null(ev);
	assert_int_equal(sfx_uint(ev, "system.cpu.cores"), 2);
	assert_int_equal(sfx_uint(ev, "system.cpu.user.ticks"), 102313);
	assert_int_equal(sfx_uint(ev, "system.cpu.softirq.ticks"), 600);
	assert_int_equal(sfx_uint(ev, "system.cpu.steal.ticks"), 0); /* no column: 0 */
	assert_int_equal(sfx_count(f, "system.core"), 2);
	ev = core_event(f, 1);
	assert_int_equal(sfx_uint(ev, "system.core.idle.ticks"), 874021);
	sys_cpu_metricset.destroy(st);
	sfx_free(f);
}

/* ---- two samples ----------------------------------------------------------- */

/* 2 cores, 10 s at 100 Hz: each core moves 1000 ticks, the sum 2000. The guest
 * columns move too (inside user/nice): counting them again would change every
 * figure below. */
static const struct core_line two_a[2] = {
    {0, {5000, 100, 2000, 40000, 300, 10, 90, 0, 1000, 50}},
    {1, {4000, 100, 1900, 41000, 250, 12, 70, 0, 800, 50}},
};
static const struct core_line two_b[2] = {
    {0, {5200, 100, 2050, 40700, 325, 15, 110, 0, 1150, 50}}, /* +200 +0 +50 +700 +25 +5 +20 */
    {1, {4100, 140, 1950, 41750, 250, 12, 70, 40, 880, 90}},  /* +100 +40 +50 +750 +0 +0 +0 +40 */
};

static void test_two_samples(void **state)
{
	/* Δ of the sum: user 300, nice 40, system 100, idle 1450, iowait 25, irq 5,
	 * softirq 20, steal 40 — 1980 ticks (the guests' +230 not among them) */
	static const double d[8] = {300, 40, 100, 1450, 25, 5, 20, 40};
	double total = 0;
	struct troot r;
	struct sfx *f;
	const struct event *ev;
	void *st;
	int s;

	(void)state;
	for (s = 0; s < 8; s++)
		total += d[s];
	assert_near(total, 1980, 0);
	f = stat_fixture(&r, two_a, 2);
	f->ctx.legacy = true;
	st = sfx_create(f, &sys_cpu_metricset);
	sfx_sample(f, &sys_cpu_metricset, st, 0);
	write_stat(&r, NULL, two_b, 2);
	sfx_sample(f, &sys_cpu_metricset, st, TEN_S);

	ev = sfx_event(f, "system.cpu", 0);
	assert_non_null(ev);
	assert_int_equal(sfx_uint(ev, "system.cpu.cores"), 2);
	for (s = 0; s < SYS_CPU_NSTATES; s++) {
		double norm = sys_round4(d[s] / total);

		assert_near(state_double(ev, "system.cpu.", s, ".norm.pct"), norm, 1e-9);
		assert_near(state_double(ev, "system.cpu.", s, ".pct"),
			    sys_round4(d[s] / total * 2), 1e-9);
		assert_near(state_double(ev, "cpu.", s, "_p"), norm, 1e-9);
	}
	/* concrete values, so the test does not only repeat the formula */
	assert_near(sfx_double(ev, "system.cpu.user.pct"), 0.3030, 1e-9);
	assert_near(sfx_double(ev, "system.cpu.user.norm.pct"), 0.1515, 1e-9);
	assert_near(sfx_double(ev, "system.cpu.idle.pct"), 1.4646, 1e-9);
	/* total = all but idle and iowait = 505 / 1980 */
	assert_near(sfx_double(ev, "system.cpu.total.norm.pct"), 0.2551, 1e-9);
	assert_near(sfx_double(ev, "system.cpu.total.pct"), 0.5101, 1e-9);
	assert_near(sfx_double(ev, "host.cpu.usage"), 0.2551, 1e-9);
	assert_int_equal(sfx_uint(ev, "cpu.user"), (5200 + 4100) * 10);

	/* per core: 0..1 of that core */
	ev = core_event(f, 0);
	assert_near(sfx_double(ev, "system.core.user.pct"), 0.2, 1e-9);
	assert_near(sfx_double(ev, "system.core.system.pct"), 0.05, 1e-9);
	assert_near(sfx_double(ev, "system.core.idle.pct"), 0.7, 1e-9);
	assert_near(sfx_double(ev, "system.core.iowait.pct"), 0.025, 1e-9);
	assert_near(sfx_double(ev, "system.core.total.pct"), 0.275, 1e-9);
	assert_near(sfx_double(ev, "core.user_p"), 0.2, 1e-9);
	ev = core_event(f, 1);
	assert_near(sfx_double(ev, "system.core.user.pct"), 100.0 / 980, 1e-4);
	assert_near(sfx_double(ev, "system.core.nice.pct"), 0.0408, 1e-9);
	assert_near(sfx_double(ev, "system.core.steal.pct"), 0.0408, 1e-9);
	assert_near(sfx_double(ev, "system.core.iowait.pct"), 0, 1e-9);

	sys_cpu_metricset.destroy(st);
	sfx_free(f);
	troot_free(&r);
}

static void test_counter_backwards(void **state)
{
	uint64_t resets = metrics_get("sys.cpu.counter_reset");
	struct core_line c[2];
	uint64_t sum[10];
	struct troot r;
	struct sfx *f;
	const struct event *ev;
	void *st;

	(void)state;
	f = stat_fixture(&r, two_a, 2);
	st = sfx_create(f, &sys_cpu_metricset);
	sfx_sample(f, &sys_cpu_metricset, st, 0);

	/* the summed idle falls back (a CPU went offline and its NO_HZ idle time is
	 * no longer added), the cores are fine */
	memcpy(c, two_b, sizeof(c));
	for (int i = 0; i < 10; i++)
		sum[i] = c[0].v[i] + c[1].v[i];
	sum[SYS_CPU_IDLE] = two_a[0].v[SYS_CPU_IDLE] + two_a[1].v[SYS_CPU_IDLE] - 5;
	write_stat(&r, sum, c, 2);
	sfx_sample(f, &sys_cpu_metricset, st, TEN_S);
	ev = sfx_event(f, "system.cpu", 0);
	assert_non_null(ev);
	assert_int_equal(sfx_uint(ev, "system.cpu.cores"), 2);
	assert_false(sfx_has(ev, "system.cpu.user.pct"));
	assert_false(sfx_has(ev, "system.cpu.total.pct"));
	assert_false(sfx_has(ev, "host.cpu.usage"));
	assert_int_equal(metrics_get("sys.cpu.counter_reset"), resets + 1);
	/* the cores still have their interval */
	ev = core_event(f, 0);
	assert_near(sfx_double(ev, "system.core.user.pct"), 0.2, 1e-9);

	/* the next interval is measured from the sample that went backwards */
	for (int i = 0; i < 2; i++) {
		c[i].v[SYS_CPU_USER] += 100;
		c[i].v[SYS_CPU_IDLE] += 900;
	}
	sum[SYS_CPU_USER] += 200;
	sum[SYS_CPU_IDLE] += 1800;
	write_stat(&r, sum, c, 2);
	sfx_sample(f, &sys_cpu_metricset, st, TEN_S);
	ev = sfx_event(f, "system.cpu", 0);
	assert_near(sfx_double(ev, "system.cpu.user.norm.pct"), 0.1, 1e-9);
	assert_near(sfx_double(ev, "system.cpu.user.pct"), 0.2, 1e-9);
	assert_near(sfx_double(ev, "system.cpu.idle.pct"), 1.8, 1e-9);
	assert_int_equal(metrics_get("sys.cpu.counter_reset"), resets + 1);

	/* one core backwards: that core skips, the machine does not */
	c[1].v[SYS_CPU_SYSTEM] -= 1;
	c[0].v[SYS_CPU_USER] += 10;
	sum[SYS_CPU_USER] += 10;
	write_stat(&r, sum, c, 2);
	sfx_sample(f, &sys_cpu_metricset, st, TEN_S);
	assert_true(sfx_has(sfx_event(f, "system.cpu", 0), "system.cpu.user.pct"));
	assert_true(sfx_has(core_event(f, 0), "system.core.user.pct"));
	ev = core_event(f, 1);
	assert_false(sfx_has(ev, "system.core.user.pct"));
	assert_int_equal(metrics_get("sys.cpu.counter_reset"), resets + 2);

	sys_cpu_metricset.destroy(st);
	sfx_free(f);
	troot_free(&r);
}

static void test_no_time_passed(void **state)
{
	uint64_t resets = metrics_get("sys.cpu.counter_reset");
	struct troot r;
	struct sfx *f;
	const struct event *ev;
	void *st;

	(void)state;
	f = stat_fixture(&r, two_a, 2);
	st = sfx_create(f, &sys_cpu_metricset);
	sfx_sample(f, &sys_cpu_metricset, st, 0);
	sfx_sample(f, &sys_cpu_metricset, st, NS_PER_MS); /* same ticks */
	ev = sfx_event(f, "system.cpu", 0);
	assert_non_null(ev);
	assert_false(sfx_has(ev, "system.cpu.user.pct"));
	ev = core_event(f, 1);
	assert_false(sfx_has(ev, "system.core.user.pct"));
	assert_int_equal(metrics_get("sys.cpu.counter_reset"), resets); /* not an error */
	sys_cpu_metricset.destroy(st);
	sfx_free(f);
	troot_free(&r);
}

/* cpu1 goes offline and comes back; cpu63 appears. A core is matched by its id,
 * and one that missed the previous sample reports no pct (its old counters are
 * from two samples ago). */
static void test_hotplug(void **state)
{
	struct core_line c[4] = {
	    {0, {1000, 0, 100, 9000, 0, 0, 0, 0, 0, 0}},
	    {1, {2000, 0, 200, 8000, 0, 0, 0, 0, 0, 0}},
	    {2, {3000, 0, 300, 7000, 0, 0, 0, 0, 0, 0}},
	    {63, {10, 0, 10, 10, 0, 0, 0, 0, 0, 0}},
	};
	struct core_line online[3];
	struct troot r;
	struct sfx *f;
	const struct event *ev;
	void *st;

	(void)state;
	f = stat_fixture(&r, c, 3); /* 0 1 2 */
	st = sfx_create(f, &sys_cpu_metricset);
	sfx_sample(f, &sys_cpu_metricset, st, 0);
	assert_int_equal(sfx_count(f, "system.core"), 3);

	/* cpu1 offline: two lines; the sum keeps cpu1's frozen counters */
	for (int i = 0; i < 3; i += 2) {
		c[i].v[SYS_CPU_USER] += 100;
		c[i].v[SYS_CPU_IDLE] += 900;
	}
	online[0] = c[0];
	online[1] = c[2];
	{
		uint64_t sum[10] = {0};

		for (int i = 0; i < 3; i++)
			for (int k = 0; k < 10; k++)
				sum[k] += c[i].v[k];
		write_stat(&r, sum, online, 2);
	}
	sfx_sample(f, &sys_cpu_metricset, st, TEN_S);
	ev = sfx_event(f, "system.cpu", 0);
	assert_int_equal(sfx_uint(ev, "system.cpu.cores"), 2);
	assert_near(sfx_double(ev, "system.cpu.user.norm.pct"), 0.1, 1e-9);
	assert_near(sfx_double(ev, "system.cpu.user.pct"), 0.2, 1e-9);
	assert_int_equal(sfx_count(f, "system.core"), 2);
	assert_null(sfx_event_where(f, "system.core", "system.core.id", 1));
	ev = core_event(f, 2); /* second line, id 2 */
	assert_near(sfx_double(ev, "system.core.user.pct"), 0.1, 1e-9);

	/* cpu1 back, cpu63 new */
	for (int i = 0; i < 4; i++) {
		c[i].v[SYS_CPU_USER] += 500;
		c[i].v[SYS_CPU_IDLE] += 500;
	}
	write_stat(&r, NULL, c, 4);
	sfx_sample(f, &sys_cpu_metricset, st, TEN_S);
	assert_int_equal(sfx_uint(sfx_event(f, "system.cpu", 0), "system.cpu.cores"), 4);
	assert_int_equal(sfx_count(f, "system.core"), 4);
	ev = core_event(f, 0);
	assert_near(sfx_double(ev, "system.core.user.pct"), 0.5, 1e-9);
	ev = core_event(f, 1);
	assert_false(sfx_has(ev, "system.core.user.pct"));
	ev = core_event(f, 63);
	assert_false(sfx_has(ev, "system.core.user.pct"));

	/* and from now on both have an interval */
	for (int i = 0; i < 4; i++) {
		c[i].v[SYS_CPU_USER] += 250;
		c[i].v[SYS_CPU_IDLE] += 750;
	}
	write_stat(&r, NULL, c, 4);
	sfx_sample(f, &sys_cpu_metricset, st, TEN_S);
	for (uint64_t id = 0; id < 64; id++) {
		ev = sfx_event_where(f, "system.core", "system.core.id", id);
		if (id <= 2 || id == 63)
			assert_near(sfx_double(ev, "system.core.user.pct"), 0.25, 1e-9);
		else
			assert_null(ev);
	}
	sys_cpu_metricset.destroy(st);
	sfx_free(f);
	troot_free(&r);
}

/* A core id beyond the cap is counted, not tracked; the others are unaffected. */
static void test_core_id_cap(void **state)
{
	uint64_t over = metrics_get("sys.cpu.cores_over_cap");
	struct core_line c[2] = {
	    {0, {1000, 0, 100, 9000, 0, 0, 0, 0, 0, 0}},
	    {100000, {10, 0, 10, 10, 0, 0, 0, 0, 0, 0}},
	};
	struct troot r;
	struct sfx *f;
	void *st;

	(void)state;
	f = stat_fixture(&r, c, 2);
	st = sfx_create(f, &sys_cpu_metricset);
	sfx_sample(f, &sys_cpu_metricset, st, 0);
	assert_int_equal(sfx_uint(sfx_event(f, "system.cpu", 0), "system.cpu.cores"), 2);
	assert_int_equal(sfx_count(f, "system.core"), 1);
	assert_non_null(sfx_event_where(f, "system.core", "system.core.id", 0));
	assert_int_equal(metrics_get("sys.cpu.cores_over_cap"), over + 1);
	sys_cpu_metricset.destroy(st);
	sfx_free(f);
	troot_free(&r);
}

/* proc/stat stays open: once the metricset has it, removing the path does not
 * stop it (the descriptor is re-read with pread, not reopened per sample). */
static void test_descriptor_kept_open(void **state)
{
	struct troot r;
	struct sfx *f;
	void *st;

	(void)state;
	troot_new(&r);
	write_stat(&r, NULL, two_a, 2);
	f = sfx_new(r.dir);
	st = sfx_create(f, &sys_cpu_metricset);
	sfx_sample(f, &sys_cpu_metricset, st, 0);
	assert_int_equal(sfx_count(f, "system.cpu"), 1);
	troot_rm(&r, "proc/stat");
	sfx_sample(f, &sys_cpu_metricset, st, TEN_S);
	assert_int_equal(sfx_count(f, "system.cpu"), 1);
	sys_cpu_metricset.destroy(st);
	sfx_free(f);
	troot_free(&r);
}

static void test_malformed(void **state)
{
	static const char *const bad[] = {
	    "",                                           /* empty */
	    "intr 1 2 3\nctxt 4\n",                       /* no cpu lines */
	    "cpu0 1 2 3 4\ncpu1 1 2 3 4\n",               /* no sum line */
	    "cpu  1 2 3 4 5 6 7 8\n",                     /* no cpuN line */
	    "cpu  1 2 3\ncpu0 1 2 3\n",                   /* too few columns */
	    "cpu  1 2 x 4 5 6 7 8\ncpu0 1 2 x 4 5 6 7 8", /* not numbers */
	};
	uint64_t before = metrics_get("sys.cpu.parse_errors");
	struct troot r;
	struct sfx *f;
	void *st;

	(void)state;
	f = stat_fixture(&r, two_a, 2);
	st = sfx_create(f, &sys_cpu_metricset);
	assert_each_rejected(f, &sys_cpu_metricset, st, &r, "proc/stat", bad, TEN_S);
	assert_true(metrics_get("sys.cpu.parse_errors") + metrics_get("sys.cpu.read_errors") >=
		    before + sizeof(bad) / sizeof(bad[0]));

	/* a bad core line is skipped (not a core), the rest still reported */
	troot_write(&r, "proc/stat", "cpu  10 0 10 100 0 0 0 0\ncpu0 5 0 5 50\ncpu1 5 0 x 50\n");
	sfx_sample(f, &sys_cpu_metricset, st, TEN_S);
	assert_int_equal(sfx_uint(sfx_event(f, "system.cpu", 0), "system.cpu.cores"), 1);
	assert_int_equal(sfx_count(f, "system.core"), 1);
	/* the same core twice in one file: one event */
	troot_write(&r, "proc/stat", "cpu  10 0 10 100 0 0 0 0\ncpu0 5 0 5 50\ncpu0 5 0 5 50\n");
	sfx_sample(f, &sys_cpu_metricset, st, TEN_S);
	assert_int_equal(sfx_count(f, "system.core"), 1);
	sys_cpu_metricset.destroy(st);
	sfx_free(f);
	troot_free(&r);
}

/* No proc/stat under the root: create() says so and the sampler runs without it. */
static void test_create_without_stat(void **state)
{
	struct troot r;
	struct sfx *f;

	(void)state;
	troot_new(&r);
	troot_mkdir(&r, "proc");
	f = sfx_new(r.dir);
	assert_null(sys_cpu_metricset.create(&f->ctx));
	sys_cpu_metricset.destroy(NULL);
	sfx_free(f);
	troot_free(&r);
}

/* ---- this host, against libproc2 ------------------------------------------ */

static enum stat_item lp_items[] = {STAT_TIC_ID,     STAT_TIC_USER,    STAT_TIC_NICE,
				    STAT_TIC_SYSTEM, STAT_TIC_IDLE,    STAT_TIC_IOWAIT,
				    STAT_TIC_IRQ,    STAT_TIC_SOFTIRQ, STAT_TIC_STOLEN};
#define LP_NITEMS ((int)(sizeof(lp_items) / sizeof(lp_items[0])))
#define LP_MAX_CPUS 512

struct lp_sample {
	uint64_t sum[SYS_CPU_NSTATES];
	int ncpu;
	int id[LP_MAX_CPUS];
	uint64_t cpu[LP_MAX_CPUS][SYS_CPU_NSTATES];
};

/* A fresh libproc2 reading (a new info: procps_stat_get caches for a second). */
static void lp_read(struct lp_sample *out)
{
	struct stat_info *info = NULL;
	struct stat_reaped *rp;

	assert_true(procps_stat_new(&info) >= 0);
	rp = procps_stat_reap(info, STAT_REAP_CPUS_ONLY, lp_items, LP_NITEMS);
	assert_non_null(rp);
	for (int s = 0; s < SYS_CPU_NSTATES; s++)
		out->sum[s] = STAT_VAL(s + 1, ull_int, rp->summary, info);
	out->ncpu = rp->cpus->total < LP_MAX_CPUS ? rp->cpus->total : LP_MAX_CPUS;
	for (int i = 0; i < out->ncpu; i++) {
		out->id[i] = STAT_VAL(0, s_int, rp->cpus->stacks[i], info);
		for (int s = 0; s < SYS_CPU_NSTATES; s++)
			out->cpu[i][s] = STAT_VAL(s + 1, ull_int, rp->cpus->stacks[i], info);
	}
	procps_stat_unref(&info);
}

/* ours must lie between two libproc2 readings taken around it; idle and iowait
 * get a little slack (NO_HZ idle accounting can step back slightly). */
static void assert_between(uint64_t lo, uint64_t v, uint64_t hi, int s, uint64_t slack)
{
	if (s != SYS_CPU_IDLE && s != SYS_CPU_IOWAIT)
		slack = 0;
	if (v + slack < lo || v > hi + slack)
		fail_msg("%s: ours %llu, libproc2 %llu..%llu", states[s], (unsigned long long)v,
			 (unsigned long long)lo, (unsigned long long)hi);
}

static void test_live_vs_libproc2(void **state)
{
	static struct lp_sample before, after;
	struct sfx *f = sfx_new("/");
	const struct event *ev;
	void *st;
	int s;

	(void)state;
	f->cfg.cpu_ticks = true;
	f->cfg.stats_cpu_per_core = true;
	st = sfx_create(f, &sys_cpu_metricset);
	lp_read(&before);
	sfx_sample(f, &sys_cpu_metricset, st, 0);
	lp_read(&after);

	ev = sfx_event(f, "system.cpu", 0);
	assert_non_null(ev);
	assert_int_equal(before.ncpu, after.ncpu); /* no hotplug during the test */
	assert_int_equal(sfx_uint(ev, "system.cpu.cores"), (uint64_t)after.ncpu);
	for (s = 0; s < SYS_CPU_NSTATES; s++)
		assert_between(before.sum[s], state_uint(ev, "system.cpu.", s, ".ticks"),
			       after.sum[s], s, (uint64_t)after.ncpu * 2);
	assert_int_equal(sfx_count(f, "system.core"), (size_t)after.ncpu);
	for (int i = 0; i < after.ncpu; i++) {
		assert_int_equal(before.id[i], after.id[i]);
		ev = core_event(f, (uint64_t)after.id[i]);
		for (s = 0; s < SYS_CPU_NSTATES; s++)
			assert_between(before.cpu[i][s],
				       state_uint(ev, "system.core.", s, ".ticks"), after.cpu[i][s],
				       s, 2);
	}
	sys_cpu_metricset.destroy(st);
	sfx_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_line),
	    cmocka_unit_test(test_frac),
	    cmocka_unit_test(test_ticks_ms),
	    cmocka_unit_test(test_first_sample),
	    cmocka_unit_test(test_ticks_legacy_per_core),
	    cmocka_unit_test(test_old_kernel),
	    cmocka_unit_test(test_two_samples),
	    cmocka_unit_test(test_counter_backwards),
	    cmocka_unit_test(test_no_time_passed),
	    cmocka_unit_test(test_hotplug),
	    cmocka_unit_test(test_core_id_cap),
	    cmocka_unit_test(test_descriptor_kept_open),
	    cmocka_unit_test(test_malformed),
	    cmocka_unit_test(test_create_without_stat),
	    cmocka_unit_test(test_live_vs_libproc2),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
