/* queue_json.h - the queue as the API and `--json` show it.
 *
 * The shape is a contract (docs/api.md, "GET /api/v1/queue"): a message is
 * {"id", "sender", "size", "queued", "recipients": [{"address", "state",
 * "attempts", "next_attempt", "last_error"}]}; `show` adds the flags, the
 * submitter, each recipient's last attempt and whether it is in flight,
 * and the delivery log as "attempts". New fields may be added; these names
 * and meanings stay. Times are RFC 3339 UTC. The functions only read:
 * they run on the admin's read workers and in the CLI alike (reads.h).
 */
#ifndef OUTPOST_ADMIN_QUEUE_JSON_H
#define OUTPOST_ADMIN_QUEUE_JSON_H

#include "spool/spool.h"
#include "util/buf.h"

#include <jansson.h>

/* Appends a page of the messages matching q to out, as the elements of a
 * JSON array (comma-separated, without the brackets), one message at a
 * time: a page is never held as one tree. p says where the next page
 * starts. -1 with why on error. */
int queue_json_page(struct spool *s, const struct spool_list_query *q, struct spool_page *p,
                    struct buf *out, char *why, size_t whylen);

/* The same for a page of the delivery history: each attempt as in
 * `show`'s "attempts", plus its message's "id", "sender" and "done". */
int queue_json_history(struct spool *s, const struct spool_history_query *q, struct spool_page *p,
                       struct buf *out, char *why, size_t whylen);

/* One message with its delivery log; NULL with why, and *not_found set
 * when there is no such message. */
json_t *queue_json_show(struct spool *s, uint64_t id, bool *not_found, char *why, size_t whylen);

#endif
