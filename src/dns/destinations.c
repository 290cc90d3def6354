/* destinations.c - the gather steps of docs/destinations.md as asynchronous
 * state machines over dns_query. The contract is in destinations.h.
 *
 * A gather is one of two machines:
 *   destinations: CNAME* -> MX -> hosts      (recipient domain)
 *   ips:          CNAME* -> A + AAAA -> IPs  (one host)
 * Each step asks one question (A and AAAA go out together); the answer's
 * callback decides the next step or finishes. Whatever happens, the caller's
 * callback runs exactly once, from the loop, unless gather_cancel came first.
 *
 * Failure codes (RFC 3463): a lookup that failed or a CNAME chain that
 * loops or runs too long is 4.4.3 (directory server failure); a host that
 * has no address at all is 4.4.4 (unable to route). Only the DNS saying
 * "no" for certain is permanent: NXDOMAIN is 5.1.2 (bad destination system
 * address), the RFC 7505 null MX is 5.1.10, an MX target that is no host
 * name is 5.4.4.
 */
#include "dns/destinations.h"
#include "dns/dns_internal.h"
#include "util/log.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <idn2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>

/* Bounds on CNAME chains (docs/destinations.md); past them the zone is
 * broken, and a temporary error lets it be fixed before the mail expires. */
#define DEST_CNAME_MAX 16 /* 16 CNAME lookups, so 15 hops; one more is an error */
#define IPS_CNAME_MAX  11 /* 11 CNAME lookups per host, one more is an error */

enum gather_kind { GATHER_DESTINATIONS, GATHER_IPS };

/* What one address family's answer left behind (the answer itself is only
 * valid during its callback). */
struct family_result {
	bool done;
	enum dns_status status;
	bool authentic;
	int ede;
	char error[160];
	size_t n;
	struct dns_addr *addrs;
};

struct gather {
	enum gather_kind kind;
	struct dns_resolver *r;
	struct dns_query *q[2]; /* in flight: CNAME, MX or A in [0]; AAAA in [1] */
	struct event *defer;    /* a result that needed no DNS waits for the loop */
	bool defer_ok;
	char name[DNS_NAME_MAX];                 /* the name being expanded */
	char seen[DEST_CNAME_MAX][DNS_NAME_MAX]; /* names asked so far, for loops */
	int hops;                                /* CNAME lookups done */
	void *arg;
	/* GATHER_DESTINATIONS */
	destinations_callback dcb;
	struct destinations *d;
	/* GATHER_IPS */
	ips_callback icb;
	struct host_ips *ips;
	struct dns_addr *dialed;
	size_t ndialed;
	struct family_result fam[2]; /* [0] A, [1] AAAA */
};

static void *gather_alloc(size_t n)
{
	void *p = calloc(1, n ? n : 1);

	if (p == NULL)
		abort();
	return p;
}

/* ---------------------------------------------------------------------------
 * Names and addresses.
 */

static bool label_octet_ok(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_';
}

bool dns_host_name_valid(const char *s)
{
	size_t len = strlen(s), label = 0;

	if (len == 0 || len > 253)
		return false;
	for (size_t i = 0; i <= len; i++) {
		char c = s[i];

		if (c == '.' || c == '\0') {
			if (label == 0 || label > 63 || s[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (!label_octet_ok(c) || (label == 0 && c == '-'))
			return false;
		label++;
	}
	return true;
}

/* The name we look up: lower case, no trailing dot, U-labels turned into
 * A-labels (IDNA2008, RFC 5891 §5). False when it is not a host name. */
static bool name_normalize(const char *in, char *out, size_t n)
{
	char *alabel = NULL;
	const char *src = in;
	bool ascii = true, ok;
	size_t len;

	for (const char *p = in; *p; p++)
		ascii = ascii && (unsigned char)*p < 0x80;
	if (!ascii) {
		if (idn2_lookup_u8((const uint8_t *)in, (uint8_t **)&alabel,
		                   IDN2_NONTRANSITIONAL) != IDN2_OK)
			return false;
		src = alabel;
	}
	len = strlen(src);
	if (len > 0 && src[len - 1] == '.')
		len--;
	ok = len < n;
	if (ok) {
		for (size_t i = 0; i < len; i++)
			out[i] = (char)((src[i] >= 'A' && src[i] <= 'Z') ? src[i] + 32 : src[i]);
		out[len] = '\0';
		ok = dns_host_name_valid(out);
	}
	idn2_free(alabel);
	return ok;
}

void dns_addr_format(const struct dns_addr *a, char *buf, size_t n)
{
	if (n == 0)
		return;
	if (inet_ntop(a->family, a->family == AF_INET ? (const void *)&a->v4 : (const void *)&a->v6,
	              buf, (socklen_t)n) == NULL)
		snprintf(buf, n, "?");
}

bool dns_addr_parse(const char *s, struct dns_addr *a)
{
	memset(a, 0, sizeof(*a));
	if (inet_pton(AF_INET, s, &a->v4) == 1) {
		a->family = AF_INET;
		return true;
	}
	if (inet_pton(AF_INET6, s, &a->v6) == 1) {
		a->family = AF_INET6;
		return true;
	}
	return false;
}

static bool addr_equal(const struct dns_addr *a, const struct dns_addr *b)
{
	if (a->family != b->family)
		return false;
	if (a->family == AF_INET)
		return memcmp(&a->v4, &b->v4, sizeof(a->v4)) == 0;
	return memcmp(&a->v6, &b->v6, sizeof(a->v6)) == 0;
}

/* An RFC 5321 §4.1.3 address literal: "[192.0.2.1]" or "[IPv6:2001:db8::1]".
 * On success name gets the normalized literal. */
static bool literal_parse(const char *s, struct dns_addr *a, char *name, size_t n)
{
	char inner[INET6_ADDRSTRLEN + 8], text[INET6_ADDRSTRLEN];
	size_t len = strlen(s);

	if (len < 3 || s[0] != '[' || s[len - 1] != ']' || len - 2 >= sizeof(inner))
		return false;
	memcpy(inner, s + 1, len - 2);
	inner[len - 2] = '\0';
	memset(a, 0, sizeof(*a));
	if (strncasecmp(inner, "IPv6:", 5) == 0) {
		if (inet_pton(AF_INET6, inner + 5, &a->v6) != 1)
			return false;
		a->family = AF_INET6;
	} else if (inet_pton(AF_INET, inner, &a->v4) == 1) {
		a->family = AF_INET;
	} else {
		return false;
	}
	dns_addr_format(a, text, sizeof(text));
	snprintf(name, n, "[%s%s]", a->family == AF_INET6 ? "IPv6:" : "", text);
	return true;
}

/* ---------------------------------------------------------------------------
 * Ordering (docs/destinations.md, "Dialing order").
 */

/* Default order before any history: IPv6 first, then IPv4, each family in
 * the resolver's order. That is what RFC 6724 §6 yields for global
 * addresses on a dual-stack host (rule 6, precedence ::/0 over ::ffff:0:0/96),
 * without asking the kernel for source addresses on the loop thread. */
static void order_default(struct dns_addr *out, const struct family_result *fam)
{
	size_t o = 0;

	for (size_t i = 0; i < fam[1].n; i++)
		out[o++] = fam[1].addrs[i];
	for (size_t i = 0; i < fam[0].n; i++)
		out[o++] = fam[0].addrs[i];
}

/* With last = the last address dialed, the other family comes
 * first; within last's family, last itself leads when it is the only one of
 * its family in the history (a single-stack host's second attempt goes to
 * the same address, greylisting friendliness). Stable otherwise: three
 * passes over the input keep the resolver order inside each class. */
void order_ips(struct dns_addr *addrs, size_t n, const struct dns_addr *dialed, size_t ndialed)
{
	const struct dns_addr *last;
	struct dns_addr *out;
	size_t same = 0, o = 0;
	bool prefer_last;

	if (n < 2 || dialed == NULL || ndialed == 0)
		return;
	last = &dialed[ndialed - 1];
	for (size_t i = 0; i < ndialed; i++)
		same += dialed[i].family == last->family;
	prefer_last = same == 1;
	out = gather_alloc(n * sizeof(*out));
	for (size_t i = 0; i < n; i++)
		if (addrs[i].family != last->family)
			out[o++] = addrs[i];
	for (size_t i = 0; i < n; i++)
		if (addrs[i].family == last->family && prefer_last && addr_equal(&addrs[i], last))
			out[o++] = addrs[i];
	for (size_t i = 0; i < n; i++)
		if (addrs[i].family == last->family &&
		    !(prefer_last && addr_equal(&addrs[i], last)))
			out[o++] = addrs[i];
	memcpy(addrs, out, n * sizeof(*out));
	free(out);
}

/* A uniform index below n (n > 0); false when the kernel has no randomness
 * for us (the order then stays as the answer had it). */
static bool random_below(uint32_t n, uint32_t *out)
{
	uint32_t v, limit = UINT32_MAX - UINT32_MAX % n;

	do {
		if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != (ssize_t)sizeof(v))
			return false;
	} while (v >= limit);
	*out = v % n;
	return true;
}

/* RFC 5321 §5.1: hosts of equal preference are tried in random order. The
 * hosts are sorted by preference already; each run of equals is shuffled
 * (Fisher-Yates). */
static void shuffle_equal_preferences(struct dest_host *h, size_t n)
{
	for (size_t start = 0, end; start < n; start = end) {
		for (end = start + 1; end < n && h[end].preference == h[start].preference; end++)
			;
		for (size_t i = end - start - 1; i > 0; i--) {
			uint32_t j;
			struct dest_host t;

			if (!random_below((uint32_t)i + 1, &j))
				return;
			t = h[start + i];
			h[start + i] = h[start + j];
			h[start + j] = t;
		}
	}
}

/* ---------------------------------------------------------------------------
 * The gather object.
 */

static struct gather *gather_new(enum gather_kind kind, struct dns_resolver *r, void *arg)
{
	struct gather *g = gather_alloc(sizeof(*g));

	g->kind = kind;
	g->r = r;
	g->arg = arg;
	return g;
}

static void gather_free(struct gather *g)
{
	for (int i = 0; i < 2; i++) {
		dns_cancel(g->q[i]);
		free(g->fam[i].addrs);
	}
	if (g->defer != NULL)
		event_free(g->defer);
	destinations_free(g->d);
	host_ips_free(g->ips);
	free(g->dialed);
	free(g);
}

void gather_cancel(struct gather *g)
{
	if (g != NULL)
		gather_free(g);
}

/* Hands the result to the caller (who owns it from now on) and ends g. */
static void gather_finish(struct gather *g, bool ok)
{
	if (g->kind == GATHER_DESTINATIONS) {
		struct destinations *d = g->d;

		g->d = NULL;
		if (!ok) { /* a failure carries no hosts, not even some */
			free(d->hosts);
			d->hosts = NULL;
			d->n = 0;
		}
		g->dcb(g->arg, d, ok);
	} else {
		struct host_ips *ips = g->ips;

		g->ips = NULL;
		g->icb(g->arg, ips, ok);
	}
	gather_free(g);
}

static void gather_on_deferred(evutil_socket_t fd, short what, void *arg)
{
	struct gather *g = arg;

	gather_finish(g, g->defer_ok);
}

/* Finishes on the next turn of the loop: the caller must get its handle
 * back before its callback runs. */
static struct gather *gather_finish_later(struct gather *g, bool ok)
{
	g->defer_ok = ok;
	g->defer = event_new(dns_resolver_base(g->r), -1, 0, gather_on_deferred, g);
	if (g->defer == NULL)
		abort();
	event_active(g->defer, EV_TIMEOUT, 1);
	return g;
}

/* Records a failure in the result (destinations or host_ips). */
static void gather_error(struct gather *g, bool permanent, const char *enhanced, int ede,
                         const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void gather_error(struct gather *g, bool permanent, const char *enhanced, int ede,
                         const char *fmt, ...)
{
	char *error = g->kind == GATHER_DESTINATIONS ? g->d->error : g->ips->error;
	size_t errlen =
	    g->kind == GATHER_DESTINATIONS ? sizeof(g->d->error) : sizeof(g->ips->error);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(error, errlen, fmt, ap);
	va_end(ap);
	if (g->kind == GATHER_DESTINATIONS) {
		g->d->permanent = permanent;
		snprintf(g->d->enhanced, sizeof(g->d->enhanced), "%s", enhanced);
		g->d->ede = ede;
	} else {
		g->ips->permanent = permanent;
		snprintf(g->ips->enhanced, sizeof(g->ips->enhanced), "%s", enhanced);
		g->ips->ede = ede;
	}
}

/* Before the next CNAME lookup: loops and overlong chains are temporary
 * errors (the zone may be fixed). Returns false after recording one. */
static bool gather_chain_step_ok(struct gather *g, int max)
{
	for (int i = 0; i < g->hops && i < DEST_CNAME_MAX; i++) {
		if (strcmp(g->seen[i], g->name) == 0) {
			gather_error(g, false, "4.4.3", -1, "dns lookup error: cname loop at %s",
			             g->name);
			return false;
		}
	}
	if (g->hops >= max) {
		gather_error(g, false, "4.4.3", -1,
		             "dns lookup error: too many cname records (more than %d) from %s",
		             max - 1, g->name);
		return false;
	}
	snprintf(g->seen[g->hops], sizeof(g->seen[g->hops]), "%s", g->name);
	return true;
}

/* ---------------------------------------------------------------------------
 * gather_destinations (docs/destinations.md, "Hosts of a domain").
 */

static void dest_step_cname(struct gather *g);

/* Every answer counts for the expanded name; those of the first iteration
 * (the CNAME and, without one, the MX lookup of the recipient domain
 * itself) count for the original name too: DANE needs both (RFC 7672
 * §2.2.1). */
static void dest_and_authentic(struct gather *g, int iteration, bool authentic)
{
	g->d->expanded_authentic = g->d->expanded_authentic && authentic;
	if (iteration == 0)
		g->d->orig_authentic = g->d->orig_authentic && authentic;
}

static void dest_fail_lookup(struct gather *g, const char *what, const struct dns_answer *a)
{
	if (a->status == DNS_NOTFOUND && a->nxdomain) {
		/* The name does not exist: no later attempt can reach it. */
		gather_error(g, true, "5.1.2", a->ede,
		             "domain %s does not exist (NXDOMAIN in %s lookup)", g->name, what);
		return;
	}
	gather_error(g, false, "4.4.3", a->ede, "dns lookup error: %s lookup for %s: %s", what,
	             g->name, a->error);
}

static void dest_implicit_mx(struct gather *g)
{
	struct destinations *d = g->d;

	/* RFC 5321 §5.1: no MX records, the domain itself is the host. */
	d->have_mx = false;
	d->n = 1;
	d->hosts = gather_alloc(sizeof(*d->hosts));
	snprintf(d->hosts[0].name, sizeof(d->hosts[0].name), "%s", g->name);
	d->hosts[0].preference = -1;
	gather_finish(g, true);
}

static void dest_take_mx(struct gather *g, const struct dns_answer *a)
{
	struct destinations *d = g->d;

	d->have_mx = true;
	/* RFC 7505 §3: a single MX with the root as target says "no mail". */
	if (a->n == 1 && a->mx[0].host[0] == '\0') {
		gather_error(g, true, "5.1.10", -1,
		             "domain %s does not accept email as indicated with single dot for "
		             "mx record (RFC 7505 null MX)",
		             g->name);
		gather_finish(g, false);
		return;
	}
	d->hosts = gather_alloc(a->n * sizeof(*d->hosts));
	for (size_t i = 0; i < a->n; i++) {
		const struct dns_mx *mx = &a->mx[i];

		if (mx->host[0] == '\0') {
			/* RFC 7505 §3: a null MX must stand alone; among real ones
			 * it means nothing, the others are used. */
			log_event(LOG_WARN, "dns_null_mx_ignored", "domain=%s", g->name);
			continue;
		}
		if (!dns_host_name_valid(mx->host)) {
			gather_error(g, true, "5.4.4", -1,
			             "invalid host name in mx record for %s: \"%s\"", g->name,
			             mx->host);
			gather_finish(g, false);
			return;
		}
		snprintf(d->hosts[d->n].name, sizeof(d->hosts[d->n].name), "%s", mx->host);
		d->hosts[d->n].preference = mx->preference;
		d->n++;
	}
	if (d->n == 0) { /* nothing but null MXes: the domain still said no */
		gather_error(g, true, "5.1.10", -1,
		             "domain %s does not accept email as indicated with null mx records",
		             g->name);
		gather_finish(g, false);
		return;
	}
	shuffle_equal_preferences(d->hosts, d->n);
	gather_finish(g, true);
}

static void dest_on_mx(void *arg, const struct dns_answer *a)
{
	struct gather *g = arg;

	g->q[0] = NULL;
	dest_and_authentic(g, g->hops - 1, a->authentic);
	if (a->status == DNS_OK)
		dest_take_mx(g, a);
	else if (a->status == DNS_NOTFOUND && !a->nxdomain)
		dest_implicit_mx(g);
	else {
		dest_fail_lookup(g, "mx", a);
		gather_finish(g, false);
	}
}

/* A CNAME whose target is not a host name ends the gathering (temporary:
 * the zone may be fixed). True when it did. */
static bool cname_target_invalid(struct gather *g, const struct dns_answer *a)
{
	if (dns_host_name_valid(a->cname))
		return false;
	gather_error(g, false, "4.4.3", a->ede,
	             "dns lookup error: cname lookup for %s: invalid target \"%s\"", g->name,
	             a->cname);
	gather_finish(g, false);
	return true;
}

static void dest_on_cname(void *arg, const struct dns_answer *a)
{
	struct gather *g = arg;

	g->q[0] = NULL;
	dest_and_authentic(g, g->hops, a->authentic);
	g->hops++;
	if (a->status == DNS_NOTFOUND && !a->nxdomain) {
		g->q[0] = dns_query(g->r, g->name, DNS_MX, dest_on_mx, g);
		return;
	}
	if (a->status != DNS_OK) {
		dest_fail_lookup(g, "cname", a);
		gather_finish(g, false);
		return;
	}
	if (strcmp(a->cname, g->name) == 0) { /* a CNAME to itself: no CNAME */
		g->q[0] = dns_query(g->r, g->name, DNS_MX, dest_on_mx, g);
		return;
	}
	if (cname_target_invalid(g, a))
		return;
	snprintf(g->name, sizeof(g->name), "%s", a->cname);
	snprintf(g->d->expanded, sizeof(g->d->expanded), "%s", g->name);
	dest_step_cname(g);
}

static void dest_step_cname(struct gather *g)
{
	if (!gather_chain_step_ok(g, DEST_CNAME_MAX)) {
		gather_finish(g, false);
		return;
	}
	g->q[0] = dns_query(g->r, g->name, DNS_CNAME, dest_on_cname, g);
}

struct gather *gather_destinations(struct dns_resolver *r, const char *domain,
                                   destinations_callback cb, void *arg)
{
	struct gather *g = gather_new(GATHER_DESTINATIONS, r, arg);
	struct destinations *d = gather_alloc(sizeof(*d));
	struct dns_addr ip;

	g->dcb = cb;
	g->d = d;
	d->ede = -1;
	if (domain[0] == '[') {
		/* RFC 5321 §4.1.3: an address literal is its own host; nothing
		 * about it is authentic and no DNS is asked. */
		if (!literal_parse(domain, &ip, d->expanded, sizeof(d->expanded))) {
			gather_error(g, true, "5.1.2", -1, "invalid address literal %s", domain);
			return gather_finish_later(g, false);
		}
		d->n = 1;
		d->hosts = gather_alloc(sizeof(*d->hosts));
		snprintf(d->hosts[0].name, sizeof(d->hosts[0].name), "%s", d->expanded);
		d->hosts[0].is_ip = true;
		d->hosts[0].addr = ip;
		d->hosts[0].preference = -1;
		return gather_finish_later(g, true);
	}
	d->orig_authentic = d->expanded_authentic = true;
	if (!name_normalize(domain, g->name, sizeof(g->name))) {
		gather_error(g, true, "5.1.2", -1, "invalid domain name \"%.200s\"", domain);
		return gather_finish_later(g, false);
	}
	snprintf(d->expanded, sizeof(d->expanded), "%s", g->name);
	dest_step_cname(g);
	return g;
}

/* ---------------------------------------------------------------------------
 * gather_ips (docs/destinations.md, "Addresses of a host").
 */

static void ips_step_cname(struct gather *g);

static void ips_finish_addrs(struct gather *g)
{
	struct host_ips *ips = g->ips;
	const struct family_result *fam = g->fam;
	const struct family_result *failed = NULL;

	for (int i = 0; i < 2; i++)
		if (fam[i].status != DNS_OK && fam[i].status != DNS_NOTFOUND)
			failed = failed ? failed : &fam[i];
	if (fam[0].n + fam[1].n == 0) {
		if (failed != NULL)
			gather_error(g, false, "4.4.3", failed->ede,
			             "dns lookup error: address lookup for %s: %s", g->name,
			             failed->error);
		else
			gather_error(g, false, "4.4.4", -1, "no address for host %s", g->name);
		gather_finish(g, false);
		return;
	}
	/* Only the answers we use count for authenticity: a family that failed
	 * while the other has addresses must not turn an authentic host into a
	 * non-authentic one (that would let whoever can break AAAA lookups
	 * switch DANE off). */
	for (int i = 0; i < 2; i++) {
		if (fam[i].status != DNS_OK && fam[i].status != DNS_NOTFOUND)
			continue;
		ips->authentic = ips->authentic && fam[i].authentic;
		ips->expanded_authentic = ips->expanded_authentic && fam[i].authentic;
	}
	if (failed != NULL)
		log_event(LOG_INFO, "dns_address_family_failed", "host=%s error=%s", g->name,
		          log_quote(failed->error));
	ips->dualstack = fam[0].n > 0 && fam[1].n > 0;
	ips->n = fam[0].n + fam[1].n;
	ips->addrs = gather_alloc(ips->n * sizeof(*ips->addrs));
	order_default(ips->addrs, fam);
	order_ips(ips->addrs, ips->n, g->dialed, g->ndialed);
	gather_finish(g, true);
}

static void ips_on_addr(struct gather *g, int i, const struct dns_answer *a)
{
	struct family_result *f = &g->fam[i];

	g->q[i] = NULL;
	f->done = true;
	f->status = a->status;
	f->authentic = a->authentic;
	f->ede = a->ede;
	snprintf(f->error, sizeof(f->error), "%s", a->error);
	if (a->status == DNS_OK && a->n > 0) {
		f->addrs = gather_alloc(a->n * sizeof(*f->addrs));
		memcpy(f->addrs, a->addrs, a->n * sizeof(*f->addrs));
		f->n = a->n;
	}
	if (g->fam[0].done && g->fam[1].done)
		ips_finish_addrs(g);
}

static void ips_on_a(void *arg, const struct dns_answer *a)
{
	ips_on_addr(arg, 0, a);
}

static void ips_on_aaaa(void *arg, const struct dns_answer *a)
{
	ips_on_addr(arg, 1, a);
}

static void ips_step_addrs(struct gather *g)
{
	g->q[0] = dns_query(g->r, g->name, DNS_A, ips_on_a, g);
	g->q[1] = dns_query(g->r, g->name, DNS_AAAA, ips_on_aaaa, g);
}

static void ips_on_cname(void *arg, const struct dns_answer *a)
{
	struct gather *g = arg;
	struct host_ips *ips = g->ips;

	g->q[0] = NULL;
	if (g->hops == 0)
		ips->authentic = a->authentic;
	ips->expanded_authentic = ips->expanded_authentic && a->authentic;
	g->hops++;
	if (a->status == DNS_NOTFOUND && a->nxdomain) {
		gather_error(g, false, "4.4.4", a->ede, "no address for host %s (NXDOMAIN)",
		             g->name);
		gather_finish(g, false);
		return;
	}
	if (a->status == DNS_NOTFOUND || (a->status == DNS_OK && strcmp(a->cname, g->name) == 0)) {
		ips_step_addrs(g);
		return;
	}
	if (a->status != DNS_OK) {
		gather_error(g, false, "4.4.3", a->ede, "dns lookup error: cname lookup for %s: %s",
		             g->name, a->error);
		gather_finish(g, false);
		return;
	}
	if (cname_target_invalid(g, a))
		return;
	snprintf(g->name, sizeof(g->name), "%s", a->cname);
	snprintf(ips->expanded, sizeof(ips->expanded), "%s", g->name);
	ips_step_cname(g);
}

static void ips_step_cname(struct gather *g)
{
	if (!gather_chain_step_ok(g, IPS_CNAME_MAX)) {
		gather_finish(g, false);
		return;
	}
	g->q[0] = dns_query(g->r, g->name, DNS_CNAME, ips_on_cname, g);
}

struct gather *gather_ips(struct dns_resolver *r, const char *host, const struct dns_addr *dialed,
                          size_t ndialed, ips_callback cb, void *arg)
{
	struct gather *g = gather_new(GATHER_IPS, r, arg);
	struct host_ips *ips = gather_alloc(sizeof(*ips));
	struct dns_addr ip;

	g->icb = cb;
	g->ips = ips;
	ips->ede = -1;
	if (literal_parse(host, &ip, ips->expanded, sizeof(ips->expanded)) ||
	    dns_addr_parse(host, &ip)) {
		/* An IP host is returned as it is, not authentic: no DNS
		 * answer vouches for it. */
		if (host[0] != '[')
			snprintf(ips->expanded, sizeof(ips->expanded), "%s", host);
		ips->n = 1;
		ips->addrs = gather_alloc(sizeof(*ips->addrs));
		ips->addrs[0] = ip;
		return gather_finish_later(g, true);
	}
	ips->authentic = ips->expanded_authentic = true;
	if (!name_normalize(host, g->name, sizeof(g->name))) {
		gather_error(g, false, "4.4.4", -1, "invalid host name \"%.200s\"", host);
		return gather_finish_later(g, false);
	}
	snprintf(ips->expanded, sizeof(ips->expanded), "%s", g->name);
	if (dialed != NULL && ndialed > 0) {
		g->dialed = gather_alloc(ndialed * sizeof(*dialed));
		memcpy(g->dialed, dialed, ndialed * sizeof(*dialed));
		g->ndialed = ndialed;
	}
	ips_step_cname(g);
	return g;
}

void destinations_free(struct destinations *d)
{
	if (d == NULL)
		return;
	free(d->hosts);
	free(d);
}

void host_ips_free(struct host_ips *ips)
{
	if (ips == NULL)
		return;
	free(ips->addrs);
	free(ips);
}
