/* utf8.h - well-formed UTF-8 (RFC 3629 §4), one place for every check.
 *
 * Overlong forms, surrogates (U+D800..U+DFFF), code points above U+10FFFF
 * and stray continuation octets are not UTF-8: remote text that holds them
 * is treated as invalid wherever it is read.
 */
#ifndef OUTPOST_UTIL_UTF8_H
#define OUTPOST_UTIL_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Length (1-4) of the well-formed sequence at s (n > 0 octets available),
 * its code point in *cp (may be NULL); 0 when there is none. */
size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);

/* Whether all len octets of s are well-formed UTF-8. */
bool utf8_valid(const char *s, size_t len);

#endif
