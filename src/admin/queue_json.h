/* queue_json.h - the queue as the API and `--json` show it.
 *
 * The shape is a contract (docs/api.md, "GET /api/v1/queue"): a message is
 * {"id", "sender", "size", "queued", "recipients": [{"address", "state",
 * "attempts", "next_attempt", "last_error"}]}; `show` adds the flags, the
 * submitter, each recipient's last attempt and whether it is in flight,
 * and the delivery log as "attempts". New fields may be added; these names
 * and meanings stay. Times are RFC 3339 UTC.
 */
#ifndef OUTPOST_ADMIN_QUEUE_JSON_H
#define OUTPOST_ADMIN_QUEUE_JSON_H

#include "spool/spool.h"

#include <jansson.h>

/* The messages matching f, as a JSON array; NULL with why on error. */
json_t *queue_json_list(struct spool *s, const struct spool_filter *f, char *why, size_t whylen);

/* One message with its delivery log; NULL with why, and *not_found set
 * when there is no such message. */
json_t *queue_json_show(struct spool *s, uint64_t id, bool *not_found, char *why, size_t whylen);

#endif
