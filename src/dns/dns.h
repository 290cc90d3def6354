/* dns.h - asynchronous DNS with DNSSEC status (c-ares transport, ldns packets).
 *
 * Queries go out with RD, AD and EDNS DO set (RFC 6840 §5.7, RFC 3225), over
 * c-ares driven by the libevent loop. Each answer is parsed by ldns into a
 * struct dns_answer: the records of the asked type (after following the
 * CNAMEs in the answer section), the rcode, the RFC 8914 extended error, and
 * whether the answer is authentic. The AD bit is believed only as
 * dns.trust_ad says (auto: only when every nameserver is a loopback address,
 * RFC 7672 §1.3 / RFC 6698 §4.1 advice: the path to the validator must be
 * trusted). SERVFAIL and timeouts are temporary; NXDOMAIN and NODATA are
 * "not found". The parser is a pure function over the wire (fuzzed).
 * Answers are kept for their TTL, at most dns.cache_max_ttl (cache.h).
 */
#ifndef OUTPOST_DNS_DNS_H
#define OUTPOST_DNS_DNS_H

#include "conf/conf.h"

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct dns_resolver;

enum dns_type {
	DNS_A = 1,
	DNS_CNAME = 5,
	DNS_MX = 15,
	DNS_TXT = 16,
	DNS_AAAA = 28,
	DNS_TLSA = 52,
};

enum dns_status {
	DNS_OK,        /* records found */
	DNS_NOTFOUND,  /* NXDOMAIN or NODATA: nothing of that type exists */
	DNS_TEMPFAIL,  /* SERVFAIL, REFUSED, timeout, network error: try later */
	DNS_MALFORMED, /* an answer we could not parse: treated as temporary */
};

#define DNS_NAME_MAX 256 /* presentation form without trailing dot, plus NUL */

struct dns_mx {
	uint16_t preference;
	char host[DNS_NAME_MAX]; /* lower case, no trailing dot; "" for the null MX "." */
};

struct dns_tlsa {
	uint8_t usage, selector, mtype;
	uint8_t *data; /* owned by the answer */
	size_t len;
};

struct dns_addr {
	int family; /* AF_INET or AF_INET6 */
	union {
		struct in_addr v4;
		struct in6_addr v6;
	};
};

struct dns_answer {
	enum dns_status status;
	int rcode;                    /* 0 NOERROR, 2 SERVFAIL, 3 NXDOMAIN, ... -1 when no answer */
	bool nxdomain;                /* the name does not exist at all (rcode 3) */
	bool authentic;               /* AD set and trusted (see dns_resolver_new) */
	int ede;                      /* RFC 8914 INFO-CODE, -1 when none */
	char ede_text[128];           /* EXTRA-TEXT, printable ASCII only */
	uint32_t ttl;                 /* smallest TTL of the records returned */
	char canonical[DNS_NAME_MAX]; /* the name at the end of the answer's CNAME chain */
	char cname[DNS_NAME_MAX];     /* for DNS_CNAME queries: the target, "" if none */
	size_t n;                     /* records of the asked type */
	struct dns_mx *mx;            /* DNS_MX, sorted by preference (ties in answer order) */
	struct dns_addr *addrs;       /* DNS_A, DNS_AAAA */
	struct dns_tlsa *tlsa;        /* DNS_TLSA */
	char **txt;                   /* DNS_TXT: each record's strings joined */
	char error[160];              /* human reason when status != DNS_OK */
};

/* Parses a wire-format response to a query for qname/qtype. authentic is
 * set from the AD bit when trust_ad is true. Fills *a (free with
 * dns_answer_free) and returns a->status. Never reads past len. */
enum dns_status dns_answer_parse(const uint8_t *wire, size_t len, const char *qname,
                                 enum dns_type qtype, bool trust_ad, struct dns_answer *a);

void dns_answer_free(struct dns_answer *a);

/* Makes *to a deep copy of *from (free with dns_answer_free). */
void dns_answer_copy(struct dns_answer *to, const struct dns_answer *from);

/* "mx", "a", "aaaa", "tlsa", "txt", "cname". */
const char *dns_type_name(enum dns_type t);

/* Creates the resolver on base: nameservers from conf->dns_nameserver
 * ("ip:port" or "ip"), else /etc/resolv.conf; trust_ad per conf. */
struct dns_resolver *dns_resolver_new(struct event_base *base, const struct conf *conf, char *why,
                                      size_t whylen);
/* Queries still pending are dropped without their callbacks (cancel the
 * gathers first: their state is the caller's). Not from within a callback. */
void dns_resolver_free(struct dns_resolver *r);

/* True when AD bits from the configured nameservers are believed. */
bool dns_resolver_trusts_ad(const struct dns_resolver *r);

/* Called once per query on the loop thread; the answer is valid only during
 * the call (copy what you keep). */
typedef void (*dns_callback)(void *arg, const struct dns_answer *a);

/* Asks name (absolute or relative; treated as absolute) for type. The
 * callback runs later, never from within this call. A question answered
 * before and still within its TTL is answered from the cache. While the same
 * question (names compared without case) is out, a new query shares its
 * answer instead of sending another; callbacks run in the order the queries
 * were made. Returns a handle that dns_cancel accepts until the callback has run. */
struct dns_query *dns_query(struct dns_resolver *r, const char *name, enum dns_type type,
                            dns_callback cb, void *arg);

/* The callback will not be called. */
void dns_cancel(struct dns_query *q);

#endif
