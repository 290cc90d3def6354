/* timeutil.c - clocks, durations and time formats. */
#include "util/timeutil.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int64_t time_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t time_mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t unit_ms(const char *u, size_t len)
{
	static const struct {
		const char *name;
		int64_t ms;
	} units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
		if (strlen(units[i].name) == len && memcmp(units[i].name, u, len) == 0)
			return units[i].ms;
	return 0;
}

bool duration_parse(const char *s, int64_t *ms)
{
	int64_t total = 0;
	bool any = false;
	while (*s) {
		if (*s < '0' || *s > '9')
			return false;
		int64_t n = 0;
		while (*s >= '0' && *s <= '9') {
			if (n > (INT64_MAX - 9) / 10)
				return false;
			n = n * 10 + (*s++ - '0');
		}
		const char *u = s;
		while ((*s >= 'a' && *s <= 'z'))
			s++;
		int64_t mult = (s == u) ? (any || *s ? 0 : 1000) : unit_ms(u, (size_t)(s - u));
		if (mult == 0 || n > (INT64_MAX - total) / mult)
			return false;
		total += n * mult;
		any = true;
	}
	if (!any)
		return false;
	*ms = total;
	return true;
}

void duration_format(int64_t ms, char *buf, size_t n)
{
	static const struct {
		char name;
		int64_t ms;
	} units[] = {{'d', 86400000}, {'h', 3600000}, {'m', 60000}, {'s', 1000}};
	size_t o = 0;
	buf[0] = '\0';
	if (ms % 1000 != 0 || ms == 0) {
		snprintf(buf, n, ms == 0 ? "0s" : "%lldms", (long long)ms);
		return;
	}
	for (size_t i = 0; i < 4 && o < n; i++) {
		if (ms >= units[i].ms) {
			o += (size_t)snprintf(buf + o, n - o, "%lld%c",
			                      (long long)(ms / units[i].ms), units[i].name);
			ms %= units[i].ms;
		}
	}
}

void time_format_rfc3339(int64_t ms, char *buf, size_t n)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The n digits at s as a number (the caller checked they are digits). */
static int digits(const char *s, int n)
{
	int v = 0;
	for (int i = 0; i < n; i++)
		v = v * 10 + (s[i] - '0');
	return v;
}

bool time_parse_rfc3339(const char *s, int64_t *ms)
{
	/* RFC 3339 §5.6 date-time, UTC: full-date "T" partial-time "Z" */
	static const char shape[] = "dddd-dd-ddTdd:dd:ddZ";
	if (strlen(s) != sizeof shape - 1)
		return false;
	for (size_t i = 0; shape[i]; i++)
		if (shape[i] == 'd' ? !isdigit((unsigned char)s[i])
		                    : toupper((unsigned char)s[i]) != shape[i])
			return false;
	struct tm tm = {.tm_year = digits(s, 4) - 1900,
	                .tm_mon = digits(s + 5, 2) - 1,
	                .tm_mday = digits(s + 8, 2),
	                .tm_hour = digits(s + 11, 2),
	                .tm_min = digits(s + 14, 2),
	                .tm_sec = digits(s + 17, 2)};
	struct tm want = tm;
	time_t t = timegm(&tm);
	/* timegm normalises 30 February into March: refuse what moved */
	if (t == (time_t)-1 || tm.tm_year != want.tm_year || tm.tm_mon != want.tm_mon ||
	    tm.tm_mday != want.tm_mday || tm.tm_hour != want.tm_hour || tm.tm_min != want.tm_min ||
	    tm.tm_sec != want.tm_sec)
		return false;
	*ms = (int64_t)t * 1000;
	return true;
}

void time_format_rfc5322(int64_t ms, char *buf, size_t n)
{
	static const char *days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
	static const char *months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	                               "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	snprintf(buf, n, "%s, %d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday], tm.tm_mday,
	         months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}
