/* record.c - the _smtp._tls TXT record (RFC 8460 §3). */
#include "tlsrpt/record.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define VERSION "v=TLSRPTv1"

static void set_why(char *why, size_t whylen, const char *text)
{
	if (why && whylen)
		snprintf(why, whylen, "%s", text);
}

static bool is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* "v=TLSRPTv1" *WSP ";" */
static bool is_tlsrpt(const char *s)
{
	size_t n = strlen(VERSION);
	if (strncmp(s, VERSION, n) != 0)
		return false;
	s += n;
	while (is_wsp(*s))
		s++;
	return *s == ';';
}

struct parse {
	const char *s;
	size_t i, n;
	struct tlsrpt_record *out;
};

static void skip_wsp(struct parse *p)
{
	while (p->i < p->n && is_wsp(p->s[p->i]))
		p->i++;
}

/* tlsrpt-ext-name = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".") */
static bool field_name(struct parse *p, size_t *start, size_t *len)
{
	*start = p->i;
	if (p->i >= p->n || !isalnum((unsigned char)p->s[p->i]))
		return false;
	p->i++;
	while (p->i < p->n && p->i - *start < 32) {
		char c = p->s[p->i];
		if (!isalnum((unsigned char)c) && c != '_' && c != '-' && c != '.')
			break;
		p->i++;
	}
	*len = p->i - *start;
	return true;
}

/* %x21-3A / %x3C / %x3E-7E: printable, no "=", ";" or space */
static bool ext_char(char c)
{
	unsigned char u = (unsigned char)c;
	return u >= 0x21 && u <= 0x7e && c != '=' && c != ';';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)tolower((unsigned char)c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* mailto:addr[?query]: the address, percent-decoded; it must look like
 * local@domain and hold nothing that could break a header or a command. */
static bool mailto_address(const char *uri, size_t len, char *out, size_t outlen)
{
	size_t o = 0;
	for (size_t i = strlen("mailto:"); i < len && uri[i] != '?'; i++) {
		char c = uri[i];
		if (c == '%') {
			if (i + 2 >= len || hexval(uri[i + 1]) < 0 || hexval(uri[i + 2]) < 0)
				return false;
			c = (char)(hexval(uri[i + 1]) * 16 + hexval(uri[i + 2]));
			i += 2;
		}
		unsigned char u = (unsigned char)c;
		if (u <= 0x20 || u == 0x7f || c == '<' || c == '>' || c == ',' || c == '"' ||
		    o + 1 >= outlen)
			return false;
		out[o++] = c;
	}
	out[o] = '\0';
	const char *at = strrchr(out, '@');
	return at != NULL && at != out && at[1] != '\0';
}

/* One URI of a rua field: kept when it is mailto: or https:. A URI ends at
 * ",", "!", ";" or white space (tlsrpt-uri excludes "," and "!"). */
static void take_uri(struct parse *p)
{
	size_t start = p->i;
	while (p->i < p->n) {
		char c = p->s[p->i];
		if (c == ',' || c == '!' || c == ';' || is_wsp(c))
			break;
		p->i++;
	}
	size_t len = p->i - start;
	const char *uri = p->s + start;
	struct tlsrpt_record *r = p->out;
	if (len == 0 || len >= TLSRPT_URI_MAX || r->nrua >= TLSRPT_RUA_MAX)
		return;
	struct tlsrpt_rua *rua = &r->rua[r->nrua];
	if (len > 7 && strncasecmp(uri, "mailto:", 7) == 0) {
		if (mailto_address(uri, len, rua->target, sizeof rua->target)) {
			rua->kind = TLSRPT_RUA_MAILTO;
			r->nrua++;
		}
	} else if (len > 8 && strncasecmp(uri, "https://", 8) == 0) {
		for (size_t i = 0; i < len; i++)
			if ((unsigned char)uri[i] <= 0x20 || (unsigned char)uri[i] >= 0x7f)
				return;
		memcpy(rua->target, uri, len);
		rua->target[len] = '\0';
		rua->kind = TLSRPT_RUA_HTTPS;
		r->nrua++;
	}
}

/* rua= URI *(*WSP "," *WSP URI) */
static bool rua_value(struct parse *p)
{
	for (;;) {
		if (p->i >= p->n || p->s[p->i] == ';' || is_wsp(p->s[p->i]))
			return false; /* an empty URI */
		take_uri(p);
		size_t save = p->i;
		skip_wsp(p);
		if (p->i < p->n && p->s[p->i] == ',') {
			p->i++;
			skip_wsp(p);
			continue;
		}
		if (p->i < p->n && p->s[p->i] == '!')
			return false;
		p->i = save;
		return true;
	}
}

static bool field(struct parse *p, bool *have_rua)
{
	size_t start, len;
	if (!field_name(p, &start, &len) || p->i >= p->n || p->s[p->i] != '=')
		return false;
	p->i++;
	if (len == 3 && strncmp(p->s + start, "rua", 3) == 0) {
		*have_rua = true;
		return rua_value(p);
	}
	size_t v = p->i;
	while (p->i < p->n && ext_char(p->s[p->i]))
		p->i++;
	return p->i > v;
}

static bool parse_record(struct parse *p)
{
	bool have_rua = false;
	p->i = strlen(VERSION);
	for (;;) {
		skip_wsp(p);
		if (p->i == p->n)
			break;
		if (p->s[p->i] != ';')
			return false;
		p->i++;
		skip_wsp(p);
		if (p->i == p->n)
			break; /* a trailing delimiter */
		if (!field(p, &have_rua))
			return false;
	}
	return have_rua;
}

enum tlsrpt_record_status tlsrpt_record_find(const char *const *txt, size_t n,
                                             struct tlsrpt_record *out, char *why,
                                             size_t whylen)
{
	const char *rec = NULL;
	size_t count = 0;
	for (size_t i = 0; i < n; i++)
		if (txt[i] && is_tlsrpt(txt[i]) && count++ == 0)
			rec = txt[i];
	if (count == 0)
		return set_why(why, whylen, "no v=TLSRPTv1 TXT record"), TLSRPT_RECORD_NONE;
	if (count > 1)
		return set_why(why, whylen, "more than one v=TLSRPTv1 TXT record"),
		       TLSRPT_RECORD_MULTIPLE;
	struct tlsrpt_record found = {0};
	struct parse p = {.s = rec, .n = strlen(rec), .out = &found};
	if (!parse_record(&p))
		return set_why(why, whylen, "the TLSRPT record does not parse"), TLSRPT_RECORD_SYNTAX;
	if (found.nrua == 0)
		return set_why(why, whylen, "no mailto: or https: destination in rua"),
		       TLSRPT_RECORD_NO_RUA;
	*out = found;
	return TLSRPT_RECORD_OK;
}
