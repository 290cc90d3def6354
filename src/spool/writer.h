/* writer.h - the spool writer thread: group commit.
 *
 * Every change to the spool made by the daemon goes through one thread that
 * owns the writing connection. It takes all jobs pending, runs them in one
 * transaction (each inside its own savepoint, so one failing job does not
 * sink the others), commits once (one fsync of the WAL), and only then hands
 * each job's outcome back to the event loop thread, where the caller may
 * acknowledge (SMTP 250, API 2xx). Nothing is acknowledged before the commit
 * that carries it. When SQLite rolls the whole transaction back on its own
 * (a full disk, an I/O error), every job of the batch fails, including
 * those that had succeeded: their changes are gone with it.
 *
 * Housekeeping jobs (spool_writer_submit_alone) run in a transaction of
 * their own, never in a batch that acknowledges mail.
 *
 * A batch made only of delivery bookkeeping (an attempt's begin and its
 * outcome: spool_writer_submit_bookkeeping) commits without an fsync of its
 * own (PRAGMA synchronous = NORMAL; WAL frames are written in order, so it
 * reaches the disk with the next synced commit or checkpoint). A crash of
 * the process keeps it, a power cut may take it back: the attempt is then
 * made again, and a recipient whose delivery was taken back is delivered a
 * second time, never lost (docs/queue.md, "Attempt bookkeeping"). Postfix
 * does not fsync its delivery status either. Every other batch is synced.
 *
 * The writer keeps the count of recipients per state: read once from the
 * table at start, then moved by each committed batch's exact delta (see
 * spool_track_states), so /metrics and /status never scan the table.
 *
 * After a failed commit the writer is unhealthy: it probes the disk every
 * few seconds with a tiny write of its own and is healthy again after the
 * first commit that succeeds.
 */
#ifndef OUTPOST_SPOOL_WRITER_H
#define OUTPOST_SPOOL_WRITER_H

#include "spool/spool.h"

#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct spool_writer;

/* Runs on the writer thread inside the batch transaction. Returns 0, or -1
 * with why filled (the job's changes are then rolled back). */
typedef int (*spool_job_fn)(struct spool *s, void *arg, char *why, size_t whylen);

/* Runs on the loop thread after the commit (status 0) or after the job or
 * the commit failed (status -1, why says why). Called exactly once. */
typedef void (*spool_done_fn)(void *arg, int status, const char *why);

/* Opens data_dir/spool.db for writing, recovers the attempts a crash cut
 * short (spool_recover_interrupted; *recovered says how many), reads the
 * counts and starts the thread. */
struct spool_writer *spool_writer_start(struct event_base *base, const char *data_dir,
                                        int64_t *recovered, char *why, size_t whylen);

/* Queues a job; fn runs on the writer thread, done on the loop thread. arg
 * stays owned by the caller, who must keep it alive until done. */
void spool_writer_submit(struct spool_writer *w, spool_job_fn fn, spool_done_fn done, void *arg);

/* The same for delivery bookkeeping, which no acknowledgement rests on: a
 * batch of nothing else is not fsynced (above). */
void spool_writer_submit_bookkeeping(struct spool_writer *w, spool_job_fn fn,
                                     spool_done_fn done, void *arg);

/* The same, in a transaction of its own. */
void spool_writer_submit_alone(struct spool_writer *w, spool_job_fn fn, spool_done_fn done,
                               void *arg);

/* Jobs submitted whose done has not been called yet. */
size_t spool_writer_outstanding(struct spool_writer *w);

/* False from a failed commit until the next one that succeeds. */
bool spool_writer_healthy(struct spool_writer *w);

/* Recipients per state as of the last commit. */
void spool_writer_counts(struct spool_writer *w, int64_t counts[RCPT_NSTATES]);

/* Finishes the pending jobs, stops the thread, closes the connection. */
void spool_writer_stop(struct spool_writer *w);

#endif
