/* dns_gather_test.c - the resolver and the gather state machines
 * (src/dns/dns.c, src/dns/destinations.c) against a scripted DNS server
 * that runs on the same libevent loop: CNAME chains and loops, MX, null MX,
 * implicit MX, NXDOMAIN, SERVFAIL with EDE, address families, cancel, the
 * answers kept for their TTL (src/dns/cache.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "conf/conf.h"
#include "dns/destinations.h"
#include "dns/dns.h"
#include "dns/tlsa.h"
#include "run_loop.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <ldns/ldns.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* One scripted answer: name and type asked, rcode, AD, records. */
struct zone_entry {
	const char *name;
	ldns_rr_type type;
	ldns_pkt_rcode rcode;
	bool ad;
	const char *rrs[4];
	int ede;
};

static const struct zone_entry zone[] = {
    {"example.test", LDNS_RR_TYPE_CNAME, LDNS_RCODE_NOERROR, true, {NULL}, -1},
    {"example.test",
     LDNS_RR_TYPE_MX,
     LDNS_RCODE_NOERROR,
     true,
     {"example.test. 300 IN MX 20 mx3.example.test.",
      "example.test. 300 IN MX 10 mx1.example.test.",
      "example.test. 300 IN MX 10 mx2.example.test."},
     -1},
    {"alias.test",
     LDNS_RR_TYPE_CNAME,
     LDNS_RCODE_NOERROR,
     false,
     {"alias.test. 300 IN CNAME Example.Test."},
     -1},
    {"loop1.test",
     LDNS_RR_TYPE_CNAME,
     LDNS_RCODE_NOERROR,
     true,
     {"loop1.test. 300 IN CNAME loop2.test."},
     -1},
    {"loop2.test",
     LDNS_RR_TYPE_CNAME,
     LDNS_RCODE_NOERROR,
     true,
     {"loop2.test. 300 IN CNAME loop1.test."},
     -1},
    {"nullmx.test", LDNS_RR_TYPE_MX, LDNS_RCODE_NOERROR, true, {"nullmx.test. 300 IN MX 0 ."}, -1},
    {"implicit.test", LDNS_RR_TYPE_MX, LDNS_RCODE_NOERROR, true, {NULL}, -1},
    {"servfail.test", LDNS_RR_TYPE_CNAME, LDNS_RCODE_SERVFAIL, false, {NULL}, 7},
    {"badmx.test",
     LDNS_RR_TYPE_MX,
     LDNS_RCODE_NOERROR,
     true,
     {"badmx.test. 300 IN MX 10 bad\\032host.test."},
     -1},
    {"mx1.example.test",
     LDNS_RR_TYPE_A,
     LDNS_RCODE_NOERROR,
     true,
     {"mx1.example.test. 300 IN A 192.0.2.1"},
     -1},
    {"mx1.example.test",
     LDNS_RR_TYPE_AAAA,
     LDNS_RCODE_NOERROR,
     true,
     {"mx1.example.test. 300 IN AAAA 2001:db8::1"},
     -1},
    {"v4only.test",
     LDNS_RR_TYPE_A,
     LDNS_RCODE_NOERROR,
     false,
     {"v4only.test. 300 IN A 192.0.2.10", "v4only.test. 300 IN A 192.0.2.11"},
     -1},
    {"halfbroken.test",
     LDNS_RR_TYPE_A,
     LDNS_RCODE_NOERROR,
     true,
     {"halfbroken.test. 300 IN A 192.0.2.20"},
     -1},
    {"halfbroken.test", LDNS_RR_TYPE_AAAA, LDNS_RCODE_SERVFAIL, false, {NULL}, 6},
    {"_25._tcp.mx1.example.test",
     LDNS_RR_TYPE_TLSA,
     LDNS_RCODE_NOERROR,
     true,
     {"_25._tcp.mx1.example.test. 300 IN TLSA 3 1 1 5f2a1c0b9e8dc3a45f2a1c0b9e8dc3a45f2a1c0b9e8dc3a45f2a1c0b9e8dc3a4",
      "_25._tcp.mx1.example.test. 300 IN TLSA 2 0 1 5f2a1c0b9e8dc3a45f2a1c0b9e8dc3a45f2a1c0b9e8dc3a45f2a1c0b9e8dc3a4"},
     -1},
    {"_25._tcp.unsigned.test",
     LDNS_RR_TYPE_TLSA,
     LDNS_RCODE_NOERROR,
     false,
     {"_25._tcp.unsigned.test. 300 IN TLSA 3 1 1 5f2a1c0b9e8dc3a45f2a1c0b9e8dc3a45f2a1c0b9e8dc3a45f2a1c0b9e8dc3a4"},
     -1},
    {"_25._tcp.bogus.test", LDNS_RR_TYPE_TLSA, LDNS_RCODE_SERVFAIL, false, {NULL}, 6},
    {"_25._tcp.target.test",
     LDNS_RR_TYPE_TLSA,
     LDNS_RCODE_NOERROR,
     true,
     {"_25._tcp.target.test. 300 IN TLSA 3 0 1 5f2a1c0b9e8dc3a45f2a1c0b9e8dc3a45f2a1c0b9e8dc3a45f2a1c0b9e8dc3a4"},
     -1},
    {"_25._tcp.alias2.test",
     LDNS_RR_TYPE_TLSA,
     LDNS_RCODE_NOERROR,
     true,
     {"_25._tcp.alias2.test. 300 IN TLSA 3 1 2 5f2a1c0b9e8dc3a45f2a1c0b9e8dc3a45f2a1c0b9e8dc3a45f2a1c0b9e8dc3a45f2a1c0b9e8dc3a45f2a1c0b9e8dc3a45f2a1c0b9e8dc3a45f2a1c0b9e8dc3a4"},
     -1},
    {"hostalias.test",
     LDNS_RR_TYPE_CNAME,
     LDNS_RCODE_NOERROR,
     false,
     {"hostalias.test. 300 IN CNAME mx1.example.test."},
     -1},
};

/* Names that exist but have no data of the asked type (NODATA). */
static const char *const existing[] = {
    "example.test", "mx1.example.test", "mx2.example.test", "nullmx.test", "implicit.test",
    "badmx.test",   "v4only.test",      "halfbroken.test",  "noaddr.test", "mx3.example.test",
    "_25._tcp.notarget.test"};

static struct event_base *base;
static int server_fd = -1;
static struct event *server_ev;
static int server_port;
static int queries;
static struct gather *cancel_at_query_target; /* cancelled when queries hits cancel_at */
static int cancel_at;

static void add_rr(ldns_pkt *p, const char *text)
{
	ldns_rr *rr = NULL;

	assert_int_equal(ldns_rr_new_frm_str(&rr, text, 300, NULL, NULL), LDNS_STATUS_OK);
	ldns_pkt_push_rr(p, LDNS_SECTION_ANSWER, rr);
}

/* chainN.test CNAME chainN+1.test, without end. */
static bool answer_chain(ldns_pkt *resp, const char *name, ldns_rr_type type)
{
	int n;
	char rr[128];

	if (sscanf(name, "chain%d.test", &n) != 1 || type != LDNS_RR_TYPE_CNAME)
		return false;
	snprintf(rr, sizeof(rr), "chain%d.test. 300 IN CNAME chain%d.test.", n, n + 1);
	add_rr(resp, rr);
	return true;
}

static void answer_from_zone(ldns_pkt *resp, const char *name, ldns_rr_type type)
{
	if (strcmp(name, "denied.test") == 0) { /* a denial with its SOA: 60 s negative TTL */
		ldns_rr *soa = NULL;
		assert_int_equal(ldns_rr_new_frm_str(&soa,
		                                     "test. 300 IN SOA ns.test. host.test. 1 3600 600 "
		                                     "86400 60",
		                                     300, NULL, NULL),
		                 LDNS_STATUS_OK);
		ldns_pkt_push_rr(resp, LDNS_SECTION_AUTHORITY, soa);
		ldns_pkt_set_rcode(resp, LDNS_RCODE_NXDOMAIN);
		return;
	}
	for (size_t i = 0; i < sizeof(zone) / sizeof(zone[0]); i++) {
		const struct zone_entry *z = &zone[i];

		if (strcmp(z->name, name) != 0 || z->type != type)
			continue;
		ldns_pkt_set_rcode(resp, (uint8_t)z->rcode);
		ldns_pkt_set_ad(resp, z->ad);
		for (size_t k = 0; k < 4 && z->rrs[k]; k++)
			add_rr(resp, z->rrs[k]);
		if (z->ede >= 0) {
			uint8_t *opt = calloc(1, 6);

			opt[1] = 15;
			opt[3] = 2;
			opt[5] = (uint8_t)z->ede;
			ldns_pkt_set_edns_udp_size(resp, 1232);
			ldns_pkt_set_edns_data(resp, ldns_rdf_new(LDNS_RDF_TYPE_UNKNOWN, 6, opt));
		}
		return;
	}
	ldns_pkt_set_ad(resp, true); /* denials below are signed, say */
	if (answer_chain(resp, name, type))
		return;
	for (size_t i = 0; i < sizeof(existing) / sizeof(existing[0]); i++)
		if (strcmp(existing[i], name) == 0)
			return; /* NODATA */
	ldns_pkt_set_rcode(resp, LDNS_RCODE_NXDOMAIN);
}

static void server_on_read(evutil_socket_t fd, short what, void *arg)
{
	uint8_t buf[2048], *wire = NULL;
	struct sockaddr_storage from;
	socklen_t fromlen = sizeof(from);
	ssize_t n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fromlen);
	ldns_pkt *q = NULL, *resp;
	ldns_rr *question;
	char *name;
	size_t len, nl;

	if (n <= 0 || ldns_wire2pkt(&q, buf, (size_t)n) != LDNS_STATUS_OK)
		return;
	queries++;
	/* every query carries RD, AD and EDNS with DO (RFC 6840 §5.7) */
	assert_true(ldns_pkt_rd(q));
	assert_true(ldns_pkt_ad(q));
	assert_true(ldns_pkt_edns_do(q));
	assert_int_equal(ldns_pkt_edns_udp_size(q), 1232);
	question = ldns_rr_list_rr(ldns_pkt_question(q), 0);
	name = ldns_rdf2str(ldns_rr_owner(question));
	nl = strlen(name);
	if (nl > 1 && name[nl - 1] == '.')
		name[nl - 1] = '\0';
	resp = ldns_pkt_new();
	ldns_pkt_set_id(resp, ldns_pkt_id(q));
	ldns_pkt_set_qr(resp, true);
	ldns_pkt_set_rd(resp, true);
	ldns_pkt_set_ra(resp, true);
	ldns_pkt_push_rr(resp, LDNS_SECTION_QUESTION, ldns_rr_clone(question));
	answer_from_zone(resp, name, ldns_rr_get_type(question));
	assert_int_equal(ldns_pkt2wire(&wire, resp, &len), LDNS_STATUS_OK);
	sendto(fd, wire, len, 0, (struct sockaddr *)&from, fromlen);
	free(wire);
	free(name);
	ldns_pkt_free(resp);
	ldns_pkt_free(q);
	if (cancel_at_query_target != NULL && queries == cancel_at) {
		gather_cancel(cancel_at_query_target);
		cancel_at_query_target = NULL;
	}
}

static int setup(void **state)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sin);

	base = event_base_new();
	server_fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(server_fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(server_fd, (struct sockaddr *)&sin, &sl), 0);
	server_port = ntohs(sin.sin_port);
	server_ev = event_new(base, server_fd, EV_READ | EV_PERSIST, server_on_read, NULL);
	event_add(server_ev, NULL);
	return 0;
}

static int teardown(void **state)
{
	event_free(server_ev);
	close(server_fd);
	event_base_free(base);
	return 0;
}

static struct dns_resolver *resolver_for(const char *server, enum trust_ad trust)
{
	struct conf c;
	char why[256] = "";
	struct dns_resolver *r;

	conf_defaults(&c);
	strlist_add(&c.dns_nameserver, server);
	c.trust_ad = trust;
	r = dns_resolver_new(base, &c, why, sizeof(why));
	conf_free(&c);
	return r;
}

static struct dns_resolver *resolver(void)
{
	char ns[64];

	snprintf(ns, sizeof(ns), "127.0.0.1:%d", server_port);
	return resolver_for(ns, TRUST_AD_AUTO);
}

static void run_for_ms(int ms)
{
	run_loop_for_ms(base, ms);
}

/* Runs the loop until the callback said done (or 10 s passed). */
static bool done;

static void run(void)
{
	done = false;
	run_for_ms(10000);
	assert_true(done);
}

static struct destinations *got_d;
static bool got_ok;

static void on_destinations(void *arg, struct destinations *d, bool ok)
{
	got_d = d;
	got_ok = ok;
	done = true;
	event_base_loopbreak(base);
}

static struct destinations *destinations_of(struct dns_resolver *r, const char *domain, bool *ok)
{
	got_d = NULL;
	gather_destinations(r, domain, on_destinations, NULL);
	run();
	*ok = got_ok;
	return got_d;
}

static struct host_ips *got_ips;

static void on_ips(void *arg, struct host_ips *ips, bool ok)
{
	got_ips = ips;
	got_ok = ok;
	done = true;
	event_base_loopbreak(base);
}

static struct host_ips *ips_of(struct dns_resolver *r, const char *host,
                               const struct dns_addr *dialed, size_t nd, bool *ok)
{
	got_ips = NULL;
	gather_ips(r, host, dialed, nd, on_ips, NULL);
	run();
	*ok = got_ok;
	return got_ips;
}

static void test_mx_hosts_in_preference_order(void **state)
{
	struct dns_resolver *r = resolver();
	bool ok;
	struct destinations *d = destinations_of(r, "Example.Test.", &ok);

	assert_true(ok);
	assert_true(d->have_mx);
	assert_true(d->orig_authentic);
	assert_true(d->expanded_authentic);
	assert_string_equal(d->expanded, "example.test");
	assert_int_equal(d->n, 3);
	assert_int_equal(d->hosts[0].preference, 10);
	assert_int_equal(d->hosts[1].preference, 10);
	assert_true(strcmp(d->hosts[0].name, d->hosts[1].name) != 0);
	assert_non_null(strstr("mx1.example.test mx2.example.test", d->hosts[0].name));
	assert_string_equal(d->hosts[2].name, "mx3.example.test");
	assert_false(d->hosts[0].is_ip);
	destinations_free(d);
	dns_resolver_free(r);
}

static void test_equal_preferences_are_shuffled(void **state)
{
	struct dns_resolver *r = resolver();
	int mx1_first = 0;

	for (int i = 0; i < 40; i++) {
		bool ok;
		struct destinations *d = destinations_of(r, "example.test", &ok);

		assert_true(ok);
		mx1_first += strcmp(d->hosts[0].name, "mx1.example.test") == 0;
		destinations_free(d);
	}
	assert_true(mx1_first > 0 && mx1_first < 40); /* 2^-39 to fail by chance */
	dns_resolver_free(r);
}

static void test_cname_of_domain_is_followed_and_not_authentic(void **state)
{
	struct dns_resolver *r = resolver();
	bool ok;
	struct destinations *d = destinations_of(r, "alias.test", &ok);

	assert_true(ok);
	assert_string_equal(d->expanded, "example.test");
	assert_false(d->orig_authentic);
	assert_false(d->expanded_authentic);
	assert_int_equal(d->n, 3);
	destinations_free(d);
	dns_resolver_free(r);
}

static void test_cname_loop_and_long_chain_fail_temporarily(void **state)
{
	struct dns_resolver *r = resolver();
	bool ok;
	struct destinations *d = destinations_of(r, "loop1.test", &ok);

	assert_false(ok);
	assert_false(d->permanent);
	assert_string_equal(d->enhanced, "4.4.3");
	assert_non_null(strstr(d->error, "cname loop"));
	destinations_free(d);

	queries = 0;
	d = destinations_of(r, "chain0.test", &ok);
	assert_false(ok);
	assert_false(d->permanent);
	assert_non_null(strstr(d->error, "too many cname records"));
	assert_int_equal(queries, 16);                    /* 15 hops followed, the 16th refused */
	assert_string_equal(d->expanded, "chain16.test"); /* as far as it got */
	destinations_free(d);
	dns_resolver_free(r);
}

static void test_null_mx_fails_permanently(void **state)
{
	struct dns_resolver *r = resolver();
	bool ok;
	struct destinations *d = destinations_of(r, "nullmx.test", &ok);

	assert_false(ok);
	assert_true(d->permanent);
	assert_true(d->have_mx);
	assert_string_equal(d->enhanced, "5.1.10");
	assert_non_null(strstr(d->error, "single dot"));
	destinations_free(d);
	dns_resolver_free(r);
}

static void test_nxdomain_fails_permanently(void **state)
{
	struct dns_resolver *r = resolver();
	bool ok;
	struct destinations *d = destinations_of(r, "nx.test", &ok);

	assert_false(ok);
	assert_true(d->permanent);
	assert_string_equal(d->enhanced, "5.1.2");
	destinations_free(d);
	dns_resolver_free(r);
}

static void test_unicode_domain_is_asked_as_a_label(void **state)
{
	struct dns_resolver *r = resolver();
	bool ok;
	struct destinations *d = destinations_of(r,
	                                         "B\xc3\xbc"
	                                         "cher.test",
	                                         &ok);

	assert_false(ok); /* the scripted server knows no such name */
	assert_true(d->permanent);
	assert_string_equal(d->expanded, "xn--bcher-kva.test");
	assert_non_null(strstr(d->error, "xn--bcher-kva.test"));
	destinations_free(d);
	d = destinations_of(r, "bad\xff.test", &ok);
	assert_false(ok);
	assert_true(d->permanent);
	assert_non_null(strstr(d->error, "invalid domain"));
	destinations_free(d);
	dns_resolver_free(r);
}

static void test_no_mx_means_implicit_mx(void **state)
{
	struct dns_resolver *r = resolver();
	bool ok;
	struct destinations *d = destinations_of(r, "implicit.test", &ok);

	assert_true(ok);
	assert_false(d->have_mx);
	assert_int_equal(d->n, 1);
	assert_string_equal(d->hosts[0].name, "implicit.test");
	assert_int_equal(d->hosts[0].preference, -1);
	assert_true(d->orig_authentic);
	destinations_free(d);
	dns_resolver_free(r);
}

static void test_servfail_is_temporary_with_ede(void **state)
{
	struct dns_resolver *r = resolver();
	bool ok;
	struct destinations *d = destinations_of(r, "servfail.test", &ok);

	assert_false(ok);
	assert_false(d->permanent);
	assert_string_equal(d->enhanced, "4.4.3");
	assert_int_equal(d->ede, 7);
	assert_non_null(strstr(d->error, "dns lookup error: cname lookup for servfail.test"));
	destinations_free(d);
	dns_resolver_free(r);
}

static void test_invalid_mx_target_fails_permanently(void **state)
{
	struct dns_resolver *r = resolver();
	bool ok;
	struct destinations *d = destinations_of(r, "badmx.test", &ok);

	assert_false(ok);
	assert_true(d->permanent);
	assert_non_null(strstr(d->error, "invalid host name in mx record"));
	destinations_free(d);
	dns_resolver_free(r);
}

static void test_ip_literal_needs_no_dns(void **state)
{
	struct dns_resolver *r = resolver();
	bool ok;
	struct destinations *d;
	char buf[64];

	queries = 0;
	d = destinations_of(r, "[192.0.2.5]", &ok);
	assert_true(ok);
	assert_int_equal(d->n, 1);
	assert_true(d->hosts[0].is_ip);
	assert_string_equal(d->hosts[0].name, "[192.0.2.5]");
	assert_false(d->have_mx);
	assert_false(d->orig_authentic);
	assert_false(d->expanded_authentic);
	destinations_free(d);

	d = destinations_of(r, "[ipv6:2001:DB8::5]", &ok);
	assert_true(ok);
	assert_string_equal(d->hosts[0].name, "[IPv6:2001:db8::5]");
	dns_addr_format(&d->hosts[0].addr, buf, sizeof(buf));
	assert_string_equal(buf, "2001:db8::5");
	destinations_free(d);

	d = destinations_of(r, "[mail.example]", &ok);
	assert_false(ok);
	assert_true(d->permanent);
	destinations_free(d);
	d = destinations_of(r, "bad domain", &ok);
	assert_false(ok);
	assert_true(d->permanent);
	destinations_free(d);
	assert_int_equal(queries, 0);
	dns_resolver_free(r);
}

static void test_dual_stack_host_v6_first_then_alternating(void **state)
{
	struct dns_resolver *r = resolver();
	bool ok;
	struct host_ips *ips = ips_of(r, "mx1.example.test", NULL, 0, &ok);
	struct dns_addr dialed;
	char buf[64];

	assert_true(ok);
	assert_true(ips->dualstack);
	assert_true(ips->authentic);
	assert_true(ips->expanded_authentic);
	assert_string_equal(ips->expanded, "mx1.example.test");
	assert_int_equal(ips->n, 2);
	assert_int_equal(ips->addrs[0].family, AF_INET6); /* RFC 6724 for global addresses */
	dialed = ips->addrs[0];
	host_ips_free(ips);

	ips = ips_of(r, "mx1.example.test", &dialed, 1, &ok);
	assert_true(ok);
	dns_addr_format(&ips->addrs[0], buf, sizeof(buf));
	assert_string_equal(buf, "192.0.2.1");
	host_ips_free(ips);
	dns_resolver_free(r);
}

static void test_single_stack_and_half_broken_hosts(void **state)
{
	struct dns_resolver *r = resolver();
	bool ok;
	struct host_ips *ips = ips_of(r, "v4only.test", NULL, 0, &ok);

	assert_true(ok);
	assert_false(ips->dualstack);
	assert_false(ips->authentic);
	assert_int_equal(ips->n, 2);
	host_ips_free(ips);

	/* AAAA fails, A answers: use what we have, still authentic */
	ips = ips_of(r, "halfbroken.test", NULL, 0, &ok);
	assert_true(ok);
	assert_int_equal(ips->n, 1);
	assert_true(ips->authentic);
	assert_true(ips->expanded_authentic);
	host_ips_free(ips);

	ips = ips_of(r, "noaddr.test", NULL, 0, &ok);
	assert_false(ok);
	assert_false(ips->permanent);
	assert_string_equal(ips->enhanced, "4.4.4");
	assert_non_null(strstr(ips->error, "no address for host noaddr.test"));
	host_ips_free(ips);

	ips = ips_of(r, "nothere.test", NULL, 0, &ok);
	assert_false(ok);
	assert_false(ips->permanent);
	host_ips_free(ips);
	dns_resolver_free(r);
}

static void test_host_cname_followed_explicitly(void **state)
{
	struct dns_resolver *r = resolver();
	bool ok;
	struct host_ips *ips = ips_of(r, "hostalias.test", NULL, 0, &ok);

	assert_true(ok);
	assert_string_equal(ips->expanded, "mx1.example.test");
	assert_false(ips->authentic);
	assert_false(ips->expanded_authentic);
	assert_int_equal(ips->n, 2);
	host_ips_free(ips);

	queries = 0;
	ips = ips_of(r, "chain0.test", NULL, 0, &ok);
	assert_false(ok);
	assert_non_null(strstr(ips->error, "too many cname records"));
	assert_int_equal(queries, 11);
	host_ips_free(ips);
	dns_resolver_free(r);
}

static void test_ip_host_is_returned_as_is(void **state)
{
	struct dns_resolver *r = resolver();
	bool ok;
	struct host_ips *ips = ips_of(r, "[IPv6:2001:db8::7]", NULL, 0, &ok);

	assert_true(ok);
	assert_int_equal(ips->n, 1);
	assert_false(ips->authentic);
	host_ips_free(ips);
	ips = ips_of(r, "192.0.2.7", NULL, 0, &ok);
	assert_true(ok);
	assert_int_equal(ips->addrs[0].family, AF_INET);
	host_ips_free(ips);
	dns_resolver_free(r);
}

static void never_called_d(void *arg, struct destinations *d, bool ok)
{
	fail_msg("callback after gather_cancel");
}

static void never_called_ips(void *arg, struct host_ips *ips, bool ok)
{
	fail_msg("callback after gather_cancel");
}

static void test_cancel_runs_no_callback_and_leaks_nothing(void **state)
{
	struct dns_resolver *r = resolver();

	/* before any answer */
	gather_cancel(gather_destinations(r, "example.test", never_called_d, NULL));
	/* a result that needed no DNS */
	gather_cancel(gather_destinations(r, "[192.0.2.1]", never_called_d, NULL));
	gather_cancel(gather_ips(r, "192.0.2.1", NULL, 0, never_called_ips, NULL));
	run_for_ms(200);

	/* in the middle: after the CNAME answer, with A and AAAA in flight */
	queries = 0;
	cancel_at = 2;
	cancel_at_query_target = gather_ips(r, "mx1.example.test", NULL, 0, never_called_ips, NULL);
	run_for_ms(300);
	assert_null(cancel_at_query_target);
	dns_resolver_free(r);
}

static bool query_done;
static enum dns_status query_status;

static void on_answer(void *arg, const struct dns_answer *a)
{
	query_done = true;
	query_status = a->status;
	event_base_loopbreak(base);
}

static void test_resolver_free_with_queries_in_flight(void **state)
{
	struct dns_resolver *r = resolver();

	/* dropped without their callbacks; nothing leaks (ASan run) */
	query_done = false;
	dns_query(r, "example.test", DNS_MX, on_answer, NULL);
	dns_query(r, "a..b", DNS_MX, on_answer, NULL); /* deferred result */
	dns_resolver_free(r);
	run_for_ms(100);
	assert_false(query_done);
}

static void test_query_callback_never_runs_inside_dns_query(void **state)
{
	struct dns_resolver *r = resolver();

	query_done = false;
	dns_query(r, "a..b", DNS_MX, on_answer, NULL);
	assert_false(query_done);
	run_for_ms(1000);
	assert_true(query_done);
	assert_int_equal(query_status, DNS_MALFORMED);

	/* cancelled before the deferred delivery */
	dns_cancel(dns_query(r, "a..b", DNS_MX, on_answer, NULL));
	dns_resolver_free(r);
}

/* Queries that ask what is already on the wire share its answer. */
static int shared_answers, shared_mx;
static struct dns_query *shared_victim;

static void on_shared_answer(void *arg, const struct dns_answer *a)
{
	shared_answers++;
	shared_mx += a->status == DNS_OK ? (int)a->n : 0;
	if (shared_victim != NULL) { /* a callback cancels a waiter not yet answered */
		dns_cancel(shared_victim);
		shared_victim = NULL;
	}
	if (arg != NULL) /* and asks the same again: a new question on the wire */
		dns_query(arg, "example.test", DNS_MX, on_shared_answer, NULL);
}

static void test_same_question_in_flight_is_asked_once(void **state)
{
	struct dns_resolver *r = resolver();
	queries = shared_answers = shared_mx = 0;
	dns_query(r, "example.test", DNS_MX, on_shared_answer, r);
	for (int i = 0; i < 998; i++)
		dns_query(r, i % 2 ? "EXAMPLE.test." : "example.test", DNS_MX, on_shared_answer,
		          NULL);
	shared_victim = dns_query(r, "example.test", DNS_MX, on_shared_answer, NULL);
	dns_query(r, "example.test", DNS_A, on_shared_answer, NULL); /* another type */
	dns_cancel(dns_query(r, "example.test", DNS_MX, on_shared_answer, NULL));
	run_for_ms(500);
	/* one MX and one A question; the MX asked again from a callback is
	 * answered from the cache */
	assert_int_equal(queries, 2);
	/* 998 + the first + its repeat + the A answer; the cancelled two get none */
	assert_int_equal(shared_answers, 1001);
	assert_int_equal(shared_mx, 1000 * 3); /* example.test has three MX records */
	dns_resolver_free(r);
}

/* An answer with records or a signed denial is kept for its TTL; a failure
 * is asked again. Hits carry what the resolver said: records, AD, rcode. */
static int cached_answers;
static struct dns_answer cached_last;

static void on_cached_answer(void *arg, const struct dns_answer *a)
{
	cached_answers++;
	cached_last.status = a->status;
	cached_last.authentic = a->authentic;
	cached_last.nxdomain = a->nxdomain;
	cached_last.n = a->n;
	cached_last.ttl = a->ttl;
	cached_last.ede = a->ede;
}

static void ask(struct dns_resolver *r, const char *name, enum dns_type type)
{
	cached_answers = 0;
	dns_query(r, name, type, on_cached_answer, NULL);
	run_for_ms(200);
	assert_int_equal(cached_answers, 1);
}

static void test_answers_are_kept_for_their_ttl(void **state)
{
	struct dns_resolver *r = resolver();
	queries = 0;
	ask(r, "example.test", DNS_MX);
	assert_int_equal(queries, 1);
	for (int i = 0; i < 3; i++) { /* any case, with or without the root's dot */
		ask(r, i == 1 ? "EXAMPLE.Test." : "example.test", DNS_MX);
		assert_int_equal(queries, 1);
		assert_int_equal(cached_last.status, DNS_OK);
		assert_int_equal(cached_last.n, 3);
		assert_true(cached_last.authentic);
		assert_true(cached_last.ttl > 0 && cached_last.ttl <= 300);
	}
	ask(r, "example.test", DNS_A); /* another type: another question */
	assert_int_equal(queries, 2);

	ask(r, "denied.test", DNS_MX); /* NXDOMAIN with its SOA: kept */
	ask(r, "denied.test", DNS_MX);
	assert_int_equal(queries, 3);
	assert_int_equal(cached_last.status, DNS_NOTFOUND);
	assert_true(cached_last.nxdomain);
	assert_true(cached_last.ttl <= 60);

	ask(r, "unknown.test", DNS_MX); /* a denial without SOA: no TTL, not kept */
	ask(r, "unknown.test", DNS_MX);
	assert_int_equal(queries, 5);

	ask(r, "servfail.test", DNS_CNAME); /* failures never kept */
	ask(r, "servfail.test", DNS_CNAME);
	assert_int_equal(queries, 7);
	assert_int_equal(cached_last.status, DNS_TEMPFAIL);
	assert_int_equal(cached_last.ede, 7);

	/* a hit is still an answer from the loop, and can be cancelled */
	cached_answers = 0;
	dns_cancel(dns_query(r, "example.test", DNS_MX, on_cached_answer, NULL));
	dns_query(r, "example.test", DNS_MX, on_cached_answer, NULL);
	assert_int_equal(cached_answers, 0);
	run_for_ms(100);
	assert_int_equal(cached_answers, 1);
	assert_int_equal(queries, 7);
	dns_resolver_free(r);
}

static void test_refused_port_is_temporary(void **state)
{
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sin);
	char ns[64];
	struct dns_resolver *r;

	/* a port that was just free: nothing listens, ICMP says refused */
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	bind(fd, (struct sockaddr *)&sin, sizeof(sin));
	getsockname(fd, (struct sockaddr *)&sin, &sl);
	close(fd);
	snprintf(ns, sizeof(ns), "127.0.0.1:%d", ntohs(sin.sin_port));
	r = resolver_for(ns, TRUST_AD_AUTO);
	query_done = false;
	dns_query(r, "example.test", DNS_MX, on_answer, NULL);
	run_for_ms(15000); /* returns at the answer; a timeout would take 3 + 6 s */
	assert_true(query_done);
	assert_int_equal(query_status, DNS_TEMPFAIL);
	dns_resolver_free(r);
}

static void test_trust_ad_follows_config(void **state)
{
	struct dns_resolver *r;
	char why[128];
	struct conf c;

	r = resolver_for("127.0.0.53", TRUST_AD_AUTO);
	assert_true(dns_resolver_trusts_ad(r));
	dns_resolver_free(r);
	r = resolver_for("[::1]:5353", TRUST_AD_AUTO);
	assert_true(dns_resolver_trusts_ad(r));
	dns_resolver_free(r);
	r = resolver_for("192.0.2.53:53", TRUST_AD_AUTO);
	assert_false(dns_resolver_trusts_ad(r));
	dns_resolver_free(r);
	r = resolver_for("192.0.2.53", TRUST_AD_YES);
	assert_true(dns_resolver_trusts_ad(r));
	dns_resolver_free(r);
	r = resolver_for("127.0.0.1", TRUST_AD_NO);
	assert_false(dns_resolver_trusts_ad(r));
	dns_resolver_free(r);

	conf_defaults(&c);
	strlist_add(&c.dns_nameserver, "127.0.0.1:53");
	strlist_add(&c.dns_nameserver, "192.0.2.53");
	r = dns_resolver_new(base, &c, why, sizeof(why));
	assert_false(dns_resolver_trusts_ad(r)); /* one remote server spoils it */
	dns_resolver_free(r);
	conf_free(&c);

	r = resolver_for("[::1]", TRUST_AD_AUTO);
	assert_true(dns_resolver_trusts_ad(r));
	dns_resolver_free(r);
	assert_null(resolver_for("not-an-ip", TRUST_AD_AUTO));
	assert_null(resolver_for("127.0.0.1:65536", TRUST_AD_AUTO)); /* c-ares would wrap it */
	assert_null(resolver_for("127.0.0.1:", TRUST_AD_AUTO));
	assert_null(resolver_for("127.0.0.1,127.0.0.2", TRUST_AD_AUTO));
}

static struct host_tlsa *got_tlsa;

static void on_tlsa(void *arg, struct host_tlsa *t)
{
	got_tlsa = t;
	done = true;
	event_base_loopbreak(base);
}

static struct host_tlsa *tlsa_of(struct dns_resolver *r, const char *host, const char *expanded)
{
	got_tlsa = NULL;
	tlsa_lookup(r, host, expanded, 25, on_tlsa, NULL);
	run();
	return got_tlsa;
}

static void test_tlsa_signed_records_are_found(void **state)
{
	struct dns_resolver *r = resolver();
	struct host_tlsa *t = tlsa_of(r, "mx1.example.test", "mx1.example.test");
	assert_int_equal(t->result, TLSA_FOUND);
	assert_string_equal(t->base, "mx1.example.test");
	assert_int_equal(t->n, 2);
	assert_int_equal(t->records[0].usage, 3);
	assert_int_equal(t->records[0].selector, 1);
	assert_int_equal(t->records[0].mtype, 1);
	assert_int_equal(t->records[0].len, 32);
	assert_int_equal(t->records[0].data[0], 0x5f);
	assert_int_equal(t->records[1].usage, 2);
	host_tlsa_free(t);
	dns_resolver_free(r);
}

/* Unsigned records, and names without any, are "no DANE"; a SERVFAIL
 * (here with EDE 6, DNSSEC Bogus) is a failure, never "none". */
static void test_tlsa_unsigned_none_and_bogus(void **state)
{
	struct dns_resolver *r = resolver();
	struct host_tlsa *t = tlsa_of(r, "unsigned.test", "unsigned.test");
	assert_int_equal(t->result, TLSA_NONE);
	assert_int_equal(t->n, 0);
	host_tlsa_free(t);
	t = tlsa_of(r, "mx2.example.test", NULL);
	assert_int_equal(t->result, TLSA_NONE);
	host_tlsa_free(t);
	t = tlsa_of(r, "bogus.test", "bogus.test");
	assert_int_equal(t->result, TLSA_FAILED);
	assert_int_equal(t->ede, 6);
	assert_non_null(strstr(t->error, "_25._tcp.bogus.test"));
	host_tlsa_free(t);
	dns_resolver_free(r);
}

/* RFC 7672 §2.2.2: the CNAME target first, then the host's own name; the
 * base domain is where the records were found. */
static void test_tlsa_cname_target_first_then_host(void **state)
{
	struct dns_resolver *r = resolver();
	struct host_tlsa *t = tlsa_of(r, "alias1.test", "target.test");
	assert_int_equal(t->result, TLSA_FOUND);
	assert_string_equal(t->base, "target.test");
	assert_int_equal(t->records[0].selector, 0);
	host_tlsa_free(t);
	t = tlsa_of(r, "alias2.test", "notarget.test");
	assert_int_equal(t->result, TLSA_FOUND);
	assert_string_equal(t->base, "alias2.test");
	assert_int_equal(t->records[0].len, 64);
	host_tlsa_free(t);
	dns_resolver_free(r);
}

static void test_tlsa_cancel_runs_no_callback(void **state)
{
	struct dns_resolver *r = resolver();
	got_tlsa = NULL;
	struct tlsa_lookup *l = tlsa_lookup(r, "mx1.example.test", NULL, 25, on_tlsa, NULL);
	tlsa_lookup_cancel(l);
	run_for_ms(200);
	assert_null(got_tlsa);
	dns_resolver_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_mx_hosts_in_preference_order),
	    cmocka_unit_test(test_equal_preferences_are_shuffled),
	    cmocka_unit_test(test_cname_of_domain_is_followed_and_not_authentic),
	    cmocka_unit_test(test_cname_loop_and_long_chain_fail_temporarily),
	    cmocka_unit_test(test_null_mx_fails_permanently),
	    cmocka_unit_test(test_nxdomain_fails_permanently),
	    cmocka_unit_test(test_unicode_domain_is_asked_as_a_label),
	    cmocka_unit_test(test_no_mx_means_implicit_mx),
	    cmocka_unit_test(test_servfail_is_temporary_with_ede),
	    cmocka_unit_test(test_invalid_mx_target_fails_permanently),
	    cmocka_unit_test(test_ip_literal_needs_no_dns),
	    cmocka_unit_test(test_dual_stack_host_v6_first_then_alternating),
	    cmocka_unit_test(test_single_stack_and_half_broken_hosts),
	    cmocka_unit_test(test_host_cname_followed_explicitly),
	    cmocka_unit_test(test_ip_host_is_returned_as_is),
	    cmocka_unit_test(test_cancel_runs_no_callback_and_leaks_nothing),
	    cmocka_unit_test(test_resolver_free_with_queries_in_flight),
	    cmocka_unit_test(test_query_callback_never_runs_inside_dns_query),
	    cmocka_unit_test(test_same_question_in_flight_is_asked_once),
	    cmocka_unit_test(test_answers_are_kept_for_their_ttl),
	    cmocka_unit_test(test_refused_port_is_temporary),
	    cmocka_unit_test(test_trust_ad_follows_config),
	    cmocka_unit_test(test_tlsa_signed_records_are_found),
	    cmocka_unit_test(test_tlsa_unsigned_none_and_bogus),
	    cmocka_unit_test(test_tlsa_cname_target_first_then_host),
	    cmocka_unit_test(test_tlsa_cancel_runs_no_callback),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
