/* host_tls.h - TLS in one delivery attempt: per MX host, the situation
 * (listed by the MTA-STS policy, TLSA records), the plan (tls_policy.h)
 * and the policy the verifier checks (verify.h); per attempt, the TLS
 * results it adds to the day's (RFC 8460 §4.4, tls/results.h).
 *
 * Results, as RFC 8460 counts them and docs/tls.md pins them down: one for
 * the recipient domain (type "sts" with the policy, or "no-policy-found"),
 * one per MX host (type "tlsa" for the TLSA base domain when the host has
 * records, "no-policy-found" for the host otherwise). A TLS session counts
 * once in each: a success, or a failure with its details. Plaintext retries
 * and connections taken from the pool count nothing: they are no new TLS
 * session. Address literals record nothing (there is no domain to report
 * to).
 */
#ifndef OUTPOST_DELIVER_HOST_TLS_H
#define OUTPOST_DELIVER_HOST_TLS_H

#include "deliver/client.h"
#include "deliver/tls_policy.h"
#include "dns/destinations.h"
#include "dns/tlsa.h"
#include "mtasts/cache.h"
#include "tls/results.h"
#include "tls/verify.h"

#include <stdbool.h>

/* What the attempt knows about TLS before any host. */
struct attempt_tls {
	char domain[256];
	enum tls_demand demand;
	bool ip_literal;
	struct sts_policy *sts; /* NULL: no MTA-STS policy (or mode none) */
	enum sts_mode sts_mode;
	bool mx_authentic; /* set once the destinations are known */
	struct tlsrpt_set results;
	int domain_result; /* index in results, -1 when nothing is recorded */
};

#define HOST_TLS_NAMES 4

struct host_tls {
	char host[DNS_NAME_MAX];
	struct tls_situation situation;
	struct tls_plan plan;
	struct host_tlsa *tlsa; /* owned; NULL when not looked up */
	struct tls_tlsa *records;
	size_t nrecords, usable;
	char names[HOST_TLS_NAMES][DNS_NAME_MAX];
	const char *name_list[HOST_TLS_NAMES];
	struct tls_peer_policy peer;
	int host_result; /* index in the attempt's results, -1 when none */
};

/* Starts the attempt's TLS state from the MTA-STS lookup (r may be NULL:
 * MTA-STS off, or an address literal). Takes r->policy's reference. */
void attempt_tls_init(struct attempt_tls *t, const char *domain, enum tls_demand demand,
                      bool ip_literal, struct sts_result *r);
void attempt_tls_clear(struct attempt_tls *t);

/* The destinations are known: whether their MX list is DNSSEC-signed. */
void attempt_tls_destinations(struct attempt_tls *t, const struct destinations *d);

/* A tag that two attempts share only when a connection set up for one is
 * fit for the other: the MTA-STS policy and the message's demand. */
void attempt_tls_pool_tag(const struct attempt_tls *t, char *buf, size_t n);

/* Starts a host: is it listed by the policy (MTA-STS failure detail when
 * not). Fills h->situation's policy part. */
void host_tls_begin(struct attempt_tls *t, struct host_tls *h, const char *host);

/* Whether TLSA must be looked up: DANE is on and the host's addresses
 * (and their CNAME chain) are DNSSEC-signed (RFC 7672 §2.2.1). */
bool host_tls_wants_tlsa(const struct attempt_tls *t, const struct host_tls *h,
                         const struct host_ips *ips, bool dane_enabled);

/* Decides the plan (tlsa: the lookup's answer, owned by h now, or NULL),
 * builds the verifier's policy, records the host's result and the TLSA
 * failure details. */
void host_tls_decide(struct attempt_tls *t, struct host_tls *h, const struct host_ips *ips,
                     struct host_tlsa *tlsa);

/* A connection's TLS outcome, as a TLS session to count: ok with the
 * session's info, or the setup error (TLS or not). Does nothing for
 * plaintext retries (mode SKIP) and for errors before STARTTLS. Returns
 * true when "TLS-Required: No" made a verification failure harmless
 * (the caller logs and counts the override). */
bool host_tls_record(struct attempt_tls *t, struct host_tls *h, enum smtp_tls_mode mode,
                     const struct smtp_server_info *info, const struct smtp_client_error *err,
                     const char *remote_ip);

/* For the delivery log: how the certificate was verified ("DANE-EE",
 * "DANE-TA", "PKIX", "unverified", "" without TLS) and what goes with it
 * (the matching TLSA record, or why verification failed). */
void host_tls_describe(const struct host_tls *h, const struct smtp_server_info *info,
                       char *verified, size_t vlen, char *detail, size_t dlen);

void host_tls_clear(struct host_tls *h);

#endif
