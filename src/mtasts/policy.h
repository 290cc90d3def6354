/* policy.h - MTA-STS (RFC 8461): find the _mta-sts TXT record, parse the
 * policy text, match MX host names against it. Pure functions, no I/O.
 *
 * Both inputs are remote and hostile: the TXT strings come from DNS, the
 * policy text from an HTTPS server (up to MTASTS_POLICY_MAX_LEN bytes, may
 * hold NUL or bytes that are not UTF-8). Nothing is read past the lengths
 * given. A policy is parsed once and is immutable afterwards: parsing
 * returns a complete policy or NULL with an error naming the offending line.
 *
 * Errors fill why (NUL-terminated, truncated to whylen; why may be NULL
 * when whylen is 0). The texts never quote the remote input.
 */
#ifndef OUTPOST_MTASTS_POLICY_H
#define OUTPOST_MTASTS_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MTASTS_ID_MAX         32       /* RFC 8461 §3.1: sts-id is 1*32(ALPHA / DIGIT) */
#define MTASTS_POLICY_MAX_LEN 65536    /* RFC 8461 §3.3: suggested maximum policy size */
#define MTASTS_MAX_AGE_MAX    31557600 /* RFC 8461 §3.2: larger max_age values are capped */

/* ---- the _mta-sts TXT record (RFC 8461 §3.1) ---- */

enum mtasts_record_status {
	MTASTS_RECORD_OK,       /* exactly one STS record, and it parses */
	MTASTS_RECORD_NONE,     /* no string starts with "v=STSv1" *WSP ";" */
	MTASTS_RECORD_MULTIPLE, /* more than one STS record: no policy */
	MTASTS_RECORD_SYNTAX,   /* the one STS record does not parse: no policy */
};

struct mtasts_record {
	char id[MTASTS_ID_MAX + 1]; /* the policy instance id, letters and digits */
};

/* Looks through the n TXT answers at _mta-sts.<domain> (each record's
 * strings already joined, as RFC 8461 §3.1 asks; NULL entries are skipped)
 * for the STS record. Fills *out only on MTASTS_RECORD_OK; fills why on
 * every other status. */
enum mtasts_record_status mtasts_record_find(const char *const *txt, size_t n,
                                             struct mtasts_record *out, char *why, size_t whylen);

/* ---- the policy (RFC 8461 §3.2) ---- */

enum mtasts_mode {
	MTASTS_MODE_NONE,
	MTASTS_MODE_TESTING,
	MTASTS_MODE_ENFORCE,
};

struct mtasts_policy; /* opaque, immutable once parsed */

/* Parses the len bytes of text fetched from
 * https://mta-sts.<domain>/.well-known/mta-sts.txt. Returns a policy that
 * the caller owns (free it with mtasts_policy_free), or NULL with why
 * filled ("line 3: ..." when a line is at fault). */
struct mtasts_policy *mtasts_policy_parse(const char *text, size_t len, char *why, size_t whylen);

/* Frees p and everything it returned; p may be NULL. */
void mtasts_policy_free(struct mtasts_policy *p);

enum mtasts_mode mtasts_policy_mode(const struct mtasts_policy *p);

/* "none", "testing" or "enforce" (static strings). */
const char *mtasts_mode_name(enum mtasts_mode m);

/* Seconds to cache the policy: max_age, capped at MTASTS_MAX_AGE_MAX. */
int64_t mtasts_policy_max_age(const struct mtasts_policy *p);

/* The mx patterns in policy order: "mx1.example.net" or "*.example.net",
 * A-labels in lower case, no trailing dot. Owned by p; NULL when i is out
 * of range. */
size_t mtasts_policy_mx_count(const struct mtasts_policy *p);
const char *mtasts_policy_mx(const struct mtasts_policy *p, size_t i);

/* The policy's lines without their terminators, as fetched: the TLSRPT
 * "policy-string" (RFC 8460 §4.4). Owned by p; NULL when i is out of range. */
size_t mtasts_policy_line_count(const struct mtasts_policy *p);
const char *mtasts_policy_line(const struct mtasts_policy *p, size_t i);

/* The text exactly as given to mtasts_policy_parse, for a cache to store
 * and parse again later; *len gets its length (it is also NUL-terminated).
 * Owned by p. */
const char *mtasts_policy_text(const struct mtasts_policy *p, size_t *len);

/* RFC 8461 §4.1: true when the MX host name (A-labels or U-labels, any
 * case, a trailing dot ignored) matches one of the policy's mx patterns.
 * "*.example.net" matches "mx.example.net", not "example.net" nor
 * "a.b.example.net". A host that is not a valid name matches nothing. */
bool mtasts_policy_matches_mx(const struct mtasts_policy *p, const char *host);

#endif
