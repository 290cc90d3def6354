/* fuzz_headers.c - libFuzzer target for the RFC 5322 header functions that
 * read submitted messages: TLS-Required, sendmail -t recipients, Bcc
 * stripping. */
#include "smtp/headers.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void on_address(const char *addr, size_t len, void *arg)
{
	size_t *total = arg;

	if (len == 0 || strlen(addr) != len)
		abort();
	*total += 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *msg = (const char *)data;
	struct msg_header_iter it;
	const char *name, *value;
	size_t name_len, value_len, out_len, calls = 0;
	char why[128];
	char *out;
	int n;

	if (msg_header_end(msg, size) > size)
		abort();
	msg_header_iter_init(&it, msg, size);
	while (msg_header_next(&it, &name, &name_len, &value, &value_len))
		if (name < msg || value + value_len > msg + size || name_len == 0)
			abort();
	(void)msg_tls_required_no(msg, size);
	(void)msg_has_header(msg, size, "Message-ID");
	n = msg_header_recipients(msg, size, on_address, &calls, why, sizeof(why));
	if (n >= 0 && (size_t)n != calls)
		abort();
	out = msg_strip_bcc(msg, size, &out_len);
	if (!out || out_len > size)
		abort();
	/* what is left has no Bcc field and the same TLS-Required verdict */
	if (msg_has_header(out, out_len, "Bcc"))
		abort();
	if (msg_tls_required_no(out, out_len) != msg_tls_required_no(msg, size))
		abort();
	free(out);
	return 0;
}
