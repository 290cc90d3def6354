/* https.c - HTTPS requests on the event loop. The contract is in https.h.
 *
 * Loop integration (the hiperfifo pattern of libcurl's examples): curl tells
 * us through CURLMOPT_SOCKETFUNCTION which socket it wants watched for what,
 * and each gets one persistent libevent event; CURLMOPT_TIMERFUNCTION sets
 * the one timer. Both events call curl_multi_socket_action and then collect
 * the finished transfers. A finished request is not reported from there:
 * its result is copied out of curl and its own event is made active, so the
 * user callback always runs from the loop with no curl call on the stack,
 * and may start or cancel requests freely.
 *
 * Names: each request has its own CURLSH holding a private DNS cache, with
 * a CURLOPT_RESOLVE entry for the URL's host and port listing the caller's
 * addresses. Curl finds the name there and never asks a resolver; the entry
 * (permanent in curl's terms) dies with the request instead of piling up in
 * the multi handle's shared cache, one per host ever fetched.
 *
 * Trust: the client builds one X509_STORE (system roots plus the extra CA
 * file) and CURLOPT_SSL_CTX_FUNCTION puts it on every new connection's
 * SSL_CTX; CURLOPT_CAINFO alone would replace the system roots instead of
 * adding to them. Curl itself is told to load no CA file (CAINFO and CAPATH
 * NULL): if our callback did not run, nothing would be trusted. The same
 * callback gives OpenSSL the expected host name, so a mismatch fails inside
 * the handshake with X509_V_ERR_HOSTNAME_MISMATCH rather than in curl's own
 * later check, and the verify result names the reason.
 */
#include "util/https.h"

#include "util/metrics.h"
#include "util/timeutil.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <limits.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HTTPS_BODY_CHUNK 16384 /* first allocation for a response body */

struct https_client {
	struct event_base *base;
	CURLM *multi;
	struct event *timer; /* curl's one timeout */
	X509_STORE *store;   /* one reference; each SSL_CTX takes its own */
	struct https_request *live;
	struct https_sock *socks; /* freed by https_client_free if curl does not */
};

/* One socket curl asked us to watch. */
struct https_sock {
	struct https_client *c;
	struct https_sock *prev, *next; /* in c->socks */
	struct event *ev;
};

struct https_request {
	struct https_client *c;
	struct https_request *prev, *next; /* in c->live */
	CURL *easy;
	CURLSH *share; /* the request's private DNS cache */
	struct curl_slist *resolve, *headers;
	char *host; /* the URL's host, for the certificate check */
	bool in_multi;
	int64_t started_us;
	enum https_method method;

	char *body; /* the response body so far, NUL-terminated */
	size_t body_len, body_cap, max_body;
	bool too_large;

	struct https_result result;
	char *content_type, *location; /* copies for the result */
	char errbuf[CURL_ERROR_SIZE];

	struct event *done; /* made active when the result is ready */
	https_callback cb;
	void *arg;
	bool in_callback;
};

static void *https_alloc(size_t n)
{
	void *p = calloc(1, n ? n : 1);

	if (p == NULL)
		abort();
	return p;
}

static char *https_strdup(const char *s)
{
	char *d = strdup(s);

	if (d == NULL)
		abort();
	return d;
}

static void setf(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void setf(char *buf, size_t n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, n, fmt, ap);
	va_end(ap);
}

const char *https_outcome_name(enum https_outcome o)
{
	switch (o) {
	case HTTPS_RESPONSE:
		return "response";
	case HTTPS_REDIRECT:
		return "redirect";
	case HTTPS_TIMEOUT:
		return "timeout";
	case HTTPS_CONNECT_FAILED:
		return "connect-failed";
	case HTTPS_CERT_INVALID:
		return "cert-invalid";
	case HTTPS_TLS_FAILED:
		return "tls-failed";
	case HTTPS_TOO_LARGE:
		return "too-large";
	case HTTPS_OTHER:
		break;
	}
	return "other";
}

/* ---------------------------------------------------------------------------
 * Metrics.
 */

static struct metric *m_requests, *m_seconds;

static void metrics_init(void)
{
	static const double secs[] = {0.01, 0.05, 0.1, 0.5, 1, 5, 10, 20, 30, 60};

	if (m_requests != NULL)
		return;
	m_requests = metric_counter("outpost_https_requests_total",
	                            "HTTPS requests by method and outcome", "method,outcome");
	m_seconds =
	    metric_histogram("outpost_https_request_seconds", "HTTPS request time, start to result",
	                     secs, sizeof secs / sizeof secs[0]);
}

static void count_request(const struct https_request *r)
{
	char value[48];

	snprintf(value, sizeof value, "%s,%s", r->method == HTTPS_POST ? "post" : "get",
	         https_outcome_name(r->result.outcome));
	metric_add(m_requests, value, 1);
	metric_observe(m_seconds, (double)(time_mono_us() - r->started_us) / 1e6);
}

/* ---------------------------------------------------------------------------
 * Trust anchors.
 */

static void openssl_reason(char *why, size_t whylen, const char *what, const char *path)
{
	unsigned long e = ERR_peek_last_error();
	char text[160] = "no certificate found";

	if (e != 0)
		ERR_error_string_n(e, text, sizeof text);
	ERR_clear_error();
	setf(why, whylen, "%s %s: %s", what, path, text);
}

X509_STORE *https_trust_store_new(const char *ca_file, char *why, size_t whylen)
{
	X509_STORE *store = X509_STORE_new();

	if (store == NULL)
		abort();
	/* OpenSSL's own idea of the system store (on Debian the
	 * ca-certificates bundle and /etc/ssl/certs), the same one
	 * SSL_CTX_set_default_verify_paths gives the SMTP side. */
	if (X509_STORE_set_default_paths(store) != 1) {
		openssl_reason(why, whylen, "system trust store", "(default paths)");
		X509_STORE_free(store);
		return NULL;
	}
	ERR_clear_error(); /* a missing default file is not an error */
	if (ca_file != NULL && ca_file[0] != '\0' && X509_STORE_load_file(store, ca_file) != 1) {
		openssl_reason(why, whylen, "ca_file", ca_file);
		X509_STORE_free(store);
		return NULL;
	}
	return store;
}

/* Runs for every new TLS connection, after curl has set up the context:
 * our trust anchors and the expected name (RFC 6125 via OpenSSL; no
 * partial-label wildcards such as "f*.example"). */
static CURLcode on_ssl_ctx(CURL *easy, void *ssl_ctx, void *arg)
{
	struct https_request *r = arg;
	SSL_CTX *ctx = ssl_ctx;
	X509_VERIFY_PARAM *param = SSL_CTX_get0_param(ctx);
	struct in6_addr ip;
	int ok;

	SSL_CTX_set1_cert_store(ctx, r->c->store); /* takes its own reference */
	X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (inet_pton(AF_INET, r->host, &ip) == 1 || inet_pton(AF_INET6, r->host, &ip) == 1)
		ok = X509_VERIFY_PARAM_set1_ip_asc(param, r->host);
	else
		ok = X509_VERIFY_PARAM_set1_host(param, r->host, 0);
	return ok == 1 ? CURLE_OK : CURLE_SSL_CERTPROBLEM;
}

/* ---------------------------------------------------------------------------
 * Results.
 */

static bool is_redirect(long status)
{
	return status >= 300 && status <= 399;
}

/* Curl's error codes in our outcome classes. */
static enum https_outcome outcome_of_code(CURLcode rc)
{
	switch (rc) {
	case CURLE_OPERATION_TIMEDOUT:
		return HTTPS_TIMEOUT;
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
		return HTTPS_CONNECT_FAILED;
	case CURLE_PEER_FAILED_VERIFICATION:
		return HTTPS_CERT_INVALID;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_ENGINE_NOTFOUND:
	case CURLE_SSL_ENGINE_SETFAILED:
	case CURLE_SSL_ENGINE_INITFAILED:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_SHUTDOWN_FAILED:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_CLIENTCERT:
	case CURLE_USE_SSL_FAILED:
		return HTTPS_TLS_FAILED;
	case CURLE_FILESIZE_EXCEEDED:
		return HTTPS_TOO_LARGE;
	default:
		return HTTPS_OTHER;
	}
}

/* A 3xx is a redirect whatever happened to its body (RFC 8461 §3.3: never
 * followed); then an oversized body; then curl's verdict. */
static enum https_outcome outcome_of(CURLcode rc, long status, bool too_large)
{
	bool got_response = rc == CURLE_OK || too_large || rc == CURLE_FILESIZE_EXCEEDED;

	if (got_response && is_redirect(status))
		return HTTPS_REDIRECT;
	if (too_large)
		return HTTPS_TOO_LARGE;
	if (rc == CURLE_OK)
		return HTTPS_RESPONSE;
	return outcome_of_code(rc);
}

static void copy_info_string(CURL *easy, CURLINFO what, char **dst)
{
	char *s = NULL;

	if (curl_easy_getinfo(easy, what, &s) == CURLE_OK && s != NULL)
		*dst = https_strdup(s);
}

static void result_reason(struct https_request *r, CURLcode rc)
{
	struct https_result *res = &r->result;

	switch (res->outcome) {
	case HTTPS_RESPONSE:
		return;
	case HTTPS_REDIRECT:
		setf(res->reason, sizeof res->reason, "HTTP %ld redirect to %s (not followed)",
		     res->status, r->location ? r->location : "(no location)");
		return;
	case HTTPS_TOO_LARGE:
		setf(res->reason, sizeof res->reason, "response body over %zu octets", r->max_body);
		return;
	case HTTPS_CERT_INVALID:
		setf(res->reason, sizeof res->reason, "certificate: %s (verify error %ld)",
		     X509_verify_cert_error_string(res->verify_result), res->verify_result);
		return;
	default:
		setf(res->reason, sizeof res->reason, "%s%s%s", curl_easy_strerror(rc),
		     r->errbuf[0] ? ": " : "", r->errbuf);
	}
}

/* Copies what the callback needs out of curl, once the transfer is over. */
static void result_fill(struct https_request *r, CURLcode rc)
{
	struct https_result *res = &r->result;
	long verify = 0;

	curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &res->status);
	res->outcome = outcome_of(rc, res->status, r->too_large);
	copy_info_string(r->easy, CURLINFO_CONTENT_TYPE, &r->content_type);
	if (res->outcome == HTTPS_REDIRECT)
		copy_info_string(r->easy, CURLINFO_REDIRECT_URL, &r->location);
	if (res->outcome == HTTPS_CERT_INVALID) {
		curl_easy_getinfo(r->easy, CURLINFO_SSL_VERIFYRESULT, &verify);
		/* OpenSSL accepted the chain, so curl's own check failed after
		 * the handshake: in curl 7.88 that is only the host name one. */
		res->verify_result = verify != X509_V_OK ? verify : X509_V_ERR_HOSTNAME_MISMATCH;
	}
	res->content_type = r->content_type;
	res->location = r->location;
	res->body = r->body ? r->body : "";
	res->body_len = r->body_len;
	result_reason(r, rc);
}

/* ---------------------------------------------------------------------------
 * Requests.
 */

static void request_unlink(struct https_request *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else if (r->c->live == r)
		r->c->live = r->next;
	if (r->next)
		r->next->prev = r->prev;
	r->prev = r->next = NULL;
}

static void request_free(struct https_request *r)
{
	request_unlink(r);
	if (r->in_multi)
		curl_multi_remove_handle(r->c->multi, r->easy);
	if (r->easy)
		curl_easy_cleanup(r->easy);
	if (r->share)
		curl_share_cleanup(r->share); /* after the easy handle let go of it */
	curl_slist_free_all(r->resolve);
	curl_slist_free_all(r->headers);
	if (r->done)
		event_free(r->done);
	free(r->host);
	free(r->body);
	free(r->content_type);
	free(r->location);
	free(r);
}

static void request_on_done(evutil_socket_t fd, short what, void *arg)
{
	struct https_request *r = arg;

	count_request(r);
	r->in_callback = true;
	r->cb(r->arg, &r->result);
	request_free(r);
}

/* The result is ready: report it from the loop. */
static void request_complete(struct https_request *r)
{
	event_active(r->done, EV_TIMEOUT, 1);
}

static void request_reject(struct https_request *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void request_reject(struct https_request *r, const char *fmt, ...)
{
	va_list ap;

	r->result.outcome = HTTPS_OTHER;
	r->result.body = "";
	va_start(ap, fmt);
	vsnprintf(r->result.reason, sizeof r->result.reason, fmt, ap);
	va_end(ap);
	request_complete(r);
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct https_request *r = arg;
	size_t n = size * nmemb;

	if (n > r->max_body - r->body_len) {
		r->too_large = true;
		return 0; /* not n: curl aborts the transfer (CURLE_WRITE_ERROR) */
	}
	if (r->body_len + n + 1 > r->body_cap) {
		size_t cap = r->body_cap ? r->body_cap : HTTPS_BODY_CHUNK;

		while (cap < r->body_len + n + 1)
			cap *= 2;
		if (cap > r->max_body + 1)
			cap = r->max_body + 1;
		r->body = realloc(r->body, cap);
		if (r->body == NULL)
			abort();
		r->body_cap = cap;
	}
	memcpy(r->body + r->body_len, data, n);
	r->body_len += n;
	r->body[r->body_len] = '\0';
	return n;
}

/* An address for curl's resolve syntax: only numeric addresses pass, so no
 * ':' or ',' from a caller can change the entry's meaning. */
static bool addr_append(char *buf, size_t n, size_t *off, const char *addr)
{
	struct in_addr v4;
	struct in6_addr v6;
	int w;

	if (inet_pton(AF_INET, addr, &v4) == 1)
		w = snprintf(buf + *off, n - *off, "%s%s", *off ? "," : "", addr);
	else if (inet_pton(AF_INET6, addr, &v6) == 1)
		w = snprintf(buf + *off, n - *off, "%s[%s]", *off ? "," : "", addr);
	else
		return false;
	if (w < 0 || (size_t)w >= n - *off)
		return false;
	*off += (size_t)w;
	return true;
}

/* "host:port:addr,[addr6],..." for CURLOPT_RESOLVE. */
static bool resolve_entry(struct https_request *r, const char *port,
                          const struct https_request_opts *o, char *why, size_t whylen)
{
	char entry[2048];
	bool v6 = strchr(r->host, ':') != NULL; /* an IPv6 literal host */
	int w = snprintf(entry, sizeof entry, "%s%s%s:%s:", v6 ? "[" : "", r->host, v6 ? "]" : "",
	                 port);
	size_t head, off = 0;

	if (o->naddrs == 0 || o->addrs == NULL) {
		setf(why, whylen, "no address to connect to");
		return false;
	}
	if (w < 0 || (size_t)w >= sizeof entry) {
		setf(why, whylen, "host name too long");
		return false;
	}
	head = (size_t)w;
	for (size_t i = 0; i < o->naddrs; i++) {
		if (o->addrs[i] == NULL ||
		    !addr_append(entry + head, sizeof entry - head, &off, o->addrs[i])) {
			setf(why, whylen, "not a numeric address: %s",
			     o->addrs[i] ? o->addrs[i] : "");
			return false;
		}
	}
	r->resolve = curl_slist_append(NULL, entry);
	return r->resolve != NULL;
}

/* Takes the URL apart: https only, and the host and port curl will use. */
static bool url_check(struct https_request *r, const struct https_request_opts *o, char *port,
                      size_t portlen, char *why, size_t whylen)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *p = NULL;
	bool ok = false;

	if (u == NULL)
		abort();
	if (o->url == NULL || curl_url_set(u, CURLUPART_URL, o->url, 0) != CURLUE_OK)
		setf(why, whylen, "invalid URL %s", o->url ? o->url : "(null)");
	else if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	         strcasecmp(scheme, "https") != 0)
		setf(why, whylen, "not an https URL: %s", o->url);
	else if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
	         curl_url_get(u, CURLUPART_PORT, &p, CURLU_DEFAULT_PORT) != CURLUE_OK)
		setf(why, whylen, "no host in URL %s", o->url);
	else
		ok = true;
	if (ok) {
		size_t n = strlen(host);

		/* "[::1]" in URLs and resolve entries; bare for the name check */
		if (n > 2 && host[0] == '[' && host[n - 1] == ']')
			r->host = strndup(host + 1, n - 2);
		else
			r->host = https_strdup(host);
		if (r->host == NULL)
			abort();
		snprintf(port, portlen, "%s", p);
	}
	curl_free(scheme);
	curl_free(host);
	curl_free(p);
	curl_url_cleanup(u);
	return ok;
}

static void easy_body(struct https_request *r, const struct https_request_opts *o)
{
	char ct[512];

	if (o->method != HTTPS_POST) {
		curl_easy_setopt(r->easy, CURLOPT_HTTPGET, 1L);
		return;
	}
	curl_easy_setopt(r->easy, CURLOPT_POST, 1L);
	curl_easy_setopt(r->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)o->body_len);
	curl_easy_setopt(r->easy, CURLOPT_COPYPOSTFIELDS, o->body_len ? o->body : "");
	snprintf(ct, sizeof ct, "Content-Type: %s",
	         o->content_type ? o->content_type : "application/octet-stream");
	r->headers = curl_slist_append(r->headers, ct);
	/* no "Expect: 100-continue" round trip: the body is small and ours */
	r->headers = curl_slist_append(r->headers, "Expect:");
	curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, r->headers);
}

/* Every option that makes a request what https.h promises. */
static void easy_setup(struct https_request *r, const struct https_request_opts *o)
{
	CURL *e = r->easy;

	curl_easy_setopt(e, CURLOPT_PRIVATE, r);
	curl_easy_setopt(e, CURLOPT_URL, o->url);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "https");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L); /* RFC 8461 §3.3 */
	curl_easy_setopt(e, CURLOPT_SHARE, r->share);
	curl_easy_setopt(e, CURLOPT_RESOLVE, r->resolve);
	curl_easy_setopt(e, CURLOPT_PROXY, ""); /* no proxy from the environment */
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)o->timeout_ms);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	curl_easy_setopt(e, CURLOPT_CAINFO, (char *)NULL); /* the store comes from on_ssl_ctx */
	curl_easy_setopt(e, CURLOPT_CAPATH, (char *)NULL);
	curl_easy_setopt(e, CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx);
	curl_easy_setopt(e, CURLOPT_SSL_CTX_DATA, r);
	curl_easy_setopt(e, CURLOPT_SSL_SESSIONID_CACHE, 0L); /* a full verification each time */
	curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
	curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
	curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)o->max_body);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "outpost/" OUTPOST_VERSION);
	easy_body(r, o);
}

/* Printable ASCII only: no CR or LF can smuggle in another header. */
static bool header_value_ok(const char *v)
{
	for (; *v != '\0'; v++)
		if ((unsigned char)*v < 0x20 || (unsigned char)*v > 0x7e)
			return false;
	return true;
}

/* Everything that can fail before curl sees the request. */
static bool request_prepare(struct https_request *r, const struct https_request_opts *o, char *why,
                            size_t whylen)
{
	char port[16];

	if (!url_check(r, o, port, sizeof port, why, whylen) ||
	    !resolve_entry(r, port, o, why, whylen))
		return false;
	if (o->timeout_ms <= 0 || o->timeout_ms > LONG_MAX) {
		setf(why, whylen, "invalid timeout %lld ms", (long long)o->timeout_ms);
		return false;
	}
	if (o->method == HTTPS_POST && o->body_len > 0 && o->body == NULL) {
		setf(why, whylen, "POST without a body");
		return false;
	}
	if (o->content_type != NULL && !header_value_ok(o->content_type)) {
		setf(why, whylen, "invalid content type");
		return false;
	}
	r->share = curl_share_init();
	r->easy = curl_easy_init();
	if (r->share == NULL || r->easy == NULL ||
	    curl_share_setopt(r->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) != CURLSHE_OK) {
		setf(why, whylen, "cannot initialise libcurl");
		return false;
	}
	easy_setup(r, o);
	return true;
}

struct https_request *https_request(struct https_client *c, const struct https_request_opts *o,
                                    https_callback cb, void *arg)
{
	struct https_request *r = https_alloc(sizeof *r);
	char why[256];

	r->c = c;
	r->cb = cb;
	r->arg = arg;
	r->method = o->method;
	r->max_body = o->max_body;
	r->started_us = time_mono_us();
	r->done = event_new(c->base, -1, 0, request_on_done, r);
	if (r->done == NULL)
		abort();
	r->next = c->live;
	if (c->live)
		c->live->prev = r;
	c->live = r;
	if (!request_prepare(r, o, why, sizeof why)) {
		request_reject(r, "%s", why);
		return r;
	}
	if (curl_multi_add_handle(c->multi, r->easy) != CURLM_OK) {
		request_reject(r, "cannot start the transfer");
		return r;
	}
	r->in_multi = true; /* curl asks for a timer; the transfer starts there */
	return r;
}

void https_cancel(struct https_request *r)
{
	if (r == NULL || r->in_callback)
		return;
	request_free(r);
}

/* ---------------------------------------------------------------------------
 * The loop side of curl's multi-socket API.
 */

/* Collects the transfers curl has finished. */
static void client_collect(struct https_client *c)
{
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(c->multi, &left)) != NULL) {
		struct https_request *r;
		char *priv = NULL;

		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
		r = (struct https_request *)priv;
		result_fill(r, m->data.result); /* m dies with the next curl call */
		curl_multi_remove_handle(c->multi, r->easy);
		r->in_multi = false;
		request_complete(r);
	}
}

static void client_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct https_client *c = arg;
	int running;

	curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	client_collect(c);
}

static void client_on_socket(evutil_socket_t fd, short what, void *arg)
{
	struct https_sock *s = arg;
	struct https_client *c = s->c; /* s may be freed inside socket_action */
	int action =
	    ((what & EV_READ) ? CURL_CSELECT_IN : 0) | ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);
	int running;

	curl_multi_socket_action(c->multi, fd, action, &running);
	client_collect(c);
}

static struct https_sock *sock_new(struct https_client *c, curl_socket_t fd)
{
	struct https_sock *s = https_alloc(sizeof *s);

	s->c = c;
	s->next = c->socks;
	if (c->socks)
		c->socks->prev = s;
	c->socks = s;
	curl_multi_assign(c->multi, fd, s);
	return s;
}

/* Freeing the event from within its own callback is allowed (libevent
 * touches it no more once the callback runs). */
static void sock_free(struct https_sock *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		s->c->socks = s->next;
	if (s->next)
		s->next->prev = s->prev;
	if (s->ev)
		event_free(s->ev);
	free(s);
}

/* CURLMOPT_SOCKETFUNCTION: watch fd for what curl wants, or forget it. */
static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct https_client *c = userp;
	struct https_sock *s = socketp;
	short events = EV_PERSIST;

	if (what == CURL_POLL_REMOVE) {
		if (s != NULL)
			sock_free(s);
		return 0;
	}
	if (s == NULL)
		s = sock_new(c, fd);
	else
		event_free(s->ev);
	if (what & CURL_POLL_IN)
		events |= EV_READ;
	if (what & CURL_POLL_OUT)
		events |= EV_WRITE;
	s->ev = event_new(c->base, fd, events, client_on_socket, s);
	if (s->ev == NULL || event_add(s->ev, NULL) != 0)
		abort();
	return 0;
}

/* CURLMOPT_TIMERFUNCTION: curl wants to be called in ms (-1: never).
 * Never call curl from here; the timer does it from the loop. */
static int on_curl_timer(CURLM *multi, long ms, void *userp)
{
	struct https_client *c = userp;
	struct timeval tv;

	if (ms < 0) {
		evtimer_del(c->timer);
		return 0;
	}
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(c->timer, &tv);
	return 0;
}

struct https_client *https_client_new(struct event_base *base, const char *ca_file, char *why,
                                      size_t whylen)
{
	struct https_client *c;
	X509_STORE *store = https_trust_store_new(ca_file, why, whylen);

	if (store == NULL)
		return NULL;
	/* reference-counted by libcurl: the CLI's own init and cleanup pair
	 * up with ours */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		setf(why, whylen, "cannot initialise libcurl");
		X509_STORE_free(store);
		return NULL;
	}
	metrics_init();
	c = https_alloc(sizeof *c);
	c->base = base;
	c->store = store;
	c->multi = curl_multi_init();
	c->timer = evtimer_new(base, client_on_timer, c);
	if (c->multi == NULL || c->timer == NULL)
		abort();
	curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
	curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
	curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
	curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
	return c;
}

struct event_base *https_client_base(const struct https_client *c)
{
	return c->base;
}

void https_client_free(struct https_client *c)
{
	if (c == NULL)
		return;
	while (c->live != NULL)
		request_free(c->live);
	curl_multi_cleanup(c->multi);
	while (c->socks != NULL)
		sock_free(c->socks);
	event_free(c->timer);
	X509_STORE_free(c->store);
	free(c);
	curl_global_cleanup();
}
