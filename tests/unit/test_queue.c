/* test_queue.c — shipper/queue.c + shipper.c: backpressure, drops, shutdown. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "hostbeat/clock.h"
#include "hostbeat/config.h"
#include "hostbeat/encode.h"
#include "hostbeat/event.h"
#include "hostbeat/ip.h"
#include "hostbeat/metrics.h"
#include "hostbeat/shipper.h"
#include "shipper/queue.h"

#define TS (1440719999ULL * NS_PER_SEC)

struct fx {
	char dir[64];
	struct hb_config cfg;
	struct encode_opts eo;
	struct ev_pool *pool;
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
	snprintf(f->dir, sizeof(f->dir), "/tmp/hb_queue.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	f->cfg.file_enabled = true;
	f->cfg.file_path = f->dir;
	f->cfg.file_rotate_every = 1ULL << 40;
	f->cfg.file_number_of_files = 2;
	f->eo.agent_type = "hostbeat";
	f->pool = ev_pool_new(2048, 65536, 128);
	assert_non_null(f->pool);
	metrics_reset();
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	assert_int_equal(ev_pool_live(f->pool), 0); /* every event went back */
	ev_pool_free(f->pool);
	nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

/* Lines in every .ndjson* file of the output directory. */
static uint64_t count_all_lines(const struct fx *f)
{
	char p[512];
	DIR *d = opendir(f->dir);
	struct dirent *de;
	uint64_t n = 0;
	char buf[65536], *q;
	size_t got;

	assert_non_null(d);
	while ((de = readdir(d))) {
		FILE *fp;

		if (!strstr(de->d_name, ".ndjson"))
			continue;
		snprintf(p, sizeof(p), "%s/%s", f->dir, de->d_name);
		fp = fopen(p, "r");
		assert_non_null(fp);
		while ((got = fread(buf, 1, sizeof(buf), fp)) > 0)
			for (q = buf; (q = memchr(q, '\n', (size_t)(buf + got - q))); q++)
				n++;
		fclose(fp);
	}
	closedir(d);
	return n;
}

/* A small transaction; `heavy` adds a string that is slow to encode (escapes). */
static struct event *make_event(struct ev_pool *pool, unsigned i, bool heavy)
{
	static const char slow[] = "\x01\"\\\n\t\xff\xc3\xa9"
				   "abcdefghijklmnopqrstuvwxyz";
	struct event *ev = ev_pool_get(pool, EV_KIND_TRANSACTION, "http");
	unsigned k;

	if (!ev)
		return NULL;
	ev->ts = TS;
	ev->status = EV_STATUS_OK;
	ev->has_tuple = true;
	ev->transport = IPPROTO_TCP;
	hb_ip_parse("10.0.0.1", &ev->client_ip);
	hb_ip_parse("10.0.0.2", &ev->server_ip);
	ev->client_port = (uint16_t)(1024 + i % 60000);
	ev->server_port = 80;
	ev_set_uint(ev, "seq", i);
	for (k = 0; heavy && k < 8; k++)
		ev_append_str(ev, "slow", slow, sizeof(slow) - 1);
	return ev;
}

struct producer {
	struct ev_sink *sink;
	struct ev_pool *pool;
	unsigned n;
	bool heavy;
	unsigned no_event; /* pool exhausted */
};

static void *produce(void *arg)
{
	struct producer *p = arg;
	unsigned i;

	for (i = 0; i < p->n; i++) {
		struct event *ev = make_event(p->pool, i, p->heavy);

		if (!ev) {
			p->no_event++;
			continue;
		}
		ev_publish(p->sink, ev);
	}
	return NULL;
}

/* Replay: a producer much faster than the shipper blocks on a 16-event queue and
 * nothing is lost. */
static void test_replay_blocks_and_loses_nothing(void **state)
{
	struct fx *f = *state;
	struct producer p = {0};
	struct shipper *s;
	pthread_t t;

	f->cfg.queue_events = 16;
	s = shipper_new(&f->cfg, &f->eo, f->pool, true);
	assert_non_null(s);
	p.sink = shipper_sink(s);
	p.pool = f->pool;
	p.n = 100000;
	p.heavy = true;
	assert_ptr_equal(p.sink->pool, f->pool);
	assert_int_equal(shipper_start(s), 0);
	assert_int_equal(pthread_create(&t, NULL, produce, &p), 0);
	pthread_join(t, NULL);
	shipper_stop(s, 60 * NS_PER_SEC);
	shipper_free(s);

	assert_int_equal(p.no_event, 0);
	assert_int_equal(metrics_get("queue.published"), 100000);
	assert_int_equal(metrics_get("output.events.written"), 100000);
	assert_int_equal(metrics_get("queue.dropped"), 0);
	assert_int_equal(metrics_get("queue.dropped_at_shutdown"), 0);
	assert_true(metrics_get("queue.producer_waits") > 0);
	assert_int_equal(metrics_get("queue.length"), 0);
	assert_int_equal(count_all_lines(f), 100000);
}

/* Live: a full queue drops the new event; the count is exact. */
static void test_live_drops_exactly(void **state)
{
	struct fx *f = *state;
	struct shipper *s;
	unsigned i;

	f->cfg.queue_events = 100;
	s = shipper_new(&f->cfg, &f->eo, f->pool, false);
	assert_non_null(s);
	for (i = 0; i < 1000; i++) /* nobody consumes yet */
		ev_publish(shipper_sink(s), make_event(f->pool, i, false));
	assert_int_equal(metrics_get("queue.dropped"), 900);
	assert_int_equal(metrics_get("queue.length"), 100);
	assert_int_equal(shipper_start(s), 0);
	shipper_stop(s, 60 * NS_PER_SEC);
	shipper_free(s);
	assert_int_equal(metrics_get("output.events.written"), 100);
	assert_int_equal(metrics_get("queue.published"), 1000);
	assert_int_equal(count_all_lines(f), 100);
}

/* Live with a running shipper: published = written + dropped, whatever the timing. */
static void test_live_concurrent_accounting(void **state)
{
	struct fx *f = *state;
	struct producer p = {0};
	struct shipper *s;
	pthread_t t;

	f->cfg.queue_events = 8;
	s = shipper_new(&f->cfg, &f->eo, f->pool, false);
	assert_non_null(s);
	p.sink = shipper_sink(s);
	p.pool = f->pool;
	p.n = 50000;
	assert_int_equal(shipper_start(s), 0);
	assert_int_equal(pthread_create(&t, NULL, produce, &p), 0);
	pthread_join(t, NULL);
	shipper_stop(s, 60 * NS_PER_SEC);
	shipper_free(s);
	assert_int_equal(metrics_get("queue.published"), 50000 - p.no_event);
	assert_int_equal(metrics_get("queue.published"),
			 metrics_get("output.events.written") + metrics_get("queue.dropped"));
	assert_int_equal(metrics_get("queue.producer_waits"), 0);
	assert_int_equal(count_all_lines(f), metrics_get("output.events.written"));
}

/* Shutdown with an expired timeout: what is queued is counted, not written; events
 * published after stop are refused and counted. */
static void test_shutdown_timeout_counts_leftovers(void **state)
{
	struct fx *f = *state;
	struct shipper *s;
	unsigned i;

	f->cfg.queue_events = 100;
	s = shipper_new(&f->cfg, &f->eo, f->pool, true);
	assert_non_null(s);
	for (i = 0; i < 10; i++)
		ev_publish(shipper_sink(s), make_event(f->pool, i, false));
	shipper_stop(s, 0);
	assert_int_equal(metrics_get("queue.dropped_at_shutdown"), 10);
	ev_publish(shipper_sink(s), make_event(f->pool, 10, false));
	assert_int_equal(metrics_get("queue.dropped_at_shutdown"), 11);
	shipper_stop(s, 0); /* idempotent */
	assert_int_equal(shipper_start(s), -EALREADY);
	shipper_free(s);
	assert_int_equal(metrics_get("output.events.written"), 0);
	assert_int_equal(count_all_lines(f), 0);
}

/* Stop without start drains in the caller when the timeout allows it. */
static void test_stop_without_start_drains(void **state)
{
	struct fx *f = *state;
	struct shipper *s = shipper_new(&f->cfg, &f->eo, f->pool, true);
	unsigned i;

	assert_non_null(s);
	for (i = 0; i < 700; i++) /* more than one batch */
		ev_publish(shipper_sink(s), make_event(f->pool, i, false));
	shipper_stop(s, 60 * NS_PER_SEC);
	shipper_free(s);
	assert_int_equal(metrics_get("output.events.written"), 700);
	assert_int_equal(count_all_lines(f), 700);
}

/* The queue alone: FIFO order, batch limit, non-blocking full, close. */
static void test_queue_fifo(void **state)
{
	struct fx *f = *state;
	struct ship_queue *q = ship_queue_new(3);
	struct event *evs[4], *out[8];
	bool waited = false;
	unsigned i;

	assert_non_null(q);
	for (i = 0; i < 4; i++) {
		evs[i] = make_event(f->pool, i, false);
		assert_non_null(evs[i]);
	}
	for (i = 0; i < 3; i++)
		assert_int_equal(ship_queue_push(q, evs[i], false, &waited), 0);
	assert_int_equal(ship_queue_push(q, evs[3], false, &waited), -EAGAIN);
	assert_false(waited);
	assert_int_equal(ship_queue_len(q), 3);
	assert_int_equal(ship_queue_pop(q, out, 2), 2);
	assert_ptr_equal(out[0], evs[0]);
	assert_ptr_equal(out[1], evs[1]);
	assert_int_equal(ship_queue_push(q, evs[3], false, &waited), 0);
	ship_queue_close(q);
	assert_int_equal(ship_queue_push(q, evs[0], true, &waited), -EPIPE);
	assert_int_equal(ship_queue_pop(q, out + 2, 8), 2); /* still drains after close */
	assert_ptr_equal(out[2], evs[2]);
	assert_ptr_equal(out[3], evs[3]);
	assert_int_equal(ship_queue_pop(q, out, 8), 0);
	for (i = 0; i < 4; i++)
		ev_pool_put(evs[i]);
	ship_queue_free(q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_replay_blocks_and_loses_nothing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_live_drops_exactly, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_live_concurrent_accounting, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_shutdown_timeout_counts_leftovers, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_stop_without_start_drains, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_queue_fifo, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
