/* tlsa.c - the TLSA records of one MX host (RFC 7672 §2.2). */
#include "dns/tlsa.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct tlsa_lookup {
	struct dns_resolver *r;
	struct dns_query *q;
	char names[2][DNS_NAME_MAX]; /* asked in this order */
	int nnames, asked;
	int port;
	struct host_tlsa *t;
	tlsa_callback cb;
	void *arg;
};

static void finish(struct tlsa_lookup *l)
{
	struct host_tlsa *t = l->t;
	tlsa_callback cb = l->cb;
	void *arg = l->arg;
	free(l);
	cb(arg, t);
}

static void take_records(struct host_tlsa *t, const struct dns_answer *a)
{
	t->records = calloc(a->n, sizeof *t->records);
	if (t->records == NULL)
		abort();
	for (size_t i = 0; i < a->n; i++) {
		t->records[i] = a->tlsa[i];
		t->records[i].data = malloc(a->tlsa[i].len ? a->tlsa[i].len : 1);
		if (t->records[i].data == NULL)
			abort();
		memcpy(t->records[i].data, a->tlsa[i].data, a->tlsa[i].len);
	}
	t->n = a->n;
}

static void ask(struct tlsa_lookup *l);

static void on_answer(void *arg, const struct dns_answer *a)
{
	struct tlsa_lookup *l = arg;
	struct host_tlsa *t = l->t;
	const char *name = l->names[l->asked - 1];
	l->q = NULL;
	if (a->status == DNS_TEMPFAIL || a->status == DNS_MALFORMED) {
		t->result = TLSA_FAILED;
		t->ede = a->ede;
		snprintf(t->ede_text, sizeof t->ede_text, "%s", a->ede_text);
		snprintf(t->error, sizeof t->error, "TLSA lookup for _%d._tcp.%.100s: %.60s", l->port, name,
		         a->error);
		snprintf(t->base, sizeof t->base, "%s", name);
		return finish(l);
	}
	if (a->status == DNS_OK && a->n > 0 && a->authentic) {
		t->result = TLSA_FOUND;
		snprintf(t->base, sizeof t->base, "%s", name);
		take_records(t, a);
		return finish(l);
	}
	/* none here, or not signed: the next name, else no DANE */
	if (l->asked < l->nnames)
		return ask(l);
	t->result = TLSA_NONE;
	snprintf(t->base, sizeof t->base, "%s", l->names[0]);
	finish(l);
}

static void ask(struct tlsa_lookup *l)
{
	char qname[DNS_NAME_MAX + 16];
	snprintf(qname, sizeof qname, "_%d._tcp.%s", l->port, l->names[l->asked++]);
	l->q = dns_query(l->r, qname, DNS_TLSA, on_answer, l);
}

struct tlsa_lookup *tlsa_lookup(struct dns_resolver *r, const char *host, const char *expanded,
                                int port, tlsa_callback cb, void *arg)
{
	struct tlsa_lookup *l = calloc(1, sizeof *l);
	if (l == NULL || (l->t = calloc(1, sizeof *l->t)) == NULL)
		abort();
	l->r = r;
	l->port = port;
	l->cb = cb;
	l->arg = arg;
	l->t->ede = -1;
	if (expanded && expanded[0] && strcasecmp(expanded, host) != 0)
		snprintf(l->names[l->nnames++], DNS_NAME_MAX, "%s", expanded);
	snprintf(l->names[l->nnames++], DNS_NAME_MAX, "%s", host);
	ask(l);
	return l;
}

void tlsa_lookup_cancel(struct tlsa_lookup *l)
{
	if (l == NULL)
		return;
	if (l->q)
		dns_cancel(l->q);
	host_tlsa_free(l->t);
	free(l);
}

void host_tlsa_free(struct host_tlsa *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->n; i++)
		free(t->records[i].data);
	free(t->records);
	free(t);
}
