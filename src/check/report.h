/* report.h - what delivery to a domain would do, and why, as JSON
 * (docs/tls.md, "Seeing every decision"): `outpost check DOMAIN` prints it
 * (cli/check.h), GET /api/v1/check?domain=D answers it (admin/check_api.h).
 *
 * Resolves the domain as delivery does (MX hosts, their addresses, DNSSEC
 * status, TLSA records), looks up and fetches its MTA-STS policy now and
 * reads the one the spool has cached, decides each host's TLS plan with the
 * table delivery uses (deliver/tls_policy.h), then connects to each host and
 * records the TLS version, the certificate chain, the DANE match or why there
 * is none, the PKIX result, whether REQUIRETLS is announced and what delivery
 * would do.
 *
 * check_report_run blocks until the report is complete: it drives an
 * event_base of its own, with its own resolver, HTTPS client and TLS context,
 * step by step (each step has its own timeout, so it ends). It shares nothing
 * with the thread that calls it, so the daemon runs it on a thread of its own.
 */
#ifndef OUTPOST_CHECK_REPORT_H
#define OUTPOST_CHECK_REPORT_H

#include "conf/conf.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

/* The domain as the report wants it, into out: lower case, without a
 * trailing dot. False when it is empty, too long for out, or holds a byte no
 * domain or address literal has (a space, a control character, a slash...). */
bool check_domain_normalize(const char *in, char *out, size_t outlen);

/* The report on domain (normalized); *deliverable tells whether delivery
 * would find a host that takes the mail. stop (NULL: never) is polled a few
 * times a second: once it is true, the step under way is cancelled and NULL
 * returned. NULL with why filled also when the resolver, HTTPS client or TLS
 * context cannot be set up. The caller owns the report (json_decref). */
json_t *check_report_run(const struct conf *conf, const char *domain, const atomic_bool *stop,
                         bool *deliverable, char *why, size_t whylen);

#endif
