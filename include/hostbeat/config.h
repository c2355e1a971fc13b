/* config.h — beats.yml in Beats' key layout, read with libyaml's document API.
 *
 * The YAML tree is flattened to dotted keys (`packetbeat.interfaces.device`,
 * `packetbeat.protocols.0.ports`; nested and dotted spellings are equivalent, as in
 * Beats). Each module declares a table of cfg_field {key, type, offset, default,
 * help}; cfg_load() fills the typed structs below from those tables. Unknown keys
 * and bad values are errors reported as "beats.yml:LINE:COL: message" (exit 2).
 * `-E key=value` overrides any key; its value is parsed as YAML ("[80, 8080]").
 * Values (never keys) of the file and of -E expand ${VAR}, ${VAR:default} (unset VAR),
 * ${VAR:?message} and $${ (a literal "${") before type parsing; an unset VAR without a
 * default is an error (Beats substitutes ""). A list-typed key whose whole value is one
 * ${...} is split on ',' (ELASTICSEARCH_HOSTS="http://a:9200,http://b:9200").
 */
#ifndef HOSTBEAT_CONFIG_H
#define HOSTBEAT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct proto_ops;

enum cfg_type {
	CFG_BOOL,     /* bool */
	CFG_INT,      /* int64_t */
	CFG_UINT,     /* uint64_t */
	CFG_DURATION, /* uint64_t ns; "10s", "400ms", "1m", "2h", or a bare number of seconds */
	CFG_SIZE,     /* uint64_t bytes; 1024, "64KiB", "10MB", "1GiB" */
	CFG_STRING,   /* char * (owned, hb_free) */
	CFG_STRLIST,  /* struct cfg_strlist; a scalar is a one-element list */
	CFG_PORTS,    /* struct cfg_ports; 1..65535 */
};

struct cfg_field {
	const char *key; /* relative to the table's prefix, may contain dots */
	enum cfg_type type;
	size_t offset;   /* offsetof() into the struct the table fills */
	const char *def; /* default as YAML text, NULL = zero/empty */
	const char *help;
	int64_t min, max; /* for INT/UINT/SIZE/DURATION when min < max */
};

struct cfg_strlist {
	char **v;
	size_t n;
};

struct cfg_ports {
	uint16_t *v;
	size_t n;
};

/* One entry of packetbeat.protocols. */
struct cfg_proto {
	const struct proto_ops *ops;
	bool enabled;
	struct cfg_ports ports;
	bool send_request;
	bool send_response;
	uint64_t transaction_timeout; /* ns; also the connection idle timeout */
	uint64_t max_message_size;    /* bytes of raw request/response text kept */
	uint64_t max_pending;         /* pending requests per connection */
	void *priv;                   /* ops->config_size bytes, filled from ops->config */
};

#define CFG_MAX_PROTOS 16

struct hb_config {
	char *path; /* file the config came from ("(embedded)" for the default) */

	bool packetbeat_enabled; /* packetbeat.enabled: false = only the sampler runs */
	/* packetbeat.container_metadata.enabled: container.* on transactions from
	 * Docker's state under topbeat.hostfs */
	bool container_metadata;

	/* packetbeat.interfaces */
	struct cfg_strlist devices; /* names or globs (br-*), "any"; default docker0 else any */
	struct cfg_strlist exclude; /* names or globs never captured */
	uint64_t snaplen;
	uint64_t buffer_size;  /* bytes (buffer_size_mb * MiB) */
	char *bpf_filter;      /* NULL = generated from the protocol ports */
	uint64_t poll_timeout; /* ns, pcap read timeout */

	/* packetbeat.protocols */
	struct cfg_proto protos[CFG_MAX_PROTOS];
	size_t nprotos;

	/* packetbeat.* limits (hostbeat additions) */
	uint64_t max_flows;      /* packetbeat.flow_table.max_flows */
	uint64_t flow_timeout;   /* ns: idle flows without a protocol timeout */
	uint64_t tcp_max_buffer; /* per direction, unconsumed bytes */
	uint64_t tcp_reorder_segments;
	uint64_t tcp_max_buffer_total; /* all connections together */
	uint64_t ipfrag_max_datagrams;
	uint64_t ipfrag_timeout;    /* ns */
	uint64_t max_pending_total; /* pending requests across all connections */
	uint64_t shutdown_timeout;  /* ns */
	bool ignore_outgoing;

	/* queue.mem.* */
	uint64_t queue_events;
	uint64_t max_event_bytes;

	/* outputs (exactly one enabled) */
	bool file_enabled;
	char *file_path;            /* directory */
	uint64_t file_rotate_every; /* bytes (rotate_every_kb * 1024) */
	uint64_t file_number_of_files;
	bool console_enabled;
	bool console_pretty;
	bool es_enabled;             /* output.elasticsearch */
	struct cfg_strlist es_hosts; /* "host:port", "http(s)://host:port/path" */
	char *es_protocol;           /* http | https when a host has no scheme */
	char *es_path;               /* path prefix of every request ("" = none) */
	char *es_username, *es_password;
	char *es_api_key;              /* "id:api_key" (sent base64-encoded) */
	struct cfg_strlist es_headers; /* "Name: value", from output.elasticsearch.headers */
	char *es_index;                /* network events: "packetbeat-%{+yyyy.MM.dd}" */
	char *es_topbeat_index;        /* system events:  "topbeat-%{+yyyy.MM.dd}" */
	char *es_pipeline;             /* ingest pipeline, NULL = none */
	uint64_t es_bulk_max_size;     /* documents per _bulk request */
	uint64_t es_timeout;           /* ns, per HTTP request */
	int64_t es_compression_level;  /* 0 = off, 1..9 gzip */
	uint64_t es_backoff_init, es_backoff_max; /* ns */
	char *es_dead_letter_path;                /* file for documents ES refused for good (4xx) */
	bool ssl_enabled;
	char *ssl_verification_mode; /* full | strict | certificate | none */
	struct cfg_strlist ssl_cas;  /* ssl.certificate_authorities: CA files */
	char *ssl_certificate, *ssl_key, *ssl_key_passphrase;
	char *ssl_ca_trusted_fingerprint; /* hex SHA-256 of a CA cert in the server chain */

	/* queue.spool.* (disk spool of the Elasticsearch output) */
	char *spool_path;
	uint64_t spool_max_bytes, spool_segment_bytes;
	char *spool_fsync; /* always | batch | never */

	/* setup.template.* / setup.ilm.* */
	bool tmpl_enabled;
	char *tmpl_name;       /* component/index template name prefix */
	bool tmpl_overwrite;   /* replace templates that exist */
	int64_t tmpl_shards;   /* settings.index.number_of_shards */
	int64_t tmpl_replicas; /* settings.index.number_of_replicas; -1 = ES default */
	/* setup.kibana.* / setup.dashboards.* */
	char *kibana_host;     /* "localhost:5601" or "http(s)://host:port/path" */
	char *kibana_protocol; /* http | https when the host has no scheme */
	char *kibana_path;     /* base path ("" = none) */
	char *kibana_space_id; /* "" = the default space */
	char *kibana_username, *kibana_password, *kibana_api_key;
	bool kibana_ssl_enabled;
	char *kibana_ssl_verification_mode;
	struct cfg_strlist kibana_ssl_cas;
	bool dashboards_enabled;     /* load the dashboards at start */
	char *dashboards_directory;  /* holds kibana-7/ and kibana-8/ bundles */
	uint64_t dashboards_timeout; /* ns: how long to wait for Kibana to be ready */
	bool ilm_enabled;
	char *ilm_policy_name;
	uint64_t ilm_delete_after; /* ns: indices older than this are deleted */

	/* general */
	char *name; /* agent.name / host.name; default: hostname */
	struct cfg_strlist tags;
	bool legacy_fields; /* also emit Packetbeat 1.x names (bytes_in, responsetime, ...) */

	/* logging.* */
	char *log_level; /* error|warning|info|debug */
	struct cfg_strlist log_selectors;
	bool log_to_stderr;
	char *log_path;

	/* topbeat.* (sys/): Topbeat 1.x keys plus hostbeat additions */
	bool topbeat_enabled;               /* topbeat.enabled; off when replaying a file (-I) */
	uint64_t topbeat_period;            /* ns, topbeat.period */
	char *hostfs;                       /* topbeat.hostfs: root of /proc, /sys, /etc to read */
	struct cfg_strlist procs;           /* topbeat.procs: regexps on the process name */
	bool stats_system;                  /* topbeat.stats.system: cpu, load, memory */
	bool stats_process;                 /* topbeat.stats.process */
	bool stats_filesystem;              /* topbeat.stats.filesystem */
	bool stats_cpu_per_core;            /* topbeat.stats.cpu_per_core: "system.core" events */
	bool stats_container;               /* topbeat.stats.container (hostbeat) */
	bool cpu_ticks;                     /* topbeat.stats.cpu_ticks: also emit .ticks */
	struct cfg_strlist fs_ignore_types; /* topbeat.filesystem.ignore_types */
	uint64_t fs_timeout;                /* ns, topbeat.filesystem.timeout: per statvfs */
	uint64_t proc_max;                  /* topbeat.process.max: processes tracked (cap) */
	uint64_t cmdline_max;               /* topbeat.process.cmdline_max: bytes */
	char *cgroup_root;                  /* topbeat.container.cgroup_root, relative to hostfs */

	/* metrics.* */
	uint64_t metrics_period; /* ns */

	/* command line (not from the file) */
	char *pcap_file; /* -I */
	bool topspeed;   /* -t */
	long loops;      /* -l */
};

struct cfg_error {
	char msg[512]; /* "beats.yml:12:5: unknown key packetbeat.protocol" */
};

/* Load `path` (NULL = ./beats.yml if it exists, else the embedded default), apply
 * the -E overrides ("key=value"), fill `out` with defaults + values. Returns 0, or
 * -EINVAL with err->msg set (the caller prints it and exits 2). */
int cfg_load(const char *path, char *const *overrides, size_t noverrides, struct hb_config *out,
	     struct cfg_error *err);
/* Same, from a string (tests). `name` is used in error messages. */
int cfg_load_string(const char *yaml, const char *name, char *const *overrides, size_t noverrides,
		    struct hb_config *out, struct cfg_error *err);
void cfg_free(struct hb_config *c);
/* Write the effective configuration (defaults included) as YAML (--dump-config). */
int cfg_dump(const struct hb_config *c, void *file /* FILE* */);

/* Lookup helpers for other modules. */
const struct cfg_proto *cfg_proto_by_name(const struct hb_config *c, const char *name);

/* Parse a duration/size scalar; 0 or -EINVAL. Exposed for tests. */
int cfg_parse_duration(const char *s, uint64_t *ns);
int cfg_parse_size(const char *s, uint64_t *bytes);

/* The embedded default configuration (YAML text). */
extern const char cfg_default_yaml[];

#endif
