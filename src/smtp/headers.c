/* headers.c - read the header section of an RFC 5322 message.
 *
 * Lines end in CRLF or, for local input such as "sendmail" on stdin, in a
 * bare LF; both are accepted everywhere. A field is "name:" followed by its
 * value and any continuation lines (starting with SP or HTAB, RFC 5322
 * §2.2.3). Whitespace between the name and the colon is tolerated
 * (obs-optional, §4.5.8).
 *
 * The address-list parser (msg_header_recipients) follows RFC 5322 §3.4
 * with the obsolete forms of §4.4 that real mail still carries: CFWS
 * anywhere between tokens, empty list elements (",,"), source routes inside
 * angle brackets, and phrases with dots ("John Q. Public"). Two further
 * leniencies for "sendmail -t": an address without "@domain" ("To: root",
 * as cron writes it) is passed to the callback as it is, for the caller to
 * qualify; and a group missing its final ';' at the end of a field is
 * accepted.
 */
#include "smtp/headers.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ADDR_SPEC_MAX 998 /* RFC 5322 §2.1.1 line limit bounds any addr-spec */

/* End of the line starting at p: the LF, or end when there is none. */
static const char *line_lf(const char *p, const char *end)
{
	const char *lf = memchr(p, '\n', (size_t)(end - p));

	return lf ? lf : end;
}

/* True when the line at p is empty ("\r\n" or "\n"); *next is past it. */
static bool line_empty(const char *p, const char *end, const char **next)
{
	if (p < end && *p == '\n') {
		*next = p + 1;
		return true;
	}
	if (end - p >= 2 && p[0] == '\r' && p[1] == '\n') {
		*next = p + 2;
		return true;
	}
	return false;
}

size_t msg_header_end(const char *msg, size_t len)
{
	const char *p = msg, *end = msg + len, *next;

	while (p < end) {
		const char *lf;

		if (line_empty(p, end, &next))
			return (size_t)(next - msg);
		lf = line_lf(p, end);
		if (lf == end)
			break;
		p = lf + 1;
	}
	return len;
}

void msg_header_iter_init(struct msg_header_iter *it, const char *msg, size_t len)
{
	it->p = msg;
	it->end = msg + len;
}

/* ftext = %d33-57 / %d59-126 (RFC 5322 §3.6.8) */
static bool is_ftext(unsigned char ch)
{
	return ch >= 33 && ch <= 126 && ch != ':';
}

/* Finds the end of a field's value starting at p: the line ending of the
 * last line that is not followed by a continuation line. Returns the
 * position of that line ending (CR or LF, or end); *next is past it. */
static const char *field_value_end(const char *p, const char *end, const char **next)
{
	for (;;) {
		const char *lf = line_lf(p, end);

		if (lf == end) {
			*next = end;
			return end;
		}
		if (lf + 1 < end && (lf[1] == ' ' || lf[1] == '\t')) {
			p = lf + 1;
			continue;
		}
		*next = lf + 1;
		return (lf > p && lf[-1] == '\r') ? lf - 1 : lf;
	}
}

bool msg_header_next(struct msg_header_iter *it, const char **name, size_t *name_len,
                     const char **value, size_t *value_len)
{
	const char *p = it->p, *end = it->end, *n_end, *v, *v_end, *next;

	while (p < end && is_ftext((unsigned char)*p))
		p++;
	n_end = p;
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	if (n_end == it->p || p >= end || *p != ':') {
		it->p = it->end; /* the header section ends, or is broken, here */
		return false;
	}
	v = p + 1;
	v_end = field_value_end(v, end, &next);
	*name = it->p;
	*name_len = (size_t)(n_end - it->p);
	*value = v;
	*value_len = (size_t)(v_end - v);
	it->p = next;
	return true;
}

static bool name_is(const char *name, size_t n, const char *want)
{
	return strlen(want) == n && strncasecmp(name, want, n) == 0;
}

static bool is_fws(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

/* RFC 8689 §5: "TLS-Required: No"; the comparison ignores case and the
 * whitespace and folding around the value. */
static bool value_is_no(const char *v, size_t n)
{
	while (n > 0 && is_fws(v[0])) {
		v++;
		n--;
	}
	while (n > 0 && is_fws(v[n - 1]))
		n--;
	return n == 2 && strncasecmp(v, "No", 2) == 0;
}

bool msg_tls_required_no(const char *msg, size_t len)
{
	struct msg_header_iter it;
	const char *name, *value;
	size_t name_len, value_len;
	bool seen = false;

	msg_header_iter_init(&it, msg, len);
	while (msg_header_next(&it, &name, &name_len, &value, &value_len)) {
		if (!name_is(name, name_len, "TLS-Required"))
			continue;
		if (!value_is_no(value, value_len))
			return false;
		seen = true;
	}
	return seen;
}

size_t msg_count_header(const char *msg, size_t len, const char *name)
{
	struct msg_header_iter it;
	const char *n, *value;
	size_t n_len, value_len, count = 0;

	msg_header_iter_init(&it, msg, len);
	while (msg_header_next(&it, &n, &n_len, &value, &value_len))
		count += name_is(n, n_len, name);
	return count;
}

bool msg_has_header(const char *msg, size_t len, const char *name)
{
	return msg_count_header(msg, len, name) > 0;
}

/* ---- RFC 5322 §3.4 address lists ---- */

enum tok_type {
	TOK_END,
	TOK_ERROR,
	TOK_ATOM,    /* 1*atext (and UTF-8, RFC 6532) */
	TOK_QUOTED,  /* quoted-string, quotes included */
	TOK_LITERAL, /* domain-literal, brackets included */
	TOK_SPECIAL, /* one of < > @ , : ; . */
};

struct tok {
	enum tok_type type;
	const char *s;
	size_t n;
};

struct lexer {
	const char *p, *end;
	const char *why; /* set with TOK_ERROR */
};

/* An addr-spec being collected: its text and where it is in the grammar
 * local-part ["@" domain], each side dot-separated words. */
enum spec_state { SPEC_EMPTY, SPEC_LWORD, SPEC_LDOT, SPEC_AT, SPEC_DWORD, SPEC_DDOT, SPEC_BAD };

struct spec {
	char buf[ADDR_SPEC_MAX + 1];
	size_t len;
	enum spec_state state;
};

struct rcpt_ctx {
	struct lexer lx;
	struct tok t; /* the current token */
	void (*fn)(const char *addr, size_t addr_len, void *arg);
	void *arg;
	int count;
};

static bool is_atext(unsigned char ch)
{
	if (ch >= 0x80)
		return true; /* RFC 6532 §3.2: UTF8-non-ascii */
	if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
		return true;
	return ch != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", ch) != NULL;
}

/* Skips a comment (nested, with quoted-pairs) starting at '('. */
static bool skip_comment(struct lexer *lx)
{
	int depth = 0;

	while (lx->p < lx->end) {
		char ch = *lx->p++;

		if (ch == '\\' && lx->p < lx->end)
			lx->p++;
		else if (ch == '(')
			depth++;
		else if (ch == ')' && --depth == 0)
			return true;
	}
	lx->why = "unterminated comment";
	return false;
}

/* Control characters other than folding whitespace: RFC 5322 allows some
 * only as obsolete syntax, and none of them belongs in an address that is
 * handed on to the envelope (NUL would even cut it short). */
static bool is_ctl(unsigned char ch)
{
	return (ch < 32 && ch != '\t' && ch != '\r' && ch != '\n') || ch == 127;
}

/* Scans a quoted-string or domain-literal up to the closing delimiter. */
static enum tok_type lex_delimited(struct lexer *lx, char close, enum tok_type type)
{
	lx->p++;
	while (lx->p < lx->end && *lx->p != close) {
		if (*lx->p == '\\' && lx->end - lx->p > 1)
			lx->p++; /* quoted-pair */
		if (is_ctl((unsigned char)*lx->p)) {
			lx->why = "control character in address";
			return TOK_ERROR;
		}
		lx->p++;
	}
	if (lx->p >= lx->end) {
		lx->why =
		    close == '"' ? "unterminated quoted string" : "unterminated domain literal";
		return TOK_ERROR;
	}
	lx->p++;
	return type;
}

static void lex_next(struct lexer *lx, struct tok *t)
{
	for (;;) {
		while (lx->p < lx->end && is_fws(*lx->p))
			lx->p++;
		if (lx->p >= lx->end || *lx->p != '(')
			break;
		if (!skip_comment(lx)) {
			t->type = TOK_ERROR;
			return;
		}
	}
	t->s = lx->p;
	if (lx->p >= lx->end)
		t->type = TOK_END;
	else if (*lx->p == '"')
		t->type = lex_delimited(lx, '"', TOK_QUOTED);
	else if (*lx->p == '[')
		t->type = lex_delimited(lx, ']', TOK_LITERAL);
	else if (*lx->p != '\0' && strchr("<>@,:;.", *lx->p)) {
		t->type = TOK_SPECIAL;
		lx->p++;
	} else if (is_atext((unsigned char)*lx->p)) {
		while (lx->p < lx->end && is_atext((unsigned char)*lx->p))
			lx->p++;
		t->type = TOK_ATOM;
	} else {
		lx->why = "invalid character in address list";
		t->type = TOK_ERROR;
	}
	t->n = (size_t)(lx->p - t->s);
}

static bool tok_is(const struct tok *t, char special)
{
	return t->type == TOK_SPECIAL && t->s[0] == special;
}

static void spec_reset(struct spec *sp)
{
	sp->len = 0;
	sp->state = SPEC_EMPTY;
}

/* Appends a token's text; folding inside quoted strings is unfolded. */
static void spec_append(struct spec *sp, const struct tok *t)
{
	size_t i;

	for (i = 0; i < t->n; i++) {
		if (t->s[i] == '\r' || t->s[i] == '\n')
			continue;
		if (sp->len >= ADDR_SPEC_MAX) {
			sp->state = SPEC_BAD;
			return;
		}
		sp->buf[sp->len++] = t->s[i];
	}
}

/* Advances the addr-spec grammar by one token. */
static void spec_feed(struct spec *sp, const struct tok *t)
{
	bool word = t->type == TOK_ATOM || t->type == TOK_QUOTED;
	enum spec_state s = sp->state, next = SPEC_BAD;

	if ((s == SPEC_EMPTY || s == SPEC_LDOT) && word)
		next = SPEC_LWORD;
	else if (s == SPEC_LWORD && tok_is(t, '.'))
		next = SPEC_LDOT;
	else if (s == SPEC_LWORD && tok_is(t, '@'))
		next = SPEC_AT;
	else if ((s == SPEC_AT || s == SPEC_DDOT) && t->type == TOK_ATOM)
		next = SPEC_DWORD;
	else if (s == SPEC_AT && t->type == TOK_LITERAL)
		next = SPEC_DWORD;
	else if (s == SPEC_DWORD && tok_is(t, '.') && sp->buf[sp->len - 1] != ']')
		next = SPEC_DDOT;
	sp->state = next;
	if (next != SPEC_BAD)
		spec_append(sp, t);
}

static bool spec_complete(const struct spec *sp)
{
	return sp->state == SPEC_LWORD || sp->state == SPEC_DWORD;
}

static bool rcpt_fail(struct rcpt_ctx *c, const char *why)
{
	if (!c->lx.why)
		c->lx.why = why;
	return false;
}

static bool rcpt_emit(struct rcpt_ctx *c, struct spec *sp)
{
	if (!spec_complete(sp))
		return rcpt_fail(c, "invalid address");
	sp->buf[sp->len] = '\0';
	c->fn(sp->buf, sp->len, c->arg);
	c->count++;
	return true;
}

static void rcpt_next(struct rcpt_ctx *c)
{
	lex_next(&c->lx, &c->t);
}

/* angle-addr = "<" [obs-route] addr-spec ">", after the '<'. */
static bool rcpt_angle(struct rcpt_ctx *c, struct spec *sp)
{
	spec_reset(sp);
	rcpt_next(c);
	if (tok_is(&c->t, '@')) {
		/* obs-route = obs-domain-list ":" ; dropped as RFC 5321 drops it */
		while (c->t.type != TOK_END && c->t.type != TOK_ERROR && !tok_is(&c->t, ':') &&
		       !tok_is(&c->t, '>'))
			rcpt_next(c);
		if (!tok_is(&c->t, ':'))
			return rcpt_fail(c, "invalid route in angle address");
		rcpt_next(c);
	}
	while (c->t.type == TOK_ATOM || c->t.type == TOK_QUOTED || c->t.type == TOK_LITERAL ||
	       tok_is(&c->t, '.') || tok_is(&c->t, '@')) {
		spec_feed(sp, &c->t);
		rcpt_next(c);
	}
	if (!tok_is(&c->t, '>'))
		return rcpt_fail(c, "missing '>' in address");
	if (!rcpt_emit(c, sp))
		return false;
	rcpt_next(c);
	return true;
}

/* Parses one field's address-list. Each element is a run of words, dots
 * and '@' that ends at a delimiter: before '<' it was a display name,
 * before ':' a group's name, before ',' ';' or the end an addr-spec. */
static bool rcpt_list(struct rcpt_ctx *c)
{
	struct spec sp;
	bool in_group = false;

	rcpt_next(c);
	for (;;) {
		size_t words = 0;

		spec_reset(&sp);
		while (c->t.type == TOK_ATOM || c->t.type == TOK_QUOTED ||
		       c->t.type == TOK_LITERAL || tok_is(&c->t, '.') || tok_is(&c->t, '@')) {
			spec_feed(&sp, &c->t);
			words++;
			rcpt_next(c);
		}
		if (c->t.type == TOK_ERROR)
			return rcpt_fail(c, "syntax error");
		if (tok_is(&c->t, '<')) {
			if (!rcpt_angle(c, &sp))
				return false;
			words = 0; /* the element is complete */
			if (!(c->t.type == TOK_END || tok_is(&c->t, ',') || tok_is(&c->t, ';')))
				return rcpt_fail(c, "unexpected text after address");
		}
		if (tok_is(&c->t, ':')) {
			/* group = display-name ":" [group-list] ";" (§3.4) */
			if (in_group || words == 0)
				return rcpt_fail(c, "invalid group");
			in_group = true;
			rcpt_next(c);
			continue;
		}
		if (words > 0 && !rcpt_emit(c, &sp))
			return false;
		if (c->t.type == TOK_END)
			return true;
		if (tok_is(&c->t, ';')) {
			if (!in_group)
				return rcpt_fail(c, "';' outside a group");
			in_group = false;
		} else if (!tok_is(&c->t, ',')) {
			return rcpt_fail(c, "unexpected character in address list");
		}
		rcpt_next(c);
	}
}

static bool is_recipient_field(const char *name, size_t n)
{
	return name_is(name, n, "To") || name_is(name, n, "Cc") || name_is(name, n, "Bcc");
}

int msg_header_recipients(const char *msg, size_t len,
                          void (*fn)(const char *addr, size_t addr_len, void *arg), void *arg,
                          char *why, size_t why_len)
{
	struct msg_header_iter it;
	const char *name, *value;
	size_t name_len, value_len;
	struct rcpt_ctx c = {.fn = fn, .arg = arg};

	msg_header_iter_init(&it, msg, len);
	while (msg_header_next(&it, &name, &name_len, &value, &value_len)) {
		if (!is_recipient_field(name, name_len))
			continue;
		c.lx.p = value;
		c.lx.end = value + value_len;
		c.lx.why = NULL;
		if (!rcpt_list(&c)) {
			if (why && why_len > 0)
				snprintf(why, why_len, "%.*s: %s", (int)name_len, name, c.lx.why);
			return -1;
		}
	}
	return c.count;
}

/* The domain of the first address given, for msg_from_domain. */
struct first_domain {
	char *buf;
	size_t n;
	bool seen;
};

static void first_address(const char *addr, size_t addr_len, void *arg)
{
	struct first_domain *f = arg;
	const char *at = memrchr(addr, '@', addr_len);

	if (f->seen)
		return;
	f->seen = true;
	if (at == NULL || (size_t)(addr + addr_len - at - 1) >= f->n)
		return;
	memcpy(f->buf, at + 1, (size_t)(addr + addr_len - at - 1));
	f->buf[addr + addr_len - at - 1] = '\0';
}

bool msg_from_domain(const char *msg, size_t len, char *buf, size_t n)
{
	struct msg_header_iter it;
	const char *name, *value;
	size_t name_len, value_len;
	struct first_domain first = {buf, n, false};
	struct rcpt_ctx c = {.fn = first_address, .arg = &first};

	if (n == 0)
		return false;
	buf[0] = '\0';
	msg_header_iter_init(&it, msg, len);
	while (msg_header_next(&it, &name, &name_len, &value, &value_len)) {
		if (!name_is(name, name_len, "From"))
			continue;
		c.lx.p = value;
		c.lx.end = value + value_len;
		c.lx.why = NULL;
		rcpt_list(&c); /* the first address counts even if a later one is bad */
		break;
	}
	for (char *p = buf; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return buf[0] != '\0';
}

char *msg_strip_bcc(const char *msg, size_t len, size_t *out_len)
{
	struct msg_header_iter it;
	const char *name, *value, *copied = msg;
	size_t name_len, value_len, n = 0;
	char *out = malloc(len + 1);

	if (!out)
		return NULL;
	msg_header_iter_init(&it, msg, len);
	while (msg_header_next(&it, &name, &name_len, &value, &value_len)) {
		if (!name_is(name, name_len, "Bcc"))
			continue;
		/* copy what precedes this field, skip the field with its line ending */
		memcpy(out + n, copied, (size_t)(name - copied));
		n += (size_t)(name - copied);
		copied = it.p;
	}
	memcpy(out + n, copied, (size_t)(msg + len - copied));
	n += (size_t)(msg + len - copied);
	out[n] = '\0';
	*out_len = n;
	return out;
}
