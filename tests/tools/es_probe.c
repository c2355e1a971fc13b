/* es_probe.c — one request through shipper/es.c, for the tests and for looking at a
 * cluster by hand.
 *
 *   es_probe [-E key=value]... [--tries N] [--max-body BYTES] COMMAND
 *     info                      GET / → version, distribution, flavor, cluster
 *     get|head|delete PATH
 *     post|put PATH FILE [--gzip] [--ctype TYPE]   body from FILE ("-" = stdin);
 *                               --gzip compresses it and sends Content-Encoding: gzip
 *     batch                     lines "METHOD PATH [FILE]" from stdin, one client for
 *                               all (keep-alive, method switching); prints one line
 *                               "METHOD PATH status N len M" or "METHOD PATH error ENAME"
 *
 * The configuration is the embedded default with output.file.enabled=false and the -E
 * overrides, e.g. -E output.elasticsearch.hosts='["https://es:9200"]'
 * -E output.elasticsearch.ssl.verification_mode=none.
 * --tries N: on a transport error send again (to the next host) up to N times in all.
 *
 * stdout: "host URL" then "status N" and the body (get/post/...), or the info lines;
 *         on failure "error ENAME" (the errno name of es_request()/es_info()).
 * stderr: messages, and a last line "metrics requests=… transport_errors=…
 *         failovers=… latency_us=…".
 * Exit: 0 an answer arrived (any HTTP status; info: usable), 1 transport or request
 * error, 2 usage or config error, 3 info: the server was refused (-EOPNOTSUPP, -EBADMSG,
 * -EACCES, -EIO).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "hostbeat/config.h"
#include "hostbeat/mem.h"
#include "hostbeat/metrics.h"
#include "hostbeat/strbuf.h"
#include "shipper/es.h"

#define MAX_OVERRIDES 64

static int usage(void)
{
	fprintf(stderr, "usage: es_probe [-E key=value]... [--tries N] [--max-body BYTES]\n"
			"       info | batch | get PATH | head PATH | delete PATH |\n"
			"       post PATH FILE [--gzip] [--ctype TYPE] | put PATH FILE [--gzip]\n");
	return 2;
}

static int read_file(const char *path, struct strbuf *out)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	char buf[65536];
	size_t n;

	if (!f)
		return -errno;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		strbuf_append(out, buf, n);
	if (f != stdin)
		fclose(f);
	return out->err ? -ENOMEM : 0;
}

static int gzip_buf(const struct strbuf *in, struct strbuf *out)
{
	z_stream z = {0};
	int zrc;

	if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return -ENOMEM;
	if (strbuf_grow(out, deflateBound(&z, in->len)) < 0) {
		deflateEnd(&z);
		return -ENOMEM;
	}
	z.next_in = (Bytef *)in->p;
	z.avail_in = (uInt)in->len;
	z.next_out = (Bytef *)out->p;
	z.avail_out = (uInt)(out->cap);
	zrc = deflate(&z, Z_FINISH);
	out->len = z.total_out;
	deflateEnd(&z);
	return zrc == Z_STREAM_END ? 0 : -EIO;
}

static const char *errname(int e)
{
	const char *n = strerrorname_np(e);

	return n ? n : "EUNKNOWN";
}

static void print_metrics(void)
{
	fprintf(stderr,
		"metrics requests=%llu transport_errors=%llu failovers=%llu latency_us=%llu\n",
		(unsigned long long)metrics_get("output.es.requests"),
		(unsigned long long)metrics_get("output.es.transport_errors"),
		(unsigned long long)metrics_get("output.es.failovers"),
		(unsigned long long)metrics_get("output.es.latency_us"));
}

static bool retryable(int rc)
{
	return rc < 0 && rc != -EFBIG && rc != -EINVAL && rc != -ENOMEM;
}

/* One request per stdin line "METHOD PATH [FILE]", all on one client. 0, or 1 when a
 * line could not be run. */
static int run_batch(struct es_client *c)
{
	char line[4096];
	int ret = 0;

	while (fgets(line, sizeof(line), stdin)) {
		char *method = strtok(line, " \t\r\n"), *path = strtok(NULL, " \t\r\n");
		char *file = strtok(NULL, " \t\r\n");
		struct strbuf body;
		struct es_response r;
		int rc = 0;

		if (!method || !path)
			continue;
		strbuf_init(&body);
		if (file)
			rc = read_file(file, &body);
		if (!rc)
			rc = es_request(c, method, path, NULL, body.p, body.len, false, &r);
		if (rc < 0) {
			printf("%s %s error %s\n", method, path, errname(-rc));
			ret = 1;
		} else {
			printf("%s %s status %d len %zu\n", method, path, r.status, r.len);
		}
		strbuf_free(&body);
	}
	return ret;
}

int main(int argc, char **argv)
{
	char *ov[MAX_OVERRIDES + 1];
	size_t nov = 0;
	const char *cmd = NULL, *path = NULL, *file = NULL, *ctype = NULL;
	bool gz = false;
	long tries = 1, max_body = 0;
	struct hb_config cfg;
	struct cfg_error cerr;
	struct es_client *c = NULL;
	struct strbuf raw, zbody;
	char err[1024];
	int rc = 0, ret = 1;

	ov[nov++] = (char *)"output.file.enabled=false";
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "-E") == 0 && i + 1 < argc) {
			if (nov == MAX_OVERRIDES + 1)
				return usage();
			ov[nov++] = argv[++i];
		} else if (strcmp(a, "--tries") == 0 && i + 1 < argc) {
			tries = strtol(argv[++i], NULL, 10);
		} else if (strcmp(a, "--max-body") == 0 && i + 1 < argc) {
			max_body = strtol(argv[++i], NULL, 10);
		} else if (strcmp(a, "--gzip") == 0) {
			gz = true;
		} else if (strcmp(a, "--ctype") == 0 && i + 1 < argc) {
			ctype = argv[++i];
		} else if (a[0] == '-' && a[1]) {
			return usage();
		} else if (!cmd) {
			cmd = a;
		} else if (!path) {
			path = a;
		} else if (!file) {
			file = a;
		} else {
			return usage();
		}
	}
	if (!cmd || tries < 1)
		return usage();
	if (strcmp(cmd, "info") == 0 || strcmp(cmd, "batch") == 0 ? path != NULL
	    : strcmp(cmd, "post") == 0 || strcmp(cmd, "put") == 0 ? !path || !file
								  : !path || file)
		return usage();

	if (cfg_load_string("", "es_probe", ov, nov, &cfg, &cerr) != 0) {
		fprintf(stderr, "es_probe: %s\n", cerr.msg);
		return 2;
	}
	strbuf_init(&raw);
	strbuf_init(&zbody);
	c = es_client_new(&cfg, err, sizeof(err));
	if (!c) {
		fprintf(stderr, "es_probe: %s\n", err);
		ret = 2;
		goto out;
	}
	if (max_body > 0)
		es_client_set_max_body(c, (size_t)max_body);

	if (strcmp(cmd, "info") == 0) {
		struct es_info info;

		for (long t = 0; t < tries; t++) {
			rc = es_info(c, &info, err, sizeof(err));
			if (!retryable(rc) || rc == -EOPNOTSUPP || rc == -EBADMSG ||
			    rc == -EACCES || rc == -EIO)
				break;
		}
		printf("host %s\n", es_client_host(c));
		if (rc < 0) {
			printf("error %s\n", errname(-rc));
			fprintf(stderr, "es_probe: %s\n", err);
			ret = rc == -EOPNOTSUPP || rc == -EBADMSG || rc == -EACCES || rc == -EIO
				  ? 3
				  : 1;
			goto out;
		}
		printf("number %s\nversion %d %d %d\ndistribution %s\nbuild_flavor %s\n"
		       "cluster_name %s\nserverless %s\nproduct_missing %s\n",
		       info.number, info.major, info.minor, info.patch, info.distribution,
		       info.build_flavor, info.cluster_name, info.serverless ? "true" : "false",
		       info.product_missing ? "true" : "false");
		ret = 0;
		goto out;
	}

	if (strcmp(cmd, "batch") == 0) {
		ret = run_batch(c);
		goto out;
	}

	{
		const char *method = strcmp(cmd, "get") == 0      ? "GET"
				     : strcmp(cmd, "head") == 0   ? "HEAD"
				     : strcmp(cmd, "delete") == 0 ? "DELETE"
				     : strcmp(cmd, "post") == 0   ? "POST"
				     : strcmp(cmd, "put") == 0    ? "PUT"
								  : NULL;
		const struct strbuf *body = &raw;
		struct es_response r;

		if (!method) {
			ret = usage();
			goto out;
		}
		if (file) {
			rc = read_file(file, &raw);
			if (!rc && gz) {
				rc = gzip_buf(&raw, &zbody);
				body = &zbody;
			}
			if (rc) {
				fprintf(stderr, "es_probe: %s: %s\n", file, strerror(-rc));
				ret = 2;
				goto out;
			}
		}
		for (long t = 0; t < tries; t++) {
			rc = es_request(c, method, path, ctype, body->p, body->len, gz && file, &r);
			if (!retryable(rc) || t + 1 == tries)
				break;
			fprintf(stderr, "es_probe: %s (trying %s)\n", es_client_error(c),
				es_client_host(c));
		}
		if (rc < 0) {
			printf("host %s\nerror %s\n", es_client_host(c), errname(-rc));
			fprintf(stderr, "es_probe: %s\n", es_client_error(c));
			goto out;
		}
		printf("host %s\nstatus %d\n", r.host, r.status);
		fwrite(r.body, 1, r.len, stdout);
		if (r.len && r.body[r.len - 1] != '\n')
			putchar('\n');
		ret = 0;
	}
out:
	print_metrics();
	es_client_free(c);
	strbuf_free(&raw);
	strbuf_free(&zbody);
	cfg_free(&cfg);
	return ret;
}
