/* retry_test.c - the retry schedule arithmetic (docs/queue.md, "Retry
 * schedule"). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "deliver/retry.h"

static void test_default_schedule_doubles_from_7m30s(void **state)
{
	/* docs/queue.md's table: waits after attempts 1..7 */
	const int64_t min = 60000;
	const int64_t want[] = {7 * min + 30000, 15 * min,  30 * min, 60 * min,
	                        120 * min,       240 * min, 480 * min};
	for (int i = 0; i < 7; i++)
		assert_int_equal(retry_backoff_ms(450000, i), want[i]);
}

static void test_last_attempt_of_eight_runs_at_15h52m30s(void **state)
{
	int64_t t = 0;
	for (int i = 0; i < 7; i++)
		t += retry_backoff_ms(450000, i);
	assert_int_equal(t, (15 * 3600 + 52 * 60 + 30) * 1000LL);
}

static void test_backoff_is_capped_and_never_overflows(void **state)
{
	int64_t cap = 30LL * 86400 * 1000;
	assert_int_equal(retry_backoff_ms(450000, 40), cap);
	assert_int_equal(retry_backoff_ms(450000, 1000000), cap);
	assert_int_equal(retry_backoff_ms(cap * 2, 0), cap);
}

static void test_configured_first_retry_is_the_base(void **state)
{
	assert_int_equal(retry_backoff_ms(1000, 0), 1000);
	assert_int_equal(retry_backoff_ms(1000, 3), 8000);
}

static void test_remaining_attempts_follow_the_schedule(void **state)
{
	/* after attempt 5 of 8 started at t=0: attempts 6, 7, 8 at +2h, +6h, +14h */
	int64_t out[8];
	const int64_t h = 3600000;
	assert_int_equal(retry_remaining(450000, 8, 5, 0, out, 8), 3);
	assert_int_equal(out[0], 2 * h);
	assert_int_equal(out[1], 6 * h);
	assert_int_equal(out[2], 14 * h);
	assert_int_equal(retry_remaining(450000, 8, 8, 0, out, 8), 0);
	assert_int_equal(retry_remaining(450000, 8, 1, 0, out, 2), 2);
}

static void test_jitter_stays_within_one_percent_and_five_seconds(void **state)
{
	for (int i = 0; i < 1000; i++) {
		int64_t j = retry_jitter(100000);
		assert_true(j >= 99000 && j <= 101000);
		j = retry_jitter(24LL * 3600000);
		assert_true(j >= 24LL * 3600000 - 5000 && j <= 24LL * 3600000 + 5000);
	}
	assert_int_equal(retry_jitter(50), 50);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_default_schedule_doubles_from_7m30s),
	    cmocka_unit_test(test_last_attempt_of_eight_runs_at_15h52m30s),
	    cmocka_unit_test(test_backoff_is_capped_and_never_overflows),
	    cmocka_unit_test(test_configured_first_retry_is_the_base),
	    cmocka_unit_test(test_remaining_attempts_follow_the_schedule),
	    cmocka_unit_test(test_jitter_stays_within_one_percent_and_five_seconds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
