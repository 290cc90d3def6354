/* dsn.h - delivery status notifications (RFC 3464, RFC 3462/6522, RFC 6533).
 *
 * Composes the notice outpost sends to the envelope sender when delivery
 * failed permanently or is delayed: one notice per message may report
 * failed and delayed recipients together (RFC 3464 §2.3.3 gives each
 * recipient its own Action). multipart/report; report-type=
 * delivery-status, with a human part, one delivery-status block per
 * recipient, and the original header section (text/rfc822-headers, or
 * message/global-headers for SMTPUTF8 messages). The notice is itself queued
 * from <> and delivered like any mail; callers never make one for a <>
 * sender. A REQUIRETLS message gets a redacted notice (RFC 8689 §5): no
 * original headers, no subject, and the notice itself requires TLS.
 */
#ifndef OUTPOST_DSN_DSN_H
#define OUTPOST_DSN_DSN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dsn_recipient {
	const char *address;    /* as queued (UTF-8 allowed with utf8) */
	const char *status;     /* "5.1.1", "4.4.1": class then detail */
	const char *remote_mta; /* MX host name, NULL when none was reached */
	const char *remote_ip;  /* its address, NULL when unknown */
	const char *diagnostic; /* the remote reply "550 5.1.1 no such user", NULL when
	                           the failure was ours (DNS, timeout) */
	const char *reason;     /* human text of the last error (always set) */
	int64_t last_attempt_ms;
	bool delayed; /* Action: delayed (still being retried) rather than failed */
};

struct dsn_report {
	bool delay;                  /* every recipient is delayed (else each says) */
	bool utf8;                   /* SMTPUTF8 original: RFC 6533 global types */
	bool redact;                 /* REQUIRETLS original: RFC 8689 §5 */
	const char *reporting_mta;   /* our hostname */
	const char *original_sender; /* the envelope sender we report to */
	const char *original_id;     /* queue id of the original, for the text */
	int64_t arrival_ms;
	int64_t now_ms;
	const char *original_headers; /* header section of the original, CRLF */
	size_t original_headers_len;
	const struct dsn_recipient *rcpts;
	size_t nrcpt;
	/* delay notices: when the next attempts will run, and the last one */
	const int64_t *next_attempts_ms;
	size_t nnext;
	int64_t will_retry_until_ms;
};

/* The whole message, CRLF lines, ready to queue; caller frees. *len set. */
char *dsn_compose(const struct dsn_report *r, size_t *len);

#endif
