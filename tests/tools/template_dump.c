/* template_dump — print the requests template_requests() lists (shipper/template.h),
 * one JSON line each, for tests/esdouble/test_templates_double.py and for a look by hand:
 *
 *   template_dump [es|opensearch] [VERSION] [-E key=value]...
 *   {"method":"PUT","path":"/_component_template/hostbeat-mappings","fingerprint":"…","body":{…}}
 *
 * Defaults: es 8.15.0 and the embedded default configuration (-E overrides it, e.g.
 * -E setup.ilm.enabled=true). Exit 2 on a bad argument or configuration, 1 when
 * template_requests() fails.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "hostbeat/config.h"
#include "shipper/template.h"

#define MAX_OVERRIDES 64

int main(int argc, char **argv)
{
	const char *dist = "elasticsearch", *number = "8.15.0";
	char *overrides[MAX_OVERRIDES];
	struct tmpl_request req[TMPL_MAX_REQUESTS];
	struct tmpl_target t;
	struct hb_config cfg;
	struct cfg_error err;
	size_t nover = 0, n = 0, npos = 0;
	int rc;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-E") == 0 && i + 1 < argc && nover < MAX_OVERRIDES) {
			overrides[nover++] = argv[++i];
		} else if (argv[i][0] != '-' && npos == 0) {
			dist = strcmp(argv[i], "es") == 0 ? "elasticsearch" : argv[i];
			npos++;
		} else if (argv[i][0] != '-' && npos == 1) {
			number = argv[i];
			npos++;
		} else {
			fprintf(stderr,
				"usage: template_dump [es|opensearch] [VERSION] [-E k=v]...\n");
			return 2;
		}
	}
	if (template_target_parse(dist, number, &t) < 0) {
		fprintf(stderr, "template_dump: bad target %s %s\n", dist, number);
		return 2;
	}
	if (cfg_load_string(cfg_default_yaml, "(embedded)", overrides, nover, &cfg, &err) < 0) {
		fprintf(stderr, "template_dump: %s\n", err.msg);
		return 2;
	}
	rc = template_requests(&t, &cfg, "0.1.0", req, &n);
	if (rc < 0) {
		fprintf(stderr, "template_dump: template_requests: %s\n", strerror(-rc));
		cfg_free(&cfg);
		return 1;
	}
	for (size_t i = 0; i < n; i++) {
		printf("{\"method\":\"%s\",\"path\":\"%s\",\"fingerprint\":\"%s\",\"body\":%s}\n",
		       req[i].method, req[i].path, req[i].fingerprint, strbuf_cstr(&req[i].body));
	}
	template_requests_free(req, n);
	cfg_free(&cfg);
	return fflush(stdout) == 0 ? 0 : 1;
}
