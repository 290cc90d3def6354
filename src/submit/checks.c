/* checks.c - the content checks every way in shares. */
#include "submit/checks.h"

#include "smtp/data.h"
#include "smtp/headers.h"

static bool refuse(struct submit_refusal *r, int code, const char *enhanced, const char *text,
                   const char *reason)
{
	*r = (struct submit_refusal){code, enhanced, text, reason};
	return false;
}

bool submit_check_content(unsigned flags, const char *msg, size_t len, struct submit_refusal *r)
{
	if (flags & SMTP_DATA_TOO_BIG)
		return refuse(r, 552, "5.3.4", "message size exceeds fixed maximum", "size");
	if (flags & SMTP_DATA_NUL)
		return refuse(r, 554, "5.6.0", "NUL octets are not allowed", "bad_content");
	if (flags & (SMTP_DATA_BARE_CR | SMTP_DATA_BARE_LF))
		return refuse(r, 554, "5.6.0", "message contains a bare CR or LF", "bad_content");
	if (flags & SMTP_DATA_LONG_LINE)
		return refuse(r, 554, "5.6.0", "message has a line longer than allowed",
		              "line_too_long");
	/* RFC 5321 §6.3: counting Received fields is how loops are found */
	if (msg_count_header(msg, len, "Received") >= MSG_MAX_RECEIVED)
		return refuse(r, 554, "5.4.6", "too many Received header fields: mail loop",
		              "mail_loop");
	return true;
}
