/* send.c - the sendmail-compatible way in. */
#include "submit/send.h"

#include "dkim/dkim.h"
#include "smtp/address.h"
#include "smtp/data.h"
#include "smtp/headers.h"
#include "smtp/reply.h"
#include "spool/spool.h"
#include "submit/checks.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/timeutil.h"

#include <errno.h>
#include <event2/buffer.h>
#include <getopt.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define REPLY_WAIT_S 600 /* the 250 after the data waits for a commit */
#define SEND_UNKNOWN 75  /* sysexits EX_TEMPFAIL: sent, but no answer came */
#define DAEMON_START_WAIT_MS 10000 /* a daemon holding the spool's lock is starting */

struct send_opts {
	const char *sender;
	bool from_headers; /* -t */
	bool ignore_dots;  /* -i / -oi */
	bool requiretls;
	struct strlist rcpts;
};

static int usage(void)
{
	fprintf(stderr, "usage: outpost send [-c FILE] [-f SENDER] [-t] [-i] [--requiretls] "
	                "[RCPT...] < message\n");
	return 2;
}

/* sendmail's options; the ones that make no sense here are accepted and
 * ignored, as other MTAs' sendmail commands do (-oem, -odi, -F, -v). */
static int parse_opts(int argc, char **argv, struct send_opts *o)
{
	static const struct option longopts[] = {{"requiretls", no_argument, NULL, 'R'},
	                                         {NULL, 0, NULL, 0}};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "f:r:tio:F:B:N:vUX:", longopts, NULL)) != -1) {
		switch (c) {
		case 'f':
		case 'r':
			o->sender = optarg;
			break;
		case 't':
			o->from_headers = true;
			break;
		case 'i':
			o->ignore_dots = true;
			break;
		case 'o':
			if (strcmp(optarg, "i") == 0)
				o->ignore_dots = true;
			break;
		case 'R':
			o->requiretls = true;
			break;
		case 'F':
		case 'B':
		case 'N':
		case 'v':
		case 'U':
		case 'X':
			break;
		default:
			return -1;
		}
	}
	for (int i = optind; i < argc; i++) /* "a@b, c@d" is one argument to some callers */
		for (char *tok = strtok(argv[i], ", "); tok; tok = strtok(NULL, ", "))
			strlist_add(&o->rcpts, tok);
	return 0;
}

/* Reads stdin, turning LF line ends into CRLF; without -i a line with a
 * single dot ends the message (sendmail semantics). At most max octets are
 * kept (the rest is read and counted, so that the size check refuses it). */
static int read_message(FILE *in, bool ignore_dots, size_t max, struct buf *msg, bool *too_big)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	while ((n = getline(&line, &cap, in)) > 0) {
		size_t len = (size_t)n;
		if (line[len - 1] == '\n')
			len--;
		if (len > 0 && line[len - 1] == '\r')
			len--;
		if (!ignore_dots && len == 1 && line[0] == '.')
			break;
		if (msg->len + len + 2 > max) {
			*too_big = true;
			continue;
		}
		buf_add(msg, line, len);
		buf_add(msg, "\r\n", 2);
	}
	free(line);
	return ferror(in) || msg->failed ? -1 : 0;
}

static bool has_non_ascii(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] >= 0x80)
			return true;
	return false;
}

static void collect_rcpt(const char *addr, size_t len, void *arg)
{
	char buf[SMTP_PATH_MAX + 1];
	if (len < sizeof buf) {
		memcpy(buf, addr, len);
		buf[len] = '\0';
		strlist_add(arg, buf);
	}
}

/* Checks every address; returns -1 with a message on the first bad one. */
static int validate(const struct strlist *rcpts, const char *sender, bool utf8)
{
	struct smtp_addr a;
	struct smtp_error e;
	unsigned flags = utf8 ? SMTP_PATH_UTF8 : 0;
	if (sender[0] && !smtp_mailbox_parse(sender, strlen(sender), flags, &a, &e)) {
		fprintf(stderr, "outpost: bad sender <%s>: %s\n", sender, e.reason);
		return -1;
	}
	for (size_t i = 0; i < rcpts->len; i++) {
		const char *r = rcpts->items[i];
		if (!smtp_mailbox_parse(r, strlen(r), flags, &a, &e) || a.domain[0] == '\0') {
			fprintf(stderr, "outpost: bad recipient <%s>: %s\n", r,
			        a.domain[0] ? e.reason : "no domain");
			return -1;
		}
	}
	return 0;
}

/* The fields RFC 5322 requires, when the local program left them out
 * (RFC 6409 §8.1-8.3 lets a submission service add them). */
static void add_headers(struct buf *out, const struct buf *msg, const struct conf *conf,
                        const char *sender, bool trace)
{
	char date[48], qid[17];
	time_format_rfc5322(time_now_ms(), date, sizeof date);
	spool_id_format(spool_new_id(), qid);
	if (trace) /* the daemon adds its own; without it, this is the first hop */
		buf_fmt(out, "Received: by %s (outpost, from uid %u)\r\n\tid %s; %s\r\n",
		        conf->hostname, (unsigned)getuid(), qid, date);
	if (!msg_has_header(msg->data, msg->len, "Date"))
		buf_fmt(out, "Date: %s\r\n", date);
	if (!msg_has_header(msg->data, msg->len, "Message-ID"))
		buf_fmt(out, "Message-ID: <%s@%s>\r\n", qid, conf->hostname);
	if (!msg_has_header(msg->data, msg->len, "From") && sender[0])
		buf_fmt(out, "From: <%s>\r\n", sender);
	/* A message without any header section still needs the empty line. */
	if (msg_header_end(msg->data, msg->len) == 0 && msg->len > 0 &&
	    !(msg->len >= 2 && memcmp(msg->data, "\r\n", 2) == 0))
		buf_str(out, "\r\n");
	buf_add(out, msg->data, msg->len);
}

static void default_sender(const struct conf *conf, char *buf, size_t n)
{
	struct passwd *pw = getpwuid(getuid());
	snprintf(buf, n, "%s@%s", pw ? pw->pw_name : "root", conf->hostname);
}

/* What is being sent, once read and checked. */
struct outgoing {
	const char *sender;
	const struct strlist *rcpts;
	struct buf msg; /* CRLF lines, headers completed */
	bool utf8, requiretls, too_big;
};

/* ---- through the daemon's local socket ---------------------------------- */

struct session {
	int fd;
	struct evbuffer *in;
	struct smtp_reply_parser parser;
};

/* The next reply; false with why on a broken connection. */
static bool read_reply(struct session *s, char *why, size_t whylen)
{
	smtp_reply_parser_init(&s->parser);
	for (;;) {
		size_t eol;
		struct evbuffer_ptr p = evbuffer_search_eol(s->in, NULL, &eol, EVBUFFER_EOL_CRLF);
		if (p.pos >= 0 && (size_t)p.pos <= SMTP_REPLY_MAX_LINE) {
			char line[SMTP_REPLY_MAX_LINE + 1];
			evbuffer_remove(s->in, line, (size_t)p.pos);
			evbuffer_drain(s->in, eol);
			enum smtp_reply_status st =
			    smtp_reply_parser_feed(&s->parser, line, (size_t)p.pos);
			if (st == SMTP_REPLY_DONE)
				return true;
			if (st == SMTP_REPLY_BAD)
				return snprintf(why, whylen, "bad reply: %s", s->parser.error),
				       false;
			continue;
		}
		if (evbuffer_get_length(s->in) > SMTP_REPLY_MAX_LINE)
			return snprintf(why, whylen, "reply line too long"), false;
		int n = evbuffer_read(s->in, s->fd, 4096);
		if (n <= 0)
			return snprintf(why, whylen, "the daemon closed the connection%s%s",
			                n < 0 ? ": " : "", n < 0 ? strerror(errno) : ""),
			       false;
	}
}

static bool write_all(struct session *s, struct evbuffer *out, char *why, size_t whylen)
{
	while (evbuffer_get_length(out) > 0)
		if (evbuffer_write(out, s->fd) < 0)
			return snprintf(why, whylen, "cannot write to the daemon: %s",
			                strerror(errno)),
			       false;
	return true;
}

/* Sends a command and expects a reply of class want; otherwise why holds
 * the daemon's refusal. */
static bool command(struct session *s, int want, char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static bool command(struct session *s, int want, char *why, size_t whylen, const char *fmt, ...)
{
	struct evbuffer *out = evbuffer_new();
	va_list ap;
	va_start(ap, fmt);
	evbuffer_add_vprintf(out, fmt, ap);
	va_end(ap);
	evbuffer_add(out, "\r\n", 2);
	bool ok = write_all(s, out, why, whylen) && read_reply(s, why, whylen);
	evbuffer_free(out);
	if (ok && smtp_reply_class(s->parser.reply.code) != want) {
		snprintf(why, whylen, "%d %s%s%.400s", s->parser.reply.code,
		         s->parser.reply.enhanced, s->parser.reply.enhanced[0] ? " " : "",
		         s->parser.reply.text);
		return false;
	}
	return ok;
}

/* Returns false with why; *unknown is set when the message was all sent
 * and the reply never came: it may have been committed. */
static bool transaction(struct session *s, const struct outgoing *o, bool *unknown, char *why,
                        size_t whylen)
{
	if (!command(s, 2, why, whylen, "EHLO localhost") ||
	    !command(s, 2, why, whylen, "MAIL FROM:<%s>%s%s", o->sender, o->utf8 ? " SMTPUTF8" : "",
	             o->requiretls ? " REQUIRETLS" : ""))
		return false;
	for (size_t i = 0; i < o->rcpts->len; i++)
		if (!command(s, 2, why, whylen, "RCPT TO:<%s>", o->rcpts->items[i]))
			return false;
	if (!command(s, 3, why, whylen, "DATA"))
		return false;
	struct evbuffer *out = evbuffer_new();
	smtp_dot_stuff((const unsigned char *)o->msg.data, o->msg.len, out);
	bool ok = write_all(s, out, why, whylen);
	evbuffer_free(out);
	if (ok && !read_reply(s, why, whylen)) {
		*unknown = true;
		return false;
	}
	if (ok && smtp_reply_class(s->parser.reply.code) != 2) {
		snprintf(why, whylen, "%d %s%s%.400s", s->parser.reply.code,
		         s->parser.reply.enhanced, s->parser.reply.enhanced[0] ? " " : "",
		         s->parser.reply.text);
		return false;
	}
	return ok;
}

/* Returns 0 when queued, 1 when the daemon refused or broke off before the
 * message was sent, SEND_UNKNOWN when it went away after (the message may
 * be queued), -1 when no daemon listens (the reason in why). */
static int submit_via_daemon(const struct conf *conf, const struct outgoing *o, char *why,
                             size_t whylen)
{
	char path[4096];
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	conf_path(conf, conf->local_socket, path, sizeof path);
	if (path[0] == '\0')
		return snprintf(why, whylen, "no [submission] local_socket"), -1;
	if (strlen(path) >= sizeof sa.sun_path)
		return snprintf(why, whylen, "%.200s: path too long for a socket", path), -1;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	/* A daemon that dies between its 250 and our QUIT must not turn a
	 * queued message into a death by SIGPIPE, which callers read as a
	 * failure (test_durability.sh caught it: "send exit -13"). */
	signal(SIGPIPE, SIG_IGN);
	struct session s = {.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
	if (s.fd < 0 || connect(s.fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		snprintf(why, whylen, "%s: %s", path, strerror(errno));
		if (s.fd >= 0)
			close(s.fd);
		return -1;
	}
	struct timeval tv = {.tv_sec = REPLY_WAIT_S};
	setsockopt(s.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(s.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	s.in = evbuffer_new();
	bool unknown = false;
	bool ok = read_reply(&s, why, whylen) && smtp_reply_class(s.parser.reply.code) == 2 &&
	          transaction(&s, o, &unknown, why, whylen);
	if (ok) {
		struct evbuffer *out = evbuffer_new();
		evbuffer_add(out, "QUIT\r\n", 6);
		char ignored[64];
		write_all(&s, out, ignored, sizeof ignored);
		evbuffer_free(out);
	}
	evbuffer_free(s.in);
	close(s.fd);
	return ok ? 0 : unknown ? SEND_UNKNOWN : 1;
}

/* ---- straight into the spool (no daemon running) ------------------------- */

static unsigned message_flags(const struct outgoing *o, unsigned data_flags)
{
	unsigned flags = 0;
	if (data_flags & SMTP_DATA_8BIT)
		flags |= SPOOL_F_8BIT;
	if (o->utf8 || has_non_ascii(o->msg.data, msg_header_end(o->msg.data, o->msg.len)))
		flags |= SPOOL_F_SMTPUTF8; /* UTF-8 in addresses or headers: RFC 6532 */
	if (o->requiretls)
		flags |= SPOOL_F_REQUIRETLS;
	else if (msg_tls_required_no(o->msg.data, o->msg.len))
		flags |= SPOOL_F_TLS_REQUIRED_NO;
	return flags;
}

/* The listener's checks (checks.h), so a message refused there is
 * refused here too. */
static int check_like_the_listener(const struct conf *conf, const struct outgoing *o,
                                   unsigned *data_flags)
{
	struct smtp_data_reader r;
	struct submit_refusal refusal;
	smtp_data_reader_init(&r, (size_t)conf->max_message_size, (size_t)conf->max_line_length);
	smtp_data_scan(&r, (const unsigned char *)o->msg.data, o->msg.len);
	if (o->too_big)
		r.flags |= SMTP_DATA_TOO_BIG;
	*data_flags = r.flags;
	if (submit_check_content(r.flags, o->msg.data, o->msg.len, &refusal))
		return 0;
	fprintf(stderr, "outpost: message not queued: %d %s %s\n", refusal.code, refusal.enhanced,
	        refusal.text);
	return -1;
}

/* The daemon would sign the message (smtpd.c): so does this way in, with
 * the same keys and the same function, before the commit. A key that
 * cannot be loaded, or a signature that fails, keeps the message out of
 * the queue rather than sending it unsigned. Returns 0 (o->msg now starts
 * with the DKIM-Signature fields, if any), or 1 with why. */
static int sign_for_queue(const struct conf *conf, struct outgoing *o, char *why, size_t whylen)
{
	char err[512];
	struct dkim_signer *dkim = dkim_signer_load(conf, err, sizeof err);
	if (dkim == NULL)
		return snprintf(why, whylen, "%s", err), 1;
	struct buf signed_msg = {0};
	int n = dkim_sign_message(dkim, o->msg.data, o->msg.len, o->sender, time_now_ms() / 1000,
	                          &signed_msg, err, sizeof err);
	dkim_signer_free(dkim);
	if (n < 0 || signed_msg.failed) {
		buf_free(&signed_msg);
		return snprintf(why, whylen, "DKIM signing: %s", n < 0 ? err : "out of memory"), 1;
	}
	if (n > 0) {
		buf_add(&signed_msg, o->msg.data, o->msg.len);
		buf_free(&o->msg);
		o->msg = signed_msg;
	} else {
		buf_free(&signed_msg);
	}
	return o->msg.failed ? (snprintf(why, whylen, "out of memory"), 1) : 0;
}

/* Returns 0, or 1 with why filled. */
static int queue_directly(const struct conf *conf, struct outgoing *o, unsigned data_flags,
                          char *why, size_t whylen)
{
	if (sign_for_queue(conf, o, why, whylen) != 0)
		return 1;
	struct spool *s = spool_open(conf->data_dir, why, whylen);
	if (s == NULL)
		return 1;
	char client[64];
	snprintf(client, sizeof client, "local:uid=%u", (unsigned)getuid());
	struct spool_message_in m = {
	    .id = spool_new_id(),
	    .sender = o->sender,
	    .rcpts = (const char *const *)o->rcpts->items,
	    .nrcpt = o->rcpts->len,
	    .flags = message_flags(o, data_flags),
	    .client = client,
	    .queued_ms = time_now_ms(),
	    .body = o->msg.data,
	    .body_len = o->msg.len,
	};
	int rc = spool_begin(s, why, whylen);
	if (rc == 0)
		rc = spool_insert_message(s, &m, why, whylen);
	if (rc == 0)
		rc = spool_commit(s, why, whylen); /* fsynced: now it may exit 0 */
	if (rc != 0)
		spool_rollback(s);
	spool_close(s);
	return rc == 0 ? 0 : 1;
}

/* Only the spool's owner may write it (its files are 0600): everyone else
 * goes through the daemon, which must then be running. */
static bool may_write_spool(const struct conf *conf)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/spool.db", conf->data_dir);
	return access(path, W_OK) == 0 || (errno == ENOENT && access(conf->data_dir, W_OK) == 0);
}

/* No daemon answered: write the spool directly, holding the lock shared
 * (spool_lock) so that no daemon writes at the same time. A daemon that
 * holds it is starting up (its socket is not there yet): wait for it
 * instead, and hand the message over. */
static int queue_without_daemon(const struct conf *conf, struct outgoing *o, const struct buf *raw,
                                const char *sender, unsigned data_flags, char *why,
                                size_t whylen)
{
	for (int waited = 0; waited < DAEMON_START_WAIT_MS; waited += 100) {
		int fd = spool_lock(conf->data_dir, false, 0);
		if (fd >= 0) {
			/* no daemon: this is the first hop, so the trace is ours */
			buf_reset(&o->msg);
			add_headers(&o->msg, raw, conf, sender, true);
			int rc = queue_directly(conf, o, data_flags, why, whylen);
			close(fd);
			return rc;
		}
		if (errno != EWOULDBLOCK)
			return snprintf(why, whylen, "the spool's lock: %s", strerror(errno)), -1;
		usleep(100000);
		int rc = submit_via_daemon(conf, o, why, whylen);
		if (rc >= 0)
			return rc;
	}
	return -1;
}

/* ---- the command ------------------------------------------------------------- */

static int prepare(int argc, char **argv, const struct conf *conf, FILE *in, struct send_opts *opts,
                   struct outgoing *o, char *sender, size_t sender_len, struct buf *raw)
{
	if (parse_opts(argc, argv, opts) < 0)
		return usage();
	if (read_message(in, opts->ignore_dots, (size_t)conf->max_message_size + 1, raw,
	                 &o->too_big) < 0) {
		fprintf(stderr, "outpost: cannot read the message from stdin\n");
		return 1;
	}
	if (opts->from_headers) {
		char why[128] = "";
		if (msg_header_recipients(raw->data ? raw->data : "", raw->len, collect_rcpt,
		                          &opts->rcpts, why, sizeof why) < 0) {
			fprintf(stderr, "outpost: cannot read recipients from headers: %s\n", why);
			return 1;
		}
		size_t stripped_len;
		char *stripped = msg_strip_bcc(raw->data ? raw->data : "", raw->len, &stripped_len);
		buf_reset(raw);
		buf_add(raw, stripped, stripped_len);
		free(stripped);
	}
	if (opts->rcpts.len == 0) {
		fprintf(stderr, "outpost: no recipients\n");
		return usage();
	}
	if (opts->sender)
		snprintf(sender, sender_len, "%s", opts->sender);
	else
		default_sender(conf, sender, sender_len);
	o->sender = sender;
	o->rcpts = &opts->rcpts;
	o->requiretls = opts->requiretls;
	o->utf8 = has_non_ascii(sender, strlen(sender));
	for (size_t i = 0; i < opts->rcpts.len; i++)
		o->utf8 |= has_non_ascii(opts->rcpts.items[i], strlen(opts->rcpts.items[i]));
	return validate(&opts->rcpts, sender, o->utf8) < 0 ? 1 : 0;
}

static void report(int rc, const char *why)
{
	if (rc == 1)
		fprintf(stderr, "outpost: message not queued: %s\n", why);
	else if (rc == SEND_UNKNOWN)
		fprintf(stderr,
		        "outpost: the message was sent but the daemon went away before answering "
		        "(%s): it may be queued; sending it again may deliver it twice\n",
		        why);
	else if (rc < 0)
		fprintf(stderr,
		        "outpost: the daemon is not running (%s) and uid %u may not write the spool\n",
		        why, (unsigned)getuid());
}

int send_main(int argc, char **argv, const struct conf *conf, FILE *in)
{
	struct send_opts opts = {0};
	struct outgoing o = {0};
	struct buf raw = {0};
	char sender[SMTP_PATH_MAX + 1], why[600];
	int rc = prepare(argc, argv, conf, in, &opts, &o, sender, sizeof sender, &raw);
	unsigned data_flags = 0;
	if (rc == 0) {
		/* the listener's checks here too: the daemon would refuse the same
		 * (the dialogue below would otherwise turn a bare CR into CRLF) */
		add_headers(&o.msg, &raw, conf, sender, false);
		if (check_like_the_listener(conf, &o, &data_flags) < 0)
			rc = 1;
	}
	if (rc == 0) {
		rc = submit_via_daemon(conf, &o, why, sizeof why);
		if (rc < 0 && may_write_spool(conf))
			rc = queue_without_daemon(conf, &o, &raw, sender, data_flags, why,
			                          sizeof why);
		report(rc, why);
	}
	strlist_clear(&opts.rcpts);
	buf_free(&raw);
	buf_free(&o.msg);
	return rc < 0 ? 1 : rc;
}
