/* attempt.c - one delivery attempt, from DNS to the committed outcome. */
#include "deliver/attempt.h"

#include "deliver/client.h"
#include "deliver/scheduler.h"
#include "dns/destinations.h"
#include "dsn/dsn.h"
#include "smtp/headers.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/timeutil.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct attempt {
	struct deliver_ctx *ctx;
	struct delivery_job *job;
	attempt_done_fn released, done;
	void *done_arg;
	int64_t started_ms;
	int64_t started_us;
	char qid[17];

	struct spool_envelope env;
	char *body;
	size_t body_len;

	struct gather *gather;
	struct destinations *dests;
	size_t host_i;
	const struct dest_host *host; /* the host being tried */
	struct host_ips *ips;
	size_t ip_i;
	enum smtp_tls_mode mode;

	struct smtp_client *client;     /* ready, owned by the attempt */
	struct smtp_client *connecting; /* set up in progress, until on_ready */
	struct pool_conn_info conn;

	/* the recipients of the transaction in flight */
	const char **txn_rcpts;
	size_t *txn_index;
	struct smtp_txn txn;

	/* why the undecided recipients are still undecided */
	struct smtp_client_error last;
	char last_mx[256], last_ip[64];
	struct dialed {
		char host[256];
		char ips[512]; /* "ip ip ...", oldest first, across attempts */
	} dialed[8];
	size_t ndialed;
	int hosts_lacking; /* hosts that lacked a capability the message needs */
	int hosts_tried;
	bool dualstack_seen;
	bool writing; /* the outcome is with the writer */
};

static struct metric *m_results, *m_duration, *m_connections, *m_fallbacks, *m_dsn;

void attempt_metrics_init(void)
{
	static const double secs[] = {0.01, 0.05, 0.1, 0.5, 1, 5, 10, 20, 30, 60, 120};
	if (m_results)
		return;
	smtp_client_metrics_init();
	m_results = metric_counter("outpost_delivery_recipients_total",
	                           "recipient outcomes of delivery attempts", "result");
	m_duration = metric_histogram("outpost_delivery_duration_seconds",
	                              "one delivery attempt, start to committed outcome", secs,
	                              sizeof secs / sizeof secs[0]);
	m_connections = metric_counter("outpost_delivery_connections_total",
	                               "outgoing connections by result", "result");
	m_fallbacks = metric_counter("outpost_delivery_plaintext_fallbacks_total",
	                             "plaintext retries after a failed TLS handshake", NULL);
	m_dsn = metric_counter("outpost_dsn_queued_total", "delivery status notifications queued",
	                       "kind");
}

static void next_host(struct attempt *a);
static void resolve(struct attempt *a);
static void send_txn(struct attempt *a);
static void outcome(struct attempt *a);

/* ---- recipients ----------------------------------------------------------- */

static size_t undecided(const struct attempt *a)
{
	size_t n = 0;
	for (size_t i = 0; i < a->job->n; i++)
		n += a->job->rcpts[i].state == RCPT_QUEUED;
	return n;
}

/* Our own failures get an enhanced code too, so that the log and the DSN
 * say what kind of trouble it was (RFC 3463 §3.5, §3.6). A remote reply
 * without one (no ENHANCEDSTATUSCODES) gets its class only. */
static const char *enhanced_code(const struct smtp_client_error *e)
{
	if (e->enhanced[0])
		return e->enhanced;
	if (e->code)
		return e->code >= 500 ? "5.0.0" : "4.0.0";
	switch (e->kind) {
	case SMTP_ERR_IO:
	case SMTP_ERR_TIMEOUT:
		return e->command && strcmp(e->command, "connect") == 0 ? "4.4.1" : "4.4.2";
	case SMTP_ERR_PROTOCOL:
		return "4.5.0";
	case SMTP_ERR_TLS:
		return "4.7.0";
	default:
		return e->permanent ? "5.0.0" : "4.0.0";
	}
}

static void settle(struct job_rcpt *r, enum rcpt_state state, const struct smtp_client_error *e,
                   const char *mx, const char *ip)
{
	r->state = state;
	r->remote = e->code != 0;
	const char *enh = enhanced_code(e);
	snprintf(r->enhanced, sizeof r->enhanced, "%s", enh);
	if (e->code) /* the remote reply as it came: it is the Diagnostic-Code */
		snprintf(r->error, sizeof r->error, "%d %s%s%s", e->code, e->enhanced,
		         e->enhanced[0] ? " " : "", e->text);
	else if (e->command && e->command[0]) /* ours: say at which stage */
		snprintf(r->error, sizeof r->error, "%s %s: %s", enh, e->command, e->text);
	else
		snprintf(r->error, sizeof r->error, "%s %s", enh, e->text);
	snprintf(r->mx, sizeof r->mx, "%s", mx ? mx : "");
	snprintf(r->ip, sizeof r->ip, "%s", ip ? ip : "");
}

/* Every undecided recipient gets the same fate. */
static void settle_undecided(struct attempt *a, enum rcpt_state state,
                             const struct smtp_client_error *e)
{
	for (size_t i = 0; i < a->job->n; i++)
		if (a->job->rcpts[i].state == RCPT_QUEUED)
			settle(&a->job->rcpts[i], state, e, a->last_mx, a->last_ip);
}

static void our_error(struct smtp_client_error *e, bool permanent, const char *enhanced,
                      const char *fmt, const char *arg)
{
	memset(e, 0, sizeof *e);
	e->permanent = permanent;
	e->command = "";
	snprintf(e->enhanced, sizeof e->enhanced, "%s", enhanced);
	snprintf(e->text, sizeof e->text, fmt, arg);
}

/* SPEC §5.3: on the first attempt a 5.7.x from a dual-stack host may be
 * about the address family we came from; the next attempt uses the other
 * family, so it is not final yet. */
static bool really_permanent(const struct attempt *a, const struct smtp_client_error *e)
{
	if (!e->permanent)
		return false;
	bool first = a->job->rcpts[0].attempt == 1;
	if (first && a->dualstack_seen && strncmp(e->enhanced, "5.7.", 4) == 0)
		return false;
	return true;
}

/* ---- connections ---------------------------------------------------------- */

static void release_client(struct attempt *a, bool reusable)
{
	if (a->client == NULL)
		return;
	if (reusable && smtp_client_usable(a->client)) {
		a->conn.messages++;
		pool_put(a->ctx->pool, a->job->domain, a->client, &a->conn);
	} else if (smtp_client_usable(a->client)) {
		smtp_client_quit(a->client);
	} else {
		smtp_client_abort(a->client);
	}
	a->client = NULL;
}

/* The one place where the TLS mode of a host is decided. Without a policy
 * (this issue) it is opportunistic STARTTLS, and plaintext on the retry after
 * a failed handshake (SPEC §5.3 row 1). */
static enum smtp_tls_mode host_tls_mode(const struct attempt *a, bool plaintext_retry)
{
	return plaintext_retry ? SMTP_TLS_SKIP : SMTP_TLS_OPPORTUNISTIC;
}

static void remember_error(struct attempt *a, const struct smtp_client_error *e, const char *ip)
{
	a->last = *e;
	snprintf(a->last_mx, sizeof a->last_mx, "%s", a->host ? a->host->name : a->conn.mx);
	snprintf(a->last_ip, sizeof a->last_ip, "%s", ip ? ip : "");
}

static void dial_next_ip(struct attempt *a);

static struct dialed *dialed_for(struct attempt *a, const char *host)
{
	for (size_t i = 0; i < a->ndialed; i++)
		if (strcmp(a->dialed[i].host, host) == 0)
			return &a->dialed[i];
	if (a->ndialed == sizeof a->dialed / sizeof a->dialed[0])
		return NULL;
	struct dialed *d = &a->dialed[a->ndialed++];
	snprintf(d->host, sizeof d->host, "%s", host);
	spool_dialed_get(a->ctx->reader, a->job->msg_id, host, d->ips, sizeof d->ips);
	return d;
}

/* SPEC §4.3: remember the addresses connected to, for the next attempt. */
static void note_dialed(struct attempt *a, const char *ip)
{
	struct dialed *d = dialed_for(a, a->host->name);
	size_t len = d ? strlen(d->ips) : 0;
	if (d && len + strlen(ip) + 2 < sizeof d->ips)
		snprintf(d->ips + len, sizeof d->ips - len, "%s%s", len ? " " : "", ip);
	snprintf(a->conn.ip, sizeof a->conn.ip, "%s", ip);
	snprintf(a->conn.mx, sizeof a->conn.mx, "%s", a->host->name);
	a->conn.messages = 0;
	a->conn.tls[0] = '\0';
}

static void on_ready(void *arg, struct smtp_client *c, bool ok, const struct smtp_client_error *e)
{
	struct attempt *a = arg;
	char ip[64];
	a->connecting = NULL;
	dns_addr_format(&a->ips->addrs[a->ip_i - 1], ip, sizeof ip);
	if (ok) {
		metric_add(m_connections, "ok", 1);
		a->client = c;
		note_dialed(a, ip);
		const struct smtp_server_info *info = smtp_client_info(c);
		if (info->tls)
			snprintf(a->conn.tls, sizeof a->conn.tls, "%s %s", info->tls_version,
			         info->tls_cipher);
		return send_txn(a);
	}
	remember_error(a, e, ip);
	if (strcmp(e->command, "connect") == 0) { /* TCP: the next address */
		metric_add(m_connections, e->kind == SMTP_ERR_TIMEOUT ? "timeout" : "error", 1);
		return dial_next_ip(a);
	}
	note_dialed(a, ip);
	if (e->kind == SMTP_ERR_TLS && a->mode == SMTP_TLS_OPPORTUNISTIC) {
		/* SPEC §5: a failed opportunistic handshake is retried on the
		 * same host in plaintext; no policy asks for more (yet). */
		metric_add(m_connections, "tls_failed", 1);
		metric_add(m_fallbacks, NULL, 1);
		log_event(LOG_INFO, "plaintext_fallback", "qid=%s mx=%s ip=%s error=%s", a->qid,
		          a->host->name, ip, log_quote(e->text));
		a->mode = host_tls_mode(a, true);
		a->ip_i--;
		return dial_next_ip(a);
	}
	metric_add(m_connections, "session_failed", 1);
	if (really_permanent(a, e)) { /* 5xx greeting or EHLO: the host says no */
		settle_undecided(a, RCPT_FAILED, e);
		return outcome(a);
	}
	next_host(a);
}

static void dial_next_ip(struct attempt *a)
{
	if (a->ip_i >= a->ips->n)
		return next_host(a);
	const struct dns_addr *addr = &a->ips->addrs[a->ip_i++];
	const struct conf *conf = a->ctx->conf;
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof ss);
	socklen_t len;
	if (addr->family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;
		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)conf->delivery_port);
		in->sin_addr = addr->v4;
		len = sizeof *in;
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)conf->delivery_port);
		in6->sin6_addr = addr->v6;
		len = sizeof *in6;
	}
	struct smtp_client_config cfg = {
	    .ehlo_name = conf->hostname,
	    .server_name = a->host->is_ip ? NULL : a->host->name,
	    .tls_mode = a->mode,
	    .tls_ctx = a->ctx->tls,
	    .connect_timeout_ms = conf->connect_timeout_ms,
	    .command_timeout_ms = conf->command_timeout_ms,
	    .data_timeout_ms = conf->data_timeout_ms,
	    .tls_timeout_ms = conf->tls_timeout_ms,
	};
	a->connecting =
	    smtp_client_connect(a->ctx->base, (struct sockaddr *)&ss, len, &cfg, on_ready, a);
}

/* ---- hosts ------------------------------------------------------------------ */

static void on_ips(void *arg, struct host_ips *ips, bool ok)
{
	struct attempt *a = arg;
	a->gather = NULL;
	if (!ok) {
		struct smtp_client_error e;
		our_error(&e, false, ips->enhanced[0] ? ips->enhanced : "4.4.3", "%s", ips->error);
		remember_error(a, &e, NULL);
		host_ips_free(ips);
		return next_host(a);
	}
	a->ips = ips;
	a->ip_i = 0;
	a->dualstack_seen |= ips->dualstack;
	a->mode = host_tls_mode(a, false);
	dial_next_ip(a);
}

/* The addresses dialed before for host, parsed for gather_ips. */
static size_t previous_ips(struct attempt *a, const char *host, struct dns_addr *out, size_t max)
{
	struct dialed *d = dialed_for(a, host);
	if (d == NULL)
		return 0;
	char copy[512];
	snprintf(copy, sizeof copy, "%s", d->ips);
	size_t n = 0;
	char *save = NULL;
	for (char *tok = strtok_r(copy, " ", &save); tok && n < max;
	     tok = strtok_r(NULL, " ", &save))
		if (dns_addr_parse(tok, &out[n]))
			n++;
	return n;
}

static void next_host(struct attempt *a)
{
	if (a->ips) {
		host_ips_free(a->ips);
		a->ips = NULL;
	}
	if (undecided(a) == 0)
		return outcome(a);
	if (a->dests == NULL) /* came from a pooled connection: resolve now */
		return resolve(a);
	if (a->host_i >= a->dests->n)
		return outcome(a);
	a->host = &a->dests->hosts[a->host_i++];
	a->hosts_tried++;
	if (a->host->is_ip) {
		struct host_ips *ips = calloc(1, sizeof *ips);
		ips->addrs = malloc(sizeof *ips->addrs);
		if (ips == NULL || ips->addrs == NULL)
			abort();
		ips->addrs[0] = a->host->addr;
		ips->n = 1;
		return on_ips(a, ips, true);
	}
	struct dns_addr prev[16];
	size_t nprev = previous_ips(a, a->host->name, prev, 16);
	a->gather = gather_ips(a->ctx->dns, a->host->name, prev, nprev, on_ips, a);
}

static void on_destinations(void *arg, struct destinations *d, bool ok)
{
	struct attempt *a = arg;
	a->gather = NULL;
	if (!ok) {
		/* null MX (5.1.10), NXDOMAIN (5.1.2) are final; SERVFAIL and
		 * timeouts are not (4.4.3) */
		struct smtp_client_error e;
		our_error(&e, d->permanent, d->enhanced, "%s", d->error);
		remember_error(a, &e, NULL);
		settle_undecided(a, d->permanent ? RCPT_FAILED : RCPT_DEFERRED, &e);
		destinations_free(d);
		return outcome(a);
	}
	a->dests = d;
	a->host_i = 0;
	next_host(a);
}

static void resolve(struct attempt *a)
{
	a->gather = gather_destinations(a->ctx->dns, a->job->domain, on_destinations, a);
}

/* ---- transactions ----------------------------------------------------------- */

static bool capability_error(const struct smtp_client_error *e)
{
	return e->kind == SMTP_ERR_8BITMIME || e->kind == SMTP_ERR_SMTPUTF8 ||
	       e->kind == SMTP_ERR_SIZE || e->kind == SMTP_ERR_REQUIRETLS;
}

/* Recipient results of one transaction. A recipient refused on its own is
 * decided; one caught in a failed transaction stays undecided when the
 * failure was temporary (the next host may take it). */
static bool apply_results(struct attempt *a, const struct smtp_rcpt_result *res,
                          const struct smtp_client_error *err)
{
	bool more_here = false;
	const char *mx = a->conn.mx, *ip = a->conn.ip;
	for (size_t k = 0; k < a->txn.nrcpt; k++) {
		struct job_rcpt *r = &a->job->rcpts[a->txn_index[k]];
		const struct smtp_rcpt_result *x = &res[k];
		snprintf(r->tls, sizeof r->tls, "%s", a->conn.tls);
		if (x->status == SMTP_RCPT_OK) {
			settle(r, RCPT_DELIVERED, &x->error, mx, ip);
		} else if (x->status == SMTP_RCPT_NOT_TRIED) {
			more_here = true;
		} else if (err->kind == SMTP_ERR_NONE || really_permanent(a, &x->error)) {
			bool perm = really_permanent(a, &x->error);
			settle(r, perm ? RCPT_FAILED : RCPT_DEFERRED, &x->error, mx, ip);
		}
	}
	return more_here && err->kind == SMTP_ERR_NONE;
}

static void on_txn(void *arg, struct smtp_client *c, const struct smtp_rcpt_result *res,
                   const struct smtp_client_error *err)
{
	struct attempt *a = arg;
	if (err->kind != SMTP_ERR_NONE)
		remember_error(a, err, a->conn.ip);
	bool again = apply_results(a, res, err);
	free(a->txn_rcpts);
	free(a->txn_index);
	a->txn_rcpts = NULL;
	a->txn_index = NULL;
	if (again && smtp_client_usable(c) && undecided(a) > 0)
		return send_txn(a); /* 452: the rest in another transaction */
	if (capability_error(err))
		a->hosts_lacking++;
	release_client(a, err->kind == SMTP_ERR_NONE || capability_error(err));
	if (undecided(a) == 0)
		return outcome(a);
	next_host(a);
}

static void send_txn(struct attempt *a)
{
	size_t n = undecided(a);
	a->txn_rcpts = calloc(n, sizeof *a->txn_rcpts);
	a->txn_index = calloc(n, sizeof *a->txn_index);
	if (a->txn_rcpts == NULL || a->txn_index == NULL)
		abort();
	size_t k = 0;
	for (size_t i = 0; i < a->job->n; i++)
		if (a->job->rcpts[i].state == RCPT_QUEUED) {
			a->txn_rcpts[k] = a->job->rcpts[i].address;
			a->txn_index[k++] = i;
		}
	unsigned f = a->env.flags;
	a->txn = (struct smtp_txn){
	    .sender = a->env.sender,
	    .rcpts = a->txn_rcpts,
	    .nrcpt = k,
	    .body = a->body,
	    .body_len = a->body_len,
	    .eightbit = f & SPOOL_F_8BIT,
	    .smtputf8 = f & SPOOL_F_SMTPUTF8,
	    .requiretls = f & SPOOL_F_REQUIRETLS,
	};
	smtp_client_send(a->client, &a->txn, on_txn, a);
}

/* ---- the outcome ------------------------------------------------------------ */

size_t attempt_remaining_schedule(const struct conf *conf, int n, int64_t t, int64_t *out,
                                  size_t max)
{
	size_t k = 0;
	for (int next = n + 1; next <= conf->max_attempts && k < max; next++) {
		t += scheduler_backoff_ms(conf->first_retry_ms, next - 2);
		out[k++] = t;
	}
	return k;
}

/* Undecided recipients are deferred with the last error; deferred ones out
 * of attempts fail. */
static void decide_rest(struct attempt *a)
{
	struct smtp_client_error e = a->last;
	if (e.command == NULL) /* nothing was even tried: no host at all */
		our_error(&e, false, "4.4.1", "%s", "no host could be reached");
	if (a->hosts_lacking > 0 && a->hosts_lacking == a->hosts_tried)
		e.permanent = true; /* no MX host supports what the message needs */
	settle_undecided(a, e.permanent ? RCPT_FAILED : RCPT_DEFERRED, &e);
	for (size_t i = 0; i < a->job->n; i++) {
		struct job_rcpt *r = &a->job->rcpts[i];
		if (r->state == RCPT_DEFERRED && r->attempt >= a->ctx->conf->max_attempts) {
			r->state = RCPT_FAILED;
			size_t len = strlen(r->error);
			snprintf(r->error + len, sizeof r->error - len,
			         " (gave up after %d attempts)", r->attempt);
		}
	}
}

struct outcome_job {
	struct attempt *a;
	char *dsn;
	size_t dsn_len;
	bool delay;
	unsigned dsn_flags;
	uint64_t dsn_id;
};

static const char *dsn_status(const struct job_rcpt *r, bool delay, char *buf, size_t n)
{
	if (r->enhanced[0] && r->enhanced[1] == '.') {
		snprintf(buf, n, "%c%s", delay ? '4' : '5', r->enhanced + 1);
		return buf;
	}
	return delay ? "4.0.0" : "5.0.0";
}

/* One notice per message per attempt: all failed recipients, or all
 * recipients that reached the delay threshold this attempt. */
static char *compose_dsn(struct attempt *a, bool delay, size_t *len)
{
	const struct conf *conf = a->ctx->conf;
	struct dsn_recipient *dr = calloc(a->job->n, sizeof *dr);
	char(*status)[16] = calloc(a->job->n, 16);
	size_t n = 0;
	int attempt_no = 0;
	for (size_t i = 0; i < a->job->n; i++) {
		struct job_rcpt *r = &a->job->rcpts[i];
		bool want =
		    delay ? (r->state == RCPT_DEFERRED && r->attempt == conf->delay_notice_after)
		          : r->state == RCPT_FAILED;
		if (!want)
			continue;
		attempt_no = r->attempt;
		dr[n] = (struct dsn_recipient){
		    .address = r->address,
		    .status = dsn_status(r, delay, status[n], sizeof status[n]),
		    .remote_mta = r->mx[0] ? r->mx : NULL,
		    .remote_ip = r->ip[0] ? r->ip : NULL,
		    .diagnostic = r->remote ? r->error : NULL,
		    .reason = r->error,
		    .last_attempt_ms = a->started_ms,
		};
		n++;
	}
	char *text = NULL;
	if (n > 0) {
		int64_t next[64];
		size_t nnext =
		    delay ? attempt_remaining_schedule(conf, attempt_no, a->started_ms, next, 64)
		          : 0;
		size_t hlen = msg_header_end(a->body, a->body_len);
		struct dsn_report rep = {
		    .delay = delay,
		    .utf8 = a->env.flags & SPOOL_F_SMTPUTF8,
		    .redact = a->env.flags & SPOOL_F_REQUIRETLS,
		    .reporting_mta = conf->hostname,
		    .original_sender = a->env.sender,
		    .original_id = a->qid,
		    .arrival_ms = a->env.queued_ms,
		    .now_ms = time_now_ms(),
		    .original_headers = a->body,
		    .original_headers_len = hlen,
		    .rcpts = dr,
		    .nrcpt = n,
		    .next_attempts_ms = next,
		    .nnext = nnext,
		    .will_retry_until_ms = nnext ? next[nnext - 1] : 0,
		};
		text = dsn_compose(&rep, len);
	}
	free(dr);
	free(status);
	return text;
}

static int outcome_write(struct spool *sp, void *arg, char *why, size_t whylen)
{
	struct outcome_job *o = arg;
	struct attempt *a = o->a;
	int64_t now = time_now_ms();
	static const enum spool_attempt_result result_of[] = {
	    [RCPT_DELIVERED] = SPOOL_ATTEMPT_DELIVERED,
	    [RCPT_DEFERRED] = SPOOL_ATTEMPT_DEFERRED,
	    [RCPT_FAILED] = SPOOL_ATTEMPT_FAILED,
	};
	bool deferred = false;
	for (size_t i = 0; i < a->job->n; i++) {
		struct job_rcpt *r = &a->job->rcpts[i];
		const char *tls = r->tls;
		struct spool_attempt_log l = {
		    .msg_id = a->job->msg_id,
		    .rcpt_id = r->id,
		    .started_ms = a->started_ms,
		    .duration_ms = now - a->started_ms,
		    .mx = r->mx[0] ? r->mx : NULL,
		    .ip = r->ip[0] ? r->ip : NULL,
		    .tls = tls[0] ? tls : NULL,
		    .result = result_of[r->state],
		    .reply = r->error,
		};
		deferred |= r->state == RCPT_DEFERRED;
		if (spool_attempt_end(sp, r->id, r->state, r->error, why, whylen) < 0 ||
		    spool_log_attempt(sp, &l, why, whylen) < 0)
			return -1;
	}
	for (size_t i = 0; deferred && i < a->ndialed; i++)
		if (a->dialed[i].ips[0] && spool_dialed_put(sp, a->job->msg_id, a->dialed[i].host,
		                                            a->dialed[i].ips, why, whylen) < 0)
			return -1;
	if (o->dsn) {
		const char *rcpt = a->env.sender;
		struct spool_message_in m = {
		    .id = o->dsn_id,
		    .sender = "",
		    .rcpts = &rcpt,
		    .nrcpt = 1,
		    .flags = o->dsn_flags,
		    .client = "dsn",
		    .queued_ms = now,
		    .body = o->dsn,
		    .body_len = o->dsn_len,
		};
		if (spool_insert_message(sp, &m, why, whylen) < 0)
			return -1;
	}
	return spool_finish_if_done(sp, a->job->msg_id, now, why, whylen) < 0 ? -1 : 0;
}

static void attempt_free(struct attempt *a)
{
	if (a->gather)
		gather_cancel(a->gather);
	if (a->connecting) /* shutdown while a connection was being set up */
		smtp_client_abort(a->connecting);
	release_client(a, false);
	if (a->ips)
		host_ips_free(a->ips);
	destinations_free(a->dests);
	free(a->body);
	free(a);
}

static void log_outcome(struct attempt *a)
{
	static const char *names[] = {"queued", "held", "deferred", "delivered", "failed"};
	for (size_t i = 0; i < a->job->n; i++) {
		struct job_rcpt *r = &a->job->rcpts[i];
		metric_add(m_results, names[r->state], 1);
		log_event(r->state == RCPT_FAILED ? LOG_WARN : LOG_INFO, "delivery",
		          "qid=%s rcpt=%s attempt=%d result=%s mx=%s ip=%s reply=%s", a->qid,
		          log_quote(r->address), r->attempt, names[r->state],
		          r->mx[0] ? r->mx : "-", r->ip[0] ? r->ip : "-", log_quote(r->error));
	}
}

static void outcome_done(void *arg, int status, const char *why)
{
	struct outcome_job *o = arg;
	struct attempt *a = o->a;
	if (status != 0)
		log_event(LOG_ERROR, "outcome_not_recorded", "qid=%s reason=%s", a->qid,
		          log_quote(why));
	else if (o->dsn)
		metric_add(m_dsn, o->delay ? "delay" : "failure", 1);
	metric_observe(m_duration, (double)(time_mono_us() - a->started_us) / 1e6);
	free(o->dsn);
	free(o);
	attempt_done_fn done = a->done;
	void *done_arg = a->done_arg;
	struct delivery_job *job = a->job;
	attempt_free(a);
	done(done_arg, job);
}

static void outcome(struct attempt *a)
{
	decide_rest(a);
	log_outcome(a);
	struct outcome_job *o = calloc(1, sizeof *o);
	if (o == NULL)
		abort();
	o->a = a;
	/* never a notice about a notice: RFC 3464 §2 / RFC 5321 §4.5.5 */
	if (a->env.sender[0] != '\0' && a->body) {
		o->dsn = compose_dsn(a, false, &o->dsn_len);
		if (o->dsn == NULL && a->ctx->conf->delay_notice_after > 0) {
			o->dsn = compose_dsn(a, true, &o->dsn_len);
			o->delay = o->dsn != NULL;
		}
	}
	if (o->dsn) {
		o->dsn_id = spool_new_id();
		o->dsn_flags =
		    SPOOL_F_DSN | (a->env.flags & (SPOOL_F_SMTPUTF8 | SPOOL_F_REQUIRETLS));
		if (a->env.flags & SPOOL_F_SMTPUTF8)
			o->dsn_flags |= SPOOL_F_8BIT;
	}
	a->writing = true;
	spool_writer_submit(a->ctx->writer, outcome_write, outcome_done, o);
	a->released(a->done_arg, a->job);
}

/* ---- start ------------------------------------------------------------------ */

static bool load_message(struct attempt *a)
{
	char why[256];
	if (spool_load_envelope(a->ctx->reader, a->job->msg_id, &a->env, why, sizeof why) < 0 ||
	    spool_message_body(a->ctx->reader, a->job->msg_id, &a->body, &a->body_len, why,
	                       sizeof why) < 0) {
		struct smtp_client_error e;
		our_error(&e, false, "4.3.0", "cannot read the message: %s", why);
		a->last = e;
		settle_undecided(a, RCPT_DEFERRED, &e);
		return false;
	}
	return true;
}

bool attempt_abort(struct attempt *a)
{
	if (a->writing)
		return false;
	attempt_free(a);
	return true;
}

struct attempt *attempt_run(struct deliver_ctx *ctx, struct delivery_job *job,
                            attempt_done_fn released, attempt_done_fn done, void *arg)
{
	attempt_metrics_init();
	struct attempt *a = calloc(1, sizeof *a);
	if (a == NULL)
		abort();
	a->ctx = ctx;
	a->job = job;
	a->released = released;
	a->done = done;
	a->done_arg = arg;
	a->started_ms = time_now_ms();
	a->started_us = time_mono_us();
	spool_id_format(job->msg_id, a->qid);
	for (size_t i = 0; i < job->n; i++)
		job->rcpts[i].state = RCPT_QUEUED;
	if (!load_message(a)) {
		outcome(a);
		return a;
	}
	a->client = pool_take(ctx->pool, job->domain, &a->conn);
	if (a->client)
		send_txn(a);
	else
		resolve(a);
	return a;
}
