/* test_pcapfile.c — net/pcapfile.c against libpcap itself.
 *
 * Every file here is written by the test (both magics, both byte orders, old versions,
 * records of 0 and snaplen bytes, truncated headers and bodies, hostile capture
 * lengths) or taken from the pcap corpora, then read twice: with pcapfile and with
 * pcap_open_offline_with_tstamp_precision(NANO) + pcap_next_ex. Every record must have
 * the same header and bytes, the count must match, and both must stop at the same
 * record, cleanly or with an error. Files pcapfile refuses (pcapng, fifos, ...) must be
 * refused at open so capture.c can hand them to libpcap.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <pcap/pcap.h>

#include "hostbeat/mem.h"
#include "hostbeat/pcapfile.h"

#define CORPUS_DIR "tests/fuzz/corpus/pcap"
#define SEEDS_DIR "tests/fuzz/corpus/pcapfile" /* fuzz_pcapfile's: bad files too */
#define SHARED_DIR "/work/shared/pcaps/beats"
#define MAGIC_USEC 0xa1b2c3d4u
#define MAGIC_NSEC 0xa1b23c4du
#define MAGIC_KUZNETZOV 0xa1b2cd34u
#define LT_EN10MB 1
#define LT_LINUX_SLL 113
#define LT_USB_LINUX_MMAPPED 220
#define HOST_BE (__BYTE_ORDER__ == __ORDER_BIG_ENDIAN__)

/* ---- writing files ----------------------------------------------------------- */

static struct {
	uint8_t b[1 << 20];
	size_t n;
	bool be; /* byte order of the file being written */
} w;

static char path[64];

static void put(const void *p, size_t n)
{
	assert_true(sizeof(w.b) - w.n >= n);
	memcpy(w.b + w.n, p, n);
	w.n += n;
}

static void put16(uint16_t v)
{
	uint8_t b[2] = {(uint8_t)(w.be ? v >> 8 : v), (uint8_t)(w.be ? v : v >> 8)};

	put(b, 2);
}

static void put32(uint32_t v)
{
	uint8_t b[4];
	int i;

	for (i = 0; i < 4; i++)
		b[w.be ? 3 - i : i] = (uint8_t)(v >> (8 * i));
	put(b, 4);
}

static void file_header(uint32_t magic, bool be, uint16_t major, uint16_t minor, uint32_t snaplen,
			uint32_t linktype)
{
	w.n = 0;
	w.be = be;
	put32(magic);
	put16(major);
	put16(minor);
	put32(0); /* thiszone */
	put32(0); /* sigfigs */
	put32(snaplen);
	put32(linktype);
}

/* A record header with fields in file order, then `body` bytes of a pattern that
 * differs per record (body < the capture length makes a truncated record). */
static void record(uint32_t sec, uint32_t frac, uint32_t len1, uint32_t len2, size_t body)
{
	static uint8_t seq;
	size_t i;
	uint8_t b;

	put32(sec);
	put32(frac);
	put32(len1);
	put32(len2);
	seq++;
	for (i = 0; i < body; i++) {
		b = (uint8_t)(i * 31 + seq);
		put(&b, 1);
	}
}

/* Write w to the test's scratch file; returns its path. */
static const char *write_file(void)
{
	int fd;

	snprintf(path, sizeof(path), "/tmp/hb_test_pcapfile.XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, w.b, w.n), (ssize_t)w.n);
	assert_int_equal(close(fd), 0);
	return path;
}

static int teardown(void **state)
{
	(void)state;
	if (path[0])
		unlink(path);
	path[0] = '\0';
	mem_fail_reset();
	return 0;
}

/* ---- reading them both ways ------------------------------------------------------ */

static int open_reader(const char *p, struct pcapfile **pf)
{
	int fd = open(p, O_RDONLY);
	int rc;

	assert_true(fd >= 0);
	rc = pcapfile_open(fd, pf);
	close(fd); /* the mapping does not need it */
	return rc;
}

struct outcome {
	int records; /* records both handed out */
	bool failed; /* ended on an error (else at EOF) */
};

/* Read p with libpcap and with pcapfile, record by record; assert they agree.
 * filter (may be NULL) is applied as capture.c does: pcap_setfilter for libpcap,
 * pcap_offline_filter over pcapfile's records. */
static struct outcome compare_with_libpcap(const char *p, const char *filter)
{
	char errbuf[PCAP_ERRBUF_SIZE];
	struct outcome o = {0, false};
	struct bpf_program prog = {0, NULL};
	struct pcap_pkthdr *lh, h;
	const u_char *lb;
	const uint8_t *b;
	struct pcapfile *pf;
	pcap_t *pc;
	int lr, r;

	pc = pcap_open_offline_with_tstamp_precision(p, PCAP_TSTAMP_PRECISION_NANO, errbuf);
	if (!pc)
		fail_msg("%s: libpcap refuses it: %s", p, errbuf);
	assert_int_equal(open_reader(p, &pf), 0);
	assert_int_equal(pcapfile_snaplen(pf), pcap_snapshot(pc));
	if (filter) {
		assert_int_equal(pcap_compile(pc, &prog, filter, 1, PCAP_NETMASK_UNKNOWN), 0);
		assert_int_equal(pcap_setfilter(pc, &prog), 0);
	}
	for (;;) {
		lr = pcap_next_ex(pc, &lh, &lb);
		do
			r = pcapfile_next(pf, &h, &b);
		while (r == 1 && filter && !pcap_offline_filter(&prog, &h, b));
		if (lr != 1)
			break;
		if (r != 1)
			fail_msg("%s: record %d: libpcap reads it, pcapfile returns %d (%s)", p,
				 o.records + 1, r, pcapfile_error(pf));
		assert_int_equal(h.ts.tv_sec, lh->ts.tv_sec);
		assert_int_equal(h.ts.tv_usec, lh->ts.tv_usec);
		assert_int_equal(h.caplen, lh->caplen);
		assert_int_equal(h.len, lh->len);
		assert_memory_equal(b, lb, h.caplen);
		o.records++;
	}
	if (lr == PCAP_ERROR_BREAK) {
		if (r != 0)
			fail_msg("%s: libpcap ends cleanly after %d records, pcapfile returns %d "
				 "(%s)",
				 p, o.records, r, pcapfile_error(pf));
	} else {
		assert_int_equal(lr, PCAP_ERROR);
		if (r >= 0)
			fail_msg("%s: libpcap fails after %d records (%s), pcapfile returns %d", p,
				 o.records, pcap_geterr(pc), r);
		assert_true(pcapfile_error(pf)[0] != '\0');
		o.failed = true;
	}
	if (filter)
		pcap_freecode(&prog);
	pcapfile_free(pf);
	pcap_close(pc);
	return o;
}

/* ---- files the test writes -------------------------------------------------------- */

/* The same records under both magics and both byte orders. */
static void test_magics_and_byte_orders(void **state)
{
	static const uint32_t magics[] = {MAGIC_USEC, MAGIC_NSEC};
	struct outcome o;
	int m, be;

	(void)state;
	for (m = 0; m < 2; m++) {
		for (be = 0; be < 2; be++) {
			file_header(magics[m], be, 2, 4, 200, LT_EN10MB);
			record(1700000000, 999999, 0, 0, 0);           /* empty record */
			record(1700000000, 999999999, 200, 1500, 200); /* snaplen bytes */
			record(1, 0, 61, 61, 61);                      /* odd: next one unaligned */
			record(0x7fffffff, 1000000, 60, 60, 60);       /* frac out of range */
			record(0x80000000, 0xffffffff, 60, 60, 60);    /* negative when signed */
			record(0xffffffff, 0x80000000, 100, 50, 100);  /* caplen > len: kept */
			o = compare_with_libpcap(write_file(), NULL);
			assert_int_equal(o.records, 6);
			assert_false(o.failed);
			unlink(path);
		}
	}
}

/* The values themselves, not only agreement: µs scaled to ns; timestamp fields signed
 * in a file of the host's byte order, unsigned in the other (as libpcap 1.10.3). */
static void test_header_values(void **state)
{
	struct pcap_pkthdr h;
	const uint8_t *b;
	struct pcapfile *pf;

	(void)state;
	file_header(MAGIC_USEC, HOST_BE, 2, 4, 96, LT_EN10MB);
	record(1700000000, 999999, 3, 64, 3);
	record(0x80000000, 0xffffffff, 0, 0, 0);
	assert_int_equal(open_reader(write_file(), &pf), 0);
	assert_int_equal(pcapfile_snaplen(pf), 96);
	assert_int_equal(pcapfile_linktype(pf), LT_EN10MB);
	assert_int_equal(pcapfile_next(pf, &h, &b), 1);
	assert_int_equal(h.ts.tv_sec, 1700000000);
	assert_int_equal(h.ts.tv_usec, 999999000);
	assert_int_equal(h.caplen, 3);
	assert_int_equal(h.len, 64);
	/* the record's own bytes: the pattern record() wrote steps by 31 */
	assert_int_equal(b[1], (uint8_t)(b[0] + 31));
	assert_int_equal(b[2], (uint8_t)(b[1] + 31));
	assert_int_equal(pcapfile_next(pf, &h, &b), 1);
	assert_true(h.ts.tv_sec == -2147483647L - 1);
	assert_true(h.ts.tv_usec == -1000);
	assert_int_equal(pcapfile_next(pf, &h, &b), 0);
	assert_int_equal(pcapfile_next(pf, &h, &b), 0);
	pcapfile_free(pf);
	unlink(path);

	file_header(MAGIC_NSEC, !HOST_BE, 2, 4, 96, LT_EN10MB);
	record(0x80000000, 0xffffffff, 0, 0, 0);
	assert_int_equal(open_reader(write_file(), &pf), 0);
	assert_int_equal(pcapfile_next(pf, &h, &b), 1);
	assert_true(h.ts.tv_sec == 0x80000000L);
	assert_true(h.ts.tv_usec == 0xffffffffL);
	pcapfile_free(pf);
}

static void test_header_only(void **state)
{
	struct outcome o;

	(void)state;
	file_header(MAGIC_NSEC, false, 2, 4, 65535, LT_EN10MB);
	o = compare_with_libpcap(write_file(), NULL);
	assert_int_equal(o.records, 0);
	assert_false(o.failed);
}

static void test_truncated_header(void **state)
{
	static const size_t cut[] = {1, 8, 15};
	struct outcome o;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cut) / sizeof(cut[0]); i++) {
		file_header(MAGIC_USEC, false, 2, 4, 65535, LT_EN10MB);
		record(1, 2, 60, 60, 60);
		record(1, 3, 60, 60, 60);
		record(1, 4, 60, 60, 60);
		w.n -= 60 + 16 - cut[i]; /* keep cut[i] bytes of the third header */
		o = compare_with_libpcap(write_file(), NULL);
		assert_int_equal(o.records, 2);
		assert_true(o.failed);
		unlink(path);
	}
}

static void test_truncated_body(void **state)
{
	struct outcome o;

	(void)state;
	file_header(MAGIC_USEC, true, 2, 4, 65535, LT_EN10MB);
	record(1, 2, 60, 60, 60);
	record(1, 3, 60, 60, 60);
	record(1, 4, 100, 100, 40);
	o = compare_with_libpcap(write_file(), NULL);
	assert_int_equal(o.records, 2);
	assert_true(o.failed);
	unlink(path);

	/* caplen over the snaplen: the packet (first 64 bytes) is there, the rest is not */
	file_header(MAGIC_USEC, false, 2, 4, 64, LT_EN10MB);
	record(1, 2, 60, 60, 60);
	record(1, 3, 100, 100, 80);
	o = compare_with_libpcap(write_file(), NULL);
	assert_int_equal(o.records, 1);
	assert_true(o.failed);
}

/* Capture lengths over the snaplen and over libpcap's maximum. */
static void test_hostile_caplen(void **state)
{
	static const uint32_t huge[] = {PCAPFILE_MAX_CAPLEN + 1, 0x7fffffff, 0xffffffff};
	struct pcap_pkthdr h;
	const uint8_t *b;
	struct pcapfile *pf;
	struct outcome o;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(huge) / sizeof(huge[0]); i++) {
		file_header(MAGIC_NSEC, i & 1, 2, 4, 65535, LT_EN10MB);
		record(1, 2, 60, 60, 60);
		record(1, 3, huge[i], 60, 200);
		record(1, 4, 60, 60, 60);
		o = compare_with_libpcap(write_file(), NULL);
		assert_int_equal(o.records, 1);
		assert_true(o.failed);
		unlink(path);
	}

	/* over the maximum with every byte present, under a snaplen over the maximum */
	file_header(MAGIC_USEC, false, 2, 4, 300000, LT_EN10MB);
	record(1, 2, 60, 60, 60);
	record(1, 3, PCAPFILE_MAX_CAPLEN + 1, 70000, PCAPFILE_MAX_CAPLEN + 1);
	record(1, 4, 60, 60, 60);
	o = compare_with_libpcap(write_file(), NULL);
	assert_int_equal(o.records, 1);
	assert_true(o.failed);
	unlink(path);

	/* over the snaplen, within the maximum: cut to the snaplen, the next record is
	 * found after the whole caplen */
	file_header(MAGIC_USEC, false, 2, 4, 65535, LT_EN10MB);
	record(1, 2, 70000, 70000, 70000);
	record(1, 3, 60, 60, 60);
	o = compare_with_libpcap(write_file(), NULL);
	assert_int_equal(o.records, 2);
	assert_false(o.failed);
	assert_int_equal(open_reader(path, &pf), 0);
	assert_int_equal(pcapfile_next(pf, &h, &b), 1);
	assert_int_equal(h.caplen, 65535);
	assert_int_equal(h.len, 70000);
	assert_int_equal(pcapfile_next(pf, &h, &b), 1);
	assert_int_equal(h.caplen, 60);
	pcapfile_free(pf);
	unlink(path);

	/* exactly the maximum, with snaplen 0 (= the maximum) */
	file_header(MAGIC_USEC, false, 2, 4, 0, LT_EN10MB);
	record(1, 2, PCAPFILE_MAX_CAPLEN, PCAPFILE_MAX_CAPLEN, PCAPFILE_MAX_CAPLEN);
	record(1, 3, 0, 0, 0);
	o = compare_with_libpcap(write_file(), NULL);
	assert_int_equal(o.records, 2);
	assert_false(o.failed);
}

/* Snaplen 0 or over INT_MAX in the file header reads as the maximum, other values
 * stand; records over the maximum fail whatever the snaplen. */
static void test_snaplen_header(void **state)
{
	static const uint32_t snap[] = {
	    0, 1, PCAPFILE_MAX_CAPLEN, PCAPFILE_MAX_CAPLEN + 1, 0x80000000, 0xffffffff};
	struct outcome o;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(snap) / sizeof(snap[0]); i++) {
		file_header(MAGIC_USEC, false, 2, 4, snap[i], LT_EN10MB);
		record(1, 2, 60, 60, 60);
		record(1, 3, 0, 10, 0);
		record(1, 4, PCAPFILE_MAX_CAPLEN + 1, 70000, 10);
		o = compare_with_libpcap(write_file(), NULL); /* snaplen compared inside */
		assert_int_equal(o.records, 2);
		assert_true(o.failed);
		unlink(path);
	}
}

/* Versions 2.0-2.2 store len before caplen, 2.3 either way. */
static void test_old_versions(void **state)
{
	struct outcome o;
	uint16_t minor;
	struct pcapfile *pf;
	struct pcap_pkthdr h;
	const uint8_t *b;

	(void)state;
	for (minor = 0; minor <= 3; minor++) {
		file_header(MAGIC_USEC, minor & 1, 2, minor, 65535, LT_EN10MB);
		/* caplen 60, len 100 in each: before 2.3 written len first; 2.3 swaps only
		 * when the first field is the larger */
		record(1, 2, 100, 60, 60);
		record(1, 3, minor == 3 ? 60 : 100, minor == 3 ? 100 : 60, 60);
		record(1, 4, 60, 60, 60);
		o = compare_with_libpcap(write_file(), NULL);
		assert_int_equal(o.records, 3);
		assert_false(o.failed);
		unlink(path);
	}
	file_header(MAGIC_USEC, false, 2, 2, 65535, LT_EN10MB);
	record(1, 2, 1500, 60, 60);
	assert_int_equal(open_reader(write_file(), &pf), 0);
	assert_int_equal(pcapfile_next(pf, &h, &b), 1);
	assert_int_equal(h.caplen, 60);
	assert_int_equal(h.len, 1500);
	pcapfile_free(pf);
}

/* After a bad record every call fails the same way; nothing more is handed out. */
static void test_sticky_error(void **state)
{
	struct pcap_pkthdr h;
	const uint8_t *b;
	struct pcapfile *pf;
	char first[128];

	(void)state;
	file_header(MAGIC_USEC, false, 2, 4, 65535, LT_EN10MB);
	record(1, 2, 60, 60, 60);
	record(1, 3, 300000, 60, 0);
	record(1, 4, 60, 60, 60);
	assert_int_equal(open_reader(write_file(), &pf), 0);
	assert_int_equal(pcapfile_next(pf, &h, &b), 1);
	assert_int_equal(pcapfile_next(pf, &h, &b), -EINVAL);
	snprintf(first, sizeof(first), "%s", pcapfile_error(pf));
	assert_non_null(strstr(first, "300000"));
	assert_int_equal(pcapfile_next(pf, &h, &b), -EINVAL);
	assert_string_equal(pcapfile_error(pf), first);
	pcapfile_free(pf);
	unlink(path);

	file_header(MAGIC_USEC, false, 2, 4, 65535, LT_EN10MB);
	record(1, 2, 60, 60, 30);
	assert_int_equal(open_reader(write_file(), &pf), 0);
	assert_int_equal(pcapfile_next(pf, &h, &b), -EIO);
	assert_int_equal(pcapfile_next(pf, &h, &b), -EIO);
	pcapfile_free(pf);
}

/* Reading allocates nothing: every allocation failing changes no record. */
static void test_no_alloc_per_record(void **state)
{
	struct pcap_pkthdr h;
	const uint8_t *b;
	struct pcapfile *pf;
	int i, n = 0;

	(void)state;
	file_header(MAGIC_NSEC, false, 2, 4, 65535, LT_EN10MB);
	for (i = 0; i < 1000; i++)
		record(1, (uint32_t)i, (uint32_t)(i % 200), 200, (size_t)(i % 200));
	assert_int_equal(open_reader(write_file(), &pf), 0);
	mem_fail_after(0);
	while (pcapfile_next(pf, &h, &b) == 1)
		n++;
	mem_fail_reset();
	assert_int_equal(n, 1000);
	assert_string_equal(pcapfile_error(pf), "");
	pcapfile_free(pf);
}

/* RssFile of this process in KiB (/proc/self/status). */
static long rss_file_kib(void)
{
	char line[256];
	long kib = -1;
	FILE *f = fopen("/proc/self/status", "r");

	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, "RssFile:", 8) == 0)
			kib = strtol(line + 8, NULL, 10);
	fclose(f);
	assert_true(kib >= 0);
	return kib;
}

/* A 64 MiB file read through: the pages read are given back as the reader goes, so
 * the process's resident file pages stay near the release step instead of growing
 * to the file's size; and a record handed out early still reads the same after its
 * pages were given back. */
static void test_rss_stays_bounded(void **state)
{
	enum { BODY = 60000, PER_CHUNK = 16, CHUNKS = 70 };
	struct pcap_pkthdr h, first_h;
	const uint8_t *b, *first = NULL;
	uint8_t copy[BODY];
	struct pcapfile *pf;
	long base, top = 0, now;
	int fd, n = 0;

	(void)state;
	file_header(MAGIC_NSEC, false, 2, 4, 262144, LT_EN10MB);
	write_file();
	fd = open(path, O_WRONLY | O_APPEND);
	assert_true(fd >= 0);
	for (int c = 0; c < CHUNKS; c++) {
		w.n = 0;
		for (int i = 0; i < PER_CHUNK; i++)
			record(1, (uint32_t)(c * PER_CHUNK + i), BODY, BODY, BODY);
		assert_int_equal(write(fd, w.b, w.n), (ssize_t)w.n);
	}
	assert_int_equal(close(fd), 0);

	assert_int_equal(open_reader(path, &pf), 0);
	base = rss_file_kib();
	while (pcapfile_next(pf, &h, &b) == 1) {
		if (!first) {
			first = b;
			first_h = h;
			memcpy(copy, b, BODY);
		}
		if (++n % 64 == 0 && (now = rss_file_kib() - base) > top)
			top = now;
	}
	assert_int_equal(n, CHUNKS * PER_CHUNK);
	assert_string_equal(pcapfile_error(pf), "");
	assert_true(top < 8 * 1024); /* the file is 64 MiB; the step is 2 */
	assert_int_equal(first_h.caplen, BODY);
	assert_memory_equal(first, copy, BODY);
	pcapfile_free(pf);
}

/* ---- files left to libpcap ------------------------------------------------------------ */

/* pcapfile refuses it and libpcap still reads it (or refuses it too): the caller's
 * fallback is never worse than libpcap alone. Returns libpcap's packet count, -1 if
 * libpcap refuses the file. */
static int refused(const char *p)
{
	char errbuf[PCAP_ERRBUF_SIZE];
	struct pcap_pkthdr *lh;
	const u_char *lb;
	struct pcapfile *pf = NULL;
	pcap_t *pc;
	int n = 0;

	assert_int_equal(open_reader(p, &pf), -ENOTSUP);
	assert_null(pf);
	pc = pcap_open_offline_with_tstamp_precision(p, PCAP_TSTAMP_PRECISION_NANO, errbuf);
	if (!pc)
		return -1;
	while (pcap_next_ex(pc, &lh, &lb) == 1)
		n++;
	pcap_close(pc);
	return n;
}

static void pcapng_block_end(size_t start)
{
	uint32_t total = (uint32_t)(w.n - start + 4);

	memcpy(w.b + start + 4, &total, 4); /* host order, as the byte-order magic says */
	put(&total, 4);
}

static void test_not_mine(void **state)
{
	uint32_t v32;
	uint16_t v16;
	size_t start;
	int fd;

	(void)state;
	/* pcapng: section header, interface, one enhanced packet (written in host order) */
	w.n = 0;
	w.be = HOST_BE;
	start = w.n;
	put32(0x0a0d0d0a);
	put32(0);
	put32(0x1a2b3c4d);
	put16(1);
	put16(0);
	put32(0xffffffff);
	put32(0xffffffff);
	pcapng_block_end(start);
	start = w.n;
	put32(1);
	put32(0);
	v16 = LT_EN10MB;
	put(&v16, 2);
	put16(0);
	put32(0);
	pcapng_block_end(start);
	start = w.n;
	put32(6);
	put32(0);
	put32(0);
	put32(0);
	put32(1000);
	put32(4);
	put32(4);
	v32 = 0xdeadbeef;
	put(&v32, 4);
	pcapng_block_end(start);
	assert_int_equal(refused(write_file()), 1);
	unlink(path);

	/* Kuznetzov's longer record headers */
	file_header(MAGIC_KUZNETZOV, false, 2, 4, 65535, LT_EN10MB);
	assert_int_equal(refused(write_file()), 0);
	unlink(path);

	/* versions libpcap refuses too, and DG/UX's 543.0 */
	file_header(MAGIC_USEC, false, 2, 5, 65535, LT_EN10MB);
	assert_int_equal(refused(write_file()), -1);
	unlink(path);
	file_header(MAGIC_USEC, false, 1, 4, 65535, LT_EN10MB);
	assert_int_equal(refused(write_file()), -1);
	unlink(path);
	file_header(MAGIC_USEC, false, 543, 0, 65535, LT_EN10MB);
	record(1, 2, 60, 60, 60);
	assert_int_equal(refused(write_file()), 1);
	unlink(path);

	/* shorter than a file header; unknown magic */
	file_header(MAGIC_USEC, false, 2, 4, 65535, LT_EN10MB);
	w.n = 23;
	assert_int_equal(refused(write_file()), -1);
	unlink(path);
	file_header(0x0a0b0c0d, false, 2, 4, 65535, LT_EN10MB);
	assert_int_equal(refused(write_file()), -1);
	unlink(path);

	/* link types libpcap rewrites: SLL in the other byte order, USB mmapped always;
	 * SLL in host order is read in place */
	file_header(MAGIC_USEC, !HOST_BE, 2, 4, 65535, LT_LINUX_SLL);
	record(1, 2, 16, 16, 16);
	assert_int_equal(refused(write_file()), 1);
	unlink(path);
	file_header(MAGIC_USEC, HOST_BE, 2, 4, 65535, LT_USB_LINUX_MMAPPED);
	assert_int_equal(refused(write_file()), 0);
	unlink(path);
	file_header(MAGIC_USEC, HOST_BE, 2, 4, 65535, LT_LINUX_SLL);
	record(1, 2, 16, 16, 16);
	assert_int_equal(compare_with_libpcap(write_file(), NULL).records, 1);
	unlink(path);

	/* not a regular file: a fifo (opened read-write so open does not block) */
	snprintf(path, sizeof(path), "/tmp/hb_test_pcapfile.fifo.%d", (int)getpid());
	assert_int_equal(mkfifo(path, 0600), 0);
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	{
		struct pcapfile *pf = NULL;

		assert_int_equal(pcapfile_open(fd, &pf), -ENOTSUP);
		assert_null(pf);
	}
	close(fd);
}

/* ---- filters and real captures ------------------------------------------------------- */

/* Ethernet + IPv4 + UDP/TCP header to `port`, padded to 60 bytes. */
static void eth_packet(uint32_t sec, uint8_t proto, uint16_t port)
{
	uint8_t p[60] = {0};

	p[12] = 0x08; /* IPv4 */
	p[14] = 0x45;
	p[16] = 0;
	p[17] = 46; /* total length */
	p[22] = 64;
	p[23] = proto;
	p[26] = 10;
	p[29] = 1;
	p[30] = 10;
	p[33] = 2;
	p[34] = 0x9c; /* source port 40000 */
	p[35] = 0x40;
	p[36] = (uint8_t)(port >> 8);
	p[37] = (uint8_t)port;
	put32(sec);
	put32(0);
	put32(sizeof(p));
	put32(sizeof(p));
	put(p, sizeof(p));
}

static void test_filter_matches_libpcap(void **state)
{
	static const char filter[] = "tcp port 80 or udp port 53 or (ip[6:2] & 0x3fff != 0)";
	struct outcome o;
	uint32_t i;

	(void)state;
	file_header(MAGIC_USEC, false, 2, 4, 65535, LT_EN10MB);
	for (i = 0; i < 30; i++)
		eth_packet(i, i % 3 ? 6 : 17, (uint16_t)(i % 5 == 0 ? 53 : i % 2 ? 80 : 443));
	o = compare_with_libpcap(write_file(), filter);
	/* udp/53: i = 0, 15; tcp/80: odd i, not a multiple of 3 or 5: 1 7 11 13 17 19 23 29 */
	assert_int_equal(o.records, 10);
	assert_false(o.failed);
	assert_int_equal(compare_with_libpcap(path, NULL).records, 30);
}

static int accepted, compared;

static int compare_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	struct pcapfile *pf;

	(void)ftw;
	if (flag != FTW_F || !S_ISREG(st->st_mode) || !strstr(p, ".pcap"))
		return 0;
	compared++;
	if (open_reader(p, &pf) != 0)
		return 0; /* pcapng and friends: libpcap's */
	pcapfile_free(pf);
	accepted++;
	compare_with_libpcap(p, NULL);
	compare_with_libpcap(p, "tcp port 80 or port 53 or (ip[6:2] & 0x3fff != 0)");
	return 0;
}

/* Every capture of both fuzz corpora and, when present, the shared Beats captures. */
static void test_real_captures(void **state)
{
	(void)state;
	accepted = compared = 0;
	assert_int_equal(nftw(CORPUS_DIR, compare_one, 8, FTW_PHYS), 0);
	assert_true(accepted >= 10); /* the corpus is classic pcap, bar a pcapng or two */
	assert_int_equal(nftw(SEEDS_DIR, compare_one, 8, FTW_PHYS), 0);
	if (access(SHARED_DIR, R_OK) == 0)
		assert_int_equal(nftw(SHARED_DIR, compare_one, 8, FTW_PHYS), 0);
	print_message("%d of %d captures read in place, all as libpcap reads them\n", accepted,
		      compared);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_magics_and_byte_orders, teardown),
	    cmocka_unit_test_teardown(test_header_values, teardown),
	    cmocka_unit_test_teardown(test_header_only, teardown),
	    cmocka_unit_test_teardown(test_truncated_header, teardown),
	    cmocka_unit_test_teardown(test_truncated_body, teardown),
	    cmocka_unit_test_teardown(test_hostile_caplen, teardown),
	    cmocka_unit_test_teardown(test_snaplen_header, teardown),
	    cmocka_unit_test_teardown(test_old_versions, teardown),
	    cmocka_unit_test_teardown(test_sticky_error, teardown),
	    cmocka_unit_test_teardown(test_no_alloc_per_record, teardown),
	    cmocka_unit_test_teardown(test_rss_stays_bounded, teardown),
	    cmocka_unit_test_teardown(test_not_mine, teardown),
	    cmocka_unit_test_teardown(test_filter_matches_libpcap, teardown),
	    cmocka_unit_test_teardown(test_real_captures, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
