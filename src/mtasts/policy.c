/* policy.c - MTA-STS (RFC 8461): the _mta-sts TXT record, the policy text,
 * MX host matching.
 *
 * Both grammars are followed as written (RFC 8461 §3.1 and §3.2, ABNF with
 * RFC 7405 case-sensitive strings), with these readings where the text is
 * loose or silent:
 *
 * - A TXT string is an STS record when it starts with "v=STSv1" *WSP ";".
 *   §3.1 says to discard records not beginning with "v=STSv1;" while its
 *   sts-field-delim allows WSP before the ";"; we take the grammar.
 * - §3.2: "If any non-repeated field--i.e., all fields excepting 'mx'--is
 *   duplicated, all entries except for the first SHALL be ignored." We
 *   apply that to the TXT record's id too (the paragraph covers both). An
 *   ignored duplicate is only checked like an unknown extension field: its
 *   value is not interpreted, so "mode: enforce" then "mode: bogus" is an
 *   enforce policy.
 * - A known field whose value does not fit its production ("mode: bogus",
 *   "id=a-b") is an error, although the ABNF would also read it as an
 *   extension: the registered field names are not free for extensions.
 * - The policy grammar has no empty lines, no leading WSP before a key, no
 *   WSP between key and ":", and no CTLs (NUL, bare CR, TAB inside a value):
 *   each is an error. A final terminator is optional; only one.
 * - max_age above 31557600 is capped, not rejected (§3.2 gives the maximum).
 * - An mx pattern is ["*."] Domain (RFC 5321 §4.1.2), no trailing dot.
 *   §3.2 asks for A-labels; a pattern in UTF-8 is converted with libidn2
 *   (IDNA2008, UTS #46 non-transitional) rather than refused, so that a
 *   domain that wrote its MX in Unicode is still protected.
 */
#include "mtasts/policy.h"

#include "util/utf8.h"

#include <idn2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAME_MAX_LEN  253 /* RFC 1035 §2.3.4, without the trailing dot */
#define LABEL_MAX_LEN 63
#define EXT_NAME_MAX  32 /* sts-ext-name, sts-policy-ext-name: 1 + *31 */
/* Names in UTF-8 longer than this are refused before libidn2 spends time
 * on them: a code point takes at most 4 octets in UTF-8 and at least one in
 * an A-label, so no real name of NAME_MAX_LEN octets is longer. */
#define UNICODE_NAME_MAX (4 * NAME_MAX_LEN)

/* ---- character classes ---- */

static bool is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

static bool is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* sts-ext-name / sts-policy-ext-name: (ALPHA / DIGIT) *31(ALPHA / DIGIT /
 * "_" / "-" / "."). Returns the length of the name at s, or 0 if none. */
static size_t ext_name_len(const char *s, size_t n)
{
	size_t i = 0;

	if (n == 0 || !is_alnum(s[0]))
		return 0;
	while (i < n && (is_alnum(s[i]) || s[i] == '_' || s[i] == '-' || s[i] == '.'))
		i++;
	return i <= EXT_NAME_MAX ? i : 0;
}

static size_t skip_wsp(const char *s, size_t i, size_t n)
{
	while (i < n && is_wsp(s[i]))
		i++;
	return i;
}

static bool equals(const char *s, size_t n, const char *word)
{
	return strlen(word) == n && memcmp(s, word, n) == 0;
}

static void set_why(char *why, size_t whylen, const char *text)
{
	if (why != NULL && whylen > 0)
		snprintf(why, whylen, "%s", text);
}

/* ---- domain names ---- */

/* RFC 5321 §4.1.2 Domain: labels of letters, digits and hyphens that start
 * and end with a letter or digit, with the lengths of RFC 1035 §2.3.4. */
static bool ldh_domain_ok(const char *s, size_t n)
{
	size_t label = 0;

	if (n == 0 || n > NAME_MAX_LEN)
		return false;
	for (size_t i = 0; i <= n; i++) {
		if (i == n || s[i] == '.') {
			if (label == 0 || label > LABEL_MAX_LEN || s[i - 1] == '-')
				return false;
			label = 0;
		} else if (is_alnum(s[i]) || (s[i] == '-' && label > 0)) {
			label++;
		} else {
			return false;
		}
	}
	return true;
}

static bool has_non_ascii(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] >= 0x80)
			return true;
	return false;
}

/* U-labels to A-labels (IDNA2008 via libidn2). Returns a string the caller
 * frees with idn2_free, or NULL when s is not a valid IDN. */
static char *to_alabels(const char *s, size_t n)
{
	char *in = strndup(s, n), *out = NULL;

	if (in == NULL)
		return NULL;
	if (idn2_to_ascii_8z(in, &out, IDN2_NONTRANSITIONAL) != IDN2_OK)
		out = NULL;
	free(in);
	return out;
}

/* Writes the name at s (n bytes, no trailing dot) to out as lower-case
 * A-labels. out has room for NAME_MAX_LEN + 1 bytes. False when the name is
 * not a valid domain name. */
static bool domain_normalise(const char *s, size_t n, char out[NAME_MAX_LEN + 1])
{
	char *alabels = NULL;
	bool ok;

	if (has_non_ascii(s, n)) {
		if (n > UNICODE_NAME_MAX)
			return false;
		alabels = to_alabels(s, n);
		if (alabels == NULL)
			return false;
		s = alabels;
		n = strlen(alabels);
	}
	ok = n <= NAME_MAX_LEN;
	for (size_t i = 0; ok && i < n; i++)
		out[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] + 32) : s[i];
	ok = ok && ldh_domain_ok(out, n);
	if (ok)
		out[n] = '\0';
	idn2_free(alabels);
	return ok;
}

/* ---- the TXT record (RFC 8461 §3.1) ---- */

static const char STS_VERSION[] = "v=STSv1";

/* "v=STSv1" *WSP ";": the start of sts-text-record up to its first
 * sts-field-delim. Anything else ("v=STSv10", "v=STSv1" alone, SPF) is
 * some other TXT record. */
static bool is_sts_record(const char *s)
{
	size_t n = strlen(s), i = sizeof(STS_VERSION) - 1;

	if (n < i || memcmp(s, STS_VERSION, i) != 0)
		return false;
	i = skip_wsp(s, i, n);
	return i < n && s[i] == ';';
}

/* sts-ext-value = 1*(%x21-3A / %x3C / %x3E-7E): VCHAR but "=" and ";". */
static bool is_ext_value_char(char c)
{
	return c >= 0x21 && c <= 0x7e && c != '=' && c != ';';
}

struct record_parse {
	const char *s;
	size_t n, i; /* the record, its length, the parse position */
	bool have_id;
	struct mtasts_record *out;
	char *why;
	size_t whylen;
};

static bool record_error(struct record_parse *rp, const char *text)
{
	set_why(rp->why, rp->whylen, text);
	return false;
}

/* sts-id = %s"id=" 1*32(ALPHA / DIGIT). The first id counts (§3.2). */
static bool record_take_id(struct record_parse *rp, const char *v, size_t vn)
{
	if (rp->have_id)
		return true;
	if (vn > MTASTS_ID_MAX)
		return record_error(rp, "id must be 1 to 32 letters or digits");
	for (size_t k = 0; k < vn; k++)
		if (!is_alnum(v[k]))
			return record_error(rp, "id must be 1 to 32 letters or digits");
	memcpy(rp->out->id, v, vn);
	rp->out->id[vn] = '\0';
	rp->have_id = true;
	return true;
}

/* sts-field = sts-id / sts-extension, at rp->i. */
static bool record_field(struct record_parse *rp)
{
	size_t name = ext_name_len(rp->s + rp->i, rp->n - rp->i), value;
	const char *key = rp->s + rp->i, *v;

	if (name == 0 || rp->i + name >= rp->n || key[name] != '=')
		return record_error(rp, "expected a key=value field");
	v = key + name + 1;
	rp->i += name + 1;
	for (value = 0; rp->i < rp->n && is_ext_value_char(rp->s[rp->i]); value++)
		rp->i++;
	if (rp->i < rp->n && !is_wsp(rp->s[rp->i]) && rp->s[rp->i] != ';')
		return record_error(rp, "invalid character in a field value");
	if (value == 0)
		return record_error(rp, "empty field value");
	if (equals(key, name, "id"))
		return record_take_id(rp, v, value);
	return true;
}

/* After sts-version: 1*(sts-field-delim sts-field) [sts-field-delim], with
 * sts-field-delim = *WSP ";" *WSP. So ";;" and a trailing WSP without ";"
 * are errors, a trailing ";" followed by WSP is not. */
static bool record_parse(struct record_parse *rp)
{
	rp->i = sizeof(STS_VERSION) - 1;
	for (;;) {
		rp->i = skip_wsp(rp->s, rp->i, rp->n);
		if (rp->i >= rp->n || rp->s[rp->i] != ';')
			return record_error(rp, "fields must be separated by ';'");
		rp->i = skip_wsp(rp->s, rp->i + 1, rp->n);
		if (rp->i == rp->n)
			break;
		if (!record_field(rp))
			return false;
		if (rp->i == rp->n)
			break;
	}
	if (!rp->have_id)
		return record_error(rp, "no id field");
	return true;
}

enum mtasts_record_status mtasts_record_find(const char *const *txt, size_t n,
                                             struct mtasts_record *out, char *why, size_t whylen)
{
	struct mtasts_record found = {{0}};
	struct record_parse rp = {.out = &found, .why = why, .whylen = whylen};
	size_t count = 0;

	for (size_t i = 0; i < n; i++) {
		if (txt[i] == NULL || !is_sts_record(txt[i]))
			continue;
		if (count++ == 0)
			rp.s = txt[i];
	}
	if (count == 0) {
		set_why(why, whylen, "no v=STSv1 TXT record");
		return MTASTS_RECORD_NONE;
	}
	/* §3.1: "If the number of resulting records is not one, ... senders
	 * MUST assume the recipient domain does not have an available MTA-STS
	 * Policy". */
	if (count > 1) {
		set_why(why, whylen, "more than one v=STSv1 TXT record");
		return MTASTS_RECORD_MULTIPLE;
	}
	rp.n = strlen(rp.s);
	if (!record_parse(&rp))
		return MTASTS_RECORD_SYNTAX;
	*out = found;
	return MTASTS_RECORD_OK;
}

/* ---- the policy (RFC 8461 §3.2) ---- */

struct mtasts_policy {
	enum mtasts_mode mode;
	int64_t max_age; /* capped at MTASTS_MAX_AGE_MAX */
	char *text;      /* the text as given, NUL-terminated */
	size_t text_len;
	char *line_store; /* every line without its terminator, NUL after each */
	char **lines;     /* pointers into line_store */
	size_t line_count;
	char **mx; /* each its own allocation, owned here */
	size_t mx_count;
};

/* One "key:" *WSP "value" *WSP line, split. */
struct policy_field {
	const char *key, *value;
	size_t key_len, value_len;
};

struct policy_parse {
	struct mtasts_policy *p;
	char *line_end; /* where the next kept line goes in p->line_store */
	size_t lineno;
	bool have_version, have_mode, have_max_age;
	char *why;
	size_t whylen;
};

static bool line_error(struct policy_parse *ps, const char *text)
{
	if (ps->why != NULL && ps->whylen > 0)
		snprintf(ps->why, ps->whylen, "line %zu: %s", ps->lineno, text);
	return false;
}

/* sts-policy-ext-value: sts-policy-vchar [*(%x20 / sts-policy-vchar)
 * sts-policy-vchar], vchar being %x21-7E or UTF-8. The caller has trimmed
 * the WSP on either side, so inner SP is all that is left to allow. */
static bool policy_value_ok(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;

	if (n == 0)
		return false;
	while (i < n) {
		size_t len = (u[i] >= 0x20 && u[i] <= 0x7e) ? 1 : u[i] >= 0x80 ? utf8_decode(u + i, n - i, NULL) : 0;

		if (len == 0)
			return false;
		i += len;
	}
	return true;
}

/* sts-policy-field *WSP, with sts-policy-field-delim = ":" *WSP. */
static bool field_split(const char *line, size_t n, struct policy_field *f)
{
	size_t i;

	f->key = line;
	f->key_len = ext_name_len(line, n);
	if (f->key_len == 0 || f->key_len >= n || line[f->key_len] != ':')
		return false;
	i = skip_wsp(line, f->key_len + 1, n);
	while (n > i && is_wsp(line[n - 1]))
		n--;
	f->value = line + i;
	f->value_len = n - i;
	return true;
}

static bool policy_take_version(struct policy_parse *ps, const struct policy_field *f)
{
	if (ps->have_version)
		return true; /* §3.2: duplicates after the first are ignored */
	if (!equals(f->value, f->value_len, "STSv1"))
		return line_error(ps, "version must be STSv1");
	ps->have_version = true;
	return true;
}

static bool policy_take_mode(struct policy_parse *ps, const struct policy_field *f)
{
	if (ps->have_mode)
		return true;
	if (equals(f->value, f->value_len, "enforce"))
		ps->p->mode = MTASTS_MODE_ENFORCE;
	else if (equals(f->value, f->value_len, "testing"))
		ps->p->mode = MTASTS_MODE_TESTING;
	else if (equals(f->value, f->value_len, "none"))
		ps->p->mode = MTASTS_MODE_NONE;
	else
		return line_error(ps, "mode must be enforce, testing or none");
	ps->have_mode = true;
	return true;
}

/* sts-policy-max-age-value = 1*10(DIGIT): at most 9999999999, which fits. */
static bool policy_take_max_age(struct policy_parse *ps, const struct policy_field *f)
{
	int64_t v = 0;

	if (ps->have_max_age)
		return true;
	if (f->value_len == 0 || f->value_len > 10)
		return line_error(ps, "max_age must be 1 to 10 digits");
	for (size_t i = 0; i < f->value_len; i++) {
		if (!is_digit(f->value[i]))
			return line_error(ps, "max_age must be 1 to 10 digits");
		v = v * 10 + (f->value[i] - '0');
	}
	ps->p->max_age = v > MTASTS_MAX_AGE_MAX ? MTASTS_MAX_AGE_MAX : v;
	ps->have_max_age = true;
	return true;
}

/* sts-policy-mx-value = ["*."] Domain; every mx line counts. */
static bool policy_take_mx(struct policy_parse *ps, const struct policy_field *f)
{
	bool wildcard = f->value_len >= 2 && f->value[0] == '*' && f->value[1] == '.';
	size_t skip = wildcard ? 2 : 0;
	char domain[NAME_MAX_LEN + 1], *pattern;
	size_t len;

	if (!domain_normalise(f->value + skip, f->value_len - skip, domain))
		return line_error(ps, "mx must be a domain name, or *. and a domain name");
	len = strlen(domain);
	pattern = malloc(skip + len + 1);
	if (pattern == NULL)
		return line_error(ps, "out of memory");
	memcpy(pattern, "*.", skip);
	memcpy(pattern + skip, domain, len + 1);
	ps->p->mx[ps->p->mx_count++] = pattern;
	return true;
}

/* Keys are case-sensitive (RFC 7405 %s); other keys are extensions, which
 * §3.2 says SHALL be ignored. */
static bool policy_take_field(struct policy_parse *ps, const struct policy_field *f)
{
	if (equals(f->key, f->key_len, "version"))
		return policy_take_version(ps, f);
	if (equals(f->key, f->key_len, "mode"))
		return policy_take_mode(ps, f);
	if (equals(f->key, f->key_len, "max_age"))
		return policy_take_max_age(ps, f);
	if (equals(f->key, f->key_len, "mx"))
		return policy_take_mx(ps, f);
	return true;
}

/* Keeps the line as fetched for the TLSRPT policy-string. */
static void policy_keep_line(struct policy_parse *ps, const char *line, size_t n)
{
	struct mtasts_policy *p = ps->p;

	memcpy(ps->line_end, line, n);
	ps->line_end[n] = '\0';
	p->lines[p->line_count++] = ps->line_end;
	ps->line_end += n + 1;
}

static bool policy_take_line(struct policy_parse *ps, const char *line, size_t n)
{
	struct policy_field f;

	if (n == 0)
		return line_error(ps, "empty line");
	if (!field_split(line, n, &f))
		return line_error(ps, "expected \"key: value\" with a key of 1 to 32 letters, "
		                      "digits, '_', '-' or '.'");
	if (!policy_value_ok(f.value, f.value_len))
		return line_error(ps, "value is empty or holds control characters or invalid "
		                      "UTF-8");
	policy_keep_line(ps, line, n);
	return policy_take_field(ps, &f);
}

/* sts-policy-term = LF / CRLF; the last line may lack one. A CR anywhere
 * else is left in the line, where it is an error. */
static bool policy_take_lines(struct policy_parse *ps, const char *text, size_t len)
{
	size_t off = 0;

	while (off < len) {
		const char *line = text + off, *lf = memchr(line, '\n', len - off);
		size_t n = lf != NULL ? (size_t)(lf - line) : len - off;

		off += n + (lf != NULL);
		if (lf != NULL && n > 0 && line[n - 1] == '\r')
			n--;
		ps->lineno++;
		if (!policy_take_line(ps, line, n))
			return false;
	}
	return true;
}

static bool policy_complete(struct policy_parse *ps)
{
	const char *missing = NULL;

	if (!ps->have_version)
		missing = "no version field";
	else if (!ps->have_mode)
		missing = "no mode field";
	else if (!ps->have_max_age)
		missing = "no max_age field";
	else if (ps->p->mode != MTASTS_MODE_NONE && ps->p->mx_count == 0)
		missing = "no mx field (required unless mode is none)";
	if (missing != NULL)
		set_why(ps->why, ps->whylen, missing);
	return missing == NULL;
}

/* A policy with room for every line of text: lines, and at most as many mx
 * patterns, cannot outnumber the line feeds plus one. */
static struct mtasts_policy *policy_new(const char *text, size_t len)
{
	struct mtasts_policy *p = calloc(1, sizeof(*p));
	size_t slots = 1;

	if (p == NULL)
		return NULL;
	for (const char *s = text, *end = text + len; (s = memchr(s, '\n', (size_t)(end - s))); s++)
		slots++;
	p->text = malloc(len + 1);
	p->line_store = malloc(len + slots);
	p->lines = calloc(slots, sizeof(*p->lines));
	p->mx = calloc(slots, sizeof(*p->mx));
	if (p->text == NULL || p->line_store == NULL || p->lines == NULL || p->mx == NULL) {
		mtasts_policy_free(p);
		return NULL;
	}
	memcpy(p->text, text, len);
	p->text[len] = '\0';
	p->text_len = len;
	return p;
}

struct mtasts_policy *mtasts_policy_parse(const char *text, size_t len, char *why, size_t whylen)
{
	struct policy_parse ps = {.why = why, .whylen = whylen};

	if (len > MTASTS_POLICY_MAX_LEN) {
		set_why(why, whylen, "policy is longer than 65536 bytes");
		return NULL;
	}
	if (len == 0) {
		set_why(why, whylen, "policy is empty");
		return NULL;
	}
	ps.p = policy_new(text, len);
	if (ps.p == NULL) {
		set_why(why, whylen, "out of memory");
		return NULL;
	}
	ps.line_end = ps.p->line_store;
	if (!policy_take_lines(&ps, text, len) || !policy_complete(&ps)) {
		mtasts_policy_free(ps.p);
		return NULL;
	}
	return ps.p;
}

void mtasts_policy_free(struct mtasts_policy *p)
{
	if (p == NULL)
		return;
	for (size_t i = 0; i < p->mx_count; i++)
		free(p->mx[i]);
	free(p->mx);
	free(p->lines);
	free(p->line_store);
	free(p->text);
	free(p);
}

enum mtasts_mode mtasts_policy_mode(const struct mtasts_policy *p)
{
	return p->mode;
}

const char *mtasts_mode_name(enum mtasts_mode m)
{
	switch (m) {
	case MTASTS_MODE_NONE:
		return "none";
	case MTASTS_MODE_TESTING:
		return "testing";
	case MTASTS_MODE_ENFORCE:
		return "enforce";
	}
	return "unknown";
}

int64_t mtasts_policy_max_age(const struct mtasts_policy *p)
{
	return p->max_age;
}

size_t mtasts_policy_mx_count(const struct mtasts_policy *p)
{
	return p->mx_count;
}

const char *mtasts_policy_mx(const struct mtasts_policy *p, size_t i)
{
	return i < p->mx_count ? p->mx[i] : NULL;
}

size_t mtasts_policy_line_count(const struct mtasts_policy *p)
{
	return p->line_count;
}

const char *mtasts_policy_line(const struct mtasts_policy *p, size_t i)
{
	return i < p->line_count ? p->lines[i] : NULL;
}

const char *mtasts_policy_text(const struct mtasts_policy *p, size_t *len)
{
	if (len != NULL)
		*len = p->text_len;
	return p->text;
}

/* ---- MX matching (RFC 8461 §4.1) ---- */

/* "*.d" matches a name whose first label removed leaves exactly d: the
 * wildcard stands for one whole label, as in RFC 6125 §6.4.3. */
static bool pattern_matches(const char *pattern, const char *name)
{
	const char *dot;

	if (pattern[0] != '*')
		return strcmp(pattern, name) == 0;
	dot = strchr(name, '.');
	return dot != NULL && strcmp(dot + 1, pattern + 2) == 0;
}

bool mtasts_policy_matches_mx(const struct mtasts_policy *p, const char *host)
{
	char name[NAME_MAX_LEN + 1];
	size_t n;

	if (host == NULL)
		return false;
	n = strlen(host);
	if (n > 0 && host[n - 1] == '.')
		n--; /* the root: "mx.example.net." is "mx.example.net" */
	if (!domain_normalise(host, n, name))
		return false;
	for (size_t i = 0; i < p->mx_count; i++)
		if (pattern_matches(p->mx[i], name))
			return true;
	return false;
}
