/* spool.c - SQLite schema, migrations and queries of the queue. */
#include "spool/spool.h"

#include "util/timeutil.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

/* Each entry upgrades the schema by one version (PRAGMA user_version). An
 * entry is never edited once released: a change is a new entry. */
static const char *const migrations[] = {
    /* 1: messages, recipients, bodies */
    "CREATE TABLE messages ("
    "  id INTEGER PRIMARY KEY,"
    "  sender TEXT NOT NULL,"
    "  size INTEGER NOT NULL,"
    "  queued INTEGER NOT NULL,"
    "  flags INTEGER NOT NULL,"
    "  auth_user TEXT,"
    "  client TEXT);"
    "CREATE TABLE recipients ("
    "  id INTEGER PRIMARY KEY,"
    "  msg_id INTEGER NOT NULL,"
    "  address TEXT NOT NULL,"
    "  domain TEXT NOT NULL,"
    "  state INTEGER NOT NULL,"
    "  held_from INTEGER,"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  next_attempt INTEGER NOT NULL,"
    "  last_attempt INTEGER,"
    "  last_error TEXT);"
    "CREATE INDEX recipients_by_msg ON recipients(msg_id);"
    "CREATE INDEX recipients_due ON recipients(next_attempt) WHERE state IN (0, 2);"
    "CREATE TABLE bodies (msg_id INTEGER PRIMARY KEY, data BLOB NOT NULL);",
    /* 2: the delivery log, dialed addresses, finished messages */
    "ALTER TABLE messages ADD COLUMN done_at INTEGER;"
    "CREATE INDEX messages_done ON messages(done_at) WHERE done_at IS NOT NULL;"
    "CREATE TABLE attempt_log ("
    "  id INTEGER PRIMARY KEY,"
    "  msg_id INTEGER NOT NULL,"
    "  rcpt_id INTEGER NOT NULL,"
    "  started INTEGER NOT NULL,"
    "  duration_ms INTEGER NOT NULL,"
    "  mx TEXT, ip TEXT, tls TEXT,"
    "  result INTEGER NOT NULL,"
    "  reply TEXT);"
    "CREATE INDEX attempt_log_by_msg ON attempt_log(msg_id);"
    "CREATE TABLE dialed ("
    "  msg_id INTEGER NOT NULL,"
    "  host TEXT NOT NULL,"
    "  ips TEXT NOT NULL,"
    "  PRIMARY KEY (msg_id, host));",
    /* 3: attempts in flight, so that a restart retries what a crash cut */
    "ALTER TABLE recipients ADD COLUMN in_flight INTEGER NOT NULL DEFAULT 0;",
};
#define SCHEMA_VERSION ((int)(sizeof migrations / sizeof migrations[0]))

enum stmt_id {
	ST_INSERT_MSG,
	ST_INSERT_RCPT,
	ST_INSERT_BODY,
	ST_ATTEMPT_BEGIN,
	ST_ATTEMPT_END,
	ST_DUE,
	ST_NEXT_DUE,
	ST_ENVELOPE,
	ST_LOG_ATTEMPT,
	ST_DIALED_GET,
	ST_DIALED_PUT,
	ST_PENDING,
	ST_MARK_DONE,
	ST_DROP_BODY,
	ST_DROP_DIALED,
	ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
    [ST_INSERT_MSG] = "INSERT INTO messages (id, sender, size, queued, flags, auth_user, "
                      "client) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [ST_INSERT_RCPT] = "INSERT INTO recipients (msg_id, address, domain, state, "
                       "next_attempt) VALUES (?1, ?2, ?3, 0, ?4)",
    [ST_INSERT_BODY] = "INSERT INTO bodies (msg_id, data) VALUES (?1, ?2)",
    [ST_ATTEMPT_BEGIN] = "UPDATE recipients SET attempts = attempts + 1, last_attempt = ?2, "
                         "next_attempt = ?3, state = 2, in_flight = 1 "
                         "WHERE id = ?1 AND state IN (0, 2)",
    /* held or dropped meanwhile: the admin's word stands */
    [ST_ATTEMPT_END] = "UPDATE recipients SET "
                       "state = CASE WHEN state = 2 THEN ?2 ELSE state END, "
                       "last_error = CASE WHEN state = 2 THEN ?3 ELSE last_error END, "
                       "in_flight = 0 WHERE id = ?1",
    [ST_DUE] = "SELECT id, msg_id, attempts, domain, address FROM recipients "
               "WHERE state IN (0, 2) AND next_attempt <= ?1 ORDER BY next_attempt LIMIT ?2",
    [ST_NEXT_DUE] = "SELECT min(next_attempt) FROM recipients WHERE state IN (0, 2)",
    [ST_ENVELOPE] = "SELECT sender, flags, queued, size FROM messages WHERE id = ?1",
    [ST_LOG_ATTEMPT] = "INSERT INTO attempt_log (msg_id, rcpt_id, started, duration_ms, mx, "
                       "ip, tls, result, reply) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    [ST_DIALED_GET] = "SELECT ips FROM dialed WHERE msg_id = ?1 AND host = ?2",
    [ST_DIALED_PUT] = "INSERT OR REPLACE INTO dialed (msg_id, host, ips) VALUES (?1, ?2, ?3)",
    [ST_PENDING] = "SELECT count(*) FROM recipients WHERE msg_id = ?1 AND state IN (0, 1, 2)",
    [ST_MARK_DONE] = "UPDATE messages SET done_at = ?2 WHERE id = ?1",
    [ST_DROP_BODY] = "DELETE FROM bodies WHERE msg_id = ?1",
    [ST_DROP_DIALED] = "DELETE FROM dialed WHERE msg_id = ?1",
};

struct spool {
	sqlite3 *db;
	sqlite3_stmt *stmt[ST_COUNT];
};

static const char *const state_names[] = {"queued", "held", "deferred", "delivered", "failed"};

const char *rcpt_state_name(enum rcpt_state s)
{
	return (s >= 0 && s <= RCPT_FAILED) ? state_names[s] : "unknown";
}

int rcpt_state_parse(const char *name)
{
	for (int i = 0; i <= RCPT_FAILED; i++)
		if (strcasecmp(name, state_names[i]) == 0)
			return i;
	return -1;
}

static int db_error(struct spool *s, const char *what, char *why, size_t whylen)
{
	snprintf(why, whylen, "spool: %s: %s", what, sqlite3_errmsg(s->db));
	return -1;
}

static int exec(struct spool *s, const char *sql, char *why, size_t whylen)
{
	char *err = NULL;
	if (sqlite3_exec(s->db, sql, NULL, NULL, &err) != SQLITE_OK) {
		snprintf(why, whylen, "spool: %s", err ? err : sqlite3_errmsg(s->db));
		sqlite3_free(err);
		return -1;
	}
	return 0;
}

static int user_version(struct spool *s)
{
	sqlite3_stmt *st;
	int v = -1;
	if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* Applies the missing migrations, each in its own transaction with the
 * version bump, so a crash mid-way leaves a consistent older version. */
static int migrate(struct spool *s, char *why, size_t whylen)
{
	int v = user_version(s);
	if (v < 0)
		return db_error(s, "reading schema version", why, whylen);
	if (v > SCHEMA_VERSION) {
		snprintf(why, whylen, "spool: schema version %d is newer than this outpost (%d)", v,
		         SCHEMA_VERSION);
		return -1;
	}
	for (; v < SCHEMA_VERSION; v++) {
		char bump[64];
		snprintf(bump, sizeof bump, "PRAGMA user_version = %d", v + 1);
		if (exec(s, "BEGIN IMMEDIATE", why, whylen) < 0)
			return -1;
		if (exec(s, migrations[v], why, whylen) < 0 || exec(s, bump, why, whylen) < 0 ||
		    exec(s, "COMMIT", why, whylen) < 0) {
			spool_rollback(s);
			return -1;
		}
	}
	return 0;
}

static int configure(struct spool *s, char *why, size_t whylen)
{
	sqlite3_busy_timeout(s->db, 10000);
	/* WAL + FULL: COMMIT fsyncs the WAL, so a committed message survives a
	 * crash or power loss; readers never block the writer. */
	if (exec(s, "PRAGMA journal_mode = WAL", why, whylen) < 0 ||
	    exec(s, "PRAGMA synchronous = FULL", why, whylen) < 0 ||
	    exec(s, "PRAGMA foreign_keys = OFF", why, whylen) < 0)
		return -1;
	return 0;
}

struct spool *spool_open(const char *data_dir, char *why, size_t whylen)
{
	if (mkdir(data_dir, 0750) < 0 && errno != EEXIST) {
		snprintf(why, whylen, "spool: cannot create %s: %s", data_dir, strerror(errno));
		return NULL;
	}
	char path[4096];
	snprintf(path, sizeof path, "%s/spool.db", data_dir);
	struct spool *s = calloc(1, sizeof *s);
	if (s == NULL)
		abort();
	if (sqlite3_open_v2(path, &s->db,
	                    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
	                    NULL) != SQLITE_OK) {
		db_error(s, path, why, whylen);
		spool_close(s);
		return NULL;
	}
	if (configure(s, why, whylen) < 0 || migrate(s, why, whylen) < 0)
		goto fail;
	for (int i = 0; i < ST_COUNT; i++)
		if (sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
		                       &s->stmt[i], NULL) != SQLITE_OK) {
			db_error(s, "preparing statements", why, whylen);
			goto fail;
		}
	return s;
fail:
	spool_close(s);
	return NULL;
}

void spool_close(struct spool *s)
{
	if (s == NULL)
		return;
	for (int i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(s->stmt[i]);
	sqlite3_close(s->db);
	free(s);
}

int spool_begin(struct spool *s, char *why, size_t whylen)
{
	return exec(s, "BEGIN IMMEDIATE", why, whylen);
}

int spool_commit(struct spool *s, char *why, size_t whylen)
{
	return exec(s, "COMMIT", why, whylen);
}

void spool_rollback(struct spool *s)
{
	sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

int spool_savepoint(struct spool *s, char *why, size_t whylen)
{
	return exec(s, "SAVEPOINT job", why, whylen);
}

void spool_savepoint_release(struct spool *s, bool keep)
{
	if (!keep)
		sqlite3_exec(s->db, "ROLLBACK TO job", NULL, NULL, NULL);
	sqlite3_exec(s->db, "RELEASE job", NULL, NULL, NULL);
}

uint64_t spool_new_id(void)
{
	/* 44 bits of milliseconds, then 20 bits: a per-process random start
	 * and a counter, so ids sort by time and two processes (the daemon and
	 * `outpost send`) practically never collide; a collision fails the
	 * insert cleanly (primary key), it never overwrites. */
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	static uint32_t counter;
	static bool seeded;
	pthread_mutex_lock(&lock);
	if (!seeded) {
		if (getrandom(&counter, sizeof counter, 0) != sizeof counter)
			counter = (uint32_t)getpid() * 2654435761u;
		seeded = true;
	}
	uint64_t low = counter++ & 0xfffff;
	pthread_mutex_unlock(&lock);
	uint64_t ms = (uint64_t)time_now_ms() & ((UINT64_C(1) << 43) - 1);
	return (ms << 20) | low;
}

void spool_id_format(uint64_t id, char buf[17])
{
	snprintf(buf, 17, "%016llX", (unsigned long long)id);
}

bool spool_id_parse(const char *s, uint64_t *id)
{
	size_t n = strlen(s);
	if (n == 0 || n > 16)
		return false;
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		int c = toupper((unsigned char)s[i]), d;
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else
			return false;
		v = v << 4 | (uint64_t)d;
	}
	*id = v;
	return true;
}

static int step_done(struct spool *s, sqlite3_stmt *st, const char *what, char *why, size_t whylen)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_DONE)
		return db_error(s, what, why, whylen);
	return 0;
}

static void text_or_null(sqlite3_stmt *st, int i, const char *v)
{
	if (v)
		sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, i);
}

/* Domain of an address, lower-cased for grouping ("" for postmaster). */
static void rcpt_domain(const char *addr, char *out, size_t n)
{
	const char *at = strrchr(addr, '@');
	size_t o = 0;
	for (const char *p = at ? at + 1 : ""; *p && o < n - 1; p++)
		out[o++] = (char)tolower((unsigned char)*p);
	out[o] = '\0';
}

int spool_insert_message(struct spool *s, const struct spool_message_in *m, char *why,
                         size_t whylen)
{
	sqlite3_stmt *st = s->stmt[ST_INSERT_MSG];
	sqlite3_bind_int64(st, 1, (sqlite3_int64)m->id);
	sqlite3_bind_text(st, 2, m->sender, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)m->body_len);
	sqlite3_bind_int64(st, 4, m->queued_ms);
	sqlite3_bind_int(st, 5, (int)m->flags);
	text_or_null(st, 6, m->auth_user);
	text_or_null(st, 7, m->client);
	if (step_done(s, st, "inserting message", why, whylen) < 0)
		return -1;
	st = s->stmt[ST_INSERT_RCPT];
	for (size_t i = 0; i < m->nrcpt; i++) {
		char domain[256];
		rcpt_domain(m->rcpts[i], domain, sizeof domain);
		sqlite3_bind_int64(st, 1, (sqlite3_int64)m->id);
		sqlite3_bind_text(st, 2, m->rcpts[i], -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, domain, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(st, 4, m->queued_ms);
		if (step_done(s, st, "inserting recipient", why, whylen) < 0)
			return -1;
	}
	st = s->stmt[ST_INSERT_BODY];
	sqlite3_bind_int64(st, 1, (sqlite3_int64)m->id);
	sqlite3_bind_blob64(st, 2, m->body, m->body_len, SQLITE_STATIC);
	return step_done(s, st, "inserting body", why, whylen);
}

/* Appends the filter's conditions on recipients "r" to sql. */
static void filter_where(const struct spool_filter *f, char *sql, size_t n)
{
	size_t o = strlen(sql);
	if (f->nids > 0) {
		o += (size_t)snprintf(sql + o, n - o, " AND r.msg_id IN (");
		for (size_t i = 0; i < f->nids && o + 2 < n; i++)
			o += (size_t)snprintf(sql + o, n - o, i ? ",?" : "?");
		if (o + 1 < n)
			o += (size_t)snprintf(sql + o, n - o, ")");
	}
	if (o >= n) /* never: callers size sql for the filter */
		abort();
	if (f->domain && o < n)
		o += (size_t)snprintf(sql + o, n - o, " AND r.domain = lower(?)");
	if (f->recipient && o < n)
		o += (size_t)snprintf(sql + o, n - o, " AND r.address = ? COLLATE NOCASE");
	if (f->state >= 0 && o < n)
		snprintf(sql + o, n - o, " AND r.state = ?");
}

/* Binds the filter's values from index *i on, in filter_where's order. */
static void filter_bind(const struct spool_filter *f, sqlite3_stmt *st, int *i)
{
	for (size_t k = 0; k < f->nids; k++)
		sqlite3_bind_int64(st, (*i)++, (sqlite3_int64)f->ids[k]);
	if (f->domain)
		sqlite3_bind_text(st, (*i)++, f->domain, -1, SQLITE_STATIC);
	if (f->recipient)
		sqlite3_bind_text(st, (*i)++, f->recipient, -1, SQLITE_STATIC);
	if (f->state >= 0)
		sqlite3_bind_int(st, (*i)++, f->state);
}

static bool filter_empty(const struct spool_filter *f)
{
	return f->nids == 0 && !f->domain && !f->recipient && f->state < 0;
}

static sqlite3_stmt *prepare_filtered(struct spool *s, const char *head, const char *tail,
                                      const struct spool_filter *f, int *next_bind, char *why,
                                      size_t whylen)
{
	size_t n = strlen(head) + strlen(tail) + 128 + f->nids * 2;
	char *sql = malloc(n);
	if (sql == NULL)
		abort();
	snprintf(sql, n, "%s", head);
	filter_where(f, sql, n);
	strncat(sql, tail, n - strlen(sql) - 1);
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
		db_error(s, "preparing query", why, whylen);
		st = NULL;
	}
	free(sql);
	*next_bind = 1;
	return st;
}

static int64_t run_update(struct spool *s, sqlite3_stmt *st, char *why, size_t whylen)
{
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_error(s, "updating recipients", why, whylen);
	return sqlite3_changes64(s->db);
}

int64_t spool_apply(struct spool *s, enum spool_action a, const struct spool_filter *f,
                    int64_t now_ms, char *why, size_t whylen)
{
	if (filter_empty(f) && !f->all) {
		snprintf(why, whylen,
		         "no message selected (give ids, a domain, a recipient or all)");
		return -1;
	}
	static const char *const heads[] = {
	    [SPOOL_HOLD] = "UPDATE recipients AS r SET held_from = state, state = 1 "
	                   "WHERE state IN (0, 2)",
	    [SPOOL_RELEASE] = "UPDATE recipients AS r SET state = coalesce(held_from, 0), "
	                      "held_from = NULL WHERE state = 1",
	    [SPOOL_KICK] = "UPDATE recipients AS r SET next_attempt = ?1 WHERE state IN (0, 2)",
	    [SPOOL_DROP] = "DELETE FROM recipients AS r WHERE 1",
	};
	int i;
	sqlite3_stmt *st = prepare_filtered(s, heads[a], "", f, &i, why, whylen);
	if (st == NULL)
		return -1;
	if (a == SPOOL_KICK)
		sqlite3_bind_int64(st, i++, now_ms);
	filter_bind(f, st, &i);
	int64_t n = run_update(s, st, why, whylen);
	if (n < 0 || a != SPOOL_DROP)
		return n;
	/* A message without recipients is gone, with its body and log; one
	 * left with only final recipients is done. */
	char sql[1024];
	snprintf(sql, sizeof sql,
	         "DELETE FROM messages WHERE id NOT IN (SELECT msg_id FROM recipients);"
	         "DELETE FROM attempt_log WHERE msg_id NOT IN (SELECT id FROM messages);"
	         "UPDATE messages SET done_at = %lld WHERE done_at IS NULL AND id NOT IN "
	         "(SELECT msg_id FROM recipients WHERE state IN (0, 1, 2));"
	         "DELETE FROM bodies WHERE msg_id NOT IN "
	         "(SELECT id FROM messages WHERE done_at IS NULL);"
	         "DELETE FROM dialed WHERE msg_id NOT IN "
	         "(SELECT id FROM messages WHERE done_at IS NULL);",
	         (long long)now_ms);
	if (exec(s, sql, why, whylen) < 0)
		return -1;
	return n;
}

static int collect_due(struct spool *s, sqlite3_stmt *st, struct spool_due *out, size_t max,
                       char *why, size_t whylen)
{
	int n = 0, rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && (size_t)n < max) {
		struct spool_due *d = &out[n++];
		d->rcpt_id = sqlite3_column_int64(st, 0);
		d->msg_id = (uint64_t)sqlite3_column_int64(st, 1);
		d->attempts = sqlite3_column_int(st, 2);
		snprintf(d->domain, sizeof d->domain, "%s", sqlite3_column_text(st, 3));
		snprintf(d->address, sizeof d->address, "%s", sqlite3_column_text(st, 4));
	}
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return db_error(s, "listing due recipients", why, whylen);
	return n;
}

int spool_due_list(struct spool *s, int64_t now_ms, const char *const *skip, size_t nskip,
                   struct spool_due *out, size_t max, char *why, size_t whylen)
{
	if (nskip == 0) {
		sqlite3_stmt *st = s->stmt[ST_DUE];
		sqlite3_bind_int64(st, 1, now_ms);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)max);
		int n = collect_due(s, st, out, max, why, whylen);
		sqlite3_reset(st);
		return n;
	}
	/* Domains at their connection limit are left out, so that one busy
	 * destination never hides the due work of the others. */
	size_t len = 256 + nskip * 2;
	char *sql = malloc(len);
	if (sql == NULL)
		abort();
	int o = snprintf(sql, len,
	                 "SELECT id, msg_id, attempts, domain, address FROM recipients "
	                 "WHERE state IN (0, 2) AND next_attempt <= ?1 AND domain NOT IN (");
	for (size_t i = 0; i < nskip; i++)
		o += snprintf(sql + o, len - (size_t)o, i ? ",?" : "?");
	snprintf(sql + o, len - (size_t)o, ") ORDER BY next_attempt LIMIT ?2");
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
	free(sql);
	if (rc != SQLITE_OK)
		return db_error(s, "preparing due query", why, whylen);
	sqlite3_bind_int64(st, 1, now_ms);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)max);
	for (size_t i = 0; i < nskip; i++)
		sqlite3_bind_text(st, (int)i + 3, skip[i], -1, SQLITE_STATIC);
	int n = collect_due(s, st, out, max, why, whylen);
	sqlite3_finalize(st);
	return n;
}

int64_t spool_next_due(struct spool *s)
{
	sqlite3_stmt *st = s->stmt[ST_NEXT_DUE];
	int64_t t = -1;
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
		t = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return t;
}

int spool_attempt_begin(struct spool *s, int64_t rcpt_id, int64_t now_ms, int64_t backoff_ms,
                        char *why, size_t whylen)
{
	sqlite3_stmt *st = s->stmt[ST_ATTEMPT_BEGIN];
	sqlite3_bind_int64(st, 1, rcpt_id);
	sqlite3_bind_int64(st, 2, now_ms);
	sqlite3_bind_int64(st, 3, now_ms + backoff_ms);
	if (step_done(s, st, "recording attempt", why, whylen) < 0)
		return -1;
	return sqlite3_changes(s->db);
}

int spool_attempt_end(struct spool *s, int64_t rcpt_id, enum rcpt_state state,
                      const char *last_error, char *why, size_t whylen)
{
	sqlite3_stmt *st = s->stmt[ST_ATTEMPT_END];
	sqlite3_bind_int64(st, 1, rcpt_id);
	sqlite3_bind_int(st, 2, state);
	text_or_null(st, 3, last_error);
	return step_done(s, st, "recording outcome", why, whylen);
}

int spool_count_states(struct spool *s, int64_t counts[5])
{
	sqlite3_stmt *st;
	memset(counts, 0, 5 * sizeof counts[0]);
	if (sqlite3_prepare_v2(s->db, "SELECT state, count(*) FROM recipients GROUP BY state", -1,
	                       &st, NULL) != SQLITE_OK)
		return -1;
	while (sqlite3_step(st) == SQLITE_ROW) {
		int state = sqlite3_column_int(st, 0);
		if (state >= 0 && state <= RCPT_FAILED)
			counts[state] = sqlite3_column_int64(st, 1);
	}
	sqlite3_finalize(st);
	return 0;
}

static json_t *json_time_or_null(sqlite3_stmt *st, int col)
{
	if (sqlite3_column_type(st, col) == SQLITE_NULL)
		return json_null();
	char buf[32];
	time_format_rfc3339(sqlite3_column_int64(st, col), buf, sizeof buf);
	return json_string(buf);
}

static json_t *json_text_or_null(sqlite3_stmt *st, int col)
{
	const unsigned char *t = sqlite3_column_text(st, col);
	return t ? json_string((const char *)t) : json_null();
}

/* Columns shared by list and show. */
#define MSG_COLUMNS                                                                                \
	"SELECT m.id, m.sender, m.size, m.queued, m.flags, m.auth_user, m.client, r.address, "     \
	"r.state, r.attempts, r.next_attempt, r.last_error, r.last_attempt "                       \
	"FROM messages m JOIN recipients r ON r.msg_id = m.id "

static json_t *attempt_history(struct spool *s, uint64_t id);

static json_t *message_object(sqlite3_stmt *st, bool detailed)
{
	char id[17], queued[32];
	spool_id_format((uint64_t)sqlite3_column_int64(st, 0), id);
	time_format_rfc3339(sqlite3_column_int64(st, 3), queued, sizeof queued);
	json_t *m =
	    json_pack("{s:s, s:s, s:I, s:s, s:[]}", "id", id, "sender",
	              (const char *)sqlite3_column_text(st, 1), "size",
	              (json_int_t)sqlite3_column_int64(st, 2), "queued", queued, "recipients");
	if (detailed) {
		int flags = sqlite3_column_int(st, 4);
		json_object_set_new(m, "requiretls", json_boolean(flags & SPOOL_F_REQUIRETLS));
		json_object_set_new(m, "tls_required_no",
		                    json_boolean(flags & SPOOL_F_TLS_REQUIRED_NO));
		json_object_set_new(m, "eightbit", json_boolean(flags & SPOOL_F_8BIT));
		json_object_set_new(m, "smtputf8", json_boolean(flags & SPOOL_F_SMTPUTF8));
		json_object_set_new(m, "auth_user", json_text_or_null(st, 5));
		json_object_set_new(m, "client", json_text_or_null(st, 6));
	}
	return m;
}

static json_t *recipient_object(sqlite3_stmt *st, bool detailed)
{
	int state = sqlite3_column_int(st, 8);
	bool pending = state == RCPT_QUEUED || state == RCPT_DEFERRED || state == RCPT_HELD;
	json_t *r =
	    json_pack("{s:s, s:s, s:i}", "address", (const char *)sqlite3_column_text(st, 7),
	              "state", rcpt_state_name(state), "attempts", sqlite3_column_int(st, 9));
	json_object_set_new(r, "next_attempt", pending ? json_time_or_null(st, 10) : json_null());
	const unsigned char *err = sqlite3_column_text(st, 11);
	json_object_set_new(r, "last_error", json_string(err ? (const char *)err : ""));
	if (detailed)
		json_object_set_new(r, "last_attempt", json_time_or_null(st, 12));
	return r;
}

/* Groups the joined rows (ordered by message) into message objects. */
static json_t *collect_messages(struct spool *s, sqlite3_stmt *st, bool detailed, char *why,
                                size_t whylen)
{
	json_t *list = json_array();
	json_t *cur = NULL;
	sqlite3_int64 cur_id = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		sqlite3_int64 id = sqlite3_column_int64(st, 0);
		if (cur == NULL || id != cur_id) {
			cur = message_object(st, detailed);
			cur_id = id;
			json_array_append_new(list, cur);
		}
		json_array_append_new(json_object_get(cur, "recipients"),
		                      recipient_object(st, detailed));
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		json_decref(list);
		db_error(s, "listing the queue", why, whylen);
		return NULL;
	}
	return list;
}

json_t *spool_list_json(struct spool *s, const struct spool_filter *f, char *why, size_t whylen)
{
	const char *head = f->state >= 0
	                       ? "SELECT r.msg_id FROM recipients r WHERE 1"
	                       : "SELECT r.msg_id FROM recipients r WHERE r.state IN (0, 1, 2)";
	size_t sublen = strlen(head) + 256 + f->nids * 2;
	char *sub = malloc(sublen);
	if (sub == NULL)
		abort();
	snprintf(sub, sublen, "%s", head);
	filter_where(f, sub, sublen);
	size_t n = strlen(MSG_COLUMNS) + 64 + strlen(sub);
	char *sql = malloc(n);
	if (sql == NULL)
		abort();
	snprintf(sql, n, MSG_COLUMNS "WHERE m.id IN (%s) ORDER BY m.id, r.id", sub);
	free(sub);
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
	free(sql);
	if (rc != SQLITE_OK) {
		db_error(s, "preparing the queue listing", why, whylen);
		return NULL;
	}
	int i = 1;
	filter_bind(f, st, &i);
	return collect_messages(s, st, false, why, whylen);
}

json_t *spool_show_json(struct spool *s, uint64_t id, char *why, size_t whylen)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db, MSG_COLUMNS "WHERE m.id = ?1 ORDER BY r.id", -1, &st, NULL) !=
	    SQLITE_OK) {
		db_error(s, "preparing show", why, whylen);
		return NULL;
	}
	sqlite3_bind_int64(st, 1, (sqlite3_int64)id);
	json_t *list = collect_messages(s, st, true, why, whylen);
	if (list == NULL)
		return NULL;
	json_t *m = json_incref(json_array_get(list, 0));
	json_decref(list);
	if (m == NULL) {
		snprintf(why, whylen, "no message with that id");
		return NULL;
	}
	json_object_set_new(m, "attempts", attempt_history(s, id));
	return m;
}

int spool_message_body(struct spool *s, uint64_t id, char **body, size_t *len, char *why,
                       size_t whylen)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db, "SELECT data FROM bodies WHERE msg_id = ?1", -1, &st, NULL) !=
	    SQLITE_OK)
		return db_error(s, "preparing body read", why, whylen);
	sqlite3_bind_int64(st, 1, (sqlite3_int64)id);
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		sqlite3_finalize(st);
		if (rc == SQLITE_DONE)
			return snprintf(why, whylen, "no message with that id"), -1;
		return db_error(s, "reading body", why, whylen);
	}
	*len = (size_t)sqlite3_column_bytes(st, 0);
	*body = malloc(*len + 1);
	if (*body == NULL)
		abort();
	if (*len)
		memcpy(*body, sqlite3_column_blob(st, 0), *len);
	(*body)[*len] = '\0';
	sqlite3_finalize(st);
	return 0;
}

static int check_query(struct spool *s, const char *sql, const char *problem,
                       void (*fn)(const char *, void *), void *arg)
{
	sqlite3_stmt *st;
	int n = 0;
	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
		fn(sqlite3_errmsg(s->db), arg);
		return 1;
	}
	while (sqlite3_step(st) == SQLITE_ROW) {
		char line[512];
		snprintf(line, sizeof line, "%s: %s", problem,
		         (const char *)sqlite3_column_text(st, 0));
		fn(line, arg);
		n++;
	}
	sqlite3_finalize(st);
	return n;
}

int spool_check(struct spool *s, void (*fn)(const char *problem, void *arg), void *arg)
{
	sqlite3_stmt *st;
	int n = 0;
	if (sqlite3_prepare_v2(s->db, "PRAGMA integrity_check", -1, &st, NULL) == SQLITE_OK) {
		while (sqlite3_step(st) == SQLITE_ROW) {
			const char *r = (const char *)sqlite3_column_text(st, 0);
			if (strcmp(r, "ok") != 0) {
				fn(r, arg);
				n++;
			}
		}
		sqlite3_finalize(st);
	}
	n += check_query(s,
	                 "SELECT printf('%X', id) FROM messages WHERE id NOT IN "
	                 "(SELECT msg_id FROM bodies)",
	                 "message without body", fn, arg);
	n += check_query(s,
	                 "SELECT printf('%X', id) FROM messages WHERE id NOT IN "
	                 "(SELECT msg_id FROM recipients)",
	                 "message without recipients", fn, arg);
	n += check_query(s,
	                 "SELECT printf('%X', msg_id) FROM recipients WHERE msg_id NOT IN "
	                 "(SELECT id FROM messages)",
	                 "recipient without message", fn, arg);
	return n;
}

int spool_load_envelope(struct spool *s, uint64_t id, struct spool_envelope *e, char *why,
                        size_t whylen)
{
	sqlite3_stmt *st = s->stmt[ST_ENVELOPE];
	sqlite3_bind_int64(st, 1, (sqlite3_int64)id);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		e->id = id;
		snprintf(e->sender, sizeof e->sender, "%s", sqlite3_column_text(st, 0));
		e->flags = (unsigned)sqlite3_column_int(st, 1);
		e->queued_ms = sqlite3_column_int64(st, 2);
		e->size = (size_t)sqlite3_column_int64(st, 3);
	}
	sqlite3_reset(st);
	if (rc == SQLITE_ROW)
		return 0;
	if (rc == SQLITE_DONE)
		return snprintf(why, whylen, "no message with that id"), -1;
	return db_error(s, "reading envelope", why, whylen);
}

int spool_log_attempt(struct spool *s, const struct spool_attempt_log *l, char *why, size_t whylen)
{
	sqlite3_stmt *st = s->stmt[ST_LOG_ATTEMPT];
	sqlite3_bind_int64(st, 1, (sqlite3_int64)l->msg_id);
	sqlite3_bind_int64(st, 2, l->rcpt_id);
	sqlite3_bind_int64(st, 3, l->started_ms);
	sqlite3_bind_int64(st, 4, l->duration_ms);
	text_or_null(st, 5, l->mx);
	text_or_null(st, 6, l->ip);
	text_or_null(st, 7, l->tls);
	sqlite3_bind_int(st, 8, l->result);
	text_or_null(st, 9, l->reply);
	return step_done(s, st, "logging attempt", why, whylen);
}

int spool_dialed_get(struct spool *s, uint64_t msg_id, const char *host, char *ips, size_t n)
{
	sqlite3_stmt *st = s->stmt[ST_DIALED_GET];
	sqlite3_bind_int64(st, 1, (sqlite3_int64)msg_id);
	sqlite3_bind_text(st, 2, host, -1, SQLITE_STATIC);
	ips[0] = '\0';
	if (sqlite3_step(st) == SQLITE_ROW)
		snprintf(ips, n, "%s", sqlite3_column_text(st, 0));
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return 0;
}

int spool_dialed_put(struct spool *s, uint64_t msg_id, const char *host, const char *ips, char *why,
                     size_t whylen)
{
	sqlite3_stmt *st = s->stmt[ST_DIALED_PUT];
	sqlite3_bind_int64(st, 1, (sqlite3_int64)msg_id);
	sqlite3_bind_text(st, 2, host, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, ips, -1, SQLITE_STATIC);
	return step_done(s, st, "saving dialed addresses", why, whylen);
}

static int64_t single_int(struct spool *s, sqlite3_stmt *st)
{
	int64_t v = -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return v;
}

int spool_finish_if_done(struct spool *s, uint64_t msg_id, int64_t now_ms, char *why, size_t whylen)
{
	sqlite3_bind_int64(s->stmt[ST_PENDING], 1, (sqlite3_int64)msg_id);
	int64_t pending = single_int(s, s->stmt[ST_PENDING]);
	if (pending < 0)
		return db_error(s, "counting pending recipients", why, whylen);
	if (pending > 0)
		return 0;
	/* Done: the body and the address memory go now; the envelope and the
	 * delivery log stay for delivery.log_retention (spool_cleanup). */
	sqlite3_stmt *st = s->stmt[ST_MARK_DONE];
	sqlite3_bind_int64(st, 1, (sqlite3_int64)msg_id);
	sqlite3_bind_int64(st, 2, now_ms);
	if (step_done(s, st, "marking message done", why, whylen) < 0)
		return -1;
	sqlite3_bind_int64(s->stmt[ST_DROP_BODY], 1, (sqlite3_int64)msg_id);
	if (step_done(s, s->stmt[ST_DROP_BODY], "dropping body", why, whylen) < 0)
		return -1;
	sqlite3_bind_int64(s->stmt[ST_DROP_DIALED], 1, (sqlite3_int64)msg_id);
	if (step_done(s, s->stmt[ST_DROP_DIALED], "dropping dialed", why, whylen) < 0)
		return -1;
	return 1;
}

int64_t spool_recover_interrupted(struct spool *s, int64_t now_ms, char *why, size_t whylen)
{
	char sql[256];
	snprintf(sql, sizeof sql,
	         "UPDATE recipients SET in_flight = 0, next_attempt = min(next_attempt, %lld) "
	         "WHERE in_flight = 1",
	         (long long)now_ms);
	if (spool_begin(s, why, whylen) < 0)
		return -1;
	if (exec(s, sql, why, whylen) < 0) {
		spool_rollback(s);
		return -1;
	}
	int64_t n = sqlite3_changes64(s->db);
	return spool_commit(s, why, whylen) < 0 ? -1 : n;
}

int64_t spool_cleanup(struct spool *s, int64_t done_before_ms, char *why, size_t whylen)
{
	char sql[512];
	snprintf(sql, sizeof sql,
	         "CREATE TEMP TABLE IF NOT EXISTS expired (id INTEGER PRIMARY KEY);"
	         "DELETE FROM expired;"
	         "INSERT INTO expired SELECT id FROM messages WHERE done_at IS NOT NULL AND "
	         "done_at < %lld;"
	         "DELETE FROM attempt_log WHERE msg_id IN (SELECT id FROM expired);"
	         "DELETE FROM recipients WHERE msg_id IN (SELECT id FROM expired);"
	         "DELETE FROM messages WHERE id IN (SELECT id FROM expired);",
	         (long long)done_before_ms);
	if (exec(s, sql, why, whylen) < 0)
		return -1;
	return sqlite3_changes64(s->db);
}

/* The delivery log of one message, oldest first, for queue show. */
static json_t *attempt_history(struct spool *s, uint64_t id)
{
	static const char *const results[] = {"delivered", "deferred", "failed"};
	json_t *list = json_array();
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db,
	                       "SELECT r.address, a.started, a.duration_ms, a.mx, a.ip, a.tls, "
	                       "a.result, a.reply FROM attempt_log a JOIN recipients r ON r.id = "
	                       "a.rcpt_id WHERE a.msg_id = ?1 ORDER BY a.id",
	                       -1, &st, NULL) != SQLITE_OK)
		return list;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)id);
	while (sqlite3_step(st) == SQLITE_ROW) {
		int r = sqlite3_column_int(st, 6);
		json_t *a = json_object();
		json_object_set_new(a, "recipient", json_text_or_null(st, 0));
		json_object_set_new(a, "time", json_time_or_null(st, 1));
		json_object_set_new(a, "duration_ms", json_integer(sqlite3_column_int64(st, 2)));
		json_object_set_new(a, "mx", json_text_or_null(st, 3));
		json_object_set_new(a, "ip", json_text_or_null(st, 4));
		json_object_set_new(a, "tls", json_text_or_null(st, 5));
		json_object_set_new(a, "result", json_string(r >= 0 && r <= 2 ? results[r] : "?"));
		json_object_set_new(a, "reply", json_text_or_null(st, 7));
		json_array_append_new(list, a);
	}
	sqlite3_finalize(st);
	return list;
}
