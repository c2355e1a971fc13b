/* process.c — the process metricset (dataset system.process, Topbeat's type
 * "process"): one event per process whose name matches topbeat.procs.
 *
 * Source: proc(5) <https://man7.org/linux/man-pages/man5/proc.5.html>, read under the
 * hostfs root (numbers are proc(5)'s 1-based field positions):
 *
 *   proc/<pid>/stat     1 pid  2 (comm)  3 state  4 ppid  5 pgrp ... 14 utime  15 stime
 *                       ... 20 num_threads  21 itrealvalue  22 starttime  23 vsize  24 rss
 *                       comm runs to the LAST ')': "12 (a) b (c) S 1 ..." names "a) b (c"
 *   proc/<pid>/statm    size resident shared text lib data dt          (pages)
 *   proc/<pid>/status   "Uid:\t<real>\t<effective>\t<saved>\t<fs>"
 *   proc/<pid>/cmdline  argv, NUL-separated; empty for kernel threads and zombies
 *   proc/<pid>/cgroup   "0::/system.slice/docker-<id>.scope" / "4:memory:/docker/<id>"
 *   proc/<pid>/limits   "Max open files            1024      1048576     files"
 *   proc/<pid>/fd/      one entry per open descriptor; on procfs since Linux 6.2 the
 *                       directory's st_size is that count
 *   proc/<pid>/exe, cwd symlinks (readlink needs ptrace access: EACCES otherwise)
 *
 * Cost: once a process is known, a sample reads only its stat, its statm (not for a
 * kernel thread: it has no mm) and its fd count — on procfs through descriptors the
 * entry keeps open (pread of stat and statm, fstat of an O_PATH fd/: no path walk, no
 * open and close). They are kept within half of RLIMIT_NOFILE; when that cannot
 * cover all three for every process, stat's first, then statm's, then fd/'s
 * (plan_kept()). The rest, and everything on fixture trees, is read by path. A warm
 * sample then costs mostly the kernel's work for those files (~10 µs a process) and
 * the encoder's for the event; publish() adds the fields in the encoder's key order
 * so that it need not sort them. The rest is fixed for the life of a process — or
 * nearly: a setuid() or a new rlimit after the first sight is not seen — and read
 * once per (pid, starttime) into the process table; starttime tells a reused pid from
 * its previous owner.
 *
 * The table is an array sorted by pid, at most topbeat.process.max entries. Each
 * sample lists proc/ (in pid order on procfs, sorted otherwise) and walks the pids
 * and the table in step into a second array, so processes that exited fall out
 * without a hash or a sweep. Processes beyond the cap are reported without rates
 * ("sys.process.table_full"). The cached strings (args, exe, cwd) of all entries
 * together are bounded by PROC_CACHE_BYTES (16 MiB); beyond that a process's strings
 * are read every sample instead ("sys.process.cache_full").
 *
 * A process that exits while it is read (ENOENT/ESRCH on any of its files) is not
 * reported at all ("sys.process.vanished"); EACCES on one file only omits the fields
 * it gives ("sys.process.unreadable", which also counts missing exe/cwd links:
 * kernel threads and zombies have none).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <regex.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "hostbeat/clock.h"
#include "hostbeat/log.h"
#include "hostbeat/mem.h"
#include "hostbeat/metrics.h"
#include "hostbeat/sys.h"
#include "sys/process.h"

#define PROC_ARGS_MAX 64             /* process.args elements per event */
#define PROC_CACHE_BYTES (16u << 20) /* cached args/exe/cwd bytes of the whole table */
#define PROC_PIDS_MAX 4194304u       /* PID_MAX_LIMIT: pids listed per sample */
#define PROC_USERS_MAX 65536u        /* etc/passwd entries kept */
#define PROC_PATH_LEN 32             /* "<pid>/cmdline" */
#define PROC_SMALL_READ 4096         /* stat, statm: one read() */
#define PROC_SUPER_MAGIC_ 0x9fa0     /* statfs f_type of procfs (linux/magic.h) */

enum {
	PE_UID = 1 << 0,     /* uid is known */
	PE_CID = 1 << 1,     /* cid holds a container id */
	PE_FD_SOFT = 1 << 2, /* fd_soft is a number (not "unlimited") */
	PE_FD_HARD = 1 << 3,
	PE_STRS = 1 << 4,  /* strs is cached (counted in cache_bytes), else read per sample */
	PE_TICKS = 1 << 5, /* ticks and mono_ns hold a previous sample */
};

/* The descriptors an entry keeps open across samples, on procfs only. */
enum kept_kind {
	KEPT_STAT,  /* <pid>/stat: pread each sample */
	KEPT_STATM, /* <pid>/statm: pread each sample */
	KEPT_FDS,   /* O_PATH of <pid>/fd: fstat each sample */
	KEPT_KINDS,
};

/* One tracked process: (pid, starttime) is its identity. */
struct proc_entry {
	int32_t pid;
	uint32_t flags; /* PE_* */
	uint64_t starttime;
	uint64_t ticks;   /* utime + stime at the previous sample */
	uint64_t mono_ns; /* when they were read */
	uint32_t uid;
	int fd[KEPT_KINDS]; /* kept open on procfs, else -1 (see enum kept_kind) */
	uint64_t fd_soft, fd_hard;
	char *strs; /* args (NUL-separated) | exe | cwd, not terminated; NULL when all empty */
	uint32_t args_len, exe_len, cwd_len;
	char cid[65];
};

/* What is read from a process every sample. */
struct proc_now {
	struct sys_proc_stat st;
	bool have_statm;
	uint64_t size, resident, share; /* pages */
	bool have_fds;
	uint64_t fds;
};

struct user_ent {
	uint32_t uid;
	uint32_t line; /* the first entry of a uid wins, as getpwuid() does */
	uint32_t off;  /* name at names + off */
};

/* etc/passwd of the hostfs, reloaded when the file changes. */
struct users {
	struct user_ent *v; /* sorted by uid */
	size_t n;
	char *names;
	bool have_stat;
	struct stat sb; /* identity of the loaded file */
};

struct proc_state {
	int proc_fd;  /* proc/ under the hostfs root: pid paths are relative to it */
	bool fd_size; /* st_size of <pid>/fd is the fd count (procfs, Linux ≥ 6.2) */
	/* descriptors entries keep open: all may not exceed fds_budget, each kind not
	 * its share of it for this sample (plan_kept()) */
	size_t fds_budget, kept_all;
	size_t kept[KEPT_KINDS], kept_cap[KEPT_KINDS];
	bool sampled; /* a sample was taken: n estimates the next one */
	bool match_all;
	regex_t *re;
	size_t nre;
	uint64_t max; /* table entries */

	struct proc_entry *ent, *next; /* the table, sorted by pid; the next one */
	size_t n, cap, next_cap;
	size_t cache_bytes; /* strs bytes of PE_STRS entries */
	int32_t *pids;
	size_t pids_cap;
	struct users users;

	struct metric *vanished, *table_full, *unreadable, *cache_full, *malformed, *list_full,
	    *truncated;
};

/* ---- pure parts ------------------------------------------------------------ */

const char *sys_process_state_name(char state)
{
	switch (state) {
	case 'R':
		return "running";
	case 'S':
		return "sleeping";
	case 'D':
		return "disk_sleep";
	case 'T':
		return "stopped";
	case 't':
		return "tracing_stop";
	case 'Z':
		return "zombie";
	case 'X':
		return "dead";
	case 'I':
		return "idle";
	case 'P':
		return "parked";
	case 'W':
		return "waking";
	case 'K':
		return "wakekill";
	default:
		return "unknown";
	}
}

int sys_process_parse_stat(const char *buf, size_t len, struct sys_proc_stat *out)
{
	const char *open = memchr(buf, '(', len), *close = memrchr(buf, ')', len);
	struct sys_text t, f;
	unsigned pos;
	size_t n;

	if (!open || !close || close < open || open == buf || open[-1] != ' ')
		return -EINVAL;
	t = sys_text_of(buf, (size_t)(open - 1 - buf));
	if (sys_text_u64(&t, &out->pid) < 0)
		return -EINVAL;
	n = (size_t)(close - open - 1);
	out->comm_len = n < SYS_PROC_COMM_MAX ? n : SYS_PROC_COMM_MAX;
	memcpy(out->comm, open + 1, out->comm_len);
	out->comm[out->comm_len] = '\0';

	t = sys_text_of(close + 1, (size_t)(buf + len - close - 1));
	if (t.end > t.p && t.end[-1] == '\n')
		t.end--;
	for (pos = 3; pos <= 24 && sys_text_field(&t, &f); pos++) {
		uint64_t *dst = NULL;

		switch (pos) {
		case 3:
			if (sys_text_len(&f) != 1)
				return -EINVAL;
			out->state = *f.p;
			continue;
		case 4:
			dst = &out->ppid;
			break;
		case 5:
			dst = &out->pgrp;
			break;
		case 9:
			dst = &out->flags;
			break;
		case 14:
			dst = &out->utime;
			break;
		case 15:
			dst = &out->stime;
			break;
		case 20:
			dst = &out->num_threads;
			break;
		case 22:
			dst = &out->starttime;
			break;
		case 23:
			dst = &out->vsize;
			break;
		case 24:
			dst = &out->rss;
			break;
		default:
			continue;
		}
		if (sys_text_u64(&f, dst) < 0)
			return -EINVAL;
	}
	return pos > 24 ? 0 : -EINVAL;
}

/* ---- reading ---------------------------------------------------------------- */

/* "<pid>/<leaf>" into out (PROC_PATH_LEN bytes). */
static const char *pid_path(char *out, int32_t pid, const char *leaf)
{
	char digits[12];
	uint32_t v = (uint32_t)pid;
	size_t n = 0, len = 0, leaf_len = strlen(leaf);

	do {
		digits[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		out[len++] = digits[--n];
	out[len++] = '/';
	memcpy(out + len, leaf, leaf_len + 1);
	return out;
}

/* stat and statm are small and produced whole by the kernel's first read (seq_file
 * single_open); a regular file (fixtures) only reads short at its end. So one read()
 * instead of sys_read_at()'s read-until-0: a syscall less per file and process. */
static ssize_t read_small(int dir_fd, const char *path, char *buf, size_t size)
{
	int fd = openat(dir_fd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	ssize_t n;

	if (fd < 0)
		return -errno;
	do
		n = read(fd, buf, size - 1);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		n = -errno;
	close(fd);
	if (n >= 0)
		buf[n] = '\0';
	return n == (ssize_t)size - 1 ? -EFBIG : n;
}

static bool is_gone(long rc)
{
	return rc == -ENOENT || rc == -ESRCH;
}

static void close_kept(struct proc_state *s, struct proc_entry *e, enum kept_kind k)
{
	if (e->fd[k] < 0)
		return;
	close(e->fd[k]);
	e->fd[k] = -1;
	s->kept[k]--;
	s->kept_all--;
}

/* May one more descriptor of kind k be kept open? */
static bool may_keep(const struct proc_state *s, enum kept_kind k)
{
	return s->kept[k] < s->kept_cap[k] && s->kept_all < s->fds_budget;
}

/* A descriptor of kind k just opened by path is kept in e. */
static void keep_fd(struct proc_state *s, struct proc_entry *e, enum kept_kind k, int fd)
{
	e->fd[k] = fd;
	s->kept[k]++;
	s->kept_all++;
}

/* After a read through a kept descriptor: give it back when its kind is over this
 * sample's share (the share shrank as the processes grew in number). */
static void shed_kept(struct proc_state *s, struct proc_entry *e, enum kept_kind k)
{
	if (s->kept[k] > s->kept_cap[k])
		close_kept(s, e, k);
}

/* This sample's shares of the descriptor budget: when it cannot hold all three kinds
 * for every process, stat first (a kept one saves an open and a close: ~4 µs of the
 * ~9 of a read by path), then statm (as much), then fd/ (a path walk: ~2 µs).
 * `procs` estimates the processes that will be tracked. */
static void plan_kept(struct proc_state *s, size_t procs)
{
	size_t left = s->fds_budget;

	if (left / KEPT_KINDS >= procs) {
		for (int k = 0; k < KEPT_KINDS; k++)
			s->kept_cap[k] = left; /* room for all: only the total is checked */
		return;
	}
	for (int k = 0; k < KEPT_KINDS; k++) {
		s->kept_cap[k] = k == KEPT_KINDS - 1 || left < procs ? left : procs;
		left -= s->kept_cap[k];
	}
}

/* <pid>/<leaf> (stat or statm: kind k) through e's kept descriptor when it is open;
 * else opened by path, and kept open when `keep` and the budget allow. A kept
 * descriptor of a task that exited reads ESRCH, also when its pid was reused since:
 * it is closed and the path tried once, which finds the new process or ENOENT. */
static ssize_t read_kept(struct proc_state *s, struct proc_entry *e, enum kept_kind k,
			 const char *leaf, bool keep, char *buf)
{
	char path[PROC_PATH_LEN];
	ssize_t n;
	int fd;

	if (e->fd[k] >= 0) {
		do
			n = pread(e->fd[k], buf, PROC_SMALL_READ - 1, 0);
		while (n < 0 && errno == EINTR);
		if (n > 0 && n < PROC_SMALL_READ - 1) {
			buf[n] = '\0';
			shed_kept(s, e, k);
			return n;
		}
		close_kept(s, e, k);
	}
	pid_path(path, e->pid, leaf);
	if (!keep || !may_keep(s, k))
		return read_small(s->proc_fd, path, buf, PROC_SMALL_READ);
	fd = openat(s->proc_fd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	do
		n = read(fd, buf, PROC_SMALL_READ - 1);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		n = -errno;
	if (n <= 0 || n == PROC_SMALL_READ - 1) {
		close(fd);
		return n == PROC_SMALL_READ - 1 ? -EFBIG : n;
	}
	buf[n] = '\0';
	keep_fd(s, e, k, fd);
	return n;
}

/* A kernel thread has no mm: the kernel's statm of it is "0 0 0 0 0 0 0" (get_task_mm()
 * is NULL for PF_KTHREAD), so it is not read — a syscall less for each of the
 * hundreds of kworkers of a large host. */
static int read_statm(struct proc_state *s, struct sys_ctx *ctx, struct proc_entry *e, bool keep,
		      struct proc_now *now)
{
	struct sys_text t, f;
	ssize_t n;

	if (now->st.flags & SYS_PF_KTHREAD) {
		close_kept(s, e, KEPT_STATM);
		now->size = now->resident = now->share = 0;
		now->have_statm = true;
		return 0;
	}
	n = read_kept(s, e, KEPT_STATM, "statm", keep, ctx->buf);
	now->have_statm = false;
	if (n < 0)
		return is_gone(n) ? (int)n : 0;
	t = sys_text_of(ctx->buf, (size_t)n);
	if (sys_text_field(&t, &f) && sys_text_u64(&f, &now->size) == 0 && sys_text_field(&t, &f) &&
	    sys_text_u64(&f, &now->resident) == 0 && sys_text_field(&t, &f) &&
	    sys_text_u64(&f, &now->share) == 0)
		now->have_statm = true;
	else
		metric_inc(s->malformed);
	return 0;
}

/* Entries of <pid>/fd: st_size on procfs ≥ 6.2, else counted with getdents64. */
static int read_fds(struct proc_state *s, struct sys_ctx *ctx, struct proc_entry *e, bool keep,
		    struct proc_now *now)
{
	char path[PROC_PATH_LEN];
	uint64_t count = 0;
	int fd, rc = 0;

	now->have_fds = false;
	if (s->fd_size) {
		/* fstat of a kept O_PATH descriptor skips the path walk (half the cost);
		 * the task gone, it fails with ENOENT and the path is tried once */
		struct stat sb;

		if (e->fd[KEPT_FDS] >= 0) {
			if (fstat(e->fd[KEPT_FDS], &sb) == 0) {
				shed_kept(s, e, KEPT_FDS);
				goto counted;
			}
			close_kept(s, e, KEPT_FDS);
		}
		pid_path(path, e->pid, "fd");
		if (keep && may_keep(s, KEPT_FDS)) {
			fd = openat(s->proc_fd, path, O_PATH | O_DIRECTORY | O_CLOEXEC);
			if (fd < 0)
				return -errno;
			keep_fd(s, e, KEPT_FDS, fd);
			if (fstat(fd, &sb) < 0) {
				rc = -errno;
				close_kept(s, e, KEPT_FDS);
				return rc;
			}
		} else if (fstatat(s->proc_fd, path, &sb, 0) < 0) {
			return -errno;
		}
	counted:
		now->fds = (uint64_t)sb.st_size;
		now->have_fds = true;
		return 0;
	}
	fd = openat(s->proc_fd, pid_path(path, e->pid, "fd"), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (;;) {
		ssize_t got = getdents64(fd, ctx->buf, ctx->buf_size);
		size_t off = 0;

		if (got < 0) {
			rc = -errno;
			break;
		}
		if (got == 0)
			break;
		while (off < (size_t)got) {
			unsigned short reclen;
			char first;

			memcpy(&reclen, ctx->buf + off + offsetof(struct dirent64, d_reclen),
			       sizeof(reclen));
			first = ctx->buf[off + offsetof(struct dirent64, d_name)];
			count += first != '.';
			if (reclen == 0)
				break;
			off += reclen;
		}
	}
	close(fd);
	if (rc == 0) {
		now->fds = count;
		now->have_fds = true;
	}
	return rc;
}

/* "Max open files            1024                 1048576              files" */
static void parse_limits(const char *buf, size_t len, struct proc_entry *e)
{
	static const char key[] = "Max open files";
	struct sys_text all = sys_text_of(buf, len), line, f;

	while (sys_text_line(&all, &line)) {
		if (sys_text_len(&line) < sizeof(key) - 1 || memcmp(line.p, key, sizeof(key) - 1))
			continue;
		line.p += sizeof(key) - 1;
		if (sys_text_field(&line, &f) && sys_text_u64(&f, &e->fd_soft) == 0)
			e->flags |= PE_FD_SOFT;
		if (sys_text_field(&line, &f) && sys_text_u64(&f, &e->fd_hard) == 0)
			e->flags |= PE_FD_HARD;
		return;
	}
}

/* A symlink's target into out; its length, 0 when missing or unreadable (the field
 * is then omitted: kernel threads and zombies have no exe, other users' processes
 * need ptrace access). Never fails the process. */
static size_t read_link(struct proc_state *s, int32_t pid, const char *leaf, char *out, size_t size)
{
	char path[PROC_PATH_LEN];
	ssize_t n = readlinkat(s->proc_fd, pid_path(path, pid, leaf), out, size);

	if (n <= 0) {
		metric_inc(s->unreadable);
		return 0;
	}
	return (size_t)n; /* a target longer than size is cut: paths are < PATH_MAX */
}

static void entry_strs_free(struct proc_state *s, struct proc_entry *e)
{
	if (e->flags & PE_STRS)
		s->cache_bytes -= (size_t)e->args_len + e->exe_len + e->cwd_len;
	hb_free(e->strs);
	e->strs = NULL;
	e->args_len = e->exe_len = e->cwd_len = 0;
	e->flags &= ~(uint32_t)PE_STRS;
}

/* Everything an entry holds: its strings and its kept descriptors. */
static void entry_release(struct proc_state *s, struct proc_entry *e)
{
	entry_strs_free(s, e);
	for (int k = 0; k < KEPT_KINDS; k++)
		close_kept(s, e, k);
}

/* cmdline, exe and cwd into e->strs; cached (PE_STRS) when `keep` and the budget
 * allows. 0, or -ENOENT when the process is gone. */
static int load_strs(struct proc_state *s, struct sys_ctx *ctx, int32_t pid, struct proc_entry *e,
		     bool keep)
{
	char path[PROC_PATH_LEN], exe[PATH_MAX], cwd[PATH_MAX];
	size_t cap = ctx->cfg->cmdline_max + 1, args, exe_len, cwd_len, total;
	ssize_t n;

	if (cap > ctx->buf_size)
		cap = ctx->buf_size;
	n = sys_read_at(s->proc_fd, pid_path(path, pid, "cmdline"), ctx->buf, cap);
	if (n == -EFBIG) {
		n = (ssize_t)cap - 1;
		metric_inc(s->truncated);
	}
	if (is_gone(n))
		return (int)n;
	if (n < 0) {
		metric_inc(s->unreadable);
		n = 0;
	}
	args = (size_t)n;
	while (args > 0 && ctx->buf[args - 1] == '\0') /* as Metricbeat: trailing NULs go */
		args--;
	exe_len = read_link(s, pid, "exe", exe, sizeof(exe));
	cwd_len = read_link(s, pid, "cwd", cwd, sizeof(cwd));
	total = args + exe_len + cwd_len;
	if (total) {
		e->strs = hb_malloc(total);
		if (!e->strs)
			return 0; /* reported without them */
		memcpy(e->strs, ctx->buf, args);
		memcpy(e->strs + args, exe, exe_len);
		memcpy(e->strs + args + exe_len, cwd, cwd_len);
	}
	e->args_len = (uint32_t)args;
	e->exe_len = (uint32_t)exe_len;
	e->cwd_len = (uint32_t)cwd_len;
	if (keep && s->cache_bytes + total > PROC_CACHE_BYTES) {
		metric_inc(s->cache_full);
		keep = false;
	}
	if (keep) {
		e->flags |= PE_STRS;
		s->cache_bytes += total;
	}
	return 0;
}

/* Everything read once per (pid, starttime): uid, fd limits, container id, strings.
 * 0, or -ENOENT/-ESRCH when the process is gone. */
static int load_info(struct proc_state *s, struct sys_ctx *ctx, int32_t pid, struct proc_entry *e,
		     bool keep)
{
	char path[PROC_PATH_LEN];
	uint64_t uid;
	ssize_t n;

	n = sys_read_at(s->proc_fd, pid_path(path, pid, "status"), ctx->buf, ctx->buf_size);
	if (is_gone(n))
		return (int)n;
	if (n >= 0 && sys_kv_u64(ctx->buf, (size_t)n, "Uid:", &uid) == 0 && uid <= UINT32_MAX) {
		e->uid = (uint32_t)uid;
		e->flags |= PE_UID;
	} else {
		struct stat sb; /* the pid directory belongs to the process's euid */

		if (fstatat(s->proc_fd, pid_path(path, pid, ""), &sb, 0) < 0)
			return is_gone(-errno) ? -ENOENT : 0;
		e->uid = (uint32_t)sb.st_uid;
		e->flags |= PE_UID;
	}

	n = sys_read_at(s->proc_fd, pid_path(path, pid, "limits"), ctx->buf, ctx->buf_size);
	if (is_gone(n))
		return (int)n;
	if (n >= 0)
		parse_limits(ctx->buf, (size_t)n, e);
	else
		metric_inc(s->unreadable);

	n = sys_read_at(s->proc_fd, pid_path(path, pid, "cgroup"), ctx->buf, ctx->buf_size);
	if (is_gone(n))
		return (int)n;
	if (n >= 0 && sys_container_id(ctx->buf, (size_t)n, e->cid))
		e->flags |= PE_CID;
	else if (n < 0 && n != -EFBIG)
		metric_inc(s->unreadable);

	return load_strs(s, ctx, pid, e, keep);
}

/* ---- etc/passwd --------------------------------------------------------------- */

static void users_clear(struct users *u)
{
	hb_free(u->v);
	hb_free(u->names);
	u->v = NULL;
	u->names = NULL;
	u->n = 0;
}

static int user_cmp(const void *a, const void *b)
{
	const struct user_ent *x = a, *y = b;

	if (x->uid != y->uid)
		return x->uid < y->uid ? -1 : 1;
	return x->line < y->line ? -1 : x->line > y->line;
}

/* name:password:uid:... lines; NIS "+"/"-" lines and comments are skipped. */
static void users_load(struct users *u, const char *buf, size_t len)
{
	struct sys_text all = sys_text_of(buf, len), line;
	size_t n = 0, used = 0, out = 0, max = len / 2 + 1; /* a line is ≥ 2 bytes */
	uint32_t lineno = 0;

	users_clear(u);
	if (max > PROC_USERS_MAX)
		max = PROC_USERS_MAX;
	u->v = hb_malloc(max * sizeof(*u->v));
	u->names = hb_malloc(len + 1);
	if (!u->v || !u->names) {
		users_clear(u);
		return;
	}
	while (n < max && sys_text_line(&all, &line)) {
		const char *c1, *c2, *c3;
		struct sys_text uid_text;
		uint64_t uid;
		size_t name_len;

		lineno++;
		c1 = memchr(line.p, ':', sys_text_len(&line));
		if (!c1 || c1 == line.p || *line.p == '+' || *line.p == '-' || *line.p == '#')
			continue;
		c2 = memchr(c1 + 1, ':', (size_t)(line.end - c1 - 1));
		if (!c2)
			continue;
		c3 = memchr(c2 + 1, ':', (size_t)(line.end - c2 - 1));
		uid_text = sys_text_of(c2 + 1, (size_t)((c3 ? c3 : line.end) - c2 - 1));
		if (sys_text_u64(&uid_text, &uid) < 0 || uid > UINT32_MAX)
			continue;
		name_len = (size_t)(c1 - line.p);
		u->v[n].uid = (uint32_t)uid;
		u->v[n].line = lineno;
		u->v[n].off = (uint32_t)used;
		memcpy(u->names + used, line.p, name_len);
		u->names[used + name_len] = '\0';
		used += name_len + 1;
		n++;
	}
	qsort(u->v, n, sizeof(*u->v), user_cmp);
	for (size_t i = 0; i < n; i++) /* keep the first line of each uid */
		if (out == 0 || u->v[out - 1].uid != u->v[i].uid)
			u->v[out++] = u->v[i];
	u->n = out;
}

/* Reload etc/passwd when it changed since the last sample (one fstatat). */
static void users_refresh(struct users *u, struct sys_ctx *ctx)
{
	struct stat sb;
	ssize_t n;

	if (fstatat(ctx->root_fd, "etc/passwd", &sb, 0) < 0) {
		users_clear(u);
		u->have_stat = false;
		return;
	}
	if (u->have_stat && sb.st_ino == u->sb.st_ino && sb.st_dev == u->sb.st_dev &&
	    sb.st_size == u->sb.st_size && sb.st_mtim.tv_sec == u->sb.st_mtim.tv_sec &&
	    sb.st_mtim.tv_nsec == u->sb.st_mtim.tv_nsec)
		return;
	n = sys_read_at(ctx->root_fd, "etc/passwd", ctx->buf, ctx->buf_size);
	if (n == -EFBIG)
		n = (ssize_t)ctx->buf_size - 1;
	if (n < 0) {
		users_clear(u);
		u->have_stat = false;
		return;
	}
	users_load(u, ctx->buf, (size_t)n);
	u->sb = sb;
	u->have_stat = true;
}

static const char *user_name(const struct users *u, uint32_t uid)
{
	size_t lo = 0, hi = u->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (u->v[mid].uid == uid)
			return u->names + u->v[mid].off;
		if (u->v[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* ---- the event ------------------------------------------------------------------ */

static uint64_t ticks_ns(uint64_t ticks, uint64_t hz)
{
	return ticks / hz * NS_PER_SEC + ticks % hz * NS_PER_SEC / hz;
}

/* process.args: each NUL-separated piece of the cached argv, at most PROC_ARGS_MAX. */
static void set_args(struct proc_state *s, struct event *ev, const struct proc_entry *e)
{
	const char *p = e->strs, *end = e->strs + e->args_len;

	for (unsigned count = 0; p <= end; count++) {
		const char *nul = memchr(p, '\0', (size_t)(end - p));
		const char *stop = nul ? nul : end;

		if (count == PROC_ARGS_MAX) {
			metric_inc(s->truncated);
			break;
		}
		ev_append_str(ev, "process.args", p, (size_t)(stop - p));
		p = stop + 1;
	}
}

/* The decimal text of v, ending at end; returns its start. */
static char *u32_text(uint32_t v, char *end)
{
	*--end = '\0';
	do
		*--end = (char)('0' + v % 10);
	while (v /= 10);
	return end;
}

/* One document. The fields are added in the order the encoder writes them (keys
 * compared byte by byte with '.' below every other byte: "proc.x" < "process.x" <
 * "system.x"), so its sort finds one ascending run where the order of the code made
 * many to merge: that sort was a tenth of the cost of encoding a process event.
 * With sys_event_new()'s metricset.period, service.type and sys_publish()'s
 * event.duration that makes three runs. test_sys_process.c checks the order: keep
 * it when adding a field. */
static void publish(struct proc_state *s, struct sys_ctx *ctx, const struct proc_entry *e,
		    const struct proc_now *now)
{
	const struct sys_proc_stat *st = &now->st;
	const char *state = sys_process_state_name(st->state), *user = NULL;
	uint64_t hz = ctx->hz > 0 ? (uint64_t)ctx->hz : 100, page = (uint64_t)ctx->page_size;
	uint64_t ticks = st->utime + st->stime, start;
	uint64_t rss = now->resident * page;
	double pct = -1, norm = -1, rss_pct = -1;
	bool ticks_on = ctx->cfg->cpu_ticks, mem = now->have_statm;
	size_t cmd_len = e->strs ? e->args_len : 0; /* NULL strs: nothing cached to say */
	char uid_text[16];
	struct event *ev;

	ev = sys_event_new(ctx, "system.process");
	if (!ev)
		return;
	if ((e->flags & PE_TICKS) && ctx->mono_ns > e->mono_ns && ticks >= e->ticks) {
		pct = (double)(ticks - e->ticks) / (double)hz /
		      ((double)(ctx->mono_ns - e->mono_ns) / (double)NS_PER_SEC);
		norm = sys_round4(pct / (ctx->ncpu ? ctx->ncpu : 1));
		pct = sys_round4(pct);
	}
	if (mem && ctx->mem_total)
		rss_pct = sys_round4((double)rss / (double)ctx->mem_total);
	start = ctx->boot_time_ns + ticks_ns(st->starttime, hz);
	if (e->flags & PE_UID) {
		user = user_name(&s->users, e->uid);
		if (!user) /* numeric, as ps does */
			user = u32_text(e->uid, uid_text + sizeof(uid_text));
	}
	if (cmd_len) { /* the command line: argv's bytes, NULs as spaces */
		memcpy(ctx->buf, e->strs, cmd_len);
		for (size_t i = 0; i < cmd_len; i++)
			if (ctx->buf[i] == '\0')
				ctx->buf[i] = ' ';
	}

	if (e->flags & PE_CID)
		ev_set_str(ev, "container.id", e->cid, 64);
	if (ctx->legacy) {
		time_t secs = (time_t)(start / NS_PER_SEC);
		struct tm tm;

		if (cmd_len)
			ev_set_str(ev, "proc.cmdline", ctx->buf, cmd_len);
		if (gmtime_r(&secs, &tm)) {
			char hhmm[5] = {(char)('0' + tm.tm_hour / 10),
					(char)('0' + tm.tm_hour % 10), ':',
					(char)('0' + tm.tm_min / 10), (char)('0' + tm.tm_min % 10)};

			ev_set_str(ev, "proc.cpu.start_time", hhmm, sizeof(hhmm));
		}
		ev_set_uint(ev, "proc.cpu.system", st->stime * 1000 / hz);
		ev_set_uint(ev, "proc.cpu.total", ticks * 1000 / hz);
		if (pct >= 0) /* Topbeat: of one core, not normalised */
			ev_set_double(ev, "proc.cpu.total_p", pct);
		ev_set_uint(ev, "proc.cpu.user", st->utime * 1000 / hz);
		if (mem) {
			ev_set_uint(ev, "proc.mem.rss", rss);
			if (rss_pct >= 0)
				ev_set_double(ev, "proc.mem.rss_p", rss_pct);
			ev_set_uint(ev, "proc.mem.share", now->share * page);
			ev_set_uint(ev, "proc.mem.size", now->size * page);
		}
		ev_set_str(ev, "proc.name", st->comm, st->comm_len);
		ev_set_uint(ev, "proc.pid", st->pid);
		ev_set_uint(ev, "proc.ppid", st->ppid);
		ev_set_strz(ev, "proc.state", state);
		if (user)
			ev_set_strz(ev, "proc.username", user);
	}

	if (cmd_len) {
		set_args(s, ev, e);
		ev_set_str(ev, "process.command_line", ctx->buf, cmd_len);
	}
	if (norm >= 0)
		ev_set_double(ev, "process.cpu.pct", norm);
	if (e->exe_len)
		ev_set_str(ev, "process.executable", e->strs + e->args_len, e->exe_len);
	if (rss_pct >= 0)
		ev_set_double(ev, "process.memory.pct", rss_pct);
	ev_set_str(ev, "process.name", st->comm, st->comm_len);
	ev_set_uint(ev, "process.parent.pid", st->ppid);
	ev_set_uint(ev, "process.pgid", st->pgrp);
	ev_set_uint(ev, "process.pid", st->pid);
	ev_set_time(ev, "process.start", start);
	ev_set_strz(ev, "process.state", state);
	ev_set_uint(ev, "process.thread.count", st->num_threads);
	if (e->cwd_len)
		ev_set_str(ev, "process.working_directory", e->strs + e->args_len + e->exe_len,
			   e->cwd_len);

	if (cmd_len)
		ev_set_str(ev, "system.process.cmdline", ctx->buf, cmd_len);
	ev_set_time(ev, "system.process.cpu.start_time", start);
	if (ticks_on)
		ev_set_uint(ev, "system.process.cpu.system.ticks", st->stime);
	if (pct >= 0) {
		ev_set_double(ev, "system.process.cpu.total.norm.pct", norm);
		ev_set_double(ev, "system.process.cpu.total.pct", pct);
	}
	if (ticks_on)
		ev_set_uint(ev, "system.process.cpu.total.ticks", ticks);
	ev_set_uint(ev, "system.process.cpu.total.value", ticks * 1000 / hz);
	if (ticks_on)
		ev_set_uint(ev, "system.process.cpu.user.ticks", st->utime);
	if (e->flags & PE_FD_HARD)
		ev_set_uint(ev, "system.process.fd.limit.hard", e->fd_hard);
	if (e->flags & PE_FD_SOFT)
		ev_set_uint(ev, "system.process.fd.limit.soft", e->fd_soft);
	if (now->have_fds)
		ev_set_uint(ev, "system.process.fd.open", now->fds);
	if (mem) {
		ev_set_uint(ev, "system.process.memory.rss.bytes", rss);
		if (rss_pct >= 0)
			ev_set_double(ev, "system.process.memory.rss.pct", rss_pct);
		ev_set_uint(ev, "system.process.memory.share", now->share * page);
		ev_set_uint(ev, "system.process.memory.size", now->size * page);
	}
	ev_set_uint(ev, "system.process.num_threads", st->num_threads);
	ev_set_strz(ev, "system.process.state", state);

	ev_set_strz(ev, "type", "process");
	if (user)
		ev_set_strz(ev, "user.name", user);
	sys_publish(ctx, ev);
}

/* ---- the table and the sample ---------------------------------------------------- */

static bool name_matches(const struct proc_state *s, const char *name)
{
	if (s->match_all)
		return true;
	for (size_t i = 0; i < s->nre; i++)
		if (regexec(&s->re[i], name, 0, NULL, 0) == 0)
			return true;
	return false;
}

static int pid_cmp(const void *a, const void *b)
{
	int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;

	return (x > y) - (x < y);
}

/* The pid entries of proc/ into s->pids, ascending. getdents64 straight into the
 * scratch buffer: one call for 40,000 pids where readdir() makes one per 1,300; and
 * as procfs lists pids in ascending order, sorting them is only a check there. */
static size_t list_pids(struct proc_state *s, struct sys_ctx *ctx)
{
	size_t n = 0;
	bool sorted = true;

	if (lseek(s->proc_fd, 0, SEEK_SET) < 0)
		return 0;
	for (;;) {
		ssize_t got = getdents64(s->proc_fd, ctx->buf, ctx->buf_size);
		size_t off = 0;

		if (got <= 0)
			break; /* the end; on an error, the pids listed so far */
		while (off < (size_t)got) {
			const char *p = ctx->buf + off + offsetof(struct dirent64, d_name);
			unsigned short reclen;
			uint64_t v = 0;

			memcpy(&reclen, ctx->buf + off + offsetof(struct dirent64, d_reclen),
			       sizeof(reclen));
			if (reclen == 0)
				goto done; /* never from a kernel: do not spin */
			off += reclen;
			if (*p < '1' || *p > '9')
				continue;
			for (; *p >= '0' && *p <= '9' && v <= INT32_MAX; p++)
				v = v * 10 + (uint64_t)(*p - '0');
			if (*p || v > INT32_MAX)
				continue;
			if (n == s->pids_cap) {
				size_t cap = s->pids_cap ? s->pids_cap * 2 : 1024;
				int32_t *pids;

				if (cap > PROC_PIDS_MAX)
					cap = PROC_PIDS_MAX;
				if (n == cap ||
				    !(pids = hb_realloc(s->pids, cap * sizeof(*pids)))) {
					metric_inc(s->list_full);
					goto done;
				}
				s->pids = pids;
				s->pids_cap = cap;
			}
			if (n && (int32_t)v < s->pids[n - 1])
				sorted = false;
			s->pids[n++] = (int32_t)v;
		}
	}
done:
	if (!sorted)
		qsort(s->pids, n, sizeof(*s->pids), pid_cmp);
	return n;
}

/* Room for entry index m in the next table (m < s->max). */
static bool next_room(struct proc_state *s, size_t m)
{
	struct proc_entry *v;
	size_t cap;

	if (m < s->next_cap)
		return true;
	cap = s->next_cap ? s->next_cap * 2 : 256;
	if (cap > s->max)
		cap = (size_t)s->max;
	if (cap <= m || !(v = hb_realloc(s->next, cap * sizeof(*v))))
		return false;
	s->next = v;
	s->next_cap = cap;
	return true;
}

static void process_sample(void *state, struct sys_ctx *ctx)
{
	struct proc_state *s = state;
	size_t np, j = 0, m = 0;

	users_refresh(&s->users, ctx);
	np = list_pids(s, ctx);
	/* the processes tracked last time estimate this sample's (growth is caught up
	 * with in the next one); before the first, every pid listed, within the cap */
	plan_kept(s, s->sampled ? s->n : (np < s->max ? np : (size_t)s->max));
	s->sampled = true;
	for (size_t i = 0; i < np; i++) {
		int32_t pid = s->pids[i];
		struct proc_entry *prev = NULL, *e, tmp, held;
		struct proc_now now;
		bool fresh = false, in_table = true;
		int rc;
		ssize_t n;

		while (j < s->n && s->ent[j].pid < pid)
			entry_release(s, &s->ent[j++]); /* exited */
		/* `held` holds the stat descriptor until the entry is known */
		held.pid = pid;
		for (int k = 0; k < KEPT_KINDS; k++)
			held.fd[k] = -1;
		if (j < s->n && s->ent[j].pid == pid) {
			prev = &s->ent[j++];
			held.fd[KEPT_STAT] =
			    prev->fd[KEPT_STAT]; /* follows the process, or closed */
			prev->fd[KEPT_STAT] = -1;
		}

		n = read_kept(s, &held, KEPT_STAT, "stat", m < s->max, ctx->buf);
		rc = n < 0 ? (int)n : sys_process_parse_stat(ctx->buf, (size_t)n, &now.st);
		if (rc < 0) {
			metric_inc(is_gone(rc)     ? s->vanished
				   : rc == -EINVAL ? s->malformed
						   : s->unreadable);
			goto drop;
		}
		if (!name_matches(s, now.st.comm))
			goto drop;
		if (prev && prev->starttime != now.st.starttime) {
			entry_release(s, prev); /* the pid was reused: another process */
			prev = NULL;
		}

		if (m < s->max && next_room(s, m)) {
			e = &s->next[m];
		} else {
			e = &tmp;
			in_table = false;
		}
		if (prev) {
			*e = *prev; /* moved: prev is not looked at again */
		} else {
			memset(e, 0, sizeof(*e));
			e->pid = pid;
			e->starttime = now.st.starttime;
			e->fd[KEPT_STATM] = e->fd[KEPT_FDS] = -1;
			fresh = true;
		}
		e->fd[KEPT_STAT] = held.fd[KEPT_STAT];
		if (!in_table)
			entry_release(s, e); /* out of room: tmp keeps nothing across samples */

		rc = read_statm(s, ctx, e, in_table, &now);
		if (rc == 0) {
			rc = read_fds(s, ctx, e, in_table, &now);
			if (rc < 0 && !is_gone(rc)) {
				metric_inc(s->unreadable);
				rc = 0;
			}
		}
		if (rc == 0 && fresh)
			rc = load_info(s, ctx, pid, e, in_table);
		else if (rc == 0 && !(e->flags & PE_STRS))
			rc = load_strs(s, ctx, pid, e, false); /* over the cache budget */
		if (rc < 0) {
			metric_inc(s->vanished);
			entry_release(s, e);
			continue;
		}

		if (!in_table && !prev)
			metric_inc(s->table_full);
		publish(s, ctx, e, &now);
		e->ticks = now.st.utime + now.st.stime;
		e->mono_ns = ctx->mono_ns;
		e->flags |= PE_TICKS;
		if (!(e->flags & PE_STRS))
			entry_strs_free(s, e);
		if (in_table)
			m++;
		else
			entry_release(s, e);
		continue;
	drop:
		close_kept(s, &held, KEPT_STAT);
		if (prev)
			entry_release(s, prev);
	}
	while (j < s->n)
		entry_release(s, &s->ent[j++]);

	/* the next table becomes the table */
	{
		struct proc_entry *v = s->ent;
		size_t cap = s->cap;

		s->ent = s->next;
		s->cap = s->next_cap;
		s->n = m;
		s->next = v;
		s->next_cap = cap;
	}
}

/* ---- create / destroy ----------------------------------------------------------- */

static void process_destroy(void *state)
{
	struct proc_state *s = state;

	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++)
		entry_release(s, &s->ent[i]);
	for (size_t i = 0; i < s->nre; i++)
		regfree(&s->re[i]);
	hb_free(s->re);
	if (s->proc_fd >= 0)
		close(s->proc_fd);
	hb_free(s->ent);
	hb_free(s->next);
	hb_free(s->pids);
	users_clear(&s->users);
	hb_free(s);
}

static int compile_procs(struct proc_state *s, const struct cfg_strlist *procs)
{
	if (procs->n == 1 && strcmp(procs->v[0], ".*") == 0) {
		s->match_all = true; /* the default: no regexec at all */
		return 0;
	}
	if (procs->n == 0)
		log_warn("sys.process", "topbeat.procs is empty: no process will be reported");
	s->re = hb_calloc(procs->n ? procs->n : 1, sizeof(*s->re));
	if (!s->re) {
		log_error("sys.process", "out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < procs->n; i++) {
		int rc = regcomp(&s->re[i], procs->v[i], REG_EXTENDED | REG_NOSUB);

		if (rc != 0) {
			char msg[256];

			regerror(rc, &s->re[i], msg, sizeof(msg));
			log_error("sys.process",
				  "topbeat.procs[%zu] \"%s\" is not a POSIX extended regexp: %s", i,
				  procs->v[i], msg);
			return -EINVAL;
		}
		s->nre++;
	}
	return 0;
}

/* Does <pid>/fd's st_size count descriptors here? Only on procfs since Linux 6.2;
 * probed on our own process, which always has some open (this very directory). */
static bool probe_fd_size(int proc_fd)
{
	struct statfs sf;
	struct stat sb;

	if (fstatfs(proc_fd, &sf) < 0 || sf.f_type != PROC_SUPER_MAGIC_)
		return false;
	return fstatat(proc_fd, "self/fd", &sb, 0) == 0 && sb.st_size > 0;
}

/* How many descriptors entries may keep open: on procfs only (a fixture file would
 * go on reading a file the test replaced), three per tracked process (stat, statm,
 * fd/), at most half of RLIMIT_NOFILE's soft limit — the agent needs the rest. */
static size_t fds_budget(int proc_fd, uint64_t max)
{
	struct statfs sf;
	struct rlimit rl;
	uint64_t half;

	if (fstatfs(proc_fd, &sf) < 0 || sf.f_type != PROC_SUPER_MAGIC_ ||
	    getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 0;
	half = rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : (uint64_t)rl.rlim_cur / 2;
	return (size_t)(half < 3 * max ? half : 3 * max);
}

static void *process_create(const struct sys_ctx *ctx)
{
	struct proc_state *s = hb_calloc(1, sizeof(*s));
	int fd;

	if (!s) {
		log_error("sys.process", "out of memory");
		return NULL;
	}
	s->proc_fd = -1;
	s->max = ctx->cfg->proc_max ? ctx->cfg->proc_max : 1;
	if (compile_procs(s, &ctx->cfg->procs) < 0)
		goto fail;
	fd = openat(ctx->root_fd, "proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		log_error("sys.process", "cannot open %s/proc: %s", ctx->hostfs, strerror(errno));
		goto fail;
	}
	s->proc_fd = fd;
	s->fd_size = probe_fd_size(fd);
	s->fds_budget = fds_budget(fd, s->max);
	s->vanished = metrics_counter("sys.process.vanished");
	s->table_full = metrics_counter("sys.process.table_full");
	s->unreadable = metrics_counter("sys.process.unreadable");
	s->cache_full = metrics_counter("sys.process.cache_full");
	s->malformed = metrics_counter("sys.process.malformed");
	s->list_full = metrics_counter("sys.process.list_full");
	s->truncated = metrics_counter("sys.process.truncated");
	return s;
fail:
	process_destroy(s);
	return NULL;
}

const struct sys_metricset sys_process_metricset = {
    .name = "process",
    .create = process_create,
    .sample = process_sample,
    .destroy = process_destroy,
};
