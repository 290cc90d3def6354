/* smtpd.h - the SMTP submission listener (RFC 5321, RFC 6409).
 *
 * Sessions run on the libevent loop as an explicit state machine. A message
 * is acknowledged with 250 only after the spool writer's commit that holds
 * it. Mail is accepted only from authenticated clients, from loopback, or
 * from local users on the local socket (`outpost send`, who the kernel
 * names): never an open relay. Every limit of the [submission] section has its own
 * clear reply.
 */
#ifndef OUTPOST_SUBMIT_SMTPD_H
#define OUTPOST_SUBMIT_SMTPD_H

#include "conf/conf.h"
#include "spool/writer.h"

#include <stddef.h>

struct event_base;
struct smtpd;

/* Called on the loop thread after each message is committed. */
typedef void (*smtpd_queued_fn)(void *arg);

struct worker;
struct dkim_signer;

/* Listens on [submission] listen and local_socket. Password checks run on
 * worker, and so do the DKIM signatures of messages whose author domain has
 * keys in dkim (NULL: none); dkim outlives the listener. */
struct smtpd *smtpd_start(struct event_base *base, const struct conf *conf,
                          struct spool_writer *writer, struct worker *worker,
                          const struct dkim_signer *dkim, smtpd_queued_fn queued, void *arg,
                          char *why, size_t whylen);

/* Shutdown, first step: closes the listeners; a session waiting for a
 * commit gets its reply (250 once committed) and then 421, every other
 * session 421 at once (a message not yet acknowledged is the client's to
 * send again). The loop goes on until smtpd_sessions is 0. */
void smtpd_drain(struct smtpd *d);

/* Sessions still open. */
size_t smtpd_sessions(const struct smtpd *d);

/* Closes every session and frees the listener. */
void smtpd_stop(struct smtpd *d);

#endif
