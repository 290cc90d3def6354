/* tls_rows.c - TLS results by UTC day in the spool. */
#include "spool/tls_rows.h"

#include "spool/internal.h"

#include <stdio.h>
#include <string.h>

/* The row of the result's policy on day, created with zero counts; its id
 * through RETURNING, also when it already existed. */
static int64_t result_row(struct spool *s, const char *day, const struct tlsrpt_result *r,
                          bool reportable, char *why, size_t whylen)
{
	sqlite3_stmt *st = spool_more_stmt(
	    s, MORE_TLS_RESULT,
	    "INSERT INTO tls_results (day, policy_domain, policy_type, policy_strings, mx_hosts, "
	    "success, failure, reportable) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) "
	    "ON CONFLICT (day, policy_domain, policy_type, policy_strings, mx_hosts, reportable) "
	    "DO UPDATE SET success = success + excluded.success, "
	    "failure = failure + excluded.failure RETURNING id",
	    why, whylen);
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, day, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, r->domain, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, tlsrpt_policy_type_name(r->type), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, r->strings, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, r->mx_hosts, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, r->success);
	sqlite3_bind_int64(st, 7, r->failure);
	sqlite3_bind_int(st, 8, reportable);
	int64_t id = -1;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		id = sqlite3_column_int64(st, 0);
		rc = sqlite3_step(st);
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_DONE || id < 0)
		return spool_db_error(s, "adding TLS results", why, whylen);
	return id;
}

static int add_failure(struct spool *s, int64_t id, const struct tlsrpt_failure *f, char *why,
                       size_t whylen)
{
	sqlite3_stmt *st = spool_more_stmt(
	    s, MORE_TLS_FAILURE,
	    "INSERT INTO tls_failures (result_id, result_type, sending_ip, receiving_mx, "
	    "receiving_ip, reason, count) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) "
	    "ON CONFLICT DO UPDATE SET count = count + excluded.count",
	    why, whylen);
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_text(st, 2, f->result_type, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, f->sending_ip, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, f->receiving_mx, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, f->receiving_ip, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, f->reason, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 7, f->count);
	return spool_step_done(s, st, "adding a TLS failure detail", why, whylen);
}

int spool_tls_results_add(struct spool *s, const char *day, const struct tlsrpt_result *r,
                          bool reportable, char *why, size_t whylen)
{
	int64_t id = result_row(s, day, r, reportable, why, whylen);
	if (id < 0)
		return -1;
	for (size_t i = 0; i < r->nfail; i++)
		if (add_failure(s, id, &r->fail[i], why, whylen) < 0)
			return -1;
	return 0;
}

static void copy_text(char *dst, size_t n, sqlite3_stmt *st, int col)
{
	const char *t = spool_column_text(st, col);
	snprintf(dst, n, "%s", t ? t : "");
}

static int read_failures(struct spool *s, int64_t id, struct tlsrpt_set *one, char *why,
                         size_t whylen)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(spool_sqlite(s),
	                       "SELECT result_type, sending_ip, receiving_mx, receiving_ip, reason, "
	                       "count FROM tls_failures WHERE result_id = ?1 ORDER BY result_type, "
	                       "receiving_mx, receiving_ip, reason, sending_ip",
	                       -1, &st, NULL) != SQLITE_OK)
		return spool_db_error(s, "preparing TLS failure details", why, whylen);
	sqlite3_bind_int64(st, 1, id);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct tlsrpt_failure f = {.count = sqlite3_column_int64(st, 5)};
		copy_text(f.result_type, sizeof f.result_type, st, 0);
		copy_text(f.sending_ip, sizeof f.sending_ip, st, 1);
		copy_text(f.receiving_mx, sizeof f.receiving_mx, st, 2);
		copy_text(f.receiving_ip, sizeof f.receiving_ip, st, 3);
		copy_text(f.reason, sizeof f.reason, st, 4);
		tlsrpt_add_failure(&one->r[0], &f);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : spool_db_error(s, "reading TLS failure details", why, whylen);
}

int spool_tls_results_read(struct spool *s, const char *day, const char *domain,
                           bool reportable_only,
                           void (*fn)(void *arg, const struct tlsrpt_result *r), void *arg,
                           char *why, size_t whylen)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(spool_sqlite(s),
	                       "SELECT id, policy_domain, policy_type, policy_strings, mx_hosts, "
	                       "success, failure FROM tls_results WHERE day = ?1 AND "
	                       "(?2 IS NULL OR policy_domain = ?2) AND (?3 = 0 OR reportable = 1) "
	                       "ORDER BY policy_domain, policy_type, policy_strings, mx_hosts",
	                       -1, &st, NULL) != SQLITE_OK)
		return spool_db_error(s, "preparing TLS results", why, whylen);
	sqlite3_bind_text(st, 1, day, -1, SQLITE_STATIC);
	spool_bind_text(st, 2, domain);
	sqlite3_bind_int(st, 3, reportable_only);
	int rc, failed = 0;
	while (!failed && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct tlsrpt_set one = {0};
		int type = tlsrpt_policy_type_parse(spool_column_text(st, 2));
		struct tlsrpt_result *r =
		    tlsrpt_set_result(&one, type < 0 ? TLSRPT_NO_POLICY : type,
		                      spool_column_text(st, 1), spool_column_text(st, 3),
		                      spool_column_text(st, 4));
		r->success = sqlite3_column_int64(st, 5);
		r->failure = sqlite3_column_int64(st, 6);
		failed = read_failures(s, sqlite3_column_int64(st, 0), &one, why, whylen) < 0;
		if (!failed)
			fn(arg, &one.r[0]);
		tlsrpt_set_clear(&one);
	}
	sqlite3_finalize(st);
	if (failed)
		return -1;
	return rc == SQLITE_DONE ? 0 : spool_db_error(s, "reading TLS results", why, whylen);
}

static int64_t run_with_day(struct spool *s, const char *sql, const char *day, char *why,
                            size_t whylen)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(spool_sqlite(s), sql, -1, &st, NULL) != SQLITE_OK)
		return spool_db_error(s, "preparing to forget TLS results", why, whylen);
	sqlite3_bind_text(st, 1, day, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return spool_db_error(s, "forgetting TLS results", why, whylen);
	return sqlite3_changes(spool_sqlite(s));
}

int64_t spool_tls_results_forget(struct spool *s, const char *day, char *why, size_t whylen)
{
	if (run_with_day(s,
	                 "DELETE FROM tls_failures WHERE result_id IN "
	                 "(SELECT id FROM tls_results WHERE day < ?1)",
	                 day, why, whylen) < 0 ||
	    run_with_day(s, "DELETE FROM tlsrpt_reports WHERE day < ?1", day, why, whylen) < 0)
		return -1;
	return run_with_day(s, "DELETE FROM tls_results WHERE day < ?1", day, why, whylen);
}

/* ---- daily reports ---- */

int spool_tls_report_candidates(struct spool *s, const char *day, bool all_success,
                                char (*domains)[256], int max, char *why, size_t whylen)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(spool_sqlite(s),
	                       "SELECT DISTINCT policy_domain FROM tls_results r WHERE day = ?1 AND "
	                       "reportable = 1 AND (?2 OR failure > 0 OR EXISTS (SELECT 1 FROM "
	                       "tls_failures f WHERE f.result_id = r.id)) AND NOT EXISTS (SELECT 1 "
	                       "FROM tlsrpt_reports d WHERE d.day = r.day AND d.policy_domain = "
	                       "r.policy_domain) ORDER BY policy_domain LIMIT ?3",
	                       -1, &st, NULL) != SQLITE_OK)
		return spool_db_error(s, "preparing report candidates", why, whylen);
	sqlite3_bind_text(st, 1, day, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, all_success);
	sqlite3_bind_int(st, 3, max);
	int n = 0, rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && n < max)
		copy_text(domains[n++], 256, st, 0);
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return spool_db_error(s, "reading report candidates", why, whylen);
	return n;
}

int spool_tls_report_done(struct spool *s, const char *day, const char *domain, int64_t now_ms,
                          const char *outcome, char *why, size_t whylen)
{
	sqlite3_stmt *st = spool_more_stmt(s, MORE_REPORT_DONE,
	                                   "INSERT OR IGNORE INTO tlsrpt_reports (day, policy_domain, "
	                                   "done_at, outcome) VALUES (?1, ?2, ?3, ?4)",
	                                   why, whylen);
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, day, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, domain, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, now_ms);
	sqlite3_bind_text(st, 4, outcome, -1, SQLITE_STATIC);
	if (spool_step_done(s, st, "marking a report done", why, whylen) < 0)
		return -1;
	return sqlite3_changes(spool_sqlite(s)) > 0 ? 1 : 0;
}

int spool_tls_post_add(struct spool *s, const char *url, const char *report_id,
                       const void *body, size_t len, int64_t now_ms, char *why, size_t whylen)
{
	sqlite3_stmt *st = spool_more_stmt(s, MORE_POST_ADD,
	                                   "INSERT INTO tlsrpt_posts (url, report_id, body, "
	                                   "next_attempt) VALUES (?1, ?2, ?3, ?4)",
	                                   why, whylen);
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, url, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, report_id, -1, SQLITE_STATIC);
	sqlite3_bind_blob64(st, 3, body, len, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, now_ms);
	return spool_step_done(s, st, "queueing a report post", why, whylen);
}

int spool_tls_posts_due(struct spool *s, int64_t now_ms, int max,
                        void (*fn)(void *arg, const struct spool_tls_post *p), void *arg,
                        int64_t *next_ms, char *why, size_t whylen)
{
	/* one row more than asked for: the first one left out says when to look again */
	sqlite3_stmt *st = spool_more_stmt(s, MORE_POST_DUE,
	                                   "SELECT id, url, report_id, body, attempts, next_attempt "
	                                   "FROM tlsrpt_posts ORDER BY next_attempt LIMIT ?1 + 1",
	                                   why, whylen);
	if (st == NULL)
		return -1;
	sqlite3_bind_int(st, 1, max);
	*next_ms = INT64_MAX;
	int n = 0, rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t due = sqlite3_column_int64(st, 5);
		if (due > now_ms || n == max) {
			*next_ms = due;
			rc = SQLITE_DONE;
			break;
		}
		struct spool_tls_post p = {
		    .id = sqlite3_column_int64(st, 0),
		    .url = spool_column_text(st, 1),
		    .report_id = spool_column_text(st, 2),
		    .body = sqlite3_column_blob(st, 3),
		    .len = (size_t)sqlite3_column_bytes(st, 3),
		    .attempts = sqlite3_column_int(st, 4),
		};
		fn(arg, &p);
		n++;
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return spool_db_error(s, "reading report posts", why, whylen);
	return n;
}

int spool_tls_post_gone(struct spool *s, int64_t id, char *why, size_t whylen)
{
	sqlite3_stmt *st = spool_more_stmt(s, MORE_POST_GONE, "DELETE FROM tlsrpt_posts WHERE id = ?1",
	                                   why, whylen);
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	return spool_step_done(s, st, "removing a report post", why, whylen);
}

int spool_tls_post_retry(struct spool *s, int64_t id, int64_t next_ms, const char *error,
                         char *why, size_t whylen)
{
	sqlite3_stmt *st = spool_more_stmt(s, MORE_POST_RETRY,
	                                   "UPDATE tlsrpt_posts SET attempts = attempts + 1, "
	                                   "next_attempt = ?2, last_error = ?3 WHERE id = ?1",
	                                   why, whylen);
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, next_ms);
	spool_bind_text(st, 3, error);
	return spool_step_done(s, st, "rescheduling a report post", why, whylen);
}
