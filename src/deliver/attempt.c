/* attempt.c - one delivery attempt, from DNS to the committed outcome. */
#include "deliver/attempt.h"

#include "deliver/client.h"
#include "deliver/host_tls.h"
#include "deliver/notice.h"
#include "dns/destinations.h"
#include "dns/tlsa.h"
#include "spool/tls_rows.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/timeutil.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OUTCOME_RETRY_FIRST_MS 1000  /* a failed outcome commit is retried after */
#define OUTCOME_RETRY_MAX_MS   60000 /* ... doubling up to this */
#define TLSRPT_MAX_ATTEMPTS    5     /* attempts of a TLS report message */

struct outcome_job;

struct attempt {
	struct deliver_ctx *ctx;
	struct delivery_job *job;
	attempt_done_fn released, done;
	void *done_arg;
	int64_t started_ms;
	int64_t started_us;
	char qid[17];
	/* [delivery] retry settings as the attempt started: its outcome is
	 * written on the writer thread, and a reload may change the live ones
	 * meanwhile (docs/install.md, "Reload") */
	struct notice_settings notice_cfg;
	int delay_notice_after;

	struct spool_envelope env;
	struct smtp_body body; /* reads the spool as the connection takes it */

	struct gather *gather;
	struct destinations *dests;
	size_t host_i;
	const struct dest_host *host; /* the host being tried */
	struct host_ips *ips;
	size_t ip_i;
	enum smtp_tls_mode mode;

	/* transport security (host_tls.h) */
	struct sts_request *sts_req;
	struct tlsa_lookup *tlsa_req;
	struct attempt_tls tls;
	struct host_tls host_tls;
	char pool_tag[96];

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
	struct tls_note last_note;
	struct dialed {
		char host[256];
		char ips[512]; /* "ip ip ...", oldest first, across attempts */
	} dialed[8];
	size_t ndialed;
	size_t hosts_tried;   /* of dests */
	size_t hosts_refused; /* of those: said 5xx to the greeting or EHLO */
	size_t hosts_lacking; /* of those: lacked what the message needs, or
	                         could never carry its REQUIRETLS */
	bool dualstack_seen;
	bool looped; /* a host was ourselves: RFC 5321 §5.1 ended the list */

	/* The scheduler commits the attempt's begin while the attempt looks up
	 * and connects: the transaction and the outcome wait for it
	 * (docs/queue.md, "Attempt bookkeeping"). */
	bool begun;
	void (*parked)(struct attempt *a); /* the step waiting for it */

	/* the outcome on its way to the spool */
	struct outcome_job *outcome;
	bool writing; /* the outcome is with the writer */
	struct event *retry_timer;
	int64_t retry_ms;
};

static struct metric *m_results, *m_duration, *m_connections, *m_fallbacks, *m_dsn;
static struct metric *m_hosts, *m_dane_hosts, *m_dane_verify, *m_overrides, *m_requiretls;

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
	m_hosts = metric_counter("outpost_delivery_hosts_total",
	                         "MX hosts tried, by whether their addresses are DNSSEC-signed",
	                         "dnssec");
	m_dane_hosts = metric_counter("outpost_dane_hosts_total",
	                              "MX hosts whose TLSA records were looked up, by outcome: none, "
	                              "usable, unusable, failed",
	                              "tlsa");
	m_dane_verify = metric_counter("outpost_dane_verifications_total",
	                               "TLS sessions verified with DANE, by result", "result");
	m_overrides = metric_counter("outpost_tls_required_no_overrides_total",
	                             "policy findings ignored because of TLS-Required: No "
	                             "(RFC 8689 §5)",
	                             "ignored");
	m_requiretls = metric_counter("outpost_requiretls_unsupported_total",
	                              "hosts that could not carry a REQUIRETLS message, by reason",
	                              "reason");
	sts_cache_metrics_init();
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
                   const char *mx, const char *ip, const struct tls_note *note)
{
	r->state = state;
	r->remote = e->code != 0;
	char enh[16];
	snprintf(enh, sizeof enh, "%s", enhanced_code(e));
	/* our own codes say what the outcome is: 4.x.x deferred, 5.x.x failed */
	if (!r->remote && (enh[0] == '4' || enh[0] == '5'))
		enh[0] = state == RCPT_FAILED ? '5' : '4';
	snprintf(r->enhanced, sizeof r->enhanced, "%s", enh);
	if (note)
		r->note = *note;
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
			settle(&a->job->rcpts[i], state, e, a->last_mx, a->last_ip, &a->last_note);
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

/* On the first attempt a 5.7.x from a dual-stack host may be about the
 * address family we came from; the next attempt uses the other family, so
 * it is not final yet (docs/delivery.md, "Hosts and outcomes"). */
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

/* The policy that governs the host being tried, once decided. */
static const char *host_policy_name(const struct attempt *a)
{
	if (a->mode == SMTP_TLS_SKIP)
		return "none";
	return a->host_tls.host[0] ? tls_governor_name(a->host_tls.plan.governor) : "";
}

static void remember_error(struct attempt *a, const struct smtp_client_error *e, const char *ip)
{
	a->last = *e;
	snprintf(a->last_mx, sizeof a->last_mx, "%s", a->host ? a->host->name : a->conn.mx);
	snprintf(a->last_ip, sizeof a->last_ip, "%s", ip ? ip : "");
	memset(&a->last_note, 0, sizeof a->last_note);
	snprintf(a->last_note.policy, sizeof a->last_note.policy, "%s", host_policy_name(a));
}

/* An error on an established connection: its TLS note stays with it. */
static void remember_txn_error(struct attempt *a, const struct smtp_client_error *e)
{
	remember_error(a, e, a->conn.ip);
	a->last_note = a->conn.note;
}

static void count_override(struct attempt *a, const char *what, const char *detail)
{
	metric_add(m_overrides, what, 1);
	log_event(LOG_INFO, "tls_required_no_override", "qid=%s domain=%s mx=%s ignored=%s detail=%s",
	          a->qid, log_quote(a->job->domain), a->host ? log_quote(a->host->name) : "-", what,
	          log_quote(detail));
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

/* Remember the addresses connected to: they set the next attempt's
 * dialing order (docs/destinations.md, "Dialing order"). */
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

/* The session could not be set up past TCP: a refusal (5xx greeting or
 * EHLO) passes the recipients on to the next host, as Postfix's
 * smtp_skip_5xx_greeting does; decide_rest makes it final only when every
 * host refused. */
static void session_failed(struct attempt *a, const struct smtp_client_error *e, const char *ip)
{
	metric_add(m_connections, "session_failed", 1);
	if (e->permanent && e->code >= 500)
		a->hosts_refused++;
	next_host(a);
}

/* A TLS failure under a policy that demands TLS: this host's problem, so
 * temporary, with a code that says it was about TLS (RFC 3463 X.7.4
 * "security features not supported", X.7.5 "cryptographic failure"). */
static void policy_tls_error(struct attempt *a, const struct smtp_client_error *e,
                             struct smtp_client_error *out)
{
	*out = *e;
	out->permanent = false;
	if (e->tls == SMTP_TLS_REFUSED || e->tls == SMTP_TLS_NOT_OFFERED) {
		out->code = 0;
		snprintf(out->enhanced, sizeof out->enhanced, "4.7.4");
		snprintf(out->text, sizeof out->text,
		         "TLS is required (%s) but %.200s refused STARTTLS: %d %s%s%.150s",
		         host_policy_name(a), a->host->name, e->code, e->enhanced,
		         e->enhanced[0] ? " " : "", e->text);
	} else if (e->tls == SMTP_TLS_HANDSHAKE) {
		snprintf(out->enhanced, sizeof out->enhanced, "4.7.5");
	}
}

/* Counts and notes the connection's TLS outcome; true when the setup
 * error is a TLS failure that the plan retries in plaintext. */
static bool tls_outcome(struct attempt *a, struct smtp_client *c, bool ok,
                        const struct smtp_client_error *e, const char *ip)
{
	const struct smtp_server_info *info = smtp_client_info(c);
	if (host_tls_record(&a->tls, &a->host_tls, a->mode, info, ok ? NULL : e, ip))
		count_override(a, "verification", info->verdict.failure.reason);
	if (a->mode != SMTP_TLS_SKIP && info->tls_tried && a->host_tls.plan.auth == TLS_AUTH_DANE)
		metric_add(m_dane_verify, info->verdict.authenticated ? "ok" : "failed", 1);
	if (ok)
		return false;
	return e->kind == SMTP_ERR_TLS && a->mode != SMTP_TLS_SKIP && a->host_tls.plan.fallback;
}

static void connection_note(struct attempt *a, const struct smtp_server_info *info,
                            struct tls_note *note)
{
	memset(note, 0, sizeof *note);
	snprintf(note->policy, sizeof note->policy, "%s", host_policy_name(a));
	host_tls_describe(&a->host_tls, info, note->verified, sizeof note->verified, note->detail,
	                  sizeof note->detail);
}

static void on_ready(void *arg, struct smtp_client *c, bool ok, const struct smtp_client_error *e)
{
	struct attempt *a = arg;
	char ip[64];
	a->connecting = NULL;
	dns_addr_format(&a->ips->addrs[a->ip_i - 1], ip, sizeof ip);
	bool retry_plain = tls_outcome(a, c, ok, e, ip);
	if (ok) {
		metric_add(m_connections, "ok", 1);
		a->client = c;
		note_dialed(a, ip);
		const struct smtp_server_info *info = smtp_client_info(c);
		if (info->tls)
			snprintf(a->conn.tls, sizeof a->conn.tls, "%s %s", info->tls_version,
			         info->tls_cipher);
		connection_note(a, info, &a->conn.note);
		if (a->mode == SMTP_TLS_SKIP)
			snprintf(a->conn.note.detail, sizeof a->conn.note.detail,
			         "plaintext retry after a failed TLS attempt");
		snprintf(a->conn.tag, sizeof a->conn.tag, "%s", a->pool_tag);
		return send_txn(a);
	}
	remember_error(a, e, ip);
	if (strcmp(e->command, "connect") == 0) { /* TCP: the next address */
		metric_add(m_connections, e->kind == SMTP_ERR_TIMEOUT ? "timeout" : "error", 1);
		return dial_next_ip(a);
	}
	note_dialed(a, ip);
	if (retry_plain) {
		/* a failed opportunistic handshake, or any TLS failure under
		 * "TLS-Required: No": the same host again in plaintext
		 * (docs/tls.md, RFC 7435, RFC 8689 §5) */
		metric_add(m_connections, "tls_failed", 1);
		metric_add(m_fallbacks, NULL, 1);
		if (a->host_tls.plan.mode == SMTP_TLS_REQUIRED)
			count_override(a, "plaintext", e->text);
		log_event(LOG_INFO, "plaintext_fallback", "qid=%s mx=%s ip=%s error=%s", a->qid,
		          a->host->name, ip, log_quote(e->text));
		a->mode = SMTP_TLS_SKIP;
		a->ip_i--;
		return dial_next_ip(a);
	}
	if (e->kind == SMTP_ERR_TLS) {
		metric_add(m_connections, "tls_failed", 1);
		struct smtp_client_error pe;
		policy_tls_error(a, e, &pe);
		remember_error(a, &pe, ip);
		connection_note(a, smtp_client_info(c), &a->last_note);
		if (!a->last_note.detail[0])
			snprintf(a->last_note.detail, sizeof a->last_note.detail, "%.190s", pe.text);
		return next_host(a);
	}
	session_failed(a, e, ip);
}

static void fill_sockaddr(const struct dns_addr *addr, int port, struct sockaddr_storage *ss,
                          socklen_t *len)
{
	memset(ss, 0, sizeof *ss);
	if (addr->family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)ss;
		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)port);
		in->sin_addr = addr->v4;
		*len = sizeof *in;
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		in6->sin6_addr = addr->v6;
		*len = sizeof *in6;
	}
}

static void dial_next_ip(struct attempt *a)
{
	const struct conf *conf = a->ctx->conf;
	while (a->ip_i < a->ips->n) {
		struct sockaddr_storage ss;
		socklen_t len;
		fill_sockaddr(&a->ips->addrs[a->ip_i++], (int)conf->delivery_port, &ss, &len);
		bool tls = a->mode != SMTP_TLS_SKIP;
		struct smtp_client_config cfg = {
		    .ehlo_name = conf->hostname,
		    .server_name = a->host->is_ip ? NULL : a->host->name,
		    .tls_mode = a->mode,
		    .tls_ctx = a->ctx->tls,
		    .tls_policy = tls ? &a->host_tls.peer : NULL,
		    .tls_authenticate = tls && a->host_tls.plan.enforce,
		    .tls_sessions = a->ctx->tls_sessions,
		    .connect_timeout_ms = conf->connect_timeout_ms,
		    .command_timeout_ms = conf->command_timeout_ms,
		    .data_timeout_ms = conf->data_timeout_ms,
		    .tls_timeout_ms = conf->tls_timeout_ms,
		};
		a->connecting = smtp_client_connect(a->ctx->base, (struct sockaddr *)&ss, len, &cfg,
		                                    on_ready, a);
		if (a->connecting)
			return;
		/* out of memory: that address cannot be tried now */
		struct smtp_client_error e;
		our_error(&e, false, "4.3.0", "%s", "cannot set up a connection (out of memory)");
		remember_error(a, &e, NULL);
	}
	next_host(a);
}

/* ---- hosts ------------------------------------------------------------------ */

static bool ips_are_ours(const struct attempt *a, const struct host_ips *ips)
{
	for (size_t i = 0; i < ips->n; i++)
		if (self_addrs_match(a->ctx->self, &ips->addrs[i]))
			return true;
	return false;
}

/* RFC 5321 §5.1: a host that is ourselves, and every host after it (same
 * or lower preference), is not tried. When it is the best one, the mail
 * can only loop: that is final (5.4.4, RFC 3463 "unable to route"). */
static void host_is_ourselves(struct attempt *a)
{
	struct smtp_client_error e;
	our_error(&e, a->hosts_tried == 1, "5.4.4", "mail for %s loops back to myself",
	          a->job->domain);
	remember_error(a, &e, NULL);
	a->looped = true;
	a->host_i = a->dests->n;
	log_event(LOG_WARN, "mail_loop", "qid=%s domain=%s mx=%s", a->qid,
	          log_quote(a->job->domain), log_quote(a->host->name));
	if (e.permanent)
		settle_undecided(a, RCPT_FAILED, &e);
	next_host(a);
}

/* The host's TLS plan is made (host_tls.h): dial it, or say why not. */
static void host_ready(struct attempt *a, struct host_tlsa *tlsa)
{
	host_tls_decide(&a->tls, &a->host_tls, a->ips, tlsa);
	const struct host_tls *h = &a->host_tls;
	if (tlsa)
		metric_add(m_dane_hosts,
		           h->situation.dane == DANE_USABLE     ? "usable"
		           : h->situation.dane == DANE_UNUSABLE ? "unusable"
		           : tlsa->result == TLSA_FAILED        ? "failed"
		                                                : "none",
		           1);
	if (h->plan.overrides & OVERRIDE_STS_MX)
		count_override(a, "mtasts-mx", "MX host not listed in the enforced MTA-STS policy");
	if (h->plan.overrides & OVERRIDE_TLSA_ERROR)
		count_override(a, "tlsa-error", tlsa ? tlsa->error : "");
	a->mode = h->plan.mode;
	if (h->plan.dial)
		return dial_next_ip(a);
	struct smtp_client_error e;
	our_error(&e, false, h->plan.enhanced, "%s", h->plan.why);
	e.command = "tls";
	remember_error(a, &e, NULL);
	snprintf(a->last_note.detail, sizeof a->last_note.detail, "%s",
	         tlsa && tlsa->result == TLSA_FAILED ? tlsa->error : h->plan.why);
	if (h->plan.cannot_qualify) {
		a->hosts_lacking++; /* like a host lacking REQUIRETLS: final when all do */
		metric_add(m_requiretls, "unauthenticated-mx", 1);
	}
	log_event(LOG_INFO, "host_skipped", "qid=%s mx=%s policy=%s reason=%s", a->qid,
	          log_quote(a->host->name), log_quote(tls_governor_name(h->plan.governor)),
	          log_quote(h->plan.why));
	next_host(a);
}

static void on_tlsa(void *arg, struct host_tlsa *t)
{
	struct attempt *a = arg;
	a->tlsa_req = NULL;
	host_ready(a, t);
}

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
	if (ips_are_ours(a, ips))
		return host_is_ourselves(a);
	a->dualstack_seen |= ips->dualstack;
	bool signed_addrs = ips->authentic && ips->expanded_authentic;
	metric_add(m_hosts, signed_addrs ? "yes" : "no", 1);
	if (host_tls_wants_tlsa(&a->tls, &a->host_tls, ips, a->ctx->conf->dane_enabled)) {
		a->tlsa_req = tlsa_lookup(a->ctx->dns, a->host->name, ips->expanded,
		                          (int)a->ctx->conf->delivery_port, on_tlsa, a);
		return;
	}
	host_ready(a, NULL);
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
	host_tls_begin(&a->tls, &a->host_tls, a->host->name);
	if (a->host->is_ip) {
		struct host_ips *ips = calloc(1, sizeof *ips);
		if (ips == NULL || (ips->addrs = malloc(sizeof *ips->addrs)) == NULL)
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
	attempt_tls_destinations(&a->tls, d);
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
 * decided, except by a 421 (the server is closing: RFC 5321 §3.8), which
 * leaves it for the next host; one caught in a failed transaction stays
 * undecided when the failure was temporary (the next host may take it).
 * Returns true when recipients refused with 452 wait for another
 * transaction on this connection. */
static bool apply_results(struct attempt *a, const struct smtp_rcpt_result *res,
                          const struct smtp_client_error *err, bool *closing)
{
	bool more_here = false;
	const char *mx = a->conn.mx, *ip = a->conn.ip;
	for (size_t k = 0; k < a->txn.nrcpt; k++) {
		struct job_rcpt *r = &a->job->rcpts[a->txn_index[k]];
		const struct smtp_rcpt_result *x = &res[k];
		snprintf(r->tls, sizeof r->tls, "%s", a->conn.tls);
		if (x->status == SMTP_RCPT_OK) {
			settle(r, RCPT_DELIVERED, &x->error, mx, ip, &a->conn.note);
		} else if (x->status == SMTP_RCPT_NOT_TRIED) {
			more_here = true;
		} else if (x->error.code == 421) {
			remember_txn_error(a, &x->error);
			*closing = true;
		} else if (err->kind == SMTP_ERR_NONE || really_permanent(a, &x->error)) {
			bool perm = really_permanent(a, &x->error);
			settle(r, perm ? RCPT_FAILED : RCPT_DEFERRED, &x->error, mx, ip, &a->conn.note);
		}
	}
	return more_here && err->kind == SMTP_ERR_NONE && !*closing;
}

static void on_txn(void *arg, struct smtp_client *c, const struct smtp_rcpt_result *res,
                   const struct smtp_client_error *err)
{
	struct attempt *a = arg;
	bool closing = false;
	if (err->kind != SMTP_ERR_NONE)
		remember_txn_error(a, err);
	bool again = apply_results(a, res, err, &closing);
	free(a->txn_rcpts);
	free(a->txn_index);
	a->txn_rcpts = NULL;
	a->txn_index = NULL;
	if (again && smtp_client_usable(c) && undecided(a) > 0)
		return send_txn(a); /* 452: the rest in another transaction */
	/* A pooled connection has no host of this attempt's list: its lack
	 * says nothing about "every host" (it is tried again from the list). */
	if (capability_error(err) && a->dests)
		a->hosts_lacking++;
	if (err->kind == SMTP_ERR_REQUIRETLS)
		metric_add(m_requiretls, "no-requiretls", 1);
	release_client(a, !closing && (err->kind == SMTP_ERR_NONE || capability_error(err)));
	if (undecided(a) == 0)
		return outcome(a);
	next_host(a);
}

static void send_txn(struct attempt *a)
{
	if (!a->begun) {
		a->parked = send_txn;
		return;
	}
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
	    .eightbit = f & SPOOL_F_8BIT,
	    .smtputf8 = f & SPOOL_F_SMTPUTF8,
	    .requiretls = f & SPOOL_F_REQUIRETLS,
	};
	smtp_client_send(a->client, &a->txn, on_txn, a);
}

/* ---- the outcome ------------------------------------------------------------ */

/* Undecided recipients are deferred with the last error, or fail when
 * every host of the domain refused the session or lacked what the message
 * needs; deferred ones out of attempts fail. */
static void decide_rest(struct attempt *a)
{
	struct smtp_client_error e = a->last;
	size_t all = a->dests && !a->looped ? a->dests->n : 0;
	if (e.command == NULL) /* nothing was even tried: no host at all */
		our_error(&e, false, "4.4.1", "%s", "no host could be reached");
	bool final = false;
	if (all > 0 && a->hosts_refused == all)
		final = really_permanent(a, &e);
	if (all > 0 && a->hosts_lacking == all)
		final = e.permanent = true; /* no MX host supports what the message needs */
	settle_undecided(a, final ? RCPT_FAILED : RCPT_DEFERRED, &e);
	int64_t max_attempts = a->notice_cfg.max_attempts;
	if ((a->env.flags & SPOOL_F_TLSRPT) && max_attempts > TLSRPT_MAX_ATTEMPTS)
		max_attempts = TLSRPT_MAX_ATTEMPTS; /* a day's report is not worth more */
	for (size_t i = 0; i < a->job->n; i++) {
		struct job_rcpt *r = &a->job->rcpts[i];
		if (r->state == RCPT_DEFERRED && r->attempt >= max_attempts) {
			r->state = RCPT_FAILED;
			if (!r->remote && r->enhanced[0] == '4')
				r->enhanced[0] = '5';
			size_t len = strlen(r->error);
			snprintf(r->error + len, sizeof r->error - len,
			         " (gave up after %d attempts)", r->attempt);
		}
	}
}

struct outcome_job {
	struct attempt *a;
	struct notice_result notice; /* what the commit queued */
};

/* A failure is told at once; a delay when the attempt number reaches
 * delivery.delay_notice_after (notice.h gathers them per message). */
static enum spool_notice notice_for(const struct attempt *a, const struct job_rcpt *r)
{
	int after = a->delay_notice_after;
	if (r->state == RCPT_FAILED)
		return SPOOL_NOTICE_FAILURE;
	if (r->state == RCPT_DEFERRED && after > 0 && r->attempt == after)
		return SPOOL_NOTICE_DELAY;
	return SPOOL_NOTICE_NONE;
}

static int record_recipient(struct spool *sp, struct attempt *a, struct job_rcpt *r, int64_t now,
                            bool *deferred, char *why, size_t whylen)
{
	static const enum spool_attempt_result result_of[] = {
	    [RCPT_DELIVERED] = SPOOL_ATTEMPT_DELIVERED,
	    [RCPT_DEFERRED] = SPOOL_ATTEMPT_DEFERRED,
	    [RCPT_FAILED] = SPOOL_ATTEMPT_FAILED,
	};
	struct spool_outcome o = {
	    .rcpt_id = r->id,
	    .state = r->state,
	    .error = r->error,
	    .status = r->enhanced,
	    .mx = r->mx[0] ? r->mx : NULL,
	    .ip = r->ip[0] ? r->ip : NULL,
	    .diagnostic = r->remote ? r->error : NULL,
	    .notice = notice_for(a, r),
	};
	int end = spool_attempt_end(sp, &o, why, whylen);
	if (end != SPOOL_END_RECORDED) /* dropped meanwhile: nothing to log */
		return end < 0 ? -1 : 0;
	*deferred |= r->state == RCPT_DEFERRED;
	struct spool_attempt_log l = {
	    .msg_id = a->job->msg_id,
	    .rcpt_id = r->id,
	    .started_ms = a->started_ms,
	    .duration_ms = now - a->started_ms,
	    .mx = o.mx,
	    .ip = o.ip,
	    .tls = r->tls[0] ? r->tls : NULL,
	    .result = result_of[r->state],
	    .reply = r->error,
	    .tls_policy = r->note.policy[0] ? r->note.policy : NULL,
	    .tls_verified = r->note.verified[0] ? r->note.verified : NULL,
	    .tls_detail = r->note.detail[0] ? r->note.detail : NULL,
	};
	return spool_log_attempt(sp, &l, why, whylen);
}

/* RFC 8460 results go in the outcome's own commit: no fsync of their own.
 * The day is that of the attempt's start, in UTC. */
static int record_tls_results(struct spool *sp, struct attempt *a, char *why, size_t whylen)
{
	char day[32];
	time_format_rfc3339(a->started_ms, day, sizeof day);
	day[10] = '\0';
	for (size_t i = 0; i < a->tls.results.n; i++) {
		const struct tlsrpt_result *r = &a->tls.results.r[i];
		/* the results of delivering a report never make one (RFC 8460 §3) */
		bool reportable = !(a->env.flags & SPOOL_F_TLSRPT);
		if (tlsrpt_result_worth_keeping(r) &&
		    spool_tls_results_add(sp, day, r, reportable, why, whylen) < 0)
			return -1;
	}
	return 0;
}

static int outcome_write(struct spool *sp, void *arg, char *why, size_t whylen)
{
	struct outcome_job *o = arg;
	struct attempt *a = o->a;
	int64_t now = time_now_ms();
	bool deferred = false;
	for (size_t i = 0; i < a->job->n; i++)
		if (record_recipient(sp, a, &a->job->rcpts[i], now, &deferred, why, whylen) < 0)
			return -1;
	for (size_t i = 0; deferred && i < a->ndialed; i++)
		if (a->dialed[i].ips[0] && spool_dialed_put(sp, a->job->msg_id, a->dialed[i].host,
		                                            a->dialed[i].ips, why, whylen) < 0)
			return -1;
	if (record_tls_results(sp, a, why, whylen) < 0 ||
	    notice_flush(sp, &a->notice_cfg, a->ctx->dkim, a->job->msg_id, now, &o->notice, why,
	                 whylen) < 0)
		return -1;
	return spool_message_settle(sp, a->job->msg_id, now, why, whylen);
}

static void attempt_free(struct attempt *a)
{
	if (a->gather)
		gather_cancel(a->gather);
	sts_request_cancel(a->sts_req);
	tlsa_lookup_cancel(a->tlsa_req);
	host_tls_clear(&a->host_tls);
	attempt_tls_clear(&a->tls);
	if (a->connecting) /* shutdown while a connection was being set up */
		smtp_client_abort(a->connecting);
	release_client(a, false);
	if (a->ips)
		host_ips_free(a->ips);
	if (a->retry_timer)
		event_free(a->retry_timer);
	free(a->outcome);
	destinations_free(a->dests);
	free(a->txn_rcpts);
	free(a->txn_index);
	free(a);
}

static void log_outcome(struct attempt *a)
{
	for (size_t i = 0; i < a->job->n; i++) {
		struct job_rcpt *r = &a->job->rcpts[i];
		const char *result = rcpt_state_name(r->state);
		metric_add(m_results, result, 1);
		log_event(r->state == RCPT_FAILED ? LOG_WARN : LOG_INFO, "delivery",
		          "qid=%s rcpt=%s attempt=%d result=%s mx=%s ip=%s tls=%s tls_policy=%s "
		          "verified=%s reply=%s",
		          a->qid, log_quote(r->address), r->attempt, result, r->mx[0] ? r->mx : "-",
		          r->ip[0] ? r->ip : "-", r->tls[0] ? log_quote(r->tls) : "-",
		          r->note.policy[0] ? log_quote(r->note.policy) : "-",
		          r->note.verified[0] ? r->note.verified : "-", log_quote(r->error));
	}
}

static void outcome_done(void *arg, int status, const char *why);

static void outcome_submit(struct attempt *a)
{
	a->writing = true;
	spool_writer_submit_bookkeeping(a->ctx->writer, outcome_write, outcome_done, a->outcome);
}

static void on_outcome_retry(evutil_socket_t fd, short what, void *arg)
{
	outcome_submit(arg);
}

/* The outcome must land: after a failed commit (a full disk) it is tried
 * again, later and later, while the recipients stay in flight. */
static void outcome_retry_later(struct attempt *a, const char *why)
{
	a->retry_ms = a->retry_ms ? a->retry_ms * 2 : OUTCOME_RETRY_FIRST_MS;
	if (a->retry_ms > OUTCOME_RETRY_MAX_MS)
		a->retry_ms = OUTCOME_RETRY_MAX_MS;
	log_event(LOG_DEBUG, "outcome_not_recorded", "qid=%s retry_ms=%lld reason=%s", a->qid,
	          (long long)a->retry_ms, log_quote(why));
	if (a->retry_timer == NULL)
		a->retry_timer = evtimer_new(a->ctx->base, on_outcome_retry, a);
	struct timeval tv = {.tv_sec = a->retry_ms / 1000, .tv_usec = (a->retry_ms % 1000) * 1000};
	evtimer_add(a->retry_timer, &tv);
}

static void outcome_done(void *arg, int status, const char *why)
{
	struct outcome_job *o = arg;
	struct attempt *a = o->a;
	a->writing = false;
	if (status != 0)
		return outcome_retry_later(a, why);
	if (o->notice.dsn_id) {
		char dsn[17];
		spool_id_format(o->notice.dsn_id, dsn);
		metric_add(m_dsn, o->notice.failed ? "failure" : "delay", 1);
		log_event(LOG_INFO, "dsn_queued", "qid=%s dsn=%s failed=%d delayed=%d", a->qid, dsn,
		          o->notice.failed, o->notice.delayed);
	}
	metric_observe(m_duration, (double)(time_mono_us() - a->started_us) / 1e6);
	attempt_done_fn done = a->done;
	void *done_arg = a->done_arg;
	struct delivery_job *job = a->job;
	attempt_free(a);
	done(done_arg, job);
}

static void outcome(struct attempt *a)
{
	if (!a->begun) {
		a->parked = outcome;
		return;
	}
	decide_rest(a);
	log_outcome(a);
	a->outcome = calloc(1, sizeof *a->outcome);
	if (a->outcome == NULL)
		abort();
	a->outcome->a = a;
	outcome_submit(a);
	a->released(a->done_arg, a->job);
}

/* ---- start ------------------------------------------------------------------ */

static ssize_t body_read(void *arg, size_t offset, void *buf, size_t n, char *why, size_t whylen)
{
	struct attempt *a = arg;
	return spool_body_read(a->ctx->reader, a->job->msg_id, offset, buf, n, why, whylen);
}

static bool load_envelope(struct attempt *a)
{
	char why[256];
	if (spool_load_envelope(a->ctx->reader, a->job->msg_id, &a->env, why, sizeof why) < 0) {
		struct smtp_client_error e;
		our_error(&e, false, "4.3.0", "cannot read the message: %s", why);
		a->last = e;
		settle_undecided(a, RCPT_DEFERRED, &e);
		return false;
	}
	a->body = (struct smtp_body){.len = a->env.size, .read = body_read, .arg = a};
	return true;
}

static enum tls_demand demand_of(unsigned flags)
{
	if (flags & SPOOL_F_REQUIRETLS) /* RFC 8689 §5: it wins over the header */
		return TLS_DEMAND_REQUIRETLS;
	return flags & SPOOL_F_TLS_REQUIRED_NO ? TLS_DEMAND_OPTIONAL : TLS_DEMAND_DEFAULT;
}

/* The domain's MTA-STS policy is known (r NULL: none looked up). A lookup
 * that failed with nothing cached defers the domain (RFC 8461 §5), except
 * under "TLS-Required: No". Then an idle connection set up under the same
 * policy, or the MX hosts. */
static void sts_known(struct attempt *a, struct sts_result *r)
{
	enum tls_demand demand = demand_of(a->env.flags);
	bool literal = a->job->domain[0] == '[';
	bool failed = r && r->temporary_failure;
	char text[256] = "";
	if (r)
		snprintf(text, sizeof text, "%s", r->text);
	attempt_tls_init(&a->tls, a->job->domain, demand, literal, r);
	if (failed && demand != TLS_DEMAND_OPTIONAL) {
		struct smtp_client_error e;
		our_error(&e, false, "4.4.3", "%s", text);
		e.command = "mta-sts";
		remember_error(a, &e, NULL);
		settle_undecided(a, RCPT_DEFERRED, &e);
		return outcome(a);
	}
	if (failed)
		count_override(a, "mtasts-lookup", text);
	attempt_tls_pool_tag(&a->tls, a->pool_tag, sizeof a->pool_tag);
	a->client = pool_take(a->ctx->pool, a->job->domain, a->pool_tag, &a->conn);
	if (a->client)
		return send_txn(a);
	/* the scheduler left this domain's idle connections for this attempt
	 * (pool_make_room); none is under its policy, so one goes for the new */
	pool_close_oldest_of(a->ctx->pool, a->job->domain);
	resolve(a);
}

static void on_sts(void *arg, struct sts_result *r)
{
	struct attempt *a = arg;
	a->sts_req = NULL;
	sts_known(a, r);
}

static void start_tls_policy(struct attempt *a)
{
	struct sts_result r;
	if (a->ctx->sts == NULL || a->job->domain[0] == '[')
		return sts_known(a, NULL);
	if (sts_cache_lookup_now(a->ctx->sts, a->job->domain, &r))
		return sts_known(a, &r);
	a->sts_req = sts_cache_get(a->ctx->sts, a->job->domain, on_sts, a);
}

void attempt_begun(struct attempt *a)
{
	a->begun = true;
	void (*step)(struct attempt *) = a->parked;
	a->parked = NULL;
	if (step)
		step(a);
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
	a->notice_cfg = notice_settings_of(ctx->conf);
	a->delay_notice_after = (int)ctx->conf->delay_notice_after;
	spool_id_format(job->msg_id, a->qid);
	for (size_t i = 0; i < job->n; i++)
		job->rcpts[i].state = RCPT_QUEUED;
	if (!load_envelope(a)) {
		outcome(a);
		return a;
	}
	start_tls_policy(a);
	return a;
}
