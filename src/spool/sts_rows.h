/* sts_rows.h - the MTA-STS policy cache in the spool (RFC 8461 §5.1).
 *
 * One row per recipient domain: the policy text as fetched (parsed again
 * when read: the parser is the one authority on it), the id of the TXT
 * record it came with, when it was fetched, until when it may be used
 * (fetch time + max_age), and when a delivery last used it. A back-off row
 * only remembers that getting a policy failed a moment ago, so that not
 * every attempt retries the fetch (mtasts/cache.c decides).
 */
#ifndef OUTPOST_SPOOL_STS_ROWS_H
#define OUTPOST_SPOOL_STS_ROWS_H

#include "spool/spool.h"

#include <stdbool.h>
#include <stdint.h>

struct sts_row {
	char domain[256];
	char record_id[40];
	char *policy; /* the text, NUL-terminated; owned; "" for a back-off row */
	bool backoff;
	int64_t fetched_ms, valid_until_ms, last_use_ms;
};

void sts_row_clear(struct sts_row *r);

/* 1 with *out filled (clear it afterwards), 0 when there is no row, -1. */
int spool_sts_get(struct spool *s, const char *domain, struct sts_row *out, char *why,
                  size_t whylen);

/* Inserts or replaces the row of r->domain. */
int spool_sts_put(struct spool *s, const struct sts_row *r, char *why, size_t whylen);

/* The TXT record still names the cached policy: it is good for another
 * max_age from now (RFC 8461 §5.1), and was used at now. */
int spool_sts_confirm(struct spool *s, const char *domain, int64_t now_ms, int64_t valid_until_ms,
                      char *why, size_t whylen);

int spool_sts_delete(struct spool *s, const char *domain, char *why, size_t whylen);

/* Up to max domains whose row was fetched before fetched_before_ms (back-off
 * rows left out), oldest first, each in domains[i] (256 octets). Returns how
 * many, or -1. */
int spool_sts_stale(struct spool *s, int64_t fetched_before_ms, char (*domains)[256], int max,
                    char *why, size_t whylen);

/* Deletes rows not used since used_before_ms and rows expired before
 * expired_before_ms. Returns how many, or -1. */
int64_t spool_sts_forget(struct spool *s, int64_t used_before_ms, int64_t expired_before_ms,
                         char *why, size_t whylen);

#endif
