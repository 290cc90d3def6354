/* smtp_command_test.c - SMTP command line parsing (src/smtp/command.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "smtp/command.h"

#include <string.h>

static bool parse(const char *line, struct smtp_command *cmd, struct smtp_command_error *err)
{
	memset(err, 0, sizeof(*err));
	return smtp_command_parse(line, strlen(line), cmd, err);
}

static void expect_ok(const char *line, enum smtp_verb verb)
{
	struct smtp_command cmd;
	struct smtp_command_error err;

	assert_true(parse(line, &cmd, &err));
	assert_int_equal(cmd.verb, verb);
}

static void expect_error(const char *line, int code, const char *enhanced)
{
	struct smtp_command cmd;
	struct smtp_command_error err;

	assert_false(parse(line, &cmd, &err));
	assert_int_equal(err.code, code);
	assert_string_equal(err.e.enhanced, enhanced);
	assert_true(err.e.reason[0] != '\0');
}

static void test_verbs_are_case_insensitive(void **state)
{
	expect_ok("ehlo client.example", SMTP_VERB_EHLO);
	expect_ok("HeLo client.example", SMTP_VERB_HELO);
	expect_ok("data", SMTP_VERB_DATA);
	expect_ok("Rset", SMTP_VERB_RSET);
	expect_ok("noop", SMTP_VERB_NOOP);
	expect_ok("QUIT", SMTP_VERB_QUIT);
	expect_ok("starttls", SMTP_VERB_STARTTLS);
	expect_ok("vrfy postmaster", SMTP_VERB_VRFY);
	expect_ok("EXPN list", SMTP_VERB_EXPN);
	expect_ok("HELP", SMTP_VERB_HELP);
	expect_ok("AUTH PLAIN", SMTP_VERB_AUTH);
	expect_ok("bdat 10", SMTP_VERB_BDAT);
}

static void test_unknown_verb_is_500_5_5_2(void **state)
{
	expect_error("FOO bar", 500, "5.5.2");
	expect_error("MAILX FROM:<a@b.example>", 500, "5.5.2");
	expect_error("", 500, "5.5.2");
	expect_error(" EHLO x", 500, "5.5.2");
	expect_error("EHL", 500, "5.5.2");
}

static void test_control_characters_in_line_are_500_5_5_2(void **state)
{
	struct smtp_command cmd;
	struct smtp_command_error err;
	static const char nul_line[] = "NOOP a\0b";

	assert_false(smtp_command_parse(nul_line, sizeof(nul_line) - 1, &cmd, &err));
	assert_int_equal(err.code, 500);
	assert_string_equal(err.e.enhanced, "5.5.2");
	expect_error("NOOP \r", 500, "5.5.2");
	expect_error("MAIL FROM:<a@b.example>\n", 500, "5.5.2");
	expect_error("NOOP \x1b[0m", 500, "5.5.2");
	expect_error("NOOP \x7f", 500, "5.5.2");
	expect_ok("NOOP a\tb", SMTP_VERB_NOOP);
}

static void test_ehlo_needs_an_argument(void **state)
{
	struct smtp_command cmd;
	struct smtp_command_error err;

	expect_error("EHLO", 501, "5.5.4");
	expect_error("HELO   ", 501, "5.5.4");
	assert_true(parse("EHLO client.example", &cmd, &err));
	assert_int_equal(cmd.arg_len, 14);
	assert_memory_equal(cmd.arg, "client.example", 14);
	assert_true(parse("EHLO  [192.0.2.1] ", &cmd, &err));
	assert_int_equal(cmd.arg_len, 11);
	assert_memory_equal(cmd.arg, "[192.0.2.1]", 11);
}

static void test_commands_without_arguments_reject_one(void **state)
{
	expect_error("DATA x", 501, "5.5.4");
	expect_error("RSET now", 501, "5.5.4");
	expect_error("QUIT please", 501, "5.5.4");
	expect_error("STARTTLS tls", 501, "5.5.4");
	expect_ok("DATA ", SMTP_VERB_DATA); /* trailing space is not an argument */
	expect_ok("NOOP anything goes", SMTP_VERB_NOOP);
	expect_ok("HELP MAIL", SMTP_VERB_HELP);
}

static void test_auth_needs_a_mechanism(void **state)
{
	expect_error("AUTH", 501, "5.5.4");
	expect_ok("AUTH PLAIN dGVzdAB0ZXN0AHRlc3Q=", SMTP_VERB_AUTH);
}

static void test_mail_from_is_parsed(void **state)
{
	struct smtp_command cmd;
	struct smtp_command_error err;

	assert_true(parse("MAIL FROM:<sender@example.org>", &cmd, &err));
	assert_int_equal(cmd.verb, SMTP_VERB_MAIL);
	assert_string_equal(cmd.addr.localpart, "sender");
	assert_string_equal(cmd.addr.domain, "example.org");
	assert_false(cmd.has_size);
	assert_int_equal(cmd.size, 0);
	assert_int_equal(cmd.body, SMTP_BODY_UNSPEC);
	assert_false(cmd.smtputf8);
	assert_false(cmd.requiretls);
	assert_true(parse("mail from:<sender@example.org>", &cmd, &err));
}

static void test_mail_from_null_path_is_accepted(void **state)
{
	struct smtp_command cmd;
	struct smtp_command_error err;

	assert_true(parse("MAIL FROM:<>", &cmd, &err));
	assert_true(cmd.addr.is_null);
	assert_true(parse("MAIL FROM:<> SIZE=1000", &cmd, &err));
	assert_true(cmd.addr.is_null);
	assert_int_equal(cmd.size, 1000);
}

static void test_space_after_colon_is_tolerated(void **state)
{
	struct smtp_command cmd;
	struct smtp_command_error err;

	assert_true(parse("MAIL FROM: <a@b.example>", &cmd, &err));
	assert_string_equal(cmd.addr.localpart, "a");
	assert_true(parse("RCPT TO:  <c@d.example>", &cmd, &err));
	assert_string_equal(cmd.addr.domain, "d.example");
}

static void test_missing_angle_brackets_are_501_5_5_4(void **state)
{
	expect_error("MAIL FROM:a@b.example", 501, "5.5.4");
	expect_error("RCPT TO:c@d.example", 501, "5.5.4");
	expect_error("MAIL FROM:", 501, "5.5.4");
	expect_error("MAIL", 501, "5.5.4");
	expect_error("MAIL TO:<a@b.example>", 501, "5.5.4");
	expect_error("RCPT FROM:<a@b.example>", 501, "5.5.4");
	expect_error("MAIL FROM <a@b.example>", 501, "5.5.4");
}

static void test_bad_sender_syntax_is_5_1_7_and_bad_recipient_5_1_3(void **state)
{
	expect_error("MAIL FROM:<a..b@example.org>", 501, "5.1.7");
	expect_error("RCPT TO:<a..b@example.org>", 501, "5.1.3");
	expect_error("RCPT TO:<>", 501, "5.1.3");
	expect_error("MAIL FROM:<a@b.example", 501, "5.1.7");
}

static void test_mail_size_parameter_is_parsed(void **state)
{
	struct smtp_command cmd;
	struct smtp_command_error err;

	assert_true(parse("MAIL FROM:<a@b.example> SIZE=12345", &cmd, &err));
	assert_true(cmd.has_size);
	assert_int_equal(cmd.size, 12345);
	assert_true(parse("MAIL FROM:<a@b.example> size=0", &cmd, &err));
	assert_true(cmd.has_size);
	assert_int_equal(cmd.size, 0);
	assert_true(parse("MAIL FROM:<a@b.example> SIZE=18446744073709551615", &cmd, &err));
	assert_true(cmd.size == UINT64_MAX);
}

static void test_mail_size_overflow_and_garbage_are_501(void **state)
{
	expect_error("MAIL FROM:<a@b.example> SIZE=18446744073709551616", 501, "5.5.4");
	expect_error("MAIL FROM:<a@b.example> SIZE=000000000000000000001", 501, "5.5.4");
	expect_error("MAIL FROM:<a@b.example> SIZE=12k", 501, "5.5.4");
	expect_error("MAIL FROM:<a@b.example> SIZE=-1", 501, "5.5.4");
	expect_error("MAIL FROM:<a@b.example> SIZE=", 501, "5.5.4");
	expect_error("MAIL FROM:<a@b.example> SIZE", 501, "5.5.4");
}

static void test_mail_body_parameter(void **state)
{
	struct smtp_command cmd;
	struct smtp_command_error err;

	assert_true(parse("MAIL FROM:<a@b.example> BODY=8BITMIME", &cmd, &err));
	assert_int_equal(cmd.body, SMTP_BODY_8BITMIME);
	assert_true(parse("MAIL FROM:<a@b.example> body=7bit", &cmd, &err));
	assert_int_equal(cmd.body, SMTP_BODY_7BIT);
	expect_error("MAIL FROM:<a@b.example> BODY=BINARYMIME", 504, "5.5.4");
	expect_error("MAIL FROM:<a@b.example> BODY=9BIT", 501, "5.5.4");
}

static void test_mail_flag_parameters_take_no_value(void **state)
{
	struct smtp_command cmd;
	struct smtp_command_error err;

	assert_true(parse("MAIL FROM:<a@b.example> REQUIRETLS SMTPUTF8", &cmd, &err));
	assert_true(cmd.requiretls);
	assert_true(cmd.smtputf8);
	expect_error("MAIL FROM:<a@b.example> SMTPUTF8=yes", 501, "5.5.4");
	expect_error("MAIL FROM:<a@b.example> REQUIRETLS=1", 501, "5.5.4");
}

static void test_mail_auth_is_accepted_and_ignored(void **state)
{
	struct smtp_command cmd;
	struct smtp_command_error err;

	assert_true(parse("MAIL FROM:<a@b.example> AUTH=<> SIZE=5", &cmd, &err));
	assert_int_equal(cmd.size, 5);
	assert_true(parse("MAIL FROM:<a@b.example> AUTH=user+40example.com", &cmd, &err));
}

/* DSN (RFC 3461) is not offered: its parameters are refused, never
 * silently dropped. */
static void test_dsn_parameters_are_refused_with_555(void **state)
{
	expect_error("MAIL FROM:<a@b.example> RET=HDRS", 555, "5.5.4");
	expect_error("MAIL FROM:<a@b.example> ENVID=QQ314159", 555, "5.5.4");
	expect_error("RCPT TO:<a@b.example> NOTIFY=NEVER", 555, "5.5.4");
	expect_error("RCPT TO:<a@b.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@b.example", 555,
	             "5.5.4");
	expect_error("RCPT TO:<Postmaster> NOTIFY=NEVER", 555, "5.5.4");
}

static void test_unknown_parameter_is_555(void **state)
{
	expect_error("MAIL FROM:<a@b.example> FOO=bar", 555, "5.5.4");
	expect_error("MAIL FROM:<a@b.example> NOTIFY=NEVER", 555, "5.5.4");
	expect_error("RCPT TO:<a@b.example> SIZE=10", 555, "5.5.4");
	expect_error("RCPT TO:<a@b.example> RET=FULL", 555, "5.5.4");
}

static void test_duplicate_parameter_is_501(void **state)
{
	expect_error("MAIL FROM:<a@b.example> SIZE=1 SIZE=2", 501, "5.5.4");
	expect_error("MAIL FROM:<a@b.example> SMTPUTF8 smtputf8", 501, "5.5.4");
}

static void test_malformed_parameters_are_501(void **state)
{
	expect_error("MAIL FROM:<a@b.example>SIZE=1", 501, "5.5.4");
	expect_error("MAIL FROM:<a@b.example> =1", 501, "5.5.4");
	expect_error("MAIL FROM:<a@b.example> -X=1", 501, "5.5.4");
	expect_error("MAIL FROM:<a@b.example> X_Y=1", 501, "5.5.4");
	expect_error("MAIL FROM:<a@b.example> AUTH=a=b", 501, "5.5.4");
}

static void test_multiple_spaces_between_parameters_are_accepted(void **state)
{
	struct smtp_command cmd;
	struct smtp_command_error err;

	assert_true(parse("MAIL FROM:<a@b.example>  SIZE=1   BODY=7BIT  ", &cmd, &err));
	assert_int_equal(cmd.size, 1);
	assert_int_equal(cmd.body, SMTP_BODY_7BIT);
}

static void test_utf8_mail_path_needs_smtputf8_on_the_same_line(void **state)
{
	struct smtp_command cmd;
	struct smtp_command_error err;

	expect_error("MAIL FROM:<j\xc3\xb6rg@example.org>", 553, "5.6.7");
	expect_error("MAIL FROM:<j\xc3\xb6rg@example.org> BODY=8BITMIME", 553, "5.6.7");
	assert_true(parse("MAIL FROM:<j\xc3\xb6rg@example.org> SMTPUTF8", &cmd, &err));
	assert_true(cmd.addr.utf8);
	assert_true(cmd.smtputf8);
	expect_error("MAIL FROM:<\xc3\x28@example.org> SMTPUTF8", 501, "5.1.7");
}

static void test_utf8_rcpt_is_always_parsed_and_marked(void **state)
{
	struct smtp_command cmd;
	struct smtp_command_error err;

	assert_true(parse("RCPT TO:<m\xc3\xbcller@b\xc3\xbc"
	                  "cher.example>",
	                  &cmd, &err));
	assert_true(cmd.addr.utf8);
	assert_true(parse("RCPT TO:<plain@example.org>", &cmd, &err));
	assert_false(cmd.addr.utf8);
	expect_error("RCPT TO:<\xed\xa0\x80@example.org>", 501, "5.1.3");
}

static void test_rcpt_postmaster_without_domain_is_accepted(void **state)
{
	struct smtp_command cmd;
	struct smtp_command_error err;

	assert_true(parse("RCPT TO:<Postmaster>", &cmd, &err));
	assert_string_equal(cmd.addr.localpart, "Postmaster");
	assert_string_equal(cmd.addr.domain, "");
	assert_true(parse("rcpt to:<POSTMASTER>", &cmd, &err));
	assert_string_equal(cmd.addr.localpart, "Postmaster");
	expect_error("RCPT TO:<Postmaster>x", 501, "5.5.4");
	expect_error("RCPT TO:<other>", 501, "5.1.3");
}

static void test_rcpt_source_route_is_dropped(void **state)
{
	struct smtp_command cmd;
	struct smtp_command_error err;

	assert_true(parse("RCPT TO:<@relay.example:user@dest.example>", &cmd, &err));
	assert_string_equal(cmd.addr.localpart, "user");
	assert_string_equal(cmd.addr.domain, "dest.example");
}

static void test_bdat_size_and_last(void **state)
{
	struct smtp_command cmd;
	struct smtp_command_error err;

	assert_true(parse("BDAT 1000", &cmd, &err));
	assert_true(cmd.chunk_size == 1000);
	assert_false(cmd.last);
	assert_true(parse("BDAT 0 LAST", &cmd, &err));
	assert_true(cmd.chunk_size == 0);
	assert_true(cmd.last);
	assert_true(parse("bdat 42 last", &cmd, &err));
	assert_true(cmd.last);
	assert_true(parse("BDAT 18446744073709551615", &cmd, &err));
	assert_true(cmd.chunk_size == UINT64_MAX);
}

static void test_bad_bdat_is_501(void **state)
{
	expect_error("BDAT", 501, "5.5.4");
	expect_error("BDAT x", 501, "5.5.4");
	expect_error("BDAT 10LAST", 501, "5.5.4");
	expect_error("BDAT 10 LAST x", 501, "5.5.4");
	expect_error("BDAT 10 FIRST", 501, "5.5.4");
	expect_error("BDAT 18446744073709551616", 501, "5.5.4");
	expect_error("BDAT -1", 501, "5.5.4");
}

static void test_arg_points_into_the_line(void **state)
{
	const char *line = "MAIL FROM:<a@b.example> SIZE=1";
	struct smtp_command cmd;
	struct smtp_command_error err;

	assert_true(smtp_command_parse(line, strlen(line), &cmd, &err));
	assert_ptr_equal(cmd.arg, line + 5);
	assert_int_equal(cmd.arg_len, strlen(line) - 5);
}

static void test_parse_is_bounded_by_len(void **state)
{
	struct smtp_command cmd;
	struct smtp_command_error err;

	/* only "DATA" of "DATA x" is given */
	assert_true(smtp_command_parse("DATA x", 4, &cmd, &err));
	assert_int_equal(cmd.verb, SMTP_VERB_DATA);
	assert_false(smtp_command_parse("MAIL FROM:<a@b.example>", 22, &cmd, &err));
}

static void test_verb_names(void **state)
{
	assert_string_equal(smtp_verb_name(SMTP_VERB_MAIL), "MAIL");
	assert_string_equal(smtp_verb_name(SMTP_VERB_STARTTLS), "STARTTLS");
	assert_string_equal(smtp_verb_name(SMTP_VERB_BDAT), "BDAT");
	assert_string_equal(smtp_verb_name(SMTP_VERB_UNKNOWN), "UNKNOWN");
	assert_string_equal(smtp_verb_name((enum smtp_verb)999), "UNKNOWN");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_verbs_are_case_insensitive),
	    cmocka_unit_test(test_unknown_verb_is_500_5_5_2),
	    cmocka_unit_test(test_control_characters_in_line_are_500_5_5_2),
	    cmocka_unit_test(test_ehlo_needs_an_argument),
	    cmocka_unit_test(test_commands_without_arguments_reject_one),
	    cmocka_unit_test(test_auth_needs_a_mechanism),
	    cmocka_unit_test(test_mail_from_is_parsed),
	    cmocka_unit_test(test_mail_from_null_path_is_accepted),
	    cmocka_unit_test(test_space_after_colon_is_tolerated),
	    cmocka_unit_test(test_missing_angle_brackets_are_501_5_5_4),
	    cmocka_unit_test(test_bad_sender_syntax_is_5_1_7_and_bad_recipient_5_1_3),
	    cmocka_unit_test(test_mail_size_parameter_is_parsed),
	    cmocka_unit_test(test_mail_size_overflow_and_garbage_are_501),
	    cmocka_unit_test(test_mail_body_parameter),
	    cmocka_unit_test(test_mail_flag_parameters_take_no_value),
	    cmocka_unit_test(test_mail_auth_is_accepted_and_ignored),
	    cmocka_unit_test(test_dsn_parameters_are_refused_with_555),
	    cmocka_unit_test(test_unknown_parameter_is_555),
	    cmocka_unit_test(test_duplicate_parameter_is_501),
	    cmocka_unit_test(test_malformed_parameters_are_501),
	    cmocka_unit_test(test_multiple_spaces_between_parameters_are_accepted),
	    cmocka_unit_test(test_utf8_mail_path_needs_smtputf8_on_the_same_line),
	    cmocka_unit_test(test_utf8_rcpt_is_always_parsed_and_marked),
	    cmocka_unit_test(test_rcpt_postmaster_without_domain_is_accepted),
	    cmocka_unit_test(test_rcpt_source_route_is_dropped),
	    cmocka_unit_test(test_bdat_size_and_last),
	    cmocka_unit_test(test_bad_bdat_is_501),
	    cmocka_unit_test(test_arg_points_into_the_line),
	    cmocka_unit_test(test_parse_is_bounded_by_len),
	    cmocka_unit_test(test_verb_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
