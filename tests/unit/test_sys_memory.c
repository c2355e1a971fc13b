/* test_sys_memory.c — the memory and load metricsets (sys/memory.c, sys/load.c) on
 * fixture trees (tests/fixtures/proc/mem_*, load_*): every field against figures
 * worked out by hand from the fixture, the kernel without MemAvailable, without
 * swap or huge pages, legacy Topbeat names, malformed and hostile files in a
 * temporary root rewritten under the open descriptor — and this host's
 * /proc/meminfo and /proc/loadavg against libproc2's reading of them. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <libproc2/meminfo.h>
#include <libproc2/misc.h>

#include "hostbeat/metrics.h"
#include "sys_fixture.h"

#define FIX "tests/fixtures/proc/"
#define KIB 1024ull

/* ---- memory ---------------------------------------------------------------- */

static void test_memory_basic(void **state)
{
	struct sfx *f = sfx_new(FIX "mem_basic");
	const struct event *ev;
	void *st;

	(void)state;
	st = sfx_create(f, &sys_memory_metricset);
	sfx_sample(f, &sys_memory_metricset, st, 0);
	assert_int_equal(sfx_count(f, "system.memory"), 1);
	ev = sfx_event(f, "system.memory", 0);
	assert_string_equal(sfx_str(ev, "type"), "system");
	assert_int_equal(sfx_uint(ev, "system.memory.total"), 16310856 * KIB);
	assert_int_equal(sfx_uint(ev, "system.memory.free"), 1203344 * KIB);
	assert_int_equal(sfx_uint(ev, "system.memory.cached"), 7711020 * KIB); /* not SwapCached */
	assert_int_equal(sfx_uint(ev, "system.memory.buffers"), 402112 * KIB);
	assert_int_equal(sfx_uint(ev, "system.memory.used.bytes"), 15470092288ull);
	assert_near(sfx_double(ev, "system.memory.used.pct"), 0.9262, 1e-9);
	/* MemAvailable */
	assert_int_equal(sfx_uint(ev, "system.memory.actual.free"), 9821432 * KIB);
	assert_int_equal(sfx_uint(ev, "system.memory.actual.used.bytes"), 6645170176ull);
	assert_near(sfx_double(ev, "system.memory.actual.used.pct"), 0.3979, 1e-9);
	assert_int_equal(sfx_uint(ev, "system.memory.swap.total"), 8388604 * KIB);
	assert_int_equal(sfx_uint(ev, "system.memory.swap.free"), 8126460 * KIB);
	assert_int_equal(sfx_uint(ev, "system.memory.swap.used.bytes"), 268435456ull);
	assert_near(sfx_double(ev, "system.memory.swap.used.pct"), 0.0313, 1e-9);
	/* huge pages: counts, except default_size and used.bytes */
	assert_int_equal(sfx_uint(ev, "system.memory.hugepages.total"), 512);
	assert_int_equal(sfx_uint(ev, "system.memory.hugepages.free"), 100);
	assert_int_equal(sfx_uint(ev, "system.memory.hugepages.reserved"), 20);
	assert_int_equal(sfx_uint(ev, "system.memory.hugepages.surplus"), 3);
	assert_int_equal(sfx_uint(ev, "system.memory.hugepages.default_size"), 2048 * KIB);
	assert_int_equal(sfx_uint(ev, "system.memory.hugepages.used.bytes"), 412 * 2048 * KIB);
	assert_near(sfx_double(ev, "system.memory.hugepages.used.pct"), 0.8047, 1e-9);
	/* no legacy names unless asked */
	assert_false(sfx_has(ev, "mem.total"));
	assert_false(sfx_has(ev, "swap.total"));
	sys_memory_metricset.destroy(st);
	sfx_free(f);
}

/* Linux 2.6.32: no MemAvailable → actual.free = free + buffers + cached. */
static void test_memory_old_kernel(void **state)
{
	struct sfx *f = sfx_new(FIX "mem_old_kernel");
	const struct event *ev;
	void *st;

	(void)state;
	st = sfx_create(f, &sys_memory_metricset);
	sfx_sample(f, &sys_memory_metricset, st, 0);
	ev = sfx_event(f, "system.memory", 0);
	assert_non_null(ev);
	assert_int_equal(sfx_uint(ev, "system.memory.actual.free"),
			 (301228 + 188412 + 1620104) * KIB);
	assert_int_equal(sfx_uint(ev, "system.memory.actual.used.bytes"), 1858514944ull);
	assert_near(sfx_double(ev, "system.memory.actual.used.pct"), 0.4624, 1e-9);
	assert_near(sfx_double(ev, "system.memory.used.pct"), 0.9232, 1e-9);
	assert_near(sfx_double(ev, "system.memory.swap.used.pct"), 0.1073, 1e-9);
	/* huge pages configured but none reserved: 0 %, not NaN */
	assert_int_equal(sfx_uint(ev, "system.memory.hugepages.total"), 0);
	assert_int_equal(sfx_uint(ev, "system.memory.hugepages.used.bytes"), 0);
	assert_near(sfx_double(ev, "system.memory.hugepages.used.pct"), 0, 0);
	assert_int_equal(sfx_uint(ev, "system.memory.hugepages.default_size"), 2097152);
	sys_memory_metricset.destroy(st);
	sfx_free(f);
}

/* No swap device, a kernel without huge page support. */
static void test_memory_no_swap_no_huge(void **state)
{
	struct sfx *f = sfx_new(FIX "mem_no_swap_no_huge");
	const struct event *ev;
	void *st;

	(void)state;
	f->ctx.legacy = true;
	st = sfx_create(f, &sys_memory_metricset);
	sfx_sample(f, &sys_memory_metricset, st, 0);
	ev = sfx_event(f, "system.memory", 0);
	assert_non_null(ev);
	assert_int_equal(sfx_uint(ev, "system.memory.swap.total"), 0);
	assert_int_equal(sfx_uint(ev, "system.memory.swap.used.bytes"), 0);
	assert_near(sfx_double(ev, "system.memory.swap.used.pct"), 0, 0);
	assert_near(sfx_double(ev, "swap.used_p"), 0, 0);
	assert_false(sfx_has(ev, "system.memory.hugepages.total"));
	assert_false(sfx_has(ev, "system.memory.hugepages.used.bytes"));
	assert_near(sfx_double(ev, "system.memory.actual.used.pct"), 0.387, 1e-9);
	sys_memory_metricset.destroy(st);
	sfx_free(f);
}

static void test_memory_legacy(void **state)
{
	struct sfx *f = sfx_new_cfg(FIX "mem_basic", "legacy_fields: true");
	const struct event *ev;
	void *st;

	(void)state;
	assert_true(f->ctx.legacy);
	st = sfx_create(f, &sys_memory_metricset);
	sfx_sample(f, &sys_memory_metricset, st, 0);
	ev = sfx_event(f, "system.memory", 0);
	assert_non_null(ev);
	assert_int_equal(sfx_uint(ev, "mem.total"), 16310856 * KIB);
	assert_int_equal(sfx_uint(ev, "mem.used"), 15470092288ull);
	assert_int_equal(sfx_uint(ev, "mem.free"), 1203344 * KIB);
	assert_near(sfx_double(ev, "mem.used_p"), 0.9262, 1e-9);
	assert_int_equal(sfx_uint(ev, "mem.actual_used"), 6645170176ull);
	assert_int_equal(sfx_uint(ev, "mem.actual_free"), 9821432 * KIB);
	assert_near(sfx_double(ev, "mem.actual_used_p"), 0.3979, 1e-9);
	assert_int_equal(sfx_uint(ev, "swap.total"), 8388604 * KIB);
	assert_int_equal(sfx_uint(ev, "swap.used"), 268435456ull);
	assert_int_equal(sfx_uint(ev, "swap.free"), 8126460 * KIB);
	assert_near(sfx_double(ev, "swap.used_p"), 0.0313, 1e-9);
	/* the ECS names are still there */
	assert_int_equal(sfx_uint(ev, "system.memory.total"), 16310856 * KIB);
	sys_memory_metricset.destroy(st);
	sfx_free(f);
}

static void test_memory_malformed(void **state)
{
	static const char *const bad[] = {
	    "",
	    "MemFree: 100 kB\nBuffers: 1 kB\n",                   /* no MemTotal */
	    "MemTotal: 1000 kB\nBuffers: 1 kB\n",                 /* no MemFree */
	    "MemTotal: 0 kB\nMemFree: 0 kB\n",                    /* nothing to divide by */
	    "MemTotal: abc kB\nMemFree: 100 kB\n",                /* not a number */
	    "MemTotal: 99999999999999999999 kB\nMemFree: 1 kB\n", /* overflows */
	};
	uint64_t errs =
	    metrics_get("sys.memory.parse_errors") + metrics_get("sys.memory.read_errors");
	struct troot r;
	struct sfx *f;
	const struct event *ev;
	void *st;

	(void)state;
	troot_new(&r);
	troot_write(&r, "proc/meminfo", "MemTotal: 1000 kB\nMemFree: 250 kB\n");
	f = sfx_new(r.dir);
	st = sfx_create(f, &sys_memory_metricset);
	assert_each_rejected(f, &sys_memory_metricset, st, &r, "proc/meminfo", bad, NS_PER_SEC);
	assert_int_equal(metrics_get("sys.memory.parse_errors") +
			     metrics_get("sys.memory.read_errors"),
			 errs + sizeof(bad) / sizeof(bad[0]));

	/* the minimum: MemTotal and MemFree; the rest reads as absent / 0 */
	troot_write(&r, "proc/meminfo", "MemTotal: 1000 kB\nMemFree: 250 kB\n");
	sfx_sample(f, &sys_memory_metricset, st, NS_PER_SEC);
	ev = sfx_event(f, "system.memory", 0);
	assert_non_null(ev);
	assert_int_equal(sfx_uint(ev, "system.memory.used.bytes"), 750 * KIB);
	assert_near(sfx_double(ev, "system.memory.used.pct"), 0.75, 1e-9);
	assert_int_equal(sfx_uint(ev, "system.memory.actual.free"), 250 * KIB);
	assert_false(sfx_has(ev, "system.memory.swap.total"));
	assert_false(sfx_has(ev, "system.memory.hugepages.total"));

	/* hostile figures: free above total, sums and products that would wrap */
	troot_write(&r, "proc/meminfo",
		    "MemTotal: 1000 kB\nMemFree: 5000 kB\nBuffers: 18014398509481983 kB\n"
		    "Cached: 18014398509481983 kB\nSwapTotal: 10 kB\nSwapFree: 20 kB\n"
		    "HugePages_Total: 18446744073709551615\nHugePages_Free: 0\n"
		    "Hugepagesize: 2048 kB\n");
	sfx_sample(f, &sys_memory_metricset, st, NS_PER_SEC);
	ev = sfx_event(f, "system.memory", 0);
	assert_non_null(ev);
	assert_int_equal(sfx_uint(ev, "system.memory.used.bytes"), 0);
	assert_int_equal(sfx_uint(ev, "system.memory.actual.free"), UINT64_MAX);
	assert_int_equal(sfx_uint(ev, "system.memory.actual.used.bytes"), 0);
	assert_int_equal(sfx_uint(ev, "system.memory.swap.used.bytes"), 0);
	assert_int_equal(sfx_uint(ev, "system.memory.hugepages.used.bytes"), UINT64_MAX);
	assert_near(sfx_double(ev, "system.memory.hugepages.used.pct"), 1, 0);

	sys_memory_metricset.destroy(st);
	sfx_free(f);
	troot_free(&r);
}

/* ---- load ------------------------------------------------------------------ */

static void test_load_basic(void **state)
{
	struct sfx *f = sfx_new(FIX "load_basic");
	const struct event *ev;
	void *st;

	(void)state;
	f->ctx.ncpu = 4;
	st = sfx_create(f, &sys_load_metricset);
	sfx_sample(f, &sys_load_metricset, st, 0);
	assert_int_equal(sfx_count(f, "system.load"), 1);
	ev = sfx_event(f, "system.load", 0);
	assert_string_equal(sfx_str(ev, "type"), "system");
	assert_near(sfx_double(ev, "system.load.1"), 2.33, 1e-12);
	assert_near(sfx_double(ev, "system.load.5"), 1.85, 1e-12);
	assert_near(sfx_double(ev, "system.load.15"), 0.07, 1e-12);
	assert_near(sfx_double(ev, "system.load.norm.1"), 0.5825, 1e-12);
	assert_near(sfx_double(ev, "system.load.norm.5"), 0.4625, 1e-12);
	assert_near(sfx_double(ev, "system.load.norm.15"), 0.0175, 1e-12);
	assert_int_equal(sfx_uint(ev, "system.load.cores"), 4);
	assert_false(sfx_has(ev, "load.load1"));

	/* legacy names; the core count is the sampler's, read at each sample */
	f->ctx.legacy = true;
	f->ctx.ncpu = 2;
	sfx_sample(f, &sys_load_metricset, st, 10 * NS_PER_SEC);
	ev = sfx_event(f, "system.load", 0);
	assert_near(sfx_double(ev, "load.load1"), 2.33, 1e-12);
	assert_near(sfx_double(ev, "load.load5"), 1.85, 1e-12);
	assert_near(sfx_double(ev, "load.load15"), 0.07, 1e-12);
	assert_near(sfx_double(ev, "system.load.norm.1"), 1.165, 1e-12);
	assert_int_equal(sfx_uint(ev, "system.load.cores"), 2);
	sys_load_metricset.destroy(st);
	sfx_free(f);
}

static void test_load_malformed(void **state)
{
	static const char *const bad[] = {
	    "", "\n", "2.33 1.85\n", "2.33 x 0.07 1/2 3\n", "-1.00 1.85 0.07 1/2 3\n", "1,5 2 3\n",
	};
	uint64_t errs = metrics_get("sys.load.parse_errors") + metrics_get("sys.load.read_errors");
	struct troot r;
	struct sfx *f;
	const struct event *ev;
	void *st;

	(void)state;
	troot_new(&r);
	troot_write(&r, "proc/loadavg", "0.00 0.00 0.00 1/1 1\n");
	f = sfx_new(r.dir);
	f->ctx.ncpu = 0; /* unknown: counted as one core, no division by zero */
	st = sfx_create(f, &sys_load_metricset);
	assert_each_rejected(f, &sys_load_metricset, st, &r, "proc/loadavg", bad, NS_PER_SEC);
	assert_int_equal(metrics_get("sys.load.parse_errors") + metrics_get("sys.load.read_errors"),
			 errs + sizeof(bad) / sizeof(bad[0]));
	/* the same open descriptor sees the next good content; no trailing newline */
	troot_write(&r, "proc/loadavg", "12.50 3.00 0.00 7/300 4242");
	sfx_sample(f, &sys_load_metricset, st, NS_PER_SEC);
	ev = sfx_event(f, "system.load", 0);
	assert_non_null(ev);
	assert_near(sfx_double(ev, "system.load.1"), 12.5, 1e-12);
	assert_near(sfx_double(ev, "system.load.norm.1"), 12.5, 1e-12);
	assert_int_equal(sfx_uint(ev, "system.load.cores"), 1);
	sys_load_metricset.destroy(st);
	sfx_free(f);
	troot_free(&r);
}

/* Nothing to read under the root: create() says so, the sampler goes on without. */
static void test_create_missing(void **state)
{
	struct troot r;
	struct sfx *f;

	(void)state;
	troot_new(&r);
	troot_mkdir(&r, "proc");
	f = sfx_new(r.dir);
	assert_null(sys_memory_metricset.create(&f->ctx));
	assert_null(sys_load_metricset.create(&f->ctx));
	sys_memory_metricset.destroy(NULL);
	sys_load_metricset.destroy(NULL);
	sfx_free(f);
	troot_free(&r);
}

/* ---- this host, against libproc2 ------------------------------------------ */

static enum meminfo_item lp_items[] = {
    MEMINFO_MEM_TOTAL,     MEMINFO_MEM_FREE,      MEMINFO_MEM_AVAILABLE,    MEMINFO_MEM_BUFFERS,
    MEMINFO_MEM_CACHED,    MEMINFO_SWAP_TOTAL,    MEMINFO_SWAP_FREE,        MEMINFO_MEM_HUGE_TOTAL,
    MEMINFO_MEM_HUGE_FREE, MEMINFO_MEM_HUGE_RSVD, MEMINFO_MEM_HUGE_SURPLUS, MEMINFO_MEM_HUGE_SIZE,
};
#define LP_N ((int)(sizeof(lp_items) / sizeof(lp_items[0])))

static const char *const our_keys[LP_N] = {
    "system.memory.total",
    "system.memory.free",
    "system.memory.actual.free",
    "system.memory.buffers",
    "system.memory.cached",
    "system.memory.swap.total",
    "system.memory.swap.free",
    "system.memory.hugepages.total",
    "system.memory.hugepages.free",
    "system.memory.hugepages.reserved",
    "system.memory.hugepages.surplus",
    "system.memory.hugepages.default_size",
};
/* libproc2 gives kB lines in KiB and the HugePages_* counts as they are. */
static const uint64_t lp_scale[LP_N] = {KIB, KIB, KIB, KIB, KIB, KIB, KIB, 1, 1, 1, 1, KIB};
/* Figures that must not move while the test runs. */
static const bool exact[LP_N] = {true,  false, false, false, false, true,
				 false, true,  false, false, false, true};

static void lp_meminfo(uint64_t out[LP_N])
{
	struct meminfo_info *info = NULL;
	struct meminfo_stack *stk;

	assert_true(procps_meminfo_new(&info) >= 0);
	stk = procps_meminfo_select(info, lp_items, LP_N);
	assert_non_null(stk);
	for (int i = 0; i < LP_N; i++)
		out[i] = (uint64_t)MEMINFO_VAL(i, ul_int, stk, info) * lp_scale[i];
	procps_meminfo_unref(&info);
}

static void test_live_meminfo_vs_libproc2(void **state)
{
	uint64_t before[LP_N], after[LP_N], slack;
	struct sfx *f = sfx_new("/");
	const struct event *ev;
	void *st;

	(void)state;
	st = sfx_create(f, &sys_memory_metricset);
	lp_meminfo(before);
	sfx_sample(f, &sys_memory_metricset, st, 0);
	lp_meminfo(after);
	ev = sfx_event(f, "system.memory", 0);
	assert_non_null(ev);
	/* the others move between reads: within 2 % of MemTotal of the readings around ours */
	slack = before[0] / 50;
	for (int i = 0; i < LP_N; i++) {
		uint64_t lo = before[i] < after[i] ? before[i] : after[i];
		uint64_t hi = before[i] < after[i] ? after[i] : before[i];
		uint64_t v;

		if (i >= 7 && !sfx_has(ev, our_keys[i]))
			continue; /* a kernel without huge pages: libproc2 says 0 */
		v = sfx_uint(ev, our_keys[i]);
		if (exact[i] ? (v != before[i] || v != after[i])
			     : (v + slack < lo || v > hi + slack))
			fail_msg("%s: ours %llu, libproc2 %llu..%llu", our_keys[i],
				 (unsigned long long)v, (unsigned long long)lo,
				 (unsigned long long)hi);
	}
	assert_int_equal(sfx_uint(ev, "system.memory.used.bytes"),
			 sfx_uint(ev, "system.memory.total") - sfx_uint(ev, "system.memory.free"));
	sys_memory_metricset.destroy(st);
	sfx_free(f);
}

static void test_live_loadavg_vs_libproc2(void **state)
{
	double b[3], a[3], ours[3];
	struct sfx *f = sfx_new("/");
	const struct event *ev;
	void *st;

	(void)state;
	st = sfx_create(f, &sys_load_metricset);
	assert_int_equal(procps_loadavg(&b[0], &b[1], &b[2]), 0);
	sfx_sample(f, &sys_load_metricset, st, 0);
	assert_int_equal(procps_loadavg(&a[0], &a[1], &a[2]), 0);
	ev = sfx_event(f, "system.load", 0);
	assert_non_null(ev);
	ours[0] = sfx_double(ev, "system.load.1");
	ours[1] = sfx_double(ev, "system.load.5");
	ours[2] = sfx_double(ev, "system.load.15");
	/* the kernel recomputes every 5 s: ours equals one of the readings around it */
	for (int i = 0; i < 3; i++)
		if (fabs(ours[i] - b[i]) > 0.005 && fabs(ours[i] - a[i]) > 0.005)
			fail_msg("load %d: ours %.2f, libproc2 %.2f / %.2f", i, ours[i], b[i],
				 a[i]);
	sys_load_metricset.destroy(st);
	sfx_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_memory_basic),
	    cmocka_unit_test(test_memory_old_kernel),
	    cmocka_unit_test(test_memory_no_swap_no_huge),
	    cmocka_unit_test(test_memory_legacy),
	    cmocka_unit_test(test_memory_malformed),
	    cmocka_unit_test(test_load_basic),
	    cmocka_unit_test(test_load_malformed),
	    cmocka_unit_test(test_create_missing),
	    cmocka_unit_test(test_live_meminfo_vs_libproc2),
	    cmocka_unit_test(test_live_loadavg_vs_libproc2),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
