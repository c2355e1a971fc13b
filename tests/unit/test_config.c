/* test_config.c — core/config.c: defaults, key spellings, protocol forms, every error
 * class with its exact "name:LINE:COL:" prefix, -E overrides, dump round trip, the
 * repo's beats.yml, allocation failures. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "hostbeat/config.h"
#include "hostbeat/mem.h"
#include "hostbeat/proto.h"

#define NS_MS 1000000ULL
#define NS_S 1000000000ULL

static int load(const char *yaml, char *const *ov, size_t nov, struct hb_config *c,
		struct cfg_error *err)
{
	return cfg_load_string(yaml, "t.yml", ov, nov, c, err);
}

static void load_ok(const char *yaml, char *const *ov, size_t nov, struct hb_config *c)
{
	struct cfg_error err = {{0}};
	int rc = load(yaml, ov, nov, c, &err);

	if (rc)
		fail_msg("unexpected config error: %s", err.msg);
}

/* The message starts with `prefix` ("t.yml:3:5: ") and contains `sub`. */
static void expect_error(const char *yaml, char *const *ov, size_t nov, const char *prefix,
			 const char *sub)
{
	struct hb_config c;
	struct cfg_error err = {{0}};
	int rc = load(yaml, ov, nov, &c, &err);

	if (rc != -EINVAL)
		fail_msg("expected -EINVAL, got %d (%s) for:\n%s", rc, err.msg, yaml);
	if (strncmp(err.msg, prefix, strlen(prefix)) != 0 || !strstr(err.msg, sub))
		fail_msg("message '%s' lacks prefix '%s' or text '%s'", err.msg, prefix, sub);
	/* the output struct is left empty on error */
	assert_null(c.path);
	assert_int_equal(c.nprotos, 0);
	cfg_free(&c); /* and freeing it again is harmless */
}

/* Dump into a heap string (caller frees with free()). */
static char *dump_str(const struct hb_config *c)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	assert_int_equal(cfg_dump(c, f), 0);
	fclose(f);
	return buf;
}

static void assert_same_config(const char *a, const char *b)
{
	struct hb_config ca, cb;
	char *da, *db;

	load_ok(a, NULL, 0, &ca);
	load_ok(b, NULL, 0, &cb);
	da = dump_str(&ca);
	db = dump_str(&cb);
	assert_string_equal(da, db);
	free(da);
	free(db);
	cfg_free(&ca);
	cfg_free(&cb);
}

static void test_defaults(void **state)
{
	struct hb_config c;
	char host[256] = "";

	(void)state;
	load_ok("", NULL, 0, &c);
	assert_string_equal(c.path, "t.yml");
	assert_int_equal(c.devices.n, 1);
	assert_string_equal(c.devices.v[0], "docker0");
	assert_int_equal(c.exclude.n, 0);
	assert_int_equal(c.snaplen, 65535);
	assert_int_equal(c.buffer_size, 32ULL << 20);
	assert_null(c.bpf_filter);
	assert_int_equal(c.poll_timeout, 100 * NS_MS);
	assert_int_equal(c.nprotos, 0); /* protocols not listed are not enabled */
	assert_int_equal(c.max_flows, 65536);
	assert_int_equal(c.flow_timeout, 30 * NS_S);
	assert_int_equal(c.tcp_max_buffer, 256 * 1024);
	assert_int_equal(c.tcp_reorder_segments, 32);
	assert_int_equal(c.tcp_max_buffer_total, 64ULL << 20);
	assert_int_equal(c.ipfrag_max_datagrams, 256);
	assert_int_equal(c.ipfrag_timeout, 30 * NS_S);
	assert_int_equal(c.max_pending_total, 16384);
	assert_int_equal(c.shutdown_timeout, 5 * NS_S);
	assert_false(c.ignore_outgoing);
	assert_int_equal(c.queue_events, 4096);
	assert_int_equal(c.max_event_bytes, 1 << 20);
	assert_true(c.file_enabled); /* no output configured: output.file */
	assert_string_equal(c.file_path, "./data");
	assert_int_equal(c.file_rotate_every, 10240 * 1024);
	assert_int_equal(c.file_number_of_files, 7);
	assert_false(c.console_enabled);
	assert_false(c.console_pretty);
	assert_false(c.es_enabled);
	assert_int_equal(c.es_hosts.n, 1);
	assert_string_equal(c.es_hosts.v[0], "localhost:9200");
	gethostname(host, sizeof(host) - 1);
	assert_string_equal(c.name, host);
	assert_int_equal(c.tags.n, 0);
	assert_false(c.legacy_fields);
	assert_string_equal(c.log_level, "info");
	assert_int_equal(c.log_selectors.n, 0);
	assert_false(c.log_to_stderr);
	assert_null(c.log_path);
	assert_int_equal(c.metrics_period, 30 * NS_S);
	cfg_free(&c);
	cfg_free(&c);
}

static void test_embedded_default(void **state)
{
	struct hb_config c;
	const struct cfg_proto *http, *dns;

	(void)state;
	load_ok(cfg_default_yaml, NULL, 0, &c);
	assert_int_equal(c.devices.n, 1);
	assert_string_equal(c.devices.v[0], "docker0");
	assert_int_equal(c.metrics_period, 10 * NS_S);
	assert_true(c.file_enabled);
	assert_string_equal(c.file_path, "./data");
	http = cfg_proto_by_name(&c, "http");
	dns = cfg_proto_by_name(&c, "dns");
	assert_non_null(http);
	assert_non_null(dns);
	assert_true(http->enabled);
	assert_int_equal(http->ports.n, 5);
	assert_int_equal(http->ports.v[0], 80);
	assert_int_equal(http->ports.v[4], 8002);
	assert_int_equal(dns->ports.n, 1);
	assert_int_equal(dns->ports.v[0], 53);
	assert_int_equal(http->transaction_timeout, 10 * NS_S);
	assert_int_equal(http->max_message_size, 10 << 20);
	assert_int_equal(http->max_pending, 64);
	assert_false(http->send_request);
	assert_non_null(cfg_proto_by_name(&c, "mysql"));
	assert_int_equal(c.nprotos, 8);
	if (http->ops->config_size)
		assert_non_null(http->priv);
	cfg_free(&c);
}

static void test_nested_dotted_equivalent(void **state)
{
	(void)state;
	assert_same_config("packetbeat:\n"
			   "  interfaces:\n"
			   "    device: [eth0, br-*]\n"
			   "    snaplen: 1514\n"
			   "  tcp: {max_buffer: 1MiB}\n"
			   "output:\n"
			   "  file:\n"
			   "    path: /tmp/out\n",
			   "packetbeat.interfaces.device: [eth0, br-*]\n"
			   "packetbeat.interfaces.snaplen: 1514\n"
			   "packetbeat.tcp.max_buffer: 1048576\n"
			   "output.file.path: /tmp/out\n");
	assert_same_config("packetbeat.interfaces:\n  snaplen: 1514\n",
			   "packetbeat:\n  interfaces.snaplen: 1514\n");
}

static void test_protocol_forms(void **state)
{
	struct hb_config c;
	const struct cfg_proto *http, *dns;

	(void)state;
	/* 6.0+ list, 5.x map (nested and dotted): the same configuration */
	assert_same_config("packetbeat.protocols:\n"
			   "- type: http\n"
			   "  ports: [80, 8080]\n"
			   "  send_response: true\n"
			   "- type: dns\n"
			   "  transaction_timeout: 2s\n",
			   "packetbeat.protocols:\n"
			   "  http:\n"
			   "    ports: [80, 8080]\n"
			   "    send_response: true\n"
			   "  dns.transaction_timeout: 2s\n");
	assert_same_config("packetbeat.protocols:\n  dns: {}\n",
			   "packetbeat.protocols:\n- type: dns\n");

	load_ok(
	    "packetbeat.protocols:\n"
	    "- type: http\n"
	    "  ports: 8080\n"
	    "  max_message_size: 1024\n"
	    "  max_pending: 8\n"
	    "  send_request: yes\n"
	    "  fields: {env: prod}\n"
	    "  processors:\n"
	    "  - drop_fields: {fields: [a]}\n"
	    "  tags: [web]\n"
	    "  index: x\n"
	    "- type: dns\n"
	    "  enabled: false\n"
	    "  ports: [8080]\n" /* disabled: no port conflict */
	    "- type: amqp\n" /* a Packetbeat protocol hostbeat does not decode: skipped, warned */
	    "  ports: [5672]\n"
	    "  max_body_length: 1000\n",
	    NULL, 0, &c);
	assert_int_equal(c.nprotos, 2);
	http = cfg_proto_by_name(&c, "http");
	dns = cfg_proto_by_name(&c, "dns");
	assert_non_null(http);
	assert_non_null(dns);
	assert_int_equal(http->ports.n, 1);
	assert_int_equal(http->ports.v[0], 8080);
	assert_int_equal(http->max_message_size, 1024);
	assert_int_equal(http->max_pending, 8);
	assert_true(http->send_request);
	assert_false(http->send_response);
	assert_false(dns->enabled);
	assert_null(cfg_proto_by_name(&c, "mysql"));
	cfg_free(&c);
}

/* A protocol-specific key declared by the parser's own table lands in priv. */
static void test_protocol_priv(void **state)
{
	const struct proto_ops *ops = proto_find("http");
	const struct cfg_field *f = NULL;
	struct hb_config c;
	char yaml[512];

	(void)state;
	assert_non_null(ops);
	for (size_t i = 0; i < ops->nconfig && !f; i++)
		if (ops->config[i].type == CFG_STRLIST)
			f = &ops->config[i];
	if (!f)
		skip();
	snprintf(yaml, sizeof(yaml), "packetbeat.protocols:\n- type: http\n  %s: [abc, def]\n",
		 f->key);
	load_ok(yaml, NULL, 0, &c);
	{
		const struct cfg_strlist *l =
		    (const struct cfg_strlist *)((const char *)c.protos[0].priv + f->offset);

		assert_int_equal(l->n, 2);
		assert_string_equal(l->v[1], "def");
	}
	cfg_free(&c);
	expect_error("packetbeat.protocols:\n- type: http\n  no_such_option: 1\n", NULL, 0,
		     "t.yml:3:3: ", "unknown key 'packetbeat.protocols.0.no_such_option'");
}

static void test_interfaces_list(void **state)
{
	struct hb_config c;

	(void)state;
	load_ok("packetbeat.interfaces:\n"
		"- device: eth0\n"
		"- device: docker0\n"
		"  type: af_packet\n"
		"  snaplen: 1514\n"
		"  buffer_size_mb: 8\n",
		NULL, 0, &c);
	assert_int_equal(c.devices.n, 2);
	assert_string_equal(c.devices.v[0], "eth0");
	assert_string_equal(c.devices.v[1], "docker0");
	cfg_free(&c);

	load_ok("packetbeat.interfaces.device: any\n"
		"packetbeat.interfaces.type: af_packet\n"
		"packetbeat.interfaces.with_vlans: true\n"
		"packetbeat.interfaces.internal_networks: [private]\n"
		"packetbeat.interfaces.auto_promisc_mode: true\n"
		"packetbeat.interfaces.exclude: [lo, veth*]\n"
		"packetbeat.interfaces.buffer_size_mb: 4\n"
		"packetbeat.interfaces.bpf_filter: \"\"\n",
		NULL, 0, &c);
	assert_int_equal(c.devices.n, 1);
	assert_string_equal(c.devices.v[0], "any");
	assert_int_equal(c.exclude.n, 2);
	assert_string_equal(c.exclude.v[1], "veth*");
	assert_int_equal(c.buffer_size, 4 << 20);
	assert_null(c.bpf_filter); /* "" = generated */
	cfg_free(&c);

	expect_error("packetbeat.interfaces:\n- device: eth0\n  type: pf_ring\n", NULL, 0,
		     "t.yml:3:9: ",
		     "key 'packetbeat.interfaces.0.type': expected one of pcap, af_packet, got "
		     "'pf_ring'");
	expect_error("packetbeat.interfaces:\n- snaplen: 1514\n", NULL, 0,
		     "t.yml:2:3: ", "has no 'device'");
	expect_error("packetbeat.interfaces:\n- device: eth0\n  snaplen_: 1\n", NULL, 0,
		     "t.yml:3:3: ",
		     "unknown key 'packetbeat.interfaces.0.snaplen_' (did you mean "
		     "'packetbeat.interfaces.0.snaplen'?)");
}

static void test_compat_keys(void **state)
{
	struct hb_config c;

	(void)state;
	load_ok("packetbeat.flows:\n  timeout: 30s\n  period: 10s\n"
		"packetbeat.procs.enabled: false\n"
		"packetbeat.shutdown_timeout: 1s\n"
		"packetbeat.ignore_outgoing: true\n"
		"queue.mem:\n  events: 100\n  flush.min_events: 10\n  flush.timeout: 1s\n"
		"setup.template.enabled: false\n"
		"setup.kibana.host: localhost:5601\n"
		"fields: {env: staging}\n"
		"fields_under_root: true\n"
		"processors:\n- add_host_metadata: ~\n"
		"tags: [a, b]\n"
		"name: probe-1\n"
		"legacy_fields: true\n"
		"logging.level: debug\n"
		"logging.selectors: [http, tcp]\n"
		"logging.to_files: true\n"
		"logging.files: {path: /var/log/hb, keepfiles: 7}\n"
		"logging.metrics.period: 5s\n"
		"output.elasticsearch:\n"
		"  hosts: [\"http://es:9200\", \"es2:9200\"]\n"
		"  username: elastic\n"
		"  password: changeme\n"
		"  headers: {X-Foo: bar}\n"
		"  backoff: {init: 1s, max: 60s}\n"
		"  compression_level: 3\n"
		"  ssl.certificate_authorities: [/etc/ca.pem]\n"
		"  ssl.verification_mode: full\n",
		NULL, 0, &c);
	assert_int_equal(c.shutdown_timeout, NS_S);
	assert_true(c.ignore_outgoing);
	assert_int_equal(c.queue_events, 100);
	assert_int_equal(c.tags.n, 2);
	assert_string_equal(c.name, "probe-1");
	assert_true(c.legacy_fields);
	assert_string_equal(c.log_level, "debug");
	assert_int_equal(c.log_selectors.n, 2);
	assert_string_equal(c.log_path, "/var/log/hb");
	assert_int_equal(c.metrics_period, 5 * NS_S); /* logging.metrics.period alias */
	assert_true(c.es_enabled);
	assert_false(c.file_enabled);
	assert_int_equal(c.es_hosts.n, 2);
	assert_string_equal(c.es_hosts.v[0], "http://es:9200");
	cfg_free(&c);

	/* metrics.period wins over the alias */
	load_ok("metrics.period: 20s\nlogging.metrics.period: 5s\n", NULL, 0, &c);
	assert_int_equal(c.metrics_period, 20 * NS_S);
	cfg_free(&c);

	/* a bare section enables that output with its defaults */
	load_ok("output.console:\n", NULL, 0, &c);
	assert_true(c.console_enabled);
	assert_false(c.file_enabled);
	cfg_free(&c);
	load_ok("output.file.enabled: false\noutput.console: {pretty: true}\n", NULL, 0, &c);
	assert_true(c.console_enabled);
	assert_true(c.console_pretty);
	assert_false(c.file_enabled);
	cfg_free(&c);
}

static void test_error_unknown_key(void **state)
{
	(void)state;
	expect_error("output.file.pth: x\n", NULL, 0, "t.yml:1:1: ",
		     "unknown key 'output.file.pth' (did you mean 'output.file.path'?)");
	expect_error("name: a\noutput:\n  file:\n    pth: x\n", NULL, 0, "t.yml:4:5: ",
		     "unknown key 'output.file.pth' (did you mean 'output.file.path'?)");
	expect_error("packetbeat.protocol:\n- type: http\n", NULL, 0, "t.yml:2:3: ",
		     "unknown key 'packetbeat.protocol.0.type' (did you mean "
		     "'packetbeat.protocols.0.type'?)");
	expect_error("packetbeat.protocols:\n- type: http\n  send_requst: true\n", NULL, 0,
		     "t.yml:3:3: ", "(did you mean 'packetbeat.protocols.0.send_request'?)");
	expect_error("completely.different.thing: 1\n", NULL, 0,
		     "t.yml:1:1: ", "unknown key 'completely.different.thing'");
	expect_error("output.file.codec.format.string: x\n", NULL, 0,
		     "t.yml:1:1: ", "unknown key 'output.file.codec.format.string'");
	expect_error("stup.kibana.host: x\n", NULL, 0, "t.yml:1:1: ",
		     "unknown key 'stup.kibana.host' (did you mean 'setup.kibana.host'?)");
	{
		struct hb_config c;
		struct cfg_error err = {{0}};

		/* a different section is not a typo: no suggestion */
		assert_int_equal(load("output.logstash.hosts: [x]\n", NULL, 0, &c, &err), -EINVAL);
		assert_string_equal(err.msg, "t.yml:1:1: unknown key 'output.logstash.hosts'");
	}
}

static void test_error_duplicate_key(void **state)
{
	(void)state;
	expect_error("output.file:\n  path: x\noutput.file.path: y\n", NULL, 0, "t.yml:3:1: ",
		     "duplicate key 'output.file.path' (first set at line 2, column 3)");
	expect_error("name: a\nname: b\n", NULL, 0, "t.yml:2:1: ", "duplicate key 'name'");
	expect_error("output.file.path: y\noutput:\n  file: {path: x}\n", NULL, 0,
		     "t.yml:3:10: ", "duplicate key 'output.file.path'");
	expect_error("packetbeat.interfaces: x\npacketbeat.interfaces.snaplen: 1\n", NULL, 0,
		     "t.yml:2:1: ", "conflicts with 'packetbeat.interfaces'");
}

static void test_error_bad_values(void **state)
{
	(void)state;
	expect_error("packetbeat.protocols:\n- type: http\n  transaction_timeout: abc\n", NULL, 0,
		     "t.yml:3:24: ",
		     "key 'packetbeat.protocols.0.transaction_timeout': expected a duration like "
		     "10s, got 'abc'");
	expect_error("packetbeat.flow_table.timeout: -1s\n", NULL, 0,
		     "t.yml:1:32: ", "expected a duration like 10s, got '-1s'");
	expect_error("packetbeat.tcp.max_buffer: 10k\n", NULL, 0, "t.yml:1:28: ",
		     "key 'packetbeat.tcp.max_buffer': expected a size like 64KiB, got '10k'");
	expect_error("queue.mem.max_event_bytes: [1]\n", NULL, 0,
		     "t.yml:1:28: ", "expected a size like 64KiB, got a list");
	expect_error("packetbeat.interfaces.snaplen: 10\n", NULL, 0,
		     "t.yml:1:32: ", "expected an integer between 68 and 262144, got '10'");
	expect_error("packetbeat.interfaces.snaplen: 1.5\n", NULL, 0,
		     "t.yml:1:32: ", "expected an integer, got '1.5'");
	expect_error("packetbeat.ignore_outgoing: maybe\n", NULL, 0,
		     "t.yml:1:29: ", "expected true or false, got 'maybe'");
	expect_error("logging.level: verbose\n", NULL, 0,
		     "t.yml:1:16: ", "expected one of error, warning, info, debug, got 'verbose'");
	expect_error("name: [a, b]\n", NULL, 0, "t.yml:1:7: ", "expected a string, got a list");
	expect_error("metrics.period: 10ms\n", NULL, 0,
		     "t.yml:1:17: ", "expected a duration between 1s and 24h, got '10ms'");
	expect_error("packetbeat.protocols: [http, dns]\n", NULL, 0,
		     "t.yml:1:23: ", "expected a list of entries");
}

static void test_error_ports(void **state)
{
	(void)state;
	expect_error("packetbeat.protocols:\n- type: http\n  ports: [80, 0]\n", NULL, 0,
		     "t.yml:3:15: ",
		     "key 'packetbeat.protocols.0.ports': expected a port number 1..65535 or a "
		     "list of them, got '0'");
	expect_error("packetbeat.protocols:\n- type: http\n  ports: [70000]\n", NULL, 0,
		     "t.yml:3:11: ", "got '70000'");
	expect_error("packetbeat.protocols:\n- type: http\n  ports: http\n", NULL, 0,
		     "t.yml:3:10: ", "got 'http'");
	expect_error("packetbeat.protocols:\n- type: http\n  ports: -80\n", NULL, 0,
		     "t.yml:3:10: ", "got '-80'");
	/* the same port in two enabled protocols: reported at the second */
	expect_error("packetbeat.protocols:\n"
		     "- type: http\n"
		     "  ports: [80, 8053]\n"
		     "- type: dns\n"
		     "  ports: [53, 8053]\n",
		     NULL, 0, "t.yml:5:15: ", "port 8053 is already used by protocol 'http'");
	/* default ports count too */
	expect_error("packetbeat.protocols:\n- type: dns\n- type: http\n  ports: [53]\n", NULL, 0,
		     "t.yml:4:11: ", "port 53 is already used by protocol 'dns'");
}

static void test_error_protocols(void **state)
{
	(void)state;
	expect_error("packetbeat.protocols:\n- type: http\n- type: gopher\n", NULL, 0,
		     "t.yml:3:9: ", "unknown protocol type 'gopher' (known: http, dns");
	expect_error("packetbeat.protocols.gopher.ports: [70]\n", NULL, 0,
		     "t.yml:1:1: ", "unknown protocol type 'gopher'");
	expect_error("packetbeat.protocols:\n- ports: [80]\n", NULL, 0,
		     "t.yml:2:3: ", "protocol entry 'packetbeat.protocols.0' has no 'type'");
	expect_error("packetbeat.protocols:\n- type: http\n- type: http\n  ports: [81]\n", NULL, 0,
		     "t.yml:3:9: ", "protocol 'http' is configured twice");
	expect_error("packetbeat.protocols:\n  http: {type: dns}\n", NULL, 0,
		     "t.yml:2:16: ", "must be 'http' in the map form");
	{
		char yaml[4096];
		size_t off = (size_t)snprintf(yaml, sizeof(yaml), "packetbeat.protocols:\n");

		for (int i = 0; i < 70; i++)
			off += (size_t)snprintf(yaml + off, sizeof(yaml) - off, "- type: mysql\n");
		expect_error(yaml, NULL, 0,
			     "t.yml:66:3: ", "more than 64 entries under 'packetbeat.protocols'");
	}
}

static void test_error_outputs(void **state)
{
	(void)state;
	expect_error("output.file.path: x\noutput.console.pretty: true\n", NULL, 0, "t.yml:2:1: ",
		     "only one output can be enabled (output.file and output.console)");
	expect_error("output.console:\n  pretty: true\noutput.elasticsearch:\n  hosts: [a]\n", NULL,
		     0, "t.yml:4:3: ",
		     "only one output can be enabled (output.console and output.elasticsearch)");
}

static void test_error_yaml(void **state)
{
	(void)state;
	expect_error("name: a\n  b: c\n", NULL, 0,
		     "t.yml:2:4: ", "yaml: mapping values are not allowed");
	expect_error("tags: [a, b\nname: x\n", NULL, 0, "t.yml:", "yaml: ");
	expect_error("name: \"abc\n", NULL, 0, "t.yml:", "yaml: ");
	expect_error("- a\n- b\n", NULL, 0, "t.yml:1:1: ", "expected a mapping");
	expect_error("name: a\n---\nname: b\n", NULL, 0,
		     "t.yml:3:1: ", "yaml: only one document is allowed");
	expect_error("tags: [[a]]\n", NULL, 0, "t.yml:1:8: ", "nested lists are not supported");
	expect_error("tags: [a, {b: c}]\n", NULL, 0,
		     "t.yml:1:7: ", "either only values or only mappings");
	expect_error("a..b: 1\n", NULL, 0, "t.yml:1:1: ", "invalid key 'a..b'");
	expect_error("name: *nope\n", NULL, 0, "t.yml:1:7: ", "yaml: ");
	/* an alias bomb stays bounded */
	expect_error(
	    "a: &a {x1: 1, x2: 1, x3: 1, x4: 1, x5: 1, x6: 1, x7: 1, x8: 1, x9: 1, x0: 1}\n"
	    "b: &b {a1: *a, a2: *a, a3: *a, a4: *a, a5: *a, a6: *a, a7: *a, a8: *a}\n"
	    "c: &c {b1: *b, b2: *b, b3: *b, b4: *b, b5: *b, b6: *b, b7: *b, b8: *b}\n"
	    "d: &d {c1: *c, c2: *c, c3: *c, c4: *c, c5: *c, c6: *c, c7: *c, c8: *c}\n"
	    "e: &e {d1: *d, d2: *d, d3: *d, d4: *d, d5: *d, d6: *d, d7: *d, d8: *d}\n",
	    NULL, 0, "t.yml:", "more than 10000 configuration keys");
	expect_error("x: &a {y: *a}\n", NULL, 0, "t.yml:", "nested too deeply");
	expect_error("x: &a [*a]\n", NULL, 0, "t.yml:1:4: ", "nested lists are not supported");
}

static void test_overrides(void **state)
{
	const char *base = "packetbeat.protocols:\n"
			   "- type: http\n"
			   "  ports: [80]\n"
			   "output.file:\n"
			   "  path: ./data\n";
	char *ov1[] = {"output.file.path=/tmp/x",
		       "packetbeat.protocols.0.ports=[80,8080]",
		       "packetbeat.interfaces.snaplen=1514",
		       "packetbeat.protocols.1.type=dns",
		       "tags=[a, \"b c\"]",
		       "logging.level=debug"};
	char *ov2[] = {"output.file.enabled=false", "output.console.enabled=true"};
	char *ov3[] = {"output.file={path: /a, number_of_files: 3}"};
	char *ov4[] = {"name=x", "name=y"};
	struct hb_config c;

	(void)state;
	load_ok(base, ov1, 6, &c);
	assert_string_equal(c.file_path, "/tmp/x");
	assert_int_equal(c.protos[0].ports.n, 2);
	assert_int_equal(c.protos[0].ports.v[1], 8080);
	assert_int_equal(c.snaplen, 1514);
	assert_non_null(cfg_proto_by_name(&c, "dns"));
	assert_int_equal(c.tags.n, 2);
	assert_string_equal(c.tags.v[1], "b c");
	assert_string_equal(c.log_level, "debug");
	cfg_free(&c);

	load_ok(base, ov2, 2, &c);
	assert_false(c.file_enabled);
	assert_true(c.console_enabled);
	cfg_free(&c);

	/* a mapping replaces the whole section */
	load_ok(base, ov3, 1, &c);
	assert_string_equal(c.file_path, "/a");
	assert_int_equal(c.file_number_of_files, 3);
	cfg_free(&c);

	load_ok(base, ov4, 2, &c); /* the last one wins */
	assert_string_equal(c.name, "y");
	cfg_free(&c);

	{
		char *bad1[] = {"packetbeat.interfaces.snaplen=abc"};
		char *bad2[] = {"name=a", "nokey"};
		char *bad3[] = {"name=a", "foo.bar=1"};
		char *bad4[] = {"tags=[a,"};
		char *bad5[] = {"output.console.enabled=true"};
		char *bad6[] = {"=1"};

		expect_error(base, bad1, 1, "-E:1: ",
			     "key 'packetbeat.interfaces.snaplen': expected an integer, got 'abc'");
		expect_error(base, bad2, 2, "-E:2: ", "expected KEY=VALUE, got 'nokey'");
		expect_error(base, bad3, 2, "-E:2: ", "unknown key 'foo.bar'");
		expect_error(base, bad4, 1, "-E:1: ", "yaml: ");
		expect_error(base, bad5, 1, "-E:1: ",
			     "only one output can be enabled (output.file and output.console)");
		expect_error(base, bad6, 1, "-E:1: ", "expected KEY=VALUE");
	}
}

static void test_dump_round_trip(void **state)
{
	char *ov[] = {"logging.files.path=/var/log/x \"q\""};
	struct hb_config a, b;
	char *da, *db;
	struct cfg_error err = {{0}};

	(void)state;
	load_ok("packetbeat.interfaces.device: [eth0, \"br-*\"]\n"
		"packetbeat.interfaces.exclude: [lo]\n"
		"packetbeat.interfaces.buffer_size_mb: 7\n"
		"packetbeat.interfaces.bpf_filter: \"tcp port 80\"\n"
		"packetbeat.interfaces.poll_timeout: 1.5s\n"
		"packetbeat.protocols:\n"
		"- type: dns\n"
		"  send_request: true\n"
		"  transaction_timeout: 1500us\n"
		"- type: http\n"
		"  enabled: false\n"
		"  max_message_size: 64KiB\n"
		"packetbeat.tcp.max_buffer_total: 10MB\n"
		"packetbeat.flow_table.timeout: 1m30s\n"
		"output.console.pretty: true\n"
		"name: \"weird: name\\twith tab\"\n"
		"tags: []\n"
		"metrics.period: 2h\n",
		ov, 1, &a);
	da = dump_str(&a);
	assert_int_equal(cfg_load_string(da, "dump", NULL, 0, &b, &err), 0);
	db = dump_str(&b);
	assert_string_equal(da, db);
	assert_int_equal(b.poll_timeout, 1500 * NS_MS);
	assert_int_equal(b.buffer_size, 7 << 20);
	assert_int_equal(b.tcp_max_buffer_total, 10000000);
	assert_int_equal(b.flow_timeout, 90 * NS_S);
	assert_string_equal(b.name, "weird: name\twith tab");
	assert_string_equal(b.log_path, "/var/log/x \"q\"");
	assert_string_equal(b.bpf_filter, "tcp port 80");
	assert_true(b.console_enabled && b.console_pretty && !b.file_enabled);
	assert_int_equal(b.nprotos, 2);
	assert_string_equal(b.protos[0].ops->name, "dns");
	assert_int_equal(b.protos[0].transaction_timeout, 1500000);
	assert_false(b.protos[1].enabled);
	free(da);
	free(db);
	cfg_free(&a);
	cfg_free(&b);

	/* the defaults round-trip too */
	load_ok("", NULL, 0, &a);
	da = dump_str(&a);
	assert_non_null(strstr(da, "packetbeat.protocols: []\n"));
	assert_int_equal(cfg_load_string(da, "dump", NULL, 0, &b, &err), 0);
	db = dump_str(&b);
	assert_string_equal(da, db);
	free(da);
	free(db);
	cfg_free(&a);
	cfg_free(&b);
}

/* The repo's commented beats.yml loads and means the same as the embedded default. */
static void test_repo_beats_yml(void **state)
{
	static const char *const where[] = {"beats.yml", "../beats.yml", "../../beats.yml"};
	const char *path = NULL;
	struct hb_config file, emb;
	struct cfg_error err = {{0}};
	char *df, *de;

	(void)state;
	for (size_t i = 0; i < sizeof(where) / sizeof(where[0]) && !path; i++)
		if (access(where[i], R_OK) == 0)
			path = where[i];
	if (!path) {
		print_message("beats.yml not found from the current directory; skipped\n");
		skip();
	}
	if (cfg_load(path, NULL, 0, &file, &err) != 0)
		fail_msg("%s", err.msg);
	load_ok(cfg_default_yaml, NULL, 0, &emb);
	assert_string_equal(file.path, path);
	assert_int_equal(file.nprotos, emb.nprotos);
	for (size_t i = 0; i < file.nprotos; i++) {
		assert_ptr_equal(file.protos[i].ops, emb.protos[i].ops);
		assert_int_equal(file.protos[i].enabled, emb.protos[i].enabled);
	}
	df = dump_str(&file);
	de = dump_str(&emb);
	assert_string_equal(df, de);
	free(df);
	free(de);
	cfg_free(&file);
	cfg_free(&emb);
}

static void test_load_file_errors(void **state)
{
	char path[] = "/tmp/hb_test_config_XXXXXX";
	struct hb_config c;
	struct cfg_error err = {{0}};
	int fd;

	(void)state;
	assert_int_equal(cfg_load("/nonexistent/beats.yml", NULL, 0, &c, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "/nonexistent/beats.yml: cannot open"));
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "name: a\nsnaplen: 1\n", 19), 19);
	close(fd);
	assert_int_equal(cfg_load(path, NULL, 0, &c, &err), -EINVAL);
	assert_non_null(strstr(err.msg, ":2:1: unknown key 'snaplen'"));
	assert_int_equal(strncmp(err.msg, path, strlen(path)), 0);
	unlink(path);
}

static void test_parse_duration(void **state)
{
	static const struct {
		const char *s;
		uint64_t ns;
	} good[] = {
	    {"10s", 10 * NS_S},
	    {"400ms", 400 * NS_MS},
	    {"1m", 60 * NS_S},
	    {"2h", 7200 * NS_S},
	    {"1.5s", 1500 * NS_MS},
	    {"250us", 250000},
	    {"0", 0},
	    {"10", 10 * NS_S},
	    {"1m30s", 90 * NS_S},
	    {"0.25", 250 * NS_MS},
	    {"7ns", 7},
	    {"1.5h", 5400 * NS_S},
	    {"18446744073709551615ns", UINT64_MAX},
	};
	static const char *const bad[] = {
	    "",
	    "abc",
	    "-1s",
	    "10 s",
	    "s",
	    ".",
	    ".s",
	    "10x",
	    "1d",
	    "1s5",
	    " 1s",
	    "18446744073709551616ns",
	    "5124095576h",
	    "99999999999999999999",
	};
	uint64_t v;

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		v = 1;
		if (cfg_parse_duration(good[i].s, &v) != 0 || v != good[i].ns)
			fail_msg("'%s' → %llu", good[i].s, (unsigned long long)v);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (cfg_parse_duration(bad[i], &v) != -EINVAL)
			fail_msg("'%s' accepted", bad[i]);
}

static void test_parse_size(void **state)
{
	static const struct {
		const char *s;
		uint64_t b;
	} good[] = {
	    {"1024", 1024},     {"64KiB", 65536},   {"10MiB", 10 << 20},
	    {"1GiB", 1 << 30},  {"10MB", 10000000}, {"5kb", 5000},
	    {"3 MiB", 3 << 20}, {"0", 0},           {"12B", 12},
	};
	static const char *const bad[] = {"",        "1k",          "abc",
					  "-1",      "1.5MiB",      "10 ",
					  "MiB",     "16777216TiB", "99999999999999999999",
					  "10 MiB x"};
	uint64_t v;

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		v = 1;
		if (cfg_parse_size(good[i].s, &v) != 0 || v != good[i].b)
			fail_msg("'%s' → %llu", good[i].s, (unsigned long long)v);
	}
	assert_int_equal(cfg_parse_size("16777215TiB", &v), 0);
	assert_int_equal(v, 16777215ULL << 40);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (cfg_parse_size(bad[i], &v) != -EINVAL)
			fail_msg("'%s' accepted", bad[i]);
}

/* Every allocation failure point returns -ENOMEM cleanly (ASan checks for leaks). */
/* ${VAR} expansion in values (go-ucfg forms), with errors at the value's line:col. */
static void test_env_expansion(void **state)
{
	struct hb_config c, again;
	char *dump;

	(void)state;
	setenv("HB_T_HOSTS", "http://a:9200, http://b:9200,,", 1);
	setenv("HB_T_ONE", "http://one:9200", 1);
	setenv("HB_T_PORT", "1514", 1);
	setenv("HB_T_LIST", "[1,2]", 1);
	setenv("HB_T_EMPTY", "", 1);
	setenv("HB_T_PORTS", "80, 8080", 1);
	unsetenv("HB_T_UNSET");

	/* ${VAR}, list splitting, integer from env, literal YAML text stays a string */
	load_ok("output.elasticsearch.hosts: '${HB_T_HOSTS}'\n"
		"packetbeat.interfaces.snaplen: ${HB_T_PORT}\n"
		"output.elasticsearch.username: ${HB_T_LIST}\n"
		"output.elasticsearch.password: \"x${HB_T_EMPTY}y\"\n"
		"output.elasticsearch.path: '$${HB_T_ONE}/$x$'\n"
		"packetbeat.protocols:\n- type: http\n  ports: ${HB_T_PORTS}\n",
		NULL, 0, &c);
	assert_int_equal(c.es_hosts.n, 2);
	assert_string_equal(c.es_hosts.v[0], "http://a:9200");
	assert_string_equal(c.es_hosts.v[1], "http://b:9200");
	assert_int_equal(c.snaplen, 1514);
	assert_string_equal(c.es_username, "[1,2]");
	assert_string_equal(c.es_password, "xy");
	assert_string_equal(c.es_path, "${HB_T_ONE}/$x$");
	assert_int_equal(c.protos[0].ports.n, 2);
	assert_int_equal(c.protos[0].ports.v[1], 8080);
	/* --dump-config writes a literal "${" back as "$${" */
	dump = dump_str(&c);
	assert_non_null(strstr(dump, "\"$${HB_T_ONE}/$x$\""));
	load_ok(dump, NULL, 0, &again);
	assert_string_equal(again.es_path, "${HB_T_ONE}/$x$");
	cfg_free(&again);
	free(dump);
	cfg_free(&c);

	/* defaults: unset → default (also split), set-but-empty stays empty, empty default */
	load_ok("output.elasticsearch.hosts: ${HB_T_UNSET:http://d1:9200,http://d2:9200}\n"
		"packetbeat.interfaces.snaplen: ${HB_T_UNSET:9000}\n"
		"output.elasticsearch.username: ${HB_T_EMPTY:nobody}\n"
		"output.elasticsearch.password: '${HB_T_UNSET:}'\n"
		"output.elasticsearch.path: /p/${HB_T_UNSET:a,b}\n"
		"tags: [\"${HB_T_ONE}\", x]\n",
		NULL, 0, &c);
	assert_int_equal(c.es_hosts.n, 2);
	assert_string_equal(c.es_hosts.v[1], "http://d2:9200");
	assert_int_equal(c.snaplen, 9000);
	assert_string_equal(c.es_username, "");
	assert_string_equal(c.es_password, "");
	assert_string_equal(c.es_path, "/p/a,b");
	assert_int_equal(c.tags.n, 2);
	assert_string_equal(c.tags.v[0], "http://one:9200");
	cfg_free(&c);

	/* a variable's value is not expanded again */
	setenv("HB_T_REC", "${HB_T_UNSET}", 1);
	load_ok("name: ${HB_T_REC}\n", NULL, 0, &c);
	assert_string_equal(c.name, "${HB_T_UNSET}");
	cfg_free(&c);
	unsetenv("HB_T_REC");

	/* one host without a comma: a one-item list */
	load_ok("output.elasticsearch.hosts: ${HB_T_ONE}\n", NULL, 0, &c);
	assert_int_equal(c.es_hosts.n, 1);
	assert_string_equal(c.es_hosts.v[0], "http://one:9200");
	cfg_free(&c);

	/* the type check sees the expanded text */
	setenv("HB_T_PORT", "big", 1);
	expect_error("name: x\npacketbeat.interfaces.snaplen: ${HB_T_PORT}\n", NULL, 0,
		     "t.yml:2:32: ", "expected an integer, got 'big'");
	unsetenv("HB_T_PORT");
	unsetenv("HB_T_LIST");
	unsetenv("HB_T_PORTS");
}

static void test_env_expansion_overrides(void **state)
{
	char *ov1[] = {"output.elasticsearch.hosts=${HB_T_HOSTS}",
		       "packetbeat.interfaces.snaplen=${HB_T_UNSET:2000}"};
	char *ov2[] = {"name=${HB_T_UNSET}"};
	char *ov3[] = {"output.elasticsearch.hosts=http://e:9200"};
	struct hb_config c;

	(void)state;
	setenv("HB_T_HOSTS", "http://a:9200,http://b:9200", 1);
	unsetenv("HB_T_UNSET");
	load_ok("name: x\n", ov1, 2, &c);
	assert_int_equal(c.es_hosts.n, 2);
	assert_string_equal(c.es_hosts.v[1], "http://b:9200");
	assert_int_equal(c.snaplen, 2000);
	cfg_free(&c);
	expect_error("name: x\n", ov2, 1, "-E:1: ", "environment variable HB_T_UNSET is not set");
	/* a file value replaced by -E is never expanded */
	load_ok("output.elasticsearch.hosts: ${HB_T_UNSET:?must not be evaluated}\n", ov3, 1, &c);
	assert_string_equal(c.es_hosts.v[0], "http://e:9200");
	cfg_free(&c);
	unsetenv("HB_T_HOSTS");
}

static void test_env_expansion_errors(void **state)
{
	size_t n = 10000;
	char *big = malloc(5 * n + 64);
	char *p;

	(void)state;
	assert_non_null(big);
	unsetenv("HB_T_UNSET");
	setenv("HB_T_ONE", "v", 1);
	expect_error("name: x\ntags: [a, '${HB_T_UNSET}']\n", NULL, 0,
		     "t.yml:2:11: ", "environment variable HB_T_UNSET is not set");
	expect_error("name: x\n\noutput.elasticsearch.password: ${HB_T_UNSET:?set the password}\n",
		     NULL, 0, "t.yml:3:32: ", "set the password");
	expect_error("name: \"${HB_T_ONE\"\n", NULL, 0, "t.yml:1:7: ", "unterminated '${HB_T_ONE'");
	expect_error("name: ${HB_T ONE}\n", NULL, 0,
		     "t.yml:1:7: ", "invalid environment variable name");
	expect_error("name: a${}b\n", NULL, 0, "t.yml:1:7: ", "empty environment variable name");
	expect_error("name: ${HB_T_UNSET:${HB_T_ONE}}\n", NULL, 0,
		     "t.yml:1:7: ", "nested ${...} is not supported");

	/* 10k nested and 10k unterminated: one clean error each */
	p = big + sprintf(big, "name: \"");
	for (size_t i = 0; i < n; i++)
		p += sprintf(p, "${A:");
	for (size_t i = 0; i < n; i++)
		*p++ = '}';
	strcpy(p, "\"\n");
	expect_error(big, NULL, 0, "t.yml:1:7: ", "nested ${...} is not supported");
	p = big + sprintf(big, "name: '");
	for (size_t i = 0; i < n; i++)
		p += sprintf(p, "${");
	strcpy(p, "'\n");
	expect_error(big, NULL, 0, "t.yml:1:7: ", "invalid environment variable name");

	/* many references, and a result over the length cap */
	p = big + sprintf(big, "name: ");
	for (size_t i = 0; i < 100; i++)
		p += sprintf(p, "${HB_T_ONE}");
	strcpy(p, "\n");
	expect_error(big, NULL, 0, "t.yml:1:7: ", "references in one value");
	free(big);
	big = malloc(40000);
	assert_non_null(big);
	memset(big, 'x', 39999);
	big[39999] = '\0';
	setenv("HB_T_BIG", big, 1);
	expect_error("name: ${HB_T_BIG}${HB_T_BIG}\n", NULL, 0,
		     "t.yml:1:7: ", "after environment expansion");
	unsetenv("HB_T_BIG");
	free(big);

	/* keys are never expanded */
	setenv("HB_T_KEY", "name", 1);
	expect_error("${HB_T_KEY}: x\n", NULL, 0, "t.yml:1:1: ", "unknown key '${HB_T_KEY}'");
	unsetenv("HB_T_KEY");
	unsetenv("HB_T_ONE");
}

static void test_alloc_failures(void **state)
{
	const char *yaml = "packetbeat.interfaces:\n- device: eth0\n"
			   "packetbeat.protocols:\n- type: http\n  ports: [80]\n- type: dns\n"
			   "output.file.path: /tmp\ntags: ${HB_T_UNSET:a,b}\n"
			   "logging.level: '${HB_T_UNSET:info}'\n";
	char *ov[] = {"name=z", "packetbeat.protocols.0.ports=[81]"};
	struct hb_config c;
	struct cfg_error err;
	long n;
	int rc = -ENOMEM;

	(void)state;
	unsetenv("HB_T_UNSET");
	for (n = 0; n < 100000 && rc; n++) {
		mem_fail_after(n);
		rc = cfg_load_string(yaml, "t.yml", ov, 2, &c, &err);
		mem_fail_reset();
		if (rc && rc != -ENOMEM)
			fail_msg("after %ld allocations: %d %s", n, rc, err.msg);
		if (rc)
			assert_null(c.path);
	}
	assert_int_equal(rc, 0);
	assert_true(n > 10);
	cfg_free(&c);
}

/* The keys this issue's outputs and sampler added: their bad forms are file:line:col
 * errors, and their good forms land in the struct. */
static void test_es_topbeat_keys(void **state)
{
	struct hb_config c;

	(void)state;
	expect_error("output.elasticsearch:\n  hosts: [x]\n  index: Packetbeat-%{+yyyy}\n", NULL, 0,
		     "t.yml:3:10: ", "lowercase");
	expect_error("output.elasticsearch:\n  hosts: [x]\n  index: 'p-%{+YYYY.MM.dd}'\n", NULL, 0,
		     "t.yml:3:10: ", "yyyy");
	expect_error("queue.spool.fsync: sometimes\n", NULL, 0, "t.yml:1:", "always, batch, never");
	expect_error("output.elasticsearch:\n  hosts: [x]\n  ssl.verification_mode: maybe\n", NULL,
		     0, "t.yml:3:", "full, strict, certificate, none");
	expect_error("output.elasticsearch:\n  hosts: [x]\n  headers:\n    'Bad Name': v\n", NULL,
		     0, "t.yml:4:", "bad HTTP header");
	expect_error("output.elasticsearch:\n  hosts: [x]\n  compression_level: 10\n", NULL, 0,
		     "t.yml:3:", "compression_level");
	expect_error("topbeat:\n  stats.system: false\n  stats.process: false\n"
		     "  stats.filesystem: false\n  stats.container: false\n",
		     NULL, 0, "t.yml:", "at least one of");
	expect_error("topbeat.period: 10ms\n", NULL, 0, "t.yml:1:", "topbeat.period");
	expect_error("topbeat.stats.cpu: true\n", NULL, 0, "t.yml:1:", "unknown key");

	load_ok("output.elasticsearch:\n  hosts: ['https://a:9200', b]\n  api_key: 'id:key'\n"
		"  headers:\n    X-Team: net\n  topbeat_index: 'sys-%{+yyyy.MM}'\n"
		"queue.spool.fsync: always\ntopbeat.procs: ['^nginx$']\n"
		"topbeat.enabled: true\npacketbeat.enabled: false\n",
		NULL, 0, &c);
	assert_true(c.es_enabled);
	assert_int_equal(c.es_hosts.n, 2);
	assert_int_equal(c.es_headers.n, 1);
	assert_string_equal(c.es_headers.v[0], "X-Team: net");
	assert_string_equal(c.es_topbeat_index, "sys-%{+yyyy.MM}");
	assert_string_equal(c.spool_fsync, "always");
	assert_int_equal(c.procs.n, 1);
	assert_false(c.packetbeat_enabled);
	assert_int_equal(c.es_bulk_max_size, 1600);
	cfg_free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_embedded_default),
	    cmocka_unit_test(test_nested_dotted_equivalent),
	    cmocka_unit_test(test_protocol_forms),
	    cmocka_unit_test(test_protocol_priv),
	    cmocka_unit_test(test_interfaces_list),
	    cmocka_unit_test(test_compat_keys),
	    cmocka_unit_test(test_error_unknown_key),
	    cmocka_unit_test(test_error_duplicate_key),
	    cmocka_unit_test(test_error_bad_values),
	    cmocka_unit_test(test_error_ports),
	    cmocka_unit_test(test_error_protocols),
	    cmocka_unit_test(test_error_outputs),
	    cmocka_unit_test(test_error_yaml),
	    cmocka_unit_test(test_overrides),
	    cmocka_unit_test(test_env_expansion),
	    cmocka_unit_test(test_env_expansion_overrides),
	    cmocka_unit_test(test_env_expansion_errors),
	    cmocka_unit_test(test_dump_round_trip),
	    cmocka_unit_test(test_repo_beats_yml),
	    cmocka_unit_test(test_load_file_errors),
	    cmocka_unit_test(test_parse_duration),
	    cmocka_unit_test(test_parse_size),
	    cmocka_unit_test(test_alloc_failures),
	    cmocka_unit_test(test_es_topbeat_keys),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
