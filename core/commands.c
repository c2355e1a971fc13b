/* commands.c — `hostbeat test output` and `hostbeat setup`, in Beats' shape. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/commands.h"
#include "shipper/es.h"
#include "shipper/esetup.h"
#include "shipper/kibana.h"
#include "hostbeat/log.h"

static int es_command(const struct hb_config *cfg, const char *version, enum es_setup_mode mode)
{
	struct es_setup_report rep;
	struct es_client *es;
	char err[512];
	int rc;

	es = es_client_new(cfg, err, sizeof(err));
	if (!es) {
		fprintf(stderr, "output.elasticsearch: %s\n", err);
		return 2;
	}
	printf("elasticsearch: %s...\n", es_client_host(es));
	rc = es_setup_run(es, cfg, version, mode, &rep, err, sizeof(err));
	if (rep.info.number[0]) {
		printf("  connection... OK\n");
		printf("  version: %s (%s%s)\n", rep.info.number, rep.info.distribution,
		       rep.info.serverless ? ", serverless" : "");
	}
	if (rep.n)
		printf("  %s:\n", mode == ES_SETUP_CHECK ? "templates" : "installed");
	for (size_t i = 0; i < rep.n; i++) {
		const struct es_setup_item *it = &rep.item[i];

		if (mode == ES_SETUP_CHECK)
			printf("    %-40s %s\n", it->path, es_setup_state_name(it->state));
		else
			printf("    %-40s %s\n", it->path,
			       it->installed ? "installed" : es_setup_state_name(it->state));
	}
	if (rc < 0)
		printf("  ERROR: %s\n", err);
	else if (mode == ES_SETUP_CHECK)
		printf("  talk to server... OK\n");
	es_client_free(es);
	return rc < 0 ? 1 : 0;
}

/* The file output's directory exists (or can be made) and takes a file. */
static int file_check(const struct hb_config *cfg)
{
	char probe[4096];
	FILE *fp;

	printf("file: %s...\n", cfg->file_path);
	if (mkdir(cfg->file_path, 0750) != 0 && errno != EEXIST) {
		printf("  ERROR: cannot create the directory: %s\n", strerror(errno));
		return 1;
	}
	snprintf(probe, sizeof(probe), "%s/.hostbeat-test-%ld", cfg->file_path, (long)getpid());
	fp = fopen(probe, "w");
	if (!fp) {
		printf("  ERROR: not writable: %s\n", strerror(errno));
		return 1;
	}
	fclose(fp);
	unlink(probe);
	printf("  writable... OK\n");
	return 0;
}

int cmd_test_output(const struct hb_config *cfg, const char *version)
{
	if (cfg->es_enabled)
		return es_command(cfg, version, ES_SETUP_CHECK);
	if (cfg->file_enabled)
		return file_check(cfg);
	printf("console: stdout... OK\n");
	return 0;
}

int cmd_setup(const struct hb_config *cfg, const char *version, bool index_management,
	      bool dashboards)
{
	int rc = 0;

	if (index_management) {
		if (!cfg->es_enabled) {
			fprintf(stderr,
				"setup --index-management needs output.elasticsearch "
				"(the configured output is %s)\n",
				cfg->file_enabled ? "output.file" : "output.console");
			return 2;
		}
		rc = es_command(cfg, version, ES_SETUP_FORCE);
		if (rc == 0)
			printf("Index setup finished.\n");
	}
	if (dashboards && cmd_load_dashboards(cfg, version, true) != 0)
		rc = 1;
	return rc;
}

int cmd_load_dashboards(const struct hb_config *cfg, const char *version, bool print)
{
	struct kibana_report rep;
	char err[1024];
	int rc;

	memset(&rep, 0, sizeof(rep));
	rc = kibana_load_dashboards(cfg, version, &rep, err, sizeof(err));
	if (rc < 0) {
		log_error("setup.kibana", "loading the dashboards: %s", err);
		if (print)
			printf("Kibana: ERROR: %s\n", err);
		return -1;
	}
	log_info("setup.kibana", "loaded %zu saved objects from %s into Kibana %s",
		 rep.success_count, rep.bundle, rep.version);
	if (print)
		printf("Loaded dashboards: %zu objects from %s into Kibana %s\n", rep.success_count,
		       rep.bundle, rep.version);
	return 0;
}
