/* metrics.c — the registry of named self-monitoring counters. */
#include "hostbeat/metrics.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "hostbeat/event.h"
#include "hostbeat/log.h"
#include "hostbeat/mem.h"

/* The registry is process-wide by nature: counters are bumped from every thread
 * and reported by one. Registration takes the lock; reads/bumps are lock-free. */
static struct metric registry[METRICS_MAX];
static _Atomic size_t registered;
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;

/* Name → registry index + 1 (0 = empty), open addressing: parsers look counters up
 * once per connection, so a lookup is one hash, not a strcmp per counter. Slots
 * are only ever filled (under the lock, after the registry entry). */
#define INDEX_SLOTS (2 * METRICS_MAX)
static _Atomic uint16_t index_slot[INDEX_SLOTS];

static size_t name_hash(const char *name)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	for (; *name; name++)
		h = (h ^ (uint8_t)*name) * 16777619u;
	return h % INDEX_SLOTS;
}

static struct metric *lookup(const char *name)
{
	size_t i = name_hash(name);
	unsigned v;

	while ((v = atomic_load_explicit(&index_slot[i], memory_order_acquire)) != 0) {
		if (strcmp(registry[v - 1].name, name) == 0)
			return &registry[v - 1];
		i = (i + 1) % INDEX_SLOTS;
	}
	return NULL;
}

static void index_add(size_t n)
{
	size_t i = name_hash(registry[n].name);

	while (atomic_load_explicit(&index_slot[i], memory_order_relaxed) != 0)
		i = (i + 1) % INDEX_SLOTS; /* INDEX_SLOTS > METRICS_MAX: a free slot exists */
	atomic_store_explicit(&index_slot[i], (uint16_t)(n + 1), memory_order_release);
}

static struct metric *register_metric(const char *name, bool gauge)
{
	struct metric *m;
	size_t n, len;
	char *copy, *key;

	pthread_mutex_lock(&registry_lock);
	m = lookup(name);
	if (m)
		goto out;
	n = atomic_load(&registered);
	len = strlen(name);
	copy = n < METRICS_MAX ? hb_malloc(len + 1 + sizeof("hostbeat.") - 1 + len + 1) : NULL;
	if (!copy)
		goto out; /* m stays NULL: metric_add(NULL) is a no-op */
	/* one allocation: "name\0hostbeat.name\0" */
	memcpy(copy, name, len + 1);
	key = copy + len + 1;
	memcpy(key, "hostbeat.", sizeof("hostbeat.") - 1);
	memcpy(key + sizeof("hostbeat.") - 1, name, len + 1);
	m = &registry[n];
	m->name = copy;
	m->event_key = key;
	m->gauge = gauge;
	atomic_store(&m->value, 0);
	m->reported = 0;
	atomic_store(&registered, n + 1); /* publish after the slot is filled */
	index_add(n);
out:
	pthread_mutex_unlock(&registry_lock);
	return m;
}

struct metric *metrics_counter(const char *name)
{
	return register_metric(name, false);
}

struct metric *metrics_gauge(const char *name)
{
	return register_metric(name, true);
}

uint64_t metrics_get(const char *name)
{
	const struct metric *m = lookup(name);

	return m ? atomic_load_explicit(&m->value, memory_order_relaxed) : 0;
}

void metrics_foreach(void (*fn)(const struct metric *m, void *arg), void *arg)
{
	size_t n = atomic_load(&registered);

	for (size_t i = 0; i < n; i++)
		fn(&registry[i], arg);
}

void metrics_report(unsigned period_s)
{
	char line[4096];
	size_t n = atomic_load(&registered), off = 0;
	int w;

	for (size_t i = 0; i < n; i++) {
		struct metric *m = &registry[i];
		uint64_t v = atomic_load_explicit(&m->value, memory_order_relaxed);
		uint64_t shown = m->gauge ? v : v - m->reported;

		m->reported = v;
		if (shown == 0)
			continue;
		w = snprintf(line + off, sizeof(line) - off, " %s=%llu", m->name,
			     (unsigned long long)shown);
		if (w < 0 || (size_t)w >= sizeof(line) - off) {
			log_info("monitoring", "Non-zero metrics in the last %us:%s", period_s,
				 line);
			off = 0;
			w = snprintf(line, sizeof(line), " %s=%llu", m->name,
				     (unsigned long long)shown);
			if (w < 0)
				continue;
		}
		off += (size_t)w;
	}
	if (off)
		log_info("monitoring", "Non-zero metrics in the last %us:%s", period_s, line);
	else
		log_info("monitoring", "No non-zero metrics in the last %us", period_s);
}

size_t metrics_fill_event(struct event *ev)
{
	size_t n = atomic_load(&registered), added = 0;

	for (size_t i = 0; i < n; i++)
		if (ev_set_uint(ev, registry[i].event_key,
				atomic_load_explicit(&registry[i].value, memory_order_relaxed)) ==
		    0)
			added++;
	return added;
}

void metrics_reset(void)
{
	size_t n = atomic_load(&registered);

	for (size_t i = 0; i < n; i++) {
		atomic_store(&registry[i].value, 0);
		registry[i].reported = 0;
	}
}
