/* retry.h - the retry schedule (docs/queue.md, "Retry schedule").
 *
 * After attempt n fails temporarily the next one waits first_retry doubled
 * n-1 times (7m30s, 15m, 30m, ... by default), capped at 30 days, spread by
 * a jitter of ±1% of the wait (at most ±5 s) so that a burst does not come
 * back as one burst. The delay notice states the times of the attempts
 * still to come from the same arithmetic, never from fixed text.
 */
#ifndef OUTPOST_DELIVER_RETRY_H
#define OUTPOST_DELIVER_RETRY_H

#include <stddef.h>
#include <stdint.h>

/* The wait after attempt number `attempts_before + 1` fails, without
 * jitter, so that the schedule can be stated exactly. */
int64_t retry_backoff_ms(int64_t first_retry_ms, int attempts_before);

/* backoff_ms moved by up to 1% of itself, at most 5 s, either way. */
int64_t retry_jitter(int64_t backoff_ms);

/* The start times of the attempts still to come after attempt n (1-based)
 * started at t, with max_attempts in all: fills up to max entries, returns
 * how many. */
size_t retry_remaining(int64_t first_retry_ms, int max_attempts, int n, int64_t t, int64_t *out,
                       size_t max);

#endif
