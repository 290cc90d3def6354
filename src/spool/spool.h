/* spool.h - the durable queue: SQLite schema, migrations and every query.
 *
 * One struct spool is one SQLite connection in WAL mode with
 * synchronous=FULL, so a COMMIT returns only after the WAL is fsynced. The
 * daemon has one writing connection (owned by the writer thread, see
 * writer.h) and one reading connection on the loop thread; `outpost send`
 * opens its own and commits alone. Functions that change state do not open
 * transactions themselves: the caller (the writer's batch) does.
 *
 * A message has one envelope sender and one or more recipients; each
 * recipient has its own state, attempt count, next-attempt time and last
 * error. Errors return -1 and fill why.
 */
#ifndef OUTPOST_SPOOL_SPOOL_H
#define OUTPOST_SPOOL_SPOOL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct spool;

enum rcpt_state {
	RCPT_QUEUED = 0,
	RCPT_HELD = 1,
	RCPT_DEFERRED = 2,
	RCPT_DELIVERED = 3,
	RCPT_FAILED = 4,
};

const char *rcpt_state_name(enum rcpt_state s);
int rcpt_state_parse(const char *name); /* -1 when unknown */

enum spool_msg_flags {
	SPOOL_F_REQUIRETLS = 1 << 0,      /* MAIL ... REQUIRETLS (RFC 8689) */
	SPOOL_F_TLS_REQUIRED_NO = 1 << 1, /* "TLS-Required: No" header (RFC 8689 §5) */
	SPOOL_F_8BIT = 1 << 2,            /* body has octets >= 0x80 */
	SPOOL_F_SMTPUTF8 = 1 << 3,        /* needs SMTPUTF8 */
	SPOOL_F_DSN = 1 << 4,             /* a delivery status notification we made */
};

struct spool_message_in {
	uint64_t id;        /* from spool_new_id() */
	const char *sender; /* "" for <> */
	const char *const *rcpts;
	size_t nrcpt;
	unsigned flags;
	const char *auth_user; /* may be NULL */
	const char *client;    /* "127.0.0.1" or "local:uid=0"; may be NULL */
	int64_t queued_ms;
	const char *body; /* whole message, CRLF lines, not dot-stuffed */
	size_t body_len;
};

/* Opens (creating and migrating when needed) data_dir/spool.db. */
struct spool *spool_open(const char *data_dir, char *why, size_t whylen);
void spool_close(struct spool *s);

int spool_begin(struct spool *s, char *why, size_t whylen);
int spool_commit(struct spool *s, char *why, size_t whylen);
void spool_rollback(struct spool *s);
int spool_savepoint(struct spool *s, char *why, size_t whylen);
void spool_savepoint_release(struct spool *s, bool keep);

/* A new queue id: time-ordered, unique within a process and, with a random
 * component, across processes. */
uint64_t spool_new_id(void);
/* Queue ids are shown as upper-case hex. */
void spool_id_format(uint64_t id, char buf[17]);
bool spool_id_parse(const char *s, uint64_t *id);

int spool_insert_message(struct spool *s, const struct spool_message_in *m, char *why,
                         size_t whylen);

/* Filters for listing and for the admin actions; zero fields match all. */
struct spool_filter {
	const uint64_t *ids;
	size_t nids;
	const char *domain;    /* recipient domain, compared lower-cased */
	const char *recipient; /* recipient address, case-insensitive */
	int state;             /* -1: any; else enum rcpt_state */
	bool all;              /* required for actions when nothing else is given */
};

enum spool_action { SPOOL_HOLD, SPOOL_RELEASE, SPOOL_KICK, SPOOL_DROP };

/* Applies an action to the matching recipients (hold: queued/deferred ->
 * held; release: held -> its state before the hold, schedule kept; kick:
 * queued/deferred -> due now; drop: recipients removed, then messages left
 * without recipients). Returns the number of recipients changed. */
int64_t spool_apply(struct spool *s, enum spool_action a, const struct spool_filter *f,
                    int64_t now_ms, char *why, size_t whylen);

/* A recipient due for an attempt. */
struct spool_due {
	int64_t rcpt_id;
	uint64_t msg_id;
	int attempts;
	char domain[256];
	char address[320];
};

/* Fills up to max due recipients (queued or deferred, next_attempt <= now),
 * earliest first, leaving out the nskip domains in skip. Returns the count
 * or -1. */
int spool_due_list(struct spool *s, int64_t now_ms, const char *const *skip, size_t nskip,
                   struct spool_due *out, size_t max, char *why, size_t whylen);

/* Earliest next_attempt of a queued or deferred recipient, or -1 if none. */
int64_t spool_next_due(struct spool *s);

/* Attempt bookkeeping, before any network activity (SPEC §3.3): attempts+1,
 * last_attempt=now, next_attempt=now+backoff, queued -> deferred. Skips
 * recipients that are no longer queued/deferred (held or dropped meanwhile);
 * returns how many were updated. */
int spool_attempt_begin(struct spool *s, int64_t rcpt_id, int64_t now_ms, int64_t backoff_ms,
                        char *why, size_t whylen);

/* Outcome of an attempt for one recipient. */
int spool_attempt_end(struct spool *s, int64_t rcpt_id, enum rcpt_state state,
                      const char *last_error, char *why, size_t whylen);

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

enum spool_attempt_result { SPOOL_ATTEMPT_DELIVERED, SPOOL_ATTEMPT_DEFERRED, SPOOL_ATTEMPT_FAILED };

/* One line of the delivery log: one recipient, one attempt. */
struct spool_attempt_log {
	uint64_t msg_id;
	int64_t rcpt_id;
	int64_t started_ms, duration_ms;
	const char *mx, *ip, *tls; /* NULL when not reached */
	enum spool_attempt_result result;
	const char *reply; /* the remote reply or our reason */
};

int spool_log_attempt(struct spool *s, const struct spool_attempt_log *l, char *why, size_t whylen);

/* The addresses connected to for host in earlier attempts ("ip ip ..."),
 * SPEC §4.3; "" when none. */
int spool_dialed_get(struct spool *s, uint64_t msg_id, const char *host, char *ips, size_t n);
int spool_dialed_put(struct spool *s, uint64_t msg_id, const char *host, const char *ips, char *why,
                     size_t whylen);

/* When no recipient of the message is pending any more: marks it done,
 * drops its body and dialed addresses. Returns 1 when it was done, 0 when
 * recipients remain, -1 on error. */
int spool_finish_if_done(struct spool *s, uint64_t msg_id, int64_t now_ms, char *why,
                         size_t whylen);

/* Start-up: attempts that a crash or a kill cut short were counted (SPEC
 * §3.3) but nothing went wrong at the remote end, so they are due again now
 * rather than after their backoff. In its own transaction; returns how many
 * recipients, or -1. */
int64_t spool_recover_interrupted(struct spool *s, int64_t now_ms, char *why, size_t whylen);

/* Deletes messages done before the given time with their recipients and
 * delivery log. Returns the number of rows deleted, or -1. */
int64_t spool_cleanup(struct spool *s, int64_t done_before_ms, char *why, size_t whylen);

/* Counts of recipients per state (index enum rcpt_state). */
int spool_count_states(struct spool *s, int64_t counts[5]);

/* The queue as DESIGN.md §5 prints it: messages that still have a recipient
 * queued, held or deferred, matching f. Caller owns the array. */
json_t *spool_list_json(struct spool *s, const struct spool_filter *f, char *why, size_t whylen);

/* One message with more fields; NULL when unknown (why says so). */
json_t *spool_show_json(struct spool *s, uint64_t id, char *why, size_t whylen);

/* The stored message; caller frees *body. Returns 0, or -1 when unknown. */
int spool_message_body(struct spool *s, uint64_t id, char **body, size_t *len, char *why,
                       size_t whylen);

/* PRAGMA integrity_check plus the spool's own invariants. Returns the number
 * of problems; each is passed to fn. */
int spool_check(struct spool *s, void (*fn)(const char *problem, void *arg), void *arg);

#endif
