/* pool.h - idle SMTP connections kept for reuse, per destination.
 *
 * After a transaction, a usable connection is parked here under its
 * destination (the recipient domain) instead of being closed, and the next
 * message for that destination takes it: no DNS, no TCP or TLS handshake,
 * just RSET-free MAIL FROM (the client sends RSET only when needed). A
 * connection leaves the pool when it has carried max_messages, when it has
 * been idle for idle_timeout, or when the server closes it.
 */
#ifndef OUTPOST_DELIVER_POOL_H
#define OUTPOST_DELIVER_POOL_H

#include "deliver/client.h"

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct pool;

/* How a connection's TLS went, for the delivery log (spool.h). */
struct tls_note {
	char policy[24];   /* "dane", "mta-sts enforce", ... */
	char verified[16]; /* "DANE-EE", "PKIX", "unverified", "" */
	char detail[200];
};

/* Where a connection goes; kept with it for the delivery log. */
struct pool_conn_info {
	char mx[256];
	char ip[64];
	char tls[96]; /* "" when plaintext */
	struct tls_note note;
	/* The TLS policy it was set up under (host_tls.h): only an attempt
	 * that decides the same policy now may use it. */
	char tag[96];
	int messages; /* transactions it has carried */
};

struct pool *pool_new(struct event_base *base, int64_t idle_timeout_ms, int max_messages,
                      size_t max_idle);

/* New limits (a reload): they apply to connections parked from now on;
 * those parked already keep the idle timeout they got. */
void pool_set_limits(struct pool *p, int64_t idle_timeout_ms, int max_messages, size_t max_idle);

/* An idle connection to dest set up under tag, or NULL; info is filled. */
struct smtp_client *pool_take(struct pool *p, const char *dest, const char *tag,
                              struct pool_conn_info *info);

/* Parks c (usable, idle) for dest, or quits it when it has carried enough
 * messages or the pool is full. The pool owns c afterwards. */
void pool_put(struct pool *p, const char *dest, struct smtp_client *c,
              const struct pool_conn_info *info);

/* Quits the connection parked longest (none: nothing happens). */
void pool_close_oldest(struct pool *p);

/* Idle connections count against delivery.max_connections: before an
 * attempt for dest at the limit, the scheduler quits the connection parked
 * longest for another destination. When every idle connection is dest's
 * own, none goes: the attempt takes one of them (a wave of attempts ending
 * together must not close the connections the next wave reuses). */
void pool_make_room(struct pool *p, const char *dest);

/* Quits dest's connection parked longest: an attempt for dest that found
 * none set up under its policy (pool_take) opens its own instead, and the
 * limit holds. */
void pool_close_oldest_of(struct pool *p, const char *dest);

/* Idle connections parked for dest / in all. */
size_t pool_idle_count(const struct pool *p, const char *dest);
size_t pool_idle_total(const struct pool *p);

/* Quits every idle connection and frees the pool. */
void pool_free(struct pool *p);

#endif
