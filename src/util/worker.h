/* worker.h - work that must not run on the event loop, on its own threads.
 *
 * A password check costs tens of milliseconds of CPU (yescrypt): on the
 * loop thread, a few of them a second would stall every session and
 * delivery. A worker runs such jobs on a small pool of threads and hands
 * each result back to the loop thread, where the caller goes on. Jobs must
 * touch nothing the loop thread uses meanwhile, and a caller that goes away
 * while its job runs must wait for its done (as a session waits for its
 * commit).
 */
#ifndef OUTPOST_UTIL_WORKER_H
#define OUTPOST_UTIL_WORKER_H

#include <stddef.h>

struct event_base;
struct worker;

/* run: on a worker thread; done: afterwards, on the loop thread. */
typedef void (*worker_fn)(void *arg);

struct worker *worker_start(struct event_base *base, size_t threads);

/* A worker whose threads each keep state of their own, such as a database
 * connection that must not be shared between threads: init(arg) makes it
 * on each thread before its first job, fini frees it there when the
 * worker stops. */
struct worker *worker_start_with_state(struct event_base *base, size_t threads,
                                       void *(*init)(void *arg), void (*fini)(void *state),
                                       void *arg);

/* In a job: the state init made for the thread running it (NULL for a
 * worker without state). */
void *worker_thread_state(void);

/* Queues a job; arg stays the caller's until done has run. */
void worker_submit(struct worker *w, worker_fn run, worker_fn done, void *arg);

/* Finishes the jobs queued (their done callbacks run), stops the threads. */
void worker_stop(struct worker *w);

#endif
