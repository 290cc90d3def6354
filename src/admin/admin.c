/* admin.c - the admin listener: JSON API under /api/v1 and /metrics (see admin.h).
 *
 * Everything here runs on the loop thread. A request is first judged (the
 * Host and Origin checks, then its credential, auth.h); a Basic password is
 * checked on a worker thread, so the request waits for it. A read (reads.h)
 * runs on one of the admin's read worker threads, each with a read-only
 * spool connection of its own, so that listing a million recipients never
 * holds up a submission or a delivery; its answer is sent from here. A
 * queue action becomes one writer job and is answered from its done
 * callback, after the commit that carries it. The request may be gone by
 * then (client closed, daemon stopping): whatever waits for it learns that
 * through the connection's close callback and then answers no one (a read
 * not begun yet is skipped).
 */
#include "admin/admin.h"

#include "admin/auth.h"
#include "admin/check_api.h"
#include "admin/queue_json.h"
#include "admin/reads.h"
#include "admin/web.h"
#include "tls/tls.h"
#include "tlsrpt/sender.h"
#include "util/listen.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/timeutil.h"
#include "util/worker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <jansson.h>
#include <openssl/ssl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_BODY     (1 << 20) /* a selector list is small; this bounds a hostile one */
#define MAX_HEADERS  16384
#define HTTP_TIMEOUT 60 /* seconds a slow client may take to send or read */
#define READ_THREADS 2  /* a long read does not hold up a `queue show` */
#define READ_NICE    10 /* the read workers' nice value (setpriority(2)) */

#ifndef OUTPOST_VERSION
#define OUTPOST_VERSION "unknown"
#endif

struct action_job;
struct auth_wait;
struct read_job;

struct admin {
	struct event_base *base;
	const struct conf *conf;
	struct spool_writer *writer;
	struct scheduler *sched;
	struct tlsrpt_sender *tlsrpt;
	struct admin_auth *auth;
	struct check_api *checks; /* GET check: outpost check's report */
	struct evhttp *http;     /* loopback and unix listeners: plain HTTP */
	struct evhttp *https;    /* other addresses, with [admin] tls_cert */
	SSL_CTX *tls;
	struct strlist unix_paths;  /* sockets we created, unlinked at stop */
	struct action_job *pending; /* actions waiting for their commit */
	struct auth_wait *waiting;  /* requests waiting for a password check */
	struct worker *readers;     /* the read workers, a spool connection each */
	struct read_job *reading;   /* reads on the workers */
	bool draining;              /* stopping: no new work for the writer */
};

/* One queue action from request to commit. It owns copies of every filter
 * value, since the writer thread reads them after the handler returned. */
struct action_job {
	struct admin *admin;        /* NULL once admin_stop let go of it */
	struct evhttp_request *req; /* NULL once the client is gone */
	struct evhttp_connection *evcon;
	enum spool_action action;
	uint64_t *ids;
	size_t nids;
	char *domain, *recipient;
	bool all;
	struct spool_filter filter;
	int64_t changed; /* written by the writer thread, read after done */
	struct action_job *prev, *next;
};

static const char *const action_names[] = {
    [SPOOL_HOLD] = "hold",
    [SPOOL_RELEASE] = "release",
    [SPOOL_KICK] = "kick",
    [SPOOL_DROP] = "drop",
};

static struct metric *queue_recipients_metric;

/* ---- answers ---- */

static int buffer_append(const char *data, size_t len, void *arg)
{
	return evbuffer_add(arg, data, len);
}

static void reply_send(struct evhttp_request *req, int code, const char *type,
                       struct evbuffer *body)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Content-Type", type);
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
	evhttp_send_reply(req, code, NULL, body);
}

/* Answers v as JSON and releases it; NULL (a failed json_pack) is a 500. */
static void reply_json(struct evhttp_request *req, int code, json_t *v)
{
	struct evbuffer *b = evbuffer_new();
	if (v == NULL) {
		code = 500;
		evbuffer_add_printf(b, "{\"error\":\"cannot encode the answer\"}");
	} else {
		json_dump_callback(v, buffer_append, b, JSON_COMPACT);
	}
	evbuffer_add(b, "\n", 1);
	reply_send(req, code, "application/json", b);
	evbuffer_free(b);
	json_decref(v);
}

static void reply_error(struct evhttp_request *req, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void reply_answer(struct evhttp_request *req, struct api_answer *ans);

static void reply_error(struct evhttp_request *req, int code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	struct api_answer ans;
	api_answer_error(&ans, code, "%s", msg);
	reply_answer(req, &ans);
}

static void reply_bad_method(struct evhttp_request *req, const char *allow)
{
	evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
	reply_error(req, 405, "method not allowed (allowed: %s)", allow);
}

/* ---- who may call the API ---- */

static bool host_is_loopback_or_literal(const char *name)
{
	struct in_addr a4;
	return inet_pton(AF_INET, name, &a4) == 1 || strcasecmp(name, "localhost") == 0;
}

static bool host_is_listen_name(const struct admin *a, const char *name)
{
	if (a->conf->hostname && strcasecmp(name, a->conf->hostname) == 0)
		return true;
	for (size_t i = 0; i < a->conf->admin_listen.len; i++) {
		struct listen_addr la;
		char why[256];
		if (listen_addr_parse(a->conf->admin_listen.items[i], &la, why, sizeof why) == 0 &&
		    !la.is_unix && strcasecmp(name, la.host) == 0)
			return true;
	}
	return false;
}

/* DNS rebinding: a web page whose own name has been pointed at 127.0.0.1
 * reaches this port as "same origin", but its Host header still carries its
 * name. The CLI sends an address or "localhost". */
static bool host_header_allowed(const struct admin *a, const char *host)
{
	char name[256];
	if (host[0] == '[')
		return strchr(host, ']') != NULL; /* an IPv6 literal */
	const char *colon = strrchr(host, ':');
	size_t n = colon ? (size_t)(colon - host) : strlen(host);
	if (n == 0 || n >= sizeof name)
		return false;
	memcpy(name, host, n);
	name[n] = '\0';
	return host_is_loopback_or_literal(name) || host_is_listen_name(a, name);
}

static bool request_is_tls(struct evhttp_request *req)
{
	struct evhttp_connection *c = evhttp_request_get_connection(req);
	struct bufferevent *bev = c ? evhttp_connection_get_bufferevent(c) : NULL;
	return bev && bufferevent_openssl_get_ssl(bev) != NULL;
}

/* Cross-site request forgery: a browser adds Origin to a cross-origin POST,
 * and a form posted from anywhere could otherwise drop the queue. */
static bool api_request_trusted(const struct admin *a, struct evhttp_request *req)
{
	struct evkeyvalq *h = evhttp_request_get_input_headers(req);
	const char *host = evhttp_find_header(h, "Host");
	const char *origin = evhttp_find_header(h, "Origin");
	char same[300];
	if (host && !host_header_allowed(a, host))
		return false;
	if (origin == NULL)
		return true;
	if (host == NULL || snprintf(same, sizeof same, "%s://%s",
	                             request_is_tls(req) ? "https" : "http",
	                             host) >= (int)sizeof same)
		return false;
	return strcmp(origin, same) == 0;
}

/* ---- selectors ---- */

static int body_string(const char *key, json_t *v, char **out, char *why, size_t whylen)
{
	if (!json_is_string(v) || json_string_length(v) == 0) {
		snprintf(why, whylen, "%s must be a non-empty string", key);
		return -1;
	}
	if ((*out = strdup(json_string_value(v))) == NULL)
		abort();
	return 0;
}

static int body_ids(struct action_job *j, json_t *v, char *why, size_t whylen)
{
	size_t i;
	json_t *e;
	if (!json_is_array(v)) {
		snprintf(why, whylen, "ids must be an array of queue ids");
		return -1;
	}
	json_array_foreach(v, i, e)
	{
		if (!json_is_string(e)) {
			snprintf(why, whylen, "ids must be an array of queue ids");
			return -1;
		}
		if (api_ids_add(&j->ids, &j->nids, json_string_value(e), json_string_length(e), why,
		                whylen) < 0)
			return -1;
	}
	return 0;
}

static int body_field(struct action_job *j, const char *key, json_t *v, char *why, size_t whylen)
{
	if (strcmp(key, "ids") == 0)
		return body_ids(j, v, why, whylen);
	if (strcmp(key, "domain") == 0)
		return body_string(key, v, &j->domain, why, whylen);
	if (strcmp(key, "recipient") == 0)
		return body_string(key, v, &j->recipient, why, whylen);
	if (strcmp(key, "all") == 0) {
		if (!json_is_boolean(v)) {
			snprintf(why, whylen, "all must be true or false");
			return -1;
		}
		j->all = json_is_true(v);
		return 0;
	}
	snprintf(why, whylen, "unexpected field %s (ids, domain, recipient, all: true)", key);
	return -1;
}

/* Unknown fields are refused: a misspelt selector must not widen an action
 * that changes or drops mail. (jansson refuses \u0000 in strings, so none
 * is cut short as a C string.) */
static int action_parse_body(struct evhttp_request *req, struct action_job *j, char *why,
                             size_t whylen)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	json_error_t err;
	json_t *body = len ? json_loadb((const char *)evbuffer_pullup(in, -1), len,
	                                JSON_REJECT_DUPLICATES, &err)
	                   : NULL;
	const char *key;
	json_t *v;
	int rc = -1;
	if (len > 0 && body == NULL) {
		snprintf(why, whylen, "the body is not JSON: %s", err.text);
		goto out;
	}
	if (!json_is_object(body)) {
		snprintf(why, whylen, "the body must be a JSON object such as {\"ids\": [\"ID\"]}");
		goto out;
	}
	json_object_foreach(body, key, v)
	{
		if (body_field(j, key, v, why, whylen) < 0)
			goto out;
	}
	rc = 0;
out:
	json_decref(body);
	return rc;
}

static int action_check_selector(const struct action_job *j, char *why, size_t whylen)
{
	bool some = j->nids > 0 || j->domain || j->recipient;
	if (!some && !j->all) {
		snprintf(why, whylen, "no message selected (give ids, domain, recipient or all)");
		return -1;
	}
	if (some && j->all) {
		snprintf(why, whylen, "all cannot be combined with ids, domain or recipient");
		return -1;
	}
	return 0;
}

/* ---- queue actions: request -> writer -> answer ---- */

static void action_job_free(struct action_job *j)
{
	free(j->ids);
	free(j->domain);
	free(j->recipient);
	free(j);
}

static void pending_add(struct admin *a, struct action_job *j)
{
	j->admin = a;
	j->prev = NULL;
	j->next = a->pending;
	if (a->pending)
		a->pending->prev = j;
	a->pending = j;
}

static void pending_remove(struct action_job *j)
{
	if (j->prev)
		j->prev->next = j->next;
	else
		j->admin->pending = j->next;
	if (j->next)
		j->next->prev = j->prev;
	j->admin = NULL;
}

/* The connection is being freed. When the client closed it, libevent has
 * already detached the request and leaves it to us (req has no connection
 * any more); when evhttp itself is being freed, it frees the request right
 * after this callback. Either way the job answers no one. */
static void action_client_gone(struct evhttp_connection *evcon, void *arg)
{
	struct action_job *j = arg;
	if (j->req && evhttp_request_get_connection(j->req) == NULL)
		evhttp_request_free(j->req);
	j->req = NULL;
	j->evcon = NULL;
}

/* Writer thread. */
static int action_run(struct spool *s, void *arg, char *why, size_t whylen)
{
	struct action_job *j = arg;
	j->changed = spool_apply(s, j->action, &j->filter, time_now_ms(), why, whylen);
	return j->changed < 0 ? -1 : 0;
}

static void action_log(const struct action_job *j, int status, const char *why)
{
	const char *name = action_names[j->action];
	const char *domain = j->domain ? log_quote(j->domain) : "-";
	const char *rcpt = j->recipient ? log_quote(j->recipient) : "-";
	if (status == 0)
		log_event(LOG_INFO, "admin_action",
		          "action=%s changed=%lld ids=%zu domain=%s recipient=%s all=%s", name,
		          (long long)j->changed, j->nids, domain, rcpt, j->all ? "yes" : "no");
	else
		log_event(LOG_ERROR, "admin_action_failed", "action=%s reason=%s", name,
		          log_quote(why));
}

/* Loop thread, after the commit. */
static void action_done(void *arg, int status, const char *why)
{
	struct action_job *j = arg;
	action_log(j, status, why);
	if (j->admin) {
		bool wake = j->action == SPOOL_KICK || j->action == SPOOL_RELEASE;
		if (status == 0 && wake && j->admin->sched)
			scheduler_wake(j->admin->sched);
		pending_remove(j);
	}
	if (j->req) {
		evhttp_connection_set_closecb(j->evcon, NULL, NULL);
		if (status == 0)
			reply_json(j->req, 200,
			           json_pack("{s:I}", "changed", (json_int_t)j->changed));
		else
			reply_error(j->req, 500, "%s", why);
	}
	action_job_free(j);
}

static void handle_action(struct admin *a, struct evhttp_request *req, int action)
{
	char why[256];
	struct action_job *j = calloc(1, sizeof *j);
	if (j == NULL)
		abort();
	j->action = (enum spool_action)action;
	if (a->draining) {
		reply_error(req, 503, "shutting down");
		action_job_free(j);
		return;
	}
	if (action_parse_body(req, j, why, sizeof why) < 0 ||
	    action_check_selector(j, why, sizeof why) < 0) {
		reply_error(req, 400, "%s", why);
		action_job_free(j);
		return;
	}
	j->filter = (struct spool_filter){.ids = j->ids,
	                                  .nids = j->nids,
	                                  .domain = j->domain,
	                                  .recipient = j->recipient,
	                                  .state = -1,
	                                  .all = j->all};
	j->req = req;
	j->evcon = evhttp_request_get_connection(req);
	evhttp_connection_set_closecb(j->evcon, action_client_gone, j);
	pending_add(a, j);
	spool_writer_submit(a->writer, action_run, action_done, j);
}

/* ---- reads: request -> read worker -> answer ---- */

/* Each read worker thread's own read-only connection: SQLite connections
 * are not shared between threads. Opened at the thread's first read (again
 * after a failed open), closed when the workers stop. */
struct read_conn {
	const char *data_dir;
	struct spool *spool;
};

/* On the worker thread as it starts. Reads are background work: the loop
 * thread (SMTP sessions, deliveries) and the writer (commits that
 * acknowledge mail) get the CPU before them when both want it. On Linux a
 * thread id given to setpriority() renices that thread alone; a failure
 * leaves it at the process's priority, which is no worse than before. */
static void *read_conn_new(void *data_dir)
{
	struct read_conn *c = calloc(1, sizeof *c);
	if (c == NULL)
		abort();
	c->data_dir = data_dir;
	if (setpriority(PRIO_PROCESS, (id_t)gettid(), READ_NICE) < 0)
		log_event(LOG_WARN, "admin_read_priority", "reason=%s", log_quote(strerror(errno)));
	return c;
}

static void read_conn_free(void *state)
{
	struct read_conn *c = state;
	spool_close(c->spool);
	free(c);
}

/* One read from request to answer. The worker writes answer; the loop
 * thread reads it after done. */
struct read_job {
	struct admin *admin;        /* NULL once admin_stop let go of it */
	struct evhttp_request *req; /* NULL once the client is gone */
	struct evhttp_connection *evcon;
	atomic_bool abandoned; /* nobody waits any more: a read not begun is skipped */
	enum api_read what;
	uint64_t id;
	char *query;
	struct api_answer answer;
	struct read_job *prev, *next;
};

static void reading_add(struct admin *a, struct read_job *j)
{
	j->admin = a;
	j->next = a->reading;
	if (a->reading)
		a->reading->prev = j;
	a->reading = j;
}

static void reading_remove(struct read_job *j)
{
	if (j->prev)
		j->prev->next = j->next;
	else
		j->admin->reading = j->next;
	if (j->next)
		j->next->prev = j->prev;
	j->admin = NULL;
}

/* As action_client_gone; the read, if not begun, is skipped. */
static void read_client_gone(struct evhttp_connection *evcon, void *arg)
{
	struct read_job *j = arg;
	atomic_store(&j->abandoned, true);
	if (j->req && evhttp_request_get_connection(j->req) == NULL)
		evhttp_request_free(j->req);
	j->req = NULL;
	j->evcon = NULL;
}

/* Worker thread: touches the job and the thread's connection only. */
static void read_run(void *arg)
{
	struct read_job *j = arg;
	struct read_conn *c = worker_thread_state();
	char why[300];
	if (atomic_load(&j->abandoned))
		return;
	if (c->spool == NULL &&
	    (c->spool = spool_open_readonly(c->data_dir, why, sizeof why)) == NULL) {
		api_answer_error(&j->answer, 500, "%s", why);
		return;
	}
	api_read(c->spool, j->what, j->id, j->query, time_now_ms(), &j->answer);
}

static void free_body(const void *data, size_t len, void *arg)
{
	free((void *)data);
}

/* Sends the answer; the request's buffer takes over its body. */
static void reply_answer(struct evhttp_request *req, struct api_answer *ans)
{
	if (ans->status == 0) {
		reply_error(req, 500, "the read did not run");
		return;
	}
	struct evbuffer *b = evbuffer_new();
	if (ans->len > 0)
		evbuffer_add_reference(b, ans->body, ans->len, free_body, NULL);
	else
		free(ans->body);
	ans->body = NULL;
	reply_send(req, ans->status, ans->type, b);
	evbuffer_free(b);
}

/* Loop thread, after the read. */
static void read_done(void *arg)
{
	struct read_job *j = arg;
	if (j->admin)
		reading_remove(j);
	if (j->req) {
		evhttp_connection_set_closecb(j->evcon, NULL, NULL);
		reply_answer(j->req, &j->answer);
	}
	free(j->answer.body);
	free(j->query);
	free(j);
}

static void read_submit(struct admin *a, struct evhttp_request *req, enum api_read what,
                        uint64_t id)
{
	const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
	struct read_job *j = calloc(1, sizeof *j);
	if (j == NULL || (query && (j->query = strdup(query)) == NULL))
		abort();
	j->what = what;
	j->id = id;
	atomic_init(&j->abandoned, false);
	j->req = req;
	j->evcon = evhttp_request_get_connection(req);
	evhttp_connection_set_closecb(j->evcon, read_client_gone, j);
	reading_add(a, j);
	worker_submit(a->readers, read_run, read_done, j);
}

/* GET queue, history, tlsrpt/results (the route's arg is the read). */
static void handle_read(struct admin *a, struct evhttp_request *req, int what)
{
	read_submit(a, req, (enum api_read)what, 0);
}

/* ---- status and delivery control ---- */

/* The counts come from the writer, kept exact by each commit (writer.h):
 * no scan of the spool per request. */
static void handle_status(struct admin *a, struct evhttp_request *req, int unused)
{
	int64_t counts[RCPT_NSTATES];
	spool_writer_counts(a->writer, counts);
	json_t *by_state = json_object();
	for (int s = 0; s < RCPT_NSTATES; s++)
		json_object_set_new(by_state, rcpt_state_name(s), json_integer(counts[s]));
	reply_json(req, 200,
	           json_pack("{s:s, s:b, s:I, s:I, s:b, s:I, s:o}", "version", OUTPOST_VERSION,
	                     "paused", scheduler_paused(a->sched), "in_flight",
	                     (json_int_t)scheduler_in_flight(a->sched), "picked",
	                     (json_int_t)scheduler_picked(a->sched), "spool_writable",
	                     spool_writer_healthy(a->writer), "commits_pending",
	                     (json_int_t)spool_writer_outstanding(a->writer), "recipients",
	                     by_state));
}

static const char *query_day(struct evkeyvalq *params, char today[32])
{
	const char *day = evhttp_find_header(params, "day");
	time_format_rfc3339(time_now_ms(), today, 32);
	today[10] = '\0';
	return day ? day : today;
}

/* GET tlsrpt/report?domain=D&day=YYYY-MM-DD: the report as it would be
 * sent, from the recorded results (docs/api.md). */
static void handle_tls_report(struct admin *a, struct evhttp_request *req, int unused)
{
	char why[256], today[32];
	struct evkeyvalq params = {0};
	const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
	if (evhttp_parse_query_str(query ? query : "", &params) < 0) {
		reply_error(req, 400, "malformed query string");
		return;
	}
	const char *day = query_day(&params, today);
	const char *domain = evhttp_find_header(&params, "domain");
	if (!api_day_valid(day) || domain == NULL || domain[0] == '\0') {
		reply_error(req, 400, "domain=D is needed, and day must be YYYY-MM-DD");
	} else {
		json_t *r = tlsrpt_sender_report(a->tlsrpt, domain, day, why, sizeof why);
		if (r)
			reply_json(req, 200, r);
		else
			reply_error(req, 500, "%s", why);
	}
	evhttp_clear_headers(&params);
}

/* A tlsrpt/send request waiting for its run. */
struct send_wait {
	struct evhttp_request *req; /* NULL once the client is gone */
	struct evhttp_connection *evcon;
};

static void send_client_gone(struct evhttp_connection *evcon, void *arg)
{
	struct send_wait *w = arg;
	if (w->req && evhttp_request_get_connection(w->req) == NULL)
		evhttp_request_free(w->req);
	w->req = NULL;
}

static void send_done(void *arg, json_t *done, const char *why)
{
	struct send_wait *w = arg;
	if (w->req) {
		evhttp_connection_set_closecb(w->evcon, NULL, NULL);
		if (done)
			reply_json(w->req, 200, done);
		else
			reply_error(w->req, 503, "%s", why);
	} else {
		json_decref(done);
	}
	free(w);
}

/* POST tlsrpt/send {"day": "YYYY-MM-DD", "dry_run": true}: the day's
 * reports now; the answer lists what was done for each policy domain. */
static void handle_tls_send(struct admin *a, struct evhttp_request *req, int unused)
{
	char today[32];
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	json_error_t err;
	json_t *body = len ? json_loadb((const char *)evbuffer_pullup(in, -1), len, 0, &err)
	                   : json_object();
	time_format_rfc3339(time_now_ms(), today, sizeof today);
	today[10] = '\0';
	const char *day = json_string_value(json_object_get(body, "day"));
	bool dry = json_is_true(json_object_get(body, "dry_run"));
	if (a->draining) {
		reply_error(req, 503, "shutting down");
	} else if (!json_is_object(body) || !api_day_valid(day ? day : today)) {
		reply_error(req, 400, "the body must be {\"day\": \"YYYY-MM-DD\", \"dry_run\": bool}");
	} else {
		struct send_wait *w = calloc(1, sizeof *w);
		if (w == NULL)
			abort();
		w->req = req;
		w->evcon = evhttp_request_get_connection(req);
		evhttp_connection_set_closecb(w->evcon, send_client_gone, w);
		if (!tlsrpt_sender_run(a->tlsrpt, day ? day : today, dry, send_done, w)) {
			evhttp_connection_set_closecb(w->evcon, NULL, NULL);
			free(w);
			reply_error(req, 409, "a report run is in progress");
		}
	}
	json_decref(body);
}

static void handle_pause(struct admin *a, struct evhttp_request *req, int paused)
{
	scheduler_set_paused(a->sched, paused);
	log_event(LOG_INFO, "admin_action", "action=%s", paused ? "pause" : "resume");
	reply_json(req, 200, json_pack("{s:b}", "paused", scheduler_paused(a->sched)));
}

static void handle_metrics(struct evhttp_request *req)
{
	size_t len;
	char *text = metrics_render(&len);
	struct evbuffer *b = evbuffer_new();
	evbuffer_add_reference(b, text, len, free_body, NULL);
	reply_send(req, 200, "text/plain; version=0.0.4", b);
	evbuffer_free(b);
}

/* Refreshes the gauge from the writer's counts just before /metrics
 * renders. */
static void on_metrics_render(void *arg)
{
	struct admin *a = arg;
	int64_t counts[RCPT_NSTATES];
	spool_writer_counts(a->writer, counts);
	for (int s = 0; s < RCPT_NSTATES; s++)
		metric_set(queue_recipients_metric, rcpt_state_name(s), (double)counts[s]);
}

static void handle_check(struct admin *a, struct evhttp_request *req, int unused)
{
	check_api_handle(a->checks, req);
}

/* ---- routing ---- */

#define GET_METHODS (EVHTTP_REQ_GET | EVHTTP_REQ_HEAD)

struct route {
	const char *path; /* under /api/v1/ */
	int methods;
	void (*fn)(struct admin *a, struct evhttp_request *req, int arg);
	int arg;
};

static const struct route routes[] = {
    {"queue", GET_METHODS, handle_read, API_READ_QUEUE},
    {"queue/hold", EVHTTP_REQ_POST, handle_action, SPOOL_HOLD},
    {"queue/release", EVHTTP_REQ_POST, handle_action, SPOOL_RELEASE},
    {"queue/kick", EVHTTP_REQ_POST, handle_action, SPOOL_KICK},
    {"queue/drop", EVHTTP_REQ_POST, handle_action, SPOOL_DROP},
    {"delivery/pause", EVHTTP_REQ_POST, handle_pause, 1},
    {"delivery/resume", EVHTTP_REQ_POST, handle_pause, 0},
    {"status", GET_METHODS, handle_status, 0},
    {"history", GET_METHODS, handle_read, API_READ_HISTORY},
    {"tlsrpt/results", GET_METHODS, handle_read, API_READ_TLS_RESULTS},
    {"tlsrpt/report", GET_METHODS, handle_tls_report, 0},
    {"tlsrpt/send", EVHTTP_REQ_POST, handle_tls_send, 0},
    {"check", GET_METHODS, handle_check, 0},
};

static bool method_is(struct evhttp_request *req, int methods)
{
	return (evhttp_request_get_command(req) & methods) != 0;
}

/* queue/ID and queue/ID/raw */
static void route_queue_item(struct admin *a, struct evhttp_request *req, const char *rest)
{
	char seg[32];
	uint64_t id;
	const char *slash = strchr(rest, '/');
	size_t n = slash ? (size_t)(slash - rest) : strlen(rest);
	bool raw = slash && strcmp(slash, "/raw") == 0;
	if ((slash && !raw) || n == 0 || n >= sizeof seg) {
		reply_error(req, 404, "unknown path");
		return;
	}
	memcpy(seg, rest, n);
	seg[n] = '\0';
	if (!spool_id_parse(seg, &id)) {
		if (method_is(req, EVHTTP_REQ_POST) && !raw)
			reply_error(req, 404, "unknown action (hold, release, kick, drop)");
		else
			reply_error(req, 400, "bad queue id (expected up to 16 hex digits)");
		return;
	}
	if (!method_is(req, GET_METHODS))
		reply_bad_method(req, "GET, HEAD");
	else
		read_submit(a, req, raw ? API_READ_RAW : API_READ_MESSAGE, id);
}

static void route_api(struct admin *a, struct evhttp_request *req, const char *path)
{
	for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
		const struct route *r = &routes[i];
		if (strcmp(path, r->path) != 0)
			continue;
		if (!method_is(req, r->methods))
			reply_bad_method(req, r->methods == EVHTTP_REQ_POST ? "POST" : "GET, HEAD");
		else
			r->fn(a, req, r->arg);
		return;
	}
	if (strncmp(path, "queue/", 6) == 0)
		route_queue_item(a, req, path + 6);
	else
		reply_error(req, 404, "unknown path");
}

/* ---- credentials ---- */

/* A request waiting for its password check. */
struct auth_wait {
	struct admin *admin;        /* NULL once admin_stop let go of it */
	struct evhttp_request *req; /* NULL once the client is gone */
	struct evhttp_connection *evcon;
	char path[256];
	struct auth_wait *prev, *next;
};

static void serve(struct admin *a, struct evhttp_request *req, const char *path)
{
	if (strcmp(path, "/metrics") == 0) {
		if (method_is(req, GET_METHODS))
			handle_metrics(req);
		else
			reply_bad_method(req, "GET, HEAD");
		return;
	}
	route_api(a, req, path + 8);
}

static void reply_unauthorized(struct admin *a, struct evhttp_request *req)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	const char *cookie = evhttp_find_header(evhttp_request_get_input_headers(req), "Cookie");
	evhttp_add_header(h, "WWW-Authenticate", "Bearer realm=\"outpost\"");
	/* A console whose session ended shows its login form (docs/console.md):
	 * a Basic challenge would have the browser ask with a prompt of its own. */
	if (a->conf->admin_users_file[0] && !(cookie && strstr(cookie, "outpost_session=")))
		evhttp_add_header(h, "WWW-Authenticate",
		                  "Basic realm=\"outpost\", charset=\"UTF-8\"");
	reply_error(req, 401, "a credential is needed: the bearer token of [admin] token_file");
}

static void wait_unlink(struct auth_wait *w)
{
	if (w->prev)
		w->prev->next = w->next;
	else if (w->admin)
		w->admin->waiting = w->next;
	if (w->next)
		w->next->prev = w->prev;
	w->admin = NULL;
}

static void wait_client_gone(struct evhttp_connection *evcon, void *arg)
{
	struct auth_wait *w = arg;
	if (w->req && evhttp_request_get_connection(w->req) == NULL)
		evhttp_request_free(w->req);
	w->req = NULL;
	w->evcon = NULL;
}

static void auth_checked(void *arg, bool ok)
{
	struct auth_wait *w = arg;
	struct admin *a = w->admin;
	if (a && w->req) {
		evhttp_connection_set_closecb(w->evcon, NULL, NULL);
		if (!ok)
			reply_unauthorized(a, w->req);
		else if (a->draining)
			reply_error(w->req, 503, "shutting down");
		else
			serve(a, w->req, w->path);
	}
	wait_unlink(w);
	free(w);
}

/* A console session (docs/api.md, "Sessions"): its cookie identifies, and
 * a request that changes anything must also carry its CSRF token, which
 * only the page (never a cross-site form) can read. */
static bool session_then_serve(struct admin *a, struct evhttp_request *req, const char *path)
{
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	const struct admin_session *s = admin_session_find(a->auth, evhttp_find_header(in, "Cookie"));
	if (s == NULL)
		return false;
	if (!method_is(req, GET_METHODS) &&
	    !admin_session_csrf_ok(s, evhttp_find_header(in, "X-CSRF-Token"))) {
		log_event(LOG_WARN, "admin_csrf_refused", "user=%s path=%s", log_quote(s->user),
		          log_quote(path));
		reply_error(req, 403, "refused: the X-CSRF-Token of the session is missing or wrong");
		return true;
	}
	serve(a, req, path);
	return true;
}

static void authorize_then_serve(struct admin *a, struct evhttp_request *req, const char *path)
{
	const char *header =
	    evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
	if (header == NULL && session_then_serve(a, req, path))
		return;
	struct auth_wait *w = calloc(1, sizeof *w);
	char who[256];
	if (w == NULL)
		abort();
	switch (admin_auth_check(a->auth, header, auth_checked, w, who, sizeof who)) {
	case ADMIN_AUTH_OK:
		free(w);
		return serve(a, req, path);
	case ADMIN_AUTH_DENIED:
	case ADMIN_AUTH_LIMITED:
		free(w);
		return reply_unauthorized(a, req);
	case ADMIN_AUTH_PENDING:
		break;
	}
	w->admin = a;
	w->req = req;
	w->evcon = evhttp_request_get_connection(req);
	snprintf(w->path, sizeof w->path, "%s", path);
	evhttp_connection_set_closecb(w->evcon, wait_client_gone, w);
	w->next = a->waiting;
	if (a->waiting)
		a->waiting->prev = w;
	a->waiting = w;
}

/* A loopback address or the unix socket: the machine itself. */
static bool peer_is_local(struct evhttp_request *req)
{
	const struct sockaddr *sa = evhttp_connection_get_addr(evhttp_request_get_connection(req));
	if (sa == NULL || sa->sa_family == AF_UNIX)
		return true;
	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
	if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		return IN6_IS_ADDR_LOOPBACK(a6) ||
		       (IN6_IS_ADDR_V4MAPPED(a6) && a6->s6_addr[12] == 127);
	}
	return false;
}

static bool metrics_need_credential(const struct admin *a, struct evhttp_request *req)
{
	switch ((enum metrics_auth)a->conf->metrics_auth) {
	case METRICS_AUTH_NEVER:
		return false;
	case METRICS_AUTH_ALWAYS:
		return true;
	case METRICS_AUTH_LOOPBACK:
		break;
	}
	return !peer_is_local(req);
}

static void set_session_cookie(struct admin *a, struct evhttp_request *req, const char *id,
                               int max_age)
{
	char cookie[256];
	snprintf(cookie, sizeof cookie, "%s=%s; Path=/; HttpOnly; SameSite=Strict; Max-Age=%d%s",
	         ADMIN_SESSION_COOKIE, id, max_age, request_is_tls(req) ? "; Secure" : "");
	evhttp_add_header(evhttp_request_get_output_headers(req), "Set-Cookie", cookie);
}

static void reply_session(struct admin *a, struct evhttp_request *req,
                          const struct admin_session *s)
{
	reply_json(req, 200, json_pack("{s:s, s:s}", "user", s->user, "csrf", s->csrf));
}

/* A login waiting for its password check. */
struct login_wait {
	struct admin *admin;
	struct evhttp_request *req; /* NULL once the client is gone */
	struct evhttp_connection *evcon;
	char user[128];
};

static void login_client_gone(struct evhttp_connection *evcon, void *arg)
{
	struct login_wait *w = arg;
	if (w->req && evhttp_request_get_connection(w->req) == NULL)
		evhttp_request_free(w->req);
	w->req = NULL;
}

static void login_checked(void *arg, bool ok)
{
	struct login_wait *w = arg;
	if (w->req) {
		evhttp_connection_set_closecb(w->evcon, NULL, NULL);
		const struct admin_session *s = ok ? admin_session_new(w->admin->auth, w->user) : NULL;
		if (s) {
			set_session_cookie(w->admin, w->req, s->id, ADMIN_SESSION_MAX_AGE_S);
			reply_session(w->admin, w->req, s);
		} else {
			reply_error(w->req, 401, "wrong user or password");
		}
	}
	free(w);
}

static void peer_name(struct evhttp_request *req, char *buf, size_t n)
{
	char *host = NULL;
	ev_uint16_t port = 0;
	evhttp_connection_get_peer(evhttp_request_get_connection(req), &host, &port);
	snprintf(buf, n, "%s", host && host[0] ? host : "local");
}

static void login(struct admin *a, struct evhttp_request *req)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	json_error_t err;
	json_t *body = len ? json_loadb((const char *)evbuffer_pullup(in, -1), len, 0, &err) : NULL;
	const char *user = json_string_value(json_object_get(body, "user"));
	const char *pass = json_string_value(json_object_get(body, "password"));
	char peer[64];
	if (user == NULL || pass == NULL) {
		json_decref(body);
		return reply_error(req, 400, "the body must be {\"user\": U, \"password\": P}");
	}
	peer_name(req, peer, sizeof peer);
	struct login_wait *w = calloc(1, sizeof *w);
	if (w == NULL)
		abort();
	w->admin = a;
	snprintf(w->user, sizeof w->user, "%s", user);
	switch (admin_auth_login(a->auth, user, pass, peer, login_checked, w)) {
	case ADMIN_AUTH_PENDING:
		w->req = req;
		w->evcon = evhttp_request_get_connection(req);
		evhttp_connection_set_closecb(w->evcon, login_client_gone, w);
		break;
	case ADMIN_AUTH_LIMITED:
		free(w);
		reply_error(req, 429, "too many failed logins: try again later");
		break;
	default:
		free(w);
		reply_error(req, 401, "wrong user or password");
		break;
	}
	json_decref(body);
}

/* /api/v1/session: POST logs in, GET says who, DELETE logs out. */
static void handle_session(struct admin *a, struct evhttp_request *req)
{
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	const struct admin_session *s = admin_session_find(a->auth, evhttp_find_header(in, "Cookie"));
	switch (evhttp_request_get_command(req)) {
	case EVHTTP_REQ_POST:
		return login(a, req);
	case EVHTTP_REQ_GET:
	case EVHTTP_REQ_HEAD:
		if (s == NULL)
			return reply_error(req, 401, "not logged in");
		return reply_session(a, req, s);
	case EVHTTP_REQ_DELETE:
		if (s)
			admin_session_end(a->auth, s);
		set_session_cookie(a, req, "", 0);
		return reply_json(req, 200, json_pack("{s:b}", "logged_in", false));
	default:
		return reply_bad_method(req, "GET, HEAD, POST, DELETE");
	}
}

static void on_request(struct evhttp_request *req, void *arg)
{
	struct admin *a = arg;
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	if (path == NULL)
		path = "";
	if (strcmp(path, "/metrics") == 0) {
		if (metrics_need_credential(a, req))
			return authorize_then_serve(a, req, path);
		return serve(a, req, path);
	}
	if (web_serve(req, path)) /* the console's files need no credential (web.h) */
		return;
	if (strncmp(path, "/api/v1/", 8) != 0 ||
	    strlen(path) >= sizeof((struct auth_wait *)0)->path) {
		reply_error(req, 404, "unknown path");
		return;
	}
	if (!api_request_trusted(a, req)) {
		reply_error(req, 403, "refused: cross-site request or unexpected Host header");
		return;
	}
	if (strcmp(path, "/api/v1/session") == 0)
		return handle_session(a, req);
	authorize_then_serve(a, req, path);
}

/* ---- listeners ---- */

static bool address_is_loopback(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6);
	return strcasecmp(host, "localhost") == 0;
}

static struct bufferevent *tls_bufferevent(struct event_base *base, void *arg)
{
	struct admin *a = arg;
	SSL *ssl = SSL_new(a->tls);
	return ssl ? bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
	                                            BEV_OPT_CLOSE_ON_FREE)
	           : NULL;
}

static struct evhttp *http_new(struct admin *a);

/* Beyond loopback the listener lets people in: with passwords only
 * ([admin] users_file), and over HTTPS when [admin] tls_cert is set
 * (docs/api.md, "Listeners"). */
static struct evhttp *http_for(struct admin *a, const struct listen_addr *la, const char *spec,
                               char *why, size_t whylen)
{
	if (address_is_loopback(la->host))
		return a->http;
	if (a->conf->admin_users_file[0] == '\0') {
		snprintf(why, whylen,
		         "admin: listen %s is not loopback: it needs [admin] users_file (and "
		         "tls_cert/tls_key)",
		         spec);
		return NULL;
	}
	if (a->conf->admin_tls_cert[0] == '\0') {
		log_event(LOG_WARN, "admin_plaintext", "listen=%s note=%s", log_quote(spec),
		          log_quote("passwords cross the network in the clear: set [admin] tls_cert"));
		return a->http;
	}
	if (a->https == NULL) {
		a->tls = tls_server_ctx_new(a->conf->admin_tls_cert, a->conf->admin_tls_key, why, whylen);
		if (a->tls == NULL)
			return NULL;
		a->https = http_new(a);
		evhttp_set_bevcb(a->https, tls_bufferevent, a);
	}
	return a->https;
}

static int listen_tcp(struct admin *a, const struct listen_addr *la, const char *spec, char *why,
                      size_t whylen)
{
	struct evhttp *http = http_for(a, la, spec, why, whylen);
	if (http == NULL)
		return -1;
	errno = 0;
	if (evhttp_bind_socket_with_handle(http, la->host, (ev_uint16_t)la->port) == NULL) {
		snprintf(why, whylen, "admin: cannot listen on %s: %s", spec,
		         errno ? strerror(errno) : "cannot resolve or bind the address");
		return -1;
	}
	return 0;
}

static int listen_unix(struct admin *a, const struct listen_addr *la, char *why, size_t whylen)
{
	char err[300];
	int fd = listen_unix_socket(la->path, 0660, err, sizeof err);
	if (fd < 0) {
		snprintf(why, whylen, "admin: %s", err);
		return -1;
	}
	struct evconnlistener *l = evconnlistener_new(
	    a->base, NULL, NULL, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
	if (l == NULL || evhttp_bind_listener(a->http, l) == NULL) {
		snprintf(why, whylen, "admin: cannot serve unix:%s", la->path);
		if (l)
			evconnlistener_free(l);
		else
			close(fd);
		unlink(la->path);
		return -1;
	}
	strlist_add(&a->unix_paths, la->path);
	return 0;
}

static int listen_one(struct admin *a, const char *spec, char *why, size_t whylen)
{
	struct listen_addr la;
	char perr[256];
	if (listen_addr_parse(spec, &la, perr, sizeof perr) < 0) {
		snprintf(why, whylen, "admin: listen %s", perr);
		return -1;
	}
	if (la.is_unix ? listen_unix(a, &la, why, whylen) : listen_tcp(a, &la, spec, why, whylen))
		return -1;
	log_event(LOG_INFO, "admin_listening", "listen=%s", log_quote(spec));
	return 0;
}

static struct evhttp *http_new(struct admin *a)
{
	struct evhttp *http = evhttp_new(a->base);
	if (http == NULL)
		abort();
	evhttp_set_max_body_size(http, MAX_BODY);
	evhttp_set_max_headers_size(http, MAX_HEADERS);
	evhttp_set_timeout(http, HTTP_TIMEOUT);
	/* Accept the usual methods so that a wrong one gets a JSON 405 from
	 * the router rather than libevent's bare 501. */
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
	                                     EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH |
	                                     EVHTTP_REQ_OPTIONS);
	evhttp_set_gencb(http, on_request, a);
	return http;
}

struct admin *admin_start(struct event_base *base, const struct conf *conf,
                          struct spool_writer *writer, struct scheduler *sched,
                          struct tlsrpt_sender *tlsrpt, struct worker *worker, char *why,
                          size_t whylen)
{
	struct admin *a = calloc(1, sizeof *a);
	if (a == NULL)
		abort();
	*a = (struct admin){.base = base,
	                    .conf = conf,
	                    .writer = writer,
	                    .sched = sched,
	                    .tlsrpt = tlsrpt};
	a->http = http_new(a);
	a->readers = worker_start_with_state(base, READ_THREADS, read_conn_new, read_conn_free,
	                                     conf->data_dir);
	a->checks = check_api_new(base, conf);
	a->auth = admin_auth_new(conf, worker, why, whylen);
	if (a->auth == NULL) {
		admin_stop(a);
		return NULL;
	}
	for (size_t i = 0; i < conf->admin_listen.len; i++) {
		if (listen_one(a, conf->admin_listen.items[i], why, whylen) < 0) {
			admin_stop(a);
			return NULL;
		}
	}
	if (conf->admin_listen.len == 0)
		log_event(LOG_WARN, "admin_disabled", "reason=%s",
		          log_quote("no [admin] listen address"));
	if (queue_recipients_metric == NULL)
		queue_recipients_metric = metric_gauge("outpost_queue_recipients",
		                                       "recipients in the spool by state", "state");
	metrics_on_render(on_metrics_render, a);
	return a;
}

void admin_drain(struct admin *a)
{
	if (a == NULL)
		return;
	a->draining = true;
	check_api_drain(a->checks); /* waits for the check thread: it may be working */
}

void admin_stop(struct admin *a)
{
	if (a == NULL)
		return;
	metrics_on_render(NULL, NULL);
	while (a->waiting)
		wait_unlink(a->waiting);
	/* Jobs still at the writer finish without us: evhttp_free closes
	 * their connections (so they answer no one) and they wake no
	 * scheduler. */
	while (a->pending)
		pending_remove(a->pending);
	/* Reads not begun are skipped; those running end on their own. */
	while (a->reading) {
		atomic_store(&a->reading->abandoned, true);
		reading_remove(a->reading);
	}
	check_api_free(a->checks);
	evhttp_free(a->http); /* closes listeners and connections */
	if (a->https)
		evhttp_free(a->https);
	if (a->tls)
		SSL_CTX_free(a->tls);
	worker_stop(a->readers); /* after: the reads left answer no one */
	for (size_t i = 0; i < a->unix_paths.len; i++)
		unlink(a->unix_paths.items[i]);
	strlist_clear(&a->unix_paths);
	admin_auth_free(a->auth);
	free(a);
}
