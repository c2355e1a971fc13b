/* esetup.c — GET / and the index templates when the Elasticsearch output connects. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "hostbeat/log.h"
#include "shipper/esetup.h"

#define SEL "output.elasticsearch"

const char *es_setup_state_name(int state)
{
	switch (state) {
	case TMPL_ABSENT:
		return "absent";
	case TMPL_CURRENT:
		return "current";
	case TMPL_OUTDATED:
		return "outdated";
	default:
		return "unreadable";
	}
}

/* Look at one resource, put it when the mode says so. 0 or a negative errno. */
static int setup_one(struct es_client *es, const struct hb_config *cfg, struct tmpl_request *r,
		     enum es_setup_mode mode, struct es_setup_item *it, char *err, size_t errlen)
{
	struct es_response resp;
	bool put;
	int rc, state;

	snprintf(it->name, sizeof(it->name), "%s", r->name);
	snprintf(it->path, sizeof(it->path), "%s", r->path);
	it->installed = false;
	rc = es_request(es, "GET", r->path, NULL, NULL, 0, false, &resp);
	if (rc < 0) {
		snprintf(err, errlen, "GET %s on %s: %s", r->path, es_client_host(es),
			 es_client_error(es));
		return rc;
	}
	state = template_installed_state(r, resp.status, resp.body, resp.len);
	/* An ILM policy on ES < 7.14 cannot carry our fingerprint: present is enough. */
	if (state == TMPL_OUTDATED && !r->fingerprint[0])
		state = TMPL_CURRENT;
	it->state = state;
	switch (mode) {
	case ES_SETUP_CHECK:
		return 0;
	case ES_SETUP_FORCE:
		put = true;
		break;
	default:
		put = state != TMPL_CURRENT && (state != TMPL_OUTDATED || cfg->tmpl_overwrite);
		if (state == TMPL_OUTDATED && !cfg->tmpl_overwrite)
			log_warn(SEL,
				 "%s is installed but differs from this version's; keeping it "
				 "(setup.template.overwrite: true or `hostbeat setup "
				 "--index-management` replaces it)",
				 r->path);
		break;
	}
	if (!put)
		return 0;
	rc = es_request(es, r->method, r->path, "application/json", r->body.p, r->body.len, false,
			&resp);
	if (rc < 0) {
		snprintf(err, errlen, "PUT %s on %s: %s", r->path, es_client_host(es),
			 es_client_error(es));
		return rc;
	}
	if (resp.status < 200 || resp.status > 299) {
		snprintf(err, errlen, "PUT %s refused with %d: %.300s", r->path, resp.status,
			 resp.body ? resp.body : "");
		return -EIO;
	}
	it->installed = true;
	log_info(SEL, "installed %s", r->path);
	return 0;
}

int es_setup_run(struct es_client *es, const struct hb_config *cfg, const char *version,
		 enum es_setup_mode mode, struct es_setup_report *rep, char *err, size_t errlen)
{
	struct es_setup_report local;
	struct tmpl_request reqs[TMPL_MAX_REQUESTS];
	struct tmpl_target t;
	size_t n = 0;
	int rc;

	if (!rep)
		rep = &local;
	memset(rep, 0, sizeof(*rep));
	rc = es_info(es, &rep->info, err, errlen);
	if (rc < 0)
		return rc;
	if (template_target_parse(rep->info.distribution, rep->info.number, &t) < 0) {
		snprintf(err, errlen, "%s answered version %s %s, which hostbeat cannot read",
			 es_client_host(es), rep->info.distribution, rep->info.number);
		return -EOPNOTSUPP;
	}
	rc = template_requests(&t, cfg, version, reqs, &n);
	if (rc < 0) {
		snprintf(err, errlen, "cannot build the index templates for %s %s: %s",
			 rep->info.distribution, rep->info.number, strerror(-rc));
		return rc;
	}
	for (size_t i = 0; i < n && rc == 0; i++) {
		rc = setup_one(es, cfg, &reqs[i], mode, &rep->item[i], err, errlen);
		rep->n = i + 1;
	}
	template_requests_free(reqs, n);
	return rc;
}
