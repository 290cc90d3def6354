/* retry.c - the retry schedule (docs/queue.md, "Retry schedule"). */
#include "deliver/retry.h"

#include <sys/random.h>

#define MAX_BACKOFF_MS (30LL * 86400 * 1000)

int64_t retry_backoff_ms(int64_t first_retry_ms, int attempts_before)
{
	int64_t b = first_retry_ms;
	for (int i = 0; i < attempts_before && b < MAX_BACKOFF_MS; i++)
		b *= 2;
	return b < MAX_BACKOFF_MS ? b : MAX_BACKOFF_MS;
}

int64_t retry_jitter(int64_t backoff_ms)
{
	int64_t span = backoff_ms / 100 < 5000 ? backoff_ms / 100 : 5000;
	uint32_t r = 0;
	if (span == 0 || getrandom(&r, sizeof r, 0) != sizeof r)
		return backoff_ms;
	return backoff_ms - span + (int64_t)(r % (uint32_t)(2 * span + 1));
}

size_t retry_remaining(int64_t first_retry_ms, int max_attempts, int n, int64_t t, int64_t *out,
                       size_t max)
{
	size_t k = 0;
	for (int next = n + 1; next <= max_attempts && k < max; next++) {
		t += retry_backoff_ms(first_retry_ms, next - 2);
		out[k++] = t;
	}
	return k;
}
