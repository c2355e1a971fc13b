/* sys_sample.c — run the Topbeat sampler (sys/) a few times on a hostfs root and
 * print every event it publishes as one JSON document per line (shipper/encode.c),
 * for the integration tests and for looking at what a metricset reports.
 *
 *   sys_sample [-n SAMPLES] [-i INTERVAL_MS] [-E key=value]...
 *
 * Defaults: 2 samples 1000 ms apart, topbeat.hostfs "/", only the container
 * metricset (topbeat.stats.system/process/filesystem false, stats.container true);
 * -E overrides any config key as on hostbeat's command line, e.g.
 * -E topbeat.stats.system=true -E topbeat.hostfs=/hostfs.
 * Each document is preceded by nothing and followed by '\n'; messages go to stderr.
 * Exit: 0, 1 when the sampler could not start, 2 usage or config error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hostbeat/clock.h"
#include "hostbeat/config.h"
#include "hostbeat/encode.h"
#include "hostbeat/event.h"
#include "hostbeat/strbuf.h"
#include "hostbeat/sys.h"

#define MAX_OVERRIDES 64

struct print_sink {
	struct ev_sink sink; /* first: print_publish() casts back */
	struct encode_opts opts;
	struct strbuf out;
	unsigned long events, errors;
};

static void print_publish(struct ev_sink *sink, struct event *ev)
{
	struct print_sink *ps = (struct print_sink *)sink;

	strbuf_reset(&ps->out);
	if (encode_event(ev, &ps->opts, &ps->out) == 0) {
		fwrite(ps->out.p, 1, ps->out.len, stdout);
		fputc('\n', stdout);
		ps->events++;
	} else {
		ps->errors++;
	}
	ev_pool_put(ev);
}

static void usage(void)
{
	fprintf(stderr, "usage: sys_sample [-n SAMPLES] [-i INTERVAL_MS] [-E key=value]...\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static char *defaults[] = {"topbeat.hostfs=/", "topbeat.stats.system=false",
				   "topbeat.stats.process=false", "topbeat.stats.filesystem=false",
				   "topbeat.stats.container=true"};
	char *ov[MAX_OVERRIDES];
	size_t nov = 0;
	long samples = 2, interval_ms = 1000;
	struct hb_config cfg;
	struct cfg_error err;
	struct print_sink ps = {0};
	struct sys_sampler *s;
	char host[256] = "localhost";
	int opt;

	for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++)
		ov[nov++] = defaults[i];
	while ((opt = getopt(argc, argv, "n:i:E:")) != -1) {
		switch (opt) {
		case 'n':
			samples = strtol(optarg, NULL, 10);
			break;
		case 'i':
			interval_ms = strtol(optarg, NULL, 10);
			break;
		case 'E':
			if (nov == MAX_OVERRIDES)
				usage();
			ov[nov++] = optarg;
			break;
		default:
			usage();
		}
	}
	if (optind != argc || samples < 1 || interval_ms < 0)
		usage();
	if (cfg_load_string("", "sys_sample", ov, nov, &cfg, &err) != 0) {
		fprintf(stderr, "sys_sample: %s\n", err.msg);
		return 2;
	}
	ps.sink.publish = print_publish;
	ps.sink.pool = ev_pool_new(8192, 1 << 20, 512);
	if (!ps.sink.pool) {
		cfg_free(&cfg);
		return 1;
	}
	gethostname(host, sizeof(host) - 1);
	ps.opts.agent_name = cfg.name ? cfg.name : host;
	ps.opts.agent_type = "hostbeat";
	ps.opts.host_name = cfg.name ? cfg.name : host;
	ps.opts.tags = &cfg.tags;
	ps.opts.legacy_fields = cfg.legacy_fields;
	strbuf_init(&ps.out);

	s = sys_sampler_new(&cfg, &ps.sink);
	if (!s) {
		fprintf(stderr, "sys_sample: the sampler could not start\n");
		ev_pool_free(ps.sink.pool);
		cfg_free(&cfg);
		return 1;
	}
	for (long i = 0; i < samples; i++) {
		if (i > 0) {
			struct timespec ts = {interval_ms / 1000, (interval_ms % 1000) * 1000000L};

			nanosleep(&ts, NULL);
		}
		sys_sampler_run_once(s);
		fflush(stdout);
	}
	sys_sampler_free(s);
	fprintf(stderr, "sys_sample: %lu events, %lu encode errors\n", ps.events, ps.errors);
	strbuf_free(&ps.out);
	ev_pool_free(ps.sink.pool);
	cfg_free(&cfg);
	return ps.errors ? 1 : 0;
}
