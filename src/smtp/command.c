/* command.c - parse SMTP commands received by the listener (RFC 5321 §4.1).
 *
 * One function per verb family checks the argument grammar; MAIL and RCPT
 * share a table-driven ESMTP parameter parser (RFC 5321 §4.1.2 esmtp-param).
 *
 * Leniencies, each because real clients need them:
 *  - spaces and tabs around the argument are ignored, and spaces between
 *    "FROM:"/"TO:" and "<" are accepted (§4.1.2 forbids them, many clients
 *    send them);
 *  - several spaces between parameters are accepted.
 *
 * Choices the session must know about:
 *  - RCPT paths may always contain UTF-8 (addr.utf8 is set). This parser has
 *    no session state, so the session must reject a utf8 recipient with
 *    553 5.6.7 when the transaction's MAIL lacked SMTPUTF8 (RFC 6531 §3.5).
 *  - DSN parameters (RFC 3461: RET and ENVID on MAIL, NOTIFY and ORCPT on
 *    RCPT) are refused with 555 like any parameter not offered: DSN is not
 *    in the EHLO reply, and accepting a NOTIFY=NEVER to ignore it would
 *    send notices the client asked not to get. AUTH= on MAIL (RFC 4954 §5)
 *    is accepted and ignored; nothing is stored.
 *  - "RCPT TO:<Postmaster>" (§4.1.1.3) comes back as local part "Postmaster"
 *    with an empty domain, whatever its case on the wire.
 */
#include "smtp/command.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define NUMBER_MAX_DIGITS 20 /* SIZE= and BDAT: uint64_t has 20 digits */


static bool cmd_fail(struct smtp_command_error *err, int code, const char *enhanced,
                     const char *reason)
{
	if (err) {
		err->code = code;
		snprintf(err->e.enhanced, sizeof(err->e.enhanced), "%s", enhanced);
		snprintf(err->e.reason, sizeof(err->e.reason), "%s", reason);
	}
	return false;
}

/* Maps an address error to a reply: 553 for "mailbox name not allowed"
 * (non-ASCII without SMTPUTF8, RFC 6531 §3.7.4.1), 501 for syntax. For MAIL
 * the generic 5.1.3 becomes 5.1.7, bad sender address syntax (RFC 3463). */
static bool cmd_fail_addr(struct smtp_command_error *err, const struct smtp_error *e, bool sender)
{
	if (strcmp(e->enhanced, "5.6.7") == 0)
		return cmd_fail(err, 553, e->enhanced, e->reason);
	if (sender && strcmp(e->enhanced, "5.1.3") == 0)
		return cmd_fail(err, 501, "5.1.7", e->reason);
	return cmd_fail(err, 501, e->enhanced, e->reason);
}

static bool is_space(char ch)
{
	return ch == ' ' || ch == '\t';
}

static bool is_digit(char ch)
{
	return ch >= '0' && ch <= '9';
}

static bool is_alpha(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

/* True when s (n octets) equals the ASCII word w, ignoring case. */
static bool word_is(const char *s, size_t n, const char *w)
{
	return strlen(w) == n && strncasecmp(s, w, n) == 0;
}

/* Parses 1..20 decimal digits into *v; false on anything else or overflow. */
static bool parse_u64(const char *s, size_t n, uint64_t *v)
{
	uint64_t x = 0;
	size_t i;

	if (n == 0 || n > NUMBER_MAX_DIGITS)
		return false;
	for (i = 0; i < n; i++) {
		unsigned d;

		if (!is_digit(s[i]))
			return false;
		d = (unsigned)(s[i] - '0');
		if (x > (UINT64_MAX - d) / 10)
			return false;
		x = x * 10 + d;
	}
	*v = x;
	return true;
}

/* §2.3.8 and §4.1.1: commands are text; NUL and other controls (TAB
 * excepted) have no business there and are a classic smuggling vector. */
static bool line_chars_ok(const char *line, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)line[i];

		if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
			return false;
	}
	return true;
}

const char *smtp_verb_name(enum smtp_verb v)
{
	switch (v) {
	case SMTP_VERB_EHLO:
		return "EHLO";
	case SMTP_VERB_HELO:
		return "HELO";
	case SMTP_VERB_MAIL:
		return "MAIL";
	case SMTP_VERB_RCPT:
		return "RCPT";
	case SMTP_VERB_DATA:
		return "DATA";
	case SMTP_VERB_BDAT:
		return "BDAT";
	case SMTP_VERB_RSET:
		return "RSET";
	case SMTP_VERB_NOOP:
		return "NOOP";
	case SMTP_VERB_QUIT:
		return "QUIT";
	case SMTP_VERB_VRFY:
		return "VRFY";
	case SMTP_VERB_EXPN:
		return "EXPN";
	case SMTP_VERB_HELP:
		return "HELP";
	case SMTP_VERB_STARTTLS:
		return "STARTTLS";
	case SMTP_VERB_AUTH:
		return "AUTH";
	default:
		return "UNKNOWN";
	}
}

static enum smtp_verb verb_lookup(const char *s, size_t n)
{
	int v;

	for (v = SMTP_VERB_EHLO; v <= SMTP_VERB_AUTH; v++)
		if (word_is(s, n, smtp_verb_name((enum smtp_verb)v)))
			return (enum smtp_verb)v;
	return SMTP_VERB_UNKNOWN;
}

/* ---- ESMTP parameters ---- */

struct param_def {
	const char *name;
	bool has_value; /* "NAME=value" when true, bare "NAME" when false */
	/* Stores the value; NULL for accepted-and-ignored parameters. */
	bool (*apply)(struct smtp_command *cmd, const char *v, size_t n,
	              struct smtp_command_error *err);
};

static bool param_size(struct smtp_command *cmd, const char *v, size_t n,
                       struct smtp_command_error *err)
{
	/* RFC 1870 §3: size-value = 1*20DIGIT */
	if (!parse_u64(v, n, &cmd->size))
		return cmd_fail(err, 501, "5.5.4", "invalid SIZE value");
	cmd->has_size = true;
	return true;
}

static bool param_body(struct smtp_command *cmd, const char *v, size_t n,
                       struct smtp_command_error *err)
{
	if (word_is(v, n, "7BIT"))
		cmd->body = SMTP_BODY_7BIT;
	else if (word_is(v, n, "8BITMIME"))
		cmd->body = SMTP_BODY_8BITMIME;
	/* RFC 3030 §3: BINARYMIME is its own extension, which is not offered
	 * (CHUNKING is; binary content could not be relayed to a next hop
	 * without it anyway) */
	else if (word_is(v, n, "BINARYMIME"))
		return cmd_fail(err, 504, "5.5.4", "BODY=BINARYMIME is not supported");
	else
		return cmd_fail(err, 501, "5.5.4", "unknown BODY type");
	return true;
}

static bool param_smtputf8(struct smtp_command *cmd, const char *v, size_t n,
                           struct smtp_command_error *err)
{
	cmd->smtputf8 = true;
	return true;
}

static bool param_requiretls(struct smtp_command *cmd, const char *v, size_t n,
                             struct smtp_command_error *err)
{
	cmd->requiretls = true; /* RFC 8689 §4.1 */
	return true;
}

static const struct param_def mail_params[] = {
    {"SIZE", true, param_size},
    {"BODY", true, param_body},
    {"SMTPUTF8", false, param_smtputf8},
    {"REQUIRETLS", false, param_requiretls},
    {"AUTH", true, NULL},
};

/* esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-") */
static bool keyword_ok(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || s[0] == '-')
		return false;
	for (i = 0; i < n; i++)
		if (!is_alpha(s[i]) && !is_digit(s[i]) && s[i] != '-')
			return false;
	return true;
}

/* esmtp-value = 1*(%d33-60 / %d62-126), plus UTF8-non-ascii (RFC 6531 §3.3). */
static bool value_ok(const char *s, size_t n)
{
	size_t i;

	if (n == 0)
		return false;
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch == '=' || ch < 33 || ch == 127)
			return false;
	}
	return true;
}

/* Applies one "keyword[=value]" token against the verb's table. */
static bool param_one(const char *tok, size_t n, const struct param_def *defs, size_t ndefs,
                      unsigned *seen, struct smtp_command *cmd, struct smtp_command_error *err)
{
	const char *eq = memchr(tok, '=', n);
	size_t klen = eq ? (size_t)(eq - tok) : n;
	const char *v = eq ? eq + 1 : NULL;
	size_t vlen = eq ? n - klen - 1 : 0;
	size_t i;

	if (!keyword_ok(tok, klen) || (eq && !value_ok(v, vlen)))
		return cmd_fail(err, 501, "5.5.4", "invalid parameter syntax");
	for (i = 0; i < ndefs; i++) {
		if (!word_is(tok, klen, defs[i].name))
			continue;
		if (*seen & (1u << i))
			return cmd_fail(err, 501, "5.5.4", "duplicate parameter");
		*seen |= 1u << i;
		if (defs[i].has_value != (eq != NULL))
			return cmd_fail(err, 501, "5.5.4",
			                defs[i].has_value ? "parameter needs a value"
			                                  : "parameter takes no value");
		return defs[i].apply ? defs[i].apply(cmd, v, vlen, err) : true;
	}
	/* §4.1.1.11: parameters not recognized are answered with 555. */
	return cmd_fail(err, 555, "5.5.4", "unsupported parameter");
}

/* Parses the text after the path: nothing, or SP-separated parameters. */
static bool params_parse(const char *s, size_t n, const struct param_def *defs, size_t ndefs,
                         struct smtp_command *cmd, struct smtp_command_error *err)
{
	unsigned seen = 0;
	size_t i = 0;

	if (n > 0 && !is_space(s[0]))
		return cmd_fail(err, 501, "5.5.4", "unexpected text after address");
	while (i < n) {
		size_t start;

		while (i < n && is_space(s[i]))
			i++;
		if (i == n)
			break;
		start = i;
		while (i < n && !is_space(s[i]))
			i++;
		if (!param_one(s + start, i - start, defs, ndefs, &seen, cmd, err))
			return false;
	}
	return true;
}

/* ---- verbs ---- */

/* Skips "FROM:" / "TO:" and any spaces; true when a '<' follows. */
static bool path_start(const char *arg, size_t n, const char *prefix, size_t *pos)
{
	size_t plen = strlen(prefix), i;

	if (n < plen || strncasecmp(arg, prefix, plen) != 0)
		return false;
	for (i = plen; i < n && is_space(arg[i]); i++)
		;
	*pos = i;
	return true;
}

static bool parse_mail(struct smtp_command *cmd, struct smtp_command_error *err)
{
	const char *arg = cmd->arg;
	size_t n = cmd->arg_len, i, used;
	struct smtp_error e;

	if (!path_start(arg, n, "FROM:", &i))
		return cmd_fail(err, 501, "5.5.4", "syntax: MAIL FROM:<address>");
	if (i >= n || arg[i] != '<')
		return cmd_fail(err, 501, "5.5.4", "address must be enclosed in <>");
	/* The path is parsed with UTF-8 allowed because SMTPUTF8 comes after
	 * it; the check against the parameter follows (RFC 6531 §3.4). */
	if (!smtp_path_parse(arg + i, n - i, SMTP_PATH_ALLOW_NULL | SMTP_PATH_UTF8, &cmd->addr,
	                     &used, &e))
		return cmd_fail_addr(err, &e, true);
	i += used;
	if (!params_parse(arg + i, n - i, mail_params, sizeof(mail_params) / sizeof(mail_params[0]),
	                  cmd, err))
		return false;
	if (cmd->addr.utf8 && !cmd->smtputf8)
		return cmd_fail(err, 553, "5.6.7", "non-ASCII address requires SMTPUTF8");
	return true;
}

/* §4.1.1.3: "<Postmaster>" without a domain must be accepted. */
static size_t postmaster_len(const char *s, size_t n)
{
	static const char pm[] = "<Postmaster>";
	size_t len = sizeof(pm) - 1;

	if (n >= len && strncasecmp(s, pm, len) == 0)
		return len;
	return 0;
}

static bool parse_rcpt(struct smtp_command *cmd, struct smtp_command_error *err)
{
	const char *arg = cmd->arg;
	size_t n = cmd->arg_len, i, used;
	struct smtp_error e;

	if (!path_start(arg, n, "TO:", &i))
		return cmd_fail(err, 501, "5.5.4", "syntax: RCPT TO:<address>");
	if (i >= n || arg[i] != '<')
		return cmd_fail(err, 501, "5.5.4", "address must be enclosed in <>");
	used = postmaster_len(arg + i, n - i);
	if (used) {
		snprintf(cmd->addr.localpart, sizeof(cmd->addr.localpart), "%s", "Postmaster");
	} else if (!smtp_path_parse(arg + i, n - i, SMTP_PATH_UTF8, &cmd->addr, &used, &e)) {
		return cmd_fail_addr(err, &e, false);
	}
	i += used;
	return params_parse(arg + i, n - i, NULL, 0, cmd, err);
}

/* RFC 3030 §2: bdat-cmd = "BDAT" SP chunk-size [ SP end-marker ] */
static bool parse_bdat(struct smtp_command *cmd, struct smtp_command_error *err)
{
	const char *arg = cmd->arg;
	size_t n = cmd->arg_len, i = 0, j;

	while (i < n && is_digit(arg[i]))
		i++;
	if (!parse_u64(arg, i, &cmd->chunk_size))
		return cmd_fail(err, 501, "5.5.4", "syntax: BDAT <size> [LAST]");
	for (j = i; j < n && is_space(arg[j]); j++)
		;
	if (j == n)
		return true;
	if (j == i || !word_is(arg + j, n - j, "LAST"))
		return cmd_fail(err, 501, "5.5.4", "syntax: BDAT <size> [LAST]");
	cmd->last = true;
	return true;
}

static bool parse_args(struct smtp_command *cmd, struct smtp_command_error *err)
{
	switch (cmd->verb) {
	case SMTP_VERB_EHLO:
	case SMTP_VERB_HELO:
		if (cmd->arg_len == 0)
			return cmd_fail(err, 501, "5.5.4", "a domain name is required");
		return true;
	case SMTP_VERB_AUTH:
		if (cmd->arg_len == 0)
			return cmd_fail(err, 501, "5.5.4",
			                "an authentication mechanism is required");
		return true;
	case SMTP_VERB_MAIL:
		return parse_mail(cmd, err);
	case SMTP_VERB_RCPT:
		return parse_rcpt(cmd, err);
	case SMTP_VERB_BDAT:
		return parse_bdat(cmd, err);
	case SMTP_VERB_DATA:
	case SMTP_VERB_RSET:
	case SMTP_VERB_QUIT:
	case SMTP_VERB_STARTTLS:
		if (cmd->arg_len != 0)
			return cmd_fail(err, 501, "5.5.4", "this command takes no argument");
		return true;
	default: /* NOOP, HELP, VRFY, EXPN: any argument */
		return true;
	}
}

bool smtp_command_parse(const char *line, size_t len, struct smtp_command *cmd,
                        struct smtp_command_error *err)
{
	size_t vlen = 0, i;

	memset(cmd, 0, sizeof(*cmd));
	if (!line_chars_ok(line, len))
		return cmd_fail(err, 500, "5.5.2", "invalid character in command");
	while (vlen < len && !is_space(line[vlen]))
		vlen++;
	cmd->verb = verb_lookup(line, vlen);
	if (cmd->verb == SMTP_VERB_UNKNOWN)
		return cmd_fail(err, 500, "5.5.2", "command not recognized");
	for (i = vlen; i < len && is_space(line[i]); i++)
		;
	while (len > i && is_space(line[len - 1]))
		len--;
	cmd->arg = line + i;
	cmd->arg_len = len - i;
	return parse_args(cmd, err);
}
