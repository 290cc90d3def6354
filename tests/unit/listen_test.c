/* listen_test.c - the [admin] listen syntax shared by daemon and CLI. */
/* cmocka.h needs these first */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "util/listen.h"

#include <string.h>

static char why[256];

static void test_ipv4_host_and_port(void **state)
{
	struct listen_addr a;
	assert_int_equal(listen_addr_parse("127.0.0.1:8025", &a, why, sizeof why), 0);
	assert_false(a.is_unix);
	assert_string_equal(a.host, "127.0.0.1");
	assert_int_equal(a.port, 8025);
	assert_false(listen_addr_is_wildcard(&a));
}

static void test_ipv6_literal_needs_brackets(void **state)
{
	struct listen_addr a;
	assert_int_equal(listen_addr_parse("[::1]:8025", &a, why, sizeof why), 0);
	assert_string_equal(a.host, "::1");
	assert_int_equal(a.port, 8025);
	assert_int_equal(listen_addr_parse("::1:8025", &a, why, sizeof why), -1);
	assert_int_equal(listen_addr_parse("[::1]8025", &a, why, sizeof why), -1);
}

static void test_unix_path(void **state)
{
	struct listen_addr a;
	assert_int_equal(listen_addr_parse("unix:/run/outpost/admin.sock", &a, why, sizeof why), 0);
	assert_true(a.is_unix);
	assert_string_equal(a.path, "/run/outpost/admin.sock");
	assert_int_equal(listen_addr_parse("unix:", &a, why, sizeof why), -1);
}

static void test_unix_path_too_long_is_refused(void **state)
{
	char spec[300] = "unix:/";
	struct listen_addr a;
	memset(spec + 6, 'x', 200);
	spec[206] = '\0';
	assert_int_equal(listen_addr_parse(spec, &a, why, sizeof why), -1);
	assert_non_null(strstr(why, "longer than"));
}

static void test_bad_ports_are_refused(void **state)
{
	struct listen_addr a;
	assert_int_equal(listen_addr_parse("8025", &a, why, sizeof why), -1);
	assert_int_equal(listen_addr_parse("host:", &a, why, sizeof why), -1);
	assert_int_equal(listen_addr_parse("host:0", &a, why, sizeof why), -1);
	assert_int_equal(listen_addr_parse("host:65536", &a, why, sizeof why), -1);
	assert_int_equal(listen_addr_parse("host:80a", &a, why, sizeof why), -1);
	assert_int_equal(listen_addr_parse(":8025", &a, why, sizeof why), -1);
	assert_int_equal(listen_addr_parse("host:65535", &a, why, sizeof why), 0);
}

static void test_wildcards_are_recognised(void **state)
{
	struct listen_addr a;
	assert_int_equal(listen_addr_parse("0.0.0.0:8025", &a, why, sizeof why), 0);
	assert_true(listen_addr_is_wildcard(&a));
	assert_int_equal(listen_addr_parse("[::]:8025", &a, why, sizeof why), 0);
	assert_true(listen_addr_is_wildcard(&a));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ipv4_host_and_port),
	    cmocka_unit_test(test_ipv6_literal_needs_brackets),
	    cmocka_unit_test(test_unix_path),
	    cmocka_unit_test(test_unix_path_too_long_is_refused),
	    cmocka_unit_test(test_bad_ports_are_refused),
	    cmocka_unit_test(test_wildcards_are_recognised),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
