/* attempt.h - one delivery attempt: one message's recipients at one domain.
 *
 * The attempt takes an idle connection to the domain when the pool has one;
 * otherwise it resolves the domain's MX hosts and tries them in order
 * (docs/destinations.md): each host's addresses in dialing order, STARTTLS
 * when offered, and after a failed handshake the same host again in
 * plaintext (docs/delivery.md, "The SMTP session").
 * A host that refuses the session (5xx greeting or EHLO) or answers a
 * recipient with 421 passes the recipients on to the next host. Recipients
 * refused with 452 go in a further transaction on the same connection. It
 * stops at the first host that settles every recipient, or at a permanent
 * failure; a host that resolves to outpost itself ends the list (RFC 5321
 * §5.1). The message is streamed from the spool, never loaded whole.
 *
 * Then it records the outcome of every recipient in one spool transaction:
 * delivered, deferred with its last error, or failed (permanent, or out of
 * attempts), with the delivery log, the addresses dialed, and the one
 * notice of the message when one is due (notice.h). The outcome always
 * lands: a failed commit is retried until it succeeds or the daemon stops
 * (then the restart's recovery retries the attempt). The TLS decision for a
 * host is made in one place (host_tls_mode).
 */
#ifndef OUTPOST_DELIVER_ATTEMPT_H
#define OUTPOST_DELIVER_ATTEMPT_H

#include "conf/conf.h"
#include "dkim/dkim.h"
#include "deliver/pool.h"
#include "deliver/self.h"
#include "dns/dns.h"
#include "mtasts/cache.h"
#include "spool/spool.h"
#include "spool/writer.h"
#include "tls/session_cache.h"

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;

struct job_rcpt {
	int64_t id;
	char address[320];
	int attempt; /* this attempt's number, 1-based */
	/* the outcome */
	enum rcpt_state state; /* RCPT_QUEUED while undecided */
	char error[600];       /* "550 5.1.1 user unknown" or our reason */
	char enhanced[16];
	bool remote; /* error is a remote reply (Diagnostic-Code) */
	char mx[256], ip[64];
	char tls[96]; /* "TLSv1.3 TLS_AES_256_GCM_SHA384", "" for plaintext */
	struct tls_note note; /* the policy and the verification (pool.h) */
};

struct delivery_job {
	uint64_t msg_id;
	char domain[256];
	size_t n;
	struct job_rcpt *rcpts;
};

struct deliver_ctx {
	struct event_base *base;
	const struct conf *conf;
	struct dns_resolver *dns;
	struct pool *pool;
	struct spool *reader;
	struct spool_writer *writer;
	SSL_CTX *tls;
	struct tls_session_cache *tls_sessions;
	struct self_addrs *self;
	struct sts_cache *sts; /* NULL when MTA-STS is off */
	const struct dkim_signer *dkim; /* signs the notices (NULL: none) */
};

typedef void (*attempt_done_fn)(void *arg, struct delivery_job *job);

struct attempt;

/* Runs the attempt: its lookups and connection set-up start at once, while
 * the caller commits the attempt's begin; the transaction and the outcome
 * wait for attempt_begun. released is called once the attempt holds no
 * connection any more and every recipient's outcome is decided (in
 * job->rcpts), while the outcome is still being committed: the destination's
 * connection slot is free from then on. done is called once the outcome is
 * committed (the job stays owned by the caller). Neither is called before
 * attempt_begun. Returns a handle for attempt_begun and attempt_abort. */
struct attempt *attempt_run(struct deliver_ctx *ctx, struct delivery_job *job,
                            attempt_done_fn released, attempt_done_fn done, void *arg);

/* The attempt's begin is committed, and job->rcpts holds the recipients it
 * kept (those held or dropped meanwhile are gone): the attempt goes on to
 * the transaction or the outcome it has reached. */
void attempt_begun(struct attempt *a);

/* Shutdown, or a begin that failed or kept no recipient: drops an attempt
 * still talking to the network, or waiting to retry its outcome's commit,
 * without calling done (it was counted and its
 * recipients are still in flight in the spool: the restart retries them).
 * Returns false when its outcome is with the writer now: then done will
 * still be called once the writer has finished. */
bool attempt_abort(struct attempt *a);

/* Registers the delivery metrics (so they show before the first attempt). */
void attempt_metrics_init(void);

#endif
