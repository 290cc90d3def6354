/* smtp_headers_test.c - header section walking, TLS-Required, sendmail -t
 * address lists and Bcc stripping (src/smtp/headers.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "smtp/headers.h"

#include <stdlib.h>
#include <string.h>

#define MAX_COLLECTED 16

struct collected {
	char addr[MAX_COLLECTED][256];
	int n;
};

static void collect(const char *addr, size_t len, void *arg)
{
	struct collected *c = arg;

	assert_true(c->n < MAX_COLLECTED);
	assert_true(len < sizeof(c->addr[0]));
	assert_int_equal(strlen(addr), len); /* NUL-terminated for convenience */
	memcpy(c->addr[c->n], addr, len);
	c->addr[c->n][len] = '\0';
	c->n++;
}

static int recipients(const char *msg, struct collected *c, char *why, size_t why_len)
{
	memset(c, 0, sizeof(*c));
	return msg_header_recipients(msg, strlen(msg), collect, c, why, why_len);
}

/* Checks that msg yields exactly the addresses in want (NULL-terminated). */
static void expect_recipients(const char *msg, const char *const *want)
{
	struct collected c;
	char why[128] = "";
	int i, n = recipients(msg, &c, why, sizeof(why));

	for (i = 0; want[i]; i++) {
		assert_true(i < c.n);
		assert_string_equal(c.addr[i], want[i]);
	}
	assert_int_equal(n, i);
	assert_int_equal(c.n, i);
}

static void expect_recipient_error(const char *msg, const char *why_part)
{
	struct collected c;
	char why[128] = "";

	assert_int_equal(recipients(msg, &c, why, sizeof(why)), -1);
	assert_non_null(strstr(why, why_part));
}

static void test_header_end_is_past_the_empty_line(void **state)
{
	const char *crlf = "A: 1\r\nB: 2\r\n\r\nbody";
	const char *lf = "A: 1\nB: 2\n\nbody";

	assert_int_equal(msg_header_end(crlf, strlen(crlf)), strlen(crlf) - 4);
	assert_int_equal(msg_header_end(lf, strlen(lf)), strlen(lf) - 4);
	assert_int_equal(msg_header_end("A: 1\r\n", 6), 6);
	assert_int_equal(msg_header_end("A: 1", 4), 4);
	assert_int_equal(msg_header_end("", 0), 0);
	assert_int_equal(msg_header_end("\r\nbody", 6), 2);
	assert_int_equal(msg_header_end("\nbody", 5), 1);
	assert_int_equal(msg_header_end("A: 1\r\n\r", 7), 7);
}

static void test_iterator_returns_names_and_folded_values(void **state)
{
	const char *msg = "Subject: hello\r\n"
	                  "To: a@example.com,\r\n"
	                  "\tb@example.com\r\n"
	                  "X-Empty:\r\n"
	                  "\r\n"
	                  "Body: not a header\r\n";
	struct msg_header_iter it;
	const char *name, *value;
	size_t nl, vl;

	msg_header_iter_init(&it, msg, strlen(msg));
	assert_true(msg_header_next(&it, &name, &nl, &value, &vl));
	assert_int_equal(nl, 7);
	assert_memory_equal(name, "Subject", 7);
	assert_int_equal(vl, 6);
	assert_memory_equal(value, " hello", 6);
	assert_true(msg_header_next(&it, &name, &nl, &value, &vl));
	assert_memory_equal(name, "To", 2);
	assert_int_equal(vl, strlen(" a@example.com,\r\n\tb@example.com"));
	assert_memory_equal(value, " a@example.com,\r\n\tb@example.com", vl);
	assert_true(msg_header_next(&it, &name, &nl, &value, &vl));
	assert_memory_equal(name, "X-Empty", 7);
	assert_int_equal(vl, 0);
	assert_false(msg_header_next(&it, &name, &nl, &value, &vl));
	assert_false(msg_header_next(&it, &name, &nl, &value, &vl));
}

static void test_iterator_accepts_lf_line_endings(void **state)
{
	const char *msg = "Subject: a\n b\nFrom: x\n\nbody";
	struct msg_header_iter it;
	const char *name, *value;
	size_t nl, vl;

	msg_header_iter_init(&it, msg, strlen(msg));
	assert_true(msg_header_next(&it, &name, &nl, &value, &vl));
	assert_int_equal(vl, 5);
	assert_memory_equal(value, " a\n b", 5);
	assert_true(msg_header_next(&it, &name, &nl, &value, &vl));
	assert_memory_equal(name, "From", 4);
	assert_int_equal(vl, 2);
	assert_false(msg_header_next(&it, &name, &nl, &value, &vl));
}

static void test_iterator_stops_at_an_invalid_line(void **state)
{
	const char *msg = "A: 1\r\nnot a header\r\nB: 2\r\n\r\n";
	const char *cont = " starts with space: x\r\n";
	const char *nocolon = "Name\r\n";
	struct msg_header_iter it;
	const char *name, *value;
	size_t nl, vl;

	msg_header_iter_init(&it, msg, strlen(msg));
	assert_true(msg_header_next(&it, &name, &nl, &value, &vl));
	assert_false(msg_header_next(&it, &name, &nl, &value, &vl));
	msg_header_iter_init(&it, cont, strlen(cont));
	assert_false(msg_header_next(&it, &name, &nl, &value, &vl));
	msg_header_iter_init(&it, nocolon, strlen(nocolon));
	assert_false(msg_header_next(&it, &name, &nl, &value, &vl));
	msg_header_iter_init(&it, ":x\r\n", 4);
	assert_false(msg_header_next(&it, &name, &nl, &value, &vl));
}

static void test_iterator_tolerates_space_before_colon(void **state)
{
	const char *msg = "Subject : obsolete\r\n";
	struct msg_header_iter it;
	const char *name, *value;
	size_t nl, vl;

	msg_header_iter_init(&it, msg, strlen(msg));
	assert_true(msg_header_next(&it, &name, &nl, &value, &vl));
	assert_int_equal(nl, 7);
	assert_memory_equal(value, " obsolete", vl);
}

static void test_iterator_is_bounded_by_len(void **state)
{
	const char *msg = "A: 1\r\nB: 2\r\n";
	struct msg_header_iter it;
	const char *name, *value;
	size_t nl, vl;

	msg_header_iter_init(&it, msg, 5); /* "A: 1\r" */
	assert_true(msg_header_next(&it, &name, &nl, &value, &vl));
	assert_int_equal(vl, 3);
	assert_false(msg_header_next(&it, &name, &nl, &value, &vl));
}

static bool tls_no(const char *msg)
{
	return msg_tls_required_no(msg, strlen(msg));
}

static void test_tls_required_no_is_detected(void **state)
{
	assert_true(tls_no("Subject: x\r\nTLS-Required: No\r\n\r\nbody"));
	assert_true(tls_no("tls-required: no\r\n\r\n"));
	assert_true(tls_no("TLS-Required:No\n\n"));
	assert_true(tls_no("TLS-Required: \t No \t\r\n\r\n"));
	assert_true(tls_no("TLS-Required: No\r\nTLS-Required: NO\r\n\r\n"));
}

static void test_tls_required_folded_value_is_detected(void **state)
{
	assert_true(tls_no("TLS-Required:\r\n No\r\n\r\n"));
	assert_true(tls_no("TLS-Required:\r\n\tNo\r\n \r\nSubject: x\r\n\r\n"));
}

static void test_tls_required_needs_every_field_to_say_no(void **state)
{
	assert_false(tls_no("TLS-Required: No\r\nTLS-Required: yes\r\n\r\n"));
	assert_false(tls_no("TLS-Required: yes\r\nTLS-Required: No\r\n\r\n"));
	assert_false(tls_no("TLS-Required: No thanks\r\n\r\n"));
	assert_false(tls_no("TLS-Required: Nope\r\n\r\n"));
	assert_false(tls_no("TLS-Required:\r\n\r\n"));
	assert_false(tls_no("TLS-Required: N\r\n o\r\n\r\n"));
}

static void test_tls_required_absent_or_in_body_is_false(void **state)
{
	assert_false(tls_no("Subject: x\r\n\r\n"));
	assert_false(tls_no(""));
	assert_false(tls_no("Subject: x\r\n\r\nTLS-Required: No\r\n"));
	assert_false(tls_no("X-TLS-Required: No\r\n\r\n"));
	assert_false(tls_no("TLS-Required-X: No\r\n\r\n"));
}

static void test_has_header_is_case_insensitive_and_ignores_the_body(void **state)
{
	const char *msg = "message-id: <1@x>\r\nDate: now\r\n\r\nFrom: body\r\n";

	assert_true(msg_has_header(msg, strlen(msg), "Message-ID"));
	assert_true(msg_has_header(msg, strlen(msg), "DATE"));
	assert_false(msg_has_header(msg, strlen(msg), "From"));
	assert_false(msg_has_header(msg, strlen(msg), "Date2"));
	assert_false(msg_has_header(msg, strlen(msg), "Dat"));
}

static void test_recipients_simple_list(void **state)
{
	const char *want[] = {"a@example.com", "b@example.org", NULL};

	expect_recipients("To: a@example.com, b@example.org\r\n\r\n", want);
}

static void test_recipients_display_names_and_angle_addresses(void **state)
{
	const char *want[] = {"john@example.com", "jane@example.org", "q@example.net",
	                      "odd@example.com", NULL};

	expect_recipients("To: John Smith <john@example.com>,\r\n"
	                  " \"Doe, Jane\" <jane@example.org>, John Q. Public <q@example.net>,\r\n"
	                  " odd@example.com <odd@example.com>\r\n\r\n",
	                  want);
}

static void test_recipients_groups(void **state)
{
	const char *none[] = {NULL};
	const char *want[] = {"a@b.example", "c@d.example", "e@f.example", NULL};

	expect_recipients("To: undisclosed-recipients:;\r\n\r\n", none);
	expect_recipients("To: G: a@b.example, C <c@d.example>;, e@f.example\r\n\r\n", want);
	expect_recipients("To: Group Name: a@b.example,c@d.example; e@f.example\r\n\r\n", want);
	expect_recipients("Cc: G: a@b.example, c@d.example, e@f.example\r\n\r\n", want);
}

static void test_recipients_comments_are_dropped(void **state)
{
	const char *want[] = {"a@b.example", "c@d.example", "pete@silly.test", NULL};

	expect_recipients("To: a(comment)@b.example (trailing (nested) comment),\r\n"
	                  " (leading) C (x\\)y) <c@d.example>,\r\n"
	                  " Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>\r\n\r\n",
	                  want);
}

static void test_recipients_quoted_local_parts_are_kept(void **state)
{
	const char *want[] = {"\"john smith\"@example.com", "\"a\\\"b\"@example.com", NULL};

	expect_recipients("To: \"john smith\"@example.com, <\"a\\\"b\"@example.com>\r\n\r\n", want);
}

static void test_recipients_folding_whitespace_is_removed(void **state)
{
	const char *want[] = {"first.last@example.com", "x@example.org", NULL};

	expect_recipients("To: first . last @\r\n example.com,\r\n\tx@example.org\n\n", want);
}

static void test_recipients_from_all_to_cc_bcc_fields(void **state)
{
	const char *want[] = {"a@x.example", "b@x.example", "c@x.example", "d@x.example", NULL};

	expect_recipients("From: me@x.example\r\n"
	                  "To: a@x.example\r\n"
	                  "Cc: b@x.example\r\n"
	                  "Reply-To: r@x.example\r\n"
	                  "BCC: c@x.example\r\n"
	                  "to: d@x.example\r\n"
	                  "\r\n"
	                  "To: body@x.example\r\n",
	                  want);
}

static void test_recipients_domain_literals_and_local_names(void **state)
{
	const char *want[] = {"u@[192.0.2.1]", "root", "\"quoted local\"", NULL};

	expect_recipients("To: u@[192.0.2.1], root, \"quoted local\"\n\n", want);
}

static void test_recipients_empty_elements_are_skipped(void **state)
{
	const char *want[] = {"a@b.example", "c@d.example", NULL};
	const char *none[] = {NULL};

	expect_recipients("To: , a@b.example,, c@d.example,\r\n\r\n", want);
	expect_recipients("To:\r\n\r\n", none);
	expect_recipients("Subject: nothing\r\n\r\n", none);
}

static void test_recipients_obsolete_route_is_dropped(void **state)
{
	const char *want[] = {"user@c.example", NULL};

	expect_recipients("To: <@a.example,@b.example:user@c.example>\r\n\r\n", want);
}

static void test_recipients_syntax_errors(void **state)
{
	expect_recipient_error("To: \"unterminated@example.com\r\n\r\n", "quoted");
	expect_recipient_error("To: a@b.example (open comment\r\n\r\n", "comment");
	expect_recipient_error("To: <a@b.example\r\n\r\n", "To");
	expect_recipient_error("To: John Smith\r\n\r\n", "invalid address");
	expect_recipient_error("To: a@b.example c@d.example\r\n\r\n", "invalid address");
	expect_recipient_error("Cc: G1: G2: a@b.example;;\r\n\r\n", "Cc");
	expect_recipient_error("To: a@b.example;\r\n\r\n", "group");
	expect_recipient_error("To: <>\r\n\r\n", "invalid address");
	expect_recipient_error("To: a@b..example\r\n\r\n", "invalid address");
	expect_recipient_error("To: a@[1.2.3.4].x\r\n\r\n", "invalid address");
	expect_recipient_error("To: <a@b.example> junk\r\n\r\n", "unexpected");
	expect_recipient_error("To: a@b.example\x01\r\n\r\n", "invalid character");
	expect_recipient_error("To: a@\r\n\r\n", "invalid address");
	expect_recipient_error("To: a\\b@c.example\r\n\r\n", "invalid character");
}

static void test_recipients_control_characters_in_quotes_are_rejected(void **state)
{
	static const char nul[] = "To: \"a\0b\"@example.com\r\n\r\n";
	struct collected c;
	char why[128] = "";

	memset(&c, 0, sizeof(c));
	assert_int_equal(msg_header_recipients(nul, sizeof(nul) - 1, collect, &c, why, sizeof(why)),
	                 -1);
	assert_int_equal(c.n, 0);
	assert_non_null(strstr(why, "control"));
	expect_recipient_error("To: \"a\\\x01\"@example.com\r\n\r\n", "control");
	expect_recipient_error("To: a@[1.2.3.4\x7f]\r\n\r\n", "control");
}

static void test_recipient_error_without_why_buffer_is_safe(void **state)
{
	const char *msg = "To: <\r\n\r\n";

	assert_int_equal(msg_header_recipients(msg, strlen(msg), collect, NULL, NULL, 0), -1);
}

static char *strip(const char *msg, size_t *n)
{
	char *out = msg_strip_bcc(msg, strlen(msg), n);

	assert_non_null(out);
	return out;
}

static void test_strip_bcc_removes_bcc_fields_with_continuations(void **state)
{
	const char *msg = "From: a@x.example\r\n"
	                  "Bcc: hidden@x.example,\r\n"
	                  " other@x.example\r\n"
	                  "To: b@x.example\r\n"
	                  "bcc: more@x.example\r\n"
	                  "\r\n"
	                  "Bcc: in the body stays\r\n";
	const char *want = "From: a@x.example\r\n"
	                   "To: b@x.example\r\n"
	                   "\r\n"
	                   "Bcc: in the body stays\r\n";
	size_t n;
	char *out = strip(msg, &n);

	assert_int_equal(n, strlen(want));
	assert_string_equal(out, want);
	free(out);
}

static void test_strip_bcc_keeps_messages_without_bcc(void **state)
{
	const char *msg = "From: a\nTo: b\n\nbody\n";
	const char *last = "To: b\nBcc: c";
	size_t n;
	char *out = strip(msg, &n);

	assert_string_equal(out, msg);
	assert_int_equal(n, strlen(msg));
	free(out);
	out = strip("", &n);
	assert_int_equal(n, 0);
	free(out);
	out = strip(last, &n); /* a last field without line ending */
	assert_string_equal(out, "To: b\n");
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_header_end_is_past_the_empty_line),
	    cmocka_unit_test(test_iterator_returns_names_and_folded_values),
	    cmocka_unit_test(test_iterator_accepts_lf_line_endings),
	    cmocka_unit_test(test_iterator_stops_at_an_invalid_line),
	    cmocka_unit_test(test_iterator_tolerates_space_before_colon),
	    cmocka_unit_test(test_iterator_is_bounded_by_len),
	    cmocka_unit_test(test_tls_required_no_is_detected),
	    cmocka_unit_test(test_tls_required_folded_value_is_detected),
	    cmocka_unit_test(test_tls_required_needs_every_field_to_say_no),
	    cmocka_unit_test(test_tls_required_absent_or_in_body_is_false),
	    cmocka_unit_test(test_has_header_is_case_insensitive_and_ignores_the_body),
	    cmocka_unit_test(test_recipients_simple_list),
	    cmocka_unit_test(test_recipients_display_names_and_angle_addresses),
	    cmocka_unit_test(test_recipients_groups),
	    cmocka_unit_test(test_recipients_comments_are_dropped),
	    cmocka_unit_test(test_recipients_quoted_local_parts_are_kept),
	    cmocka_unit_test(test_recipients_folding_whitespace_is_removed),
	    cmocka_unit_test(test_recipients_from_all_to_cc_bcc_fields),
	    cmocka_unit_test(test_recipients_domain_literals_and_local_names),
	    cmocka_unit_test(test_recipients_empty_elements_are_skipped),
	    cmocka_unit_test(test_recipients_obsolete_route_is_dropped),
	    cmocka_unit_test(test_recipients_syntax_errors),
	    cmocka_unit_test(test_recipients_control_characters_in_quotes_are_rejected),
	    cmocka_unit_test(test_recipient_error_without_why_buffer_is_safe),
	    cmocka_unit_test(test_strip_bcc_removes_bcc_fields_with_continuations),
	    cmocka_unit_test(test_strip_bcc_keeps_messages_without_bcc),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
