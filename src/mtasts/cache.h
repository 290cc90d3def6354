/* cache.h - the MTA-STS policy of a recipient domain, for a delivery
 * attempt (RFC 8461 §5), and its refresh in the background (§5.1).
 *
 * The policy comes from the spool's cache (spool/sts_rows.h) while it is
 * valid and its TXT record still names it; otherwise the TXT record is
 * looked up and the policy fetched (mtasts/fetch.h), parsed and cached for
 * max_age. A fetch that fails keeps a still-valid cached policy in force,
 * and leaves a short back-off row when there is none. A TXT record that
 * disappears does not end a cached policy early: an attacker who can
 * remove it could otherwise downgrade the domain (§5.1); it is logged. The
 * table of cases is in docs/tls.md ("MTA-STS").
 *
 * Lookups of one domain at the same time share one piece of work; a
 * domain's answer is remembered in memory for a minute (a cache of the
 * spool row and the TXT record, emptied when it grows too large), so that
 * busy domains cost no DNS query per message.
 */
#ifndef OUTPOST_MTASTS_CACHE_H
#define OUTPOST_MTASTS_CACHE_H

#include "mtasts/policy.h"

#include <stdbool.h>
#include <stdint.h>

struct event_base;
struct dns_resolver;
struct https_client;
struct spool;
struct spool_writer;

/* A parsed policy shared by the attempts using it. */
struct sts_policy {
	int refs;
	struct mtasts_policy *parsed;
	char id[MTASTS_ID_MAX + 1];
};

/* Parses text (NUL-terminated) into a policy with one reference; NULL with
 * why filled when it does not parse. */
struct sts_policy *sts_policy_new(const char *text, const char *id, char *why, size_t whylen);
struct sts_policy *sts_policy_ref(struct sts_policy *p);
void sts_policy_unref(struct sts_policy *p);

struct sts_result {
	struct sts_policy *policy; /* NULL: no policy; else the caller's reference */
	/* The TXT lookup failed and nothing valid is cached: the attempt
	 * must not guess (RFC 8461 §5: a temporary failure). */
	bool temporary_failure;
	/* A TLS-RPT failure detail for the domain's result (RFC 8460 §4.3),
	 * result_type NULL when there is none. */
	const char *result_type;
	char reason[128];
	char text[256]; /* for logs and the temporary failure's reason */
};

struct sts_cache_config {
	struct event_base *base;
	struct dns_resolver *dns;
	struct https_client *https;
	struct spool *reader;        /* read on the loop thread */
	struct spool_writer *writer; /* NULL: rows are not stored (outpost check) */
	int64_t fetch_timeout_ms;
	int64_t refresh_interval_ms; /* 0: no background refresh */
	uint16_t https_port;         /* 443 (0 too) */
};

struct sts_cache;
struct sts_request;

struct sts_cache *sts_cache_new(const struct sts_cache_config *cfg);
/* Pending requests are dropped without their callbacks. */
void sts_cache_free(struct sts_cache *c);

/* Answers from memory when it can: true with *out filled (the caller owns
 * out->policy's reference). */
bool sts_cache_lookup_now(struct sts_cache *c, const char *domain, struct sts_result *out);

/* Called once on the loop thread, never from within sts_cache_get; the
 * callee takes r->policy's reference. */
typedef void (*sts_cache_cb)(void *arg, struct sts_result *r);

/* The domain's policy (an A-label domain). */
struct sts_request *sts_cache_get(struct sts_cache *c, const char *domain, sts_cache_cb cb,
                                  void *arg);

/* The callback will not run. */
void sts_request_cancel(struct sts_request *r);

/* Registers the metrics (so they show before the first lookup). */
void sts_cache_metrics_init(void);

#endif
