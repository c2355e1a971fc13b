/* sys.h — the system side (Topbeat): one sampler thread, one file per metricset.
 *
 *   sampler thread, every topbeat.period
 *     sys_ctx (hostfs root fd, clocks, host facts) ──► metricset->sample() ──► events
 *                                                      cpu load memory filesystem
 *                                                      process container
 *
 * Every path is read under topbeat.hostfs ("/" on a host, "/hostfs" in the container,
 * a fixture tree in tests) through the small adapter below (sys/procfs.c): openat()
 * on the root's descriptor, one read() loop, text walked with sys_text — no sscanf
 * on kernel text. Maths are pure functions (sys_cpu_pct() ...) tested on synthetic
 * samples. Each metricset publishes EV_KIND_METRIC events with dataset
 * "system.<name>"; the encoder writes event.module/metricset.name from it, the
 * sampler adds metricset.period, service.type and event.duration.
 *
 * Field names: Metricbeat's system.* (ECS 8) — see ../shared/docs/reference
 * packetbeat.md §3 and ecosystem.md §1.4; with legacy_fields the Topbeat 1.x names
 * (type, proc.*, fs.*, cpu.*_p, mem.*, swap.*, load.load1) are added as well.
 * Percentages are fractions (0.25 = 25 %).
 */
#ifndef HOSTBEAT_SYS_H
#define HOSTBEAT_SYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "hostbeat/config.h"
#include "hostbeat/event.h"

/* ---- text walking (pure; kernel text is never sscanf'd) --------------------- */

struct sys_text {
	const char *p, *end;
};

static inline struct sys_text sys_text_of(const char *p, size_t n)
{
	struct sys_text t = {p, p + n};
	return t;
}
static inline size_t sys_text_len(const struct sys_text *t)
{
	return (size_t)(t->end - t->p);
}
/* Next line (without '\n') into *line; false at the end. A last line without
 * '\n' is still returned. */
bool sys_text_line(struct sys_text *t, struct sys_text *line);
/* Next field separated by spaces/tabs into *field; false when none is left. */
bool sys_text_field(struct sys_text *t, struct sys_text *field);
/* Whole text is a decimal number (no sign, no spaces); saturates nothing: an
 * overflow is an error. 0 or -EINVAL. */
int sys_text_u64(const struct sys_text *t, uint64_t *out);
int sys_text_i64(const struct sys_text *t, int64_t *out); /* optional leading '-' */
/* "12.34" → 12.34 (only digits and one '.'); 0 or -EINVAL. */
int sys_text_double(const struct sys_text *t, double *out);
/* Does the text equal the NUL-terminated s? */
bool sys_text_eq(const struct sys_text *t, const char *s);
/* The value of "Key:   1234 kB" style files (/proc/meminfo, /proc/<pid>/status):
 * finds the line starting with `key` (including its ':'), returns the first
 * number on it, multiplied by 1024 when followed by "kB". 0 or -ENOENT/-EINVAL. */
int sys_kv_u64(const char *buf, size_t len, const char *key, uint64_t *out);

/* ---- file access under the hostfs root -------------------------------------- */

/* Read the whole file `path` (relative, no leading '/') under root_fd into buf
 * (NUL-terminated; at most size-1 bytes). Returns the byte count or a negative
 * errno (-ENOENT for a process that exited, -EACCES, ...). -EFBIG when the file
 * did not fit (buf then holds the first size-1 bytes). */
ssize_t sys_read_at(int root_fd, const char *path, char *buf, size_t size);

/* A file kept open across samples (/proc/stat, /proc/meminfo, /proc/loadavg):
 * opened on first use, re-read with pread(fd, 0). Reopened once after an error. */
struct sys_file {
	int fd; /* -1 until opened */
	const char *path;
};
#define SYS_FILE_INIT(p) \
	{                \
		-1, (p)  \
	}
ssize_t sys_file_read(struct sys_file *f, int root_fd, char *buf, size_t size);
void sys_file_close(struct sys_file *f);

/* The first container id in a /proc/<pid>/cgroup text or a cgroup path: 64 lower
 * hex digits bounded by non-alphanumerics (docker/<id>, docker-<id>.scope,
 * cri-containerd-<id>.scope, libpod-<id>.scope, crio-<id>...). Writes 64 chars +
 * NUL into out and returns true, or false when there is none. */
bool sys_container_id(const char *s, size_t len, char out[65]);

/* ---- the sampler and its metricsets ---------------------------------------- */

/* One sample's context, built by the sampler; borrowed by metricsets for the
 * duration of sample(). */
struct sys_ctx {
	int root_fd;        /* O_DIRECTORY descriptor of topbeat.hostfs */
	const char *hostfs; /* its path (messages, statvfs paths) */
	const struct hb_config *cfg;
	bool legacy;           /* also add the Topbeat 1.x field names */
	uint64_t now_ns;       /* CLOCK_REALTIME at the start: every event's @timestamp */
	uint64_t mono_ns;      /* CLOCK_MONOTONIC at the start: for rates */
	uint64_t period_ns;    /* topbeat.period */
	long hz;               /* clock ticks per second (USER_HZ) */
	long page_size;        /* bytes */
	unsigned ncpu;         /* "cpuN" lines in /proc/stat (≥ 1) */
	uint64_t mem_total;    /* MemTotal in bytes (0 = unknown) */
	uint64_t boot_time_ns; /* btime of /proc/stat, ns since epoch */
	char *buf;             /* scratch for file reads, buf_size bytes */
	size_t buf_size;
	struct ev_sink *sink;   /* where sys_publish() hands events */
	struct metric *dropped; /* "sys.events_dropped" (NULL in tests: not counted) */
	bool real_clock;        /* mono_ns is CLOCK_MONOTONIC: sys_publish() sets
				   event.duration (false in tests: synthetic clocks) */
};

struct sys_metricset {
	const char *name; /* "cpu" → dataset "system.cpu" */
	/* Returns the metricset's state (may be a non-NULL dummy), or NULL with the
	 * reason logged (the sampler then runs without it). Called once. */
	void *(*create)(const struct sys_ctx *ctx);
	/* Read, compute, publish zero or more events. Must not block for long (the
	 * filesystem metricset bounds statvfs with a timeout). */
	void (*sample)(void *state, struct sys_ctx *ctx);
	void (*destroy)(void *state); /* NULL-safe */
};

extern const struct sys_metricset sys_cpu_metricset; /* also "core" events when cpu_per_core */
extern const struct sys_metricset sys_load_metricset;
extern const struct sys_metricset sys_memory_metricset;
extern const struct sys_metricset sys_filesystem_metricset;
extern const struct sys_metricset sys_process_metricset;
extern const struct sys_metricset sys_container_metricset;

/* An event for one metricset document: EV_KIND_METRIC, @timestamp = ctx->now_ns,
 * with metricset.period and service.type set. Waits a little for the shipper when
 * the pool is exhausted; NULL (counted "sys.events_dropped") if it stays so. */
struct event *sys_event_new(struct sys_ctx *ctx, const char *dataset);
/* Hands the event to the shipper (sets event.duration from the sample start). */
void sys_publish(struct sys_ctx *ctx, struct event *ev);

struct sys_sampler;
/* Opens topbeat.hostfs and creates the enabled metricsets. Borrows cfg and sink
 * (they must outlive the sampler). NULL with the reason logged. */
struct sys_sampler *sys_sampler_new(const struct hb_config *cfg, struct ev_sink *sink);
/* One full sample now, in the caller's thread (tests, bench, `hostbeat -once`). */
void sys_sampler_run_once(struct sys_sampler *s);
/* Start/stop the sampler thread (first sample right away, then every period). */
int sys_sampler_start(struct sys_sampler *s);
void sys_sampler_stop(struct sys_sampler *s);
void sys_sampler_free(struct sys_sampler *s); /* stops first; NULL-safe */

/* Refresh the agent's own gauges (self.cpu.user_ms, self.cpu.system_ms,
 * self.memory.rss_bytes, self.threads) with libproc2. 0 or a negative errno. */
int sys_self_update(void);

/* ---- pure maths (tested on synthetic samples) ------------------------------ */

/* Δpart / Δtotal, or -1 when there is no previous sample, Δtotal is 0 or a
 * counter went backwards (the caller then skips the interval). */
double sys_ratio_delta(uint64_t part_prev, uint64_t part_cur, uint64_t total_prev,
		       uint64_t total_cur);
/* Round to 4 decimals, as Metricbeat does. */
double sys_round4(double v);

#endif
