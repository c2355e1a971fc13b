/* filesystem.c — the filesystem metricset: one "system.filesystem" event per mounted
 * filesystem, its sizes from statvfs(2).
 *
 * The mount table is /proc/<pid>/mountinfo (proc(5); layout in filesystem.h):
 *  - hostfs "/" (on the host): proc/self/mountinfo, as df (gnulib mountlist, via
 *    libmount) and Metricbeat (/proc/self/mounts) read it. It is this process's
 *    mount namespace — the one statvfs resolves our paths in, which matters for a
 *    service in a private namespace (systemd ProtectSystem=, PrivateTmp=).
 *  - any other hostfs (the container, mounting the host's / at /hostfs and its
 *    /proc at /hostfs/proc): proc/1/mountinfo, the host init's table. proc/self
 *    there would be wrong: the host's procfs resolves "self" to our pid in the host
 *    pid namespace, whose mount namespace is the container's (overlay root, its
 *    /etc/hosts binds ...). Each mount point is then statvfs'd at hostfs + mount
 *    point. A hostfs tree without proc/1 (a copied tree) falls back to proc/self.
 *
 * Which mounts: every line up to SYS_FS_MAX_MOUNTS (more are counted), minus the
 * types in topbeat.filesystem.ignore_types (exact match), mount points that are not
 * absolute, and mounts that a path lookup cannot reach — statvfs on them would
 * return another filesystem's figures:
 *  - shadowed: another mount sits on the same path on top of it (its parent is
 *    this mount; unrelated mounts at one path: the later line wins);
 *  - hidden: a mount below a shadowed one (/a/b mounted, then /a mounted over).
 * The same device mounted at several places (bind mounts) is reported at each
 * mount point (df keeps one per device).
 *
 * statvfs on a hung NFS/CIFS/FUSE mount blocks, uninterruptibly, for minutes. So
 * every call runs in a worker thread and the sampler waits at most
 * topbeat.filesystem.timeout: on timeout the mount is skipped (counted
 * "sys.filesystem.timeouts", logged once), the worker is left to finish on its own
 * (detached, refcounted) and a fresh worker takes the next call. The stuck path is
 * not asked again until its call returns ("sys.filesystem.stuck_skipped"), so one
 * hung server costs one thread, not one per sample. destroy() never waits for a
 * worker.
 *
 * Figures (Metricbeat / Topbeat): total = f_blocks × f_frsize, free = f_bfree ×
 * f_frsize, available = f_bavail × f_frsize, used = total − free, used.pct =
 * used / (used + available) as current Metricbeat and df's Use% (0 for an empty
 * filesystem; legacy fs.used_p = used / total as Topbeat), files = f_files,
 * free_files = f_ffree.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>

#include "hostbeat/clock.h"
#include "hostbeat/log.h"
#include "hostbeat/mem.h"
#include "hostbeat/metrics.h"
#include "hostbeat/sys.h"
#include "sys/filesystem.h"

#define LOG_SEL "sys.filesystem"
#define PATH_CAP 4096             /* PATH_MAX: the joined statvfs path */
#define WORKER_STACK (256u << 10) /* statvfs needs little; ASan needs more */
#define MOUNTS_INITIAL 64         /* entries allocated first, doubled up to the cap */
#define MAX_DEPTH 256             /* mount tree depth followed; deeper is assumed reachable */

/* ---- mountinfo text ---------------------------------------------------------- */

static bool is_octal(char c)
{
	return c >= '0' && c <= '7';
}

size_t sys_fs_unescape(char *s, size_t len)
{
	size_t r = 0, w = 0;

	while (r < len) {
		if (s[r] == '\\' && len - r >= 4 && is_octal(s[r + 1]) && is_octal(s[r + 2]) &&
		    is_octal(s[r + 3])) {
			unsigned v = (unsigned)(s[r + 1] - '0') * 64 +
				     (unsigned)(s[r + 2] - '0') * 8 + (unsigned)(s[r + 3] - '0');

			/* The kernel escapes bytes, so > \377 is not an escape; \000 would
			 * cut the path short in statvfs: keep both as written. */
			if (v != 0 && v <= 0xff) {
				s[w++] = (char)v;
				r += 4;
				continue;
			}
		}
		s[w++] = s[r++];
	}
	return w;
}

/* Unescape a field of `line` in place: the field's bytes are line's own. */
static void unescape_field(char *line, struct sys_text *f)
{
	char *p = line + (f->p - line);

	f->end = p + sys_fs_unescape(p, sys_text_len(f));
}

static bool next_u64(struct sys_text *t, uint64_t *v)
{
	struct sys_text f;

	return sys_text_field(t, &f) && sys_text_u64(&f, v) == 0;
}

int sys_fs_parse_mountinfo_line(char *line, size_t len, struct sys_fs_mount *out)
{
	struct sys_text t = sys_text_of(line, len), f, major, minor;
	const char *colon;

	if (memchr(line, '\0', len))
		return -EINVAL;
	if (!next_u64(&t, &out->id) || !next_u64(&t, &out->parent) || !sys_text_field(&t, &f))
		return -EINVAL;
	colon = memchr(f.p, ':', sys_text_len(&f));
	if (!colon)
		return -EINVAL;
	major = sys_text_of(f.p, (size_t)(colon - f.p));
	minor = sys_text_of(colon + 1, (size_t)(f.end - colon - 1));
	if (sys_text_u64(&major, &out->major) < 0 || sys_text_u64(&minor, &out->minor) < 0)
		return -EINVAL;
	if (!sys_text_field(&t, &out->root) || !sys_text_field(&t, &out->mount_point) ||
	    !sys_text_field(&t, &f)) /* mount options */
		return -EINVAL;
	do { /* optional fields, then the "-" separator */
		if (!sys_text_field(&t, &f))
			return -EINVAL;
	} while (!sys_text_eq(&f, "-"));
	if (!sys_text_field(&t, &out->fstype) || !sys_text_field(&t, &out->source))
		return -EINVAL;
	/* Super block options follow; nothing here needs them. */
	unescape_field(line, &out->root);
	unescape_field(line, &out->mount_point);
	unescape_field(line, &out->fstype);
	unescape_field(line, &out->source);
	return 0;
}

/* ---- the statvfs worker ------------------------------------------------------ */

/* One thread that runs statvfs calls, one at a time. Shared by the state and the
 * thread (refs); whoever drops the last reference frees it. Once abandoned (the
 * call timed out, or the metricset is destroyed) the thread exits as soon as it
 * is idle. path/fn are written by the state only while no call is pending. */
struct fs_worker {
	pthread_mutex_t mu;
	pthread_cond_t cv; /* CLOCK_MONOTONIC; both directions */
	int refs;
	bool abandoned;
	bool pending; /* a call is posted and has not returned */
	sys_fs_statvfs_fn fn;
	char path[PATH_CAP];
	struct statvfs out;
	int rc;
};

static void worker_put(struct fs_worker *w)
{
	bool last;

	pthread_mutex_lock(&w->mu);
	last = --w->refs == 0;
	pthread_mutex_unlock(&w->mu);
	if (!last)
		return;
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
	hb_free(w);
}

static void *worker_main(void *arg)
{
	struct fs_worker *w = arg;

	pthread_mutex_lock(&w->mu);
	for (;;) {
		sys_fs_statvfs_fn fn;
		struct statvfs out;
		int rc;

		while (!w->pending && !w->abandoned)
			pthread_cond_wait(&w->cv, &w->mu);
		if (!w->pending)
			break; /* abandoned while idle */
		fn = w->fn;
		pthread_mutex_unlock(&w->mu);
		memset(&out, 0, sizeof(out));
		rc = fn(w->path, &out); /* may block for minutes */
		pthread_mutex_lock(&w->mu);
		w->out = out;
		w->rc = rc;
		w->pending = false;
		pthread_cond_broadcast(&w->cv);
		if (w->abandoned)
			break;
	}
	pthread_mutex_unlock(&w->mu);
	worker_put(w);
	return NULL;
}

/* A running, idle worker holding two references (ours and its thread's), or NULL
 * with the reason logged. */
static struct fs_worker *worker_new(void)
{
	struct fs_worker *w = hb_calloc(1, sizeof(*w));
	pthread_condattr_t ca;
	pthread_attr_t attr;
	sigset_t all, old;
	pthread_t tid;
	int rc;

	if (!w)
		return NULL;
	w->refs = 2;
	pthread_mutex_init(&w->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w->cv, &ca);
	pthread_condattr_destroy(&ca);

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, WORKER_STACK);
	/* Signals are for the main thread, never for a thread stuck in the kernel. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&tid, &attr, worker_main, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		log_warn(LOG_SEL, "cannot start a statvfs worker: %s", strerror(rc));
		pthread_cond_destroy(&w->cv);
		pthread_mutex_destroy(&w->mu);
		hb_free(w);
		return NULL;
	}
	return w;
}

/* Tell an idle worker's thread to exit, and drop our reference. */
static void worker_abandon(struct fs_worker *w)
{
	pthread_mutex_lock(&w->mu);
	w->abandoned = true;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
	worker_put(w);
}

/* Run fn(path) on the idle worker w and wait until `deadline` (CLOCK_MONOTONIC ns).
 * The call's result, or -ETIMEDOUT: w is then abandoned, still running the call,
 * and our reference is the caller's to keep or drop. */
static int worker_call(struct fs_worker *w, sys_fs_statvfs_fn fn, const char *path,
		       uint64_t deadline, struct statvfs *out)
{
	struct timespec until = {(time_t)(deadline / NS_PER_SEC), (long)(deadline % NS_PER_SEC)};
	int rc;

	pthread_mutex_lock(&w->mu);
	w->fn = fn;
	memcpy(w->path, path, strlen(path) + 1); /* the caller checked its length */
	w->pending = true;
	pthread_cond_broadcast(&w->cv);
	while (w->pending)
		if (pthread_cond_timedwait(&w->cv, &w->mu, &until) == ETIMEDOUT)
			break;
	if (w->pending) {
		w->abandoned = true;
		rc = -ETIMEDOUT;
	} else {
		*out = w->out;
		rc = w->rc;
	}
	pthread_mutex_unlock(&w->mu);
	return rc;
}

static bool worker_busy(struct fs_worker *w)
{
	bool busy;

	pthread_mutex_lock(&w->mu);
	busy = w->pending;
	pthread_mutex_unlock(&w->mu);
	return busy;
}

static int real_statvfs(const char *path, struct statvfs *out)
{
	return statvfs(path, out) == 0 ? 0 : -errno;
}

/* ---- the metricset ----------------------------------------------------------- */

enum { REACH_UNKNOWN, REACH_YES, REACH_NO };

struct fs_entry {
	struct sys_fs_mount m;
	size_t seq;    /* line order */
	bool shadowed; /* another mount sits on top of it at the same path */
	uint8_t reach; /* can a path lookup get to its mount point (REACH_*) */
};

struct fs_state {
	sys_fs_statvfs_fn statvfs_fn;
	size_t max_mounts;

	struct fs_entry *e; /* this sample's mounts, in line order */
	struct fs_entry **by_path, **by_id;
	size_t n, cap;

	struct fs_worker *worker;                  /* idle, or NULL until needed */
	struct fs_worker *stuck[SYS_FS_MAX_STUCK]; /* abandoned, call still running */
	size_t nstuck;
	char path[PATH_CAP];
	bool read_error_logged;

	struct metric *timeouts, *stuck_skipped, *errors, *vanished, *capped, *truncated,
	    *parse_errors;
};

void sys_fs_set_statvfs(void *state, sys_fs_statvfs_fn fn)
{
	struct fs_state *st = state;

	st->statvfs_fn = fn ? fn : real_statvfs;
}

void sys_fs_set_max_mounts(void *state, size_t max_mounts)
{
	struct fs_state *st = state;

	st->max_mounts = max_mounts;
}

static void *fs_create(const struct sys_ctx *ctx)
{
	struct fs_state *st = hb_calloc(1, sizeof(*st));

	(void)ctx;
	if (!st) {
		log_error(LOG_SEL, "out of memory");
		return NULL;
	}
	st->statvfs_fn = real_statvfs;
	st->max_mounts = SYS_FS_MAX_MOUNTS;
	st->timeouts = metrics_counter("sys.filesystem.timeouts");
	st->stuck_skipped = metrics_counter("sys.filesystem.stuck_skipped");
	st->errors = metrics_counter("sys.filesystem.errors");
	st->vanished = metrics_counter("sys.filesystem.vanished");
	st->capped = metrics_counter("sys.filesystem.mounts_capped");
	st->truncated = metrics_counter("sys.filesystem.mountinfo_truncated");
	st->parse_errors = metrics_counter("sys.filesystem.parse_errors");
	return st;
}

static void fs_destroy(void *state)
{
	struct fs_state *st = state;

	if (!st)
		return;
	/* No join: a stuck worker may never return. Each exits on its own. */
	if (st->worker)
		worker_abandon(st->worker);
	for (size_t i = 0; i < st->nstuck; i++)
		worker_put(st->stuck[i]);
	hb_free(st->e);
	hb_free(st->by_path);
	hb_free(st->by_id);
	hb_free(st);
}

static bool hostfs_is_root(const char *hostfs)
{
	if (!hostfs || !*hostfs)
		return true;
	while (*hostfs == '/')
		hostfs++;
	return *hostfs == '\0';
}

/* The mount table into ctx->buf (see the top of the file for which one). Bytes
 * read, or a negative errno; -EFBIG is handled by the caller. */
static ssize_t read_mountinfo(struct sys_ctx *ctx)
{
	ssize_t n;

	if (!hostfs_is_root(ctx->hostfs)) {
		n = sys_read_at(ctx->root_fd, "proc/1/mountinfo", ctx->buf, ctx->buf_size);
		if (n != -ENOENT)
			return n;
	}
	return sys_read_at(ctx->root_fd, "proc/self/mountinfo", ctx->buf, ctx->buf_size);
}

static bool grow(struct fs_state *st)
{
	size_t cap = st->cap ? st->cap * 2 : MOUNTS_INITIAL;
	struct fs_entry *e;
	struct fs_entry **p, **q;

	if (cap > st->max_mounts)
		cap = st->max_mounts;
	e = hb_realloc(st->e, cap * sizeof(*e));
	if (!e)
		return false;
	st->e = e;
	p = hb_realloc(st->by_path, cap * sizeof(*p));
	if (!p)
		return false;
	st->by_path = p;
	q = hb_realloc(st->by_id, cap * sizeof(*q));
	if (!q)
		return false;
	st->by_id = q;
	st->cap = cap;
	return true;
}

/* Parse the table into st->e, at most max_mounts entries (st->e may move). */
static void collect(struct fs_state *st, char *buf, size_t len)
{
	struct sys_text all = sys_text_of(buf, len), line;

	st->n = 0;
	while (sys_text_line(&all, &line)) {
		struct fs_entry *e;

		if (sys_text_len(&line) == 0)
			continue;
		if (st->n >= st->max_mounts) {
			metric_inc(st->capped);
			log_debug(LOG_SEL, "more than %zu mounts: the rest are not reported",
				  st->max_mounts);
			return;
		}
		if (st->n == st->cap && (st->cap >= st->max_mounts || !grow(st))) {
			metric_inc(st->capped); /* out of memory: as if capped */
			return;
		}
		e = &st->e[st->n];
		if (sys_fs_parse_mountinfo_line(buf + (line.p - buf), sys_text_len(&line), &e->m) <
		    0) {
			metric_inc(st->parse_errors);
			continue;
		}
		e->seq = st->n;
		e->shadowed = false;
		e->reach = REACH_UNKNOWN;
		st->n++;
	}
}

static int text_cmp(const struct sys_text *a, const struct sys_text *b)
{
	size_t la = sys_text_len(a), lb = sys_text_len(b);
	int c = memcmp(a->p, b->p, la < lb ? la : lb);

	return c ? c : (la > lb) - (la < lb);
}

static int cmp_path(const void *pa, const void *pb)
{
	const struct fs_entry *a = *(const struct fs_entry *const *)pa;
	const struct fs_entry *b = *(const struct fs_entry *const *)pb;
	int c = text_cmp(&a->m.mount_point, &b->m.mount_point);

	return c ? c : (a->seq > b->seq) - (a->seq < b->seq);
}

static int cmp_id(const void *pa, const void *pb)
{
	const struct fs_entry *a = *(const struct fs_entry *const *)pa;
	const struct fs_entry *b = *(const struct fs_entry *const *)pb;

	if (a->m.id != b->m.id)
		return a->m.id > b->m.id ? 1 : -1;
	return (a->seq > b->seq) - (a->seq < b->seq);
}

/* Within each run of mounts at one path, only the top one is visible: a mount is
 * shadowed when another at its path was mounted on it (parent = it), or is an
 * unrelated later line. A kernel "tucked" mount (propagation mounting beneath an
 * existing one, which is then re-parented onto it) is listed later yet sits below:
 * the parent relation decides before the line order. */
static void mark_shadowed(struct fs_state *st)
{
	size_t i = 0;

	qsort(st->by_path, st->n, sizeof(*st->by_path), cmp_path);
	while (i < st->n) {
		size_t j = i + 1;

		while (j < st->n && text_cmp(&st->by_path[i]->m.mount_point,
					     &st->by_path[j]->m.mount_point) == 0)
			j++;
		for (size_t a = i; j - i > 1 && a < j; a++) {
			struct fs_entry *e = st->by_path[a];

			for (size_t b = i; b < j && !e->shadowed; b++) {
				const struct fs_entry *o = st->by_path[b];

				if (o == e)
					continue;
				if (o->m.parent == e->m.id ||
				    (o->seq > e->seq && e->m.parent != o->m.id))
					e->shadowed = true;
			}
		}
		i = j;
	}
}

static struct fs_entry *find_id(struct fs_state *st, uint64_t id)
{
	size_t lo = 0, hi = st->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (st->by_id[mid]->m.id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < st->n && st->by_id[lo]->m.id == id ? st->by_id[lo] : NULL;
}

/* Can a path lookup reach e's mount point? Its parent must be reachable and, when
 * the parent is at another path, not shadowed (else the lookup walks the mount on
 * top of the parent instead). A parent outside the table (the namespace root's,
 * or one past the cap) counts as reachable. */
static bool reachable(struct fs_state *st, struct fs_entry *e, unsigned depth)
{
	struct fs_entry *p;
	bool ok;

	if (e->reach != REACH_UNKNOWN)
		return e->reach == REACH_YES;
	p = find_id(st, e->m.parent);
	if (!p || p == e || depth >= MAX_DEPTH)
		ok = true;
	else if (text_cmp(&p->m.mount_point, &e->m.mount_point) == 0)
		ok = reachable(st, p, depth + 1);
	else
		ok = !p->shadowed && reachable(st, p, depth + 1);
	e->reach = ok ? REACH_YES : REACH_NO;
	return ok;
}

static bool ignored_type(const struct sys_ctx *ctx, const struct sys_text *type)
{
	const struct cfg_strlist *l = &ctx->cfg->fs_ignore_types;

	for (size_t i = 0; i < l->n; i++)
		if (sys_text_eq(type, l->v[i]))
			return true;
	return false;
}

/* st->path = hostfs + mount point ("/" hostfs: the mount point itself). */
static int join_path(struct fs_state *st, const struct sys_ctx *ctx, const struct sys_text *mp)
{
	size_t hl = 0, ml = sys_text_len(mp);

	if (!hostfs_is_root(ctx->hostfs)) {
		hl = strlen(ctx->hostfs);
		while (hl > 1 && ctx->hostfs[hl - 1] == '/')
			hl--;
	}
	if (hl + ml >= sizeof(st->path))
		return -ENAMETOOLONG;
	memcpy(st->path, ctx->hostfs, hl);
	memcpy(st->path + hl, mp->p, ml);
	st->path[hl + ml] = '\0';
	return 0;
}

/* Workers whose call has returned since they were left behind: that path may be
 * asked again. */
static void reap_stuck(struct fs_state *st)
{
	size_t i = 0;

	while (i < st->nstuck) {
		struct fs_worker *w = st->stuck[i];

		if (worker_busy(w)) {
			i++;
			continue;
		}
		log_info(LOG_SEL, "statvfs %s returned at last: sampling it again", w->path);
		worker_put(w); /* its thread has seen `abandoned` and exits */
		st->stuck[i] = st->stuck[--st->nstuck];
	}
}

static bool is_stuck(const struct fs_state *st, const char *path)
{
	for (size_t i = 0; i < st->nstuck; i++)
		if (strcmp(st->stuck[i]->path, path) == 0) /* never written once stuck */
			return true;
	return false;
}

/* statvfs(st->path) bounded by topbeat.filesystem.timeout. 0, a negative errno
 * from statvfs, -ETIMEDOUT or -EBUSY (still stuck from before: not asked). */
static int bounded_statvfs(struct fs_state *st, const struct sys_ctx *ctx, struct statvfs *out)
{
	uint64_t timeout = ctx->cfg->fs_timeout ? ctx->cfg->fs_timeout : NS_PER_MS;
	int rc;

	if (st->nstuck == SYS_FS_MAX_STUCK || is_stuck(st, st->path)) {
		metric_inc(st->stuck_skipped);
		return -EBUSY;
	}
	if (!st->worker && !(st->worker = worker_new()))
		return -EAGAIN;
	rc = worker_call(st->worker, st->statvfs_fn, st->path, clock_mono_ns() + timeout, out);
	if (rc != -ETIMEDOUT)
		return rc;
	metric_inc(st->timeouts);
	log_warn(LOG_SEL,
		 "statvfs %s did not return within %llu ms: skipping it until it does (a hung "
		 "network mount?)",
		 st->path, (unsigned long long)(timeout / NS_PER_MS));
	st->stuck[st->nstuck++] = st->worker; /* our reference moves there */
	st->worker = NULL;
	return rc;
}

static uint64_t mul_sat(uint64_t a, uint64_t b)
{
	uint64_t r;

	return __builtin_mul_overflow(a, b, &r) ? UINT64_MAX : r;
}

static void publish(struct sys_ctx *ctx, const struct sys_fs_mount *m, const struct statvfs *sv)
{
	uint64_t frsize = sv->f_frsize;
	uint64_t total = mul_sat(sv->f_blocks, frsize), bfree = mul_sat(sv->f_bfree, frsize);
	uint64_t avail = mul_sat(sv->f_bavail, frsize);
	uint64_t used = total > bfree ? total - bfree : 0;
	/* used.pct as Metricbeat (elastic-agent-system-metrics) and df's Use%: the
	 * blocks reserved for root count as neither used nor available. Topbeat's
	 * fs.used_p was used/total; the legacy name keeps that. */
	uint64_t denom = used + avail >= used ? used + avail : UINT64_MAX;
	double pct = denom ? sys_round4((double)used / (double)denom) : 0;
	double legacy_pct = total ? sys_round4((double)used / (double)total) : 0;
	struct event *ev = sys_event_new(ctx, "system.filesystem");

	if (!ev)
		return;
	ev_set_strz(ev, "type", "filesystem");
	ev_set_str(ev, "system.filesystem.device_name", m->source.p, sys_text_len(&m->source));
	ev_set_str(ev, "system.filesystem.mount_point", m->mount_point.p,
		   sys_text_len(&m->mount_point));
	ev_set_str(ev, "system.filesystem.type", m->fstype.p, sys_text_len(&m->fstype));
	ev_set_uint(ev, "system.filesystem.total", total);
	ev_set_uint(ev, "system.filesystem.free", bfree);
	ev_set_uint(ev, "system.filesystem.available", avail);
	ev_set_uint(ev, "system.filesystem.files", sv->f_files);
	ev_set_uint(ev, "system.filesystem.free_files", sv->f_ffree);
	ev_set_uint(ev, "system.filesystem.used.bytes", used);
	ev_set_double(ev, "system.filesystem.used.pct", pct);
	if (ctx->legacy) {
		ev_set_str(ev, "fs.device_name", m->source.p, sys_text_len(&m->source));
		ev_set_str(ev, "fs.mount_point", m->mount_point.p, sys_text_len(&m->mount_point));
		ev_set_uint(ev, "fs.total", total);
		ev_set_uint(ev, "fs.used", used);
		ev_set_uint(ev, "fs.free", bfree);
		ev_set_uint(ev, "fs.avail", avail);
		ev_set_uint(ev, "fs.files", sv->f_files);
		ev_set_uint(ev, "fs.free_files", sv->f_ffree);
		ev_set_double(ev, "fs.used_p", legacy_pct);
	}
	sys_publish(ctx, ev);
}

static void sample_one(struct fs_state *st, struct sys_ctx *ctx, struct fs_entry *e)
{
	const struct sys_fs_mount *m = &e->m;
	struct statvfs sv;
	int rc;

	if (e->shadowed || !reachable(st, e, 0))
		return;
	if (sys_text_len(&m->mount_point) == 0 || *m->mount_point.p != '/')
		return; /* relative: a mount from another namespace's point of view */
	if (ignored_type(ctx, &m->fstype))
		return;
	if (join_path(st, ctx, &m->mount_point) < 0) {
		metric_inc(st->errors);
		return;
	}
	rc = bounded_statvfs(st, ctx, &sv);
	if (rc == -ENOENT || rc == -ESTALE) {
		metric_inc(st->vanished); /* unmounted since the table was read */
		return;
	}
	if (rc == -ETIMEDOUT || rc == -EBUSY)
		return; /* counted */
	if (rc < 0) {
		metric_inc(st->errors);
		log_debug(LOG_SEL, "statvfs %s: %s", st->path, strerror(-rc));
		return;
	}
	publish(ctx, m, &sv);
}

static void fs_sample(void *state, struct sys_ctx *ctx)
{
	struct fs_state *st = state;
	ssize_t n;

	reap_stuck(st);
	n = read_mountinfo(ctx);
	if (n == -EFBIG) {
		/* The first buf_size-1 bytes: keep the complete lines. */
		const char *nl = memrchr(ctx->buf, '\n', ctx->buf_size - 1);

		metric_inc(st->truncated);
		n = nl ? nl - ctx->buf : 0;
	}
	if (n < 0) {
		metric_inc(st->errors);
		if (!st->read_error_logged)
			log_warn(LOG_SEL, "cannot read the mount table under %s: %s", ctx->hostfs,
				 strerror((int)-n));
		st->read_error_logged = true;
		return;
	}
	st->read_error_logged = false;
	collect(st, ctx->buf, (size_t)n);
	for (size_t i = 0; i < st->n; i++) /* st->e has stopped moving */
		st->by_path[i] = st->by_id[i] = &st->e[i];
	mark_shadowed(st);
	qsort(st->by_id, st->n, sizeof(*st->by_id), cmp_id);
	for (size_t i = 0; i < st->n; i++)
		sample_one(st, ctx, &st->e[i]);
}

const struct sys_metricset sys_filesystem_metricset = {
    .name = "filesystem",
    .create = fs_create,
    .sample = fs_sample,
    .destroy = fs_destroy,
};
