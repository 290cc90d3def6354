/* sender.c - the daily TLS reports and their delivery (docs/tlsrpt.md). */
#include "tlsrpt/sender.h"

#include "deliver/retry.h"
#include "dkim/dkim.h"
#include "dns/destinations.h"
#include "dns/dns.h"
#include "spool/spool.h"
#include "spool/tls_rows.h"
#include "spool/writer.h"
#include "tlsrpt/record.h"
#include "tlsrpt/report.h"
#include "util/buf.h"
#include "util/https.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/timeutil.h"

#include <curl/curl.h>
#include <event2/event.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DAY_MS           86400000LL
#define RUN_AFTER_MS     (5 * 60000LL) /* the daily run, after 00:00 UTC ... */
#define RUN_SPREAD_MS    (4 * 60000LL) /* ... plus up to this, at random */
#define START_DELAY_MS   10000LL       /* the start-up run, once things settled */
#define DAYS_BACK        2             /* days a run looks at: reports a restart missed */
#define DAYS_KEPT        4             /* results older than this are deleted */
#define CANDIDATES_MAX   1000          /* policy domains per day and run */
#define POST_ATTEMPTS    5             /* like a report mail (attempt.c) */
#define POST_TIMEOUT_MS  60000
#define POSTS_BATCH      8
#define POSTS_EVERY_MS   60000

static struct metric *m_reports;

static void metrics_init(void)
{
	if (m_reports == NULL)
		m_reports = metric_counter("outpost_tlsrpt_reports_total",
		                           "TLS reports by transport and result: mail queued, "
		                           "https sent or failed, skipped (no record), composed",
		                           "result");
}

struct post;
struct run;

struct tlsrpt_sender {
	struct tlsrpt_sender_config cfg;
	struct dns_resolver *dns;
	struct https_client *https;
	char submitter[256];
	char postmaster[300]; /* postmaster@submitter: From, envelope sender, contact */
	struct run *run;
	struct event *daily, *posts_timer;
	struct post *posts; /* in flight */
};

/* ---- the submitter ---------------------------------------------------------------- */

void tlsrpt_submitter(const struct conf *conf, const struct dkim_signer *dkim, char *buf,
                      size_t n)
{
	if (conf->tlsrpt_submitter && conf->tlsrpt_submitter[0]) {
		snprintf(buf, n, "%s", conf->tlsrpt_submitter);
		return;
	}
	/* RFC 8460 §3: the report is signed by the submitter's domain */
	for (const char *d = conf->hostname; d && *d; d = strchr(d, '.') ? strchr(d, '.') + 1 : "")
		if (dkim && dkim_signer_keys(dkim, d, NULL, NULL) > 0 && strchr(d, '.')) {
			snprintf(buf, n, "%s", d);
			return;
		}
	snprintf(buf, n, "%s", conf->hostname ? conf->hostname : "localhost");
}

/* ---- composing ----------------------------------------------------------------------- */

static void collect(void *arg, const struct tlsrpt_result *r)
{
	tlsrpt_set_merge(arg, r);
}

static void report_info(struct tlsrpt_sender *s, const char *domain, const char *day,
                        struct tlsrpt_report_info *info)
{
	const struct conf *c = s->cfg.conf;
	*info = (struct tlsrpt_report_info){
	    .organization = c->tlsrpt_organization[0] ? c->tlsrpt_organization : s->submitter,
	    .contact = c->tlsrpt_contact[0] ? c->tlsrpt_contact : s->postmaster,
	    .submitter = s->submitter,
	    .policy_domain = domain,
	    .day = day,
	};
}

json_t *tlsrpt_sender_report(struct tlsrpt_sender *s, const char *domain, const char *day,
                             char *why, size_t whylen)
{
	struct tlsrpt_set set = {0};
	if (spool_tls_results_read(s->cfg.reader, day, domain, true, collect, &set, why, whylen) < 0)
		return NULL;
	struct tlsrpt_report_info info;
	report_info(s, domain, day, &info);
	json_t *j = tlsrpt_report_json(&info, set.r, set.n);
	tlsrpt_set_clear(&set);
	return j;
}

/* ---- queueing (writer thread) -------------------------------------------------------- */

struct queue_job {
	struct job *job;
	char day[16], domain[256], outcome[64], report_id[600];
	bool mail;
	struct tlsrpt_record rec; /* the destinations: rcpts and posts point here */
	struct spool_message_in msg;
	char *body;
	const char *rcpts[TLSRPT_RUA_MAX];
	unsigned char *gz;
	size_t gzlen;
	size_t nposts;
	const char *posts[TLSRPT_RUA_MAX];
	int marked; /* 1 done now, 0 it was done before */
};

static int queue_run(struct spool *sp, void *arg, char *why, size_t whylen)
{
	struct queue_job *q = arg;
	int64_t now = time_now_ms();
	q->marked = spool_tls_report_done(sp, q->day, q->domain, now, q->outcome, why, whylen);
	if (q->marked <= 0) /* an error, or another run made it: nothing twice */
		return q->marked;
	if (q->mail && spool_insert_message(sp, &q->msg, why, whylen) < 0)
		return -1;
	for (size_t i = 0; i < q->nposts; i++)
		if (spool_tls_post_add(sp, q->posts[i], q->report_id, q->gz, q->gzlen, now, why,
		                       whylen) < 0)
			return -1;
	return 0;
}

/* ---- one run ------------------------------------------------------------------------ */

struct job {
	struct run *run;
	char domain[256];
	struct dns_query *q;
	json_t *dest; /* where it goes */
	char *outcome_text;
};

struct run {
	struct tlsrpt_sender *s;
	char days[DAYS_BACK][16];
	int ndays, day_i;
	bool dry;
	json_t *done;
	char (*domains)[256];
	int n, next;
	struct job *job;
	tlsrpt_run_cb cb;
	void *arg;
};

static void run_next(struct run *r);

static void job_finish(struct job *j, const char *outcome)
{
	struct run *r = j->run;
	json_array_append_new(r->done, json_pack("{s:s, s:s, s:s, s:o}", "day", r->days[r->day_i],
	                                         "domain", j->domain, "outcome", outcome,
	                                         "destinations", j->dest ? j->dest : json_array()));
	log_event(LOG_INFO, "tlsrpt_report", "day=%s domain=%s outcome=%s%s", r->days[r->day_i],
	          log_quote(j->domain), log_quote(outcome), r->dry ? " dry_run=yes" : "");
	r->job = NULL;
	free(j);
	run_next(r);
}

static void mark_done(void *arg, int status, const char *why)
{
	struct queue_job *q = arg;
	struct job *j = q->job;
	struct tlsrpt_sender *s = j->run->s;
	const char *outcome = q->outcome;
	if (status != 0)
		outcome = "not queued: spool error";
	else if (q->marked == 0)
		outcome = "done already";
	if (status == 0 && q->marked == 1 && q->mail) {
		metric_add(m_reports, "mail-queued", 1);
		if (s->cfg.queued)
			s->cfg.queued(s->cfg.queued_arg);
	}
	if (status == 0 && q->marked == 1 && q->nposts > 0) {
		struct timeval now = {0, 0};
		evtimer_add(s->posts_timer, &now);
	}
	if (status != 0)
		log_event(LOG_ERROR, "tlsrpt_queue_failed", "domain=%s reason=%s", log_quote(q->domain),
		          log_quote(why));
	free(q->body);
	free(q->gz);
	job_finish(j, outcome);
	free(q);
}

/* The report mail, signed by the submitter's keys (RFC 8460 §3). NULL when
 * it cannot be signed: then no mail (the https destinations still get it). */
static char *signed_mail(struct tlsrpt_sender *s, const struct tlsrpt_report_info *info,
                         const char *const *to, size_t nto, const unsigned char *gz, size_t gzlen,
                         size_t *len, const char **problem)
{
	char why[256];
	int64_t now = time_now_ms();
	char *mail =
	    tlsrpt_report_mail(info, to, nto, gz, gzlen, s->cfg.conf->hostname, now, len);
	if (mail == NULL)
		return *problem = "cannot compose", NULL;
	struct buf out = {0};
	int n = dkim_sign_message(s->cfg.dkim, mail, *len, s->postmaster, now / 1000, &out, why,
	                          sizeof why);
	if (n <= 0) {
		log_event(LOG_WARN, "tlsrpt_unsigned", "submitter=%s reason=%s", log_quote(s->submitter),
		          log_quote(n < 0 ? why : "no DKIM key for the submitter domain"));
		free(mail);
		buf_free(&out);
		return *problem = "no mail: it cannot be DKIM-signed", NULL;
	}
	buf_add(&out, mail, *len);
	free(mail);
	*len = out.len;
	return out.data;
}

static bool non_ascii(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80)
			return true;
	return false;
}

/* The record is there: compose, then mark and queue in one commit. */
static void compose_and_queue(struct job *j, const struct tlsrpt_record *rec)
{
	struct run *r = j->run;
	struct tlsrpt_sender *s = r->s;
	const char *day = r->days[r->day_i];
	char why[256];
	json_t *report = tlsrpt_sender_report(s, j->domain, day, why, sizeof why);
	if (report == NULL)
		return job_finish(j, "not queued: cannot read the results");
	char *text = json_dumps(report, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
	struct queue_job *q = calloc(1, sizeof *q);
	if (q == NULL || text == NULL)
		abort();
	snprintf(q->report_id, sizeof q->report_id, "%s",
	         json_string_value(json_object_get(report, "report-id")));
	json_decref(report);
	q->gz = tlsrpt_gzip(text, strlen(text), &q->gzlen);
	free(text);
	q->job = j;
	snprintf(q->day, sizeof q->day, "%s", day);
	snprintf(q->domain, sizeof q->domain, "%s", j->domain);
	q->rec = *rec; /* the writer reads them after this call */
	j->dest = json_array();
	size_t nmail = 0;
	bool utf8 = false;
	for (size_t i = 0; i < q->rec.nrua; i++) {
		const struct tlsrpt_rua *u = &q->rec.rua[i];
		json_array_append_new(j->dest, json_string(u->target));
		if (u->kind == TLSRPT_RUA_MAILTO) {
			q->rcpts[nmail++] = u->target;
			utf8 |= non_ascii(u->target);
		} else {
			q->posts[q->nposts++] = u->target;
		}
	}
	const char *problem = NULL;
	struct tlsrpt_report_info info;
	report_info(s, j->domain, day, &info);
	size_t len = 0;
	if (nmail > 0 && q->gz)
		q->body = signed_mail(s, &info, q->rcpts, nmail, q->gz, q->gzlen, &len, &problem);
	if (!r->dry)
		metric_add(m_reports, "composed", 1);
	if (q->gz == NULL || (q->body == NULL && q->nposts == 0)) {
		snprintf(q->outcome, sizeof q->outcome, "%s", problem ? problem : "cannot compose");
		if (r->dry) {
			free(q->gz);
			free(q);
			return job_finish(j, problem ? problem : "cannot compose");
		}
		/* nothing can go anywhere today: done, so that it is not retried */
		return spool_writer_submit_alone(s->cfg.writer, queue_run, mark_done, q);
	}
	q->mail = q->body != NULL;
	q->msg = (struct spool_message_in){
	    .id = spool_new_id(),
	    .sender = s->postmaster,
	    .rcpts = q->rcpts,
	    .nrcpt = nmail,
	    .flags = SPOOL_F_TLS_REQUIRED_NO | SPOOL_F_TLSRPT | (utf8 ? SPOOL_F_SMTPUTF8 : 0),
	    .client = "tlsrpt",
	    .queued_ms = time_now_ms(),
	    .body = q->body,
	    .body_len = len,
	};
	snprintf(q->outcome, sizeof q->outcome, "%s", problem ? "queued (https only)" : "queued");
	if (r->dry) {
		free(q->body);
		free(q->gz);
		free(q);
		return job_finish(j, "would be queued");
	}
	spool_writer_submit_alone(s->cfg.writer, queue_run, mark_done, q);
}

/* No record, or one that says nothing usable: the domain takes no reports. */
static void no_reports(struct job *j, const char *outcome)
{
	struct run *r = j->run;
	if (r->dry)
		return job_finish(j, outcome);
	struct queue_job *q = calloc(1, sizeof *q);
	if (q == NULL)
		abort();
	q->job = j;
	snprintf(q->day, sizeof q->day, "%s", r->days[r->day_i]);
	snprintf(q->domain, sizeof q->domain, "%s", j->domain);
	snprintf(q->outcome, sizeof q->outcome, "%s", outcome);
	metric_add(m_reports, "skipped", 1);
	spool_writer_submit_alone(r->s->cfg.writer, queue_run, mark_done, q);
}

static void on_record(void *arg, const struct dns_answer *a)
{
	struct job *j = arg;
	j->q = NULL;
	if (a->status == DNS_TEMPFAIL || a->status == DNS_MALFORMED)
		return job_finish(j, "later: the _smtp._tls lookup failed");
	if (a->status == DNS_NOTFOUND)
		return no_reports(j, "no TLSRPT record");
	struct tlsrpt_record rec;
	char why[128];
	switch (tlsrpt_record_find((const char *const *)a->txt, a->n, &rec, why, sizeof why)) {
	case TLSRPT_RECORD_OK:
		return compose_and_queue(j, &rec);
	case TLSRPT_RECORD_NONE:
		return no_reports(j, "no TLSRPT record");
	case TLSRPT_RECORD_MULTIPLE:
		return no_reports(j, "more than one TLSRPT record");
	case TLSRPT_RECORD_NO_RUA:
		return no_reports(j, "no mailto: or https: destination");
	default:
		return no_reports(j, "the TLSRPT record does not parse");
	}
}

static void run_free(struct run *r)
{
	if (r->job) {
		if (r->job->q)
			dns_cancel(r->job->q);
		json_decref(r->job->dest);
		free(r->job);
	}
	json_decref(r->done);
	free(r->domains);
	free(r);
}

/* The next domain of the day, or the next day, or the end. */
static void run_next(struct run *r)
{
	struct tlsrpt_sender *s = r->s;
	while (r->next >= r->n) {
		if (r->n >= 0 && r->day_i + 1 >= r->ndays) {
			s->run = NULL;
			if (r->cb)
				r->cb(r->arg, json_incref(r->done), NULL);
			return run_free(r);
		}
		if (r->n >= 0)
			r->day_i++;
		char why[256];
		r->next = 0;
		r->n = spool_tls_report_candidates(s->cfg.reader, r->days[r->day_i],
		                                   s->cfg.conf->tlsrpt_all_success, r->domains,
		                                   CANDIDATES_MAX, why, sizeof why);
		if (r->n < 0) {
			log_event(LOG_ERROR, "tlsrpt_run_failed", "reason=%s", log_quote(why));
			r->n = 0;
		}
	}
	struct job *j = calloc(1, sizeof *j);
	if (j == NULL)
		abort();
	j->run = r;
	snprintf(j->domain, sizeof j->domain, "%s", r->domains[r->next++]);
	r->job = j;
	char name[300];
	snprintf(name, sizeof name, "_smtp._tls.%s", j->domain);
	j->q = dns_query(s->dns, name, DNS_TXT, on_record, j);
}

static bool start_run(struct tlsrpt_sender *s, const char *const *days, int ndays, bool dry,
                      tlsrpt_run_cb cb, void *arg)
{
	if (s->run)
		return false;
	metrics_init();
	struct run *r = calloc(1, sizeof *r);
	if (r == NULL || (r->domains = calloc(CANDIDATES_MAX, sizeof *r->domains)) == NULL)
		abort();
	r->s = s;
	for (int i = 0; i < ndays && i < DAYS_BACK; i++)
		snprintf(r->days[r->ndays++], sizeof r->days[0], "%s", days[i]);
	r->dry = dry;
	r->cb = cb;
	r->arg = arg;
	r->done = json_array();
	r->n = -1; /* the first day's candidates are read by run_next */
	r->day_i = 0;
	s->run = r;
	run_next(r);
	return true;
}

bool tlsrpt_sender_run(struct tlsrpt_sender *s, const char *day, bool dry_run, tlsrpt_run_cb cb,
                       void *arg)
{
	const char *days[] = {day};
	return start_run(s, days, 1, dry_run, cb, arg);
}

/* ---- the daily schedule ----------------------------------------------------------------- */

static void day_of(int64_t ms, char *buf, size_t n)
{
	char t[32];
	time_format_rfc3339(ms, t, sizeof t);
	snprintf(buf, n, "%.10s", t);
}

struct forget_job {
	char day[16];
};

static int forget_run(struct spool *sp, void *arg, char *why, size_t whylen)
{
	struct forget_job *f = arg;
	return spool_tls_results_forget(sp, f->day, why, whylen) < 0 ? -1 : 0;
}

static void forget_done(void *arg, int status, const char *why)
{
	if (status != 0)
		log_event(LOG_WARN, "tlsrpt_forget_failed", "reason=%s", log_quote(why));
	free(arg);
}

static void arm_daily(struct tlsrpt_sender *s, int64_t delay_ms)
{
	struct timeval tv = {.tv_sec = delay_ms / 1000, .tv_usec = (delay_ms % 1000) * 1000};
	evtimer_add(s->daily, &tv);
}

/* The days before today, newest first; then the next run after midnight. */
static void on_daily(evutil_socket_t fd, short what, void *arg)
{
	struct tlsrpt_sender *s = arg;
	int64_t now = time_now_ms();
	char yesterday[16], before[16];
	day_of(now - DAY_MS, yesterday, sizeof yesterday);
	day_of(now - 2 * DAY_MS, before, sizeof before);
	const char *days[] = {yesterday, before};
	if (!start_run(s, days, 2, false, NULL, NULL))
		log_event(LOG_INFO, "tlsrpt_run_skipped", "reason=%s", "a run is in progress");
	struct forget_job *f = calloc(1, sizeof *f);
	if (f == NULL)
		abort();
	day_of(now - DAYS_KEPT * DAY_MS, f->day, sizeof f->day);
	spool_writer_submit_alone(s->cfg.writer, forget_run, forget_done, f);
	unsigned spread = 0;
	RAND_bytes((unsigned char *)&spread, sizeof spread);
	int64_t midnight = (now / DAY_MS + 1) * DAY_MS;
	arm_daily(s, midnight - now + RUN_AFTER_MS + (int64_t)(spread % RUN_SPREAD_MS));
}

/* ---- posts to https: destinations ---------------------------------------------------- */

struct post {
	struct tlsrpt_sender *s;
	int64_t id;
	int attempts;
	char url[TLSRPT_URI_MAX], host[256];
	unsigned char *body;
	size_t len;
	struct gather *gather;
	struct https_request *req;
	struct post *next;
	bool outcome_ok;
	char error[256];
	int64_t next_ms; /* when to post again: set on the loop thread (a reload may
	                  * change [delivery] first_retry, docs/install.md) */
};

static void post_free(struct post *p)
{
	struct tlsrpt_sender *s = p->s;
	for (struct post **pp = &s->posts; *pp; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	if (p->gather)
		gather_cancel(p->gather);
	https_cancel(p->req);
	free(p->body);
	free(p);
}

static int post_outcome_run(struct spool *sp, void *arg, char *why, size_t whylen)
{
	struct post *p = arg;
	if (p->outcome_ok || p->attempts + 1 >= POST_ATTEMPTS)
		return spool_tls_post_gone(sp, p->id, why, whylen);
	return spool_tls_post_retry(sp, p->id, p->next_ms, p->error, why, whylen);
}

/* The posts are looked at again when the earliest retry is due. */
static void posts_wake_in(struct tlsrpt_sender *s, int64_t ms)
{
	struct timeval now, at, want, tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
	/* evtimer_pending gives the absolute expiry, on the loop's clock */
	event_base_gettimeofday_cached(s->cfg.base, &now);
	timeradd(&now, &tv, &want);
	if (evtimer_pending(s->posts_timer, &at) && timercmp(&at, &want, <))
		return;
	evtimer_add(s->posts_timer, &tv);
}

static void post_outcome_done(void *arg, int status, const char *why)
{
	struct post *p = arg;
	if (status != 0)
		log_event(LOG_WARN, "tlsrpt_post_not_recorded", "url=%s reason=%s", log_quote(p->url),
		          log_quote(why));
	if (status == 0 && !p->outcome_ok && p->attempts + 1 < POST_ATTEMPTS)
		posts_wake_in(p->s, retry_backoff_ms(p->s->cfg.conf->first_retry_ms, p->attempts));
	post_free(p);
}

static void post_finish(struct post *p, bool ok, const char *error)
{
	p->outcome_ok = ok;
	snprintf(p->error, sizeof p->error, "%s", error ? error : "");
	bool last = !ok && p->attempts + 1 >= POST_ATTEMPTS;
	metric_add(m_reports, ok ? "https-sent" : last ? "https-failed" : "https-deferred", 1);
	log_event(ok ? LOG_INFO : LOG_WARN, "tlsrpt_post", "url=%s attempt=%d result=%s error=%s",
	          log_quote(p->url), p->attempts + 1, ok ? "sent" : last ? "failed" : "deferred",
	          ok ? "-" : log_quote(p->error));
	p->next_ms = time_now_ms() + retry_backoff_ms(p->s->cfg.conf->first_retry_ms, p->attempts);
	spool_writer_submit_alone(p->s->cfg.writer, post_outcome_run, post_outcome_done, p);
}

static void on_posted(void *arg, const struct https_result *r)
{
	struct post *p = arg;
	p->req = NULL;
	char error[256];
	if (r->outcome == HTTPS_RESPONSE && r->status >= 200 && r->status < 300)
		return post_finish(p, true, NULL);
	if (r->outcome == HTTPS_RESPONSE)
		snprintf(error, sizeof error, "HTTP status %ld", r->status);
	else
		snprintf(error, sizeof error, "%s: %.200s", https_outcome_name(r->outcome), r->reason);
	post_finish(p, false, error);
}

static void on_post_addresses(void *arg, struct host_ips *ips, bool ok)
{
	struct post *p = arg;
	p->gather = NULL;
	if (!ok) {
		char error[300];
		snprintf(error, sizeof error, "cannot resolve %.100s: %.150s", p->host, ips->error);
		host_ips_free(ips);
		return post_finish(p, false, error);
	}
	char addrs[16][64];
	const char *list[16];
	size_t n = 0;
	for (; n < ips->n && n < 16; n++) {
		dns_addr_format(&ips->addrs[n], addrs[n], sizeof addrs[n]);
		list[n] = addrs[n];
	}
	host_ips_free(ips);
	struct https_request_opts o = {
	    .method = HTTPS_POST,
	    .url = p->url,
	    .addrs = list,
	    .naddrs = n,
	    .body = p->body,
	    .body_len = p->len,
	    .content_type = "application/tlsrpt+gzip", /* RFC 8460 §5.4 */
	    .timeout_ms = POST_TIMEOUT_MS,
	    .max_body = 65536,
	};
	p->req = https_request(p->s->https, &o, on_posted, p);
}

static bool url_host(const char *url, char *host, size_t n)
{
	CURLU *u = curl_url();
	char *h = NULL;
	bool ok = u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	          curl_url_get(u, CURLUPART_HOST, &h, 0) == CURLUE_OK;
	if (ok) {
		size_t len = strlen(h);
		/* "[2001:db8::1]": the address itself */
		if (len > 2 && h[0] == '[' && h[len - 1] == ']')
			snprintf(host, n, "%.*s", (int)(len - 2), h + 1);
		else
			snprintf(host, n, "%s", h);
	}
	curl_free(h);
	curl_url_cleanup(u);
	return ok;
}

static void post_start(void *arg, const struct spool_tls_post *row)
{
	struct tlsrpt_sender *s = arg;
	for (struct post *p = s->posts; p; p = p->next)
		if (p->id == row->id)
			return; /* in flight already */
	struct post *p = calloc(1, sizeof *p);
	if (p == NULL || (p->body = malloc(row->len ? row->len : 1)) == NULL)
		abort();
	p->s = s;
	p->id = row->id;
	p->attempts = row->attempts;
	snprintf(p->url, sizeof p->url, "%s", row->url);
	memcpy(p->body, row->body, row->len);
	p->len = row->len;
	p->next = s->posts;
	s->posts = p;
	if (!url_host(p->url, p->host, sizeof p->host))
		return post_finish(p, false, "not a URL");
	p->gather = gather_ips(s->dns, p->host, NULL, 0, on_post_addresses, p);
}

static void on_posts_timer(evutil_socket_t fd, short what, void *arg)
{
	struct tlsrpt_sender *s = arg;
	char why[256];
	int64_t now = time_now_ms(), next;
	if (spool_tls_posts_due(s->cfg.reader, now, POSTS_BATCH, post_start, s, &next, why,
	                        sizeof why) < 0) {
		log_event(LOG_WARN, "tlsrpt_posts_failed", "reason=%s", log_quote(why));
		next = INT64_MAX;
	}
	/* the next look is when the earliest post left is due (a post that a
	 * restart found waiting for its retry is not left for POSTS_EVERY_MS), at
	 * least a second away (posts in flight stay due until their outcome) */
	int64_t wait = next == INT64_MAX ? POSTS_EVERY_MS : next - now;
	wait = wait < 1000 ? 1000 : wait > POSTS_EVERY_MS ? POSTS_EVERY_MS : wait;
	struct timeval tv = {.tv_sec = wait / 1000, .tv_usec = (wait % 1000) * 1000};
	evtimer_add(s->posts_timer, &tv);
}

/* ---- life ---------------------------------------------------------------------------- */

struct tlsrpt_sender *tlsrpt_sender_start(const struct tlsrpt_sender_config *cfg, char *why,
                                          size_t whylen)
{
	metrics_init();
	struct tlsrpt_sender *s = calloc(1, sizeof *s);
	if (s == NULL)
		abort();
	s->cfg = *cfg;
	tlsrpt_submitter(cfg->conf, cfg->dkim, s->submitter, sizeof s->submitter);
	snprintf(s->postmaster, sizeof s->postmaster, "postmaster@%s", s->submitter);
	s->dns = dns_resolver_new(cfg->base, cfg->conf, why, whylen);
	if (s->dns == NULL || (s->https = https_client_new(cfg->base, cfg->conf->ca_file, why,
	                                                   whylen)) == NULL) {
		tlsrpt_sender_free(s);
		return NULL;
	}
	s->daily = evtimer_new(cfg->base, on_daily, s);
	s->posts_timer = evtimer_new(cfg->base, on_posts_timer, s);
	if (cfg->schedule)
		arm_daily(s, START_DELAY_MS);
	struct timeval soon = {.tv_sec = 5};
	evtimer_add(s->posts_timer, &soon);
	return s;
}

void tlsrpt_sender_free(struct tlsrpt_sender *s)
{
	if (s == NULL)
		return;
	if (s->run) {
		if (s->run->cb)
			s->run->cb(s->run->arg, NULL, "shutting down");
		run_free(s->run);
	}
	while (s->posts)
		post_free(s->posts);
	if (s->daily)
		event_free(s->daily);
	if (s->posts_timer)
		event_free(s->posts_timer);
	https_client_free(s->https);
	if (s->dns)
		dns_resolver_free(s->dns);
	free(s);
}
