/* writer.c - group commit on a dedicated thread. */
#include "spool/writer.h"

#include "util/log.h"
#include "util/metrics.h"
#include "util/timeutil.h"

#include <event2/event.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct job {
	spool_job_fn fn;
	spool_done_fn done;
	void *arg;
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
};

static struct metric *batch_size_metric, *commit_seconds_metric;

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

static void run_job(struct spool *s, struct job *j)
{
	j->status = spool_savepoint(s, j->why, sizeof j->why);
	if (j->status == 0)
		j->status = j->fn(s, j->arg, j->why, sizeof j->why);
	spool_savepoint_release(s, j->status == 0);
}

static void fail_batch(struct job_list *batch, const char *why)
{
	for (struct job *j = batch->head; j; j = j->next) {
		if (j->status == 0) {
			j->status = -1;
			snprintf(j->why, sizeof j->why, "%s", why);
		}
	}
}

/* One transaction, one fsync, however many jobs. */
static void run_batch(struct spool_writer *w, struct job_list *batch)
{
	char why[256];
	int64_t t0 = time_mono_us();
	size_t n = 0;
	if (spool_begin(w->spool, why, sizeof why) < 0) {
		fail_batch(batch, why);
		log_event(LOG_ERROR, "spool_commit_failed", "reason=%s", log_quote(why));
		return;
	}
	for (struct job *j = batch->head; j; j = j->next, n++)
		run_job(w->spool, j);
	if (spool_commit(w->spool, why, sizeof why) < 0) {
		spool_rollback(w->spool);
		fail_batch(batch, why);
		log_event(LOG_ERROR, "spool_commit_failed", "jobs=%zu reason=%s", n,
		          log_quote(why));
		return;
	}
	metric_observe(batch_size_metric, (double)n);
	metric_observe(commit_seconds_metric, (double)(time_mono_us() - t0) / 1e6);
}

static void *writer_main(void *arg)
{
	struct spool_writer *w = arg;
	pthread_mutex_lock(&w->lock);
	for (;;) {
		while (w->pending.head == NULL && !w->stopping)
			pthread_cond_wait(&w->wake, &w->lock);
		if (w->pending.head == NULL && w->stopping)
			break;
		struct job_list batch = w->pending;
		w->pending.head = w->pending.tail = NULL;
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
		j->done(j->arg, j->status, j->why);
		free(j);
	}
}

static void on_notify(evutil_socket_t fd, short what, void *arg)
{
	report_finished(arg);
}

struct spool_writer *spool_writer_start(struct event_base *base, const char *data_dir, char *why,
                                        size_t whylen)
{
	struct spool_writer *w = calloc(1, sizeof *w);
	if (w == NULL)
		abort();
	if (batch_size_metric == NULL)
		metrics_init();
	w->spool = spool_open(data_dir, why, whylen);
	if (w->spool == NULL) {
		free(w);
		return NULL;
	}
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

void spool_writer_submit(struct spool_writer *w, spool_job_fn fn, spool_done_fn done, void *arg)
{
	struct job *j = calloc(1, sizeof *j);
	if (j == NULL)
		abort();
	j->fn = fn;
	j->done = done;
	j->arg = arg;
	pthread_mutex_lock(&w->lock);
	list_append(&w->pending, j);
	pthread_cond_signal(&w->wake);
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
