/* pool.c - idle connection cache. */
#include "deliver/pool.h"

#include "util/log.h"

#include <event2/event.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct idle_conn {
	struct pool *pool;
	char dest[256];
	struct smtp_client *client;
	struct pool_conn_info info;
	struct event *timer;
	struct idle_conn *prev, *next;
};

struct pool {
	struct event_base *base;
	int64_t idle_timeout_ms;
	int max_messages;
	size_t max_idle;
	size_t nidle;
	struct idle_conn *head; /* most recently parked first */
};

struct pool *pool_new(struct event_base *base, int64_t idle_timeout_ms, int max_messages,
                      size_t max_idle)
{
	struct pool *p = calloc(1, sizeof *p);
	if (p == NULL)
		abort();
	p->base = base;
	p->idle_timeout_ms = idle_timeout_ms;
	p->max_messages = max_messages;
	p->max_idle = max_idle;
	return p;
}

void pool_set_limits(struct pool *p, int64_t idle_timeout_ms, int max_messages, size_t max_idle)
{
	p->idle_timeout_ms = idle_timeout_ms;
	p->max_messages = max_messages;
	p->max_idle = max_idle;
	while (p->nidle > p->max_idle)
		pool_close_oldest(p);
}

static void unlink_conn(struct idle_conn *ic)
{
	struct pool *p = ic->pool;
	if (ic->prev)
		ic->prev->next = ic->next;
	else
		p->head = ic->next;
	if (ic->next)
		ic->next->prev = ic->prev;
	p->nidle--;
	event_free(ic->timer);
	smtp_client_watch_idle(ic->client, NULL, NULL);
}

/* Idle for too long: say goodbye properly. */
static void on_idle_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct idle_conn *ic = arg;
	unlink_conn(ic);
	smtp_client_quit(ic->client);
	free(ic);
}

/* The server closed it (or talked out of turn) while parked. */
static void on_idle_close(void *arg, struct smtp_client *c)
{
	struct idle_conn *ic = arg;
	log_event(LOG_DEBUG, "connection_closed_by_peer", "mx=%s ip=%s messages=%d", ic->info.mx,
	          ic->info.ip, ic->info.messages);
	unlink_conn(ic);
	smtp_client_abort(ic->client);
	free(ic);
}

struct smtp_client *pool_take(struct pool *p, const char *dest, const char *tag,
                              struct pool_conn_info *info)
{
	for (struct idle_conn *ic = p->head; ic; ic = ic->next) {
		if (strcmp(ic->dest, dest) != 0 || strcmp(ic->info.tag, tag) != 0)
			continue;
		struct smtp_client *c = ic->client;
		*info = ic->info;
		unlink_conn(ic);
		free(ic);
		return c;
	}
	return NULL;
}

void pool_put(struct pool *p, const char *dest, struct smtp_client *c,
              const struct pool_conn_info *info)
{
	if (!smtp_client_usable(c) || info->messages >= p->max_messages ||
	    p->nidle >= p->max_idle) {
		smtp_client_quit(c);
		return;
	}
	struct idle_conn *ic = calloc(1, sizeof *ic);
	if (ic == NULL)
		abort();
	ic->pool = p;
	snprintf(ic->dest, sizeof ic->dest, "%s", dest);
	ic->client = c;
	ic->info = *info;
	ic->timer = evtimer_new(p->base, on_idle_timeout, ic);
	struct timeval tv = {.tv_sec = p->idle_timeout_ms / 1000,
	                     .tv_usec = (p->idle_timeout_ms % 1000) * 1000};
	evtimer_add(ic->timer, &tv);
	smtp_client_watch_idle(c, on_idle_close, ic);
	ic->next = p->head;
	if (p->head)
		p->head->prev = ic;
	p->head = ic;
	p->nidle++;
}

static void close_conn(struct idle_conn *ic)
{
	unlink_conn(ic);
	smtp_client_quit(ic->client);
	free(ic);
}

/* The connection parked longest whose dest is (or, with other, is not)
 * dest; any when dest is NULL. */
static struct idle_conn *oldest(struct pool *p, const char *dest, bool other)
{
	struct idle_conn *found = NULL;
	for (struct idle_conn *ic = p->head; ic; ic = ic->next)
		if (dest == NULL || (strcmp(ic->dest, dest) != 0) == other)
			found = ic;
	return found;
}

void pool_close_oldest(struct pool *p)
{
	struct idle_conn *ic = oldest(p, NULL, false);
	if (ic)
		close_conn(ic);
}

void pool_make_room(struct pool *p, const char *dest)
{
	struct idle_conn *ic = oldest(p, dest, true);
	if (ic)
		close_conn(ic);
}

void pool_close_oldest_of(struct pool *p, const char *dest)
{
	struct idle_conn *ic = oldest(p, dest, false);
	if (ic)
		close_conn(ic);
}

size_t pool_idle_count(const struct pool *p, const char *dest)
{
	size_t n = 0;
	for (const struct idle_conn *ic = p->head; ic; ic = ic->next)
		n += strcmp(ic->dest, dest) == 0;
	return n;
}

size_t pool_idle_total(const struct pool *p)
{
	return p->nidle;
}

void pool_free(struct pool *p)
{
	if (p == NULL)
		return;
	while (p->head) {
		struct idle_conn *ic = p->head;
		unlink_conn(ic);
		smtp_client_abort(ic->client);
		free(ic);
	}
	free(p);
}
