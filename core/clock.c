/* clock.c — packet clock for replay, wall/monotonic clocks for live capture. */
#include "hostbeat/clock.h"

#include <stdio.h>
#include <time.h>

void clock_init(struct hb_clock *c, bool replay)
{
	c->replay = replay;
	atomic_store(&c->packet_ns, 0);
}

void clock_packet(struct hb_clock *c, uint64_t ts_ns)
{
	uint64_t cur;

	if (!c->replay)
		return;
	cur = atomic_load_explicit(&c->packet_ns, memory_order_relaxed);
	while (ts_ns > cur &&
	       !atomic_compare_exchange_weak_explicit(&c->packet_ns, &cur, ts_ns,
						      memory_order_relaxed, memory_order_relaxed))
		;
}

uint64_t clock_now(const struct hb_clock *c)
{
	if (c->replay)
		return atomic_load_explicit(&c->packet_ns, memory_order_relaxed);
	return clock_wall_ns();
}

static uint64_t read_clock(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

uint64_t clock_wall_ns(void)
{
	return read_clock(CLOCK_REALTIME);
}

uint64_t clock_mono_ns(void)
{
	return read_clock(CLOCK_MONOTONIC);
}

size_t clock_format_rfc3339(uint64_t ns, int digits, char *buf, size_t size)
{
	time_t secs = (time_t)(ns / NS_PER_SEC);
	uint64_t frac = ns % NS_PER_SEC;
	struct tm tm;
	size_t n;
	int w;

	if (!gmtime_r(&secs, &tm))
		return 0;
	n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
	if (n == 0)
		return 0;
	switch (digits) {
	case 3:
		w = snprintf(buf + n, size - n, ".%03uZ", (unsigned)(frac / 1000000));
		break;
	case 6:
		w = snprintf(buf + n, size - n, ".%06uZ", (unsigned)(frac / 1000));
		break;
	case 9:
		w = snprintf(buf + n, size - n, ".%09uZ", (unsigned)frac);
		break;
	default:
		w = snprintf(buf + n, size - n, "Z");
		break;
	}
	if (w < 0 || (size_t)w >= size - n)
		return 0;
	return n + (size_t)w;
}

void clock_format_index_date(uint64_t ns, char *buf)
{
	time_t secs = (time_t)(ns / NS_PER_SEC);
	struct tm tm;

	if (!gmtime_r(&secs, &tm) || strftime(buf, 11, "%Y.%m.%d", &tm) == 0) {
		buf[0] = '\0';
		return;
	}
}
