/* fields.c — the field table (fields.h): every key the encoder and the producers write.
 *
 * Sources, kept in the order of the table:
 *   envelope   shipper/encode.c env_build() (dkeys[]), net/txn.c (error.message),
 *              sys/sampler.c sys_event_new()/sys_publish()
 *   protocols  the ev_set_*()/ev_append_*()/ev_obj_*() keys of every net/proto/NAME.c
 *   metrics    sys/{cpu,load,memory,filesystem,process,container}.c
 *   self       core/metrics.c metrics_fill_event(): "hostbeat.<counter>" (a wildcard)
 * Types follow ECS 8 (docs/reference/ecosystem.md §1) and Packetbeat's / Metricbeat's
 * fields.yml (packetbeat.md §1–3): ip for addresses, date for times, long for counts,
 * scaled_float (factor 1000) for fractions, keyword for the other strings; text only
 * where people search words: raw request/response text, messages, bodies.
 *
 * FF_RARE marks what no golden capture and no live sample of tests/pcap/test_fields.py
 * writes (an RR type absent from the captures, an error path, ...): that test fails on
 * an entry no document reached unless it is marked rare, so the table does not rot.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "shipper/fields.h"

#define F(p, t, fl)            \
	{                      \
		p, t, fl, NULL \
	}
#define KW FT_KEYWORD
#define KT FT_KEYWORD_TEXT
#define TX FT_TEXT
#define LG FT_LONG
#define DB FT_DOUBLE
#define SC FT_SCALED
#define BO FT_BOOLEAN
#define IP FT_IP
#define DT FT_DATE
#define OB FT_OBJECT
#define LEG FF_LEGACY
#define RARE FF_RARE

/* One DNS resource-record section (dns.answers / .authorities / .additionals): the
 * members emit_rr_fields() writes (net/proto/dns.c). `soa` / `ans` / `odd` are the
 * flags of the SOA members, of the other per-type members seen in answers of the
 * captures, and of the per-type members no capture has (SRV, DS, NSEC, NSEC3 salt). */
#define RR_SECTION(sec, soa, ans, odd)                                                            \
	F(sec, OB, 0), F(sec ".algorithm", KW, ans), F(sec ".class", KW, 0),                      \
	    F(sec ".data", KW, 0), F(sec ".digest_type", KW, odd), F(sec ".expiration", KW, ans), \
	    F(sec ".expire", LG, soa), F(sec ".flags", KW, ans), F(sec ".hash", KW, ans),         \
	    F(sec ".inception", KW, ans), F(sec ".iterations", KW, ans),                          \
	    F(sec ".key_tag", KW, ans), F(sec ".labels", KW, ans), F(sec ".minimum", LG, soa),    \
	    F(sec ".name", KW, 0), F(sec ".original_ttl", KW, ans), F(sec ".port", LG, odd),      \
	    F(sec ".preference", LG, ans), F(sec ".priority", LG, odd),                           \
	    F(sec ".protocol", KW, ans), F(sec ".refresh", LG, soa), F(sec ".retry", LG, soa),    \
	    F(sec ".rname", KW, soa), F(sec ".salt", KW, odd), F(sec ".serial", LG, soa),         \
	    F(sec ".signer_name", KW, ans), F(sec ".ttl", LG, 0), F(sec ".type", KW, 0),          \
	    F(sec ".type_bits", KW, odd), F(sec ".type_covered", KW, ans),                        \
	    F(sec ".weight", LG, odd)

/* The eight CPU states of sys/cpu.c KEYS(): system.cpu.*, system.core.* and the
 * Topbeat names cpu.<s> (ms) / cpu.<s>_p, core.<s> / core.<s>_p. */
#define CPU_STATE(s)                                                                              \
	F("system.cpu." s ".pct", SC, 0), F("system.cpu." s ".norm.pct", SC, 0),                  \
	    F("system.cpu." s ".ticks", LG, 0), F("system.core." s ".pct", SC, 0),                \
	    F("system.core." s ".ticks", LG, 0), F("cpu." s, LG, LEG), F("cpu." s "_p", SC, LEG), \
	    F("core." s, LG, LEG), F("core." s "_p", SC, LEG)

const struct field_def fields_table[] = {
    /* ---- every document (encode.c) ---- */
    F("@timestamp", DT, 0),
    F("agent.ephemeral_id", KW, 0),
    F("agent.id", KW, 0),
    F("agent.name", KW, 0),
    F("agent.type", KW, 0),
    F("agent.version", KW, 0),
    F("ecs.version", KW, 0),
    F("event.dataset", KW, 0),
    F("host.name", KW, 0),
    F("tags", KW, 0),

    /* ---- transaction envelope (encode.c, net/txn.c) ---- */
    F("client.bytes", LG, 0),
    F("client.ip", IP, 0),
    F("client.port", LG, 0),
    F("destination.bytes", LG, 0),
    F("destination.ip", IP, 0),
    F("destination.port", LG, 0),
    F("error.message", TX, 0),
    F("event.category", KW, 0),
    F("event.duration", LG, 0), /* ns; metricsets: the collection time */
    F("event.end", DT, 0),
    F("event.kind", KW, 0),
    F("event.start", DT, 0),
    F("event.type", KW, 0),
    F("network.bytes", LG, 0),
    F("network.community_id", KW, 0),
    F("network.protocol", KW, 0),
    F("network.transport", KW, 0),
    F("network.type", KW, 0),
    F("observer.ingress.interface.name", KW, RARE), /* live capture only */
    F("related.ip", IP, 0),
    F("server.bytes", LG, 0),
    F("server.ip", IP, 0),
    F("server.port", LG, 0),
    F("source.bytes", LG, 0),
    F("source.ip", IP, 0),
    F("source.port", LG, 0),
    F("status", KW, 0),
    F("type", KW, 0), /* the protocol, or the Topbeat event type (system, process, ...) */
    /* Packetbeat 1.x names */
    F("bytes_in", LG, LEG),
    F("bytes_out", LG, LEG),
    F("client_ip", IP, LEG),
    F("client_port", LG, LEG),
    F("count", LG, LEG),
    F("ip", IP, LEG),
    F("port", LG, LEG),
    F("responsetime", LG, LEG), /* ms */
    F("transport", KW, LEG),

    /* ---- fields several protocols share ---- */
    F("event.action", KW, 0),
    F("event.outcome", KW, 0),
    F("method", KW, 0),
    F("params", TX, 0),
    F("path", KW, 0),
    F("query", KT, 0),
    F("request", TX, 0),
    F("resource", KW, 0),
    F("response", TX, 0),
    F("related.hosts", KW, 0),
    F("related.user", KW, 0),
    F("user.name", KW, 0), /* HTTP basic auth; the process owner */

    /* ---- dns (net/proto/dns.c) ---- */
    F("dns.additionals_count", LG, 0),
    F("dns.answers_count", LG, 0),
    F("dns.authorities_count", LG, 0),
    F("dns.flags.authentic_data", BO, 0),
    F("dns.flags.authoritative", BO, 0),
    F("dns.flags.checking_disabled", BO, 0),
    F("dns.flags.recursion_available", BO, 0),
    F("dns.flags.recursion_desired", BO, 0),
    F("dns.flags.truncated_response", BO, 0),
    F("dns.header_flags", KW, 0),
    F("dns.id", KW, 0), /* ECS keyword; written as a number (ES indexes "4660") */
    F("dns.op_code", KW, 0),
    F("dns.opt.do", BO, 0),
    F("dns.opt.ext_rcode", KW, 0),
    F("dns.opt.udp_size", LG, 0),
    F("dns.opt.version", KW, 0),
    F("dns.question.class", KW, 0),
    F("dns.question.etld_plus_one", KW, 0),
    F("dns.question.name", KW, 0),
    F("dns.question.registered_domain", KW, 0),
    F("dns.question.subdomain", KW, 0),
    F("dns.question.top_level_domain", KW, 0),
    F("dns.question.type", KW, 0),
    F("dns.resolved_ip", IP, 0),
    F("dns.response_code", KW, 0),
    F("dns.type", KW, 0),
    RR_SECTION("dns.answers", 0, 0, RARE),
    RR_SECTION("dns.authorities", 0, RARE, RARE),
    RR_SECTION("dns.additionals", RARE, RARE, RARE),

    /* ---- http (net/proto/http.c) ---- */
    F("destination.domain", KW, 0),
    F("server.domain", KW, 0),
    F("http.request.body.bytes", LG, 0),
    F("http.request.body.content", TX, 0),
    F("http.request.bytes", LG, 0),
    F("http.request.headers", OB, 0),
    F("http.request.headers.*", KW, 0), /* lower-cased names; repeated ones joined */
    F("http.request.headers.content-length", LG, 0),
    F("http.request.method", KW, 0),
    F("http.request.referrer", KW, 0),
    F("http.response.body.bytes", LG, 0),
    F("http.response.body.content", TX, 0),
    F("http.response.bytes", LG, 0),
    F("http.response.headers", OB, 0),
    F("http.response.headers.*", KW, 0),
    F("http.response.headers.content-length", LG, 0),
    F("http.response.status_code", LG, 0),
    F("http.response.status_phrase", KW, 0),
    F("http.version", KW, 0),
    /* from a configured header (real_ip_header): whatever the client sent */
    {"network.forwarded_ip", FT_IP, 0, "\"ignore_malformed\":true"},
    F("url.domain", KW, 0),
    F("url.extension", KW, 0),
    F("url.full", KT, 0),
    F("url.path", KW, 0),
    F("url.port", LG, 0),
    F("url.query", KW, 0),
    F("url.scheme", KW, 0),
    F("user_agent.original", KT, 0),

    /* ---- memcache (net/proto/memcache.c) ---- */
    F("memcache.protocol_type", KW, 0),
    F("memcache.request.automove", KW, RARE),
    F("memcache.request.bytes", LG, 0),
    F("memcache.request.cas_unique", LG, RARE),
    F("memcache.request.command", KW, 0),
    F("memcache.request.count_values", LG, 0),
    F("memcache.request.delta", LG, 0),
    F("memcache.request.dest_class", LG, RARE),
    F("memcache.request.exptime", LG, 0),
    F("memcache.request.flags", LG, 0),
    F("memcache.request.initial", LG, 0),
    F("memcache.request.keys", KW, 0),
    F("memcache.request.line", KW, RARE),
    F("memcache.request.noreply", BO, 0),
    F("memcache.request.opaque", LG, 0),
    F("memcache.request.opcode", KW, 0),
    F("memcache.request.opcode_value", LG, 0),
    F("memcache.request.quiet", BO, 0),
    F("memcache.request.raw_args", KW, 0),
    F("memcache.request.sleep_us", LG, RARE),
    F("memcache.request.source_class", LG, RARE),
    F("memcache.request.type", KW, 0),
    F("memcache.request.value", LG, RARE),
    F("memcache.request.vbucket", LG, 0),
    F("memcache.request.verbosity", LG, RARE),
    F("memcache.response.bytes", LG, 0),
    F("memcache.response.cas_unique", LG, 0),
    F("memcache.response.command", KW, 0),
    F("memcache.response.count_values", LG, 0),
    F("memcache.response.error_msg", KW, RARE),
    F("memcache.response.flags", LG, 0),
    F("memcache.response.keys", KW, 0),
    F("memcache.response.line", KW, RARE),
    F("memcache.response.opaque", LG, 0),
    F("memcache.response.opcode", KW, 0),
    F("memcache.response.opcode_value", LG, 0),
    F("memcache.response.stats", OB, 0),
    F("memcache.response.stats.name", KW, 0),
    F("memcache.response.stats.value", KW, 0),
    F("memcache.response.status", KW, 0),
    F("memcache.response.status_code", LG, 0),
    F("memcache.response.type", KW, 0),
    F("memcache.response.value", LG, 0),
    F("memcache.response.version", KW, RARE),

    /* ---- mongodb (net/proto/mongodb.c) ---- */
    F("mongodb.cursorId", LG, 0),
    F("mongodb.error", KW, 0),
    F("mongodb.fullCollectionName", KW, 0),
    F("mongodb.numberReturned", LG, 0),
    F("mongodb.numberToReturn", LG, 0),
    F("mongodb.numberToSkip", LG, 0),
    F("mongodb.query", KW, 0),
    F("mongodb.returnFieldsSelector", KW, RARE),
    F("mongodb.selector", KW, RARE),
    F("mongodb.startingFrom", LG, 0),
    F("mongodb.update", KW, RARE),

    /* ---- mysql, pgsql (net/proto/mysql.c, pgsql.c) ---- */
    F("mysql.affected_rows", LG, 0),
    F("mysql.error_code", LG, 0),
    F("mysql.error_message", KW, 0),
    F("mysql.insert_id", LG, 0),
    F("mysql.num_fields", LG, 0),
    F("mysql.num_rows", LG, 0),
    F("pgsql.error_code", KW, 0), /* SQLSTATE, "23505" */
    F("pgsql.error_message", KW, 0),
    F("pgsql.error_severity", KW, 0),
    F("pgsql.num_fields", LG, 0),
    F("pgsql.num_rows", LG, 0),

    /* ---- redis, thrift (net/proto/redis.c, thrift.c) ---- */
    F("redis.error", KW, 0),
    F("redis.return_value", KW, 0),
    F("thrift.exceptions", KW, 0),
    F("thrift.params", KW, 0),
    F("thrift.return_value", KW, 0),
    F("thrift.service", KW, RARE), /* with IDL files only */

    /* ---- every metricset (sys/sampler.c, encode.c) ---- */
    F("event.module", KW, 0),
    F("metricset.name", KW, 0),
    F("metricset.period", LG, 0), /* ms */
    F("service.type", KW, 0),

    /* ---- cpu, core (sys/cpu.c) ---- */
    F("host.cpu.usage", SC, 0),
    F("system.cpu.cores", LG, 0),
    F("system.cpu.total.norm.pct", SC, 0),
    F("system.cpu.total.pct", SC, 0),
    F("system.core.id", LG, 0),
    F("system.core.total.pct", SC, 0),
    F("core.id", LG, LEG),
    CPU_STATE("user"),
    CPU_STATE("nice"),
    CPU_STATE("system"),
    CPU_STATE("idle"),
    CPU_STATE("iowait"),
    CPU_STATE("irq"),
    CPU_STATE("softirq"),
    CPU_STATE("steal"),

    /* ---- load (sys/load.c) ---- */
    F("system.load.1", DB, 0),
    F("system.load.5", DB, 0),
    F("system.load.15", DB, 0),
    F("system.load.cores", LG, 0),
    F("system.load.norm.1", DB, 0),
    F("system.load.norm.5", DB, 0),
    F("system.load.norm.15", DB, 0),
    F("load.load1", DB, LEG),
    F("load.load5", DB, LEG),
    F("load.load15", DB, LEG),

    /* ---- memory (sys/memory.c) ---- */
    F("system.memory.actual.free", LG, 0),
    F("system.memory.actual.used.bytes", LG, 0),
    F("system.memory.actual.used.pct", SC, 0),
    F("system.memory.buffers", LG, 0),
    F("system.memory.cached", LG, 0),
    F("system.memory.free", LG, 0),
    F("system.memory.hugepages.default_size", LG, 0),
    F("system.memory.hugepages.free", LG, 0),
    F("system.memory.hugepages.reserved", LG, 0),
    F("system.memory.hugepages.surplus", LG, 0),
    F("system.memory.hugepages.total", LG, 0),
    F("system.memory.hugepages.used.bytes", LG, 0),
    F("system.memory.hugepages.used.pct", SC, 0),
    F("system.memory.swap.free", LG, 0),
    F("system.memory.swap.total", LG, 0),
    F("system.memory.swap.used.bytes", LG, 0),
    F("system.memory.swap.used.pct", SC, 0),
    F("system.memory.total", LG, 0),
    F("system.memory.used.bytes", LG, 0),
    F("system.memory.used.pct", SC, 0),
    F("mem.actual_free", LG, LEG),
    F("mem.actual_used", LG, LEG),
    F("mem.actual_used_p", SC, LEG),
    F("mem.free", LG, LEG),
    F("mem.total", LG, LEG),
    F("mem.used", LG, LEG),
    F("mem.used_p", SC, LEG),
    F("swap.free", LG, LEG),
    F("swap.total", LG, LEG),
    F("swap.used", LG, LEG),
    F("swap.used_p", SC, LEG),

    /* ---- filesystem (sys/filesystem.c) ---- */
    F("system.filesystem.available", LG, 0),
    F("system.filesystem.device_name", KW, 0),
    F("system.filesystem.files", LG, 0),
    F("system.filesystem.free", LG, 0),
    F("system.filesystem.free_files", LG, 0),
    F("system.filesystem.mount_point", KW, 0),
    F("system.filesystem.total", LG, 0),
    F("system.filesystem.type", KW, 0),
    F("system.filesystem.used.bytes", LG, 0),
    F("system.filesystem.used.pct", SC, 0),
    F("fs.avail", LG, LEG),
    F("fs.device_name", KW, LEG),
    F("fs.files", LG, LEG),
    F("fs.free", LG, LEG),
    F("fs.free_files", LG, LEG),
    F("fs.mount_point", KW, LEG),
    F("fs.total", LG, LEG),
    F("fs.used", LG, LEG),
    F("fs.used_p", SC, LEG),

    /* ---- process (sys/process.c) ---- */
    F("process.args", KW, 0),
    F("process.command_line", KT, 0),
    F("process.cpu.pct", SC, 0),
    F("process.executable", KW, 0),
    F("process.memory.pct", SC, 0),
    F("process.name", KW, 0),
    F("process.parent.pid", LG, 0),
    F("process.pgid", LG, 0),
    F("process.pid", LG, 0),
    F("process.start", DT, 0),
    F("process.state", KW, 0),
    F("process.thread.count", LG, 0),
    F("process.working_directory", KW, 0),
    F("system.process.cmdline", KT, 0),
    F("system.process.cpu.start_time", DT, 0),
    F("system.process.cpu.system.ticks", LG, 0),
    F("system.process.cpu.total.norm.pct", SC, 0),
    F("system.process.cpu.total.pct", SC, 0),
    F("system.process.cpu.total.ticks", LG, 0),
    F("system.process.cpu.total.value", LG, 0), /* ms */
    F("system.process.cpu.user.ticks", LG, 0),
    F("system.process.fd.limit.hard", LG, 0),
    F("system.process.fd.limit.soft", LG, 0),
    F("system.process.fd.open", LG, 0),
    F("system.process.memory.rss.bytes", LG, 0),
    F("system.process.memory.rss.pct", SC, 0),
    F("system.process.memory.share", LG, 0),
    F("system.process.memory.size", LG, 0),
    F("system.process.num_threads", LG, 0),
    F("system.process.state", KW, 0),
    F("proc.cmdline", KT, LEG),
    F("proc.cpu.start_time", KW, LEG), /* "17:48", as Topbeat */
    F("proc.cpu.system", LG, LEG),
    F("proc.cpu.total", LG, LEG),
    F("proc.cpu.total_p", SC, LEG),
    F("proc.cpu.user", LG, LEG),
    F("proc.mem.rss", LG, LEG),
    F("proc.mem.rss_p", SC, LEG),
    F("proc.mem.share", LG, LEG),
    F("proc.mem.size", LG, LEG),
    F("proc.name", KW, LEG),
    F("proc.pid", LG, LEG),
    F("proc.ppid", LG, LEG),
    F("proc.state", KW, LEG),
    F("proc.username", KW, LEG),

    /* ---- container (sys/container.c; container.id also on process events) ---- */
    F("container.cpu.usage", SC, 0),
    F("container.disk.read.bytes", LG, 0),
    F("container.disk.write.bytes", LG, 0),
    F("container.id", KW, 0),
    F("container.image.name", KW, 0),
    F("container.labels", OB, RARE),
    F("container.labels.*", KW, RARE), /* ECS; for add_docker_metadata-style labels */
    F("container.memory.usage", SC, 0),
    F("container.name", KW, 0),
    F("container.runtime", KW, 0),
    F("system.container.cgroup.path", KW, 0),
    F("system.container.cgroup.version", LG, 0),
    F("system.container.cpu.norm.pct", SC, 0),
    F("system.container.cpu.pct", SC, 0),
    F("system.container.cpu.system.ns", LG, 0),
    F("system.container.cpu.throttling.periods", LG, 0),
    F("system.container.cpu.throttling.throttled.ns", LG, 0),
    F("system.container.cpu.throttling.throttled.periods", LG, 0),
    F("system.container.cpu.usage.ns", LG, 0),
    F("system.container.cpu.user.ns", LG, 0),
    F("system.container.io.read.bytes", LG, 0),
    F("system.container.io.write.bytes", LG, 0),
    F("system.container.memory.limit.bytes", LG, 0),
    F("system.container.memory.pct", SC, 0),
    F("system.container.memory.usage.bytes", LG, 0),
    F("system.container.pids.current", LG, 0),
    F("system.container.pids.limit", LG, 0),

    /* ---- the agent's own metrics (core/metrics.c): every counter is a count ---- */
    F("hostbeat", OB, 0),
    F("hostbeat.*", LG, 0),
};

const size_t fields_count = sizeof(fields_table) / sizeof(fields_table[0]);

const char *field_type_es_name(unsigned type)
{
	static const char *const names[FT_NTYPES] = {
	    [FT_KEYWORD] = "keyword", [FT_KEYWORD_TEXT] = "keyword",
	    [FT_TEXT] = "text",       [FT_LONG] = "long",
	    [FT_DOUBLE] = "double",   [FT_SCALED] = "scaled_float",
	    [FT_BOOLEAN] = "boolean", [FT_IP] = "ip",
	    [FT_DATE] = "date",       [FT_OBJECT] = "object",
	};

	return type < FT_NTYPES ? names[type] : NULL;
}

bool field_is_wildcard(const struct field_def *f)
{
	size_t n = strlen(f->path);

	return n >= 2 && f->path[n - 1] == '*' && f->path[n - 2] == '.';
}

const struct field_def *fields_lookup(const char *path)
{
	const struct field_def *best = NULL;
	size_t best_len = 0, plen = strlen(path);

	for (size_t i = 0; i < fields_count; i++) {
		const struct field_def *f = &fields_table[i];
		size_t n;

		if (!field_is_wildcard(f)) {
			if (strcmp(f->path, path) == 0)
				return f;
			continue;
		}
		n = strlen(f->path) - 1; /* "a.b." */
		if (plen > n && memcmp(f->path, path, n) == 0 && n > best_len) {
			best = f;
			best_len = n;
		}
	}
	return best;
}

int fields_path_cmp(const char *a, const char *b)
{
	for (;; a++, b++) {
		unsigned ca = (unsigned char)*a, cb = (unsigned char)*b;

		if (ca == '.')
			ca = 1;
		if (cb == '.')
			cb = 1;
		if (ca != cb)
			return ca < cb ? -1 : 1;
		if (!ca)
			return 0;
	}
}

/* True when `child` is below `parent` ("a.b" below "a"; a wildcard "a.*" below "a"). */
static bool is_below(const char *parent, const char *child)
{
	size_t n = strlen(parent);

	return strncmp(parent, child, n) == 0 && child[n] == '.';
}

static bool path_ok(const char *p)
{
	const char *star = strchr(p, '*');
	size_t n = strlen(p);

	if (!n || p[0] == '.' || p[n - 1] == '.' || strstr(p, ".."))
		return false;
	/* a '*' only as the whole last segment */
	return !star || (star == p + n - 1 && n >= 2 && p[n - 2] == '.');
}

int fields_check(const struct field_def *tab, size_t n, char *msg, size_t size)
{
	for (size_t i = 0; i < n; i++) {
		const struct field_def *a = &tab[i];

		if (!a->path || !path_ok(a->path) || a->type >= FT_NTYPES) {
			snprintf(msg, size, "entry %zu: bad path or type (%s)", i,
				 a->path ? a->path : "NULL");
			return -EINVAL;
		}
		for (size_t j = 0; j < n; j++) {
			const struct field_def *b = &tab[j];

			if (j == i || !b->path)
				continue;
			if (j > i && strcmp(a->path, b->path) == 0) {
				snprintf(msg, size, "%s: listed twice", a->path);
				return -EINVAL;
			}
			if (a->type != FT_OBJECT && is_below(a->path, b->path)) {
				snprintf(msg, size, "%s is a leaf (%s) and the parent of %s",
					 a->path, field_type_es_name(a->type), b->path);
				return -EINVAL;
			}
		}
	}
	if (size)
		msg[0] = '\0';
	return 0;
}
