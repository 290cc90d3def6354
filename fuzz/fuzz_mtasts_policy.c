/* fuzz_mtasts_policy.c - libFuzzer target for the MTA-STS policy parser
 * (the text comes from any HTTPS server that publishes a TXT record) and
 * for MX matching (the host names come from MX answers).
 *
 * Besides crashes it checks that a parsed policy is sane (mode, capped
 * max_age, mx patterns non-empty lower-case ASCII labels, lines without
 * terminators, the text kept as given), that it parses again to the same
 * policy, and that each pattern matches itself. Every line of the input is
 * also tried as an MX host against a fixed policy, and for ASCII hosts the
 * answer is compared with a plain reference matcher. */
#include "mtasts/policy.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_HOSTS 16

static const char FIXED_POLICY[] = "version: STSv1\r\n"
                                   "mode: enforce\r\n"
                                   "mx: mx1.example.net\r\n"
                                   "mx: *.example.org\r\n"
                                   "mx: *.xn--bcher-kva.example\r\n"
                                   "mx: a\r\n"
                                   "max_age: 604800\r\n";

static bool ldh(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

/* "*." then a name, or a name: lower-case LDH labels of 1 to 63, no label
 * starting or ending with '-', at most 253 octets. */
static void check_pattern(const char *mx)
{
	size_t n = strlen(mx), label = 0;

	if (n >= 2 && mx[0] == '*' && mx[1] == '.') {
		mx += 2;
		n -= 2;
	}
	if (n == 0 || n > 253)
		abort();
	for (size_t i = 0; i <= n; i++) {
		if (i == n || mx[i] == '.') {
			if (label == 0 || label > 63 || mx[i - 1] == '-')
				abort();
			label = 0;
			continue;
		}
		if (!ldh(mx[i]) || (label == 0 && mx[i] == '-'))
			abort();
		label++;
	}
}

/* Each pattern matches a host of its own shape. */
static void check_self_match(const struct mtasts_policy *p, const char *mx)
{
	char host[300];

	if (mx[0] != '*') {
		if (!mtasts_policy_matches_mx(p, mx))
			abort();
		return;
	}
	if (strlen(mx) + 1 > 253)
		return;
	snprintf(host, sizeof(host), "x%s", mx + 1);
	if (!mtasts_policy_matches_mx(p, host))
		abort();
}

static void check_same(const struct mtasts_policy *a, const struct mtasts_policy *b)
{
	if (mtasts_policy_mode(a) != mtasts_policy_mode(b) ||
	    mtasts_policy_max_age(a) != mtasts_policy_max_age(b) ||
	    mtasts_policy_mx_count(a) != mtasts_policy_mx_count(b) ||
	    mtasts_policy_line_count(a) != mtasts_policy_line_count(b))
		abort();
	for (size_t i = 0; i < mtasts_policy_mx_count(a); i++)
		if (strcmp(mtasts_policy_mx(a, i), mtasts_policy_mx(b, i)) != 0)
			abort();
	for (size_t i = 0; i < mtasts_policy_line_count(a); i++)
		if (strcmp(mtasts_policy_line(a, i), mtasts_policy_line(b, i)) != 0)
			abort();
}

static void check_lines(const struct mtasts_policy *p, size_t size)
{
	size_t lines = mtasts_policy_line_count(p), total = 0;

	/* version, mode and max_age at least, one line each */
	if (lines < 3 || mtasts_policy_line(p, lines) != NULL)
		abort();
	for (size_t i = 0; i < lines; i++) {
		const char *l = mtasts_policy_line(p, i);

		if (l == NULL || l[0] == '\0' || strpbrk(l, "\r\n") != NULL)
			abort();
		total += strlen(l) + 1;
	}
	if (total > size + 1)
		abort();
}

static void check_policy(const struct mtasts_policy *p, const uint8_t *data, size_t size)
{
	size_t len = 0, mx = mtasts_policy_mx_count(p);
	const char *text = mtasts_policy_text(p, &len);
	enum mtasts_mode mode = mtasts_policy_mode(p);
	int64_t max_age = mtasts_policy_max_age(p);
	struct mtasts_policy *again;

	if (len != size || memcmp(text, data, size) != 0 || text[len] != '\0')
		abort();
	if (mode != MTASTS_MODE_NONE && mode != MTASTS_MODE_TESTING && mode != MTASTS_MODE_ENFORCE)
		abort();
	if (max_age < 0 || max_age > MTASTS_MAX_AGE_MAX || (mode != MTASTS_MODE_NONE && mx == 0))
		abort();
	if (mx > mtasts_policy_line_count(p) || mtasts_policy_mx(p, mx) != NULL)
		abort();
	check_lines(p, size);
	for (size_t i = 0; i < mx; i++) {
		check_pattern(mtasts_policy_mx(p, i));
		check_self_match(p, mtasts_policy_mx(p, i));
	}
	again = mtasts_policy_parse(text, len, NULL, 0);
	if (again == NULL)
		abort();
	check_same(p, again);
	mtasts_policy_free(again);
}

/* The RFC 8461 §4.1 rule for an ASCII host against FIXED_POLICY. */
static bool reference_match(const char *host)
{
	static const char *const exact[] = {"mx1.example.net", "a"};
	static const char *const wild[] = {"example.org", "xn--bcher-kva.example"};
	char name[256];
	size_t n = strlen(host), label = 0;
	const char *dot;

	if (n > 0 && host[n - 1] == '.')
		n--;
	if (n == 0 || n > 253)
		return false;
	for (size_t i = 0; i <= n; i++) {
		char c = i < n ? host[i] : '.';

		if (c >= 'A' && c <= 'Z')
			c = (char)(c + 32);
		if (c == '.') {
			if (label == 0 || label > 63 || name[i - 1] == '-')
				return false;
			label = 0;
		} else if (!ldh(c) || (label == 0 && c == '-')) {
			return false;
		} else {
			label++;
		}
		name[i] = c;
	}
	name[n] = '\0';
	for (size_t i = 0; i < 2; i++)
		if (strcmp(name, exact[i]) == 0)
			return true;
	dot = strchr(name, '.');
	for (size_t i = 0; dot != NULL && i < 2; i++)
		if (strcmp(dot + 1, wild[i]) == 0)
			return true;
	return false;
}

static bool is_ascii(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80)
			return false;
	return true;
}

/* Every line of the input (up to '\n' or NUL) as an MX host name. */
static void match_hosts(const struct mtasts_policy *fixed, const struct mtasts_policy *p,
                        const uint8_t *data, size_t size)
{
	size_t start = 0, hosts = 0;

	for (size_t i = 0; i <= size && hosts < MAX_HOSTS; i++) {
		char *host;
		bool got;

		if (i < size && data[i] != '\n' && data[i] != '\0')
			continue;
		host = strndup((const char *)data + start, i - start);
		got = mtasts_policy_matches_mx(fixed, host);
		if (is_ascii(host) && got != reference_match(host))
			abort();
		if (p != NULL)
			(void)mtasts_policy_matches_mx(p, host);
		free(host);
		start = i + 1;
		hosts++;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct mtasts_policy *fixed;
	char why[160] = "";
	struct mtasts_policy *p;

	if (fixed == NULL)
		fixed = mtasts_policy_parse(FIXED_POLICY, sizeof(FIXED_POLICY) - 1, NULL, 0);
	if (fixed == NULL)
		abort();
	p = mtasts_policy_parse((const char *)data, size, why, sizeof(why));
	if (p != NULL)
		check_policy(p, data, size);
	else if (why[0] == '\0')
		abort();
	match_hosts(fixed, p, data, size);
	mtasts_policy_free(p);
	return 0;
}
