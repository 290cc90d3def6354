/* fetch.c - the MTA-STS policy fetch: DNS, then one HTTPS GET. The
 * contract is in fetch.h.
 *
 * Addresses: A and AAAA for mta-sts.<domain> are asked at once. When one
 * family answers with addresses, the other gets RFC 8305 §3's resolution
 * delay (50 ms) and is then given up, so a slow or broken AAAA server costs
 * 50 ms rather than the resolver's retries. All addresses go to the HTTPS
 * client, IPv6 first (RFC 6724 default preference); curl races the families
 * (RFC 8305 happy eyeballs) and tries each address in turn.
 *
 * "No policy": an NXDOMAIN for either family (the name does not exist, so
 * there is no point waiting for the other), NODATA for both, or HTTP 404.
 * A missing policy host is the domain saying it has no policy, not a fetch
 * that went wrong; our own resolver tells NXDOMAIN apart.
 * A SERVFAIL or timeout for a family is a DNS error only when no family gave
 * an address: a host that answers one family can still serve the policy.
 *
 * Decisions where RFC 8461 §3.3 leaves room:
 *  - Content-Type: the RFC says the policy is served as text/plain, a duty
 *    of the server; it does not tell senders to refuse anything else, and
 *    servers often get the type wrong. We accept any media type and hand it
 *    to the caller for the log; the policy grammar is the real check.
 *  - charset: ignored. The policy grammar is ASCII apart from extension
 *    values (UTF-8); the raw octets go to the parser, which judges them.
 *  - Only 200 is a policy. 404 is "no policy served"; every other status,
 *    2xx included, is a fetch error "http-status-<n>".
 *  - A 404 or other error status whose body exceeds the cap is still
 *    classified by its status: the body of an error page does not matter.
 *  - Redirects are an error ("redirect"), never followed (§3.3 MUST NOT).
 *  - A certificate outside its validity period (not yet valid too) is
 *    "certificate-expired", the RFC 8460 type closest to it.
 */
#include "mtasts/fetch.h"

#include "dns/dns.h"
#include "util/https.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/timeutil.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <openssl/x509_vfy.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FETCH_ADDRS_MAX     8                          /* per family: plenty for one web host */
#define RESOLUTION_DELAY_MS 50                         /* RFC 8305 §3 */
#define DEFAULT_TIMEOUT_MS  60000                      /* RFC 8461 §3.3: one minute */
#define POLICY_PATH         "/.well-known/mta-sts.txt" /* RFC 8461 §3.3 */

static const char *const FETCH_ERROR = "sts-policy-fetch-error"; /* RFC 8460 §4.3.2.2 */
static const char *const WEBPKI_INVALID = "sts-webpki-invalid";

/* One address family of mta-sts.<domain>. */
struct family {
	enum dns_type type;
	struct dns_query *q; /* NULL once answered or given up */
	bool answered;
	enum dns_status status;
	bool nxdomain;
	char error[160];
	size_t n;
	char addrs[FETCH_ADDRS_MAX][INET6_ADDRSTRLEN];
};

struct mtasts_fetch {
	struct dns_resolver *dns;
	struct https_client *http;
	char domain[DNS_NAME_MAX];
	char host[DNS_NAME_MAX + 8]; /* mta-sts.<domain> */
	char url[DNS_NAME_MAX + 64];
	int64_t started_us, deadline_us;
	struct family v6, v4;
	struct event *deadline; /* the whole fetch */
	struct event *delay;    /* resolution delay; also an early failure */
	struct https_request *req;
	bool rejected; /* the domain was unusable: fail from the loop */
	mtasts_fetch_cb cb;
	void *arg;
	bool in_callback;
};

static struct metric *m_fetches;

static void metrics_init(void)
{
	if (m_fetches == NULL)
		m_fetches = metric_counter("outpost_mtasts_fetch_total",
		                           "MTA-STS policy fetches by outcome", "result");
}

const char *mtasts_fetch_status_name(enum mtasts_fetch_status s)
{
	switch (s) {
	case MTASTS_FETCH_OK:
		return "ok";
	case MTASTS_FETCH_NO_POLICY:
		return "no-policy";
	case MTASTS_FETCH_ERROR:
		return "fetch-error";
	case MTASTS_FETCH_WEBPKI_INVALID:
		break;
	}
	return "webpki-invalid";
}

/* ---------------------------------------------------------------------------
 * Classification (pure).
 */

static void result_set(struct mtasts_fetch_result *out, enum mtasts_fetch_status st,
                       const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void result_set(struct mtasts_fetch_result *out, enum mtasts_fetch_status st,
                       const char *reason, const char *fmt, ...)
{
	va_list ap;

	out->status = st;
	out->result_type = st == MTASTS_FETCH_OK               ? NULL
	                   : st == MTASTS_FETCH_WEBPKI_INVALID ? WEBPKI_INVALID
	                                                       : FETCH_ERROR;
	snprintf(out->reason, sizeof out->reason, "%s", reason);
	va_start(ap, fmt);
	vsnprintf(out->detail, sizeof out->detail, fmt, ap);
	va_end(ap);
}

void mtasts_webpki_reason(long v, char *buf, size_t n)
{
	switch (v) {
	case X509_V_ERR_CERT_HAS_EXPIRED:
		snprintf(buf, n, "certificate-expired");
		return;
	case X509_V_ERR_CERT_NOT_YET_VALID:
		snprintf(buf, n, "certificate-expired+not-yet-valid");
		return;
	case X509_V_ERR_HOSTNAME_MISMATCH:
	case X509_V_ERR_IP_ADDRESS_MISMATCH:
		snprintf(buf, n, "certificate-host-mismatch");
		return;
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
		snprintf(buf, n, "certificate-not-trusted"); /* no path to a trust anchor */
		return;
	default:
		snprintf(buf, n, "certificate-not-trusted+x509-verify-error-%ld", v);
	}
}

/* A response came (perhaps cut off at the cap): its status decides. */
static void classify_response(const struct https_result *r, struct mtasts_fetch_result *out)
{
	if (r->status == 404) {
		result_set(out, MTASTS_FETCH_NO_POLICY, "no-policy-served", "HTTP 404");
	} else if (r->status != 200 && r->status != 0) {
		char reason[32];

		snprintf(reason, sizeof reason, "http-status-%ld", r->status);
		result_set(out, MTASTS_FETCH_ERROR, reason, "HTTP %ld", r->status);
	} else if (r->outcome == HTTPS_TOO_LARGE) {
		result_set(out, MTASTS_FETCH_ERROR, "too-large", "policy larger than %d octets",
		           MTASTS_POLICY_MAX);
	} else {
		result_set(out, MTASTS_FETCH_OK, "", "HTTP 200, %zu octets", r->body_len);
		out->body = r->body;
		out->body_len = r->body_len;
	}
}

void mtasts_fetch_classify(const struct https_result *r, struct mtasts_fetch_result *out)
{
	char reason[96];

	memset(out, 0, sizeof *out);
	out->body = "";
	out->http_status = r->status;
	out->content_type = r->content_type;
	switch (r->outcome) {
	case HTTPS_RESPONSE:
	case HTTPS_TOO_LARGE:
		classify_response(r, out);
		return;
	case HTTPS_REDIRECT:
		result_set(out, MTASTS_FETCH_ERROR, "redirect", "%s", r->reason);
		return;
	case HTTPS_CERT_INVALID:
		mtasts_webpki_reason(r->verify_result, reason, sizeof reason);
		result_set(out, MTASTS_FETCH_WEBPKI_INVALID, reason, "%s", r->reason);
		out->verify_result = r->verify_result;
		return;
	case HTTPS_TIMEOUT:
		result_set(out, MTASTS_FETCH_ERROR, "timeout", "%s", r->reason);
		return;
	case HTTPS_CONNECT_FAILED:
		result_set(out, MTASTS_FETCH_ERROR, "connect-failed", "%s", r->reason);
		return;
	case HTTPS_TLS_FAILED:
		result_set(out, MTASTS_FETCH_ERROR, "tls-error", "%s", r->reason);
		return;
	case HTTPS_OTHER:
		break;
	}
	result_set(out, MTASTS_FETCH_ERROR, "fetch-failed", "%s", r->reason);
}

/* ---------------------------------------------------------------------------
 * The fetch.
 */

/* Stops asking: the answers in hand are all the fetch will use. */
static void fetch_stop_dns(struct mtasts_fetch *f)
{
	dns_cancel(f->v6.q);
	dns_cancel(f->v4.q);
	f->v6.q = f->v4.q = NULL;
	evtimer_del(f->delay);
}

/* Stops whatever still runs, so that the callback finds nothing of ours
 * in the resolver or the client (it may even free them). */
static void fetch_stop(struct mtasts_fetch *f)
{
	fetch_stop_dns(f);
	https_cancel(f->req);
	f->req = NULL;
	evtimer_del(f->deadline);
}

static void fetch_free(struct mtasts_fetch *f)
{
	fetch_stop(f);
	event_free(f->deadline);
	event_free(f->delay);
	free(f);
}

static void fetch_finish(struct mtasts_fetch *f, const struct mtasts_fetch_result *r)
{
	fetch_stop(f);
	log_event(LOG_DEBUG, "mtasts_fetch",
	          "domain=%s result=%s reason=%s http_status=%ld ms=%lld detail=%s",
	          log_quote(f->domain), mtasts_fetch_status_name(r->status),
	          r->reason[0] ? r->reason : "-", r->http_status,
	          (long long)((time_mono_us() - f->started_us) / 1000), log_quote(r->detail));
	metric_add(m_fetches, mtasts_fetch_status_name(r->status), 1);
	f->in_callback = true;
	f->cb(f->arg, r);
	fetch_free(f);
}

static void fetch_fail(struct mtasts_fetch *f, enum mtasts_fetch_status st, const char *reason,
                       const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void fetch_fail(struct mtasts_fetch *f, enum mtasts_fetch_status st, const char *reason,
                       const char *fmt, ...)
{
	struct mtasts_fetch_result r;
	va_list ap;

	memset(&r, 0, sizeof r);
	result_set(&r, st, reason, "%s", "");
	r.body = "";
	va_start(ap, fmt);
	vsnprintf(r.detail, sizeof r.detail, fmt, ap);
	va_end(ap);
	fetch_finish(f, &r);
}

static void fetch_on_https(void *arg, const struct https_result *res)
{
	struct mtasts_fetch *f = arg;
	struct mtasts_fetch_result r;

	f->req = NULL; /* the client frees it after this call */
	mtasts_fetch_classify(res, &r);
	fetch_finish(f, &r);
}

static int64_t remaining_ms(const struct mtasts_fetch *f)
{
	int64_t ms = (f->deadline_us - time_mono_us()) / 1000;

	return ms > 0 ? ms : 1;
}

/* Stops waiting for DNS and fetches from the addresses found. */
static void fetch_start_https(struct mtasts_fetch *f)
{
	const char *addrs[2 * FETCH_ADDRS_MAX];
	size_t n = 0;
	struct https_request_opts o = {
	    .method = HTTPS_GET,
	    .url = f->url,
	    .addrs = addrs,
	    .timeout_ms = remaining_ms(f),
	    .max_body = MTASTS_POLICY_MAX,
	};

	fetch_stop_dns(f);
	for (size_t i = 0; i < f->v6.n; i++)
		addrs[n++] = f->v6.addrs[i];
	for (size_t i = 0; i < f->v4.n; i++)
		addrs[n++] = f->v4.addrs[i];
	o.naddrs = n;
	f->req = https_request(f->http, &o, fetch_on_https, f);
}

/* Both families answered without an address. */
static void fetch_no_address(struct mtasts_fetch *f)
{
	if (f->v6.status == DNS_NOTFOUND && f->v4.status == DNS_NOTFOUND)
		fetch_fail(f, MTASTS_FETCH_NO_POLICY, "no-policy-served", "%s: no A or AAAA record",
		           f->host);
	else
		fetch_fail(f, MTASTS_FETCH_ERROR, "dns-error", "%s: %s; %s", f->host,
		           f->v4.status == DNS_NOTFOUND ? "no A record" : f->v4.error,
		           f->v6.status == DNS_NOTFOUND ? "no AAAA record" : f->v6.error);
}

static void family_record(struct family *fam, const struct dns_answer *a)
{
	fam->q = NULL; /* the resolver frees it after this call */
	fam->answered = true;
	fam->status = a->status;
	fam->nxdomain = a->nxdomain;
	snprintf(fam->error, sizeof fam->error, "%s", a->error);
	for (size_t i = 0; a->status == DNS_OK && i < a->n && fam->n < FETCH_ADDRS_MAX; i++) {
		const struct dns_addr *ad = &a->addrs[i];
		const void *bin =
		    ad->family == AF_INET6 ? (const void *)&ad->v6 : (const void *)&ad->v4;

		if (inet_ntop(ad->family, bin, fam->addrs[fam->n], INET6_ADDRSTRLEN) != NULL)
			fam->n++;
	}
}

static void fetch_on_answer(struct mtasts_fetch *f, struct family *fam, struct family *other,
                            const struct dns_answer *a)
{
	family_record(fam, a);
	/* RFC 8020: nothing exists at or below the name (unless the other
	 * family's addresses say otherwise: the zone changed in between) */
	if (fam->nxdomain && other->n == 0)
		return fetch_fail(f, MTASTS_FETCH_NO_POLICY, "no-policy-served",
		                  "%s: no such host (NXDOMAIN)", f->host);
	if (other->answered) {
		if (fam->n + other->n > 0)
			return fetch_start_https(f);
		return fetch_no_address(f);
	}
	if (fam->n > 0 && !evtimer_pending(f->delay, NULL)) {
		struct timeval tv = {0, RESOLUTION_DELAY_MS * 1000};

		evtimer_add(f->delay, &tv);
	}
}

static void fetch_on_aaaa(void *arg, const struct dns_answer *a)
{
	struct mtasts_fetch *f = arg;

	fetch_on_answer(f, &f->v6, &f->v4, a);
}

static void fetch_on_a(void *arg, const struct dns_answer *a)
{
	struct mtasts_fetch *f = arg;

	fetch_on_answer(f, &f->v4, &f->v6, a);
}

/* The resolution delay ran out (or the domain was unusable). */
static void fetch_on_delay(evutil_socket_t fd, short what, void *arg)
{
	struct mtasts_fetch *f = arg;

	if (f->rejected)
		return fetch_fail(f, MTASTS_FETCH_ERROR, "invalid-domain", "not a domain name: %s",
		                  f->domain);
	fetch_start_https(f);
}

static void fetch_on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct mtasts_fetch *f = arg;
	bool resolving = f->req == NULL;

	fetch_fail(f, MTASTS_FETCH_ERROR, "timeout", "%s: no %s within %lld ms", f->host,
	           resolving ? "address" : "policy",
	           (long long)((time_mono_us() - f->started_us) / 1000));
}

/* An A-label domain (LDH labels of 1-63 octets) that makes a URL host with
 * nothing else in it; a trailing dot is dropped. Lower-cased into buf. */
static bool domain_normalise(const char *domain, char *buf, size_t n)
{
	size_t len = domain ? strlen(domain) : 0, label = 0;

	if (len > 0 && domain[len - 1] == '.')
		len--;
	if (len == 0 || len >= n || len > 253 - 8) /* room for "mta-sts." */
		return false;
	for (size_t i = 0; i < len; i++) {
		char ch = domain[i];

		if (ch == '.') {
			if (label == 0)
				return false;
			label = 0;
		} else if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-') {
			label++;
		} else if (ch >= 'A' && ch <= 'Z') {
			ch = (char)(ch + 32);
			label++;
		} else {
			return false;
		}
		if (label > 63)
			return false;
		buf[i] = ch;
	}
	buf[len] = '\0';
	return label > 0;
}

struct mtasts_fetch *mtasts_fetch(struct dns_resolver *dns, struct https_client *http,
                                  const char *domain, int64_t timeout_ms, uint16_t port,
                                  mtasts_fetch_cb cb, void *arg)
{
	struct mtasts_fetch *f = calloc(1, sizeof *f);
	struct event_base *base = https_client_base(http);
	int64_t ms = timeout_ms > 0 ? timeout_ms : DEFAULT_TIMEOUT_MS;
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

	if (f == NULL)
		abort();
	metrics_init();
	f->dns = dns;
	f->http = http;
	f->cb = cb;
	f->arg = arg;
	f->v6.type = DNS_AAAA;
	f->v4.type = DNS_A;
	f->started_us = time_mono_us();
	f->deadline_us = f->started_us + ms * 1000;
	f->deadline = evtimer_new(base, fetch_on_deadline, f);
	f->delay = evtimer_new(base, fetch_on_delay, f);
	if (f->deadline == NULL || f->delay == NULL)
		abort();
	if (!domain_normalise(domain, f->domain, sizeof f->domain)) {
		snprintf(f->domain, sizeof f->domain, "%.*s", 200, domain ? domain : "(null)");
		f->rejected = true;
		event_active(f->delay, EV_TIMEOUT, 1);
		return f;
	}
	snprintf(f->host, sizeof f->host, "mta-sts.%s", f->domain);
	if (port == 0 || port == 443)
		snprintf(f->url, sizeof f->url, "https://%s" POLICY_PATH, f->host);
	else
		snprintf(f->url, sizeof f->url, "https://%s:%u" POLICY_PATH, f->host, port);
	evtimer_add(f->deadline, &tv);
	f->v6.q = dns_query(dns, f->host, DNS_AAAA, fetch_on_aaaa, f);
	f->v4.q = dns_query(dns, f->host, DNS_A, fetch_on_a, f);
	return f;
}

void mtasts_fetch_cancel(struct mtasts_fetch *f)
{
	if (f == NULL || f->in_callback)
		return;
	fetch_free(f);
}
