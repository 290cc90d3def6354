/* log.h - structured logs: one "key=value" line per event on stderr.
 *
 * Every line starts with ts=, level= and event=; the caller adds the rest
 * (always qid= when the event belongs to a message). Free text goes through
 * log_quote so that a reason with spaces or quotes stays one value.
 * Thread-safe: a line is written with one write(2).
 */
#ifndef OUTPOST_UTIL_LOG_H
#define OUTPOST_UTIL_LOG_H

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

void log_set_level(enum log_level min);

/* Parses "debug", "info", "warn", "error"; returns -1 otherwise. */
int log_level_parse(const char *s);

extern _Atomic int log_min_level; /* set by log_set_level */

/* Logs event with printf-style key=value pairs in fmt (may be ""). A macro,
 * so that the arguments of a line below the level (log_quote's copies of
 * every command and reply the delivery client logs at debug) are not even
 * computed. */
#define log_event(level, ...)                                                          \
	do {                                                                           \
		if ((int)(level) >= log_min_level)                                     \
			log_emit((level), __VA_ARGS__);                                \
	} while (0)

void log_emit(enum log_level level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Quotes s for a value: returned as is when it has no space, quote, '=' or
 * control character; else in double quotes with escapes. The result lives in
 * a per-thread ring of 8 buffers, valid until 8 further calls. */
const char *log_quote(const char *s);

#endif
