/* fuzz_tlsrpt_record.c - libFuzzer target for the _smtp._tls TXT record
 * parser (src/tlsrpt/record.c: anyone can publish these strings).
 *
 * The input is split at '\n' into up to 8 TXT strings (a NUL becomes '?',
 * as dns.c does). Besides crashes it checks what the callers rely on: an OK
 * record has 1 to TLSRPT_RUA_MAX destinations, each NUL-terminated within
 * its buffer, a mailto target is local@domain without spaces, controls,
 * "<", ">" or ",", an https target starts with "https://" and holds only
 * printable ASCII; every other status explains itself in why. */
#include "tlsrpt/record.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_STRINGS 8

static void check_rua(const struct tlsrpt_rua *r)
{
	size_t len = strnlen(r->target, TLSRPT_URI_MAX);
	if (len == 0 || len == TLSRPT_URI_MAX)
		abort();
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)r->target[i];
		if (c <= 0x20 || c == 0x7f)
			abort();
		if (r->kind == TLSRPT_RUA_HTTPS && c >= 0x7f)
			abort();
		if (r->kind == TLSRPT_RUA_MAILTO && (c == '<' || c == '>' || c == ','))
			abort();
	}
	if (r->kind == TLSRPT_RUA_HTTPS && strncasecmp(r->target, "https://", 8) != 0)
		abort();
	if (r->kind == TLSRPT_RUA_MAILTO) {
		const char *at = strrchr(r->target, '@');
		if (at == NULL || at == r->target || at[1] == '\0')
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy = malloc(size + 1), *txt[MAX_STRINGS];
	size_t n = 0;
	if (copy == NULL)
		return 0;
	for (size_t i = 0; i < size; i++)
		copy[i] = data[i] == '\0' ? '?' : (char)data[i];
	copy[size] = '\0';
	for (char *s = copy, *save = NULL, *tok; n < MAX_STRINGS && (tok = strtok_r(s, "\n", &save));
	     s = NULL)
		txt[n++] = tok;
	struct tlsrpt_record r;
	char why[128] = "";
	enum tlsrpt_record_status st = tlsrpt_record_find((const char *const *)txt, n, &r, why,
	                                                  sizeof why);
	if (st == TLSRPT_RECORD_OK) {
		if (r.nrua == 0 || r.nrua > TLSRPT_RUA_MAX)
			abort();
		for (size_t i = 0; i < r.nrua; i++)
			check_rua(&r.rua[i]);
	} else if (why[0] == '\0') {
		abort();
	}
	free(copy);
	return 0;
}
