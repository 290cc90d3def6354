/* spool.c - SQLite schema, migrations and queries of the queue. */
#include "spool/spool.h"

#include "spool/internal.h"

#include "util/timeutil.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
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
    /* 4: recipient ids never reused (AUTOINCREMENT); drops that wait for
     * the attempt in flight; notices pending per recipient, with what a DSN
     * says about them; due work excludes recipients in flight; a page to
     * probe with after a failed write */
    "CREATE TABLE recipients4 ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  msg_id INTEGER NOT NULL,"
    "  address TEXT NOT NULL,"
    "  domain TEXT NOT NULL,"
    "  state INTEGER NOT NULL,"
    "  held_from INTEGER,"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  next_attempt INTEGER NOT NULL,"
    "  last_attempt INTEGER,"
    "  last_error TEXT,"
    "  in_flight INTEGER NOT NULL DEFAULT 0,"
    "  drop_requested INTEGER NOT NULL DEFAULT 0,"
    "  notice INTEGER NOT NULL DEFAULT 0,"
    "  last_status TEXT, last_mx TEXT, last_ip TEXT, last_diagnostic TEXT);"
    "INSERT INTO recipients4 (id, msg_id, address, domain, state, held_from, attempts,"
    "  next_attempt, last_attempt, last_error, in_flight)"
    "  SELECT id, msg_id, address, domain, state, held_from, attempts, next_attempt,"
    "  last_attempt, last_error, in_flight FROM recipients;"
    "DROP TABLE recipients;"
    "ALTER TABLE recipients4 RENAME TO recipients;"
    "CREATE INDEX recipients_by_msg ON recipients(msg_id);"
    "CREATE INDEX recipients_due ON recipients(next_attempt)"
    "  WHERE state IN (0, 2) AND in_flight = 0;"
    "CREATE INDEX recipients_noticed ON recipients(msg_id) WHERE notice != 0;"
    "CREATE TABLE probe (id INTEGER PRIMARY KEY, at INTEGER NOT NULL);",
    /* 5: transport security: how each attempt's TLS went, the MTA-STS
     * policy cache (sts_rows.c), TLS results by day (tls_rows.c) */
    "ALTER TABLE attempt_log ADD COLUMN tls_policy TEXT;"
    "ALTER TABLE attempt_log ADD COLUMN tls_verified TEXT;"
    "ALTER TABLE attempt_log ADD COLUMN tls_detail TEXT;"
    "CREATE TABLE mtasts_policies ("
    "  domain TEXT PRIMARY KEY,"
    "  record_id TEXT NOT NULL,"
    "  policy TEXT NOT NULL,"
    "  backoff INTEGER NOT NULL,"
    "  fetched INTEGER NOT NULL,"
    "  valid_until INTEGER NOT NULL,"
    "  last_use INTEGER NOT NULL);"
    "CREATE TABLE tls_results ("
    "  id INTEGER PRIMARY KEY,"
    "  day TEXT NOT NULL,"
    "  policy_domain TEXT NOT NULL,"
    "  policy_type TEXT NOT NULL,"
    "  policy_strings TEXT NOT NULL,"
    "  mx_hosts TEXT NOT NULL,"
    "  success INTEGER NOT NULL DEFAULT 0,"
    "  failure INTEGER NOT NULL DEFAULT 0,"
    "  UNIQUE (day, policy_domain, policy_type, policy_strings, mx_hosts));"
    "CREATE TABLE tls_failures ("
    "  result_id INTEGER NOT NULL,"
    "  result_type TEXT NOT NULL,"
    "  sending_ip TEXT NOT NULL,"
    "  receiving_mx TEXT NOT NULL,"
    "  receiving_ip TEXT NOT NULL,"
    "  reason TEXT NOT NULL,"
    "  count INTEGER NOT NULL,"
    "  PRIMARY KEY (result_id, result_type, sending_ip, receiving_mx, receiving_ip, reason))"
    "  WITHOUT ROWID;",
    /* 6: daily TLS reports: which results may make one (not those of
     * delivering reports), which (day, policy domain) reports are done,
     * and reports waiting to be POSTed to https: destinations */
    "CREATE TABLE tls_results6 ("
    "  id INTEGER PRIMARY KEY,"
    "  day TEXT NOT NULL,"
    "  policy_domain TEXT NOT NULL,"
    "  policy_type TEXT NOT NULL,"
    "  policy_strings TEXT NOT NULL,"
    "  mx_hosts TEXT NOT NULL,"
    "  reportable INTEGER NOT NULL,"
    "  success INTEGER NOT NULL DEFAULT 0,"
    "  failure INTEGER NOT NULL DEFAULT 0,"
    "  UNIQUE (day, policy_domain, policy_type, policy_strings, mx_hosts, reportable));"
    "INSERT INTO tls_results6 (id, day, policy_domain, policy_type, policy_strings, mx_hosts,"
    "  reportable, success, failure) SELECT id, day, policy_domain, policy_type,"
    "  policy_strings, mx_hosts, 1, success, failure FROM tls_results;"
    "DROP TABLE tls_results;"
    "ALTER TABLE tls_results6 RENAME TO tls_results;"
    "CREATE TABLE tlsrpt_reports ("
    "  day TEXT NOT NULL,"
    "  policy_domain TEXT NOT NULL,"
    "  done_at INTEGER NOT NULL,"
    "  outcome TEXT NOT NULL,"
    "  PRIMARY KEY (day, policy_domain)) WITHOUT ROWID;"
    "CREATE TABLE tlsrpt_posts ("
    "  id INTEGER PRIMARY KEY,"
    "  url TEXT NOT NULL,"
    "  report_id TEXT NOT NULL,"
    "  body BLOB NOT NULL,"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  next_attempt INTEGER NOT NULL,"
    "  last_error TEXT);",
    /* 7: keyset pagination of the API's listings (docs/api.md, "Pages"):
     * messages by (queued, id) and the delivery log by (started, id), the
     * rowid being the last column of every index */
    ("CREATE INDEX messages_by_queued ON messages(queued);"
     "CREATE INDEX attempt_log_by_started ON attempt_log(started);"),
};
#define SCHEMA_VERSION ((int)(sizeof migrations / sizeof migrations[0]))

enum stmt_id {
	ST_INSERT_MSG,
	ST_INSERT_RCPT,
	ST_INSERT_BODY,
	ST_ATTEMPT_BEGIN,
	ST_ATTEMPT_END,
	ST_ATTEMPT_DROP,
	ST_IN_FLIGHT,
	ST_NOTICES,
	ST_NOTICES_CLEAR,
	ST_DUE,
	ST_NEXT_DUE,
	ST_ENVELOPE,
	ST_LOG_ATTEMPT,
	ST_DIALED_GET,
	ST_DIALED_PUT,
	ST_RCPT_COUNTS,
	ST_DROP_MESSAGE,
	ST_DROP_LOG,
	ST_DROP_RECIPIENTS,
	ST_MARK_DONE,
	ST_DROP_BODY,
	ST_DROP_DIALED,
	ST_EXPIRED,
	ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
    [ST_INSERT_MSG] = "INSERT INTO messages (id, sender, size, queued, flags, auth_user, "
                      "client) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [ST_INSERT_RCPT] = "INSERT INTO recipients (msg_id, address, domain, state, "
                       "next_attempt) VALUES (?1, ?2, ?3, 0, ?4)",
    [ST_INSERT_BODY] = "INSERT INTO bodies (msg_id, data) VALUES (?1, ?2)",
    [ST_ATTEMPT_BEGIN] = "UPDATE recipients SET attempts = attempts + 1, last_attempt = ?2, "
                         "next_attempt = ?3, state = 2, in_flight = 1 WHERE id = ?1 AND "
                         "state IN (0, 2) AND in_flight = 0 AND drop_requested = 0",
    /* A final outcome wins over a hold made during the attempt; a deferral
     * leaves the hold in place (held_from already says "deferred"). A
     * delivery takes back a delay notice still waiting. */
    [ST_ATTEMPT_END] = "UPDATE recipients SET "
                       "state = CASE WHEN ?2 IN (3, 4) OR state != 1 THEN ?2 ELSE state END, "
                       "held_from = CASE WHEN ?2 IN (3, 4) THEN NULL ELSE held_from END, "
                       "last_error = ?3, last_status = ?4, last_mx = ?5, last_ip = ?6, "
                       "last_diagnostic = ?7, "
                       "notice = CASE WHEN ?8 > notice THEN ?8 WHEN ?2 = 3 THEN 0 "
                       "ELSE notice END, in_flight = 0 "
                       "WHERE id = ?1 AND in_flight = 1 AND drop_requested = 0",
    [ST_ATTEMPT_DROP] = "DELETE FROM recipients WHERE id = ?1 AND drop_requested = 1",
    [ST_IN_FLIGHT] = "SELECT count(*) FROM recipients WHERE msg_id = ?1 AND in_flight = 1",
    [ST_NOTICES] = "SELECT address, notice, attempts, last_attempt, last_error, last_status, "
                   "last_mx, last_ip, last_diagnostic FROM recipients "
                   "WHERE msg_id = ?1 AND notice != 0 ORDER BY id",
    [ST_NOTICES_CLEAR] = "UPDATE recipients SET notice = 0 WHERE msg_id = ?1 AND notice != 0",
    [ST_DUE] = "SELECT id, msg_id, attempts, domain, address FROM recipients "
               "WHERE state IN (0, 2) AND in_flight = 0 AND next_attempt <= ?1 "
               "ORDER BY next_attempt LIMIT ?2",
    [ST_NEXT_DUE] = "SELECT min(next_attempt) FROM recipients "
                    "WHERE state IN (0, 2) AND in_flight = 0",
    [ST_ENVELOPE] = "SELECT sender, flags, queued, size FROM messages WHERE id = ?1",
    [ST_LOG_ATTEMPT] = "INSERT INTO attempt_log (msg_id, rcpt_id, started, duration_ms, mx, "
                       "ip, tls, result, reply, tls_policy, tls_verified, tls_detail) "
                       "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    [ST_DIALED_GET] = "SELECT ips FROM dialed WHERE msg_id = ?1 AND host = ?2",
    [ST_DIALED_PUT] = "INSERT OR REPLACE INTO dialed (msg_id, host, ips) VALUES (?1, ?2, ?3)",
    [ST_RCPT_COUNTS] = "SELECT count(*), coalesce(sum(state IN (0, 1, 2)), 0) "
                       "FROM recipients WHERE msg_id = ?1",
    [ST_DROP_MESSAGE] = "DELETE FROM messages WHERE id = ?1",
    [ST_DROP_LOG] = "DELETE FROM attempt_log WHERE msg_id = ?1",
    [ST_DROP_RECIPIENTS] = "DELETE FROM recipients WHERE msg_id = ?1",
    [ST_MARK_DONE] = "UPDATE messages SET done_at = ?2 WHERE id = ?1 AND done_at IS NULL",
    [ST_DROP_BODY] = "DELETE FROM bodies WHERE msg_id = ?1",
    [ST_DROP_DIALED] = "DELETE FROM dialed WHERE msg_id = ?1",
    [ST_EXPIRED] = "SELECT id FROM messages WHERE done_at IS NOT NULL AND done_at < ?1 "
                   "LIMIT ?2",
};

struct spool {
	sqlite3 *db;
	bool synced; /* PRAGMA synchronous: FULL (true) or NORMAL */
	sqlite3_stmt *stmt[ST_COUNT];
	sqlite3_stmt *more[SPOOL_MORE_COUNT]; /* of the other table modules (internal.h) */
};

static const char *const state_names[RCPT_NSTATES] = {"queued", "held", "deferred", "delivered",
                                                      "failed"};

const char *rcpt_state_name(enum rcpt_state s)
{
	return ((int)s >= 0 && (int)s < RCPT_NSTATES) ? state_names[s] : "unknown";
}

int rcpt_state_parse(const char *name)
{
	for (int i = 0; i < RCPT_NSTATES; i++)
		if (strcasecmp(name, state_names[i]) == 0)
			return i;
	return -1;
}

int spool_db_error(struct spool *s, const char *what, char *why, size_t whylen)
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
		return spool_db_error(s, "reading schema version", why, whylen);
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
	    exec(s, "PRAGMA foreign_keys = OFF", why, whylen) < 0 ||
	    exec(s, "PRAGMA temp_store = MEMORY", why, whylen) < 0)
		return -1;
	s->synced = true;
	return 0;
}

int spool_set_synced(struct spool *s, bool synced, char *why, size_t whylen)
{
	if (synced == s->synced)
		return 0;
	if (exec(s, synced ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL", why,
	         whylen) < 0)
		return -1;
	s->synced = synced;
	return 0;
}

/* The messages a drop touched, to settle each afterwards (temp: this
 * connection only, never on disk). */
static int create_temp_tables(struct spool *s, char *why, size_t whylen)
{
	return exec(s, "CREATE TEMP TABLE IF NOT EXISTS touched (id INTEGER PRIMARY KEY)", why,
	            whylen);
}

/* SQLite creates the -wal and -shm files with the database file's mode, so
 * creating that file 0600 first keeps every queued message private to the
 * spool's owner whatever the umask; a spool made by an older outpost is
 * tightened. Only a file that did not exist is opened here: closing any
 * descriptor of a database this process has open would drop SQLite's POSIX
 * locks on it. */
static int create_private(const char *path, char *why, size_t whylen)
{
	static const char *const suffixes[] = {"", "-wal", "-shm"};
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd >= 0) {
		close(fd);
		return 0;
	}
	if (errno != EEXIST) {
		snprintf(why, whylen, "spool: cannot create %s: %s", path, strerror(errno));
		return -1;
	}
	for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
		char file[4200];
		struct stat st;
		snprintf(file, sizeof file, "%s%s", path, suffixes[i]);
		if (stat(file, &st) == 0 && (st.st_mode & 0077) && st.st_uid == geteuid())
			chmod(file, st.st_mode & 0700);
	}
	return 0;
}

static int prepare_all(struct spool *s, char *why, size_t whylen)
{
	for (int i = 0; i < ST_COUNT; i++)
		if (sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
		                       &s->stmt[i], NULL) != SQLITE_OK)
			return spool_db_error(s, "preparing statements", why, whylen);
	return 0;
}

struct spool *spool_open(const char *data_dir, char *why, size_t whylen)
{
	if (mkdir(data_dir, 0711) < 0 && errno != EEXIST) {
		snprintf(why, whylen, "spool: cannot create %s: %s", data_dir, strerror(errno));
		return NULL;
	}
	char path[4096];
	snprintf(path, sizeof path, "%s/spool.db", data_dir);
	if (create_private(path, why, whylen) < 0)
		return NULL;
	struct spool *s = calloc(1, sizeof *s);
	if (s == NULL)
		abort();
	if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
	    SQLITE_OK) {
		spool_db_error(s, path, why, whylen);
		spool_close(s);
		return NULL;
	}
	if (configure(s, why, whylen) < 0 || migrate(s, why, whylen) < 0 ||
	    create_temp_tables(s, why, whylen) < 0 || prepare_all(s, why, whylen) < 0)
		goto fail;
	return s;
fail:
	spool_close(s);
	return NULL;
}

/* A reading connection changes nothing, not even the schema: a spool of
 * another version is refused rather than misread (the daemon migrates it
 * when it starts). Its statements are prepared all the same, so that a
 * write through it fails cleanly ("readonly database"). */
struct spool *spool_open_readonly(const char *data_dir, char *why, size_t whylen)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/spool.db", data_dir);
	struct spool *s = calloc(1, sizeof *s);
	if (s == NULL)
		abort();
	if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) !=
	    SQLITE_OK) {
		spool_db_error(s, path, why, whylen);
		goto fail;
	}
	sqlite3_busy_timeout(s->db, 10000);
	int v = user_version(s);
	if (v < 0) {
		spool_db_error(s, "reading schema version", why, whylen);
		goto fail;
	}
	if (v != SCHEMA_VERSION) {
		snprintf(why, whylen,
		         "spool: schema version %d, this outpost reads %d (the daemon brings it "
		         "up to date when it starts)",
		         v, SCHEMA_VERSION);
		goto fail;
	}
	if (prepare_all(s, why, whylen) < 0)
		goto fail;
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
	for (int i = 0; i < SPOOL_MORE_COUNT; i++)
		sqlite3_finalize(s->more[i]);
	sqlite3_close(s->db);
	free(s);
}

/* A statement of the writer's every batch or job, prepared once: parsing it
 * each time (sqlite3_exec) was a visible share of the CPU per message. */
static int exec_kept(struct spool *s, enum spool_more id, const char *sql, char *why,
                     size_t whylen)
{
	sqlite3_stmt *st = spool_more_stmt(s, id, sql, why, whylen);
	return st ? spool_step_done(s, st, sql, why, whylen) : -1;
}

int spool_begin(struct spool *s, char *why, size_t whylen)
{
	return exec_kept(s, MORE_BEGIN, "BEGIN IMMEDIATE", why, whylen);
}

int spool_commit(struct spool *s, char *why, size_t whylen)
{
	return exec_kept(s, MORE_COMMIT, "COMMIT", why, whylen);
}

void spool_rollback(struct spool *s)
{
	if (!sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

int spool_savepoint(struct spool *s, char *why, size_t whylen)
{
	return exec_kept(s, MORE_SAVEPOINT, "SAVEPOINT job", why, whylen);
}

int spool_savepoint_release(struct spool *s, bool keep, char *why, size_t whylen)
{
	if (!keep && exec_kept(s, MORE_ROLLBACK_TO, "ROLLBACK TO job", why, whylen) < 0)
		return -1;
	return exec_kept(s, MORE_RELEASE, "RELEASE job", why, whylen);
}

bool spool_in_transaction(struct spool *s)
{
	return !sqlite3_get_autocommit(s->db);
}

int spool_lock(const char *data_dir, bool exclusive, int wait_ms)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/outpost.lock", data_dir);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	for (int waited = 0;; waited += 20) {
		if (flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) == 0)
			return fd;
		if (errno != EWOULDBLOCK || waited >= wait_ms)
			break;
		usleep(20000);
	}
	int e = errno;
	close(fd);
	errno = e;
	return -1;
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

bool spool_same_address(const char *a, const char *b)
{
	const char *at_a = strrchr(a, '@'), *at_b = strrchr(b, '@');
	if ((at_a == NULL) != (at_b == NULL))
		return false;
	if (at_a == NULL) /* "postmaster" alone: RFC 5321 §4.5.1, case-insensitive */
		return strcasecmp(a, b) == 0;
	size_t local = (size_t)(at_a - a);
	return local == (size_t)(at_b - b) && memcmp(a, b, local) == 0 &&
	       strcasecmp(at_a + 1, at_b + 1) == 0;
}

int spool_step_done(struct spool *s, sqlite3_stmt *st, const char *what, char *why,
                    size_t whylen)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_DONE)
		return spool_db_error(s, what, why, whylen);
	return 0;
}

/* One row of one integer, or -1 (the caller's errors come from the db). */
static int64_t single_int(sqlite3_stmt *st, int col)
{
	int64_t v = -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, col);
	sqlite3_reset(st);
	return v;
}

void spool_bind_text(sqlite3_stmt *st, int i, const char *v)
{
	if (v)
		sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, i);
}

const char *spool_column_text(sqlite3_stmt *st, int col)
{
	return (const char *)sqlite3_column_text(st, col);
}

/* The column's text into buf, cut to n - 1 octets ("" for NULL): read for
 * every due row, so no formatting. */
static void column_copy(sqlite3_stmt *st, int col, char *buf, size_t n)
{
	const unsigned char *t = sqlite3_column_text(st, col);
	size_t len = t ? (size_t)sqlite3_column_bytes(st, col) : 0;
	if (len >= n)
		len = n - 1;
	if (len > 0)
		memcpy(buf, t, len);
	buf[len] = '\0';
}

static int64_t column_time(sqlite3_stmt *st, int col)
{
	return sqlite3_column_type(st, col) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, col);
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

static bool seen_before(const struct spool_message_in *m, size_t i)
{
	for (size_t k = 0; k < i; k++)
		if (spool_same_address(m->rcpts[k], m->rcpts[i]))
			return true;
	return false;
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
	spool_bind_text(st, 6, m->auth_user);
	spool_bind_text(st, 7, m->client);
	if (spool_step_done(s, st, "inserting message", why, whylen) < 0)
		return -1;
	st = s->stmt[ST_INSERT_RCPT];
	for (size_t i = 0; i < m->nrcpt; i++) {
		char domain[256];
		if (seen_before(m, i)) /* one recipient, one delivery */
			continue;
		rcpt_domain(m->rcpts[i], domain, sizeof domain);
		sqlite3_bind_int64(st, 1, (sqlite3_int64)m->id);
		sqlite3_bind_text(st, 2, m->rcpts[i], -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, domain, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(st, 4, m->queued_ms);
		if (spool_step_done(s, st, "inserting recipient", why, whylen) < 0)
			return -1;
	}
	st = s->stmt[ST_INSERT_BODY];
	sqlite3_bind_int64(st, 1, (sqlite3_int64)m->id);
	sqlite3_bind_blob64(st, 2, m->body, m->body_len, SQLITE_STATIC);
	return spool_step_done(s, st, "inserting body", why, whylen);
}

static int by_message(struct spool *s, enum stmt_id which, uint64_t msg_id, const char *what,
                      char *why, size_t whylen)
{
	sqlite3_bind_int64(s->stmt[which], 1, (sqlite3_int64)msg_id);
	return spool_step_done(s, s->stmt[which], what, why, whylen);
}

/* ---- counts by state ------------------------------------------------------ */

int spool_count_states(struct spool *s, int64_t counts[RCPT_NSTATES])
{
	sqlite3_stmt *st;
	memset(counts, 0, RCPT_NSTATES * sizeof counts[0]);
	if (sqlite3_prepare_v2(s->db, "SELECT state, count(*) FROM recipients GROUP BY state", -1,
	                       &st, NULL) != SQLITE_OK)
		return -1;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int state = sqlite3_column_int(st, 0);
		if (state >= 0 && state < RCPT_NSTATES)
			counts[state] = sqlite3_column_int64(st, 1);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

int spool_track_states(struct spool *s, char *why, size_t whylen)
{
	return exec(s,
	            "CREATE TEMP TABLE state_delta (state INTEGER PRIMARY KEY, n INTEGER NOT NULL);"
	            "INSERT INTO state_delta VALUES (0, 0), (1, 0), (2, 0), (3, 0), (4, 0);"
	            "CREATE TEMP TRIGGER state_insert AFTER INSERT ON main.recipients BEGIN "
	            "  UPDATE state_delta SET n = n + 1 WHERE state = NEW.state; END;"
	            "CREATE TEMP TRIGGER state_delete AFTER DELETE ON main.recipients BEGIN "
	            "  UPDATE state_delta SET n = n - 1 WHERE state = OLD.state; END;"
	            "CREATE TEMP TRIGGER state_update AFTER UPDATE OF state ON main.recipients "
	            "  WHEN OLD.state != NEW.state BEGIN "
	            "  UPDATE state_delta SET n = n - 1 WHERE state = OLD.state;"
	            "  UPDATE state_delta SET n = n + 1 WHERE state = NEW.state; END;",
	            why, whylen);
}

int spool_state_delta_take(struct spool *s, int64_t delta[RCPT_NSTATES], char *why, size_t whylen)
{
	memset(delta, 0, RCPT_NSTATES * sizeof delta[0]);
	sqlite3_stmt *st = spool_more_stmt(
	    s, MORE_DELTA_TAKE, "SELECT state, n FROM temp.state_delta WHERE n != 0", why, whylen);
	if (st == NULL)
		return -1;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int state = sqlite3_column_int(st, 0);
		if (state >= 0 && state < RCPT_NSTATES)
			delta[state] = sqlite3_column_int64(st, 1);
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return spool_db_error(s, "reading state counts", why, whylen);
	return exec_kept(s, MORE_DELTA_RESET, "UPDATE temp.state_delta SET n = 0 WHERE n != 0", why,
	                 whylen);
}

/* ---- filters and admin actions ------------------------------------------- */

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

/* head, the filter's conditions, tail. A statement whose parameter ?1 is
 * not the filter's (kick's time) passes first_bind 2. */
static sqlite3_stmt *prepare_filtered(struct spool *s, const char *head, const char *tail,
                                      const struct spool_filter *f, char *why, size_t whylen)
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
		spool_db_error(s, "preparing query", why, whylen);
		st = NULL;
	}
	free(sql);
	return st;
}

/* Runs head+filter as a change; returns the rows changed or -1. */
static int64_t run_filtered(struct spool *s, const char *head, const struct spool_filter *f,
                            const int64_t *first, char *why, size_t whylen)
{
	sqlite3_stmt *st = prepare_filtered(s, head, "", f, why, whylen);
	if (st == NULL)
		return -1;
	int i = 1;
	if (first)
		sqlite3_bind_int64(st, i++, *first);
	filter_bind(f, st, &i);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return spool_db_error(s, "changing recipients", why, whylen);
	return sqlite3_changes64(s->db);
}

/* Settles every message listed in temp.touched, then empties it. */
static int settle_touched(struct spool *s, int64_t now_ms, char *why, size_t whylen)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db, "SELECT id FROM temp.touched", -1, &st, NULL) != SQLITE_OK)
		return spool_db_error(s, "listing changed messages", why, whylen);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if (spool_message_settle(s, (uint64_t)sqlite3_column_int64(st, 0), now_ms, why,
		                         whylen) < 0)
			break;
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW)
		return -1;
	if (rc != SQLITE_DONE)
		return spool_db_error(s, "listing changed messages", why, whylen);
	return exec(s, "DELETE FROM temp.touched", why, whylen);
}

/* Recipients in flight are only marked: their attempt's outcome removes
 * them (spool_attempt_end), so the attempt never loses its recipient. The
 * others go now, and their messages are settled one by one (no scan). */
static int64_t apply_drop(struct spool *s, const struct spool_filter *f, int64_t now_ms, char *why,
                          size_t whylen)
{
	static const char pending[] = " AND r.state IN (0, 1, 2) AND r.drop_requested = 0";
	char head[256];
	snprintf(head, sizeof head,
	         "UPDATE recipients AS r SET drop_requested = 1 WHERE in_flight = 1%s", pending);
	int64_t marked = run_filtered(s, head, f, NULL, why, whylen);
	snprintf(head, sizeof head,
	         "INSERT OR IGNORE INTO temp.touched SELECT msg_id FROM recipients AS r "
	         "WHERE in_flight = 0%s",
	         pending);
	if (marked < 0 || run_filtered(s, head, f, NULL, why, whylen) < 0)
		return -1;
	snprintf(head, sizeof head, "DELETE FROM recipients AS r WHERE in_flight = 0%s", pending);
	int64_t dropped = run_filtered(s, head, f, NULL, why, whylen);
	if (dropped < 0 || settle_touched(s, now_ms, why, whylen) < 0)
		return -1;
	return marked + dropped;
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
	                   "WHERE state IN (0, 2) AND drop_requested = 0",
	    [SPOOL_RELEASE] = "UPDATE recipients AS r SET state = coalesce(held_from, 0), "
	                      "held_from = NULL WHERE state = 1 AND drop_requested = 0",
	    [SPOOL_KICK] = "UPDATE recipients AS r SET next_attempt = ?1 "
	                   "WHERE state IN (0, 2) AND drop_requested = 0",
	};
	if (a == SPOOL_DROP)
		return apply_drop(s, f, now_ms, why, whylen);
	return run_filtered(s, heads[a], f, a == SPOOL_KICK ? &now_ms : NULL, why, whylen);
}

/* ---- scheduling and attempts ----------------------------------------------- */

static int collect_due(struct spool *s, sqlite3_stmt *st, struct spool_due *out, size_t max,
                       char *why, size_t whylen)
{
	int n = 0, rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && (size_t)n < max) {
		struct spool_due *d = &out[n++];
		d->rcpt_id = sqlite3_column_int64(st, 0);
		d->msg_id = (uint64_t)sqlite3_column_int64(st, 1);
		d->attempts = sqlite3_column_int(st, 2);
		column_copy(st, 3, d->domain, sizeof d->domain);
		column_copy(st, 4, d->address, sizeof d->address);
	}
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return spool_db_error(s, "listing due recipients", why, whylen);
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
	                 "WHERE state IN (0, 2) AND in_flight = 0 AND next_attempt <= ?1 AND "
	                 "domain NOT IN (");
	for (size_t i = 0; i < nskip; i++)
		o += snprintf(sql + o, len - (size_t)o, i ? ",?" : "?");
	snprintf(sql + o, len - (size_t)o, ") ORDER BY next_attempt LIMIT ?2");
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
	free(sql);
	if (rc != SQLITE_OK)
		return spool_db_error(s, "preparing due query", why, whylen);
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
	if (spool_step_done(s, st, "recording attempt", why, whylen) < 0)
		return -1;
	return sqlite3_changes(s->db);
}

int spool_attempt_end(struct spool *s, const struct spool_outcome *o, char *why, size_t whylen)
{
	sqlite3_stmt *st = s->stmt[ST_ATTEMPT_END];
	sqlite3_bind_int64(st, 1, o->rcpt_id);
	sqlite3_bind_int(st, 2, o->state);
	spool_bind_text(st, 3, o->error);
	spool_bind_text(st, 4, o->status);
	spool_bind_text(st, 5, o->mx);
	spool_bind_text(st, 6, o->ip);
	spool_bind_text(st, 7, o->diagnostic);
	sqlite3_bind_int(st, 8, o->notice);
	if (spool_step_done(s, st, "recording outcome", why, whylen) < 0)
		return -1;
	if (sqlite3_changes(s->db) > 0)
		return SPOOL_END_RECORDED;
	st = s->stmt[ST_ATTEMPT_DROP];
	sqlite3_bind_int64(st, 1, o->rcpt_id);
	if (spool_step_done(s, st, "dropping recipient", why, whylen) < 0)
		return -1;
	return sqlite3_changes(s->db) > 0 ? SPOOL_END_DROPPED : SPOOL_END_GONE;
}

int64_t spool_in_flight(struct spool *s, uint64_t msg_id, char *why, size_t whylen)
{
	sqlite3_stmt *st = s->stmt[ST_IN_FLIGHT];
	sqlite3_bind_int64(st, 1, (sqlite3_int64)msg_id);
	int64_t n = single_int(st, 0);
	if (n < 0)
		return spool_db_error(s, "counting recipients in flight", why, whylen);
	return n;
}

int spool_notices_take(struct spool *s, uint64_t msg_id,
                       void (*fn)(void *arg, const struct spool_notice_row *r), void *arg,
                       char *why, size_t whylen)
{
	sqlite3_stmt *st = s->stmt[ST_NOTICES];
	sqlite3_bind_int64(st, 1, (sqlite3_int64)msg_id);
	int rc, n = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct spool_notice_row r = {
		    .address = spool_column_text(st, 0),
		    .notice = (enum spool_notice)sqlite3_column_int(st, 1),
		    .attempts = sqlite3_column_int(st, 2),
		    .last_attempt_ms = column_time(st, 3),
		    .error = spool_column_text(st, 4),
		    .status = spool_column_text(st, 5),
		    .mx = spool_column_text(st, 6),
		    .ip = spool_column_text(st, 7),
		    .diagnostic = spool_column_text(st, 8),
		};
		fn(arg, &r);
		n++;
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return spool_db_error(s, "reading notices", why, whylen);
	if (n > 0 && by_message(s, ST_NOTICES_CLEAR, msg_id, "clearing notices", why, whylen) < 0)
		return -1;
	return n;
}

int spool_notices_waiting(struct spool *s, uint64_t *ids, size_t max, char *why, size_t whylen)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db,
	                       "SELECT DISTINCT msg_id FROM recipients AS r WHERE notice != 0 AND "
	                       "NOT EXISTS (SELECT 1 FROM recipients WHERE msg_id = r.msg_id "
	                       "AND in_flight = 1) LIMIT ?1",
	                       -1, &st, NULL) != SQLITE_OK)
		return spool_db_error(s, "listing waiting notices", why, whylen);
	sqlite3_bind_int64(st, 1, (sqlite3_int64)max);
	int rc, n = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && (size_t)n < max)
		ids[n++] = (uint64_t)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return spool_db_error(s, "listing waiting notices", why, whylen);
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
		snprintf(e->sender, sizeof e->sender, "%s", spool_column_text(st, 0));
		e->flags = (unsigned)sqlite3_column_int(st, 1);
		e->queued_ms = sqlite3_column_int64(st, 2);
		e->size = (size_t)sqlite3_column_int64(st, 3);
	}
	sqlite3_reset(st);
	if (rc == SQLITE_ROW)
		return 0;
	if (rc == SQLITE_DONE)
		return snprintf(why, whylen, "no message with that id"), -1;
	return spool_db_error(s, "reading envelope", why, whylen);
}

/* ---- bodies --------------------------------------------------------------- */

ssize_t spool_body_read(struct spool *s, uint64_t id, size_t offset, void *buf, size_t n, char *why,
                        size_t whylen)
{
	sqlite3_blob *blob;
	if (sqlite3_blob_open(s->db, "main", "bodies", "data", (sqlite3_int64)id, 0, &blob) !=
	    SQLITE_OK) {
		return spool_db_error(s, "opening the message body", why, whylen);
	}
	size_t size = (size_t)sqlite3_blob_bytes(blob);
	size_t take = offset >= size ? 0 : (size - offset < n ? size - offset : n);
	int rc = take ? sqlite3_blob_read(blob, buf, (int)take, (int)offset) : SQLITE_OK;
	sqlite3_blob_close(blob);
	if (rc != SQLITE_OK)
		return spool_db_error(s, "reading the message body", why, whylen);
	return (ssize_t)take;
}

/* The end of the header section in what has been read so far, or 0. */
static size_t headers_end(const char *p, size_t len)
{
	if (len >= 2 && p[0] == '\r' && p[1] == '\n')
		return 2;
	const char *e = memmem(p, len, "\r\n\r\n", 4);
	return e ? (size_t)(e - p) + 4 : 0;
}

int spool_body_headers(struct spool *s, uint64_t id, size_t max, char **out, size_t *len, char *why,
                       size_t whylen)
{
	char *buf = malloc(max + 1);
	size_t have = 0, end = 0;
	if (buf == NULL)
		abort();
	while (have < max && end == 0) {
		size_t want = max - have < 4096 ? max - have : 4096;
		ssize_t got = spool_body_read(s, id, have, buf + have, want, why, whylen);
		if (got < 0) {
			free(buf);
			return -1;
		}
		if (got == 0)
			break;
		have += (size_t)got;
		end = headers_end(buf, have);
	}
	*len = end ? end : have;
	buf[*len] = '\0';
	*out = buf;
	return 0;
}

int spool_message_body(struct spool *s, uint64_t id, char **body, size_t *len, char *why,
                       size_t whylen)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db, "SELECT data FROM bodies WHERE msg_id = ?1", -1, &st, NULL) !=
	    SQLITE_OK)
		return spool_db_error(s, "preparing body read", why, whylen);
	sqlite3_bind_int64(st, 1, (sqlite3_int64)id);
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		sqlite3_finalize(st);
		if (rc == SQLITE_DONE)
			return snprintf(why, whylen, "no message with that id"), SPOOL_NOT_FOUND;
		return spool_db_error(s, "reading body", why, whylen);
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

/* ---- the delivery log and dialed addresses -------------------------------- */

int spool_log_attempt(struct spool *s, const struct spool_attempt_log *l, char *why, size_t whylen)
{
	sqlite3_stmt *st = s->stmt[ST_LOG_ATTEMPT];
	sqlite3_bind_int64(st, 1, (sqlite3_int64)l->msg_id);
	sqlite3_bind_int64(st, 2, l->rcpt_id);
	sqlite3_bind_int64(st, 3, l->started_ms);
	sqlite3_bind_int64(st, 4, l->duration_ms);
	spool_bind_text(st, 5, l->mx);
	spool_bind_text(st, 6, l->ip);
	spool_bind_text(st, 7, l->tls);
	sqlite3_bind_int(st, 8, l->result);
	spool_bind_text(st, 9, l->reply);
	spool_bind_text(st, 10, l->tls_policy);
	spool_bind_text(st, 11, l->tls_verified);
	spool_bind_text(st, 12, l->tls_detail);
	return spool_step_done(s, st, "logging attempt", why, whylen);
}

int spool_dialed_get(struct spool *s, uint64_t msg_id, const char *host, char *ips, size_t n)
{
	sqlite3_stmt *st = s->stmt[ST_DIALED_GET];
	sqlite3_bind_int64(st, 1, (sqlite3_int64)msg_id);
	sqlite3_bind_text(st, 2, host, -1, SQLITE_STATIC);
	ips[0] = '\0';
	if (sqlite3_step(st) == SQLITE_ROW)
		snprintf(ips, n, "%s", spool_column_text(st, 0));
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
	return spool_step_done(s, st, "saving dialed addresses", why, whylen);
}

/* ---- a message's life ends ---------------------------------------------- */

int spool_message_settle(struct spool *s, uint64_t msg_id, int64_t now_ms, char *why, size_t whylen)
{
	sqlite3_stmt *st = s->stmt[ST_RCPT_COUNTS];
	sqlite3_bind_int64(st, 1, (sqlite3_int64)msg_id);
	int rc = sqlite3_step(st);
	int64_t total = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
	int64_t pending = rc == SQLITE_ROW ? sqlite3_column_int64(st, 1) : -1;
	sqlite3_reset(st);
	if (total < 0)
		return spool_db_error(s, "counting recipients", why, whylen);
	if (pending > 0)
		return 0;
	if (total == 0 &&
	    (by_message(s, ST_DROP_MESSAGE, msg_id, "dropping message", why, whylen) < 0 ||
	     by_message(s, ST_DROP_LOG, msg_id, "dropping log", why, whylen) < 0))
		return -1;
	if (total > 0) {
		st = s->stmt[ST_MARK_DONE];
		sqlite3_bind_int64(st, 1, (sqlite3_int64)msg_id);
		sqlite3_bind_int64(st, 2, now_ms);
		if (spool_step_done(s, st, "marking message done", why, whylen) < 0)
			return -1;
	}
	if (by_message(s, ST_DROP_BODY, msg_id, "dropping body", why, whylen) < 0 ||
	    by_message(s, ST_DROP_DIALED, msg_id, "dropping dialed", why, whylen) < 0)
		return -1;
	return 0;
}

int64_t spool_recover_interrupted(struct spool *s, int64_t now_ms, char *why, size_t whylen)
{
	char sql[512];
	snprintf(sql, sizeof sql,
	         "INSERT OR IGNORE INTO temp.touched SELECT msg_id FROM recipients "
	         "WHERE drop_requested = 1;"
	         "DELETE FROM recipients WHERE drop_requested = 1;"
	         "UPDATE recipients SET in_flight = 0, next_attempt = min(next_attempt, %lld) "
	         "WHERE in_flight = 1",
	         (long long)now_ms);
	if (spool_begin(s, why, whylen) < 0)
		return -1;
	int64_t n = -1;
	if (exec(s, sql, why, whylen) == 0) {
		n = sqlite3_changes64(s->db);
		if (settle_touched(s, now_ms, why, whylen) < 0 || spool_commit(s, why, whylen) < 0)
			n = -1;
	}
	if (n < 0)
		spool_rollback(s);
	return n;
}

int64_t spool_cleanup(struct spool *s, int64_t done_before_ms, int max, char *why, size_t whylen)
{
	sqlite3_stmt *st = s->stmt[ST_EXPIRED];
	uint64_t *ids = calloc((size_t)max, sizeof *ids);
	int n = 0, rc;
	if (ids == NULL)
		abort();
	sqlite3_bind_int64(st, 1, done_before_ms);
	sqlite3_bind_int(st, 2, max);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && n < max)
		ids[n++] = (uint64_t)sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	int64_t result = n;
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		result = spool_db_error(s, "listing expired messages", why, whylen);
	for (int i = 0; i < n && result >= 0; i++)
		if (by_message(s, ST_DROP_LOG, ids[i], "expiring log", why, whylen) < 0 ||
		    by_message(s, ST_DROP_RECIPIENTS, ids[i], "expiring recipients", why, whylen) <
		        0 ||
		    by_message(s, ST_DROP_MESSAGE, ids[i], "expiring message", why, whylen) < 0)
			result = -1;
	free(ids);
	return result;
}

int spool_probe_write(struct spool *s, int64_t now_ms, char *why, size_t whylen)
{
	char sql[128];
	snprintf(sql, sizeof sql, "INSERT OR REPLACE INTO probe (id, at) VALUES (1, %lld)",
	         (long long)now_ms);
	return exec(s, sql, why, whylen);
}

/* ---- reads for the admin API ----------------------------------------------- */

#define MSG_SELECT                                                                                 \
	"SELECT m.id, m.sender, m.size, m.queued, m.flags, m.auth_user, m.client, m.done_at, "     \
	"r.address, r.state, r.attempts, r.next_attempt, r.last_error, r.last_attempt, "           \
	"r.in_flight "
#define MSG_COLUMNS MSG_SELECT "FROM messages m JOIN recipients r ON r.msg_id = m.id "

/* One message's rows, copied out of SQLite's buffers until it is passed on. */
struct message_acc {
	struct spool_message_row m;
	struct spool_recipient_row *r;
	size_t n, cap;
	bool have;
};

static char *dup_or_null(const char *s)
{
	char *d = s ? strdup(s) : NULL;
	if (s && d == NULL)
		abort();
	return d;
}

static void acc_clear(struct message_acc *a)
{
	free((char *)a->m.sender);
	free((char *)a->m.auth_user);
	free((char *)a->m.client);
	for (size_t i = 0; i < a->n; i++) {
		free((char *)a->r[i].address);
		free((char *)a->r[i].last_error);
	}
	a->n = 0;
	a->have = false;
	memset(&a->m, 0, sizeof a->m);
}

static void acc_message(struct message_acc *a, sqlite3_stmt *st)
{
	a->have = true;
	a->m = (struct spool_message_row){
	    .id = (uint64_t)sqlite3_column_int64(st, 0),
	    .sender = dup_or_null(spool_column_text(st, 1)),
	    .size = sqlite3_column_int64(st, 2),
	    .queued_ms = sqlite3_column_int64(st, 3),
	    .flags = (unsigned)sqlite3_column_int(st, 4),
	    .auth_user = dup_or_null(spool_column_text(st, 5)),
	    .client = dup_or_null(spool_column_text(st, 6)),
	    .done_ms = column_time(st, 7),
	};
}

static void acc_recipient(struct message_acc *a, sqlite3_stmt *st)
{
	if (a->n == a->cap) {
		a->cap = a->cap ? a->cap * 2 : 8;
		a->r = realloc(a->r, a->cap * sizeof *a->r);
		if (a->r == NULL)
			abort();
	}
	enum rcpt_state state = (enum rcpt_state)sqlite3_column_int(st, 9);
	bool pending = state == RCPT_QUEUED || state == RCPT_DEFERRED || state == RCPT_HELD;
	const char *err = spool_column_text(st, 12);
	a->r[a->n++] = (struct spool_recipient_row){
	    .address = dup_or_null(spool_column_text(st, 8)),
	    .state = state,
	    .attempts = sqlite3_column_int(st, 10),
	    .next_attempt_ms = pending ? column_time(st, 11) : -1,
	    .last_error = dup_or_null(err ? err : ""),
	    .last_attempt_ms = column_time(st, 13),
	    .in_flight = sqlite3_column_int(st, 14) != 0,
	};
}

/* Groups the joined rows (ordered by message) and passes each message on. */
static int emit_messages(struct spool *s, sqlite3_stmt *st, spool_message_fn fn, void *arg,
                         int *count, char *why, size_t whylen)
{
	struct message_acc a = {0};
	int rc, stop = 0;
	*count = 0;
	while (!stop && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		uint64_t id = (uint64_t)sqlite3_column_int64(st, 0);
		if (a.have && a.m.id != id) {
			stop = fn(arg, &a.m, a.r, a.n);
			acc_clear(&a);
			(*count)++;
		}
		if (!stop) {
			if (!a.have)
				acc_message(&a, st);
			acc_recipient(&a, st);
		}
	}
	if (!stop && a.have) {
		fn(arg, &a.m, a.r, a.n);
		(*count)++;
	}
	acc_clear(&a);
	free(a.r);
	sqlite3_finalize(st);
	if (!stop && rc != SQLITE_DONE)
		return spool_db_error(s, "listing the queue", why, whylen);
	return 0;
}

/* ---- pages ---- */

/* A page starts after the previous page's last key, in the listing's
 * order. Row values compare column by column, and SQLite walks the index
 * on (time, rowid) from there: no OFFSET, nothing before it is read. */
static void page_after(FILE *sql, const char *time_col, const char *id_col,
                       const struct spool_page *p)
{
	if (p->after)
		fprintf(sql, " AND (%s, %s) %c (?, ?)", time_col, id_col,
		        p->newest_first ? '<' : '>');
	//MUT
}

static void page_bind(sqlite3_stmt *st, int *i, const struct spool_page *p)
{
	if (p->after) {
		sqlite3_bind_int64(st, (*i)++, p->after->time_ms);
		sqlite3_bind_int64(st, (*i)++, (sqlite3_int64)p->after->id);
	}
}

/* " ORDER BY t DIR, id DIR LIMIT ?": one row more than the page, to know
 * whether another page follows. */
static void page_order(FILE *sql, const char *time_col, const char *id_col,
                       const struct spool_page *p)
{
	const char *dir = p->newest_first ? "DESC" : "ASC";
	fprintf(sql, " ORDER BY %s %s, %s %s LIMIT ?", time_col, dir, id_col, dir);
}

/* The bounds of a time column: >= from, < before (-1: none). */
static void range_where(FILE *sql, const char *col, int64_t from_ms, int64_t before_ms)
{
	if (from_ms >= 0)
		fprintf(sql, " AND %s >= ?", col);
	if (before_ms >= 0)
		fprintf(sql, " AND %s < ?", col);
}

static void range_bind(sqlite3_stmt *st, int *i, int64_t from_ms, int64_t before_ms)
{
	if (from_ms >= 0)
		sqlite3_bind_int64(st, (*i)++, from_ms);
	if (before_ms >= 0)
		sqlite3_bind_int64(st, (*i)++, before_ms);
}

/* The recipient conditions of f on "r", as filter_where writes them. */
static char *recipient_where(const struct spool_filter *f, const char *head)
{
	size_t n = strlen(head) + 256 + f->nids * 2;
	char *w = malloc(n);
	if (w == NULL)
		abort();
	snprintf(w, n, "%s", head);
	filter_where(f, w, n);
	return w;
}

/* Passes at most a page of messages on, and notes the key to go on from. */
struct pager {
	spool_message_fn fn;
	void *arg;
	struct spool_page *p;
	size_t n;
};

static int page_message(void *arg, const struct spool_message_row *m,
                        const struct spool_recipient_row *r, size_t nr)
{
	struct pager *g = arg;
	if (g->n == g->p->limit) {
		g->p->more = true;
		return 1;
	}
	g->n++;
	g->p->next = (struct spool_key){.time_ms = m->queued_ms, .id = m->id};
	return g->fn(g->arg, m, r, nr);
}

/* The page's messages are chosen first (a message matches when one of its
 * recipients does), then read with all their recipients, in one statement:
 * one snapshot of the spool. */
static char *list_sql(const struct spool_list_query *q, const struct spool_page *p)
{
	char *rcpt = recipient_where(&q->f, q->f.state >= 0
	                                        ? "r.drop_requested = 0"
	                                        : "r.drop_requested = 0 AND r.state IN (0, 1, 2)");
	char *sql = NULL;
	size_t len;
	FILE *o = open_memstream(&sql, &len);
	if (o == NULL)
		abort();
	fprintf(o, MSG_SELECT "FROM (SELECT m.id FROM messages m WHERE EXISTS (SELECT 1 FROM "
	           "recipients r WHERE r.msg_id = m.id AND %s)", rcpt);
	if (q->sender)
		fputs(" AND m.sender = ? COLLATE NOCASE", o);
	range_where(o, "m.queued", q->queued_from_ms, q->queued_before_ms);
	page_after(o, "m.queued", "m.id", p);
	page_order(o, "m.queued", "m.id", p);
	fprintf(o, ") AS page JOIN messages m ON m.id = page.id JOIN recipients r ON r.msg_id = "
	           "m.id WHERE r.drop_requested = 0 ORDER BY m.queued %s, m.id %s, r.id",
	        p->newest_first ? "DESC" : "ASC", p->newest_first ? "DESC" : "ASC");
	free(rcpt);
	if (fclose(o) != 0)
		abort();
	return sql;
}

int spool_list_page(struct spool *s, const struct spool_list_query *q, struct spool_page *p,
                    spool_message_fn fn, void *arg, char *why, size_t whylen)
{
	p->more = false;
	if (p->limit == 0) {
		snprintf(why, whylen, "spool: a page of no messages");
		return -1;
	}
	char *sql = list_sql(q, p);
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
	free(sql);
	if (rc != SQLITE_OK)
		return spool_db_error(s, "preparing the queue listing", why, whylen);
	int i = 1, count;
	filter_bind(&q->f, st, &i);
	if (q->sender)
		sqlite3_bind_text(st, i++, q->sender, -1, SQLITE_STATIC);
	range_bind(st, &i, q->queued_from_ms, q->queued_before_ms);
	page_bind(st, &i, p);
	sqlite3_bind_int64(st, i, (sqlite3_int64)p->limit + 1);
	struct pager g = {.fn = fn, .arg = arg, .p = p};
	return emit_messages(s, st, page_message, &g, &count, why, whylen);
}

int spool_show(struct spool *s, uint64_t id, spool_message_fn fn, void *arg, char *why,
               size_t whylen)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db,
	                       MSG_COLUMNS "WHERE m.id = ?1 AND r.drop_requested = 0 ORDER BY r.id",
	                       -1, &st, NULL) != SQLITE_OK)
		return spool_db_error(s, "preparing show", why, whylen);
	sqlite3_bind_int64(st, 1, (sqlite3_int64)id);
	int count;
	if (emit_messages(s, st, fn, arg, &count, why, whylen) < 0)
		return -1;
	if (count == 0) {
		snprintf(why, whylen, "no message with that id");
		return SPOOL_NOT_FOUND;
	}
	return 0;
}

/* The delivery log's columns, from col on, as spool_attempts and
 * spool_history_page read them. */
#define ATTEMPT_COLUMNS                                                                            \
	"r.address, a.started, a.duration_ms, a.mx, a.ip, a.tls, a.result, a.reply, "               \
	"a.tls_policy, a.tls_verified, a.tls_detail "

static struct spool_attempt_row attempt_row(sqlite3_stmt *st, int col)
{
	return (struct spool_attempt_row){
	    .recipient = spool_column_text(st, col),
	    .started_ms = sqlite3_column_int64(st, col + 1),
	    .duration_ms = sqlite3_column_int64(st, col + 2),
	    .mx = spool_column_text(st, col + 3),
	    .ip = spool_column_text(st, col + 4),
	    .tls = spool_column_text(st, col + 5),
	    .result = (enum spool_attempt_result)sqlite3_column_int(st, col + 6),
	    .reply = spool_column_text(st, col + 7),
	    .tls_policy = spool_column_text(st, col + 8),
	    .tls_verified = spool_column_text(st, col + 9),
	    .tls_detail = spool_column_text(st, col + 10),
	};
}

int spool_attempts(struct spool *s, uint64_t id,
                   void (*fn)(void *arg, const struct spool_attempt_row *a), void *arg, char *why,
                   size_t whylen)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db,
	                       "SELECT " ATTEMPT_COLUMNS "FROM attempt_log a JOIN recipients r ON "
	                       "r.id = a.rcpt_id WHERE a.msg_id = ?1 ORDER BY a.id",
	                       -1, &st, NULL) != SQLITE_OK)
		return spool_db_error(s, "preparing the delivery log", why, whylen);
	sqlite3_bind_int64(st, 1, (sqlite3_int64)id);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct spool_attempt_row a = attempt_row(st, 0);
		fn(arg, &a);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return spool_db_error(s, "reading the delivery log", why, whylen);
	return 0;
}

static char *history_sql(const struct spool_history_query *q, const struct spool_page *p)
{
	char *rcpt = recipient_where(&q->f, "a.id IS NOT NULL");
	char *sql = NULL;
	size_t len;
	FILE *o = open_memstream(&sql, &len);
	if (o == NULL)
		abort();
	fprintf(o,
	        "SELECT a.id, a.msg_id, m.sender, m.done_at, " ATTEMPT_COLUMNS
	        "FROM attempt_log a JOIN recipients r ON r.id = a.rcpt_id JOIN messages m ON "
	        "m.id = a.msg_id WHERE %s",
	        rcpt);
	if (q->result >= 0)
		fputs(" AND a.result = ?", o);
	range_where(o, "a.started", q->started_from_ms, q->started_before_ms);
	page_after(o, "a.started", "a.id", p);
	page_order(o, "a.started", "a.id", p);
	free(rcpt);
	if (fclose(o) != 0)
		abort();
	return sql;
}

int spool_history_page(struct spool *s, const struct spool_history_query *q, struct spool_page *p,
                       void (*fn)(void *arg, const struct spool_history_row *h), void *arg,
                       char *why, size_t whylen)
{
	p->more = false;
	if (p->limit == 0) {
		snprintf(why, whylen, "spool: a page of no attempts");
		return -1;
	}
	char *sql = history_sql(q, p);
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
	free(sql);
	if (rc != SQLITE_OK)
		return spool_db_error(s, "preparing the delivery history", why, whylen);
	int i = 1;
	filter_bind(&q->f, st, &i);
	if (q->result >= 0)
		sqlite3_bind_int(st, i++, q->result);
	range_bind(st, &i, q->started_from_ms, q->started_before_ms);
	page_bind(st, &i, p);
	sqlite3_bind_int64(st, i, (sqlite3_int64)p->limit + 1);
	size_t n = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == p->limit) {
			p->more = true;
			break;
		}
		struct spool_history_row h = {
		    .msg_id = (uint64_t)sqlite3_column_int64(st, 1),
		    .sender = spool_column_text(st, 2),
		    .done_ms = column_time(st, 3),
		    .a = attempt_row(st, 4),
		};
		p->next = (struct spool_key){.time_ms = h.a.started_ms,
		                             .id = (uint64_t)sqlite3_column_int64(st, 0)};
		fn(arg, &h);
		n++;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return spool_db_error(s, "reading the delivery history", why, whylen);
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
		snprintf(line, sizeof line, "%s: %s", problem, spool_column_text(st, 0));
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
			const char *r = spool_column_text(st, 0);
			if (strcmp(r, "ok") != 0) {
				fn(r, arg);
				n++;
			}
		}
		sqlite3_finalize(st);
	}
	n +=
	    check_query(s,
	                "SELECT printf('%X', id) FROM messages WHERE done_at IS NULL AND id NOT IN "
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
	n += check_query(s,
	                 "SELECT printf('%X', id) FROM messages m WHERE done_at IS NOT NULL AND "
	                 "EXISTS (SELECT 1 FROM recipients WHERE msg_id = m.id AND "
	                 "state IN (0, 1, 2))",
	                 "message done with recipients pending", fn, arg);
	n += check_query(s,
	                 "SELECT printf('%X', msg_id) FROM attempt_log WHERE msg_id NOT IN "
	                 "(SELECT id FROM messages)",
	                 "delivery log without message", fn, arg);
	return n;
}

sqlite3_stmt *spool_more_stmt(struct spool *s, enum spool_more id, const char *sql, char *why,
                              size_t whylen)
{
	if (s->more[id] == NULL &&
	    sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s->more[id], NULL) !=
	        SQLITE_OK) {
		spool_db_error(s, "preparing a statement", why, whylen);
		return NULL;
	}
	return s->more[id];
}

sqlite3 *spool_sqlite(struct spool *s)
{
	return s->db;
}
