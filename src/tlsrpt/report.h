/* report.h - one daily TLS report (RFC 8460 §4) for one policy domain: the
 * JSON, its gzip, and the mail that carries it (§5.3).
 *
 * Pure composition: the caller gathers the day's results (spool/tls_rows.h)
 * and decides where the report goes (tlsrpt/record.h); sending is
 * tlsrpt/sender.c's.
 */
#ifndef OUTPOST_TLSRPT_REPORT_H
#define OUTPOST_TLSRPT_REPORT_H

#include "tls/results.h"

#include <jansson.h>
#include <stddef.h>

struct tlsrpt_report_info {
	const char *organization; /* organization-name */
	const char *contact;      /* contact-info */
	const char *submitter;    /* our domain: report-id, TLS-Report-Submitter, From */
	const char *policy_domain;
	const char *day; /* "YYYY-MM-DD", UTC */
};

/* The report (RFC 8460 §4.4): organization-name, date-range of the UTC day,
 * contact-info, report-id "<day>.<policy domain>@<submitter>", and the
 * policies. New reference. */
json_t *tlsrpt_report_json(const struct tlsrpt_report_info *info,
                           const struct tlsrpt_result *results, size_t n);

/* gzip (RFC 1952) of len octets; NULL on failure. The caller frees. */
unsigned char *tlsrpt_gzip(const void *data, size_t len, size_t *outlen);

/* The mail (RFC 8460 §5.3): multipart/report; report-type="tlsrpt" with a
 * short text part and the gzipped JSON as application/tlsrpt+gzip, the
 * TLS-Report-Domain and TLS-Report-Submitter fields, TLS-Required: No
 * (a report must get through where TLS fails, §5.3), From
 * postmaster@<submitter> to the given addresses. now_ms dates it. Returns
 * the message (CRLF lines) or NULL; the caller frees. */
char *tlsrpt_report_mail(const struct tlsrpt_report_info *info, const char *const *to,
                         size_t nto, const unsigned char *gz, size_t gzlen, const char *hostname,
                         int64_t now_ms, size_t *len);

/* "<submitter>!<policy domain>!<begin>!<end>.json.gz" (§5.3). */
void tlsrpt_report_filename(const struct tlsrpt_report_info *info, char *buf, size_t n);

#endif
