/* results.c - TLS results as RFC 8460 §4.4 counts them. */
#include "tls/results.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *dup_or_empty(const char *s)
{
	char *d = strdup(s ? s : "");
	if (d == NULL)
		abort();
	return d;
}

struct tlsrpt_result *tlsrpt_set_result(struct tlsrpt_set *set, enum tlsrpt_policy_type type,
                                        const char *domain, const char *strings,
                                        const char *mx_hosts)
{
	const char *s = strings ? strings : "", *m = mx_hosts ? mx_hosts : "";
	for (size_t i = 0; i < set->n; i++) {
		struct tlsrpt_result *r = &set->r[i];
		if (r->type == type && strcmp(r->domain, domain) == 0 && strcmp(r->strings, s) == 0 &&
		    strcmp(r->mx_hosts, m) == 0)
			return r;
	}
	struct tlsrpt_result *grown = realloc(set->r, (set->n + 1) * sizeof *grown);
	if (grown == NULL)
		abort();
	set->r = grown;
	struct tlsrpt_result *r = &set->r[set->n++];
	memset(r, 0, sizeof *r);
	r->type = type;
	snprintf(r->domain, sizeof r->domain, "%s", domain);
	r->strings = dup_or_empty(s);
	r->mx_hosts = dup_or_empty(m);
	return r;
}

static bool same_detail(const struct tlsrpt_failure *a, const struct tlsrpt_failure *b)
{
	return strcmp(a->result_type, b->result_type) == 0 &&
	       strcmp(a->sending_ip, b->sending_ip) == 0 &&
	       strcmp(a->receiving_mx, b->receiving_mx) == 0 &&
	       strcmp(a->receiving_ip, b->receiving_ip) == 0 && strcmp(a->reason, b->reason) == 0;
}

void tlsrpt_add_failure(struct tlsrpt_result *r, const struct tlsrpt_failure *f)
{
	for (size_t i = 0; i < r->nfail; i++)
		if (same_detail(&r->fail[i], f)) {
			r->fail[i].count += f->count;
			return;
		}
	struct tlsrpt_failure *grown = realloc(r->fail, (r->nfail + 1) * sizeof *grown);
	if (grown == NULL)
		abort();
	r->fail = grown;
	r->fail[r->nfail++] = *f;
}

void tlsrpt_set_merge(struct tlsrpt_set *set, const struct tlsrpt_result *r)
{
	struct tlsrpt_result *mine =
	    tlsrpt_set_result(set, r->type, r->domain, r->strings, r->mx_hosts);
	mine->success += r->success;
	mine->failure += r->failure;
	for (size_t i = 0; i < r->nfail; i++)
		tlsrpt_add_failure(mine, &r->fail[i]);
}

void tlsrpt_set_clear(struct tlsrpt_set *set)
{
	for (size_t i = 0; i < set->n; i++) {
		free(set->r[i].strings);
		free(set->r[i].mx_hosts);
		free(set->r[i].fail);
	}
	free(set->r);
	set->r = NULL;
	set->n = 0;
}

bool tlsrpt_result_worth_keeping(const struct tlsrpt_result *r)
{
	return r->success > 0 || r->failure > 0 || r->nfail > 0;
}

static const char *const type_names[] = {
    [TLSRPT_NO_POLICY] = "no-policy-found",
    [TLSRPT_STS] = "sts",
    [TLSRPT_TLSA] = "tlsa",
};

const char *tlsrpt_policy_type_name(enum tlsrpt_policy_type t)
{
	return (unsigned)t <= TLSRPT_TLSA ? type_names[t] : "no-policy-found";
}

int tlsrpt_policy_type_parse(const char *name)
{
	for (int t = TLSRPT_NO_POLICY; t <= TLSRPT_TLSA; t++)
		if (strcmp(name, type_names[t]) == 0)
			return t;
	return -1;
}

/* "a\nb" -> ["a", "b"]; "" -> [] */
static json_t *lines_json(const char *joined)
{
	json_t *a = json_array();
	const char *p = joined;
	while (*p) {
		size_t n = strcspn(p, "\n");
		json_array_append_new(a, json_stringn(p, n));
		p += n;
		if (*p == '\n')
			p++;
	}
	return a;
}

static json_t *failure_json(const struct tlsrpt_failure *f)
{
	json_t *o = json_object();
	json_object_set_new(o, "result-type", json_string(f->result_type));
	json_object_set_new(o, "sending-mta-ip", json_string(f->sending_ip));
	json_object_set_new(o, "receiving-mx-hostname", json_string(f->receiving_mx));
	json_object_set_new(o, "receiving-ip", json_string(f->receiving_ip));
	json_object_set_new(o, "failed-session-count", json_integer(f->count));
	json_object_set_new(o, "failure-reason-code", json_string(f->reason));
	return o;
}

json_t *tlsrpt_result_json(const struct tlsrpt_result *r)
{
	json_t *policy = json_object();
	json_object_set_new(policy, "policy-type", json_string(tlsrpt_policy_type_name(r->type)));
	json_object_set_new(policy, "policy-string", lines_json(r->strings));
	json_object_set_new(policy, "policy-domain", json_string(r->domain));
	json_object_set_new(policy, "mx-host", lines_json(r->mx_hosts));
	json_t *summary = json_object();
	json_object_set_new(summary, "total-successful-session-count", json_integer(r->success));
	json_object_set_new(summary, "total-failure-session-count", json_integer(r->failure));
	json_t *details = json_array();
	for (size_t i = 0; i < r->nfail; i++)
		json_array_append_new(details, failure_json(&r->fail[i]));
	json_t *o = json_object();
	json_object_set_new(o, "policy", policy);
	json_object_set_new(o, "summary", summary);
	json_object_set_new(o, "failure-details", details);
	return o;
}
