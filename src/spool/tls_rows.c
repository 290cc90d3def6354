/* tls_rows.c - TLS results by UTC day in the spool. */
#include "spool/tls_rows.h"

#include "spool/internal.h"

#include <stdio.h>
#include <string.h>

/* The row of the result's policy on day, created with zero counts; its id
 * through RETURNING, also when it already existed. */
static int64_t result_row(struct spool *s, const char *day, const struct tlsrpt_result *r,
                          char *why, size_t whylen)
{
	sqlite3_stmt *st = spool_more_stmt(
	    s, MORE_TLS_RESULT,
	    "INSERT INTO tls_results (day, policy_domain, policy_type, policy_strings, mx_hosts, "
	    "success, failure) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) "
	    "ON CONFLICT (day, policy_domain, policy_type, policy_strings, mx_hosts) DO UPDATE SET "
	    "success = success + excluded.success, failure = failure + excluded.failure "
	    "RETURNING id",
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
                          char *why, size_t whylen)
{
	int64_t id = result_row(s, day, r, why, whylen);
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
                           void (*fn)(void *arg, const struct tlsrpt_result *r), void *arg,
                           char *why, size_t whylen)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(spool_sqlite(s),
	                       "SELECT id, policy_domain, policy_type, policy_strings, mx_hosts, "
	                       "success, failure FROM tls_results WHERE day = ?1 AND "
	                       "(?2 IS NULL OR policy_domain = ?2) "
	                       "ORDER BY policy_domain, policy_type, policy_strings, mx_hosts",
	                       -1, &st, NULL) != SQLITE_OK)
		return spool_db_error(s, "preparing TLS results", why, whylen);
	sqlite3_bind_text(st, 1, day, -1, SQLITE_STATIC);
	spool_bind_text(st, 2, domain);
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
	                 day, why, whylen) < 0)
		return -1;
	return run_with_day(s, "DELETE FROM tls_results WHERE day < ?1", day, why, whylen);
}
