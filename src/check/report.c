/* report.c - what delivery to a domain would do, as JSON (see report.h). */
#include "check/report.h"

#include "deliver/client.h"
#include "deliver/host_tls.h"
#include "dns/destinations.h"
#include "dns/dns.h"
#include "dns/tlsa.h"
#include "mtasts/cache.h"
#include "mtasts/fetch.h"
#include "mtasts/policy.h"
#include "spool/spool.h"
#include "spool/sts_rows.h"
#include "tls/tls.h"
#include "util/https.h"
#include "util/log.h"
#include "util/timeutil.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_HOSTS        10
#define CHAIN_MAX        8
#define PROBE_TIMEOUT_MS 20000
#define STOP_POLL_MS     100 /* how soon a stop request is seen */

struct check {
	struct event_base *base;
	const struct conf *conf;
	const atomic_bool *stop; /* NULL: never asked to stop */
	struct event *stop_poll; /* wakes the loop to look at stop */
	struct dns_resolver *dns;
	struct https_client *https;
	SSL_CTX *tls;
	bool done; /* the step waited for has finished */
	/* what the last step produced */
	struct destinations *dests;
	struct host_ips *ips;
	struct host_tlsa *tlsa;
	json_t *step;
	struct smtp_client *client;
};

static bool stopped(const struct check *c)
{
	return c->stop && atomic_load(c->stop);
}

/* Runs the loop until the current step says it is done (true), or until
 * asked to stop (false: the caller cancels the step, whose callback then
 * never runs). Every step has its own timeout (DNS, HTTPS, SMTP), so this
 * ends; the stop poll timer wakes the loop to look at stop meanwhile. */
static bool wait_step(struct check *c)
{
	while (!c->done) {
		if (stopped(c))
			return false;
		event_base_loop(c->base, EVLOOP_ONCE);
	}
	c->done = false;
	return true;
}

static void set_str(json_t *o, const char *key, const char *v)
{
	json_object_set_new(o, key, v ? json_string(v) : json_null());
}

/* ---- destinations ------------------------------------------------------------- */

static void on_dests(void *arg, struct destinations *d, bool ok)
{
	struct check *c = arg;
	c->dests = d;
	c->done = true;
}

static json_t *mx_list_json(const struct destinations *d, bool ok)
{
	json_t *o = json_object();
	json_object_set_new(o, "dnssec",
	                    json_boolean(ok && d->orig_authentic && d->expanded_authentic));
	json_object_set_new(o, "implicit_mx", json_boolean(ok && !d->have_mx));
	set_str(o, "expanded", ok ? d->expanded : NULL);
	set_str(o, "error", ok ? NULL : d->error);
	return o;
}

/* ---- MTA-STS ------------------------------------------------------------------- */

static void on_txt(void *arg, const struct dns_answer *a)
{
	struct check *c = arg;
	json_t *o = c->step;
	struct mtasts_record rec;
	char why[160] = "";
	if (a->status == DNS_NOTFOUND) {
		set_str(o, "status", "none");
	} else if (a->status != DNS_OK) {
		set_str(o, "status", "lookup-failed");
		set_str(o, "detail", a->error);
	} else {
		static const char *const names[] = {"ok", "none", "multiple", "syntax-error"};
		enum mtasts_record_status st =
		    mtasts_record_find((const char *const *)a->txt, a->n, &rec, why, sizeof why);
		set_str(o, "status", names[st]);
		if (st == MTASTS_RECORD_OK)
			set_str(o, "id", rec.id);
		else if (why[0])
			set_str(o, "detail", why);
	}
	c->done = true;
}

static void on_fetch(void *arg, const struct mtasts_fetch_result *r)
{
	struct check *c = arg;
	json_t *o = c->step;
	set_str(o, "status", mtasts_fetch_status_name(r->status));
	set_str(o, "result_type", r->result_type);
	set_str(o, "reason", r->reason[0] ? r->reason : NULL);
	set_str(o, "detail", r->detail[0] ? r->detail : NULL);
	if (r->status == MTASTS_FETCH_OK)
		json_object_set_new(o, "text", json_stringn(r->body, r->body_len));
	c->done = true;
}

static json_t *policy_json(const struct mtasts_policy *p)
{
	json_t *o = json_object(), *mx = json_array();
	set_str(o, "mode", mtasts_mode_name(mtasts_policy_mode(p)));
	json_object_set_new(o, "max_age", json_integer(mtasts_policy_max_age(p)));
	for (size_t i = 0; i < mtasts_policy_mx_count(p); i++)
		json_array_append_new(mx, json_string(mtasts_policy_mx(p, i)));
	json_object_set_new(o, "mx", mx);
	return o;
}

/* What the spool has cached, when this user may read it. */
static json_t *cached_json(const struct check *c, const char *domain, struct sts_policy **cached)
{
	char path[4096], why[256];
	snprintf(path, sizeof path, "%s/spool.db", c->conf->data_dir);
	if (access(path, F_OK) != 0)
		return json_pack("{s:s}", "unavailable", "no spool yet");
	if (access(path, R_OK | W_OK) != 0)
		return json_pack("{s:s}", "unavailable", "the spool is not readable by this user");
	struct spool *s = spool_open(c->conf->data_dir, why, sizeof why);
	if (s == NULL)
		return json_pack("{s:s}", "unavailable", why);
	struct sts_row row;
	int found = spool_sts_get(s, domain, &row, why, sizeof why);
	spool_close(s);
	if (found <= 0)
		return found < 0 ? json_pack("{s:s}", "unavailable", why) : json_null();
	char fetched[32], until[32];
	time_format_rfc3339(row.fetched_ms, fetched, sizeof fetched);
	time_format_rfc3339(row.valid_until_ms, until, sizeof until);
	bool valid = row.valid_until_ms > time_now_ms();
	json_t *o = json_pack("{s:s, s:s, s:s, s:b, s:b}", "id", row.record_id, "fetched", fetched,
	                      "valid_until", until, "valid", valid, "backoff", row.backoff);
	if (!row.backoff) {
		*cached = sts_policy_new(row.policy, row.record_id, why, sizeof why);
		if (*cached)
			json_object_set_new(o, "policy", policy_json((*cached)->parsed));
		if (!valid) {
			sts_policy_unref(*cached);
			*cached = NULL;
		}
	}
	sts_row_clear(&row);
	return o;
}

/* The record, the policy fetched now and the cached one; the policy that
 * delivery would use goes to *use (the fetched one, else a valid cached one). */
static json_t *mta_sts(struct check *c, const char *domain, struct sts_policy **use)
{
	json_t *o = json_object(), *rec = json_object();
	char name[300];
	snprintf(name, sizeof name, "_mta-sts.%s", domain);
	c->step = rec;
	struct dns_query *q = dns_query(c->dns, name, DNS_TXT, on_txt, c);
	if (!wait_step(c))
		dns_cancel(q);
	json_object_set_new(o, "record", rec);
	struct sts_policy *fetched = NULL, *cached = NULL;
	const char *status = json_string_value(json_object_get(rec, "status"));
	if (status && strcmp(status, "ok") == 0) {
		json_t *f = json_object();
		c->step = f;
		struct mtasts_fetch *mf = mtasts_fetch(
		    c->dns, c->https, domain, c->conf->mtasts_fetch_timeout_ms, 443, on_fetch, c);
		if (!wait_step(c))
			mtasts_fetch_cancel(mf);
		const char *text = json_string_value(json_object_get(f, "text"));
		char why[160];
		if (text) {
			const char *id = json_string_value(json_object_get(rec, "id"));
			fetched = sts_policy_new(text, id ? id : "", why, sizeof why);
			if (fetched)
				json_object_set_new(f, "policy", policy_json(fetched->parsed));
			else
				set_str(f, "parse_error", why);
		}
		json_object_set_new(o, "fetched", f);
	}
	if (!stopped(c))
		json_object_set_new(o, "cached", cached_json(c, domain, &cached));
	*use = fetched ? fetched : cached;
	sts_policy_unref(fetched ? cached : NULL);
	return o;
}

/* ---- one host ------------------------------------------------------------------ */

static void on_ips(void *arg, struct host_ips *ips, bool ok)
{
	struct check *c = arg;
	c->ips = ips;
	if (!ok) {
		json_object_set_new(c->step, "address_error", json_string(ips->error));
		host_ips_free(ips);
		c->ips = NULL;
	}
	c->done = true;
}

static void on_tlsa(void *arg, struct host_tlsa *t)
{
	struct check *c = arg;
	c->tlsa = t;
	c->done = true;
}

static json_t *addresses_json(const struct host_ips *ips)
{
	json_t *a = json_array();
	for (size_t i = 0; ips && i < ips->n; i++) {
		char ip[64];
		dns_addr_format(&ips->addrs[i], ip, sizeof ip);
		json_array_append_new(a, json_string(ip));
	}
	return a;
}

static json_t *tlsa_json(const struct host_tls *h)
{
	if (h->tlsa == NULL)
		return json_null();
	static const char *const names[] = {"none", "found", "lookup-failed"};
	json_t *o = json_object(), *recs = json_array();
	set_str(o, "status", names[h->tlsa->result]);
	set_str(o, "base_domain", h->tlsa->base);
	if (h->tlsa->result == TLSA_FAILED)
		set_str(o, "error", h->tlsa->error);
	for (size_t i = 0; i < h->nrecords; i++) {
		const struct tls_tlsa *r = &h->records[i];
		char *hex = malloc(r->len * 2 + 1);
		if (hex == NULL)
			abort();
		for (size_t k = 0; k < r->len; k++)
			sprintf(hex + 2 * k, "%02x", r->data[k]);
		hex[r->len * 2] = '\0';
		char line[48];
		snprintf(line, sizeof line, "%u %u %u ", r->usage, r->selector, r->mtype);
		json_t *rec =
		    json_pack("{s:s+, s:b}", "record", line, hex, "usable", tls_tlsa_usable(r));
		json_array_append_new(recs, rec);
		free(hex);
	}
	json_object_set_new(o, "records", recs);
	return o;
}

static void on_ready(void *arg, struct smtp_client *cl, bool ok, const struct smtp_client_error *e)
{
	struct check *c = arg;
	json_t *o = c->step;
	const struct smtp_server_info *info = smtp_client_info(cl);
	const struct tls_peer_result *v = &info->verdict;
	json_object_set_new(o, "starttls_offered", json_boolean(info->starttls || info->tls));
	json_object_set_new(o, "tls", json_boolean(info->tls));
	if (!ok) {
		char text[700];
		smtp_client_error_format(e, text, sizeof text);
		set_str(o, "error", text);
	}
	if (info->tls_tried) {
		set_str(o, "tls_version", info->tls_version);
		set_str(o, "tls_cipher", info->tls_cipher);
		json_object_set_new(o, "resumed", json_boolean(v->resumed));
		static const char *const methods[] = {"unverified", "PKIX", "DANE-TA", "DANE-EE"};
		set_str(o, "verified", v->authenticated ? methods[v->method] : "unverified");
		set_str(o, "dane_match", v->dane_record[0] ? v->dane_record : NULL);
		if (v->failure.result_type)
			json_object_set_new(o, "verification_failure",
			                    json_pack("{s:s, s:s}", "result_type",
			                              v->failure.result_type, "reason",
			                              v->failure.reason));
		json_object_set_new(o, "pkix_valid", json_boolean(v->pkix_ok));
		if (!v->pkix_ok && v->pkix.result_type)
			json_object_set_new(o, "pkix_failure",
			                    json_pack("{s:s, s:s}", "result_type",
			                              v->pkix.result_type, "reason",
			                              v->pkix.reason));
		struct tls_cert_summary chain[CHAIN_MAX];
		size_t n = smtp_client_peer_chain(cl, chain, CHAIN_MAX);
		json_t *ch = json_array();
		for (size_t i = 0; i < n; i++)
			json_array_append_new(
			    ch, json_pack("{s:s, s:s, s:s}", "subject", chain[i].subject, "issuer",
			                  chain[i].issuer, "not_after", chain[i].not_after));
		json_object_set_new(o, "chain", ch);
	}
	json_object_set_new(o, "requiretls_offered", json_boolean(info->requiretls && info->tls));
	if (ok) /* a probe: no QUIT to wait for */
		smtp_client_abort(cl);
	c->done = true;
}

/* Connects to the host's first address as delivery would (STARTTLS with
 * the plan's verification), but never fails the handshake on the verdict:
 * the point is to show it. */
static json_t *probe(struct check *c, const struct host_tls *h, const struct dns_addr *addr)
{
	json_t *o = json_object();
	char ip[64];
	dns_addr_format(addr, ip, sizeof ip);
	set_str(o, "ip", ip);
	struct sockaddr_storage ss = {0};
	socklen_t len;
	if (addr->family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;
		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)c->conf->delivery_port);
		in->sin_addr = addr->v4;
		len = sizeof *in;
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)c->conf->delivery_port);
		in6->sin6_addr = addr->v6;
		len = sizeof *in6;
	}
	struct smtp_client_config cfg = {
	    .ehlo_name = c->conf->hostname,
	    .server_name = h->host[0] == '[' ? NULL : h->host,
	    .tls_mode = SMTP_TLS_OPPORTUNISTIC,
	    .tls_ctx = c->tls,
	    .tls_policy = &h->peer,
	    .connect_timeout_ms = c->conf->connect_timeout_ms < PROBE_TIMEOUT_MS
	                              ? c->conf->connect_timeout_ms
	                              : PROBE_TIMEOUT_MS,
	    .command_timeout_ms = PROBE_TIMEOUT_MS,
	    .data_timeout_ms = PROBE_TIMEOUT_MS,
	    .tls_timeout_ms = PROBE_TIMEOUT_MS,
	};
	c->step = o;
	struct smtp_client *cl =
	    smtp_client_connect(c->base, (struct sockaddr *)&ss, len, &cfg, on_ready, c);
	if (cl == NULL) {
		set_str(o, "error", "cannot set up a connection");
		return o;
	}
	if (!wait_step(c))
		smtp_client_abort(cl);
	return o;
}

static bool flag(const json_t *o, const char *key)
{
	return json_is_true(json_object_get(o, key));
}

/* What delivery would do with this host, from the plan and what the probe
 * saw; true when it would deliver. */
static bool decide(const struct host_tls *h, const json_t *conn, char *out, size_t n)
{
	const struct tls_plan *p = &h->plan;
	if (!p->dial)
		return snprintf(out, n, "skip: %s (%s)", p->why, p->enhanced), false;
	if (conn == NULL)
		return snprintf(out, n, "defer: no address to connect to"), false;
	const char *err = json_string_value(json_object_get(conn, "error"));
	bool tls = flag(conn, "tls") || json_object_get(conn, "tls_version");
	if (!tls && p->mode == SMTP_TLS_REQUIRED)
		return snprintf(out, n, "defer: TLS is required (%s) but %s",
		                tls_governor_name(p->governor),
		                flag(conn, "starttls_offered") ? "the handshake failed"
		                                               : "STARTTLS is not offered"),
		       false;
	if (err && !tls && flag(conn, "starttls_offered"))
		return snprintf(out, n, "deliver in plaintext after the failed handshake (%s)",
		                err),
		       true;
	if (err && strstr(err, "connect"))
		return snprintf(out, n, "defer: %s", err), false;
	const char *verified = json_string_value(json_object_get(conn, "verified"));
	if (tls && p->enforce && (verified == NULL || strcmp(verified, "unverified") == 0)) {
		const json_t *f = json_object_get(conn, "verification_failure");
		return snprintf(out, n, "defer: certificate not verified (%s): %s %s",
		                tls_governor_name(p->governor),
		                f ? json_string_value(json_object_get(f, "result_type"))
		                  : "no match",
		                f ? json_string_value(json_object_get(f, "reason")) : ""),
		       false;
	}
	if (err)
		return snprintf(out, n, "defer: %s", err), false;
	if (!tls)
		return snprintf(out, n, "deliver in plaintext (no STARTTLS offered)"), true;
	snprintf(out, n, "deliver over TLS, %s (%s)",
	         verified && strcmp(verified, "unverified") != 0 ? verified : "unauthenticated",
	         tls_governor_name(p->governor));
	return true;
}

/* RFC 8689 §4.2.1, with what the probe saw. */
static bool requiretls_ok(const struct host_tls *h, const json_t *conn, char *why, size_t n)
{
	struct tls_situation s = h->situation;
	struct tls_plan p;
	s.demand = TLS_DEMAND_REQUIRETLS;
	tls_plan_decide(&s, h->host, &p);
	if (!p.dial)
		return snprintf(why, n, "%s", p.why), false;
	if (conn == NULL || !json_object_get(conn, "tls_version"))
		return snprintf(why, n, "no TLS session"), false;
	const char *verified = json_string_value(json_object_get(conn, "verified"));
	bool dane = verified && strncmp(verified, "DANE", 4) == 0;
	if (p.auth == TLS_AUTH_DANE ? !dane : !flag(conn, "pkix_valid"))
		return snprintf(why, n, "the certificate does not verify (%s)",
		                p.auth == TLS_AUTH_DANE ? "DANE" : "PKIX"),
		       false;
	if (!flag(conn, "requiretls_offered"))
		return snprintf(why, n, "REQUIRETLS is not announced"), false;
	return snprintf(why, n, "yes"), true;
}

static json_t *check_host(struct check *c, struct attempt_tls *t, const struct dest_host *d,
                          bool *deliverable)
{
	struct host_tls h = {0};
	json_t *o = json_object();
	host_tls_begin(t, &h, d->name);
	set_str(o, "host", d->name);
	json_object_set_new(o, "preference", json_integer(d->preference));
	if (t->sts)
		json_object_set_new(o, "mta_sts_listed", json_boolean(h.situation.sts_listed));
	struct host_ips *ips = NULL;
	if (d->is_ip) {
		ips = calloc(1, sizeof *ips);
		if (ips == NULL || (ips->addrs = malloc(sizeof *ips->addrs)) == NULL)
			abort();
		ips->addrs[0] = d->addr;
		ips->n = 1;
	} else {
		c->step = o;
		struct gather *g = gather_ips(c->dns, d->name, NULL, 0, on_ips, c);
		if (!wait_step(c))
			gather_cancel(g);
		ips = c->ips;
		c->ips = NULL;
	}
	json_object_set_new(o, "addresses", addresses_json(ips));
	json_object_set_new(o, "dnssec",
	                    json_boolean(ips && ips->authentic && ips->expanded_authentic));
	struct host_tlsa *tlsa = NULL;
	if (ips && host_tls_wants_tlsa(t, &h, ips, c->conf->dane_enabled)) {
		struct tlsa_lookup *l = tlsa_lookup(c->dns, d->name, ips->expanded,
		                                    (int)c->conf->delivery_port, on_tlsa, c);
		if (!wait_step(c))
			tlsa_lookup_cancel(l);
		tlsa = c->tlsa;
		c->tlsa = NULL;
	}
	if (ips)
		host_tls_decide(t, &h, ips, tlsa);
	else
		host_tlsa_free(tlsa);
	h.peer.pkix_always = true; /* the report gives PKIX's verdict under DANE too */
	json_object_set_new(o, "tlsa", tlsa_json(&h));
	set_str(o, "policy", tls_governor_name(h.plan.governor));
	json_t *conn = ips && ips->n ? probe(c, &h, &ips->addrs[0]) : NULL;
	json_object_set_new(o, "connection", conn ? conn : json_null());
	char decision[600], rt[300];
	if (ips)
		*deliverable |= decide(&h, conn, decision, sizeof decision);
	else
		snprintf(decision, sizeof decision,
		         "defer: the host's addresses cannot be resolved");
	set_str(o, "decision", decision);
	bool rok = ips && requiretls_ok(&h, conn, rt, sizeof rt);
	json_object_set_new(o, "requiretls", json_pack("{s:b, s:s}", "qualifies", rok, "why", rt));
	host_tls_clear(&h);
	host_ips_free(ips);
	return o;
}

/* ---- the report ------------------------------------------------------------------ */

/* The steps in order; a stop leaves the report unfinished. */
static json_t *run(struct check *c, const char *domain, bool *deliverable)
{
	json_t *out = json_object();
	set_str(out, "domain", domain);
	struct gather *g = gather_destinations(c->dns, domain, on_dests, c);
	if (!wait_step(c)) {
		gather_cancel(g);
		return out;
	}
	bool ok = c->dests && c->dests->error[0] == '\0' && c->dests->n > 0;
	json_object_set_new(out, "mx_list", mx_list_json(c->dests, ok));
	struct sts_policy *sts = NULL;
	bool literal = domain[0] == '[';
	if (c->conf->mtasts_enabled && !literal)
		json_object_set_new(out, "mta_sts", mta_sts(c, domain, &sts));
	struct sts_result r = {.policy = sts};
	struct attempt_tls t;
	attempt_tls_init(&t, domain, TLS_DEMAND_DEFAULT, literal, &r);
	json_t *hosts = json_array();
	if (ok) {
		attempt_tls_destinations(&t, c->dests);
		for (size_t i = 0; i < c->dests->n && i < MAX_HOSTS && !stopped(c); i++)
			json_array_append_new(hosts,
			                      check_host(c, &t, &c->dests->hosts[i], deliverable));
	}
	json_object_set_new(out, "hosts", hosts);
	attempt_tls_clear(&t);
	destinations_free(c->dests);
	c->dests = NULL;
	return out;
}

bool check_domain_normalize(const char *in, char *out, size_t outlen)
{
	size_t n = 0;
	for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
		/* letters, digits, hyphens, underscores, dots; [..:..] literals;
		 * UTF-8 (a U-label): never a space, a control byte or a slash */
		bool ok = *p >= 0x80 || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		          (*p >= '0' && *p <= '9') || strchr("-_.[]:", *p) != NULL;
		if (!ok || n + 1 >= outlen)
			return false;
		out[n++] = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
	}
	out[n] = '\0';
	if (n > 0 && out[n - 1] == '.')
		out[--n] = '\0';
	return n > 0;
}

static void on_stop_poll(evutil_socket_t fd, short what, void *arg)
{
	/* nothing: waking event_base_loop is the point (wait_step looks) */
}

json_t *check_report_run(const struct conf *conf, const char *domain, const atomic_bool *stop,
                         bool *deliverable, char *why, size_t whylen)
{
	struct check c = {.conf = conf, .stop = stop, .base = event_base_new()};
	json_t *report = NULL;
	*deliverable = false;
	if (c.base == NULL) {
		snprintf(why, whylen, "cannot make an event loop");
		return NULL;
	}
	if ((c.dns = dns_resolver_new(c.base, conf, why, whylen)) == NULL ||
	    (c.https = https_client_new(c.base, conf->ca_file, why, whylen)) == NULL ||
	    (c.tls = tls_client_ctx_new(conf->ca_file, why, whylen)) == NULL)
		goto out;
	if (stop) {
		struct timeval tv = {0, STOP_POLL_MS * 1000};
		c.stop_poll = event_new(c.base, -1, EV_PERSIST, on_stop_poll, NULL);
		event_add(c.stop_poll, &tv);
	}
	report = run(&c, domain, deliverable);
	if (stopped(&c)) {
		snprintf(why, whylen, "the check was stopped");
		json_decref(report);
		report = NULL;
	}
out:
	if (c.stop_poll)
		event_free(c.stop_poll);
	if (c.tls)
		SSL_CTX_free(c.tls);
	https_client_free(c.https);
	if (c.dns)
		dns_resolver_free(c.dns);
	event_base_free(c.base);
	return report;
}
