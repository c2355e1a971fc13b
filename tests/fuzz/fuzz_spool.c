/* fuzz_spool.c — libFuzzer harness: arbitrary bytes as a spool segment file.
 *
 * spool_open() must accept every input (corruption never blocks start-up), account
 * for every byte (valid records + corrupt bytes + torn tail = file size), and a full
 * replay must return exactly the records it counted, then leave the spool empty.
 * A second open of the same directory must find the same records and no torn tail.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hostbeat/log.h"
#include "shipper/spool.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64]; /* one scratch directory for the process, emptied per input */

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return ftw->level ? remove(p) : 0; /* keep the directory itself */
}

static void cleanup(void)
{
	nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
	rmdir(dir);
}

static struct spool *open_or_abort(const struct spool_opts *o)
{
	int err = 0;
	struct spool *s = spool_open(dir, o, &err);

	if (!s)
		abort();
	return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Small segments: a 4 KiB read buffer, so refills and resynchronisation across
	 * the buffer's edge are exercised by inputs of any size. */
	struct spool_opts o = {
	    .segment_bytes = 4096, .max_bytes = 1 << 20, .fsync = SPOOL_FSYNC_NEVER};
	struct spool_stats st, st2;
	struct spool_doc out[64];
	char path[128];
	struct stat sb;
	struct spool *s;
	uint64_t docs = 0, bytes = 0, rounds = 0;
	long n;
	int fd;

	if (!dir[0]) {
		snprintf(dir, sizeof(dir), "/tmp/hb_fuzz_spool.XXXXXX");
		if (!mkdtemp(dir))
			abort();
		atexit(cleanup);
		log_init(LOG_LEVEL_ERROR, NULL, true, NULL);
	}
	nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
	snprintf(path, sizeof(path), "%s/spool-00000000000000000001.seg", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, data, size) != (ssize_t)size || close(fd) != 0)
		abort();

	s = open_or_abort(&o);
	spool_get_stats(s, &st);
	if (st.record_bytes + st.corrupt_bytes + st.torn_bytes != size ||
	    spool_count(s) != st.records || st.torn_tails > 1 ||
	    (st.corrupt_records == 0) != (st.corrupt_bytes == 0))
		abort();
	if (stat(path, &sb) == 0 ? (uint64_t)sb.st_size != size - st.torn_bytes
				 : st.record_bytes != 0)
		abort(); /* the torn tail is cut off on disk; an empty segment deleted */
	spool_close(s);

	/* Same records again, nothing left to cut. */
	s = open_or_abort(&o);
	spool_get_stats(s, &st2);
	if (st2.records != st.records || st2.record_bytes != st.record_bytes ||
	    st2.corrupt_bytes != st.corrupt_bytes || st2.torn_tails != 0)
		abort();
	while ((n = spool_peek(s, out, 64)) > 0) {
		long i;

		for (i = 0; i < n; i++)
			bytes += SPOOL_RECORD_HEADER + out[i].len;
		docs += (uint64_t)n;
		if (spool_ack(s, (size_t)n) != 0 || ++rounds > st.records + 2)
			abort(); /* an ack that fails, or a peek that never ends */
	}
	if (n < 0 || docs != st.records || bytes != st.record_bytes || spool_count(s) != 0)
		abort();
	spool_close(s);

	/* Everything was acked: a third open replays nothing. */
	s = open_or_abort(&o);
	if (spool_count(s) != 0 || spool_peek(s, out, 64) != 0)
		abort();
	spool_close(s);
	return 0;
}
