/* esetup.h — what the Elasticsearch output does when it connects (private to
 * shipper/): GET / to learn what it talks to (and refuse what it cannot speak), then
 * the index templates and ILM policy of shipper/template.h, idempotently. Used by
 * the output at start and after each reconnect, by `hostbeat test output` (check
 * only) and by `hostbeat setup --index-management` (force).
 */
#ifndef HOSTBEAT_SHIPPER_ESETUP_H
#define HOSTBEAT_SHIPPER_ESETUP_H

#include <stdbool.h>
#include <stddef.h>

#include "hostbeat/config.h"
#include "shipper/es.h"
#include "shipper/template.h"

enum es_setup_mode {
	ES_SETUP_INSTALL, /* install what is absent; replace outdated ones only with
			     setup.template.overwrite */
	ES_SETUP_FORCE,   /* install everything (hostbeat setup --index-management) */
	ES_SETUP_CHECK,   /* only look (hostbeat test output) */
};

struct es_setup_item {
	char name[TMPL_NAME_MAX + 16];
	char path[TMPL_PATH_MAX];
	int state;      /* enum tmpl_state before, or -EPROTO */
	bool installed; /* this run PUT it */
};

struct es_setup_report {
	struct es_info info;
	size_t n;
	struct es_setup_item item[TMPL_MAX_REQUESTS];
};

/* Borrows everything. Returns 0; or a negative errno with a one-line reason in err:
 * transport errors as es_request(), -EACCES (401/403), -EOPNOTSUPP (a version we do
 * not speak), -EIO (a template request refused). rep may be NULL. */
int es_setup_run(struct es_client *es, const struct hb_config *cfg, const char *version,
		 enum es_setup_mode mode, struct es_setup_report *rep, char *err, size_t errlen);

const char *es_setup_state_name(int state);

#endif
