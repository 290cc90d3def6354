/* self.c - the addresses where outpost receives mail on the delivery port. */
#include "deliver/self.h"

#include <arpa/inet.h>
#include <event2/util.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

struct self_addrs {
	struct dns_addr *addrs;
	size_t n;
	bool loopback; /* a wildcard listener: all of 127/8 and ::1 too */
};

static void add(struct self_addrs *s, const struct sockaddr *sa)
{
	struct dns_addr a = {.family = sa->sa_family};
	if (sa->sa_family == AF_INET)
		a.v4 = ((const struct sockaddr_in *)sa)->sin_addr;
	else if (sa->sa_family == AF_INET6)
		a.v6 = ((const struct sockaddr_in6 *)sa)->sin6_addr;
	else
		return;
	s->addrs = realloc(s->addrs, (s->n + 1) * sizeof *s->addrs);
	if (s->addrs == NULL)
		abort();
	s->addrs[s->n++] = a;
}

static bool is_wildcard(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return ((const struct sockaddr_in *)sa)->sin_addr.s_addr == htonl(INADDR_ANY);
	return sa->sa_family == AF_INET6 &&
	       IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)sa)->sin6_addr);
}

static void add_interfaces(struct self_addrs *s)
{
	struct ifaddrs *list, *i;
	s->loopback = true;
	if (getifaddrs(&list) < 0)
		return;
	for (i = list; i; i = i->ifa_next)
		if (i->ifa_addr)
			add(s, i->ifa_addr);
	freeifaddrs(list);
}

static int port_of(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)sa)->sin_port);
	return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
}

struct self_addrs *self_addrs_new(const struct conf *conf)
{
	struct self_addrs *s = calloc(1, sizeof *s);
	if (s == NULL)
		abort();
	for (size_t i = 0; i < conf->submission_listen.len; i++) {
		struct sockaddr_storage ss;
		int len = sizeof ss;
		if (evutil_parse_sockaddr_port(conf->submission_listen.items[i],
		                               (struct sockaddr *)&ss, &len) != 0 ||
		    port_of((struct sockaddr *)&ss) != conf->delivery_port)
			continue;
		if (is_wildcard((struct sockaddr *)&ss))
			add_interfaces(s);
		else
			add(s, (struct sockaddr *)&ss);
	}
	return s;
}

void self_addrs_free(struct self_addrs *s)
{
	if (s == NULL)
		return;
	free(s->addrs);
	free(s);
}

bool self_addrs_match(const struct self_addrs *s, const struct dns_addr *a)
{
	if (s->loopback && ((a->family == AF_INET && (ntohl(a->v4.s_addr) >> 24) == 127) ||
	                    (a->family == AF_INET6 && IN6_IS_ADDR_LOOPBACK(&a->v6))))
		return true;
	for (size_t i = 0; i < s->n; i++) {
		const struct dns_addr *b = &s->addrs[i];
		if (b->family != a->family)
			continue;
		if (a->family == AF_INET ? b->v4.s_addr == a->v4.s_addr
		                         : memcmp(&b->v6, &a->v6, sizeof a->v6) == 0)
			return true;
	}
	return false;
}
