/* dns_order_test.c - the dialing order of docs/destinations.md (order_ips
 * in src/dns/destinations.c) and the address helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "dns/destinations.h"

#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

static struct dns_addr ip(const char *s)
{
	struct dns_addr a;

	assert_true(dns_addr_parse(s, &a));
	return a;
}

/* "a b c" of the formatted addresses, for one-line comparisons. */
static const char *join(const struct dns_addr *a, size_t n)
{
	static char buf[512];
	size_t o = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		char one[64];

		dns_addr_format(&a[i], one, sizeof(one));
		o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s%s", i ? " " : "", one);
	}
	return buf;
}

/* Simulates attempts: each one dials the first address of the ordering and
 * appends it to the history, as the delivery code does on a connect. */
static void attempts(const char *const *resolver_order, size_t n, size_t rounds,
                     const char *const *expect_first)
{
	struct dns_addr dialed[16];
	size_t ndialed = 0;

	for (size_t r = 0; r < rounds; r++) {
		struct dns_addr addrs[8];
		char first[64];

		for (size_t i = 0; i < n; i++)
			addrs[i] = ip(resolver_order[i]);
		order_ips(addrs, n, dialed, ndialed);
		dns_addr_format(&addrs[0], first, sizeof(first));
		assert_string_equal(first, expect_first[r]);
		dialed[ndialed++] = addrs[0];
	}
}

static void test_no_history_keeps_resolver_order(void **state)
{
	struct dns_addr a[3] = {ip("2001:db8::1"), ip("192.0.2.1"), ip("192.0.2.2")};

	order_ips(a, 3, NULL, 0);
	assert_string_equal(join(a, 3), "2001:db8::1 192.0.2.1 192.0.2.2");
}

static void test_dual_stack_alternates_families(void **state)
{
	const char *const order[] = {"192.0.2.1", "2001:db8::1", "192.0.2.2", "2001:db8::2"};
	const char *const first[] = {"192.0.2.1", "2001:db8::1", "192.0.2.1", "2001:db8::1",
	                             "192.0.2.1"};

	attempts(order, 4, 5, first);
}

static void test_dual_stack_other_family_first_keeps_order_inside(void **state)
{
	struct dns_addr a[4] = {ip("2001:db8::1"), ip("192.0.2.1"), ip("2001:db8::2"),
	                        ip("192.0.2.2")};
	struct dns_addr dialed[1] = {ip("2001:db8::2")};

	/* last was v6, the only v6 in the history: v4 first, then the same v6
	 * address, then the other v6 */
	order_ips(a, 4, dialed, 1);
	assert_string_equal(join(a, 4), "192.0.2.1 192.0.2.2 2001:db8::2 2001:db8::1");
}

static void test_single_stack_second_attempt_retries_same_ip(void **state)
{
	const char *const order[] = {"192.0.2.1", "192.0.2.2", "192.0.2.3"};
	/* 1st: resolver order; 2nd: same as the 1st (greylisting); then the
	 * history holds that family twice and the resolver order is back */
	const char *const first[] = {"192.0.2.1", "192.0.2.1", "192.0.2.1", "192.0.2.1"};

	attempts(order, 3, 4, first);
}

static void test_single_stack_prefers_last_when_it_is_not_first(void **state)
{
	struct dns_addr a[3] = {ip("192.0.2.1"), ip("192.0.2.2"), ip("192.0.2.3")};
	struct dns_addr dialed[1] = {ip("192.0.2.3")};
	struct dns_addr twice[2] = {ip("192.0.2.2"), ip("192.0.2.3")};

	order_ips(a, 3, dialed, 1);
	assert_string_equal(join(a, 3), "192.0.2.3 192.0.2.1 192.0.2.2");

	a[0] = ip("192.0.2.1");
	a[1] = ip("192.0.2.2");
	a[2] = ip("192.0.2.3");
	order_ips(a, 3, twice, 2); /* two of the family dialed: resolver order */
	assert_string_equal(join(a, 3), "192.0.2.1 192.0.2.2 192.0.2.3");
}

static void test_history_of_other_addresses_only_moves_families(void **state)
{
	struct dns_addr a[2] = {ip("2001:db8::1"), ip("2001:db8::2")};
	struct dns_addr dialed[1] = {ip("192.0.2.9")}; /* the host lost its IPv4 */

	order_ips(a, 2, dialed, 1);
	assert_string_equal(join(a, 2), "2001:db8::1 2001:db8::2");
}

static void test_addr_parse_and_format(void **state)
{
	struct dns_addr a;
	char buf[64];

	assert_true(dns_addr_parse("192.0.2.1", &a));
	assert_int_equal(a.family, AF_INET);
	assert_true(dns_addr_parse("2001:DB8::1", &a));
	assert_int_equal(a.family, AF_INET6);
	dns_addr_format(&a, buf, sizeof(buf));
	assert_string_equal(buf, "2001:db8::1");
	assert_false(dns_addr_parse("[192.0.2.1]", &a));
	assert_false(dns_addr_parse("mx.example", &a));
	assert_false(dns_addr_parse("", &a));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_no_history_keeps_resolver_order),
	    cmocka_unit_test(test_dual_stack_alternates_families),
	    cmocka_unit_test(test_dual_stack_other_family_first_keeps_order_inside),
	    cmocka_unit_test(test_single_stack_second_attempt_retries_same_ip),
	    cmocka_unit_test(test_single_stack_prefers_last_when_it_is_not_first),
	    cmocka_unit_test(test_history_of_other_addresses_only_moves_families),
	    cmocka_unit_test(test_addr_parse_and_format),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
