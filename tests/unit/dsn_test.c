/* dsn_test.c - delay and failure notices (src/dsn/dsn.c): the MIME structure
 * of multipart/report, the delivery-status fields, the delay schedule in the
 * text, REQUIRETLS redaction, the RFC 6533 variants, and line discipline
 * (CRLF only, at most 998 octets) with hostile remote text. The notices are
 * read back with a small MIME walk here and, when python3 is installed, with
 * Python's email parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "dsn/dsn.h"
#include "util/timeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_PARTS  8
#define MAX_BLOCKS 8

#define T_ARRIVAL 1764400000000LL /* Sat, 29 Nov 2025 07:06:40 +0000 */
#define T_LAST    (T_ARRIVAL + 3600000LL)
#define T_NOW     (T_LAST + 1000LL)
#define T_NEXT1   (T_LAST + 2 * 3600000LL)
#define T_NEXT2   (T_NEXT1 + 4 * 3600000LL)
#define T_NEXT3   (T_NEXT2 + 8 * 3600000LL)
#define T_UNTIL   (T_NEXT3 + 60000LL)

static const char original_headers[] =
    "Received: from client.example (client.example [192.0.2.9])\r\n"
    "\tby mx.out.example with ESMTPSA id 4Q1x\r\n"
    "From: Alice <alice@sender.example>\r\n"
    "To: bob@rcpt.example, carol@rcpt.example\r\n"
    "Subject: Quarterly numbers (secret)\r\n"
    "Message-ID: <orig.123@sender.example>\r\n"
    "Date: Sat, 29 Nov 2025 07:06:39 +0000\r\n";

/* One MIME entity: its header section (CRLF lines) and body. */
struct entity {
	const char *head;
	size_t head_len;
	const char *body;
	size_t body_len;
};

struct notice {
	char *msg;
	size_t len;
	struct entity top;
	struct entity parts[MAX_PARTS];
	size_t nparts;
	char boundary[128];
};

static const struct dsn_recipient default_rcpts[] = {
    {.address = "bob@rcpt.example",
     .status = "5.1.1",
     .remote_mta = "mx1.rcpt.example",
     .remote_ip = "198.51.100.7",
     .diagnostic = "550 5.1.1 <bob@rcpt.example>: no such user",
     .reason = "the recipient's server rejected the address",
     .last_attempt_ms = T_LAST},
    {.address = "carol@rcpt.example",
     .status = "5.4.4",
     .reason = "no MX or address records for rcpt.example",
     .last_attempt_ms = T_LAST - 60000},
};

static const int64_t default_next[] = {T_NEXT1, T_NEXT2, T_NEXT3};

static struct dsn_report report_base(void)
{
	return (struct dsn_report){
	    .reporting_mta = "mx.out.example",
	    .original_sender = "alice@sender.example",
	    .original_id = "Q4F7A2B9C1",
	    .arrival_ms = T_ARRIVAL,
	    .now_ms = T_NOW,
	    .original_headers = original_headers,
	    .original_headers_len = sizeof original_headers - 1,
	    .rcpts = default_rcpts,
	    .nrcpt = 2,
	};
}

static struct dsn_report report_delay(void)
{
	struct dsn_report r = report_base();

	r.delay = true;
	r.next_attempts_ms = default_next;
	r.nnext = 3;
	r.will_retry_until_ms = T_UNTIL;
	return r;
}

static char *date(int64_t ms)
{
	static char buf[4][48];
	static int next;
	char *b = buf[next++ % 4];

	time_format_rfc5322(ms, b, sizeof buf[0]);
	return b;
}

/* ---- a small MIME reader ------------------------------------------------ */

static const char *find(const char *hay, size_t len, const char *needle)
{
	return memmem(hay, len, needle, strlen(needle));
}

static bool contains(const char *hay, size_t len, const char *needle)
{
	return find(hay, len, needle) != NULL;
}

static size_t count(const char *hay, size_t len, const char *needle)
{
	size_t n = 0, nl = strlen(needle);
	const char *p = hay, *end = hay + len;

	while ((p = memmem(p, (size_t)(end - p), needle, nl)) != NULL) {
		n++;
		p += nl;
	}
	return n;
}

/* Splits text at its first empty line into header section and body. */
static struct entity split_entity(const char *s, size_t len)
{
	struct entity e = {.head = s, .head_len = len, .body = s + len, .body_len = 0};
	const char *sep;

	if (len >= 2 && s[0] == '\r' && s[1] == '\n') {
		e.head_len = 0;
		e.body = s + 2;
		e.body_len = len - 2;
		return e;
	}
	sep = find(s, len, "\r\n\r\n");
	if (sep) {
		e.head_len = (size_t)(sep - s) + 2;
		e.body = sep + 4;
		e.body_len = len - (size_t)(e.body - s);
	}
	return e;
}

/* The unfolded value of header field name in head (without leading
 * whitespace), or NULL; caller frees. */
static char *field(const char *head, size_t len, const char *name)
{
	const char *p = head, *end = head + len;
	size_t nl = strlen(name);

	while (p < end) {
		const char *eol = find(p, (size_t)(end - p), "\r\n");

		if (!eol)
			eol = end;
		if ((size_t)(eol - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			char *v = malloc(len + 1);
			size_t o = 0;
			const char *q = p + nl + 1;

			assert_non_null(v);
			while (q < end) {
				if (q + 1 < end && q[0] == '\r' && q[1] == '\n') {
					if (q + 2 < end && (q[2] == ' ' || q[2] == '\t')) {
						q += 2;
						continue;
					}
					break;
				}
				v[o++] = *q++;
			}
			v[o] = '\0';
			o = strspn(v, " \t");
			memmove(v, v + o, strlen(v + o) + 1);
			return v;
		}
		p = eol + 2;
	}
	return NULL;
}

static void assert_field(const char *head, size_t len, const char *name, const char *want)
{
	char *v = field(head, len, name);

	if (!v)
		fail_msg("missing field %s", name);
	assert_string_equal(v, want);
	free(v);
}

static void assert_no_field(const char *head, size_t len, const char *name)
{
	char *v = field(head, len, name);

	if (v)
		fail_msg("unexpected field %s: %s", name, v);
}

/* The media type of an entity: the Content-Type value up to ';',
 * lower-cased; "text/plain" when absent (RFC 2045 §5.2). */
static void media_type(const struct entity *e, char *out, size_t n)
{
	char *v = field(e->head, e->head_len, "Content-Type");
	size_t i;

	snprintf(out, n, "%s", v ? v : "text/plain");
	for (i = 0; out[i] && out[i] != ';' && out[i] != ' '; i++)
		out[i] = (char)((out[i] >= 'A' && out[i] <= 'Z') ? out[i] + 32 : out[i]);
	out[i] = '\0';
	free(v);
}

/* Composes r and walks the result: top entity, boundary, parts (RFC 2046
 * §5.1.1: each delimiter is CRLF "--" boundary, the close one adds "--"). */
static void compose(const struct dsn_report *r, struct notice *n)
{
	char *ct, *b, *close;
	const char *p, *end;

	memset(n, 0, sizeof *n);
	n->msg = dsn_compose(r, &n->len);
	assert_non_null(n->msg);
	assert_int_equal(strlen(n->msg), n->len);
	n->top = split_entity(n->msg, n->len);
	ct = field(n->top.head, n->top.head_len, "Content-Type");
	assert_non_null(ct);
	b = strstr(ct, "boundary=\"");
	assert_non_null(b);
	b += strlen("boundary=\"");
	assert_non_null(strchr(b, '"'));
	*strchr(b, '"') = '\0';
	assert_true(strlen(b) > 0 && strlen(b) <= 70); /* RFC 2046 §5.1.1 */
	snprintf(n->boundary, sizeof n->boundary, "\r\n--%s", b);
	free(ct);

	/* The body starts with a preamble; look for delimiters after it. */
	p = n->top.body - 2;
	end = n->msg + n->len;
	p = find(p, (size_t)(end - p), n->boundary);
	assert_non_null(p);
	for (;;) {
		const char *start, *next;

		p += strlen(n->boundary);
		if (end - p >= 2 && p[0] == '-' && p[1] == '-')
			break;
		assert_true(end - p >= 2 && p[0] == '\r' && p[1] == '\n');
		start = p + 2;
		next = find(start, (size_t)(end - start), n->boundary);
		assert_non_null(next);
		assert_true(n->nparts < MAX_PARTS);
		n->parts[n->nparts++] = split_entity(start, (size_t)(next - start));
		p = next;
	}
	close = (char *)p + 2;
	assert_true(end - close == 2 && close[0] == '\r' && close[1] == '\n');
}

static void notice_free(struct notice *n)
{
	free(n->msg);
}

static void assert_part_type(const struct notice *n, size_t i, const char *want)
{
	char type[128];

	assert_true(i < n->nparts);
	media_type(&n->parts[i], type, sizeof type);
	assert_string_equal(type, want);
}

/* Splits a delivery-status body into its field blocks (RFC 3464 §2.1). */
static size_t status_blocks(const struct entity *e, struct entity *blocks)
{
	const char *p = e->body, *end = e->body + e->body_len;
	size_t nb = 0;

	while (p < end && nb < MAX_BLOCKS) {
		const char *sep = find(p, (size_t)(end - p), "\r\n\r\n");
		const char *stop = sep ? sep + 2 : end;

		blocks[nb].head = p;
		blocks[nb].head_len = (size_t)(stop - p);
		nb++;
		p = sep ? sep + 4 : end;
		while (end - p >= 2 && p[0] == '\r' && p[1] == '\n')
			p += 2;
	}
	return nb;
}

/* The text part with its wrapping undone: each line end and the
 * indentation after it become one space; caller frees. */
static char *unwrapped(const struct entity *e)
{
	char *out = malloc(e->body_len + 1);
	size_t o = 0;

	assert_non_null(out);
	for (size_t i = 0; i < e->body_len; i++) {
		if (e->body[i] == '\r' && i + 1 < e->body_len && e->body[i + 1] == '\n') {
			i++;
			while (i + 1 < e->body_len && e->body[i + 1] == ' ')
				i++;
			out[o++] = ' ';
			continue;
		}
		out[o++] = e->body[i];
	}
	out[o] = '\0';
	return out;
}

static void assert_crlf_only(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '\n')
			assert_true(i > 0 && s[i - 1] == '\r');
		if (s[i] == '\r')
			assert_true(i + 1 < len && s[i + 1] == '\n');
	}
}

static size_t longest_line(const char *s, size_t len)
{
	size_t longest = 0, cur = 0;

	for (size_t i = 0; i < len; i++) {
		if (s[i] == '\r' || s[i] == '\n') {
			cur = 0;
			continue;
		}
		if (++cur > longest)
			longest = cur;
	}
	return longest;
}

static bool all_7bit(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] >= 0x80 || s[i] == '\0')
			return false;
	return true;
}

/* ---- tests ---------------------------------------------------------------- */

static void test_failure_is_multipart_report_with_three_parts(void **state)
{
	struct dsn_report r = report_base();
	struct notice n;
	char type[128], *ct;

	compose(&r, &n);
	media_type(&n.top, type, sizeof type);
	assert_string_equal(type, "multipart/report");
	ct = field(n.top.head, n.top.head_len, "Content-Type");
	assert_non_null(strstr(ct, "report-type=delivery-status"));
	free(ct);
	assert_field(n.top.head, n.top.head_len, "MIME-Version", "1.0");
	assert_field(n.top.head, n.top.head_len, "From",
	             "Mail Delivery System <MAILER-DAEMON@mx.out.example>");
	assert_field(n.top.head, n.top.head_len, "To", "<alice@sender.example>");
	assert_field(n.top.head, n.top.head_len, "Subject", "Undelivered Mail Returned to Sender");
	assert_field(n.top.head, n.top.head_len, "Auto-Submitted", "auto-replied");
	assert_field(n.top.head, n.top.head_len, "Date", date(T_NOW));
	assert_field(n.top.head, n.top.head_len, "References", "<orig.123@sender.example>");

	assert_int_equal(n.nparts, 3);
	assert_part_type(&n, 0, "text/plain");
	assert_part_type(&n, 1, "message/delivery-status");
	assert_part_type(&n, 2, "text/rfc822-headers");
	assert_field(n.parts[0].head, n.parts[0].head_len, "Content-Type",
	             "text/plain; charset=us-ascii");
	assert_field(n.parts[0].head, n.parts[0].head_len, "Content-Transfer-Encoding", "7bit");
	/* Part 3 is the original header section, octet for octet. */
	assert_int_equal(n.parts[2].body_len, sizeof original_headers - 1);
	assert_memory_equal(n.parts[2].body, original_headers, sizeof original_headers - 1);
	assert_true(all_7bit(n.msg, n.len));
	notice_free(&n);
}

static void test_message_id_is_random_and_at_the_reporting_mta(void **state)
{
	struct dsn_report r = report_base();
	struct notice a, b;
	char *ida, *idb;

	compose(&r, &a);
	compose(&r, &b);
	ida = field(a.top.head, a.top.head_len, "Message-ID");
	idb = field(b.top.head, b.top.head_len, "Message-ID");
	assert_non_null(ida);
	assert_non_null(idb);
	assert_true(ida[0] == '<' && strstr(ida, "@mx.out.example>") != NULL);
	assert_true(strspn(ida + 1, "0123456789abcdef") >= 32);
	assert_string_not_equal(ida, idb);
	assert_string_not_equal(a.boundary, b.boundary);
	free(ida);
	free(idb);
	notice_free(&a);
	notice_free(&b);
}

static void test_failure_has_one_status_block_per_recipient(void **state)
{
	struct dsn_report r = report_base();
	struct entity blocks[MAX_BLOCKS];
	struct notice n;
	size_t nb;

	compose(&r, &n);
	nb = status_blocks(&n.parts[1], blocks);
	assert_int_equal(nb, 3);
	assert_field(blocks[0].head, blocks[0].head_len, "Reporting-MTA", "dns; mx.out.example");
	assert_field(blocks[0].head, blocks[0].head_len, "X-Outpost-Queue-ID", "Q4F7A2B9C1");
	assert_field(blocks[0].head, blocks[0].head_len, "Arrival-Date", date(T_ARRIVAL));
	assert_no_field(blocks[0].head, blocks[0].head_len, "Final-Recipient");

	assert_field(blocks[1].head, blocks[1].head_len, "Final-Recipient",
	             "rfc822; bob@rcpt.example");
	assert_field(blocks[1].head, blocks[1].head_len, "Action", "failed");
	assert_field(blocks[1].head, blocks[1].head_len, "Status", "5.1.1");
	assert_field(blocks[1].head, blocks[1].head_len, "Remote-MTA", "dns; mx1.rcpt.example");
	assert_field(blocks[1].head, blocks[1].head_len, "Diagnostic-Code",
	             "smtp; 550 5.1.1 <bob@rcpt.example>: no such user");
	assert_field(blocks[1].head, blocks[1].head_len, "Last-Attempt-Date", date(T_LAST));
	assert_no_field(blocks[1].head, blocks[1].head_len, "Will-Retry-Until");

	/* Ours, not the remote's: no Remote-MTA, no Diagnostic-Code. */
	assert_field(blocks[2].head, blocks[2].head_len, "Final-Recipient",
	             "rfc822; carol@rcpt.example");
	assert_field(blocks[2].head, blocks[2].head_len, "Action", "failed");
	assert_field(blocks[2].head, blocks[2].head_len, "Status", "5.4.4");
	assert_no_field(blocks[2].head, blocks[2].head_len, "Remote-MTA");
	assert_no_field(blocks[2].head, blocks[2].head_len, "Diagnostic-Code");
	assert_field(blocks[2].head, blocks[2].head_len, "Last-Attempt-Date", date(T_LAST - 60000));
	assert_no_field(blocks[2].head, blocks[2].head_len, "Will-Retry-Until");
	notice_free(&n);
}

static void test_failure_text_explains_and_lists_each_recipient(void **state)
{
	struct dsn_report r = report_base();
	struct notice n;
	char *t;

	compose(&r, &n);
	t = unwrapped(&n.parts[0]);
	assert_non_null(strstr(t, "mail system at host mx.out.example"));
	assert_non_null(strstr(t, "no further attempts will be made"));
	assert_non_null(strstr(t, "Q4F7A2B9C1"));
	assert_non_null(strstr(t, "Subject: Quarterly numbers (secret)"));
	assert_non_null(
	    strstr(t, "<bob@rcpt.example>: the recipient's server rejected the address"));
	assert_non_null(strstr(t, "mx1.rcpt.example [198.51.100.7] said: "
	                          "550 5.1.1 <bob@rcpt.example>: no such user"));
	assert_non_null(
	    strstr(t, "<carol@rcpt.example>: no MX or address records for rcpt.example"));
	free(t);
	notice_free(&n);
}

static void test_delay_reports_the_real_schedule(void **state)
{
	struct dsn_report r = report_delay();
	struct entity blocks[MAX_BLOCKS];
	struct notice n;
	char *t;

	compose(&r, &n);
	assert_field(n.top.head, n.top.head_len, "Subject", "Delayed Mail (still being retried)");
	t = unwrapped(&n.parts[0]);
	assert_non_null(strstr(t, "has not been delivered yet"));
	assert_non_null(strstr(t, "You do not need to resend the message"));
	assert_null(strstr(t, "no further attempts"));
	/* The times given, not fixed text (docs/queue.md, "Notices"). */
	assert_non_null(strstr(t, date(T_NEXT1)));
	assert_non_null(strstr(t, date(T_NEXT2)));
	assert_non_null(strstr(t, date(T_NEXT3)));
	assert_non_null(strstr(t, date(T_UNTIL)));
	assert_true(strstr(t, date(T_NEXT1)) < strstr(t, date(T_NEXT2)));
	assert_true(strstr(t, date(T_NEXT2)) < strstr(t, date(T_NEXT3)));
	assert_null(strstr(t, "hours"));
	free(t);

	assert_int_equal(status_blocks(&n.parts[1], blocks), 3);
	for (size_t i = 1; i < 3; i++) {
		assert_field(blocks[i].head, blocks[i].head_len, "Action", "delayed");
		assert_field(blocks[i].head, blocks[i].head_len, "Will-Retry-Until", date(T_UNTIL));
		assert_field(blocks[i].head, blocks[i].head_len, "Last-Attempt-Date",
		             date(i == 1 ? T_LAST : T_LAST - 60000));
	}
	notice_free(&n);
}

static void test_status_class_follows_the_action(void **state)
{
	struct dsn_recipient rc[] = {
	    {.address = "a@x.example", .status = "4.4.1", .reason = "timeout"},
	    {.address = "b@x.example", .status = "garbage\r\nX-Evil: 1", .reason = "?"},
	    {.address = "c@x.example", .status = NULL, .reason = "?"},
	    {.address = "d@x.example", .status = "5.7.30", .reason = "no REQUIRETLS"},
	};
	struct dsn_report r = report_base();
	struct entity blocks[MAX_BLOCKS];
	struct notice n;

	r.rcpts = rc;
	r.nrcpt = 4;
	compose(&r, &n);
	assert_int_equal(status_blocks(&n.parts[1], blocks), 5);
	assert_field(blocks[1].head, blocks[1].head_len, "Status", "5.4.1");
	assert_field(blocks[2].head, blocks[2].head_len, "Status", "5.0.0");
	assert_field(blocks[3].head, blocks[3].head_len, "Status", "5.0.0");
	assert_field(blocks[4].head, blocks[4].head_len, "Status", "5.7.30");
	assert_false(contains(n.msg, n.len, "X-Evil"));
	notice_free(&n);

	r.delay = true;
	compose(&r, &n);
	assert_int_equal(status_blocks(&n.parts[1], blocks), 5);
	assert_field(blocks[1].head, blocks[1].head_len, "Status", "4.4.1");
	assert_field(blocks[3].head, blocks[3].head_len, "Status", "4.0.0");
	assert_field(blocks[4].head, blocks[4].head_len, "Status", "4.7.30");
	notice_free(&n);
}

static void test_redact_drops_original_headers_and_subject(void **state)
{
	struct dsn_report r = report_base();
	struct notice n;

	r.redact = true;
	compose(&r, &n);
	assert_int_equal(n.nparts, 2);
	assert_part_type(&n, 0, "text/plain");
	assert_part_type(&n, 1, "message/delivery-status");
	/* RFC 8689 §5: nothing of the content, anywhere in the notice. */
	assert_false(contains(n.msg, n.len, "Quarterly"));
	assert_false(contains(n.msg, n.len, "secret"));
	assert_false(contains(n.msg, n.len, "orig.123"));
	assert_false(contains(n.msg, n.len, "client.example"));
	assert_no_field(n.top.head, n.top.head_len, "References");
	/* The report itself is complete. */
	assert_true(contains(n.parts[1].body, n.parts[1].body_len, "rfc822; bob@rcpt.example"));
	assert_true(contains(n.parts[0].body, n.parts[0].body_len, "Q4F7A2B9C1"));
	assert_true(contains(n.parts[0].body, n.parts[0].body_len, "REQUIRETLS"));
	notice_free(&n);

	r.delay = true;
	compose(&r, &n);
	assert_int_equal(n.nparts, 2);
	assert_false(contains(n.msg, n.len, "Quarterly"));
	notice_free(&n);
}

static void test_utf8_variant_uses_global_types(void **state)
{
	static const char headers[] = "From: J\xc3\xb6rg <j\xc3\xb6rg@sender.example>\r\n"
	                              "Subject: Gr\xc3\xbc\xc3\x9f"
	                              "e\r\n";
	struct dsn_recipient rc[] = {{.address = "\xe7\x94\xb0\xe4\xb8\xad@rcpt.example",
	                              .status = "5.1.1",
	                              .diagnostic = "550 5.1.1 unknown \xe7\x94\xb0\xe4\xb8\xad",
	                              .reason = "unknown user",
	                              .last_attempt_ms = T_LAST}};
	struct dsn_report r = report_base();
	struct entity blocks[MAX_BLOCKS];
	struct notice n;
	char *t;

	r.utf8 = true;
	r.original_sender = "j\xc3\xb6rg@sender.example";
	r.original_headers = headers;
	r.original_headers_len = sizeof headers - 1;
	r.rcpts = rc;
	r.nrcpt = 1;
	compose(&r, &n);
	assert_int_equal(n.nparts, 3);
	assert_field(n.parts[0].head, n.parts[0].head_len, "Content-Type",
	             "text/plain; charset=utf-8");
	assert_field(n.parts[0].head, n.parts[0].head_len, "Content-Transfer-Encoding", "8bit");
	assert_part_type(&n, 1, "message/global-delivery-status");
	assert_part_type(&n, 2, "message/global-headers");
	assert_field(n.top.head, n.top.head_len, "To", "<j\xc3\xb6rg@sender.example>");
	assert_int_equal(status_blocks(&n.parts[1], blocks), 2);
	assert_field(blocks[1].head, blocks[1].head_len, "Final-Recipient",
	             "utf-8; \xe7\x94\xb0\xe4\xb8\xad@rcpt.example");
	assert_field(blocks[1].head, blocks[1].head_len, "Diagnostic-Code",
	             "smtp; 550 5.1.1 unknown \xe7\x94\xb0\xe4\xb8\xad");
	t = unwrapped(&n.parts[0]);
	assert_non_null(strstr(t, "Subject: Gr\xc3\xbc\xc3\x9f"
	                          "e"));
	assert_non_null(strstr(t, "<\xe7\x94\xb0\xe4\xb8\xad@rcpt.example>: unknown user"));
	free(t);
	assert_int_equal(n.parts[2].body_len, sizeof headers - 1);
	assert_memory_equal(n.parts[2].body, headers, sizeof headers - 1);
	notice_free(&n);
}

static void test_ascii_variant_escapes_utf8_address_per_rfc6533(void **state)
{
	/* "jörg+x=y@rcpt.example" and a 4-byte character: QCHAR stays, '+',
	 * '=' and non-ASCII become \x{HEXPOINT} in upper case (RFC 6533 §3). */
	struct dsn_recipient rc[] = {{.address = "j\xc3\xb6rg+x=y\xf0\x9f\x98\x80@rcpt.example",
	                              .status = "5.1.1",
	                              .diagnostic = "550 unknown j\xc3\xb6rg",
	                              .reason = "unknown user j\xc3\xb6rg",
	                              .last_attempt_ms = T_LAST}};
	struct dsn_report r = report_base();
	struct entity blocks[MAX_BLOCKS];
	struct notice n;

	r.rcpts = rc;
	r.nrcpt = 1;
	compose(&r, &n);
	assert_true(all_7bit(n.msg, n.len));
	assert_part_type(&n, 1, "message/delivery-status");
	assert_int_equal(status_blocks(&n.parts[1], blocks), 2);
	assert_field(blocks[1].head, blocks[1].head_len, "Final-Recipient",
	             "utf-8; j\\x{F6}rg\\x{2B}x\\x{3D}y\\x{1F600}@rcpt.example");
	assert_field(blocks[1].head, blocks[1].head_len, "Diagnostic-Code",
	             "smtp; 550 unknown j?rg");
	assert_true(contains(n.parts[0].body, n.parts[0].body_len,
	                     "<j\\x{F6}rg\\x{2B}x\\x{3D}y\\x{1F600}@rcpt.example>"));
	notice_free(&n);
}

static void test_ascii_variant_base64s_8bit_original_headers(void **state)
{
	static const char headers[] = "Subject: caf\xc3\xa9\r\nFrom: a@b.example\r\n";
	struct dsn_report r = report_base();
	struct notice n;
	char *cte;

	r.original_headers = headers;
	r.original_headers_len = sizeof headers - 1;
	compose(&r, &n);
	assert_true(all_7bit(n.msg, n.len));
	assert_int_equal(n.nparts, 3);
	assert_part_type(&n, 2, "text/rfc822-headers");
	cte = field(n.parts[2].head, n.parts[2].head_len, "Content-Transfer-Encoding");
	assert_string_equal(cte, "base64");
	free(cte);
	/* base64("Subject: caf\xc3\xa9\r\nFrom: a@b.example\r\n") */
	assert_true(contains(n.parts[2].body, n.parts[2].body_len,
	                     "U3ViamVjdDogY2Fmw6kNCkZyb206IGFAYi5leGFtcGxlDQo="));
	notice_free(&n);
}

static void test_original_header_line_over_998_goes_base64(void **state)
{
	char headers[1300];
	struct dsn_report r = report_base();
	struct notice n;
	char *cte;

	memcpy(headers, "X-Long: ", 8);
	memset(headers + 8, 'y', 1200);
	snprintf(headers + 1208, sizeof headers - 1208, "\r\nFrom: a@b.example\r\n");
	r.utf8 = true;
	r.original_headers = headers;
	r.original_headers_len = strlen(headers);
	compose(&r, &n);
	assert_true(longest_line(n.msg, n.len) <= 998);
	assert_part_type(&n, 2, "message/global-headers");
	cte = field(n.parts[2].head, n.parts[2].head_len, "Content-Transfer-Encoding");
	assert_string_equal(cte, "base64");
	free(cte);
	notice_free(&n);
}

static void test_long_and_hostile_diagnostics_stay_within_lines(void **state)
{
	char spaced[2101], solid[2001], reason[1501];
	struct dsn_recipient rc[3] = {0};
	struct dsn_report r = report_base();
	struct entity blocks[MAX_BLOCKS];
	struct notice n;
	char *v, *want;

	/* "550 word word ..." of 2100 octets, one word without spaces of 2000
	 * octets, and a reply that tries to inject a header field. */
	memcpy(spaced, "550 ", 4);
	for (size_t i = 4; i < 2100; i++)
		spaced[i] = (i % 7 == 0) ? ' ' : (char)('a' + i % 26);
	spaced[2100] = '\0';
	memset(solid, 'x', 2000);
	solid[2000] = '\0';
	memset(reason, 'r', 1500);
	reason[1500] = '\0';
	rc[0] = (struct dsn_recipient){.address = "a@x.example",
	                               .status = "5.0.0",
	                               .remote_mta = "mx.x.example",
	                               .diagnostic = spaced,
	                               .reason = reason,
	                               .last_attempt_ms = T_LAST};
	rc[1] = (struct dsn_recipient){.address = "b@x.example",
	                               .status = "5.0.0",
	                               .diagnostic = solid,
	                               .reason = "r",
	                               .last_attempt_ms = T_LAST};
	rc[2] = (struct dsn_recipient){
	    .address = "c@x.example",
	    .status = "5.0.0",
	    .remote_mta = "mx.x.example\r\nX-Injected-Remote: 1",
	    .diagnostic = "550-first line\r\n550 second\r\n\r\nX-Injected: yes\n\x01\x7f",
	    .reason = "bad\r\n\r\n--fake-boundary\r\nContent-Type: text/html",
	    .last_attempt_ms = T_LAST};
	r.rcpts = rc;
	r.nrcpt = 3;
	compose(&r, &n);
	assert_crlf_only(n.msg, n.len);
	assert_true(longest_line(n.msg, n.len) <= 998);
	assert_true(longest_line(n.parts[1].body, n.parts[1].body_len) <= 998);
	/* Remote text never starts a line of a header section; in the text
	 * part it is only words wrapped at spaces. */
	assert_false(contains(n.top.head, n.top.head_len, "\r\nX-Injected"));
	assert_false(contains(n.parts[1].body, n.parts[1].body_len, "\r\nX-Injected"));
	assert_false(contains(n.msg, n.len, "\r\n--fake-boundary"));
	assert_int_equal(n.nparts, 3);

	assert_int_equal(status_blocks(&n.parts[1], blocks), 4);
	/* Folded at its own spaces, the spaced reply unfolds to itself. */
	v = field(blocks[1].head, blocks[1].head_len, "Diagnostic-Code");
	want = malloc(strlen(spaced) + 8);
	snprintf(want, strlen(spaced) + 8, "smtp; %s", spaced);
	assert_string_equal(v, want);
	free(v);
	free(want);
	/* The solid one was cut, so it unfolds with inserted spaces only. */
	v = field(blocks[2].head, blocks[2].head_len, "Diagnostic-Code");
	assert_non_null(v);
	assert_int_equal(count(v, strlen(v), "x"), 2000);
	free(v);
	v = field(blocks[3].head, blocks[3].head_len, "Diagnostic-Code");
	assert_string_equal(v, "smtp; 550-first line 550 second X-Injected: yes");
	free(v);
	v = field(blocks[3].head, blocks[3].head_len, "Remote-MTA");
	assert_string_equal(v, "dns; mx.x.example X-Injected-Remote: 1");
	free(v);
	notice_free(&n);
}

static void test_crlf_only_even_with_bare_lf_in_original_headers(void **state)
{
	static const char headers[] = "From: a@b.example\nSubject: lf only\n";
	struct dsn_report r = report_delay();
	struct notice n;

	r.original_headers = headers;
	r.original_headers_len = sizeof headers - 1;
	compose(&r, &n);
	assert_crlf_only(n.msg, n.len);
	assert_int_equal(n.nparts, 3);
	assert_int_equal(n.parts[2].body_len, strlen("From: a@b.example\r\nSubject: lf only\r\n"));
	assert_memory_equal(n.parts[2].body, "From: a@b.example\r\nSubject: lf only\r\n",
	                    n.parts[2].body_len);
	notice_free(&n);
}

static void test_boundary_occurs_only_as_delimiter(void **state)
{
	struct dsn_report r = report_base();
	struct notice n;
	const char *b;

	compose(&r, &n);
	b = n.boundary + 4; /* past CRLF "--" */
	/* Once in Content-Type, once per part, once closing. */
	assert_int_equal(count(n.msg, n.len, b), 1 + n.nparts + 1);
	for (size_t i = 0; i < n.nparts; i++) {
		assert_false(contains(n.parts[i].head, n.parts[i].head_len, b));
		assert_false(contains(n.parts[i].body, n.parts[i].body_len, b));
	}
	notice_free(&n);
}

static void test_no_line_over_998_anywhere(void **state)
{
	struct dsn_report r = report_delay();
	struct notice n;

	compose(&r, &n);
	assert_crlf_only(n.msg, n.len);
	assert_true(longest_line(n.msg, n.len) <= 998);
	/* The text part wraps for people. */
	assert_true(longest_line(n.parts[0].body, n.parts[0].body_len) <= 78);
	notice_free(&n);
}

/* Python's email package as an independent reader. */
static const char python_check[] =
    "import sys, email\n"
    "from email import policy\n"
    "m = email.message_from_bytes(sys.stdin.buffer.read(), policy=policy.default)\n"
    "assert m.get_content_type() == 'multipart/report', m.get_content_type()\n"
    "assert m.get_param('report-type') == 'delivery-status'\n"
    "parts = m.get_payload()\n"
    "types = [p.get_content_type() for p in parts]\n"
    "assert types == ['text/plain', 'message/delivery-status', 'text/rfc822-headers'], types\n"
    "blocks = parts[1].get_payload()\n"
    "assert len(blocks) == 3, len(blocks)\n"
    "assert blocks[0]['Reporting-MTA'] == 'dns; mx.out.example'\n"
    "assert blocks[1]['Final-Recipient'] == 'rfc822; bob@rcpt.example'\n"
    "assert blocks[1]['Action'] == 'failed'\n"
    "assert blocks[1]['Status'] == '5.1.1'\n"
    "assert blocks[2]['Final-Recipient'] == 'rfc822; carol@rcpt.example'\n"
    "assert 'Quarterly numbers' in parts[2].get_payload()\n"
    "assert 'no further attempts' in parts[0].get_content()\n"
    "for p in m.walk():\n"
    "    assert not p.defects, (p.get_content_type(), p.defects)\n";

static void test_python_email_parser_reads_the_report(void **state)
{
	struct dsn_report r = report_base();
	char script[] = "/tmp/dsn_test_XXXXXX";
	char cmd[256];
	struct notice n;
	FILE *f;
	int fd, status;

	if (access("/usr/bin/python3", X_OK) != 0)
		skip();
	fd = mkstemp(script);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, python_check, sizeof python_check - 1),
	                 (ssize_t)(sizeof python_check - 1));
	close(fd);
	compose(&r, &n);
	snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s", script);
	f = popen(cmd, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(n.msg, 1, n.len, f), n.len);
	status = pclose(f);
	unlink(script);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	notice_free(&n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_failure_is_multipart_report_with_three_parts),
	    cmocka_unit_test(test_message_id_is_random_and_at_the_reporting_mta),
	    cmocka_unit_test(test_failure_has_one_status_block_per_recipient),
	    cmocka_unit_test(test_failure_text_explains_and_lists_each_recipient),
	    cmocka_unit_test(test_delay_reports_the_real_schedule),
	    cmocka_unit_test(test_status_class_follows_the_action),
	    cmocka_unit_test(test_redact_drops_original_headers_and_subject),
	    cmocka_unit_test(test_utf8_variant_uses_global_types),
	    cmocka_unit_test(test_ascii_variant_escapes_utf8_address_per_rfc6533),
	    cmocka_unit_test(test_ascii_variant_base64s_8bit_original_headers),
	    cmocka_unit_test(test_original_header_line_over_998_goes_base64),
	    cmocka_unit_test(test_long_and_hostile_diagnostics_stay_within_lines),
	    cmocka_unit_test(test_crlf_only_even_with_bare_lf_in_original_headers),
	    cmocka_unit_test(test_boundary_occurs_only_as_delimiter),
	    cmocka_unit_test(test_no_line_over_998_anywhere),
	    cmocka_unit_test(test_python_email_parser_reads_the_report),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
