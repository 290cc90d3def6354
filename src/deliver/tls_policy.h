/* tls_policy.h - the TLS decision for one MX host, in one table.
 *
 * Three things decide how a host is dialled: the recipient domain's
 * MTA-STS policy (RFC 8461), the host's TLSA records (RFC 7672) and the
 * message's own demand (RFC 8689: REQUIRETLS, or "TLS-Required: No"). The
 * table is in docs/tls.md; in short:
 *   - usable DANE records govern their host, before MTA-STS (RFC 8461 §2);
 *   - an enforced MTA-STS policy governs the hosts without them: listed
 *     hosts only, STARTTLS required, PKIX for the MX host name;
 *   - records present but none usable: TLS required, unauthenticated
 *     (RFC 7672 §2.2), PKIX when MTA-STS enforces;
 *   - a failed TLSA lookup on a signed host: the host is not dialled
 *     (RFC 7672 §2.2: no downgrade on lookup failure);
 *   - otherwise opportunistic STARTTLS with a plaintext retry on the same
 *     host (RFC 7435);
 *   - REQUIRETLS: only hosts of an authenticated MX list (DNSSEC, or an
 *     enforced policy) with a verified certificate (DANE, or PKIX for the
 *     MX host name) that announce REQUIRETLS (RFC 8689 §4.2.1);
 *   - "TLS-Required: No": everything is checked and recorded, nothing
 *     aborts, and a TLS failure retries in plaintext (RFC 8689 §5).
 * Pure: no I/O, no state.
 */
#ifndef OUTPOST_DELIVER_TLS_POLICY_H
#define OUTPOST_DELIVER_TLS_POLICY_H

#include "deliver/client.h"
#include "tls/verify.h"

#include <stdbool.h>
#include <stddef.h>

enum sts_mode { STS_NONE, STS_TESTING, STS_ENFORCE };

enum dane_state {
	DANE_NOT_ELIGIBLE, /* DANE off, an address literal, or the host's addresses are not DNSSEC-signed */
	DANE_NO_RECORDS,   /* signed, and no TLSA records (or not signed themselves) */
	DANE_USABLE,       /* at least one usable record */
	DANE_UNUSABLE,     /* records, none usable */
	DANE_LOOKUP_FAILED /* SERVFAIL, bogus, timeout */
};

enum tls_demand {
	TLS_DEMAND_DEFAULT,
	TLS_DEMAND_REQUIRETLS, /* RFC 8689 §4 */
	TLS_DEMAND_OPTIONAL,   /* "TLS-Required: No" without REQUIRETLS (RFC 8689 §5) */
};

struct tls_situation {
	enum sts_mode sts;
	bool sts_listed; /* the host matches the policy's mx patterns */
	enum dane_state dane;
	enum tls_demand demand;
	bool mx_authentic; /* the MX list came from DNSSEC-validated answers */
	bool ip_literal;   /* the recipient domain is an address literal */
};

/* Which policy governs the host, as shown to operators. */
enum tls_governor {
	GOVERNOR_NONE,
	GOVERNOR_DANE,
	GOVERNOR_STS_ENFORCE,
	GOVERNOR_STS_TESTING,
	GOVERNOR_REQUIRETLS, /* only the message's REQUIRETLS (a DNSSEC-signed MX list) */
};

/* What "TLS-Required: No" made outpost ignore (logged and counted). */
enum tls_override {
	OVERRIDE_STS_MX = 1 << 0,    /* a host the enforced policy does not list */
	OVERRIDE_TLSA_ERROR = 1 << 1 /* a failed TLSA lookup */
};

struct tls_plan {
	bool dial; /* false: the host is not tried; enhanced and why say why */
	enum smtp_tls_mode mode;
	enum tls_auth auth; /* what the verdict is checked against (verify.h) */
	bool enforce;       /* an unauthenticated verdict fails the host */
	bool fallback;      /* a TLS failure retries the same host in plaintext */
	bool requiretls;    /* MAIL FROM ... REQUIRETLS */
	enum tls_governor governor;
	unsigned overrides; /* enum tls_override bits */
	/* when !dial: */
	bool cannot_qualify; /* the host can never carry this REQUIRETLS message */
	char enhanced[12];
	char why[200];
};

void tls_plan_decide(const struct tls_situation *s, const char *host, struct tls_plan *out);

/* "none", "dane", "mta-sts enforce", "mta-sts testing", "requiretls" */
const char *tls_governor_name(enum tls_governor g);

#endif
