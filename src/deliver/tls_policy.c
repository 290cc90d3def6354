/* tls_policy.c - the TLS decision for one MX host (docs/tls.md). */
#include "deliver/tls_policy.h"

#include <stdio.h>
#include <string.h>

/* The host is not dialled; g is the policy that says so. */
static void refuse(struct tls_plan *p, enum tls_governor g, const char *enhanced,
                   bool cannot_qualify, const char *fmt, const char *host)
{
	p->dial = false;
	p->governor = g;
	p->cannot_qualify = cannot_qualify;
	snprintf(p->enhanced, sizeof p->enhanced, "%s", enhanced);
	snprintf(p->why, sizeof p->why, fmt, host);
}

/* TLS required and the certificate checked against auth; whether a
 * failure aborts depends on the demand. */
static void required(struct tls_plan *p, enum tls_auth auth, enum tls_governor g, bool optional)
{
	p->mode = SMTP_TLS_REQUIRED;
	p->auth = auth;
	p->enforce = auth != TLS_AUTH_NONE && !optional;
	p->fallback = optional;
	p->governor = g;
}

static void opportunistic(struct tls_plan *p, enum tls_governor g)
{
	p->mode = SMTP_TLS_OPPORTUNISTIC;
	p->auth = TLS_AUTH_NONE;
	p->enforce = false;
	p->fallback = true;
	p->governor = g;
}

/* RFC 8689 §4.2.1: an authenticated MX list, a verified certificate, and
 * REQUIRETLS announced (the client checks the last one). */
static void decide_requiretls(const struct tls_situation *s, const char *host, struct tls_plan *p)
{
	bool sts_listed = s->sts == STS_ENFORCE && s->sts_listed;
	p->requiretls = true;
	if (s->ip_literal)
		return refuse(p, GOVERNOR_REQUIRETLS, "4.7.30", true,
		              "REQUIRETLS: the address literal %s has no authenticated MX host", host);
	if (s->sts == STS_ENFORCE && !s->sts_listed)
		return refuse(p, GOVERNOR_STS_ENFORCE, "4.7.30", true,
		              "REQUIRETLS: MX host %s is not listed in the domain's MTA-STS policy",
		              host);
	if (!s->mx_authentic && !sts_listed)
		return refuse(p, GOVERNOR_REQUIRETLS, "4.7.30", true,
		              "REQUIRETLS: the MX list naming %s is neither DNSSEC-signed nor "
		              "confirmed by an enforced MTA-STS policy",
		              host);
	if (s->dane == DANE_LOOKUP_FAILED)
		return refuse(p, GOVERNOR_DANE, "4.7.5", false, "TLSA lookup for %s failed", host);
	if (s->dane == DANE_USABLE)
		return required(p, TLS_AUTH_DANE, GOVERNOR_DANE, false);
	required(p, TLS_AUTH_PKIX, sts_listed ? GOVERNOR_STS_ENFORCE : GOVERNOR_REQUIRETLS, false);
}

void tls_plan_decide(const struct tls_situation *s, const char *host, struct tls_plan *p)
{
	memset(p, 0, sizeof *p);
	p->dial = true;
	if (s->demand == TLS_DEMAND_REQUIRETLS)
		return decide_requiretls(s, host, p);

	bool optional = s->demand == TLS_DEMAND_OPTIONAL;
	enum dane_state dane = s->dane;
	enum sts_mode sts = s->sts;
	if (sts == STS_ENFORCE && !s->sts_listed) {
		if (!optional)
			return refuse(p, GOVERNOR_STS_ENFORCE, "4.7.5", false,
			              "MX host %s is not listed in the domain's MTA-STS policy", host);
		p->overrides |= OVERRIDE_STS_MX;
	}
	if (dane == DANE_LOOKUP_FAILED) {
		if (!optional)
			return refuse(p, GOVERNOR_DANE, "4.7.5", false, "TLSA lookup for %s failed", host);
		p->overrides |= OVERRIDE_TLSA_ERROR;
		dane = DANE_NO_RECORDS;
	}
	if (dane == DANE_USABLE)
		return required(p, TLS_AUTH_DANE, GOVERNOR_DANE, optional);
	if (sts == STS_ENFORCE)
		return required(p, TLS_AUTH_PKIX, GOVERNOR_STS_ENFORCE, optional);
	if (dane == DANE_UNUSABLE) /* RFC 7672 §2.2: encrypted, not authenticated */
		return required(p, TLS_AUTH_NONE, GOVERNOR_DANE, optional);
	opportunistic(p, sts == STS_TESTING ? GOVERNOR_STS_TESTING : GOVERNOR_NONE);
}

const char *tls_governor_name(enum tls_governor g)
{
	static const char *const names[] = {
	    [GOVERNOR_NONE] = "none",
	    [GOVERNOR_DANE] = "dane",
	    [GOVERNOR_STS_ENFORCE] = "mta-sts enforce",
	    [GOVERNOR_STS_TESTING] = "mta-sts testing",
	    [GOVERNOR_REQUIRETLS] = "requiretls",
	};
	return (unsigned)g < sizeof names / sizeof names[0] ? names[g] : "none";
}
