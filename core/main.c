/* main.c — the hostbeat command line: run (live or -I replay), devices, test config,
 * version, --dump-config. Exit codes: 0 ok, 1 runtime failure, 2 usage/config error.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pcap/pcap.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/commands.h"
#include "hostbeat/caps.h"
#include "hostbeat/clock.h"
#include "hostbeat/config.h"
#include "hostbeat/ctrmap.h"
#include "hostbeat/encode.h"
#include "hostbeat/event.h"
#include "hostbeat/log.h"
#include "hostbeat/mem.h"
#include "hostbeat/metrics.h"
#include "hostbeat/proto.h"
#include "hostbeat/shipper.h"
#include "hostbeat/sys.h"
#include "net/capture.h"

#ifndef HB_VERSION
#define HB_VERSION "0.1.0"
#endif

#define EXIT_USAGE 2
#define MAX_OVERRIDES 128
#define SUMMARY_PERIOD_S 5

struct cli {
	const char *config;
	bool to_stderr;
	const char *selectors;
	char *overrides[MAX_OVERRIDES];
	size_t noverrides;
	const char *pcap_file;
	bool topspeed;
	long loops;
	bool no_publish;
	bool dump_config;
	const char *command; /* "run", "devices", "test", "setup", "version" */
	const char *subcommand;
	bool index_management; /* setup --index-management */
	bool dashboards;       /* setup --dashboards */
};

static void usage(FILE *out)
{
	fprintf(
	    out,
	    "Usage: hostbeat [command] [flags]\n"
	    "\n"
	    "Commands:\n"
	    "  run            capture and ship (default)\n"
	    "  devices        list the capture devices\n"
	    "  test config    check the configuration and exit\n"
	    "  test output    connect to the output, report what is there, exit\n"
	    "  setup          install the index templates (--index-management) and load the\n"
	    "                 Kibana dashboards (--dashboards); both without a flag\n"
	    "  version        print the version\n"
	    "\n"
	    "Flags:\n"
	    "  -c FILE        configuration file (default: ./beats.yml, else the embedded "
	    "default)\n"
	    "  -e             log to stderr\n"
	    "  -d SELECTORS   enable debug output for selectors (\"http,tcp\", \"*\")\n"
	    "  -E KEY=VALUE   override a configuration key (repeatable)\n"
	    "  -I FILE        read packets from a pcap/pcapng file instead of capturing\n"
	    "  -t             with -I: read as fast as possible (no inter-packet sleeps)\n"
	    "  -l N           with -I: read the file N times (0 = forever)\n"
	    "  -N             disable publishing (decode only, events are counted and dropped)\n"
	    "  --dump-config  print the effective configuration (defaults included) and exit\n"
	    "  -h, --help     this help\n");
}

static bool is_command(const char *w)
{
	static const char *const commands[] = {"run", "devices", "test", "setup", "version"};

	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(w, commands[i]) == 0)
			return true;
	return false;
}

/* "hostbeat [command [subcommand]] [flags]" and "hostbeat [flags] [command ...]" */
static int parse_cli(int argc, char **argv, struct cli *cli)
{
	static const struct option longopts[] = {
	    {"dump-config", no_argument, NULL, 'D'},
	    {"index-management", no_argument, NULL, 'M'},
	    {"dashboards", no_argument, NULL, 'B'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	char *end;
	int opt;

	memset(cli, 0, sizeof(*cli));
	cli->loops = 1;
	cli->command = "run";
	while ((opt = getopt_long(argc, argv, "c:ed:E:I:tl:Nh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			cli->config = optarg;
			break;
		case 'e':
			cli->to_stderr = true;
			break;
		case 'd':
			cli->selectors = optarg;
			break;
		case 'E':
			if (cli->noverrides == MAX_OVERRIDES || !strchr(optarg, '=')) {
				fprintf(stderr, "hostbeat: -E takes key=value (at most %d)\n",
					MAX_OVERRIDES);
				return -EINVAL;
			}
			cli->overrides[cli->noverrides++] = optarg;
			break;
		case 'I':
			cli->pcap_file = optarg;
			break;
		case 't':
			cli->topspeed = true;
			break;
		case 'l':
			errno = 0;
			cli->loops = strtol(optarg, &end, 10);
			if (errno || *end || cli->loops < 0) {
				fprintf(stderr, "hostbeat: -l takes a count >= 0, got '%s'\n",
					optarg);
				return -EINVAL;
			}
			break;
		case 'N':
			cli->no_publish = true;
			break;
		case 'D':
			cli->dump_config = true;
			break;
		case 'M':
			cli->index_management = true;
			break;
		case 'B':
			cli->dashboards = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	/* GNU getopt permutes, so the words left are the command and its subcommand. */
	if (optind < argc) {
		if (!is_command(argv[optind])) {
			fprintf(stderr, "hostbeat: unknown command '%s'\n", argv[optind]);
			usage(stderr);
			return -EINVAL;
		}
		cli->command = argv[optind++];
	}
	if (optind < argc && strcmp(cli->command, "test") == 0)
		cli->subcommand = argv[optind++];
	if (optind < argc) {
		fprintf(stderr, "hostbeat: unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	if (strcmp(cli->command, "test") == 0 &&
	    (!cli->subcommand ||
	     (strcmp(cli->subcommand, "config") != 0 && strcmp(cli->subcommand, "output") != 0))) {
		fprintf(stderr, "hostbeat: 'test' takes 'config' or 'output'\n");
		return -EINVAL;
	}
	if (strcmp(cli->command, "setup") == 0 && !cli->dashboards && !cli->index_management)
		cli->index_management = cli->dashboards = true; /* plain `setup`: both, as Beats */
	return 0;
}

static int cmd_devices(void)
{
	char errbuf[PCAP_ERRBUF_SIZE];
	pcap_if_t *all = NULL;
	int i = 0;

	if (pcap_findalldevs(&all, errbuf) != 0) {
		fprintf(stderr, "hostbeat: cannot list devices: %s\n", errbuf);
		return 1;
	}
	for (pcap_if_t *d = all; d; d = d->next, i++)
		printf("%d: %s (%s)\n", i, d->name,
		       d->description ? d->description : "No description available");
	pcap_freealldevs(all);
	return 0;
}

static enum log_level parse_level(const char *s)
{
	if (!s || strcmp(s, "info") == 0)
		return LOG_LEVEL_INFO;
	if (strcmp(s, "error") == 0 || strcmp(s, "critical") == 0)
		return LOG_LEVEL_ERROR;
	if (strcmp(s, "warning") == 0 || strcmp(s, "warn") == 0)
		return LOG_LEVEL_WARN;
	return LOG_LEVEL_DEBUG;
}

/* Random version-4 UUID for agent.ephemeral_id. */
static void make_uuid(char out[37])
{
	unsigned char b[16];
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	ssize_t got = fd >= 0 ? read(fd, b, sizeof(b)) : -1;

	if (fd >= 0)
		close(fd);
	if (got != (ssize_t)sizeof(b)) {
		uint64_t t = clock_mono_ns() ^ (uint64_t)getpid();

		for (size_t i = 0; i < sizeof(b); i++, t = t * 6364136223846793005ULL + 1)
			b[i] = (unsigned char)(t >> 56);
	}
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
		 b[13], b[14], b[15]);
}

/* -N: events are decoded and counted, then dropped. */
struct null_sink {
	struct ev_sink sink;
	struct metric *dropped;
};

static void null_publish(struct ev_sink *sink, struct event *ev)
{
	struct null_sink *ns = (struct null_sink *)sink;

	metric_inc(ns->dropped);
	ev_pool_put(ev);
}

struct summary_sum {
	uint64_t transactions, errors;
	char per_proto[512];
	size_t off;
};

static void summary_visit(const struct metric *m, void *arg)
{
	struct summary_sum *s = arg;
	const char *dot = strrchr(m->name, '.');
	uint64_t v = atomic_load_explicit(&((struct metric *)m)->value, memory_order_relaxed);
	int w;

	if (!dot)
		return;
	if (strcmp(dot, ".transactions") == 0) {
		s->transactions += v;
		if (s->off < sizeof(s->per_proto)) {
			w = snprintf(s->per_proto + s->off, sizeof(s->per_proto) - s->off,
				     " %.*s=%llu", (int)(dot - m->name), m->name,
				     (unsigned long long)v);
			if (w > 0)
				s->off += (size_t)w;
		}
	} else if (strcmp(dot, ".parse_errors") == 0 || strcmp(dot, ".unmatched_requests") == 0 ||
		   strcmp(dot, ".unmatched_responses") == 0) {
		s->errors += v;
	}
}

static void log_summary(struct capture **caps, size_t ncaps, const char *when)
{
	struct capture_stats st, sum = {0};
	struct summary_sum s = {0};

	for (size_t i = 0; i < ncaps; i++) {
		capture_get_stats(caps[i], &st);
		sum.kernel_drops += st.kernel_drops;
		sum.iface_drops += st.iface_drops;
	}
	sum.packets = metrics_get("capture.packets");
	sum.bytes = metrics_get("capture.bytes");
	metrics_foreach(summary_visit, &s);
	log_info("summary",
		 "%s: packets=%llu bytes=%llu pcap_drops=%llu iface_drops=%llu transactions=%llu%s "
		 "errors=%llu events_written=%llu events_dropped=%llu",
		 when, (unsigned long long)sum.packets, (unsigned long long)sum.bytes,
		 (unsigned long long)sum.kernel_drops, (unsigned long long)sum.iface_drops,
		 (unsigned long long)s.transactions, s.per_proto, (unsigned long long)s.errors,
		 (unsigned long long)metrics_get("output.events.written"),
		 (unsigned long long)(metrics_get("queue.dropped") +
				      metrics_get("output.events.dropped") +
				      metrics_get("publish.disabled_dropped")));
}

/* The hostbeat-metrics event: every counter's running total, one event a period. */
static void publish_self_metrics(struct ev_sink *sink)
{
	struct event *ev = ev_pool_get(sink->pool, EV_KIND_SELF, "hostbeat.metrics");

	if (!ev)
		return; /* counted as events.pool_exhausted */
	ev->ts = clock_wall_ns();
	metrics_fill_event(ev);
	ev_publish(sink, ev);
}

/* A file replay runs in the main thread and the shipper may take long to drain (an
 * output that is down): this thread turns SIGINT/SIGTERM into "stop reading, give
 * the shipper shutdown_timeout, spool the rest". SIGUSR1 from main ends it. */
struct sigwatch {
	sigset_t set;
	_Atomic(struct capture *) cap;
	struct shipper *ship;
	uint64_t timeout;
	atomic_bool done;
};

static void *sigwatch_main(void *arg)
{
	struct sigwatch *w = arg;
	struct capture *c;
	int sig;

	while (sigwait(&w->set, &sig) == 0 && !atomic_load(&w->done)) {
		if (sig != SIGINT && sig != SIGTERM)
			continue;
		log_info("main", "received %s, stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
		c = atomic_load(&w->cap);
		if (c)
			capture_request_stop(c);
		if (w->ship)
			shipper_hurry(w->ship, w->timeout);
		break;
	}
	return NULL;
}

static int run_file(struct hb_config *cfg, struct hb_clock *clock, struct ev_sink *sink,
		    struct sigwatch *w)
{
	struct capture *c = capture_open(cfg, NULL, clock, sink);
	int rc;

	if (!c)
		return 1;
	atomic_store(&w->cap, c);
	rc = capture_run(c);
	atomic_store(&w->cap, NULL);
	capture_free(c);
	return rc ? 1 : 0;
}

/* container.* for live transactions: Docker's state under topbeat.hostfs, re-read
 * every second by the main loop. NULL (and nothing added) when it is switched off
 * or the hostfs root cannot be opened; no Docker there is an empty map. */
static struct ctrmap *ctrmap_open(const struct hb_config *cfg, int *root_fd)
{
	const char *root = cfg->hostfs && *cfg->hostfs ? cfg->hostfs : "/";
	struct ctrmap *m;

	*root_fd = -1;
	if (!cfg->packetbeat_enabled || !cfg->container_metadata)
		return NULL;
	*root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (*root_fd < 0) {
		log_warn("ctrmap", "no container metadata: cannot open %s: %s", root,
			 strerror(errno));
		return NULL;
	}
	m = ctrmap_new(*root_fd);
	if (!m) {
		close(*root_fd);
		*root_fd = -1;
		return NULL;
	}
	ctrmap_refresh(m);
	log_info("ctrmap", "container metadata from %s/var/lib/docker: %zu addresses",
		 strcmp(root, "/") ? root : "", ctrmap_count(m));
	return m;
}

/* Live: open every capture handle, drop the capabilities only they needed, then start
 * the threads (capabilities are per thread: the drop must come before any exists). */
static int run_live(struct hb_config *cfg, struct hb_clock *clock, struct ev_sink *sink,
		    struct shipper *ship)
{
	char cerr[256];
	struct sys_sampler *sampler = NULL;
	struct ctrmap *ctrmap = NULL;
	struct capture **caps = NULL;
	char **names = NULL;
	size_t n = 0, ncaps = 0;
	uint64_t next_metrics, next_summary, now;
	struct timespec tick = {1, 0};
	sigset_t set;
	int rc = 1, sig, root_fd = -1;

	/* As Beats: with setup.dashboards.enabled the dashboards are loaded before
	 * anything is published, and failing to load them is fatal. */
	if (cfg->dashboards_enabled && cmd_load_dashboards(cfg, HB_VERSION, false) != 0)
		goto out;
	if (!cfg->packetbeat_enabled && !cfg->topbeat_enabled) {
		log_error("main",
			  "packetbeat.enabled and topbeat.enabled are both false: nothing to do");
		goto out;
	}
	if (cfg->packetbeat_enabled && (capture_resolve_devices(cfg, &names, &n) != 0 || n == 0)) {
		log_error("capture", "no capture device to open");
		goto out;
	}
	caps = hb_calloc(n ? n : 1, sizeof(*caps));
	if (!caps)
		goto out;
	for (size_t i = 0; i < n; i++) {
		caps[ncaps] = capture_open(cfg, names[i], clock, sink);
		if (!caps[ncaps])
			goto stop;
		ncaps++;
	}
	if (geteuid() == 0 && caps_drop_to_readers(cerr, sizeof(cerr)) != 0)
		log_warn("caps", "keeping all capabilities: %s", cerr);
	ctrmap = ship ? ctrmap_open(cfg, &root_fd) : NULL;
	if (ctrmap)
		shipper_set_ctrmap(ship, ctrmap);
	if (ship && shipper_start(ship) != 0)
		goto stop;
	if (cfg->topbeat_enabled) {
		sampler = sys_sampler_new(cfg, sink);
		if (!sampler || sys_sampler_start(sampler) != 0)
			goto stop;
	}
	for (size_t i = 0; i < ncaps; i++) {
		if (capture_run(caps[i]) != 0) {
			/* this one never ran: stopping it below is a no-op */
			goto stop;
		}
	}
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	now = clock_mono_ns();
	next_metrics = now + cfg->metrics_period;
	next_summary = now + SUMMARY_PERIOD_S * NS_PER_SEC;
	for (;;) {
		sig = sigtimedwait(&set, NULL, &tick);
		if (sig == SIGINT || sig == SIGTERM) {
			log_info("main", "received %s, stopping",
				 sig == SIGINT ? "SIGINT" : "SIGTERM");
			break;
		}
		if (ctrmap)
			ctrmap_refresh(ctrmap);
		now = clock_mono_ns();
		if (now >= next_summary && ncaps) {
			log_summary(caps, ncaps, "live");
			next_summary = now + SUMMARY_PERIOD_S * NS_PER_SEC;
		}
		if (now >= next_metrics) {
			metrics_report((unsigned)(cfg->metrics_period / NS_PER_SEC));
			sys_self_update();
			publish_self_metrics(sink);
			next_metrics = now + cfg->metrics_period;
		}
	}
	rc = 0;
stop:
	/* Stop every capture: each flushes its flows, so pending requests are published. */
	for (size_t i = 0; i < ncaps; i++)
		capture_stop(caps[i]);
	if (ncaps)
		log_summary(caps, ncaps, "final");
	for (size_t i = 0; i < ncaps; i++)
		capture_free(caps[i]);
out:
	sys_sampler_free(sampler); /* stops the thread first */
	if (ctrmap) {              /* every publisher has stopped */
		shipper_set_ctrmap(ship, NULL);
		ctrmap_free(ctrmap);
		close(root_fd);
	}
	for (size_t i = 0; i < n; i++)
		hb_free(names[i]);
	hb_free(names);
	hb_free(caps);
	return rc;
}

int main(int argc, char **argv)
{
	struct hb_config cfg;
	struct cfg_error err;
	struct cli cli;
	struct hb_clock clock;
	struct ev_pool *pool = NULL;
	struct shipper *ship = NULL;
	struct null_sink nsink;
	struct ev_sink *sink;
	struct encode_opts eo;
	struct sigwatch watch;
	pthread_t watcher;
	bool watching = false;
	char ephemeral[37];
	sigset_t set;
	int rc;

	if (parse_cli(argc, argv, &cli) != 0)
		return EXIT_USAGE;
	if (strcmp(cli.command, "version") == 0) {
		printf("hostbeat version %s (%s), %s\n", HB_VERSION, "linux", pcap_lib_version());
		return 0;
	}
	if (strcmp(cli.command, "devices") == 0)
		return cmd_devices();

	if (cfg_load(cli.config, cli.overrides, cli.noverrides, &cfg, &err) != 0) {
		fprintf(stderr, "%s\n", err.msg);
		return EXIT_USAGE;
	}
	if (cli.pcap_file) {
		hb_free(cfg.pcap_file);
		cfg.pcap_file = hb_strdup(cli.pcap_file);
		cfg.topspeed = cli.topspeed;
		cfg.loops = cli.loops;
	}
	if (cli.dump_config) {
		rc = cfg_dump(&cfg, stdout) ? 1 : 0;
		goto out_cfg;
	}
	if (strcmp(cli.command, "test") == 0 && strcmp(cli.subcommand, "config") == 0) {
		printf("Config OK\n");
		rc = 0;
		goto out_cfg;
	}
	if (log_init(cli.selectors ? LOG_LEVEL_DEBUG : parse_level(cfg.log_level), cli.selectors,
		     cli.to_stderr || cfg.log_to_stderr, cfg.log_path) != 0) {
		fprintf(stderr, "hostbeat: cannot open log file %s: %s\n", cfg.log_path,
			strerror(errno));
		rc = 1;
		goto out_cfg;
	}
	if (strcmp(cli.command, "test") == 0) {
		rc = cmd_test_output(&cfg, HB_VERSION);
		goto out_cfg;
	}
	if (strcmp(cli.command, "setup") == 0) {
		rc = cmd_setup(&cfg, HB_VERSION, cli.index_management, cli.dashboards);
		goto out_cfg;
	}
	/* Signals are taken synchronously by the main thread (sigtimedwait); every thread
	 * created from here on inherits the blocked mask. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	log_info("main", "hostbeat %s starting (config %s)", HB_VERSION, cfg.path);
	clock_init(&clock, cfg.pcap_file != NULL);
	pool = ev_pool_new(cfg.queue_events + cfg.max_pending_total, cfg.max_event_bytes, 4096);
	if (!pool) {
		log_error("main", "out of memory");
		rc = 1;
		goto out_cfg;
	}
	make_uuid(ephemeral);
	memset(&eo, 0, sizeof(eo));
	eo.agent_name = cfg.name;
	eo.agent_version = HB_VERSION;
	eo.agent_type = "hostbeat";
	eo.agent_id = ephemeral;
	eo.agent_ephemeral_id = ephemeral;
	eo.host_name = cfg.name;
	eo.tags = &cfg.tags;
	eo.legacy_fields = cfg.legacy_fields;
	eo.max_string = cfg.max_event_bytes;

	if (cli.no_publish) {
		nsink.sink.publish = null_publish;
		nsink.sink.pool = pool;
		nsink.dropped = metrics_counter("publish.disabled_dropped");
		sink = &nsink.sink;
	} else {
		ship = shipper_new(&cfg, &eo, pool, cfg.pcap_file != NULL);
		/* live: run_live() starts it once the capabilities are dropped */
		if (!ship || (cfg.pcap_file && shipper_start(ship) != 0)) {
			rc = 1;
			goto out_pool;
		}
		sink = shipper_sink(ship);
	}

	if (cfg.pcap_file) {
		memset(&watch, 0, sizeof(watch));
		sigemptyset(&watch.set);
		sigaddset(&watch.set, SIGINT);
		sigaddset(&watch.set, SIGTERM);
		sigaddset(&watch.set, SIGUSR1);
		pthread_sigmask(SIG_BLOCK, &watch.set, NULL);
		watch.ship = ship;
		watch.timeout = cfg.shutdown_timeout;
		watching = pthread_create(&watcher, NULL, sigwatch_main, &watch) == 0;
		rc = run_file(&cfg, &clock, sink, &watch);
	} else {
		rc = run_live(&cfg, &clock, sink, ship);
	}

	/* A replay waits until everything is written (or a signal hurries it). */
	if (ship)
		shipper_stop(ship, cfg.pcap_file ? UINT64_MAX : cfg.shutdown_timeout);
	if (watching) {
		atomic_store(&watch.done, true);
		pthread_kill(watcher, SIGUSR1);
		pthread_join(watcher, NULL);
	}
	if (cfg.pcap_file)
		log_summary(NULL, 0, "end of file");
	metrics_report((unsigned)(cfg.metrics_period / NS_PER_SEC));
	log_info("main", "hostbeat stopped");
out_pool:
	shipper_free(ship);
	ev_pool_free(pool);
out_cfg:
	cfg_free(&cfg);
	log_close();
	return rc;
}
