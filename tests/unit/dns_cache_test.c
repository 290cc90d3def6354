/* dns_cache_test.c - src/dns/cache.c: TTLs, their cap, and the bounds on
 * entries and octets, with the clock given by the test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "dns/cache.h"

#include <stdio.h>
#include <string.h>

static const uint8_t answer[] = {0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0};

static bool has(struct dns_cache *c, const char *key, enum dns_type t, int64_t now)
{
	size_t len;
	uint32_t ttl;
	return dns_cache_get(c, key, t, now, &len, &ttl) != NULL;
}

static void test_kept_until_the_ttl_runs_out(void **state)
{
	struct dns_cache *c = dns_cache_new(3600);
	size_t len = 0;
	uint32_t ttl = 0;
	dns_cache_put(c, "example.test", DNS_MX, answer, sizeof answer, 60, 1000);
	const uint8_t *got = dns_cache_get(c, "example.test", DNS_MX, 1000, &len, &ttl);
	assert_non_null(got);
	assert_int_equal(len, sizeof answer);
	assert_memory_equal(got, answer, sizeof answer);
	assert_int_equal(ttl, 60);
	assert_non_null(dns_cache_get(c, "example.test", DNS_MX, 1000 + 59500, &len, &ttl));
	assert_int_equal(ttl, 1); /* the remaining time, rounded up */
	assert_false(has(c, "example.test", DNS_A, 1000));      /* another type */
	assert_false(has(c, "example.test", DNS_MX, 61000));    /* expired, and gone */
	assert_int_equal(dns_cache_entries(c), 0);
	dns_cache_free(c);
}

static void test_ttl_zero_big_answers_and_the_cap(void **state)
{
	struct dns_cache *c = dns_cache_new(3600);
	static uint8_t big[DNS_CACHE_ANSWER_MAX + 1];
	dns_cache_put(c, "zero.test", DNS_A, answer, sizeof answer, 0, 0);
	dns_cache_put(c, "big.test", DNS_A, big, sizeof big, 300, 0);
	assert_int_equal(dns_cache_entries(c), 0);
	dns_cache_put(c, "long.test", DNS_A, answer, sizeof answer, 7 * 86400, 0);
	assert_true(has(c, "long.test", DNS_A, 3600 * 1000 - 1)); /* capped at the maximum */
	assert_false(has(c, "long.test", DNS_A, 3600 * 1000));
	dns_cache_free(c);

	c = dns_cache_new(0); /* dns.cache_max_ttl = 0: nothing kept */
	dns_cache_put(c, "example.test", DNS_A, answer, sizeof answer, 300, 0);
	assert_int_equal(dns_cache_entries(c), 0);
	dns_cache_free(c);
}

static void test_a_new_answer_replaces_the_old(void **state)
{
	struct dns_cache *c = dns_cache_new(3600);
	size_t len;
	uint32_t ttl;
	dns_cache_put(c, "example.test", DNS_MX, answer, sizeof answer, 60, 0);
	dns_cache_put(c, "example.test", DNS_MX, answer, 4, 10, 0);
	assert_int_equal(dns_cache_entries(c), 1);
	assert_non_null(dns_cache_get(c, "example.test", DNS_MX, 0, &len, &ttl));
	assert_int_equal(len, 4);
	assert_int_equal(ttl, 10);
	dns_cache_free(c);
}

/* Full: the oldest answers leave first, by count and by octets. */
static void test_bounded_in_entries_and_octets(void **state)
{
	struct dns_cache *c = dns_cache_new(3600);
	char key[64];
	for (int i = 0; i < DNS_CACHE_ENTRIES + 100; i++) {
		snprintf(key, sizeof key, "host%d.test", i);
		dns_cache_put(c, key, DNS_A, answer, sizeof answer, 300, 0);
	}
	assert_int_equal(dns_cache_entries(c), DNS_CACHE_ENTRIES);
	assert_false(has(c, "host0.test", DNS_A, 0));
	assert_false(has(c, "host99.test", DNS_A, 0));
	assert_true(has(c, "host100.test", DNS_A, 0));
	snprintf(key, sizeof key, "host%d.test", DNS_CACHE_ENTRIES + 99);
	assert_true(has(c, key, DNS_A, 0));

	static uint8_t full[DNS_CACHE_ANSWER_MAX];
	const size_t most = DNS_CACHE_BYTES / DNS_CACHE_ANSWER_MAX;
	for (size_t i = 0; i < most + 10; i++) {
		snprintf(key, sizeof key, "large%zu.test", i);
		dns_cache_put(c, key, DNS_TXT, full, sizeof full, 300, 0);
	}
	assert_true(dns_cache_entries(c) <= most);
	assert_false(has(c, "large0.test", DNS_TXT, 0));
	snprintf(key, sizeof key, "large%zu.test", most + 9);
	assert_true(has(c, key, DNS_TXT, 0));
	dns_cache_free(c); /* ASan: nothing leaks */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_kept_until_the_ttl_runs_out),
	    cmocka_unit_test(test_ttl_zero_big_answers_and_the_cap),
	    cmocka_unit_test(test_a_new_answer_replaces_the_old),
	    cmocka_unit_test(test_bounded_in_entries_and_octets),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
