/* notice.c - one delivery status notice per message. */
#include "deliver/notice.h"

#include "deliver/retry.h"
#include "dsn/dsn.h"
#include "util/buf.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The original's header section goes into the notice (RFC 6522 §3); past
 * this it is cut, the notice is about delivery, not content. */
#define MAX_ORIGINAL_HEADERS (256 * 1024)

/* The pending recipients, copied out of the spool's rows. */
struct pending {
	struct dsn_recipient *r;
	char **strings; /* every string the recipients point to */
	size_t n, nstrings;
	int last_attempt_no; /* of the first delayed recipient, for the schedule */
	int64_t last_attempt_ms;
};

static const char *keep(struct pending *p, const char *s)
{
	if (s == NULL || s[0] == '\0')
		return NULL;
	char *copy = strdup(s);
	p->strings = realloc(p->strings, (p->nstrings + 1) * sizeof *p->strings);
	if (copy == NULL || p->strings == NULL)
		abort();
	p->strings[p->nstrings++] = copy;
	return copy;
}

static void collect(void *arg, const struct spool_notice_row *row)
{
	struct pending *p = arg;
	p->r = realloc(p->r, (p->n + 1) * sizeof *p->r);
	if (p->r == NULL)
		abort();
	bool delayed = row->notice == SPOOL_NOTICE_DELAY;
	const char *reason = keep(p, row->error);
	p->r[p->n++] = (struct dsn_recipient){
	    .address = keep(p, row->address),
	    .status = keep(p, row->status),
	    .remote_mta = keep(p, row->mx),
	    .remote_ip = keep(p, row->ip),
	    .diagnostic = keep(p, row->diagnostic),
	    .reason = reason ? reason : "delivery failed",
	    .last_attempt_ms = row->last_attempt_ms,
	    .delayed = delayed,
	};
	if (delayed && p->last_attempt_no == 0) {
		p->last_attempt_no = row->attempts;
		p->last_attempt_ms = row->last_attempt_ms;
	}
}

static void pending_free(struct pending *p)
{
	for (size_t i = 0; i < p->nstrings; i++)
		free(p->strings[i]);
	free(p->strings);
	free(p->r);
}

/* The notice as queued: its DKIM-Signature fields first (dsn.c writes
 * From: MAILER-DAEMON@hostname, so the hostname's keys sign it). NULL when
 * it cannot be signed. */
static char *notice_signed(const struct dkim_signer *dkim, char *text, size_t *len,
                           int64_t now_ms, char *why, size_t whylen)
{
	struct buf out = {0};
	int n = dkim_sign_message(dkim, text, *len, "", now_ms / 1000, &out, why, whylen);
	if (n <= 0) {
		buf_free(&out);
		if (n < 0)
			free(text);
		return n < 0 ? NULL : text;
	}
	buf_add(&out, text, *len);
	free(text);
	if (out.failed) {
		buf_free(&out);
		return snprintf(why, whylen, "out of memory"), NULL;
	}
	*len = out.len;
	return out.data;
}

static int queue_notice(struct spool *sp, const struct notice_settings *ns,
                        const struct dkim_signer *dkim, const struct spool_envelope *env,
                        struct pending *p, int64_t now_ms, struct notice_result *res, char *why,
                        size_t whylen)
{
	char *headers = NULL, qid[17];
	size_t hlen = 0;
	int64_t next[64];
	size_t nnext = 0;
	if (spool_body_headers(sp, env->id, MAX_ORIGINAL_HEADERS, &headers, &hlen, why, whylen) < 0)
		return -1;
	if (p->last_attempt_no > 0)
		nnext = retry_remaining(ns->first_retry_ms, ns->max_attempts, p->last_attempt_no,
		                        p->last_attempt_ms, next, 64);
	spool_id_format(env->id, qid);
	struct dsn_report rep = {
	    .utf8 = env->flags & SPOOL_F_SMTPUTF8,
	    .redact = env->flags & SPOOL_F_REQUIRETLS,
	    .reporting_mta = ns->reporting_mta,
	    .original_sender = env->sender,
	    .original_id = qid,
	    .arrival_ms = env->queued_ms,
	    .now_ms = now_ms,
	    .original_headers = headers,
	    .original_headers_len = hlen,
	    .rcpts = p->r,
	    .nrcpt = p->n,
	    .next_attempts_ms = next,
	    .nnext = nnext,
	    .will_retry_until_ms = nnext ? next[nnext - 1] : 0,
	};
	size_t len;
	char *text = dsn_compose(&rep, &len);
	free(headers);
	if (text == NULL) {
		snprintf(why, whylen, "cannot compose the delivery status notice");
		return -1;
	}
	if ((text = notice_signed(dkim, text, &len, now_ms, why, whylen)) == NULL)
		return -1;
	/* The notice of a REQUIRETLS message requires TLS itself (RFC 8689 §5). */
	unsigned flags = SPOOL_F_DSN | (env->flags & (SPOOL_F_SMTPUTF8 | SPOOL_F_REQUIRETLS));
	if (env->flags & SPOOL_F_SMTPUTF8)
		flags |= SPOOL_F_8BIT;
	const char *rcpt = env->sender;
	struct spool_message_in m = {
	    .id = spool_new_id(),
	    .sender = "",
	    .rcpts = &rcpt,
	    .nrcpt = 1,
	    .flags = flags,
	    .client = "dsn",
	    .queued_ms = now_ms,
	    .body = text,
	    .body_len = len,
	};
	int rc = spool_insert_message(sp, &m, why, whylen);
	free(text);
	if (rc == 0)
		res->dsn_id = m.id;
	return rc;
}

struct notice_settings notice_settings_of(const struct conf *conf)
{
	return (struct notice_settings){.reporting_mta = conf->hostname,
	                                .first_retry_ms = conf->first_retry_ms,
	                                .max_attempts = (int)conf->max_attempts};
}

int notice_flush(struct spool *sp, const struct notice_settings *ns, const struct dkim_signer *dkim,
                 uint64_t msg_id, int64_t now_ms, struct notice_result *res, char *why,
                 size_t whylen)
{
	struct spool_envelope env;
	struct pending p = {0};
	memset(res, 0, sizeof *res);
	int64_t flying = spool_in_flight(sp, msg_id, why, whylen);
	if (flying != 0)
		return flying < 0 ? -1 : 0; /* the last attempt to end sends it */
	if (spool_load_envelope(sp, msg_id, &env, why, whylen) < 0 ||
	    spool_notices_take(sp, msg_id, collect, &p, why, whylen) < 0) {
		pending_free(&p);
		return -1;
	}
	int rc = 0;
	for (size_t i = 0; i < p.n; i++)
		p.r[i].delayed ? res->delayed++ : res->failed++;
	if (p.n > 0 && env.sender[0] != '\0')
		rc = queue_notice(sp, ns, dkim, &env, &p, now_ms, res, why, whylen);
	pending_free(&p);
	return rc;
}
