/* address.c - RFC 5321 paths and mailboxes: parse, validate, format.
 *
 * A small recursive-descent parser over a counted cursor; nothing here reads
 * past len and nothing needs a NUL terminator in the input.
 *
 * Enhanced status codes: the parser does not know which command it serves,
 * so every syntax or length problem is reported as 5.1.3 ("bad destination
 * mailbox address syntax", RFC 3463 §3.2). The MAIL command handler turns
 * that into 5.1.7 (bad sender's mailbox syntax). Non-ASCII octets without
 * SMTPUTF8 are 5.6.7 (RFC 6531 §3.7.4.1); the caller answers those with 553.
 *
 * Choices where the RFCs leave room:
 *  - the 256-octet path limit (§4.5.3.1.3) is applied to "local@domain",
 *    without the brackets and without a source route, because the route is
 *    dropped and only the mailbox is ever sent on;
 *  - general address literals ("[tag:content]", §4.1.3) are rejected: no
 *    standardized tag other than IPv6 exists and nothing could deliver there;
 *  - U-labels (RFC 6531) are checked for valid UTF-8, LDH-only ASCII and
 *    hyphen placement; the 63-octet label limit applies to ASCII labels only
 *    (a U-label's A-label may be shorter than its UTF-8 form), the 255-octet
 *    domain limit to the whole domain in octets.
 */
#include "smtp/address.h"

#include "util/utf8.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define LABEL_MAX   63
#define LITERAL_MAX 64 /* longest literal content we hand to inet_pton */

struct cursor {
	const unsigned char *p, *end;
	unsigned flags;
	struct smtp_error *err;
};

static bool addr_fail(struct smtp_error *err, const char *enhanced, const char *reason)
{
	if (err) {
		snprintf(err->enhanced, sizeof(err->enhanced), "%s", enhanced);
		snprintf(err->reason, sizeof(err->reason), "%s", reason);
	}
	return false;
}

/* A syntax error at the cursor. The octet found there often explains more
 * than the grammar rule that failed, so it takes precedence. */
static bool cursor_syntax(const struct cursor *c, const char *reason)
{
	if (c->p < c->end) {
		unsigned char ch = *c->p;

		if (ch >= 0x80 && !(c->flags & SMTP_PATH_UTF8))
			return addr_fail(c->err, "5.6.7", "non-ASCII address requires SMTPUTF8");
		if (ch < 0x20 || ch == 0x7f)
			return addr_fail(c->err, "5.1.3", "control character in address");
	}
	return addr_fail(c->err, "5.1.3", reason);
}

static bool cursor_at(const struct cursor *c, unsigned char ch)
{
	return c->p < c->end && *c->p == ch;
}

/* Consumes one UTF8-non-ascii character (RFC 6531 §3.3) at the cursor. */
static bool cursor_utf8(struct cursor *c)
{
	size_t n;

	if (!(c->flags & SMTP_PATH_UTF8))
		return addr_fail(c->err, "5.6.7", "non-ASCII address requires SMTPUTF8");
	n = utf8_decode(c->p, (size_t)(c->end - c->p), NULL);
	if (n == 0)
		return addr_fail(c->err, "5.1.3", "invalid UTF-8 in address");
	c->p += n;
	return true;
}

static bool is_alnum(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
}

/* RFC 5322 §3.2.3 atext, which RFC 5321 §4.1.2 Atom uses. */
static bool is_atext(unsigned char ch)
{
	return is_alnum(ch) || (ch != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", ch) != NULL);
}

static bool parse_atom(struct cursor *c)
{
	const unsigned char *start = c->p;

	while (c->p < c->end) {
		if (*c->p < 0x80) {
			if (!is_atext(*c->p))
				break;
			c->p++;
		} else if (!cursor_utf8(c)) {
			return false;
		}
	}
	if (c->p == start)
		return cursor_syntax(c, "invalid local part");
	return true;
}

/* Dot-string = Atom *("." Atom): no leading, trailing or double dots. */
static bool parse_dot_string(struct cursor *c)
{
	for (;;) {
		if (!parse_atom(c))
			return false;
		if (!cursor_at(c, '.'))
			return true;
		c->p++;
	}
}

/* Quoted-string = DQUOTE *QcontentSMTP DQUOTE (§4.1.2): qtextSMTP is
 * %d32-33 / %d35-91 / %d93-126, quoted-pairSMTP is "\" %d32-126. */
static bool parse_quoted(struct cursor *c)
{
	c->p++; /* opening DQUOTE */
	while (c->p < c->end && *c->p != '"') {
		unsigned char ch = *c->p;

		if (ch >= 0x80) {
			if (!cursor_utf8(c))
				return false;
			continue;
		}
		if (ch == '\\') {
			c->p++;
			if (c->p >= c->end || *c->p < 32 || *c->p > 126)
				return cursor_syntax(c, "invalid quoted pair in local part");
			c->p++;
			continue;
		}
		if (ch < 32 || ch > 126)
			return cursor_syntax(c, "invalid character in quoted local part");
		c->p++;
	}
	if (c->p >= c->end)
		return cursor_syntax(c, "unterminated quoted local part");
	c->p++; /* closing DQUOTE */
	return true;
}

static bool parse_localpart(struct cursor *c, struct smtp_addr *out)
{
	const unsigned char *start = c->p;
	size_t n;
	bool ok = cursor_at(c, '"') ? parse_quoted(c) : parse_dot_string(c);

	if (!ok)
		return false;
	n = (size_t)(c->p - start);
	/* §4.5.3.1.1: counted as received, quotes and backslashes included. */
	if (n > SMTP_LOCALPART_MAX)
		return addr_fail(c->err, "5.1.3", "local part longer than 64 octets");
	memcpy(out->localpart, start, n);
	out->localpart[n] = '\0';
	return true;
}

/* Checks one label of len octets ending just before s[len]. */
static bool label_check(const unsigned char *s, size_t len, bool ascii, struct smtp_error *err)
{
	if (len == 0)
		return addr_fail(err, "5.1.3", "empty label in domain");
	if (ascii && len > LABEL_MAX)
		return addr_fail(err, "5.1.3", "domain label longer than 63 octets");
	/* §4.1.2 sub-domain: Let-dig [Ldh-str], Ldh-str ends in Let-dig. */
	if (s[0] == '-' || s[len - 1] == '-')
		return addr_fail(err, "5.1.3", "domain label begins or ends with a hyphen");
	return true;
}

/* RFC 5321 §4.1.2 Domain = sub-domain *("." sub-domain), with U-labels
 * (RFC 6531 §3.3) when utf8. No trailing dot. */
static bool domain_check(const unsigned char *s, size_t len, bool utf8, struct smtp_error *err)
{
	size_t i = 0;

	if (len == 0)
		return addr_fail(err, "5.1.3", "empty domain");
	if (len > SMTP_DOMAIN_MAX)
		return addr_fail(err, "5.1.3", "domain longer than 255 octets");
	for (;;) {
		size_t start = i;
		bool ascii = true;

		while (i < len && s[i] != '.') {
			if (s[i] >= 0x80) {
				size_t n = utf8_decode(s + i, len - i, NULL);

				if (!utf8)
					return addr_fail(err, "5.6.7",
					                 "non-ASCII address requires SMTPUTF8");
				if (n == 0)
					return addr_fail(err, "5.1.3", "invalid UTF-8 in domain");
				i += n;
				ascii = false;
				continue;
			}
			if (!is_alnum(s[i]) && s[i] != '-')
				return addr_fail(err, "5.1.3", "invalid character in domain");
			i++;
		}
		if (!label_check(s + start, i - start, ascii, err))
			return false;
		if (i == len)
			return true;
		i++; /* the dot; a trailing one leaves an empty label */
	}
}

bool smtp_domain_valid(const char *s, size_t len, bool utf8)
{
	return domain_check((const unsigned char *)s, len, utf8, NULL);
}

/* Consumes a domain at the cursor; copies it to dst (SMTP_DOMAIN_MAX + 1
 * octets) unless dst is NULL. */
static bool parse_domain(struct cursor *c, char *dst)
{
	const unsigned char *start = c->p;
	size_t n;

	while (c->p < c->end && (is_alnum(*c->p) || *c->p == '-' || *c->p == '.' || *c->p >= 0x80))
		c->p++;
	n = (size_t)(c->p - start);
	if (n == 0)
		return cursor_syntax(c, "missing domain");
	if (!domain_check(start, n, c->flags & SMTP_PATH_UTF8, c->err))
		return false;
	if (dst) {
		memcpy(dst, start, n);
		dst[n] = '\0';
	}
	return true;
}

/* Validates the content of an address literal (without brackets). */
static bool literal_check(const char *s, size_t n, struct smtp_error *err)
{
	char buf[LITERAL_MAX + 1];
	unsigned char addr[16];

	if (n > LITERAL_MAX)
		return addr_fail(err, "5.1.3", "address literal too long");
	memcpy(buf, s, n);
	buf[n] = '\0';
	/* §4.1.3: "IPv6:" IPv6-addr; ABNF strings are case-insensitive. */
	if (n >= 5 && strncasecmp(buf, "IPv6:", 5) == 0) {
		if (inet_pton(AF_INET6, buf + 5, addr) != 1)
			return addr_fail(err, "5.1.3", "invalid IPv6 address literal");
		return true;
	}
	if (memchr(buf, ':', n))
		return addr_fail(err, "5.1.3", "general address literals are not supported");
	if (inet_pton(AF_INET, buf, addr) != 1)
		return addr_fail(err, "5.1.3", "invalid IPv4 address literal");
	return true;
}

/* address-literal = "[" ( IPv4 / IPv6 / General ) "]"; kept with brackets. */
static bool parse_literal(struct cursor *c, struct smtp_addr *out)
{
	const unsigned char *start = c->p;
	size_t n;

	c->p++; /* '[' */
	while (c->p < c->end && *c->p != ']') {
		/* dcontent = %d33-90 / %d94-126 */
		if (*c->p < 33 || *c->p > 126 || *c->p == '[' || *c->p == '\\')
			return cursor_syntax(c, "invalid character in address literal");
		c->p++;
	}
	if (c->p >= c->end)
		return cursor_syntax(c, "unterminated address literal");
	if (!literal_check((const char *)start + 1, (size_t)(c->p - start) - 1, c->err))
		return false;
	c->p++; /* ']' */
	n = (size_t)(c->p - start);
	memcpy(out->domain, start, n);
	out->domain[n] = '\0';
	out->domain_literal = true;
	return true;
}

/* Mailbox = Local-part "@" ( Domain / address-literal ) */
static bool parse_mailbox(struct cursor *c, struct smtp_addr *out)
{
	if (!parse_localpart(c, out))
		return false;
	if (!cursor_at(c, '@'))
		return cursor_syntax(c, "missing @domain in address");
	c->p++;
	if (cursor_at(c, '['))
		return parse_literal(c, out);
	return parse_domain(c, out->domain);
}

/* A-d-l = At-domain *( "," At-domain ) ":" (§4.1.2). Appendix C: servers
 * must accept source routes and may ignore them, which we do after checking
 * their syntax. */
static bool skip_source_route(struct cursor *c)
{
	for (;;) {
		c->p++; /* '@' */
		if (!parse_domain(c, NULL))
			return false;
		if (cursor_at(c, ':')) {
			c->p++;
			return true;
		}
		if (!cursor_at(c, ','))
			return cursor_syntax(c, "invalid source route");
		c->p++;
		if (!cursor_at(c, '@'))
			return cursor_syntax(c, "invalid source route");
	}
}

static bool has_8bit(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80)
			return true;
	return false;
}

/* Checks the §4.5.3.1.3 path limit on a parsed mailbox and sets utf8. */
static bool mailbox_finish(struct smtp_addr *out, size_t mailbox_len, struct smtp_error *err)
{
	if (mailbox_len > SMTP_PATH_MAX)
		return addr_fail(err, "5.1.3", "address longer than 256 octets");
	out->utf8 = has_8bit(out->localpart) || has_8bit(out->domain);
	return true;
}

bool smtp_path_parse(const char *s, size_t len, unsigned flags, struct smtp_addr *out,
                     size_t *consumed, struct smtp_error *err)
{
	struct cursor c = {(const unsigned char *)s, (const unsigned char *)s + len, flags, err};
	const unsigned char *mailbox;

	memset(out, 0, sizeof(*out));
	if (!cursor_at(&c, '<'))
		return addr_fail(err, "5.5.4", "address must be enclosed in <>");
	c.p++;
	if (cursor_at(&c, '>')) {
		/* §4.5.5: the null reverse-path, for notifications only. */
		if (!(flags & SMTP_PATH_ALLOW_NULL))
			return addr_fail(err, "5.1.3", "null address not allowed here");
		out->is_null = true;
		*consumed = 2;
		return true;
	}
	if (cursor_at(&c, '@') && !skip_source_route(&c))
		return false;
	mailbox = c.p;
	if (!parse_mailbox(&c, out))
		return false;
	if (!cursor_at(&c, '>'))
		return cursor_syntax(&c, "missing > after address");
	if (!mailbox_finish(out, (size_t)(c.p - mailbox), err))
		return false;
	c.p++;
	*consumed = (size_t)(c.p - (const unsigned char *)s);
	return true;
}

/* An empty mailbox stands for the null path when that is allowed, so that
 * "sendmail -f ''" can name the null sender. */
bool smtp_mailbox_parse(const char *s, size_t len, unsigned flags, struct smtp_addr *out,
                        struct smtp_error *err)
{
	struct cursor c = {(const unsigned char *)s, (const unsigned char *)s + len, flags, err};

	memset(out, 0, sizeof(*out));
	if (len == 0) {
		if (!(flags & SMTP_PATH_ALLOW_NULL))
			return addr_fail(err, "5.1.3", "empty address");
		out->is_null = true;
		return true;
	}
	if (!parse_mailbox(&c, out))
		return false;
	if (c.p != c.end)
		return cursor_syntax(&c, "unexpected characters after address");
	return mailbox_finish(out, len, err);
}

/* A domain may be empty for <Postmaster> (RFC 5321 §4.1.1.3); then only the
 * local part is written. */
int smtp_addr_format(const struct smtp_addr *a, char *buf, size_t n)
{
	size_t l, d, total;

	if (n == 0)
		return -1;
	if (a->is_null) {
		buf[0] = '\0';
		return 0;
	}
	l = strnlen(a->localpart, sizeof(a->localpart));
	d = strnlen(a->domain, sizeof(a->domain));
	total = l + (d ? 1 + d : 0);
	if (total >= n)
		return -1;
	memcpy(buf, a->localpart, l);
	if (d) {
		buf[l] = '@';
		memcpy(buf + l + 1, a->domain, d);
	}
	buf[total] = '\0';
	return (int)total;
}

void smtp_domain_key(const char *domain, char *buf, size_t n)
{
	size_t i;

	if (n == 0)
		return;
	for (i = 0; domain[i] && i + 1 < n; i++) {
		char ch = domain[i];

		buf[i] = (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : ch;
	}
	buf[i] = '\0';
}
