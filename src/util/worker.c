/* worker.c - a small thread pool whose results come back to the loop. */
#include "util/worker.h"

#include <event2/event.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

struct job {
	worker_fn run, done;
	void *arg;
	struct job *next;
};

struct job_list {
	struct job *head, *tail;
};

struct worker {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct job_list queued, finished;
	bool stopping;
	pthread_t *threads;
	size_t nthreads;
	int notify_pipe[2];
	struct event *notify_ev;
	void *(*init)(void *arg);
	void (*fini)(void *state);
	void *init_arg;
};

static _Thread_local void *thread_state;

static void push(struct job_list *l, struct job *j)
{
	j->next = NULL;
	if (l->tail)
		l->tail->next = j;
	else
		l->head = j;
	l->tail = j;
}

static struct job *pop(struct job_list *l)
{
	struct job *j = l->head;
	if (j && (l->head = j->next) == NULL)
		l->tail = NULL;
	return j;
}

static void *thread_main(void *arg)
{
	struct worker *w = arg;
	if (w->init)
		thread_state = w->init(w->init_arg);
	pthread_mutex_lock(&w->lock);
	for (;;) {
		while (w->queued.head == NULL && !w->stopping)
			pthread_cond_wait(&w->wake, &w->lock);
		struct job *j = pop(&w->queued);
		if (j == NULL)
			break;
		pthread_mutex_unlock(&w->lock);
		j->run(j->arg);
		pthread_mutex_lock(&w->lock);
		bool was_empty = w->finished.head == NULL;
		push(&w->finished, j);
		if (was_empty) {
			char c = 1;
			ssize_t r = write(w->notify_pipe[1], &c, 1);
			(void)r;
		}
	}
	pthread_mutex_unlock(&w->lock);
	if (w->fini)
		w->fini(thread_state);
	thread_state = NULL;
	return NULL;
}

static void report(struct worker *w)
{
	char buf[64];
	pthread_mutex_lock(&w->lock);
	struct job_list done = w->finished;
	w->finished.head = w->finished.tail = NULL;
	while (read(w->notify_pipe[0], buf, sizeof buf) > 0)
		;
	pthread_mutex_unlock(&w->lock);
	for (struct job *j; (j = pop(&done)) != NULL; free(j))
		j->done(j->arg);
}

static void on_notify(evutil_socket_t fd, short what, void *arg)
{
	report(arg);
}

struct worker *worker_start(struct event_base *base, size_t threads)
{
	return worker_start_with_state(base, threads, NULL, NULL, NULL);
}

void *worker_thread_state(void)
{
	return thread_state;
}

struct worker *worker_start_with_state(struct event_base *base, size_t threads,
                                       void *(*init)(void *arg), void (*fini)(void *state),
                                       void *arg)
{
	struct worker *w = calloc(1, sizeof *w);
	if (w == NULL || (w->threads = calloc(threads, sizeof *w->threads)) == NULL ||
	    pipe2(w->notify_pipe, O_NONBLOCK | O_CLOEXEC) < 0)
		abort();
	w->init = init;
	w->fini = fini;
	w->init_arg = arg;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->wake, NULL);
	w->notify_ev = event_new(base, w->notify_pipe[0], EV_READ | EV_PERSIST, on_notify, w);
	event_add(w->notify_ev, NULL);
	for (w->nthreads = 0; w->nthreads < threads; w->nthreads++)
		if (pthread_create(&w->threads[w->nthreads], NULL, thread_main, w) != 0)
			abort();
	return w;
}

void worker_submit(struct worker *w, worker_fn run, worker_fn done, void *arg)
{
	struct job *j = calloc(1, sizeof *j);
	if (j == NULL)
		abort();
	*j = (struct job){.run = run, .done = done, .arg = arg};
	pthread_mutex_lock(&w->lock);
	push(&w->queued, j);
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->lock);
}

void worker_stop(struct worker *w)
{
	if (w == NULL)
		return;
	pthread_mutex_lock(&w->lock);
	w->stopping = true;
	pthread_cond_broadcast(&w->wake);
	pthread_mutex_unlock(&w->lock);
	for (size_t i = 0; i < w->nthreads; i++)
		pthread_join(w->threads[i], NULL);
	report(w);
	event_free(w->notify_ev);
	close(w->notify_pipe[0]);
	close(w->notify_pipe[1]);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->wake);
	free(w->threads);
	free(w);
}
