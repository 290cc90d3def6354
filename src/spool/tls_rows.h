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

/* Adds r to the results of day ("YYYY-MM-DD", UTC). */
int spool_tls_results_add(struct spool *s, const char *day, const struct tlsrpt_result *r,
                          char *why, size_t whylen);

/* Each result of day (of policy domain `domain` only, when not NULL), in
 * policy-domain order, to fn; r is valid during the call. */
int spool_tls_results_read(struct spool *s, const char *day, const char *domain,
                           void (*fn)(void *arg, const struct tlsrpt_result *r), void *arg,
                           char *why, size_t whylen);

/* Deletes the results of days before day. Returns how many rows, or -1. */
int64_t spool_tls_results_forget(struct spool *s, const char *day, char *why, size_t whylen);

#endif
