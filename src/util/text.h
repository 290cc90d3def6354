/* text.h - remote or user text made safe to print, log or put in a header.
 *
 * One cleaner for every place that copies such text into a line of ours
 * (the HELO argument in Received:, a server's reply in logs and DSNs, a
 * DSN's human text): control characters (C0, DEL, C1) can never end a line
 * early or hide in the output, octets that are not UTF-8 never pass.
 */
#ifndef OUTPOST_UTIL_TEXT_H
#define OUTPOST_UTIL_TEXT_H

#include <stddef.h>

enum text_flags {
	TEXT_UTF8 = 1 << 0,     /* keep well-formed UTF-8; else non-ASCII becomes '?' */
	TEXT_COLLAPSE = 1 << 1, /* controls and whitespace runs become one space */
	TEXT_ONE_WORD = 1 << 2, /* space and controls become '?' (a HELO argument) */
};

/* Appends to out the cleaned len octets of s: with TEXT_COLLAPSE a control
 * is a space, else '?'; every octet of `also` (may be NULL) becomes '?'.
 * fn receives the output in pieces; arg is its own. */
void text_clean(const char *s, size_t len, unsigned flags, const char *also,
                void (*fn)(void *arg, const char *p, size_t n), void *arg);

/* The same into dst (n bytes, always NUL-terminated, cut to fit). */
void text_clean_into(char *dst, size_t n, const char *s, size_t len, unsigned flags,
                     const char *also);

#endif
