/* fuzz_mtasts_record.c - libFuzzer target for the _mta-sts TXT record finder
 * (the strings come from DNS answers anyone can publish).
 *
 * The input is split at '\n' into up to 8 TXT strings (a NUL becomes '?',
 * as dns.c does). Besides crashes it checks that the status agrees with a
 * plain count of strings starting "v=STSv1" *WSP ";", that an OK record's
 * id is 1 to 32 letters or digits found as "id=<id>" in that string, and
 * that every other status explains itself in why. */
#include "mtasts/policy.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_STRINGS 8

static size_t count_sts(char *const *txt, size_t n)
{
	size_t count = 0;

	for (size_t i = 0; i < n; i++) {
		const char *s = txt[i];

		if (strncmp(s, "v=STSv1", 7) != 0)
			continue;
		s += 7;
		s += strspn(s, " \t");
		count += *s == ';';
	}
	return count;
}

static void check_id(const char *id, char *const *txt, size_t n)
{
	size_t len = strnlen(id, MTASTS_ID_MAX + 1);
	char needle[MTASTS_ID_MAX + 4] = "id=";
	bool found = false;

	if (len == 0 || len > MTASTS_ID_MAX)
		abort();
	for (size_t i = 0; i < len; i++)
		if (!((id[i] >= 'a' && id[i] <= 'z') || (id[i] >= 'A' && id[i] <= 'Z') ||
		      (id[i] >= '0' && id[i] <= '9')))
			abort();
	memcpy(needle + 3, id, len + 1);
	for (size_t i = 0; i < n; i++)
		found = found || strstr(txt[i], needle) != NULL;
	if (!found)
		abort();
}

static size_t split_strings(const uint8_t *data, size_t size, char **txt)
{
	size_t n = 0, start = 0;

	for (size_t i = 0; i <= size && n < MAX_STRINGS; i++) {
		if (i < size && data[i] != '\n')
			continue;
		txt[n] = malloc(i - start + 1);
		for (size_t k = start; k < i; k++)
			txt[n][k - start] = data[k] ? (char)data[k] : '?';
		txt[n][i - start] = '\0';
		n++;
		start = i + 1;
	}
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *txt[MAX_STRINGS];
	size_t n = split_strings(data, size, txt), sts = count_sts(txt, n);
	struct mtasts_record rec;
	char why[128] = "";
	enum mtasts_record_status st =
	    mtasts_record_find((const char *const *)txt, n, &rec, why, sizeof(why));

	switch (st) {
	case MTASTS_RECORD_OK:
		if (sts != 1)
			abort();
		check_id(rec.id, txt, n);
		break;
	case MTASTS_RECORD_NONE:
		if (sts != 0 || why[0] == '\0')
			abort();
		break;
	case MTASTS_RECORD_MULTIPLE:
		if (sts < 2 || why[0] == '\0')
			abort();
		break;
	case MTASTS_RECORD_SYNTAX:
		if (sts != 1 || why[0] == '\0')
			abort();
		break;
	default:
		abort();
	}
	for (size_t i = 0; i < n; i++)
		free(txt[i]);
	return 0;
}
