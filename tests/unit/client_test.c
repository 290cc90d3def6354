/* client_test.c - the SMTP client (src/deliver/client.c) against scripted
 * fake servers.
 *
 * Each test runs a small server in a thread on 127.0.0.1: it follows a
 * script of steps (send this, expect that line, read the data, start TLS,
 * trickle, reset...) with blocking I/O, and records the first deviation and
 * what it received. The client runs on a libevent loop in the test's thread
 * until it has freed itself. The scripts read every pipelined command before
 * answering any, so a client that did not pipeline would time out.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "deliver/client.h"
#include "util/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- the scripted server -------------------------------------------------- */

enum op {
	OP_END,
	OP_SEND,       /* s */
	OP_EXPECT,     /* one line equal to s, or starting with s minus a final '*' */
	OP_READ_DATA,  /* lines up to and including ".", kept in data (wire form) */
	OP_READ_BYTES, /* exactly n octets, kept in data */
	OP_READ_SOME,  /* at least one octet, dropped */
	OP_QUIET,      /* nothing arrives within 150 ms */
	OP_TLS,        /* TLS handshake as the server */
	OP_SLOW,       /* s, one octet a second, until the peer goes away */
	OP_LONG_LINE,  /* "220 " and n octets of 'a' */
	OP_ENDLESS,    /* "250-endless" lines, up to n of them */
	OP_SLEEP,      /* n ms */
	OP_CLOSE,
	OP_RESET, /* close with RST */
};

struct step {
	enum op op;
	const char *s;
	size_t n;
};

#define SEND(x)                                                                                    \
	{                                                                                          \
		OP_SEND, x, 0                                                                      \
	}
#define EXPECT(x)                                                                                  \
	{                                                                                          \
		OP_EXPECT, x, 0                                                                    \
	}
#define READ_DATA                                                                                  \
	{                                                                                          \
		OP_READ_DATA, NULL, 0                                                              \
	}
#define READ_BYTES(n)                                                                              \
	{                                                                                          \
		OP_READ_BYTES, NULL, n                                                             \
	}
#define READ_SOME                                                                                  \
	{                                                                                          \
		OP_READ_SOME, NULL, 0                                                              \
	}
#define QUIET                                                                                      \
	{                                                                                          \
		OP_QUIET, NULL, 0                                                                  \
	}
#define TLS                                                                                        \
	{                                                                                          \
		OP_TLS, NULL, 0                                                                    \
	}
#define END                                                                                        \
	{                                                                                          \
		OP_END, NULL, 0                                                                    \
	}

struct server {
	int lfd, fd;
	uint16_t port;
	const struct step *script;
	SSL_CTX *tls;
	SSL *ssl;
	pthread_t thread;
	char in[65536];
	size_t inlen;
	char error[512];       /* the first deviation from the script */
	char transcript[8192]; /* command lines received, '\n'-separated */
	char *data;            /* DATA (stuffed, with the final ".") or BDAT octets */
	size_t data_len;
	char sni[256];
	bool long_line_sent; /* OP_LONG_LINE got all its octets out */
};

static void server_error(struct server *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void server_error(struct server *s, const char *fmt, ...)
{
	va_list ap;

	if (s->error[0])
		return;
	va_start(ap, fmt);
	vsnprintf(s->error, sizeof s->error, fmt, ap);
	va_end(ap);
}

static bool conn_send(struct server *s, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = s->ssl ? SSL_write(s->ssl, p, (int)n) : send(s->fd, p, n, MSG_NOSIGNAL);

		if (w <= 0)
			return false;
		p += w;
		n -= (size_t)w;
	}
	return true;
}

/* More input into s->in; false on EOF, error or the 10 s receive timeout. */
static bool conn_fill(struct server *s)
{
	ssize_t r;

	if (s->inlen == sizeof s->in)
		return false;
	if (s->ssl)
		r = SSL_read(s->ssl, s->in + s->inlen, (int)(sizeof s->in - s->inlen));
	else
		r = recv(s->fd, s->in + s->inlen, sizeof s->in - s->inlen, 0);
	if (r <= 0)
		return false;
	s->inlen += (size_t)r;
	return true;
}

static void in_consume(struct server *s, size_t n)
{
	memmove(s->in, s->in + n, s->inlen - n);
	s->inlen -= n;
}

/* One line without its CRLF into line (NUL-terminated); false when none. */
static bool read_line(struct server *s, char *line, size_t max)
{
	for (;;) {
		char *crlf = memmem(s->in, s->inlen, "\r\n", 2);

		if (crlf) {
			size_t n = (size_t)(crlf - s->in);

			if (n >= max)
				return false;
			memcpy(line, s->in, n);
			line[n] = '\0';
			in_consume(s, n + 2);
			return true;
		}
		if (!conn_fill(s))
			return false;
	}
}

static void data_add(struct server *s, const char *p, size_t n)
{
	s->data = realloc(s->data, s->data_len + n + 1);
	memcpy(s->data + s->data_len, p, n);
	s->data_len += n;
	s->data[s->data_len] = '\0';
}

static bool step_expect(struct server *s, const char *want)
{
	char line[4096];
	size_t n = strlen(want);
	bool prefix = n > 0 && want[n - 1] == '*';
	size_t t = strlen(s->transcript);

	if (!read_line(s, line, sizeof line)) {
		server_error(s, "expected \"%s\", got nothing", want);
		return false;
	}
	snprintf(s->transcript + t, sizeof s->transcript - t, "%s\n", line);
	if (prefix ? strncmp(line, want, n - 1) != 0 : strcmp(line, want) != 0) {
		server_error(s, "expected \"%s\", got \"%s\"", want, line);
		return false;
	}
	return true;
}

static bool step_read_data(struct server *s)
{
	char line[4096];

	free(s->data);
	s->data = NULL;
	s->data_len = 0;
	for (;;) {
		if (!read_line(s, line, sizeof line)) {
			server_error(s, "data ended early");
			return false;
		}
		data_add(s, line, strlen(line));
		data_add(s, "\r\n", 2);
		if (strcmp(line, ".") == 0)
			return true;
	}
}

static bool step_read_bytes(struct server *s, size_t n)
{
	free(s->data);
	s->data = NULL;
	s->data_len = 0;
	while (s->data_len < n) {
		size_t take;

		if (s->inlen == 0 && !conn_fill(s)) {
			server_error(s, "chunk ended after %zu of %zu octets", s->data_len, n);
			return false;
		}
		take = s->inlen < n - s->data_len ? s->inlen : n - s->data_len;
		data_add(s, s->in, take);
		in_consume(s, take);
	}
	return true;
}

static bool step_quiet(struct server *s)
{
	struct pollfd p = {.fd = s->fd, .events = POLLIN};

	if (s->inlen > 0 || poll(&p, 1, 150) != 0) {
		server_error(s, "client sent more without waiting for the reply");
		return false;
	}
	return true;
}

static bool step_tls(struct server *s)
{
	s->inlen = 0;
	s->ssl = SSL_new(s->tls);
	SSL_set_fd(s->ssl, s->fd);
	if (SSL_accept(s->ssl) != 1) {
		server_error(s, "TLS handshake failed");
		return false;
	}
	return true;
}

/* One octet a second; stops when the client has gone away. */
static bool step_slow(struct server *s, const char *text)
{
	for (const char *p = text; *p; p++) {
		struct pollfd pfd = {.fd = s->fd, .events = POLLIN};
		char ch;

		if (!conn_send(s, p, 1))
			return false;
		if (poll(&pfd, 1, 1000) > 0 && recv(s->fd, &ch, 1, MSG_PEEK) <= 0)
			return false;
	}
	return true;
}

static bool step_long_line(struct server *s, size_t n)
{
	char chunk[16384];

	memset(chunk, 'a', sizeof chunk);
	if (!conn_send(s, "220 ", 4))
		return false;
	while (n > 0) {
		size_t k = n < sizeof chunk ? n : sizeof chunk;

		if (!conn_send(s, chunk, k))
			return false; /* the client gave up, as it should */
		n -= k;
	}
	s->long_line_sent = true;
	return conn_send(s, "\r\n", 2);
}

static bool step_endless(struct server *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!conn_send(s, "250-endless\r\n", 13))
			return false;
	return true;
}

static void step_reset(struct server *s)
{
	struct linger l = {.l_onoff = 1, .l_linger = 0};

	setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
	close(s->fd);
	s->fd = -1;
}

/* Runs one step; false ends the script. */
static bool server_step(struct server *s, const struct step *st)
{
	switch (st->op) {
	case OP_SEND:
		return conn_send(s, st->s, strlen(st->s));
	case OP_EXPECT:
		return step_expect(s, st->s);
	case OP_READ_DATA:
		return step_read_data(s);
	case OP_READ_BYTES:
		return step_read_bytes(s, st->n);
	case OP_READ_SOME:
		if (s->inlen == 0 && !conn_fill(s))
			server_error(s, "nothing to read");
		s->inlen = 0;
		return true;
	case OP_QUIET:
		return step_quiet(s);
	case OP_TLS:
		return step_tls(s);
	case OP_SLOW:
		return step_slow(s, st->s);
	case OP_LONG_LINE:
		return step_long_line(s, st->n);
	case OP_ENDLESS:
		return step_endless(s, st->n);
	case OP_SLEEP:
		usleep((useconds_t)st->n * 1000);
		return true;
	case OP_CLOSE:
		close(s->fd);
		s->fd = -1;
		return false;
	case OP_RESET:
		step_reset(s);
		return false;
	case OP_END:
		break;
	}
	return false;
}

static void *server_main(void *arg)
{
	struct server *s = arg;
	struct pollfd p = {.fd = s->lfd, .events = POLLIN};
	struct timeval tv = {.tv_sec = 10};
	const struct step *st;

	if (poll(&p, 1, 10000) != 1) {
		server_error(s, "no connection");
		return NULL;
	}
	s->fd = accept(s->lfd, NULL, NULL);
	setsockopt(s->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	for (st = s->script; st->op != OP_END; st++)
		if (!server_step(s, st))
			break;
	if (st->op == OP_END && s->fd >= 0) {
		/* the client closes first: wait for it */
		s->inlen = 0;
		while (conn_fill(s))
			s->inlen = 0;
	}
	if (s->ssl)
		SSL_free(s->ssl);
	if (s->fd >= 0)
		close(s->fd);
	return NULL;
}

static int sni_record(SSL *ssl, int *alert, void *arg)
{
	struct server *s = arg;
	const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);

	snprintf(s->sni, sizeof s->sni, "%s", name ? name : "");
	return SSL_TLSEXT_ERR_OK;
}

/* A self-signed certificate for mx.test, made now, in memory. */
static SSL_CTX *server_tls_ctx(struct server *s)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *name = X509_get_subject_name(x);
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	assert_non_null(key);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, key);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"mx.test", -1,
	                           -1, 0);
	X509_set_issuer_name(x, name);
	assert_true(X509_sign(x, key, EVP_sha256()) > 0);
	assert_int_equal(SSL_CTX_use_certificate(ctx, x), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(ctx, key), 1);
	SSL_CTX_set_tlsext_servername_callback(ctx, sni_record);
	SSL_CTX_set_tlsext_servername_arg(ctx, s);
	X509_free(x);
	EVP_PKEY_free(key);
	return ctx;
}

/* A small receive buffer for the next server (0: the kernel's default), so
 * that a server that stops reading stalls the client soon. */
static int next_server_rcvbuf;

static void server_start(struct server *s, const struct step *script)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof a;
	int one = 1;

	memset(s, 0, sizeof *s);
	s->fd = -1;
	s->script = script;
	s->tls = server_tls_ctx(s);
	s->lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(s->lfd >= 0);
	setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (next_server_rcvbuf > 0)
		setsockopt(s->lfd, SOL_SOCKET, SO_RCVBUF, &next_server_rcvbuf,
		           sizeof next_server_rcvbuf);
	next_server_rcvbuf = 0;
	assert_int_equal(bind(s->lfd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(listen(s->lfd, 4), 0);
	assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&a, &len), 0);
	s->port = ntohs(a.sin_port);
	assert_int_equal(pthread_create(&s->thread, NULL, server_main, s), 0);
}

/* Joins the server; the script must have gone as written. */
static void server_finish(struct server *s)
{
	pthread_join(s->thread, NULL);
	close(s->lfd);
	SSL_CTX_free(s->tls);
	if (s->error[0])
		fail_msg("server: %s (received: %s)", s->error, s->transcript);
}

static void server_free(struct server *s)
{
	free(s->data);
}

/* ---- the client side ---------------------------------------------------- */

#define MAX_TXN  3
#define MAX_RCPT 8

struct run {
	struct event_base *base;
	struct smtp_client *c;
	const struct smtp_txn *txns[MAX_TXN];
	size_t ntxn, next, done;
	bool park; /* after the transactions, watch the idle connection */
	bool in_api;
	bool reentered; /* a callback ran from inside an API call */
	bool ready_called, ready_ok;
	struct smtp_client_error ready_err;
	struct smtp_server_info info;
	struct smtp_rcpt_result res[MAX_TXN][MAX_RCPT];
	struct smtp_client_error err[MAX_TXN];
	bool usable[MAX_TXN];
	bool idle_called;
};

static void on_idle(void *arg, struct smtp_client *c)
{
	struct run *r = arg;

	r->reentered |= r->in_api;
	r->idle_called = true;
	smtp_client_abort(c);
}

static void on_txn(void *arg, struct smtp_client *c, const struct smtp_rcpt_result *results,
                   const struct smtp_client_error *err);

static void run_next(struct run *r, struct smtp_client *c)
{
	r->in_api = true;
	if (r->next < r->ntxn)
		smtp_client_send(c, r->txns[r->next++], on_txn, r);
	else if (r->park)
		smtp_client_watch_idle(c, on_idle, r);
	else
		smtp_client_quit(c);
	r->in_api = false;
}

static void on_txn(void *arg, struct smtp_client *c, const struct smtp_rcpt_result *results,
                   const struct smtp_client_error *err)
{
	struct run *r = arg;
	size_t i = r->done++;

	r->reentered |= r->in_api;
	assert_true(i < MAX_TXN);
	for (size_t k = 0; k < r->txns[i]->nrcpt && k < MAX_RCPT; k++)
		r->res[i][k] = results[k];
	r->err[i] = *err;
	r->usable[i] = smtp_client_usable(c);
	if (r->usable[i])
		return run_next(r, c);
	smtp_client_abort(c);
}

static void on_ready(void *arg, struct smtp_client *c, bool ok, const struct smtp_client_error *err)
{
	struct run *r = arg;

	r->reentered |= r->in_api;
	r->ready_called = true;
	r->ready_ok = ok;
	r->info = *smtp_client_info(c);
	if (!ok) {
		r->ready_err = *err;
		return; /* the client frees itself */
	}
	run_next(r, c);
}

static struct smtp_client_config config(SSL_CTX *tls)
{
	struct smtp_client_config cfg = {
	    .ehlo_name = "client.test",
	    .server_name = "mx.test",
	    .tls_mode = tls ? SMTP_TLS_OPPORTUNISTIC : SMTP_TLS_SKIP,
	    .tls_ctx = tls,
	    .connect_timeout_ms = 5000,
	    .command_timeout_ms = 5000,
	    .data_timeout_ms = 5000,
	    .tls_timeout_ms = 5000,
	};
	return cfg;
}

/* Runs the client against the server until it has freed itself. */
static void run_client(struct run *r, const struct server *s, const struct smtp_client_config *cfg)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_port = htons(s->port),
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};

	r->base = event_base_new();
	r->in_api = true;
	r->c = smtp_client_connect(r->base, (struct sockaddr *)&a, sizeof a, cfg, on_ready, r);
	r->in_api = false;
	assert_non_null(r->c);
	event_base_dispatch(r->base);
	event_base_free(r->base);
	assert_false(r->reentered);
	assert_true(r->ready_called);
}

/* One scripted session: server, client, checks common to all. */
static void session(struct run *r, struct server *s, const struct step *script,
                    const struct smtp_client_config *cfg)
{
	server_start(s, script);
	run_client(r, s, cfg);
	server_finish(s);
}

static void plain_session(struct run *r, struct server *s, const struct step *script)
{
	struct smtp_client_config cfg = config(NULL);

	session(r, s, script, &cfg);
}

static const char *const two_rcpts[] = {"b@example.net", "c@example.net"};
static const char *const three_rcpts[] = {"b@example.net", "c@example.net", "d@example.net"};
static const char *const four_rcpts[] = {"b@example.net", "c@example.net", "d@example.net",
                                         "e@example.net"};
static const char *const one_rcpt[] = {"b@example.net"};
static const char simple_body[] = "Subject: hi\r\n\r\nhello\r\n";

/* The body of t, read from memory; the holder outlives each test's txns. */
static void set_body(struct smtp_txn *t, const char *p, size_t len)
{
	static struct smtp_body_memory holders[16];
	static size_t next;

	smtp_body_from_memory(&t->body, &holders[next++ % 16], p, len);
}

static struct smtp_txn txn_of(const char *const *rcpts, size_t n)
{
	struct smtp_txn t = {
	    .sender = "a@example.org",
	    .rcpts = rcpts,
	    .nrcpt = n,
	};
	set_body(&t, simple_body, sizeof simple_body - 1);
	return t;
}

#define GREETING      SEND("220 mx.test ESMTP fake\r\n")
#define EHLO          EXPECT("EHLO client.test")
#define QUIT          EXPECT("QUIT"), SEND("221 2.0.0 bye\r\n")
#define CAPS_PIPE_ENH "250-mx.test\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES\r\n"
#define WIRE_BODY     "Subject: hi\r\n\r\nhello\r\n.\r\n"

/* ---- session setup -------------------------------------------------------- */

static void test_helo_fallback_sends_one_command_at_a_time(void **state)
{
	const struct step script[] = {
	    GREETING,
	    EHLO,
	    SEND("502 5.5.2 what is EHLO\r\n"),
	    EXPECT("HELO client.test"),
	    SEND("250 mx.test\r\n"),
	    EXPECT("MAIL FROM:<a@example.org>"),
	    QUIET,
	    SEND("250 ok\r\n"),
	    EXPECT("RCPT TO:<b@example.net>"),
	    QUIET,
	    SEND("250 ok\r\n"),
	    EXPECT("DATA"),
	    SEND("354 go\r\n"),
	    READ_DATA,
	    SEND("250 queued\r\n"),
	    QUIT,
	    END,
	};
	struct smtp_txn t = txn_of(one_rcpt, 1);
	struct run r = {.txns = {&t}, .ntxn = 1};
	struct server s;

	plain_session(&r, &s, script);
	assert_true(r.ready_ok);
	assert_false(r.info.esmtp);
	assert_string_equal(r.info.greeting_name, "mx.test");
	assert_int_equal(r.done, 1);
	assert_int_equal(r.err[0].kind, SMTP_ERR_NONE);
	assert_int_equal(r.res[0][0].status, SMTP_RCPT_OK);
	assert_int_equal(r.res[0][0].error.code, 250);
	assert_string_equal(s.data, WIRE_BODY);
	server_free(&s);
}

static void test_greeting_554_is_permanent_and_quits(void **state)
{
	const struct step script[] = {
	    SEND("554 5.7.1 not you\r\n"),
	    QUIT,
	    END,
	};
	struct run r = {0};
	struct server s;

	plain_session(&r, &s, script);
	assert_false(r.ready_ok);
	assert_int_equal(r.ready_err.kind, SMTP_ERR_STATUS);
	assert_true(r.ready_err.permanent);
	assert_int_equal(r.ready_err.code, 554);
	assert_string_equal(r.ready_err.command, "greeting");
	server_free(&s);
}

static void test_endless_multiline_reply_is_protocol_error(void **state)
{
	const struct step script[] = {
	    GREETING,
	    EHLO,
	    {OP_ENDLESS, NULL, 100000},
	    END,
	};
	struct run r = {0};
	struct server s;

	plain_session(&r, &s, script);
	assert_false(r.ready_ok);
	assert_int_equal(r.ready_err.kind, SMTP_ERR_PROTOCOL);
	assert_false(r.ready_err.permanent);
	assert_string_equal(r.ready_err.command, "ehlo");
	server_free(&s);
}

/* The client gives up on a line as soon as it is too long, not at its end:
 * a 64 MiB line cannot all be sent (socket buffers hold a few MiB). */
static void test_endless_reply_line_is_protocol_error(void **state)
{
	const struct step script[] = {
	    {OP_LONG_LINE, NULL, 64 * 1024 * 1024},
	    END,
	};
	struct run r = {0};
	struct server s;

	plain_session(&r, &s, script);
	assert_false(r.ready_ok);
	assert_int_equal(r.ready_err.kind, SMTP_ERR_PROTOCOL);
	assert_string_equal(r.ready_err.command, "greeting");
	assert_false(s.long_line_sent);
	server_free(&s);
}

/* A 1 MB line that does end is refused too. */
static void test_megabyte_reply_line_is_protocol_error(void **state)
{
	const struct step script[] = {
	    GREETING,
	    EHLO,
	    SEND("250 mx.test\r\n"),
	    EXPECT("MAIL FROM:<a@example.org>"),
	    {OP_LONG_LINE, NULL, 1024 * 1024},
	    END,
	};
	struct smtp_txn t = txn_of(one_rcpt, 1);
	struct run r = {.txns = {&t}, .ntxn = 1};
	struct server s;

	plain_session(&r, &s, script);
	assert_true(r.ready_ok);
	assert_int_equal(r.err[0].kind, SMTP_ERR_PROTOCOL);
	assert_string_equal(r.err[0].command, "mail");
	assert_int_equal(r.res[0][0].status, SMTP_RCPT_NOT_TRIED);
	assert_false(r.usable[0]);
	server_free(&s);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The deadline is per reply: a server trickling a byte a second is not
 * making progress as far as the client is concerned. */
static void test_slow_server_times_out(void **state)
{
	const struct step script[] = {
	    {OP_SLOW, "220 slow.test ESMTP take your time\r\n", 0},
	    END,
	};
	struct smtp_client_config cfg = config(NULL);
	struct run r = {0};
	struct server s;
	double start = now_s(), took;

	cfg.command_timeout_ms = 2000;
	session(&r, &s, script, &cfg);
	took = now_s() - start;
	assert_false(r.ready_ok);
	assert_int_equal(r.ready_err.kind, SMTP_ERR_TIMEOUT);
	assert_false(r.ready_err.permanent);
	assert_string_equal(r.ready_err.command, "greeting");
	assert_true(took >= 1.9 && took < 5.0);
	server_free(&s);
}

/* ---- transactions --------------------------------------------------------- */

static void test_pipelined_rcpts_get_their_own_results(void **state)
{
	static char mail[128];
	const struct step script[] = {
	    GREETING,
	    EHLO,
	    SEND(
	        "250-mx.test\r\n250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n250 SIZE 1000000\r\n"),
	    EXPECT(mail),
	    EXPECT("RCPT TO:<b@example.net>"),
	    EXPECT("RCPT TO:<c@example.net>"),
	    EXPECT("RCPT TO:<d@example.net>"),
	    EXPECT("DATA"),
	    SEND("250 2.1.0 ok\r\n250 2.1.5 ok\r\n550 5.1.1 no such user\r\n250 2.1.5 ok\r\n354 "
	         "go\r\n"),
	    READ_DATA,
	    SEND("250 2.0.0 queued as 1\r\n"),
	    QUIT,
	    END,
	};
	struct smtp_txn t = txn_of(three_rcpts, 3);
	struct run r = {.txns = {&t}, .ntxn = 1};
	struct server s;
	char buf[256];

	snprintf(mail, sizeof mail, "MAIL FROM:<a@example.org> SIZE=%zu", t.body.len);
	plain_session(&r, &s, script);
	assert_true(r.info.pipelining && r.info.enhancedstatuscodes);
	assert_int_equal(r.info.size_max, 1000000);
	assert_int_equal(r.err[0].kind, SMTP_ERR_NONE);
	assert_int_equal(r.res[0][0].status, SMTP_RCPT_OK);
	assert_string_equal(r.res[0][0].error.enhanced, "2.0.0");
	assert_string_equal(r.res[0][0].error.text, "queued as 1");
	assert_int_equal(r.res[0][1].status, SMTP_RCPT_FAILED);
	assert_int_equal(r.res[0][1].error.kind, SMTP_ERR_STATUS);
	assert_true(r.res[0][1].error.permanent);
	assert_int_equal(r.res[0][1].error.code, 550);
	smtp_client_error_format(&r.res[0][1].error, buf, sizeof buf);
	assert_string_equal(buf, "rcpt: 550 5.1.1 no such user");
	assert_int_equal(r.res[0][2].status, SMTP_RCPT_OK);
	assert_true(r.usable[0]);
	server_free(&s);
}

static void test_452_leaves_the_rest_not_tried(void **state)
{
	const struct step script[] = {
	    GREETING,
	    EHLO,
	    SEND(CAPS_PIPE_ENH),
	    EXPECT("MAIL FROM:<a@example.org>"),
	    EXPECT("RCPT TO:<b@example.net>"),
	    EXPECT("RCPT TO:<c@example.net>"),
	    EXPECT("RCPT TO:<d@example.net>"),
	    EXPECT("RCPT TO:<e@example.net>"),
	    EXPECT("DATA"),
	    SEND("250 2.1.0 ok\r\n250 2.1.5 ok\r\n250 2.1.5 ok\r\n452 4.5.3 too many "
	         "recipients\r\n452 4.5.3 too many recipients\r\n354 go\r\n"),
	    READ_DATA,
	    SEND("250 2.0.0 queued\r\n"),
	    QUIT,
	    END,
	};
	struct smtp_txn t = txn_of(four_rcpts, 4);
	struct run r = {.txns = {&t}, .ntxn = 1};
	struct server s;

	plain_session(&r, &s, script);
	assert_int_equal(r.err[0].kind, SMTP_ERR_NONE);
	assert_int_equal(r.res[0][0].status, SMTP_RCPT_OK);
	assert_int_equal(r.res[0][1].status, SMTP_RCPT_OK);
	for (int i = 2; i < 4; i++) {
		assert_int_equal(r.res[0][i].status, SMTP_RCPT_NOT_TRIED);
		assert_int_equal(r.res[0][i].error.code, 452);
		assert_false(r.res[0][i].error.permanent);
	}
	server_free(&s);
}

static void test_452_without_pipelining_sends_no_more_rcpts(void **state)
{
	const struct step script[] = {
	    GREETING,
	    EHLO,
	    SEND("250-mx.test\r\n250 8BITMIME\r\n"),
	    EXPECT("MAIL FROM:<a@example.org>"),
	    SEND("250 ok\r\n"),
	    EXPECT("RCPT TO:<b@example.net>"),
	    SEND("250 ok\r\n"),
	    EXPECT("RCPT TO:<c@example.net>"),
	    SEND("452 too many recipients\r\n"),
	    EXPECT("DATA"),
	    SEND("354 go\r\n"),
	    READ_DATA,
	    SEND("250 queued\r\n"),
	    QUIT,
	    END,
	};
	struct smtp_txn t = txn_of(three_rcpts, 3);
	struct run r = {.txns = {&t}, .ntxn = 1};
	struct server s;

	plain_session(&r, &s, script);
	assert_int_equal(r.res[0][0].status, SMTP_RCPT_OK);
	assert_int_equal(r.res[0][1].status, SMTP_RCPT_NOT_TRIED);
	assert_int_equal(r.res[0][2].status, SMTP_RCPT_NOT_TRIED);
	server_free(&s);
}

static void test_mail_refused_fails_every_rcpt_permanently(void **state)
{
	const struct step script[] = {
	    GREETING,
	    EHLO,
	    SEND(CAPS_PIPE_ENH),
	    EXPECT("MAIL FROM:<a@example.org>"),
	    EXPECT("RCPT TO:<b@example.net>"),
	    EXPECT("RCPT TO:<c@example.net>"),
	    EXPECT("DATA"),
	    SEND("550 5.7.1 sender refused\r\n503 5.5.1 MAIL first\r\n503 5.5.1 MAIL "
	         "first\r\n503 5.5.1 no valid recipients\r\n"),
	    QUIT,
	    END,
	};
	struct smtp_txn t = txn_of(two_rcpts, 2);
	struct run r = {.txns = {&t}, .ntxn = 1};
	struct server s;

	plain_session(&r, &s, script);
	assert_int_equal(r.err[0].kind, SMTP_ERR_STATUS);
	assert_int_equal(r.err[0].code, 550);
	assert_string_equal(r.err[0].command, "mail");
	for (int i = 0; i < 2; i++) {
		assert_int_equal(r.res[0][i].status, SMTP_RCPT_FAILED);
		assert_true(r.res[0][i].error.permanent);
		assert_int_equal(r.res[0][i].error.code, 550);
		assert_string_equal(r.res[0][i].error.enhanced, "5.7.1");
	}
	server_free(&s);
}

/* The 354 nobody wants is ended with a lone dot, so that the session stays
 * in step (RFC 2920 §3.1). */
static void test_no_rcpt_accepted_ends_pipelined_data_with_lone_dot(void **state)
{
	const struct step script[] = {
	    GREETING,
	    EHLO,
	    SEND(CAPS_PIPE_ENH),
	    EXPECT("MAIL FROM:<a@example.org>"),
	    EXPECT("RCPT TO:<b@example.net>"),
	    EXPECT("RCPT TO:<c@example.net>"),
	    EXPECT("DATA"),
	    SEND("250 2.1.0 ok\r\n550 5.1.1 no\r\n550 5.1.1 no\r\n354 go\r\n"),
	    EXPECT("."),
	    SEND("554 5.5.1 no valid recipients\r\n"),
	    QUIT,
	    END,
	};
	struct smtp_txn t = txn_of(two_rcpts, 2);
	struct run r = {.txns = {&t}, .ntxn = 1};
	struct server s;

	plain_session(&r, &s, script);
	assert_int_equal(r.err[0].kind, SMTP_ERR_NONE);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(r.res[0][i].status, SMTP_RCPT_FAILED);
		assert_int_equal(r.res[0][i].error.code, 550);
	}
	assert_true(r.usable[0]);
	server_free(&s);
}

static void test_final_451_fails_accepted_rcpts_temporarily(void **state)
{
	const struct step script[] = {
	    GREETING,
	    EHLO,
	    SEND(CAPS_PIPE_ENH),
	    EXPECT("MAIL FROM:<a@example.org>"),
	    EXPECT("RCPT TO:<b@example.net>"),
	    EXPECT("RCPT TO:<c@example.net>"),
	    EXPECT("DATA"),
	    SEND("250 2.1.0 ok\r\n250 2.1.5 ok\r\n250 2.1.5 ok\r\n354 go\r\n"),
	    READ_DATA,
	    SEND("451 4.3.0 try later\r\n"),
	    QUIT,
	    END,
	};
	struct smtp_txn t = txn_of(two_rcpts, 2);
	struct run r = {.txns = {&t}, .ntxn = 1};
	struct server s;

	plain_session(&r, &s, script);
	assert_int_equal(r.err[0].kind, SMTP_ERR_STATUS);
	assert_string_equal(r.err[0].command, "data");
	for (int i = 0; i < 2; i++) {
		assert_int_equal(r.res[0][i].status, SMTP_RCPT_FAILED);
		assert_false(r.res[0][i].error.permanent);
		assert_int_equal(r.res[0][i].error.code, 451);
		assert_string_equal(r.res[0][i].error.enhanced, "4.3.0");
	}
	server_free(&s);
}

static const char tricky_body[] = ".starts with a dot\r\n..two\r\n8-bit: \xc3\xa9t\xc3\xa9\r\n.\r\n"
                                  "last\r\n";

static void test_bdat_sends_the_body_exactly(void **state)
{
	static char bdat[64];
	const struct step script[] = {
	    GREETING,
	    EHLO,
	    SEND("250-mx.test\r\n250-PIPELINING\r\n250-CHUNKING\r\n250 8BITMIME\r\n"),
	    EXPECT("MAIL FROM:<a@example.org> BODY=8BITMIME"),
	    EXPECT("RCPT TO:<b@example.net>"),
	    SEND("250 ok\r\n250 ok\r\n"),
	    EXPECT(bdat),
	    READ_BYTES(sizeof tricky_body - 1),
	    SEND("250 queued\r\n"),
	    QUIT,
	    END,
	};
	struct smtp_txn t = txn_of(one_rcpt, 1);
	struct run r = {.txns = {&t}, .ntxn = 1};
	struct server s;

	set_body(&t, tricky_body, sizeof tricky_body - 1);
	t.eightbit = true;
	snprintf(bdat, sizeof bdat, "BDAT %zu LAST", t.body.len);
	plain_session(&r, &s, script);
	assert_int_equal(r.res[0][0].status, SMTP_RCPT_OK);
	assert_string_equal(r.res[0][0].error.command, "bdat");
	assert_int_equal(s.data_len, t.body.len);
	assert_memory_equal(s.data, tricky_body, t.body.len);
	server_free(&s);
}

static void test_data_body_is_dot_stuffed(void **state)
{
	const struct step script[] = {
	    GREETING,
	    EHLO,
	    SEND("250-mx.test\r\n250 8BITMIME\r\n"),
	    EXPECT("MAIL FROM:<a@example.org> BODY=8BITMIME"),
	    SEND("250 ok\r\n"),
	    EXPECT("RCPT TO:<b@example.net>"),
	    SEND("250 ok\r\n"),
	    EXPECT("DATA"),
	    SEND("354 go\r\n"),
	    READ_DATA,
	    SEND("250 queued\r\n"),
	    QUIT,
	    END,
	};
	struct smtp_txn t = txn_of(one_rcpt, 1);
	struct run r = {.txns = {&t}, .ntxn = 1};
	struct server s;

	set_body(&t, tricky_body, sizeof tricky_body - 1);
	t.eightbit = true;
	plain_session(&r, &s, script);
	assert_int_equal(r.res[0][0].status, SMTP_RCPT_OK);
	assert_string_equal(s.data, "..starts with a dot\r\n...two\r\n8-bit: \xc3\xa9t\xc3\xa9\r\n"
	                            "..\r\nlast\r\n.\r\n");
	server_free(&s);
}

/* A local refusal: no MAIL goes out (the server's next line is QUIT), the
 * callback still comes later, never from inside smtp_client_send. */
static void local_refusal(struct smtp_txn *t, const char *caps, struct run *r)
{
	const struct step script[] = {
	    GREETING, EHLO, SEND(caps), QUIT, END,
	};
	struct server s;

	r->txns[0] = t;
	r->ntxn = 1;
	plain_session(r, &s, script);
	assert_int_equal(r->done, 1);
	assert_int_equal(r->res[0][0].status, SMTP_RCPT_FAILED);
	assert_int_equal(r->res[0][0].error.kind, r->err[0].kind);
	assert_true(r->usable[0]);
	server_free(&s);
}

static void test_size_exceeded_fails_permanently_without_sending(void **state)
{
	static char big[200];
	struct smtp_txn t = txn_of(one_rcpt, 1);
	struct run r = {0};

	memset(big, 'x', sizeof big - 2);
	memcpy(big + sizeof big - 2, "\r\n", 2);
	set_body(&t, big, sizeof big);
	local_refusal(&t, "250-mx.test\r\n250-PIPELINING\r\n250 SIZE 100\r\n", &r);
	assert_int_equal(r.err[0].kind, SMTP_ERR_SIZE);
	assert_true(r.err[0].permanent);
	assert_string_equal(r.err[0].enhanced, "5.3.4");
}

static void test_size_zero_means_no_limit(void **state)
{
	const struct step script[] = {
	    GREETING,
	    EHLO,
	    SEND("250-mx.test\r\n250 SIZE 0\r\n"),
	    EXPECT("MAIL FROM:<a@example.org> SIZE=*"),
	    SEND("250 ok\r\n"),
	    EXPECT("RCPT TO:<b@example.net>"),
	    SEND("251 ok, will forward\r\n"),
	    EXPECT("DATA"),
	    SEND("354 go\r\n"),
	    READ_DATA,
	    SEND("250 queued\r\n"),
	    QUIT,
	    END,
	};
	struct smtp_txn t = txn_of(one_rcpt, 1);
	struct run r = {.txns = {&t}, .ntxn = 1};
	struct server s;

	plain_session(&r, &s, script);
	assert_int_equal(r.info.size_max, 0);
	assert_int_equal(r.res[0][0].status, SMTP_RCPT_OK); /* 251 is success too */
	server_free(&s);
}

static void test_8bit_without_8bitmime_fails_without_mail(void **state)
{
	struct smtp_txn t = txn_of(one_rcpt, 1);
	struct run r = {0};

	t.eightbit = true;
	local_refusal(&t, "250-mx.test\r\n250 PIPELINING\r\n", &r);
	assert_int_equal(r.err[0].kind, SMTP_ERR_8BITMIME);
	assert_false(r.err[0].permanent);
	assert_string_equal(r.err[0].enhanced, "5.6.3");
}

static void test_smtputf8_without_support_fails_without_mail(void **state)
{
	struct smtp_txn t = txn_of(one_rcpt, 1);
	struct run r = {0};

	t.smtputf8 = true;
	local_refusal(&t, "250-mx.test\r\n250 8BITMIME\r\n", &r);
	assert_int_equal(r.err[0].kind, SMTP_ERR_SMTPUTF8);
	assert_false(r.err[0].permanent);
	assert_string_equal(r.err[0].enhanced, "5.6.7");
}

static void test_requiretls_without_tls_fails_without_mail(void **state)
{
	struct smtp_txn t = txn_of(one_rcpt, 1);
	struct run r = {0};

	t.requiretls = true;
	local_refusal(&t, "250-mx.test\r\n250 REQUIRETLS\r\n", &r);
	assert_int_equal(r.err[0].kind, SMTP_ERR_REQUIRETLS);
	assert_false(r.err[0].permanent);
	assert_string_equal(r.err[0].enhanced, "4.7.30"); /* temporary: another host may offer it */
}

static void test_reset_mid_data_is_io_error(void **state)
{
	const struct step script[] = {
	    GREETING,
	    EHLO,
	    SEND("250 mx.test\r\n"),
	    EXPECT("MAIL FROM:<a@example.org>"),
	    SEND("250 ok\r\n"),
	    EXPECT("RCPT TO:<b@example.net>"),
	    SEND("250 ok\r\n"),
	    EXPECT("DATA"),
	    SEND("354 go\r\n"),
	    READ_SOME,
	    {OP_RESET, NULL, 0},
	    END,
	};
	size_t len = 512 * 1024;
	char *body = malloc(len);
	struct smtp_txn t = txn_of(one_rcpt, 1);
	struct run r = {.txns = {&t}, .ntxn = 1};
	struct server s;

	for (size_t i = 0; i < len; i += 64) {
		memset(body + i, 'y', 62);
		memcpy(body + i + 62, "\r\n", 2);
	}
	set_body(&t, body, len);
	plain_session(&r, &s, script);
	assert_int_equal(r.err[0].kind, SMTP_ERR_IO);
	assert_false(r.err[0].permanent);
	assert_string_equal(r.err[0].command, "data");
	assert_int_equal(r.res[0][0].status, SMTP_RCPT_FAILED);
	assert_int_equal(r.res[0][0].error.kind, SMTP_ERR_IO);
	assert_false(r.usable[0]);
	free(body);
	server_free(&s);
}

/* data_timeout, not command_timeout, bounds the wait after the data. */
static void test_final_reply_gets_data_timeout(void **state)
{
	const struct step script[] = {
	    GREETING,
	    EHLO,
	    SEND("250 mx.test\r\n"),
	    EXPECT("MAIL FROM:<a@example.org>"),
	    SEND("250 ok\r\n"),
	    EXPECT("RCPT TO:<b@example.net>"),
	    SEND("250 ok\r\n"),
	    EXPECT("DATA"),
	    SEND("354 go\r\n"),
	    READ_DATA,
	    {OP_SLEEP, NULL, 1500},
	    SEND("250 queued at last\r\n"),
	    QUIT,
	    END,
	};
	struct smtp_client_config cfg = config(NULL);
	struct smtp_txn t = txn_of(one_rcpt, 1);
	struct run r = {.txns = {&t}, .ntxn = 1};
	struct server s;

	cfg.command_timeout_ms = 700;
	cfg.data_timeout_ms = 4000;
	session(&r, &s, script, &cfg);
	assert_int_equal(r.err[0].kind, SMTP_ERR_NONE);
	assert_int_equal(r.res[0][0].status, SMTP_RCPT_OK);
	server_free(&s);
}

/* A server that stops reading: the write stalls and command_timeout ends
 * it, long before data_timeout would. */
static void test_write_stall_times_out(void **state)
{
	const struct step script[] = {
	    GREETING,
	    EHLO,
	    SEND("250 mx.test\r\n"),
	    EXPECT("MAIL FROM:<a@example.org>"),
	    SEND("250 ok\r\n"),
	    EXPECT("RCPT TO:<b@example.net>"),
	    SEND("250 ok\r\n"),
	    EXPECT("DATA"),
	    SEND("354 go\r\n"),
	    {OP_SLEEP, NULL, 3000},
	    END,
	};
	struct smtp_client_config cfg = config(NULL);
	size_t len = 16 * 1024 * 1024;
	char *body = malloc(len);
	struct smtp_txn t = txn_of(one_rcpt, 1);
	struct run r = {.txns = {&t}, .ntxn = 1};
	struct server s;
	double start = now_s(), took;

	for (size_t i = 0; i < len; i += 64) {
		memset(body + i, 'z', 62);
		memcpy(body + i + 62, "\r\n", 2);
	}
	set_body(&t, body, len);
	cfg.command_timeout_ms = 1000;
	cfg.data_timeout_ms = 30000;
	next_server_rcvbuf = 65536;
	session(&r, &s, script, &cfg);
	took = now_s() - start;
	assert_int_equal(r.err[0].kind, SMTP_ERR_TIMEOUT);
	assert_string_equal(r.err[0].command, "data");
	assert_int_equal(r.res[0][0].status, SMTP_RCPT_FAILED);
	assert_false(r.usable[0]);
	assert_true(took < 10.0);
	free(body);
	server_free(&s);
}

/* A server that closes after its RCPT reply is taken at its word
 * (docs/delivery.md, "The transaction"). */
static void test_close_after_rcpt_reply_uses_that_reply(void **state)
{
	const struct step script[] = {
	    GREETING,
	    EHLO,
	    SEND(CAPS_PIPE_ENH),
	    EXPECT("MAIL FROM:<a@example.org>"),
	    EXPECT("RCPT TO:<b@example.net>"),
	    EXPECT("DATA"),
	    SEND("250 2.1.0 ok\r\n550 5.1.1 no such user\r\n"),
	    {OP_CLOSE, NULL, 0},
	    END,
	};
	struct smtp_txn t = txn_of(one_rcpt, 1);
	struct run r = {.txns = {&t}, .ntxn = 1};
	struct server s;

	plain_session(&r, &s, script);
	assert_int_equal(r.err[0].kind, SMTP_ERR_NONE);
	assert_int_equal(r.res[0][0].status, SMTP_RCPT_FAILED);
	assert_true(r.res[0][0].error.permanent);
	assert_int_equal(r.res[0][0].error.code, 550);
	server_free(&s);
}

static void test_rset_only_after_a_failed_transaction(void **state)
{
	const struct step script[] = {
	    GREETING,
	    EHLO,
	    SEND("250-mx.test\r\n250 ENHANCEDSTATUSCODES\r\n"),
	    /* 1: refused at DATA, the server keeps the transaction */
	    EXPECT("MAIL FROM:<a@example.org>"),
	    SEND("250 2.1.0 ok\r\n"),
	    EXPECT("RCPT TO:<b@example.net>"),
	    SEND("250 2.1.5 ok\r\n"),
	    EXPECT("DATA"),
	    SEND("554 5.3.0 not today\r\n"),
	    /* 2: RSET first */
	    EXPECT("RSET"),
	    SEND("250 2.0.0 ok\r\n"),
	    EXPECT("MAIL FROM:<a@example.org>"),
	    SEND("250 2.1.0 ok\r\n"),
	    EXPECT("RCPT TO:<b@example.net>"),
	    SEND("250 2.1.5 ok\r\n"),
	    EXPECT("DATA"),
	    SEND("354 go\r\n"),
	    READ_DATA,
	    SEND("250 2.0.0 queued\r\n"),
	    /* 3: after a delivered message, no RSET */
	    EXPECT("MAIL FROM:<a@example.org>"),
	    SEND("250 2.1.0 ok\r\n"),
	    EXPECT("RCPT TO:<b@example.net>"),
	    SEND("250 2.1.5 ok\r\n"),
	    EXPECT("DATA"),
	    SEND("354 go\r\n"),
	    READ_DATA,
	    SEND("250 2.0.0 queued\r\n"),
	    QUIT,
	    END,
	};
	struct smtp_txn t = txn_of(one_rcpt, 1);
	struct run r = {.txns = {&t, &t, &t}, .ntxn = 3};
	struct server s;

	plain_session(&r, &s, script);
	assert_int_equal(r.done, 3);
	assert_int_equal(r.err[0].kind, SMTP_ERR_STATUS);
	assert_string_equal(r.err[0].command, "data");
	assert_int_equal(r.res[0][0].status, SMTP_RCPT_FAILED);
	assert_true(r.res[0][0].error.permanent);
	assert_int_equal(r.res[1][0].status, SMTP_RCPT_OK);
	assert_int_equal(r.res[2][0].status, SMTP_RCPT_OK);
	server_free(&s);
}

static void test_server_leaving_idle_connection_calls_watcher(void **state)
{
	const struct step script[] = {
	    GREETING,
	    EHLO,
	    SEND("250 mx.test\r\n"),
	    QUIET,
	    SEND("421 4.4.2 idle too long\r\n"),
	    {OP_CLOSE, NULL, 0},
	    END,
	};
	struct run r = {.park = true};
	struct server s;

	plain_session(&r, &s, script);
	assert_true(r.ready_ok);
	assert_true(r.idle_called);
	server_free(&s);
}

/* ---- STARTTLS ----------------------------------------------------------- */

static SSL_CTX *client_tls_ctx(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	return ctx;
}

static void test_starttls_forgets_old_caps_and_records_tls(void **state)
{
	const struct step script[] = {
	    GREETING,
	    EHLO,
	    SEND("250-mx.test\r\n250-STARTTLS\r\n250-SIZE 10\r\n250 8BITMIME\r\n"),
	    EXPECT("STARTTLS"),
	    SEND("220 2.0.0 go ahead\r\n"),
	    TLS,
	    EHLO,
	    SEND(CAPS_PIPE_ENH),
	    EXPECT("MAIL FROM:<a@example.org>"),
	    EXPECT("RCPT TO:<b@example.net>"),
	    EXPECT("DATA"),
	    SEND("250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go\r\n"),
	    READ_DATA,
	    SEND("250 2.0.0 queued\r\n"),
	    QUIT,
	    END,
	};
	SSL_CTX *tls = client_tls_ctx();
	struct smtp_client_config cfg = config(tls);
	struct smtp_txn t = txn_of(one_rcpt, 1); /* more than SIZE 10 */
	struct run r = {.txns = {&t}, .ntxn = 1};
	struct server s;

	session(&r, &s, script, &cfg);
	assert_true(r.ready_ok);
	assert_true(r.info.tls);
	assert_true(strncmp(r.info.tls_version, "TLSv1.", 6) == 0);
	assert_true(r.info.tls_cipher[0] != '\0');
	assert_int_equal(r.info.size_max, 0);
	assert_false(r.info.eightbitmime);
	assert_false(r.info.starttls);
	assert_true(r.info.pipelining);
	assert_string_equal(s.sni, "mx.test");
	assert_int_equal(r.res[0][0].status, SMTP_RCPT_OK);
	assert_string_equal(s.data, WIRE_BODY);
	SSL_CTX_free(tls);
	server_free(&s);
}

static void test_garbage_after_starttls_220_is_tls_error(void **state)
{
	const struct step script[] = {
	    GREETING,
	    EHLO,
	    SEND("250-mx.test\r\n250 STARTTLS\r\n"),
	    EXPECT("STARTTLS"),
	    SEND("220 go ahead\r\n250 injected reply\r\n"),
	    READ_SOME,
	    SEND("this is not TLS at all, just text\r\n"),
	    END,
	};
	SSL_CTX *tls = client_tls_ctx();
	struct smtp_client_config cfg = config(tls);
	struct run r = {0};
	struct server s;

	session(&r, &s, script, &cfg);
	assert_false(r.ready_ok);
	assert_int_equal(r.ready_err.kind, SMTP_ERR_TLS);
	assert_false(r.ready_err.permanent);
	assert_string_equal(r.ready_err.command, "tls");
	SSL_CTX_free(tls);
	server_free(&s);
}

static void test_starttls_refused_is_tls_error(void **state)
{
	const struct step script[] = {
	    GREETING,
	    EHLO,
	    SEND("250-mx.test\r\n250 STARTTLS\r\n"),
	    EXPECT("STARTTLS"),
	    SEND("454 4.7.0 TLS not available\r\n"),
	    QUIT,
	    END,
	};
	SSL_CTX *tls = client_tls_ctx();
	struct smtp_client_config cfg = config(tls);
	struct run r = {0};
	struct server s;

	session(&r, &s, script, &cfg);
	assert_false(r.ready_ok);
	assert_int_equal(r.ready_err.kind, SMTP_ERR_TLS);
	assert_int_equal(r.ready_err.code, 454);
	assert_false(r.ready_err.permanent);
	SSL_CTX_free(tls);
	server_free(&s);
}

/* ---- formatting ------------------------------------------------------------ */

static void test_error_format(void **state)
{
	struct smtp_client_error e = {.kind = SMTP_ERR_STATUS, .command = "mail", .code = 550};
	char buf[256];

	snprintf(e.enhanced, sizeof e.enhanced, "5.7.1");
	snprintf(e.text, sizeof e.text, "relaying denied");
	smtp_client_error_format(&e, buf, sizeof buf);
	assert_string_equal(buf, "mail: 550 5.7.1 relaying denied");
	e.enhanced[0] = '\0';
	smtp_client_error_format(&e, buf, sizeof buf);
	assert_string_equal(buf, "mail: 550 relaying denied");
	e.code = 0;
	e.kind = SMTP_ERR_IO;
	snprintf(e.text, sizeof e.text, "connection closed by the server");
	smtp_client_error_format(&e, buf, sizeof buf);
	assert_string_equal(buf, "mail: connection closed by the server");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_helo_fallback_sends_one_command_at_a_time),
	    cmocka_unit_test(test_greeting_554_is_permanent_and_quits),
	    cmocka_unit_test(test_endless_multiline_reply_is_protocol_error),
	    cmocka_unit_test(test_endless_reply_line_is_protocol_error),
	    cmocka_unit_test(test_megabyte_reply_line_is_protocol_error),
	    cmocka_unit_test(test_slow_server_times_out),
	    cmocka_unit_test(test_pipelined_rcpts_get_their_own_results),
	    cmocka_unit_test(test_452_leaves_the_rest_not_tried),
	    cmocka_unit_test(test_452_without_pipelining_sends_no_more_rcpts),
	    cmocka_unit_test(test_mail_refused_fails_every_rcpt_permanently),
	    cmocka_unit_test(test_no_rcpt_accepted_ends_pipelined_data_with_lone_dot),
	    cmocka_unit_test(test_final_451_fails_accepted_rcpts_temporarily),
	    cmocka_unit_test(test_bdat_sends_the_body_exactly),
	    cmocka_unit_test(test_data_body_is_dot_stuffed),
	    cmocka_unit_test(test_size_exceeded_fails_permanently_without_sending),
	    cmocka_unit_test(test_size_zero_means_no_limit),
	    cmocka_unit_test(test_8bit_without_8bitmime_fails_without_mail),
	    cmocka_unit_test(test_smtputf8_without_support_fails_without_mail),
	    cmocka_unit_test(test_requiretls_without_tls_fails_without_mail),
	    cmocka_unit_test(test_reset_mid_data_is_io_error),
	    cmocka_unit_test(test_final_reply_gets_data_timeout),
	    cmocka_unit_test(test_write_stall_times_out),
	    cmocka_unit_test(test_close_after_rcpt_reply_uses_that_reply),
	    cmocka_unit_test(test_rset_only_after_a_failed_transaction),
	    cmocka_unit_test(test_server_leaving_idle_connection_calls_watcher),
	    cmocka_unit_test(test_starttls_forgets_old_caps_and_records_tls),
	    cmocka_unit_test(test_garbage_after_starttls_220_is_tls_error),
	    cmocka_unit_test(test_starttls_refused_is_tls_error),
	    cmocka_unit_test(test_error_format),
	};

	/* a server that resets the connection must not kill the test */
	signal(SIGPIPE, SIG_IGN);
	if (getenv("CLIENT_TEST_DEBUG")) /* the dialogue, one line per command and reply */
		log_set_level(LOG_DEBUG);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
