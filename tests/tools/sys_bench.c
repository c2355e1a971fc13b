/* sys_bench.c — CPU time of one full system sample (make bench).
 *
 *   sys_bench [hostfs] [rounds] [key=value ...]
 *
 * Creates the sampler on hostfs (default "/") with every metricset (the key=value
 * arguments override the config, as -E does: topbeat.stats.filesystem=false ...
 * leaves the process metricset nearly alone), takes one warm-up sample (first
 * sight: cmdline, exe, user names are read once and cached), then `rounds` samples
 * (default 5) and prints the median CPU time (user+system, all
 * threads) of one sample, the number of events, of process events and the JSON
 * bytes. Every event is encoded to JSON exactly as the shipper would (encode_event)
 * and then discarded, so the figure includes building the documents but not writing
 * them. Then `rounds` more samples whose events are discarded unencoded: their median
 * is build_cpu_ms (reading /proc and filling events), and encode_cpu_ms is the
 * difference — the encoder's share of sample_cpu_ms.
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
	bool encode; /* false: events are counted and discarded unencoded */
	size_t events, processes, bytes;
};

static void enc_publish(struct ev_sink *sink, struct event *ev)
{
	struct enc_sink *s = (struct enc_sink *)sink;

	s->out.len = 0;
	if (s->encode && encode_event(ev, &s->eo, &s->out) == 0)
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

/* Median CPU seconds of one sample over `rounds` samples (t: rounds slots). */
static double median_sample(struct sys_sampler *s, struct enc_sink *es, double *t, int rounds)
{
	for (int i = 0; i < rounds; i++) {
		double before = cpu_seconds();

		es->events = es->processes = es->bytes = 0;
		sys_sampler_run_once(s);
		t[i] = cpu_seconds() - before;
	}
	qsort(t, (size_t)rounds, sizeof(*t), cmp_double);
	return t[rounds / 2];
}

int main(int argc, char **argv)
{
	const char *hostfs = argc > 1 ? argv[1] : "/";
	int rounds = argc > 2 ? atoi(argv[2]) : 5;
	char yaml[512], override[300];
	char *ov[16] = {override};
	int nov = 1;
	struct hb_config cfg;
	struct cfg_error err;
	struct enc_sink es;
	struct sys_sampler *s;
	struct encode_tmpl *tmpl;
	size_t events, processes, bytes;
	double *t, full, build;
	int rc = 1;

	if (rounds < 1 || rounds > 1000)
		rounds = 5;
	snprintf(yaml, sizeof(yaml), "packetbeat.enabled: false\ntopbeat.period: 10s\n");
	snprintf(override, sizeof(override), "topbeat.hostfs=%s", hostfs);
	for (int i = 3; i < argc && nov < 16; i++)
		ov[nov++] = argv[i];
	if (cfg_load_string(yaml, "sys_bench", ov, nov, &cfg, &err) != 0) {
		fprintf(stderr, "%s\n", err.msg);
		return 2;
	}
	memset(&es, 0, sizeof(es));
	es.sink.publish = enc_publish;
	es.sink.pool = ev_pool_new(1024, cfg.max_event_bytes, 512);
	es.eo.agent_name = es.eo.host_name = "bench";
	es.eo.agent_type = "hostbeat";
	es.eo.agent_version = "bench";
	/* the rest as core/main.c sets them: same documents as the agent's */
	es.eo.agent_id = es.eo.agent_ephemeral_id = "00000000-0000-4000-8000-000000000000";
	es.eo.tags = &cfg.tags;
	es.eo.legacy_fields = cfg.legacy_fields;
	es.eo.max_string = cfg.max_event_bytes;
	es.eo.tmpl = tmpl = encode_tmpl_new(&es.eo); /* as the shipper: the fast path */
	t = calloc((size_t)rounds, sizeof(*t));
	s = es.sink.pool && t ? sys_sampler_new(&cfg, &es.sink) : NULL;
	if (!s)
		goto out;
	es.encode = true;
	sys_sampler_run_once(s); /* warm-up: first sight of every process */
	full = median_sample(s, &es, t, rounds);
	events = es.events;
	processes = es.processes;
	bytes = es.bytes;
	es.encode = false;
	build = median_sample(s, &es, t, rounds);
	/* sys_bench.sh reads the first six fields: keep their order */
	printf("sample_cpu_ms %.3f events %zu processes %zu json_bytes %zu build_cpu_ms %.3f "
	       "encode_cpu_ms %.3f\n",
	       full * 1e3, events, processes, bytes, build * 1e3, (full - build) * 1e3);
	rc = 0;
out:
	sys_sampler_free(s);
	free(t);
	strbuf_free(&es.out);
	encode_tmpl_free(tmpl);
	ev_pool_free(es.sink.pool);
	cfg_free(&cfg);
	return rc;
}
