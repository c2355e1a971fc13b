/* commands.h — the one-shot commands of the CLI (private to core/): `test output`
 * and `setup`. Both return the process exit code (0 ok, 1 failed, 2 usage). */
#ifndef HOSTBEAT_CORE_COMMANDS_H
#define HOSTBEAT_CORE_COMMANDS_H

#include <stdbool.h>

#include "hostbeat/config.h"

/* Connect to the configured output and say what is there (Elasticsearch: version and
 * whether each template is in place; file: whether the directory is writable). */
int cmd_test_output(const struct hb_config *cfg, const char *version);
/* Install the index templates and the ILM policy now, replacing what is there
 * (index_management), and/or load the dashboards into Kibana (dashboards). */
int cmd_setup(const struct hb_config *cfg, const char *version, bool index_management,
	      bool dashboards);

/* Load the Kibana dashboards (setup.kibana.*, setup.dashboards.directory): waits for
 * Kibana up to setup.dashboards.timeout. 0 or -1 (logged; printed too with print). */
int cmd_load_dashboards(const struct hb_config *cfg, const char *version, bool print);

#endif
