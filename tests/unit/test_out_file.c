/* test_out_file.c — shipper/out_file.c (names, rotation, failures) and out_console.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hostbeat/clock.h"
#include "hostbeat/config.h"
#include "hostbeat/encode.h"
#include "hostbeat/event.h"
#include "hostbeat/metrics.h"
#include "hostbeat/shipper.h"
#include "shipper/output.h"

#define DAY1 (1440719999ULL * NS_PER_SEC) /* 2015-08-27T23:59:59Z */
#define DAY2 (DAY1 + NS_PER_SEC)          /* 2015-08-28T00:00:00Z */

struct fx {
	char dir[64];
	char path[128]; /* output dir: a subdirectory created by the output */
	struct hb_config cfg;
};

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/hb_out_file.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/a/b", f->dir);
	f->cfg.file_enabled = true;
	f->cfg.file_path = f->path;
	f->cfg.file_rotate_every = 1ULL << 30;
	f->cfg.file_number_of_files = 7;
	f->cfg.queue_events = 64;
	metrics_reset();
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	chmod(f->dir, 0700);
	nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

/* Lines in <path>/<name>, -1 when the file does not exist. */
static long count_lines(const struct fx *f, const char *name, char *first, size_t first_size)
{
	char p[256], line[4096];
	FILE *fp;
	long n = 0;

	snprintf(p, sizeof(p), "%s/%s", f->path, name);
	fp = fopen(p, "r");
	if (!fp)
		return -1;
	while (fgets(line, sizeof(line), fp)) {
		if (n == 0 && first) {
			size_t l = strlen(line) < first_size - 1 ? strlen(line) : first_size - 1;

			memcpy(first, line, l);
			first[l] = '\0';
		}
		n++;
	}
	fclose(fp);
	return n;
}

/* Through the shipper: each event goes to <index>.ndjson, UTC day of @timestamp. */
static void test_files_named_after_index(void **state)
{
	struct fx *f = *state;
	struct ev_pool *pool = ev_pool_new(64, 65536, 128);
	struct encode_opts eo = {.agent_type = "hostbeat"};
	struct shipper *s;
	struct stat st;
	const struct {
		enum ev_kind kind;
		uint64_t ts;
	} evs[] = {{EV_KIND_TRANSACTION, DAY1}, {EV_KIND_TRANSACTION, DAY2},
		   {EV_KIND_TRANSACTION, DAY1}, {EV_KIND_METRIC, DAY1},
		   {EV_KIND_SELF, DAY2},        {EV_KIND_TRANSACTION, DAY1 + 999999999ULL}};
	size_t i;

	assert_non_null(pool);
	s = shipper_new(&f->cfg, &eo, pool, true);
	assert_non_null(s);
	assert_int_equal(stat(f->path, &st), 0); /* created, mode 0750 */
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0750);
	assert_int_equal(shipper_start(s), 0);
	for (i = 0; i < sizeof(evs) / sizeof(evs[0]); i++) {
		struct event *ev = ev_pool_get(pool, evs[i].kind, "x.y");

		assert_non_null(ev);
		ev->ts = evs[i].ts;
		ev_publish(shipper_sink(s), ev);
	}
	shipper_stop(s, 10 * NS_PER_SEC);
	assert_int_equal(count_lines(f, "packetbeat-2015.08.27.ndjson", NULL, 0), 3);
	assert_int_equal(count_lines(f, "packetbeat-2015.08.28.ndjson", NULL, 0), 1);
	assert_int_equal(count_lines(f, "topbeat-2015.08.27.ndjson", NULL, 0), 1);
	assert_int_equal(count_lines(f, "hostbeat-metrics-2015.08.28.ndjson", NULL, 0), 1);
	assert_int_equal(metrics_get("output.events.written"), 6);
	assert_int_equal(metrics_get("queue.published"), 6);
	assert_int_equal(ev_pool_live(pool), 0);
	shipper_free(s);
	ev_pool_free(pool);
}

/* Writes n documents of `len` bytes ('{"n":NN} xxx…\n') to index `name`; returns
 * the flush result. */
static int write_docs(void *out, const char *name, unsigned from, unsigned n, size_t len)
{
	char *buf = malloc((size_t)n * len);
	struct ship_doc *docs = calloc(n, sizeof(*docs));
	unsigned i;
	int rc;

	assert_non_null(buf);
	assert_non_null(docs);
	for (i = 0; i < n; i++) {
		char *d = buf + (size_t)i * len;

		memset(d, 'x', len - 1);
		d[len - 1] = '\n';
		memcpy(d, "{\"n\":", 5);
		d[5] = (char)('0' + (from + i) / 10 % 10);
		d[6] = (char)('0' + (from + i) % 10);
		d[7] = '}';
		d[8] = ' ';
		docs[i].off = (size_t)i * len;
		docs[i].len = len;
		snprintf(docs[i].index, sizeof(docs[i].index), "%s", name);
	}
	/* one document per call, like many small batches */
	for (i = 0; i < n; i++)
		ship_out_file.write(out, buf, docs + i, 1);
	rc = ship_out_file.flush(out);
	free(docs);
	free(buf);
	return rc;
}

static void test_rotation_keeps_n_files(void **state)
{
	struct fx *f = *state;
	char first[128];
	void *out;

	f->cfg.file_rotate_every = 1000; /* 10 documents of 100 bytes per file */
	f->cfg.file_number_of_files = 3;
	out = ship_out_file.open(&f->cfg);
	assert_non_null(out);
	/* files: 0-9 10-19 20-29 30-39 40-49 50-54; the three newest are kept */
	assert_int_equal(write_docs(out, "idx", 0, 55, 100), 0);
	ship_out_file.close(out);

	assert_int_equal(count_lines(f, "idx.ndjson", first, sizeof(first)), 5);
	assert_memory_equal(first, "{\"n\":50}", 8);
	assert_int_equal(count_lines(f, "idx.ndjson.1", first, sizeof(first)), 10);
	assert_memory_equal(first, "{\"n\":40}", 8);
	assert_int_equal(count_lines(f, "idx.ndjson.2", first, sizeof(first)), 10);
	assert_memory_equal(first, "{\"n\":30}", 8);
	assert_int_equal(count_lines(f, "idx.ndjson.3", NULL, 0), -1);
	assert_int_equal(metrics_get("output.file.rotations"), 5);
	assert_int_equal(metrics_get("output.events.written"), 55);
	assert_int_equal(metrics_get("output.bytes"), 5500);

	/* reopening appends to the current file and keeps rotating from there */
	out = ship_out_file.open(&f->cfg);
	assert_non_null(out);
	assert_int_equal(write_docs(out, "idx", 55, 6, 100), 0); /* 5 + 5 fit, the 6th rotates */
	ship_out_file.close(out);
	assert_int_equal(count_lines(f, "idx.ndjson", first, sizeof(first)), 1);
	assert_memory_equal(first, "{\"n\":60}", 8);
	assert_int_equal(count_lines(f, "idx.ndjson.1", first, sizeof(first)), 10);
	assert_memory_equal(first, "{\"n\":50}", 8);
	assert_int_equal(count_lines(f, "idx.ndjson.2", first, sizeof(first)), 10);
	assert_memory_equal(first, "{\"n\":40}", 8);
}

static void test_rotation_single_file_and_big_doc(void **state)
{
	struct fx *f = *state;
	void *out;

	f->cfg.file_rotate_every = 1000;
	f->cfg.file_number_of_files = 1;
	out = ship_out_file.open(&f->cfg);
	assert_non_null(out);
	assert_int_equal(write_docs(out, "one", 0, 15, 100), 0);
	assert_int_equal(count_lines(f, "one.ndjson", NULL, 0), 5);
	assert_int_equal(count_lines(f, "one.ndjson.1", NULL, 0), -1);
	/* a document larger than rotate_every (and than the 256 KiB buffer) gets a file */
	assert_int_equal(write_docs(out, "one", 0, 1, 300000), 0);
	assert_int_equal(write_docs(out, "one", 0, 1, 100), 0);
	ship_out_file.close(out);
	assert_int_equal(count_lines(f, "one.ndjson", NULL, 0), 1);
	assert_int_equal(metrics_get("output.events.written"), 17);
	assert_int_equal(metrics_get("output.bytes"), 1500 + 300000 + 100);
}

static void test_unwritable_dir_fails_cleanly(void **state)
{
	struct fx *f = *state;
	struct ev_pool *pool = ev_pool_new(4, 65536, 128);
	struct encode_opts eo = {0};
	char file[128];
	int fd;

	/* a regular file where a directory should be: fails even as root */
	snprintf(file, sizeof(file), "%s/plain", f->dir);
	fd = open(file, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	close(fd);
	snprintf(f->path, sizeof(f->path), "%s/plain/sub", f->dir);
	assert_null(ship_out_file.open(&f->cfg));
	assert_null(shipper_new(&f->cfg, &eo, pool, false));
	f->cfg.file_path = NULL;
	assert_null(shipper_new(&f->cfg, &eo, pool, false));
	f->cfg.file_enabled = false; /* no output at all */
	assert_null(shipper_new(&f->cfg, &eo, pool, false));

	if (geteuid() != 0) { /* permission bits only bind non-root */
		f->cfg.file_enabled = true;
		f->cfg.file_path = f->path;
		snprintf(f->path, sizeof(f->path), "%s/ro", f->dir);
		assert_int_equal(mkdir(f->path, 0500), 0);
		assert_null(shipper_new(&f->cfg, &eo, pool, false));
	}
	ev_pool_free(pool);
}

/* A write error (ENOSPC from /dev/full) drops and counts, and does not stop later
 * writes to other files. */
static void test_write_error_counted(void **state)
{
	struct fx *f = *state;
	char link[192];
	void *out;

	out = ship_out_file.open(&f->cfg);
	assert_non_null(out);
	snprintf(link, sizeof(link), "%s/full.ndjson", f->path);
	if (symlink("/dev/full", link) < 0 || access("/dev/full", W_OK) < 0) {
		ship_out_file.close(out);
		skip();
	}
	assert_int_equal(write_docs(out, "full", 0, 3, 100), -ENOSPC);
	assert_int_equal(write_docs(out, "fine", 0, 2, 100), 0);
	ship_out_file.close(out);
	assert_int_equal(metrics_get("output.events.dropped"), 3);
	assert_true(metrics_get("output.write_errors") >= 1);
	assert_int_equal(metrics_get("output.events.written"), 2);
	assert_int_equal(count_lines(f, "fine.ndjson", NULL, 0), 2);
}

static void test_console_pretty(void **state)
{
	static const char doc[] = "{\"a\":[1,2],\"b\":{}}\n";
	struct ship_doc d = {0, sizeof(doc) - 1, "x"};
	char got[256];
	FILE *fp = tmpfile();
	void *out;
	size_t n;

	(void)state;
	assert_non_null(fp);
	out = ship_out_console_open_stream(fp, true);
	assert_non_null(out);
	ship_out_console.write(out, doc, &d, 1);
	ship_out_console.write(out, doc, &d, 1);
	assert_int_equal(ship_out_console.flush(out), 0);
	ship_out_console.close(out);
	rewind(fp);
	n = fread(got, 1, sizeof(got) - 1, fp);
	got[n] = '\0';
	assert_string_equal(got, "{\n  \"a\": [\n    1,\n    2\n  ],\n  \"b\": {}\n}\n"
				 "{\n  \"a\": [\n    1,\n    2\n  ],\n  \"b\": {}\n}\n");
	assert_int_equal(metrics_get("output.events.written"), 2);
	fclose(fp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_files_named_after_index, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rotation_keeps_n_files, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rotation_single_file_and_big_doc, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unwritable_dir_fails_cleanly, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_write_error_counted, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_console_pretty, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
