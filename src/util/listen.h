/* listen.h - listen addresses: "host:port", "[v6]:port" or "unix:PATH".
 *
 * One syntax for every listener and every client of one: the submission
 * and admin listeners bind it, the CLI and `outpost send` connect to it, so
 * all read the configuration the same way. Parsing copies into fixed fields
 * and fails cleanly on anything too long. Unix sockets are opened here too:
 * a socket a dead daemon left is removed, anything else at the path is not.
 */
#ifndef OUTPOST_UTIL_LISTEN_H
#define OUTPOST_UTIL_LISTEN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
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

/* The numeric address of a (not unix) as a socket address; false when the
 * host is not a literal address. */
bool listen_addr_sockaddr(const struct listen_addr *a, struct sockaddr_storage *ss, socklen_t *len);

/* A listening, non-blocking unix socket at path with the given mode (set
 * before anyone can connect, whatever the umask), or -1 with why filled. */
int listen_unix_socket(const char *path, unsigned mode, char *why, size_t whylen);

#endif
