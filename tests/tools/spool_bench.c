/* spool_bench.c — disk spool throughput (issue 5 target: ≥ 50 MB/s each way).
 *
 *   spool_bench [DIR] [MIB] [GROUP] [always|batch|never]
 *
 * Appends 1 KiB documents into a fresh spool under DIR (default /tmp) until MIB
 * MiB (default 256) of documents are stored, calling spool_sync() after every
 * GROUP appends (default 1024: one "append call group" of fsync batch), then
 * peeks and acks everything (each ack writes and fsyncs the cursor), checking
 * every document. Prints MB/s (10^6 bytes of documents per second) for both.
 * The spool directory is removed at the end.
 */
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "hostbeat/log.h"
#include "shipper/spool.h"

#define DOC 1024

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static void fill(char *doc, uint64_t i)
{
	int n = snprintf(doc, DOC, "{\"seq\":%020" PRIu64 ",\"pad\":\"", i);

	memset(doc + n, 'a' + (int)(i % 26), DOC - (size_t)n - 2);
	memcpy(doc + DOC - 2, "\"}", 2);
}

int main(int argc, char **argv)
{
	const char *base = argc > 1 ? argv[1] : "/tmp";
	uint64_t mib = argc > 2 ? strtoull(argv[2], NULL, 10) : 256;
	uint64_t group = argc > 3 ? strtoull(argv[3], NULL, 10) : 1024;
	const char *pol = argc > 4 ? argv[4] : "batch";
	struct spool_opts o = {.max_bytes = 1ULL << 40};
	uint64_t ndocs = (mib << 20) / DOC, i, got = 0, acks = 0;
	struct spool_doc out[SPOOL_DEFAULT_MAX_BATCH];
	char tmpl[4096], doc[DOC];
	double t0, t_app, t_rep;
	struct spool *s;
	int err = 0;
	long n;

	if (!group)
		group = 1;
	o.fsync = !strcmp(pol, "always")  ? SPOOL_FSYNC_ALWAYS
		  : !strcmp(pol, "never") ? SPOOL_FSYNC_NEVER
					  : SPOOL_FSYNC_BATCH;
	snprintf(tmpl, sizeof(tmpl), "%s/hb_spool_bench.XXXXXX", base);
	if (!mkdtemp(tmpl)) {
		perror(tmpl);
		return 2;
	}
	log_init(LOG_LEVEL_WARN, NULL, true, NULL);
	s = spool_open(tmpl, &o, &err);
	if (!s)
		return 2;

	t0 = now_s();
	for (i = 0; i < ndocs; i++) {
		fill(doc, i);
		if ((err = spool_append(s, doc, DOC)) != 0) {
			fprintf(stderr, "append %" PRIu64 ": %s\n", i, strerror(-err));
			return 1;
		}
		if ((i + 1) % group == 0 && spool_sync(s) != 0)
			return 1;
	}
	if (spool_sync(s) != 0)
		return 1;
	t_app = now_s() - t0;

	t0 = now_s();
	while ((n = spool_peek(s, out, SPOOL_DEFAULT_MAX_BATCH)) > 0) {
		long k;

		for (k = 0; k < n; k++, got++) {
			fill(doc, got);
			if (out[k].len != DOC || memcmp(out[k].data, doc, DOC) != 0) {
				fprintf(stderr, "document %" PRIu64 " differs\n", got);
				return 1;
			}
		}
		if (spool_ack(s, (size_t)n) != 0)
			return 1;
		acks++;
	}
	t_rep = now_s() - t0;
	if (n < 0 || got != ndocs || spool_count(s) != 0) {
		fprintf(stderr, "replayed %" PRIu64 " of %" PRIu64 "\n", got, ndocs);
		return 1;
	}
	spool_close(s);
	nftw(tmpl, rm_one, 8, FTW_DEPTH | FTW_PHYS);

	printf("spool_bench: %" PRIu64 " docs x %d B, fsync=%s, sync every %" PRIu64
	       " appends, %" PRIu64 " acks\n",
	       ndocs, DOC, pol, group, acks);
	printf("  write:  %.2f s  %.1f MB/s\n", t_app, (double)ndocs * DOC / 1e6 / t_app);
	printf("  replay: %.2f s  %.1f MB/s (peek + verify + ack)\n", t_rep,
	       (double)ndocs * DOC / 1e6 / t_rep);
	return 0;
}
