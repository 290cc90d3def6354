/* cache.c - MTA-STS policies for delivery attempts, cached in the spool. */
#include "mtasts/cache.h"

#include "dns/dns.h"
#include "mtasts/fetch.h"
#include "spool/sts_rows.h"
#include "spool/writer.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/timeutil.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MEMO_MS          60000LL             /* a domain's answer is reused this long */
#define MEMO_MAX         10000               /* domains remembered; beyond, forget all */
#define MEMO_BUCKETS     4096
#define BACKOFF_MS       300000LL            /* no new fetch this soon after a failed one */
#define TOUCH_EVERY_MS   86400000LL          /* last_use is written at most daily */
#define FORGET_UNUSED_MS (180 * 86400000LL)  /* policies unused this long are dropped */
#define REFRESH_BATCH    50                  /* stale policies looked at per refresher run */
#define REFRESH_PARALLEL 4

struct memo {
	char domain[256];
	struct sts_policy *policy;
	const char *result_type;
	char reason[128], text[256];
	int64_t until_ms;
	struct memo *next;
};

struct sts_request {
	struct work *w;
	sts_cache_cb cb;
	void *arg;
	struct sts_request *next;
};

struct work {
	struct sts_cache *c;
	char domain[256];
	bool refresh; /* the background refresher's: no waiters */
	int64_t started_ms;
	struct sts_row row; /* the cached row, when valid */
	bool have_row;
	struct sts_policy *cached; /* its policy, parsed */
	struct mtasts_record rec;  /* the TXT record, when one was found */
	bool have_rec;
	struct event *start; /* the first step, out of the caller's call */
	struct dns_query *q;
	struct mtasts_fetch *f;
	struct sts_request *waiters;
	struct work *next;
};

struct sts_cache {
	struct sts_cache_config cfg;
	struct memo *memo[MEMO_BUCKETS];
	size_t nmemo;
	struct work *works;
	size_t refreshing;
	struct event *refresh_timer;
};

static struct metric *m_lookups;

void sts_cache_metrics_init(void)
{
	if (m_lookups == NULL)
		m_lookups = metric_counter("outpost_mtasts_lookups_total",
		                           "MTA-STS policy lookups of delivery attempts, by how they "
		                           "were answered",
		                           "result");
}

/* ---- shared policies -------------------------------------------------------- */

struct sts_policy *sts_policy_ref(struct sts_policy *p)
{
	if (p)
		p->refs++;
	return p;
}

void sts_policy_unref(struct sts_policy *p)
{
	if (p == NULL || --p->refs > 0)
		return;
	mtasts_policy_free(p->parsed);
	free(p);
}

struct sts_policy *sts_policy_new(const char *text, const char *id, char *why, size_t whylen)
{
	struct mtasts_policy *parsed = mtasts_policy_parse(text, strlen(text), why, whylen);
	if (parsed == NULL)
		return NULL;
	struct sts_policy *p = calloc(1, sizeof *p);
	if (p == NULL)
		abort();
	p->refs = 1;
	p->parsed = parsed;
	snprintf(p->id, sizeof p->id, "%s", id);
	return p;
}

static bool policy_is_none(const struct sts_policy *p)
{
	return p == NULL || mtasts_policy_mode(p->parsed) == MTASTS_MODE_NONE;
}

/* ---- the memory of recent answers --------------------------------------------- */

static unsigned bucket_of(const char *domain)
{
	unsigned h = 5381;
	for (const unsigned char *p = (const unsigned char *)domain; *p; p++)
		h = h * 33 + (unsigned)(*p | 0x20);
	return h % MEMO_BUCKETS;
}

static void memo_free(struct memo *m)
{
	sts_policy_unref(m->policy);
	free(m);
}

static void memo_forget_all(struct sts_cache *c)
{
	for (size_t b = 0; b < MEMO_BUCKETS; b++)
		while (c->memo[b]) {
			struct memo *m = c->memo[b];
			c->memo[b] = m->next;
			memo_free(m);
		}
	c->nmemo = 0;
}

static struct memo **memo_find(struct sts_cache *c, const char *domain)
{
	struct memo **pp = &c->memo[bucket_of(domain)];
	while (*pp && strcasecmp((*pp)->domain, domain) != 0)
		pp = &(*pp)->next;
	return pp;
}

static void memo_drop(struct sts_cache *c, const char *domain)
{
	struct memo **pp = memo_find(c, domain);
	if (*pp) {
		struct memo *m = *pp;
		*pp = m->next;
		memo_free(m);
		c->nmemo--;
	}
}

static void memo_put(struct sts_cache *c, const char *domain, const struct sts_result *r,
                     int64_t until_ms)
{
	memo_drop(c, domain);
	if (c->nmemo >= MEMO_MAX)
		memo_forget_all(c);
	struct memo *m = calloc(1, sizeof *m);
	if (m == NULL)
		abort();
	snprintf(m->domain, sizeof m->domain, "%s", domain);
	m->policy = sts_policy_ref(r->policy);
	m->result_type = r->result_type;
	snprintf(m->reason, sizeof m->reason, "%s", r->reason);
	snprintf(m->text, sizeof m->text, "%s", r->text);
	m->until_ms = until_ms;
	struct memo **head = &c->memo[bucket_of(domain)];
	m->next = *head;
	*head = m;
	c->nmemo++;
}

bool sts_cache_lookup_now(struct sts_cache *c, const char *domain, struct sts_result *out)
{
	struct memo **pp = memo_find(c, domain);
	if (*pp == NULL)
		return false;
	struct memo *m = *pp;
	if (time_now_ms() >= m->until_ms) {
		memo_drop(c, domain);
		return false;
	}
	memset(out, 0, sizeof *out);
	out->policy = sts_policy_ref(m->policy);
	out->result_type = m->result_type;
	snprintf(out->reason, sizeof out->reason, "%s", m->reason);
	snprintf(out->text, sizeof out->text, "%s", m->text);
	sts_cache_metrics_init();
	metric_add(m_lookups, "memory", 1);
	return true;
}

/* ---- rows written through the writer ------------------------------------------- */

enum row_change { ROW_PUT, ROW_CONFIRM, ROW_DELETE, ROW_FORGET };

struct row_job {
	enum row_change change;
	struct sts_row row;
	int64_t now_ms;
};

static int row_job_run(struct spool *s, void *arg, char *why, size_t whylen)
{
	struct row_job *j = arg;
	switch (j->change) {
	case ROW_PUT:
		return spool_sts_put(s, &j->row, why, whylen);
	case ROW_CONFIRM:
		return spool_sts_confirm(s, j->row.domain, j->now_ms, j->row.valid_until_ms, why,
		                         whylen);
	case ROW_DELETE:
		return spool_sts_delete(s, j->row.domain, why, whylen);
	case ROW_FORGET:
		return spool_sts_forget(s, j->now_ms - FORGET_UNUSED_MS, j->now_ms - 86400000LL, why,
		                        whylen) < 0
		           ? -1
		           : 0;
	}
	return 0;
}

static void row_job_done(void *arg, int status, const char *why)
{
	struct row_job *j = arg;
	if (status != 0)
		log_event(LOG_WARN, "mtasts_cache_write_failed", "domain=%s reason=%s",
		          log_quote(j->row.domain), log_quote(why));
	sts_row_clear(&j->row);
	free(j);
}

static void row_write(struct sts_cache *c, enum row_change change, const struct sts_row *row)
{
	if (c->cfg.writer == NULL)
		return;
	struct row_job *j = calloc(1, sizeof *j);
	if (j == NULL)
		abort();
	j->change = change;
	j->now_ms = time_now_ms();
	if (row) {
		j->row = *row;
		j->row.policy = strdup(row->policy ? row->policy : "");
		if (j->row.policy == NULL)
			abort();
	}
	/* cache rows never ride in a batch that acknowledges mail */
	spool_writer_submit_alone(c->cfg.writer, row_job_run, row_job_done, j);
}

/* ---- one lookup ------------------------------------------------------------------ */

static void work_free(struct work *w)
{
	struct sts_cache *c = w->c;
	for (struct work **pp = &c->works; *pp; pp = &(*pp)->next)
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	if (w->start)
		event_free(w->start);
	if (w->q)
		dns_cancel(w->q);
	if (w->f)
		mtasts_fetch_cancel(w->f);
	if (w->refresh)
		c->refreshing--;
	sts_row_clear(&w->row);
	sts_policy_unref(w->cached);
	while (w->waiters) {
		struct sts_request *r = w->waiters;
		w->waiters = r->next;
		free(r);
	}
	free(w);
}

static void result_detail(struct sts_result *r, const char *result_type, const char *fmt,
                          const char *a, const char *b)
{
	r->result_type = result_type;
	snprintf(r->reason, sizeof r->reason, fmt, a, b);
}

/* Hands the result to every waiter (each gets its own reference), keeps
 * it in memory unless it is a temporary failure, and ends the work. */
static void finish(struct work *w, struct sts_result *r, const char *how, int64_t valid_until_ms)
{
	struct sts_cache *c = w->c;
	int64_t now = time_now_ms(), until = now + MEMO_MS;
	if (valid_until_ms > 0 && valid_until_ms < until)
		until = valid_until_ms;
	if (!r->temporary_failure && until > now)
		memo_put(c, w->domain, r, until);
	sts_cache_metrics_init();
	metric_add(m_lookups, how, 1);
	log_event(LOG_DEBUG, "mtasts_lookup", "domain=%s result=%s mode=%s id=%s detail=%s",
	          log_quote(w->domain), how,
	          r->policy ? mtasts_mode_name(mtasts_policy_mode(r->policy->parsed)) : "-",
	          r->policy ? r->policy->id : "-", r->result_type ? r->reason : "-");
	struct sts_request *list = w->waiters;
	w->waiters = NULL;
	for (struct sts_request *q = list; q; q = q->next)
		q->w = NULL;
	work_free(w);
	while (list) {
		struct sts_request *q = list;
		list = q->next;
		struct sts_result mine = *r;
		mine.policy = sts_policy_ref(r->policy);
		q->cb(q->arg, &mine);
		free(q);
	}
	sts_policy_unref(r->policy);
}

/* The cached policy stays in force after a failure (RFC 8461 §5.1). */
static void finish_with_cached(struct work *w, const char *result_type, const char *reason)
{
	struct sts_result r = {.policy = sts_policy_ref(w->cached)};
	if (result_type)
		result_detail(&r, result_type,
		              policy_is_none(w->cached) ? "%s" : "%s+fallback-to-cached-policy",
		              reason, NULL);
	snprintf(r.text, sizeof r.text, "cached policy id %s%s%s", w->cached->id,
	         reason ? ": " : "", reason ? reason : "");
	finish(w, &r, result_type ? "fallback" : "cached", w->row.valid_until_ms);
}

static void finish_without(struct work *w, const char *how, const char *result_type,
                           const char *reason, int64_t until_ms)
{
	struct sts_result r = {0};
	if (result_type)
		result_detail(&r, result_type, "%s", reason, NULL);
	snprintf(r.text, sizeof r.text, "no policy%s%s", reason ? ": " : "", reason ? reason : "");
	finish(w, &r, how, until_ms);
}

static void refresh_done(struct work *w, const char *what)
{
	log_event(LOG_INFO, "mtasts_refresh", "domain=%s result=%s", log_quote(w->domain), what);
	work_free(w);
}

static void on_fetch(void *arg, const struct mtasts_fetch_result *f)
{
	struct work *w = arg;
	struct sts_cache *c = w->c;
	int64_t now = time_now_ms();
	char why[256] = "";
	w->f = NULL;
	const char *result_type = f->result_type;
	char reason[128];
	snprintf(reason, sizeof reason, "%s", f->reason);
	struct sts_policy *p = NULL;
	if (f->status == MTASTS_FETCH_OK) {
		p = sts_policy_new(f->body, w->have_rec ? w->rec.id : "", why, sizeof why);
		if (p == NULL) {
			result_type = "sts-policy-invalid";
			snprintf(reason, sizeof reason, "policy-syntax-error");
			log_event(LOG_WARN, "mtasts_policy_invalid", "domain=%s reason=%s",
			          log_quote(w->domain), log_quote(why));
		}
	}
	if (p) {
		int64_t max_age_ms = mtasts_policy_max_age(p->parsed) * 1000;
		struct sts_row row = {.policy = (char *)f->body,
		                      .fetched_ms = now,
		                      .valid_until_ms = now + max_age_ms,
		                      .last_use_ms = now};
		snprintf(row.domain, sizeof row.domain, "%s", w->domain);
		snprintf(row.record_id, sizeof row.record_id, "%s", p->id);
		/* max_age 0: it governs the attempt that fetched it, nothing more */
		if (max_age_ms > 0)
			row_write(c, ROW_PUT, &row);
		else if (w->have_row)
			row_write(c, ROW_DELETE, &row);
		log_event(LOG_INFO, "mtasts_policy_fetched", "domain=%s id=%s mode=%s max_age=%lld",
		          log_quote(w->domain), p->id, mtasts_mode_name(mtasts_policy_mode(p->parsed)),
		          (long long)mtasts_policy_max_age(p->parsed));
		if (w->refresh) {
			memo_drop(c, w->domain);
			sts_policy_unref(p);
			return refresh_done(w, "fetched");
		}
		struct sts_result r = {.policy = p};
		snprintf(r.text, sizeof r.text, "policy id %s fetched", p->id);
		return finish(w, &r, "fetched", row.valid_until_ms);
	}
	log_event(LOG_WARN, "mtasts_fetch_failed", "domain=%s result_type=%s reason=%s detail=%s",
	          log_quote(w->domain), result_type, reason, log_quote(f->detail));
	if (w->refresh)
		return refresh_done(w, "fetch-failed");
	if (w->cached)
		return finish_with_cached(w, result_type, reason);
	struct sts_row backoff = {.policy = "",
	                          .backoff = true,
	                          .fetched_ms = now,
	                          .valid_until_ms = now + BACKOFF_MS,
	                          .last_use_ms = now};
	snprintf(backoff.domain, sizeof backoff.domain, "%s", w->domain);
	row_write(c, ROW_PUT, &backoff);
	finish_without(w, "fetch-failed", result_type, reason, now + BACKOFF_MS);
}

static void fetch(struct work *w)
{
	struct sts_cache *c = w->c;
	int64_t left = c->cfg.fetch_timeout_ms - (time_now_ms() - w->started_ms);
	if (left < 1000)
		left = 1000;
	w->f = mtasts_fetch(c->cfg.dns, c->cfg.https, w->domain, left, c->cfg.https_port, on_fetch,
	                    w);
}

enum txt_status { TXT_OK, TXT_NONE, TXT_MULTIPLE, TXT_SYNTAX, TXT_ERROR };

static enum txt_status txt_classify(struct work *w, const struct dns_answer *a, char *reason,
                                    size_t n)
{
	if (a->status == DNS_NOTFOUND) {
		snprintf(reason, n, "no-mta-sts-record");
		return TXT_NONE;
	}
	if (a->status != DNS_OK) {
		if (a->ede >= 0)
			snprintf(reason, n, "dns-extended-error-%d", a->ede);
		else
			snprintf(reason, n, "dns-lookup-error");
		return TXT_ERROR;
	}
	char why[128];
	switch (mtasts_record_find((const char *const *)a->txt, a->n, &w->rec, why, sizeof why)) {
	case MTASTS_RECORD_OK:
		w->have_rec = true;
		return TXT_OK;
	case MTASTS_RECORD_NONE:
		snprintf(reason, n, "no-mta-sts-record");
		return TXT_NONE;
	case MTASTS_RECORD_MULTIPLE:
		snprintf(reason, n, "multiple-mta-sts-records");
		return TXT_MULTIPLE;
	default:
		snprintf(reason, n, "record-syntax-error");
		return TXT_SYNTAX;
	}
}

static void refresh_on_txt(struct work *w, enum txt_status t)
{
	struct sts_cache *c = w->c;
	if (t == TXT_OK && strcmp(w->rec.id, w->row.record_id) == 0) {
		struct sts_row row = w->row;
		row.valid_until_ms = time_now_ms() + mtasts_policy_max_age(w->cached->parsed) * 1000;
		row_write(c, ROW_CONFIRM, &row);
		return refresh_done(w, "confirmed");
	}
	if (t == TXT_NONE && policy_is_none(w->cached)) {
		row_write(c, ROW_DELETE, &w->row);
		memo_drop(c, w->domain);
		return refresh_done(w, "removed");
	}
	/* a new id, or a TXT record that failed: fetch anyway, so that a DNS
	 * outage does not let the policy expire */
	fetch(w);
}

static void on_txt(void *arg, const struct dns_answer *a)
{
	struct work *w = arg;
	char reason[64];
	w->q = NULL;
	enum txt_status t = txt_classify(w, a, reason, sizeof reason);
	if (w->refresh)
		return refresh_on_txt(w, t);
	if (w->cached) {
		if (t == TXT_OK && strcmp(w->rec.id, w->row.record_id) == 0) {
			/* the record still names it: good for another max_age (as the
			 * refresher does), written at most daily */
			if (time_now_ms() - w->row.last_use_ms > TOUCH_EVERY_MS) {
				w->row.valid_until_ms =
				    time_now_ms() + mtasts_policy_max_age(w->cached->parsed) * 1000;
				row_write(w->c, ROW_CONFIRM, &w->row);
			}
			return finish_with_cached(w, NULL, NULL);
		}
		if (t == TXT_OK)
			return fetch(w);
		if (t == TXT_NONE && !policy_is_none(w->cached))
			log_event(LOG_WARN, "mtasts_record_gone",
			          "domain=%s id=%s note=%s", log_quote(w->domain), w->cached->id,
			          log_quote("the cached policy stays in force until it expires: "
			                    "a removed record may be a downgrade attack"));
		return finish_with_cached(w, "sts-policy-fetch-error", reason);
	}
	switch (t) {
	case TXT_OK:
		return fetch(w);
	case TXT_NONE:
		return finish_without(w, "no-policy", NULL, NULL, 0);
	case TXT_MULTIPLE:
	case TXT_SYNTAX:
		return finish_without(w, "no-policy", "sts-policy-fetch-error", reason, 0);
	case TXT_ERROR: {
		struct sts_result r = {.temporary_failure = true};
		result_detail(&r, "sts-policy-fetch-error", "%s", reason, NULL);
		snprintf(r.text, sizeof r.text, "MTA-STS TXT lookup for %.100s failed: %.100s", w->domain,
		         a->error);
		return finish(w, &r, "temporary-failure", 0);
	}
	}
}

static void ask_txt(struct work *w)
{
	char name[300];
	snprintf(name, sizeof name, "_mta-sts.%s", w->domain);
	w->q = dns_query(w->c->cfg.dns, name, DNS_TXT, on_txt, w);
}

/* Reads the cached row: a valid back-off row answers at once; a valid
 * policy is parsed (and checked against the TXT record next). */
static bool load_row(struct work *w, char *why, size_t whylen)
{
	int found = spool_sts_get(w->c->cfg.reader, w->domain, &w->row, why, whylen);
	if (found < 0)
		return false;
	if (found == 0 || w->row.valid_until_ms <= time_now_ms())
		return true;
	w->have_row = true;
	if (w->row.backoff)
		return true;
	char perr[128];
	w->cached = sts_policy_new(w->row.policy, w->row.record_id, perr, sizeof perr);
	if (w->cached == NULL) /* a row we wrote ourselves: cannot happen, but then refetch */
		w->have_row = false;
	return true;
}

static struct work *work_new(struct sts_cache *c, const char *domain, bool refresh)
{
	struct work *w = calloc(1, sizeof *w);
	if (w == NULL)
		abort();
	w->c = c;
	w->refresh = refresh;
	w->started_ms = time_now_ms();
	snprintf(w->domain, sizeof w->domain, "%s", domain);
	w->next = c->works;
	c->works = w;
	if (refresh)
		c->refreshing++;
	return w;
}

static void on_start(evutil_socket_t fd, short what, void *arg)
{
	struct work *w = arg;
	char why[256];
	if (!load_row(w, why, sizeof why)) {
		struct sts_result r = {.temporary_failure = true};
		snprintf(r.text, sizeof r.text, "cannot read the MTA-STS cache: %.200s", why);
		return finish(w, &r, "temporary-failure", 0);
	}
	if (w->have_row && w->row.backoff)
		return finish_without(w, "backoff", "sts-policy-fetch-error",
		                      "back-off-after-recent-fetch-error", w->row.valid_until_ms);
	ask_txt(w);
}

struct sts_request *sts_cache_get(struct sts_cache *c, const char *domain, sts_cache_cb cb,
                                  void *arg)
{
	struct work *w = c->works;
	while (w && (w->refresh || strcasecmp(w->domain, domain) != 0))
		w = w->next;
	if (w == NULL) {
		w = work_new(c, domain, false);
		/* the first step reads SQLite: not from within the caller */
		w->start = evtimer_new(c->cfg.base, on_start, w);
		if (w->start == NULL)
			abort();
		struct timeval now = {0, 0};
		evtimer_add(w->start, &now);
	}
	struct sts_request *r = calloc(1, sizeof *r);
	if (r == NULL)
		abort();
	r->w = w;
	r->cb = cb;
	r->arg = arg;
	r->next = w->waiters;
	w->waiters = r;
	return r;
}

void sts_request_cancel(struct sts_request *r)
{
	if (r == NULL || r->w == NULL)
		return;
	struct work *w = r->w;
	for (struct sts_request **pp = &w->waiters; *pp; pp = &(*pp)->next)
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	free(r);
	/* the work goes on without waiters: its answer is still worth keeping */
}

/* ---- the refresher ---------------------------------------------------------------- */

static void refresh_one(struct sts_cache *c, const char *domain)
{
	for (struct work *w = c->works; w; w = w->next)
		if (w->refresh && strcasecmp(w->domain, domain) == 0)
			return;
	struct work *w = work_new(c, domain, true);
	char why[256];
	if (!load_row(w, why, sizeof why) || !w->have_row || w->cached == NULL) {
		work_free(w);
		return;
	}
	ask_txt(w);
}

static void on_refresh_timer(evutil_socket_t fd, short what, void *arg)
{
	struct sts_cache *c = arg;
	int64_t now = time_now_ms();
	char domains[REFRESH_BATCH][256], why[256];
	int n = spool_sts_stale(c->cfg.reader, now - c->cfg.refresh_interval_ms, domains,
	                        REFRESH_BATCH, why, sizeof why);
	if (n < 0)
		log_event(LOG_WARN, "mtasts_refresh_failed", "reason=%s", log_quote(why));
	for (int i = 0; i < n && c->refreshing < REFRESH_PARALLEL; i++)
		refresh_one(c, domains[i]);
	row_write(c, ROW_FORGET, NULL);
	/* again soon while there is a backlog, else at a quarter of the interval */
	int64_t next_ms = n == REFRESH_BATCH || c->refreshing >= REFRESH_PARALLEL
	                      ? 60000
	                      : c->cfg.refresh_interval_ms / 4;
	struct timeval tv = {.tv_sec = next_ms / 1000};
	evtimer_add(c->refresh_timer, &tv);
}

/* ---- life ------------------------------------------------------------------------ */

struct sts_cache *sts_cache_new(const struct sts_cache_config *cfg)
{
	sts_cache_metrics_init();
	struct sts_cache *c = calloc(1, sizeof *c);
	if (c == NULL)
		abort();
	c->cfg = *cfg;
	if (c->cfg.fetch_timeout_ms <= 0)
		c->cfg.fetch_timeout_ms = 60000;
	if (cfg->refresh_interval_ms > 0 && cfg->writer != NULL) {
		c->refresh_timer = evtimer_new(cfg->base, on_refresh_timer, c);
		struct timeval soon = {.tv_sec = 10};
		evtimer_add(c->refresh_timer, &soon);
	}
	return c;
}

void sts_cache_free(struct sts_cache *c)
{
	if (c == NULL)
		return;
	while (c->works)
		work_free(c->works);
	memo_forget_all(c);
	if (c->refresh_timer)
		event_free(c->refresh_timer);
	free(c);
}
