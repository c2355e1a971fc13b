/* out_file.c — output.file: NDJSON files, one per daily index, rotated by size.
 *
 * Follows Beats' output.file (path, rotate_every_kb, number_of_files) except that
 * the file name is the index name, so events land as they would in Elasticsearch:
 *
 *   <path>/packetbeat-2015.08.27.ndjson      ← being written
 *   <path>/packetbeat-2015.08.27.ndjson.1    ← previous, .2 older … up to
 *   <path>/packetbeat-2015.08.27.ndjson.<number_of_files - 1>   (oldest, deleted next)
 *
 * Writes go through one 256 KiB buffer holding data for one file at a time; it is
 * flushed when full, when the batch moves to another index, at batch end and at
 * close. A file is rotated before a document would push it past rotate_every (a
 * single larger document gets a file of its own). A failed write (ENOSPC, EIO …)
 * cuts the file back to its last complete line, counts the buffered documents as
 * dropped and is logged at most once a minute.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hostbeat/clock.h"
#include "hostbeat/log.h"
#include "hostbeat/mem.h"
#include "shipper/output.h"

#define OUT_FILE_BUF (256 * 1024)
#define OUT_FILE_MAX_OPEN 4 /* indices open at once (packetbeat, topbeat, self, a day change) */
#define OUT_FILE_DEFAULT_ROTATE (10 * 1024 * 1024ULL) /* Beats: rotate_every_kb 10240 */
#define OUT_FILE_DEFAULT_FILES 7
#define OUT_FILE_MAX_FILES 1024
#define OUT_FILE_LOG_EVERY (60 * NS_PER_SEC)
#define SEL "shipper.file"

struct idx_file {
	char name[ENCODE_INDEX_NAME_LEN]; /* "" = slot free */
	int fd;
	uint64_t size;     /* bytes in the file, flushed */
	uint64_t last_use; /* batch tick, for closing the least recently used */
};

struct out_file {
	char *dir;
	uint64_t rotate_every;
	uint64_t nfiles;
	struct idx_file files[OUT_FILE_MAX_OPEN];
	char *buf; /* OUT_FILE_BUF bytes destined for `bfile` */
	size_t blen, bdocs;
	struct idx_file *bfile; /* NULL when the buffer is empty */
	uint64_t tick;
	uint64_t last_log_ns; /* 0 = never logged */
	struct ship_output_counters m;
	struct metric *rotations;
};

/* Rate-limited error log: at most one line a minute. */
static void file_log_error(struct out_file *o, const char *what, const char *name, int err)
{
	uint64_t now = clock_mono_ns();

	if (o->last_log_ns && now - o->last_log_ns < OUT_FILE_LOG_EVERY)
		return;
	o->last_log_ns = now;
	log_error(SEL, "%s %s/%s: %s (events are dropped and counted; next report in 1m)", what,
		  o->dir, name, strerror(err));
}

static int file_path(const struct out_file *o, const char *name, unsigned gen, char *buf)
{
	int n;

	if (gen)
		n = snprintf(buf, PATH_MAX, "%s/%s.ndjson.%u", o->dir, name, gen);
	else
		n = snprintf(buf, PATH_MAX, "%s/%s.ndjson", o->dir, name);
	return n < 0 || n >= PATH_MAX ? -ENAMETOOLONG : 0;
}

/* mkdir -p with mode 0750 for the components that are missing. */
static int mkdir_p(const char *dir)
{
	char path[PATH_MAX];
	size_t len = strlen(dir), i;
	struct stat st;

	if (len == 0 || len >= sizeof(path))
		return -ENAMETOOLONG;
	memcpy(path, dir, len + 1);
	for (i = 1; i <= len; i++) {
		if (path[i] != '/' && path[i] != '\0')
			continue;
		path[i] = '\0';
		if (mkdir(path, 0750) < 0 && errno != EEXIST)
			return -errno;
		path[i] = dir[i];
	}
	if (stat(dir, &st) < 0)
		return -errno;
	return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

/* Write all of p to f; on failure cut the file back to its last good size. */
static int file_write_all(struct out_file *o, struct idx_file *f, const char *p, size_t len,
			  size_t ndocs)
{
	size_t done = 0;
	ssize_t w;
	int err;

	while (done < len) {
		w = write(f->fd, p + done, len - done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			err = w < 0 ? errno : EIO;
			if (done && ftruncate(f->fd, (off_t)f->size) < 0)
				err = errno;
			metric_inc(o->m.write_errors);
			metric_add(o->m.dropped, ndocs);
			file_log_error(o, "write", f->name, err);
			return -err;
		}
		done += (size_t)w;
	}
	f->size += len;
	metric_add(o->m.written, ndocs);
	metric_add(o->m.bytes, len);
	return 0;
}

static int file_flush_buf(struct out_file *o)
{
	int rc = 0;

	if (o->bfile && o->blen)
		rc = file_write_all(o, o->bfile, o->buf, o->blen, o->bdocs);
	o->blen = o->bdocs = 0;
	o->bfile = NULL;
	return rc;
}

static void file_close_slot(struct out_file *o, struct idx_file *f)
{
	if (o->bfile == f)
		file_flush_buf(o);
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
	f->name[0] = '\0';
}

static int file_open_fd(struct out_file *o, struct idx_file *f)
{
	char path[PATH_MAX];
	struct stat st;
	int rc = file_path(o, f->name, 0, path);

	if (rc < 0)
		return rc;
	f->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (f->fd < 0)
		return -errno;
	f->size = fstat(f->fd, &st) == 0 ? (uint64_t)st.st_size : 0;
	return 0;
}

/* NAME.ndjson → NAME.ndjson.1 → … ; the oldest beyond number_of_files goes. */
static int file_rotate(struct out_file *o, struct idx_file *f)
{
	char from[PATH_MAX], to[PATH_MAX];
	unsigned gen;
	int rc;

	file_flush_buf(o);
	close(f->fd);
	f->fd = -1;
	if ((rc = file_path(o, f->name, 0, from)) < 0)
		return rc;
	if (o->nfiles <= 1) {
		unlink(from);
	} else {
		if (file_path(o, f->name, (unsigned)o->nfiles - 1, to) == 0)
			unlink(to);
		for (gen = (unsigned)o->nfiles - 1; gen > 1; gen--)
			if (file_path(o, f->name, gen - 1, from) == 0 &&
			    file_path(o, f->name, gen, to) == 0)
				rename(from, to); /* ENOENT: that generation does not exist yet */
		if (file_path(o, f->name, 0, from) == 0 && file_path(o, f->name, 1, to) == 0 &&
		    rename(from, to) < 0)
			file_log_error(o, "rotate", f->name, errno);
	}
	metric_inc(o->rotations);
	return file_open_fd(o, f);
}

/* The open file for an index, opening it (and closing the least recently used
 * one) when needed. NULL when it cannot be opened (logged, rate-limited). */
static struct idx_file *file_get(struct out_file *o, const char *name)
{
	struct idx_file *f, *victim = NULL;
	size_t i;
	int rc;

	for (i = 0; i < OUT_FILE_MAX_OPEN; i++) {
		f = &o->files[i];
		if (f->name[0] && strcmp(f->name, name) == 0) {
			f->last_use = o->tick;
			return f;
		}
		if (!victim || !f->name[0] || (victim->name[0] && f->last_use < victim->last_use))
			victim = f;
	}
	if (victim->name[0])
		file_close_slot(o, victim);
	snprintf(victim->name, sizeof(victim->name), "%s", name);
	rc = file_open_fd(o, victim);
	if (rc < 0) {
		file_log_error(o, "open", name, -rc);
		victim->name[0] = '\0';
		victim->fd = -1;
		return NULL;
	}
	victim->last_use = o->tick;
	return victim;
}

static void file_write(void *st, const char *buf, const struct ship_doc *docs, size_t n)
{
	struct out_file *o = st;
	struct idx_file *f;
	const char *p;
	size_t i, len;
	uint64_t pending;

	o->tick++;
	for (i = 0; i < n; i++) {
		p = buf + docs[i].off;
		len = docs[i].len;
		f = file_get(o, docs[i].index);
		if (!f) {
			metric_inc(o->m.write_errors);
			metric_inc(o->m.dropped);
			continue;
		}
		if (o->bfile != f)
			file_flush_buf(o);
		pending = f->size + o->blen;
		if (pending && pending + len > o->rotate_every && file_rotate(o, f) < 0) {
			file_log_error(o, "reopen", f->name, errno);
			file_close_slot(o, f);
			metric_inc(o->m.write_errors);
			metric_inc(o->m.dropped);
			continue;
		}
		if (!o->blen) { /* a run that would fill the buffer: write it in place */
			size_t j = i + 1, run = len;

			while (j < n && docs[j].off == docs[j - 1].off + docs[j - 1].len &&
			       f->size + run + docs[j].len <= o->rotate_every &&
			       strcmp(docs[j].index, docs[i].index) == 0)
				run += docs[j++].len;
			if (run >= OUT_FILE_BUF) {
				file_write_all(o, f, p, run, j - i);
				i = j - 1;
				continue;
			}
		}
		if (OUT_FILE_BUF - o->blen < len)
			file_flush_buf(o);
		if (len > OUT_FILE_BUF) { /* larger than the buffer: straight to the file */
			file_write_all(o, f, p, len, 1);
			continue;
		}
		memcpy(o->buf + o->blen, p, len);
		o->blen += len;
		o->bdocs++;
		o->bfile = f;
	}
}

static int file_flush(void *st)
{
	return file_flush_buf(st);
}

static void file_close(void *st)
{
	struct out_file *o = st;
	size_t i;

	if (!o)
		return;
	file_flush_buf(o);
	for (i = 0; i < OUT_FILE_MAX_OPEN; i++)
		if (o->files[i].fd >= 0)
			close(o->files[i].fd);
	hb_free(o->buf);
	hb_free(o->dir);
	hb_free(o);
}

static void *file_open(const struct hb_config *cfg)
{
	struct out_file *o;
	char probe[PATH_MAX];
	size_t i;
	int rc, fd;

	if (!cfg->file_path || !cfg->file_path[0]) {
		log_error(SEL, "output.file.path is not set");
		return NULL;
	}
	rc = mkdir_p(cfg->file_path);
	if (rc < 0) {
		log_error(SEL, "cannot create output.file.path %s: %s", cfg->file_path,
			  strerror(-rc));
		return NULL;
	}
	/* Prove the directory is writable now rather than at the first event. */
	rc = snprintf(probe, sizeof(probe), "%s/.hostbeat-probe-%ld", cfg->file_path,
		      (long)getpid());
	if (rc < 0 || (size_t)rc >= sizeof(probe)) {
		log_error(SEL, "output.file.path %s: path too long", cfg->file_path);
		return NULL;
	}
	fd = open(probe, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0) {
		log_error(SEL, "output.file.path %s is not writable: %s", cfg->file_path,
			  strerror(errno));
		return NULL;
	}
	close(fd);
	unlink(probe);

	o = hb_calloc(1, sizeof(*o));
	if (!o)
		goto oom;
	for (i = 0; i < OUT_FILE_MAX_OPEN; i++)
		o->files[i].fd = -1;
	o->dir = hb_strdup(cfg->file_path);
	o->buf = hb_malloc(OUT_FILE_BUF);
	if (!o->dir || !o->buf)
		goto oom;
	o->rotate_every = cfg->file_rotate_every ? cfg->file_rotate_every : OUT_FILE_DEFAULT_ROTATE;
	o->nfiles = cfg->file_number_of_files ? cfg->file_number_of_files : OUT_FILE_DEFAULT_FILES;
	if (o->nfiles > OUT_FILE_MAX_FILES)
		o->nfiles = OUT_FILE_MAX_FILES;
	ship_output_counters(&o->m);
	o->rotations = metrics_counter("output.file.rotations");
	return o;
oom:
	log_error(SEL, "out of memory");
	file_close(o);
	return NULL;
}

const struct ship_output_ops ship_out_file = {
    .name = "file",
    .open = file_open,
    .write = file_write,
    .flush = file_flush,
    .close = file_close,
};
