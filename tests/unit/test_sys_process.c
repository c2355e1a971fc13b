/* test_sys_process.c — the process metricset (sys/process.c): the stat parser and the
 * state words on synthetic lines; the fixture tree tests/fixtures/proc/proc_basic
 * (odd comm names, a zombie, kernel threads, docker cgroups v1 and v2, a process
 * that vanished mid-read, a thread group, a numeric-only uid, capped arguments);
 * and, on copies written by the test in a temporary directory, CPU rates between
 * samples, pid reuse, the per-process cache, passwd reloads, the table cap, the
 * procs filter and EACCES. A benchmark against the real /proc runs when
 * HB_PROC_BENCH=<processes> is set. */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "hostbeat/clock.h"
#include "hostbeat/config.h"
#include "hostbeat/event.h"
#include "hostbeat/metrics.h"
#include "hostbeat/sys.h"
#include "sys/process.h"
#include "sys_fixture.h"

#define FIX "tests/fixtures/proc/proc_basic"
#define DS "system.process"
#define HEX1 "3f8a1c2b9d0e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a"
#define HEX2 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define FIX_PROCS 10 /* pids in proc_basic that are reported (400 has only stat) */

/* ---- helpers --------------------------------------------------------------- */

static int setup(void **state)
{
	(void)state;
	metrics_reset();
	return 0;
}

static const struct event *by_pid(const struct sfx *f, uint64_t pid)
{
	const struct event *ev = sfx_event_where(f, DS, "process.pid", pid);

	if (!ev)
		fail_msg("no event for pid %llu", (unsigned long long)pid);
	return ev;
}

static size_t arr_count(const struct event *ev, const char *key)
{
	size_t n = 0;

	for (size_t i = 0; i < ev->nfields; i++)
		n += strcmp(ev->fields[i].key, key) == 0 && !ev->fields[i].member;
	return n;
}

/* The idx-th element of the array at key equals s (len bytes). */
static void assert_arr(const struct event *ev, const char *key, size_t idx, const char *s,
		       size_t len)
{
	for (size_t i = 0; i < ev->nfields; i++) {
		const struct ev_field *x = &ev->fields[i];

		if (strcmp(x->key, key) != 0 || idx-- != 0)
			continue;
		assert_int_equal(x->type, EV_T_STR);
		assert_true(x->flags & EVF_ARRAY);
		assert_int_equal(x->v.s.len, len);
		assert_memory_equal(x->v.s.p, s, len);
		return;
	}
	fail_msg("%s has no element %zu", key, idx);
}

static void assert_str_bytes(const struct event *ev, const char *key, const char *s, size_t len)
{
	const struct ev_field *x = sfx_field(ev, key);

	assert_int_equal(x->type, EV_T_STR);
	assert_int_equal(x->v.s.len, len);
	assert_memory_equal(x->v.s.p, s, len);
}

/* A copy of the fixture tree in a fresh temporary root. */
static void copy_fixture(struct troot *r)
{
	char cmd[512];

	troot_new(r);
	snprintf(cmd, sizeof(cmd), "cp -a " FIX "/. %s/", r->dir);
	assert_int_equal(system(cmd), 0);
}

/* proc/<pid>/stat with the fields the metricset reads; the others as in the fixture. */
static void put_stat(const struct troot *r, int pid, const char *comm, char state, uint64_t utime,
		     uint64_t stime, uint64_t start)
{
	char rel[64], line[512];
	int n;

	snprintf(rel, sizeof(rel), "proc/%d/stat", pid);
	n = snprintf(line, sizeof(line),
		     "%d (%s) %c 1 %d %d 0 -1 4194560 120 0 3 0 %llu %llu 0 0 20 0 1 0 %llu "
		     "10240000 1000 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 "
		     "0 0 0 0 0 0 0 0\n",
		     pid, comm, state, pid, pid, (unsigned long long)utime,
		     (unsigned long long)stime, (unsigned long long)start);
	troot_write_len(r, rel, line, (size_t)n);
}

/* Mode 0: unreadable to anyone but root. */
static void make_unreadable(const struct troot *r, const char *rel)
{
	char path[512];

	assert_int_equal(chmod(troot_path(r, rel, path, sizeof(path)), 0), 0);
}

/* ---- pure parts -------------------------------------------------------------- */

static void test_parse_stat(void **state)
{
	/* field n carries the value n (1-based) so a shifted position shows */
	static const char line[] = "1234 (a) b (c) S 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 "
				   "21 22 23 24 25 26\n";
	static const char tight[] = "7 ()) R 1 7 7 0 -1 0 0 0 0 0 1 2 0 0 20 0 3 0 4 5 6";
	struct sys_proc_stat st;
	char longer[300];
	int n;

	(void)state;
	assert_int_equal(sys_process_parse_stat(line, strlen(line), &st), 0);
	assert_int_equal(st.pid, 1234);
	assert_string_equal(st.comm, "a) b (c");
	assert_int_equal(st.comm_len, 7);
	assert_int_equal(st.state, 'S');
	assert_int_equal(st.ppid, 4);
	assert_int_equal(st.pgrp, 5);
	assert_int_equal(st.flags, 9);
	assert_int_equal(st.utime, 14);
	assert_int_equal(st.stime, 15);
	assert_int_equal(st.num_threads, 20);
	assert_int_equal(st.starttime, 22);
	assert_int_equal(st.vsize, 23);
	assert_int_equal(st.rss, 24);

	/* comm ")" and a line ending exactly after field 24, without '\n' */
	assert_int_equal(sys_process_parse_stat(tight, strlen(tight), &st), 0);
	assert_string_equal(st.comm, ")");
	assert_int_equal(st.utime, 1);
	assert_int_equal(st.stime, 2);
	assert_int_equal(st.num_threads, 3);
	assert_int_equal(st.starttime, 4);
	assert_int_equal(st.rss, 6);

	/* a comm longer than SYS_PROC_COMM_MAX is cut, the fields still found */
	n = snprintf(longer, sizeof(longer),
		     "9 (%0100d) S 1 9 9 0 -1 0 0 0 0 0 7 8 0 0 20 0 1 0 "
		     "99 1 2\n",
		     0);
	assert_int_equal(sys_process_parse_stat(longer, (size_t)n, &st), 0);
	assert_int_equal(st.comm_len, SYS_PROC_COMM_MAX);
	assert_int_equal(strlen(st.comm), SYS_PROC_COMM_MAX);
	assert_int_equal(st.starttime, 99);

	/* malformed: ends before rss, no ')', no '(', no pid, a letter where a number is */
	assert_int_equal(sys_process_parse_stat(tight, strlen(tight) - 2, &st), -EINVAL);
	assert_int_equal(sys_process_parse_stat("1 (x S 1", 8, &st), -EINVAL);
	assert_int_equal(sys_process_parse_stat("1 x) S 1", 8, &st), -EINVAL);
	assert_int_equal(sys_process_parse_stat("(x) S 1", 7, &st), -EINVAL);
	assert_int_equal(sys_process_parse_stat("", 0, &st), -EINVAL);
	{
		static const char bad[] = "7 (x) R 1 7 7 0 -1 0 0 0 0 0 1 z 0 0 20 0 3 0 4 5 6";

		assert_int_equal(sys_process_parse_stat(bad, strlen(bad), &st), -EINVAL);
	}
	{
		static const char two[] = "7 (x) RS 1 7 7 0 -1 0 0 0 0 0 1 2 0 0 20 0 3 0 4 5 6";

		assert_int_equal(sys_process_parse_stat(two, strlen(two), &st), -EINVAL);
	}
}

static void test_state_names(void **state)
{
	static const struct {
		char c;
		const char *word;
	} cases[] = {
	    {'R', "running"},      {'S', "sleeping"}, {'D', "disk_sleep"}, {'T', "stopped"},
	    {'t', "tracing_stop"}, {'Z', "zombie"},   {'X', "dead"},       {'I', "idle"},
	    {'P', "parked"},       {'W', "waking"},   {'K', "wakekill"},   {'x', "unknown"},
	    {'?', "unknown"},      {'\0', "unknown"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_string_equal(sys_process_state_name(cases[i].c), cases[i].word);
}

/* ---- the fixture tree ----------------------------------------------------------- */

static void test_fixture(void **state)
{
	struct sfx *f = sfx_new(FIX);
	const struct event *ev;
	void *st;

	(void)state;
	st = sfx_create(f, &sys_process_metricset);
	sfx_sample(f, &sys_process_metricset, st, 0);
	assert_int_equal(f->dropped, 0);
	assert_int_equal(sfx_count(f, DS), FIX_PROCS);
	assert_int_equal(metrics_get("sys.process.vanished"), 1); /* 400: stat, no statm */
	assert_null(sfx_event_where(f, DS, "process.pid", 400));

	/* init: everything */
	ev = by_pid(f, 1);
	assert_string_equal(sfx_str(ev, "type"), "process");
	assert_string_equal(sfx_str(ev, "process.name"), "systemd");
	assert_string_equal(sfx_str(ev, "process.state"), "sleeping");
	assert_string_equal(sfx_str(ev, "system.process.state"), "sleeping");
	assert_int_equal(sfx_uint(ev, "process.parent.pid"), 0);
	assert_int_equal(sfx_uint(ev, "process.pgid"), 1);
	assert_string_equal(sfx_str(ev, "user.name"), "root"); /* not toor: first line wins */
	assert_int_equal(arr_count(ev, "process.args"), 2);
	assert_arr(ev, "process.args", 0, "/sbin/init", 10);
	assert_arr(ev, "process.args", 1, "splash", 6);
	assert_string_equal(sfx_str(ev, "process.command_line"), "/sbin/init splash");
	assert_string_equal(sfx_str(ev, "system.process.cmdline"), "/sbin/init splash");
	assert_string_equal(sfx_str(ev, "process.executable"), "/usr/lib/systemd/systemd");
	assert_string_equal(sfx_str(ev, "process.working_directory"), "/");
	/* starttime 1 tick = 10 ms after boot */
	assert_int_equal(sfx_field(ev, "process.start")->type, EV_T_TIME);
	assert_int_equal(sfx_field(ev, "process.start")->v.u, f->ctx.boot_time_ns + 10 * NS_PER_MS);
	assert_int_equal(sfx_field(ev, "system.process.cpu.start_time")->v.u,
			 f->ctx.boot_time_ns + 10 * NS_PER_MS);
	assert_int_equal(sfx_uint(ev, "process.thread.count"), 1);
	assert_int_equal(sfx_uint(ev, "system.process.num_threads"), 1);
	assert_int_equal(sfx_uint(ev, "system.process.cpu.total.value"), 15000); /* 1500 ticks */
	assert_false(sfx_has(ev, "system.process.cpu.total.pct"));               /* first sight */
	assert_false(sfx_has(ev, "process.cpu.pct"));
	assert_false(sfx_has(ev, "system.process.cpu.user.ticks")); /* cpu_ticks off */
	assert_int_equal(sfx_uint(ev, "system.process.memory.size"), 5000 * 4096);
	assert_int_equal(sfx_uint(ev, "system.process.memory.rss.bytes"), 3000 * 4096);
	assert_int_equal(sfx_uint(ev, "system.process.memory.share"), 2000 * 4096);
	assert_false(sfx_has(ev, "system.process.memory.rss.pct")); /* MemTotal unknown */
	assert_false(sfx_has(ev, "process.memory.pct"));
	assert_int_equal(sfx_uint(ev, "system.process.fd.open"), 4);
	assert_int_equal(sfx_uint(ev, "system.process.fd.limit.soft"), 1024);
	assert_int_equal(sfx_uint(ev, "system.process.fd.limit.hard"), 524288);
	assert_false(sfx_has(ev, "container.id"));
	assert_false(sfx_has(ev, "proc.pid")); /* legacy off */

	/* comm holding ") (" and spaces */
	ev = by_pid(f, 100);
	assert_string_equal(sfx_str(ev, "process.name"), "a) b (c");
	assert_string_equal(sfx_str(ev, "user.name"), "alice");
	assert_int_equal(sfx_uint(ev, "process.parent.pid"), 1);
	assert_arr(ev, "process.args", 0, "/opt/weird/a) b (c", 18);
	assert_arr(ev, "process.args", 1, "--flag", 6);
	assert_string_equal(sfx_str(ev, "process.executable"), "/opt/weird/a) b (c");
	/* start: starttime 360000 ticks = 1 h after boot */
	assert_int_equal(sfx_field(ev, "process.start")->v.u, SFX_T0);

	/* an invalid UTF-8 byte passes through as bytes (the encoder repairs it) */
	ev = by_pid(f, 101);
	assert_str_bytes(ev, "process.name", "bad\xffname", 8);
	assert_str_bytes(ev, "process.executable", "/home/alice/bad\xffname", 20);
	assert_string_equal(sfx_str(ev, "process.state"), "running");

	/* zombie: no args, no command line, no links */
	ev = by_pid(f, 200);
	assert_string_equal(sfx_str(ev, "process.state"), "zombie");
	assert_int_equal(sfx_uint(ev, "process.parent.pid"), 100);
	assert_int_equal(arr_count(ev, "process.args"), 0);
	assert_false(sfx_has(ev, "process.command_line"));
	assert_false(sfx_has(ev, "system.process.cmdline"));
	assert_false(sfx_has(ev, "process.executable"));
	assert_false(sfx_has(ev, "process.working_directory"));
	assert_int_equal(sfx_uint(ev, "system.process.memory.rss.bytes"), 0);
	assert_int_equal(sfx_uint(ev, "system.process.fd.open"), 0);

	/* kernel threads */
	ev = by_pid(f, 42);
	assert_string_equal(sfx_str(ev, "process.name"), "kworker/0:1-events");
	assert_string_equal(sfx_str(ev, "process.state"), "idle");
	assert_int_equal(sfx_uint(ev, "process.parent.pid"), 2);
	assert_int_equal(arr_count(ev, "process.args"), 0);
	assert_false(sfx_has(ev, "process.command_line"));
	assert_false(sfx_has(ev, "process.executable"));
	assert_false(sfx_has(ev, "container.id"));
	ev = by_pid(f, 2);
	assert_string_equal(sfx_str(ev, "process.name"), "kthreadd");
	assert_false(sfx_has(ev, "process.command_line"));
	/* links missing: 2, 42 and 200 have no exe and no cwd → 6 */
	assert_int_equal(metrics_get("sys.process.unreadable"), 6);

	/* docker, cgroup v2; an argument holding spaces */
	ev = by_pid(f, 300);
	assert_string_equal(sfx_str(ev, "container.id"), HEX1);
	assert_string_equal(sfx_str(ev, "user.name"), "www-data");
	assert_int_equal(arr_count(ev, "process.args"), 3);
	assert_arr(ev, "process.args", 0, "nginx: master process", 21);
	assert_arr(ev, "process.args", 2, "daemon off;", 11);
	assert_string_equal(sfx_str(ev, "process.command_line"),
			    "nginx: master process -g daemon off;");
	assert_int_equal(sfx_uint(ev, "system.process.fd.open"), 9);
	assert_int_equal(sfx_uint(ev, "system.process.fd.limit.soft"), 1048576);

	/* docker, cgroup v1; a uid without a passwd line; "unlimited" fd limits */
	ev = by_pid(f, 301);
	assert_string_equal(sfx_str(ev, "container.id"), HEX2);
	assert_string_equal(sfx_str(ev, "user.name"), "4242");
	assert_string_equal(sfx_str(ev, "process.state"), "disk_sleep");
	assert_false(sfx_has(ev, "system.process.fd.limit.soft"));
	assert_false(sfx_has(ev, "system.process.fd.limit.hard"));

	/* a thread group: one event, its thread count */
	ev = by_pid(f, 500);
	assert_int_equal(sfx_uint(ev, "process.thread.count"), 4);
	assert_int_equal(sfx_uint(ev, "system.process.num_threads"), 4);
	assert_int_equal(sfx_uint(ev, "system.process.fd.open"), 42);
	assert_null(sfx_event_where(f, DS, "process.pid", 501));

	/* 101 arguments: capped at 64 elements; the command line whole (< cmdline_max) */
	ev = by_pid(f, 600);
	assert_int_equal(arr_count(ev, "process.args"), 64);
	assert_arr(ev, "process.args", 63, "arg62-xxxxxxxxxx", 16);
	assert_int_equal(strlen(sfx_str(ev, "process.command_line")), 17 + 100 * 17);
	assert_int_equal(metrics_get("sys.process.truncated"), 1);

	sys_process_metricset.destroy(st);
	sfx_free(f);
}

static void test_cmdline_max(void **state)
{
	struct sfx *f = sfx_new_cfg(FIX, "topbeat.process.cmdline_max: 64");
	const struct event *ev;
	void *st;

	(void)state;
	st = sfx_create(f, &sys_process_metricset);
	sfx_sample(f, &sys_process_metricset, st, 0);
	ev = by_pid(f, 600);
	/* "/usr/bin/longargs\0" (18) + 2 × 17 = 52 bytes, then 12 of the third */
	assert_string_equal(sfx_str(ev, "process.command_line"),
			    "/usr/bin/longargs arg00-xxxxxxxxxx arg01-xxxxxxxxxx arg02-xxxxxx");
	assert_int_equal(arr_count(ev, "process.args"), 4);
	assert_arr(ev, "process.args", 3, "arg02-xxxxxx", 12);
	assert_int_equal(metrics_get("sys.process.truncated"), 1);
	/* shorter ones untouched */
	assert_string_equal(sfx_str(by_pid(f, 1), "process.command_line"), "/sbin/init splash");
	sys_process_metricset.destroy(st);
	sfx_free(f);
}

static void test_legacy_and_ticks(void **state)
{
	struct sfx *f = sfx_new_cfg(FIX, "legacy_fields: true\ntopbeat.stats.cpu_ticks: true\n");
	const struct event *ev;
	void *st;

	(void)state;
	f->ctx.mem_total = 1ull << 30;
	st = sfx_create(f, &sys_process_metricset);
	sfx_sample(f, &sys_process_metricset, st, 0);
	ev = by_pid(f, 300);
	assert_int_equal(sfx_uint(ev, "proc.pid"), 300);
	assert_int_equal(sfx_uint(ev, "proc.ppid"), 1);
	assert_string_equal(sfx_str(ev, "proc.name"), "nginx");
	assert_string_equal(sfx_str(ev, "proc.state"), "sleeping");
	assert_string_equal(sfx_str(ev, "proc.username"), "www-data");
	assert_string_equal(sfx_str(ev, "proc.cmdline"), "nginx: master process -g daemon off;");
	assert_int_equal(sfx_uint(ev, "proc.cpu.user"), 2000); /* 200 ticks at 100 Hz */
	assert_int_equal(sfx_uint(ev, "proc.cpu.system"), 1000);
	assert_int_equal(sfx_uint(ev, "proc.cpu.total"), 3000);
	assert_false(sfx_has(ev, "proc.cpu.total_p"));
	/* starttime 200000 ticks = 2000 s after boot (22:13:20 − 1 h) → 21:46:40 UTC */
	assert_string_equal(sfx_str(ev, "proc.cpu.start_time"), "21:46");
	assert_int_equal(sfx_uint(ev, "proc.mem.size"), 30000 * 4096);
	assert_int_equal(sfx_uint(ev, "proc.mem.rss"), 2000 * 4096);
	assert_int_equal(sfx_uint(ev, "proc.mem.share"), 1500 * 4096);
	assert_near(sfx_double(ev, "proc.mem.rss_p"), 0.0076, 1e-12); /* 8192000/2^30 */
	assert_near(sfx_double(ev, "system.process.memory.rss.pct"), 0.0076, 1e-12);
	assert_near(sfx_double(ev, "process.memory.pct"), 0.0076, 1e-12);
	assert_int_equal(sfx_uint(ev, "system.process.cpu.user.ticks"), 200);
	assert_int_equal(sfx_uint(ev, "system.process.cpu.system.ticks"), 100);
	assert_int_equal(sfx_uint(ev, "system.process.cpu.total.ticks"), 300);
	assert_string_equal(sfx_str(ev, "type"), "process");
	/* a zombie has no username only when its uid is unknown: here it is alice */
	assert_string_equal(sfx_str(by_pid(f, 200), "proc.username"), "alice");
	sys_process_metricset.destroy(st);
	sfx_free(f);
}

static void test_procs_filter(void **state)
{
	struct sfx *f = sfx_new_cfg(FIX, "topbeat.procs: ['^nginx$', 'gres', 'b \\(']");
	void *st;

	(void)state;
	st = sfx_create(f, &sys_process_metricset);
	sfx_sample(f, &sys_process_metricset, st, 0);
	assert_int_equal(sfx_count(f, DS), 3);
	by_pid(f, 300);
	by_pid(f, 301);
	by_pid(f, 100); /* "a) b (c" */
	sys_process_metricset.destroy(st);
	sfx_free(f);

	f = sfx_new_cfg(FIX, "topbeat.procs: []");
	st = sfx_create(f, &sys_process_metricset);
	sfx_sample(f, &sys_process_metricset, st, 0);
	assert_int_equal(sfx_count(f, DS), 0);
	sys_process_metricset.destroy(st);
	sfx_free(f);
}

static void test_bad_regexp(void **state)
{
	struct sfx *f = sfx_new_cfg(FIX, "topbeat.procs: ['ok', '(unclosed']");

	(void)state;
	assert_null(sys_process_metricset.create(&f->ctx));
	sfx_free(f);
}

/* Rates between samples, pid reuse, the per-(pid, starttime) cache, a process that
 * disappears for one sample, MemTotal. */
static void test_rates_and_reuse(void **state)
{
	struct troot r;
	struct sfx *f;
	const struct event *ev;
	void *st;

	(void)state;
	copy_fixture(&r);
	f = sfx_new(r.dir);
	f->ctx.ncpu = 2;
	f->ctx.mem_total = 8ull << 30;
	st = sfx_create(f, &sys_process_metricset);
	sfx_sample(f, &sys_process_metricset, st, 0);
	assert_int_equal(sfx_count(f, DS), FIX_PROCS);

	/* 10 s later: init used 50 ticks (0.5 s) → 0.05 of one core, 0.025 of two */
	put_stat(&r, 1, "systemd", 'S', 1030, 520, 1);
	/* pid 300 is now another process (new starttime) with another command line */
	put_stat(&r, 300, "nginx", 'S', 0, 1, 250000);
	troot_write_len(&r, "proc/300/cmdline", "nginx: worker\0", 14);
	/* 100 changed its argv but is the same process: the cached args stay */
	troot_write_len(&r, "proc/100/cmdline", "changed\0", 8);
	/* 500 is not listed in this sample */
	troot_rename(&r, "proc/500", "proc/gone500");
	sfx_sample(f, &sys_process_metricset, st, 10 * NS_PER_SEC);
	assert_int_equal(sfx_count(f, DS), FIX_PROCS - 1);

	ev = by_pid(f, 1);
	assert_near(sfx_double(ev, "system.process.cpu.total.pct"), 0.05, 1e-12);
	assert_near(sfx_double(ev, "system.process.cpu.total.norm.pct"), 0.025, 1e-12);
	assert_near(sfx_double(ev, "process.cpu.pct"), 0.025, 1e-12);
	assert_int_equal(sfx_uint(ev, "system.process.cpu.total.value"), 15500);
	/* 3000 pages of 8 GiB */
	assert_near(sfx_double(ev, "system.process.memory.rss.pct"), 0.0014, 1e-12);

	ev = by_pid(f, 300);
	assert_false(sfx_has(ev, "system.process.cpu.total.pct")); /* new process */
	assert_int_equal(arr_count(ev, "process.args"), 1);
	assert_arr(ev, "process.args", 0, "nginx: worker", 13);
	assert_int_equal(sfx_field(ev, "process.start")->v.u,
			 f->ctx.boot_time_ns + 2500 * NS_PER_SEC);

	ev = by_pid(f, 100);
	assert_near(sfx_double(ev, "system.process.cpu.total.pct"), 0, 0);
	assert_arr(ev, "process.args", 0, "/opt/weird/a) b (c", 18);

	/* 500 is back with the same starttime: its entry was dropped, so no rate */
	troot_rename(&r, "proc/gone500", "proc/500");
	put_stat(&r, 1, "systemd", 'S', 1130, 520, 1); /* 100 ticks in 5 s: 0.2 */
	sfx_sample(f, &sys_process_metricset, st, 5 * NS_PER_SEC);
	assert_int_equal(sfx_count(f, DS), FIX_PROCS);
	assert_false(sfx_has(by_pid(f, 500), "system.process.cpu.total.pct"));
	assert_near(sfx_double(by_pid(f, 1), "system.process.cpu.total.pct"), 0.2, 1e-12);
	assert_near(sfx_double(by_pid(f, 300), "system.process.cpu.total.pct"), 0, 0);

	/* the same process seen again in the same instant: no rate from a zero interval */
	sfx_sample(f, &sys_process_metricset, st, 0);
	assert_false(sfx_has(by_pid(f, 1), "system.process.cpu.total.pct"));
	assert_int_equal(metrics_get("sys.process.table_full"), 0);

	sys_process_metricset.destroy(st);
	sfx_free(f);
	troot_free(&r);
}

/* A changed etc/passwd is reloaded; the uid is kept per process. */
static void test_passwd_reload(void **state)
{
	static const char pw[] = "root:x:0:0::/root:/bin/sh\nalicia:x:1000:1000::/:/bin/sh\n";
	struct troot r;
	struct sfx *f;
	void *st;

	(void)state;
	copy_fixture(&r);
	f = sfx_new(r.dir);
	st = sfx_create(f, &sys_process_metricset);
	sfx_sample(f, &sys_process_metricset, st, 0);
	assert_string_equal(sfx_str(by_pid(f, 100), "user.name"), "alice");
	troot_write_len(&r, "etc/passwd", pw, sizeof(pw) - 1);
	sfx_sample(f, &sys_process_metricset, st, NS_PER_SEC);
	assert_string_equal(sfx_str(by_pid(f, 100), "user.name"), "alicia");
	assert_string_equal(sfx_str(by_pid(f, 300), "user.name"), "33");
	/* no passwd at all: numeric names */
	troot_rename(&r, "etc/passwd", "etc/passwd.old");
	sfx_sample(f, &sys_process_metricset, st, NS_PER_SEC);
	assert_string_equal(sfx_str(by_pid(f, 1), "user.name"), "0");
	sys_process_metricset.destroy(st);
	sfx_free(f);
	troot_free(&r);
}

/* topbeat.process.max: the lowest pids are tracked, the others reported without
 * rates and counted. */
static void test_table_full(void **state)
{
	struct sfx *f = sfx_new(FIX);
	void *st;

	(void)state;
	f->cfg.proc_max = 3;
	st = sfx_create(f, &sys_process_metricset);
	sfx_sample(f, &sys_process_metricset, st, 0);
	assert_int_equal(sfx_count(f, DS), FIX_PROCS);
	assert_int_equal(metrics_get("sys.process.table_full"), FIX_PROCS - 3);
	sfx_sample(f, &sys_process_metricset, st, NS_PER_SEC);
	assert_int_equal(sfx_count(f, DS), FIX_PROCS);
	assert_int_equal(metrics_get("sys.process.table_full"), 2 * (FIX_PROCS - 3));
	assert_true(sfx_has(by_pid(f, 1), "system.process.cpu.total.pct"));
	assert_true(sfx_has(by_pid(f, 2), "system.process.cpu.total.pct"));
	assert_true(sfx_has(by_pid(f, 42), "system.process.cpu.total.pct"));
	assert_false(sfx_has(by_pid(f, 100), "system.process.cpu.total.pct"));
	assert_false(sfx_has(by_pid(f, 600), "system.process.cpu.total.pct"));
	/* reported in full all the same */
	assert_string_equal(sfx_str(by_pid(f, 600), "process.executable"), "/usr/bin/longargs");
	assert_string_equal(sfx_str(by_pid(f, 300), "container.id"), HEX1);
	sys_process_metricset.destroy(st);
	sfx_free(f);
}

/* Processes exiting between the listing and the reads: never half-reported. */
static void test_vanishing(void **state)
{
	struct troot r;
	struct sfx *f;
	void *st;

	(void)state;
	copy_fixture(&r);
	f = sfx_new(r.dir);
	st = sfx_create(f, &sys_process_metricset);
	sfx_sample(f, &sys_process_metricset, st, 0);
	assert_int_equal(metrics_get("sys.process.vanished"), 1);
	/* known process: statm gone; new process: cgroup gone (read on first sight) */
	troot_rm(&r, "proc/1/statm");
	put_stat(&r, 301, "postgres", 'S', 0, 0, 999999);
	troot_rm(&r, "proc/301/cgroup");
	sfx_sample(f, &sys_process_metricset, st, NS_PER_SEC);
	assert_int_equal(sfx_count(f, DS), FIX_PROCS - 2);
	assert_null(sfx_event_where(f, DS, "process.pid", 1));
	assert_null(sfx_event_where(f, DS, "process.pid", 301));
	assert_int_equal(metrics_get("sys.process.vanished"), 1 + 3);
	/* a stat that does not parse is skipped and counted */
	troot_write_len(&r, "proc/100/stat", "100 (trunc) S 1", 15);
	sfx_sample(f, &sys_process_metricset, st, NS_PER_SEC);
	assert_null(sfx_event_where(f, DS, "process.pid", 100));
	assert_int_equal(metrics_get("sys.process.malformed"), 1);
	sys_process_metricset.destroy(st);
	sfx_free(f);
	troot_free(&r);
}

/* EACCES on one file omits its fields only. Root reads everything, so as root the
 * check runs in a child that dropped to nobody; it reports the first failed check
 * as its exit status. */
static int eacces_checks(const char *root)
{
	struct sfx *f = sfx_new(root);
	const struct event *ev;
	void *st = sys_process_metricset.create(&f->ctx);
	int bad = 0;

	if (!st)
		return 10;
	sfx_sample(f, &sys_process_metricset, st, 0);
	ev = sfx_event_where(f, DS, "process.pid", 300);
	if (!ev)
		bad = 11;
	else if (sfx_has(ev, "container.id")) /* cgroup unreadable */
		bad = 12;
	else if (!sfx_has(ev, "system.process.memory.rss.bytes"))
		bad = 13;
	else if (sfx_has(ev, "system.process.fd.limit.soft")) /* limits unreadable */
		bad = 14;
	else if (!sfx_has(ev, "process.executable"))
		bad = 15;
	else if (!(ev = sfx_event_where(f, DS, "process.pid", 1)))
		bad = 16;
	else if (sfx_has(ev, "system.process.memory.size")) /* statm unreadable */
		bad = 17;
	else if (!sfx_has(ev, "process.command_line"))
		bad = 18;
	else if (!sfx_has(ev, "user.name")) /* status unreadable: uid from the dir */
		bad = 19;
	else if (sfx_count(f, DS) != FIX_PROCS)
		bad = 20;
	sys_process_metricset.destroy(st);
	sfx_free(f);
	return bad;
}

static void test_eacces(void **state)
{
	struct troot r;
	int status;
	pid_t child;

	(void)state;
	copy_fixture(&r);
	assert_int_equal(chmod(r.dir, 0755), 0);
	make_unreadable(&r, "proc/300/cgroup");
	make_unreadable(&r, "proc/300/limits");
	make_unreadable(&r, "proc/1/statm");
	make_unreadable(&r, "proc/1/status");
	if (geteuid() != 0) {
		assert_int_equal(eacces_checks(r.dir), 0);
		troot_free(&r);
		return;
	}
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		if (setgid(65534) != 0 || setuid(65534) != 0)
			_exit(2);
		_exit(eacces_checks(r.dir));
	}
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	troot_free(&r);
}

/* ---- the real /proc ------------------------------------------------------------- */

static size_t count_dir(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	size_t n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* On procfs the entries keep stat, statm and fd/ open: a child process seen across
 * samples, as a zombie, and gone; no descriptor left behind. */
static void test_real_proc(void **state)
{
	struct sfx *f = sfx_new_cfg("/", "topbeat.procs: ['^hb-proc-child$']");
	size_t fds_before = count_dir("/proc/self/fd"), child_fds;
	const struct event *ev;
	char path[64];
	pid_t child;
	void *st;
	int status;

	(void)state;
	f->ctx.hz = sysconf(_SC_CLK_TCK);
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		prctl(PR_SET_NAME, "hb-proc-child", 0, 0, 0);
		for (;;)
			pause();
	}
	for (int i = 0; i < 200; i++) { /* until the child has renamed itself */
		struct timespec ms = {0, 5000000};
		char comm[32] = "";
		FILE *fp;

		snprintf(path, sizeof(path), "/proc/%d/comm", (int)child);
		fp = fopen(path, "r");
		if (fp && fgets(comm, sizeof(comm), fp) && strcmp(comm, "hb-proc-child\n") == 0) {
			fclose(fp);
			break;
		}
		if (fp)
			fclose(fp);
		nanosleep(&ms, NULL);
	}
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)child);
	child_fds = count_dir(path);

	st = sfx_create(f, &sys_process_metricset);
	sfx_sample(f, &sys_process_metricset, st, 0);
	assert_int_equal(sfx_count(f, DS), 1);
	ev = by_pid(f, (uint64_t)child);
	assert_string_equal(sfx_str(ev, "process.name"), "hb-proc-child");
	assert_int_equal(sfx_uint(ev, "process.parent.pid"), (uint64_t)getpid());
	assert_string_equal(sfx_str(ev, "process.state"), "sleeping");
	assert_int_equal(sfx_uint(ev, "system.process.fd.open"), child_fds);
	assert_true(sfx_uint(ev, "system.process.memory.rss.bytes") > 0);
	assert_true(arr_count(ev, "process.args") >= 1); /* ours: the child did not exec */

	sfx_sample(f, &sys_process_metricset, st, NS_PER_SEC); /* through kept descriptors */
	ev = by_pid(f, (uint64_t)child);
	assert_true(sfx_has(ev, "system.process.cpu.total.pct"));
	assert_int_equal(sfx_uint(ev, "system.process.fd.open"), child_fds);

	assert_int_equal(kill(child, SIGKILL), 0); /* a zombie until reaped */
	for (int i = 0; i < 200; i++) {
		struct timespec ms = {0, 5000000};

		sfx_sample(f, &sys_process_metricset, st, NS_PER_SEC);
		ev = sfx_event_where(f, DS, "process.pid", (uint64_t)child);
		if (ev && strcmp(sfx_str(ev, "process.state"), "zombie") == 0)
			break;
		nanosleep(&ms, NULL);
	}
	assert_non_null(ev);
	assert_string_equal(sfx_str(ev, "process.state"), "zombie");
	assert_int_equal(waitpid(child, &status, 0), child);
	sfx_sample(f, &sys_process_metricset, st, NS_PER_SEC);
	assert_int_equal(sfx_count(f, DS), 0);
	sys_process_metricset.destroy(st);
	assert_int_equal(count_dir("/proc/self/fd"), fds_before);
	sfx_free(f);
}

/* ---- what the metricset saves ------------------------------------------------------ */

/* The encoder's key order: byte by byte, '.' below every other byte (and the end of
 * a key below '.'), so "proc.x" < "process.x" and "a" < "a.b" < "a_b". */
static int enc_key_cmp(const char *a, const char *b)
{
	for (;; a++, b++) {
		unsigned ca = (unsigned char)*a == '.' ? 1 : (unsigned char)*a;
		unsigned cb = (unsigned char)*b == '.' ? 1 : (unsigned char)*b;

		if (ca != cb)
			return ca < cb ? -1 : 1;
		if (!ca)
			return 0;
	}
}

/* The fields the metricset adds come in the encoder's order (one ascending run its
 * sort only checks); sys_event_new()'s and sys_publish()'s own are left out. */
static void assert_key_order(const struct event *ev)
{
	const char *last = NULL;
	size_t n = 0;

	for (size_t i = 0; i < ev->nfields; i++) {
		const char *k = ev->fields[i].key;

		if (!strcmp(k, "metricset.period") || !strcmp(k, "service.type") ||
		    !strcmp(k, "event.duration"))
			continue;
		if (last && enc_key_cmp(last, k) > 0)
			fail_msg("pid %llu: \"%s\" added after \"%s\"",
				 (unsigned long long)sfx_uint(ev, "process.pid"), k, last);
		last = k;
		n++;
	}
	assert_true(n >= 20);
}

static void test_field_order(void **state)
{
	struct sfx *f = sfx_new_cfg(FIX, "legacy_fields: true\ntopbeat.stats.cpu_ticks: true\n");
	void *st;

	(void)state;
	assert_true(enc_key_cmp("proc.pid", "process.args") < 0); /* the comparator itself */
	assert_true(enc_key_cmp("proc.cpu.total", "proc.cpu.total_p") < 0);
	assert_true(enc_key_cmp("process.start", "process.state") < 0);
	assert_true(
	    enc_key_cmp("system.process.cpu.total.norm.pct", "system.process.cpu.total.pct") < 0);
	f->ctx.mem_total = 1ull << 30;
	st = sfx_create(f, &sys_process_metricset);
	sfx_sample(f, &sys_process_metricset, st, 0);
	sfx_sample(f, &sys_process_metricset, st, 10 * NS_PER_SEC); /* now with rates too */
	assert_int_equal(sfx_count(f, DS), FIX_PROCS);
	assert_true(sfx_has(by_pid(f, 1), "proc.cpu.total_p"));
	assert_true(sfx_has(by_pid(f, 1), "process.memory.pct"));
	for (size_t i = 0; i < f->nev; i++)
		assert_key_order(f->ev[i]);
	sys_process_metricset.destroy(st);
	sfx_free(f);

	f = sfx_new(FIX); /* and without the legacy names */
	st = sfx_create(f, &sys_process_metricset);
	sfx_sample(f, &sys_process_metricset, st, 0);
	sfx_sample(f, &sys_process_metricset, st, 10 * NS_PER_SEC);
	for (size_t i = 0; i < f->nev; i++)
		assert_key_order(f->ev[i]);
	sys_process_metricset.destroy(st);
	sfx_free(f);
}

/* A kernel thread (PF_KTHREAD in stat's flags) has no mm: its statm is not read (the
 * kernel's would be all zeros) — a missing one does not make it vanish. */
static void test_kernel_thread(void **state)
{
	static const char kstat[] = "42 (kworker/0:1-events) I 2 0 0 0 -1 69238880 0 0 0 0 7 9 0 0 "
				    "20 0 1 0 50 0 0 18446744073709551615 0 0 0 0 0 0 0 "
				    "2147483647 0 0 0 0 17 0 0 0 0 0 0\n";
	struct troot r;
	struct sfx *f;
	const struct event *ev;
	void *st;

	(void)state;
	copy_fixture(&r);
	troot_write_len(&r, "proc/42/stat", kstat, sizeof(kstat) - 1); /* 0x4208060 */
	troot_rm(&r, "proc/42/statm");
	troot_rm(&r, "proc/1/statm"); /* a user process without statm still vanishes */
	f = sfx_new(r.dir);
	f->ctx.mem_total = 1ull << 30;
	st = sfx_create(f, &sys_process_metricset);
	sfx_sample(f, &sys_process_metricset, st, 0);
	assert_int_equal(sfx_count(f, DS), FIX_PROCS - 1);
	assert_null(sfx_event_where(f, DS, "process.pid", 1));
	ev = by_pid(f, 42);
	assert_int_equal(sfx_uint(ev, "system.process.memory.size"), 0);
	assert_int_equal(sfx_uint(ev, "system.process.memory.rss.bytes"), 0);
	assert_int_equal(sfx_uint(ev, "system.process.memory.share"), 0);
	assert_near(sfx_double(ev, "system.process.memory.rss.pct"), 0, 0);
	assert_int_equal(sfx_uint(ev, "system.process.cpu.total.value"), 160);
	/* kthreadd (2) has no PF_KTHREAD in this fixture: its statm is read as before */
	assert_int_equal(sfx_uint(by_pid(f, 2), "system.process.memory.size"), 0);
	assert_int_equal(metrics_get("sys.process.vanished"), 1 + 1); /* 400 and 1 */
	sys_process_metricset.destroy(st);
	sfx_free(f);
	troot_free(&r);
}

/* What this process keeps open under /proc, by file: stat, statm, fd (O_PATH). */
static void count_kept(size_t *stat, size_t *statm, size_t *fds)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;

	*stat = *statm = *fds = 0;
	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		char path[300], target[300];
		ssize_t n;
		const char *leaf;

		if (e->d_name[0] == '.' || atoi(e->d_name) == dirfd(d)) /* not this listing */
			continue;
		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		n = readlink(path, target, sizeof(target) - 1);
		if (n <= 0 || strncmp(target, "/proc/", 6) != 0)
			continue;
		target[n] = '\0';
		leaf = strrchr(target, '/');
		if (!leaf || leaf == target + 5)
			continue;
		*stat += strcmp(leaf, "/stat") == 0;
		*statm += strcmp(leaf, "/statm") == 0;
		*fds += strcmp(leaf, "/fd") == 0;
	}
	closedir(d);
}

#define KEPT_CHILDREN 20

/* On procfs, with a descriptor budget (half RLIMIT_NOFILE) too small for stat, statm
 * and fd/ of every process, stat is kept for all of them first, then statm with what
 * is left; the others are read by path, and every event is still whole. */
static void test_kept_budget(void **state)
{
	struct sfx *f = sfx_new_cfg("/", "topbeat.procs: ['^hb-kept-child$']");
	pid_t kids[KEPT_CHILDREN];
	struct rlimit saved, low;
	size_t nstat, nstatm, nfds;
	int status;
	void *st;

	(void)state;
	f->ctx.hz = sysconf(_SC_CLK_TCK);
	for (int i = 0; i < KEPT_CHILDREN; i++) {
		kids[i] = fork();
		assert_true(kids[i] >= 0);
		if (kids[i] == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0); /* a failed assert leaves none */
			prctl(PR_SET_NAME, "hb-kept-child", 0, 0, 0);
			for (;;)
				pause();
		}
	}
	for (int i = 0; i < 400; i++) { /* until all renamed themselves */
		struct timespec ms = {0, 5000000};
		int named = 0;

		for (int k = 0; k < KEPT_CHILDREN; k++) {
			char path[64], comm[32] = "";
			FILE *fp;

			snprintf(path, sizeof(path), "/proc/%d/comm", (int)kids[k]);
			fp = fopen(path, "r");
			if (fp && fgets(comm, sizeof(comm), fp))
				named += strcmp(comm, "hb-kept-child\n") == 0;
			if (fp)
				fclose(fp);
		}
		if (named == KEPT_CHILDREN)
			break;
		nanosleep(&ms, NULL);
	}

	assert_int_equal(getrlimit(RLIMIT_NOFILE, &saved), 0);
	low = saved;
	low.rlim_cur = 64; /* a budget of 32: 20 stat + 12 statm, no fd/ */
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	st = sfx_create(f, &sys_process_metricset);
	for (int i = 0; i < 3; i++) { /* the share settles after the first sample */
		sfx_sample(f, &sys_process_metricset, st, NS_PER_SEC);
		assert_int_equal(sfx_count(f, DS), KEPT_CHILDREN);
	}
	count_kept(&nstat, &nstatm, &nfds);
	assert_int_equal(nstat, KEPT_CHILDREN);
	assert_int_equal(nstatm, 32 - KEPT_CHILDREN);
	assert_int_equal(nfds, 0);
	for (int k = 0; k < KEPT_CHILDREN; k++) { /* kept or not, the same fields */
		const struct event *ev = by_pid(f, (uint64_t)kids[k]);

		assert_true(sfx_uint(ev, "system.process.memory.rss.bytes") > 0);
		assert_true(sfx_has(ev, "system.process.fd.open"));
		assert_true(sfx_has(ev, "system.process.cpu.total.pct"));
	}
	sys_process_metricset.destroy(st);
	count_kept(&nstat, &nstatm, &nfds);
	assert_int_equal(nstat + nstatm + nfds, 0);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved), 0);
	for (int k = 0; k < KEPT_CHILDREN; k++)
		kill(kids[k], SIGKILL);
	for (int k = 0; k < KEPT_CHILDREN; k++)
		waitpid(kids[k], &status, 0);
	sfx_free(f);
}

/* ---- benchmark (HB_PROC_BENCH=<processes>) -------------------------------------- */

static double cpu_ms(const struct rusage *a, const struct rusage *b)
{
	return (double)(b->ru_utime.tv_sec - a->ru_utime.tv_sec) * 1e3 +
	       (double)(b->ru_utime.tv_usec - a->ru_utime.tv_usec) / 1e3 +
	       (double)(b->ru_stime.tv_sec - a->ru_stime.tv_sec) * 1e3 +
	       (double)(b->ru_stime.tv_usec - a->ru_stime.tv_usec) / 1e3;
}

static double sys_ms(const struct rusage *a, const struct rusage *b)
{
	return (double)(b->ru_stime.tv_sec - a->ru_stime.tv_sec) * 1e3 +
	       (double)(b->ru_stime.tv_usec - a->ru_stime.tv_usec) / 1e3;
}

static int dbl_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

#define BENCH_RUNS 7

static void test_bench(void **state)
{
	double runs[BENCH_RUNS], usr[BENCH_RUNS];
	const char *env = getenv("HB_PROC_BENCH");
	long want = env ? strtol(env, NULL, 10) : 0;
	struct rusage r0, r1;
	pid_t *kids;
	struct sfx *f;
	double ms, top_ms;
	size_t procs;
	void *st;
	int status;

	(void)state;
	if (want <= 0 || want > 100000)
		skip();
	kids = calloc((size_t)want & 0xfffff, sizeof(*kids));
	assert_non_null(kids);
	for (long i = 0; i < want; i++) {
		kids[i] = fork();
		assert_true(kids[i] >= 0);
		if (kids[i] == 0) {
			execlp("sleep", "sleep", "1000", (char *)NULL);
			_exit(127);
		}
	}
	sleep(1); /* let the children exec */

	f = sfx_new("/");
	f->ctx.hz = sysconf(_SC_CLK_TCK);
	f->ctx.ncpu = (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
	st = sfx_create(f, &sys_process_metricset);
	sfx_sample(f, &sys_process_metricset, st, 0); /* warm-up: first sight of all */
	for (int i = 0; i < BENCH_RUNS; i++) {        /* warm samples; the median is reported */
		getrusage(RUSAGE_SELF, &r0);
		sfx_sample(f, &sys_process_metricset, st, NS_PER_SEC);
		getrusage(RUSAGE_SELF, &r1);
		runs[i] = cpu_ms(&r0, &r1);
		usr[i] = cpu_ms(&r0, &r1) - sys_ms(&r0, &r1);
	}
	qsort(runs, BENCH_RUNS, sizeof(runs[0]), dbl_cmp);
	qsort(usr, BENCH_RUNS, sizeof(usr[0]), dbl_cmp);
	procs = f->nev + f->dropped;
	ms = runs[BENCH_RUNS / 2];
	sys_process_metricset.destroy(st);
	sfx_free(f);

	getrusage(RUSAGE_CHILDREN, &r0);
	assert_int_equal(system("top -b -n 1 >/dev/null"), 0);
	getrusage(RUSAGE_CHILDREN, &r1);
	top_ms = cpu_ms(&r0, &r1);

	print_message(
	    "process bench: %zu processes, warm sample %.2f ms CPU (median of %d, min "
	    "%.2f, user %.2f) = %.2f ms per 1000; top -b -n 1: %.2f ms CPU (ratio %.2f)\n",
	    procs, ms, BENCH_RUNS, runs[0], usr[BENCH_RUNS / 2], ms * 1000.0 / (double)procs,
	    top_ms, top_ms > 0 ? ms / top_ms : 0);
	for (long i = 0; i < want; i++)
		kill(kids[i], SIGKILL);
	for (long i = 0; i < want; i++)
		waitpid(kids[i], &status, 0);
	free(kids);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_parse_stat, setup),
	    cmocka_unit_test_setup(test_state_names, setup),
	    cmocka_unit_test_setup(test_fixture, setup),
	    cmocka_unit_test_setup(test_cmdline_max, setup),
	    cmocka_unit_test_setup(test_legacy_and_ticks, setup),
	    cmocka_unit_test_setup(test_procs_filter, setup),
	    cmocka_unit_test_setup(test_bad_regexp, setup),
	    cmocka_unit_test_setup(test_rates_and_reuse, setup),
	    cmocka_unit_test_setup(test_passwd_reload, setup),
	    cmocka_unit_test_setup(test_table_full, setup),
	    cmocka_unit_test_setup(test_vanishing, setup),
	    cmocka_unit_test_setup(test_eacces, setup),
	    cmocka_unit_test_setup(test_real_proc, setup),
	    cmocka_unit_test_setup(test_field_order, setup),
	    cmocka_unit_test_setup(test_kernel_thread, setup),
	    cmocka_unit_test_setup(test_kept_budget, setup),
	    cmocka_unit_test_setup(test_bench, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
