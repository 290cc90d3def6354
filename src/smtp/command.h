/* command.h - parse SMTP commands received by the listener (RFC 5321 §4.1).
 *
 * A command line arrives without its CRLF. Parsing splits the verb, checks
 * the argument grammar of each verb, and for MAIL/RCPT parses the path and
 * the ESMTP parameters this server supports (SIZE, BODY, SMTPUTF8,
 * REQUIRETLS, AUTH). Unknown MAIL/RCPT parameters are an error (RFC 5321
 * §4.1.1.11: 555). Every error carries the reply code to send.
 */
#ifndef OUTPOST_SMTP_COMMAND_H
#define OUTPOST_SMTP_COMMAND_H

#include "smtp/address.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum smtp_verb {
	SMTP_VERB_UNKNOWN,
	SMTP_VERB_EHLO,
	SMTP_VERB_HELO,
	SMTP_VERB_MAIL,
	SMTP_VERB_RCPT,
	SMTP_VERB_DATA,
	SMTP_VERB_BDAT,
	SMTP_VERB_RSET,
	SMTP_VERB_NOOP,
	SMTP_VERB_QUIT,
	SMTP_VERB_VRFY,
	SMTP_VERB_EXPN,
	SMTP_VERB_HELP,
	SMTP_VERB_STARTTLS,
	SMTP_VERB_AUTH,
};

enum smtp_body_type { SMTP_BODY_UNSPEC, SMTP_BODY_7BIT, SMTP_BODY_8BITMIME, SMTP_BODY_BINARY };

struct smtp_command {
	enum smtp_verb verb;
	const char *arg; /* points into the line: text after the verb and one space */
	size_t arg_len;

	/* MAIL and RCPT */
	struct smtp_addr addr;
	/* MAIL parameters */
	uint64_t size; /* SIZE=, 0 when absent */
	bool has_size;
	enum smtp_body_type body;
	bool smtputf8;
	bool requiretls;
	/* BDAT */
	uint64_t chunk_size;
	bool last;
};

struct smtp_command_error {
	int code; /* 500, 501, 504, 555 ... */
	struct smtp_error e;
};

/* Parses one command line of len octets (no CRLF). Verb matching is
 * case-insensitive. For MAIL the null path is allowed; UTF-8 in the path is
 * allowed only when the line carries the SMTPUTF8 parameter. Returns true and
 * fills cmd, or false and fills err. cmd->arg points into line. */
bool smtp_command_parse(const char *line, size_t len, struct smtp_command *cmd,
                        struct smtp_command_error *err);

/* Name of a verb for logs ("MAIL"). */
const char *smtp_verb_name(enum smtp_verb v);

#endif
