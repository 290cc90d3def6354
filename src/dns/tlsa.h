/* tlsa.h - the TLSA records of one MX host (RFC 7672 §2.2).
 *
 * Looked up only for a host whose addresses are DNSSEC-signed (the caller
 * decides; RFC 7672 §2.2.1). For a host reached through CNAMEs, the name at
 * the end of the chain is asked first and the host's own name second
 * (RFC 7672 §2.2.2). Records count only when the answer is authentic: an
 * unsigned TLSA RRset (or one behind an unsigned CNAME) is as good as none.
 * A SERVFAIL, bogus or malformed answer is a failure, never "no records":
 * that is how an attacker who can break DNS would switch DANE off.
 */
#ifndef OUTPOST_DNS_TLSA_H
#define OUTPOST_DNS_TLSA_H

#include "dns/dns.h"

enum tlsa_result {
	TLSA_NONE,   /* no (signed) TLSA records */
	TLSA_FOUND,  /* records, usable or not (the caller judges) */
	TLSA_FAILED, /* the lookup failed: the host must not be dialled */
};

struct host_tlsa {
	enum tlsa_result result;
	char base[DNS_NAME_MAX]; /* TLSA base domain: the name the records were found under */
	size_t n;
	struct dns_tlsa *records; /* owned, data included */
	int ede;                  /* RFC 8914 INFO-CODE of a failure, -1 when none */
	char ede_text[128];
	char error[200]; /* human reason of a failure */
};

typedef void (*tlsa_callback)(void *arg, struct host_tlsa *t);

struct tlsa_lookup;

/* Looks up _port._tcp.expanded, then _port._tcp.host when expanded differs
 * and has no records. The callback owns t (host_tlsa_free) and runs later,
 * never from within this call. */
struct tlsa_lookup *tlsa_lookup(struct dns_resolver *r, const char *host, const char *expanded,
                                int port, tlsa_callback cb, void *arg);

/* The callback will not run. */
void tlsa_lookup_cancel(struct tlsa_lookup *l);

void host_tlsa_free(struct host_tlsa *t);

#endif
