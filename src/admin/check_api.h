/* check_api.h - GET /api/v1/check?domain=D: the report of `outpost check
 * DOMAIN --json` (check/report.h) over the admin API (docs/api.md).
 *
 * A report takes seconds on the network (DNS, an MTA-STS fetch, a probe
 * connection to each MX host), so it never runs on the loop thread: a
 * thread of its own makes one report at a time, with its own event loop,
 * resolver and TLS context, and the answer goes out from the loop thread
 * when it is done. A few requests may wait their turn; more get 503. The
 * daemon's stop ends the check under way at once; a client that leaves
 * stops its check too, once evhttp notices (it may notice only when the
 * answer is written: then the check has run its course, bounded by its
 * timeouts).
 */
#ifndef OUTPOST_ADMIN_CHECK_API_H
#define OUTPOST_ADMIN_CHECK_API_H

#include "conf/conf.h"

struct check_api;
struct event_base;
struct evhttp_request;

/* The thread starts with the first check. conf must outlive the result. */
struct check_api *check_api_new(struct event_base *base, const struct conf *conf);

/* Answers req (its credential already judged) now with 400 or 503, or
 * later with the report: {"domain", "mx_list", "mta_sts", "hosts",
 * "deliverable"}. */
void check_api_handle(struct check_api *c, struct evhttp_request *req);

/* Stops the checks under way and waiting (their clients get 503) and the
 * thread; new requests get 503. Blocks for the moment a check takes to
 * notice (check/report.h). Safe to call again. */
void check_api_drain(struct check_api *c);

void check_api_free(struct check_api *c);

#endif
