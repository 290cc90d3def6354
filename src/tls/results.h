/* results.h - TLS results as RFC 8460 §4.4 counts them: per policy, the
 * successful and failed sessions and the failure details.
 *
 * A delivery attempt fills a tlsrpt_set (one result for the recipient
 * domain, one per MX host tried); the outcome commit adds it to the day's
 * rows in the spool (spool/tls_rows.h); `outpost tlsrpt results` and the
 * daily reports read them back. Results are identified by their policy
 * (type, domain, strings, mx hosts), failure details by all their fields
 * but the count, so adding is merging.
 */
#ifndef OUTPOST_TLS_RESULTS_H
#define OUTPOST_TLS_RESULTS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum tlsrpt_policy_type { TLSRPT_NO_POLICY, TLSRPT_STS, TLSRPT_TLSA };

struct tlsrpt_failure {
	char result_type[40]; /* RFC 8460 §4.3: "certificate-expired", "tlsa-invalid", ... */
	char sending_ip[46];
	char receiving_mx[256]; /* "" when no host was involved */
	char receiving_ip[46];
	char reason[128]; /* failure-reason-code */
	int64_t count;    /* failed-session-count */
};

struct tlsrpt_result {
	enum tlsrpt_policy_type type;
	char domain[256]; /* policy-domain, A-labels */
	char *strings;    /* policy-string lines joined by "\n" ("" when none); owned */
	char *mx_hosts;   /* mx-host entries joined by "\n"; owned */
	int64_t success, failure;
	size_t nfail;
	struct tlsrpt_failure *fail; /* owned */
};

struct tlsrpt_set {
	size_t n;
	struct tlsrpt_result *r; /* owned */
};

/* The result for this policy in set, added (with zero counts) when new.
 * strings and mx_hosts are "\n"-joined lines, NULL for none. The pointer
 * stays valid until the next tlsrpt_set_result or tlsrpt_set_clear. */
struct tlsrpt_result *tlsrpt_set_result(struct tlsrpt_set *set, enum tlsrpt_policy_type type,
                                        const char *domain, const char *strings,
                                        const char *mx_hosts);

/* Merges a failure detail (its count added to an identical one). The
 * session counts are not touched: a detail may come with or without a
 * failed session (RFC 8460 §4.4: details explain, counts count). */
void tlsrpt_add_failure(struct tlsrpt_result *r, const struct tlsrpt_failure *f);

/* Adds r to set: its counts and details to the result of the same policy
 * (a new one when there is none). */
void tlsrpt_set_merge(struct tlsrpt_set *set, const struct tlsrpt_result *r);

/* Frees what the set holds and empties it. */
void tlsrpt_set_clear(struct tlsrpt_set *set);

/* True when the result has anything to say (a count or a detail). */
bool tlsrpt_result_worth_keeping(const struct tlsrpt_result *r);

/* "sts", "tlsa", "no-policy-found"; and back (-1 when unknown). */
const char *tlsrpt_policy_type_name(enum tlsrpt_policy_type t);
int tlsrpt_policy_type_parse(const char *name);

/* The RFC 8460 §4.4 "policies" element: {"policy": {...}, "summary":
 * {...}, "failure-details": [...]}, with the RFC's field names; lists are
 * [] when empty, never null. New reference. */
json_t *tlsrpt_result_json(const struct tlsrpt_result *r);

#endif
