/* tlsrpt_record_test.c - the _smtp._tls TXT record (src/tlsrpt/record.c,
 * RFC 8460 §3): the version tag, one record only, rua lists, schemes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tlsrpt/record.h"

#include <string.h>

static enum tlsrpt_record_status find1(const char *s, struct tlsrpt_record *r)
{
	const char *txt[] = {s};
	char why[128];
	return tlsrpt_record_find(txt, 1, r, why, sizeof why);
}

static void test_the_rfc_examples(void **state)
{
	struct tlsrpt_record r;
	assert_int_equal(find1("v=TLSRPTv1; rua=mailto:reports@example.com", &r), TLSRPT_RECORD_OK);
	assert_int_equal(r.nrua, 1);
	assert_int_equal(r.rua[0].kind, TLSRPT_RUA_MAILTO);
	assert_string_equal(r.rua[0].target, "reports@example.com");
	assert_int_equal(find1("v=TLSRPTv1; rua=https://reporting.example.com/v1/tlsrpt", &r),
	                 TLSRPT_RECORD_OK);
	assert_int_equal(r.rua[0].kind, TLSRPT_RUA_HTTPS);
	assert_string_equal(r.rua[0].target, "https://reporting.example.com/v1/tlsrpt");
}

static void test_lists_extensions_and_white_space(void **state)
{
	struct tlsrpt_record r;
	assert_int_equal(find1("v=TLSRPTv1 ;rua=mailto:a@example.com , https://x.example/r;"
	                       " ext.1=v;  rua=mailto:b%40x@example.net?subject=hi ;",
	                       &r),
	                 TLSRPT_RECORD_OK);
	assert_int_equal(r.nrua, 3);
	assert_string_equal(r.rua[0].target, "a@example.com");
	assert_string_equal(r.rua[1].target, "https://x.example/r");
	assert_string_equal(r.rua[2].target, "b@x@example.net");
}

static void test_other_schemes_are_skipped(void **state)
{
	struct tlsrpt_record r;
	assert_int_equal(find1("v=TLSRPTv1; rua=ftp://x.example/, mailto:ok@example.com", &r),
	                 TLSRPT_RECORD_OK);
	assert_int_equal(r.nrua, 1);
	assert_string_equal(r.rua[0].target, "ok@example.com");
	assert_int_equal(find1("v=TLSRPTv1; rua=http://x.example/", &r), TLSRPT_RECORD_NO_RUA);
}

static void test_not_tlsrpt_none_or_multiple(void **state)
{
	struct tlsrpt_record r;
	char why[128];
	const char *none[] = {"v=spf1 -all", "v=TLSRPTv10; rua=mailto:a@b.c", "v=TLSRPTv1"};
	assert_int_equal(tlsrpt_record_find(none, 3, &r, why, sizeof why), TLSRPT_RECORD_NONE);
	const char *two[] = {"v=TLSRPTv1; rua=mailto:a@b.c", "v=TLSRPTv1; rua=mailto:d@e.f"};
	assert_int_equal(tlsrpt_record_find(two, 2, &r, why, sizeof why), TLSRPT_RECORD_MULTIPLE);
	assert_non_null(strstr(why, "more than one"));
}

static void test_syntax_errors(void **state)
{
	struct tlsrpt_record r;
	assert_int_equal(find1("v=TLSRPTv1; ext=1", &r), TLSRPT_RECORD_SYNTAX); /* no rua */
	assert_int_equal(find1("v=TLSRPTv1; rua=", &r), TLSRPT_RECORD_SYNTAX);
	assert_int_equal(find1("v=TLSRPTv1;; rua=mailto:a@b.c", &r), TLSRPT_RECORD_SYNTAX);
	assert_int_equal(find1("v=TLSRPTv1; rua=mailto:a@b.c!10m", &r), TLSRPT_RECORD_SYNTAX);
	assert_int_equal(find1("v=TLSRPTv1; =x; rua=mailto:a@b.c", &r), TLSRPT_RECORD_SYNTAX);
	assert_int_equal(find1("v=TLSRPTv1; rua=mailto:a@b.c junk", &r), TLSRPT_RECORD_SYNTAX);
}

/* Nothing that could break a header or an SMTP command gets through. */
static void test_hostile_mailto_is_dropped(void **state)
{
	struct tlsrpt_record r;
	assert_int_equal(find1("v=TLSRPTv1; rua=mailto:a%0d%0aBcc:x@evil@example.com", &r),
	                 TLSRPT_RECORD_NO_RUA);
	assert_int_equal(find1("v=TLSRPTv1; rua=mailto:%3cx@example.com%3e", &r),
	                 TLSRPT_RECORD_NO_RUA);
	assert_int_equal(find1("v=TLSRPTv1; rua=mailto:nobody", &r), TLSRPT_RECORD_NO_RUA);
	assert_int_equal(find1("v=TLSRPTv1; rua=mailto:x@%zz", &r), TLSRPT_RECORD_NO_RUA);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_the_rfc_examples),
	    cmocka_unit_test(test_lists_extensions_and_white_space),
	    cmocka_unit_test(test_other_schemes_are_skipped),
	    cmocka_unit_test(test_not_tlsrpt_none_or_multiple),
	    cmocka_unit_test(test_syntax_errors),
	    cmocka_unit_test(test_hostile_mailto_is_dropped),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
