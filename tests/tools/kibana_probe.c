/* kibana_probe.c — shipper/kibana.c from the command line, for the tests and for
 * loading the dashboards by hand.
 *
 *   kibana_probe [-E key=value]... [--agent-version V] load
 *
 * The configuration is the embedded default with output.file.enabled=false and the -E
 * overrides, e.g. -E setup.kibana.host=http://127.0.0.1:5601
 * -E setup.dashboards.directory=dashboards -E setup.dashboards.timeout=30s.
 *
 * stdout, one "key value" line each (failure lines once per kept failure):
 *   version 8.15.0 | bundle PATH | objects N | polls N | attempts N |
 *   success_count N | error_count N | imported true|false |
 *   failure TYPE ID ERROR_TYPE DETAIL... | error ENAME (on failure)
 * stderr: the reason on failure, then "metrics loaded=… failed=… retries=… requests=…".
 * Exit: 0 every object imported, 1 the load failed, 2 usage or configuration error.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "hostbeat/config.h"
#include "hostbeat/metrics.h"
#include "shipper/kibana.h"

#define MAX_OVERRIDES 64

static int usage(void)
{
	fprintf(stderr, "usage: kibana_probe [-E key=value]... [--agent-version V] load\n");
	return 2;
}

static const char *errname(int e)
{
	const char *n = strerrorname_np(e);

	return n ? n : "EUNKNOWN";
}

int main(int argc, char **argv)
{
	char *ov[MAX_OVERRIDES + 1];
	size_t nov = 0;
	const char *cmd = NULL, *agent_version = NULL;
	struct hb_config cfg;
	struct cfg_error cerr;
	struct kibana_report rep;
	char err[1024];
	int rc;

	ov[nov++] = (char *)"output.file.enabled=false";
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "-E") == 0 && i + 1 < argc) {
			if (nov == MAX_OVERRIDES + 1)
				return usage();
			ov[nov++] = argv[++i];
		} else if (strcmp(a, "--agent-version") == 0 && i + 1 < argc) {
			agent_version = argv[++i];
		} else if (a[0] == '-' || cmd) {
			return usage();
		} else {
			cmd = a;
		}
	}
	if (!cmd || strcmp(cmd, "load") != 0)
		return usage();
	if (cfg_load_string("", "kibana_probe", ov, nov, &cfg, &cerr) != 0) {
		fprintf(stderr, "kibana_probe: %s\n", cerr.msg);
		return 2;
	}

	rc = kibana_load_dashboards(&cfg, agent_version, &rep, err, sizeof(err));
	if (rep.version[0])
		printf("version %s\n", rep.version);
	if (rep.bundle[0])
		printf("bundle %s\n", rep.bundle);
	printf("objects %zu\npolls %u\nattempts %u\nsuccess_count %zu\nerror_count %zu\n"
	       "imported %s\n",
	       rep.objects, rep.status_polls, rep.import_attempts, rep.success_count,
	       rep.error_count, rep.imported ? "true" : "false");
	for (size_t i = 0; i < rep.nfailures; i++) {
		const struct kibana_failure *f = &rep.failures[i];

		printf("failure %s %s %s %s\n", f->type, f->id, f->error_type, f->detail);
	}
	if (rc < 0) {
		printf("error %s\n", errname(-rc));
		fprintf(stderr, "kibana_probe: %s\n", err);
	}
	fprintf(stderr, "metrics loaded=%llu failed=%llu retries=%llu requests=%llu\n",
		(unsigned long long)metrics_get("setup.dashboards.loaded"),
		(unsigned long long)metrics_get("setup.dashboards.failed"),
		(unsigned long long)metrics_get("setup.dashboards.retries"),
		(unsigned long long)metrics_get("setup.kibana.requests"));
	cfg_free(&cfg);
	if (rc < 0)
		return rc == -EINVAL ? 2 : 1;
	return 0;
}
