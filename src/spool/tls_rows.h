/* tls_rows.h - TLS results by UTC day in the spool (RFC 8460 §4.4).
 *
 * A delivery attempt adds its results (tls/results.h) in its own outcome
 * commit; identical policies of a day share a row whose counts grow, and
 * identical failure details share theirs.
 */
#ifndef OUTPOST_SPOOL_TLS_ROWS_H
#define OUTPOST_SPOOL_TLS_ROWS_H

#include "spool/spool.h"
#include "tls/results.h"

#include <stdbool.h>
#include <stdint.h>

/* Adds r to the results of day ("YYYY-MM-DD", UTC). reportable: the
 * results may make a report (false for those of delivering a report). */
int spool_tls_results_add(struct spool *s, const char *day, const struct tlsrpt_result *r,
                          bool reportable, char *why, size_t whylen);

/* Each result of day (of policy domain `domain` only, when not NULL), in
 * policy-domain order, to fn; r is valid during the call. Results that may
 * not make a report are kept apart (the same policy may come twice: merge
 * with tlsrpt_set_result); reportable_only leaves them out, as a report
 * must (RFC 8460 §3: no report on reports). */
int spool_tls_results_read(struct spool *s, const char *day, const char *domain,
                           bool reportable_only,
                           void (*fn)(void *arg, const struct tlsrpt_result *r), void *arg,
                           char *why, size_t whylen);

/* Deletes the results, and the record of their reports, of days before
 * day. Returns how many result rows, or -1. */
int64_t spool_tls_results_forget(struct spool *s, const char *day, char *why, size_t whylen);

/* ---- daily reports (tlsrpt/sender.c) ---- */

/* Up to max policy domains of day whose report is still to be made: with a
 * reportable result that failed or has failure details (any reportable
 * result when all_success), and no report done. Each in domains[i].
 * Returns how many, or -1. */
int spool_tls_report_candidates(struct spool *s, const char *day, bool all_success,
                                char (*domains)[256], int max, char *why, size_t whylen);

/* Marks the report of (day, domain) done with outcome ("queued", "no
 * record", ...). Returns 1, or 0 when it was done already (then nothing
 * else of the report may be queued), or -1. */
int spool_tls_report_done(struct spool *s, const char *day, const char *domain, int64_t now_ms,
                          const char *outcome, char *why, size_t whylen);

/* A report to POST to an https: destination (RFC 8460 §3), due now. */
int spool_tls_post_add(struct spool *s, const char *url, const char *report_id,
                       const void *body, size_t len, int64_t now_ms, char *why, size_t whylen);

struct spool_tls_post {
	int64_t id;
	const char *url, *report_id;
	const void *body;
	size_t len;
	int attempts;
};

/* Up to max posts due at now_ms, to fn (valid during the call); *next_ms is
 * when the first post left out is due (INT64_MAX when none is). Returns how
 * many went to fn, or -1. */
int spool_tls_posts_due(struct spool *s, int64_t now_ms, int max,
                        void (*fn)(void *arg, const struct spool_tls_post *p), void *arg,
                        int64_t *next_ms, char *why, size_t whylen);

/* The post was answered 2xx, or was given up: it goes. */
int spool_tls_post_gone(struct spool *s, int64_t id, char *why, size_t whylen);

/* It failed: tried again at next_ms. */
int spool_tls_post_retry(struct spool *s, int64_t id, int64_t next_ms, const char *error,
                         char *why, size_t whylen);

#endif
