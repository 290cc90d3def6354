/* smtp_reply_test.c - reply formatting and parsing (src/smtp/reply.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "smtp/reply.h"

#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>

/* Formats with smtp_reply_write and compares the wire text. */
static void expect_written(int code, const char *enhanced, const char *text, const char *wire)
{
	struct evbuffer *out = evbuffer_new();
	size_t n;
	char *got;

	smtp_reply_write(out, code, enhanced, text);
	n = evbuffer_get_length(out);
	got = calloc(1, n + 1);
	evbuffer_remove(out, got, n);
	assert_string_equal(got, wire);
	free(got);
	evbuffer_free(out);
}

static enum smtp_reply_status feed(struct smtp_reply_parser *p, const char *line)
{
	return smtp_reply_parser_feed(p, line, strlen(line));
}

static void test_single_line_reply_with_enhanced_code(void **state)
{
	expect_written(250, "2.0.0", "OK", "250 2.0.0 OK\r\n");
	expect_written(550, "5.1.1", "no such user", "550 5.1.1 no such user\r\n");
}

static void test_single_line_reply_without_enhanced_code(void **state)
{
	expect_written(220, NULL, "mx.example ESMTP", "220 mx.example ESMTP\r\n");
	expect_written(354, NULL, "go ahead", "354 go ahead\r\n");
	expect_written(250, "", "OK", "250 OK\r\n");
}

static void test_multi_line_reply_repeats_code_and_enhanced_code(void **state)
{
	expect_written(250, "2.0.0", "first\nsecond\nlast",
	               "250-2.0.0 first\r\n250-2.0.0 second\r\n250 2.0.0 last\r\n");
	expect_written(250, NULL, "mx.example\nPIPELINING\n8BITMIME",
	               "250-mx.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n");
}

static void test_reply_text_cannot_inject_lines(void **state)
{
	expect_written(250, "2.0.0", "a\r\nb", "250-2.0.0 a\r\n250 2.0.0 b\r\n");
	expect_written(550, NULL, "evil\r250 fake", "550 evil250 fake\r\n");
}

static void test_trailing_newline_adds_no_empty_line(void **state)
{
	expect_written(250, NULL, "only\n", "250 only\r\n");
}

static void test_empty_text_gives_bare_code(void **state)
{
	expect_written(250, NULL, "", "250\r\n");
	expect_written(250, NULL, NULL, "250\r\n");
	expect_written(250, "2.0.0", "", "250 2.0.0\r\n");
	expect_written(250, NULL, "a\n\nb", "250-a\r\n250-\r\n250 b\r\n");
}

static void test_invalid_code_is_sent_as_451(void **state)
{
	expect_written(1000, NULL, "x", "451 x\r\n");
	expect_written(42, NULL, "x", "451 x\r\n");
}

static void test_writef_formats_text(void **state)
{
	struct evbuffer *out = evbuffer_new();
	char buf[64] = {0};

	smtp_reply_writef(out, 552, "5.3.4", "message size exceeds %d bytes", 1000);
	evbuffer_remove(out, buf, sizeof(buf) - 1);
	assert_string_equal(buf, "552 5.3.4 message size exceeds 1000 bytes\r\n");
	evbuffer_free(out);
}

static void test_single_line_reply_is_parsed(void **state)
{
	struct smtp_reply_parser p;

	smtp_reply_parser_init(&p);
	assert_int_equal(feed(&p, "220 mx.example ESMTP ready"), SMTP_REPLY_DONE);
	assert_int_equal(p.reply.code, 220);
	assert_string_equal(p.reply.text, "mx.example ESMTP ready");
	assert_string_equal(p.reply.enhanced, "");
	assert_int_equal(p.reply.lines, 1);
	assert_int_equal(smtp_reply_class(p.reply.code), 2);
}

static void test_multi_line_reply_is_joined(void **state)
{
	struct smtp_reply_parser p;

	smtp_reply_parser_init(&p);
	assert_int_equal(feed(&p, "250-mx.example"), SMTP_REPLY_MORE);
	assert_int_equal(feed(&p, "250-PIPELINING"), SMTP_REPLY_MORE);
	assert_int_equal(feed(&p, "250 SIZE 1000"), SMTP_REPLY_DONE);
	assert_string_equal(p.reply.text, "mx.example\nPIPELINING\nSIZE 1000");
	assert_int_equal(p.reply.lines, 3);
}

static void test_code_alone_is_accepted_as_last_line(void **state)
{
	struct smtp_reply_parser p;

	smtp_reply_parser_init(&p);
	assert_int_equal(feed(&p, "250"), SMTP_REPLY_DONE);
	assert_int_equal(p.reply.code, 250);
	assert_string_equal(p.reply.text, "");
	assert_int_equal(feed(&p, "250-first"), SMTP_REPLY_MORE);
	assert_int_equal(feed(&p, "250"), SMTP_REPLY_DONE);
	assert_string_equal(p.reply.text, "first\n");
}

static void test_enhanced_code_is_parsed_when_enabled(void **state)
{
	struct smtp_reply_parser p;

	smtp_reply_parser_init(&p);
	p.parse_enhanced = true;
	assert_int_equal(feed(&p, "550-5.1.1 no such user"), SMTP_REPLY_MORE);
	assert_int_equal(feed(&p, "550 5.1.1 try another"), SMTP_REPLY_DONE);
	assert_string_equal(p.reply.enhanced, "5.1.1");
	assert_string_equal(p.reply.text, "no such user\ntry another");
	assert_int_equal(feed(&p, "250 2.1.5"), SMTP_REPLY_DONE);
	assert_string_equal(p.reply.enhanced, "2.1.5");
	assert_string_equal(p.reply.text, "");
	assert_int_equal(feed(&p, "452 4.5.3 too many recipients"), SMTP_REPLY_DONE);
	assert_string_equal(p.reply.enhanced, "4.5.3");
	assert_int_equal(feed(&p, "554 5.123.456 long parts"), SMTP_REPLY_DONE);
	assert_string_equal(p.reply.enhanced, "5.123.456");
}

static void test_enhanced_code_is_not_parsed_when_disabled(void **state)
{
	struct smtp_reply_parser p;

	smtp_reply_parser_init(&p);
	assert_int_equal(feed(&p, "550 5.1.1 no such user"), SMTP_REPLY_DONE);
	assert_string_equal(p.reply.enhanced, "");
	assert_string_equal(p.reply.text, "5.1.1 no such user");
}

static void test_malformed_enhanced_code_is_text(void **state)
{
	struct smtp_reply_parser p;

	smtp_reply_parser_init(&p);
	p.parse_enhanced = true;
	assert_int_equal(feed(&p, "550 4.1.1 class mismatch"), SMTP_REPLY_DONE);
	assert_string_equal(p.reply.enhanced, "");
	assert_string_equal(p.reply.text, "4.1.1 class mismatch");
	assert_int_equal(feed(&p, "550 5.1234.1 too many digits"), SMTP_REPLY_DONE);
	assert_string_equal(p.reply.enhanced, "");
	assert_int_equal(feed(&p, "550 5.1.1x glued"), SMTP_REPLY_DONE);
	assert_string_equal(p.reply.enhanced, "");
	assert_int_equal(feed(&p, "550 5.1. no detail"), SMTP_REPLY_DONE);
	assert_string_equal(p.reply.enhanced, "");
	assert_int_equal(feed(&p, "550 5..1 no subject"), SMTP_REPLY_DONE);
	assert_string_equal(p.reply.enhanced, "");
}

static void test_mixed_codes_are_bad(void **state)
{
	struct smtp_reply_parser p;

	smtp_reply_parser_init(&p);
	assert_int_equal(feed(&p, "250-first"), SMTP_REPLY_MORE);
	assert_int_equal(feed(&p, "251 second"), SMTP_REPLY_BAD);
	assert_true(p.error[0] != '\0');
}

static void test_bad_digits_are_bad(void **state)
{
	const char *bad[] = {"",      "2",        "25",        "25x ok", "x50 ok", "150 info",
	                     "650 x", "050 zero", "250x text", "2500",   " 250 x", "250\tx"};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct smtp_reply_parser p;

		smtp_reply_parser_init(&p);
		assert_int_equal(feed(&p, bad[i]), SMTP_REPLY_BAD);
	}
}

static void test_too_long_line_is_bad(void **state)
{
	struct smtp_reply_parser p;
	char line[SMTP_REPLY_MAX_LINE + 2];

	memset(line, 'x', sizeof(line));
	memcpy(line, "250 ", 4);
	smtp_reply_parser_init(&p);
	assert_int_equal(smtp_reply_parser_feed(&p, line, SMTP_REPLY_MAX_LINE), SMTP_REPLY_DONE);
	assert_int_equal(smtp_reply_parser_feed(&p, line, SMTP_REPLY_MAX_LINE + 1), SMTP_REPLY_BAD);
}

static void test_too_many_lines_are_bad(void **state)
{
	struct smtp_reply_parser p;
	int i;

	smtp_reply_parser_init(&p);
	for (i = 0; i < SMTP_REPLY_MAX_LINES - 1; i++)
		assert_int_equal(feed(&p, "250-x"), SMTP_REPLY_MORE);
	assert_int_equal(feed(&p, "250 last"), SMTP_REPLY_DONE);
	assert_int_equal(p.reply.lines, SMTP_REPLY_MAX_LINES);
	for (i = 0; i < SMTP_REPLY_MAX_LINES; i++)
		assert_int_equal(feed(&p, "250-x"), SMTP_REPLY_MORE);
	assert_int_equal(feed(&p, "250 one too many"), SMTP_REPLY_BAD);
}

static void test_long_text_is_truncated_not_rejected(void **state)
{
	struct smtp_reply_parser p;
	char line[2000];
	int i;

	memset(line, 'y', sizeof(line));
	memcpy(line, "250-", 4);
	smtp_reply_parser_init(&p);
	for (i = 0; i < 10; i++)
		assert_int_equal(smtp_reply_parser_feed(&p, line, sizeof(line)), SMTP_REPLY_MORE);
	line[3] = ' ';
	assert_int_equal(smtp_reply_parser_feed(&p, line, sizeof(line)), SMTP_REPLY_DONE);
	assert_int_equal(strlen(p.reply.text), SMTP_REPLY_MAX_TEXT - 1);
}

static void test_parser_is_reused_across_replies(void **state)
{
	struct smtp_reply_parser p;

	smtp_reply_parser_init(&p);
	assert_int_equal(feed(&p, "250-a"), SMTP_REPLY_MORE);
	assert_int_equal(feed(&p, "250 b"), SMTP_REPLY_DONE);
	assert_int_equal(feed(&p, "354 go"), SMTP_REPLY_DONE);
	assert_int_equal(p.reply.code, 354);
	assert_string_equal(p.reply.text, "go");
	assert_int_equal(p.reply.lines, 1);
	/* after BAD a new reply starts afresh */
	assert_int_equal(feed(&p, "250-a"), SMTP_REPLY_MORE);
	assert_int_equal(feed(&p, "451 b"), SMTP_REPLY_BAD);
	assert_int_equal(feed(&p, "221 bye"), SMTP_REPLY_DONE);
	assert_int_equal(p.reply.code, 221);
}

static void test_written_reply_parses_back(void **state)
{
	struct evbuffer *out = evbuffer_new();
	struct smtp_reply_parser p;
	enum smtp_reply_status st = SMTP_REPLY_MORE;
	char *line;
	size_t n;

	smtp_reply_write(out, 421, "4.3.2", "shutting down\nsee you");
	smtp_reply_parser_init(&p);
	p.parse_enhanced = true;
	while ((line = evbuffer_readln(out, &n, EVBUFFER_EOL_CRLF_STRICT)) != NULL) {
		st = smtp_reply_parser_feed(&p, line, n);
		free(line);
	}
	assert_int_equal(st, SMTP_REPLY_DONE);
	assert_int_equal(p.reply.code, 421);
	assert_string_equal(p.reply.enhanced, "4.3.2");
	assert_string_equal(p.reply.text, "shutting down\nsee you");
	evbuffer_free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_single_line_reply_with_enhanced_code),
	    cmocka_unit_test(test_single_line_reply_without_enhanced_code),
	    cmocka_unit_test(test_multi_line_reply_repeats_code_and_enhanced_code),
	    cmocka_unit_test(test_reply_text_cannot_inject_lines),
	    cmocka_unit_test(test_trailing_newline_adds_no_empty_line),
	    cmocka_unit_test(test_empty_text_gives_bare_code),
	    cmocka_unit_test(test_invalid_code_is_sent_as_451),
	    cmocka_unit_test(test_writef_formats_text),
	    cmocka_unit_test(test_single_line_reply_is_parsed),
	    cmocka_unit_test(test_multi_line_reply_is_joined),
	    cmocka_unit_test(test_code_alone_is_accepted_as_last_line),
	    cmocka_unit_test(test_enhanced_code_is_parsed_when_enabled),
	    cmocka_unit_test(test_enhanced_code_is_not_parsed_when_disabled),
	    cmocka_unit_test(test_malformed_enhanced_code_is_text),
	    cmocka_unit_test(test_mixed_codes_are_bad),
	    cmocka_unit_test(test_bad_digits_are_bad),
	    cmocka_unit_test(test_too_long_line_is_bad),
	    cmocka_unit_test(test_too_many_lines_are_bad),
	    cmocka_unit_test(test_long_text_is_truncated_not_rejected),
	    cmocka_unit_test(test_parser_is_reused_across_replies),
	    cmocka_unit_test(test_written_reply_parses_back),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
