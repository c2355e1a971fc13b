/* fuzz_pcapfile.c — libFuzzer harness: arbitrary bytes as a file for net/pcapfile.c.
 *
 * The input is written to a memfd and mapped by pcapfile_open(). When the reader takes
 * the file, it is read to the end twice, by pcapfile and by libpcap (pcap_next_ex on
 * /proc/self/fd/N, ns precision), and every record must agree: header, bytes, count,
 * and where each stops (cleanly or on an error). A file the reader takes must be one
 * libpcap opens too. Any disagreement traps; so does any read outside the mapping.
 * (The whole -I path over pcapfile is fuzz_pcap's job.)
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <pcap/pcap.h>

#include "hostbeat/pcapfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fd = -1; /* one memfd for the process, rewritten per input */
static char path[64];

static void disagree(const char *what, int rec, int r, int lr)
{
	fprintf(stderr, "fuzz_pcapfile: %s at record %d (pcapfile %d, libpcap %d)\n", what, rec, r,
		lr);
	__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char errbuf[PCAP_ERRBUF_SIZE];
	struct pcap_pkthdr h, *lh;
	const uint8_t *b;
	const u_char *lb;
	struct pcapfile *pf;
	volatile uint8_t sink = 0;
	pcap_t *pc;
	int r, lr, rec = 0;
	uint32_t i;

	if (fd < 0) {
		fd = memfd_create("fuzz_pcapfile", 0);
		if (fd < 0)
			return 0;
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	}
	if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
		return 0;
	if (pcapfile_open(fd, &pf) != 0)
		return 0; /* left to libpcap */
	pc = pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_NANO, errbuf);
	if (!pc)
		disagree("libpcap refuses a file pcapfile takes", 0, 0, -1);
	if (pcapfile_snaplen(pf) != pcap_snapshot(pc))
		disagree("snaplen", 0, pcapfile_snaplen(pf), pcap_snapshot(pc));

	for (;;) {
		r = pcapfile_next(pf, &h, &b);
		lr = pcap_next_ex(pc, &lh, &lb);
		if (r != 1 || lr != 1)
			break;
		rec++;
		if (h.ts.tv_sec != lh->ts.tv_sec || h.ts.tv_usec != lh->ts.tv_usec)
			disagree("timestamp", rec, r, lr);
		if (h.caplen != lh->caplen || h.len != lh->len)
			disagree("lengths", rec, r, lr);
		for (i = 0; i < h.caplen; i++) /* every byte handed out is readable */
			sink ^= b[i];
		if (memcmp(b, lb, h.caplen) != 0)
			disagree("bytes", rec, r, lr);
	}
	if ((r == 0) != (lr == PCAP_ERROR_BREAK) || (r < 0) != (lr == PCAP_ERROR) || r == 1 ||
	    lr == 1)
		disagree("end", rec + 1, r, lr);
	if (r < 0 && pcapfile_error(pf)[0] == '\0')
		disagree("error without a message", rec + 1, r, lr);
	(void)sink;
	pcap_close(pc);
	pcapfile_free(pf);
	return 0;
}
