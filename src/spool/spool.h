/* spool.h - the durable queue: SQLite schema, migrations and every query.
 *
 * One struct spool is one SQLite connection in WAL mode with
 * synchronous=FULL, so a COMMIT returns only after the WAL is fsynced. The
 * daemon has one writing connection (owned by the writer thread, see
 * writer.h), one reading connection on the loop thread, and one read-only
 * connection per admin read worker thread (never shared); `outpost send`
 * opens its own and commits alone when no daemon runs. Functions that change
 * state do not open transactions themselves: the caller (the writer's batch)
 * does.
 *
 * A message has one envelope sender and one or more recipients; each
 * recipient has its own state, attempt count, next-attempt time and last
 * error. Recipient ids are never reused (AUTOINCREMENT), so state kept
 * elsewhere under an id can never be mistaken for a newer recipient's.
 * While an attempt runs its recipients are marked in flight in the spool
 * itself: they are not due, an admin hold or drop of them takes effect when
 * the attempt's outcome is recorded, and the outcome always lands.
 *
 * Reads return plain rows; how they are presented (JSON, text) is the
 * caller's business. Errors return -1 and fill why.
 */
#ifndef OUTPOST_SPOOL_SPOOL_H
#define OUTPOST_SPOOL_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct spool;

enum rcpt_state {
	RCPT_QUEUED = 0,
	RCPT_HELD = 1,
	RCPT_DEFERRED = 2,
	RCPT_DELIVERED = 3,
	RCPT_FAILED = 4,
};
#define RCPT_NSTATES 5

const char *rcpt_state_name(enum rcpt_state s);
int rcpt_state_parse(const char *name); /* -1 when unknown */

enum spool_msg_flags {
	SPOOL_F_REQUIRETLS = 1 << 0,      /* MAIL ... REQUIRETLS (RFC 8689) */
	SPOOL_F_TLS_REQUIRED_NO = 1 << 1, /* "TLS-Required: No" header (RFC 8689 §5) */
	SPOOL_F_8BIT = 1 << 2,            /* body has octets >= 0x80 */
	SPOOL_F_SMTPUTF8 = 1 << 3,        /* needs SMTPUTF8 */
	SPOOL_F_DSN = 1 << 4,             /* a delivery status notification we made */
	SPOOL_F_TLSRPT = 1 << 5,          /* a TLS report we made (RFC 8460 §5.3) */
};

/* What the caller gets back for "no such thing" where that is not an error. */
#define SPOOL_NOT_FOUND 1

struct spool_message_in {
	uint64_t id;        /* from spool_new_id() */
	const char *sender; /* "" for <> */
	const char *const *rcpts;
	size_t nrcpt; /* duplicates (spool_same_address) are stored once */
	unsigned flags;
	const char *auth_user; /* may be NULL */
	const char *client;    /* "127.0.0.1" or "local:uid=0"; may be NULL */
	int64_t queued_ms;
	const char *body; /* whole message, CRLF lines, not dot-stuffed */
	size_t body_len;
};

/* Who writes the spool: the daemon holds data_dir/outpost.lock exclusively
 * for its whole life (one daemon per spool); `outpost send`, writing the
 * spool itself because no daemon runs, holds it shared for its commit. So
 * the two never write at once, and the daemon's counts (writer.h) start
 * from a table nobody else changes. Waits up to wait_ms for the lock.
 * Returns the descriptor holding it (close to release), or -1 with errno
 * EWOULDBLOCK when someone else holds it, or another errno. */
int spool_lock(const char *data_dir, bool exclusive, int wait_ms);

/* Opens (creating and migrating when needed) data_dir/spool.db. The
 * database files are created readable by their owner only. */
struct spool *spool_open(const char *data_dir, char *why, size_t whylen);
/* Opens data_dir/spool.db read-only (SQLITE_OPEN_READONLY): the admin API's
 * read workers, one each, and `outpost queue` when no daemon runs. A spool
 * of another schema version is refused. */
struct spool *spool_open_readonly(const char *data_dir, char *why, size_t whylen);
void spool_close(struct spool *s);

/* The commits that follow fsync the WAL (synced, as opened) or leave it
 * to a later synced commit or checkpoint (PRAGMA synchronous = NORMAL). */
int spool_set_synced(struct spool *s, bool synced, char *why, size_t whylen);
int spool_begin(struct spool *s, char *why, size_t whylen);
int spool_commit(struct spool *s, char *why, size_t whylen);
void spool_rollback(struct spool *s);
/* A savepoint per writer job; release returns -1 when the savepoint could
 * not be rolled back or released (the batch must then be failed). */
int spool_savepoint(struct spool *s, char *why, size_t whylen);
int spool_savepoint_release(struct spool *s, bool keep, char *why, size_t whylen);
/* False when SQLite rolled the whole transaction back on its own (a full
 * disk, an I/O error): what the batch did so far is gone. */
bool spool_in_transaction(struct spool *s);

/* A new queue id: time-ordered, unique within a process and, with a random
 * component, across processes. */
uint64_t spool_new_id(void);
/* Queue ids are shown as upper-case hex. */
void spool_id_format(uint64_t id, char buf[17]);
bool spool_id_parse(const char *s, uint64_t *id);

/* Two recipient addresses are the same when their local parts are equal
 * and their domains equal ignoring ASCII case (RFC 5321 §2.4: local parts
 * may be case-sensitive, domains are not). */
bool spool_same_address(const char *a, const char *b);

int spool_insert_message(struct spool *s, const struct spool_message_in *m, char *why,
                         size_t whylen);

/* ---- counts by state ------------------------------------------------------ */

/* Counts of recipients per state, straight from the table. */
int spool_count_states(struct spool *s, int64_t counts[RCPT_NSTATES]);

/* Writer connection only: from now on every change of a recipient's state
 * (insert, update, delete) is added to a per-transaction delta, kept by
 * triggers in the connection's temporary schema, so that counts stay exact
 * without scanning. spool_state_delta_take reads and zeroes it inside the
 * transaction (a rollback restores it with everything else). */
int spool_track_states(struct spool *s, char *why, size_t whylen);
int spool_state_delta_take(struct spool *s, int64_t delta[RCPT_NSTATES], char *why, size_t whylen);

/* ---- filters and admin actions ------------------------------------------- */

/* Filters for listing and for the admin actions; zero fields match all. */
struct spool_filter {
	const uint64_t *ids;
	size_t nids;
	const char *domain;    /* recipient domain, compared lower-cased */
	const char *recipient; /* recipient address, case-insensitive */
	int state;             /* -1: any pending; else enum rcpt_state */
	bool all;              /* required for actions when nothing else is given */
};

enum spool_action { SPOOL_HOLD, SPOOL_RELEASE, SPOOL_KICK, SPOOL_DROP };

/* Applies an action to the matching recipients (hold: queued/deferred ->
 * held; release: held -> its state before the hold, schedule kept; kick:
 * queued/deferred -> due now; drop: recipients removed, then messages left
 * without recipients). A recipient in flight is held, released or kicked
 * at once (the outcome of its attempt then decides on top); its drop is
 * recorded and done when the outcome is. Returns the number of recipients
 * changed. */
int64_t spool_apply(struct spool *s, enum spool_action a, const struct spool_filter *f,
                    int64_t now_ms, char *why, size_t whylen);

/* ---- scheduling and attempts ----------------------------------------------- */

/* A recipient due for an attempt. */
struct spool_due {
	int64_t rcpt_id;
	uint64_t msg_id;
	int attempts;
	char domain[256];
	char address[320];
};

/* Fills up to max due recipients (queued or deferred, not in flight,
 * next_attempt <= now), earliest first, leaving out the nskip domains in
 * skip. Returns the count or -1. */
int spool_due_list(struct spool *s, int64_t now_ms, const char *const *skip, size_t nskip,
                   struct spool_due *out, size_t max, char *why, size_t whylen);

/* Earliest next_attempt of a queued or deferred recipient not in flight,
 * or -1 if none. */
int64_t spool_next_due(struct spool *s);

/* Attempt bookkeeping, before any network activity (docs/queue.md,
 * "Attempt bookkeeping"): attempts+1, last_attempt=now,
 * next_attempt=now+backoff, queued -> deferred, in flight. Skips a
 * recipient that is no longer queued or deferred, already in flight, or
 * gone; returns 1 when it was begun, 0 when skipped. */
int spool_attempt_begin(struct spool *s, int64_t rcpt_id, int64_t now_ms, int64_t backoff_ms,
                        char *why, size_t whylen);

/* The outcome of an attempt for one recipient. */
struct spool_outcome {
	int64_t rcpt_id;
	enum rcpt_state state;  /* DELIVERED, DEFERRED or FAILED */
	const char *error;      /* human reason, "550 5.1.1 ..." or ours */
	const char *status;     /* enhanced code: "5.1.1", "4.4.1" */
	const char *mx, *ip;    /* where it was decided; NULL when nowhere */
	const char *diagnostic; /* the remote reply, NULL when the reason is ours */
	enum spool_notice {
		SPOOL_NOTICE_NONE = 0,
		SPOOL_NOTICE_DELAY = 1,
		SPOOL_NOTICE_FAILURE = 2,
	} notice; /* a notice to send about it (failure wins over delay) */
};

enum spool_end {
	SPOOL_END_RECORDED, /* the outcome is the recipient's (a hold stays on a deferral) */
	SPOOL_END_DROPPED,  /* dropped during the attempt: now removed, nothing recorded */
	SPOOL_END_GONE,     /* no such recipient in flight */
};

/* Records o and ends the recipient's attempt: a final outcome wins over a
 * hold made meanwhile; a deferral keeps it held. Returns enum spool_end or
 * -1. */
int spool_attempt_end(struct spool *s, const struct spool_outcome *o, char *why, size_t whylen);

/* Recipients of the message in flight now. */
int64_t spool_in_flight(struct spool *s, uint64_t msg_id, char *why, size_t whylen);

/* A recipient whose notice is due: the fields a DSN needs. */
struct spool_notice_row {
	const char *address;
	enum spool_notice notice;
	int attempts;
	int64_t last_attempt_ms;
	const char *error, *status, *mx, *ip, *diagnostic; /* may be NULL */
};

/* Calls fn for every recipient of the message with a notice pending, then
 * clears them. Returns how many, or -1. */
int spool_notices_take(struct spool *s, uint64_t msg_id,
                       void (*fn)(void *arg, const struct spool_notice_row *r), void *arg,
                       char *why, size_t whylen);

/* Messages with notices pending and nothing in flight (after a restart),
 * at most max; returns how many. */
int spool_notices_waiting(struct spool *s, uint64_t *ids, size_t max, char *why, size_t whylen);

/* What delivery needs of a message besides its recipients and body. */
struct spool_envelope {
	uint64_t id;
	char sender[320];
	unsigned flags;
	int64_t queued_ms;
	size_t size;
};

int spool_load_envelope(struct spool *s, uint64_t id, struct spool_envelope *e, char *why,
                        size_t whylen);

/* Reads up to n octets of the stored message at offset into buf, through
 * SQLite's incremental BLOB I/O (a short read transaction per call, so a
 * long delivery never pins the WAL). Returns the octets read, 0 at the
 * end, -1 with why (the message is gone, say). */
ssize_t spool_body_read(struct spool *s, uint64_t id, size_t offset, void *buf, size_t n, char *why,
                        size_t whylen);

/* The header section of the stored message (up to and including the empty
 * line, at most max octets); caller frees *out. */
int spool_body_headers(struct spool *s, uint64_t id, size_t max, char **out, size_t *len, char *why,
                       size_t whylen);

/* The stored message; caller frees *body. Returns 0, SPOOL_NOT_FOUND or -1. */
int spool_message_body(struct spool *s, uint64_t id, char **body, size_t *len, char *why,
                       size_t whylen);

enum spool_attempt_result { SPOOL_ATTEMPT_DELIVERED, SPOOL_ATTEMPT_DEFERRED, SPOOL_ATTEMPT_FAILED };

/* One line of the delivery log: one recipient, one attempt. */
struct spool_attempt_log {
	uint64_t msg_id;
	int64_t rcpt_id;
	int64_t started_ms, duration_ms;
	const char *mx, *ip, *tls; /* NULL when not reached */
	enum spool_attempt_result result;
	const char *reply; /* the remote reply or our reason */
	/* the TLS policy that governed the host ("dane", "mta-sts enforce"...),
	 * how the certificate was verified ("DANE-EE", "DANE-TA", "PKIX",
	 * "unverified") and what went with it (the matching record, or why it
	 * failed); NULL when unknown */
	const char *tls_policy, *tls_verified, *tls_detail;
};

int spool_log_attempt(struct spool *s, const struct spool_attempt_log *l, char *why, size_t whylen);

/* The addresses connected to for host in earlier attempts ("ip ip ..."),
 * which set the dialing order (docs/destinations.md, "Dialing order"); ""
 * when none. */
int spool_dialed_get(struct spool *s, uint64_t msg_id, const char *host, char *ips, size_t n);
int spool_dialed_put(struct spool *s, uint64_t msg_id, const char *host, const char *ips, char *why,
                     size_t whylen);

/* After recipients of the message changed: a message without recipients
 * is removed with its body, log and addresses; one with none pending is
 * marked done (its body and addresses go, the envelope and the log stay
 * for delivery.log_retention). Returns 0 or -1. */
int spool_message_settle(struct spool *s, uint64_t msg_id, int64_t now_ms, char *why,
                         size_t whylen);

/* Start-up, on the writing connection, in its own transaction: attempts
 * that a crash or a kill cut short were counted (docs/queue.md) but nothing
 * went wrong at the remote end, so they are due again now rather than after
 * their backoff; drops that waited for them are done. Returns how many
 * recipients were in flight, or -1. */
int64_t spool_recover_interrupted(struct spool *s, int64_t now_ms, char *why, size_t whylen);

/* Deletes at most max messages done before the given time, with their
 * recipients and delivery log. Returns how many messages, or -1. */
int64_t spool_cleanup(struct spool *s, int64_t done_before_ms, int max, char *why, size_t whylen);

/* A write that touches a page, to learn whether the spool can be written
 * again after a failure (a full disk). */
int spool_probe_write(struct spool *s, int64_t now_ms, char *why, size_t whylen);

/* ---- reads for the admin API ----------------------------------------------- */

struct spool_message_row {
	uint64_t id;
	const char *sender;
	int64_t size, queued_ms;
	unsigned flags;
	const char *auth_user, *client; /* may be NULL */
	int64_t done_ms;                /* -1 while recipients are pending */
};

struct spool_recipient_row {
	const char *address;
	enum rcpt_state state;
	int attempts;
	int64_t next_attempt_ms; /* -1 when final */
	int64_t last_attempt_ms; /* -1 before the first attempt */
	const char *last_error;  /* "" when none */
	bool in_flight;
};

/* Called once per message with its recipients; a non-zero return stops. */
typedef int (*spool_message_fn)(void *arg, const struct spool_message_row *m,
                                const struct spool_recipient_row *r, size_t nr);

/* Listings come in pages (docs/api.md, "Pages"): keyset pagination on a
 * unique key (time, id) that never changes for a row, never OFFSET. A
 * page starts after the last key of the one before, so a walk from page to
 * page sees every row that exists throughout it exactly once, whatever is
 * added or removed meanwhile (rows added behind the walk's position are
 * not seen; those removed are not seen again). */
struct spool_key {
	int64_t time_ms;
	uint64_t id;
};

struct spool_page {
	size_t limit;                  /* rows per page, at least 1 */
	bool newest_first;             /* descending (time, id) */
	const struct spool_key *after; /* the previous page's next; NULL: the first page */
	struct spool_key next;         /* out: the last row's key */
	bool more;                     /* out: another page follows */
};

/* What a queue listing keeps. */
struct spool_list_query {
	struct spool_filter f;    /* a message with a recipient matching f (by default a
	                             pending one: queued, held or deferred); f.all unused */
	const char *sender;       /* envelope sender, case-insensitive ("" for <>); NULL: any */
	int64_t queued_from_ms;   /* queued at or after; -1: no bound */
	int64_t queued_before_ms; /* queued before; -1: no bound */
};

/* A page of the matching messages by (queued, id), each with all its
 * recipients, read in one statement (one snapshot). */
int spool_list_page(struct spool *s, const struct spool_list_query *q, struct spool_page *p,
                    spool_message_fn fn, void *arg, char *why, size_t whylen);

/* One message; returns 0, SPOOL_NOT_FOUND or -1. */
int spool_show(struct spool *s, uint64_t id, spool_message_fn fn, void *arg, char *why,
               size_t whylen);

struct spool_attempt_row {
	const char *recipient;
	int64_t started_ms, duration_ms;
	const char *mx, *ip, *tls; /* may be NULL */
	enum spool_attempt_result result;
	const char *reply; /* may be NULL */
	const char *tls_policy, *tls_verified, *tls_detail; /* may be NULL */
};

/* The delivery log of one message, oldest first. */
int spool_attempts(struct spool *s, uint64_t id,
                   void (*fn)(void *arg, const struct spool_attempt_row *a), void *arg, char *why,
                   size_t whylen);

/* What the delivery history keeps: attempts of recipients matching f
 * (f.state: the recipient's state now; -1 any), with result (-1 any), in
 * the window [started_from_ms, started_before_ms) (-1: unbounded). */
struct spool_history_query {
	struct spool_filter f;
	int result; /* enum spool_attempt_result, or -1 */
	int64_t started_from_ms, started_before_ms;
};

/* One attempt of the history, with its message. */
struct spool_history_row {
	uint64_t msg_id;
	const char *sender;
	int64_t done_ms; /* -1 while the message has recipients pending */
	struct spool_attempt_row a;
};

/* A page of the delivery log by (started, attempt id), the log being kept
 * with its message for delivery.log_retention after the message is done.
 * Rows are valid during fn. */
int spool_history_page(struct spool *s, const struct spool_history_query *q, struct spool_page *p,
                       void (*fn)(void *arg, const struct spool_history_row *h), void *arg,
                       char *why, size_t whylen);

/* PRAGMA integrity_check plus the spool's own invariants. Returns the number
 * of problems; each is passed to fn. */
int spool_check(struct spool *s, void (*fn)(const char *problem, void *arg), void *arg);

#endif
