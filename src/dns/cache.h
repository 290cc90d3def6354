/* cache.h - DNS answers kept for their time to live.
 *
 * Every delivery attempt asks the same few questions of its domain (CNAME,
 * MX, the hosts' addresses, TLSA): at hundreds of attempts a second to one
 * domain that is several round trips to the resolver and their parsing for
 * each, for answers the resolver itself only repeats from its cache. This
 * cache keeps the parsed answer (dns.h), with its records, its AD bit and
 * its extended error, for the smallest TTL of the answer (a negative answer:
 * the SOA minimum of RFC 2308 §5), at most dns.cache_max_ttl. Only answers
 * that say something are kept (records, NXDOMAIN, NODATA); failures never
 * are. A hit is a copy of the answer as first parsed (parsing it again cost
 * 2.7 % of outpost's CPU in bench W7). Bounded: at most DNS_CACHE_ENTRIES
 * answers and DNS_CACHE_BYTES octets of memory, the oldest answers leave
 * first.
 */
#ifndef OUTPOST_DNS_CACHE_H
#define OUTPOST_DNS_CACHE_H

#include "dns/dns.h"

#include <stddef.h>
#include <stdint.h>

#define DNS_CACHE_ENTRIES 8192
#define DNS_CACHE_BYTES   (16 << 20) /* octets of memory, entries and records */
#define DNS_CACHE_ANSWER_MAX 8192   /* larger answers are not kept */

struct dns_cache;

/* Answers are kept at most max_ttl_s seconds; 0: nothing is kept. */
struct dns_cache *dns_cache_new(uint32_t max_ttl_s);
void dns_cache_free(struct dns_cache *c);

/* key: the question's name in lower case without a trailing dot. Returns
 * the kept answer (valid until the next call into the cache) and its
 * remaining TTL, or NULL when nothing unexpired is kept. */
const struct dns_answer *dns_cache_get(struct dns_cache *c, const char *key, enum dns_type type,
                                       int64_t now_ms, uint32_t *ttl_left);

/* Keeps a copy of a for ttl seconds (capped); replaces what the key had.
 * Nothing is kept for ttl 0 or an answer taking over DNS_CACHE_ANSWER_MAX
 * octets. */
void dns_cache_put(struct dns_cache *c, const char *key, enum dns_type type,
                   const struct dns_answer *a, uint32_t ttl, int64_t now_ms);

/* The octets a copy of a takes (what the bounds count). */
size_t dns_cache_answer_size(const struct dns_answer *a);

/* Answers kept now (for tests). */
size_t dns_cache_entries(const struct dns_cache *c);

#endif
