/* reply.c - SMTP replies: format them (server) and parse them (client).
 *
 * Formatting: every line is "ddd-" or "ddd " followed by the enhanced code
 * and the text; CR in the text is dropped so that no caller can inject a
 * line of its own. A trailing '\n' in the text does not add an empty line.
 *
 * Parsing follows RFC 5321 §4.2 with the leniency §4.2.1 asks of clients:
 * a last line of just "ddd" is accepted, and any second and third digit is
 * taken (the grammar narrows the second digit to 0-5, but nothing depends
 * on it). The first digit must be 2-5: 1yz is not used by SMTP and 6yz and
 * above do not exist, so either means we are not talking SMTP.
 */
#include "smtp/reply.h"

#include <event2/buffer.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ENHANCED_PART_MAX 3 /* RFC 3463 §2: subject and detail are 1*3digit */

/* Appends s (n octets) without its CRs. */
static void add_without_cr(struct evbuffer *out, const char *s, size_t n)
{
	while (n > 0) {
		const char *cr = memchr(s, '\r', n);
		size_t run = cr ? (size_t)(cr - s) : n;

		evbuffer_add(out, s, run);
		if (!cr)
			break;
		n -= run + 1;
		s = cr + 1;
	}
}

/* One reply line. Without enhanced code and text the last line is just
 * "ddd": Reply-line allows no SP before an empty textstring. */
static void reply_line(struct evbuffer *out, int code, char sep, const char *enhanced,
                       const char *text, size_t n)
{
	char head[4] = {(char)('0' + code / 100), (char)('0' + code / 10 % 10),
	                (char)('0' + code % 10), sep};
	bool has_enhanced = enhanced && *enhanced;

	evbuffer_add(out, head, (sep == '-' || has_enhanced || n > 0) ? 4 : 3);
	if (has_enhanced) {
		add_without_cr(out, enhanced, strcspn(enhanced, "\n"));
		if (n > 0)
			evbuffer_add(out, " ", 1);
	}
	add_without_cr(out, text, n);
	evbuffer_add(out, "\r\n", 2);
}

/* A code outside 200..599 is a programming error; it is sent as 451 (local
 * error, try again) rather than as something that is not SMTP. */
void smtp_reply_write(struct evbuffer *out, int code, const char *enhanced, const char *text)
{
	size_t n;

	if (code < 200 || code > 599)
		code = 451;
	if (!text)
		text = "";
	n = strlen(text);
	if (n > 0 && text[n - 1] == '\n')
		n--;
	for (;;) {
		const char *nl = memchr(text, '\n', n);

		if (!nl) {
			reply_line(out, code, ' ', enhanced, text, n);
			return;
		}
		reply_line(out, code, '-', enhanced, text, (size_t)(nl - text));
		n -= (size_t)(nl - text) + 1;
		text = nl + 1;
	}
}

void smtp_reply_writef(struct evbuffer *out, int code, const char *enhanced, const char *fmt, ...)
{
	char *text = NULL;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&text, fmt, ap);
	va_end(ap);
	/* Out of memory: the code still tells the client what happened. */
	smtp_reply_write(out, code, enhanced, n < 0 ? "" : text);
	if (n >= 0)
		free(text);
}

/* ---- parser ---- */

void smtp_reply_parser_init(struct smtp_reply_parser *p)
{
	memset(p, 0, sizeof(*p));
}

static enum smtp_reply_status reply_bad(struct smtp_reply_parser *p, const char *why)
{
	size_t n = strlen(why);

	if (n >= sizeof(p->error))
		n = sizeof(p->error) - 1;
	memcpy(p->error, why, n);
	p->error[n] = '\0';
	p->in_progress = false;
	return SMTP_REPLY_BAD;
}

static bool is_digit(char ch)
{
	return ch >= '0' && ch <= '9';
}

/* Number of digits at s (at most n), or 0 when there are none or more
 * than max. */
static size_t digit_run(const char *s, size_t n, size_t max)
{
	size_t i = 0;

	while (i < n && is_digit(s[i]))
		i++;
	return i > max ? 0 : i;
}

/* Length of an RFC 3463 code "class.subject.detail" at the start of s whose
 * class digit is cls, followed by SP or the end of the line; 0 if none. */
static size_t enhanced_len(const char *s, size_t n, char cls)
{
	size_t i = 2, d;

	if (n < 5 || s[0] != cls || s[1] != '.')
		return 0;
	d = digit_run(s + i, n - i, ENHANCED_PART_MAX);
	if (d == 0 || i + d >= n || s[i + d] != '.')
		return 0;
	i += d + 1;
	d = digit_run(s + i, n - i, ENHANCED_PART_MAX);
	if (d == 0)
		return 0;
	i += d;
	if (i < n && s[i] != ' ')
		return 0;
	return i;
}

/* Strips the enhanced code from one line's text; the first one found is
 * the reply's (RFC 2034 §4 repeats it on every line). */
static void take_enhanced(struct smtp_reply_parser *p, const char **text, size_t *n)
{
	size_t e = enhanced_len(*text, *n, (char)('0' + p->reply.code / 100));

	if (e == 0)
		return;
	if (p->reply.lines == 0) {
		memcpy(p->reply.enhanced, *text, e); /* e <= 9 < sizeof(enhanced) */
		p->reply.enhanced[e] = '\0';
	}
	if (e < *n)
		e++; /* the SP after the code */
	*text += e;
	*n -= e;
}

/* Appends one line's text to the joined text, truncating silently. */
static void append_text(struct smtp_reply *r, const char *text, size_t n)
{
	size_t have = strnlen(r->text, sizeof(r->text));
	size_t room = sizeof(r->text) - 1 - have;

	if (r->lines > 0 && room > 0) {
		r->text[have++] = '\n';
		room--;
	}
	if (n > room)
		n = room;
	memcpy(r->text + have, text, n);
	r->text[have + n] = '\0';
}

static void reply_start(struct smtp_reply_parser *p, int code)
{
	p->reply.code = code;
	p->reply.enhanced[0] = '\0';
	p->reply.text[0] = '\0';
	p->reply.lines = 0;
	p->in_progress = true;
}

enum smtp_reply_status smtp_reply_parser_feed(struct smtp_reply_parser *p, const char *line,
                                              size_t len)
{
	const char *text;
	size_t n;
	int code;
	bool last;

	if (len > SMTP_REPLY_MAX_LINE)
		return reply_bad(p, "reply line too long");
	if (len < 3 || line[0] < '2' || line[0] > '5' || !is_digit(line[1]) || !is_digit(line[2]))
		return reply_bad(p, "reply does not start with a 2xx-5xx code");
	if (len > 3 && line[3] != ' ' && line[3] != '-')
		return reply_bad(p, "reply code not followed by space or '-'");
	code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	last = len == 3 || line[3] == ' ';
	if (!p->in_progress)
		reply_start(p, code);
	else if (code != p->reply.code)
		return reply_bad(p, "reply lines carry different codes");
	if (p->reply.lines >= SMTP_REPLY_MAX_LINES)
		return reply_bad(p, "reply has too many lines");
	text = len > 3 ? line + 4 : line + 3;
	n = len > 3 ? len - 4 : 0;
	if (p->parse_enhanced)
		take_enhanced(p, &text, &n);
	append_text(&p->reply, text, n);
	p->reply.lines++;
	if (!last)
		return SMTP_REPLY_MORE;
	p->in_progress = false;
	return SMTP_REPLY_DONE;
}
