/* record.h - the _smtp._tls TXT record of a policy domain (RFC 8460 §3):
 * where its TLS reports go.
 *
 * Among the TXT strings, those that start with "v=TLSRPTv1" followed by the
 * field delimiter are TLSRPT records; exactly one must be there, else the
 * domain does not take reports. Its "rua" fields list the destinations:
 * "mailto:" addresses and "https:" URLs; other schemes are skipped. The
 * strings come from DNS and are hostile: nothing is read past their end,
 * and the results never hold anything the grammar does not allow.
 */
#ifndef OUTPOST_TLSRPT_RECORD_H
#define OUTPOST_TLSRPT_RECORD_H

#include <stdbool.h>
#include <stddef.h>

#define TLSRPT_RUA_MAX 8   /* destinations kept; more are ignored */
#define TLSRPT_URI_MAX 512 /* longer URIs are skipped */

enum tlsrpt_rua_kind { TLSRPT_RUA_MAILTO, TLSRPT_RUA_HTTPS };

struct tlsrpt_rua {
	enum tlsrpt_rua_kind kind;
	char target[TLSRPT_URI_MAX]; /* the address (percent-decoded) or the whole https URL */
};

enum tlsrpt_record_status {
	TLSRPT_RECORD_OK,       /* one record with at least one usable rua */
	TLSRPT_RECORD_NONE,     /* no TLSRPT record */
	TLSRPT_RECORD_MULTIPLE, /* more than one: no reports (§3) */
	TLSRPT_RECORD_SYNTAX,   /* the record does not parse */
	TLSRPT_RECORD_NO_RUA,   /* it parses, but names no mailto: or https: destination */
};

struct tlsrpt_record {
	size_t nrua;
	struct tlsrpt_rua rua[TLSRPT_RUA_MAX];
};

/* Looks through the n TXT answers (each record's strings joined; NULL
 * entries skipped). Fills *out on OK; why on every other status. */
enum tlsrpt_record_status tlsrpt_record_find(const char *const *txt, size_t n,
                                             struct tlsrpt_record *out, char *why,
                                             size_t whylen);

#endif
