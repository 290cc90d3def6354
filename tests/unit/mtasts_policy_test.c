/* mtasts_policy_test.c - MTA-STS TXT records, policies and MX matching
 * (src/mtasts/policy.c, RFC 8461 §3.1, §3.2, §4.1). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "mtasts/policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ---- */

#define RFC_POLICY                                                                                 \
	"version: STSv1\n"                                                                         \
	"mode: enforce\n"                                                                          \
	"mx: mail.example.com\n"                                                                   \
	"mx: *.example.net\n"                                                                      \
	"mx: backupmx.example.com\n"                                                               \
	"max_age: 604800\n"

#define HEAD "version: STSv1\nmode: enforce\nmax_age: 86400\n"

static enum mtasts_record_status find1(const char *txt, struct mtasts_record *rec)
{
	const char *list[] = {txt};
	char why[128];

	return mtasts_record_find(list, 1, rec, why, sizeof(why));
}

static void expect_record_id(const char *txt, const char *id)
{
	struct mtasts_record rec;

	assert_int_equal(find1(txt, &rec), MTASTS_RECORD_OK);
	assert_string_equal(rec.id, id);
}

static void expect_record_status(const char *txt, enum mtasts_record_status want)
{
	struct mtasts_record rec;

	assert_int_equal(find1(txt, &rec), want);
}

static struct mtasts_policy *parse(const char *text)
{
	char why[160];
	struct mtasts_policy *p = mtasts_policy_parse(text, strlen(text), why, sizeof(why));

	if (p == NULL)
		fail_msg("policy refused: %s", why);
	return p;
}

/* Parses len bytes and expects a refusal whose reason contains want. */
static void expect_refused_n(const char *text, size_t len, const char *want)
{
	char why[160] = "";
	struct mtasts_policy *p = mtasts_policy_parse(text, len, why, sizeof(why));

	if (p != NULL) {
		mtasts_policy_free(p);
		fail_msg("policy accepted, expected \"%s\"", want);
	}
	if (strstr(why, want) == NULL)
		fail_msg("why is \"%s\", expected \"%s\"", why, want);
}

static void expect_refused(const char *text, const char *want)
{
	expect_refused_n(text, strlen(text), want);
}

/* HEAD plus one more line: refused with want, naming line 4. */
static void expect_line4_refused(const char *line, const char *want)
{
	char text[512];

	snprintf(text, sizeof(text), "%s%s\n", HEAD, line);
	expect_refused(text, "line 4: ");
	expect_refused(text, want);
}

/* The one mx pattern a policy with "mx: value" ends up with. */
static void expect_mx_pattern(const char *value, const char *pattern)
{
	char text[512];
	struct mtasts_policy *p;

	snprintf(text, sizeof(text), "%smx: %s\n", HEAD, value);
	p = parse(text);
	assert_int_equal(mtasts_policy_mx_count(p), 1);
	assert_string_equal(mtasts_policy_mx(p, 0), pattern);
	mtasts_policy_free(p);
}

static void expect_mx_refused(const char *value)
{
	char text[2048];

	snprintf(text, sizeof(text), "%smx: %s\n", HEAD, value);
	expect_refused(text, "line 4: mx must be");
}

static struct mtasts_policy *policy_with_mx(const char *pattern)
{
	char text[512];

	snprintf(text, sizeof(text), "%smx: %s\n", HEAD, pattern);
	return parse(text);
}

static void expect_match(const char *pattern, const char *host, bool want)
{
	struct mtasts_policy *p = policy_with_mx(pattern);

	if (mtasts_policy_matches_mx(p, host) != want)
		fail_msg("pattern %s, host %s: expected %s", pattern, host ? host : "(null)",
		         want ? "match" : "no match");
	mtasts_policy_free(p);
}

/* ---- the TXT record (RFC 8461 §3.1) ---- */

static void test_rfc_example_record_gives_its_id(void **state)
{
	expect_record_id("v=STSv1; id=20160831085700Z;", "20160831085700Z");
}

static void test_record_may_end_without_delimiter(void **state)
{
	expect_record_id("v=STSv1; id=abc", "abc");
	expect_record_id("v=STSv1;id=abc", "abc");
}

static void test_trailing_semicolon_with_whitespace_is_accepted(void **state)
{
	expect_record_id("v=STSv1; id=abc ; \t", "abc");
	expect_record_id("v=STSv1\t;\tid=abc;", "abc");
}

static void test_whitespace_before_the_first_semicolon_still_makes_an_sts_record(void **state)
{
	expect_record_id("v=STSv1 ; id=abc", "abc");
	expect_record_status("v=STSv1 \t ;", MTASTS_RECORD_SYNTAX);
}

static void test_unrelated_txt_records_are_ignored(void **state)
{
	const char *txt[] = {"v=spf1 -all", "google-site-verification=xyz", "v=STSv1; id=a1"};
	struct mtasts_record rec;
	char why[128];

	assert_int_equal(mtasts_record_find(txt, 3, &rec, why, sizeof(why)), MTASTS_RECORD_OK);
	assert_string_equal(rec.id, "a1");
}

static void test_no_sts_record_means_none(void **state)
{
	const char *txt[] = {"v=spf1 -all", "hello", ""};
	struct mtasts_record rec;
	char why[128];

	assert_int_equal(mtasts_record_find(txt, 3, &rec, why, sizeof(why)), MTASTS_RECORD_NONE);
	assert_true(strlen(why) > 0);
	assert_int_equal(mtasts_record_find(NULL, 0, &rec, why, sizeof(why)), MTASTS_RECORD_NONE);
}

static void test_lookalike_versions_are_not_sts_records(void **state)
{
	expect_record_status("v=STSv10; id=abc", MTASTS_RECORD_NONE);
	expect_record_status("v=STSv1", MTASTS_RECORD_NONE);
	expect_record_status("v=STSv1 id=abc", MTASTS_RECORD_NONE);
	expect_record_status("v=STSv1,id=abc", MTASTS_RECORD_NONE);
	expect_record_status("V=STSv1; id=abc", MTASTS_RECORD_NONE);
	expect_record_status("v=stsv1; id=abc", MTASTS_RECORD_NONE);
	expect_record_status(" v=STSv1; id=abc", MTASTS_RECORD_NONE);
	expect_record_status("v=STSv2; id=abc", MTASTS_RECORD_NONE);
}

static void test_two_sts_records_mean_no_policy(void **state)
{
	const char *two[] = {"v=STSv1; id=a", "v=spf1 -all", "v=STSv1; id=b"};
	const char *same[] = {"v=STSv1; id=a", "v=STSv1; id=a"};
	const char *one_broken[] = {"v=STSv1; id=a", "v=STSv1;;"};
	struct mtasts_record rec;
	char why[128];

	assert_int_equal(mtasts_record_find(two, 3, &rec, why, sizeof(why)),
	                 MTASTS_RECORD_MULTIPLE);
	assert_int_equal(mtasts_record_find(same, 2, &rec, why, sizeof(why)),
	                 MTASTS_RECORD_MULTIPLE);
	assert_int_equal(mtasts_record_find(one_broken, 2, &rec, why, sizeof(why)),
	                 MTASTS_RECORD_MULTIPLE);
}

static void test_record_without_id_is_a_syntax_error(void **state)
{
	expect_record_status("v=STSv1;", MTASTS_RECORD_SYNTAX);
	expect_record_status("v=STSv1; ", MTASTS_RECORD_SYNTAX);
	expect_record_status("v=STSv1; ext=1", MTASTS_RECORD_SYNTAX);
	/* RFC 7405 %s"id=": the key is case-sensitive; "ID" is an extension */
	expect_record_status("v=STSv1; ID=abc", MTASTS_RECORD_SYNTAX);
}

static void test_id_must_be_1_to_32_alphanumerics(void **state)
{
	expect_record_id("v=STSv1; id=0123456789abcdefABCDEF0123456789",
	                 "0123456789abcdefABCDEF0123456789");
	expect_record_status("v=STSv1; id=0123456789abcdefABCDEF01234567890", MTASTS_RECORD_SYNTAX);
	expect_record_status("v=STSv1; id=", MTASTS_RECORD_SYNTAX);
	expect_record_status("v=STSv1; id=;", MTASTS_RECORD_SYNTAX);
	expect_record_status("v=STSv1; id=2016-08-31", MTASTS_RECORD_SYNTAX);
	expect_record_status("v=STSv1; id=a_b", MTASTS_RECORD_SYNTAX);
	expect_record_status("v=STSv1; id=a.b", MTASTS_RECORD_SYNTAX);
	expect_record_status("v=STSv1; id=a=b", MTASTS_RECORD_SYNTAX);
	expect_record_status("v=STSv1; id=caf\xc3\xa9", MTASTS_RECORD_SYNTAX);
}

static void test_syntax_error_says_why(void **state)
{
	const char *txt[] = {"v=STSv1; id=a-b"};
	struct mtasts_record rec;
	char why[128] = "";

	assert_int_equal(mtasts_record_find(txt, 1, &rec, why, sizeof(why)), MTASTS_RECORD_SYNTAX);
	assert_non_null(strstr(why, "id must be 1 to 32 letters or digits"));
}

static void test_double_semicolon_is_a_syntax_error(void **state)
{
	expect_record_status("v=STSv1;; id=abc", MTASTS_RECORD_SYNTAX);
	expect_record_status("v=STSv1; id=abc;;", MTASTS_RECORD_SYNTAX);
	expect_record_status("v=STSv1; id=abc; ; ext=1", MTASTS_RECORD_SYNTAX);
}

static void test_leftover_characters_are_a_syntax_error(void **state)
{
	expect_record_status("v=STSv1; id=abc def", MTASTS_RECORD_SYNTAX);
	expect_record_status("v=STSv1; id=abc ", MTASTS_RECORD_SYNTAX);
	expect_record_status("v=STSv1; id=abc\x01", MTASTS_RECORD_SYNTAX);
	expect_record_status("v=STSv1; id=abc; ext", MTASTS_RECORD_SYNTAX);
	expect_record_status("v=STSv1; id=abc; =x", MTASTS_RECORD_SYNTAX);
}

static void test_extensions_follow_the_rfc_grammar(void **state)
{
	expect_record_id("v=STSv1; id=abc; ext-1.x_y=val!ue", "abc");
	expect_record_id("v=STSv1; 9ext=~:<>?!; id=abc", "abc");
}

static void test_extension_keys_and_values_are_checked(void **state)
{
	char key32[80], key33[80];

	snprintf(key32, sizeof(key32), "v=STSv1; id=a; %s=1", "k0123456789012345678901234567890");
	snprintf(key33, sizeof(key33), "v=STSv1; id=a; %s=1", "k01234567890123456789012345678901");
	expect_record_id(key32, "a");
	expect_record_status(key33, MTASTS_RECORD_SYNTAX);
	expect_record_status("v=STSv1; id=a; _ext=1", MTASTS_RECORD_SYNTAX);
	expect_record_status("v=STSv1; id=a; -ext=1", MTASTS_RECORD_SYNTAX);
	expect_record_status("v=STSv1; id=a; ext=a=b", MTASTS_RECORD_SYNTAX);
	expect_record_status("v=STSv1; id=a; ext=", MTASTS_RECORD_SYNTAX);
	expect_record_status("v=STSv1; id=a; ext=caf\xc3\xa9", MTASTS_RECORD_SYNTAX);
	expect_record_status("v=STSv1; id=a; e xt=1", MTASTS_RECORD_SYNTAX);
}

static void test_fields_after_the_version_may_come_in_any_order(void **state)
{
	expect_record_id("v=STSv1; ext=1; id=abc", "abc");
}

static void test_first_id_wins(void **state)
{
	expect_record_id("v=STSv1; id=first; id=second", "first");
	/* the ignored duplicate is only an extension-shaped field */
	expect_record_id("v=STSv1; id=first; id=not-an-id", "first");
	expect_record_status("v=STSv1; id=first; id=", MTASTS_RECORD_SYNTAX);
}

static void test_null_answers_are_skipped(void **state)
{
	const char *txt[] = {NULL, "v=STSv1; id=x", NULL};
	struct mtasts_record rec;

	assert_int_equal(mtasts_record_find(txt, 3, &rec, NULL, 0), MTASTS_RECORD_OK);
	assert_string_equal(rec.id, "x");
}

/* ---- the policy (RFC 8461 §3.2) ---- */

static void test_rfc_example_policy_parses(void **state)
{
	struct mtasts_policy *p = parse(RFC_POLICY);

	assert_int_equal(mtasts_policy_mode(p), MTASTS_MODE_ENFORCE);
	assert_int_equal(mtasts_policy_max_age(p), 604800);
	assert_int_equal(mtasts_policy_mx_count(p), 3);
	assert_string_equal(mtasts_policy_mx(p, 0), "mail.example.com");
	assert_string_equal(mtasts_policy_mx(p, 1), "*.example.net");
	assert_string_equal(mtasts_policy_mx(p, 2), "backupmx.example.com");
	assert_true(mtasts_policy_matches_mx(p, "mail.example.com"));
	assert_true(mtasts_policy_matches_mx(p, "mx7.example.net"));
	assert_false(mtasts_policy_matches_mx(p, "example.com"));
	mtasts_policy_free(p);
}

static void test_crlf_lf_and_no_final_newline_parse_alike(void **state)
{
	const char *texts[] = {
	    "version: STSv1\r\nmode: testing\r\nmx: mx.example.org\r\nmax_age: 86400\r\n",
	    "version: STSv1\nmode: testing\nmx: mx.example.org\nmax_age: 86400\n",
	    "version: STSv1\r\nmode: testing\nmx: mx.example.org\r\nmax_age: 86400",
	    "version: STSv1\nmode: testing\nmx: mx.example.org\nmax_age: 86400",
	};
	const char *lines[] = {"version: STSv1", "mode: testing", "mx: mx.example.org",
	                       "max_age: 86400"};

	for (size_t t = 0; t < 4; t++) {
		struct mtasts_policy *p = parse(texts[t]);

		assert_int_equal(mtasts_policy_mode(p), MTASTS_MODE_TESTING);
		assert_int_equal(mtasts_policy_max_age(p), 86400);
		assert_string_equal(mtasts_policy_mx(p, 0), "mx.example.org");
		assert_int_equal(mtasts_policy_line_count(p), 4);
		for (size_t i = 0; i < 4; i++)
			assert_string_equal(mtasts_policy_line(p, i), lines[i]);
		mtasts_policy_free(p);
	}
}

static void test_policy_lines_are_kept_as_fetched_for_tlsrpt(void **state)
{
	struct mtasts_policy *p = parse("version:STSv1 \r\nmode:\tnone\t\r\nmax_age: 0\r\n"
	                                "ext: some value\r\nmx: MX.Example.COM");

	assert_int_equal(mtasts_policy_line_count(p), 5);
	assert_string_equal(mtasts_policy_line(p, 0), "version:STSv1 ");
	assert_string_equal(mtasts_policy_line(p, 1), "mode:\tnone\t");
	assert_string_equal(mtasts_policy_line(p, 2), "max_age: 0");
	assert_string_equal(mtasts_policy_line(p, 3), "ext: some value");
	assert_string_equal(mtasts_policy_line(p, 4), "mx: MX.Example.COM");
	assert_string_equal(mtasts_policy_mx(p, 0), "mx.example.com");
	mtasts_policy_free(p);
}

static void test_policy_text_is_kept_as_fetched(void **state)
{
	const char *text = "version: STSv1\r\nmode: none\r\nmax_age: 300\r\n";
	struct mtasts_policy *p = parse(text);
	const char *kept;
	size_t len = 0;

	kept = mtasts_policy_text(p, &len);
	assert_int_equal(len, strlen(text));
	assert_memory_equal(kept, text, len);
	assert_int_equal(kept[len], '\0');
	assert_ptr_not_equal(kept, text);
	mtasts_policy_free(p);
}

static void test_accessors_out_of_range_return_null(void **state)
{
	struct mtasts_policy *p = parse(RFC_POLICY);

	assert_null(mtasts_policy_mx(p, 3));
	assert_null(mtasts_policy_line(p, 6));
	assert_non_null(mtasts_policy_line(p, 5));
	mtasts_policy_free(p);
	mtasts_policy_free(NULL);
}

static void test_version_must_be_stsv1(void **state)
{
	expect_refused("version: STSv2\nmode: none\nmax_age: 1\n", "line 1: version must be STSv1");
	expect_refused("version: stsv1\nmode: none\nmax_age: 1\n", "line 1: version must be STSv1");
	expect_refused("version: STSv1x\nmode: none\nmax_age: 1\n", "line 1: version");
	expect_refused("mode: none\nmax_age: 1\n", "no version field");
}

static void test_mode_is_enforce_testing_or_none(void **state)
{
	struct mtasts_policy *p = parse("version: STSv1\nmode: none\nmax_age: 1\n");

	assert_int_equal(mtasts_policy_mode(p), MTASTS_MODE_NONE);
	mtasts_policy_free(p);
	expect_refused("version: STSv1\nmode: report\nmax_age: 1\n", "line 2: mode must be");
	expect_refused("version: STSv1\nmode: Enforce\nmax_age: 1\n", "line 2: mode must be");
	expect_refused("version: STSv1\nmode: enforce now\nmx: a.b\nmax_age: 1\n", "line 2");
	expect_refused("version: STSv1\nmax_age: 1\nmx: a.b\n", "no mode field");
}

static void test_mode_names(void **state)
{
	assert_string_equal(mtasts_mode_name(MTASTS_MODE_NONE), "none");
	assert_string_equal(mtasts_mode_name(MTASTS_MODE_TESTING), "testing");
	assert_string_equal(mtasts_mode_name(MTASTS_MODE_ENFORCE), "enforce");
}

static int64_t max_age_of(const char *value)
{
	char text[256];
	struct mtasts_policy *p;
	int64_t v;

	snprintf(text, sizeof(text), "version: STSv1\nmode: none\nmax_age: %s\n", value);
	p = parse(text);
	v = mtasts_policy_max_age(p);
	mtasts_policy_free(p);
	return v;
}

static void test_max_age_above_one_year_is_capped(void **state)
{
	assert_int_equal(max_age_of("31557600"), 31557600);
	assert_int_equal(max_age_of("31557601"), 31557600);
	assert_int_equal(max_age_of("9999999999"), 31557600);
	assert_int_equal(max_age_of("4294967296"), 31557600);
}

static void test_max_age_small_values_are_kept(void **state)
{
	assert_int_equal(max_age_of("0"), 0);
	assert_int_equal(max_age_of("1"), 1);
	assert_int_equal(max_age_of("0000604800"), 604800);
	assert_int_equal(max_age_of("86400  "), 86400);
}

static void test_max_age_must_be_1_to_10_digits(void **state)
{
	const char *bad[] = {"12345678901", "-1", "+5", "1e3", "86400s", "0x10", "1 2", "\xd9\xa1"};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char text[256];

		snprintf(text, sizeof(text), "version: STSv1\nmode: none\nmax_age: %s\n", bad[i]);
		expect_refused(text, "line 3: max_age must be 1 to 10 digits");
	}
	expect_refused("version: STSv1\nmode: none\nmax_age:\n", "line 3: value is empty");
	expect_refused("version: STSv1\nmode: none\n", "no max_age field");
}

static void test_mx_is_required_unless_mode_is_none(void **state)
{
	struct mtasts_policy *p;

	expect_refused("version: STSv1\nmode: enforce\nmax_age: 1\n", "no mx field");
	expect_refused("version: STSv1\nmode: testing\nmax_age: 1\n", "no mx field");
	p = parse("version: STSv1\nmode: none\nmax_age: 1\n");
	assert_int_equal(mtasts_policy_mx_count(p), 0);
	assert_false(mtasts_policy_matches_mx(p, "mx.example.com"));
	mtasts_policy_free(p);
}

static void test_duplicated_fields_keep_the_first(void **state)
{
	struct mtasts_policy *p = parse("version: STSv1\nmode: enforce\nmode: none\nmax_age: 600\n"
	                                "max_age: 31557600\nversion: STSv2\nmx: a.example\n");

	assert_int_equal(mtasts_policy_mode(p), MTASTS_MODE_ENFORCE);
	assert_int_equal(mtasts_policy_max_age(p), 600);
	mtasts_policy_free(p);
}

static void test_ignored_duplicates_need_only_be_well_formed_fields(void **state)
{
	struct mtasts_policy *p = parse(HEAD "mode: bogus\nmax_age: forever\nmx: a.example\n");

	assert_int_equal(mtasts_policy_mode(p), MTASTS_MODE_ENFORCE);
	assert_int_equal(mtasts_policy_max_age(p), 86400);
	mtasts_policy_free(p);
	expect_refused(HEAD "mode:\nmx: a.example\n", "line 4: value is empty");
}

static void test_every_mx_line_counts(void **state)
{
	struct mtasts_policy *p =
	    parse(HEAD "mx: a.example\nmx: *.b.example\nmx: a.example\nmx: c.example\n");

	assert_int_equal(mtasts_policy_mx_count(p), 4);
	assert_string_equal(mtasts_policy_mx(p, 3), "c.example");
	assert_true(mtasts_policy_matches_mx(p, "c.example"));
	assert_true(mtasts_policy_matches_mx(p, "x.b.example"));
	mtasts_policy_free(p);
}

static void test_unknown_keys_are_ignored(void **state)
{
	struct mtasts_policy *p =
	    parse(HEAD "mx: a.example\nfoo: bar baz\nMode: none\nMX: z.example\n"
	               "x-note: caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x98\x80\nmax.age_2-x: 1\n");

	assert_int_equal(mtasts_policy_mode(p), MTASTS_MODE_ENFORCE);
	assert_int_equal(mtasts_policy_mx_count(p), 1);
	assert_int_equal(mtasts_policy_line_count(p), 9);
	mtasts_policy_free(p);
}

static void test_keys_follow_the_rfc_grammar(void **state)
{
	struct mtasts_policy *p = parse("version:STSv1\nmode:enforce\nmax_age:1\nmx:a.example");

	assert_string_equal(mtasts_policy_mx(p, 0), "a.example");
	mtasts_policy_free(p);
	expect_line4_refused("_x: y", "expected \"key: value\"");
	expect_line4_refused("-x: y", "expected \"key: value\"");
	expect_line4_refused("k0123456789012345678901234567890x: y", "expected \"key: value\"");
	expect_line4_refused("mx : a.example", "expected \"key: value\"");
	expect_line4_refused(" mx: a.example", "expected \"key: value\"");
	expect_line4_refused("mx a.example", "expected \"key: value\"");
	expect_line4_refused(": a.example", "expected \"key: value\"");
	expect_line4_refused("caf\xc3\xa9: x", "expected \"key: value\"");
}

static void test_a_32_character_key_is_an_extension(void **state)
{
	struct mtasts_policy *p =
	    parse(HEAD "mx: a.example\nk0123456789012345678901234567890: y\n");

	assert_int_equal(mtasts_policy_line_count(p), 5);
	mtasts_policy_free(p);
}

static void test_empty_lines_are_errors(void **state)
{
	expect_refused("version: STSv1\n\nmode: none\nmax_age: 1\n", "line 2: empty line");
	expect_refused("version: STSv1\r\n\r\nmode: none\r\nmax_age: 1\r\n", "line 2: empty line");
	expect_refused("version: STSv1\nmode: none\nmax_age: 1\n\n", "line 4: empty line");
	expect_refused("\nversion: STSv1\nmode: none\nmax_age: 1\n", "line 1: empty line");
	expect_refused("", "policy is empty");
	expect_refused("\n", "line 1: empty line");
}

static void test_nul_byte_is_an_error_naming_its_line(void **state)
{
	static const char text[] = "version: STSv1\nmode: none\nmax_age: 1\nfoo: a\0b\n";
	static const char in_key[] = "version: STSv1\nmo\0de: none\nmax_age: 1\n";
	static const char at_end[] = "version: STSv1\nmode: none\nmax_age: 1\0";

	expect_refused_n(text, sizeof(text) - 1, "line 4: value is empty or holds control");
	expect_refused_n(in_key, sizeof(in_key) - 1, "line 2: expected");
	expect_refused_n(at_end, sizeof(at_end) - 1, "line 3: value");
}

static void test_bare_cr_is_an_error(void **state)
{
	expect_refused("version: STSv1\rmode: none\nmax_age: 1\n", "line 1: value");
	expect_refused("version: STSv1\nmode: none\nmax_age: 1\nfoo: a\rb\n", "line 4: value");
	expect_refused("version: STSv1\nmode: none\nmax_age: 1\r", "line 3: value");
	expect_refused("version: STSv1\nmode: none\nmax_age: 1\r\r\n", "line 3: value");
}

static void test_invalid_utf8_is_an_error(void **state)
{
	expect_line4_refused("foo: \xff", "invalid UTF-8");
	expect_line4_refused("foo: \xc0\xaf", "invalid UTF-8");         /* overlong "/" */
	expect_line4_refused("foo: \xe0\x80\xaf", "invalid UTF-8");     /* overlong */
	expect_line4_refused("foo: \xed\xa0\x80", "invalid UTF-8");     /* surrogate */
	expect_line4_refused("foo: \xf4\x90\x80\x80", "invalid UTF-8"); /* above U+10FFFF */
	expect_line4_refused("foo: \xc3", "invalid UTF-8");             /* cut short */
	expect_line4_refused("foo: a\xc3(", "invalid UTF-8");
	expect_line4_refused("foo: \xe2\x9c(", "invalid UTF-8"); /* bad third octet */
	expect_line4_refused("foo: \x80", "invalid UTF-8");
}

static void test_control_characters_in_values_are_errors(void **state)
{
	struct mtasts_policy *p = parse("version:\t STSv1 \t\nmode: none\nmax_age: 1\n");

	mtasts_policy_free(p);
	expect_line4_refused("foo: a\tb", "control characters");
	expect_line4_refused("foo: a\x7f", "control characters");
	expect_line4_refused("foo: a\x1b[0m", "control characters");
	expect_line4_refused("foo: \x0b", "control characters");
}

static void test_policy_over_64_kib_is_refused(void **state)
{
	size_t len = MTASTS_POLICY_MAX_LEN + 1;
	char *text = malloc(len);

	memset(text, 'x', len);
	memcpy(text, RFC_POLICY, strlen(RFC_POLICY));
	expect_refused_n(text, len, "longer than 65536 bytes");
	free(text);
}

/* A policy padded with extension lines to exactly len bytes. */
static char *padded_policy(size_t len)
{
	char *text = malloc(len + 1);
	size_t off = strlen(RFC_POLICY);

	memcpy(text, RFC_POLICY, off);
	while (off < len) {
		size_t room = len - off, n = room >= 105 ? 100 : room; /* the last line: 5..104 */

		memcpy(text + off, "p: ", 3);
		memset(text + off + 3, 'v', n - 4);
		text[off + n - 1] = '\n';
		off += n;
	}
	text[len] = '\0';
	return text;
}

static void test_policy_of_exactly_64_kib_is_accepted(void **state)
{
	char *text = padded_policy(MTASTS_POLICY_MAX_LEN);
	char why[160];
	struct mtasts_policy *p =
	    mtasts_policy_parse(text, MTASTS_POLICY_MAX_LEN, why, sizeof(why));

	if (p == NULL)
		fail_msg("refused: %s", why);
	assert_int_equal(mtasts_policy_mx_count(p), 3);
	assert_true(mtasts_policy_line_count(p) > 600);
	mtasts_policy_free(p);
	free(text);
}

static void test_thousands_of_mx_lines_fit_in_64_kib(void **state)
{
	size_t cap = MTASTS_POLICY_MAX_LEN, off = strlen(HEAD), count = 0;
	char *text = malloc(cap + 1);
	struct mtasts_policy *p;

	memcpy(text, HEAD, off);
	while (off + 32 < cap)
		off += (size_t)snprintf(text + off, cap - off, "mx: m%zu.example\n", count++);
	p = parse(text);
	assert_int_equal(mtasts_policy_mx_count(p), count);
	assert_true(mtasts_policy_matches_mx(p, "m0.example"));
	assert_true(mtasts_policy_matches_mx(p, "m3000.example"));
	assert_false(mtasts_policy_matches_mx(p, "m99999.example"));
	mtasts_policy_free(p);
	free(text);
}

static void test_one_line_of_64_kib_is_a_value_like_any_other(void **state)
{
	size_t len = MTASTS_POLICY_MAX_LEN, head = strlen(HEAD "mx: a.example\nfoo: ");
	char *text = malloc(len + 1);
	struct mtasts_policy *p;
	char why[160];

	memcpy(text, HEAD "mx: a.example\nfoo: ", head);
	memset(text + head, 'y', len - head);
	text[len] = '\0';
	p = mtasts_policy_parse(text, len, why, sizeof(why));
	assert_non_null(p);
	assert_int_equal(strlen(mtasts_policy_line(p, 4)), len - head + 5);
	mtasts_policy_free(p);
	text[len - 1] = '\x01';
	expect_refused_n(text, len, "line 5: value");
	free(text);
}

static void test_overlong_mx_names_are_refused(void **state)
{
	char label63[64], label64[65], name253[254], name254[255];

	memset(label63, 'a', 63);
	label63[63] = '\0';
	memset(label64, 'a', 64);
	label64[64] = '\0';
	/* 63 + 1 + 63 + 1 + 63 + 1 + 61 = 253 */
	snprintf(name253, sizeof(name253), "%s.%s.%s.%.61s", label63, label63, label63, label63);
	snprintf(name254, sizeof(name254), "%s.%s.%s.%.62s", label63, label63, label63, label63);
	assert_int_equal(strlen(name253), 253);
	assert_int_equal(strlen(name254), 254);
	expect_mx_pattern(label63, label63);
	expect_mx_refused(label64);
	expect_mx_pattern(name253, name253);
	expect_mx_refused(name254);
}

static void test_mx_patterns_are_stored_lower_case(void **state)
{
	expect_mx_pattern("MX1.Example.NET", "mx1.example.net");
	expect_mx_pattern("*.EXAMPLE.net", "*.example.net");
	expect_mx_pattern("XN--BCHER-KVA.example", "xn--bcher-kva.example");
	expect_mx_pattern("mx-1.a1.example  ", "mx-1.a1.example");
	expect_mx_pattern("localhost", "localhost");
}

static void test_mx_patterns_must_be_domains_or_wildcards(void **state)
{
	const char *bad[] = {
	    "*",
	    "*.",
	    "**.example.com",
	    "a*.example.com",
	    "*.*.example.com",
	    "*example.com",
	    "mail.example.com.",
	    ".example.com",
	    "-a.example.com",
	    "a-.example.com",
	    "a..example.com",
	    "mail_1.example.com",
	    "[192.0.2.1]",
	    "mail.example.com:25",
	    "mail example.com",
	    "*.example.com.",
	    "mail.example.com/x",
	    "\xe2\x98\x83.example",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_mx_refused(bad[i]);
}

static void test_u_label_mx_patterns_become_a_labels(void **state)
{
	expect_mx_pattern("b\xc3\xbc"
	                  "cher.example",
	                  "xn--bcher-kva.example");
	expect_mx_pattern("*.b\xc3\xbc"
	                  "cher.example",
	                  "*.xn--bcher-kva.example");
	expect_mx_pattern("MX.B\xc3\x9c"
	                  "CHER.example",
	                  "mx.xn--bcher-kva.example");
	expect_mx_pattern("\xe4\xbe\x8b\xe5\xad\x90.\xe6\xb5\x8b\xe8\xaf\x95",
	                  "xn--fsqu00a.xn--0zwm56d");
}

static void test_invalid_u_label_patterns_are_refused(void **state)
{
	char huge[1100] = "";

	expect_mx_refused("b\xc3\xbc"
	                  "cher.example.");
	expect_mx_refused("*.\xe2\x98\x83.example"); /* U+2603 is not allowed in IDNA2008 */
	expect_mx_refused("\xcc\x81"
	                  "a.example"); /* starts with a combining mark */
	for (size_t i = 0; i + 3 < sizeof(huge) - 1; i += 2)
		memcpy(huge + i, "\xc3\xbc", 2);
	expect_mx_refused(huge);
}

/* ---- MX matching (RFC 8461 §4.1) ---- */

static void test_wildcard_matches_exactly_one_leftmost_label(void **state)
{
	expect_match("*.example.net", "mx.example.net", true);
	expect_match("*.example.net", "a-b.example.net", true);
	expect_match("*.example.net", "example.net", false);
	expect_match("*.example.net", "a.b.example.net", false);
	expect_match("*.example.net", "mxexample.net", false);
	expect_match("*.example.net", "mx.example.net.evil", false);
	expect_match("*.example.net", "mx.other.net", false);
	expect_match("*.example.net", ".example.net", false);
	expect_match("*.example.net", "*.example.net", false);
}

static void test_rfc_wildcard_example(void **state)
{
	expect_match("*.example.com", "mail.example.com", true);
	expect_match("*.example.com", "example.com", false);
	expect_match("*.example.com", "foo.bar.example.com", false);
}

static void test_exact_pattern_matches_only_that_host(void **state)
{
	expect_match("mail.example.com", "mail.example.com", true);
	expect_match("mail.example.com", "a.mail.example.com", false);
	expect_match("mail.example.com", "example.com", false);
	expect_match("mail.example.com", "mail.example.co", false);
	expect_match("mail.example.com", "mail.example.comm", false);
}

static void test_matching_ignores_case_and_a_trailing_dot(void **state)
{
	expect_match("mail.example.com", "MAIL.Example.COM", true);
	expect_match("mail.example.com", "mail.example.com.", true);
	expect_match("*.example.net", "MX.EXAMPLE.NET.", true);
	expect_match("MAIL.EXAMPLE.COM", "mail.example.com", true);
	expect_match("mail.example.com", "mail.example.com..", false);
}

static void test_u_label_hosts_match_a_label_patterns(void **state)
{
	expect_match("mx.xn--bcher-kva.example",
	             "mx.b\xc3\xbc"
	             "cher.example",
	             true);
	expect_match("*.xn--bcher-kva.example",
	             "mx.B\xc3\x9c"
	             "CHER.example.",
	             true);
	expect_match("mx.b\xc3\xbc"
	             "cher.example",
	             "MX.XN--BCHER-KVA.EXAMPLE", true);
	expect_match("*.b\xc3\xbc"
	             "cher.example",
	             "b\xc3\xbc"
	             "cher.example",
	             false);
}

static void test_invalid_hosts_match_nothing(void **state)
{
	char huge[400];

	memset(huge, 'a', sizeof(huge) - 1);
	huge[sizeof(huge) - 1] = '\0';
	expect_match("*.example.net", NULL, false);
	expect_match("*.example.net", "", false);
	expect_match("*.example.net", ".", false);
	expect_match("*.example.net", "mx..example.net", false);
	expect_match("*.example.net", "mx_1.example.net", false);
	expect_match("*.example.net", "\xff.example.net", false);
	expect_match("*.example.net", "mx.example.net\r\n", false);
	expect_match("*.example.net", huge, false);
}

static void test_why_may_be_null(void **state)
{
	struct mtasts_record rec;
	const char *txt[] = {"v=STSv1; id=a-b"};

	assert_null(mtasts_policy_parse("bogus", 5, NULL, 0));
	assert_int_equal(mtasts_record_find(txt, 1, &rec, NULL, 0), MTASTS_RECORD_SYNTAX);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rfc_example_record_gives_its_id),
	    cmocka_unit_test(test_record_may_end_without_delimiter),
	    cmocka_unit_test(test_trailing_semicolon_with_whitespace_is_accepted),
	    cmocka_unit_test(test_whitespace_before_the_first_semicolon_still_makes_an_sts_record),
	    cmocka_unit_test(test_unrelated_txt_records_are_ignored),
	    cmocka_unit_test(test_no_sts_record_means_none),
	    cmocka_unit_test(test_lookalike_versions_are_not_sts_records),
	    cmocka_unit_test(test_two_sts_records_mean_no_policy),
	    cmocka_unit_test(test_record_without_id_is_a_syntax_error),
	    cmocka_unit_test(test_id_must_be_1_to_32_alphanumerics),
	    cmocka_unit_test(test_syntax_error_says_why),
	    cmocka_unit_test(test_double_semicolon_is_a_syntax_error),
	    cmocka_unit_test(test_leftover_characters_are_a_syntax_error),
	    cmocka_unit_test(test_extensions_follow_the_rfc_grammar),
	    cmocka_unit_test(test_extension_keys_and_values_are_checked),
	    cmocka_unit_test(test_fields_after_the_version_may_come_in_any_order),
	    cmocka_unit_test(test_first_id_wins),
	    cmocka_unit_test(test_null_answers_are_skipped),
	    cmocka_unit_test(test_rfc_example_policy_parses),
	    cmocka_unit_test(test_crlf_lf_and_no_final_newline_parse_alike),
	    cmocka_unit_test(test_policy_lines_are_kept_as_fetched_for_tlsrpt),
	    cmocka_unit_test(test_policy_text_is_kept_as_fetched),
	    cmocka_unit_test(test_accessors_out_of_range_return_null),
	    cmocka_unit_test(test_version_must_be_stsv1),
	    cmocka_unit_test(test_mode_is_enforce_testing_or_none),
	    cmocka_unit_test(test_mode_names),
	    cmocka_unit_test(test_max_age_above_one_year_is_capped),
	    cmocka_unit_test(test_max_age_small_values_are_kept),
	    cmocka_unit_test(test_max_age_must_be_1_to_10_digits),
	    cmocka_unit_test(test_mx_is_required_unless_mode_is_none),
	    cmocka_unit_test(test_duplicated_fields_keep_the_first),
	    cmocka_unit_test(test_ignored_duplicates_need_only_be_well_formed_fields),
	    cmocka_unit_test(test_every_mx_line_counts),
	    cmocka_unit_test(test_unknown_keys_are_ignored),
	    cmocka_unit_test(test_keys_follow_the_rfc_grammar),
	    cmocka_unit_test(test_a_32_character_key_is_an_extension),
	    cmocka_unit_test(test_empty_lines_are_errors),
	    cmocka_unit_test(test_nul_byte_is_an_error_naming_its_line),
	    cmocka_unit_test(test_bare_cr_is_an_error),
	    cmocka_unit_test(test_invalid_utf8_is_an_error),
	    cmocka_unit_test(test_control_characters_in_values_are_errors),
	    cmocka_unit_test(test_policy_over_64_kib_is_refused),
	    cmocka_unit_test(test_policy_of_exactly_64_kib_is_accepted),
	    cmocka_unit_test(test_thousands_of_mx_lines_fit_in_64_kib),
	    cmocka_unit_test(test_one_line_of_64_kib_is_a_value_like_any_other),
	    cmocka_unit_test(test_overlong_mx_names_are_refused),
	    cmocka_unit_test(test_mx_patterns_are_stored_lower_case),
	    cmocka_unit_test(test_mx_patterns_must_be_domains_or_wildcards),
	    cmocka_unit_test(test_u_label_mx_patterns_become_a_labels),
	    cmocka_unit_test(test_invalid_u_label_patterns_are_refused),
	    cmocka_unit_test(test_wildcard_matches_exactly_one_leftmost_label),
	    cmocka_unit_test(test_rfc_wildcard_example),
	    cmocka_unit_test(test_exact_pattern_matches_only_that_host),
	    cmocka_unit_test(test_matching_ignores_case_and_a_trailing_dot),
	    cmocka_unit_test(test_u_label_hosts_match_a_label_patterns),
	    cmocka_unit_test(test_invalid_hosts_match_nothing),
	    cmocka_unit_test(test_why_may_be_null),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
