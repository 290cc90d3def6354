/* fetch.h - fetch a domain's MTA-STS policy over HTTPS (RFC 8461 §3.3).
 *
 * Resolves mta-sts.<domain> (A and AAAA) with our resolver, then GETs
 * https://mta-sts.<domain>/.well-known/mta-sts.txt: no redirects, a
 * PKIX-valid certificate for mta-sts.<domain>, at most 64 KiB, all of it
 * (DNS included) within one timeout. The outcome is classified the way
 * TLS-RPT needs it (RFC 8460 §4.3.2.2): the policy text, "no policy
 * served", a fetch error or a PKIX failure, with a failure-reason-code.
 * The text is not parsed here (src/mtasts/policy.c).
 */
#ifndef OUTPOST_MTASTS_FETCH_H
#define OUTPOST_MTASTS_FETCH_H

#include <stddef.h>
#include <stdint.h>

struct dns_resolver;
struct https_client;
struct https_result;
struct mtasts_fetch;

#define MTASTS_POLICY_MAX 65536 /* octets; one more is "too-large" */

enum mtasts_fetch_status {
	MTASTS_FETCH_OK,             /* 200: body holds the policy text */
	MTASTS_FETCH_NO_POLICY,      /* mta-sts.<domain> does not exist, or 404 */
	MTASTS_FETCH_ERROR,          /* RFC 8460 sts-policy-fetch-error */
	MTASTS_FETCH_WEBPKI_INVALID, /* RFC 8460 sts-webpki-invalid */
};

struct mtasts_fetch_result {
	enum mtasts_fetch_status status;
	const char *result_type;  /* "sts-policy-fetch-error" (also for NO_POLICY),
	                             "sts-webpki-invalid", NULL for OK */
	char reason[96];          /* failure-reason-code: "no-policy-served",
	                             "http-status-500", "redirect", "timeout",
	                             "too-large", "connect-failed", "tls-error",
	                             "dns-error", "fetch-failed", "certificate-expired",
	                             "certificate-not-trusted", "certificate-host-mismatch",
	                             ...; "" for OK */
	char detail[320];         /* human text for logs */
	long http_status;         /* 0 when no response came */
	long verify_result;       /* OpenSSL X509_V_ERR_* for WEBPKI_INVALID, else 0 */
	const char *body;         /* OK: the policy text, NUL-terminated; else "" */
	size_t body_len;          /* at most MTASTS_POLICY_MAX */
	const char *content_type; /* as served (not checked), NULL when absent */
};

/* Called once on the loop thread, never from within mtasts_fetch; the
 * result and everything it points to are valid only during the call. */
typedef void (*mtasts_fetch_cb)(void *arg, const struct mtasts_fetch_result *r);

/* Starts fetching the policy of domain (an A-label, no trailing dot needed).
 * port is 443 (0 too) except in tests. timeout_ms bounds the whole fetch
 * (0 or less: one minute, the timeout RFC 8461 §3.3 suggests). A domain
 * that cannot form the policy URL fails through the callback. Returns a
 * handle for mtasts_fetch_cancel. */
struct mtasts_fetch *mtasts_fetch(struct dns_resolver *dns, struct https_client *http,
                                  const char *domain, int64_t timeout_ms, uint16_t port,
                                  mtasts_fetch_cb cb, void *arg);

/* The callback will not be called. Accepts NULL; a no-op from within the
 * fetch's own callback. */
void mtasts_fetch_cancel(struct mtasts_fetch *f);

/* "ok", "no-policy", "fetch-error", "webpki-invalid". */
const char *mtasts_fetch_status_name(enum mtasts_fetch_status s);

/* How an HTTPS result becomes a fetch result (fills all of *out; body and
 * content_type point into r). Exposed for tests. */
void mtasts_fetch_classify(const struct https_result *r, struct mtasts_fetch_result *out);

/* The failure-reason-code of a certificate that failed PKIX, from
 * OpenSSL's verify result (RFC 8460 §4.3): "certificate-expired",
 * "certificate-host-mismatch", "certificate-not-trusted", with
 * "+<detail>" for the less common reasons. */
void mtasts_webpki_reason(long verify_result, char *buf, size_t n);

#endif
