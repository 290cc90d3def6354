/* reads.h - the admin API's reads, as functions of one read-only spool connection.
 *
 *   GET /api/v1/queue?...          a page of messages {"messages": [..], "next_cursor"}
 *   GET /api/v1/queue/ID           one message with its delivery log
 *   GET /api/v1/queue/ID/raw       the stored message
 *   GET /api/v1/history?...        a page of the delivery log {"attempts": [..], "next_cursor"}
 *   GET /api/v1/tlsrpt/results?... the TLS results of a UTC day
 *
 * Parameters, shapes and pages: docs/api.md. These never run on the event
 * loop: admin.c runs each on a read worker thread, with that thread's own
 * connection, and sends the answer from the loop thread; `outpost queue`
 * calls the same function on a connection of its own when no daemon runs,
 * so both answer alike. A read touches nothing but its arguments.
 */
#ifndef OUTPOST_ADMIN_READS_H
#define OUTPOST_ADMIN_READS_H

#include "spool/spool.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define API_MAX_IDS 1000 /* queue ids per request: keeps the SQL within its bind limits */

enum api_read {
	API_READ_QUEUE,
	API_READ_MESSAGE,
	API_READ_RAW,
	API_READ_HISTORY,
	API_READ_TLS_RESULTS,
};

/* An HTTP answer: status, Content-Type (static) and body (the caller frees). */
struct api_answer {
	int status;
	const char *type;
	char *body;
	size_t len;
};

/* Answers the read `what` (id: the message of MESSAGE and RAW) given the
 * request's query string (NULL when none); now_ms anchors ages and the
 * default day. Errors are answers too: 400 for a bad parameter, 404, 500
 * when the spool cannot be read. */
void api_read(struct spool *s, enum api_read what, uint64_t id, const char *query, int64_t now_ms,
              struct api_answer *out);

/* {"error": "..."} with status. */
void api_answer_error(struct api_answer *out, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Adds the queue id s[0..len) to *ids (allocated on first use, at most
 * API_MAX_IDS); -1 with why when it is not one. */
int api_ids_add(uint64_t **ids, size_t *n, const char *s, size_t len, char *why, size_t whylen);

/* A UTC day as the API takes it: "YYYY-MM-DD". */
bool api_day_valid(const char *d);

#endif
