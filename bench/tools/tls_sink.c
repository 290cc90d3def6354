/* tls_sink.c - SMTP sink with STARTTLS, a measuring instrument for bench/ (W7).
 *
 * Not part of outpost: built by bench/tools/Makefile (bench/run.sh w7 runs it).
 *
 *   tls_sink -c CHAIN.pem -k KEY.pem [-n NAME] [-w WORKERS] [-o STATUS] [-i MS] [-t TICKETS] ADDR:PORT
 *
 * Accepts every message (EHLO with PIPELINING, 8BITMIME, SIZE, ENHANCEDSTATUSCODES and,
 * before TLS, STARTTLS; MAIL, RCPT, DATA, RSET, NOOP, QUIT), discards it and counts:
 * sessions, messages (over TLS and in plaintext), recipients, completed TLS handshakes,
 * how many of them resumed a session, failed handshakes. TLS: OpenSSL's defaults (TLS 1.3
 * with X25519), session cache on and session tickets on, so clients can resume; the ticket
 * keys are made before the workers are forked, so every worker resumes every ticket.
 *
 * One process per worker (default 1), each a single-threaded epoll loop on the shared
 * listening socket (EPOLLEXCLUSIVE). The parent does no SMTP: every INTERVAL ms (default
 * 20) it writes the summed counters, when they changed, as one line to STATUS (written to
 * STATUS.tmp and renamed), like smtp-sink -c's "mesg=N" counter that the harness polls;
 * also at once on SIGUSR1. On SIGTERM/SIGINT it stops the workers, writes the final line
 * and prints it on stdout with the workers' CPU time. cpu_ms is the workers' CPU so far
 * (each updates its own figure at least every 50 ms while busy); wcpu_max_ms the busiest
 * worker's: a worker near 100 % of one core is the limit, not the MTA under test.
 *
 * The listening socket is bound without SO_REUSEPORT: a second sink on the same address
 * and port fails at once instead of silently sharing the connections (smtp-sink does).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define IN_SIZE 16384
#define MAX_LINE 4096
#define MAX_WORKERS 64

struct stats { /* one per worker, in shared memory; only that worker writes it */
	uint64_t sess, quit, mesg, mesg_tls, rcpt, hs, hs_resumed, hs_fail, tls13, tls12, open, cpu_ns;
	uint64_t pad[4]; /* a cache line of its own */
};

enum state { ST_CMD, ST_DATA, ST_TLS_PENDING, ST_HANDSHAKE };

struct conn {
	int fd;
	SSL *ssl;
	enum state st;
	int dstate;          /* DATA: 0 mid-line, 1 CR, 2 line start, 3 "." at line start, 4 ".\r" */
	bool quit;           /* close once the output is written */
	uint32_t events;     /* epoll interest now */
	size_t inlen;
	char in[IN_SIZE];
	char *out;
	size_t outlen, outoff, outcap;
};

static SSL_CTX *ctx;
static const char *name = "mx.tls-sink.test";
static struct stats *all_stats, *st;
static int nworkers = 1;
static int epfd;

static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("tls_sink: ", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static uint64_t mono_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &t);
	return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

static void update_cpu(void)
{
	struct timespec t;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
	st->cpu_ns = (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* ------------------------------------------------------------------ connections */
static void conn_close(struct conn *c)
{
	if (c->ssl != NULL) {
		/* taken as a clean shutdown, whatever the peer did: otherwise SSL_free drops the
		 * session from the server cache (TLS 1.2 session ids; tickets need no cache) */
		SSL_set_shutdown(c->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
		SSL_free(c->ssl);
	}
	close(c->fd); /* also drops it from the epoll set */
	free(c->out);
	free(c);
	st->open--;
}

static void set_events(struct conn *c, uint32_t ev)
{
	if (ev == c->events)
		return;
	struct epoll_event e = {.events = ev, .data.ptr = c};
	epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &e);
	c->events = ev;
}

static void reply(struct conn *c, const char *s)
{
	size_t n = strlen(s);
	if (c->outlen + n > c->outcap) {
		size_t cap = c->outcap ? c->outcap * 2 : 1024;
		while (cap < c->outlen + n)
			cap *= 2;
		char *p = realloc(c->out, cap);
		if (p == NULL)
			die("out of memory");
		c->out = p;
		c->outcap = cap;
	}
	memcpy(c->out + c->outlen, s, n);
	c->outlen += n;
}

static bool handshake(struct conn *c);

/* Writes what is pending. Returns false when the connection was closed. */
static bool flush(struct conn *c)
{
	while (c->outoff < c->outlen) {
		size_t n = c->outlen - c->outoff;
		if (c->ssl != NULL) {
			int r = SSL_write(c->ssl, c->out + c->outoff, (int)n);
			if (r > 0) {
				c->outoff += (size_t)r;
				continue;
			}
			int e = SSL_get_error(c->ssl, r);
			if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
				set_events(c, EPOLLIN | EPOLLOUT);
				return true;
			}
			conn_close(c);
			return false;
		}
		ssize_t r = write(c->fd, c->out + c->outoff, n);
		if (r > 0) {
			c->outoff += (size_t)r;
			continue;
		}
		if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
			set_events(c, EPOLLIN | EPOLLOUT);
			return true;
		}
		conn_close(c);
		return false;
	}
	c->outoff = c->outlen = 0;
	if (c->quit) {
		if (c->ssl != NULL)
			SSL_shutdown(c->ssl); /* one close_notify, no wait for the peer's */
		conn_close(c);
		return false;
	}
	set_events(c, EPOLLIN);
	if (c->st == ST_TLS_PENDING) { /* the 220 to STARTTLS has left in plaintext */
		c->ssl = SSL_new(ctx);
		if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1) {
			conn_close(c);
			return false;
		}
		SSL_set_accept_state(c->ssl);
		c->st = ST_HANDSHAKE;
		return handshake(c);
	}
	return true;
}

/* Returns false when the connection was closed. */
static bool handshake(struct conn *c)
{
	int r = SSL_do_handshake(c->ssl);
	if (r == 1) {
		st->hs++;
		if (SSL_session_reused(c->ssl))
			st->hs_resumed++;
		if (SSL_version(c->ssl) == TLS1_3_VERSION)
			st->tls13++;
		else if (SSL_version(c->ssl) == TLS1_2_VERSION)
			st->tls12++;
		c->st = ST_CMD;
		return true;
	}
	int e = SSL_get_error(c->ssl, r);
	if (e == SSL_ERROR_WANT_READ) {
		set_events(c, EPOLLIN);
		return true;
	}
	if (e == SSL_ERROR_WANT_WRITE) {
		set_events(c, EPOLLIN | EPOLLOUT);
		return true;
	}
	st->hs_fail++;
	ERR_clear_error();
	conn_close(c);
	return false;
}

static void command(struct conn *c, char *line, size_t len)
{
	char v[5] = {0};
	memcpy(v, line, len < 4 ? len : 4);
	bool arg_ok = len == 4 || (len > 4 && line[4] == ' ');
	if (!arg_ok && len > 4)
		v[0] = 0;
	if (strcasecmp(v, "EHLO") == 0) {
		char buf[256];
		snprintf(buf, sizeof buf, "250-%s\r\n", name);
		reply(c, buf);
		reply(c, "250-PIPELINING\r\n250-SIZE 104857600\r\n250-8BITMIME\r\n");
		if (c->ssl == NULL)
			reply(c, "250-STARTTLS\r\n");
		reply(c, "250 ENHANCEDSTATUSCODES\r\n");
	} else if (strcasecmp(v, "HELO") == 0) {
		char buf[256];
		snprintf(buf, sizeof buf, "250 %s\r\n", name);
		reply(c, buf);
	} else if (strcasecmp(v, "MAIL") == 0) {
		reply(c, "250 2.1.0 Ok\r\n");
	} else if (strcasecmp(v, "RCPT") == 0) {
		st->rcpt++;
		reply(c, "250 2.1.5 Ok\r\n");
	} else if (strcasecmp(v, "DATA") == 0) {
		reply(c, "354 End data with <CR><LF>.<CR><LF>\r\n");
		c->st = ST_DATA;
		c->dstate = 2;
	} else if (strcasecmp(v, "RSET") == 0 || strcasecmp(v, "NOOP") == 0) {
		reply(c, "250 2.0.0 Ok\r\n");
	} else if (strcasecmp(v, "QUIT") == 0) {
		st->quit++;
		reply(c, "221 2.0.0 Bye\r\n");
		c->quit = true;
	} else if (len == 8 && strncasecmp(line, "STARTTLS", 8) == 0) {
		if (c->ssl != NULL) {
			reply(c, "503 5.5.1 Error: TLS already active\r\n");
		} else {
			reply(c, "220 2.0.0 Ready to start TLS\r\n");
			c->st = ST_TLS_PENDING;
		}
	} else {
		reply(c, "502 5.5.2 Error: command not recognized\r\n");
	}
}

/* Consumes c->in. */
static void process(struct conn *c)
{
	size_t off = 0;
	while (off < c->inlen && !c->quit) {
		if (c->st == ST_DATA) {
			const char *p = c->in + off, *end = c->in + c->inlen;
			int d = c->dstate;
			for (; p < end; p++) {
				char ch = *p;
				if (ch == '\r')
					d = d == 3 ? 4 : 1;
				else if (ch == '\n') {
					if (d == 4)
						break;
					d = d == 1 ? 2 : 0;
				} else if (ch == '.')
					d = d == 2 ? 3 : 0;
				else
					d = 0;
			}
			if (p == end) {
				c->dstate = d;
				off = c->inlen;
				break;
			}
			off = (size_t)(p - c->in) + 1;
			c->st = ST_CMD;
			st->mesg++;
			if (c->ssl != NULL)
				st->mesg_tls++;
			reply(c, "250 2.0.0 Ok: queued\r\n");
			continue;
		}
		if (c->st != ST_CMD)
			break;
		char *nl = memchr(c->in + off, '\n', c->inlen - off);
		if (nl == NULL) {
			if (c->inlen - off > MAX_LINE) {
				reply(c, "500 5.5.0 Error: line too long\r\n");
				c->quit = true;
			}
			break;
		}
		size_t len = (size_t)(nl - (c->in + off));
		if (len > 0 && c->in[off + len - 1] == '\r')
			len--;
		command(c, c->in + off, len);
		off = (size_t)(nl - c->in) + 1;
		if (c->st == ST_TLS_PENDING) { /* nothing may follow STARTTLS in plaintext */
			off = c->inlen;
			break;
		}
	}
	memmove(c->in, c->in + off, c->inlen - off);
	c->inlen -= off;
}

static void on_conn(struct conn *c, uint32_t ev)
{
	if (c->st == ST_HANDSHAKE && !handshake(c))
		return;
	if (c->outlen > c->outoff && !flush(c))
		return;
	while (c->st == ST_CMD || c->st == ST_DATA) {
		if (c->inlen == sizeof c->in) { /* a command line longer than the buffer */
			conn_close(c);
			return;
		}
		ssize_t n;
		if (c->ssl != NULL) {
			int r = SSL_read(c->ssl, c->in + c->inlen, (int)(sizeof c->in - c->inlen));
			if (r <= 0) {
				int e = SSL_get_error(c->ssl, r);
				if (e == SSL_ERROR_WANT_READ)
					break;
				if (e == SSL_ERROR_WANT_WRITE) {
					set_events(c, EPOLLIN | EPOLLOUT);
					break;
				}
				ERR_clear_error();
				conn_close(c);
				return;
			}
			n = r;
		} else {
			n = read(c->fd, c->in + c->inlen, sizeof c->in - c->inlen);
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				break;
			if (n <= 0) {
				conn_close(c);
				return;
			}
		}
		c->inlen += (size_t)n;
		process(c);
		if (c->st == ST_TLS_PENDING || c->quit)
			break;
	}
	if (c->outlen > c->outoff || c->quit || c->st == ST_TLS_PENDING)
		flush(c);
}

static void on_accept(int lfd)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return; /* EAGAIN (another worker took it), or EMFILE and the like */
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		struct conn *c = calloc(1, sizeof *c);
		if (c == NULL)
			die("out of memory");
		c->fd = fd;
		c->st = ST_CMD;
		c->events = EPOLLIN;
		struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
		if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &e) != 0) {
			close(fd);
			free(c);
			continue;
		}
		st->sess++;
		st->open++;
		char buf[256];
		snprintf(buf, sizeof buf, "220 %s ESMTP tls_sink\r\n", name);
		reply(c, buf);
		flush(c);
	}
}

static void worker(int lfd)
{
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0)
		die("epoll_create1: %s", strerror(errno));
	struct epoll_event e = {.events = EPOLLIN | (nworkers > 1 ? EPOLLEXCLUSIVE : 0), .data.ptr = NULL};
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &e) != 0)
		die("epoll_ctl: %s", strerror(errno));
	struct epoll_event evs[256];
	uint64_t last_cpu = 0;
	for (;;) {
		int n = epoll_wait(epfd, evs, 256, 50);
		for (int i = 0; i < n; i++) {
			if (evs[i].data.ptr == NULL)
				on_accept(lfd);
			else
				on_conn(evs[i].data.ptr, evs[i].events);
		}
		uint64_t now = mono_ms();
		if (n > 0 ? now - last_cpu >= 50 : now - last_cpu >= 1000) {
			update_cpu();
			last_cpu = now;
		}
	}
}

/* ------------------------------------------------------------------ parent */
static double wall0;

static double wall(void)
{
	struct timespec t;
	clock_gettime(CLOCK_REALTIME, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int status_line(char *buf, size_t n)
{
	struct stats s = {0};
	uint64_t wmax = 0;
	for (int i = 0; i < nworkers; i++) {
		const volatile struct stats *w = &all_stats[i];
		s.sess += w->sess;
		s.quit += w->quit;
		s.mesg += w->mesg;
		s.mesg_tls += w->mesg_tls;
		s.rcpt += w->rcpt;
		s.hs += w->hs;
		s.hs_resumed += w->hs_resumed;
		s.hs_fail += w->hs_fail;
		s.tls13 += w->tls13;
		s.tls12 += w->tls12;
		s.open += w->open;
		s.cpu_ns += w->cpu_ns;
		if (w->cpu_ns > wmax)
			wmax = w->cpu_ns;
	}
	return snprintf(buf, n,
	                "sess=%lu quit=%lu mesg=%lu rcpt=%lu hs=%lu resumed=%lu full=%lu hs_fail=%lu "
	                "mesg_tls=%lu mesg_plain=%lu tls13=%lu tls12=%lu open=%lu cpu_ms=%lu wcpu_max_ms=%lu "
	                "workers=%d up_s=%.3f\n",
	                s.sess, s.quit, s.mesg, s.rcpt, s.hs, s.hs_resumed, s.hs - s.hs_resumed, s.hs_fail,
	                s.mesg_tls, s.mesg - s.mesg_tls, s.tls13, s.tls12, s.open, s.cpu_ns / 1000000,
	                wmax / 1000000, nworkers, wall() - wall0);
}

static void write_status(const char *path, const char *line)
{
	char tmp[4096];
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	if (f == NULL)
		return;
	fputs(line, f);
	if (fclose(f) == 0)
		rename(tmp, path);
}

static void usage(void)
{
	fprintf(stderr, "usage: tls_sink -c CHAIN.pem -k KEY.pem [-n NAME] [-w WORKERS] [-o STATUS] "
	                "[-i INTERVAL_MS] [-t TLS13_TICKETS] ADDR:PORT\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *cert = NULL, *key = NULL, *status = NULL;
	int interval = 20, tickets = -1, opt;
	while ((opt = getopt(argc, argv, "c:k:n:w:o:i:t:")) != -1) {
		switch (opt) {
		case 'c': cert = optarg; break;
		case 'k': key = optarg; break;
		case 'n': name = optarg; break;
		case 'w': nworkers = atoi(optarg); break;
		case 'o': status = optarg; break;
		case 'i': interval = atoi(optarg); break;
		case 't': tickets = atoi(optarg); break;
		default: usage();
		}
	}
	if (optind != argc - 1 || cert == NULL || key == NULL || nworkers < 1 || nworkers > MAX_WORKERS ||
	    interval < 1)
		usage();
	char addr[256];
	snprintf(addr, sizeof addr, "%s", argv[optind]);
	char *colon = strrchr(addr, ':');
	if (colon == NULL)
		usage();
	*colon = 0;
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
	if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1)
		die("not an IPv4 address: %s", addr);

	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}

	ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL)
		die("SSL_CTX_new failed");
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
		die("cannot load certificate chain %s", cert);
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1)
		die("cannot load key %s (or it does not match the certificate)", key);
	/* resumption: a server-side cache (TLS 1.2 session ids) and tickets (both versions),
	 * one hour like Postfix's smtpd_tls_session_cache_timeout */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
	static const unsigned char sid_ctx[] = "tls_sink";
	SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof sid_ctx - 1);
	SSL_CTX_set_timeout(ctx, 3600);
	if (tickets >= 0)
		SSL_CTX_set_num_tickets(ctx, (size_t)tickets);

	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(lfd, (struct sockaddr *)&sin, sizeof sin) != 0)
		die("bind %s: %s", argv[optind], strerror(errno));
	if (listen(lfd, 4096) != 0)
		die("listen: %s", strerror(errno));

	all_stats = mmap(NULL, sizeof(struct stats) * MAX_WORKERS, PROT_READ | PROT_WRITE,
	                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (all_stats == MAP_FAILED)
		die("mmap: %s", strerror(errno));
	wall0 = wall();

	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);

	pid_t pids[MAX_WORKERS];
	for (int i = 0; i < nworkers; i++) {
		pids[i] = fork();
		if (pids[i] < 0)
			die("fork: %s", strerror(errno));
		if (pids[i] == 0) {
			sigprocmask(SIG_UNBLOCK, &set, NULL);
			st = &all_stats[i];
			worker(lfd);
			_exit(0);
		}
	}
	close(lfd);

	char line[1024], last[1024] = "";
	int dead = 0;
	struct timespec ts = {.tv_sec = interval / 1000, .tv_nsec = (long)(interval % 1000) * 1000000};
	uint64_t last_write = 0;
	for (;;) {
		int sig = sigtimedwait(&set, NULL, &ts);
		if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP)
			break;
		if (sig == SIGCHLD) {
			while (waitpid(-1, NULL, WNOHANG) > 0)
				dead++;
			fprintf(stderr, "tls_sink: %d worker(s) ended unexpectedly\n", dead);
			if (dead >= nworkers)
				break;
		}
		status_line(line, sizeof line);
		/* the up_s field always changes: compare without it */
		char *a = strstr(line, " up_s="), *b = strstr(last, " up_s=");
		size_t la = a ? (size_t)(a - line) : strlen(line), lb = b ? (size_t)(b - last) : strlen(last);
		uint64_t now = mono_ms();
		if (status != NULL && (sig == SIGUSR1 || la != lb || memcmp(line, last, la) != 0 || now - last_write >= 1000)) {
			write_status(status, line);
			memcpy(last, line, sizeof last);
			last_write = now;
		}
	}
	for (int i = 0; i < nworkers; i++)
		kill(pids[i], SIGTERM);
	while (wait(NULL) > 0)
		;
	status_line(line, sizeof line);
	if (status != NULL)
		write_status(status, line);
	struct rusage ru;
	getrusage(RUSAGE_CHILDREN, &ru);
	printf("%s", line);
	printf("final: workers user %.3f s, system %.3f s\n", (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6,
	       (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
	return dead > 0 ? 1 : 0;
}
