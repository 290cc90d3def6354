/* timeutil.h - clocks, durations and time formats. */
#ifndef OUTPOST_UTIL_TIMEUTIL_H
#define OUTPOST_UTIL_TIMEUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Wall clock in milliseconds since the epoch (stored in the spool). */
int64_t time_now_ms(void);

/* Monotonic clock in microseconds (for latencies). */
int64_t time_mono_us(void);

/* Parses a duration such as "30s", "7m30s", "4h", "1d12h", "250ms"; a bare
 * number means seconds. Returns false on syntax error or overflow. */
bool duration_parse(const char *s, int64_t *ms);

/* Formats ms as the shortest such duration ("7m30s"); buf of n >= 32. */
void duration_format(int64_t ms, char *buf, size_t n);

/* "2026-11-29T10:00:00Z" (RFC 3339, UTC); buf of n >= 32. */
void time_format_rfc3339(int64_t ms, char *buf, size_t n);

/* Parses "2026-11-29T10:00:00Z" (what time_format_rfc3339 writes; 't' and
 * 'z' may be lower case, RFC 3339 §5.6). False for anything else. */
bool time_parse_rfc3339(const char *s, int64_t *ms);

/* "Sun, 29 Nov 2026 10:00:00 +0000" (RFC 5322 date); buf of n >= 40. */
void time_format_rfc5322(int64_t ms, char *buf, size_t n);

#endif
