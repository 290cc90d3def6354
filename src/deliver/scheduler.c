/* scheduler.c - due recipients into jobs, limits, attempt bookkeeping. */
#include "deliver/scheduler.h"

#include "deliver/attempt.h"
#include "deliver/notice.h"
#include "deliver/pool.h"
#include "deliver/retry.h"
#include "dns/dns.h"
#include "tls/session_cache.h"
#include "tls/tls.h"
#include "util/https.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/timeutil.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IDLE_RECHECK_MS        60000 /* also catches mail queued by another process */
#define CLEANUP_EVERY_MS       3600000
#define CLEANUP_BATCH          500  /* messages per housekeeping transaction */
#define NOTICE_BATCH           100  /* waiting notices sent per transaction at start */
#define TLS_SESSIONS_MAX       1000 /* servers whose TLS sessions are kept for resumption */
#define WRITE_BACKOFF_FIRST_MS 1000
#define WRITE_BACKOFF_MAX_MS   60000

/* A destination with attempts in flight, or with some lately. Its window is
 * how many may run at once: it starts small and opens by one with every
 * delivered attempt, up to delivery.max_connections_per_destination
 * (Postfix's slow start), so that a burst first fills few connections and
 * then reuses them instead of opening one per message. Forgotten when the
 * destination has been idle for DEST_FORGET_MS: a receiver that answers in
 * waves (every attempt ends at once, and the next ones start only after
 * their begin is committed) keeps the window it opened. */
struct destination {
	char domain[256];
	size_t active;
	size_t window;
	int64_t idle_since_ms; /* monotonic; when active fell to 0 */
};

#define INITIAL_WINDOW 5
/* Rows read per round: an attempt that ends frees one slot, and reading
 * hundreds of rows to start one job was most of the CPU of a connection
 * per message (bench W7). */
#define DUE_READ_MAX 256
/* The first read of a wake-up is smaller still: most wake-ups are one
 * attempt ending, with one slot to fill, and the due list's head holds the
 * recipients whose begin is still on its way. A first read that comes back
 * full is followed by reads of the full size. */
#define DUE_FIRST_READ_MAX 32
#define DEST_FORGET_MS 10000

struct running {
	struct scheduler *sched;
	struct delivery_job job;
	int64_t *backoffs; /* per recipient, jittered */
	int64_t *picked;   /* the ids picked, until the begin is committed */
	bool *skipped;     /* per picked id, set by the writer: held or dropped */
	size_t npicked;
	struct attempt *attempt; /* runs while its begin is committed */
	bool begun;              /* the begin is committed (or failed) */
	bool released;           /* its destination slot is given back */
	struct running *prev, *next;
};

/* Recipients picked whose attempt is not recorded yet. Once it is, the
 * spool itself says they are in flight (and not due), so this set only
 * bridges the time a begin waits in the writer and empties after each;
 * the ids are never reused (spool.h), so a stale one could not hide a new
 * recipient anyway. An open-addressing set (ids are > 0). */
struct idset {
	int64_t *slots; /* 0 empty, -1 deleted */
	size_t cap, used;
};

struct scheduler {
	struct deliver_ctx ctx;
	struct https_client *https; /* MTA-STS policy fetches */
	struct event *timer;
	struct event *cleanup_timer;
	bool paused, stopped;
	size_t in_flight;
	struct running *jobs; /* in flight */
	struct idset flying;
	struct spool_due *due; /* scratch for schedule(), due_cap entries */
	size_t due_cap;
	struct destination *dests;
	size_t ndests;
	/* a spool that cannot be written: no new attempt before this time */
	int64_t write_backoff_ms;
	int64_t blocked_until_ms;
	int64_t deep_read_ms; /* monotonic; the last read past a full destination */
};

static struct metric *m_attempts;

static void arm(struct scheduler *s, int64_t delay_ms)
{
	if (s->stopped)
		return;
	if (delay_ms < 0)
		delay_ms = 0;
	if (delay_ms > IDLE_RECHECK_MS)
		delay_ms = IDLE_RECHECK_MS;
	struct timeval tv = {.tv_sec = delay_ms / 1000, .tv_usec = (delay_ms % 1000) * 1000};
	evtimer_add(s->timer, &tv);
}

/* ---- destinations and their limits ----------------------------------------- */

static struct destination *destination(struct scheduler *s, const char *domain, bool create)
{
	for (size_t i = 0; i < s->ndests; i++)
		if (strcmp(s->dests[i].domain, domain) == 0)
			return &s->dests[i];
	if (!create)
		return NULL;
	s->dests = realloc(s->dests, (s->ndests + 1) * sizeof *s->dests);
	if (s->dests == NULL)
		abort();
	struct destination *d = &s->dests[s->ndests++];
	snprintf(d->domain, sizeof d->domain, "%s", domain);
	d->active = 0;
	d->window = INITIAL_WINDOW;
	return d;
}

static void destination_release(struct scheduler *s, const char *domain, bool delivered)
{
	struct destination *d = destination(s, domain, false);
	if (d && delivered)
		d->window++;
	if (d && --d->active == 0)
		d->idle_since_ms = time_mono_us() / 1000;
}

/* Only busy destinations and those busy lately are kept. */
static void destinations_forget_idle(struct scheduler *s)
{
	int64_t now = time_mono_us() / 1000;
	for (size_t i = 0; i < s->ndests;) {
		struct destination *d = &s->dests[i];
		if (d->active == 0 && now - d->idle_since_ms >= DEST_FORGET_MS)
			*d = s->dests[--s->ndests];
		else
			i++;
	}
}

static bool destination_full(const struct scheduler *s, const struct destination *d)
{
	size_t max = (size_t)s->ctx.conf->delivery_max_per_destination;
	return d && d->active >= (d->window < max ? d->window : max);
}

static size_t idset_slot(const struct idset *set, int64_t id)
{
	return (size_t)((uint64_t)id * 0x9E3779B97F4A7C15ull >> 20) & (set->cap - 1);
}

static bool idset_has(const struct idset *set, int64_t id)
{
	if (set->cap == 0)
		return false;
	for (size_t i = idset_slot(set, id);; i = (i + 1) & (set->cap - 1)) {
		if (set->slots[i] == id)
			return true;
		if (set->slots[i] == 0)
			return false;
	}
}

static void idset_add(struct idset *set, int64_t id);

/* Rehashes into a table sized for the live ids, dropping tombstones. */
static void idset_grow(struct idset *set)
{
	size_t live = 0;
	for (size_t i = 0; i < set->cap; i++)
		live += set->slots[i] > 0;
	struct idset bigger = {.cap = 1024};
	while (bigger.cap < live * 4)
		bigger.cap *= 2;
	bigger.slots = calloc(bigger.cap, sizeof *bigger.slots);
	if (bigger.slots == NULL)
		abort();
	for (size_t i = 0; i < set->cap; i++)
		if (set->slots[i] > 0)
			idset_add(&bigger, set->slots[i]);
	free(set->slots);
	*set = bigger;
}

static void idset_add(struct idset *set, int64_t id)
{
	if ((set->used + 1) * 2 > set->cap)
		idset_grow(set);
	size_t i = idset_slot(set, id);
	while (set->slots[i] > 0)
		i = (i + 1) & (set->cap - 1);
	if (set->slots[i] == 0)
		set->used++;
	set->slots[i] = id;
}

static void idset_remove(struct idset *set, int64_t id)
{
	for (size_t i = idset_slot(set, id); set->cap && set->slots[i] != 0;
	     i = (i + 1) & (set->cap - 1))
		if (set->slots[i] == id) {
			set->slots[i] = -1; /* tombstones count as used until a grow */
			return;
		}
}

/* ---- jobs ------------------------------------------------------------------- */

/* The attempt holds no connection any more: its slot is free for the next
 * job of the destination, while its outcome is still being committed. */
static void job_released(void *arg, struct delivery_job *job)
{
	struct running *r = arg;
	struct scheduler *s = r->sched;
	if (r->released)
		return;
	r->released = true;
	bool delivered = false;
	for (size_t i = 0; i < job->n; i++)
		delivered |= job->rcpts[i].state == RCPT_DELIVERED;
	destination_release(s, job->domain, delivered);
	s->in_flight--;
	arm(s, 0);
}

/* The picked ids leave the set, all of them: those the begin skipped (held
 * or dropped meanwhile) as well as those now in flight in the spool. */
static void unpick(struct scheduler *s, struct running *r)
{
	for (size_t i = 0; i < r->npicked; i++)
		idset_remove(&s->flying, r->picked[i]);
	free(r->picked);
	free(r->skipped);
	r->picked = NULL;
	r->skipped = NULL;
	r->npicked = 0;
}

/* The outcome is committed (or there was no attempt): the job is over. */
static void job_finished(void *arg, struct delivery_job *job)
{
	struct running *r = arg;
	struct scheduler *s = r->sched;
	job_released(arg, job);
	unpick(s, r);
	if (r->prev)
		r->prev->next = r->next;
	else
		s->jobs = r->next;
	if (r->next)
		r->next->prev = r->prev;
	free(job->rcpts);
	free(r->backoffs);
	free(r);
	arm(s, 0);
}

/* A spool that cannot be written (a full disk): new attempts wait, longer
 * and longer up to a minute, instead of picking the same recipients again
 * at once; the writer logs and counts the failures. */
static void write_failed(struct scheduler *s)
{
	s->write_backoff_ms =
	    s->write_backoff_ms ? s->write_backoff_ms * 2 : WRITE_BACKOFF_FIRST_MS;
	if (s->write_backoff_ms > WRITE_BACKOFF_MAX_MS)
		s->write_backoff_ms = WRITE_BACKOFF_MAX_MS;
	s->blocked_until_ms = time_mono_us() / 1000 + s->write_backoff_ms;
}

/* On the writer thread, while the attempt sets up its connection on the
 * loop thread: it reads the picked ids and writes only skipped[], which the
 * loop reads in begin_done. */
static int begin_job(struct spool *sp, void *arg, char *why, size_t whylen)
{
	struct running *r = arg;
	int64_t now = time_now_ms();
	for (size_t i = 0; i < r->npicked; i++) {
		int n = spool_attempt_begin(sp, r->picked[i], now, r->backoffs[i], why, whylen);
		if (n < 0)
			return -1;
		r->skipped[i] = n == 0; /* held or dropped meanwhile */
	}
	return 0;
}

/* Recipients held or dropped since they were picked leave the job. */
static void drop_skipped(struct running *r)
{
	size_t kept = 0;
	for (size_t i = 0; i < r->job.n; i++)
		if (!r->skipped[i])
			r->job.rcpts[kept++] = r->job.rcpts[i];
	r->job.n = kept;
}

/* Before its begin, an attempt has sent no message and written nothing: it
 * can always be dropped (attempt_abort never finds it writing). */
static void drop_unbegun_attempt(struct running *r)
{
	if (r->attempt && !attempt_abort(r->attempt))
		abort();
	r->attempt = NULL;
}

static void begin_done(void *arg, int status, const char *why)
{
	struct running *r = arg;
	struct scheduler *s = r->sched;
	r->begun = true;
	if (status == 0)
		drop_skipped(r);
	unpick(s, r);
	if (status != 0) {
		log_event(LOG_DEBUG, "attempt_not_started", "reason=%s", log_quote(why));
		write_failed(s);
	} else {
		s->write_backoff_ms = 0;
	}
	if (status != 0 || r->job.n == 0 || s->stopped || r->attempt == NULL) {
		drop_unbegun_attempt(r);
		return job_finished(r, &r->job);
	}
	metric_add(m_attempts, "started", 1);
	attempt_begun(r->attempt);
}

/* The attempt is counted and the next one scheduled before it sends the
 * message, so a crash mid-attempt leaves it counted (deferred), never lost;
 * its DNS lookups and connection set-up run meanwhile (docs/queue.md,
 * "Attempt bookkeeping"). */
static void job_start(struct scheduler *s, struct running *r)
{
	r->sched = s;
	r->backoffs = calloc(r->job.n, sizeof *r->backoffs);
	r->picked = calloc(r->job.n, sizeof *r->picked);
	r->skipped = calloc(r->job.n, sizeof *r->skipped);
	if (r->backoffs == NULL || r->picked == NULL || r->skipped == NULL)
		abort();
	for (size_t i = 0; i < r->job.n; i++) {
		struct job_rcpt *jr = &r->job.rcpts[i];
		r->backoffs[i] =
		    retry_jitter(retry_backoff_ms(s->ctx.conf->first_retry_ms, jr->attempt - 1));
		idset_add(&s->flying, jr->id);
		r->picked[r->npicked++] = jr->id;
	}
	/* idle pooled connections count against max_connections too */
	if (s->in_flight + pool_idle_total(s->ctx.pool) >=
	    (size_t)s->ctx.conf->delivery_max_connections)
		pool_make_room(s->ctx.pool, r->job.domain);
	destination(s, r->job.domain, true)->active++;
	r->next = s->jobs;
	if (s->jobs)
		s->jobs->prev = r;
	s->jobs = r;
	s->in_flight++;
	spool_writer_submit_bookkeeping(s->ctx.writer, begin_job, begin_done, r);
	r->attempt = attempt_run(&s->ctx, &r->job, job_released, job_finished, r);
}

static bool same_job(const struct spool_due *d, const struct running *r)
{
	return d->rcpt_id != 0 && d->msg_id == r->job.msg_id &&
	       strcmp(d->domain, r->job.domain) == 0;
}

/* The due recipients of one message at one domain, in due order. */
static struct running *job_collect(struct scheduler *s, struct spool_due *due, int n, int first)
{
	struct running *r = calloc(1, sizeof *r);
	if (r == NULL)
		abort();
	r->job.msg_id = due[first].msg_id;
	snprintf(r->job.domain, sizeof r->job.domain, "%s", due[first].domain);
	size_t count = 0;
	for (int i = first; i < n; i++)
		count += same_job(&due[i], r);
	r->job.rcpts = calloc(count, sizeof *r->job.rcpts);
	if (r->job.rcpts == NULL)
		abort();
	for (int i = first; i < n; i++) {
		if (!same_job(&due[i], r))
			continue;
		struct job_rcpt *jr = &r->job.rcpts[r->job.n++];
		jr->id = due[i].rcpt_id;
		jr->attempt = due[i].attempts + 1;
		snprintf(jr->address, sizeof jr->address, "%s", due[i].address);
		due[i].rcpt_id = 0; /* taken */
	}
	return r;
}

/* ---- the loop ----------------------------------------------------------------- */

static bool any_destination_full(const struct scheduler *s)
{
	for (size_t i = 0; i < s->ndests; i++)
		if (destination_full(s, &s->dests[i]))
			return true;
	return false;
}

static size_t full_destinations(const struct scheduler *s, const char **skip, size_t max)
{
	size_t n = 0;
	for (size_t i = 0; i < s->ndests && n < max; i++)
		if (destination_full(s, &s->dests[i]))
			skip[n++] = s->dests[i].domain;
	return n;
}

static void start_due(struct scheduler *s, struct spool_due *due, int n)
{
	size_t max = (size_t)s->ctx.conf->delivery_max_connections;
	for (int i = 0; i < n; i++)
		if (idset_has(&s->flying, due[i].rcpt_id))
			due[i].rcpt_id = 0; /* picked already, its attempt not yet recorded */
	for (int i = 0; i < n && s->in_flight < max; i++) {
		if (due[i].rcpt_id == 0 ||
		    destination_full(s, destination(s, due[i].domain, false)))
			continue;
		job_start(s, job_collect(s, due, n, i));
	}
}

/* Reads the due list (leaving out destinations at their limit) and starts
 * what it can. Returns false when everything due was seen. */
static bool schedule_round(struct scheduler *s, size_t max, int round)
{
	size_t want = (max - s->in_flight) * 2 + 16;
	size_t cap = round == 0 ? DUE_FIRST_READ_MAX : DUE_READ_MAX;
	if (want > cap)
		want = cap;
	if (want > s->due_cap) { /* kept between calls: no zeroing per wake-up */
		free(s->due);
		s->due = malloc(want * sizeof *s->due);
		s->due_cap = want;
	}
	const char **skip = malloc((s->ndests + 1) * sizeof *skip);
	if (s->due == NULL || skip == NULL)
		abort();
	size_t nskip = full_destinations(s, skip, s->ndests);
	char why[256];
	int n = spool_due_list(s->ctx.reader, time_now_ms(), skip, nskip, s->due, want, why,
	                       sizeof why);
	free(skip);
	if (n < 0) {
		log_event(LOG_ERROR, "scheduler_read_failed", "reason=%s", log_quote(why));
		return false;
	}
	start_due(s, s->due, n);
	return (size_t)n == want;
}

#define SCHEDULE_ROUNDS 8
/* A read that leaves out destinations at their limit walks their whole
 * backlog (no index skips a domain): with one busy destination, every
 * attempt's end and every message queued cost a scan of its queue. Such
 * reads run at most this often; due mail of other domains behind a busy
 * one waits at most this long. */
#define DEEP_READ_EVERY_MS 100

static void schedule(struct scheduler *s)
{
	if (s->paused || s->stopped)
		return;
	int64_t blocked = s->blocked_until_ms - time_mono_us() / 1000;
	if (blocked > 0)
		return arm(s, blocked);
	size_t max = (size_t)s->ctx.conf->delivery_max_connections;
	destinations_forget_idle(s);
	/* A list cut at `want` rows may be all of one destination that filled
	 * up meanwhile: read again without it, so that one busy destination
	 * never hides the due work of the others. */
	int64_t deep_wait = 0;
	for (int round = 0; round < SCHEDULE_ROUNDS && s->in_flight < max; round++) {
		if (any_destination_full(s)) {
			int64_t mono = time_mono_us() / 1000;
			deep_wait = s->deep_read_ms + DEEP_READ_EVERY_MS - mono;
			if (deep_wait > 0)
				break;
			s->deep_read_ms = mono;
		}
		if (!schedule_round(s, max, round))
			break;
	}
	int64_t next = spool_next_due(s->ctx.reader);
	int64_t now = time_now_ms();
	/* Due work that could not start waits for a finishing attempt's wake. */
	int64_t delay = next < 0 ? IDLE_RECHECK_MS : (next <= now ? 1000 : next - now);
	arm(s, deep_wait > 0 && deep_wait < delay ? deep_wait : delay);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	schedule(arg);
}

struct cleanup {
	const struct conf *conf;
	struct spool_writer *writer;
	int64_t before_ms;
	int64_t deleted; /* by the last batch */
	int64_t total;
};

static int cleanup_job(struct spool *sp, void *arg, char *why, size_t whylen)
{
	struct cleanup *c = arg;
	c->deleted = spool_cleanup(sp, c->before_ms, CLEANUP_BATCH, why, whylen);
	return c->deleted < 0 ? -1 : 0;
}

/* Housekeeping runs alone (never in a commit that acknowledges mail) and
 * in small batches, each submitted when the last one is done. */
static void cleanup_done(void *arg, int status, const char *why)
{
	struct cleanup *c = arg;
	if (status != 0)
		log_event(LOG_ERROR, "spool_cleanup_failed", "reason=%s", log_quote(why));
	else
		c->total += c->deleted;
	if (status == 0 && c->deleted == CLEANUP_BATCH)
		return spool_writer_submit_alone(c->writer, cleanup_job, cleanup_done, c);
	if (c->total > 0)
		log_event(LOG_INFO, "spool_cleanup", "messages=%lld", (long long)c->total);
	free(c);
}

/* Finished messages stay visible for delivery.log_retention, then go. */
static void on_cleanup(evutil_socket_t fd, short what, void *arg)
{
	struct scheduler *s = arg;
	struct cleanup *c = calloc(1, sizeof *c);
	if (c == NULL)
		abort();
	c->conf = s->ctx.conf;
	c->writer = s->ctx.writer;
	c->before_ms = time_now_ms() - s->ctx.conf->log_retention_ms;
	spool_writer_submit_alone(s->ctx.writer, cleanup_job, cleanup_done, c);
	struct timeval tv = {.tv_sec = CLEANUP_EVERY_MS / 1000};
	evtimer_add(s->cleanup_timer, &tv);
}

/* After a restart: notices that waited for an attempt the stop cut short
 * are sent now (notice.h), a batch at a time. */
struct waiting_notices {
	struct notice_settings ns; /* copied on the loop thread (notice.h) */
	const struct dkim_signer *dkim;
	struct spool_writer *writer;
	int found;
};

static int notices_job(struct spool *sp, void *arg, char *why, size_t whylen)
{
	struct waiting_notices *w = arg;
	uint64_t ids[NOTICE_BATCH];
	int64_t now = time_now_ms();
	w->found = spool_notices_waiting(sp, ids, NOTICE_BATCH, why, whylen);
	for (int i = 0; i < w->found; i++) {
		struct notice_result res;
		if (notice_flush(sp, &w->ns, w->dkim, ids[i], now, &res, why, whylen) < 0 ||
		    spool_message_settle(sp, ids[i], now, why, whylen) < 0)
			return -1;
	}
	return w->found < 0 ? -1 : 0;
}

static void notices_done(void *arg, int status, const char *why)
{
	struct waiting_notices *w = arg;
	if (status != 0)
		log_event(LOG_ERROR, "notices_not_sent", "reason=%s", log_quote(why));
	else if (w->found > 0)
		log_event(LOG_INFO, "notices_sent_after_restart", "messages=%d", w->found);
	if (status == 0 && w->found == NOTICE_BATCH)
		return spool_writer_submit_alone(w->writer, notices_job, notices_done, w);
	free(w);
}

static void send_waiting_notices(struct scheduler *s)
{
	struct waiting_notices *w = calloc(1, sizeof *w);
	if (w == NULL)
		abort();
	w->ns = notice_settings_of(s->ctx.conf);
	w->dkim = s->ctx.dkim;
	w->writer = s->ctx.writer;
	spool_writer_submit_alone(s->ctx.writer, notices_job, notices_done, w);
}

void scheduler_wake(struct scheduler *s)
{
	if (!s->paused)
		arm(s, 0);
}

static bool make_context(struct scheduler *s, struct event_base *base, const struct conf *conf,
                         char *why, size_t whylen)
{
	s->ctx.base = base;
	s->ctx.conf = conf;
	s->ctx.dns = dns_resolver_new(base, conf, why, whylen);
	if (s->ctx.dns == NULL)
		return false;
	s->ctx.tls = tls_client_ctx_new(conf->ca_file, why, whylen);
	if (s->ctx.tls == NULL)
		return false;
	s->ctx.pool =
	    pool_new(base, conf->connection_idle_timeout_ms, (int)conf->connection_max_messages,
	             (size_t)conf->delivery_max_connections);
	s->ctx.self = self_addrs_new(conf);
	s->ctx.tls_sessions = tls_session_cache_new(TLS_SESSIONS_MAX);
	if (!conf->mtasts_enabled)
		return true;
	s->https = https_client_new(base, conf->ca_file, why, whylen);
	if (s->https == NULL)
		return false;
	s->ctx.sts = sts_cache_new(&(struct sts_cache_config){
	    .base = base,
	    .dns = s->ctx.dns,
	    .https = s->https,
	    .reader = s->ctx.reader,
	    .writer = s->ctx.writer,
	    .fetch_timeout_ms = conf->mtasts_fetch_timeout_ms,
	    .refresh_interval_ms = conf->mtasts_refresh_interval_ms,
	});
	return true;
}

struct scheduler *scheduler_start(struct event_base *base, const struct conf *conf,
                                  struct spool *reader, struct spool_writer *writer,
                                  const struct dkim_signer *dkim, char *why, size_t whylen)
{
	if (m_attempts == NULL)
		m_attempts =
		    metric_counter("outpost_delivery_attempts_total",
		                   "delivery attempts (one message, one domain) by stage", "stage");
	attempt_metrics_init();
	struct scheduler *s = calloc(1, sizeof *s);
	if (s == NULL)
		abort();
	s->ctx.reader = reader;
	s->ctx.writer = writer;
	s->ctx.dkim = dkim;
	if (!make_context(s, base, conf, why, whylen)) {
		scheduler_stop(s);
		scheduler_free(s);
		return NULL;
	}
	s->paused = conf->paused;
	s->timer = evtimer_new(base, on_timer, s);
	s->cleanup_timer = evtimer_new(base, on_cleanup, s);
	struct timeval soon = {.tv_sec = 3};
	evtimer_add(s->cleanup_timer, &soon);
	send_waiting_notices(s);
	arm(s, 0);
	return s;
}

void scheduler_reconfigure(struct scheduler *s)
{
	const struct conf *conf = s->ctx.conf;
	pool_set_limits(s->ctx.pool, conf->connection_idle_timeout_ms,
	                (int)conf->connection_max_messages, (size_t)conf->delivery_max_connections);
	scheduler_wake(s);
}

void scheduler_set_paused(struct scheduler *s, bool paused)
{
	s->paused = paused;
	log_event(LOG_INFO, paused ? "delivery_paused" : "delivery_resumed", "in_flight=%zu",
	          s->in_flight);
	if (!paused)
		arm(s, 0);
}

bool scheduler_paused(const struct scheduler *s)
{
	return s->paused;
}

size_t scheduler_in_flight(const struct scheduler *s)
{
	return s->in_flight;
}

size_t scheduler_picked(const struct scheduler *s)
{
	size_t n = 0;
	for (size_t i = 0; i < s->flying.cap; i++)
		n += s->flying.slots[i] > 0;
	return n;
}

void scheduler_stop(struct scheduler *s)
{
	if (s == NULL)
		return;
	s->stopped = true;
	for (struct running *r = s->jobs, *next; r; r = next) {
		next = r->next;
		if (!r->begun) /* begin_done finishes it */
			drop_unbegun_attempt(r);
		else if (r->attempt && attempt_abort(r->attempt))
			job_finished(r, &r->job);
	}
	if (s->timer)
		event_free(s->timer);
	if (s->cleanup_timer)
		event_free(s->cleanup_timer);
	s->timer = s->cleanup_timer = NULL;
}

void scheduler_free(struct scheduler *s)
{
	if (s == NULL)
		return;
	scheduler_stop(s); /* attempts left waiting to retry their outcome */
	pool_free(s->ctx.pool);
	sts_cache_free(s->ctx.sts); /* before the resolver and the client it uses */
	https_client_free(s->https);
	if (s->ctx.tls_sessions)
		tls_session_cache_free(s->ctx.tls_sessions); /* no connection holds one now */
	if (s->ctx.tls)
		SSL_CTX_free(s->ctx.tls);
	if (s->ctx.dns)
		dns_resolver_free(s->ctx.dns);
	self_addrs_free(s->ctx.self);
	free(s->flying.slots);
	free(s->due);
	free(s->dests);
	free(s);
}
