/* registry.c — the protocols hostbeat decodes, listed explicitly. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "hostbeat/metrics.h"
#include "hostbeat/proto.h"

extern const struct proto_ops http_proto;
extern const struct proto_ops dns_proto;
extern const struct proto_ops memcache_proto;
extern const struct proto_ops mysql_proto;
extern const struct proto_ops pgsql_proto;
extern const struct proto_ops redis_proto;
extern const struct proto_ops thrift_proto;
extern const struct proto_ops mongodb_proto;

const struct proto_ops *const proto_registry[] = {
    &http_proto,  &dns_proto,   &memcache_proto, &mysql_proto,
    &pgsql_proto, &redis_proto, &thrift_proto,   &mongodb_proto,
};

const size_t proto_registry_len = sizeof(proto_registry) / sizeof(proto_registry[0]);

/* One counter set per protocol (registered ones, plus a few slots for protocols
 * that tests define), filled on first use at start-up. */
#define STATS_SLOTS 16

static struct {
	const struct proto_ops *ops;
	struct proto_stats st;
} stats_table[STATS_SLOTS];
/* Counters all NULL (metric_add is a no-op): for a table that is somehow full. */
static struct proto_stats no_stats;
static pthread_mutex_t stats_lock = PTHREAD_MUTEX_INITIALIZER;

const struct proto_ops *proto_find(const char *name)
{
	for (size_t i = 0; i < proto_registry_len; i++)
		if (strcmp(proto_registry[i]->name, name) == 0)
			return proto_registry[i];
	return NULL;
}

static struct metric *proto_counter(const char *proto, const char *what)
{
	char name[96];

	snprintf(name, sizeof(name), "%s.%s", proto, what);
	return metrics_counter(name);
}

struct proto_stats *proto_stats_get(const struct proto_ops *ops)
{
	struct proto_stats *st = NULL;

	pthread_mutex_lock(&stats_lock);
	for (size_t i = 0; i < STATS_SLOTS; i++) {
		if (stats_table[i].ops && stats_table[i].ops != ops)
			continue;
		st = &stats_table[i].st;
		if (!stats_table[i].ops) {
			stats_table[i].ops = ops;
			st->messages = proto_counter(ops->name, "messages");
			st->transactions = proto_counter(ops->name, "transactions");
			st->unmatched_requests = proto_counter(ops->name, "unmatched_requests");
			st->unmatched_responses = proto_counter(ops->name, "unmatched_responses");
			st->parse_errors = proto_counter(ops->name, "parse_errors");
			st->limit_exceeded = proto_counter(ops->name, "limit_exceeded");
			st->gaps = proto_counter(ops->name, "gaps");
			st->gap_drops = proto_counter(ops->name, "gap_drops");
			st->pool_exhausted = proto_counter(ops->name, "pool_exhausted");
		}
		break;
	}
	pthread_mutex_unlock(&stats_lock);
	/* All slots taken by other protocols cannot happen with the registry's size;
	 * callers still get a valid struct whose counters are NULL (no-op). */
	return st ? st : &no_stats;
}
