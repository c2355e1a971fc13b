/* fuzz_ctrmap.c — libFuzzer harness: arbitrary bytes as a Docker container's
 * var/lib/docker/containers/<id>/config.v2.json (sys/ctrmap.c).
 *
 * One scratch hostfs tree per process holds the fuzzed container and a fixed, valid
 * neighbour. For every input a fresh map refreshes twice (the second time from its
 * cache) and must: succeed, map at most CTRMAP_MAX_ADDRS + 1 addresses, agree with
 * itself across the two refreshes, name only these two containers, hand back
 * NUL-terminated strings within their caps, never move the neighbour's address to
 * the fuzzed container, and enrich an event with a 64-byte container.id or nothing.
 */
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hostbeat/ctrmap.h"
#include "hostbeat/event.h"
#include "hostbeat/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define DIR_C "var/lib/docker/containers"
#define ID_FUZZ "aa86eacfb3b3ed4cd362c1e88fc89a53908ad05fb3a4103bca3f9b28292d14bf"
#define ID_GOOD "3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d"
#define GOOD_IP "172.17.0.99"

static char dir[64]; /* the hostfs root, for the process */
static char fuzz_path[256];
static int root_fd = -1;
static struct ev_pool *pool;

static const char *const probes[] = {
    "172.17.0.2", "172.17.0.3", "172.18.0.5", "10.0.0.1",
    "0.0.0.0",    "fd00::2",    "::",         "::ffff:172.17.0.2",
};

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static void cleanup(void)
{
	if (root_fd >= 0)
		close(root_fd);
	nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

static void write_file(const char *path, const void *data, size_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd < 0 || (size && write(fd, data, size) != (ssize_t)size) || close(fd) != 0)
		abort();
}

static void setup_once(void)
{
	static const char good[] =
	    "{\"ID\":\"" ID_GOOD "\",\"Name\":\"/good\",\"Config\":{\"Image\":\"alpine:3\"},"
	    "\"State\":{\"Running\":true},\"NetworkSettings\":{\"Networks\":{\"bridge\":"
	    "{\"IPAddress\":\"" GOOD_IP "\",\"GlobalIPv6Address\":\"\"}}}}";
	char path[256];

	snprintf(dir, sizeof(dir), "/tmp/hb_fuzz_ctrmap.XXXXXX");
	if (!mkdtemp(dir))
		abort();
	atexit(cleanup);
	log_init(LOG_LEVEL_ERROR, NULL, true, NULL);
	snprintf(path, sizeof(path), "%s/var", dir);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/var/lib", dir);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/var/lib/docker", dir);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/" DIR_C, dir);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/" DIR_C "/" ID_FUZZ, dir);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/" DIR_C "/" ID_GOOD, dir);
	if (mkdir(path, 0700) != 0)
		abort();
	snprintf(path, sizeof(path), "%s/" DIR_C "/" ID_GOOD "/config.v2.json", dir);
	write_file(path, good, sizeof(good) - 1);
	snprintf(fuzz_path, sizeof(fuzz_path), "%s/" DIR_C "/" ID_FUZZ "/config.v2.json", dir);
	root_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	pool = ev_pool_new(2, 1 << 16, 64);
	if (root_fd < 0 || !pool)
		abort();
}

static void check_meta(const struct ctr_meta *c)
{
	if (strnlen(c->id, sizeof(c->id)) != CTRMAP_ID_LEN ||
	    strnlen(c->name, sizeof(c->name)) == sizeof(c->name) ||
	    strnlen(c->image, sizeof(c->image)) == sizeof(c->image))
		abort();
	if (strcmp(c->id, ID_FUZZ) != 0 && strcmp(c->id, ID_GOOD) != 0)
		abort();
	if (strcmp(c->id, ID_GOOD) == 0 &&
	    (strcmp(c->name, "good") != 0 || strcmp(c->image, "alpine:3") != 0))
		abort();
}

/* Which container each probe maps to: 0 none, 1 fuzzed, 2 good. */
static void probe_all(struct ctrmap *m, int *seen)
{
	struct hb_ip ip;
	struct ctr_meta c;

	for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
		if (hb_ip_parse(probes[i], &ip) != 0)
			abort();
		seen[i] = 0;
		if (ctrmap_lookup(m, &ip, &c)) {
			check_meta(&c);
			seen[i] = strcmp(c.id, ID_FUZZ) == 0 ? 1 : 2;
			if (seen[i] == 2)
				abort(); /* the good one has none of these */
		}
	}
	if (hb_ip_parse(GOOD_IP, &ip) != 0)
		abort();
	if (ctrmap_lookup(m, &ip, &c) && strcmp(c.id, ID_GOOD) != 0)
		abort(); /* claimed by the fuzzed one too: a conflict, unmapped */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int seen1[sizeof(probes) / sizeof(probes[0])], seen2[sizeof(probes) / sizeof(probes[0])];
	struct ctrmap *m;
	struct event *ev;
	size_t n;
	int rc;

	if (root_fd < 0)
		setup_once();
	write_file(fuzz_path, data, size);

	m = ctrmap_new(root_fd);
	if (!m || ctrmap_refresh(m) != 0)
		abort();
	n = ctrmap_count(m);
	if (n > CTRMAP_MAX_ADDRS + 1)
		abort();
	probe_all(m, seen1);
	if (ctrmap_refresh(m) != 0 || ctrmap_count(m) != n)
		abort(); /* nothing changed: the same table */
	probe_all(m, seen2);
	if (memcmp(seen1, seen2, sizeof(seen1)) != 0)
		abort();

	ev = ev_pool_get(pool, EV_KIND_TRANSACTION, "http");
	if (!ev)
		abort();
	ev->has_tuple = true;
	hb_ip_parse("203.0.113.7", &ev->client_ip);
	hb_ip_parse(probes[0], &ev->server_ip);
	rc = ctrmap_enrich(m, ev);
	ctrmap_free(m); /* the event keeps its own copies */
	if (rc != (seen1[0] ? 1 : 0))
		abort();
	if (rc == 1) {
		const struct ev_field *f = ev_find(ev, "container.id");

		if (!f || f->v.s.len != CTRMAP_ID_LEN || memcmp(f->v.s.p, ID_FUZZ, CTRMAP_ID_LEN))
			abort();
	}
	ev_pool_put(ev);
	return 0;
}
