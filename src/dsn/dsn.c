/* dsn.c - compose delay and failure notices (RFC 3464, RFC 6522, RFC 6533).
 *
 * dsn_compose builds the three parts first (human text, delivery-status,
 * original header section), then picks a random boundary that occurs in none
 * of them, then writes the top-level header and joins the parts. Everything
 * taken from elsewhere (remote replies, addresses, the original's Subject)
 * passes through one sanitizer: control characters become spaces, runs of
 * whitespace collapse, and in the ASCII variant non-ASCII text becomes '?'
 * (addresses are escaped instead, RFC 6533 §3), so the ASCII variant is
 * pure 7-bit and no remote text can start a header field of its own. Every
 * header field and text paragraph is folded to 78 (76) columns where it has
 * spaces, and never exceeds 998 octets a line (RFC 5322 §2.1.1).
 *
 * Returns NULL only when memory runs out or the kernel has no randomness.
 */
#include "dsn/dsn.h"

#include "smtp/headers.h"
#include "util/buf.h"
#include "util/text.h"
#include "util/utf8.h"
#include "util/timeutil.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/types.h>

#define LINE_MAX_OCTETS 998 /* RFC 5322 §2.1.1, without the CRLF */
#define HEADER_WIDTH    78  /* RFC 5322 §2.1.1 "SHOULD" */
#define TEXT_WIDTH      76
#define DATE_LEN        48
#define BOUNDARY_TRIES  8

static void put_piece(void *arg, const char *p, size_t n)
{
	buf_add(arg, p, n);
}

/* Appends remote or user text for a header field value or a line of text
 * (text.h): control characters become spaces and whitespace runs collapse to
 * one space, so nothing can end the line early; non-ASCII is kept only when
 * utf8 (invalid UTF-8 never is) and is '?' otherwise. */
static void put_clean(struct buf *b, const char *s, size_t n, bool utf8)
{
	text_clean(s, n, TEXT_COLLAPSE | (utf8 ? TEXT_UTF8 : 0), NULL, put_piece, b);
}

/* Moves past leading whitespace and line ends (a field value after its
 * colon). */
static void skip_space(const char **s, size_t *n)
{
	while (*n > 0 && (**s == ' ' || **s == '\t' || **s == '\r' || **s == '\n'))
		(*s)++, (*n)--;
}

static void put_clean_str(struct buf *b, const char *s, bool utf8)
{
	if (s)
		put_clean(b, s, strlen(s), utf8);
}

/* RFC 6533 §3 utf-8-addr-xtext: QCHAR as itself, anything else as
 * "\x{HEXPOINT}" with the shortest upper-case hex form. HEXPOINT has no form
 * for NUL, LF..SI (0A-0F) or SUB..US (1A-1F); those are dropped, and octets
 * that are not UTF-8 become U+FFFD. */
static void put_xtext_addr(struct buf *b, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s), i = 0;

	while (i < n) {
		uint32_t cp;
		size_t len = utf8_decode(p + i, n - i, &cp);

		if (len == 0)
			len = 1, cp = 0xfffd;
		i += len;
		if (cp >= 0x21 && cp <= 0x7e && cp != '\\' && cp != '+' && cp != '=')
			buf_add(b, p + i - len, 1);
		else if (cp >= 0x80)
			buf_fmt(b, "\\x{%X}", (unsigned)cp);
		else if ((cp >= 0x01 && cp <= 0x09) || (cp >= 0x10 && cp <= 0x19) || cp >= 0x20)
			buf_fmt(b, "\\x{%02X}", (unsigned)cp);
	}
}

static bool is_printable_ascii(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			return false;
	return true;
}

/* An address for display (human text, To:): as it is when it fits the
 * variant, else in the RFC 6533 escaped form. */
static void put_addr(struct buf *b, const char *addr, bool utf8)
{
	if (!addr)
		return;
	if (utf8 || is_printable_ascii(addr))
		put_clean_str(b, addr, utf8);
	else
		put_xtext_addr(b, addr);
}

/* RFC 3464 §2.3.2 with RFC 6533 §3: "rfc822; addr" for an ASCII address.
 * The global variant types every address "utf-8" and writes it as it is
 * (utf-8-address); the ASCII variant writes a non-ASCII address as "utf-8"
 * in the 7-bit utf-8-addr-xtext form. */
static void put_typed_addr(struct buf *b, const char *addr, bool utf8)
{
	if (utf8) {
		buf_str(b, "utf-8; ");
		put_clean_str(b, addr, true);
	} else if (is_printable_ascii(addr)) {
		buf_str(b, "rfc822; ");
		put_clean_str(b, addr, false);
	} else {
		buf_str(b, "utf-8; ");
		put_xtext_addr(b, addr);
	}
}

/* Where to end the output line that starts at s[pos] with lead octets
 * already on it: the last space that keeps the line within width, else the
 * first one within the hard limit; a space only counts after a non-space so
 * that no line is whitespace alone (RFC 5322 §3.2.2). Returns pos when there
 * is none. */
static size_t fold_point(const char *s, size_t pos, size_t n, size_t lead, size_t width)
{
	size_t soft = pos + (width - lead), hard = pos + (LINE_MAX_OCTETS - lead), i, best = pos;

	for (i = pos + 1; i < n && i <= hard; i++) {
		if (s[i] != ' ' || s[i - 1] == ' ')
			continue;
		if (i <= soft)
			best = i;
		else if (best == pos)
			return i;
		else
			break;
	}
	return best;
}

/* Appends s (n octets, no CR or LF) and CRLF, folded. Header mode (RFC 5322
 * §2.2.3) breaks before a space and keeps it to start the continuation
 * line; text mode breaks at the space, drops it and starts the continuation
 * with indent spaces. A word longer than the hard limit is cut between UTF-8
 * sequences, and in header mode the continuation then starts with an
 * inserted space. */
static void put_folded(struct buf *b, const char *s, size_t n, size_t width, bool header,
                       size_t indent)
{
	size_t pos = 0, lead = 0;

	while (n > 0 && s[n - 1] == ' ')
		n--;
	while (lead + (n - pos) > width) {
		size_t brk = fold_point(s, pos, n, lead, width), next;

		if (brk > pos) {
			next = brk;
			if (!header)
				while (next < n && s[next] == ' ')
					next++;
		} else {
			brk = pos + (LINE_MAX_OCTETS - lead);
			if (brk >= n)
				break;
			while (brk > pos + 1 && ((unsigned char)s[brk] & 0xc0) == 0x80)
				brk--;
			next = brk;
		}
		if (next >= n)
			break;
		buf_add(b, s + pos, brk - pos);
		buf_str(b, "\r\n");
		lead = header ? (next == brk && s[next] != ' ') : indent;
		for (size_t i = 0; i < lead; i++)
			buf_add(b, " ", 1);
		pos = next;
	}
	buf_add(b, s + pos, n - pos);
	buf_str(b, "\r\n");
}

/* Appends the one-line field in line (built by the caller) folded, and
 * empties line for the next one. */
static void put_field_line(struct buf *b, struct buf *line)
{
	if (line->failed) {
		b->failed = true;
	} else if (line->len > 0) {
		put_folded(b, line->data, line->len, HEADER_WIDTH, true, 0);
	}
	buf_reset(line);
}

/* "Name: value" with value sanitized, folded. */
static void put_field(struct buf *b, struct buf *line, const char *name, const char *value,
                      bool utf8)
{
	buf_str(line, name);
	buf_str(line, ": ");
	put_clean_str(line, value, utf8);
	put_field_line(b, line);
}

static void put_date_field(struct buf *b, const char *name, int64_t ms)
{
	char date[DATE_LEN];

	time_format_rfc5322(ms, date, sizeof date);
	buf_fmt(b, "%s: %s\r\n", name, date);
}

/* A paragraph of human text, wrapped, then an empty line. */
static void put_paragraph(struct buf *b, struct buf *line)
{
	if (line->failed)
		b->failed = true;
	else
		put_folded(b, line->data, line->len, TEXT_WIDTH, false, 0);
	buf_str(b, "\r\n");
	buf_reset(line);
}

/* RFC 3464 §2.3.4 and RFC 3463 §2: "class.subject.detail", the class
 * agreeing with the action (a failed recipient cannot carry a transient
 * 4.x.x, nor a delayed one a 5.x.x), so the caller's code keeps its
 * subject and detail and takes the class of the notice. Anything that is
 * not such a code becomes X.0.0 (undefined status, RFC 3463 §3.1). */
static void status_code(const char *given, bool delay, char out[16])
{
	const char *p = given;
	size_t digits;
	int part;

	for (part = 0; p && part < 3; part++) {
		for (digits = 0; p[digits] >= '0' && p[digits] <= '9'; digits++)
			;
		if (digits == 0 || digits > (part == 0 ? 1 : 3))
			break;
		p += digits;
		if (part < 2 && *p++ != '.')
			break;
	}
	if (part == 3 && *p == '\0' && strchr("245", given[0]))
		snprintf(out, 16, "%c%s", delay ? '4' : '5', given + 1);
	else
		snprintf(out, 16, "%c.0.0", delay ? '4' : '5');
}

/* Finds the first header field called name in the original header section;
 * returns its raw value or NULL. */
static const char *original_field(const struct dsn_report *r, const char *name, size_t *len)
{
	struct msg_header_iter it;
	const char *fname, *value;
	size_t fname_len;

	if (!r->original_headers)
		return NULL;
	msg_header_iter_init(&it, r->original_headers, r->original_headers_len);
	while (msg_header_next(&it, &fname, &fname_len, &value, len))
		if (fname_len == strlen(name) && strncasecmp(fname, name, fname_len) == 0)
			return value;
	return NULL;
}

static void put_times_list(struct buf *b, const int64_t *ms, size_t n)
{
	char date[DATE_LEN];

	for (size_t i = 0; i < n; i++) {
		time_format_rfc5322(ms[i], date, sizeof date);
		buf_fmt(b, "    %s\r\n", date);
	}
	buf_str(b, "\r\n");
}

static bool rcpt_delayed(const struct dsn_report *r, const struct dsn_recipient *rc)
{
	return r->delay || rc->delayed;
}

/* Whether the notice reports any recipient with this action. */
static bool any_action(const struct dsn_report *r, bool delayed)
{
	for (size_t i = 0; i < r->nrcpt; i++)
		if (rcpt_delayed(r, &r->rcpts[i]) == delayed)
			return true;
	return false;
}

static void human_intro(const struct dsn_report *r, struct buf *b, struct buf *line)
{
	char date[DATE_LEN];

	buf_str(line, "This is the mail system at host ");
	put_clean_str(line, r->reporting_mta, false);
	buf_str(line, ".");
	put_paragraph(b, line);
	if (any_action(r, false)) {
		buf_str(line, "Your message could not be delivered to one or more recipients. "
		              "It was not delivered to them and no further attempts will be made.");
		put_paragraph(b, line);
	}
	if (!any_action(r, true))
		return;
	/* The dates come from the real schedule the caller passes, never
	 * from fixed text that could disagree with the configured one
	 * (docs/queue.md, "Notices"). */
	buf_str(line, "Your message has not been delivered yet to one or more recipients. ");
	if (r->will_retry_until_ms > 0) {
		time_format_rfc5322(r->will_retry_until_ms, date, sizeof date);
		buf_fmt(line, "The mail system will keep trying until %s. ", date);
	} else {
		buf_str(line, "The mail system will keep trying. ");
	}
	buf_str(line, "You do not need to resend the message. If it still cannot be "
	              "delivered in the end, it will be returned to you.");
	put_paragraph(b, line);
	if (r->nnext > 0) {
		buf_str(b, "Next attempts:\r\n");
		put_times_list(b, r->next_attempts_ms, r->nnext);
	}
}

static void human_original(const struct dsn_report *r, struct buf *b, struct buf *line)
{
	const char *subject;
	size_t subject_len;

	if (r->original_id) {
		buf_str(line, "Queue ID: ");
		put_clean_str(line, r->original_id, false);
		put_folded(b, line->data, line->len, TEXT_WIDTH, false, 0);
		buf_reset(line);
	}
	if (r->redact) {
		/* RFC 8689 §5: nothing of a REQUIRETLS message's content, not
		 * even its subject, goes into the notice. */
		buf_str(b, "\r\n");
		buf_str(line, "The message required TLS (REQUIRETLS), so this notice does not "
		              "include its subject or header.");
		put_paragraph(b, line);
		return;
	}
	subject = original_field(r, "Subject", &subject_len);
	if (subject) {
		skip_space(&subject, &subject_len);
		buf_str(line, "Subject: ");
		put_clean(line, subject, subject_len, r->utf8);
		put_folded(b, line->data, line->len, TEXT_WIDTH, false, 0);
		buf_reset(line);
	}
	buf_str(b, "\r\n");
}

/* "<addr>: reason", then who said what when a remote server answered;
 * wrapped lines are indented so each recipient stands out. */
static void human_recipient(const struct dsn_report *r, const struct dsn_recipient *rc,
                            struct buf *b, struct buf *line)
{
	buf_str(line, "<");
	put_addr(line, rc->address, r->utf8);
	buf_str(line, ">: ");
	put_clean_str(line, rc->reason ? rc->reason : "delivery failed", r->utf8);
	put_folded(b, line->data, line->len, TEXT_WIDTH, false, 4);
	buf_reset(line);
	if (rc->diagnostic) {
		buf_str(line, "    ");
		if (rc->remote_mta)
			put_clean_str(line, rc->remote_mta, false);
		else
			buf_str(line, "The remote server");
		if (rc->remote_ip) {
			buf_str(line, " [");
			put_clean_str(line, rc->remote_ip, false);
			buf_str(line, "]");
		}
		buf_str(line, " said:");
		put_folded(b, line->data, line->len, TEXT_WIDTH, false, 4);
		buf_reset(line);
		buf_str(line, "    ");
		put_clean_str(line, rc->diagnostic, r->utf8);
		put_folded(b, line->data, line->len, TEXT_WIDTH, false, 4);
		buf_reset(line);
	}
	buf_str(b, "\r\n");
}

/* Part 1 (RFC 6522 §2): what happened, for a person. */
static void part_human(const struct dsn_report *r, struct buf *b)
{
	struct buf line = {0};

	buf_str(b, "Content-Description: Notification\r\n");
	buf_str(b, r->utf8 ? "Content-Type: text/plain; charset=utf-8\r\n"
	                     "Content-Transfer-Encoding: 8bit\r\n\r\n"
	                   : "Content-Type: text/plain; charset=us-ascii\r\n"
	                     "Content-Transfer-Encoding: 7bit\r\n\r\n");
	human_intro(r, b, &line);
	human_original(r, b, &line);
	for (size_t i = 0; i < r->nrcpt; i++)
		human_recipient(r, &r->rcpts[i], b, &line);
	if (line.failed)
		b->failed = true;
	buf_free(&line);
}

/* RFC 3464 §2.3: one block per recipient, after an empty line. */
static void status_recipient(const struct dsn_report *r, const struct dsn_recipient *rc,
                             struct buf *b, struct buf *line)
{
	char status[16];

	buf_str(b, "\r\n");
	buf_str(line, "Final-Recipient: ");
	put_typed_addr(line, rc->address ? rc->address : "", r->utf8);
	put_field_line(b, line);
	bool delayed = rcpt_delayed(r, rc);

	buf_str(b, delayed ? "Action: delayed\r\n" : "Action: failed\r\n");
	status_code(rc->status, delayed, status);
	buf_fmt(b, "Status: %s\r\n", status);
	if (rc->remote_mta) {
		buf_str(line, "Remote-MTA: dns; ");
		put_clean_str(line, rc->remote_mta, false);
		put_field_line(b, line);
	}
	if (rc->diagnostic) {
		/* RFC 6533 §4, §6.2: the global variant may carry the reply's
		 * UTF-8. */
		buf_str(line, "Diagnostic-Code: smtp; ");
		put_clean_str(line, rc->diagnostic, r->utf8);
		put_field_line(b, line);
	}
	if (rc->last_attempt_ms > 0)
		put_date_field(b, "Last-Attempt-Date", rc->last_attempt_ms);
	if (delayed && r->will_retry_until_ms > 0)
		put_date_field(b, "Will-Retry-Until", r->will_retry_until_ms);
}

/* Part 2: message/delivery-status (RFC 3464 §2), or
 * message/global-delivery-status (RFC 6533 §4) for SMTPUTF8 originals. */
static void part_status(const struct dsn_report *r, struct buf *b)
{
	struct buf line = {0};

	buf_str(b, "Content-Description: Delivery report\r\n");
	buf_str(b, r->utf8 ? "Content-Type: message/global-delivery-status\r\n"
	                     "Content-Transfer-Encoding: 8bit\r\n\r\n"
	                   : "Content-Type: message/delivery-status\r\n"
	                     "Content-Transfer-Encoding: 7bit\r\n\r\n");
	buf_str(&line, "Reporting-MTA: dns; ");
	put_clean_str(&line, r->reporting_mta ? r->reporting_mta : "localhost", false);
	put_field_line(b, &line);
	if (r->original_id)
		put_field(b, &line, "X-Outpost-Queue-ID", r->original_id, false);
	if (r->arrival_ms > 0)
		put_date_field(b, "Arrival-Date", r->arrival_ms);
	for (size_t i = 0; i < r->nrcpt; i++)
		status_recipient(r, &r->rcpts[i], b, &line);
	if (line.failed)
		b->failed = true;
	buf_free(&line);
}

static bool has_8bit(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] >= 0x80)
			return true;
	return false;
}

/* The header section as it is, except that a bare CR or LF becomes CRLF:
 * the notice goes out over SMTP, where nothing else is a line end. */
static void put_crlf_normalized(struct buf *b, const char *s, size_t n)
{
	size_t start = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\r' && i + 1 < n && s[i + 1] == '\n') {
			i++;
			continue;
		}
		if (s[i] != '\r' && s[i] != '\n')
			continue;
		buf_add(b, s + start, i - start);
		buf_str(b, "\r\n");
		start = i + 1;
	}
	buf_add(b, s + start, n - start);
	if (b->len < 2 || memcmp(b->data + b->len - 2, "\r\n", 2) != 0)
		buf_str(b, "\r\n");
}

/* RFC 2045 §6.8, 76-character lines. */
static void put_base64(struct buf *b, const unsigned char *s, size_t n)
{
	static const char abc[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t col = 0;

	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)s[i] << 16;
		char quad[4];

		if (i + 1 < n)
			v |= (uint32_t)s[i + 1] << 8;
		if (i + 2 < n)
			v |= s[i + 2];
		quad[0] = abc[(v >> 18) & 63];
		quad[1] = abc[(v >> 12) & 63];
		quad[2] = i + 1 < n ? abc[(v >> 6) & 63] : '=';
		quad[3] = i + 2 < n ? abc[v & 63] : '=';
		buf_add(b, quad, 4);
		col += 4;
		if (col == 76 || i + 3 >= n) {
			buf_str(b, "\r\n");
			col = 0;
		}
	}
}

static bool has_long_line(const char *s, size_t n)
{
	size_t cur = 0;

	for (size_t i = 0; i < n; i++) {
		cur = (s[i] == '\r' || s[i] == '\n') ? 0 : cur + 1;
		if (cur > LINE_MAX_OCTETS)
			return true;
	}
	return false;
}

/* Part 3 (RFC 6522 §3, RFC 6533 §4): the original header section, as
 * text/rfc822-headers or message/global-headers. It goes base64 (unlike
 * message/rfc822, the global types may be encoded: RFC 6532, RFC 6533) when
 * it could not travel as it is: raw 8-bit octets in an ASCII notice
 * (8BITMIME without SMTPUTF8), or a line beyond 998 octets. Otherwise the
 * body ends with CRLF and dsn_compose puts another before the delimiter,
 * which that delimiter takes (RFC 2046 §5.1.1): the part is the original's
 * exactly. */
static void part_headers(const struct dsn_report *r, struct buf *b)
{
	struct buf body = {0};
	bool base64;

	put_crlf_normalized(&body, r->original_headers ? r->original_headers : "",
	                    r->original_headers ? r->original_headers_len : 0);
	base64 = (!r->utf8 && has_8bit(body.data, body.len)) || has_long_line(body.data, body.len);
	buf_str(b, "Content-Description: Undelivered Message Headers\r\n");
	if (r->utf8)
		buf_str(b, "Content-Type: message/global-headers\r\n");
	else if (base64)
		buf_str(b, "Content-Type: text/rfc822-headers; charset=utf-8\r\n");
	else
		buf_str(b, "Content-Type: text/rfc822-headers\r\n");
	if (base64) {
		buf_str(b, "Content-Transfer-Encoding: base64\r\n\r\n");
		put_base64(b, (const unsigned char *)body.data, body.len);
	} else {
		buf_str(b, r->utf8 ? "Content-Transfer-Encoding: 8bit\r\n\r\n"
		                   : "Content-Transfer-Encoding: 7bit\r\n\r\n");
		buf_add(b, body.data, body.len);
	}
	if (body.failed)
		b->failed = true;
	buf_free(&body);
}

static bool random_hex(char *out, size_t nbytes)
{
	unsigned char raw[32];
	size_t got = 0;

	if (nbytes > sizeof raw)
		return false;
	while (got < nbytes) {
		ssize_t n = getrandom(raw + got, nbytes - got, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		got += (size_t)n;
	}
	for (size_t i = 0; i < nbytes; i++)
		snprintf(out + 2 * i, 3, "%02x", raw[i]);
	return true;
}

static bool contains(const struct buf *b, const char *needle)
{
	return b->len > 0 && memmem(b->data, b->len, needle, strlen(needle)) != NULL;
}

/* RFC 2046 §5.1.1: the boundary must not occur in any encapsulated part.
 * 128 random bits make that all but certain; checking makes it certain. */
static bool pick_boundary(char *out, size_t n, const struct buf *parts, size_t nparts)
{
	char hex[33];

	for (int tries = 0; tries < BOUNDARY_TRIES; tries++) {
		size_t i;

		if (!random_hex(hex, 16))
			return false;
		snprintf(out, n, "=_outpost_%s", hex);
		for (i = 0; i < nparts && !contains(&parts[i], out); i++)
			;
		if (i == nparts)
			return true;
	}
	return false;
}

/* The original's Message-ID, for References (RFC 5322 §3.6.4), when it
 * is one plain msg-id. */
static void put_references(const struct dsn_report *r, struct buf *b, struct buf *line)
{
	const char *id;
	size_t len;

	if (r->redact || !(id = original_field(r, "Message-ID", &len)))
		return;
	skip_space(&id, &len);
	put_clean(line, id, len, false);
	while (line->len > 0 && line->data[line->len - 1] == ' ')
		line->len--;
	if (!line->failed && line->len > 2 && line->len < 900 && line->data[0] == '<' &&
	    line->data[line->len - 1] == '>' && !memchr(line->data, ' ', line->len) &&
	    !memchr(line->data, '?', line->len)) {
		buf_str(b, "References: ");
		buf_add(b, line->data, line->len);
		buf_str(b, "\r\n");
	}
	buf_reset(line);
}

static bool put_top_headers(const struct dsn_report *r, const char *boundary, struct buf *b)
{
	const char *mta = r->reporting_mta ? r->reporting_mta : "localhost";
	struct buf line = {0};
	char id[33];

	if (!random_hex(id, 16))
		return false;
	buf_str(&line, "From: Mail Delivery System <MAILER-DAEMON@");
	put_clean_str(&line, mta, false);
	buf_str(&line, ">");
	put_field_line(b, &line);
	buf_str(&line, "To: <");
	put_addr(&line, r->original_sender ? r->original_sender : "", r->utf8);
	buf_str(&line, ">");
	put_field_line(b, &line);
	buf_str(b, any_action(r, false) ? "Subject: Undelivered Mail Returned to Sender\r\n"
	                                : "Subject: Delayed Mail (still being retried)\r\n");
	put_date_field(b, "Date", r->now_ms);
	buf_fmt(&line, "Message-ID: <%s@", id);
	put_clean_str(&line, mta, false);
	buf_str(&line, ">");
	put_field_line(b, &line);
	put_references(r, b, &line);
	buf_str(b, "Auto-Submitted: auto-replied\r\n"); /* RFC 3834 §5 */
	buf_str(b, "MIME-Version: 1.0\r\n");
	buf_fmt(&line,
	        "Content-Type: multipart/report; report-type=delivery-status; boundary=\"%s\"",
	        boundary);
	put_field_line(b, &line);
	buf_str(b, r->utf8 ? "Content-Transfer-Encoding: 8bit\r\n"
	                   : "Content-Transfer-Encoding: 7bit\r\n");
	if (line.failed)
		b->failed = true;
	buf_free(&line);
	return true;
}

char *dsn_compose(const struct dsn_report *r, size_t *len)
{
	struct buf parts[3] = {{0}}, msg = {0};
	size_t nparts = 2, i;
	char boundary[64];

	part_human(r, &parts[0]);
	part_status(r, &parts[1]);
	/* RFC 8689 §5: a notice about a REQUIRETLS message must not give away
	 * its content, as the notice may travel where the original could not;
	 * so the original header section (part 3) is left out entirely. */
	if (!r->redact) {
		part_headers(r, &parts[2]);
		nparts = 3;
	}
	for (i = 0; i < nparts; i++)
		if (parts[i].failed)
			goto fail;
	if (!pick_boundary(boundary, sizeof boundary, parts, nparts))
		goto fail;
	if (!put_top_headers(r, boundary, &msg))
		goto fail;
	buf_str(&msg, "\r\nThis is a MIME-encapsulated message.\r\n");
	for (i = 0; i < nparts; i++) {
		buf_fmt(&msg, "\r\n--%s\r\n", boundary);
		buf_add(&msg, parts[i].data, parts[i].len);
	}
	buf_fmt(&msg, "\r\n--%s--\r\n", boundary);
	if (msg.failed)
		goto fail;
	for (i = 0; i < nparts; i++)
		buf_free(&parts[i]);
	*len = msg.len;
	return msg.data;
fail:
	for (i = 0; i < 3; i++)
		buf_free(&parts[i]);
	buf_free(&msg);
	*len = 0;
	return NULL;
}
