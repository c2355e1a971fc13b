/* spool.c — disk spool of encoded documents: append-only segment files, replay in
 * order, an atomically replaced ack cursor (spool.h).
 *
 * A segment is a sequence of records, one document each, all integers little-endian:
 *
 *    0        4        8      10      12        16        20
 *   +--------+--------+------+-------+---------+---------+-------------------+
 *   | magic  |  len   | type | flags |  dcrc   |  hcrc   | document (len)    |
 *   +--------+--------+------+-------+---------+---------+-------------------+
 *   magic "\xF8HBS" (0xF8 never occurs in UTF-8 text, so never in our JSON),
 *   type 1 = document, flags 0, dcrc = CRC32C of the document,
 *   hcrc = CRC32C of bytes [0, 16): a corrupt length is caught before it is used,
 *   and resynchronising costs O(1) per false magic instead of a CRC over `len`.
 *
 * One document per record, so an ack removes exactly the acknowledged documents.
 *
 * The cursor file (32 bytes) holds the ack position (seq, off): every record of a
 * segment with a lower seq, and every record of segment `seq` before `off`, is acked.
 *
 *    0        4         8             16            24       28       32
 *   +--------+---------+-------------+-------------+--------+--------+
 *   | magic  | version |     seq     |     off     |  crc   |   0    |
 *   +--------+---------+-------------+-------------+--------+--------+
 *
 * It is written as cursor.tmp, fsynced, renamed over `cursor`, directory fsynced
 * (fsync never: no fsyncs). It is written before the acked segments are unlinked, so
 * a crash between the two leaves segments below the cursor, deleted at the next open.
 * New segments always get a seq above the cursor's, so none is mistaken for acked.
 *
 * Reading — the open-time scan and spool_peek() — goes through next_record() over
 * one read buffer of rcap bytes (a record never exceeds it). Given a start offset
 * it returns the first valid record at or after it, so the scan and later peeks
 * skip exactly the same corrupt regions. A region with no valid record up to the
 * end of a segment is a torn tail: cut off at open.
 *
 * Invariants: segs[] is ordered by seq; segs[0] holds the ack position (ack_off);
 * when wfd >= 0 it is the segment segs[nsegs - 1], open for writing, every other
 * segment is sealed; seg.end only counts complete records.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "hostbeat/clock.h"
#include "hostbeat/log.h"
#include "hostbeat/mem.h"
#include "hostbeat/metrics.h"
#include "shipper/spool.h"

#define SEL "shipper.spool"
#define HDR SPOOL_RECORD_HEADER
#define REC_MAGIC 0x534248F8u /* "\xF8HBS" */
#define REC_TYPE_DOC 1
#define CUR_MAGIC 0x434248F8u /* "\xF8HBC" */
#define CUR_VERSION 1
#define CUR_SIZE 32
#define READ_BUF_BYTES (1U << 20)
#define SEG_NAME_LEN 30 /* "spool-" + 20 digits + ".seg" */
#define LOG_EVERY (60 * NS_PER_SEC)
#define SEGS_INITIAL 64 /* segment table entries; doubles when a spool has more */

enum { REC_OK, REC_END };

struct seg {
	uint64_t seq;
	uint64_t end; /* bytes of complete records: the file size once sealed */
};

struct peek_pos {
	uint64_t seq, off; /* end of a peeked record: the ack position once it is acked */
};

struct rec {
	uint64_t off; /* of the header */
	uint32_t len;
	const uint8_t *data;
};

struct spool {
	char *dir;
	int dirfd, lockfd;
	struct spool_opts o;
	uint32_t max_len; /* largest record payload read back (rcap - HDR) */

	struct seg *segs;
	size_t nsegs, segs_cap;
	uint64_t ack_off; /* in segs[0] */
	uint64_t next_seq;
	int wfd; /* segs[nsegs - 1] when >= 0 */
	uint64_t count, bytes;

	/* read buffer: bytes [rbase, rbase + rlen) of segment rseq, read through rfd */
	int rfd;
	uint64_t rseq, rbase;
	uint8_t *rbuf;
	size_t rcap, rlen;
	struct peek_pos *peeked;
	size_t npeeked;

	struct spool_stats st;
	uint64_t last_log_ns;
	struct metric *m_appended, *m_acked, *m_bytes, *m_corrupt, *m_corrupt_bytes, *m_torn,
	    *m_write_errors;
};

/* ---- CRC32C (Castagnoli, reflected polynomial 0x82F63B78), slice-by-8 ---- */

static uint32_t crc_tab[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
	uint32_t i, k, c;

	for (i = 0; i < 256; i++) {
		c = i;
		for (k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
		crc_tab[0][i] = c;
	}
	for (i = 0; i < 256; i++)
		for (k = 1; k < 8; k++)
			crc_tab[k][i] =
			    (crc_tab[k - 1][i] >> 8) ^ crc_tab[0][crc_tab[k - 1][i] & 0xff];
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint64_t rd64(const uint8_t *p)
{
	return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static void wr32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static void wr16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void wr64(uint8_t *p, uint64_t v)
{
	wr32(p, (uint32_t)v);
	wr32(p + 4, (uint32_t)(v >> 32));
}

uint32_t spool_crc32c(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	pthread_once(&crc_once, crc_init);
	crc = ~crc;
	while (len >= 8) {
		uint32_t lo = crc ^ rd32(p), hi = rd32(p + 4);

		crc = crc_tab[7][lo & 0xff] ^ crc_tab[6][(lo >> 8) & 0xff] ^
		      crc_tab[5][(lo >> 16) & 0xff] ^ crc_tab[4][lo >> 24] ^ crc_tab[3][hi & 0xff] ^
		      crc_tab[2][(hi >> 8) & 0xff] ^ crc_tab[1][(hi >> 16) & 0xff] ^
		      crc_tab[0][hi >> 24];
		p += 8;
		len -= 8;
	}
	while (len--)
		crc = (crc >> 8) ^ crc_tab[0][(crc ^ *p++) & 0xff];
	return ~crc;
}

/* ---- small file helpers ---- */

static void seg_name(char *buf, uint64_t seq)
{
	snprintf(buf, SEG_NAME_LEN + 1, "spool-%020llu.seg", (unsigned long long)seq);
}

/* "spool-<20 digits>.seg" → 0 and *seq; anything else → -1. */
static int seg_parse(const char *name, uint64_t *seq)
{
	uint64_t v = 0;
	size_t i;

	if (strlen(name) != SEG_NAME_LEN || memcmp(name, "spool-", 6) != 0 ||
	    strcmp(name + 26, ".seg") != 0)
		return -1;
	for (i = 6; i < 26; i++) {
		unsigned d = (unsigned)(name[i] - '0');

		if (d > 9 || v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*seq = v;
	return 0;
}

/* mkdir -p with mode 0750 for what it creates. */
static int mkdir_p(const char *path)
{
	char buf[PATH_MAX];
	size_t n = strlen(path), i;

	if (n == 0 || n >= sizeof(buf))
		return n ? -ENAMETOOLONG : -EINVAL;
	memcpy(buf, path, n + 1);
	for (i = 1; i <= n; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		buf[i] = '\0';
		if (mkdir(buf, 0750) != 0 && errno != EEXIST)
			return -errno;
		buf[i] = path[i];
	}
	return 0;
}

static int pread_full(int fd, uint8_t *buf, size_t n, uint64_t off, size_t *got)
{
	*got = 0;
	while (*got < n) {
		ssize_t r = pread(fd, buf + *got, n - *got, (off_t)(off + *got));

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			break;
		*got += (size_t)r;
	}
	return 0;
}

/* Rate-limited: at most one line a minute (appends fail in bursts). */
static void spool_log_error(struct spool *s, const char *what, int err)
{
	uint64_t now = clock_mono_ns();

	if (s->last_log_ns && now - s->last_log_ns < LOG_EVERY)
		return;
	s->last_log_ns = now;
	log_error(SEL, "%s in %s: %s (next report in 1m)", what, s->dir, strerror(-err));
}

/* ---- reading records ---- */

/* Make bytes from `off` (< end) of the read segment available in rbuf: at least
 * `need` of them, or all up to `end`. Keeps what the buffer already holds. Returns
 * the bytes available from off, -EAGAIN when the buffer would have to move and
 * !may_move (a peek does not invalidate the documents it already returned), or a
 * negative errno. */
static long rd_window(struct spool *s, uint64_t off, uint64_t end, size_t need, bool may_move,
		      const uint8_t **p)
{
	size_t have = 0, got;
	uint64_t want;
	int rc;

	if (off >= s->rbase && off - s->rbase <= s->rlen)
		have = s->rlen - (size_t)(off - s->rbase);
	if (have >= need || (have && end - off <= have)) {
		*p = s->rbuf + (off - s->rbase);
		return (long)(end - off < have ? end - off : have);
	}
	if (!may_move)
		return -EAGAIN;
	if (have)
		memmove(s->rbuf, s->rbuf + (off - s->rbase), have);
	s->rbase = off;
	s->rlen = have;
	want = end - off < s->rcap ? end - off : s->rcap;
	rc = pread_full(s->rfd, s->rbuf + have, (size_t)want - have, off + have, &got);
	if (rc < 0) {
		s->rlen = 0;
		return rc;
	}
	s->rlen += got;
	*p = s->rbuf;
	return (long)s->rlen; /* short only when the file is shorter than `end` */
}

/* A plausible header: magic, header CRC, known type, a length that fits both the
 * read buffer and the bytes left in the segment. */
static bool header_ok(const struct spool *s, const uint8_t *p, uint64_t left)
{
	uint32_t len = rd32(p + 4);

	return rd32(p) == REC_MAGIC && rd32(p + 16) == spool_crc32c(0, p, 16) &&
	       rd16(p + 8) == REC_TYPE_DOC && rd16(p + 10) == 0 && len <= s->max_len &&
	       left - HDR >= len;
}

/* The first valid record at or after `off` in [off, end) of the read segment.
 * REC_OK: *r is it, *skipped the bytes before it that are not a record. REC_END:
 * none; *skipped = end - off. -EAGAIN: !may_move and the buffer would have to move
 * (nothing consumed). Another negative errno: a read failed. */
static int next_record(struct spool *s, uint64_t off, uint64_t end, bool may_move, struct rec *r,
		       uint64_t *skipped)
{
	uint64_t cur = off;

	for (;;) {
		const uint8_t *p, *m;
		long n;

		if (end - cur < HDR) {
			*skipped = end - off;
			return REC_END;
		}
		n = rd_window(s, cur, end, HDR, may_move, &p);
		if (n < 0)
			return (int)n;
		if (n < HDR) { /* the file is shorter than `end` */
			*skipped = end - off;
			return REC_END;
		}
		if (header_ok(s, p, end - cur)) {
			uint32_t len = rd32(p + 4);

			n = rd_window(s, cur, end, HDR + (size_t)len, may_move, &p);
			if (n < 0)
				return (int)n;
			if ((size_t)n >= HDR + (size_t)len &&
			    spool_crc32c(0, p + HDR, len) == rd32(p + 12)) {
				r->off = cur;
				r->len = len;
				r->data = p + HDR;
				*skipped = cur - off;
				return REC_OK;
			}
		}
		/* Not a record here: resume at the next magic in the buffer; without one,
		 * keep the last 3 bytes (a magic may straddle the buffer's end). */
		p = s->rbuf + (cur - s->rbase);
		n = (long)(s->rbase + s->rlen - cur);
		m = n > 1 ? memmem(p + 1, (size_t)n - 1, "\xF8HBS", 4) : NULL;
		if (m)
			cur += (uint64_t)(m - p);
		else if (s->rbase + s->rlen >= end)
			cur = end;
		else
			cur = n > 4 ? s->rbase + s->rlen - 3 : cur + 1;
	}
}

/* Point the read buffer at segment seq (for peeks). */
static int rd_switch(struct spool *s, uint64_t seq)
{
	char name[SEG_NAME_LEN + 1];
	int fd;

	if (s->rfd >= 0 && s->rseq == seq)
		return 0;
	seg_name(name, seq);
	fd = openat(s->dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (s->rfd >= 0)
		close(s->rfd);
	s->rfd = fd;
	s->rseq = seq;
	s->rbase = 0;
	s->rlen = 0;
	return 0;
}

static void rd_forget(struct spool *s)
{
	if (s->rfd >= 0)
		close(s->rfd);
	s->rfd = -1;
	s->rlen = 0;
	s->rbase = 0;
}

/* ---- cursor ---- */

static int cursor_write(struct spool *s, uint64_t seq, uint64_t off)
{
	uint8_t b[CUR_SIZE] = {0};
	bool sync = s->o.fsync != SPOOL_FSYNC_NEVER;
	int fd, rc = 0;
	ssize_t w;

	wr32(b, CUR_MAGIC);
	wr32(b + 4, CUR_VERSION);
	wr64(b + 8, seq);
	wr64(b + 16, off);
	wr32(b + 24, spool_crc32c(0, b, 24));
	fd = openat(s->dirfd, "cursor.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0)
		return -errno;
	do
		w = write(fd, b, sizeof(b));
	while (w < 0 && errno == EINTR);
	if (w != (ssize_t)sizeof(b))
		rc = w < 0 ? -errno : -EIO;
	else if (sync && fdatasync(fd) != 0)
		rc = -errno;
	if (close(fd) != 0 && !rc)
		rc = -errno;
	if (!rc && renameat(s->dirfd, "cursor.tmp", s->dirfd, "cursor") != 0)
		rc = -errno;
	if (!rc && sync && fsync(s->dirfd) != 0)
		rc = -errno;
	return rc;
}

/* The ack position of the cursor file; (0, 0) — replay everything — when there is
 * none or it is damaged. */
static void cursor_read(struct spool *s, uint64_t *seq, uint64_t *off)
{
	uint8_t b[CUR_SIZE];
	size_t got = 0;
	int fd = openat(s->dirfd, "cursor", O_RDONLY | O_CLOEXEC);

	*seq = *off = 0;
	if (fd < 0) {
		if (errno != ENOENT)
			log_warn(SEL, "%s/cursor: %s: replaying from the oldest segment", s->dir,
				 strerror(errno));
		return;
	}
	if (pread_full(fd, b, sizeof(b), 0, &got) < 0 || got != sizeof(b) || rd32(b) != CUR_MAGIC ||
	    rd32(b + 4) != CUR_VERSION || rd32(b + 24) != spool_crc32c(0, b, 24))
		log_warn(SEL, "%s/cursor is damaged: replaying from the oldest segment", s->dir);
	else {
		*seq = rd64(b + 8);
		*off = rd64(b + 16);
	}
	close(fd);
}

/* ---- segments ---- */

/* Room for one more entry in segs[] (grows rarely: once per doubling). */
static int segs_reserve(struct spool *s)
{
	size_t cap = s->segs_cap * 2;
	struct seg *n;

	if (s->nsegs < s->segs_cap)
		return 0;
	n = hb_realloc(s->segs, cap * sizeof(*n));
	if (!n)
		return -ENOMEM;
	s->segs = n;
	s->segs_cap = cap;
	return 0;
}

static int segs_push(struct spool *s, uint64_t seq, uint64_t end)
{
	int rc = segs_reserve(s);

	if (rc < 0)
		return rc;
	s->segs[s->nsegs].seq = seq;
	s->segs[s->nsegs].end = end;
	s->nsegs++;
	return 0;
}

static void seg_unlink(struct spool *s, uint64_t seq)
{
	char name[SEG_NAME_LEN + 1];

	if (s->rfd >= 0 && s->rseq == seq)
		rd_forget(s); /* an open descriptor would keep the space allocated */
	seg_name(name, seq);
	if (unlinkat(s->dirfd, name, 0) != 0 && errno != ENOENT)
		log_warn(SEL, "cannot delete %s/%s: %s", s->dir, name, strerror(errno));
}

/* Drop segs[0..k): fully acked. */
static void segs_drop_head(struct spool *s, size_t k)
{
	size_t i;

	for (i = 0; i < k; i++) {
		seg_unlink(s, s->segs[i].seq);
		s->bytes -= s->segs[i].end;
	}
	memmove(s->segs, s->segs + k, (s->nsegs - k) * sizeof(*s->segs));
	s->nsegs -= k;
	metric_set(s->m_bytes, s->bytes);
}

/* Validate segment `seq` (acked before cursor_off when it is the cursor's segment):
 * count records and damage, cut off a torn tail. Adds it to segs[] unless empty. */
static int scan_segment(struct spool *s, uint64_t seq, uint64_t cur_seq, uint64_t cur_off)
{
	char name[SEG_NAME_LEN + 1];
	struct stat sb;
	uint64_t off = 0, skipped, size;
	bool first = true;
	struct rec r;
	int rc, fd;

	seg_name(name, seq);
	fd = openat(s->dirfd, name, O_RDWR | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0 && errno != EISDIR) {
		rc = -errno;
		goto out;
	}
	if (fd >= 0 && fstat(fd, &sb) != 0) {
		rc = -errno;
		goto out;
	}
	if (fd < 0 || !S_ISREG(sb.st_mode)) {
		log_warn(SEL, "ignoring %s/%s: not a regular file", s->dir, name);
		s->st.ignored_files++;
		rc = 0;
		goto out;
	}
	size = (uint64_t)sb.st_size;
	rd_forget(s);
	s->rfd = fd;
	s->rseq = seq;
	for (;;) {
		rc = next_record(s, off, size, true, &r, &skipped);
		if (rc < 0)
			goto out;
		if (rc == REC_END)
			break;
		if (skipped) {
			s->st.corrupt_records++;
			s->st.corrupt_bytes += skipped;
			metric_inc(s->m_corrupt);
			metric_add(s->m_corrupt_bytes, skipped);
		}
		s->st.records++;
		s->st.record_bytes += HDR + (uint64_t)r.len;
		/* The ack position snaps to a record start, the one a peek would find. */
		if (seq != cur_seq || r.off >= cur_off) {
			if (seq == cur_seq && first)
				s->ack_off = r.off;
			first = false;
			s->count++;
		}
		off = r.off + HDR + r.len;
	}
	if (skipped) {
		s->st.torn_tails++;
		s->st.torn_bytes += skipped;
		metric_inc(s->m_torn);
		log_warn(SEL, "%s/%s: cutting off a torn tail of %llu bytes at %llu", s->dir, name,
			 (unsigned long long)skipped, (unsigned long long)off);
		if (ftruncate(fd, (off_t)off) != 0 ||
		    (s->o.fsync != SPOOL_FSYNC_NEVER && fdatasync(fd) != 0)) {
			rc = -errno;
			goto out;
		}
	}
	if (seq == cur_seq && first)
		s->ack_off = off; /* nothing unacked in it */
	rc = 0;
	if (off == 0)
		seg_unlink(s, seq);
	else if ((rc = segs_push(s, seq, off)) == 0)
		s->bytes += off;
out:
	if (fd >= 0 && s->rfd == fd)
		s->rfd = -1;
	if (fd >= 0)
		close(fd);
	s->rlen = 0;
	return rc;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Every segment of the directory, in order; the ack position from the cursor. */
static int load(struct spool *s)
{
	uint64_t cur_seq, cur_off, *seqs = NULL;
	size_t n = 0, cap = 0, i;
	struct dirent *de;
	DIR *d;
	int fd, rc = 0;

	cursor_read(s, &cur_seq, &cur_off);
	fd = dup(s->dirfd);
	if (fd < 0 || !(d = fdopendir(fd))) {
		rc = -errno;
		if (fd >= 0)
			close(fd);
		return rc;
	}
	while ((de = readdir(d))) {
		uint64_t seq;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
		    !strcmp(de->d_name, "cursor") || !strcmp(de->d_name, "spool.lock"))
			continue;
		if (!strcmp(de->d_name, "cursor.tmp")) { /* an interrupted ack */
			unlinkat(s->dirfd, de->d_name, 0);
			continue;
		}
		if (seg_parse(de->d_name, &seq) != 0) {
			log_warn(SEL, "ignoring %s/%s: not a spool file", s->dir, de->d_name);
			s->st.ignored_files++;
			continue;
		}
		if (n == cap) {
			uint64_t *ns = hb_realloc(seqs, (cap ? cap * 2 : 64) * sizeof(*ns));

			if (!ns) {
				rc = -ENOMEM;
				goto out;
			}
			seqs = ns;
			cap = cap ? cap * 2 : 64;
		}
		seqs[n++] = seq;
	}
	if (n)
		qsort(seqs, n, sizeof(*seqs), cmp_u64);
	s->ack_off = 0;
	for (i = 0; i < n && rc == 0; i++) {
		if (seqs[i] < cur_seq)
			seg_unlink(s, seqs[i]); /* acked; its deletion was interrupted */
		else
			rc = scan_segment(s, seqs[i], cur_seq, cur_off);
	}
	if (rc)
		goto out;
	s->next_seq = cur_seq + 1;
	if (s->nsegs && s->segs[s->nsegs - 1].seq >= s->next_seq)
		s->next_seq = s->segs[s->nsegs - 1].seq + 1;
	if (s->nsegs && s->segs[0].seq != cur_seq)
		s->ack_off = 0;
	if (s->nsegs && s->ack_off >= s->segs[0].end) { /* fully acked, sealed */
		segs_drop_head(s, 1);
		s->ack_off = 0;
	}
out:
	closedir(d);
	hb_free(seqs);
	return rc;
}

/* ---- public ---- */

struct spool *spool_open(const char *path, const struct spool_opts *opts, int *err)
{
	struct spool *s = NULL;
	int rc;

	s = hb_calloc(1, sizeof(*s));
	if (!s) {
		rc = -ENOMEM;
		goto err;
	}
	s->dirfd = s->lockfd = s->wfd = s->rfd = -1;
	s->o = *opts;
	if (!s->o.segment_bytes)
		s->o.segment_bytes = SPOOL_DEFAULT_SEGMENT_BYTES;
	if (!s->o.max_bytes)
		s->o.max_bytes = SPOOL_DEFAULT_MAX_BYTES;
	if (!s->o.max_doc_bytes)
		s->o.max_doc_bytes = s->o.segment_bytes - HDR < SPOOL_DEFAULT_MAX_DOC_BYTES
					 ? (uint32_t)(s->o.segment_bytes - HDR)
					 : SPOOL_DEFAULT_MAX_DOC_BYTES;
	if (!s->o.max_batch)
		s->o.max_batch = SPOOL_DEFAULT_MAX_BATCH;
	if (s->o.segment_bytes <= HDR || s->o.max_doc_bytes > s->o.segment_bytes - HDR ||
	    s->o.max_doc_bytes > UINT32_MAX - HDR || (unsigned)s->o.fsync > SPOOL_FSYNC_NEVER) {
		rc = -EINVAL;
		goto err;
	}
	s->rcap = (size_t)s->o.max_doc_bytes + HDR;
	if (s->rcap < READ_BUF_BYTES)
		s->rcap = s->o.segment_bytes < READ_BUF_BYTES ? (size_t)s->o.segment_bytes
							      : READ_BUF_BYTES;
	s->max_len = (uint32_t)(s->rcap - HDR);
	s->dir = hb_strdup(path);
	s->rbuf = hb_malloc(s->rcap);
	s->peeked = hb_calloc(s->o.max_batch, sizeof(*s->peeked));
	s->segs = hb_calloc(SEGS_INITIAL, sizeof(*s->segs));
	s->segs_cap = SEGS_INITIAL; /* no allocation on the first appends */
	if (!s->dir || !s->rbuf || !s->peeked || !s->segs) {
		rc = -ENOMEM;
		goto err;
	}
	s->m_appended = metrics_counter("spool.appended");
	s->m_acked = metrics_counter("spool.acked");
	s->m_bytes = metrics_gauge("spool.bytes");
	s->m_corrupt = metrics_counter("spool.corrupt_records");
	s->m_corrupt_bytes = metrics_counter("spool.corrupt_bytes");
	s->m_torn = metrics_counter("spool.torn_tail_truncations");
	s->m_write_errors = metrics_counter("spool.write_errors");

	if ((rc = mkdir_p(path)) < 0)
		goto err;
	s->dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dirfd < 0) {
		rc = -errno;
		goto err;
	}
	s->lockfd = openat(s->dirfd, "spool.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0640);
	if (s->lockfd < 0) {
		rc = -errno;
		goto err;
	}
	if (flock(s->lockfd, LOCK_EX | LOCK_NB) != 0) {
		rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
		goto err;
	}
	if ((rc = load(s)) < 0)
		goto err;
	metric_set(s->m_bytes, s->bytes);
	if (s->count || s->st.corrupt_records || s->st.torn_tails)
		log_info(SEL,
			 "%s: %llu documents to replay in %zu segments (%llu bytes); "
			 "%llu corrupt regions skipped, %llu torn tails cut",
			 path, (unsigned long long)s->count, s->nsegs, (unsigned long long)s->bytes,
			 (unsigned long long)s->st.corrupt_records,
			 (unsigned long long)s->st.torn_tails);
	return s;
err:
	if (rc != -EINVAL && rc != -ENOMEM)
		log_error(SEL, "cannot open the spool %s: %s", path, strerror(-rc));
	spool_close(s);
	if (err)
		*err = rc;
	return NULL;
}

int spool_sync(struct spool *s)
{
	if (s->wfd < 0 || s->o.fsync == SPOOL_FSYNC_NEVER)
		return 0;
	return fdatasync(s->wfd) == 0 ? 0 : -errno;
}

void spool_close(struct spool *s)
{
	if (!s)
		return;
	if (s->wfd >= 0) {
		int rc = spool_sync(s);

		if (rc < 0)
			log_error(SEL, "fdatasync in %s: %s", s->dir, strerror(-rc));
		close(s->wfd);
	}
	rd_forget(s);
	if (s->lockfd >= 0)
		close(s->lockfd); /* releases the flock */
	if (s->dirfd >= 0)
		close(s->dirfd);
	hb_free(s->segs);
	hb_free(s->peeked);
	hb_free(s->rbuf);
	hb_free(s->dir);
	hb_free(s);
}

/* Seal the segment being written (synced unless fsync never) and start the next. */
static int roll(struct spool *s)
{
	char name[SEG_NAME_LEN + 1];
	int fd, rc;

	if (s->wfd >= 0) {
		rc = spool_sync(s);
		if (rc < 0)
			return rc;
		close(s->wfd);
		s->wfd = -1;
		/* A sealed segment acked up to its end goes now, not at the next ack. */
		if (s->nsegs == 1 && s->ack_off == s->segs[0].end) {
			segs_drop_head(s, 1);
			s->ack_off = 0;
		}
	}
	if ((rc = segs_reserve(s)) < 0)
		return rc; /* before creating the file: nothing to undo */
	seg_name(name, s->next_seq);
	fd = openat(s->dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
	if (fd < 0)
		return -errno;
	if (s->o.fsync != SPOOL_FSYNC_NEVER && fsync(s->dirfd) != 0) {
		rc = -errno;
		close(fd);
		unlinkat(s->dirfd, name, 0);
		return rc;
	}
	if (!s->nsegs)
		s->ack_off = 0;
	segs_push(s, s->next_seq++, 0); /* cannot fail: room was made above */
	s->wfd = fd;
	return 0;
}

int spool_append(struct spool *s, const void *doc, size_t len)
{
	uint8_t h[HDR];
	struct iovec iov[2];
	struct seg *g;
	uint64_t rec = HDR + (uint64_t)len;
	size_t done = 0;
	int rc;

	if (len > s->o.max_doc_bytes)
		return -EMSGSIZE;
	if (s->bytes + rec > s->o.max_bytes)
		return -ENOSPC;
	if (s->wfd < 0 ||
	    (s->segs[s->nsegs - 1].end && s->segs[s->nsegs - 1].end + rec > s->o.segment_bytes)) {
		rc = roll(s);
		if (rc < 0)
			goto fail;
	}
	g = &s->segs[s->nsegs - 1];
	wr32(h, REC_MAGIC);
	wr32(h + 4, (uint32_t)len);
	wr16(h + 8, REC_TYPE_DOC);
	wr16(h + 10, 0);
	wr32(h + 12, spool_crc32c(0, doc, len));
	wr32(h + 16, spool_crc32c(0, h, 16));
	while (done < rec) {
		ssize_t w;

		iov[0].iov_base = h + (done < HDR ? done : HDR);
		iov[0].iov_len = done < HDR ? HDR - done : 0;
		iov[1].iov_base = (uint8_t *)(uintptr_t)doc + (done > HDR ? done - HDR : 0);
		iov[1].iov_len = len - (done > HDR ? done - HDR : 0);
		w = pwritev(s->wfd, iov, 2, (off_t)(g->end + done));
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			rc = w < 0 ? -errno : -EIO;
			goto undo;
		}
		done += (size_t)w;
	}
	if (s->o.fsync == SPOOL_FSYNC_ALWAYS && fdatasync(s->wfd) != 0) {
		rc = -errno;
		goto undo;
	}
	g->end += rec;
	s->bytes += rec;
	s->count++;
	metric_inc(s->m_appended);
	metric_set(s->m_bytes, s->bytes);
	return 0;
undo:
	/* Cut the partial record off; if even that fails, seal the segment at its last
	 * complete record (reads stop at g->end; the next open cuts the tail). */
	if (ftruncate(s->wfd, (off_t)g->end) != 0) {
		close(s->wfd);
		s->wfd = -1;
	}
fail:
	metric_inc(s->m_write_errors);
	spool_log_error(s, "spool write failed", rc);
	return rc == -EDQUOT ? -ENOSPC : rc;
}

long spool_peek(struct spool *s, struct spool_doc *out, size_t n)
{
	uint64_t off = s->ack_off, skipped;
	size_t i = 0, got = 0;
	struct rec r;
	int rc;

	s->npeeked = 0;
	if (n > s->o.max_batch)
		n = s->o.max_batch;
	while (got < n && i < s->nsegs) {
		const struct seg *g = &s->segs[i];

		if (off >= g->end) {
			/* Another segment means another buffer: stop once we hold documents. */
			if (i + 1 == s->nsegs || got)
				break;
			i++;
			off = 0;
			continue;
		}
		if (s->rfd < 0 || s->rseq != g->seq) {
			if (got)
				break;
			if ((rc = rd_switch(s, g->seq)) < 0)
				return rc;
		}
		rc = next_record(s, off, g->end, got == 0, &r, &skipped);
		if (rc == -EAGAIN)
			break;
		if (rc < 0)
			return got ? (long)got : rc;
		if (rc == REC_END) {
			off = g->end;
			continue;
		}
		out[got].data = (const char *)r.data;
		out[got].len = r.len;
		off = r.off + HDR + r.len;
		s->peeked[got].seq = g->seq;
		s->peeked[got].off = off;
		got++;
	}
	s->npeeked = got;
	return (long)got;
}

int spool_ack(struct spool *s, size_t n)
{
	struct peek_pos pos;
	uint64_t seq, off;
	size_t k = 0;
	int rc;

	if (!n)
		return 0;
	if (n > s->npeeked)
		return -EINVAL;
	pos = s->peeked[n - 1];
	while (k < s->nsegs && s->segs[k].seq < pos.seq)
		k++;
	off = k < s->nsegs && s->segs[k].seq == pos.seq ? pos.off : 0;
	/* A sealed segment acked to its end is done. */
	if (k < s->nsegs && off >= s->segs[k].end && !(k == s->nsegs - 1 && s->wfd >= 0)) {
		k++;
		off = 0;
	}
	seq = k < s->nsegs ? s->segs[k].seq : s->next_seq;
	/* The cursor first: a crash before the unlinks leaves acked segments below it. */
	rc = cursor_write(s, seq, off);
	if (rc < 0)
		spool_log_error(s,
				"writing the spool cursor failed (acked documents may be "
				"replayed after a restart)",
				rc);
	segs_drop_head(s, k);
	s->ack_off = off;
	s->count = s->count >= n ? s->count - n : 0;
	metric_add(s->m_acked, n);
	memmove(s->peeked, s->peeked + n, (s->npeeked - n) * sizeof(*s->peeked));
	s->npeeked -= n;
	return rc;
}

uint64_t spool_count(const struct spool *s)
{
	return s->count;
}

uint64_t spool_bytes(const struct spool *s)
{
	return s->bytes;
}

void spool_get_stats(const struct spool *s, struct spool_stats *st)
{
	*st = s->st;
}
