/* scheduler.h - picks due recipients and runs delivery attempts.
 *
 * Recipients become due at their next_attempt time (retry.h). Due
 * recipients of one message at one domain
 * form one job: one attempt, one SMTP transaction. The scheduler records the
 * attempt (attempts+1 and the next backoff) through the writer before any
 * network activity, then runs it (attempt.h). At most delivery.max_connections
 * attempts run at once, and at most delivery.max_connections_per_destination
 * for one domain; a domain at its limit never holds back the others (its
 * due work is left out of the query). While paused it starts nothing;
 * while the spool cannot be written it waits (up to a minute) between
 * tries. Finished messages are cleaned up hourly, after
 * delivery.log_retention, in small transactions of their own.
 */
#ifndef OUTPOST_DELIVER_SCHEDULER_H
#define OUTPOST_DELIVER_SCHEDULER_H

#include "conf/conf.h"
#include "dkim/dkim.h"
#include "spool/spool.h"
#include "spool/writer.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct scheduler;

/* Creates the resolver, the TLS context and the connection pool too. NULL
 * with why filled when one of them cannot be made. dkim (may be NULL) signs
 * the delivery status notices; it outlives the scheduler. */
struct scheduler *scheduler_start(struct event_base *base, const struct conf *conf,
                                  struct spool *reader, struct spool_writer *writer,
                                  const struct dkim_signer *dkim, char *why, size_t whylen);

/* Something changed in the spool (new mail, kick, release): look for due
 * work now rather than at the next timer. Cheap; calls coalesce. */
void scheduler_wake(struct scheduler *s);

/* The [delivery] settings in conf changed (a reload, docs/install.md):
 * the connection pool takes its limits again, and due work is looked for
 * at once (a higher limit may let more attempts start). Attempts running
 * keep what they started with. */
void scheduler_reconfigure(struct scheduler *s);

void scheduler_set_paused(struct scheduler *s, bool paused);
bool scheduler_paused(const struct scheduler *s);

/* Attempts in flight now. */
size_t scheduler_in_flight(const struct scheduler *s);

/* Recipients picked whose attempt's start is not committed yet; 0 once the
 * writer has caught up (the tests check that nothing lingers). */
size_t scheduler_picked(const struct scheduler *s);

/* Stops starting attempts. Attempts in flight are abandoned (they were
 * already counted, so they are retried after a restart); their outcomes
 * still pending in the writer are reported to scheduler_free's caller. */
void scheduler_stop(struct scheduler *s);

/* Frees the scheduler once the writer is stopped (no attempt reports back). */
void scheduler_free(struct scheduler *s);

#endif
