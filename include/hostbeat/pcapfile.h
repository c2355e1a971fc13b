/* pcapfile.h — classic pcap files read in place through mmap (the -I fast path).
 *
 * A reader hands out the records of a classic pcap file (pcap-savefile(5)) exactly as
 * libpcap's pcap_next_ex() does after pcap_open_offline_with_tstamp_precision(...,
 * PCAP_TSTAMP_PRECISION_NANO): same struct pcap_pkthdr (tv_usec holds nanoseconds),
 * same bytes, same count, same point of failure. The packet bytes are not copied:
 * they point into the mapping, so they may be unaligned. No allocation per record.
 *
 * It does not filter: the caller runs pcap_offline_filter() as pcap_next_ex() would.
 * Files it does not handle are refused at open (see pcapfile_open()) so the caller
 * reads them with libpcap instead.
 *
 * The file must not shrink while it is mapped (the kernel raises SIGBUS on a page past
 * the new end); growth after open is not seen. Capture files being replayed are static.
 */
#ifndef HOSTBEAT_PCAPFILE_H
#define HOSTBEAT_PCAPFILE_H

#include <stdint.h>

#include <pcap/pcap.h>

/* libpcap's MAXIMUM_SNAPLEN: the largest record it accepts for ordinary link types */
#define PCAPFILE_MAX_CAPLEN 262144u

struct pcapfile;

/* Map the file open on fd (borrowed: the caller closes it when it likes, the mapping
 * does not need it). The file is read from offset 0 whatever fd's position.
 * Returns 0 and *out = new reader (caller frees with pcapfile_free()), or:
 *   -ENOTSUP  not one this reader handles: not a regular file, not classic pcap with
 *             magic a1b2c3d4 / a1b23c4d in either byte order (pcapng, ...), a version
 *             other than 2.0-2.4, or a link type whose records libpcap rewrites or
 *             bounds differently (USB, NFLOG, PFLOG, D-Bus, ...);
 *   -ENOMEM, or -errno of fstat / mmap.
 * Any error means "read it with libpcap". */
int pcapfile_open(int fd, struct pcapfile **out);
void pcapfile_free(struct pcapfile *pf);

/* The next record: 1 with *h filled and *data pointing at h->caplen bytes inside the
 * mapping (borrowed until pcapfile_free()); 0 at the end of the file (the last record
 * ends exactly at the end); negative errno on a bad record, where libpcap fails too:
 * -EIO for a truncated record header or body, -EINVAL for a capture length over
 * PCAPFILE_MAX_CAPLEN. pcapfile_error() then says why. The reader stays on the bad
 * record: every later call returns the same error. */
int pcapfile_next(struct pcapfile *pf, struct pcap_pkthdr *h, const uint8_t **data);
/* Text of the last error ("" before any). Borrowed from pf. */
const char *pcapfile_error(const struct pcapfile *pf);

/* The snapshot length as pcap_snapshot() reports it (0 or over INT_MAX in the file
 * header reads as PCAPFILE_MAX_CAPLEN). */
int pcapfile_snaplen(const struct pcapfile *pf);
/* The header's LINKTYPE_ value without the FCS bits (not mapped to a DLT_ value). */
uint32_t pcapfile_linktype(const struct pcapfile *pf);

#endif
