/* mtasts_fetch_test.c - the MTA-STS policy fetch (src/mtasts/fetch.c):
 * how HTTPS results become RFC 8460 outcomes and reason codes, and the DNS
 * half against a scripted DNS server on the same loop (NXDOMAIN, NODATA,
 * SERVFAIL, a family that never answers, the whole-fetch deadline, cancel).
 * Live HTTPS servers are in tests/e2e/test_mtasts_fetch.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "conf/conf.h"
#include "dns/dns.h"
#include "mtasts/fetch.h"
#include "util/https.h"
#include "util/timeutil.h"
#include "run_loop.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <ldns/ldns.h>
#include <netinet/in.h>
#include <openssl/x509_vfy.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- classification ------------------------------------------------------ */

static struct mtasts_fetch_result classify(enum https_outcome o, long status, long verify)
{
	struct https_result r = {.outcome = o, .status = status, .verify_result = verify};
	struct mtasts_fetch_result out;

	r.body = "version: STSv1\r\n";
	r.body_len = strlen(r.body);
	r.content_type = "text/plain; charset=utf-8";
	snprintf(r.reason, sizeof r.reason, "details");
	mtasts_fetch_classify(&r, &out);
	return out;
}

static void assert_outcome(struct mtasts_fetch_result r, enum mtasts_fetch_status st,
                           const char *reason)
{
	assert_int_equal(r.status, st);
	assert_string_equal(r.reason, reason);
}

static void test_200_is_the_policy_with_its_body(void **state)
{
	struct mtasts_fetch_result r = classify(HTTPS_RESPONSE, 200, 0);

	assert_outcome(r, MTASTS_FETCH_OK, "");
	assert_null(r.result_type);
	assert_string_equal(r.body, "version: STSv1\r\n");
	assert_int_equal(r.body_len, 16);
	assert_string_equal(r.content_type, "text/plain; charset=utf-8");
}

static void test_404_means_no_policy_even_with_a_big_page(void **state)
{
	assert_outcome(classify(HTTPS_RESPONSE, 404, 0), MTASTS_FETCH_NO_POLICY,
	               "no-policy-served");
	assert_outcome(classify(HTTPS_TOO_LARGE, 404, 0), MTASTS_FETCH_NO_POLICY,
	               "no-policy-served");
	assert_string_equal(classify(HTTPS_RESPONSE, 404, 0).result_type, "sts-policy-fetch-error");
}

static void test_other_statuses_are_fetch_errors_named_by_status(void **state)
{
	struct mtasts_fetch_result r = classify(HTTPS_RESPONSE, 500, 0);

	assert_outcome(r, MTASTS_FETCH_ERROR, "http-status-500");
	assert_string_equal(r.result_type, "sts-policy-fetch-error");
	assert_string_equal(r.body, ""); /* only a policy carries its body */
	assert_outcome(classify(HTTPS_RESPONSE, 204, 0), MTASTS_FETCH_ERROR, "http-status-204");
	assert_outcome(classify(HTTPS_TOO_LARGE, 503, 0), MTASTS_FETCH_ERROR, "http-status-503");
}

static void test_oversized_policy_is_too_large(void **state)
{
	assert_outcome(classify(HTTPS_TOO_LARGE, 200, 0), MTASTS_FETCH_ERROR, "too-large");
}

static void test_transport_failures_are_fetch_errors(void **state)
{
	assert_outcome(classify(HTTPS_REDIRECT, 301, 0), MTASTS_FETCH_ERROR, "redirect");
	assert_outcome(classify(HTTPS_TIMEOUT, 0, 0), MTASTS_FETCH_ERROR, "timeout");
	assert_outcome(classify(HTTPS_CONNECT_FAILED, 0, 0), MTASTS_FETCH_ERROR, "connect-failed");
	assert_outcome(classify(HTTPS_TLS_FAILED, 0, 0), MTASTS_FETCH_ERROR, "tls-error");
	assert_outcome(classify(HTTPS_OTHER, 0, 0), MTASTS_FETCH_ERROR, "fetch-failed");
	assert_string_equal(classify(HTTPS_TIMEOUT, 0, 0).detail, "details");
}

static void test_certificate_failures_are_webpki_invalid(void **state)
{
	struct mtasts_fetch_result r = classify(HTTPS_CERT_INVALID, 0, X509_V_ERR_CERT_HAS_EXPIRED);

	assert_outcome(r, MTASTS_FETCH_WEBPKI_INVALID, "certificate-expired");
	assert_string_equal(r.result_type, "sts-webpki-invalid");
	assert_int_equal(r.verify_result, X509_V_ERR_CERT_HAS_EXPIRED);
	assert_outcome(classify(HTTPS_CERT_INVALID, 0, X509_V_ERR_HOSTNAME_MISMATCH),
	               MTASTS_FETCH_WEBPKI_INVALID, "certificate-host-mismatch");
	assert_outcome(
	    classify(HTTPS_CERT_INVALID, 0, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY),
	    MTASTS_FETCH_WEBPKI_INVALID, "certificate-not-trusted");
}

static void test_webpki_reasons_follow_the_verify_result(void **state)
{
	static const struct {
		long verify;
		const char *reason;
	} table[] = {
	    {X509_V_ERR_CERT_HAS_EXPIRED, "certificate-expired"},
	    {X509_V_ERR_CERT_NOT_YET_VALID, "certificate-expired+not-yet-valid"},
	    {X509_V_ERR_HOSTNAME_MISMATCH, "certificate-host-mismatch"},
	    {X509_V_ERR_IP_ADDRESS_MISMATCH, "certificate-host-mismatch"},
	    {X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT, "certificate-not-trusted"},
	    {X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN, "certificate-not-trusted"},
	    {X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT, "certificate-not-trusted"},
	    {X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY, "certificate-not-trusted"},
	    {X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE, "certificate-not-trusted"},
	    {X509_V_ERR_CERT_REVOKED, "certificate-not-trusted+x509-verify-error-23"},
	    {X509_V_ERR_INVALID_PURPOSE, "certificate-not-trusted+x509-verify-error-26"},
	};
	char buf[96];

	for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
		mtasts_webpki_reason(table[i].verify, buf, sizeof buf);
		assert_string_equal(buf, table[i].reason);
	}
	assert_string_equal(mtasts_fetch_status_name(MTASTS_FETCH_WEBPKI_INVALID),
	                    "webpki-invalid");
}

/* ---- the DNS half, against a scripted server ------------------------------- */

/* What the server says for mta-sts.<name>: per family, an address, an
 * rcode with no records, or nothing at all. */
struct script {
	const char *domain;
	const char *a;    /* "127.0.0.1", "-" NODATA, "nx" NXDOMAIN, "sf" SERVFAIL, NULL silent */
	const char *aaaa; /* the same for AAAA */
};

static const struct script scripts[] = {
    {"nx.test", "nx", NULL},
    {"nodata.test", "-", "-"},
    {"servfail.test", "sf", "sf"},
    {"v4only.test", "127.0.0.1", NULL},
    {"v6broken.test", "127.0.0.1", "sf"},
    {"silent.test", NULL, NULL},
    {"half.test", "-", "sf"},
};

static struct event_base *base;
static struct dns_resolver *dns;
static struct https_client *http;
static int dns_fd = -1, refused_fd = -1;
static uint16_t refused_port;
static struct event *dns_ev;

static const struct script *script_for(const char *qname)
{
	for (size_t i = 0; i < sizeof scripts / sizeof scripts[0]; i++) {
		char host[128];

		snprintf(host, sizeof host, "mta-sts.%s.", scripts[i].domain);
		if (strcasecmp(host, qname) == 0)
			return &scripts[i];
	}
	return NULL;
}

/* Fills resp per the script; false when the server keeps quiet. */
static bool script_answer(ldns_pkt *resp, const char *qname, ldns_rr_type type)
{
	const struct script *s = script_for(qname);
	const char *what = s == NULL ? "nx" : type == LDNS_RR_TYPE_A ? s->a : s->aaaa;
	char text[256];
	ldns_rr *rr = NULL;

	if (what == NULL)
		return false;
	if (strcmp(what, "nx") == 0)
		ldns_pkt_set_rcode(resp, LDNS_RCODE_NXDOMAIN);
	else if (strcmp(what, "sf") == 0)
		ldns_pkt_set_rcode(resp, LDNS_RCODE_SERVFAIL);
	else if (strcmp(what, "-") != 0) {
		snprintf(text, sizeof text, "%s 300 IN %s %s", qname,
		         type == LDNS_RR_TYPE_A ? "A" : "AAAA", what);
		assert_int_equal(ldns_rr_new_frm_str(&rr, text, 300, NULL, NULL), LDNS_STATUS_OK);
		ldns_pkt_push_rr(resp, LDNS_SECTION_ANSWER, rr);
	}
	return true;
}

static void dns_on_query(evutil_socket_t fd, short what, void *arg)
{
	uint8_t buf[2048], *wire = NULL;
	struct sockaddr_storage from;
	socklen_t fromlen = sizeof from;
	ssize_t n = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &fromlen);
	ldns_pkt *q = NULL, *resp;
	ldns_rr *question;
	char *qname;
	size_t len;

	if (n <= 0 || ldns_wire2pkt(&q, buf, (size_t)n) != LDNS_STATUS_OK)
		return;
	question = ldns_rr_list_rr(ldns_pkt_question(q), 0);
	qname = ldns_rdf2str(ldns_rr_owner(question));
	resp = ldns_pkt_new();
	ldns_pkt_set_id(resp, ldns_pkt_id(q));
	ldns_pkt_set_qr(resp, true);
	ldns_pkt_set_rd(resp, true);
	ldns_pkt_set_ra(resp, true);
	ldns_pkt_push_rr(resp, LDNS_SECTION_QUESTION, ldns_rr_clone(question));
	if (script_answer(resp, qname, ldns_rr_get_type(question))) {
		assert_int_equal(ldns_pkt2wire(&wire, resp, &len), LDNS_STATUS_OK);
		sendto(fd, wire, len, 0, (struct sockaddr *)&from, fromlen);
		free(wire);
	}
	free(qname);
	ldns_pkt_free(resp);
	ldns_pkt_free(q);
}

static int bound_socket(int type, uint16_t *port)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t sl = sizeof sin;
	int fd = socket(AF_INET, type | SOCK_NONBLOCK, 0);

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
	*port = ntohs(sin.sin_port);
	return fd;
}

static int setup(void **state)
{
	struct conf c;
	char ns[64], why[256] = "";
	uint16_t dns_port;

	base = event_base_new();
	dns_fd = bound_socket(SOCK_DGRAM, &dns_port);
	dns_ev = event_new(base, dns_fd, EV_READ | EV_PERSIST, dns_on_query, NULL);
	event_add(dns_ev, NULL);
	refused_fd = bound_socket(SOCK_STREAM, &refused_port); /* bound, never listening */
	snprintf(ns, sizeof ns, "127.0.0.1:%u", dns_port);
	conf_defaults(&c);
	strlist_add(&c.dns_nameserver, ns);
	dns = dns_resolver_new(base, &c, why, sizeof why);
	conf_free(&c);
	http = https_client_new(base, NULL, why, sizeof why);
	assert_non_null(dns);
	assert_non_null(http);
	return 0;
}

static int teardown(void **state)
{
	https_client_free(http);
	dns_resolver_free(dns);
	event_free(dns_ev);
	close(dns_fd);
	close(refused_fd);
	event_base_free(base);
	return 0;
}

struct outcome {
	int calls;
	bool inside_fetch;
	enum mtasts_fetch_status status;
	char reason[96], detail[320];
	int64_t ms;
};

static int64_t started_us;

static void on_fetch(void *arg, const struct mtasts_fetch_result *r)
{
	struct outcome *o = arg;

	assert_false(o->inside_fetch);
	o->calls++;
	o->status = r->status;
	o->ms = (time_mono_us() - started_us) / 1000;
	snprintf(o->reason, sizeof o->reason, "%s", r->reason);
	snprintf(o->detail, sizeof o->detail, "%s", r->detail);
	event_base_loopbreak(base);
}

static struct mtasts_fetch *start(struct outcome *o, const char *domain, int64_t timeout_ms)
{
	struct mtasts_fetch *f;

	started_us = time_mono_us();
	o->inside_fetch = true;
	f = mtasts_fetch(dns, http, domain, timeout_ms, refused_port, on_fetch, o);
	o->inside_fetch = false;
	return f;
}

static void run_for_ms(int ms)
{
	run_loop_for_ms(base, ms);
}

static struct outcome fetch(const char *domain, int64_t timeout_ms)
{
	struct outcome o = {0};

	start(&o, domain, timeout_ms);
	run_for_ms(8000);
	assert_int_equal(o.calls, 1);
	return o;
}

static void test_nxdomain_is_no_policy_without_waiting_for_aaaa(void **state)
{
	struct outcome o = fetch("nx.test", 5000);

	assert_int_equal(o.status, MTASTS_FETCH_NO_POLICY);
	assert_string_equal(o.reason, "no-policy-served");
	assert_non_null(strstr(o.detail, "NXDOMAIN"));
	assert_true(o.ms < 1000); /* the AAAA query never gets an answer */
}

static void test_nodata_for_both_families_is_no_policy(void **state)
{
	struct outcome o = fetch("nodata.test", 5000);

	assert_int_equal(o.status, MTASTS_FETCH_NO_POLICY);
	assert_non_null(strstr(o.detail, "no A or AAAA"));
}

static void test_servfail_is_a_dns_error(void **state)
{
	struct outcome o = fetch("servfail.test", 5000);

	assert_int_equal(o.status, MTASTS_FETCH_ERROR);
	assert_string_equal(o.reason, "dns-error");
	/* NODATA for one family, SERVFAIL for the other: cannot say "no policy" */
	o = fetch("half.test", 5000);
	assert_int_equal(o.status, MTASTS_FETCH_ERROR);
	assert_string_equal(o.reason, "dns-error");
}

static void test_silent_aaaa_costs_only_the_resolution_delay(void **state)
{
	/* A answers, AAAA never does: connect to A after 50 ms (RFC 8305 §3),
	 * long before the resolver's own timeout; nothing listens there */
	struct outcome o = fetch("v4only.test", 5000);

	assert_int_equal(o.status, MTASTS_FETCH_ERROR);
	assert_string_equal(o.reason, "connect-failed");
	assert_true(o.ms >= 40 && o.ms < 1000);
}

static void test_one_family_failing_does_not_stop_the_fetch(void **state)
{
	struct outcome o = fetch("v6broken.test", 5000);

	assert_string_equal(o.reason, "connect-failed");
}

static void test_deadline_covers_dns(void **state)
{
	struct outcome o = fetch("silent.test", 300);

	assert_int_equal(o.status, MTASTS_FETCH_ERROR);
	assert_string_equal(o.reason, "timeout");
	assert_non_null(strstr(o.detail, "no address"));
	assert_true(o.ms >= 280 && o.ms < 1000);
}

static void test_unusable_domain_fails_from_the_loop(void **state)
{
	static const char *const bad[] = {
	    "", ".", "a..b", "ex ample.test", "a/b.test", "xn--bcher-kva.test:443", NULL};

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct outcome o = fetch(bad[i], 5000);

		assert_int_equal(o.status, MTASTS_FETCH_ERROR);
		assert_string_equal(o.reason, "invalid-domain");
	}
}

static void on_cancel(evutil_socket_t fd, short what, void *arg)
{
	mtasts_fetch_cancel(arg);
}

static void test_cancel_means_no_callback(void **state)
{
	struct outcome o = {0};
	struct timeval after = {0, 100000};
	struct event *ev = evtimer_new(base, on_cancel, start(&o, "silent.test", 5000));

	evtimer_add(ev, &after);                         /* while resolving */
	mtasts_fetch_cancel(start(&o, "nx.test", 5000)); /* before anything happened */
	mtasts_fetch_cancel(start(&o, "a b", 5000));     /* failed, not yet told */
	mtasts_fetch_cancel(NULL);
	run_for_ms(400);
	event_free(ev);
	assert_int_equal(o.calls, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_200_is_the_policy_with_its_body),
	    cmocka_unit_test(test_404_means_no_policy_even_with_a_big_page),
	    cmocka_unit_test(test_other_statuses_are_fetch_errors_named_by_status),
	    cmocka_unit_test(test_oversized_policy_is_too_large),
	    cmocka_unit_test(test_transport_failures_are_fetch_errors),
	    cmocka_unit_test(test_certificate_failures_are_webpki_invalid),
	    cmocka_unit_test(test_webpki_reasons_follow_the_verify_result),
	    cmocka_unit_test_setup_teardown(test_nxdomain_is_no_policy_without_waiting_for_aaaa,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_nodata_for_both_families_is_no_policy, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_servfail_is_a_dns_error, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_silent_aaaa_costs_only_the_resolution_delay, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_one_family_failing_does_not_stop_the_fetch, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_deadline_covers_dns, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unusable_domain_fails_from_the_loop, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_cancel_means_no_callback, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
