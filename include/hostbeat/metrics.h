/* metrics.h — named self-monitoring counters.
 *
 * Every drop is counted where it happens. Counters are registered at start-up
 * (metrics_counter() allocates; never call it per packet) and bumped with relaxed
 * atomics from any thread. metrics_report() logs the non-zero deltas since the last
 * report, Beats style ("Non-zero metrics in the last 30s").
 */
#ifndef HOSTBEAT_METRICS_H
#define HOSTBEAT_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define METRICS_MAX 512

struct metric {
	const char *name;      /* owned by the registry */
	const char *event_key; /* "hostbeat.<name>": its key in the self-metrics event */
	_Atomic uint64_t value;
	uint64_t reported; /* value at the last report (reporter thread only) */
	bool gauge;        /* report the value, not the delta */
};

/* Returns the counter named `name`, registering it on first use; the same pointer
 * for the same name. Returns NULL only when METRICS_MAX is exceeded (then
 * metric_add(NULL, n) is a harmless no-op). */
struct metric *metrics_counter(const char *name);
struct metric *metrics_gauge(const char *name);

static inline void metric_add(struct metric *m, uint64_t n)
{
	if (m)
		atomic_fetch_add_explicit(&m->value, n, memory_order_relaxed);
}

static inline void metric_inc(struct metric *m)
{
	metric_add(m, 1);
}

static inline void metric_set(struct metric *m, uint64_t v)
{
	if (m)
		atomic_store_explicit(&m->value, v, memory_order_relaxed);
}

/* Current value of a counter by name, 0 when unknown (tests, summaries). */
uint64_t metrics_get(const char *name);
/* Visit every registered counter in registration order. */
void metrics_foreach(void (*fn)(const struct metric *m, void *arg), void *arg);
/* Log the non-zero deltas since the previous call as one line; `period_s` is
 * printed in the message. */
void metrics_report(unsigned period_s);
struct event;
/* Add every counter's current value (cumulative; gauges as they are) to ev as
 * "hostbeat.<name>" fields: the hostbeat-metrics event. Returns the number added. */
size_t metrics_fill_event(struct event *ev);
/* Reset every counter to zero (unit tests). */
void metrics_reset(void);

#endif
