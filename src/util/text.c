/* text.c - remote or user text made safe to print. */
#include "util/text.h"

#include "util/utf8.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

static bool is_control(uint32_t cp)
{
	return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f);
}

void text_clean(const char *s, size_t len, unsigned flags, const char *also,
                void (*fn)(void *arg, const char *p, size_t n), void *arg)
{
	const unsigned char *p = (const unsigned char *)s;
	bool space = false; /* the last thing written was a collapsed space */
	for (size_t i = 0; i < len;) {
		uint32_t cp = 0;
		size_t n = utf8_decode(p + i, len - i, &cp);
		bool blank = n > 0 && (is_control(cp) || cp == ' ');
		if ((flags & TEXT_COLLAPSE) && blank && !(flags & TEXT_ONE_WORD)) {
			if (!space)
				fn(arg, " ", 1);
			space = true;
			i += n;
			continue;
		}
		space = false;
		bool bad = n == 0 || (n > 1 && !(flags & TEXT_UTF8)) ||
		           (n == 1 && is_control(cp)) || ((flags & TEXT_ONE_WORD) && cp == ' ') ||
		           (n == 1 && also && cp != 0 && strchr(also, (int)cp));
		if (bad)
			fn(arg, "?", 1);
		else
			fn(arg, s + i, n);
		i += n ? n : 1;
	}
}

struct into {
	char *dst;
	size_t n, o;
	bool full;
};

static void put_into(void *arg, const char *p, size_t n)
{
	struct into *t = arg;
	if (t->full || t->o + n >= t->n) {
		t->full = true; /* cut after the last whole character that fits */
		return;
	}
	memcpy(t->dst + t->o, p, n);
	t->o += n;
}

void text_clean_into(char *dst, size_t n, const char *s, size_t len, unsigned flags,
                     const char *also)
{
	struct into t = {dst, n, 0, false};
	if (n == 0)
		return;
	text_clean(s, len, flags, also, put_into, &t);
	dst[t.o] = '\0';
}
