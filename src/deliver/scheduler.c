/* scheduler.c - due recipients, attempt bookkeeping and outcomes. */
#include "deliver/scheduler.h"

#include "util/log.h"
#include "util/metrics.h"
#include "util/timeutil.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define MAX_BACKOFF_MS (30LL * 86400 * 1000)
#define IDLE_RECHECK_MS 60000 /* also catches mail queued by another process */

struct attempt {
	struct scheduler *sched;
	struct spool_due due;
	int64_t backoff_ms;
	bool begun; /* the attempt was recorded: it counts */
	enum rcpt_state outcome;
	char error[256];
};

struct scheduler {
	struct event_base *base;
	const struct conf *conf;
	struct spool *reader;
	struct spool_writer *writer;
	struct event *timer;
	bool paused, stopped;
	size_t in_flight;
	int64_t *flying; /* recipient ids of the attempts in flight */
	size_t flying_cap;
};

static struct metric *m_attempts;

int64_t scheduler_backoff_ms(int64_t first_retry_ms, int attempts_before)
{
	int64_t b = first_retry_ms;
	for (int i = 0; i < attempts_before && b < MAX_BACKOFF_MS; i++)
		b *= 2;
	return b < MAX_BACKOFF_MS ? b : MAX_BACKOFF_MS;
}

/* Spreads retries a little so that a burst does not come back as one burst:
 * up to 1% of the wait, at most 5 s either way (SPEC §3.3 uses ±5 s). */
static int64_t jitter(int64_t backoff_ms)
{
	int64_t span = backoff_ms / 100 < 5000 ? backoff_ms / 100 : 5000;
	uint32_t r = 0;
	if (span == 0 || getrandom(&r, sizeof r, 0) != sizeof r)
		return backoff_ms;
	return backoff_ms - span + (int64_t)(r % (uint32_t)(2 * span + 1));
}

static bool flying_has(const struct scheduler *s, int64_t id)
{
	for (size_t i = 0; i < s->in_flight; i++)
		if (s->flying[i] == id)
			return true;
	return false;
}

static void flying_add(struct scheduler *s, int64_t id)
{
	if (s->in_flight == s->flying_cap) {
		s->flying_cap = s->flying_cap ? s->flying_cap * 2 : 64;
		s->flying = realloc(s->flying, s->flying_cap * sizeof *s->flying);
		if (s->flying == NULL)
			abort();
	}
	s->flying[s->in_flight++] = id;
}

static void flying_remove(struct scheduler *s, int64_t id)
{
	for (size_t i = 0; i < s->in_flight; i++)
		if (s->flying[i] == id) {
			s->flying[i] = s->flying[--s->in_flight];
			return;
		}
}

static void arm(struct scheduler *s, int64_t delay_ms)
{
	if (delay_ms < 0)
		delay_ms = 0;
	if (delay_ms > IDLE_RECHECK_MS)
		delay_ms = IDLE_RECHECK_MS;
	struct timeval tv = {.tv_sec = delay_ms / 1000, .tv_usec = (delay_ms % 1000) * 1000};
	evtimer_add(s->timer, &tv);
}

/* ---- one attempt: begin (counted), run, end (outcome) ------------------- */

static void attempt_finish(struct attempt *a)
{
	struct scheduler *s = a->sched;
	flying_remove(s, a->due.rcpt_id);
	free(a);
	if (!s->stopped)
		scheduler_wake(s);
}

static int end_job(struct spool *sp, void *arg, char *why, size_t whylen)
{
	struct attempt *a = arg;
	return spool_attempt_end(sp, a->due.rcpt_id, a->outcome, a->error, why, whylen);
}

static void end_done(void *arg, int status, const char *why)
{
	struct attempt *a = arg;
	char id[17];
	spool_id_format(a->due.msg_id, id);
	if (status != 0)
		log_event(LOG_ERROR, "attempt_not_recorded", "qid=%s rcpt_id=%lld reason=%s", id,
			  (long long)a->due.rcpt_id, log_quote(why));
	attempt_finish(a);
}

/* Until delivery exists, every attempt is a temporary failure, so that
 * attempt counting, backoff and the final failure run end to end. */
static void attempt_run(struct attempt *a)
{
	struct scheduler *s = a->sched;
	int attempts = a->due.attempts + 1;
	snprintf(a->error, sizeof a->error, "4.3.0 delivery not implemented");
	a->outcome = attempts >= s->conf->max_attempts ? RCPT_FAILED : RCPT_DEFERRED;
	metric_add(m_attempts, a->outcome == RCPT_FAILED ? "failed" : "deferred", 1);
	char id[17], next[32];
	spool_id_format(a->due.msg_id, id);
	duration_format(a->backoff_ms - a->backoff_ms % 1000, next, sizeof next);
	log_event(LOG_INFO, "attempt", "qid=%s rcpt_id=%lld attempt=%d result=%s error=%s%s%s", id,
		  (long long)a->due.rcpt_id, attempts,
		  a->outcome == RCPT_FAILED ? "failed" : "deferred", log_quote(a->error),
		  a->outcome == RCPT_FAILED ? "" : " retry_in=", a->outcome == RCPT_FAILED ? "" : next);
	spool_writer_submit(s->writer, end_job, end_done, a);
}

static int begin_job(struct spool *sp, void *arg, char *why, size_t whylen)
{
	struct attempt *a = arg;
	int n = spool_attempt_begin(sp, a->due.rcpt_id, time_now_ms(), a->backoff_ms, why, whylen);
	a->begun = n > 0;
	return n < 0 ? -1 : 0;
}

static void begin_done(void *arg, int status, const char *why)
{
	struct attempt *a = arg;
	if (status != 0 || !a->begun || a->sched->stopped) {
		/* not counted (held or dropped meanwhile, or a spool error):
		 * nothing was attempted */
		if (status != 0)
			log_event(LOG_ERROR, "attempt_not_started", "rcpt_id=%lld reason=%s",
				  (long long)a->due.rcpt_id, log_quote(why));
		return attempt_finish(a);
	}
	attempt_run(a);
}

static void attempt_start(struct scheduler *s, const struct spool_due *due)
{
	struct attempt *a = calloc(1, sizeof *a);
	if (a == NULL)
		abort();
	a->sched = s;
	a->due = *due;
	a->backoff_ms = jitter(scheduler_backoff_ms(s->conf->first_retry_ms, due->attempts));
	flying_add(s, due->rcpt_id);
	/* SPEC §3.3: the attempt is recorded before any network activity, so
	 * a crash mid-attempt leaves it counted and scheduled. */
	spool_writer_submit(s->writer, begin_job, begin_done, a);
}

/* ---- the loop ------------------------------------------------------------ */

static void schedule(struct scheduler *s)
{
	if (s->paused || s->stopped)
		return;
	size_t max = (size_t)s->conf->max_concurrent;
	size_t want = max > s->in_flight ? max - s->in_flight : 0;
	if (want > 0) {
		size_t ask = want + s->in_flight;
		struct spool_due *due = calloc(ask, sizeof *due);
		char why[256];
		int n = spool_due_list(s->reader, time_now_ms(), due, ask, why, sizeof why);
		if (n < 0)
			log_event(LOG_ERROR, "scheduler_read_failed", "reason=%s", log_quote(why));
		for (int i = 0; i < n && s->in_flight < max; i++)
			if (!flying_has(s, due[i].rcpt_id))
				attempt_start(s, &due[i]);
		free(due);
	}
	int64_t next = spool_next_due(s->reader);
	int64_t now = time_now_ms();
	/* Due work that could not start waits for a finishing attempt's wake. */
	arm(s, next < 0 ? IDLE_RECHECK_MS : (next <= now ? 1000 : next - now));
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	schedule(arg);
}

void scheduler_wake(struct scheduler *s)
{
	if (!s->paused && !s->stopped)
		arm(s, 0);
}

struct scheduler *scheduler_start(struct event_base *base, const struct conf *conf,
				  struct spool *reader, struct spool_writer *writer)
{
	if (m_attempts == NULL)
		m_attempts = metric_counter("outpost_delivery_attempts_total",
					    "delivery attempts per recipient by result", "result");
	struct scheduler *s = calloc(1, sizeof *s);
	if (s == NULL)
		abort();
	s->base = base;
	s->conf = conf;
	s->reader = reader;
	s->writer = writer;
	s->paused = conf->paused;
	s->timer = evtimer_new(base, on_timer, s);
	arm(s, 0);
	return s;
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

void scheduler_stop(struct scheduler *s)
{
	if (s == NULL)
		return;
	s->stopped = true;
	event_free(s->timer);
	s->timer = NULL;
}

void scheduler_free(struct scheduler *s)
{
	if (s == NULL)
		return;
	free(s->flying);
	free(s);
}
