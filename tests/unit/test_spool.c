/* test_spool.c — shipper/spool.c: order across segments, restart, torn tails at every
 * byte, corrupt records, max_bytes, kill -9 of a writer, directory errors, CRC32C. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hostbeat/log.h"
#include "hostbeat/mem.h"
#include "hostbeat/metrics.h"
#include "shipper/spool.h"

#define HDR SPOOL_RECORD_HEADER

struct fx {
	char tmp[64];
	char dir[96]; /* the spool directory: created by spool_open() */
	struct spool_opts o;
};

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->tmp, sizeof(f->tmp), "/tmp/hb_spool.XXXXXX");
	assert_non_null(mkdtemp(f->tmp));
	snprintf(f->dir, sizeof(f->dir), "%s/spool", f->tmp);
	f->o.segment_bytes = 4096;
	f->o.max_doc_bytes = 1024;
	f->o.max_bytes = 1 << 20;
	f->o.fsync = SPOOL_FSYNC_NEVER;
	metrics_reset();
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	mem_fail_reset();
	nftw(f->tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

/* Document i: JSON of a length that varies with i (17 .. 316 bytes). */
static size_t make_doc(unsigned i, char *buf)
{
	size_t pad = (i * 37u) % 300, n;

	n = (size_t)sprintf(buf, "{\"i\":%08u,\"p\":\"", i);
	memset(buf + n, 'a' + (int)(i % 26), pad);
	n += pad;
	memcpy(buf + n, "\"}", 2);
	return n + 2;
}

static struct spool *open_ok(const struct fx *f)
{
	int err = 0;
	struct spool *s = spool_open(f->dir, &f->o, &err);

	assert_non_null(s);
	assert_int_equal(err, 0);
	return s;
}

static void append_range(struct spool *s, unsigned from, unsigned to)
{
	char doc[512];
	unsigned i;

	for (i = from; i < to; i++)
		assert_int_equal(spool_append(s, doc, make_doc(i, doc)), 0);
}

/* Peek (at most `batch` at a time) and ack everything; the documents must be
 * from, from + 1, … to - 1, each exactly once. */
static void replay_expect(struct spool *s, unsigned from, unsigned to, size_t batch)
{
	struct spool_doc out[64];
	char want[512];
	unsigned next = from;

	assert_true(batch <= 64);
	for (;;) {
		long n = spool_peek(s, out, batch);
		long i;

		assert_true(n >= 0);
		if (n == 0)
			break;
		for (i = 0; i < n; i++, next++) {
			size_t wl = make_doc(next, want);

			assert_true(next < to);
			assert_int_equal(out[i].len, wl);
			assert_memory_equal(out[i].data, want, wl);
		}
		assert_int_equal(spool_ack(s, (size_t)n), 0);
		assert_int_equal(spool_count(s), to - next);
	}
	assert_int_equal(next, to);
	assert_int_equal(spool_count(s), 0);
}

/* Segment files in the spool directory. */
static unsigned count_segments(const struct fx *f)
{
	DIR *d = opendir(f->dir);
	struct dirent *de;
	unsigned n = 0;

	assert_non_null(d);
	while ((de = readdir(d)))
		n += strncmp(de->d_name, "spool-", 6) == 0;
	closedir(d);
	return n;
}

static void seg_path(const struct fx *f, uint64_t seq, char *buf, size_t size)
{
	snprintf(buf, size, "%s/spool-%020llu.seg", f->dir, (unsigned long long)seq);
}

static long file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static size_t read_all(const char *path, char *buf, size_t size)
{
	FILE *fp = fopen(path, "rb");
	size_t n;

	assert_non_null(fp);
	n = fread(buf, 1, size, fp);
	fclose(fp);
	return n;
}

static void write_all(const char *path, const char *buf, size_t n)
{
	FILE *fp = fopen(path, "wb");

	assert_non_null(fp);
	assert_int_equal(fwrite(buf, 1, n, fp), n);
	assert_int_equal(fclose(fp), 0);
}

/* RFC 3720 B.4 test vectors, "123456789", chaining at every split. */
static void test_crc32c_vectors(void **state)
{
	uint8_t b[48];
	static const uint8_t pdu[48] = {0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
					0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00,
					0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00,
					0x00, 0x18, 0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
					0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
	int i;

	(void)state;
	memset(b, 0, 32);
	assert_int_equal(spool_crc32c(0, b, 32), 0x8A9136AA);
	memset(b, 0xff, 32);
	assert_int_equal(spool_crc32c(0, b, 32), 0x62A8AB43);
	for (i = 0; i < 32; i++)
		b[i] = (uint8_t)i;
	assert_int_equal(spool_crc32c(0, b, 32), 0x46DD794E);
	for (i = 0; i < 32; i++)
		b[i] = (uint8_t)(31 - i);
	assert_int_equal(spool_crc32c(0, b, 32), 0x113FDB5C);
	assert_int_equal(spool_crc32c(0, pdu, 48), 0xD9963A56);
	assert_int_equal(spool_crc32c(0, "123456789", 9), 0xE3069283);
	assert_int_equal(spool_crc32c(0, "", 0), 0);
	for (i = 0; i <= 48; i++)
		assert_int_equal(
		    spool_crc32c(spool_crc32c(0, pdu, (size_t)i), pdu + i, (size_t)(48 - i)),
		    0xD9963A56);
}

/* Many small segments: order, counts, bytes, fully acked segments deleted. */
static void test_order_across_segments(void **state)
{
	struct fx *f = *state;
	struct spool *s = open_ok(f);
	struct spool_doc out[8];
	char want[512];
	uint64_t bytes = 0;
	unsigned i;

	for (i = 0; i < 300; i++) {
		char doc[512];
		size_t n = make_doc(i, doc);

		assert_int_equal(spool_append(s, doc, n), 0);
		bytes += HDR + n;
	}
	assert_int_equal(spool_count(s), 300);
	assert_int_equal(spool_bytes(s), bytes);
	assert_true(count_segments(f) > 10);
	assert_int_equal(metrics_get("spool.appended"), 300);
	assert_int_equal(metrics_get("spool.bytes"), bytes);

	/* A peek without an ack returns the same documents again. */
	assert_int_equal(spool_peek(s, out, 3), 3);
	assert_int_equal(spool_peek(s, out, 3), 3);
	make_doc(0, want);
	assert_memory_equal(out[0].data, want, out[0].len);
	/* Acking part of a peek, then the rest. */
	assert_int_equal(spool_ack(s, 4), -EINVAL);
	assert_int_equal(spool_ack(s, 1), 0);
	assert_int_equal(spool_ack(s, 2), 0);
	assert_int_equal(spool_ack(s, 1), -EINVAL);
	assert_int_equal(spool_count(s), 297);
	replay_expect(s, 3, 300, 7);
	assert_int_equal(metrics_get("spool.acked"), 300);
	/* Only the segment still being written remains. */
	assert_int_equal(count_segments(f), 1);
	assert_true(spool_bytes(s) <= f->o.segment_bytes);
	/* And appending continues after a full drain. */
	append_range(s, 300, 340);
	replay_expect(s, 300, 340, 64);
	spool_close(s);
}

/* close + reopen resumes right after the last ack, even after partial acks. */
static void test_restart_resumes_after_ack(void **state)
{
	struct fx *f = *state;
	struct spool_doc out[16];
	struct spool *s = open_ok(f);
	unsigned acked = 0;

	append_range(s, 0, 200);
	while (acked < 77) {
		long n = spool_peek(s, out, 16);
		size_t k = (size_t)n < 77 - acked ? (size_t)n : 77 - acked;

		assert_true(n > 0);
		assert_int_equal(spool_ack(s, k), 0);
		acked += (unsigned)k;
	}
	spool_close(s);

	s = open_ok(f);
	assert_int_equal(spool_count(s), 123);
	append_range(s, 200, 230); /* goes into a new segment after the old ones */
	spool_close(s);

	s = open_ok(f);
	assert_int_equal(spool_count(s), 153);
	replay_expect(s, 77, 230, 5);
	spool_close(s);

	/* Everything acked: nothing replays, the old segments are gone. */
	s = open_ok(f);
	assert_int_equal(spool_count(s), 0);
	assert_int_equal(spool_peek(s, out, 16), 0);
	spool_close(s);
	assert_true(count_segments(f) <= 1);
}

/* Simulated kill -9: the last segment cut at every byte offset of its last record. */
static void test_torn_tail_every_offset(void **state)
{
	struct fx *f = *state;
	static char orig[8192], path[256];
	struct spool_stats st;
	struct spool *s;
	char doc[512];
	size_t size, last_len, start, cut;

	f->o.segment_bytes = 8192;
	s = open_ok(f);
	append_range(s, 0, 10);
	spool_close(s);
	seg_path(f, 1, path, sizeof(path));
	size = read_all(path, orig, sizeof(orig));
	last_len = make_doc(9, doc);
	start = size - HDR - last_len;
	for (cut = start; cut < size; cut++) {
		struct spool_doc out[16];
		long n = 0, got;

		/* A fresh directory holding only the cut segment. */
		nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
		assert_int_equal(mkdir(f->dir, 0700), 0);
		write_all(path, orig, cut);
		metrics_reset();
		s = open_ok(f);
		spool_get_stats(s, &st);
		assert_int_equal(spool_count(s), 9);
		assert_int_equal(st.records, 9);
		assert_int_equal(st.torn_tails, cut > start);
		assert_int_equal(st.torn_bytes, cut - start);
		assert_int_equal(st.corrupt_records, 0);
		assert_int_equal(metrics_get("spool.torn_tail_truncations"), cut > start);
		assert_int_equal(file_size(path), (long)start); /* cut off on disk */
		while ((got = spool_peek(s, out, 16)) > 0) {
			long i;

			for (i = 0; i < got; i++) {
				size_t wl = make_doc((unsigned)(n + i), doc);

				assert_int_equal(out[i].len, wl);
				assert_memory_equal(out[i].data, doc, wl);
			}
			n += got;
			assert_int_equal(spool_ack(s, (size_t)got), 0);
		}
		assert_int_equal(n, 9);
		spool_close(s);
	}
}

/* One byte flipped anywhere in a middle record: that record is skipped and counted,
 * every other record survives, every byte is accounted for. */
static void test_corrupt_middle_record(void **state)
{
	struct fx *f = *state;
	static char orig[8192], bad[8192], path[256];
	struct spool_stats st;
	struct spool *s;
	char doc[512];
	size_t size, off = 0, len5, i;
	unsigned k;

	f->o.segment_bytes = 8192;
	s = open_ok(f);
	append_range(s, 0, 10);
	spool_close(s);
	seg_path(f, 1, path, sizeof(path));
	size = read_all(path, orig, sizeof(orig));
	for (k = 0; k < 5; k++)
		off += HDR + make_doc(k, doc);
	len5 = HDR + make_doc(5, doc);
	for (i = off; i < off + len5; i++) {
		struct spool_doc out[16];
		char want[512];
		unsigned next = 0;
		long n, j;

		memcpy(bad, orig, size);
		bad[i] ^= 0x5a;
		write_all(path, bad, size);
		metrics_reset();
		s = open_ok(f);
		spool_get_stats(s, &st);
		assert_int_equal(spool_count(s), 9);
		assert_int_equal(st.corrupt_records, 1);
		assert_int_equal(st.corrupt_bytes, len5);
		assert_int_equal(st.torn_tails, 0);
		assert_int_equal(st.record_bytes + st.corrupt_bytes + st.torn_bytes, size);
		assert_int_equal(metrics_get("spool.corrupt_records"), 1);
		while ((n = spool_peek(s, out, 16)) > 0) {
			for (j = 0; j < n; j++, next++) {
				size_t wl;

				if (next == 5)
					next++;
				wl = make_doc(next, want);
				assert_int_equal(out[j].len, wl);
				assert_memory_equal(out[j].data, want, wl);
			}
			/* Ack nothing: the file must stay as it is for the next byte. */
			break;
		}
		assert_int_equal(n, 9);
		spool_close(s);
		assert_int_equal(file_size(path), (long)size); /* never cut in the middle */
	}
}

/* -ENOSPC exactly when a record would pass max_bytes; -EMSGSIZE above max_doc. */
static void test_max_bytes_boundary(void **state)
{
	struct fx *f = *state;
	struct spool_doc out[8];
	char doc[1100];
	struct spool *s;
	size_t rec = HDR + 100;
	int i;

	memset(doc, 'x', sizeof(doc));
	f->o.segment_bytes = 2 * rec;
	f->o.max_doc_bytes = 2 * rec - HDR;
	f->o.max_bytes = 5 * rec + HDR + 3;
	s = open_ok(f);
	for (i = 0; i < 5; i++)
		assert_int_equal(spool_append(s, doc, 100), 0);
	assert_int_equal(spool_bytes(s), 5 * rec);
	assert_int_equal(spool_append(s, doc, 100), -ENOSPC);
	assert_int_equal(spool_append(s, doc, 4), -ENOSPC);
	assert_int_equal(spool_append(s, doc, 3), 0); /* exactly max_bytes */
	assert_int_equal(spool_bytes(s), f->o.max_bytes);
	assert_int_equal(spool_append(s, doc, 0), -ENOSPC);
	assert_int_equal(spool_count(s), 6);
	assert_int_equal(spool_append(s, doc, f->o.max_doc_bytes + 1), -EMSGSIZE);
	assert_int_equal(metrics_get("spool.appended"), 6);
	assert_int_equal(metrics_get("spool.write_errors"), 0);
	/* Acking the first segment (2 records) frees its bytes. */
	assert_int_equal(spool_peek(s, out, 2), 2);
	assert_int_equal(spool_ack(s, 2), 0);
	assert_int_equal(spool_bytes(s), f->o.max_bytes - 2 * rec);
	assert_int_equal(spool_append(s, doc, 100), 0);
	assert_int_equal(spool_append(s, doc, 100), 0);
	assert_int_equal(spool_append(s, doc, 0), -ENOSPC);
	spool_close(s);

	/* A document of exactly max_doc_bytes fits (in a segment of its own). */
	f->o.max_bytes = 1 << 20;
	s = open_ok(f);
	assert_int_equal(spool_append(s, doc, f->o.max_doc_bytes), 0);
	assert_int_equal(spool_count(s), 7);
	spool_close(s);
}

/* A write that fails half-way (RLIMIT_FSIZE → EFBIG) is cut off again: no garbage,
 * nothing else lost, later appends fine. */
static void test_failed_write_is_undone(void **state)
{
	struct fx *f = *state;
	struct rlimit old, lim;
	struct spool_stats st;
	struct spool *s;
	char doc[512], path[256];
	size_t n = make_doc(7, doc);
	long size;

	s = open_ok(f);
	append_range(s, 0, 3);
	seg_path(f, 1, path, sizeof(path));
	size = file_size(path);
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = (rlim_t)size + HDR + 5; /* the next record is written in part */
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	assert_int_equal(spool_append(s, doc, n), -EFBIG);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, SIG_DFL);
	assert_int_equal(file_size(path), size);
	assert_int_equal(spool_count(s), 3);
	assert_int_equal(metrics_get("spool.write_errors"), 1);
	append_range(s, 3, 6);
	spool_close(s);
	s = open_ok(f);
	spool_get_stats(s, &st);
	assert_int_equal(st.corrupt_records + st.torn_tails, 0);
	replay_expect(s, 0, 6, 4);
	spool_close(s);
}

static void report(int fd, char what, unsigned v)
{
	unsigned char m[5] = {(unsigned char)what, (unsigned char)v, (unsigned char)(v >> 8),
			      (unsigned char)(v >> 16), (unsigned char)(v >> 24)};

	if (write(fd, m, 5) != 5)
		_exit(4);
}

static void child_writer(const struct fx *f, int fd)
{
	struct spool_doc out[50];
	int err;
	struct spool *s = spool_open(f->dir, &f->o, &err);
	unsigned i, acked = 0;
	char doc[512];

	if (!s)
		_exit(2);
	for (i = 0;; i++) {
		if (spool_append(s, doc, make_doc(i, doc)) != 0)
			_exit(3);
		report(fd, 'A', i); /* appended: survives the kill (written to the kernel) */
		if (i % 50 == 49) {
			long n = spool_peek(s, out, 50);

			if (n <= 0 || spool_ack(s, (size_t)n) != 0)
				_exit(5);
			acked += (unsigned)n;
			report(fd, 'K', acked);
		}
	}
}

/* A writer killed with SIGKILL at a random moment: after reopening, the documents
 * are exactly first..last in order with first = the last reported ack (or the one
 * in flight) and last >= the last reported append; no garbage, no corrupt record. */
static void test_kill9_prefix(void **state)
{
	struct fx *f = *state;
	unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
	long total_appended = 0, total_acked = 0, torn = 0;
	int round;

	print_message("kill -9 seed %u\n", seed);
	srand(seed);
	for (round = 0; round < 12; round++) {
		struct spool_doc out[64];
		struct spool_stats st;
		long appended, acked, n, first = -1, next = -1;
		int p[2], status;
		struct spool *s;
		pid_t pid;

		f->o.fsync = round % 3 == 0   ? SPOOL_FSYNC_ALWAYS
			     : round % 3 == 1 ? SPOOL_FSYNC_BATCH
					      : SPOOL_FSYNC_NEVER;
		assert_int_equal(pipe(p), 0);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			close(p[0]);
			child_writer(f, p[1]);
		}
		close(p[1]);
		fcntl(p[0], F_SETFL, O_NONBLOCK);
		{
			/* Keep the pipe drained while the child runs. */
			struct timespec t0, t;
			long budget_us = 1000 + rand() % 40000;
			unsigned char sink[4096];
			static unsigned char keep[1 << 22];
			size_t kept = 0;
			ssize_t r;

			clock_gettime(CLOCK_MONOTONIC, &t0);
			do {
				r = read(p[0], sink, sizeof(sink));
				if (r > 0 && kept + (size_t)r <= sizeof(keep)) {
					memcpy(keep + kept, sink, (size_t)r);
					kept += (size_t)r;
				}
				clock_gettime(CLOCK_MONOTONIC, &t);
			} while ((t.tv_sec - t0.tv_sec) * 1000000L +
				     (t.tv_nsec - t0.tv_nsec) / 1000 <
				 budget_us);
			kill(pid, SIGKILL);
			assert_int_equal(waitpid(pid, &status, 0), pid);
			assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
			fcntl(p[0], F_SETFL, 0);
			while ((r = read(p[0], sink, sizeof(sink))) > 0)
				if (kept + (size_t)r <= sizeof(keep)) {
					memcpy(keep + kept, sink, (size_t)r);
					kept += (size_t)r;
				}
			close(p[0]);
			assert_true(kept < sizeof(keep));
			assert_int_equal(kept % 5, 0);
			/* Re-read the kept reports through a pipe-free parse. */
			appended = -1;
			acked = 0;
			for (size_t i = 0; i < kept; i += 5) {
				long v = (long)(keep[i + 1] | keep[i + 2] << 8 | keep[i + 3] << 16 |
						(unsigned long)keep[i + 4] << 24);

				if (keep[i] == 'A')
					appended = v;
				else
					acked = v;
			}
		}
		s = open_ok(f);
		spool_get_stats(s, &st);
		assert_int_equal(st.corrupt_records, 0);
		assert_true(st.torn_tails <= 1);
		while ((n = spool_peek(s, out, 64)) > 0) {
			long i;

			for (i = 0; i < n; i++) {
				char want[512];
				size_t wl;

				if (first < 0)
					first = next = (long)strtol(out[i].data + 5, NULL, 10);
				wl = make_doc((unsigned)next, want);
				assert_int_equal(out[i].len, wl);
				assert_memory_equal(out[i].data, want, wl);
				next++;
			}
			assert_int_equal(spool_ack(s, (size_t)n), 0);
		}
		assert_true(n == 0);
		if (first < 0) /* everything appended was acked */
			first = next = acked;
		/* The resume point: the last reported ack, or the ack in flight (≤ 50). */
		assert_true(first >= acked && first <= acked + 50);
		/* Every reported append is there; at most one more (not yet reported). */
		assert_true(next - 1 >= appended && next - 1 <= appended + 1);
		total_appended += appended + 1;
		total_acked += acked;
		torn += st.torn_tails;
		spool_close(s);
		nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	}
	print_message("kill -9: %ld appended, %ld acked, %ld torn tails in 12 rounds\n",
		      total_appended, total_acked, torn);
	assert_true(total_acked > 0); /* the kills landed in a busy writer */
}

/* A cursor file (valid CRC) pointing inside a record, or past the end of a segment
 * that lost its tail: replay starts at the next whole record. */
static void write_cursor(const struct fx *f, uint64_t seq, uint64_t off)
{
	unsigned char b[32] = {0xF8, 'H', 'B', 'C', 1};
	uint32_t crc;
	char p[256];
	int i;

	for (i = 0; i < 8; i++) {
		b[8 + i] = (unsigned char)(seq >> (8 * i));
		b[16 + i] = (unsigned char)(off >> (8 * i));
	}
	crc = spool_crc32c(0, b, 24);
	for (i = 0; i < 4; i++)
		b[24 + i] = (unsigned char)(crc >> (8 * i));
	snprintf(p, sizeof(p), "%s/cursor", f->dir);
	write_all(p, (const char *)b, sizeof(b));
}

static void test_cursor_snaps_to_record(void **state)
{
	struct fx *f = *state;
	struct spool *s;
	char doc[512];
	uint64_t off = 0;
	unsigned k;

	f->o.segment_bytes = 8192;
	s = open_ok(f);
	append_range(s, 0, 10);
	spool_close(s);
	for (k = 0; k < 3; k++)
		off += HDR + make_doc(k, doc);
	write_cursor(f, 1, off + 5); /* inside record 3 */
	s = open_ok(f);
	assert_int_equal(spool_count(s), 6);
	spool_close(s);
	write_cursor(f, 1, off); /* at record 3 */
	s = open_ok(f);
	assert_int_equal(spool_count(s), 7);
	replay_expect(s, 3, 10, 4);
	spool_close(s);

	/* Past the end: all acked; the segment is deleted, new ones sort above it. */
	s = open_ok(f);
	append_range(s, 10, 15);
	spool_close(s);
	/* The full ack above wrote the cursor (2, 0), so the new segment is 3. */
	seg_path(f, 3, doc, sizeof(doc));
	assert_true(file_size(doc) > 0);
	write_cursor(f, 3, 1 << 20);
	s = open_ok(f);
	assert_int_equal(spool_count(s), 0);
	append_range(s, 15, 18);
	spool_close(s);
	s = open_ok(f);
	assert_int_equal(spool_count(s), 3);
	replay_expect(s, 15, 18, 4);
	spool_close(s);
}

/* Once open, appends, segment rolls, peeks and acks allocate nothing. */
static void test_no_allocation_when_warm(void **state)
{
	struct fx *f = *state;
	struct spool *s = open_ok(f);

	mem_fail_after(0);       /* every hb_malloc/hb_calloc/hb_realloc fails from here */
	append_range(s, 0, 200); /* ~9 segments: within the segment table */
	replay_expect(s, 0, 200, 16);
	append_range(s, 200, 210);
	mem_fail_reset();
	replay_expect(s, 200, 210, 16);
	spool_close(s);
}

/* Empty directory, missing directory tree, a file where the directory should be,
 * a second opener, bad options, a foreign file, a damaged cursor. */
static void test_directory_cases(void **state)
{
	struct fx *f = *state;
	struct spool_stats st;
	struct spool_opts bad;
	struct spool *s, *s2;
	char p[256];
	struct stat sb;
	int err = 0;

	/* Missing: created (with parents), mode 0750. */
	snprintf(f->dir, sizeof(f->dir), "%s/a/b/spool", f->tmp);
	s = open_ok(f);
	assert_int_equal(stat(f->dir, &sb), 0);
	assert_true(S_ISDIR(sb.st_mode));
	assert_int_equal(sb.st_mode & 0777, 0750);
	assert_int_equal(spool_count(s), 0);
	assert_int_equal(spool_bytes(s), 0);
	/* Locked by the first opener. */
	s2 = spool_open(f->dir, &f->o, &err);
	assert_null(s2);
	assert_int_equal(err, -EBUSY);
	spool_close(s);

	/* Empty, existing. */
	snprintf(f->dir, sizeof(f->dir), "%s/empty", f->tmp);
	assert_int_equal(mkdir(f->dir, 0700), 0);
	s = open_ok(f);
	assert_int_equal(spool_peek(s, NULL, 0), 0);
	spool_close(s);

	/* A file where the directory should be (root can write anywhere else). */
	snprintf(f->dir, sizeof(f->dir), "%s/file", f->tmp);
	write_all(f->dir, "x", 1);
	assert_null(spool_open(f->dir, &f->o, &err));
	assert_int_equal(err, -ENOTDIR);
	snprintf(f->dir, sizeof(f->dir), "%s/file/sub", f->tmp);
	err = 0;
	assert_null(spool_open(f->dir, &f->o, &err));
	assert_int_equal(err, -ENOTDIR);

	/* Bad options. */
	snprintf(f->dir, sizeof(f->dir), "%s/opts", f->tmp);
	bad = f->o;
	bad.max_doc_bytes = (uint32_t)bad.segment_bytes; /* + header > segment */
	err = 0;
	assert_null(spool_open(f->dir, &bad, &err));
	assert_int_equal(err, -EINVAL);
	bad = f->o;
	bad.segment_bytes = HDR;
	bad.max_doc_bytes = 0;
	err = 0;
	assert_null(spool_open(f->dir, &bad, &err));
	assert_int_equal(err, -EINVAL);

	/* Foreign files are left alone; a damaged cursor replays everything. */
	snprintf(f->dir, sizeof(f->dir), "%s/mixed", f->tmp);
	s = open_ok(f);
	append_range(s, 0, 20);
	{
		struct spool_doc out[8];

		assert_int_equal(spool_peek(s, out, 8), 8);
		assert_int_equal(spool_ack(s, 8), 0);
	}
	spool_close(s);
	snprintf(p, sizeof(p), "%s/notes.txt", f->dir);
	write_all(p, "hello", 5);
	snprintf(p, sizeof(p), "%s/spool-1.seg", f->dir);
	write_all(p, "junk", 4);
	s = open_ok(f);
	spool_get_stats(s, &st);
	assert_int_equal(st.ignored_files, 2);
	assert_int_equal(spool_count(s), 12);
	spool_close(s);
	assert_int_equal(file_size(p), 4);
	snprintf(p, sizeof(p), "%s/cursor", f->dir);
	write_all(p, "not a cursor", 12);
	s = open_ok(f);
	assert_int_equal(spool_count(s), 20);
	replay_expect(s, 0, 20, 8);
	spool_close(s);
}

/* Defaults and batch/always policies work end to end. */
static void test_fsync_policies(void **state)
{
	struct fx *f = *state;
	enum spool_fsync pol[] = {SPOOL_FSYNC_ALWAYS, SPOOL_FSYNC_BATCH, SPOOL_FSYNC_NEVER};
	size_t i;

	for (i = 0; i < 3; i++) {
		struct spool *s;

		f->o.fsync = pol[i];
		s = open_ok(f);
		append_range(s, 0, 40);
		assert_int_equal(spool_sync(s), 0);
		spool_close(s);
		s = open_ok(f);
		replay_expect(s, 0, 40, 16);
		spool_close(s);
	}
	/* All defaults. */
	{
		struct spool_opts def = {0};
		int err;
		struct spool *s = spool_open(f->dir, &def, &err);

		assert_non_null(s);
		append_range(s, 0, 10);
		replay_expect(s, 0, 10, 3);
		spool_close(s);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_crc32c_vectors),
	    cmocka_unit_test_setup_teardown(test_order_across_segments, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_restart_resumes_after_ack, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_torn_tail_every_offset, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_corrupt_middle_record, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_max_bytes_boundary, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_failed_write_is_undone, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_kill9_prefix, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cursor_snaps_to_record, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_no_allocation_when_warm, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_directory_cases, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_fsync_policies, setup, teardown),
	};

	log_init(LOG_LEVEL_ERROR, NULL, true, NULL);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
