/* writer.h - the spool writer thread: group commit.
 *
 * Every change to the spool made by the daemon goes through one thread that
 * owns the writing connection. It takes all jobs pending, runs them in one
 * transaction (each inside its own savepoint, so one failing job does not
 * sink the others), commits once (one fsync of the WAL), and only then hands
 * each job's outcome back to the event loop thread, where the caller may
 * acknowledge (SMTP 250, API 2xx). Nothing is acknowledged before the commit
 * that carries it.
 */
#ifndef OUTPOST_SPOOL_WRITER_H
#define OUTPOST_SPOOL_WRITER_H

#include "spool/spool.h"

#include <stddef.h>

struct event_base;
struct spool_writer;

/* Runs on the writer thread inside the batch transaction. Returns 0, or -1
 * with why filled (the job's changes are then rolled back). */
typedef int (*spool_job_fn)(struct spool *s, void *arg, char *why, size_t whylen);

/* Runs on the loop thread after the commit (status 0) or after the job or
 * the commit failed (status -1, why says why). Called exactly once. */
typedef void (*spool_done_fn)(void *arg, int status, const char *why);

/* Opens data_dir/spool.db for writing and starts the thread. */
struct spool_writer *spool_writer_start(struct event_base *base, const char *data_dir, char *why,
                                        size_t whylen);

/* Queues a job; fn runs on the writer thread, done on the loop thread. arg
 * stays owned by the caller, who must keep it alive until done. */
void spool_writer_submit(struct spool_writer *w, spool_job_fn fn, spool_done_fn done, void *arg);

/* Finishes the pending jobs, stops the thread, closes the connection. */
void spool_writer_stop(struct spool_writer *w);

#endif
