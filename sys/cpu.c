/* cpu.c — the cpu metricset (dataset "system.cpu", type "system") and, with
 * topbeat.stats.cpu_per_core, one "system.core" event (type "core") per CPU.
 *
 * Source: proc/stat under the hostfs root (proc(5)), kept open across samples:
 *
 *   cpu  14220 0 2701 262761 575 0 82 992 0 0      ← the sum over every possible CPU
 *   cpu0 7313 0 1306 131196 323 0 23 464 0 0       ← one line per *online* CPU
 *   cpu1 6906 0 1394 131565 251 0 58 528 0 0
 *        user nice system idle iowait irq softirq steal guest guest_nice   (USER_HZ ticks)
 *
 * Maths (Metricbeat's): over one interval, Δstate / Δtotal is the state's share of
 * all CPU time (.norm.pct, 0..1); × cores gives .pct (0..cores); total = everything
 * but idle and iowait; host.cpu.usage = total.norm.pct. cores = the cpuN lines of
 * this sample. The first sample (and one after a counter went backwards) has no
 * previous one: cores and ticks only.
 *
 * CPU hotplug: a core is tracked by its N, not by its position in the file. A core
 * that was not in the previous sample (new, or back online with counters that
 * stood still meanwhile) gets no pct this time; one that vanished is simply not
 * reported. Core ids are capped (MAX_CORE_ID), beyond which cores are counted
 * "sys.cpu.cores_over_cap" and not reported per core.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "hostbeat/log.h"
#include "hostbeat/mem.h"
#include "hostbeat/metrics.h"
#include "hostbeat/sys.h"
#include "sys/cpu.h"

/* Linux's NR_CPUS with CONFIG_MAXSMP. */
#define MAX_CORE_ID 8191

/* ---- pure maths ------------------------------------------------------------ */

int sys_cpu_parse_line(const struct sys_text *line, struct sys_cpu_times *out, long *id)
{
	struct sys_text l = *line, f, num;
	uint64_t v;
	int n;

	if (!sys_text_field(&l, &f) || sys_text_len(&f) < 3 || memcmp(f.p, "cpu", 3) != 0)
		return -ENOENT;
	if (sys_text_len(&f) == 3) {
		*id = -1;
	} else {
		num.p = f.p + 3;
		num.end = f.end;
		if (sys_text_u64(&num, &v) < 0)
			return -ENOENT; /* "cpufreq..." or such: not ours */
		if (v > INT32_MAX)
			return -EINVAL;
		*id = (long)v;
	}
	memset(out, 0, sizeof(*out));
	for (n = 0; n < SYS_CPU_NSTATES && sys_text_field(&l, &f); n++) {
		if (sys_text_u64(&f, &v) < 0)
			return -EINVAL;
		out->t[n] = v;
	}
	return n >= SYS_CPU_IOWAIT ? 0 : -EINVAL; /* user nice system idle at least */
}

uint64_t sys_cpu_total(const struct sys_cpu_times *t)
{
	uint64_t sum = 0;

	for (int s = 0; s < SYS_CPU_NSTATES; s++)
		sum += t->t[s];
	return sum;
}

int sys_cpu_frac(const struct sys_cpu_times *prev, const struct sys_cpu_times *cur,
		 struct sys_cpu_frac *out)
{
	uint64_t total = 0, d[SYS_CPU_NSTATES];
	int s;

	for (s = 0; s < SYS_CPU_NSTATES; s++) {
		if (cur->t[s] < prev->t[s])
			return -ERANGE;
		d[s] = cur->t[s] - prev->t[s];
		total += d[s];
	}
	if (total == 0)
		return -EAGAIN;
	for (s = 0; s < SYS_CPU_NSTATES; s++)
		out->state[s] = (double)d[s] / (double)total;
	out->busy = (double)(total - d[SYS_CPU_IDLE] - d[SYS_CPU_IOWAIT]) / (double)total;
	return 0;
}

uint64_t sys_cpu_ticks_ms(uint64_t ticks, long hz)
{
	uint64_t h = hz > 0 ? (uint64_t)hz : 100;

	return ticks / h * 1000 + ticks % h * 1000 / h;
}

/* ---- field names ----------------------------------------------------------- */

/* Every key is a static string (the event keeps the pointer). */
struct state_keys {
	const char *pct, *norm, *ticks, *legacy_ms, *legacy_p;
	const char *core_pct, *core_ticks, *core_legacy_ms, *core_legacy_p;
};

#define KEYS(s)                                                                                  \
	{                                                                                        \
		"system.cpu." s ".pct", "system.cpu." s ".norm.pct", "system.cpu." s ".ticks",   \
		    "cpu." s, "cpu." s "_p", "system.core." s ".pct", "system.core." s ".ticks", \
		    "core." s, "core." s "_p"                                                    \
	}

static const struct state_keys keys[SYS_CPU_NSTATES] = {
    [SYS_CPU_USER] = KEYS("user"),       [SYS_CPU_NICE] = KEYS("nice"),
    [SYS_CPU_SYSTEM] = KEYS("system"),   [SYS_CPU_IDLE] = KEYS("idle"),
    [SYS_CPU_IOWAIT] = KEYS("iowait"),   [SYS_CPU_IRQ] = KEYS("irq"),
    [SYS_CPU_SOFTIRQ] = KEYS("softirq"), [SYS_CPU_STEAL] = KEYS("steal"),
};

/* ---- the metricset ---------------------------------------------------------- */

struct core_slot {
	struct sys_cpu_times t;
	uint64_t seen; /* the read (cpu_state.reads) this core was last in; 0 = never */
};

struct cpu_state {
	struct sys_file stat;
	struct sys_cpu_times prev; /* the "cpu" line of the previous read */
	bool have_prev;
	uint64_t reads;          /* successful reads of proc/stat so far */
	struct core_slot *cores; /* indexed by N of "cpuN"; grown on demand */
	size_t ncores;
	struct metric *counter_reset; /* "sys.cpu.counter_reset": intervals skipped */
	struct metric *read_errors;   /* "sys.cpu.read_errors" */
	struct metric *parse_errors;  /* "sys.cpu.parse_errors": malformed cpu lines */
	struct metric *over_cap;      /* "sys.cpu.cores_over_cap" */
};

static void *cpu_create(const struct sys_ctx *ctx)
{
	struct cpu_state *st = hb_calloc(1, sizeof(*st));
	ssize_t n;

	if (!st) {
		log_error("sys", "cpu: out of memory");
		return NULL;
	}
	st->stat = (struct sys_file)SYS_FILE_INIT("proc/stat");
	/* Open it now so a wrong hostfs is reported once, at start. */
	n = sys_file_read(&st->stat, ctx->root_fd, ctx->buf, ctx->buf_size);
	if (n < 0 && n != -EFBIG) {
		log_error("sys", "cpu: cannot read %s/proc/stat: %s", ctx->hostfs,
			  strerror((int)-n));
		hb_free(st);
		return NULL;
	}
	st->counter_reset = metrics_counter("sys.cpu.counter_reset");
	st->read_errors = metrics_counter("sys.cpu.read_errors");
	st->parse_errors = metrics_counter("sys.cpu.parse_errors");
	st->over_cap = metrics_counter("sys.cpu.cores_over_cap");
	return st;
}

static void cpu_destroy(void *state)
{
	struct cpu_state *st = state;

	if (!st)
		return;
	sys_file_close(&st->stat);
	hb_free(st->cores);
	hb_free(st);
}

/* The slot of core `id`, growing the table; NULL over the cap or out of memory
 * (counted). */
static struct core_slot *core_slot(struct cpu_state *st, long id)
{
	size_t want;
	struct core_slot *grown;

	if (id < 0 || id > MAX_CORE_ID) {
		metric_inc(st->over_cap);
		return NULL;
	}
	if ((size_t)id < st->ncores)
		return &st->cores[id];
	for (want = st->ncores ? st->ncores : 8; want <= (size_t)id; want *= 2)
		;
	grown = hb_realloc(st->cores, want * sizeof(*grown));
	if (!grown) {
		metric_inc(st->over_cap);
		return NULL;
	}
	memset(grown + st->ncores, 0, (want - st->ncores) * sizeof(*grown));
	st->cores = grown;
	st->ncores = want;
	return &st->cores[id];
}

static void publish_cpu(struct cpu_state *st, struct sys_ctx *ctx, const struct sys_cpu_times *cur,
			unsigned cores)
{
	struct sys_cpu_frac fr;
	struct event *ev;
	bool pct = false;
	int s, rc;

	if (st->have_prev) {
		rc = sys_cpu_frac(&st->prev, cur, &fr);
		if (rc == -ERANGE)
			metric_inc(st->counter_reset);
		pct = rc == 0;
	}
	st->prev = *cur;
	st->have_prev = true;

	ev = sys_event_new(ctx, "system.cpu");
	if (!ev)
		return;
	ev_set_strz(ev, "type", "system");
	ev_set_uint(ev, "system.cpu.cores", cores);
	for (s = 0; s < SYS_CPU_NSTATES; s++) {
		if (pct) {
			ev_set_double(ev, keys[s].pct, sys_round4(fr.state[s] * cores));
			ev_set_double(ev, keys[s].norm, sys_round4(fr.state[s]));
		}
		if (ctx->cfg->cpu_ticks)
			ev_set_uint(ev, keys[s].ticks, cur->t[s]);
		if (ctx->legacy) {
			ev_set_uint(ev, keys[s].legacy_ms, sys_cpu_ticks_ms(cur->t[s], ctx->hz));
			if (pct)
				ev_set_double(ev, keys[s].legacy_p, sys_round4(fr.state[s]));
		}
	}
	if (pct) {
		ev_set_double(ev, "system.cpu.total.pct", sys_round4(fr.busy * cores));
		ev_set_double(ev, "system.cpu.total.norm.pct", sys_round4(fr.busy));
		ev_set_double(ev, "host.cpu.usage", sys_round4(fr.busy));
	}
	sys_publish(ctx, ev);
}

static void publish_core(struct cpu_state *st, struct sys_ctx *ctx, long id,
			 const struct sys_cpu_times *cur)
{
	struct core_slot *slot = core_slot(st, id);
	struct sys_cpu_frac fr;
	struct event *ev;
	bool pct = false;
	int s, rc;

	if (!slot)
		return;
	if (slot->seen == st->reads) { /* the same cpuN twice in one file */
		metric_inc(st->parse_errors);
		return;
	}
	/* Only a core that was in the previous read has a meaningful interval. */
	if (slot->seen && slot->seen + 1 == st->reads) {
		rc = sys_cpu_frac(&slot->t, cur, &fr);
		if (rc == -ERANGE)
			metric_inc(st->counter_reset);
		pct = rc == 0;
	}
	slot->t = *cur;
	slot->seen = st->reads;

	ev = sys_event_new(ctx, "system.core");
	if (!ev)
		return;
	ev_set_strz(ev, "type", "core");
	ev_set_uint(ev, "system.core.id", (uint64_t)id);
	if (ctx->legacy)
		ev_set_uint(ev, "core.id", (uint64_t)id);
	for (s = 0; s < SYS_CPU_NSTATES; s++) {
		if (pct)
			ev_set_double(ev, keys[s].core_pct, sys_round4(fr.state[s]));
		if (ctx->cfg->cpu_ticks)
			ev_set_uint(ev, keys[s].core_ticks, cur->t[s]);
		if (ctx->legacy) {
			ev_set_uint(ev, keys[s].core_legacy_ms,
				    sys_cpu_ticks_ms(cur->t[s], ctx->hz));
			if (pct)
				ev_set_double(ev, keys[s].core_legacy_p, sys_round4(fr.state[s]));
		}
	}
	if (pct)
		ev_set_double(ev, "system.core.total.pct", sys_round4(fr.busy));
	sys_publish(ctx, ev);
}

static void cpu_sample(void *state, struct sys_ctx *ctx)
{
	struct cpu_state *st = state;
	struct sys_cpu_times sum, t;
	struct sys_text all, line;
	bool have_sum = false;
	unsigned cores = 0;
	size_t len;
	ssize_t n;
	long id;
	int rc;

	/* A file larger than the buffer (a huge "intr" line) still holds every cpu
	 * line whole: they come first, and 8192 of them need far less than 1 MiB. */
	n = sys_file_read(&st->stat, ctx->root_fd, ctx->buf, ctx->buf_size);
	if (n == 0 || (n < 0 && n != -EFBIG)) {
		metric_inc(st->read_errors);
		return;
	}
	len = n > 0 ? (size_t)n : ctx->buf_size - 1;
	/* First pass: the sum line and how many cores are online now. */
	all = sys_text_of(ctx->buf, len);
	while (sys_text_line(&all, &line)) {
		rc = sys_cpu_parse_line(&line, &t, &id);
		if (rc == -ENOENT)
			continue;
		if (rc < 0) {
			metric_inc(st->parse_errors);
			continue;
		}
		if (id >= 0) {
			cores++;
		} else if (!have_sum) {
			sum = t;
			have_sum = true;
		}
	}
	if (!have_sum || cores == 0) {
		metric_inc(st->parse_errors);
		return;
	}
	st->reads++;
	publish_cpu(st, ctx, &sum, cores);
	if (!ctx->cfg->stats_cpu_per_core)
		return;
	all = sys_text_of(ctx->buf, len);
	while (sys_text_line(&all, &line))
		if (sys_cpu_parse_line(&line, &t, &id) == 0 && id >= 0)
			publish_core(st, ctx, id, &t);
}

const struct sys_metricset sys_cpu_metricset = {
    .name = "cpu",
    .create = cpu_create,
    .sample = cpu_sample,
    .destroy = cpu_destroy,
};
