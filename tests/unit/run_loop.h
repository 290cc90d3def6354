/* run_loop.h - runs a unit test's event loop for a while: for the tests
 * that drive a libevent loop (dns_gather_test.c, https_test.c,
 * mtasts_fetch_test.c).
 *
 * The deadline is a timer of the call, freed when it returns. With
 * event_base_loopexit a deadline stayed pending whenever a callback broke
 * the loop first, and ended some later test's loop early (a CI failure of
 * dns_gather_test under ASan). */
#ifndef OUTPOST_TESTS_UNIT_RUN_LOOP_H
#define OUTPOST_TESTS_UNIT_RUN_LOOP_H

#include <event2/event.h>
#include <stdlib.h>

static void run_loop_deadline(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	event_base_loopbreak(arg);
}

/* Runs base for ms, or until a callback breaks it. */
static inline void run_loop_for_ms(struct event_base *base, int ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	struct event *deadline = evtimer_new(base, run_loop_deadline, base);

	if (deadline == NULL)
		abort();
	evtimer_add(deadline, &tv);
	event_base_dispatch(base);
	event_free(deadline);
}

#endif
