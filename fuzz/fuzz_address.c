/* fuzz_address.c - libFuzzer target for the RFC 5321 path and mailbox parser.
 *
 * Besides crashes it checks one property: any mailbox the parser accepts,
 * formatted back to "local@domain", parses again to the same mailbox. */
#include "smtp/address.h"
#include "util/utf8.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void check_round_trip(const struct smtp_addr *a, unsigned flags)
{
	char buf[SMTP_PATH_MAX + 2];
	struct smtp_addr again;
	struct smtp_error err;
	int n = smtp_addr_format(a, buf, sizeof(buf));

	if (n < 0 || n > SMTP_PATH_MAX)
		abort();
	if (!smtp_mailbox_parse(buf, (size_t)n, flags, &again, &err))
		abort();
	if (strcmp(a->localpart, again.localpart) != 0 || strcmp(a->domain, again.domain) != 0 ||
	    a->utf8 != again.utf8 || a->is_null != again.is_null)
		abort();
	if (a->utf8 && !(flags & SMTP_PATH_UTF8))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	char key[256];
	unsigned flags;

	for (flags = 0; flags < 4; flags++) {
		struct smtp_addr a;
		struct smtp_error err;
		size_t used = 0;

		if (smtp_path_parse(s, size, flags, &a, &used, &err)) {
			if (used > size || used < 2)
				abort();
			if (a.is_null && !(flags & SMTP_PATH_ALLOW_NULL))
				abort();
			check_round_trip(&a, flags | SMTP_PATH_ALLOW_NULL);
			smtp_domain_key(a.domain, key, sizeof(key));
		} else if (strlen(err.enhanced) < 5 || err.reason[0] == '\0') {
			abort();
		}
		if (smtp_mailbox_parse(s, size, flags, &a, &err))
			check_round_trip(&a, flags | SMTP_PATH_ALLOW_NULL);
	}
	if (smtp_domain_valid(s, size, false) && !smtp_domain_valid(s, size, true))
		abort();
	if (smtp_domain_valid(s, size, true) && !utf8_valid(s, size))
		abort();
	return 0;
}
