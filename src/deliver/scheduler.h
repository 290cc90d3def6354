/* scheduler.h - picks due recipients and runs delivery attempts.
 *
 * Recipients become due at their next_attempt time (SPEC §3.3: the first
 * retry after delivery.first_retry, doubling after each further attempt, up
 * to delivery.max_attempts). The scheduler reads due recipients from the
 * spool, records the attempt (attempts+1 and the next backoff) through the
 * writer before any network activity, runs the attempt, and records its
 * outcome: delivered, deferred with the last error, or failed once the
 * attempts are used up or the failure is permanent. It never has more than
 * delivery.max_concurrent attempts in flight. While paused it starts none.
 */
#ifndef OUTPOST_DELIVER_SCHEDULER_H
#define OUTPOST_DELIVER_SCHEDULER_H

#include "conf/conf.h"
#include "spool/spool.h"
#include "spool/writer.h"

#include <stdbool.h>
#include <stdint.h>

struct event_base;
struct scheduler;

struct scheduler *scheduler_start(struct event_base *base, const struct conf *conf,
				  struct spool *reader, struct spool_writer *writer);

/* Something changed in the spool (new mail, kick, release): look for due
 * work now rather than at the next timer. Cheap; calls coalesce. */
void scheduler_wake(struct scheduler *s);

void scheduler_set_paused(struct scheduler *s, bool paused);
bool scheduler_paused(const struct scheduler *s);

/* Attempts in flight now. */
size_t scheduler_in_flight(const struct scheduler *s);

/* Stops starting attempts; attempts in flight are abandoned (they were
 * already counted, so they are retried after a restart). */
void scheduler_stop(struct scheduler *s);

/* Frees the scheduler once the writer is stopped (no attempt reports back). */
void scheduler_free(struct scheduler *s);

/* The wait after attempt number `attempts_before + 1` fails: first_retry
 * doubled attempts_before times, capped at 30 days. Jitter is not applied
 * here (the caller adds it) so the schedule can be stated exactly. */
int64_t scheduler_backoff_ms(int64_t first_retry_ms, int attempts_before);

#endif
