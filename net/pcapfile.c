/* pcapfile.c — classic pcap files read in place through mmap: the -I fast path.
 *
 * Format: pcap-savefile(5), https://www.tcpdump.org/manpages/pcap-savefile.5.txt
 * (also draft-ietf-opsawg-pcap). What is handed out follows libpcap 1.10's savefile
 * reader, so that capture.c sees the same packets whichever reader it uses.
 *
 *   file header, 24 bytes, every field in the writer's byte order
 *   +-------+-------+-------+----------+---------+---------+----------+
 *   | magic | major | minor | thiszone | sigfigs | snaplen | linktype |
 *   |   4   |   2   |   2   |    4     |    4    |    4    |    4     |
 *   +-------+-------+-------+----------+---------+---------+----------+
 *   magic a1b2c3d4: microsecond timestamps, a1b23c4d: nanosecond; the byte order it
 *   reads in is the file's. linktype: LINKTYPE_ value in the low 26 bits, FCS info above.
 *
 *   record: 16-byte header, then caplen bytes of packet
 *   +--------+----------------+--------+-----+-------------...
 *   | ts_sec | ts_usec / nsec | caplen | len | packet bytes
 *   |   4    |       4        |   4    |  4  | caplen
 *   +--------+----------------+--------+-----+-------------...
 *
 * libpcap's rules, restated (each is what libpcap 1.10.3's pcap_next_ex() returns,
 * checked against the installed libpcap by tests/unit/test_pcapfile.c):
 *  - the timestamp fields are signed 32-bit in a file of the host's byte order but
 *    unsigned in one of the other order (libpcap's byte swap yields unsigned values);
 *    a microsecond file is scaled by 1000 because the caller asked for nanoseconds.
 *  - versions before 2.3 store len before caplen; 2.3 files come either way, so their
 *    fields are swapped when caplen > len. Later versions: caplen > len is passed on
 *    as it is (libpcap does not check it).
 *  - a snaplen of 0 or over INT_MAX in the file header means PCAPFILE_MAX_CAPLEN;
 *    any other value stands, even over the maximum.
 *  - caplen over PCAPFILE_MAX_CAPLEN is an error. caplen over the snaplen (but within
 *    the maximum) still spans caplen bytes of the file; only the first snaplen are the
 *    packet, and caplen is reported as the snaplen.
 *  - nothing left at a record boundary is the end; a partial header or body is an error.
 *
 * Refused at open (the caller reads them with libpcap): pcapng and every other magic,
 * Kuznetzov's longer record header, versions other than 2.0-2.4 (DG/UX 543.0), link
 * types whose maximum record is not PCAPFILE_MAX_CAPLEN (D-Bus, USBPcap, EBHSCR),
 * whose header length libpcap recomputes (Linux USB memory-mapped), or whose
 * pseudo-header libpcap rewrites in host byte order when the file is in the other one
 * (Linux SLL / SLL2 with CAN, Linux USB, NFLOG, PFLOG): records here are read-only.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "hostbeat/cursor.h"
#include "hostbeat/mem.h"
#include "hostbeat/pcapfile.h"

#define FILE_HDR_LEN 24
#define REC_HDR_LEN 16
#define MAGIC_USEC 0xa1b2c3d4u
#define MAGIC_NSEC 0xa1b23c4du
#define LINKTYPE_MASK 0x03ffffffu
/* Pages read are given back (MADV_DONTNEED) every this many bytes: a mapping keeps
 * every page it touched in the process's RSS, which would grow to the file's size.
 * The page cache keeps them; a record handed out earlier stays readable (a touch
 * faults its page back in from the file). */
#define RELEASE_STEP (2u << 20)

/* LINKTYPE_ values (https://www.tcpdump.org/linktypes.html) the reader leaves to
 * libpcap; each is also the DLT_ value libpcap maps it to. */
enum {
	LT_LINUX_SLL = 113,
	LT_PFLOG = 117,
	LT_USB_LINUX = 189,
	LT_USB_LINUX_MMAPPED = 220,
	LT_DBUS = 231,
	LT_NFLOG = 239,
	LT_USBPCAP = 249,
	LT_LINUX_SLL2 = 276,
	LT_EBHSCR = 279,
};

/* How caplen and len sit in a record header (libpcap's lengths_swapped). */
enum lengths { LENGTHS_IN_ORDER, LENGTHS_SWAPPED, LENGTHS_MAYBE_SWAPPED };

struct pcapfile {
	const uint8_t *map; /* owned: the whole file, PROT_READ */
	size_t size;
	size_t off;      /* next record header */
	size_t released; /* the pages before this offset were given back (RELEASE_STEP) */
	bool big_endian; /* the file's byte order */
	bool swapped;    /* ... is not the host's */
	bool nano;       /* timestamps are in nanoseconds already */
	enum lengths lengths;
	uint32_t snaplen; /* as libpcap reports it: 1..INT_MAX */
	uint32_t linktype;
	int rc; /* sticky error of pcapfile_next(), 0 = none */
	char err[128];
};

/* A record header field: one bounds check covers the header, so no cursor here. */
static inline uint32_t field32(const struct pcapfile *pf, const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return pf->swapped ? __builtin_bswap32(v) : v;
}

static uint32_t rd32(const struct pcapfile *pf, struct cursor *c)
{
	return pf->big_endian ? cur_be32(c) : cur_le32(c);
}

static uint16_t rd16(const struct pcapfile *pf, struct cursor *c)
{
	return pf->big_endian ? cur_be16(c) : cur_le16(c);
}

/* Would libpcap do anything to this link type's records beyond reading them? */
static bool linktype_rewritten(uint32_t lt, bool swapped)
{
	switch (lt) {
	case LT_USB_LINUX_MMAPPED: /* len recomputed for isochronous transfers */
	case LT_DBUS:              /* larger maximum caplen */
	case LT_USBPCAP:
	case LT_EBHSCR:
		return true;
	case LT_LINUX_SLL: /* pseudo-header fields swapped to host order */
	case LT_LINUX_SLL2:
	case LT_USB_LINUX:
	case LT_NFLOG:
	case LT_PFLOG:
		return swapped;
	default:
		return false;
	}
}

/* Check the file header and fill pf's format fields. 0 or -ENOTSUP. */
static int parse_header(struct pcapfile *pf)
{
	const bool host_big_endian = __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__;
	struct cursor c;
	uint32_t magic, snaplen;
	uint16_t major, minor;

	cur_init(&c, pf->map, pf->size);
	magic = cur_le32(&c);
	if (magic != MAGIC_USEC && magic != MAGIC_NSEC) {
		cur_init(&c, pf->map, pf->size);
		magic = cur_be32(&c);
		if (magic != MAGIC_USEC && magic != MAGIC_NSEC)
			return -ENOTSUP;
		pf->big_endian = true;
	}
	pf->nano = magic == MAGIC_NSEC;
	major = rd16(pf, &c);
	minor = rd16(pf, &c);
	cur_skip(&c, 8); /* thiszone, sigfigs: always 0, unused */
	snaplen = rd32(pf, &c);
	pf->linktype = rd32(pf, &c) & LINKTYPE_MASK;
	pf->swapped = pf->big_endian != host_big_endian;
	if (c.err || major != 2 || minor > 4 || linktype_rewritten(pf->linktype, pf->swapped))
		return -ENOTSUP;
	pf->lengths = minor < 3    ? LENGTHS_SWAPPED
		      : minor == 3 ? LENGTHS_MAYBE_SWAPPED
				   : LENGTHS_IN_ORDER;
	pf->snaplen = snaplen == 0 || snaplen > INT_MAX ? PCAPFILE_MAX_CAPLEN : snaplen;
	pf->off = FILE_HDR_LEN;
	return 0;
}

int pcapfile_open(int fd, struct pcapfile **out)
{
	struct pcapfile *pf;
	struct stat st;
	void *map;
	size_t size;
	int rc;

	*out = NULL;
	if (fstat(fd, &st) != 0)
		return -errno;
	/* shorter than a file header: libpcap says what is wrong with it */
	if (!S_ISREG(st.st_mode) || st.st_size < FILE_HDR_LEN)
		return -ENOTSUP;
	size = (size_t)st.st_size;
	map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (map == MAP_FAILED)
		return -errno;
	/* a hint only: read-ahead grows, pages behind are dropped early */
	(void)madvise(map, size, MADV_SEQUENTIAL);

	pf = hb_calloc(1, sizeof(*pf));
	if (!pf) {
		rc = -ENOMEM;
		goto err_unmap;
	}
	pf->map = map;
	pf->size = size;
	rc = parse_header(pf);
	if (rc != 0)
		goto err_free;
	*out = pf;
	return 0;

err_free:
	hb_free(pf);
err_unmap:
	munmap(map, size);
	return rc;
}

void pcapfile_free(struct pcapfile *pf)
{
	if (!pf)
		return;
	munmap((void *)pf->map, pf->size);
	hb_free(pf);
}

static int fail(struct pcapfile *pf, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Record the sticky error rc with its text; returns rc. */
static int fail(struct pcapfile *pf, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(pf->err, sizeof(pf->err), fmt, ap);
	va_end(ap);
	pf->rc = rc;
	return rc;
}

int pcapfile_next(struct pcapfile *pf, struct pcap_pkthdr *h, const uint8_t **data)
{
	uint32_t sec, frac, caplen, len, t;
	const uint8_t *p;
	size_t have;

	if (pf->rc != 0)
		return pf->rc;
	if (pf->off - pf->released >= RELEASE_STEP) {
		size_t upto = pf->off & ~(size_t)(RELEASE_STEP - 1); /* page-aligned too */

		(void)madvise((void *)(uintptr_t)(pf->map + pf->released), upto - pf->released,
			      MADV_DONTNEED);
		pf->released = upto;
	}
	have = pf->size - pf->off;
	if (have == 0)
		return 0;
	if (have < REC_HDR_LEN)
		return fail(pf, -EIO, "truncated record header at offset %zu: %zu of %d bytes",
			    pf->off, have, REC_HDR_LEN);
	p = pf->map + pf->off;
	sec = field32(pf, p);
	frac = field32(pf, p + 4);
	caplen = field32(pf, p + 8);
	len = field32(pf, p + 12);
	have -= REC_HDR_LEN;

	if (pf->lengths == LENGTHS_SWAPPED ||
	    (pf->lengths == LENGTHS_MAYBE_SWAPPED && caplen > len)) {
		t = caplen;
		caplen = len;
		len = t;
	}
	if (caplen > PCAPFILE_MAX_CAPLEN)
		return fail(pf, -EINVAL, "capture length %u over the maximum of %u at offset %zu",
			    caplen, PCAPFILE_MAX_CAPLEN, pf->off);
	if (have < caplen)
		return fail(pf, -EIO, "truncated record at offset %zu: %zu of %u captured bytes",
			    pf->off, have, caplen);

	if (pf->swapped) {
		h->ts.tv_sec = (time_t)sec;
		h->ts.tv_usec = (suseconds_t)frac;
	} else {
		h->ts.tv_sec = (int32_t)sec;
		h->ts.tv_usec = (int32_t)frac;
	}
	if (!pf->nano)
		h->ts.tv_usec *= 1000;
	h->caplen = caplen > pf->snaplen ? pf->snaplen : caplen;
	h->len = len;
	*data = p + REC_HDR_LEN;
	pf->off += REC_HDR_LEN + (size_t)caplen;
	return 1;
}

const char *pcapfile_error(const struct pcapfile *pf)
{
	return pf->err;
}

int pcapfile_snaplen(const struct pcapfile *pf)
{
	return (int)pf->snaplen;
}

uint32_t pcapfile_linktype(const struct pcapfile *pf)
{
	return pf->linktype;
}
