/* auth.c - admin credentials: the bearer token and HTTP Basic users. */
#include "admin/auth.h"

#include "submit/users.h"
#include "util/log.h"
#include "util/timeutil.h"
#include "util/worker.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define TOKEN_BYTES      32 /* 256 bits, written as 64 hex digits */
#define SESSIONS_MAX     256
#define SESSION_IDLE_MS  (30 * 60000LL) /* logged out after this long unused */
#define LOGIN_PEERS      256            /* clients whose failures are remembered */
#define LOGIN_FAILURES   5              /* failures in a window before 429 */
#define LOGIN_WINDOW_MS  (10 * 60000LL)

struct login_failures {
	char peer[64];
	int count;
	int64_t first_ms;
};

struct admin_auth {
	char token[2 * TOKEN_BYTES + 1];
	struct users *users; /* NULL without [admin] users_file */
	struct worker *worker;
	struct admin_session sessions[SESSIONS_MAX]; /* id[0] == 0: a free slot */
	struct login_failures failures[LOGIN_PEERS];
};

void admin_auth_token_path(const struct conf *conf, char *buf, size_t n)
{
	conf_path(conf, conf->admin_token_file, buf, n);
}

static int token_create(const char *path, char *why, size_t whylen)
{
	unsigned char raw[TOKEN_BYTES];
	char hex[2 * TOKEN_BYTES + 2];
	if (RAND_bytes(raw, sizeof raw) != 1) {
		snprintf(why, whylen, "admin: no randomness for the token");
		return -1;
	}
	for (size_t i = 0; i < sizeof raw; i++)
		snprintf(hex + 2 * i, 3, "%02x", raw[i]);
	hex[2 * TOKEN_BYTES] = '\n';
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 && errno == EEXIST)
		return 0; /* someone made it meanwhile: read theirs */
	ssize_t w = fd < 0 ? -1 : write(fd, hex, 2 * TOKEN_BYTES + 1);
	if (fd < 0 || w != 2 * TOKEN_BYTES + 1 || fsync(fd) < 0) {
		snprintf(why, whylen, "admin: cannot write the token %s: %s", path,
		         strerror(errno));
		if (fd >= 0) {
			close(fd);
			unlink(path);
		}
		return -1;
	}
	close(fd);
	log_event(LOG_INFO, "admin_token_created", "path=%s", log_quote(path));
	return 0;
}

int admin_auth_read_token(const struct conf *conf, char *buf, size_t n, char *why, size_t whylen)
{
	char path[4096];
	admin_auth_token_path(conf, path, sizeof path);
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		snprintf(why, whylen, "cannot read the admin token %s: %s", path, strerror(errno));
		return -1;
	}
	char *got = fgets(buf, (int)n, f);
	fclose(f);
	if (got)
		buf[strcspn(buf, "\r\n")] = '\0';
	if (!got || buf[0] == '\0') {
		snprintf(why, whylen, "the admin token %s is empty", path);
		return -1;
	}
	return 0;
}

/* A token others can read is no secret: refuse rather than serve. */
static int token_private(const char *path, char *why, size_t whylen)
{
	struct stat st;
	if (stat(path, &st) < 0) {
		snprintf(why, whylen, "admin: %s: %s", path, strerror(errno));
		return -1;
	}
	if (st.st_mode & 0007) {
		snprintf(why, whylen,
		         "admin: the token %s is readable by other users (chmod 600 it)", path);
		return -1;
	}
	return 0;
}

struct admin_auth *admin_auth_new(const struct conf *conf, struct worker *w, char *why,
                                  size_t whylen)
{
	char path[4096];
	struct admin_auth *a = calloc(1, sizeof *a);
	if (a == NULL)
		abort();
	a->worker = w;
	admin_auth_token_path(conf, path, sizeof path);
	if (access(path, F_OK) < 0 && token_create(path, why, whylen) < 0)
		goto fail;
	if (token_private(path, why, whylen) < 0 ||
	    admin_auth_read_token(conf, a->token, sizeof a->token, why, whylen) < 0)
		goto fail;
	if (conf->admin_users_file[0] &&
	    (a->users = users_load(conf->admin_users_file, why, whylen)) == NULL)
		goto fail;
	return a;
fail:
	admin_auth_free(a);
	return NULL;
}

void admin_auth_free(struct admin_auth *a)
{
	if (a == NULL)
		return;
	OPENSSL_cleanse(a->token, sizeof a->token);
	users_free(a->users);
	free(a);
}

static bool random_hex(char *out, size_t nbytes)
{
	unsigned char raw[TOKEN_BYTES];
	if (nbytes > sizeof raw || RAND_bytes(raw, (int)nbytes) != 1)
		return false;
	for (size_t i = 0; i < nbytes; i++)
		snprintf(out + 2 * i, 3, "%02x", raw[i]);
	OPENSSL_cleanse(raw, sizeof raw);
	return true;
}

static bool token_matches(const struct admin_auth *a, const char *given)
{
	size_t n = strlen(a->token);
	return strlen(given) == n && CRYPTO_memcmp(given, a->token, n) == 0;
}

struct basic_check {
	struct admin_auth *auth;
	const struct users *users;
	char user[256], pass[256];
	char peer[64]; /* a console login: the client, for the failure count */
	bool ok;
	admin_auth_fn fn;
	void *arg;
};

static void failures_note(struct admin_auth *a, const char *peer, bool ok);

static void basic_run(void *arg)
{
	struct basic_check *c = arg;
	c->ok = users_verify(c->users, c->user, c->pass);
	OPENSSL_cleanse(c->pass, sizeof c->pass);
}

static void basic_done(void *arg)
{
	struct basic_check *c = arg;
	if (!c->ok)
		log_event(LOG_WARN, "admin_auth_failed", "user=%s client=%s", log_quote(c->user),
		          c->peer[0] ? log_quote(c->peer) : "-");
	if (c->peer[0])
		failures_note(c->auth, c->peer, c->ok);
	c->fn(c->arg, c->ok);
	free(c);
}

/* "Basic base64(user:password)" (RFC 7617) into c; false when malformed. */
static bool basic_parse(const char *b64, struct basic_check *c)
{
	unsigned char buf[600];
	size_t len = strlen(b64);
	if (len == 0 || len % 4 != 0 || len / 4 * 3 >= sizeof buf)
		return false;
	int n = EVP_DecodeBlock(buf, (const unsigned char *)b64, (int)len);
	while (n > 0 && len > 0 && b64[--len] == '=')
		n--;
	if (n <= 0)
		return false;
	buf[n] = '\0';
	char *colon = memchr(buf, ':', (size_t)n);
	if (colon == NULL || memchr(buf, '\0', (size_t)n) != NULL)
		return false;
	*colon = '\0';
	size_t ulen = strlen((char *)buf), plen = strlen(colon + 1);
	bool fits = ulen > 0 && ulen < sizeof c->user && plen < sizeof c->pass;
	if (fits) {
		memcpy(c->user, buf, ulen + 1);
		memcpy(c->pass, colon + 1, plen + 1);
	}
	OPENSSL_cleanse(buf, sizeof buf);
	return fits;
}

enum admin_auth_verdict admin_auth_check(struct admin_auth *a, const char *header, admin_auth_fn fn,
                                         void *arg, char *who, size_t wholen)
{
	snprintf(who, wholen, "-");
	if (header == NULL)
		return ADMIN_AUTH_DENIED;
	if (strncasecmp(header, "Bearer ", 7) == 0) {
		snprintf(who, wholen, "token");
		if (token_matches(a, header + 7))
			return ADMIN_AUTH_OK;
		log_event(LOG_WARN, "admin_auth_failed", "user=token");
		return ADMIN_AUTH_DENIED;
	}
	if (strncasecmp(header, "Basic ", 6) != 0 || a->users == NULL)
		return ADMIN_AUTH_DENIED;
	struct basic_check *c = calloc(1, sizeof *c);
	if (c == NULL)
		abort();
	if (!basic_parse(header + 6, c)) {
		free(c);
		return ADMIN_AUTH_DENIED;
	}
	snprintf(who, wholen, "%s", c->user);
	c->users = a->users;
	c->fn = fn;
	c->arg = arg;
	worker_submit(a->worker, basic_run, basic_done, c);
	return ADMIN_AUTH_PENDING;
}

/* ---- console logins and sessions ---- */

static struct login_failures *failures_of(struct admin_auth *a, const char *peer, bool make)
{
	struct login_failures *oldest = &a->failures[0];
	for (size_t i = 0; i < LOGIN_PEERS; i++) {
		struct login_failures *f = &a->failures[i];
		if (strcmp(f->peer, peer) == 0)
			return f;
		if (f->first_ms < oldest->first_ms)
			oldest = f;
	}
	if (!make)
		return NULL;
	memset(oldest, 0, sizeof *oldest);
	snprintf(oldest->peer, sizeof oldest->peer, "%s", peer);
	return oldest;
}

static void failures_note(struct admin_auth *a, const char *peer, bool ok)
{
	struct login_failures *f = failures_of(a, peer, !ok);
	if (f == NULL)
		return;
	int64_t now = time_now_ms();
	if (ok || now - f->first_ms > LOGIN_WINDOW_MS) {
		f->count = 0;
		f->first_ms = now;
	}
	if (!ok)
		f->count++;
}

static bool failures_too_many(struct admin_auth *a, const char *peer)
{
	struct login_failures *f = failures_of(a, peer, false);
	return f && f->count >= LOGIN_FAILURES && time_now_ms() - f->first_ms <= LOGIN_WINDOW_MS;
}

enum admin_auth_verdict admin_auth_login(struct admin_auth *a, const char *user,
                                         const char *password, const char *peer,
                                         admin_auth_fn fn, void *arg)
{
	if (a->users == NULL || user[0] == '\0')
		return ADMIN_AUTH_DENIED;
	if (failures_too_many(a, peer)) {
		log_event(LOG_WARN, "admin_login_limited", "user=%s client=%s", log_quote(user),
		          log_quote(peer));
		return ADMIN_AUTH_LIMITED;
	}
	struct basic_check *c = calloc(1, sizeof *c);
	if (c == NULL)
		abort();
	if (strlen(user) >= sizeof c->user || strlen(password) >= sizeof c->pass) {
		free(c);
		failures_note(a, peer, false);
		return ADMIN_AUTH_DENIED;
	}
	snprintf(c->user, sizeof c->user, "%s", user);
	snprintf(c->pass, sizeof c->pass, "%s", password);
	snprintf(c->peer, sizeof c->peer, "%s", peer);
	c->auth = a;
	c->users = a->users;
	c->fn = fn;
	c->arg = arg;
	worker_submit(a->worker, basic_run, basic_done, c);
	return ADMIN_AUTH_PENDING;
}

static bool session_live(const struct admin_session *s, int64_t now)
{
	return s->id[0] && now - s->used_ms <= SESSION_IDLE_MS &&
	       now - s->created_ms <= ADMIN_SESSION_MAX_AGE_S * 1000LL;
}

const struct admin_session *admin_session_new(struct admin_auth *a, const char *user)
{
	int64_t now = time_now_ms();
	struct admin_session *slot = &a->sessions[0];
	for (size_t i = 0; i < SESSIONS_MAX; i++) {
		struct admin_session *s = &a->sessions[i];
		if (!session_live(s, now)) {
			slot = s;
			break;
		}
		if (s->used_ms < slot->used_ms)
			slot = s; /* full: the least recently used goes */
	}
	memset(slot, 0, sizeof *slot);
	if (!random_hex(slot->id, TOKEN_BYTES) || !random_hex(slot->csrf, TOKEN_BYTES)) {
		memset(slot, 0, sizeof *slot);
		return NULL;
	}
	snprintf(slot->user, sizeof slot->user, "%s", user);
	slot->created_ms = slot->used_ms = now;
	log_event(LOG_INFO, "admin_login", "user=%s", log_quote(user));
	return slot;
}

/* The value of ADMIN_SESSION_COOKIE in a Cookie header (RFC 6265 §4.2). */
static bool cookie_value(const char *header, char *out, size_t n)
{
	const char *name = ADMIN_SESSION_COOKIE;
	size_t nl = strlen(name);
	for (const char *p = header; p && *p;) {
		p += strspn(p, " \t;");
		if (strncmp(p, name, nl) == 0 && p[nl] == '=') {
			p += nl + 1;
			size_t len = strcspn(p, "; \t");
			if (len == 0 || len >= n)
				return false;
			memcpy(out, p, len);
			out[len] = '\0';
			return true;
		}
		p = strchr(p, ';');
	}
	return false;
}

const struct admin_session *admin_session_find(struct admin_auth *a, const char *cookie_header)
{
	char id[80];
	if (cookie_header == NULL || !cookie_value(cookie_header, id, sizeof id) ||
	    strlen(id) != 2 * TOKEN_BYTES)
		return NULL;
	int64_t now = time_now_ms();
	for (size_t i = 0; i < SESSIONS_MAX; i++) {
		struct admin_session *s = &a->sessions[i];
		if (s->id[0] && CRYPTO_memcmp(s->id, id, 2 * TOKEN_BYTES) == 0) {
			if (!session_live(s, now)) {
				memset(s, 0, sizeof *s);
				return NULL;
			}
			s->used_ms = now;
			return s;
		}
	}
	return NULL;
}

void admin_session_end(struct admin_auth *a, const struct admin_session *s)
{
	for (size_t i = 0; i < SESSIONS_MAX; i++)
		if (&a->sessions[i] == s) {
			log_event(LOG_INFO, "admin_logout", "user=%s", log_quote(s->user));
			OPENSSL_cleanse(&a->sessions[i], sizeof a->sessions[i]);
		}
}

bool admin_session_csrf_ok(const struct admin_session *s, const char *header)
{
	return header && strlen(header) == 2 * TOKEN_BYTES &&
	       CRYPTO_memcmp(header, s->csrf, 2 * TOKEN_BYTES) == 0;
}
