/* internal.h - what spool.c shares with the spool's other table modules
 * (sts_rows.c, tls_rows.c). Not for use outside src/spool. */
#ifndef OUTPOST_SPOOL_INTERNAL_H
#define OUTPOST_SPOOL_INTERNAL_H

#include "spool/spool.h"

#include <sqlite3.h>

/* Statements of the other modules, prepared on first use and kept. */
enum spool_more {
	MORE_STS_GET,
	MORE_STS_PUT,
	MORE_STS_CONFIRM,
	MORE_STS_DELETE,
	MORE_STS_STALE,
	MORE_STS_FORGET,
	MORE_TLS_RESULT,
	MORE_TLS_FAILURE,
	MORE_REPORT_DONE,
	MORE_POST_ADD,
	MORE_POST_DUE,
	MORE_POST_GONE,
	MORE_POST_RETRY,
	MORE_BEGIN,
	MORE_COMMIT,
	MORE_SAVEPOINT,
	MORE_RELEASE,
	MORE_ROLLBACK_TO,
	MORE_DELTA_TAKE,
	MORE_DELTA_RESET,
	SPOOL_MORE_COUNT
};

/* NULL with why filled when it cannot be prepared. */
sqlite3_stmt *spool_more_stmt(struct spool *s, enum spool_more id, const char *sql, char *why,
                              size_t whylen);
sqlite3 *spool_sqlite(struct spool *s);

/* -1 with "spool: what: sqlite's message" in why. */
int spool_db_error(struct spool *s, const char *what, char *why, size_t whylen);
/* Steps st to its end, resets and unbinds it; 0 or spool_db_error. */
int spool_step_done(struct spool *s, sqlite3_stmt *st, const char *what, char *why,
                    size_t whylen);
/* Binds v (SQLITE_STATIC), or NULL. */
void spool_bind_text(sqlite3_stmt *st, int i, const char *v);
const char *spool_column_text(sqlite3_stmt *st, int col);

#endif
