/* admin.h - the admin listener: JSON API under /api/v1 and /metrics.
 *
 * Served by evhttp on the loop thread, on the [admin] listen addresses
 * (host:port or unix:PATH). Reads (reads.h) run on read worker threads of
 * the admin's own, each with a read-only spool connection; changes go
 * through the writer and are answered only after their commit.
 *
 *   GET  /metrics                          Prometheus text
 *   GET  /api/v1/queue?...                 a page of messages, {"messages", "next_cursor"}
 *   GET  /api/v1/queue/ID                  one message (JSON object)
 *   GET  /api/v1/queue/ID/raw              the stored message
 *   GET  /api/v1/history?...               a page of the delivery log, {"attempts", "next_cursor"}
 *   POST /api/v1/queue/ACTION              ACTION: hold|release|kick|drop;
 *        body {"ids":[..], "domain":"..", "recipient":"..", "all":true}
 *        answer {"changed": N}
 *   POST /api/v1/delivery/pause|resume     answer {"paused": bool}
 *   GET  /api/v1/status                    {"version", "paused", "in_flight", "picked",
 *                                          "spool_writable", "commits_pending",
 *                                          "recipients": {state: count}}
 *   GET  /api/v1/tlsrpt/results|report, POST /api/v1/tlsrpt/send  (docs/api.md)
 *   GET  /api/v1/check?domain=D            outpost check's report (check_api.h)
 *   GET  /, /static/NAME                   the web console, no credential (web.h)
 *
 * Every /api/ request needs a credential (auth.h): 401 without one. The
 * Host and Origin headers are checked first (DNS rebinding, CSRF): 403.
 */
#ifndef OUTPOST_ADMIN_ADMIN_H
#define OUTPOST_ADMIN_ADMIN_H

#include "conf/conf.h"
#include "deliver/scheduler.h"
#include "spool/spool.h"
#include "spool/writer.h"

#include <stddef.h>

struct event_base;
struct admin;

struct worker;
struct tlsrpt_sender;

/* Listens on [admin] listen; Basic passwords are checked on worker, reads
 * on the admin's own read workers (conf->data_dir's spool.db). */
struct admin *admin_start(struct event_base *base, const struct conf *conf,
                          struct spool_writer *writer, struct scheduler *sched,
                          struct tlsrpt_sender *tlsrpt, struct worker *worker, char *why,
                          size_t whylen);

/* Stopping: requests that would change the spool get 503 from now on;
 * reads are still answered. */
void admin_drain(struct admin *a);

/* Closes every connection (no request waiting is answered), skips the
 * reads not begun and waits for those running. */
void admin_stop(struct admin *a);

#endif
