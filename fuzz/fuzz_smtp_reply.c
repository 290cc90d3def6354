/* fuzz_smtp_reply.c - libFuzzer target for the SMTP reply parser (the client
 * reads replies from remote servers) and the reply writer. */
#include "smtp/reply.h"

#include <event2/buffer.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void check_reply(const struct smtp_reply *r)
{
	if (r->code < 200 || r->code > 599 || r->lines == 0 || r->lines > SMTP_REPLY_MAX_LINES)
		abort();
	if (strnlen(r->text, sizeof(r->text)) >= sizeof(r->text))
		abort();
	if (r->enhanced[0] && r->enhanced[0] != '0' + r->code / 100)
		abort();
}

/* Feeds every '\n'-terminated line (without a final '\r') to the parser. */
static void parse_lines(const uint8_t *data, size_t size, bool enhanced)
{
	static struct smtp_reply_parser p; /* 8 KiB: keep it off the stack */
	const char *s = (const char *)data, *end = s + size;

	smtp_reply_parser_init(&p);
	p.parse_enhanced = enhanced;
	while (s < end) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		const char *le = nl ? nl : end;
		size_t n = (size_t)(le - s);

		if (n > 0 && s[n - 1] == '\r')
			n--;
		if (smtp_reply_parser_feed(&p, s, n) == SMTP_REPLY_DONE)
			check_reply(&p.reply);
		s = nl ? nl + 1 : end;
	}
}

/* Whatever text goes in, the writer emits well-formed lines that parse. */
static void write_and_parse(const uint8_t *data, size_t size)
{
	static struct smtp_reply_parser p;
	struct evbuffer *out = evbuffer_new();
	char *text = malloc(size + 1), *line;
	enum smtp_reply_status st = SMTP_REPLY_MORE;
	size_t n;

	memcpy(text, data, size);
	text[size] = '\0';
	smtp_reply_write(out, 451, "4.3.0", text);
	smtp_reply_parser_init(&p);
	p.parse_enhanced = true;
	while ((line = evbuffer_readln(out, &n, EVBUFFER_EOL_CRLF_STRICT)) != NULL) {
		if (memchr(line, '\r', n) || memchr(line, '\n', n))
			abort();
		if (st != SMTP_REPLY_BAD)
			st = smtp_reply_parser_feed(&p, line, n);
		free(line);
	}
	if (evbuffer_get_length(out) != 0)
		abort();
	if (st == SMTP_REPLY_MORE)
		abort();
	if (st == SMTP_REPLY_DONE && (p.reply.code != 451 || strcmp(p.reply.enhanced, "4.3.0")))
		abort();
	free(text);
	evbuffer_free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	parse_lines(data, size, false);
	parse_lines(data, size, true);
	if (size < 4096)
		write_and_parse(data, size);
	return 0;
}
