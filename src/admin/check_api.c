/* check_api.c - outpost check's report over the admin API (see check_api.h). */
#include "admin/check_api.h"

#include "check/report.h"
#include "util/log.h"
#include "util/worker.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_JOBS 5 /* one running and four waiting: each holds a client */

/* One request from its arrival to its answer. The report thread reads
 * domain and stop and writes report, deliverable and why; the loop thread
 * reads those only in job_done, after the worker handed the job back. */
struct check_job {
	struct check_api *api;
	struct evhttp_request *req; /* NULL once the client is gone */
	struct evhttp_connection *evcon;
	char domain[256];
	atomic_bool stop;
	json_t *report;
	bool deliverable;
	char why[256];
	struct check_job *prev, *next;
};

struct check_api {
	struct event_base *base;
	const struct conf *conf;
	struct worker *worker; /* NULL until the first check, and once drained */
	struct check_job *jobs;
	size_t njobs;
	bool draining;
};

static int buffer_append(const char *data, size_t len, void *arg)
{
	return evbuffer_add(arg, data, len);
}

/* As admin.c answers: JSON, never cached, never sniffed. Takes v. */
static void reply_json(struct evhttp_request *req, int code, json_t *v)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	struct evbuffer *b = evbuffer_new();
	json_dump_callback(v, buffer_append, b, JSON_COMPACT);
	evbuffer_add(b, "\n", 1);
	evhttp_add_header(h, "Content-Type", "application/json");
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
	evhttp_send_reply(req, code, NULL, b);
	evbuffer_free(b);
	json_decref(v);
}

static void reply_error(struct evhttp_request *req, int code, const char *msg)
{
	json_t *s = json_string(msg);
	if (s == NULL) /* it quoted input that is not UTF-8 */
		s = json_string("invalid request");
	reply_json(req, code, json_pack("{s:o}", "error", s));
}

struct check_api *check_api_new(struct event_base *base, const struct conf *conf)
{
	struct check_api *c = calloc(1, sizeof *c);
	if (c == NULL)
		abort();
	c->base = base;
	c->conf = conf;
	return c;
}

static void job_unlink(struct check_job *j)
{
	struct check_api *c = j->api;
	if (j->prev)
		j->prev->next = j->next;
	else
		c->jobs = j->next;
	if (j->next)
		j->next->prev = j->prev;
	c->njobs--;
}

/* The client closed: nobody waits for the report any more, so stop it.
 * As in admin.c, a request libevent has detached is ours to free. */
static void job_client_gone(struct evhttp_connection *evcon, void *arg)
{
	struct check_job *j = arg;
	if (j->req && evhttp_request_get_connection(j->req) == NULL)
		evhttp_request_free(j->req);
	j->req = NULL;
	atomic_store(&j->stop, true);
}

/* Report thread. */
static void job_run(void *arg)
{
	struct check_job *j = arg;
	if (atomic_load(&j->stop)) {
		snprintf(j->why, sizeof j->why, "the check was stopped");
		return;
	}
	j->report = check_report_run(j->api->conf, j->domain, &j->stop, &j->deliverable, j->why,
	                             sizeof j->why);
}

/* Loop thread. */
static void job_done(void *arg)
{
	struct check_job *j = arg;
	log_event(j->report ? LOG_INFO : LOG_WARN, "admin_check", "domain=%s result=%s",
	          log_quote(j->domain),
	          j->report ? (j->deliverable ? "deliverable" : "undeliverable")
	                    : log_quote(j->why));
	if (j->req) {
		evhttp_connection_set_closecb(j->evcon, NULL, NULL);
		if (j->report) {
			json_object_set_new(j->report, "deliverable", json_boolean(j->deliverable));
			reply_json(j->req, 200, j->report);
			j->report = NULL;
		} else if (atomic_load(&j->stop)) {
			reply_error(j->req, 503, "shutting down");
		} else {
			reply_error(j->req, 500, j->why);
		}
	}
	json_decref(j->report);
	job_unlink(j);
	free(j);
}

/* domain=D and nothing else. */
static bool query_domain(struct evhttp_request *req, char *out, size_t outlen, char *why,
                         size_t whylen)
{
	struct evkeyvalq params = {0};
	const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
	const char *domain = NULL;
	bool ok = evhttp_parse_query_str(query ? query : "", &params) == 0;
	for (const struct evkeyval *kv = params.tqh_first; ok && kv; kv = kv->next.tqe_next) {
		if (strcmp(kv->key, "domain") != 0 || domain != NULL) {
			snprintf(why, whylen, "unexpected parameter %s (domain, once)", kv->key);
			ok = false;
		}
		domain = kv->value;
	}
	if (ok && (domain == NULL || !check_domain_normalize(domain, out, outlen))) {
		snprintf(why, whylen, "domain=D is needed: a domain name or an address literal");
		ok = false;
	} else if (!ok && why[0] == '\0') {
		snprintf(why, whylen, "malformed query string");
	}
	evhttp_clear_headers(&params);
	return ok;
}

void check_api_handle(struct check_api *c, struct evhttp_request *req)
{
	char why[256] = "", domain[256];
	if (!query_domain(req, domain, sizeof domain, why, sizeof why))
		return reply_error(req, 400, why);
	if (c->draining)
		return reply_error(req, 503, "shutting down");
	if (c->njobs >= MAX_JOBS) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "10");
		return reply_error(req, 503, "busy: other checks are running; try again shortly");
	}
	struct check_job *j = calloc(1, sizeof *j);
	if (j == NULL)
		abort();
	j->api = c;
	j->req = req;
	j->evcon = evhttp_request_get_connection(req);
	memcpy(j->domain, domain, sizeof j->domain);
	atomic_init(&j->stop, false);
	j->next = c->jobs;
	if (c->jobs)
		c->jobs->prev = j;
	c->jobs = j;
	c->njobs++;
	evhttp_connection_set_closecb(j->evcon, job_client_gone, j);
	if (c->worker == NULL)
		c->worker = worker_start(c->base, 1);
	worker_submit(c->worker, job_run, job_done, j);
}

void check_api_drain(struct check_api *c)
{
	if (c == NULL)
		return;
	c->draining = true;
	for (struct check_job *j = c->jobs; j; j = j->next)
		atomic_store(&j->stop, true);
	/* the jobs end within a stop poll; their done callbacks answer 503 */
	worker_stop(c->worker);
	c->worker = NULL;
}

void check_api_free(struct check_api *c)
{
	check_api_drain(c);
	free(c);
}
