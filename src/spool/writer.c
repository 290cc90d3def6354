/* writer.c - group commit on a dedicated thread. */
#include "spool/writer.h"

#include "util/log.h"
#include "util/metrics.h"
#include "util/timeutil.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PROBE_EVERY_S   5  /* while unhealthy: a write to learn the disk is back */
#define ERROR_LOG_EVERY 60 /* seconds between two log lines about failing commits */

struct job {
	spool_job_fn fn;
	spool_done_fn done;
	void *arg;
	bool alone;
	bool bookkeeping; /* spool_writer_submit_bookkeeping */
	int status;
	char why[256];
	struct job *next;
};

struct job_list {
	struct job *head, *tail;
};

struct spool_writer {
	struct spool *spool;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct job_list pending;  /* submitted, not yet taken by the thread */
	struct job_list finished; /* committed or failed, not yet reported */
	bool stopping;
	int notify_pipe[2]; /* thread -> loop: "finished has jobs" */
	struct event *notify_ev;
	size_t outstanding;           /* loop thread only */
	int64_t counts[RCPT_NSTATES]; /* under lock */
	atomic_bool healthy;
	/* writer thread only: failures not yet logged, and when we last did */
	int64_t failures_unlogged;
	int64_t last_error_log;
};

static struct metric *batch_size_metric, *commit_seconds_metric, *write_errors_metric;
static struct metric *commits_metric;

static void metrics_init(void)
{
	static const double sizes[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
	static const double secs[] = {0.0005, 0.001, 0.002, 0.005, 0.01, 0.02,
	                              0.05,   0.1,   0.25,  0.5,   1,    2.5};
	batch_size_metric =
	    metric_histogram("outpost_spool_commit_batch_size", "jobs carried by one group commit",
	                     sizes, sizeof sizes / sizeof sizes[0]);
	commit_seconds_metric = metric_histogram(
	    "outpost_spool_commit_seconds", "time of one group commit, BEGIN to fsynced COMMIT",
	    secs, sizeof secs / sizeof secs[0]);
	write_errors_metric =
	    metric_counter("outpost_spool_write_errors_total",
	                   "spool transactions that could not be committed", NULL);
	metric_add(write_errors_metric, NULL, 0);
	commits_metric = metric_counter(
	    "outpost_spool_commits_total",
	    "group commits; synced=\"no\": delivery bookkeeping only, without an fsync of its own",
	    "synced");
	metric_add(commits_metric, "yes", 0);
	metric_add(commits_metric, "no", 0);
}

static void list_append(struct job_list *l, struct job *j)
{
	j->next = NULL;
	if (l->tail)
		l->tail->next = j;
	else
		l->head = j;
	l->tail = j;
}

static void list_concat(struct job_list *dst, struct job_list *src)
{
	if (src->head == NULL)
		return;
	if (dst->tail)
		dst->tail->next = src->head;
	else
		dst->head = src->head;
	dst->tail = src->tail;
	src->head = src->tail = NULL;
}

/* The next batch: every pending job up to the first housekeeping one, or
 * that one alone. */
static struct job_list take_batch(struct job_list *pending)
{
	struct job_list batch = {0};
	if (pending->head && pending->head->alone) {
		batch.head = batch.tail = pending->head;
		pending->head = pending->head->next;
		batch.head->next = NULL;
	} else {
		struct job *j = pending->head, *last = NULL;
		while (j && !j->alone)
			last = j, j = j->next;
		batch.head = pending->head;
		batch.tail = last;
		if (last)
			last->next = NULL;
		pending->head = j;
	}
	if (pending->head == NULL)
		pending->tail = NULL;
	return batch;
}

/* Logs the failure now, or counts it for the next line: a spool that
 * cannot be written must not flood the log (one line per ERROR_LOG_EVERY). */
static void note_failure(struct spool_writer *w, size_t jobs, const char *why)
{
	int64_t now = time_now_ms() / 1000;
	metric_add(write_errors_metric, NULL, 1);
	atomic_store(&w->healthy, false);
	w->failures_unlogged++;
	if (now - w->last_error_log < ERROR_LOG_EVERY)
		return;
	log_event(LOG_ERROR, "spool_commit_failed", "jobs=%zu failures=%lld reason=%s", jobs,
	          (long long)w->failures_unlogged, log_quote(why));
	w->last_error_log = now;
	w->failures_unlogged = 0;
}

static void note_success(struct spool_writer *w)
{
	if (atomic_load(&w->healthy))
		return;
	atomic_store(&w->healthy, true);
	log_event(LOG_INFO, "spool_writable", "failures_since_last_log=%lld",
	          (long long)w->failures_unlogged);
	w->failures_unlogged = 0;
	w->last_error_log = 0;
}

/* Runs one job in its savepoint. Returns false when the batch transaction
 * is gone (SQLite rolled it back, or the savepoint could not be undone):
 * then nothing of the batch can be committed. */
static bool run_job(struct spool *s, struct job *j, char *why, size_t whylen)
{
	j->status = spool_savepoint(s, j->why, sizeof j->why);
	if (j->status == 0)
		j->status = j->fn(s, j->arg, j->why, sizeof j->why);
	if (spool_savepoint_release(s, j->status == 0, why, whylen) < 0 ||
	    !spool_in_transaction(s)) {
		snprintf(why, whylen, "the transaction was rolled back (%.200s)",
		         j->status != 0 ? j->why : "savepoint lost");
		return false;
	}
	return true;
}

static void fail_all(struct job_list *batch, const char *why)
{
	for (struct job *j = batch->head; j; j = j->next) {
		j->status = -1;
		snprintf(j->why, sizeof j->why, "%s", why);
	}
}

static void apply_delta(struct spool_writer *w, const int64_t delta[RCPT_NSTATES])
{
	pthread_mutex_lock(&w->lock);
	for (int i = 0; i < RCPT_NSTATES; i++)
		w->counts[i] += delta[i];
	pthread_mutex_unlock(&w->lock);
}

/* Every job of the batch is delivery bookkeeping: nothing is acknowledged
 * on its commit, so it needs no fsync of its own (writer.h). */
static bool bookkeeping_only(const struct job_list *batch)
{
	for (const struct job *j = batch->head; j; j = j->next)
		if (!j->bookkeeping)
			return false;
	return true;
}

/* One transaction, at most one fsync, however many jobs. */
static void run_batch(struct spool_writer *w, struct job_list *batch)
{
	char why[256];
	int64_t t0 = time_mono_us(), delta[RCPT_NSTATES];
	size_t n = 0;
	bool intact = true, synced = !bookkeeping_only(batch);
	for (struct job *j = batch->head; j; j = j->next)
		n++;
	if (spool_set_synced(w->spool, synced, why, sizeof why) < 0 ||
	    spool_begin(w->spool, why, sizeof why) < 0) {
		fail_all(batch, why);
		return note_failure(w, n, why);
	}
	for (struct job *j = batch->head; j && intact; j = j->next)
		intact = run_job(w->spool, j, why, sizeof why);
	if (!intact || spool_state_delta_take(w->spool, delta, why, sizeof why) < 0 ||
	    spool_commit(w->spool, why, sizeof why) < 0) {
		spool_rollback(w->spool);
		fail_all(batch, why);
		return note_failure(w, n, why);
	}
	apply_delta(w, delta);
	note_success(w);
	metric_add(commits_metric, synced ? "yes" : "no", 1);
	metric_observe(batch_size_metric, (double)n);
	metric_observe(commit_seconds_metric, (double)(time_mono_us() - t0) / 1e6);
}

static void probe(struct spool_writer *w)
{
	char why[256];
	if (spool_probe_write(w->spool, time_now_ms(), why, sizeof why) == 0)
		note_success(w);
	else
		note_failure(w, 0, why);
}

/* Waits for work; while unhealthy, wakes up every PROBE_EVERY_S to probe.
 * Called and returns with the lock held. */
static void wait_for_work(struct spool_writer *w)
{
	while (w->pending.head == NULL && !w->stopping) {
		if (atomic_load(&w->healthy)) {
			pthread_cond_wait(&w->wake, &w->lock);
			continue;
		}
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += PROBE_EVERY_S;
		if (pthread_cond_timedwait(&w->wake, &w->lock, &until) == ETIMEDOUT &&
		    w->pending.head == NULL) {
			pthread_mutex_unlock(&w->lock);
			probe(w);
			pthread_mutex_lock(&w->lock);
		}
	}
}

static void *writer_main(void *arg)
{
	struct spool_writer *w = arg;
	pthread_mutex_lock(&w->lock);
	for (;;) {
		wait_for_work(w);
		if (w->pending.head == NULL && w->stopping)
			break;
		struct job_list batch = take_batch(&w->pending);
		pthread_mutex_unlock(&w->lock);

		run_batch(w, &batch);

		pthread_mutex_lock(&w->lock);
		bool was_empty = w->finished.head == NULL;
		list_concat(&w->finished, &batch);
		if (was_empty) {
			char c = 1;
			ssize_t r = write(w->notify_pipe[1], &c, 1);
			(void)r;
		}
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

/* On the loop thread: report every finished job to its caller. */
static void report_finished(struct spool_writer *w)
{
	pthread_mutex_lock(&w->lock);
	struct job_list done = w->finished;
	w->finished.head = w->finished.tail = NULL;
	char buf[64];
	while (read(w->notify_pipe[0], buf, sizeof buf) > 0)
		;
	pthread_mutex_unlock(&w->lock);
	for (struct job *j = done.head, *next; j; j = next) {
		next = j->next;
		w->outstanding--;
		j->done(j->arg, j->status, j->why);
		free(j);
	}
}

static void on_notify(evutil_socket_t fd, short what, void *arg)
{
	report_finished(arg);
}

/* Before the thread exists: recovery, state tracking, the first counts. */
static int writer_prepare(struct spool_writer *w, int64_t *recovered, char *why, size_t whylen)
{
	*recovered = spool_recover_interrupted(w->spool, time_now_ms(), why, whylen);
	if (*recovered < 0 || spool_track_states(w->spool, why, whylen) < 0)
		return -1;
	if (spool_count_states(w->spool, w->counts) < 0) {
		snprintf(why, whylen, "spool: cannot count recipients");
		return -1;
	}
	return 0;
}

struct spool_writer *spool_writer_start(struct event_base *base, const char *data_dir,
                                        int64_t *recovered, char *why, size_t whylen)
{
	struct spool_writer *w = calloc(1, sizeof *w);
	if (w == NULL)
		abort();
	if (batch_size_metric == NULL)
		metrics_init();
	w->spool = spool_open(data_dir, why, whylen);
	if (w->spool == NULL || writer_prepare(w, recovered, why, whylen) < 0) {
		spool_close(w->spool);
		free(w);
		return NULL;
	}
	atomic_init(&w->healthy, true);
	if (pipe2(w->notify_pipe, O_NONBLOCK | O_CLOEXEC) < 0)
		abort();
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->wake, NULL);
	w->notify_ev = event_new(base, w->notify_pipe[0], EV_READ | EV_PERSIST, on_notify, w);
	event_add(w->notify_ev, NULL);
	if (pthread_create(&w->thread, NULL, writer_main, w) != 0)
		abort();
	return w;
}

static void submit(struct spool_writer *w, spool_job_fn fn, spool_done_fn done, void *arg,
                   bool alone, bool bookkeeping)
{
	struct job *j = calloc(1, sizeof *j);
	if (j == NULL)
		abort();
	j->fn = fn;
	j->done = done;
	j->arg = arg;
	j->alone = alone;
	j->bookkeeping = bookkeeping;
	w->outstanding++;
	pthread_mutex_lock(&w->lock);
	list_append(&w->pending, j);
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->lock);
}

void spool_writer_submit(struct spool_writer *w, spool_job_fn fn, spool_done_fn done, void *arg)
{
	submit(w, fn, done, arg, false, false);
}

void spool_writer_submit_bookkeeping(struct spool_writer *w, spool_job_fn fn,
                                     spool_done_fn done, void *arg)
{
	submit(w, fn, done, arg, false, true);
}

void spool_writer_submit_alone(struct spool_writer *w, spool_job_fn fn, spool_done_fn done,
                               void *arg)
{
	submit(w, fn, done, arg, true, false);
}

size_t spool_writer_outstanding(struct spool_writer *w)
{
	return w->outstanding;
}

bool spool_writer_healthy(struct spool_writer *w)
{
	return atomic_load(&w->healthy);
}

void spool_writer_counts(struct spool_writer *w, int64_t counts[RCPT_NSTATES])
{
	pthread_mutex_lock(&w->lock);
	memcpy(counts, w->counts, sizeof w->counts);
	pthread_mutex_unlock(&w->lock);
}

void spool_writer_stop(struct spool_writer *w)
{
	if (w == NULL)
		return;
	pthread_mutex_lock(&w->lock);
	w->stopping = true;
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
	report_finished(w);
	event_free(w->notify_ev);
	close(w->notify_pipe[0]);
	close(w->notify_pipe[1]);
	spool_close(w->spool);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->wake);
	free(w);
}
