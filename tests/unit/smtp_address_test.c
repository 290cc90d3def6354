/* smtp_address_test.c - RFC 5321 path and mailbox parsing (src/smtp/address.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "smtp/address.h"
#include "util/utf8.h"

#include <string.h>

/* Parses a whole path given as a C string; the path must be consumed to
 * its end when it parses. */
static bool path(const char *s, unsigned flags, struct smtp_addr *a, struct smtp_error *e)
{
	size_t used = 0;
	bool ok = smtp_path_parse(s, strlen(s), flags, a, &used, e);

	if (ok)
		assert_int_equal(used, strlen(s));
	return ok;
}

static void expect_path_error(const char *s, unsigned flags, const char *enhanced)
{
	struct smtp_addr a;
	struct smtp_error e;

	memset(&e, 0, sizeof(e));
	assert_false(path(s, flags, &a, &e));
	assert_string_equal(e.enhanced, enhanced);
	assert_true(e.reason[0] != '\0');
}

static void expect_path_ok(const char *s, unsigned flags, const char *local, const char *domain)
{
	struct smtp_addr a;
	struct smtp_error e;

	assert_true(path(s, flags, &a, &e));
	assert_string_equal(a.localpart, local);
	assert_string_equal(a.domain, domain);
}

/* Builds "<" + n x 'a' + "@" + domain + ">" into buf. */
static void make_path(char *buf, size_t size, size_t local_len, const char *domain)
{
	size_t dl = strlen(domain);

	assert_true(local_len + dl + 4 <= size);
	buf[0] = '<';
	memset(buf + 1, 'a', local_len);
	buf[1 + local_len] = '@';
	memcpy(buf + 2 + local_len, domain, dl);
	buf[2 + local_len + dl] = '>';
	buf[3 + local_len + dl] = '\0';
}

/* A domain of exactly n octets made of 63-octet labels and a short tail. */
static void make_domain(char *buf, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		buf[i] = (i % 64 == 63) ? '.' : 'd';
	if (buf[n - 1] == '.')
		buf[n - 1] = 'd';
	buf[n] = '\0';
}

static void test_simple_path_is_parsed(void **state)
{
	struct smtp_addr a;
	struct smtp_error e;

	assert_true(path("<user@example.com>", 0, &a, &e));
	assert_string_equal(a.localpart, "user");
	assert_string_equal(a.domain, "example.com");
	assert_false(a.is_null);
	assert_false(a.domain_literal);
	assert_false(a.utf8);
}

static void test_dot_string_with_atext_specials_is_accepted(void **state)
{
	expect_path_ok("<a!#$%&'*+-/=?^_`{|}~z@example.com>", 0, "a!#$%&'*+-/=?^_`{|}~z",
	               "example.com");
	expect_path_ok("<first.middle.last@example.com>", 0, "first.middle.last", "example.com");
}

static void test_dot_string_with_bad_dots_is_rejected(void **state)
{
	expect_path_error("<.user@example.com>", 0, "5.1.3");
	expect_path_error("<user.@example.com>", 0, "5.1.3");
	expect_path_error("<us..er@example.com>", 0, "5.1.3");
	expect_path_error("<@example.com>", 0, "5.1.3");
}

static void test_localpart_with_specials_outside_quotes_is_rejected(void **state)
{
	expect_path_error("<us er@example.com>", 0, "5.1.3");
	expect_path_error("<us(er@example.com>", 0, "5.1.3");
	expect_path_error("<us,er@example.com>", 0, "5.1.3");
	expect_path_error("<a@b@example.com>", 0, "5.1.3");
}

static void test_quoted_localpart_with_space_is_accepted(void **state)
{
	expect_path_ok("<\"john smith\"@example.com>", 0, "\"john smith\"", "example.com");
}

static void test_quoted_localpart_with_escapes_is_kept_as_received(void **state)
{
	expect_path_ok("<\"a\\\"b\\\\c\"@example.com>", 0, "\"a\\\"b\\\\c\"", "example.com");
	expect_path_ok("<\"a@b>c\"@example.com>", 0, "\"a@b>c\"", "example.com");
	expect_path_ok("<\"\"@example.com>", 0, "\"\"", "example.com");
}

static void test_quoted_localpart_errors_are_rejected(void **state)
{
	expect_path_error("<\"unterminated@example.com>", 0, "5.1.3");
	expect_path_error("<\"tab\there\"@example.com>", 0, "5.1.3");
	expect_path_error("<\"bad\\\x01\"@example.com>", 0, "5.1.3");
	expect_path_error("<\"a\"b@example.com>", 0, "5.1.3");
}

static void test_ipv4_literal_is_accepted(void **state)
{
	struct smtp_addr a;
	struct smtp_error e;

	assert_true(path("<postmaster@[192.0.2.1]>", 0, &a, &e));
	assert_string_equal(a.domain, "[192.0.2.1]");
	assert_true(a.domain_literal);
}

static void test_bad_ipv4_literal_is_rejected(void **state)
{
	expect_path_error("<u@[300.0.2.1]>", 0, "5.1.3");
	expect_path_error("<u@[192.0.2]>", 0, "5.1.3");
	expect_path_error("<u@[192.0.2.1.5]>", 0, "5.1.3");
	expect_path_error("<u@[]>", 0, "5.1.3");
	expect_path_error("<u@[192.0.2.1>", 0, "5.1.3");
	expect_path_error("<u@[192.0.2.1]x>", 0, "5.1.3");
}

static void test_ipv6_literal_is_accepted(void **state)
{
	struct smtp_addr a;
	struct smtp_error e;

	assert_true(path("<u@[IPv6:2001:db8::1]>", 0, &a, &e));
	assert_string_equal(a.domain, "[IPv6:2001:db8::1]");
	assert_true(a.domain_literal);
	expect_path_ok("<u@[ipv6:::1]>", 0, "u", "[ipv6:::1]");
	expect_path_ok("<u@[IPv6:::ffff:192.0.2.1]>", 0, "u", "[IPv6:::ffff:192.0.2.1]");
}

static void test_bad_ipv6_literal_is_rejected(void **state)
{
	expect_path_error("<u@[IPv6:2001:db8:::1]>", 0, "5.1.3");
	expect_path_error("<u@[IPv6:192.0.2.1]>", 0, "5.1.3");
	expect_path_error("<u@[IPv6:]>", 0, "5.1.3");
	expect_path_error("<u@[2001:db8::1]>", 0, "5.1.3"); /* no IPv6: tag */
}

static void test_general_address_literal_is_rejected(void **state)
{
	struct smtp_addr a;
	struct smtp_error e;

	assert_false(path("<u@[x-tag:content]>", 0, &a, &e));
	assert_string_equal(e.enhanced, "5.1.3");
	assert_non_null(strstr(e.reason, "general"));
}

static void test_null_path_needs_allow_null(void **state)
{
	struct smtp_addr a;
	struct smtp_error e;

	assert_true(path("<>", SMTP_PATH_ALLOW_NULL, &a, &e));
	assert_true(a.is_null);
	assert_string_equal(a.localpart, "");
	assert_string_equal(a.domain, "");
	expect_path_error("<>", 0, "5.1.3");
}

static void test_source_route_is_accepted_and_ignored(void **state)
{
	expect_path_ok("<@a.example,@b.example:user@c.example>", 0, "user", "c.example");
	expect_path_ok("<@a.example:user@c.example>", 0, "user", "c.example");
}

static void test_bad_source_route_is_rejected(void **state)
{
	expect_path_error("<@a.example,b.example:user@c.example>", 0, "5.1.3");
	expect_path_error("<@a.example user@c.example>", 0, "5.1.3");
	expect_path_error("<@:user@c.example>", 0, "5.1.3");
	expect_path_error("<@-a.example:user@c.example>", 0, "5.1.3");
}

static void test_utf8_without_smtputf8_is_5_6_7(void **state)
{
	expect_path_error("<j\xc3\xb6rg@example.com>", 0, "5.6.7");
	expect_path_error("<user@b\xc3\xbc"
	                  "cher.example>",
	                  0, "5.6.7");
	expect_path_error("<\"j\xc3\xb6rg\"@example.com>", 0, "5.6.7");
	expect_path_error("<\xff@example.com>", SMTP_PATH_ALLOW_NULL, "5.6.7");
}

static void test_utf8_with_smtputf8_is_accepted_and_marked(void **state)
{
	struct smtp_addr a;
	struct smtp_error e;

	assert_true(path("<j\xc3\xb6rg@b\xc3\xbc"
	                 "cher.example>",
	                 SMTP_PATH_UTF8, &a, &e));
	assert_true(a.utf8);
	assert_string_equal(a.localpart, "j\xc3\xb6rg");
	assert_string_equal(a.domain, "b\xc3\xbc"
	                              "cher.example");
	assert_true(path("<\"\xe2\x82\xac x\"@example.com>", SMTP_PATH_UTF8, &a, &e));
	assert_true(a.utf8);
	assert_true(path("<ascii@example.com>", SMTP_PATH_UTF8, &a, &e));
	assert_false(a.utf8);
}

static void test_invalid_utf8_is_rejected_even_with_smtputf8(void **state)
{
	expect_path_error("<\xc0\xafx@example.com>", SMTP_PATH_UTF8, "5.1.3");     /* overlong */
	expect_path_error("<\xed\xa0\x80x@example.com>", SMTP_PATH_UTF8, "5.1.3"); /* surrogate */
	expect_path_error("<\xf4\x90\x80\x80@example.com>", SMTP_PATH_UTF8, "5.1.3");
	expect_path_error("<\xc3@example.com>", SMTP_PATH_UTF8, "5.1.3"); /* truncated */
	expect_path_error("<u@\x80.example>", SMTP_PATH_UTF8, "5.1.3");
}

static void test_utf8_valid_rejects_overlongs_surrogates_and_large_code_points(void **state)
{
	assert_true(utf8_valid("", 0));
	assert_true(utf8_valid("plain", 5));
	assert_true(utf8_valid("\xc3\xa9", 2));
	assert_true(utf8_valid("\xe2\x82\xac", 3));
	assert_true(utf8_valid("\xf0\x9f\x98\x80", 4));
	assert_true(utf8_valid("\xf4\x8f\xbf\xbf", 4)); /* U+10FFFF */
	assert_true(utf8_valid("\xed\x9f\xbf", 3));     /* U+D7FF */
	assert_false(utf8_valid("\xc1\xbf", 2));
	assert_false(utf8_valid("\xe0\x9f\xbf", 3));
	assert_false(utf8_valid("\xf0\x8f\xbf\xbf", 4));
	assert_false(utf8_valid("\xed\xa0\x80", 3));
	assert_false(utf8_valid("\xf4\x90\x80\x80", 4));
	assert_false(utf8_valid("\xf5\x80\x80\x80", 4));
	assert_false(utf8_valid("\x80", 1));
	assert_false(utf8_valid("\xe2\x82", 2));
	assert_false(utf8_valid("\xe2\x28\xa1", 3));
}

static void test_localpart_of_64_octets_is_accepted_and_65_rejected(void **state)
{
	char buf[128];
	struct smtp_addr a;
	struct smtp_error e;

	make_path(buf, sizeof(buf), 64, "example.com");
	assert_true(path(buf, 0, &a, &e));
	assert_int_equal(strlen(a.localpart), 64);
	make_path(buf, sizeof(buf), 65, "example.com");
	assert_false(path(buf, 0, &a, &e));
	assert_string_equal(e.enhanced, "5.1.3");
	assert_non_null(strstr(e.reason, "64"));
}

static void test_domain_of_255_octets_is_valid_and_256_is_not(void **state)
{
	char d[300];

	make_domain(d, 255);
	assert_int_equal(strlen(d), 255);
	assert_true(smtp_domain_valid(d, 255, false));
	make_domain(d, 256);
	assert_false(smtp_domain_valid(d, 256, false));
}

static void test_path_of_256_octets_is_accepted_and_257_rejected(void **state)
{
	char d[300], buf[400];
	struct smtp_addr a;
	struct smtp_error e;

	make_domain(d, 253); /* "a@" + 253 + ... */
	make_path(buf, sizeof(buf), 2, d);
	assert_true(path(buf, 0, &a, &e)); /* 2 + 1 + 253 = 256 */
	make_path(buf, sizeof(buf), 3, d);
	assert_false(path(buf, 0, &a, &e));
	assert_non_null(strstr(e.reason, "256"));
	make_domain(d, 256);
	make_path(buf, sizeof(buf), 1, d);
	assert_false(path(buf, 0, &a, &e));
	assert_non_null(strstr(e.reason, "255"));
}

static void test_domain_label_of_63_octets_is_valid_and_64_is_not(void **state)
{
	char d[80];

	memset(d, 'x', 64);
	memcpy(d + 64, ".com", 5);
	assert_false(smtp_domain_valid(d, strlen(d), false));
	assert_true(smtp_domain_valid(d + 1, strlen(d + 1), false));
}

static void test_domain_labels_follow_ldh_rules(void **state)
{
	assert_true(smtp_domain_valid("a-b.example", 11, false));
	assert_true(smtp_domain_valid("1.2.3.4", 7, false));
	assert_true(smtp_domain_valid("xn--bcher-kva.example", 21, false));
	assert_false(smtp_domain_valid("-ab.example", 11, false));
	assert_false(smtp_domain_valid("ab-.example", 11, false));
	assert_false(smtp_domain_valid("a_b.example", 11, false));
	assert_false(smtp_domain_valid("a..example", 10, false));
	assert_false(smtp_domain_valid(".example", 8, false));
	assert_false(smtp_domain_valid("example.", 8, false));
	assert_false(smtp_domain_valid("", 0, false));
	assert_false(smtp_domain_valid("exa mple", 8, false));
}

static void test_domain_without_dot_is_valid(void **state)
{
	assert_true(smtp_domain_valid("localhost", 9, false));
	expect_path_ok("<root@localhost>", 0, "root", "localhost");
}

static void test_u_labels_need_utf8_and_follow_ascii_rules(void **state)
{
	const char *d = "b\xc3\xbc"
	                "cher.example";
	char longlabel[200];
	size_t i;

	assert_false(smtp_domain_valid(d, strlen(d), false));
	assert_true(smtp_domain_valid(d, strlen(d), true));
	assert_false(smtp_domain_valid("b\xc3\xbc_x.example", 14, true));
	assert_false(smtp_domain_valid("-\xc3\xbc.example", 11, true));
	assert_false(smtp_domain_valid("\xc3\xbc\xc3", 3, true));
	/* 40 two-octet characters: 80 octets, longer than 63 but a legal U-label */
	for (i = 0; i < 40; i++)
		memcpy(longlabel + 2 * i, "\xc3\xbc", 2);
	memcpy(longlabel + 80, ".de", 4);
	assert_true(smtp_domain_valid(longlabel, strlen(longlabel), true));
}

static void test_control_characters_are_rejected(void **state)
{
	struct smtp_addr a;
	struct smtp_error e;
	static const char nul_path[] = "<us\0er@example.com>";
	size_t used;

	expect_path_error("<us\ter@example.com>", 0, "5.1.3");
	expect_path_error("<user@exa\x7fmple.com>", 0, "5.1.3");
	expect_path_error("<user@example.com\r>", 0, "5.1.3");
	assert_false(smtp_path_parse(nul_path, sizeof(nul_path) - 1, 0, &a, &used, &e));
	assert_non_null(strstr(e.reason, "control"));
}

static void test_consumed_stops_after_closing_bracket(void **state)
{
	const char *s = "<a@b.example> SIZE=100";
	struct smtp_addr a;
	struct smtp_error e;
	size_t used = 0;

	assert_true(smtp_path_parse(s, strlen(s), 0, &a, &used, &e));
	assert_int_equal(used, 13);
}

static void test_path_parse_never_reads_past_len(void **state)
{
	const char *s = "<a@b.example>";
	struct smtp_addr a;
	struct smtp_error e;
	size_t used;

	assert_false(smtp_path_parse(s, 12, 0, &a, &used, &e)); /* without the '>' */
	assert_false(smtp_path_parse(s, 0, 0, &a, &used, &e));
	assert_false(smtp_path_parse(s, 1, SMTP_PATH_ALLOW_NULL, &a, &used, &e));
}

static void test_missing_brackets_are_rejected(void **state)
{
	expect_path_error("a@b.example", 0, "5.5.4");
	expect_path_error("<a@b.example", 0, "5.1.3");
	expect_path_error("<a>", 0, "5.1.3");
	expect_path_error("<a@>", 0, "5.1.3");
}

static void test_bare_mailbox_is_parsed(void **state)
{
	struct smtp_addr a;
	struct smtp_error e;
	const char *s = "Some.One@Example.COM";

	assert_true(smtp_mailbox_parse(s, strlen(s), 0, &a, &e));
	assert_string_equal(a.localpart, "Some.One");
	assert_string_equal(a.domain, "Example.COM");
	s = "\"x y\"@[192.0.2.7]";
	assert_true(smtp_mailbox_parse(s, strlen(s), 0, &a, &e));
	assert_true(a.domain_literal);
}

static void test_bare_mailbox_with_trailing_text_is_rejected(void **state)
{
	struct smtp_addr a;
	struct smtp_error e;
	const char *s = "a@b.example>";

	assert_false(smtp_mailbox_parse(s, strlen(s), 0, &a, &e));
	assert_false(smtp_mailbox_parse("<a@b.example>", 13, 0, &a, &e));
	assert_false(smtp_mailbox_parse("a@b.example ", 12, 0, &a, &e));
	assert_false(smtp_mailbox_parse("j\xc3\xb6@b.example", 13, 0, &a, &e));
	assert_string_equal(e.enhanced, "5.6.7");
	assert_true(smtp_mailbox_parse("j\xc3\xb6@b.example", 13, SMTP_PATH_UTF8, &a, &e));
}

static void test_empty_mailbox_is_null_only_when_allowed(void **state)
{
	struct smtp_addr a;
	struct smtp_error e;

	assert_false(smtp_mailbox_parse("", 0, 0, &a, &e));
	assert_true(smtp_mailbox_parse("", 0, SMTP_PATH_ALLOW_NULL, &a, &e));
	assert_true(a.is_null);
}

static void test_addr_format_writes_local_at_domain(void **state)
{
	struct smtp_addr a;
	struct smtp_error e;
	char buf[64];

	assert_true(path("<\"a b\"@example.com>", 0, &a, &e));
	assert_int_equal(smtp_addr_format(&a, buf, sizeof(buf)), 17);
	assert_string_equal(buf, "\"a b\"@example.com");
	assert_int_equal(smtp_addr_format(&a, buf, 17), -1); /* no room for NUL */
	assert_int_equal(smtp_addr_format(&a, buf, 18), 17);
	assert_true(path("<>", SMTP_PATH_ALLOW_NULL, &a, &e));
	assert_int_equal(smtp_addr_format(&a, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "");
	memset(&a, 0, sizeof(a));
	memcpy(a.localpart, "Postmaster", 11);
	assert_int_equal(smtp_addr_format(&a, buf, sizeof(buf)), 10);
	assert_string_equal(buf, "Postmaster");
}

static void test_domain_key_lowercases_ascii_only(void **state)
{
	char buf[256];

	smtp_domain_key("Example.COM", buf, sizeof(buf));
	assert_string_equal(buf, "example.com");
	smtp_domain_key("B\xc3\x9c"
	                "CHER.Example",
	                buf, sizeof(buf));
	assert_string_equal(buf, "b\xc3\x9c"
	                         "cher.example");
	smtp_domain_key("[IPv6:2001:DB8::1]", buf, sizeof(buf));
	assert_string_equal(buf, "[ipv6:2001:db8::1]");
	smtp_domain_key("ABCDEF", buf, 4);
	assert_string_equal(buf, "abc");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_simple_path_is_parsed),
	    cmocka_unit_test(test_dot_string_with_atext_specials_is_accepted),
	    cmocka_unit_test(test_dot_string_with_bad_dots_is_rejected),
	    cmocka_unit_test(test_localpart_with_specials_outside_quotes_is_rejected),
	    cmocka_unit_test(test_quoted_localpart_with_space_is_accepted),
	    cmocka_unit_test(test_quoted_localpart_with_escapes_is_kept_as_received),
	    cmocka_unit_test(test_quoted_localpart_errors_are_rejected),
	    cmocka_unit_test(test_ipv4_literal_is_accepted),
	    cmocka_unit_test(test_bad_ipv4_literal_is_rejected),
	    cmocka_unit_test(test_ipv6_literal_is_accepted),
	    cmocka_unit_test(test_bad_ipv6_literal_is_rejected),
	    cmocka_unit_test(test_general_address_literal_is_rejected),
	    cmocka_unit_test(test_null_path_needs_allow_null),
	    cmocka_unit_test(test_source_route_is_accepted_and_ignored),
	    cmocka_unit_test(test_bad_source_route_is_rejected),
	    cmocka_unit_test(test_utf8_without_smtputf8_is_5_6_7),
	    cmocka_unit_test(test_utf8_with_smtputf8_is_accepted_and_marked),
	    cmocka_unit_test(test_invalid_utf8_is_rejected_even_with_smtputf8),
	    cmocka_unit_test(test_utf8_valid_rejects_overlongs_surrogates_and_large_code_points),
	    cmocka_unit_test(test_localpart_of_64_octets_is_accepted_and_65_rejected),
	    cmocka_unit_test(test_domain_of_255_octets_is_valid_and_256_is_not),
	    cmocka_unit_test(test_path_of_256_octets_is_accepted_and_257_rejected),
	    cmocka_unit_test(test_domain_label_of_63_octets_is_valid_and_64_is_not),
	    cmocka_unit_test(test_domain_labels_follow_ldh_rules),
	    cmocka_unit_test(test_domain_without_dot_is_valid),
	    cmocka_unit_test(test_u_labels_need_utf8_and_follow_ascii_rules),
	    cmocka_unit_test(test_control_characters_are_rejected),
	    cmocka_unit_test(test_consumed_stops_after_closing_bracket),
	    cmocka_unit_test(test_path_parse_never_reads_past_len),
	    cmocka_unit_test(test_missing_brackets_are_rejected),
	    cmocka_unit_test(test_bare_mailbox_is_parsed),
	    cmocka_unit_test(test_bare_mailbox_with_trailing_text_is_rejected),
	    cmocka_unit_test(test_empty_mailbox_is_null_only_when_allowed),
	    cmocka_unit_test(test_addr_format_writes_local_at_domain),
	    cmocka_unit_test(test_domain_key_lowercases_ascii_only),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
