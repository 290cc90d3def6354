/* destinations.h - where mail for a domain goes (docs/destinations.md).
 *
 * gather_destinations: the recipient domain (or IP literal) to the list of
 * hosts to try, in order: CNAME chain of the domain (at most 15 hops; a loop
 * or more hops is a temporary error), MX records by preference with equal
 * preferences shuffled, the null MX of RFC 7505 (permanent failure, 5.1.10),
 * no MX at all means the domain itself (implicit MX, RFC 5321 §5.1), an IP
 * literal is its own single host. The authentic flags of the original and of
 * the expanded name are kept for DANE (RFC 7672 §2.2.1).
 *
 * gather_ips: a host to its addresses (A and AAAA, CNAMEs followed and
 * recorded), ordered for dialing: dual-stack hosts alternate families across
 * attempts, single-stack hosts retry the same address first (greylisting
 * friendliness), using the IPs dialed in earlier attempts
 * (docs/destinations.md, "Dialing order").
 */
#ifndef OUTPOST_DNS_DESTINATIONS_H
#define OUTPOST_DNS_DESTINATIONS_H

#include "dns/dns.h"

#include <stdbool.h>
#include <stddef.h>

struct dest_host {
	char name[DNS_NAME_MAX]; /* MX target, the domain (implicit MX) or "[ip]" */
	bool is_ip;              /* an IP literal recipient: addr is set, no lookup */
	struct dns_addr addr;
	int preference; /* -1 without MX */
};

struct destinations {
	bool have_mx;
	bool orig_authentic;         /* the recipient domain's own answers were authentic */
	bool expanded_authentic;     /* every answer of the CNAME chain and the MX was */
	char expanded[DNS_NAME_MAX]; /* the domain after CNAMEs */
	size_t n;
	struct dest_host *hosts; /* owned */
	/* on failure: */
	bool permanent;
	char enhanced[12]; /* "5.1.10", "4.4.3" ... */
	char error[256];
	int ede; /* extended DNS error of the failing answer, -1 when none */
};

typedef void (*destinations_callback)(void *arg, struct destinations *d, bool ok);

struct gather;

/* Resolves the destinations of domain (a domain or an address literal such
 * as "[192.0.2.1]" or "[IPv6:2001:db8::1]"). The callback gets d (owned by
 * the callee; free it with destinations_free) and ok=false with d->error set
 * on failure. Returns a handle for gather_cancel. */
struct gather *gather_destinations(struct dns_resolver *r, const char *domain,
                                   destinations_callback cb, void *arg);

struct host_ips {
	bool authentic;          /* the host's first answer was authentic */
	bool expanded_authentic; /* all of its CNAME chain and address answers were */
	char expanded[DNS_NAME_MAX];
	bool dualstack;
	size_t n;
	struct dns_addr *addrs; /* owned, in dialing order */
	bool permanent;         /* never, today: a missing host is retried */
	char enhanced[12];
	char error[256];
	int ede;
};

typedef void (*ips_callback)(void *arg, struct host_ips *ips, bool ok);

/* Resolves host's addresses. dialed lists the addresses connected to in
 * earlier attempts for this host, oldest first (may be NULL/0); they drive
 * the order. The callback owns nothing: free ips with host_ips_free. */
struct gather *gather_ips(struct dns_resolver *r, const char *host, const struct dns_addr *dialed,
                          size_t ndialed, ips_callback cb, void *arg);

void gather_cancel(struct gather *g);

void destinations_free(struct destinations *d);
void host_ips_free(struct host_ips *ips);

/* The dialing-order rule alone (docs/destinations.md), for tests: reorders
 * addrs in place. */
void order_ips(struct dns_addr *addrs, size_t n, const struct dns_addr *dialed, size_t ndialed);

/* "192.0.2.1" / "2001:db8::1" */
void dns_addr_format(const struct dns_addr *a, char *buf, size_t n);
bool dns_addr_parse(const char *s, struct dns_addr *a);

#endif
