/* headers.h - read the header section of an RFC 5322 message.
 *
 * Only what the ways in need: walk the (unfolded) header fields, find the
 * end of the header section, decide RFC 8689 "TLS-Required: No", and collect
 * the addr-specs of address headers for "sendmail -t". The message is remote
 * input: every function is bounded by len and never reads past it.
 */
#ifndef OUTPOST_SMTP_HEADERS_H
#define OUTPOST_SMTP_HEADERS_H

#include <stdbool.h>
#include <stddef.h>

/* Offset of the first body octet: just past the empty line that ends the
 * header section (CRLF CRLF, or LF LF for local input), or len when there is
 * no body. */
size_t msg_header_end(const char *msg, size_t len);

struct msg_header_iter {
	const char *p, *end;
};

/* Starts walking the header section of msg (len octets). */
void msg_header_iter_init(struct msg_header_iter *it, const char *msg, size_t len);

/* Next field: name (without colon) and raw value (after the colon, folding
 * kept, without the final line ending). Returns false at the end of the
 * header section or at the first line that is not a valid field. */
bool msg_header_next(struct msg_header_iter *it, const char **name, size_t *name_len,
                     const char **value, size_t *value_len);

/* RFC 8689 §5: true when the message has at least one TLS-Required field and
 * every TLS-Required field's value is "No" (case-insensitive, surrounding
 * whitespace and folding ignored). */
bool msg_tls_required_no(const char *msg, size_t len);

/* True when a header field named name (case-insensitive) is present. */
bool msg_has_header(const char *msg, size_t len, const char *name);

/* How many header fields are named name (case-insensitive). */
size_t msg_count_header(const char *msg, size_t len, const char *name);

/* RFC 5321 §6.3: a message that already went through this many hops is
 * looping; it is refused (5.4.6) rather than sent round once more. */
#define MSG_MAX_RECEIVED 100

/* For sendmail -t: calls fn once per addr-spec found in the To, Cc and Bcc
 * fields (RFC 5322 §3.4 address lists: display names, angle addresses,
 * groups, comments, quoted strings). The addr-spec is passed without angle
 * brackets or comments. Returns the number of addresses found, or -1 on a
 * syntax error (why filled). */
int msg_header_recipients(const char *msg, size_t len,
                          void (*fn)(const char *addr, size_t addr_len, void *arg), void *arg,
                          char *why, size_t why_len);

/* The domain of the first address of the first From field (RFC 5322
 * §3.6.2), ASCII lower-cased, into buf (n octets). False when there is no
 * From field or its first address has no domain (or does not fit). */
bool msg_from_domain(const char *msg, size_t len, char *buf, size_t n);

/* Returns a copy of msg without its Bcc fields (the caller frees it), and
 * sets *out_len. */
char *msg_strip_bcc(const char *msg, size_t len, size_t *out_len);

#endif
