/* web.h - the web console's files, served by the admin listener (docs/console.md).
 *
 * GET or HEAD / answers web/index.html and /static/NAME answers web/NAME, from
 * the copies built into the binary (web_assets.h). They hold no secret and need
 * no credential: the page asks the JSON API for everything (docs/api.md) with
 * the credential the user gives it. Every answer forbids framing, MIME sniffing
 * and any script, style or request that is not the listener's own
 * (Content-Security-Policy: default-src 'self'), and is revalidated by its ETag.
 */
#ifndef OUTPOST_ADMIN_WEB_H
#define OUTPOST_ADMIN_WEB_H

#include <stdbool.h>

struct evhttp_request;

/* True when path belongs to the console ("/" or "/static/..."): req has
 * been answered (the file, 304, 404 or 405). False leaves req untouched. */
bool web_serve(struct evhttp_request *req, const char *path);

#endif
