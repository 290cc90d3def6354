/* auth.h - who may call the admin API.
 *
 * Every /api/ request carries a credential (docs/api.md, "Authentication"):
 * the bearer token of [admin] token_file (made at first start, 64 hex
 * digits, mode 0600, so only whoever can read that file administers the
 * queue; the CLI reads it), or HTTP Basic against [admin] users_file
 * (crypt(3) lines as for submission, checked on a worker thread), or the
 * session cookie of a person logged in to the console with a users_file
 * password (POST /api/v1/session), whose state-changing requests also carry
 * its CSRF token. /metrics is open to loopback and local-socket clients
 * unless [admin] metrics_auth says otherwise.
 * Comparisons of secrets are constant-time; failures are logged.
 */
#ifndef OUTPOST_ADMIN_AUTH_H
#define OUTPOST_ADMIN_AUTH_H

#include "conf/conf.h"

#include <stdbool.h>
#include <stddef.h>

struct admin_auth;
struct worker;

/* Reads (or makes) the token and loads the users file. A token file others
 * may read refuses the start. NULL with why filled. */
struct admin_auth *admin_auth_new(const struct conf *conf, struct worker *w, char *why,
                                  size_t whylen);
void admin_auth_free(struct admin_auth *a);

enum admin_auth_verdict {
	ADMIN_AUTH_OK,
	ADMIN_AUTH_DENIED,
	ADMIN_AUTH_PENDING,
	ADMIN_AUTH_LIMITED, /* too many failed logins from this client lately */
};

/* Called on the loop thread once a pending Basic check is done. */
typedef void (*admin_auth_fn)(void *arg, bool ok);

/* Judges an Authorization header value (NULL when absent). A bearer token
 * is judged at once; Basic returns PENDING and calls fn later (arg must
 * live until then). who names the caller for the log. */
enum admin_auth_verdict admin_auth_check(struct admin_auth *a, const char *header, admin_auth_fn fn,
                                         void *arg, char *who, size_t wholen);

/* ---- sessions for people (the console; docs/api.md, "Sessions") ---- */

#define ADMIN_SESSION_COOKIE "outpost_session"
#define ADMIN_SESSION_MAX_AGE_S (12 * 3600) /* a login lasts at most this */

struct admin_session {
	char id[65];   /* the cookie's value: 256 random bits */
	char csrf[65]; /* the X-CSRF-Token every state-changing request carries */
	char user[128];
	int64_t created_ms, used_ms;
};

/* Checks a users_file password on the worker; fn(arg, ok) on the loop.
 * peer names the client: after too many failures from it, LIMITED at once
 * (and no check). DENIED without a users_file. */
enum admin_auth_verdict admin_auth_login(struct admin_auth *a, const char *user,
                                         const char *password, const char *peer,
                                         admin_auth_fn fn, void *arg);

/* A new session for user (after a login that succeeded). Sessions live in
 * memory only: a restart logs everyone out. */
const struct admin_session *admin_session_new(struct admin_auth *a, const char *user);

/* The live session named by a Cookie header (NULL: none, expired or idle
 * too long); its use is noted. */
const struct admin_session *admin_session_find(struct admin_auth *a, const char *cookie_header);

void admin_session_end(struct admin_auth *a, const struct admin_session *s);

/* The request's X-CSRF-Token header matches the session's (constant time). */
bool admin_session_csrf_ok(const struct admin_session *s, const char *header);

/* The token file's path for conf, and its token read into buf (the CLI);
 * -1 with why filled when it cannot be read. */
void admin_auth_token_path(const struct conf *conf, char *buf, size_t n);
int admin_auth_read_token(const struct conf *conf, char *buf, size_t n, char *why, size_t whylen);

#endif
