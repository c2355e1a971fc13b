/* memory.c — the memory metricset (dataset "system.memory", type "system").
 *
 * Source: proc/meminfo under the hostfs root (proc(5), Documentation/filesystems/
 * proc.rst), kept open across samples:
 *
 *   MemTotal:       24683584 kB        ← "kB" lines: sys_kv_u64() returns bytes
 *   MemAvailable:   24323984 kB        ← since Linux 3.14
 *   HugePages_Total:       0           ← no unit: a page count
 *   Hugepagesize:       2048 kB
 *
 * Metricbeat's definitions: used = total − free; actual.free = MemAvailable, or on
 * kernels without it free + buffers + cached; actual.used = total − actual.free;
 * swap.used = SwapTotal − SwapFree; every pct is x / its total (0 when the total is
 * 0: no swap, no huge pages). Huge pages: total, free, reserved and surplus are page
 * COUNTS (as the kernel and Metricbeat give them), default_size and used.bytes are
 * BYTES; used = total − free pages (a reserved page is still counted free by the
 * kernel until it is faulted in), used.bytes = used × Hugepagesize.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "hostbeat/log.h"
#include "hostbeat/mem.h"
#include "hostbeat/metrics.h"
#include "hostbeat/sys.h"

struct meminfo {
	uint64_t total, free, available, buffers, cached;     /* bytes */
	uint64_t swap_total, swap_free;                       /* bytes */
	uint64_t huge_total, huge_free, huge_rsvd, huge_surp; /* pages */
	uint64_t huge_size;                                   /* bytes */
	bool has_available, has_swap, has_huge;
};

struct memory_state {
	struct sys_file meminfo;
	struct metric *read_errors;  /* "sys.memory.read_errors" */
	struct metric *parse_errors; /* "sys.memory.parse_errors": no MemTotal/MemFree */
};

static void *memory_create(const struct sys_ctx *ctx)
{
	struct memory_state *st = hb_calloc(1, sizeof(*st));
	ssize_t n;

	if (!st) {
		log_error("sys", "memory: out of memory");
		return NULL;
	}
	st->meminfo = (struct sys_file)SYS_FILE_INIT("proc/meminfo");
	n = sys_file_read(&st->meminfo, ctx->root_fd, ctx->buf, ctx->buf_size);
	if (n < 0) {
		log_error("sys", "memory: cannot read %s/proc/meminfo: %s", ctx->hostfs,
			  strerror((int)-n));
		hb_free(st);
		return NULL;
	}
	st->read_errors = metrics_counter("sys.memory.read_errors");
	st->parse_errors = metrics_counter("sys.memory.parse_errors");
	return st;
}

static void memory_destroy(void *state)
{
	struct memory_state *st = state;

	if (!st)
		return;
	sys_file_close(&st->meminfo);
	hb_free(st);
}

/* A key that is absent reads as 0; returns whether it was there. */
static bool kv(const char *buf, size_t len, const char *key, uint64_t *out)
{
	*out = 0;
	return sys_kv_u64(buf, len, key, out) == 0;
}

/* 0, or -EINVAL when MemTotal or MemFree is missing or MemTotal is 0. */
static int parse_meminfo(const char *buf, size_t len, struct meminfo *m)
{
	bool swap_free, huge_free;

	memset(m, 0, sizeof(*m));
	if (!kv(buf, len, "MemTotal:", &m->total) || !kv(buf, len, "MemFree:", &m->free) ||
	    m->total == 0)
		return -EINVAL;
	m->has_available = kv(buf, len, "MemAvailable:", &m->available);
	kv(buf, len, "Buffers:", &m->buffers);
	kv(buf, len, "Cached:", &m->cached); /* the line, not "SwapCached:" */
	m->has_swap = kv(buf, len, "SwapTotal:", &m->swap_total);
	swap_free = kv(buf, len, "SwapFree:", &m->swap_free);
	m->has_swap = m->has_swap && swap_free;
	m->has_huge = kv(buf, len, "HugePages_Total:", &m->huge_total);
	huge_free = kv(buf, len, "HugePages_Free:", &m->huge_free);
	kv(buf, len, "HugePages_Rsvd:", &m->huge_rsvd);
	kv(buf, len, "HugePages_Surp:", &m->huge_surp);
	kv(buf, len, "Hugepagesize:", &m->huge_size);
	m->has_huge = m->has_huge && huge_free;
	return 0;
}

static uint64_t minus(uint64_t a, uint64_t b)
{
	return a > b ? a - b : 0;
}

/* Saturating: hostile numbers in a fixture tree must not wrap. */
static uint64_t plus(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static uint64_t times(uint64_t a, uint64_t b)
{
	return b && a > UINT64_MAX / b ? UINT64_MAX : a * b;
}

static double frac(uint64_t part, uint64_t whole)
{
	return whole ? sys_round4((double)part / (double)whole) : 0;
}

static void memory_sample(void *state, struct sys_ctx *ctx)
{
	struct memory_state *st = state;
	uint64_t used, actual_free, actual_used, swap_used, huge_used;
	struct meminfo m;
	struct event *ev;
	ssize_t n;

	n = sys_file_read(&st->meminfo, ctx->root_fd, ctx->buf, ctx->buf_size);
	if (n <= 0) {
		metric_inc(st->read_errors);
		return;
	}
	if (parse_meminfo(ctx->buf, (size_t)n, &m) < 0) {
		metric_inc(st->parse_errors);
		return;
	}
	used = minus(m.total, m.free);
	actual_free = m.has_available ? m.available : plus(plus(m.free, m.buffers), m.cached);
	actual_used = minus(m.total, actual_free);
	swap_used = minus(m.swap_total, m.swap_free);

	ev = sys_event_new(ctx, "system.memory");
	if (!ev)
		return;
	ev_set_strz(ev, "type", "system");
	ev_set_uint(ev, "system.memory.total", m.total);
	ev_set_uint(ev, "system.memory.free", m.free);
	ev_set_uint(ev, "system.memory.cached", m.cached);
	ev_set_uint(ev, "system.memory.buffers", m.buffers);
	ev_set_uint(ev, "system.memory.used.bytes", used);
	ev_set_double(ev, "system.memory.used.pct", frac(used, m.total));
	ev_set_uint(ev, "system.memory.actual.free", actual_free);
	ev_set_uint(ev, "system.memory.actual.used.bytes", actual_used);
	ev_set_double(ev, "system.memory.actual.used.pct", frac(actual_used, m.total));
	if (m.has_swap) {
		ev_set_uint(ev, "system.memory.swap.total", m.swap_total);
		ev_set_uint(ev, "system.memory.swap.free", m.swap_free);
		ev_set_uint(ev, "system.memory.swap.used.bytes", swap_used);
		ev_set_double(ev, "system.memory.swap.used.pct", frac(swap_used, m.swap_total));
	}
	if (m.has_huge) {
		huge_used = minus(m.huge_total, m.huge_free);
		ev_set_uint(ev, "system.memory.hugepages.total", m.huge_total);       /* pages */
		ev_set_uint(ev, "system.memory.hugepages.free", m.huge_free);         /* pages */
		ev_set_uint(ev, "system.memory.hugepages.reserved", m.huge_rsvd);     /* pages */
		ev_set_uint(ev, "system.memory.hugepages.surplus", m.huge_surp);      /* pages */
		ev_set_uint(ev, "system.memory.hugepages.default_size", m.huge_size); /* bytes */
		ev_set_uint(ev, "system.memory.hugepages.used.bytes",
			    times(huge_used, m.huge_size));
		ev_set_double(ev, "system.memory.hugepages.used.pct",
			      frac(huge_used, m.huge_total));
	}
	if (ctx->legacy) {
		ev_set_uint(ev, "mem.total", m.total);
		ev_set_uint(ev, "mem.used", used);
		ev_set_uint(ev, "mem.free", m.free);
		ev_set_double(ev, "mem.used_p", frac(used, m.total));
		ev_set_uint(ev, "mem.actual_used", actual_used);
		ev_set_uint(ev, "mem.actual_free", actual_free);
		ev_set_double(ev, "mem.actual_used_p", frac(actual_used, m.total));
		ev_set_uint(ev, "swap.total", m.swap_total);
		ev_set_uint(ev, "swap.used", swap_used);
		ev_set_uint(ev, "swap.free", m.swap_free);
		ev_set_double(ev, "swap.used_p", frac(swap_used, m.swap_total));
	}
	sys_publish(ctx, ev);
}

const struct sys_metricset sys_memory_metricset = {
    .name = "memory",
    .create = memory_create,
    .sample = memory_sample,
    .destroy = memory_destroy,
};
