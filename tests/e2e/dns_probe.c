/* dns_probe.c - drives src/dns/ against a live resolver for the end-to-end
 * DNS scenarios (tests/e2e/test_dns.sh). Prints one JSON object per run.
 *
 *   dns_probe NAMESERVER KIND NAME [DIALED-IP...]
 *     NAMESERVER  "127.0.0.1:25353" (trust_ad = auto, so loopback is trusted),
 *                 "-" for the servers of /etc/resolv.conf
 *     KIND        mx | a | aaaa | tlsa | txt | cname   one query, raw answer
 *                 destinations                         gather_destinations
 *                 ips                                  gather_ips (DIALED-IPs: history)
 * Exit status 0 when the probe ran (whatever the DNS said), 2 on usage.
 */
#include "conf/conf.h"
#include "dns/destinations.h"
#include "dns/dns.h"

#include <event2/event.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct event_base *base;
static json_t *result;

static const char *status_name(enum dns_status s)
{
	switch (s) {
	case DNS_OK:
		return "ok";
	case DNS_NOTFOUND:
		return "notfound";
	case DNS_TEMPFAIL:
		return "tempfail";
	case DNS_MALFORMED:
		return "malformed";
	}
	return "?";
}

static json_t *addr_json(const struct dns_addr *a)
{
	char buf[64];

	dns_addr_format(a, buf, sizeof(buf));
	return json_string(buf);
}

static json_t *record_json(const struct dns_answer *a, enum dns_type t, size_t i)
{
	char buf[DNS_NAME_MAX + 16];

	switch (t) {
	case DNS_MX:
		snprintf(buf, sizeof(buf), "%u %s", a->mx[i].preference, a->mx[i].host);
		return json_string(buf);
	case DNS_A:
	case DNS_AAAA:
		return addr_json(&a->addrs[i]);
	case DNS_TLSA: {
		const struct dns_tlsa *r = &a->tlsa[i];
		char *s = malloc(16 + 2 * r->len);
		size_t o = (size_t)sprintf(s, "%u %u %u ", r->usage, r->selector, r->mtype);
		json_t *j;

		for (size_t k = 0; k < r->len; k++)
			o += (size_t)sprintf(s + o, "%02x", r->data[k]);
		j = json_string(s);
		free(s);
		return j;
	}
	case DNS_TXT:
		return json_string(a->txt[i]);
	case DNS_CNAME:
		return json_string(a->cname);
	}
	return json_null();
}

static void on_answer(void *arg, const struct dns_answer *a)
{
	enum dns_type t = *(enum dns_type *)arg;
	json_t *records = json_array();

	for (size_t i = 0; i < a->n; i++)
		json_array_append_new(records, record_json(a, t, i));
	result = json_pack("{s:s, s:i, s:b, s:b, s:i, s:s, s:I, s:s, s:o, s:s}", "status",
	                   status_name(a->status), "rcode", a->rcode, "nxdomain", a->nxdomain,
	                   "authentic", a->authentic, "ede", a->ede, "ede_text", a->ede_text, "ttl",
	                   (json_int_t)a->ttl, "canonical", a->canonical, "records", records,
	                   "error", a->error);
	event_base_loopbreak(base);
}

static void on_destinations(void *arg, struct destinations *d, bool ok)
{
	json_t *hosts = json_array();

	for (size_t i = 0; i < d->n; i++)
		json_array_append_new(hosts, json_pack("{s:s, s:b, s:i}", "name", d->hosts[i].name,
		                                       "is_ip", d->hosts[i].is_ip, "preference",
		                                       d->hosts[i].preference));
	result =
	    json_pack("{s:b, s:b, s:b, s:b, s:s, s:o, s:b, s:s, s:s, s:i}", "ok", ok, "have_mx",
	              d->have_mx, "orig_authentic", d->orig_authentic, "expanded_authentic",
	              d->expanded_authentic, "expanded", d->expanded, "hosts", hosts, "permanent",
	              d->permanent, "enhanced", d->enhanced, "error", d->error, "ede", d->ede);
	destinations_free(d);
	event_base_loopbreak(base);
}

static void on_ips(void *arg, struct host_ips *ips, bool ok)
{
	json_t *addrs = json_array();

	for (size_t i = 0; i < ips->n; i++)
		json_array_append_new(addrs, addr_json(&ips->addrs[i]));
	result = json_pack("{s:b, s:b, s:b, s:s, s:b, s:o, s:b, s:s, s:s, s:i}", "ok", ok,
	                   "authentic", ips->authentic, "expanded_authentic",
	                   ips->expanded_authentic, "expanded", ips->expanded, "dualstack",
	                   ips->dualstack, "addrs", addrs, "permanent", ips->permanent, "enhanced",
	                   ips->enhanced, "error", ips->error, "ede", ips->ede);
	host_ips_free(ips);
	event_base_loopbreak(base);
}

static bool kind_type(const char *kind, enum dns_type *t)
{
	static const struct {
		const char *name;
		enum dns_type type;
	} kinds[] = {{"mx", DNS_MX},     {"a", DNS_A},     {"aaaa", DNS_AAAA},
	             {"tlsa", DNS_TLSA}, {"txt", DNS_TXT}, {"cname", DNS_CNAME}};

	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		if (strcmp(kinds[i].name, kind) == 0) {
			*t = kinds[i].type;
			return true;
		}
	}
	return false;
}

int main(int argc, char **argv)
{
	struct conf c;
	struct dns_resolver *r;
	struct dns_addr dialed[16];
	size_t nd = 0;
	char why[256] = "";
	enum dns_type t;
	struct timeval limit = {40, 0};
	int rc = 0;

	if (argc < 4) {
		fprintf(stderr, "usage: dns_probe NAMESERVER mx|a|aaaa|tlsa|txt|cname|destinations|"
		                "ips NAME [DIALED-IP...]\n");
		return 2;
	}
	for (int i = 4; i < argc && nd < 16; i++)
		if (!dns_addr_parse(argv[i], &dialed[nd++]))
			return 2;
	base = event_base_new();
	conf_defaults(&c);
	if (strcmp(argv[1], "-") != 0) /* "-": /etc/resolv.conf */
		strlist_add(&c.dns_nameserver, argv[1]);
	r = dns_resolver_new(base, &c, why, sizeof(why));
	if (r == NULL) {
		fprintf(stderr, "dns_probe: %s\n", why);
		return 1;
	}
	if (kind_type(argv[2], &t))
		dns_query(r, argv[3], t, on_answer, &t);
	else if (strcmp(argv[2], "destinations") == 0)
		gather_destinations(r, argv[3], on_destinations, NULL);
	else if (strcmp(argv[2], "ips") == 0)
		gather_ips(r, argv[3], dialed, nd, on_ips, NULL);
	else
		return 2;
	event_base_loopexit(base, &limit);
	event_base_dispatch(base);
	if (result != NULL) {
		char *s = json_dumps(result, JSON_COMPACT);

		printf("%s\n", s);
		free(s);
		json_decref(result);
	} else {
		printf("{\"status\": \"no result\"}\n");
		rc = 1;
	}
	dns_resolver_free(r);
	conf_free(&c);
	event_base_free(base);
	return rc;
}
