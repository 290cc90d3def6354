/* listen_addr.h - the [admin] listen syntax: "host:port", "[v6]:port" or "unix:PATH".
 *
 * Shared by the admin listener (which binds it) and the CLI (which connects
 * to it), so that both read the configuration the same way. Parsing copies
 * into fixed fields and fails cleanly on anything too long.
 */
#ifndef OUTPOST_ADMIN_LISTEN_ADDR_H
#define OUTPOST_ADMIN_LISTEN_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/un.h>

struct listen_addr {
	bool is_unix;
	char host[256]; /* without the brackets of an IPv6 literal */
	unsigned port;
	char path[sizeof((struct sockaddr_un *)0)->sun_path];
};

/* Parses s into a. Returns 0, or -1 with why filled (naming s). */
int listen_addr_parse(const char *s, struct listen_addr *a, char *why, size_t whylen);

/* True for 0.0.0.0 and ::, which a client cannot connect to as such. */
bool listen_addr_is_wildcard(const struct listen_addr *a);

#endif
