/* host_tls.c - TLS in one delivery attempt (docs/tls.md). */
#include "deliver/host_tls.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- helpers ------------------------------------------------------------------ */

/* Lines joined by "\n" into a fresh string. */
static char *join(size_t n, const char *(*get)(const void *, size_t), const void *arg)
{
	size_t len = 1;
	for (size_t i = 0; i < n; i++)
		len += strlen(get(arg, i)) + 1;
	char *out = malloc(len), *p = out;
	if (out == NULL)
		abort();
	*p = '\0';
	for (size_t i = 0; i < n; i++)
		p += sprintf(p, "%s%s", i ? "\n" : "", get(arg, i));
	return out;
}

static const char *policy_line(const void *p, size_t i)
{
	return mtasts_policy_line(p, i);
}

static const char *policy_mx(const void *p, size_t i)
{
	return mtasts_policy_mx(p, i);
}

static struct tlsrpt_result *result_at(struct attempt_tls *t, int i)
{
	return i >= 0 && (size_t)i < t->results.n ? &t->results.r[i] : NULL;
}

static int result_index(struct attempt_tls *t, const struct tlsrpt_result *r)
{
	return (int)(r - t->results.r);
}

static void add_detail(struct tlsrpt_result *r, const char *result_type, const char *reason,
                       const char *mx, const char *sending_ip, const char *receiving_ip,
                       int64_t count)
{
	if (r == NULL)
		return;
	struct tlsrpt_failure f = {.count = count};
	snprintf(f.result_type, sizeof f.result_type, "%s", result_type);
	snprintf(f.reason, sizeof f.reason, "%s", reason ? reason : "");
	snprintf(f.receiving_mx, sizeof f.receiving_mx, "%s", mx ? mx : "");
	snprintf(f.sending_ip, sizeof f.sending_ip, "%s", sending_ip ? sending_ip : "");
	snprintf(f.receiving_ip, sizeof f.receiving_ip, "%s", receiving_ip ? receiving_ip : "");
	tlsrpt_add_failure(r, &f);
}

static void count_session(struct attempt_tls *t, struct host_tls *h, bool ok)
{
	struct tlsrpt_result *both[2] = {result_at(t, t->domain_result),
	                                 result_at(t, h->host_result)};
	for (int i = 0; i < 2; i++)
		if (both[i]) {
			if (ok)
				both[i]->success++;
			else
				both[i]->failure++;
		}
}

/* ---- the attempt ---------------------------------------------------------------- */

void attempt_tls_init(struct attempt_tls *t, const char *domain, enum tls_demand demand,
                      bool ip_literal, struct sts_result *r)
{
	memset(t, 0, sizeof *t);
	snprintf(t->domain, sizeof t->domain, "%s", domain);
	t->demand = demand;
	t->ip_literal = ip_literal;
	t->domain_result = -1;
	struct sts_policy *p = r ? r->policy : NULL;
	if (r)
		r->policy = NULL;
	if (p && mtasts_policy_mode(p->parsed) != MTASTS_MODE_NONE) {
		t->sts = p;
		t->sts_mode = mtasts_policy_mode(p->parsed) == MTASTS_MODE_ENFORCE ? STS_ENFORCE
		                                                                     : STS_TESTING;
	} else {
		sts_policy_unref(p);
	}
	if (ip_literal)
		return; /* no domain to report to */
	struct tlsrpt_result *res;
	if (t->sts) {
		const struct mtasts_policy *mp = t->sts->parsed;
		char *lines = join(mtasts_policy_line_count(mp), policy_line, mp);
		char *mx = join(mtasts_policy_mx_count(mp), policy_mx, mp);
		res = tlsrpt_set_result(&t->results, TLSRPT_STS, domain, lines, mx);
		free(lines);
		free(mx);
	} else {
		/* a failure to get a policy is still an "sts" matter */
		res = tlsrpt_set_result(&t->results,
		                        r && r->result_type ? TLSRPT_STS : TLSRPT_NO_POLICY, domain,
		                        NULL, NULL);
	}
	t->domain_result = result_index(t, res);
	if (r && r->result_type) {
		add_detail(res, r->result_type, r->reason, NULL, NULL, NULL,
		           r->temporary_failure ? 1 : 0);
		if (r->temporary_failure)
			res->failure++;
	}
}

void attempt_tls_clear(struct attempt_tls *t)
{
	sts_policy_unref(t->sts);
	tlsrpt_set_clear(&t->results);
	t->sts = NULL;
}

void attempt_tls_destinations(struct attempt_tls *t, const struct destinations *d)
{
	/* RFC 8689 §4.2.1 and RFC 7672 §2.2.1: the MX list (or the NODATA
	 * that makes the domain its own host), and every CNAME before it */
	t->mx_authentic = d->orig_authentic && d->expanded_authentic;
}

void attempt_tls_pool_tag(const struct attempt_tls *t, char *buf, size_t n)
{
	snprintf(buf, n, "%s/%d/%d", t->sts ? t->sts->id : "-", t->sts_mode, t->demand);
}

/* ---- one host ----------------------------------------------------------------- */

void host_tls_begin(struct attempt_tls *t, struct host_tls *h, const char *host)
{
	host_tls_clear(h);
	snprintf(h->host, sizeof h->host, "%s", host);
	h->host_result = -1;
	h->situation = (struct tls_situation){
	    .sts = t->sts_mode,
	    .sts_listed = t->sts && mtasts_policy_matches_mx(t->sts->parsed, host),
	    .demand = t->demand,
	    .ip_literal = t->ip_literal,
	};
	if (t->sts && !h->situation.sts_listed) {
		/* RFC 8461 §4.2; counted as a failed session when the host is
		 * skipped for it */
		bool skipped = t->sts_mode == STS_ENFORCE && t->demand != TLS_DEMAND_OPTIONAL;
		struct tlsrpt_result *d = result_at(t, t->domain_result);
		add_detail(d, "validation-failure", "mtasts-policy-mx-mismatch", host, NULL, NULL,
		           skipped ? 1 : 0);
		if (d && skipped)
			d->failure++;
	}
}

bool host_tls_wants_tlsa(const struct attempt_tls *t, const struct host_tls *h,
                         const struct host_ips *ips, bool dane_enabled)
{
	return dane_enabled && !t->ip_literal && h->host[0] != '[' && ips->authentic &&
	       ips->expanded_authentic;
}

static int record_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* RFC 8460 §4.4: the TLSA records as "usage selector mtype hex", sorted. */
static char *tlsa_strings(const struct host_tls *h)
{
	char **lines = calloc(h->nrecords + 1, sizeof *lines);
	size_t n = 0;
	if (lines == NULL)
		abort();
	for (size_t i = 0; i < h->nrecords; i++) {
		const struct tls_tlsa *r = &h->records[i];
		if (!tls_tlsa_usable(r))
			continue;
		char *s = malloc(16 + r->len * 2);
		if (s == NULL)
			abort();
		int k = sprintf(s, "%u %u %u ", r->usage, r->selector, r->mtype);
		for (size_t j = 0; j < r->len; j++)
			k += sprintf(s + k, "%02x", r->data[j]);
		lines[n++] = s;
	}
	qsort(lines, n, sizeof *lines, record_cmp);
	size_t len = 1;
	for (size_t i = 0; i < n; i++)
		len += strlen(lines[i]) + 1;
	char *out = malloc(len), *p = out;
	if (out == NULL)
		abort();
	*p = '\0';
	for (size_t i = 0; i < n; i++) {
		p += sprintf(p, "%s%s", i ? "\n" : "", lines[i]);
		free(lines[i]);
	}
	free(lines);
	return out;
}

/* RFC 8914 code and text as a failure-reason-code. */
static void ede_reason(const struct host_tlsa *tlsa, char *buf, size_t n)
{
	if (tlsa->ede < 0) {
		snprintf(buf, n, "tlsa-lookup-failed");
		return;
	}
	int k = snprintf(buf, n, "dns-extended-error-%d", tlsa->ede);
	if (tlsa->ede_text[0] == '\0' || k < 0 || (size_t)k + 1 >= n)
		return;
	buf[k++] = '-';
	for (const char *s = tlsa->ede_text; *s && (size_t)k + 1 < n; s++)
		buf[k++] = isalnum((unsigned char)*s) ? (char)tolower((unsigned char)*s) : '-';
	buf[k] = '\0';
}

static void add_name(struct host_tls *h, const char *name)
{
	if (name == NULL || name[0] == '\0' || h->peer.nnames >= HOST_TLS_NAMES)
		return;
	for (size_t i = 0; i < h->peer.nnames; i++)
		if (strcasecmp(h->names[i], name) == 0)
			return;
	snprintf(h->names[h->peer.nnames], DNS_NAME_MAX, "%s", name);
	h->name_list[h->peer.nnames] = h->names[h->peer.nnames];
	h->peer.nnames++;
}

/* Who the certificate may name. With TLSA records: the TLSA base domain
 * first (it is the SNI, RFC 7672 §3.2.3), the MX host name, and the
 * recipient domain only when the MX list is signed (RFC 7672 §3.2.2: an
 * unsigned MX list proves nothing about the domain). Otherwise the MX
 * host name (RFC 8461 §4.2). */
static void build_peer(struct attempt_tls *t, struct host_tls *h)
{
	h->peer = (struct tls_peer_policy){.auth = h->plan.auth, .names = h->name_list};
	if (h->host[0] == '[')
		return; /* an address literal: no name, no SNI (RFC 6066 §3) */
	if (h->tlsa && h->tlsa->result == TLSA_FOUND) {
		add_name(h, h->tlsa->base);
		add_name(h, h->host);
		if (t->mx_authentic)
			add_name(h, t->domain);
		h->peer.tlsa = h->records;
		h->peer.ntlsa = h->nrecords;
	} else {
		add_name(h, h->host);
	}
	h->peer.sni = h->names[0];
}

static enum dane_state dane_state_of(struct host_tls *h)
{
	if (h->tlsa == NULL)
		return DANE_NOT_ELIGIBLE;
	switch (h->tlsa->result) {
	case TLSA_FAILED:
		return DANE_LOOKUP_FAILED;
	case TLSA_FOUND:
		return h->usable > 0 ? DANE_USABLE : DANE_UNUSABLE;
	default:
		return DANE_NO_RECORDS;
	}
}

static void take_records(struct host_tls *h)
{
	if (h->tlsa == NULL || h->tlsa->n == 0)
		return;
	h->records = calloc(h->tlsa->n, sizeof *h->records);
	if (h->records == NULL)
		abort();
	for (size_t i = 0; i < h->tlsa->n; i++) {
		const struct dns_tlsa *d = &h->tlsa->records[i];
		h->records[i] = (struct tls_tlsa){d->usage, d->selector, d->mtype, d->data, d->len};
	}
	h->nrecords = h->tlsa->n;
	h->usable = tls_tlsa_count_usable(h->records, h->nrecords);
}

static void record_host_result(struct attempt_tls *t, struct host_tls *h)
{
	if (t->ip_literal)
		return;
	struct tlsrpt_result *r;
	if (h->tlsa && h->tlsa->result != TLSA_NONE) {
		char *strings = tlsa_strings(h);
		r = tlsrpt_set_result(&t->results, TLSRPT_TLSA, h->tlsa->base, strings, h->host);
		free(strings);
	} else {
		r = tlsrpt_set_result(&t->results, TLSRPT_NO_POLICY,
		                      h->tlsa ? h->tlsa->base : h->host, NULL, NULL);
	}
	h->host_result = result_index(t, r);
	if (h->tlsa && h->tlsa->result == TLSA_FOUND && h->usable == 0)
		add_detail(r, "tlsa-invalid", "all-unusable-records", h->host, NULL, NULL, 0);
	if (h->tlsa && h->tlsa->result == TLSA_FAILED) {
		char reason[128];
		ede_reason(h->tlsa, reason, sizeof reason);
		bool skipped = !h->plan.dial;
		add_detail(r, "dnssec-invalid", reason, h->host, NULL, NULL, skipped ? 1 : 0);
		if (skipped)
			count_session(t, h, false);
	}
}

void host_tls_decide(struct attempt_tls *t, struct host_tls *h, const struct host_ips *ips,
                     struct host_tlsa *tlsa)
{
	h->tlsa = tlsa;
	take_records(h);
	h->situation.dane = dane_state_of(h);
	h->situation.mx_authentic = t->mx_authentic;
	tls_plan_decide(&h->situation, h->host, &h->plan);
	build_peer(t, h);
	record_host_result(t, h);
}

/* ---- a connection's outcome ---------------------------------------------------- */

/* A verification failure belongs to the policy that asked for it: DANE's
 * to the host's result, PKIX's to the domain's (RFC 8460 §4.3). */
static struct tlsrpt_result *owner_of(struct attempt_tls *t, struct host_tls *h)
{
	return result_at(t, h->plan.auth == TLS_AUTH_DANE ? h->host_result : t->domain_result);
}

bool host_tls_record(struct attempt_tls *t, struct host_tls *h, enum smtp_tls_mode mode,
                     const struct smtp_server_info *info, const struct smtp_client_error *err,
                     const char *remote_ip)
{
	if (mode == SMTP_TLS_SKIP || t->ip_literal)
		return false;
	const char *me = info ? info->local_ip : NULL;
	struct tlsrpt_result *dom = result_at(t, t->domain_result), *host = result_at(t, h->host_result);
	if (err == NULL || err->kind == SMTP_ERR_NONE) {
		/* Opportunistic, and no STARTTLS offered: a failure only where a
		 * policy (testing mode) wanted TLS; no session otherwise. */
		if (!info->tls_tried) {
			bool policy = t->sts_mode == STS_TESTING;
			add_detail(dom, "starttls-not-supported", "", h->host, me, remote_ip, policy);
			add_detail(host, "starttls-not-supported", "", h->host, me, remote_ip, policy);
			if (policy)
				count_session(t, h, false);
			return false;
		}
		/* A session whose verification failed counts as a failed one, also
		 * when it went on: under a testing policy, or "TLS-Required: No"
		 * (RFC 8460 §4.4: the totals agree with the details). */
		const struct tls_peer_result *v = &info->verdict;
		if (h->plan.auth != TLS_AUTH_NONE && !v->authenticated) {
			add_detail(owner_of(t, h), v->failure.result_type ? v->failure.result_type
			                                                  : "validation-failure",
			           v->failure.reason, h->host, me, remote_ip, 1);
			count_session(t, h, false);
			return true;
		}
		if (h->plan.auth == TLS_AUTH_NONE && t->sts_mode == STS_TESTING && !v->pkix_ok) {
			add_detail(dom, v->pkix.result_type ? v->pkix.result_type : "validation-failure",
			           v->pkix.reason, h->host, me, remote_ip, 1);
			count_session(t, h, false);
			return false;
		}
		count_session(t, h, true);
		return false;
	}
	if (err->kind != SMTP_ERR_TLS)
		return false;
	char reason[64];
	count_session(t, h, false);
	switch (err->tls) {
	case SMTP_TLS_REFUSED:
	case SMTP_TLS_NOT_OFFERED:
		snprintf(reason, sizeof reason, "smtp-starttls-reply-code-%d", err->code);
		add_detail(dom, "starttls-not-supported", reason, h->host, me, remote_ip, 1);
		add_detail(host, "starttls-not-supported", reason, h->host, me, remote_ip, 1);
		break;
	case SMTP_TLS_UNVERIFIED: {
		const struct tls_failure *f = &info->verdict.failure;
		add_detail(owner_of(t, h), f->result_type ? f->result_type : "validation-failure",
		           f->reason, h->host, me, remote_ip, 1);
		break;
	}
	default: {
		const char *why = err->kind == SMTP_ERR_TIMEOUT || strstr(err->text, "within")
		                      ? "io-timeout-during-handshake"
		                      : "tls-handshake-failed";
		add_detail(dom, "validation-failure", why, h->host, me, remote_ip, 1);
		add_detail(host, "validation-failure", why, h->host, me, remote_ip, 1);
		break;
	}
	}
	return false;
}

void host_tls_describe(const struct host_tls *h, const struct smtp_server_info *info,
                       char *verified, size_t vlen, char *detail, size_t dlen)
{
	verified[0] = detail[0] = '\0';
	if (info == NULL || !info->tls)
		return;
	const struct tls_peer_result *v = &info->verdict;
	switch (v->method) {
	case TLS_METHOD_DANE_EE:
	case TLS_METHOD_DANE_TA:
		snprintf(verified, vlen, "%s", v->method == TLS_METHOD_DANE_EE ? "DANE-EE" : "DANE-TA");
		snprintf(detail, dlen, "%s", v->dane_record);
		return;
	case TLS_METHOD_PKIX:
		snprintf(verified, vlen, "PKIX");
		return;
	default:
		break;
	}
	snprintf(verified, vlen, "unverified");
	if (h && h->plan.auth != TLS_AUTH_NONE)
		snprintf(detail, dlen, "TLS-Required: No: %s %s",
		         v->failure.result_type ? v->failure.result_type : "not verified",
		         v->failure.reason);
	else if (v->pkix_ok)
		snprintf(detail, dlen, "PKIX-valid certificate, not required");
	else if (v->pkix.result_type)
		snprintf(detail, dlen, "%s %s", v->pkix.result_type, v->pkix.reason);
}

void host_tls_clear(struct host_tls *h)
{
	host_tlsa_free(h->tlsa);
	free(h->records);
	memset(h, 0, sizeof *h);
	h->host_result = -1;
}
