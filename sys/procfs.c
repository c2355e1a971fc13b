/* procfs.c — the adapter every metricset reads the host through: files under the
 * topbeat.hostfs root (openat on one directory descriptor, one read() loop) and
 * the small text walkers used instead of sscanf on kernel text.
 *
 * libproc2 is not used here: it always reads the agent's own /proc and takes no
 * root, so it cannot read /hostfs/proc in the container or a fixture tree in the
 * tests. It serves the agent's own process figures (sys/self.c) and is the oracle
 * the unit tests compare this adapter's parsing against.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "hostbeat/sys.h"

bool sys_text_line(struct sys_text *t, struct sys_text *line)
{
	const char *nl;

	if (t->p >= t->end)
		return false;
	nl = memchr(t->p, '\n', (size_t)(t->end - t->p));
	line->p = t->p;
	line->end = nl ? nl : t->end;
	t->p = nl ? nl + 1 : t->end;
	return true;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

bool sys_text_field(struct sys_text *t, struct sys_text *field)
{
	while (t->p < t->end && is_blank(*t->p))
		t->p++;
	if (t->p >= t->end)
		return false;
	field->p = t->p;
	while (t->p < t->end && !is_blank(*t->p))
		t->p++;
	field->end = t->p;
	return true;
}

int sys_text_u64(const struct sys_text *t, uint64_t *out)
{
	uint64_t v = 0;
	const char *p;

	if (t->p >= t->end)
		return -EINVAL;
	for (p = t->p; p < t->end; p++) {
		unsigned d = (unsigned)(*p - '0');

		if (d > 9 || v > (UINT64_MAX - d) / 10)
			return -EINVAL;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

int sys_text_i64(const struct sys_text *t, int64_t *out)
{
	struct sys_text digits = *t;
	bool neg = digits.p < digits.end && *digits.p == '-';
	uint64_t v;

	if (neg)
		digits.p++;
	if (sys_text_u64(&digits, &v) < 0 || v > (uint64_t)INT64_MAX + neg)
		return -EINVAL;
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	return 0;
}

int sys_text_double(const struct sys_text *t, double *out)
{
	double v = 0, scale = 1;
	bool dot = false, digit = false;
	const char *p;

	for (p = t->p; p < t->end; p++) {
		if (*p == '.' && !dot) {
			dot = true;
			continue;
		}
		if (*p < '0' || *p > '9' || (p - t->p) > 40)
			return -EINVAL;
		digit = true;
		if (dot)
			scale /= 10;
		v = v * 10 + (*p - '0');
	}
	if (!digit)
		return -EINVAL;
	*out = dot ? v * scale : v;
	return 0;
}

bool sys_text_eq(const struct sys_text *t, const char *s)
{
	size_t n = strlen(s);

	return sys_text_len(t) == n && memcmp(t->p, s, n) == 0;
}

int sys_kv_u64(const char *buf, size_t len, const char *key, uint64_t *out)
{
	struct sys_text all = sys_text_of(buf, len), line, f;
	size_t klen = strlen(key);
	uint64_t v;

	while (sys_text_line(&all, &line)) {
		if (sys_text_len(&line) < klen || memcmp(line.p, key, klen) != 0)
			continue;
		line.p += klen;
		if (!sys_text_field(&line, &f) || sys_text_u64(&f, &v) < 0)
			return -EINVAL;
		if (sys_text_field(&line, &f) && sys_text_eq(&f, "kB")) {
			if (v > UINT64_MAX / 1024)
				return -EINVAL;
			v *= 1024;
		}
		*out = v;
		return 0;
	}
	return -ENOENT;
}

/* Read until EOF or a full buffer; NUL-terminates. */
static ssize_t read_all(int fd, char *buf, size_t size, bool positional)
{
	size_t got = 0;

	if (size == 0)
		return -EINVAL;
	while (got < size - 1) {
		ssize_t n = positional ? pread(fd, buf + got, size - 1 - got, (off_t)got)
				       : read(fd, buf + got, size - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			buf[got] = '\0';
			return -errno;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	buf[got] = '\0';
	if (got == size - 1) {
		char probe;
		ssize_t more = positional ? pread(fd, &probe, 1, (off_t)got) : read(fd, &probe, 1);

		if (more > 0)
			return -EFBIG;
	}
	return (ssize_t)got;
}

ssize_t sys_read_at(int root_fd, const char *path, char *buf, size_t size)
{
	ssize_t n;
	int fd;

	while (*path == '/')
		path++;
	fd = openat(root_fd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		if (size)
			buf[0] = '\0';
		return -errno;
	}
	n = read_all(fd, buf, size, false);
	close(fd);
	return n;
}

ssize_t sys_file_read(struct sys_file *f, int root_fd, char *buf, size_t size)
{
	const char *path = f->path;
	ssize_t n;
	int attempt;

	while (*path == '/')
		path++;
	for (attempt = 0; attempt < 2; attempt++) {
		if (f->fd < 0) {
			f->fd = openat(root_fd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
			if (f->fd < 0) {
				if (size)
					buf[0] = '\0';
				return -errno;
			}
		}
		n = read_all(f->fd, buf, size, true);
		if (n >= 0 || n == -EFBIG)
			return n;
		sys_file_close(f); /* a stale descriptor: reopen once */
	}
	return n;
}

void sys_file_close(struct sys_file *f)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
}

static bool is_hex_lower(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

static bool is_alnum(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

bool sys_container_id(const char *s, size_t len, char out[65])
{
	size_t i = 0;

	while (i < len) {
		size_t run = 0;

		if (!is_hex_lower(s[i]) || (i > 0 && is_alnum(s[i - 1]))) {
			i++;
			continue;
		}
		while (i + run < len && is_hex_lower(s[i + run]))
			run++;
		if (run == 64 && (i + run == len || !is_alnum(s[i + run]))) {
			memcpy(out, s + i, 64);
			out[64] = '\0';
			return true;
		}
		i += run;
	}
	return false;
}

double sys_ratio_delta(uint64_t part_prev, uint64_t part_cur, uint64_t total_prev,
		       uint64_t total_cur)
{
	if (total_cur <= total_prev || part_cur < part_prev)
		return -1;
	return (double)(part_cur - part_prev) / (double)(total_cur - total_prev);
}

double sys_round4(double v)
{
	return round(v * 10000.0) / 10000.0;
}
