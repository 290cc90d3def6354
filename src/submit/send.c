/* send.c - the sendmail-compatible way in. */
#include "submit/send.h"

#include "smtp/address.h"
#include "smtp/headers.h"
#include "spool/spool.h"
#include "util/log.h"
#include "util/timeutil.h"

#include <getopt.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct send_opts {
	const char *sender;
	bool from_headers; /* -t */
	bool ignore_dots;  /* -i / -oi */
	bool requiretls;
	struct strlist rcpts;
};

struct growbuf {
	char *p;
	size_t len, cap;
};

static void grow_append(struct growbuf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->p = realloc(b->p, b->cap);
		if (b->p == NULL)
			abort();
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

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
 * single dot ends the message (sendmail semantics). */
static int read_message(FILE *in, bool ignore_dots, struct growbuf *msg)
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
		grow_append(msg, line, len);
		grow_append(msg, "\r\n", 2);
	}
	free(line);
	return ferror(in) ? -1 : 0;
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

/* Trace and the fields RFC 5322 requires, when the local program left them
 * out (RFC 6409 §8.1-8.3 lets a submission server add them). */
static void add_headers(struct growbuf *out, const struct growbuf *msg, const struct conf *conf,
                        const char *sender, uint64_t id)
{
	char date[48], qid[17], line[1024];
	time_format_rfc5322(time_now_ms(), date, sizeof date);
	spool_id_format(id, qid);
	int n =
	    snprintf(line, sizeof line, "Received: by %s (outpost, from uid %u)\r\n\tid %s; %s\r\n",
	             conf->hostname, (unsigned)getuid(), qid, date);
	grow_append(out, line, (size_t)n);
	if (!msg_has_header(msg->p, msg->len, "Date")) {
		n = snprintf(line, sizeof line, "Date: %s\r\n", date);
		grow_append(out, line, (size_t)n);
	}
	if (!msg_has_header(msg->p, msg->len, "Message-ID")) {
		n = snprintf(line, sizeof line, "Message-ID: <%s@%s>\r\n", qid, conf->hostname);
		grow_append(out, line, (size_t)n);
	}
	if (!msg_has_header(msg->p, msg->len, "From") && sender[0]) {
		n = snprintf(line, sizeof line, "From: <%s>\r\n", sender);
		grow_append(out, line, (size_t)n);
	}
	/* A message without any header section still needs the empty line. */
	if (msg_header_end(msg->p, msg->len) == 0 && msg->len > 0 &&
	    !(msg->len >= 2 && memcmp(msg->p, "\r\n", 2) == 0))
		grow_append(out, "\r\n", 2);
	grow_append(out, msg->p, msg->len);
}

static void default_sender(const struct conf *conf, char *buf, size_t n)
{
	struct passwd *pw = getpwuid(getuid());
	snprintf(buf, n, "%s@%s", pw ? pw->pw_name : "root", conf->hostname);
}

static int queue_message(const struct conf *conf, struct spool_message_in *m)
{
	char why[256];
	struct spool *s = spool_open(conf->data_dir, why, sizeof why);
	if (s == NULL) {
		fprintf(stderr, "outpost: %s\n", why);
		return 1;
	}
	int rc = spool_begin(s, why, sizeof why);
	if (rc == 0)
		rc = spool_insert_message(s, m, why, sizeof why);
	if (rc == 0)
		rc = spool_commit(s, why, sizeof why); /* fsynced: now it may exit 0 */
	if (rc != 0) {
		spool_rollback(s);
		fprintf(stderr, "outpost: message not queued: %s\n", why);
	}
	spool_close(s);
	return rc == 0 ? 0 : 1;
}

int send_main(int argc, char **argv, const struct conf *conf, FILE *in)
{
	struct send_opts o = {0};
	struct growbuf msg = {0}, full = {0};
	int rc = 2;
	char sender[SMTP_PATH_MAX + 1];
	if (parse_opts(argc, argv, &o) < 0) {
		usage();
		goto out;
	}
	rc = 1;
	if (read_message(in, o.ignore_dots, &msg) < 0) {
		fprintf(stderr, "outpost: cannot read the message from stdin\n");
		goto out;
	}
	grow_append(&msg, "", 0);
	if (o.from_headers) {
		char why[128] = "";
		if (msg_header_recipients(msg.p, msg.len, collect_rcpt, &o.rcpts, why, sizeof why) <
		    0) {
			fprintf(stderr, "outpost: cannot read recipients from headers: %s\n", why);
			goto out;
		}
		size_t stripped_len;
		char *stripped = msg_strip_bcc(msg.p, msg.len, &stripped_len);
		msg.len = 0;
		grow_append(&msg, stripped, stripped_len);
		free(stripped);
	}
	if (o.rcpts.len == 0) {
		fprintf(stderr, "outpost: no recipients\n");
		rc = usage();
		goto out;
	}
	if (o.sender)
		snprintf(sender, sizeof sender, "%s", o.sender);
	else
		default_sender(conf, sender, sizeof sender);
	bool utf8 = has_non_ascii(sender, strlen(sender));
	for (size_t i = 0; i < o.rcpts.len; i++)
		utf8 |= has_non_ascii(o.rcpts.items[i], strlen(o.rcpts.items[i]));
	if (validate(&o.rcpts, sender, utf8) < 0)
		goto out;
	uint64_t id = spool_new_id();
	add_headers(&full, &msg, conf, sender, id);
	unsigned flags = 0;
	if (has_non_ascii(full.p, full.len))
		flags |= SPOOL_F_8BIT;
	if (utf8 || has_non_ascii(full.p, msg_header_end(full.p, full.len)))
		flags |= SPOOL_F_SMTPUTF8; /* UTF-8 in addresses or headers: RFC 6532 */
	if (o.requiretls)
		flags |= SPOOL_F_REQUIRETLS;
	else if (msg_tls_required_no(full.p, full.len))
		flags |= SPOOL_F_TLS_REQUIRED_NO;
	char client[64];
	snprintf(client, sizeof client, "local:uid=%u", (unsigned)getuid());
	struct spool_message_in m = {
	    .id = id,
	    .sender = sender,
	    .rcpts = (const char *const *)o.rcpts.items,
	    .nrcpt = o.rcpts.len,
	    .flags = flags,
	    .client = client,
	    .queued_ms = time_now_ms(),
	    .body = full.p,
	    .body_len = full.len,
	};
	rc = queue_message(conf, &m);
	if (rc == 0) {
		char qid[17];
		spool_id_format(id, qid);
		log_event(LOG_INFO, "message_accepted",
		          "qid=%s from=%s rcpts=%zu size=%zu client=%s", qid, log_quote(sender),
		          m.nrcpt, m.body_len, client);
	}
out:
	strlist_clear(&o.rcpts);
	free(msg.p);
	free(full.p);
	return rc;
}
