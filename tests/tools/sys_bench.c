/* sys_bench.c — CPU time of one full system sample (make bench).
 *
 *   sys_bench [hostfs] [rounds]
 *
 * Creates the sampler on hostfs (default "/") with every metricset, takes one warm-up
 * sample (first sight: cmdline, exe, user names are read once and cached), then
 * `rounds` samples (default 5) and prints the median CPU time (user+system, all
 * threads) of one sample, the number of process events and the events/s. Every
 * event is encoded to JSON exactly as the shipper would (encode_event) and then
 * discarded, so the figure includes building the documents but not writing them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "hostbeat/clock.h"
#include "hostbeat/config.h"
#include "hostbeat/encode.h"
#include "hostbeat/event.h"
#include "hostbeat/strbuf.h"
#include "hostbeat/sys.h"

struct enc_sink {
	struct ev_sink sink; /* first */
	struct encode_opts eo;
	struct strbuf out;
	size_t events, processes, bytes;
};

static void enc_publish(struct ev_sink *sink, struct event *ev)
{
	struct enc_sink *s = (struct enc_sink *)sink;

	s->out.len = 0;
	if (encode_event(ev, &s->eo, &s->out) == 0)
		s->bytes += s->out.len;
	s->events++;
	s->processes += strcmp(ev->dataset, "system.process") == 0;
	ev_pool_put(ev);
}

static double cpu_seconds(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	const char *hostfs = argc > 1 ? argv[1] : "/";
	int rounds = argc > 2 ? atoi(argv[2]) : 5;
	char yaml[512], override[300];
	char *ov[1] = {override};
	struct hb_config cfg;
	struct cfg_error err;
	struct enc_sink es;
	struct sys_sampler *s;
	double *t;
	int rc = 1;

	if (rounds < 1 || rounds > 1000)
		rounds = 5;
	snprintf(yaml, sizeof(yaml), "packetbeat.enabled: false\ntopbeat.period: 10s\n");
	snprintf(override, sizeof(override), "topbeat.hostfs=%s", hostfs);
	if (cfg_load_string(yaml, "sys_bench", ov, 1, &cfg, &err) != 0) {
		fprintf(stderr, "%s\n", err.msg);
		return 2;
	}
	memset(&es, 0, sizeof(es));
	es.sink.publish = enc_publish;
	es.sink.pool = ev_pool_new(1024, cfg.max_event_bytes, 512);
	es.eo.agent_name = es.eo.host_name = "bench";
	es.eo.agent_type = "hostbeat";
	es.eo.agent_version = "bench";
	t = calloc((size_t)rounds, sizeof(*t));
	s = es.sink.pool && t ? sys_sampler_new(&cfg, &es.sink) : NULL;
	if (!s)
		goto out;
	sys_sampler_run_once(s); /* warm-up: first sight of every process */
	for (int i = 0; i < rounds; i++) {
		double before = cpu_seconds();

		es.events = es.processes = es.bytes = 0;
		sys_sampler_run_once(s);
		t[i] = cpu_seconds() - before;
	}
	qsort(t, (size_t)rounds, sizeof(*t), cmp_double);
	printf("sample_cpu_ms %.3f events %zu processes %zu json_bytes %zu\n", t[rounds / 2] * 1e3,
	       es.events, es.processes, es.bytes);
	rc = 0;
out:
	sys_sampler_free(s);
	free(t);
	strbuf_free(&es.out);
	ev_pool_free(es.sink.pool);
	cfg_free(&cfg);
	return rc;
}
