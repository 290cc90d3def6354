/* dns_cache_test.c - src/dns/cache.c: TTLs, their cap, copies, and the
 * bounds on entries and octets, with the clock given by the test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "dns/cache.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An answer with n A records 192.0.2.1, 192.0.2.2, ... */
static struct dns_answer addrs_answer(size_t n)
{
	struct dns_answer a;
	memset(&a, 0, sizeof a);
	a.status = DNS_OK;
	a.ede = -1;
	a.authentic = true;
	a.n = n;
	a.addrs = calloc(n ? n : 1, sizeof *a.addrs);
	for (size_t i = 0; i < n; i++) {
		a.addrs[i].family = AF_INET;
		a.addrs[i].v4.s_addr = htonl(0xc0000200u + (uint32_t)i + 1);
	}
	snprintf(a.canonical, sizeof a.canonical, "example.test");
	return a;
}

/* An answer with one TXT record of len octets. */
static struct dns_answer txt_answer(size_t len)
{
	struct dns_answer a;
	memset(&a, 0, sizeof a);
	a.status = DNS_OK;
	a.ede = -1;
	a.n = 1;
	a.txt = calloc(1, sizeof *a.txt);
	a.txt[0] = malloc(len + 1);
	memset(a.txt[0], 'x', len);
	a.txt[0][len] = '\0';
	return a;
}

static bool has(struct dns_cache *c, const char *key, enum dns_type t, int64_t now)
{
	uint32_t ttl;
	return dns_cache_get(c, key, t, now, &ttl) != NULL;
}

static void test_kept_until_the_ttl_runs_out(void **state)
{
	struct dns_cache *c = dns_cache_new(3600);
	struct dns_answer a = addrs_answer(2);
	uint32_t ttl = 0;
	a.ede = 18;
	dns_cache_put(c, "example.test", DNS_A, &a, 60, 1000);
	dns_answer_free(&a); /* the cache has its own copy */
	const struct dns_answer *got = dns_cache_get(c, "example.test", DNS_A, 1000, &ttl);
	assert_non_null(got);
	assert_int_equal(got->status, DNS_OK);
	assert_true(got->authentic);
	assert_int_equal(got->ede, 18);
	assert_string_equal(got->canonical, "example.test");
	assert_int_equal(got->n, 2);
	assert_int_equal(ntohl(got->addrs[1].v4.s_addr), 0xc0000202u);
	assert_int_equal(ttl, 60);
	assert_non_null(dns_cache_get(c, "example.test", DNS_A, 1000 + 59500, &ttl));
	assert_int_equal(ttl, 1); /* the remaining time, rounded up */
	assert_false(has(c, "example.test", DNS_AAAA, 1000)); /* another type */
	assert_false(has(c, "example.test", DNS_A, 61000));   /* expired, and gone */
	assert_int_equal(dns_cache_entries(c), 0);
	dns_cache_free(c);
}

/* What a hit hands out is a copy the caller owns, records and all. */
static void test_a_copy_outlives_the_entry(void **state)
{
	struct dns_cache *c = dns_cache_new(3600);
	struct dns_answer a;
	memset(&a, 0, sizeof a);
	a.status = DNS_OK;
	a.n = 1;
	a.tlsa = calloc(1, sizeof *a.tlsa);
	a.tlsa[0] = (struct dns_tlsa){.usage = 3, .selector = 1, .mtype = 1, .len = 32};
	a.tlsa[0].data = malloc(32);
	memset(a.tlsa[0].data, 0xab, 32);
	dns_cache_put(c, "_25._tcp.mx.test", DNS_TLSA, &a, 300, 0);
	dns_answer_free(&a);
	uint32_t ttl;
	struct dns_answer copy;
	dns_answer_copy(&copy, dns_cache_get(c, "_25._tcp.mx.test", DNS_TLSA, 0, &ttl));
	dns_cache_free(c);
	assert_int_equal(copy.tlsa[0].usage, 3);
	assert_int_equal(copy.tlsa[0].len, 32);
	assert_int_equal(copy.tlsa[0].data[31], 0xab);
	dns_answer_free(&copy); /* ASan: one owner each, nothing freed twice */
}

static void test_ttl_zero_big_answers_and_the_cap(void **state)
{
	struct dns_cache *c = dns_cache_new(3600);
	struct dns_answer a = addrs_answer(1);
	struct dns_answer big = txt_answer(DNS_CACHE_ANSWER_MAX);
	dns_cache_put(c, "zero.test", DNS_A, &a, 0, 0);
	dns_cache_put(c, "big.test", DNS_TXT, &big, 300, 0);
	assert_int_equal(dns_cache_entries(c), 0);
	dns_cache_put(c, "long.test", DNS_A, &a, 7 * 86400, 0);
	assert_true(has(c, "long.test", DNS_A, 3600 * 1000 - 1)); /* capped at the maximum */
	assert_false(has(c, "long.test", DNS_A, 3600 * 1000));
	dns_cache_free(c);

	c = dns_cache_new(0); /* dns.cache_max_ttl = 0: nothing kept */
	dns_cache_put(c, "example.test", DNS_A, &a, 300, 0);
	assert_int_equal(dns_cache_entries(c), 0);
	dns_cache_free(c);
	dns_answer_free(&a);
	dns_answer_free(&big);
}

static void test_a_new_answer_replaces_the_old(void **state)
{
	struct dns_cache *c = dns_cache_new(3600);
	struct dns_answer one = addrs_answer(1), three = addrs_answer(3);
	uint32_t ttl;
	dns_cache_put(c, "example.test", DNS_A, &three, 60, 0);
	dns_cache_put(c, "example.test", DNS_A, &one, 10, 0);
	assert_int_equal(dns_cache_entries(c), 1);
	const struct dns_answer *got = dns_cache_get(c, "example.test", DNS_A, 0, &ttl);
	assert_non_null(got);
	assert_int_equal(got->n, 1);
	assert_int_equal(ttl, 10);
	dns_cache_free(c);
	dns_answer_free(&one);
	dns_answer_free(&three);
}

/* Full: the oldest answers leave first, by count and by octets. */
static void test_bounded_in_entries_and_octets(void **state)
{
	struct dns_cache *c = dns_cache_new(3600);
	struct dns_answer a = addrs_answer(1);
	char key[64];
	for (int i = 0; i < DNS_CACHE_ENTRIES + 100; i++) {
		snprintf(key, sizeof key, "host%d.test", i);
		dns_cache_put(c, key, DNS_A, &a, 300, 0);
	}
	assert_int_equal(dns_cache_entries(c), DNS_CACHE_ENTRIES);
	assert_false(has(c, "host0.test", DNS_A, 0));
	assert_false(has(c, "host99.test", DNS_A, 0));
	assert_true(has(c, "host100.test", DNS_A, 0));
	snprintf(key, sizeof key, "host%d.test", DNS_CACHE_ENTRIES + 99);
	assert_true(has(c, key, DNS_A, 0));
	dns_answer_free(&a);

	/* the largest answer kept, taking DNS_CACHE_ANSWER_MAX octets */
	struct dns_answer probe = txt_answer(0);
	size_t fixed = dns_cache_answer_size(&probe);
	dns_answer_free(&probe);
	struct dns_answer full = txt_answer(DNS_CACHE_ANSWER_MAX - fixed);
	assert_int_equal(dns_cache_answer_size(&full), DNS_CACHE_ANSWER_MAX);
	const size_t most = DNS_CACHE_BYTES / DNS_CACHE_ANSWER_MAX;
	for (size_t i = 0; i < most + 10; i++) {
		snprintf(key, sizeof key, "large%zu.test", i);
		dns_cache_put(c, key, DNS_TXT, &full, 300, 0);
	}
	assert_true(dns_cache_entries(c) <= most);
	assert_false(has(c, "large0.test", DNS_TXT, 0));
	snprintf(key, sizeof key, "large%zu.test", most + 9);
	assert_true(has(c, key, DNS_TXT, 0));
	dns_answer_free(&full);
	dns_cache_free(c); /* ASan: nothing leaks */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_kept_until_the_ttl_runs_out),
	    cmocka_unit_test(test_a_copy_outlives_the_entry),
	    cmocka_unit_test(test_ttl_zero_big_answers_and_the_cap),
	    cmocka_unit_test(test_a_new_answer_replaces_the_old),
	    cmocka_unit_test(test_bounded_in_entries_and_octets),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
