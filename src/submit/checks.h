/* checks.h - what every way in refuses in a message, with the same answer.
 *
 * The SMTP listener, the local socket `outpost send` uses and `send`'s
 * direct write (no daemon running) all judge a finished message here, from
 * the flags the DATA reader or smtp_data_scan found and the header section:
 * too big (552 5.3.4), a NUL (554 5.6.0), a bare CR or LF (554 5.6.0, the
 * SMTP smuggling hole closed rather than normalised), a line longer than
 * [submission] max_line_length (554 5.6.0), 100 or more Received fields
 * (554 5.4.6, RFC 5321 §6.3: a mail loop).
 */
#ifndef OUTPOST_SUBMIT_CHECKS_H
#define OUTPOST_SUBMIT_CHECKS_H

#include <stdbool.h>
#include <stddef.h>

struct submit_refusal {
	int code;             /* 552, 554 */
	const char *enhanced; /* "5.3.4" */
	const char *text;     /* the reply text */
	const char *reason;   /* a metric label: "size", "bad_content", ... */
};

/* flags: SMTP_DATA_* of the whole message (msg, len octets, CRLF lines).
 * Returns true when it may be queued, else false with *r filled. */
bool submit_check_content(unsigned flags, const char *msg, size_t len, struct submit_refusal *r);

#endif
