/* reply.h - SMTP replies: format them (server) and parse them (client).
 *
 * Formatting writes a possibly multi-line reply with the enhanced status
 * code (RFC 2034, RFC 3463) repeated on each line. Parsing is incremental:
 * feed it lines as they arrive; it says when a reply is complete, enforcing
 * the grammar of RFC 5321 §4.2 (three digits, '-' or ' ', same code on every
 * line) and bounds on line length and line count, because replies are remote
 * input.
 */
#ifndef OUTPOST_SMTP_REPLY_H
#define OUTPOST_SMTP_REPLY_H

#include <stdbool.h>
#include <stddef.h>

struct evbuffer;

/* Appends a reply: code, enhanced code (may be NULL), then text. Text may
 * hold '\n' to make a multi-line reply; each line gets "code-" except the
 * last, which gets "code ". */
void smtp_reply_write(struct evbuffer *out, int code, const char *enhanced, const char *text);

/* Same with printf-style text. */
void smtp_reply_writef(struct evbuffer *out, int code, const char *enhanced, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define SMTP_REPLY_MAX_LINE  2048 /* longer lines are a protocol error */
#define SMTP_REPLY_MAX_LINES 64   /* more lines are a protocol error */
#define SMTP_REPLY_MAX_TEXT  8192 /* joined text is truncated here */

struct smtp_reply {
	int code;                       /* 200..599 */
	char enhanced[16];              /* "5.1.1" when the text starts with one, else "" */
	char text[SMTP_REPLY_MAX_TEXT]; /* lines' text after the code (and the
	                                   enhanced code), joined by '\n' */
	size_t lines;
};

enum smtp_reply_status {
	SMTP_REPLY_MORE, /* need more lines */
	SMTP_REPLY_DONE, /* *reply is complete */
	SMTP_REPLY_BAD,  /* protocol error: the connection is unusable */
};

struct smtp_reply_parser {
	struct smtp_reply reply;
	bool in_progress;
	bool parse_enhanced; /* set after EHLO advertised ENHANCEDSTATUSCODES */
	char error[128];     /* why SMTP_REPLY_BAD */
};

void smtp_reply_parser_init(struct smtp_reply_parser *p);

/* Feeds one line of len octets without its line ending. Returns MORE, DONE
 * (p->reply holds the reply; the next feed starts a new one) or BAD. */
enum smtp_reply_status smtp_reply_parser_feed(struct smtp_reply_parser *p, const char *line,
                                              size_t len);

/* Class of a code: 2, 3, 4 or 5. */
static inline int smtp_reply_class(int code)
{
	return code / 100;
}

#endif
