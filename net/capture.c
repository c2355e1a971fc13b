/* capture.c — libpcap sources: live devices (one thread each) or a pcap file (-I).
 *
 * Follows libpcap's pcap(3PCAP) life cycle: pcap_create → set snaplen / promisc /
 * immediate mode / buffer size / timeout / ns timestamps → pcap_activate → BPF
 * filter → pcap_dispatch loop. Files are opened with ns timestamp precision and
 * read on the calling thread (packet clock, -t, -l): classic pcap files in place
 * through net/pcapfile.c (mmap, no copy, no syscall per packet; the filter runs as
 * pcap_offline_filter, or not at all where net/portfilter.c knows the generated
 * filter's verdict), everything else (pcapng, stdin, fifos) with pcap_next_ex.
 *
 * Per packet: clock_packet → decode_packet → flow_process (DECODE_OK only);
 * flow_tick every 100 ms of packet time and, live, on every read timeout.
 * pcap_stats is only called from the capture thread (it is not thread-safe and
 * Linux resets the kernel counters on read); the values are published through
 * atomics and the "capture.kernel_drops" / "capture.iface_drops" gauges.
 */
#include <errno.h>
#include <fnmatch.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <pcap/pcap.h>

#include "hostbeat/log.h"
#include "hostbeat/mem.h"
#include "hostbeat/metrics.h"
#include "hostbeat/pcapfile.h"
#include "hostbeat/proto.h"
#include "net/capture.h"
#include "net/decode.h"
#include "net/flow.h"
#include "net/portfilter.h"

#define LOG_SEL "net.capture"
#define TICK_EVERY_NS (100 * NS_PER_MS)
#define STATS_EVERY_NS NS_PER_SEC
#define DEFAULT_TIMEOUT_MS 100
#define SLEEP_SLICE_NS (100 * NS_PER_MS)

/* Device names handed to events as observer.ingress.interface.name. Events can
 * outlive their capture (queued, spooled), so names are interned here for the
 * process's life instead of being owned by the capture. */
#define IFACE_NAMES_MAX 256

static struct {
	pthread_mutex_t lock;
	char *v[IFACE_NAMES_MAX];
	size_t n;
} iface_names = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Returns the interned copy of name (stable for the process's life) or NULL. */
static const char *iface_intern(const char *name)
{
	const char *r = NULL;
	size_t i;

	pthread_mutex_lock(&iface_names.lock);
	for (i = 0; i < iface_names.n && !r; i++)
		if (strcmp(iface_names.v[i], name) == 0)
			r = iface_names.v[i];
	if (!r && iface_names.n < IFACE_NAMES_MAX) {
		iface_names.v[iface_names.n] = hb_strdup(name);
		r = iface_names.v[iface_names.n];
		if (r)
			iface_names.n++;
	}
	pthread_mutex_unlock(&iface_names.lock);
	return r;
}

struct capture {
	const struct hb_config *cfg; /* borrowed */
	struct hb_clock *clock;      /* borrowed */
	struct ev_sink *sink;        /* borrowed */
	const char *device;          /* interned (iface_intern); NULL in file mode */
	char *filter;                /* owned; the BPF filter in use, NULL = none */
	pcap_t *pc;
	bool nano; /* pcap header timestamps are in ns */
	int linktype;
	/* the filter set_filter() installed in pc, kept: file mode runs it itself
	 * (pcap_offline_filter) when it reads through pf */
	struct bpf_program prog;
	bool have_prog;
	/* when prog is the generated port filter: its verdict without running it */
	struct port_filter pfilter;
	/* file mode, when the file is classic pcap: read through pf instead of pc */
	struct pcapfile *pf;
	struct pcap_pkthdr pf_hdr; /* header of the record pf handed out last */
	struct decoder *dec;
	struct flow_table *flows;

	pthread_t thread;
	bool thread_started;
	atomic_bool stop;
	int thread_rc;

	uint64_t last_tick_ts; /* packet time of the last flow_tick */
	uint64_t last_ts;      /* last packet time seen */
	uint64_t packet_no;    /* 1-based index of the packet in the current file pass */
	uint64_t last_stats_mono;
	uint64_t prev_kernel_drops, prev_iface_drops; /* already added to the gauges */

	_Atomic uint64_t packets, bytes, kernel_drops, iface_drops;

	struct metric *m_packets, *m_bytes, *m_read_errors, *g_kernel_drops, *g_iface_drops;
};

/* ---- device list ----------------------------------------------------------- */

static bool name_matches(const struct cfg_strlist *pats, const char *name)
{
	size_t i;

	for (i = 0; i < pats->n; i++)
		if (fnmatch(pats->v[i], name, 0) == 0)
			return true;
	return false;
}

static bool is_glob(const char *s)
{
	return strpbrk(s, "*?[") != NULL;
}

/* Append a copy of name unless present. 0 or -ENOMEM. */
static int names_add(char ***names, size_t *n, const char *name)
{
	char **v;
	size_t i;

	for (i = 0; i < *n; i++)
		if (strcmp((*names)[i], name) == 0)
			return 0;
	v = hb_realloc(*names, (*n + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	*names = v;
	v[*n] = hb_strdup(name);
	if (!v[*n])
		return -ENOMEM;
	(*n)++;
	return 0;
}

static bool dev_exists(const pcap_if_t *all, const char *name)
{
	for (; all; all = all->next)
		if (strcmp(all->name, name) == 0)
			return true;
	return false;
}

int capture_resolve_devices(const struct hb_config *cfg, char ***names, size_t *n)
{
	static const char *const default_dev[] = {"docker0"};
	char errbuf[PCAP_ERRBUF_SIZE];
	pcap_if_t *all = NULL, *it;
	const char *const *req;
	size_t nreq, i, before;
	int rc = 0;

	*names = NULL;
	*n = 0;
	errbuf[0] = '\0';
	if (pcap_findalldevs(&all, errbuf) != 0) {
		log_error(LOG_SEL, "cannot list capture devices: %s", errbuf);
		return -EIO;
	}
	req = cfg->devices.n ? (const char *const *)cfg->devices.v : default_dev;
	nreq = cfg->devices.n ? cfg->devices.n : 1;

	for (i = 0; i < nreq && rc == 0; i++) {
		before = *n;
		if (is_glob(req[i])) {
			for (it = all; it && rc == 0; it = it->next)
				if (fnmatch(req[i], it->name, 0) == 0 &&
				    !name_matches(&cfg->exclude, it->name))
					rc = names_add(names, n, it->name);
			if (rc == 0 && *n == before)
				log_warn(LOG_SEL, "no capture device matches %s (after exclusions)",
					 req[i]);
		} else if (name_matches(&cfg->exclude, req[i])) {
			log_info(LOG_SEL, "device %s is excluded", req[i]);
		} else if (strcmp(req[i], "any") == 0 || dev_exists(all, req[i])) {
			rc = names_add(names, n, req[i]);
		} else if (strcmp(req[i], "docker0") == 0) {
			log_warn(LOG_SEL, "docker0 not found; capturing on any");
			rc = names_add(names, n, "any");
		} else {
			log_error(LOG_SEL, "capture device %s not found", req[i]);
			rc = -ENODEV;
		}
	}
	if (rc == 0 && *n == 0) {
		log_error(LOG_SEL, "no capture device left to open");
		rc = -ENODEV;
	}
	if (rc != 0) {
		if (rc == -ENOMEM)
			log_error(LOG_SEL, "out of memory listing devices");
		for (i = 0; i < *n; i++)
			hb_free((*names)[i]);
		hb_free(*names);
		*names = NULL;
		*n = 0;
	}
	pcap_freealldevs(all);
	return rc;
}

/* ---- BPF filter -------------------------------------------------------------- */

struct sbuf {
	char *p;
	size_t len, cap;
	bool oom;
};

static void sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	size_t need;
	char *np;
	int k;

	if (b->oom)
		return;
	va_start(ap, fmt);
	k = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (k < 0) {
		b->oom = true;
		return;
	}
	need = b->len + (size_t)k + 1;
	if (need > b->cap) {
		np = hb_realloc(b->p, need * 2);
		if (!np) {
			b->oom = true;
			return;
		}
		b->p = np;
		b->cap = need * 2;
	}
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	b->len += (size_t)k;
}

/* "tcp port 80 or udp port 53 or port 5000 or <fragments>", from the enabled protocols.
 * Non-first IP fragments carry no ports, so they are let through for reassembly. */
static char *build_port_filter(const struct hb_config *cfg, bool with_vlan)
{
	struct sbuf inner = {0}, out = {0};
	const struct cfg_proto *p;
	const char *kind;
	size_t i, j, nterms = 0;

	for (i = 0; i < cfg->nprotos; i++) {
		p = &cfg->protos[i];
		if (!p->enabled || !p->ops)
			continue;
		switch (port_filter_transports(p)) {
		case PROTO_TCP | PROTO_UDP:
			kind = ""; /* also SCTP: net/portfilter.c knows */
			break;
		case PROTO_UDP:
			kind = "udp ";
			break;
		default:
			kind = "tcp ";
			break;
		}
		for (j = 0; j < p->ports.n; j++, nterms++)
			sb_printf(&inner, "%s%sport %u", nterms ? " or " : "", kind,
				  (unsigned)p->ports.v[j]);
	}
	if (nterms == 0 || inner.oom) {
		if (inner.oom)
			log_error(LOG_SEL, "out of memory building the BPF filter");
		else
			log_error(LOG_SEL, "no protocol is enabled (packetbeat.protocols): "
					   "nothing to capture");
		hb_free(inner.p);
		return NULL;
	}
	sb_printf(&inner, " or (ip[6:2] & 0x3fff != 0) or (ip6[6] == 44)");
	/* `vlan` shifts the offsets for the rest of the expression, so nesting the
	 * second level inside the first matches single-tagged and QinQ frames */
	if (with_vlan)
		sb_printf(&out, "(%s) or (vlan and ((%s) or (vlan and (%s))))", inner.p, inner.p,
			  inner.p);
	else
		sb_printf(&out, "%s", inner.p);
	hb_free(inner.p);
	if (out.oom) {
		log_error(LOG_SEL, "out of memory building the BPF filter");
		hb_free(out.p);
		return NULL;
	}
	return out.p;
}

char *capture_build_filter(const struct hb_config *cfg)
{
	if (cfg->bpf_filter && cfg->bpf_filter[0])
		return hb_strdup(cfg->bpf_filter);
	return build_port_filter(cfg, true);
}

/* Compile and install c->filter. When the generated filter uses `vlan` on a link
 * type without VLAN support (SLL, NULL, raw), retry without the VLAN half. */
static int set_filter(struct capture *c, const char *what)
{
	bool given = c->cfg->bpf_filter && c->cfg->bpf_filter[0], vlan = !given;
	struct bpf_program prog;
	char *plain;

	if (pcap_compile(c->pc, &prog, c->filter, 1, PCAP_NETMASK_UNKNOWN) != 0) {
		if (c->cfg->bpf_filter && c->cfg->bpf_filter[0]) {
			log_error(LOG_SEL, "%s: bad BPF filter \"%s\": %s", what, c->filter,
				  pcap_geterr(c->pc));
			return -EINVAL;
		}
		plain = build_port_filter(c->cfg, false);
		if (!plain)
			return -EINVAL;
		vlan = false;
		hb_free(c->filter);
		c->filter = plain;
		if (pcap_compile(c->pc, &prog, c->filter, 1, PCAP_NETMASK_UNKNOWN) != 0) {
			log_error(LOG_SEL, "%s: bad BPF filter \"%s\": %s", what, c->filter,
				  pcap_geterr(c->pc));
			return -EINVAL;
		}
	}
	if (pcap_setfilter(c->pc, &prog) != 0) {
		log_error(LOG_SEL, "%s: cannot set BPF filter: %s", what, pcap_geterr(c->pc));
		pcap_freecode(&prog);
		return -EINVAL;
	}
	if (c->have_prog)
		pcap_freecode(&c->prog);
	c->prog = prog;
	c->have_prog = true;
	if (given)
		c->pfilter.on = false;
	else
		port_filter_init(&c->pfilter, c->cfg, pcap_datalink(c->pc), vlan);
	return 0;
}

/* ---- open ---------------------------------------------------------------------- */

static const char *linktype_name(int lt)
{
	const char *n = pcap_datalink_val_to_name(lt);

	return n ? n : "unknown";
}

static int open_live(struct capture *c)
{
	char errbuf[PCAP_ERRBUF_SIZE];
	const char *dev = c->device;
	uint64_t ms = c->cfg->poll_timeout / NS_PER_MS;
	uint64_t snaplen = c->cfg->snaplen ? c->cfg->snaplen : 65535;
	uint64_t bufsz = c->cfg->buffer_size;
	int rc;

	errbuf[0] = '\0';
	c->pc = pcap_create(dev, errbuf);
	if (!c->pc) {
		log_error(LOG_SEL, "%s: cannot open capture: %s", dev, errbuf);
		return -ENODEV;
	}
	pcap_set_snaplen(c->pc, snaplen > INT_MAX ? INT_MAX : (int)snaplen);
	if (strcmp(dev, "any") != 0)
		pcap_set_promisc(c->pc, 1);
	pcap_set_immediate_mode(c->pc, 1);
	if (bufsz)
		pcap_set_buffer_size(c->pc, bufsz > INT_MAX ? INT_MAX : (int)bufsz);
	pcap_set_timeout(c->pc, ms == 0 ? DEFAULT_TIMEOUT_MS : ms > INT_MAX ? INT_MAX : (int)ms);
	/* ns timestamps when the platform has them; micro otherwise */
	pcap_set_tstamp_precision(c->pc, PCAP_TSTAMP_PRECISION_NANO);

	rc = pcap_activate(c->pc);
	if (rc < 0) {
		switch (rc) {
		case PCAP_ERROR_PERM_DENIED:
			log_error(LOG_SEL, "%s: %s (needs root or CAP_NET_RAW+CAP_NET_ADMIN)", dev,
				  pcap_geterr(c->pc));
			rc = -EPERM;
			break;
		case PCAP_ERROR_PROMISC_PERM_DENIED:
			log_error(LOG_SEL,
				  "%s: no permission for promiscuous mode "
				  "(needs root or CAP_NET_RAW+CAP_NET_ADMIN)",
				  dev);
			rc = -EPERM;
			break;
		case PCAP_ERROR_NO_SUCH_DEVICE:
			log_error(LOG_SEL, "%s: no such device: %s", dev, pcap_geterr(c->pc));
			rc = -ENODEV;
			break;
		case PCAP_ERROR_IFACE_NOT_UP:
			log_error(LOG_SEL, "%s: interface is down", dev);
			rc = -ENETDOWN;
			break;
		case PCAP_ERROR:
			log_error(LOG_SEL, "%s: cannot activate capture: %s", dev,
				  pcap_geterr(c->pc));
			rc = -EIO;
			break;
		default:
			log_error(LOG_SEL, "%s: cannot activate capture: %s", dev,
				  pcap_statustostr(rc));
			rc = -EIO;
			break;
		}
		return rc;
	}
	if (rc > 0)
		log_warn(LOG_SEL, "%s: %s%s%s", dev, pcap_statustostr(rc),
			 rc == PCAP_WARNING ? ": " : "",
			 rc == PCAP_WARNING ? pcap_geterr(c->pc) : "");
	c->nano = pcap_get_tstamp_precision(c->pc) == PCAP_TSTAMP_PRECISION_NANO;
	return 0;
}

static int open_file(struct capture *c)
{
	char errbuf[PCAP_ERRBUF_SIZE];

	errbuf[0] = '\0';
	c->pc = pcap_open_offline_with_tstamp_precision(c->cfg->pcap_file,
							PCAP_TSTAMP_PRECISION_NANO, errbuf);
	if (!c->pc) {
		log_error(LOG_SEL, "%s: cannot read pcap file: %s", c->cfg->pcap_file, errbuf);
		return -EIO;
	}
	c->nano = pcap_get_tstamp_precision(c->pc) == PCAP_TSTAMP_PRECISION_NANO;
	return 0;
}

struct capture *capture_open(const struct hb_config *cfg, const char *device,
			     struct hb_clock *clock, struct ev_sink *sink)
{
	struct decoder_limits lim;
	struct capture *c;
	const char *what = device ? device : cfg->pcap_file;

	if (!device && !cfg->pcap_file) {
		log_error(LOG_SEL, "no device and no pcap file to read");
		return NULL;
	}
	c = hb_calloc(1, sizeof(*c));
	if (!c)
		goto oom;
	c->cfg = cfg;
	c->clock = clock;
	c->sink = sink;
	atomic_init(&c->stop, false);
	if (device) {
		c->device = iface_intern(device);
		if (!c->device)
			goto oom;
	}
	if ((device ? open_live(c) : open_file(c)) != 0)
		goto err;

	c->linktype = pcap_datalink(c->pc);
	if (decoder_linktype_supported(c->linktype) != 0) {
		log_error(LOG_SEL, "%s: unsupported link type %s (%d)", what,
			  linktype_name(c->linktype), c->linktype);
		goto err;
	}
	c->filter = capture_build_filter(cfg);
	if (!c->filter || set_filter(c, what) != 0)
		goto err;

	lim.frag_max_datagrams = cfg->ipfrag_max_datagrams;
	lim.frag_timeout_ns = cfg->ipfrag_timeout;
	c->dec = decoder_new(c->linktype, &lim);
	if (!c->dec)
		goto oom;
	c->flows = flow_table_new(cfg, sink);
	if (!c->flows)
		goto oom;

	c->m_packets = metrics_counter("capture.packets");
	c->m_bytes = metrics_counter("capture.bytes");
	c->m_read_errors = metrics_counter("capture.read_errors");
	c->g_kernel_drops = metrics_gauge("capture.kernel_drops");
	c->g_iface_drops = metrics_gauge("capture.iface_drops");

	if (device)
		log_info(LOG_SEL,
			 "capturing on %s (linktype %s, snaplen %d, buffer %llu MiB, "
			 "filter: %s)",
			 device, linktype_name(c->linktype), pcap_snapshot(c->pc),
			 (unsigned long long)(cfg->buffer_size >> 20), c->filter);
	else
		log_info(LOG_SEL, "reading %s (linktype %s, snaplen %d, filter: %s%s)",
			 cfg->pcap_file, linktype_name(c->linktype), pcap_snapshot(c->pc),
			 c->filter, cfg->topspeed ? ", topspeed" : "");
	return c;

oom:
	log_error(LOG_SEL, "%s: out of memory opening the capture", what);
err:
	capture_free(c);
	return NULL;
}

/* ---- the packet path ------------------------------------------------------------ */

static void capture_packet(struct capture *c, const struct pcap_pkthdr *h, const u_char *bytes)
{
	struct packet pkt;
	uint64_t ts;

	ts = (uint64_t)h->ts.tv_sec * NS_PER_SEC +
	     (uint64_t)h->ts.tv_usec * (c->nano ? 1 : NS_PER_US);
	atomic_fetch_add_explicit(&c->packets, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&c->bytes, h->len, memory_order_relaxed);
	metric_inc(c->m_packets);
	metric_add(c->m_bytes, h->len);
	clock_packet(c->clock, ts);
	c->last_ts = ts;

	if (decode_packet(c->dec, ts, bytes, h->caplen, h->len, c->device, &pkt) == DECODE_OK)
		flow_process(c->flows, &pkt);

	/* "< last" : a looped replay starts again in the past */
	if (ts - c->last_tick_ts >= TICK_EVERY_NS || ts < c->last_tick_ts) {
		flow_tick(c->flows, clock_now(c->clock));
		c->last_tick_ts = ts;
	}
}

static void dispatch_cb(u_char *user, const struct pcap_pkthdr *h, const u_char *bytes)
{
	capture_packet((struct capture *)user, h, bytes);
}

/* Live only, capture thread only. */
static void update_stats(struct capture *c)
{
	struct pcap_stat ps;

	if (pcap_stats(c->pc, &ps) != 0)
		return;
	/* pcap_stat counters are 32-bit and may wrap: accumulate differences */
	if (ps.ps_drop >= c->prev_kernel_drops) {
		metric_add(c->g_kernel_drops, ps.ps_drop - c->prev_kernel_drops);
		atomic_store(&c->kernel_drops, ps.ps_drop);
	}
	if (ps.ps_ifdrop >= c->prev_iface_drops) {
		metric_add(c->g_iface_drops, ps.ps_ifdrop - c->prev_iface_drops);
		atomic_store(&c->iface_drops, ps.ps_ifdrop);
	}
	c->prev_kernel_drops = ps.ps_drop;
	c->prev_iface_drops = ps.ps_ifdrop;
}

static void *live_thread(void *arg)
{
	struct capture *c = arg;
	uint64_t now;
	int n;

	c->last_stats_mono = clock_mono_ns();
	while (!atomic_load(&c->stop)) {
		n = pcap_dispatch(c->pc, -1, dispatch_cb, (u_char *)c);
		if (n == PCAP_ERROR_BREAK)
			break;
		if (n < 0) {
			metric_inc(c->m_read_errors);
			log_error(LOG_SEL, "%s: capture stopped: %s", c->device,
				  pcap_geterr(c->pc));
			c->thread_rc = -EIO;
			break;
		}
		if (n == 0) /* read timeout: let idle flows expire */
			flow_tick(c->flows, clock_now(c->clock));
		now = clock_mono_ns();
		if (now - c->last_stats_mono >= STATS_EVERY_NS) {
			update_stats(c);
			c->last_stats_mono = now;
		}
	}
	update_stats(c);
	flow_flush_all(c->flows, clock_now(c->clock));
	return NULL;
}

/* Sleep `ns`, in slices so a stop request is honoured promptly. */
static void sleep_ns(struct capture *c, uint64_t ns)
{
	struct timespec ts;
	uint64_t slice;

	while (ns && !atomic_load(&c->stop)) {
		slice = ns < SLEEP_SLICE_NS ? ns : SLEEP_SLICE_NS;
		ts.tv_sec = (time_t)(slice / NS_PER_SEC);
		ts.tv_nsec = (long)(slice % NS_PER_SEC);
		nanosleep(&ts, NULL);
		ns -= slice;
	}
}

/* Read c->pc's file in place when pcapfile takes it (classic pcap, regular file);
 * otherwise stay on pcap_next_ex. Called once c->pc is open and filtered. stdin is
 * left to libpcap: it need not be at offset 0. */
static void file_map(struct capture *c)
{
	const char *path = c->cfg->pcap_file;
	FILE *f = pcap_file(c->pc);
	int rc;

	if (!f || strcmp(path, "-") == 0) {
		log_debug(LOG_SEL, "%s: read with libpcap (stdin)", path);
		return;
	}
	rc = pcapfile_open(fileno(f), &c->pf);
	if (rc != 0) {
		log_debug(LOG_SEL, "%s: read with libpcap (%s)", path, strerror(-rc));
		return;
	}
	log_debug(LOG_SEL, "%s: read in place (mmap)", path);
}

static void file_unmap(struct capture *c)
{
	if (!c->pf)
		return;
	pcapfile_free(c->pf);
	c->pf = NULL;
}

/* The next packet the filter passes, as pcap_next_ex gives it: 1 with *h and *bytes
 * set, 0 at EOF or on a stop request, negative on a read error (file_error() says
 * what). */
static int file_next(struct capture *c, const struct pcap_pkthdr **h, const u_char **bytes)
{
	struct pcap_pkthdr *ph;
	enum pf_verdict v;
	int r;

	if (!c->pf) {
		do
			r = pcap_next_ex(c->pc, &ph, bytes);
		while (r == 0); /* live timeout; not for files */
		*h = ph;
		return r == PCAP_ERROR_BREAK ? 0 : r < 0 ? r : 1; /* _BREAK: EOF or breakloop */
	}
	while (!atomic_load(&c->stop)) {
		r = pcapfile_next(c->pf, &c->pf_hdr, bytes);
		if (r <= 0)
			return r;
		v = port_filter_check(&c->pfilter, *bytes, c->pf_hdr.caplen);
		if (v == PF_PASS ||
		    (v == PF_ASK && pcap_offline_filter(&c->prog, &c->pf_hdr, *bytes))) {
			*h = &c->pf_hdr;
			return 1;
		}
	}
	return 0;
}

static const char *file_error(struct capture *c)
{
	return c->pf ? pcapfile_error(c->pf) : pcap_geterr(c->pc);
}

/* One pass over the file. Returns false when asked to stop. */
static bool file_pass(struct capture *c)
{
	const struct pcap_pkthdr *h;
	const u_char *bytes;
	uint64_t first_ts = 0, start_mono = 0, ts, due, now;
	int r;

	c->packet_no = 0;
	while (!atomic_load(&c->stop)) {
		r = file_next(c, &h, &bytes);
		if (r == 0)
			break;
		if (r < 0) {
			/* a truncated or corrupt file: keep what was read, finish as at EOF */
			metric_inc(c->m_read_errors);
			log_error(LOG_SEL, "pcap read error: %s (after packet %llu of %s)",
				  file_error(c), (unsigned long long)c->packet_no,
				  c->cfg->pcap_file);
			break;
		}
		c->packet_no++;
		if (!c->cfg->topspeed) {
			/* replay at the recorded pace: packet i is due at first + (ts_i - ts_0) */
			ts = (uint64_t)h->ts.tv_sec * NS_PER_SEC +
			     (uint64_t)h->ts.tv_usec * (c->nano ? 1 : NS_PER_US);
			if (c->packet_no == 1) {
				first_ts = ts;
				start_mono = clock_mono_ns();
			} else if (ts > first_ts) {
				due = start_mono + (ts - first_ts);
				now = clock_mono_ns();
				if (due > now)
					sleep_ns(c, due - now);
			}
		}
		capture_packet(c, h, bytes);
	}
	return !atomic_load(&c->stop);
}

static int run_file(struct capture *c)
{
	char errbuf[PCAP_ERRBUF_SIZE];
	long loop;
	int rc = 0;

	for (loop = 0; c->cfg->loops <= 0 || loop < c->cfg->loops; loop++) {
		if (loop > 0) {
			/* timestamps restart in the past: close every flow of the last pass */
			flow_flush_all(c->flows, c->last_ts);
			c->last_tick_ts = 0;
			file_unmap(c);
			pcap_close(c->pc);
			errbuf[0] = '\0';
			c->pc = pcap_open_offline_with_tstamp_precision(
			    c->cfg->pcap_file, PCAP_TSTAMP_PRECISION_NANO, errbuf);
			if (!c->pc) {
				log_error(LOG_SEL, "%s: cannot reopen pcap file: %s",
					  c->cfg->pcap_file, errbuf);
				rc = -EIO;
				break;
			}
			if (set_filter(c, c->cfg->pcap_file) != 0) {
				rc = -EINVAL;
				break;
			}
		}
		file_map(c);
		if (!file_pass(c))
			break;
	}
	/* EOF: every pending transaction becomes an event, at the last packet time */
	flow_flush_all(c->flows, c->last_ts);
	return rc;
}

int capture_run(struct capture *c)
{
	int rc;

	if (!c->device)
		return run_file(c);
	rc = pthread_create(&c->thread, NULL, live_thread, c);
	if (rc != 0) {
		log_error(LOG_SEL, "%s: cannot start capture thread: %s", c->device, strerror(rc));
		return -rc;
	}
	c->thread_started = true;
	return 0;
}

void capture_request_stop(struct capture *c)
{
	atomic_store(&c->stop, true);
	if (c->pc)
		pcap_breakloop(c->pc);
}

void capture_stop(struct capture *c)
{
	if (!c)
		return;
	capture_request_stop(c);
	if (c->thread_started) {
		pthread_join(c->thread, NULL);
		c->thread_started = false;
	}
}

void capture_free(struct capture *c)
{
	if (!c)
		return;
	capture_stop(c);
	flow_table_free(c->flows);
	decoder_free(c->dec);
	file_unmap(c);
	if (c->have_prog)
		pcap_freecode(&c->prog);
	if (c->pc)
		pcap_close(c->pc);
	hb_free(c->filter);
	hb_free(c);
}

const char *capture_device(const struct capture *c)
{
	return c->device ? c->device : c->cfg->pcap_file;
}

void capture_get_stats(struct capture *c, struct capture_stats *st)
{
	st->packets = atomic_load_explicit(&c->packets, memory_order_relaxed);
	st->bytes = atomic_load_explicit(&c->bytes, memory_order_relaxed);
	st->kernel_drops = atomic_load_explicit(&c->kernel_drops, memory_order_relaxed);
	st->iface_drops = atomic_load_explicit(&c->iface_drops, memory_order_relaxed);
}
