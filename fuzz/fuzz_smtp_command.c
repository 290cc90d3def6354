/* fuzz_smtp_command.c - libFuzzer target for smtp_command_parse (remote input). */
#include "smtp/command.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_command cmd;
	struct smtp_command_error err;
	char buf[SMTP_PATH_MAX + 2];
	const char *line = (const char *)data;

	if (!smtp_command_parse(line, size, &cmd, &err)) {
		if (err.code < 500 || err.code > 599 || strlen(err.e.enhanced) < 5)
			abort();
		return 0;
	}
	if (cmd.verb == SMTP_VERB_UNKNOWN || !smtp_verb_name(cmd.verb))
		abort();
	if (cmd.arg < line || cmd.arg + cmd.arg_len > line + size)
		abort();
	if (cmd.verb == SMTP_VERB_MAIL || cmd.verb == SMTP_VERB_RCPT) {
		/* a parsed address always fits the path limit when formatted */
		if (smtp_addr_format(&cmd.addr, buf, sizeof(buf)) < 0)
			abort();
		if (cmd.verb == SMTP_VERB_MAIL && cmd.addr.utf8 && !cmd.smtputf8)
			abort();
	}
	return 0;
}
