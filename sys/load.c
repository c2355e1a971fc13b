/* load.c — the load metricset (dataset "system.load", type "system").
 *
 * Source: proc/loadavg under the hostfs root (proc(5)), kept open across samples:
 *
 *   0.14 0.18 0.11 1/90 9621
 *   1 min, 5 min, 15 min run-queue averages; running/total tasks; last pid
 *
 * Fields: system.load.1/5/15, system.load.norm.1/5/15 (÷ cores: the cpuN lines of
 * proc/stat the sampler counted, ctx->ncpu), system.load.cores; Topbeat's
 * load.load1/5/15 with legacy_fields.
 */
#include <errno.h>
#include <string.h>

#include "hostbeat/log.h"
#include "hostbeat/mem.h"
#include "hostbeat/metrics.h"
#include "hostbeat/sys.h"

struct load_state {
	struct sys_file loadavg;
	struct metric *read_errors;  /* "sys.load.read_errors" */
	struct metric *parse_errors; /* "sys.load.parse_errors" */
};

static void *load_create(const struct sys_ctx *ctx)
{
	struct load_state *st = hb_calloc(1, sizeof(*st));
	ssize_t n;

	if (!st) {
		log_error("sys", "load: out of memory");
		return NULL;
	}
	st->loadavg = (struct sys_file)SYS_FILE_INIT("proc/loadavg");
	n = sys_file_read(&st->loadavg, ctx->root_fd, ctx->buf, ctx->buf_size);
	if (n < 0) {
		log_error("sys", "load: cannot read %s/proc/loadavg: %s", ctx->hostfs,
			  strerror((int)-n));
		hb_free(st);
		return NULL;
	}
	st->read_errors = metrics_counter("sys.load.read_errors");
	st->parse_errors = metrics_counter("sys.load.parse_errors");
	return st;
}

static void load_destroy(void *state)
{
	struct load_state *st = state;

	if (!st)
		return;
	sys_file_close(&st->loadavg);
	hb_free(st);
}

static const char *const load_keys[3] = {"system.load.1", "system.load.5", "system.load.15"};
static const char *const norm_keys[3] = {"system.load.norm.1", "system.load.norm.5",
					 "system.load.norm.15"};
static const char *const legacy_keys[3] = {"load.load1", "load.load5", "load.load15"};

static void load_sample(void *state, struct sys_ctx *ctx)
{
	struct load_state *st = state;
	unsigned cores = ctx->ncpu ? ctx->ncpu : 1;
	struct sys_text all, line, f;
	struct event *ev;
	double avg[3];
	ssize_t n;
	int i;

	n = sys_file_read(&st->loadavg, ctx->root_fd, ctx->buf, ctx->buf_size);
	if (n <= 0) {
		metric_inc(st->read_errors);
		return;
	}
	all = sys_text_of(ctx->buf, (size_t)n);
	if (!sys_text_line(&all, &line))
		goto malformed;
	for (i = 0; i < 3; i++)
		if (!sys_text_field(&line, &f) || sys_text_double(&f, &avg[i]) < 0)
			goto malformed;

	ev = sys_event_new(ctx, "system.load");
	if (!ev)
		return;
	ev_set_strz(ev, "type", "system");
	for (i = 0; i < 3; i++) {
		ev_set_double(ev, load_keys[i], sys_round4(avg[i]));
		ev_set_double(ev, norm_keys[i], sys_round4(avg[i] / cores));
		if (ctx->legacy)
			ev_set_double(ev, legacy_keys[i], sys_round4(avg[i]));
	}
	ev_set_uint(ev, "system.load.cores", cores);
	sys_publish(ctx, ev);
	return;
malformed:
	metric_inc(st->parse_errors);
}

const struct sys_metricset sys_load_metricset = {
    .name = "load",
    .create = load_create,
    .sample = load_sample,
    .destroy = load_destroy,
};
