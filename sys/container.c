/* container.c — the container metricset (hostbeat; Topbeat had none): one
 * "system.container" event per container cgroup, with CPU, throttling, memory,
 * block io and pids read from the cgroup filesystem under topbeat.hostfs.
 *
 * Kernel reference: Documentation/admin-guide/cgroup-v2.rst (cpu.stat, memory.current,
 * memory.max, io.stat, pids.*) and Documentation/admin-guide/cgroup-v1/ (cpuacct.rst,
 * memory.rst, blkio-controller.rst, pids.rst, sched-bwc.rst for cpu.stat).
 *
 * Layouts, detected at every sample under topbeat.container.cgroup_root (R):
 *   v2      R/cgroup.controllers                 one hierarchy at R
 *   v1      R/cpuacct R/cpu R/memory R/blkio R/pids (or the combined "cpu,cpuacct",
 *           often with cpu and cpuacct as symlinks to it); each controller has its
 *           own tree with the same relative paths
 *   hybrid  v1 controllers + R/unified (cgroup2 without controllers): read as v1
 *   R/unified alone with controllers                → read as v2
 *
 * Containers: one hierarchy (v1: cpuacct, else the first controller present) is
 * walked depth-first, at most SYS_CONTAINER_MAX_DEPTH levels and
 * SYS_CONTAINER_MAX_DIRS directories per sample. A directory whose own name holds a
 * container id is a container; the walk does not descend into it (its init.scope or
 * nested cgroups are part of it):
 *   docker/<id>  system.slice/docker-<id>.scope             docker
 *   kubepods.slice/.../cri-containerd-<id>.scope             containerd
 *   .../crio-<id>.scope                                      cri-o
 *   machine.slice/libpod-<id>.scope                          podman
 *   kubepods/burstable/pod<uid>/<id>                         (runtime unknown)
 *
 * State between samples (previous CPU usage and io counters, cached names) lives in
 * a table keyed by id, at most SYS_CONTAINER_MAX entries; an entry is removed when
 * a complete walk no longer finds its container. Names come from Docker's
 * var/lib/docker/containers/<id>/config.v2.json, read once per id; podman and
 * containerd keep theirs in stores that need their own libraries (bolt, sqlite):
 * not read.
 *
 * Counters: sys.container.walk_truncated (directory cap reached: the sample is
 * partial and no state is dropped), .table_full, .duplicates (one id in two
 * directories), .vanished (removed between the walk and the reads),
 * .read_errors (a file present but unreadable or not parseable), .counter_reset,
 * .meta_skipped (config.v2.json too big, unreadable or not JSON).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "hostbeat/clock.h"
#include "hostbeat/log.h"
#include "hostbeat/mem.h"
#include "hostbeat/metrics.h"
#include "hostbeat/sys.h"
#include "sys/container.h"

#define CG_PATH 1024      /* a role directory below the hostfs root */
#define META_STR_MAX 1024 /* container.name / container.image.name bytes kept */

/* The controllers read, in v1 each with its own directory. */
enum cg_role { ROLE_CPUACCT, ROLE_CPU, ROLE_MEMORY, ROLE_BLKIO, ROLE_PIDS, ROLE_N };

struct cg_layout {
	unsigned version; /* 0: no cgroup filesystem found, 1, 2 */
	bool hybrid;
	bool have[ROLE_N];
	char dir[ROLE_N][CG_PATH]; /* relative to the hostfs root */
	enum cg_role walk;         /* the hierarchy walked for containers */
};

struct cont_entry {
	char id[65];
	uint32_t gen; /* sample that last saw it */
	bool meta_done;
	bool has_cpu, has_io;
	uint64_t cpu_ns, cpu_mono;
	uint64_t io_read, io_write;
	char *name, *image; /* from config.v2.json, or NULL */
};

struct cont_state {
	struct cont_entry *ent;
	size_t n, alloc, max;
	int32_t *index; /* open addressing over ent[], -1 = empty; rebuilt by sweep() */
	size_t slots;   /* power of two ≥ 2 × SYS_CONTAINER_MAX */
	uint32_t gen;
	size_t max_dirs;

	struct cg_layout lay;
	unsigned logged_version; /* layout last logged (+1; 0 = never) */

	/* one sample's walk */
	struct sys_ctx *ctx;
	char rel[PATH_MAX]; /* the directory below the hierarchy root being visited */
	char path[PATH_MAX + CG_PATH + 64];
	size_t dirs;
	bool truncated;

	struct metric *m_truncated, *m_full, *m_dup, *m_vanished, *m_read_err, *m_reset, *m_meta;
};

/* What one sample read for one container; has_* say which files were there. */
struct cont_sample {
	bool has_usage, has_user, has_system, has_periods, has_throttled, has_throttled_ns;
	bool has_mem, has_limit, has_io, has_pids, has_pids_limit;
	uint64_t usage_ns, user_ns, system_ns;
	uint64_t periods, throttled, throttled_ns;
	uint64_t mem, limit; /* limit 0 with has_limit: "max", no limit */
	uint64_t io_read, io_write;
	uint64_t pids, pids_limit;
};

/* ---- pure parsers and maths (container.h) ---------------------------------- */

static bool has_prefix(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

bool sys_container_dir_id(const char *name, char id[65])
{
	if (strstr(name, "conmon-"))
		return false; /* crio-conmon-<id>.scope, libpod-conmon-<id>.scope */
	return sys_container_id(name, strlen(name), id);
}

const char *sys_container_runtime(const char *name, const char *parent)
{
	char id[65];

	if (has_prefix(name, "docker-"))
		return "docker";
	if (has_prefix(name, "cri-containerd-"))
		return "containerd";
	if (has_prefix(name, "crio-"))
		return "cri-o";
	if (has_prefix(name, "libpod-"))
		return "podman";
	/* A bare id: the directory is the id itself. */
	if (strlen(name) == 64 && sys_container_id(name, 64, id) && strcmp(parent, "docker") == 0)
		return "docker";
	return NULL;
}

static struct sys_text text_trimmed(const char *buf, size_t len)
{
	struct sys_text t = sys_text_of(buf, len);

	while (t.end > t.p && (t.end[-1] == '\n' || t.end[-1] == ' '))
		t.end--;
	return t;
}

int sys_container_flat_u64(const char *buf, size_t len, const char *key, uint64_t *out)
{
	struct sys_text all = sys_text_of(buf, len), line, f;

	while (sys_text_line(&all, &line)) {
		if (!sys_text_field(&line, &f) || !sys_text_eq(&f, key))
			continue;
		if (!sys_text_field(&line, &f) || sys_text_u64(&f, out) < 0)
			return -EINVAL;
		return 0;
	}
	return -ENOENT;
}

int sys_container_limit(const char *buf, size_t len, uint64_t *out)
{
	struct sys_text t = text_trimmed(buf, len);

	if (sys_text_eq(&t, "max"))
		return 1;
	return sys_text_u64(&t, out) < 0 ? -EINVAL : 0;
}

/* "key=value" → value when the key matches. */
static int kv_value(const struct sys_text *f, const char *key, uint64_t *out)
{
	size_t klen = strlen(key);
	struct sys_text v;

	if (sys_text_len(f) <= klen || memcmp(f->p, key, klen) != 0 || f->p[klen] != '=')
		return -ENOENT;
	v.p = f->p + klen + 1;
	v.end = f->end;
	return sys_text_u64(&v, out) < 0 ? -EINVAL : 0;
}

static int add_u64(uint64_t *sum, uint64_t v)
{
	if (*sum > UINT64_MAX - v)
		return -EINVAL;
	*sum += v;
	return 0;
}

int sys_container_io_v2(const char *buf, size_t len, uint64_t *rbytes, uint64_t *wbytes)
{
	struct sys_text all = sys_text_of(buf, len), line, f;
	uint64_t r = 0, w = 0, v;

	while (sys_text_line(&all, &line)) {
		if (!sys_text_field(&line, &f))
			continue; /* blank line */
		if (!memchr(f.p, ':', sys_text_len(&f)))
			return -EINVAL; /* every line starts with MAJ:MIN */
		while (sys_text_field(&line, &f)) {
			int rc = kv_value(&f, "rbytes", &v);

			if (rc == 0)
				rc = add_u64(&r, v);
			else if (rc == -ENOENT && (rc = kv_value(&f, "wbytes", &v)) == 0)
				rc = add_u64(&w, v);
			if (rc == -EINVAL)
				return -EINVAL;
		}
	}
	*rbytes = r;
	*wbytes = w;
	return 0;
}

int sys_container_blkio_v1(const char *buf, size_t len, uint64_t *rbytes, uint64_t *wbytes)
{
	struct sys_text all = sys_text_of(buf, len), line, dev, op, num;
	uint64_t r = 0, w = 0, v;

	while (sys_text_line(&all, &line)) {
		if (!sys_text_field(&line, &dev))
			continue;
		if (!memchr(dev.p, ':', sys_text_len(&dev)))
			continue; /* "Total N": the sum over devices, not one */
		if (!sys_text_field(&line, &op) || !sys_text_field(&line, &num) ||
		    sys_text_u64(&num, &v) < 0)
			return -EINVAL;
		if (sys_text_eq(&op, "Read") && add_u64(&r, v) < 0)
			return -EINVAL;
		if (sys_text_eq(&op, "Write") && add_u64(&w, v) < 0)
			return -EINVAL;
	}
	*rbytes = r;
	*wbytes = w;
	return 0;
}

double sys_container_cpu_cores(uint64_t usage_prev, uint64_t usage_cur, uint64_t mono_prev,
			       uint64_t mono_cur)
{
	return sys_ratio_delta(usage_prev, usage_cur, mono_prev, mono_cur);
}

double sys_container_mem_pct(uint64_t usage, uint64_t limit, uint64_t mem_total)
{
	uint64_t of = limit ? limit : mem_total;

	return of ? (double)usage / (double)of : -1;
}

/* ---- the state table ------------------------------------------------------- */

static size_t id_hash(const char *id)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */

	for (int i = 0; i < 64; i++)
		h = (h ^ (unsigned char)id[i]) * 1099511628211ull;
	return (size_t)h;
}

static struct cont_entry *table_find(struct cont_state *st, const char *id)
{
	size_t mask = st->slots - 1;

	for (size_t i = id_hash(id) & mask;; i = (i + 1) & mask) {
		int32_t k = st->index[i];

		if (k < 0)
			return NULL;
		if (memcmp(st->ent[k].id, id, 64) == 0)
			return &st->ent[k];
	}
}

static void index_put(struct cont_state *st, size_t k)
{
	size_t mask = st->slots - 1, i = id_hash(st->ent[k].id) & mask;

	while (st->index[i] >= 0)
		i = (i + 1) & mask;
	st->index[i] = (int32_t)k;
}

/* A new entry for id, or NULL when the table is full or memory is short. */
static struct cont_entry *table_add(struct cont_state *st, const char *id)
{
	struct cont_entry *e;

	if (st->n >= st->max)
		return NULL;
	if (st->n == st->alloc) {
		size_t want = st->alloc ? st->alloc * 2 : 64;
		struct cont_entry *grown;

		if (want > st->max)
			want = st->max;
		grown = hb_realloc(st->ent, want * sizeof(*grown));
		if (!grown)
			return NULL;
		st->ent = grown;
		st->alloc = want;
	}
	e = &st->ent[st->n];
	memset(e, 0, sizeof(*e));
	memcpy(e->id, id, 65);
	index_put(st, st->n);
	st->n++;
	return e;
}

static void entry_clear(struct cont_entry *e)
{
	hb_free(e->name);
	hb_free(e->image);
	e->name = e->image = NULL;
}

/* Drop the containers this (complete) walk did not see. */
static void table_sweep(struct cont_state *st)
{
	size_t kept = 0;

	for (size_t i = 0; i < st->n; i++) {
		if (st->ent[i].gen != st->gen) {
			entry_clear(&st->ent[i]);
			continue;
		}
		if (kept != i)
			st->ent[kept] = st->ent[i];
		kept++;
	}
	st->n = kept;
	for (size_t i = 0; i < st->slots; i++)
		st->index[i] = -1;
	for (size_t i = 0; i < st->n; i++)
		index_put(st, i);
}

/* ---- layout ---------------------------------------------------------------- */

static bool exists_at(int root_fd, const char *dir, const char *file)
{
	char path[CG_PATH + 64];
	struct stat sb;
	int n = snprintf(path, sizeof(path), "%s/%s", dir, file);

	return n > 0 && (size_t)n < sizeof(path) && fstatat(root_fd, path, &sb, 0) == 0;
}

static const struct {
	enum cg_role role;
	const char *names[4];
	const char *probe; /* a file every cgroup of that controller has at its root */
} v1_roles[] = {
    {ROLE_CPUACCT, {"cpuacct", "cpu,cpuacct", "cpuacct,cpu", NULL}, "cpuacct.usage"},
    {ROLE_CPU, {"cpu", "cpu,cpuacct", "cpuacct,cpu", NULL}, "cpu.shares"},
    {ROLE_MEMORY, {"memory", NULL, NULL, NULL}, "memory.usage_in_bytes"},
    {ROLE_BLKIO, {"blkio", NULL, NULL, NULL}, "cgroup.procs"},
    {ROLE_PIDS, {"pids", NULL, NULL, NULL}, "cgroup.procs"},
};

/* The walk's hierarchy in v1, by preference. */
static const enum cg_role walk_order[] = {ROLE_CPUACCT, ROLE_CPU, ROLE_MEMORY, ROLE_PIDS,
					  ROLE_BLKIO};

static void layout_v2(struct cg_layout *lay, const char *dir)
{
	lay->version = 2;
	lay->walk = ROLE_CPUACCT;
	for (int r = 0; r < ROLE_N; r++) {
		lay->have[r] = true;
		snprintf(lay->dir[r], CG_PATH, "%s", dir);
	}
}

static void layout_detect(struct cg_layout *lay, int root_fd, const char *root)
{
	char unified[CG_PATH];
	bool any = false;

	memset(lay, 0, sizeof(*lay));
	if (exists_at(root_fd, root, "cgroup.controllers")) {
		layout_v2(lay, root);
		return;
	}
	for (size_t i = 0; i < sizeof(v1_roles) / sizeof(v1_roles[0]); i++) {
		enum cg_role r = v1_roles[i].role;

		for (int k = 0; k < 4 && v1_roles[i].names[k] && !lay->have[r]; k++) {
			char dir[CG_PATH];
			int n = snprintf(dir, sizeof(dir), "%s/%s", root, v1_roles[i].names[k]);

			if (n <= 0 || (size_t)n >= sizeof(dir) ||
			    !exists_at(root_fd, dir, v1_roles[i].probe))
				continue;
			memcpy(lay->dir[r], dir, (size_t)n + 1);
			lay->have[r] = any = true;
		}
	}
	snprintf(unified, sizeof(unified), "%s/unified", root);
	if (any) {
		lay->version = 1;
		lay->hybrid = exists_at(root_fd, unified, "cgroup.controllers");
		for (size_t i = 0; i < sizeof(walk_order) / sizeof(walk_order[0]); i++) {
			if (lay->have[walk_order[i]]) {
				lay->walk = walk_order[i];
				break;
			}
		}
		return;
	}
	if (exists_at(root_fd, unified, "cgroup.controllers"))
		layout_v2(lay, unified);
}

/* ---- reading one container ------------------------------------------------- */

/* Read role-dir/rel/file into ctx->buf. Bytes read, or a negative errno (-ENOENT
 * for a file this kernel or controller does not have: its fields are omitted). */
static ssize_t read_cg(struct cont_state *st, enum cg_role role, const char *file)
{
	struct sys_ctx *ctx = st->ctx;
	ssize_t n;
	int len;

	if (!st->lay.have[role])
		return -ENOENT;
	len = snprintf(st->path, sizeof(st->path), "%s/%s/%s", st->lay.dir[role], st->rel, file);
	if (len <= 0 || (size_t)len >= sizeof(st->path))
		return -ENAMETOOLONG;
	n = sys_read_at(ctx->root_fd, st->path, ctx->buf, ctx->buf_size);
	if (n < 0 && n != -ENOENT)
		metric_inc(st->m_read_err);
	return n;
}

/* A file holding one number. true when read. */
static bool read_u64(struct cont_state *st, enum cg_role role, const char *file, uint64_t *out)
{
	ssize_t n = read_cg(st, role, file);
	struct sys_text t;

	if (n < 0)
		return false;
	t = text_trimmed(st->ctx->buf, (size_t)n);
	if (sys_text_u64(&t, out) < 0) {
		metric_inc(st->m_read_err);
		return false;
	}
	return true;
}

/* memory.max / pids.max: a number or "max" (limit 0). true when read. */
static bool read_limit(struct cont_state *st, enum cg_role role, const char *file, uint64_t *out)
{
	ssize_t n = read_cg(st, role, file);
	int rc;

	if (n < 0)
		return false;
	rc = sys_container_limit(st->ctx->buf, (size_t)n, out);
	if (rc < 0) {
		metric_inc(st->m_read_err);
		return false;
	}
	if (rc == 1)
		*out = 0;
	return true;
}

/* One key of a flat keyed file already in ctx->buf; a missing key is no error. */
static bool flat(struct cont_state *st, ssize_t n, const char *key, uint64_t mult, uint64_t *out)
{
	uint64_t v;
	int rc;

	if (n < 0)
		return false;
	rc = sys_container_flat_u64(st->ctx->buf, (size_t)n, key, &v);
	if (rc == -EINVAL || (rc == 0 && mult > 1 && v > UINT64_MAX / mult)) {
		metric_inc(st->m_read_err);
		return false;
	}
	if (rc < 0)
		return false;
	*out = v * mult;
	return true;
}

static void read_v2(struct cont_state *st, struct cont_sample *s)
{
	ssize_t n = read_cg(st, ROLE_CPU, "cpu.stat");

	s->has_usage = flat(st, n, "usage_usec", NS_PER_US, &s->usage_ns);
	s->has_user = flat(st, n, "user_usec", NS_PER_US, &s->user_ns);
	s->has_system = flat(st, n, "system_usec", NS_PER_US, &s->system_ns);
	s->has_periods = flat(st, n, "nr_periods", 1, &s->periods);
	s->has_throttled = flat(st, n, "nr_throttled", 1, &s->throttled);
	s->has_throttled_ns = flat(st, n, "throttled_usec", NS_PER_US, &s->throttled_ns);
	s->has_mem = read_u64(st, ROLE_MEMORY, "memory.current", &s->mem);
	s->has_limit = read_limit(st, ROLE_MEMORY, "memory.max", &s->limit);
	n = read_cg(st, ROLE_BLKIO, "io.stat");
	if (n >= 0) {
		s->has_io =
		    sys_container_io_v2(st->ctx->buf, (size_t)n, &s->io_read, &s->io_write) == 0;
		if (!s->has_io)
			metric_inc(st->m_read_err);
	}
	s->has_pids = read_u64(st, ROLE_PIDS, "pids.current", &s->pids);
	s->has_pids_limit = read_limit(st, ROLE_PIDS, "pids.max", &s->pids_limit);
}

static void read_v1(struct cont_state *st, struct cont_sample *s)
{
	uint64_t hz = st->ctx->hz > 0 ? (uint64_t)st->ctx->hz : 100;
	uint64_t tick_ns = NS_PER_SEC / hz;
	ssize_t n;

	s->has_usage = read_u64(st, ROLE_CPUACCT, "cpuacct.usage", &s->usage_ns);
	n = read_cg(st, ROLE_CPUACCT, "cpuacct.stat");
	s->has_user = flat(st, n, "user", tick_ns, &s->user_ns);
	s->has_system = flat(st, n, "system", tick_ns, &s->system_ns);
	n = read_cg(st, ROLE_CPU, "cpu.stat");
	s->has_periods = flat(st, n, "nr_periods", 1, &s->periods);
	s->has_throttled = flat(st, n, "nr_throttled", 1, &s->throttled);
	s->has_throttled_ns = flat(st, n, "throttled_time", 1, &s->throttled_ns);
	s->has_mem = read_u64(st, ROLE_MEMORY, "memory.usage_in_bytes", &s->mem);
	s->has_limit = read_u64(st, ROLE_MEMORY, "memory.limit_in_bytes", &s->limit);
	if (s->has_limit && s->limit >= SYS_CONTAINER_V1_NO_LIMIT)
		s->limit = 0;
	n = read_cg(st, ROLE_BLKIO, "blkio.throttle.io_service_bytes");
	if (n >= 0) {
		s->has_io =
		    sys_container_blkio_v1(st->ctx->buf, (size_t)n, &s->io_read, &s->io_write) == 0;
		if (!s->has_io)
			metric_inc(st->m_read_err);
	}
	s->has_pids = read_u64(st, ROLE_PIDS, "pids.current", &s->pids);
	s->has_pids_limit = read_limit(st, ROLE_PIDS, "pids.max", &s->pids_limit);
}

static bool sample_empty(const struct cont_sample *s)
{
	return !s->has_usage && !s->has_user && !s->has_system && !s->has_periods && !s->has_mem &&
	       !s->has_limit && !s->has_io && !s->has_pids && !s->has_pids_limit;
}

/* The string at obj.key as a new copy (capped), or NULL. */
static char *json_str(struct json_object *obj, const char *key, bool strip_slash)
{
	struct json_object *v;
	const char *s;
	size_t len;

	if (!obj || !json_object_object_get_ex(obj, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	s = json_object_get_string(v);
	len = (size_t)json_object_get_string_len(v);
	if (strip_slash && len > 0 && s[0] == '/') {
		s++;
		len--;
	}
	if (len == 0)
		return NULL;
	return hb_strndup(s, len < META_STR_MAX ? len : META_STR_MAX);
}

/* Docker's config.v2.json: "Name":"/web", "Config":{"Image":"nginx:1.25"}. Read
 * once per container; a missing file is not retried. */
static void read_docker_meta(struct cont_state *st, struct cont_entry *e)
{
	struct sys_ctx *ctx = st->ctx;
	size_t cap =
	    ctx->buf_size < SYS_CONTAINER_META_MAX + 1 ? ctx->buf_size : SYS_CONTAINER_META_MAX + 1;
	struct json_object *root, *config = NULL;
	ssize_t n;

	e->meta_done = true;
	snprintf(st->path, sizeof(st->path), "var/lib/docker/containers/%s/config.v2.json", e->id);
	n = sys_read_at(ctx->root_fd, st->path, ctx->buf, cap);
	if (n == -ENOENT || n == -ENOTDIR)
		return;
	if (n <= 0) {
		metric_inc(st->m_meta); /* too big (-EFBIG), unreadable, or empty */
		return;
	}
	root = json_tokener_parse(ctx->buf);
	if (!root || !json_object_is_type(root, json_type_object)) {
		metric_inc(st->m_meta);
		json_object_put(root);
		return;
	}
	e->name = json_str(root, "Name", true);
	if (json_object_object_get_ex(root, "Config", &config) &&
	    json_object_is_type(config, json_type_object))
		e->image = json_str(config, "Image", false);
	json_object_put(root);
}

static void set_pct(struct event *ev, const char *key, double v)
{
	ev_set_double(ev, key, sys_round4(v));
}

static void publish(struct cont_state *st, const char *id, const char *runtime,
		    const struct cont_entry *e, const struct cont_sample *s, double cores,
		    bool has_disk, uint64_t disk_read, uint64_t disk_write)
{
	struct sys_ctx *ctx = st->ctx;
	unsigned ncpu = ctx->ncpu ? ctx->ncpu : 1;
	struct event *ev = sys_event_new(ctx, "system.container");
	double mem_pct;

	if (!ev)
		return; /* counted by sys_event_new() */
	ev_set_strz(ev, "type", "container");
	ev_set_str(ev, "container.id", id, 64);
	if (runtime)
		ev_set_strz(ev, "container.runtime", runtime);
	if (e && e->name)
		ev_set_strz(ev, "container.name", e->name);
	if (e && e->image)
		ev_set_strz(ev, "container.image.name", e->image);
	ev_set_fmt(ev, "system.container.cgroup.path", "/%s", st->rel);
	ev_set_uint(ev, "system.container.cgroup.version", st->lay.version);

	if (s->has_usage)
		ev_set_uint(ev, "system.container.cpu.usage.ns", s->usage_ns);
	if (s->has_user)
		ev_set_uint(ev, "system.container.cpu.user.ns", s->user_ns);
	if (s->has_system)
		ev_set_uint(ev, "system.container.cpu.system.ns", s->system_ns);
	if (cores >= 0) {
		set_pct(ev, "system.container.cpu.pct", cores);
		set_pct(ev, "system.container.cpu.norm.pct", cores / ncpu);
		set_pct(ev, "container.cpu.usage", cores / ncpu);
	}
	if (s->has_periods)
		ev_set_uint(ev, "system.container.cpu.throttling.periods", s->periods);
	if (s->has_throttled)
		ev_set_uint(ev, "system.container.cpu.throttling.throttled.periods", s->throttled);
	if (s->has_throttled_ns)
		ev_set_uint(ev, "system.container.cpu.throttling.throttled.ns", s->throttled_ns);

	if (s->has_mem) {
		ev_set_uint(ev, "system.container.memory.usage.bytes", s->mem);
		mem_pct =
		    sys_container_mem_pct(s->mem, s->has_limit ? s->limit : 0, ctx->mem_total);
		if (mem_pct >= 0) {
			set_pct(ev, "system.container.memory.pct", mem_pct);
			set_pct(ev, "container.memory.usage", mem_pct);
		}
	}
	if (s->has_limit && s->limit)
		ev_set_uint(ev, "system.container.memory.limit.bytes", s->limit);

	if (s->has_io) {
		ev_set_uint(ev, "system.container.io.read.bytes", s->io_read);
		ev_set_uint(ev, "system.container.io.write.bytes", s->io_write);
	}
	if (has_disk) { /* ECS: bytes since the last collection */
		ev_set_uint(ev, "container.disk.read.bytes", disk_read);
		ev_set_uint(ev, "container.disk.write.bytes", disk_write);
	}
	if (s->has_pids)
		ev_set_uint(ev, "system.container.pids.current", s->pids);
	if (s->has_pids_limit && s->pids_limit)
		ev_set_uint(ev, "system.container.pids.limit", s->pids_limit);
	sys_publish(ctx, ev);
}

/* st->rel is the container's directory; name its last component. */
static void sample_container(struct cont_state *st, const char *id, const char *name,
			     const char *parent)
{
	struct sys_ctx *ctx = st->ctx;
	const char *runtime = sys_container_runtime(name, parent);
	struct cont_sample s = {0};
	struct cont_entry *e = table_find(st, id);
	uint64_t disk_read = 0, disk_write = 0;
	double cores = -1;
	bool has_disk = false;

	if (e && e->gen == st->gen) {
		metric_inc(st->m_dup);
		return;
	}
	if (st->lay.version == 2)
		read_v2(st, &s);
	else
		read_v1(st, &s);
	if (sample_empty(&s)) {
		snprintf(st->path, sizeof(st->path), "%s/%s", st->lay.dir[st->lay.walk], st->rel);
		if (faccessat(ctx->root_fd, st->path, F_OK, 0) != 0) {
			metric_inc(st->m_vanished);
			return;
		}
	}
	if (!e) {
		e = table_add(st, id);
		if (!e)
			metric_inc(st->m_full); /* published without rates or names */
	}
	if (e) {
		e->gen = st->gen;
		if (!e->meta_done && (!runtime || strcmp(runtime, "docker") == 0))
			read_docker_meta(st, e);
		if (s.has_usage) {
			if (e->has_cpu) {
				cores = sys_container_cpu_cores(e->cpu_ns, s.usage_ns, e->cpu_mono,
								ctx->mono_ns);
				if (s.usage_ns < e->cpu_ns)
					metric_inc(st->m_reset);
			}
			e->has_cpu = true;
			e->cpu_ns = s.usage_ns;
			e->cpu_mono = ctx->mono_ns;
		}
		if (s.has_io) {
			if (e->has_io && s.io_read >= e->io_read && s.io_write >= e->io_write) {
				has_disk = true;
				disk_read = s.io_read - e->io_read;
				disk_write = s.io_write - e->io_write;
			} else if (e->has_io) {
				metric_inc(st->m_reset);
			}
			e->has_io = true;
			e->io_read = s.io_read;
			e->io_write = s.io_write;
		}
	}
	publish(st, id, runtime, e, &s, cores, has_disk, disk_read, disk_write);
}

/* The last component of st->rel[0, len) ("" at the root). */
static const char *rel_base(const struct cont_state *st, size_t len, char *out, size_t size)
{
	size_t start = len;

	while (start > 0 && st->rel[start - 1] != '/')
		start--;
	if (len - start >= size)
		return "";
	memcpy(out, st->rel + start, len - start);
	out[len - start] = '\0';
	return out;
}

static bool is_dir(DIR *d, const struct dirent *de)
{
	struct stat sb;

	if (de->d_type == DT_DIR)
		return true;
	if (de->d_type != DT_UNKNOWN)
		return false; /* symlinks are not followed inside a hierarchy */
	return fstatat(dirfd(d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(sb.st_mode);
}

/* Visit the subdirectories of dfd (st->rel[0, len) below the hierarchy root, at
 * `depth`); takes dfd. */
static void walk(struct cont_state *st, int dfd, size_t len, unsigned depth)
{
	DIR *d = fdopendir(dfd);
	struct dirent *de;
	char parent[NAME_MAX + 1], id[65];

	if (!d) {
		close(dfd);
		return;
	}
	rel_base(st, len, parent, sizeof(parent));
	while (!st->truncated && (de = readdir(d)) != NULL) {
		size_t nlen = strlen(de->d_name), sub = len + (len > 0) + nlen;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 || !is_dir(d, de))
			continue;
		if (st->dirs >= st->max_dirs) {
			st->truncated = true;
			metric_inc(st->m_truncated);
			break;
		}
		st->dirs++;
		if (sub >= sizeof(st->rel))
			continue;
		if (len > 0)
			st->rel[len] = '/';
		memcpy(st->rel + sub - nlen, de->d_name, nlen + 1);
		if (sys_container_dir_id(de->d_name, id)) {
			sample_container(st, id, de->d_name, parent);
		} else if (depth + 1 < SYS_CONTAINER_MAX_DEPTH) {
			int cfd = openat(dirfd(d), de->d_name,
					 O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);

			if (cfd >= 0)
				walk(st, cfd, sub, depth + 1);
		}
		st->rel[len] = '\0';
	}
	closedir(d);
}

static const char *cgroup_root(const struct sys_ctx *ctx)
{
	const char *r = ctx->cfg && ctx->cfg->cgroup_root ? ctx->cfg->cgroup_root : "";

	while (*r == '/')
		r++;
	return *r ? r : "sys/fs/cgroup";
}

static void log_layout(struct cont_state *st, const struct sys_ctx *ctx, const char *root)
{
	if (st->logged_version == st->lay.version + 1)
		return;
	st->logged_version = st->lay.version + 1;
	if (st->lay.version == 0)
		log_warn("sys.container", "no cgroup filesystem under %s/%s: no container metrics",
			 ctx->hostfs ? ctx->hostfs : "", root);
	else
		log_info("sys.container", "cgroup v%u%s, containers found under %s",
			 st->lay.version, st->lay.hybrid ? " (hybrid)" : "",
			 st->lay.dir[st->lay.walk]);
}

static void container_sample(void *state, struct sys_ctx *ctx)
{
	struct cont_state *st = state;
	const char *root = cgroup_root(ctx);
	int fd;

	layout_detect(&st->lay, ctx->root_fd, root);
	log_layout(st, ctx, root);
	if (st->lay.version == 0)
		return;
	st->ctx = ctx;
	st->gen++;
	st->dirs = 0;
	st->truncated = false;
	st->rel[0] = '\0';
	fd = openat(ctx->root_fd, st->lay.dir[st->lay.walk], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0)
		walk(st, fd, 0, 0);
	/* A partial walk cannot tell a removed container from one not reached. */
	if (fd >= 0 && !st->truncated)
		table_sweep(st);
	st->ctx = NULL;
}

static void container_destroy(void *state)
{
	struct cont_state *st = state;

	if (!st)
		return;
	for (size_t i = 0; i < st->n; i++)
		entry_clear(&st->ent[i]);
	hb_free(st->ent);
	hb_free(st->index);
	hb_free(st);
}

static void *container_create(const struct sys_ctx *ctx)
{
	struct cont_state *st = hb_calloc(1, sizeof(*st));

	(void)ctx;
	if (!st)
		return NULL;
	st->max = SYS_CONTAINER_MAX;
	st->max_dirs = SYS_CONTAINER_MAX_DIRS;
	st->slots = 1;
	while (st->slots < 2 * SYS_CONTAINER_MAX)
		st->slots *= 2;
	st->index = hb_malloc(st->slots * sizeof(*st->index));
	if (!st->index) {
		log_error("sys.container", "out of memory");
		container_destroy(st);
		return NULL;
	}
	for (size_t i = 0; i < st->slots; i++)
		st->index[i] = -1;
	st->m_truncated = metrics_counter("sys.container.walk_truncated");
	st->m_full = metrics_counter("sys.container.table_full");
	st->m_dup = metrics_counter("sys.container.duplicates");
	st->m_vanished = metrics_counter("sys.container.vanished");
	st->m_read_err = metrics_counter("sys.container.read_errors");
	st->m_reset = metrics_counter("sys.container.counter_reset");
	st->m_meta = metrics_counter("sys.container.meta_skipped");
	return st;
}

void sys_container_set_limits(void *state, size_t max_containers, size_t max_dirs)
{
	struct cont_state *st = state;

	st->max = max_containers < SYS_CONTAINER_MAX ? max_containers : SYS_CONTAINER_MAX;
	st->max_dirs = max_dirs;
}

const struct sys_metricset sys_container_metricset = {
    .name = "container",
    .create = container_create,
    .sample = container_sample,
    .destroy = container_destroy,
};
