/* test_sys_filesystem.c — sys/filesystem.c: mountinfo parsing and unescaping, which
 * mounts are reported (ignored types, shadowed and hidden mounts, bind mounts,
 * relative mount points), the figures and field names, the hostfs join, the caps
 * and truncation, and the statvfs timeout with a stuck fake; one test against the
 * live machine's "/" with the real statvfs.
 *
 * Fixture trees cannot hold mounts, so statvfs goes through the seam of
 * sys/filesystem.h: fake_statvfs() answers canned numbers per mount point (the
 * path with the fixture root stripped) and records every path it is asked.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>

#include "hostbeat/clock.h"
#include "hostbeat/metrics.h"
#include "sys_fixture.h"
#include "sys/filesystem.h"

#define FS_BASIC "tests/fixtures/proc/fs_basic"
#define FS_SELF "tests/fixtures/proc/fs_self"
#define DS "system.filesystem"

/* ---- the fake statvfs ------------------------------------------------------ */

struct canned {
	const char *mp;
	int rc;
	unsigned long frsize;
	fsblkcnt_t blocks, bfree, bavail;
	fsfilcnt_t files, ffree;
};

static const struct canned canned[] = {
    {"/", 0, 4096, 1000, 250, 200, 100, 40}, {"/boot", 0, 1024, 3, 2, 1, 10, 5},
    {"/mnt/empty", 0, 4096, 0, 0, 0, 0, 0},  {"/mnt/third", -EACCES, 0, 0, 0, 0, 0, 0},
    {"/mnt/ro", -ENOENT, 0, 0, 0, 0, 0, 0},
};
static const struct canned canned_default = {NULL, 0, 512, 8, 4, 2, 7, 3};

#define MAX_CALLS 8192

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
static char g_root[512]; /* stripped from the paths the fake sees */
static char *g_calls[MAX_CALLS];
static size_t g_ncalls;
static bool g_gate_closed; /* "/mnt/nfs" blocks while set */
static int g_nfs_calls, g_nfs_returned;

static void fake_reset(const char *root)
{
	pthread_mutex_lock(&g_mu);
	snprintf(g_root, sizeof(g_root), "%s", root);
	for (size_t i = 0; i < g_ncalls; i++)
		free(g_calls[i]);
	g_ncalls = 0;
	g_gate_closed = false;
	g_nfs_calls = g_nfs_returned = 0;
	pthread_mutex_unlock(&g_mu);
}

static void record(const char *path)
{
	pthread_mutex_lock(&g_mu);
	if (g_ncalls < MAX_CALLS)
		g_calls[g_ncalls++] = strdup(path);
	pthread_mutex_unlock(&g_mu);
}

static size_t calls_of(const char *path)
{
	size_t n = 0;

	pthread_mutex_lock(&g_mu);
	for (size_t i = 0; i < g_ncalls; i++)
		n += strcmp(g_calls[i], path) == 0;
	pthread_mutex_unlock(&g_mu);
	return n;
}

static size_t ncalls(void)
{
	size_t n;

	pthread_mutex_lock(&g_mu);
	n = g_ncalls;
	pthread_mutex_unlock(&g_mu);
	return n;
}

static int fake_statvfs(const char *path, struct statvfs *out)
{
	size_t rl = strlen(g_root);
	const char *mp = strncmp(path, g_root, rl) == 0 ? path + rl : path;
	const struct canned *c = &canned_default;

	record(path);
	if (strcmp(mp, "/mnt/nfs") == 0) {
		pthread_mutex_lock(&g_mu);
		g_nfs_calls++;
		while (g_gate_closed)
			pthread_cond_wait(&g_cv, &g_mu);
		g_nfs_returned++;
		pthread_mutex_unlock(&g_mu);
	}
	for (size_t i = 0; i < sizeof(canned) / sizeof(canned[0]); i++)
		if (strcmp(mp, canned[i].mp) == 0)
			c = &canned[i];
	if (c->rc)
		return c->rc;
	memset(out, 0, sizeof(*out));
	out->f_bsize = 65536; /* differs from f_frsize: the sizes must use f_frsize */
	out->f_frsize = c->frsize;
	out->f_blocks = c->blocks;
	out->f_bfree = c->bfree;
	out->f_bavail = c->bavail;
	out->f_files = c->files;
	out->f_ffree = c->ffree;
	return 0;
}

static void gate(bool closed)
{
	pthread_mutex_lock(&g_mu);
	g_gate_closed = closed;
	pthread_cond_broadcast(&g_cv);
	pthread_mutex_unlock(&g_mu);
}

static int nfs_counter(const int *which)
{
	int v;

	pthread_mutex_lock(&g_mu);
	v = *which;
	pthread_mutex_unlock(&g_mu);
	return v;
}

/* Wait (at most 5 s) until the stuck call has returned `n` times in all. */
static void wait_nfs_returned(int n)
{
	for (int i = 0; i < 5000 && nfs_counter(&g_nfs_returned) < n; i++) {
		struct timespec ms = {0, 1000000};

		nanosleep(&ms, NULL);
	}
	assert_int_equal(nfs_counter(&g_nfs_returned), n);
	/* Let the abandoned worker drop its reference and exit. */
	struct timespec settle = {0, 20000000};
	nanosleep(&settle, NULL);
}

/* ---- helpers ----------------------------------------------------------------- */

static const struct event *by_mp(const struct sfx *f, const char *mp)
{
	return sfx_event_where_str(f, DS, "system.filesystem.mount_point", mp);
}

static void *create_fake(struct sfx *f, const char *root)
{
	void *st = sfx_create(f, &sys_filesystem_metricset);

	fake_reset(root);
	sys_fs_set_statvfs(st, fake_statvfs);
	return st;
}

/* ---- pure parts ---------------------------------------------------------------- */

static void test_unescape(void **state)
{
	char a[] = "/mnt/my\\040disk\\011tab\\012nl\\134bs";
	char b[] = "\\x41\\08\\04\\000\\777\\";
	size_t n;

	(void)state;
	n = sys_fs_unescape(a, strlen(a));
	assert_int_equal(n, strlen("/mnt/my disk\ttab\nnl\\bs"));
	assert_memory_equal(a, "/mnt/my disk\ttab\nnl\\bs", n);
	/* Not escapes: kept byte for byte (no NUL is ever produced). */
	n = sys_fs_unescape(b, strlen(b));
	assert_int_equal(n, strlen("\\x41\\08\\04\\000\\777\\"));
	assert_memory_equal(b, "\\x41\\08\\04\\000\\777\\", n);
}

static void test_parse_line(void **state)
{
	char ok[] =
	    "36 35 98:0 /mnt1 /mnt\\0402 rw,noatime master:1 shared:7 - ext3 /dev/ro\\040ot "
	    "rw,errors=continue";
	char noopt[] = "22 27 0:21 / /proc rw,nosuid - proc proc rw";
	char nosuper[] = "22 27 0:21 / /proc rw - proc proc";
	char nul[] = "1 0 0:1 / /a\0b rw - ext4 x rw";
	char *bad[] = {
	    strdup("22 27 0:21 / /proc rw,nosuid proc proc rw"), /* no "-" */
	    strdup("x 27 0:21 / /proc rw - proc proc rw"),       /* id */
	    strdup("22 27 021 / /proc rw - proc proc rw"),       /* major:minor */
	    strdup("22 27 0:x / /proc rw - proc proc rw"),
	    strdup("22 27 0:21 / /proc rw - proc"), /* no source */
	    strdup("22 27 0:21 /"),
	    strdup(""),
	};
	struct sys_fs_mount m;

	(void)state;
	assert_int_equal(sys_fs_parse_mountinfo_line(ok, strlen(ok), &m), 0);
	assert_int_equal(m.id, 36);
	assert_int_equal(m.parent, 35);
	assert_int_equal(m.major, 98);
	assert_int_equal(m.minor, 0);
	assert_true(sys_text_eq(&m.root, "/mnt1"));
	assert_true(sys_text_eq(&m.mount_point, "/mnt 2"));
	assert_true(sys_text_eq(&m.fstype, "ext3"));
	assert_true(sys_text_eq(&m.source, "/dev/ro ot"));

	assert_int_equal(sys_fs_parse_mountinfo_line(noopt, strlen(noopt), &m), 0);
	assert_true(sys_text_eq(&m.mount_point, "/proc"));
	assert_true(sys_text_eq(&m.fstype, "proc"));
	assert_true(sys_text_eq(&m.source, "proc"));
	assert_int_equal(sys_fs_parse_mountinfo_line(nosuper, strlen(nosuper), &m), 0);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(sys_fs_parse_mountinfo_line(bad[i], strlen(bad[i]), &m), -EINVAL);
		free(bad[i]);
	}
	/* A NUL inside the line is never a path. */
	assert_int_equal(sys_fs_parse_mountinfo_line(nul, sizeof(nul) - 1, &m), -EINVAL);
}

/* ---- the metricset on fixture trees ------------------------------------------ */

static void test_basic_mounts(void **state)
{
	static const char *want[] = {
	    "/",          "/boot",      "/dev/shm",   "/mnt/my disk",
	    "/mnt/nfs",   "/srv/data",  "/mnt/sshfs", "/mnt/empty",
	    "/mnt/stack", "/mnt/under", "/mnt/tuck",  "/mnt/tab\tnl\nend",
	};
	struct sfx *f = sfx_new(FS_BASIC);
	void *st = create_fake(f, FS_BASIC);
	uint64_t parse0 = metrics_get("sys.filesystem.parse_errors");
	uint64_t err0 = metrics_get("sys.filesystem.errors");
	uint64_t van0 = metrics_get("sys.filesystem.vanished");
	const struct event *ev;

	(void)state;
	sfx_sample(f, &sys_filesystem_metricset, st, 0);
	assert_int_equal(sfx_count(f, DS), sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		ev = sfx_event(f, DS, i); /* in mountinfo order */
		assert_string_equal(sfx_str(ev, "system.filesystem.mount_point"), want[i]);
		assert_string_equal(sfx_str(ev, "type"), "filesystem");
		assert_false(sfx_has(ev, "fs.total"));
	}

	/* "/": 1000 blocks of 4096 (not f_bsize), 250 free, 200 for users. */
	ev = by_mp(f, "/");
	assert_string_equal(sfx_str(ev, "system.filesystem.device_name"), "/dev/sda1");
	assert_string_equal(sfx_str(ev, "system.filesystem.type"), "ext4");
	assert_int_equal(sfx_uint(ev, "system.filesystem.total"), 4096000);
	assert_int_equal(sfx_uint(ev, "system.filesystem.free"), 1024000);
	assert_int_equal(sfx_uint(ev, "system.filesystem.available"), 819200);
	assert_int_equal(sfx_uint(ev, "system.filesystem.used.bytes"), 3072000);
	/* used / (used + available), as df's Use%: 3072000 / 3891200 */
	assert_near(sfx_double(ev, "system.filesystem.used.pct"), 0.7895, 1e-12);
	assert_int_equal(sfx_uint(ev, "system.filesystem.files"), 100);
	assert_int_equal(sfx_uint(ev, "system.filesystem.free_files"), 40);
	/* 1 block used, 1 available (1 reserved): 0.5 */
	ev = by_mp(f, "/boot");
	assert_int_equal(sfx_uint(ev, "system.filesystem.total"), 3072);
	assert_int_equal(sfx_uint(ev, "system.filesystem.used.bytes"), 1024);
	assert_near(sfx_double(ev, "system.filesystem.used.pct"), 0.5, 1e-12);
	/* An empty filesystem: 0 %, not NaN. */
	ev = by_mp(f, "/mnt/empty");
	assert_int_equal(sfx_uint(ev, "system.filesystem.total"), 0);
	assert_near(sfx_double(ev, "system.filesystem.used.pct"), 0, 0);

	/* Octal escapes undone in the mount point and the source. */
	ev = by_mp(f, "/mnt/my disk");
	assert_string_equal(sfx_str(ev, "system.filesystem.device_name"), "/dev/disk by\\label");
	assert_string_equal(sfx_str(ev, "system.filesystem.type"), "xfs");
	/* A bind mount of the root device is reported at its own mount point. */
	ev = by_mp(f, "/srv/data");
	assert_string_equal(sfx_str(ev, "system.filesystem.device_name"), "/dev/sda1");
	ev = by_mp(f, "/mnt/sshfs");
	assert_string_equal(sfx_str(ev, "system.filesystem.type"), "fuse.sshfs");
	assert_string_equal(sfx_str(ev, "system.filesystem.device_name"), "me@host:/home");

	/* Stacked mounts: the top one only. The tucked mount (listed first, its parent
	 * listed later at the same path) is the top. /mnt/under/inner hangs below the
	 * over-mounted /mnt/under: unreachable. */
	assert_string_equal(sfx_str(by_mp(f, "/mnt/stack"), "system.filesystem.device_name"),
			    "/dev/sda4");
	assert_string_equal(sfx_str(by_mp(f, "/mnt/under"), "system.filesystem.device_name"),
			    "over");
	assert_string_equal(sfx_str(by_mp(f, "/mnt/tuck"), "system.filesystem.device_name"),
			    "/dev/sda6");
	assert_null(by_mp(f, "/mnt/under/inner"));
	/* Ignored types, the relative mount point, the malformed line, statvfs errors. */
	assert_null(by_mp(f, "/proc"));
	assert_null(by_mp(f, "/sys"));
	assert_null(by_mp(f, "net:[4026532]"));
	assert_null(by_mp(f, "/mnt/broken"));
	assert_null(by_mp(f, "/mnt/third"));
	assert_null(by_mp(f, "/mnt/ro"));
	/* proc/1/mountinfo (the host's table), not proc/self (the container's). */
	assert_null(by_mp(f, "/etc/hosts"));
	assert_int_equal(metrics_get("sys.filesystem.parse_errors") - parse0, 1);
	assert_int_equal(metrics_get("sys.filesystem.errors") - err0, 1);   /* EACCES */
	assert_int_equal(metrics_get("sys.filesystem.vanished") - van0, 1); /* ENOENT */

	/* statvfs only for mounts that are reported or failed, at hostfs + mount point. */
	assert_int_equal(ncalls(), sizeof(want) / sizeof(want[0]) + 2);
	assert_int_equal(calls_of(FS_BASIC "/"), 1);
	assert_int_equal(calls_of(FS_BASIC "/boot"), 1);
	assert_int_equal(calls_of(FS_BASIC "/mnt/my disk"), 1);
	assert_int_equal(calls_of(FS_BASIC "/mnt/under/inner"), 0);
	assert_int_equal(calls_of(FS_BASIC "/proc"), 0);

	/* A second sample reports the same set again. */
	sfx_sample(f, &sys_filesystem_metricset, st, 10 * NS_PER_SEC);
	assert_int_equal(sfx_count(f, DS), sizeof(want) / sizeof(want[0]));
	sys_filesystem_metricset.destroy(st);
	sfx_free(f);
}

static void test_legacy_fields(void **state)
{
	struct sfx *f = sfx_new_cfg(FS_BASIC, "legacy_fields: true");
	void *st = create_fake(f, FS_BASIC);
	const struct event *ev;

	(void)state;
	assert_true(f->ctx.legacy);
	sfx_sample(f, &sys_filesystem_metricset, st, 0);
	ev = by_mp(f, "/");
	assert_non_null(ev);
	assert_string_equal(sfx_str(ev, "fs.device_name"), "/dev/sda1");
	assert_string_equal(sfx_str(ev, "fs.mount_point"), "/");
	assert_int_equal(sfx_uint(ev, "fs.total"), 4096000);
	assert_int_equal(sfx_uint(ev, "fs.used"), 3072000);
	assert_int_equal(sfx_uint(ev, "fs.free"), 1024000);
	assert_int_equal(sfx_uint(ev, "fs.avail"), 819200);
	assert_int_equal(sfx_uint(ev, "fs.files"), 100);
	assert_int_equal(sfx_uint(ev, "fs.free_files"), 40);
	assert_near(sfx_double(ev, "fs.used_p"), 0.75, 1e-12);
	/* The ECS names are still there. */
	assert_int_equal(sfx_uint(ev, "system.filesystem.total"), 4096000);
	assert_string_equal(sfx_str(ev, "type"), "filesystem");
	sys_filesystem_metricset.destroy(st);
	sfx_free(f);
}

static void test_ignore_types_exact(void **state)
{
	struct sfx *f =
	    sfx_new_cfg(FS_BASIC, "topbeat.filesystem.ignore_types: [tmpfs, fuse, ext, xfs]");
	void *st = create_fake(f, FS_BASIC);

	(void)state;
	sfx_sample(f, &sys_filesystem_metricset, st, 0);
	assert_null(by_mp(f, "/dev/shm"));
	assert_null(by_mp(f, "/mnt/under")); /* tmpfs "over" */
	assert_null(by_mp(f, "/mnt/my disk"));
	/* Exact match only: fuse.sshfs and ext4 stay; proc and sysfs are no longer
	 * ignored (the list replaces the default). */
	assert_non_null(by_mp(f, "/mnt/sshfs"));
	assert_non_null(by_mp(f, "/"));
	assert_non_null(by_mp(f, "/proc"));
	assert_non_null(by_mp(f, "/sys"));
	/* Ignoring the type on top does not bring back what it shadows. */
	assert_null(by_mp(f, "/mnt/under/inner"));
	sys_filesystem_metricset.destroy(st);
	sfx_free(f);
}

static void test_self_mountinfo_fallback(void **state)
{
	struct sfx *f = sfx_new(FS_SELF);
	void *st = create_fake(f, FS_SELF);

	(void)state;
	sfx_sample(f, &sys_filesystem_metricset, st, 0);
	assert_int_equal(sfx_count(f, DS), 2);
	assert_non_null(by_mp(f, "/"));
	assert_non_null(by_mp(f, "/boot"));
	sys_filesystem_metricset.destroy(st);
	sfx_free(f);
}

static void test_hostfs_trailing_slash(void **state)
{
	struct sfx *f = sfx_new(FS_BASIC "/");
	void *st = create_fake(f, FS_BASIC);

	(void)state;
	sfx_sample(f, &sys_filesystem_metricset, st, 0);
	assert_int_equal(calls_of(FS_BASIC "/boot"), 1);
	assert_int_equal(calls_of(FS_BASIC "/"), 1);
	assert_int_equal(calls_of(FS_BASIC "//boot"), 0);
	sys_filesystem_metricset.destroy(st);
	sfx_free(f);
}

/* A buffer that ends inside the fourth line (/boot): -EFBIG, counted, and only the
 * complete lines are used. */
static void test_truncated_mountinfo(void **state)
{
	struct sfx *f = sfx_new(FS_BASIC);
	void *st = create_fake(f, FS_BASIC);
	uint64_t tr0 = metrics_get("sys.filesystem.mountinfo_truncated");
	uint64_t parse0 = metrics_get("sys.filesystem.parse_errors");
	FILE *in = fopen(FS_BASIC "/proc/1/mountinfo", "r");
	char line[512];
	size_t off = 0;

	(void)state;
	assert_non_null(in);
	for (int i = 0; i < 3; i++) {
		assert_non_null(fgets(line, sizeof(line), in));
		off += strlen(line);
	}
	fclose(in);
	f->ctx.buf_size = off + 20 + 1; /* 20 bytes of line 4, and the NUL */
	sfx_sample(f, &sys_filesystem_metricset, st, 0);
	assert_int_equal(metrics_get("sys.filesystem.mountinfo_truncated") - tr0, 1);
	/* The cut line is dropped, not parsed as a broken line. */
	assert_int_equal(metrics_get("sys.filesystem.parse_errors") - parse0, 0);
	assert_int_equal(sfx_count(f, DS), 1);
	assert_non_null(by_mp(f, "/"));
	sys_filesystem_metricset.destroy(st);
	sfx_free(f);
}

/* ---- generated trees ----------------------------------------------------------- */

/* A temporary hostfs root whose proc/1/mountinfo has `n` lines: /m/<i>, all of type
 * proc except lines 0, 1, 2 and the last one (ext4). */
static void make_many(struct troot *r, size_t n)
{
	FILE *out;

	troot_new(r);
	out = troot_open(r, "proc/1/mountinfo");
	for (size_t i = 0; i < n; i++)
		fprintf(out, "%zu 1 0:%zu / /m/%zu rw,relatime shared:%zu - %s src%zu rw\n",
			100 + i, i, i, i, (i < 3 || i == n - 1) ? "ext4" : "proc", i);
	fclose(out);
}

static void test_mount_cap(void **state)
{
	char path[512];
	struct troot r;
	struct sfx *f;
	void *st;
	uint64_t cap0 = metrics_get("sys.filesystem.mounts_capped");
	struct stat sb;

	(void)state;
	make_many(&r, SYS_FS_MAX_MOUNTS + 4);
	assert_int_equal(stat(troot_path(&r, "proc/1/mountinfo", path, sizeof(path)), &sb), 0);
	assert_true(sb.st_size > 16 * 4096); /* far more than a page */
	f = sfx_new(r.dir);
	st = create_fake(f, r.dir);
	sfx_sample(f, &sys_filesystem_metricset, st, 0);
	/* The last ext4 line is past the cap. */
	assert_int_equal(sfx_count(f, DS), 3);
	assert_non_null(by_mp(f, "/m/2"));
	assert_null(by_mp(f, "/m/4099"));
	assert_int_equal(metrics_get("sys.filesystem.mounts_capped") - cap0, 1);

	sys_fs_set_max_mounts(st, 2);
	sfx_sample(f, &sys_filesystem_metricset, st, 10 * NS_PER_SEC);
	assert_int_equal(sfx_count(f, DS), 2);
	assert_null(by_mp(f, "/m/2"));
	assert_int_equal(metrics_get("sys.filesystem.mounts_capped") - cap0, 2);

	/* Under the cap: the last line is reported and nothing more is counted. */
	sys_fs_set_max_mounts(st, SYS_FS_MAX_MOUNTS + 4);
	sfx_sample(f, &sys_filesystem_metricset, st, 10 * NS_PER_SEC);
	assert_int_equal(sfx_count(f, DS), 4);
	assert_non_null(by_mp(f, "/m/4099"));
	assert_int_equal(metrics_get("sys.filesystem.mounts_capped") - cap0, 2);
	sys_filesystem_metricset.destroy(st);
	sfx_free(f);
	troot_free(&r);
}

static void test_unreadable_mountinfo(void **state)
{
	struct troot r;
	struct sfx *f;
	void *st;
	uint64_t err0 = metrics_get("sys.filesystem.errors");

	(void)state;
	troot_new(&r);
	f = sfx_new(r.dir);
	st = create_fake(f, r.dir);
	sfx_sample(f, &sys_filesystem_metricset, st, 0);
	sfx_sample(f, &sys_filesystem_metricset, st, 10 * NS_PER_SEC);
	assert_int_equal(sfx_count(f, DS), 0);
	assert_int_equal(ncalls(), 0);
	assert_int_equal(metrics_get("sys.filesystem.errors") - err0, 2);
	sys_filesystem_metricset.destroy(st);
	sfx_free(f);
	troot_free(&r);
}

/* ---- the statvfs timeout ------------------------------------------------------- */

static uint64_t timed_sample(struct sfx *f, void *st)
{
	uint64_t t0 = clock_mono_ns();

	sfx_sample(f, &sys_filesystem_metricset, st, 10 * NS_PER_SEC);
	return clock_mono_ns() - t0;
}

static void test_timeout_skips_and_recovers(void **state)
{
	struct sfx *f = sfx_new_cfg(FS_BASIC, "topbeat.filesystem.timeout: 100ms");
	void *st = create_fake(f, FS_BASIC);
	uint64_t to0 = metrics_get("sys.filesystem.timeouts");
	uint64_t sk0 = metrics_get("sys.filesystem.stuck_skipped");
	uint64_t took;

	(void)state;
	assert_int_equal(f->cfg.fs_timeout, 100 * NS_PER_MS);
	gate(true);
	/* 1: the NFS call hangs; the sample waits the timeout once, skips that mount
	 * and goes on with a fresh worker for the mounts after it. */
	took = timed_sample(f, st);
	assert_true(took >= 100 * NS_PER_MS);
	assert_true(took < 2 * NS_PER_SEC);
	assert_int_equal(metrics_get("sys.filesystem.timeouts") - to0, 1);
	assert_null(by_mp(f, "/mnt/nfs"));
	assert_non_null(by_mp(f, "/"));
	assert_non_null(by_mp(f, "/mnt/tuck")); /* listed after the NFS mount */
	assert_int_equal(sfx_count(f, DS), 11);
	assert_int_equal(nfs_counter(&g_nfs_calls), 1);

	/* 2, 3: still stuck — not asked again, no wait, no new timeout. */
	for (int i = 0; i < 2; i++) {
		took = timed_sample(f, st);
		assert_true(took < 100 * NS_PER_MS);
		assert_null(by_mp(f, "/mnt/nfs"));
		assert_int_equal(sfx_count(f, DS), 11);
	}
	assert_int_equal(nfs_counter(&g_nfs_calls), 1);
	assert_int_equal(calls_of(FS_BASIC "/mnt/nfs"), 1);
	assert_int_equal(metrics_get("sys.filesystem.timeouts") - to0, 1);
	assert_int_equal(metrics_get("sys.filesystem.stuck_skipped") - sk0, 2);

	/* The server comes back: the stuck call returns, the mount is sampled again. */
	gate(false);
	wait_nfs_returned(1);
	took = timed_sample(f, st);
	assert_non_null(by_mp(f, "/mnt/nfs"));
	assert_int_equal(sfx_uint(by_mp(f, "/mnt/nfs"), "system.filesystem.total"), 4096);
	assert_string_equal(sfx_str(by_mp(f, "/mnt/nfs"), "system.filesystem.device_name"),
			    "filer:/export/home");
	assert_int_equal(sfx_count(f, DS), 12);
	assert_int_equal(nfs_counter(&g_nfs_calls), 2);
	assert_int_equal(metrics_get("sys.filesystem.timeouts") - to0, 1);
	assert_int_equal(metrics_get("sys.filesystem.stuck_skipped") - sk0, 2);
	sys_filesystem_metricset.destroy(st);
	sfx_free(f);
}

/* destroy() with a call still hanging returns at once; the worker exits when its
 * call returns. */
static void test_destroy_does_not_wait(void **state)
{
	struct sfx *f = sfx_new_cfg(FS_BASIC, "topbeat.filesystem.timeout: 50ms");
	void *st = create_fake(f, FS_BASIC);
	uint64_t t0;

	(void)state;
	gate(true);
	sfx_sample(f, &sys_filesystem_metricset, st, 0);
	assert_int_equal(nfs_counter(&g_nfs_calls), 1);
	assert_int_equal(nfs_counter(&g_nfs_returned), 0);
	t0 = clock_mono_ns();
	sys_filesystem_metricset.destroy(st);
	assert_true(clock_mono_ns() - t0 < 50 * NS_PER_MS);
	assert_int_equal(nfs_counter(&g_nfs_returned), 0); /* still hanging */
	sfx_free(f);
	gate(false);
	wait_nfs_returned(1);
}

/* ---- the live machine ------------------------------------------------------------ */

static int record_real_statvfs(const char *path, struct statvfs *out)
{
	record(path);
	return statvfs(path, out) == 0 ? 0 : -errno;
}

/* hostfs "/": proc/self/mountinfo and the real statvfs on the mount points as they
 * are. "/" is reported with what statvfs("/") says now. */
static void test_live_root(void **state)
{
	struct sfx *f = sfx_new("/");
	void *st = sfx_create(f, &sys_filesystem_metricset);
	const struct event *ev;
	struct statvfs sv;
	uint64_t frsize, tol = 64ull << 20;

	(void)state;
	fake_reset("");
	sfx_sample(f, &sys_filesystem_metricset, st, 0);
	assert_int_equal(statvfs("/", &sv), 0);
	frsize = sv.f_frsize;
	ev = by_mp(f, "/");
	assert_non_null(ev);
	assert_true(strlen(sfx_str(ev, "system.filesystem.device_name")) > 0);
	assert_int_equal(sfx_uint(ev, "system.filesystem.total"), (uint64_t)sv.f_blocks * frsize);
	assert_int_equal(sfx_uint(ev, "system.filesystem.files"), (uint64_t)sv.f_files);
	/* free space moves while we look: 64 MiB either way. */
	assert_true(llabs((long long)sfx_uint(ev, "system.filesystem.free") -
			  (long long)((uint64_t)sv.f_bfree * frsize)) <= (long long)tol);
	assert_true(llabs((long long)sfx_uint(ev, "system.filesystem.available") -
			  (long long)((uint64_t)sv.f_bavail * frsize)) <= (long long)tol);
	assert_true(sfx_double(ev, "system.filesystem.used.pct") >= 0);
	assert_true(sfx_double(ev, "system.filesystem.used.pct") <= 1);
	/* Every event: an absolute mount point, reported once, not an ignored type. */
	for (size_t i = 0; i < f->nev; i++) {
		char mp[8192];
		const char *type = sfx_str(f->ev[i], "system.filesystem.type");

		for (size_t k = 0; k < f->cfg.fs_ignore_types.n; k++)
			assert_string_not_equal(type, f->cfg.fs_ignore_types.v[k]);
		snprintf(mp, sizeof(mp), "%s", sfx_str(f->ev[i], "system.filesystem.mount_point"));
		assert_true(mp[0] == '/');
		for (size_t j = i + 1; j < f->nev; j++)
			assert_string_not_equal(mp,
						sfx_str(f->ev[j], "system.filesystem.mount_point"));
	}

	/* Through the seam: with hostfs "/" the path is the mount point itself. */
	sys_fs_set_statvfs(st, record_real_statvfs);
	sfx_sample(f, &sys_filesystem_metricset, st, 10 * NS_PER_SEC);
	assert_int_equal(calls_of("/"), 1);
	assert_int_equal(calls_of("//"), 0);
	assert_non_null(by_mp(f, "/"));
	sys_filesystem_metricset.destroy(st);
	sfx_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_unescape),
	    cmocka_unit_test(test_parse_line),
	    cmocka_unit_test(test_basic_mounts),
	    cmocka_unit_test(test_legacy_fields),
	    cmocka_unit_test(test_ignore_types_exact),
	    cmocka_unit_test(test_self_mountinfo_fallback),
	    cmocka_unit_test(test_hostfs_trailing_slash),
	    cmocka_unit_test(test_truncated_mountinfo),
	    cmocka_unit_test(test_mount_cap),
	    cmocka_unit_test(test_unreadable_mountinfo),
	    cmocka_unit_test(test_timeout_skips_and_recovers),
	    cmocka_unit_test(test_destroy_does_not_wait),
	    cmocka_unit_test(test_live_root),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);

	fake_reset("");
	return rc;
}
