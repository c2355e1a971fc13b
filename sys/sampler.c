/* sampler.c — the Topbeat loop: one thread wakes every topbeat.period, builds the
 * sample's context (clocks, CPU count, MemTotal, boot time) and runs each enabled
 * metricset, which publishes its events to the shipper.
 *
 * Metricsets by Topbeat's switches: stats.system → cpu (+ core), load, memory;
 * stats.process → process; stats.filesystem → filesystem; stats.container →
 * container. A sample that takes longer than the period skips the ticks it
 * overran (counted "sys.ticks_skipped", logged as Topbeat did) instead of queueing
 * them. Counters: "sys.samples", "sys.events_dropped", gauge "sys.sample_ns".
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "hostbeat/clock.h"
#include "hostbeat/log.h"
#include "hostbeat/mem.h"
#include "hostbeat/metrics.h"
#include "hostbeat/sys.h"

#define SYS_BUF_SIZE (1u << 20) /* largest file one read takes (mountinfo, status) */
#define MAX_SETS 8

/* How long sys_event_new() waits in all for the shipper to return events. */
#define POOL_WAIT_NS (200 * NS_PER_MS)
#define POOL_WAIT_STEP_NS (1 * NS_PER_MS)

struct sys_set {
	const struct sys_metricset *ms;
	void *state;
};

struct sys_sampler {
	const struct hb_config *cfg;
	struct sys_ctx ctx; /* the parts that do not change between samples */
	struct sys_file stat, meminfo;
	struct sys_set sets[MAX_SETS];
	size_t nsets;

	pthread_t thread;
	bool running, stopping;
	pthread_mutex_t mu;
	pthread_cond_t cv; /* CLOCK_MONOTONIC */

	struct metric *samples, *skipped, *sample_ns;
};

struct event *sys_event_new(struct sys_ctx *ctx, const char *dataset)
{
	struct event *ev = ev_pool_get(ctx->sink->pool, EV_KIND_METRIC, dataset);
	uint64_t waited = 0;

	/* A full sample can hold more events than the pool while the shipper is
	 * still writing the previous ones: wait a little rather than drop. */
	while (!ev && waited < POOL_WAIT_NS) {
		struct timespec step = {0, POOL_WAIT_STEP_NS};

		nanosleep(&step, NULL);
		waited += POOL_WAIT_STEP_NS;
		ev = ev_pool_get(ctx->sink->pool, EV_KIND_METRIC, dataset);
	}
	if (!ev) {
		if (ctx->dropped)
			metric_inc(ctx->dropped);
		return NULL;
	}
	ev->ts = ctx->now_ns;
	ev_set_uint(ev, "metricset.period", ctx->period_ns / NS_PER_MS);
	ev_set_strz(ev, "service.type", "system");
	return ev;
}

void sys_publish(struct sys_ctx *ctx, struct event *ev)
{
	if (ctx->real_clock) {
		uint64_t now = clock_mono_ns();

		if (now > ctx->mono_ns)
			ev_set_uint(ev, "event.duration", now - ctx->mono_ns);
	}
	ev_publish(ctx->sink, ev);
}

/* ncpu and btime from proc/stat, MemTotal from proc/meminfo. Values that cannot be
 * read keep their previous value (ncpu stays ≥ 1). */
static void refresh_host(struct sys_sampler *s, struct sys_ctx *ctx)
{
	ssize_t n = sys_file_read(&s->stat, ctx->root_fd, ctx->buf, ctx->buf_size);
	uint64_t v;

	if (n > 0) {
		struct sys_text all = sys_text_of(ctx->buf, (size_t)n), line, f;
		unsigned ncpu = 0;

		while (sys_text_line(&all, &line)) {
			if (!sys_text_field(&line, &f))
				continue;
			if (sys_text_len(&f) > 3 && memcmp(f.p, "cpu", 3) == 0)
				ncpu++;
			else if (sys_text_eq(&f, "btime") && sys_text_field(&line, &f) &&
				 sys_text_u64(&f, &v) == 0 && v < UINT64_MAX / NS_PER_SEC)
				ctx->boot_time_ns = v * NS_PER_SEC;
		}
		if (ncpu)
			ctx->ncpu = ncpu;
	}
	n = sys_file_read(&s->meminfo, ctx->root_fd, ctx->buf, ctx->buf_size);
	if (n > 0 && sys_kv_u64(ctx->buf, (size_t)n, "MemTotal:", &v) == 0)
		ctx->mem_total = v;
}

void sys_sampler_run_once(struct sys_sampler *s)
{
	struct sys_ctx *ctx = &s->ctx;
	uint64_t start;

	ctx->now_ns = clock_wall_ns();
	ctx->mono_ns = start = clock_mono_ns();
	refresh_host(s, ctx);
	for (size_t i = 0; i < s->nsets; i++) {
		ctx->mono_ns = clock_mono_ns(); /* event.duration: this metricset's own time */
		s->sets[i].ms->sample(s->sets[i].state, ctx);
	}
	metric_inc(s->samples);
	metric_set(s->sample_ns, clock_mono_ns() - start);
}

static void *sampler_main(void *arg)
{
	struct sys_sampler *s = arg;
	uint64_t period = s->cfg->topbeat_period, next = clock_mono_ns();

	pthread_mutex_lock(&s->mu);
	while (!s->stopping) {
		uint64_t now = clock_mono_ns();
		struct timespec until;

		if (now < next) {
			until.tv_sec = (time_t)(next / NS_PER_SEC);
			until.tv_nsec = (long)(next % NS_PER_SEC);
			pthread_cond_timedwait(&s->cv, &s->mu, &until);
			continue;
		}
		pthread_mutex_unlock(&s->mu);
		sys_sampler_run_once(s);
		pthread_mutex_lock(&s->mu);
		next += period;
		now = clock_mono_ns();
		if (now >= next) {
			uint64_t skip = (now - next) / period + 1;

			metric_add(s->skipped, skip);
			log_warn("sys",
				 "ignoring %llu tick(s): a sample took longer than topbeat.period",
				 (unsigned long long)skip);
			next += skip * period;
		}
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

static int add_set(struct sys_sampler *s, const struct sys_metricset *ms)
{
	void *st = ms->create(&s->ctx);

	if (!st)
		return -EINVAL; /* create() logged why */
	s->sets[s->nsets].ms = ms;
	s->sets[s->nsets].state = st;
	s->nsets++;
	return 0;
}

/* The process metricset keeps each tracked process's stat/statm/fd open between
 * samples, within half the soft open-file limit (sized when it is created): raise
 * the soft limit to the hard one first. Needs no privilege. */
static void raise_nofile_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			log_debug("sys", "cannot raise the open-file limit: %s", strerror(errno));
	}
}

struct sys_sampler *sys_sampler_new(const struct hb_config *cfg, struct ev_sink *sink)
{
	struct sys_sampler *s = hb_calloc(1, sizeof(*s));
	pthread_condattr_t ca;
	long hz = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);

	if (!s)
		return NULL;
	raise_nofile_limit();
	s->cfg = cfg;
	s->stat = (struct sys_file)SYS_FILE_INIT("proc/stat");
	s->meminfo = (struct sys_file)SYS_FILE_INIT("proc/meminfo");
	s->ctx.root_fd = open(cfg->hostfs, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->ctx.root_fd < 0) {
		log_error("sys", "cannot open topbeat.hostfs %s: %s", cfg->hostfs, strerror(errno));
		hb_free(s);
		return NULL;
	}
	s->ctx.hostfs = cfg->hostfs;
	s->ctx.cfg = cfg;
	s->ctx.legacy = cfg->legacy_fields;
	s->ctx.period_ns = cfg->topbeat_period;
	s->ctx.hz = hz > 0 ? hz : 100;
	s->ctx.page_size = page > 0 ? page : 4096;
	s->ctx.ncpu = 1;
	s->ctx.sink = sink;
	s->ctx.dropped = metrics_counter("sys.events_dropped");
	s->ctx.real_clock = true;
	s->ctx.buf_size = SYS_BUF_SIZE;
	s->ctx.buf = hb_malloc(SYS_BUF_SIZE);
	s->samples = metrics_counter("sys.samples");
	s->skipped = metrics_counter("sys.ticks_skipped");
	s->sample_ns = metrics_gauge("sys.sample_ns");
	pthread_mutex_init(&s->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (!s->ctx.buf)
		goto fail;
	refresh_host(s, &s->ctx);

	/* A metricset that cannot start is logged by its create() and left out; the
	 * others still run. */
	if (cfg->stats_system) {
		add_set(s, &sys_cpu_metricset);
		add_set(s, &sys_load_metricset);
		add_set(s, &sys_memory_metricset);
	}
	if (cfg->stats_filesystem)
		add_set(s, &sys_filesystem_metricset);
	if (cfg->stats_process)
		add_set(s, &sys_process_metricset);
	if (cfg->stats_container)
		add_set(s, &sys_container_metricset);
	if (s->nsets == 0) {
		log_error("sys", "no metricset could start");
		goto fail;
	}
	log_info("sys", "sampling %s every %llu ms (%zu metricsets)", cfg->hostfs,
		 (unsigned long long)(cfg->topbeat_period / NS_PER_MS), s->nsets);
	return s;
fail:
	sys_sampler_free(s);
	return NULL;
}

int sys_sampler_start(struct sys_sampler *s)
{
	int rc = pthread_create(&s->thread, NULL, sampler_main, s);

	if (rc != 0) {
		log_error("sys", "cannot start the sampler thread: %s", strerror(rc));
		return -rc;
	}
	s->running = true;
	return 0;
}

void sys_sampler_stop(struct sys_sampler *s)
{
	if (!s || !s->running)
		return;
	pthread_mutex_lock(&s->mu);
	s->stopping = true;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
	pthread_join(s->thread, NULL);
	s->running = false;
}

void sys_sampler_free(struct sys_sampler *s)
{
	if (!s)
		return;
	sys_sampler_stop(s);
	for (size_t i = 0; i < s->nsets; i++)
		s->sets[i].ms->destroy(s->sets[i].state);
	sys_file_close(&s->stat);
	sys_file_close(&s->meminfo);
	if (s->ctx.root_fd >= 0)
		close(s->ctx.root_fd);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	hb_free(s->ctx.buf);
	hb_free(s);
}
