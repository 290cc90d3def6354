/* session_cache.c - TLS session resumption for the client (see
 * session_cache.h).
 *
 * A hash table of entries, also linked from newest to oldest use for the
 * eviction. Each entry owns its key and its session, a private copy that no
 * connection ever uses: SSL_free on a connection closed without close_notify
 * marks the connection's session not resumable (OpenSSL's
 * ssl_clear_bad_session), and SMTP servers and bufferevent_openssl rarely
 * close cleanly. TLS 1.1 and later do not ask for that (RFC 5246 §7.2.1), so
 * the cache stores a copy and offers each connection a copy of its own.
 *
 * Each attached SSL carries a link (ex_data, freed with the SSL) that owns a
 * copy of the key, the session held until the accept, and a reference to
 * the cache's session it offered (to recognise it, never to use it).
 */
#include "tls/session_cache.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct entry {
	char *key;
	SSL_SESSION *session;
	struct entry *newer, *older; /* recency list */
	struct entry *next;          /* same bucket */
};

struct tls_session_cache {
	struct entry **buckets;
	size_t nbuckets; /* a power of two */
	size_t count, max;
	struct entry *newest, *oldest;
};

struct link {
	struct tls_session_cache *cache;
	char *key;
	bool accepted;
	SSL_SESSION *held;    /* arrived before the accept */
	SSL_SESSION *offered; /* the cache entry's, a copy went to SSL_set_session */
};

/* ---- the table ---------------------------------------------------------- */

static size_t bucket_of(const struct tls_session_cache *c, const char *key)
{
	uint64_t h = 14695981039346656037u; /* FNV-1a */

	for (; *key != '\0'; key++)
		h = (h ^ (unsigned char)*key) * 1099511628211u;
	return (size_t)h & (c->nbuckets - 1);
}

static struct entry **slot_of(struct tls_session_cache *c, const char *key)
{
	struct entry **e = &c->buckets[bucket_of(c, key)];

	while (*e != NULL && strcmp((*e)->key, key) != 0)
		e = &(*e)->next;
	return e;
}

static void recency_unlink(struct tls_session_cache *c, struct entry *e)
{
	*(e->newer ? &e->newer->older : &c->newest) = e->older;
	*(e->older ? &e->older->newer : &c->oldest) = e->newer;
	e->newer = e->older = NULL;
}

static void recency_push(struct tls_session_cache *c, struct entry *e)
{
	e->older = c->newest;
	*(c->newest ? &c->newest->newer : &c->oldest) = e;
	c->newest = e;
}

static void entry_remove(struct tls_session_cache *c, struct entry *e)
{
	struct entry **slot = slot_of(c, e->key);

	*slot = e->next;
	recency_unlink(c, e);
	SSL_SESSION_free(e->session);
	free(e->key);
	free(e);
	c->count--;
}

/* TLS 1.3 tickets carry a lifetime (RFC 8446 §4.6.1), TLS 1.2 ones a hint:
 * the shorter of it and the session's own timeout. */
static bool session_fresh(SSL_SESSION *s, time_t now)
{
	long start = SSL_SESSION_get_time(s), life = SSL_SESSION_get_timeout(s);
	unsigned long hint = SSL_SESSION_get_ticket_lifetime_hint(s);

	if (hint > 0 && hint < (unsigned long)life)
		life = (long)hint;
	return SSL_SESSION_is_resumable(s) && now >= start && now - start < life;
}

/* Stores a copy of s under key; takes the caller's reference to s. */
static void cache_put(struct tls_session_cache *c, const char *key, SSL_SESSION *connection_s)
{
	SSL_SESSION *s = SSL_SESSION_dup(connection_s);
	struct entry **slot = slot_of(c, key), *e = *slot;

	SSL_SESSION_free(connection_s);
	if (s == NULL)
		return;
	if (e != NULL) {
		SSL_SESSION_free(e->session);
		e->session = s;
		recency_unlink(c, e);
		recency_push(c, e);
		return;
	}
	e = calloc(1, sizeof *e);
	if (e == NULL || (e->key = strdup(key)) == NULL) {
		free(e);
		SSL_SESSION_free(s);
		return;
	}
	e->session = s;
	*slot = e;
	recency_push(c, e);
	if (++c->count > c->max)
		entry_remove(c, c->oldest);
}

/* The fresh session for key, still owned by the cache; NULL if none. */
static SSL_SESSION *cache_get(struct tls_session_cache *c, const char *key)
{
	struct entry *e = *slot_of(c, key);

	if (e == NULL)
		return NULL;
	if (!session_fresh(e->session, time(NULL))) {
		entry_remove(c, e);
		return NULL;
	}
	recency_unlink(c, e);
	recency_push(c, e);
	return e->session;
}

/* Forgets key's session if it is still s. */
static void cache_drop(struct tls_session_cache *c, const char *key, SSL_SESSION *s)
{
	struct entry *e = *slot_of(c, key);

	if (e != NULL && e->session == s)
		entry_remove(c, e);
}

struct tls_session_cache *tls_session_cache_new(size_t max)
{
	struct tls_session_cache *c = calloc(1, sizeof *c);

	if (c == NULL)
		return NULL;
	c->max = max > 0 ? max : 1;
	for (c->nbuckets = 16; c->nbuckets < c->max; c->nbuckets *= 2)
		;
	c->buckets = calloc(c->nbuckets, sizeof *c->buckets);
	if (c->buckets == NULL) {
		free(c);
		return NULL;
	}
	return c;
}

void tls_session_cache_free(struct tls_session_cache *c)
{
	if (c == NULL)
		return;
	while (c->oldest != NULL)
		entry_remove(c, c->oldest);
	free(c->buckets);
	free(c);
}

size_t tls_session_cache_count(const struct tls_session_cache *c)
{
	return c->count;
}

/* ---- the connections ---------------------------------------------------- */

static int link_index = -1;
static pthread_once_t link_index_once = PTHREAD_ONCE_INIT;

/* SSL_free: what was held unaccepted goes; a resumed session whose peer the
 * caller did not accept must not be offered again. */
static void link_free(void *ssl, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	struct link *l = ptr;

	if (l == NULL)
		return;
	if (!l->accepted && l->offered != NULL && SSL_session_reused(ssl) == 1)
		cache_drop(l->cache, l->key, l->offered);
	SSL_SESSION_free(l->held);
	SSL_SESSION_free(l->offered);
	free(l->key);
	free(l);
}

static void link_index_init(void)
{
	link_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, link_free);
}

static struct link *link_of(const SSL *ssl)
{
	pthread_once(&link_index_once, link_index_init);
	return link_index < 0 ? NULL : SSL_get_ex_data(ssl, link_index);
}

/* OpenSSL's new-session callback: returning 1 keeps the reference it gives. */
static int on_new_session(SSL *ssl, SSL_SESSION *s)
{
	struct link *l = link_of(ssl);

	if (l == NULL)
		return 0;
	if (l->accepted) {
		cache_put(l->cache, l->key, s);
	} else {
		SSL_SESSION_free(l->held); /* a newer one replaces it */
		l->held = s;
	}
	return 1;
}

void tls_session_cache_enable(SSL_CTX *ctx)
{
	/* No internal store: sessions reach the cache only through the
	 * callback, and only once accepted. */
	SSL_CTX_set_session_cache_mode(ctx,
	                               SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(ctx, on_new_session);
}

/* The connection resumes a copy of the cache's session s. */
static void offer(SSL *ssl, struct link *l, SSL_SESSION *s)
{
	SSL_SESSION *copy = SSL_SESSION_dup(s);

	if (copy != NULL && SSL_set_session(ssl, copy) == 1 && SSL_SESSION_up_ref(s) == 1)
		l->offered = s;
	SSL_SESSION_free(copy); /* the SSL holds its own reference */
}

int tls_session_attach(SSL *ssl, struct tls_session_cache *c, const char *key)
{
	struct link *l;
	SSL_SESSION *s;

	if (link_of(ssl) != NULL || link_index < 0)
		return -1; /* attached twice, or no ex_data index */
	l = calloc(1, sizeof *l);
	if (l == NULL || (l->key = strdup(key)) == NULL || !SSL_set_ex_data(ssl, link_index, l)) {
		if (l != NULL)
			free(l->key);
		free(l);
		return -1;
	}
	l->cache = c;
	s = cache_get(c, key);
	if (s != NULL)
		offer(ssl, l, s);
	return 0;
}

void tls_session_accept(SSL *ssl)
{
	struct link *l = link_of(ssl);

	if (l == NULL || l->accepted)
		return;
	l->accepted = true;
	if (l->held != NULL) {
		cache_put(l->cache, l->key, l->held);
		l->held = NULL;
	}
}
