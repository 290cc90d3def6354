/* smtpd.c - SMTP submission sessions as a state machine on the event loop. */
#include "submit/smtpd.h"

#include "dkim/dkim.h"
#include "smtp/address.h"
#include "smtp/command.h"
#include "smtp/data.h"
#include "smtp/headers.h"
#include "smtp/reply.h"
#include "spool/spool.h"
#include "submit/checks.h"
#include "submit/users.h"
#include "tls/tls.h"
#include "util/listen.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/text.h"
#include "util/timeutil.h"
#include "util/worker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Pipelined replies waiting for a client that does not read: past this, the
 * session stops reading commands until the client catches up. */
#define OUTPUT_BACKLOG_MAX (256 * 1024)
/* Input read ahead of processing (pipelined commands after DATA). */
#define INPUT_READ_AHEAD (1024 * 1024)

enum session_state {
	ST_COMMAND,
	ST_AUTH_PLAIN,      /* waiting for the PLAIN response line */
	ST_AUTH_LOGIN_USER, /* waiting for the LOGIN user name line */
	ST_AUTH_LOGIN_PASS, /* waiting for the LOGIN password line */
	ST_DATA,            /* reading the DATA body */
	ST_BDAT,            /* reading a BDAT chunk */
	ST_SIGNING,         /* message handed to the worker for its DKIM signatures */
	ST_COMMIT,          /* message handed to the writer, waiting for its commit */
	ST_AUTH_CHECK,      /* password handed to the worker, waiting for its verdict */
	ST_TLS_HANDSHAKE,
	ST_CLOSING, /* final reply written, closing when flushed */
};

struct session {
	struct smtpd *d;
	struct bufferevent *bev;
	struct session *prev, *next;
	char ip[INET6_ADDRSTRLEN];
	bool loopback;
	bool local; /* on the local socket: ip says "local:uid=N" */
	enum session_state state;
	char helo[128]; /* sanitized */
	bool esmtp;
	bool tls;
	char tls_desc[96];
	char *auth_user;
	char login_user[512];
	int errors;
	int auth_failures;
	int64_t commands;
	bool skipping_line; /* discarding the rest of an overlong line */
	bool orphaned;      /* closed while its commit or password check was pending */
	bool reading_paused;
	struct event *linger; /* TLS: waits for the final reply to leave */
	int64_t linger_until_us;

	/* the transaction */
	bool have_mail;
	uint64_t qid;
	char sender[SMTP_PATH_MAX + 1];
	bool smtputf8;
	bool requiretls;
	char **rcpts;
	size_t nrcpt;
	struct evbuffer *body;
	struct smtp_data_reader reader;
	uint64_t bdat_remaining;
	bool bdat_last;
	bool bdat_discard; /* chunk of a failed or absent transaction */
	bool bdat_started;
	bool storage_full; /* the sessions' message buffers hit max_pending_bytes */
	size_t accounted;  /* octets of body counted in d->pending_bytes */
	int64_t data_started_us;
};

struct ip_count {
	char ip[INET6_ADDRSTRLEN];
	int64_t count;
};

struct smtpd {
	struct event_base *base;
	const struct conf *conf;
	struct spool_writer *writer;
	struct worker *worker; /* password checks, DKIM signatures */
	const struct dkim_signer *dkim;
	smtpd_queued_fn queued;
	void *queued_arg;
	SSL_CTX *tls;
	struct users *users;
	struct evconnlistener **listeners;
	size_t nlisteners;
	struct session *sessions;
	int64_t nsessions;
	struct ip_count *ips;
	size_t nips;
	char *line;           /* max_line_length + 3 octets, shared: one loop thread */
	bool draining;        /* shutting down: finish commits, start nothing new */
	size_t pending_bytes; /* message octets held by all sessions */
	char *local_path;     /* the local socket, unlinked at stop */
};

static struct metric *m_accepted, *m_bytes, *m_rejections, *m_sessions, *m_connections;

static void metrics_init(void)
{
	if (m_accepted)
		return;
	m_accepted = metric_counter("outpost_messages_accepted_total",
	                            "messages committed to the spool and acknowledged", NULL);
	m_bytes = metric_counter("outpost_bytes_accepted_total",
	                         "octets of messages committed and acknowledged", NULL);
	m_rejections =
	    metric_counter("outpost_smtp_rejections_total",
	                   "commands, messages and connections refused, by reason", "reason");
	m_sessions = metric_gauge("outpost_smtp_sessions", "submission sessions open", NULL);
	m_connections = metric_counter("outpost_smtp_connections_total",
	                               "submission connections by outcome", "result");
}

static void session_process(struct session *s);
static void session_close(struct session *s);

/* A job on the worker or the writer holds the session: it waits for its
 * done callback, whatever happens to the connection meanwhile. */
static bool session_busy(const struct session *s)
{
	return s->state == ST_SIGNING || s->state == ST_COMMIT || s->state == ST_AUTH_CHECK;
}

/* ---- replies ------------------------------------------------------------ */

static void reply(struct session *s, int code, const char *enh, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void reply(struct session *s, int code, const char *enh, const char *fmt, ...)
{
	char text[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	smtp_reply_write(bufferevent_get_output(s->bev), code, enh, text);
}

/* Closes the session after this final reply has been written: on_write
 * closes it once the output has drained. */
static void reply_and_close(struct session *s, int code, const char *enh, const char *text)
{
	smtp_reply_write(bufferevent_get_output(s->bev), code, enh, text);
	s->state = ST_CLOSING;
	bufferevent_disable(s->bev, EV_READ);
	bufferevent_enable(s->bev, EV_WRITE);
}

/* A TLS session's bufferevent is a filter over the socket's. */
static bool plain_socket(const struct session *s)
{
	return bufferevent_get_underlying(s->bev) == NULL;
}

/* Replies leave at once, those of pipelined commands in one write. On a
 * plain socket the bufferevent polls for writability only while the
 * kernel's buffer is full: polling for every reply cost two epoll_ctl
 * calls and a loop iteration before the reply left (docs/design.md, "The
 * submission listener"). The TLS filter writes through its own bufferevent. */
static void session_flush(struct session *s)
{
	struct evbuffer *out = bufferevent_get_output(s->bev);
	if (evbuffer_get_length(out) == 0)
		return;
	if (plain_socket(s) && s->state != ST_CLOSING) {
		/* A socket bufferevent freezes its output's start: only it
		 * drains it, as its own write callback does, unfrozen. */
		evbuffer_unfreeze(out, 1);
		evbuffer_write(out, bufferevent_getfd(s->bev)); /* errors: see below */
		evbuffer_freeze(out, 1);
	}
	if (evbuffer_get_length(out) > 0) /* full, or failed: the bufferevent retries, and reports */
		bufferevent_enable(s->bev, EV_WRITE);
}

/* A refused command: replied, counted, and the session closed once the
 * client has made too many errors (a client that guesses or floods). */
static void reject(struct session *s, const char *reason, int code, const char *enh,
                   const char *text)
{
	metric_add(m_rejections, reason, 1);
	log_event(LOG_DEBUG, "smtp_reject", "client=%s reason=%s code=%d text=%s", s->ip, reason,
	          code, log_quote(text));
	smtp_reply_write(bufferevent_get_output(s->bev), code, enh, text);
	if (code >= 500 && ++s->errors >= s->d->conf->max_errors) {
		metric_add(m_rejections, "too_many_errors", 1);
		reply_and_close(s, 421, "4.7.0", "too many errors, closing connection");
	}
}

/* ---- the transaction ---------------------------------------------------- */

/* Keeps d->pending_bytes equal to what the sessions' bodies hold. */
static void body_account(struct session *s)
{
	size_t now = s->body ? evbuffer_get_length(s->body) : 0;
	s->d->pending_bytes = s->d->pending_bytes - s->accounted + now;
	s->accounted = now;
}

/* Memory for messages in reception is bounded for the whole listener
 * ([submission] max_pending_bytes): a session that would go past it has
 * its message refused with 452 4.3.1 (RFC 3463: mail system full), and it
 * keeps reading the data (stored no more) so that it stays in step. */
static bool storage_exhausted(const struct session *s)
{
	return s->d->pending_bytes >= (size_t)s->d->conf->max_pending_bytes;
}

static void transaction_reset(struct session *s)
{
	for (size_t i = 0; i < s->nrcpt; i++)
		free(s->rcpts[i]);
	free(s->rcpts);
	s->rcpts = NULL;
	s->nrcpt = 0;
	s->have_mail = false;
	s->sender[0] = '\0';
	s->smtputf8 = s->requiretls = false;
	s->bdat_started = false;
	s->storage_full = false;
	if (s->body)
		evbuffer_drain(s->body, evbuffer_get_length(s->body));
	body_account(s);
}

static void session_reset(struct session *s)
{
	transaction_reset(s);
	s->helo[0] = '\0';
	s->esmtp = false;
}

static bool mail_allowed(const struct session *s)
{
	/* Never an open relay: only authenticated or loopback clients submit. */
	return s->auth_user != NULL || s->loopback;
}

static bool auth_offered(const struct session *s)
{
	return s->d->users != NULL && (s->tls || s->loopback);
}

/* ---- commands ----------------------------------------------------------- */

static void cmd_ehlo(struct session *s, const struct smtp_command *c)
{
	transaction_reset(s);
	/* printable, one word: it goes into logs and the Received: field */
	text_clean_into(s->helo, sizeof s->helo, c->arg, c->arg_len, TEXT_ONE_WORD, "()");
	s->esmtp = c->verb == SMTP_VERB_EHLO;
	const struct conf *conf = s->d->conf;
	if (!s->esmtp) {
		reply(s, 250, NULL, "%s", conf->hostname);
		return;
	}
	char text[1024];
	int n = snprintf(text, sizeof text,
	                 "%s greets %s\nPIPELINING\nSIZE %lld\n8BITMIME\nSMTPUTF8\n"
	                 "ENHANCEDSTATUSCODES\nCHUNKING",
	                 conf->hostname, s->helo, (long long)conf->max_message_size);
	if (s->d->tls && !s->tls)
		n += snprintf(text + n, sizeof text - (size_t)n, "\nSTARTTLS");
	if (auth_offered(s) && s->auth_user == NULL)
		n += snprintf(text + n, sizeof text - (size_t)n, "\nAUTH PLAIN LOGIN");
	if (s->tls || s->local) /* RFC 8689 §4: over TLS (the local socket is as private) */
		snprintf(text + n, sizeof text - (size_t)n, "\nREQUIRETLS");
	smtp_reply_write(bufferevent_get_output(s->bev), 250, NULL, text);
}

static void cmd_mail(struct session *s, const struct smtp_command *c)
{
	const struct conf *conf = s->d->conf;
	if (s->helo[0] == '\0')
		return reject(s, "sequence", 503, "5.5.1", "send EHLO or HELO first");
	if (s->have_mail)
		return reject(s, "sequence", 503, "5.5.1", "nested MAIL command");
	if (!mail_allowed(s))
		return reject(s, "relay", 530, "5.7.0", "authentication required");
	if (c->has_size && c->size > (uint64_t)conf->max_message_size)
		return reject(s, "size", 552, "5.3.4", "message size exceeds fixed maximum");
	if (c->requiretls && !s->tls && !s->local)
		return reject(s, "requiretls", 530, "5.7.10", "REQUIRETLS needs a TLS session");
	if (!spool_writer_healthy(s->d->writer)) {
		/* a message now could not be stored: say so before its data */
		metric_add(m_rejections, "spool_error", 1);
		return reply(s, 451, "4.3.0", "spool temporarily unavailable, try again later");
	}
	s->have_mail = true;
	s->qid = spool_new_id();
	smtp_addr_format(&c->addr, s->sender, sizeof s->sender);
	s->smtputf8 = c->smtputf8;
	s->requiretls = c->requiretls;
	reply(s, 250, "2.1.0", "sender ok");
}

static bool already_recipient(const struct session *s, const struct smtp_addr *a)
{
	char addr[SMTP_PATH_MAX + 1];
	smtp_addr_format(a, addr, sizeof addr);
	for (size_t i = 0; i < s->nrcpt; i++)
		if (spool_same_address(s->rcpts[i], addr))
			return true;
	return false;
}

static void cmd_rcpt(struct session *s, const struct smtp_command *c)
{
	if (!s->have_mail)
		return reject(s, "sequence", 503, "5.5.1", "need MAIL before RCPT");
	if (c->addr.utf8 && !s->smtputf8)
		return reject(s, "syntax", 553, "5.6.7", "non-ASCII address needs SMTPUTF8");
	if (c->addr.domain[0] == '\0')
		return reject(s, "no_mailbox", 550, "5.1.1", "no local mailboxes here");
	if ((int64_t)s->nrcpt >= s->d->conf->max_recipients && !already_recipient(s, &c->addr)) {
		/* 452, not 5xx: RFC 5321 §4.5.3.1.10, the client sends the rest later */
		metric_add(m_rejections, "too_many_recipients", 1);
		reply(s, 452, "4.5.3", "too many recipients");
		return;
	}
	if (already_recipient(s, &c->addr)) /* one recipient, one delivery */
		return reply(s, 250, "2.1.5", "duplicate recipient, already accepted");
	char addr[SMTP_PATH_MAX + 1];
	smtp_addr_format(&c->addr, addr, sizeof addr);
	s->rcpts = realloc(s->rcpts, (s->nrcpt + 1) * sizeof *s->rcpts);
	if (s->rcpts == NULL)
		abort();
	s->rcpts[s->nrcpt++] = strdup(addr);
	reply(s, 250, "2.1.5", "recipient ok");
}

static void data_begin(struct session *s)
{
	const struct conf *conf = s->d->conf;
	if (s->body == NULL)
		s->body = evbuffer_new();
	smtp_data_reader_init(&s->reader, (size_t)conf->max_message_size,
	                      (size_t)conf->max_line_length);
	s->data_started_us = time_mono_us();
}

static void cmd_data(struct session *s)
{
	if (!s->have_mail)
		return reject(s, "sequence", 503, "5.5.1", "need MAIL before DATA");
	if (s->nrcpt == 0)
		return reject(s, "sequence", 554, "5.5.1", "no valid recipients");
	if (s->bdat_started)
		return reject(s, "sequence", 503, "5.5.1", "DATA after BDAT");
	if (storage_exhausted(s)) {
		metric_add(m_rejections, "storage_full", 1);
		return reply(s, 452, "4.3.1", "insufficient system storage, try again later");
	}
	data_begin(s);
	s->state = ST_DATA;
	reply(s, 354, NULL, "end data with <CRLF>.<CRLF>");
}

static void bdat_chunk_done(struct session *s);

/* Every BDAT consumes its chunk, valid or not: the octets are message data,
 * never commands (RFC 3030 §2). */
static void cmd_bdat(struct session *s, const struct smtp_command *c)
{
	s->bdat_remaining = c->chunk_size;
	s->bdat_last = c->last;
	s->bdat_discard = !s->have_mail || s->nrcpt == 0;
	if (!s->bdat_discard && !s->bdat_started) {
		data_begin(s);
		s->bdat_started = true;
	}
	s->state = ST_BDAT;
	if (c->chunk_size == 0)
		bdat_chunk_done(s);
}

static void tls_start(struct session *s);

static void cmd_starttls(struct session *s)
{
	if (s->d->tls == NULL || s->tls)
		return reject(s, "sequence", 503, "5.5.1", "TLS not available");
	reply(s, 220, "2.0.0", "ready to start TLS");
	tls_start(s);
}

/* ---- AUTH (RFC 4954; PLAIN RFC 4616; LOGIN) ----------------------------- */

/* Decodes base64 text into out (n octets); returns the length or -1. */
static int base64_decode(const char *in, size_t len, unsigned char *out, size_t n)
{
	if (len % 4 != 0 || len / 4 * 3 + 1 > n)
		return -1;
	int got = len ? EVP_DecodeBlock(out, (const unsigned char *)in, (int)len) : 0;
	if (got < 0)
		return -1;
	/* EVP_DecodeBlock counts padding as zero octets. */
	while (len > 0 && in[len - 1] == '=' && got > 0)
		got--, len--;
	out[got] = '\0';
	return got;
}

/* One password check, on a worker thread: crypt(3) would stall the loop. */
struct auth_check {
	struct session *s;
	const struct users *users;
	char user[512], pass[512];
	bool ok;
};

static void auth_run(void *arg)
{
	struct auth_check *c = arg;
	c->ok = users_verify(c->users, c->user, c->pass);
	OPENSSL_cleanse(c->pass, sizeof c->pass);
}

static void session_free(struct session *s);

static void auth_done(void *arg)
{
	struct auth_check *c = arg;
	struct session *s = c->s;
	s->state = ST_COMMAND;
	if (s->orphaned) {
		free(c);
		return session_free(s);
	}
	if (s->d->draining) {
		free(c);
		return reply_and_close(s, 421, "4.3.2", "shutting down");
	}
	if (c->ok) {
		s->auth_user = strdup(c->user);
		log_event(LOG_INFO, "smtp_auth", "client=%s user=%s result=ok", s->ip,
		          log_quote(c->user));
		reply(s, 235, "2.7.0", "authentication succeeded");
	} else {
		log_event(LOG_WARN, "smtp_auth", "client=%s user=%s result=failed", s->ip,
		          log_quote(c->user));
		metric_add(m_rejections, "auth_failed", 1);
		if (++s->auth_failures >= s->d->conf->max_auth_failures)
			reply_and_close(s, 421, "4.7.0", "too many failed authentications");
		else
			reply(s, 535, "5.7.8", "authentication credentials invalid");
	}
	free(c);
	if (s->state == ST_COMMAND)
		session_process(s);
}

static void auth_finish(struct session *s, const char *user, const char *pass)
{
	struct auth_check *c = calloc(1, sizeof *c);
	if (c == NULL)
		abort();
	c->s = s;
	c->users = s->d->users;
	snprintf(c->user, sizeof c->user, "%s", user);
	snprintf(c->pass, sizeof c->pass, "%s", pass);
	s->state = ST_AUTH_CHECK;
	worker_submit(s->d->worker, auth_run, auth_done, c);
}

/* PLAIN response: authzid NUL authcid NUL password. */
static void auth_plain_response(struct session *s, const char *b64, size_t len)
{
	unsigned char buf[1024];
	int n = base64_decode(b64, len, buf, sizeof buf);
	const unsigned char *user = n > 0 ? memchr(buf, '\0', (size_t)n) : NULL;
	const unsigned char *pass =
	    user ? memchr(user + 1, '\0', (size_t)(buf + n - user - 1)) : NULL;
	if (pass == NULL)
		return reject(s, "syntax", 501, "5.5.2", "malformed AUTH PLAIN response");
	auth_finish(s, (const char *)user + 1, (const char *)pass + 1);
}

static void cmd_auth(struct session *s, const struct smtp_command *c)
{
	if (!auth_offered(s))
		return reject(s, "auth", 538, "5.7.11", "AUTH needs TLS");
	if (s->auth_user)
		return reject(s, "sequence", 503, "5.5.1", "already authenticated");
	if (s->have_mail)
		return reject(s, "sequence", 503, "5.5.1", "AUTH not allowed during a transaction");
	const char *mech = c->arg, *sp = memchr(c->arg, ' ', c->arg_len);
	size_t mlen = sp ? (size_t)(sp - mech) : c->arg_len;
	const char *initial = sp ? sp + 1 : NULL;
	size_t ilen = sp ? c->arg_len - mlen - 1 : 0;
	if (mlen == 5 && strncasecmp(mech, "PLAIN", 5) == 0) {
		if (initial == NULL) {
			s->state = ST_AUTH_PLAIN;
			return reply(s, 334, NULL, "%s", "");
		}
		return auth_plain_response(s, initial, (ilen == 1 && initial[0] == '=') ? 0 : ilen);
	}
	if (mlen == 5 && strncasecmp(mech, "LOGIN", 5) == 0) {
		s->state = ST_AUTH_LOGIN_USER;
		return reply(s, 334, NULL, "VXNlcm5hbWU6"); /* "Username:" */
	}
	reject(s, "syntax", 504, "5.5.4", "unrecognized authentication mechanism");
}

/* A line while an AUTH exchange waits for the client. */
static void auth_continue(struct session *s, const char *line, size_t len)
{
	enum session_state st = s->state;
	s->state = ST_COMMAND;
	if (len == 1 && line[0] == '*')
		return reject(s, "auth", 501, "5.0.0", "authentication cancelled");
	if (st == ST_AUTH_PLAIN)
		return auth_plain_response(s, line, len);
	unsigned char buf[512];
	if (base64_decode(line, len, buf, sizeof buf) < 0)
		return reject(s, "syntax", 501, "5.5.2", "bad base64");
	if (st == ST_AUTH_LOGIN_USER) {
		snprintf(s->login_user, sizeof s->login_user, "%s", (char *)buf);
		s->state = ST_AUTH_LOGIN_PASS;
		return reply(s, 334, NULL, "UGFzc3dvcmQ6"); /* "Password:" */
	}
	auth_finish(s, s->login_user, (char *)buf);
	explicit_bzero(buf, sizeof buf);
}

/* ---- one command line --------------------------------------------------- */

static void command_dispatch(struct session *s, const struct smtp_command *c)
{
	switch (c->verb) {
	case SMTP_VERB_EHLO:
	case SMTP_VERB_HELO:
		return cmd_ehlo(s, c);
	case SMTP_VERB_MAIL:
		return cmd_mail(s, c);
	case SMTP_VERB_RCPT:
		return cmd_rcpt(s, c);
	case SMTP_VERB_DATA:
		return cmd_data(s);
	case SMTP_VERB_BDAT:
		return cmd_bdat(s, c);
	case SMTP_VERB_RSET:
		transaction_reset(s);
		return reply(s, 250, "2.0.0", "reset");
	case SMTP_VERB_NOOP:
		return reply(s, 250, "2.0.0", "ok");
	case SMTP_VERB_HELP:
		return reply(s, 214, "2.0.0", "see RFC 5321");
	case SMTP_VERB_VRFY:
		return reply(s, 252, "2.5.0", "cannot VRFY, send some mail");
	case SMTP_VERB_EXPN:
		return reject(s, "unsupported", 502, "5.5.1", "EXPN not supported");
	case SMTP_VERB_QUIT:
		return reply_and_close(s, 221, "2.0.0", "bye");
	case SMTP_VERB_STARTTLS:
		return cmd_starttls(s);
	case SMTP_VERB_AUTH:
		return cmd_auth(s, c);
	default:
		return reject(s, "unknown_command", 500, "5.5.2", "command not recognized");
	}
}

static void command_line(struct session *s, const char *line, size_t len)
{
	if (++s->commands > s->d->conf->max_commands) {
		metric_add(m_rejections, "too_many_commands", 1);
		return reply_and_close(s, 421, "4.7.0", "too many commands, closing connection");
	}
	if (s->state != ST_COMMAND)
		return auth_continue(s, line, len);
	struct smtp_command c;
	struct smtp_command_error err;
	if (!smtp_command_parse(line, len, &c, &err)) {
		/* MAIL addresses are senders: RFC 3463 names their syntax 5.1.7 */
		return reject(s, "syntax", err.code, err.e.enhanced, err.e.reason);
	}
	command_dispatch(s, &c);
}

/* Takes one CRLF-terminated line from in. Returns false when more input is
 * needed. */
static bool line_feed(struct session *s, struct evbuffer *in)
{
	size_t max = (size_t)s->d->conf->max_line_length;
	size_t eol_len;
	struct evbuffer_ptr p = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_LF);
	if (p.pos < 0) {
		if (evbuffer_get_length(in) > max + 2) { /* keep memory bounded */
			evbuffer_drain(in, evbuffer_get_length(in));
			s->skipping_line = true;
		}
		return false;
	}
	size_t len = (size_t)p.pos;
	if (s->skipping_line || len > max + 1) {
		evbuffer_drain(in, len + 1);
		s->skipping_line = false;
		reject(s, "line_too_long", 500, "5.5.2", "line too long");
		return true;
	}
	evbuffer_remove(in, s->d->line, len + 1);
	if (len == 0 || s->d->line[len - 1] != '\r') {
		/* RFC 5321 §2.3.8: lines end in CRLF; a bare LF is how
		 * smuggling starts, so it is refused, not repaired. */
		reject(s, "bare_lf", 500, "5.5.2", "line must end with CRLF");
		return true;
	}
	s->d->line[len - 1] = '\0';
	command_line(s, s->d->line, len - 1);
	return true;
}

/* ---- the message: checks, Received:, commit ------------------------------ */

struct pending {
	struct session *s;
	struct spool_message_in m;
	/* DKIM, on the worker: the message as it stands, the fields to prepend */
	const char *msg;
	size_t len;
	struct buf signatures;
	int nsigned; /* signatures made, -1 on failure (why) */
	char why[256];
};

static bool content_acceptable(struct session *s)
{
	struct submit_refusal r;
	if (s->storage_full) {
		metric_add(m_rejections, "storage_full", 1);
		reply(s, 452, "4.3.1", "insufficient system storage, try again later");
		return false;
	}
	const char *msg = (const char *)evbuffer_pullup(s->body, -1);
	if (submit_check_content(s->reader.flags, msg, evbuffer_get_length(s->body), &r))
		return true;
	reject(s, r.reason, r.code, r.enhanced, r.text);
	return false;
}

/* RFC 5321 §4.4 trace field, with the protocol names of RFC 3848/6531. */
static void add_received(struct session *s)
{
	char date[48], id[17], hdr[1024];
	time_format_rfc5322(time_now_ms(), date, sizeof date);
	spool_id_format(s->qid, id);
	const char *proto = s->smtputf8 ? "UTF8SMTP" : (s->esmtp ? "ESMTP" : "SMTP");
	int n = s->local ? snprintf(hdr, sizeof hdr, "Received: by %s (outpost, %s)\r\n\twith %s",
	                            s->d->conf->hostname, s->ip, proto)
	                 : snprintf(hdr, sizeof hdr,
	                            "Received: from %s ([%s])\r\n\tby %s (outpost) with %s%s%s",
	                            s->helo, s->ip, s->d->conf->hostname, proto, s->tls ? "S" : "",
	                            s->auth_user ? "A" : "");
	if (s->tls)
		n += snprintf(hdr + n, sizeof hdr - (size_t)n, "\r\n\t(%s)", s->tls_desc);
	n += snprintf(hdr + n, sizeof hdr - (size_t)n, " id %s", id);
	if (s->nrcpt == 1 && strlen(s->rcpts[0]) < 300)
		n += snprintf(hdr + n, sizeof hdr - (size_t)n, "\r\n\tfor <%s>", s->rcpts[0]);
	n += snprintf(hdr + n, sizeof hdr - (size_t)n, "; %s\r\n", date);
	evbuffer_prepend(s->body, hdr, (size_t)n);
	body_account(s);
}

static int commit_job(struct spool *sp, void *arg, char *why, size_t whylen)
{
	struct pending *p = arg;
	return spool_insert_message(sp, &p->m, why, whylen);
}

static void session_free(struct session *s);

static void commit_done(void *arg, int status, const char *why)
{
	struct pending *p = arg;
	struct session *s = p->s;
	char id[17];
	spool_id_format(p->m.id, id);
	if (status == 0) {
		metric_add(m_accepted, NULL, 1);
		metric_add(m_bytes, NULL, (double)p->m.body_len);
		log_event(LOG_INFO, "message_accepted",
		          "qid=%s from=%s rcpts=%zu size=%zu client=%s tls=%s auth=%s dkim=%d", id,
		          log_quote(p->m.sender), p->m.nrcpt, p->m.body_len, s->ip,
		          s->tls ? "yes" : "no", log_quote(s->auth_user ? s->auth_user : ""),
		          p->nsigned);
		s->d->queued(s->d->queued_arg);
	} else {
		metric_add(m_rejections, "spool_error", 1);
		log_event(LOG_ERROR, "message_not_queued", "qid=%s client=%s reason=%s", id, s->ip,
		          log_quote(why));
	}
	free(p);
	if (s->orphaned)
		return session_free(s);
	if (status == 0)
		reply(s, 250, "2.0.0", "OK queued as %s", id);
	else
		reply(s, 451, "4.3.0", "temporary failure, message not queued");
	transaction_reset(s);
	s->state = ST_COMMAND;
	if (s->d->draining)
		return reply_and_close(s, 421, "4.3.2", "shutting down");
	session_process(s);
}

static unsigned message_flags(struct session *s, const char *body, size_t len)
{
	unsigned flags = 0;
	if (s->requiretls)
		flags |= SPOOL_F_REQUIRETLS;
	else if (msg_tls_required_no(body, len)) /* REQUIRETLS wins (RFC 8689 §5) */
		flags |= SPOOL_F_TLS_REQUIRED_NO;
	if (s->reader.flags & SMTP_DATA_8BIT)
		flags |= SPOOL_F_8BIT;
	if (s->smtputf8)
		flags |= SPOOL_F_SMTPUTF8;
	return flags;
}

/* Hands the message, as it now stands in s->body, to the writer. */
static void message_commit(struct session *s, struct pending *p)
{
	size_t len = evbuffer_get_length(s->body);
	const char *body = (const char *)evbuffer_pullup(s->body, -1);
	p->m = (struct spool_message_in){
	    .id = s->qid,
	    .sender = s->sender,
	    .rcpts = (const char *const *)s->rcpts,
	    .nrcpt = s->nrcpt,
	    .flags = message_flags(s, body, len),
	    .auth_user = s->auth_user,
	    .client = s->ip,
	    .queued_ms = time_now_ms(),
	    .body = body,
	    .body_len = len,
	};
	s->state = ST_COMMIT;
	spool_writer_submit(s->d->writer, commit_job, commit_done, p);
}

/* On a worker thread: RSA costs about a millisecond a signature, too long
 * for the loop. The session touches neither its body nor its sender until
 * sign_done. */
static void sign_run(void *arg)
{
	struct pending *p = arg;
	p->nsigned = dkim_sign_message(p->s->d->dkim, p->msg, p->len, p->s->sender,
	                               time_now_ms() / 1000, &p->signatures, p->why, sizeof p->why);
}

/* The signatures go on top of the message before the commit, so a retry
 * sends what was signed and never signs again. A message that should be
 * signed and cannot be is not queued unsigned: 451, the client retries. */
static void sign_done(void *arg)
{
	struct pending *p = arg;
	struct session *s = p->s;
	if (s->orphaned || p->nsigned < 0 || p->signatures.failed) {
		char id[17];
		spool_id_format(s->qid, id);
		if (!s->orphaned) {
			log_event(LOG_ERROR, "message_not_signed", "qid=%s client=%s reason=%s", id,
			          s->ip, log_quote(p->nsigned < 0 ? p->why : "out of memory"));
			metric_add(m_rejections, "dkim_error", 1);
		}
		buf_free(&p->signatures);
		free(p);
		if (s->orphaned)
			return session_free(s);
		reply(s, 451, "4.3.0", "temporary failure, message not signed");
		transaction_reset(s);
		s->state = ST_COMMAND;
		if (s->d->draining)
			return reply_and_close(s, 421, "4.3.2", "shutting down");
		return session_process(s);
	}
	if (p->signatures.len > 0) {
		evbuffer_prepend(s->body, p->signatures.data, p->signatures.len);
		body_account(s);
	}
	buf_free(&p->signatures);
	message_commit(s, p);
}

/* The body is complete: check it, sign it (on the worker, when [dkim] has
 * keys), then hand it to the writer. The 250 waits for the commit. */
static void message_finish(struct session *s)
{
	if (!content_acceptable(s)) {
		transaction_reset(s);
		/* reject() closes the session at max_errors: keep it closing */
		if (s->state != ST_CLOSING)
			s->state = ST_COMMAND;
		return;
	}
	add_received(s);
	struct pending *p = calloc(1, sizeof *p);
	if (p == NULL)
		abort();
	p->s = s;
	if (dkim_signer_keys(s->d->dkim, NULL, NULL, NULL) == 0)
		return message_commit(s, p);
	p->len = evbuffer_get_length(s->body);
	p->msg = (const char *)evbuffer_pullup(s->body, -1);
	s->state = ST_SIGNING;
	worker_submit(s->d->worker, sign_run, sign_done, p);
}

/* Past max_pending_bytes a message's octets are read and dropped. */
static void body_check_storage(struct session *s)
{
	body_account(s);
	if (!s->storage_full && storage_exhausted(s)) {
		s->storage_full = true;
		evbuffer_drain(s->body, evbuffer_get_length(s->body));
		body_account(s);
	}
	if (s->storage_full)
		evbuffer_drain(s->body, evbuffer_get_length(s->body));
}

static bool data_feed(struct session *s, struct evbuffer *in)
{
	bool done = smtp_data_reader_feed(&s->reader, in, s->body);
	body_check_storage(s);
	if (!done)
		return false;
	message_finish(s);
	return true;
}

static void bdat_chunk_done(struct session *s)
{
	s->state = ST_COMMAND;
	if (s->bdat_discard)
		return reject(s, "sequence", 503, "5.5.1", "need MAIL and RCPT before BDAT");
	if (s->bdat_last)
		return message_finish(s);
	if (s->reader.flags & SMTP_DATA_TOO_BIG) { /* fail early, RFC 3030 §2 */
		transaction_reset(s);
		return reject(s, "size", 552, "5.3.4", "message size exceeds fixed maximum");
	}
	reply(s, 250, "2.0.0", "chunk received");
}

static bool bdat_feed(struct session *s, struct evbuffer *in)
{
	size_t avail = evbuffer_get_length(in);
	size_t take = s->bdat_remaining < avail ? (size_t)s->bdat_remaining : avail;
	if (s->bdat_discard || (s->reader.flags & SMTP_DATA_TOO_BIG)) {
		evbuffer_drain(in, take);
		s->reader.flags |= s->bdat_discard ? 0 : SMTP_DATA_TOO_BIG;
	} else {
		const unsigned char *p = evbuffer_pullup(in, (ssize_t)take);
		smtp_data_scan(&s->reader, p, take);
		if (s->reader.flags & SMTP_DATA_TOO_BIG)
			evbuffer_drain(in, take);
		else
			evbuffer_remove_buffer(in, s->body, take);
	}
	s->bdat_remaining -= take;
	body_check_storage(s);
	if (s->bdat_remaining > 0)
		return false;
	bdat_chunk_done(s);
	return true;
}

/* ---- the session's input loop -------------------------------------------- */

static bool output_backlogged(struct session *s)
{
	return evbuffer_get_length(bufferevent_get_output(s->bev)) > OUTPUT_BACKLOG_MAX;
}

/* Runs every complete command or data chunk buffered; pipelined commands
 * are answered together, in one write (session_flush). */
static void session_run(struct session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	while (evbuffer_get_length(in) > 0) {
		if (s->state == ST_SIGNING || s->state == ST_COMMIT || s->state == ST_AUTH_CHECK ||
		    s->state == ST_TLS_HANDSHAKE || s->state == ST_CLOSING)
			return;
		if (output_backlogged(s)) {
			/* A client that does not read its replies: stop reading
			 * its commands until the output drains. */
			s->reading_paused = true;
			bufferevent_disable(s->bev, EV_READ);
			return;
		}
		bool progressed = s->state == ST_DATA   ? data_feed(s, in)
		                  : s->state == ST_BDAT ? bdat_feed(s, in)
		                                        : line_feed(s, in);
		if (!progressed)
			return;
	}
}

static void session_process(struct session *s)
{
	session_run(s);
	session_flush(s);
}

static void on_read(struct bufferevent *bev, void *arg)
{
	session_process(arg);
}

/* With TLS, "output drained" means the filter handed the records to the
 * socket's bufferevent, not that they left: wait for those too, briefly, so
 * that the final reply (221, 421) reaches the client. */
static void on_linger(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;
	struct bufferevent *under = bufferevent_get_underlying(s->bev);
	if (under && evbuffer_get_length(bufferevent_get_output(under)) > 0 &&
	    time_mono_us() < s->linger_until_us) {
		struct timeval tv = {0, 10000};
		evtimer_add(s->linger, &tv);
		return;
	}
	session_close(s);
}

static void close_when_sent(struct session *s)
{
	if (!s->tls)
		return session_close(s);
	if (s->linger == NULL) {
		s->linger = evtimer_new(s->d->base, on_linger, s);
		s->linger_until_us = time_mono_us() + 2000000;
	}
	on_linger(-1, 0, s);
}

static void on_write(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;
	if (s->state == ST_CLOSING)
		return close_when_sent(s);
	if (plain_socket(s)) /* drained: back to writing directly */
		bufferevent_disable(s->bev, EV_WRITE);
	if (s->reading_paused) {
		s->reading_paused = false;
		bufferevent_enable(s->bev, EV_READ);
		session_process(s);
	}
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct session *s = arg;
	if (what & BEV_EVENT_CONNECTED) { /* TLS handshake done */
		s->tls = true;
		tls_describe(bufferevent_openssl_get_ssl(bev), s->tls_desc, sizeof s->tls_desc);
		log_event(LOG_DEBUG, "smtp_tls", "client=%s tls=%s", s->ip, log_quote(s->tls_desc));
		s->state = ST_COMMAND;
		session_process(s);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		metric_add(m_rejections, "idle_timeout", 1);
		if (s->state != ST_CLOSING && !session_busy(s)) {
			/* the write timeout stays: a client that reads nothing
			 * is dropped at the next expiry */
			reply_and_close(s, 421, "4.4.2", "idle timeout, closing connection");
			return;
		}
	}
	session_close(s); /* EOF, error, failed handshake */
}

static void session_setup_bev(struct session *s)
{
	int64_t ms = s->d->conf->idle_timeout_ms;
	struct timeval idle = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
	bufferevent_setcb(s->bev, on_read, on_write, on_event, s);
	bufferevent_set_timeouts(s->bev, &idle, &idle);
	bufferevent_setwatermark(s->bev, EV_READ, 0, INPUT_READ_AHEAD);
	bufferevent_enable(s->bev, plain_socket(s) ? EV_READ : EV_READ | EV_WRITE);
}

/* RFC 3207 §4.2: whatever the client sent after STARTTLS and before the
 * handshake is discarded; the session starts over (EHLO, no AUTH state). */
static void tls_start(struct session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	size_t injected = evbuffer_get_length(in);
	if (injected > 0) {
		log_event(LOG_WARN, "smtp_starttls_injection", "client=%s octets=%zu", s->ip,
		          injected);
		evbuffer_drain(in, injected);
	}
	session_reset(s);
	free(s->auth_user);
	s->auth_user = NULL;
	session_flush(s); /* the 220 leaves before the handshake */
	SSL *ssl = SSL_new(s->d->tls);
	struct bufferevent *tb = bufferevent_openssl_filter_new(
	    s->d->base, s->bev, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (tb == NULL) {
		SSL_free(ssl);
		return session_close(s);
	}
	s->bev = tb;
	s->state = ST_TLS_HANDSHAKE;
	session_setup_bev(s);
}

/* ---- sessions and connection limits ------------------------------------ */

static struct ip_count *ip_slot(struct smtpd *d, const char *ip, bool create)
{
	for (size_t i = 0; i < d->nips; i++)
		if (strcmp(d->ips[i].ip, ip) == 0)
			return &d->ips[i];
	if (!create)
		return NULL;
	d->ips = realloc(d->ips, (d->nips + 1) * sizeof *d->ips);
	if (d->ips == NULL)
		abort();
	struct ip_count *c = &d->ips[d->nips++];
	snprintf(c->ip, sizeof c->ip, "%s", ip);
	c->count = 0;
	return c;
}

static void ip_release(struct smtpd *d, const char *ip)
{
	struct ip_count *c = ip_slot(d, ip, false);
	if (c && --c->count == 0)
		*c = d->ips[--d->nips]; /* swap-remove keeps the table small */
}

static void session_free(struct session *s)
{
	struct smtpd *d = s->d;
	if (s->prev)
		s->prev->next = s->next;
	else
		d->sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	d->nsessions--;
	metric_set(m_sessions, NULL, (double)d->nsessions);
	ip_release(d, s->ip);
	transaction_reset(s);
	if (s->body)
		evbuffer_free(s->body);
	s->body = NULL;
	body_account(s);
	free(s->auth_user);
	free(s);
}

static void session_close(struct session *s)
{
	if (s->linger) {
		event_free(s->linger);
		s->linger = NULL;
	}
	if (s->bev) {
		bufferevent_free(s->bev);
		s->bev = NULL;
	}
	if (session_busy(s)) { /* a job holds s */
		s->orphaned = true;
		return;
	}
	session_free(s);
}

static void address_string(const struct sockaddr *sa, char *buf, size_t n, bool *loopback)
{
	*loopback = false;
	buf[0] = '\0';
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;
		inet_ntop(AF_INET, &in->sin_addr, buf, (socklen_t)n);
		*loopback = (ntohl(in->sin_addr.s_addr) >> 24) == 127;
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, buf, (socklen_t)n);
		*loopback = IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
			*loopback = in6->sin6_addr.s6_addr[12] == 127;
	}
}

/* Refuses a connection over a limit with 421 (RFC 5321 §3.8), written
 * directly: no session is made for it. */
static void refuse(evutil_socket_t fd, const char *reason)
{
	metric_add(m_connections, reason, 1);
	static const char msg[] = "421 4.7.0 too many connections, try again later\r\n";
	ssize_t w = send(fd, msg, sizeof msg - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
	(void)w;
	evutil_closesocket(fd);
}

/* The local socket: the kernel says who is connecting (SO_PEERCRED). */
static bool local_peer(evutil_socket_t fd, const struct sockaddr *sa, char *ip, size_t n)
{
	struct ucred cred;
	socklen_t len = sizeof cred;
	if (sa->sa_family != AF_UNIX)
		return false;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
		snprintf(ip, n, "local:uid=%u", (unsigned)cred.uid);
	else
		snprintf(ip, n, "local");
	return true;
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
                      void *arg)
{
	struct smtpd *d = arg;
	char ip[INET6_ADDRSTRLEN];
	bool loopback = false, local = local_peer(fd, sa, ip, sizeof ip);
	if (!local)
		address_string(sa, ip, sizeof ip, &loopback);
	loopback = loopback || local; /* a local user may submit like a loopback client */
	if (d->nsessions >= d->conf->max_connections)
		return refuse(fd, "refused_total_limit");
	struct ip_count *c = ip_slot(d, ip, true);
	if (c->count >= d->conf->max_connections_per_ip) {
		if (c->count == 0)
			ip_release(d, ip);
		return refuse(fd, "refused_ip_limit");
	}
	c->count++;
	struct session *s = calloc(1, sizeof *s);
	if (s == NULL)
		abort();
	s->d = d;
	memcpy(s->ip, ip, sizeof s->ip);
	s->loopback = loopback;
	s->local = local;
	s->bev = bufferevent_socket_new(d->base, fd, BEV_OPT_CLOSE_ON_FREE);
	s->next = d->sessions;
	if (d->sessions)
		d->sessions->prev = s;
	d->sessions = s;
	d->nsessions++;
	metric_set(m_sessions, NULL, (double)d->nsessions);
	metric_add(m_connections, "accepted", 1);
	session_setup_bev(s);
	reply(s, 220, NULL, "%s ESMTP outpost", d->conf->hostname);
	session_flush(s);
}

/* ---- listeners ---------------------------------------------------------- */

static void add_listener(struct smtpd *d, struct evconnlistener *el, const char *what)
{
	d->listeners = realloc(d->listeners, (d->nlisteners + 1) * sizeof *d->listeners);
	if (d->listeners == NULL)
		abort();
	d->listeners[d->nlisteners++] = el;
	log_event(LOG_INFO, "listening", "service=submission address=%s", log_quote(what));
}

static int listen_tcp(struct smtpd *d, const char *spec, char *why, size_t whylen)
{
	struct listen_addr la;
	struct sockaddr_storage ss;
	socklen_t len;
	char perr[256];
	if (listen_addr_parse(spec, &la, perr, sizeof perr) < 0 || la.is_unix ||
	    !listen_addr_sockaddr(&la, &ss, &len)) {
		snprintf(why, whylen, "submission listen \"%s\": expected an address:port", spec);
		return -1;
	}
	struct evconnlistener *el = evconnlistener_new_bind(
	    d->base, on_accept, d,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, 1024,
	    (struct sockaddr *)&ss, (int)len);
	if (el == NULL) {
		snprintf(why, whylen, "submission listen %s: %s", spec, strerror(errno));
		return -1;
	}
	add_listener(d, el, spec);
	return 0;
}

/* Any local user may connect (mode 0666): the listener's own limits and
 * checks apply, the kernel names the user, and nothing else of the spool
 * is reachable this way. */
static int listen_local(struct smtpd *d, char *why, size_t whylen)
{
	char path[4096], err[300];
	conf_path(d->conf, d->conf->local_socket, path, sizeof path);
	if (path[0] == '\0')
		return 0;
	int fd = listen_unix_socket(path, 0666, err, sizeof err);
	if (fd < 0) {
		snprintf(why, whylen, "submission local_socket: %s", err);
		return -1;
	}
	struct evconnlistener *el = evconnlistener_new(
	    d->base, on_accept, d, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 128, fd);
	if (el == NULL) {
		close(fd);
		snprintf(why, whylen, "submission local_socket %s: cannot listen", path);
		return -1;
	}
	d->local_path = strdup(path);
	add_listener(d, el, path);
	return 0;
}

static int listen_all(struct smtpd *d, char *why, size_t whylen)
{
	const struct strlist *l = &d->conf->submission_listen;
	for (size_t i = 0; i < l->len; i++)
		if (listen_tcp(d, l->items[i], why, whylen) < 0)
			return -1;
	return listen_local(d, why, whylen);
}

static int load_tls_and_users(struct smtpd *d, char *why, size_t whylen)
{
	const struct conf *c = d->conf;
	if (c->tls_cert[0] || c->tls_key[0]) {
		d->tls = tls_server_ctx_new(c->tls_cert, c->tls_key, why, whylen);
		if (d->tls == NULL)
			return -1;
	}
	if (c->users_file[0]) {
		d->users = users_load(c->users_file, why, whylen);
		if (d->users == NULL)
			return -1;
	}
	return 0;
}

struct smtpd *smtpd_start(struct event_base *base, const struct conf *conf,
                          struct spool_writer *writer, struct worker *worker,
                          const struct dkim_signer *dkim, smtpd_queued_fn queued, void *arg,
                          char *why, size_t whylen)
{
	metrics_init();
	struct smtpd *d = calloc(1, sizeof *d);
	if (d == NULL)
		abort();
	d->base = base;
	d->conf = conf;
	d->writer = writer;
	d->worker = worker;
	d->dkim = dkim;
	d->queued = queued;
	d->queued_arg = arg;
	d->line = malloc((size_t)conf->max_line_length + 3);
	if (d->line == NULL)
		abort();
	if (load_tls_and_users(d, why, whylen) < 0 || listen_all(d, why, whylen) < 0) {
		smtpd_stop(d);
		return NULL;
	}
	return d;
}

static void close_listeners(struct smtpd *d)
{
	for (size_t i = 0; i < d->nlisteners; i++)
		evconnlistener_free(d->listeners[i]);
	d->nlisteners = 0;
}

void smtpd_drain(struct smtpd *d)
{
	if (d == NULL)
		return;
	close_listeners(d);
	d->draining = true;
	for (struct session *s = d->sessions, *next; s; s = next) {
		next = s->next;
		if (session_busy(s) || s->state == ST_CLOSING)
			continue;
		if (s->state == ST_TLS_HANDSHAKE) {
			session_close(s);
			continue;
		}
		reply_and_close(s, 421, "4.3.2", "shutting down");
	}
}

size_t smtpd_sessions(const struct smtpd *d)
{
	return d ? (size_t)d->nsessions : 0;
}

void smtpd_stop(struct smtpd *d)
{
	if (d == NULL)
		return;
	close_listeners(d);
	free(d->listeners);
	if (d->local_path)
		unlink(d->local_path);
	free(d->local_path);
	while (d->sessions) {
		d->sessions->state = ST_CLOSING; /* the writer has reported every commit */
		session_close(d->sessions);
	}
	SSL_CTX_free(d->tls);
	users_free(d->users);
	free(d->ips);
	free(d->line);
	free(d);
}
