/* sender.h - the daily TLS reports (RFC 8460 §3, §5) and their delivery.
 *
 * Once a day, shortly after 00:00 UTC, and at start-up for the days before
 * (so that a restart never skips one), every policy domain with results
 * worth a report for that day gets one: its _smtp._tls record is looked
 * up (tlsrpt/record.h), the report composed (tlsrpt/report.h) and, in one
 * spool transaction, the report is marked done and queued: as a mail to
 * the mailto: destinations (DKIM-signed with the submitter domain's keys,
 * TLS-Required: No, at most 5 attempts) and as POSTs to the https:
 * destinations, which this module makes and retries on the delivery
 * schedule. Marking and queueing share the commit, so a crash neither
 * loses a report nor sends it twice; a report marked done is never made
 * again. A domain without a record (or with two) is marked done with that
 * outcome; a DNS failure leaves it for the next run. The details are in
 * docs/tlsrpt.md.
 */
#ifndef OUTPOST_TLSRPT_SENDER_H
#define OUTPOST_TLSRPT_SENDER_H

#include "conf/conf.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct event_base;
struct spool;
struct spool_writer;
struct dkim_signer;

struct tlsrpt_sender_config {
	struct event_base *base;
	const struct conf *conf;
	struct spool *reader; /* read on the loop thread */
	struct spool_writer *writer;
	const struct dkim_signer *dkim;
	void (*queued)(void *arg); /* a report message was queued: wake delivery */
	void *queued_arg;
	bool schedule; /* run daily by itself ([tlsrpt] enabled); else only on request */
};

struct tlsrpt_sender;

struct tlsrpt_sender *tlsrpt_sender_start(const struct tlsrpt_sender_config *cfg, char *why,
                                          size_t whylen);
/* Drops what is in progress (nothing half-queued: queueing is one commit). */
void tlsrpt_sender_free(struct tlsrpt_sender *s);

/* Called once with what a run did: a JSON array of {"domain", "outcome",
 * "destinations": [...]} (new reference, or NULL when the run could not
 * start, why says why). */
typedef void (*tlsrpt_run_cb)(void *arg, json_t *done, const char *why);

/* Makes the reports of day ("YYYY-MM-DD") now; dry_run composes them and
 * says where they would go, but queues and marks nothing. One run at a
 * time: false when one is in progress. */
bool tlsrpt_sender_run(struct tlsrpt_sender *s, const char *day, bool dry_run, tlsrpt_run_cb cb,
                       void *arg);

/* The report of domain for day as it would be sent (RFC 8460 §4.4), from
 * the spool, without DNS: new reference, or NULL with why. */
json_t *tlsrpt_sender_report(struct tlsrpt_sender *s, const char *domain, const char *day,
                             char *why, size_t whylen);

/* The submitter: [tlsrpt] submitter, else the first of the hostname and its
 * parent domains that has DKIM keys, else the hostname. */
void tlsrpt_submitter(const struct conf *conf, const struct dkim_signer *dkim, char *buf,
                      size_t n);

#endif
