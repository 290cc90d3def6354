/* buf.h - a growable, NUL-terminated byte buffer.
 *
 * Appends never fail loudly: an allocation failure sets failed and later
 * appends do nothing, so a composer checks once at the end instead of after
 * every line. The owner frees data with buf_free.
 */
#ifndef OUTPOST_UTIL_BUF_H
#define OUTPOST_UTIL_BUF_H

#include <stdbool.h>
#include <stddef.h>

struct buf {
	char *data; /* NUL-terminated after len octets (which may hold NULs) */
	size_t len, cap;
	bool failed; /* an allocation failed: the content is incomplete */
};

void buf_add(struct buf *b, const void *p, size_t n);
void buf_str(struct buf *b, const char *s);
void buf_fmt(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_reset(struct buf *b);
void buf_free(struct buf *b);

#endif
