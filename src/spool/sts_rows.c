/* sts_rows.c - the MTA-STS policy cache in the spool. */
#include "spool/sts_rows.h"

#include "spool/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sts_row_clear(struct sts_row *r)
{
	free(r->policy);
	memset(r, 0, sizeof *r);
}

int spool_sts_get(struct spool *s, const char *domain, struct sts_row *out, char *why,
                  size_t whylen)
{
	sqlite3_stmt *st = spool_more_stmt(
	    s, MORE_STS_GET,
	    "SELECT record_id, policy, backoff, fetched, valid_until, last_use "
	    "FROM mtasts_policies WHERE domain = ?1",
	    why, whylen);
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, domain, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st), found = 0;
	if (rc == SQLITE_ROW) {
		memset(out, 0, sizeof *out);
		snprintf(out->domain, sizeof out->domain, "%s", domain);
		snprintf(out->record_id, sizeof out->record_id, "%s", spool_column_text(st, 0));
		const char *text = spool_column_text(st, 1);
		out->policy = strdup(text ? text : "");
		if (out->policy == NULL)
			abort();
		out->backoff = sqlite3_column_int(st, 2) != 0;
		out->fetched_ms = sqlite3_column_int64(st, 3);
		out->valid_until_ms = sqlite3_column_int64(st, 4);
		out->last_use_ms = sqlite3_column_int64(st, 5);
		found = 1;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return spool_db_error(s, "reading an MTA-STS policy", why, whylen);
	return found;
}

int spool_sts_put(struct spool *s, const struct sts_row *r, char *why, size_t whylen)
{
	sqlite3_stmt *st = spool_more_stmt(
	    s, MORE_STS_PUT,
	    "INSERT OR REPLACE INTO mtasts_policies (domain, record_id, policy, backoff, fetched, "
	    "valid_until, last_use) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	    why, whylen);
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, r->domain, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, r->record_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, r->policy ? r->policy : "", -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 4, r->backoff);
	sqlite3_bind_int64(st, 5, r->fetched_ms);
	sqlite3_bind_int64(st, 6, r->valid_until_ms);
	sqlite3_bind_int64(st, 7, r->last_use_ms);
	return spool_step_done(s, st, "storing an MTA-STS policy", why, whylen);
}

int spool_sts_confirm(struct spool *s, const char *domain, int64_t now_ms, int64_t valid_until_ms,
                      char *why, size_t whylen)
{
	sqlite3_stmt *st = spool_more_stmt(s, MORE_STS_CONFIRM,
	                                   "UPDATE mtasts_policies SET fetched = ?2, valid_until = ?3, "
	                                   "last_use = ?2 WHERE domain = ?1",
	                                   why, whylen);
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, domain, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, now_ms);
	sqlite3_bind_int64(st, 3, valid_until_ms);
	return spool_step_done(s, st, "confirming an MTA-STS policy", why, whylen);
}

int spool_sts_delete(struct spool *s, const char *domain, char *why, size_t whylen)
{
	sqlite3_stmt *st = spool_more_stmt(
	    s, MORE_STS_DELETE, "DELETE FROM mtasts_policies WHERE domain = ?1", why, whylen);
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, domain, -1, SQLITE_STATIC);
	return spool_step_done(s, st, "deleting an MTA-STS policy", why, whylen);
}

int spool_sts_stale(struct spool *s, int64_t fetched_before_ms, char (*domains)[256], int max,
                    char *why, size_t whylen)
{
	sqlite3_stmt *st = spool_more_stmt(s, MORE_STS_STALE,
	                                   "SELECT domain FROM mtasts_policies WHERE backoff = 0 AND "
	                                   "fetched < ?1 ORDER BY fetched LIMIT ?2",
	                                   why, whylen);
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, fetched_before_ms);
	sqlite3_bind_int(st, 2, max);
	int n = 0, rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && n < max)
		snprintf(domains[n++], 256, "%s", spool_column_text(st, 0));
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return spool_db_error(s, "listing MTA-STS policies", why, whylen);
	return n;
}

int64_t spool_sts_forget(struct spool *s, int64_t used_before_ms, int64_t expired_before_ms,
                         char *why, size_t whylen)
{
	sqlite3_stmt *st = spool_more_stmt(
	    s, MORE_STS_FORGET,
	    "DELETE FROM mtasts_policies WHERE last_use < ?1 OR valid_until < ?2", why, whylen);
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, used_before_ms);
	sqlite3_bind_int64(st, 2, expired_before_ms);
	if (spool_step_done(s, st, "forgetting MTA-STS policies", why, whylen) < 0)
		return -1;
	return sqlite3_changes(spool_sqlite(s));
}
