/* check.c - `outpost check DOMAIN [--json]`: the report of check/report.h,
 * printed as text or as JSON. */
#include "cli/check.h"

#include "check/report.h"
#include "util/log.h"

#include <curl/curl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool flag(const json_t *o, const char *key)
{
	return json_is_true(json_object_get(o, key));
}

static const char *str(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "-";
}

static void print_mta_sts(const json_t *m)
{
	if (m == NULL)
		return;
	const json_t *rec = json_object_get(m, "record"), *f = json_object_get(m, "fetched"),
	             *cached = json_object_get(m, "cached");
	printf("MTA-STS record: %s%s%s\n", str(rec, "status"),
	       json_object_get(rec, "id") ? " id=" : "",
	       json_object_get(rec, "id") ? str(rec, "id") : "");
	if (f) {
		const json_t *p = json_object_get(f, "policy");
		printf("MTA-STS policy fetched now: %s", str(f, "status"));
		if (p)
			printf(", mode %s, max_age %" JSON_INTEGER_FORMAT, str(p, "mode"),
			       json_integer_value(json_object_get(p, "max_age")));
		if (json_object_get(f, "reason"))
			printf(" (%s: %s)", str(f, "result_type"), str(f, "reason"));
		putchar('\n');
	}
	if (json_is_null(cached))
		printf("MTA-STS policy cached: none\n");
	else if (json_object_get(cached, "unavailable"))
		printf("MTA-STS policy cached: unknown (%s)\n", str(cached, "unavailable"));
	else
		printf("MTA-STS policy cached: id %s%s, valid until %s%s\n", str(cached, "id"),
		       flag(cached, "backoff") ? " (back-off after a failed fetch)" : "",
		       str(cached, "valid_until"), flag(cached, "valid") ? "" : " (expired)");
}

static void print_host(const json_t *h)
{
	printf("\nMX %s (preference %" JSON_INTEGER_FORMAT ")\n", str(h, "host"),
	       json_integer_value(json_object_get(h, "preference")));
	size_t i;
	json_t *v;
	printf("  addresses:");
	json_array_foreach(json_object_get(h, "addresses"), i, v)
	    printf(" %s", json_string_value(v));
	printf(" (DNSSEC: %s)\n", flag(h, "dnssec") ? "signed" : "not signed");
	if (json_object_get(h, "mta_sts_listed"))
		printf("  listed by the MTA-STS policy: %s\n",
		       flag(h, "mta_sts_listed") ? "yes" : "no");
	const json_t *t = json_object_get(h, "tlsa");
	if (json_is_object(t)) {
		printf("  TLSA (%s): %s\n", str(t, "base_domain"), str(t, "status"));
		json_array_foreach(json_object_get(t, "records"), i, v)
		    printf("    %s%s\n", str(v, "record"), flag(v, "usable") ? "" : "  (unusable)");
	}
	printf("  policy: %s\n", str(h, "policy"));
	const json_t *c = json_object_get(h, "connection");
	if (json_is_object(c)) {
		printf("  connection to %s: ", str(c, "ip"));
		const json_t *match = json_object_get(c, "dane_match");
		if (json_object_get(c, "tls_version"))
			printf("%s %s, certificate %s%s%s, PKIX %s\n", str(c, "tls_version"),
			       str(c, "tls_cipher"), str(c, "verified"),
			       json_is_string(match) ? " by " : "",
			       json_is_string(match) ? json_string_value(match) : "",
			       flag(c, "pkix_valid") ? "valid" : "not valid");
		else
			printf("%s\n", json_object_get(c, "error") ? str(c, "error") : "plaintext");
		const json_t *f = json_object_get(c, "verification_failure");
		if (f)
			printf("  verification failed: %s %s\n", str(f, "result_type"),
			       str(f, "reason"));
		json_array_foreach(json_object_get(c, "chain"), i, v)
		    printf("    [%zu] %s (issuer %s, until %s)\n", i, str(v, "subject"),
		           str(v, "issuer"), str(v, "not_after"));
		printf("  REQUIRETLS announced: %s\n",
		       flag(c, "requiretls_offered") ? "yes" : "no");
	}
	const json_t *rt = json_object_get(h, "requiretls");
	printf("  REQUIRETLS mail: %s\n",
	       flag(rt, "qualifies") ? "can be delivered" : str(rt, "why"));
	printf("  decision: %s\n", str(h, "decision"));
}

static void print_report(const json_t *r)
{
	const json_t *mx = json_object_get(r, "mx_list");
	printf("domain %s\n", str(r, "domain"));
	if (json_object_get(mx, "error") && !json_is_null(json_object_get(mx, "error")))
		printf("MX lookup failed: %s\n", str(mx, "error"));
	else
		printf("MX list: %s%s\n",
		       flag(mx, "dnssec") ? "DNSSEC-signed" : "not DNSSEC-signed",
		       flag(mx, "implicit_mx") ? " (no MX: the domain itself)" : "");
	print_mta_sts(json_object_get(r, "mta_sts"));
	size_t i;
	json_t *h;
	json_array_foreach(json_object_get(r, "hosts"), i, h) print_host(h);
}

static int check_usage(const char *fmt, const char *arg)
{
	if (fmt) {
		fputs("outpost: ", stderr);
		fprintf(stderr, fmt, arg);
		fputc('\n', stderr);
	}
	fprintf(stderr, "usage: outpost check DOMAIN [--json]\n");
	return 2;
}

int cli_check(int argc, char **argv, const struct conf *conf)
{
	static const struct option opts[] = {{"json", no_argument, NULL, 'j'}, {NULL, 0, NULL, 0}};
	bool json = false;
	int opt;
	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		if (opt != 'j')
			return check_usage("unknown option %s", argv[optind - 1]);
		json = true;
	}
	if (argc - optind != 1)
		return check_usage(argc - optind < 1 ? "which domain?" : "one domain only%s", "");
	char domain[256];
	if (!check_domain_normalize(argv[optind], domain, sizeof domain))
		return check_usage("not a domain: %s", argv[optind]);

	log_set_level(LOG_ERROR);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	char why[256];
	bool deliverable = false;
	int rc = 1;
	json_t *report = check_report_run(conf, domain, NULL, &deliverable, why, sizeof why);
	if (report == NULL) {
		fprintf(stderr, "outpost: %s\n", why);
	} else {
		if (json) {
			json_dumpf(report, stdout, JSON_INDENT(2));
			putchar('\n');
		} else {
			print_report(report);
		}
		json_decref(report);
		rc = fflush(stdout) == 0 && deliverable ? 0 : 1;
	}
	curl_global_cleanup();
	return rc;
}
