/* fuzz_dkim_canon.c - libFuzzer target for the DKIM canonicalizers and the
 * header selection (src/dkim/dkim.c), which read whole submitted messages.
 *
 * Besides memory safety it checks what RFC 6376 §3.4 promises: relaxed body
 * output has no HTAB, no WSP before a CRLF, no run of two SP, no empty line
 * at the end, and is its own canonical form (idempotent); simple output ends
 * in exactly one CRLF after its last non-empty line; relaxed header output
 * is one line with a lower-case name.
 */
#include "dkim/dkim.h"
#include "smtp/headers.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void to_buf(const char *p, size_t n, void *arg)
{
	buf_add(arg, p, n);
}

static void check_relaxed_body(const struct buf *b)
{
	const char *p = b->data;
	size_t n = b->len;
	if (b->failed)
		abort();
	if (n == 0)
		return;
	if (n < 2 || memcmp(p + n - 2, "\r\n", 2) != 0)
		abort();
	if (n >= 4 && memcmp(p + n - 4, "\r\n\r\n", 4) == 0)
		abort();
	if (memchr(p, '\t', n) || memmem(p, n, " \r\n", 3) || memmem(p, n, "  ", 2))
		abort();
	struct buf again = {0};
	dkim_canon_body(DKIM_CANON_RELAXED, p, n, to_buf, &again);
	if (again.len != n || memcmp(again.data, p, n) != 0)
		abort();
	buf_free(&again);
}

static void check_simple_body(const struct buf *b)
{
	if (b->failed || b->len < 2 || memcmp(b->data + b->len - 2, "\r\n", 2) != 0)
		abort();
	if (b->len > 2 && b->len >= 4 && memcmp(b->data + b->len - 4, "\r\n\r\n", 4) == 0)
		abort();
}

static void check_headers(const char *msg, size_t len)
{
	struct msg_header_iter it;
	const char *name, *value;
	size_t name_len, value_len;
	struct buf b = {0};
	msg_header_iter_init(&it, msg, len);
	while (msg_header_next(&it, &name, &name_len, &value, &value_len)) {
		size_t field_len = (size_t)(value + value_len - name);
		buf_reset(&b);
		dkim_canon_header(DKIM_CANON_RELAXED, name, field_len, &b);
		const char *crlf = memmem(b.data, b.len, "\r\n", 2);
		if (crlf == NULL || crlf != b.data + b.len - 2 || memchr(b.data, '\n', b.len - 1))
			abort();
		for (const char *p = b.data; *p != ':'; p++)
			if (*p >= 'A' && *p <= 'Z')
				abort();
		buf_reset(&b);
		dkim_canon_header(DKIM_CANON_SIMPLE, name, field_len, &b);
		if (b.len != field_len + 2 || memcmp(b.data, name, field_len) != 0)
			abort();
	}
	buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *msg = (const char *)data;
	size_t body = msg_header_end(msg, size);
	struct buf b = {0};
	dkim_canon_body(DKIM_CANON_RELAXED, msg + body, size - body, to_buf, &b);
	check_relaxed_body(&b);
	buf_reset(&b);
	dkim_canon_body(DKIM_CANON_SIMPLE, msg + body, size - body, to_buf, &b);
	check_simple_body(&b);
	buf_reset(&b);
	check_headers(msg, body);
	dkim_header_list(msg, body, &b);
	if (b.failed || b.len < 4 || memcmp(b.data, "from", 4) != 0)
		abort();
	char domain[256];
	if (msg_from_domain(msg, body, domain, sizeof domain) && strlen(domain) >= sizeof domain)
		abort();
	buf_free(&b);
	return 0;
}
