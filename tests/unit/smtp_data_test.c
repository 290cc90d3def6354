/* smtp_data_test.c - DATA reader, BDAT scan and dot-stuffing (src/smtp/data.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "smtp/data.h"

#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>

/* What one run of the reader produced. */
struct result {
	char *body;
	size_t body_len;
	char *rest; /* input left over after the end of data */
	size_t rest_len;
	unsigned flags;
	uint64_t size;
	bool done;
	size_t calls_until_done; /* feeds until the end was found */
};

static uint32_t rng_state = 12345;

static uint32_t rng(void)
{
	rng_state = rng_state * 1103515245u + 12345u;
	return rng_state >> 8;
}

static char *drain_all(struct evbuffer *b, size_t *len)
{
	size_t n = evbuffer_get_length(b);
	char *s = malloc(n + 1);

	assert_non_null(s);
	evbuffer_remove(b, s, n);
	s[n] = '\0';
	*len = n;
	return s;
}

/* Feeds data in pieces; split(i) gives the size of piece i (0 = all the
 * rest). The pieces go into one evbuffer that the reader sees growing, as
 * a connection would deliver them. */
static struct result run_reader(const char *data, size_t len, size_t max_size, size_t max_line,
                                size_t (*split)(size_t i))
{
	struct smtp_data_reader r;
	struct evbuffer *in = evbuffer_new(), *body = evbuffer_new();
	struct result res = {0};
	size_t off = 0, i = 0;

	smtp_data_reader_init(&r, max_size, max_line);
	while (off < len && !res.done) {
		size_t n = split ? split(i) : 0;

		if (n == 0 || n > len - off)
			n = len - off;
		evbuffer_add(in, data + off, n);
		off += n;
		i++;
		res.done = smtp_data_reader_feed(&r, in, body);
		if (!res.done)
			assert_int_equal(evbuffer_get_length(in), 0);
	}
	res.calls_until_done = i;
	if (off < len)
		evbuffer_add(in, data + off, len - off);
	res.body = drain_all(body, &res.body_len);
	res.rest = drain_all(in, &res.rest_len);
	res.flags = r.flags;
	res.size = r.size;
	evbuffer_free(in);
	evbuffer_free(body);
	return res;
}

static void result_free(struct result *r)
{
	free(r->body);
	free(r->rest);
}

static size_t split_one(size_t i)
{
	return 1;
}

static size_t split_random(size_t i)
{
	return 1 + rng() % 7;
}

static size_t split_random_large(size_t i)
{
	return 1 + rng() % 300;
}

static struct result read_whole(const char *data, size_t max_size, size_t max_line)
{
	return run_reader(data, strlen(data), max_size, max_line, NULL);
}

static void expect_body(const char *data, const char *body, const char *rest, unsigned flags)
{
	struct result r = read_whole(data, 1 << 20, 1000);

	assert_true(r.done);
	assert_string_equal(r.body, body);
	assert_string_equal(r.rest, rest);
	assert_int_equal(r.flags, flags);
	assert_int_equal(r.size, strlen(body));
	result_free(&r);
}

static void test_simple_message_ends_at_crlf_dot_crlf(void **state)
{
	expect_body("Subject: hi\r\n\r\nbody\r\n.\r\n", "Subject: hi\r\n\r\nbody\r\n", "", 0);
}

static void test_empty_data_is_just_the_dot_line(void **state)
{
	expect_body(".\r\n", "", "", 0);
	expect_body("\r\n.\r\n", "\r\n", "", 0);
}

static void test_pipelined_commands_stay_in_the_input(void **state)
{
	expect_body("a\r\n.\r\nQUIT\r\n", "a\r\n", "QUIT\r\n", 0);
	expect_body("a\r\n.\r\nMAIL FROM:<>\r\nRCPT", "a\r\n", "MAIL FROM:<>\r\nRCPT", 0);
}

static void test_leading_dot_is_unstuffed(void **state)
{
	expect_body("..\r\n...x\r\n.y\r\nz.\r\n.\r\n", ".\r\n..x\r\ny\r\nz.\r\n", "", 0);
	expect_body(".start\r\n.\r\n", "start\r\n", "", 0);
}

static void test_dot_line_with_text_does_not_end_data(void **state)
{
	expect_body("a\r\n. \r\n.x\r\n.\r\n", "a\r\n \r\nx\r\n", "", 0);
}

static void test_bare_lf_dot_does_not_end_data(void **state)
{
	/* ".\n" at the start of a line: the dot is unstuffed, the LF is body */
	expect_body("a\r\n.\nb\r\n.\r\n", "a\r\n\nb\r\n", "", SMTP_DATA_BARE_LF);
	/* LF "." CRLF: the dot does not start a line */
	expect_body("a\n.\r\nb\r\n.\r\n", "a\n.\r\nb\r\n", "", SMTP_DATA_BARE_LF);
	/* and after a bare LF even ".\r\n" is text: only CRLF starts a line */
	expect_body("a\n.\n.\r\n.\r\n", "a\n.\n.\r\n", "", SMTP_DATA_BARE_LF);
}

static void test_bare_cr_dot_does_not_end_data(void **state)
{
	expect_body("a\r\n.\rb\r\n.\r\n", "a\r\n\rb\r\n", "", SMTP_DATA_BARE_CR);
	expect_body("a\r.\r\n.\r\n", "a\r.\r\n", "", SMTP_DATA_BARE_CR);
	expect_body("a\r\n.\r\r\n.\r\n", "a\r\n\r\r\n", "", SMTP_DATA_BARE_CR);
}

static void test_incomplete_data_needs_more_input(void **state)
{
	const char *partial[] = {"", "a", "a\r\n", "a\r\n.", "a\r\n.\r", "a\r\n.\n.\r"};
	size_t i;

	for (i = 0; i < sizeof(partial) / sizeof(partial[0]); i++) {
		struct result r = read_whole(partial[i], 100, 100);

		assert_false(r.done);
		result_free(&r);
	}
}

static void test_flags_report_8bit_nul_bare_cr_and_bare_lf(void **state)
{
	static const char nul[] = "a\0b\r\n.\r\n";
	struct result r;

	expect_body("caf\xc3\xa9\r\n.\r\n", "caf\xc3\xa9\r\n", "", SMTP_DATA_8BIT);
	expect_body("a\rb\r\n.\r\n", "a\rb\r\n", "", SMTP_DATA_BARE_CR);
	expect_body("a\nb\r\n.\r\n", "a\nb\r\n", "", SMTP_DATA_BARE_LF);
	expect_body("\n\r\n.\r\n", "\n\r\n", "", SMTP_DATA_BARE_LF);
	expect_body("a\r\r\n.\r\n", "a\r\r\n", "", SMTP_DATA_BARE_CR);
	r = run_reader(nul, sizeof(nul) - 1, 100, 100, NULL);
	assert_true(r.done);
	assert_int_equal(r.flags, SMTP_DATA_NUL);
	assert_int_equal(r.body_len, 5);
	assert_memory_equal(r.body, "a\0b\r\n", 5);
	result_free(&r);
}

static void test_long_line_is_flagged(void **state)
{
	struct result r;

	r = read_whole("0123456789\r\n.\r\n", 100, 10);
	assert_int_equal(r.flags, 0);
	result_free(&r);
	r = read_whole("0123456789A\r\n.\r\n", 100, 10);
	assert_int_equal(r.flags, SMTP_DATA_LONG_LINE);
	assert_string_equal(r.body, "0123456789A\r\n");
	result_free(&r);
	/* the stuffed dot does not count */
	r = read_whole("..123456789\r\n.\r\n", 100, 10);
	assert_int_equal(r.flags, 0);
	result_free(&r);
	/* split right between CR and LF of a full-length line */
	r = run_reader("0123456789\r\n.\r\n", 15, 100, 10, split_one);
	assert_int_equal(r.flags, 0);
	result_free(&r);
}

static void test_too_big_stops_storing_but_finds_the_end(void **state)
{
	struct result r = read_whole("0123456789\r\n0123456789\r\n.\r\nQUIT\r\n", 15, 100);

	assert_true(r.done);
	assert_true(r.flags & SMTP_DATA_TOO_BIG);
	assert_int_equal(r.body_len, 15);
	assert_memory_equal(r.body, "0123456789\r\n012", 15);
	assert_int_equal(r.size, 24);
	assert_string_equal(r.rest, "QUIT\r\n");
	result_free(&r);
	r = read_whole("0123456789\r\n.\r\n", 12, 100); /* exactly max_size */
	assert_int_equal(r.flags, 0);
	assert_int_equal(r.body_len, 12);
	result_free(&r);
}

static void test_zero_limits_mean_unlimited(void **state)
{
	struct result r = read_whole("0123456789\r\n.\r\n", 0, 0);

	assert_int_equal(r.flags, 0);
	assert_int_equal(r.body_len, 12);
	result_free(&r);
}

/* A message with every feature the reader handles, for the split tests. */
static const char tricky[] = "Subject: x\r\n"
                             "\r\n"
                             "..stuffed\r\n"
                             ".\n"
                             "bare\nlf\r\n"
                             "bare\rcr\r\n"
                             "8bit \xc3\xa9\r\n"
                             "a very long line that is longer than forty octets in total\r\n"
                             ".\r"
                             "x\r\n"
                             "last\r\r\n"
                             "\r\n"
                             ".\r\n"
                             "QUIT\r\n";

static void expect_same_result(const struct result *a, const struct result *b)
{
	assert_int_equal(a->done, b->done);
	assert_int_equal(a->body_len, b->body_len);
	assert_memory_equal(a->body, b->body, a->body_len);
	assert_int_equal(a->rest_len, b->rest_len);
	assert_memory_equal(a->rest, b->rest, a->rest_len);
	assert_int_equal(a->flags, b->flags);
	assert_int_equal(a->size, b->size);
}

static void test_one_byte_at_a_time_gives_the_same_result(void **state)
{
	struct result whole = run_reader(tricky, sizeof(tricky) - 1, 1000, 40, NULL);
	struct result bytes = run_reader(tricky, sizeof(tricky) - 1, 1000, 40, split_one);

	assert_true(whole.done);
	assert_string_equal(whole.rest, "QUIT\r\n");
	assert_int_equal(whole.flags, SMTP_DATA_BARE_LF | SMTP_DATA_BARE_CR | SMTP_DATA_8BIT |
	                                  SMTP_DATA_LONG_LINE);
	expect_same_result(&whole, &bytes);
	assert_int_equal(bytes.calls_until_done, sizeof(tricky) - 1 - 6);
	result_free(&whole);
	result_free(&bytes);
}

static void test_random_splits_give_the_same_result(void **state)
{
	struct result whole = run_reader(tricky, sizeof(tricky) - 1, 1000, 40, NULL);
	int round;

	for (round = 0; round < 200; round++) {
		struct result r = run_reader(tricky, sizeof(tricky) - 1, 1000, 40, split_random);

		expect_same_result(&whole, &r);
		result_free(&r);
	}
	for (round = 0; round < 50; round++) {
		/* a max_size inside the message: the truncation point is split too */
		struct result w = run_reader(tricky, sizeof(tricky) - 1, 50, 40, NULL);
		struct result r = run_reader(tricky, sizeof(tricky) - 1, 50, 40, split_random);

		expect_same_result(&w, &r);
		assert_true(r.flags & SMTP_DATA_TOO_BIG);
		result_free(&w);
		result_free(&r);
	}
	result_free(&whole);
}

static void test_end_of_data_is_found_at_every_split_point(void **state)
{
	const char *msg = "line\r\n.\r\nNEXT";
	size_t len = strlen(msg), cut;

	for (cut = 1; cut < len; cut++) {
		struct smtp_data_reader r;
		struct evbuffer *in = evbuffer_new(), *body = evbuffer_new();
		bool done;

		smtp_data_reader_init(&r, 100, 100);
		evbuffer_add(in, msg, cut);
		done = smtp_data_reader_feed(&r, in, body);
		assert_int_equal(done, cut >= 9);
		evbuffer_add(in, msg + cut, len - cut);
		assert_true(smtp_data_reader_feed(&r, in, body));
		assert_int_equal(evbuffer_get_length(body), 6);
		assert_int_equal(evbuffer_get_length(in), 4);
		evbuffer_free(in);
		evbuffer_free(body);
	}
}

static void test_many_small_chains_are_read_in_one_feed(void **state)
{
	struct smtp_data_reader r;
	struct evbuffer *in = evbuffer_new(), *body = evbuffer_new();
	size_t i, len = sizeof(tricky) - 1;
	struct result whole = run_reader(tricky, len, 1000, 40, NULL);
	char *got;
	size_t got_len;

	/* one chain per octet: far more chains than one peek returns */
	for (i = 0; i < len; i++)
		evbuffer_add_reference(in, tricky + i, 1, NULL, NULL);
	smtp_data_reader_init(&r, 1000, 40);
	assert_true(smtp_data_reader_feed(&r, in, body));
	assert_int_equal(evbuffer_get_length(in), 6);
	got = drain_all(body, &got_len);
	assert_int_equal(got_len, whole.body_len);
	assert_memory_equal(got, whole.body, got_len);
	assert_int_equal(r.flags, whole.flags);
	free(got);
	result_free(&whole);
	evbuffer_free(in);
	evbuffer_free(body);
}

static void test_feed_after_the_end_consumes_nothing(void **state)
{
	struct smtp_data_reader r;
	struct evbuffer *in = evbuffer_new(), *body = evbuffer_new();

	smtp_data_reader_init(&r, 100, 100);
	evbuffer_add(in, "x\r\n.\r\n.\r\n", 9);
	assert_true(smtp_data_reader_feed(&r, in, body));
	assert_int_equal(evbuffer_get_length(in), 3);
	assert_true(smtp_data_reader_feed(&r, in, body));
	assert_int_equal(evbuffer_get_length(in), 3);
	assert_int_equal(evbuffer_get_length(body), 3);
	evbuffer_free(in);
	evbuffer_free(body);
}

static void test_bdat_scan_counts_and_flags_without_unstuffing(void **state)
{
	struct smtp_data_reader r;

	smtp_data_reader_init(&r, 100, 10);
	smtp_data_scan(&r, (const unsigned char *)".\r\n..x\r\n", 8);
	assert_int_equal(r.size, 8);
	assert_int_equal(r.flags, 0);
	smtp_data_scan(&r, (const unsigned char *)"abc\r", 4);
	assert_int_equal(r.flags, 0);
	smtp_data_scan(&r, (const unsigned char *)"\nabc\r", 5); /* CRLF across chunks */
	assert_int_equal(r.flags, 0);
	smtp_data_scan(&r, (const unsigned char *)"x", 1); /* that CR was bare */
	assert_int_equal(r.flags, SMTP_DATA_BARE_CR);
	smtp_data_scan(&r, (const unsigned char *)"\n\xff", 2);
	assert_int_equal(r.flags, SMTP_DATA_BARE_CR | SMTP_DATA_BARE_LF | SMTP_DATA_8BIT);
	assert_int_equal(r.size, 20);
}

static void test_bdat_scan_flags_long_lines_and_size(void **state)
{
	struct smtp_data_reader r;

	smtp_data_reader_init(&r, 10, 5);
	smtp_data_scan(&r, (const unsigned char *)"12345\r", 6);
	assert_int_equal(r.flags, 0);
	smtp_data_scan(&r, (const unsigned char *)"\n123456", 7);
	assert_int_equal(r.flags, SMTP_DATA_LONG_LINE | SMTP_DATA_TOO_BIG);
}

static char *stuff(const char *body, size_t len, size_t *out_len)
{
	struct evbuffer *out = evbuffer_new();
	char *s;

	smtp_dot_stuff((const unsigned char *)body, len, out);
	s = drain_all(out, out_len);
	evbuffer_free(out);
	return s;
}

static void expect_stuffed(const char *body, const char *wire)
{
	size_t n;
	char *s = stuff(body, strlen(body), &n);

	assert_string_equal(s, wire);
	free(s);
}

static void test_dot_stuff_escapes_leading_dots(void **state)
{
	expect_stuffed("a\r\n.b\r\n..c\r\nd.\r\n", "a\r\n..b\r\n...c\r\nd.\r\n.\r\n");
	expect_stuffed(".\r\n", "..\r\n.\r\n");
	expect_stuffed(".first\r\n", "..first\r\n.\r\n");
}

static void test_dot_stuff_adds_missing_final_crlf(void **state)
{
	expect_stuffed("no newline", "no newline\r\n.\r\n");
	expect_stuffed("a\r\n.", "a\r\n..\r\n.\r\n");
	expect_stuffed("", ".\r\n");
	expect_stuffed("a\r\n", "a\r\n.\r\n");
}

static void test_dot_stuff_turns_bare_cr_and_lf_into_crlf(void **state)
{
	expect_stuffed("a\nb\n", "a\r\nb\r\n.\r\n");
	expect_stuffed("a\n.\r\n", "a\r\n..\r\n.\r\n"); /* no smuggled end for lax receivers */
	expect_stuffed("a\rb", "a\r\nb\r\n.\r\n");
	expect_stuffed("a\r\r\n", "a\r\n\r\n.\r\n");
	expect_stuffed("\n.\n", "\r\n..\r\n.\r\n");
}

/* A random body of CRLF lines, many of them starting with dots. */
static size_t random_body(char *buf, size_t cap)
{
	static const char alphabet[] = "..ab .\t\xc3\xa9x";
	size_t n = 0;

	while (n + 40 < cap && rng() % 30 != 0) {
		size_t line = rng() % 30, i;

		for (i = 0; i < line; i++)
			buf[n++] = alphabet[rng() % (sizeof(alphabet) - 1)];
		buf[n++] = '\r';
		buf[n++] = '\n';
	}
	return n;
}

static void test_dot_stuffing_round_trip_gives_the_original(void **state)
{
	int round;

	for (round = 0; round < 300; round++) {
		char body[4096];
		size_t len = random_body(body, sizeof(body)), wire_len;
		char *wire = stuff(body, len, &wire_len);
		struct result r = run_reader(wire, wire_len, 1 << 20, 1000,
		                             round % 2 ? split_random : split_random_large);

		assert_true(r.done);
		assert_int_equal(r.rest_len, 0);
		assert_int_equal(r.body_len, len);
		assert_memory_equal(r.body, body, len);
		assert_int_equal(r.flags & ~(unsigned)SMTP_DATA_8BIT, 0);
		result_free(&r);
		free(wire);
	}
}

/* The encoder's output for body fed in pieces cut at the given points. */
static char *encode_split(const char *body, size_t len, bool dot, size_t max_line,
                          const size_t *cuts, size_t ncuts, size_t *out_len)
{
	struct evbuffer *out = evbuffer_new();
	struct smtp_encoder e;
	size_t from = 0;
	char *s;

	smtp_encoder_init(&e, dot, max_line);
	for (size_t i = 0; i <= ncuts; i++) {
		size_t to = i < ncuts ? cuts[i] : len;

		smtp_encoder_feed(&e, (const unsigned char *)body + from, to - from, out);
		from = to;
	}
	smtp_encoder_end(&e, out);
	s = drain_all(out, out_len);
	evbuffer_free(out);
	return s;
}

static void test_encoder_gives_the_same_octets_however_the_body_is_cut(void **state)
{
	static const char *const bodies[] = {
	    "a\r\n.b\r\n..c\r\n", "x\ry\nz\r\n.", "\r\n\r\n.\r\n", "a\r", ".\r\n.\r", "abc",
	};
	for (size_t b = 0; b < sizeof bodies / sizeof bodies[0]; b++) {
		size_t len = strlen(bodies[b]), whole_len;
		char *whole = encode_split(bodies[b], len, true, 4, NULL, 0, &whole_len);

		for (size_t i = 0; i <= len; i++)
			for (size_t j = i; j <= len; j++) {
				size_t cuts[2] = {i, j}, n;
				char *s = encode_split(bodies[b], len, true, 4, cuts, 2, &n);

				assert_int_equal(n, whole_len);
				assert_memory_equal(s, whole, n);
				free(s);
			}
		free(whole);
	}
}

static void test_encoder_breaks_lines_over_the_limit_with_crlf_space(void **state)
{
	size_t n;
	char *s = encode_split("abcdefgh\r\nabcd\r\n", 16, false, 4, NULL, 0, &n);

	/* RFC 5322 §2.1.1: no line on the wire beyond the limit */
	assert_string_equal(s, "abcd\r\n efg\r\n h\r\nabcd\r\n");
	free(s);
	s = encode_split(".abcde", 6, true, 4, NULL, 0, &n);
	assert_string_equal(s, "..abc\r\n de\r\n.\r\n"); /* the stuffed dot is not counted */
	free(s);
}

static void test_encoder_without_dot_stuffing_adds_no_end_marker(void **state)
{
	size_t n;
	char *s = encode_split(".a\nb", 4, false, 0, NULL, 0, &n);

	assert_string_equal(s, ".a\r\nb\r\n");
	free(s);
	s = encode_split("", 0, false, 0, NULL, 0, &n);
	assert_int_equal(n, 0);
	free(s);
}

static void test_encoded_long_lines_fit_the_listener(void **state)
{
	/* a 5,000-octet line never reaches a receiver as one line */
	char body[5002];
	size_t n;

	memset(body, 'x', 5000);
	memcpy(body + 5000, "\r\n", 2);
	char *s = encode_split(body, sizeof body, true, 998, NULL, 0, &n);
	struct result r = run_reader(s, n, 1 << 20, 998, split_random);

	assert_true(r.done);
	assert_int_equal(r.flags & SMTP_DATA_LONG_LINE, 0);
	assert_int_equal(r.body_len, 5000 + 2 + 5 * 3);
	result_free(&r);
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_simple_message_ends_at_crlf_dot_crlf),
	    cmocka_unit_test(test_empty_data_is_just_the_dot_line),
	    cmocka_unit_test(test_pipelined_commands_stay_in_the_input),
	    cmocka_unit_test(test_leading_dot_is_unstuffed),
	    cmocka_unit_test(test_dot_line_with_text_does_not_end_data),
	    cmocka_unit_test(test_bare_lf_dot_does_not_end_data),
	    cmocka_unit_test(test_bare_cr_dot_does_not_end_data),
	    cmocka_unit_test(test_incomplete_data_needs_more_input),
	    cmocka_unit_test(test_flags_report_8bit_nul_bare_cr_and_bare_lf),
	    cmocka_unit_test(test_long_line_is_flagged),
	    cmocka_unit_test(test_too_big_stops_storing_but_finds_the_end),
	    cmocka_unit_test(test_zero_limits_mean_unlimited),
	    cmocka_unit_test(test_one_byte_at_a_time_gives_the_same_result),
	    cmocka_unit_test(test_random_splits_give_the_same_result),
	    cmocka_unit_test(test_end_of_data_is_found_at_every_split_point),
	    cmocka_unit_test(test_many_small_chains_are_read_in_one_feed),
	    cmocka_unit_test(test_feed_after_the_end_consumes_nothing),
	    cmocka_unit_test(test_bdat_scan_counts_and_flags_without_unstuffing),
	    cmocka_unit_test(test_bdat_scan_flags_long_lines_and_size),
	    cmocka_unit_test(test_dot_stuff_escapes_leading_dots),
	    cmocka_unit_test(test_dot_stuff_adds_missing_final_crlf),
	    cmocka_unit_test(test_dot_stuff_turns_bare_cr_and_lf_into_crlf),
	    cmocka_unit_test(test_dot_stuffing_round_trip_gives_the_original),
	    cmocka_unit_test(test_encoder_gives_the_same_octets_however_the_body_is_cut),
	    cmocka_unit_test(test_encoder_breaks_lines_over_the_limit_with_crlf_space),
	    cmocka_unit_test(test_encoder_without_dot_stuffing_adds_no_end_marker),
	    cmocka_unit_test(test_encoded_long_lines_fit_the_listener),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
