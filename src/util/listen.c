/* listen.c - listen addresses and unix sockets. */
#include "util/listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

bool listen_addr_sockaddr(const struct listen_addr *a, struct sockaddr_storage *ss, socklen_t *len)
{
	memset(ss, 0, sizeof *ss);
	struct sockaddr_in *in = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
	if (a->is_unix)
		return false;
	if (inet_pton(AF_INET, a->host, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)a->port);
		*len = sizeof *in;
		return true;
	}
	if (inet_pton(AF_INET6, a->host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)a->port);
		*len = sizeof *in6;
		return true;
	}
	return false;
}

static bool unix_socket_in_use(const struct sockaddr_un *sa)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	bool live = connect(fd, (const struct sockaddr *)sa, sizeof *sa) == 0;
	close(fd);
	return live;
}

/* A socket left by a daemon that died is removed; anything else at the
 * path (a file, or a socket somebody still listens on) is left alone. */
static int unix_clear_stale(const struct sockaddr_un *sa, char *why, size_t whylen)
{
	struct stat st;
	const char *path = sa->sun_path;
	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		snprintf(why, whylen, "cannot stat %s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(why, whylen, "%s exists and is not a socket", path);
		return -1;
	}
	if (unix_socket_in_use(sa)) {
		snprintf(why, whylen, "another process listens on %s", path);
		return -1;
	}
	if (unlink(path) < 0) {
		snprintf(why, whylen, "cannot remove stale %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

int listen_unix_socket(const char *path, unsigned mode, char *why, size_t whylen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof sa.sun_path) {
		snprintf(why, whylen, "socket path %s is too long", path);
		return -1;
	}
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	if (unix_clear_stale(&sa, why, whylen) < 0)
		return -1;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (const struct sockaddr *)&sa, sizeof sa) < 0) {
		snprintf(why, whylen, "cannot listen on unix:%s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	/* Nobody can connect before listen(), so the mode holds from the
	 * first connection on. */
	if (chmod(path, mode) < 0 || listen(fd, 128) < 0) {
		snprintf(why, whylen, "cannot listen on unix:%s: %s", path, strerror(errno));
		close(fd);
		unlink(path);
		return -1;
	}
	return fd;
}
