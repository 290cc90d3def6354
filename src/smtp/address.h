/* address.h - RFC 5321 paths and mailboxes: parse, validate, format.
 *
 * Parses the <path> of MAIL FROM / RCPT TO (RFC 5321 §4.1.2): dot-string or
 * quoted-string local parts, domains, address literals ([1.2.3.4],
 * [IPv6:...]), the null path <> (MAIL only) and source routes (accepted and
 * ignored, §4.1.2 / appendix C). UTF-8 local parts and domains are accepted
 * only with SMTP_PATH_UTF8 (RFC 6531). Length limits of §4.5.3.1 apply:
 * local part 64, domain 255, path 256 octets.
 *
 * Errors name an enhanced status code (RFC 3463) and a human reason, so the
 * listener can answer "501 5.1.3 ..." without translating.
 */
#ifndef OUTPOST_SMTP_ADDRESS_H
#define OUTPOST_SMTP_ADDRESS_H

#include <stdbool.h>
#include <stddef.h>

#define SMTP_LOCALPART_MAX 64
#define SMTP_DOMAIN_MAX    255
#define SMTP_PATH_MAX      256

enum smtp_path_flags {
	SMTP_PATH_ALLOW_NULL = 1 << 0, /* <> is valid (MAIL FROM) */
	SMTP_PATH_UTF8 = 1 << 1,       /* SMTPUTF8 was given: UTF-8 is allowed */
};

/* A parsed mailbox. localpart keeps its quoting as received (quotes and
 * backslashes included) so it can be sent on unchanged; domain is as received
 * (U-labels stay U-labels), address literals keep their brackets. */
struct smtp_addr {
	char localpart[SMTP_LOCALPART_MAX + 1];
	char domain[SMTP_DOMAIN_MAX + 1];
	bool is_null;        /* the null path <> */
	bool domain_literal; /* domain is [..] */
	bool utf8;           /* local part or domain has octets >= 0x80 */
};

/* A failure: enhanced code such as "5.1.3" and a reason fit for a reply. */
struct smtp_error {
	char enhanced[12];
	char reason[128];
};

/* Parses a path starting at s[0] == '<' within len octets. On success fills
 * out, sets *consumed to the octets used (through '>') and returns true. On
 * failure fills err and returns false. */
bool smtp_path_parse(const char *s, size_t len, unsigned flags, struct smtp_addr *out,
                     size_t *consumed, struct smtp_error *err);

/* Parses a bare mailbox "local@domain" (no angle brackets), e.g. a command
 * line argument or an address taken from a To: header. Same rules. */
bool smtp_mailbox_parse(const char *s, size_t len, unsigned flags, struct smtp_addr *out,
                        struct smtp_error *err);

/* Writes "local@domain" (or "" for the null path) into buf of size n;
 * returns the length, or -1 when it does not fit. */
int smtp_addr_format(const struct smtp_addr *a, char *buf, size_t n);

/* Lower-cased ASCII domain for grouping and filters ("Example.COM" ->
 * "example.com"); U-labels are left as they are. buf must hold 256 octets. */
void smtp_domain_key(const char *domain, char *buf, size_t n);

/* True when s (len octets) is a syntactically valid domain name
 * (RFC 5321 Domain; with utf8, U-labels of valid UTF-8 too). */
bool smtp_domain_valid(const char *s, size_t len, bool utf8);

#endif
