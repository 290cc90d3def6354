/* session_cache.h - TLS session resumption for the delivery side's client.
 *
 * A bounded in-memory cache of SSL_SESSIONs keyed by a caller's string. The
 * key must name the server and everything the verdict depends on, e.g.
 * "192.0.2.1 25 mx.example.net <tls_policy_digest>": OpenSSL does not verify
 * a resumed session again, and SSL_get_verify_result then returns the stored
 * result of the original handshake, so a session verified under one TLSA set
 * or policy must never be offered under another (Postfix does the same with
 * tls_serverid_digest). tls_peer_verdict verifies a resumed session again
 * anyway; the key keeps the cache right without relying on that.
 *
 * Sessions arrive through the context's new-session callback: with TLS 1.2
 * during the handshake, with TLS 1.3 as tickets after it, while reading. A
 * session enters the cache only once the caller has accepted the peer under
 * its policy (tls_session_accept): one that arrives before is held with the
 * connection until then, and dropped if the connection ends unaccepted. So an
 * unverified peer's session is never resumed as if verified. A resumed
 * session the caller did not accept is removed from the cache.
 *
 * Sessions are reused for several connections, also TLS 1.3 tickets (RFC 8446
 * §C.4 advises against it for privacy, which means little between MTAs; a
 * server that refuses a reused ticket just does a full handshake); a newer
 * session replaces the older one.
 * Connections need not end with close_notify for their sessions to stay
 * resumable: the cache keeps private copies (see session_cache.c).
 *
 * Bounded: at most max entries, the least recently used goes first; expired
 * sessions are dropped when met. Loop thread only. The cache must outlive
 * the SSLs attached to it, and belongs with one client context (a new trust
 * store, e.g. after a reload, needs a new cache).
 */
#ifndef OUTPOST_TLS_SESSION_CACHE_H
#define OUTPOST_TLS_SESSION_CACHE_H

#include <openssl/ssl.h>
#include <stddef.h>

struct tls_session_cache;

/* max: most entries kept (at least 1). NULL when out of memory. */
struct tls_session_cache *tls_session_cache_new(size_t max);

/* Frees the cache and its sessions; no attached SSL may remain. */
void tls_session_cache_free(struct tls_session_cache *c);

/* Number of sessions held. */
size_t tls_session_cache_count(const struct tls_session_cache *c);

/* Sets a client context up for this module (client-side caching, sessions
 * delivered to our callback only). tls_client_ctx_new does it. */
void tls_session_cache_enable(SSL_CTX *ctx);

/* Before the handshake: links ssl to cache c under key (copied) and offers
 * the cached session for key, if any is still valid, with SSL_set_session.
 * Once per SSL. Returns 0, or -1 when out of memory or attached already
 * (ssl then works without resumption). */
int tls_session_attach(SSL *ssl, struct tls_session_cache *c, const char *key);

/* After the verdict, when the caller accepts the peer: from now on the
 * connection's sessions (held or still to come) enter the cache. */
void tls_session_accept(SSL *ssl);

#endif
