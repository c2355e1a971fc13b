/* test_ctrmap.c — the IP → Docker container map (sys/ctrmap.c) on hostfs trees the
 * test writes in a temporary directory: var/lib/docker/containers/<id>/config.v2.json
 * for running, stopped, restarted and removed containers, broken files and the caps,
 * the cache that spares unchanged files, enrichment of transaction events, and
 * lookups racing a refreshing thread. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "hostbeat/ctrmap.h"
#include "hostbeat/event.h"
#include "hostbeat/ip.h"
#include "hostbeat/mem.h"
#include "hostbeat/metrics.h"
#include "sys_fixture.h"

#define DIR_C "var/lib/docker/containers"

#define ID_A "aa86eacfb3b3ed4cd362c1e88fc89a53908ad05fb3a4103bca3f9b28292d14bf"
#define ID_B "3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d"
#define ID_C "2e7d2c03a9507ae265ecf5b5356885a53393a2029d241394997265a1a25aefc6"
#define ID_D "18ac3e7343f016890c510e93f935261169d9e3f565436429830faf0934f4f8e4"

/* Docker 24's layout, trimmed to what the map reads plus neighbours it must ignore. */
#define NET(name, v4, v6)                                                                  \
	"\"" name "\":{\"IPAMConfig\":null,\"Links\":null,\"Aliases\":null,\"NetworkID\":" \
	"\"5f1d\",\"EndpointID\":\"9a0c\",\"Gateway\":\"172.17.0.1\",\"IPAddress\":\"" v4  \
	"\",\"IPPrefixLen\":16,\"IPv6Gateway\":\"\",\"GlobalIPv6Address\":\"" v6           \
	"\",\"GlobalIPv6PrefixLen\":64,\"MacAddress\":\"02:42:ac:11:00:02\"}"

struct fx {
	struct troot r;
	int root_fd;
	struct ctrmap *m;
	struct ev_pool *pool;
};

/* ---- helpers --------------------------------------------------------------- */

static const char *cfg_rel(const char *id, char *out, size_t size)
{
	snprintf(out, size, DIR_C "/%s/config.v2.json", id);
	return out;
}

static void put_raw(const struct fx *f, const char *id, const char *text)
{
	char rel[256];

	troot_write(&f->r, cfg_rel(id, rel, sizeof(rel)), text);
}

/* A container's config.v2.json; nets is the inside of NetworkSettings.Networks. */
static void put(const struct fx *f, const char *id, const char *name, const char *image,
		bool running, const char *nets)
{
	char rel[256];

	troot_printf(&f->r, cfg_rel(id, rel, sizeof(rel)),
		     "{\"StreamConfig\":{},\"State\":{\"Running\":%s,\"Paused\":false,\"Pid\":%d,"
		     "\"ExitCode\":0,\"StartedAt\":\"2024-05-01T10:00:00.1Z\"},\"ID\":\"%s\","
		     "\"Created\":\"2024-05-01T09:59:59Z\",\"Path\":\"/docker-entrypoint.sh\","
		     "\"Config\":{\"Hostname\":\"%.12s\",\"Env\":[\"PATH=/usr/bin\"],\"Image\":"
		     "\"%s\",\"Labels\":{}},\"Image\":\"sha256:0a1b\",\"NetworkSettings\":{"
		     "\"Bridge\":\"\",\"SandboxID\":\"77aa\",\"Ports\":{},\"Networks\":{%s}},"
		     "\"Name\":\"/%s\",\"Driver\":\"overlay2\",\"RestartCount\":0}\n",
		     running ? "true" : "false", running ? 4242 : 0, id, id, image, nets, name);
}

/* Force the file's mtime (Docker rewrites the file on every state change). */
static void set_mtime(const struct fx *f, const char *id, time_t sec)
{
	char rel[256], path[4096];
	struct timespec ts[2] = {{sec, 0}, {sec, 0}};

	troot_path(&f->r, cfg_rel(id, rel, sizeof(rel)), path, sizeof(path));
	if (utimensat(AT_FDCWD, path, ts, 0) != 0)
		fail_msg("utimensat %s: %s", path, strerror(errno));
}

static void rm_ctr(const struct fx *f, const char *id)
{
	char rel[256];

	snprintf(rel, sizeof(rel), DIR_C "/%s", id);
	troot_rm(&f->r, rel);
}

static struct hb_ip ip_of(const char *s)
{
	struct hb_ip ip;

	if (hb_ip_parse(s, &ip) != 0)
		fail_msg("bad address in the test: %s", s);
	return ip;
}

static void refresh_ok(struct fx *f)
{
	assert_int_equal(ctrmap_refresh(f->m), 0);
}

#define assert_maps(f, ip, id, name, image) \
	assert_maps_at((f), (ip), (id), (name), (image), __LINE__)
static void assert_maps_at(const struct fx *f, const char *ip, const char *id, const char *name,
			   const char *image, int line)
{
	struct hb_ip a = ip_of(ip);
	struct ctr_meta c;

	memset(&c, 0x5a, sizeof(c));
	if (!ctrmap_lookup(f->m, &a, &c))
		fail_msg("line %d: %s is not mapped", line, ip);
	if (strcmp(c.id, id) != 0 || strcmp(c.name, name) != 0 || strcmp(c.image, image) != 0)
		fail_msg("line %d: %s → %s / %s / %s, expected %s / %s / %s", line, ip, c.id,
			 c.name, c.image, id, name, image);
}

#define assert_unmapped(f, ip) assert_unmapped_at((f), (ip), __LINE__)
static void assert_unmapped_at(const struct fx *f, const char *ip, int line)
{
	struct hb_ip a = ip_of(ip);
	struct ctr_meta c;

	if (ctrmap_lookup(f->m, &a, &c))
		fail_msg("line %d: %s is mapped to %s (%s)", line, ip, c.id, c.name);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	troot_new(&f->r);
	f->root_fd = open(f->r.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(f->root_fd >= 0);
	f->m = ctrmap_new(f->root_fd);
	assert_non_null(f->m);
	f->pool = ev_pool_new(8, 1 << 16, 256);
	assert_non_null(f->pool);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	ctrmap_free(f->m);
	ev_pool_free(f->pool);
	close(f->root_fd);
	troot_free(&f->r);
	free(f);
	return 0;
}

/* ---- the map ----------------------------------------------------------------- */

static void test_two_running_two_networks(void **state)
{
	struct fx *f = *state;
	struct hb_ip v4_as_v6 = ip_of("172.17.0.2");
	struct ctr_meta c;

	put(f, ID_A, "web", "nginx:1.25", true,
	    NET("bridge", "172.17.0.2", "fd00::2") "," NET("mynet", "172.18.0.5", ""));
	put(f, ID_B, "db", "mysql:8.0", true, NET("bridge", "172.17.0.3", "fd00::3"));
	refresh_ok(f);

	assert_int_equal(ctrmap_count(f->m), 5);
	assert_maps(f, "172.17.0.2", ID_A, "web", "nginx:1.25");
	assert_maps(f, "fd00::2", ID_A, "web", "nginx:1.25");
	assert_maps(f, "172.18.0.5", ID_A, "web", "nginx:1.25");
	assert_maps(f, "172.17.0.3", ID_B, "db", "mysql:8.0");
	assert_maps(f, "fd00:0:0::3", ID_B, "db", "mysql:8.0");
	assert_unmapped(f, "172.17.0.4");
	assert_unmapped(f, "172.17.0.1"); /* the gateway is the host */
	assert_unmapped(f, "fd00::4");

	/* The same 4 bytes as another version are another address; an unset one is none. */
	v4_as_v6.ver = 6;
	assert_false(ctrmap_lookup(f->m, &v4_as_v6, &c));
	memset(&v4_as_v6, 0, sizeof(v4_as_v6));
	assert_false(ctrmap_lookup(f->m, &v4_as_v6, &c));
	/* Bytes past a v4 address in the caller's struct are not part of it. */
	v4_as_v6 = ip_of("172.17.0.2");
	memset(v4_as_v6.a + 4, 0xee, 12);
	assert_true(ctrmap_lookup(f->m, &v4_as_v6, &c));
	assert_string_equal(c.id, ID_A);
}

static void test_stopped_not_mapped(void **state)
{
	struct fx *f = *state;

	put(f, ID_A, "web", "nginx:1.25", false, NET("bridge", "172.17.0.2", "fd00::2"));
	put(f, ID_B, "db", "mysql:8.0", true, NET("bridge", "172.17.0.3", ""));
	refresh_ok(f);
	assert_unmapped(f, "172.17.0.2");
	assert_unmapped(f, "fd00::2");
	assert_maps(f, "172.17.0.3", ID_B, "db", "mysql:8.0");
	assert_int_equal(ctrmap_count(f->m), 1);

	/* Started: mapped at the next refresh. Stopped again: gone. */
	put(f, ID_A, "web", "nginx:1.25", true, NET("bridge", "172.17.0.2", "fd00::2"));
	set_mtime(f, ID_A, 1700000100);
	refresh_ok(f);
	assert_maps(f, "172.17.0.2", ID_A, "web", "nginx:1.25");
	put(f, ID_A, "web", "nginx:1.25", false, NET("bridge", "172.17.0.2", "fd00::2"));
	set_mtime(f, ID_A, 1700000200);
	refresh_ok(f);
	assert_unmapped(f, "172.17.0.2");
	assert_maps(f, "172.17.0.3", ID_B, "db", "mysql:8.0");
}

static void test_empty_addresses(void **state)
{
	struct fx *f = *state;
	uint64_t bad = metrics_get("ctrmap.bad_address");

	/* IPv6-only on one network, nothing on another; network_mode none and host. */
	put(f, ID_A, "v6only", "alpine", true,
	    NET("v6net", "", "fd00:1::9") "," NET("other", "", ""));
	put(f, ID_B, "isolated", "alpine", true, NET("none", "", ""));
	put(f, ID_C, "hostnet", "alpine", true, NET("host", "", ""));
	put_raw(f, ID_D, "{\"ID\":\"" ID_D "\",\"Name\":\"/bare\",\"State\":{\"Running\":true}}");
	refresh_ok(f);
	assert_int_equal(ctrmap_count(f->m), 1);
	assert_maps(f, "fd00:1::9", ID_A, "v6only", "alpine");
	assert_int_equal(metrics_get("ctrmap.bad_address"), bad);
}

static void test_removed_between_refreshes(void **state)
{
	struct fx *f = *state;

	put(f, ID_A, "web", "nginx:1.25", true, NET("bridge", "172.17.0.2", ""));
	put(f, ID_B, "db", "mysql:8.0", true, NET("bridge", "172.17.0.3", ""));
	refresh_ok(f);
	assert_int_equal(ctrmap_count(f->m), 2);
	rm_ctr(f, ID_A);
	refresh_ok(f);
	assert_unmapped(f, "172.17.0.2");
	assert_maps(f, "172.17.0.3", ID_B, "db", "mysql:8.0");
	assert_int_equal(ctrmap_count(f->m), 1);

	/* The directory left behind while Docker removes it, without its file. */
	rm_ctr(f, ID_B);
	troot_mkdir(&f->r, DIR_C "/" ID_B);
	refresh_ok(f);
	assert_int_equal(ctrmap_count(f->m), 0);
	assert_unmapped(f, "172.17.0.3");
}

static void test_restart_changes_ip(void **state)
{
	struct fx *f = *state;

	put(f, ID_A, "web", "nginx:1.25", true, NET("bridge", "172.17.0.2", ""));
	set_mtime(f, ID_A, 1700000000);
	put(f, ID_B, "db", "mysql:8.0", true, NET("bridge", "172.17.0.3", ""));
	refresh_ok(f);
	assert_maps(f, "172.17.0.2", ID_A, "web", "nginx:1.25");

	/* Restarted while B took .2: same size, same inode, another mtime. */
	put(f, ID_A, "web", "nginx:1.25", true, NET("bridge", "172.17.0.4", ""));
	set_mtime(f, ID_A, 1700000060);
	put(f, ID_B, "db", "mysql:8.0", true, NET("bridge", "172.17.0.2", ""));
	set_mtime(f, ID_B, 1700000060);
	refresh_ok(f);
	assert_maps(f, "172.17.0.4", ID_A, "web", "nginx:1.25");
	assert_maps(f, "172.17.0.2", ID_B, "db", "mysql:8.0");
	assert_unmapped(f, "172.17.0.3");
	assert_int_equal(ctrmap_count(f->m), 2);

	/* Renamed and re-imaged (docker rename, compose recreate keeps no id: a new one). */
	put(f, ID_A, "frontend", "nginx:1.27", true, NET("bridge", "172.17.0.4", ""));
	set_mtime(f, ID_A, 1700000120);
	refresh_ok(f);
	assert_maps(f, "172.17.0.4", ID_A, "frontend", "nginx:1.27");
}

static void test_unchanged_files_not_read(void **state)
{
	struct fx *f = *state;
	uint64_t reads = metrics_get("ctrmap.files_read");

	put(f, ID_A, "web", "nginx:1.25", true, NET("bridge", "172.17.0.2", ""));
	put(f, ID_B, "db", "mysql:8.0", false, NET("bridge", "", ""));
	put_raw(f, ID_C, "not json");
	refresh_ok(f);
	assert_int_equal(metrics_get("ctrmap.files_read") - reads, 3);
	refresh_ok(f);
	refresh_ok(f);
	assert_int_equal(metrics_get("ctrmap.files_read") - reads, 3);
	assert_maps(f, "172.17.0.2", ID_A, "web", "nginx:1.25");

	/* Only the touched file is read again. */
	set_mtime(f, ID_B, 1700000500);
	refresh_ok(f);
	assert_int_equal(metrics_get("ctrmap.files_read") - reads, 4);
	assert_maps(f, "172.17.0.2", ID_A, "web", "nginx:1.25");
}

/* A config.v2.json of exactly `size` bytes: a valid running container padded with
 * spaces (only whitespace may follow the object). */
static void put_padded(const struct fx *f, const char *id, const char *ip, size_t size)
{
	char rel[256], head[512];
	int n = snprintf(head, sizeof(head),
			 "{\"ID\":\"%s\",\"Name\":\"/big\",\"Config\":{\"Image\":\"big:1\"},"
			 "\"State\":{\"Running\":true},\"NetworkSettings\":{\"Networks\":{" NET(
			     "bridge", "%s", "") "}}}",
			 id, ip);
	FILE *fp = troot_open(&f->r, cfg_rel(id, rel, sizeof(rel)));

	assert_true(n > 0 && (size_t)n < size);
	fwrite(head, 1, (size_t)n, fp);
	for (size_t i = (size_t)n; i < size; i++)
		fputc(' ', fp);
	assert_int_equal(fclose(fp), 0);
}

static void test_bad_files_counted_and_skipped(void **state)
{
	struct fx *f = *state;
	static const char *const invalid[] = {
	    "not json at all",
	    "[1,2,3]",
	    "{\"State\":{\"Running\":true}} trailing",
	    "{\"State\":{\"Running\":true},\"NetworkSettings\":{\"Networks\":{\"b\":{\"IPAddress\"",
	    "",
	    "{\"ID\":\"" ID_A
	    "\",\"NetworkSettings\":{\"Networks\":{" NET("b", "10.1.0.1", "") "}}}",
	    "{\"State\":{\"Running\":\"true\"},\"NetworkSettings\":{\"Networks\":{" NET(
		"b", "10.1.0.1", "") "}}}",
	    "{\"State\":[],\"NetworkSettings\":{\"Networks\":{" NET("b", "10.1.0.1", "") "}}}",
	    "{\"ID\":\"" ID_B
	    "\",\"State\":{\"Running\":true},\"NetworkSettings\":{\"Networks\":{" NET(
		"b", "10.1.0.1", "") "}}}",
	    "{\"ID\":7,\"State\":{\"Running\":true},\"NetworkSettings\":{\"Networks\":{" NET(
		"b", "10.1.0.1", "") "}}}",
	    "{\"State\":{\"Running\":true},\"NetworkSettings\":{\"Networks\":[" NET("b", "10.1.0.1",
										    "") "]}}",
	    "{\"State\":{\"Running\":true},\"NetworkSettings\":{\"Networks\":{\"b\":{\"IPAddress\":"
	    "167837953}}}}",
	    "{\"State\":{\"Running\":true},\"NetworkSettings\":{\"Networks\":{\"b\":\"10.1.0.1\"}}"
	    "}",
	    "{\"State\":{\"Running\":true},\"Name\":[\"/"
	    "x\"],\"NetworkSettings\":{\"Networks\":{" NET("b", "10.1.0.1", "") "}}}",
	};
	uint64_t inv = metrics_get("ctrmap.file_invalid"), big = metrics_get("ctrmap.file_too_big");
	char id[CTRMAP_ID_LEN + 1];

	put(f, ID_C, "good", "alpine", true, NET("bridge", "172.17.0.9", ""));
	for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
		snprintf(id, sizeof(id), "%064zx", i + 1);
		put_raw(f, id, invalid[i]);
	}
	put_padded(f, ID_A, "10.2.0.1", CTRMAP_FILE_MAX + 1);
	put_padded(f, ID_D, "10.2.0.2", CTRMAP_FILE_MAX); /* at the cap: fine */
	refresh_ok(f);

	assert_int_equal(metrics_get("ctrmap.file_invalid") - inv,
			 sizeof(invalid) / sizeof(invalid[0]));
	assert_int_equal(metrics_get("ctrmap.file_too_big") - big, 1);
	assert_unmapped(f, "10.1.0.1");
	assert_unmapped(f, "10.2.0.1");
	assert_maps(f, "10.2.0.2", ID_D, "big", "big:1");
	assert_maps(f, "172.17.0.9", ID_C, "good", "alpine");
	assert_int_equal(ctrmap_count(f->m), 2);

	/* Counted once per change of the file, not at every refresh. */
	refresh_ok(f);
	assert_int_equal(metrics_get("ctrmap.file_invalid") - inv,
			 sizeof(invalid) / sizeof(invalid[0]));
	assert_int_equal(metrics_get("ctrmap.file_too_big") - big, 1);

	/* Fixed: mapped. */
	put(f, ID_A, "fixed", "alpine", true, NET("bridge", "10.2.0.1", ""));
	refresh_ok(f);
	assert_maps(f, "10.2.0.1", ID_A, "fixed", "alpine");
}

static void test_bad_addresses(void **state)
{
	struct fx *f = *state;
	uint64_t bad = metrics_get("ctrmap.bad_address");

	put(f, ID_A, "web", "nginx", true,
	    NET("n1", "not-an-ip", "fd00::7") "," NET("n2", "172.17.0.300", "") "," NET(
		"n3", "172.17.0.2\\u0000junk", "") "," NET("n4", " 172.17.0.5",
							   "") "," NET("n5", "172.17.0.6", ""));
	refresh_ok(f);
	assert_int_equal(metrics_get("ctrmap.bad_address") - bad, 4);
	assert_maps(f, "fd00::7", ID_A, "web", "nginx");
	assert_maps(f, "172.17.0.6", ID_A, "web", "nginx");
	assert_unmapped(f, "172.17.0.2");
	assert_unmapped(f, "172.17.0.5");
	assert_int_equal(ctrmap_count(f->m), 2);
}

static void test_caps(void **state)
{
	struct fx *f = *state;
	uint64_t acap = metrics_get("ctrmap.addresses_over_cap");
	uint64_t field = metrics_get("ctrmap.field_skipped");
	char nets[8192] = "", name[CTRMAP_NAME_MAX + 2], image[CTRMAP_IMAGE_MAX + 2], ip[32];
	size_t len = 0;

	/* 17 networks, one v4 address each; the same address twice counts once. */
	for (int i = 0; i < 17; i++) {
		snprintf(ip, sizeof(ip), "10.0.%d.1", i);
		len += (size_t)snprintf(nets + len, sizeof(nets) - len,
					"%s\"n%d\":{\"IPAddress\":\"%s\"}", i ? "," : "", i, ip);
	}
	snprintf(nets + len, sizeof(nets) - len, ",\"dup\":{\"IPAddress\":\"10.0.0.1\"}");
	put(f, ID_A, "many", "alpine", true, nets);

	/* A name at its cap is kept, one byte over is left out; the container stays mapped. */
	memset(name, 'n', CTRMAP_NAME_MAX);
	name[CTRMAP_NAME_MAX] = '\0';
	memset(image, 'i', CTRMAP_IMAGE_MAX + 1);
	image[CTRMAP_IMAGE_MAX + 1] = '\0';
	put(f, ID_B, name, image, true, NET("bridge", "172.17.0.3", ""));
	name[CTRMAP_NAME_MAX] = 'n';
	name[CTRMAP_NAME_MAX + 1] = '\0';
	image[CTRMAP_IMAGE_MAX] = '\0';
	put(f, ID_C, name, image, true, NET("bridge", "172.17.0.4", ""));
	put(f, ID_D, "nul\\u0000name", "alpine", true, NET("bridge", "172.17.0.5", ""));
	refresh_ok(f);

	assert_int_equal(metrics_get("ctrmap.addresses_over_cap") - acap, 1);
	assert_int_equal(metrics_get("ctrmap.field_skipped") - field, 3);
	assert_maps(f, "10.0.0.1", ID_A, "many", "alpine");
	assert_maps(f, "10.0.15.1", ID_A, "many", "alpine");
	assert_unmapped(f, "10.0.16.1");
	name[CTRMAP_NAME_MAX] = '\0';
	assert_maps(f, "172.17.0.3", ID_B, name, "");
	assert_maps(f, "172.17.0.4", ID_C, "", image);
	assert_maps(f, "172.17.0.5", ID_D, "", "alpine");
	assert_int_equal(ctrmap_count(f->m), CTRMAP_MAX_ADDRS + 3);
}

static void test_containers_over_cap(void **state)
{
	struct fx *f = *state;
	uint64_t cap = metrics_get("ctrmap.containers_over_cap");
	char rel[256];

	for (unsigned i = 0; i < CTRMAP_MAX_CONTAINERS + 2; i++) {
		snprintf(rel, sizeof(rel), DIR_C "/%064x", i);
		troot_mkdir(&f->r, rel);
	}
	refresh_ok(f);
	assert_int_equal(metrics_get("ctrmap.containers_over_cap") - cap, 2);
	refresh_ok(f);
	assert_int_equal(metrics_get("ctrmap.containers_over_cap") - cap, 4);
}

static void test_ignores_other_names(void **state)
{
	struct fx *f = *state;
	char rel[256];
	static const char *const names[] = {
	    "abc",
	    "AA86EACFB3B3ED4CD362C1E88FC89A53908AD05FB3A4103BCA3F9B28292D14BF",
	    ID_A "0",
	    "aa86eacfb3b3ed4cd362c1e88fc89a53908ad05fb3a4103bca3f9b28292d14b",
	    "aa86eacfb3b3ed4cd362c1e88fc89a53908ad05fb3a4103bca3f9b28292d14bg",
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(rel, sizeof(rel), DIR_C "/%s/config.v2.json", names[i]);
		troot_printf(
		    &f->r, rel,
		    "{\"State\":{\"Running\":true},\"NetworkSettings\":{\"Networks\":{" NET(
			"b", "10.3.0.%zu", "") "}}}",
		    i + 1);
	}
	troot_write(&f->r, DIR_C "/" ID_B, "a file, not a directory");
	refresh_ok(f);
	assert_int_equal(ctrmap_count(f->m), 0);
}

static void test_missing_dir(void **state)
{
	struct fx *f = *state;
	uint64_t unreadable = metrics_get("ctrmap.file_unreadable");

	/* No Docker on this host: empty, no error. */
	refresh_ok(f);
	assert_int_equal(ctrmap_count(f->m), 0);
	assert_unmapped(f, "172.17.0.2");

	/* Docker installed later. */
	put(f, ID_A, "web", "nginx:1.25", true, NET("bridge", "172.17.0.2", ""));
	refresh_ok(f);
	assert_maps(f, "172.17.0.2", ID_A, "web", "nginx:1.25");

	/* Its state directory gone (or replaced by a file): empty again. */
	troot_rm(&f->r, "var/lib/docker");
	refresh_ok(f);
	assert_unmapped(f, "172.17.0.2");
	troot_write(&f->r, "var/lib/docker/containers", "");
	refresh_ok(f);
	assert_int_equal(ctrmap_count(f->m), 0);
	assert_int_equal(metrics_get("ctrmap.file_unreadable"), unreadable);

	/* Back, with the same file as before: read again, not taken from a stale cache. */
	troot_rm(&f->r, "var/lib/docker");
	put(f, ID_A, "web", "nginx:1.25", true, NET("bridge", "172.17.0.2", ""));
	refresh_ok(f);
	assert_maps(f, "172.17.0.2", ID_A, "web", "nginx:1.25");
}

static void test_ip_conflict(void **state)
{
	struct fx *f = *state;
	uint64_t conflicts = metrics_get("ctrmap.ip_conflicts");

	put(f, ID_A, "web", "nginx", true,
	    NET("bridge", "172.17.0.2", "") "," NET("own", "172.20.0.2", ""));
	put(f, ID_B, "db", "mysql", true, NET("bridge", "172.17.0.2", "fd00::3"));
	refresh_ok(f);
	assert_unmapped(f, "172.17.0.2");
	assert_maps(f, "172.20.0.2", ID_A, "web", "nginx");
	assert_maps(f, "fd00::3", ID_B, "db", "mysql");
	assert_int_equal(metrics_get("ctrmap.ip_conflicts") - conflicts, 1);

	/* Resolved when the stale one stops. */
	put(f, ID_A, "web", "nginx", false,
	    NET("bridge", "172.17.0.2", "") "," NET("own", "172.20.0.2", ""));
	set_mtime(f, ID_A, 1700000300);
	refresh_ok(f);
	assert_maps(f, "172.17.0.2", ID_B, "db", "mysql");
	assert_unmapped(f, "172.20.0.2");
}

/* Memory short at each allocation of a refresh in turn: an empty map and -ENOMEM,
 * then the next refresh maps everything, also when no file changed since. */
static void test_alloc_failure(void **state)
{
	struct fx *f = *state;
	long n;
	int rc;

	put(f, ID_A, "web", "nginx:1.25", true, NET("bridge", "172.17.0.2", "fd00::2"));
	put(f, ID_B, "db", "mysql:8.0", true, NET("bridge", "172.17.0.3", ""));
	for (n = 0;; n++) {
		ctrmap_free(f->m);
		f->m = ctrmap_new(f->root_fd);
		assert_non_null(f->m);
		mem_fail_after(n);
		rc = ctrmap_refresh(f->m);
		mem_fail_reset();
		if (rc == 0)
			break;
		assert_int_equal(rc, -ENOMEM);
		assert_int_equal(ctrmap_count(f->m), 0);
		refresh_ok(f);
		assert_maps(f, "172.17.0.2", ID_A, "web", "nginx:1.25");
		assert_maps(f, "fd00::2", ID_A, "web", "nginx:1.25");
		assert_maps(f, "172.17.0.3", ID_B, "db", "mysql:8.0");
	}
	assert_true(n >= 4); /* names, entries, file buffer, the table's three blocks */
	assert_int_equal(ctrmap_count(f->m), 3);

	/* Warm: only a changed table allocates; it fails, then comes back unchanged. */
	put(f, ID_B, "db", "mysql:8.0", true, NET("bridge", "172.17.0.5", ""));
	set_mtime(f, ID_B, 1700000400);
	mem_fail_after(0);
	rc = ctrmap_refresh(f->m);
	mem_fail_reset();
	assert_int_equal(rc, -ENOMEM);
	assert_unmapped(f, "172.17.0.2");
	refresh_ok(f);
	assert_maps(f, "172.17.0.2", ID_A, "web", "nginx:1.25");
	assert_maps(f, "172.17.0.5", ID_B, "db", "mysql:8.0");
	assert_unmapped(f, "172.17.0.3");
}

/* ---- enrich ------------------------------------------------------------------ */

static struct event *txn(const struct fx *f, const char *client, const char *server)
{
	struct event *ev = ev_pool_get(f->pool, EV_KIND_TRANSACTION, "http");

	assert_non_null(ev);
	ev->has_tuple = true;
	ev->transport = 6;
	ev->client_ip = ip_of(client);
	ev->server_ip = ip_of(server);
	ev->client_port = 40000;
	ev->server_port = 80;
	return ev;
}

#define assert_field(ev, key, want) assert_field_at((ev), (key), (want), __LINE__)
static void assert_field_at(const struct event *ev, const char *key, const char *want, int line)
{
	const struct ev_field *fl = ev_find(ev, key);

	if (!fl)
		fail_msg("line %d: no %s", line, key);
	if (fl->type != EV_T_STR || fl->v.s.len != strlen(want) ||
	    memcmp(fl->v.s.p, want, fl->v.s.len) != 0)
		fail_msg("line %d: %s is \"%.*s\", expected \"%s\"", line, key, (int)fl->v.s.len,
			 fl->v.s.p, want);
}

static void two_containers(struct fx *f)
{
	put(f, ID_A, "web", "nginx:1.25", true, NET("bridge", "172.17.0.2", "fd00::2"));
	put(f, ID_B, "db", "mysql:8.0", true, NET("bridge", "172.17.0.3", ""));
	put(f, ID_C, "", "", true, NET("bridge", "172.17.0.4", ""));
	refresh_ok(f);
}

static void test_enrich_server_over_client(void **state)
{
	struct fx *f = *state;
	struct event *ev;

	two_containers(f);
	ev = txn(f, "172.17.0.2", "172.17.0.3"); /* web → db */
	assert_int_equal(ctrmap_enrich(f->m, ev), 1);
	/* The strings live in the event: the map may go away. */
	ctrmap_free(f->m);
	f->m = NULL;
	assert_field(ev, "container.id", ID_B);
	assert_field(ev, "container.name", "db");
	assert_field(ev, "container.image.name", "mysql:8.0");
	ev_pool_put(ev);
}

static void test_enrich_client_when_server_unknown(void **state)
{
	struct fx *f = *state;
	struct event *ev;

	two_containers(f);
	ev = txn(f, "fd00::2", "2001:db8::80"); /* web → the internet */
	assert_int_equal(ctrmap_enrich(f->m, ev), 1);
	assert_field(ev, "container.id", ID_A);
	assert_field(ev, "container.name", "web");
	assert_field(ev, "container.image.name", "nginx:1.25");
	ev_pool_put(ev);

	/* Unnamed, no image: only the id. */
	ev = txn(f, "172.17.0.4", "8.8.8.8");
	assert_int_equal(ctrmap_enrich(f->m, ev), 1);
	assert_field(ev, "container.id", ID_C);
	assert_null(ev_find(ev, "container.name"));
	assert_null(ev_find(ev, "container.image.name"));
	ev_pool_put(ev);
}

static void test_enrich_nothing(void **state)
{
	struct fx *f = *state;
	struct event *ev;

	two_containers(f);
	ev = txn(f, "10.0.0.1", "10.0.0.2"); /* neither side */
	assert_int_equal(ctrmap_enrich(f->m, ev), 0);
	assert_int_equal(ev->nfields, 0);
	ev_pool_put(ev);

	/* No tuple (the addresses are stale bytes, not this event's). */
	ev = txn(f, "172.17.0.2", "172.17.0.3");
	ev->has_tuple = false;
	assert_int_equal(ctrmap_enrich(f->m, ev), 0);
	assert_int_equal(ev->nfields, 0);
	ev_pool_put(ev);

	/* Already set by someone who knew better: left alone. */
	ev = txn(f, "172.17.0.2", "172.17.0.3");
	assert_int_equal(ev_set_strz(ev, "container.id", "preset"), 0);
	assert_int_equal(ctrmap_enrich(f->m, ev), 0);
	assert_int_equal(ev->nfields, 1);
	assert_field(ev, "container.id", "preset");
	ev_pool_put(ev);

	/* Enrichment off: a NULL map. */
	ev = txn(f, "172.17.0.2", "172.17.0.3");
	assert_int_equal(ctrmap_enrich(NULL, ev), 0);
	assert_int_equal(ev->nfields, 0);
	ev_pool_put(ev);
}

/* ---- lookups racing refreshes ------------------------------------------------ */

/* Two states swap the containers' addresses; names and images never change with
 * the id, so a lookup that mixed two tables would pair an id with the wrong name. */
struct race {
	const struct fx *f;
	atomic_bool stop;
	atomic_uint refreshes;
	atomic_int error; /* errno-style, 0 = fine (no cmocka calls in the thread) */
};

static int race_write(const struct fx *f, const char *id, const char *name, const char *nets,
		      time_t mtime)
{
	char rel[256], path[4096], tmp[4200];
	struct timespec ts[2] = {{mtime, 0}, {mtime, 0}};
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", f->r.dir, cfg_rel(id, rel, sizeof(rel)));
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fp = fopen(tmp, "w");
	if (!fp)
		return errno;
	fprintf(fp,
		"{\"ID\":\"%s\",\"Name\":\"/%s\",\"Config\":{\"Image\":\"%s-image\"},"
		"\"State\":{\"Running\":true},\"NetworkSettings\":{\"Networks\":{%s}}}",
		id, name, name, nets);
	if (fclose(fp) != 0 || utimensat(AT_FDCWD, tmp, ts, 0) != 0)
		return EIO;
	return rename(tmp, path) == 0 ? 0 : errno; /* as Docker does: atomic */
}

static void *race_refresher(void *arg)
{
	struct race *r = arg;
	const struct fx *f = r->f;
	time_t t = 1700001000;

	for (unsigned i = 0; !atomic_load(&r->stop); i++) {
		const char *na =
		    i % 2 ? NET("b", "172.17.0.2", "fd00::2") : NET("b", "172.17.0.3", "");
		const char *nb =
		    i % 2 ? NET("b", "172.17.0.3", "") : NET("b", "172.17.0.2", "fd00::2");
		char rel[256], path[4096];
		int rc = race_write(f, ID_A, "alpha", na, t);

		if (rc == 0)
			rc = race_write(f, ID_B, "beta", nb, t);
		t++;
		if (rc == 0 && i % 7 == 3) { /* now and then, one container is gone */
			snprintf(path, sizeof(path), "%s/%s", f->r.dir,
				 cfg_rel(ID_A, rel, sizeof(rel)));
			rc = unlink(path) == 0 ? 0 : errno;
		}
		if (rc == 0 && ctrmap_refresh(f->m) != 0)
			rc = EPROTO;
		if (rc != 0) {
			atomic_store(&r->error, rc);
			break;
		}
		atomic_fetch_add(&r->refreshes, 1);
	}
	return NULL;
}

static void test_concurrent_lookups(void **state)
{
	struct fx *f = *state;
	static const char *const ips[] = {"172.17.0.2", "172.17.0.3", "fd00::2", "10.9.9.9"};
	struct hb_ip addr[4];
	struct race r = {.f = f};
	unsigned long found = 0, i;
	pthread_t th;

	for (i = 0; i < 4; i++)
		addr[i] = ip_of(ips[i]);
	troot_mkdir(&f->r, DIR_C "/" ID_A);
	troot_mkdir(&f->r, DIR_C "/" ID_B);
	assert_int_equal(pthread_create(&th, NULL, race_refresher, &r), 0);
	while (atomic_load(&r.refreshes) == 0 && atomic_load(&r.error) == 0)
		usleep(100);
	for (i = 0; i < 100000 || (atomic_load(&r.refreshes) < 50 && atomic_load(&r.error) == 0);
	     i++) {
		struct ctr_meta c;
		struct event *ev;

		if (i % 1000 == 999) { /* enrich takes the same path */
			ev = txn(f, "10.0.0.1", "172.17.0.3");
			if (ctrmap_enrich(f->m, ev) == 1 && !ev_find(ev, "container.name"))
				fail_msg("enriched without a name");
			ev_pool_put(ev);
		}
		if (!ctrmap_lookup(f->m, &addr[i % 4], &c))
			continue;
		found++;
		if (i % 4 == 3)
			fail_msg("10.9.9.9 mapped to %s", c.id);
		if (!((strcmp(c.id, ID_A) == 0 && strcmp(c.name, "alpha") == 0 &&
		       strcmp(c.image, "alpha-image") == 0) ||
		      (strcmp(c.id, ID_B) == 0 && strcmp(c.name, "beta") == 0 &&
		       strcmp(c.image, "beta-image") == 0)))
			fail_msg("torn result: %s / %s / %s", c.id, c.name, c.image);
	}
	atomic_store(&r.stop, true);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(atomic_load(&r.error), 0);
	assert_true(atomic_load(&r.refreshes) >= 50);
	assert_true(found > 1000); /* the lookups did see tables */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_two_running_two_networks, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stopped_not_mapped, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_empty_addresses, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_removed_between_refreshes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_restart_changes_ip, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unchanged_files_not_read, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_files_counted_and_skipped, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_addresses, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_caps, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_containers_over_cap, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ignores_other_names, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_missing_dir, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ip_conflict, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_alloc_failure, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_enrich_server_over_client, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_enrich_client_when_server_unknown, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_enrich_nothing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_concurrent_lookups, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
