/* listen_addr.c - parse "host:port", "[v6]:port" and "unix:PATH". */
#include "admin/listen_addr.h"

#include <stdio.h>
#include <string.h>

static int parse_port(const char *s, unsigned *port)
{
	unsigned v = 0;
	if (*s == '\0')
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (unsigned)(*s - '0');
		if (v > 65535)
			return -1;
	}
	if (v == 0)
		return -1;
	*port = v;
	return 0;
}

static int parse_unix(const char *s, struct listen_addr *a, char *why, size_t whylen)
{
	const char *path = s + strlen("unix:");
	if (*path == '\0') {
		snprintf(why, whylen, "%s: empty socket path", s);
		return -1;
	}
	if (strlen(path) >= sizeof a->path) {
		snprintf(why, whylen, "%s: socket path longer than %zu bytes", s,
		         sizeof a->path - 1);
		return -1;
	}
	a->is_unix = true;
	snprintf(a->path, sizeof a->path, "%s", path);
	return 0;
}

/* Splits "host:port" or "[v6]:port"; the port is after the last colon. */
static int parse_inet(const char *s, struct listen_addr *a, char *why, size_t whylen)
{
	const char *host = s, *colon;
	size_t hostlen;
	if (*s == '[') {
		const char *close = strchr(s, ']');
		if (close == NULL || close[1] != ':')
			goto bad;
		host = s + 1;
		hostlen = (size_t)(close - host);
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL || memchr(s, ':', (size_t)(colon - s)) != NULL)
			goto bad; /* an IPv6 literal needs its brackets */
		hostlen = (size_t)(colon - s);
	}
	if (hostlen == 0 || hostlen >= sizeof a->host || parse_port(colon + 1, &a->port) < 0)
		goto bad;
	memcpy(a->host, host, hostlen);
	a->host[hostlen] = '\0';
	return 0;
bad:
	snprintf(why, whylen, "%s: expected host:port, [ipv6]:port or unix:PATH", s);
	return -1;
}

int listen_addr_parse(const char *s, struct listen_addr *a, char *why, size_t whylen)
{
	memset(a, 0, sizeof *a);
	if (strncmp(s, "unix:", 5) == 0)
		return parse_unix(s, a, why, whylen);
	return parse_inet(s, a, why, whylen);
}

bool listen_addr_is_wildcard(const struct listen_addr *a)
{
	return !a->is_unix && (strcmp(a->host, "0.0.0.0") == 0 || strcmp(a->host, "::") == 0);
}
