/* dns_answer_test.c - the answer parser (dns_answer_parse in src/dns/dns.c)
 * over packets built with ldns: records, rcodes, AD, extended DNS errors,
 * CNAME chains and broken packets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "dns/dns.h"

#include <arpa/inet.h>
#include <ldns/ldns.h>
#include <stdlib.h>
#include <string.h>

struct pkt_spec {
	const char *qname;
	ldns_rr_type qtype;
	ldns_pkt_rcode rcode;
	bool ad;
	const char *answer[12];
	const char *authority[4];
	int ede; /* -1: no EDE option */
	const char *ede_text;
	bool no_edns;
};

/* Builds the wire form of a response described by s. */
static uint8_t *build(const struct pkt_spec *s, size_t *len)
{
	ldns_pkt *p = ldns_pkt_new();
	ldns_rr *q = ldns_rr_new();
	ldns_rdf *owner = NULL;
	uint8_t *wire = NULL;

	assert_int_equal(ldns_str2rdf_dname(&owner, s->qname), LDNS_STATUS_OK);
	ldns_rr_set_owner(q, owner);
	ldns_rr_set_type(q, s->qtype);
	ldns_rr_set_class(q, LDNS_RR_CLASS_IN);
	ldns_rr_set_question(q, true);
	ldns_pkt_push_rr(p, LDNS_SECTION_QUESTION, q);
	ldns_pkt_set_id(p, 4242);
	ldns_pkt_set_qr(p, true);
	ldns_pkt_set_rd(p, true);
	ldns_pkt_set_ra(p, true);
	ldns_pkt_set_ad(p, s->ad);
	ldns_pkt_set_rcode(p, (uint8_t)s->rcode);
	for (size_t i = 0; i < 12 && s->answer[i]; i++) {
		ldns_rr *rr = NULL;

		assert_int_equal(ldns_rr_new_frm_str(&rr, s->answer[i], 300, NULL, NULL),
		                 LDNS_STATUS_OK);
		ldns_pkt_push_rr(p, LDNS_SECTION_ANSWER, rr);
	}
	for (size_t i = 0; i < 4 && s->authority[i]; i++) {
		ldns_rr *rr = NULL;

		assert_int_equal(ldns_rr_new_frm_str(&rr, s->authority[i], 300, NULL, NULL),
		                 LDNS_STATUS_OK);
		ldns_pkt_push_rr(p, LDNS_SECTION_AUTHORITY, rr);
	}
	if (!s->no_edns) {
		ldns_pkt_set_edns_udp_size(p, 1232);
		ldns_pkt_set_edns_do(p, true);
		if (s->ede >= 0) {
			size_t tl = s->ede_text ? strlen(s->ede_text) : 0;
			uint8_t *opt = calloc(1, 6 + tl);

			opt[0] = 0;
			opt[1] = 15;
			opt[2] = (uint8_t)((2 + tl) >> 8);
			opt[3] = (uint8_t)(2 + tl);
			opt[4] = (uint8_t)(s->ede >> 8);
			opt[5] = (uint8_t)s->ede;
			if (tl)
				memcpy(opt + 6, s->ede_text, tl);
			ldns_pkt_set_edns_data(p, ldns_rdf_new(LDNS_RDF_TYPE_UNKNOWN, 6 + tl, opt));
		}
	}
	assert_int_equal(ldns_pkt2wire(&wire, p, len), LDNS_STATUS_OK);
	ldns_pkt_free(p);
	return wire;
}

static enum dns_status parse(const struct pkt_spec *s, const char *qname, enum dns_type t,
                             bool trust, struct dns_answer *a)
{
	size_t len;
	uint8_t *wire = build(s, &len);
	enum dns_status st = dns_answer_parse(wire, len, qname, t, trust, a);

	free(wire);
	return st;
}

static void test_mx_sorted_by_preference_ties_in_answer_order(void **state)
{
	struct pkt_spec s = {"example.org.",
	                     LDNS_RR_TYPE_MX,
	                     LDNS_RCODE_NOERROR,
	                     false,
	                     {"example.org. 300 IN MX 20 b.example.org.",
	                      "example.org. 200 IN MX 10 First.Example.ORG.",
	                      "example.org. 300 IN MX 20 a.example.org.",
	                      "example.org. 300 IN MX 10 second.example.org.",
	                      "example.org. 300 IN MX 5 zero.example.org."},
	                     {NULL},
	                     -1,
	                     NULL,
	                     false};
	struct dns_answer a;

	assert_int_equal(parse(&s, "example.org", DNS_MX, true, &a), DNS_OK);
	assert_int_equal(a.n, 5);
	assert_int_equal(a.rcode, 0);
	assert_int_equal(a.mx[0].preference, 5);
	assert_string_equal(a.mx[0].host, "zero.example.org");
	assert_string_equal(a.mx[1].host, "first.example.org"); /* lower-cased, no dot */
	assert_string_equal(a.mx[2].host, "second.example.org");
	assert_string_equal(a.mx[3].host, "b.example.org");
	assert_string_equal(a.mx[4].host, "a.example.org");
	assert_int_equal(a.ttl, 200);
	assert_string_equal(a.canonical, "example.org");
	assert_int_equal(a.ede, -1);
	dns_answer_free(&a);
}

static void test_null_mx_is_empty_host(void **state)
{
	struct pkt_spec s = {"nullmx.example.",
	                     LDNS_RR_TYPE_MX,
	                     LDNS_RCODE_NOERROR,
	                     true,
	                     {"nullmx.example. 300 IN MX 0 ."},
	                     {NULL},
	                     -1,
	                     NULL,
	                     false};
	struct dns_answer a;

	assert_int_equal(parse(&s, "nullmx.example.", DNS_MX, true, &a), DNS_OK);
	assert_int_equal(a.n, 1);
	assert_int_equal(a.mx[0].preference, 0);
	assert_string_equal(a.mx[0].host, "");
	assert_true(a.authentic);
	dns_answer_free(&a);
}

static void test_cname_chain_in_answer_is_followed(void **state)
{
	struct pkt_spec s = {
	    "alias.example.",
	    LDNS_RR_TYPE_A,
	    LDNS_RCODE_NOERROR,
	    false,
	    {"other.example. 300 IN A 192.0.2.99", /* not on the chain */
	     "alias.example. 60 IN CNAME mid.example.", "mid.example. 300 IN CNAME Real.Example.",
	     "real.example. 300 IN A 192.0.2.1", "real.example. 300 IN A 192.0.2.2"},
	    {NULL},
	    -1,
	    NULL,
	    false};
	struct dns_answer a;
	char buf[64];

	assert_int_equal(parse(&s, "alias.example", DNS_A, false, &a), DNS_OK);
	assert_string_equal(a.canonical, "real.example");
	assert_int_equal(a.n, 2);
	assert_int_equal(a.addrs[0].family, AF_INET);
	inet_ntop(AF_INET, &a.addrs[1].v4, buf, sizeof(buf));
	assert_string_equal(buf, "192.0.2.2");
	assert_int_equal(a.ttl, 60); /* the chain's CNAMEs count */
	dns_answer_free(&a);
}

static void test_cname_chain_to_nothing_is_nodata(void **state)
{
	struct pkt_spec s = {"alias.example.",
	                     LDNS_RR_TYPE_MX,
	                     LDNS_RCODE_NOERROR,
	                     false,
	                     {"alias.example. 300 IN CNAME real.example."},
	                     {NULL},
	                     -1,
	                     NULL,
	                     false};
	struct dns_answer a;

	assert_int_equal(parse(&s, "alias.example", DNS_MX, false, &a), DNS_NOTFOUND);
	assert_false(a.nxdomain);
	assert_string_equal(a.canonical, "real.example");
	dns_answer_free(&a);
}

static void test_cname_loop_in_answer_is_malformed(void **state)
{
	struct pkt_spec s = {
	    "a.example.",
	    LDNS_RR_TYPE_A,
	    LDNS_RCODE_NOERROR,
	    false,
	    {"a.example. 300 IN CNAME b.example.", "b.example. 300 IN CNAME a.example."},
	    {NULL},
	    -1,
	    NULL,
	    false};
	struct dns_answer a;

	assert_int_equal(parse(&s, "a.example", DNS_A, false, &a), DNS_MALFORMED);
	assert_non_null(strstr(a.error, "cname chain"));
	dns_answer_free(&a);
}

static void test_cname_query_gives_first_target_only(void **state)
{
	struct pkt_spec s = {
	    "alias.example.",
	    LDNS_RR_TYPE_CNAME,
	    LDNS_RCODE_NOERROR,
	    true,
	    {"alias.example. 300 IN CNAME Mid.Example.", "mid.example. 300 IN CNAME real.example."},
	    {NULL},
	    -1,
	    NULL,
	    false};
	struct pkt_spec none = {"plain.example.",
	                        LDNS_RR_TYPE_CNAME,
	                        LDNS_RCODE_NOERROR,
	                        true,
	                        {NULL},
	                        {"example. 300 IN SOA ns. h. 1 2 3 4 30"},
	                        -1,
	                        NULL,
	                        false};
	struct dns_answer a;

	assert_int_equal(parse(&s, "alias.example", DNS_CNAME, true, &a), DNS_OK);
	assert_string_equal(a.cname, "mid.example");
	assert_int_equal(a.n, 1);
	assert_true(a.authentic);
	dns_answer_free(&a);

	assert_int_equal(parse(&none, "plain.example", DNS_CNAME, true, &a), DNS_NOTFOUND);
	assert_string_equal(a.cname, "");
	assert_false(a.nxdomain);
	/* the "no CNAME" answer keeps its flag (docs/destinations.md, "The resolver") */
	assert_true(a.authentic);
	assert_int_equal(a.ttl, 30);
	dns_answer_free(&a);
}

static void test_nxdomain_and_nodata_are_not_found(void **state)
{
	struct pkt_spec nx = {"nope.example.",
	                      LDNS_RR_TYPE_MX,
	                      LDNS_RCODE_NXDOMAIN,
	                      true,
	                      {NULL},
	                      {"example. 600 IN SOA ns. h. 1 2 3 4 120"},
	                      -1,
	                      NULL,
	                      false};
	struct pkt_spec nodata = {"example.",
	                          LDNS_RR_TYPE_MX,
	                          LDNS_RCODE_NOERROR,
	                          false,
	                          {"example. 300 IN A 192.0.2.1"}, /* another type */
	                          {NULL},
	                          -1,
	                          NULL,
	                          false};
	struct dns_answer a;

	assert_int_equal(parse(&nx, "nope.example", DNS_MX, true, &a), DNS_NOTFOUND);
	assert_true(a.nxdomain);
	assert_int_equal(a.rcode, 3);
	assert_true(a.authentic);
	assert_int_equal(a.ttl, 120);
	assert_non_null(strstr(a.error, "NXDOMAIN"));
	dns_answer_free(&a);

	assert_int_equal(parse(&nodata, "example", DNS_MX, true, &a), DNS_NOTFOUND);
	assert_false(a.nxdomain);
	assert_int_equal(a.rcode, 0);
	assert_int_equal(a.n, 0);
	assert_null(a.mx);
	dns_answer_free(&a);
}

static void test_servfail_carries_ede_signature_expired(void **state)
{
	struct pkt_spec s = {"_25._tcp.mx1.bogus.test.",
	                     LDNS_RR_TYPE_TLSA,
	                     LDNS_RCODE_SERVFAIL,
	                     false,
	                     {NULL},
	                     {NULL},
	                     7,
	                     "validation failure <x>: signature expired\x01\xff",
	                     false};
	struct dns_answer a;

	assert_int_equal(parse(&s, "_25._tcp.mx1.bogus.test", DNS_TLSA, true, &a), DNS_TEMPFAIL);
	assert_int_equal(a.rcode, 2);
	assert_int_equal(a.ede, 7);
	assert_string_equal(a.ede_text, "validation failure <x>: signature expired??");
	assert_false(a.authentic);
	assert_non_null(strstr(a.error, "SERVFAIL"));
	assert_non_null(strstr(a.error, "ede 7"));
	dns_answer_free(&a);
}

static void test_refused_is_temporary(void **state)
{
	struct pkt_spec s = {
	    "example.", LDNS_RR_TYPE_MX, LDNS_RCODE_REFUSED, false, {NULL}, {NULL}, -1, NULL, true};
	struct dns_answer a;

	assert_int_equal(parse(&s, "example", DNS_MX, true, &a), DNS_TEMPFAIL);
	assert_int_equal(a.rcode, 5);
	assert_int_equal(a.ede, -1);
	dns_answer_free(&a);
}

static void test_ad_bit_believed_only_when_trusted(void **state)
{
	struct pkt_spec s = {"secure.test.",
	                     LDNS_RR_TYPE_MX,
	                     LDNS_RCODE_NOERROR,
	                     true,
	                     {"secure.test. 300 IN MX 10 mx1.secure.test."},
	                     {NULL},
	                     -1,
	                     NULL,
	                     false};
	struct dns_answer a;

	assert_int_equal(parse(&s, "secure.test", DNS_MX, true, &a), DNS_OK);
	assert_true(a.authentic);
	dns_answer_free(&a);
	assert_int_equal(parse(&s, "secure.test", DNS_MX, false, &a), DNS_OK);
	assert_false(a.authentic);
	dns_answer_free(&a);
	s.ad = false;
	assert_int_equal(parse(&s, "secure.test", DNS_MX, true, &a), DNS_OK);
	assert_false(a.authentic);
	dns_answer_free(&a);
}

static void test_tlsa_txt_aaaa_records(void **state)
{
	struct pkt_spec tlsa = {
	    "_25._tcp.mx1.secure.test.",
	    LDNS_RR_TYPE_TLSA,
	    LDNS_RCODE_NOERROR,
	    true,
	    {"_25._tcp.mx1.secure.test. 300 IN TLSA 3 1 1 "
	     "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20",
	     "_25._tcp.mx1.secure.test. 300 IN TLSA 2 0 1 "
	     "ba66450f78c2e53bcb1eede31b5918254171caa202ca00000000000000000000"},
	    {NULL},
	    -1,
	    NULL,
	    false};
	struct pkt_spec txt = {"_mta-sts.secure.test.",
	                       LDNS_RR_TYPE_TXT,
	                       LDNS_RCODE_NOERROR,
	                       false,
	                       {"_mta-sts.secure.test. 300 IN TXT \"v=STSv1; \" \"id=1;\""},
	                       {NULL},
	                       -1,
	                       NULL,
	                       false};
	struct pkt_spec aaaa = {"mx1.secure.test.",
	                        LDNS_RR_TYPE_AAAA,
	                        LDNS_RCODE_NOERROR,
	                        false,
	                        {"mx1.secure.test. 300 IN AAAA ::1"},
	                        {NULL},
	                        -1,
	                        NULL,
	                        false};
	struct dns_answer a;

	assert_int_equal(parse(&tlsa, "_25._tcp.mx1.secure.test", DNS_TLSA, true, &a), DNS_OK);
	assert_int_equal(a.n, 2);
	assert_int_equal(a.tlsa[0].usage, 3);
	assert_int_equal(a.tlsa[0].selector, 1);
	assert_int_equal(a.tlsa[0].mtype, 1);
	assert_int_equal(a.tlsa[0].len, 32);
	assert_int_equal(a.tlsa[0].data[0], 1);
	assert_int_equal(a.tlsa[0].data[31], 0x20);
	assert_int_equal(a.tlsa[1].usage, 2);
	assert_int_equal(a.tlsa[1].selector, 0);
	assert_int_equal(a.tlsa[1].data[0], 0xba);
	dns_answer_free(&a);

	assert_int_equal(parse(&txt, "_mta-sts.secure.test", DNS_TXT, false, &a), DNS_OK);
	assert_int_equal(a.n, 1);
	assert_string_equal(a.txt[0], "v=STSv1; id=1;");
	dns_answer_free(&a);

	assert_int_equal(parse(&aaaa, "mx1.secure.test", DNS_AAAA, false, &a), DNS_OK);
	assert_int_equal(a.n, 1);
	assert_int_equal(a.addrs[0].family, AF_INET6);
	assert_true(IN6_IS_ADDR_LOOPBACK(&a.addrs[0].v6));
	dns_answer_free(&a);
}

static void test_mx_target_octets_are_escaped(void **state)
{
	struct pkt_spec s = {"example.",
	                     LDNS_RR_TYPE_MX,
	                     LDNS_RCODE_NOERROR,
	                     false,
	                     {"example. 300 IN MX 10 bad\\032host\\.x.example."},
	                     {NULL},
	                     -1,
	                     NULL,
	                     false};
	struct dns_answer a;

	assert_int_equal(parse(&s, "example", DNS_MX, false, &a), DNS_OK);
	assert_string_equal(a.mx[0].host, "bad\\032host\\046x.example");
	dns_answer_free(&a);
}

static void test_answer_to_another_question_is_malformed(void **state)
{
	struct pkt_spec s = {"other.example.",
	                     LDNS_RR_TYPE_MX,
	                     LDNS_RCODE_NOERROR,
	                     false,
	                     {"other.example. 300 IN MX 10 mx.other.example."},
	                     {NULL},
	                     -1,
	                     NULL,
	                     false};
	struct dns_answer a;

	assert_int_equal(parse(&s, "example", DNS_MX, false, &a), DNS_MALFORMED);
	dns_answer_free(&a);
	/* right name, wrong type */
	assert_int_equal(parse(&s, "other.example", DNS_A, false, &a), DNS_MALFORMED);
	dns_answer_free(&a);
	/* case does not matter (RFC 4343) */
	assert_int_equal(parse(&s, "OTHER.Example.", DNS_MX, false, &a), DNS_OK);
	dns_answer_free(&a);
}

static void test_truncated_and_garbage_packets_are_malformed(void **state)
{
	struct pkt_spec s = {
	    "example.",
	    LDNS_RR_TYPE_MX,
	    LDNS_RCODE_NOERROR,
	    false,
	    {"example. 300 IN MX 10 mx1.example.", "example. 300 IN MX 20 mx2.example."},
	    {NULL},
	    -1,
	    NULL,
	    false};
	size_t len;
	uint8_t *wire = build(&s, &len);
	struct dns_answer a;
	uint8_t garbage[64];

	for (size_t cut = 0; cut < len; cut++) {
		enum dns_status st = dns_answer_parse(wire, cut, "example", DNS_MX, false, &a);

		/* a cut at a record boundary leaves a consistent but shorter
		 * packet only if the counts say so: they never do here */
		assert_int_equal(st, DNS_MALFORMED);
		assert_true(a.error[0] != '\0');
		assert_int_equal(a.n, 0);
		dns_answer_free(&a);
	}
	assert_int_equal(dns_answer_parse(wire, len, "example", DNS_MX, false, &a), DNS_OK);
	dns_answer_free(&a);
	wire[2] &= 0x7f; /* QR=0: a query, not an answer */
	assert_int_equal(dns_answer_parse(wire, len, "example", DNS_MX, false, &a), DNS_MALFORMED);
	dns_answer_free(&a);
	free(wire);

	for (size_t i = 0; i < sizeof(garbage); i++)
		garbage[i] = (uint8_t)(i * 37 + 11);
	assert_int_equal(dns_answer_parse(garbage, sizeof(garbage), "example", DNS_MX, false, &a),
	                 DNS_MALFORMED);
	dns_answer_free(&a);
	assert_int_equal(dns_answer_parse(NULL, 0, "example", DNS_MX, false, &a), DNS_MALFORMED);
	dns_answer_free(&a);
}

static void test_type_names(void **state)
{
	assert_string_equal(dns_type_name(DNS_MX), "mx");
	assert_string_equal(dns_type_name(DNS_TLSA), "tlsa");
	assert_string_equal(dns_type_name(DNS_AAAA), "aaaa");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_mx_sorted_by_preference_ties_in_answer_order),
	    cmocka_unit_test(test_null_mx_is_empty_host),
	    cmocka_unit_test(test_cname_chain_in_answer_is_followed),
	    cmocka_unit_test(test_cname_chain_to_nothing_is_nodata),
	    cmocka_unit_test(test_cname_loop_in_answer_is_malformed),
	    cmocka_unit_test(test_cname_query_gives_first_target_only),
	    cmocka_unit_test(test_nxdomain_and_nodata_are_not_found),
	    cmocka_unit_test(test_servfail_carries_ede_signature_expired),
	    cmocka_unit_test(test_refused_is_temporary),
	    cmocka_unit_test(test_ad_bit_believed_only_when_trusted),
	    cmocka_unit_test(test_tlsa_txt_aaaa_records),
	    cmocka_unit_test(test_mx_target_octets_are_escaped),
	    cmocka_unit_test(test_answer_to_another_question_is_malformed),
	    cmocka_unit_test(test_truncated_and_garbage_packets_are_malformed),
	    cmocka_unit_test(test_type_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
