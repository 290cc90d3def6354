/* dns_internal.h - what the gather steps of src/dns/ need from the resolver
 * beyond the public API of dns.h. Not for use outside src/dns/.
 */
#ifndef OUTPOST_DNS_DNS_INTERNAL_H
#define OUTPOST_DNS_DNS_INTERNAL_H

#include "dns/dns.h"

/* The loop the resolver runs on (for results that need no DNS but must still
 * be delivered asynchronously). */
struct event_base *dns_resolver_base(const struct dns_resolver *r);

/* True when s is a host name we look up: ASCII letters, digits, '-' and '_'
 * (lax, as seen in the wild for MX targets), labels of 1-63 octets that
 * neither start nor end with '-', at most 253 octets, no trailing dot. */
bool dns_host_name_valid(const char *s);

#endif
