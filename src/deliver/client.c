/* client.c - the SMTP client: one connection to one MX host, as a state machine.
 *
 * client_enter() moves to a state and sends what that state needs;
 * client_on_reply() has one case per state and decides where to go next.
 * The dialogue reads top to bottom: CONNECTING, GREETING, EHLO (HELO),
 * STARTTLS, TLS_HANDSHAKE, EHLO again, READY; then per transaction RSET
 * (when the previous one left state behind), MAIL, RCPT..., DATA and the
 * body (DATA_END) or BDAT, or a lone dot (DOT) to end a DATA phase nobody
 * wants; QUIT at the end.
 *
 * With PIPELINING (RFC 2920) MAIL, every RCPT and DATA go out in one write
 * and the replies are read in order; the states are the same, entering them
 * just sends nothing.
 *
 * Deadlines: one timer (c->timer) holds the deadline of the reply awaited
 * now: command_timeout per reply (not per byte: a server trickling one byte
 * a second still times out), data_timeout for the reply after the data,
 * armed once the data has left our buffer. Write stalls are caught by the
 * socket bufferevent's write timeout (command_timeout), which libevent
 * re-arms on every write that makes progress. The TLS filter's own
 * timeouts stay unset: libevent re-arms them on an idle connection.
 *
 * Callbacks run from c->notify, an event made active, never from inside
 * the API call that caused them, so a caller is never re-entered. A
 * callback may call any API function on the client; while one runs
 * (c->depth > 0) smtp_client_abort only marks the client doomed, and the
 * dispatcher frees it afterwards. client_free is the only place that frees.
 */
#include "deliver/client.h"

#include "smtp/data.h"
#include "smtp/reply.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/text.h"

#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* RFC 5321 §4.5.3.2 suggests minutes; these apply only when the caller
 * leaves a timeout at 0. */
#define DEFAULT_CONNECT_TIMEOUT_MS 30000
#define DEFAULT_COMMAND_TIMEOUT_MS 300000
#define DEFAULT_DATA_TIMEOUT_MS    600000
#define DEFAULT_TLS_TIMEOUT_MS     60000
#define QUIT_TIMEOUT_MS            5000 /* the outcome is settled: no need to wait long */

#define SMTP_LINE_MAX  998          /* RFC 5322 §2.1.1, without CRLF */
#define BODY_CHUNK     (64 * 1024)  /* read from the spool at a time */
#define BODY_WATERMARK (256 * 1024) /* queued on the socket before reading more */
#define BDAT_MAX       (256 * 1024) /* larger bodies go by DATA, streamed */

enum client_state {
	ST_CONNECTING,
	ST_GREETING,
	ST_EHLO,
	ST_HELO,
	ST_STARTTLS,
	ST_TLS_HANDSHAKE,
	ST_READY, /* between transactions */
	ST_RSET,
	ST_MAIL,
	ST_RCPT,     /* waiting for the reply to RCPT number rcpt_next */
	ST_DATA,     /* waiting for 354 */
	ST_DATA_END, /* body sent, waiting for the final reply */
	ST_BDAT,     /* BDAT LAST and the body sent, waiting for its reply */
	ST_DOT,      /* lone dot sent after an unwanted 354 */
	ST_QUIT,
	ST_DEAD, /* connection closed: I/O, timeout, protocol or TLS failure */
};

/* What the server said to each RCPT of the transaction. */
enum rcpt_reply { REPLY_PENDING, REPLY_ACCEPTED, REPLY_REFUSED, REPLY_TOO_MANY };

enum notice { NOTICE_NONE, NOTICE_READY, NOTICE_TXN, NOTICE_IDLE };

struct smtp_client {
	struct event_base *base;
	struct smtp_client_config cfg; /* names point at the copies below */
	char *ehlo_name, *server_name;
	char peer[64]; /* "ip port", the session cache's key starts with it */
	struct tls_peer_policy default_policy; /* when cfg.tls_policy is NULL */
	const char *default_name;
	struct bufferevent *bev;  /* top of the stack: the socket, or TLS over it */
	struct bufferevent *sock; /* the socket's own (write-stall timeout) */
	enum client_state state;
	struct smtp_reply_parser parser;
	struct smtp_server_info info;
	bool size_offered;   /* SIZE, with or without a limit: send SIZE= */
	bool tls_ehlo;       /* the EHLO after STARTTLS: no HELO fallback */
	bool setup_failed;   /* the ready callback said no; QUIT follows */
	struct event *timer; /* deadline of the awaited reply or step */
	bool data_timer_armed;

	/* the one pending callback */
	struct event *notify;
	enum notice notice;
	bool notice_ok;
	struct smtp_client_error notice_err;
	int depth;   /* callbacks running now */
	bool doomed; /* free once no callback runs */

	smtp_ready_fn ready;
	void *ready_arg;
	void (*idle_fn)(void *arg, struct smtp_client *c);
	void *idle_arg;
	bool idle_told;

	/* the transaction */
	const struct smtp_txn *txn;
	smtp_txn_fn done;
	void *done_arg;
	struct smtp_rcpt_result *results;
	unsigned char *rcpt_reply; /* enum rcpt_reply per recipient */
	size_t rcpt_next;          /* recipient whose RCPT reply comes next */
	size_t accepted;
	bool pipelining, use_bdat;
	bool rcpt_stop; /* "too many recipients" without pipelining: send no more */
	bool mail_refused;
	struct smtp_client_error mail_err;
	bool need_rset; /* the server may hold transaction state */
	/* the body on its way: read from the spool, encoded, queued */
	struct smtp_encoder encoder;
	char *chunk; /* BODY_CHUNK octets, allocated with the first body */
	size_t body_off;
	bool body_started, body_ended;
	bool counted; /* in outpost_delivery_connections_open */
};

static struct metric *m_open, *m_handshakes;

/* The gauge of open outgoing connections: +1 when TCP connects, -1 when
 * the socket is closed, whoever closes it. */
void smtp_client_metrics_init(void)
{
	if (m_open != NULL)
		return;
	m_open = metric_gauge("outpost_delivery_connections_open",
	                      "outgoing SMTP connections open (active and pooled)", NULL);
	m_handshakes = metric_counter("outpost_delivery_tls_handshakes_total",
	                              "completed TLS handshakes to MX hosts, by resumption",
	                              "resumed");
}

static void count_open(struct smtp_client *c, bool open)
{
	smtp_client_metrics_init();
	if (open != c->counted)
		metric_add(m_open, NULL, open ? 1 : -1);
	c->counted = open;
}

static void client_enter(struct smtp_client *c, enum client_state next);
static void client_fail(struct smtp_client *c, const struct smtp_client_error *e);
static void client_start_quit(struct smtp_client *c);

/* ---- small helpers ------------------------------------------------------ */

static int64_t ms_or(int64_t ms, int64_t dflt)
{
	return ms > 0 ? ms : dflt;
}

static void timer_arm(struct smtp_client *c, int64_t ms)
{
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
	evtimer_add(c->timer, &tv);
}

static const char *state_command(enum client_state s)
{
	switch (s) {
	case ST_CONNECTING:
		return "connect";
	case ST_GREETING:
		return "greeting";
	case ST_EHLO:
		return "ehlo";
	case ST_HELO:
		return "helo";
	case ST_STARTTLS:
		return "starttls";
	case ST_TLS_HANDSHAKE:
		return "tls";
	case ST_RSET:
		return "rset";
	case ST_MAIL:
		return "mail";
	case ST_RCPT:
		return "rcpt";
	case ST_DATA:
	case ST_DATA_END:
	case ST_DOT:
		return "data";
	case ST_BDAT:
		return "bdat";
	case ST_QUIT:
		return "quit";
	case ST_READY:
	case ST_DEAD:
		break;
	}
	return "session";
}

static bool state_awaits_reply(enum client_state s)
{
	return s != ST_CONNECTING && s != ST_TLS_HANDSHAKE && s != ST_READY && s != ST_DEAD;
}

static bool state_in_txn(enum client_state s)
{
	return s >= ST_RSET && s <= ST_DOT;
}

/* Copies remote text into a fixed field, printable (text.h): lines joined
 * by spaces, control characters and invalid UTF-8 replaced, truncated. */
static void text_copy(char *dst, size_t n, const char *src)
{
	text_clean_into(dst, n, src, strlen(src), TEXT_UTF8 | TEXT_COLLAPSE, NULL);
}

static void error_set(struct smtp_client_error *e, enum smtp_error_kind kind, const char *cmd,
                      bool permanent, const char *enhanced, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static void error_set(struct smtp_client_error *e, enum smtp_error_kind kind, const char *cmd,
                      bool permanent, const char *enhanced, const char *fmt, ...)
{
	va_list ap;

	memset(e, 0, sizeof *e);
	e->kind = kind;
	e->command = cmd;
	e->permanent = permanent;
	snprintf(e->enhanced, sizeof e->enhanced, "%s", enhanced ? enhanced : "");
	va_start(ap, fmt);
	vsnprintf(e->text, sizeof e->text, fmt, ap);
	va_end(ap);
}

/* RFC 5321 §4.2.1: a reply makes an error permanent iff it is 5xx
 * (docs/delivery.md, "Which replies are permanent"). The enhanced code is
 * there only when the server offered ENHANCEDSTATUSCODES (RFC 2034; the
 * parser looks for it only then). */
static void error_from_reply(struct smtp_client_error *e, enum smtp_error_kind kind,
                             const char *cmd, const struct smtp_reply *r)
{
	size_t n = strnlen(r->enhanced, sizeof e->enhanced - 1);

	memset(e, 0, sizeof *e);
	e->kind = kind;
	e->command = cmd;
	e->code = r->code;
	e->permanent = kind != SMTP_ERR_NONE && smtp_reply_class(r->code) == 5;
	memcpy(e->enhanced, r->enhanced, n);
	e->enhanced[n] = '\0';
	text_copy(e->text, sizeof e->text, r->text);
}

void smtp_client_error_format(const struct smtp_client_error *e, char *buf, size_t n)
{
	const char *cmd = e->command ? e->command : "smtp";
	const char *sep = e->text[0] ? " " : "";

	if (e->code == 0)
		snprintf(buf, n, "%s: %s", cmd, e->text);
	else if (e->enhanced[0])
		snprintf(buf, n, "%s: %d %s%s%s", cmd, e->code, e->enhanced, sep, e->text);
	else
		snprintf(buf, n, "%s: %d%s%s", cmd, e->code, sep, e->text);
}

/* ---- output --------------------------------------------------------------- */

static void client_command(struct smtp_client *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Appends one command line; the loop writes everything appended before it
 * runs again in one go, which is what pipelining needs. */
static void client_command(struct smtp_client *c, const char *fmt, ...)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	char *line = NULL;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&line, fmt, ap);
	va_end(ap);
	if (n < 0)
		abort(); /* out of memory */
	log_event(LOG_DEBUG, "smtp_client", "server=%s cmd=%s", log_quote(c->server_name),
	          log_quote(line));
	evbuffer_add(out, line, (size_t)n);
	evbuffer_add(out, "\r\n", 2);
	free(line);
}

/* ---- callbacks to the caller ------------------------------------------- */

static void client_notify(struct smtp_client *c, enum notice what)
{
	c->notice = what;
	event_active(c->notify, EV_TIMEOUT, 1);
}

/* Tells the idle watcher, once, that the parked connection is gone. */
static void client_maybe_tell_idle(struct smtp_client *c)
{
	if (c->idle_fn && !c->idle_told && c->txn == NULL && c->notice == NOTICE_NONE &&
	    !c->doomed) {
		c->idle_told = true;
		client_notify(c, NOTICE_IDLE);
	}
}

static void client_free(struct smtp_client *c)
{
	count_open(c, false);
	if (c->bev)
		bufferevent_free(c->bev); /* the TLS filter frees the socket's too */
	event_free(c->timer);
	event_free(c->notify);
	free(c->results);
	free(c->rcpt_reply);
	free(c->ehlo_name);
	free(c->server_name);
	free(c->chunk);
	free(c);
}

/* Ends every event handler: frees a doomed client once no callback runs. */
static void client_settle(struct smtp_client *c)
{
	if (c->doomed && c->depth == 0)
		client_free(c);
}

/* Closes the connection; the client lives on (unusable) until freed. */
static void client_close(struct smtp_client *c)
{
	if (c->bev) {
		bufferevent_free(c->bev);
		c->bev = c->sock = NULL;
	}
	count_open(c, false);
	evtimer_del(c->timer);
	c->state = ST_DEAD;
}

static void notify_ready(struct smtp_client *c)
{
	smtp_ready_fn fn = c->ready;
	struct smtp_client_error err = c->notice_err;
	bool ok = c->notice_ok;

	c->ready = NULL;
	if (fn)
		fn(c->ready_arg, c, ok, ok ? NULL : &err);
	if (ok || c->doomed)
		return;
	/* "On failure the client is already freed" as far as the caller is
	 * concerned; a connection still in sync says goodbye first. */
	if (c->state == ST_READY)
		client_start_quit(c);
	else if (c->state != ST_QUIT)
		c->doomed = true;
}

static void notify_txn(struct smtp_client *c)
{
	struct smtp_rcpt_result *results = c->results;
	struct smtp_client_error err = c->notice_err;
	smtp_txn_fn fn = c->done;

	/* The results belong to this callback; a new transaction started
	 * from inside it gets arrays of its own. */
	c->results = NULL;
	free(c->rcpt_reply);
	c->rcpt_reply = NULL;
	c->done = NULL;
	if (fn)
		fn(c->done_arg, c, results, &err);
	free(results);
	if (c->state == ST_DEAD)
		client_maybe_tell_idle(c);
}

static void on_notify(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_client *c = arg;
	enum notice n = c->notice;

	c->notice = NOTICE_NONE;
	c->depth++;
	switch (n) {
	case NOTICE_READY:
		notify_ready(c);
		break;
	case NOTICE_TXN:
		notify_txn(c);
		break;
	case NOTICE_IDLE:
		if (c->idle_fn)
			c->idle_fn(c->idle_arg, c);
		break;
	case NOTICE_NONE:
		break;
	}
	c->depth--;
	client_settle(c);
}

static void session_ready(struct smtp_client *c)
{
	c->state = ST_READY;
	evtimer_del(c->timer);
	log_event(LOG_DEBUG, "smtp_client", "server=%s ready=yes esmtp=%s tls=%s",
	          log_quote(c->server_name), c->info.esmtp ? "yes" : "no",
	          c->info.tls ? "yes" : "no");
	c->notice_ok = true;
	client_notify(c, NOTICE_READY);
}

/* Session setup failed with a reply: the connection is still in sync, so
 * the caller hears about it and a QUIT follows. */
static void session_refused(struct smtp_client *c, enum smtp_error_kind kind,
                            const struct smtp_reply *r)
{
	error_from_reply(&c->notice_err, kind, state_command(c->state), r);
	c->state = ST_READY;
	c->setup_failed = true;
	evtimer_del(c->timer);
	c->notice_ok = false;
	client_notify(c, NOTICE_READY);
}

/* ---- the transaction's end ----------------------------------------------- */

/* Gives every recipient its result and hands them to the caller. err is the
 * failure of the transaction as a whole, NULL when there is none (the
 * message was accepted, or no recipient was and each has its own reply). */
static void txn_finish(struct smtp_client *c, const struct smtp_client_error *err)
{
	const struct smtp_txn *t = c->txn;

	for (size_t i = 0; i < t->nrcpt; i++) {
		struct smtp_rcpt_result *res = &c->results[i];

		switch ((enum rcpt_reply)c->rcpt_reply[i]) {
		case REPLY_ACCEPTED:
			if (err) {
				res->status = SMTP_RCPT_FAILED;
				res->error = *err;
			}
			break;
		case REPLY_PENDING:
			/* MAIL refused: the refusal is every recipient's.
			 * Otherwise the transaction ended before its reply. */
			res->status = c->mail_refused ? SMTP_RCPT_FAILED : SMTP_RCPT_NOT_TRIED;
			if (err)
				res->error = *err;
			else
				error_set(&res->error, SMTP_ERR_NONE, "rcpt", false, NULL,
				          "not tried");
			break;
		case REPLY_REFUSED:
		case REPLY_TOO_MANY:
			break;
		}
	}
	if (err)
		c->notice_err = *err;
	else
		error_set(&c->notice_err, SMTP_ERR_NONE, NULL, false, NULL, "%s", "");
	c->txn = NULL;
	if (c->state != ST_DEAD) {
		c->state = ST_READY;
		evtimer_del(c->timer);
		/* A server that answered before reading all we sent is out of
		 * step with us: the connection cannot carry another message. */
		if (evbuffer_get_length(bufferevent_get_output(c->bev)) > 0 ||
		    (c->body_started && !c->body_ended))
			client_close(c);
	}
	client_notify(c, NOTICE_TXN);
}

/* A failure found before anything is sent: the message cannot go to this
 * host, every recipient fails with the reason. */
static void txn_refuse_locally(struct smtp_client *c, const struct smtp_client_error *err)
{
	for (size_t i = 0; i < c->txn->nrcpt; i++) {
		c->results[i].status = SMTP_RCPT_FAILED;
		c->results[i].error = *err;
		c->rcpt_reply[i] = REPLY_REFUSED;
	}
	txn_finish(c, err);
}

/* The connection broke (or timed out) during a transaction. A reply that
 * already settles the outcome wins over the breakage: a server closing
 * after its MAIL or RCPT reply has said what it wanted to say, and is
 * handled as that reply (docs/delivery.md, "The transaction"). */
static void txn_broken(struct smtp_client *c, enum client_state was,
                       const struct smtp_client_error *e)
{
	bool all_answered = c->rcpt_next >= c->txn->nrcpt || c->rcpt_stop;

	if (c->mail_refused)
		return txn_finish(c, &c->mail_err);
	if ((was == ST_DATA || was == ST_DOT) && all_answered && c->accepted == 0)
		return txn_finish(c, NULL);
	txn_finish(c, e);
}

/* ---- failures that end the connection ------------------------------------ */

static void client_fail(struct smtp_client *c, const struct smtp_client_error *e)
{
	enum client_state was = c->state;
	char buf[700];

	smtp_client_error_format(e, buf, sizeof buf);
	log_event(LOG_DEBUG, "smtp_client", "server=%s failed=%s", log_quote(c->server_name),
	          log_quote(buf));
	client_close(c);
	if (was <= ST_TLS_HANDSHAKE) {
		c->notice_err = *e;
		c->notice_ok = false;
		client_notify(c, NOTICE_READY);
	} else if (state_in_txn(was)) {
		txn_broken(c, was, e);
	} else if (was == ST_READY) {
		client_maybe_tell_idle(c);
	} else if (was == ST_QUIT) {
		c->doomed = true;
	}
}

static void client_fail_io(struct smtp_client *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void client_fail_io(struct smtp_client *c, const char *fmt, ...)
{
	struct smtp_client_error e;
	va_list ap;

	error_set(&e, SMTP_ERR_IO, state_command(c->state), false, NULL, "%s", "");
	va_start(ap, fmt);
	vsnprintf(e.text, sizeof e.text, fmt, ap);
	va_end(ap);
	client_fail(c, &e);
}

static void client_fail_protocol(struct smtp_client *c, const char *why)
{
	struct smtp_client_error e;

	error_set(&e, SMTP_ERR_PROTOCOL, state_command(c->state), false, NULL, "protocol error: %s",
	          why);
	client_fail(c, &e);
}

/* What OpenSSL says went wrong, else errno, else a plain reason. */
static void tls_error_text(struct smtp_client *c, int sock_err, char *buf, size_t n)
{
	unsigned long err = c->bev ? bufferevent_get_openssl_error(c->bev) : 0;

	if (err != 0)
		ERR_error_string_n(err, buf, n);
	else if (sock_err != 0)
		snprintf(buf, n, "%s", strerror(sock_err));
	else
		snprintf(buf, n, "connection closed");
}

static void client_fail_tls(struct smtp_client *c, const char *what, int sock_err)
{
	struct smtp_client_error e;
	char why[256];

	tls_error_text(c, sock_err, why, sizeof why);
	error_set(&e, SMTP_ERR_TLS, "tls", false, NULL, "%s: %s", what, why);
	e.tls = SMTP_TLS_HANDSHAKE;
	client_fail(c, &e);
}

/* ---- session setup ---------------------------------------------------------- */

/* The first word of the greeting, for TLS-RPT's receiving-mx-helo. */
static void greeting_take_name(struct smtp_client *c, const char *text)
{
	size_t n = strcspn(text, " \t\n");

	if (n >= sizeof c->info.greeting_name)
		n = sizeof c->info.greeting_name - 1;
	text_copy(c->info.greeting_name, n + 1, text);
}

static bool word_is(const char *s, size_t n, const char *kw)
{
	return n == strlen(kw) && strncasecmp(s, kw, n) == 0;
}

/* "SIZE" [SP number]; no number, 0 or garbage all mean "no limit known"
 * (RFC 1870 §4: 0 means no fixed maximum). */
static uint64_t size_param(const char *s, size_t n)
{
	uint64_t v = 0;
	size_t i = 0;

	while (i < n && (s[i] == ' ' || s[i] == '\t'))
		i++;
	for (; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return 0;
		if (v > (UINT64_MAX - 9) / 10)
			return 0;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	return v;
}

static void caps_line(struct smtp_client *c, const char *s, size_t n)
{
	struct smtp_server_info *i = &c->info;
	size_t k;

	while (n > 0 && (*s == ' ' || *s == '\t')) {
		s++;
		n--;
	}
	k = 0;
	while (k < n && s[k] != ' ' && s[k] != '\t' && s[k] != '=')
		k++;
	if (word_is(s, k, "PIPELINING"))
		i->pipelining = true;
	else if (word_is(s, k, "CHUNKING"))
		i->chunking = true;
	else if (word_is(s, k, "8BITMIME"))
		i->eightbitmime = true;
	else if (word_is(s, k, "SMTPUTF8"))
		i->smtputf8 = true;
	else if (word_is(s, k, "ENHANCEDSTATUSCODES"))
		i->enhancedstatuscodes = true;
	else if (word_is(s, k, "REQUIRETLS"))
		i->requiretls = true;
	else if (word_is(s, k, "STARTTLS"))
		i->starttls = true;
	else if (word_is(s, k, "SIZE")) {
		c->size_offered = true;
		i->size_max = size_param(s + k, n - k);
	}
}

/* Capabilities are the EHLO reply's lines 2..n (RFC 5321 §4.1.1.1). */
static void caps_parse(struct smtp_client *c, const char *text)
{
	const char *line = strchr(text, '\n');

	c->info.esmtp = true;
	while (line) {
		const char *end;

		line++;
		end = strchr(line, '\n');
		caps_line(c, line, end ? (size_t)(end - line) : strlen(line));
		line = end;
	}
	/* The parser takes enhanced codes off replies only from now on. */
	c->parser.parse_enhanced = c->info.enhancedstatuscodes;
}

/* RFC 3207 §4.2: what the server said before TLS is forgotten. */
static void caps_clear(struct smtp_client *c)
{
	struct smtp_server_info *i = &c->info;

	i->pipelining = i->chunking = i->eightbitmime = i->smtputf8 = false;
	i->enhancedstatuscodes = i->requiretls = i->starttls = false;
	i->size_max = 0;
	c->size_offered = false;
}

static bool want_starttls(const struct smtp_client *c)
{
	if (c->info.tls || c->cfg.tls_ctx == NULL)
		return false;
	return c->cfg.tls_mode == SMTP_TLS_REQUIRED ||
	       (c->cfg.tls_mode == SMTP_TLS_OPPORTUNISTIC && c->info.starttls);
}

static void on_read(struct bufferevent *bev, void *arg);
static void on_write(struct bufferevent *bev, void *arg);
static void on_event(struct bufferevent *bev, short what, void *arg);

/* SNI only for host names: RFC 6066 §3 forbids literal addresses. */
static bool is_ip_literal(const char *name)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1;
}

/* The policy the connection is checked against: the caller's, or for
 * opportunistic TLS a PKIX check for the server name, recorded only. */
static const struct tls_peer_policy *tls_policy(struct smtp_client *c)
{
	if (c->cfg.tls_policy)
		return c->cfg.tls_policy;
	bool named = c->server_name[0] != '\0' && !is_ip_literal(c->server_name);
	c->default_name = c->server_name;
	c->default_policy = (struct tls_peer_policy){
	    .auth = TLS_AUTH_NONE,
	    .sni = named ? c->server_name : NULL, /* RFC 6066 §3: no literal addresses */
	    .names = named ? &c->default_name : NULL,
	    .nnames = named ? 1 : 0,
	};
	return &c->default_policy;
}

/* Sessions are resumed only under the same server, port, SNI and policy
 * (session_cache.h). */
static void tls_resume(struct smtp_client *c, SSL *ssl, const struct tls_peer_policy *p)
{
	char digest[65], key[400];
	if (c->cfg.tls_sessions == NULL || !tls_policy_digest(p, digest))
		return;
	snprintf(key, sizeof key, "%s %s %s", c->peer, p->sni ? p->sni : "-", digest);
	tls_session_attach(ssl, c->cfg.tls_sessions, key);
}

/* After the 220 to STARTTLS: anything the server sent behind it is
 * discarded (RFC 3207 §4.2 injection), then TLS goes on top of the socket,
 * set up for the policy (verify.h): the verdict is read in tls_done. */
static void tls_start(struct smtp_client *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	size_t junk = evbuffer_get_length(in);
	const struct tls_peer_policy *p = tls_policy(c);
	struct bufferevent *tb;
	char why[256];
	SSL *ssl;

	if (junk > 0) {
		log_event(LOG_WARN, "smtp_client_starttls_injection", "server=%s octets=%zu",
		          log_quote(c->server_name), junk);
		evbuffer_drain(in, junk);
	}
	ssl = SSL_new(c->cfg.tls_ctx);
	if (ssl == NULL)
		return client_fail_tls(c, "TLS setup failed", 0);
	if (tls_peer_prepare(ssl, p, why, sizeof why) < 0) {
		SSL_free(ssl);
		return client_fail_tls(c, why, 0);
	}
	tls_resume(c, ssl, p);
	tb = bufferevent_openssl_filter_new(c->base, c->sock, ssl, BUFFEREVENT_SSL_CONNECTING,
	                                    BEV_OPT_CLOSE_ON_FREE);
	if (tb == NULL) {
		/* libevent has freed the SSL and the socket's bufferevent. */
		c->bev = c->sock = NULL;
		return client_fail_tls(c, "TLS setup failed", 0);
	}
	bufferevent_openssl_set_allow_dirty_shutdown(tb, 1);
	c->bev = tb;
	bufferevent_setcb(tb, on_read, on_write, on_event, c);
	bufferevent_enable(tb, EV_READ | EV_WRITE);
	smtp_reply_parser_init(&c->parser);
}

/* The handshake is done: the verdict decides whether the session goes on.
 * Nothing has been sent over the connection yet, so a server that is not
 * who the policy says gets nothing. */
static void tls_done(struct smtp_client *c)
{
	SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
	struct tls_peer_result *v = &c->info.verdict;

	tls_peer_verdict(ssl, tls_policy(c), v);
	smtp_client_metrics_init();
	metric_add(m_handshakes, v->resumed ? "yes" : "no", 1);
	c->info.tls_tried = true;
	snprintf(c->info.tls_version, sizeof c->info.tls_version, "%s", SSL_get_version(ssl));
	snprintf(c->info.tls_cipher, sizeof c->info.tls_cipher, "%s", SSL_get_cipher_name(ssl));
	log_event(LOG_DEBUG, "smtp_client", "server=%s tls=%s cipher=%s resumed=%s verified=%s",
	          log_quote(c->server_name), c->info.tls_version, c->info.tls_cipher,
	          v->resumed ? "yes" : "no", v->authenticated ? "yes" : "no");
	if (c->cfg.tls_authenticate && !v->authenticated) {
		struct smtp_client_error e;
		error_set(&e, SMTP_ERR_TLS, "tls", false, "4.7.5",
		          "certificate not verified: %s%s%s",
		          v->failure.result_type ? v->failure.result_type : "no authentication",
		          v->failure.reason[0] ? " " : "", v->failure.reason);
		e.tls = SMTP_TLS_UNVERIFIED;
		return client_fail(c, &e);
	}
	tls_session_accept(ssl);
	c->info.tls = true;
	caps_clear(c);
	c->tls_ehlo = true;
	client_enter(c, ST_EHLO);
}

static void on_greeting(struct smtp_client *c, const struct smtp_reply *r)
{
	if (r->code != 220)
		return session_refused(c, SMTP_ERR_STATUS, r);
	greeting_take_name(c, r->text);
	client_enter(c, ST_EHLO);
}

static void on_ehlo(struct smtp_client *c, const struct smtp_reply *r)
{
	if (r->code == 250) {
		caps_parse(c, r->text);
		if (want_starttls(c))
			return client_enter(c, ST_STARTTLS);
		return session_ready(c);
	}
	/* RFC 5321 §4.1.4: a server that does not know EHLO gets HELO; not
	 * after STARTTLS, where the server did know it. */
	if (!c->tls_ehlo && r->code >= 500 && r->code <= 504)
		return client_enter(c, ST_HELO);
	session_refused(c, SMTP_ERR_STATUS, r);
}

static void on_helo(struct smtp_client *c, const struct smtp_reply *r)
{
	if (r->code != 250)
		return session_refused(c, SMTP_ERR_STATUS, r);
	c->info.esmtp = false;
	session_ready(c);
}

static void on_starttls(struct smtp_client *c, const struct smtp_reply *r)
{
	if (r->code != 220) {
		session_refused(c, SMTP_ERR_TLS, r);
		c->notice_err.tls = SMTP_TLS_REFUSED;
		/* even a 5xx says no more than "not TLS with this host": the
		 * caller decides between plaintext and the next host */
		c->notice_err.permanent = false;
		return;
	}
	client_enter(c, ST_TLS_HANDSHAKE);
}

/* ---- the transaction -------------------------------------------------------- */

static bool address_ok(const char *a)
{
	for (; *a; a++)
		if ((unsigned char)*a < 0x20 || *a == 0x7f || *a == '<' || *a == '>')
			return false;
	return true;
}

/* Local checks before anything is sent (docs/delivery.md, "Local checks
 * before sending"). A message the server cannot take as it is fails here;
 * only SIZE makes that permanent: the others are this host's shortcoming,
 * not the message's. */
static bool txn_precheck(struct smtp_client *c, struct smtp_client_error *e)
{
	const struct smtp_txn *t = c->txn;
	const struct smtp_server_info *i = &c->info;

	if (c->state != ST_READY || c->setup_failed) {
		error_set(e, SMTP_ERR_IO, "mail", false, NULL, "connection is not usable");
		return false;
	}
	if (t->nrcpt == 0) {
		error_set(e, SMTP_ERR_STATUS, "rcpt", false, NULL, "no recipients");
		return false;
	}
	if (i->size_max != 0 && t->body.len > i->size_max) {
		error_set(e, SMTP_ERR_SIZE, "mail", true, "5.3.4",
		          "message of %zu octets exceeds the server's SIZE limit of %llu",
		          t->body.len, (unsigned long long)i->size_max);
		return false;
	}
	if (t->eightbit && !i->eightbitmime) {
		error_set(e, SMTP_ERR_8BITMIME, "mail", false, "5.6.3",
		          "message has 8-bit content but the server does not offer 8BITMIME");
		return false;
	}
	if (t->smtputf8 && !i->smtputf8) {
		/* RFC 6531 §3.5 */
		error_set(e, SMTP_ERR_SMTPUTF8, "mail", false, "5.6.7",
		          "message needs SMTPUTF8 but the server does not offer it");
		return false;
	}
	if (t->requiretls && !(i->requiretls && i->tls)) {
		/* RFC 8689 §4.1: REQUIRETLS is only ever sent over TLS */
		error_set(e, SMTP_ERR_REQUIRETLS, "mail", false, "4.7.30",
		          "message requires TLS but the server does not offer REQUIRETLS over TLS");
		return false;
	}
	if (!address_ok(t->sender)) {
		error_set(e, SMTP_ERR_STATUS, "mail", true, "5.1.7", "bad sender address");
		return false;
	}
	for (size_t k = 0; k < t->nrcpt; k++) {
		if (!address_ok(t->rcpts[k])) {
			error_set(e, SMTP_ERR_STATUS, "rcpt", true, "5.1.3",
			          "bad recipient address");
			return false;
		}
	}
	return true;
}

/* MAIL with its parameters; with PIPELINING every RCPT and DATA (not
 * BDAT, which waits for the RCPT replies) follow in the same write. */
static void txn_send_mail(struct smtp_client *c)
{
	const struct smtp_txn *t = c->txn;
	char params[96];
	int n = 0;

	params[0] = '\0';
	if (c->size_offered)
		n += snprintf(params + n, sizeof params - (size_t)n, " SIZE=%zu", t->body.len);
	if (t->eightbit)
		n += snprintf(params + n, sizeof params - (size_t)n, " BODY=8BITMIME");
	if (t->smtputf8)
		n += snprintf(params + n, sizeof params - (size_t)n, " SMTPUTF8");
	if (t->requiretls)
		snprintf(params + n, sizeof params - (size_t)n, " REQUIRETLS");
	client_command(c, "MAIL FROM:<%s>%s", t->sender, params);
	if (!c->pipelining)
		return;
	for (size_t i = 0; i < t->nrcpt; i++)
		client_command(c, "RCPT TO:<%s>", t->rcpts[i]);
	if (!c->use_bdat)
		client_command(c, "DATA");
}

/* The message could not be read from the spool (dropped, say): the data
 * already sent must never be ended with a dot, so the connection goes. */
static void txn_body_unreadable(struct smtp_client *c, const char *why)
{
	struct smtp_client_error e;

	error_set(&e, SMTP_ERR_LOCAL, "data", false, "4.3.0", "cannot read the message: %s", why);
	client_close(c);
	txn_finish(c, &e);
}

/* Feeds the encoder from the body until the socket has enough queued or
 * the body is all read. Returns false (the transaction is over) on a
 * read error. */
static bool txn_pump(struct smtp_client *c, struct evbuffer *out, size_t watermark)
{
	const struct smtp_body *b = &c->txn->body;
	char why[256];

	while (c->body_off < b->len && evbuffer_get_length(out) < watermark) {
		size_t want = b->len - c->body_off < BODY_CHUNK ? b->len - c->body_off : BODY_CHUNK;
		ssize_t got = b->read(b->arg, c->body_off, c->chunk, want, why, sizeof why);

		if (got <= 0) {
			txn_body_unreadable(c, got == 0 ? "shorter than stored" : why);
			return false;
		}
		smtp_encoder_feed(&c->encoder, (const unsigned char *)c->chunk, (size_t)got, out);
		c->body_off += (size_t)got;
	}
	if (c->body_off == b->len && !c->body_ended) {
		smtp_encoder_end(&c->encoder, out);
		c->body_ended = true;
	}
	return true;
}

static void txn_body_start(struct smtp_client *c, bool dot_stuff)
{
	if (c->chunk == NULL && (c->chunk = malloc(BODY_CHUNK)) == NULL)
		abort();
	smtp_encoder_init(&c->encoder, dot_stuff, SMTP_LINE_MAX);
	c->body_off = 0;
	c->body_started = true;
	c->body_ended = false;
}

/* DATA: the body goes out as the socket drains (on_write pumps more). */
static void txn_send_body(struct smtp_client *c)
{
	txn_body_start(c, true);
	log_event(LOG_DEBUG, "smtp_client", "server=%s cmd=<data> octets=%zu",
	          log_quote(c->server_name), c->txn->body.len);
	txn_pump(c, bufferevent_get_output(c->bev), BODY_WATERMARK);
}

/* RFC 3030 §2: one chunk, not dot-stuffed, its size known before it goes:
 * only for a body of at most BDAT_MAX octets (smtp_client_send). */
static void txn_send_bdat(struct smtp_client *c)
{
	struct evbuffer *chunk = evbuffer_new();

	if (chunk == NULL)
		abort();
	txn_body_start(c, false);
	if (txn_pump(c, chunk, SIZE_MAX)) {
		client_command(c, "BDAT %zu LAST", evbuffer_get_length(chunk));
		evbuffer_add_buffer(bufferevent_get_output(c->bev), chunk);
	}
	evbuffer_free(chunk);
}

static void txn_on_rset(struct smtp_client *c, const struct smtp_reply *r)
{
	struct smtp_client_error e;

	if (r->code == 250) {
		c->need_rset = false;
		return client_enter(c, ST_MAIL);
	}
	/* A server that will not reset is not one to send a message to. */
	error_from_reply(&e, SMTP_ERR_STATUS, "rset", r);
	e.permanent = false;
	client_close(c);
	txn_finish(c, &e);
}

static void txn_on_mail(struct smtp_client *c, const struct smtp_reply *r)
{
	c->need_rset = true;
	if (smtp_reply_class(r->code) != 2) {
		c->mail_refused = true;
		error_from_reply(&c->mail_err, SMTP_ERR_STATUS, "mail", r);
		if (!c->pipelining)
			return txn_finish(c, &c->mail_err);
	}
	client_enter(c, ST_RCPT); /* pipelined: the RCPT replies follow anyway */
}

/* One recipient's reply. Any 2xx is success, 251 and 252 too (RFC 5321
 * §4.2.1, §3.4): refusing them would bounce mail the server took.
 * 452, and 552 past the first recipient, mean "too many recipients"
 * (RFC 5321 §4.5.3.1.10): try those in another transaction. */
static void txn_rcpt_result(struct smtp_client *c, size_t i, const struct smtp_reply *r)
{
	struct smtp_rcpt_result *res = &c->results[i];

	if (smtp_reply_class(r->code) == 2) {
		c->rcpt_reply[i] = REPLY_ACCEPTED;
		c->accepted++;
		error_from_reply(&res->error, SMTP_ERR_NONE, "rcpt", r);
		return;
	}
	if (i > 0 && (r->code == 452 || r->code == 552)) {
		res->status = SMTP_RCPT_NOT_TRIED;
		error_from_reply(&res->error, SMTP_ERR_STATUS, "rcpt", r);
		res->error.permanent = false;
		c->rcpt_reply[i] = REPLY_TOO_MANY;
		if (c->pipelining)
			return;
		/* one at a time: the rest are not sent at all */
		for (size_t k = i + 1; k < c->txn->nrcpt; k++) {
			c->results[k] = *res;
			c->rcpt_reply[k] = REPLY_TOO_MANY;
		}
		c->rcpt_stop = true;
		return;
	}
	res->status = SMTP_RCPT_FAILED;
	error_from_reply(&res->error, SMTP_ERR_STATUS, "rcpt", r);
	c->rcpt_reply[i] = REPLY_REFUSED;
}

static void txn_rcpts_done(struct smtp_client *c)
{
	if (c->pipelining && !c->use_bdat)
		return client_enter(c, ST_DATA); /* its reply is on the way */
	if (c->mail_refused)
		return txn_finish(c, &c->mail_err);
	if (c->accepted == 0)
		return txn_finish(c, NULL);
	client_enter(c, c->use_bdat ? ST_BDAT : ST_DATA);
}

static void txn_on_rcpt(struct smtp_client *c, const struct smtp_reply *r)
{
	size_t i = c->rcpt_next++;

	if (!c->mail_refused)
		txn_rcpt_result(c, i, r);
	if (c->rcpt_next < c->txn->nrcpt && !c->rcpt_stop)
		return client_enter(c, ST_RCPT);
	txn_rcpts_done(c);
}

static void txn_on_data(struct smtp_client *c, const struct smtp_reply *r)
{
	struct smtp_client_error e;
	bool nobody = c->mail_refused || c->accepted == 0;

	if (r->code == 354)
		/* A pipelined DATA can get 354 with no recipient accepted:
		 * end it with a lone dot, or the next command would be taken
		 * as message data (RFC 2920 §3.1). */
		return client_enter(c, nobody ? ST_DOT : ST_DATA_END);
	if (c->mail_refused)
		return txn_finish(c, &c->mail_err);
	if (c->accepted == 0)
		return txn_finish(c, NULL);
	error_from_reply(&e, SMTP_ERR_STATUS, "data", r);
	txn_finish(c, &e);
}

/* The reply after the data decides for every accepted recipient. */
static void txn_on_final(struct smtp_client *c, const struct smtp_reply *r)
{
	const char *cmd = state_command(c->state);
	struct smtp_client_error e;

	/* After the reply to the end of the data the transaction is over
	 * (RFC 5321 §4.1.1.4); a refused BDAT may leave it open (RFC 3030 §2). */
	c->need_rset = c->state == ST_BDAT && smtp_reply_class(r->code) != 2;
	if (smtp_reply_class(r->code) != 2) {
		error_from_reply(&e, SMTP_ERR_STATUS, cmd, r);
		return txn_finish(c, &e);
	}
	for (size_t i = 0; i < c->txn->nrcpt; i++) {
		if (c->rcpt_reply[i] != REPLY_ACCEPTED)
			continue;
		c->results[i].status = SMTP_RCPT_OK;
		error_from_reply(&c->results[i].error, SMTP_ERR_NONE, cmd, r);
	}
	txn_finish(c, NULL);
}

static void txn_on_dot(struct smtp_client *c, const struct smtp_reply *r)
{
	txn_finish(c, c->mail_refused ? &c->mail_err : NULL);
}

/* ---- the state machine ---------------------------------------------------- */

/* Arms the deadline that belongs to the state just entered. */
static void client_arm(struct smtp_client *c)
{
	c->data_timer_armed = false;
	switch (c->state) {
	case ST_CONNECTING:
		return timer_arm(c, ms_or(c->cfg.connect_timeout_ms, DEFAULT_CONNECT_TIMEOUT_MS));
	case ST_TLS_HANDSHAKE:
		return timer_arm(c, ms_or(c->cfg.tls_timeout_ms, DEFAULT_TLS_TIMEOUT_MS));
	case ST_QUIT:
		return timer_arm(c, QUIT_TIMEOUT_MS);
	case ST_DATA_END:
	case ST_BDAT:
		/* data_timeout starts once the data has left (on_write); until
		 * then the write-stall timeout guards the connection */
		evtimer_del(c->timer);
		return;
	case ST_READY:
	case ST_DEAD:
		evtimer_del(c->timer);
		return;
	default:
		return timer_arm(c, ms_or(c->cfg.command_timeout_ms, DEFAULT_COMMAND_TIMEOUT_MS));
	}
}

static void client_enter(struct smtp_client *c, enum client_state next)
{
	c->state = next;
	client_arm(c);
	switch (next) {
	case ST_EHLO:
		client_command(c, "EHLO %s", c->ehlo_name);
		break;
	case ST_HELO:
		client_command(c, "HELO %s", c->ehlo_name);
		break;
	case ST_STARTTLS:
		client_command(c, "STARTTLS");
		break;
	case ST_TLS_HANDSHAKE:
		tls_start(c);
		break;
	case ST_RSET:
		client_command(c, "RSET");
		break;
	case ST_MAIL:
		txn_send_mail(c);
		break;
	case ST_RCPT:
		if (!c->pipelining)
			client_command(c, "RCPT TO:<%s>", c->txn->rcpts[c->rcpt_next]);
		break;
	case ST_DATA:
		if (!c->pipelining)
			client_command(c, "DATA");
		break;
	case ST_DATA_END:
		txn_send_body(c);
		break;
	case ST_BDAT:
		txn_send_bdat(c);
		break;
	case ST_DOT:
		client_command(c, ".");
		break;
	case ST_QUIT:
		client_command(c, "QUIT");
		break;
	case ST_CONNECTING:
	case ST_GREETING:
	case ST_READY:
	case ST_DEAD:
		break;
	}
}

static void client_on_reply(struct smtp_client *c, const struct smtp_reply *r)
{
	switch (c->state) {
	case ST_GREETING:
		return on_greeting(c, r);
	case ST_EHLO:
		return on_ehlo(c, r);
	case ST_HELO:
		return on_helo(c, r);
	case ST_STARTTLS:
		return on_starttls(c, r);
	case ST_RSET:
		return txn_on_rset(c, r);
	case ST_MAIL:
		return txn_on_mail(c, r);
	case ST_RCPT:
		return txn_on_rcpt(c, r);
	case ST_DATA:
		return txn_on_data(c, r);
	case ST_DATA_END:
	case ST_BDAT:
		return txn_on_final(c, r);
	case ST_DOT:
		return txn_on_dot(c, r);
	case ST_QUIT:
		c->doomed = true;
		return client_close(c);
	case ST_CONNECTING:
	case ST_TLS_HANDSHAKE:
	case ST_READY:
	case ST_DEAD:
		break;
	}
}

/* ---- input ------------------------------------------------------------------ */

/* Feeds complete lines to the reply parser while a reply is awaited. A line
 * longer than the parser allows fails as soon as that many octets are
 * buffered without an end, so remote input never grows past the bound. */
static void client_read(struct smtp_client *c)
{
	char line[SMTP_REPLY_MAX_LINE + 1];

	while (c->bev && !c->doomed && state_awaits_reply(c->state)) {
		struct evbuffer *in = bufferevent_get_input(c->bev);
		size_t eol_len = 0, len;
		struct evbuffer_ptr p = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);
		enum smtp_reply_status st;

		if (p.pos < 0) {
			if (evbuffer_get_length(in) > SMTP_REPLY_MAX_LINE + 2)
				client_fail_protocol(c, "reply line too long");
			return;
		}
		len = (size_t)p.pos;
		if (len > SMTP_REPLY_MAX_LINE)
			return client_fail_protocol(c, "reply line too long");
		evbuffer_remove(in, line, len);
		evbuffer_drain(in, eol_len);
		st = smtp_reply_parser_feed(&c->parser, line, len);
		if (st == SMTP_REPLY_BAD)
			return client_fail_protocol(c, c->parser.error);
		if (st == SMTP_REPLY_MORE)
			continue;
		log_event(LOG_DEBUG, "smtp_client", "server=%s cmd=%s code=%d enhanced=%s text=%s",
		          log_quote(c->server_name), state_command(c->state), c->parser.reply.code,
		          c->parser.reply.enhanced[0] ? c->parser.reply.enhanced : "-",
		          log_quote(c->parser.reply.text));
		client_on_reply(c, &c->parser.reply);
	}
	/* Between transactions the server has nothing to say: anything it
	 * sends (a 421 before closing, say) puts us out of step. */
	if (c->bev && !c->doomed && c->state == ST_READY &&
	    evbuffer_get_length(bufferevent_get_input(c->bev)) > 0) {
		log_event(LOG_DEBUG, "smtp_client", "server=%s unasked=yes",
		          log_quote(c->server_name));
		client_close(c);
		client_maybe_tell_idle(c);
	}
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct smtp_client *c = arg;

	client_read(c);
	client_settle(c);
}

/* The socket took what we queued: more of the body, or, once all of it
 * has left our buffer, the wait for the final reply starts. */
static void on_write(struct bufferevent *bev, void *arg)
{
	struct smtp_client *c = arg;

	if (c->state == ST_DATA_END && !c->body_ended &&
	    !txn_pump(c, bufferevent_get_output(c->bev), BODY_WATERMARK))
		return client_settle(c);
	if ((c->state == ST_DATA_END || c->state == ST_BDAT) && c->body_ended &&
	    !c->data_timer_armed && evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
		c->data_timer_armed = true;
		timer_arm(c, ms_or(c->cfg.data_timeout_ms, DEFAULT_DATA_TIMEOUT_MS));
	}
}

/* Our end of the connection: TLS-RPT's sending-mta-ip. */
static void local_address(evutil_socket_t fd, char *buf, size_t n)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	buf[0] = '\0';
	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return;
	if (ss.ss_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, buf, (socklen_t)n);
	else if (ss.ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, buf, (socklen_t)n);
}

static void client_connected(struct smtp_client *c)
{
	int64_t ms = ms_or(c->cfg.command_timeout_ms, DEFAULT_COMMAND_TIMEOUT_MS);
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
	int one = 1;

	/* Every write we make is a complete command or a pipelined group: a
	 * small last write must not wait ~40 ms for the peer's delayed ACK
	 * (Nagle), which is what stalls the end of a message. */
	evutil_socket_t fd = bufferevent_getfd(c->sock);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	local_address(fd, c->info.local_ip, sizeof c->info.local_ip);

	/* a write that makes no progress for command_timeout fails */
	bufferevent_set_timeouts(c->sock, NULL, &tv);
	count_open(c, true);
	client_enter(c, ST_GREETING);
}

static void client_on_broken(struct smtp_client *c, short what)
{
	int err = (what & BEV_EVENT_ERROR) ? EVUTIL_SOCKET_ERROR() : 0;
	const char *dir = (what & BEV_EVENT_WRITING) ? "write" : "read";

	switch (c->state) {
	case ST_CONNECTING:
		return client_fail_io(c, "connect failed: %s",
		                      err ? strerror(err) : "connection closed");
	case ST_TLS_HANDSHAKE:
		return client_fail_tls(c, "TLS handshake failed", err);
	case ST_QUIT:
		c->doomed = true;
		return client_close(c);
	case ST_DEAD:
		return;
	default:
		break;
	}
	if (what & BEV_EVENT_EOF)
		return client_fail_io(c, "connection closed by the server");
	if (c->info.tls) {
		char why[256];

		tls_error_text(c, err, why, sizeof why);
		return client_fail_io(c, "%s error: %s", dir, why);
	}
	client_fail_io(c, "%s error: %s", dir, err ? strerror(err) : "unknown");
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct smtp_client *c = arg;

	if (what & BEV_EVENT_CONNECTED) {
		if (c->state == ST_CONNECTING)
			client_connected(c);
		else if (c->state == ST_TLS_HANDSHAKE)
			tls_done(c);
	} else if (what & BEV_EVENT_TIMEOUT) {
		struct smtp_client_error e;

		error_set(&e, SMTP_ERR_TIMEOUT, state_command(c->state), false, NULL,
		          "timed out writing to the server");
		if (c->state == ST_QUIT) {
			c->doomed = true;
			client_close(c);
		} else if (c->state != ST_DEAD) {
			client_fail(c, &e);
		}
	} else if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		/* a reply that came in with the close is read first */
		if (what & BEV_EVENT_EOF)
			client_read(c);
		if (!c->doomed)
			client_on_broken(c, what);
	}
	client_settle(c);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_client *c = arg;
	struct smtp_client_error e;
	int64_t ms;

	switch (c->state) {
	case ST_QUIT:
		c->doomed = true;
		client_close(c);
		break;
	case ST_CONNECTING:
		ms = ms_or(c->cfg.connect_timeout_ms, DEFAULT_CONNECT_TIMEOUT_MS);
		error_set(&e, SMTP_ERR_TIMEOUT, "connect", false, NULL,
		          "no connection within %lld ms", (long long)ms);
		client_fail(c, &e);
		break;
	case ST_TLS_HANDSHAKE:
		ms = ms_or(c->cfg.tls_timeout_ms, DEFAULT_TLS_TIMEOUT_MS);
		error_set(&e, SMTP_ERR_TLS, "tls", false, NULL,
		          "TLS handshake not done within %lld ms", (long long)ms);
		e.tls = SMTP_TLS_HANDSHAKE;
		client_fail(c, &e);
		break;
	case ST_READY:
	case ST_DEAD:
		break;
	default:
		ms = (c->state == ST_DATA_END || c->state == ST_BDAT)
		         ? ms_or(c->cfg.data_timeout_ms, DEFAULT_DATA_TIMEOUT_MS)
		         : ms_or(c->cfg.command_timeout_ms, DEFAULT_COMMAND_TIMEOUT_MS);
		error_set(&e, SMTP_ERR_TIMEOUT, state_command(c->state), false, NULL,
		          "no complete reply within %lld ms", (long long)ms);
		client_fail(c, &e);
		break;
	}
	client_settle(c);
}

/* ---- API ------------------------------------------------------------------- */

static void peer_text(const struct sockaddr *sa, char *buf, size_t n)
{
	char ip[INET6_ADDRSTRLEN] = "?";
	int port = 0;

	if (sa->sa_family == AF_INET) {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, ip, sizeof ip);
		port = ntohs(((const struct sockaddr_in *)sa)->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, ip, sizeof ip);
		port = ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
	}
	snprintf(buf, n, "%s %d", ip, port);
}

struct smtp_client *smtp_client_connect(struct event_base *base, const struct sockaddr *addr,
                                        socklen_t addrlen, const struct smtp_client_config *cfg,
                                        smtp_ready_fn ready, void *arg)
{
	struct smtp_client *c = calloc(1, sizeof *c);

	if (c == NULL)
		return NULL;
	c->base = base;
	c->cfg = *cfg;
	c->ehlo_name = strdup(cfg->ehlo_name ? cfg->ehlo_name : "localhost");
	c->server_name = strdup(cfg->server_name ? cfg->server_name : "");
	c->timer = evtimer_new(base, on_timer, c);
	c->notify = event_new(base, -1, 0, on_notify, c);
	c->bev = c->sock = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (!c->ehlo_name || !c->server_name || !c->timer || !c->notify || !c->bev) {
		client_free(c);
		return NULL;
	}
	c->cfg.ehlo_name = c->ehlo_name;
	c->cfg.server_name = c->server_name;
	c->ready = ready;
	c->ready_arg = arg;
	smtp_reply_parser_init(&c->parser);
	bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	client_enter(c, ST_CONNECTING);
	peer_text(addr, c->peer, sizeof c->peer);
	log_event(LOG_DEBUG, "smtp_client", "server=%s cmd=connect", log_quote(c->server_name));
	if (bufferevent_socket_connect(c->bev, (struct sockaddr *)addr, (int)addrlen) < 0)
		client_fail_io(c, "connect failed: %s", strerror(errno));
	return c;
}

static ssize_t memory_read(void *arg, size_t offset, void *buf, size_t n, char *why, size_t whylen)
{
	const struct smtp_body_memory *m = arg;
	size_t take = offset >= m->len ? 0 : (m->len - offset < n ? m->len - offset : n);

	if (take > 0)
		memcpy(buf, m->p + offset, take);
	return (ssize_t)take;
}

void smtp_body_from_memory(struct smtp_body *b, struct smtp_body_memory *m, const char *p,
                           size_t len)
{
	m->p = p;
	m->len = len;
	*b = (struct smtp_body){.len = len, .read = memory_read, .arg = m};
}

const struct smtp_server_info *smtp_client_info(const struct smtp_client *c)
{
	return &c->info;
}

void smtp_client_send(struct smtp_client *c, const struct smtp_txn *txn, smtp_txn_fn done,
                      void *arg)
{
	size_t n = txn->nrcpt ? txn->nrcpt : 1;
	struct smtp_client_error e;

	if (c->txn != NULL || c->notice == NOTICE_READY || c->notice == NOTICE_TXN ||
	    c->state < ST_READY || c->state == ST_QUIT) {
		/* The contract: a ready session, one transaction at a time. */
		log_event(LOG_ERROR, "smtp_client_misuse", "server=%s state=%s",
		          log_quote(c->server_name), state_command(c->state));
		abort();
	}
	if (c->notice == NOTICE_IDLE) { /* the send will report the loss */
		event_del(c->notify);
		c->notice = NOTICE_NONE;
	}
	c->txn = txn;
	c->done = done;
	c->done_arg = arg;
	free(c->results);
	free(c->rcpt_reply);
	c->results = calloc(n, sizeof *c->results);
	c->rcpt_reply = calloc(n, 1);
	if (!c->results || !c->rcpt_reply)
		abort();
	c->rcpt_next = 0;
	c->body_started = c->body_ended = false;
	c->accepted = 0;
	c->rcpt_stop = false;
	c->mail_refused = false;
	c->pipelining = c->info.pipelining;
	c->use_bdat = c->info.chunking && txn->body.len <= BDAT_MAX;
	for (size_t i = 0; i < txn->nrcpt; i++)
		c->results[i].status = SMTP_RCPT_NOT_TRIED;
	if (!txn_precheck(c, &e)) {
		if (e.kind == SMTP_ERR_IO)
			return txn_finish(c, &e);
		return txn_refuse_locally(c, &e);
	}
	client_enter(c, c->need_rset ? ST_RSET : ST_MAIL);
}

bool smtp_client_usable(const struct smtp_client *c)
{
	return c->bev != NULL && !c->doomed && !c->setup_failed && c->state >= ST_READY &&
	       c->state <= ST_DOT;
}

void smtp_client_watch_idle(struct smtp_client *c, void (*fn)(void *arg, struct smtp_client *c),
                            void *arg)
{
	c->idle_fn = fn;
	c->idle_arg = arg;
	c->idle_told = false;
	if (fn && c->state == ST_DEAD)
		client_maybe_tell_idle(c);
}

static void client_cancel_callbacks(struct smtp_client *c)
{
	event_del(c->notify);
	c->notice = NOTICE_NONE;
	c->ready = NULL;
	c->done = NULL;
	c->idle_fn = NULL;
}

/* QUIT, then close on its reply, on EOF or after QUIT_TIMEOUT_MS. */
static void client_start_quit(struct smtp_client *c)
{
	client_cancel_callbacks(c);
	if (c->bev == NULL || c->state != ST_READY) {
		client_close(c);
		c->doomed = true;
		return;
	}
	client_enter(c, ST_QUIT);
}

void smtp_client_quit(struct smtp_client *c)
{
	if (c == NULL)
		return;
	if (c->state != ST_QUIT)
		client_start_quit(c);
	client_settle(c);
}

void smtp_client_abort(struct smtp_client *c)
{
	if (c == NULL)
		return;
	client_cancel_callbacks(c);
	client_close(c);
	c->doomed = true;
	client_settle(c);
}

size_t smtp_client_peer_chain(struct smtp_client *c, struct tls_cert_summary *out, size_t max)
{
	if (!c->info.tls || c->bev == NULL)
		return 0;
	SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
	return ssl ? tls_peer_chain(ssl, out, max) : 0;
}
