/* notice.h - one delivery status notice per message (RFC 3464).
 *
 * An attempt's outcome marks each recipient that failed, or whose attempt
 * number reached delivery.delay_notice_after, with a notice pending
 * (spool_attempt_end). Once no recipient of the message is in flight any
 * more, notice_flush gathers every pending one, of every destination, into
 * a single notice to the envelope sender (failed and delayed recipients
 * side by side, each with its own Action) and queues it from <> in the same
 * transaction. So a recipient held or dropped while its attempt ran gets
 * exactly what its recorded outcome says, and a notice never waits for more
 * than the attempts running now. Never for a <> sender (RFC 3464 §2,
 * RFC 5321 §4.5.5): the pending marks are then simply cleared. Runs on the
 * writer thread.
 */
#ifndef OUTPOST_DELIVER_NOTICE_H
#define OUTPOST_DELIVER_NOTICE_H

#include "conf/conf.h"
#include "dkim/dkim.h"
#include "spool/spool.h"

#include <stddef.h>
#include <stdint.h>

/* What a notice takes from the configuration, copied on the loop thread
 * when the job is made: the flush runs on the writer thread, and a reload
 * may change [delivery] meanwhile (docs/install.md, "Reload"). */
struct notice_settings {
	const char *reporting_mta; /* [server] hostname, which no reload changes */
	int64_t first_retry_ms;
	int max_attempts;
};

/* The settings of conf now. */
struct notice_settings notice_settings_of(const struct conf *conf);

struct notice_result {
	int failed, delayed; /* recipients reported */
	uint64_t dsn_id;     /* the notice queued, 0 when none */
};

/* When nothing of msg_id is in flight: queues the notice for its pending
 * recipients (if any), signed with dkim's keys of the notice's From domain
 * (our hostname; dkim may be NULL). Returns 0 (res says what was done) or
 * -1, also when the notice cannot be signed: it is never queued unsigned. */
int notice_flush(struct spool *sp, const struct notice_settings *ns, const struct dkim_signer *dkim,
                 uint64_t msg_id, int64_t now_ms, struct notice_result *res, char *why,
                 size_t whylen);

#endif
