/* test_sys_container.c — the container metricset (sys/container.c): its pure parsers
 * and maths, the layouts on fixture trees (tests/fixtures/proc/cgroup_v2: unified with
 * docker, containerd, podman and cri-o scopes; cgroup_v1: hybrid with "cpu,cpuacct"
 * and symlinks; cgroup_v1_split: cpu and cpuacct apart, no blkio/pids), and, on
 * trees written by the test in a temporary directory, rates between samples, counter
 * resets, containers appearing and vanishing, the caps and Docker's metadata. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hostbeat/clock.h"
#include "hostbeat/config.h"
#include "hostbeat/event.h"
#include "hostbeat/metrics.h"
#include "hostbeat/sys.h"
#include "sys/container.h"
#include "sys_fixture.h"

#define FIX "tests/fixtures/proc/"
#define DS "system.container"

#define ID_A "aa86eacfb3b3ed4cd362c1e88fc89a53908ad05fb3a4103bca3f9b28292d14bf"
#define ID_B "3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d"
#define ID_C "2e7d2c03a9507ae265ecf5b5356885a53393a2029d241394997265a1a25aefc6"
#define ID_D "18ac3e7343f016890c510e93f935261169d9e3f565436429830faf0934f4f8e4"
#define ID_E "3f79bb7b435b05321651daefd374cdc681dc06faa65e374e38337b88ca046dea"
#define ID_F "252f10c83610ebca1a059c0bae8255eba2f95be4d1d7bcfa89d7248a82d9f111"
#define ID_G "cd0aa9856147b6c5b4ff2b7dfee5da20aa38253099ef1b4a64aced233c9afe29"

/* ---- helpers --------------------------------------------------------------- */

static const struct event *by_id(const struct sfx *f, const char *id)
{
	const struct event *ev = sfx_event_where_str(f, DS, "container.id", id);

	if (!ev)
		fail_msg("no event for container %s", id);
	return ev;
}

static bool has_id(const struct sfx *f, const char *id)
{
	return sfx_event_where_str(f, DS, "container.id", id) != NULL;
}

/* A v2 container at system.slice/docker-<id>.scope. */
static void v2_put(const struct troot *r, const char *id, uint64_t usage_us, uint64_t rbytes,
		   uint64_t wbytes)
{
	char rel[256];

	snprintf(rel, sizeof(rel), "sys/fs/cgroup/system.slice/docker-%s.scope/cpu.stat", id);
	troot_printf(r, rel, "usage_usec %llu\nuser_usec %llu\nsystem_usec 0\n",
		     (unsigned long long)usage_us, (unsigned long long)usage_us);
	snprintf(rel, sizeof(rel), "sys/fs/cgroup/system.slice/docker-%s.scope/io.stat", id);
	troot_printf(r, rel, "8:0 rbytes=%llu wbytes=%llu rios=1 wios=1 dbytes=0 dios=0\n",
		     (unsigned long long)rbytes, (unsigned long long)wbytes);
	snprintf(rel, sizeof(rel), "sys/fs/cgroup/system.slice/docker-%s.scope/memory.current", id);
	troot_write(r, rel, "4096\n");
}

static void v2_rm(const struct troot *r, const char *id)
{
	char rel[256];

	snprintf(rel, sizeof(rel), "sys/fs/cgroup/system.slice/docker-%s.scope", id);
	troot_rm(r, rel);
}

/* A temporary root with a unified (v2) cgroup hierarchy and no container yet. */
static void v2_tree(struct troot *r)
{
	troot_new(r);
	troot_write(r, "sys/fs/cgroup/cgroup.controllers", "cpu io memory pids\n");
}

/* 64 hex digits from a number. */
static void make_id(char id[65], unsigned n)
{
	snprintf(id, 65, "%064x", n);
}

/* ---- pure functions ---------------------------------------------------------- */

static void test_dir_id_and_runtime(void **state)
{
	char id[65];

	(void)state;
	assert_true(sys_container_dir_id("docker-" ID_A ".scope", id));
	assert_string_equal(id, ID_A);
	assert_true(sys_container_dir_id(ID_A, id));
	assert_true(sys_container_dir_id("cri-containerd-" ID_B ".scope", id));
	assert_string_equal(id, ID_B);
	assert_false(sys_container_dir_id("libpod-conmon-" ID_C ".scope", id));
	assert_false(sys_container_dir_id("crio-conmon-" ID_C ".scope", id));
	assert_false(sys_container_dir_id("init.scope", id));
	assert_false(sys_container_dir_id("kubepods-burstable-pod6d4b1f2e_9c1a.slice", id));
	/* 63 and 65 hex digits, upper case: not ids */
	assert_false(sys_container_dir_id(&ID_A[1], id));
	assert_false(sys_container_dir_id(ID_A "0", id));
	assert_false(
	    sys_container_dir_id("DOCKER-AA86EACFB3B3ED4CD362C1E88FC89A53908AD05FB3A4103BCA3F9B2"
				 "8292D14BF.scope",
				 id));

	assert_string_equal(sys_container_runtime("docker-" ID_A ".scope", "system.slice"),
			    "docker");
	assert_string_equal(sys_container_runtime(ID_A, "docker"), "docker");
	assert_string_equal(sys_container_runtime("cri-containerd-" ID_A ".scope", "x"),
			    "containerd");
	assert_string_equal(sys_container_runtime("crio-" ID_A ".scope", "x"), "cri-o");
	assert_string_equal(sys_container_runtime("libpod-" ID_A ".scope", "machine.slice"),
			    "podman");
	assert_null(sys_container_runtime(ID_A, "pod6d4b1f2e"));
	assert_null(sys_container_runtime("weird-" ID_A, "docker"));
}

static void test_flat_and_limit(void **state)
{
	const char stat[] = "usage_usec 2500000\nuser_usec 2000000\nnr_periods 120\n"
			    "nr_throttled 7\nthrottled_usec 350000\nbad x\n";
	uint64_t v = 0;

	(void)state;
	assert_int_equal(sys_container_flat_u64(stat, strlen(stat), "usage_usec", &v), 0);
	assert_int_equal(v, 2500000);
	assert_int_equal(sys_container_flat_u64(stat, strlen(stat), "nr_throttled", &v), 0);
	assert_int_equal(v, 7);
	/* a key is a whole field, never a prefix */
	assert_int_equal(sys_container_flat_u64(stat, strlen(stat), "nr_", &v), -ENOENT);
	assert_int_equal(sys_container_flat_u64(stat, strlen(stat), "usage", &v), -ENOENT);
	assert_int_equal(sys_container_flat_u64(stat, strlen(stat), "bad", &v), -EINVAL);
	assert_int_equal(sys_container_flat_u64("user 1", 6, "user", &v), 0); /* no '\n' */
	assert_int_equal(v, 1);

	assert_int_equal(sys_container_limit("max\n", 4, &v), 1);
	assert_int_equal(sys_container_limit("536870912\n", 10, &v), 0);
	assert_int_equal(v, 536870912);
	assert_int_equal(sys_container_limit("12", 2, &v), 0);
	assert_int_equal(v, 12);
	assert_int_equal(sys_container_limit("-1\n", 3, &v), -EINVAL);
	assert_int_equal(sys_container_limit("", 0, &v), -EINVAL);
	assert_int_equal(sys_container_limit("maxi", 4, &v), -EINVAL);
}

static void test_io_parsers(void **state)
{
	const char v2[] = "8:0 rbytes=1048576 wbytes=4096 rios=20 wios=1 dbytes=0 dios=0\n"
			  "253:0 rbytes=2048 wbytes=8192 rios=2 wios=2 dbytes=0 dios=0\n";
	const char v1[] = "8:0 Read 4096\n8:0 Write 1024\n8:0 Sync 5120\n8:0 Async 0\n"
			  "8:0 Total 5120\n8:16 Read 100\n8:16 Write 200\n8:16 Total 300\n"
			  "Total 5420\n";
	const char over[] = "8:0 rbytes=18446744073709551615 wbytes=0\n"
			    "8:1 rbytes=1 wbytes=0\n";
	uint64_t r = 7, w = 7;

	(void)state;
	assert_int_equal(sys_container_io_v2(v2, strlen(v2), &r, &w), 0);
	assert_int_equal(r, 1048576 + 2048);
	assert_int_equal(w, 4096 + 8192);
	assert_int_equal(sys_container_io_v2("", 0, &r, &w), 0); /* no io yet */
	assert_int_equal(r, 0);
	assert_int_equal(w, 0);
	assert_int_equal(sys_container_io_v2("8:0 rbytes=x wbytes=1\n", 22, &r, &w), -EINVAL);
	assert_int_equal(sys_container_io_v2("rbytes=1\n", 9, &r, &w), -EINVAL);
	assert_int_equal(sys_container_io_v2(over, strlen(over), &r, &w), -EINVAL);

	assert_int_equal(sys_container_blkio_v1(v1, strlen(v1), &r, &w), 0);
	assert_int_equal(r, 4096 + 100);
	assert_int_equal(w, 1024 + 200);
	assert_int_equal(sys_container_blkio_v1("Total 0\n", 8, &r, &w), 0);
	assert_int_equal(r, 0);
	assert_int_equal(sys_container_blkio_v1("8:0 Read\n", 9, &r, &w), -EINVAL);
}

static void test_maths(void **state)
{
	(void)state;
	/* 1.5 s of CPU in 2 s: 0.75 cores */
	assert_near(
	    sys_container_cpu_cores(1000000000, 2500000000, 10 * NS_PER_SEC, 12 * NS_PER_SEC), 0.75,
	    1e-12);
	/* 4 cores busy */
	assert_near(sys_container_cpu_cores(0, 4 * NS_PER_SEC, 0, NS_PER_SEC), 4.0, 1e-12);
	assert_near(sys_container_cpu_cores(5, 5, 0, NS_PER_SEC), 0.0, 1e-12);
	assert_true(sys_container_cpu_cores(6, 5, 0, NS_PER_SEC) < 0);          /* backwards */
	assert_true(sys_container_cpu_cores(5, 6, NS_PER_SEC, NS_PER_SEC) < 0); /* no time */

	assert_near(sys_container_mem_pct(256, 1024, 4096), 0.25, 1e-12);
	assert_near(sys_container_mem_pct(256, 0, 4096), 0.0625, 1e-12);
	assert_true(sys_container_mem_pct(256, 0, 0) < 0);
}

/* ---- fixture trees ------------------------------------------------------------ */

static void test_v2_fixture(void **state)
{
	struct sfx *f = sfx_new(FIX "cgroup_v2");
	const struct event *ev;
	void *st;

	(void)state;
	f->ctx.mem_total = 1ull << 30;
	f->ctx.ncpu = 4;
	st = sfx_create(f, &sys_container_metricset);
	sfx_sample(f, &sys_container_metricset, st, 0);

	/* docker, containerd, podman, cri-o; not the conmon scope, not cron.service,
	 * not the id-named directory nested inside the docker scope */
	assert_int_equal(sfx_count(f, DS), 4);
	assert_false(has_id(f, ID_G));

	ev = by_id(f, ID_A);
	assert_string_equal(sfx_str(ev, "type"), "container");
	assert_string_equal(sfx_str(ev, "container.runtime"), "docker");
	assert_string_equal(sfx_str(ev, "container.name"), "web");
	assert_string_equal(sfx_str(ev, "container.image.name"), "nginx:1.25");
	assert_string_equal(sfx_str(ev, "system.container.cgroup.path"),
			    "/system.slice/docker-" ID_A ".scope");
	assert_int_equal(sfx_uint(ev, "system.container.cgroup.version"), 2);
	assert_int_equal(sfx_uint(ev, "system.container.cpu.usage.ns"), 2500000000ull);
	assert_int_equal(sfx_uint(ev, "system.container.cpu.user.ns"), 2000000000ull);
	assert_int_equal(sfx_uint(ev, "system.container.cpu.system.ns"), 500000000ull);
	assert_int_equal(sfx_uint(ev, "system.container.cpu.throttling.periods"), 120);
	assert_int_equal(sfx_uint(ev, "system.container.cpu.throttling.throttled.periods"), 7);
	assert_int_equal(sfx_uint(ev, "system.container.cpu.throttling.throttled.ns"), 350000000);
	assert_int_equal(sfx_uint(ev, "system.container.memory.usage.bytes"), 104857600);
	assert_int_equal(sfx_uint(ev, "system.container.memory.limit.bytes"), 536870912);
	assert_near(sfx_double(ev, "system.container.memory.pct"), 0.1953, 1e-9);
	assert_near(sfx_double(ev, "container.memory.usage"), 0.1953, 1e-9);
	assert_int_equal(sfx_uint(ev, "system.container.io.read.bytes"), 1048576 + 2048);
	assert_int_equal(sfx_uint(ev, "system.container.io.write.bytes"), 4096 + 8192);
	assert_int_equal(sfx_uint(ev, "system.container.pids.current"), 12);
	assert_int_equal(sfx_uint(ev, "system.container.pids.limit"), 4096);
	/* first sample: no rates */
	assert_false(sfx_has(ev, "system.container.cpu.pct"));
	assert_false(sfx_has(ev, "container.cpu.usage"));
	assert_false(sfx_has(ev, "container.disk.read.bytes"));

	/* containerd under kubepods: no throttling keys (cpu controller off), no io, no
	 * pids files, memory.max "max" → pct of the host's memory, no limit field */
	ev = by_id(f, ID_B);
	assert_string_equal(sfx_str(ev, "container.runtime"), "containerd");
	assert_false(sfx_has(ev, "container.name"));
	assert_int_equal(sfx_uint(ev, "system.container.cpu.usage.ns"), 900000000);
	assert_false(sfx_has(ev, "system.container.cpu.throttling.periods"));
	assert_false(sfx_has(ev, "system.container.io.read.bytes"));
	assert_false(sfx_has(ev, "system.container.pids.current"));
	assert_false(sfx_has(ev, "system.container.memory.limit.bytes"));
	assert_near(sfx_double(ev, "system.container.memory.pct"), 0.0488, 1e-9);

	ev = by_id(f, ID_C);
	assert_string_equal(sfx_str(ev, "container.runtime"), "podman");
	assert_string_equal(sfx_str(ev, "system.container.cgroup.path"),
			    "/machine.slice/libpod-" ID_C ".scope");
	assert_int_equal(sfx_uint(ev, "system.container.pids.current"), 1);
	assert_false(sfx_has(ev, "system.container.pids.limit")); /* "max" */

	ev = by_id(f, ID_D);
	assert_string_equal(sfx_str(ev, "container.runtime"), "cri-o");
	assert_int_equal(sfx_uint(ev, "system.container.cpu.usage.ns"), 7000);
	assert_false(sfx_has(ev, "system.container.memory.usage.bytes"));

	/* same counters 10 s later: rates present and 0 */
	sfx_sample(f, &sys_container_metricset, st, 10 * NS_PER_SEC);
	ev = by_id(f, ID_A);
	assert_near(sfx_double(ev, "system.container.cpu.pct"), 0.0, 1e-12);
	assert_near(sfx_double(ev, "container.cpu.usage"), 0.0, 1e-12);
	assert_int_equal(sfx_uint(ev, "container.disk.read.bytes"), 0);
	assert_int_equal(sfx_uint(ev, "container.disk.write.bytes"), 0);

	sys_container_metricset.destroy(st);
	sfx_free(f);
}

static void test_v1_hybrid_fixture(void **state)
{
	struct sfx *f = sfx_new(FIX "cgroup_v1");
	const struct event *ev;
	void *st;

	(void)state;
	f->ctx.hz = 100;
	st = sfx_create(f, &sys_container_metricset);
	sfx_sample(f, &sys_container_metricset, st, 0);
	assert_int_equal(sfx_count(f, DS), 2);

	/* cgroupfs driver: docker/<id>, "cpu,cpuacct" reached through the symlinks */
	ev = by_id(f, ID_E);
	assert_string_equal(sfx_str(ev, "container.runtime"), "docker");
	assert_false(sfx_has(ev, "container.name")); /* no config.v2.json */
	assert_string_equal(sfx_str(ev, "system.container.cgroup.path"), "/docker/" ID_E);
	assert_int_equal(sfx_uint(ev, "system.container.cgroup.version"), 1);
	assert_int_equal(sfx_uint(ev, "system.container.cpu.usage.ns"), 3000000000ull);
	assert_int_equal(sfx_uint(ev, "system.container.cpu.user.ns"), 2500000000ull);
	assert_int_equal(sfx_uint(ev, "system.container.cpu.system.ns"), 500000000ull);
	assert_int_equal(sfx_uint(ev, "system.container.cpu.throttling.periods"), 40);
	assert_int_equal(sfx_uint(ev, "system.container.cpu.throttling.throttled.periods"), 3);
	assert_int_equal(sfx_uint(ev, "system.container.cpu.throttling.throttled.ns"), 120000000);
	assert_int_equal(sfx_uint(ev, "system.container.memory.usage.bytes"), 209715200);
	/* PAGE_COUNTER_MAX: no limit, and no MemTotal in the fixture → no pct */
	assert_false(sfx_has(ev, "system.container.memory.limit.bytes"));
	assert_false(sfx_has(ev, "system.container.memory.pct"));
	assert_int_equal(sfx_uint(ev, "system.container.io.read.bytes"), 4196);
	assert_int_equal(sfx_uint(ev, "system.container.io.write.bytes"), 1224);
	assert_int_equal(sfx_uint(ev, "system.container.pids.current"), 3);
	assert_false(sfx_has(ev, "system.container.pids.limit"));

	/* systemd driver: system.slice/docker-<id>.scope; no blkio directory for it */
	ev = by_id(f, ID_F);
	assert_string_equal(sfx_str(ev, "container.name"), "db");
	assert_string_equal(sfx_str(ev, "container.image.name"), "postgres:16");
	assert_int_equal(sfx_uint(ev, "system.container.memory.limit.bytes"), 268435456);
	assert_near(sfx_double(ev, "system.container.memory.pct"), 0.0039, 1e-9);
	assert_int_equal(sfx_uint(ev, "system.container.pids.limit"), 100);
	assert_false(sfx_has(ev, "system.container.io.read.bytes"));

	sys_container_metricset.destroy(st);
	sfx_free(f);
}

static void test_v1_split_fixture(void **state)
{
	struct sfx *f = sfx_new(FIX "cgroup_v1_split");
	const struct event *ev;
	void *st;

	(void)state;
	f->ctx.hz = 250; /* ticks → ns uses USER_HZ */
	st = sfx_create(f, &sys_container_metricset);
	sfx_sample(f, &sys_container_metricset, st, 0);
	assert_int_equal(sfx_count(f, DS), 1);
	ev = by_id(f, ID_G);
	assert_int_equal(sfx_uint(ev, "system.container.cpu.usage.ns"), 1500000000ull);
	assert_int_equal(sfx_uint(ev, "system.container.cpu.user.ns"), 400000000ull);
	assert_int_equal(sfx_uint(ev, "system.container.cpu.system.ns"), 200000000ull);
	assert_int_equal(sfx_uint(ev, "system.container.cpu.throttling.throttled.ns"),
			 5000000000ull);
	assert_int_equal(sfx_uint(ev, "system.container.memory.usage.bytes"), 8388608);
	/* no blkio or pids controller mounted: omitted, not counted */
	assert_false(sfx_has(ev, "system.container.io.read.bytes"));
	assert_false(sfx_has(ev, "system.container.pids.current"));
	sys_container_metricset.destroy(st);
	sfx_free(f);
}

/* topbeat.container.cgroup_root moves the root; no cgroup filesystem → no events. */
static void test_cgroup_root(void **state)
{
	struct sfx *f = sfx_new_cfg(FIX "cgroup_v2", "topbeat.container.cgroup_root: /nowhere");
	struct troot r;
	void *st;

	(void)state;
	st = sfx_create(f, &sys_container_metricset);
	sfx_sample(f, &sys_container_metricset, st, 0);
	assert_int_equal(f->nev, 0);
	sys_container_metricset.destroy(st);
	sfx_free(f);

	/* the same tree moved under another root */
	v2_tree(&r);
	troot_write(&r, "cg/cgroup.controllers", "cpu\n");
	troot_write(&r, "cg/docker/" ID_A "/cpu.stat", "usage_usec 5\n");
	f = sfx_new_cfg(r.dir, "topbeat.container.cgroup_root: /cg");
	st = sfx_create(f, &sys_container_metricset);
	sfx_sample(f, &sys_container_metricset, st, 0);
	assert_int_equal(sfx_count(f, DS), 1);
	assert_string_equal(sfx_str(by_id(f, ID_A), "container.runtime"), "docker");
	assert_string_equal(sfx_str(by_id(f, ID_A), "system.container.cgroup.path"),
			    "/docker/" ID_A);
	sys_container_metricset.destroy(st);
	sfx_free(f);
	troot_free(&r);
}

/* ---- samples over time ---------------------------------------------------------- */

static void test_rates(void **state)
{
	struct troot r;
	struct sfx *f;
	uint64_t resets = metrics_get("sys.container.counter_reset");
	const struct event *ev;
	void *st;

	(void)state;
	v2_tree(&r);
	f = sfx_new(r.dir);
	f->ctx.ncpu = 2;
	v2_put(&r, ID_A, 1000000, 1000, 500);
	st = sfx_create(f, &sys_container_metricset);
	sfx_sample(f, &sys_container_metricset, st, 0);
	assert_false(sfx_has(by_id(f, ID_A), "system.container.cpu.pct"));

	/* 1.5 s of CPU over 2 s on 2 cores */
	v2_put(&r, ID_A, 2500000, 5096, 1500);
	sfx_sample(f, &sys_container_metricset, st, 2 * NS_PER_SEC);
	ev = by_id(f, ID_A);
	assert_near(sfx_double(ev, "system.container.cpu.pct"), 0.75, 1e-9);
	assert_near(sfx_double(ev, "system.container.cpu.norm.pct"), 0.375, 1e-9);
	assert_near(sfx_double(ev, "container.cpu.usage"), 0.375, 1e-9);
	assert_int_equal(sfx_uint(ev, "container.disk.read.bytes"), 4096);
	assert_int_equal(sfx_uint(ev, "container.disk.write.bytes"), 1000);
	assert_int_equal(sfx_uint(ev, "system.container.io.read.bytes"), 5096);

	/* a third of a core: rounded to 4 decimals */
	v2_put(&r, ID_A, 3500000, 5096, 1500);
	sfx_sample(f, &sys_container_metricset, st, 3 * NS_PER_SEC);
	assert_near(sfx_double(by_id(f, ID_A), "system.container.cpu.pct"), 0.3333, 1e-9);

	/* counters went backwards (the cgroup was recreated): the interval is skipped */
	v2_put(&r, ID_A, 100, 10, 10);
	sfx_sample(f, &sys_container_metricset, st, NS_PER_SEC);
	ev = by_id(f, ID_A);
	assert_false(sfx_has(ev, "system.container.cpu.pct"));
	assert_false(sfx_has(ev, "container.disk.read.bytes"));
	assert_int_equal(sfx_uint(ev, "system.container.cpu.usage.ns"), 100000);
	assert_int_equal(metrics_get("sys.container.counter_reset") - resets, 2);

	/* and the next interval is measured from the new values */
	v2_put(&r, ID_A, 1000100, 10, 10);
	sfx_sample(f, &sys_container_metricset, st, NS_PER_SEC);
	assert_near(sfx_double(by_id(f, ID_A), "system.container.cpu.pct"), 1.0, 1e-9);

	sys_container_metricset.destroy(st);
	sfx_free(f);
	troot_free(&r);
}

static void test_rates_v1(void **state)
{
	struct troot r;
	struct sfx *f;
	const struct event *ev;
	void *st;

	(void)state;
	troot_new(&r);
	f = sfx_new(r.dir);
	f->ctx.ncpu = 4;
	troot_write(&r, "sys/fs/cgroup/cpu,cpuacct/cpuacct.usage", "1\n");
	troot_write(&r, "sys/fs/cgroup/cpu,cpuacct/cpu.shares", "1024\n");
	troot_write(&r, "sys/fs/cgroup/cpu,cpuacct/docker/" ID_E "/cpuacct.usage", "1000000000\n");
	st = sfx_create(f, &sys_container_metricset);
	sfx_sample(f, &sys_container_metricset, st, 0);
	assert_int_equal(sfx_count(f, DS), 1);

	/* 3 cores busy for 1 s */
	troot_write(&r, "sys/fs/cgroup/cpu,cpuacct/docker/" ID_E "/cpuacct.usage", "4000000000\n");
	sfx_sample(f, &sys_container_metricset, st, NS_PER_SEC);
	ev = by_id(f, ID_E);
	assert_near(sfx_double(ev, "system.container.cpu.pct"), 3.0, 1e-9);
	assert_near(sfx_double(ev, "container.cpu.usage"), 0.75, 1e-9);
	assert_int_equal(sfx_uint(ev, "system.container.cgroup.version"), 1);
	sys_container_metricset.destroy(st);
	sfx_free(f);
	troot_free(&r);
}

/* A container that goes away loses its state; Docker's metadata is read once. */
static void test_lifecycle_and_meta(void **state)
{
	struct troot r;
	struct sfx *f;
	uint64_t resets = metrics_get("sys.container.counter_reset");
	const char *cfg = "var/lib/docker/containers/" ID_A "/config.v2.json";
	void *st;

	(void)state;
	v2_tree(&r);
	f = sfx_new(r.dir);
	v2_put(&r, ID_A, 5000000, 0, 0);
	v2_put(&r, ID_B, 1, 0, 0);
	troot_write(&r, cfg, "{\"Name\":\"/first\",\"Config\":{\"Image\":\"busybox\"}}");
	st = sfx_create(f, &sys_container_metricset);
	sfx_sample(f, &sys_container_metricset, st, 0);
	assert_int_equal(sfx_count(f, DS), 2);
	assert_string_equal(sfx_str(by_id(f, ID_A), "container.name"), "first");

	/* renamed on disk: the cached name stays */
	troot_write(&r, cfg, "{\"Name\":\"/second\",\"Config\":{\"Image\":\"busybox\"}}");
	sfx_sample(f, &sys_container_metricset, st, NS_PER_SEC);
	assert_string_equal(sfx_str(by_id(f, ID_A), "container.name"), "first");

	/* A goes away */
	v2_rm(&r, ID_A);
	sfx_sample(f, &sys_container_metricset, st, NS_PER_SEC);
	assert_int_equal(sfx_count(f, DS), 1);
	assert_false(has_id(f, ID_A));

	/* and comes back with lower counters: a new container, not a reset; its
	 * metadata is read again */
	v2_put(&r, ID_A, 1000, 0, 0);
	sfx_sample(f, &sys_container_metricset, st, NS_PER_SEC);
	assert_int_equal(sfx_count(f, DS), 2);
	assert_false(sfx_has(by_id(f, ID_A), "system.container.cpu.pct"));
	assert_true(sfx_has(by_id(f, ID_B), "system.container.cpu.pct"));
	assert_string_equal(sfx_str(by_id(f, ID_A), "container.name"), "second");
	assert_int_equal(metrics_get("sys.container.counter_reset"), resets);

	sys_container_metricset.destroy(st);
	sfx_free(f);
	troot_free(&r);
}

static void test_meta_rejected(void **state)
{
	struct troot r;
	struct sfx *f;
	uint64_t skipped = metrics_get("sys.container.meta_skipped");
	char *big;
	FILE *fp;
	void *st;

	(void)state;
	v2_tree(&r);
	f = sfx_new(r.dir);
	v2_put(&r, ID_A, 1, 0, 0);
	v2_put(&r, ID_B, 1, 0, 0);
	v2_put(&r, ID_C, 1, 0, 0);
	v2_put(&r, ID_D, 1, 0, 0);
	troot_write(&r, "var/lib/docker/containers/" ID_A "/config.v2.json", "{\"Name\":");
	troot_write(&r, "var/lib/docker/containers/" ID_B "/config.v2.json", "[1,2]");
	/* wrong types: ignored without a count */
	troot_write(&r, "var/lib/docker/containers/" ID_C "/config.v2.json",
		    "{\"Name\":5,\"Config\":{\"Image\":[\"x\"]}}");
	/* valid JSON over 1 MiB: not parsed */
	fp = troot_open(&r, "var/lib/docker/containers/" ID_D "/config.v2.json");
	big = malloc(SYS_CONTAINER_META_MAX);
	assert_non_null(big);
	memset(big, ' ', SYS_CONTAINER_META_MAX);
	fputs("{\"Name\":\"/big\",\"Config\":{\"Image\":\"big\"}", fp);
	fwrite(big, 1, SYS_CONTAINER_META_MAX, fp);
	fputs("}", fp);
	fclose(fp);
	free(big);

	st = sfx_create(f, &sys_container_metricset);
	sfx_sample(f, &sys_container_metricset, st, 0);
	assert_int_equal(sfx_count(f, DS), 4);
	assert_false(sfx_has(by_id(f, ID_A), "container.name"));
	assert_false(sfx_has(by_id(f, ID_B), "container.name"));
	assert_false(sfx_has(by_id(f, ID_C), "container.name"));
	assert_false(sfx_has(by_id(f, ID_C), "container.image.name"));
	assert_false(sfx_has(by_id(f, ID_D), "container.name"));
	assert_int_equal(metrics_get("sys.container.meta_skipped") - skipped, 3);
	sys_container_metricset.destroy(st);
	sfx_free(f);
	troot_free(&r);
}

/* ---- caps and odd trees ----------------------------------------------------------- */

static void test_table_full(void **state)
{
	struct troot r;
	struct sfx *f;
	uint64_t full = metrics_get("sys.container.table_full");
	size_t with_rate = 0;
	char id[65];
	void *st;

	(void)state;
	v2_tree(&r);
	f = sfx_new(r.dir);
	for (unsigned i = 1; i <= 5; i++) {
		make_id(id, i);
		v2_put(&r, id, 1000, 0, 0);
	}
	st = sfx_create(f, &sys_container_metricset);
	sys_container_set_limits(st, 3, SYS_CONTAINER_MAX_DIRS);
	sfx_sample(f, &sys_container_metricset, st, 0);
	assert_int_equal(sfx_count(f, DS), 5); /* all published */
	assert_int_equal(metrics_get("sys.container.table_full") - full, 2);

	sfx_sample(f, &sys_container_metricset, st, NS_PER_SEC);
	assert_int_equal(sfx_count(f, DS), 5);
	for (size_t i = 0; i < f->nev; i++)
		with_rate += sfx_has(f->ev[i], "system.container.cpu.pct");
	assert_int_equal(with_rate, 3); /* only the tracked ones have rates */
	assert_int_equal(metrics_get("sys.container.table_full") - full, 4);

	sys_container_metricset.destroy(st);
	sfx_free(f);
	troot_free(&r);
}

static void test_walk_cap(void **state)
{
	struct troot r;
	struct sfx *f;
	uint64_t trunc = metrics_get("sys.container.walk_truncated");
	char id[65];
	void *st;

	(void)state;
	v2_tree(&r);
	f = sfx_new(r.dir);
	for (unsigned i = 1; i <= 4; i++) {
		make_id(id, i);
		v2_put(&r, id, 1000, 0, 0);
	}
	st = sfx_create(f, &sys_container_metricset);
	sfx_sample(f, &sys_container_metricset, st, 0);
	assert_int_equal(sfx_count(f, DS), 4);

	/* system.slice + 4 scopes = 5 directories; allow 3 */
	sys_container_set_limits(st, SYS_CONTAINER_MAX, 3);
	sfx_sample(f, &sys_container_metricset, st, NS_PER_SEC);
	assert_int_equal(sfx_count(f, DS), 2);
	assert_int_equal(metrics_get("sys.container.walk_truncated") - trunc, 1);

	/* the partial walk dropped no state: every container still has its rate */
	sys_container_set_limits(st, SYS_CONTAINER_MAX, SYS_CONTAINER_MAX_DIRS);
	sfx_sample(f, &sys_container_metricset, st, NS_PER_SEC);
	assert_int_equal(sfx_count(f, DS), 4);
	for (size_t i = 0; i < f->nev; i++)
		assert_true(sfx_has(f->ev[i], "system.container.cpu.pct"));

	sys_container_metricset.destroy(st);
	sfx_free(f);
	troot_free(&r);
}

static void test_depth_and_duplicates(void **state)
{
	struct troot r;
	struct sfx *f;
	uint64_t dup = metrics_get("sys.container.duplicates");
	void *st;

	(void)state;
	v2_tree(&r);
	f = sfx_new(r.dir);
	/* depth 8 below the root is reached, depth 9 is not */
	troot_write(&r, "sys/fs/cgroup/1/2/3/4/5/6/7/docker-" ID_A ".scope/cpu.stat",
		    "usage_usec 1\n");
	troot_write(&r, "sys/fs/cgroup/1/2/3/4/5/6/7/8/docker-" ID_B ".scope/cpu.stat",
		    "usage_usec 1\n");
	/* one id twice: reported once */
	troot_write(&r, "sys/fs/cgroup/docker/" ID_C "/cpu.stat", "usage_usec 1\n");
	troot_write(&r, "sys/fs/cgroup/system.slice/docker-" ID_C ".scope/cpu.stat",
		    "usage_usec 1\n");
	/* a container directory with no readable file is still a container */
	troot_mkdir(&r, "sys/fs/cgroup/docker/" ID_D);
	st = sfx_create(f, &sys_container_metricset);
	sfx_sample(f, &sys_container_metricset, st, 0);
	assert_true(has_id(f, ID_A));
	assert_false(has_id(f, ID_B));
	assert_true(has_id(f, ID_C));
	assert_true(has_id(f, ID_D));
	assert_int_equal(sfx_count(f, DS), 3);
	assert_int_equal(metrics_get("sys.container.duplicates") - dup, 1);
	assert_false(sfx_has(by_id(f, ID_D), "system.container.cpu.usage.ns"));
	sys_container_metricset.destroy(st);
	sfx_free(f);
	troot_free(&r);
}

static void test_malformed_files(void **state)
{
	struct troot r;
	struct sfx *f;
	uint64_t errs = metrics_get("sys.container.read_errors");
	const struct event *ev;
	void *st;

	(void)state;
	v2_tree(&r);
	f = sfx_new(r.dir);
	troot_write(&r, "sys/fs/cgroup/docker/" ID_A "/cpu.stat",
		    "usage_usec -1\nuser_usec 10\nnr_periods 99999999999999999999999\n");
	troot_write(&r, "sys/fs/cgroup/docker/" ID_A "/memory.current", "lots\n");
	troot_write(&r, "sys/fs/cgroup/docker/" ID_A "/memory.max", "\n");
	troot_write(&r, "sys/fs/cgroup/docker/" ID_A "/io.stat", "8:0 rbytes=1 wbytes=z\n");
	troot_write(&r, "sys/fs/cgroup/docker/" ID_A "/pids.current", "3\n");
	/* usec → ns would overflow */
	troot_write(&r, "sys/fs/cgroup/docker/" ID_B "/cpu.stat", "usage_usec 18446744073709552\n");
	st = sfx_create(f, &sys_container_metricset);
	sfx_sample(f, &sys_container_metricset, st, 0);
	ev = by_id(f, ID_A);
	assert_false(sfx_has(ev, "system.container.cpu.usage.ns"));
	assert_int_equal(sfx_uint(ev, "system.container.cpu.user.ns"), 10000);
	assert_false(sfx_has(ev, "system.container.cpu.throttling.periods"));
	assert_false(sfx_has(ev, "system.container.memory.usage.bytes"));
	assert_false(sfx_has(ev, "system.container.io.read.bytes"));
	assert_int_equal(sfx_uint(ev, "system.container.pids.current"), 3);
	assert_false(sfx_has(by_id(f, ID_B), "system.container.cpu.usage.ns"));
	assert_int_equal(metrics_get("sys.container.read_errors") - errs, 6);
	sys_container_metricset.destroy(st);
	sfx_free(f);
	troot_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_dir_id_and_runtime),
	    cmocka_unit_test(test_flat_and_limit),
	    cmocka_unit_test(test_io_parsers),
	    cmocka_unit_test(test_maths),
	    cmocka_unit_test(test_v2_fixture),
	    cmocka_unit_test(test_v1_hybrid_fixture),
	    cmocka_unit_test(test_v1_split_fixture),
	    cmocka_unit_test(test_cgroup_root),
	    cmocka_unit_test(test_rates),
	    cmocka_unit_test(test_rates_v1),
	    cmocka_unit_test(test_lifecycle_and_meta),
	    cmocka_unit_test(test_meta_rejected),
	    cmocka_unit_test(test_table_full),
	    cmocka_unit_test(test_walk_cap),
	    cmocka_unit_test(test_depth_and_duplicates),
	    cmocka_unit_test(test_malformed_files),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
